//! Big stacks map only what they need. Runs in a child process, whose address-space limit
//! (RLIMIT_AS) it lowers. (`stack_overflow.rs` checks that a refused mapping names the limit
//! that refused it.)

#[path = "support/child.rs"]
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
    let output = support::run_child_within(name, std::time::Duration::from_secs(60));
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
fn under_an_address_space_limit_every_spawn_that_returns_ok_runs() {
    const NAME: &str = "under_an_address_space_limit_every_spawn_that_returns_ok_runs";
    if !support::is_child(NAME) {
        return run_in_child(NAME);
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    // One worker, never handed off, kept busy: the threads spawned below all wait to run,
    // so none has its stack yet (a thread of the default size gets it at its first run).
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
    // Room for a few slabs of stacks, far fewer than the spawns tried below.
    limit_address_space(64 << 20);
    const TRIED: usize = 100_000;
    let ran = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    let mut refusal = None;
    for _ in 0..TRIED {
        let ran = Arc::clone(&ran);
        match greenring::thread::Builder::new().spawn_on(&rt, move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }) {
            Ok(handle) => handles.push(handle),
            Err(err) => {
                refusal = Some(err);
                break;
            }
        }
    }
    let err = refusal.expect("the limit refused a spawn");
    assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory, "{err}");
    assert!(err.to_string().contains("RLIMIT_AS"), "{err}");
    assert!(!handles.is_empty(), "some spawns fit");
    hold.wait();
    holder.join().unwrap();
    let spawned = handles.len();
    for handle in handles {
        handle.join().expect("a spawn that returned Ok runs");
    }
    assert_eq!(ran.load(Ordering::SeqCst), spawned);
}
