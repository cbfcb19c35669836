//! Completion slots on green thread stacks, and the `user_data` tags that find them.

use std::cell::Cell;

use io_uring::squeue::{Entry, Flags};
use io_uring::types::Timespec;

use super::ring::Ring;
use crate::task::{Task, TaskRef};

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

/// What a green thread waits for on its own stack while its op is in flight (the driver
/// puts it there and suspends; the worker's reap completes it).
#[repr(align(8))]
pub(crate) struct Completion {
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

impl Completion {
    /// A slot for the green thread `task` (the pointer its run reference is given up as,
    /// `TaskRef::as_ptr`: the last CQE hands it back as that reference), which awaits one
    /// CQE, or two with a linked timeout.
    pub(crate) fn new(task: *const Task, linked_timeout: bool) -> Completion {
        Completion {
            task: Cell::new(task),
            pending: Cell::new(if linked_timeout { 2 } else { 1 }),
            result: Cell::new(0),
            timeout_result: Cell::new(0),
        }
    }

    /// The outcome, once every CQE has arrived.
    pub(crate) fn result(&self) -> OpResult {
        OpResult {
            res: self.result.get(),
            // A linked timeout's CQE says -ETIME when it expired (0 stays without one).
            timed_out: self.timeout_result.get() == -libc::ETIME,
        }
    }

    /// The `user_data` of the op's own SQE.
    pub(super) fn op_tag(&self) -> u64 {
        self as *const Completion as u64 | TAG_OP
    }

    /// The `user_data` of the linked timeout's SQE.
    pub(super) fn timeout_tag(&self) -> u64 {
        self as *const Completion as u64 | TAG_LINK_TIMEOUT
    }
}

impl Ring {
    /// Queues `entry` for `slot` (and a timeout linked to it when `timeout` is set).
    ///
    /// # Safety
    ///
    /// Every pointer in `entry`, `slot` and `timeout` stays valid until the slot's last CQE
    /// has been reaped, and the slot's thread suspends with `Suspend::Io` right after this
    /// (only that CQE resumes it).
    pub(crate) unsafe fn queue_op(
        &self,
        slot: &Completion,
        entry: Entry,
        timeout: Option<&Timespec>,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match timeout {
                None => self.push(&[entry.user_data(slot.op_tag())]),
                Some(timespec) => {
                    let link = io_uring::opcode::LinkTimeout::new(timespec)
                        .build()
                        .user_data(slot.timeout_tag());
                    self.push(&[entry.flags(Flags::IO_LINK).user_data(slot.op_tag()), link]);
                }
            }
        }
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
