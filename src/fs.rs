//! Files, shaped like [`std::fs`], whose reads, writes, syncs and opens park only the
//! calling green thread.
//!
//! On a green thread `open`, `read`, `write`, `read_at`, `write_at`, `sync_all`,
//! `sync_data`, `remove_file` and `create_dir_all` run as io_uring ops on the caller's own
//! buffers; off green threads they are the std calls. Writes of up to [`INLINE_WRITE_MAX`]
//! bytes are the plain system call on green threads too: a buffered write is a copy into
//! the page cache, and io_uring cannot do it without blocking on ext4, so it hands it to a
//! kernel worker thread (measured here: 70 us per 29-byte append through io_uring, 2 us
//! with `write`). A write that does block (dirty-page throttling, `O_DIRECT`) holds the
//! worker; past 10 ms the hand-off monitor moves the worker's other green threads away. `metadata`, `set_len` and seeking are
//! std's calls everywhere (a `stat` or `lseek` does not wait for the device).
//!
//! # The file position
//!
//! `read(2)` and `write(2)` hold the open file's position lock, so threads sharing a file
//! each read or write their own bytes. io_uring ops at "the current position" do not take
//! that lock: two in flight at once would read the same bytes, or write over each other.
//! So every [`File`] handle, and its `try_clone`s, share a position lock of their own;
//! reads, writes and seeks at the position take it, look the position up, run the op at
//! that explicit offset, and move the position past what they transferred. (Files without
//! a position, such as pipes, run at "the current position" as before.) A handle made
//! elsewhere for the same open file (a `dup`, an fd passed to a child) does not share the
//! lock.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("greenring-doc-fs-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("hello.txt");
//! greenring::spawn(move || -> std::io::Result<()> {
//!     greenring::fs::write(&path, b"hello, file")?;
//!     assert_eq!(greenring::fs::read_to_string(&path)?, "hello, file");
//!     greenring::fs::remove_file(&path)
//! })
//! .join()
//! .unwrap()?;
//! # std::fs::remove_dir(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::CString;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::sync::Mutex;

pub use std::fs::{Metadata, Permissions};

/// Writes up to this many bytes are made with a plain `write`/`pwrite` (see the module
/// documentation); larger ones go through io_uring.
pub const INLINE_WRITE_MAX: usize = 64 * 1024;

use crate::reactor::ops;

/// The file position, as an io_uring offset: read or write at it, and advance it.
const AT_POSITION: u64 = u64::MAX;

/// An open file, like [`std::fs::File`].
#[derive(Debug)]
pub struct File {
    inner: std::fs::File,
    /// Held across every read, write and seek at the file position (see the module
    /// documentation); shared with the handle's clones, which share the position.
    position: Arc<Mutex<()>>,
}

impl File {
    /// Opens a file for reading.
    ///
    /// # Errors
    ///
    /// As std's (`NotFound`, `PermissionDenied`, ...).
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Creates (or truncates) a file for writing.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// A blank set of options, as [`OpenOptions::new`].
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Reads at `offset` without moving the file position, like
    /// `std::os::unix::fs::FileExt::read_at`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match ops::read_at(self.as_raw_fd(), buf, offset) {
            Some(result) => result,
            None => std::os::unix::fs::FileExt::read_at(&self.inner, buf, offset),
        }
    }

    /// Writes at `offset` without moving the file position, like
    /// `std::os::unix::fs::FileExt::write_at`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if buf.len() <= INLINE_WRITE_MAX {
            return std::os::unix::fs::FileExt::write_at(&self.inner, buf, offset);
        }
        match ops::write_at(self.as_raw_fd(), buf, offset) {
            Some(result) => result,
            None => std::os::unix::fs::FileExt::write_at(&self.inner, buf, offset),
        }
    }

    /// Flushes data and metadata to the device (`fsync`).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn sync_all(&self) -> io::Result<()> {
        ops::fsync(self.as_raw_fd(), false).unwrap_or_else(|| self.inner.sync_all())
    }

    /// Flushes data to the device (`fdatasync`).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn sync_data(&self) -> io::Result<()> {
        ops::fsync(self.as_raw_fd(), true).unwrap_or_else(|| self.inner.sync_data())
    }

    /// Truncates or extends the file to `size` bytes.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.inner.set_len(size)
    }

    /// The file's metadata.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.inner.metadata()
    }

    /// A second handle to the same open file (sharing its position).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn try_clone(&self) -> io::Result<File> {
        Ok(File {
            inner: self.inner.try_clone()?,
            position: Arc::clone(&self.position),
        })
    }

    /// Runs `op` at the file position, holding the position lock, and moves the position
    /// past the bytes it transferred. `op` gets an explicit offset, or [`AT_POSITION`] for
    /// a file that has no position (a pipe, a socket). After a write with `O_APPEND`,
    /// which goes to the end whatever the offset, the position is the end.
    fn at_position(
        &self,
        write: bool,
        op: impl FnOnce(u64) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let _position = self
            .position
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fd = self.as_raw_fd();
        let Some(offset) = lseek(fd, 0, libc::SEEK_CUR)? else {
            return op(AT_POSITION);
        };
        let n = op(offset)?;
        if n > 0 {
            if write && self.appends()? {
                lseek(fd, 0, libc::SEEK_END)?;
            } else {
                let next = offset.checked_add(n as u64).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "file position overflow")
                })?;
                lseek(
                    fd,
                    i64::try_from(next).map_err(io::Error::other)?,
                    libc::SEEK_SET,
                )?;
            }
        }
        Ok(n)
    }

    /// Whether the file was opened with `O_APPEND`.
    fn appends(&self) -> io::Result<bool> {
        // SAFETY: F_GETFL only reads the open file's flags; the fd is open while `self` is.
        let flags = unsafe { libc::fcntl(self.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(flags & libc::O_APPEND != 0)
    }
}

/// `lseek(2)`: the new position, or `None` when the file has none (`ESPIPE`).
fn lseek(fd: RawFd, offset: i64, whence: i32) -> io::Result<Option<u64>> {
    // SAFETY: lseek reads and moves the position of an open file and touches no memory.
    let position = unsafe { libc::lseek(fd, offset, whence) };
    if position >= 0 {
        return Ok(Some(position as u64));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESPIPE) {
        Ok(None)
    } else {
        Err(err)
    }
}

impl Read for &File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !crate::thread::is_green() {
            let _position = self
                .position
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return (&self.inner).read(buf);
        }
        self.at_position(false, |offset| {
            ops::read_at(self.as_raw_fd(), buf, offset).unwrap_or_else(|| match offset {
                AT_POSITION => (&self.inner).read(buf),
                offset => std::os::unix::fs::FileExt::read_at(&self.inner, buf, offset),
            })
        })
    }
}

impl Write for &File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() <= INLINE_WRITE_MAX || !crate::thread::is_green() {
            let _position = self
                .position
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return (&self.inner).write(buf);
        }
        self.at_position(true, |offset| {
            ops::write_at(self.as_raw_fd(), buf, offset).unwrap_or_else(|| match offset {
                AT_POSITION => (&self.inner).write(buf),
                offset => std::os::unix::fs::FileExt::write_at(&self.inner, buf, offset),
            })
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let _position = self
            .position
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (&self.inner).seek(pos)
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

impl From<std::fs::File> for File {
    fn from(inner: std::fs::File) -> File {
        File {
            inner,
            position: Arc::new(Mutex::new(())),
        }
    }
}

impl From<File> for std::fs::File {
    fn from(file: File) -> std::fs::File {
        file.inner
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for File {
    unsafe fn from_raw_fd(fd: RawFd) -> File {
        // SAFETY: forwarded: the caller hands us ownership of an open file.
        File::from(unsafe { std::fs::File::from_raw_fd(fd) })
    }
}

impl IntoRawFd for File {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_raw_fd()
    }
}

/// How to open a file, like [`std::fs::OpenOptions`] (with `mode` from `OpenOptionsExt`).
#[derive(Debug, Clone)]
#[must_use = "OpenOptions does nothing until `open` is called"]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// All options off; mode 0o666 (less the umask) for created files.
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.write = write;
        self
    }

    /// Open for appending (implies writing).
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.append = append;
        self
    }

    /// Truncate the file to 0 bytes (needs writing).
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.truncate = truncate;
        self
    }

    /// Create the file if it is missing (needs writing or appending).
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.create = create;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.create_new = create_new;
        self
    }

    /// The permission bits of a created file (before the umask).
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.mode = mode;
        self
    }

    /// Opens `path` with these options.
    ///
    /// # Errors
    ///
    /// As std's: `InvalidInput` for contradictory options or a path with a NUL byte,
    /// `NotFound`, `AlreadyExists`, `IsADirectory`, `PermissionDenied`, ...
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let path = path.as_ref();
        if !crate::thread::is_green() {
            return self.to_std().open(path).map(File::from);
        }
        let flags = self.access_mode()? | self.creation_mode()?;
        let path = c_path(path)?;
        let fd = ops::open(&path, flags, self.mode).expect("checked: on a green thread")?;
        // SAFETY: openat returned a fresh descriptor that nothing else owns.
        Ok(File::from(unsafe { std::fs::File::from_raw_fd(fd) }))
    }

    fn to_std(&self) -> std::fs::OpenOptions {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options
            .read(self.read)
            .write(self.write)
            .append(self.append)
            .truncate(self.truncate)
            .create(self.create)
            .create_new(self.create_new)
            .mode(self.mode);
        options
    }

    /// The access flags, with std's checks.
    fn access_mode(&self) -> io::Result<i32> {
        match (self.read, self.write, self.append) {
            (true, false, false) => Ok(libc::O_RDONLY),
            (false, true, false) => Ok(libc::O_WRONLY),
            (true, true, false) => Ok(libc::O_RDWR),
            (false, _, true) => Ok(libc::O_WRONLY | libc::O_APPEND),
            (true, _, true) => Ok(libc::O_RDWR | libc::O_APPEND),
            (false, false, false) => Err(invalid(
                "must specify at least one of read, write, or append access",
            )),
        }
    }

    /// The creation flags, with std's checks.
    fn creation_mode(&self) -> io::Result<i32> {
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) => {
                if self.truncate || self.create || self.create_new {
                    return Err(invalid(
                        "creating or truncating a file requires write or append access",
                    ));
                }
            }
            (_, true) => {
                if self.truncate && !self.create_new {
                    return Err(invalid(
                        "creating or truncating a file requires write or append access",
                    ));
                }
            }
        }
        Ok(match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        })
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// `path` as a C string.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| invalid("file name contained an unexpected NUL byte"))
}

/// Reads a whole file, like [`std::fs::read`].
///
/// # Errors
///
/// As std's.
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size);
    (&file).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a whole file as UTF-8, like [`std::fs::read_to_string`].
///
/// # Errors
///
/// As std's; `InvalidData` if the contents are not UTF-8.
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Writes a whole file, creating or truncating it, like [`std::fs::write`].
///
/// # Errors
///
/// As std's.
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    File::create(path)?.write_all(contents.as_ref())
}

/// Metadata of the file at `path`, following symlinks (std's `stat`).
///
/// # Errors
///
/// As std's.
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    std::fs::metadata(path)
}

/// Removes a file, like [`std::fs::remove_file`].
///
/// # Errors
///
/// As std's.
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    if !crate::thread::is_green() {
        return std::fs::remove_file(path);
    }
    ops::unlink(&c_path(path)?).expect("checked: on a green thread")
}

/// Creates a directory and all missing parents, like [`std::fs::create_dir_all`].
///
/// # Errors
///
/// As std's.
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    if !crate::thread::is_green() {
        return std::fs::create_dir_all(path);
    }
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    match ops::mkdir(&c_path(path)?).expect("checked: on a green thread") {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(_) if path.is_dir() => return Ok(()),
        Err(err) => return Err(err),
    }
    match path.parent() {
        Some(parent) => create_dir_all(parent)?,
        None => return Err(io::Error::other("failed to create whole tree")),
    }
    match ops::mkdir(&c_path(path)?).expect("checked: on a green thread") {
        Ok(()) => Ok(()),
        Err(_) if path.is_dir() => Ok(()),
        Err(err) => Err(err),
    }
}
