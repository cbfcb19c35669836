//! The workers' side of `Runtime::dump` (see `crate::dump` for what a dump shows and how it
//! is taken): the desk through which a dump asks every worker to walk its own threads
//! between two green threads, the walk itself (each thread's wait record, its stack use
//! and the return addresses of its suspended stack, read by an unwinder run through the
//! context's probe frame), and the collection of the answers. Symbolising and formatting
//! are the dump's.

use std::backtrace::Backtrace;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Carrier, Shared};
use crate::stack::{stack_use, StackUse};
use crate::task::wait::{self, ThreadState};
use crate::task::{Suspend, Task, ThreadId};

/// How long a dump waits for each worker to start walking its threads' stacks (once it
/// has started, the dump waits for it to finish). A worker that has not started by then is
/// running one green thread for that long; its threads are listed without backtraces.
pub const ANSWER_TIMEOUT: Duration = Duration::from_millis(250);

/// Return addresses kept per backtrace, at most.
const MAX_FRAMES: usize = 64;

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
pub(crate) struct Answer {
    pub(crate) threads: Vec<Seen>,
    /// One captured backtrace per distinct stack.
    pub(crate) traces: HashMap<Arc<[usize]>, Backtrace>,
}

/// One thread as a worker (or the dump, for a worker that did not answer) saw it, before
/// symbolisation: a dump's `ThreadDump` without its backtrace.
pub(crate) struct Seen {
    pub(crate) id: ThreadId,
    pub(crate) name: Option<String>,
    pub(crate) state: ThreadState,
    pub(crate) duration: Option<Duration>,
    pub(crate) worker: usize,
    pub(crate) stack: Option<StackUse>,
    /// Return addresses of its suspended stack, or why there are none.
    pub(crate) ips: Result<Arc<[usize]>, String>,
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

    /// Forgets the carrier of slot `index` (an extra worker that left).
    pub(crate) fn clear_carrier(&self, index: usize) {
        lock(&self.carriers)[index] = None;
    }

    /// The ids of the green threads running now, one per worker that runs one (a
    /// snapshot).
    pub(crate) fn running(&self) -> Vec<u64> {
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
        let mut seen = seen(&task, shared, index, now, &running, &mut pages);
        if !shared.migrates()
            && (queued.contains(&task.id.as_u64().get())
                || (task.suspended_for() == Suspend::Park && !task.is_parked()))
        {
            // Woken (or yielded) and waiting for this worker: runnable.
            seen.state = ThreadState::Runnable;
            seen.duration = None;
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
        seen.ips = ips;
        threads.push(seen);
    }
    lock(&request.answers).walks[index] = Some(Answer { threads, traces });
    request.answered.notify_all();
}

/// Asks every worker of `shared` to walk its threads and collects the answers: one per
/// worker, `None` for a worker that did not answer (see `crate::dump` for how long the
/// dump waits). Returns when the answers were asked for too.
pub(crate) fn walk_all(shared: &Shared) -> (Vec<Option<Answer>>, Instant) {
    let started = Instant::now();
    let desk = &shared.dumps;
    let _serial = lock(&desk.serial);
    let workers = shared.slots();
    // A slot that carries no worker (an extra's, free) has nothing to walk.
    let active: Vec<bool> = (0..workers).map(|i| shared.slot_active(i)).collect();
    let request = Arc::new(Request {
        answers: Mutex::new(Answers {
            walking: vec![false; workers],
            walks: (0..workers)
                .map(|i| {
                    (!active[i]).then(|| Answer {
                        threads: Vec::new(),
                        traces: HashMap::new(),
                    })
                })
                .collect(),
            closed: false,
        }),
        answered: Condvar::new(),
    });
    *lock(&desk.request) = Some(Arc::clone(&request));
    for index in (0..workers).filter(|&i| active[i]) {
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
    let walks: Vec<Option<Answer>> = std::mem::take(&mut answers.walks);
    *lock(&desk.request) = None;
    for flag in desk.pending.iter() {
        flag.store(false, Ordering::Relaxed);
    }
    (walks, started)
}

/// A thread as its wait record says, as anyone may read it (no backtrace yet).
pub(crate) fn seen(
    task: &Task,
    shared: &Shared,
    worker: usize,
    now: u64,
    running: &[u64],
    pages: &mut Vec<u8>,
) -> Seen {
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
        match wait::kind_of(code, arg, detail) {
            Some(kind) => (ThreadState::Waiting(kind), since),
            None => (ThreadState::Runnable, None),
        }
    };
    Seen {
        id: task.id,
        name: task.name.as_deref().map(str::to_owned),
        state,
        duration,
        worker,
        stack: task.stack_range().and_then(|range| stack_use(range, pages)),
        ips: Err(String::new()),
    }
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

/// The threads of worker `index`, which did not answer a dump, as their wait records say
/// (without backtraces), and why it did not answer.
pub(crate) fn unanswered(shared: &Shared, index: usize) -> (String, Vec<Seen>) {
    let now = wait::coarse_now();
    let running = shared.dumps.running();
    let tasks = shared.registries[index].all();
    let busy = tasks
        .iter()
        .find(|t| running.contains(&t.id.as_u64().get()))
        .map(|t| t.describe());
    let why = match busy {
        Some(name) => format!(
            "worker {index} did not answer: its OS thread is busy in green thread {name}, so \
             it cannot walk its threads' stacks"
        ),
        None => format!(
            "worker {index} did not answer within {} ms",
            ANSWER_TIMEOUT.as_millis()
        ),
    };
    let mut pages = Vec::new();
    let threads = tasks
        .iter()
        .map(|task| Seen {
            ips: Err(why.clone()),
            ..seen(task, shared, index, now, &running, &mut pages)
        })
        .collect();
    (why, threads)
}
