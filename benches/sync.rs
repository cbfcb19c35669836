//! greenring::sync beside its peers, each group in one run:
//!
//! - `channel_ping_pong`: a round trip through two channels (one message each way):
//!   greenring mpsc between two green threads vs `tokio::sync::mpsc` between two tasks vs
//!   `std::sync::mpsc` between two OS threads.
//! - `contended_mutex`: 64 threads each locking, incrementing and unlocking one counter;
//!   one iteration is one lock/unlock: greenring `Mutex` (64 green threads) vs tokio's
//!   `Mutex` (64 tasks) vs std's `Mutex` (64 OS threads). The time runs from the release of
//!   a start barrier, so thread start-up is not counted.
//! - `uncontended_mutex`: one lock and unlock of a mutex nobody else touches, the path
//!   every uncontended call of `greenring::sync` takes: greenring's `Mutex` on a green
//!   thread (where each call is counted against the cooperative budget) and on an OS
//!   thread, vs std's `Mutex` on an OS thread.
//! - `try_recv_empty`: one `try_recv` of an empty channel (a spin loop's step): greenring's
//!   `mpsc` on a green thread and on an OS thread, vs `std::sync::mpsc`.
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

use std::hint::black_box;
use std::time::{Duration, Instant};

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

/// `iters` lock-and-unlock pairs of one greenring mutex, timed.
fn greenring_locks(iters: u64) -> Duration {
    let mutex = greenring::sync::Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..iters {
        *black_box(&mutex).lock().unwrap() += 1;
    }
    start.elapsed()
}

fn uncontended_mutex(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended_mutex");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| rt.block_on(move || greenring_locks(iters)))
    });
    group.bench_function("greenring_os_thread", |b| b.iter_custom(greenring_locks));
    group.bench_function("std", |b| {
        b.iter_custom(|iters| {
            let mutex = std::sync::Mutex::new(0u64);
            let start = Instant::now();
            for _ in 0..iters {
                *black_box(&mutex).lock().unwrap() += 1;
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// `iters` calls of `try_recv` on an empty greenring channel, timed.
fn greenring_empty_tries(iters: u64) -> Duration {
    let (_tx, rx) = greenring::sync::mpsc::channel::<u64>();
    let start = Instant::now();
    for _ in 0..iters {
        let _ = black_box(&rx).try_recv();
    }
    start.elapsed()
}

fn try_recv_empty(c: &mut Criterion) {
    let mut group = c.benchmark_group("try_recv_empty");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| rt.block_on(move || greenring_empty_tries(iters)))
    });
    group.bench_function("greenring_os_thread", |b| {
        b.iter_custom(greenring_empty_tries)
    });
    group.bench_function("std", |b| {
        b.iter_custom(|iters| {
            let (_tx, rx) = std::sync::mpsc::channel::<u64>();
            let start = Instant::now();
            for _ in 0..iters {
                let _ = black_box(&rx).try_recv();
            }
            start.elapsed()
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
    targets = channel_ping_pong, contended_mutex, uncontended_mutex, try_recv_empty
}
criterion_main!(benches);
