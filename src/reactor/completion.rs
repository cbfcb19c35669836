//! Completion slots on green thread stacks, and the `user_data` tags that find them.

use std::cell::Cell;

use io_uring::squeue::{Entry, Flags};
use io_uring::types::Timespec;

use crate::sched::current;
use crate::task::{Suspend, Task, TaskRef};

/// `user_data` of the worker's own eventfd read.
pub(super) const WAKE: u64 = 0;
/// `user_data` of fire-and-forget ops (timer removals) whose CQE nobody waits for.
pub(super) const IGNORED: u64 = 1;
/// Low bits of a `user_data` that carries a pointer (all pointers used are 8-aligned).
pub(super) const TAG_MASK: u64 = 0b111;
/// Tag: the CQE of the operation itself, for the `Completion` at the address.
pub(super) const TAG_OP: u64 = 0b000;
/// Tag: the CQE of the linked timeout, for the `Completion` at the address.
pub(super) const TAG_LINK_TIMEOUT: u64 = 0b010;
/// Tag: a heap timer of `park_timeout` (see `timer`).
pub(super) const TAG_TIMER: u64 = 0b100;

/// What a green thread waits for on its own stack while its op is in flight.
#[repr(align(8))]
pub(super) struct Completion {
    /// The parked thread; its run reference was leaked into this pointer by the worker.
    task: Cell<*const Task>,
    /// CQEs still to come: 1, or 2 with a linked timeout.
    pending: Cell<u8>,
    result: Cell<i32>,
    timeout_result: Cell<i32>,
}

/// The results of an operation and of its linked timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpResult {
    /// The CQE `res` of the op: a count or value when `>= 0`, `-errno` otherwise.
    pub(crate) res: i32,
    /// `true` when a linked timeout expired and cancelled the op.
    pub(crate) timed_out: bool,
}

/// Submits `entry` (and a linked timeout when `timeout` is set) on the current worker's
/// ring and suspends the calling green thread until every CQE has arrived.
///
/// # Safety
///
/// Every pointer in `entry` must stay valid until this returns (it does not return before
/// the kernel is done with them, see the module documentation of `reactor`). Must be called
/// on a green thread.
pub(crate) unsafe fn park_on(entry: Entry, timeout: Option<&Timespec>) -> OpResult {
    let task = current::task();
    debug_assert!(!task.is_null(), "park_on off a green thread");
    // SAFETY: the running task is alive while it runs.
    if crate::sched::cancel_point(unsafe { &*task }) {
        // Unwinding during shutdown: fail rather than block on I/O that will be cancelled.
        return OpResult {
            res: -libc::ECANCELED,
            timed_out: false,
        };
    }
    let slot = Completion {
        task: Cell::new(task),
        pending: Cell::new(if timeout.is_some() { 2 } else { 1 }),
        result: Cell::new(0),
        timeout_result: Cell::new(0),
    };
    let address = &slot as *const Completion as u64;
    let worker = current::worker_moving().expect("park_on called off a green thread");
    let ring = worker.reactor().ring();
    // SAFETY: the entries point into the caller's frame (guaranteed valid until we return)
    // and at `slot` and `timespec`, which live until we return; we return only after every
    // CQE of these entries has been reaped.
    unsafe {
        match timeout {
            None => ring.push(&[entry.user_data(address | TAG_OP)]),
            Some(timespec) => {
                let link = io_uring::opcode::LinkTimeout::new(timespec)
                    .build()
                    .user_data(address | TAG_LINK_TIMEOUT);
                ring.push(&[
                    entry.flags(Flags::IO_LINK).user_data(address | TAG_OP),
                    link,
                ]);
            }
        }
    }
    // Only this worker's loop may reap the CQEs, after the switch below.
    worker.hold_across_suspend();
    // SAFETY: we are the green thread `task`, on its own stack; the worker hands the run
    // reference to `slot` (see `Suspend::Io`) and `complete` gives it back.
    unsafe { (*task).suspend(Suspend::Io) };
    if slot.result.get() == -libc::ECANCELED {
        // SAFETY: as above. The op may have been cancelled by the runtime's shutdown.
        crate::sched::cancel_point(unsafe { &*task });
    }
    OpResult {
        res: slot.result.get(),
        timed_out: timeout.is_some() && slot.timeout_result.get() == -libc::ETIME,
    }
}

/// Records one CQE for the slot `user_data` points at; returns the thread to schedule once
/// the slot has all it waits for.
///
/// # Safety
///
/// `user_data` must carry `TAG_OP` or `TAG_LINK_TIMEOUT` and the address of a `Completion`
/// whose thread is suspended in `park_on` with this CQE still pending.
pub(super) unsafe fn complete(user_data: u64, res: i32) -> Option<TaskRef> {
    // SAFETY: the slot lives on the suspended thread's stack, which stays mapped and
    // untouched until the thread resumes, which only happens after we schedule it below.
    let slot = unsafe { &*((user_data & !TAG_MASK) as *const Completion) };
    if user_data & TAG_MASK == TAG_LINK_TIMEOUT {
        slot.timeout_result.set(res);
    } else {
        slot.result.set(res);
    }
    let pending = slot.pending.get() - 1;
    slot.pending.set(pending);
    if pending > 0 {
        return None;
    }
    // SAFETY: the worker leaked exactly one run reference into `slot.task` when the thread
    // suspended with `Suspend::Io`; this is the last CQE, so we take it back once.
    Some(unsafe { crate::task::TaskRef::from_raw(slot.task.get()) })
}
