//! UDP and Unix domain sockets through the reactor.

use std::io::{self, Read, Write};
use std::time::Duration;

use greenring::net::{UdpSocket, UnixListener, UnixStream};
use greenring::Runtime;

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn udp_send_to_recv_from_and_connected() {
    let rt = runtime();
    rt.block_on(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let server = greenring::spawn(move || {
            let mut buf = [0u8; 64];
            for _ in 0..100 {
                let (n, from) = b.recv_from(&mut buf).unwrap();
                assert_eq!(from, a_addr);
                b.send_to(&buf[..n], from).unwrap();
            }
        });
        let mut buf = [0u8; 64];
        for i in 0..100u32 {
            let message = format!("datagram {i}");
            a.send_to(message.as_bytes(), b_addr).unwrap();
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (message.as_bytes(), b_addr));
        }
        server.join().unwrap();

        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(a_addr).unwrap();
        c.send(b"connected").unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"connected");
        assert_eq!(c.peer_addr().unwrap(), a_addr);
    });
}

#[test]
fn udp_read_timeout() {
    let rt = runtime();
    rt.block_on(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let err = socket.recv_from(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(
            socket.set_read_timeout(Some(Duration::ZERO)).is_err(),
            "zero is rejected, as std"
        );
    });
}

#[test]
fn unix_stream_echo_and_pair() {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("greenring-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    rt.spawn(move || {
        for stream in listener.incoming().take(10) {
            let mut stream = stream.unwrap();
            greenring::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    stream.write_all(&buf[..n]).unwrap();
                }
            });
        }
    });
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let path = path.clone();
            rt.spawn(move || {
                let mut stream = UnixStream::connect(&path).unwrap();
                let message = format!("unix client {i}");
                stream.write_all(message.as_bytes()).unwrap();
                let mut back = vec![0; message.len()];
                stream.read_exact(&mut back).unwrap();
                assert_eq!(back, message.as_bytes());
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    rt.block_on(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"pair").unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pair");
        let long = "x".repeat(200);
        let err = UnixStream::connect(&long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
