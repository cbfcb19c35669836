//! `Once`, `OnceLock` and `LazyLock`: initialisers that park, waiters on the same worker
//! and on OS threads, poisoning, and the cell API, checked against std's semantics. Tests
//! that could deadlock run under a watchdog.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenring::sync::{LazyLock, Once, OnceLock};
use greenring::Runtime;

const LIMIT: Duration = Duration::from_secs(60);

static RUNS: AtomicUsize = AtomicUsize::new(0);
static PARKING_INIT: LazyLock<u64> = LazyLock::new(|| {
    RUNS.fetch_add(1, Ordering::SeqCst);
    greenring::time::sleep(Duration::from_millis(50));
    99
});

#[test]
fn an_initialiser_that_parks_does_not_deadlock_its_worker() {
    watchdog::within(LIMIT, || {
        // One worker: every waiter shares the initialiser's OS thread. With std's
        // LazyLock the first waiter would block it and the initialiser never resume.
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let os_waiter = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(10));
            *PARKING_INIT
        });
        let values = rt.block_on(|| {
            let handles: Vec<_> = (0..8).map(|_| greenring::spawn(|| *PARKING_INIT)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(values, [99; 8]);
        assert_eq!(os_waiter.join().unwrap(), 99);
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn once_runs_once_and_a_panic_poisons_it() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        rt.block_on(|| {
            let once = Arc::new(Once::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let (once, runs) = (Arc::clone(&once), Arc::clone(&runs));
                    greenring::spawn(move || {
                        once.call_once(|| {
                            greenring::thread::yield_now();
                            runs.fetch_add(1, Ordering::SeqCst);
                        });
                        assert!(once.is_completed());
                    })
                })
                .collect();
            handles.into_iter().for_each(|h| h.join().unwrap());
            assert_eq!(runs.load(Ordering::SeqCst), 1);

            let poisoned = Once::new();
            let outcome =
                panic::catch_unwind(AssertUnwindSafe(|| poisoned.call_once(|| panic!("init"))));
            assert!(outcome.is_err());
            assert!(!poisoned.is_completed());
            let again = panic::catch_unwind(AssertUnwindSafe(|| poisoned.call_once(|| {})));
            let payload = again.unwrap_err();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            assert_eq!(message, Some("Once instance has previously been poisoned"));
            poisoned.call_once_force(|state| assert!(state.is_poisoned()));
            assert!(poisoned.is_completed());
            poisoned.call_once(|| unreachable!("completed"));
            poisoned.call_once_force(|_| unreachable!("completed"));
        });
    });
}

#[test]
fn once_lock_cell_api() {
    let cell = OnceLock::new();
    assert_eq!(cell.get(), None);
    assert_eq!(format!("{cell:?}"), "OnceLock(<uninit>)");
    assert_eq!(cell.set(1), Ok(()));
    assert_eq!(cell.set(2), Err(2));
    assert_eq!(cell.get_or_init(|| unreachable!()), &1);
    assert_eq!(format!("{cell:?}"), "OnceLock(1)");
    let mut copy = cell.clone();
    assert_eq!(copy, cell);
    *copy.get_mut().unwrap() = 5;
    assert_ne!(copy, cell);
    assert_eq!(copy.take(), Some(5));
    assert_eq!(copy.take(), None);
    assert_eq!(OnceLock::from(3).into_inner(), Some(3));
    assert_eq!(OnceLock::<u8>::default().into_inner(), None);

    // A panicking initialiser leaves the cell empty; the next one fills it.
    let cell = OnceLock::new();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| cell.get_or_init(|| panic!("no"))));
    assert!(outcome.is_err());
    assert_eq!(cell.get(), None);
    assert_eq!(*cell.get_or_init(|| 7), 7);

    // The value is dropped with the cell, once.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = OnceLock::new();
    let _ = cell.set(Counted(Arc::clone(&drops)));
    drop(cell);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn once_lock_initialised_from_many_green_threads() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let cell = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (cell, runs) = (Arc::clone(&cell), Arc::clone(&runs));
                rt.spawn(move || {
                    *cell.get_or_init(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        greenring::time::sleep(Duration::from_millis(5));
                        i
                    })
                })
            })
            .collect();
        let values: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(values.iter().all(|&v| v == values[0]));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn lazy_lock_is_poisoned_by_a_panicking_initialiser() {
    let lazy: LazyLock<u32> = LazyLock::new(|| panic!("first"));
    assert!(panic::catch_unwind(AssertUnwindSafe(|| *lazy)).is_err());
    let payload = panic::catch_unwind(AssertUnwindSafe(|| *lazy)).unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    assert_eq!(
        message,
        Some("LazyLock instance has previously been poisoned")
    );

    let lazy = LazyLock::<Vec<u8>>::default();
    assert_eq!(format!("{lazy:?}"), "LazyLock(<uninit>)");
    assert!(LazyLock::force(&lazy).is_empty());
    assert_eq!(format!("{lazy:?}"), "LazyLock([])");
    let captured = String::from("captured");
    let lazy = LazyLock::new(move || captured.len());
    assert_eq!(*lazy, 8);
}

/// The message of a panic payload (`&str` or `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

#[test]
fn once_wait_parks_until_another_thread_of_its_worker_completes_it() {
    watchdog::within(LIMIT, || {
        // One worker: with std's `Once::wait` the waiter would block the OS thread the
        // initialiser needs.
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let once = Arc::new(Once::new());
        let value = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let (once, value) = (Arc::clone(&once), Arc::clone(&value));
                rt.spawn(move || {
                    once.wait();
                    assert!(once.is_completed());
                    value.load(Ordering::Relaxed)
                })
            })
            .collect();
        let initialiser = {
            let (once, value) = (Arc::clone(&once), Arc::clone(&value));
            rt.spawn(move || {
                greenring::time::sleep(Duration::from_millis(20));
                once.call_once(|| value.store(42, Ordering::Relaxed));
            })
        };
        let seen: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(seen, [42; 4]);
        initialiser.join().unwrap();
        once.wait(); // completed: returns at once
    });
}

#[test]
fn once_wait_panics_when_poisoned_and_wait_force_waits_through_it() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let once = Arc::new(Once::new());
        // A waiter that is already waiting when the initialiser panics panics too.
        let early = {
            let once = Arc::clone(&once);
            rt.spawn(move || once.wait())
        };
        let forced = {
            let once = Arc::clone(&once);
            rt.spawn(move || once.wait_force())
        };
        let failing = {
            let once = Arc::clone(&once);
            rt.spawn(move || {
                once.call_once(|| {
                    greenring::time::sleep(Duration::from_millis(10));
                    panic!("the initialiser fails");
                })
            })
        };
        assert!(failing.join().is_err());
        let payload = early.join().unwrap_err();
        assert_eq!(
            panic_message(&*payload),
            Some("Once instance has previously been poisoned")
        );
        // A waiter that arrives after the panic panics at once.
        let late = {
            let once = Arc::clone(&once);
            rt.spawn(move || once.wait())
        };
        assert!(late.join().is_err());
        assert!(!forced.is_finished(), "wait_force ignores the poison");
        let recovering = {
            let once = Arc::clone(&once);
            rt.spawn(move || once.call_once_force(|state| assert!(state.is_poisoned())))
        };
        recovering.join().unwrap();
        forced.join().unwrap();
        once.wait(); // completed after all: no longer poisoned
    });
}

#[test]
fn once_lock_wait_parks_until_a_value_is_set_and_outlasts_a_failed_initialiser() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let cell = Arc::new(OnceLock::new());
        let waiter = {
            let cell = Arc::clone(&cell);
            rt.spawn(move || *cell.wait())
        };
        let failing = {
            let cell = Arc::clone(&cell);
            rt.spawn(move || {
                cell.get_or_init(|| {
                    greenring::time::sleep(Duration::from_millis(10));
                    panic!("no value this time")
                });
            })
        };
        assert!(failing.join().is_err());
        assert!(!waiter.is_finished(), "a failed initialiser sets nothing");
        let setter = {
            let cell = Arc::clone(&cell);
            rt.spawn(move || {
                greenring::time::sleep(Duration::from_millis(10));
                cell.set(7u32).unwrap();
            })
        };
        setter.join().unwrap();
        assert_eq!(waiter.join().unwrap(), 7);
        assert_eq!(*cell.wait(), 7);
    });
}

#[test]
fn a_once_lock_may_borrow_a_value_declared_after_it() {
    // Compiles only if the cell's drop does not require what it holds to be alive (as
    // std's, which never reads its value when dropped): `value` is dropped first.
    let cell = OnceLock::new();
    let value = String::from("declared after the cell");
    cell.set(&value).unwrap();
    assert_eq!(cell.get().map(|s| s.len()), Some(23));
}
