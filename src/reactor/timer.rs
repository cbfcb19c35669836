//! `park_timeout` on green threads: a heap timer that unparks its thread when it fires.
//!
//! The timer's `Timeout` op is not awaited by the thread: the thread parks the ordinary way
//! and may be unparked (and, in a migrating runtime, move to another worker) long before the
//! timer fires. So the
//! timer owns everything the kernel points at (its timespec) and a reference to the thread,
//! on the heap, and frees itself when its CQE arrives. A timer is not cancelled when the
//! thread is unparked first: cancelling needs the ring it was queued on, which the thread
//! may have left. It fires later and leaves an unpark token, which `park` allows (a
//! spurious wake-up, as with std).

use std::time::Duration;

use io_uring::opcode;
use io_uring::types::Timespec;

use super::completion::TAG_TIMER;
use crate::task::{Task, TaskRef};

/// A pending `park_timeout` timer; leaked while its op is in flight.
#[repr(align(8))]
struct Timer {
    timespec: Timespec,
    task: TaskRef,
}

/// Blocks the calling thread until its unpark token is available or `timeout` has passed,
/// like [`std::thread::park_timeout`]; only the green thread waits, not its worker.
pub(crate) fn park_timeout(timeout: Duration) {
    // A huge timeout means practically forever (a timespec cannot hold Duration::MAX).
    let timeout = crate::time::saturate(timeout);
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
    // SAFETY: as above; we add a reference of our own for the timer.
    let task = unsafe {
        std::sync::Arc::increment_strong_count(task);
        std::sync::Arc::from_raw(task)
    };
    let worker = crate::sched::current::worker_moving().expect("checked: on a green thread");
    match worker.reactor() {
        super::Reactor::Uring(ring) => {
            let timer = Box::into_raw(Box::new(Timer {
                timespec: Timespec::from(timeout),
                task,
            }));
            // SAFETY: the timer is leaked until `fired` frees it, so the timespec outlives
            // the op.
            let entry = opcode::Timeout::new(unsafe { &(*timer).timespec })
                .build()
                .user_data(timer as u64 | TAG_TIMER);
            // SAFETY: as above.
            unsafe { ring.push(&[entry]) };
        }
        super::Reactor::Epoll(epoll) => epoll.add_park_timer(timeout, task),
    }
    drop(worker);
    crate::thread::park();
}

/// The CQE of a `park_timeout` timer: unparks its thread and frees the timer.
///
/// # Safety
///
/// `address` is a timer leaked by `park_timeout` whose CQE this is.
pub(super) unsafe fn fired(address: u64, _res: i32) -> Option<TaskRef> {
    // SAFETY: leaked by `park_timeout`, and each timer has exactly one CQE.
    let timer = unsafe { Box::from_raw(address as *mut Timer) };
    Task::unpark(&timer.task)
}
