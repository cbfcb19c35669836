//! Many live green threads at once: guard regions keep `vm.max_map_count` out of the way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenring::{Runtime, StackGuard};

#[test]
fn forty_thousand_live_threads() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    if rt.stack_guard() != StackGuard::GuardRegion {
        eprintln!(
            "skipped: stack guards use mprotect here (a kernel without MADV_GUARD_INSTALL, \
             Linux < 6.13, or GREENRING_STACK_GUARD=mprotect): each stack then costs two of \
             vm.max_map_count's mappings"
        );
        return;
    }
    let n = 40_500;
    let parked = Arc::new(AtomicUsize::new(0));
    let released = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let parked = Arc::clone(&parked);
            let released = Arc::clone(&released);
            rt.spawn(move || {
                parked.fetch_add(1, Ordering::SeqCst);
                while !released.load(Ordering::Acquire) {
                    greenring::park();
                }
                i
            })
        })
        .collect();
    while parked.load(Ordering::SeqCst) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count();
    assert!(maps < 10_000, "{n} live green threads use {maps} mappings");
    released.store(true, Ordering::Release);
    for handle in &handles {
        handle.thread().unpark();
    }
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), i);
    }
}
