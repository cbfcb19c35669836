//! Interposed libc calls (the `hooks` feature): blocking calls made on a green thread by code
//! greenring does not own (std's `net`, `thread::sleep`, crates that open their own sockets,
//! C code compiled into the binary) park only that green thread.
//!
//! With the feature on, greenring defines these C symbols itself, so the dynamic linker
//! binds the program's calls to them before libc's: `connect`, `accept`, `accept4`, `recv`,
//! `recvfrom`, `recvmsg`, `send`, `sendto`, `sendmsg`, `read`, `write`, `readv`, `writev`,
//! `poll`, `ppoll`, `nanosleep`, `clock_nanosleep`, `usleep`, `sleep` and `getaddrinfo`
//! (with `__read_chk`, `__recv_chk`, `__recvfrom_chk`, `__poll_chk` and `__ppoll_chk`, which
//! C code built with `_FORTIFY_SOURCE` calls instead), and, to keep what they know of each
//! fd true, `close`, `dup2`, `dup3`, `fcntl`, `ioctl` and `setsockopt`. Each reaches the
//! real call as a raw system call (`getaddrinfo`, which is not one, as the next definition
//! of the symbol, libc's, found with `dlsym(RTLD_NEXT)`), and greenring's own calls never
//! enter a hook (they go through `crate::sys`).
//!
//! # What a hook does
//!
//! Off a green thread (an OS thread, a blocking-pool thread, a worker's own code), and on a
//! green thread that unwinds (it cannot switch away), a hook makes the plain call: its cost
//! is one thread-local check. On a green thread:
//! - **Sockets** (`recv`, `send`, `read`, `write` and the rest, `connect`, `accept`): the
//!   call runs as an op of greenring's driver, parking the green thread (an io_uring op, or
//!   the non-blocking call retried on epoll readiness). `SO_RCVTIMEO` and `SO_SNDTIMEO` are
//!   honoured as the kernel honours them: a receive or send that times out fails with
//!   `EAGAIN`, a `connect` with `EINPROGRESS`.
//! - **Pipes, FIFOs and character devices** (a terminal): `read`, `write`, `readv`,
//!   `writev` park until the fd is ready (`readv` and `writev` transfer into or from their
//!   first non-empty buffer: a short transfer, as those calls may make).
//! - **Regular files, directories and block devices** stay plain calls: they never wait for
//!   readiness, and the position-sharing rules of `read(2)` must hold.
//! - **The standard streams** (fds 0, 1 and 2, whatever they are) stay plain calls. std's
//!   `Stdout` and `Stderr` are locks reentrant per OS thread around a `RefCell`: a green
//!   thread parked in their `write` would let every other green thread of its worker pass
//!   the same lock and find the `RefCell` borrowed (a panic, and for `eprintln!` an
//!   abort), and `Stdin`'s lock held across a parked `read` would block the next reader's
//!   OS thread. `println!` to a full pipe thus blocks the worker, as without the feature;
//!   `greenring::io::{stdin, stdout, stderr}` park instead. (A socket that gets one of
//!   these numbers, in a program that closed its standard streams, is not parked either.)
//! - **A non-blocking fd** (`O_NONBLOCK`, set by its owner), and a call with
//!   `MSG_DONTWAIT`, gets the plain call and its `EAGAIN`. The hooks never change an fd's
//!   `O_NONBLOCK` flag themselves (a `connect` on epoll sets it for the connection attempt,
//!   as greenring's own connect does, and puts it back).
//! - **`poll` and `ppoll`** with a timeout (and no signal mask, for `ppoll`) park: on one fd
//!   until it is ready or the timeout passes; on several fds in rounds of at most 10 ms.
//! - **Sleeps** park in the worker's timer heap; they are not interrupted by signals (they
//!   return 0, and leave `rem` alone).
//! - **`getaddrinfo`** runs on the blocking pool (glibc's resolver makes its own internal
//!   calls, which no hook sees).
//!
//! An fd is classified (`fstat`, `F_GETFL`, its timeouts) the first time a green thread
//! makes a hooked call on it, and again after any hooked call that changes what the hooks
//! know (see `fds`). An fd closed while a green thread waits on it behaves as for OS
//! threads on io_uring (the op keeps the file); on epoll the wait ends with `EBADF` when
//! the number is reused, instead of reading the new file.
//!
//! # What binds to the hooks
//!
//! Found by test (`tests/hooks.rs`), not assumed: std and every Rust crate in the binary,
//! C code compiled into it, libraries loaded with `dlopen` (and so shared libraries the
//! binary links, which the same lookup binds), C built with `_FORTIFY_SOURCE`, and test
//! binaries. Not covered: calls glibc makes inside itself (its own `getaddrinfo`, `system`,
//! stdio's reads and writes: `fgets` on a pipe blocks the worker), raw system calls
//! (`syscall(2)`, inline assembly, Go or io_uring runtimes of their own), statically linked
//! executables' libc, the `*64` variants some C code is compiled to call (`fcntl64`),
//! `close_range`, `select`, `epoll_wait` and `futex`: a lock or channel of std or crossbeam
//! still blocks the worker (see the monitor's extra workers, and the port guide).

mod fds;
mod interpose;
