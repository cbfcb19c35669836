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
//! state word, with no system call and no switch.

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
