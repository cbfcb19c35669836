//! [`Runtime::dump`](crate::Runtime::dump): what every green thread of a runtime is doing,
//! like a JVM thread dump or Go's goroutine profile.
//!
//! A [`Dump`] lists every started green thread with its state (running, runnable, or
//! waiting, and for what: an I/O op and its fd, a lock, a channel, a join, a sleep and its
//! deadline, `park`), how long it has been in it, how much of its stack it has touched,
//! and the backtrace of its suspended stack. Its [`Display`](fmt::Display) groups threads
//! with the same state and backtrace, so a dump of 100,000 threads reads like a dump of a
//! few.
//!
//! # How it is taken
//!
//! - **States** come from a record each thread keeps up to date around its switches (a
//!   few stores; see the crate's `task::wait`). Anyone may read it.
//! - **Backtraces**: only the worker a thread is anchored to may touch its stack, so the
//!   dump asks every worker, through a flag it checks between two green threads, to walk
//!   its own suspended threads. With greenring's own switch (x86-64, AArch64) the walk
//!   never resumes a thread: the worker calls an unwinder through a small assembly frame
//!   (`greenring_probe` in `asm/<arch>.S`) whose unwind information
//!   names the suspended thread's saved registers as its caller, so the unwinder reads the
//!   thread's stack as if the thread had called it where it switched away. Nothing is
//!   written to that stack (a thread in the middle of an I/O op keeps its completion slot
//!   exactly as it was). Each worker first collects bare return addresses (cheap) and
//!   captures a [`std::backtrace::Backtrace`] once per distinct stack; the dump then
//!   symbolises one backtrace per group.
//! - A worker whose OS thread is stuck in one green thread cannot answer: its threads are
//!   listed from their records, without backtraces, and the dump says why. The dump waits
//!   at most [`ANSWER_TIMEOUT`] for a worker to start its walk (then for the walk to end:
//!   a walk never blocks), and not at all for a worker the monitor already reports
//!   stalled. Called from a green thread of another runtime, the dump blocks that thread's
//!   worker meanwhile, as any OS-level wait would.
//! - A thread woken but not yet run may still show the wait it was woken from (a parked
//!   thread shows as runnable once unparked; an I/O or sleep wake-up is only seen when the
//!   thread runs).
//! - **Stack use** is the number of the stack's pages that are resident (`mincore(2)`): a
//!   page of a lazily committed mapping is resident once written. Stacks are pooled and
//!   reused without being cleared, so a thread on a reused stack also counts the pages
//!   earlier threads touched there: the figure is an upper bound of what the thread
//!   itself needed, exact for a stack's first thread.
//!
//! With the `corosensei` feature the worker cannot unwind into a suspended thread from its
//! own stack (corosensei keeps the thread's registers to itself), so it resumes the thread
//! into the switch it is suspended in: there, below the thread's own frames, the unwinder
//! runs and the thread switches straight back, without running any of its code.
//!
//! Backtraces need a runtime that anchors started threads (the default): in a runtime
//! built with `migrate_started_threads` (where a thread's stack may be in use on another
//! worker at any moment) the dump carries states, durations and stack use, and each
//! thread's [`ThreadDump::backtrace`] says why it has none.

use std::backtrace::Backtrace;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::sched::{Carrier, Shared};
use crate::task::wait;
use crate::task::{Suspend, Task, TaskRef};
use crate::thread::ThreadId;

/// How long a dump waits for each worker to start walking its threads' stacks (once it
/// has started, the dump waits for it to finish). A worker that has not started by then is
/// running one green thread for that long; its threads are listed without backtraces.
pub const ANSWER_TIMEOUT: Duration = Duration::from_millis(250);

/// Return addresses kept per backtrace, at most.
const MAX_FRAMES: usize = 64;

/// A snapshot of every green thread of a runtime; see the [module documentation](self).
///
/// ```
/// let rt = greenring::Runtime::builder().worker_threads(1).build()?;
/// let (tx, rx) = greenring::sync::mpsc::channel::<()>();
/// let waiter = rt.spawn(move || rx.recv());
/// # while rt.dump().threads().len() < 1 { std::thread::yield_now(); }
/// let dump = rt.dump();
/// println!("{dump}");
/// drop(tx);
/// waiter.join().unwrap().unwrap_err();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dump {
    threads: Vec<ThreadDump>,
    not_started: usize,
    notes: Vec<String>,
    workers: usize,
    took: Duration,
}

/// One green thread in a [`Dump`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ThreadDump {
    /// The thread's id.
    pub id: ThreadId,
    /// The thread's name, if it was given one.
    pub name: Option<String>,
    /// What it is doing.
    pub state: ThreadState,
    /// How long it has been in that state, to the coarse clock's resolution (a few ms);
    /// `None` when unknown (runnable threads, and a running thread whose worker the monitor
    /// has not reported stalled).
    pub duration: Option<Duration>,
    /// The worker the thread is anchored to (in a runtime that migrates started threads:
    /// the worker that first ran it).
    pub worker: usize,
    /// How much of its stack is touched; `None` if `mincore` failed.
    pub stack: Option<StackUse>,
    /// Its suspended stack, innermost frame first, from the first frame above greenring's
    /// switch down to the thread's entry; `Err` says why there is none.
    pub backtrace: Result<Arc<StackTrace>, String>,
}

/// What a green thread is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadState {
    /// Running (or blocking its worker's OS thread) on a worker.
    Running,
    /// Ready to run: it yielded, or was woken and has not run since.
    Runnable,
    /// Suspended until something happens.
    Waiting(WaitKind),
}

/// What a waiting green thread waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitKind {
    /// An I/O op of greenring's (`net`, `fs`): `op` names the op (`"Recv"`, `"Accept"`,
    /// ...), `fd` its file descriptor.
    Io {
        /// The op.
        op: &'static str,
        /// Its file descriptor.
        fd: i32,
    },
    /// A `greenring::sync` `Mutex` or `RwLock`.
    Lock,
    /// A `greenring::sync::Semaphore` permit.
    Semaphore,
    /// A `greenring::sync::Condvar` (also behind `Barrier`).
    Condvar,
    /// Room in a channel, to send.
    ChannelSend,
    /// A message from a channel.
    ChannelRecv,
    /// Any of several channels (`select`).
    Select,
    /// Another thread's end (`JoinHandle::join`, also `spawn_blocking` jobs).
    Join,
    /// `sleep`, until `deadline`.
    Sleep {
        /// When it wakes up.
        deadline: Instant,
    },
    /// A bare [`park`](crate::park) (or a wait built on it outside greenring).
    Park,
}

/// How much of a green thread's stack is touched (see the [module documentation](self)
/// for reused stacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackUse {
    /// Pages of the stack that are resident (touched).
    pub touched_pages: usize,
    /// Usable pages of the stack.
    pub pages: usize,
    /// Bytes in a page.
    pub page_size: usize,
}

impl StackUse {
    /// Touched bytes.
    pub fn touched_bytes(&self) -> usize {
        self.touched_pages * self.page_size
    }
}

/// A symbolised backtrace, innermost frame first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StackTrace {
    /// The frames.
    pub frames: Vec<Frame>,
}

/// One frame of a [`StackTrace`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Frame {
    /// The function (demangled), `<unknown>` without symbols.
    pub function: String,
    /// `file:line:column`, when debug information has it.
    pub location: Option<String>,
}

impl StackTrace {
    /// `true` when some frame's function name contains `name`.
    ///
    /// ```
    /// # let trace = greenring::dump::StackTrace { frames: vec![] };
    /// assert!(!trace.contains("main"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.frames.iter().any(|f| f.function.contains(name))
    }
}

impl fmt::Display for StackTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for frame in &self.frames {
            writeln!(f, "      {}", frame.function)?;
            if let Some(location) = &frame.location {
                writeln!(f, "          at {location}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for WaitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitKind::Io { op, fd } => write!(f, "I/O {op} on fd {fd}"),
            WaitKind::Lock => f.write_str("a lock"),
            WaitKind::Semaphore => f.write_str("a semaphore"),
            WaitKind::Condvar => f.write_str("a condvar"),
            WaitKind::ChannelSend => f.write_str("channel send"),
            WaitKind::ChannelRecv => f.write_str("channel recv"),
            WaitKind::Select => f.write_str("channel select"),
            WaitKind::Join => f.write_str("a join"),
            WaitKind::Sleep { deadline } => {
                let left = deadline.saturating_duration_since(Instant::now());
                write!(f, "sleep (wakes in {})", Human(left))
            }
            WaitKind::Park => f.write_str("park"),
        }
    }
}

impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadState::Running => f.write_str("running"),
            ThreadState::Runnable => f.write_str("runnable"),
            ThreadState::Waiting(kind) => write!(f, "waiting on {kind}"),
        }
    }
}

impl ThreadState {
    /// The state without per-thread details (fd, deadline): what groups share.
    fn label(&self) -> String {
        match self {
            ThreadState::Waiting(WaitKind::Io { op, .. }) => format!("waiting on I/O {op}"),
            ThreadState::Waiting(WaitKind::Sleep { .. }) => "waiting on sleep".to_owned(),
            other => other.to_string(),
        }
    }
}

/// A duration as people read it.
struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d >= Duration::from_secs(1) {
            write!(f, "{:.1} s", d.as_secs_f64())
        } else {
            write!(f, "{} ms", d.as_millis())
        }
    }
}

impl Dump {
    /// Every started green thread, by worker.
    pub fn threads(&self) -> &[ThreadDump] {
        &self.threads
    }

    /// Green threads spawned but not started yet (they wait in run queues, with no stack
    /// frames of their own yet).
    pub fn not_started(&self) -> usize {
        self.not_started
    }

    /// Remarks about the dump: workers that could not walk their threads' stacks, and why.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// How long taking the dump took (without formatting it).
    pub fn took(&self) -> Duration {
        self.took
    }

    /// The thread named `name`, if any.
    pub fn thread(&self, name: &str) -> Option<&ThreadDump> {
        self.threads
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
    }

    /// Threads grouped by state (without per-thread details such as the fd) and
    /// backtrace, largest group first: what [`Display`](fmt::Display) prints.
    pub fn groups(&self) -> Vec<Vec<&ThreadDump>> {
        let mut groups: HashMap<GroupKey<'_>, Vec<&ThreadDump>> = HashMap::new();
        for thread in &self.threads {
            let (trace, missing) = match &thread.backtrace {
                Ok(trace) => (Some(&**trace), None),
                Err(why) => (None, Some(why.as_str())),
            };
            groups
                .entry((thread.state.label(), trace, missing))
                .or_default()
                .push(thread);
        }
        let mut groups: Vec<Vec<&ThreadDump>> = groups.into_values().collect();
        groups.sort_by(|a, b| {
            b.len()
                .cmp(&a.len())
                .then_with(|| a[0].id.as_u64().cmp(&b[0].id.as_u64()))
        });
        groups
    }
}

/// What threads of a group share: state label, backtrace, or why there is none.
type GroupKey<'a> = (String, Option<&'a StackTrace>, Option<&'a str>);

fn describe(thread: &ThreadDump) -> String {
    match &thread.name {
        Some(name) => format!("'{name}' ({:?})", thread.id),
        None => format!("{:?}", thread.id),
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "greenring dump: {} started green thread(s) on {} worker(s), {} not started yet \
             (taken in {})",
            self.threads.len(),
            self.workers,
            self.not_started,
            Human(self.took),
        )?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for group in self.groups() {
            let first = group[0];
            writeln!(f)?;
            if group.len() == 1 {
                write!(
                    f,
                    "thread {} on worker {}: {}",
                    describe(first),
                    first.worker,
                    first.state
                )?;
                if let Some(d) = first.duration {
                    write!(f, ", for {}", Human(d))?;
                }
                if let Some(stack) = first.stack {
                    write!(
                        f,
                        "; stack {} of {} pages touched",
                        stack.touched_pages, stack.pages
                    )?;
                }
                writeln!(f)?;
            } else {
                write!(f, "{} threads: {}", group.len(), first.state.label())?;
                let durations = group.iter().filter_map(|t| t.duration);
                if let (Some(min), Some(max)) = (durations.clone().min(), durations.max()) {
                    if max - min < Duration::from_millis(100) {
                        write!(f, ", for {}", Human(max))?;
                    } else {
                        write!(f, ", for {} to {}", Human(min), Human(max))?;
                    }
                }
                let touched = group
                    .iter()
                    .filter_map(|t| t.stack.map(|s| s.touched_pages));
                if let (Some(min), Some(max)) = (touched.clone().min(), touched.max()) {
                    write!(f, "; stacks {min} to {max} pages touched")?;
                }
                writeln!(f)?;
                const NAMED: usize = 6;
                let names: Vec<String> = group.iter().take(NAMED).map(|t| describe(t)).collect();
                write!(f, "  {}", names.join(", "))?;
                if group.len() > NAMED {
                    write!(f, " and {} more", group.len() - NAMED)?;
                }
                writeln!(f)?;
            }
            match &first.backtrace {
                Ok(trace) => write!(f, "{trace}")?,
                Err(why) => writeln!(f, "      (no backtrace: {why})")?,
            }
        }
        Ok(())
    }
}

/// The dump desk of a runtime, part of its `Shared`: how a dump asks workers to walk
/// their threads.
pub(crate) struct Desk {
    /// One dump at a time.
    serial: Mutex<()>,
    /// The dump in progress.
    request: Mutex<Option<Arc<Request>>>,
    /// Per worker: a dump waits for its answer.
    pending: Box<[AtomicBool]>,
    /// Per worker: since when (coarse clock, ns) the monitor sees it stuck in one green
    /// thread; 0 when it is not.
    stalled_since: Box<[AtomicU64]>,
    /// Per worker: its current carrier, whose run status says which green thread runs
    /// there (threads do not record it themselves: a store after every switch back cost a
    /// park/unpark round trip ~10%). Set when the runtime starts and when the monitor hands
    /// a worker to a new carrier.
    carriers: Mutex<Vec<Option<Arc<Carrier>>>>,
}

struct Request {
    answers: Mutex<Answers>,
    answered: Condvar,
}

/// The workers' answers to one dump.
struct Answers {
    /// Per worker: it started walking its threads (it will finish: a walk never blocks).
    walking: Vec<bool>,
    /// Per worker: its walk.
    walks: Vec<Option<Answer>>,
    /// The dump stopped waiting: later answers are dropped.
    closed: bool,
}

/// One worker's walk of its threads.
struct Answer {
    threads: Vec<Walked>,
    /// One captured backtrace per distinct stack.
    traces: HashMap<Arc<[usize]>, Backtrace>,
}

/// One thread as a worker or the dump saw it, before symbolisation.
struct Walked {
    dump: ThreadDump,
    /// Return addresses of its suspended stack, or why there are none.
    ips: Result<Arc<[usize]>, String>,
}

impl Desk {
    pub(crate) fn new(workers: usize) -> Desk {
        Desk {
            serial: Mutex::new(()),
            request: Mutex::new(None),
            pending: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            stalled_since: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            carriers: Mutex::new(vec![None; workers]),
        }
    }

    /// Records `carrier` as worker `index`'s current carrier.
    pub(crate) fn set_carrier(&self, index: usize, carrier: &Arc<Carrier>) {
        lock(&self.carriers)[index] = Some(Arc::clone(carrier));
    }

    /// The ids of the green threads running now, one per worker that runs one (a
    /// snapshot).
    fn running(&self) -> Vec<u64> {
        lock(&self.carriers)
            .iter()
            .flatten()
            .filter(|carrier| carrier.status().running())
            .map(|carrier| carrier.running_id())
            .collect()
    }

    /// `true` when a dump waits for worker `index`: checked by the worker between two
    /// green threads (one relaxed load).
    #[inline]
    pub(crate) fn is_pending(&self, index: usize) -> bool {
        self.pending[index].load(Ordering::Relaxed)
    }

    /// The monitor saw worker `index` stuck in one green thread for `stuck_for`.
    pub(crate) fn stall_began(&self, index: usize, stuck_for: Duration) {
        let since = wait::coarse_now().saturating_sub(stuck_for.as_nanos() as u64);
        self.stalled_since[index].store(since.max(1), Ordering::Relaxed);
    }

    /// Worker `index` switched back from the green thread it was stuck in.
    #[inline]
    pub(crate) fn stall_ended(&self, index: usize) {
        if self.stalled_since[index].load(Ordering::Relaxed) != 0 {
            self.stalled_since[index].store(0, Ordering::Relaxed);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Called by worker `index` between two green threads when [`Desk::is_pending`]: walks the
/// threads anchored to it (none of which runs now) and answers the dump. `queued` are the
/// ids of threads in its run queues.
pub(crate) fn answer(shared: &Shared, index: usize, queued: &HashSet<u64>) {
    let desk = &shared.dumps;
    if !desk.pending[index].swap(false, Ordering::Acquire) {
        return;
    }
    let Some(request) = lock(&desk.request).clone() else {
        return;
    };
    {
        let mut answers = lock(&request.answers);
        if answers.closed {
            return;
        }
        answers.walking[index] = true;
    }
    request.answered.notify_all();
    let now = wait::coarse_now();
    let running = shared.dumps.running();
    let walk = if shared.migrates() {
        Err(
            "this runtime migrates started threads: a thread's stack may be in use on \
             another worker at any time, so no worker may walk it"
                .to_owned(),
        )
    } else {
        Ok(())
    };
    let mut pages = Vec::new();
    let mut traces: HashMap<Arc<[usize]>, Backtrace> = HashMap::new();
    let mut threads = Vec::new();
    for task in shared.registries[index].all() {
        let mut dump = from_record(&task, shared, index, now, &running, &mut pages);
        if !shared.migrates()
            && (queued.contains(&task.id.as_u64().get())
                || (task.suspended_for() == Suspend::Park && !task.is_parked()))
        {
            // Woken (or yielded) and waiting for this worker: runnable.
            dump.state = ThreadState::Runnable;
            dump.duration = None;
        }
        let ips = match &walk {
            Err(why) => Err(why.clone()),
            Ok(()) => {
                // SAFETY: this worker is between two green threads, in an anchored
                // runtime: `task` (registered here, so started and not finished) is
                // suspended, and only this OS thread may resume it, which it does not
                // while the probe runs.
                unsafe { return_addresses(&task) }.map(|ips| {
                    let ips: Arc<[usize]> = ips.into();
                    if !traces.contains_key(&ips) {
                        // SAFETY: as above.
                        if let Some(trace) = unsafe { capture(&task) } {
                            traces.insert(Arc::clone(&ips), trace);
                        }
                    }
                    ips
                })
            }
        };
        threads.push(Walked { dump, ips });
    }
    lock(&request.answers).walks[index] = Some(Answer { threads, traces });
    request.answered.notify_all();
}

/// A thread's dump entry from its wait record, as anyone may read it.
fn from_record(
    task: &Task,
    shared: &Shared,
    worker: usize,
    now: u64,
    running: &[u64],
    pages: &mut Vec<u8>,
) -> ThreadDump {
    let wait::Snapshot {
        code,
        since,
        arg,
        detail,
        ..
    } = task.wait.read();
    let since = (since != 0).then(|| Duration::from_nanos(now.saturating_sub(since)));
    let (state, duration) = if running.contains(&task.id.as_u64().get()) {
        let stalled = shared.dumps.stalled_since[worker].load(Ordering::Relaxed);
        let duration = (stalled != 0).then(|| Duration::from_nanos(now.saturating_sub(stalled)));
        (ThreadState::Running, duration)
    } else {
        match kind_of(code, arg, detail) {
            Some(kind) => (ThreadState::Waiting(kind), since),
            None => (ThreadState::Runnable, None),
        }
    };
    ThreadDump {
        id: task.id,
        name: task.name.as_deref().map(str::to_owned),
        state,
        duration,
        worker,
        stack: task.stack_range().and_then(|range| stack_use(range, pages)),
        backtrace: Err(String::new()),
    }
}

/// The wait of a record's code and arguments; `None` for a runnable thread.
fn kind_of(code: u8, arg: u64, detail: wait::Detail) -> Option<WaitKind> {
    Some(match code {
        wait::PARK => WaitKind::Park,
        wait::LOCK => WaitKind::Lock,
        wait::SEMAPHORE => WaitKind::Semaphore,
        wait::CONDVAR => WaitKind::Condvar,
        wait::CHANNEL_SEND => WaitKind::ChannelSend,
        wait::CHANNEL_RECV => WaitKind::ChannelRecv,
        wait::SELECT => WaitKind::Select,
        wait::JOIN => WaitKind::Join,
        wait::SLEEP => WaitKind::Sleep {
            deadline: wait::deadline_of(arg),
        },
        wait::IO => WaitKind::Io {
            op: match detail {
                wait::Detail::Op(name) => short_type_name(name),
                _ => "io",
            },
            fd: arg as u32 as i32,
        },
        _ => return None,
    })
}

/// `a::b::Recv<'_>` -> `Recv`.
fn short_type_name(name: &'static str) -> &'static str {
    let name = name.split('<').next().unwrap_or(name);
    name.rsplit("::").next().unwrap_or(name)
}

/// The last wait of the running green thread `task` as a phrase for the monitor's stall
/// report: what its last blocking greenring call was.
pub(crate) fn last_wait(task: &Task) -> String {
    let wait::Snapshot {
        code,
        since,
        arg,
        detail,
        ..
    } = task.wait.read();
    let ago = (since != 0).then(|| {
        Human(Duration::from_nanos(
            wait::coarse_now().saturating_sub(since),
        ))
    });
    match (kind_of(code, arg, detail), code) {
        (Some(kind), _) => {
            let label = ThreadState::Waiting(kind).label();
            match ago {
                Some(ago) => {
                    format!("its last blocking greenring call was {label}, which began {ago} ago")
                }
                None => format!("its last blocking greenring call was {label}"),
            }
        }
        (None, wait::RUNNABLE) => "it last yielded (yield_now, or its call budget)".to_owned(),
        (None, _) => "it has made no blocking greenring call since it started".to_owned(),
    }
}

/// Stack use of the stack `(lowest, top)`, from `mincore`.
fn stack_use((lowest, top): (usize, usize), buf: &mut Vec<u8>) -> Option<StackUse> {
    let page_size = crate::stack::page_size();
    // mincore writes one byte per page the range touches: round up, so a range that is
    // not page aligned can never overrun the buffer.
    let pages = (top - lowest).div_ceil(page_size);
    buf.clear();
    buf.resize(pages, 0);
    // SAFETY: [lowest, top) is the usable part of a mapped stack (page aligned): stacks of
    // live threads stay mapped, and the buffer has one byte per page.
    let rc = unsafe {
        libc::mincore(
            lowest as *mut libc::c_void,
            top - lowest,
            buf.as_mut_ptr().cast(),
        )
    };
    (rc == 0).then(|| StackUse {
        touched_pages: buf.iter().filter(|&&b| b & 1 != 0).count(),
        pages,
        page_size,
    })
}

/// Touched pages of every started thread's stack, as a histogram for `Metrics`: entry `i`
/// counts stacks with at most `2^i` touched pages (and more than `2^(i-1)`); the last
/// entry counts the rest.
pub(crate) fn stack_histogram(shared: &Shared, buckets: usize) -> Vec<u64> {
    let mut counts = vec![0; buckets];
    let mut buf = Vec::new();
    for registry in shared.registries.iter() {
        for task in registry.all() {
            if let Some(stack) = task
                .stack_range()
                .and_then(|range| stack_use(range, &mut buf))
            {
                let bucket = stack
                    .touched_pages
                    .max(1)
                    .next_power_of_two()
                    .trailing_zeros() as usize;
                counts[bucket.min(buckets - 1)] += 1;
            }
        }
    }
    counts
}

/// What the probe collects.
struct Collect {
    /// The suspended thread's stack, `(lowest, top)`: frames whose CFA lies outside are the
    /// probe's own (on the worker's stack).
    range: (usize, usize),
    ips: [usize; MAX_FRAMES],
    len: usize,
    trace: Option<Backtrace>,
    /// The walk ran on the thread's own stack (the corosensei backend) with less than
    /// [`WALK_ROOM`] left above its guard page, so it did not walk.
    no_room: bool,
}

/// Stack a walk needs below the frame it starts in, when it runs on the suspended thread's
/// own stack (the corosensei backend visits the thread; greenring's own switch walks from
/// the worker's stack). The unwinder's deepest callback was measured 744 bytes below the
/// walk's entry; this leaves room for its frame-state tables and the capture's allocation
/// many times over.
const WALK_ROOM: usize = 8 * 1024;

impl Collect {
    fn new(task: &Task) -> Collect {
        Collect {
            range: task.stack_range().unwrap_or_default(),
            ips: [0; MAX_FRAMES],
            len: 0,
            trace: None,
            no_room: false,
        }
    }

    /// Called first thing in a walk: `false` (and `no_room` set) when the walk runs on the
    /// thread's own stack too close to its guard page.
    fn has_room(&mut self) -> bool {
        let marker = 0u8;
        let here = std::hint::black_box(&marker) as *const u8 as usize;
        let (lowest, top) = self.range;
        self.no_room = here > lowest && here <= top && here - lowest < WALK_ROOM;
        !self.no_room
    }
}

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

type UnwindReason = libc::c_int;
const URC_NO_REASON: UnwindReason = 0;
const URC_END_OF_STACK: UnwindReason = 5;

extern "C" {
    // The unwinder std itself uses (libgcc_s, or LLVM's libunwind), already linked in.
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut UnwindContext, *mut libc::c_void) -> UnwindReason,
        arg: *mut libc::c_void,
    ) -> UnwindReason;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
}

extern "C" fn each_frame(ctx: *mut UnwindContext, arg: *mut libc::c_void) -> UnwindReason {
    // SAFETY: `arg` is the `Collect` passed to `_Unwind_Backtrace` by `walk_ips`, alive and
    // not otherwise borrowed during the walk; `ctx` is the unwinder's current frame.
    let (collect, ip, cfa) = unsafe {
        (
            &mut *arg.cast::<Collect>(),
            _Unwind_GetIP(ctx),
            _Unwind_GetCFA(ctx),
        )
    };
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    let (lowest, top) = collect.range;
    if cfa > lowest && cfa <= top {
        collect.ips[collect.len] = ip;
        collect.len += 1;
        if collect.len == MAX_FRAMES {
            return URC_END_OF_STACK;
        }
    }
    URC_NO_REASON
}

/// Runs on the worker's stack under `greenring_probe`: the unwinder continues into the
/// suspended thread. Must not unwind.
unsafe extern "C" fn walk_ips(arg: *mut u8) {
    // SAFETY: `arg` is a `Collect` lent by `return_addresses` for this call, not otherwise
    // borrowed until the walk below starts.
    if unsafe { &mut *arg.cast::<Collect>() }.has_room() {
        // SAFETY: as above.
        unsafe { _Unwind_Backtrace(each_frame, arg.cast()) };
    }
}

/// As [`walk_ips`], capturing a std backtrace (resolved later, by the dump).
unsafe extern "C" fn walk_backtrace(arg: *mut u8) {
    // SAFETY: `arg` is a `Collect` lent by `capture` for this call.
    let collect = unsafe { &mut *arg.cast::<Collect>() };
    if !collect.has_room() {
        return;
    }
    // Capturing only allocates and walks; a panic (out of memory) must not unwind through
    // the assembly frame.
    collect.trace = std::panic::catch_unwind(Backtrace::force_capture).ok();
}

/// The return addresses of suspended `task`'s stack, innermost first.
///
/// # Safety
///
/// As [`Task::probe`]: the caller is the only OS thread that may resume `task`, which is
/// suspended, started and not finished.
unsafe fn return_addresses(task: &Task) -> Result<Vec<usize>, String> {
    let mut collect = Collect::new(task);
    // SAFETY: forwarded; `walk_ips` does not unwind.
    unsafe { task.probe(walk_ips, (&mut collect as *mut Collect).cast()) };
    if collect.no_room {
        return Err(format!(
            "less than {} KiB of the thread's stack is left above its guard page, and with \
             the corosensei switch the walk would run there",
            WALK_ROOM / 1024
        ));
    }
    Ok(collect.ips[..collect.len].to_vec())
}

/// A std backtrace of suspended `task`'s stack (with the probe's own frames on top).
///
/// # Safety
///
/// As [`return_addresses`].
unsafe fn capture(task: &Task) -> Option<Backtrace> {
    let mut collect = Collect::new(task);
    // SAFETY: forwarded; `walk_backtrace` does not unwind.
    unsafe { task.probe(walk_backtrace, (&mut collect as *mut Collect).cast()) };
    collect.trace
}

/// Frames of a captured backtrace that belong to the thread: below the probe, above the
/// context's entry, without the switch itself.
fn trim(trace: &Backtrace) -> StackTrace {
    let text = trace.to_string();
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(location) = line.strip_prefix("at ") {
            if let Some(frame) = frames.last_mut() {
                frame.location.get_or_insert_with(|| location.to_owned());
            }
        } else if let Some((number, function)) = line.split_once(": ") {
            if number.chars().all(|c| c.is_ascii_digit()) {
                frames.push(Frame {
                    function: function.to_owned(),
                    location: None,
                });
            }
        }
    }
    // The probe's own frames: up to `greenring_probe` (greenring's switch), or up to the
    // walk run inside the thread's switch (corosensei's).
    if let Some(probe) = frames
        .iter()
        .position(|f| f.function.contains("greenring_probe"))
        .or_else(|| {
            frames
                .iter()
                .rposition(|f| f.function.starts_with("greenring::dump::walk_"))
        })
    {
        frames.drain(..=probe);
    }
    let switch = |f: &Frame| {
        f.function.starts_with("greenring::context::")
            || f.function.starts_with("greenring::arch::")
            || f.function.starts_with("greenring::task::Task::suspend")
    };
    let skip = frames.iter().take_while(|f| switch(f)).count();
    frames.drain(..skip);
    if let Some(entry) = frames.iter().position(|f| {
        f.function.starts_with("greenring::context::own::start")
            || f.function.contains("greenring_trampoline")
            || f.function.starts_with("greenring::task::run_main")
            || f.function.starts_with("<greenring::thread::builder::Body")
    }) {
        frames.truncate(entry);
        // The catch_unwind around the thread's closure.
        let wrapper = |f: &Frame| {
            [
                "std::panic",
                "<core::panic::unwind_safe",
                "__rust_try",
                "core::ops::function",
            ]
            .iter()
            .any(|prefix| f.function.starts_with(prefix))
        };
        while frames.len() > 1 && frames.last().is_some_and(wrapper) {
            frames.pop();
        }
    }
    StackTrace { frames }
}

/// Takes a dump of `shared` (see [`crate::Runtime::dump`]).
pub(crate) fn take(shared: &Arc<Shared>) -> Dump {
    if shared.is_current() {
        // A green thread of this runtime: its worker must be free to answer, so wait on the
        // blocking pool (the caller parks, its worker goes on).
        let shared = Arc::clone(shared);
        return crate::spawn_blocking(move || take(&shared))
            .join()
            .unwrap_or_else(|payload| std::panic::resume_unwind(payload));
    }
    let started = Instant::now();
    let desk = &shared.dumps;
    let _serial = lock(&desk.serial);
    let workers = shared.workers();
    let request = Arc::new(Request {
        answers: Mutex::new(Answers {
            walking: vec![false; workers],
            walks: (0..workers).map(|_| None).collect(),
            closed: false,
        }),
        answered: Condvar::new(),
    });
    *lock(&desk.request) = Some(Arc::clone(&request));
    for index in 0..workers {
        desk.pending[index].store(true, Ordering::Release);
        shared.wake_worker(index);
    }
    let deadline = started + ANSWER_TIMEOUT;
    let mut answers = lock(&request.answers);
    loop {
        let now = Instant::now();
        // Workers that started walking are waited for to the end; the others until the
        // deadline, unless the monitor already reports them stuck.
        let walking = (0..workers).any(|i| answers.walking[i] && answers.walks[i].is_none());
        let expected = (0..workers)
            .any(|i| !answers.walking[i] && desk.stalled_since[i].load(Ordering::Relaxed) == 0);
        if !walking && (!expected || now >= deadline) {
            break;
        }
        let wait = if walking {
            ANSWER_TIMEOUT
        } else {
            deadline - now
        };
        answers = request
            .answered
            .wait_timeout(answers, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    answers.closed = true;
    let answers: Vec<Option<Answer>> = std::mem::take(&mut answers.walks);
    *lock(&desk.request) = None;
    for flag in desk.pending.iter() {
        flag.store(false, Ordering::Relaxed);
    }
    let now = wait::coarse_now();
    let running = shared.dumps.running();
    let mut notes = Vec::new();
    let mut walked: Vec<Walked> = Vec::new();
    let mut captured: HashMap<Arc<[usize]>, Backtrace> = HashMap::new();
    let mut pages = Vec::new();
    for (index, answer) in answers.into_iter().enumerate() {
        match answer {
            Some(answer) => {
                walked.extend(answer.threads);
                for (ips, trace) in answer.traces {
                    captured.entry(ips).or_insert(trace);
                }
            }
            None => {
                let tasks: Vec<TaskRef> = shared.registries[index].all();
                let busy = tasks
                    .iter()
                    .find(|t| running.contains(&t.id.as_u64().get()))
                    .map(|t| t.describe());
                let why = match busy {
                    Some(name) => format!(
                        "worker {index} did not answer: its OS thread is busy in green \
                         thread {name}, so it cannot walk its threads' stacks"
                    ),
                    None => format!(
                        "worker {index} did not answer within {} ms",
                        ANSWER_TIMEOUT.as_millis()
                    ),
                };
                notes.push(why.clone());
                for task in tasks {
                    let dump = from_record(&task, shared, index, now, &running, &mut pages);
                    walked.push(Walked {
                        dump,
                        ips: Err(why.clone()),
                    });
                }
            }
        }
    }
    let registered = walked.len();
    // Symbolise one backtrace per distinct stack.
    let symbolised: HashMap<Arc<[usize]>, Arc<StackTrace>> = captured
        .into_iter()
        .map(|(ips, trace)| (ips, Arc::new(trim(&trace))))
        .collect();
    let threads = walked
        .into_iter()
        .map(|Walked { mut dump, ips }| {
            dump.backtrace = match ips {
                Ok(ips) => symbolised
                    .get(&ips)
                    .cloned()
                    .ok_or_else(|| "the unwinder could not capture this stack".to_owned()),
                Err(why) => Err(why),
            };
            dump
        })
        .collect();
    Dump {
        threads,
        not_started: shared.live().saturating_sub(registered),
        notes,
        workers,
        took: started.elapsed(),
    }
}
