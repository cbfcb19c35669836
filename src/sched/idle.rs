//! Which workers are searching for work and which sleep, and whom to wake.
//!
//! Goals (see DESIGN.md, "Costs": a cross-CPU wake-up costs ~20 us): wake a sleeping worker
//! only when there is work it could take and nobody is already looking for it, and wake at
//! most one at a time.
//!
//! # Protocol
//!
//! A worker out of local work becomes a *searcher* (at most half the workers search at
//! once) and steals. Before sleeping it registers as a sleeper, stops searching, and then
//! checks every queue once more ([`super::GlobalQueues::has_work`]). A producer pushes its
//! task first and then calls [`Idle::worker_to_wake`], which picks a sleeper only when no
//! worker searches.
//!
//! No wake-up is lost: the producer's push and the sleeper's "stop searching" are both
//! followed by a SeqCst fence before they read the other side's state. Either the producer
//! sees no searcher, and then it sees the sleeper registered (registration precedes the
//! decrement) and wakes one; or the sleeper's final check comes after the push and finds
//! the task.
//!
//! A woken worker starts out as a searcher: the waker counts it as such, so that further
//! producers do not wake a second worker for the same work.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Search and sleep bookkeeping for one runtime.
pub(crate) struct Idle {
    workers: usize,
    searching: AtomicUsize,
    sleeping: AtomicUsize,
    /// Indexes of sleeping workers, most recent last.
    sleepers: Mutex<Vec<usize>>,
    /// Per worker: registered as a sleeper (set before its last check of the queues), so
    /// whoever queues a thread pinned to it knows to wake it.
    asleep: Box<[AtomicBool]>,
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        Idle {
            workers,
            searching: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            asleep: (0..workers).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// After queueing a thread pinned to `worker`: `true` if that worker may be asleep and
    /// must be woken (it registered before its last look at its inbox, or will see it).
    pub(crate) fn must_wake_for_pinned(&self, worker: usize) -> bool {
        fence(SeqCst);
        self.asleep[worker].load(SeqCst)
    }

    /// After pushing work: the worker to wake for it, if any (now counted as searching).
    pub(crate) fn worker_to_wake(&self) -> Option<usize> {
        fence(SeqCst);
        if self.searching.load(SeqCst) != 0 || self.sleeping.load(SeqCst) == 0 {
            return None;
        }
        let mut sleepers = self.lock();
        // Re-check under the lock: another producer may have woken someone already.
        if self.searching.load(SeqCst) != 0 {
            return None;
        }
        let woken = sleepers.pop()?;
        self.sleeping.fetch_sub(1, SeqCst);
        self.searching.fetch_add(1, SeqCst);
        Some(woken)
    }

    /// Every sleeping worker, unregistered (for shutdown).
    pub(crate) fn take_all_sleepers(&self) -> Vec<usize> {
        let mut sleepers = self.lock();
        self.sleeping.fetch_sub(sleepers.len(), SeqCst);
        std::mem::take(&mut *sleepers)
    }

    /// `true` when every worker is registered as sleeping.
    pub(crate) fn all_sleeping(&self) -> bool {
        self.sleeping.load(SeqCst) == self.workers
    }

    /// Becomes a searcher unless half the workers already search.
    pub(crate) fn try_start_searching(&self) -> bool {
        let searching = self.searching.load(SeqCst);
        if 2 * searching >= self.workers.max(2) {
            return false;
        }
        self.searching.fetch_add(1, SeqCst);
        true
    }

    /// Stops searching after finding work; `true` if this was the last searcher (so the
    /// caller should see whether someone else must be woken for the remaining work).
    pub(crate) fn stop_searching(&self) -> bool {
        self.searching.fetch_sub(1, SeqCst) == 1
    }

    /// Registers `worker` as a sleeper, ending its search if it was searching. The caller
    /// must check the queues again afterwards, then sleep or [`Idle::unregister`].
    pub(crate) fn register_sleeper(&self, worker: usize, was_searching: bool) {
        {
            let mut sleepers = self.lock();
            sleepers.push(worker);
            self.sleeping.fetch_add(1, SeqCst);
        }
        self.asleep[worker].store(true, SeqCst);
        if was_searching {
            self.searching.fetch_sub(1, SeqCst);
        }
        fence(SeqCst);
    }

    /// Removes `worker` from the sleepers. `false` when a producer already took it out, in
    /// which case it was woken and now counts as a searcher.
    pub(crate) fn unregister(&self, worker: usize) -> bool {
        self.asleep[worker].store(false, SeqCst);
        let mut sleepers = self.lock();
        match sleepers.iter().position(|&w| w == worker) {
            Some(at) => {
                sleepers.swap_remove(at);
                self.sleeping.fetch_sub(1, SeqCst);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<usize>> {
        // Every update under this lock is a single push or removal: never half done.
        self.sleepers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_only_when_nobody_searches() {
        let idle = Idle::new(2);
        assert_eq!(idle.worker_to_wake(), None, "no sleepers");
        idle.register_sleeper(1, false);
        assert!(idle.try_start_searching());
        assert_eq!(
            idle.worker_to_wake(),
            None,
            "the searcher will find the work"
        );
        assert!(idle.stop_searching());
        assert_eq!(idle.worker_to_wake(), Some(1));
        assert_eq!(idle.worker_to_wake(), None, "the woken worker searches now");
        assert!(!idle.unregister(1), "it was taken out by the waker");
    }

    #[test]
    fn searchers_are_limited_to_half() {
        let idle = Idle::new(4);
        assert!(idle.try_start_searching());
        assert!(idle.try_start_searching());
        assert!(!idle.try_start_searching());
    }

    #[test]
    fn unregister_after_a_spurious_wake() {
        let idle = Idle::new(2);
        idle.register_sleeper(0, false);
        assert!(idle.unregister(0));
        assert_eq!(idle.worker_to_wake(), None);
    }
}
