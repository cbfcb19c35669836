//! Waiting for a green thread to finish and taking its result.

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use super::scope::ScopeData;
use super::Thread;

/// Still running, nobody waiting.
const RUNNING: u8 = 0;
/// Still running; the joiner stored its handle in `joiner` and waits for an unpark.
const JOINING: u8 = 1;
/// Finished; `result` is written.
const DONE: u8 = 2;

/// Where a green thread leaves its result for its joiner.
///
/// `result` is written once by the finishing thread before `state` becomes `DONE`
/// (release), and read by the joiner after it sees `DONE` (acquire). `joiner` is written
/// by the joiner before `state` becomes `JOINING` (release), and read by the finishing
/// thread after its swap to `DONE` returned `JOINING` (acquire).
pub(crate) struct Packet<T> {
    state: AtomicU8,
    /// Set by the one party that writes `result`: the finishing thread, or the runtime
    /// cancelling a thread it gives up on (whichever comes first; the other's result is
    /// dropped).
    claimed: AtomicBool,
    result: UnsafeCell<Option<std::thread::Result<T>>>,
    joiner: UnsafeCell<Option<Thread>>,
    /// The task awaiting the handle as a `Future`, woken after `DONE` is published.
    waker: Mutex<Option<Waker>>,
    /// The scope of a scoped thread: told when the packet, and with it the thread's
    /// result, is gone (see [`Packet`]'s `Drop`).
    scope: Option<Arc<ScopeData>>,
}

// SAFETY: access to the cells follows the protocol above, so at most one party touches
// each at a time; the result moves between threads, hence T: Send.
unsafe impl<T: Send> Sync for Packet<T> {}

impl<T> Packet<T> {
    /// A new packet; of a scoped thread when `scope` is given: the scope counts it as running
    /// until the packet is dropped.
    pub(crate) fn with_scope(scope: Option<Arc<ScopeData>>) -> Packet<T> {
        if let Some(scope) = &scope {
            scope.increment_running();
        }
        Packet {
            state: AtomicU8::new(RUNNING),
            claimed: AtomicBool::new(false),
            result: UnsafeCell::new(None),
            joiner: UnsafeCell::new(None),
            waker: Mutex::new(None),
            scope,
        }
    }

    /// Called by the finishing thread, or by the runtime giving up on the thread; only the
    /// first call counts.
    pub(crate) fn complete(&self, result: std::thread::Result<T>) {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: only the claimant writes, and nobody reads before DONE.
        unsafe { *self.result.get() = Some(result) };
        if self.state.swap(DONE, Ordering::AcqRel) == JOINING {
            // SAFETY: the joiner wrote its handle before publishing JOINING and does not
            // touch it again until it sees DONE.
            if let Some(joiner) = unsafe { (*self.joiner.get()).take() } {
                joiner.unpark();
            }
        }
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            // The waker is the awaiting code's: a panic in it must not unwind into the
            // thread's epilogue (which cannot unwind), and the completion is already
            // published, so the panic (reported by the panic hook) is dropped.
            let woken = panic::catch_unwind(AssertUnwindSafe(|| waker.wake()));
            if let Err(payload) = woken {
                crate::report::error(format_args!(
                    "a Waker awaiting a JoinHandle panicked in wake; panic dropped"
                ));
                // A panic in the payload's own drop is caught as well.
                let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            }
        }
    }

    /// The result once the thread is done, else registers `waker` for `complete`.
    fn poll_result(&self, waker: &Waker) -> Poll<std::thread::Result<T>> {
        if !self.is_done() {
            let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
            // Re-checked under the lock `complete` takes after publishing DONE: either we
            // see DONE here, or `complete` finds (and wakes) this waker.
            if !self.is_done() {
                match &mut *slot {
                    Some(current) if current.will_wake(waker) => {}
                    other => *other = Some(waker.clone()),
                }
                return Poll::Pending;
            }
        }
        // SAFETY: DONE was observed with acquire; the result is taken once (a polled-ready
        // future is not polled again, and `join` consumes the handle).
        Poll::Ready(unsafe { (*self.result.get()).take() }.expect("the result is taken once"))
    }

    fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Waits for the result, parking `me` (the calling green or OS thread).
    fn wait(&self, me: Thread) -> std::thread::Result<T> {
        if !self.is_done() {
            // SAFETY: state is RUNNING, so the finishing thread does not read `joiner` yet.
            unsafe { *self.joiner.get() = Some(me) };
            if self
                .state
                .compare_exchange(RUNNING, JOINING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _wait = crate::task::wait::hint(crate::task::wait::JOIN);
                while !self.is_done() {
                    super::park();
                }
            }
        }
        self.wait_done()
    }

    /// Takes the result of a thread seen finished.
    fn wait_done(&self) -> std::thread::Result<T> {
        debug_assert!(self.is_done());
        // SAFETY: DONE was observed with acquire, so the write of `result` is visible and
        // nobody writes it again.
        unsafe { (*self.result.get()).take() }.expect("a finished thread left its result")
    }
}

/// Whatever holds a thread's [`Packet`]: the packet alone (a blocking-pool job), or the
/// spawn's closure and packet in one allocation (a green thread, see `builder`).
pub(crate) trait HoldsPacket<T>: Send + Sync {
    /// The packet.
    fn packet(&self) -> &Packet<T>;
}

impl<T: Send> HoldsPacket<T> for Packet<T> {
    fn packet(&self) -> &Packet<T> {
        self
    }
}

/// A result nobody took (the handle was dropped, or never joined) is dropped with the
/// packet, wherever the last reference goes: often on a worker, at the end of a detached
/// thread. Its destructor is the program's; should it panic, the process aborts with std's
/// message, as std does for its threads (the panic cannot be handed to anyone, and its own
/// payload could panic on drop too).
///
/// The last reference to a scoped thread's packet is dropped once the thread has finished
/// (its task holds one until then, and leaks it if the thread never finishes) and its
/// handle is joined or dropped. Only then is the result, which may borrow from the scope,
/// gone, and the scope told; so a scope that waits for all its packets outlives every use
/// of what its threads borrow.
impl<T> Drop for Packet<T> {
    fn drop(&mut self) {
        let result = self.result.get_mut().take();
        let unhandled_panic = matches!(result, Some(Err(_)));
        if panic::catch_unwind(AssertUnwindSafe(move || drop(result))).is_err() {
            abort_with("thread result panicked on drop");
        }
        if let Some(scope) = self.scope.take() {
            scope.decrement_running(unhandled_panic);
        }
    }
}

/// Aborts the process the way std's runtime does for a fault it cannot recover from.
fn abort_with(message: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "fatal runtime error: {message}, aborting"
    );
    std::process::abort();
}

/// An owned permission to join a green thread, like [`std::thread::JoinHandle`].
///
/// Dropping the handle detaches the thread: it runs on, and its result is dropped.
pub struct JoinHandle<T> {
    holder: Arc<dyn HoldsPacket<T>>,
    thread: Thread,
}

impl<T> JoinHandle<T> {
    /// A handle joining `thread`, whose packet `holder` holds.
    ///
    /// # Safety
    ///
    /// What the thread's closure and result borrow (`'a`) outlives the packet's drop (a
    /// scope waits for it), or `'a` is `'static`.
    pub(crate) unsafe fn new<'a>(
        holder: Arc<dyn HoldsPacket<T> + 'a>,
        thread: Thread,
    ) -> JoinHandle<T> {
        // SAFETY: only the lifetime changes, by the caller's guarantee; the handle gives
        // the packet's result only as a `T`.
        let holder: Arc<dyn HoldsPacket<T>> = unsafe { std::mem::transmute(holder) };
        JoinHandle { holder, thread }
    }

    fn packet(&self) -> &Packet<T> {
        self.holder.packet()
    }

    /// [`JoinHandle::is_finished`] without counting a call (for `Debug`).
    pub(super) fn is_done(&self) -> bool {
        self.packet().is_done()
    }

    /// Waits for the thread to finish and returns its result: `Ok` with the closure's
    /// value, or `Err` with the payload of the panic that ended it.
    ///
    /// From a green thread only the caller waits (its worker runs others); from an OS
    /// thread the OS thread blocks.
    ///
    /// # Panics
    ///
    /// If a green thread tries to join itself (it would wait forever).
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = greenring::spawn(|| panic!("oops"));
    /// let payload = handle.join().unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"oops"));
    /// ```
    pub fn join(self) -> std::thread::Result<T> {
        if self.packet().is_done() {
            return self.packet().wait_done();
        }
        let me = super::current();
        assert!(
            me.id() != self.thread.id(),
            "a green thread cannot join itself: it would wait forever"
        );
        // A green thread waiting for a blocking-pool job is owed a wake-up the runtime
        // cannot see: counted, so a shutdown waits for it instead of giving up on the thread.
        let _owed = self
            .thread
            .is_blocking_job()
            .then(crate::sched::owe_wake)
            .flatten();
        self.packet().wait(me)
    }

    /// The handle of the thread this joins.
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// `true` once the thread has finished running its closure (or panicked). Does not
    /// block, but on a green thread it counts against the cooperative budget as a
    /// `try_` call of [`greenring::sync`](crate::sync) does, so a loop that polls it lets
    /// the thread it waits for run.
    pub fn is_finished(&self) -> bool {
        crate::task::point::count_current_call();
        self.packet().is_done()
    }
}

// As for std's JoinHandle: the packet's cells are only touched by its protocol, never
// left half-written by a panic that a caller could observe.
impl<T> std::panic::UnwindSafe for JoinHandle<T> {}
impl<T> std::panic::RefUnwindSafe for JoinHandle<T> {}

/// Awaiting a `JoinHandle` gives the green thread's result, as `join` does, without
/// blocking: async code can await green threads.
///
/// ```
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let handle = greenring::spawn(|| 6 * 7);
/// assert_eq!(rt.block_on(handle).unwrap(), 42);
/// ```
impl<T> Future for JoinHandle<T> {
    type Output = std::thread::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.packet().poll_result(cx.waker())
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("thread", &self.thread)
            .field("finished", &self.is_done())
            .finish()
    }
}
