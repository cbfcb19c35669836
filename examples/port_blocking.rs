//! A blocking key-value server, ported from std to greenring by changing its imports only.
//!
//! The protocol is one command per line: `SET key value`, `GET key`, `DEL key`, `QUIT`.
//! Every change is appended to a log file, replayed at start-up. One thread per connection,
//! a `Mutex<HashMap>` for the data, a `Mutex<File>` for the log: plain blocking code.
//!
//! ```text
//! cargo run --release --example port_blocking                        # green threads
//! cargo run --release --example port_blocking --features port-std    # std threads
//! cargo run --release --example port_blocking -- 127.0.0.1:7878 kv.log   # serve
//! ```
//!
//! Without arguments it runs a self-test: 200 concurrent clients, then a restart that
//! replays the log. The `rt` module below is the whole port: the two variants differ there
//! and nowhere else.

#[cfg(not(feature = "port-std"))]
mod rt {
    pub use greenring::fs::OpenOptions;
    pub use greenring::net::{TcpListener, TcpStream};
    pub use greenring::sync::Mutex;
    pub use greenring::thread::spawn;
    pub const NAME: &str = "greenring green threads";
}

#[cfg(feature = "port-std")]
mod rt {
    pub use std::fs::OpenOptions;
    pub use std::net::{TcpListener, TcpStream};
    pub use std::sync::Mutex;
    pub use std::thread::spawn;
    pub const NAME: &str = "std OS threads";
}

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rt::{Mutex, OpenOptions, TcpListener, TcpStream};

/// The data and its append-only log.
struct Store<W> {
    data: Mutex<HashMap<String, String>>,
    log: Mutex<W>,
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
            (Some("QUIT"), None, None) => return None,
            _ => format!("ERROR bad command: {line}"),
        };
        Some(reply)
    }
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

/// One client: sets its keys, reads them back, deletes every other one.
fn client(addr: SocketAddr, id: usize, keys: usize) -> io::Result<()> {
    let stream = TcpStream::connect(addr)?;
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
    ask("QUIT".to_owned()).map(drop)
}

fn self_test() -> io::Result<()> {
    const CLIENTS: usize = 200;
    const KEYS: usize = 20;
    let path: PathBuf =
        std::env::temp_dir().join(format!("greenring-port-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let store = Arc::new(open_store(&path)?);
    let server_store = Arc::clone(&store);
    rt::spawn(move || serve(listener, server_store));

    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| rt::spawn(move || client(addr, id, KEYS)))
        .collect();
    for handle in clients {
        handle.join().expect("a client panicked")?;
    }
    let elapsed = start.elapsed();
    let live = store.data.lock().unwrap().len();
    assert_eq!(live, CLIENTS * KEYS / 2);

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
