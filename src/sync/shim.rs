//! What the wait-queue protocol takes from the platform: atomics and the list lock (from the
//! crate's one facade, `crate::loom`), and parking of green or OS threads. Under `cfg(loom)` these are loom's models (and a model thread can be cancelled,
//! so that its parks fail as a green thread's unwind at shutdown), so the protocol as
//! written in `sync` (not a copy) is model-checked by `loom_tests`; run them with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib sync::loom_tests`.

#[cfg(not(loom))]
mod imp {
    use std::time::{Duration, Instant};

    /// A thread that can be parked and unparked: a green thread or an OS thread.
    pub(crate) type Thread = crate::thread::Thread;

    pub(crate) fn current() -> Thread {
        crate::thread::current()
    }

    /// Parks; a cancelled green thread unwinds from inside (so this never returns `Err`).
    pub(crate) fn park() -> Result<(), super::Cancelled> {
        crate::thread::park();
        Ok(())
    }

    /// As [`park`], with a timeout.
    pub(crate) fn park_timeout(timeout: Duration) -> Result<(), super::Cancelled> {
        crate::thread::park_timeout(timeout);
        Ok(())
    }

    pub(crate) fn unpark(thread: &Thread) {
        thread.unpark();
    }

    pub(crate) fn timed_out(deadline: Instant) -> bool {
        Instant::now() >= deadline
    }

    pub(crate) fn spin_loop() {
        std::hint::spin_loop();
    }

    /// Counts a call of a primitive against the calling green thread's cooperative budget
    /// (`sched::count_call`, shared with the I/O ops): the budget's last call in a row that
    /// did not park yields, and during its runtime's shutdown unwinds the thread with
    /// `Cancelled` instead. Nothing off green threads, and no switch while unwinding.
    #[inline]
    pub(crate) fn count_call() {
        crate::task::point::count_current_call();
    }

    /// [`count_call`], returning the calling green thread's id (`ThreadId::as_u64`, 0 off
    /// green threads) from the same look-up: what a lock records as its holder.
    #[inline]
    pub(crate) fn count_call_id() -> u64 {
        crate::task::current::with(|task| {
            crate::task::point::count_call(task);
            task.id.as_u64().get()
        })
        .unwrap_or(0)
    }
}

#[cfg(loom)]
mod imp {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{AtomicU8, Ordering};

    /// A model thread with an unpark token of its own, which calls loom's `unpark` only
    /// while the thread sits in `park`: loom's `unpark` of a thread that is blocked on a loom
    /// mutex makes it runnable (and then fail its acquisition), where in the runtime an
    /// unpark that arrives while the thread waits for a list lock only leaves the token.
    #[derive(Clone, Debug)]
    pub(crate) struct Thread {
        thread: loom::thread::Thread,
        token: Arc<AtomicU8>,
    }

    /// Token states: no unpark pending, the thread is in `park`, an unpark is pending.
    const EMPTY: u8 = 0;
    const PARKED: u8 = 1;
    const NOTIFIED: u8 = 2;

    loom::thread_local! {
        static CANCELLED: Cell<bool> = Cell::new(false);
        static TOKEN: Arc<AtomicU8> = Arc::new(AtomicU8::new(EMPTY));
    }

    pub(crate) fn current() -> Thread {
        Thread {
            thread: loom::thread::current(),
            token: TOKEN.with(Arc::clone),
        }
    }

    /// Makes every later park of the calling model thread fail with [`super::Cancelled`],
    /// as a green thread's park unwinds once its runtime shuts down.
    pub(crate) fn cancel_current_thread() {
        CANCELLED.with(|cancelled| cancelled.set(true));
    }

    fn cancel_point() -> Result<(), super::Cancelled> {
        if CANCELLED.with(Cell::get) {
            Err(super::Cancelled)
        } else {
            Ok(())
        }
    }

    pub(crate) fn park() -> Result<(), super::Cancelled> {
        cancel_point()?;
        TOKEN.with(|token| {
            if token
                .compare_exchange(EMPTY, PARKED, Ordering::Acquire, Ordering::Acquire)
                .is_ok()
            {
                loom::thread::park();
            }
            // Consumes the token with a read-modify-write, so the wake-up read is the latest
            // (a plain store could erase an unpark it never synchronised with).
            token.swap(EMPTY, Ordering::Acquire);
        });
        Ok(())
    }

    pub(crate) fn park_timeout(_timeout: Duration) -> Result<(), super::Cancelled> {
        cancel_point()?;
        loom::thread::yield_now();
        Ok(())
    }

    pub(crate) fn unpark(thread: &Thread) {
        if thread.token.swap(NOTIFIED, Ordering::AcqRel) == PARKED {
            thread.thread.unpark();
        }
    }

    /// Loom does not model time: a timed wait gives up after one look, which lets the
    /// model explore every order of "deadline passes" against a notification.
    pub(crate) fn timed_out(_deadline: Instant) -> bool {
        true
    }

    pub(crate) fn spin_loop() {
        loom::thread::yield_now();
    }

    /// Model threads have no cooperative budget (loom explores every interleaving anyway).
    pub(crate) fn count_call() {}

    /// As [`count_call`]; model threads are no green threads (id 0).
    pub(crate) fn count_call_id() -> u64 {
        0
    }
}

pub(crate) use crate::loom::sync::atomic::{fence, AtomicU64, AtomicU8, AtomicUsize, Ordering};
pub(crate) use crate::loom::sync::{Mutex, MutexGuard};
pub(crate) use imp::*;

/// A park that ended by cancellation. In the runtime a cancelled green thread unwinds from
/// inside `park` instead, so only loom's models return it: loom cannot switch threads
/// while one unwinds, so the wait runs its unwind clean-up first and unwinds after.
#[derive(Debug)]
pub(crate) struct Cancelled;

/// A constructor that is `const` except under loom (whose locks cannot be built in const
/// context).
macro_rules! const_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$meta])*
        #[cfg(not(loom))]
        $vis const fn $name($($arg: $ty),*) -> $ret $body

        $(#[$meta])*
        #[cfg(loom)]
        $vis fn $name($($arg: $ty),*) -> $ret $body
    };
}

pub(crate) use const_fn;
