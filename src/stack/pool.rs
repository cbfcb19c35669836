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
//!
//! # Every spawn has its stack
//!
//! A thread of the default size gets its stack only when it first runs, but a spawn that
//! returns `Ok` must not find out then that there is none (under RLIMIT_AS, or
//! `vm.max_map_count`, the mapping would be refused). So the runtime counts the threads that
//! hold or will hold a default stack (its *claims*, kept with its count of live threads),
//! and the pool keeps `default_mapped >= claims + headroom`, where the headroom is what the
//! workers' caches can hold ([`StackPool::cache_cap`] each). Since a stack is either in use,
//! in a cache or in the shared list, the shared list then always holds at least one free
//! stack for every thread that has not started yet: a first run never needs to map. A spawn
//! that would break the rule maps a slab first ([`StackPool::prepare`]) and fails with the
//! refusal's error if it cannot; a trim never takes the count below it.

use std::io;
use std::sync::atomic::{
    AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
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
    /// Default stacks per slab (see [`SLAB_BYTES`]); computed once, as spawns and frees
    /// read it.
    per_slab: usize,
    free: Mutex<Free>,
    /// How many stacks `free` held when its lock was last released: read without the lock
    /// by a spawn that only needs to know whether one is free.
    free_len: AtomicUsize,
    /// Stacks mapped by this pool and not unmapped yet.
    mapped: AtomicUsize,
    /// Of those, the stacks of the default size (see the module documentation).
    default_mapped: AtomicUsize,
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
            per_slab: (SLAB_BYTES / (usable + page_size())).max(1),
            free: Mutex::new(Free {
                stacks: Vec::new(),
                low: 0,
                trimmed: Instant::now(),
            }),
            free_len: AtomicUsize::new(0),
            mapped: AtomicUsize::new(0),
            default_mapped: AtomicUsize::new(0),
        }
    }

    /// Stacks a worker's cache holds at most: [`LOCAL_CAP`], or a slab's worth of big
    /// stacks (so the caches, which count in the headroom of every spawn, stay small).
    pub(crate) fn cache_cap(&self) -> usize {
        self.per_slab().clamp(1, LOCAL_CAP)
    }

    /// Default stacks that must be mapped for `claims` threads of `workers` workers.
    fn needed(&self, claims: usize, workers: usize) -> usize {
        claims.saturating_add(workers.saturating_mul(self.cache_cap()))
    }

    /// Counts default stacks given back to the kernel.
    fn unmapped(&self, count: usize) {
        self.mapped.fetch_sub(count, SeqCst);
        self.default_mapped.fetch_sub(count, SeqCst);
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
                let batch = BATCH.min(self.cache_cap());
                // A batch if it can be had; one at least (the shared list holds one for
                // every thread that has not started: see the module documentation).
                let mut free = match self.refill(self.lock(), batch) {
                    Ok(free) => free,
                    Err(_) => self.refill(self.lock(), 1)?,
                };
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
    /// the thread gets its stack when it first runs (see `task`), and `claims`, the count of
    /// the runtime's default-size threads with this one, must be covered (see the module
    /// documentation): if it is not, a slab is mapped now, so that a refused mapping is
    /// reported to the spawner.
    ///
    /// # Errors
    ///
    /// When a mapping was needed and the kernel refused it (see `map::map_stacks`); the
    /// caller then takes its claim back.
    #[inline]
    pub(crate) fn prepare(
        &self,
        usable: usize,
        claims: usize,
        workers: usize,
    ) -> io::Result<Option<Stack>> {
        if usable != self.usable {
            return self.alloc(usable, None).map(Some);
        }
        let needed = self.needed(claims, workers);
        // SeqCst, against a trim's decrement then read of the claims: either this sees the
        // trimmed count, or the trim sees this claim (and puts its stacks back).
        if self.default_mapped.load(SeqCst) >= needed {
            return Ok(None);
        }
        self.map_for(needed).map(|()| None)
    }

    /// Maps slabs of default stacks until `needed` are mapped (see [`StackPool::prepare`]).
    #[cold]
    fn map_for(&self, needed: usize) -> io::Result<()> {
        let per_slab = self.per_slab();
        while self.default_mapped.load(SeqCst) < needed {
            let slab = crate::stats::in_kernel(|| map::map_stacks(per_slab, self.usable));
            let mut free = self.lock();
            match slab {
                Ok(slab) => {
                    self.mapped.fetch_add(per_slab, SeqCst);
                    self.default_mapped.fetch_add(per_slab, SeqCst);
                    free.stacks.extend(slab);
                }
                // Another spawn's mapping, made meanwhile, may be enough.
                Err(_) if self.default_mapped.load(SeqCst) >= needed => break,
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Takes back the stack of a finished green thread.
    pub(crate) fn free(&self, stack: Stack, cache: Option<&mut LocalCache>) {
        if stack.usable_size() != self.usable {
            drop(stack);
            self.mapped.fetch_sub(1, Relaxed);
            return;
        }
        let cap = self.cache_cap();
        match cache {
            Some(cache) if cache.stacks.len() < cap => cache.stacks.push(stack),
            Some(cache) => {
                // Full: hand half of it to the shared list in one lock; what the list has
                // no room for goes back to the kernel in one batch.
                let mut free = self.lock();
                let room = SHARED_CAP.saturating_sub(free.stacks.len());
                let moved = cache.stacks.len() - cap / 2;
                let mut half = cache.stacks.split_off(moved);
                let over = half.split_off(room.min(half.len()));
                free.stacks.append(&mut half);
                if cache.stacks.len() < cap {
                    cache.stacks.push(stack);
                } else {
                    free.stacks.push(stack);
                }
                drop(free);
                if !over.is_empty() {
                    self.unmapped(over.len());
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
                    self.unmapped(1);
                }
            }
        }
    }

    /// Returns to the kernel the stacks beyond [`SHARED_KEEP`] that nobody took from the
    /// shared list for the last [`TRIM_AFTER`] or more, keeping those that `claims()` (the
    /// runtime's count of default-size threads, read after the trim's own count is down)
    /// and `workers` need (see the module documentation); called off the hot path, by
    /// workers about to sleep. Stacks a fan-out takes again soon stay (their pages too).
    pub(crate) fn trim_at(&self, now: Instant, claims: impl Fn() -> usize, workers: usize) {
        let unused = {
            let mut free = self.lock();
            if now.saturating_duration_since(free.trimmed) < TRIM_AFTER {
                return;
            }
            let mut excess = free.low.saturating_sub(SHARED_KEEP);
            free.low = free.stacks.len();
            free.trimmed = now;
            if excess == 0 {
                return;
            }
            // Count them gone first, then look at the claims (SeqCst, against a spawn's
            // claim then read of the count: see `prepare`); keep what they still need.
            let before = self.default_mapped.fetch_sub(excess, SeqCst);
            let keep_mapped = self.needed(claims(), workers);
            let allowed = before.saturating_sub(keep_mapped).min(excess);
            self.default_mapped.fetch_add(excess - allowed, SeqCst);
            excess = allowed;
            // The oldest stacks, at the bottom of the list: untouched since the last look.
            let unused: Vec<Stack> = free.stacks.drain(..excess).collect();
            free.low = free.stacks.len();
            unused
        };
        if !unused.is_empty() {
            self.mapped.fetch_sub(unused.len(), SeqCst);
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
            self.unmapped(over.len());
            map::release(over);
        }
    }

    /// Stacks carved from one slab: fewer for bigger stacks, one for stacks of a slab or
    /// more.
    fn per_slab(&self) -> usize {
        self.per_slab
    }

    /// Ensures the locked list holds at least `want` stacks, mapping slabs as needed. The
    /// lock is released while a slab is mapped (an `mmap` and the guards of hundreds of
    /// stacks), so other workers take and return stacks meanwhile.
    fn refill<'a>(&'a self, mut free: Locked<'a>, want: usize) -> io::Result<Locked<'a>> {
        let per_slab = self.per_slab();
        while free.stacks.len() < want {
            drop(free);
            let slab = crate::stats::in_kernel(|| map::map_stacks(per_slab, self.usable));
            free = self.lock();
            match slab {
                Ok(slab) => {
                    self.mapped.fetch_add(per_slab, SeqCst);
                    self.default_mapped.fetch_add(per_slab, SeqCst);
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
    fn prepare_keeps_a_stack_mapped_for_every_claim_and_every_cache() {
        let size = 4 * page_size();
        let pool = StackPool::new(size);
        let workers = 2;
        let headroom = workers * pool.cache_cap();
        assert!(pool.prepare(size, 1, workers).unwrap().is_none());
        let mapped = pool.mapped();
        assert!(
            mapped > headroom,
            "an empty pool maps for the claim and the caches"
        );
        // Claims the mapping covers need no new one.
        assert!(pool
            .prepare(size, mapped - headroom, workers)
            .unwrap()
            .is_none());
        assert_eq!(pool.mapped(), mapped);
        // One more does.
        assert!(pool
            .prepare(size, mapped - headroom + 1, workers)
            .unwrap()
            .is_none());
        assert!(pool.mapped() > mapped);
        let other = pool.prepare(2 * size, 1, workers).unwrap();
        assert_eq!(
            other.map(|stack| stack.usable_size()),
            Some(2 * size),
            "another size is mapped at once"
        );
    }

    #[test]
    fn a_trim_never_takes_the_mapping_below_the_claims() {
        let size = 4 * page_size();
        let pool = StackPool::new(size);
        let claims = SHARED_KEEP + 500;
        pool.prepare(size, claims, 1).unwrap();
        let mapped = pool.mapped();
        let start = pool.lock().trimmed;
        pool.trim_at(start + TRIM_AFTER, || claims, 1);
        pool.trim_at(start + 2 * TRIM_AFTER, || claims, 1);
        let kept = pool.mapped();
        assert!(kept >= claims + pool.cache_cap(), "{kept} mapped");
        assert!(kept < mapped, "the unclaimed rest went: {kept} of {mapped}");
        // Once the claims are gone, the excess goes.
        pool.trim_at(start + 3 * TRIM_AFTER, || 0, 1);
        assert!(pool.mapped() < kept);
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
            assert!(cache.stacks.len() <= pool.cache_cap());
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
        pool.trim_at(start + TRIM_AFTER / 2, || 0, 0);
        assert_eq!(pool.lock().stacks.len(), pooled, "too soon to trim");
        // The list was empty at first: nothing has stayed unused for a whole period yet.
        pool.trim_at(start + TRIM_AFTER, || 0, 0);
        assert_eq!(pool.lock().stacks.len(), pooled);
        let mapped = pool.mapped();
        pool.trim_at(start + 2 * TRIM_AFTER, || 0, 0);
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
        pool.trim_at(start + TRIM_AFTER, || 0, 0);
        let pooled = pool.lock().stacks.len();
        // A fan-out takes all but 10 and gives them back before the next look.
        let again: Vec<_> = (0..pooled - 10)
            .map(|_| pool.alloc(size, None).unwrap())
            .collect();
        for stack in again {
            pool.free(stack, None);
        }
        pool.trim_at(start + 2 * TRIM_AFTER, || 0, 0);
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
