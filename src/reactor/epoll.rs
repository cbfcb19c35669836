//! The epoll backend: readiness instead of completions, for kernels and sandboxes that
//! refuse io_uring (Docker's default seccomp profile, `kernel.io_uring_disabled`).
//!
//! A green thread's socket call first tries the system call without blocking
//! (`MSG_DONTWAIT`). When it would block, the thread puts a [`Readiness`] slot on its stack,
//! registers its interest in the fd with its worker's epoll instance, and suspends with
//! `Suspend::Io`; as with io_uring, the worker leaks the run reference into the slot, and
//! only the event (or the wait's deadline, or the runtime's shutdown) gives it back. The
//! thread then retries the call. File operations have no readiness: the op driver (`op`) runs them
//! on the blocking pool.
//!
//! Each socket is registered once per worker that waits on it, edge-triggered for both
//! directions (as mio does), and stays registered until it is closed, which removes it
//! from every epoll set. The socket object remembers in which workers' sets it is (see
//! [`Socket`](super::op::Socket)), so a wait on a known socket costs no `epoll_ctl` at all;
//! an fd without that record (a connect on a fresh socket) is added on every wait, and
//! `EEXIST` means it already was. Edge-triggered is enough because every wait follows a
//! call that reported `EAGAIN` on this worker, with no poll in between: any later change
//! of readiness is a new edge. Events nobody waits for are dropped. Deadlines of timed
//! waits and `park_timeout` timers live in ordered maps the worker fires at every turn;
//! `epoll_wait` sleeps until the earliest. A wait that ends before its deadline removes
//! its entry, so entries never pile up until their deadlines.
//!
//! Costs against io_uring: a system call per attempt, and a non-blocking `epoll_wait`
//! every [`POLL_INTERVAL`] turns of a busy worker.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Socket;
use crate::stats::WorkerStats;
use crate::task::{Task, TaskRef};

/// The `u64` of the worker's eventfd in its epoll set.
const WAKE: u64 = u64::MAX;
/// Turns of a busy worker between two non-blocking `epoll_wait`s.
const POLL_INTERVAL: u32 = 16;
/// Events fetched per `epoll_wait`.
const EVENTS: usize = 256;

/// How a readiness wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still waiting.
    Pending,
    /// The fd is (or may be) ready: retry the call.
    Ready,
    /// The deadline passed first.
    TimedOut,
    /// The runtime is shutting down.
    Cancelled,
    /// The fd number was closed (and maybe reused) while the thread waited on it (see
    /// [`Socket`]'s generation).
    Closed,
}

/// What a green thread waits for on its own stack.
pub(crate) struct Readiness {
    /// The suspended thread; its run reference was leaked into this pointer by the worker.
    task: Cell<*const Task>,
    outcome: Cell<Outcome>,
}

impl Readiness {
    /// A slot for the calling green thread `task`.
    pub(crate) fn new(task: *const Task) -> Readiness {
        Readiness {
            task: Cell::new(task),
            outcome: Cell::new(Outcome::Pending),
        }
    }

    /// How the wait ended (read after the thread resumed).
    pub(crate) fn outcome(&self) -> Outcome {
        self.outcome.get()
    }
}

/// A registered wait.
struct Wait {
    slot: *const Readiness,
    fd: RawFd,
    write: bool,
    deadline: Option<Instant>,
    /// The fd number's generation when the wait began (see [`Socket`]).
    generation: Option<(&'static std::sync::atomic::AtomicU64, u64)>,
}

/// The waits registered for one fd.
#[derive(Default)]
struct Interest {
    readers: Vec<u64>,
    writers: Vec<u64>,
}

/// The events every fd is registered for: both directions, edge-triggered.
const EVENTS_OF_FD: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// One worker's epoll instance and its waits. Only touched on that worker's carrier.
pub(crate) struct Epoll {
    epfd: OwnedFd,
    /// This worker's bit in a socket's record of registrations (0 past 64 workers: such
    /// workers add the fd on every wait).
    bit: u64,
    wake_fd: RawFd,
    waits: RefCell<HashMap<u64, Wait>>,
    fds: RefCell<HashMap<RawFd, Interest>>,
    /// Deadlines of readiness waits, with their ids; a wait that ends removes its own.
    deadlines: RefCell<BTreeSet<(Instant, u64)>>,
    /// `park_timeout` timers by deadline (and arrival): a wait that ends early removes
    /// its own, so they do not pile up until their deadlines.
    park_timers: RefCell<BTreeMap<TimerKey, TaskRef>>,
    next_id: Cell<u64>,
    tick: Cell<u32>,
    stats: Arc<WorkerStats>,
}

/// The key of a `park_timeout` timer: its deadline, then its arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Instant,
    seq: u64,
}

fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

impl Epoll {
    /// An epoll instance watching the worker's eventfd `wake_fd`.
    ///
    /// # Errors
    ///
    /// When the process is out of file descriptors or memory.
    pub(crate) fn new(index: usize, wake_fd: RawFd, stats: Arc<WorkerStats>) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 has no memory-safety preconditions.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `epfd` is a fresh descriptor nothing else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKE,
        };
        // SAFETY: both fds are open; `event` is valid for the call.
        cvt(unsafe {
            libc::epoll_ctl(epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, wake_fd, &mut event)
        })?;
        Ok(Epoll {
            epfd,
            bit: 1u64.checked_shl(index as u32).unwrap_or(0),
            wake_fd,
            waits: RefCell::new(HashMap::new()),
            fds: RefCell::new(HashMap::new()),
            deadlines: RefCell::new(BTreeSet::new()),
            park_timers: RefCell::new(BTreeMap::new()),
            next_id: Cell::new(0),
            tick: Cell::new(0),
            stats,
        })
    }

    /// Registers the calling green thread's wait for `socket` to become readable (or
    /// writable), until `deadline`. The caller then suspends with `Suspend::Io`.
    ///
    /// # Errors
    ///
    /// When epoll refuses the fd (e.g. a regular file) or is out of memory; nothing is
    /// registered then and the caller must not suspend.
    ///
    /// # Safety
    ///
    /// `slot` lives on the calling green thread's stack, which suspends with `Suspend::Io`
    /// right after this returns `Ok` and does not resume before the slot is completed.
    pub(crate) unsafe fn register(
        &self,
        slot: &Readiness,
        socket: Socket<'_>,
        write: bool,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        let fd = socket.fd;
        let mut fds = self.fds.borrow_mut();
        // An fd somebody waits on here through its owner is open (the waiter borrows it)
        // and so registered; one without an owner's record may have been closed and its
        // number reused since the last wait, so it is added again (`EEXIST` is fine).
        if socket.registered.is_none() || !fds.contains_key(&fd) {
            self.add(socket)?;
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let interest = fds.entry(fd).or_default();
        if write {
            interest.writers.push(id);
        } else {
            interest.readers.push(id);
        }
        drop(fds);
        self.waits.borrow_mut().insert(
            id,
            Wait {
                slot,
                fd,
                write,
                deadline,
                generation: socket.generation,
            },
        );
        if let Some(deadline) = deadline {
            self.deadlines.borrow_mut().insert((deadline, id));
        }
        self.stats.io_submitted.incr();
        Ok(())
    }

    /// Makes sure `socket` is in this epoll set.
    ///
    /// # Errors
    ///
    /// When epoll refuses the fd (e.g. a regular file) or is out of memory.
    fn add(&self, socket: Socket<'_>) -> io::Result<()> {
        let known = socket
            .registered
            .is_some_and(|set| set.load(Ordering::Relaxed) & self.bit != 0);
        if known {
            return Ok(());
        }
        let mut event = libc::epoll_event {
            events: EVENTS_OF_FD,
            u64: socket.fd as u64,
        };
        let (epfd, add) = (self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD);
        // SAFETY: `event` is valid for the call; a bad fd is reported as an error.
        match cvt(unsafe { libc::epoll_ctl(epfd, add, socket.fd, &mut event) }) {
            Ok(_) => {}
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {}
            Err(err) => return Err(err),
        }
        if let Some(set) = socket.registered {
            set.fetch_or(self.bit, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Adds a `park_timeout` timer that unparks `task` after `timeout`; the key removes it.
    pub(crate) fn add_park_timer(&self, timeout: Duration, task: TaskRef) -> TimerKey {
        let seq = self.next_id.get();
        self.next_id.set(seq + 1);
        let key = TimerKey {
            deadline: Instant::now() + crate::timeout::saturate(timeout),
            seq,
        };
        self.park_timers.borrow_mut().insert(key, task);
        self.stats.pending_timers.incr();
        key
    }

    /// Removes a `park_timeout` timer whose wait ended (a no-op once it fired).
    pub(crate) fn remove_park_timer(&self, key: TimerKey) {
        let removed = self.park_timers.borrow_mut().remove(&key);
        if removed.is_some() {
            self.stats.pending_timers.decr();
        }
    }

    /// Waits and timers pending.
    pub(crate) fn inflight(&self) -> usize {
        self.waits.borrow().len() + self.park_timers.borrow().len()
    }

    /// Ends every wait with `Cancelled` and fires every timer (shutdown).
    pub(crate) fn cancel_all(&self, schedule: &mut dyn FnMut(TaskRef)) {
        let ids: Vec<u64> = self.waits.borrow().keys().copied().collect();
        for id in ids {
            if let Some(task) = self.finish(id, Outcome::Cancelled) {
                schedule(task);
            }
        }
        let timers = std::mem::take(&mut *self.park_timers.borrow_mut());
        for task in timers.into_values() {
            self.stats.pending_timers.decr();
            if let Some(task) = Task::unpark(&task) {
                schedule(task);
            }
        }
    }

    /// Handles the events ready now and the deadlines passed, every [`POLL_INTERVAL`]
    /// calls (each costs a system call); returns how many threads it scheduled.
    pub(crate) fn reap(&self, schedule: &mut dyn FnMut(TaskRef)) -> usize {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if self.inflight() == 0 || tick % POLL_INTERVAL != 0 {
            return 0;
        }
        self.poll(Some(Duration::ZERO), schedule)
    }

    /// Sleeps in `epoll_wait` until an event, a wake-up, `timeout`, or the earliest deadline
    /// of this reactor, then handles what is ready.
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        schedule: &mut dyn FnMut(TaskRef),
    ) -> usize {
        self.poll(timeout, schedule)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let wait = self.deadlines.borrow().first().map(|(d, _)| *d);
        let timer = self
            .park_timers
            .borrow()
            .first_key_value()
            .map(|(key, _)| key.deadline);
        match (wait, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll(&self, timeout: Option<Duration>, schedule: &mut dyn FnMut(TaskRef)) -> usize {
        let now = Instant::now();
        let until_deadline = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(now));
        let timeout = match (timeout, until_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let millis = match timeout {
            None => -1,
            // Round up, so a sleeper is never woken before its deadline.
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        // SAFETY: `events` has room for EVENTS entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as i32,
                millis,
            )
        };
        let mut scheduled = 0;
        if n < 0 {
            let err = io::Error::last_os_error();
            assert_eq!(
                err.raw_os_error(),
                Some(libc::EINTR),
                "greenring: epoll_wait failed unexpectedly: {err}"
            );
        }
        for event in &events[..n.max(0) as usize] {
            if event.u64 == WAKE {
                self.drain_wake_fd();
                continue;
            }
            scheduled += self.ready(event.u64 as RawFd, event.events, schedule);
        }
        scheduled + self.fire_deadlines(Instant::now(), schedule)
    }

    fn drain_wake_fd(&self) {
        let mut counter = 0u64;
        // SAFETY: reads 8 bytes into `counter`; the eventfd is non-blocking.
        unsafe { crate::sys::read(self.wake_fd, (&mut counter as *mut u64).cast(), 8) };
    }

    /// Wakes the waits on `fd` that `events` satisfies.
    fn ready(&self, fd: RawFd, events: u32, schedule: &mut dyn FnMut(TaskRef)) -> usize {
        let error = events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
        let readable = error || events & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0;
        let writable = error || events & libc::EPOLLOUT as u32 != 0;
        let waits: Vec<(u64, bool)> = match self.fds.borrow().get(&fd) {
            Some(interest) => interest
                .readers
                .iter()
                .map(|&id| (id, readable))
                .chain(interest.writers.iter().map(|&id| (id, writable)))
                .collect(),
            None => return 0,
        };
        let mut scheduled = 0;
        for (id, satisfied) in waits {
            // A wait whose fd number was closed since it began ends: the event is another
            // file's.
            let closed = self
                .waits
                .borrow()
                .get(&id)
                .and_then(|wait| wait.generation)
                .is_some_and(|(counter, seen)| {
                    counter.load(std::sync::atomic::Ordering::Acquire) != seen
                });
            let outcome = match (closed, satisfied) {
                (true, _) => Outcome::Closed,
                (false, true) => Outcome::Ready,
                (false, false) => continue,
            };
            if let Some(task) = self.finish(id, outcome) {
                schedule(task);
                scheduled += 1;
            }
        }
        scheduled
    }

    fn fire_deadlines(&self, now: Instant, schedule: &mut dyn FnMut(TaskRef)) -> usize {
        let mut scheduled = 0;
        loop {
            let due = {
                let mut deadlines = self.deadlines.borrow_mut();
                match deadlines.first() {
                    Some((deadline, _)) if *deadline <= now => deadlines.pop_first(),
                    _ => None,
                }
            };
            let Some((_, id)) = due else { break };
            if let Some(task) = self.finish(id, Outcome::TimedOut) {
                schedule(task);
                scheduled += 1;
            }
        }
        loop {
            let due = {
                let mut timers = self.park_timers.borrow_mut();
                match timers.first_key_value() {
                    Some((key, _)) if key.deadline <= now => timers.pop_first(),
                    _ => None,
                }
            };
            let Some((_, task)) = due else { break };
            self.stats.pending_timers.decr();
            if let Some(task) = Task::unpark(&task) {
                schedule(task);
                scheduled += 1;
            }
        }
        scheduled
    }

    /// Ends wait `id` with `outcome`, deregistering its interest; returns the thread to
    /// schedule (`None` if the wait already ended).
    fn finish(&self, id: u64, outcome: Outcome) -> Option<TaskRef> {
        let wait = self.waits.borrow_mut().remove(&id)?;
        if let Some(deadline) = wait.deadline {
            self.deadlines.borrow_mut().remove(&(deadline, id));
        }
        let mut fds = self.fds.borrow_mut();
        if let Some(interest) = fds.get_mut(&wait.fd) {
            if wait.write {
                interest.writers.retain(|&w| w != id);
            } else {
                interest.readers.retain(|&w| w != id);
            }
            // The fd stays in the epoll set (until it is closed); only the bookkeeping of
            // who waits goes.
            if interest.readers.is_empty() && interest.writers.is_empty() {
                fds.remove(&wait.fd);
            }
        }
        drop(fds);
        self.stats.io_completed.incr();
        // SAFETY: the slot lives on the stack of its suspended thread (see `register`), and
        // the wait is removed above, so this is its only completion.
        let slot = unsafe { &*wait.slot };
        slot.outcome.set(outcome);
        // SAFETY: the worker leaked exactly one run reference into the slot when the thread
        // suspended with `Suspend::Io`; this is the only place that takes it back.
        Some(unsafe { TaskRef::from_raw(slot.task.get()) })
    }
}
