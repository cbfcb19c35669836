//! greenring::sync beside its peers, each group in one run:
//!
//! - `channel_ping_pong`: a round trip through two channels (one message each way):
//!   greenring mpsc between two green threads vs `tokio::sync::mpsc` between two tasks vs
//!   `std::sync::mpsc` between two OS threads.
//! - `contended_mutex`: 64 threads each locking, incrementing and unlocking one counter;
//!   one iteration is one lock/unlock: greenring `Mutex` (64 green threads) vs tokio's
//!   `Mutex` (64 tasks) vs std's `Mutex` (64 OS threads). The time runs from the release of
//!   a start barrier, so thread start-up is not counted.
//!
//! Every variant is the comparison command's (`examples/compare/shared_work.rs`); the
//! greenring and std ones are one body, run as green threads or as OS threads.
//!
//! Run: `cargo bench --bench sync`. 2 workers for greenring and tokio.

mod common;

// Only its ping-pong and mutex bodies are used here.
#[allow(dead_code)]
#[path = "../examples/compare/shared_work.rs"]
mod shared_work;

use std::time::Duration;

use common::{greenring_rt, tokio_rt};
use criterion::{criterion_group, criterion_main, Criterion};

const CONTENDERS: u64 = shared_work::CONTENDERS as u64;

fn channel_ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel_ping_pong");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| rt.block_on(move || shared_work::green::ping_pong(iters)))
    });
    let tokio = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async move {
                tokio::spawn(shared_work::tasks::ping_pong(iters))
                    .await
                    .unwrap()
            })
        })
    });
    group.bench_function("std_threads", |b| b.iter_custom(shared_work::os::ping_pong));
    group.finish();
}

fn contended_mutex(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended_mutex");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CONTENDERS).max(1);
            let elapsed = rt.block_on(move || shared_work::green::contended_mutex(per));
            elapsed * iters as u32 / (per * CONTENDERS) as u32
        })
    });
    let tokio = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CONTENDERS).max(1);
            let elapsed = tokio.block_on(shared_work::tasks::contended_mutex(per));
            elapsed * iters as u32 / (per * CONTENDERS) as u32
        })
    });
    group.bench_function("std_threads", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CONTENDERS).max(1);
            shared_work::os::contended_mutex(per) * iters as u32 / (per * CONTENDERS) as u32
        })
    });
    group.finish();
}

fn config() -> Criterion {
    common::config(20, Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = channel_ping_pong, contended_mutex
}
criterion_main!(benches);
