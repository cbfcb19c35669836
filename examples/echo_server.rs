//! A TCP echo server: one green thread per connection, plain blocking code.
//!
//! ```text
//! cargo run --release --example echo_server -- [ADDRESS]     (default 127.0.0.1:7878)
//! ```

use std::io::{Read, Write};

use greenring::net::TcpListener;

fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".to_owned());
    let listener = TcpListener::bind(&address)?;
    println!("echoing on {}", listener.local_addr()?);
    greenring::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = match stream {
                Ok(stream) => stream,
                Err(err) => {
                    eprintln!("accept failed: {err}");
                    continue;
                }
            };
            greenring::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    })
    .join()
    .expect("the accept loop does not panic");
    Ok(())
}
