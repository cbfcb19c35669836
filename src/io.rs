//! std's I/O traits and helpers, and standard streams whose reads and writes park only the
//! calling green thread.
//!
//! Everything of [`std::io`] a port needs is re-exported here (`Read`, `Write`, `BufRead`,
//! `BufReader`, `Cursor`, `Error`, `copy`, ...), so `use std::io::...` becomes
//! `use greenring::io::...`; [`stdin`], [`stdout`] and [`stderr`] are greenring's own:
//!
//! - **Standard input** is read through the worker's reactor (an `IORING_OP_READ` on fd 0,
//!   or a readiness wait on epoll; see [`Stdin`]), into a buffer of greenring's, shared by
//!   every [`Stdin`] handle of the process. It is not std's buffer: a program reads its
//!   input through one of `std::io::stdin()` and `greenring::io::stdin()`, not both.
//! - **Standard output and error** write through std's own handles, on the blocking pool
//!   while only the green thread waits. Output thus keeps std's buffering (stdout
//!   line-buffered, stderr unbuffered) and its order with `println!` and `eprintln!`, and a
//!   full pipe or a slow terminal never holds up the worker. Each write costs a hand-off to
//!   a pool thread (some microseconds): format a whole line and write it at once
//!   (`writeln!` on these handles does). Off green threads they are std's calls.
//!
//! ```
//! use greenring::io::{self, Write};
//!
//! let handle = greenring::spawn(|| {
//!     let mut out = io::stdout().lock();
//!     writeln!(out, "from a green thread")?; // the worker runs others while it is written
//!     out.flush()
//! });
//! handle.join().unwrap()?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{OnceLock, PoisonError};

pub use std::io::{
    copy, empty, read_to_string, repeat, sink, BufRead, BufReader, BufWriter, Bytes, Chain, Cursor,
    Empty, Error, ErrorKind, IntoInnerError, IoSlice, IoSliceMut, IsTerminal, LineWriter, Lines,
    Read, Repeat, Result, Seek, SeekFrom, Sink, Split, Take, Write,
};

use crate::sync::{Condvar, Mutex, MutexGuard};

/// The traits a module using I/O imports, as [`std::io::prelude`].
pub mod prelude {
    pub use std::io::prelude::*;
}

/// Size of greenring's standard-input buffer (std's is 8 KiB).
const STDIN_BUF: usize = 8 * 1024;

/// `true` when the caller may hand a call to the blocking pool and wait for it.
fn may_offload() -> bool {
    crate::thread::is_green() && !std::thread::panicking()
}

/// fd 0, read through the reactor on green threads.
#[derive(Debug)]
struct RawStdin;

impl Read for RawStdin {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let result =
            match crate::driver::stream_read(crate::reactor::Socket::fd(libc::STDIN_FILENO), buf) {
                Some(result) => result,
                None => loop {
                    // SAFETY: `buf` is valid for `buf.len()` writable bytes.
                    let n = unsafe {
                        crate::sys::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len())
                    };
                    if n >= 0 {
                        break Ok(n as usize);
                    }
                    let err = Error::last_os_error();
                    if err.kind() != ErrorKind::Interrupted {
                        break Err(err);
                    }
                },
            };
        match result {
            // A closed stdin reads as empty, as with std.
            Err(err) if err.raw_os_error() == Some(libc::EBADF) => Ok(0),
            other => other,
        }
    }
}

fn stdin_buffer() -> &'static Mutex<BufReader<RawStdin>> {
    static STDIN: OnceLock<Mutex<BufReader<RawStdin>>> = OnceLock::new();
    STDIN.get_or_init(|| Mutex::new(BufReader::with_capacity(STDIN_BUF, RawStdin)))
}

/// A handle to the process's standard input, like [`std::io::Stdin`], whose reads park
/// only the calling green thread.
///
/// Reads go through the worker's reactor: on io_uring an `IORING_OP_READ` on fd 0 (the
/// kernel polls a pipe or socket, and reads a terminal or file on its own workers); on
/// epoll a zero `poll` and then `read(2)`. fd 0 stays in blocking mode, as other programs
/// sharing the terminal or pipe expect; should another reader of the same fd take the
/// input between that `poll` and the `read`, the read blocks the worker.
///
/// Every handle shares one buffer (8 KiB), behind a lock that parks green threads.
///
/// ```no_run
/// let mut name = String::new();
/// greenring::io::stdin().read_line(&mut name)?;
/// for line in greenring::io::stdin().lines() {
///     println!("{}", line?);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Stdin {
    _private: (),
}

/// A locked [`Stdin`]: reads from it alone, through the shared buffer ([`BufRead`]).
#[derive(Debug)]
pub struct StdinLock<'a> {
    guard: MutexGuard<'a, BufReader<RawStdin>>,
}

/// The process's standard input (see [`Stdin`]).
pub fn stdin() -> Stdin {
    Stdin { _private: () }
}

impl Stdin {
    /// Locks standard input for this thread (green or not) until the guard is dropped,
    /// parking a green thread while another holds it.
    pub fn lock(&self) -> StdinLock<'static> {
        StdinLock {
            guard: stdin_buffer()
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Reads one line, with its `\n`, and appends it to `buf`; 0 at the end of input.
    ///
    /// # Errors
    ///
    /// As [`BufRead::read_line`].
    pub fn read_line(&self, buf: &mut String) -> Result<usize> {
        self.lock().read_line(buf)
    }

    /// The lines of standard input (without their line ends), holding the lock.
    pub fn lines(self) -> Lines<StdinLock<'static>> {
        self.lock().lines()
    }
}

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.lock().read(buf)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.lock().read_to_end(buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> Result<usize> {
        self.lock().read_to_string(buf)
    }
}

impl Read for &Stdin {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.lock().read(buf)
    }
}

impl Read for StdinLock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.guard.read(buf)
    }
}

impl BufRead for StdinLock<'_> {
    fn fill_buf(&mut self) -> Result<&[u8]> {
        self.guard.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.guard.consume(amt)
    }
}

/// A lock its holder may take again (as std's stdout lock is: `println!` inside a held
/// `StdoutLock`), parking other green threads.
struct Reentrant {
    owner: Mutex<Option<(crate::thread::ThreadId, usize)>>,
    free: Condvar,
}

impl Reentrant {
    fn new() -> Reentrant {
        Reentrant {
            owner: Mutex::new(None),
            free: Condvar::new(),
        }
    }

    fn lock(&'static self) -> ReentrantGuard {
        let me = crate::thread::current().id();
        let mut owner = self.owner.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match &mut *owner {
                None => {
                    *owner = Some((me, 1));
                    return ReentrantGuard { lock: self };
                }
                Some((id, depth)) if *id == me => {
                    *depth += 1;
                    return ReentrantGuard { lock: self };
                }
                Some(_) => {
                    owner = self
                        .free
                        .wait(owner)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// Holds a [`Reentrant`] lock once.
struct ReentrantGuard {
    lock: &'static Reentrant,
}

impl Drop for ReentrantGuard {
    fn drop(&mut self) {
        let mut owner = self
            .lock
            .owner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, depth)) = &mut *owner {
            *depth -= 1;
            if *depth == 0 {
                *owner = None;
                self.lock.free.notify_one();
            }
        }
    }
}

impl fmt::Debug for ReentrantGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReentrantGuard")
    }
}

/// Implements a standard output stream over std's handle `$std` (`stdout` or `stderr`).
macro_rules! output_stream {
    ($ty:ident, $lock:ident, $ctor:ident, $std:ident, $fd:expr, $what:literal, $lockdoc:literal) => {
        #[doc = concat!("A handle to the process's ", $what, ", like [`std::io::", stringify!($ty), "`], whose writes park only the calling green thread.")]
        ///
        /// Writes go through std's handle (its buffering, and its order with `print!` and
        /// `eprint!`), on the blocking pool while only the green thread waits; off green
        /// threads they are std's calls. Each call is one hand-off to the pool: `write_all`
        /// and `write_fmt` (`write!`) make a single one.
        #[derive(Debug, Clone, Copy)]
        pub struct $ty {
            _private: (),
        }

        #[doc = concat!("A locked [`", stringify!($ty), "`]: other threads' writes wait until it is dropped. The holder may lock it again.")]
        #[derive(Debug)]
        pub struct $lock<'a> {
            _guard: ReentrantGuard,
            _life: std::marker::PhantomData<&'a ()>,
        }

        #[doc = concat!("The process's ", $what, " (see [`", stringify!($ty), "`]).")]
        pub fn $ctor() -> $ty {
            $ty { _private: () }
        }

        impl $ty {
            #[doc = $lockdoc]
            pub fn lock(&self) -> $lock<'static> {
                static LOCK: OnceLock<Reentrant> = OnceLock::new();
                $lock {
                    _guard: LOCK.get_or_init(Reentrant::new).lock(),
                    _life: std::marker::PhantomData,
                }
            }
        }

        impl Write for $lock<'_> {
            fn write(&mut self, buf: &[u8]) -> Result<usize> {
                if may_offload() {
                    return crate::driver::pool::offload(|| std::io::$std().write(buf));
                }
                std::io::$std().write(buf)
            }

            fn write_all(&mut self, buf: &[u8]) -> Result<()> {
                if may_offload() {
                    return crate::driver::pool::offload(|| std::io::$std().write_all(buf));
                }
                std::io::$std().write_all(buf)
            }

            fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<()> {
                match args.as_str() {
                    Some(text) => self.write_all(text.as_bytes()),
                    None => self.write_all(fmt::format(args).as_bytes()),
                }
            }

            fn flush(&mut self) -> Result<()> {
                if may_offload() {
                    return crate::driver::pool::offload(|| std::io::$std().flush());
                }
                std::io::$std().flush()
            }
        }

        impl Write for $ty {
            fn write(&mut self, buf: &[u8]) -> Result<usize> {
                self.lock().write(buf)
            }

            fn write_all(&mut self, buf: &[u8]) -> Result<()> {
                self.lock().write_all(buf)
            }

            fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<()> {
                self.lock().write_fmt(args)
            }

            fn flush(&mut self) -> Result<()> {
                self.lock().flush()
            }
        }

        impl Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> Result<usize> {
                self.lock().write(buf)
            }

            fn write_all(&mut self, buf: &[u8]) -> Result<()> {
                self.lock().write_all(buf)
            }

            fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<()> {
                self.lock().write_fmt(args)
            }

            fn flush(&mut self) -> Result<()> {
                self.lock().flush()
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the standard stream's fd is open for the life of the process
                // (std's own handles make the same assumption).
                unsafe { BorrowedFd::borrow_raw($fd) }
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                $fd
            }
        }
    };
}

output_stream!(
    Stdout,
    StdoutLock,
    stdout,
    stdout,
    libc::STDOUT_FILENO,
    "standard output",
    "Locks standard output for the calling thread (green or not); other threads' writes through greenring wait until the guard is dropped. (`println!` goes through std's lock, which each write takes only briefly.)"
);
output_stream!(
    Stderr,
    StderrLock,
    stderr,
    stderr,
    libc::STDERR_FILENO,
    "standard error",
    "Locks standard error for the calling thread (green or not); other threads' writes through greenring wait until the guard is dropped."
);

impl AsFd for Stdin {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: fd 0 is open for the life of the process (as std's handles assume).
        unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) }
    }
}

impl AsRawFd for Stdin {
    fn as_raw_fd(&self) -> RawFd {
        libc::STDIN_FILENO
    }
}
