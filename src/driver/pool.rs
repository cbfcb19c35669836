//! The blocking pool: OS threads for calls greenring cannot make wait on the reactor (the
//! epoll backend's file ops, `fs`'s directory calls, host names, `flock`), and for
//! `spawn_blocking`. A green thread that hands a call to it ([`offload`]) parks until the
//! call is done.
//!
//! The pool grows on demand up to [`MAX_THREADS`]; a thread with nothing to do for
//! [`KEEP_ALIVE`] exits. Jobs wait in FIFO order when every thread is busy.
//!
//! # A thread that cannot be started
//!
//! The pool never drops a job it accepted. A job waits in the queue for a thread that will
//! take it: an idle one, a busy one once it is done, or one started for it. When the OS
//! refuses to start a thread (the process reached RLIMIT_NPROC, `kernel.threads-max` or its
//! cgroup's `pids.max`) while other pool threads live, the job waits for them. Only when no
//! pool thread is left to take them are the queued jobs *refused*: each learns why (its
//! caller gets an `io::Error` naming the limit; a `spawn_blocking` job's `join` returns
//! `Err` with that message), and the next call tries to start a thread again.

use std::collections::VecDeque;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::op::Op;
use super::{call, Called};

/// Most OS threads the pool runs at once.
pub const MAX_THREADS: usize = 512;
/// How long an idle pool thread waits for work before it exits.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A job: run with `Ok(())`, or told with `Err` why it never will be.
pub(crate) type Job = Box<dyn FnOnce(io::Result<()>) + Send>;

/// A pool of OS threads (one process-wide instance serves [`spawn_blocking`]).
pub(crate) struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    /// Starts a pool thread running its argument (`std::thread::Builder::spawn`; tests
    /// refuse some).
    start: fn(Box<dyn FnOnce() + Send>) -> io::Result<()>,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    /// Threads running or being started.
    threads: usize,
    idle: usize,
}

/// Starts a pool thread.
fn start_thread(body: Box<dyn FnOnce() + Send>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("greenring-blocking".to_owned())
        .spawn(body)
        .map(drop)
}

/// Why queued jobs are refused: `err`, from starting a thread, named as a limit.
fn refusal(err: &io::Error) -> io::Error {
    io::Error::new(
        err.kind(),
        format!(
            "greenring: no blocking-pool thread could be started to run this call ({err}); the \
             process may have reached its thread limit (RLIMIT_NPROC, kernel.threads-max or \
             its cgroup's pids.max)"
        ),
    )
}

impl Pool {
    pub(crate) fn new(max_threads: usize, keep_alive: Duration) -> Arc<Pool> {
        Pool::starting_with(max_threads, keep_alive, start_thread)
    }

    fn starting_with(
        max_threads: usize,
        keep_alive: Duration,
        start: fn(Box<dyn FnOnce() + Send>) -> io::Result<()>,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(PoolState::default()),
            work: Condvar::new(),
            max_threads,
            keep_alive,
            start,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // Jobs run outside the lock, so a panic never leaves the state half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`, starting a thread for it if none is idle and the pool may grow. When
    /// no thread can be started and none is left to take the queue, every queued job (this
    /// one included) is refused with the cause (see the module documentation).
    pub(crate) fn execute(self: &Arc<Pool>, job: Job) {
        let mut state = self.lock();
        state.queue.push_back(job);
        if state.idle >= state.queue.len() {
            // Enough idle threads for every queued job.
            self.work.notify_one();
            return;
        }
        if state.threads >= self.max_threads {
            return; // a busy thread takes it when it is done
        }
        state.threads += 1;
        drop(state);
        let pool = Arc::clone(self);
        let Err(err) = (self.start)(Box::new(move || pool.run())) else {
            return;
        };
        let mut state = self.lock();
        state.threads -= 1;
        if state.threads > 0 {
            return; // the threads still there take the queue
        }
        let refused = std::mem::take(&mut state.queue);
        drop(state);
        let why = refusal(&err);
        for job in refused {
            job(Err(io::Error::new(why.kind(), why.to_string())));
        }
    }

    /// Body of a pool thread.
    fn run(self: Arc<Pool>) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job(Ok(()));
                state = self.lock();
                continue;
            }
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        self.lock().threads
    }
}

/// The process-wide pool (behind `spawn_blocking` too).
pub(crate) fn pool() -> &'static Arc<Pool> {
    static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(MAX_THREADS, KEEP_ALIVE))
}

/// Runs `f`, which may borrow from the caller, on the blocking pool while the calling green
/// thread waits (the epoll backend's file operations, `fs`'s directory calls and `flock`).
/// Unlike `spawn_blocking(..).join()`, the wait is not a cancellation point: `f` may be
/// writing into the caller's buffers, so the caller must not unwind before it is done. A
/// panic in `f` is resumed here.
///
/// # Errors
///
/// `f`'s error, or the pool's when no thread could be started to run `f` (see the module
/// documentation); `f` has not run then.
///
/// Must be called on a green thread.
pub(crate) fn offload<R: Send>(f: impl FnOnce() -> io::Result<R> + Send) -> io::Result<R> {
    struct Done<R> {
        result: Mutex<Option<std::thread::Result<io::Result<R>>>>,
        done: AtomicBool,
    }
    let me = crate::task::current::task_ref().expect("offload off a green thread");
    let done = Arc::new(Done {
        result: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let their_done = Arc::clone(&done);
    let job: Box<dyn FnOnce(io::Result<()>) + Send + '_> = Box::new(move |start| {
        let result = match start {
            Ok(()) => panic::catch_unwind(AssertUnwindSafe(f)),
            Err(refused) => Ok(Err(refused)),
        };
        *their_done
            .result
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(result);
        their_done.done.store(true, Ordering::Release);
        if let Some(runnable) = crate::task::Task::unpark(&me) {
            crate::sched::schedule(runnable);
        }
    });
    // SAFETY: only the lifetime changes. Everything `job` borrows outlives its run: we do
    // not return (nor unwind: the loop below has no cancellation point) before `done` is
    // set, after which the job touches only its own `Arc`s. A refused job is called too,
    // so `done` is set either way.
    let job: Job = unsafe { std::mem::transmute(job) };
    // The job's unpark is a wake-up the runtime cannot see: owed, so a shutdown waits.
    let owed = crate::sched::owe_wake();
    pool().execute(job);
    while !done.done.load(Ordering::Acquire) {
        // A spurious wake-up (a user's unpark) just goes round the loop.
        crate::task::current::with(crate::task::point::park_uncancellable);
    }
    drop(owed);
    let result = done
        .result
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("set before `done`");
    match result {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// A pointer the pool thread uses while the green thread that lent it waits.
struct Lent<T>(*mut T);
// SAFETY: the op stays valid and untouched by its green thread until the pool thread is
// done with it (`offload` returns only then), so using it there is a hand-over.
unsafe impl<T> Send for Lent<T> {}

/// Runs `op`'s (blocking) system call on the pool; EINTR is retried there.
pub(super) fn run_op<O: Op>(op: &mut O) -> io::Result<usize> {
    let lent = Lent(op as *mut O);
    offload(move || {
        let lent = lent;
        // SAFETY: see `Lent`.
        let op = unsafe { &mut *lent.0 };
        match call(op) {
            Called::Done(result) => result,
            Called::WouldBlock => Err(io::Error::from_raw_os_error(libc::EAGAIN)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocking::spawn_on;

    /// Starts threads only while `REFUSE` is clear.
    static REFUSE: AtomicBool = AtomicBool::new(false);

    fn start_unless_refused(body: Box<dyn FnOnce() + Send>) -> io::Result<()> {
        if REFUSE.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        start_thread(body)
    }

    // One test for both cases: they share `REFUSE`.
    #[test]
    fn jobs_wait_for_a_live_thread_and_are_refused_only_when_none_is_left() {
        let pool = Pool::starting_with(4, Duration::from_millis(50), start_unless_refused);
        // A live thread, busy for a while; then no new thread can start.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = spawn_on(&pool, move || wait.recv().unwrap());
        while pool.threads() == 0 {
            std::thread::yield_now();
        }
        REFUSE.store(true, Ordering::SeqCst);
        let queued: Vec<_> = (0..10).map(|i| spawn_on(&pool, move || i)).collect();
        assert_eq!(pool.threads(), 1, "the refused starts are not counted");
        release.send(()).unwrap();
        busy.join().unwrap();
        let total: i32 = queued.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 45, "the live thread ran every queued job");
        // Once that thread has retired, nothing is left to take a job: refused with why.
        while pool.threads() > 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let payload = spawn_on(&pool, || 1).join().unwrap_err();
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("no blocking-pool thread could be started"),
            "{message}"
        );
        REFUSE.store(false, Ordering::SeqCst);
        assert_eq!(spawn_on(&pool, || 2).join().unwrap(), 2, "served again");
    }
}
