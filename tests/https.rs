//! The HTTPS example's server, run in-process on green threads, against a rustls client
//! that trusts its self-signed certificate (and `curl -k` when installed).

#[path = "../examples/https_hello.rs"]
mod https_hello;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use greenring::net::{TcpListener, TcpStream};
use greenring::{IoBackend, Runtime};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const LIMIT: Duration = Duration::from_secs(120);

/// Starts the example's server on `rt`; its address and certificate.
fn start(rt: &Runtime) -> (SocketAddr, CertificateDer<'static>) {
    let (config, cert) = https_hello::self_signed_config().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(move || https_hello::serve(listener, config));
    (addr, cert)
}

fn client_config(cert: CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One request over TLS (verifying the certificate for `localhost`); the whole response.
fn get(addr: SocketAddr, config: Arc<ClientConfig>) -> String {
    let name = ServerName::try_from("localhost").unwrap();
    let tls = ClientConnection::new(config, name).unwrap();
    let mut stream = StreamOwned::new(tls, TcpStream::connect(addr).unwrap());
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn rustls_clients_on_green_threads_get_the_answer() {
    watchdog::within(LIMIT, || {
        for backend in [IoBackend::IoUring, IoBackend::Epoll] {
            // One worker: server and clients share it, so every TLS read and write must
            // park only its own green thread.
            let rt = Runtime::builder()
                .worker_threads(1)
                .io_backend(backend)
                .build()
                .unwrap();
            let (addr, cert) = start(&rt);
            let config = client_config(cert);
            let clients: Vec<_> = (0..20)
                .map(|_| {
                    let config = Arc::clone(&config);
                    rt.spawn(move || get(addr, config))
                })
                .collect();
            for client in clients {
                let response = client.join().unwrap();
                assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
                assert!(response.ends_with(https_hello::BODY), "{response}");
            }
        }
    });
}

#[test]
fn an_os_thread_client_and_a_wrong_name_is_refused() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let (addr, cert) = start(&rt);
        let config = client_config(cert);
        // Off green threads the same client code is plain blocking I/O.
        let response = get(addr, Arc::clone(&config));
        assert!(response.ends_with(https_hello::BODY), "{response}");
        // A name the certificate does not cover fails verification.
        let name = ServerName::try_from("example.com").unwrap();
        let tls = ClientConnection::new(config, name).unwrap();
        let mut stream = StreamOwned::new(tls, std::net::TcpStream::connect(addr).unwrap());
        let err = stream.write_all(b"GET / HTTP/1.1\r\n\r\n").and_then(|()| {
            let mut buf = Vec::new();
            stream.read_to_end(&mut buf).map(drop)
        });
        assert!(err.is_err(), "the handshake must fail for a wrong name");
    });
}

#[test]
fn curl_accepts_the_server() {
    let curl_present = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !curl_present {
        println!("curl is not installed: skipping the curl -k check");
        return;
    }
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (addr, _) = start(&rt);
        // curl runs as a greenring child process: the wait parks only this green thread
        // while the server's green threads answer on the same worker.
        let output = rt.block_on(move || {
            greenring::process::Command::new("curl")
                .args(["-k", "-s", "--max-time", "30"])
                .arg(format!("https://{addr}/"))
                .output()
                .unwrap()
        });
        assert!(output.status.success(), "curl failed: {output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), https_hello::BODY);
    });
}
