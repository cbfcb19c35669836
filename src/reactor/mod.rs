//! The reactor: one io_uring per worker, and the only code that talks to io_uring.
//!
//! # The flow of one blocking operation
//!
//! 1. A green thread on worker W calls e.g. `stream.read(&mut buf)`. The op family module
//!    (`net`, `fs`, `time` here) builds an SQE whose pointers (buffer, sockaddr, timespec)
//!    all point into the caller's frame, and calls [`park_on`].
//! 2. `park_on` puts a [`Completion`] slot on the green thread's stack, tags the SQE with
//!    its address, queues it on W's ring (no system call yet) and suspends the thread with
//!    `Suspend::Io`. The worker then leaks the thread's run reference into the slot: the
//!    in-flight op owns the thread now, and nothing else can schedule it (a user's
//!    `unpark` only leaves a park token).
//! 3. W runs other threads. Before it looks for the next thread with its queues drained,
//!    and every `SUBMIT_INTERVAL` ticks otherwise, it submits everything queued with one
//!    `io_uring_enter`, and it reaps the completion ring (shared memory, no system call)
//!    at every tick. With nothing left to run or steal it sleeps in `io_uring_enter`,
//!    waiting for one completion; other threads wake it through an eventfd whose read W
//!    keeps in flight.
//! 4. Reaping a CQE stores its result in the slot; once every CQE the slot expects has
//!    arrived, W makes the thread runnable on its own queue.
//! 5. The thread resumes, on W (it may be stolen later, between ops, never while one is
//!    in flight) and turns the result into an `io::Result`.
//!
//! # The buffer invariant
//!
//! A green thread never continues past [`park_on`] before *every* CQE of what it submitted
//! has been reaped: the op's, and with a timeout the linked timeout's too (the kernel
//! completes the op with `-ECANCELED` and the timeout with `-ETIME`; the slot counts both).
//! So every pointer an SQE holds stays valid until the kernel is done with it, and callers
//! can hand the kernel plain borrowed slices. A thread in `park_on` cannot be resumed by
//! anything but its last CQE, and its stack is never freed while it is suspended there.

mod completion;
pub(crate) mod ops;
mod ring;
mod timer;

pub(crate) use self::completion::park_on;
pub(crate) use self::ring::{Reactor, Waker};
pub(crate) use self::timer::park_timeout;

/// Queues `entries` on the ring of the worker running the calling green thread; `false`
/// off green threads (where callers use the blocking std call instead). A green thread
/// whose carrier was exiled by the hand-off monitor first goes back to a worker.
///
/// # Safety
///
/// Every pointer the entries hold stays valid until their CQEs are reaped.
pub(crate) unsafe fn push_current(entries: &[io_uring::squeue::Entry]) -> bool {
    let Some(worker) = crate::sched::current::worker_moving() else {
        return false;
    };
    // SAFETY: forwarded from the caller.
    unsafe { worker.reactor().push(entries) };
    true
}
