//! The I/O driver: how a green thread makes a blocking call. Every op is a value written
//! once (`op`, one file per family: `net`, `file`, `stream`); one driver ([`run`]) runs them
//! all, on either backend of the worker's reactor; and every wait ends in one suspend path
//! (the running task, its worker, a record registered with the worker, the switch).
//!
//! The driver looks the caller up once per call: the running green thread (`task::current`),
//! and, when it has to wait, its worker (`sched::current`), whose reactor it registers with.
//! It then passes both down; nothing below asks "green thread? which worker?" again.
//!
//! - **io_uring.** The op's SQE is queued on the worker's ring with a [`Completion`] slot on
//!   the thread's stack, and the thread parks until the slot's last CQE (see [`park_on`]);
//!   the worker hands every queued SQE to the kernel in one `io_uring_enter`. An op may
//!   instead be tried first as its non-blocking system call, parking only if that would
//!   block (see below); a recv that just found its socket empty is then queued with the
//!   kernel's poll-first hint, so the kernel arms its poll at once instead of first
//!   repeating the receive that failed.
//! - **epoll.** A socket op makes its non-blocking call, and on `EAGAIN` waits on the
//!   worker's epoll for readiness ([`wait_ready`]) and calls again. File ops, which have no
//!   readiness, run on the blocking pool (`pool`) while the green thread waits.
//! - **Timers.** `sleep` waits in the worker's timer heap, `park_timeout` on a reactor
//!   timer that unparks it (`timer`).
//!
//! # The flow of one blocking operation
//!
//! 1. A green thread on worker W calls e.g. `stream.read(&mut buf)`. `net` builds the op
//!    value, whose pointers (buffer, sockaddr) all point into the caller's frame, and
//!    [`run`] turns it into an SQE and calls [`park_on`].
//! 2. `park_on` puts a [`Completion`] slot on the green thread's stack, queues the SQE,
//!    tagged with the slot's address, on W's ring (no system call yet) and suspends the
//!    thread with `Suspend::Io`. The worker then leaks the thread's run reference into the
//!    slot: the in-flight op owns the thread now, and nothing else can schedule it (a
//!    user's `unpark` only leaves a park token).
//! 3. W runs other threads. Before it looks for the next thread with its queues drained,
//!    and every `SUBMIT_INTERVAL` ticks otherwise, it submits everything queued with one
//!    `io_uring_enter`, and it reaps the completion ring (shared memory, no system call)
//!    at every tick. With nothing left to run or steal it sleeps in `io_uring_enter`,
//!    waiting for one completion; other threads wake it through an eventfd whose read W
//!    keeps in flight.
//! 4. Reaping a CQE stores its result in the slot; once every CQE the slot expects has
//!    arrived, W makes the thread runnable on its own queue.
//! 5. The thread resumes, on W (a started thread never leaves it, unless its runtime
//!    migrates started threads, and never while an op is in flight), and turns the result
//!    into an `io::Result`.
//!
//! # The buffer invariant
//!
//! A green thread never continues past [`park_on`] before *every* CQE of what it submitted
//! has been reaped: the op's, and with a timeout the linked timeout's too (the kernel
//! completes the op with `-ECANCELED` and the timeout with `-ETIME`; the slot counts both).
//! So every pointer an SQE holds stays valid until the kernel is done with it, and callers
//! can hand the kernel plain borrowed slices. A thread in `park_on` cannot be resumed by
//! anything but its last CQE, and its stack is never freed while it is suspended there.
//!
//! # Which form wins on io_uring, per op
//!
//! Measured side by side (`GREENRING_SOCKET_PATH` selects the forms, see `net`) with
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
//! to the worker's other threads every `task::point::CALL_BUDGET` ops.

mod file;
mod net;
mod op;
pub(crate) mod pool;
mod stream;
mod timer;

pub(crate) use self::file::{fsync, ftruncate, mkdir, open, read_at, statx, unlink, write_at, At};
#[cfg(feature = "hooks")]
pub(crate) use self::net::accept_blocking_listener;
pub(crate) use self::net::{accept, connect, recv, recvmsg, recvmsg_flags, send, sendmsg};
#[cfg(feature = "hooks")]
pub(crate) use self::stream::poll_for;
pub(crate) use self::stream::{poll_readable, stream_read, stream_write};
pub(crate) use self::timer::{park_timeout, sleep_until};

use std::io;
use std::time::{Duration, Instant};

use io_uring::squeue::Entry;
use io_uring::types::Timespec;

use self::op::{Op, Wait};
use crate::reactor::{Completion, OpResult, Outcome, Reactor, Readiness, Socket};
use crate::sched::current::WorkerRef;
use crate::task::point::{cancel_point, count_call};
use crate::task::{current, Suspend, Task};

/// `true` when the caller is a green thread that parks to wait (not one that unwinds, which
/// blocks its OS thread instead): [`run`] then never returns `None`, so callers may choose
/// their path by this up front.
pub(crate) fn parks() -> bool {
    current::is_green() && !std::thread::panicking()
}

/// Runs `op` for the calling green thread, with an optional timeout; `None` when the
/// caller should make the ordinary blocking system call instead: off green threads, and on
/// a green thread that unwinds (outside its runtime's shutdown), because switching away
/// would show the panic to the worker's other threads (std's panic count belongs to the OS
/// thread). During a shutdown an unwinding thread's op fails with `ECANCELED` rather than
/// block.
pub(crate) fn run<O: Op>(mut op: O, timeout: Option<Duration>) -> Option<io::Result<usize>> {
    current::with(|task| run_on(task, &mut op, timeout)).flatten()
}

/// [`run`] for the running green thread `task`.
fn run_on<O: Op>(task: &Task, op: &mut O, timeout: Option<Duration>) -> Option<io::Result<usize>> {
    if std::thread::panicking() && !task.is_shutting_down() {
        return None;
    }
    if cancel_point(task) {
        return Some(Err(io::Error::from_raw_os_error(libc::ECANCELED)));
    }
    count_call(task);
    let _wait = crate::task::wait::io::<O>(task, op.socket().fd);
    let worker = crate::sched::current::worker_moving()?;
    Some(match worker.reactor() {
        Reactor::Uring(_) => uring(task, worker, op, timeout),
        Reactor::Epoll(_) => epoll(task, worker, op, timeout),
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
fn uring<O: Op>(
    task: &Task,
    worker: WorkerRef,
    op: &mut O,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let mut empty = false;
    if op.call_first() {
        match call(op) {
            Called::Done(result) => return result,
            Called::WouldBlock => empty = true,
        }
    }
    let timespec = timeout.map(|t| Timespec::from(crate::timeout::saturate(t)));
    let mut worker = Some(worker);
    loop {
        let here = worker.take().or_else(crate::sched::current::worker_moving);
        let here = here.expect("checked: on a green thread");
        // SAFETY: the op value outlives `park_on`, which returns only after every CQE of
        // the entry has been reaped; `timespec` lives until then too.
        let result = unsafe { park_on(task, here, op.entry(empty), timespec.as_ref()) };
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

/// Queues `entry` (and a linked timeout when `timeout` is set) on `worker`'s ring and
/// suspends the running green thread `task` until every CQE has arrived.
///
/// # Safety
///
/// Every pointer in `entry` must stay valid until this returns (it does not return before
/// the kernel is done with them, see the module documentation).
unsafe fn park_on(
    task: &Task,
    worker: WorkerRef,
    entry: Entry,
    timeout: Option<&Timespec>,
) -> OpResult {
    if cancel_point(task) {
        // Unwinding during shutdown: fail rather than block on I/O that will be cancelled.
        return OpResult {
            res: -libc::ECANCELED,
            timed_out: false,
        };
    }
    // The pointer the worker's run reference is given up as, not one derived from `task`:
    // the slot hands it back as that reference.
    let slot = Completion::new(current::ptr(), timeout.is_some());
    // SAFETY: the entries point into the caller's frame (valid until we return) and at
    // `slot` and `timeout`, which live until we return; we return only after every CQE of
    // these entries has been reaped, and we suspend right below.
    unsafe { worker.reactor().ring().queue_op(&slot, entry, timeout) };
    // SAFETY: `task` is the running green thread (the driver's callers pass nothing else).
    unsafe { suspend(task, worker, Suspend::Io) };
    let result = slot.result();
    if result.res == -libc::ECANCELED {
        // The op may have been cancelled by the runtime's shutdown.
        cancel_point(task);
    }
    result
}

/// The epoll backend: the non-blocking call, retried on readiness; pool ops on the pool.
fn epoll<O: Op>(
    task: &Task,
    worker: WorkerRef,
    op: &mut O,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let write = match O::WAIT {
        Wait::Pool => {
            drop(worker);
            return pool::run_op(op);
        }
        Wait::Readable => false,
        Wait::Writable => true,
    };
    let deadline = timeout.and_then(crate::timeout::deadline_after);
    let mut worker = Some(worker);
    loop {
        if let Called::Done(result) = call(op) {
            return result;
        }
        let here = worker.take().or_else(crate::sched::current::worker_moving);
        let here = here.expect("checked: on a green thread");
        match wait_ready(task, here, op.socket(), write, deadline)? {
            Outcome::Ready | Outcome::Pending => {}
            Outcome::TimedOut => return Err(O::TIMEOUT.error()),
            Outcome::Cancelled => {
                cancel_point(task);
                return Err(io::Error::from_raw_os_error(libc::ECANCELED));
            }
            Outcome::Closed => return Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }
}

/// Suspends the running green thread `task` until `socket` is readable (writable with
/// `write`), the deadline passes or the runtime shuts down.
fn wait_ready(
    task: &Task,
    worker: WorkerRef,
    socket: Socket<'_>,
    write: bool,
    deadline: Option<Instant>,
) -> io::Result<Outcome> {
    // The pointer the worker's run reference is given up as (see `park_on`).
    let slot = Readiness::new(current::ptr());
    let Reactor::Epoll(epoll) = worker.reactor() else {
        unreachable!("the epoll backend runs on epoll reactors");
    };
    // SAFETY: `slot` is on our stack and we suspend with `Suspend::Io` right below; only the
    // reactor's completion of the slot resumes us.
    unsafe { epoll.register(&slot, socket, write, deadline)? };
    // SAFETY: `task` is the running green thread (the driver's callers pass nothing else).
    unsafe { suspend(task, worker, Suspend::Io) };
    Ok(slot.outcome())
}

/// The one way a green thread waits for something registered with its worker (an op, a
/// readiness wait, a timer-heap entry): keeps `worker` from being handed to another OS
/// thread until the switch is done (only this worker's loop may complete the record,
/// after the switch), and switches away as `why`.
///
/// # Safety
///
/// `task` is the running green thread, and this runs on its stack.
unsafe fn suspend(task: &Task, worker: WorkerRef, why: Suspend) {
    worker.hold_across_suspend();
    // SAFETY: forwarded from the caller.
    unsafe { task.suspend(why) };
}
