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
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::sched::{walk, Shared};
use crate::stack::stack_use;
use crate::task::wait::Human;

pub use crate::sched::walk::ANSWER_TIMEOUT;
pub use crate::stack::StackUse;
pub use crate::task::wait::{ThreadState, WaitKind};
pub use crate::task::ThreadId;

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
                .rposition(|f| f.function.starts_with("greenring::sched::walk::walk_"))
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
    let (answers, started) = walk::walk_all(shared);
    let workers = shared.workers();
    let mut notes = Vec::new();
    let mut walked: Vec<walk::Seen> = Vec::new();
    let mut captured: HashMap<Arc<[usize]>, Backtrace> = HashMap::new();
    for (index, answer) in answers.into_iter().enumerate() {
        match answer {
            Some(answer) => {
                walked.extend(answer.threads);
                for (ips, trace) in answer.traces {
                    captured.entry(ips).or_insert(trace);
                }
            }
            None => {
                let (why, threads) = walk::unanswered(shared, index);
                notes.push(why);
                walked.extend(threads);
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
        .map(|seen| ThreadDump {
            backtrace: match seen.ips {
                Ok(ips) => symbolised
                    .get(&ips)
                    .cloned()
                    .ok_or_else(|| "the unwinder could not capture this stack".to_owned()),
                Err(why) => Err(why),
            },
            id: seen.id,
            name: seen.name,
            state: seen.state,
            duration: seen.duration,
            worker: seen.worker,
            stack: seen.stack,
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
