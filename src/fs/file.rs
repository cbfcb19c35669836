//! [`File`]: its reads and writes, at an explicit offset or at the file position; its
//! syncs, `set_len` and `metadata`; the conversions to and from std's `File` and raw fds.
//! Reads, writes and seeks at the position hold a position lock that a handle shares with
//! its clones, and run at the offset they look up under it (see "The file position" in the
//! `fs` module documentation). The advisory locks are in `lock.rs`.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use super::ops::{self, At};
use super::{blocking, FileTimes, Metadata, OpenOptions, Permissions, INLINE_WRITE_MAX};
use crate::sync::Mutex;

/// An open file, like [`std::fs::File`].
#[derive(Debug)]
pub struct File {
    pub(super) inner: std::fs::File,
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
        let flags = crate::sys::get_flags(self.as_raw_fd());
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
