//! The scheduler: worker OS threads running green threads from work-stealing queues.
//!
//! - [`queue`]: the run queues (crossbeam-deque);
//! - [`idle`]: who searches, who sleeps, whom to wake;
//! - [`worker`]: the loop each worker OS thread runs;
//! - [`current`]: which worker and green thread this OS thread runs;
//! - [`carrier`]: the OS threads carrying workers, and how a worker changes carrier (only
//!   in a runtime that migrates started threads);
//! - [`handoff`]: the monitor that notices a worker whose OS thread is blocked, rescues its
//!   threads that have not started and reports the stall (and, in a migrating runtime,
//!   moves the worker to a new OS thread);
//! - [`extra`]: extra workers, which the monitor starts while every worker's OS thread
//!   is blocked and threads that have not started wait;
//! - [`registry`]: each worker's started threads, for the monitor's reports;
//!
//! [`Shared`] is the part of a runtime every worker and every handle sees.

mod carrier;
pub(crate) mod current;
pub(crate) mod extra;
pub(crate) mod handoff;
mod idle;
mod queue;
pub(crate) mod registry;
mod timers;
pub(crate) mod walk;
mod worker;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

pub(crate) use self::carrier::Carrier;
pub(crate) use self::handoff::{carry, run_monitor, Handoff};
pub(crate) use self::queue::LocalQueue;
pub(crate) use self::worker::WorkerBox;
pub(crate) use crate::stats::WorkerStats;

use self::extra::Extras;
use self::idle::Idle;
use self::queue::GlobalQueues;
use self::registry::Registry;
use crate::reactor::{IoBackend, UringSetup, Waker};
use crate::stack::{checked_stack_size, StackPool};
use crate::task::{Schedule, Task, TaskRef, ThreadId};

/// One green thread, in `Shared::live`.
const ONE_LIVE: u64 = 1;
/// One claim on a default-size stack, in `Shared::live`.
const ONE_CLAIM: u64 = 1 << 32;

/// The live green threads in a `Shared::live` word.
fn live_of(word: u64) -> usize {
    (word & (ONE_CLAIM - 1)) as usize
}

/// The claims on default-size stacks in a `Shared::live` word.
fn claims_of(word: u64) -> usize {
    (word >> 32) as usize
}

/// How a shutdown ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shutdown {
    /// Every green thread finished.
    Finished,
    /// The rest could make no progress even after being woken to unwind, and were leaked
    /// (their joins end with `Cancelled`).
    Abandoned,
    /// The timeout passed with threads still running; they were leaked.
    TimedOut,
}

/// State shared by a runtime's workers and handles.
pub(crate) struct Shared {
    queues: GlobalQueues,
    idle: Idle,
    pub(crate) stacks: StackPool,
    /// Each worker's eventfd: a worker sleeps in `io_uring_enter` with a read of it in
    /// flight, and a write wakes it. One per slot: the workers', made with the runtime,
    /// then the extra workers', made when an extra first uses the slot.
    wakers: Box<[OnceLock<Waker>]>,
    /// The number of workers (extra ones not counted).
    workers: usize,
    /// The extra workers (see `extra`).
    extras: Extras,
    /// Green threads spawned and not yet finished (low half, [`ONE_LIVE`] each), and of
    /// those, the ones that hold or will hold a stack of the pool's default size (high half,
    /// [`ONE_CLAIM`] each: the stack pool's claims, see `stack::pool`). One word, so a spawn
    /// and a retirement count both with one read-modify-write.
    live: AtomicU64,
    /// No more spawns; workers exit once `live` reaches zero.
    shutdown: AtomicBool,
    /// Workers exit now, leaking the green threads that have not finished.
    abandon: AtomicBool,
    /// Signalled when `live` reaches zero during shutdown, and whenever a worker goes to
    /// sleep during shutdown (so the shutdown can see that nothing progresses).
    drained: (Mutex<()>, Condvar),
    /// Green threads parked on a wake-up the runtime cannot see but that will come: a
    /// blocking-pool job that wakes them (see [`owe_wake`]). While any is owed the runtime
    /// can still progress.
    owed: AtomicUsize,
    /// Green threads run since the shutdown began: how the shutdown tells that nothing ran
    /// between two looks.
    shutdown_runs: AtomicU64,
    /// How long a shutdown waits, once no green thread can progress on its own, for a
    /// wake-up from outside the runtime (an OS thread sending on a channel, releasing a
    /// lock) before it wakes the remaining threads to unwind.
    grace: Duration,
    /// Per worker slot: its green threads' ops in flight, published whenever it goes to sleep
    /// (while it sleeps the number can only fall). Used to see that nothing can progress.
    inflight: Box<[AtomicUsize]>,
    /// Per worker slot: its counters.
    pub(crate) stats: Box<[Arc<WorkerStats>]>,
    /// The hand-off monitor's state.
    pub(crate) handoff: Handoff,
    /// The I/O backend (`IoBackend::to_u8`), set by `Runtime::build` before any worker
    /// starts.
    io_backend: AtomicU8,
    /// Started threads may change worker (and OS thread): the `unsafe` opt-in of
    /// `runtime::Builder::migrate_started_threads`. Otherwise every started thread stays
    /// on the worker that first ran it.
    migrate: bool,
    /// Per worker slot: its OS thread has been stuck in one green thread past the monitor's
    /// threshold (set by the monitor, cleared by the worker when that run ends). New
    /// threads spawned there go to the injector instead.
    stalled: Box<[AtomicBool]>,
    /// Per worker slot: the started threads anchored to it.
    pub(crate) registries: Box<[Registry]>,
    /// How the workers' rings are set up (io_uring backend), set by `Runtime::build`.
    uring_setup: std::sync::OnceLock<UringSetup>,
    /// How `Runtime::dump` asks the workers to walk their threads.
    pub(crate) dumps: walk::Desk,
}

impl Shared {
    /// The shared state of a runtime with `workers` workers (and room for up to
    /// `max_extra` extra workers) whose default stack holds `stack_size` usable bytes
    /// (checked), and the workers' local queues.
    ///
    /// # Errors
    ///
    /// When the eventfds to wake workers cannot be created (out of file descriptors).
    pub(crate) fn new(
        workers: usize,
        max_extra: usize,
        stack_size: usize,
        handoff_threshold: Option<Duration>,
        migrate: bool,
        grace: Duration,
    ) -> io::Result<(Arc<Shared>, Vec<LocalQueue>)> {
        let slots = workers + max_extra;
        let (locals, queues) = queue::new(workers, slots);
        let wakers = (0..slots)
            .map(|slot| {
                let cell = OnceLock::new();
                if slot < workers {
                    let _ = cell.set(Waker::new()?);
                }
                Ok(cell)
            })
            .collect::<io::Result<_>>()?;
        let shared = Arc::new(Shared {
            queues,
            idle: Idle::new(workers, slots),
            stacks: StackPool::new(stack_size),
            wakers,
            workers,
            extras: Extras::new(workers, max_extra),
            live: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            drained: (Mutex::new(()), Condvar::new()),
            owed: AtomicUsize::new(0),
            shutdown_runs: AtomicU64::new(0),
            grace,
            inflight: (0..slots).map(|_| AtomicUsize::new(0)).collect(),
            stats: (0..slots).map(|_| Arc::default()).collect(),
            handoff: Handoff::new(handoff_threshold),
            io_backend: AtomicU8::new(IoBackend::IoUring.to_u8()),
            migrate,
            stalled: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            registries: (0..slots).map(|_| Registry::default()).collect(),
            uring_setup: std::sync::OnceLock::new(),
            dumps: walk::Desk::new(slots),
        });
        Ok((shared, locals))
    }

    /// The I/O backend of this runtime's workers.
    pub(crate) fn io_backend(&self) -> IoBackend {
        IoBackend::from_u8(self.io_backend.load(Ordering::Relaxed))
    }

    /// Records the I/O backend (during `Runtime::build`, before workers start).
    pub(crate) fn set_io_backend(&self, backend: IoBackend) {
        self.io_backend.store(backend.to_u8(), Ordering::Relaxed);
    }

    /// How the workers' rings are set up, on the io_uring backend.
    pub(crate) fn uring_setup(&self) -> Option<UringSetup> {
        self.uring_setup.get().copied()
    }

    /// Records how the workers' rings are set up (during `Runtime::build`).
    pub(crate) fn set_uring_setup(&self, setup: Option<UringSetup>) {
        if let Some(setup) = setup {
            let _ = self.uring_setup.set(setup);
        }
    }

    /// Number of worker threads (extra workers not counted).
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Number of worker slots: the workers, then room for the extra workers.
    pub(crate) fn slots(&self) -> usize {
        self.wakers.len()
    }

    /// Workers carried right now: the workers and the extra workers running.
    pub(crate) fn carrying(&self) -> usize {
        self.workers + self.extras.live()
    }

    /// `true` when slot `index` carries a worker now (a worker, or a running extra).
    pub(crate) fn slot_active(&self, index: usize) -> bool {
        index < self.workers || self.extras.in_use(index)
    }

    /// `true` when started threads may change worker (see `migrate`).
    pub(crate) fn migrates(&self) -> bool {
        self.migrate
    }

    /// Marks worker `index` as stuck in one green thread (the monitor).
    pub(crate) fn begin_stall(&self, index: usize) {
        self.stalled[index].store(true, Ordering::Relaxed);
    }

    /// Called by worker `index` after every run: a stall, if any, is over.
    fn end_stall(&self, index: usize) {
        if self.stalled[index].load(Ordering::Relaxed) {
            self.stalled[index].store(false, Ordering::Relaxed);
            self.dumps.stall_ended(index);
        }
    }

    /// `true` while the monitor sees worker `index` stuck in one green thread.
    fn is_stalled(&self, index: usize) -> bool {
        self.stalled[index].load(Ordering::Relaxed)
    }

    /// How many threads worker `index` carries: started ones anchored to it and runnable
    /// ones queued on it (a snapshot).
    fn load(&self, index: usize) -> usize {
        self.registries[index].len() + self.queues.depth(index)
    }

    /// Where a thread spawned on worker `spawner` should start: anywhere (`None`, the
    /// injector) when the spawner is stalled; otherwise there (`Some(spawner)`), unless
    /// the thread is not `pinned` and the spawner carries more than one thread more than
    /// the least loaded worker, which then gets it. In a migrating runtime always the
    /// spawner: stealing rebalances later. Spawned on an extra worker, anywhere unless
    /// pinned.
    fn placement(&self, spawner: usize, pinned: bool) -> Option<usize> {
        if self.is_stalled(spawner) || (spawner >= self.workers && !pinned) {
            // An extra worker keeps only threads that must run there (see `extra`).
            return None;
        }
        if pinned || self.migrate || self.workers() == 1 {
            return Some(spawner);
        }
        // One pass: the spawner's load and the least loaded worker (stalled ones skipped).
        let mut here = 0;
        let (mut least, mut load) = (spawner, usize::MAX);
        for index in 0..self.workers() {
            if index != spawner && self.is_stalled(index) {
                continue;
            }
            let its = self.load(index);
            if index == spawner {
                here = its;
            }
            if its < load {
                (least, load) = (index, its);
            }
        }
        Some(if here > load + 1 { least } else { spawner })
    }

    /// Queues `task` in worker `index`'s inbox (only that worker takes from it) and wakes
    /// the worker if it sleeps.
    fn push_to(&self, index: usize, task: TaskRef) {
        self.queues.push_inbox(index, task);
        if self.idle.must_wake(index) {
            self.unpark_worker(index);
        }
    }

    /// Queues a runnable green thread from outside its worker: in its home worker's inbox
    /// if it is bound to one (started, or pinned), in the injector otherwise.
    pub(crate) fn requeue(&self, task: TaskRef) {
        match task.home() {
            Some(home) => self.push_to(home, task),
            None => {
                self.queues.inject(task);
                self.wake_one();
            }
        }
    }

    /// Wakes one sleeping worker if work was just made available and nobody searches.
    fn wake_one(&self) {
        if let Some(index) = self.idle.worker_to_wake() {
            self.unpark_worker(index);
        }
    }

    pub(crate) fn wake_all(&self) {
        for index in self.idle.take_all_sleepers() {
            self.unpark_worker(index);
        }
    }

    fn unpark_worker(&self, index: usize) {
        if let Some(waker) = self.wakers[index].get() {
            waker.wake();
        }
    }

    /// Wakes worker `index` if it sleeps (a spurious wake-up otherwise).
    pub(crate) fn wake_worker(&self, index: usize) {
        self.unpark_worker(index);
    }

    /// The waker of worker `index`, for its reactor.
    ///
    /// # Panics
    ///
    /// For an extra worker's slot never used (see [`Shared::extra_waker`]).
    pub(crate) fn waker(&self, index: usize) -> &Waker {
        self.wakers[index]
            .get()
            .expect("greenring: the waker of a worker slot never used")
    }

    /// The waker of extra worker slot `index`, made on its first use (by the monitor, the
    /// only one that starts extras).
    ///
    /// # Errors
    ///
    /// When the eventfd cannot be created (out of file descriptors).
    fn extra_waker(&self, index: usize) -> io::Result<&Waker> {
        if self.wakers[index].get().is_none() {
            let _ = self.wakers[index].set(Waker::new()?);
        }
        Ok(self.waker(index))
    }

    /// Forgets a finished green thread (its stack already recycled); the last one out
    /// during shutdown lets workers exit. The thread stops counting as live before its
    /// record is released, which may run the program's destructors (a result nobody
    /// joined): whatever they do, the shutdown is not kept waiting for them.
    fn retired(&self, task: TaskRef) {
        if let Some(home) = task.first_worker() {
            self.registries[home].remove(&task);
        }
        let before = self.live.fetch_sub(self.counted(&task), Ordering::SeqCst);
        if live_of(before) == 1 && self.shutdown.load(Ordering::SeqCst) {
            self.wake_all();
            self.notify_drained();
        }
        drop(task);
    }

    fn notify_drained(&self) {
        let _guard = self
            .drained
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.drained.1.notify_all();
    }

    /// `true` once the runtime is shutting down.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Called by worker `index` when it is about to sleep with `inflight` ops of its green
    /// threads in flight. During shutdown, tells the shutdown to look whether anything can
    /// still progress.
    fn going_to_sleep(&self, index: usize, inflight: usize) {
        self.inflight[index].store(inflight, Ordering::SeqCst);
        if self.shutdown.load(Ordering::SeqCst) && self.live() != 0 {
            self.notify_drained();
        }
    }

    /// Called by a worker before it runs a green thread.
    fn running(&self) {
        if self.shutdown.load(Ordering::Relaxed) {
            self.shutdown_runs.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `true` when no green thread can progress on its own (a snapshot): every worker
    /// sleeps with nothing in flight and nothing queued, no exiled carrier runs one, and
    /// no wake-up is owed.
    fn quiescent(&self) -> bool {
        self.idle.all_sleeping()
            && !self.handoff.exiles_running()
            && self.owed.load(Ordering::SeqCst) == 0
            && self.inflight.iter().all(|n| n.load(Ordering::SeqCst) == 0)
            && !self.queues.has_work()
            && (0..self.slots()).all(|index| !self.queues.has_inbox(index))
    }

    /// Wakes every started green thread that is parked (a spurious wake-up, which `park`
    /// allows): during shutdown its next blocking point unwinds it.
    fn wake_parked(&self) {
        for registry in self.registries.iter() {
            for task in registry.all() {
                if let Some(task) = Task::unpark(&task) {
                    self.requeue(task);
                }
            }
        }
    }

    /// Gives up on the green threads still live: workers leave, and the joins of those
    /// threads end with `Cancelled` (the threads themselves are leaked).
    fn abandon(&self) {
        self.abandon.store(true, Ordering::SeqCst);
        for registry in self.registries.iter() {
            for task in registry.all() {
                task.cancel_join();
            }
        }
        while let Some(task) = self.queues.take_injected_any() {
            task.cancel_join();
        }
        self.wake_all();
        for index in 0..self.slots() {
            self.unpark_worker(index);
        }
    }

    /// `true` once workers should leave their loop.
    pub(crate) fn should_exit(&self) -> bool {
        self.abandon.load(Ordering::SeqCst)
            || (self.shutdown.load(Ordering::SeqCst) && self.live() == 0)
    }

    /// Shuts down (see the policy in `runtime`): no more spawns, blocking points unwind,
    /// workers cancel their in-flight I/O. Waits, up to `timeout` (forever with `None`),
    /// until every green thread has finished. When none can progress on its own, waits up
    /// to the grace period for a wake-up from outside, then wakes the parked ones so they
    /// unwind; if even that leaves threads that cannot progress, gives up on them.
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) -> Shutdown {
        /// How often the shutdown looks whether anything still progresses.
        const LOOK: Duration = Duration::from_millis(10);
        self.shutdown.store(true, Ordering::SeqCst);
        // Wake every worker: each cancels its ring's I/O.
        for index in 0..self.slots() {
            self.unpark_worker(index);
        }
        let deadline = timeout.and_then(crate::timeout::deadline_after);
        // Since when nothing progressed, and how many runs there had been then.
        let mut still: Option<(Instant, u64)> = None;
        let mut woke_parked = false;
        let mut guard = self
            .drained
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.live() == 0 {
                return Shutdown::Finished;
            }
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                drop(guard);
                self.abandon();
                return Shutdown::TimedOut;
            }
            if self.quiescent() {
                let runs = self.shutdown_runs.load(Ordering::SeqCst);
                match still {
                    Some((since, seen)) if seen == runs => {
                        // Once woken, parked threads unwind at once: a second still spell
                        // needs no grace.
                        let wait = if woke_parked { LOOK } else { self.grace };
                        if now.duration_since(since) >= wait {
                            if woke_parked {
                                drop(guard);
                                self.abandon();
                                return Shutdown::Abandoned;
                            }
                            woke_parked = true;
                            still = None;
                            self.wake_parked();
                        }
                    }
                    _ => still = Some((now, runs)),
                }
            } else {
                still = None;
            }
            let left = deadline.map_or(LOOK, |d| d.saturating_duration_since(now).min(LOOK));
            guard = self
                .drained
                .1
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// `true` if the caller is one of this runtime's green threads.
    pub(crate) fn is_current(&self) -> bool {
        crate::task::current::with(|task| self.owns(task)).unwrap_or(false)
    }

    /// `true` when `task` belongs to this runtime.
    pub(crate) fn owns(&self, task: &Task) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&task.runtime), self as *const Shared)
    }

    /// The runtime `task` belongs to.
    pub(crate) fn of(task: &Task) -> Arc<Shared> {
        Arc::clone(&task.runtime)
            .into_any()
            .downcast::<Shared>()
            .unwrap_or_else(|_| unreachable!("every task's runtime is a `Shared`"))
    }

    /// Live green threads.
    pub(crate) fn live(&self) -> usize {
        live_of(self.live.load(Ordering::SeqCst))
    }

    /// Threads that hold or will hold a stack of the default size (the stack pool's claims).
    pub(crate) fn stack_claims(&self) -> usize {
        claims_of(self.live.load(Ordering::SeqCst))
    }

    /// What `task` counts for in `live`: a thread, and a claim if it runs on a stack of the
    /// pool's default size (its stack comes at its first run, from the pool).
    fn counted(&self, task: &Task) -> u64 {
        if task.stack_size() == self.stacks.default_size() {
            ONE_LIVE + ONE_CLAIM
        } else {
            ONE_LIVE
        }
    }

    /// Runnable green threads in the injector.
    pub(crate) fn injector_depth(&self) -> usize {
        self.queues.injector_depth()
    }

    /// Runnable green threads queued on worker `index`.
    pub(crate) fn queue_depth(&self, index: usize) -> usize {
        self.queues.depth(index)
    }
}

/// A wake-up owed to the calling green thread by something the runtime cannot see (a
/// blocking-pool job): while it lives, a shutdown counts the thread as able to progress.
pub(crate) struct OwedWake(Arc<Shared>);

/// Records that the calling green thread is about to wait for a wake-up that will come
/// (see [`OwedWake`]); `None` off green threads.
pub(crate) fn owe_wake() -> Option<OwedWake> {
    let shared = crate::task::current::with(Shared::of)?;
    shared.owed.fetch_add(1, Ordering::SeqCst);
    Some(OwedWake(shared))
}

impl Drop for OwedWake {
    fn drop(&mut self) {
        self.0.owed.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Creates a green thread running `main` and makes it runnable.
///
/// # Errors
///
/// A bad stack size, a refused stack mapping, or a runtime that is shutting down.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    name: Option<Box<str>>,
    stack_size: Option<usize>,
    pinned: bool,
    main: Arc<dyn crate::task::Main>,
) -> io::Result<TaskRef> {
    if shared.shutdown.load(Ordering::SeqCst) {
        return Err(io::Error::other(
            "greenring: cannot spawn a green thread on a runtime that is shutting down",
        ));
    }
    let usable = match stack_size {
        Some(size) => checked_stack_size(size)?,
        None => shared.stacks.default_size(),
    };
    // Counted first: a stack of the default size is given by the worker that first runs the
    // thread (see `task`), and the pool makes sure now that one will be there (see
    // `stack::pool`), reporting to the spawner a mapping the kernel refuses.
    let counted = if usable == shared.stacks.default_size() {
        ONE_LIVE + ONE_CLAIM
    } else {
        ONE_LIVE
    };
    let claims = claims_of(shared.live.fetch_add(counted, Ordering::SeqCst) + counted);
    let stack = match shared.stacks.prepare(usable, claims, shared.carrying()) {
        Ok(stack) => stack,
        Err(err) => {
            shared.live.fetch_sub(counted, Ordering::SeqCst);
            return Err(err);
        }
    };
    let task = Task::new(
        Arc::clone(shared) as Arc<dyn Schedule>,
        ThreadId::new(),
        name,
        usable,
        stack,
        pinned,
        main,
    );
    schedule(TaskRef::clone(&task));
    Ok(task)
}

/// Makes a green thread runnable: next on the current worker (its LIFO slot: a freshly
/// spawned or woken thread whose data is hot in this CPU's cache) if that worker belongs to
/// the thread's runtime and is the thread's home; through the home worker's inbox (or the
/// runtime's injector) otherwise. A started thread is thus only ever resumed on its own
/// worker.
///
/// A thread that has not started yet (a spawn) is placed where it will spend its life: on
/// the current worker, unless that worker is stalled or carries clearly more threads than
/// the least loaded one (see [`Shared::placement`]), which then gets it in its inbox.
pub(crate) fn schedule(task: TaskRef) {
    if let Some(worker) = current::worker() {
        let shared = &worker.shared;
        if shared.owns(&task) {
            let target = match task.home() {
                Some(home) => Some(home),
                None => shared.placement(worker.index, task.is_pinned()),
            };
            match target {
                Some(index) if index == worker.index => worker.push_next(task),
                Some(index) => {
                    worker.note_crossing();
                    shared.push_to(index, task);
                }
                None => shared.requeue(task),
            }
            return;
        }
    }
    let runtime = Arc::clone(&task.runtime);
    runtime.schedule(task);
}

/// The runtime as its green threads see it.
impl Schedule for Shared {
    fn schedule(&self, task: TaskRef) {
        self.requeue(task);
    }

    fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutdown
    }

    fn migrates(&self) -> bool {
        self.migrate
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}
