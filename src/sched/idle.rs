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
//!
//! A thread bound to one worker (anchored or pinned) is queued in that worker's inbox, and
//! only that worker can run it, so its waker wakes exactly that worker: it pushes, fences,
//! and takes the worker's `asleep` flag ([`Idle::must_wake`]); the worker sets the flag
//! before its fence and last look at its inbox. Either the waker sees the flag (and the one
//! waker that takes it writes the worker's eventfd), or the worker's last look finds the
//! thread. `loom_tests` checks both handshakes.
//!
//! An *extra* worker (see `handoff`) only takes part in the second handshake: it never
//! registers as a sleeper (a waker of general work must only pick a worker that will take
//! it, and an extra stops taking new threads when the stall that started it ends), but
//! sets its `asleep` flag like any worker, so its inbox wakes it. Extras awake count
//! against [`Idle::all_sleeping`].

use std::sync::PoisonError;

use crate::loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::loom::sync::{Mutex, MutexGuard};

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
    /// Extra workers running, or looking for work, rather than sleeping.
    extras_awake: AtomicUsize,
}

impl Idle {
    /// The bookkeeping of `workers` workers, with `asleep` flags for `slots` (extra
    /// workers' slots after the first `workers`).
    pub(crate) fn new(workers: usize, slots: usize) -> Idle {
        Idle {
            workers,
            searching: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            asleep: (0..slots.max(workers))
                .map(|_| AtomicBool::new(false))
                .collect(),
            extras_awake: AtomicUsize::new(0),
        }
    }

    /// After queueing a thread in `worker`'s inbox: `true` if that worker may be asleep
    /// and the caller must wake it. Only the first caller per sleep gets `true`, so a burst
    /// of wake-ups costs the sleeper one eventfd write.
    pub(crate) fn must_wake(&self, worker: usize) -> bool {
        fence(SeqCst);
        self.asleep[worker].load(SeqCst) && self.asleep[worker].swap(false, SeqCst)
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

    /// Every sleeping worker, unregistered (for shutdown) and, as for any waker, counted as
    /// searching: each finds itself taken out in [`Idle::unregister`] and stops searching
    /// (or sleeps again) later, which would otherwise take a count it never added.
    pub(crate) fn take_all_sleepers(&self) -> Vec<usize> {
        let mut sleepers = self.lock();
        self.sleeping.fetch_sub(sleepers.len(), SeqCst);
        self.searching.fetch_add(sleepers.len(), SeqCst);
        std::mem::take(&mut *sleepers)
    }

    /// `true` when every worker is registered as sleeping and no extra worker is awake.
    pub(crate) fn all_sleeping(&self) -> bool {
        self.sleeping.load(SeqCst) == self.workers && self.extras_awake.load(SeqCst) == 0
    }

    /// An extra worker starts (awake).
    pub(crate) fn extra_started(&self) {
        self.extras_awake.fetch_add(1, SeqCst);
    }

    /// Extra worker `slot` is about to look at its inbox a last time and sleep: its flag
    /// is set first (see the module documentation).
    pub(crate) fn extra_sleeps(&self, slot: usize) {
        self.asleep[slot].store(true, SeqCst);
        self.extras_awake.fetch_sub(1, SeqCst);
        fence(SeqCst);
    }

    /// Extra worker `slot` woke up.
    pub(crate) fn extra_woke(&self, slot: usize) {
        self.extras_awake.fetch_add(1, SeqCst);
        self.asleep[slot].store(false, SeqCst);
    }

    /// An extra worker (awake) leaves.
    pub(crate) fn extra_left(&self) {
        self.extras_awake.fetch_sub(1, SeqCst);
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn wakes_only_when_nobody_searches() {
        let idle = Idle::new(2, 2);
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
        let idle = Idle::new(4, 4);
        assert!(idle.try_start_searching());
        assert!(idle.try_start_searching());
        assert!(!idle.try_start_searching());
    }

    #[test]
    fn sleepers_taken_at_shutdown_count_as_searching_until_they_stop() {
        let idle = Idle::new(2, 2);
        idle.register_sleeper(0, false);
        idle.register_sleeper(1, false);
        assert_eq!(idle.take_all_sleepers().len(), 2);
        // Each woken worker finds itself taken out, searches, then stops or sleeps again:
        // the counts return to zero instead of wrapping.
        assert!(!idle.unregister(0));
        assert!(!idle.unregister(1));
        assert!(!idle.stop_searching());
        idle.register_sleeper(1, true);
        assert!(idle.try_start_searching(), "nobody searches any more");
        assert!(idle.stop_searching());
    }

    #[test]
    fn unregister_after_a_spurious_wake() {
        let idle = Idle::new(2, 2);
        idle.register_sleeper(0, false);
        assert!(idle.unregister(0));
        assert_eq!(idle.worker_to_wake(), None);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The two handshakes of the module documentation, with the queues modelled by one
    //! atomic flag each (a push is a store of `true`, a look is a load).
    use super::*;
    use crate::loom::sync::Arc;

    /// A worker going to sleep while a producer queues stealable work: the worker either
    /// sees the work in its last look, or is woken (taken out of the sleepers).
    #[test]
    fn shared_work_never_waits_for_a_sleeping_worker() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(2, 2));
            let work = Arc::new(AtomicBool::new(false));
            let producer = {
                let (idle, work) = (Arc::clone(&idle), Arc::clone(&work));
                loom::thread::spawn(move || {
                    work.store(true, SeqCst);
                    idle.worker_to_wake()
                })
            };
            // Worker 1 (not searching) finds nothing and goes to sleep.
            idle.register_sleeper(1, false);
            let saw_work = work.load(SeqCst);
            let woken = producer.join().unwrap();
            let taken_out = !idle.unregister(1);
            assert!(
                saw_work || (woken == Some(1) && taken_out),
                "the work was queued, the worker slept and nobody woke it"
            );
        });
    }

    /// A worker going to sleep while a thread bound to it is queued in its inbox: the
    /// worker sees the thread in its last look, or exactly one of two wakers wakes it.
    #[test]
    fn an_inbox_wake_is_never_lost_and_never_doubled() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(2, 2));
            let inbox = Arc::new(AtomicUsize::new(0));
            let wakers: Vec<_> = (0..2)
                .map(|_| {
                    let (idle, inbox) = (Arc::clone(&idle), Arc::clone(&inbox));
                    loom::thread::spawn(move || {
                        inbox.fetch_add(1, SeqCst);
                        idle.must_wake(0)
                    })
                })
                .collect();
            idle.register_sleeper(0, false);
            let seen = inbox.load(SeqCst);
            let wakes = wakers
                .into_iter()
                .map(|w| w.join().unwrap())
                .filter(|&woke| woke)
                .count();
            idle.unregister(0);
            assert!(wakes <= 1, "two eventfd writes for one sleep");
            assert!(
                seen == 2 || wakes == 1,
                "a thread was queued for a sleeping worker and nobody woke it"
            );
        });
    }

    /// The same handshake for an extra worker, which sets its flag without registering
    /// as a sleeper: its inbox's waker sees the flag, or its last look sees the thread.
    #[test]
    fn an_extra_workers_inbox_wake_is_never_lost() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(1, 2));
            idle.extra_started();
            let inbox = Arc::new(AtomicBool::new(false));
            let waker = {
                let (idle, inbox) = (Arc::clone(&idle), Arc::clone(&inbox));
                loom::thread::spawn(move || {
                    inbox.store(true, SeqCst);
                    idle.must_wake(1)
                })
            };
            idle.extra_sleeps(1);
            let seen = inbox.load(SeqCst);
            let woke = waker.join().unwrap();
            idle.extra_woke(1);
            assert!(
                seen || woke,
                "a thread was queued for a sleeping extra worker and nobody woke it"
            );
        });
    }
}
