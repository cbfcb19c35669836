//! Spawning and joining green threads through the public API.

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use greenring::thread::Builder;
use greenring::Runtime;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

#[test]
fn hundred_thousand_threads_from_an_os_thread() {
    let rt = runtime(2);
    let n: u64 = if cfg!(miri) { 100 } else { 100_000 };
    let handles: Vec<_> = (0..n).map(|i| rt.spawn(move || i * 3)).collect();
    let mut sum = 0;
    for (i, handle) in handles.into_iter().enumerate() {
        let value = handle.join().unwrap();
        assert_eq!(value, i as u64 * 3);
        sum += value;
    }
    assert_eq!(sum, 3 * n * (n - 1) / 2);
}

#[test]
fn hundred_thousand_threads_from_a_green_thread() {
    let rt = runtime(2);
    let total = rt.block_on(|| {
        let handles: Vec<_> = (0..100_000u64)
            .map(|i| greenring::spawn(move || i))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, 100_000 * 99_999 / 2);
}

#[test]
fn nested_spawns_form_a_tree() {
    fn tree(depth: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        let left = greenring::spawn(move || tree(depth - 1));
        let right = greenring::spawn(move || tree(depth - 1));
        left.join().unwrap() + right.join().unwrap()
    }
    let rt = runtime(2);
    assert_eq!(rt.block_on(|| tree(12)), 4096);
}

#[test]
fn join_from_green_and_os_threads() {
    let rt = runtime(2);
    let handle = rt.spawn(|| String::from("from green"));
    let os_joiner = std::thread::spawn(move || handle.join().unwrap());
    assert_eq!(os_joiner.join().unwrap(), "from green");

    let inner = rt.spawn(|| 7);
    let outer = rt.spawn(move || {
        assert!(greenring::thread::is_green());
        inner.join().unwrap() * 6
    });
    assert_eq!(outer.join().unwrap(), 42);
}

#[test]
fn default_runtime_serves_free_functions() {
    let handle = greenring::spawn(|| greenring::thread::current().is_green());
    assert!(handle.join().unwrap());
    assert!(!greenring::thread::current().is_green());
}

#[test]
fn panics_reach_the_joiner_with_their_payload() {
    let rt = runtime(2);
    let failing = rt.spawn(|| -> u32 { std::panic::panic_any(String::from("boom")) });
    let healthy: Vec<_> = (0..100u32).map(|i| rt.spawn(move || i + 1)).collect();
    let payload = failing.join().unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("boom")
    );
    for (i, handle) in healthy.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), i as u32 + 1);
    }
    // The runtime keeps working after the panic.
    assert_eq!(rt.block_on(|| 5), 5);
}

#[test]
fn block_on_resumes_the_panic() {
    let rt = runtime(1);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(|| panic!("inside block_on"));
    }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"inside block_on"));
}

/// The workers that ran 64 CPU-bound green threads spawned from outside.
fn workers_used_by_a_cpu_bound_burst() -> usize {
    let rt = runtime(2);
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let seen = Arc::clone(&seen);
            rt.spawn(move || {
                // CPU-bound, never yields: only stealing can put work on the other worker.
                let mut x = 1u64;
                for i in 0..2_000_000u64 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                }
                // By worker, not OS thread: in a migrating runtime a worker stuck for 10 ms
                // in a loop like this one is handed to another OS thread.
                seen.lock()
                    .unwrap()
                    .insert(greenring::runtime::worker_index().unwrap());
                x
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let used = seen.lock().unwrap().len();
    used
}

#[test]
fn work_spreads_over_both_workers() {
    // On a loaded machine (this binary runs its tests in parallel on 2 CPUs) the OS may not
    // schedule the second worker before the first finishes the burst; stealing that never
    // happens fails all three tries.
    let used = (0..3)
        .map(|_| workers_used_by_a_cpu_bound_burst())
        .find(|&used| used == 2);
    assert_eq!(used, Some(2), "both workers ran green threads");
}

#[test]
fn names_ids_and_is_finished() {
    let rt = runtime(1);
    let handle = Builder::new()
        .name("named".into())
        .spawn_on(&rt, || {
            let me = greenring::current();
            (me.id(), me.name().map(str::to_owned))
        })
        .unwrap();
    let expected_id = handle.thread().id();
    assert_eq!(handle.thread().name(), Some("named"));
    while !handle.is_finished() {
        std::thread::yield_now();
    }
    let (id, name) = handle.join().unwrap();
    assert_eq!(id, expected_id);
    assert_eq!(name.as_deref(), Some("named"));
    assert_ne!(greenring::current().id(), expected_id);
    assert_eq!(greenring::current().id(), greenring::current().id());
}

#[test]
fn detached_threads_still_run() {
    let rt = runtime(2);
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        let done = Arc::clone(&done);
        drop(rt.spawn(move || done.fetch_add(1, Ordering::SeqCst)));
    }
    drop(rt); // waits for every green thread
    assert_eq!(done.load(Ordering::SeqCst), 1000);
}

#[test]
fn bad_stack_sizes_are_rejected() {
    let rt = runtime(1);
    for size in [
        0,
        1,
        greenring::MIN_STACK_SIZE - 1,
        greenring::MAX_STACK_SIZE + 1,
    ] {
        let err = Builder::new()
            .stack_size(size)
            .spawn_on(&rt, || ())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "size {size}");
        assert!(err.to_string().contains("stack size"), "{err}");
    }
    let err = Runtime::builder().stack_size(0).build().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = Runtime::builder().worker_threads(0).build().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // Odd sizes are rounded up to pages and work.
    let handle = Builder::new()
        .stack_size(greenring::MIN_STACK_SIZE + 1)
        .spawn_on(&rt, || 1);
    assert_eq!(handle.unwrap().join().unwrap(), 1);
}

#[test]
fn joining_itself_panics_instead_of_hanging() {
    let rt = runtime(1);
    let slot: Arc<Mutex<Option<greenring::JoinHandle<()>>>> = Arc::default();
    let their_slot = Arc::clone(&slot);
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = rt.spawn(move || {
        let me = loop {
            if let Some(me) = their_slot.lock().unwrap().take() {
                break me;
            }
            greenring::yield_now();
        };
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.join()))
            .expect_err("joining itself must panic");
        tx.send(payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
    });
    *slot.lock().unwrap() = Some(handle);
    let message = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the thread reported back")
        .expect("a &str payload");
    assert!(message.contains("cannot join itself"), "{message}");
}

#[test]
fn a_name_with_an_interior_nul_panics_at_spawn_as_std_does() {
    let rt = runtime(1);
    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Builder::new().name("bad\0name".into()).spawn_on(&rt, || ())
    }));
    let payload = spawned.expect_err("the spawn must panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a string payload");
    assert!(
        message.starts_with("thread name may not contain interior null bytes"),
        "{message}"
    );
    // std's own message, for comparison.
    let std_payload = std::panic::catch_unwind(|| {
        std::thread::Builder::new()
            .name("bad\0name".into())
            .spawn(|| ())
    })
    .expect_err("std panics too");
    let std_message = std_payload.downcast_ref::<String>().cloned().unwrap();
    assert_eq!(message, std_message);
}
