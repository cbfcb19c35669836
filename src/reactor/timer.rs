//! `park_timeout` on green threads: a heap timer that unparks its thread when it fires.
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

/// Blocks the calling thread until its unpark token is available or `timeout` has passed,
/// like [`std::thread::park_timeout`]; only the green thread waits, not its worker.
///
/// Like `park`, it is a cancellation point, checked before anything is armed: a thread
/// that starts a timed wait during its runtime's shutdown unwinds without leaving a timer
/// behind. Should the wait unwind anyway, the armed timer is a guard that disarms itself,
/// so the runtime never waits for a timer whose waiter is gone.
pub(crate) fn park_timeout(timeout: Duration) {
    // A huge timeout means practically forever (a timespec cannot hold Duration::MAX).
    let timeout = crate::timeout::saturate(timeout);
    let task = crate::sched::current::task();
    if task.is_null() {
        std::thread::park_timeout(timeout);
        return;
    }
    // SAFETY: on a green thread the running task is alive (its worker holds a reference).
    let running = unsafe { &*task };
    if running.take_token() {
        return;
    }
    if std::thread::panicking() {
        // Unwinding: wait on the OS thread, never switch (see `crate::thread::park`).
        running.block_os(Some(timeout));
        return;
    }
    // Not unwinding, so during a shutdown this unwinds the thread here, before arming.
    crate::sched::cancel_point(running);
    // SAFETY: as above; we add a reference of our own for the timer.
    let task = unsafe { crate::task::TaskRef::clone_raw(task) };
    let worker = crate::sched::current::worker_moving().expect("checked: on a green thread");
    let armed = match worker.reactor() {
        super::Reactor::Uring(ring) => {
            let timer = Arc::new(Timer {
                timespec: Timespec::from(timeout),
                task,
                state: AtomicU8::new(ARMED),
                worker: worker.index,
            });
            let address = Arc::into_raw(Arc::clone(&timer)) as u64;
            // SAFETY: the ring's reference keeps the timer (and its timespec) alive until
            // `fired` takes it back on the op's CQE.
            let entry = opcode::Timeout::new(&timer.timespec)
                .build()
                .user_data(address | TAG_TIMER);
            // SAFETY: as above.
            unsafe { ring.push(&[entry]) };
            worker.shared.stats[worker.index].pending_timers.incr();
            Armed::Uring(timer)
        }
        super::Reactor::Epoll(epoll) => {
            Armed::Epoll(worker.index, epoll.add_park_timer(timeout, task))
        }
    };
    drop(worker);
    crate::thread::park();
    // The wait ended (or unwinds, dropping the guard all the same).
    drop(armed);
}

/// A timer armed by `park_timeout`, disarmed when the wait ends, however it ends: the guard
/// disarms it when dropped, on an unwind too.
enum Armed {
    Uring(Arc<Timer>),
    /// The worker whose epoll reactor holds the timer, and the timer's key there.
    Epoll(usize, super::epoll::TimerKey),
}

impl Drop for Armed {
    /// The wait ended: if the timer has not fired, keep it from unparking the thread later
    /// and remove it from its worker's reactor when the thread is still on that worker.
    /// Never switches (it may run during an unwind): a thread whose carrier was just
    /// exiled, in a migrating runtime, leaves the timer to free itself when it fires.
    fn drop(&mut self) {
        let Some(worker) = crate::sched::current::worker() else {
            if let Armed::Uring(timer) = self {
                let _ = timer.state.compare_exchange(
                    ARMED,
                    DISARMED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            return;
        };
        match self {
            Armed::Uring(timer) => {
                if timer
                    .state
                    .compare_exchange(ARMED, DISARMED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                    || timer.worker != worker.index
                {
                    // Fired already, or on a ring only its own worker may touch: it frees
                    // itself when its CQE arrives.
                    return;
                }
                let address = Arc::as_ptr(timer) as u64;
                let remove = opcode::TimeoutRemove::new(address | TAG_TIMER)
                    .build()
                    .user_data(IGNORED);
                // SAFETY: the removal holds no pointers (it names the timer by user_data).
                unsafe { worker.reactor().ring().push(&[remove]) };
            }
            Armed::Epoll(index, key) => {
                if *index == worker.index {
                    if let super::Reactor::Epoll(epoll) = worker.reactor() {
                        epoll.remove_park_timer(*key);
                    }
                }
            }
        }
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
