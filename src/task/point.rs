//! Blocking points of the running green thread, and what every one of them shares: the
//! runtime's shutdown unwinds there ([`cancel_point`]), a thread that keeps finding its calls
//! satisfied at once yields there now and then ([`count_call`]), and a thread that unwinds
//! never switches away there (std's panic count belongs to the OS thread, so every green
//! thread run on it meanwhile would see `std::thread::panicking()` and poison its locks).
//!
//! Parking and yielding are written here once; `thread`, `sync`, the I/O driver and the
//! blocking pool all wait through them.

use std::fmt;

use super::{Suspend, Task};

/// The panic payload of a green thread unwound by its runtime's shutdown (see the
/// `runtime` module documentation); `JoinHandle::join` returns it as the `Err` value.
///
/// ```
/// let rt = greenring::Runtime::builder().worker_threads(1).build()?;
/// let sleeper = rt.spawn(|| greenring::time::sleep(std::time::Duration::from_secs(3600)));
/// drop(rt);
/// let payload = sleeper.join().unwrap_err();
/// assert!(payload.is::<greenring::runtime::Cancelled>());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("green thread cancelled: its runtime shut down")
    }
}

/// A blocking point of the running green thread `task`: during its runtime's shutdown it
/// unwinds the thread with [`Cancelled`], unless it is already unwinding (then `true` tells
/// the caller to fail instead of blocking).
pub(crate) fn cancel_point(task: &Task) -> bool {
    if !task.is_shutting_down() {
        return false;
    }
    if std::thread::panicking() {
        return true;
    }
    std::panic::resume_unwind(Box::new(Cancelled));
}

/// Lets the worker of the running green thread `task` run its other threads, then
/// continues: `yield_now` on a green thread. Unwinding, it yields the OS thread instead;
/// during its runtime's shutdown it is a cancellation point.
pub(crate) fn yield_now(task: &Task) {
    if std::thread::panicking() {
        std::thread::yield_now();
        return;
    }
    if cancel_point(task) {
        return;
    }
    // SAFETY: `task` is the running green thread, and this runs on its stack.
    unsafe { task.suspend(Suspend::Yield) };
}

/// Calls a green thread may make in a row without suspending (I/O ops that completed at
/// once, `greenring::sync` calls that did not park) before it yields to its worker's other
/// threads, as a wait would have.
pub(crate) const CALL_BUDGET: u32 = 64;

/// Counts a call of the running green thread `task` at a blocking point that did not
/// suspend it (an I/O op, a `greenring::sync` call, blocking or `try_`); the
/// [`CALL_BUDGET`]-th in a row yields. A thread whose socket always has data or room, or
/// that spins on `try_recv`, thus cannot keep its worker's other threads from running.
/// The yield is a cancellation point during shutdown (see [`yield_now`]); a thread that
/// unwinds does not yield at all (it may not switch, and yielding its OS thread would let
/// none of its worker's threads run).
///
/// Spawns do not count: a spawn is not a blocking point (code may hold a std lock across
/// one, which a spawned thread run by the same worker could then block on, and a spawn
/// must not be a cancellation point nor, in a migrating runtime, a place where a thread
/// changes OS thread).
#[inline]
pub(crate) fn count_call(task: &Task) {
    if !task.count_call(CALL_BUDGET) && !std::thread::panicking() {
        yield_now(task);
    }
}

/// [`count_call`] for the caller if it is a green thread; nothing otherwise.
#[inline]
pub(crate) fn count_current_call() {
    super::current::with(count_call);
}

/// Blocks the running green thread `task` until its unpark token is available, then
/// consumes it: `park` on a green thread. Only the green thread waits; its worker runs
/// others meanwhile. Unwinding, it blocks the OS thread instead of switching away; during
/// its runtime's shutdown it is a cancellation point.
pub(crate) fn park(task: &Task) {
    if task.take_token() {
        return;
    }
    if std::thread::panicking() {
        task.block_os(None);
        return;
    }
    if cancel_point(task) {
        return;
    }
    // SAFETY: `task` is the running green thread, and this runs on its stack.
    unsafe { task.suspend(Suspend::Park) };
}

/// As [`park`], without the cancellation point, for waits that must not unwind (a wait
/// whose work borrows the thread's stack).
pub(crate) fn park_uncancellable(task: &Task) {
    if task.take_token() {
        return;
    }
    if std::thread::panicking() {
        task.block_os(None);
        return;
    }
    // SAFETY: `task` is the running green thread (the caller's contract), and this runs
    // on its stack.
    unsafe { task.suspend(Suspend::Park) };
}
