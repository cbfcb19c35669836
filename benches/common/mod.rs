//! What every bench file shares: the same worker count and runtime set-up for greenring and
//! tokio (so their rows compare like with like), and criterion's settings for a shared,
//! noisy 2-core machine.

use std::time::Duration;

use criterion::Criterion;

/// Worker threads of both runtimes in every comparison.
pub const WORKERS: usize = 2;

/// A greenring runtime with [`WORKERS`] workers.
pub fn greenring_rt() -> greenring::Runtime {
    greenring::Runtime::builder()
        .worker_threads(WORKERS)
        .build()
        .unwrap()
}

/// A tokio multi-thread runtime with [`WORKERS`] workers, I/O and timers enabled.
pub fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap()
}

/// Short, repeated samples: compare medians within a group.
pub fn config(samples: usize, measurement: Duration) -> Criterion {
    Criterion::default()
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measurement)
}
