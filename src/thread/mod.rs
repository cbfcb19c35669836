//! Green threads, shaped like [`std::thread`].
//!
//! Every function here also works off a green thread (on a plain OS thread), by doing what
//! the std function of the same name does, so code ported from std runs anywhere.
//!
//! ```
//! let handle = greenring::spawn(|| {
//!     greenring::thread::yield_now();
//!     6 * 7
//! });
//! assert_eq!(handle.join().unwrap(), 42);
//! ```
//!
//! [`scope`] spawns green threads (and blocking-pool jobs) that borrow from the caller's
//! stack, as [`std::thread::scope`] does.
//!
//! A started green thread stays on the OS thread that first ran it (see the crate's
//! `# Soundness`), so a std `thread_local!` and `std::thread::current()` keep their values
//! across a switch (yield, park, join, blocking I/O); they are the worker's, shared with
//! the other green threads it runs. Only a runtime built with the `unsafe`
//! [`migrate_started_threads`](crate::runtime::Builder::migrate_started_threads) moves
//! started threads between OS threads.

mod builder;
mod join_handle;
mod scope;

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

pub use self::builder::Builder;
pub use self::join_handle::JoinHandle;
pub(crate) use self::join_handle::Packet;
pub(crate) use self::scope::ScopeData;
pub use self::scope::{scope, Scope, ScopedJoinHandle};
pub use crate::task::ThreadId;
/// std's, re-exported so every `std::thread` path resolves here. `LocalKey` (the type of a
/// std `thread_local!`) is the OS thread's slot: a started green thread stays on one OS
/// thread, so it sees the same slot from start to end (see the crate's `# Soundness`);
/// [`crate::local`] has values that belong to the green thread itself.
pub use std::thread::{available_parallelism, panicking, AccessError, LocalKey, Result};

use crate::sched;
use crate::task::{self, Task, TaskRef};

/// Spawns a green thread on the current runtime (the one running the caller, else the
/// default runtime) and returns a handle to join it.
///
/// # Panics
///
/// When the thread cannot be created: the stack mapping was refused (the message names the
/// limit and how to raise it), the runtime is shutting down, or the default runtime could
/// not start. Use [`Builder::spawn`] to get these as an `io::Error`.
///
/// # Examples
///
/// ```
/// let handles: Vec<_> = (0..10).map(|i| greenring::spawn(move || i * 2)).collect();
/// let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 90);
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|err| panic!("failed to spawn green thread: {err}"))
}

/// The thread of a blocking-pool job (`crate::blocking`): an OS thread of the pool, known
/// only while the job runs.
pub(crate) trait PoolJob: Send + Sync {
    /// The job's id.
    fn id(&self) -> ThreadId;

    /// Makes the job's unpark token available (kept until the job starts, if it has not).
    fn unpark(&self);
}

/// A handle to a green thread or an OS thread, like [`std::thread::Thread`].
#[derive(Clone)]
pub struct Thread {
    inner: ThreadInner,
}

#[derive(Clone)]
enum ThreadInner {
    Green(TaskRef),
    /// A `spawn_blocking` job.
    Blocking(Arc<dyn PoolJob>),
    Os {
        id: ThreadId,
        thread: std::thread::Thread,
    },
}

impl Thread {
    pub(crate) fn green(task: TaskRef) -> Thread {
        Thread {
            inner: ThreadInner::Green(task),
        }
    }

    pub(crate) fn blocking(job: Arc<dyn PoolJob>) -> Thread {
        Thread {
            inner: ThreadInner::Blocking(job),
        }
    }

    /// The thread's unique identifier.
    #[inline]
    pub fn id(&self) -> ThreadId {
        match &self.inner {
            ThreadInner::Green(task) => task.id,
            ThreadInner::Os { id, .. } => *id,
            ThreadInner::Blocking(job) => job.id(),
        }
    }

    /// The thread's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        match &self.inner {
            ThreadInner::Green(task) => task.name.as_deref(),
            ThreadInner::Os { thread, .. } => thread.name(),
            ThreadInner::Blocking(_) => None,
        }
    }

    /// `true` for the thread of a `spawn_blocking` job.
    pub(crate) fn is_blocking_job(&self) -> bool {
        matches!(self.inner, ThreadInner::Blocking(_))
    }

    /// `true` for a green thread, `false` for an OS thread.
    pub fn is_green(&self) -> bool {
        matches!(self.inner, ThreadInner::Green(_))
    }

    /// Makes the thread's unpark token available, waking it if it is in [`park`]. As with
    /// std, the token does not accumulate: many unparks before one park wake it once.
    pub fn unpark(&self) {
        match &self.inner {
            ThreadInner::Green(task) => {
                if let Some(task) = Task::unpark(task) {
                    sched::schedule(task);
                }
            }
            ThreadInner::Os { thread, .. } => thread.unpark(),
            ThreadInner::Blocking(job) => job.unpark(),
        }
    }
}

// A Thread only reads immutable fields and moves the atomic park word.
impl std::panic::UnwindSafe for Thread {}
impl std::panic::RefUnwindSafe for Thread {}

impl fmt::Debug for Thread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("green", &self.is_green())
            .finish_non_exhaustive()
    }
}

/// A handle to the calling thread: the green thread, or else the OS thread.
pub fn current() -> Thread {
    match task::current::task_ref() {
        Some(task) => Thread::green(task),
        None => Thread {
            inner: ThreadInner::Os {
                id: os_thread_id(),
                thread: std::thread::current(),
            },
        },
    }
}

/// Our id for the calling OS thread, assigned on first use.
fn os_thread_id() -> ThreadId {
    thread_local! {
        static ID: Cell<Option<ThreadId>> = const { Cell::new(None) };
    }
    ID.with(|id| {
        let value = id.get().unwrap_or_else(ThreadId::new);
        id.set(Some(value));
        value
    })
}

/// Blocks the calling thread until its unpark token is available, then consumes it.
///
/// On a green thread only the green thread waits; its worker runs others meanwhile. As with
/// std, callers must be ready for a spurious return and re-check their condition.
///
/// A green thread that parks while unwinding (in a destructor run by a panic) blocks its
/// worker's OS thread instead of switching away: std's panic count belongs to the OS
/// thread, and every green thread run there meanwhile would see
/// [`std::thread::panicking`] return `true` (and poison the locks it holds).
pub fn park() {
    if task::current::with(task::point::park).is_none() {
        std::thread::park();
    }
}

/// Blocks the calling thread until its unpark token is available or `timeout` has passed,
/// like [`std::thread::park_timeout`]. On a green thread only the green thread waits.
///
/// As with std, it may also return spuriously: callers re-check their condition. On a
/// green thread an expired timer that lost the race to an `unpark` leaves such a token.
pub fn park_timeout(timeout: std::time::Duration) {
    crate::driver::park_timeout(timeout);
}

/// Puts the calling thread to sleep for at least `duration`; see [`crate::time::sleep`].
pub fn sleep(duration: std::time::Duration) {
    crate::time::sleep(duration);
}

/// Gives the rest of the calling green thread's turn to the others queued on its worker
/// (on an OS thread: [`std::thread::yield_now`]).
pub fn yield_now() {
    if task::current::with(task::point::yield_now).is_none() {
        std::thread::yield_now();
    }
}

/// `true` when called from a green thread.
pub fn is_green() -> bool {
    task::current::is_green()
}
