//! TCP: [`TcpListener`] and [`TcpStream`].

use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::addr::{each_addr, resolve, RawAddr};
use super::socket::{new_socket, socket_common, socket_timeouts, stream_io, Settings};
use crate::driver as ops;

/// A TCP stream, like [`std::net::TcpStream`], whose blocking calls park only the calling
/// green thread.
#[derive(Debug)]
pub struct TcpStream {
    inner: std::net::TcpStream,
    settings: Settings,
}

socket_common!(TcpStream, std::net::TcpStream);
socket_timeouts!(TcpStream);
stream_io!(TcpStream);

impl TcpStream {
    /// Opens a TCP connection to `addr`, trying each address it resolves to in turn.
    ///
    /// On a green thread a host name (`"localhost:80"`) is resolved on the blocking pool
    /// while only the green thread waits (`A` is `Send` for that, as every std address
    /// type is); IP addresses resolve in place.
    ///
    /// ```no_run
    /// let stream = greenring::net::TcpStream::connect("localhost:8080")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// std's resolution error; the error of the last address tried, or `InvalidInput`
    /// when none resolved.
    pub fn connect<A: ToSocketAddrs + Send>(addr: A) -> io::Result<TcpStream> {
        if !crate::driver::parks() {
            return std::net::TcpStream::connect(addr).map(TcpStream::from);
        }
        each_addr(&resolve(addr)?, |addr| connect_green(addr, None))
    }

    /// Opens a TCP connection to `addr`, giving up after `timeout` with `TimedOut`.
    ///
    /// # Errors
    ///
    /// `TimedOut` after `timeout`; `InvalidInput` for a zero timeout (as std); the
    /// connection's own error otherwise.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if !crate::driver::parks() {
            return std::net::TcpStream::connect_timeout(addr, timeout).map(TcpStream::from);
        }
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        connect_green(addr, Some(crate::timeout::saturate(timeout)))
    }

    /// The address of the remote peer.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address of this end.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Reads what has arrived into `buf` without taking it from the socket (`MSG_PEEK`):
    /// the next read returns the same bytes. Waits, parking only the green thread, until
    /// something has arrived, as `read` does.
    ///
    /// # Errors
    ///
    /// As `read`'s; `WouldBlock` after the read timeout or in non-blocking mode.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.settings.blocking() {
            let socket = self.settings.op_socket(self.as_raw_fd());
            let timeout = self.settings.read_timeout();
            if let Some(result) = ops::recv(socket, buf, libc::MSG_PEEK, timeout) {
                return result;
            }
        }
        self.inner.peek(buf)
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Sets the IP time-to-live.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The IP time-to-live.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }
}

/// Connects a fresh socket to `addr` through the ring (the caller is a green thread).
fn connect_green(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = new_socket(domain, libc::SOCK_STREAM)?;
    let raw = RawAddr::from_std(addr);
    // SAFETY: `raw` lives until the call returns.
    let result = unsafe { ops::connect(fd.as_raw_fd(), raw.as_ptr(), raw.len, timeout) };
    result.expect("the caller checked it runs on a green thread")?;
    Ok(TcpStream::from(std::net::TcpStream::from(fd)))
}

/// A TCP listening socket, like [`std::net::TcpListener`], whose `accept` parks only the
/// calling green thread.
#[derive(Debug)]
pub struct TcpListener {
    inner: std::net::TcpListener,
    settings: Settings,
}

socket_common!(TcpListener, std::net::TcpListener, listener);

impl TcpListener {
    /// Binds a listener to `addr` (the first address that works), with an accept backlog
    /// of [`LISTEN_BACKLOG`](super::LISTEN_BACKLOG) rather than std's 128. Host names
    /// resolve as for [`TcpStream::connect`].
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn bind<A: ToSocketAddrs + Send>(addr: A) -> io::Result<TcpListener> {
        let listener = std::net::TcpListener::bind(&resolve(addr)?[..])?;
        super::raise_backlog(std::os::fd::AsRawFd::as_raw_fd(&listener))?;
        Ok(TcpListener::from(listener))
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// # Errors
    ///
    /// As std's (out of file descriptors, `WouldBlock` in non-blocking mode, ...).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        if self.settings.blocking() {
            let mut peer = RawAddr::empty();
            if let Some(fd) = ops::accept(
                self.settings.op_socket(self.as_raw_fd()),
                &mut peer.storage,
                &mut peer.len,
            ) {
                // SAFETY: accept returned a fresh socket that nothing else owns.
                let stream =
                    unsafe { <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd?) };
                return Ok((TcpStream::from(stream), peer.to_std()?));
            }
        }
        let (stream, addr) =
            super::socket::accept_blocking(&self.settings, self.as_raw_fd(), || {
                self.inner.accept()
            })?;
        Ok((TcpStream::from(stream), addr))
    }

    /// An endless iterator of accepted connections, like std's.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address the listener is bound to.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets the IP time-to-live.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The IP time-to-live.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }
}

/// Connections accepted by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}
