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
