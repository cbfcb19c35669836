//! Networking shaped like [`std::net`] (and `std::os::unix::net`): TCP, UDP and Unix domain
//! sockets whose blocking calls park only the calling green thread.
//!
//! Each type wraps its std counterpart and converts from and into it. On a green thread
//! `accept`, `connect`, reads and writes run as io_uring ops on the caller's own buffers;
//! off green threads, and in non-blocking mode, they are the std calls themselves. Calls
//! that never block (`bind`, `local_addr`, `set_nodelay`, `shutdown`, ...) are std's.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use greenring::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:7878")?;
//! for stream in listener.incoming() {
//!     let mut stream = stream?;
//!     greenring::spawn(move || {
//!         let mut buf = [0; 1024];
//!         while let Ok(n @ 1..) = stream.read(&mut buf) {
//!             stream.write_all(&buf[..n]).unwrap();
//!         }
//!     });
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The address types (`IpAddr`, `SocketAddr`, `Shutdown`, `AddrParseError`, ...) are std's,
//! re-exported so every `std::net` path resolves here.
//!
//! Name resolution (`ToSocketAddrs` with host names, `"localhost:80"`) is std's, run on
//! the blocking pool while only the calling green thread waits; IP addresses resolve in
//! place, without any system call. The functions that resolve take `A: ToSocketAddrs +
//! Send` for that (every std address type is `Send`).
//!
//! `try_clone` gives a second handle that shares the timeouts and the blocking mode with
//! the first, as std's clones (dup'ed fds) do.

mod addr;
mod socket;
mod tcp;
mod udp;
mod unix;

pub use self::tcp::{Incoming, TcpListener, TcpStream};
pub use self::udp::UdpSocket;
pub use self::unix::{UnixDatagram, UnixListener, UnixStream};
pub use std::net::{
    AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6,
    ToSocketAddrs,
};

/// The accept backlog of listeners bound by greenring (std uses 128; the kernel caps it at
/// `net.core.somaxconn`). Green threads connect in bursts: 200 clients spawned at once
/// complete their handshakes in one batch of io_uring ops, before the accepting thread runs
/// again; with 128, the connections beyond it waited for the kernel's one-second SYN-ACK
/// retry (measured with `examples/port_blocking`: 1.1 s instead of 0.2 s). tokio uses 1024.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Raises the backlog of a listener std just bound (`listen` again only updates it).
fn raise_backlog(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: listen on a socket we own; no pointers.
    if unsafe { libc::listen(fd, LISTEN_BACKLOG) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
