//! Memory for task records: fixed-size slots carved from large chunks the runtime maps
//! itself, handed out and taken back through per-OS-thread caches.
//!
//! # Why not the global allocator
//!
//! A spawn allocates one task record, and a burst of spawns allocates them faster than
//! they are freed: a million live green threads hold 320 MB of records. glibc grows a
//! non-main arena (every OS thread but the process's first has one) one `mprotect` per
//! page, under the arena's lock, so the heap of a worker that spawns in a burst grows by a
//! system call every dozen spawns; records freed on another worker go back under that
//! same lock. Here a chunk of [`CHUNK`] bytes is one `mmap` for about eight hundred records,
//! and the common allocation and free touch only the calling OS thread's cache.
//!
//! # Structure
//!
//! - Each OS thread has a cache: a stack of free slots. `alloc` pops from it; `free`
//!   pushes onto it. Neither takes a lock.
//! - When a cache is empty, it takes a *magazine* (up to [`MAGAZINE`] free slots) from the
//!   process-wide depot; when the depot has none, it maps a new chunk (outside the lock)
//!   and gives the depot all of its slots in magazines. When a cache holds two magazines'
//!   worth, it gives one to the depot. So a thread spawning and a thread retiring the same
//!   records meet at the depot's lock once per [`MAGAZINE`] records, not once per record.
//! - An OS thread that exits gives its cache to the depot.
//! - The depot returns chunks to the system when a worker is about to sleep
//!   ([`Slab::trim_at`], at most once per the stack pool's [`TRIM_AFTER`], as the pool
//!   trims its stacks): of the slots that stayed in the depot, unused, since the last look
//!   (beyond a reserve of [`KEEP`]), it finds the chunks whose every slot is among them
//!   (nobody holds any slot of such a chunk, so nobody can reach it), unmaps those and
//!   keeps the rest. The counting runs outside the lock. So a fan-out that spawns and joins
//!   again and again reuses the same chunks instead of faulting fresh pages each time, and
//!   the records of a million threads that have finished go back once the runtime idles.
//!   Slots held in the caches (at most two magazines per OS thread) keep their chunks
//!   mapped.
//!
//! Chunks are aligned to their size, so a slot's chunk is its address rounded down.

use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::stack::TRIM_AFTER;

/// Bytes in one chunk; a power of two, and a multiple of every page size in use.
const CHUNK: usize = 256 * 1024;
/// Free slots moved between a cache and the depot at once.
const MAGAZINE: usize = 64;
/// Free slots the depot keeps however long they stay unused (about a megabyte of task
/// records).
const KEEP: usize = 4096;

/// An empty magazine, with room for the two a cache holds at most.
fn magazine() -> Vec<Slot> {
    Vec::with_capacity(2 * MAGAZINE)
}

/// One free slot. Free slots belong to nobody, so they may move between OS threads.
struct Slot(NonNull<u8>);

// SAFETY: a free slot is plain memory that nobody else refers to.
unsafe impl Send for Slot {}

impl Slot {
    fn chunk(&self) -> usize {
        self.0.as_ptr() as usize & !(CHUNK - 1)
    }
}

/// A slab of slots of one layout.
pub(crate) struct Slab {
    slot: Layout,
    depot: Mutex<Depot>,
}

/// The free slots no cache holds.
struct Depot {
    magazines: Vec<Vec<Slot>>,
    /// Free slots in `magazines`.
    free: usize,
    /// The fewest free slots the depot held since the last trim: the bottom `low` of
    /// `magazines` (magazines are taken from the top) have not been used since.
    low: usize,
    /// When the last trim looked; `None` before the first.
    trimmed: Option<Instant>,
    /// Whether a trim is counting free slots outside the lock.
    trimming: bool,
}

impl Slab {
    /// A slab of slots of `slot`'s size and alignment (at most a chunk's worth).
    pub(crate) const fn new(slot: Layout) -> Slab {
        assert!(slot.size() > 0 && slot.size() <= CHUNK / 16 && slot.align() <= CHUNK);
        Slab {
            slot,
            depot: Mutex::new(Depot {
                magazines: Vec::new(),
                free: 0,
                low: 0,
                trimmed: None,
                trimming: false,
            }),
        }
    }

    /// Slots in one chunk (its tail smaller than a slot is never used).
    fn per_chunk(&self) -> usize {
        CHUNK / self.slot.size()
    }

    fn depot(&self) -> MutexGuard<'_, Depot> {
        // Every update of the depot completes before its lock is released, and nothing in
        // it panics midway (allocation failure aborts).
        self.depot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a magazine of free slots from the depot; when it has none, maps a chunk
    /// (outside the lock) and gives the depot every slot of it but the magazine returned.
    fn take_magazine(&self) -> Vec<Slot> {
        {
            let mut depot = self.depot();
            if let Some(magazine) = depot.magazines.pop() {
                depot.free -= magazine.len();
                depot.low = depot.low.min(depot.free);
                return magazine;
            }
        }
        let chunk = map_chunk();
        let size = self.slot.size();
        let per_chunk = self.per_chunk();
        // Each magazine hands out its lowest address first, and the lowest magazine goes
        // first, so consecutive allocations ascend through the chunk.
        let mut magazines: Vec<Vec<Slot>> = (0..per_chunk)
            .step_by(MAGAZINE)
            .rev()
            .map(|first| {
                let mut magazine = magazine();
                magazine.extend((first..per_chunk.min(first + MAGAZINE)).rev().map(|i| {
                    // SAFETY: slot `i` lies inside the chunk just mapped, which is not
                    // at address zero.
                    Slot(unsafe { NonNull::new_unchecked((chunk + i * size) as *mut u8) })
                }));
                magazine
            })
            .collect();
        let mine = magazines
            .pop()
            .expect("a chunk holds at least one magazine");
        let mut depot = self.depot();
        depot.free += per_chunk - mine.len();
        depot.magazines.append(&mut magazines);
        mine
    }

    /// Free slots in the depot (a snapshot).
    #[cfg(test)]
    pub(crate) fn depot_free(&self) -> usize {
        self.depot().free
    }

    /// Gives a magazine of free slots to the depot.
    fn give_magazine(&self, magazine: Vec<Slot>) {
        let mut depot = self.depot();
        depot.free += magazine.len();
        depot.magazines.push(magazine);
    }

    /// Returns to the system the chunks all of whose slots stayed unused in the depot
    /// since the last trim, beyond a reserve of [`KEEP`] slots; does nothing if the last
    /// trim was less than [`TRIM_AFTER`] before `now`. Called by workers about to sleep.
    pub(crate) fn trim_at(&self, now: Instant) {
        let mut depot = self.depot();
        let too_soon = depot
            .trimmed
            .is_some_and(|last| now.saturating_duration_since(last) < TRIM_AFTER);
        if depot.trimming || too_soon {
            return;
        }
        depot.trimmed = Some(now);
        // The bottom magazines holding at most `excess` slots: unused since the last look.
        // (`low` is zero until the first look, which so only starts the period.)
        let excess = depot.low.saturating_sub(KEEP);
        depot.low = depot.free;
        let mut old = 0;
        let mut taken = 0;
        for magazine in &depot.magazines {
            if taken + magazine.len() > excess {
                break;
            }
            taken += magazine.len();
            old += 1;
        }
        if old == 0 {
            return;
        }
        let unused: Vec<Vec<Slot>> = depot.magazines.drain(..old).collect();
        depot.free -= taken;
        depot.low -= taken;
        depot.trimming = true;
        drop(depot);

        let per_chunk = self.per_chunk();
        let mut free_in: HashMap<usize, usize> = HashMap::new();
        for slot in unused.iter().flatten() {
            *free_in.entry(slot.chunk()).or_default() += 1;
        }
        free_in.retain(|_, free| *free == per_chunk);
        let mut kept = Vec::new();
        let mut current = magazine();
        for slot in unused.into_iter().flatten() {
            if free_in.contains_key(&slot.chunk()) {
                continue;
            }
            current.push(slot);
            if current.len() == MAGAZINE {
                kept.push(std::mem::replace(&mut current, magazine()));
            }
        }
        if !current.is_empty() {
            kept.push(current);
        }
        for &chunk in free_in.keys() {
            // SAFETY: every slot of the chunk was free and has just been dropped from the
            // only list that held it, so nothing refers to the chunk any more; it was mapped
            // by `map_chunk` with this size.
            unsafe { libc::munmap(chunk as *mut libc::c_void, CHUNK) };
        }

        // The rest go back to the bottom, still the oldest.
        let mut depot = self.depot();
        let kept_free: usize = kept.iter().map(Vec::len).sum();
        depot.free += kept_free;
        depot.low += kept_free;
        depot.magazines.splice(..0, kept);
        depot.trimming = false;
    }
}

/// Maps a chunk aligned to its size; aborts like the global allocator when memory is
/// exhausted.
fn map_chunk() -> usize {
    // Map twice the size, then unmap the ends so that what is left is aligned.
    // SAFETY: an anonymous private mapping at an address of the kernel's choice affects
    // no existing memory.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * CHUNK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        std::alloc::handle_alloc_error(Layout::from_size_align(CHUNK, CHUNK).expect("valid"));
    }
    let raw = raw as usize;
    let start = (raw + CHUNK - 1) & !(CHUNK - 1);
    // SAFETY: both ranges lie inside the mapping just made and outside the chunk kept,
    // and are page aligned (the mapping is, and `CHUNK` is a multiple of the page size).
    unsafe {
        if start > raw {
            libc::munmap(raw as *mut libc::c_void, start - raw);
        }
        let end = start + CHUNK;
        if raw + 2 * CHUNK > end {
            libc::munmap(end as *mut libc::c_void, raw + 2 * CHUNK - end);
        }
    }
    start
}

/// One OS thread's free slots of one slab.
struct Cache {
    slab: &'static Slab,
    slots: Vec<Slot>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        if !self.slots.is_empty() {
            self.slab.give_magazine(std::mem::take(&mut self.slots));
        }
    }
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

impl Slab {
    /// A slot for a value of the slab's layout, uninitialised.
    ///
    /// Never inlined, like every access to a thread-local in the runtime (see
    /// `sched::current`): called from a green thread, an inlined copy could keep the cache's
    /// address across a switch, and a runtime that migrates started threads may resume the
    /// thread on another OS thread.
    #[inline(never)]
    pub(crate) fn alloc(&'static self) -> NonNull<u8> {
        let cached = CACHE.try_with(|cache| {
            let mut cache = cache.borrow_mut();
            Some(self.pop(&mut self.claim(&mut cache)?.slots))
        });
        cached.ok().flatten().unwrap_or_else(|| {
            // This OS thread is exiting and its cache is gone, or the cache serves another
            // slab: go to the depot directly.
            let mut slots = Vec::new();
            let slot = self.pop(&mut slots);
            if !slots.is_empty() {
                self.give_magazine(slots);
            }
            slot
        })
    }

    /// Takes a slot from `slots`, refilled from the depot when empty.
    fn pop(&self, slots: &mut Vec<Slot>) -> NonNull<u8> {
        if slots.is_empty() {
            *slots = self.take_magazine();
        }
        slots.pop().expect("a magazine is never empty").0
    }

    /// This OS thread's cache, if it serves this slab (the first slab a thread uses
    /// claims its cache; the runtime has one slab, task records).
    fn claim<'c>(&'static self, cache: &'c mut Option<Cache>) -> Option<&'c mut Cache> {
        let cache = cache.get_or_insert_with(|| Cache {
            slab: self,
            slots: Vec::new(),
        });
        std::ptr::eq(cache.slab, self).then_some(cache)
    }

    /// Returns a slot to the slab.
    ///
    /// # Safety
    ///
    /// `slot` came from this slab's [`Slab::alloc`], is not in use (any value in it was
    /// dropped or moved out), and is freed once.
    #[inline(never)] // As `alloc`.
    pub(crate) unsafe fn free(&'static self, slot: NonNull<u8>) {
        let spilled = CACHE.try_with(|cache| {
            let mut cache = cache.borrow_mut();
            let cache = self.claim(&mut cache)?;
            cache.slots.push(Slot(slot));
            // Spill the slots freed longest ago; the recent ones are likelier in the cache.
            Some((cache.slots.len() >= 2 * MAGAZINE).then(|| {
                let mut spilled = magazine();
                spilled.extend(cache.slots.drain(..MAGAZINE));
                spilled
            }))
        });
        match spilled {
            Ok(Some(None)) => {}
            Ok(Some(Some(magazine))) => self.give_magazine(magazine),
            Ok(None) | Err(_) => self.give_magazine(vec![Slot(slot)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_aligned_and_reused() {
        static SLAB: Slab = Slab::new(Layout::new::<[u64; 36]>());
        let slots: Vec<_> = (0..3 * MAGAZINE).map(|_| SLAB.alloc()).collect();
        let mut addresses: Vec<usize> = slots.iter().map(|s| s.as_ptr() as usize).collect();
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), slots.len(), "no slot handed out twice");
        for slot in &slots {
            assert_eq!(slot.as_ptr() as usize % 8, 0);
            // SAFETY: the slot is ours and large enough.
            unsafe { slot.as_ptr().cast::<[u64; 36]>().write([7; 36]) };
        }
        let last = *slots.last().unwrap();
        for slot in slots {
            // SAFETY: allocated above, freed once.
            unsafe { SLAB.free(slot) };
        }
        assert_eq!(SLAB.alloc(), last, "the last freed slot comes back first");
    }

    #[test]
    fn slots_freed_on_other_threads_come_back_and_idle_chunks_are_unmapped() {
        static SLAB: Slab = Slab::new(Layout::new::<[u64; 36]>());
        let start = Instant::now();
        SLAB.trim_at(start);
        // Allocate far more than the reserve on one thread and free them on two others.
        let count = 4 * KEEP;
        let slots: Vec<usize> = (0..count).map(|_| SLAB.alloc().as_ptr() as usize).collect();
        let halves: Vec<Vec<usize>> = slots.chunks(count / 2).map(<[_]>::to_vec).collect();
        let threads: Vec<_> = halves
            .into_iter()
            .map(|half| {
                std::thread::spawn(move || {
                    for slot in half {
                        // SAFETY: allocated above, freed once.
                        unsafe { SLAB.free(NonNull::new(slot as *mut u8).unwrap()) };
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // The exited threads gave their caches back: every slot is in the depot, with the
        // rest of the last chunk mapped.
        let freed = SLAB.depot().free;
        assert!(
            freed >= count && freed < count + SLAB.per_chunk(),
            "every slot freed comes back: {freed} of {count}"
        );

        SLAB.trim_at(start + TRIM_AFTER / 2);
        assert_eq!(SLAB.depot().free, freed, "too soon to trim");
        // The depot was empty at the last look: nothing stayed unused for a whole period.
        SLAB.trim_at(start + TRIM_AFTER);
        assert_eq!(SLAB.depot().free, freed);
        SLAB.trim_at(start + 2 * TRIM_AFTER);
        let kept = SLAB.depot().free;
        // The reserve stays, with the other free slots of the chunks it touches (the two
        // threads' last frees and the rest of the last chunk mapped: a few chunks).
        assert!(
            kept >= KEEP && kept <= freed / 2,
            "the reserve and the slots of partly used chunks stay: {kept} of {freed}"
        );

        // What is left still serves allocations.
        let slot = SLAB.alloc();
        // SAFETY: the slot is ours and large enough.
        unsafe { slot.as_ptr().cast::<[u64; 36]>().write([1; 36]) };
        // SAFETY: allocated above, freed once.
        unsafe { SLAB.free(slot) };
    }
}
