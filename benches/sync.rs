//! greenring::sync beside its peers, each group in one run:
//!
//! - `channel_ping_pong`: a round trip through two channels (one message each way):
//!   greenring mpsc between two green threads vs `tokio::sync::mpsc` between two tasks vs
//!   `std::sync::mpsc` between two OS threads.
//! - `contended_mutex`: 64 threads each locking, incrementing and unlocking one counter;
//!   one iteration is one lock/unlock: greenring `Mutex` (64 green threads) vs tokio's
//!   `Mutex` (64 tasks) vs std's `Mutex` (64 OS threads).
//!
//! Run: `cargo bench --bench sync`. 2 workers for greenring and tokio.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{greenring_rt, tokio_rt};
use criterion::{criterion_group, criterion_main, Criterion};

const CONTENDERS: u64 = 64;

fn channel_ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel_ping_pong");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let (ping_tx, ping_rx) = greenring::sync::mpsc::channel::<u64>();
                let (pong_tx, pong_rx) = greenring::sync::mpsc::channel::<u64>();
                let echo = greenring::spawn(move || {
                    for n in ping_rx.iter() {
                        pong_tx.send(n).unwrap();
                    }
                });
                let start = Instant::now();
                for n in 0..iters {
                    ping_tx.send(n).unwrap();
                    pong_rx.recv().unwrap();
                }
                let elapsed = start.elapsed();
                drop(ping_tx);
                echo.join().unwrap();
                elapsed
            })
        })
    });
    let tokio = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async move {
                tokio::spawn(async move {
                    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
                    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
                    let echo = tokio::spawn(async move {
                        while let Some(n) = ping_rx.recv().await {
                            pong_tx.send(n).unwrap();
                        }
                    });
                    let start = Instant::now();
                    for n in 0..iters {
                        ping_tx.send(n).unwrap();
                        pong_rx.recv().await.unwrap();
                    }
                    let elapsed = start.elapsed();
                    drop(ping_tx);
                    echo.await.unwrap();
                    elapsed
                })
                .await
                .unwrap()
            })
        })
    });
    group.bench_function("std_threads", |b| {
        b.iter_custom(|iters| {
            let (ping_tx, ping_rx) = std::sync::mpsc::channel::<u64>();
            let (pong_tx, pong_rx) = std::sync::mpsc::channel::<u64>();
            let echo = std::thread::spawn(move || {
                for n in ping_rx.iter() {
                    pong_tx.send(n).unwrap();
                }
            });
            let start = Instant::now();
            for n in 0..iters {
                ping_tx.send(n).unwrap();
                pong_rx.recv().unwrap();
            }
            let elapsed = start.elapsed();
            drop(ping_tx);
            echo.join().unwrap();
            elapsed
        })
    });
    group.finish();
}

fn contended_mutex(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended_mutex");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CONTENDERS).max(1);
            let counter = Arc::new(greenring::sync::Mutex::new(0u64));
            let start = Instant::now();
            let handles: Vec<_> = (0..CONTENDERS)
                .map(|_| {
                    let counter = Arc::clone(&counter);
                    rt.spawn(move || {
                        for _ in 0..per {
                            *counter.lock().unwrap() += 1;
                        }
                    })
                })
                .collect();
            handles.into_iter().for_each(|h| h.join().unwrap());
            start.elapsed() * iters as u32 / (per * CONTENDERS) as u32
        })
    });
    let tokio = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CONTENDERS).max(1);
            tokio.block_on(async move {
                let counter = Arc::new(tokio::sync::Mutex::new(0u64));
                let start = Instant::now();
                let handles: Vec<_> = (0..CONTENDERS)
                    .map(|_| {
                        let counter = Arc::clone(&counter);
                        tokio::spawn(async move {
                            for _ in 0..per {
                                *counter.lock().await += 1;
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
                start.elapsed() * iters as u32 / (per * CONTENDERS) as u32
            })
        })
    });
    group.bench_function("std_threads", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CONTENDERS).max(1);
            let counter = Arc::new(std::sync::Mutex::new(0u64));
            let start = Instant::now();
            let handles: Vec<_> = (0..CONTENDERS)
                .map(|_| {
                    let counter = Arc::clone(&counter);
                    std::thread::spawn(move || {
                        for _ in 0..per {
                            *counter.lock().unwrap() += 1;
                        }
                    })
                })
                .collect();
            handles.into_iter().for_each(|h| h.join().unwrap());
            start.elapsed() * iters as u32 / (per * CONTENDERS) as u32
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
