//! A minimal HTTP/1.1 server with keep-alive: one green thread per connection.
//!
//! ```text
//! cargo run --release --example http_hello -- [ADDRESS]      (default 127.0.0.1:8080)
//! curl http://127.0.0.1:8080/
//! ```
//!
//! It answers every request with "Hello, world!", and closes a connection after a request
//! that says `Connection: close`, or at HTTP/1.0 without keep-alive.

use std::io::{self, BufRead, BufReader, Write};

use greenring::net::{TcpListener, TcpStream};

/// Serves one connection until the client closes it or asks to.
fn serve(stream: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(&stream);
    let mut writer = &stream;
    let mut line = String::new();
    loop {
        // Request line.
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let http10 = line.trim_end().ends_with("HTTP/1.0");
        let mut keep_alive = !http10;
        // Headers, up to the blank line.
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
                    let value = value.trim();
                    keep_alive = if value.eq_ignore_ascii_case("close") {
                        false
                    } else {
                        keep_alive || value.eq_ignore_ascii_case("keep-alive")
                    };
                }
            }
        }
        let body = "Hello, world!\n";
        // One write per response: `write!` straight to the socket would send each piece
        // separately, and Nagle's algorithm would hold the later ones for the client's
        // delayed ACK (40 ms per request).
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        writer.write_all(response.as_bytes())?;
        if !keep_alive {
            return Ok(());
        }
    }
}

fn main() -> io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(&address)?;
    println!("serving http://{}/", listener.local_addr()?);
    greenring::spawn(move || {
        for stream in listener.incoming().flatten() {
            greenring::spawn(move || {
                let _ = serve(stream);
            });
        }
    })
    .join()
    .expect("the accept loop does not panic");
    Ok(())
}
