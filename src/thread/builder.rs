//! Configuring a green thread before it starts.

use std::cell::UnsafeCell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use super::join_handle::{HoldsPacket, JoinHandle, Packet};
use super::scope::ScopeData;
use super::Thread;
use crate::runtime::{self, Runtime};
use crate::sched;

/// Builds a green thread with a name and a stack size, like [`std::thread::Builder`].
///
/// # Examples
///
/// ```
/// use greenring::thread::Builder;
///
/// let handle = Builder::new()
///     .name("worker".into())
///     .stack_size(256 * 1024)
///     .spawn(|| greenring::thread::current().name().map(str::to_owned))?;
/// assert_eq!(handle.join().unwrap().as_deref(), Some("worker"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "a Builder does nothing until `spawn` is called"]
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    pinned: bool,
}

impl Builder {
    /// A builder with no name and the runtime's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the thread; the name shows in [`Thread::name`], in the stack overflow
    /// message and in panic messages (see the crate's `# Panic messages`).
    ///
    /// # Panics
    ///
    /// As with std, a name with an interior NUL byte makes the spawn panic (the name could
    /// not be handed to C code as a string).
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Sets the usable stack size in bytes, rounded up to whole pages. It must be between
    /// [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE) and [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE);
    /// `spawn` rejects other values. Stacks of the runtime's default size are pooled; other
    /// sizes cost an `mmap` and a `munmap` per thread.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Pins the thread to the worker that first runs it, and keeps it from being placed on
    /// or stolen by another worker before that: spawned from a green thread, it starts on
    /// the spawner's worker. Every started green thread already stays on the worker (and
    /// OS thread) that first ran it, but an ordinary spawn may start on a less loaded
    /// worker; pin a thread that talks a lot with its spawner to keep the two on one CPU.
    /// In a runtime that migrates started threads a pinned thread still never changes
    /// worker (a worker handed to a new OS thread by the monitor keeps its pinned threads,
    /// though not its OS thread).
    ///
    /// ```
    /// let handle = greenring::thread::Builder::new().pinned(true).spawn(|| {
    ///     let home = greenring::runtime::worker_index();
    ///     for _ in 0..100 {
    ///         greenring::yield_now();
    ///         assert_eq!(greenring::runtime::worker_index(), home);
    ///     }
    /// })?;
    /// handle.join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pinned(mut self, pinned: bool) -> Builder {
        self.pinned = pinned;
        self
    }

    /// Spawns the green thread on the current runtime: the one running the caller, or the
    /// default runtime (started on first use) when the caller is not a green thread.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` for a stack size out of range;
    /// - `OutOfMemory` (or the kernel's error) when the stack mapping is refused; the
    ///   message names the limit (RLIMIT_AS, vm.max_map_count) and how to raise it;
    /// - an error when the runtime is shutting down or the default runtime cannot start.
    ///
    /// A thread with the runtime's default stack size takes its stack from the runtime's
    /// pool when it first runs (a fan-out of short threads then reuses a few stacks); the
    /// spawn maps stacks only when the pool has none free, and reports that mapping's
    /// failure here. If the pool runs dry between the spawn and the first run and no new
    /// stack can be mapped then, the thread never runs, and [`JoinHandle::join`] returns
    /// `Err` with a `String` payload naming the cause (it is logged too).
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = runtime::current_shared()?;
        self.spawn_in(&shared, f)
    }

    /// Spawns the green thread on `runtime`.
    ///
    /// # Errors
    ///
    /// As [`Builder::spawn`].
    pub fn spawn_on<F, T>(self, runtime: &Runtime, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_in(runtime.shared(), f)
    }

    fn spawn_in<F, T>(self, shared: &Arc<sched::Shared>, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `f` and `T` are 'static: they borrow nothing.
        unsafe { self.spawn_unchecked(shared, None, f) }
    }

    /// Spawns the green thread on `shared`, as a thread of `scope` when given.
    ///
    /// # Safety
    ///
    /// Whatever `f` and its result borrow ('a) must outlive the thread and its packet: the
    /// caller waits for the packet's drop (a scope does) or `'a` is `'static`.
    pub(crate) unsafe fn spawn_unchecked<'a, F, T>(
        self,
        shared: &Arc<sched::Shared>,
        scope: Option<Arc<ScopeData>>,
        f: F,
    ) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        let body = Arc::new(Body {
            f: UnsafeCell::new(Some(f)),
            packet: Packet::with_scope(scope),
        });
        let main: Arc<dyn crate::task::Main + 'a> = Arc::clone(&body) as _;
        // SAFETY: only the lifetime changes; the caller guarantees that what the closure
        // and its result borrow outlive the thread's run and the packet's drop, and the
        // task drops this reference when it is dropped.
        let main: Arc<dyn crate::task::Main> = unsafe { std::mem::transmute(main) };
        if let Some(name) = &self.name {
            check_name(name);
        }
        let name = self.name.map(String::into_boxed_str);
        let task = sched::spawn(shared, name, self.stack_size, self.pinned, main)?;
        // SAFETY: as for `main`.
        Ok(unsafe { JoinHandle::new(body, Thread::green(task)) })
    }
}

/// Panics, with std's message, for a name std would refuse: one with an interior NUL.
fn check_name(name: &str) {
    if name.as_bytes().contains(&0) {
        let _ =
            std::ffi::CString::new(name).expect("thread name may not contain interior null bytes");
    }
}

/// A spawned green thread's closure and the packet its result goes to, in one allocation:
/// the task runs it ([`Main`](crate::task::Main)) and the handle joins it
/// ([`HoldsPacket`]).
struct Body<F, T> {
    /// The closure, until the thread takes it at its first run. Declared before `packet`
    /// so that a closure never run is dropped first: the packet's drop tells a scope that
    /// the thread no longer borrows from it.
    f: UnsafeCell<Option<F>>,
    packet: Packet<T>,
}

// SAFETY: `f` is taken once, by the thread itself (`Main::run`'s contract), or dropped with
// the body when nothing else refers to it; everything else is the packet's, which is Sync
// for a `T: Send`. `F: Send` because the closure runs on another OS thread than the
// spawner's.
unsafe impl<F: Send, T: Send> Sync for Body<F, T> {}

impl<F, T> crate::task::Main for Body<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    unsafe fn run(&self) {
        // SAFETY: the caller runs this once, on the thread itself: nothing else touches `f`.
        let f = unsafe { (*self.f.get()).take() }.expect("a green thread starts once");
        // The panic is caught here, at the thread's entry, so the worker goes on and
        // `join` hands the payload to the joiner.
        let mut result = panic::catch_unwind(AssertUnwindSafe(|| __rust_begin_short_backtrace(f)));
        // Green-thread locals are dropped before `join` can return, as std's
        // thread-locals are; a panicking destructor becomes the thread's panic.
        if let Err(payload) = panic::catch_unwind(crate::task::current::destroy_locals) {
            if result.is_ok() {
                result = Err(payload);
            }
        }
        self.packet.complete(result);
    }

    fn fail(&self, payload: Box<dyn std::any::Any + Send>) {
        self.packet.complete(Err(payload));
    }
}

/// Runs a green thread's closure. The name is the marker std's backtrace printer looks for
/// (std's own threads start in a function of that name): with `RUST_BACKTRACE=1` a panic's
/// backtrace ends above it, without the runtime's frames.
#[inline(never)]
fn __rust_begin_short_backtrace<F: FnOnce() -> T, T>(f: F) -> T {
    let result = f();
    // Keeps this frame on the stack: the call to `f` is not a tail call.
    std::hint::black_box(());
    result
}

impl<F: Send, T: Send> HoldsPacket<T> for Body<F, T> {
    fn packet(&self) -> &Packet<T> {
        &self.packet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Main;

    /// Records how many threads its scope counted as running when it was dropped.
    struct Borrower {
        scope: Arc<ScopeData>,
        seen: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Drop for Borrower {
        fn drop(&mut self) {
            let running = self.scope.running();
            self.seen
                .store(running, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_closure_never_run_is_dropped_before_its_scope_is_told() {
        let scope = ScopeData::for_tests();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
        let borrower = Borrower {
            scope: Arc::clone(&scope),
            seen: Arc::clone(&seen),
        };
        let body = Body {
            f: UnsafeCell::new(Some(move || drop(borrower))),
            packet: Packet::<()>::with_scope(Some(Arc::clone(&scope))),
        };
        assert_eq!(scope.running(), 1);
        body.cancel();
        drop(body);
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the closure (and what it borrows) goes before the scope may return"
        );
        assert_eq!(scope.running(), 0);
    }
}
