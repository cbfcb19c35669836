//! Scoped threads (`greenring::thread::scope`) through the public API: borrowing, joining,
//! panics, nesting, and the scope called on green and on plain OS threads. Every test runs
//! under a watchdog, so a scope that never returns fails instead of hanging the suite.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use greenring::sync::Mutex;
use greenring::thread;
use greenring::Runtime;

const LIMIT: Duration = Duration::from_secs(60);

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// Sorts disjoint chunks of a local vector from several scoped threads, and counts into a
/// local through a lock: both borrows end with the scope.
fn borrow_locals_mutably() -> (Vec<u32>, usize) {
    let mut data: Vec<u32> = (0..64).rev().collect();
    let total = Mutex::new(0usize);
    let all_green = AtomicBool::new(true);
    thread::scope(|s| {
        for chunk in data.chunks_mut(8) {
            let total = &total;
            let all_green = &all_green;
            s.spawn(move || {
                if !thread::is_green() {
                    all_green.store(false, Ordering::Relaxed);
                }
                thread::yield_now();
                chunk.sort_unstable();
                *total.lock().unwrap() += chunk.len();
            });
        }
    });
    assert!(
        all_green.load(Ordering::Relaxed),
        "scoped threads are green"
    );
    (data, total.into_inner().unwrap())
}

fn check_sorted_chunks((data, total): (Vec<u32>, usize)) {
    assert_eq!(total, 64);
    for (i, chunk) in data.chunks(8).enumerate() {
        let first = 63 - 8 * i as u32 - 7;
        assert_eq!(chunk, (first..first + 8).collect::<Vec<_>>());
    }
}

#[test]
fn threads_borrow_locals_mutably_on_a_green_thread() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        check_sorted_chunks(rt.block_on(borrow_locals_mutably));
    });
}

#[test]
fn threads_borrow_locals_mutably_on_an_os_thread() {
    watchdog::within(LIMIT, || {
        // Off any runtime the scoped threads run on the default runtime, as `spawn`'s do.
        check_sorted_chunks(borrow_locals_mutably());
    });
}

#[test]
fn join_returns_values_and_all_threads_end_with_the_scope() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        rt.block_on(|| {
            let finished = AtomicUsize::new(0);
            let name = String::from("scoped-worker");
            let sum = thread::scope(|s| {
                let handles: Vec<_> = (0..10u64)
                    .map(|i| {
                        let finished = &finished;
                        s.spawn(move || {
                            greenring::time::sleep(Duration::from_millis(i));
                            finished.fetch_add(1, Ordering::SeqCst);
                            i * i
                        })
                    })
                    .collect();
                // Never joined: the scope still waits for it.
                s.spawn(|| {
                    greenring::time::sleep(Duration::from_millis(30));
                    finished.fetch_add(1, Ordering::SeqCst);
                });
                let named = thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(s, || thread::current().name().map(str::to_owned))
                    .unwrap();
                assert_eq!(named.join().unwrap().as_deref(), Some(&name[..]));
                handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            });
            assert_eq!(sum, 285);
            assert_eq!(finished.load(Ordering::SeqCst), 11);
        });
    });
}

#[test]
fn is_finished_and_thread_of_a_handle() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        rt.block_on(|| {
            let go = AtomicBool::new(false);
            thread::scope(|s| {
                let handle = s.spawn(|| {
                    while !go.load(Ordering::Acquire) {
                        thread::yield_now();
                    }
                });
                assert!(handle.thread().is_green());
                assert!(!handle.is_finished());
                go.store(true, Ordering::Release);
                while !handle.is_finished() {
                    thread::yield_now();
                }
                handle.join().unwrap();
            });
        });
    });
}

#[test]
fn an_unjoined_panic_makes_the_scope_panic_after_every_thread_finished() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        rt.block_on(|| {
            let slow_done = AtomicBool::new(false);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                thread::scope(|s| {
                    s.spawn(|| panic!("scoped boom"));
                    s.spawn(|| {
                        greenring::time::sleep(Duration::from_millis(50));
                        slow_done.store(true, Ordering::SeqCst);
                    });
                })
            }));
            let payload = outcome.unwrap_err();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            assert_eq!(message, Some("a scoped thread panicked"));
            assert!(slow_done.load(Ordering::SeqCst), "the scope waited first");
        });
    });
}

#[test]
fn a_joined_panic_does_not_make_the_scope_panic() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        rt.block_on(|| {
            let value = thread::scope(|s| {
                let handle = s.spawn(|| panic!("seen"));
                let payload = handle.join().unwrap_err();
                assert_eq!(payload.downcast_ref::<&str>(), Some(&"seen"));
                7
            });
            assert_eq!(value, 7);
        });
    });
}

#[test]
fn a_panic_of_the_closure_is_resumed_after_every_thread_finished() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        rt.block_on(|| {
            let slow_done = AtomicBool::new(false);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                thread::scope(|s| {
                    s.spawn(|| {
                        greenring::time::sleep(Duration::from_millis(50));
                        slow_done.store(true, Ordering::SeqCst);
                    });
                    panic!("closure boom");
                })
            }));
            let payload = outcome.unwrap_err();
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"closure boom"));
            assert!(slow_done.load(Ordering::SeqCst), "the scope waited first");
        });
    });
}

#[test]
fn nested_scopes_and_spawns_from_scoped_threads() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        rt.block_on(|| {
            let count = AtomicUsize::new(0);
            thread::scope(|outer| {
                for _ in 0..4 {
                    outer.spawn(|| {
                        // A scoped thread spawns into the outer scope...
                        outer.spawn(|| count.fetch_add(1, Ordering::SeqCst));
                        // ...and opens a scope of its own.
                        let mut local = [0u8; 4];
                        thread::scope(|inner| {
                            for slot in local.iter_mut() {
                                inner.spawn(move || *slot = 1);
                            }
                        });
                        count.fetch_add(local.iter().map(|&b| b as usize).sum(), Ordering::SeqCst);
                    });
                }
            });
            assert_eq!(count.load(Ordering::SeqCst), 4 * 5);
        });
    });
}

#[test]
fn spawn_blocking_in_a_scope_borrows_too() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        let check = || {
            let mut buf = [0u8; 16];
            let text = String::from("borrowed");
            thread::scope(|s| {
                let (left, right) = buf.split_at_mut(8);
                let a = s.spawn_blocking(|| {
                    std::thread::sleep(Duration::from_millis(10)); // really blocks: fine here
                    left.copy_from_slice(text.as_bytes());
                    thread::is_green()
                });
                s.spawn_blocking(|| right.fill(b'!'));
                assert!(!a.join().unwrap(), "a pool thread, not a green thread");
            });
            assert_eq!(&buf[..], b"borrowed!!!!!!!!");
        };
        rt.block_on(check);
        check();
    });
}

#[test]
fn the_scope_outlives_its_threads_when_the_runtime_shuts_down() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let main = rt.spawn(move || {
            let unwound = AtomicBool::new(false);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                thread::scope(|s| {
                    s.spawn(|| {
                        struct SetOnDrop<'a>(&'a AtomicBool);
                        impl Drop for SetOnDrop<'_> {
                            fn drop(&mut self) {
                                self.0.store(true, Ordering::SeqCst);
                            }
                        }
                        let _guard = SetOnDrop(&unwound);
                        started_tx.send(()).unwrap();
                        greenring::time::sleep(Duration::from_secs(3600));
                    });
                })
            }));
            // The sleeper was cancelled by the shutdown: an unjoined panic.
            assert!(outcome.is_err());
            unwound.load(Ordering::SeqCst)
        });
        started_rx.recv().unwrap();
        drop(rt);
        assert!(
            main.join().unwrap(),
            "the scope returned only after its thread unwound"
        );
    });
}

/// A scoped thread that stalls its worker (the monitor reports it) still lets its scope
/// return once it ends: the monitor's record of the stall does not keep the thread's
/// record, which holds its join packet, alive.
#[test]
fn a_scoped_thread_reported_as_a_stall_still_ends_its_scope() {
    watchdog::within(LIMIT, || {
        let rt = runtime();
        rt.block_on(|| {
            thread::scope(|s| {
                s.spawn(|| std::thread::sleep(Duration::from_millis(60)));
            });
        });
    });
}
