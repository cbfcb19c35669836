//! The timers of `park_timeout` on io_uring (the driver's `timer` arms and disarms them): a
//! heap timer that unparks its thread when it fires.
//!
//! The timer's `Timeout` op is not awaited by the thread: the thread parks the ordinary way
//! and may be unparked long before the timer fires. So the timer owns everything the
//! kernel points at (its timespec) and a reference to the thread, on the heap, shared by
//! the ring (until the timer's CQE arrives) and the waiting thread (until its wait ends).
//!
//! A wait that ends early (an `unpark` before the deadline: a message, a notification)
//! disarms its timer and removes it from the ring (`TimeoutRemove`), so the timer, its
//! thread reference and the kernel's timer are freed at once instead of at the deadline:
//! a loop of short waits with long timeouts keeps no memory. The timer's CQE then comes
//! with `-ECANCELED` and only frees it. In a runtime that migrates started threads the
//! thread may have left the worker whose ring holds the timer, and only that worker may
//! touch its ring: the timer then stays until it fires, disarmed (it frees itself without
//! unparking anyone).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::opcode;
use io_uring::types::Timespec;

use super::completion::{IGNORED, TAG_TIMER};
use super::ring::Ring;
use crate::task::{Task, TaskRef};

/// The timer waits for its deadline and will unpark its thread.
const ARMED: u8 = 0;
/// The deadline passed (or the shutdown cancelled the timer): the thread was unparked.
const FIRED: u8 = 1;
/// The wait ended first: the timer unparks nobody.
const DISARMED: u8 = 2;

/// A pending `park_timeout` timer, shared by the ring (one reference leaked into the op's
/// `user_data` until its CQE) and the waiting thread.
#[repr(align(8))]
struct Timer {
    timespec: Timespec,
    task: TaskRef,
    state: AtomicU8,
    /// The worker whose ring holds the timer.
    worker: usize,
}

/// A `park_timeout` timer armed on a ring, held by its waiting thread until its wait ends.
pub(crate) struct ParkTimer(Arc<Timer>);

impl Ring {
    /// Arms a timer that unparks `task` (whose worker, `worker`, owns this ring) after
    /// `timeout`.
    pub(crate) fn arm_park_timer(
        &self,
        timeout: Duration,
        task: TaskRef,
        worker: usize,
    ) -> ParkTimer {
        let timer = Arc::new(Timer {
            timespec: Timespec::from(crate::timeout::saturate(timeout)),
            task,
            state: AtomicU8::new(ARMED),
            worker,
        });
        let address = Arc::into_raw(Arc::clone(&timer)) as u64;
        let entry = opcode::Timeout::new(&timer.timespec)
            .build()
            .user_data(address | TAG_TIMER);
        // SAFETY: the ring's reference (leaked into the user_data) keeps the timer, and its
        // timespec, alive until `fired` takes it back on the op's CQE.
        unsafe { self.push(&[entry]) };
        self.stats().pending_timers.incr();
        ParkTimer(timer)
    }
}

impl ParkTimer {
    /// The wait ended: keeps the timer from unparking the thread later, and, when it has not
    /// fired and `here` is its own worker's ring (`(worker index, ring)`), removes it from
    /// the ring. Elsewhere (the thread left that worker, in a migrating runtime) only that
    /// worker may touch the ring: the timer frees itself when its CQE arrives.
    pub(crate) fn disarm(self, here: Option<(usize, &Ring)>) {
        let disarmed = self
            .0
            .state
            .compare_exchange(ARMED, DISARMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        let Some((_, ring)) = here.filter(|&(index, _)| disarmed && index == self.0.worker) else {
            return;
        };
        let address = Arc::as_ptr(&self.0) as u64;
        let remove = opcode::TimeoutRemove::new(address | TAG_TIMER)
            .build()
            .user_data(IGNORED);
        // SAFETY: the removal holds no pointers (it names the timer by user_data).
        unsafe { ring.push(&[remove]) };
    }
}

/// The CQE of a `park_timeout` timer (it fired, was cancelled by the shutdown, or was
/// removed after its wait ended): unparks its thread unless the wait already ended, and
/// gives up the ring's reference to the timer.
///
/// # Safety
///
/// `address` is a timer whose reference `park_timeout` leaked into this CQE's op.
pub(super) unsafe fn fired(
    address: u64,
    _res: i32,
    stats: &crate::stats::WorkerStats,
) -> Option<TaskRef> {
    // SAFETY: leaked by `park_timeout`, and each timer has exactly one CQE.
    let timer = unsafe { Arc::from_raw(address as *const Timer) };
    stats.pending_timers.decr();
    if timer
        .state
        .compare_exchange(ARMED, FIRED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        Task::unpark(&timer.task)
    } else {
        None
    }
}
