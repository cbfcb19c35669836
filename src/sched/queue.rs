//! Run queues; the only module that uses `crossbeam_deque`.
//!
//! Each worker owns a FIFO [`LocalQueue`] of threads that may run anywhere (threads that
//! have not started yet, or every thread when the runtime migrates started threads); other
//! workers steal half of it at a time through its stealer. Green threads made runnable from
//! outside any worker go to the shared injector in [`GlobalQueues`] if they may run
//! anywhere, and to their home worker's *inbox* if they are bound to one (started threads
//! are anchored to the worker that first ran them; pinned threads too). Nobody but its
//! worker takes from an inbox. A worker's own anchored threads wait in a plain queue that
//! only it sees (`worker`), and the thread to run next in its [`LifoSlot`].
//!
//! An *extra* worker (started by the monitor while every worker's OS thread is blocked,
//! see `handoff`) has an inbox but no stealable queue: it takes threads that have not
//! started one at a time ([`GlobalQueues::take_injected_any`],
//! [`GlobalQueues::steal_one`]), so that it anchors as few as it can.

use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::loom::sync::atomic::{AtomicPtr, Ordering};
use crate::task::{Task, TaskRef};

/// A worker's own queue. Not `Sync`: only its worker's OS thread pushes and pops.
pub(crate) struct LocalQueue(Worker<TaskRef>);

/// The injector, every worker's stealer and every worker's inbox.
pub(crate) struct GlobalQueues {
    injector: Injector<TaskRef>,
    stealers: Box<[Stealer<TaskRef>]>,
    inbox: Box<[Injector<TaskRef>]>,
}

/// Creates `workers` local queues and the global side that sees them all, with inboxes
/// for `slots` workers (the first `workers` of them, and the extra workers' after).
pub(crate) fn new(workers: usize, slots: usize) -> (Vec<LocalQueue>, GlobalQueues) {
    let locals: Vec<_> = (0..workers)
        .map(|_| LocalQueue(Worker::new_fifo()))
        .collect();
    let stealers = locals.iter().map(|l| l.0.stealer()).collect();
    let global = GlobalQueues {
        injector: Injector::new(),
        stealers,
        inbox: (0..slots.max(workers)).map(|_| Injector::new()).collect(),
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
    /// A queue nobody steals from, for an extra worker (which never keeps threads that
    /// have not started in it).
    pub(crate) fn detached() -> LocalQueue {
        LocalQueue(Worker::new_fifo())
    }

    pub(crate) fn push(&self, task: TaskRef) {
        self.0.push(task);
    }

    pub(crate) fn pop(&self) -> Option<TaskRef> {
        self.0.pop()
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

    /// One thread out of `victim`'s stealable queue, its oldest (an extra worker's take).
    pub(crate) fn steal_one(&self, victim: usize) -> Option<TaskRef> {
        settle(|| self.stealers[victim].steal())
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

    /// Steals half of `victim`'s stealable queue into `local`, returning one task to run.
    pub(crate) fn steal_from(&self, victim: usize, local: &LocalQueue) -> Option<TaskRef> {
        settle(|| self.stealers[victim].steal_batch_and_pop(&local.0))
    }

    /// `true` when `worker`'s stealable queue holds threads (a snapshot).
    pub(crate) fn has_stealable(&self, worker: usize) -> bool {
        !self.stealers[worker].is_empty()
    }

    /// Queues a thread bound to `worker` (woken elsewhere) in that worker's inbox.
    pub(crate) fn push_inbox(&self, worker: usize, task: TaskRef) {
        self.inbox[worker].push(task);
    }

    /// The next thread in `worker`'s inbox.
    pub(crate) fn take_inbox(&self, worker: usize) -> Option<TaskRef> {
        settle(|| self.inbox[worker].steal())
    }

    /// One thread out of the injector, without a worker's local queue (an extra worker's
    /// take, and the shutdown's).
    pub(crate) fn take_injected_any(&self) -> Option<TaskRef> {
        settle(|| self.injector.steal())
    }

    /// `true` when threads wait in `worker`'s inbox.
    pub(crate) fn has_inbox(&self, worker: usize) -> bool {
        !self.inbox[worker].is_empty()
    }

    /// Runnable threads in the injector, a snapshot.
    pub(crate) fn injector_depth(&self) -> usize {
        self.injector.len()
    }

    /// Runnable threads in `worker`'s stealable queue and inbox, a snapshot.
    pub(crate) fn depth(&self, worker: usize) -> usize {
        self.stealers[worker].len() + self.inbox[worker].len()
    }

    /// `true` when any queue holds a task (a snapshot: used to avoid sleeping on work).
    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }
}

/// The thread a worker runs next: one slot, written by its worker (a freshly spawned or
/// woken thread whose data is hot in this CPU's cache) and emptied by its worker, or by the
/// stall monitor when the worker's OS thread is blocked (so a thread spawned right before
/// the block does not wait for it). The swap makes each thread leave the slot exactly once;
/// its acquire/release pairs hand over the thread's run with it. (Generic so its loom model
/// needs no real task.)
pub(crate) struct LifoSlot<R: RawRef = TaskRef>(AtomicPtr<R::Target>, PhantomData<R>);

/// An owning reference that can be given up as a raw pointer and taken back: what a
/// [`LifoSlot`] holds.
pub(crate) trait RawRef {
    type Target;

    /// Gives up the reference without dropping it.
    fn into_raw(self) -> *const Self::Target;

    /// Takes back a reference given up by `into_raw`.
    ///
    /// # Safety
    ///
    /// `raw` came from `into_raw` of this type and is taken back once.
    unsafe fn from_raw(raw: *const Self::Target) -> Self;
}

impl RawRef for TaskRef {
    type Target = Task;

    fn into_raw(self) -> *const Task {
        TaskRef::into_raw(self)
    }

    unsafe fn from_raw(raw: *const Task) -> TaskRef {
        // SAFETY: forwarded.
        unsafe { TaskRef::from_raw(raw) }
    }
}

impl<T> RawRef for Arc<T> {
    type Target = T;

    fn into_raw(self) -> *const T {
        Arc::into_raw(self)
    }

    unsafe fn from_raw(raw: *const T) -> Arc<T> {
        // SAFETY: forwarded.
        unsafe { Arc::from_raw(raw) }
    }
}

impl<R: RawRef> LifoSlot<R> {
    pub(crate) fn new() -> LifoSlot<R> {
        LifoSlot(AtomicPtr::new(ptr::null_mut()), PhantomData)
    }

    /// Puts `item` in the slot; returns the one it displaced.
    pub(crate) fn replace(&self, item: R) -> Option<R> {
        let old = self.0.swap(item.into_raw().cast_mut(), Ordering::AcqRel);
        // SAFETY: a non-null slot value is a reference leaked by an earlier `replace`, and
        // the swap gave it to us alone.
        (!old.is_null()).then(|| unsafe { R::from_raw(old) })
    }

    /// Empties the slot.
    pub(crate) fn take(&self) -> Option<R> {
        if self.0.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let old = self.0.swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: as in `replace`.
        (!old.is_null()).then(|| unsafe { R::from_raw(old) })
    }
}

impl<R: RawRef> Drop for LifoSlot<R> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The worker and the stall monitor on one LIFO slot: whatever the order, every item
    //! put in leaves exactly once (no thread lost, none run twice).
    use super::*;

    #[test]
    fn the_worker_and_the_monitor_never_both_take_a_thread() {
        loom::model(|| {
            let slot = Arc::new(LifoSlot::<Arc<u32>>::new());
            let monitor = {
                let slot = Arc::clone(&slot);
                loom::thread::spawn(move || slot.take().map(|item| *item))
            };
            let mut out = Vec::new();
            out.extend(slot.replace(Arc::new(1)).map(|item| *item));
            out.extend(slot.replace(Arc::new(2)).map(|item| *item));
            out.extend(slot.take().map(|item| *item));
            out.extend(monitor.join().unwrap());
            out.sort_unstable();
            assert_eq!(out, [1, 2], "each item leaves the slot exactly once");
        });
    }
}
