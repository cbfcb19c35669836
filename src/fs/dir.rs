//! Directories as a whole: [`read_dir`] and its [`ReadDir`], which reads entries ahead in
//! batches on the blocking pool so that iterating parks rather than blocks, and
//! [`DirBuilder`], std's builder run on the pool.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use super::{blocking, DirEntry};

/// How many entries one trip to the blocking pool reads ahead in [`ReadDir`].
const READ_DIR_BATCH: usize = 64;

/// The entries of a directory, like [`std::fs::read_dir`]; the order is the file system's.
///
/// On a green thread opening the directory and reading its entries run on the blocking
/// pool, 64 entries per trip, so iterating never blocks the worker.
///
/// # Errors
///
/// As std's (`NotFound`, `PermissionDenied`, `NotADirectory`, ...).
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("greenring-doc-readdir-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// greenring::fs::write(dir.join("a.txt"), "a")?;
/// greenring::fs::write(dir.join("b.txt"), "b")?;
/// let mut names = greenring::fs::read_dir(&dir)?
///     .map(|entry| entry.map(|entry| entry.file_name()))
///     .collect::<std::io::Result<Vec<_>>>()?;
/// names.sort();
/// assert_eq!(names, ["a.txt", "b.txt"]);
/// # greenring::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let path = path.as_ref();
    let inner = blocking(|| std::fs::read_dir(path))?;
    Ok(ReadDir {
        inner,
        ahead: VecDeque::new(),
        done: false,
    })
}

/// An iterator over a directory's entries, from [`read_dir`]; like [`std::fs::ReadDir`].
#[derive(Debug)]
pub struct ReadDir {
    inner: std::fs::ReadDir,
    /// Entries read ahead on the blocking pool.
    ahead: VecDeque<io::Result<DirEntry>>,
    /// The read-ahead met the end.
    done: bool,
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        if let Some(entry) = self.ahead.pop_front() {
            return Some(entry);
        }
        if self.done {
            return None;
        }
        if !crate::thread::is_green() || std::thread::panicking() {
            return self.inner.next();
        }
        let (inner, ahead) = (&mut self.inner, &mut self.ahead);
        let batch = crate::driver::pool::offload(|| {
            while ahead.len() < READ_DIR_BATCH {
                match inner.next() {
                    Some(entry) => ahead.push_back(entry),
                    None => return Ok(true),
                }
            }
            Ok(false)
        });
        match batch {
            Ok(done) => self.done = done,
            // No pool thread to read the directory: this entry is the error (a later call
            // tries again).
            Err(refused) => return Some(Err(refused)),
        }
        self.ahead.pop_front()
    }
}

/// Creates directories with options, like [`std::fs::DirBuilder`] (with `mode` from
/// `DirBuilderExt`); [`create`](DirBuilder::create) runs on the blocking pool on a green
/// thread.
///
/// # Examples
///
/// ```
/// use greenring::fs::DirBuilder;
///
/// # let dir = std::env::temp_dir().join(format!("greenring-doc-dirbuilder-{}", std::process::id()));
/// DirBuilder::new().recursive(true).mode(0o750).create(dir.join("a/b/c"))?;
/// assert!(greenring::fs::metadata(dir.join("a/b/c"))?.is_dir());
/// # greenring::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct DirBuilder {
    recursive: bool,
    mode: u32,
}

impl Default for DirBuilder {
    fn default() -> DirBuilder {
        DirBuilder::new()
    }
}

impl DirBuilder {
    /// Not recursive; mode 0o777 (less the umask).
    pub fn new() -> DirBuilder {
        DirBuilder {
            recursive: false,
            mode: 0o777,
        }
    }

    /// Also create missing parents, and accept a directory that exists already.
    pub fn recursive(&mut self, recursive: bool) -> &mut DirBuilder {
        self.recursive = recursive;
        self
    }

    /// The permission bits of created directories (before the umask).
    pub fn mode(&mut self, mode: u32) -> &mut DirBuilder {
        self.mode = mode;
        self
    }

    /// Creates the directory at `path` with these options.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn create<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        let path = path.as_ref();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(self.recursive).mode(self.mode);
        blocking(|| builder.create(path))
    }
}

/// std's extension trait, so ported code that imports it keeps working.
impl std::os::unix::fs::DirBuilderExt for DirBuilder {
    fn mode(&mut self, mode: u32) -> &mut DirBuilder {
        DirBuilder::mode(self, mode)
    }
}
