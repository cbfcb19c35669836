//! [`RwLock`]: std's API; FIFO hand-off between readers and writers.
//!
//! State word: the reader count in the low bits, `WRITER`, and `PARKED` (someone waits).
//! Uncontended `read`/`write` and their releases are one atomic op each. While anyone
//! waits, new readers and writers queue too (no reader can overtake a waiting writer).
//! When the lock becomes free with waiters queued, it is handed to the next writer, or to
//! every reader at the head of the queue at once.
//!
//! The protocol lives in [`RawRwLock`], which knows nothing of the value, so that a read
//! guard can hold it beside a pointer to the value and be covariant in the value's type,
//! as std's is (a `&RwLock<T>` would make it invariant: `T` sits in an `UnsafeCell`).

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LockResult, PoisonError, TryLockError, TryLockResult};

use super::shim::{self, const_fn, fence, AtomicUsize, Mutex, MutexGuard, Ordering};
use super::wait::Waiter;

const WRITER: usize = 1 << (usize::BITS - 1);
const PARKED: usize = 1 << (usize::BITS - 2);
const READERS: usize = PARKED - 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Read,
    Write,
}

/// A reader-writer lock, like [`std::sync::RwLock`], parking only green threads.
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    poisoned: AtomicBool,
    data: UnsafeCell<T>,
}

/// The lock itself, without the value: the state word and the queue of waiters.
struct RawRwLock {
    state: AtomicUsize,
    waiters: Mutex<VecDeque<(Kind, Arc<Waiter>)>>,
}

// SAFETY: as std's RwLock: readers share `&T` across threads (T: Sync), writers move
// exclusive access between threads (T: Send).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    const_fn! {
        /// A new unlocked lock.
        pub fn new(value: T) -> RwLock<T> {
            RwLock {
                raw: RawRwLock {
                    state: AtomicUsize::new(0),
                    waiters: Mutex::new(VecDeque::new()),
                },
                poisoned: AtomicBool::new(false),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the lock and returns its value.
    ///
    /// # Errors
    ///
    /// A `PoisonError` carrying the value if a writer panicked.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poisoned.load(std::sync::atomic::Ordering::Relaxed);
        let value = self.data.into_inner();
        super::poison_result(poisoned, value)
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access, waiting while a writer holds or waits for the lock.
    ///
    /// # Errors
    ///
    /// A `PoisonError` carrying the guard if a writer panicked.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        shim::count_call();
        if !self.raw.try_read() {
            self.raw.acquire_slow(Kind::Read);
        }
        self.poison_check(self.read_guard())
    }

    /// Exclusive access, waiting while anyone holds the lock.
    ///
    /// # Errors
    ///
    /// A `PoisonError` carrying the guard if a writer panicked.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        shim::count_call();
        if !self.raw.try_write() {
            self.raw.acquire_slow(Kind::Write);
        }
        self.poison_check(RwLockWriteGuard {
            lock: self,
            panicking: std::thread::panicking(),
            _not_send: PhantomData,
        })
    }

    /// Shared access if available now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when a writer holds or waits; `Poisoned` as `read`.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        shim::count_call();
        if !self.raw.try_read() {
            return Err(TryLockError::WouldBlock);
        }
        self.poison_check(self.read_guard())
            .map_err(TryLockError::Poisoned)
    }

    /// Exclusive access if available now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when anyone holds it; `Poisoned` as `write`.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        shim::count_call();
        if !self.raw.try_write() {
            return Err(TryLockError::WouldBlock);
        }
        self.poison_check(RwLockWriteGuard {
            lock: self,
            panicking: std::thread::panicking(),
            _not_send: PhantomData,
        })
        .map_err(TryLockError::Poisoned)
    }

    /// Whether a writer panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Clears the poison flag, like [`std::sync::RwLock::clear_poison`]: after a writer's
    /// panic, once the value is known to be consistent again.
    ///
    /// ```
    /// use greenring::sync::RwLock;
    ///
    /// let lock = RwLock::new(0);
    /// let _ = std::panic::catch_unwind(|| {
    ///     let _guard = lock.write().unwrap();
    ///     panic!("poisons the lock");
    /// });
    /// assert!(lock.is_poisoned());
    /// *lock.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = 0;
    /// lock.clear_poison();
    /// assert!(!lock.is_poisoned());
    /// ```
    pub fn clear_poison(&self) {
        self.poisoned
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    ///
    /// # Errors
    ///
    /// A `PoisonError` carrying the reference if a writer panicked.
    ///
    /// ```
    /// let mut lock = greenring::sync::RwLock::new(1);
    /// *lock.get_mut().unwrap() += 1;
    /// assert_eq!(*lock.read().unwrap(), 2);
    /// ```
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.is_poisoned();
        let value = self.data.get_mut();
        super::poison_result(poisoned, value)
    }

    fn poison_check<G>(&self, guard: G) -> LockResult<G> {
        super::poison_result(self.is_poisoned(), guard)
    }

    /// The guard of a read hold the caller just took.
    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard {
            // SAFETY: an `UnsafeCell`'s pointer is never null.
            data: unsafe { NonNull::new_unchecked(self.data.get()) },
            raw: &self.raw,
        }
    }
}

impl RawRwLock {
    /// Takes a read hold if no writer holds or waits for the lock: one CAS.
    fn try_read(&self) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        state & (WRITER | PARKED) == 0
            && self
                .state
                .compare_exchange(state, state + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes the write hold if nobody holds the lock: one CAS.
    fn try_write(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn list(&self) -> MutexGuard<'_, VecDeque<(Kind, Arc<Waiter>)>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn acquire_slow(&self, kind: Kind) {
        loop {
            let _wait = crate::task::wait::hint(crate::task::wait::LOCK);
            let waiter = Waiter::new();
            {
                let mut list = self.list();
                let state = self.state.load(Ordering::Relaxed);
                let (free, acquired) = match kind {
                    Kind::Read => (state & (WRITER | PARKED) == 0, state + 1),
                    Kind::Write => (state == 0, WRITER),
                };
                if free {
                    if self
                        .state
                        .compare_exchange(state, acquired, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return;
                    }
                    continue;
                }
                if self
                    .state
                    .compare_exchange(state, state | PARKED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                list.push_back((kind, waiter.clone()));
            }
            // Woken by `release_slow`, which handed us the lock.
            waiter.wait(None, || self.abandon(kind, &waiter));
            return;
        }
    }

    /// Takes a waiter whose wait unwinds out of the queue; if `release_slow` already handed
    /// it the lock, releases that instead (waking whoever is next).
    fn abandon(&self, kind: Kind, waiter: &Arc<Waiter>) {
        let handed = {
            let mut list = self.list();
            let handed = waiter.abandon();
            if !handed {
                list.retain(|(_, queued)| !Arc::ptr_eq(queued, waiter));
            }
            handed
        };
        if handed {
            match kind {
                Kind::Read => self.read_unlock(),
                Kind::Write => self.write_unlock(),
            }
        }
    }

    /// Turns the caller's write hold into a read hold without letting a writer in between,
    /// and admits the readers queued at the head (not a writer: it stays first in line).
    fn downgrade(&self) {
        if self
            .state
            .compare_exchange(WRITER, 1, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        // `PARKED` is set. Under the list lock the word cannot change: every other path
        // sees `WRITER` and queues (taking this lock first) or fails.
        let mut list = self.list();
        let mut woken = Vec::new();
        while list.front().is_some_and(|(kind, _)| *kind == Kind::Read) {
            woken.push(list.pop_front().expect("front exists").1);
        }
        let parked = if list.is_empty() { 0 } else { PARKED };
        // Stored before anyone is woken, as in `release_slow`: a woken reader may unlock
        // at once and must find its count in the word.
        self.state
            .store((1 + woken.len()) | parked, Ordering::Release);
        for waiter in woken {
            waiter.notify();
        }
    }

    fn read_unlock(&self) {
        let previous = self.state.fetch_sub(1, Ordering::Release);
        if previous & READERS == 1 && previous & PARKED != 0 {
            // The last reader out hands the lock on, and the writer it may go to must come
            // after every reader's reads, not only this one's. The others' decrements are
            // release RMWs this one read from (a release sequence), but a release
            // decrement acquires nothing: without this fence, neither the hand-off (this
            // thread's notify) nor `release_slow`'s plain store of the new state (which
            // starts a new release sequence, cutting the others out) would carry their
            // reads to the writer. As `Arc`'s drop, acquire only on this rare path.
            fence(Ordering::Acquire);
            self.release_slow();
        }
    }

    fn write_unlock(&self) {
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.release_slow();
        }
    }

    /// Hands the free lock to the head of the queue (under the list lock, `PARKED` set, no
    /// holder left).
    ///
    /// The new state is stored *before* anyone is woken: a woken reader may finish and run
    /// the lock-free `read_unlock` at once, and must find its own count in the word (loom
    /// found the lost writer wake-up of storing afterwards).
    fn release_slow(&self) {
        let mut list = self.list();
        let mut woken = Vec::new();
        let state = match list.front().map(|(kind, _)| *kind) {
            None => 0,
            Some(Kind::Write) => {
                woken.push(list.pop_front().expect("front exists").1);
                WRITER
            }
            Some(Kind::Read) => {
                while list.front().is_some_and(|(kind, _)| *kind == Kind::Read) {
                    woken.push(list.pop_front().expect("front exists").1);
                }
                woken.len()
            }
        };
        let parked = if list.is_empty() { 0 } else { PARKED };
        self.state.store(state | parked, Ordering::Release);
        for waiter in woken {
            waiter.notify();
        }
    }
}

// As std's: poisoning reports a panic that left the value half-updated, so the lock may
// cross a `catch_unwind` boundary.
impl<T: ?Sized> std::panic::UnwindSafe for RwLock<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for RwLock<T> {}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => d.field("data", &&*guard),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

/// Shared access to an [`RwLock`]'s value.
///
/// As std's: covariant in `T` (a guard of `&'static str` is a guard of a shorter-lived
/// `&str`), not `Send` (the hold belongs to the thread that took it), and `Sync` when `T`
/// is.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    /// The value, as a pointer rather than a `&'a T` (as std's): the guard's `&T` is valid
    /// until the guard drops, not for the whole of `'a`. `NonNull` keeps the guard
    /// covariant in `T`, and makes it neither `Send` nor `Sync` by itself.
    data: NonNull<T>,
    raw: &'a RawRwLock,
}

// SAFETY: sharing the guard shares only `&T`, which is fine when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `data` points at the value of the lock whose read hold this guard owns,
        // and no writer can hold the lock until the guard drops.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.raw.read_unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// Exclusive access to an [`RwLock`]'s value.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    panicking: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turns a write guard into a read guard atomically, like std's
    /// `RwLockWriteGuard::downgrade` (Rust 1.92): no writer can take the lock in between,
    /// and readers queued first in line share it at once. A writer queued before them
    /// keeps its place, and gets the lock when the last reader leaves.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenring::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let lock = RwLock::new(1);
    /// let mut writer = lock.write().unwrap();
    /// *writer += 1;
    /// let reader = RwLockWriteGuard::downgrade(writer);
    /// assert_eq!(*reader, 2);
    /// assert_eq!(*lock.try_read().unwrap(), 2); // other readers get in too
    /// assert!(lock.try_write().is_err());
    /// ```
    pub fn downgrade(guard: RwLockWriteGuard<'a, T>) -> RwLockReadGuard<'a, T> {
        let guard = std::mem::ManuallyDrop::new(guard);
        let lock = guard.lock;
        if !guard.panicking && std::thread::panicking() {
            lock.poisoned
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        lock.raw.downgrade();
        lock.read_guard()
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a write guard proves exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a write guard proves exclusive access.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        if !self.panicking && std::thread::panicking() {
            self.lock
                .poisoned
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.lock.raw.write_unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
