//! Big stacks map only what they need. Runs in a child process, whose address-space limit
//! (RLIMIT_AS) it lowers. (`stack_overflow.rs` checks that a refused mapping names the limit
//! that refused it.)

mod support;

use greenring::Runtime;

const GIB: u64 = 1 << 30;

/// The address space the process uses now, in bytes.
fn address_space_in_use() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Lets the process map at most `more` bytes beyond what it uses now.
fn limit_address_space(more: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write one rlimit value we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut limit), 0);
        limit.rlim_cur = address_space_in_use() + more;
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limit), 0);
    }
}

fn run_in_child(name: &str) {
    let output = support::run_child(name, &[]);
    assert!(
        output.status.success(),
        "child failed ({}):\n{}",
        output.status,
        support::stderr(&output)
    );
}

#[test]
fn a_runtime_with_1_gib_stacks_spawns_and_joins_a_thread() {
    const NAME: &str = "a_runtime_with_1_gib_stacks_spawns_and_joins_a_thread";
    if !support::is_child(NAME) {
        return run_in_child(NAME);
    }
    let rt = Runtime::builder()
        .worker_threads(1)
        .stack_size(1 << 30)
        .build()
        .unwrap();
    // Room for a few 1 GiB stacks, far from the 32 GiB of a batch of them.
    limit_address_space(6 * GIB);
    // The inner spawn runs on a worker, which fills its stack cache.
    let outer = rt.spawn(|| greenring::spawn(|| 6 * 7).join().unwrap());
    assert_eq!(outer.join().unwrap(), 42);
}

#[test]
fn a_thread_that_cannot_get_a_stack_at_its_first_run_fails_its_join_with_the_cause() {
    const NAME: &str =
        "a_thread_that_cannot_get_a_stack_at_its_first_run_fails_its_join_with_the_cause";
    if !support::is_child(NAME) {
        return run_in_child(NAME);
    }
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};
    // One worker, never handed off, so the threads spawned below wait until it is free.
    let rt = Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(None)
        .build()
        .unwrap();
    let hold = Arc::new(Barrier::new(2));
    let holder = {
        let hold = Arc::clone(&hold);
        rt.spawn(move || {
            hold.wait();
        })
    };
    // A spawn only makes sure a stack is free (one slab maps many); each thread takes one
    // when it first runs. Far more threads than a slab holds, each keeping its stack until
    // every thread has run (or failed to start).
    const THREADS: usize = 4096;
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (started, release) = (Arc::clone(&started), Arc::clone(&release));
            rt.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                while !release.load(Ordering::Acquire) {
                    greenring::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    // No room for another slab.
    limit_address_space(1 << 20);
    hold.wait();
    holder.join().unwrap();
    // A thread that failed to start is no longer live: wait until every live one started.
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.load(Ordering::SeqCst) != rt.metrics().live_threads {
        assert!(
            Instant::now() < deadline,
            "threads neither started nor failed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    release.store(true, Ordering::Release);
    let mut failed = 0;
    for handle in handles {
        if let Err(payload) = handle.join() {
            let message = payload.downcast_ref::<String>().expect("a message");
            assert!(
                message.contains("could not start: no stack") && message.contains("RLIMIT_AS"),
                "{message}"
            );
            failed += 1;
        }
    }
    assert!(failed > 0, "some threads found no stack");
    assert!(failed < THREADS, "the stacks mapped at spawn served some");
    assert_eq!(started.load(Ordering::SeqCst) + failed, THREADS);
}
