//! Runtimes on every I/O backend the machine allows, for tests that check both.

use greenring::{IoBackend, Runtime};

/// A one-worker runtime on each backend the kernel allows: with one worker, a call that
/// blocked the worker's OS thread would stall every other green thread, so tests can tell.
pub fn one_worker_runtimes() -> Vec<Runtime> {
    [IoBackend::IoUring, IoBackend::Epoll]
        .into_iter()
        .filter_map(|backend| {
            Runtime::builder()
                .worker_threads(1)
                .io_backend(backend)
                .build()
                .ok()
        })
        .collect()
}
