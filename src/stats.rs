//! Per-worker counters behind `Runtime::metrics`: a leaf the reactor and the scheduler
//! both count into.
//!
//! Each counter has a single writer, the worker's current carrier, so it counts with a
//! plain load and store (no read-modify-write on the hot path); readers on other threads
//! see a recent value.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// A counter written by one thread at a time and read by any.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds one. Only the worker's carrier calls this.
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    /// Adds `n`. Only the worker's carrier calls this.
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Subtracts one (a gauge). Only the worker's carrier calls this.
    pub(crate) fn decr(&self) {
        self.add(u64::MAX);
    }

    /// Sets the value. Only the worker's carrier calls this.
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// What one worker counts. Aligned to its own cache lines (two, for the adjacent-line
/// prefetcher): each worker writes its counters on every park and I/O op, and sharing a
/// line with another worker's counters would turn those writes into cache misses.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct WorkerStats {
    /// Successful steals (each takes up to half a victim's queue).
    pub(crate) steals: Counter,
    /// Green threads that parked on this worker.
    pub(crate) parks: Counter,
    /// Green threads that parked on one of this worker's exiled carriers (a thread that
    /// blocked its OS thread and was left to finish its run there). Counted by those
    /// carriers, several at once, so it is a read-modify-write counter of its own.
    pub(crate) exiled_parks: AtomicU64,
    /// I/O operations handed to the kernel.
    pub(crate) io_submitted: Counter,
    /// I/O completions reaped.
    pub(crate) io_completed: Counter,
    /// `park_timeout` timers (timed waits) pending in this worker's reactor.
    pub(crate) pending_timers: Counter,
    /// Stacks in this worker's own cache.
    pub(crate) cached_stacks: Counter,
    /// Bumped as the runtime enters the kernel for its own work and again as it returns
    /// (see [`in_kernel`]): odd while such a call is in progress. The monitor reads it so
    /// that it never reports the runtime's own time in the kernel, made while a green
    /// thread runs, as that thread blocking the worker.
    pub(crate) in_kernel: Counter,
}

thread_local! {
    /// The counters of the worker this OS thread carries, if it carries one.
    static CARRIED: RefCell<Option<Arc<WorkerStats>>> = const { RefCell::new(None) };
}

/// Records the counters of the worker the calling OS thread starts (`Some`) or stops
/// (`None`) carrying.
pub(crate) fn carry(stats: Option<Arc<WorkerStats>>) {
    CARRIED.with(|carried| *carried.borrow_mut() = stats);
}

/// Makes `call`, a system call the runtime makes for its own work while a green thread
/// runs, inside a span of the carried worker's `in_kernel` counter: a ring submission,
/// mapping stacks for a spawn, creating a socket (the kernel may grow the process's fd
/// table, which waits for an RCU grace period: ~10 ms once the table passes 256, 512, ...
/// fds). Off workers it just calls.
pub(crate) fn in_kernel<T>(call: impl FnOnce() -> T) -> T {
    CARRIED.with(|carried| match &*carried.borrow() {
        Some(stats) => {
            stats.in_kernel.incr();
            let _done = Bump(&stats.in_kernel);
            call()
        }
        None => call(),
    })
}

/// Bumps a counter once more when dropped: the end of a span the counter's odd values mark.
pub(crate) struct Bump<'a>(pub(crate) &'a Counter);

impl Drop for Bump<'_> {
    fn drop(&mut self) {
        self.0.incr();
    }
}
