//! Carriers: the OS threads that carry workers, and how a worker changes carrier.
//!
//! A worker (its queues, ring, timers: a `WorkerCtx`) is carried by one OS thread. Every
//! carrier publishes a status word that tells the monitor (`handoff`) whether it is
//! running a green thread and which run it is in, and the id of the green thread it runs,
//! so the monitor can see a worker whose OS thread is stuck in one green thread.
//!
//! Only in a runtime that migrates started threads can a worker change carrier: when a
//! green thread blocks its carrier in code greenring does not own (a blocking system call,
//! a long computation), the monitor *exiles* that carrier and gives the worker to a fresh
//! OS thread, so the worker's other green threads keep running. The exiled carrier
//! finishes with the stuck green thread alone: when that thread next switches back (or
//! ends), the carrier puts it in the runtime's injector and exits. Anchored runtimes never
//! exile: a started thread must keep its OS thread.
//!
//! # The status word
//!
//! Each carrier publishes one `AtomicU64`:
//! - bit 0, `RUNNING`: it resumed a green thread that has not switched back yet;
//! - bit 1, `EXILED`: the monitor took its worker away;
//! - bits 2..32: how many of the running green thread's accesses to the worker are in
//!   progress (see [`Carrier::enter`]);
//! - bits 32..64: a sequence number, bumped on every resume; the monitor sees a stuck
//!   carrier as `RUNNING` with the same sequence number for longer than its threshold.
//!
//! The monitor exiles with one compare-and-swap that requires `RUNNING`, the sequence it
//! sampled and no access in progress. The carrier's loop learns of it from the `fetch_and`
//! that clears `RUNNING` when the green thread switches back; a green thread learns of it
//! when [`Carrier::enter`] fails. Either way nobody on the old carrier touches the worker
//! again, and everything they did to it before happens-before the monitor's CAS (their
//! updates of the word release, the CAS acquires).

use std::sync::PoisonError;
use std::time::Instant;

use crate::loom::sync::atomic::{AtomicU64, Ordering};
use crate::loom::sync::Mutex;

const RUNNING: u64 = 1;
const EXILED: u64 = 2;
const IN_WORKER: u64 = 4;
const IN_WORKER_MASK: u64 = 0xFFFF_FFFC;
const SEQ_SHIFT: u32 = 32;

/// One OS thread that carries a worker.
pub(crate) struct Carrier {
    status: AtomicU64,
    /// The id of the green thread of the current (or last) run, written before the run's
    /// status.
    running: AtomicU64,
    /// When the green thread that got this carrier exiled started running (set by the
    /// monitor before the exile is visible to the carrier).
    stuck_since: Mutex<Option<Instant>>,
    /// The kernel's id of the OS thread carrying the worker (see [`Carrier::sleeping`]),
    /// set by that thread when it starts carrying.
    tid: std::sync::OnceLock<libc::pid_t>,
}

/// A sample of a carrier's status, for the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status(u64);

impl Status {
    /// The status of a carrier that never ran anything.
    pub(crate) const IDLE: Status = Status(0);

    /// The carrier is running a green thread.
    pub(crate) fn running(self) -> bool {
        self.0 & RUNNING != 0
    }

    /// The run in progress (or last run), to tell whether the carrier switched since.
    pub(crate) fn run_seq(self) -> u64 {
        self.0 >> SEQ_SHIFT
    }
}

impl Carrier {
    pub(crate) fn new() -> Carrier {
        Carrier {
            status: AtomicU64::new(0),
            running: AtomicU64::new(0),
            stuck_since: Mutex::new(None),
            tid: std::sync::OnceLock::new(),
        }
    }

    /// Called by the OS thread that carries the worker, before its first run: records its
    /// thread id, so the monitor can tell a stalled carrier that waits in the kernel from
    /// one that computes.
    pub(crate) fn carried_by_this_thread(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
        let _ = self.tid.set(tid);
    }

    /// `Some(true)` when its OS thread sleeps in the kernel now (state `S` or `D` in
    /// `/proc/self/task/<tid>/stat`: a futex, a blocking socket call, a sleep), `Some(false)`
    /// when it runs or waits for a CPU (`R`: a computation, preempted or not); `None` when
    /// that cannot be read. Read by the monitor while the carrier lives.
    pub(crate) fn sleeping(&self) -> Option<bool> {
        let tid = self.tid.get()?;
        let stat = std::fs::read(format!("/proc/self/task/{tid}/stat")).ok()?;
        // The state follows the command name, which is in parentheses and may hold any
        // byte: look after the last ')'.
        let after = stat.iter().rposition(|&b| b == b')')?;
        let state = *stat.get(after + 2)?;
        Some(matches!(state, b'S' | b'D'))
    }

    /// Called by the carrier's worker loop right before it resumes the green thread whose
    /// id is `thread`.
    pub(crate) fn start_run(&self, thread: u64) {
        self.running.store(thread, Ordering::Relaxed);
        let seq = (self.status.load(Ordering::Relaxed) >> SEQ_SHIFT).wrapping_add(1);
        // A plain store is enough: while nothing runs, neither the monitor (it needs
        // RUNNING) nor a green thread (none runs) writes the word.
        self.status
            .store((seq << SEQ_SHIFT) | RUNNING, Ordering::Release);
    }

    /// Called by the worker loop once the green thread switched back (or finished).
    /// `false` when the carrier was exiled meanwhile: the worker is no longer its own.
    /// Also ends an access the green thread kept across its switch (see
    /// `current::WorkerRef::hold_across_suspend`).
    #[must_use]
    pub(crate) fn end_run(&self) -> bool {
        self.status
            .fetch_and(!(RUNNING | IN_WORKER_MASK), Ordering::AcqRel)
            & EXILED
            == 0
    }

    /// Called by the running green thread before it touches its worker; `false` when the
    /// carrier was exiled (the thread must not touch the worker, see [`Carrier::leave`]).
    pub(crate) fn enter(&self) -> bool {
        let before = self.status.fetch_add(IN_WORKER, Ordering::Acquire);
        if before & EXILED != 0 {
            self.status.fetch_sub(IN_WORKER, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Ends an access begun by a successful [`Carrier::enter`].
    pub(crate) fn leave(&self) {
        self.status.fetch_sub(IN_WORKER, Ordering::Release);
    }

    /// The monitor's sample.
    pub(crate) fn status(&self) -> Status {
        Status(self.status.load(Ordering::Acquire))
    }

    /// The id of the green thread of the run a [`Carrier::status`] sample saw (or of a
    /// later run, if the carrier moved on since: the monitor then sees a new sequence).
    pub(crate) fn running_id(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// The monitor takes the worker away if the carrier is still in the run it sampled as
    /// `seen` (and its green thread is not touching the worker). `since` is when that run
    /// was first seen.
    pub(crate) fn try_exile(&self, seen: Status, since: Instant) -> bool {
        if !seen.running() || seen.0 & (EXILED | IN_WORKER_MASK) != 0 {
            return false;
        }
        *self
            .stuck_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(since);
        self.status
            .compare_exchange(seen.0, seen.0 | EXILED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// When the stuck run began (after an exile).
    pub(crate) fn stuck_since(&self) -> Option<Instant> {
        *self
            .stuck_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn exile_needs_the_same_run_and_no_access_in_progress() {
        let carrier = Carrier::new();
        let idle = carrier.status();
        assert!(!carrier.try_exile(idle, Instant::now()), "nothing runs");
        carrier.start_run(1);
        let seen = carrier.status();
        assert!(seen.running());
        assert!(carrier.end_run());
        carrier.start_run(1);
        assert_ne!(carrier.status().run_seq(), seen.run_seq());
        assert!(!carrier.try_exile(seen, Instant::now()), "a later run");
        let seen = carrier.status();
        assert!(carrier.enter());
        assert!(
            !carrier.try_exile(carrier.status(), Instant::now()),
            "in the worker"
        );
        carrier.leave();
        assert!(carrier.try_exile(seen, Instant::now()));
        assert!(!carrier.enter(), "an exiled thread keeps off the worker");
        assert!(!carrier.end_run(), "the loop learns of the exile");
    }

    #[test]
    fn racing_exile_and_end_run_agree() {
        for _ in 0..1000 {
            let carrier = std::sync::Arc::new(Carrier::new());
            carrier.start_run(1);
            let seen = carrier.status();
            let monitor = {
                let carrier = std::sync::Arc::clone(&carrier);
                std::thread::spawn(move || carrier.try_exile(seen, Instant::now()))
            };
            let kept = carrier.end_run();
            let exiled = monitor.join().unwrap();
            assert_ne!(kept, exiled, "exactly one side owns the worker");
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The exile protocol of a migrating runtime: the carrier's end of a run, the running
    //! thread's accesses to its worker and the monitor's exile, in every order.
    use super::*;
    use crate::loom::sync::Arc;

    /// The run ends while the monitor exiles: exactly one side keeps the worker.
    #[test]
    fn exile_and_end_of_run_agree() {
        loom::model(|| {
            let carrier = Arc::new(Carrier::new());
            carrier.start_run(7);
            let seen = carrier.status();
            let monitor = {
                let carrier = Arc::clone(&carrier);
                loom::thread::spawn(move || carrier.try_exile(seen, Instant::now()))
            };
            let kept = carrier.end_run();
            let exiled = monitor.join().unwrap();
            assert_ne!(kept, exiled, "exactly one side owns the worker");
        });
    }

    /// The running thread touches its worker while the monitor exiles: the exile never
    /// succeeds while an access is in progress, and the loop learns of the outcome.
    #[test]
    fn an_access_in_progress_blocks_the_exile() {
        use crate::loom::sync::atomic::AtomicBool;
        loom::model(|| {
            let carrier = Arc::new(Carrier::new());
            let inside = Arc::new(AtomicBool::new(false));
            carrier.start_run(7);
            let seen = carrier.status();
            let monitor = {
                let (carrier, inside) = (Arc::clone(&carrier), Arc::clone(&inside));
                loom::thread::spawn(move || {
                    let exiled = carrier.try_exile(seen, Instant::now());
                    assert!(
                        !(exiled && inside.load(Ordering::SeqCst)),
                        "exiled mid-access"
                    );
                    exiled
                })
            };
            if carrier.enter() {
                inside.store(true, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                carrier.leave();
            }
            let exiled = monitor.join().unwrap();
            assert_eq!(carrier.end_run(), !exiled);
        });
    }
}
