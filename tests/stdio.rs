//! Standard streams: this test binary runs itself as a child process whose stdin, stdout
//! and stderr are pipes, and checks what the child's green threads read and wrote.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenring::io::{self, BufRead, Write};
use greenring::{IoBackend, Runtime};

const CHILD_ENV: &str = "GREENRING_STDIO_CHILD";
const LIMIT: Duration = Duration::from_secs(60);

/// Which test the child acts out, and on which backend.
fn child_role() -> Option<(String, IoBackend)> {
    let var = std::env::var(CHILD_ENV).ok()?;
    let (test, backend) = var.split_once(':')?;
    let backend = if backend == "epoll" {
        IoBackend::Epoll
    } else {
        IoBackend::IoUring
    };
    Some((test.to_owned(), backend))
}

/// Runs `test` of this binary in a child on `backend`; feeds it `input` after `delay`;
/// returns (stdout, stderr).
fn run_child(test: &str, backend: &str, input: &[u8], delay: Duration) -> (String, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, format!("{test}:{backend}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(delay);
        stdin.write_all(&input).unwrap();
    });
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        stderr.read_to_string(&mut err).unwrap();
        err
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    feeder.join().unwrap();
    let err = err_reader.join().unwrap();
    assert!(child.wait().unwrap().success(), "child failed: {err}");
    (out, err)
}

fn runtime(backend: IoBackend) -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .io_backend(backend)
        .build()
        .unwrap()
}

#[test]
fn stdin_lines_park_only_the_green_thread() {
    if let Some((_, backend)) = child_role() {
        let rt = runtime(backend);
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
        rt.block_on(move || {
            let mut first = String::new();
            io::stdin().read_line(&mut first).unwrap();
            // One worker: the ticker ran only if the read parked just this thread.
            let ticked = ticks.load(Ordering::Relaxed);
            let rest: Vec<String> = io::stdin().lines().map(Result::unwrap).collect();
            done.store(true, Ordering::Relaxed);
            let mut out = io::stdout().lock();
            writeln!(out, "first={}", first.trim_end()).unwrap();
            writeln!(out, "rest={}", rest.join(",")).unwrap();
            writeln!(out, "ticked={}", ticked >= 10).unwrap();
            out.flush().unwrap();
        });
        ticker.join().unwrap();
        return;
    }
    watchdog::within(LIMIT, || {
        for backend in ["io_uring", "epoll"] {
            let (out, _) = run_child(
                "stdin_lines_park_only_the_green_thread",
                backend,
                b"one\ntwo\nthree\n",
                Duration::from_millis(300),
            );
            assert!(out.contains("first=one\n"), "{backend}: {out}");
            assert!(out.contains("rest=two,three\n"), "{backend}: {out}");
            assert!(out.contains("ticked=true\n"), "{backend}: {out}");
        }
    });
}

#[test]
fn stdout_keeps_its_order_with_println_and_stderr_is_written() {
    if let Some((_, backend)) = child_role() {
        let rt = runtime(backend);
        rt.block_on(|| {
            println!("<a>");
            writeln!(io::stdout(), "<b>").unwrap();
            print!("<c>");
            io::stdout().write_all(b"<d>\n").unwrap();
            let mut locked = io::stdout().lock();
            // The holder may write through another handle (std's lock is reentrant too).
            write!(locked, "<e>").unwrap();
            writeln!(io::stdout(), "<f>").unwrap();
            drop(locked);
            writeln!(io::stderr(), "<to stderr>").unwrap();
            io::stderr().flush().unwrap();
        });
        // Off green threads too.
        writeln!(io::stdout(), "<g>").unwrap();
        return;
    }
    watchdog::within(LIMIT, || {
        for backend in ["io_uring", "epoll"] {
            let (out, err) = run_child(
                "stdout_keeps_its_order_with_println_and_stderr_is_written",
                backend,
                b"",
                Duration::ZERO,
            );
            assert!(
                out.contains("<a>\n<b>\n<c><d>\n<e><f>\n<g>\n"),
                "{backend}: {out:?}"
            );
            assert!(err.contains("<to stderr>\n"), "{backend}: {err:?}");
        }
    });
}

#[test]
fn the_io_module_re_exports_std() {
    // Ported code keeps using these through greenring::io.
    let mut cursor = io::Cursor::new(b"line one\nline two\n".to_vec());
    let mut first = String::new();
    cursor.read_line(&mut first).unwrap();
    assert_eq!(first, "line one\n");
    let mut sink = io::sink();
    assert_eq!(io::copy(&mut cursor, &mut sink).unwrap(), 9);
    let err = io::Error::other("x");
    assert_eq!(err.kind(), io::ErrorKind::Other);
    let mut buf = io::BufWriter::new(Vec::new());
    buf.write_all(b"ok").unwrap();
    assert_eq!(buf.into_inner().unwrap(), b"ok");
}
