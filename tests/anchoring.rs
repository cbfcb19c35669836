//! Anchoring: a started green thread never changes OS thread; threads that have not started
//! still spread over the workers; a worker whose OS thread blocks keeps its started threads
//! waiting but lets the others go; a thread that unwinds never shows its panic to others.

#[path = "support/block.rs"]
mod block;
#[path = "support/recorder.rs"]
mod recorder;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use greenring::runtime::Builder;
use greenring::Runtime;

/// Records warnings and errors, to check the monitor's reports.
/// Recorded lines at `level` that mention every one of `words`.
fn logged(level: log::Level, words: &[&str]) -> Vec<String> {
    recorder::logged_at(Some(level), words)
}

/// A builder for a runtime that migrates started threads.
fn migrating() -> Builder {
    // SAFETY: the green threads of these tests hold no OS-thread-bound state across
    // blocking calls: they compare `std::thread::current().id()` values, which are plain
    // data.
    unsafe { Runtime::builder().migrate_started_threads() }
}

/// Runs `op` and counts it in `moves` if the OS thread changed across it.
fn across<T>(moves: &AtomicUsize, op: impl FnOnce() -> T) -> T {
    let before = std::thread::current().id();
    let value = op();
    if std::thread::current().id() != before {
        moves.fetch_add(1, Ordering::Relaxed);
    }
    value
}

/// Spins for about `micros` microseconds of CPU.
fn compute(micros: u64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(micros) {
        std::hint::spin_loop();
    }
}

/// Green threads doing every kind of blocking call (park woken from an OS thread, yield,
/// sleep, channel, mutex, TCP read, file read) with CPU work between calls, on 2 workers;
/// returns how many calls resumed on another OS thread, out of how many.
fn blocking_calls_stress(rt: &Runtime) -> (usize, usize) {
    const THREADS: usize = 32;
    const ROUNDS: usize = if cfg!(debug_assertions) { 15 } else { 40 };
    let moves = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    // One file per call: the tests of this binary that use it run at the same time.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("greenring-anchoring-{}-{call}", std::process::id()));
    std::fs::write(&path, vec![7u8; 64 * 1024]).unwrap();
    let path = Arc::new(path);
    let lock = Arc::new(greenring::sync::Mutex::new(0u64));
    let done = Arc::new(AtomicBool::new(false));
    let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = rt.spawn(move || {
        for _ in 0..THREADS {
            let (mut stream, _) = listener.accept().unwrap();
            greenring::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    stream.write_all(&buf[..n]).unwrap();
                }
            });
        }
    });
    let (handles, threads): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|i| {
            let (moves, calls, path, lock) = (
                Arc::clone(&moves),
                Arc::clone(&calls),
                Arc::clone(&path),
                Arc::clone(&lock),
            );
            let (tx, rx) = greenring::sync::mpsc::channel::<usize>();
            let handle = rt.spawn(move || {
                let mut stream = greenring::net::TcpStream::connect(addr).unwrap();
                let file = greenring::fs::File::open(&*path).unwrap();
                let peer = greenring::spawn(move || {
                    for round in 0..ROUNDS {
                        tx.send(round).unwrap();
                        greenring::yield_now();
                    }
                });
                let mut buf = [0u8; 64];
                for round in 0..ROUNDS {
                    compute(20);
                    across(&moves, || {
                        greenring::thread::park_timeout(Duration::from_millis(2))
                    });
                    across(&moves, greenring::yield_now);
                    compute(20);
                    across(&moves, || {
                        greenring::time::sleep(Duration::from_micros(200))
                    });
                    assert_eq!(across(&moves, || rx.recv().unwrap()), round);
                    compute(20);
                    *across(&moves, || lock.lock().unwrap()) += 1;
                    across(&moves, || stream.write_all(&[i as u8; 16]).unwrap());
                    across(&moves, || stream.read_exact(&mut buf[..16]).unwrap());
                    assert_eq!(buf[..16], [i as u8; 16]);
                    let n = across(&moves, || file.read_at(&mut buf, (round * 64) as u64));
                    assert_eq!(n.unwrap(), 64);
                    calls.fetch_add(9, Ordering::Relaxed);
                }
                peer.join().unwrap();
            });
            let thread = handle.thread().clone();
            (handle, thread)
        })
        .unzip();
    // Wake-ups from outside the runtime: an OS thread unparks everyone, over and over.
    let unparker = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for thread in &threads {
                    thread.unpark();
                }
                block::block_os_thread(Duration::from_micros(100));
            }
        })
    };
    for handle in handles {
        handle.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    unparker.join().unwrap();
    echo.join().unwrap();
    std::fs::remove_file(&*path).unwrap();
    assert_eq!(*lock.lock().unwrap(), (THREADS * ROUNDS) as u64);
    (moves.load(Ordering::Relaxed), calls.load(Ordering::Relaxed))
}

#[test]
fn started_threads_never_change_os_thread_across_blocking_calls() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let (moves, calls) = blocking_calls_stress(&rt);
    assert!(calls > 0);
    if rt.migrates_started_threads() {
        // Built with `--cfg greenring_migrate`: the suite runs in the opt-in mode.
        return;
    }
    assert_eq!(
        moves, 0,
        "{moves} of {calls} blocking calls resumed on another OS thread"
    );
}

#[test]
fn migrating_runtimes_move_started_threads_and_still_work() {
    let rt = migrating().worker_threads(2).build().unwrap();
    assert!(rt.migrates_started_threads());
    let mut total = 0;
    for _ in 0..5 {
        let (moves, calls) = blocking_calls_stress(&rt);
        assert!(calls > 0);
        total += moves;
        if total > 0 {
            return;
        }
    }
    panic!("no green thread ever changed OS thread in a migrating runtime");
}

#[test]
fn a_fan_out_of_cpu_bound_threads_uses_both_workers() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let workers = rt.block_on(|| {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                greenring::spawn(|| {
                    let first = greenring::runtime::worker_index().unwrap();
                    compute(2_000);
                    greenring::yield_now();
                    let after = greenring::runtime::worker_index().unwrap();
                    (first, after)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    if !rt.migrates_started_threads() {
        assert!(
            workers.iter().all(|(first, after)| first == after),
            "a started thread changed worker: {workers:?}"
        );
    }
    let used: std::collections::BTreeSet<usize> = workers.iter().map(|w| w.0).collect();
    assert_eq!(used.len(), 2, "only workers {used:?} ran the fan-out");
}

#[test]
fn a_blocked_worker_lets_fresh_threads_run_elsewhere_and_its_neighbour_resume() {
    recorder::install();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let (fresh_done, neighbour) = rt.block_on(|| {
        let start = Instant::now();
        let blocker = greenring::thread::Builder::new()
            .name("sleeps-in-std".into())
            .spawn(move || {
                let home = greenring::runtime::worker_index().unwrap();
                // A neighbour that starts on this worker (pinned: it is not placed or stolen
                // elsewhere before it starts) and sleeps across the block.
                let neighbour = greenring::thread::Builder::new()
                    .pinned(true)
                    .spawn(move || {
                        let first = greenring::runtime::worker_index().unwrap();
                        greenring::time::sleep(Duration::from_millis(10));
                        (
                            first,
                            greenring::runtime::worker_index().unwrap(),
                            Instant::now(),
                        )
                    })
                    .unwrap();
                greenring::yield_now();
                let fresh: Vec<_> = (0..100)
                    .map(|_| greenring::spawn(move || start.elapsed()))
                    .collect();
                block::block_os_thread(Duration::from_millis(300));
                (home, fresh, neighbour)
            })
            .unwrap();
        let (home, fresh, neighbour) = blocker.join().unwrap();
        let fresh_done: Vec<Duration> = fresh.into_iter().map(|h| h.join().unwrap()).collect();
        let (first, last, resumed) = neighbour.join().unwrap();
        assert_eq!(first, home, "the neighbour started on the blocked worker");
        (fresh_done, (first, last, resumed.duration_since(start)))
    });
    let slowest = fresh_done.iter().max().unwrap();
    assert!(
        *slowest < Duration::from_millis(200),
        "threads that had not started waited {slowest:?} for a worker blocked 300 ms"
    );
    let (first, last, resumed) = neighbour;
    if !rt.migrates_started_threads() {
        assert_eq!(first, last, "the started neighbour changed worker");
        assert!(
            resumed >= Duration::from_millis(300),
            "an anchored neighbour cannot resume before its worker's OS thread returns"
        );
        assert!(
            !logged(log::Level::Warn, &["'sleeps-in-std'", "worker"]).is_empty(),
            "the stall was not reported"
        );
    }
}

/// A green thread takes `lock` (a std lock, or greenring's) and holds it across a greenring
/// sleep; another on the same worker then takes it. Returns whether the second got it
/// within `patience` (it polls with `try_lock`, blocking its OS thread in between, as a
/// std lock does).
fn lock_held_across_a_sleep<L: Send + Sync + 'static>(
    lock: L,
    hold: fn(&L, Duration),
    wait: fn(&L, Duration) -> bool,
) -> bool {
    let rt = Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(Some(Duration::from_millis(5)))
        .build()
        .unwrap();
    let lock = Arc::new(lock);
    rt.block_on(move || {
        let holder = {
            let lock = Arc::clone(&lock);
            greenring::thread::Builder::new()
                .name("holds-the-lock".into())
                .spawn(move || hold(&lock, Duration::from_millis(30)))
                .unwrap()
        };
        greenring::yield_now();
        let waiter = greenring::thread::Builder::new()
            .name("waits-for-the-lock".into())
            .spawn(move || wait(&lock, Duration::from_millis(1_500)))
            .unwrap();
        let got = waiter.join().unwrap();
        holder.join().unwrap();
        got
    })
}

#[test]
fn a_std_lock_held_across_a_blocking_call_is_reported_and_greenring_locks_complete() {
    recorder::install();
    let got_std = lock_held_across_a_sleep(
        Mutex::new(()),
        |lock, d| {
            let _guard = lock.lock().unwrap();
            greenring::time::sleep(d);
        },
        |lock, patience| {
            let start = Instant::now();
            while start.elapsed() < patience {
                if lock.try_lock().is_ok() {
                    return true;
                }
                block::block_os_thread(Duration::from_millis(1));
            }
            false
        },
    );
    if !cfg!(greenring_migrate) {
        assert!(
            !got_std,
            "the holder cannot run while its worker's OS thread waits"
        );
        let errors = logged(
            log::Level::Error,
            &[
                "'waits-for-the-lock'",
                "'holds-the-lock'",
                "greenring::sync",
            ],
        );
        assert!(
            !errors.is_empty(),
            "no error named the blocked thread and the one stuck behind it"
        );
    }
    let got_green = lock_held_across_a_sleep(
        greenring::sync::Mutex::new(()),
        |lock, d| {
            let _guard = lock.lock().unwrap();
            greenring::time::sleep(d);
        },
        |lock, _patience| lock.lock().is_ok(),
    );
    assert!(
        got_green,
        "greenring's mutex parks the waiter and the holder finishes"
    );
}

/// Drops during a panic: blocks in every way a destructor might.
struct BlocksWhileUnwinding(Arc<greenring::sync::Mutex<u32>>);

impl Drop for BlocksWhileUnwinding {
    fn drop(&mut self) {
        assert!(std::thread::panicking());
        greenring::time::sleep(Duration::from_millis(20));
        greenring::yield_now();
        greenring::thread::park_timeout(Duration::from_millis(5));
        *self.0.lock().unwrap() += 1;
    }
}

#[test]
fn a_thread_blocking_while_unwinding_never_shows_its_panic_to_others() {
    for rt in [
        Runtime::builder().worker_threads(1).build().unwrap(),
        migrating().worker_threads(1).build().unwrap(),
    ] {
        let healthy_lock = Arc::new(greenring::sync::Mutex::new(0u32));
        let shared = Arc::new(greenring::sync::Mutex::new(0u32));
        let saw_panicking = Arc::new(AtomicBool::new(false));
        let healthy = {
            let (lock, saw) = (Arc::clone(&healthy_lock), Arc::clone(&saw_panicking));
            rt.spawn(move || {
                for _ in 0..200 {
                    let mut guard = lock.lock().unwrap();
                    *guard += 1;
                    greenring::yield_now();
                    if std::thread::panicking() {
                        saw.store(true, Ordering::Relaxed);
                    }
                    drop(guard);
                    greenring::yield_now();
                }
            })
        };
        let panicking = {
            let shared = Arc::clone(&shared);
            rt.spawn(move || {
                let _guard = BlocksWhileUnwinding(shared);
                greenring::yield_now();
                panic!("on purpose");
            })
        };
        assert!(panicking.join().is_err());
        healthy.join().unwrap();
        assert!(!saw_panicking.load(Ordering::Relaxed));
        assert!(
            !healthy_lock.is_poisoned(),
            "a healthy thread's mutex was poisoned"
        );
        assert_eq!(*healthy_lock.lock().unwrap(), 200);
        assert_eq!(*shared.lock().unwrap(), 1);
    }
}

#[test]
fn threads_spawned_one_at_a_time_spread_over_the_workers() {
    // An accept loop's shape: each child starts (and anchors) right away and then waits,
    // so only where it is placed at spawn decides the spread.
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let counts = rt.block_on(|| {
        let (tx, rx) = greenring::sync::mpsc::channel::<()>();
        let rx = Arc::new(greenring::sync::Mutex::new(rx));
        let children: Vec<_> = (0..64)
            .map(|_| {
                let rx = Arc::clone(&rx);
                let child = greenring::spawn(move || {
                    let worker = greenring::runtime::worker_index().unwrap();
                    let _ = rx.lock().unwrap().recv();
                    worker
                });
                greenring::yield_now();
                child
            })
            .collect();
        drop(tx);
        let mut counts = [0usize; 2];
        for child in children {
            counts[child.join().unwrap()] += 1;
        }
        counts
    });
    if !rt.migrates_started_threads() {
        assert!(
            counts.iter().all(|&n| n >= 16),
            "64 threads spawned one at a time landed {counts:?} on the two workers"
        );
    }
}
