//! [`Semaphore`]: counting permits, handed to waiters in FIFO order.
//!
//! One state word holds the free permits (low 32 bits) and the number of queued waiters
//! (high 32 bits), and every decision is a CAS on it: `acquire` with a permit free is one
//! CAS; a waiter counts itself in (or finds a permit after all) with a CAS made under the
//! list's lock; `release` adds a permit when nobody waits, and otherwise, under the list's
//! lock, takes a waiter out of the count and hands its permit straight to the longest
//! waiter. (An earlier version kept the two counts in two words and relied on SeqCst
//! ordering between them; loom found the lost wake-up that ordering does not exclude.)

use std::fmt;

use super::shim::{self, const_fn, AtomicU64, Ordering::AcqRel, Ordering::Acquire};
use super::wait::{WaitList, Waiter};
use super::{list_lock, ListLock};

/// One queued waiter in the state word.
const WAITER: u64 = 1 << 32;
/// The free permits in the state word.
const PERMITS: u64 = WAITER - 1;

/// A counting semaphore whose `acquire` parks only the calling green thread.
///
/// ```
/// use std::sync::Arc;
/// use greenring::sync::Semaphore;
///
/// let slots = Arc::new(Semaphore::new(2));
/// let permit = slots.acquire();
/// assert_eq!(slots.available_permits(), 1);
/// drop(permit);
/// assert_eq!(slots.available_permits(), 2);
/// ```
pub struct Semaphore {
    state: AtomicU64,
    waiters: ListLock,
}

impl Semaphore {
    const_fn! {
        /// A semaphore with `permits` permits.
        ///
        /// # Panics
        ///
        /// With 2^32 permits or more.
        pub fn new(permits: usize) -> Semaphore {
            assert!((permits as u64) < WAITER, "a Semaphore holds fewer than 2^32 permits");
            Semaphore {
                state: AtomicU64::new(permits as u64),
                waiters: ListLock::new(WaitList::new()),
            }
        }
    }

    /// Permits available right now.
    pub fn available_permits(&self) -> usize {
        (self.state.load(Acquire) & PERMITS) as usize
    }

    /// Takes a permit, waiting for one if none is left; it returns when the guard drops.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        shim::count_call();
        if self.try_take() {
            return SemaphorePermit { semaphore: self };
        }
        let _wait = crate::task::wait::hint(crate::task::wait::SEMAPHORE);
        let waiter = Waiter::new();
        {
            let mut waiters = list_lock(&self.waiters);
            let mut state = self.state.load(Acquire);
            loop {
                let (next, took) = if state & PERMITS > 0 {
                    (state - 1, true)
                } else {
                    (state + WAITER, false)
                };
                match self
                    .state
                    .compare_exchange_weak(state, next, AcqRel, Acquire)
                {
                    Ok(_) if took => return SemaphorePermit { semaphore: self },
                    Ok(_) => break,
                    Err(actual) => state = actual,
                }
            }
            waiters.push(waiter.clone());
        }
        // `release` handed us a permit.
        waiter.wait(None, || {
            let handed = {
                let mut waiters = list_lock(&self.waiters);
                let handed = waiters.abandon(&waiter);
                if !handed {
                    // Left the list: leave the count too (both change under the lock).
                    self.state.fetch_sub(WAITER, AcqRel);
                }
                handed
            };
            if handed {
                self.release();
            }
        });
        SemaphorePermit { semaphore: self }
    }

    /// Takes a permit if one is left.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        shim::count_call();
        // (Not `then_some`: it would make a permit, and drop it, releasing a permit that
        // was never taken, even when none is left.)
        if self.try_take() {
            Some(SemaphorePermit { semaphore: self })
        } else {
            None
        }
    }

    /// Adds `n` permits (beyond the initial count, or back after `forget`).
    pub fn add_permits(&self, n: usize) {
        for _ in 0..n {
            self.release();
        }
    }

    fn try_take(&self) -> bool {
        let mut state = self.state.load(Acquire);
        while state & PERMITS > 0 {
            match self
                .state
                .compare_exchange_weak(state, state - 1, AcqRel, Acquire)
            {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
        false
    }

    fn release(&self) {
        let mut state = self.state.load(Acquire);
        while state < WAITER {
            match self
                .state
                .compare_exchange_weak(state, state + 1, AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        // Someone waits: hand the permit over, under the list's lock (where waiters count
        // themselves in, so count and list agree).
        let mut waiters = list_lock(&self.waiters);
        let mut state = self.state.load(Acquire);
        loop {
            let next = if state >= WAITER {
                state - WAITER
            } else {
                state + 1
            };
            match self
                .state
                .compare_exchange_weak(state, next, AcqRel, Acquire)
            {
                Ok(_) if state >= WAITER => {
                    let woke = waiters.notify_one();
                    debug_assert!(woke, "a counted waiter is queued (acquire has no timeout)");
                    return;
                }
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.available_permits())
            .finish_non_exhaustive()
    }
}

/// A permit of a [`Semaphore`]; released when dropped.
#[must_use = "the permit is released at once if unused"]
#[derive(Debug)]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken for good (the semaphore has one permit fewer).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.semaphore.release();
    }
}
