//! Loom models of the wait-queue protocol, run on the production code (see `shim`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib sync::loom_tests
//! ```
//!
//! Loom explores every interleaving of the threads below (with a preemption bound), so a
//! lost wake-up shows as a deadlock it reports, and a double hand-off as a failed assertion.

use std::time::Instant;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::wait::Waiter;
use super::{mpsc, Condvar, Mutex, RwLock, Semaphore};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

#[test]
fn a_notify_racing_a_timeout_has_one_winner() {
    model(|| {
        let waiter = Waiter::new();
        let notifier = {
            let waiter = std::sync::Arc::clone(&waiter);
            thread::spawn(move || waiter.notify())
        };
        // Under loom a timed wait may give up at any point of the race.
        let woke = waiter.wait(Some(Instant::now()));
        let notified = notifier.join().unwrap();
        assert_eq!(woke, notified);
    });
}

#[test]
fn mutex_hand_off_loses_no_wake_up() {
    model(|| {
        let counter = Arc::new(Mutex::new(0));
        let others: Vec<_> = (0..2)
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || *counter.lock().unwrap() += 1)
            })
            .collect();
        *counter.lock().unwrap() += 1;
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(*counter.lock().unwrap(), 3);
    });
}

#[test]
fn semaphore_never_exceeds_its_permits() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1));
        let inside = Arc::new(AtomicUsize::new(0));
        let others: Vec<_> = (0..2)
            .map(|_| {
                let (semaphore, inside) = (Arc::clone(&semaphore), Arc::clone(&inside));
                thread::spawn(move || {
                    let _permit = semaphore.acquire();
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "one permit, one holder"
                    );
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(semaphore.available_permits(), 1);
    });
}

#[test]
fn condvar_notification_is_not_lost() {
    model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let notifier = {
            let pair = Arc::clone(&pair);
            thread::spawn(move || {
                *pair.0.lock().unwrap() = true;
                pair.1.notify_one();
            })
        };
        let (lock, cvar) = &*pair;
        let ready = cvar
            .wait_while(lock.lock().unwrap(), |ready| !*ready)
            .unwrap();
        assert!(*ready);
        drop(ready);
        notifier.join().unwrap();
    });
}

#[test]
fn bounded_and_rendezvous_channels_deliver_everything() {
    for bound in [0, 1] {
        model(move || {
            let (tx, rx) = mpsc::sync_channel::<u8>(bound);
            let sender = thread::spawn(move || {
                tx.send(1).unwrap();
                tx.send(2).unwrap();
            });
            assert_eq!(rx.recv(), Ok(1));
            assert_eq!(rx.recv(), Ok(2));
            sender.join().unwrap();
            assert!(rx.recv().is_err(), "disconnected once the sender is gone");
        });
    }
}

#[test]
fn rwlock_readers_and_a_writer_all_finish() {
    model(|| {
        let lock = Arc::new(RwLock::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    let value = *lock.read().unwrap();
                    assert!(value == 0 || value == 2);
                })
            })
            .collect();
        {
            let mut value = lock.write().unwrap();
            *value += 1;
            *value += 1;
        }
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(*lock.read().unwrap(), 2);
    });
}
