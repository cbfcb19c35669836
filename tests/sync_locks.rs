//! Mutex, RwLock, Condvar, Barrier, Semaphore, WaitGroup: green threads and OS threads
//! together.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::sync::{
    Barrier, Condvar, Mutex, RwLock, RwLockWriteGuard, Semaphore, TryLockError, WaitGroup,
};
use greenring::Runtime;

#[path = "support/watchdog.rs"]
mod watchdog;

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn mutex_counts_exactly_under_green_and_os_contention() {
    let rt = runtime();
    let counter = Arc::new(Mutex::new(0u64));
    let green: Vec<_> = (0..1000)
        .map(|_| {
            let counter = Arc::clone(&counter);
            rt.spawn(move || {
                for i in 0..1000 {
                    *counter.lock().unwrap() += 1;
                    if i % 100 == 0 {
                        greenring::yield_now();
                    }
                }
            })
        })
        .collect();
    let os: Vec<_> = (0..4)
        .map(|_| {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    green.into_iter().for_each(|h| h.join().unwrap());
    os.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(*counter.lock().unwrap(), 1004 * 1000);
}

#[test]
fn a_guard_held_across_a_park_does_not_block_the_worker() {
    // One worker: the holder sleeps while holding the lock; a waiter parks; a third thread
    // still runs meanwhile.
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let lock = Arc::new(Mutex::new(()));
    let ran = Arc::new(AtomicUsize::new(0));
    let holder = {
        let lock = Arc::clone(&lock);
        rt.spawn(move || {
            let _guard = lock.lock().unwrap();
            greenring::time::sleep(Duration::from_millis(50));
        })
    };
    std::thread::sleep(Duration::from_millis(10));
    let waiter = {
        let lock = Arc::clone(&lock);
        rt.spawn(move || drop(lock.lock().unwrap()))
    };
    let bystander = {
        let ran = Arc::clone(&ran);
        rt.spawn(move || ran.fetch_add(1, Ordering::SeqCst))
    };
    bystander.join().unwrap();
    assert!(!waiter.is_finished(), "the waiter waits for the holder");
    holder.join().unwrap();
    waiter.join().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn mutex_poisoning_and_try_lock() {
    let rt = runtime();
    let lock = Arc::new(Mutex::new(5));
    let poisoner = {
        let lock = Arc::clone(&lock);
        rt.spawn(move || {
            let _guard = lock.lock().unwrap();
            panic!("poison it");
        })
    };
    assert!(poisoner.join().is_err());
    assert!(lock.is_poisoned());
    let guard = lock.lock().unwrap_err().into_inner();
    assert_eq!(*guard, 5);
    assert!(matches!(
        lock.try_lock(),
        Err(std::sync::TryLockError::WouldBlock)
    ));
    drop(guard);
    lock.clear_poison();
    assert_eq!(*lock.try_lock().unwrap(), 5);
    let lock = Arc::try_unwrap(lock).unwrap();
    assert_eq!(lock.into_inner().unwrap(), 5);
}

#[test]
fn condvar_wait_notify_and_timeouts() {
    let rt = runtime();
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let waiter = {
        let pair = Arc::clone(&pair);
        rt.spawn(move || {
            let (lock, cvar) = &*pair;
            let guard = cvar
                .wait_while(lock.lock().unwrap(), |ready| !*ready)
                .unwrap();
            assert!(*guard);
        })
    };
    std::thread::sleep(Duration::from_millis(10));
    *pair.0.lock().unwrap() = true;
    pair.1.notify_all();
    waiter.join().unwrap();

    rt.block_on(|| {
        let lock = Mutex::new(0);
        let cvar = Condvar::new();
        let start = Instant::now();
        let (guard, result) = cvar
            .wait_timeout(lock.lock().unwrap(), Duration::from_millis(30))
            .unwrap();
        assert!(result.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(30));
        let (guard, result) = cvar
            .wait_timeout_while(guard, Duration::from_millis(20), |n| *n == 0)
            .unwrap();
        assert!(result.timed_out());
        assert_eq!(*guard, 0);
    });

    // Producer/consumer through a condvar, green and OS threads mixed.
    let queue = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
    let consumer = {
        let queue = Arc::clone(&queue);
        rt.spawn(move || {
            let (lock, cvar) = &*queue;
            let mut got = 0;
            while got < 1000 {
                let mut items = cvar
                    .wait_while(lock.lock().unwrap(), |v| v.is_empty())
                    .unwrap();
                got += items.drain(..).count();
            }
            got
        })
    };
    let producer = std::thread::spawn(move || {
        for i in 0..1000 {
            queue.0.lock().unwrap().push(i);
            queue.1.notify_one();
        }
    });
    producer.join().unwrap();
    assert_eq!(consumer.join().unwrap(), 1000);
}

#[test]
fn rwlock_many_readers_and_a_writer() {
    let rt = runtime();
    let lock = Arc::new(RwLock::new(0u64));
    let readers_inside = Arc::new(AtomicUsize::new(0));
    let max_readers = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..200)
        .map(|_| {
            let (lock, inside, max) = (
                Arc::clone(&lock),
                Arc::clone(&readers_inside),
                Arc::clone(&max_readers),
            );
            rt.spawn(move || {
                for _ in 0..50 {
                    let value = lock.read().unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    assert_eq!(*value % 2, 0, "a reader never sees a half-done write");
                    greenring::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let writer = {
        let lock = Arc::clone(&lock);
        let inside = Arc::clone(&readers_inside);
        rt.spawn(move || {
            for _ in 0..100 {
                let mut value = lock.write().unwrap();
                assert_eq!(
                    inside.load(Ordering::SeqCst),
                    0,
                    "no reader inside during a write"
                );
                *value += 1;
                greenring::yield_now();
                *value += 1;
            }
        })
    };
    readers.into_iter().for_each(|h| h.join().unwrap());
    writer.join().unwrap();
    assert_eq!(*lock.read().unwrap(), 200);
    assert!(
        max_readers.load(Ordering::SeqCst) > 1,
        "readers share the lock"
    );
    assert!(lock.try_write().is_ok());
}

#[test]
fn rwlock_downgrade_admits_queued_readers_at_once() {
    watchdog::within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        rt.block_on(|| {
            let lock = Arc::new(RwLock::new(0));
            let mut writer = lock.write().unwrap();
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let lock = Arc::clone(&lock);
                    greenring::spawn(move || *lock.read().unwrap())
                })
                .collect();
            greenring::time::sleep(Duration::from_millis(20)); // all three queue up
            *writer = 7;
            let reader = RwLockWriteGuard::downgrade(writer);
            // The queued readers finish while the downgraded guard is still held.
            for handle in readers {
                assert_eq!(handle.join().unwrap(), 7);
            }
            assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
            drop(reader);
            *lock.try_write().unwrap() += 1;
        });
    });
}

#[test]
fn rwlock_downgrade_keeps_a_queued_writer_first() {
    watchdog::within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        rt.block_on(|| {
            let lock = Arc::new(RwLock::new(Vec::new()));
            let mut writer = lock.write().unwrap();
            let queued_writer = {
                let lock = Arc::clone(&lock);
                greenring::spawn(move || lock.write().unwrap().push("writer"))
            };
            greenring::time::sleep(Duration::from_millis(20));
            let late_reader = {
                let lock = Arc::clone(&lock);
                greenring::spawn(move || lock.read().unwrap().clone())
            };
            greenring::time::sleep(Duration::from_millis(20));
            writer.push("first");
            let reader = RwLockWriteGuard::downgrade(writer);
            greenring::time::sleep(Duration::from_millis(20));
            assert!(!queued_writer.is_finished());
            assert!(
                !late_reader.is_finished(),
                "no overtaking the queued writer"
            );
            assert_eq!(*reader, ["first"]);
            drop(reader);
            queued_writer.join().unwrap();
            assert_eq!(late_reader.join().unwrap(), ["first", "writer"]);
        });
    });
}

#[test]
fn rwlock_get_mut_clear_poison_and_from() {
    let mut lock = RwLock::from(String::from("a"));
    lock.get_mut().unwrap().push('b');
    let lock = Arc::new(lock);
    let poisoner = Arc::clone(&lock);
    let _ = std::thread::spawn(move || {
        let _guard = poisoner.write().unwrap();
        panic!("poisons the lock");
    })
    .join();
    assert!(lock.is_poisoned());
    assert!(lock.read().is_err());
    lock.clear_poison();
    assert!(!lock.is_poisoned());
    assert_eq!(*lock.read().unwrap(), "ab");
    let mut lock = Arc::into_inner(lock).unwrap();
    assert_eq!(lock.get_mut().unwrap(), "ab");
    assert_eq!(*RwLock::<u8>::default().read().unwrap(), 0);
}

#[test]
fn barrier_is_reusable() {
    let rt = runtime();
    let barrier = Arc::new(Barrier::new(10));
    let leaders = Arc::new(AtomicUsize::new(0));
    let arrivals = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let (barrier, leaders, arrivals) = (
                Arc::clone(&barrier),
                Arc::clone(&leaders),
                Arc::clone(&arrivals),
            );
            rt.spawn(move || {
                for round in 0..20 {
                    arrivals.fetch_add(1, Ordering::SeqCst);
                    if barrier.wait().is_leader() {
                        leaders.fetch_add(1, Ordering::SeqCst);
                    }
                    // Everyone of this round has arrived before anyone passes.
                    assert!(arrivals.load(Ordering::SeqCst) >= (round + 1) * 10);
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(leaders.load(Ordering::SeqCst), 20, "one leader per round");
}

#[test]
fn semaphore_bounds_concurrency_to_its_permits() {
    let rt = runtime();
    let semaphore = Arc::new(Semaphore::new(3));
    let inside = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let (semaphore, inside, max) = (
                Arc::clone(&semaphore),
                Arc::clone(&inside),
                Arc::clone(&max),
            );
            rt.spawn(move || {
                for _ in 0..10 {
                    let _permit = semaphore.acquire();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    greenring::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(
        max.load(Ordering::SeqCst),
        3,
        "observed concurrency equals the permits"
    );
    assert_eq!(semaphore.available_permits(), 3);
    let held = semaphore.try_acquire().unwrap();
    held.forget();
    assert_eq!(semaphore.available_permits(), 2);
}

#[test]
fn a_failed_try_acquire_leaves_the_permits_alone() {
    let semaphore = Semaphore::new(1);
    let held = semaphore.try_acquire().expect("one permit is free");
    for _ in 0..3 {
        assert!(semaphore.try_acquire().is_none(), "no permit is left");
    }
    assert_eq!(semaphore.available_permits(), 0);
    drop(held);
    assert_eq!(semaphore.available_permits(), 1);
    let again = semaphore.try_acquire().expect("the permit came back");
    assert!(semaphore.try_acquire().is_none());
    drop(again);
}

#[test]
fn wait_group_waits_for_every_member() {
    let rt = runtime();
    let done = Arc::new(AtomicUsize::new(0));
    let group = WaitGroup::new();
    for _ in 0..500 {
        let member = group.clone();
        let done = Arc::clone(&done);
        rt.spawn(move || {
            greenring::time::sleep(Duration::from_millis(1));
            done.fetch_add(1, Ordering::SeqCst);
            drop(member);
        });
    }
    group.wait();
    assert_eq!(done.load(Ordering::SeqCst), 500);
}
