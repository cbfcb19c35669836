//! The loop of one worker, run by whichever OS thread carries it.
//!
//! Each round a worker reaps its ring's completions (shared memory, no system call), picks
//! the next green thread (see [`WorkerCtx::next_task`]: its LIFO slot, its own queue, its
//! pinned threads, the injector every [`INJECTOR_INTERVAL`] ticks), steals when it has
//! none, and sleeps in `io_uring_enter` when nobody has any. Queued I/O is submitted in one
//! batch when the local queue runs dry, and every [`SUBMIT_INTERVAL`] ticks while it does
//! not. After a green thread switches back, the worker acts on why, on its carrier's stack:
//! requeue after a yield, publish the park, hand the thread to its in-flight op, or recycle
//! the stack of a finished thread. If the hand-off monitor took the worker away meanwhile
//! (see `carrier`), the carrier deals with that one thread without the worker and exits.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::carrier::Carrier;
use super::queue::LocalQueue;
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
/// Consecutive runs from the LIFO slot before the local queue gets a turn (as tokio), so
/// two threads waking each other cannot starve the rest.
const LIFO_STREAK_MAX: u8 = 3;

/// One worker's state. Touched only by the OS thread carrying it and the green thread that
/// carrier runs (through `current::worker()`), so everything is behind `&self`.
pub(crate) struct WorkerCtx {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    local: LocalQueue,
    lifo: Cell<Option<TaskRef>>,
    lifo_streak: Cell<u8>,
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
// that carrier runs). It changes carrier only through the hand-off protocol of `carrier`,
// where the old carrier's last access happens-before the monitor's exile CAS, which
// happens-before the new carrier starts. Its contents (queues, ring, Arcs) may move between
// OS threads.
unsafe impl Send for WorkerBox {}
// SAFETY: as above: shared references exist on several threads (the monitor keeps one to
// hand the worker over) but only the current carrier dereferences one.
unsafe impl Sync for WorkerBox {}

impl WorkerBox {
    /// Worker `index` of `shared`, with its local queue and ring.
    pub(crate) fn new(
        index: usize,
        shared: Arc<Shared>,
        local: LocalQueue,
        reactor: Reactor,
    ) -> WorkerBox {
        WorkerBox(WorkerCtx {
            index,
            shared,
            local,
            lifo: Cell::new(None),
            lifo_streak: Cell::new(0),
            tick: Cell::new(0),
            searching: Cell::new(false),
            stacks: RefCell::new(LocalCache::default()),
            rng: Cell::new(0x9E37_79B9 ^ (index as u32 + 1)),
            reactor,
            io_cancelled: Cell::new(false),
            timers: Timers::default(),
        })
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
    current::set_worker(ctx, &*carrier);
    let exiled = ctx.run(&carrier);
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
                return false;
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
                if let Ran::Exiled = self.run_task(task, carrier) {
                    return true;
                }
                let tick = self.tick.get();
                if self.reactor.has_queued() && (tick % SUBMIT_INTERVAL == 0 || self.is_idle()) {
                    self.reactor.submit();
                }
                continue;
            }
            if self.reactor.has_queued() {
                self.reactor.submit();
                continue;
            }
            if self.shared.should_exit() {
                return false;
            }
            self.sleep();
        }
    }

    /// The next green thread to run, from this worker's own queues or by stealing.
    fn find_task(&self) -> Option<TaskRef> {
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
        if tick % INJECTOR_INTERVAL == 0 {
            if let Some(task) = self.shared.queues.take_injected(&self.local) {
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
        if tick % INJECTOR_INTERVAL == 1 {
            if let Some(task) = self.shared.queues.take_pinned(self.index) {
                return Some(task);
            }
        }
        self.local
            .pop()
            .or_else(|| self.shared.queues.take_pinned(self.index))
            .or_else(|| self.shared.queues.take_injected(&self.local))
    }

    /// Queues a runnable thread on this worker: its pinned inbox for a thread pinned here,
    /// the local (stealable) queue otherwise.
    fn enqueue(&self, task: TaskRef) {
        if task.is_pinned() {
            self.shared.queues.push_pinned(self.index, task);
        } else {
            self.local.push(task);
        }
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
        stolen
    }

    /// `true` when nothing is runnable on this worker right now.
    fn is_idle(&self) -> bool {
        self.local.is_empty() && !self.shared.queues.has_pinned(self.index) && {
            let lifo = self.lifo.take();
            let empty = lifo.is_none();
            self.lifo.set(lifo);
            empty
        }
    }

    /// Makes the threads whose I/O completed runnable here; with more than one, wakes a
    /// sleeping worker that could take some.
    fn reap(&self) {
        if self.reactor.reap(&mut |task| self.enqueue(task)) > 1 {
            self.shared.wake_one();
        }
    }

    /// Sleeps in `io_uring_enter` until a completion or a wake-up; see `idle` for why no
    /// wake-up is lost.
    fn sleep(&self) {
        // Nothing else to do: return the memory of stacks a burst left behind.
        self.shared.stacks.trim();
        let idle = &self.shared.idle;
        idle.register_sleeper(self.index, self.searching.replace(false));
        let pending = self.reactor.inflight() + self.timers.len();
        self.shared.going_to_sleep(self.index, pending);
        if !self.shared.queues.has_work()
            && !self.shared.queues.has_pinned(self.index)
            && !self.shared.should_exit()
        {
            let timeout = self
                .timers
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if timeout != Some(Duration::ZERO) {
                self.reactor.wait(timeout, &mut |task| self.enqueue(task));
            }
        }
        if !idle.unregister(self.index) {
            // Taken out of the sleepers by a waker, which counted us as searching.
            self.searching.set(true);
        }
        self.shared.handoff.worker_woke();
    }

    fn run_task(&self, task: TaskRef, carrier: &Carrier) -> Ran {
        if task.is_pinned() {
            task.pin_home(self.index);
        }
        current::set_task(Arc::as_ptr(&task));
        carrier.start_run();
        // SAFETY: `task` came from a queue or a park hand-off, so this worker owns its run,
        // and finished threads are never queued again.
        let finished = unsafe { task.resume() };
        let kept = carrier.end_run();
        current::set_task(std::ptr::null());
        if !kept {
            exiled(task, finished, carrier);
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
        drop(task);
        self.shared.retired();
    }

    /// Makes `task` the next to run on this worker (its LIFO slot, not stealable); the
    /// thread it displaces goes to the local queue, where idle workers may steal it.
    /// Called on this worker's OS thread only.
    pub(crate) fn push_next(&self, task: TaskRef) {
        if let Some(task) = self.lifo.replace(Some(task)) {
            let stealable = !task.is_pinned();
            self.enqueue(task);
            if stealable {
                self.shared.wake_one();
            }
        }
    }

    /// This worker's sleeping green threads.
    pub(crate) fn timers(&self) -> &Timers {
        &self.timers
    }

    /// This worker's io_uring.
    pub(crate) fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// A stack for a green thread spawned from this worker.
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
fn exiled(task: TaskRef, finished: bool, carrier: &Carrier) {
    let shared = Arc::clone(&task.runtime);
    if !task.stall_reported() {
        let stalled = carrier.stuck_since().map(|since| since.elapsed());
        log::warn!(
            "greenring: green thread {} blocked its worker's OS thread for {} ms without \
             yielding (a blocking call or a long computation); the worker's other green \
             threads were handed to another OS thread meanwhile. Use greenring's I/O, \
             `spawn_blocking` or `yield_now` to avoid this.",
            task.name
                .as_deref()
                .map_or_else(|| format!("{:?}", task.id), |n| format!("'{n}'")),
            stalled.map_or(0, |d| d.as_millis()),
        );
    }
    if finished {
        // SAFETY: we own the run and the thread just finished.
        if let Some(stack) = unsafe { task.take_stack() } {
            shared.stacks.free(stack, None);
        }
        drop(task);
        shared.retired();
    } else {
        match task.suspended_for() {
            Suspend::Yield => shared.requeue(task),
            Suspend::Park => {
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
