//! The loop of one worker OS thread.
//!
//! Each round a worker reaps its ring's completions (shared memory, no system call), picks
//! the next green thread (see [`WorkerCtx::next_task`]: its LIFO slot, its own queue, the
//! injector every [`INJECTOR_INTERVAL`] ticks), steals when it has none, and sleeps in
//! `io_uring_enter` when nobody has any. Queued I/O is submitted in one batch when the
//! local queue runs dry, and every [`SUBMIT_INTERVAL`] ticks while it does not. After a
//! green thread switches back, the worker acts on why, on its own stack: requeue after a
//! yield, publish the park, hand the thread to its in-flight op, or recycle the stack of a
//! finished thread.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::queue::LocalQueue;
use super::timers::Timers;
use super::{current, Shared};
use crate::overflow::AltStack;
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

/// One worker's state. Lives on its OS thread's stack; green threads running on that OS
/// thread reach it through `current::worker()`, so everything is behind `&self`.
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

/// Body of worker OS thread `index`: runs green threads until the runtime shuts down.
pub(crate) fn run_worker(index: usize, shared: Arc<Shared>, local: LocalQueue, reactor: Reactor) {
    let _altstack = AltStack::install();
    let worker = WorkerCtx {
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
    };
    current::set_worker(&worker);
    worker.run();
    current::set_worker(std::ptr::null());
    worker.shared.stacks.drain(&mut worker.stacks.borrow_mut());
}

impl WorkerCtx {
    fn run(&self) {
        loop {
            if self.shared.abandon.load(Ordering::SeqCst) {
                return;
            }
            if self.shared.is_shutting_down() && !self.io_cancelled.replace(true) {
                // Threads blocked in I/O resume with ECANCELED and unwind, sleepers wake
                // early and unwind (no new op or sleep starts during shutdown, so once is
                // enough).
                self.reactor.cancel_all();
                self.timers.fire(None, &mut |task| self.local.push(task));
            }
            self.reap();
            if self.timers.len() > 0 {
                self.timers
                    .fire(Some(Instant::now()), &mut |task| self.local.push(task));
            }
            if let Some(task) = self.find_task() {
                self.run_task(task);
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
                return;
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
            self.local.push(task);
        }
        self.lifo_streak.set(0);
        self.local
            .pop()
            .or_else(|| self.shared.queues.take_injected(&self.local))
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
        self.shared.queues.steal(self.index, start, &self.local)
    }

    /// `true` when nothing is runnable on this worker right now.
    fn is_idle(&self) -> bool {
        self.local.is_empty() && {
            let lifo = self.lifo.take();
            let empty = lifo.is_none();
            self.lifo.set(lifo);
            empty
        }
    }

    /// Makes the threads whose I/O completed runnable here; with more than one, wakes a
    /// sleeping worker that could take some.
    fn reap(&self) {
        if self.reactor.reap(&mut |task| self.local.push(task)) > 1 {
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
        if !self.shared.queues.has_work() && !self.shared.should_exit() {
            let timeout = self
                .timers
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if timeout != Some(Duration::ZERO) {
                self.reactor
                    .wait(timeout, &mut |task| self.local.push(task));
            }
        }
        if !idle.unregister(self.index) {
            // Taken out of the sleepers by a waker, which counted us as searching.
            self.searching.set(true);
        }
    }

    fn run_task(&self, task: TaskRef) {
        current::set_task(Arc::as_ptr(&task));
        // SAFETY: `task` came from a queue or a park hand-off, so this worker owns its run,
        // and finished threads are never queued again.
        let finished = unsafe { task.resume() };
        current::set_task(std::ptr::null());
        if finished {
            self.retire(task);
            return;
        }
        match task.suspended_for() {
            Suspend::Yield => self.local.push(task),
            Suspend::Park => {
                if let Some(task) = Task::finish_park(task) {
                    self.local.push(task);
                }
            }
            // The slot on the thread's stack took over the run reference (it points at the
            // task); its last CQE gives it back through `reactor::complete`.
            // Likewise the timer heap entry of a sleeper.
            Suspend::Io | Suspend::Timer => std::mem::forget(task),
        }
    }

    fn retire(&self, task: TaskRef) {
        // SAFETY: we own the run and the thread just finished.
        if let Some(stack) = unsafe { task.take_stack() } {
            self.shared
                .stacks
                .free(stack, Some(&mut self.stacks.borrow_mut()));
        }
        drop(task);
        self.shared.retired();
    }

    /// Makes `task` the next to run on this worker (its LIFO slot, not stealable); the
    /// thread it displaces goes to the local queue, where idle workers may steal it.
    /// Called on this worker's OS thread only.
    pub(crate) fn push_next(&self, task: TaskRef) {
        if let Some(task) = self.lifo.replace(Some(task)) {
            self.local.push(task);
            self.shared.wake_one();
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
        self.shared
            .stacks
            .alloc(usable, Some(&mut self.stacks.borrow_mut()))
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
