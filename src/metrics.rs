//! [`Runtime::metrics`](crate::Runtime::metrics): what a runtime is doing, for dashboards
//! and for tests.

use std::sync::atomic::Ordering::Relaxed;

use crate::sched::Shared;

/// A snapshot of a runtime's counters. Counters only grow; gauges (`live_threads`,
/// `queue_depth`, stacks) are the value at the time of the call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Green threads spawned and not yet finished.
    pub live_threads: usize,
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerMetrics>,
    /// Runnable green threads in the shared injector (woken or spawned from outside the
    /// workers), not yet taken by a worker.
    pub injector_depth: usize,
    /// Green-thread stacks currently mapped (in use, pooled, or leaked with an abandoned
    /// thread).
    pub stacks_mapped: usize,
    /// Mapped stacks waiting for reuse (the shared pool plus the workers' caches).
    pub stacks_pooled: usize,
    /// Times the monitor moved a stuck worker to a new OS thread (only in a runtime that
    /// migrates started threads).
    pub handoffs: u64,
    /// Extra workers running now (see
    /// [`Builder::max_extra_workers`](crate::runtime::Builder::max_extra_workers)). A
    /// gauge.
    pub extra_workers: usize,
    /// Extra workers started so far.
    pub extra_workers_started: u64,
    /// The I/O backend the workers use.
    pub io_backend: Option<crate::reactor::IoBackend>,
    /// How the workers' io_uring rings are set up (`None` on the epoll backend).
    pub io_uring_setup: Option<crate::reactor::UringSetup>,
    /// Whether started green threads may change OS thread (see
    /// [`Builder::migrate_started_threads`](crate::runtime::Builder::migrate_started_threads)).
    pub migrates_started_threads: bool,
}

/// Entries of [`Runtime::stack_histogram`](crate::Runtime::stack_histogram): up to 1, 2,
/// 4, ... 512 pages, and more.
pub const STACK_BUCKETS: usize = 11;

/// One worker's part of [`Metrics`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Runnable green threads waiting in this worker's queues.
    pub queue_depth: usize,
    /// Successful steals by this worker (each takes up to half of another's queue).
    pub steals: u64,
    /// Green threads that parked while running on this worker (or on an OS thread it
    /// left behind to a thread that blocked it, see `Builder::handoff_threshold`).
    pub parks: u64,
    /// I/O operations this worker handed to the kernel.
    pub io_submitted: u64,
    /// I/O operations whose completion this worker received.
    pub io_completed: u64,
    /// Timers of timed waits (`park_timeout`, `recv_timeout`, `Condvar::wait_timeout`,
    /// ...) pending in this worker's reactor: armed, or removed after their wait ended
    /// early and not yet freed. A gauge; it falls back as waits end.
    pub pending_timers: u64,
}

impl Metrics {
    pub(crate) fn collect(shared: &Shared) -> Metrics {
        let workers: Vec<WorkerMetrics> = (0..shared.workers())
            .map(|index| {
                let stats = &shared.stats[index];
                WorkerMetrics {
                    queue_depth: shared.queue_depth(index),
                    steals: stats.steals.get(),
                    parks: stats.parks.get() + stats.exiled_parks.load(Relaxed),
                    io_submitted: stats.io_submitted.get(),
                    io_completed: stats.io_completed.get(),
                    pending_timers: stats.pending_timers.get(),
                }
            })
            .collect();
        let cached: u64 = shared.stats.iter().map(|s| s.cached_stacks.get()).sum();
        Metrics {
            live_threads: shared.live(),
            workers,
            injector_depth: shared.injector_depth(),
            stacks_mapped: shared.stacks.mapped(),
            stacks_pooled: shared.stacks.pooled() + cached as usize,
            handoffs: shared.handoff.count(),
            extra_workers: shared.extras().live(),
            extra_workers_started: shared.extras().started(),
            io_backend: Some(shared.io_backend()),
            io_uring_setup: shared.uring_setup(),
            migrates_started_threads: shared.migrates(),
        }
    }

    /// Steals by every worker.
    pub fn steals(&self) -> u64 {
        self.workers.iter().map(|w| w.steals).sum()
    }

    /// Parks on every worker.
    pub fn parks(&self) -> u64 {
        self.workers.iter().map(|w| w.parks).sum()
    }

    /// I/O operations submitted by every worker.
    pub fn io_submitted(&self) -> u64 {
        self.workers.iter().map(|w| w.io_submitted).sum()
    }

    /// I/O operations completed on every worker.
    pub fn io_completed(&self) -> u64 {
        self.workers.iter().map(|w| w.io_completed).sum()
    }

    /// Timers of timed waits pending on every worker.
    pub fn pending_timers(&self) -> u64 {
        self.workers.iter().map(|w| w.pending_timers).sum()
    }

    /// Runnable green threads queued on every worker.
    pub fn queue_depth(&self) -> usize {
        self.workers.iter().map(|w| w.queue_depth).sum()
    }
}
