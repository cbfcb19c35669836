//! How the runtime tells the program about trouble it cannot return as an error: through
//! the `log` facade, with the logger's own failures contained.
//!
//! Reports are made by the runtime's own OS threads (workers, the monitor) as well as by
//! green threads. A logger is the application's code: one that panics must not take a
//! worker or the monitor down with it (the runtime would never shut down). So every report
//! calls the logger inside `catch_unwind`; the first time the logger panics, greenring says
//! so once on standard error and from then on writes its reports there instead, without
//! calling the logger again.

use std::fmt;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the logger panicked: reports go to standard error from then on.
static LOGGER_PANICKED: AtomicBool = AtomicBool::new(false);

/// The `log` target of every report.
const TARGET: &str = "greenring";

/// Reports `message` at `level`.
pub(crate) fn report(level: log::Level, message: fmt::Arguments<'_>) {
    if !LOGGER_PANICKED.load(Ordering::Relaxed) {
        let logged = panic::catch_unwind(AssertUnwindSafe(|| {
            log::log!(target: TARGET, level, "{message}");
        }));
        match logged {
            Ok(()) => return,
            Err(payload) => {
                // The payload is the logger's too: its destructor may panic as well.
                std::mem::forget(payload);
                if !LOGGER_PANICKED.swap(true, Ordering::Relaxed) {
                    to_stderr(format_args!(
                        "greenring: the `log` logger panicked while greenring reported to it; \
                         greenring writes its reports to standard error from now on"
                    ));
                }
            }
        }
    }
    if log::max_level() >= level {
        to_stderr(format_args!("[{level}] {message}"));
    }
}

/// Reports `message` at `level` through `log` when a logger takes that level (see
/// [`report`]); otherwise, if `once` is still clear, sets it and writes the message to
/// standard error, so that a program without a logger still hears of the first such
/// trouble (a stalled worker, a suspected deadlock) once.
pub(crate) fn heard_once(level: log::Level, once: &AtomicBool, message: fmt::Arguments<'_>) {
    if log::max_level() >= level {
        report(level, message);
    } else if !once.swap(true, Ordering::Relaxed) {
        to_stderr(format_args!(
            "[{level}] {message} (greenring writes the first report of this kind to standard \
             error because no `log` logger takes it; install one to see every report)"
        ));
    }
}

/// Reports an error (see [`report`]).
pub(crate) fn error(message: fmt::Arguments<'_>) {
    report(log::Level::Error, message);
}

/// Reports a warning (see [`report`]).
pub(crate) fn warn(message: fmt::Arguments<'_>) {
    report(log::Level::Warn, message);
}

/// Reports a debugging detail (see [`report`]).
pub(crate) fn debug(message: fmt::Arguments<'_>) {
    report(log::Level::Debug, message);
}

/// Writes one line to standard error, ignoring failures (there is nowhere else to go).
fn to_stderr(message: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// Runs `drop_it`, a destructor of the program's, on one of the runtime's own threads;
/// a panic in it is reported once as an error naming `what` and dropped, so the thread
/// goes on (its payload is leaked: its own destructor may panic too).
pub(crate) fn contain_drop(what: impl FnOnce() -> String, drop_it: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(drop_it)) {
        std::mem::forget(payload);
        error(format_args!(
            "greenring: {} panicked when dropped; the panic was caught and dropped",
            what()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logger that panics on every record.
    struct Panicking;

    impl log::Log for Panicking {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, _: &log::Record<'_>) {
            panic!("the logger panics");
        }

        fn flush(&self) {}
    }

    /// A destructor that panics.
    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("the destructor panics");
        }
    }

    #[test]
    fn a_panicking_destructor_is_contained() {
        let bomb = Bomb;
        contain_drop(|| "a test value".to_owned(), move || drop(bomb));
    }

    // The logger is process-wide and the unit tests share a process: only this test sets
    // one, and only a panicking one (every other report then goes to standard error).
    #[test]
    fn a_panicking_logger_is_contained_and_reports_go_to_stderr() {
        static LOGGER: Panicking = Panicking;
        if log::set_logger(&LOGGER).is_err() {
            return;
        }
        log::set_max_level(log::LevelFilter::Warn);
        warn(format_args!("first report"));
        assert!(LOGGER_PANICKED.load(Ordering::Relaxed));
        warn(format_args!("second report, straight to stderr"));
    }
}
