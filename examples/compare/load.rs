//! `compare --load ADDR`: a TCP echo load generator meant to run in its own process, so a
//! server is measured as its users see it (an in-process client lets io_uring batch both
//! ends of every exchange).
//!
//! One OS thread drives `--conns` connections (default 64) over non-blocking sockets and
//! one level-triggered epoll instance, in a closed loop: each connection sends a
//! `--size`-byte message (default 64), waits for the whole echo, checks it byte for byte and
//! sends the next, for `--secs` seconds (default 4; fractions allowed) after a `--warmup`
//! (default 0.5 s). It prints one line:
//! `msgs_per_s=N p50_us=N p99_us=N cpu_us_per_msg=N conns=N msgs=N` (its own CPU time per
//! message, to tell when it rather than the server is the bottleneck) and exits non-zero on a wrong or missing
//! echo. With `--marks` it first prints `measuring` when the measured window opens and
//! `done` when it closes, each line flushed at once, so the server that started it can read
//! its own CPU time over the same window.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// With no echo completed for this long, the server is taken to have stalled.
const STALL: Duration = Duration::from_secs(2);

const USAGE: &str =
    "usage: compare --load ADDR [--conns N] [--secs S] [--warmup S] [--size B] [--marks]";

/// One connection's exchange in flight.
struct Conn {
    stream: TcpStream,
    /// The message in flight (its bytes name the connection and the round).
    sent: Vec<u8>,
    /// Bytes of `sent` written so far.
    written: usize,
    /// Bytes of its echo received (and checked) so far.
    got: usize,
    sent_at: Instant,
    round: u64,
    /// Whether the connection also waits for `EPOLLOUT` (a write that did not fit).
    waits_to_write: bool,
}

/// Runs the load generator with the arguments after `--load`; never returns.
pub fn run(args: &[String]) -> ! {
    let mut addr = None;
    let (mut conns, mut secs, mut warmup, mut size) = (64usize, 4.0f64, 0.5f64, 64usize);
    let mut marks = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match arg.as_str() {
            "--conns" => conns = value().parse().unwrap_or(0),
            "--secs" => secs = value().parse().unwrap_or(0.0),
            "--warmup" => warmup = value().parse().unwrap_or(-1.0),
            "--size" => size = value().parse().unwrap_or(0),
            "--marks" => marks = true,
            other if addr.is_none() && !other.starts_with("--") => addr = Some(other.to_owned()),
            _ => fail(USAGE),
        }
    }
    let Some(addr) = addr else { fail(USAGE) };
    if conns == 0 || size == 0 || !(secs > 0.0 && secs < 1e6) || !(0.0..1e6).contains(&warmup) {
        fail("--conns, --secs and --size must be positive, --warmup not negative");
    }
    raise_fd_limit();
    let window = Window {
        warmup: Duration::from_secs_f64(warmup),
        measure: Duration::from_secs_f64(secs),
        marks,
    };
    match drive(&addr, conns, &window, size) {
        Ok(line) => {
            println!("{line}");
            std::process::exit(0)
        }
        Err(err) => fail(&format!("load against {addr}: {err}")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2)
}

/// Raises this process's soft limit on open files to its hard limit (up to 1 << 20), so a
/// thousand connections fit on either end; a limit that cannot be raised is left as it is.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the kernel to fill and then to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            let wanted = limit.rlim_max.min(1 << 20);
            if limit.rlim_cur < wanted {
                limit.rlim_cur = wanted;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

/// When the measured window opens and how long it stays open.
struct Window {
    warmup: Duration,
    measure: Duration,
    marks: bool,
}

/// CPU time (user + system) of this whole process so far, in microseconds.
pub fn cpu_us() -> f64 {
    // SAFETY: an all-zero rusage is valid, and the kernel fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is writable for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

fn mark(enabled: bool, word: &str) -> std::io::Result<()> {
    if enabled {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{word}")?;
        out.flush()?;
    }
    Ok(())
}

/// An epoll instance.
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> std::io::Result<Epoll> {
        // SAFETY: no pointers; a non-negative result is a fresh descriptor we now own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds (`EPOLL_CTL_ADD`) or changes (`EPOLL_CTL_MOD`) the interest in `fd`, tagged
    /// with the connection's index.
    fn control(
        &self,
        op: libc::c_int,
        fd: i32,
        events: libc::c_int,
        index: usize,
    ) -> std::io::Result<()> {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: index as u64,
        };
        // SAFETY: `event` is valid for the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut event) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout`; returns how many entries of `events` were filled.
    fn wait(&self, events: &mut [libc::epoll_event], timeout: Duration) -> std::io::Result<usize> {
        let millis = timeout.as_micros().div_ceil(1000).clamp(1, 1000) as libc::c_int;
        // SAFETY: `events` is a writable array of `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                millis,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(n as usize)
    }
}

impl Conn {
    /// Fills the next message and starts sending it.
    fn send_next(&mut self, index: usize, epoll: &Epoll) -> std::io::Result<()> {
        self.round += 1;
        let seed = (index as u64).wrapping_mul(0x9E37_79B9) ^ self.round;
        for (i, byte) in self.sent.iter_mut().enumerate() {
            *byte = (seed >> (8 * (i % 8))) as u8 ^ i as u8;
        }
        self.written = 0;
        self.got = 0;
        self.sent_at = Instant::now();
        self.flush(index, epoll)
    }

    /// Writes what the socket takes of the message; asks for `EPOLLOUT` while some is left.
    fn flush(&mut self, index: usize, epoll: &Epoll) -> std::io::Result<()> {
        while self.written < self.sent.len() {
            match self.stream.write(&self.sent[self.written..]) {
                Ok(0) => return Err(std::io::Error::other("the server stopped reading")),
                Ok(n) => self.written += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    if !self.waits_to_write {
                        self.waits_to_write = true;
                        let events = libc::EPOLLIN | libc::EPOLLOUT;
                        epoll.control(
                            libc::EPOLL_CTL_MOD,
                            self.stream.as_raw_fd(),
                            events,
                            index,
                        )?;
                    }
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        }
        if self.waits_to_write {
            self.waits_to_write = false;
            epoll.control(
                libc::EPOLL_CTL_MOD,
                self.stream.as_raw_fd(),
                libc::EPOLLIN,
                index,
            )?;
        }
        Ok(())
    }

    /// Reads and checks what has arrived of the echo; true once all of it has.
    fn receive(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let size = self.sent.len();
        while self.got < size {
            match self.stream.read(&mut buf[..size - self.got]) {
                Ok(0) => return Err(std::io::Error::other("the server closed a connection")),
                Ok(n) => {
                    if buf[..n] != self.sent[self.got..self.got + n] {
                        return Err(std::io::Error::other("an echo differs from its message"));
                    }
                    self.got += n;
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }
}

/// The closed loop; returns the result line.
fn drive(addr: &str, conns: usize, window: &Window, size: usize) -> std::io::Result<String> {
    let epoll = Epoll::new()?;
    let mut all: Vec<Conn> = (0..conns)
        .map(|index| {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            epoll.control(
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                libc::EPOLLIN,
                index,
            )?;
            Ok(Conn {
                stream,
                sent: vec![0; size],
                written: 0,
                got: 0,
                sent_at: Instant::now(),
                round: 0,
                waits_to_write: false,
            })
        })
        .collect::<std::io::Result<_>>()?;
    for (index, conn) in all.iter_mut().enumerate() {
        conn.send_next(index, &epoll)?;
    }
    let opens = Instant::now() + window.warmup;
    let closes = opens + window.measure;
    let mut measuring = false;
    let mut cpu_opened = 0.0;
    let mut last_echo = Instant::now();
    // Round trips completed inside the window, in nanoseconds.
    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 20);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.min(1024)];
    let mut buf = vec![0u8; size];
    loop {
        let now = Instant::now();
        if !measuring && now >= opens {
            measuring = true;
            cpu_opened = cpu_us();
            mark(window.marks, "measuring")?;
        }
        if now >= closes {
            break;
        }
        if now.duration_since(last_echo) > STALL {
            return Err(std::io::Error::other(format!(
                "no echo for {STALL:?}: the server stalled"
            )));
        }
        let next = if measuring { closes } else { opens };
        let ready = epoll.wait(&mut events, next - now)?;
        for event in &events[..ready] {
            let (flags, index) = (event.events, event.u64 as usize);
            let conn = &mut all[index];
            if flags & libc::EPOLLOUT as u32 != 0 {
                conn.flush(index, &epoll)?;
            }
            if flags & !(libc::EPOLLOUT as u32) == 0 || !conn.receive(&mut buf)? {
                continue;
            }
            let done = Instant::now();
            last_echo = done;
            if done >= opens && done < closes {
                latencies.push(done.duration_since(conn.sent_at).as_nanos() as u64);
            }
            conn.send_next(index, &epoll)?;
        }
    }
    let cpu = cpu_us() - cpu_opened;
    mark(window.marks, "done")?;
    let count = latencies.len();
    if count == 0 {
        return Err(std::io::Error::other("no message completed"));
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((count as f64 * q) as usize).min(count - 1)] as f64 / 1e3;
    Ok(format!(
        "msgs_per_s={:.0} p50_us={:.1} p99_us={:.1} cpu_us_per_msg={:.2} conns={conns} msgs={count}",
        count as f64 / window.measure.as_secs_f64(),
        at(0.50),
        at(0.99),
        cpu / count as f64,
    ))
}
