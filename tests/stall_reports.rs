//! What a program hears of a blocked worker: without a logger, the first stall of a
//! runtime and its first suspected deadlock go to standard error once each; with a logger,
//! every report goes through `log`. The runtime's own time in the kernel (submitting a
//! burst of connects) is never reported as a thread blocking its worker.

#[path = "support/block.rs"]
mod block;
#[path = "support/child.rs"]
mod child;
#[path = "support/recorder.rs"]
mod recorder;

use std::sync::Mutex;
use std::time::Duration;

use greenring::Runtime;

const LIMIT: Duration = Duration::from_secs(30);

fn stall_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.contains("has blocked worker"))
        .collect()
}

#[test]
#[cfg_attr(
    greenring_migrate,
    ignore = "a runtime that migrates started threads hands a stalled worker's threads off instead of warning"
)]
fn without_a_logger_the_first_stall_goes_to_stderr_once() {
    if child::is_child("without_a_logger_the_first_stall_goes_to_stderr_once") {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        for _ in 0..3 {
            greenring::thread::Builder::new()
                .name("blocker".into())
                .spawn_on(&rt, || {
                    greenring::time::sleep(Duration::from_millis(1));
                    block::block_os_thread(Duration::from_millis(60));
                })
                .unwrap()
                .join()
                .unwrap();
        }
        return;
    }
    let output = child::run_child_within(
        "without_a_logger_the_first_stall_goes_to_stderr_once",
        LIMIT,
    );
    let stderr = child::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    let lines = stall_lines(&stderr);
    assert_eq!(lines.len(), 1, "one report of three stalls:\n{stderr}");
    let line = lines[0];
    for what in [
        "'blocker'",
        " ms ",
        "sleep",
        "spawn_blocking",
        "install one to see every report",
    ] {
        assert!(line.contains(what), "the report names {what:?}: {line}");
    }
}

#[test]
#[cfg_attr(
    greenring_migrate,
    ignore = "a runtime that migrates started threads hands a stalled worker's threads off instead of warning"
)]
fn without_a_logger_a_std_lock_deadlock_goes_to_stderr_once() {
    if child::is_child("without_a_logger_a_std_lock_deadlock_goes_to_stderr_once") {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let lock = std::sync::Arc::new(Mutex::new(()));
        let theirs = std::sync::Arc::clone(&lock);
        // Holds a std lock across a greenring sleep: the other thread, on the same worker,
        // then blocks the worker's OS thread on it, and the holder can never run again.
        let holder = rt.spawn(move || {
            let _guard = theirs.lock().unwrap();
            greenring::time::sleep(Duration::from_millis(50));
        });
        let waiter = rt.spawn(move || drop(lock.lock().unwrap()));
        // Never returns: the parent kills this process.
        let _ = (holder.join(), waiter.join());
        return;
    }
    let output = child::run_child_within(
        "without_a_logger_a_std_lock_deadlock_goes_to_stderr_once",
        Duration::from_secs(3),
    );
    let stderr = child::stderr(&output);
    let deadlocks: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("this is a deadlock"))
        .collect();
    assert_eq!(deadlocks.len(), 1, "one deadlock report:\n{stderr}");
    assert!(
        deadlocks[0].contains("std::sync or parking_lot lock") && deadlocks[0].contains("hooks"),
        "the report names std locks and the hooks' price: {}",
        deadlocks[0]
    );
}

#[test]
#[cfg_attr(
    greenring_migrate,
    ignore = "a runtime that migrates started threads hands a stalled worker's threads off instead of warning"
)]
fn with_a_logger_every_stall_goes_through_log_and_none_to_stderr() {
    if child::is_child("with_a_logger_every_stall_goes_through_log_and_none_to_stderr") {
        recorder::install();
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        for _ in 0..3 {
            rt.block_on(|| {
                greenring::time::sleep(Duration::from_millis(1));
                block::block_os_thread(Duration::from_millis(60));
            });
        }
        let stalls = recorder::logged(&["has blocked worker"]).len();
        println!("stalls logged: {stalls}");
        return;
    }
    let output = child::run_child_within(
        "with_a_logger_every_stall_goes_through_log_and_none_to_stderr",
        LIMIT,
    );
    let stderr = child::stderr(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("stalls logged: 3"), "{stdout}\n{stderr}");
    assert!(stall_lines(&stderr).is_empty(), "{stderr}");
}

#[test]
fn a_burst_of_greenring_connects_is_not_reported_as_a_stall() {
    if child::is_child("a_burst_of_greenring_connects_is_not_reported_as_a_stall") {
        recorder::install();
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A backlog that takes the whole burst: accepted by an OS thread.
        let acceptor = std::thread::spawn(move || {
            let mut held = Vec::new();
            for _ in 0..2000 {
                held.push(listener.accept().unwrap().0);
            }
        });
        for _ in 0..2 {
            rt.block_on(move || {
                let clients: Vec<_> = (0..1000)
                    .map(|_| greenring::spawn(move || greenring::net::TcpStream::connect(addr)))
                    .collect();
                for client in clients {
                    client.join().unwrap().unwrap();
                }
            });
        }
        acceptor.join().unwrap();
        let stalls = recorder::logged(&["has blocked worker"]);
        println!("stalls logged: {}", stalls.len());
        for stall in stalls {
            println!("{stall}");
        }
        return;
    }
    let output = child::run_child_within(
        "a_burst_of_greenring_connects_is_not_reported_as_a_stall",
        LIMIT,
    );
    let stderr = child::stderr(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("stalls logged: 0"), "{stdout}\n{stderr}");
}
