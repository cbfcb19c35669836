//! The scheduler: worker OS threads running green threads from work-stealing queues.
//!
//! - [`queue`]: the run queues (crossbeam-deque);
//! - [`idle`]: who searches, who sleeps, whom to wake;
//! - [`worker`]: the loop each worker OS thread runs;
//! - [`current`]: which worker and green thread this OS thread runs.
//!
//! [`Shared`] is the part of a runtime every worker and every handle sees.

pub(crate) mod current;
mod idle;
mod queue;
mod worker;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(crate) use self::queue::LocalQueue;
pub(crate) use self::worker::run_worker;

use self::idle::Idle;
use self::queue::GlobalQueues;
use crate::reactor::Waker;
use crate::stack::{checked_stack_size, StackPool};
use crate::task::{Task, TaskRef};
use crate::thread::ThreadId;

/// State shared by a runtime's workers and handles.
pub(crate) struct Shared {
    queues: GlobalQueues,
    idle: Idle,
    pub(crate) stacks: StackPool,
    /// Each worker's eventfd: a worker sleeps in `io_uring_enter` with a read of it in
    /// flight, and a write wakes it.
    wakers: Box<[Waker]>,
    /// Green threads spawned and not yet finished.
    live: AtomicUsize,
    /// No more spawns; workers exit once `live` reaches zero.
    shutdown: AtomicBool,
    /// Workers exit now, leaking the green threads that have not finished.
    abandon: AtomicBool,
    /// Signalled when `live` reaches zero during shutdown.
    drained: (Mutex<()>, Condvar),
}

impl Shared {
    /// The shared state of a runtime with `workers` workers whose default stack holds
    /// `stack_size` usable bytes (checked), and the workers' local queues.
    ///
    /// # Errors
    ///
    /// When the eventfds to wake workers cannot be created (out of file descriptors).
    pub(crate) fn new(
        workers: usize,
        stack_size: usize,
    ) -> io::Result<(Arc<Shared>, Vec<LocalQueue>)> {
        let (locals, queues) = queue::new(workers);
        let wakers = (0..workers)
            .map(|_| Waker::new())
            .collect::<io::Result<_>>()?;
        let shared = Arc::new(Shared {
            queues,
            idle: Idle::new(workers),
            stacks: StackPool::new(stack_size),
            wakers,
            live: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            drained: (Mutex::new(()), Condvar::new()),
        });
        Ok((shared, locals))
    }

    /// A runtime without workers, for unit tests of the pieces around it.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Arc<Shared> {
        Shared::new(1, crate::stack::DEFAULT_STACK_SIZE).unwrap().0
    }

    /// Number of worker threads.
    pub(crate) fn workers(&self) -> usize {
        self.wakers.len()
    }

    /// Queues a runnable green thread from outside this runtime's workers.
    fn inject(&self, task: TaskRef) {
        self.queues.inject(task);
        self.wake_one();
    }

    /// Wakes one sleeping worker if work was just made available and nobody searches.
    fn wake_one(&self) {
        if let Some(index) = self.idle.worker_to_wake() {
            self.unpark_worker(index);
        }
    }

    fn wake_all(&self) {
        for index in self.idle.take_all_sleepers() {
            self.unpark_worker(index);
        }
    }

    fn unpark_worker(&self, index: usize) {
        self.wakers[index].wake();
    }

    /// The waker of worker `index`, for its reactor.
    pub(crate) fn waker(&self, index: usize) -> &Waker {
        &self.wakers[index]
    }

    /// Counts a finished green thread; the last one out during shutdown lets workers exit.
    fn retired(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 && self.shutdown.load(Ordering::SeqCst) {
            self.wake_all();
            let _guard = self
                .drained
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.drained.1.notify_all();
        }
    }

    /// `true` once workers should leave their loop.
    fn should_exit(&self) -> bool {
        self.abandon.load(Ordering::SeqCst)
            || (self.shutdown.load(Ordering::SeqCst) && self.live.load(Ordering::SeqCst) == 0)
    }

    /// Stops spawning and waits, up to `timeout` (forever with `None`), until every green
    /// thread has finished. On timeout the workers are told to exit anyway, leaking the
    /// unfinished threads. Returns `true` if all finished.
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) -> bool {
        self.shutdown.store(true, Ordering::SeqCst);
        self.wake_all();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut guard = self
            .drained
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while self.live.load(Ordering::SeqCst) != 0 {
            guard = match deadline {
                None => self
                    .drained
                    .1
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.abandon.store(true, Ordering::SeqCst);
                        self.wake_all();
                        return false;
                    }
                    self.drained
                        .1
                        .wait_timeout(guard, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }

    /// `true` if the current OS thread is one of this runtime's workers.
    pub(crate) fn is_current(self: &Arc<Shared>) -> bool {
        // SAFETY: a non-null worker pointer refers to the WorkerCtx living on this OS
        // thread's stack for as long as it is set.
        unsafe { current::worker().as_ref() }.is_some_and(|w| Arc::ptr_eq(&w.shared, self))
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
    main: Box<dyn FnOnce() + Send>,
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
    // SAFETY: see `Shared::is_current`.
    let worker = unsafe { current::worker().as_ref() }.filter(|w| Arc::ptr_eq(&w.shared, shared));
    let stack = match worker {
        Some(worker) => worker.alloc_stack(usable)?,
        None => shared.stacks.alloc(usable, None)?,
    };
    let task = Task::new(Arc::clone(shared), ThreadId::new(), name, stack, main);
    shared.live.fetch_add(1, Ordering::SeqCst);
    schedule(Arc::clone(&task));
    Ok(task)
}

/// Makes a green thread runnable: next on the current worker (its LIFO slot: a freshly
/// spawned or woken thread whose data is hot in this CPU's cache) if that worker belongs to
/// the thread's runtime, through the runtime's injector otherwise.
pub(crate) fn schedule(task: TaskRef) {
    // SAFETY: see `Shared::is_current`.
    match unsafe { current::worker().as_ref() } {
        Some(worker) if Arc::ptr_eq(&worker.shared, &task.runtime) => worker.push_next(task),
        _ => {
            let runtime = Arc::clone(&task.runtime);
            runtime.inject(task);
        }
    }
}
