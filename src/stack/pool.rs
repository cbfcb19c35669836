//! Reuse of stacks of the runtime's default size.
//!
//! Allocation tries, in order: the calling worker's [`LocalCache`] (no lock), the runtime's
//! shared free list (one lock, refilling the cache in a batch), and carving a new slab of
//! about [`SLAB_BYTES`] (one `mmap` and one batched guard `madvise` for all its stacks;
//! their pages are faulted in by the workers that use them, see `map::map_stacks`). Freed
//! stacks go back to the local cache, overflow to the shared list (up to [`SHARED_CAP`]),
//! and are trimmed by a worker about to sleep ([`StackPool::trim_at`]): the stacks that stayed
//! unused in the list for a whole [`TRIM_AFTER`] beyond [`SHARED_KEEP`] go back to the
//! kernel, all in one `process_madvise`. Returning a stack's memory costs a system call
//! and a TLB shootdown (an IPI to every other CPU running the process), which a burst of
//! 10,000 finishing threads should not pay on its way out (measured: it spread their
//! wake-ups over 35 ms instead of 14), nor a fan-out that spawns and joins again and again
//! and so drains the list between two sleeps. Stacks of any other size are mapped one by
//! one and never pooled.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{map, page_size, Stack};

/// Bytes of address space a slab aims at: 256 default stacks (17 MiB of address space, and
/// no memory until used), so a burst of spawns maps rarely. Large stacks get slabs of fewer
/// (at least one), so a big default size does not reserve a huge region.
pub(crate) const SLAB_BYTES: usize = 256 * (64 + 4) * 1024;
/// Stacks a worker keeps for itself.
pub(crate) const LOCAL_CAP: usize = 64;
/// Stacks moved between a worker's cache and the shared list at once; refills take at most
/// one slab's worth, so stacks of a slab or more each are mapped one at a time.
const BATCH: usize = LOCAL_CAP / 2;
/// Stacks the shared free list holds at most, whatever the load.
pub(crate) const SHARED_CAP: usize = 1 << 16;
/// Stacks the shared free list keeps once the runtime is idle.
pub(crate) const SHARED_KEEP: usize = 1024;
/// How long stacks must stay unused in the shared list before a trim returns them.
pub(crate) const TRIM_AFTER: Duration = Duration::from_millis(50);

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

/// The shared free list.
struct Free {
    /// Most recently freed last.
    stacks: Vec<Stack>,
    /// The fewest stacks the list held since the last trim: the bottom `low` ones have not
    /// been used since.
    low: usize,
    /// When the last trim looked.
    trimmed: Instant,
}

impl Free {
    /// Takes the `count` most recently freed stacks.
    fn take(&mut self, count: usize) -> std::vec::Drain<'_, Stack> {
        let keep = self.stacks.len() - count.min(self.stacks.len());
        self.low = self.low.min(keep);
        self.stacks.drain(keep..)
    }
}

/// A runtime's stack allocator for its default stack size.
pub(crate) struct StackPool {
    usable: usize,
    free: Mutex<Free>,
    /// How many stacks `free` held when its lock was last released: read without the lock
    /// by a spawn that only needs to know whether one is free.
    free_len: AtomicUsize,
    /// Stacks mapped by this pool and not unmapped yet.
    mapped: AtomicUsize,
}

/// The shared free list, locked; publishes its length to `free_len` when released.
struct Locked<'a> {
    free: MutexGuard<'a, Free>,
    free_len: &'a AtomicUsize,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Free;

    fn deref(&self) -> &Free {
        &self.free
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Free {
        &mut self.free
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.free_len.store(self.free.stacks.len(), Relaxed);
    }
}

impl StackPool {
    /// A pool serving stacks of `usable` bytes (already checked and page-rounded).
    pub(crate) fn new(usable: usize) -> StackPool {
        StackPool {
            usable,
            free: Mutex::new(Free {
                stacks: Vec::new(),
                low: 0,
                trimmed: Instant::now(),
            }),
            free_len: AtomicUsize::new(0),
            mapped: AtomicUsize::new(0),
        }
    }

    /// Stacks mapped and not unmapped yet (metrics).
    pub(crate) fn mapped(&self) -> usize {
        self.mapped.load(Relaxed)
    }

    /// Stacks in the shared free list (metrics).
    pub(crate) fn pooled(&self) -> usize {
        self.free_len.load(Relaxed)
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
                let batch = BATCH.min(self.per_slab());
                let mut free = self.refill(self.lock(), batch)?;
                cache.stacks.extend(free.take(batch));
                drop(free);
                Ok(cache
                    .stacks
                    .pop()
                    .expect("refill leaves at least one stack"))
            }
            None => {
                let mut free = self.refill(self.lock(), 1)?;
                let stack = free.take(1).next();
                Ok(stack.expect("refill leaves at least one stack"))
            }
        }
    }

    /// Prepares a spawn of a thread with a stack of `usable` bytes. A stack of another size
    /// than the default is mapped now and returned. For the default size nothing is taken:
    /// the thread gets its stack when it first runs (see `task`), and this only makes sure
    /// one is free (in `cache` or the shared list), mapping a slab now if none is, so that
    /// a refused mapping is reported to the spawner.
    ///
    /// # Errors
    ///
    /// When a mapping was needed and the kernel refused it (see `map::map_stacks`).
    pub(crate) fn prepare(
        &self,
        usable: usize,
        cache: Option<&LocalCache>,
    ) -> io::Result<Option<Stack>> {
        if usable != self.usable {
            return self.alloc(usable, None).map(Some);
        }
        // Without the lock: a spawn loop must not contend with the workers taking stacks.
        // A stale count only moves a mapping (or its error) from here to the first run.
        if cache.is_some_and(|cache| !cache.stacks.is_empty()) || self.free_len.load(Relaxed) > 0 {
            return Ok(None);
        }
        self.refill(self.lock(), 1)?;
        Ok(None)
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
                // Full: hand half of it to the shared list in one lock; what the list has
                // no room for goes back to the kernel in one batch.
                let mut free = self.lock();
                let room = SHARED_CAP.saturating_sub(free.stacks.len());
                let moved = cache.stacks.len() - BATCH;
                let mut half = cache.stacks.split_off(moved);
                let over = half.split_off(room.min(half.len()));
                free.stacks.append(&mut half);
                drop(free);
                cache.stacks.push(stack);
                if !over.is_empty() {
                    self.mapped.fetch_sub(over.len(), Relaxed);
                    map::release(over);
                }
            }
            None => {
                let mut free = self.lock();
                if free.stacks.len() < SHARED_CAP {
                    free.stacks.push(stack);
                } else {
                    drop(free);
                    drop(stack);
                    self.mapped.fetch_sub(1, Relaxed);
                }
            }
        }
    }

    /// Returns to the kernel the stacks beyond [`SHARED_KEEP`] that nobody took from the
    /// shared list for the last [`TRIM_AFTER`] or more; called off the hot path, by workers
    /// about to sleep. Stacks a fan-out takes again soon stay (their pages too).
    pub(crate) fn trim_at(&self, now: Instant) {
        let unused = {
            let mut free = self.lock();
            if now.saturating_duration_since(free.trimmed) < TRIM_AFTER {
                return;
            }
            let excess = free.low.saturating_sub(SHARED_KEEP);
            // The oldest stacks, at the bottom of the list: untouched since the last look.
            let unused: Vec<Stack> = free.stacks.drain(..excess).collect();
            free.low = free.stacks.len();
            free.trimmed = now;
            unused
        };
        if !unused.is_empty() {
            self.mapped.fetch_sub(unused.len(), Relaxed);
            map::release(unused);
        }
    }

    /// Returns a worker's cached stacks to the shared list (when the worker exits).
    pub(crate) fn drain(&self, cache: &mut LocalCache) {
        let mut free = self.lock();
        let room = SHARED_CAP.saturating_sub(free.stacks.len());
        let mut all = std::mem::take(&mut cache.stacks);
        let over = all.split_off(room.min(all.len()));
        free.stacks.append(&mut all);
        drop(free);
        if !over.is_empty() {
            self.mapped.fetch_sub(over.len(), Relaxed);
            map::release(over);
        }
    }

    /// Stacks carved from one slab: fewer for bigger stacks, one for stacks of a slab or
    /// more.
    fn per_slab(&self) -> usize {
        (SLAB_BYTES / (self.usable + page_size())).max(1)
    }

    /// Ensures the locked list holds at least `want` stacks, mapping slabs as needed. The
    /// lock is released while a slab is mapped (an `mmap` and the guards of hundreds of
    /// stacks), so other workers take and return stacks meanwhile.
    fn refill<'a>(&'a self, mut free: Locked<'a>, want: usize) -> io::Result<Locked<'a>> {
        let per_slab = self.per_slab();
        while free.stacks.len() < want {
            drop(free);
            let slab = map::map_stacks(per_slab, self.usable);
            free = self.lock();
            match slab {
                Ok(slab) => {
                    self.mapped.fetch_add(per_slab, Relaxed);
                    free.stacks.extend(slab);
                }
                // Another worker's mapping, made meanwhile, may be enough.
                Err(_) if free.stacks.len() >= want => break,
                Err(err) => return Err(err),
            }
        }
        Ok(free)
    }

    fn lock(&self) -> Locked<'_> {
        Locked {
            // The list is consistent whatever a panicking holder was doing: every element
            // is a valid free stack.
            free: self.free.lock().unwrap_or_else(PoisonError::into_inner),
            free_len: &self.free_len,
        }
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        // All at once: slabs whose every stack is here are only unmapped.
        let free = self.free.get_mut().unwrap_or_else(PoisonError::into_inner);
        map::release(std::mem::take(&mut free.stacks));
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
    fn prepare_maps_only_when_no_stack_is_free() {
        let size = 4 * page_size();
        let pool = StackPool::new(size);
        let mut cache = LocalCache::default();
        assert!(pool.prepare(size, Some(&cache)).unwrap().is_none());
        let slab = pool.mapped();
        assert!(slab > 0, "an empty pool maps a slab");
        // (Refills move whole batches, so take fewer than the slab holds.)
        let taken: Vec<_> = (0..slab / 2)
            .map(|_| pool.alloc(size, Some(&mut cache)).unwrap())
            .collect();
        assert_eq!(pool.mapped(), slab, "the prepared slab served them");
        for stack in taken {
            pool.free(stack, Some(&mut cache));
        }
        assert!(pool.prepare(size, Some(&cache)).unwrap().is_none());
        assert_eq!(
            pool.mapped(),
            slab,
            "a free stack in the cache needs no mapping"
        );
        let other = pool.prepare(2 * size, Some(&cache)).unwrap();
        assert_eq!(
            other.map(|stack| stack.usable_size()),
            Some(2 * size),
            "another size is mapped at once"
        );
    }

    #[test]
    fn workers_mapping_at_once_lose_no_stack() {
        // Slabs are mapped outside the lock: workers that find the list empty together
        // each map one, and every stack ends up handed out or listed, none twice.
        use std::sync::{Arc, Barrier};
        let size = 4 * page_size();
        let pool = Arc::new(StackPool::new(size));
        let per = pool.per_slab() * 3;
        let all_taken = Arc::new(Barrier::new(4));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let pool = Arc::clone(&pool);
                let all_taken = Arc::clone(&all_taken);
                std::thread::spawn(move || {
                    let mut cache = LocalCache::default();
                    let stacks: Vec<_> = (0..per)
                        .map(|_| pool.alloc(size, Some(&mut cache)).unwrap())
                        .collect();
                    let tops: Vec<usize> = stacks.iter().map(|s| s.top() as usize).collect();
                    let kept = cache.len();
                    // Only once every worker holds its stacks may any go back.
                    all_taken.wait();
                    for stack in stacks {
                        pool.free(stack, None);
                    }
                    (tops, kept)
                })
            })
            .collect();
        let mut tops = std::collections::HashSet::new();
        let mut cached = 0;
        for worker in workers {
            let (its, kept) = worker.join().unwrap();
            cached += kept;
            for top in its {
                assert!(tops.insert(top), "a stack was handed out twice");
            }
        }
        assert_eq!(tops.len(), 4 * per);
        assert_eq!(
            pool.pooled() + cached,
            pool.mapped(),
            "every mapped stack is listed or was left in a cache"
        );
        assert!(
            pool.mapped() <= 4 * per + 4 * pool.per_slab(),
            "at most one extra slab per worker: {} mapped",
            pool.mapped()
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
        assert!(pool.lock().stacks.len() <= SHARED_CAP);
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
        let pooled = pool.lock().stacks.len();
        assert!(pooled >= SHARED_KEEP + 100);
        let start = pool.lock().trimmed;
        pool.trim_at(start + TRIM_AFTER / 2);
        assert_eq!(pool.lock().stacks.len(), pooled, "too soon to trim");
        // The list was empty at first: nothing has stayed unused for a whole period yet.
        pool.trim_at(start + TRIM_AFTER);
        assert_eq!(pool.lock().stacks.len(), pooled);
        let mapped = pool.mapped();
        pool.trim_at(start + 2 * TRIM_AFTER);
        assert_eq!(pool.lock().stacks.len(), SHARED_KEEP);
        assert_eq!(pool.mapped(), mapped - (pooled - SHARED_KEEP));
    }

    #[test]
    fn trim_keeps_stacks_taken_since_the_last_look() {
        let size = 4 * page_size();
        let pool = StackPool::new(size);
        let stacks: Vec<_> = (0..2 * SHARED_KEEP)
            .map(|_| pool.alloc(size, None).unwrap())
            .collect();
        for stack in stacks {
            pool.free(stack, None);
        }
        let start = pool.lock().trimmed;
        pool.trim_at(start + TRIM_AFTER);
        let pooled = pool.lock().stacks.len();
        // A fan-out takes all but 10 and gives them back before the next look.
        let again: Vec<_> = (0..pooled - 10)
            .map(|_| pool.alloc(size, None).unwrap())
            .collect();
        for stack in again {
            pool.free(stack, None);
        }
        pool.trim_at(start + 2 * TRIM_AFTER);
        assert_eq!(pool.lock().stacks.len(), pooled, "all were used recently");
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
        assert!(pool.lock().stacks.is_empty());
    }
}
