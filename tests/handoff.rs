//! The hand-off monitor of a runtime that migrates started threads: a green thread
//! blocking its worker's OS thread in code greenring does not own must not stop the
//! worker's other green threads. (Anchored runtimes, the default, are covered by
//! `tests/anchoring.rs`.)

#[path = "support/block.rs"]
mod block;
#[path = "support/recorder.rs"]
mod recorder;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::runtime::Builder;
use greenring::Runtime;

/// A builder for a runtime that migrates started threads.
fn migrating() -> Builder {
    // SAFETY: the green threads of these tests hold no OS-thread-bound state across
    // blocking calls (only owned, Send data).
    unsafe { Runtime::builder().migrate_started_threads() }
}

/// Records warnings, to check the monitor's report.
fn warnings_about(name: &str) -> usize {
    recorder::logged(&[&format!("'{name}'")]).len()
}

/// 100 green threads count while one calls `block::block_os_thread(200 ms)`; every one of them
/// must make progress inside that window.
fn others_progress_while_one_blocks(workers: usize, name: &str) {
    recorder::install();
    let rt = migrating().worker_threads(workers).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..100).map(|_| AtomicU64::new(0)).collect());
    let mut others = Vec::new();
    for i in 0..100 {
        let (stop, counters) = (Arc::clone(&stop), Arc::clone(&counters));
        others.push(rt.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                counters[i].fetch_add(1, Ordering::Relaxed);
                // Half of them sit in the run queue, half on the worker's timer heap.
                if i % 2 == 0 {
                    greenring::yield_now();
                } else {
                    greenring::time::sleep(Duration::from_millis(1));
                }
            }
        }));
    }
    // Let them all get going before the blocker takes the worker.
    block::block_os_thread(Duration::from_millis(50));
    let blocking = Arc::new(AtomicBool::new(false));
    let blocker = {
        let blocking = Arc::clone(&blocking);
        greenring::thread::Builder::new()
            .name(name.to_owned())
            .spawn_on(&rt, move || {
                blocking.store(true, Ordering::SeqCst);
                let start = Instant::now();
                block::block_os_thread(Duration::from_millis(200));
                start.elapsed()
            })
            .unwrap()
    };
    while !blocking.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let entered = Instant::now();
    // Past the 10 ms threshold (and a sampling period), well inside the 200 ms window.
    block::block_os_thread(Duration::from_millis(40));
    let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    block::block_os_thread(Duration::from_millis(100));
    let after: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let window = entered.elapsed();
    assert!(
        !blocker.is_finished(),
        "the blocker must still be blocking when the progress is sampled"
    );
    assert!(
        window < Duration::from_millis(200),
        "sampled late: {window:?}"
    );
    let stalled: Vec<usize> = (0..100).filter(|&i| after[i] <= before[i]).collect();
    assert!(
        stalled.is_empty(),
        "green threads {stalled:?} made no progress while another blocked the worker"
    );
    let blocked_for = blocker.join().unwrap();
    assert!(blocked_for >= Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for handle in others {
        handle.join().unwrap();
    }
    let metrics = rt.metrics();
    assert!(metrics.handoffs >= 1, "{metrics:?}");
    assert_eq!(warnings_about(name), 1, "one report per green thread");
}

#[test]
fn one_worker_keeps_running_others_while_a_thread_blocks() {
    others_progress_while_one_blocks(1, "blocker-1w");
}

#[test]
fn two_workers_keep_running_others_while_a_thread_blocks() {
    others_progress_while_one_blocks(2, "blocker-2w");
}

#[test]
fn a_thread_blocking_twice_is_reported_once() {
    recorder::install();
    let rt = migrating().worker_threads(1).build().unwrap();
    let handle = greenring::thread::Builder::new()
        .name("twice".to_owned())
        .spawn_on(&rt, || {
            block::block_os_thread(Duration::from_millis(60));
            greenring::yield_now();
            block::block_os_thread(Duration::from_millis(60));
            7
        })
        .unwrap();
    assert_eq!(handle.join().unwrap(), 7);
    assert!(rt.metrics().handoffs >= 2, "{:?}", rt.metrics());
    assert_eq!(warnings_about("twice"), 1);
}

/// OS threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

#[test]
fn os_threads_grow_only_with_simultaneous_stalls() {
    let rt = migrating()
        .worker_threads(1)
        .thread_name("hoshrink")
        .build()
        .unwrap();
    rt.block_on(|| ());
    // The worker and the monitor (a new thread takes its name a moment after it starts).
    let baseline = 2;
    wait_for_threads("hoshrink", baseline);
    for round in 1..=3u64 {
        let busy = rt.spawn(|| {
            for _ in 0..40 {
                greenring::time::sleep(Duration::from_millis(2));
            }
        });
        rt.block_on(|| block::block_os_thread(Duration::from_millis(60)));
        busy.join().unwrap();
        assert!(rt.metrics().handoffs >= round, "{:?}", rt.metrics());
        // One stall at a time: the exiled OS thread parks as a spare and the next
        // hand-off reuses it.
        wait_for_threads("hoshrink", baseline + 1);
    }
    // The runtime still works, on its new carrier.
    assert_eq!(rt.block_on(|| 5), 5);
    drop(rt);
    assert_eq!(
        threads_named("hoshrink"),
        0,
        "every carrier exits at shutdown"
    );
}

/// Waits (up to 5 s) until exactly `count` threads are named `prefix...`.
fn wait_for_threads(prefix: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = threads_named(prefix);
        if now == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now} threads named {prefix}*, expected {count}"
        );
        block::block_os_thread(Duration::from_millis(5));
    }
}

#[test]
fn a_cpu_bound_loop_is_handed_off_too() {
    let rt = migrating().worker_threads(1).build().unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        rt.spawn(move || {
            for _ in 0..20 {
                ticks.fetch_add(1, Ordering::Relaxed);
                greenring::time::sleep(Duration::from_millis(2));
            }
        })
    };
    let spin = rt.spawn(move || {
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(150) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        x
    });
    ticker.join().unwrap();
    assert!(
        !spin.is_finished(),
        "the ticker finished its 20 sleeps while the spinner still ran"
    );
    spin.join().unwrap();
    assert_eq!(ticks.load(Ordering::Relaxed), 20);
}

#[test]
fn handoff_can_be_disabled_and_rejects_tiny_thresholds() {
    let err = migrating()
        .handoff_threshold(Some(Duration::from_micros(10)))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("hand-off threshold"), "{err}");
    let rt = migrating()
        .worker_threads(1)
        .handoff_threshold(None)
        .build()
        .unwrap();
    rt.block_on(|| block::block_os_thread(Duration::from_millis(30)));
    assert_eq!(rt.metrics().handoffs, 0);
}

#[test]
fn shutdown_with_a_blocked_thread_waits_for_it_and_finishes() {
    let rt = migrating().worker_threads(1).build().unwrap();
    let blocked = rt.spawn(|| {
        block::block_os_thread(Duration::from_millis(100));
        // Its next blocking point unwinds with Cancelled.
        greenring::time::sleep(Duration::from_secs(3600));
    });
    let sleeper = rt.spawn(|| greenring::time::sleep(Duration::from_secs(3600)));
    block::block_os_thread(Duration::from_millis(30));
    assert!(rt.shutdown_timeout(Duration::from_secs(10)));
    assert!(blocked.join().is_err());
    assert!(sleeper.join().is_err());
}
