//! What a green thread last waited for: the record behind `Runtime::dump` and the
//! monitor's stall reports.
//!
//! The thread itself writes the record, right before it switches away; anyone may read it
//! (relaxed atomics: a reader gets a snapshot whose fields may come from two neighbouring
//! waits, never a torn value). The cost on the switch path is two plain stores, plus one
//! read of the coarse monotonic clock (`vDSO`, no system call, no `rdtsc`) for a wait that
//! is not a yield. Nothing is written when the thread resumes (a store after the switch
//! back cost a park/unpark round trip ~10%, measured): the record keeps the last wait
//! while the thread runs, and whether it runs is read from its worker's carrier.
//!
//! What the thread waits for is known by the blocking call, not by the switch: the sync
//! primitives, `join`, the I/O driver and `sleep` set a *hint* ([`hint`]) for the duration
//! of their wait, and the switch turns the hint (or, without one, the reason of the switch)
//! into the recorded kind.

use std::cell::Cell;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use super::{Suspend, Task};
use crate::sched::current;

/// Kind codes of a wait. `NOT_STARTED` until the thread first runs.
pub(crate) const NOT_STARTED: u8 = 0;
/// Yielded (or rescheduled by the runtime): runnable.
pub(crate) const RUNNABLE: u8 = 1;
/// A bare `park`.
pub(crate) const PARK: u8 = 2;
/// A `Mutex` or `RwLock`.
pub(crate) const LOCK: u8 = 3;
/// A `Semaphore` permit.
pub(crate) const SEMAPHORE: u8 = 4;
/// A `Condvar` (also behind `Barrier`).
pub(crate) const CONDVAR: u8 = 5;
/// Room in a channel.
pub(crate) const CHANNEL_SEND: u8 = 6;
/// A message from a channel.
pub(crate) const CHANNEL_RECV: u8 = 7;
/// A `select` over several channels.
pub(crate) const SELECT: u8 = 8;
/// Another thread's end (`JoinHandle::join`).
pub(crate) const JOIN: u8 = 9;
/// `sleep`; the argument is the deadline.
pub(crate) const SLEEP: u8 = 10;
/// An I/O op; the argument is the fd, the op names its type.
pub(crate) const IO: u8 = 11;
/// No hint: the switch decides.
const NO_HINT: u8 = u8::MAX;

/// The wait record of one thread (see the module documentation).
pub(crate) struct WaitRecord {
    /// Kind code of the current wait, or of the last one while the thread runs. A `u16`
    /// though codes fit a byte: with a `u8` the task's fields packed differently and a
    /// park/unpark round trip on one worker measured ~4% slower.
    state: AtomicU16,
    /// Coarse clock (ns) when the current wait began; 0 when unknown.
    since: AtomicU64,
    /// The fd of an I/O wait, or the deadline of a sleep (ns after [`base`]).
    arg: AtomicU64,
    /// `fn() -> &'static str` naming the op type of an I/O wait (one word: never torn).
    op: AtomicUsize,
    /// What the blocking call in progress waits for; only the thread touches it.
    hint: Cell<u8>,
}

impl WaitRecord {
    pub(crate) fn new() -> WaitRecord {
        WaitRecord {
            state: AtomicU16::new(NOT_STARTED as u16),
            since: AtomicU64::new(0),
            arg: AtomicU64::new(0),
            op: AtomicUsize::new(0),
            hint: Cell::new(NO_HINT),
        }
    }

    /// Records the wait the thread is about to switch away for. Called by the thread
    /// itself.
    #[inline]
    pub(crate) fn suspending(&self, why: Suspend) {
        let hint = self.hint.get();
        let code = match why {
            Suspend::Yield => RUNNABLE,
            Suspend::Timer => SLEEP,
            Suspend::Io => IO,
            Suspend::Park if hint != NO_HINT => hint,
            Suspend::Park => PARK,
        };
        if code != RUNNABLE {
            self.since.store(coarse_now(), Ordering::Relaxed);
        }
        self.state.store(u16::from(code), Ordering::Relaxed);
    }

    /// A snapshot: (kind code, since, arg, op).
    pub(crate) fn read(&self) -> (u8, u64, u64, Option<OpName>) {
        let op = self.op.load(Ordering::Relaxed);
        let op = (op != 0).then(|| {
            // SAFETY: `op` only ever holds 0 or a `fn() -> &'static str` stored by `io`.
            unsafe { std::mem::transmute::<usize, fn() -> &'static str>(op) }
        });
        (
            self.state.load(Ordering::Relaxed) as u8,
            self.since.load(Ordering::Relaxed),
            self.arg.load(Ordering::Relaxed),
            op,
        )
    }
}

/// Names the op type of an I/O wait.
pub(crate) type OpName = fn() -> &'static str;

/// Sets the wait hint of the calling green thread until the guard drops; a no-op off green
/// threads.
pub(crate) struct Hint {
    task: *const Task,
    previous: u8,
}

impl Drop for Hint {
    fn drop(&mut self) {
        // SAFETY: the guard lives on the thread's stack, inside its run, so the task is
        // alive; `hint` is only touched by the thread itself.
        if let Some(task) = unsafe { self.task.as_ref() } {
            task.wait.hint.set(self.previous);
        }
    }
}

/// The calling green thread waits for `code` (a kind code above) until the guard drops.
#[inline]
pub(crate) fn hint(code: u8) -> Hint {
    hint_with(code, |_| {})
}

#[inline]
fn hint_with(code: u8, args: impl FnOnce(&WaitRecord)) -> Hint {
    hint_on(current::task(), code, args)
}

#[inline]
fn hint_on(task: *const Task, code: u8, args: impl FnOnce(&WaitRecord)) -> Hint {
    // SAFETY: `task` is the running task (or null), alive while it runs.
    let previous = match unsafe { task.as_ref() } {
        Some(task) => {
            args(&task.wait);
            task.wait.hint.replace(code)
        }
        None => NO_HINT,
    };
    Hint { task, previous }
}

/// The running green thread `task` (the caller) runs the I/O op `O` on `fd` until the
/// guard drops.
#[inline]
pub(crate) fn io<O>(task: &Task, fd: i32) -> Hint {
    hint_on(task, IO, |wait| {
        wait.arg.store(fd as u32 as u64, Ordering::Relaxed);
        let name: fn() -> &'static str = std::any::type_name::<O>;
        wait.op.store(name as usize, Ordering::Relaxed);
    })
}

/// Records the deadline of the sleep `task` (the calling thread) is about to start.
#[inline]
pub(crate) fn sleeping(task: &Task, deadline: Instant) {
    let nanos = deadline.saturating_duration_since(base()).as_nanos();
    task.wait
        .arg
        .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The deadline recorded by [`sleeping`], from a record's argument.
pub(crate) fn deadline_of(arg: u64) -> Instant {
    base() + std::time::Duration::from_nanos(arg)
}

/// An instant before any deadline the runtime records (the first use of the runtime).
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The coarse monotonic clock in ns (resolution of a scheduler tick, a few ms): read from
/// the vDSO without a system call or a cycle counter read.
pub(crate) fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every
    // Linux greenring runs on.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
