//! A blocking key-value server, ported from std to greenring by changing its imports only.
//!
//! The protocol is one command per line: `SET key value`, `GET key`, `DEL key`, `STATS`,
//! `QUIT`. Every change is appended to a log file, replayed at start-up. One thread per
//! connection, a `Mutex<HashMap>` for the data, a `Mutex<File>` for the log: plain blocking
//! code. `STATS` shells out (`wc -c` of the log) and the clients connect by host name
//! (`localhost`), so the port also covers child processes and name resolution.
//!
//! ```text
//! cargo run --release --example port_blocking                        # green threads
//! cargo run --release --example port_blocking --features port-std    # std threads
//! cargo run --release --example port_blocking -- 127.0.0.1:7878 kv.log   # serve
//! ```
//!
//! Without arguments it runs a self-test: 200 concurrent clients, some of which ask for
//! `STATS` meanwhile, then a restart that replays the log. The `rt` module below is the whole port: the two variants differ there
//! and nowhere else.

#[cfg(not(feature = "port-std"))]
mod rt {
    pub use greenring::fs::OpenOptions;
    pub use greenring::net::{TcpListener, TcpStream};
    pub use greenring::process::Command;
    pub use greenring::sync::Mutex;
    pub use greenring::thread::spawn;
    pub const NAME: &str = "greenring green threads";
}

#[cfg(feature = "port-std")]
mod rt {
    pub use std::fs::OpenOptions;
    pub use std::net::{TcpListener, TcpStream};
    pub use std::process::Command;
    pub use std::sync::Mutex;
    pub use std::thread::spawn;
    pub const NAME: &str = "std OS threads";
}

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rt::{Command, Mutex, OpenOptions, TcpListener, TcpStream};

/// The data and its append-only log.
struct Store<W> {
    data: Mutex<HashMap<String, String>>,
    log: Mutex<W>,
    log_path: PathBuf,
}

impl<W: Write> Store<W> {
    fn execute(&self, line: &str) -> Option<String> {
        let mut words = line.splitn(3, ' ');
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("GET"), Some(key), None) => match self.data.lock().unwrap().get(key) {
                Some(value) => format!("VALUE {value}"),
                None => "NONE".to_owned(),
            },
            (Some("SET"), Some(key), Some(value)) => {
                // Log first, then apply, under the data lock so the log order is the
                // order of the changes.
                let mut data = self.data.lock().unwrap();
                if let Err(err) = writeln!(self.log.lock().unwrap(), "SET {key} {value}") {
                    return Some(format!("ERROR {err}"));
                }
                data.insert(key.to_owned(), value.to_owned());
                "OK".to_owned()
            }
            (Some("DEL"), Some(key), None) => {
                let mut data = self.data.lock().unwrap();
                if let Err(err) = writeln!(self.log.lock().unwrap(), "DEL {key}") {
                    return Some(format!("ERROR {err}"));
                }
                match data.remove(key) {
                    Some(_) => "OK".to_owned(),
                    None => "NONE".to_owned(),
                }
            }
            (Some("STATS"), None, None) => {
                let keys = self.data.lock().unwrap().len();
                match file_size(&self.log_path) {
                    Ok(bytes) => format!("STATS keys={keys} log_bytes={bytes}"),
                    Err(err) => format!("ERROR {err}"),
                }
            }
            (Some("QUIT"), None, None) => return None,
            _ => format!("ERROR bad command: {line}"),
        };
        Some(reply)
    }
}

/// The size of the file at `path`, as `wc -c` counts it.
fn file_size(path: &Path) -> io::Result<u64> {
    let output = Command::new("wc").arg("-c").arg(path).output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!("wc failed: {}", output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .split_whitespace()
        .next()
        .and_then(|bytes| bytes.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected wc output: {stdout:?}")))
}

/// Opens the log at `path`, replaying it into a fresh map.
fn open_store(path: &Path) -> io::Result<Store<impl Write>> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut data = HashMap::new();
    for line in text.lines() {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("SET"), Some(key), Some(value)) => {
                data.insert(key.to_owned(), value.to_owned());
            }
            (Some("DEL"), Some(key), None) => {
                data.remove(key);
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("corrupt log line: {line:?}"),
                ))
            }
        }
    }
    Ok(Store {
        data: Mutex::new(data),
        log: Mutex::new(file),
        log_path: path.to_owned(),
    })
}

fn serve_connection<W: Write>(store: &Store<W>, stream: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        match store.execute(line.trim_end()) {
            // One write per reply: `writeln!` would make two small writes, which Nagle's
            // algorithm and delayed ACKs turn into a 40 ms stall.
            Some(reply) => writer.write_all(format!("{reply}\n").as_bytes())?,
            None => return Ok(()),
        }
    }
}

/// Accepts connections forever, one thread each.
fn serve<W: Write + Send + 'static>(listener: TcpListener, store: Arc<Store<W>>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let store = Arc::clone(&store);
                rt::spawn(move || {
                    if let Err(err) = serve_connection(&store, stream) {
                        eprintln!("connection failed: {err}");
                    }
                });
            }
            Err(err) => eprintln!("accept failed: {err}"),
        }
    }
}

/// One client, connecting to `localhost` (resolved by name): sets its keys, reads them
/// back, deletes every other one; every 50th also asks for `STATS`.
fn client(port: u16, id: usize, keys: usize) -> io::Result<()> {
    let stream = TcpStream::connect(format!("localhost:{port}"))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut ask = |command: String| -> io::Result<String> {
        writer.write_all(format!("{command}\n").as_bytes())?;
        let mut reply = String::new();
        reader.read_line(&mut reply)?;
        Ok(reply.trim_end().to_owned())
    };
    for k in 0..keys {
        assert_eq!(ask(format!("SET c{id}-k{k} v{id}-{k}"))?, "OK");
    }
    for k in 0..keys {
        assert_eq!(ask(format!("GET c{id}-k{k}"))?, format!("VALUE v{id}-{k}"));
    }
    for k in (0..keys).step_by(2) {
        assert_eq!(ask(format!("DEL c{id}-k{k}"))?, "OK");
    }
    assert!(ask("FLY me".to_owned())?.starts_with("ERROR"));
    if id % 50 == 0 {
        let stats = ask("STATS".to_owned())?;
        assert!(stats.starts_with("STATS keys="), "{stats}");
    }
    ask("QUIT".to_owned()).map(drop)
}

fn self_test() -> io::Result<()> {
    const CLIENTS: usize = 200;
    const KEYS: usize = 20;
    let path: PathBuf =
        std::env::temp_dir().join(format!("greenring-port-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let store = Arc::new(open_store(&path)?);
    let server_store = Arc::clone(&store);
    rt::spawn(move || serve(listener, server_store));

    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| rt::spawn(move || client(port, id, KEYS)))
        .collect();
    for handle in clients {
        handle.join().expect("a client panicked")?;
    }
    let elapsed = start.elapsed();
    let live = store.data.lock().unwrap().len();
    assert_eq!(live, CLIENTS * KEYS / 2);

    // Once all is quiet, STATS counts what the log file holds.
    let stats = rt::spawn(move || -> io::Result<String> {
        let stream = TcpStream::connect(format!("localhost:{port}"))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        (&stream).write_all(b"STATS\n")?;
        let mut reply = String::new();
        reader.read_line(&mut reply)?;
        Ok(reply.trim_end().to_owned())
    })
    .join()
    .expect("the stats client panicked")?;
    let log_bytes = std::fs::metadata(&path)?.len();
    assert_eq!(stats, format!("STATS keys={live} log_bytes={log_bytes}"));

    // A restart replays the log into the same state.
    let replayed = open_store(&path)?;
    assert_eq!(*replayed.data.lock().unwrap(), *store.data.lock().unwrap());
    std::fs::remove_file(&path)?;
    println!(
        "port_blocking self-test on {}: {CLIENTS} clients x {} requests in {:.1} ms; \
         {live} keys survive a replay of the log",
        rt::NAME,
        KEYS * 2 + KEYS / 2 + 2,
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => self_test(),
        [addr, log] => {
            let listener = TcpListener::bind(addr.as_str())?;
            println!(
                "serving on {} with {} (log {log})",
                listener.local_addr()?,
                rt::NAME
            );
            serve(listener, Arc::new(open_store(Path::new(log))?));
            Ok(())
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: port_blocking [ADDR LOGFILE] (no arguments: self-test)",
        )),
    }
}
