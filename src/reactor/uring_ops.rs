//! The io_uring backend of [`super::ops`], one function per op.
//!
//! Each returns `None` when the caller is not a green thread (it should then make the
//! ordinary blocking system call) and otherwise the op's outcome. All buffers and addresses
//! are borrowed from the caller: `park_on` does not return before the kernel is done with
//! them.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::types::{Fd, FsyncFlags, Timespec};
use io_uring::{opcode, squeue::Entry};

use super::ops::TimeoutKind;
use super::park_on;

/// Runs `entry` on the current worker's ring; `None` off green threads.
///
/// # Safety
///
/// Every pointer in `entry` stays valid until this returns.
unsafe fn run(
    entry: Entry,
    timeout: Option<Duration>,
    kind: TimeoutKind,
) -> Option<io::Result<i32>> {
    if !crate::sched::current::on_green_thread() {
        return None;
    }
    let timespec = timeout.map(|t| Timespec::from(crate::time::saturate(t)));
    // SAFETY: forwarded; `timespec` lives until `park_on` returns; we are on a green thread.
    let result = unsafe { park_on(entry, timespec.as_ref()) };
    Some(if result.res >= 0 {
        Ok(result.res)
    } else if result.timed_out && result.res == -libc::ECANCELED {
        Err(kind.error())
    } else {
        Err(io::Error::from_raw_os_error(-result.res))
    })
}

/// Runs `entry` until it is not interrupted (`EINTR` is retried, as std does for reads).
///
/// # Safety
///
/// As [`run`].
unsafe fn run_retrying(
    entry: impl Fn() -> Entry,
    timeout: Option<Duration>,
    kind: TimeoutKind,
) -> Option<io::Result<i32>> {
    loop {
        // SAFETY: forwarded from the caller.
        match unsafe { run(entry(), timeout, kind) }? {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return Some(other),
        }
    }
}

/// Clamps a buffer length to what one SQE can carry.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn to_usize(result: Option<io::Result<i32>>) -> Option<io::Result<usize>> {
    result.map(|r| r.map(|n| n as usize))
}

/// `recv(2)` into `buf`.
pub(crate) fn recv(
    fd: RawFd,
    buf: &mut [u8],
    flags: i32,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    let (ptr, len) = (buf.as_mut_ptr(), len_u32(buf.len()));
    // SAFETY: `buf` is borrowed mutably for the whole call.
    to_usize(unsafe {
        run_retrying(
            || opcode::Recv::new(Fd(fd), ptr, len).flags(flags).build(),
            timeout,
            TimeoutKind::WouldBlock,
        )
    })
}

/// `send(2)` of `buf` (with `MSG_NOSIGNAL`, as std does).
pub(crate) fn send(fd: RawFd, buf: &[u8], timeout: Option<Duration>) -> Option<io::Result<usize>> {
    let (ptr, len) = (buf.as_ptr(), len_u32(buf.len()));
    // SAFETY: `buf` is borrowed for the whole call.
    to_usize(unsafe {
        run_retrying(
            || {
                opcode::Send::new(Fd(fd), ptr, len)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            },
            timeout,
            TimeoutKind::WouldBlock,
        )
    })
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
    to_usize(unsafe {
        run_retrying(
            || opcode::RecvMsg::new(Fd(fd), msg).build(),
            timeout,
            TimeoutKind::WouldBlock,
        )
    })
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
    to_usize(unsafe {
        run_retrying(
            || {
                opcode::SendMsg::new(Fd(fd), msg)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
            },
            timeout,
            TimeoutKind::WouldBlock,
        )
    })
}

/// `accept4(2)` with `SOCK_CLOEXEC`, filling `addr`/`len` with the peer's address.
pub(crate) fn accept(
    fd: RawFd,
    addr: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
) -> Option<io::Result<RawFd>> {
    let (addr, len) = (
        (addr as *mut libc::sockaddr_storage).cast(),
        len as *mut libc::socklen_t,
    );
    // SAFETY: `addr` and `len` are borrowed mutably for the whole call.
    unsafe {
        run_retrying(
            || {
                opcode::Accept::new(Fd(fd), addr, len)
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
            },
            None,
            TimeoutKind::WouldBlock,
        )
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
    // SAFETY: forwarded. A connect is not retried on EINTR: the connection attempt goes on
    // in the kernel, as with connect(2) itself.
    let result = unsafe {
        run(
            opcode::Connect::new(Fd(fd), addr, len).build(),
            timeout,
            TimeoutKind::TimedOut,
        )
    };
    result.map(|r| r.map(drop))
}

/// `pread(2)` into `buf` at `offset` (`u64::MAX`: at the file position, advancing it).
pub(crate) fn read_at(fd: RawFd, buf: &mut [u8], offset: u64) -> Option<io::Result<usize>> {
    let (ptr, len) = (buf.as_mut_ptr(), len_u32(buf.len()));
    // SAFETY: `buf` is borrowed mutably for the whole call.
    to_usize(unsafe {
        run_retrying(
            || opcode::Read::new(Fd(fd), ptr, len).offset(offset).build(),
            None,
            TimeoutKind::WouldBlock,
        )
    })
}

/// `pwrite(2)` of `buf` at `offset` (`u64::MAX`: at the file position, advancing it).
pub(crate) fn write_at(fd: RawFd, buf: &[u8], offset: u64) -> Option<io::Result<usize>> {
    let (ptr, len) = (buf.as_ptr(), len_u32(buf.len()));
    // SAFETY: `buf` is borrowed for the whole call.
    to_usize(unsafe {
        run_retrying(
            || opcode::Write::new(Fd(fd), ptr, len).offset(offset).build(),
            None,
            TimeoutKind::WouldBlock,
        )
    })
}

/// `fsync(2)`, or `fdatasync(2)` when `data_only`.
pub(crate) fn fsync(fd: RawFd, data_only: bool) -> Option<io::Result<()>> {
    let flags = if data_only {
        FsyncFlags::DATASYNC
    } else {
        FsyncFlags::empty()
    };
    // SAFETY: the op holds no pointers.
    let result = unsafe {
        run_retrying(
            || opcode::Fsync::new(Fd(fd)).flags(flags).build(),
            None,
            TimeoutKind::WouldBlock,
        )
    };
    result.map(|r| r.map(drop))
}

/// `openat(2)` relative to the working directory, with `O_CLOEXEC` added.
pub(crate) fn open(path: &CStr, flags: i32, mode: libc::mode_t) -> Option<io::Result<RawFd>> {
    let ptr = path.as_ptr();
    // SAFETY: `path` is borrowed for the whole call.
    unsafe {
        run_retrying(
            || {
                opcode::OpenAt::new(Fd(libc::AT_FDCWD), ptr)
                    .flags(flags | libc::O_CLOEXEC)
                    .mode(mode)
                    .build()
            },
            None,
            TimeoutKind::WouldBlock,
        )
    }
}

/// `unlinkat(2)` relative to the working directory.
pub(crate) fn unlink(path: &CStr) -> Option<io::Result<()>> {
    let ptr = path.as_ptr();
    // SAFETY: `path` is borrowed for the whole call.
    let result = unsafe {
        run_retrying(
            || opcode::UnlinkAt::new(Fd(libc::AT_FDCWD), ptr).build(),
            None,
            TimeoutKind::WouldBlock,
        )
    };
    result.map(|r| r.map(drop))
}

/// `mkdirat(2)` relative to the working directory, mode 0o777 (less the umask).
pub(crate) fn mkdir(path: &CStr) -> Option<io::Result<()>> {
    let ptr = path.as_ptr();
    // SAFETY: `path` is borrowed for the whole call.
    let result = unsafe {
        run_retrying(
            || {
                opcode::MkDirAt::new(Fd(libc::AT_FDCWD), ptr)
                    .mode(0o777)
                    .build()
            },
            None,
            TimeoutKind::WouldBlock,
        )
    };
    result.map(|r| r.map(drop))
}
