//! park/unpark between green threads and OS threads: no lost wake-ups. The ping-pong games
//! run under a watchdog, so a lost unpark fails the test instead of hanging the suite.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use greenring::thread::Thread;
use greenring::Runtime;

/// Far above what each game needs (well under a second in a debug build).
const LIMIT: Duration = Duration::from_secs(60);

/// A counter two parties take turns incrementing: `turn` is even for the pinger, odd for
/// the ponger. Each party parks until it is its turn, then increments and unparks the other.
struct PingPong {
    turn: AtomicU64,
    threads: Mutex<[Option<Thread>; 2]>,
}

fn play(game: &PingPong, me: usize, rounds: u64) {
    let peer = loop {
        if let Some(peer) = game.threads.lock().unwrap()[1 - me].clone() {
            break peer;
        }
        greenring::yield_now();
    };
    for round in 0..rounds {
        let my_turn = 2 * round + me as u64;
        while game.turn.load(Ordering::Acquire) != my_turn {
            greenring::park();
        }
        game.turn.store(my_turn + 1, Ordering::Release);
        peer.unpark();
    }
}

fn ping_pong(rt: &Runtime, rounds: u64, spawn_second_on_os_thread: bool) {
    let game = Arc::new(PingPong {
        turn: AtomicU64::new(0),
        threads: Mutex::new([None, None]),
    });
    let players: Vec<Box<dyn FnOnce()>> = (0..2)
        .map(|me| {
            let game = Arc::clone(&game);
            let body = move || {
                game.threads.lock().unwrap()[me] = Some(greenring::current());
                play(&game, me, rounds);
            };
            if me == 1 && spawn_second_on_os_thread {
                let handle = std::thread::spawn(body);
                Box::new(move || handle.join().unwrap()) as Box<dyn FnOnce()>
            } else {
                let handle = rt.spawn(body);
                Box::new(move || handle.join().unwrap())
            }
        })
        .collect();
    for join in players {
        join();
    }
    assert_eq!(game.turn.load(Ordering::SeqCst), 2 * rounds);
}

#[test]
fn ping_pong_between_green_threads_100k() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        ping_pong(&rt, 100_000, false);
    });
}

#[test]
fn ping_pong_with_busy_neighbours_spreads_over_workers() {
    // CPU-bound neighbours keep both workers busy, so the players are stolen back and forth.
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let spinners: Vec<_> = (0..4)
            .map(|_| {
                let stop = Arc::clone(&stop);
                rt.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        greenring::yield_now();
                    }
                })
            })
            .collect();
        ping_pong(&rt, 20_000, false);
        stop.store(true, Ordering::Relaxed);
        for spinner in spinners {
            spinner.join().unwrap();
        }
    });
}

#[test]
fn ping_pong_between_a_green_and_an_os_thread() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        ping_pong(&rt, 20_000, true);
    });
}

#[test]
fn unpark_before_park_is_not_lost() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let handle = rt.spawn(|| {
        greenring::current().unpark();
        greenring::park(); // consumes the token, returns at once
        true
    });
    assert!(handle.join().unwrap());
}

#[test]
fn many_parked_threads_all_wake() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let n = 10_000;
    let released = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(2));
    let parked = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let released = Arc::clone(&released);
            let parked = Arc::clone(&parked);
            rt.spawn(move || {
                parked.fetch_add(1, Ordering::SeqCst);
                while !released.load(Ordering::Acquire) {
                    greenring::park();
                }
            })
        })
        .collect();
    let waiter = {
        let parked = Arc::clone(&parked);
        let ready = Arc::clone(&ready);
        std::thread::spawn(move || {
            while parked.load(Ordering::SeqCst) < n {
                std::thread::sleep(Duration::from_millis(1));
            }
            ready.wait();
        })
    };
    ready.wait();
    waiter.join().unwrap();
    released.store(true, Ordering::Release);
    for handle in &handles {
        handle.thread().unpark();
    }
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn park_on_an_os_thread_uses_std() {
    let me = greenring::current();
    assert!(!me.is_green());
    let waker = std::thread::spawn(move || me.unpark());
    greenring::park();
    waker.join().unwrap();
}
