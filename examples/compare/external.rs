//! Rows measured the way a server's users see it: the server runs in this process (a green
//! thread, a tokio task or an OS thread per connection; for `greenring-hooks`, a green
//! thread per connection running std's `net` through the `hooks` feature), the client in
//! another one, so the client's work is neither batched with the server's (io_uring would do
//! both ends of an in-process exchange in one system call) nor counted in the server's CPU
//! time.
//!
//! - TCP echo: this program re-executed as `compare --load ADDR --marks ...` (see `load.rs`,
//!   one OS thread over epoll); the server reads its own CPU time when the load generator
//!   says the measured window opens and when it closes.
//! - HTTP: `wrk -t1 -c64 --latency` against the HTTP server of `examples/http_hello.rs`,
//!   with connections kept alive (`http_wrk`) or one per request (`http_wrk_close`); the
//!   server's CPU time is read around the wrk run.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::load::cpu_us;
use crate::workloads::{Env, Impl, Sample};

/// What a server does with each connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    /// Writes back whatever it reads.
    Echo,
    /// Answers HTTP/1.1 requests with a fixed body, keeping the connection alive unless the
    /// client asks to close it.
    Http,
}

/// Echoes one connection until the client closes it (as `examples/echo_server.rs`).
fn echo<S>(stream: S)
where
    for<'a> &'a S: Read + Write,
{
    let mut buf = [0u8; 16 * 1024];
    loop {
        match (&stream).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if (&stream).write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether the connection stays open after this header, given what was decided so far
/// (the rule of `examples/http_hello.rs`).
fn keep_alive_after(header: &str, keep_alive: bool) -> bool {
    match header.split_once(':') {
        Some((name, value)) if name.eq_ignore_ascii_case("connection") => {
            let value = value.trim();
            if value.eq_ignore_ascii_case("close") {
                false
            } else {
                keep_alive || value.eq_ignore_ascii_case("keep-alive")
            }
        }
        _ => keep_alive,
    }
}

/// The whole response, built for one `write_all` (see `examples/http_hello.rs`: separate
/// writes would wait for the client's delayed ACK).
fn response(keep_alive: bool) -> String {
    let body = "Hello, world!\n";
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
}

/// Serves HTTP on one connection until the client closes it or asks to: the server of
/// `examples/http_hello.rs`, for green threads and OS threads alike.
fn http<S>(stream: S) -> io::Result<()>
where
    for<'a> &'a S: Read + Write,
{
    let mut reader = BufReader::new(&stream);
    let mut writer = &stream;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut keep_alive = !line.trim_end().ends_with("HTTP/1.0");
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            keep_alive = keep_alive_after(header, keep_alive);
        }
        writer.write_all(response(keep_alive).as_bytes())?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// The same HTTP server as a tokio task.
async fn http_task(mut stream: tokio::net::TcpStream) -> io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (reader, mut writer) = stream.split();
    let mut reader = tokio::io::BufReader::new(reader);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut keep_alive = !line.trim_end().ends_with("HTTP/1.0");
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            keep_alive = keep_alive_after(header, keep_alive);
        }
        writer.write_all(response(keep_alive).as_bytes()).await?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// The echo server as a tokio task.
async fn echo_task(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Gives a std or tokio listener greenring's accept backlog
/// ([`greenring::net::LISTEN_BACKLOG`]) instead of the 128 both use: with 128, a thousand
/// connections arriving at once overflow the accept queue whenever the accepting thread
/// (task) lags, and each dropped handshake waits for the kernel's one-second retry.
fn same_backlog(listener: &impl AsRawFd) {
    // SAFETY: listen() on a socket the caller owns; a second call only changes the backlog.
    let result = unsafe { libc::listen(listener.as_raw_fd(), greenring::net::LISTEN_BACKLOG) };
    assert_eq!(result, 0, "listen: {}", io::Error::last_os_error());
}

/// The accept loop of the servers written with `std::net` (on OS threads, and on green
/// threads through the hooks): accepts until `stopped` is set, serves each connection on a
/// thread `spawn` starts, joins the finished ones as it goes and the rest at the end.
fn serve_std_net<H>(
    listener: std::net::TcpListener,
    stopped: &AtomicBool,
    service: Service,
    spawn: fn(Box<dyn FnOnce() + Send>) -> H,
    is_finished: fn(&H) -> bool,
    join: fn(H),
) {
    let mut handlers = Handlers::default();
    loop {
        let (stream, _) = listener.accept().expect("accept");
        if stopped.load(Ordering::SeqCst) {
            break;
        }
        for done in handlers.take_finished(is_finished) {
            join(done);
        }
        handlers.push(spawn(Box::new(move || match service {
            Service::Echo => {
                stream.set_nodelay(true).unwrap();
                echo(stream)
            }
            Service::Http => drop(http(stream)),
        })));
    }
    handlers.into_all().into_iter().for_each(join);
}

/// A server running in this process, accepting until told to stop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept_loop: AcceptLoop,
}

enum AcceptLoop {
    Green(greenring::JoinHandle<()>),
    Tokio(tokio::task::JoinHandle<()>),
    Os(std::thread::JoinHandle<()>),
}

impl Server {
    /// Binds 127.0.0.1:0 and starts accepting; one thread (task) per connection.
    fn start(env: &Env, imp: Impl, service: Service) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (bound, addr) = std::sync::mpsc::channel();
        let stopped = Arc::clone(&stop);
        let accept_loop = match imp {
            Impl::Greenring => AcceptLoop::Green(env.greenring.spawn(move || {
                let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
                bound.send(listener.local_addr().unwrap()).unwrap();
                let mut handlers = Handlers::default();
                loop {
                    let (stream, _) = listener.accept().expect("accept");
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    for done in handlers.take_finished(greenring::JoinHandle::is_finished) {
                        done.join().unwrap();
                    }
                    handlers.push(greenring::spawn(move || match service {
                        Service::Echo => {
                            stream.set_nodelay(true).unwrap();
                            echo(stream)
                        }
                        Service::Http => drop(http(stream)),
                    }));
                }
                handlers
                    .into_all()
                    .into_iter()
                    .for_each(|h| h.join().unwrap());
            })),
            Impl::Tokio => AcceptLoop::Tokio(env.tokio.spawn(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                same_backlog(&listener);
                bound.send(listener.local_addr().unwrap()).unwrap();
                let mut handlers = Handlers::default();
                loop {
                    let (stream, _) = listener.accept().await.expect("accept");
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    for done in handlers.take_finished(tokio::task::JoinHandle::is_finished) {
                        done.await.unwrap();
                    }
                    handlers.push(tokio::spawn(async move {
                        match service {
                            Service::Echo => {
                                stream.set_nodelay(true).unwrap();
                                echo_task(stream).await
                            }
                            Service::Http => drop(http_task(stream).await),
                        }
                    }));
                }
                for handler in handlers.into_all() {
                    handler.await.unwrap();
                }
            })),
            Impl::Std => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                same_backlog(&listener);
                bound.send(listener.local_addr().unwrap()).unwrap();
                AcceptLoop::Os(std::thread::spawn(move || {
                    serve_std_net(
                        listener,
                        &stopped,
                        service,
                        std::thread::spawn,
                        std::thread::JoinHandle::is_finished,
                        |h| h.join().unwrap(),
                    )
                }))
            }
            // The greenring server again, written with std's `net` (every call of it goes
            // through the hooks: bind, accept, set_nodelay, read, write_all).
            Impl::GreenringHooks => {
                assert!(imp.built(), "greenring-hooks needs the hooks feature");
                AcceptLoop::Green(env.greenring.spawn(move || {
                    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    same_backlog(&listener);
                    bound.send(listener.local_addr().unwrap()).unwrap();
                    serve_std_net(
                        listener,
                        &stopped,
                        service,
                        greenring::spawn,
                        greenring::JoinHandle::is_finished,
                        |h| h.join().unwrap(),
                    )
                }))
            }
            Impl::Corosensei => unreachable!("no server on corosensei"),
        };
        Server {
            addr: addr.recv().expect("the server binds"),
            stop,
            accept_loop,
        }
    }

    /// Stops accepting (one last connection wakes the accept loop) and waits for every
    /// connection's thread, which end as their clients close.
    fn stop(self, env: &Env) {
        self.stop.store(true, Ordering::SeqCst);
        drop(std::net::TcpStream::connect(self.addr));
        match self.accept_loop {
            AcceptLoop::Green(handle) => handle.join().unwrap(),
            AcceptLoop::Tokio(handle) => env.tokio.block_on(handle).unwrap(),
            AcceptLoop::Os(handle) => handle.join().unwrap(),
        }
    }
}

/// The handles of an accept loop's connection threads (tasks). Under connection churn the
/// loop joins the finished ones as it goes, so it holds about twice its open connections
/// at most (a finished OS thread keeps its stack until joined), and a connection's panic
/// fails the run as soon as it is joined.
struct Handlers<H> {
    /// The open connections', and those finished since the last look.
    handles: Vec<H>,
    /// How many were open at the last look.
    kept: usize,
}

impl<H> Default for Handlers<H> {
    fn default() -> Self {
        Handlers {
            handles: Vec::new(),
            kept: 0,
        }
    }
}

impl<H> Handlers<H> {
    /// The finished handles, for the caller to join, once the list has doubled since the
    /// last look (so the looks cost O(1) per connection).
    fn take_finished(&mut self, finished: impl Fn(&H) -> bool) -> Vec<H> {
        if self.handles.len() < (2 * self.kept).max(64) {
            return Vec::new();
        }
        let (done, open) = std::mem::take(&mut self.handles)
            .into_iter()
            .partition(|handle| finished(handle));
        self.handles = open;
        self.kept = self.handles.len();
        done
    }

    fn push(&mut self, handle: H) {
        self.handles.push(handle);
    }

    /// Every handle, for the loop's end.
    fn into_all(self) -> Vec<H> {
        self.handles
    }
}

/// `key=value` pairs of a result line.
fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// `conns` connections from `compare --load` in another process against an echo server
/// here: messages/s (the headline), p50 and p99 round trips, and the server's CPU time
/// per message over the measured window (and the client's, to show when it saturates).
fn tcp_echo_external(env: &Env, imp: Impl, conns: usize) -> Sample {
    let server = Server::start(env, imp, Service::Echo);
    let mut child = Command::new(std::env::current_exe().expect("this program's path"))
        .args([
            "--load".to_owned(),
            server.addr.to_string(),
            "--conns".to_owned(),
            conns.to_string(),
            "--secs".to_owned(),
            env.sizes.external_secs.to_string(),
            "--warmup".to_owned(),
            env.sizes.external_warmup.to_string(),
            "--marks".to_owned(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the load generator");
    let (mut opened, mut closed, mut result) = (None, None, None);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("read the load generator's output");
        match line.as_str() {
            "measuring" => opened = Some(cpu_us()),
            "done" => closed = Some(cpu_us()),
            _ => result = Some(line),
        }
    }
    let mut errors = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut errors);
    let status = child.wait().expect("wait for the load generator");
    server.stop(env);
    let failed = |why: &str| -> ! {
        panic!(
            "{} echo server, {conns} external connections: {why} ({status}): {}",
            imp.name(),
            errors.trim()
        )
    };
    if !status.success() {
        failed("the load generator failed");
    }
    let (Some(opened), Some(closed), Some(line)) = (opened, closed, result) else {
        failed("the load generator printed no window or no result")
    };
    let value = |key| field(&line, key).unwrap_or_else(|| failed(&format!("no {key} in {line:?}")));
    let msgs = value("msgs");
    Sample {
        value: value("msgs_per_s"),
        extra: vec![
            ("p50_us", value("p50_us")),
            ("p99_us", value("p99_us")),
            ("cpu_us_per_msg", (closed - opened) / msgs),
            ("client_cpu_us_per_msg", value("cpu_us_per_msg")),
        ],
    }
}

pub fn tcp_echo_64(env: &Env, imp: Impl) -> Sample {
    tcp_echo_external(env, imp, 64)
}

pub fn tcp_echo_1k(env: &Env, imp: Impl) -> Sample {
    tcp_echo_external(env, imp, 1000)
}

/// What wrk reported.
#[derive(Debug, PartialEq)]
pub struct WrkStats {
    pub requests: f64,
    pub requests_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// A wrk duration such as `512.00us`, `1.20ms` or `2.00s`, in microseconds.
fn wrk_time_us(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// Reads wrk's `--latency` report; an error for socket errors or non-2xx/3xx responses.
pub fn parse_wrk(text: &str) -> Result<WrkStats, String> {
    let (mut requests, mut requests_per_s, mut p50_us, mut p99_us) = (None, None, None, None);
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("Socket errors:") {
            let counts = line
                .split(',')
                .filter_map(|part| part.split_whitespace().last());
            if counts.into_iter().any(|n| n != "0") {
                return Err(format!("wrk saw socket errors: {line}"));
            }
        } else if line.starts_with("Non-2xx or 3xx responses:") {
            return Err(format!("wrk saw failed requests: {line}"));
        } else if let Some(rate) = line.strip_prefix("Requests/sec:") {
            requests_per_s = rate.trim().parse().ok();
        } else if words.len() >= 3 && words[1] == "requests" && words[2] == "in" {
            requests = words[0].parse().ok();
        } else if words.len() == 2 && words[0] == "50%" {
            p50_us = wrk_time_us(words[1]);
        } else if words.len() == 2 && words[0] == "99%" {
            p99_us = wrk_time_us(words[1]);
        }
    }
    match (requests, requests_per_s, p50_us, p99_us) {
        (Some(requests), Some(requests_per_s), Some(p50_us), Some(p99_us)) if requests > 0.0 => {
            Ok(WrkStats {
                requests,
                requests_per_s,
                p50_us,
                p99_us,
            })
        }
        _ => Err("no request count, rate or latency distribution in wrk's report".to_owned()),
    }
}

fn wrk(addr: SocketAddr, secs: u64, connections: Connections) -> String {
    let mut command = Command::new("wrk");
    command.args(["-t1", "-c64", &format!("-d{secs}s"), "--latency"]);
    if let Connections::OnePerRequest = connections {
        command.args(["-H", "Connection: close"]);
    }
    let output = command
        .arg(format!("http://{addr}/"))
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!(
            "wrk failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    text
}

/// `wrk -t1 -c64 --latency` against the keep-alive HTTP server: requests/s (the headline),
/// p50 and p99 from wrk's latency distribution, and the server's CPU time per request over
/// the measured wrk run (its connection set-up included).
pub fn http_wrk(env: &Env, imp: Impl) -> Sample {
    wrk_against_http(env, imp, Connections::KeptAlive)
}

/// As [`http_wrk`], with every request on a new connection (`Connection: close`): each one
/// pays a connect, an accept, a new thread (task) and a close.
pub fn http_wrk_close(env: &Env, imp: Impl) -> Sample {
    wrk_against_http(env, imp, Connections::OnePerRequest)
}

/// How wrk's requests use connections.
#[derive(Clone, Copy)]
enum Connections {
    KeptAlive,
    OnePerRequest,
}

fn wrk_against_http(env: &Env, imp: Impl, connections: Connections) -> Sample {
    let server = Server::start(env, imp, Service::Http);
    if env.sizes.wrk_warmup_secs > 0 {
        let text = wrk(server.addr, env.sizes.wrk_warmup_secs, connections);
        if let Err(err) = parse_wrk(&text) {
            panic!("{} HTTP server, wrk warm-up: {err}\n{text}", imp.name());
        }
    }
    let before = cpu_us();
    let text = wrk(server.addr, env.sizes.wrk_secs, connections);
    let after = cpu_us();
    server.stop(env);
    let stats = parse_wrk(&text)
        .unwrap_or_else(|err| panic!("{} HTTP server under wrk: {err}\n{text}", imp.name()));
    Sample {
        value: stats.requests_per_s,
        extra: vec![
            ("p50_us", stats.p50_us),
            ("p99_us", stats.p99_us),
            ("cpu_us_per_req", (after - before) / stats.requests),
        ],
    }
}

/// Whether `program` is an executable file in a directory of `PATH`.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 1s test @ http://127.0.0.1:40000/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.45us  301.10us   8.02ms   91.23%
    Req/Sec   104.21k     3.10k  109.90k    80.00%
  Latency Distribution
     50%  571.00us
     75%  650.00us
     90%  801.00us
     99%    1.52ms
  103711 requests in 1.00s, 11.77MB read
Requests/sec: 103598.41
Transfer/sec:     11.76MB
";

    #[test]
    fn reads_a_wrk_report() {
        let stats = parse_wrk(REPORT).unwrap();
        assert_eq!(stats.requests, 103711.0);
        assert_eq!(stats.requests_per_s, 103598.41);
        assert_eq!(stats.p50_us, 571.0);
        assert!((stats.p99_us - 1520.0).abs() < 1e-6);
        assert_eq!(wrk_time_us("2.00s"), Some(2e6));
    }

    #[test]
    fn rejects_errors_and_missing_numbers() {
        let errors = REPORT.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec",
        );
        assert!(parse_wrk(&errors).unwrap_err().contains("socket errors"));
        let clean = REPORT.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 0, write 0, timeout 0\nRequests/sec",
        );
        assert!(parse_wrk(&clean).is_ok());
        let non_2xx = REPORT.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 12\nRequests/sec",
        );
        assert!(parse_wrk(&non_2xx).is_err());
        assert!(parse_wrk("Running 1s test\n").is_err());
    }

    #[test]
    fn accept_loops_join_finished_connections_as_they_go() {
        // Handles are (id, finished).
        let mut handlers = Handlers::default();
        for id in 0..63 {
            handlers.push((id, id % 2 == 0));
        }
        assert!(
            handlers.take_finished(|h| h.1).is_empty(),
            "too few to look"
        );
        handlers.push((63, false));
        let done = handlers.take_finished(|h| h.1);
        assert_eq!(done.len(), 32);
        assert!(done.iter().all(|h| h.1));
        // 32 open: the next look comes once the list doubles again.
        for id in 64..95 {
            handlers.push((id, true));
        }
        assert!(handlers.take_finished(|h| h.1).is_empty());
        handlers.push((95, true));
        assert_eq!(handlers.take_finished(|h| h.1).len(), 32);
        // Open connections only: the look at 64 finds none finished, and all stay.
        for id in 96..127 {
            handlers.push((id, false));
        }
        handlers.push((127, false));
        assert!(handlers.take_finished(|h| h.1).is_empty());
        let open = handlers.into_all();
        assert_eq!(open.len(), 64);
        assert!(open.iter().all(|h| !h.1));
    }

    #[test]
    fn keep_alive_follows_http_hello() {
        assert!(!keep_alive_after("Connection: close", true));
        assert!(keep_alive_after("connection: Keep-Alive", false));
        assert!(keep_alive_after("Host: x", true));
        assert!(!keep_alive_after("Host: x", false));
    }
}
