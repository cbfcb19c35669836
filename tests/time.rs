//! Sleeping and timed parking on green threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::runtime::Cancelled;
use greenring::sync::{mpmc, mpsc, Condvar, Mutex, Select};
use greenring::Runtime;

#[path = "support/watchdog.rs"]
mod watchdog;

#[test]
fn ten_thousand_sleepers_wake_on_time() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let early = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..10_000)
        .map(|_| {
            let early = Arc::clone(&early);
            rt.spawn(move || {
                let began = Instant::now();
                greenring::time::sleep(Duration::from_millis(10));
                if began.elapsed() < Duration::from_millis(10) {
                    early.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(early.load(Ordering::SeqCst), 0, "no sleeper wakes early");
    assert!(
        elapsed < Duration::from_millis(900),
        "10,000 sleepers took {elapsed:?}"
    );
}

#[test]
fn sleeping_threads_leave_the_worker_to_others() {
    // One worker: while a thread sleeps, the others still run.
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let progress = Arc::new(AtomicUsize::new(0));
    let sleeper = rt.spawn(|| greenring::time::sleep(Duration::from_millis(100)));
    let counted = Arc::clone(&progress);
    let counter = rt.spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            counted.fetch_add(1, Ordering::SeqCst);
            greenring::yield_now();
        }
    });
    counter.join().unwrap();
    assert!(!sleeper.is_finished());
    assert!(progress.load(Ordering::SeqCst) > 100);
    sleeper.join().unwrap();
}

#[test]
fn sleep_until_and_zero_sleeps() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(|| {
        let deadline = Instant::now() + Duration::from_millis(15);
        greenring::time::sleep_until(deadline);
        assert!(Instant::now() >= deadline);
        greenring::time::sleep(Duration::ZERO);
        greenring::time::sleep_until(Instant::now() - Duration::from_millis(1));
    });
}

#[test]
fn park_timeout_times_out_and_wakes_early_on_unpark() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let timed = rt.block_on(|| {
        let start = Instant::now();
        greenring::thread::park_timeout(Duration::from_millis(30));
        start.elapsed()
    });
    assert!(timed >= Duration::from_millis(30), "{timed:?}");

    let handle = rt.spawn(|| {
        let start = Instant::now();
        greenring::thread::park_timeout(Duration::from_secs(30));
        start.elapsed()
    });
    std::thread::sleep(Duration::from_millis(20));
    handle.thread().unpark();
    let woke = handle.join().unwrap();
    assert!(
        woke < Duration::from_secs(5),
        "unpark ended the wait: {woke:?}"
    );
}

#[test]
fn sleep_and_park_timeout_off_green_threads() {
    let start = Instant::now();
    greenring::time::sleep(Duration::from_millis(10));
    greenring::thread::park_timeout(Duration::from_millis(10));
    assert!(start.elapsed() >= Duration::from_millis(10));
}

/// Durations too long for a timer: they mean "practically forever".
const HUGE: [Duration; 3] = [
    Duration::MAX,
    Duration::from_secs(u64::MAX / 2),
    Duration::from_secs(1 << 62),
];

#[test]
fn huge_sleeps_block_until_the_runtime_cancels_them() {
    watchdog::within(Duration::from_secs(20), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let sleepers: Vec<_> = HUGE
            .iter()
            .map(|&huge| rt.spawn(move || greenring::time::sleep(huge)))
            .chain([rt.spawn(|| {
                greenring::time::sleep_until(Instant::now() + Duration::from_secs(1 << 40));
            })])
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            sleepers.iter().all(|s| !s.is_finished()),
            "still asleep after 50 ms"
        );
        drop(rt);
        for sleeper in sleepers {
            let payload = sleeper.join().expect_err("cancelled by the shutdown");
            assert!(payload.is::<Cancelled>(), "cancelled, not a panic");
        }
    });
}

/// Runs `wait` (which must wait for what `wake` does 50 ms later) on a green thread and
/// then on an OS thread, under a watchdog.
fn wakes_after_50_ms<W, K>(name: &str, wait: W, wake: K)
where
    W: Fn(Duration) + Send + Sync + 'static,
    K: Fn() + Send + Sync + 'static,
{
    let wait = Arc::new(wait);
    let wake = Arc::new(wake);
    for huge in HUGE {
        for green in [true, false] {
            let (wait, wake) = (Arc::clone(&wait), Arc::clone(&wake));
            let name = name.to_owned();
            watchdog::within(Duration::from_secs(20), move || {
                let rt = Runtime::builder().worker_threads(1).build().unwrap();
                let start = Instant::now();
                let waiter = move || wait(huge);
                let waiter: Box<dyn FnOnce() -> Result<(), String> + Send> = if green {
                    let handle = rt.spawn(waiter);
                    Box::new(move || handle.join().map_err(|_| "panicked".to_owned()))
                } else {
                    let handle = std::thread::spawn(waiter);
                    Box::new(move || handle.join().map_err(|_| "panicked".to_owned()))
                };
                std::thread::sleep(Duration::from_millis(50));
                wake();
                waiter().unwrap_or_else(|err| panic!("{name} {huge:?}: {err}"));
                assert!(
                    start.elapsed() >= Duration::from_millis(50),
                    "{name} {huge:?} (green: {green}) returned before the wake-up"
                );
            });
        }
    }
}

#[test]
fn recv_timeout_with_a_huge_timeout_waits_for_the_message() {
    let (tx, rx) = mpsc::channel::<u32>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    wakes_after_50_ms(
        "recv_timeout",
        move |huge| assert_eq!(rx.lock().unwrap().recv_timeout(huge), Ok(7)),
        move || tx.send(7).unwrap(),
    );
    let (tx, rx) = mpmc::bounded::<u32>(0);
    wakes_after_50_ms(
        "mpmc recv_timeout",
        move |huge| assert_eq!(rx.recv_timeout(huge), Ok(7)),
        move || tx.send(7).unwrap(),
    );
}

#[test]
fn select_with_a_huge_timeout_waits_for_the_message() {
    let (tx, rx) = mpsc::channel::<u32>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    wakes_after_50_ms(
        "ready_timeout",
        move |huge| {
            let rx = rx.lock().unwrap();
            let mut select = Select::new();
            select.recv(&*rx);
            assert_eq!(select.ready_timeout(huge), Ok(0));
            assert_eq!(rx.try_recv(), Ok(7));
        },
        move || tx.send(7).unwrap(),
    );
}

#[test]
fn wait_timeout_with_a_huge_timeout_waits_for_the_notification() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let notifier = Arc::clone(&pair);
    wakes_after_50_ms(
        "wait_timeout_while",
        move |huge| {
            let (lock, cvar) = &*pair;
            let ready = lock.lock().unwrap();
            let (mut ready, result) = cvar.wait_timeout_while(ready, huge, |r| !*r).unwrap();
            assert!(*ready && !result.timed_out());
            // Consumed, for the next round: resetting it before the wait instead would
            // lose a notification that came first (a waiter started late).
            *ready = false;
        },
        move || {
            *notifier.0.lock().unwrap() = true;
            notifier.1.notify_all();
        },
    );
}

#[test]
fn park_timeout_with_a_huge_timeout_waits_for_the_unpark() {
    for huge in HUGE {
        watchdog::within(Duration::from_secs(20), move || {
            let rt = Runtime::builder().worker_threads(1).build().unwrap();
            let parked = rt.spawn(move || {
                let start = Instant::now();
                greenring::thread::park_timeout(huge);
                start.elapsed()
            });
            std::thread::sleep(Duration::from_millis(50));
            parked.thread().unpark();
            let waited = parked.join().expect("park_timeout panicked");
            assert!(
                waited >= Duration::from_millis(40),
                "park_timeout({huge:?}) returned after {waited:?}, before its unpark"
            );
        });
    }
}

#[test]
fn shutdown_timeout_with_a_huge_timeout_waits_for_the_threads() {
    watchdog::within(Duration::from_secs(20), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let sleeper = rt.spawn(|| greenring::time::sleep(Duration::from_millis(30)));
        assert!(rt.shutdown_timeout(Duration::MAX), "every thread finished");
        // The shutdown may cancel the sleep (unwinding the thread) or find it finished.
        if let Err(payload) = sleeper.join() {
            assert!(payload.is::<Cancelled>(), "the sleeper failed otherwise");
        }
    });
}
