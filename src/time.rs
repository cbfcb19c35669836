//! Sleeping, shaped like [`std::thread::sleep`].
//!
//! On a green thread only the green thread waits: it goes into its worker's timer heap, and
//! the worker runs others meanwhile, or sleeps in the kernel until the earliest deadline.
//! Off green threads these block the OS thread, as std does.
//!
//! A duration too long for a timer (`Duration::MAX`, say) means "practically forever", as
//! in std: waits are capped at about 30 years rather than overflowing `Instant` arithmetic
//! or a kernel timespec.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! let start = Instant::now();
//! let sleepers: Vec<_> = (0..1000)
//!     .map(|_| greenring::spawn(|| greenring::time::sleep(Duration::from_millis(20))))
//!     .collect();
//! sleepers.into_iter().for_each(|h| h.join().unwrap());
//! assert!(start.elapsed() >= Duration::from_millis(20));
//! ```

pub use std::time::{
    Duration, Instant, SystemTime, SystemTimeError, TryFromFloatSecsError, UNIX_EPOCH,
};

/// Puts the calling thread to sleep for at least `duration` (a duration of more than about
/// 30 years sleeps that long: practically forever).
///
/// A zero duration yields instead (see [`crate::yield_now`]).
pub fn sleep(duration: Duration) {
    if duration.is_zero() {
        if crate::task::current::with(crate::task::point::yield_now).is_none() {
            std::thread::yield_now();
        }
        return;
    }
    sleep_until(Instant::now() + crate::timeout::saturate(duration));
}

/// Puts the calling thread to sleep until `deadline` (returns at once if it has passed; a
/// deadline more than about 30 years ahead sleeps that long).
pub fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    let deadline = deadline.min(now + crate::timeout::FAR_FUTURE);
    if !crate::driver::sleep_until(deadline) {
        std::thread::sleep(deadline - now);
    }
}
