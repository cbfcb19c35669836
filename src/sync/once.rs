//! [`Once`], [`OnceLock`] and [`LazyLock`]: std's API, with callers that wait for a
//! running initialiser parked (green threads) instead of blocking their OS thread.
//!
//! With std's versions, an initialiser that parks its green thread (greenring I/O, a lock,
//! a sleep) while another green thread of the same worker waits for it deadlocks that
//! worker: the waiter blocks the OS thread the initialiser must resume on. Here the wait
//! is a greenring [`Mutex`] held across the initialiser, and [`Once::wait`] waits on a
//! [`Condvar`] told whenever an initialiser returns or panics. The initialised path is one
//! acquire load, as std's.

use std::cell::UnsafeCell;
use std::convert::Infallible;
use std::fmt;
use std::ops::Deref;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use super::shim::const_fn;
use super::{Condvar, Mutex, MutexGuard};

/// A one-time initialisation, like [`std::sync::Once`], whose waiters park.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use greenring::sync::Once;
///
/// static INIT: Once = Once::new();
/// static RUNS: AtomicU32 = AtomicU32::new(0);
///
/// let handles: Vec<_> = (0..10)
///     .map(|_| {
///         greenring::spawn(|| {
///             INIT.call_once(|| {
///                 greenring::time::sleep(std::time::Duration::from_millis(1)); // may park
///                 RUNS.fetch_add(1, Ordering::Relaxed);
///             });
///             assert!(INIT.is_completed());
///         })
///     })
///     .collect();
/// handles.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(RUNS.load(Ordering::Relaxed), 1);
/// ```
pub struct Once {
    /// Set (release) once an initialiser returned; never cleared.
    done: AtomicBool,
    /// Held by the running initialiser; poisoned when one panicked.
    lock: Mutex<()>,
    /// Notified (all) under `lock` whenever an initialiser returns or panics, for the
    /// threads in [`Once::wait`].
    ended: Condvar,
}

/// The state handed to [`Once::call_once_force`]'s closure, like [`std::sync::OnceState`].
#[derive(Debug)]
pub struct OnceState {
    poisoned: bool,
}

impl OnceState {
    /// Whether an earlier initialiser panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

impl Once {
    const_fn! {
        /// A new `Once`, not yet run.
        pub fn new() -> Once {
            Once {
                done: AtomicBool::new(false),
                lock: Mutex::new(()),
                ended: Condvar::new(),
            }
        }
    }

    /// Runs `f` if no initialiser has completed yet; callers that arrive while one runs
    /// wait for it (parked, on a green thread). When this returns, an initialiser has
    /// completed, and what it wrote is visible.
    ///
    /// # Panics
    ///
    /// If an earlier initialiser panicked (the `Once` is poisoned); the panic of `f`
    /// itself propagates, and poisons it.
    #[track_caller]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let _ = self.run(false, |_| {
            f();
            Ok::<(), Infallible>(())
        });
    }

    /// As [`call_once`](Once::call_once), but runs even when an earlier initialiser
    /// panicked; `f` learns that from its [`OnceState`], and its success clears the
    /// poison.
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let _ = self.run(true, |state| {
            f(state);
            Ok::<(), Infallible>(())
        });
    }

    /// Whether an initialiser has completed.
    pub fn is_completed(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Waits until an initialiser has completed, like [`std::sync::Once::wait`] (Rust 1.86),
    /// without running one: parked, on a green thread, so the thread that will run it may
    /// share the waiter's worker. When this returns, what the initialiser wrote is visible.
    ///
    /// # Panics
    ///
    /// If the `Once` is poisoned (an initialiser panicked), when called and when an
    /// initialiser panics while this waits; [`wait_force`](Once::wait_force) waits on
    /// through the poison instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use greenring::sync::Once;
    ///
    /// static READY: Once = Once::new();
    /// static VALUE: AtomicU32 = AtomicU32::new(0);
    ///
    /// let waiter = greenring::spawn(|| {
    ///     READY.wait(); // parks until the other thread has run its initialiser
    ///     VALUE.load(Ordering::Relaxed)
    /// });
    /// greenring::spawn(|| READY.call_once(|| VALUE.store(7, Ordering::Relaxed)));
    /// assert_eq!(waiter.join().unwrap(), 7);
    /// ```
    pub fn wait(&self) {
        self.wait_completed(false);
    }

    /// As [`wait`](Once::wait), but a poisoned `Once` does not make it panic: it waits until
    /// an initialiser completes (one run by [`call_once_force`](Once::call_once_force)),
    /// like [`std::sync::Once::wait_force`] (Rust 1.86).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenring::sync::Once;
    ///
    /// static INIT: Once = Once::new();
    ///
    /// let failed = std::panic::catch_unwind(|| INIT.call_once(|| panic!("fails")));
    /// assert!(failed.is_err());
    /// let waiter = greenring::spawn(|| INIT.wait_force());
    /// INIT.call_once_force(|state| assert!(state.is_poisoned()));
    /// waiter.join().unwrap();
    /// ```
    pub fn wait_force(&self) {
        self.wait_completed(true);
    }

    fn wait_completed(&self, ignore_poison: bool) {
        if self.is_completed() {
            return;
        }
        let mut guard = self.relock(self.lock.lock(), ignore_poison);
        while !self.is_completed() {
            guard = self.relock(self.ended.wait(guard), ignore_poison);
        }
    }

    /// The guard of `lock`'s result, unless it says the `Once` is poisoned and that
    /// matters.
    #[track_caller]
    fn relock<'a>(
        &self,
        locked: std::sync::LockResult<MutexGuard<'a, ()>>,
        ignore_poison: bool,
    ) -> MutexGuard<'a, ()> {
        match locked {
            Ok(guard) => guard,
            Err(poison) if ignore_poison => poison.into_inner(),
            Err(_) => panic!("Once instance has previously been poisoned"),
        }
    }

    /// Runs `f` under the lock unless an initialiser completed; `Ok` from `f` completes
    /// the `Once`, `Err` leaves it for the next caller.
    #[track_caller]
    fn run<E>(
        &self,
        ignore_poison: bool,
        f: impl FnOnce(&OnceState) -> Result<(), E>,
    ) -> Result<(), E> {
        let (_guard, poisoned) = match self.lock.lock() {
            Ok(guard) => (guard, false),
            Err(poison) if ignore_poison => (poison.into_inner(), true),
            Err(_) => panic!("Once instance has previously been poisoned"),
        };
        if self.is_completed() {
            return Ok(());
        }
        // However this run ends (a return, an `Err`, a panic), the threads in `wait` look
        // again; dropped before `guard`, so they are told under the lock.
        let _tell = TellWaiters(&self.ended);
        f(&OnceState { poisoned })?;
        self.done.store(true, Ordering::Release);
        if poisoned {
            self.lock.clear_poison();
        }
        Ok(())
    }
}

/// Wakes every thread in [`Once::wait`] when dropped.
struct TellWaiters<'a>(&'a Condvar);

impl Drop for TellWaiters<'_> {
    fn drop(&mut self) {
        self.0.notify_all();
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

/// A cell written once, like [`std::sync::OnceLock`], whose waiters park.
///
/// A panicking initialiser leaves the cell empty, and the next caller tries again.
///
/// # Examples
///
/// ```
/// use greenring::sync::OnceLock;
///
/// static CONFIG: OnceLock<String> = OnceLock::new();
///
/// let handle = greenring::spawn(|| {
///     CONFIG.get_or_init(|| {
///         greenring::time::sleep(std::time::Duration::from_millis(1)); // may park
///         "from the file".to_owned()
///     })
/// });
/// assert_eq!(handle.join().unwrap(), "from the file");
/// assert_eq!(CONFIG.get().map(String::as_str), Some("from the file"));
/// ```
pub struct OnceLock<T> {
    once: Once,
    /// `Some` exactly when `once` is completed (both change together, under its lock or
    /// through `&mut self`). An `Option` rather than a `MaybeUninit`, so that the cell needs
    /// no `Drop` of its own: dropping the `Option` drops the value, and the drop check is
    /// std's (which uses the unstable `#[may_dangle]`): a cell may hold a borrow of
    /// something dropped before it, unless the held value's own `Drop` could read it.
    value: UnsafeCell<Option<T>>,
}

// SAFETY: as std's OnceLock: `&OnceLock` hands out `&T` to many threads (T: Sync) and
// lets any of them write the value (T: Send); moving the cell moves the value.
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}

impl<T> OnceLock<T> {
    const_fn! {
        /// A new empty cell.
        pub fn new() -> OnceLock<T> {
            OnceLock {
                once: Once::new(),
                value: UnsafeCell::new(None),
            }
        }
    }

    /// The value, if the cell is initialised. Never waits.
    pub fn get(&self) -> Option<&T> {
        if self.once.is_completed() {
            // SAFETY: completed (acquire) means the value was written, and it is never
            // written again while shared.
            unsafe { (*self.value.get()).as_ref() }
        } else {
            None
        }
    }

    /// The value, mutably, if the cell is initialised.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.value.get_mut().as_mut()
    }

    /// Waits until the cell is initialised, and returns its value, like
    /// [`std::sync::OnceLock::wait`] (Rust 1.86): parked, on a green thread, so the thread
    /// that initialises it may share the waiter's worker. An initialiser that panics sets
    /// nothing, and the wait goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenring::sync::OnceLock;
    ///
    /// static PORT: OnceLock<u16> = OnceLock::new();
    ///
    /// let client = greenring::spawn(|| *PORT.wait()); // parks until the port is known
    /// greenring::spawn(|| PORT.set(8080).unwrap());
    /// assert_eq!(client.join().unwrap(), 8080);
    /// ```
    pub fn wait(&self) -> &T {
        self.once.wait_force();
        self.get().expect("a completed cell holds a value")
    }

    /// Initialises the cell with `value`; `Err(value)` if it was initialised already.
    /// Waits while another thread initialises it.
    ///
    /// # Errors
    ///
    /// `Err(value)` when the cell already holds a value.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("taken once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// The value, initialising the cell with `f` first if it is empty. Callers that arrive
    /// while another runs its `f` wait for it (parked, on a green thread), and `f` may
    /// itself park.
    ///
    /// # Panics
    ///
    /// The panic of `f` propagates, and leaves the cell empty. `f` initialising the same
    /// cell (reentrantly) deadlocks.
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        match self.get_or_try_init(|| Ok::<T, Infallible>(f())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    fn get_or_try_init<E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        if let Some(value) = self.get() {
            return Ok(value);
        }
        self.once.run(true, |_| {
            let value = f()?;
            // SAFETY: under the once's lock with no value written: nobody reads the slot
            // until `done` is published after this write.
            unsafe { *self.value.get() = Some(value) };
            Ok(())
        })?;
        Ok(self.get().expect("initialised"))
    }

    /// The value, consuming the cell.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        *self.once.done.get_mut() = false;
        self.value.get_mut().take()
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> OnceLock<T> {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        cell
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        match self.get() {
            Some(value) => OnceLock::from(value.clone()),
            None => OnceLock::new(),
        }
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(value) => d.field(value),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

/// A value computed on first access, like [`std::sync::LazyLock`], whose waiters park.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use greenring::sync::LazyLock;
///
/// static TABLE: LazyLock<HashMap<u32, &str>> = LazyLock::new(|| {
///     greenring::time::sleep(std::time::Duration::from_millis(1)); // may park
///     HashMap::from([(1, "one"), (2, "two")])
/// });
///
/// let readers: Vec<_> = (1..=2).map(|k| greenring::spawn(move || TABLE[&k])).collect();
/// let names: Vec<_> = readers.into_iter().map(|h| h.join().unwrap()).collect();
/// assert_eq!(names, ["one", "two"]);
/// ```
pub struct LazyLock<T, F = fn() -> T> {
    cell: OnceLock<T>,
    /// Taken by the one initialiser, under the cell's lock.
    init: UnsafeCell<Option<F>>,
}

// SAFETY: as std's LazyLock: shared access hands out `&T` (T: Sync) and runs `F` on one
// thread, under the cell's lock (T: Send, F: Send).
unsafe impl<T: Sync + Send, F: Send> Sync for LazyLock<T, F> {}

impl<T: RefUnwindSafe + UnwindSafe, F: UnwindSafe> RefUnwindSafe for LazyLock<T, F> {}
impl<T: UnwindSafe, F: UnwindSafe> UnwindSafe for LazyLock<T, F> {}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    const_fn! {
        /// A lazy value computed by `f` on first access.
        pub fn new(f: F) -> LazyLock<T, F> {
            LazyLock {
                cell: OnceLock::new(),
                init: UnsafeCell::new(Some(f)),
            }
        }
    }

    /// The value, computing it first if needed; callers that arrive while it is computed
    /// wait (parked, on a green thread).
    ///
    /// # Panics
    ///
    /// The panic of the initialiser propagates, and poisons the `LazyLock`: every later
    /// access panics.
    pub fn force(this: &LazyLock<T, F>) -> &T {
        this.cell.get_or_init(|| {
            // SAFETY: the cell runs this closure under its lock, at most until one run
            // returns, so the slot is never touched by two threads at once.
            match unsafe { (*this.init.get()).take() } {
                Some(f) => f(),
                None => panic!("LazyLock instance has previously been poisoned"),
            }
        })
    }
}

impl<T, F: FnOnce() -> T> Deref for LazyLock<T, F> {
    type Target = T;

    fn deref(&self) -> &T {
        LazyLock::force(self)
    }
}

impl<T: Default> Default for LazyLock<T> {
    fn default() -> LazyLock<T> {
        LazyLock::new(T::default)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for LazyLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("LazyLock");
        match self.cell.get() {
            Some(value) => d.field(value),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}
