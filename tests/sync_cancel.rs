//! Waits that end by unwinding: a green thread that starts to wait while its runtime shuts
//! down unwinds with `Cancelled` from inside the wait. It must leave the wait queue, and
//! whatever was handed to it (a lock, a permit, a notification, a message, room in a
//! channel) must pass on to the next waiter. Each test runs under a watchdog, so a lost
//! hand-off fails instead of hanging.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::runtime::Cancelled;
use greenring::sync::{mpmc, mpsc, Condvar, Mutex, RwLock, Semaphore};
use greenring::Runtime;

const LIMIT: Duration = Duration::from_secs(20);

/// Computes for `duration` without a blocking call (the worker cannot run anyone else).
fn compute(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

/// On a one-worker runtime without hand-off: `hold` runs first (it takes something, calls
/// `held`, and sleeps for a minute), then a thread computes for 200 ms and calls `wait`.
/// The runtime is dropped at 50 ms, so `wait` begins during the shutdown and unwinds with
/// `Cancelled` from inside its wait; `hold` unwinds from its sleep after that, releasing
/// what it holds. Returns once both have ended.
fn cancel_a_waiter<H, W>(hold: H, wait: W)
where
    H: FnOnce(&dyn Fn()) + Send + 'static,
    W: FnOnce() + Send + 'static,
{
    let rt = Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(None)
        .build()
        .unwrap();
    let (holding, held) = std_mpsc::channel();
    let holder = rt.spawn(move || hold(&|| holding.send(()).unwrap()));
    held.recv().unwrap();
    let waiter = rt.spawn(move || {
        compute(Duration::from_millis(200));
        wait();
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(rt);
    for handle in [holder, waiter] {
        let payload = handle.join().expect_err("cancelled by the shutdown");
        assert!(payload.is::<Cancelled>(), "unwound by the runtime");
    }
}

/// The holder of a scenario whose primitive needs nothing held: it only waits to be
/// cancelled.
fn hold_nothing(held: &dyn Fn()) {
    held();
    sleep_until_cancelled();
}

/// Sleeps long enough to be cancelled by the runtime's shutdown.
fn sleep_until_cancelled() {
    greenring::time::sleep(Duration::from_secs(60));
}

#[test]
fn a_lock_handed_to_a_cancelled_thread_passes_to_the_next() {
    watchdog::within(LIMIT, || {
        let m = Arc::new(Mutex::new(0));
        let (m1, m2) = (Arc::clone(&m), Arc::clone(&m));
        cancel_a_waiter(
            move |held| {
                let _guard = m1.lock().unwrap();
                held();
                sleep_until_cancelled();
            },
            move || *m2.lock().unwrap() += 1,
        );
        let value = *m.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        assert_eq!(value, 0, "the cancelled thread never held the lock");
    });
}

#[test]
fn an_rwlock_handed_to_a_cancelled_writer_passes_to_the_next() {
    watchdog::within(LIMIT, || {
        let lock = Arc::new(RwLock::new(0));
        let (l1, l2) = (Arc::clone(&lock), Arc::clone(&lock));
        cancel_a_waiter(
            move |held| {
                let _guard = l1.read().unwrap();
                held();
                sleep_until_cancelled();
            },
            move || *l2.write().unwrap() += 1,
        );
        *lock.write().unwrap() += 1;
        assert_eq!(*lock.read().unwrap(), 1);
    });
}

#[test]
fn an_rwlock_handed_to_a_cancelled_reader_passes_to_the_next() {
    watchdog::within(LIMIT, || {
        let lock = Arc::new(RwLock::new(0));
        let (l1, l2) = (Arc::clone(&lock), Arc::clone(&lock));
        cancel_a_waiter(
            move |held| {
                let _guard = l1.write().unwrap();
                held();
                sleep_until_cancelled();
            },
            move || assert_eq!(*l2.read().unwrap(), 0),
        );
        let value = *lock
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        assert_eq!(value, 0);
        assert!(lock.is_poisoned(), "the writer unwound holding it");
    });
}

#[test]
fn a_permit_handed_to_a_cancelled_thread_is_not_lost() {
    watchdog::within(LIMIT, || {
        let semaphore = Arc::new(Semaphore::new(1));
        let (s1, s2) = (Arc::clone(&semaphore), Arc::clone(&semaphore));
        cancel_a_waiter(
            move |held| {
                let _permit = s1.acquire();
                held();
                sleep_until_cancelled();
            },
            move || drop(s2.acquire()),
        );
        assert_eq!(semaphore.available_permits(), 1, "the permit came back");
        drop(semaphore.acquire());
        assert_eq!(semaphore.available_permits(), 1);
    });
}

#[test]
fn a_condvar_notification_skips_a_cancelled_waiter() {
    watchdog::within(LIMIT, || {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let waiting = Arc::clone(&pair);
        cancel_a_waiter(hold_nothing, move || {
            let (lock, cvar) = &*waiting;
            drop(cvar.wait(lock.lock().unwrap()));
        });
        // A live waiter queues behind the cancelled one; one notification must reach it.
        let live = {
            let pair = Arc::clone(&pair);
            std::thread::spawn(move || {
                let (lock, cvar) = &*pair;
                drop(cvar.wait_while(lock.lock().unwrap(), |ready| !*ready));
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        *pair.0.lock().unwrap() = true;
        pair.1.notify_one();
        live.join().unwrap();
    });
}

#[test]
fn a_message_for_a_cancelled_receiver_reaches_a_live_one() {
    watchdog::within(LIMIT, || {
        let (tx, rx) = mpmc::unbounded::<u32>();
        let cancelled = rx.clone();
        cancel_a_waiter(hold_nothing, move || {
            let _ = cancelled.recv();
        });
        let live = std::thread::spawn(move || rx.recv());
        std::thread::sleep(Duration::from_millis(50));
        tx.send(7).unwrap();
        assert_eq!(live.join().unwrap(), Ok(7));
    });
    watchdog::within(LIMIT, || {
        let (tx, rx) = mpsc::channel::<u32>();
        let rx = Arc::new(rx);
        let cancelled = Arc::clone(&rx);
        cancel_a_waiter(hold_nothing, move || {
            let _ = cancelled.recv();
        });
        let live = std::thread::spawn(move || rx.recv());
        std::thread::sleep(Duration::from_millis(50));
        tx.send(7).unwrap();
        assert_eq!(live.join().unwrap(), Ok(7));
    });
}

#[test]
fn room_for_a_cancelled_sender_passes_to_a_live_one() {
    watchdog::within(LIMIT, || {
        let (tx, rx) = mpsc::sync_channel::<u32>(1);
        tx.send(1).unwrap();
        let cancelled = tx.clone();
        cancel_a_waiter(hold_nothing, move || {
            let _ = cancelled.send(2);
        });
        let live = std::thread::spawn(move || tx.send(3));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(rx.recv(), Ok(1));
        live.join().unwrap().unwrap();
        assert_eq!(rx.recv(), Ok(3), "the cancelled send never happened");
    });
}

#[test]
fn a_rendezvous_send_that_unwinds_takes_its_value_back() {
    watchdog::within(LIMIT, || {
        let (tx, rx) = mpsc::sync_channel::<u32>(0);
        let cancelled = tx.clone();
        cancel_a_waiter(hold_nothing, move || {
            let _ = cancelled.send(1);
        });
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
        drop(tx);
    });
}
