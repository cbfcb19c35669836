//! Faults in the program's own code that runs on the runtime's threads (destructors,
//! loggers): each scenario runs in a child process under a time limit, so one that aborts
//! is checked for it, and one that hangs fails instead of stalling the suite.

#[path = "support/child.rs"]
mod child;

#[path = "support/block.rs"]
mod block;
use std::time::Duration;

use greenring::Runtime;

/// How long a child may run before it counts as hung.
const LIMIT: Duration = Duration::from_secs(30);

/// A value whose destructor panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("PanicsOnDrop panicked in drop");
    }
}

/// Runs the child `name` and checks that it aborted with std's message for a thread result
/// that panicked on drop.
fn expect_abort_with_stds_message(name: &str) {
    let output = child::run_child_within(name, LIMIT);
    let stderr = child::stderr(&output);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "the child must abort ({}):\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains("fatal runtime error: thread result panicked on drop, aborting"),
        "{stderr}"
    );
}

#[test]
fn a_detached_threads_result_that_panics_on_drop_aborts_as_std_does() {
    const NAME: &str = "a_detached_threads_result_that_panics_on_drop_aborts_as_std_does";
    if !child::is_child(NAME) {
        return expect_abort_with_stds_message(NAME);
    }
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    // Detached: the worker drops the result when the thread ends.
    drop(rt.spawn(|| PanicsOnDrop));
    // Without the abort the worker died here, and nothing below would ever run.
    block::block_os_thread(Duration::from_millis(500));
    let later = rt.spawn(|| 42);
    assert_eq!(later.join().unwrap(), 42);
    drop(rt);
    eprintln!("the child went on after the result panicked on drop");
}

#[test]
fn a_detached_threads_panic_payload_that_panics_on_drop_aborts_as_std_does() {
    const NAME: &str = "a_detached_threads_panic_payload_that_panics_on_drop_aborts_as_std_does";
    if !child::is_child(NAME) {
        return expect_abort_with_stds_message(NAME);
    }
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    drop(rt.spawn(|| std::panic::panic_any(PanicsOnDrop)));
    block::block_os_thread(Duration::from_millis(500));
    let later = rt.spawn(|| 42);
    assert_eq!(later.join().unwrap(), 42);
    drop(rt);
    eprintln!("the child went on after the payload panicked on drop");
}

/// A logger whose every record panics, counting them.
struct PanickingLogger;

impl log::Log for PanickingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        panic!("the logger panics on: {}", record.args());
    }

    fn flush(&self) {}
}

#[test]
fn a_panicking_logger_leaves_the_monitor_and_the_workers_running() {
    const NAME: &str = "a_panicking_logger_leaves_the_monitor_and_the_workers_running";
    if !child::is_child(NAME) {
        let output = child::run_child_within(NAME, LIMIT);
        let stderr = child::stderr(&output);
        assert!(output.status.success(), "{}:\n{stderr}", output.status);
        assert!(
            stderr.contains("the `log` logger panicked"),
            "the logger's panic is reported once:\n{stderr}"
        );
        assert_eq!(
            stderr.matches("the `log` logger panicked").count(),
            1,
            "{stderr}"
        );
        // The second stall's warning comes from the monitor after the logger panicked:
        // it survived, and reports go to standard error now.
        assert!(
            stderr.contains("'second-stall'"),
            "the monitor reported the second stall:\n{stderr}"
        );
        return;
    }
    static LOGGER: PanickingLogger = PanickingLogger;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let rt = Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(Some(Duration::from_millis(10)))
        .build()
        .unwrap();
    for name in ["first-stall", "second-stall"] {
        let stall = greenring::thread::Builder::new()
            .name(name.into())
            // Blocks its worker's OS thread: the monitor warns through the logger.
            .spawn_on(&rt, || block::block_os_thread(Duration::from_millis(200)))
            .unwrap();
        stall.join().unwrap();
    }
    // The worker runs on, and the runtime shuts down.
    assert_eq!(rt.block_on(|| 6 * 7), 42);
    drop(rt);
}

/// The address space the process uses now, in bytes.
fn address_space_in_use() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Sets the soft address-space limit (RLIMIT_AS) to `bytes`; returns the previous one.
fn set_address_space_limit(bytes: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write one rlimit value we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut limit), 0);
        let previous = limit.rlim_cur;
        limit.rlim_cur = bytes;
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limit), 0);
        previous
    }
}

/// While no OS thread can be started (the address-space limit leaves no room for a thread's
/// stack; RLIMIT_NPROC would do the same, but the tests run as root, which it does not
/// bind), blocking-pool calls from OS threads and green threads at once fail with an error
/// naming the limit, none is lost and none hangs; once threads can be started again, the
/// pool serves calls again and the runtime shuts down.
#[test]
fn blocking_calls_made_while_no_thread_can_start_fail_and_none_is_lost() {
    const NAME: &str = "blocking_calls_made_while_no_thread_can_start_fail_and_none_is_lost";
    if !child::is_child(NAME) {
        let output = child::run_child_within(NAME, LIMIT);
        let stderr = child::stderr(&output);
        assert!(output.status.success(), "{}:\n{stderr}", output.status);
        assert!(
            stderr.contains("calls refused while no thread could start"),
            "{stderr}"
        );
        return;
    }
    use std::sync::{Arc, Barrier};
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let dir = std::env::temp_dir();
    // Green threads, started (stacks and all) before the limit, each about to make calls
    // that run on the blocking pool: a directory listing, metadata, a host name.
    let go = Arc::new(greenring::sync::Barrier::new(12));
    let green: Vec<_> = (0..11)
        .map(|i| {
            let (go, dir) = (Arc::clone(&go), dir.clone());
            rt.spawn(move || {
                go.wait();
                match i % 3 {
                    0 => greenring::fs::metadata(&dir).map(drop),
                    1 => greenring::fs::read_dir(&dir).map(drop),
                    _ => greenring::net::TcpStream::connect(("localhost", 9)).map(drop),
                }
            })
        })
        .collect();
    // OS threads that will call spawn_blocking at once, started before the limit too.
    let callers = 7;
    // `ready`: every caller has started (std sets a thread's signal stack up as it starts,
    // which the limit would refuse); `start`: the limit is in place.
    let (ready, start) = (
        Arc::new(Barrier::new(callers + 1)),
        Arc::new(Barrier::new(callers + 1)),
    );
    let os_callers: Vec<_> = (0..callers)
        .map(|_| {
            let (ready, start) = (Arc::clone(&ready), Arc::clone(&start));
            std::thread::spawn(move || {
                ready.wait();
                start.wait();
                (0..9)
                    .map(|i| greenring::spawn_blocking(move || i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    ready.wait();
    // Room for nothing as big as a thread's stack.
    let previous = set_address_space_limit(address_space_in_use() + (512 << 10));
    start.wait();
    go.wait();
    let handles: Vec<_> = os_callers
        .into_iter()
        .flat_map(|caller| caller.join().expect("spawn_blocking never panics"))
        .collect();
    let mut refused = 0;
    for (handle, expected) in handles.into_iter().zip((0..9).cycle()) {
        match handle.join() {
            Ok(value) => assert_eq!(value, expected),
            Err(payload) => {
                let message = payload.downcast_ref::<String>().expect("a String payload");
                assert!(message.contains("RLIMIT_NPROC"), "{message}");
                refused += 1;
            }
        }
    }
    for call in green {
        match call.join().expect("the green thread returned") {
            Ok(()) => {}
            Err(err) if err.to_string().contains("blocking-pool thread") => refused += 1,
            // The lookup or the connect itself may fail; it ran.
            Err(_) => {}
        }
    }
    assert!(refused > 0, "no call was refused: the limit did not bind");
    eprintln!("{refused} of 74 calls refused while no thread could start");
    set_address_space_limit(previous);
    assert_eq!(greenring::spawn_blocking(|| 5).join().unwrap(), 5);
    let listed = rt.block_on(move || greenring::fs::read_dir(&dir).map(|d| d.count()));
    assert!(listed.unwrap() > 0);
    drop(rt);
}

/// Records what the runtime logs.
struct Recorder;

static RECORDED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        RECORDED
            .lock()
            .unwrap()
            .push(format!("[{}] {}", record.level(), record.args()));
    }

    fn flush(&self) {}
}

/// Locks `lock` when dropped: run by an unwind, it blocks the OS thread (a thread that
/// unwinds cannot switch away).
struct LocksOnDrop(std::sync::Arc<greenring::sync::Mutex<()>>);

impl Drop for LocksOnDrop {
    fn drop(&mut self) {
        drop(self.0.lock());
    }
}

/// A destructor run by a panic locks a `greenring::sync::Mutex` that a thread of the same
/// worker holds while it sleeps: the worker's OS thread waits for a lock whose holder can
/// only run on it. The monitor names the deadlock: the blocked thread, the lock and the
/// holder. (The runtime cannot recover; the child exits once it has seen the report.)
#[test]
#[cfg_attr(
    greenring_migrate,
    ignore = "a runtime that migrates started threads hands the holder to another OS thread: no deadlock"
)]
fn a_destructor_unwinding_into_a_lock_held_on_its_worker_is_named_as_a_deadlock() {
    const NAME: &str =
        "a_destructor_unwinding_into_a_lock_held_on_its_worker_is_named_as_a_deadlock";
    if !child::is_child(NAME) {
        let output = child::run_child_within(NAME, LIMIT);
        assert!(
            output.status.success(),
            "{}:\n{}",
            output.status,
            child::stderr(&output)
        );
        return;
    }
    use std::sync::Arc;
    static LOGGER: Recorder = Recorder;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let lock = Arc::new(greenring::sync::Mutex::new(()));
    let holding = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let (lock, holding) = (Arc::clone(&lock), Arc::clone(&holding));
        greenring::thread::Builder::new()
            .name("holder".into())
            .spawn_on(&rt, move || {
                let _guard = lock.lock().unwrap();
                holding.store(true, std::sync::atomic::Ordering::SeqCst);
                greenring::time::sleep(Duration::from_secs(3600));
            })
            .unwrap()
    };
    while !holding.load(std::sync::atomic::Ordering::SeqCst) {
        block::block_os_thread(Duration::from_millis(1));
    }
    // A slow panic hook (as a backtrace printed under load is): the monitor suspects a
    // deadlock before the unwind reaches the lock, and must still name the certain one.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        block::block_os_thread(Duration::from_millis(300));
        default_hook(info);
    }));
    let _unwinder = greenring::thread::Builder::new()
        .name("unwinder".into())
        .spawn_on(&rt, move || {
            let _locks = LocksOnDrop(lock);
            panic!("unwinding into a lock");
        })
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = RECORDED
            .lock()
            .unwrap()
            .iter()
            .find(|line| line.contains("deadlock: green thread"))
            .cloned();
        if let Some(line) = found {
            // A slow unwind (a backtrace printed by the panic hook) may first be reported
            // as a suspected deadlock; the certain one still follows, naming the lock.
            assert!(line.starts_with("[ERROR]"), "{line}");
            assert!(line.contains("is unwinding"), "{line}");
            assert!(line.contains("'unwinder'"), "{line}");
            assert!(line.contains("'holder'"), "{line}");
            assert!(line.contains("greenring::sync::Mutex at 0x"), "{line}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no deadlock named: {:?}",
            RECORDED.lock().unwrap()
        );
        block::block_os_thread(Duration::from_millis(10));
    }
    assert!(!holder.is_finished(), "the holder can never run again");
    // The runtime is deadlocked for good: leave without dropping it.
    std::process::exit(0);
}

/// Uses files and sockets in its destructor.
struct TouchesTheWorldOnDrop(std::path::PathBuf, std::net::SocketAddr);

impl Drop for TouchesTheWorldOnDrop {
    fn drop(&mut self) {
        let file = self.0.join("written-while-unwinding");
        greenring::fs::write(&file, b"unwinding").unwrap();
        greenring::fs::create_dir_all(self.0.join("a/b")).unwrap();
        greenring::fs::remove_file(&file).unwrap();
        drop(greenring::fs::File::create(self.0.join("created")).unwrap());
        drop(greenring::net::TcpStream::connect(self.1).unwrap());
    }
}

/// A destructor run by a panic on a green thread opens, writes and removes files and
/// connects a socket: the calls take their blocking form (a thread that unwinds cannot
/// park), instead of panicking a second time (before: an `expect` that assumed the driver
/// always served a green thread, and the process aborted).
#[test]
fn destructors_that_use_files_and_sockets_during_a_panic_work() {
    const NAME: &str = "destructors_that_use_files_and_sockets_during_a_panic_work";
    if !child::is_child(NAME) {
        let output = child::run_child_within(NAME, LIMIT);
        assert!(
            output.status.success(),
            "{}:\n{}",
            output.status,
            child::stderr(&output)
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("greenring-faults-drop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let their_dir = dir.clone();
    let payload = rt
        .spawn(move || {
            let _guard = TouchesTheWorldOnDrop(their_dir, addr);
            panic!("unwinding through file and socket calls");
        })
        .join()
        .expect_err("the thread panicked");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"unwinding through file and socket calls")
    );
    assert!(dir.join("created").exists());
    assert!(dir.join("a/b").is_dir());
    listener.accept().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
