//! Child processes under a time limit, for tests of faults that abort or could hang.

use std::process::{Command, Output};

/// Environment variable naming the test a child process should act out (as `support`).
const CHILD_ENV: &str = "GREENRING_TEST_CHILD";

/// `true` in the child process started by [`run_child_within`] for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test)
}

/// Text of a child's stderr, for assertions and failure messages.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the test named `test` of this test binary again in a child process (as
/// `support::run_child` does), but kills the child when it has not exited within
/// `limit` (the output then has no exit status and a note on stderr), so a child that
/// hangs fails its test instead of stalling the suite.
pub fn run_child_within(test: &str, limit: std::time::Duration) -> Output {
    use std::io::Read;
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the child test process");
    // Drain both pipes on their own threads, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait for the killed child");
            let mut stderr = err.join().unwrap();
            stderr.extend_from_slice(
                format!("\n[killed: still running after {limit:?}]\n").as_bytes(),
            );
            return Output {
                status,
                stdout: out.join().unwrap(),
                stderr,
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
