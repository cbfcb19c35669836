//! What a green thread last waited for: the record behind `Runtime::dump` and the
//! monitor's stall reports.
//!
//! The thread itself writes the record, right before it switches away; anyone may read it
//! (relaxed atomics: a reader gets a snapshot whose fields may come from two neighbouring
//! waits, never a torn value). The cost on the switch path is two plain stores, plus one
//! read of the coarse monotonic clock (`vDSO`, no system call, no `rdtsc`) for a wait that
//! is not a yield. Nothing is written when the thread resumes (a store after the switch
//! back cost a park/unpark round trip ~10%, measured): the record keeps the last wait
//! while the thread runs, and whether it runs is read from its worker's carrier.
//!
//! What the thread waits for is known by the blocking call, not by the switch: the sync
//! primitives, `join`, the I/O driver and `sleep` set a *hint* ([`hint`]) for the duration
//! of their wait, and the switch turns the hint (or, without one, the reason of the switch)
//! into the recorded kind.
//!
//! The public shape of what a record says ([`ThreadState`], [`WaitKind`]) is defined here,
//! beside the record, and re-exported by `crate::dump`; the monitor's reports word a record
//! with [`last_wait`].

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Suspend, Task};

/// Kind codes of a wait. `NOT_STARTED` until the thread first runs.
pub(crate) const NOT_STARTED: u8 = 0;
/// Yielded (or rescheduled by the runtime): runnable.
pub(crate) const RUNNABLE: u8 = 1;
/// A bare `park`.
pub(crate) const PARK: u8 = 2;
/// A `Mutex` or `RwLock`.
pub(crate) const LOCK: u8 = 3;
/// A `Semaphore` permit.
pub(crate) const SEMAPHORE: u8 = 4;
/// A `Condvar` (also behind `Barrier`).
pub(crate) const CONDVAR: u8 = 5;
/// Room in a channel.
pub(crate) const CHANNEL_SEND: u8 = 6;
/// A message from a channel.
pub(crate) const CHANNEL_RECV: u8 = 7;
/// A `select` over several channels.
pub(crate) const SELECT: u8 = 8;
/// Another thread's end (`JoinHandle::join`).
pub(crate) const JOIN: u8 = 9;
/// `sleep`; the argument is the deadline.
pub(crate) const SLEEP: u8 = 10;
/// An I/O op; the argument is the fd, the op names its type.
pub(crate) const IO: u8 = 11;
/// No hint: the switch decides.
const NO_HINT: u8 = u8::MAX;

/// The wait record of one thread (see the module documentation).
pub(crate) struct WaitRecord {
    /// Kind code of the current wait, or of the last one while the thread runs. A `u16`
    /// though codes fit a byte: with a `u8` the task's fields packed differently and a
    /// park/unpark round trip on one worker measured ~4% slower.
    state: AtomicU16,
    /// Coarse clock (ns) when the current wait began; 0 when unknown.
    since: AtomicU64,
    /// The fd of an I/O wait, the deadline of a sleep (ns after [`base`]), or the address
    /// of the lock of a lock wait.
    arg: AtomicU64,
    /// One self-describing word (see [`Detail`]): whatever mix of two neighbouring waits a
    /// reader sees, it decodes to something valid.
    detail: AtomicUsize,
    /// What the blocking call in progress waits for; only the thread touches it.
    hint: Cell<u8>,
}

impl WaitRecord {
    pub(crate) fn new() -> WaitRecord {
        WaitRecord {
            state: AtomicU16::new(NOT_STARTED as u16),
            since: AtomicU64::new(0),
            arg: AtomicU64::new(0),
            detail: AtomicUsize::new(0),
            hint: Cell::new(NO_HINT),
        }
    }

    /// Records the wait the thread is about to switch away for. Called by the thread
    /// itself.
    #[inline]
    pub(crate) fn suspending(&self, why: Suspend) {
        let hint = self.hint.get();
        let code = match why {
            Suspend::Yield => RUNNABLE,
            Suspend::Timer => SLEEP,
            Suspend::Io => IO,
            Suspend::Park if hint != NO_HINT => hint,
            Suspend::Park => PARK,
        };
        if code != RUNNABLE {
            self.since.store(coarse_now(), Ordering::Relaxed);
        }
        self.state.store(u16::from(code), Ordering::Relaxed);
    }

    /// A snapshot: (kind code, since, arg, detail), and whether the thread blocks its OS
    /// thread in that wait while unwinding (see [`WaitRecord::blocking_os`]).
    pub(crate) fn read(&self) -> Snapshot {
        let state = self.state.load(Ordering::Relaxed);
        Snapshot {
            code: state as u8,
            unwinding: state & BLOCKED_UNWINDING != 0,
            since: self.since.load(Ordering::Relaxed),
            arg: self.arg.load(Ordering::Relaxed),
            detail: Detail::decode(self.detail.load(Ordering::Relaxed)),
        }
    }

    /// Records that the thread, unwinding, blocks its OS thread in the wait of its current
    /// hint instead of switching away (see `park`'s `BLOCKED` state): the monitor, seeing
    /// that worker stalled, reads it here. Called by the thread itself.
    pub(crate) fn blocking_os(&self) {
        let hint = self.hint.get();
        let code = if hint == NO_HINT { PARK } else { hint };
        self.since.store(coarse_now(), Ordering::Relaxed);
        self.state
            .store(u16::from(code) | BLOCKED_UNWINDING, Ordering::Relaxed);
    }

    /// The OS-level block of [`WaitRecord::blocking_os`] ended: the thread runs on.
    pub(crate) fn blocked_os(&self) {
        self.state.store(u16::from(RUNNABLE), Ordering::Relaxed);
    }
}

/// Flag of a record's state: the thread blocks its OS thread in this wait, unwinding.
const BLOCKED_UNWINDING: u16 = 0x100;

/// A reading of a [`WaitRecord`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    /// The kind code.
    pub(crate) code: u8,
    /// Whether the thread blocks its OS thread in the wait, unwinding.
    pub(crate) unwinding: bool,
    /// Coarse clock (ns) when the wait began; 0 when unknown.
    pub(crate) since: u64,
    /// The fd, deadline or lock address, by kind.
    pub(crate) arg: u64,
    /// What else is known.
    pub(crate) detail: Detail,
}

/// What else a wait record knows of a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Nothing.
    None,
    /// The op type of an I/O wait.
    Op(&'static str),
    /// The id (`ThreadId::as_u64`) of the green thread that held the lock of a lock wait
    /// when the wait began.
    Holder(u64),
}

/// Names an op type; pointed to by an I/O wait's detail word (a `static`, so 8-aligned).
#[repr(align(8))]
struct OpInfo {
    name: fn() -> &'static str,
}

/// Low bits of a detail word that tag a holder id (an `OpInfo` address has them clear).
const HOLDER_TAG: usize = 0b001;
/// The bits of a detail word's tag.
const TAG_BITS: usize = 0b111;

impl Detail {
    fn decode(word: usize) -> Detail {
        match word & TAG_BITS {
            _ if word == 0 => Detail::None,
            0 => {
                // SAFETY: a non-zero word with clear tag bits is only ever stored by `io`, as
                // the address of a `static` `OpInfo`.
                Detail::Op((unsafe { &*(word as *const OpInfo) }.name)())
            }
            HOLDER_TAG => Detail::Holder((word >> 3) as u64),
            _ => Detail::None,
        }
    }

    /// The word of a holder id; ids beyond 2^61 (never reached) are not recorded.
    fn holder_word(id: u64) -> usize {
        match usize::try_from(id) {
            Ok(id) if id < usize::MAX >> 3 => (id << 3) | HOLDER_TAG,
            _ => 0,
        }
    }
}

/// Sets the wait hint of the calling green thread until the guard drops; a no-op off green
/// threads.
pub(crate) struct Hint {
    task: *const Task,
    previous: u8,
}

impl Drop for Hint {
    fn drop(&mut self) {
        // SAFETY: the guard lives on the thread's stack, inside its run, so the task is
        // alive; `hint` is only touched by the thread itself.
        if let Some(task) = unsafe { self.task.as_ref() } {
            task.wait.hint.set(self.previous);
        }
    }
}

/// The calling green thread waits for `code` (a kind code above) until the guard drops.
#[inline]
pub(crate) fn hint(code: u8) -> Hint {
    hint_with(code, |_| {})
}

#[inline]
fn hint_with(code: u8, args: impl FnOnce(&WaitRecord)) -> Hint {
    hint_on(super::current::ptr(), code, args)
}

#[inline]
fn hint_on(task: *const Task, code: u8, args: impl FnOnce(&WaitRecord)) -> Hint {
    // SAFETY: `task` is the running task (or null), alive while it runs.
    let previous = match unsafe { task.as_ref() } {
        Some(task) => {
            args(&task.wait);
            task.wait.hint.replace(code)
        }
        None => NO_HINT,
    };
    Hint { task, previous }
}

/// The running green thread `task` (the caller) runs the I/O op `O` on `fd` until the
/// guard drops.
#[inline]
pub(crate) fn io<O>(task: &Task, fd: i32) -> Hint {
    hint_on(task, IO, |wait| {
        wait.arg.store(fd as u32 as u64, Ordering::Relaxed);
        let info: &'static OpInfo = const {
            &OpInfo {
                name: std::any::type_name::<O>,
            }
        };
        wait.detail
            .store(info as *const OpInfo as usize, Ordering::Relaxed);
    })
}

/// The calling green thread waits for the lock at `lock`, held by the green thread whose id
/// is `holder` (0: unknown, or an OS thread), until the guard drops.
#[inline]
pub(crate) fn lock(lock: usize, holder: u64) -> Hint {
    hint_with(LOCK, |wait| {
        wait.arg.store(lock as u64, Ordering::Relaxed);
        let word = if holder == 0 {
            0
        } else {
            Detail::holder_word(holder)
        };
        wait.detail.store(word, Ordering::Relaxed);
    })
}

/// Records the deadline of the sleep `task` (the calling thread) is about to start.
#[inline]
pub(crate) fn sleeping(task: &Task, deadline: Instant) {
    let nanos = deadline.saturating_duration_since(base()).as_nanos();
    task.wait
        .arg
        .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The deadline recorded by [`sleeping`], from a record's argument.
pub(crate) fn deadline_of(arg: u64) -> Instant {
    base() + std::time::Duration::from_nanos(arg)
}

/// An instant before any deadline the runtime records (the first use of the runtime).
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The coarse monotonic clock in ns (resolution of a scheduler tick, a few ms): read from
/// the vDSO without a system call or a cycle counter read.
pub(crate) fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every
    // Linux greenring runs on.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
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
    pub(crate) fn label(&self) -> String {
        match self {
            ThreadState::Waiting(WaitKind::Io { op, .. }) => format!("waiting on I/O {op}"),
            ThreadState::Waiting(WaitKind::Sleep { .. }) => "waiting on sleep".to_owned(),
            other => other.to_string(),
        }
    }
}

/// A duration as people read it.
pub(crate) struct Human(pub(crate) Duration);

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

/// The wait of a record's code and arguments; `None` for a runnable thread.
pub(crate) fn kind_of(code: u8, arg: u64, detail: Detail) -> Option<WaitKind> {
    Some(match code {
        PARK => WaitKind::Park,
        LOCK => WaitKind::Lock,
        SEMAPHORE => WaitKind::Semaphore,
        CONDVAR => WaitKind::Condvar,
        CHANNEL_SEND => WaitKind::ChannelSend,
        CHANNEL_RECV => WaitKind::ChannelRecv,
        SELECT => WaitKind::Select,
        JOIN => WaitKind::Join,
        SLEEP => WaitKind::Sleep {
            deadline: deadline_of(arg),
        },
        IO => WaitKind::Io {
            op: match detail {
                Detail::Op(name) => short_type_name(name),
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
    let Snapshot {
        code,
        since,
        arg,
        detail,
        ..
    } = task.wait.read();
    let ago = (since != 0).then(|| Human(Duration::from_nanos(coarse_now().saturating_sub(since))));
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
        (None, RUNNABLE) => "it last yielded (yield_now, or its call budget)".to_owned(),
        (None, _) => "it has made no blocking greenring call since it started".to_owned(),
    }
}
