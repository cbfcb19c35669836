//! Reuse of stacks of the runtime's default size.
//!
//! Allocation tries, in order: the calling worker's [`LocalCache`] (no lock), the runtime's
//! shared free list (one lock, refilling the cache in a batch), and carving a new slab of
//! about [`SLAB_BYTES`] (one `mmap`, plus one guard `madvise` per stack). Freed stacks go
//! back to the local cache, overflow to the shared list (up to [`SHARED_CAP`]), and are
//! trimmed back to [`SHARED_KEEP`] by a worker about to sleep ([`StackPool::trim`]): the
//! `madvise` that returns a dropped stack's memory costs a system call per stack, which a
//! burst of 10,000 finishing threads should not pay on its way out (measured: it spread
//! their wake-ups over 35 ms instead of 14). Stacks of any other size are mapped one by one
//! and never pooled.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{map, page_size, Stack};

/// Bytes of address space a slab aims at: 64 default stacks. Large stacks get slabs of
/// fewer (at least one), so a big default size does not reserve a huge region.
pub(crate) const SLAB_BYTES: usize = 64 * (64 + 4) * 1024;
/// Stacks a worker keeps for itself.
pub(crate) const LOCAL_CAP: usize = 64;
/// Stacks moved between a worker's cache and the shared list at once; refills take at most
/// one slab's worth, so stacks of a slab or more each are mapped one at a time.
const BATCH: usize = LOCAL_CAP / 2;
/// Stacks the shared free list holds at most, whatever the load.
pub(crate) const SHARED_CAP: usize = 1 << 16;
/// Stacks the shared free list keeps once the runtime is idle.
pub(crate) const SHARED_KEEP: usize = 1024;

/// The stacks one worker keeps for reuse; only that worker's thread touches it.
#[derive(Default)]
pub(crate) struct LocalCache {
    stacks: Vec<Stack>,
}

impl LocalCache {
    /// Stacks in the cache.
    pub(crate) fn len(&self) -> usize {
        self.stacks.len()
    }
}

/// A runtime's stack allocator for its default stack size.
pub(crate) struct StackPool {
    usable: usize,
    free: Mutex<Vec<Stack>>,
    /// Stacks mapped by this pool and not unmapped yet.
    mapped: AtomicUsize,
}

impl StackPool {
    /// A pool serving stacks of `usable` bytes (already checked and page-rounded).
    pub(crate) fn new(usable: usize) -> StackPool {
        StackPool {
            usable,
            free: Mutex::new(Vec::new()),
            mapped: AtomicUsize::new(0),
        }
    }

    /// Stacks mapped and not unmapped yet (metrics).
    pub(crate) fn mapped(&self) -> usize {
        self.mapped.load(Relaxed)
    }

    /// Stacks in the shared free list (metrics).
    pub(crate) fn pooled(&self) -> usize {
        self.lock().len()
    }

    /// The usable size of the stacks this pool serves.
    pub(crate) fn default_size(&self) -> usize {
        self.usable
    }

    /// A stack of `usable` bytes, from `cache` or the pool when it is the default size.
    ///
    /// # Errors
    ///
    /// When a new mapping is needed and the kernel refuses it (see `map::map_stacks`).
    pub(crate) fn alloc(&self, usable: usize, cache: Option<&mut LocalCache>) -> io::Result<Stack> {
        if usable != self.usable {
            let mut one = map::map_stacks(1, usable)?;
            self.mapped.fetch_add(1, Relaxed);
            return Ok(one
                .pop()
                .expect("map_stacks returns the stacks it was asked for"));
        }
        match cache {
            Some(cache) => {
                if let Some(stack) = cache.stacks.pop() {
                    return Ok(stack);
                }
                let mut free = self.lock();
                let batch = BATCH.min(self.per_slab());
                self.refill(&mut free, batch)?;
                let keep = free.len() - batch.min(free.len());
                cache.stacks.extend(free.drain(keep..));
                drop(free);
                Ok(cache
                    .stacks
                    .pop()
                    .expect("refill leaves at least one stack"))
            }
            None => {
                let mut free = self.lock();
                self.refill(&mut free, 1)?;
                Ok(free.pop().expect("refill leaves at least one stack"))
            }
        }
    }

    /// Takes back the stack of a finished green thread.
    pub(crate) fn free(&self, stack: Stack, cache: Option<&mut LocalCache>) {
        if stack.usable_size() != self.usable {
            drop(stack);
            self.mapped.fetch_sub(1, Relaxed);
            return;
        }
        match cache {
            Some(cache) if cache.stacks.len() < LOCAL_CAP => cache.stacks.push(stack),
            Some(cache) => {
                // Full: hand half of it to the shared list in one lock.
                let mut free = self.lock();
                let room = SHARED_CAP.saturating_sub(free.len());
                let moved = cache.stacks.len() - BATCH;
                let before = free.len();
                free.extend(cache.stacks.drain(moved..).take(room));
                let unmapped = BATCH - (free.len() - before);
                drop(free);
                self.mapped.fetch_sub(unmapped, Relaxed);
                cache.stacks.push(stack);
            }
            None => {
                let mut free = self.lock();
                if free.len() < SHARED_CAP {
                    free.push(stack);
                } else {
                    drop(free);
                    drop(stack);
                    self.mapped.fetch_sub(1, Relaxed);
                }
            }
        }
    }

    /// Drops the stacks beyond [`SHARED_KEEP`], returning their memory; called off the hot
    /// path, by workers about to sleep.
    pub(crate) fn trim(&self) {
        let excess = {
            let mut free = self.lock();
            if free.len() <= SHARED_KEEP {
                return;
            }
            free.split_off(SHARED_KEEP)
        };
        self.mapped.fetch_sub(excess.len(), Relaxed);
        drop(excess);
    }

    /// Returns a worker's cached stacks to the shared list (when the worker exits).
    pub(crate) fn drain(&self, cache: &mut LocalCache) {
        let mut free = self.lock();
        let room = SHARED_CAP.saturating_sub(free.len());
        let before = free.len();
        let total = cache.stacks.len();
        free.extend(cache.stacks.drain(..).take(room));
        self.mapped
            .fetch_sub(total - (free.len() - before), Relaxed);
    }

    /// Stacks carved from one slab: fewer for bigger stacks, one for stacks of a slab or
    /// more.
    fn per_slab(&self) -> usize {
        (SLAB_BYTES / (self.usable + page_size())).max(1)
    }

    /// Ensures `free` holds at least `want` stacks, mapping slabs as needed.
    fn refill(&self, free: &mut Vec<Stack>, want: usize) -> io::Result<()> {
        let per_slab = self.per_slab();
        while free.len() < want {
            free.extend(map::map_stacks(per_slab, self.usable)?);
            self.mapped.fetch_add(per_slab, Relaxed);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Stack>> {
        // The list is consistent whatever a panicking holder was doing: every element is a
        // valid free stack.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_reuses_stacks_without_mapping() {
        let size = 4 * page_size();
        let pool = StackPool::new(size);
        let mut cache = LocalCache::default();
        let first = pool.alloc(size, Some(&mut cache)).unwrap();
        let top = first.top();
        pool.free(first, Some(&mut cache));
        let again = pool.alloc(size, Some(&mut cache)).unwrap();
        assert_eq!(
            again.top(),
            top,
            "the freed stack is the next one handed out"
        );
    }

    #[test]
    fn local_cache_is_bounded() {
        let size = 4 * page_size();
        let pool = StackPool::new(size);
        let mut cache = LocalCache::default();
        let stacks: Vec<_> = (0..3 * LOCAL_CAP)
            .map(|_| pool.alloc(size, Some(&mut cache)).unwrap())
            .collect();
        for stack in stacks {
            pool.free(stack, Some(&mut cache));
            assert!(cache.stacks.len() <= LOCAL_CAP);
        }
        assert!(pool.lock().len() <= SHARED_CAP);
    }

    #[test]
    fn trim_keeps_a_bounded_reserve() {
        let size = 4 * page_size();
        let pool = StackPool::new(size);
        let stacks: Vec<_> = (0..SHARED_KEEP + 100)
            .map(|_| pool.alloc(size, None).unwrap())
            .collect();
        for stack in stacks {
            pool.free(stack, None);
        }
        // The freed stacks, plus what the last slab had left uncarved.
        assert!(pool.lock().len() >= SHARED_KEEP + 100);
        pool.trim();
        assert_eq!(pool.lock().len(), SHARED_KEEP);
    }

    #[test]
    fn a_cache_refill_of_big_stacks_maps_one_slab() {
        for usable in [64 * 1024, SLAB_BYTES / 2, 1 << 30] {
            let pool = StackPool::new(usable);
            let mut cache = LocalCache::default();
            let stack = pool.alloc(usable, Some(&mut cache)).unwrap();
            assert_eq!(pool.mapped(), pool.per_slab(), "{usable}-byte stacks");
            pool.free(stack, Some(&mut cache));
        }
    }

    #[test]
    fn other_sizes_are_not_pooled() {
        let pool = StackPool::new(4 * page_size());
        let odd = pool.alloc(8 * page_size(), None).unwrap();
        assert_eq!(odd.usable_size(), 8 * page_size());
        pool.free(odd, None);
        assert!(pool.lock().is_empty());
    }
}
