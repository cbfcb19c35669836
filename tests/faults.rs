//! Faults in the program's own code that runs on the runtime's threads (destructors,
//! loggers): each scenario runs in a child process under a time limit, so one that aborts
//! is checked for it, and one that hangs fails instead of stalling the suite.

#[path = "support/child.rs"]
mod child;

use std::time::Duration;

use greenring::Runtime;

/// How long a child may run before it counts as hung.
const LIMIT: Duration = Duration::from_secs(30);

/// A value whose destructor panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("PanicsOnDrop panicked in drop");
    }
}

/// Runs the child `name` and checks that it aborted with std's message for a thread result
/// that panicked on drop.
fn expect_abort_with_stds_message(name: &str) {
    let output = child::run_child_within(name, LIMIT);
    let stderr = child::stderr(&output);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "the child must abort ({}):\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains("fatal runtime error: thread result panicked on drop, aborting"),
        "{stderr}"
    );
}

#[test]
fn a_detached_threads_result_that_panics_on_drop_aborts_as_std_does() {
    const NAME: &str = "a_detached_threads_result_that_panics_on_drop_aborts_as_std_does";
    if !child::is_child(NAME) {
        return expect_abort_with_stds_message(NAME);
    }
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    // Detached: the worker drops the result when the thread ends.
    drop(rt.spawn(|| PanicsOnDrop));
    // Without the abort the worker died here, and nothing below would ever run.
    std::thread::sleep(Duration::from_millis(500));
    let later = rt.spawn(|| 42);
    assert_eq!(later.join().unwrap(), 42);
    drop(rt);
    eprintln!("the child went on after the result panicked on drop");
}

#[test]
fn a_detached_threads_panic_payload_that_panics_on_drop_aborts_as_std_does() {
    const NAME: &str = "a_detached_threads_panic_payload_that_panics_on_drop_aborts_as_std_does";
    if !child::is_child(NAME) {
        return expect_abort_with_stds_message(NAME);
    }
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    drop(rt.spawn(|| std::panic::panic_any(PanicsOnDrop)));
    std::thread::sleep(Duration::from_millis(500));
    let later = rt.spawn(|| 42);
    assert_eq!(later.join().unwrap(), 42);
    drop(rt);
    eprintln!("the child went on after the payload panicked on drop");
}

/// A logger whose every record panics, counting them.
struct PanickingLogger;

impl log::Log for PanickingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        panic!("the logger panics on: {}", record.args());
    }

    fn flush(&self) {}
}

#[test]
fn a_panicking_logger_leaves_the_monitor_and_the_workers_running() {
    const NAME: &str = "a_panicking_logger_leaves_the_monitor_and_the_workers_running";
    if !child::is_child(NAME) {
        let output = child::run_child_within(NAME, LIMIT);
        let stderr = child::stderr(&output);
        assert!(output.status.success(), "{}:\n{stderr}", output.status);
        assert!(
            stderr.contains("the `log` logger panicked"),
            "the logger's panic is reported once:\n{stderr}"
        );
        assert_eq!(
            stderr.matches("the `log` logger panicked").count(),
            1,
            "{stderr}"
        );
        // The second stall's warning comes from the monitor after the logger panicked:
        // it survived, and reports go to standard error now.
        assert!(
            stderr.contains("'second-stall'"),
            "the monitor reported the second stall:\n{stderr}"
        );
        return;
    }
    static LOGGER: PanickingLogger = PanickingLogger;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let rt = Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(Some(Duration::from_millis(10)))
        .build()
        .unwrap();
    for name in ["first-stall", "second-stall"] {
        let stall = greenring::thread::Builder::new()
            .name(name.into())
            // Blocks its worker's OS thread: the monitor warns through the logger.
            .spawn_on(&rt, || std::thread::sleep(Duration::from_millis(200)))
            .unwrap();
        stall.join().unwrap();
    }
    // The worker runs on, and the runtime shuts down.
    assert_eq!(rt.block_on(|| 6 * 7), 42);
    drop(rt);
}
