//! [`spawn_blocking`]: runs code that blocks in ways greenring cannot see (a C library's
//! `read`, `std::fs`, a long computation) on the blocking pool (`driver::pool`), behind a
//! [`JoinHandle`] like a green thread's.
//!
//! The [`Thread`](crate::thread::Thread) of a job is a pool OS thread known only once the
//! job starts ([`BlockingThread`]): an `unpark` that arrives before then is kept and
//! delivered when the job starts, so the token semantics of `park` hold.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::driver::pool::{pool, Job, Pool};
use crate::task::ThreadId;
use crate::thread::{JoinHandle, Thread};

/// Runs `f` on the blocking pool and returns a handle to join it: from a green thread
/// `join` parks only the green thread; from an OS thread it blocks. A panic in `f` comes
/// back through `join` as `Err`, as with [`crate::spawn`].
///
/// ```
/// let handle = greenring::spawn_blocking(|| {
///     std::thread::sleep(std::time::Duration::from_millis(10)); // really blocks: fine here
///     "done"
/// });
/// assert_eq!(handle.join().unwrap(), "done");
/// ```
///
/// When the OS refuses to start a pool thread and no other pool thread is left to run `f`
/// (the process reached its thread limit), `f` never runs and `join` returns `Err` with a
/// `String` payload naming the cause; a later call tries again.
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_on(pool(), f)
}

pub(crate) fn spawn_on<F, T>(pool: &Arc<Pool>, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: `f` and `T` are 'static: they borrow nothing.
    unsafe { spawn_on_unchecked(pool, None, f) }
}

/// Runs `f` on the blocking pool as a job of `scope` (see `Scope::spawn_blocking`).
///
/// # Safety
///
/// Whatever `f` and its result borrow must outlive the job's packet: the scope waits for
/// its drop.
pub(crate) unsafe fn spawn_scoped<'a, F, T>(
    scope: Arc<crate::thread::ScopeData>,
    f: F,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    // SAFETY: forwarded from the caller.
    unsafe { spawn_on_unchecked(pool(), Some(scope), f) }
}

/// Runs `f` on `pool`, as a job of `scope` when given.
///
/// # Safety
///
/// Whatever `f` and its result borrow must outlive the job and its packet (the caller
/// waits for the packet's drop, or `'a` is `'static`).
unsafe fn spawn_on_unchecked<'a, F, T>(
    pool: &Arc<Pool>,
    scope: Option<Arc<crate::thread::ScopeData>>,
    f: F,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    let packet = Arc::new(crate::thread::Packet::with_scope(scope));
    let their_packet = Arc::clone(&packet);
    let job_thread = BlockingThread::new();
    let their_thread = Arc::clone(&job_thread);
    let job: Box<dyn FnOnce(io::Result<()>) + Send + 'a> = Box::new(move |start| {
        let result = match start {
            Ok(()) => {
                their_thread.started();
                let result = panic::catch_unwind(AssertUnwindSafe(f));
                their_thread.finished();
                result
            }
            // Never run: the joiner learns why (the closure is dropped here).
            Err(refused) => Err(Box::new(refused.to_string()) as Box<dyn std::any::Any + Send>),
        };
        their_packet.complete(result);
    });
    // SAFETY: only the lifetime changes; the caller guarantees that what the job borrows
    // outlives its run and the packet's drop.
    let job: Job = unsafe { std::mem::transmute(job) };
    pool.execute(job);
    // SAFETY: as for the job.
    unsafe { JoinHandle::new(packet, Thread::blocking(job_thread)) }
}

/// A blocking job's thread identity.
#[derive(Debug)]
pub(crate) struct BlockingThread {
    pub(crate) id: ThreadId,
    /// The pool thread running the job, while it runs.
    os: Mutex<Option<std::thread::Thread>>,
    /// An unpark that arrived while no pool thread ran the job.
    pending: AtomicBool,
}

impl BlockingThread {
    pub(crate) fn new() -> Arc<BlockingThread> {
        Arc::new(BlockingThread {
            id: ThreadId::new(),
            os: Mutex::new(None),
            pending: AtomicBool::new(false),
        })
    }

    /// Called on the pool thread as the job starts.
    pub(crate) fn started(&self) {
        *self.os.lock().unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
        if self.pending.swap(false, Ordering::AcqRel) {
            std::thread::current().unpark();
        }
    }

    /// Called on the pool thread as the job ends (the thread goes on to other jobs).
    pub(crate) fn finished(&self) {
        *self.os.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl crate::thread::PoolJob for BlockingThread {
    fn id(&self) -> ThreadId {
        self.id
    }

    fn unpark(&self) {
        match &*self.os.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(thread) => thread.unpark(),
            None => self.pending.store(true, Ordering::Release),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn idle_threads_retire_and_the_pool_grows_again() {
        let pool = Pool::new(4, Duration::from_millis(50));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                spawn_on(&pool, move || {
                    std::thread::sleep(Duration::from_millis(20));
                    i
                })
            })
            .collect();
        assert!(pool.threads() <= 4, "bounded");
        let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 28);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            pool.threads(),
            0,
            "idle threads retired after the keep-alive"
        );
        assert_eq!(spawn_on(&pool, || 5).join().unwrap(), 5);
    }
}
