//! The runtime: a pool of worker OS threads running green threads.
//!
//! # Shutdown policy
//!
//! Dropping a [`Runtime`] (or [`Runtime::shutdown_timeout`]) shuts it down, the stackful
//! counterpart of an async runtime dropping its tasks at their next `.await`:
//!
//! 1. New spawns on it fail with an error.
//! 2. Green threads that are runnable run on. At their next blocking point (an I/O call,
//!    `sleep`, `park`, `yield_now`, `join`, a `greenring::sync` wait, and the yield every
//!    64th call in a row that did not wait, `try_` calls of `greenring::sync` included:
//!    see the crate's `# Cooperative scheduling`) they unwind with a [`Cancelled`] payload,
//!    so their destructors run; their `join` returns `Err` with that payload. A thread that is
//!    already unwinding is not unwound again: its blocking calls fail with an error instead.
//! 3. Each worker cancels the I/O in flight on its ring, so threads blocked in `accept` or
//!    `read` resume and unwind too.
//! 4. The drop returns once every green thread has finished. Waits the runtime can see
//!    end by themselves count as progress: I/O in flight, and blocking-pool jobs that a
//!    green thread waits for (`spawn_blocking(..).join()`, the epoll backend's file
//!    operations). Once no thread can progress on its own (every worker idle, nothing in
//!    flight or owed, the remaining threads parked), the drop waits up to
//!    [`Builder::shutdown_grace`] for a wake-up from outside the runtime (an OS thread
//!    sending on a channel the thread receives from); a thread woken then runs on
//!    normally. After the grace the parked threads are woken, spuriously as `park`
//!    allows, and unwind at their next blocking point. Threads that still cannot progress
//!    after that are *leaked* (their stacks stay mapped, their values are never dropped,
//!    because their frames may still be referred to), and their `join` returns `Err`
//!    with [`Cancelled`]. A thread that computes forever without blocking keeps the drop
//!    waiting, as a task that never yields keeps an async runtime's;
//!    [`Runtime::shutdown_timeout`] bounds that (and the joins of the threads it leaves
//!    behind end with `Cancelled` too).
//!
//! The default runtime behind [`crate::spawn`] is never shut down; at process exit its
//! threads end like std threads do.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use crate::metrics::{Metrics, WorkerMetrics, STACK_BUCKETS};
pub use crate::reactor::{IoBackend, UringSetup};
pub use crate::sched::extra::DEFAULT_MAX_EXTRA_WORKERS;
pub use crate::sched::handoff::DEFAULT_THRESHOLD as DEFAULT_HANDOFF_THRESHOLD;
pub use crate::task::Cancelled;

use crate::context::SwitchBackend;
use crate::overflow;
use crate::reactor::{Reactor, RingOwner};
use crate::sched::{self, Shared};
use crate::stack::{checked_stack_size, StackGuard, DEFAULT_STACK_SIZE};
use crate::thread::{self, JoinHandle};

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
    migrate: bool,
    shutdown_grace: Duration,
    max_extra_workers: usize,
}

/// How long a shutdown waits by default, once no green thread can progress on its own, for
/// a wake-up from outside the runtime (see [`Builder::shutdown_grace`]).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            worker_threads: None,
            stack_size: DEFAULT_STACK_SIZE,
            thread_name: "greenring-worker".to_owned(),
            handoff_threshold: Some(DEFAULT_HANDOFF_THRESHOLD),
            io_backend: None,
            // Building greenring with `--cfg greenring_migrate` makes every runtime migrate
            // started threads, so the test suite can run in both modes. Whoever sets that
            // flag accepts `migrate_started_threads`'s contract for the whole program.
            migrate: cfg!(greenring_migrate),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_extra_workers: DEFAULT_MAX_EXTRA_WORKERS,
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

    /// Sets the name prefix of the worker OS threads (`<prefix>-<index>`). A prefix with an
    /// interior NUL byte makes [`Builder::build`] fail.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.thread_name = prefix.into();
        self
    }

    /// Sets how long a green thread may keep its worker's OS thread without switching (a
    /// blocking call greenring does not own, a std lock, a long computation) before the
    /// monitor treats the worker as stalled. The default is [`DEFAULT_HANDOFF_THRESHOLD`]
    /// (10 ms); `None` disables the monitor. Must be at least 1 ms.
    ///
    /// # A blocked worker
    ///
    /// Started green threads never change OS thread (see the crate's "Soundness"
    /// section), so a green thread that blocks its worker's OS thread holds up the started
    /// threads of that worker until it returns, as it would hold up the rest of an OS
    /// thread. What the monitor does about a stall:
    /// - threads of that worker that have not started yet move to other workers at once,
    ///   and new spawns avoid the stalled worker;
    /// - a warning names the stuck green thread and how long it blocked (once per stall,
    ///   through the `log` crate);
    /// - if the stall goes on (ten thresholds, at least 100 ms) while other started threads
    ///   are anchored to the worker, an error names them: if the stuck thread waits for one
    ///   of them (a `std::sync::Mutex` held across a greenring blocking call), it is a
    ///   deadlock.
    ///
    /// The remedy is to not block the worker: greenring's I/O and `greenring::sync` park
    /// only the green thread; [`spawn_blocking`](crate::spawn_blocking) runs a call you
    /// cannot change on a pool of OS threads. The monitor never preempts a thread.
    ///
    /// In a runtime built with [`Builder::migrate_started_threads`] the monitor instead
    /// hands the stalled worker, with its other green threads, to a new OS thread.
    pub fn handoff_threshold(mut self, threshold: Option<Duration>) -> Builder {
        self.handoff_threshold = threshold;
        self
    }

    /// Lets started green threads change worker and OS thread: idle workers steal started
    /// threads too, wake-ups resume a thread wherever there is room, and the monitor hands
    /// a stalled worker, with its green threads, to a new OS thread (so a green thread that
    /// blocks its OS thread never holds up its neighbours). This was greenring's behaviour
    /// before threads were anchored. It costs the faster io_uring setups: a ring that may
    /// change OS thread is created plain (see [`UringSetup`]).
    ///
    /// Building greenring with `RUSTFLAGS="--cfg greenring_migrate"` turns this on for
    /// every runtime (the test suite runs both ways).
    ///
    /// # Safety
    ///
    /// After any blocking call (I/O, `sleep`, `park`, `yield_now`, a lock, a channel, a
    /// join) a green thread of this runtime may continue on another OS thread. The caller
    /// promises that no green thread of this runtime holds, across such a call, anything
    /// bound to the OS thread it runs on, which the compiler cannot check:
    /// - a `!Send` value obtained from the OS thread: `rand::thread_rng()` (an `Rc` to that
    ///   thread's generator: after a move two OS threads mutate it at once), an `Rc` cloned
    ///   out of a `thread_local!`, a `std::io::StdoutLock` or any other guard of a
    ///   reentrant lock;
    /// - a borrow of a `thread_local!` (`with`, `RefCell` borrows of its value);
    /// - a `std::sync` guard (unlocking from another OS thread is undefined behaviour for
    ///   some lock implementations);
    /// - code that caches a thread-local's address across the call (the compiler may do so
    ///   inside one function; greenring's own code does not).
    ///
    /// Green-thread locals ([`green_local!`](crate::green_local)) follow their thread and
    /// stay usable.
    ///
    /// # Examples
    ///
    /// ```
    /// // SAFETY: the green threads of this runtime hold no OS-thread-bound state across
    /// // blocking calls: they only use owned, Send data.
    /// let rt = unsafe { greenring::Runtime::builder().migrate_started_threads() }.build()?;
    /// assert_eq!(rt.block_on(|| 6 * 7), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn migrate_started_threads(mut self) -> Builder {
        self.migrate = true;
        self
    }

    /// Sets how long a shutdown waits, once no green thread of the runtime can progress on
    /// its own, for a wake-up from outside it: an OS thread (or another runtime) that will
    /// send on a channel, release a lock or unpark a thread. A thread woken within it runs
    /// on normally (until its next blocking point). After it, the threads still parked are
    /// woken to unwind with [`Cancelled`]. The default is [`DEFAULT_SHUTDOWN_GRACE`] (1 s);
    /// [`Runtime::shutdown_timeout`] bounds it too. Waits the runtime can see end by
    /// themselves (I/O, blocking-pool jobs a green thread joins) do not need it: the
    /// shutdown waits for those as for running threads.
    pub fn shutdown_grace(mut self, grace: Duration) -> Builder {
        self.shutdown_grace = grace;
        self
    }

    /// Sets how many *extra workers* may run at once (default
    /// [`DEFAULT_MAX_EXTRA_WORKERS`], 256; 0 turns them off). When every worker's OS thread
    /// is blocked in code greenring does not own (a `crossbeam-channel` or std `mpsc`
    /// receive, a std lock, a C library's wait: asleep in the kernel, not computing) and
    /// green threads that have not started are waiting, the monitor starts an extra worker
    /// OS thread, with its own ring, to run them: the thread that would unblock the others may be one of them (a producer
    /// spawned after its consumers). An extra takes threads that have not started one at a
    /// time and only while every worker stays blocked; a thread it starts stays on it, as
    /// on any worker (started threads never move), and the extra leaves once those threads
    /// have finished. Each extra costs an OS thread, a ring and an eventfd while it runs.
    ///
    /// Extra workers need the monitor ([`Builder::handoff_threshold`] not `None`) and an
    /// anchored runtime (a migrating one moves the blocked worker instead).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let rt = greenring::Runtime::builder()
    ///     .worker_threads(1)
    ///     .max_extra_workers(4)
    ///     .build()?;
    /// let (tx, rx) = mpsc::channel();
    /// // Blocks the only worker's OS thread in std's receive, which greenring does not own.
    /// let consumer = rt.spawn(move || rx.recv().unwrap());
    /// // Spawned after it: an extra worker runs it.
    /// let producer = rt.spawn(move || tx.send(42).unwrap());
    /// producer.join().unwrap();
    /// assert_eq!(consumer.join().unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_extra_workers(mut self, max: usize) -> Builder {
        self.max_extra_workers = max;
        self
    }

    /// Forces the I/O backend. Without this, `GREENRING_IO_BACKEND` decides, and without
    /// that io_uring is used where the kernel allows it and epoll elsewhere (see
    /// [`IoBackend`]).
    pub fn io_backend(mut self, backend: IoBackend) -> Builder {
        self.io_backend = Some(backend);
        self
    }

    /// Starts the workers. The first runtime built in the process also wraps the panic hook,
    /// so that panic messages name the green thread (see the crate's `# Panic messages`).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for zero workers, a stack size out of range or a thread name prefix
    /// with an interior NUL byte; an error naming
    /// io_uring and the cause when the kernel refuses it (ENOSYS, EPERM: a seccomp profile,
    /// `kernel.io_uring_disabled`); the OS error when a worker thread cannot be started.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = self.checked()?;
        overflow::install_handler();
        crate::panic_message::install();
        let extras = if self.migrate || self.handoff_threshold.is_none() {
            0
        } else {
            self.max_extra_workers
        };
        let (shared, locals) = Shared::new(
            workers,
            extras,
            checked_stack_size(self.stack_size)?,
            self.handoff_threshold,
            self.migrate,
            self.shutdown_grace,
        )?;
        let reactors = self.reactors(&shared)?;
        shared.set_uring_setup(reactors.first().and_then(Reactor::uring_setup));
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
                    false,
                ))
            })
            .collect();
        let carriers: Vec<Arc<sched::Carrier>> = (0..workers)
            .map(|_| Arc::new(sched::Carrier::new()))
            .collect();
        for (index, carrier) in carriers.iter().enumerate() {
            shared.dumps.set_carrier(index, carrier);
        }
        let mut runtime = Runtime {
            shared: Arc::clone(&shared),
            workers: Vec::with_capacity(workers),
            monitor: None,
        };
        // On an error, dropping `runtime` shuts down the workers started so far.
        self.start_workers(&mut runtime, &boxes, &carriers)?;
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

    /// The number of workers, once every setting is checked.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`]'s `InvalidInput`.
    fn checked(&self) -> io::Result<usize> {
        let invalid = |message| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        let workers = match self.worker_threads {
            Some(0) => return invalid("greenring: a runtime needs at least one worker thread"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        checked_stack_size(self.stack_size)?;
        if self.thread_name.as_bytes().contains(&0) {
            return invalid(
                "greenring: the worker thread name prefix may not contain interior null bytes",
            );
        }
        if self
            .handoff_threshold
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return invalid(
                "greenring: the hand-off threshold must be at least 1 ms (or None to disable)",
            );
        }
        Ok(workers)
    }

    /// Every worker's reactor, all set up before any worker starts so that a refusal is
    /// reported by `build`: of the backend asked for, or io_uring, falling back to epoll
    /// where it is refused. Records the backend in `shared`.
    fn reactors(&self, shared: &Shared) -> io::Result<Vec<Reactor>> {
        let owner = match (self.migrate, self.handoff_threshold) {
            (false, _) => RingOwner::OneThread,
            (true, Some(_)) => RingOwner::Carried,
            (true, None) => RingOwner::CarriedUnmonitored,
        };
        let reactors_of = |backend| {
            (0..shared.workers())
                .map(|index| {
                    Reactor::new(
                        backend,
                        index,
                        shared.waker(index),
                        Arc::clone(&shared.stats[index]),
                        owner,
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
                    crate::report::warn(format_args!("{err}; falling back to the epoll backend"));
                    (IoBackend::Epoll, reactors_of(IoBackend::Epoll)?)
                }
            },
        };
        shared.set_io_backend(backend);
        Ok(reactors)
    }

    /// Starts one OS thread per worker into `runtime`. Each binds its ring to itself before
    /// it runs anything; waits for all of them, so that a refusal is reported here too.
    fn start_workers(
        &self,
        runtime: &mut Runtime,
        boxes: &[Arc<sched::WorkerBox>],
        carriers: &[Arc<sched::Carrier>],
    ) -> io::Result<()> {
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        for (index, (worker, carrier)) in boxes.iter().zip(carriers).enumerate() {
            let job = (Arc::clone(worker), Arc::clone(carrier));
            let shared = Arc::clone(&runtime.shared);
            let bound_tx = bound_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || {
                    let bound = job.0.bind_to_this_thread();
                    let ok = bound.is_ok();
                    let _ = bound_tx.send(bound);
                    drop(bound_tx);
                    if ok {
                        sched::carry(&shared, Some(job));
                    }
                })?;
            runtime.workers.push(handle);
        }
        drop(bound_tx);
        for bound in bound_rx {
            bound.map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("greenring: cannot enable a worker's io_uring: {err}"),
                )
            })?;
        }
        Ok(())
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
    /// steals, parks, I/O, stacks and hand-offs, and a histogram of the started threads'
    /// stack high-water marks. Reading it costs a few atomic loads per worker and one lock;
    /// the counters themselves cost the workers no atomic read-modify-write.
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

    /// Stack high-water marks of the started green threads, as a histogram of touched
    /// pages: entry `i` counts threads whose stack has at most `2^i` touched pages (and
    /// more than `2^(i-1)`), for `i` below [`STACK_BUCKETS`]` - 1`; the last entry counts
    /// the rest. Touched means resident (`mincore(2)`): pooled stacks are reused without
    /// being cleared, so a thread on a reused stack also counts the pages earlier threads
    /// touched there (see [`mod@crate::dump`]).
    ///
    /// It costs one `mincore` system call per started thread, which is why it is not part
    /// of [`Runtime::metrics`], which monitoring may poll: size `stack_size` from it once
    /// the program has run its deepest paths.
    ///
    /// ```
    /// let rt = greenring::Runtime::builder().worker_threads(1).build()?;
    /// let (tx, rx) = greenring::sync::mpsc::channel::<()>();
    /// let waiting = rt.spawn(move || rx.recv());
    /// while rt.metrics().parks() == 0 {
    ///     std::thread::yield_now();
    /// }
    /// let histogram = rt.stack_histogram();
    /// assert_eq!(histogram.len(), greenring::runtime::STACK_BUCKETS);
    /// assert_eq!(histogram.iter().sum::<u64>(), 1);
    /// drop(tx);
    /// waiting.join().unwrap().unwrap_err();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_histogram(&self) -> Vec<u64> {
        crate::dump::stack_histogram(&self.shared, STACK_BUCKETS)
    }

    /// A snapshot of every green thread of this runtime: its state (running, runnable, or
    /// waiting, and on what), for how long, its stack use and the backtrace of its
    /// suspended stack; `Display` groups threads with the same state and backtrace. See
    /// [`mod@crate::dump`] for how it is taken and what it costs (the workers walk their own
    /// threads' stacks between two green threads; a worker stuck in one green thread is
    /// waited for at most [`crate::dump::ANSWER_TIMEOUT`]).
    ///
    /// From one of this runtime's green threads, the dump is taken on the blocking pool
    /// while the caller waits (its own state then shows as a join).
    ///
    /// ```
    /// use greenring::dump::{ThreadState, WaitKind};
    ///
    /// let rt = greenring::Runtime::builder().worker_threads(1).build()?;
    /// let lock = std::sync::Arc::new(greenring::sync::Mutex::new(()));
    /// let held = lock.lock().unwrap();
    /// let waiter = {
    ///     let lock = std::sync::Arc::clone(&lock);
    ///     greenring::thread::Builder::new()
    ///         .name("waiter".into())
    ///         .spawn_on(&rt, move || drop(lock.lock().unwrap()))?
    /// };
    /// let dump = loop {
    ///     let dump = rt.dump();
    ///     if dump.thread("waiter").is_some_and(|t| t.state != ThreadState::Runnable) {
    ///         break dump;
    ///     }
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// };
    /// let waiter_dump = dump.thread("waiter").unwrap();
    /// assert_eq!(waiter_dump.state, ThreadState::Waiting(WaitKind::Lock));
    /// println!("{dump}");
    /// drop(held);
    /// waiter.join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dump(&self) -> crate::dump::Dump {
        crate::dump::take(&self.shared)
    }

    /// The I/O backend this runtime's workers use (see [`IoBackend`]).
    pub fn io_backend(&self) -> IoBackend {
        self.shared.io_backend()
    }

    /// How this runtime's io_uring rings are set up (`None` on the epoll backend).
    ///
    /// ```
    /// let rt = greenring::Runtime::builder().worker_threads(1).build()?;
    /// if let Some(setup) = rt.io_uring_setup() {
    ///     println!("io_uring setup flags: {}", setup.flags());
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn io_uring_setup(&self) -> Option<UringSetup> {
        self.shared.uring_setup()
    }

    /// `true` when started green threads of this runtime may change OS thread (see
    /// [`Builder::migrate_started_threads`]).
    pub fn migrates_started_threads(&self) -> bool {
        self.shared.migrates()
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
    if let Some(shared) = crate::task::current::with(Shared::of) {
        return Ok(shared);
    }
    default_runtime().map(|rt| Arc::clone(rt.shared()))
}

/// The index (from 0) of the worker running the calling green thread; `None` off green
/// threads. A started green thread stays on its worker for life, unless its runtime was
/// built with [`Builder::migrate_started_threads`] (and then it may move at any blocking
/// point, unless it was spawned [`pinned`](crate::thread::Builder::pinned)).
pub fn worker_index() -> Option<usize> {
    sched::current::worker_index()
}
