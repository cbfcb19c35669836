//! Host names in every address argument, resolved on the blocking pool from green threads.

#[path = "support/backends.rs"]
mod backends;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::io::{Read, Write};
use std::time::Duration;

use greenring::net::{TcpListener, TcpStream, UdpSocket};
use greenring::Runtime;

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn tcp_connects_to_localhost_by_name() {
    watchdog::within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            rt.block_on(|| {
                let listener = TcpListener::bind("localhost:0").unwrap();
                let port = listener.local_addr().unwrap().port();
                let server = greenring::spawn(move || {
                    let (mut stream, _) = listener.accept().unwrap();
                    stream.write_all(b"hi").unwrap();
                });
                // `localhost` may resolve to ::1 first, where nothing listens (bind took
                // its first address): connect tries each address, as std.
                let mut stream = TcpStream::connect(format!("localhost:{port}")).unwrap();
                let mut buf = [0; 2];
                stream.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"hi");
                server.join().unwrap();
            });
        }
    });
}

#[test]
fn udp_binds_and_sends_by_name() {
    watchdog::within(LIMIT, || {
        for rt in backends::one_worker_runtimes() {
            rt.block_on(|| {
                let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
                let port = receiver.local_addr().unwrap().port();
                let sender = UdpSocket::bind(("localhost", 0)).unwrap();
                let target = if sender.local_addr().unwrap().is_ipv4() {
                    format!("localhost:{port}")
                } else {
                    // Bound to ::1: send to the receiver's own address family instead.
                    return;
                };
                sender.send_to(b"by name", target.as_str()).unwrap();
                let mut buf = [0; 16];
                let (n, from) = receiver.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"by name");
                assert_eq!(from, sender.local_addr().unwrap());
                sender.connect(target).unwrap();
                sender.send(b"connected").unwrap();
                let n = receiver.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"connected");
            });
        }
    });
}

#[test]
fn a_failed_resolution_is_stds_error() {
    watchdog::within(LIMIT, || {
        let name = "greenring-no-such-host.invalid:80";
        let std_kind = std::net::TcpStream::connect(name).unwrap_err().kind();
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (tcp, udp) = rt.block_on(move || {
            let tcp = TcpStream::connect(name).unwrap_err();
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let udp = socket.send_to(b"x", name).unwrap_err();
            (tcp, udp)
        });
        assert_eq!(tcp.kind(), std_kind, "{tcp}");
        assert_eq!(udp.kind(), std_kind, "{udp}");
        // And a malformed address is InvalidInput, as with std.
        let rt2 = Runtime::builder().worker_threads(1).build().unwrap();
        let err = rt2.block_on(|| TcpStream::connect("no port here").unwrap_err());
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn off_green_threads_names_resolve_as_std() {
    watchdog::within(LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
        let socket = UdpSocket::bind("localhost:0").unwrap();
        assert!(socket.local_addr().unwrap().ip().is_loopback());
    });
}
