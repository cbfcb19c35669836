//! TCP through the reactor: echo at scale, timeouts, and the buffer invariant.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use greenring::net::{TcpListener, TcpStream};
use greenring::Runtime;

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// Starts an echo server green thread (a green thread per connection); its address.
fn echo_server(rt: &Runtime) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            greenring::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => stream.write_all(&buf[..n]).unwrap(),
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn echo_over_a_thousand_concurrent_connections() {
    let rt = runtime();
    let addr = echo_server(&rt);
    let clients: Vec<_> = (0..1000u32)
        .map(|id| {
            rt.spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                for round in 0..5u32 {
                    let message = format!(
                        "client {id} round {round} {}",
                        "x".repeat((id % 97) as usize)
                    );
                    stream.write_all(message.as_bytes()).unwrap();
                    let mut back = vec![0; message.len()];
                    stream.read_exact(&mut back).unwrap();
                    assert_eq!(back, message.as_bytes());
                }
                id
            })
        })
        .collect();
    for (id, client) in clients.into_iter().enumerate() {
        assert_eq!(client.join().unwrap(), id as u32);
    }
}

#[test]
fn read_timeout_on_a_silent_peer_leaves_the_buffer_alone() {
    let rt = runtime();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = rt.spawn(move || listener.accept().unwrap().0);
    rt.block_on(move || {
        let stream = TcpStream::connect(addr).unwrap();
        let mut peer = peer.join().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert_eq!(
            stream.read_timeout().unwrap(),
            Some(Duration::from_millis(100))
        );

        let mut canary = [0xA5u8; 64];
        let start = Instant::now();
        let err = (&stream).read(&mut canary).unwrap_err();
        let waited = start.elapsed();
        // std on Linux reports an expired SO_RCVTIMEO as EAGAIN: WouldBlock.
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_secs(2),
            "{waited:?}"
        );

        // Data arriving after the timeout must not land in the old buffer: the cancelled
        // op was awaited before `read` returned.
        peer.write_all(b"late data").unwrap();
        greenring::time::sleep(Duration::from_millis(50));
        assert!(
            canary.iter().all(|&b| b == 0xA5),
            "a cancelled read wrote the buffer"
        );

        // The socket still works.
        let mut buf = [0u8; 9];
        (&stream).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late data");
    });
}

#[test]
fn unpark_does_not_end_a_read_early() {
    let rt = runtime();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = rt.spawn(move || listener.accept().unwrap().0);
    let reader = rt.spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        buf
    });
    let mut peer = server.join().unwrap();
    for _ in 0..20 {
        reader.thread().unpark();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!reader.is_finished());
    peer.write_all(b"hello").unwrap();
    assert_eq!(&reader.join().unwrap(), b"hello");
}

#[test]
fn connect_timeout_times_out_against_a_full_backlog() {
    let rt = runtime();
    // A listener nobody accepts from: once its backlog is full, the kernel drops further
    // SYNs and connects hang, all on loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let outcome = rt.block_on(move || {
        let mut held = Vec::new();
        for _ in 0..1000 {
            let start = Instant::now();
            match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(stream) => held.push(stream),
                Err(err) => return Some((err.kind(), start.elapsed(), held.len())),
            }
        }
        None
    });
    drop(listener);
    let (kind, waited, connected) = outcome.expect("some connect eventually hangs");
    assert_eq!(
        kind,
        io::ErrorKind::TimedOut,
        "after {connected} connections"
    );
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn connect_errors_are_std_errors() {
    let rt = runtime();
    rt.block_on(|| {
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = TcpStream::connect(closed).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = TcpStream::connect_timeout(&closed, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // Name resolution fails exactly as std's does.
        let err = TcpStream::connect("no-such-host.invalid:80").unwrap_err();
        let std_err = std::net::TcpStream::connect("no-such-host.invalid:80").unwrap_err();
        assert_eq!(err.kind(), std_err.kind(), "{err:?}");
    });
}

#[test]
fn vectored_io_shutdown_and_clones() {
    let rt = runtime();
    let addr = echo_server(&rt);
    rt.block_on(move || {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        assert!(stream.nodelay().unwrap());
        assert_eq!(stream.peer_addr().unwrap(), addr);
        let writer = stream.try_clone().unwrap();
        let written = (&writer)
            .write_vectored(&[IoSlice::new(b"abc"), IoSlice::new(b"defg")])
            .unwrap();
        assert_eq!(written, 7);
        let (mut first, mut second) = ([0u8; 3], [0u8; 4]);
        let mut got = 0;
        while got < 7 {
            let mut bufs = [
                IoSliceMut::new(&mut first[got.min(3)..]),
                IoSliceMut::new(&mut second[got.saturating_sub(3)..]),
            ];
            got += (&stream).read_vectored(&mut bufs).unwrap();
        }
        assert_eq!((&first, &second), (b"abc", b"defg"));
        writer.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        (&stream).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the server echoes nothing more and closes");
        let std_stream: std::net::TcpStream = stream.into();
        drop(std_stream);
    });
}

#[test]
fn the_same_api_from_a_plain_os_thread() {
    let rt = runtime();
    let addr = echo_server(&rt);
    let stream = TcpStream::connect(addr).unwrap();
    (&stream).write_all(b"from an OS thread").unwrap();
    let mut buf = [0u8; 17];
    (&stream).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from an OS thread");
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let err = (&stream).read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap()
    });
    let (_server_side, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.join().unwrap().local_addr().unwrap());
}

#[test]
fn nonblocking_mode_returns_would_block() {
    let rt = runtime();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    rt.block_on(move || {
        let err = listener.accept().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    });
}

/// Connections waiting in the accept queue of the listening socket on `port` (for LISTEN
/// sockets, the rx_queue column of /proc/net/tcp).
fn accept_queue(port: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = u16::from_str_radix(fields[1].split(':').nth(1)?, 16).ok()?;
        if local_port != port || fields[3] != "0A" {
            return None;
        }
        u32::from_str_radix(fields[4].split(':').nth(1)?, 16).ok()
    })
}

#[test]
fn listeners_queue_a_burst_of_connections() {
    // With std's backlog of 128, a burst of green clients overflowed the accept queue and
    // the extra connections waited a second for the kernel's SYN-ACK retry.
    let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..300)
        .map(|_| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
                .expect("connect to a listener that is not accepting yet")
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let queued = accept_queue(addr.port());
        if queued == Some(300) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "accept queue holds {queued:?} of 300 connections"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(clients);
}

/// A connected pair: a greenring stream and the std stream of its peer.
fn pair() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

#[test]
fn writes_into_a_full_socket_buffer_wait_for_the_reader() {
    let rt = runtime();
    let (ours, mut theirs) = pair();
    let total = 8 << 20;
    let reader = std::thread::spawn(move || {
        // Let the writer fill the socket buffers and park first.
        std::thread::sleep(Duration::from_millis(100));
        let mut received = Vec::with_capacity(total);
        theirs.read_to_end(&mut received).unwrap();
        received
    });
    let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
    let sent = data.clone();
    rt.spawn(move || {
        let mut ours = ours;
        ours.write_all(&sent).unwrap();
    })
    .join()
    .unwrap();
    assert!(
        reader.join().unwrap() == data,
        "the bytes arrive intact and in order"
    );
}

#[test]
fn a_write_timeout_expires_against_a_peer_that_never_reads() {
    let rt = runtime();
    let (ours, theirs) = pair();
    let outcome = rt
        .spawn(move || {
            ours.set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let chunk = vec![0u8; 64 << 10];
            let mut ours = ours;
            let start = Instant::now();
            loop {
                if let Err(err) = ours.write(&chunk) {
                    return (err.kind(), start.elapsed());
                }
                assert!(start.elapsed() < Duration::from_secs(10), "never timed out");
            }
        })
        .join()
        .unwrap();
    drop(theirs);
    assert_eq!(outcome.0, io::ErrorKind::WouldBlock);
    assert!(outcome.1 >= Duration::from_millis(100));
}

#[test]
fn a_thread_whose_sends_never_block_lets_its_worker_run_others() {
    // One worker and no hand-off monitor: only the I/O path can let the other thread in.
    let rt = Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(None)
        .build()
        .unwrap();
    let (ours, mut theirs) = pair();
    let drain = std::thread::spawn(move || io::copy(&mut theirs, &mut io::sink()).unwrap());
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let sends = rt.block_on(move || {
        let other = greenring::spawn(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        let mut ours = ours;
        let mut sends = 0u32;
        // Each send finds room in the socket buffer (the peer drains it), so none has to
        // wait; the other thread must still get its turn long before the cap.
        while !ran.load(std::sync::atomic::Ordering::SeqCst) && sends < 1_000_000 {
            ours.write_all(&[1u8; 64]).unwrap();
            sends += 1;
        }
        other.join().unwrap();
        sends
    });
    drop(rt);
    drain.join().unwrap();
    assert!(sends < 10_000, "the other thread waited for {sends} sends");
}

/// `O_NONBLOCK` as the kernel has it for `fd`.
fn kernel_nonblocking(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: F_GETFL only reads the flags of an open fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}

/// A listener is non-blocking underneath (so no worker ever blocks in `accept4`), but keeps
/// its owner's blocking mode: an OS thread's accept waits for a connection, a non-blocking
/// one returns `WouldBlock`, and the flag goes back as the owner set it when the listener
/// leaves greenring.
#[test]
fn listeners_keep_their_owners_blocking_mode_whatever_they_are_underneath() {
    use std::os::fd::AsRawFd;
    let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(kernel_nonblocking(listener.as_raw_fd()));
    // Blocking mode, off green threads: waits for the connection made 50 ms later.
    let connector = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(addr).unwrap()
    });
    let (_accepted, _) = listener.accept().expect("a blocking accept waits");
    drop(connector.join().unwrap());
    listener.set_nonblocking(true).unwrap();
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    listener.set_nonblocking(false).unwrap();
    // Back to std: blocking, as its owner last set it; a clone still in greenring keeps
    // the socket non-blocking until it leaves too.
    let clone = listener.try_clone().unwrap();
    let std_listener = std::net::TcpListener::from(listener);
    assert!(
        kernel_nonblocking(std_listener.as_raw_fd()),
        "a clone still uses it"
    );
    let std_clone = std::net::TcpListener::from(clone);
    assert!(!kernel_nonblocking(std_clone.as_raw_fd()));
    // A std listener made non-blocking by its owner stays so through greenring.
    std_clone.set_nonblocking(true).unwrap();
    let adopted = greenring::net::TcpListener::from(std_clone);
    assert_eq!(
        adopted.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    let fd: std::os::fd::OwnedFd = adopted.into();
    assert!(kernel_nonblocking(fd.as_raw_fd()));
}
