//! A stress test of faults and shutdown: rounds of green threads making every kind of
//! blocking call (TCP echo, files, sleeps, channels, locks, condition variables, semaphores,
//! joins, the blocking pool), with random panics inside and outside locks, random timeouts
//! and spawns from OS threads, ended by a `drop(rt)` at a random moment. A round fails on
//! any hang (a watchdog), any byte or message lost or corrupted, and any join that does not
//! end.
//!
//! It runs for `GREENRING_STRESS_SECS` seconds per I/O backend (default 2; CI runs it in a
//! release build for longer). The seed of a failing round is printed; `GREENRING_STRESS_SEED`
//! replays it.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use greenring::net::{TcpListener, TcpStream};
use greenring::sync::{mpsc, Condvar, Mutex, Semaphore};
use greenring::{IoBackend, JoinHandle, Runtime};

/// xorshift64*: small, seedable, good enough to pick cases.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a round checks, shared by its threads.
#[derive(Default)]
struct Checks {
    /// Faults found: a lost or corrupted byte or message, a wrong result.
    faults: StdMutex<Vec<String>>,
    /// Bytes echoed and verified.
    echoed: AtomicU64,
    /// Messages received in order.
    messages: AtomicU64,
    /// Threads that ran to the end of their work.
    completed: AtomicUsize,
}

impl Checks {
    fn fault(&self, what: String) {
        self.faults.lock().unwrap().push(what);
    }
}

/// The panic payload of a deliberate panic.
const PLANNED: &str = "stress: a planned panic";

/// One green thread's work, chosen by `rng`.
fn work(kind: u64, mut rng: Rng, env: Arc<Env>) {
    match kind {
        0 => echo_client(&mut rng, &env),
        1 => channel_pair(&mut rng, &env),
        2 => locks(&mut rng, &env),
        3 => files(&mut rng, &env),
        4 => timeouts(&mut rng, &env),
        5 => blocking_pool(&mut rng, &env),
        _ => nested_joins(&mut rng, &env),
    }
    env.checks.completed.fetch_add(1, Ordering::Relaxed);
}

/// What the threads of a round share.
struct Env {
    checks: Checks,
    echo: std::net::SocketAddr,
    lock: Arc<Mutex<u64>>,
    condvar: Arc<(Mutex<bool>, Condvar)>,
    permits: Arc<Semaphore>,
    dir: std::path::PathBuf,
    file_seq: AtomicU64,
}

fn echo_client(rng: &mut Rng, env: &Env) {
    let Ok(mut stream) = TcpStream::connect(env.echo) else {
        return;
    };
    if rng.chance(30) {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(1 + rng.below(50))));
    }
    for _ in 0..1 + rng.below(8) {
        let len = 1 + rng.below(64 * 1024) as usize;
        let seed = rng.next() as u8;
        let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
        if stream.write_all(&data).is_err() {
            return;
        }
        let mut back = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match stream.read(&mut back[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                // A read timeout: the rest is still coming; ask again.
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
        if back != data {
            env.checks
                .fault(format!("echo of {len} bytes came back different"));
            return;
        }
        env.checks.echoed.fetch_add(len as u64, Ordering::Relaxed);
        if rng.chance(5) {
            std::panic::panic_any(PLANNED);
        }
    }
}

fn channel_pair(rng: &mut Rng, env: &Env) {
    let bound = rng.below(4);
    let count = 1 + rng.below(2000);
    let (tx, rx) = if bound == 0 {
        let (tx, rx) = mpsc::channel::<u64>();
        (Sender::Unbounded(tx), rx)
    } else {
        let (tx, rx) = mpsc::sync_channel::<u64>(bound as usize - 1);
        (Sender::Bounded(tx), rx)
    };
    // Sends that returned Ok: each must be received (a shutdown may end the producer
    // early, and then the channel disconnects after the last of them).
    let sent = Arc::new(AtomicU64::new(0));
    let their_sent = Arc::clone(&sent);
    // A spawn fails once the round shuts down.
    let Ok(producer) = greenring::thread::Builder::new().spawn(move || {
        for seq in 0..count {
            if tx.send(seq).is_err() {
                return;
            }
            their_sent.fetch_add(1, Ordering::SeqCst);
        }
    }) else {
        return;
    };
    let mut expected = 0;
    let timed = rng.chance(50);
    while expected < count {
        let got = if timed {
            match rx.recv_timeout(Duration::from_micros(rng.below(2000))) {
                Ok(seq) => seq,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(seq) => seq,
                Err(_) => break,
            }
        };
        if got != expected {
            env.checks
                .fault(format!("message {got} arrived when {expected} was due"));
            return;
        }
        expected += 1;
        env.checks.messages.fetch_add(1, Ordering::Relaxed);
    }
    // The producer finished (its sends all succeeded) or was cancelled with the round's
    // end; either way `sent` is final once it is joined.
    let _ = producer.join();
    // Every send that returned Ok was received; one more may have been, on a rendezvous
    // whose sender was cancelled after the receiver took its value.
    let sent = sent.load(Ordering::SeqCst);
    let rendezvous = bound == 1;
    if expected < sent || expected > sent + u64::from(rendezvous) {
        env.checks
            .fault(format!("{expected} received of {sent} messages sent"));
    }
}

enum Sender {
    Unbounded(mpsc::Sender<u64>),
    Bounded(mpsc::SyncSender<u64>),
}

impl Sender {
    fn send(&self, value: u64) -> Result<(), mpsc::SendError<u64>> {
        match self {
            Sender::Unbounded(tx) => tx.send(value),
            Sender::Bounded(tx) => tx.send(value),
        }
    }
}

fn locks(rng: &mut Rng, env: &Env) {
    for _ in 0..1 + rng.below(50) {
        match rng.below(4) {
            0 => {
                let mut guard = env.lock.lock().unwrap_or_else(|e| e.into_inner());
                *guard += 1;
                if rng.chance(10) {
                    greenring::time::sleep(Duration::from_micros(rng.below(500)));
                }
                if rng.chance(3) {
                    // A panic inside the lock: it poisons.
                    std::panic::panic_any(PLANNED);
                }
            }
            1 => {
                let (flag, condvar) = &*env.condvar;
                let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
                let timeout = Duration::from_micros(rng.below(1000));
                let (mut guard, _) = condvar
                    .wait_timeout(guard, timeout)
                    .unwrap_or_else(|e| e.into_inner());
                *guard = !*guard;
                condvar.notify_one();
            }
            2 => {
                let _permit = env.permits.acquire();
                greenring::yield_now();
            }
            _ => {
                if rng.chance(5) {
                    std::panic::panic_any(PLANNED);
                }
                greenring::time::sleep(Duration::from_micros(rng.below(300)));
            }
        }
    }
}

fn files(rng: &mut Rng, env: &Env) {
    let n = env.file_seq.fetch_add(1, Ordering::Relaxed);
    let path = env.dir.join(format!("f{n}"));
    let len = rng.below(200 * 1024) as usize;
    let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ (n as u8)).collect();
    if greenring::fs::write(&path, &data).is_err() {
        return;
    }
    match greenring::fs::read(&path) {
        Ok(back) if back == data => {}
        Ok(back) => env.checks.fault(format!(
            "file of {len} bytes read back as {} different bytes",
            back.len()
        )),
        Err(_) => {}
    }
    let _ = greenring::fs::metadata(&path);
    let _ = greenring::fs::remove_file(&path);
}

fn timeouts(rng: &mut Rng, _env: &Env) {
    for _ in 0..1 + rng.below(20) {
        match rng.below(3) {
            0 => greenring::thread::park_timeout(Duration::from_micros(rng.below(2000))),
            1 => greenring::time::sleep(Duration::from_micros(rng.below(2000))),
            _ => {
                let (_tx, rx) = mpsc::channel::<()>();
                let _ = rx.recv_timeout(Duration::from_micros(rng.below(2000)));
            }
        }
    }
    if rng.chance(3) {
        // An hour-long timed wait: only the round's end ends it.
        let (_tx, rx) = mpsc::channel::<()>();
        let _ = rx.recv_timeout(Duration::from_secs(3600));
    }
}

fn blocking_pool(rng: &mut Rng, env: &Env) {
    let value = rng.next();
    let sleep = rng.below(2000);
    let job = greenring::spawn_blocking(move || {
        std::thread::sleep(Duration::from_micros(sleep));
        value
    });
    match job.join() {
        Ok(got) if got == value => {}
        Ok(got) => env
            .checks
            .fault(format!("a blocking job gave {got}, not {value}")),
        Err(_) => {}
    }
}

fn nested_joins(rng: &mut Rng, env: &Env) {
    // A spawn fails once the round shuts down.
    let children: Vec<JoinHandle<u64>> = (0..1 + rng.below(8))
        .map_while(|i| {
            let panics = rng.chance(10);
            greenring::thread::Builder::new()
                .spawn(move || {
                    greenring::yield_now();
                    if panics {
                        std::panic::panic_any(PLANNED);
                    }
                    i
                })
                .ok()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        match child.join() {
            Ok(got) if got == i as u64 => {}
            Ok(got) => env.checks.fault(format!("child {i} returned {got}")),
            Err(_) => {}
        }
    }
}

/// Serves echo connections, a green thread each, until the runtime shuts down.
fn echo_server(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { return };
        if greenring::thread::Builder::new()
            .spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .is_err()
        {
            return;
        }
    }
}

/// Whether a join's error is one the round expects: a planned panic or the shutdown's
/// cancellation.
fn expected_failure(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<greenring::runtime::Cancelled>()
        || payload.downcast_ref::<&str>() == Some(&PLANNED)
        || payload
            .downcast_ref::<String>()
            .is_some_and(|s| s.contains("poisoned"))
}

/// One round on `backend`: returns what it did, or the faults found.
fn round(backend: IoBackend, seed: u64) -> Result<String, String> {
    let mut rng = Rng(seed | 1);
    let rt = Runtime::builder()
        .worker_threads(1 + rng.below(3) as usize)
        .io_backend(backend)
        .shutdown_grace(Duration::from_millis(rng.below(100)))
        .build()
        .map_err(|err| format!("runtime: {err}"))?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let dir =
        std::env::temp_dir().join(format!("greenring-stress-{}-{seed:x}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let env = Arc::new(Env {
        checks: Checks::default(),
        echo: listener.local_addr().map_err(|e| e.to_string())?,
        lock: Arc::new(Mutex::new(0)),
        condvar: Arc::new((Mutex::new(false), Condvar::new())),
        permits: Arc::new(Semaphore::new(3)),
        dir: dir.clone(),
        file_seq: AtomicU64::new(0),
    });
    let server = rt.spawn(move || echo_server(listener));
    let mut handles = Vec::new();
    for _ in 0..20 + rng.below(200) {
        let (kind, thread_rng, env) = (rng.below(7), Rng(rng.next() | 1), Arc::clone(&env));
        handles.push(rt.spawn(move || work(kind, thread_rng, env)));
    }
    // Spawns from OS threads while the round goes on (they fail once it shuts down).
    let rt = Arc::new(rt);
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let (rt, env, mut rng) = (Arc::clone(&rt), Arc::clone(&env), Rng(rng.next() | 1));
            std::thread::spawn(move || {
                let mut spawned = Vec::new();
                for _ in 0..rng.below(100) {
                    let (kind, thread_rng, env) =
                        (rng.below(7), Rng(rng.next() | 1), Arc::clone(&env));
                    match greenring::thread::Builder::new()
                        .spawn_on(&rt, move || work(kind, thread_rng, env))
                    {
                        Ok(handle) => spawned.push(handle),
                        Err(_) => break,
                    }
                    std::thread::sleep(Duration::from_micros(rng.below(1000)));
                }
                spawned
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(rng.below(300)));
    for spawner in spawners {
        handles.extend(
            spawner
                .join()
                .map_err(|_| "a spawner panicked".to_owned())?,
        );
    }
    let rt = Arc::try_unwrap(rt).map_err(|_| "the runtime is still shared".to_owned())?;
    drop(rt);
    let _ = server.join();
    let threads = handles.len();
    for handle in handles {
        if let Err(payload) = handle.join() {
            if !expected_failure(&*payload) {
                let why = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a payload that is not a string".to_owned());
                env.checks.fault(format!("a thread failed: {why}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let faults = env.checks.faults.lock().unwrap().clone();
    if !faults.is_empty() {
        return Err(faults.join("; "));
    }
    Ok(format!(
        "{threads} threads, {} completed, {} bytes echoed, {} messages",
        env.checks.completed.load(Ordering::Relaxed),
        env.checks.echoed.load(Ordering::Relaxed),
        env.checks.messages.load(Ordering::Relaxed)
    ))
}

/// Keeps the planned panics (and the shutdown's cancellations) off standard error.
fn quiet_planned_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PLANNED) {
            default(info);
        }
    }));
}

#[test]
fn rounds_of_every_blocking_call_with_panics_timeouts_and_random_shutdowns() {
    let secs: u64 = std::env::var("GREENRING_STRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    quiet_planned_panics();
    let replay: Option<u64> = std::env::var("GREENRING_STRESS_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
    let mut seeds = Rng(replay.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }) | 1);
    for backend in [IoBackend::IoUring, IoBackend::Epoll] {
        if Runtime::builder()
            .worker_threads(1)
            .io_backend(backend)
            .build()
            .is_err()
        {
            continue;
        }
        let end = Instant::now() + Duration::from_secs(secs);
        let mut rounds = 0;
        while rounds == 0 || Instant::now() < end {
            let seed = replay.unwrap_or_else(|| seeds.next());
            let outcome = std::panic::catch_unwind(|| {
                watchdog::within(Duration::from_secs(60), move || round(backend, seed))
            })
            .unwrap_or_else(|payload| {
                let why = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(format!("the round panicked: {why}"))
            });
            match outcome {
                Ok(summary) => {
                    rounds += 1;
                    if rounds % 10 == 1 {
                        eprintln!("{backend} round {rounds} (seed {seed:#x}): {summary}");
                    }
                }
                Err(faults) => panic!(
                    "{backend} round {rounds} failed (GREENRING_STRESS_SEED={seed:#x}): {faults}"
                ),
            }
            if replay.is_some() {
                break;
            }
        }
        eprintln!("{backend}: {rounds} rounds");
    }
}
