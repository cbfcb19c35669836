//! Loom models of the wait-queue protocol, run on the production code (see `shim`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib sync::loom_tests
//! ```
//!
//! Loom explores every interleaving of the threads below (with a preemption bound), so a
//! lost wake-up shows as a deadlock it reports, and a double hand-off as a failed assertion.
//! The `cancelled_*` models add a thread whose waits unwind, as a green thread's do when its
//! runtime shuts down: whatever was handed to it must reach the live waiter.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::wait::Waiter;
use super::{mpmc, mpsc, shim, Condvar, Mutex, RwLock, RwLockWriteGuard, Semaphore};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// A model thread running `wait` on `state` with every park unwinding (a cancelled green
/// thread); it ends when `wait` unwinds or returns. (`state` is dropped after the unwind:
/// loom cannot run a destructor that locks while a thread unwinds.)
fn spawn_cancelled<S: Send + 'static>(
    state: S,
    wait: impl Fn(&S) + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        shim::cancel_current_thread();
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| wait(&state)));
    })
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
        let woke = waiter.wait(Some(Instant::now()), || ());
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

#[test]
fn rwlock_downgrade_lets_readers_in_and_no_writer_between() {
    model(|| {
        let lock = Arc::new(RwLock::new(0));
        let mut guard = lock.write().unwrap();
        let reader = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                let value = *lock.read().unwrap();
                assert!(value == 1 || value == 2);
            })
        };
        let writer = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                let mut value = lock.write().unwrap();
                // Only after the downgraded hold is gone.
                assert_eq!(*value, 1);
                *value = 2;
            })
        };
        *guard = 1;
        let read = RwLockWriteGuard::downgrade(guard);
        // No writer got in between.
        assert_eq!(*read, 1);
        drop(read);
        reader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 2);
    });
}

#[test]
fn cancelled_mutex_waiter_passes_the_lock_on() {
    model(|| {
        let counter = Arc::new(Mutex::new(0));
        let guard = counter.lock().unwrap();
        let cancelled = spawn_cancelled(Arc::clone(&counter), |counter| {
            *counter.lock().unwrap() += 1;
        });
        let live = {
            let counter = Arc::clone(&counter);
            thread::spawn(move || *counter.lock().unwrap() += 1)
        };
        drop(guard);
        cancelled.join().unwrap();
        live.join().unwrap();
        let value = *counter.lock().unwrap();
        assert!(value == 1 || value == 2);
    });
}

#[test]
fn cancelled_semaphore_waiter_loses_no_permit() {
    model(|| {
        let semaphore = Arc::new(Semaphore::new(1));
        let permit = semaphore.acquire();
        let cancelled = spawn_cancelled(Arc::clone(&semaphore), |semaphore| {
            drop(semaphore.acquire());
        });
        let live = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || drop(semaphore.acquire()))
        };
        drop(permit);
        cancelled.join().unwrap();
        live.join().unwrap();
        assert_eq!(semaphore.available_permits(), 1);
    });
}

#[test]
fn cancelled_condvar_waiter_leaves_the_notification_to_a_live_one() {
    model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let wait = |pair: &Arc<(Mutex<bool>, Condvar)>| {
            let (lock, cvar) = &**pair;
            drop(cvar.wait_while(lock.lock().unwrap(), |ready| !*ready));
        };
        let live = {
            let pair = Arc::clone(&pair);
            thread::spawn(move || wait(&pair))
        };
        // Nothing notifies before it ends, so the cancelled thread can only unwind (from
        // the condvar's wait, or from the mutex's while the live thread holds it).
        spawn_cancelled(Arc::clone(&pair), wait).join().unwrap();
        *pair.0.lock().unwrap() = true;
        pair.1.notify_one();
        live.join().unwrap();
    });
}

#[test]
fn cancelled_receiver_leaves_the_value_to_a_live_one() {
    model(|| {
        let (tx, rx) = mpmc::unbounded::<u8>();
        let received = Arc::new(AtomicUsize::new(0));
        let cancelled = spawn_cancelled((rx.clone(), Arc::clone(&received)), |(rx, received)| {
            if rx.recv().is_ok() {
                received.fetch_add(1, Ordering::SeqCst);
            }
        });
        let live = {
            let received = Arc::clone(&received);
            thread::spawn(move || {
                if rx.recv().is_ok() {
                    received.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        tx.send(1).unwrap();
        drop(tx);
        cancelled.join().unwrap();
        live.join().unwrap();
        assert_eq!(
            received.load(Ordering::SeqCst),
            1,
            "one value, received once"
        );
    });
}

#[test]
fn cancelled_rwlock_waiter_passes_the_lock_on() {
    model(|| {
        let lock = Arc::new(RwLock::new(0));
        let guard = lock.write().unwrap();
        let cancelled = spawn_cancelled(Arc::clone(&lock), |lock| {
            *lock.write().unwrap() += 1;
        });
        let live = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || drop(lock.read().unwrap()))
        };
        drop(guard);
        cancelled.join().unwrap();
        live.join().unwrap();
        assert!(lock.try_write().is_ok(), "nobody holds it any more");
    });
}

/// A value only readers and writers of the lock touch, whose accesses loom checks for
/// causality: a write must come after every read that preceded it under the lock.
struct Checked(loom::cell::UnsafeCell<u32>);

// SAFETY: only accessed under the `RwLock` the models put it in.
unsafe impl Sync for Checked {}

/// Two readers leave while a writer waits: the second to leave hands the lock to the
/// writer, whose write must come after *both* reads. The first reader's release reaches
/// the last reader's decrement, which must acquire it to pass it on: neither the hand-off
/// (a notify) nor `release_slow`'s store of the new state carries a release the last
/// reader did not acquire.
#[test]
fn rwlock_writer_handed_the_lock_comes_after_every_reader() {
    model(|| {
        let lock = Arc::new(RwLock::new(Checked(loom::cell::UnsafeCell::new(0))));
        let guard = lock.read().unwrap();
        let reader = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                let guard = lock.read().unwrap();
                // SAFETY: a read under a read guard.
                guard.0.with(|value| assert!(unsafe { *value } < 2));
            })
        };
        let writer = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                let guard = lock.write().unwrap();
                // SAFETY: a write under the write guard.
                guard.0.with_mut(|value| unsafe { *value = 1 });
            })
        };
        // SAFETY: a read under a read guard.
        guard.0.with(|value| assert!(unsafe { *value } < 2));
        drop(guard);
        reader.join().unwrap();
        writer.join().unwrap();
    });
}
