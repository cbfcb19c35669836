//! `Runtime::dump`: states, backtraces, grouping, stack high-water marks, and the
//! monitor's stall report.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::io::Read;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant};

use greenring::dump::{Dump, ThreadState, WaitKind};
use greenring::net::{TcpListener, TcpStream};
use greenring::sync::{mpmc, mpsc, Condvar, Mutex, Semaphore};
use greenring::{Runtime, SwitchBackend};
use watchdog::within;

/// Whether this build and runtime can walk suspended stacks (see `greenring::dump`).
fn backtraces(rt: &Runtime) -> bool {
    !rt.migrates_started_threads()
}

/// Dumps until `ready` holds (threads take a moment to reach their waits).
fn dump_when(rt: &Runtime, ready: impl Fn(&Dump) -> bool) -> Dump {
    loop {
        let dump = rt.dump();
        if ready(&dump) {
            return dump;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn named<T: Send + 'static>(
    rt: &Runtime,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> greenring::JoinHandle<T> {
    greenring::thread::Builder::new()
        .name(name.to_owned())
        .spawn_on(rt, f)
        .unwrap()
}

#[inline(never)]
fn blocked_in_accept(listener: TcpListener) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(1);
    let _ = std::hint::black_box(listener.accept());
}

#[inline(never)]
fn blocked_in_read(mut stream: TcpStream) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(2);
    let mut buf = [0; 16];
    let _ = std::hint::black_box(stream.read(&mut buf));
}

#[inline(never)]
fn blocked_on_lock(lock: Arc<Mutex<()>>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(3);
    drop(std::hint::black_box(lock.lock()));
}

#[inline(never)]
fn blocked_on_recv(rx: mpsc::Receiver<()>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(4);
    let _ = std::hint::black_box(rx.recv());
}

#[inline(never)]
fn blocked_on_send(tx: mpsc::SyncSender<()>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(5);
    let _ = std::hint::black_box(tx.send(()));
}

#[inline(never)]
fn blocked_in_join(handle: greenring::JoinHandle<()>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(6);
    let _ = std::hint::black_box(handle.join());
}

#[inline(never)]
fn blocked_in_sleep(stop: Arc<AtomicBool>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(7);
    while !stop.load(Ordering::SeqCst) {
        greenring::time::sleep(Duration::from_millis(200));
    }
}

#[inline(never)]
fn blocked_in_park(stop: Arc<AtomicBool>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(8);
    while !stop.load(Ordering::SeqCst) {
        greenring::park();
    }
}

#[inline(never)]
fn blocked_on_condvar(pair: Arc<(Mutex<bool>, Condvar)>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(9);
    let (lock, cond) = &*pair;
    let mut done = lock.lock().unwrap();
    while !*done {
        done = cond.wait(done).unwrap();
    }
}

#[inline(never)]
fn blocked_on_semaphore(semaphore: Arc<Semaphore>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(10);
    drop(std::hint::black_box(semaphore.acquire()));
}

#[test]
fn a_dump_names_each_wait_and_the_waiting_function() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0").unwrap());
        let listener_fd = {
            use std::os::fd::AsRawFd;
            listener.as_raw_fd()
        };
        let accept_addr = listener.local_addr().unwrap();
        let std_listener = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let stream = rt.block_on(move || TcpStream::connect(addr).unwrap());
        let (_peer, _) = std_listener.accept().unwrap();
        let lock = Arc::new(Mutex::new(()));
        let held = lock.lock().unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let (full_tx, full_rx) = mpsc::sync_channel::<()>(0);
        let stop = Arc::new(AtomicBool::new(false));
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let semaphore = Arc::new(Semaphore::new(0));

        let mut handles = vec![
            named(&rt, "accept", move || blocked_in_accept(listener)),
            named(&rt, "read", move || blocked_in_read(stream)),
            named(&rt, "lock", {
                let lock = Arc::clone(&lock);
                move || blocked_on_lock(lock)
            }),
            named(&rt, "recv", move || blocked_on_recv(rx)),
            named(&rt, "send", move || blocked_on_send(full_tx)),
            named(&rt, "sleep", {
                let stop = Arc::clone(&stop);
                move || blocked_in_sleep(stop)
            }),
            named(&rt, "condvar", {
                let pair = Arc::clone(&pair);
                move || blocked_on_condvar(pair)
            }),
            named(&rt, "semaphore", {
                let semaphore = Arc::clone(&semaphore);
                move || blocked_on_semaphore(semaphore)
            }),
        ];
        let parker = named(&rt, "park", {
            let stop = Arc::clone(&stop);
            move || blocked_in_park(stop)
        });
        let parker_thread = parker.thread().clone();
        let joined = named(&rt, "joined", {
            let stop = Arc::clone(&stop);
            move || blocked_in_park(stop)
        });
        let joined_thread = joined.thread().clone();
        handles.push(named(&rt, "join", move || blocked_in_join(joined)));

        let expected: Vec<(&str, &str)> = vec![
            ("accept", "blocked_in_accept"),
            ("read", "blocked_in_read"),
            ("lock", "blocked_on_lock"),
            ("recv", "blocked_on_recv"),
            ("send", "blocked_on_send"),
            ("sleep", "blocked_in_sleep"),
            ("condvar", "blocked_on_condvar"),
            ("semaphore", "blocked_on_semaphore"),
            ("park", "blocked_in_park"),
            ("joined", "blocked_in_park"),
            ("join", "blocked_in_join"),
        ];
        let dump = dump_when(&rt, |dump| {
            expected.iter().all(|(name, _)| {
                dump.thread(name)
                    .is_some_and(|t| matches!(t.state, ThreadState::Waiting(_)))
            })
        });
        println!("{dump}");
        let state = |name: &str| dump.thread(name).unwrap().state.clone();
        assert!(
            matches!(state("accept"), ThreadState::Waiting(WaitKind::Io { op: "Accept", fd }) if fd == listener_fd),
            "{:?}",
            state("accept")
        );
        assert!(
            matches!(
                state("read"),
                ThreadState::Waiting(WaitKind::Io { op: "Recv", .. })
            ),
            "{:?}",
            state("read")
        );
        assert_eq!(state("lock"), ThreadState::Waiting(WaitKind::Lock));
        assert_eq!(state("recv"), ThreadState::Waiting(WaitKind::ChannelRecv));
        assert_eq!(state("send"), ThreadState::Waiting(WaitKind::ChannelSend));
        assert!(
            matches!(state("sleep"), ThreadState::Waiting(WaitKind::Sleep { deadline })
                if deadline <= Instant::now() + Duration::from_millis(250)),
            "{:?}",
            state("sleep")
        );
        assert_eq!(state("condvar"), ThreadState::Waiting(WaitKind::Condvar));
        assert_eq!(
            state("semaphore"),
            ThreadState::Waiting(WaitKind::Semaphore)
        );
        assert_eq!(state("park"), ThreadState::Waiting(WaitKind::Park));
        assert_eq!(state("join"), ThreadState::Waiting(WaitKind::Join));
        for (name, _) in &expected {
            let thread = dump.thread(name).unwrap();
            let stack = thread.stack.expect("mincore works on stacks");
            assert!(stack.touched_pages >= 1 && stack.touched_pages <= stack.pages);
            if *name != "sleep" {
                assert!(thread.duration.is_some(), "{name}: {thread:?}");
            }
        }
        if backtraces(&rt) {
            for (name, function) in &expected {
                let thread = dump.thread(name).unwrap();
                let trace = thread
                    .backtrace
                    .as_ref()
                    .unwrap_or_else(|why| panic!("{name}: no backtrace: {why}"));
                // Release builds may inline everything but the `inline(never)` functions;
                // their names stay in the symbol table.
                assert!(
                    trace.contains(function),
                    "{name}: {function} not in\n{trace}"
                );
                assert!(
                    !trace.contains("greenring_probe") && !trace.contains("greenring::dump::"),
                    "{name}: the probe's frames are trimmed:\n{trace}"
                );
            }
        } else {
            for (name, _) in &expected {
                let why = dump.thread(name).unwrap().backtrace.as_ref().unwrap_err();
                assert!(!why.is_empty());
            }
        }
        let text = dump.to_string();
        for (name, _) in &expected {
            assert!(
                text.contains(&format!("'{name}'")),
                "{name} missing from\n{text}"
            );
        }

        // Everything was left exactly as it was: every wait completes normally.
        drop(held);
        drop(tx);
        let _ = full_rx.recv();
        semaphore.add_permits(1);
        *pair.0.lock().unwrap() = true;
        pair.1.notify_all();
        stop.store(true, Ordering::SeqCst);
        parker_thread.unpark();
        joined_thread.unpark();
        drop(_peer);
        let _client = std::net::TcpStream::connect(accept_addr).unwrap();
        for handle in handles {
            handle.join().unwrap();
        }
        parker.join().unwrap();
    });
}

#[test]
fn a_dump_of_100k_threads_is_quick_and_grouped() {
    within(Duration::from_secs(300), || {
        const THREADS: usize = 100_000;
        let rt = Runtime::builder()
            .worker_threads(2)
            .stack_size(greenring::MIN_STACK_SIZE)
            .build()
            .unwrap();
        let (tx, rx) = mpmc::unbounded::<()>();
        let arrived = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (rx, arrived) = (rx.clone(), Arc::clone(&arrived));
                rt.spawn(move || {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    blocked_on_mpmc(rx)
                })
            })
            .collect();
        drop(rx);
        // Every thread reached its recv; the parks counter then says they parked (counting
        // those parked on an OS thread a worker left behind to a thread that blocked it).
        while arrived.load(Ordering::SeqCst) < THREADS {
            std::thread::sleep(Duration::from_millis(20));
        }
        let settle = Instant::now();
        while rt.metrics().parks() < THREADS as u64 {
            assert!(
                settle.elapsed() < Duration::from_secs(30),
                "{} of {THREADS} parks counted",
                rt.metrics().parks()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let start = Instant::now();
        let dump = rt.dump();
        let took = start.elapsed();
        let text = dump.to_string();
        let formatted = start.elapsed();
        println!("dump of {THREADS} threads: {took:?}, with formatting {formatted:?}");
        println!("{}", &text[..text.len().min(4000)]);
        assert_eq!(dump.threads().len() + dump.not_started(), THREADS);
        let groups = dump.groups();
        assert!(groups.len() <= 4, "{} groups", groups.len());
        assert!(groups[0].len() >= THREADS - 10);
        assert_eq!(
            groups[0][0].state,
            ThreadState::Waiting(WaitKind::ChannelRecv)
        );
        if backtraces(&rt) {
            let trace = groups[0][0].backtrace.as_ref().unwrap();
            assert!(trace.contains("blocked_on_mpmc"), "{trace}");
        }
        assert!(text.lines().count() < 200, "grouped:\n{text}");
        // Generous: a noisy 2-CPU machine, and debug builds.
        assert!(took < Duration::from_secs(5), "took {took:?}");
        drop(tx);
        for handle in handles {
            handle.join().unwrap();
        }
    });
}

#[inline(never)]
fn blocked_on_mpmc(rx: mpmc::Receiver<()>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(11);
    let _ = std::hint::black_box(rx.recv());
}

/// Collects the runtime's log records (one logger per process).
struct Captured(StdMutex<Vec<String>>);

impl log::Log for Captured {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }

    fn flush(&self) {}
}

fn captured() -> &'static Captured {
    static LOGGER: OnceLock<&'static Captured> = OnceLock::new();
    LOGGER.get_or_init(|| {
        let logger: &'static Captured = Box::leak(Box::new(Captured(StdMutex::new(Vec::new()))));
        log::set_logger(logger).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        logger
    })
}

#[inline(never)]
fn spin_until(flag: &AtomicBool) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(12);
    while !flag.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
}

/// Two workers whose monitor reports a stall after 5 ms.
fn quick_to_stall() -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .handoff_threshold(Some(Duration::from_millis(5)))
        .build()
        .unwrap()
}

#[test]
fn the_stall_report_names_the_thread_and_its_last_wait() {
    let logs = captured();
    within(Duration::from_secs(60), move || {
        let rt = quick_to_stall();
        let (tx, rx) = mpsc::channel::<()>();
        let release = Arc::new(AtomicBool::new(false));
        let spinner = named(&rt, "stall-spinner", {
            let release = Arc::clone(&release);
            move || {
                rx.recv().unwrap();
                spin_until(&release);
            }
        });
        // Let it reach its recv first, so its last greenring call is that recv.
        dump_when(&rt, |dump| {
            dump.thread("stall-spinner")
                .is_some_and(|t| t.state == ThreadState::Waiting(WaitKind::ChannelRecv))
        });
        tx.send(()).unwrap();
        let reported = |logs: &Captured| {
            logs.0
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.contains("'stall-spinner'"))
                .cloned()
        };
        if !rt.migrates_started_threads() {
            // The monitor reports while the thread still spins.
            let start = Instant::now();
            let line = loop {
                if let Some(line) = reported(logs) {
                    break line;
                }
                assert!(start.elapsed() < Duration::from_secs(20), "no stall report");
                std::thread::sleep(Duration::from_millis(5));
            };
            assert!(line.contains("channel recv"), "{line}");
            // A dump meanwhile lists the spinner as running, without waiting for its worker.
            let dump = rt.dump();
            println!("{dump}");
            let spinner_dump = dump.thread("stall-spinner").unwrap();
            assert_eq!(spinner_dump.state, ThreadState::Running);
            assert!(spinner_dump.duration.is_some());
            assert!(spinner_dump.backtrace.is_err());
            assert!(
                dump.notes().iter().any(|n| n.contains("'stall-spinner'")),
                "{:?}",
                dump.notes()
            );
            release.store(true, Ordering::SeqCst);
        } else {
            // A migrating runtime reports once the thread switches back.
            std::thread::sleep(Duration::from_millis(50));
            release.store(true, Ordering::SeqCst);
        }
        spinner.join().unwrap();
        let start = Instant::now();
        let line = loop {
            if let Some(line) = reported(logs) {
                break line;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no stall report");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(line.contains("channel recv"), "{line}");
    });
}

#[inline(never)]
fn recurse_then_wait(depth: usize, rx: &mpsc::Receiver<()>) {
    // A constant of its own, so release builds do not fold it with a twin.
    std::hint::black_box(13);
    let frame = std::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        let _ = rx.recv();
    } else {
        recurse_then_wait(depth - 1, rx);
    }
    std::hint::black_box(&frame);
}

/// Recurses, 512 bytes a frame, until `used` bytes below `start`, then waits on `rx`.
#[inline(never)]
fn recurse_until_then_wait(start: usize, used: usize, rx: &mpsc::Receiver<()>) {
    let frame = std::hint::black_box([0u8; 512]);
    let here = std::hint::black_box(&frame) as *const [u8; 512] as usize;
    if start - here >= used {
        let _ = rx.recv();
    } else {
        recurse_until_then_wait(start, used, rx);
    }
    std::hint::black_box(&frame);
}

#[test]
fn the_stack_high_water_mark_grows_with_recursion() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (deep_tx, deep_rx) = mpsc::channel::<()>();
        let (shallow_tx, shallow_rx) = mpsc::channel::<()>();
        // A size of their own: such stacks are mapped fresh, not taken from the pool.
        let spawn = |name: &str, depth: usize, rx: mpsc::Receiver<()>| {
            greenring::thread::Builder::new()
                .name(name.to_owned())
                .stack_size(1 << 20)
                .spawn_on(&rt, move || recurse_then_wait(depth, &rx))
                .unwrap()
        };
        let deep = spawn("deep", 200, deep_rx);
        let shallow = spawn("shallow", 0, shallow_rx);
        let dump = dump_when(&rt, |dump| {
            ["deep", "shallow"].iter().all(|name| {
                dump.thread(name)
                    .is_some_and(|t| t.state == ThreadState::Waiting(WaitKind::ChannelRecv))
            })
        });
        let pages = |name: &str| dump.thread(name).unwrap().stack.unwrap();
        let (deep_pages, shallow_pages) = (pages("deep"), pages("shallow"));
        println!("deep: {deep_pages:?}, shallow: {shallow_pages:?}");
        // 200 frames of at least 1 KiB: 50 pages of 4 KiB.
        assert!(
            deep_pages.touched_bytes() >= shallow_pages.touched_bytes() + 190 * 1024,
            "deep {deep_pages:?}, shallow {shallow_pages:?}"
        );
        let histogram = rt.stack_histogram();
        assert_eq!(histogram.len(), greenring::runtime::STACK_BUCKETS);
        assert_eq!(histogram.iter().sum::<u64>(), 2);
        drop((deep_tx, shallow_tx));
        deep.join().unwrap();
        shallow.join().unwrap();
    });
}

#[test]
fn a_thread_with_little_stack_left_is_dumped_safely() {
    // With the corosensei switch the walk runs on the thread's own stack: a thread parked
    // near its guard page must get a reason instead of a walk that overflows it. With
    // greenring's switch the walk runs on the worker's stack and succeeds.
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        // 64 KiB usable (less the start offset, at most 2 KiB): recursing until 58 KiB
        // below the first frame leaves at most 4 KiB, enough for the wait itself.
        let deep = greenring::thread::Builder::new()
            .name("deep".to_owned())
            .stack_size(64 * 1024)
            .spawn_on(&rt, move || {
                let marker = 0u8;
                let start = std::hint::black_box(&marker) as *const u8 as usize;
                recurse_until_then_wait(start, 58 * 1024, &rx);
            })
            .unwrap();
        let dump = dump_when(&rt, |dump| {
            dump.thread("deep")
                .is_some_and(|t| t.state == ThreadState::Waiting(WaitKind::ChannelRecv))
        });
        let backtrace = &dump.thread("deep").unwrap().backtrace;
        match rt.switch_backend() {
            _ if !backtraces(&rt) => assert!(backtrace.is_err()),
            SwitchBackend::Corosensei => {
                let why = backtrace.as_ref().unwrap_err();
                assert!(why.contains("guard page"), "{why}");
            }
            _ => {
                let trace = backtrace.as_ref().unwrap();
                assert!(trace.contains("recurse_until_then_wait"), "{trace}");
            }
        }
        drop(tx);
        deep.join().unwrap();
    });
}

#[test]
fn a_green_thread_can_dump_its_own_runtime() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        let waiter = named(&rt, "waiter", move || blocked_on_recv(rx));
        let dump = rt.block_on(|| loop {
            let dump = greenring::dump();
            if dump
                .thread("waiter")
                .is_some_and(|t| t.state == ThreadState::Waiting(WaitKind::ChannelRecv))
            {
                return dump;
            }
            greenring::time::sleep(Duration::from_millis(5));
        });
        // The dumping thread itself waits for the blocking pool meanwhile.
        assert!(dump
            .threads()
            .iter()
            .any(|t| t.state == ThreadState::Waiting(WaitKind::Join)));
        drop(tx);
        waiter.join().unwrap();
    });
}

#[test]
fn each_stall_of_a_thread_is_reported() {
    let logs = captured();
    within(Duration::from_secs(60), move || {
        let rt = quick_to_stall();
        if rt.migrates_started_threads() {
            return;
        }
        let count = |logs: &Captured| {
            logs.0
                .lock()
                .unwrap()
                .iter()
                .filter(|line| line.contains("'twice-stalled'"))
                .count()
        };
        let wait_for = |reports: usize| {
            let start = Instant::now();
            while count(logs) < reports {
                assert!(start.elapsed() < Duration::from_secs(20), "no stall report");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let (first, second) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let spinner = named(&rt, "twice-stalled", {
            let (first, second) = (Arc::clone(&first), Arc::clone(&second));
            move || {
                spin_until(&first);
                // A greenring wait (the thread switches back to its worker) ends the stall.
                greenring::thread::sleep(Duration::from_millis(10));
                spin_until(&second);
            }
        });
        wait_for(1);
        first.store(true, Ordering::SeqCst);
        wait_for(2);
        second.store(true, Ordering::SeqCst);
        spinner.join().unwrap();
    });
}
