//! A watchdog for tests of hangs: the body runs on its own OS thread, and the test fails
//! (instead of hanging the suite) when the body has not finished in time.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `body` on a new OS thread and returns its value; panics when it has not finished
/// within `limit` (the thread is left behind, blocked), and passes on a panic of `body`.
pub fn within<T, F>(limit: Duration, body: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(panic::catch_unwind(AssertUnwindSafe(body)));
    });
    match finished.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("hung: the body did not finish within {limit:?}"),
    }
}
