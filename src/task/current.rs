//! The green thread the calling OS thread runs: one cell, set by the worker around each run,
//! and the one place that turns it into a reference.
//!
//! Every access goes through an `#[inline(never)]` function. In a runtime that migrates
//! started threads a green thread may resume on a different OS thread after a switch, and
//! the compiler would otherwise be free to compute a thread-local's address once and reuse
//! it across the switch (it assumes a function never changes OS threads), reading the old
//! OS thread's cell.

use std::cell::Cell;
use std::ptr;

use super::{Task, TaskRef};

thread_local! {
    static TASK: Cell<*const Task> = const { Cell::new(ptr::null()) };
}

/// The green thread running on this OS thread, or null: for code that hands the pointer
/// on as it is (the run reference a suspended thread's slot takes over).
#[inline(never)]
pub(crate) fn ptr() -> *const Task {
    TASK.with(Cell::get)
}

/// Records the green thread this OS thread is about to run (null once it switched back).
/// Called by the worker only.
#[inline(never)]
pub(crate) fn set(task: *const Task) {
    TASK.with(|t| t.set(task));
}

/// Calls `f` with the green thread running on this OS thread (the caller); `None` off green
/// threads.
///
/// The reference is valid for the whole call, across the thread's own switches: the worker
/// that runs the thread holds a reference to it for as long as it runs, and a suspended
/// thread is kept alive by whatever will resume it.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&Task) -> R) -> Option<R> {
    // SAFETY: a non-null cell is the task this OS thread runs, alive while it runs (see
    // above); `f` runs on that thread, inside its run.
    unsafe { ptr().as_ref() }.map(f)
}

/// A new reference to the running green thread; `None` off green threads.
pub(crate) fn task_ref() -> Option<TaskRef> {
    let task = ptr();
    if task.is_null() {
        return None;
    }
    // SAFETY: the task this OS thread runs, alive while it runs; we add a reference of our
    // own before making a TaskRef.
    Some(unsafe { TaskRef::clone_raw(task) })
}

/// `true` when called from a green thread.
pub(crate) fn is_green() -> bool {
    !ptr().is_null()
}

/// Drops the running green thread's green-thread locals (at its end, before its result is
/// published); nothing off green threads.
pub(crate) fn destroy_locals() {
    with(|task| task.locals.destroy());
}
