//! spawn_blocking: results, panics, and green threads running meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::Runtime;

#[test]
fn results_and_panics_propagate_from_green_and_os_threads() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let value = rt.block_on(|| greenring::spawn_blocking(|| 6 * 7).join().unwrap());
    assert_eq!(value, 42);
    let payload = greenring::spawn_blocking(|| -> u8 { panic!("blocking boom") })
        .join()
        .unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"blocking boom"));
    assert!(!greenring::spawn_blocking(|| ()).thread().is_green());
}

#[test]
fn green_threads_run_while_a_blocking_job_blocks() {
    // One worker: the green thread waiting for the blocking job parks, and the other 100
    // green threads keep making progress during the 200 ms the job blocks its OS thread.
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let progress = Arc::new(AtomicUsize::new(0));
    let waiter = rt.spawn(|| {
        greenring::spawn_blocking(|| std::thread::sleep(Duration::from_millis(200)))
            .join()
            .unwrap();
        Instant::now()
    });
    let start = Instant::now();
    let workers: Vec<_> = (0..100)
        .map(|_| {
            let progress = Arc::clone(&progress);
            rt.spawn(move || {
                while start.elapsed() < Duration::from_millis(150) {
                    progress.fetch_add(1, Ordering::Relaxed);
                    greenring::time::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    let mid = progress.load(Ordering::Relaxed);
    assert!(
        mid >= 100 * 10,
        "the 100 green threads progressed: {mid} steps"
    );
    assert!(waiter.join().unwrap() >= start + Duration::from_millis(150));
}

#[test]
fn a_blocking_jobs_thread_can_be_unparked_before_or_after_it_starts() {
    for delay in [Duration::ZERO, Duration::from_millis(20)] {
        let handle = greenring::spawn_blocking(|| {
            greenring::park();
            "unparked"
        });
        std::thread::sleep(delay);
        handle.thread().unpark();
        assert_eq!(handle.join().unwrap(), "unparked");
    }
}
