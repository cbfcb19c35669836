//! The epoll backend of [`super::ops`]: sockets wait for readiness on the worker's epoll
//! instance (see `epoll`); files, which have no readiness, run on the blocking pool.
//!
//! Sockets stay in blocking mode (so plain OS threads can use them as std does): reads and
//! writes pass `MSG_DONTWAIT`, a connect runs on a socket nobody else has seen yet and is
//! made non-blocking for its duration. `accept` cannot be made non-blocking per call: it
//! waits until the listener is readable and accepts right after checking with a zero
//! `poll`; should another thread take the connection in between, the accept blocks this
//! worker until the next one arrives (the monitor moves its threads that have not started
//! to other workers meanwhile).

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::epoll::{Outcome, Readiness};
use super::ops::TimeoutKind;
use super::Reactor;
use crate::sched::{cancel_point, current};
use crate::task::Suspend;

/// Suspends the calling green thread until `fd` is readable (writable with `write`), the
/// deadline passes or the runtime shuts down.
fn wait_ready(fd: RawFd, write: bool, deadline: Option<Instant>) -> io::Result<Outcome> {
    let task = current::task();
    let slot = Readiness::new(task);
    let worker = current::worker_moving().expect("epoll ops run on green threads");
    let Reactor::Epoll(epoll) = worker.reactor() else {
        unreachable!("the epoll backend runs on epoll reactors");
    };
    // SAFETY: `slot` is on our stack and we suspend with `Suspend::Io` right below; only the
    // reactor's completion of the slot resumes us.
    unsafe { epoll.register(&slot, fd, write, deadline)? };
    // Only this worker's loop may see the event, after the switch.
    worker.hold_across_suspend();
    // SAFETY: we are that green thread, on its own stack.
    unsafe { (*task).suspend(Suspend::Io) };
    Ok(slot.outcome())
}

/// Runs `attempt` (a non-blocking system call returning -1 and `errno` on failure) until
/// it does not report `EAGAIN`, waiting for readiness in between.
fn retry(
    fd: RawFd,
    write: bool,
    timeout: Option<Duration>,
    kind: TimeoutKind,
    mut attempt: impl FnMut() -> isize,
) -> io::Result<usize> {
    let task = current::task();
    // SAFETY: on a green thread (the caller's dispatch checked) the task is alive.
    let task = unsafe { &*task };
    if cancel_point(task) {
        return Err(io::Error::from_raw_os_error(libc::ECANCELED));
    }
    let deadline = timeout.and_then(crate::time::deadline_after);
    loop {
        let result = attempt();
        if result >= 0 {
            return Ok(result as usize);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {}
            _ => return Err(err),
        }
        match wait_ready(fd, write, deadline)? {
            Outcome::Ready | Outcome::Pending => {}
            Outcome::TimedOut => return Err(kind.error()),
            Outcome::Cancelled => {
                cancel_point(task);
                return Err(io::Error::from_raw_os_error(libc::ECANCELED));
            }
        }
    }
}

pub(super) fn recv(
    fd: RawFd,
    buf: &mut [u8],
    flags: i32,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    retry(fd, false, timeout, TimeoutKind::WouldBlock, || {
        // SAFETY: `buf` is valid for writes of its length.
        unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags | libc::MSG_DONTWAIT,
            )
        }
    })
}

pub(super) fn send(fd: RawFd, buf: &[u8], timeout: Option<Duration>) -> io::Result<usize> {
    retry(fd, true, timeout, TimeoutKind::WouldBlock, || {
        // SAFETY: `buf` is valid for reads of its length.
        unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        }
    })
}

/// # Safety
///
/// `msg` and everything it points to stay valid for the call.
pub(super) unsafe fn recvmsg(
    fd: RawFd,
    msg: *mut libc::msghdr,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    retry(fd, false, timeout, TimeoutKind::WouldBlock, || {
        // SAFETY: forwarded from the caller.
        unsafe { libc::recvmsg(fd, msg, libc::MSG_DONTWAIT) }
    })
}

/// # Safety
///
/// `msg` and everything it points to stay valid for the call.
pub(super) unsafe fn sendmsg(
    fd: RawFd,
    msg: *const libc::msghdr,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    retry(fd, true, timeout, TimeoutKind::WouldBlock, || {
        // SAFETY: forwarded from the caller.
        unsafe { libc::sendmsg(fd, msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) }
    })
}

/// `true` when `fd` has something to read right now.
fn readable_now(fd: RawFd) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    unsafe { libc::poll(&mut poll, 1, 0) > 0 }
}

pub(super) fn accept(
    fd: RawFd,
    addr: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
) -> io::Result<RawFd> {
    let (addr, len) = (
        (addr as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
        len as *mut libc::socklen_t,
    );
    retry(fd, false, None, TimeoutKind::WouldBlock, || {
        if !readable_now(fd) {
            // SAFETY: setting errno is always allowed.
            unsafe { *libc::__errno_location() = libc::EAGAIN };
            return -1;
        }
        // SAFETY: `addr`/`len` are borrowed mutably by the caller for the whole call.
        unsafe { libc::accept4(fd, addr, len, libc::SOCK_CLOEXEC) as isize }
    })
    .map(|fd| fd as RawFd)
}

/// # Safety
///
/// `addr` points to `len` valid bytes of a socket address for the whole call.
pub(super) unsafe fn connect(
    fd: RawFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    timeout: Option<Duration>,
) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an fd the caller owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = (|| {
        // SAFETY: forwarded from the caller.
        if unsafe { libc::connect(fd, addr, len) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EINPROGRESS | libc::EAGAIN)) {
            return Err(err);
        }
        // Wait until writable, then read the outcome from SO_ERROR.
        let mut first = true;
        retry(fd, true, timeout, TimeoutKind::TimedOut, || {
            if std::mem::take(&mut first) {
                // SAFETY: setting errno is always allowed.
                unsafe { *libc::__errno_location() = libc::EAGAIN };
                return -1;
            }
            0
        })?;
        let mut error: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `error` and `size` are valid for the call.
        let got = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut error as *mut libc::c_int).cast(),
                &mut size,
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        match error {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    })();
    // Back to blocking mode, as the io_uring backend leaves the socket.
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    result
}

/// The result of a file system call run on the blocking pool.
fn on_pool(call: impl FnOnce() -> isize + Send) -> io::Result<usize> {
    crate::blocking::offload(move || {
        let result = call();
        if result < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(result as usize)
        }
    })
}

/// Raw pointers the pool thread uses while the green thread waits for it.
#[derive(Clone, Copy)]
struct Borrowed<T>(T);
// SAFETY: the pointers stay valid until the green thread that lent them resumes, and it
// resumes only after the pool thread is done with them (`blocking::offload`).
unsafe impl<T> Send for Borrowed<T> {}

pub(super) fn read_at(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let (ptr, len) = (Borrowed(buf.as_mut_ptr()), buf.len());
    on_pool(move || {
        let ptr = ptr;
        // SAFETY: `buf` is borrowed mutably by the waiting caller.
        unsafe {
            if offset == u64::MAX {
                libc::read(fd, ptr.0.cast(), len)
            } else {
                libc::pread(fd, ptr.0.cast(), len, offset as libc::off_t)
            }
        }
    })
}

pub(super) fn write_at(fd: RawFd, buf: &[u8], offset: u64) -> io::Result<usize> {
    let (ptr, len) = (Borrowed(buf.as_ptr()), buf.len());
    on_pool(move || {
        let ptr = ptr;
        // SAFETY: `buf` is borrowed by the waiting caller.
        unsafe {
            if offset == u64::MAX {
                libc::write(fd, ptr.0.cast(), len)
            } else {
                libc::pwrite(fd, ptr.0.cast(), len, offset as libc::off_t)
            }
        }
    })
}

pub(super) fn fsync(fd: RawFd, data_only: bool) -> io::Result<()> {
    on_pool(move || {
        // SAFETY: no pointers.
        (unsafe {
            if data_only {
                libc::fdatasync(fd)
            } else {
                libc::fsync(fd)
            }
        }) as isize
    })
    .map(drop)
}

pub(super) fn open(path: &CStr, flags: i32, mode: libc::mode_t) -> io::Result<RawFd> {
    let path = Borrowed(path.as_ptr());
    on_pool(move || {
        let path = path;
        // SAFETY: `path` is a NUL-terminated string borrowed by the waiting caller.
        (unsafe { libc::open(path.0, flags | libc::O_CLOEXEC, mode as libc::c_uint) }) as isize
    })
    .map(|fd| fd as RawFd)
}

pub(super) fn unlink(path: &CStr) -> io::Result<()> {
    let path = Borrowed(path.as_ptr());
    on_pool(move || {
        let path = path;
        // SAFETY: as in `open`.
        (unsafe { libc::unlink(path.0) }) as isize
    })
    .map(drop)
}

pub(super) fn mkdir(path: &CStr) -> io::Result<()> {
    let path = Borrowed(path.as_ptr());
    on_pool(move || {
        let path = path;
        // SAFETY: as in `open`.
        (unsafe { libc::mkdir(path.0, 0o777) }) as isize
    })
    .map(drop)
}
