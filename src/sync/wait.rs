//! The wait-queue mechanism every primitive in `sync` shares.
//!
//! A [`Waiter`] is one blocked thread (green or OS) and its state word; a [`WaitList`] is a
//! FIFO of waiters that a primitive keeps under its own lock. A thread waits with
//! [`Waiter::wait`], which parks it with [`crate::park`] (only the green thread on a green
//! thread, the OS thread otherwise) until [`Waiter::notify`] or its deadline.
//!
//! # Protocol
//!
//! A waiter's state goes `WAITING -> NOTIFIED` (by a notifier) or `WAITING -> GONE` (by the
//! waiter itself when its deadline passes or its wait unwinds), never both: exactly one of
//! the two CAS succeeds. A notifier whose CAS fails skips that waiter and notifies the next
//! one, so a timed-out waiter that is still in a list costs nothing but a skip. Primitives
//! that hand ownership over (a mutex's lock, a semaphore's permit) do so exactly when
//! `notify` returns `true`: the woken thread then owns it without touching the primitive's
//! state again.
//!
//! A waiter enqueues itself while holding the primitive's lock and after checking, under
//! that lock, that it must wait; a notifier dequeues under the same lock. So a wake-up
//! cannot fall between the check and the enqueue.
//!
//! # A wait that unwinds
//!
//! A green thread whose runtime shuts down unwinds with `Cancelled` from inside `park`. The
//! wait then runs the primitive's `on_unwind` during the unwind, which takes the list's lock
//! and calls [`WaitList::abandon`] (or does the same on its own list): under that lock the
//! waiter is either still queued, so it turns `GONE` and leaves, or a notifier already
//! chose it. In the second case it owns whatever the notifier handed over, and `on_unwind`
//! passes that on (unlocks, releases the permit, notifies the next waiter), so nothing is
//! handed to a thread that is gone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::shim::{self, AtomicU8, Ordering, Thread};

const WAITING: u8 = 0;
const NOTIFIED: u8 = 1;
const GONE: u8 = 2;

/// One blocked thread.
#[derive(Debug)]
pub(crate) struct Waiter {
    thread: Thread,
    state: AtomicU8,
}

impl Waiter {
    /// A waiter for the calling thread.
    pub(crate) fn new() -> Arc<Waiter> {
        Arc::new(Waiter {
            thread: shim::current(),
            state: AtomicU8::new(WAITING),
        })
    }

    /// Wakes the waiter if it still waits; `true` if this call woke it (and so handed it
    /// whatever the caller hands over).
    pub(crate) fn notify(&self) -> bool {
        if self
            .state
            .compare_exchange(WAITING, NOTIFIED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            shim::unpark(&self.thread);
            true
        } else {
            false
        }
    }

    /// Blocks until notified (`true`) or until `deadline` passes (`false`). Must be called
    /// by the thread that created the waiter.
    ///
    /// If the wait unwinds (its green thread is cancelled in `park`), `on_unwind` runs
    /// during the unwind and must take the waiter out of its queue, passing on anything a
    /// notifier handed it (see the module documentation); it must not panic.
    pub(crate) fn wait(&self, deadline: Option<Instant>, on_unwind: impl FnOnce()) -> bool {
        let armed = OnUnwind::new(on_unwind);
        match self.wait_inner(deadline) {
            Ok(notified) => {
                armed.disarm();
                notified
            }
            Err(shim::Cancelled) => {
                // Only under loom: clean up as the unwind would, then unwind.
                drop(armed);
                std::panic::resume_unwind(Box::new(crate::task::Cancelled))
            }
        }
    }

    fn wait_inner(&self, deadline: Option<Instant>) -> Result<bool, shim::Cancelled> {
        loop {
            if self.state.load(Ordering::Acquire) == NOTIFIED {
                return Ok(true);
            }
            match deadline {
                None => shim::park()?,
                Some(deadline) => {
                    if shim::timed_out(deadline) {
                        // Either we leave, or a notifier won the race and we were notified.
                        return Ok(self
                            .state
                            .compare_exchange(WAITING, GONE, Ordering::AcqRel, Ordering::Acquire)
                            .is_err());
                    }
                    shim::park_timeout(deadline.saturating_duration_since(Instant::now()))?;
                }
            }
        }
    }

    /// Gives up waiting without a wake-up: `true` when a notifier chose this waiter first
    /// (it then owns what the notifier handed over), `false` when it is now `GONE` (or was
    /// already, after its deadline), so no notifier will choose it.
    pub(crate) fn abandon(&self) -> bool {
        match self
            .state
            .compare_exchange(WAITING, GONE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(state) => state == NOTIFIED,
        }
    }
}

/// Runs its closure when dropped during an unwind (it is disarmed on a normal return).
pub(crate) struct OnUnwind<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnUnwind<F> {
    /// Armed with `on_unwind`, which must not panic.
    pub(crate) fn new(on_unwind: F) -> OnUnwind<F> {
        OnUnwind(Some(on_unwind))
    }

    /// The guarded code returned: forget the closure.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        if let Some(on_unwind) = self.0.take() {
            on_unwind();
        }
    }
}

/// Waiters in arrival order.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    waiters: VecDeque<Arc<Waiter>>,
}

impl WaitList {
    /// An empty list (usable in `const` contexts).
    pub(crate) const fn new() -> WaitList {
        WaitList {
            waiters: VecDeque::new(),
        }
    }

    /// Appends a waiter.
    pub(crate) fn push(&mut self, waiter: Arc<Waiter>) {
        self.waiters.push_back(waiter);
    }

    /// Notifies the longest-waiting waiter that still waits; `false` if none does.
    pub(crate) fn notify_one(&mut self) -> bool {
        while let Some(waiter) = self.waiters.pop_front() {
            if waiter.notify() {
                return true;
            }
        }
        false
    }

    /// Notifies every waiter; returns how many it woke.
    pub(crate) fn notify_all(&mut self) -> usize {
        self.waiters.drain(..).filter(|w| w.notify()).count()
    }

    /// Takes `waiter` out of the list when its wait ends without a wake-up; `true` when a
    /// notifier had chosen it already (it was no longer queued, and the caller now owns
    /// what was handed over and must pass it on). Called with the primitive's lock held, so
    /// "still queued" and "not chosen" are the same fact.
    pub(crate) fn abandon(&mut self, waiter: &Arc<Waiter>) -> bool {
        let chosen = waiter.abandon();
        if !chosen {
            self.remove(waiter);
        }
        chosen
    }

    /// Removes `waiter` (after it timed out, or a selector leaving its other lists).
    pub(crate) fn remove(&mut self, waiter: &Arc<Waiter>) {
        self.waiters.retain(|w| !Arc::ptr_eq(w, waiter));
    }

    /// `true` when no waiter is queued (timed-out ones not yet skipped count as queued).
    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn notify_wakes_in_fifo_order_and_skips_the_gone() {
        let mut list = WaitList::new();
        let first = Waiter::new();
        let second = Waiter::new();
        list.push(Arc::clone(&first));
        list.push(Arc::clone(&second));
        // `first` times out (nobody notified it in time).
        assert!(!first.wait(Some(Instant::now()), || ()));
        assert!(list.notify_one(), "skips the gone waiter, wakes the next");
        assert!(second.wait(None, || ()));
        assert!(!list.notify_one());
    }

    #[test]
    fn a_racing_notify_and_timeout_agree() {
        for _ in 0..1000 {
            let waiter = Waiter::new();
            let notifier = {
                let waiter = Arc::clone(&waiter);
                std::thread::spawn(move || waiter.notify())
            };
            let woke = waiter.wait(Some(Instant::now() + Duration::from_micros(50)), || ());
            let notified = notifier.join().unwrap();
            assert_eq!(woke, notified, "exactly one side wins");
        }
    }
}
