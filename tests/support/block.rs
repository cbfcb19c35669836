//! Blocking a worker's OS thread on purpose, hooks or not.

use std::time::Duration;

/// Sleeps the calling OS thread for `duration` with a raw `nanosleep` system call: on a
/// green thread it blocks the worker (what the monitor's tests need), even with the
/// `hooks` feature, whose `nanosleep` and `clock_nanosleep` would park the green thread
/// instead.
pub fn block_os_thread(duration: Duration) {
    let mut left = libc::timespec {
        tv_sec: duration.as_secs() as libc::time_t,
        tv_nsec: duration.subsec_nanos() as libc::c_long,
    };
    loop {
        let mut rem = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: both timespecs are valid for the call.
        let rc = unsafe { libc::syscall(libc::SYS_nanosleep, &left, &mut rem) };
        if rc == 0 {
            return;
        }
        left = rem;
    }
}
