//! Core costs of greenring beside its peers, each group measured in the same run:
//!
//! - `switch_pair`: one switch into a context and back; our asm vs corosensei, same stack.
//! - `spawn_join`: spawn a no-op and join it, from a thread of the same pool: greenring vs
//!   tokio (multi-thread, same worker count, spawned from a task) vs `std::thread`.
//! - `yield`: one `yield_now` round of a lone thread: greenring vs tokio.
//! - `park_unpark`: a ping-pong round trip (two park/unpark hand-offs): two green threads vs
//!   two OS threads with std park/unpark.
//!
//! Run: `cargo bench --bench core`. Timed loops use `iter_custom`, so runtime start-up and
//! stack allocation stay outside the measurement.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{greenring_rt, tokio_rt};
use criterion::{criterion_group, criterion_main, Criterion};
use greenring::bench_support::{CorosenseiSwitch, OwnAsmSwitch};

fn switch_pair(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch_pair");
    let mut own = OwnAsmSwitch::new().unwrap();
    group.bench_function("greenring_asm", |b| b.iter(|| own.switch_pair()));
    let mut coro = CorosenseiSwitch::new().unwrap();
    group.bench_function("corosensei", |b| b.iter(|| coro.switch_pair()));
    group.finish();
}

/// Times `iters` calls of `step` on a green thread of `rt`.
fn on_green_thread(rt: &greenring::Runtime, iters: u64, step: fn()) -> Duration {
    rt.block_on(move || {
        let start = Instant::now();
        for _ in 0..iters {
            step();
        }
        start.elapsed()
    })
}

/// Times `iters` awaits of `step()` inside a task on a worker of `rt` (like the green thread
/// above, not on `block_on`'s own thread).
fn in_tokio_task<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, step: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                step().await;
            }
            start.elapsed()
        })
        .await
        .unwrap()
    })
}

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| {
            on_green_thread(&rt, iters, || greenring::spawn(|| ()).join().unwrap())
        })
    });
    let tokio = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            in_tokio_task(&tokio, iters, || async {
                tokio::spawn(async {}).await.unwrap()
            })
        })
    });
    group.bench_function("std_thread", |b| {
        b.iter(|| std::thread::spawn(|| ()).join().unwrap())
    });
    group.finish();
}

fn yield_round(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| on_green_thread(&rt, iters, greenring::yield_now))
    });
    let tokio = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| in_tokio_task(&tokio, iters, tokio::task::yield_now))
    });
    group.finish();
}

/// Two parties take turns on `turn`; each waits with `park` until it is its turn.
struct Game<H> {
    turn: AtomicU64,
    players: Mutex<[Option<H>; 2]>,
}

/// Plays `rounds` turns as player `me`; generic over green and std thread handles.
fn play<H: Clone>(game: &Game<H>, me: usize, rounds: u64, park: fn(), unpark: fn(&H)) {
    let peer = loop {
        if let Some(peer) = game.players.lock().unwrap()[1 - me].clone() {
            break peer;
        }
        std::hint::spin_loop();
    };
    for round in 0..rounds {
        let my_turn = 2 * round + me as u64;
        while game.turn.load(Ordering::Acquire) != my_turn {
            park();
        }
        game.turn.store(my_turn + 1, Ordering::Release);
        unpark(&peer);
    }
}

fn park_unpark(c: &mut Criterion) {
    let mut group = c.benchmark_group("park_unpark");
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| {
            let game = Arc::new(Game::<greenring::thread::Thread> {
                turn: AtomicU64::new(0),
                players: Mutex::new([None, None]),
            });
            let handles: Vec<_> = (0..2)
                .map(|me| {
                    let game = Arc::clone(&game);
                    rt.spawn(move || {
                        game.players.lock().unwrap()[me] = Some(greenring::current());
                        let start = Instant::now();
                        play(&game, me, iters, greenring::park, |t| t.unpark());
                        start.elapsed()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .max()
                .unwrap()
        })
    });
    group.bench_function("std_thread", |b| {
        b.iter_custom(|iters| {
            let game = Arc::new(Game::<std::thread::Thread> {
                turn: AtomicU64::new(0),
                players: Mutex::new([None, None]),
            });
            let handles: Vec<_> = (0..2)
                .map(|me| {
                    let game = Arc::clone(&game);
                    std::thread::spawn(move || {
                        game.players.lock().unwrap()[me] = Some(std::thread::current());
                        let start = Instant::now();
                        play(&game, me, iters, std::thread::park, |t| t.unpark());
                        start.elapsed()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .max()
                .unwrap()
        })
    });
    group.finish();
}

fn config() -> Criterion {
    common::config(30, Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = switch_pair, spawn_join, yield_round, park_unpark
}
criterion_main!(benches);
