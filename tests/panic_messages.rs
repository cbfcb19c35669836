//! Panic messages of green threads: std's default hook would name the worker OS thread, so
//! greenring prints std's message with the green thread's name instead, while a panic hook
//! the program set (before the runtime started, or after) keeps receiving every panic. A
//! panic hook belongs to the process, so each case runs in a child process.

mod support;

use greenring::thread::Builder;
use greenring::Runtime;
use support::{is_child, run_child, stderr};

/// The stderr of the child acting out `test`, with `RUST_BACKTRACE` set to `backtrace` (or
/// unset for `None`); the child must have succeeded.
fn child_stderr(test: &str, backtrace: Option<&str>) -> String {
    let setting = backtrace.map(|value| format!("RUST_BACKTRACE={value}"));
    let wrapper: Vec<&str> = match &setting {
        Some(setting) => vec!["env", setting.as_str()],
        None => vec!["env", "-u", "RUST_BACKTRACE"],
    };
    let output = run_child(test, &wrapper);
    let err = stderr(&output);
    assert!(output.status.success(), "the child failed: {err}");
    err
}

/// The one-worker runtime a child panics on. Its stall monitor is off: resolving a
/// backtrace on a loaded machine can keep the worker past the monitor's threshold, and the
/// monitor's warning on stderr would then land inside the report these tests read.
fn child_runtime() -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(None)
        .build()
        .unwrap()
}

/// The panic reports in `err`: each begins with std's blank line and `thread '`.
fn reports(err: &str) -> Vec<&str> {
    err.split("\nthread '").skip(1).collect()
}

/// The report of the thread named `name` (the text after `thread '`).
fn report_of<'a>(err: &'a str, name: &str) -> &'a str {
    let head = format!("{name}' (");
    reports(err)
        .into_iter()
        .find(|report| report.starts_with(&head))
        .unwrap_or_else(|| panic!("no panic report names '{name}':\n{err}"))
}

/// Checks std's first two lines of a report (after `thread '`): `<name>' (<OS thread id>)
/// panicked at <file>:<line>:<column>:` and the message.
fn assert_std_layout(report: &str, name: &str, file: &str, message: &str) {
    let mut lines = report.lines();
    let head = lines.next().expect("a first line");
    let rest = head
        .strip_prefix(&format!("{name}' ("))
        .unwrap_or_else(|| panic!("not named '{name}': {head}"));
    let (tid, rest) = rest.split_once(") panicked at ").expect("std's words");
    assert!(tid.parse::<u32>().is_ok(), "an OS thread id: {head}");
    let location = rest.strip_suffix(':').expect("a colon ends the line");
    let mut parts = location.rsplitn(3, ':');
    let (column, line, path) = (parts.next(), parts.next(), parts.next());
    assert!(column.is_some_and(|c| c.parse::<u32>().is_ok()), "{head}");
    assert!(line.is_some_and(|l| l.parse::<u32>().is_ok()), "{head}");
    assert_eq!(path, Some(file), "{head}");
    assert_eq!(lines.next(), Some(message), "{report}");
}

const NOTE: &str = "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";

/// Panics in a green thread named `name` (or unnamed), on `rt`, and joins it.
fn panic_in_green(rt: &Runtime, name: Option<&str>, message: &'static str) {
    let builder = match name {
        Some(name) => Builder::new().name(name.to_owned()),
        None => Builder::new(),
    };
    let handle = builder
        .spawn_on(rt, move || std::panic::panic_any(message))
        .unwrap();
    assert!(handle.join().is_err());
}

#[test]
fn a_panicking_green_thread_is_named_in_std_layout() {
    if is_child("a_panicking_green_thread_is_named_in_std_layout") {
        let rt = child_runtime();
        panic_in_green(&rt, Some("answerer"), "the named one");
        panic_in_green(&rt, None, "the unnamed one");
        let os = std::thread::Builder::new()
            .name("os-peer".into())
            .spawn(|| std::panic::panic_any("the OS thread"))
            .unwrap();
        assert!(os.join().is_err());
        return;
    }
    let err = child_stderr("a_panicking_green_thread_is_named_in_std_layout", None);
    assert!(!err.contains("greenring-worker"), "{err}");
    let file = "tests/panic_messages.rs";
    let named = report_of(&err, "answerer");
    assert_std_layout(named, "answerer", file, "the named one");
    let unnamed = report_of(&err, "<unnamed>");
    assert_std_layout(unnamed, "<unnamed>", file, "the unnamed one");
    // std's own report of an OS thread, for comparison: the same layout.
    let os = report_of(&err, "os-peer");
    assert_std_layout(os, "os-peer", file, "the OS thread");
    // As std's, the note about backtraces follows the first report only (std keeps its own
    // record for the OS thread's).
    assert!(named.contains(NOTE), "{named}");
    assert!(!unnamed.contains(NOTE), "{unnamed}");
}

#[test]
fn rust_backtrace_gives_a_green_panic_std_s_backtrace() {
    if is_child("rust_backtrace_gives_a_green_panic_std_s_backtrace") {
        let rt = child_runtime();
        panic_in_green(&rt, Some("traced"), "with a backtrace");
        return;
    }
    let test = "rust_backtrace_gives_a_green_panic_std_s_backtrace";
    let err = child_stderr(test, Some("1"));
    let report = report_of(&err, "traced");
    assert_std_layout(
        report,
        "traced",
        "tests/panic_messages.rs",
        "with a backtrace",
    );
    let trace = report
        .split_once("\nstack backtrace:\n")
        .unwrap_or_else(|| panic!("no backtrace: {report}"))
        .1;
    assert!(trace.starts_with("   0: "), "{trace}");
    let short_note =
        "note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.";
    assert_eq!(trace.lines().last(), Some(short_note), "{trace}");
    // Trimmed as std trims: from the panic machinery to the thread's entry.
    for hidden in [
        "greenring::panic_message",
        "rust_panic_with_hook",
        "run_main",
        "catch_unwind",
    ] {
        assert!(!trace.contains(hidden), "{hidden} in {trace}");
    }
    if cfg!(debug_assertions) {
        assert!(trace.contains("panic_messages::panic_in_green"), "{trace}");
    }
    assert!(!report.contains(NOTE), "{report}");

    let err = child_stderr(test, Some("full"));
    let report = report_of(&err, "traced");
    assert!(report.contains("\nstack backtrace:\n"), "{report}");
    assert!(!report.contains("Some details are omitted"), "{report}");

    let err = child_stderr(test, Some("0"));
    let report = report_of(&err, "traced");
    assert!(!report.contains("stack backtrace:"), "{report}");
    assert!(report.contains(NOTE), "{report}");
}

#[test]
fn a_hook_set_before_the_runtime_starts_still_receives_green_panics() {
    if is_child("a_hook_set_before_the_runtime_starts_still_receives_green_panics") {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .unwrap_or("?");
            eprintln!("the program's hook: {message}");
        }));
        let rt = child_runtime();
        panic_in_green(&rt, Some("hooked"), "seen by the hook");
        return;
    }
    let err = child_stderr(
        "a_hook_set_before_the_runtime_starts_still_receives_green_panics",
        None,
    );
    assert!(
        err.contains("the program's hook: seen by the hook"),
        "{err}"
    );
    assert!(!err.contains("panicked at"), "{err}");
}

#[test]
fn a_hook_set_after_the_runtime_starts_replaces_greenring_s() {
    if is_child("a_hook_set_after_the_runtime_starts_replaces_greenring_s") {
        let rt = child_runtime();
        panic_in_green(&rt, Some("before"), "greenring's message");
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .unwrap_or("?");
            eprintln!("the later hook: {message}");
        }));
        // Another runtime does not put greenring's wrapper back.
        let again = child_runtime();
        panic_in_green(&again, Some("after"), "seen by the later hook");
        return;
    }
    let err = child_stderr(
        "a_hook_set_after_the_runtime_starts_replaces_greenring_s",
        None,
    );
    assert_std_layout(
        report_of(&err, "before"),
        "before",
        "tests/panic_messages.rs",
        "greenring's message",
    );
    assert!(
        err.contains("the later hook: seen by the later hook"),
        "{err}"
    );
    assert_eq!(reports(&err).len(), 1, "{err}");
}
