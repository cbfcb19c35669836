//! Timed waits: `sleep` in the worker's timer heap, and `park_timeout` on a reactor timer
//! that unparks the thread when it fires.
//!
//! A sleeping thread's run reference is owned by its heap entry, as an in-flight op owns it
//! (`Suspend::Timer`), so nothing but its deadline (or the runtime's shutdown) resumes it.
//! A `park_timeout` waits in the park word like any `park`, and its timer is a guard that
//! disarms itself when the wait ends, however it ends (an unwind too), so the runtime never
//! waits for a timer whose waiter is gone.

use std::time::{Duration, Instant};

use crate::reactor::{ParkTimer, Reactor, TimerKey};
use crate::task::point::{cancel_point, park};
use crate::task::{current, Suspend};

/// Suspends the calling green thread until `deadline` on its worker's timer heap; `false`
/// when the caller is not a green thread or is unwinding (it should sleep the std way).
pub(crate) fn sleep_until(deadline: Instant) -> bool {
    current::with(|task| {
        if std::thread::panicking() {
            // Switching away would show the panic to the worker's other green threads.
            return false;
        }
        if cancel_point(task) {
            return true;
        }
        let Some(worker) = crate::sched::current::worker_moving() else {
            return false;
        };
        crate::task::wait::sleeping(task, deadline);
        // The pointer the worker's run reference is given up as: the heap entry takes it.
        worker.timers().insert(deadline, current::ptr());
        // SAFETY: `task` is the running green thread; the heap entry owns the run reference
        // until the worker fires it.
        unsafe { super::suspend(task, worker, Suspend::Timer) };
        // Fired early by the runtime's shutdown: unwind.
        cancel_point(task);
        true
    })
    .unwrap_or(false)
}

/// Blocks the calling thread until its unpark token is available or `timeout` has passed,
/// like [`std::thread::park_timeout`]; only the green thread waits, not its worker.
///
/// Like `park`, it is a cancellation point, checked before anything is armed: a thread
/// that starts a timed wait during its runtime's shutdown unwinds without leaving a timer
/// behind.
pub(crate) fn park_timeout(timeout: Duration) {
    // A huge timeout means practically forever (a timespec cannot hold Duration::MAX).
    let timeout = crate::timeout::saturate(timeout);
    let parked = current::with(|task| {
        if task.take_token() {
            return;
        }
        if std::thread::panicking() {
            // Unwinding: wait on the OS thread, never switch (see `task::point::park`).
            task.block_os(Some(timeout));
            return;
        }
        // Not unwinding, so during a shutdown this unwinds the thread here, before arming.
        cancel_point(task);
        let armed = Armed::arm(timeout);
        park(task);
        // The wait ended (or unwinds, dropping the guard all the same).
        drop(armed);
    });
    if parked.is_none() {
        std::thread::park_timeout(timeout);
    }
}

/// A timer armed by `park_timeout` on its worker's reactor, disarmed when dropped.
struct Armed(Option<Timer>);

/// Where the timer of an [`Armed`] is.
enum Timer {
    Uring(ParkTimer),
    /// The worker whose epoll reactor holds the timer, and the timer's key there.
    Epoll(usize, TimerKey),
}

impl Armed {
    /// Arms a timer that unparks the calling green thread after `timeout`.
    fn arm(timeout: Duration) -> Armed {
        let task = current::task_ref().expect("checked: on a green thread");
        let worker = crate::sched::current::worker_moving().expect("checked: on a green thread");
        Armed(Some(match worker.reactor() {
            Reactor::Uring(ring) => Timer::Uring(ring.arm_park_timer(timeout, task, worker.index)),
            Reactor::Epoll(epoll) => {
                Timer::Epoll(worker.index, epoll.add_park_timer(timeout, task))
            }
        }))
    }
}

impl Drop for Armed {
    /// The wait ended: if the timer has not fired, keeps it from unparking the thread later
    /// and removes it from its worker's reactor when the thread is still on that worker.
    /// Never switches (it may run during an unwind): a thread whose carrier was just
    /// exiled, in a migrating runtime, leaves the timer to free itself when it fires.
    fn drop(&mut self) {
        let Some(timer) = self.0.take() else {
            return;
        };
        let worker = crate::sched::current::worker();
        match timer {
            Timer::Uring(timer) => {
                let here = worker.as_ref().and_then(|worker| match worker.reactor() {
                    Reactor::Uring(ring) => Some((worker.index, ring)),
                    Reactor::Epoll(_) => None,
                });
                timer.disarm(here);
            }
            Timer::Epoll(index, key) => {
                if let Some(worker) = worker.filter(|worker| worker.index == index) {
                    if let Reactor::Epoll(epoll) = worker.reactor() {
                        epoll.remove_park_timer(key);
                    }
                }
            }
        }
    }
}
