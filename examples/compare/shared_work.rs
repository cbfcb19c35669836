//! Workload bodies shared by the comparison command and `benches/sync.rs` (which includes
//! this file), so both measure the same work.
//!
//! The two blocking-style designs are written once: greenring's API mirrors std's, so the
//! same code runs as green threads (`green`) and as OS threads (`os`), with only the
//! imports changed, as in `examples/port_blocking.rs`. `tasks` has the tokio versions of
//! the ones the bench uses.

/// Threads contending for one mutex.
pub const CONTENDERS: usize = 64;
/// Bytes per echoed message.
pub const MESSAGE: usize = 64;

/// A small deterministic generator of 4 KiB-aligned read offsets below `blocks` blocks.
pub fn next_offset(state: &mut u64, blocks: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % blocks) * 4096
}

macro_rules! blocking_workloads {
    ($name:ident, $api:ident) => {
        pub mod $name {
            use std::io::{Read, Write};
            // std's File reads at an offset through this trait; greenring's has the method.
            #[allow(unused_imports)]
            use std::os::unix::fs::FileExt as _;
            use std::path::Path;
            use std::sync::{Arc, OnceLock};
            use std::time::{Duration, Instant};

            use super::$api::{mpsc, spawn, Barrier, File, Mutex, TcpListener, TcpStream};
            use super::{next_offset, CONTENDERS, MESSAGE};

            /// A start line: a barrier, and the instant the first participant crossed it.
            type Start = Arc<(Barrier, OnceLock<Instant>)>;

            fn start_line(parties: usize) -> Start {
                Arc::new((Barrier::new(parties), OnceLock::new()))
            }

            fn cross(start: &Start) -> Instant {
                start.0.wait();
                *start.1.get_or_init(Instant::now)
            }

            /// `n` round trips of a number through two channels.
            pub fn ping_pong(n: u64) -> Duration {
                let (to_echo, echo_rx) = mpsc::channel::<u64>();
                let (to_main, main_rx) = mpsc::channel::<u64>();
                let echo = spawn(move || {
                    for value in echo_rx {
                        to_main.send(value).unwrap();
                    }
                });
                let start = Instant::now();
                for i in 0..n {
                    to_echo.send(i).unwrap();
                    assert_eq!(main_rx.recv().unwrap(), i);
                }
                let elapsed = start.elapsed();
                drop(to_echo);
                echo.join().unwrap();
                elapsed
            }

            /// [`CONTENDERS`] threads each lock and increment one counter `per` times.
            pub fn contended_mutex(per: u64) -> Duration {
                let counter = Arc::new(Mutex::new(0u64));
                let go = start_line(CONTENDERS + 1);
                let handles: Vec<_> = (0..CONTENDERS)
                    .map(|_| {
                        let (counter, go) = (Arc::clone(&counter), Arc::clone(&go));
                        spawn(move || {
                            cross(&go);
                            for _ in 0..per {
                                *counter.lock().unwrap() += 1;
                            }
                        })
                    })
                    .collect();
                let start = cross(&go);
                handles.into_iter().for_each(|h| h.join().unwrap());
                let elapsed = start.elapsed();
                assert_eq!(*counter.lock().unwrap(), per * CONTENDERS as u64);
                elapsed
            }

            /// `conns` clients each echo a [`MESSAGE`]-byte message `rounds` times through a
            /// server with a thread per connection; the elapsed time and every round trip.
            pub fn tcp_echo(conns: usize, rounds: usize) -> (Duration, Vec<Duration>) {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let (accepted, all_accepted) = mpsc::channel();
                let server = spawn(move || {
                    let handlers: Vec<_> = (0..conns)
                        .map(|_| {
                            let (mut stream, _) = listener.accept().unwrap();
                            spawn(move || {
                                let mut buf = [0u8; MESSAGE];
                                while stream.read_exact(&mut buf).is_ok() {
                                    stream.write_all(&buf).unwrap();
                                }
                            })
                        })
                        .collect();
                    accepted.send(()).unwrap();
                    handlers.into_iter().for_each(|h| h.join().unwrap());
                });
                let streams: Vec<_> = (0..conns)
                    .map(|_| {
                        let stream = TcpStream::connect(addr).unwrap();
                        stream.set_nodelay(true).unwrap();
                        stream
                    })
                    .collect();
                all_accepted.recv().unwrap();
                let go = start_line(conns + 1);
                let clients: Vec<_> = streams
                    .into_iter()
                    .map(|mut stream| {
                        let go = Arc::clone(&go);
                        spawn(move || {
                            cross(&go);
                            let mut buf = [7u8; MESSAGE];
                            let mut latencies = Vec::with_capacity(rounds);
                            for _ in 0..rounds {
                                let sent = Instant::now();
                                stream.write_all(&buf).unwrap();
                                stream.read_exact(&mut buf).unwrap();
                                latencies.push(sent.elapsed());
                            }
                            latencies
                        })
                    })
                    .collect();
                let start = cross(&go);
                let latencies: Vec<Duration> = clients
                    .into_iter()
                    .flat_map(|c| c.join().unwrap())
                    .collect();
                let elapsed = start.elapsed();
                server.join().unwrap();
                (elapsed, latencies)
            }

            /// `readers` threads each read `per` random 4 KiB blocks (of `blocks`) of `path`.
            pub fn file_reads(path: &Path, readers: usize, per: usize, blocks: u64) -> Duration {
                let file = Arc::new(File::open(path).unwrap());
                let go = start_line(readers + 1);
                let handles: Vec<_> = (0..readers)
                    .map(|r| {
                        let (file, go) = (Arc::clone(&file), Arc::clone(&go));
                        spawn(move || {
                            cross(&go);
                            let mut state = 0x9E37_79B9_7F4A_7C15 ^ r as u64;
                            let mut buf = vec![0u8; 4096];
                            for _ in 0..per {
                                let offset = next_offset(&mut state, blocks);
                                assert_eq!(file.read_at(&mut buf, offset).unwrap(), 4096);
                            }
                        })
                    })
                    .collect();
                let start = cross(&go);
                handles.into_iter().for_each(|h| h.join().unwrap());
                start.elapsed()
            }
        }
    };
}

/// greenring's std-shaped API.
mod green_api {
    pub use greenring::fs::File;
    pub use greenring::net::{TcpListener, TcpStream};
    pub use greenring::spawn;
    pub use greenring::sync::{mpsc, Barrier, Mutex};
}

/// std's.
mod os_api {
    pub use std::fs::File;
    pub use std::net::{TcpListener, TcpStream};
    pub use std::sync::{mpsc, Barrier, Mutex};
    pub use std::thread::spawn;
}

blocking_workloads!(green, green_api);
blocking_workloads!(os, os_api);

/// The same ping-pong and mutex work as tokio tasks; call from inside a tokio runtime.
pub mod tasks {
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    use super::CONTENDERS;

    /// `n` round trips of a number through two channels.
    pub async fn ping_pong(n: u64) -> Duration {
        let (to_echo, mut echo_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let (to_main, mut main_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let echo = tokio::spawn(async move {
            while let Some(value) = echo_rx.recv().await {
                to_main.send(value).unwrap();
            }
        });
        let start = Instant::now();
        for i in 0..n {
            to_echo.send(i).unwrap();
            assert_eq!(main_rx.recv().await.unwrap(), i);
        }
        let elapsed = start.elapsed();
        drop(to_echo);
        echo.await.unwrap();
        elapsed
    }

    /// [`CONTENDERS`] tasks each lock and increment one counter `per` times, timed from the
    /// first of them past a start barrier.
    pub async fn contended_mutex(per: u64) -> Duration {
        let counter = Arc::new(tokio::sync::Mutex::new(0u64));
        let go = Arc::new((tokio::sync::Barrier::new(CONTENDERS + 1), OnceLock::new()));
        let handles: Vec<_> = (0..CONTENDERS)
            .map(|_| {
                let (counter, go) = (Arc::clone(&counter), Arc::clone(&go));
                tokio::spawn(async move {
                    go.0.wait().await;
                    go.1.get_or_init(Instant::now);
                    for _ in 0..per {
                        *counter.lock().await += 1;
                    }
                })
            })
            .collect();
        go.0.wait().await;
        let start = *go.1.get_or_init(Instant::now);
        for handle in handles {
            handle.await.unwrap();
        }
        let elapsed = start.elapsed();
        assert_eq!(*counter.lock().await, per * CONTENDERS as u64);
        elapsed
    }
}
