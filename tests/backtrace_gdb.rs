//! gdb's backtrace of a green thread stops cleanly at the base of its stack.

mod support;

use support::{is_child, run_child, stderr};

/// A function to break in, on a green thread.
#[inline(never)]
#[no_mangle]
pub extern "C" fn greenring_gdb_probe(x: u64) -> u64 {
    std::hint::black_box(x) + 1
}

#[test]
fn gdb_backtrace_ends_at_the_green_thread_entry() {
    const TEST: &str = "gdb_backtrace_ends_at_the_green_thread_entry";
    if is_child(TEST) {
        assert_eq!(
            greenring::spawn(|| greenring_gdb_probe(41)).join().unwrap(),
            42
        );
        return;
    }
    if std::process::Command::new("gdb")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: gdb is not installed");
        return;
    }
    let gdb = [
        "gdb",
        "-q",
        "-batch",
        "-ex",
        "break greenring_gdb_probe",
        "-ex",
        "run",
        "-ex",
        "bt",
        "--args",
    ];
    let output = run_child(TEST, &gdb);
    let out = String::from_utf8_lossy(&output.stdout);
    let frames: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
    assert!(
        frames
            .first()
            .is_some_and(|f| f.contains("greenring_gdb_probe")),
        "{out}\n{}",
        stderr(&output)
    );
    assert!(
        !out.contains("Backtrace stopped"),
        "gdb saw a corrupt stack:\n{out}"
    );
    if cfg!(feature = "corosensei") {
        // corosensei links the coroutine to its resumer (a frame gdb shows as a signal
        // frame), so the walk continues cleanly into the worker that resumed the thread.
        assert!(
            out.contains("coroutine_func") && out.contains("run_worker"),
            "{out}"
        );
    } else {
        assert!(
            frames.last().unwrap().contains("greenring_trampoline"),
            "{out}"
        );
    }
}
