//! Helpers shared by integration tests.

use std::process::{Command, Output};

/// Environment variable naming the test a child process should act out.
const CHILD_ENV: &str = "GREENRING_TEST_CHILD";

/// `true` in the child process started by [`run_child`] for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test)
}

/// Runs the test named `test` of this test binary again, in a child process that sees
/// [`is_child`]`(test)`, and returns its output. `wrapper` (a debugger and its arguments,
/// say) runs the child when not empty.
pub fn run_child(test: &str, wrapper: &[&str]) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .output()
        .expect("start the child test process")
}

/// Text of a child's stderr, for assertions and failure messages.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
