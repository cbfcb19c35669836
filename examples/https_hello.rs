//! A minimal HTTPS server: rustls over greenring's `TcpStream`, one green thread per
//! connection, with a self-signed certificate for `localhost` made at start (rcgen).
//!
//! ```text
//! cargo run --release --example https_hello -- [ADDRESS]      (default 127.0.0.1:8443)
//! curl -k https://127.0.0.1:8443/
//! ```
//!
//! rustls is plain blocking code over any `Read + Write`: `rustls::StreamOwned` reads and
//! writes the `TcpStream`, whose calls park only the connection's green thread. The
//! handshake and the record layer run on the worker; nothing here knows about green
//! threads. `tests/https.rs` runs this server in-process against a rustls client (and
//! `curl -k` when installed).

use std::io::{self, BufRead, BufReader, Write};
use std::sync::Arc;

use greenring::net::{TcpListener, TcpStream};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The body of every response.
pub const BODY: &str = "Hello over TLS!\n";

/// A fresh self-signed certificate for `localhost` and `127.0.0.1`, and a server
/// configuration using it (the `ring` provider). The certificate is returned for clients
/// to trust.
pub fn self_signed_config() -> io::Result<(Arc<ServerConfig>, CertificateDer<'static>)> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .map_err(io::Error::other)?;
    Ok((Arc::new(config), cert))
}

/// Accepts connections forever, each served by a green thread of its own.
pub fn serve(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<()> {
    for stream in listener.incoming() {
        let stream = stream?;
        let config = Arc::clone(&config);
        greenring::spawn(move || {
            if let Err(err) = connection(stream, config) {
                eprintln!("https_hello: connection: {err}");
            }
        });
    }
    Ok(())
}

/// Serves one TLS connection: answers each request until the client closes or asks to.
fn connection(stream: TcpStream, config: Arc<ServerConfig>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let tls = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut reader = BufReader::new(StreamOwned::new(tls, stream));
    let mut line = String::new();
    loop {
        // Request line, then headers up to the blank line.
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut keep_alive = !line.trim_end().ends_with("HTTP/1.0");
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("connection") {
                    keep_alive = !value.trim().eq_ignore_ascii_case("close");
                }
            }
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{BODY}",
            BODY.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        let tls = reader.get_mut();
        tls.write_all(response.as_bytes())?;
        tls.flush()?;
        if !keep_alive {
            tls.conn.send_close_notify();
            tls.flush()?;
            return Ok(());
        }
    }
}

#[allow(dead_code)] // the test includes this file for `serve` and has its own `main`
fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8443".to_owned());
    let (config, _) = self_signed_config()?;
    let listener = TcpListener::bind(addr.as_str())?;
    println!(
        "https_hello: serving https://{} (self-signed for localhost; try curl -k)",
        listener.local_addr()?
    );
    greenring::Runtime::builder()
        .build()?
        .block_on(move || serve(listener, config))
}
