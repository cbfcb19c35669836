//! Scoped threads, shaped like [`std::thread::scope`]: green threads (and blocking-pool
//! jobs) that may borrow from the caller's stack, because the scope does not return until
//! every one of them has finished.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Builder, JoinHandle, Thread};

/// What a scope and its threads share: how many threads still run (counted until their
/// packet is dropped), whether one panicked unseen, and whom to wake at zero.
pub(crate) struct ScopeData {
    running: AtomicUsize,
    a_thread_panicked: AtomicBool,
    /// The thread that called [`scope`] and waits at its end.
    main: Thread,
}

impl ScopeData {
    pub(crate) fn increment_running(&self) {
        if self.running.fetch_add(1, Ordering::Relaxed) > usize::MAX / 2 {
            self.decrement_running(false);
            panic!("too many running threads in a thread scope");
        }
    }

    pub(crate) fn decrement_running(&self, panicked: bool) {
        if panicked {
            self.a_thread_panicked.store(true, Ordering::Relaxed);
        }
        // Release: the thread's last uses of borrowed data (and the store above) happen
        // before the waiting `scope` sees the count drop.
        if self.running.fetch_sub(1, Ordering::Release) == 1 {
            self.main.unpark();
        }
    }

    /// A scope's shared part with no thread, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Arc<ScopeData> {
        Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            a_thread_panicked: AtomicBool::new(false),
            main: super::current(),
        })
    }

    /// How many threads of the scope still count as running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Waits, without a cancellation point, until no thread of the scope runs.
    fn wait_all(&self) {
        while self.running.load(Ordering::Acquire) != 0 {
            // Not cancellable: the scope's threads borrow this stack, so its caller must
            // not unwind (at a runtime's shutdown, say) while one still runs.
            if crate::task::current::with(crate::task::point::park_uncancellable).is_none() {
                std::thread::park();
            }
        }
    }
}

/// A scope to spawn threads in, like [`std::thread::Scope`]; see [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    /// Invariance over 'scope, so the scope cannot shrink, as std's.
    scope: PhantomData<&'scope mut &'scope ()>,
    /// Invariance over 'env, so the scope cannot grow, as std's.
    env: PhantomData<&'env mut &'env ()>,
}

/// An owned permission to join a scoped thread, like [`std::thread::ScopedJoinHandle`].
///
/// Dropping it without joining leaves the thread running until the end of the scope; a
/// panic of such a thread makes [`scope`] panic.
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinHandle<T>,
    _scope: PhantomData<&'scope ()>,
}

/// Creates a scope for spawning threads that borrow from the caller, like
/// [`std::thread::scope`].
///
/// `f` gets a [`Scope`] whose [`spawn`](Scope::spawn) starts green threads (on the
/// caller's runtime, or the default runtime off green threads, as [`crate::spawn`]) and
/// whose [`spawn_blocking`](Scope::spawn_blocking) runs closures on the blocking pool.
/// Both may borrow anything that outlives the scope. `scope` returns only once every thread
/// spawned in it has finished, even when `f` panics; a green thread that calls it waits
/// without blocking its worker.
///
/// # Panics
///
/// If `f` panics, `scope` panics with its payload (after all threads finished). Otherwise,
/// if a thread spawned in the scope panicked and its handle was not joined, `scope`
/// panics with "a scoped thread panicked".
///
/// # Examples
///
/// ```
/// let mut a = vec![1, 2, 3];
/// let mut x = 0;
///
/// greenring::thread::scope(|s| {
///     s.spawn(|| {
///         // Borrows `a` shared.
///         assert_eq!(a.len(), 3);
///     });
///     s.spawn(|| {
///         // Borrows `x` mutably.
///         x += a[0] + a[2];
///     });
/// });
///
/// // Every thread has been joined: the borrows are over.
/// a.push(4);
/// assert_eq!(x, a.len());
/// ```
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            a_thread_panicked: AtomicBool::new(false),
            main: super::current(),
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    // A panic of `f` is held until every thread finished: they borrow this frame.
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    scope.data.wait_all();
    match result {
        Err(payload) => panic::resume_unwind(payload),
        Ok(_) if scope.data.a_thread_panicked.load(Ordering::Relaxed) => {
            panic!("a scoped thread panicked")
        }
        Ok(value) => value,
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a green thread that may borrow from outside the scope, like
    /// [`std::thread::Scope::spawn`]. It runs on the caller's runtime, or on the default
    /// runtime when the caller is not a green thread.
    ///
    /// # Panics
    ///
    /// When the thread cannot be created (see [`crate::spawn`]); use
    /// [`Builder::spawn_scoped`] to get that as an `io::Error`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut counts = [0u32; 4];
    /// greenring::thread::scope(|s| {
    ///     for (i, count) in counts.iter_mut().enumerate() {
    ///         s.spawn(move || *count = i as u32 * 10);
    ///     }
    /// });
    /// assert_eq!(counts, [0, 10, 20, 30]);
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        Builder::new()
            .spawn_scoped(self, f)
            .unwrap_or_else(|err| panic!("failed to spawn green thread: {err}"))
    }

    /// Runs `f`, which may borrow from outside the scope, on the blocking pool (as
    /// [`crate::spawn_blocking`]): for calls that block their OS thread in ways greenring
    /// cannot see.
    ///
    /// # Panics
    ///
    /// When no pool thread exists and the OS refuses to start one.
    ///
    /// # Examples
    ///
    /// ```
    /// let text = String::from("hello");
    /// let len = greenring::thread::scope(|s| {
    ///     let job = s.spawn_blocking(|| {
    ///         std::thread::sleep(std::time::Duration::from_millis(1)); // may block
    ///         text.len()
    ///     });
    ///     job.join().unwrap()
    /// });
    /// assert_eq!(len, 5);
    /// ```
    pub fn spawn_blocking<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // SAFETY: `f` and `T` live for 'scope, and `scope` does not return (nor unwind)
        // before the job's packet, which holds the job's result, is dropped.
        let inner = unsafe { crate::blocking::spawn_scoped(Arc::clone(&self.data), f) };
        ScopedJoinHandle::new(inner)
    }

    pub(crate) fn data(&self) -> &Arc<ScopeData> {
        &self.data
    }
}

impl Builder {
    /// Spawns a scoped green thread with this builder's settings, like
    /// [`std::thread::Builder::spawn_scoped`].
    ///
    /// # Errors
    ///
    /// As [`Builder::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// let name = String::from("scoped");
    /// greenring::thread::scope(|s| {
    ///     let handle = greenring::thread::Builder::new()
    ///         .name(name.clone())
    ///         .spawn_scoped(s, || greenring::thread::current().name() == Some(&name[..]))?;
    ///     assert!(handle.join().unwrap());
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let shared = crate::runtime::current_shared()?;
        // SAFETY: `f` and `T` live for 'scope, and `scope` does not return (nor unwind)
        // before the thread's packet, which holds its result, is dropped: the thread has
        // finished by then.
        let inner = unsafe { self.spawn_unchecked(&shared, Some(Arc::clone(scope.data())), f)? };
        Ok(ScopedJoinHandle::new(inner))
    }
}

impl<'scope, T> ScopedJoinHandle<'scope, T> {
    fn new(inner: JoinHandle<T>) -> ScopedJoinHandle<'scope, T> {
        ScopedJoinHandle {
            inner,
            _scope: PhantomData,
        }
    }

    /// Waits for the thread to finish and returns its result: `Ok` with the closure's
    /// value, or `Err` with its panic's payload (such a panic, once joined, no longer makes
    /// [`scope`] panic).
    ///
    /// # Panics
    ///
    /// If a green thread tries to join itself.
    ///
    /// # Examples
    ///
    /// ```
    /// greenring::thread::scope(|s| {
    ///     let handle = s.spawn(|| panic!("oops"));
    ///     assert!(handle.join().is_err());
    /// });
    /// ```
    pub fn join(self) -> super::Result<T> {
        self.inner.join()
    }

    /// The handle of the thread this joins.
    pub fn thread(&self) -> &Thread {
        self.inner.thread()
    }

    /// `true` once the thread has finished running its closure. Does not block; counts
    /// against the cooperative budget as [`JoinHandle::is_finished`] does.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Ordering::Relaxed))
            .field(
                "a_thread_panicked",
                &self.data.a_thread_panicked.load(Ordering::Relaxed),
            )
            .field("main", &self.data.main)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("thread", self.thread())
            .field("finished", &self.inner.is_done())
            .finish()
    }
}
