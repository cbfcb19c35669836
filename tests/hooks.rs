//! The `hooks` feature as a program meets it: code greenring does not own (std's `net` and
//! `thread::sleep`, `ureq`, `tungstenite`, C code loaded with `dlopen`, SQLite compiled into
//! the binary) makes blocking libc calls on green threads, and only the calling green thread
//! waits. The calls keep the semantics they have on OS threads: timeouts, non-blocking mode,
//! `poll`, `shutdown`. What binds to the hooks is found here, not assumed; calls glibc makes
//! inside itself do not (`glibc_internal_calls_still_block_the_worker`).
//!
//! Most tests run on a one-worker runtime of each I/O backend, with a neighbour green thread
//! that ticks every 5 ms: a call that blocked the worker's OS thread would stop it dead, so
//! its ticks during the call are the evidence that the call parked. Anything that could hang
//! runs under a watchdog, or in a child process with a time limit.
#![cfg(feature = "hooks")]

#[path = "support/backends.rs"]
mod backends;
#[path = "support/child.rs"]
mod child;
#[path = "support/recorder.rs"]
mod recorder;
#[path = "support/tempdir.rs"]
mod tempdir;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::{JoinHandle, Runtime};

use tempdir::TempDir;

/// How long a test may take before it fails as hung.
const LIMIT: Duration = Duration::from_secs(60);
/// The neighbour's sleep between ticks.
const TICK: Duration = Duration::from_millis(5);
/// How long the blocking calls under test wait: about 10 of the neighbour's ticks.
const WAIT: Duration = Duration::from_millis(50);
/// Ticks the neighbour must make during a call that waits [`WAIT`]: about 10 if the call
/// parked, 0 if it blocked the worker; 3 leaves room for a loaded machine.
const MIN_TICKS: usize = 3;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A neighbour green thread that sleeps [`TICK`] in a loop (with greenring's own sleep),
/// counting its ticks and the most it woke late; stopped when dropped.
struct Neighbour {
    state: Arc<NeighbourState>,
    handle: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct NeighbourState {
    ticks: AtomicUsize,
    worst_late_us: AtomicU64,
    stop: AtomicBool,
}

impl Neighbour {
    /// Spawns the neighbour on the caller's worker (pinned there) and returns once it has
    /// ticked. Call on a green thread.
    fn start() -> Neighbour {
        let state = Arc::new(NeighbourState::default());
        let theirs = Arc::clone(&state);
        let ticking = move || {
            while !theirs.stop.load(Ordering::Relaxed) {
                let asleep = Instant::now();
                greenring::time::sleep(TICK);
                let late = asleep.elapsed().saturating_sub(TICK);
                theirs
                    .worst_late_us
                    .fetch_max(late.as_micros() as u64, Ordering::Relaxed);
                theirs.ticks.fetch_add(1, Ordering::Relaxed);
            }
        };
        let handle = greenring::thread::Builder::new()
            .pinned(true)
            .spawn(ticking)
            .unwrap();
        while state.ticks.load(Ordering::Relaxed) == 0 {
            greenring::time::sleep(Duration::from_millis(1));
        }
        Neighbour {
            state,
            handle: Some(handle),
        }
    }

    /// Runs `op` and returns its value with the ticks the neighbour made meanwhile.
    fn ticks_during<T>(&self, op: impl FnOnce() -> T) -> (T, usize) {
        let before = self.state.ticks.load(Ordering::Relaxed);
        let value = op();
        (value, self.state.ticks.load(Ordering::Relaxed) - before)
    }

    /// As [`Neighbour::ticks_during`], and asserts the neighbour made at least
    /// [`MIN_TICKS`]: `op` parked rather than blocked the worker.
    fn keeps_ticking<T>(&self, what: &str, op: impl FnOnce() -> T) -> T {
        let (value, ticks) = self.ticks_during(op);
        assert!(
            ticks >= MIN_TICKS,
            "{what}: the neighbour ticked {ticks} times during it (blocked the worker?)"
        );
        value
    }

    /// Stops the neighbour; the most it ever woke late.
    fn stop(mut self) -> Duration {
        self.state.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        Duration::from_micros(self.state.worst_late_us.load(Ordering::Relaxed))
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

/// Taken shared by every test but one, which takes it alone: the timing of
/// [`ureq_gets_from_200_green_threads_wait_together`] is the tightest here, and on a
/// 2-core machine the other tests' threads would take its workers' CPU.
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Runs `body` under the watchdog, alongside the other tests (see [`MACHINE`]).
fn within<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let _shared = MACHINE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    watchdog::within(LIMIT, body)
}

/// Runs `body` under the watchdog on a green thread of a one-worker runtime of each I/O
/// backend the kernel allows.
fn on_one_worker(body: fn()) {
    within(move || {
        for rt in backends::one_worker_runtimes() {
            eprintln!("on {:?}", rt.io_backend());
            rt.block_on(body);
        }
    });
}

/// Two ends of a loopback TCP connection, made with std.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

/// Runs `f` on a new OS thread after [`WAIT`]: a peer that takes its time.
fn later<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        std::thread::sleep(WAIT);
        f()
    })
}

/// Asserts that `elapsed`, the length of a wait for a timeout of `timeout`, was not early
/// and not much late (the allowance is for a loaded machine, not for a wait that lost its
/// timer).
fn on_time(what: &str, elapsed: Duration, timeout: Duration) {
    assert!(
        elapsed >= timeout - Duration::from_millis(2),
        "{what}: returned early, after {elapsed:?} of {timeout:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_millis(400),
        "{what}: returned late, after {elapsed:?} of {timeout:?}"
    );
}

/// Records warnings and errors, to check the monitor's reports.
/// The monitor's reports of a green thread that blocked its worker, recorded so far.
fn stall_warnings() -> Vec<String> {
    recorder::logged(&["has blocked worker"])
}

// ---------------------------------------------------------------------------------------
// Crates that open their own sockets: ureq, tungstenite
// ---------------------------------------------------------------------------------------

/// An HTTP/1.1 server on OS threads (std only) that answers each request `hello` after
/// `delay`, keeping connections alive: `threads` threads, each accepting a connection and
/// serving it to its end. They all start before this returns, so that the clients never
/// wait for a thread to be created, and they run at the lowest priority, so that on a
/// 2-core machine 200 of them waking at once do not take the workers' CPU: the test is
/// about the clients.
fn slow_http_server(delay: Duration, threads: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // std listens with a backlog of 128: room for all the clients' connects at once, so
    // none waits for a SYN retransmission (listen again only changes the backlog).
    // SAFETY: a listening socket of ours.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 1024) }, 0);
    let addr = listener.local_addr().unwrap();
    let started = Arc::new(std::sync::Barrier::new(threads + 1));
    for _ in 0..threads {
        let listener = listener.try_clone().unwrap();
        let started = Arc::clone(&started);
        std::thread::spawn(move || {
            // SAFETY: changes the calling thread's nice value only (the lowest priority).
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
            started.wait();
            while let Ok((stream, _)) = listener.accept() {
                serve_slowly(stream, delay);
            }
        });
    }
    started.wait();
    addr
}

/// Answers each HTTP request on `stream` after `delay`, until the client closes it.
fn serve_slowly(mut stream: TcpStream, delay: Duration) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            request.drain(..end + 4);
            std::thread::sleep(delay);
            let response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
            if stream.write_all(response).is_err() {
                return;
            }
        }
    }
}

/// 200 green threads on 2 workers each make 2 GETs with ureq's default agent (std's
/// `TcpStream` inside) against a server that takes 50 ms per request: they all wait at
/// once, so the whole takes about 2 x 50 ms; a neighbour on the runtime is never more than
/// 20 ms late and the monitor reports no stall. Runs in a child process, whose logger sees
/// only this runtime's warnings, while no other test of this binary runs.
#[test]
fn ureq_gets_from_200_green_threads_wait_together() {
    const TEST: &str = "ureq_gets_from_200_green_threads_wait_together";
    if child::is_child(TEST) {
        return ureq_gets_in_child();
    }
    let output = {
        let _alone = MACHINE
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Twice the limit: with calls that blocked the workers, each round takes 15 s.
        child::run_child_within(TEST, 2 * LIMIT)
    };
    assert!(output.status.success(), "{}", child::stderr(&output));
}

/// The clients of [`ureq_gets_from_200_green_threads_wait_together`].
const CLIENTS: usize = 200;
/// GETs per client.
const GETS: u32 = 2;
/// The server's time per request.
const DELAY: Duration = Duration::from_millis(50);

/// Measured rounds, of which one must meet the bounds: a worker that blocks fails them
/// all, a burst of load from other processes on a shared 2-core machine spoils one now
/// and then.
const ROUNDS: usize = 3;

fn ureq_gets_in_child() {
    recorder::install();
    let url = format!("http://{}/", slow_http_server(DELAY, CLIENTS + 50));
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    // A first round faults in the code and maps the green threads' stacks, so that the
    // measured rounds see the runtime as a running program would: in a fresh process the
    // first clients have seen both workers' OS threads wait 10-20 ms in the kernel (page
    // faults, the CPU idle), which the monitor reports as stalls.
    ureq_round(&rt, &url);
    let mut failures = Vec::new();
    for _ in 0..ROUNDS {
        recorder::clear();
        let (elapsed, worst_late) = ureq_round(&rt, &url);
        eprintln!(
            "{CLIENTS} x {GETS} GETs in {elapsed:?}; the neighbour was at most {worst_late:?} \
             late"
        );
        match ureq_round_failure(elapsed, worst_late, stall_warnings()) {
            None => return,
            Some(failure) => failures.push(failure),
        }
    }
    panic!("every round failed: {failures:#?}");
}

/// What a measured round of [`ureq_round`] got wrong, if anything.
fn ureq_round_failure(
    elapsed: Duration,
    worst_late: Duration,
    stalls: Vec<String>,
) -> Option<String> {
    // Ideal: every client waits at once, GETS x DELAY in all. Within 3x that, plus 300 ms
    // for the 200 spawns and 200 connection setups (about 30 ms here in a debug build; ten
    // times that on a loaded machine). Had each call blocked its worker, the 400 requests
    // would take about 400 x 50 ms / 2 workers = 10 s.
    let ideal = DELAY * GETS;
    let bound = ideal * 3 + Duration::from_millis(300);
    if elapsed >= bound {
        return Some(format!("took {elapsed:?}, bound {bound:?}"));
    }
    // A worker that blocked for a request would make the neighbour DELAY late.
    if worst_late > Duration::from_millis(20) {
        return Some(format!("the neighbour woke {worst_late:?} late"));
    }
    (!stalls.is_empty()).then(|| format!("the monitor saw stalls: {stalls:#?}"))
}

/// [`CLIENTS`] green threads on `rt` make [`GETS`] GETs of `url` each, with a neighbour
/// ticking meanwhile: how long they took, and how late the neighbour was at most.
fn ureq_round(rt: &Runtime, url: &str) -> (Duration, Duration) {
    let url = url.to_owned();
    rt.block_on(move || {
        let neighbour = Neighbour::start();
        let start = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let url = url.clone();
                greenring::spawn(move || {
                    // The configuration `ureq::get` uses, kept for both GETs: the second
                    // reuses the pooled connection.
                    let agent = ureq::agent();
                    for _ in 0..GETS {
                        let body = agent.get(&url).call().unwrap().into_string().unwrap();
                        assert_eq!(body, "hello");
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        (start.elapsed(), neighbour.stop())
    })
}

/// Starts, on the caller's runtime, a WebSocket echo server of greenring's own TcpListener
/// and TcpStream under `tungstenite::accept`, for one connection, which it accepts
/// [`WAIT`] late: its port.
fn websocket_echo_server() -> (u16, JoinHandle<()>) {
    let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = greenring::spawn(move || {
        greenring::time::sleep(WAIT);
        let (stream, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        loop {
            match ws.read() {
                Ok(message) if message.is_text() || message.is_binary() => {
                    ws.send(message).unwrap()
                }
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return,
                Err(err) => panic!("server: {err}"),
            }
        }
    });
    (port, server)
}

/// `tungstenite::connect` (std's `TcpStream` inside) from a green thread to the echo
/// server on the same runtime: the handshake, which waits for the late server, parks (a
/// neighbour on the client's worker ticks meanwhile), and messages echo. On one worker, a
/// connect or read that blocked the worker would never let the server run at all.
fn websocket_echo(workers: usize) {
    within(move || {
        let rt = Runtime::builder().worker_threads(workers).build().unwrap();
        rt.block_on(|| {
            let (port, server) = websocket_echo_server();
            let client = greenring::spawn(move || {
                let neighbour = Neighbour::start();
                let url = format!("ws://127.0.0.1:{port}/");
                let (mut ws, response) = neighbour
                    .keeps_ticking("tungstenite::connect", || tungstenite::connect(url))
                    .unwrap();
                assert_eq!(response.status(), 101);
                for i in 0..20 {
                    let text = format!("message {i} {}", "x".repeat(i * 100));
                    ws.send(tungstenite::Message::text(text.clone())).unwrap();
                    assert_eq!(ws.read().unwrap().to_text().unwrap(), text);
                }
                ws.close(None).unwrap();
                loop {
                    match ws.read() {
                        Ok(_) => {}
                        Err(tungstenite::Error::ConnectionClosed) => break,
                        Err(err) => panic!("client: {err}"),
                    }
                }
            });
            client.join().unwrap();
            server.join().unwrap();
        });
    });
}

#[test]
fn tungstenite_client_echoes_with_a_greenring_server_on_one_worker() {
    websocket_echo(1);
}

#[test]
fn tungstenite_client_echoes_with_a_greenring_server_on_two_workers() {
    websocket_echo(2);
}

// ---------------------------------------------------------------------------------------
// std's own blocking calls
// ---------------------------------------------------------------------------------------

/// A std `TcpStream` on a green thread connects (at once, on loopback), then a `write_all`
/// that fills the socket's buffers until a slow peer reads and a `read` that waits for the
/// peer's late answer each park only the green thread.
#[test]
fn std_tcp_stream_parks_only_the_green_thread() {
    on_one_worker(|| {
        const BYTES: usize = 32 << 20; // more than loopback's socket buffers hold
        let neighbour = Neighbour::start();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            std::thread::sleep(WAIT);
            let mut got = vec![0u8; BYTES];
            stream.read_exact(&mut got).unwrap();
            assert!(got.iter().all(|&b| b == 7));
            std::thread::sleep(WAIT);
            stream.write_all(b"done").unwrap();
        });
        let mut stream = TcpStream::connect(addr).unwrap();
        neighbour.keeps_ticking("write_all to a peer that reads late", || {
            stream.write_all(&vec![7u8; BYTES]).unwrap()
        });
        let mut answer = [0u8; 4];
        neighbour.keeps_ticking("read of a late answer", || {
            stream.read_exact(&mut answer).unwrap()
        });
        assert_eq!(&answer, b"done");
        peer.join().unwrap();
    });
}

/// `std::thread::sleep` on a green thread parks it in the worker's timer heap.
#[test]
fn std_thread_sleep_parks_only_the_green_thread() {
    on_one_worker(|| {
        let neighbour = Neighbour::start();
        let start = Instant::now();
        neighbour.keeps_ticking("std::thread::sleep", || std::thread::sleep(WAIT));
        on_time("std::thread::sleep", start.elapsed(), WAIT);
    });
}

/// A green client (`std::net::TcpStream::connect`) and a green server
/// (`std::net::TcpListener::accept`) on the same worker: without the hooks the server's
/// accept blocks the only worker and the client never runs.
#[test]
fn std_client_and_std_server_on_one_worker_talk() {
    on_one_worker(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = greenring::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            stream.write_all(b"pong").unwrap();
        });
        // Let the server reach its accept first.
        greenring::time::sleep(Duration::from_millis(10));
        let client = greenring::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).unwrap();
            buf
        });
        assert_eq!(&client.join().unwrap(), b"pong");
        server.join().unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Blocking semantics
// ---------------------------------------------------------------------------------------

/// `set_read_timeout` (SO_RCVTIMEO) on a std socket: the read parks, then fails with std's
/// error for EAGAIN after about the timeout, as on an OS thread.
#[test]
fn read_timeout_fails_with_would_block_after_the_timeout() {
    on_one_worker(|| {
        const TIMEOUT: Duration = Duration::from_millis(100);
        let neighbour = Neighbour::start();
        let (mut stream, _silent) = tcp_pair();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let start = Instant::now();
        let err = neighbour
            .keeps_ticking("read with a timeout", || stream.read(&mut [0u8; 16]))
            .unwrap_err();
        let elapsed = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
        on_time("read with a timeout", elapsed, TIMEOUT);
    });
}

/// `set_write_timeout` (SO_SNDTIMEO): a write to a peer that never reads fails with
/// EAGAIN once the buffers are full and the timeout has passed.
#[test]
fn write_timeout_fails_with_would_block_after_the_timeout() {
    on_one_worker(|| {
        const TIMEOUT: Duration = Duration::from_millis(100);
        let neighbour = Neighbour::start();
        let (mut stream, _silent) = tcp_pair();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let (err, elapsed) = neighbour.keeps_ticking("writes until the timeout", || loop {
            let start = Instant::now();
            if let Err(err) = stream.write(&chunk) {
                break (err, start.elapsed());
            }
        });
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        on_time("write with a timeout", elapsed, TIMEOUT);
    });
}

/// `set_nonblocking(true)` (ioctl FIONBIO) gets `WouldBlock` at once; `false` again makes
/// reads wait (park) again: the hooks learn the fd's mode again after each change.
#[test]
fn nonblocking_mode_gets_would_block_and_blocks_again_when_reset() {
    on_one_worker(|| {
        let neighbour = Neighbour::start();
        let (mut stream, mut peer) = tcp_pair();
        // A blocking read first, so the hooks know the fd as blocking.
        peer.write_all(b"a").unwrap();
        stream.read_exact(&mut [0u8; 1]).unwrap();

        stream.set_nonblocking(true).unwrap();
        let start = Instant::now();
        let err = stream.read(&mut [0u8; 1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert!(start.elapsed() < WAIT, "took {:?}", start.elapsed());

        stream.set_nonblocking(false).unwrap();
        let writer = later(move || peer.write_all(b"b").unwrap());
        let mut buf = [0u8; 1];
        neighbour.keeps_ticking("read after set_nonblocking(false)", || {
            stream.read_exact(&mut buf).unwrap()
        });
        assert_eq!(&buf, b"b");
        writer.join().unwrap();
    });
}

/// `libc::poll` on one fd with a 50 ms timeout parks, returns 0 on time; data that arrives
/// before the timeout ends it with POLLIN.
#[test]
fn poll_on_one_fd_parks_and_times_out_on_time() {
    on_one_worker(|| {
        let neighbour = Neighbour::start();
        let (stream, mut peer) = tcp_pair();
        let mut fds = [libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let start = Instant::now();
        // SAFETY: one valid pollfd.
        let ready = neighbour.keeps_ticking("poll with a timeout", || unsafe {
            libc::poll(fds.as_mut_ptr(), 1, WAIT.as_millis() as i32)
        });
        assert_eq!(ready, 0);
        on_time("poll of a silent fd", start.elapsed(), WAIT);

        let writer = later(move || peer.write_all(b"x").unwrap());
        // SAFETY: as above.
        let ready = neighbour.keeps_ticking("poll until data comes", || unsafe {
            libc::poll(fds.as_mut_ptr(), 1, 5_000)
        });
        assert_eq!(ready, 1);
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
        writer.join().unwrap();
    });
}

/// `libc::poll` on several fds parks too: 0 after the timeout, and the one ready fd when
/// data comes to it.
#[test]
fn poll_on_several_fds_parks_and_sees_which_is_ready() {
    on_one_worker(|| {
        let neighbour = Neighbour::start();
        let pairs: Vec<_> = (0..3).map(|_| tcp_pair()).collect();
        let mut fds: Vec<_> = pairs
            .iter()
            .map(|(ours, _)| libc::pollfd {
                fd: ours.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let start = Instant::now();
        // SAFETY: valid pollfds.
        let ready = neighbour.keeps_ticking("poll of 3 fds with a timeout", || unsafe {
            libc::poll(fds.as_mut_ptr(), 3, WAIT.as_millis() as i32)
        });
        assert_eq!(ready, 0);
        on_time("poll of 3 silent fds", start.elapsed(), WAIT);

        let mut peer = pairs[1].1.try_clone().unwrap();
        let writer = later(move || peer.write_all(b"x").unwrap());
        // SAFETY: as above.
        let ready = neighbour.keeps_ticking("poll of 3 fds until data comes", || unsafe {
            libc::poll(fds.as_mut_ptr(), 3, 5_000)
        });
        assert_eq!(ready, 1);
        let revents: Vec<_> = fds.iter().map(|fd| fd.revents & libc::POLLIN).collect();
        assert_eq!(revents, [0, libc::POLLIN, 0]);
        writer.join().unwrap();
    });
}

/// `getaddrinfo` (std's `ToSocketAddrs` of a host name) from 100 green threads at once:
/// all resolve, on the blocking pool. The worker's park count shows the lookups went there:
/// nothing else in these threads parks (they are joined from an OS thread), and a lookup
/// parks unless the pool finished it first (`localhost` is quick to resolve), so some but
/// not all park; a lookup on the worker's OS thread would park none. The neighbour goes on
/// meanwhile.
#[test]
fn getaddrinfo_from_100_green_threads_resolves_on_the_pool() {
    const LOOKUPS: usize = 100;
    within(|| {
        for rt in backends::one_worker_runtimes() {
            eprintln!("on {:?}", rt.io_backend());
            let parks = |rt: &Runtime| rt.metrics().workers[0].parks;
            let before = parks(&rt);
            let lookups: Vec<_> = (0..LOOKUPS)
                .map(|_| rt.spawn(|| ("localhost", 80).to_socket_addrs().unwrap().count()))
                .collect();
            for lookup in lookups {
                assert!(lookup.join().unwrap() >= 1, "localhost did not resolve");
            }
            let parked = parks(&rt) - before;
            assert!(parked > 0, "no lookup parked its green thread");
            rt.block_on(|| {
                let neighbour = Neighbour::start();
                let lookups: Vec<_> = (0..LOOKUPS)
                    .map(|_| greenring::spawn(|| "localhost:80".to_socket_addrs().unwrap()))
                    .collect();
                for lookup in lookups {
                    let addrs: Vec<_> = lookup.join().unwrap().collect();
                    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
                }
                let late = neighbour.stop();
                assert!(late < Duration::from_millis(100), "neighbour {late:?} late");
            });
        }
    });
}

/// `std::process::Command::output()` on a green thread: std reads the child's pipes with
/// `poll` and `read`, which park; the output is complete.
#[test]
fn command_output_on_a_green_thread_completes_and_parks() {
    on_one_worker(|| {
        let neighbour = Neighbour::start();
        let output = neighbour.keeps_ticking("Command::output", || {
            std::process::Command::new("sh")
                .args(["-c", "echo out; echo err >&2; sleep 0.1; echo more"])
                .output()
                .unwrap()
        });
        assert!(output.status.success());
        assert_eq!(output.stdout, b"out\nmore\n");
        assert_eq!(output.stderr, b"err\n");
    });
}

/// `close` of an fd a green thread is reading, and a new file that gets its number: the
/// reader never reads the new file. On an OS thread the read keeps the old file and returns
/// what its peer sends; so it does on io_uring (the op holds the file); on epoll, whose
/// readiness is the number's, the wait ends with `EBADF` once the number is another file's.
/// The new file's own reader gets its data. In a child process, so that the number freed is
/// the one the next socket gets (file descriptors are allocated lowest first, and the
/// suite's other tests open files all the time).
#[test]
fn closing_an_fd_a_green_thread_reads_never_hands_it_the_next_file_of_that_number() {
    const TEST: &str =
        "closing_an_fd_a_green_thread_reads_never_hands_it_the_next_file_of_that_number";
    if !child::is_child(TEST) {
        let output = within(|| child::run_child_within(TEST, LIMIT));
        assert!(output.status.success(), "{}", child::stderr(&output));
        return;
    }
    use std::os::fd::IntoRawFd;
    use std::os::unix::net::UnixStream;
    /// A hooked `read` of up to 16 bytes from `fd`.
    fn read_fd(fd: i32) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 16];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            -1 => Err(io::Error::last_os_error()),
            n => Ok(buf[..n as usize].to_vec()),
        }
    }
    /// What the old file's peer's write and the old file's reader got.
    type Got = (io::Result<()>, io::Result<Vec<u8>>);
    /// A reader's body.
    type Reader = Box<dyn FnOnce() -> io::Result<Vec<u8>> + Send>;
    fn close_under_a_reader(spawn: fn(Reader) -> Join) -> Got {
        let (old, mut old_peer) = UnixStream::pair().unwrap();
        let number = old.into_raw_fd();
        let started = Arc::new(AtomicBool::new(false));
        let reader_started = Arc::clone(&started);
        let old_reader = spawn(Box::new(move || {
            reader_started.store(true, Ordering::Relaxed);
            read_fd(number)
        }));
        while !started.load(Ordering::Relaxed) {
            greenring::time::sleep(Duration::from_millis(1));
        }
        // The reader is in its read by now (on one worker it ran until it waited).
        greenring::time::sleep(Duration::from_millis(20));
        // SAFETY: `number` is ours (taken from `old`); the reader only reads through it.
        assert_eq!(unsafe { libc::close(number) }, 0);
        let (new, mut new_peer) = UnixStream::pair().unwrap();
        assert_eq!(
            new.as_raw_fd(),
            number,
            "the next socket did not get the freed number"
        );
        let new_reader = spawn(Box::new(move || read_fd(new.as_raw_fd())));
        greenring::time::sleep(Duration::from_millis(20));
        new_peer.write_all(b"new").unwrap();
        assert_eq!(new_reader.0().unwrap(), b"new", "the new file's reader");
        greenring::time::sleep(Duration::from_millis(20));
        // Ends a read that still holds the old file. On epoll nothing held it: the close
        // closed it, so its peer's write fails, and the read ended with `EBADF` already.
        let wrote = old_peer.write_all(b"old");
        (wrote, old_reader.0())
    }
    /// Waits for what a reader spawned by `close_under_a_reader` read.
    struct Join(Box<dyn FnOnce() -> io::Result<Vec<u8>>>);
    let on_os_thread = close_under_a_reader(|f| {
        let thread = std::thread::spawn(f);
        Join(Box::new(move || thread.join().unwrap()))
    });
    assert!(on_os_thread.0.is_ok(), "on an OS thread: {on_os_thread:?}");
    assert_eq!(on_os_thread.1.unwrap(), b"old", "on an OS thread");
    for rt in backends::one_worker_runtimes() {
        let backend = rt.io_backend();
        let got = rt.block_on(|| {
            close_under_a_reader(|f| {
                let thread = greenring::spawn(f);
                Join(Box::new(move || thread.join().unwrap()))
            })
        });
        eprintln!("on {backend:?}: {got:?}");
        match (backend, got) {
            (greenring::IoBackend::IoUring, (Ok(()), Ok(bytes))) => assert_eq!(bytes, b"old"),
            (greenring::IoBackend::Epoll, (Err(wrote), Err(read))) => {
                assert_eq!(wrote.kind(), io::ErrorKind::BrokenPipe, "{wrote}");
                assert_eq!(read.raw_os_error(), Some(libc::EBADF), "{read}");
            }
            (backend, got) => panic!("on {backend:?}: {got:?}"),
        }
    }
}

/// A green thread waits in `read` on a `try_clone` of a std `TcpStream`: dropping the
/// original does not end the wait (the clone keeps the file open); `shutdown(Read)` ends
/// it with `Ok(0)`, as for an OS thread (checked first, as the reference).
#[test]
fn shutdown_wakes_a_reader_of_a_clone_with_end_of_file() {
    /// What a reader does; how to wait for its count.
    type Reader = Box<dyn FnOnce() -> usize + Send>;
    type Join = Box<dyn FnOnce() -> usize>;
    fn reader_woken_by_shutdown(spawn: fn(Reader) -> Join) {
        let (stream, _peer) = tcp_pair();
        let mut clone = stream.try_clone().unwrap();
        let other = stream.try_clone().unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (reader_started, reader_done) = (Arc::clone(&started), Arc::clone(&done));
        let join = spawn(Box::new(move || {
            reader_started.store(true, Ordering::Relaxed);
            let n = clone.read(&mut [0u8; 16]).unwrap();
            reader_done.store(true, Ordering::Relaxed);
            n
        }));
        // On one worker the reader runs only once this thread waits, and this thread runs
        // again only once the reader waits in its read (or blocked the worker for good).
        while !started.load(Ordering::Relaxed) {
            greenring::time::sleep(Duration::from_millis(1));
        }
        drop(stream);
        greenring::time::sleep(WAIT);
        assert!(
            !done.load(Ordering::Relaxed),
            "the reader's wait ended at the drop"
        );
        other.shutdown(Shutdown::Read).unwrap();
        assert_eq!(join(), 0);
    }
    within(|| {
        reader_woken_by_shutdown(|f| {
            let thread = std::thread::spawn(f);
            Box::new(move || thread.join().unwrap())
        });
        for rt in backends::one_worker_runtimes() {
            eprintln!("on {:?}", rt.io_backend());
            rt.block_on(|| {
                reader_woken_by_shutdown(|f| {
                    let thread = greenring::spawn(f);
                    Box::new(move || thread.join().unwrap())
                })
            });
        }
    });
}

// ---------------------------------------------------------------------------------------
// What binds to the hooks: C code loaded with dlopen, C compiled into the binary, glibc
// ---------------------------------------------------------------------------------------

/// A C library, built with `_FORTIFY_SOURCE` as distributions build theirs: it sleeps with
/// `usleep` and receives with `recv`, and, where the buffer's size is known and the
/// length is not, reads, receives and polls through glibc's checking variants
/// (`__read_chk`, `__recv_chk`, `__poll_chk`).
const C_LIBRARY: &str = r#"
#include <poll.h>
#include <unistd.h>
#include <sys/socket.h>

int nap_50ms(void) { return usleep(50000); }

long recv_some(int fd, void *buf, unsigned long len) { return (long)recv(fd, buf, len, 0); }

char last_byte;

long read_fortified(int fd, unsigned long len) {
    char buf[64];
    long n = (long)read(fd, buf, len);
    last_byte = buf[0];
    return n;
}

long recv_fortified(int fd, unsigned long len) {
    char buf[64];
    long n = (long)recv(fd, buf, len, 0);
    last_byte = buf[0];
    return n;
}

int poll_fortified(int fd, unsigned long nfds, int timeout) {
    struct pollfd fds[1] = {{fd, POLLIN, 0}};
    return poll(fds, nfds, timeout);
}
"#;

/// `nap_50ms`.
type NapFn = unsafe extern "C" fn() -> libc::c_int;
/// `recv_some`.
type RecvFn = unsafe extern "C" fn(libc::c_int, *mut libc::c_void, libc::c_ulong) -> libc::c_long;
/// `read_fortified` and `recv_fortified`.
type FortifiedFn = unsafe extern "C" fn(libc::c_int, libc::c_ulong) -> libc::c_long;
/// `poll_fortified`.
type PollFn = unsafe extern "C" fn(libc::c_int, libc::c_ulong, libc::c_int) -> libc::c_int;

/// The functions of [`C_LIBRARY`], loaded.
struct CLibrary {
    nap_50ms: NapFn,
    recv_some: RecvFn,
    read_fortified: FortifiedFn,
    recv_fortified: FortifiedFn,
    poll_fortified: PollFn,
}

/// [`C_LIBRARY`], built and loaded on first use; `None` when there is no `cc`.
fn c_library() -> Option<&'static CLibrary> {
    static LIBRARY: std::sync::OnceLock<Option<CLibrary>> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(load_c_library).as_ref()
}

/// Compiles [`C_LIBRARY`] with `cc` and loads it with `dlopen`; `None` when there is no
/// `cc`.
fn load_c_library() -> Option<CLibrary> {
    let dir = TempDir::new("dlopen");
    let source = dir.0.join("probe.c");
    let library = dir.0.join("libprobe.so");
    std::fs::write(&source, C_LIBRARY).unwrap();
    let compiled = std::process::Command::new("cc")
        .args(["-O2", "-D_FORTIFY_SOURCE=2", "-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status();
    match compiled {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
        compiled => assert!(compiled.unwrap().success(), "cc failed"),
    }
    let path = std::ffi::CString::new(library.into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a library of ours, with no initialisers; never closed (the mapping outlives
    // the file, removed with the directory).
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen failed");
    let symbol = |name: &std::ffi::CStr| {
        // SAFETY: a valid handle and a NUL-terminated name.
        let address = unsafe { libc::dlsym(handle, name.as_ptr()) };
        assert!(!address.is_null(), "no {name:?} in the library");
        address
    };
    // SAFETY: the library's functions, of these types (see C_LIBRARY).
    unsafe {
        use std::mem::transmute;
        type Address = *mut libc::c_void;
        Some(CLibrary {
            nap_50ms: transmute::<Address, NapFn>(symbol(c"nap_50ms")),
            recv_some: transmute::<Address, RecvFn>(symbol(c"recv_some")),
            read_fortified: transmute::<Address, FortifiedFn>(symbol(c"read_fortified")),
            recv_fortified: transmute::<Address, FortifiedFn>(symbol(c"recv_fortified")),
            poll_fortified: transmute::<Address, PollFn>(symbol(c"poll_fortified")),
        })
    }
}

/// C code in a shared library loaded with `dlopen` binds its `usleep` and `recv` to the
/// hooks (the test binary exports them): both park the green thread.
#[test]
fn c_library_loaded_with_dlopen_binds_to_the_hooks() {
    if c_library().is_none() {
        eprintln!("skipped: no `cc` to build the C library with");
        return;
    }
    on_one_worker(|| {
        let library = c_library().unwrap();
        let neighbour = Neighbour::start();
        let start = Instant::now();
        // SAFETY: the library's function, no arguments.
        let rc = neighbour.keeps_ticking("C usleep", || unsafe { (library.nap_50ms)() });
        assert_eq!(rc, 0);
        on_time("C usleep", start.elapsed(), WAIT);

        let (stream, mut peer) = tcp_pair();
        let writer = later(move || peer.write_all(b"from C").unwrap());
        let mut buf = [0u8; 16];
        // SAFETY: a socket of ours and a buffer of its length.
        let n = neighbour.keeps_ticking("C recv", || unsafe {
            (library.recv_some)(stream.as_raw_fd(), buf.as_mut_ptr().cast(), 16)
        });
        assert_eq!(&buf[..n as usize], b"from C");
        writer.join().unwrap();
    });
}

/// C code built with `_FORTIFY_SOURCE` calls `__read_chk`, `__recv_chk` and `__poll_chk`
/// where it would call `read`, `recv` and `poll`: those bind to the hooks too.
#[test]
fn fortified_c_calls_bind_to_the_hooks() {
    if c_library().is_none() {
        eprintln!("skipped: no `cc` to build the C library with");
        return;
    }
    on_one_worker(|| {
        let library = c_library().unwrap();
        let neighbour = Neighbour::start();
        let (stream, peer) = tcp_pair();
        let fd = stream.as_raw_fd();
        for (call, what) in [(0, "__read_chk"), (1, "__recv_chk")] {
            let mut peer = peer.try_clone().unwrap();
            let writer = later(move || peer.write_all(b"x").unwrap());
            // SAFETY: a socket of ours; a length within the function's buffer.
            let n = neighbour.keeps_ticking(what, || unsafe {
                match call {
                    0 => (library.read_fortified)(fd, 16),
                    _ => (library.recv_fortified)(fd, 16),
                }
            });
            assert_eq!(n, 1, "{what}");
            writer.join().unwrap();
        }
        let start = Instant::now();
        // SAFETY: a socket of ours; one pollfd, as the function has.
        let ready = neighbour.keeps_ticking("__poll_chk", || unsafe {
            (library.poll_fortified)(fd, 1, WAIT.as_millis() as libc::c_int)
        });
        assert_eq!(ready, 0);
        on_time("__poll_chk", start.elapsed(), WAIT);
    });
}

/// SQLite, compiled into the binary by `rusqlite`'s `bundled` feature: `sqlite3_sleep`
/// (SQLite's unix VFS sleeps with `nanosleep`) parks the green thread.
#[test]
fn sqlite_compiled_into_the_binary_sleeps_in_the_timer_heap() {
    on_one_worker(|| {
        let neighbour = Neighbour::start();
        let start = Instant::now();
        // SAFETY: sqlite3_sleep has no preconditions.
        let slept = neighbour.keeps_ticking("sqlite3_sleep", || unsafe {
            rusqlite::ffi::sqlite3_sleep(WAIT.as_millis() as libc::c_int)
        });
        assert!(slept >= WAIT.as_millis() as libc::c_int, "slept {slept} ms");
        on_time("sqlite3_sleep", start.elapsed(), WAIT);
    });
}

/// Two SQLite connections to one file on one worker: one holds a write transaction for
/// 50 ms, the other's write waits for it in SQLite's busy handler, whose sleeps park. Had
/// they blocked the worker, the holder could never commit and the writer would fail with
/// "database is locked" when its busy timeout ran out.
#[test]
fn sqlite_busy_handler_waits_for_a_transaction_on_the_same_worker() {
    within(|| {
        for rt in backends::one_worker_runtimes() {
            eprintln!("on {:?}", rt.io_backend());
            let dir = TempDir::new(&format!("sqlite-{:?}", rt.io_backend()));
            let path = dir.0.join("db.sqlite");
            rt.block_on(move || {
                let holder = rusqlite::Connection::open(&path).unwrap();
                holder
                    .execute_batch(
                        "CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);",
                    )
                    .unwrap();
                let writer = greenring::spawn(move || {
                    let conn = rusqlite::Connection::open(&path).unwrap();
                    conn.busy_timeout(Duration::from_secs(2)).unwrap();
                    let start = Instant::now();
                    conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
                    start.elapsed()
                });
                greenring::time::sleep(WAIT);
                holder.execute_batch("COMMIT").unwrap();
                let waited = writer.join().unwrap();
                assert!(waited >= WAIT / 2, "the writer waited only {waited:?}");
                let rows: i64 = holder
                    .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
                    .unwrap();
                assert_eq!(rows, 2);
            });
        }
    });
}

/// Not covered, as the `hooks` module documents: calls glibc makes inside itself go to
/// glibc's own functions. stdio's `fgets` on a `popen` pipe reads with glibc's internal
/// `read`, which blocks the worker (the neighbour does not tick). This pins the limit
/// down: a change that covers it should update the docs, and this test.
#[test]
fn glibc_internal_calls_still_block_the_worker() {
    within(|| {
        for backend in [greenring::IoBackend::IoUring, greenring::IoBackend::Epoll] {
            // No monitor: the block is on purpose, its warning would only be noise.
            let Ok(rt) = Runtime::builder()
                .worker_threads(1)
                .io_backend(backend)
                .handoff_threshold(None)
                .build()
            else {
                continue;
            };
            rt.block_on(|| {
                let neighbour = Neighbour::start();
                let mut line = [0 as libc::c_char; 16];
                // SAFETY: NUL-terminated strings; `line` is valid for its length; the
                // stream is closed once.
                let (read, ticks) = neighbour.ticks_during(|| unsafe {
                    let pipe = libc::popen(c"sleep 0.05; echo hi".as_ptr(), c"r".as_ptr());
                    assert!(!pipe.is_null());
                    let read = !libc::fgets(line.as_mut_ptr(), 16, pipe).is_null();
                    libc::pclose(pipe);
                    read
                });
                assert!(read);
                // SAFETY: fgets wrote a NUL-terminated line.
                let line = unsafe { std::ffi::CStr::from_ptr(line.as_ptr()) };
                assert_eq!(line.to_bytes(), b"hi\n");
                assert_eq!(ticks, 0, "the neighbour ran: glibc's internal read parked?");
            });
        }
    });
}
