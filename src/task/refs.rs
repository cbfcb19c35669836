//! References to a task: [`TaskRef`] (owning, like `Arc<Task>`) and [`WeakTaskRef`] (like
//! `Weak<Task>`), counted in the task's slot of the task slab (see [`slab`](super::slab)).
//!
//! The counting follows `Arc`'s: `strong` counts the owning references; `weak` counts the
//! weak ones plus one held by all owning references together. The last owning reference
//! drops the task and gives up that one weak reference; the last weak reference returns
//! the slot. The orderings, step by step:
//!
//! - A new reference is made only from an existing one, which keeps its count above zero
//!   until the new one exists, so the increment needs no ordering (`Relaxed`).
//! - Every holder's uses of the task happen before its decrement (`Release`); the holder
//!   that takes the count to zero issues an `Acquire` fence before dropping or freeing, so
//!   all those uses happen before the drop or the free.
//! - A weak reference upgrades only while `strong` is above zero, with a compare-exchange
//!   (`Acquire` on success), so it can never revive a task being dropped.

use std::alloc::Layout;
use std::ptr::{self, NonNull};

use super::slab::Slab;
use super::Task;
use crate::loom::sync::atomic::{fence, AtomicUsize, Ordering};

/// Counts beyond this abort the process: they can only come from leaked references, and
/// the count must never wrap (`Arc` draws the same line).
const MAX_REFS: usize = isize::MAX as usize;

/// The reference counts of one shared value.
pub(crate) struct Counts {
    strong: AtomicUsize,
    weak: AtomicUsize,
}

impl Counts {
    /// Counts for a value with one owning reference.
    pub(crate) fn new() -> Counts {
        Counts {
            strong: AtomicUsize::new(1),
            weak: AtomicUsize::new(1),
        }
    }

    /// Adds an owning reference; the caller holds one.
    pub(crate) fn add_strong(&self) {
        add(&self.strong);
    }

    /// Gives up an owning reference; `true` when it was the last, and the caller must then
    /// drop the value and call [`Counts::release_weak`].
    pub(crate) fn release_strong(&self) -> bool {
        release(&self.strong)
    }

    /// Adds a weak reference; the caller holds a reference of either kind.
    pub(crate) fn add_weak(&self) {
        add(&self.weak);
    }

    /// Gives up a weak reference; `true` when it was the last, and the caller must then
    /// free the memory.
    pub(crate) fn release_weak(&self) -> bool {
        release(&self.weak)
    }

    /// Adds an owning reference if the value is still alive; the caller holds a weak one.
    pub(crate) fn upgrade(&self) -> bool {
        let mut strong = self.strong.load(Ordering::Relaxed);
        loop {
            if strong == 0 {
                return false;
            }
            if strong > MAX_REFS {
                std::process::abort();
            }
            match self.strong.compare_exchange_weak(
                strong,
                strong + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => strong = now,
            }
        }
    }

    /// The owning references (a snapshot).
    #[cfg(test)]
    pub(crate) fn strong(&self) -> usize {
        self.strong.load(Ordering::Acquire)
    }
}

/// Adds one to a count whose holder keeps it above zero (no ordering needed, see the
/// module documentation).
fn add(count: &AtomicUsize) {
    if count.fetch_add(1, Ordering::Relaxed) > MAX_REFS {
        std::process::abort();
    }
}

/// Takes one from a count; `true` when it reached zero, and then every other holder's
/// uses happen before the caller's next step.
fn release(count: &AtomicUsize) -> bool {
    if count.fetch_sub(1, Ordering::Release) != 1 {
        return false;
    }
    fence(Ordering::Acquire);
    true
}

/// A task and its counts, in one slab slot. The counts come first, in the cache line of
/// the task's first fields, as `Arc` places them: a reference is cloned and dropped next
/// to uses of the task.
#[repr(C, align(64))]
struct TaskSlot {
    counts: Counts,
    task: Task,
}

/// The counts of the task in `slot`; only the counts are borrowed, as the task itself may
/// have been dropped.
///
/// # Safety
///
/// The slot is alive (some reference to it, of either kind, is held) for `'a`.
unsafe fn counts<'a>(slot: NonNull<TaskSlot>) -> &'a Counts {
    // SAFETY: the caller keeps the slot alive; the counts are never dropped before the
    // slot is freed.
    unsafe { &*ptr::addr_of!((*slot.as_ptr()).counts) }
}

/// Where every task's slot comes from.
static TASKS: Slab = Slab::new(Layout::new::<TaskSlot>());

/// Returns to the system the memory of task records unused for a while (see
/// [`Slab::trim_at`]); workers call it before they sleep.
pub(crate) fn trim_records(now: std::time::Instant) {
    TASKS.trim_at(now);
}

/// An owning reference to a task; the task lives while one exists.
pub(crate) struct TaskRef {
    slot: NonNull<TaskSlot>,
}

// SAFETY: a TaskRef gives out `&Task` (Task is Sync), and the last one dropped drops the
// task on whatever OS thread that happens (Task is Send); the counts are atomic.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Makes the task `init` returns in a slot of its own. The slot is taken first and
    /// `init` runs after, so that the record (a few hundred bytes) is written where it
    /// lives rather than built elsewhere and copied in.
    #[inline(always)]
    pub(crate) fn new_with(init: impl FnOnce() -> Task) -> TaskRef {
        let slot = TASKS.alloc().cast::<TaskSlot>();
        // SAFETY: the slab gives an unused slot of TaskSlot's layout; both fields are
        // written before the reference that makes the slot reachable exists. Should `init`
        // panic, the slot stays taken and unreachable (a leak of one record, nothing read).
        unsafe {
            ptr::addr_of_mut!((*slot.as_ptr()).counts).write(Counts::new());
            ptr::addr_of_mut!((*slot.as_ptr()).task).write(init());
        }
        TaskRef { slot }
    }

    fn counts(&self) -> &Counts {
        // SAFETY: the slot lives while this reference does.
        unsafe { counts(self.slot) }
    }

    /// The task's address, without giving up the reference.
    pub(crate) fn as_ptr(this: &TaskRef) -> *const Task {
        // SAFETY: the slot lives while this reference does; no reference to it is made.
        unsafe { ptr::addr_of!((*this.slot.as_ptr()).task) }
    }

    /// Gives up the reference without dropping it: [`TaskRef::from_raw`] takes it back.
    pub(crate) fn into_raw(this: TaskRef) -> *const Task {
        let task = TaskRef::as_ptr(&this);
        std::mem::forget(this);
        task
    }

    /// Takes back an owning reference given up as a pointer: by [`TaskRef::into_raw`], or
    /// by forgetting a reference whose [`TaskRef::as_ptr`] was kept.
    ///
    /// # Safety
    ///
    /// `task` is the `as_ptr` of a task whose owning reference was given up that way, and
    /// that reference is taken back once.
    pub(crate) unsafe fn from_raw(task: *const Task) -> TaskRef {
        let slot = task
            .cast::<u8>()
            .wrapping_sub(std::mem::offset_of!(TaskSlot, task));
        TaskRef {
            // SAFETY: `task` is the address of the task in a live slot, so the slot starts
            // `offset_of!(TaskSlot, task)` bytes below it, and is never null.
            slot: unsafe { NonNull::new_unchecked(slot.cast_mut().cast()) },
        }
    }

    /// A new owning reference to the task at `task`.
    ///
    /// # Safety
    ///
    /// `task` is the [`TaskRef::as_ptr`] of a task some owning reference keeps alive for
    /// the duration of this call.
    pub(crate) unsafe fn clone_raw(task: *const Task) -> TaskRef {
        // SAFETY: the caller guarantees a live owning reference, which this borrows.
        let borrowed = std::mem::ManuallyDrop::new(unsafe { TaskRef::from_raw(task) });
        TaskRef::clone(&borrowed)
    }

    /// `true` when both refer to the same task.
    #[cfg(test)]
    pub(crate) fn ptr_eq(a: &TaskRef, b: &TaskRef) -> bool {
        a.slot == b.slot
    }

    /// A weak reference to the task.
    pub(crate) fn downgrade(this: &TaskRef) -> WeakTaskRef {
        this.counts().add_weak();
        WeakTaskRef { slot: this.slot }
    }

    /// The owning references to the task (a snapshot).
    #[cfg(test)]
    pub(crate) fn strong_count(this: &TaskRef) -> usize {
        this.counts().strong()
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        self.counts().add_strong();
        TaskRef { slot: self.slot }
    }
}

impl std::ops::Deref for TaskRef {
    type Target = Task;

    fn deref(&self) -> &Task {
        // SAFETY: the task lives while an owning reference does.
        unsafe { &(*self.slot.as_ptr()).task }
    }
}

impl Drop for TaskRef {
    #[inline]
    fn drop(&mut self) {
        if self.counts().release_strong() {
            // SAFETY: this was the last owning reference.
            unsafe { drop_task(self.slot) };
        }
    }
}

/// Drops the task in `slot` and gives up the owning references' weak reference: out of
/// line, as `Arc` does, so the common drop stays a decrement.
///
/// # Safety
///
/// The caller gave up the last owning reference (`release_strong` returned `true`).
#[inline(never)]
unsafe fn drop_task(slot: NonNull<TaskSlot>) {
    // SAFETY: the fence in `release_strong` ordered every other holder's use before this;
    // weak references never reach the task once `strong` is zero.
    unsafe { ptr::drop_in_place(ptr::addr_of_mut!((*slot.as_ptr()).task)) };
    // SAFETY: the owning references' weak reference, given up once, by the last of them.
    unsafe { release_weak(slot) };
}

/// Gives up one weak reference to `slot`, returning the slot when it was the last.
///
/// # Safety
///
/// The caller holds that weak reference (or the owning references' one) and gives it up.
unsafe fn release_weak(slot: NonNull<TaskSlot>) {
    // SAFETY: the caller's weak reference keeps the slot until it is given up here.
    if unsafe { counts(slot) }.release_weak() {
        // SAFETY: no reference of either kind is left, and the task was dropped by the
        // last owning one.
        unsafe { TASKS.free(slot.cast()) };
    }
}

/// A weak reference to a task: keeps its slot, not the task, alive.
pub(crate) struct WeakTaskRef {
    slot: NonNull<TaskSlot>,
}

// SAFETY: a WeakTaskRef only gives out owning references, which are Send and Sync.
unsafe impl Send for WeakTaskRef {}
// SAFETY: as above.
unsafe impl Sync for WeakTaskRef {}

impl WeakTaskRef {
    /// An owning reference, if the task is still alive.
    pub(crate) fn upgrade(&self) -> Option<TaskRef> {
        // SAFETY: the slot lives while this weak reference does.
        if unsafe { counts(self.slot) }.upgrade() {
            Some(TaskRef { slot: self.slot })
        } else {
            // (Not `then_some`: it would make a TaskRef, and drop it, even on failure.)
            None
        }
    }
}

impl Drop for WeakTaskRef {
    fn drop(&mut self) {
        // SAFETY: this weak reference is given up once, here.
        unsafe { release_weak(self.slot) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use super::TASKS;
    use crate::Runtime;

    #[test]
    fn records_of_finished_threads_go_back_once_the_runtime_idles() {
        // Enough records (about 19 MB) that other tests running meanwhile cannot hide
        // the difference.
        const THREADS: usize = 60_000;
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let handles: Vec<_> = (0..THREADS).map(|_| rt.spawn(|| ())).collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert!(
            TASKS.depot_free() >= THREADS / 2,
            "the finished threads' records are free: {} in the depot",
            TASKS.depot_free()
        );
        // Idle workers trim at most every 50 ms, returning what stayed unused for a whole
        // period; wait for that, with a deadline instead of a hang.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TASKS.depot_free() >= THREADS / 2 {
            assert!(
                Instant::now() < deadline,
                "idle workers never returned the records: {} free in the depot",
                TASKS.depot_free()
            );
            // Wake a worker now and then, so that it goes back to sleep and trims.
            rt.spawn(|| ()).join().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The counting protocol with owning and weak references released on different
    //! threads: the value is dropped exactly once, after its last use, and the memory is
    //! freed exactly once, after the drop; an upgrade never revives a dropped value.
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    use super::Counts;

    /// A value with its counts, shared by raw references the way a slot is.
    struct Shared {
        counts: Counts,
        value: UnsafeCell<u32>,
        dropped: AtomicBool,
        freed: AtomicBool,
    }

    impl Shared {
        fn use_value(&self) {
            assert!(!self.dropped.load(loom::sync::atomic::Ordering::Relaxed));
            self.value.with(|v| {
                // SAFETY: loom checks this read against the drop's write.
                assert_eq!(unsafe { *v }, 7);
            });
        }

        fn release_strong(&self) {
            if self.counts.release_strong() {
                self.value.with_mut(|v| {
                    // SAFETY: loom checks this write against every use.
                    unsafe { *v = 0 };
                });
                assert!(!self
                    .dropped
                    .swap(true, loom::sync::atomic::Ordering::Relaxed));
                self.release_weak();
            }
        }

        fn release_weak(&self) {
            if self.counts.release_weak() {
                assert!(!self.freed.swap(true, loom::sync::atomic::Ordering::Relaxed));
                self.value.with_mut(|_| ());
            }
        }
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            counts: Counts::new(),
            value: UnsafeCell::new(7),
            dropped: AtomicBool::new(false),
            freed: AtomicBool::new(false),
        })
    }

    #[test]
    fn owning_references_released_on_two_threads_drop_once() {
        loom::model(|| {
            let s = shared();
            s.counts.add_strong();
            let other = {
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    s.use_value();
                    s.release_strong();
                })
            };
            s.use_value();
            s.release_strong();
            other.join().unwrap();
            assert!(s.freed.load(loom::sync::atomic::Ordering::Relaxed));
        });
    }

    #[test]
    fn an_upgrade_racing_the_last_release_never_revives() {
        loom::model(|| {
            let s = shared();
            s.counts.add_weak();
            let weak = {
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    if s.counts.upgrade() {
                        s.use_value();
                        s.release_strong();
                    }
                    s.release_weak();
                })
            };
            s.use_value();
            s.release_strong();
            weak.join().unwrap();
            assert!(s.dropped.load(loom::sync::atomic::Ordering::Relaxed));
            assert!(s.freed.load(loom::sync::atomic::Ordering::Relaxed));
        });
    }
}
