//! The demo: many green threads at once, written as plain blocking code.
//!
//! Spawns a ring of green threads (100,000 by default), passes a token around it with
//! `park`/`unpark`, then joins them all and reports the times, the memory used, and how the
//! runtime switches and guards its stacks.
//!
//! ```text
//! cargo run --release --example spawn_many -- [--threads N] [--hops H] [--workers W]
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use greenring::thread::Thread;
use greenring::Runtime;

struct Ring {
    /// Index of the thread holding the token.
    holder: AtomicUsize,
    /// Hops still to make; the ring stops at zero.
    hops_left: AtomicU64,
    done: AtomicBool,
    threads: OnceLock<Vec<Thread>>,
}

/// Body of ring member `me`: wait for the token, pass it to the next member, repeat.
fn member(ring: &Ring, me: usize) -> u64 {
    let threads = loop {
        if let Some(threads) = ring.threads.get() {
            break threads;
        }
        greenring::park();
    };
    let mut passed = 0;
    loop {
        while ring.holder.load(Ordering::Acquire) != me && !ring.done.load(Ordering::Acquire) {
            greenring::park();
        }
        if ring.done.load(Ordering::Acquire) {
            return passed;
        }
        if ring.hops_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            ring.done.store(true, Ordering::Release);
            threads.iter().for_each(Thread::unpark);
            return passed + 1;
        }
        passed += 1;
        let next = (me + 1) % threads.len();
        ring.holder.store(next, Ordering::Release);
        threads[next].unpark();
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(at) => args
            .get(at + 1)
            .and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or_else(|| panic!("{name} takes a number")),
        None => default,
    }
}

fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn main() -> std::io::Result<()> {
    let threads = arg("--threads", 100_000) as usize;
    let hops = arg("--hops", 1_000_000);
    let mut builder = Runtime::builder();
    if std::env::args().any(|a| a == "--workers") {
        builder = builder.worker_threads(arg("--workers", 0) as usize);
    }
    let rt = builder.build()?;
    println!(
        "greenring demo: a ring of {threads} green threads on {} workers \
         (switch: {:?}, stack guards: {:?}, {} KiB stacks)",
        rt.worker_threads(),
        rt.switch_backend(),
        rt.stack_guard(),
        greenring::DEFAULT_STACK_SIZE / 1024
    );

    let ring = Arc::new(Ring {
        holder: AtomicUsize::new(0),
        hops_left: AtomicU64::new(hops),
        done: AtomicBool::new(false),
        threads: OnceLock::new(),
    });
    // Spawn from a green thread, as a server would: spawns then go to the worker's own
    // queue instead of waking a sleeping worker through the injector each time.
    let spawner_ring = Arc::clone(&ring);
    let (handles, spawned) = rt.block_on(move || {
        let start = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|me| {
                let ring = Arc::clone(&spawner_ring);
                greenring::spawn(move || member(&ring, me))
            })
            .collect();
        (handles, start.elapsed())
    });
    println!(
        "spawned {threads} green threads in {:.1} ms ({:.0} ns each)",
        spawned.as_secs_f64() * 1e3,
        spawned.as_nanos() as f64 / threads as f64
    );

    let start = Instant::now();
    let members: Vec<Thread> = handles.iter().map(|h| h.thread().clone()).collect();
    ring.threads.set(members).ok();
    ring.threads.get().unwrap().iter().for_each(Thread::unpark);
    let mut total = 0;
    for handle in handles {
        total += handle.join().expect("ring members do not panic");
    }
    let ran = start.elapsed();
    assert_eq!(total, hops, "every hop is counted exactly once");
    println!(
        "passed the token {hops} hops around the ring and joined every thread in {:.1} ms \
         ({:.0} ns a hop: one park/unpark hand-off)",
        ran.as_secs_f64() * 1e3,
        ran.as_nanos() as f64 / hops as f64
    );
    if let Some(mib) = peak_rss_mib() {
        println!(
            "peak resident memory: {mib} MiB ({:.1} KiB per green thread, stacks included)",
            mib as f64 * 1024.0 / threads as f64
        );
    }
    Ok(())
}
