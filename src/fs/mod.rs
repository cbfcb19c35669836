//! Files, shaped like [`std::fs`], whose reads, writes, syncs and opens park only the
//! calling green thread.
//!
//! On a green thread `open`, `read`, `write`, `read_at`, `write_at`, `sync_all`,
//! `sync_data`, `set_len`, `remove_file` and `create_dir_all` run as io_uring ops on the
//! caller's own buffers (on the epoll backend, as their system calls on the blocking pool);
//! off green threads they are the std calls. Writes of up to [`INLINE_WRITE_MAX`]
//! bytes are the plain system call on green threads too: a buffered write is a copy into
//! the page cache, and io_uring cannot do it without blocking on ext4, so it hands it to a
//! kernel worker thread (measured here: 70 us per 29-byte append through io_uring, 2 us
//! with `write`). A write that does block (dirty-page throttling, `O_DIRECT`) holds the
//! worker; past 10 ms the hand-off monitor moves the worker's other green threads away.
//! Seeking is std's call everywhere (an `lseek` does not wait for the device).
//!
//! # Metadata
//!
//! A `stat` walks the path and may wait for the disk (a cold inode cache) or the server
//! (NFS), so on a green thread [`metadata`], [`symlink_metadata`] and [`File::metadata`]
//! run std's own call on the blocking pool, on both backends, and return std's
//! [`Metadata`]. io_uring's `IORING_OP_STATX` fills a `statx` buffer, and std's
//! `Metadata` (like its `FileType`) cannot be built from one; a `Metadata` of greenring's
//! own would differ from the one [`DirEntry::metadata`] returns and from what every crate
//! that takes a `&std::fs::Metadata` expects, so porting would stop being an import change.
//! It would not be faster either: the kernel always hands `IORING_OP_STATX` to its own
//! worker threads (io-wq), a hop like the pool's. Where only the existence or the type of
//! a file is needed ([`exists`], and the checks inside [`create_dir_all`]) greenring
//! issues `statx` itself: `IORING_OP_STATX` on io_uring, the blocking pool on epoll.
//! [`read`] sizes its buffer with a plain `statx` of the file it just opened (whose inode
//! is in memory), as std does.
//!
//! [`File::set_len`] is `IORING_OP_FTRUNCATE` where the kernel has it (Linux 6.9; each
//! ring probes its opcodes once, with `io_uring_register_probe`, when it is set up), and
//! std's call on the blocking pool otherwise and on epoll.
//!
//! # Kernel requirements
//!
//! The io_uring backend needs Linux 5.18 (its rings are set up with
//! `IORING_SETUP_SUBMIT_ALL`), and every opcode this module relies on is older:
//! `IORING_OP_OPENAT`, `READ`, `WRITE` and `STATX` (5.6), `FSYNC` (5.1), `UNLINKAT`
//! (5.11) and `MKDIRAT` (5.15). The one newer opcode, `IORING_OP_FTRUNCATE` (6.9), is
//! used only where the probe finds it.
//!
//! # Directories, links, copies and locks
//!
//! Calls that walk or change the directory tree ([`read_dir`], [`rename`], [`copy`],
//! [`remove_dir`], [`remove_dir_all`], [`canonicalize`], [`hard_link`], [`read_link`],
//! [`set_permissions`], [`DirBuilder::create`]) and the waiting [`File::lock`] and
//! [`File::lock_shared`] run on the blocking pool (see [`crate::spawn_blocking`]) when
//! called on a green thread, which waits parked meanwhile; off green threads they are the
//! std calls. [`create_dir`] is an io_uring op like [`create_dir_all`]. The calls that set
//! attributes of an open file ([`File::set_permissions`], [`File::set_times`],
//! [`File::set_modified`]) and the non-waiting [`File::try_lock`] and [`File::unlock`] are
//! std's (or the plain system call) everywhere: they change an inode already in memory.
//!
//! A wait on the blocking pool is not a cancellation point: the pool thread works on the
//! caller's buffers and paths, so a green thread in [`File::lock`] waits for the lock even
//! while its runtime shuts down.
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

use crate::reactor::ops::{self, At};
use crate::sync::Mutex;

mod dir;
mod lock;
mod open;
mod path;

pub use self::dir::{read_dir, DirBuilder, ReadDir};
pub use self::lock::TryLockError;
pub use self::open::OpenOptions;
pub use self::path::{
    canonicalize, copy, create_dir, create_dir_all, exists, hard_link, metadata, read, read_link,
    read_to_string, remove_dir, remove_dir_all, remove_file, rename, set_permissions,
    symlink_metadata, write,
};

/// std's, re-exported so every `std::fs` path resolves here. A [`DirEntry`]'s `metadata`
/// is a plain `statx` and its `file_type` usually needs no system call at all.
pub use std::fs::{DirEntry, FileTimes, FileType, Metadata, Permissions};

/// Writes up to this many bytes are made with a plain `write`/`pwrite` (see the module
/// documentation); larger ones go through io_uring.
pub const INLINE_WRITE_MAX: usize = 64 * 1024;

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
        match ops::read_at(self.as_raw_fd(), buf, At::Offset(offset)) {
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
        match ops::write_at(self.as_raw_fd(), buf, At::Offset(offset)) {
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
        // Past i64::MAX std reports its own InvalidInput error.
        if i64::try_from(size).is_ok() {
            if let Some(result) = ops::ftruncate(self.as_raw_fd(), size) {
                return result;
            }
        }
        blocking(|| self.inner.set_len(size))
    }

    /// The file's metadata (std's type, from std's call on the blocking pool; see the
    /// module documentation).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn metadata(&self) -> io::Result<Metadata> {
        blocking(|| self.inner.metadata())
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

    /// Opens a new file for reading and writing, failing with `AlreadyExists` if it
    /// exists, like [`std::fs::File::create_new`].
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    /// Changes the file's permissions (`fchmod`).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_permissions(&self, permissions: Permissions) -> io::Result<()> {
        self.inner.set_permissions(permissions)
    }

    /// Sets the file's access and modification times (`futimens`).
    ///
    /// # Errors
    ///
    /// As std's.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use greenring::fs::{File, FileTimes};
    ///
    /// # let path = std::env::temp_dir().join(format!("greenring-doc-times-{}", std::process::id()));
    /// let file = File::create(&path)?;
    /// let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    /// file.set_times(FileTimes::new().set_modified(then))?;
    /// assert_eq!(file.metadata()?.modified()?, then);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_times(&self, times: FileTimes) -> io::Result<()> {
        self.inner.set_times(times)
    }

    /// Sets the file's modification time, as `set_times` with only that time.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_modified(&self, time: std::time::SystemTime) -> io::Result<()> {
        self.inner.set_modified(time)
    }

    /// Runs `op` at the file position, holding the position lock, and moves the position
    /// past the bytes it transferred. `op` gets an explicit offset, or [`At::Position`] for
    /// a file that has no position (a pipe, a socket). After a write with `O_APPEND`,
    /// which goes to the end whatever the offset, the position is the end.
    fn at_position(
        &self,
        write: bool,
        op: impl FnOnce(At) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let _position = self
            .position
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fd = self.as_raw_fd();
        let Some(offset) = lseek(fd, 0, libc::SEEK_CUR)? else {
            return op(At::Position);
        };
        let n = op(At::Offset(offset))?;
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
        self.at_position(false, |at| {
            ops::read_at(self.as_raw_fd(), buf, at).unwrap_or_else(|| match at {
                At::Position => (&self.inner).read(buf),
                At::Offset(offset) => std::os::unix::fs::FileExt::read_at(&self.inner, buf, offset),
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
        self.at_position(true, |at| {
            ops::write_at(self.as_raw_fd(), buf, at).unwrap_or_else(|| match at {
                At::Position => (&self.inner).write(buf),
                At::Offset(offset) => {
                    std::os::unix::fs::FileExt::write_at(&self.inner, buf, offset)
                }
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

/// std's positional I/O trait, so ported code that imports it keeps working; its
/// `read_exact_at` and `write_all_at` loop over [`File::read_at`] and [`File::write_at`].
///
/// ```
/// use greenring::os::unix::fs::FileExt;
///
/// # let path = std::env::temp_dir().join(format!("greenring-doc-fileext-{}", std::process::id()));
/// let file = greenring::fs::File::create_new(&path)?;
/// file.write_all_at(b"hello, world", 0)?;
/// let mut word = [0; 5];
/// file.read_exact_at(&mut word, 7)?;
/// assert_eq!(&word, b"world");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl std::os::unix::fs::FileExt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        File::read_at(self, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        File::write_at(self, buf, offset)
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

/// Runs `f` on the blocking pool while the calling green thread waits parked; off green
/// threads (and while unwinding, when a green thread blocks its OS thread anyway) it is a
/// plain call.
pub(crate) fn blocking<R: Send>(f: impl FnOnce() -> io::Result<R> + Send) -> io::Result<R> {
    if crate::thread::is_green() && !std::thread::panicking() {
        crate::blocking::offload(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use crate::runtime::{IoBackend, Runtime};

    /// On a ring whose kernel lacks `IORING_OP_FTRUNCATE` (older than 6.9), `set_len`
    /// runs on the blocking pool instead, with the same outcome.
    #[test]
    fn set_len_without_the_ftruncate_opcode_uses_the_pool() {
        let Ok(rt) = Runtime::builder()
            .worker_threads(1)
            .io_backend(IoBackend::IoUring)
            .build()
        else {
            return; // no io_uring here: nothing to test
        };
        let path =
            std::env::temp_dir().join(format!("greenring-set-len-fallback-{}", std::process::id()));
        let file_path = path.clone();
        let lens = rt.block_on(move || {
            let worker = crate::sched::current::worker_moving().expect("on a green thread");
            let ring = worker.reactor().ring();
            let code = io_uring::opcode::Ftruncate::CODE;
            let probed = ring.supports(code);
            ring.forget_opcode(code);
            assert!(!ring.supports(code));
            drop(worker);
            let file = super::File::create(&file_path).unwrap();
            file.set_len(4096).unwrap();
            let grown = file.metadata().unwrap().len();
            file.set_len(7).unwrap();
            (probed, grown, file.metadata().unwrap().len())
        });
        std::fs::remove_file(&path).unwrap();
        assert_eq!((lens.1, lens.2), (4096, 7));
        eprintln!("IORING_OP_FTRUNCATE probed as supported: {}", lens.0);
    }
}
