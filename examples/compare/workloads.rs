//! The workloads, each written once per design with identical work per item.

use std::io::{SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::shared_work::{self, next_offset, CONTENDERS, MESSAGE};

/// One design under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// greenring green threads (for the switch row: our assembly).
    Greenring,
    /// tokio tasks on a multi-thread runtime.
    Tokio,
    /// std OS threads.
    Std,
    /// corosensei's switch on the same stacks (switch row only).
    Corosensei,
    /// greenring green threads running code written against std (`std::net`), whose
    /// blocking calls the `hooks` feature turns into greenring's own I/O (external echo
    /// rows only, and only in a build with that feature: see [`Impl::built`]).
    GreenringHooks,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Greenring => "greenring",
            Impl::Tokio => "tokio",
            Impl::Std => "std",
            Impl::Corosensei => "corosensei",
            Impl::GreenringHooks => "greenring-hooks",
        }
    }

    /// Whether this build of the program runs the design: `greenring-hooks` needs the
    /// `hooks` feature (without it, std's calls would block the workers' OS threads).
    pub fn built(self) -> bool {
        match self.feature() {
            None => true,
            Some("hooks") => cfg!(feature = "hooks"),
            Some(_) => false,
        }
    }

    /// The cargo feature the design needs, if any: a results file made without it lacks
    /// the design's results, and `--check` accepts that.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Impl::GreenringHooks => Some("hooks"),
            _ => None,
        }
    }
}

/// One measurement: the headline value (lower is better unless the workload says
/// otherwise) and named extras.
pub struct Sample {
    pub value: f64,
    pub extra: Vec<(&'static str, f64)>,
}

impl Sample {
    fn of(value: f64) -> Sample {
        Sample {
            value,
            extra: Vec::new(),
        }
    }
}

/// How much work each workload does: quick mode or full.
pub struct Sizes {
    pub switches: u64,
    pub spawns: u64,
    pub std_spawns: u64,
    pub yields: u64,
    pub std_yields: u64,
    pub ping_pongs: u64,
    pub std_ping_pongs: u64,
    pub mutex_ops: u64,
    pub connections: usize,
    pub echo_rounds: usize,
    pub readers: usize,
    pub reads_per_reader: usize,
    pub file_bytes: u64,
    pub idle_threads: usize,
    pub std_idle_threads: usize,
    pub sleepers: usize,
    pub std_sleepers: usize,
    /// Threads of the small and the large fan-out, and fan-outs per sample.
    pub fan_out_small: usize,
    pub fan_out_large: usize,
    pub fan_out_rounds: usize,
    /// Live threads started at once.
    pub live_threads: usize,
    /// Measured window and warm-up of each external echo sample, in seconds.
    pub external_secs: f64,
    pub external_warmup: f64,
    /// wrk's measured run and its warm-up run (none if 0), in whole seconds (wrk's unit).
    pub wrk_secs: u64,
    pub wrk_warmup_secs: u64,
}

impl Sizes {
    /// The counts that differ between designs or modes, for the notes under the table.
    pub fn describe(&self) -> String {
        format!(
            "Sizes: {} switch pairs; {} spawns (std {}); {} yields (std {}); {} ping-pongs \
             (std {}); 64 contenders x {} locks; {} connections x {} echoes; {} readers x {} \
             reads of a {} MiB file; {} idle threads (std {}); {} sleepers (std {}); fan-outs of \
             {} and {} threads ({} a sample); {} live threads; external echo: {} s windows \
             after a {} s warm-up; wrk: {} s runs{}.",
            self.switches,
            self.spawns,
            self.std_spawns,
            self.yields,
            self.std_yields,
            self.ping_pongs,
            self.std_ping_pongs,
            self.mutex_ops,
            self.connections,
            self.echo_rounds,
            self.readers,
            self.reads_per_reader,
            self.file_bytes >> 20,
            self.idle_threads,
            self.std_idle_threads,
            self.sleepers,
            self.std_sleepers,
            self.fan_out_small,
            self.fan_out_large,
            self.fan_out_rounds,
            self.live_threads,
            self.external_secs,
            self.external_warmup,
            self.wrk_secs,
            match self.wrk_warmup_secs {
                0 => " (no warm-up run: wrk counts whole seconds)".to_owned(),
                secs => format!(" after a {secs} s warm-up run"),
            }
        )
    }

    pub fn new(quick: bool) -> Sizes {
        let k = if quick { 1 } else { 10 };
        Sizes {
            switches: 1_000_000 * k,
            spawns: 20_000 * k,
            std_spawns: 200 * k,
            yields: 200_000 * k,
            std_yields: 50_000 * k,
            ping_pongs: 20_000 * k,
            std_ping_pongs: 2_000 * k,
            mutex_ops: 200 * k,
            connections: 64,
            echo_rounds: 100 * k as usize,
            readers: 64,
            reads_per_reader: 100 * k as usize,
            file_bytes: if quick { 16 << 20 } else { 256 << 20 },
            idle_threads: if quick { 2_000 } else { 10_000 },
            std_idle_threads: if quick { 200 } else { 1_000 },
            sleepers: if quick { 1_000 } else { 10_000 },
            std_sleepers: if quick { 200 } else { 2_000 },
            fan_out_small: 10_000,
            fan_out_large: 100_000,
            fan_out_rounds: if quick { 1 } else { 3 },
            live_threads: if quick { 100_000 } else { 1_000_000 },
            external_secs: if quick { 1.0 } else { 2.0 },
            external_warmup: 0.5,
            wrk_secs: if quick { 1 } else { 3 },
            wrk_warmup_secs: if quick { 0 } else { 1 },
        }
    }
}

/// The runtimes and the data file every sample shares.
pub struct Env {
    pub greenring: greenring::Runtime,
    pub tokio: tokio::runtime::Runtime,
    pub workers: usize,
    pub backend: Option<greenring::IoBackend>,
    pub file: PathBuf,
    pub sizes: Sizes,
}

impl Env {
    pub fn new(
        workers: usize,
        backend: Option<greenring::IoBackend>,
        sizes: Sizes,
        dir: &std::path::Path,
    ) -> std::io::Result<Env> {
        let greenring = greenring_runtime(workers, backend)?;
        let tokio = tokio_runtime(workers)?;
        let file = dir.join("compare-read-data.bin");
        write_data_file(&file, sizes.file_bytes)?;
        Ok(Env {
            greenring,
            tokio,
            workers,
            backend,
            file,
            sizes,
        })
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

pub fn greenring_runtime(
    workers: usize,
    backend: Option<greenring::IoBackend>,
) -> std::io::Result<greenring::Runtime> {
    let mut builder = greenring::Runtime::builder().worker_threads(workers);
    if let Some(backend) = backend {
        builder = builder.io_backend(backend);
    }
    builder.build()
}

pub fn tokio_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// Writes `bytes` of varied data and reads it once, so it sits in the page cache.
fn write_data_file(path: &std::path::Path, bytes: u64) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let block: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let mut written = 0;
    while written < bytes {
        file.write_all(&block)?;
        written += block.len() as u64;
    }
    file.sync_all()?;
    std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
    Ok(())
}

fn per_item(elapsed: Duration, items: u64, unit: f64) -> f64 {
    elapsed.as_secs_f64() / unit / items as f64
}

const NS: f64 = 1e-9;
const US: f64 = 1e-6;

/// Round trips of a context switch pair.
pub fn switch(env: &Env, imp: Impl) -> Sample {
    let n = env.sizes.switches;
    let elapsed = match imp {
        Impl::Greenring => {
            let mut context = greenring::bench_support::OwnAsmSwitch::new().unwrap();
            let start = Instant::now();
            for _ in 0..n {
                context.switch_pair();
            }
            start.elapsed()
        }
        Impl::Corosensei => {
            let mut context = greenring::bench_support::CorosenseiSwitch::new().unwrap();
            let start = Instant::now();
            for _ in 0..n {
                context.switch_pair();
            }
            start.elapsed()
        }
        _ => unreachable!("switch compares the two switch backends"),
    };
    Sample::of(per_item(elapsed, n, NS))
}

/// Spawn one thread (task) that does nothing and wait for it, in a loop, from inside the
/// runtime.
pub fn spawn_join(env: &Env, imp: Impl) -> Sample {
    let s = &env.sizes;
    match imp {
        Impl::Greenring => {
            let n = s.spawns;
            let elapsed = env.greenring.block_on(move || {
                let start = Instant::now();
                for _ in 0..n {
                    greenring::spawn(|| ()).join().unwrap();
                }
                start.elapsed()
            });
            Sample::of(per_item(elapsed, n, NS))
        }
        Impl::Tokio => {
            let n = s.spawns;
            let elapsed = env.tokio.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..n {
                        tokio::spawn(async {}).await.unwrap();
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            });
            Sample::of(per_item(elapsed, n, NS))
        }
        Impl::Std => {
            let n = s.std_spawns;
            let start = Instant::now();
            for _ in 0..n {
                std::thread::spawn(|| ()).join().unwrap();
            }
            Sample::of(per_item(start.elapsed(), n, NS))
        }
        Impl::Corosensei | Impl::GreenringHooks => unreachable!(),
    }
}

/// One thread yields in a loop (the others idle).
pub fn yield_now(env: &Env, imp: Impl) -> Sample {
    let s = &env.sizes;
    match imp {
        Impl::Greenring => {
            let n = s.yields;
            let elapsed = env.greenring.block_on(move || {
                let start = Instant::now();
                for _ in 0..n {
                    greenring::yield_now();
                }
                start.elapsed()
            });
            Sample::of(per_item(elapsed, n, NS))
        }
        Impl::Tokio => {
            let n = s.yields;
            let elapsed = env.tokio.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..n {
                        tokio::task::yield_now().await;
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            });
            Sample::of(per_item(elapsed, n, NS))
        }
        Impl::Std => {
            let n = s.std_yields;
            let start = Instant::now();
            for _ in 0..n {
                std::thread::yield_now();
            }
            Sample::of(per_item(start.elapsed(), n, NS))
        }
        Impl::Corosensei | Impl::GreenringHooks => unreachable!(),
    }
}

/// Two threads pass a number back and forth through two channels: one round trip each.
pub fn ping_pong(env: &Env, imp: Impl) -> Sample {
    let s = &env.sizes;
    match imp {
        Impl::Greenring => {
            let n = s.ping_pongs;
            let elapsed = env
                .greenring
                .block_on(move || shared_work::green::ping_pong(n));
            Sample::of(per_item(elapsed, n, NS))
        }
        Impl::Tokio => {
            let n = s.ping_pongs;
            let elapsed = env.tokio.block_on(async move {
                tokio::spawn(shared_work::tasks::ping_pong(n))
                    .await
                    .unwrap()
            });
            Sample::of(per_item(elapsed, n, NS))
        }
        Impl::Std => {
            let n = s.std_ping_pongs;
            Sample::of(per_item(shared_work::os::ping_pong(n), n, NS))
        }
        Impl::Corosensei | Impl::GreenringHooks => unreachable!(),
    }
}

/// 64 threads each lock, increment and unlock one counter `mutex_ops` times.
pub fn contended_mutex(env: &Env, imp: Impl) -> Sample {
    let per = env.sizes.mutex_ops;
    let total = per * CONTENDERS as u64;
    let elapsed = match imp {
        Impl::Greenring => env
            .greenring
            .block_on(move || shared_work::green::contended_mutex(per)),
        Impl::Tokio => env.tokio.block_on(shared_work::tasks::contended_mutex(per)),
        Impl::Std => shared_work::os::contended_mutex(per),
        Impl::Corosensei | Impl::GreenringHooks => unreachable!(),
    };
    Sample::of(per_item(elapsed, total, NS))
}

/// Throughput and latency percentiles of an echo run: the headline is microseconds per
/// message (all connections concurrent), the extras messages/s and p50/p99 round trips.
fn echo_sample(elapsed: Duration, mut latencies: Vec<Duration>) -> Sample {
    let messages = latencies.len() as u64;
    latencies.sort_unstable();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[index].as_secs_f64() / US
    };
    Sample {
        value: per_item(elapsed, messages, US),
        extra: vec![
            ("msgs_per_s", messages as f64 / elapsed.as_secs_f64()),
            ("p50_us", at(0.50)),
            ("p99_us", at(0.99)),
        ],
    }
}

/// `connections` clients on loopback each send a 64-byte message and wait for its echo,
/// `echo_rounds` times; the server runs one thread (task) per connection.
pub fn tcp_echo(env: &Env, imp: Impl) -> Sample {
    let conns = env.sizes.connections;
    let rounds = env.sizes.echo_rounds;
    match imp {
        Impl::Greenring => {
            let (elapsed, latencies) = env
                .greenring
                .block_on(move || shared_work::green::tcp_echo(conns, rounds));
            echo_sample(elapsed, latencies)
        }
        Impl::Tokio => env.tokio.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (accepted, all_accepted) = tokio::sync::oneshot::channel();
            let server = tokio::spawn(async move {
                let mut handlers = Vec::new();
                for _ in 0..conns {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    handlers.push(tokio::spawn(async move {
                        let mut buf = [0u8; MESSAGE];
                        while stream.read_exact(&mut buf).await.is_ok() {
                            stream.write_all(&buf).await.unwrap();
                        }
                    }));
                }
                accepted.send(()).unwrap();
                for handler in handlers {
                    handler.await.unwrap();
                }
            });
            let mut streams = Vec::new();
            for _ in 0..conns {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                streams.push(stream);
            }
            all_accepted.await.unwrap();
            let go = Arc::new((
                tokio::sync::Barrier::new(conns + 1),
                std::sync::OnceLock::new(),
            ));
            let clients: Vec<_> = streams
                .into_iter()
                .map(|mut stream| {
                    let go = Arc::clone(&go);
                    tokio::spawn(async move {
                        go.0.wait().await;
                        go.1.get_or_init(Instant::now);
                        let mut buf = [7u8; MESSAGE];
                        let mut latencies = Vec::with_capacity(rounds);
                        for _ in 0..rounds {
                            let sent = Instant::now();
                            stream.write_all(&buf).await.unwrap();
                            stream.read_exact(&mut buf).await.unwrap();
                            latencies.push(sent.elapsed());
                        }
                        latencies
                    })
                })
                .collect();
            go.0.wait().await;
            let start = *go.1.get_or_init(Instant::now);
            let mut latencies = Vec::new();
            for client in clients {
                latencies.extend(client.await.unwrap());
            }
            let elapsed = start.elapsed();
            server.await.unwrap();
            echo_sample(elapsed, latencies)
        }),
        Impl::Std => {
            let (elapsed, latencies) = shared_work::os::tcp_echo(conns, rounds);
            echo_sample(elapsed, latencies)
        }
        Impl::Corosensei | Impl::GreenringHooks => unreachable!(),
    }
}

/// `readers` threads each read `reads_per_reader` random 4 KiB blocks of a cached file.
pub fn file_reads(env: &Env, imp: Impl) -> Sample {
    let readers = env.sizes.readers;
    let per = env.sizes.reads_per_reader;
    let blocks = env.sizes.file_bytes / 4096;
    let path = env.file.clone();
    let total = (readers * per) as u64;
    let elapsed = match imp {
        Impl::Greenring => env
            .greenring
            .block_on(move || shared_work::green::file_reads(&path, readers, per, blocks)),
        Impl::Tokio => env.tokio.block_on(async move {
            use tokio::io::AsyncReadExt;
            let go = Arc::new((
                tokio::sync::Barrier::new(readers + 1),
                std::sync::OnceLock::new(),
            ));
            let handles: Vec<_> = (0..readers)
                .map(|r| {
                    let (path, go) = (path.clone(), Arc::clone(&go));
                    tokio::spawn(async move {
                        // tokio::fs has no positional read: each reader seeks its own file.
                        let mut file = tokio::fs::File::open(&path).await.unwrap();
                        go.0.wait().await;
                        go.1.get_or_init(Instant::now);
                        let mut state = 0x9E37_79B9_7F4A_7C15 ^ r as u64;
                        let mut buf = vec![0u8; 4096];
                        for _ in 0..per {
                            let offset = next_offset(&mut state, blocks);
                            file.seek(SeekFrom::Start(offset)).await.unwrap();
                            file.read_exact(&mut buf).await.unwrap();
                        }
                    })
                })
                .collect();
            go.0.wait().await;
            let start = *go.1.get_or_init(Instant::now);
            for handle in handles {
                handle.await.unwrap();
            }
            start.elapsed()
        }),
        Impl::Std => shared_work::os::file_reads(&path, readers, per, blocks),
        Impl::Corosensei | Impl::GreenringHooks => unreachable!(),
    };
    Sample::of(per_item(elapsed, total, US))
}

// `seek` on tokio's File needs the trait in scope.
use tokio::io::AsyncSeekExt as _;

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * page_size() as u64
}

/// The system page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096)
}

/// Waits until `count` reaches `target`, then lets the memory settle.
fn wait_for(count: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "idle threads did not all start");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
}

/// Runs this program again as `FLAG IMPL COUNT WORKERS BACKEND` (a child measuring `imp`)
/// and returns what it printed, and its standard error for failure messages.
fn run_child(flag: &str, env: &Env, imp: Impl, count: usize) -> (String, String) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            flag,
            imp.name(),
            &count.to_string(),
            &env.workers.to_string(),
            env.backend.map_or("auto", greenring::IoBackend::name),
        ])
        .output()
        .unwrap_or_else(|err| panic!("start the {flag} child: {err}"));
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The arguments of a child started by [`run_child`]: the implementation's name, the
/// count, the workers and the I/O backend.
fn child_args<'a>(
    flag: &str,
    args: &'a [String],
) -> (&'a str, usize, usize, Option<greenring::IoBackend>) {
    let [imp, count, workers, backend] = args else {
        panic!("{flag} IMPL COUNT WORKERS BACKEND");
    };
    let backend = match backend.as_str() {
        "epoll" => Some(greenring::IoBackend::Epoll),
        "io_uring" => Some(greenring::IoBackend::IoUring),
        _ => None,
    };
    (
        imp.as_str(),
        count.parse().unwrap(),
        workers.parse().unwrap(),
        backend,
    )
}

/// Bytes of resident memory each idle (blocked) thread adds. Measured in a fresh child
/// process (this program, with `--idle-child`), so neither the allocator's free lists nor
/// a stack pool left by earlier workloads hide the cost.
pub fn idle_memory(env: &Env, imp: Impl) -> Sample {
    let count = match imp {
        Impl::Std => env.sizes.std_idle_threads,
        _ => env.sizes.idle_threads,
    };
    let (text, stderr) = run_child("--idle-child", env, imp, count);
    let bytes: f64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("idle-memory child failed: {text}{stderr}"));
    Sample::of(bytes)
}

/// Body of the `--idle-child IMPL COUNT WORKERS BACKEND` process: starts COUNT idle threads
/// of IMPL and prints the growth of the resident set per thread.
pub fn idle_child(args: &[String]) -> ! {
    let (imp, n, workers, backend) = child_args("--idle-child", args);
    let started = Arc::new(AtomicUsize::new(0));
    let growth = match imp {
        "greenring" => {
            let rt = greenring_runtime(workers, backend).unwrap();
            rt.block_on(|| ());
            let before = rss_bytes();
            let stop = Arc::new(AtomicBool::new(false));
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let (started, stop) = (Arc::clone(&started), Arc::clone(&stop));
                    rt.spawn(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        while !stop.load(Ordering::SeqCst) {
                            greenring::park();
                        }
                    })
                })
                .collect();
            wait_for(&started, n);
            let growth = rss_bytes().saturating_sub(before);
            stop.store(true, Ordering::SeqCst);
            for handle in handles {
                handle.thread().unpark();
                handle.join().unwrap();
            }
            growth
        }
        "tokio" => {
            let rt = tokio_runtime(workers).unwrap();
            rt.block_on(async {});
            let before = rss_bytes();
            let release = Arc::new(tokio::sync::Notify::new());
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let (started, release) = (Arc::clone(&started), Arc::clone(&release));
                    rt.spawn(async move {
                        let notified = release.notified();
                        started.fetch_add(1, Ordering::SeqCst);
                        notified.await;
                    })
                })
                .collect();
            wait_for(&started, n);
            let growth = rss_bytes().saturating_sub(before);
            release.notify_waiters();
            rt.block_on(async {
                for handle in handles {
                    handle.await.unwrap();
                }
            });
            growth
        }
        "std" => {
            let before = rss_bytes();
            let release = Arc::new(Barrier::new(n + 1));
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let (started, release) = (Arc::clone(&started), Arc::clone(&release));
                    std::thread::spawn(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        release.wait();
                    })
                })
                .collect();
            wait_for(&started, n);
            let growth = rss_bytes().saturating_sub(before);
            release.wait();
            handles.into_iter().for_each(|h| h.join().unwrap());
            growth
        }
        other => panic!("no idle-memory workload for {other}"),
    };
    println!("{}", growth as f64 / n as f64);
    std::process::exit(0);
}

/// `sleepers` threads (fewer OS threads for std) wait until every one has started, then
/// sleep until one deadline 100 ms later; the value is the mean lateness of their wake-ups,
/// in microseconds.
pub fn sleepers(env: &Env, imp: Impl) -> Sample {
    const LEAD: Duration = Duration::from_millis(100);
    let lateness_us = |mut late: Vec<Duration>| {
        late.sort_unstable();
        let mean = late.iter().map(Duration::as_secs_f64).sum::<f64>() / late.len() as f64 / US;
        Sample {
            value: mean,
            extra: vec![
                ("first_us", late[0].as_secs_f64() / US),
                ("last_us", late[late.len() - 1].as_secs_f64() / US),
            ],
        }
    };
    let sample = match imp {
        Impl::Greenring => {
            let n = env.sizes.sleepers;
            env.greenring.block_on(move || {
                let deadline = Arc::new(std::sync::OnceLock::new());
                let go = Arc::new((
                    greenring::sync::Barrier::new(n + 1),
                    std::sync::OnceLock::new(),
                ));
                let handles: Vec<_> = (0..n)
                    .map(|_| {
                        let (deadline, go) = (Arc::clone(&deadline), Arc::clone(&go));
                        greenring::spawn(move || {
                            go.0.wait();
                            go.1.get_or_init(Instant::now);
                            let deadline: Instant = *deadline.get().unwrap();
                            greenring::time::sleep_until(deadline);
                            Instant::now() - deadline
                        })
                    })
                    .collect();
                deadline.set(Instant::now() + LEAD).unwrap();
                go.0.wait();
                go.1.get_or_init(Instant::now);
                lateness_us(handles.into_iter().map(|h| h.join().unwrap()).collect())
            })
        }
        Impl::Tokio => {
            let n = env.sizes.sleepers;
            env.tokio.block_on(async move {
                let deadline = Arc::new(std::sync::OnceLock::new());
                let go = Arc::new((tokio::sync::Barrier::new(n + 1), std::sync::OnceLock::new()));
                let handles: Vec<_> = (0..n)
                    .map(|_| {
                        let (deadline, go) = (Arc::clone(&deadline), Arc::clone(&go));
                        tokio::spawn(async move {
                            go.0.wait().await;
                            go.1.get_or_init(Instant::now);
                            let deadline: Instant = *deadline.get().unwrap();
                            tokio::time::sleep_until(deadline.into()).await;
                            Instant::now() - deadline
                        })
                    })
                    .collect();
                deadline.set(Instant::now() + LEAD).unwrap();
                go.0.wait().await;
                go.1.get_or_init(Instant::now);
                let mut late = Vec::with_capacity(n);
                for handle in handles {
                    late.push(handle.await.unwrap());
                }
                lateness_us(late)
            })
        }
        Impl::Std => {
            let n = env.sizes.std_sleepers;
            let deadline = Arc::new(std::sync::OnceLock::new());
            let go = Arc::new((Barrier::new(n + 1), std::sync::OnceLock::new()));
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let (deadline, go) = (Arc::clone(&deadline), Arc::clone(&go));
                    std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || {
                            go.0.wait();
                            go.1.get_or_init(Instant::now);
                            let deadline: Instant = *deadline.get().unwrap();
                            let now = Instant::now();
                            if now < deadline {
                                std::thread::sleep(deadline - now);
                            }
                            Instant::now() - deadline
                        })
                        .unwrap()
                })
                .collect();
            deadline.set(Instant::now() + LEAD).unwrap();
            go.0.wait();
            go.1.get_or_init(Instant::now);
            lateness_us(handles.into_iter().map(|h| h.join().unwrap()).collect())
        }
        Impl::Corosensei | Impl::GreenringHooks => unreachable!(),
    };
    sample
}

/// `threads` threads (tasks) spawned at once from inside the runtime, each returning a
/// number, then joined in order; `fan_out_rounds` times. Nanoseconds per thread.
fn fan_out(env: &Env, imp: Impl, threads: usize) -> Sample {
    let rounds = env.sizes.fan_out_rounds;
    let total = (threads * rounds) as u64;
    let elapsed = match imp {
        Impl::Greenring => env.greenring.block_on(move || {
            let start = Instant::now();
            for _ in 0..rounds {
                let handles: Vec<_> = (0..threads).map(|i| greenring::spawn(move || i)).collect();
                let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
                assert_eq!(sum, threads * (threads - 1) / 2);
            }
            start.elapsed()
        }),
        Impl::Tokio => env.tokio.block_on(async move {
            tokio::spawn(async move {
                let start = Instant::now();
                for _ in 0..rounds {
                    let handles: Vec<_> = (0..threads)
                        .map(|i| tokio::spawn(async move { i }))
                        .collect();
                    let mut sum = 0;
                    for handle in handles {
                        sum += handle.await.unwrap();
                    }
                    assert_eq!(sum, threads * (threads - 1) / 2);
                }
                start.elapsed()
            })
            .await
            .unwrap()
        }),
        Impl::Std => {
            let start = Instant::now();
            for _ in 0..rounds {
                let handles: Vec<_> = (0..threads)
                    .map(|i| {
                        std::thread::Builder::new()
                            .stack_size(64 * 1024)
                            .spawn(move || i)
                            .unwrap()
                    })
                    .collect();
                let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
                assert_eq!(sum, threads * (threads - 1) / 2);
            }
            start.elapsed()
        }
        Impl::Corosensei | Impl::GreenringHooks => unreachable!(),
    };
    Sample::of(per_item(elapsed, total, NS))
}

/// A fan-out of `fan_out_small` (10,000) threads.
pub fn fan_out_small(env: &Env, imp: Impl) -> Sample {
    fan_out(env, imp, env.sizes.fan_out_small)
}

/// A fan-out of `fan_out_large` (100,000) threads (not for std: 100,000 OS threads at once
/// take minutes and hit the thread limits).
pub fn fan_out_large(env: &Env, imp: Impl) -> Sample {
    fan_out(env, imp, env.sizes.fan_out_large)
}

/// `live_threads` threads (tasks) spawned from inside the runtime that all stay alive,
/// parked (awaiting), measured in a fresh child process (`--live-child`): the headline is
/// nanoseconds per spawn from the first spawn until every thread has started, the extras
/// the spawn loop alone per thread, the resident memory each live thread adds, and what
/// the first write to a fresh page of memory costs in that process afterwards
/// ([`first_touch_ns`]), the machine's price for each page a live thread makes resident.
pub fn live_threads(env: &Env, imp: Impl) -> Sample {
    let (text, stderr) = run_child("--live-child", env, imp, env.sizes.live_threads);
    let numbers: Vec<f64> = text
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    let [started_ns, spawn_ns, rss_bytes, touch_ns] = numbers[..] else {
        panic!("live-threads child failed: {text}{stderr}");
    };
    Sample {
        value: started_ns,
        extra: vec![
            ("spawn_ns", spawn_ns),
            ("rss_bytes", rss_bytes),
            ("page_touch_ns", touch_ns),
        ],
    }
}

/// Nanoseconds per page for the first write to each of `pages` fresh anonymous pages,
/// one OS thread: the page fault, the zeroing and, in a virtual machine, the host's share.
/// Every live green thread pays this at least once, for the top page of its stack.
fn first_touch_ns(pages: usize) -> f64 {
    let page = page_size();
    let mut map = memmap2::MmapMut::map_anon(pages * page).expect("map fresh pages");
    let start = Instant::now();
    for offset in (0..map.len()).step_by(page) {
        map[offset] = 1;
    }
    let elapsed = start.elapsed();
    // The writes are to memory the program never reads; keep them.
    std::hint::black_box(&map);
    elapsed.as_nanos() as f64 / pages as f64
}

/// Body of the `--live-child IMPL COUNT WORKERS BACKEND` process: spawns COUNT threads
/// that stay parked, from inside the runtime, and prints the nanoseconds per thread until
/// all have started, those of the spawn loop alone, the resident bytes per thread and
/// then the nanoseconds a first write to a fresh page costs ([`first_touch_ns`]). It exits
/// without releasing the threads (a million joins would only slow the row down).
pub fn live_child(args: &[String]) -> ! {
    let (imp, n, workers, backend) = child_args("--live-child", args);
    let started = Arc::new(AtomicUsize::new(0));
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    let (all_started, spawn_loop, growth) = match imp {
        "greenring" => {
            let rt = greenring_runtime(workers, backend).unwrap();
            rt.block_on(|| ());
            let before = rss_bytes();
            let release = Arc::new(AtomicBool::new(false));
            let counter = Arc::clone(&started);
            let (start, spawn_loop) = rt.block_on(move || {
                let start = Instant::now();
                let handles: Vec<_> = (0..n)
                    .map(|_| {
                        let (started, release) = (Arc::clone(&counter), Arc::clone(&release));
                        greenring::spawn(move || {
                            started.fetch_add(1, Ordering::SeqCst);
                            while !release.load(Ordering::SeqCst) {
                                greenring::park();
                            }
                        })
                    })
                    .collect();
                let spawn_loop = start.elapsed();
                std::mem::forget(handles);
                (start, spawn_loop)
            });
            wait_all(&started, n);
            let all_started = start.elapsed();
            let growth = rss_bytes().saturating_sub(before);
            // Dropping the runtime would shut it down and unwind every thread first.
            std::mem::forget(rt);
            (all_started, spawn_loop, growth)
        }
        "tokio" => {
            let rt = tokio_runtime(workers).unwrap();
            rt.block_on(async {});
            let before = rss_bytes();
            let release = Arc::new(tokio::sync::Notify::new());
            let counter = Arc::clone(&started);
            let (start, spawn_loop) = rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    let handles: Vec<_> = (0..n)
                        .map(|_| {
                            let (started, release) = (Arc::clone(&counter), Arc::clone(&release));
                            tokio::spawn(async move {
                                let notified = release.notified();
                                started.fetch_add(1, Ordering::SeqCst);
                                notified.await;
                            })
                        })
                        .collect();
                    let spawn_loop = start.elapsed();
                    std::mem::forget(handles);
                    (start, spawn_loop)
                })
                .await
                .unwrap()
            });
            wait_all(&started, n);
            let all_started = start.elapsed();
            let growth = rss_bytes().saturating_sub(before);
            // Dropping the runtime would shut it down and unwind every thread first.
            std::mem::forget(rt);
            (all_started, spawn_loop, growth)
        }
        other => panic!("no live-threads workload for {other}"),
    };
    // A tenth as many pages as threads: enough for a steady figure, a small share of the
    // child's time.
    let touch = first_touch_ns((n / 10).max(1_000));
    println!(
        "{} {} {} {}",
        per(all_started),
        per(spawn_loop),
        growth as f64 / n as f64,
        touch
    );
    std::process::exit(0);
}

/// Waits (polling every 100 us) until `count` reaches `target`.
fn wait_all(count: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "live threads did not all start");
        std::thread::sleep(Duration::from_micros(100));
    }
}
