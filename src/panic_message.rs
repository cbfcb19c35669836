//! Panic messages that name the green thread.
//!
//! std's default panic hook names the OS thread that panicked, which for a green thread is
//! its worker (`thread 'greenring-worker-0' (4242) panicked at ...`). So the first
//! [`Runtime::build`](crate::runtime::Builder::build) of the process wraps the panic hook
//! in place then ([`install`]):
//!
//! - If that hook is std's default, a panic on a green thread prints std's message with
//!   the green thread's name ([`Builder::name`](crate::thread::Builder::name), or
//!   `<unnamed>` as std says): std's layout as of Rust 1.95, a blank line, then
//!   `thread '<name>' (<OS thread id>) panicked at <file>:<line>:<column>:`, the message,
//!   and the backtrace or the note about `RUST_BACKTRACE`. The id is the OS thread's, as
//!   std prints it: the worker's, which the green thread never leaves. A panic anywhere
//!   else goes to std's hook unchanged.
//! - Otherwise (the program set a hook of its own before) every panic goes to that hook,
//!   as before.
//!
//! A hook set after the runtime started replaces the wrapper, as any hook replaces the one
//! before it (`take_hook` then returns the wrapper, and `set_hook(take_hook())` keeps it).
//!
//! std cannot say whether a hook is its default, so [`install`] finds out with two
//! `take_hook`s: the first returns the hook in place and puts std's default there, so the
//! second returns a box of std's default. The hook was std's default when the two boxes are
//! the same hook: their fat pointers are equal, address and vtable (std's default is a
//! function item, a zero-sized value, boxed by the same code of std each time; any other
//! hook has another vtable, or lives at another address).
//!
//! Where it differs from std's hook: the backtrace is `std::backtrace::Backtrace`'s,
//! chosen by `RUST_BACKTRACE` as std chooses (unset or `0`: the note, `full`: every frame,
//! anything else: the frames between the panic's machinery and the green thread's entry,
//! as std trims them); std's note is printed at the first green-thread panic of the
//! process, whether or not std printed its own for another thread; a panic during a panic
//! does not force a full backtrace (std's panic count is private); and the message goes
//! straight to the standard error (std's output capture is an unstable API). That last
//! point does not show under `cargo test`: while it captures the tests' output, libtest
//! puts a hook of its own in place, so the wrapper passes every panic to it (and the
//! message names the worker); with `--nocapture` the hook in place is std's default.

use std::backtrace::Backtrace;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, PanicHookInfo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// What `take_hook` returns and `set_hook` takes.
type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Wraps the panic hook in place (see the module documentation), once per process. A
/// thread that is unwinding cannot change the hook (std panics then): its runtime leaves
/// it to the next build.
pub(crate) fn install() {
    static INSTALLED: Once = Once::new();
    if std::thread::panicking() {
        return;
    }
    INSTALLED.call_once(|| {
        let previous = panic::take_hook();
        let default = panic::take_hook();
        let over_default = is_same_hook(&previous, &default);
        drop(default);
        panic::set_hook(Box::new(move |info| {
            if over_default {
                let printed = crate::task::current::with(|task| {
                    print_std_message(task.name.as_deref().unwrap_or("<unnamed>"), info);
                });
                if printed.is_some() {
                    return;
                }
            }
            previous(info);
        }));
    });
}

/// `true` when `a` and `b` are the same hook: the same address and the same vtable.
fn is_same_hook(a: &Hook, b: &Hook) -> bool {
    std::ptr::eq(&**a, &**b)
}

/// How much backtrace std's hook prints, from `RUST_BACKTRACE`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Off,
    Short,
    Full,
}

impl Style {
    /// std's reading of `RUST_BACKTRACE`.
    fn from_env() -> Style {
        match std::env::var_os("RUST_BACKTRACE") {
            None => Style::Off,
            Some(value) if value == "0" => Style::Off,
            Some(value) if value == "full" => Style::Full,
            Some(_) => Style::Short,
        }
    }
}

/// Prints what std's default hook prints for `info`, naming the thread `name`.
fn print_std_message(name: &str, info: &PanicHookInfo<'_>) {
    /// Whether the note about `RUST_BACKTRACE` is still to be printed.
    static FIRST_PANIC: AtomicBool = AtomicBool::new(true);
    let style = Style::from_env();
    // Captured first, so that the trace starts in this function whatever the formatting.
    let backtrace = (style != Style::Off).then(Backtrace::force_capture);
    let message = payload_str(info.payload());
    // SAFETY: gettid takes no argument and touches no memory.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = match info.location() {
        Some(location) => writeln!(
            text,
            "\nthread '{name}' ({tid}) panicked at {location}:\n{message}"
        ),
        None => writeln!(text, "\nthread '{name}' ({tid}) panicked:\n{message}"),
    };
    match (style, backtrace) {
        (Style::Short, Some(backtrace)) => {
            text.push_str("stack backtrace:\n");
            text.push_str(&short_frames(&backtrace.to_string()));
            text.push_str(
                "note: Some details are omitted, run with `RUST_BACKTRACE=full` for a \
                 verbose backtrace.\n",
            );
        }
        (Style::Full, Some(backtrace)) => {
            let _ = writeln!(text, "stack backtrace:\n{backtrace:#}");
        }
        _ => {
            if FIRST_PANIC.swap(false, Ordering::Relaxed) {
                text.push_str(
                    "note: run with `RUST_BACKTRACE=1` environment variable to display a \
                     backtrace\n",
                );
            }
        }
    }
    // As std's hook: one write of the whole message, and a failure to write is ignored (a
    // panic in a panic hook would abort).
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// The message of a panic payload, as std's hook finds it (`PanicHookInfo::payload_as_str`
/// is newer than greenring's MSRV).
fn payload_str(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "Box<dyn Any>"
    }
}

/// The frames of a short backtrace (`Backtrace`'s `Display`, one numbered entry per
/// symbol) that std's hook would print: those after the frame of
/// `__rust_end_short_backtrace` (std's panic machinery and this hook are above it) and
/// before the first of `__rust_begin_short_backtrace` (a green thread's entry, see
/// `thread::builder`), numbered again from 0. All of them when the first marker is missing.
fn short_frames(trace: &str) -> String {
    let mut entries: Vec<Vec<&str>> = Vec::new();
    for line in trace.lines() {
        if entry_number(line).is_some() || entries.is_empty() {
            entries.push(Vec::new());
        }
        entries.last_mut().expect("pushed above").push(line);
    }
    let marks = |entry: &[&str], marker: &str| entry.first().is_some_and(|l| l.contains(marker));
    let start = entries
        .iter()
        .position(|entry| marks(entry, "__rust_end_short_backtrace"))
        .map_or(0, |at| at + 1);
    let end = entries[start..]
        .iter()
        .position(|entry| marks(entry, "__rust_begin_short_backtrace"))
        .map_or(entries.len(), |at| start + at);
    let mut text = String::new();
    for (number, entry) in entries[start..end].iter().enumerate() {
        for (i, line) in entry.iter().enumerate() {
            match entry_number(line) {
                Some(rest) if i == 0 => {
                    let _ = writeln!(text, "{number:4}: {rest}");
                }
                _ => {
                    let _ = writeln!(text, "{line}");
                }
            }
        }
    }
    text
}

/// The text after the number of an entry's first line (`"  12: symbol"`), or `None` for
/// another line.
fn entry_number(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    let digits = trimmed.len()
        - trimmed
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    if digits == 0 {
        return None;
    }
    trimmed[digits..].strip_prefix(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_trace_keeps_the_frames_between_the_markers_numbered_again() {
        let trace = "   0: greenring::panic_message::print_std_message\n\
                     \x20            at src/panic_message.rs:1:1\n\
                     \x20  1: std::sys::backtrace::__rust_end_short_backtrace\n\
                     \x20  2: core::panicking::panic_fmt\n\
                     \x20            at core/src/panicking.rs:80:14\n\
                     \x20  3: app::work\n\
                     \x20  4: greenring::thread::builder::__rust_begin_short_backtrace\n\
                     \x20  5: greenring::task::run_main\n";
        assert_eq!(
            short_frames(trace),
            "   0: core::panicking::panic_fmt\n\
             \x20            at core/src/panicking.rs:80:14\n\
             \x20  1: app::work\n"
        );
    }

    #[test]
    fn a_short_trace_without_markers_is_kept_whole() {
        let trace = "   0: a\n   1: b\n             at b.rs:1:1\n";
        assert_eq!(short_frames(trace), trace);
    }

    #[test]
    fn only_std_s_default_hook_is_taken_for_the_default() {
        // Installed first, so that no runtime built by another test installs it meanwhile;
        // the hook of this test binary's process is left as it was found.
        install();
        let previous = panic::take_hook();
        let default = panic::take_hook();
        let again = panic::take_hook();
        assert!(
            is_same_hook(&default, &again),
            "std boxes its default alike"
        );
        let other: Hook = Box::new(|_| {});
        assert!(!is_same_hook(&default, &other));
        panic::set_hook(previous);
    }
}
