//! Runs a file-system check off green threads and on green threads of each backend. Needs
//! the `watchdog` and `tempdir` support modules beside it in the test crate.

use std::path::Path;
use std::time::Duration;

use greenring::{IoBackend, Runtime};

use crate::tempdir::TempDir;

/// How long one `everywhere` may take before the test fails as hung.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` in a fresh directory off green threads, then on a green thread of a runtime
/// with the default backend, then on one of an epoll runtime; `workers` per runtime.
pub fn everywhere(name: &'static str, workers: usize, body: fn(&Path)) {
    crate::watchdog::within(LIMIT, move || {
        let dir = TempDir::new(&format!("{name}-os"));
        body(&dir.0);
        for (label, backend) in [("default", None), ("epoll", Some(IoBackend::Epoll))] {
            let dir = TempDir::new(&format!("{name}-{label}"));
            let mut builder = Runtime::builder().worker_threads(workers);
            if let Some(backend) = backend {
                builder = builder.io_backend(backend);
            }
            let rt = builder.build().unwrap();
            let path = dir.0.clone();
            rt.block_on(move || {
                assert!(greenring::thread::is_green());
                body(&path);
            });
        }
    });
}
