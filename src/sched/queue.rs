//! Run queues; the only module that uses `crossbeam_deque`.
//!
//! Each worker owns a FIFO [`LocalQueue`]; other workers steal half of it at a time through
//! its stealer. Green threads made runnable from outside any worker go to the shared
//! injector in [`GlobalQueues`]. Threads pinned to a worker go to that worker's inbox, which
//! nobody else takes from.

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::task::TaskRef;

/// A worker's own queue. Not `Sync`: only its worker's OS thread pushes and pops.
pub(crate) struct LocalQueue(Worker<TaskRef>);

/// The injector, every worker's stealer and every worker's inbox of pinned threads.
pub(crate) struct GlobalQueues {
    injector: Injector<TaskRef>,
    stealers: Box<[Stealer<TaskRef>]>,
    pinned: Box<[Injector<TaskRef>]>,
}

/// Creates `workers` local queues and the global side that sees them all.
pub(crate) fn new(workers: usize) -> (Vec<LocalQueue>, GlobalQueues) {
    let locals: Vec<_> = (0..workers)
        .map(|_| LocalQueue(Worker::new_fifo()))
        .collect();
    let stealers = locals.iter().map(|l| l.0.stealer()).collect();
    let global = GlobalQueues {
        injector: Injector::new(),
        stealers,
        pinned: (0..workers).map(|_| Injector::new()).collect(),
    };
    (locals, global)
}

/// Retries a steal until it gives a definite answer.
fn settle(mut attempt: impl FnMut() -> Steal<TaskRef>) -> Option<TaskRef> {
    loop {
        match attempt() {
            Steal::Success(task) => return Some(task),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}

impl LocalQueue {
    pub(crate) fn push(&self, task: TaskRef) {
        self.0.push(task);
    }

    pub(crate) fn pop(&self) -> Option<TaskRef> {
        self.0.pop()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl GlobalQueues {
    /// Queues a task from outside the workers.
    pub(crate) fn inject(&self, task: TaskRef) {
        self.injector.push(task);
    }

    /// Takes a batch from the injector into `local`, returning one task to run.
    pub(crate) fn take_injected(&self, local: &LocalQueue) -> Option<TaskRef> {
        settle(|| self.injector.steal_batch_and_pop(&local.0))
    }

    /// Steals half of another worker's queue into `local` (workers visited from
    /// `start`, skipping `me`), then tries the injector; returns one task to run.
    pub(crate) fn steal(&self, me: usize, start: usize, local: &LocalQueue) -> Option<TaskRef> {
        let n = self.stealers.len();
        (0..n)
            .map(|i| (start + i) % n)
            .filter(|&victim| victim != me)
            .find_map(|victim| settle(|| self.stealers[victim].steal_batch_and_pop(&local.0)))
            .or_else(|| self.take_injected(local))
    }

    /// Queues a thread pinned to `worker`.
    pub(crate) fn push_pinned(&self, worker: usize, task: TaskRef) {
        self.pinned[worker].push(task);
    }

    /// The next thread pinned to `worker`.
    pub(crate) fn take_pinned(&self, worker: usize) -> Option<TaskRef> {
        settle(|| self.pinned[worker].steal())
    }

    /// `true` when threads pinned to `worker` wait to run.
    pub(crate) fn has_pinned(&self, worker: usize) -> bool {
        !self.pinned[worker].is_empty()
    }

    /// Runnable threads in the injector, a snapshot.
    pub(crate) fn injector_depth(&self) -> usize {
        self.injector.len()
    }

    /// Runnable threads queued on `worker` (stealable and pinned), a snapshot.
    pub(crate) fn depth(&self, worker: usize) -> usize {
        self.stealers[worker].len() + self.pinned[worker].len()
    }

    /// `true` when any queue holds a task (a snapshot: used to avoid sleeping on work).
    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }
}
