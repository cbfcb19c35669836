//! Green-thread locals follow their thread across workers (and are dropped at the end of
//! green and OS threads alike); pinned threads never move, not even in a runtime that
//! migrates started threads.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenring::runtime::Builder;
use greenring::Runtime;

#[path = "support/child.rs"]
mod child;

/// A builder for a runtime that migrates started threads (so threads do move here).
fn migrating() -> Builder {
    // SAFETY: the green threads of these tests keep their per-thread state in green-thread
    // locals, which follow them, and hold nothing bound to an OS thread across a blocking
    // call.
    unsafe { Runtime::builder().migrate_started_threads() }
}

greenring::green_local! {
    static ID: Cell<usize> = const { Cell::new(usize::MAX) };
    static HISTORY: RefCell<Vec<usize>> = RefCell::new(Vec::new());
}

#[test]
fn green_locals_are_per_thread_and_survive_migration() {
    let rt = migrating().worker_threads(2).build().unwrap();
    // Threads woken from a plain OS thread go through the injector, where either worker
    // may take them: that is what moves them between workers here.
    let (to_waker, wake_requests) = std::sync::mpsc::channel::<greenring::thread::Thread>();
    let waker = std::thread::spawn(move || {
        for thread in wake_requests {
            thread.unpark();
        }
    });
    let handles: Vec<_> = (0..200)
        .map(|id| {
            let to_waker = to_waker.clone();
            rt.spawn(move || {
                assert_eq!(
                    ID.get(),
                    usize::MAX,
                    "a fresh thread starts with the initial value"
                );
                ID.set(id);
                let mut workers = HashSet::new();
                for round in 0..300 {
                    workers.insert(greenring::runtime::worker_index().unwrap());
                    HISTORY.with_borrow_mut(|h| h.push(round));
                    match round % 3 {
                        0 => greenring::time::sleep(Duration::from_micros(50)),
                        1 => {
                            to_waker.send(greenring::thread::current()).unwrap();
                            greenring::park();
                        }
                        _ => greenring::yield_now(),
                    }
                    assert_eq!(ID.get(), id, "thread {id} saw another thread's value");
                }
                assert_eq!(HISTORY.with_borrow(Vec::len), 300);
                workers.len()
            })
        })
        .collect();
    drop(to_waker);
    let migrated = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&workers| workers > 1)
        .count();
    waker.join().unwrap();
    assert!(
        migrated > 0,
        "no thread changed worker: the test proved nothing"
    );
}

#[test]
fn green_locals_are_dropped_before_join_returns() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    greenring::green_local! {
        static FLAG: RefCell<Option<Flag>> = const { RefCell::new(None) };
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let dropped = Arc::clone(&dropped);
            rt.spawn(move || {
                FLAG.set(Some(Flag(dropped)));
                greenring::yield_now();
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
}

#[test]
fn a_panicking_local_destructor_is_the_threads_panic() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("bomb");
        }
    }
    greenring::green_local! {
        static BOMB: RefCell<Option<Bomb>> = const { RefCell::new(None) };
    }
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let err = rt.spawn(|| BOMB.set(Some(Bomb))).join().unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"bomb"));
}

#[test]
fn pinned_threads_never_change_worker() {
    let rt = migrating().worker_threads(2).build().unwrap();
    // Unpinned neighbours, woken from a plain OS thread through the injector (which
    // either worker takes from), move between workers; the pinned threads must not.
    let stop = Arc::new(AtomicUsize::new(0));
    let (to_waker, wake_requests) = std::sync::mpsc::channel::<greenring::thread::Thread>();
    let waker = std::thread::spawn(move || {
        for thread in wake_requests {
            thread.unpark();
        }
    });
    let neighbours: Vec<_> = (0..20)
        .map(|_| {
            let (stop, to_waker) = (Arc::clone(&stop), to_waker.clone());
            rt.spawn(move || {
                let mut workers = HashSet::new();
                while stop.load(Ordering::Relaxed) == 0 {
                    workers.insert(greenring::runtime::worker_index().unwrap());
                    to_waker.send(greenring::thread::current()).unwrap();
                    greenring::park();
                }
                workers.len()
            })
        })
        .collect();
    drop(to_waker);
    let pinned: Vec<_> = (0..40)
        .map(|i| {
            greenring::thread::Builder::new()
                .pinned(true)
                .spawn_on(&rt, move || {
                    let home = greenring::runtime::worker_index().unwrap();
                    for round in 0..500 {
                        match (i + round) % 3 {
                            0 => greenring::yield_now(),
                            1 => greenring::time::sleep(Duration::from_micros(20)),
                            _ => greenring::thread::park_timeout(Duration::from_micros(20)),
                        }
                        assert_eq!(
                            greenring::runtime::worker_index().unwrap(),
                            home,
                            "pinned thread {i} moved"
                        );
                    }
                    home
                })
                .unwrap()
        })
        .collect();
    for handle in pinned {
        handle.join().unwrap();
    }
    stop.store(1, Ordering::Relaxed);
    let moved = neighbours
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&w| w > 1)
        .count();
    waker.join().unwrap();
    assert!(moved > 0, "no neighbour moved: the test proved nothing");
}

#[test]
fn a_pinned_thread_woken_from_elsewhere_returns_home() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let pinned = greenring::thread::Builder::new()
        .pinned(true)
        .spawn_on(&rt, move || {
            let home = greenring::runtime::worker_index().unwrap();
            for _ in 0..200 {
                ready_tx.send(greenring::thread::current()).unwrap();
                greenring::park();
                assert_eq!(greenring::runtime::worker_index().unwrap(), home);
            }
        })
        .unwrap();
    // Unparked from a plain OS thread and from green threads on either worker.
    for round in 0..200 {
        let thread = ready_rx.recv().unwrap();
        if round % 2 == 0 {
            thread.unpark();
        } else {
            rt.spawn(move || thread.unpark()).join().unwrap();
        }
    }
    pinned.join().unwrap();
}

#[test]
fn green_locals_used_on_an_os_thread_are_dropped_when_it_exits() {
    struct SetOnDrop(Arc<AtomicUsize>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    greenring::green_local! {
        static GUARD: RefCell<Option<SetOnDrop>> = const { RefCell::new(None) };
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&dropped);
    std::thread::spawn(move || GUARD.set(Some(SetOnDrop(flag))))
        .join()
        .unwrap();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "dropped at the thread's exit"
    );
}

/// What the destructors of the keys below saw of each other, in order.
static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Notes, when dropped, whether key `other` is still usable: `with` if `try_with` says so.
struct TouchesOnDrop(&'static str, fn() -> Result<u32, std::thread::AccessError>);

impl Drop for TouchesOnDrop {
    fn drop(&mut self) {
        let seen = (self.1)();
        SEEN.lock()
            .unwrap()
            .push(format!("{} saw {seen:?}", self.0));
    }
}

std::thread_local! {
    static STD_FIRST: TouchesOnDrop = TouchesOnDrop("std first", || STD_SECOND.try_with(|v| *v));
    static STD_SECOND: u32 = const { 2 };
    static STD_THIRD: TouchesOnDrop = TouchesOnDrop("std third", || STD_SECOND.try_with(|v| *v));
}

greenring::green_local! {
    static GREEN_FIRST: TouchesOnDrop = TouchesOnDrop("green first", || GREEN_SECOND.try_with(|v| *v));
    static GREEN_SECOND: u32 = 2;
    static GREEN_THIRD: TouchesOnDrop = TouchesOnDrop("green third", || GREEN_SECOND.try_with(|v| *v));
}

/// On a plain OS thread, green-local values whose destructors use other keys at the
/// thread's exit behave as std's `thread_local!` values do (before: the process aborted,
/// because all keys shared one fallback map destroyed as a whole). A child process, since
/// the failure is an abort.
#[test]
fn green_locals_on_os_threads_survive_destructors_that_touch_other_keys() {
    const NAME: &str = "green_locals_on_os_threads_survive_destructors_that_touch_other_keys";
    if !child::is_child(NAME) {
        let output = child::run_child_within(NAME, Duration::from_secs(30));
        assert!(
            output.status.success(),
            "{}:\n{}",
            output.status,
            child::stderr(&output)
        );
        return;
    }
    std::thread::spawn(|| {
        STD_FIRST.with(|_| ());
        STD_SECOND.with(|_| ());
        STD_THIRD.with(|_| ());
    })
    .join()
    .unwrap();
    std::thread::spawn(|| {
        GREEN_FIRST.with(|_| ());
        GREEN_SECOND.with(|_| ());
        GREEN_THIRD.with(|_| ());
    })
    .join()
    .unwrap();
    let seen = SEEN.lock().unwrap().clone();
    let (std, green): (Vec<_>, Vec<_>) = seen.iter().partition(|s| s.starts_with("std"));
    assert_eq!(std.len(), 2, "{seen:?}");
    let green_as_std: Vec<String> = green.iter().map(|s| s.replace("green", "std")).collect();
    let std: Vec<String> = std.into_iter().cloned().collect();
    assert_eq!(green_as_std, std, "{seen:?}");
}
