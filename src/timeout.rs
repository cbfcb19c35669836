//! Timeouts as the runtime's timers can hold them: a leaf every layer uses.
//!
//! A duration too long for a timer (`Duration::MAX`, say) means "practically forever", as
//! in std: waits are capped at about 30 years rather than overflowing `Instant` arithmetic
//! or a kernel timespec.

use std::time::{Duration, Instant};

/// The longest a timer of the runtime is armed for: about 30 years. Every wait is capped at
/// it, so deadlines and kernel timespecs computed from a wait stay in range; a longer wait
/// is "practically forever".
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `timeout`, capped at [`FAR_FUTURE`]: what a timer (a deadline, a timespec) can hold.
pub(crate) fn saturate(timeout: Duration) -> Duration {
    timeout.min(FAR_FUTURE)
}

/// The deadline `timeout` from now, or `None` for a timeout of [`FAR_FUTURE`] or more:
/// practically forever, so the caller waits without a timer.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    if timeout >= FAR_FUTURE {
        return None;
    }
    Instant::now().checked_add(timeout)
}
