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
