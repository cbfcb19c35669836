//! What the current OS thread is running: its worker (if it is one) and green thread.
//!
//! Every access goes through an `#[inline(never)]` function. A green thread may resume on a
//! different OS thread after any switch, and the compiler would otherwise be free to compute
//! a thread-local's address once and reuse it across the switch (it assumes a function never
//! changes OS threads), reading the old worker's values.

use std::cell::Cell;
use std::ptr;

use super::worker::WorkerCtx;
use crate::task::Task;

thread_local! {
    static WORKER: Cell<*const WorkerCtx> = const { Cell::new(ptr::null()) };
    static TASK: Cell<*const Task> = const { Cell::new(ptr::null()) };
}

/// The worker running on this OS thread, or null.
#[inline(never)]
pub(crate) fn worker() -> *const WorkerCtx {
    WORKER.with(Cell::get)
}

/// Records the worker of this OS thread (null when it exits).
#[inline(never)]
pub(crate) fn set_worker(worker: *const WorkerCtx) {
    WORKER.with(|w| w.set(worker));
}

/// The green thread running on this OS thread, or null.
#[inline(never)]
pub(crate) fn task() -> *const Task {
    TASK.with(Cell::get)
}

/// Records the green thread this OS thread is about to run (null once it switched back).
#[inline(never)]
pub(crate) fn set_task(task: *const Task) {
    TASK.with(|t| t.set(task));
}

/// `true` when called from a green thread.
pub(crate) fn on_green_thread() -> bool {
    !task().is_null()
}
