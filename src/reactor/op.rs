//! What an op is, and the one driver that runs every op on either backend.
//!
//! An op ([`Op`]) is a value that knows the kernel call it stands for in both of its
//! forms: an io_uring SQE, and the plain system call (non-blocking for sockets). It borrows
//! the caller's buffers and addresses; the green thread's own buffer stays the buffer. The
//! driver ([`run`]) checks once that the caller is a green thread, finds its worker once,
//! and runs the op on that worker's backend:
//!
//! - **io_uring.** The SQE is queued on the worker's ring and the thread parks until its
//!   last CQE (see [`park_on`]); the worker hands every queued SQE to the kernel in one
//!   `io_uring_enter`. An op may instead be tried first as its non-blocking system call,
//!   parking only if that would block (see below); a recv that just found its socket
//!   empty is then queued with the kernel's poll-first hint, so the kernel arms its poll
//!   at once instead of first repeating the receive that failed.
//! - **epoll.** A socket op makes its non-blocking call, and on `EAGAIN` waits on the
//!   worker's epoll for readiness and calls again. File ops, which have no readiness, run
//!   on the blocking pool while the green thread waits.
//!
//! # Which form wins on io_uring, per op
//!
//! Measured side by side (`GREENRING_SOCKET_PATH` selects the forms, see `ops`) with
//! clients in another process on a 2-CPU VM, `compare --load` echo at 64 connections and
//! `wrk` against `examples/http_hello`, alternating rounds:
//! - **send: the SQE.** Trying the send first as a system call saves the SQE round trip
//!   (a switch, the CQE) but costs one system call per send, where the SQEs of all the
//!   worker's threads share one `io_uring_enter`: 1.4-1.6 system calls per echoed message
//!   against 0.8-1.0, and the SQE form served more messages in each echo round (97k
//!   against 82k, 128k against 98k per second); `wrk` could not tell them apart.
//! - **recv: the SQE, without the poll-first hint.** A recv that follows a reply almost
//!   never finds data, so trying it first costs a failed system call per message; the
//!   hint on every recv cost more system calls (1.7 per message against 0.8-1.0: each
//!   completion then comes through deferred poll work, which the worker enters the kernel
//!   to run) and served the fewest messages of the three.
//!
//! Whatever the form, a thread that keeps finding its ops complete without waiting yields
//! to the worker's other threads every [`CALL_BUDGET`] ops.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use io_uring::squeue::Entry;
use io_uring::types::Timespec;

use super::epoll::{Outcome, Readiness};
use super::{park_on, IoBackend, Reactor};
use crate::sched::{cancel_point, current};
use crate::task::{Suspend, Task};

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

/// What an op's system call waits for when it would block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The fd becoming readable (recv, accept).
    Readable,
    /// The fd becoming writable (send, connect).
    Writable,
    /// Nothing the kernel can announce (files): the call runs on the blocking pool.
    Pool,
}

/// The fd of an op, and for a socket the record of which workers' epoll sets hold it
/// (bit `i` for worker `i`), kept by the socket object that owns the fd: an fd leaves
/// every epoll set when it is closed, so a set bit is never stale while the owner lives.
#[derive(Clone, Copy)]
pub(crate) struct Socket<'a> {
    pub(crate) fd: RawFd,
    pub(crate) registered: Option<&'a AtomicU64>,
}

impl<'a> Socket<'a> {
    /// A socket whose owner keeps its epoll registrations in `registered`.
    pub(crate) fn new(fd: RawFd, registered: &'a AtomicU64) -> Socket<'a> {
        Socket {
            fd,
            registered: Some(registered),
        }
    }

    /// A fd without such a record (a fresh socket being connected, a file).
    pub(crate) fn fd(fd: RawFd) -> Socket<'static> {
        Socket {
            fd,
            registered: None,
        }
    }
}

/// One kernel operation, in its two forms.
///
/// # Safety
///
/// Every pointer the SQE of [`Op::entry`] holds, and every pointer [`Op::call`] passes to
/// the kernel, stays valid for as long as the op value lives (the driver keeps the value
/// alive until the kernel is done with it).
pub(crate) unsafe trait Op {
    /// What the system call waits for when it would block.
    const WAIT: Wait;
    /// How an expired timeout is reported.
    const TIMEOUT: TimeoutKind = TimeoutKind::WouldBlock;
    /// `false` for ops that must not be restarted after `EINTR` (a connect goes on in the
    /// kernel).
    const RESTART: bool = true;

    /// The fd the op works on (for readiness waits).
    fn socket(&self) -> Socket<'_>;

    /// `true` when the io_uring backend should try the system call first: it usually
    /// succeeds at once.
    fn call_first(&self) -> bool {
        false
    }

    /// The op as an SQE (without `user_data`: the driver tags it). `empty` is `true` when
    /// the system call just reported `EAGAIN`, so the op will have to wait for readiness.
    fn entry(&mut self, empty: bool) -> Entry;

    /// The system call, non-blocking when the op waits for readiness: the result, or -1
    /// with `errno` set. For [`Wait::Pool`] ops it runs on a pool thread and may block.
    fn call(&mut self) -> isize;
}

/// Runs `op` for the calling green thread, with an optional timeout; `None` when the
/// caller should make the ordinary blocking system call instead: off green threads, and on
/// a green thread that unwinds (outside its runtime's shutdown), because switching away
/// would show the panic to the worker's other threads (std's panic count belongs to the OS
/// thread). During a shutdown an unwinding thread's op fails with `ECANCELED` rather than
/// block.
pub(crate) fn run<O: Op>(mut op: O, timeout: Option<Duration>) -> Option<io::Result<usize>> {
    let task = current::task();
    // SAFETY: the running task is alive while it runs.
    let task = unsafe { task.as_ref() }?;
    if std::thread::panicking() && !task.runtime.is_shutting_down() {
        return None;
    }
    if cancel_point(task) {
        return Some(Err(io::Error::from_raw_os_error(libc::ECANCELED)));
    }
    crate::sched::count_call(task);
    let _wait = crate::task::wait::io::<O>(task, op.socket().fd);
    Some(match task.runtime.io_backend() {
        IoBackend::IoUring => uring(&mut op, timeout),
        IoBackend::Epoll => epoll(task, &mut op, timeout),
    })
}

/// The outcome of one non-blocking system call.
enum Called {
    Done(io::Result<usize>),
    WouldBlock,
}

/// Calls `op` until it is not interrupted (when it may be restarted).
fn call<O: Op>(op: &mut O) -> Called {
    loop {
        let result = op.call();
        if result >= 0 {
            return Called::Done(Ok(result as usize));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) if O::RESTART => continue,
            Some(libc::EAGAIN) => return Called::WouldBlock,
            _ => return Called::Done(Err(err)),
        }
    }
}

/// The io_uring backend: the call first for ops that usually succeed at once, the SQE
/// otherwise and whenever the call would block.
fn uring<O: Op>(op: &mut O, timeout: Option<Duration>) -> io::Result<usize> {
    let mut empty = false;
    if op.call_first() {
        match call(op) {
            Called::Done(result) => return result,
            Called::WouldBlock => empty = true,
        }
    }
    let timespec = timeout.map(|t| Timespec::from(crate::timeout::saturate(t)));
    loop {
        // SAFETY: the op value outlives `park_on`, which returns only after every CQE of
        // the entry has been reaped; `timespec` lives until then too; we are on a green
        // thread.
        let result = unsafe { park_on(op.entry(empty), timespec.as_ref()) };
        return if result.res >= 0 {
            Ok(result.res as usize)
        } else if result.timed_out && result.res == -libc::ECANCELED {
            Err(O::TIMEOUT.error())
        } else if result.res == -libc::EINTR && O::RESTART {
            continue;
        } else {
            Err(io::Error::from_raw_os_error(-result.res))
        };
    }
}

/// The epoll backend: the non-blocking call, retried on readiness; pool ops on the pool.
fn epoll<O: Op>(task: &Task, op: &mut O, timeout: Option<Duration>) -> io::Result<usize> {
    let write = match O::WAIT {
        Wait::Pool => return on_pool(op),
        Wait::Readable => false,
        Wait::Writable => true,
    };
    let deadline = timeout.and_then(crate::timeout::deadline_after);
    loop {
        if let Called::Done(result) = call(op) {
            return result;
        }
        match wait_ready(task, op.socket(), write, deadline)? {
            Outcome::Ready | Outcome::Pending => {}
            Outcome::TimedOut => return Err(O::TIMEOUT.error()),
            Outcome::Cancelled => {
                cancel_point(task);
                return Err(io::Error::from_raw_os_error(libc::ECANCELED));
            }
        }
    }
}

/// Suspends the calling green thread until `socket` is readable (writable with `write`), the
/// deadline passes or the runtime shuts down.
fn wait_ready(
    task: &Task,
    socket: Socket<'_>,
    write: bool,
    deadline: Option<Instant>,
) -> io::Result<Outcome> {
    // The pointer the worker's run reference was given up as (`TaskRef::as_ptr`), not one
    // derived from `task`: the slot hands it back as that reference.
    let slot = Readiness::new(current::task());
    let worker = current::worker_moving().expect("checked: on a green thread");
    let Reactor::Epoll(epoll) = worker.reactor() else {
        unreachable!("the epoll backend runs on epoll reactors");
    };
    // SAFETY: `slot` is on our stack and we suspend with `Suspend::Io` right below; only the
    // reactor's completion of the slot resumes us.
    unsafe { epoll.register(&slot, socket, write, deadline)? };
    // Only this worker's loop may see the event, after the switch.
    worker.hold_across_suspend();
    // SAFETY: we are that green thread, on its own stack.
    unsafe { task.suspend(Suspend::Io) };
    Ok(slot.outcome())
}

/// A pointer the pool thread uses while the green thread that lent it waits.
struct Lent<T>(*mut T);
// SAFETY: the op stays valid and untouched by its green thread until the pool thread is
// done with it (`blocking::offload` returns only then), so using it there is a hand-over.
unsafe impl<T> Send for Lent<T> {}

/// Runs `op`'s (blocking) system call on the blocking pool; EINTR is retried there.
fn on_pool<O: Op>(op: &mut O) -> io::Result<usize> {
    let lent = Lent(op as *mut O);
    crate::blocking::offload(move || {
        let lent = lent;
        // SAFETY: see `Lent`.
        let op = unsafe { &mut *lent.0 };
        match call(op) {
            Called::Done(result) => result,
            Called::WouldBlock => Err(io::Error::from_raw_os_error(libc::EAGAIN)),
        }
    })
}
