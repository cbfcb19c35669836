//! Advisory locks on a [`File`] (`flock(2)`), like std's (Rust 1.89). The lock belongs to
//! the open file, so it is shared by a handle and its `try_clone`s. Only the waiting calls
//! ([`File::lock`], [`File::lock_shared`]) go to the blocking pool on a green thread; the
//! `try_` calls and [`File::unlock`] never wait, so they are the plain system call.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::{blocking, File};

impl File {
    /// Takes an exclusive advisory lock on the file (`flock`), waiting while another open
    /// file holds a lock on it, like std's `File::lock` (Rust 1.89).
    ///
    /// On a green thread the wait runs on the blocking pool and parks only the caller; it
    /// is not a cancellation point (see the module documentation).
    ///
    /// The lock belongs to the open file: it is shared with this handle's clones and
    /// released by [`unlock`](File::unlock) or when the last of them closes.
    ///
    /// # Errors
    ///
    /// As std's (`flock` fails on some file systems).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenring::fs::{File, TryLockError};
    ///
    /// # let path = std::env::temp_dir().join(format!("greenring-doc-lock-{}", std::process::id()));
    /// let first = File::create(&path)?;
    /// let second = File::open(&path)?;
    /// first.lock()?;
    /// assert!(matches!(second.try_lock_shared(), Err(TryLockError::WouldBlock)));
    /// first.unlock()?;
    /// second.try_lock_shared()?;
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(&self) -> io::Result<()> {
        let fd = self.as_raw_fd();
        blocking(|| flock(fd, libc::LOCK_EX))
    }

    /// Takes a shared advisory lock on the file (`flock`), waiting while another open file
    /// holds an exclusive one, like std's `File::lock_shared`; see [`File::lock`].
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn lock_shared(&self) -> io::Result<()> {
        let fd = self.as_raw_fd();
        blocking(|| flock(fd, libc::LOCK_SH))
    }

    /// Takes an exclusive advisory lock if no other open file holds a lock, like std's
    /// `File::try_lock`. Never waits.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] when another open file holds a lock;
    /// [`TryLockError::Error`] as std's.
    pub fn try_lock(&self) -> Result<(), TryLockError> {
        try_flock(self.as_raw_fd(), libc::LOCK_EX)
    }

    /// Takes a shared advisory lock if no other open file holds an exclusive one, like
    /// std's `File::try_lock_shared`. Never waits.
    ///
    /// # Errors
    ///
    /// As [`File::try_lock`].
    pub fn try_lock_shared(&self) -> Result<(), TryLockError> {
        try_flock(self.as_raw_fd(), libc::LOCK_SH)
    }

    /// Releases the open file's advisory lock, like std's `File::unlock`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn unlock(&self) -> io::Result<()> {
        flock(self.as_raw_fd(), libc::LOCK_UN)
    }
}

/// `flock(2)` with `operation`, retried when a signal interrupts it.
fn flock(fd: RawFd, operation: i32) -> io::Result<()> {
    loop {
        // SAFETY: flock takes or drops a lock on an open file and touches no memory.
        if unsafe { libc::flock(fd, operation) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `flock(2)` with `operation | LOCK_NB`.
fn try_flock(fd: RawFd, operation: i32) -> Result<(), TryLockError> {
    match flock(fd, operation | libc::LOCK_NB) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Err(TryLockError::WouldBlock),
        Err(err) => Err(TryLockError::Error(err)),
    }
}

/// Why [`File::try_lock`] or [`File::try_lock_shared`] did not take the lock, like std's
/// `std::fs::TryLockError` (Rust 1.89).
#[derive(Debug)]
pub enum TryLockError {
    /// The lock could not be taken for another reason.
    Error(io::Error),
    /// Another open file holds a conflicting lock.
    WouldBlock,
}

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::Error(_) => f.write_str("lock acquisition failed due to I/O error"),
            TryLockError::WouldBlock => {
                f.write_str("lock acquisition failed because the operation would block")
            }
        }
    }
}

impl std::error::Error for TryLockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TryLockError::Error(err) => Some(err),
            TryLockError::WouldBlock => None,
        }
    }
}

impl From<TryLockError> for io::Error {
    fn from(err: TryLockError) -> io::Error {
        match err {
            TryLockError::Error(err) => err,
            TryLockError::WouldBlock => io::ErrorKind::WouldBlock.into(),
        }
    }
}
