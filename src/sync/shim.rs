//! What the wait-queue protocol takes from the platform: atomics, the list lock, and
//! parking. Under `cfg(loom)` these are loom's models, so the protocol as written here (not
//! a copy) is model-checked by `loom_tests`; run them with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib sync::loom_tests`.

#[cfg(not(loom))]
mod imp {
    use std::time::{Duration, Instant};

    pub(crate) use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Mutex, MutexGuard};

    /// A thread that can be parked and unparked: a green thread or an OS thread.
    pub(crate) type Thread = crate::thread::Thread;

    pub(crate) fn current() -> Thread {
        crate::thread::current()
    }

    pub(crate) fn park() {
        crate::thread::park();
    }

    pub(crate) fn park_timeout(timeout: Duration) {
        crate::thread::park_timeout(timeout);
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
}

#[cfg(loom)]
mod imp {
    use std::time::{Duration, Instant};

    pub(crate) use loom::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};

    pub(crate) type Thread = loom::thread::Thread;

    pub(crate) fn current() -> Thread {
        loom::thread::current()
    }

    pub(crate) fn park() {
        loom::thread::park();
    }

    pub(crate) fn park_timeout(_timeout: Duration) {
        loom::thread::yield_now();
    }

    pub(crate) fn unpark(thread: &Thread) {
        thread.unpark();
    }

    /// Loom does not model time: a timed wait gives up after one look, which lets the
    /// model explore every order of "deadline passes" against a notification.
    pub(crate) fn timed_out(_deadline: Instant) -> bool {
        true
    }

    pub(crate) fn spin_loop() {
        loom::thread::yield_now();
    }
}

pub(crate) use imp::*;

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
