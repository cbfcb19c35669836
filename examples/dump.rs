//! A thread dump of a small server: green threads blocked in `accept` and in reads of idle
//! connections, on a lock, on a channel, asleep, and one that blocks its worker in a busy
//! loop (which the monitor reports). Prints the dump, then lets everything finish.
//!
//! ```text
//! cargo run --example dump
//! ```

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenring::net::{TcpListener, TcpStream};
use greenring::sync::{mpmc, Mutex};
use greenring::{thread, Runtime};

/// Prints the runtime's log records (the monitor's stall report) to stderr.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("[{}] {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

fn main() -> io::Result<()> {
    log::set_logger(&Stderr).expect("the only logger");
    log::set_max_level(log::LevelFilter::Warn);
    let rt = Runtime::builder()
        .worker_threads(2)
        .handoff_threshold(Some(Duration::from_millis(20)))
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();

    // A thread that blocks its worker's OS thread: a busy loop on a flag. Started first,
    // so that once the monitor sees its worker stalled the other threads start elsewhere.
    let spinning = Arc::new(AtomicBool::new(true));
    handles.push(spawn(&rt, "spinner", {
        let spinning = Arc::clone(&spinning);
        move || spin(&spinning)
    }));
    std::thread::sleep(Duration::from_millis(100));

    // A server: one thread accepts, one per connection reads requests.
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let acceptor = thread::Builder::new()
        .name("acceptor".into())
        .spawn_on(&rt, {
            let stop = Arc::clone(&stop);
            move || accept_loop(listener, stop)
        })?;
    // Three idle clients, from OS threads: their connections wait in `read`.
    let clients: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr))
        .collect::<io::Result<_>>()?;

    // A lock held across a long sleep, and two threads waiting for it.
    let cache = Arc::new(Mutex::new(Vec::<u64>::new()));
    handles.push(spawn(&rt, "cache-refresh", {
        let cache = Arc::clone(&cache);
        move || refresh_cache(&cache)
    }));
    for i in 0..2 {
        handles.push(spawn(&rt, &format!("cache-reader-{i}"), {
            let cache = Arc::clone(&cache);
            move || read_cache(&cache)
        }));
    }

    // A pool of job threads waiting on a channel.
    let (jobs, queue) = mpmc::unbounded::<u64>();
    for i in 0..4 {
        let queue = queue.clone();
        handles.push(spawn(&rt, &format!("job-{i}"), move || run_jobs(queue)));
    }
    drop(queue);

    // A periodic task, asleep between runs.
    handles.push(spawn(&rt, "ticker", {
        let stop = Arc::clone(&stop);
        move || tick(&stop)
    }));

    std::thread::sleep(Duration::from_millis(300));
    println!("{}", rt.dump());

    // Let everything finish.
    spinning.store(false, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    drop(jobs);
    for mut client in clients {
        client.write_all(b"bye\n")?;
    }
    // Wakes the acceptor, which then sees `stop`.
    drop(std::net::TcpStream::connect(addr)?);
    for handle in handles {
        handle.join().expect("no thread panics");
    }
    acceptor.join().expect("the acceptor ends")?;
    assert!(rt.shutdown_timeout(Duration::from_secs(5)));
    Ok(())
}

fn spawn(rt: &Runtime, name: &str, f: impl FnOnce() + Send + 'static) -> greenring::JoinHandle<()> {
    thread::Builder::new()
        .name(name.into())
        .spawn_on(rt, f)
        .expect("spawn")
}

#[inline(never)]
fn accept_loop(listener: TcpListener, stop: Arc<AtomicBool>) -> io::Result<()> {
    let mut connection = 0;
    loop {
        let (stream, _) = listener.accept()?;
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        connection += 1;
        greenring::thread::Builder::new()
            .name(format!("conn-{connection}"))
            .spawn(move || serve(stream))?;
    }
}

#[inline(never)]
fn serve(mut stream: TcpStream) {
    let mut request = [0; 64];
    while let Ok(n @ 1..) = stream.read(&mut request) {
        let _ = stream.write_all(&request[..n]);
    }
}

#[inline(never)]
fn refresh_cache(cache: &Mutex<Vec<u64>>) {
    let mut entries = cache.lock().unwrap();
    // Holds the lock across a slow refresh.
    greenring::time::sleep(Duration::from_millis(600));
    entries.push(42);
}

#[inline(never)]
fn read_cache(cache: &Mutex<Vec<u64>>) {
    greenring::time::sleep(Duration::from_millis(10));
    let entries = cache.lock().unwrap();
    std::hint::black_box(entries.len());
}

#[inline(never)]
fn run_jobs(queue: mpmc::Receiver<u64>) {
    for job in queue.iter() {
        std::hint::black_box(job);
    }
}

#[inline(never)]
fn tick(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        greenring::time::sleep(Duration::from_millis(100));
    }
}

#[inline(never)]
fn spin(spinning: &AtomicBool) {
    greenring::time::sleep(Duration::from_millis(1));
    while spinning.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
}
