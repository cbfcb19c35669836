//! The blocking operations of `net` and `fs`: the one API both reactor backends implement.
//!
//! Each function returns `None` when the caller is not a green thread (it should then make
//! the ordinary blocking system call) and otherwise the op's outcome, from the backend of
//! the caller's runtime: io_uring ([`super::uring_ops`]) or epoll ([`super::epoll_ops`]).
//! All buffers and addresses are borrowed from the caller, and no backend returns before
//! the kernel is done with them.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{epoll_ops, uring_ops, IoBackend};

/// How an expired timeout is reported, mirroring std on Linux.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TimeoutKind {
    /// Socket read/write timeouts: `EAGAIN`, i.e. `ErrorKind::WouldBlock` (as std's
    /// `SO_RCVTIMEO`/`SO_SNDTIMEO`).
    WouldBlock,
    /// `connect_timeout`: `ErrorKind::TimedOut`.
    TimedOut,
}

impl TimeoutKind {
    /// The error for an expired timeout of this kind.
    pub(crate) fn error(self) -> io::Error {
        match self {
            TimeoutKind::WouldBlock => io::Error::from_raw_os_error(libc::EAGAIN),
            TimeoutKind::TimedOut => {
                io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
            }
        }
    }
}

/// The backend of the calling green thread's runtime; `None` off green threads, and on a
/// green thread that unwinds (outside its runtime's shutdown): switching away would show
/// the panic to the worker's other green threads (std's panic count belongs to the OS
/// thread), so its I/O blocks the OS thread with the ordinary system call instead. During
/// a shutdown the backend fails such a call with `ECANCELED` rather than block.
fn backend() -> Option<IoBackend> {
    let task = crate::sched::current::task();
    // SAFETY: the running task is alive while it runs.
    let task = unsafe { task.as_ref() }?;
    if std::thread::panicking() && !task.runtime.is_shutting_down() {
        return None;
    }
    Some(task.runtime.io_backend())
}

/// `recv(2)` into `buf`.
pub(crate) fn recv(
    fd: RawFd,
    buf: &mut [u8],
    flags: i32,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::recv(fd, buf, flags, timeout),
        IoBackend::Epoll => Some(epoll_ops::recv(fd, buf, flags, timeout)),
    }
}

/// `send(2)` of `buf` (with `MSG_NOSIGNAL`, as std does).
pub(crate) fn send(fd: RawFd, buf: &[u8], timeout: Option<Duration>) -> Option<io::Result<usize>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::send(fd, buf, timeout),
        IoBackend::Epoll => Some(epoll_ops::send(fd, buf, timeout)),
    }
}

/// `recvmsg(2)`.
///
/// # Safety
///
/// `msg` and everything it points to (iovecs, buffers, name) stay valid for the call.
pub(crate) unsafe fn recvmsg(
    fd: RawFd,
    msg: *mut libc::msghdr,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    // SAFETY: forwarded from the caller.
    unsafe {
        match backend()? {
            IoBackend::IoUring => uring_ops::recvmsg(fd, msg, timeout),
            IoBackend::Epoll => Some(epoll_ops::recvmsg(fd, msg, timeout)),
        }
    }
}

/// `sendmsg(2)` (with `MSG_NOSIGNAL`).
///
/// # Safety
///
/// `msg` and everything it points to stay valid for the call.
pub(crate) unsafe fn sendmsg(
    fd: RawFd,
    msg: *const libc::msghdr,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    // SAFETY: forwarded from the caller.
    unsafe {
        match backend()? {
            IoBackend::IoUring => uring_ops::sendmsg(fd, msg, timeout),
            IoBackend::Epoll => Some(epoll_ops::sendmsg(fd, msg, timeout)),
        }
    }
}

/// `accept4(2)` with `SOCK_CLOEXEC`, filling `addr`/`len` with the peer's address.
pub(crate) fn accept(
    fd: RawFd,
    addr: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
) -> Option<io::Result<RawFd>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::accept(fd, addr, len),
        IoBackend::Epoll => Some(epoll_ops::accept(fd, addr, len)),
    }
}

/// `connect(2)` to `addr`, with an optional timeout (reported as `TimedOut`).
///
/// # Safety
///
/// `addr` points to `len` valid bytes of a socket address for the whole call.
pub(crate) unsafe fn connect(
    fd: RawFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    timeout: Option<Duration>,
) -> Option<io::Result<()>> {
    // SAFETY: forwarded from the caller.
    unsafe {
        match backend()? {
            IoBackend::IoUring => uring_ops::connect(fd, addr, len, timeout),
            IoBackend::Epoll => Some(epoll_ops::connect(fd, addr, len, timeout)),
        }
    }
}

/// `pread(2)` into `buf` at `offset` (`u64::MAX`: at the file position, advancing it).
pub(crate) fn read_at(fd: RawFd, buf: &mut [u8], offset: u64) -> Option<io::Result<usize>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::read_at(fd, buf, offset),
        IoBackend::Epoll => Some(epoll_ops::read_at(fd, buf, offset)),
    }
}

/// `pwrite(2)` of `buf` at `offset` (`u64::MAX`: at the file position, advancing it).
pub(crate) fn write_at(fd: RawFd, buf: &[u8], offset: u64) -> Option<io::Result<usize>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::write_at(fd, buf, offset),
        IoBackend::Epoll => Some(epoll_ops::write_at(fd, buf, offset)),
    }
}

/// `fsync(2)`, or `fdatasync(2)` when `data_only`.
pub(crate) fn fsync(fd: RawFd, data_only: bool) -> Option<io::Result<()>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::fsync(fd, data_only),
        IoBackend::Epoll => Some(epoll_ops::fsync(fd, data_only)),
    }
}

/// `openat(2)` relative to the working directory, with `O_CLOEXEC` added.
pub(crate) fn open(path: &CStr, flags: i32, mode: libc::mode_t) -> Option<io::Result<RawFd>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::open(path, flags, mode),
        IoBackend::Epoll => Some(epoll_ops::open(path, flags, mode)),
    }
}

/// `unlinkat(2)` relative to the working directory.
pub(crate) fn unlink(path: &CStr) -> Option<io::Result<()>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::unlink(path),
        IoBackend::Epoll => Some(epoll_ops::unlink(path)),
    }
}

/// `mkdirat(2)` relative to the working directory, mode 0o777 (less the umask).
pub(crate) fn mkdir(path: &CStr) -> Option<io::Result<()>> {
    match backend()? {
        IoBackend::IoUring => uring_ops::mkdir(path),
        IoBackend::Epoll => Some(epoll_ops::mkdir(path)),
    }
}
