//! Per-worker counters behind `Runtime::metrics`: a leaf the reactor and the scheduler
//! both count into.
//!
//! Each counter has a single writer, the worker's current carrier, so it counts with a
//! plain load and store (no read-modify-write on the hot path); readers on other threads
//! see a recent value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}
