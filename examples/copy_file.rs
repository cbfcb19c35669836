//! Copies a file with greenring::fs: reads and writes park the green thread on io_uring.
//!
//! ```text
//! cargo run --release --example copy_file -- SOURCE DESTINATION
//! ```

use std::io::{self, Read, Write};
use std::time::Instant;

use greenring::fs::File;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, destination] = args.as_slice() else {
        eprintln!("usage: copy_file SOURCE DESTINATION");
        std::process::exit(2);
    };
    let (source, destination) = (source.clone(), destination.clone());
    let start = Instant::now();
    let copied = greenring::spawn(move || -> io::Result<u64> {
        let mut from = File::open(&source)?;
        let mut to = File::create(&destination)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n])?;
            total += n as u64;
        }
        to.sync_all()?;
        Ok(total)
    })
    .join()
    .expect("the copy does not panic")?;
    println!(
        "copied {copied} bytes in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
