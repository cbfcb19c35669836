//! Sleeping, shaped like [`std::thread::sleep`].
//!
//! On a green thread a sleep is one io_uring `Timeout` op: only the green thread waits, its
//! worker runs others and sleeps in the kernel until the earliest timer fires. Off green
//! threads these block the OS thread, as std does.
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

pub use std::time::{Duration, Instant};

use crate::reactor::{self, opcode, types::Timespec};

/// Puts the calling thread to sleep for at least `duration`.
///
/// A zero duration yields instead (see [`crate::yield_now`]).
pub fn sleep(duration: Duration) {
    let Some(reactor) = reactor::current() else {
        std::thread::sleep(duration);
        return;
    };
    if duration.is_zero() {
        crate::yield_now();
        return;
    }
    let timespec = Timespec::from(duration);
    // SAFETY: the op points only at `timespec`, which lives until `park_on` returns, and
    // `park_on` returns only after the op's CQE (`-ETIME` when it expired).
    unsafe { reactor::park_on(reactor, opcode::Timeout::new(&timespec).build(), None) };
}

/// Puts the calling thread to sleep until `deadline` (returns at once if it has passed).
pub fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        sleep(deadline - now);
    }
}
