//! I/O through greenring's reactor beside tokio and std threads, each group in one run:
//!
//! - `tcp_echo`: 64 connections on loopback, 64-byte messages; one iteration is one message
//!   echoed (all 64 clients run concurrently). greenring (server and clients green threads)
//!   vs tokio (tasks) vs std (a thread per connection on both sides).
//! - `file_read_4k`: random 4 KiB reads of a 256 MiB file by 64 concurrent readers; one
//!   iteration is one read. greenring `read_at` vs `tokio::fs` (seek + read) vs 64 std
//!   threads with `pread`. The file is created once and stays in the page cache.
//! - `sleepers`: 10,000 sleepers spawned inside the runtime, all until one deadline 100 ms
//!   ahead (after every spawn is done); one iteration is one batch, and the time reported is the mean lateness of a
//!   wake-up (how long after the deadline it ran).
//!
//! Run: `cargo bench --bench io`. Same worker count (2) for greenring and tokio.

mod common;

use std::io::{Read, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{greenring_rt, tokio_rt};
use criterion::{criterion_group, criterion_main, Criterion};

const CONNECTIONS: usize = 64;
const MESSAGE: usize = 64;
const READERS: usize = 64;
const FILE_SIZE: u64 = 256 << 20;
const SLEEPERS: usize = 10_000;
const SLEEP: Duration = Duration::from_millis(100);

/// Round trips each of `CONNECTIONS` clients makes for `iters` messages in all.
fn per_client(iters: u64) -> u64 {
    iters.div_ceil(CONNECTIONS as u64).max(1)
}

fn tcp_echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_echo");

    let rt = greenring_rt();
    let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            greenring::spawn(move || {
                let mut buf = [0u8; MESSAGE];
                while stream.read_exact(&mut buf).is_ok() {
                    stream.write_all(&buf).unwrap();
                }
            });
        }
    });
    let streams: Vec<_> = (0..CONNECTIONS)
        .map(|_| Arc::new(greenring::net::TcpStream::connect(addr).unwrap()))
        .collect();
    streams.iter().for_each(|s| s.set_nodelay(true).unwrap());
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| {
            let rounds = per_client(iters);
            let start = Instant::now();
            let clients: Vec<_> = streams
                .iter()
                .map(|stream| {
                    let stream = Arc::clone(stream);
                    rt.spawn(move || {
                        let mut buf = [7u8; MESSAGE];
                        for _ in 0..rounds {
                            (&*stream).write_all(&buf).unwrap();
                            (&*stream).read_exact(&mut buf).unwrap();
                        }
                    })
                })
                .collect();
            clients.into_iter().for_each(|c| c.join().unwrap());
            start.elapsed() * iters as u32 / (rounds * CONNECTIONS as u64) as u32
        })
    });

    let tokio = tokio_rt();
    let tokio_streams = tokio.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; MESSAGE];
                    while stream.read_exact(&mut buf).await.is_ok() {
                        stream.write_all(&buf).await.unwrap();
                    }
                });
            }
        });
        let mut streams = Vec::new();
        for _ in 0..CONNECTIONS {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            streams.push(Some(stream));
        }
        streams
    });
    let mut tokio_streams = tokio_streams;
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let rounds = per_client(iters);
            let taken: Vec<_> = tokio_streams
                .iter_mut()
                .map(|s| s.take().unwrap())
                .collect();
            let (elapsed, returned) = tokio.block_on(async move {
                let start = Instant::now();
                let clients: Vec<_> = taken
                    .into_iter()
                    .map(|mut stream| {
                        tokio::spawn(async move {
                            let mut buf = [7u8; MESSAGE];
                            for _ in 0..rounds {
                                stream.write_all(&buf).await.unwrap();
                                stream.read_exact(&mut buf).await.unwrap();
                            }
                            stream
                        })
                    })
                    .collect();
                let mut returned = Vec::new();
                for client in clients {
                    returned.push(client.await.unwrap());
                }
                (start.elapsed(), returned)
            });
            for (slot, stream) in tokio_streams.iter_mut().zip(returned) {
                *slot = Some(stream);
            }
            elapsed * iters as u32 / (rounds * CONNECTIONS as u64) as u32
        })
    });

    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let std_addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in std_listener.incoming() {
            let mut stream = stream.unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; MESSAGE];
                while stream.read_exact(&mut buf).is_ok() {
                    stream.write_all(&buf).unwrap();
                }
            });
        }
    });
    let std_streams: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let stream = std::net::TcpStream::connect(std_addr).unwrap();
            stream.set_nodelay(true).unwrap();
            Arc::new(stream)
        })
        .collect();
    group.bench_function("std_threads", |b| {
        b.iter_custom(|iters| {
            let rounds = per_client(iters);
            let start = Instant::now();
            let clients: Vec<_> = std_streams
                .iter()
                .map(|stream| {
                    let stream = Arc::clone(stream);
                    std::thread::spawn(move || {
                        let mut buf = [7u8; MESSAGE];
                        for _ in 0..rounds {
                            (&*stream).write_all(&buf).unwrap();
                            (&*stream).read_exact(&mut buf).unwrap();
                        }
                    })
                })
                .collect();
            clients.into_iter().for_each(|c| c.join().unwrap());
            start.elapsed() * iters as u32 / (rounds * CONNECTIONS as u64) as u32
        })
    });
    group.finish();
}

/// The 256 MiB file, created once.
fn data_file() -> PathBuf {
    let path = std::env::temp_dir().join("greenring-bench-256m.bin");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(FILE_SIZE) {
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
        for _ in 0..FILE_SIZE >> 20 {
            file.write_all(&chunk).unwrap();
        }
    }
    path
}

/// The `n`-th random 4 KiB-aligned offset of reader `reader`.
fn offset(reader: usize, n: u64) -> u64 {
    let x = (reader as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x.wrapping_mul(0x94D0_49BB_1331_11EB) >> 20) % (FILE_SIZE / 4096) * 4096
}

fn file_read_4k(c: &mut Criterion) {
    let mut group = c.benchmark_group("file_read_4k");
    let path = data_file();

    let rt = greenring_rt();
    let file = Arc::new(greenring::fs::File::open(&path).unwrap());
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| {
            let reads = iters.div_ceil(READERS as u64).max(1);
            let start = Instant::now();
            let readers: Vec<_> = (0..READERS)
                .map(|reader| {
                    let file = Arc::clone(&file);
                    rt.spawn(move || {
                        let mut buf = [0u8; 4096];
                        for n in 0..reads {
                            file.read_at(&mut buf, offset(reader, n)).unwrap();
                        }
                    })
                })
                .collect();
            readers.into_iter().for_each(|r| r.join().unwrap());
            start.elapsed() * iters as u32 / (reads * READERS as u64) as u32
        })
    });

    let tokio = tokio_rt();
    group.bench_function("tokio_fs", |b| {
        b.iter_custom(|iters| {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let reads = iters.div_ceil(READERS as u64).max(1);
            let path = path.clone();
            tokio.block_on(async move {
                let start = Instant::now();
                let readers: Vec<_> = (0..READERS)
                    .map(|reader| {
                        let path = path.clone();
                        tokio::spawn(async move {
                            let mut file = tokio::fs::File::open(&path).await.unwrap();
                            let mut buf = [0u8; 4096];
                            for n in 0..reads {
                                file.seek(SeekFrom::Start(offset(reader, n))).await.unwrap();
                                file.read_exact(&mut buf).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for reader in readers {
                    reader.await.unwrap();
                }
                start.elapsed() * iters as u32 / (reads * READERS as u64) as u32
            })
        })
    });

    let std_file = Arc::new(std::fs::File::open(&path).unwrap());
    group.bench_function("std_threads", |b| {
        b.iter_custom(|iters| {
            let reads = iters.div_ceil(READERS as u64).max(1);
            let start = Instant::now();
            let readers: Vec<_> = (0..READERS)
                .map(|reader| {
                    let file = Arc::clone(&std_file);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        for n in 0..reads {
                            file.read_at(&mut buf, offset(reader, n)).unwrap();
                        }
                    })
                })
                .collect();
            readers.into_iter().for_each(|r| r.join().unwrap());
            start.elapsed() * iters as u32 / (reads * READERS as u64) as u32
        })
    });
    group.finish();
}

/// Spawns `SLEEPERS` sleepers from inside the runtime, all sleeping until one deadline
/// `SLEEP` after the spawns begin, and returns their mean lateness: so the figure is the
/// cost of waking 10,000 timers at once, not of spawning them.
fn sleepers(c: &mut Criterion) {
    let mut group = c.benchmark_group("sleepers");
    group.sample_size(10);
    let rt = greenring_rt();
    group.bench_function("greenring", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    rt.block_on(|| {
                        let deadline = Instant::now() + SLEEP;
                        let handles: Vec<_> = (0..SLEEPERS)
                            .map(|_| {
                                greenring::spawn(move || {
                                    greenring::time::sleep_until(deadline);
                                    Instant::now() - deadline
                                })
                            })
                            .collect();
                        let late: Duration = handles.into_iter().map(|h| h.join().unwrap()).sum();
                        late / SLEEPERS as u32
                    })
                })
                .sum()
        })
    });
    let tokio = tokio_rt();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    tokio.block_on(async {
                        tokio::spawn(async {
                            let deadline = Instant::now() + SLEEP;
                            let handles: Vec<_> = (0..SLEEPERS)
                                .map(|_| {
                                    tokio::spawn(async move {
                                        tokio::time::sleep_until(deadline.into()).await;
                                        Instant::now() - deadline
                                    })
                                })
                                .collect();
                            let mut late = Duration::ZERO;
                            for handle in handles {
                                late += handle.await.unwrap();
                            }
                            late / SLEEPERS as u32
                        })
                        .await
                        .unwrap()
                    })
                })
                .sum()
        })
    });
    group.finish();
}

fn config() -> Criterion {
    common::config(15, Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = tcp_echo, file_read_4k, sleepers
}
criterion_main!(benches);
