//! Runtime construction, reporting and shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::runtime::Cancelled;
use greenring::thread::Builder;
use greenring::{Runtime, StackGuard, SwitchBackend};

#[test]
fn reports_its_configuration() {
    let rt = Runtime::builder()
        .worker_threads(3)
        .stack_size(128 * 1024)
        .thread_name("custom")
        .build()
        .unwrap();
    assert_eq!(rt.worker_threads(), 3);
    let expected = if cfg!(feature = "corosensei") {
        SwitchBackend::Corosensei
    } else {
        SwitchBackend::OwnAsm
    };
    assert_eq!(rt.switch_backend(), expected);
    let forced = std::env::var("GREENRING_STACK_GUARD").is_ok_and(|v| v == "mprotect");
    if forced {
        assert_eq!(rt.stack_guard(), StackGuard::Mprotect);
    }
    let worker_name = rt.block_on(|| std::thread::current().name().map(str::to_owned));
    assert!(worker_name.unwrap().starts_with("custom-"));
    assert!(format!("{rt:?}").contains("worker_threads: 3"));
}

#[test]
fn drop_lets_running_threads_finish_and_cancels_blocked_ones() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let their_done = Arc::clone(&done);
    let started = Arc::new(AtomicBool::new(false));
    let their_started = Arc::clone(&started);
    // Computes without blocking: runs to completion.
    let computing = rt.spawn(move || {
        their_started.store(true, Ordering::SeqCst);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(100) {
            std::hint::spin_loop();
        }
        their_done.store(true, Ordering::SeqCst);
    });
    // Blocked in a sleep and in an accept: cancelled, unwinding through their destructors.
    let unwound = Arc::new(AtomicBool::new(false));
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let guard = SetOnDrop(Arc::clone(&unwound));
    let sleeper = rt.spawn(move || {
        let _guard = guard;
        greenring::time::sleep(Duration::from_secs(3600));
    });
    let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let acceptor = rt.spawn(move || listener.accept().map(drop));
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    drop(rt);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(done.load(Ordering::SeqCst));
    computing.join().unwrap();
    for payload in [sleeper.join().unwrap_err(), acceptor.join().unwrap_err()] {
        assert_eq!(payload.downcast_ref::<Cancelled>(), Some(&Cancelled));
    }
    assert!(
        unwound.load(Ordering::SeqCst),
        "the cancelled thread's destructors ran"
    );
}

#[test]
fn spawn_during_shutdown_is_refused() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    // Spins without blocking (a blocking point would cancel it) until spawning fails.
    let prober = rt.spawn(|| loop {
        match Builder::new().spawn(|| ()) {
            Ok(handle) => drop(handle),
            Err(err) => return err.to_string(),
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    let message = prober.join().unwrap();
    assert!(message.contains("shutting down"), "{message}");
}

#[test]
fn forever_parked_threads_unwind_after_the_grace() {
    let rt = Runtime::builder()
        .worker_threads(2)
        .shutdown_grace(Duration::from_millis(200))
        .build()
        .unwrap();
    // Parked before the shutdown, and nothing will ever unpark it: it cannot progress.
    let forever = rt.spawn(|| loop {
        greenring::park();
    });
    let quick = rt.spawn(|| 1);
    assert_eq!(quick.join().unwrap(), 1);
    let start = Instant::now();
    assert!(
        rt.shutdown_timeout(Duration::from_secs(30)),
        "the parked thread unwound"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "woken after the grace, without waiting for the timeout"
    );
    let payload = forever.join().unwrap_err();
    assert_eq!(payload.downcast_ref::<Cancelled>(), Some(&Cancelled));
}

#[test]
fn shutdown_timeout_reports_success() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    for i in 0..100 {
        rt.spawn(move || i);
    }
    assert!(rt.shutdown_timeout(Duration::from_secs(30)));
}

#[test]
#[should_panic(expected = "own green threads")]
fn dropping_a_runtime_from_its_own_thread_panics() {
    let rt = Arc::new(Runtime::builder().worker_threads(1).build().unwrap());
    let inner = Arc::clone(&rt);
    let handle = rt.spawn(move || {
        // The only other reference is dropped below, so this drop is the last one.
        while Arc::strong_count(&inner) > 1 {
            greenring::yield_now();
        }
        drop(inner);
    });
    drop(rt);
    if let Err(payload) = handle.join() {
        std::panic::resume_unwind(payload);
    }
}

#[test]
fn idle_runtime_sleeps() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    rt.block_on(|| ());
    // Let workers settle into sleep, then measure their CPU time over an idle window.
    std::thread::sleep(Duration::from_millis(50));
    let cpu = || {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage writes a full rusage into the valid out-pointer.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        // SAFETY: initialised by the call above.
        let usage = unsafe { usage.assume_init() };
        let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
        t(usage.ru_utime) + t(usage.ru_stime)
    };
    let before = cpu();
    std::thread::sleep(Duration::from_millis(300));
    let used = cpu() - before;
    // Other tests of this binary may run meanwhile; an idle runtime alone uses ~0.
    assert!(
        used < Duration::from_millis(150),
        "idle runtime used {used:?} of CPU"
    );
}

/// Captures a backtrace; never inlined, so its name is in the trace in release builds too
/// (a closure's frame may be inlined away).
#[inline(never)]
fn capture_backtrace_on_the_green_thread() -> String {
    std::hint::black_box(std::backtrace::Backtrace::force_capture()).to_string()
}

#[test]
fn backtraces_end_at_the_green_thread_entry() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let trace = Builder::new()
        .stack_size(1024 * 1024)
        .spawn_on(&rt, capture_backtrace_on_the_green_thread)
        .unwrap()
        .join()
        .unwrap();
    assert!(
        trace.contains("capture_backtrace_on_the_green_thread"),
        "{trace}"
    );
    if cfg!(feature = "corosensei") {
        // corosensei links a coroutine's stack to its resumer by design: the walk passes
        // its trampoline and continues, cleanly, into the worker that resumed the thread.
        assert!(trace.contains("stack_init_trampoline"), "{trace}");
        assert!(trace.contains("run_worker"), "{trace}");
    } else {
        // The walk stops at the base of the green stack: it never reaches the worker loop
        // on the OS thread's stack, nor garbage beyond it.
        assert!(!trace.contains("run_worker"), "{trace}");
        assert!(!trace.contains("lang_start"), "{trace}");
        let last = trace
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(char::is_numeric));
        assert!(last.unwrap().contains("greenring_trampoline"), "{trace}");
    }
}

#[test]
fn a_worker_name_prefix_with_an_interior_nul_is_an_error_from_build() {
    let err = Runtime::builder()
        .thread_name("worker\0")
        .build()
        .expect_err("build must refuse the name");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("null bytes"), "{err}");
}
