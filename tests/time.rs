//! Sleeping and timed parking on green threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::Runtime;

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
