//! Peeking, UDP options, Unix datagram sockets, fd conversions and clones that share their
//! settings, on both I/O backends.

#[path = "support/backends.rs"]
mod backends;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::io::{ErrorKind, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram};
use greenring::Runtime;

const LIMIT: Duration = Duration::from_secs(60);

/// Counts while `f` runs on the same one-worker runtime: more than a few ticks mean `f`
/// parked only its green thread.
fn ticks_during<T: Send + 'static>(
    rt: &Runtime,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, u32) {
    let ticks = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (ticks, stop) = (Arc::clone(&ticks), Arc::clone(&stop));
        rt.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                ticks.fetch_add(1, Ordering::Relaxed);
                greenring::time::sleep(Duration::from_millis(2));
            }
        })
    };
    let value = rt.block_on(move || {
        let value = f();
        stop.store(true, Ordering::Relaxed);
        value
    });
    ticker.join().unwrap();
    (value, ticks.load(Ordering::Relaxed))
}

#[test]
fn tcp_peek_parks_and_leaves_the_data() {
    watchdog::within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut theirs = std::net::TcpStream::connect(addr).unwrap();
            let (ours, _) = listener.accept().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                theirs.write_all(b"peekaboo").unwrap();
                std::thread::sleep(Duration::from_millis(200));
            });
            let ((peeked, read), ticks) = ticks_during(&rt, move || {
                let mut buf = [0; 4];
                let n = ours.peek(&mut buf).unwrap();
                let peeked = buf[..n].to_vec();
                let mut all = [0; 8];
                (&ours).read_exact(&mut all).unwrap();
                (peeked, all.to_vec())
            });
            assert_eq!(peeked, b"peek");
            assert_eq!(read, b"peekaboo");
            assert!(
                ticks >= 10,
                "the peek parked only its green thread ({ticks})"
            );
        }
    });
}

#[test]
fn udp_peek_peek_from_and_options() {
    watchdog::within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            rt.block_on(|| {
                let a = UdpSocket::bind("127.0.0.1:0").unwrap();
                let b = UdpSocket::bind("127.0.0.1:0").unwrap();
                let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
                let sender = greenring::spawn(move || {
                    greenring::time::sleep(Duration::from_millis(50));
                    a.send_to(b"datagram", b_addr).unwrap();
                    a
                });
                let mut buf = [0; 16];
                let (n, from) = b.peek_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&b"datagram"[..], a_addr));
                b.connect(a_addr).unwrap();
                let n = b.peek(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"datagram");
                let (n, _) = b.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"datagram");
                let a = sender.join().unwrap();

                a.set_ttl(17).unwrap();
                assert_eq!(a.ttl().unwrap(), 17);
                a.set_broadcast(true).unwrap();
                assert!(a.broadcast().unwrap());
                a.set_multicast_loop_v4(false).unwrap();
                assert!(!a.multicast_loop_v4().unwrap());
                a.set_multicast_ttl_v4(3).unwrap();
                assert_eq!(a.multicast_ttl_v4().unwrap(), 3);
                let group = Ipv4Addr::new(239, 255, 42, 99);
                if a.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).is_ok() {
                    a.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
                }
            });
        }
    });
}

#[test]
fn unix_datagrams_between_green_threads() {
    watchdog::within(LIMIT, || {
        let dir = std::env::temp_dir().join(format!("greenring-dgram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, rt) in backends::one_worker_runtimes().into_iter().enumerate() {
            let server_path = dir.join(format!("server-{i}"));
            let client_path = dir.join(format!("client-{i}"));
            let _ = std::fs::remove_file(&server_path);
            let _ = std::fs::remove_file(&client_path);
            let ((), ticks) = ticks_during(&rt, move || {
                let server = UnixDatagram::bind(&server_path).unwrap();
                let client = UnixDatagram::bind(&client_path).unwrap();
                let to = server_path.clone();
                let sender = greenring::spawn(move || {
                    greenring::time::sleep(Duration::from_millis(100));
                    client.send_to(b"ping", &to).unwrap();
                    let mut buf = [0; 8];
                    let (n, from) = client.recv_from(&mut buf).unwrap();
                    assert_eq!(&buf[..n], b"pong");
                    assert_eq!(from.as_pathname(), Some(to.as_path()));
                });
                let mut buf = [0; 8];
                let (n, from) = server.peek_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"ping");
                let (n, from2) = server.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"ping");
                assert_eq!(from.as_pathname(), from2.as_pathname());
                server
                    .send_to(b"pong", from.as_pathname().unwrap())
                    .unwrap();
                sender.join().unwrap();

                // An unbound sender's address is unnamed.
                let unbound = UnixDatagram::unbound().unwrap();
                unbound.send_to(b"anon", &server_path).unwrap();
                let (n, from) = server.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"anon");
                assert!(from.is_unnamed());

                // A connected pair, and a read timeout.
                let (a, b) = UnixDatagram::pair().unwrap();
                a.send(b"pair").unwrap();
                assert_eq!(b.peek(&mut buf).unwrap(), 4);
                assert_eq!(b.recv(&mut buf).unwrap(), 4);
                b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let start = Instant::now();
                let err = b.recv(&mut buf).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::WouldBlock);
                assert!(start.elapsed() >= Duration::from_millis(50));
                a.shutdown(std::net::Shutdown::Both).unwrap();
            });
            assert!(ticks >= 10, "the datagram waits parked only their threads");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn clones_share_timeouts_and_blocking_mode() {
    watchdog::within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            rt.block_on(|| {
                let (a, _b) = UnixDatagram::pair().unwrap();
                let clone = a.try_clone().unwrap();
                clone
                    .set_read_timeout(Some(Duration::from_millis(30)))
                    .unwrap();
                assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(30)));
                let mut buf = [0; 4];
                let start = Instant::now();
                assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
                assert!(start.elapsed() >= Duration::from_millis(30));

                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let clone = stream.try_clone().unwrap();
                stream.set_nonblocking(true).unwrap();
                let start = Instant::now();
                let err = (&clone).read(&mut buf).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::WouldBlock);
                assert!(start.elapsed() < Duration::from_secs(1));
                // Both fds wait in the same epoll sets independently once blocking again.
                stream.set_nonblocking(false).unwrap();
                let (mut peer, _) = listener.accept().unwrap();
                peer.write_all(b"xy").unwrap();
                let mut two = [0; 2];
                (&clone).read_exact(&mut two[..1]).unwrap();
                (&stream).read_exact(&mut two[1..]).unwrap();
                assert_eq!(&two, b"xy");
            });
        }
    });
}

#[test]
fn sockets_convert_to_and_from_owned_fds() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fd: OwnedFd = listener.into();
        let listener = TcpListener::from(fd);
        let client = greenring::spawn(move || {
            let stream = TcpStream::connect(addr).unwrap();
            let fd: OwnedFd = stream.into();
            let mut stream = TcpStream::from(fd);
            stream.write_all(b"fd").unwrap();
        });
        let (stream, _) = listener.accept().unwrap();
        let mut stream = TcpStream::from(OwnedFd::from(stream));
        let mut buf = [0; 2];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"fd");
        client.join().unwrap();

        let udp = UdpSocket::from(OwnedFd::from(UdpSocket::bind("127.0.0.1:0").unwrap()));
        assert!(udp.local_addr().is_ok());
        let (a, b) = UnixDatagram::pair().unwrap();
        let a = UnixDatagram::from(OwnedFd::from(a));
        a.send(b"u").unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), 1);
        let (s, _t) = greenring::net::UnixStream::pair().unwrap();
        let _s = greenring::net::UnixStream::from(OwnedFd::from(s));
    });
}

#[test]
fn off_green_threads_the_new_calls_are_stds() {
    watchdog::within(LIMIT, || {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"plain").unwrap();
        let mut buf = [0; 8];
        assert_eq!(b.peek(&mut buf).unwrap(), 5);
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!(n, 5);
        assert!(from.is_unnamed());
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(udp.local_addr().unwrap()).unwrap();
        udp.send(b"self").unwrap();
        assert_eq!(udp.peek(&mut buf).unwrap(), 4);
        assert_eq!(udp.peek_from(&mut buf).unwrap().0, 4);
        assert_eq!(udp.recv(&mut buf).unwrap(), 4);
    });
}
