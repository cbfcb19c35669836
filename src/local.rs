//! Green-thread-local storage: [`green_local!`](crate::green_local) and [`LocalKey`].
//!
//! # Why not `std::thread_local!`
//!
//! `std::thread_local!` belongs to the *OS thread*. A green thread never leaves the OS
//! thread it started on (unless its runtime was built with the `unsafe`
//! `migrate_started_threads`), so a `thread_local!` stays valid across its blocking calls;
//! but the worker runs other green threads on that OS thread while it waits, and they all
//! share the value. Code ported from std that keeps per-thread state in `thread_local!`
//! then sees other green threads' changes between two lines:
//!
//! ```
//! std::thread_local!(static COUNTER: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
//! greenring::spawn(|| {
//!     COUNTER.with(|c| c.set(c.get() + 1));
//!     greenring::yield_now(); // other green threads of this worker run meanwhile...
//!     let _maybe_not_mine = COUNTER.with(|c| c.get()); // ...and may have counted too.
//! })
//! .join()
//! .unwrap();
//! ```
//!
//! [`green_local!`](crate::green_local) declares values that belong to the *green thread*:
//! each green thread gets its own, created on first access, kept across every switch (and
//! every migration, in a migrating runtime), and dropped when the thread ends (before its
//! `join` returns). Called from a
//! plain OS thread, a key gives that OS thread's value, like `thread_local!`, so code works
//! both ways. Porting is a rename: `thread_local!` to `greenring::green_local!`.
//!
//! `thread_local!` stays right for state that belongs to the OS thread (a per-CPU cache, a
//! handle that must not cross threads), used without a blocking point in between.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;

/// Declares green-thread-local values, in the syntax of [`std::thread_local!`].
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
///
/// greenring::green_local! {
///     static NAME: RefCell<String> = RefCell::new(String::new());
/// }
///
/// let handles: Vec<_> = (0..4)
///     .map(|i| {
///         greenring::spawn(move || {
///             NAME.with_borrow_mut(|name| *name = format!("client-{i}"));
///             greenring::yield_now(); // others run meanwhile; this value stays this thread's
///             NAME.with_borrow(|name| name.clone())
///         })
///     })
///     .collect();
/// for (i, handle) in handles.into_iter().enumerate() {
///     assert_eq!(handle.join().unwrap(), format!("client-{i}"));
/// }
/// ```
#[macro_export]
macro_rules! green_local {
    () => {};
    // `const { ... }` initializers (as `thread_local!` accepts) are evaluated like others.
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const $init:block; $($rest:tt)*) => {
        $crate::green_local!($(#[$attr])* $vis static $name: $t = $init);
        $crate::green_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const $init:block) => {
        $crate::green_local!($(#[$attr])* $vis static $name: $t = $init);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $crate::green_local!($(#[$attr])* $vis static $name: $t = $init);
        $crate::green_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $(#[$attr])*
        $vis static $name: $crate::local::LocalKey<$t> = {
            fn __init() -> $t {
                $init
            }
            ::std::thread_local! {
                static __OS_THREAD_VALUE: $t = __init();
            }
            $crate::local::LocalKey::new(__init, &__OS_THREAD_VALUE)
        };
    };
}

/// A key to a green-thread-local value, declared with [`green_local!`](crate::green_local).
///
/// On a plain OS thread each key is a std `thread_local!` of its own (the macro declares
/// one beside the key), so values there live and die exactly as std's: created on first
/// use, dropped at the thread's exit, and a destructor that uses another key during that
/// exit gets std's behaviour ([`LocalKey::try_with`] reports the destroyed key).
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    os_thread: &'static std::thread::LocalKey<T>,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T, os_thread: &'static std::thread::LocalKey<T>) -> LocalKey<T> {
        LocalKey { init, os_thread }
    }

    /// Calls `f` with the calling green thread's value (the OS thread's off green threads),
    /// created with the key's initializer on first access.
    ///
    /// # Panics
    ///
    /// Off green threads, as std's `with`: when the OS thread's value was already destroyed
    /// (a destructor running at the thread's exit); see [`LocalKey::try_with`].
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        match self.green_value() {
            // SAFETY: see `green_value`; `f` runs within the thread's own call.
            Some(value) => f(unsafe { &*value }),
            None => self.os_thread.with(f),
        }
    }

    /// As [`LocalKey::with`], but off green threads returns `Err` instead of panicking when
    /// the OS thread's value is being or has been destroyed, like std's `try_with`. On a
    /// green thread the value is always there (a destructor of another green-local value
    /// that uses this key gets a fresh one, dropped before the thread's `join` returns).
    ///
    /// # Errors
    ///
    /// [`AccessError`](std::thread::AccessError), off green threads, during or after the
    /// destruction of the OS thread's value.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// greenring::green_local!(static HITS: Cell<u32> = const { Cell::new(0) });
    ///
    /// let hits = greenring::spawn(|| HITS.try_with(|h| {
    ///     h.set(h.get() + 1);
    ///     h.get()
    /// }))
    /// .join()
    /// .unwrap();
    /// assert_eq!(hits, Ok(1));
    /// ```
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, std::thread::AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        match self.green_value() {
            // SAFETY: see `green_value`; `f` runs within the thread's own call.
            Some(value) => Ok(f(unsafe { &*value })),
            None => self.os_thread.try_with(f),
        }
    }

    /// The calling green thread's value, created on first access; `None` off green threads.
    /// The value is boxed and only dropped when its thread ends, so the pointer is valid
    /// for as long as the calling green thread runs its current call.
    fn green_value(&'static self) -> Option<*const T> {
        let key = self as *const LocalKey<T> as usize;
        let value = crate::task::current::with(|task| {
            task.locals
                .get_or_init(key, || Box::new((self.init)()) as Box<dyn Any>)
        })?;
        // The value was created by this key's initializer, so it is a `T`.
        Some(value.cast::<T>())
    }
}

impl<T: 'static> LocalKey<Cell<T>> {
    /// Sets the value.
    pub fn set(&'static self, value: T) {
        self.with(|cell| cell.set(value));
    }

    /// A copy of the value.
    pub fn get(&'static self) -> T
    where
        T: Copy,
    {
        self.with(Cell::get)
    }

    /// Takes the value, leaving `Default::default()`.
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(Cell::take)
    }

    /// Replaces the value, returning the old one.
    pub fn replace(&'static self, value: T) -> T {
        self.with(|cell| cell.replace(value))
    }
}

impl<T: 'static> LocalKey<RefCell<T>> {
    /// Calls `f` with a shared borrow of the value.
    ///
    /// # Panics
    ///
    /// If the value is mutably borrowed.
    pub fn with_borrow<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        self.with(|cell| f(&cell.borrow()))
    }

    /// Calls `f` with a mutable borrow of the value.
    ///
    /// # Panics
    ///
    /// If the value is borrowed.
    pub fn with_borrow_mut<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&mut T) -> R,
    {
        self.with(|cell| f(&mut cell.borrow_mut()))
    }

    /// Sets the value.
    ///
    /// # Panics
    ///
    /// If the value is borrowed.
    pub fn set(&'static self, value: T) {
        self.with(|cell| *cell.borrow_mut() = value);
    }

    /// Replaces the value, returning the old one.
    ///
    /// # Panics
    ///
    /// If the value is borrowed.
    pub fn replace(&'static self, value: T) -> T {
        self.with(|cell| cell.replace(value))
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::green_local! {
        static COUNT: Cell<u32> = const { Cell::new(0) };
        static LOG: RefCell<Vec<u32>> = RefCell::new(Vec::new());
    }

    #[test]
    fn os_threads_have_their_own_values() {
        COUNT.set(5);
        let other = std::thread::spawn(|| COUNT.get()).join().unwrap();
        assert_eq!(other, 0);
        assert_eq!(COUNT.replace(7), 5);
        assert_eq!(COUNT.take(), 7);
        LOG.with_borrow_mut(|log| log.push(1));
        assert_eq!(LOG.with_borrow(Vec::clone), vec![1]);
    }
}
