//! One worker's io_uring: queueing SQEs, submitting them in batches, reaping CQEs, and
//! sleeping until a completion or a wake-up arrives.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use std::time::Duration;

use io_uring::squeue::Entry;
use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{opcode, types, IoUring};

use super::completion::{self, IGNORED, TAG_LINK_TIMEOUT, TAG_MASK, TAG_OP, TAG_TIMER, WAKE};
use super::timer;
use super::{RingOwner, UringSetup};
use crate::stats::WorkerStats;
use crate::task::TaskRef;
use std::sync::Arc;

/// Submission queue entries per ring: queued ops beyond this are submitted early.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries per ring: completions the kernel can post between two reaps
/// before it falls back to its overflow list (which `reap` flushes).
const CQ_ENTRIES: u32 = 8 * SQ_ENTRIES;

/// Wakes one sleeping worker from any thread: an eventfd whose read the worker keeps in
/// flight on its ring.
pub(crate) struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new eventfd.
    ///
    /// # Errors
    ///
    /// When the process is out of file descriptors.
    pub(crate) fn new() -> io::Result<Waker> {
        // SAFETY: eventfd has no memory-safety preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Waker {
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The eventfd, for a reactor to wait on.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the worker's pending eventfd read complete (or the next one, if none is armed).
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 valid bytes to our eventfd. It only fails when the counter would
        // overflow (EAGAIN), in which case a wake-up is pending anyway.
        unsafe { crate::sys::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// The opcodes `ring`'s kernel supports, as a [`Ring`] keeps them; none if the
/// probe fails.
fn probe(ring: &IoUring) -> [u64; 4] {
    let mut probe = io_uring::Probe::new();
    let mut opcodes = [0; 4];
    if ring.submitter().register_probe(&mut probe).is_ok() {
        for opcode in 0..=u8::MAX {
            if probe.is_supported(opcode) {
                opcodes[usize::from(opcode / 64)] |= 1 << (opcode % 64);
            }
        }
    }
    opcodes
}

/// The ring of one worker. Only touched on that worker's OS thread: by the worker loop and
/// by the green threads it runs.
pub(crate) struct Ring {
    ring: RefCell<IoUring>,
    /// How the ring was set up.
    setup: UringSetup,
    /// Created disabled (`R_DISABLED`): its worker enables it on its own OS thread, which
    /// makes that thread the ring's single issuer.
    disabled: Cell<bool>,
    /// Ops of green threads (and their timers) whose CQE has not been reaped yet.
    inflight: Cell<usize>,
    /// The worker's eventfd (owned by its `Waker` in the runtime's shared state).
    wake_fd: RawFd,
    /// Whether a read of `wake_fd` is in flight.
    wake_armed: Cell<bool>,
    /// Where that read lands; boxed so it never moves while the kernel may write it.
    wake_buf: Box<UnsafeCell<u64>>,
    /// The worker's counters (ops submitted and completed).
    stats: Arc<WorkerStats>,
    /// `user_data` of the entries queued in the submission ring and not yet consumed by
    /// the kernel, in order: whether anything is queued, and what fails if the kernel
    /// refuses it.
    unsubmitted: RefCell<Vec<u64>>,
    /// Set (to the errno) once `io_uring_enter` failed in a way retrying cannot fix: the
    /// ring is retired, see [`Ring::retire`].
    broken: Cell<Option<i32>>,
    /// Ops that failed without reaching the kernel, completed with `-errno` by the next
    /// reap (their threads have suspended by then).
    failed: RefCell<Vec<(u64, i32)>>,
    /// The opcodes the kernel supports (`io_uring_register_probe`, once at setup), bit
    /// `n % 64` of word `n / 64` for opcode `n`: ops newer than the kernel the runtime
    /// requires check it before they queue an SQE (see [`Ring::supports`]). Boxed to
    /// keep the ring small.
    opcodes: Box<Cell<[u64; 4]>>,
    /// An error the next `io_uring_enter` of `submit` returns instead of entering.
    #[cfg(test)]
    inject: Cell<Option<i32>>,
}

impl Ring {
    /// Sets up a ring whose worker is woken through `waker`, as fast as `owner` allows
    /// and the kernel supports (see [`UringSetup`]).
    ///
    /// io_uring runs an op's completion work (and the retry of a socket read once data
    /// arrives) as task work of the OS thread that submitted it. A plain ring interrupts
    /// that thread for it at once, signal-style, and the retry then spins on the socket
    /// lock still held by the softirq that delivered the data (measured: ~12% of worker
    /// time under wrk). `COOP_TASKRUN` (5.19) leaves the work for the thread's next kernel
    /// entry; `SINGLE_ISSUER + DEFER_TASKRUN` (6.1) runs it only when the thread waits with
    /// `GETEVENTS`, batched. Both need the ring to stay with one OS thread: a thread that
    /// lost its worker to a hand-off would never run the work of the ops it submitted.
    ///
    /// # Errors
    ///
    /// When the kernel refuses `io_uring_setup`, with a message naming io_uring, the cause
    /// and what to do.
    pub(crate) fn new(
        waker: &Waker,
        stats: Arc<WorkerStats>,
        owner: RingOwner,
    ) -> io::Result<Ring> {
        let owner_allows = match owner {
            RingOwner::OneThread => UringSetup::DeferTaskrun,
            RingOwner::CarriedUnmonitored => UringSetup::CoopTaskrun,
            RingOwner::Carried => UringSetup::Plain,
        };
        let strongest = requested_setup()?.rank().min(owner_allows.rank());
        let mut refusal = None;
        // Strongest first, each weaker one as the fallback of the one before.
        for setup in [
            UringSetup::DeferTaskrun,
            UringSetup::CoopTaskrun,
            UringSetup::Plain,
        ]
        .into_iter()
        .filter(|setup| setup.rank() <= strongest)
        {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(CQ_ENTRIES).setup_submit_all();
            match setup {
                UringSetup::DeferTaskrun => {
                    builder
                        .setup_single_issuer()
                        .setup_defer_taskrun()
                        .setup_taskrun_flag()
                        .setup_r_disabled();
                }
                UringSetup::CoopTaskrun => {
                    builder.setup_coop_taskrun().setup_taskrun_flag();
                }
                UringSetup::Plain => {}
            }
            match builder.build(SQ_ENTRIES) {
                Ok(ring) if !ring.params().is_feature_nodrop() => {
                    // Before 5.5 the kernel drops completions when the completion ring is
                    // full, and a dropped completion strands its green thread forever.
                    // Refused, so the runtime uses epoll instead.
                    return Err(refused(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the kernel may drop completions (no IORING_FEAT_NODROP, Linux 5.5)",
                    )));
                }
                Ok(ring) => {
                    let opcodes = Box::new(Cell::new(probe(&ring)));
                    return Ok(Ring {
                        ring: RefCell::new(ring),
                        setup,
                        disabled: Cell::new(setup == UringSetup::DeferTaskrun),
                        inflight: Cell::new(0),
                        wake_fd: waker.fd.as_raw_fd(),
                        wake_armed: Cell::new(false),
                        wake_buf: Box::new(UnsafeCell::new(0)),
                        stats,
                        unsubmitted: RefCell::new(Vec::new()),
                        broken: Cell::new(None),
                        failed: RefCell::new(Vec::new()),
                        opcodes,
                        #[cfg(test)]
                        inject: Cell::new(None),
                    });
                }
                // An older kernel rejects flags it does not know with EINVAL: try the next.
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => refusal = Some(err),
                Err(err) => return Err(refused(err)),
            }
        }
        Err(refused(refusal.unwrap_or_else(|| {
            io::Error::from_raw_os_error(libc::EINVAL)
        })))
    }

    /// How the ring was set up.
    pub(crate) fn setup(&self) -> UringSetup {
        self.setup
    }

    /// Whether the kernel knows `opcode` (an `io_uring::opcode::*::CODE`), as probed when
    /// the ring was set up; `false` for every opcode if the probe failed.
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        self.opcodes.get()[usize::from(opcode / 64)] & (1 << (opcode % 64)) != 0
    }

    /// Makes [`Ring::supports`] report `opcode` as unknown, as on an older kernel.
    #[cfg(test)]
    pub(crate) fn forget_opcode(&self, opcode: u8) {
        let mut opcodes = self.opcodes.get();
        opcodes[usize::from(opcode / 64)] &= !(1 << (opcode % 64));
        self.opcodes.set(opcodes);
    }

    /// Called by the worker on the OS thread that will own the ring, before its first
    /// submission: enables a ring created disabled, making this thread its single issuer.
    ///
    /// # Errors
    ///
    /// When the kernel refuses to enable it.
    pub(crate) fn bind_to_this_thread(&self) -> io::Result<()> {
        if self.disabled.replace(false) {
            self.ring.borrow().submitter().register_enable_rings()?;
        }
        Ok(())
    }

    /// `true` when the worker should enter the kernel: ops are queued, or deferred
    /// completion work waits (the kernel's `IORING_SQ_TASKRUN` flag).
    pub(crate) fn needs_enter(&self) -> bool {
        self.has_queued() || self.has_deferred_work()
    }

    /// Queues SQEs, all in the same batch, submitting first if the ring has no room.
    ///
    /// # Safety
    ///
    /// Every pointer the entries hold stays valid until their CQEs are reaped.
    pub(crate) unsafe fn push(&self, entries: &[Entry]) {
        let owned = entries
            .iter()
            .filter(|e| !matches!(e.get_user_data(), WAKE | IGNORED))
            .count();
        loop {
            if let Some(errno) = self.broken.get() {
                // A retired ring: the ops fail without reaching the kernel.
                self.inflight.set(self.inflight.get() + owned);
                let mut failed = self.failed.borrow_mut();
                failed.extend(entries.iter().map(|e| (e.get_user_data(), -errno)));
                return;
            }
            {
                let mut ring = self.ring.borrow_mut();
                // SAFETY: forwarded from the caller.
                if unsafe { ring.submission().push_multiple(entries) }.is_ok() {
                    self.unsubmitted
                        .borrow_mut()
                        .extend(entries.iter().map(Entry::get_user_data));
                    self.inflight.set(self.inflight.get() + owned);
                    self.stats.io_submitted.add(owned as u64);
                    return;
                }
            }
            // Full: hand what is queued to the kernel and try again. Nothing is dropped.
            self.submit();
        }
    }

    /// The worker's counters.
    pub(super) fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Ops of green threads still waiting for their CQE.
    pub(crate) fn inflight(&self) -> usize {
        self.inflight.get()
    }

    /// Cancels every op in flight on this ring (shutdown): they complete with -ECANCELED.
    pub(crate) fn cancel_all(&self) {
        if self.broken.get().is_some() {
            // Nothing of a retired ring is in the kernel's hands but what was submitted
            // before; those complete on their own.
            return;
        }
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(IGNORED);
        // SAFETY: the cancel op holds no pointers.
        unsafe { self.push(&[cancel]) };
        self.submit();
    }

    /// `true` when CQEs wait in the completion ring (shared memory, no system call). With
    /// `run_deferred` set and deferred completion work flagged, first enters the kernel
    /// once (clearing `run_deferred`) to run that work.
    pub(crate) fn has_completions(&self, run_deferred: &mut bool) -> bool {
        if *run_deferred && self.has_deferred_work() {
            *run_deferred = false;
            self.submit();
        }
        !self.ring.borrow_mut().completion().is_empty()
    }

    /// `true` when the kernel flags deferred completion work that only an enter with
    /// `GETEVENTS` runs (shared memory, no system call).
    fn has_deferred_work(&self) -> bool {
        self.setup != UringSetup::Plain && self.ring.borrow_mut().submission().taskrun()
    }

    /// `true` when ops are queued and not yet submitted.
    pub(crate) fn has_queued(&self) -> bool {
        !self.unsubmitted.borrow().is_empty()
    }

    /// Submits every queued op with one `io_uring_enter` (counted in the worker's
    /// `in_kernel`, see `stats`). Retries on EINTR; on EBUSY or
    /// EAGAIN (the kernel's completion backlog is full, or it is short of memory for a
    /// moment) the ops stay queued and the caller's next reap makes room. Any other error
    /// retires the ring (see [`Ring::retire`]) instead of taking the worker down.
    pub(crate) fn submit(&self) {
        if self.broken.get().is_some() {
            return;
        }
        let ring = self.ring.borrow_mut();
        self.stats.in_kernel.incr();
        let _done = crate::stats::Bump(&self.stats.in_kernel);
        loop {
            #[cfg(test)]
            if let Some(errno) = self.inject.take() {
                drop(ring);
                self.retire(io::Error::from_raw_os_error(errno));
                return;
            }
            match ring.submit() {
                Ok(consumed) => {
                    self.consumed(consumed);
                    return;
                }
                Err(err) if err.raw_os_error() == Some(libc::EINTR) => continue,
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) => return,
                Err(err) if err.raw_os_error() == Some(libc::EAGAIN) => return,
                Err(err) => {
                    drop(ring);
                    self.retire(err);
                    return;
                }
            }
        }
    }

    /// The kernel consumed the first `count` queued entries.
    fn consumed(&self, count: usize) {
        let mut unsubmitted = self.unsubmitted.borrow_mut();
        let count = count.min(unsubmitted.len());
        unsubmitted.drain(..count);
    }

    /// `io_uring_enter` failed with `err`, which retrying cannot fix. The entries still
    /// queued may never reach the kernel: it was refused them, and submitting them later
    /// would hand it pointers into frames that have moved on. So the ring submits nothing
    /// any more: the queued ops fail with `err` (their threads resume with it as an
    /// `io::Error`), and so does every later op of this worker, while the worker keeps
    /// running its green threads and sleeps in `poll(2)` instead of the ring. Ops the
    /// kernel already holds complete as usual. Logged once.
    #[cold]
    fn retire(&self, err: io::Error) {
        let errno = err.raw_os_error().unwrap_or(libc::EIO);
        crate::report::error(format_args!(
            "greenring: io_uring_enter failed ({err}); this worker's I/O fails with that error \
             from now on, its green threads keep running"
        ));
        self.broken.set(Some(errno));
        let queued = std::mem::take(&mut *self.unsubmitted.borrow_mut());
        self.failed
            .borrow_mut()
            .extend(queued.into_iter().map(|user_data| (user_data, -errno)));
    }

    /// Makes the next `io_uring_enter` that submits (`submit`, or the one `wait` sleeps
    /// in) fail with `errno`, as if the kernel had refused it.
    #[cfg(test)]
    pub(crate) fn inject_submit_error(&self, errno: i32) {
        self.inject.set(Some(errno));
    }

    /// Handles every CQE available now, passing threads that became runnable to
    /// `schedule`. Returns how many threads it scheduled.
    pub(crate) fn reap(&self, schedule: &mut dyn FnMut(TaskRef)) -> usize {
        let mut scheduled = 0;
        if !self.failed.borrow().is_empty() {
            let failed = std::mem::take(&mut *self.failed.borrow_mut());
            for (user_data, res) in failed {
                if let Some(task) = self.handle(user_data, res) {
                    schedule(task);
                    scheduled += 1;
                }
            }
        }
        loop {
            let mut ring = self.ring.borrow_mut();
            let mut cq = ring.completion();
            cq.sync();
            if cq.is_empty() {
                drop(cq);
                let sq = ring.submission();
                let pending = sq.cq_overflow();
                drop(sq);
                drop(ring);
                if pending {
                    // Completions wait in the kernel's overflow list; entering the kernel
                    // (with GETEVENTS) moves them into the ring.
                    self.submit();
                    continue;
                }
                return scheduled;
            }
            let batch: Vec<(u64, i32)> = cq.map(|cqe| (cqe.user_data(), cqe.result())).collect();
            drop(ring);
            // CQEs are consumed once `cq` is dropped above; now act on them without holding
            // the ring, so a scheduled thread's work never finds it borrowed.
            for (user_data, res) in batch {
                if let Some(task) = self.handle(user_data, res) {
                    schedule(task);
                    scheduled += 1;
                }
            }
        }
    }

    fn handle(&self, user_data: u64, res: i32) -> Option<TaskRef> {
        match user_data {
            WAKE => {
                self.wake_armed.set(false);
                None
            }
            IGNORED => None,
            _ => {
                self.inflight.set(self.inflight.get() - 1);
                self.stats.io_completed.incr();
                self.handle_owned(user_data, res)
            }
        }
    }

    fn handle_owned(&self, user_data: u64, res: i32) -> Option<TaskRef> {
        match user_data & TAG_MASK {
            // SAFETY: only `park_on` submits these tags, with the address of a live slot
            // whose thread waits for exactly this CQE.
            TAG_OP | TAG_LINK_TIMEOUT => unsafe { completion::complete(user_data, res) },
            // SAFETY: only `timer::park_timeout` submits this tag, with a leaked timer.
            TAG_TIMER => unsafe { timer::fired(user_data & !TAG_MASK, res, &self.stats) },
            _ => unreachable!("unknown io_uring user_data {user_data:#x}"),
        }
    }

    /// Submits what is queued, then sleeps in the kernel until at least one completion (an
    /// op's, or a wake-up through the eventfd) arrives or `timeout` passes, and reaps.
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        schedule: &mut dyn FnMut(TaskRef),
    ) -> usize {
        if self.broken.get().is_some() {
            return self.wait_retired(timeout, schedule);
        }
        if !self.wake_armed.get() {
            let read = opcode::Read::new(types::Fd(self.wake_fd), self.wake_buf.get().cast(), 8)
                .build()
                .user_data(WAKE);
            // SAFETY: `wake_buf` is boxed and lives as long as the ring (fields drop in
            // order: the ring first), and the eventfd outlives the runtime's workers.
            unsafe { self.push(&[read]) };
            self.wake_armed.set(true);
        }
        {
            let timespec = timeout.map(|t| Timespec::from(crate::timeout::saturate(t)));
            if let Some(ts) = &timespec {
                if !self.ring.borrow().params().is_feature_ext_arg() {
                    // Before 5.11: a Timeout op wakes the wait. The kernel copies the timespec
                    // when the op is submitted, in the call below, so a local is enough; if a
                    // completion ends the wait first, the timer's late CQE is ignored.
                    let timer = opcode::Timeout::new(ts).build().user_data(IGNORED);
                    // SAFETY: `ts` lives until the submission below has copied it.
                    unsafe { self.push(&[timer]) };
                }
            }
            let ring = self.ring.borrow_mut();
            #[cfg(test)]
            if let Some(errno) = self.inject.take() {
                drop(ring);
                self.retire(io::Error::from_raw_os_error(errno));
                return self.reap(schedule);
            }
            let waited = match &timespec {
                // EXT_ARG (5.11): wait with a timeout without spending an SQE.
                Some(ts) if ring.params().is_feature_ext_arg() => ring
                    .submitter()
                    .submit_with_args(1, &SubmitArgs::new().timespec(ts)),
                _ => ring.submit_and_wait(1),
            };
            match waited {
                Ok(consumed) => {
                    self.consumed(consumed);
                }
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                    ) => {}
                Err(err) => {
                    drop(ring);
                    self.retire(err);
                }
            }
        }
        self.reap(schedule)
    }

    /// `wait` on a retired ring: completions of ops the kernel held before still land in
    /// the completion ring (an enter that submits nothing runs their deferred work), but
    /// the worker sleeps in `poll(2)` on its eventfd (woken as usual by other threads), at
    /// most 10 ms at a time so those completions are seen.
    fn wait_retired(&self, timeout: Option<Duration>, schedule: &mut dyn FnMut(TaskRef)) -> usize {
        {
            let ring = self.ring.borrow();
            // Runs deferred completion work without submitting anything; a failure here
            // changes nothing (the poll below still bounds the sleep).
            // SAFETY: no argument is passed; nothing queued is submitted (to_submit = 0).
            let _ = unsafe {
                ring.submitter()
                    .enter::<libc::sigset_t>(0, 0, 1 /* IORING_ENTER_GETEVENTS */, None)
            };
        }
        let reaped = self.reap(schedule);
        if reaped > 0 {
            return reaped;
        }
        let millis = timeout.map_or(10, |t| t.as_millis().min(10) as i32);
        let mut fds = libc::pollfd {
            fd: self.wake_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call.
        if unsafe { crate::sys::poll(&mut fds, 1, millis) } > 0 {
            let mut counter = 0u64;
            // SAFETY: reads 8 bytes into `counter`; the eventfd is non-blocking.
            unsafe { crate::sys::read(self.wake_fd, (&mut counter as *mut u64).cast(), 8) };
        }
        self.reap(schedule)
    }
}

/// The strongest setup `GREENRING_URING_SETUP` allows (`defer`, `coop` or `plain`; unset:
/// the strongest there is), for comparing the setups on one machine.
///
/// # Errors
///
/// `InvalidInput` for another value.
fn requested_setup() -> io::Result<UringSetup> {
    match std::env::var("GREENRING_URING_SETUP").as_deref() {
        Err(_) | Ok("" | "defer" | "auto") => Ok(UringSetup::DeferTaskrun),
        Ok("coop") => Ok(UringSetup::CoopTaskrun),
        Ok("plain") => Ok(UringSetup::Plain),
        Ok(other) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("greenring: GREENRING_URING_SETUP={other:?} is not a setup (use defer, coop or plain)"),
        )),
    }
}

/// Why a ring could not be set up, said so a user can act on it.
fn refused(err: io::Error) -> io::Error {
    let cause = match err.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (too old, or built without it)",
        Some(libc::EPERM) => {
            "io_uring is forbidden here (kernel.io_uring_disabled, or a seccomp profile such as \
             Docker's default)"
        }
        Some(libc::ENOMEM) => {
            "not enough locked memory for the rings (raise `ulimit -l` on kernels before 5.12)"
        }
        Some(libc::EMFILE) | Some(libc::ENFILE) => "out of file descriptors",
        _ => "the kernel refused io_uring_setup",
    };
    io::Error::new(
        err.kind(),
        format!("greenring: cannot start the runtime: io_uring is unavailable: {cause} ({err})"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::runtime::{IoBackend, Runtime};

    /// A submission the kernel refuses fails the op of the green thread that queued it
    /// with the error, and the worker keeps running its other green threads (and their
    /// I/O fails fast instead of hanging).
    #[test]
    fn a_refused_submission_fails_its_op_and_the_worker_runs_on() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = match Runtime::builder()
                .worker_threads(1)
                .io_backend(IoBackend::IoUring)
                .build()
            {
                Ok(rt) => rt,
                // No io_uring here: nothing to test.
                Err(_) => return done_tx.send(()).unwrap(),
            };
            let failed = rt.block_on(|| {
                let worker = crate::sched::current::worker_moving().expect("on a green thread");
                worker.reactor().ring().inject_submit_error(libc::ENOMEM);
                drop(worker);
                let file = crate::fs::File::open("/dev/zero").map(drop);
                file.expect_err("the open was refused with the submission")
            });
            assert_eq!(failed.raw_os_error(), Some(libc::ENOMEM));
            // The same worker runs other threads: computing, sleeping, channels.
            let other = rt.spawn(|| {
                crate::time::sleep(Duration::from_millis(5));
                let (tx, rx) = crate::sync::mpsc::channel();
                crate::spawn(move || tx.send(21).unwrap());
                rx.recv().unwrap() * 2
            });
            assert_eq!(other.join().unwrap(), 42);
            let later = rt.block_on(|| crate::fs::File::open("/dev/zero").map(drop));
            assert_eq!(later.unwrap_err().raw_os_error(), Some(libc::ENOMEM));
            drop(rt);
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("hung: the worker did not survive the refused submission");
    }
}
