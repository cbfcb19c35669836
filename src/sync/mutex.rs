//! [`Mutex`]: std's API, parking only the green thread.
//!
//! State word: `LOCKED` (someone holds it) and `PARKED` (the wait list may be non-empty).
//! Uncontended `lock` and `unlock` are one CAS each. A contended `lock` spins briefly,
//! then queues under the list's lock after checking (there) that the mutex is still held
//! and setting `PARKED`. `unlock` with `PARKED` set hands the lock to the longest waiter:
//! the word stays `LOCKED` and the woken thread owns the mutex, so waiters are served in
//! FIFO order and none starves.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicBool;
use std::sync::{LockResult, TryLockError, TryLockResult};

use super::shim::{self, const_fn, AtomicU8, Ordering};
use super::wait::{WaitList, Waiter};
use super::{list_lock, ListLock};

const LOCKED: u8 = 1;
const PARKED: u8 = 2;
/// Spins before queueing: a lock is usually held for less than a switch costs.
const SPINS: u32 = 64;

/// A mutual exclusion lock, like [`std::sync::Mutex`], whose `lock` parks only the calling
/// green thread (or blocks the OS thread off green threads).
///
/// ```
/// use std::sync::Arc;
/// use greenring::sync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0));
/// let handles: Vec<_> = (0..100)
///     .map(|_| {
///         let counter = Arc::clone(&counter);
///         greenring::spawn(move || *counter.lock().unwrap() += 1)
///     })
///     .collect();
/// handles.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(*counter.lock().unwrap(), 100);
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicU8,
    /// The id of the green thread holding the lock (0: none, or an OS thread): written by
    /// the holder, read by a waiter to say whom it waits for (see `task::wait::lock`).
    holder: std::sync::atomic::AtomicU64,
    poisoned: AtomicBool,
    waiters: ListLock,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `data` to one thread at a time, so it may be
// shared and sent between threads whenever `T` may be sent.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    const_fn! {
        /// A new unlocked mutex.
        pub fn new(value: T) -> Mutex<T> {
            Mutex {
                state: AtomicU8::new(0),
                holder: std::sync::atomic::AtomicU64::new(0),
                poisoned: AtomicBool::new(false),
                waiters: ListLock::new(WaitList::new()),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the mutex and returns its value.
    ///
    /// # Errors
    ///
    /// A `PoisonError` carrying the value if a holder panicked.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poisoned.load(std::sync::atomic::Ordering::Relaxed);
        let value = self.data.into_inner();
        super::poison_result(poisoned, value)
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the mutex, waiting while another thread holds it.
    ///
    /// # Errors
    ///
    /// A `PoisonError` carrying the guard if a holder panicked while holding it.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let me = shim::count_call_id();
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        self.held(me);
        MutexGuard::new(self)
    }

    /// Records the calling thread (`me`: its id, 0 off green threads) as the holder, right
    /// after it acquired the lock.
    fn held(&self, me: u64) {
        self.holder.store(me, std::sync::atomic::Ordering::Relaxed);
    }

    /// Acquires the mutex if it is free.
    ///
    /// # Errors
    ///
    /// `TryLockError::WouldBlock` when it is held; `Poisoned` as `lock`.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        let me = shim::count_call_id();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED != 0 {
                return Err(TryLockError::WouldBlock);
            }
            match self.state.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.held(me);
                    return MutexGuard::new(self).map_err(TryLockError::Poisoned);
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Whether a holder panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Clears the poison flag.
    pub fn clear_poison(&self) {
        self.poisoned
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    ///
    /// # Errors
    ///
    /// A `PoisonError` carrying the reference if a holder panicked.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.is_poisoned();
        let value = self.data.get_mut();
        super::poison_result(poisoned, value)
    }

    fn lock_contended(&self) {
        let mut spins = 0;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state & LOCKED == 0 {
                if self
                    .state
                    .compare_exchange_weak(
                        state,
                        state | LOCKED,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            if state & PARKED == 0 && spins < SPINS {
                spins += 1;
                shim::spin_loop();
                continue;
            }
            let holder = self.holder.load(std::sync::atomic::Ordering::Relaxed);
            let _wait = crate::task::wait::lock(self as *const Self as *const u8 as usize, holder);
            let waiter = Waiter::new();
            {
                let mut waiters = list_lock(&self.waiters);
                let state = self.state.load(Ordering::Relaxed);
                if state & LOCKED == 0
                    || self
                        .state
                        .compare_exchange(
                            state,
                            state | PARKED,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_err()
                {
                    continue;
                }
                waiters.push(waiter.clone());
            }
            // Woken by `unlock_slow`, which handed us the lock.
            waiter.wait(None, || {
                let handed = list_lock(&self.waiters).abandon(&waiter);
                if handed {
                    self.unlock();
                }
            });
            return;
        }
    }

    /// Releases the mutex (the guard's drop).
    fn unlock(&self) {
        self.holder.store(0, std::sync::atomic::Ordering::Relaxed);
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    fn unlock_slow(&self) {
        let mut waiters = list_lock(&self.waiters);
        if waiters.notify_one() {
            // Handed over: stays locked; parked while others still wait.
            let parked = if waiters.is_empty() { 0 } else { PARKED };
            self.state.store(LOCKED | parked, Ordering::Release);
        } else {
            self.state.store(0, Ordering::Release);
        }
    }

    /// Releases the lock held by a guard that is being taken apart (`Condvar::wait`).
    pub(super) fn unlock_for_wait(&self) {
        self.unlock();
    }
}

// As std's: poisoning reports a panic that left the value half-updated, so the lock may
// cross a `catch_unwind` boundary.
impl<T: ?Sized> std::panic::UnwindSafe for Mutex<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for Mutex<T> {}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

/// Access to a locked [`Mutex`]'s value; unlocks when dropped.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    mutex: &'a Mutex<T>,
    /// Whether the thread was already panicking when it locked (then a panic does not
    /// poison).
    panicking: bool,
    /// Not `Send`, as std's guard.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard shares `&T`, which is fine when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    fn new(mutex: &'a Mutex<T>) -> LockResult<MutexGuard<'a, T>> {
        let guard = MutexGuard {
            mutex,
            panicking: std::thread::panicking(),
            _not_send: PhantomData,
        };
        super::poison_result(mutex.is_poisoned(), guard)
    }

    /// The mutex, for `Condvar` to release and re-acquire.
    pub(super) fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Releases the lock without poisoning checks and forgets the guard (`Condvar`).
    pub(super) fn release(self) -> &'a Mutex<T> {
        let mutex = self.mutex;
        self.poison_if_panicking();
        std::mem::forget(self);
        mutex.unlock_for_wait();
        mutex
    }

    fn poison_if_panicking(&self) {
        if !self.panicking && std::thread::panicking() {
            self.mutex
                .poisoned
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the lock.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this thread holds the lock, and `&mut self` that this is
        // the only access through it.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.poison_if_panicking();
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
