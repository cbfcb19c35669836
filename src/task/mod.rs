//! The runtime's record of one green thread.
//!
//! # Who may touch what
//!
//! - `id`, `name`, `runtime`, `pinned`, `stack_size`: immutable after creation, read by
//!   anyone.
//! - `park`: the park word, atomic; see [`park`].
//! - `home`: written once, by the worker that first runs the thread, before anyone else can
//!   see it started; read by whoever schedules the thread.
//! - `context`, `stack`, `suspended_for`, `calls`, and the running of `main`: only
//!   by the one party that currently owns the *run* of the thread: the worker running it
//!   (and the thread itself, on that worker), or the spawner before the first schedule.
//!   Ownership passes through the run queues and through the park word, both of which
//!   synchronise (release/acquire).
//! - `registry_slot`: under the lock of the registry of the thread's home worker.
//! - `wait`: written by the thread itself around its switches, read by anyone (see
//!   [`wait`]).
//! - `bounds`: written once, by the worker that first runs the thread, when it gives the
//!   thread its stack (before the thread is registered or runs), and never again; read by
//!   the thread's own OS thread (the stack overflow handler) and through its worker's
//!   registry, whose lock publishes it. The stack's memory itself belongs to the owner of
//!   the run (the dump reads a suspended thread's stack only on its home worker, between
//!   runs).
//!
//! # Stacks are given at the first run
//!
//! A spawned thread gets its stack from the worker that first runs it, not from its
//! spawner. A fan-out that spawns 10,000 threads and joins them thus runs them one after
//! another on a few stacks still hot in the cache, instead of writing 10,000 stacks at
//! spawn and reading each back, cold, at its first run (measured: the two cache misses
//! were about a third of a spawn and join). A thread that is never run (its runtime gave up
//! on it) never holds a stack.

pub(crate) mod current;
mod id;
mod locals;
mod park;
pub(crate) mod point;
mod refs;
mod slab;
pub(crate) mod wait;

pub use self::id::ThreadId;
pub(crate) use self::locals::LocalMap;
pub(crate) use self::park::Unparked;
pub use self::point::Cancelled;
pub(crate) use self::refs::{trim_records, TaskRef, WeakTaskRef};

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use self::park::ParkWord;

use crate::context::Context;
use crate::stack::Stack;

/// What a green thread needs of the runtime it belongs to. The scheduler implements it
/// (`sched::Shared`); the task never names the scheduler (tokio's `Schedule` shape).
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Makes `task` runnable from outside its worker's loop (an unpark from another
    /// worker or an OS thread, a blocking-pool job): on its home worker if it is bound to
    /// one, anywhere otherwise.
    fn schedule(&self, task: TaskRef);

    /// The runtime's shutdown flag, set once when it shuts down: from then on every
    /// blocking point unwinds (see [`point::cancel_point`]). Read once, when a task is
    /// created; the task keeps a pointer to it, so the check at every blocking point is one
    /// load, not a call through this trait.
    fn shutdown_flag(&self) -> &AtomicBool;

    /// `true` when started threads may change worker (the `unsafe` opt-in of
    /// `runtime::Builder::migrate_started_threads`). Read once, when a task is created.
    fn migrates(&self) -> bool;

    /// The scheduler as `Any`, so the scheduler's own code can get its type back.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// Why a running green thread switched back to its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// `yield_now`: run again later.
    Yield,
    /// `park`: run again when unparked.
    Park,
    /// Waiting for io_uring completions: the in-flight op owns the run reference (see
    /// `reactor`), and only its last CQE makes the thread runnable again.
    Io,
    /// Sleeping: the worker's timer heap owns the run reference (see `sched::timers`).
    Timer,
}

/// What a green thread runs and whom it reports to: the spawn's closure together with the
/// join side its result goes to (one allocation per spawn, see `thread::builder`). The task
/// knows only this trait, not the thread API above it.
pub(crate) trait Main: Send + Sync {
    /// Runs the closure and completes the join with its result or panic.
    ///
    /// # Safety
    ///
    /// Called at most once, by the green thread itself, on its own stack.
    unsafe fn run(&self);

    /// Completes the join with `payload` as the thread's panic (it could not start),
    /// unless the thread already completed it.
    fn fail(&self, payload: Box<dyn std::any::Any + Send>);

    /// Completes the join with a [`Cancelled`] payload (the runtime gives up on the
    /// thread), unless the thread already completed it.
    fn cancel(&self) {
        self.fail(Box::new(Cancelled));
    }
}

/// One green thread.
pub(crate) struct Task {
    pub(crate) id: ThreadId,
    pub(crate) name: Option<Box<str>>,
    /// The runtime the thread belongs to (and is scheduled on when woken from outside).
    pub(crate) runtime: Arc<dyn Schedule>,
    /// The runtime's shutdown flag ([`Schedule::shutdown_flag`]), which `runtime` keeps
    /// alive.
    shutdown: NonNull<AtomicBool>,
    /// Bound to the worker that first runs it: its runtime does not migrate started
    /// threads ([`Schedule::migrates`]).
    anchored: bool,
    park: ParkWord,
    context: Context,
    stack: UnsafeCell<Option<Stack>>,
    /// What the thread runs, and the join side it completes. Dropped by hand, in `Drop`: it
    /// holds the program's values (a closure that never ran), whose destructors must not
    /// unwind into whoever releases the task (often a worker).
    main: ManuallyDrop<Arc<dyn Main>>,
    suspended_for: Cell<Suspend>,
    /// Never stolen, not even before it first runs.
    pinned: bool,
    /// The worker that first ran the thread, [`NO_HOME`] until then. The thread is anchored
    /// there for life (unless its runtime migrates started threads, see [`Task::home`]).
    home: AtomicUsize,
    /// Whether the monitor's stall report about this thread was logged.
    stall_reported: AtomicBool,
    /// Calls made since the thread last suspended (see `sched::count_call`); only the
    /// thread itself touches it.
    calls: Cell<u32>,
    /// Index of this thread in its home worker's registry (see `sched::registry`).
    pub(crate) registry_slot: AtomicUsize,
    /// The thread's green-thread-local values (`crate::local`); only the thread itself
    /// touches them.
    pub(crate) locals: LocalMap,
    /// What the thread waits for, or last waited for (see [`wait`]).
    pub(crate) wait: wait::WaitRecord,
    /// The usable size of the stack the thread gets at its first run.
    stack_size: usize,
    /// The usable stack, `[lowest address, top)`, both page aligned; zero until the thread
    /// has a stack.
    bounds: [AtomicUsize; 2],
}

/// `home` of a thread that has not run yet.
const NO_HOME: usize = usize::MAX;
/// `registry_slot` of a thread in no registry.
pub(crate) const NO_SLOT: usize = usize::MAX;

// SAFETY: the non-Sync fields (context, stack, suspended_for, calls) are touched only by
// the owner of the thread's run, one party at a time, with ownership handed over through
// the run queues or the `park` word, which synchronise (see the module documentation). The
// context and stack are plain memory that may be used from any OS thread, and `shutdown`
// points at an atomic of the runtime, which every thread may read.
unsafe impl Sync for Task {}
// SAFETY: as above: nothing in a Task is tied to the OS thread that created it.
unsafe impl Send for Task {}

impl Task {
    /// Creates a green thread that will run `main` on a stack of `stack_size` usable bytes
    /// when first scheduled: on `stack` if one is given, otherwise on one the worker that
    /// first runs it provides ([`Task::needs_stack`], [`Task::give_stack`]). A task only
    /// ever exists in its slot of the task slab, so this returns the first reference to it.
    #[allow(clippy::too_many_arguments, clippy::new_ret_no_self)]
    pub(crate) fn new(
        runtime: Arc<dyn Schedule>,
        id: ThreadId,
        name: Option<Box<str>>,
        stack_size: usize,
        stack: Option<Stack>,
        pinned: bool,
        main: Arc<dyn Main>,
    ) -> TaskRef {
        let shutdown = NonNull::from(runtime.shutdown_flag());
        let anchored = !runtime.migrates();
        let task = TaskRef::new_with(|| Task {
            id,
            name,
            runtime,
            shutdown,
            anchored,
            park: ParkWord::new(),
            context: Context::new(),
            stack: UnsafeCell::new(None),
            main: ManuallyDrop::new(main),
            suspended_for: Cell::new(Suspend::Yield),
            pinned,
            home: AtomicUsize::new(NO_HOME),
            stall_reported: AtomicBool::new(false),
            calls: Cell::new(0),
            registry_slot: AtomicUsize::new(NO_SLOT),
            locals: LocalMap::default(),
            wait: wait::WaitRecord::new(),
            stack_size,
            bounds: [AtomicUsize::new(0), AtomicUsize::new(0)],
        });
        if let Some(stack) = stack {
            // SAFETY: the new task is not shared with anyone yet, so its creator owns its
            // run, and it has no stack.
            unsafe { task.give_stack(stack) };
        }
        task
    }

    /// `true` once the thread's runtime shuts down (see [`point::cancel_point`]).
    #[inline]
    pub(crate) fn is_shutting_down(&self) -> bool {
        // SAFETY: the flag lives in the runtime, which `self.runtime` keeps alive.
        unsafe { self.shutdown.as_ref() }.load(Ordering::SeqCst)
    }

    /// The usable stack size the thread was spawned with.
    pub(crate) fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// `true` until the thread has been given its stack. Only meaningful to the owner of
    /// its run, before the thread's first run.
    pub(crate) fn needs_stack(&self) -> bool {
        // SAFETY: the caller owns the run, so nothing else touches the slot.
        unsafe { (*self.stack.get()).is_none() }
    }

    /// Gives the thread the stack it will run on and prepares its first frame there.
    ///
    /// # Safety
    ///
    /// The caller owns the thread's run, the thread has never run, and it has no stack yet.
    pub(crate) unsafe fn give_stack(&self, stack: Stack) {
        // The whole usable memory, page aligned at both ends (the thread's first frame
        // starts a little below its top, see `Stack::top`).
        let lowest = stack.limit();
        self.bounds[0].store(lowest, Ordering::Relaxed);
        self.bounds[1].store(lowest + stack.usable_size(), Ordering::Relaxed);
        let arg = (self as *const Task).cast_mut().cast::<u8>();
        // SAFETY: the caller owns the run, so nothing else touches the slot.
        let stack = unsafe { (*self.stack.get()).insert(stack) };
        // SAFETY: the Context lives inside the task's slab slot and never moves; the stack
        // stays in the task until the thread finishes (retire) or is leaked (Drop);
        // `run_main` gets the Task pointer it expects.
        unsafe { self.context.init(stack, run_main, arg) };
    }

    /// The usable stack, `(lowest address, top)` with the top exclusive, both page aligned;
    /// `None` before the thread has a stack.
    pub(crate) fn stack_range(&self) -> Option<(usize, usize)> {
        let lowest = self.bounds[0].load(Ordering::Relaxed);
        (lowest != 0).then(|| (lowest, self.bounds[1].load(Ordering::Relaxed)))
    }

    /// The guard page below the stack, `(start, end)`; `None` before the thread has a
    /// stack. Async-signal-safe (the stack overflow handler reads it).
    pub(crate) fn guard(&self) -> Option<(usize, usize)> {
        self.stack_range()
            .map(|(lowest, _)| (lowest - crate::stack::page_size(), lowest))
    }

    /// Runs the thread until it suspends or finishes; returns `true` when it finished.
    ///
    /// # Safety
    ///
    /// The caller owns the thread's run (took it from a queue or a park hand-off), runs it
    /// on this OS thread, and has not seen it finish.
    pub(crate) unsafe fn resume(&self) -> bool {
        // SAFETY: forwarded: we own the run, so nobody else resumes it concurrently.
        unsafe { self.context.resume() }
    }

    /// `true` for a thread spawned pinned.
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// The worker the thread must run on when woken, if it is bound to one: the worker
    /// that first ran it, for every started thread (anchoring), or only for pinned ones when
    /// its runtime migrates started threads. `None` for a thread that may run anywhere.
    pub(crate) fn home(&self) -> Option<usize> {
        self.first_worker().filter(|_| self.pinned || self.anchored)
    }

    /// `true` for a thread that must run on one worker: started (see [`Task::home`]) or
    /// pinned. Such a thread never waits in a queue other workers take from.
    pub(crate) fn is_bound(&self) -> bool {
        self.pinned || self.home().is_some()
    }

    /// The worker that first ran the thread, whatever its runtime's policy; `None` before
    /// its first run.
    pub(crate) fn first_worker(&self) -> Option<usize> {
        match self.home.load(Ordering::Acquire) {
            NO_HOME => None,
            home => Some(home),
        }
    }

    /// Records `worker` as the thread's home when it first runs there; `true` on that first
    /// run. Called by the owner of the run, on `worker`.
    pub(crate) fn start_on(&self, worker: usize) -> bool {
        if self.home.load(Ordering::Relaxed) != NO_HOME {
            return false;
        }
        // Release: whoever later reads the home through a wake-up sees it with the rest of
        // the thread's state.
        self.home.store(worker, Ordering::Release);
        true
    }

    /// The thread's name in quotes, or its id: how reports refer to it.
    pub(crate) fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("'{name}'"),
            None => format!("{:?}", self.id),
        }
    }

    /// Marks the stall report as logged; `true` if it already was.
    pub(crate) fn stall_reported(&self) -> bool {
        self.stall_reported.swap(true, Ordering::Relaxed)
    }

    /// Why the thread last suspended. Only meaningful to the owner of its run.
    pub(crate) fn suspended_for(&self) -> Suspend {
        self.suspended_for.get()
    }

    /// Counts a call (see `sched::count_call`) of the running thread; `false` for the
    /// `budget`-th since it last suspended, so it should let the worker's other threads
    /// run.
    #[inline]
    pub(crate) fn count_call(&self, budget: u32) -> bool {
        let count = self.calls.get() + 1;
        // Starts again at the budget's end too, for a thread whose yield does not suspend
        // (one that unwinds).
        self.calls.set(if count < budget { count } else { 0 });
        count < budget
    }

    /// Switches from this (running) thread back to its worker, recording why.
    ///
    /// # Safety
    ///
    /// Must be called by the thread itself, on its own stack.
    pub(crate) unsafe fn suspend(&self, why: Suspend) {
        self.calls.set(0);
        self.suspended_for.set(why);
        self.wait.suspending(why);
        // SAFETY: forwarded from the caller.
        unsafe { self.context.suspend() }
    }

    /// Runs `f(arg)` with unwind information that continues into this suspended thread's
    /// frames, so an unwinder started in `f` walks the thread's stack as if the thread had
    /// called `f` where it switched away: on the calling OS thread's stack with greenring's
    /// own switch (reading the thread's stack only), inside the thread's switch with
    /// corosensei's (below the thread's frames; none of its code runs).
    ///
    /// # Safety
    ///
    /// The caller owns the thread's run (or, for a parked thread, is the only OS thread
    /// that may ever resume it, and does not while this runs), and the thread has started
    /// and not finished. `f` must not unwind.
    pub(crate) unsafe fn probe(&self, f: unsafe extern "C" fn(*mut u8), arg: *mut u8) {
        // SAFETY: forwarded from the caller.
        unsafe { self.context.probe(f, arg) }
    }

    /// Takes the stack of a finished thread, for reuse.
    ///
    /// # Safety
    ///
    /// The caller owns the run and saw `resume` return `true`.
    pub(crate) unsafe fn take_stack(&self) -> Option<Stack> {
        // SAFETY: the thread finished, so nothing runs on or refers to this slot.
        unsafe { (*self.stack.get()).take() }
    }

    /// Ends the thread's join with a panic payload of `message`: the thread could not
    /// start. A no-op once the join is complete.
    pub(crate) fn fail_join(&self, message: String) {
        self.main.fail(Box::new(message));
    }

    /// Ends the thread's join with `Cancelled` (the runtime gives up on the thread); a no-op
    /// once the thread has completed it.
    pub(crate) fn cancel_join(&self) {
        self.main.cancel();
    }

    /// `true` while the thread is parked with nobody having woken it yet.
    pub(crate) fn is_parked(&self) -> bool {
        self.park.is_parked()
    }

    /// Consumes an unpark token if there is one; `true` if there was.
    pub(crate) fn take_token(&self) -> bool {
        self.park.take_token()
    }

    /// Blocks the OS thread running this (unwinding) green thread until it is unparked or
    /// `timeout` passes, instead of switching away (see `park`'s `BLOCKED` state).
    pub(crate) fn block_os(&self, timeout: Option<Duration>) {
        // Recorded for the monitor, which sees the worker stalled meanwhile.
        self.wait.blocking_os();
        self.park.block_os(timeout);
        self.wait.blocked_os();
    }

    /// Called by the worker after the thread switched away with `Suspend::Park`. Either
    /// publishes it as parked, handing the run reference to the park word (`None`), or, when
    /// an unpark arrived during the switch, consumes the token and gives the reference back
    /// to be scheduled again (`Some`).
    pub(crate) fn finish_park(this: TaskRef) -> Option<TaskRef> {
        if this.park.publish_parked() {
            // The park word owns the reference now; `unpark` takes it back.
            std::mem::forget(this);
            None
        } else {
            Some(this)
        }
    }

    /// Makes an unpark token available, or wakes the thread if it is parked. Returns the
    /// run reference to schedule when the thread was parked.
    pub(crate) fn unpark(this: &TaskRef) -> Option<TaskRef> {
        match this.park.unpark() {
            // SAFETY: `finish_park` leaked exactly one reference into the PARKED word, and
            // only the unpark that moved the word out of PARKED (this one) takes it back.
            Unparked::Resume => Some(unsafe { TaskRef::from_raw(TaskRef::as_ptr(this)) }),
            Unparked::Token | Unparked::Woke => None,
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(stack) = self.stack.get_mut().take() {
            // The thread never finished (its runtime gave up on it): its frames may still be
            // referred to from elsewhere, so the stack must never be reused or unmapped; and
            // they refer to what the thread runs (its closure's body and join packet, which
            // a scope waits on), so that is never freed either.
            std::mem::forget(stack);
            // Nobody will finish it: its joiner must not wait forever.
            self.cancel_join();
            return;
        }
        // SAFETY: dropped once, here, and never used again.
        let main = unsafe { ManuallyDrop::take(&mut self.main) };
        // A closure that never ran is dropped with it (a thread cancelled or unable to
        // start): that destructor is the program's, and the last reference to a task is
        // often released by a worker, which must go on. (A result that panics on drop
        // aborts, as std's does: see `thread::Packet`.)
        crate::report::contain_drop(
            || {
                format!(
                    "the closure of green thread {}, which never ran,",
                    self.describe()
                )
            },
            move || drop(main),
        );
    }
}

/// The `Main` of every green thread: runs the closure given at spawn.
///
/// # Safety
///
/// `arg` is the address of the running `Task` (set by `Task::new`).
unsafe fn run_main(arg: *mut u8) {
    // SAFETY: the Task is kept alive by the run reference of whoever resumed us.
    let task = unsafe { &*arg.cast_const().cast::<Task>() };
    // SAFETY: this is the thread's first and only entry, on its own stack.
    unsafe { task.main.run() };
}

#[cfg(test)]
mod tests {
    //! The park state machine, exercised without switching: the thread side is simulated
    //! by calling `take_token` and `finish_park` as the green thread and worker would.
    use super::*;
    use crate::stack::{page_size, StackPool};

    /// A runtime that schedules nothing, for tasks that are never run.
    struct NoRuntime(AtomicBool);

    impl Schedule for NoRuntime {
        fn schedule(&self, _: TaskRef) {}

        fn shutdown_flag(&self) -> &AtomicBool {
            &self.0
        }

        fn migrates(&self) -> bool {
            false
        }

        fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }

    fn no_runtime() -> Arc<dyn Schedule> {
        Arc::new(NoRuntime(AtomicBool::new(false)))
    }

    fn task() -> TaskRef {
        let shared = no_runtime();
        let stack = StackPool::new(4 * page_size())
            .alloc(4 * page_size(), None)
            .unwrap();
        Task::new(
            shared,
            ThreadId::new(),
            None,
            4 * page_size(),
            Some(stack),
            false,
            Arc::new(Nothing),
        )
    }

    /// A thread that is never run.
    struct Nothing;

    impl Main for Nothing {
        unsafe fn run(&self) {}
        fn fail(&self, _: Box<dyn std::any::Any + Send>) {}
    }

    /// A thread whose closure panics when dropped without having run.
    struct PanicsOnDrop;

    impl Main for PanicsOnDrop {
        unsafe fn run(&self) {}
        fn fail(&self, _: Box<dyn std::any::Any + Send>) {}
    }

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("the closure panics when dropped");
        }
    }

    #[test]
    fn releasing_a_task_contains_a_panic_of_its_closures_destructor() {
        let t = Task::new(
            no_runtime(),
            ThreadId::new(),
            None,
            4 * page_size(),
            None,
            false,
            Arc::new(PanicsOnDrop),
        );
        // Whoever releases the last reference (a worker, usually) goes on.
        drop(t);
    }

    #[test]
    fn unpark_before_park_leaves_a_token() {
        let t = task();
        assert!(Task::unpark(&t).is_none());
        assert!(t.take_token(), "park consumes the token without suspending");
        assert!(!t.take_token());
    }

    #[test]
    fn unpark_after_park_hands_back_the_reference() {
        let t = task();
        assert!(Task::finish_park(TaskRef::clone(&t)).is_none());
        assert_eq!(
            TaskRef::strong_count(&t),
            2,
            "the park word holds one reference"
        );
        let woken = Task::unpark(&t).expect("a parked thread is handed back");
        assert!(TaskRef::ptr_eq(&woken, &t));
        drop(woken);
        assert_eq!(TaskRef::strong_count(&t), 1);
        assert!(
            Task::unpark(&t).is_none(),
            "a second unpark only leaves a token"
        );
        assert!(t.take_token());
    }

    #[test]
    fn unpark_during_switch_reschedules() {
        let t = task();
        // The thread saw no token and switched away; an unpark lands before the worker
        // publishes PARKED.
        assert!(Task::unpark(&t).is_none());
        let again = Task::finish_park(TaskRef::clone(&t)).expect("the token wins: run again");
        assert!(TaskRef::ptr_eq(&again, &t));
        assert!(!t.take_token(), "the wake consumed the token");
    }

    #[test]
    fn a_weak_reference_outlives_its_task_and_stays_dead() {
        let t = task();
        let weak = TaskRef::downgrade(&t);
        let again = weak.upgrade().expect("the task is alive");
        assert!(TaskRef::ptr_eq(&again, &t));
        assert_eq!(TaskRef::strong_count(&t), 2);
        drop(again);
        drop(t);
        for _ in 0..3 {
            assert!(weak.upgrade().is_none(), "a dropped task is never revived");
        }
    }

    #[test]
    fn racing_unparks_wake_once() {
        for _ in 0..if cfg!(miri) { 10 } else { 2_000 } {
            let t = task();
            assert!(Task::finish_park(TaskRef::clone(&t)).is_none());
            let wakers: Vec<_> = (0..4)
                .map(|_| {
                    let t = TaskRef::clone(&t);
                    std::thread::spawn(move || Task::unpark(&t).is_some())
                })
                .collect();
            let woken = wakers
                .into_iter()
                .map(|w| w.join().unwrap())
                .filter(|&woke| woke)
                .count();
            assert_eq!(woken, 1, "exactly one unpark takes the parked reference");
        }
    }
}
