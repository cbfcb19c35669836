//! The reactor: one per worker, and the only code that talks to the kernel's I/O
//! interfaces. Two backends, io_uring (`ring`, with its `completion` slots and `park_timeout`
//! `timer`s) and epoll (`epoll`, where io_uring is refused), behind one [`Reactor`] the
//! worker loop drives: submit, reap, wait, cancel everything. The green side (what an op
//! is, how a thread waits for one) is the driver's (`crate::driver`); the reactor keeps the
//! records a suspended thread waits on and completes them.

mod completion;
mod epoll;
mod ring;
mod timer;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::completion::{Completion, OpResult};
pub(crate) use self::epoll::{Epoll, Outcome, Readiness, TimerKey};
pub(crate) use self::ring::{Ring, Waker};
pub(crate) use self::timer::ParkTimer;

use crate::stats::WorkerStats;
use crate::task::TaskRef;

/// The fd of an op, and for a socket the record of which workers' epoll sets hold it
/// (bit `i` for worker `i`), kept by the socket object that owns the fd: an fd leaves
/// every epoll set when it is closed, so a set bit is never stale while the owner lives.
///
/// An fd nobody owns for greenring (one the `hooks` use for code greenring does not own)
/// may instead carry its *generation*: a counter that changes whenever the fd number is
/// closed or reused, and the value it had when the wait began. A readiness wait whose
/// generation has changed ends as [`Outcome::Closed`] instead of being woken by events of
/// whatever file got the number since.
#[derive(Clone, Copy)]
pub(crate) struct Socket<'a> {
    pub(crate) fd: RawFd,
    pub(crate) registered: Option<&'a AtomicU64>,
    pub(crate) generation: Option<(&'static AtomicU64, u64)>,
}

impl<'a> Socket<'a> {
    /// A socket whose owner keeps its epoll registrations in `registered`.
    pub(crate) fn new(fd: RawFd, registered: &'a AtomicU64) -> Socket<'a> {
        Socket {
            fd,
            registered: Some(registered),
            generation: None,
        }
    }

    /// A fd without such a record (a fresh socket being connected, a file).
    pub(crate) fn fd(fd: RawFd) -> Socket<'static> {
        Socket {
            fd,
            registered: None,
            generation: None,
        }
    }

    /// An fd whose number's generation counter is `counter`, read as `seen` (see above).
    #[cfg_attr(not(feature = "hooks"), allow(dead_code))]
    pub(crate) fn of_generation(
        fd: RawFd,
        counter: &'static AtomicU64,
        seen: u64,
    ) -> Socket<'static> {
        Socket {
            fd,
            registered: None,
            generation: Some((counter, seen)),
        }
    }
}

/// Which kernel interface a runtime's workers use for I/O.
///
/// `Runtime::builder().io_backend(..)` forces one; otherwise the environment variable
/// `GREENRING_IO_BACKEND` (`io_uring` or `epoll`) does; otherwise io_uring is used when the
/// kernel allows it and epoll when it refuses (Docker's default seccomp profile,
/// `kernel.io_uring_disabled`), with one warning through the `log` crate saying why.
/// [`Runtime::io_backend`](crate::Runtime::io_backend) reports the choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoBackend {
    /// One io_uring per worker: ops complete in the kernel, batched submissions, file I/O
    /// without extra threads.
    IoUring,
    /// One epoll instance per worker: sockets wait for readiness and retry; file operations
    /// run on the blocking pool. Slower, but needs nothing beyond epoll.
    Epoll,
}

impl IoBackend {
    /// The name used by `GREENRING_IO_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::IoUring => "io_uring",
            IoBackend::Epoll => "epoll",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(value: u8) -> IoBackend {
        if value == IoBackend::Epoll as u8 {
            IoBackend::Epoll
        } else {
            IoBackend::IoUring
        }
    }

    /// The backend `GREENRING_IO_BACKEND` asks for, if it is set.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a value other than `io_uring`, `epoll` or `auto`.
    pub(crate) fn from_env() -> io::Result<Option<IoBackend>> {
        match std::env::var("GREENRING_IO_BACKEND") {
            Err(_) => Ok(None),
            Ok(value) => match value.as_str() {
                "io_uring" | "io-uring" | "uring" => Ok(Some(IoBackend::IoUring)),
                "epoll" => Ok(Some(IoBackend::Epoll)),
                "" | "auto" => Ok(None),
                other => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "greenring: GREENRING_IO_BACKEND={other:?} is not a backend (use \
                         io_uring, epoll or auto)"
                    ),
                )),
            },
        }
    }
}

impl fmt::Display for IoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a worker's io_uring was set up: how the kernel runs the completion work of its ops
/// (see [`Metrics::io_uring_setup`](crate::runtime::Metrics::io_uring_setup)). The strongest
/// one the kernel and the runtime allow is used; the environment variable
/// `GREENRING_URING_SETUP` (`defer`, `coop` or `plain`) caps it, to compare them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UringSetup {
    /// `SINGLE_ISSUER | DEFER_TASKRUN` (Linux 6.1+): completion work runs only when the
    /// worker waits for completions, batched, on its own OS thread. The fastest; needs the
    /// ring to stay with one OS thread.
    DeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (Linux 5.19+): completion work waits for the worker's
    /// next entry into the kernel instead of interrupting it.
    CoopTaskrun,
    /// A plain ring: the kernel interrupts the worker to run completion work at once. Used
    /// on older kernels, and by runtimes whose workers may change OS thread.
    Plain,
}

impl UringSetup {
    /// Strength order: higher is faster and needs more of the kernel and the runtime.
    pub(crate) fn rank(self) -> u8 {
        match self {
            UringSetup::Plain => 0,
            UringSetup::CoopTaskrun => 1,
            UringSetup::DeferTaskrun => 2,
        }
    }

    /// The setup flags, as the kernel names them.
    pub fn flags(self) -> &'static str {
        match self {
            UringSetup::DeferTaskrun => "SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG",
            UringSetup::CoopTaskrun => "COOP_TASKRUN|TASKRUN_FLAG",
            UringSetup::Plain => "none",
        }
    }
}

/// Which OS threads will use a worker's ring, which limits how it can be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RingOwner {
    /// One OS thread for the ring's whole life (an anchored runtime).
    OneThread,
    /// The worker may move to another OS thread (a migrating runtime with a monitor).
    Carried,
    /// A migrating runtime without a monitor: the worker never actually moves, but its
    /// ring was not created on its thread.
    CarriedUnmonitored,
}

/// One worker's reactor, of either backend.
pub(crate) enum Reactor {
    Uring(Ring),
    Epoll(Epoll),
}

impl Reactor {
    /// A reactor of `backend` for worker `index`, woken through `waker`, used by `owner`.
    ///
    /// # Errors
    ///
    /// For io_uring, an error naming io_uring and the cause when the kernel refuses it;
    /// for epoll, when the process is out of file descriptors.
    pub(crate) fn new(
        backend: IoBackend,
        index: usize,
        waker: &Waker,
        stats: Arc<WorkerStats>,
        owner: RingOwner,
    ) -> io::Result<Reactor> {
        match backend {
            IoBackend::IoUring => Ring::new(waker, stats, owner).map(Reactor::Uring),
            IoBackend::Epoll => Epoll::new(index, waker.fd(), stats).map(Reactor::Epoll),
        }
    }

    /// Called once by the worker on its OS thread before it uses the reactor.
    ///
    /// # Errors
    ///
    /// When the kernel refuses to enable a ring created disabled.
    pub(crate) fn bind_to_this_thread(&self) -> io::Result<()> {
        match self {
            Reactor::Uring(ring) => ring.bind_to_this_thread(),
            Reactor::Epoll(_) => Ok(()),
        }
    }

    /// The io_uring setup, for an io_uring reactor.
    pub(crate) fn uring_setup(&self) -> Option<UringSetup> {
        match self {
            Reactor::Uring(ring) => Some(ring.setup()),
            Reactor::Epoll(_) => None,
        }
    }

    /// The io_uring of this reactor.
    ///
    /// # Panics
    ///
    /// On an epoll reactor (only io_uring ops call this).
    pub(crate) fn ring(&self) -> &Ring {
        match self {
            Reactor::Uring(ring) => ring,
            Reactor::Epoll(_) => unreachable!("an io_uring op on an epoll reactor"),
        }
    }

    /// Ops (and timers) of green threads still pending.
    pub(crate) fn inflight(&self) -> usize {
        match self {
            Reactor::Uring(ring) => ring.inflight(),
            Reactor::Epoll(epoll) => epoll.inflight(),
        }
    }

    /// Cancels everything pending (shutdown); threads this makes runnable go to `schedule`.
    pub(crate) fn cancel_all(&self, schedule: &mut dyn FnMut(TaskRef)) {
        match self {
            Reactor::Uring(ring) => ring.cancel_all(),
            Reactor::Epoll(epoll) => epoll.cancel_all(schedule),
        }
    }

    /// `true` when the worker should enter the kernel: ops are queued but not handed to
    /// it yet, or deferred completion work waits.
    pub(crate) fn needs_enter(&self) -> bool {
        match self {
            Reactor::Uring(ring) => ring.needs_enter(),
            Reactor::Epoll(_) => false,
        }
    }

    /// `true` when ops are queued but not handed to the kernel yet.
    pub(crate) fn has_queued(&self) -> bool {
        match self {
            Reactor::Uring(ring) => ring.has_queued(),
            Reactor::Epoll(_) => false,
        }
    }

    /// `true` when completions wait to be reaped, found without entering the kernel
    /// (epoll: never known); see [`Ring::has_completions`] for `run_deferred`.
    pub(crate) fn has_completions(&self, run_deferred: &mut bool) -> bool {
        match self {
            Reactor::Uring(ring) => ring.has_completions(run_deferred),
            Reactor::Epoll(_) => false,
        }
    }

    /// Hands queued ops to the kernel.
    pub(crate) fn submit(&self) {
        if let Reactor::Uring(ring) = self {
            ring.submit();
        }
    }

    /// Collects what completed, without sleeping; returns how many threads it scheduled.
    pub(crate) fn reap(&self, schedule: &mut dyn FnMut(TaskRef)) -> usize {
        match self {
            Reactor::Uring(ring) => ring.reap(schedule),
            Reactor::Epoll(epoll) => epoll.reap(schedule),
        }
    }

    /// Sleeps until something completes, the worker is woken, or `timeout` passes.
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        schedule: &mut dyn FnMut(TaskRef),
    ) -> usize {
        match self {
            Reactor::Uring(ring) => ring.wait(timeout, schedule),
            Reactor::Epoll(epoll) => epoll.wait(timeout, schedule),
        }
    }
}
