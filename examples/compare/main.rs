//! Stackful vs async vs OS threads: the same workloads on greenring green threads, tokio
//! tasks and std threads (and, for the context switch, our assembly against corosensei),
//! interleaved, with warm-up and repetitions, on one machine in one run.
//!
//! ```text
//! cargo run --release --example compare                      # full run (a few minutes)
//! cargo run --release --example compare -- --quick           # about 80 s on 2 CPUs, 50-60 s of it the external rows
//! cargo run --release --example compare -- --only tcp_echo,sleepers --workers 4
//! cargo run --release --example compare -- --backend epoll --out results/
//! cargo run --release --example compare -- --check results/ # validate a results dir
//! cargo run --release --example compare -- --load 127.0.0.1:7878 --conns 64 --secs 4
//!                                         # external TCP echo load on a running server
//! cargo run --release --example compare --features hooks -- --only tcp_echo_external
//!                                         # adds greenring-hooks: std's net on green threads
//! ```
//!
//! The `tcp_echo_external`, `tcp_echo_external_1k`, `http_wrk` and `http_wrk_close` rows
//! put the client in another process (this program as `--load`, or `wrk`), as a server's
//! users see it; they report rates (higher is better) with p50/p99 and the server's CPU
//! time per message. Without `wrk` on `PATH`, the `http_wrk` rows are skipped, and the
//! JSON says so. Built with the `hooks` feature, the two external echo rows also run
//! `greenring-hooks`: the greenring server written with `std::net`, every call of it through
//! the hooks, against greenring's own `net` in the same rounds.
//!
//! It prints a table of medians and ratios, and writes `results.json` and `results.svg`
//! into the output directory (default `target/compare`). The fairness rules and the figures
//! of a full run are in `docs/compare.md`.

mod check;
mod external;
mod load;
mod report;
mod shared_work;
mod workloads;

use std::path::PathBuf;
use std::time::Instant;

use workloads::{Env, Impl, Sample, Sizes};

/// One workload: what it measures and how each design runs it.
pub struct Workload {
    pub name: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    /// Every design the workload may run; a build runs those it has ([`Workload::designs`]).
    pub impls: &'static [Impl],
    pub run: fn(&Env, Impl) -> Sample,
    /// Whether a larger headline value is better (rates); otherwise smaller is.
    pub higher_is_better: bool,
    /// The named extras every sample carries (`--check` requires them).
    pub extras: &'static [&'static str],
    /// A program the workload runs, without which it is skipped (declared in the JSON).
    pub needs: Option<&'static str>,
    /// Which design it favours, and why (printed under the table and in `docs/compare.md`).
    pub favours: &'static str,
}

impl Workload {
    /// The designs this build runs: [`Workload::impls`] without those whose cargo feature
    /// is off.
    pub fn designs(&self) -> impl Iterator<Item = Impl> + '_ {
        self.impls.iter().copied().filter(|imp| imp.built())
    }
}

const ALL: &[Impl] = &[Impl::Greenring, Impl::Tokio, Impl::Std];

/// The external echo rows' designs: also, in a build with the `hooks` feature, the same
/// green-thread-per-connection server written with `std::net` (greenring-hooks), next to
/// greenring's own `net`, so the two alternate within every round.
const ECHO_EXTERNAL: &[Impl] = &[
    Impl::Greenring,
    Impl::GreenringHooks,
    Impl::Tokio,
    Impl::Std,
];

pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "switch",
        title: "context switch pair",
        unit: "ns",
        impls: &[Impl::Greenring, Impl::Corosensei],
        run: workloads::switch,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "corosensei: it does not save the floating-point control words (MXCSR, x87 CW), which the ABI asks us to preserve",
    },
    Workload {
        name: "spawn_join",
        title: "spawn + join",
        unit: "ns",
        impls: ALL,
        run: workloads::spawn_join,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "green threads and tasks: no kernel thread; std pays clone() and a 2 MiB mapping",
    },
    Workload {
        name: "yield",
        title: "yield",
        unit: "ns",
        impls: ALL,
        run: workloads::yield_now,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "green threads: a yield is a register switch; tokio re-polls through its scheduler; std makes a system call",
    },
    Workload {
        name: "ping_pong",
        title: "channel ping-pong round trip",
        unit: "ns",
        impls: ALL,
        run: workloads::ping_pong,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "user-space schedulers: std needs two futex wake-ups across CPUs per round trip",
    },
    Workload {
        name: "mutex",
        title: "contended mutex, 64 contenders",
        unit: "ns/op",
        impls: ALL,
        run: workloads::contended_mutex,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "green threads: one holding the lock is never preempted, so only the other workers can contend; std threads are preempted while holding it and pay futex sleeps; tokio's async Mutex queues every waiter fairly",
    },
    Workload {
        name: "tcp_echo",
        title: "TCP echo, 64 connections x 64 B, in-process clients",
        unit: "us/msg",
        impls: ALL,
        run: workloads::tcp_echo,
        higher_is_better: false,
        extras: &["msgs_per_s", "p50_us", "p99_us"],
        needs: None,
        favours: "batching runtimes (io_uring for greenring, epoll for tokio) over a thread per connection, though with few CPUs std's threads keep up",
    },
    Workload {
        name: "tcp_echo_external",
        title: "TCP echo, 64 connections x 64 B, client in another process",
        unit: "msgs/s",
        impls: ECHO_EXTERNAL,
        run: external::tcp_echo_64,
        higher_is_better: true,
        extras: &["p50_us", "p99_us", "cpu_us_per_msg", "client_cpu_us_per_msg"],
        needs: None,
        favours: "batching runtimes (io_uring for greenring, epoll for tokio) over a thread per connection; the client (one thread over epoll) shares the CPUs, so on few cores it can saturate first; cpu_us_per_msg counts the server process alone",
    },
    Workload {
        name: "tcp_echo_external_1k",
        title: "TCP echo, 1000 connections x 64 B, client in another process",
        unit: "msgs/s",
        impls: ECHO_EXTERNAL,
        run: external::tcp_echo_1k,
        higher_is_better: true,
        extras: &["p50_us", "p99_us", "cpu_us_per_msg", "client_cpu_us_per_msg"],
        needs: None,
        favours: "green threads and tasks: std runs 1000 OS threads, a kernel wake-up and switch per message; still, on few CPUs shared with the client, std's threads can keep up (as in tcp_echo), and its tail is the shortest: the kernel schedules them round-robin",
    },
    Workload {
        name: "http_wrk",
        title: "HTTP keep-alive hello, wrk -t1 -c64 in another process",
        unit: "req/s",
        impls: ALL,
        run: external::http_wrk,
        higher_is_better: true,
        extras: &["p50_us", "p99_us", "cpu_us_per_req"],
        needs: Some("wrk"),
        favours: "batching runtimes over a thread per connection, as for the echo; the server is examples/http_hello's for every design; wrk shares the CPUs, so on few cores the tail is noisy",
    },
    Workload {
        name: "http_wrk_close",
        title: "HTTP hello, a new connection per request (Connection: close), wrk -t1 -c64 in another process",
        unit: "req/s",
        impls: ALL,
        run: external::http_wrk_close,
        higher_is_better: true,
        extras: &["p50_us", "p99_us", "cpu_us_per_req"],
        needs: Some("wrk"),
        favours: "cheap spawns: every request pays a connect, an accept and a close in the kernel, and a new green thread, task or OS thread; std pays a thread creation and exit per request",
    },
    Workload {
        name: "file_read",
        title: "random 4 KiB reads, 64 readers",
        unit: "us/read",
        impls: ALL,
        run: workloads::file_reads,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "greenring and std: a cached pread is a copy (io_uring serves it inline, no extra thread); tokio::fs hands every read to its blocking pool",
    },
    Workload {
        name: "idle_memory",
        title: "RSS per idle thread",
        unit: "bytes",
        impls: ALL,
        run: workloads::idle_memory,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "tokio: an idle task is its future's state; a green thread keeps a touched stack page or two; an OS thread adds kernel and stack pages",
    },
    Workload {
        name: "sleepers",
        title: "sleepers waking at one deadline: mean lateness",
        unit: "us",
        impls: ALL,
        run: workloads::sleepers,
        higher_is_better: false,
        extras: &["first_us", "last_us"],
        needs: None,
        favours: "timer heaps/wheels in user space over one kernel timer per OS thread",
    },
    Workload {
        name: "fan_out_10k",
        title: "fan-out: spawn 10,000 then join all",
        unit: "ns",
        impls: ALL,
        run: workloads::fan_out_small,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "tasks: a task is one allocation; a green thread also needs a stack (pooled) and its first page; std pays clone() and a mapping per thread",
    },
    Workload {
        name: "fan_out_100k",
        title: "fan-out: spawn 100,000 then join all (no std: 100,000 OS threads at once)",
        unit: "ns",
        impls: &[Impl::Greenring, Impl::Tokio],
        run: workloads::fan_out_large,
        higher_is_better: false,
        extras: &[],
        needs: None,
        favours: "tasks: a task is one allocation; a green thread also needs a stack and its first page, more of them than the pools keep",
    },
    Workload {
        name: "live_threads",
        title: "live threads: spawn 1,000,000 that stay parked, per thread until all started (quick: 100,000)",
        unit: "ns",
        impls: &[Impl::Greenring, Impl::Tokio],
        run: workloads::live_threads,
        higher_is_better: false,
        extras: &["spawn_ns", "rss_bytes", "page_touch_ns"],
        needs: None,
        favours: "tasks: an idle task is its future's state, where a green thread keeps a touched stack page; page_touch_ns is the first write to a fresh page in the same process once all have started, the machine's price per resident page, which a VM may raise once a process has made several GiB resident; no std: a million OS threads exceed the thread limits",
    },
];

/// Command-line options.
pub struct Options {
    pub quick: bool,
    pub reps: usize,
    pub workers: usize,
    pub backend: Option<greenring::IoBackend>,
    pub only: Option<Vec<String>>,
    pub out: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: compare [--quick] [--reps N] [--workers N] [--backend io_uring|epoll] \
         [--only w1,w2,...] [--out DIR]\n       compare --check DIR\n       \
         compare --load ADDR [--conns N] [--secs S] [--warmup S] [--size B] [--marks]\n\
         workloads: {}",
        WORKLOADS
            .iter()
            .map(|w| w.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::process::exit(2);
}

fn parse() -> Options {
    let mut options = Options {
        quick: false,
        reps: 0,
        workers: 2,
        backend: None,
        only: None,
        out: PathBuf::from("target/compare"),
    };
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("--idle-child") {
        workloads::idle_child(&all[1..]);
    }
    if all.first().map(String::as_str) == Some("--live-child") {
        workloads::live_child(&all[1..]);
    }
    if all.first().map(String::as_str) == Some("--load") {
        load::run(&all[1..]);
    }
    let mut args = all.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--reps" => options.reps = value().parse().unwrap_or_else(|_| usage()),
            "--workers" => options.workers = value().parse().unwrap_or_else(|_| usage()),
            "--backend" => {
                options.backend = Some(match value().as_str() {
                    "io_uring" => greenring::IoBackend::IoUring,
                    "epoll" => greenring::IoBackend::Epoll,
                    _ => usage(),
                })
            }
            "--only" => {
                let names: Vec<String> = value().split(',').map(str::to_owned).collect();
                for name in &names {
                    if !WORKLOADS.iter().any(|w| w.name == name) {
                        eprintln!("unknown workload {name:?}");
                        usage();
                    }
                }
                options.only = Some(names);
            }
            "--out" => options.out = PathBuf::from(value()),
            "--check" => {
                let dir = PathBuf::from(value());
                match check::check_dir(&dir) {
                    Ok(summary) => {
                        println!("{summary}");
                        std::process::exit(0);
                    }
                    Err(err) => {
                        eprintln!("check failed: {err}");
                        std::process::exit(1);
                    }
                }
            }
            _ => usage(),
        }
    }
    if options.workers == 0 {
        eprintln!("--workers must be at least 1");
        usage();
    }
    if options.reps == 0 {
        options.reps = if options.quick { 3 } else { 7 };
    }
    options
}

/// Every sample of one (workload, design) pair.
pub struct Series {
    pub imp: Impl,
    pub samples: Vec<Sample>,
}

impl Series {
    pub fn median(&self) -> f64 {
        median(self.samples.iter().map(|s| s.value).collect())
    }

    /// Medians of the named extras, in the order of the first sample.
    pub fn extra_medians(&self) -> Vec<(&'static str, f64)> {
        let Some(first) = self.samples.first() else {
            return Vec::new();
        };
        first
            .extra
            .iter()
            .map(|(name, _)| {
                let values = self
                    .samples
                    .iter()
                    .filter_map(|s| s.extra.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
                    .collect();
                (*name, median(values))
            })
            .collect()
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The results of one workload.
pub struct Outcome {
    pub workload: &'static Workload,
    pub series: Vec<Series>,
}

fn main() -> std::io::Result<()> {
    // A thousand connections need more descriptors than a default soft limit of 1024.
    load::raise_fd_limit();
    let options = parse();
    std::fs::create_dir_all(&options.out)?;
    let mut skipped = Vec::new();
    let selected: Vec<&'static Workload> = WORKLOADS
        .iter()
        .filter(|w| {
            options
                .only
                .as_ref()
                .is_none_or(|only| only.iter().any(|n| n == w.name))
        })
        .filter(|w| match w.needs {
            Some(program) if !external::on_path(program) => {
                println!(
                    "{}: skipped, {program} not installed (apt-get install {program})",
                    w.name
                );
                skipped.push(w.name);
                false
            }
            _ => true,
        })
        .collect();
    let env = Env::new(
        options.workers,
        options.backend,
        Sizes::new(options.quick),
        &options.out,
    )?;
    let machine = report::Machine::detect(options.workers, env.greenring.io_backend());
    eprintln!(
        "compare: {} mode, {} workers, greenring on {}, {} repetitions after a warm-up, on {}",
        if options.quick { "quick" } else { "full" },
        options.workers,
        machine.io_backend,
        options.reps,
        machine.cpu
    );
    let mut outcomes: Vec<Outcome> = selected
        .iter()
        .map(|w| Outcome {
            workload: w,
            series: w
                .designs()
                .map(|imp| Series {
                    imp,
                    samples: Vec::new(),
                })
                .collect(),
        })
        .collect();
    let total_runs: usize =
        selected.iter().map(|w| w.designs().count()).sum::<usize>() * (options.reps + 1);
    let mut done = 0;
    let started = Instant::now();
    // Round 0 is the warm-up (discarded). Every round runs every workload on every design,
    // rotating the order of designs, so slow drifts of a shared machine hit all alike.
    for round in 0..=options.reps {
        for outcome in &mut outcomes {
            let count = outcome.series.len();
            for k in 0..count {
                let index = (k + round) % count;
                let series = &mut outcome.series[index];
                let sample = (outcome.workload.run)(&env, series.imp);
                done += 1;
                eprintln!(
                    "[{done:>3}/{total_runs}] {:>6.1}s  {} {:<20} {:<15} {:>12.3} {}",
                    started.elapsed().as_secs_f64(),
                    if round == 0 { "warm-up" } else { "round  " },
                    outcome.workload.name,
                    series.imp.name(),
                    sample.value,
                    outcome.workload.unit
                );
                if round > 0 {
                    series.samples.push(sample);
                }
            }
        }
    }
    let metrics = env.greenring.metrics();
    eprintln!(
        "greenring metrics after the run: {} steals, {} parks, {} I/O ops, {} hand-offs",
        metrics.steals(),
        metrics.parks(),
        metrics.io_submitted(),
        metrics.handoffs
    );
    let table = report::table(&outcomes);
    println!("\n{table}");
    println!("{}", report::machine_line(&machine, &options));
    println!("{}", env.sizes.describe());
    let json_path = options.out.join("results.json");
    std::fs::write(
        &json_path,
        report::json(&outcomes, &machine, &options, &skipped),
    )?;
    let svg_path = options.out.join("results.svg");
    std::fs::write(&svg_path, report::svg(&outcomes, &machine))?;
    println!(
        "wrote {} and {} in {:.0} s",
        json_path.display(),
        svg_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
