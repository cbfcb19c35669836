//! Stack limits: recursion that fits works; overflow is reported by name and aborts (checked
//! in a child process); faults elsewhere keep their default behaviour.

mod support;

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;

use greenring::thread::Builder;
use greenring::Runtime;
use support::{is_child, run_child, stderr};

/// Recursion using 1 KiB (release) to about 4 KiB (debug: unoptimised copies) per level.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    if depth == 0 {
        return 0;
    }
    recurse(depth - 1) + u64::from(frame[depth as usize % 1024])
}

#[test]
fn recursion_that_fits_the_configured_stack() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    // At most ~48 KiB of a 64 KiB default stack.
    assert_eq!(
        rt.block_on(|| recurse(12)),
        (1..=12u64).map(|d| d % 256).sum::<u64>()
    );
    // At most ~800 KiB of a 1 MiB stack.
    let deep = Builder::new()
        .stack_size(1024 * 1024)
        .spawn_on(&rt, || recurse(200))
        .unwrap();
    assert_eq!(
        deep.join().unwrap(),
        (1..=200u64).map(|d| d % 256).sum::<u64>()
    );
}

/// Runs `test` in a child process and checks it aborted with the overflow message for the
/// green thread called `name`.
fn assert_overflow_reported(test: &str, name: &str) {
    let output = run_child(test, &[]);
    let err = stderr(&output);
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{err}");
    let message = format!("green thread '{name}' has overflowed its stack");
    assert!(err.contains(&message), "{err}");
}

#[test]
fn overflow_names_the_thread_and_aborts() {
    if is_child("overflow_names_the_thread_and_aborts") {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let handle = Builder::new()
            .name("deep-diver".into())
            .spawn_on(&rt, || recurse(1 << 20))
            .unwrap();
        let _ = handle.join();
        unreachable!("the overflow aborts the process");
    }
    assert_overflow_reported("overflow_names_the_thread_and_aborts", "deep-diver");
}

#[test]
fn overflow_of_an_unnamed_thread() {
    if is_child("overflow_of_an_unnamed_thread") {
        greenring::spawn(|| recurse(1 << 20)).join().ok();
        unreachable!("the overflow aborts the process");
    }
    assert_overflow_reported("overflow_of_an_unnamed_thread", "<unnamed>");
}

#[test]
fn other_faults_keep_their_default_behaviour() {
    if is_child("other_faults_keep_their_default_behaviour") {
        greenring::spawn(|| {
            // SAFETY: none: this deliberately faults on an unmapped address to check the
            // handler passes faults that are not overflows on to the default action.
            unsafe { std::ptr::write_volatile(16 as *mut u8, 1) };
        })
        .join()
        .ok();
        unreachable!("the fault kills the process");
    }
    let output = run_child("other_faults_keep_their_default_behaviour", &[]);
    let err = stderr(&output);
    assert_eq!(output.status.signal(), Some(libc::SIGSEGV), "{err}");
    assert!(!err.contains("overflowed"), "{err}");
}

#[test]
fn refused_stack_mapping_gives_a_clear_error() {
    if is_child("refused_stack_mapping_gives_a_clear_error") {
        // Start every runtime first: under the limit std itself aborts when it cannot map a
        // new OS thread's signal stack.
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let huge = Runtime::builder()
            .worker_threads(1)
            .stack_size(greenring::MAX_STACK_SIZE)
            .build()
            .unwrap();
        // Workers map their signal stacks when they start running, after `build` returns:
        // run one thread on each (on `huge` with a non-default size, which is not pooled).
        rt.block_on(|| ());
        Builder::new()
            .stack_size(greenring::MIN_STACK_SIZE)
            .spawn_on(&huge, || ())
            .unwrap()
            .join()
            .unwrap();
        // Leave 16 MiB of address space above what the process uses now; the stacks asked
        // for below are far larger than any slack (malloc arenas come and go by 64 MiB).
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
        let limit = pages * 4096 + (16 << 20);
        let set_limit = |soft| {
            let rlimit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: setrlimit with a valid struct; changes only this child's soft limit.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);
        };
        set_limit(limit);

        let err = Builder::new()
            .stack_size(greenring::MAX_STACK_SIZE)
            .spawn_on(&rt, || ())
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory, "{err}");
        let message = err.to_string();
        assert!(
            message.contains("RLIMIT_AS refused it") && message.contains("ulimit -v"),
            "{message}"
        );

        // The panicking form carries the same message.
        let payload = std::panic::catch_unwind(|| {
            Builder::new()
                .stack_size(greenring::MAX_STACK_SIZE)
                .spawn_on(&rt, || ())
                .map(|_| ())
        });
        assert!(payload.unwrap().is_err());
        // A runtime whose default stacks cannot be mapped: its `spawn` panics.
        let rt_panic = std::panic::catch_unwind(|| drop(huge.spawn(|| ())));
        let payload = rt_panic.expect_err("spawn panics when the stack cannot be mapped");
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            text.contains("failed to spawn green thread") && text.contains("RLIMIT_AS"),
            "{text}"
        );
        // Nothing was lost: once the limit is lifted the same runtime spawns again.
        set_limit(libc::RLIM_INFINITY);
        assert_eq!(rt.block_on(|| 3), 3);
        println!("child checks passed");
        return;
    }
    let output = run_child("refused_stack_mapping_gives_a_clear_error", &[]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && out.contains("child checks passed"),
        "{out}\n{}",
        stderr(&output)
    );
}
