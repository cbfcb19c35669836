//! Synchronisation shaped like [`std::sync`], whose blocking calls park only the calling
//! green thread (and block the OS thread off green threads): porting std code is an import
//! change.
//!
//! - [`Mutex`], [`RwLock`], [`Condvar`], [`Barrier`] with std's signatures, guards and
//!   poisoning (std's `PoisonError`, `TryLockError`, `LockResult` are reused);
//! - [`Semaphore`] and [`WaitGroup`];
//! - [`mpsc`] mirroring `std::sync::mpsc` (std's error types), [`mpmc`] with cloneable
//!   receivers, and [`Select`] over several receivers with an optional timeout;
//! - [`Once`], [`OnceLock`] and [`LazyLock`], whose callers wait for a running initialiser
//!   parked: an initialiser may itself park (greenring I/O, a lock, a sleep), where std's
//!   would deadlock a worker whose other green thread waits for it;
//! - std's own [`Arc`], [`Weak`], [`atomic`] and the poisoning types, re-exported so every
//!   `std::sync` path resolves here.
//!
//! A std `Mutex` held across a blocking call, or a std channel's `recv`, blocks the worker
//! OS thread and with it every green thread queued there; these do not.
//!
//! Every primitive waits through one mechanism (`wait`: FIFO wait lists of green or OS
//! thread waiters); uncontended paths are a single atomic operation on the primitive's own
//! state word, with no system call, plus the count below.
//!
//! # The cooperative budget
//!
//! Green threads are never preempted, so a thread that spins on calls that return without
//! parking would keep the other green threads of its worker, among them the one it waits
//! for, from ever running: a loop on `try_recv`, `try_iter`, `try_send`, `try_lock`,
//! `try_read`/`try_write` or `try_acquire`, or on a `lock`, `recv` or `send` that finds its
//! way clear (a `send` that wakes a receiver queued on the same worker, say). So every call
//! of these primitives that may wait, and every `try_` call, counts against the budget the
//! I/O ops of `net` and `fs` already share: **the 64th call in a row that did not park
//! yields** to the worker's other threads, as `yield_now` does (a call that parks starts
//! the count again). `JoinHandle::is_finished` counts too. Dropping a guard, a permit or a
//! sender, `notify_*`, `is_poisoned` and reads of an initialised `OnceLock` or `LazyLock`
//! do not: they are not places where a thread waits for another. The count is a read of
//! the current green thread and an increment; off green threads nothing is counted and
//! nothing changes.
//!
//! - **Shutdown.** The yield is `yield_now`'s, so during its runtime's shutdown it is a
//!   cancellation point: a thread spinning on `try_recv` unwinds with
//!   [`Cancelled`](crate::runtime::Cancelled) within 64 calls instead of keeping the
//!   shutdown waiting forever. A `try_` call may thus unwind during a shutdown, as every
//!   blocking call may; the count comes first, so it never unwinds holding what it took.
//!   A destructor that locks (not one run by an unwind) may thus unwind at that lock
//!   during a shutdown, as it already could when the lock was contended: keep what must
//!   happen in a destructor before its first such call, or make it tolerate the unwind.
//! - **Unwinding.** A thread that is unwinding never yields for the budget (switching away
//!   would show its panic to the worker's other threads, see the crate's `# Soundness`).
//! - **std locks.** Any of these calls may switch to another green thread, so a std lock
//!   held across one can deadlock the worker, as across any blocking call.

mod barrier;
mod chan;
mod condvar;
pub mod mpmc;
pub mod mpsc;
mod mutex;
mod once;
mod rwlock;
mod select;
mod semaphore;
mod shim;
mod wait;

#[cfg(all(test, loom))]
mod loom_tests;

pub use self::barrier::{Barrier, BarrierWaitResult, WaitGroup};
pub use self::condvar::{Condvar, WaitTimeoutResult};
pub use self::mutex::{Mutex, MutexGuard};
pub use self::once::{LazyLock, Once, OnceLock, OnceState};
pub use self::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use self::select::{Select, SelectReceiver, SelectTimeoutError};
pub use self::semaphore::{Semaphore, SemaphorePermit};
pub use std::sync::{atomic, Arc, LockResult, PoisonError, TryLockError, TryLockResult, Weak};

/// The lock around a primitive's wait list. Its critical sections are a few pointer moves
/// with no switch inside, so the OS-level lock is never held across a park.
type ListLock = shim::Mutex<wait::WaitList>;

/// `Ok(value)`, or `Err` carrying it when the primitive is `poisoned` (std's convention).
fn poison_result<V>(poisoned: bool, value: V) -> LockResult<V> {
    if poisoned {
        Err(PoisonError::new(value))
    } else {
        Ok(value)
    }
}

/// Locks a wait list; a panic cannot leave one half-updated, so poison is ignored.
fn list_lock(lock: &ListLock) -> shim::MutexGuard<'_, wait::WaitList> {
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Compile-time facts that std's types have and greenring's keep, checked by
/// `cargo test --doc`: each example must fail to compile, with the error given.
///
/// A read guard is not `Send` (the hold belongs to the thread that took it):
///
/// ```compile_fail,E0277
/// fn send<T: Send>(_: T) {}
/// let lock = greenring::sync::RwLock::new(0);
/// send(lock.read().unwrap());
/// ```
///
/// nor `Sync` when its value is not (`tests/sync_shapes.rs` checks that it is `Sync`
/// otherwise):
///
/// ```compile_fail,E0277
/// fn sync<T: Sync>(_: &T) {}
/// let lock = greenring::sync::RwLock::new(std::cell::Cell::new(0));
/// sync(&lock.read().unwrap());
/// ```
///
/// Neither is a write guard `Send`:
///
/// ```compile_fail,E0277
/// fn send<T: Send>(_: T) {}
/// let lock = greenring::sync::RwLock::new(0);
/// send(lock.write().unwrap());
/// ```
///
/// A `OnceLock` may hold a borrow of a value dropped before it (`tests/sync_once.rs`), but
/// not a value whose own `Drop` could read such a borrow:
///
/// ```compile_fail,E0597
/// struct Prints<'a>(&'a String);
/// impl Drop for Prints<'_> {
///     fn drop(&mut self) {
///         println!("{}", self.0);
///     }
/// }
/// let cell = greenring::sync::OnceLock::new();
/// let value = String::from("dropped before the cell");
/// let _ = cell.set(Prints(&value));
/// ```
#[cfg(doctest)]
pub struct CompileFailChecks;
