//! Child processes: output capture, pipes and waits that park only the green thread, on
//! both I/O backends, and the same calls off green threads.

#[path = "support/backends.rs"]
mod backends;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::process::{Command, Stdio};
use greenring::Runtime;

use watchdog::within;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn output_captures_stdout_stderr_and_the_exit_code() {
    within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            let output = rt.block_on(|| {
                Command::new("sh")
                    .args(["-c", "echo out; echo err >&2; exit 3"])
                    .output()
                    .unwrap()
            });
            assert_eq!(output.stdout, b"out\n");
            assert_eq!(output.stderr, b"err\n");
            assert_eq!(output.status.code(), Some(3));
        }
    });
}

#[test]
fn output_reads_both_pipes_at_once() {
    // 1 MiB on each stream, stderr first: reading stdout alone to its end first would
    // leave the child blocked on a full stderr pipe forever.
    within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            let output = rt.block_on(|| {
                Command::new("sh")
                    .args([
                        "-c",
                        "head -c 1048576 /dev/zero >&2; head -c 1048576 /dev/zero",
                    ])
                    .output()
                    .unwrap()
            });
            assert!(output.status.success());
            assert_eq!(output.stdout.len(), 1 << 20);
            assert_eq!(output.stderr.len(), 1 << 20);
        }
    });
}

#[test]
fn a_wait_parks_only_the_green_thread() {
    within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            let ticks = Arc::new(AtomicU32::new(0));
            let done = Arc::new(AtomicBool::new(false));
            let ticker = {
                let (ticks, done) = (Arc::clone(&ticks), Arc::clone(&done));
                rt.spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        ticks.fetch_add(1, Ordering::Relaxed);
                        greenring::time::sleep(Duration::from_millis(5));
                    }
                })
            };
            let waited = rt.block_on(move || {
                let start = Instant::now();
                let status = Command::new("sleep").arg("0.3").status().unwrap();
                done.store(true, Ordering::Relaxed);
                assert!(status.success());
                start.elapsed()
            });
            ticker.join().unwrap();
            assert!(waited >= Duration::from_millis(300));
            assert!(
                ticks.load(Ordering::Relaxed) >= 10,
                "the other green thread ran during the wait ({} ticks)",
                ticks.load(Ordering::Relaxed)
            );
        }
    });
}

#[test]
fn piped_stdin_and_stdout_through_cat_in_two_green_threads() {
    within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
            let expected = data.clone();
            let echoed = rt.block_on(move || {
                let mut child = Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = child.stdin.take().unwrap();
                // More than both pipes hold: the writer must wait for the reader.
                let writer = greenring::spawn(move || stdin.write_all(&data).unwrap());
                let mut echoed = Vec::new();
                child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_end(&mut echoed)
                    .unwrap();
                writer.join().unwrap();
                assert!(child.wait().unwrap().success());
                echoed
            });
            assert!(echoed == expected, "cat echoed the bytes back");
        }
    });
}

#[test]
fn kill_try_wait_and_id() {
    within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            rt.block_on(|| {
                let mut child = Command::new("sleep").arg("30").spawn().unwrap();
                assert!(child.id() > 0);
                assert!(child.try_wait().unwrap().is_none());
                child.kill().unwrap();
                let status = child.wait().unwrap();
                assert_eq!(status.signal(), Some(libc::SIGKILL));
                assert_eq!(child.try_wait().unwrap(), Some(status));
            });
        }
    });
}

#[test]
fn environment_and_working_directory() {
    within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let output = rt.block_on(|| {
            Command::new("sh")
                .args(["-c", "echo \"$GR_A-$GR_B-${HOME:-none}\"; pwd"])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap())
                .envs([("GR_A", "1"), ("GR_B", "2")])
                .env("HOME", "x")
                .env_remove("HOME")
                .current_dir("/")
                .output()
                .unwrap()
        });
        assert_eq!(String::from_utf8(output.stdout).unwrap(), "1-2-none\n/\n");
    });
}

#[test]
fn a_childs_stdout_feeds_another_child() {
    within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let output = rt.block_on(|| {
            let mut first = Command::new("echo")
                .arg("piped along")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let second = Command::new("tr")
                .args(["a-z", "A-Z"])
                .stdin(Stdio::from(first.stdout.take().unwrap()))
                .output()
                .unwrap();
            assert!(first.wait().unwrap().success());
            second
        });
        assert_eq!(output.stdout, b"PIPED ALONG\n");
    });
}

#[test]
fn a_missing_program_is_not_found() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let err = rt
        .block_on(|| Command::new("/nonexistent/greenring-no-such-program").spawn())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn off_green_threads_it_is_std() {
    within(LIMIT, || {
        let output = Command::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .output()
            .unwrap();
        assert_eq!(
            (&output.stdout[..], &output.stderr[..]),
            (&b"out\n"[..], &b"err\n"[..])
        );
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.as_mut().unwrap().write_all(b"plain").unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.stdout, b"plain");
        assert!(Command::new("true").status().unwrap().success());
    });
}

#[test]
fn output_leaves_spawn_inheriting() {
    // `output` captures unset streams for its own run only.
    within(LIMIT, || {
        let mut command = Command::new("true");
        command.output().unwrap();
        let mut child = command.spawn().unwrap();
        assert!(child.stdout.is_none() && child.stderr.is_none() && child.stdin.is_none());
        child.wait().unwrap();
    });
}
