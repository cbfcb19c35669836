//! `compare --load ADDR`: a TCP echo load generator meant to run in its own process, so a
//! server is measured as its users see it (an in-process client lets io_uring batch both
//! ends of every exchange).
//!
//! One OS thread drives `--conns` connections (default 64) in a closed loop: each sends a
//! `--size`-byte message (default 64), waits for the whole echo, checks it byte for byte and
//! sends the next, for `--secs` seconds (default 4) after a one-second warm-up. It waits for
//! replies with `poll(2)` over every connection. It prints one line:
//! `msgs_per_s=N p50_us=N p99_us=N conns=N` and exits non-zero on a wrong or missing echo.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// One connection's exchange in flight.
struct Conn {
    stream: TcpStream,
    /// The message in flight (its bytes name the connection and the round).
    sent: Vec<u8>,
    /// Bytes of its echo received so far.
    got: Vec<u8>,
    sent_at: Instant,
    round: u64,
}

impl Conn {
    fn send_next(&mut self, index: usize) -> std::io::Result<()> {
        self.round += 1;
        let seed = (index as u64).wrapping_mul(0x9E37_79B9) ^ self.round;
        for (i, byte) in self.sent.iter_mut().enumerate() {
            *byte = (seed >> (8 * (i % 8))) as u8 ^ i as u8;
        }
        self.got.clear();
        self.sent_at = Instant::now();
        self.stream.write_all(&self.sent)
    }
}

/// Runs the load generator with the arguments after `--load`; never returns.
pub fn run(args: &[String]) -> ! {
    let mut addr = None;
    let (mut conns, mut secs, mut size) = (64usize, 4u64, 64usize);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match arg.as_str() {
            "--conns" => conns = value().parse().unwrap_or(0),
            "--secs" => secs = value().parse().unwrap_or(0),
            "--size" => size = value().parse().unwrap_or(0),
            other if addr.is_none() => addr = Some(other.to_owned()),
            _ => fail("usage: compare --load ADDR [--conns N] [--secs S] [--size B]"),
        }
    }
    let Some(addr) = addr else {
        fail("usage: compare --load ADDR [--conns N] [--secs S] [--size B]")
    };
    if conns == 0 || secs == 0 || size == 0 {
        fail("--conns, --secs and --size must be positive");
    }
    match drive(&addr, conns, Duration::from_secs(secs), size) {
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

/// The closed loop; returns the result line.
fn drive(addr: &str, conns: usize, measure: Duration, size: usize) -> std::io::Result<String> {
    let mut all: Vec<Conn> = (0..conns)
        .map(|_| {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            Ok(Conn {
                stream,
                sent: vec![0; size],
                got: Vec::with_capacity(size),
                sent_at: Instant::now(),
                round: 0,
            })
        })
        .collect::<std::io::Result<_>>()?;
    for (index, conn) in all.iter_mut().enumerate() {
        conn.send_next(index)?;
    }
    let mut fds: Vec<libc::pollfd> = all
        .iter()
        .map(|c| libc::pollfd {
            fd: c.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let warm_up = Instant::now() + Duration::from_secs(1);
    let end = warm_up + measure;
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut buf = vec![0u8; size];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if ready == 0 {
            return Err(std::io::Error::other(
                "no echo for a second: the server stalled",
            ));
        }
        for (index, pfd) in fds.iter_mut().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            pfd.revents = 0;
            let conn = &mut all[index];
            let want = size - conn.got.len();
            let n = conn.stream.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::other("the server closed a connection"));
            }
            conn.got.extend_from_slice(&buf[..n]);
            if conn.got.len() < size {
                continue;
            }
            if conn.got != conn.sent {
                return Err(std::io::Error::other("an echo differs from its message"));
            }
            let done = Instant::now();
            if done >= warm_up {
                latencies.push(done.duration_since(conn.sent_at).as_micros() as u32);
            }
            conn.send_next(index)?;
        }
    }
    let count = latencies.len();
    if count == 0 {
        return Err(std::io::Error::other("no message completed"));
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((count as f64 * q) as usize).min(count - 1)];
    Ok(format!(
        "msgs_per_s={:.0} p50_us={} p99_us={} conns={conns}",
        count as f64 / measure.as_secs_f64(),
        at(0.50),
        at(0.99),
    ))
}
