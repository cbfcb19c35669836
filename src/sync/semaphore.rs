//! [`Semaphore`]: counting permits, handed to waiters in FIFO order.
//!
//! `acquire` with permits left is one CAS. A waiter counts itself in `waiting` and then
//! re-checks the permits, both under the list's lock; `release` adds its permit and then
//! reads `waiting`. Both sides use SeqCst, so at least one sees the other: either the
//! waiter finds the permit, or the releaser sees the waiter and hands a permit over.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use super::wait::{WaitList, Waiter};
use super::{list_lock, ListLock};

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
    permits: AtomicUsize,
    /// Queued waiters not yet handed a permit.
    waiting: AtomicUsize,
    waiters: ListLock,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            permits: AtomicUsize::new(permits),
            waiting: AtomicUsize::new(0),
            waiters: ListLock::new(WaitList::new()),
        }
    }

    /// Permits available right now.
    pub fn available_permits(&self) -> usize {
        self.permits.load(SeqCst)
    }

    /// Takes a permit, waiting for one if none is left; it returns when the guard drops.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        if self.try_take() {
            return SemaphorePermit { semaphore: self };
        }
        let waiter = Waiter::new();
        {
            let mut waiters = list_lock(&self.waiters);
            self.waiting.fetch_add(1, SeqCst);
            if self.try_take() {
                self.waiting.fetch_sub(1, SeqCst);
                return SemaphorePermit { semaphore: self };
            }
            waiters.push(waiter.clone());
        }
        // `release` handed us a permit.
        waiter.wait(None);
        SemaphorePermit { semaphore: self }
    }

    /// Takes a permit if one is left.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_take()
            .then_some(SemaphorePermit { semaphore: self })
    }

    /// Adds `n` permits (beyond the initial count, or back after `forget`).
    pub fn add_permits(&self, n: usize) {
        for _ in 0..n {
            self.release();
        }
    }

    fn try_take(&self) -> bool {
        let mut permits = self.permits.load(SeqCst);
        while permits > 0 {
            match self
                .permits
                .compare_exchange_weak(permits, permits - 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => permits = actual,
            }
        }
        false
    }

    fn release(&self) {
        self.permits.fetch_add(1, SeqCst);
        if self.waiting.load(SeqCst) == 0 {
            return;
        }
        let mut waiters = list_lock(&self.waiters);
        while self.waiting.load(SeqCst) > 0 && self.try_take() {
            if waiters.notify_one() {
                self.waiting.fetch_sub(1, SeqCst);
            } else {
                self.permits.fetch_add(1, SeqCst);
                break;
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
