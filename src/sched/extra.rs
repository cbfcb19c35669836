//! Extra workers: OS threads the monitor adds while every worker's OS thread is blocked.
//!
//! A green thread that blocks its OS thread in code greenring does not own (a
//! `crossbeam-channel` or std `mpsc` receive, a std lock, a C library's wait) holds up
//! every thread of its worker. The monitor (`handoff`) already moves the threads of a
//! stalled worker that have not started to the other workers; when *every* worker is
//! stalled there is nobody left to run them, and if the thread that would unblock the
//! others is one of them (a producer spawned after its consumers), the runtime deadlocks.
//! Java's fork-join pool compensates a blocked carrier with a spare thread, and Go hands a
//! blocked M's processor to a new M; greenring does the first:
//!
//! - while every worker is stalled with its OS thread asleep in the kernel (a futex, a
//!   blocking socket call, a sleep: state `S` or `D`, on two samples in a row; a worker
//!   that computes is stalled too, but another OS thread would only take its CPU), threads
//!   that have not started are waiting (in the injector or a worker's stealable queue),
//!   and no extra worker already running could take them (every one of them is blocked
//!   too), the monitor starts an *extra worker*: an OS thread with its own ring (or epoll
//!   set) in one of the runtime's extra slots;
//! - an extra takes threads that have not started one at a time, only while the
//!   compensation lasts, and only when it has nothing else to run, so it anchors as few
//!   as it can; a thread it starts is anchored to it like to any worker (started threads
//!   never move, so this stays sound), and threads spawned there go to the injector
//!   unless pinned;
//! - once any worker's stall ends, extras take no new threads; an extra leaves when the
//!   threads it started have all finished (and at the runtime's shutdown), and its slot
//!   can carry a later extra;
//! - at most `runtime::Builder::max_extra_workers` extras run at once (default
//!   [`DEFAULT_MAX_EXTRA_WORKERS`]); the monitor reports the first extra of a runtime and
//!   reaching the bound.
//!
//! Extras need anchoring (a migrating runtime hands the whole worker to a new OS thread
//! instead) and the monitor: neither kind of runtime has them.
//!
//! While an extra takes new threads it looks at the injector every [`EXTRA_LOOK`]
//! (nobody wakes it for general work: the idle protocol only wakes workers that will take
//! it, see `idle`); its inbox wakes it as any worker's does.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::carrier::Carrier;
use super::queue::LocalQueue;
use super::worker::{run_worker, WorkerBox};
use super::Shared;
use crate::overflow::AltStack;
use crate::reactor::{Reactor, RingOwner};

/// How many extra workers may run at once by default (see
/// [`Builder::max_extra_workers`](crate::runtime::Builder::max_extra_workers)): as many
/// spare threads as Java's fork-join pool allows by default.
pub const DEFAULT_MAX_EXTRA_WORKERS: usize = 256;
/// How often an extra worker taking new threads looks at the injector.
pub(crate) const EXTRA_LOOK: Duration = Duration::from_millis(1);

/// The extra workers of one runtime, part of its `Shared`.
pub(crate) struct Extras {
    /// Index of the first extra slot (the number of workers).
    first: usize,
    /// Per extra slot: carries an extra now (claimed by the monitor, released by the extra
    /// as it leaves).
    used: Box<[AtomicBool]>,
    /// Extras running.
    live: AtomicUsize,
    /// Extras started so far.
    started: AtomicU64,
    /// Every worker is stalled: extras take threads that have not started.
    compensating: AtomicBool,
}

impl Extras {
    /// Room for `max` extras after `workers` workers.
    pub(crate) fn new(workers: usize, max: usize) -> Extras {
        Extras {
            first: workers,
            used: (0..max).map(|_| AtomicBool::new(false)).collect(),
            live: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            compensating: AtomicBool::new(false),
        }
    }

    /// Extras running now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Extras started so far.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// The most extras that may run at once.
    pub(crate) fn max(&self) -> usize {
        self.used.len()
    }

    /// `true` while extras take threads that have not started.
    pub(crate) fn compensating(&self) -> bool {
        self.compensating.load(Ordering::Relaxed)
    }

    /// The monitor's verdict of this sample: every worker is stalled, or not.
    pub(crate) fn set_compensating(&self, on: bool) {
        if self.compensating.load(Ordering::Relaxed) != on {
            self.compensating.store(on, Ordering::Relaxed);
        }
    }

    /// `true` when slot `index` (an extra's) carries an extra now.
    pub(crate) fn in_use(&self, index: usize) -> bool {
        index
            .checked_sub(self.first)
            .and_then(|i| self.used.get(i))
            .is_some_and(|used| used.load(Ordering::Acquire))
    }

    /// A free extra slot, claimed; `None` at the bound.
    fn claim(&self) -> Option<usize> {
        let i = self.used.iter().position(|used| {
            used.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        Some(self.first + i)
    }

    /// Gives slot `index` back: the last thing its extra does.
    fn release(&self, index: usize) {
        self.used[index - self.first].store(false, Ordering::Release);
    }
}

/// A started extra worker, for the monitor to watch.
pub(crate) struct Started {
    pub(crate) slot: usize,
    pub(crate) worker: Arc<WorkerBox>,
    pub(crate) carrier: Arc<Carrier>,
}

/// Starts an extra worker of `shared` on a new OS thread named `<thread_name>-<slot>`
/// (called by the monitor); `Ok(None)` when the bound is reached.
///
/// # Errors
///
/// When its eventfd, its ring or its OS thread cannot be made.
pub(crate) fn start(shared: &Arc<Shared>, thread_name: &str) -> io::Result<Option<Started>> {
    let extras = &shared.extras;
    let Some(slot) = extras.claim() else {
        return Ok(None);
    };
    let started = start_in(shared, slot, thread_name);
    if started.is_err() {
        extras.release(slot);
    }
    started.map(Some)
}

/// [`start`] in the claimed `slot`.
fn start_in(shared: &Arc<Shared>, slot: usize, thread_name: &str) -> io::Result<Started> {
    let waker = shared.extra_waker(slot)?;
    let reactor = Reactor::new(
        shared.io_backend(),
        slot,
        waker,
        Arc::clone(&shared.stats[slot]),
        RingOwner::OneThread,
    )?;
    let worker = Arc::new(WorkerBox::new(
        slot,
        Arc::clone(shared),
        LocalQueue::detached(),
        reactor,
        true,
    ));
    let carrier = Arc::new(Carrier::new());
    // Counted before it runs: it is awake (for the shutdown and the monitor's sleep) and
    // its stack cache is allowed for (see `stack::pool`) from the start.
    shared.idle.extra_started();
    shared.extras.live.fetch_add(1, Ordering::SeqCst);
    let job = (Arc::clone(&worker), Arc::clone(&carrier));
    let their_shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name(format!("{thread_name}-{slot}"))
        .spawn(move || run_extra(&their_shared, slot, job));
    match spawned {
        Ok(thread) => {
            shared.handoff.keep_thread(thread);
            shared.extras.started.fetch_add(1, Ordering::Relaxed);
            shared.dumps.set_carrier(slot, &carrier);
            Ok(Started {
                slot,
                worker,
                carrier,
            })
        }
        Err(err) => {
            shared.idle.extra_left();
            shared.extras.live.fetch_sub(1, Ordering::SeqCst);
            Err(err)
        }
    }
}

/// Body of an extra worker's OS thread: carries the worker until it retires (see the
/// module documentation) or the runtime shuts down, then gives its slot back.
fn run_extra(shared: &Shared, slot: usize, (worker, carrier): (Arc<WorkerBox>, Arc<Carrier>)) {
    let _altstack = AltStack::install();
    match worker.bind_to_this_thread() {
        Ok(()) => {
            run_worker(worker, carrier);
        }
        Err(err) => crate::report::error(format_args!(
            "greenring: an extra worker could not enable its io_uring: {err}"
        )),
    }
    shared.extra_left(slot);
}

impl Shared {
    /// Extra worker `slot` left: nothing of it stays (the last step frees the slot).
    fn extra_left(&self, slot: usize) {
        self.stalled[slot].store(false, Ordering::Relaxed);
        self.dumps.stall_ended(slot);
        self.dumps.clear_carrier(slot);
        self.inflight[slot].store(0, Ordering::SeqCst);
        self.idle.extra_left();
        self.extras.live.fetch_sub(1, Ordering::SeqCst);
        self.extras.release(slot);
    }

    /// `true` while extras take threads that have not started (every worker is stalled).
    pub(crate) fn compensating(&self) -> bool {
        self.extras.compensating()
    }

    /// The extra workers.
    pub(crate) fn extras(&self) -> &Extras {
        &self.extras
    }
}
