//! The cooperative budget of `greenring::sync`: a green thread that spins on calls that
//! never park (`try_recv`, `try_lock`, an uncontended `lock`, a `send` that wakes its
//! receiver...) yields every so often, so the thread it waits for can run even when the two
//! share the only worker. Every test runs under a watchdog: a spin that starves its worker
//! fails instead of hanging.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenring::runtime::Cancelled;
use greenring::sync::{mpmc, mpsc, Mutex, RwLock, Semaphore, TryLockError};
use greenring::Runtime;

const LIMIT: Duration = Duration::from_secs(20);

/// One worker and no monitor: a thread that never yields keeps every other thread from
/// running, and nothing rescues them.
fn one_worker() -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(None)
        .build()
        .unwrap()
}

/// Runs `body` as a green thread of a one-worker runtime, under the watchdog.
fn on_one_worker<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog::within(LIMIT, move || one_worker().block_on(body))
}

#[test]
fn spinning_on_try_recv_lets_the_sender_on_the_same_worker_run() {
    let got = on_one_worker(|| {
        let (tx, rx) = mpsc::channel();
        let _sender = greenring::spawn(move || tx.send(7).unwrap());
        loop {
            match rx.try_recv() {
                Ok(value) => break value,
                Err(mpsc::TryRecvError::Empty) => continue,
                Err(err) => panic!("{err}"),
            }
        }
    });
    assert_eq!(got, 7);
}

#[test]
fn spinning_on_mpmc_try_iter_while_sending_requests_reaches_its_total() {
    // The child asks for values by sending requests and collects them with `try_iter`,
    // neither of which parks; the parent answers each request it receives.
    let total = on_one_worker(|| {
        let (request_tx, request_rx) = mpmc::unbounded();
        let (response_tx, response_rx) = mpmc::unbounded();
        let child = greenring::spawn(move || {
            let mut total = 0;
            loop {
                for value in response_rx.try_iter() {
                    total += value;
                    if total == 6 {
                        return total;
                    }
                }
                request_tx.send(()).unwrap();
            }
        });
        for () in request_rx.iter() {
            if response_tx.send(2).is_err() {
                break;
            }
        }
        child.join().unwrap()
    });
    assert_eq!(total, 6);
}

#[test]
fn spinning_on_try_send_to_a_full_channel_lets_the_receiver_make_room() {
    on_one_worker(|| {
        let (tx, rx) = mpsc::sync_channel(1);
        tx.send(1).unwrap();
        let receiver = greenring::spawn(move || (rx.recv().unwrap(), rx.recv().unwrap()));
        let mut value = 2;
        loop {
            match tx.try_send(value) {
                Ok(()) => break,
                Err(mpsc::TrySendError::Full(back)) => value = back,
                Err(err) => panic!("{err}"),
            }
        }
        assert_eq!(receiver.join().unwrap(), (1, 2));
    });
}

/// Spawns a thread that runs `hold`, which takes something and calls `held` while it holds
/// it; `held` tells the caller and yields. Returns once the thread holds it.
fn hold_then_release(hold: impl FnOnce(&dyn Fn()) + Send + 'static) -> greenring::JoinHandle<()> {
    let (held_tx, held) = mpsc::channel();
    let holder = greenring::spawn(move || {
        hold(&|| {
            held_tx.send(()).unwrap();
            greenring::yield_now();
        })
    });
    held.recv().unwrap();
    holder
}

#[test]
fn spinning_on_try_lock_lets_the_holder_release() {
    on_one_worker(|| {
        let lock = Arc::new(Mutex::new(0));
        let holder = hold_then_release({
            let lock = Arc::clone(&lock);
            move |held| {
                let _guard = lock.lock().unwrap();
                held();
            }
        });
        let mut spins = 0u64;
        let guard = loop {
            match lock.try_lock() {
                Ok(guard) => break guard,
                Err(TryLockError::WouldBlock) => spins += 1,
                Err(err) => panic!("{err}"),
            }
        };
        assert!(spins > 0, "the holder held the lock when the spin began");
        drop(guard);
        holder.join().unwrap();
    });
}

#[test]
fn spinning_on_try_read_and_try_write_lets_the_holder_release() {
    on_one_worker(|| {
        let lock = Arc::new(RwLock::new(0));
        let writer = hold_then_release({
            let lock = Arc::clone(&lock);
            move |held| {
                let _guard = lock.write().unwrap();
                held();
            }
        });
        while lock.try_read().is_err() {}
        writer.join().unwrap();
        let reader = hold_then_release({
            let lock = Arc::clone(&lock);
            move |held| {
                let _guard = lock.read().unwrap();
                held();
            }
        });
        while lock.try_write().is_err() {}
        reader.join().unwrap();
    });
}

#[test]
fn spinning_on_try_acquire_lets_the_thread_that_adds_a_permit_run() {
    on_one_worker(|| {
        let permits = Arc::new(Semaphore::new(0));
        let adder = greenring::spawn({
            let permits = Arc::clone(&permits);
            move || permits.add_permits(1)
        });
        let permit = loop {
            if let Some(permit) = permits.try_acquire() {
                break permit;
            }
        };
        drop(permit);
        adder.join().unwrap();
    });
}

#[test]
fn polling_an_uncontended_lock_lets_the_thread_that_changes_the_value_run() {
    on_one_worker(|| {
        let flag = Arc::new(Mutex::new(false));
        let setter = greenring::spawn({
            let flag = Arc::clone(&flag);
            move || *flag.lock().unwrap() = true
        });
        while !*flag.lock().unwrap() {}
        setter.join().unwrap();
    });
}

#[test]
fn a_sender_that_keeps_waking_its_receiver_lets_it_run() {
    // Every send wakes the parked receiver onto the sender's worker without parking the
    // sender, which keeps sending until the receiver has run.
    on_one_worker(|| {
        let (tx, rx) = mpsc::channel();
        let received = Arc::new(AtomicBool::new(false));
        let receiver = greenring::spawn({
            let received = Arc::clone(&received);
            move || {
                rx.recv().unwrap();
                received.store(true, Ordering::SeqCst);
                rx.into_iter().count()
            }
        });
        greenring::yield_now(); // the receiver parks in `recv`
        while !received.load(Ordering::SeqCst) {
            tx.send(()).unwrap();
        }
        drop(tx);
        receiver.join().unwrap();
    });
}

#[test]
fn polling_is_finished_lets_the_joined_thread_run() {
    on_one_worker(|| {
        let child = greenring::spawn(|| 5);
        while !child.is_finished() {}
        assert_eq!(child.join().unwrap(), 5);
    });
}

#[test]
fn the_budget_yields_within_64_calls() {
    // The documented budget: at most 64 calls in a row that do not park, then a yield.
    let calls = on_one_worker(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let (_tx, rx) = mpsc::channel::<()>();
        let other = greenring::spawn({
            let ran = Arc::clone(&ran);
            move || ran.store(true, Ordering::SeqCst)
        });
        let mut calls = 0;
        while !ran.load(Ordering::SeqCst) {
            let _ = rx.try_recv();
            calls += 1;
        }
        other.join().unwrap();
        calls
    });
    assert!(
        (2..=64).contains(&calls),
        "{calls} calls before the other thread ran"
    );
}

#[test]
fn a_thread_spinning_on_try_recv_unwinds_when_its_runtime_shuts_down() {
    // The budget's yield is a cancellation point during shutdown: a spin that would never
    // end lets the shutdown end it.
    let rt = one_worker();
    let (tx, rx) = mpsc::channel::<()>();
    let spins = Arc::new(AtomicUsize::new(0));
    let spinner = rt.spawn({
        let spins = Arc::clone(&spins);
        move || loop {
            let _ = rx.try_recv();
            spins.fetch_add(1, Ordering::Relaxed);
        }
    });
    while spins.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    watchdog::within(LIMIT, move || drop(rt));
    let payload = spinner.join().unwrap_err();
    assert!(payload.is::<Cancelled>());
    drop(tx);
}

#[test]
fn a_thread_spinning_while_it_unwinds_does_not_switch_away() {
    // A destructor that spins on `try_lock` during a panic runs past the budget: the
    // thread must not switch (the thread run next would see `panicking()` true).
    let seen_panicking = on_one_worker(|| {
        struct SpinsOnDrop(Arc<Mutex<()>>);
        impl Drop for SpinsOnDrop {
            fn drop(&mut self) {
                for _ in 0..1000 {
                    drop(self.0.try_lock());
                }
            }
        }
        let seen = Arc::new(Mutex::new(None));
        let bystander = Arc::new(Mutex::new(None));
        let panicker = greenring::spawn({
            let (seen, bystander) = (Arc::clone(&seen), Arc::clone(&bystander));
            move || {
                *bystander.lock().unwrap() = Some(greenring::spawn(move || {
                    *seen.lock().unwrap() = Some(std::thread::panicking());
                }));
                let _spins = SpinsOnDrop(Arc::new(Mutex::new(())));
                panic!("unwinds through a spinning destructor");
            }
        });
        assert!(panicker.join().is_err());
        let bystander = bystander.lock().unwrap().take().expect("spawned");
        bystander.join().unwrap();
        let seen = seen.lock().unwrap().take();
        seen
    });
    assert_eq!(seen_panicking, Some(false));
}
