//! Each worker's registry of the started green threads anchored to it.
//!
//! A thread is added by its home worker when it first runs there and removed by the same
//! worker when it finishes, so the lock is taken twice per thread, by one OS thread, and is
//! uncontended except while the monitor reads it. The monitor reads it only when a worker
//! stalls: to name the thread that blocks the worker's OS thread (the carrier publishes
//! just its id) and the threads anchored behind it.
//!
//! Entries are weak, so a thread the runtime abandons at shutdown is not kept alive by its
//! entry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::task::{Task, TaskRef, WeakTaskRef, NO_SLOT};

/// The started threads anchored to one worker. Aligned to its own cache lines (two, for
/// the adjacent-line prefetcher): the registries of all workers sit side by side in one
/// array, and each is locked twice per thread by its own worker, so sharing a line with
/// another worker's registry would make every such lock a cache miss.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Registry {
    threads: Mutex<Vec<WeakTaskRef>>,
    /// How many threads are registered, readable without the lock (the balancing steal
    /// compares workers' loads with it).
    count: AtomicUsize,
}

impl Registry {
    /// Adds `task`, which just started on this registry's worker.
    pub(crate) fn add(&self, task: &TaskRef) {
        let mut threads = self.lock();
        task.registry_slot.store(threads.len(), Ordering::Relaxed);
        threads.push(TaskRef::downgrade(task));
        self.count.store(threads.len(), Ordering::Relaxed);
    }

    /// Removes `task` (finished); a thread never added is ignored.
    pub(crate) fn remove(&self, task: &Task) {
        let mut threads = self.lock();
        let slot = task.registry_slot.swap(NO_SLOT, Ordering::Relaxed);
        if slot == NO_SLOT || slot >= threads.len() {
            return;
        }
        threads.swap_remove(slot);
        self.count.store(threads.len(), Ordering::Relaxed);
        if let Some(moved) = threads.get(slot).and_then(WeakTaskRef::upgrade) {
            moved.registry_slot.store(slot, Ordering::Relaxed);
        }
    }

    /// How many threads are registered (a snapshot, without the lock).
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The registered threads still alive, with the one whose id is `running` first (if it
    /// is registered), and at most `limit` others.
    pub(crate) fn snapshot(&self, running: u64, limit: usize) -> (Option<TaskRef>, Vec<TaskRef>) {
        let threads = self.lock();
        let mut found = None;
        let mut others = Vec::new();
        for task in threads.iter().filter_map(WeakTaskRef::upgrade) {
            if task.id.as_u64().get() == running {
                found = Some(task);
            } else if others.len() < limit {
                others.push(task);
            }
        }
        (found, others)
    }

    /// The registered thread whose id is `id`, if it is alive.
    pub(crate) fn find(&self, id: u64) -> Option<TaskRef> {
        self.lock()
            .iter()
            .filter_map(WeakTaskRef::upgrade)
            .find(|task| task.id.as_u64().get() == id)
    }

    /// Every registered thread still alive.
    pub(crate) fn all(&self) -> Vec<TaskRef> {
        self.lock()
            .iter()
            .filter_map(WeakTaskRef::upgrade)
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<WeakTaskRef>> {
        // Every update is one push or one swap_remove: never left half done.
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
