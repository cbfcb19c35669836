//! The epoll backend's own cases, on a runtime forced to it (the rest of the suite runs on
//! it too in CI's second pass): several green threads waiting on one fd for different
//! readiness, deadlines, and shutdown.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::net::{TcpListener, TcpStream};
use greenring::{IoBackend, Runtime};

fn epoll_runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(workers)
        .io_backend(IoBackend::Epoll)
        .build()
        .unwrap()
}

/// A connected pair: (greenring end, std end).
fn pair() -> (TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let theirs = std::net::TcpStream::connect(addr).unwrap();
    let (ours, _) = listener.accept().unwrap();
    (ours, theirs)
}

#[test]
fn a_reader_and_a_writer_wait_on_the_same_fd() {
    // One worker, so both green threads register on the same epoll instance and the same
    // fd: the registration must carry both interests, and each wake-up the right thread.
    let rt = epoll_runtime(1);
    let (ours, mut theirs) = pair();
    let ours = Arc::new(ours);
    let reader = {
        let ours = Arc::clone(&ours);
        rt.spawn(move || {
            let mut buf = [0u8; 5];
            (&*ours).read_exact(&mut buf).unwrap();
            buf
        })
    };
    const BIG: usize = 8 << 20;
    let writer = {
        let ours = Arc::clone(&ours);
        // Far more than the socket buffers hold: it waits for writability while the reader
        // waits for readability.
        rt.spawn(move || (&*ours).write_all(&vec![42u8; BIG]).map(|()| BIG))
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(!reader.is_finished() && !writer.is_finished());
    theirs.write_all(b"hello").unwrap();
    // A lost interest would leave the reader waiting forever: fail instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the reader was never woken");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(&reader.join().unwrap(), b"hello");
    let mut drained = vec![0u8; BIG];
    theirs.read_exact(&mut drained).unwrap();
    assert!(drained.iter().all(|&b| b == 42));
    assert_eq!(writer.join().unwrap().unwrap(), BIG);
}

#[test]
fn read_timeouts_expire_and_leave_the_socket_usable() {
    let rt = epoll_runtime(2);
    let (ours, mut theirs) = pair();
    ours.set_read_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    let ours = rt.block_on(move || {
        let start = Instant::now();
        let mut buf = [0u8; 4];
        let err = (&ours).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert!(start.elapsed() >= Duration::from_millis(30));
        ours
    });
    theirs.write_all(b"late").unwrap();
    let got = rt.block_on(move || {
        let mut buf = [0u8; 4];
        (&ours).read_exact(&mut buf).unwrap();
        buf
    });
    assert_eq!(&got, b"late");
}

#[test]
fn shutdown_unwinds_threads_waiting_for_readiness() {
    let rt = epoll_runtime(2);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let acceptor = rt.spawn(move || listener.accept().map(drop));
    let (ours, _theirs) = pair();
    let reader = rt.spawn(move || {
        let mut buf = [0u8; 1];
        (&ours).read(&mut buf)
    });
    std::thread::sleep(Duration::from_millis(30));
    assert!(rt.shutdown_timeout(Duration::from_secs(5)));
    for payload in [acceptor.join().unwrap_err(), reader.join().unwrap_err()] {
        assert!(payload.is::<greenring::runtime::Cancelled>());
    }
}

/// Green threads on both workers accept on one listener; each connection wakes every
/// waiting accepter, and the ones that lose the race must wait again rather than block
/// their worker's OS thread in `accept4` until the next connection (which made a ticker on
/// that worker late by the gap between connections). The listener is non-blocking
/// underneath, so a lost race is `EAGAIN`.
#[test]
fn accepters_racing_for_connections_never_block_their_worker() {
    const CONNECTIONS: usize = 8;
    const GAP: Duration = Duration::from_millis(250);
    let rt = epoll_runtime(2);
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepters: Vec<_> = (0..4)
        .map(|_| {
            let (listener, accepted) = (Arc::clone(&listener), Arc::clone(&accepted));
            rt.spawn(move || {
                while accepted.load(std::sync::atomic::Ordering::SeqCst) < CONNECTIONS {
                    // Each accepter ends once its own accept returns after the last one.
                    let (stream, _) = listener.accept().unwrap();
                    accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    drop(stream);
                }
            })
        })
        .collect();
    // A ticker on each worker, spawned there pinned: the lateness of its 5 ms sleeps.
    let tickers: Vec<_> = (0..2)
        .map(|_| {
            let done = Arc::clone(&accepted);
            greenring::thread::Builder::new()
                .pinned(true)
                .spawn_on(&rt, move || {
                    let mut worst = Duration::ZERO;
                    while done.load(std::sync::atomic::Ordering::SeqCst) < CONNECTIONS {
                        let start = Instant::now();
                        greenring::time::sleep(Duration::from_millis(5));
                        worst = worst.max(start.elapsed().saturating_sub(Duration::from_millis(5)));
                    }
                    worst
                })
                .unwrap()
        })
        .collect();
    for _ in 0..CONNECTIONS {
        std::thread::sleep(GAP);
        drop(std::net::TcpStream::connect(addr).unwrap());
    }
    // The accepters still waiting get one connection each to end on.
    let extra: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    for accepter in accepters {
        accepter.join().unwrap();
    }
    drop(extra);
    for ticker in tickers {
        let worst = ticker.join().unwrap();
        assert!(
            worst < Duration::from_millis(150),
            "a ticker was {worst:?} late: a worker blocked in accept"
        );
    }
}
