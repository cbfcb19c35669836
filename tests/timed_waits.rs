//! Timed waits woken before their deadline free their timers at once: a long run of
//! short waits with long timeouts leaves no pending timer behind and does not grow the
//! process's memory. (The suite runs again with `GREENRING_IO_BACKEND=epoll`, so this
//! covers both backends.)

#[path = "support/watchdog.rs"]
mod watchdog;

#[path = "support/block.rs"]
mod block;
use std::time::Duration;

use greenring::sync::mpsc;
use greenring::Runtime;

const ROUND_TRIPS: usize = 100_000;
const LONG: Duration = Duration::from_secs(300);

/// Resident set size of this process, in bytes (`/proc/self/statm`).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no memory-safety preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// Runs `round_trips` ping-pongs between two green threads, each side waiting with
/// `recv_timeout(LONG)` (or `park_timeout(LONG)` when `park` is set), so every wait ends
/// early; returns the runtime's pending timers afterwards.
fn ping_pong(rt: &Runtime, round_trips: usize, park: bool) -> u64 {
    if park {
        rt.block_on(move || {
            let main = greenring::thread::current();
            let (ready_tx, ready_rx) = mpsc::channel();
            let echo = greenring::spawn(move || {
                ready_tx.send(greenring::thread::current()).unwrap();
                for _ in 0..round_trips {
                    greenring::thread::park_timeout(LONG);
                    main.unpark();
                }
            });
            let echo_thread = ready_rx.recv().unwrap();
            for _ in 0..round_trips {
                echo_thread.unpark();
                greenring::thread::park_timeout(LONG);
            }
            // Tokens do not count: the last unpark may come after a spurious return.
            echo_thread.unpark();
            echo.join().unwrap();
        });
    } else {
        rt.block_on(move || {
            let (ping_tx, ping_rx) = mpsc::channel::<usize>();
            let (pong_tx, pong_rx) = mpsc::channel::<usize>();
            let echo = greenring::spawn(move || {
                while let Ok(n) = ping_rx.recv_timeout(LONG) {
                    pong_tx.send(n).unwrap();
                }
            });
            for n in 0..round_trips {
                ping_tx.send(n).unwrap();
                assert_eq!(pong_rx.recv_timeout(LONG).unwrap(), n);
            }
            drop(ping_tx);
            echo.join().unwrap();
        });
    }
    // The removals' completions arrive with the workers' next turns.
    let mut pending = rt.metrics().pending_timers();
    for _ in 0..200 {
        if pending == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        pending = rt.metrics().pending_timers();
    }
    pending
}

fn early_woken_waits_free_their_timers(park: bool) {
    watchdog::within(Duration::from_secs(120), move || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        // Warm up: stacks, channel buffers and allocator caches reach their steady size.
        ping_pong(&rt, 10_000, park);
        let before = rss();
        let pending = ping_pong(&rt, ROUND_TRIPS, park);
        let grown = rss().saturating_sub(before);
        eprintln!("RSS grew by {} KiB, {pending} timers pending", grown >> 10);
        assert!(pending <= 2, "{pending} timers still pending");
        assert!(
            grown < 2 << 20,
            "RSS grew by {} KiB over {ROUND_TRIPS} round trips",
            grown >> 10
        );
    });
}

#[test]
fn early_woken_recv_timeouts_free_their_timers() {
    early_woken_waits_free_their_timers(false);
}

#[test]
#[cfg_attr(
    greenring_migrate,
    ignore = "a thread resumed on another worker leaves its park timer on the first worker's ring until it fires"
)]
fn early_woken_park_timeouts_free_their_timers() {
    early_woken_waits_free_their_timers(true);
}

/// A timed wait of an hour, made by a thread that first runs while its runtime shuts down
/// (it was queued behind a thread that kept the only worker busy): the wait is a
/// cancellation point, so the thread unwinds, and the drop of the runtime is not kept
/// waiting for the timer (before: the timer outlived its waiter, and the drop waited an
/// hour: with another thread parked for good, the shutdown waited for nothing in flight
/// before its grace, and the timer stayed in flight). On both backends, for each kind of
/// timed wait.
#[test]
#[cfg_attr(
    greenring_migrate,
    ignore = "a runtime that migrates started threads hands the waiter to another OS thread before the shutdown"
)]
fn a_timed_wait_begun_during_shutdown_does_not_keep_the_drop_waiting() {
    type Wait = fn();
    let waits: [(&str, Wait); 3] = [
        ("recv_timeout", || {
            let (_tx, rx) = mpsc::channel::<()>();
            let _ = rx.recv_timeout(Duration::from_secs(3600));
        }),
        ("Condvar::wait_timeout", || {
            let lock = greenring::sync::Mutex::new(());
            let condvar = greenring::sync::Condvar::new();
            let guard = lock.lock().unwrap();
            let _ = condvar.wait_timeout(guard, Duration::from_secs(3600));
        }),
        ("park_timeout", || {
            greenring::thread::park_timeout(Duration::from_secs(3600))
        }),
    ];
    for backend in [greenring::IoBackend::IoUring, greenring::IoBackend::Epoll] {
        for (name, wait) in waits {
            // No extra worker: the waiter must first run during the shutdown.
            let Ok(rt) = Runtime::builder()
                .worker_threads(1)
                .max_extra_workers(0)
                .io_backend(backend)
                .shutdown_grace(Duration::from_millis(100))
                .build()
            else {
                continue;
            };
            let took = watchdog::within(Duration::from_secs(20), move || {
                // Parked for good before the shutdown: the shutdown wakes it once nothing
                // else can progress.
                let (keep, never) = mpsc::channel::<()>();
                let parked = rt.spawn(move || never.recv());
                while rt.metrics().parks() == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Keeps the only worker's OS thread until the shutdown has begun (a spawn
                // then fails), so the waiter below first runs during the shutdown.
                let busy = rt.spawn(|| {
                    while greenring::thread::Builder::new().spawn(|| ()).is_ok() {
                        block::block_os_thread(Duration::from_millis(1));
                    }
                });
                let waiter = rt.spawn(wait);
                std::thread::sleep(Duration::from_millis(20));
                let start = std::time::Instant::now();
                drop(rt);
                let took = start.elapsed();
                busy.join().unwrap();
                let payload = waiter.join().expect_err("the waiter was cancelled");
                assert!(payload.is::<greenring::runtime::Cancelled>());
                assert!(parked.join().is_err(), "the parked thread was cancelled");
                drop(keep);
                took
            });
            assert!(
                took < Duration::from_millis(900),
                "{name} on {backend}: the drop took {took:?}"
            );
        }
    }
}
