//! The runtime: a pool of worker OS threads running green threads.
//!
//! # Shutdown policy
//!
//! Dropping a [`Runtime`] (or [`Runtime::shutdown_timeout`]) shuts it down, the stackful
//! counterpart of an async runtime dropping its tasks at their next `.await`:
//!
//! 1. New spawns on it fail with an error.
//! 2. Green threads that are runnable run on. At their next blocking point (an I/O call,
//!    `sleep`, `park`, `yield_now`, `join`) they unwind with a [`Cancelled`] payload, so
//!    their destructors run; their `join` returns `Err` with that payload. A thread that is
//!    already unwinding is not unwound again: its blocking calls fail with an error instead.
//! 3. Each worker cancels the I/O in flight on its ring, so threads blocked in `accept` or
//!    `read` resume and unwind too.
//! 4. The drop returns once every green thread has finished, or once no thread can make
//!    progress any more: every worker idle with nothing in flight, the remaining threads
//!    parked with nothing that could wake them. Those are *leaked* (their stacks stay
//!    mapped, their values are never dropped), because their frames may still be referred
//!    to. A thread that computes forever without blocking keeps the drop waiting, as a task
//!    that never yields keeps an async runtime's; [`Runtime::shutdown_timeout`] bounds that.
//!
//! The default runtime behind [`crate::spawn`] is never shut down; at process exit its
//! threads end like std threads do.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use crate::metrics::{Metrics, WorkerMetrics};
pub use crate::reactor::IoBackend;
pub use crate::sched::handoff::DEFAULT_THRESHOLD as DEFAULT_HANDOFF_THRESHOLD;

use crate::context::SwitchBackend;
use crate::overflow;
use crate::reactor::Reactor;
use crate::sched::{self, Shared};
use crate::stack::{checked_stack_size, StackGuard, DEFAULT_STACK_SIZE};
use crate::thread::{self, JoinHandle};

/// The panic payload of a green thread unwound by its runtime's shutdown (see the module
/// documentation); `JoinHandle::join` returns it as the `Err` value.
///
/// ```
/// let rt = greenring::Runtime::builder().worker_threads(1).build()?;
/// let sleeper = rt.spawn(|| greenring::time::sleep(std::time::Duration::from_secs(3600)));
/// drop(rt);
/// let payload = sleeper.join().unwrap_err();
/// assert!(payload.is::<greenring::runtime::Cancelled>());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("green thread cancelled: its runtime shut down")
    }
}

/// A pool of worker OS threads that run green threads.
///
/// # Examples
///
/// ```
/// let rt = greenring::Runtime::builder().worker_threads(2).build()?;
/// let sum = rt.block_on(|| {
///     let handles: Vec<_> = (1..=100).map(|i| greenring::spawn(move || i)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(sum, 5050);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    workers: Vec<std::thread::JoinHandle<()>>,
    monitor: Option<std::thread::JoinHandle<()>>,
}

/// Configures a [`Runtime`].
#[must_use = "a Builder does nothing until `build` is called"]
#[derive(Debug, Clone)]
pub struct Builder {
    worker_threads: Option<usize>,
    stack_size: usize,
    thread_name: String,
    handoff_threshold: Option<Duration>,
    io_backend: Option<IoBackend>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            worker_threads: None,
            stack_size: DEFAULT_STACK_SIZE,
            thread_name: "greenring-worker".to_owned(),
            handoff_threshold: Some(DEFAULT_HANDOFF_THRESHOLD),
            io_backend: None,
        }
    }
}

impl Builder {
    /// A builder with the defaults: one worker per available CPU and
    /// [`DEFAULT_STACK_SIZE`] stacks.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Sets the number of worker OS threads (at least 1).
    pub fn worker_threads(mut self, count: usize) -> Builder {
        self.worker_threads = Some(count);
        self
    }

    /// Sets the default usable stack size of this runtime's green threads, in bytes.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = size;
        self
    }

    /// Sets the name prefix of the worker OS threads (`<prefix>-<index>`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.thread_name = prefix.into();
        self
    }

    /// Sets how long a green thread may keep its worker's OS thread without switching (a
    /// blocking call greenring does not own, a long computation) before the hand-off
    /// monitor moves the worker's other green threads to a new OS thread. The default is
    /// [`DEFAULT_HANDOFF_THRESHOLD`] (10 ms); `None` disables the monitor. Must be at least
    /// 1 ms.
    ///
    /// The monitor does not preempt the stuck thread; it keeps the others running, and logs
    /// a warning (through the `log` crate) once per green thread that caused a hand-off.
    ///
    /// Disabling it suits programs that never block a worker: io_uring can then defer
    /// completion work to the worker's next system call (`IORING_SETUP_COOP_TASKRUN`)
    /// instead of interrupting it, which measured 15-25% faster on a TCP echo. With
    /// hand-offs that is unsafe (an OS thread that lost its worker would hold the completion
    /// work of the ops it submitted).
    pub fn handoff_threshold(mut self, threshold: Option<Duration>) -> Builder {
        self.handoff_threshold = threshold;
        self
    }

    /// Forces the I/O backend. Without this, `GREENRING_IO_BACKEND` decides, and without
    /// that io_uring is used where the kernel allows it and epoll elsewhere (see
    /// [`IoBackend`]).
    pub fn io_backend(mut self, backend: IoBackend) -> Builder {
        self.io_backend = Some(backend);
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for zero workers or a stack size out of range; an error naming
    /// io_uring and the cause when the kernel refuses it (ENOSYS, EPERM: a seccomp profile,
    /// `kernel.io_uring_disabled`); the OS error when a worker thread cannot be started.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.worker_threads {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "greenring: a runtime needs at least one worker thread",
                ))
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        let stack_size = checked_stack_size(self.stack_size)?;
        if self
            .handoff_threshold
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "greenring: the hand-off threshold must be at least 1 ms (or None to disable)",
            ));
        }
        overflow::install_handler();
        let (shared, locals) = Shared::new(workers, stack_size, self.handoff_threshold)?;
        // Set every reactor up before starting any worker, so a refusal is reported here.
        let reactors_of = |backend| {
            (0..workers)
                .map(|index| {
                    Reactor::new(
                        backend,
                        shared.waker(index),
                        Arc::clone(&shared.stats[index]),
                        self.handoff_threshold.is_some(),
                    )
                })
                .collect::<io::Result<Vec<_>>>()
        };
        let requested = match self.io_backend {
            Some(backend) => Some(backend),
            None => IoBackend::from_env()?,
        };
        let (backend, reactors) = match requested {
            Some(backend) => (backend, reactors_of(backend)?),
            None => match reactors_of(IoBackend::IoUring) {
                Ok(reactors) => (IoBackend::IoUring, reactors),
                Err(err) => {
                    log::warn!("{err}; falling back to the epoll backend");
                    (IoBackend::Epoll, reactors_of(IoBackend::Epoll)?)
                }
            },
        };
        shared.set_io_backend(backend);
        let boxes: Vec<Arc<sched::WorkerBox>> = locals
            .into_iter()
            .zip(reactors)
            .enumerate()
            .map(|(index, (local, reactor))| {
                Arc::new(sched::WorkerBox::new(
                    index,
                    Arc::clone(&shared),
                    local,
                    reactor,
                ))
            })
            .collect();
        let carriers: Vec<Arc<sched::Carrier>> = (0..workers)
            .map(|_| Arc::new(sched::Carrier::new()))
            .collect();
        let mut runtime = Runtime {
            shared: Arc::clone(&shared),
            workers: Vec::with_capacity(workers),
            monitor: None,
        };
        for (index, (worker, carrier)) in boxes.iter().zip(&carriers).enumerate() {
            let job = (Arc::clone(worker), Arc::clone(carrier));
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || sched::carry(&shared, Some(job)))?;
            // On an error above, dropping `runtime` shuts down the workers started so far.
            runtime.workers.push(handle);
        }
        if self.handoff_threshold.is_some() {
            let prefix = self.thread_name.clone();
            runtime.monitor = Some(
                std::thread::Builder::new()
                    .name(format!("{}-monitor", self.thread_name))
                    .spawn(move || sched::run_monitor(shared, boxes, carriers, prefix))?,
            );
        }
        Ok(runtime)
    }
}

impl Runtime {
    /// A runtime with the default configuration (see [`Builder::new`]).
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A builder to configure a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Spawns a green thread on this runtime.
    ///
    /// # Panics
    ///
    /// As [`crate::spawn`]; use [`thread::Builder::spawn_on`] to get the error instead.
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        thread::Builder::new()
            .spawn_on(self, f)
            .unwrap_or_else(|err| panic!("failed to spawn green thread: {err}"))
    }

    /// Runs `f` as a green thread on this runtime and returns its value, blocking the
    /// caller until it is done (parking only the caller if it is itself a green thread).
    ///
    /// # Panics
    ///
    /// Resumes the panic of `f`, and panics as [`Runtime::spawn`] does.
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn(f).join() {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Number of worker OS threads.
    pub fn worker_threads(&self) -> usize {
        self.shared.workers()
    }

    /// How guard pages are installed below green thread stacks in this process.
    pub fn stack_guard(&self) -> StackGuard {
        StackGuard::current()
    }

    /// A snapshot of this runtime's counters: live green threads, per-worker queue depth,
    /// steals, parks, I/O, stacks and hand-offs. Reading it costs a few atomic loads per
    /// worker and one lock; the counters themselves cost the workers no atomic
    /// read-modify-write.
    ///
    /// ```
    /// let rt = greenring::Runtime::builder().worker_threads(2).build()?;
    /// rt.block_on(|| greenring::time::sleep(std::time::Duration::from_millis(1)));
    /// let metrics = rt.metrics();
    /// assert_eq!(metrics.workers.len(), 2);
    /// assert!(metrics.stacks_mapped >= 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        Metrics::collect(&self.shared)
    }

    /// The I/O backend this runtime's workers use (see [`IoBackend`]).
    pub fn io_backend(&self) -> IoBackend {
        self.shared.io_backend()
    }

    /// Which implementation switches between green threads.
    pub fn switch_backend(&self) -> SwitchBackend {
        SwitchBackend::current()
    }

    /// Shuts down (see the module documentation), waiting at most `timeout`. Returns `true`
    /// if every green thread finished; otherwise the unfinished ones are leaked and workers
    /// still running one are detached.
    ///
    /// # Panics
    ///
    /// When called from one of this runtime's own green threads.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        self.shutdown(Some(timeout))
    }

    fn shutdown(&mut self, timeout: Option<Duration>) -> bool {
        assert!(
            !self.shared.is_current(),
            "greenring: a Runtime cannot be shut down or dropped from one of its own green \
             threads (it would wait for itself)"
        );
        let outcome = self.shared.shutdown(timeout);
        let mut workers = std::mem::take(&mut self.workers);
        self.shared.handoff.stop();
        if let Some(monitor) = self.monitor.take() {
            let _ = monitor.join();
        }
        workers.extend(self.shared.handoff.take_threads());
        if outcome != sched::Shutdown::TimedOut {
            // Every carrier leaves its loop promptly now. One panicking would be a bug in
            // greenring; the runtime is gone anyway.
            for worker in workers {
                let _ = worker.join();
            }
        }
        outcome == sched::Shutdown::Finished
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Empty after `shutdown_timeout` already ran.
        if !self.workers.is_empty() {
            self.shutdown(None);
        }
    }
}

// A panic cannot leave a Runtime half-updated where a caller could see it: its shared state
// is atomics, lock-free queues and locks whose holders never leave them inconsistent.
impl std::panic::UnwindSafe for Runtime {}
impl std::panic::RefUnwindSafe for Runtime {}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("worker_threads", &self.worker_threads())
            .field("stack_size", &self.shared.stacks.default_size())
            .finish_non_exhaustive()
    }
}

/// The runtime used by [`crate::spawn`] off any runtime, started on first use with the
/// default configuration and never shut down.
fn default_runtime() -> io::Result<&'static Runtime> {
    static DEFAULT: OnceLock<Result<Runtime, (io::ErrorKind, String)>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            Builder::new()
                .thread_name("greenring-default")
                .build()
                .map_err(|err| (err.kind(), err.to_string()))
        })
        .as_ref()
        .map_err(|(kind, message)| {
            io::Error::new(
                *kind,
                format!("greenring: the default runtime could not start: {message}"),
            )
        })
}

/// The runtime of the calling green thread, or the default runtime.
pub(crate) fn current_shared() -> io::Result<Arc<Shared>> {
    // SAFETY: the running task is alive while it runs.
    if let Some(task) = unsafe { sched::current::task().as_ref() } {
        return Ok(Arc::clone(&task.runtime));
    }
    default_runtime().map(|rt| Arc::clone(rt.shared()))
}

/// The index (from 0) of the worker running the calling green thread; `None` off green
/// threads. A green thread may move to another worker at any blocking point, unless it was
/// spawned [`pinned`](crate::thread::Builder::pinned).
pub fn worker_index() -> Option<usize> {
    sched::current::worker_index()
}
