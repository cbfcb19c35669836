//! [`Condvar`]: std's API, parking only the green thread.

use std::fmt;
use std::sync::LockResult;
use std::time::{Duration, Instant};

use super::mutex::MutexGuard;
use super::shim::const_fn;
use super::wait::{OnUnwind, WaitList, Waiter};
use super::{list_lock, ListLock};

/// Whether a timed wait on a [`Condvar`] ended by timing out (std's type has no public
/// constructor, so this mirrors it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the wait ended because the timeout passed.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable, like [`std::sync::Condvar`], for [`super::Mutex`].
///
/// A waiter queues itself before releasing the mutex, so a notification sent by a thread
/// that changed the condition under the mutex cannot be missed.
#[derive(Default)]
pub struct Condvar {
    waiters: ListLock,
}

impl Condvar {
    const_fn! {
        /// A new condition variable.
        pub fn new() -> Condvar {
            Condvar {
                waiters: ListLock::new(WaitList::new()),
            }
        }
    }

    /// Releases the guard's mutex, waits for a notification, and re-acquires the mutex.
    ///
    /// # Errors
    ///
    /// A `PoisonError` carrying the guard if the mutex is poisoned when re-acquired.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_until(guard, None)
            .map(|(guard, _)| guard)
            .map_err(|err| {
                let (guard, _) = err.into_inner();
                std::sync::PoisonError::new(guard)
            })
    }

    /// Waits while `condition` holds for the protected value.
    ///
    /// # Errors
    ///
    /// As [`Condvar::wait`].
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As [`Condvar::wait`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Condvar::wait`].
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        self.wait_until(guard, crate::timeout::deadline_after(timeout))
    }

    /// Waits while `condition` holds, giving up after `timeout` (the condition's last value
    /// decides `timed_out`, as std).
    ///
    /// # Errors
    ///
    /// As [`Condvar::wait`].
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = crate::timeout::deadline_after(timeout);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = match self.wait_until(guard, deadline) {
                Ok((guard, _)) => guard,
                Err(err) => {
                    return Err(std::sync::PoisonError::new((
                        err.into_inner().0,
                        WaitTimeoutResult(true),
                    )))
                }
            };
        }
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let _wait = crate::task::wait::hint(crate::task::wait::CONDVAR);
        let waiter = Waiter::new();
        list_lock(&self.waiters).push(waiter.clone());
        let mutex = guard.mutex();
        guard.release();
        let notified = waiter.wait(deadline, || {
            let mut waiters = list_lock(&self.waiters);
            if waiters.abandon(&waiter) {
                // The notification was meant for some waiter: give it to the next.
                waiters.notify_one();
            }
        });
        if !notified {
            list_lock(&self.waiters).remove(&waiter);
        }
        let result = WaitTimeoutResult(!notified);
        // A thread that unwinds while it re-locks (cancelled in the mutex's wait) never
        // acts on its notification: the next waiter gets it.
        let pass_on = OnUnwind::new(|| {
            if notified {
                self.notify_one();
            }
        });
        let relocked = mutex.lock();
        pass_on.disarm();
        match relocked {
            Ok(guard) => Ok((guard, result)),
            Err(err) => Err(std::sync::PoisonError::new((err.into_inner(), result))),
        }
    }

    /// Wakes the longest-waiting thread, if any.
    pub fn notify_one(&self) {
        list_lock(&self.waiters).notify_one();
    }

    /// Wakes every waiting thread.
    pub fn notify_all(&self) {
        list_lock(&self.waiters).notify_all();
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
