//! The loop of one worker, run by the OS thread that carries it.
//!
//! Each round a worker reaps its ring's completions (shared memory, no system call), picks
//! the next green thread (see [`WorkerCtx::next_task`]: its LIFO slot, its queue of
//! anchored threads, its stealable queue, its inbox, the injector every
//! [`INJECTOR_INTERVAL`] ticks), steals when it has none, and sleeps in `io_uring_enter`
//! when nobody has any. Queued I/O is submitted every [`SUBMIT_INTERVAL`] ticks while
//! threads are runnable, and otherwise by the `io_uring_enter` that puts the worker to
//! sleep (one system call submits and waits; it returns at once if a submitted op
//! completes on the spot). After a green thread switches
//! back, the worker acts on why, on its carrier's stack: requeue after a yield, publish the
//! park, hand the thread to its in-flight op, or recycle the stack of a finished thread.
//!
//! # Anchoring
//!
//! A thread runs on the worker that first runs it for the rest of its life (see
//! `Task::home`): once started it only ever enters this worker's LIFO slot, its `anchored`
//! queue or its inbox, none of which anyone else takes from. Only threads that have not
//! started yet wait in the stealable local queue. A runtime built with
//! `migrate_started_threads` instead queues every thread in the stealable queue, and its
//! hand-off monitor may give the whole worker to another OS thread: if that happened
//! while a thread ran (see `carrier`), the old carrier deals with that one thread without
//! the worker and exits.
//!
//! # Extra workers
//!
//! An extra worker (see `extra`) runs the same loop with three differences: it takes
//! threads that have not started one at a time and only while the monitor compensates
//! ([`WorkerCtx::next_task_extra`]); it sleeps without registering as a sleeper, looking
//! at the injector every `extra::EXTRA_LOOK` while it takes new threads
//! ([`WorkerCtx::sleep_extra`]); and it leaves its loop once it takes no new threads and
//! the threads it started have all finished.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::carrier::Carrier;
use super::extra::EXTRA_LOOK;
use super::queue::{LifoSlot, LocalQueue};
use super::timers::Timers;
use super::{current, Shared};
use crate::reactor::Reactor;
use crate::stack::{LocalCache, Stack};
use crate::task::{Suspend, Task, TaskRef};

/// Ticks between two looks at the injector ahead of the local queue (tokio uses 61), so
/// threads woken from outside are not starved by a busy local queue.
const INJECTOR_INTERVAL: u32 = 61;
/// Ticks between two submissions of queued I/O while the local queue stays busy, so ops
/// queued by the threads run meanwhile start without waiting for the queue to drain.
const SUBMIT_INTERVAL: u32 = 16;
/// Ticks between two looks, by a busy worker, at whether another worker holds more threads
/// than it and has some that have not started (see [`WorkerCtx::balance`]).
const BALANCE_INTERVAL: u32 = 31;
/// How long a worker that ran out of work keeps looking before it sleeps, when its threads
/// just woke a thread on another worker. Anchored threads that talk to each other from two
/// workers (a ping-pong, a lock handed back and forth) would otherwise pay a cross-CPU
/// wake-up of a sleeping worker (~20 us on 2-vCPU VMs) at every exchange; a reply that
/// arrives within the spin finds the worker awake. Workers whose threads only talk to
/// clients (a server) never spin: on few CPUs the spin would take CPU from those clients
/// (measured: wrk p99 0.7 -> 3.2 ms with an unconditional spin). A worker that was just
/// handed threads by another one (in its inbox, or stolen) spins too: a fan-out hands them
/// over one spawn at a time, microseconds apart, and without the spin the receiving worker
/// slept and was woken again for every one of them.
///
/// A spin that finds nothing is pure cost, so spins back off after fruitless ones (see
/// [`SpinBackoff`]). Without that, a server accepting a connection every few tens of
/// microseconds, each new thread handed to the other worker, fed that worker often enough
/// to spin and rarely enough for the spin to find the next one: the spin was 18% of the
/// server's CPU (`wrk -H 'Connection: close'` against `examples/http_hello`).
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(20);
/// The most fruitless spins in a row the backoff counts: at most 7 chances to spin in a
/// row are let pass, so a worker whose spins start paying again spins again soon (see
/// [`SpinBackoff`]).
const MAX_SPIN_MISSES: u32 = 3;
/// The longest a worker sleeps before it looks at its queues again, woken or not: the
/// clock of the stack pool's trim, which returns the stacks a burst left behind only once
/// they have gone unused for a while (`stack::pool`), so an idle runtime gives that memory
/// back within about this long. Ten wake-ups a second for an idle runtime.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Consecutive runs from the LIFO slot before the local queue gets a turn (as tokio), so
/// two threads waking each other cannot starve the rest.
const LIFO_STREAK_MAX: u8 = 3;

/// One worker's state. Touched only by the OS thread carrying it and the green thread that
/// carrier runs (through `current::worker()`), so everything is behind `&self`; the one
/// exception is `lifo`, which the stall monitor may empty.
pub(crate) struct WorkerCtx {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    /// An extra worker (see `extra`).
    extra: bool,
    /// Threads that may run anywhere; other workers steal from it.
    local: LocalQueue,
    /// Runnable threads bound to this worker (started, or pinned), woken here.
    anchored: RefCell<VecDeque<TaskRef>>,
    lifo: LifoSlot,
    lifo_streak: Cell<u8>,
    /// A thread run here woke a thread on another worker since this worker last looked
    /// (see [`SPIN_BEFORE_SLEEP`]).
    crossed: Cell<bool>,
    /// The last sleep ended quietly (its bound passed with nothing new), so the monitor was
    /// not told this worker woke; it is told when a thread is found to run after all.
    woke_quietly: Cell<bool>,
    /// This worker took threads from its inbox, the injector or another worker since it
    /// last looked (see [`SPIN_BEFORE_SLEEP`]).
    fed: Cell<bool>,
    /// Whether the next chance to spin before a sleep is taken.
    spin_backoff: SpinBackoff,
    tick: Cell<u32>,
    searching: Cell<bool>,
    stacks: RefCell<LocalCache>,
    rng: Cell<u32>,
    reactor: Reactor,
    /// Whether this worker cancelled its ring's I/O for the shutdown.
    io_cancelled: Cell<bool>,
    /// Green threads sleeping on this worker.
    timers: Timers,
}

/// A worker that can be handed from one carrier OS thread to another.
pub(crate) struct WorkerBox(WorkerCtx);

// SAFETY: a WorkerCtx is used by one OS thread at a time: its carrier (and the green thread
// that carrier runs). It changes carrier only in a runtime that migrates started threads,
// through the hand-off protocol of `carrier`, where the old carrier's last access
// happens-before the monitor's exile CAS, which happens-before the new carrier starts. Its
// contents (queues, ring, Arcs) may move between OS threads.
unsafe impl Send for WorkerBox {}
// SAFETY: as above: shared references exist on several threads (the monitor keeps one to
// hand the worker over or to empty its LIFO slot) but only the current carrier dereferences
// one for anything else, and the LIFO slot is atomic.
unsafe impl Sync for WorkerBox {}

impl WorkerBox {
    /// Worker `index` of `shared` (an extra worker if `extra`), with its local queue and
    /// ring.
    pub(crate) fn new(
        index: usize,
        shared: Arc<Shared>,
        local: LocalQueue,
        reactor: Reactor,
        extra: bool,
    ) -> WorkerBox {
        WorkerBox(WorkerCtx {
            index,
            shared,
            extra,
            local,
            anchored: RefCell::new(VecDeque::new()),
            lifo: LifoSlot::new(),
            lifo_streak: Cell::new(0),
            crossed: Cell::new(false),
            woke_quietly: Cell::new(false),
            fed: Cell::new(false),
            spin_backoff: SpinBackoff::default(),
            tick: Cell::new(0),
            searching: Cell::new(false),
            stacks: RefCell::new(LocalCache::default()),
            rng: Cell::new(0x9E37_79B9 ^ (index as u32 + 1)),
            reactor,
            io_cancelled: Cell::new(false),
            timers: Timers::default(),
        })
    }

    /// Binds the worker's reactor to the calling OS thread, which will carry the worker;
    /// called once, before the worker first runs.
    ///
    /// # Errors
    ///
    /// When the kernel refuses to enable the worker's ring.
    pub(crate) fn bind_to_this_thread(&self) -> io::Result<()> {
        self.0.reactor.bind_to_this_thread()
    }

    /// The worker's LIFO slot, for the stall monitor.
    pub(crate) fn lifo(&self) -> &LifoSlot {
        &self.0.lifo
    }
}

/// What became of the carrier after running one green thread.
enum Ran {
    /// It still carries the worker.
    Kept,
    /// The hand-off monitor gave the worker to another OS thread.
    Exiled,
}

/// Runs `worker`'s loop on the calling OS thread, recorded as `carrier`, until the runtime
/// shuts down (`false`) or the hand-off monitor exiles this carrier (`true`).
pub(crate) fn run_worker(worker: Arc<WorkerBox>, carrier: Arc<Carrier>) -> bool {
    let ctx = &worker.0;
    carrier.carried_by_this_thread();
    current::set_worker(ctx, &*carrier);
    crate::stats::carry(Some(Arc::clone(&ctx.shared.stats[ctx.index])));
    let exiled = ctx.run(&carrier);
    crate::stats::carry(None);
    current::set_worker(std::ptr::null(), std::ptr::null());
    if !exiled {
        ctx.shared.stacks.drain(&mut ctx.stacks.borrow_mut());
        ctx.shared.stats[ctx.index].cached_stacks.set(0);
    }
    exiled
}

impl WorkerCtx {
    /// The loop; returns `true` when this carrier was exiled.
    fn run(&self, carrier: &Carrier) -> bool {
        loop {
            if self.shared.abandon.load(Ordering::SeqCst) {
                self.give_up_queued();
                return false;
            }
            if self.shared.dumps.is_pending(self.index) {
                self.answer_dump();
            }
            if self.shared.is_shutting_down() && !self.io_cancelled.replace(true) {
                // Threads blocked in I/O resume with ECANCELED and unwind, sleepers wake
                // early and unwind (no new op or sleep starts during shutdown, so once is
                // enough).
                self.reactor.cancel_all(&mut |task| self.enqueue(task));
                self.timers.fire(None, &mut |task| self.enqueue(task));
            }
            self.reap();
            if self.timers.len() > 0 {
                self.timers
                    .fire(Some(Instant::now()), &mut |task| self.enqueue(task));
            }
            if let Some(task) = self.find_task() {
                if self.woke_quietly.replace(false) {
                    // Work came right after a quiet wake: the monitor must watch this run.
                    self.shared.handoff.worker_woke();
                }
                if let Ran::Exiled = self.run_task(task, carrier) {
                    return true;
                }
                let tick = self.tick.get();
                if tick % SUBMIT_INTERVAL == 0 && self.reactor.needs_enter() {
                    self.reactor.submit();
                }
                continue;
            }
            // Nothing runnable. Ops still queued go to the kernel with the sleep's own
            // `io_uring_enter` below, which returns at once if any of them completes on
            // submission; deferred completion work runs there too (GETEVENTS).
            if self.shared.should_exit() {
                return false;
            }
            if self.extra {
                if self.retiring() {
                    return false;
                }
                self.sleep_extra();
                continue;
            }
            if self.crossed.replace(false) | self.fed.replace(false) {
                if self.reactor.has_queued() {
                    self.reactor.submit();
                }
                if self.spin_unless_backing_off() {
                    continue;
                }
            }
            self.sleep();
        }
    }

    /// The runtime gave up on its remaining threads: ends the joins of those still queued
    /// here, which will never run.
    fn give_up_queued(&self) {
        let queues = &self.shared.queues;
        let mut queued = Vec::new();
        queued.extend(self.lifo.take());
        queued.extend(self.anchored.borrow_mut().drain(..));
        while let Some(task) = self.local.pop() {
            queued.push(task);
        }
        while let Some(task) = queues.take_inbox(self.index) {
            queued.push(task);
        }
        for task in queued {
            task.cancel_join();
        }
    }

    /// Walks this worker's threads for a `Runtime::dump` (see `crate::dump`), between two
    /// green threads.
    #[cold]
    fn answer_dump(&self) {
        let queued: std::collections::HashSet<u64> = self
            .anchored
            .borrow()
            .iter()
            .map(|task| task.id.as_u64().get())
            .collect();
        super::walk::answer(&self.shared, self.index, &queued);
    }

    /// The next green thread to run, from this worker's own queues or by stealing.
    fn find_task(&self) -> Option<TaskRef> {
        if self.extra {
            return self.next_task_extra();
        }
        let task = self.next_task().or_else(|| self.steal());
        if task.is_some() && self.searching.replace(false) {
            // The last searcher to find work passes the baton if work remains.
            if self.shared.idle.stop_searching() && self.shared.queues.has_work() {
                self.shared.wake_one();
            }
        }
        task
    }

    fn next_task(&self) -> Option<TaskRef> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        let queues = &self.shared.queues;
        // Every INJECTOR_INTERVAL ticks the shared queues go first, so threads woken from
        // outside are not starved by a busy worker.
        match tick % INJECTOR_INTERVAL {
            0 => {
                if let Some(task) = self.handed(queues.take_injected(&self.local)) {
                    return Some(task);
                }
            }
            1 => {
                if let Some(task) = self.handed(queues.take_inbox(self.index)) {
                    return Some(task);
                }
            }
            _ => {}
        }
        if tick % BALANCE_INTERVAL == 0 {
            if let Some(task) = self.balance() {
                return Some(task);
            }
        }
        if let Some(task) = self.lifo.take() {
            if self.lifo_streak.get() < LIFO_STREAK_MAX {
                self.lifo_streak.set(self.lifo_streak.get() + 1);
                return Some(task);
            }
            self.enqueue(task);
        }
        self.lifo_streak.set(0);
        // Anchored threads and not-yet-started ones take turns, so neither kind starves
        // the other when both are plentiful.
        let anchored = || self.anchored.borrow_mut().pop_front();
        let fresh = || self.local.pop();
        let mine = if tick % 2 == 0 {
            anchored().or_else(fresh)
        } else {
            fresh().or_else(anchored)
        };
        mine.or_else(|| {
            self.handed(
                queues
                    .take_inbox(self.index)
                    .or_else(|| queues.take_injected(&self.local)),
            )
        })
    }

    /// An extra worker's next thread: its own (LIFO slot, anchored queue, inbox) first,
    /// then, only while the monitor compensates, one thread that has not started, from
    /// the injector or a worker's stealable queue.
    fn next_task_extra(&self) -> Option<TaskRef> {
        let queues = &self.shared.queues;
        let own = self
            .lifo
            .take()
            .or_else(|| self.anchored.borrow_mut().pop_front())
            .or_else(|| queues.take_inbox(self.index));
        if own.is_some() || !self.shared.compensating() {
            return own;
        }
        queues
            .take_injected_any()
            .or_else(|| (0..self.shared.workers()).find_map(|victim| queues.steal_one(victim)))
    }

    /// `true` when this extra worker has nothing left to carry (called with nothing
    /// runnable): the monitor no longer compensates, and no thread it started lives (so
    /// nothing can be woken here: only started threads are woken through its inbox, and
    /// only they have I/O or timers here).
    fn retiring(&self) -> bool {
        !self.shared.compensating()
            && self.shared.registries[self.index].len() == 0
            && self.reactor.inflight() == 0
            && self.timers.len() == 0
    }

    /// Passes on a thread taken from another worker or the shared queues, noting that this
    /// worker was fed (see [`SPIN_BEFORE_SLEEP`]).
    fn handed(&self, task: Option<TaskRef>) -> Option<TaskRef> {
        if task.is_some() {
            self.fed.set(true);
        }
        task
    }

    /// Queues a runnable thread on this worker: bound to it (started, or pinned) in its
    /// own queue, which nobody steals from; the stealable local queue otherwise.
    fn enqueue(&self, task: TaskRef) {
        if task.is_bound() {
            self.anchored.borrow_mut().push_back(task);
        } else if self.extra {
            // An extra keeps no thread that may run anywhere (see `extra`).
            self.shared.requeue(task);
        } else {
            self.local.push(task);
        }
    }

    /// Started threads never move, so the spread of work is decided when threads start: an
    /// idle worker steals once when woken, but a fan-out keeps spawning after that and its
    /// spawner's worker would start (and so keep) the rest. So a busy worker also looks
    /// every [`BALANCE_INTERVAL`] ticks for a worker anchoring more threads than itself that
    /// still has unstarted ones, and takes half of them. Only anchored runtimes need it
    /// (a migrating runtime rebalances started threads by stealing them).
    fn balance(&self) -> Option<TaskRef> {
        if self.shared.migrates() {
            return None;
        }
        let queues = &self.shared.queues;
        let anchored = |index: usize| self.shared.registries[index].len();
        let mine = anchored(self.index);
        (0..self.shared.workers())
            .filter(|&victim| victim != self.index && queues.has_stealable(victim))
            .map(|victim| (victim, anchored(victim)))
            .filter(|&(_, theirs)| theirs > mine + 1)
            .max_by_key(|&(_, theirs)| theirs)
            .and_then(|(victim, _)| queues.steal_from(victim, &self.local))
            .inspect(|_| self.shared.stats[self.index].steals.incr())
    }

    /// Steals from the other workers and the injector, as a searcher.
    fn steal(&self) -> Option<TaskRef> {
        if !self.searching.get() {
            if !self.shared.idle.try_start_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let start = self.random() as usize % self.shared.workers();
        let stolen = self.shared.queues.steal(self.index, start, &self.local);
        if stolen.is_some() {
            self.shared.stats[self.index].steals.incr();
        }
        self.handed(stolen)
    }

    /// Makes the threads whose I/O completed runnable here. In a migrating runtime, with
    /// more than one, wakes a sleeping worker that could take some; anchored threads can
    /// only run here, so waking another worker for them would only cost it a cross-CPU
    /// wake-up and an empty search.
    fn reap(&self) {
        let reaped = self.reactor.reap(&mut |task| self.enqueue(task));
        if reaped > 1 && self.shared.migrates() {
            self.shared.wake_one();
        }
    }

    /// `true` when threads wait in this worker's inbox or in any queue it may take from.
    fn work_queued(&self) -> bool {
        self.shared.queues.has_inbox(self.index) || self.shared.queues.has_work()
    }

    /// Spins for work (see [`WorkerCtx::spin_for_work`]) unless recent spins found nothing
    /// and the backoff lets this chance pass; `true` when the spin found work.
    fn spin_unless_backing_off(&self) -> bool {
        if !self.spin_backoff.take_chance() {
            return false;
        }
        let found = self.spin_for_work();
        self.spin_backoff.spun(found);
        found
    }

    /// Watches, for up to [`SPIN_BEFORE_SLEEP`], this worker's inbox, the stealable queues,
    /// its ring and its timers; `true` as soon as one has something (a timer coming due
    /// included). Deferred completion work (flagged by the kernel, invisible in the ring
    /// until run) is run once per spin; the flag alone never counts as work, so an idle
    /// worker always ends in its sleep.
    fn spin_for_work(&self) -> bool {
        let mut run_deferred = true;
        let start = Instant::now();
        let spin_end = start + SPIN_BEFORE_SLEEP;
        let timer_due = self.timers.next_deadline().filter(|&due| due < spin_end);
        let until = timer_due.unwrap_or(spin_end);
        loop {
            if self.work_queued() || self.reactor.has_completions(&mut run_deferred) {
                return true;
            }
            if Instant::now() >= until {
                // A timer that came due is work.
                return timer_due.is_some();
            }
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        }
    }

    /// Sleeps in `io_uring_enter` until a completion or a wake-up; see `idle` for why no
    /// wake-up is lost.
    fn sleep(&self) {
        // Nothing else to do: return the memory of stacks and task records a burst left
        // behind.
        let now = Instant::now();
        let shared = &self.shared;
        shared
            .stacks
            .trim_at(now, || shared.stack_claims(), shared.carrying());
        crate::task::trim_records(now);
        let idle = &self.shared.idle;
        idle.register_sleeper(self.index, self.searching.replace(false));
        let pending = self.reactor.inflight() + self.timers.len();
        self.shared.going_to_sleep(self.index, pending);
        let mut quiet = false;
        if !self.work_queued() && !self.shared.should_exit() {
            let timeout = self.timers.next_deadline().map_or(MAX_SLEEP, |deadline| {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(MAX_SLEEP)
            });
            if !timeout.is_zero() {
                let woken = self
                    .reactor
                    .wait(Some(timeout), &mut |task| self.enqueue(task));
                if woken == 0
                    && !self.work_queued()
                    && self
                        .timers
                        .next_deadline()
                        .is_none_or(|due| due > Instant::now())
                {
                    // The bound of MAX_SLEEP passed with nothing new: not a wake-up the
                    // monitor needs to hear of.
                    quiet = true;
                }
            }
        }
        if !idle.unregister(self.index) {
            // Taken out of the sleepers by a waker, which counted us as searching.
            self.searching.set(true);
        }
        if quiet {
            self.woke_quietly.set(true);
        } else {
            self.woke_quietly.set(false);
            self.shared.handoff.worker_woke();
        }
    }

    /// An extra worker's sleep: its `asleep` flag set (its inbox wakes it, see `idle`),
    /// until a completion, a wake-up, its next timer, or, while it takes new threads,
    /// [`EXTRA_LOOK`] at most (nobody wakes it for those).
    fn sleep_extra(&self) {
        let shared = &self.shared;
        shared.idle.extra_sleeps(self.index);
        shared.going_to_sleep(self.index, self.reactor.inflight() + self.timers.len());
        let compensating = shared.compensating();
        let fresh = compensating && shared.queues.has_work();
        if !fresh && !shared.queues.has_inbox(self.index) && !shared.should_exit() {
            let bound = if compensating { EXTRA_LOOK } else { MAX_SLEEP };
            let timeout = self.timers.next_deadline().map_or(bound, |deadline| {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(bound)
            });
            if !timeout.is_zero() {
                self.reactor
                    .wait(Some(timeout), &mut |task| self.enqueue(task));
            }
        }
        shared.idle.extra_woke(self.index);
    }

    fn run_task(&self, task: TaskRef, carrier: &Carrier) -> Ran {
        if task.start_on(self.index) {
            if task.needs_stack() && !self.give_stack(&task) {
                // Never registered: `retired` skips the registry.
                self.shared.retired(task);
                return Ran::Kept;
            }
            self.shared.registries[self.index].add(&task);
        }
        self.shared.running();
        crate::task::current::set(TaskRef::as_ptr(&task));
        carrier.start_run(task.id.as_u64().get());
        // SAFETY: `task` came from a queue or a park hand-off, so this worker owns its run,
        // and finished threads are never queued again.
        let finished = unsafe { task.resume() };
        let kept = carrier.end_run();
        crate::task::current::set(std::ptr::null());
        self.shared.end_stall(self.index);
        if !kept {
            exiled(task, finished, carrier, self.index);
            return Ran::Exiled;
        }
        if finished {
            self.retire(task);
            return Ran::Kept;
        }
        match task.suspended_for() {
            Suspend::Yield => self.enqueue(task),
            Suspend::Park => {
                self.shared.stats[self.index].parks.incr();
                if let Some(task) = Task::finish_park(task) {
                    self.enqueue(task);
                }
            }
            // The slot on the thread's stack took over the run reference (it points at the
            // task); its last CQE gives it back through `reactor::complete`.
            // Likewise the timer heap entry of a sleeper.
            Suspend::Io | Suspend::Timer => std::mem::forget(task),
        }
        Ran::Kept
    }

    fn retire(&self, task: TaskRef) {
        // SAFETY: we own the run and the thread just finished.
        if let Some(stack) = unsafe { task.take_stack() } {
            let mut cache = self.stacks.borrow_mut();
            self.shared.stacks.free(stack, Some(&mut cache));
            self.shared.stats[self.index]
                .cached_stacks
                .set(cache.len() as u64);
        }
        self.shared.retired(task);
    }

    /// Makes `task` the next to run on this worker (its LIFO slot, not stealable); the
    /// thread it displaces goes to this worker's queues, and if it may run anywhere, an
    /// idle worker is woken to take it. Called on this worker's OS thread only.
    pub(crate) fn push_next(&self, task: TaskRef) {
        if let Some(task) = self.lifo.replace(task) {
            let stealable = !task.is_bound();
            self.enqueue(task);
            if stealable {
                self.shared.wake_one();
            }
        }
    }

    /// Records that a thread run here woke a thread on another worker: a reply may come
    /// back soon, so this worker spins before its next sleep.
    pub(crate) fn note_crossing(&self) {
        self.crossed.set(true);
    }

    /// This worker's sleeping green threads.
    pub(crate) fn timers(&self) -> &Timers {
        &self.timers
    }

    /// This worker's io_uring.
    pub(crate) fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Gives `task`, about to run here for the first time, its stack. When none can be
    /// mapped the thread never runs: its join ends with an error naming the cause, and
    /// `false` is returned.
    fn give_stack(&self, task: &TaskRef) -> bool {
        match self.alloc_stack(task.stack_size()) {
            Ok(stack) => {
                // SAFETY: this worker owns the run of `task`, which has never run and has
                // no stack.
                unsafe { task.give_stack(stack) };
                true
            }
            Err(err) => {
                let message = format!(
                    "greenring: green thread {} could not start: no stack: {err}",
                    task.describe()
                );
                crate::report::error(format_args!("{message}"));
                task.fail_join(message);
                false
            }
        }
    }

    /// A stack for a green thread about to run here for the first time.
    pub(crate) fn alloc_stack(&self, usable: usize) -> io::Result<Stack> {
        let mut cache = self.stacks.borrow_mut();
        let stack = self.shared.stacks.alloc(usable, Some(&mut cache));
        self.shared.stats[self.index]
            .cached_stacks
            .set(cache.len() as u64);
        stack
    }

    /// xorshift32: where to start looking for a victim.
    fn random(&self) -> u32 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }
}

/// Deals with the green thread that got its carrier exiled, now that it switched back (or
/// finished), without the worker: it goes to the runtime's injector like a thread woken from
/// outside, and the carrier leaves. Reports the stall once per green thread.
fn exiled(task: TaskRef, finished: bool, carrier: &Carrier, worker: usize) {
    let shared = Shared::of(&task);
    if !task.stall_reported() {
        let stalled = carrier.stuck_since().map(|since| since.elapsed());
        crate::report::warn(format_args!(
            "greenring: green thread {} blocked its worker's OS thread for {} ms without \
             yielding (a blocking call or a long computation); before that, {}. The \
             worker's other green threads were handed to another OS thread meanwhile. Use \
             greenring's I/O, `spawn_blocking` or `yield_now` to avoid this.",
            task.describe(),
            stalled.map_or(0, |d| d.as_millis()),
            crate::task::wait::last_wait(&task),
        ));
    }
    if finished {
        // SAFETY: we own the run and the thread just finished.
        if let Some(stack) = unsafe { task.take_stack() } {
            shared.stacks.free(stack, None);
        }
        shared.retired(task);
    } else {
        match task.suspended_for() {
            Suspend::Yield => shared.requeue(task),
            Suspend::Park => {
                shared.stats[worker]
                    .exiled_parks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(task) = Task::finish_park(task) {
                    shared.requeue(task);
                }
            }
            // Queued on the worker's ring or heap before the exile: the worker, now on its
            // new carrier, completes it.
            Suspend::Io | Suspend::Timer => std::mem::forget(task),
        }
    }
    shared.handoff.exile_ended(&shared);
}

/// Which chances to spin before a sleep a worker takes: all of them until a spin finds
/// nothing; after `k` fruitless spins in a row (at most [`MAX_SPIN_MISSES`]), the next
/// `2^k - 1` chances pass, and a spin that finds work starts over (see
/// [`SPIN_BEFORE_SLEEP`]).
#[derive(Default)]
struct SpinBackoff {
    /// Fruitless spins in a row.
    misses: Cell<u32>,
    /// Chances still to let pass before the next spin.
    skips: Cell<u32>,
}

impl SpinBackoff {
    /// Whether to spin at this chance; a chance let pass counts towards the next spin.
    fn take_chance(&self) -> bool {
        let skips = self.skips.get();
        self.skips.set(skips.saturating_sub(1));
        skips == 0
    }

    /// Records the outcome of a spin this backoff allowed.
    fn spun(&self, found_work: bool) {
        let misses = if found_work {
            0
        } else {
            (self.misses.get() + 1).min(MAX_SPIN_MISSES)
        };
        self.misses.set(misses);
        self.skips.set((1 << misses) - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chances taken out of `chances`, given whether each spin taken finds work.
    fn taken(backoff: &SpinBackoff, chances: usize, finds: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut spins = Vec::new();
        for chance in 0..chances {
            if backoff.take_chance() {
                backoff.spun(finds(chance));
                spins.push(chance);
            }
        }
        spins
    }

    #[test]
    fn spins_that_find_work_keep_spinning() {
        let backoff = SpinBackoff::default();
        assert_eq!(taken(&backoff, 100, |_| true), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn fruitless_spins_let_ever_more_chances_pass_up_to_a_bound() {
        let backoff = SpinBackoff::default();
        // Misses in a row let 1, 3, then 7 chances pass each time.
        let spins = taken(&backoff, 40, |_| false);
        assert_eq!(spins, [0, 2, 6, 14, 22, 30, 38]);
    }

    #[test]
    fn one_spin_that_finds_work_ends_the_backoff() {
        let backoff = SpinBackoff::default();
        taken(&backoff, 20, |_| false);
        // Wait out the chances still to pass, then find work once.
        assert!(
            (0..8).any(|_| backoff.take_chance()),
            "a spin within 8 chances"
        );
        backoff.spun(true);
        assert_eq!(taken(&backoff, 5, |_| true), [0, 1, 2, 3, 4]);
    }
}
