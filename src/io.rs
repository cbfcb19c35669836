//! std's [`std::io`], re-exported so `use greenring::io` can replace `use std::io`.
//!
//! The traits (`Read`, `Write`, `Seek`, `BufRead`), the adapters (`BufReader`, `BufWriter`,
//! `Cursor`, `copy`, ...) and the error types are std's, and they work on greenring's
//! files and sockets, whose `read` and `write` park only the calling green thread.
//!
//! The standard streams are std's too: a `stdin().read_line` (or a write to a full pipe on
//! stdout) blocks the worker's OS thread while it waits. Read stdin from
//! [`spawn_blocking`](crate::spawn_blocking) in a program that must keep its green threads
//! running meanwhile.
//!
//! ```
//! use greenring::io::{BufRead, BufReader, Cursor};
//!
//! let lines: Vec<String> = BufReader::new(Cursor::new("a\nb\n"))
//!     .lines()
//!     .collect::<greenring::io::Result<_>>()?;
//! assert_eq!(lines, ["a", "b"]);
//! # Ok::<(), std::io::Error>(())
//! ```

pub use std::io::*;
