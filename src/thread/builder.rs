//! Configuring a green thread before it starts.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use super::join_handle::{JoinHandle, Packet};
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

    /// Names the thread; the name shows in [`Thread::name`] and in the stack overflow
    /// message.
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
        let packet = Arc::new(Packet::with_scope(scope));
        let their_packet = Arc::clone(&packet);
        let main: Box<dyn FnOnce() + Send + 'a> = Box::new(move || {
            // The panic is caught here, at the thread's entry, so the worker goes on and
            // `join` hands the payload to the joiner.
            let mut result = panic::catch_unwind(AssertUnwindSafe(f));
            // Green-thread locals are dropped before `join` can return, as std's
            // thread-locals are; a panicking destructor becomes the thread's panic.
            if let Err(payload) = panic::catch_unwind(crate::local::destroy_current) {
                if result.is_ok() {
                    result = Err(payload);
                }
            }
            their_packet.complete(result);
            // `their_packet` is dropped here, the thread's last use of anything borrowed.
        });
        // SAFETY: only the lifetime changes; the caller guarantees that what `main`
        // borrows outlives its run and the packet's drop.
        let main: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(main) };
        let name = self.name.map(String::into_boxed_str);
        let join: Arc<dyn super::CancelJoin + 'a> = Arc::clone(&packet) as _;
        // SAFETY: as for `main`: the packet outlives nothing it borrows, by the caller's
        // guarantee, and the task drops this reference when it is dropped.
        let join: Arc<dyn super::CancelJoin> = unsafe { std::mem::transmute(join) };
        let task = sched::spawn(shared, name, self.stack_size, self.pinned, main, join)?;
        Ok(JoinHandle::new(packet, Thread::green(task)))
    }
}
