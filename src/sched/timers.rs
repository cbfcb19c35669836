//! Each worker's sleeping green threads, in a deadline heap.
//!
//! `time::sleep` puts the calling thread here instead of submitting a kernel timer per
//! sleeper: the worker pops due threads at every turn of its loop and, when it has nothing
//! to run, sleeps in `io_uring_enter` with a timeout at the earliest deadline. Measured
//! against one io_uring `Timeout` per sleeper, 10,000 sleepers waking at once woke 2.5x
//! later on average (`cargo bench --bench io`, group `sleepers`); the kernel then runs
//! 10,000 timers and posts 10,000 completions, where this pops a heap.
//!
//! A sleeping thread's run reference is owned by its heap entry, as an in-flight op owns
//! it (`Suspend::Timer`), so nothing but its deadline (or the runtime's shutdown) resumes it.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::task::{Task, TaskRef};

/// One sleeper: ordered by deadline, then by arrival.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    deadline: Instant,
    seq: u64,
    /// The thread's leaked run reference.
    task: usize,
}

/// The sleepers of one worker. Only that worker's OS thread touches it.
#[derive(Default)]
pub(crate) struct Timers {
    heap: RefCell<BinaryHeap<Reverse<Entry>>>,
    seq: Cell<u64>,
}

impl Timers {
    /// Adds the suspending thread `task` (whose run reference the entry takes over).
    pub(crate) fn insert(&self, deadline: Instant, task: *const Task) {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        self.heap.borrow_mut().push(Reverse(Entry {
            deadline,
            seq,
            task: task as usize,
        }));
    }

    /// Number of sleepers.
    pub(crate) fn len(&self) -> usize {
        self.heap.borrow().len()
    }

    /// The earliest deadline, if any thread sleeps.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.borrow().peek().map(|entry| entry.0.deadline)
    }

    /// Hands every thread due at `now` (all of them with `None`) to `schedule`; returns how
    /// many.
    pub(crate) fn fire(&self, now: Option<Instant>, schedule: &mut dyn FnMut(TaskRef)) -> usize {
        let mut fired = 0;
        loop {
            let entry = {
                let mut heap = self.heap.borrow_mut();
                match heap.peek() {
                    Some(entry) if now.is_none_or(|now| entry.0.deadline <= now) => heap.pop(),
                    _ => None,
                }
            };
            let Some(Reverse(entry)) = entry else {
                return fired;
            };
            // SAFETY: `insert` got the reference the worker leaked when the thread suspended
            // with `Suspend::Timer`; each entry is popped once.
            schedule(unsafe { TaskRef::from_raw(entry.task as *const Task) });
            fired += 1;
        }
    }
}
