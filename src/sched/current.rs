//! Which worker the current OS thread carries (the green thread it runs is
//! `task::current`'s).
//!
//! Every access goes through an `#[inline(never)]` function. In a runtime that migrates
//! started threads a green thread may resume on a different OS thread after a switch, and
//! the compiler would otherwise be free to compute a thread-local's address once and reuse
//! it across the switch (it assumes a function never changes OS threads), reading the old
//! worker's values.

use std::cell::Cell;
use std::ptr;

use super::carrier::Carrier;
use super::worker::WorkerCtx;
use crate::task::{current as task_current, Suspend};

/// The worker an OS thread carries and that thread's carrier record.
type Carried = (*const WorkerCtx, *const Carrier);

thread_local! {
    static CARRIED: Cell<Carried> = const { Cell::new((ptr::null(), ptr::null())) };
}

/// The worker carried by this OS thread and its carrier record, or nulls. Green threads go
/// through [`worker`] instead: their carrier may lose its worker to the hand-off monitor
/// while they run.
#[inline(never)]
fn carried() -> Carried {
    CARRIED.with(Cell::get)
}

/// Records the worker this OS thread carries and its carrier record (both null when it
/// stops carrying one).
#[inline(never)]
pub(crate) fn set_worker(worker: *const WorkerCtx, carrier: *const Carrier) {
    CARRIED.with(|c| c.set((worker, carrier)));
}

/// Access to the worker that carries the calling green thread. In a migrating runtime,
/// while it exists the hand-off monitor cannot move the worker to another OS thread, so it
/// must not be held across a switch (a suspend): drop it first.
pub(crate) struct WorkerRef {
    worker: *const WorkerCtx,
    /// The carrier whose access count this holds; null in an anchored runtime, whose
    /// workers never change carrier.
    carrier: *const Carrier,
}

impl std::ops::Deref for WorkerRef {
    type Target = WorkerCtx;

    fn deref(&self) -> &WorkerCtx {
        // SAFETY: `worker()` checked the pointer is set, and the worker lives (in its
        // runtime's `Arc`) at least as long as any green thread it runs.
        unsafe { &*self.worker }
    }
}

impl WorkerRef {
    /// Keeps the worker from being handed to another OS thread until the calling green
    /// thread has switched back to its carrier. Used right before a suspend whose wake-up
    /// was registered on the worker (an I/O op, a timer): otherwise the monitor could move
    /// the worker between the registration and the switch, and its new carrier could
    /// resume the thread while it still runs here. The carrier's loop ends the access once
    /// the switch is done (`Carrier::end_run`).
    pub(crate) fn hold_across_suspend(self) {
        std::mem::forget(self);
    }
}

impl Drop for WorkerRef {
    fn drop(&mut self) {
        // SAFETY: set by `worker()` from this OS thread's carrier, which outlives it.
        if let Some(carrier) = unsafe { self.carrier.as_ref() } {
            carrier.leave();
        }
    }
}

/// The worker this green thread runs on, or `None` off green threads and when its carrier
/// was exiled by the hand-off monitor (see [`worker_moving`]).
pub(crate) fn worker() -> Option<WorkerRef> {
    if !task_current::is_green() {
        return None;
    }
    let (worker, carrier) = carried();
    if carrier.is_null() || worker.is_null() {
        return None;
    }
    // SAFETY: the worker lives (in its runtime's `Arc`) as long as any green thread it
    // runs, and `shared` is immutable.
    if !unsafe { &*worker }.shared.migrates() {
        return Some(WorkerRef {
            worker,
            carrier: std::ptr::null(),
        });
    }
    // SAFETY: a carrier record lives as long as its OS thread carries anything.
    if !unsafe { (*carrier).enter() } {
        return None;
    }
    Some(WorkerRef { worker, carrier })
}

/// The index of the worker the calling green thread runs on (or ran on, if its carrier was
/// just exiled); `None` off green threads.
pub(crate) fn worker_index() -> Option<usize> {
    if !task_current::is_green() {
        return None;
    }
    // SAFETY: on a green thread the worker pointer is set and the worker is alive (its
    // runtime outlives its green threads); `index` is immutable, so reading it while another
    // carrier owns the worker is no data race.
    unsafe { carried().0.as_ref() }.map(|worker| worker.index)
}

/// As [`worker`], but a green thread whose carrier was exiled first switches back to it,
/// which hands the thread to a worker again; `None` only off green threads.
pub(crate) fn worker_moving() -> Option<WorkerRef> {
    loop {
        if let Some(worker) = worker() {
            return Some(worker);
        }
        // SAFETY: we are that green thread, on its own stack; the exiled carrier requeues
        // it in the runtime's injector.
        task_current::with(|task| unsafe { task.suspend(Suspend::Yield) })?;
    }
}
