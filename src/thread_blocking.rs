//! The [`Thread`](crate::thread::Thread) of a `spawn_blocking` job: an OS thread of the
//! pool, known only once the job starts. An `unpark` that arrives before then is kept and
//! delivered when the job starts, so the token semantics of `park` hold.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::thread::ThreadId;

/// A blocking job's thread identity.
#[derive(Debug)]
pub(crate) struct BlockingThread {
    pub(crate) id: ThreadId,
    /// The pool thread running the job, while it runs.
    os: Mutex<Option<std::thread::Thread>>,
    /// An unpark that arrived while no pool thread ran the job.
    pending: AtomicBool,
}

impl BlockingThread {
    pub(crate) fn new() -> Arc<BlockingThread> {
        Arc::new(BlockingThread {
            id: ThreadId::new(),
            os: Mutex::new(None),
            pending: AtomicBool::new(false),
        })
    }

    /// Called on the pool thread as the job starts.
    pub(crate) fn started(&self) {
        *self.os.lock().unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
        if self.pending.swap(false, Ordering::AcqRel) {
            std::thread::current().unpark();
        }
    }

    /// Called on the pool thread as the job ends (the thread goes on to other jobs).
    pub(crate) fn finished(&self) {
        *self.os.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    pub(crate) fn unpark(&self) {
        match &*self.os.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(thread) => thread.unpark(),
            None => self.pending.store(true, Ordering::Release),
        }
    }
}
