//! Unix domain stream sockets: [`UnixListener`] and [`UnixStream`].

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::socket::{new_socket, socket_common, socket_timeouts, stream_io, Settings};
use crate::driver as ops;

/// A Unix domain stream, like [`std::os::unix::net::UnixStream`], whose blocking calls park
/// only the calling green thread.
#[derive(Debug)]
pub struct UnixStream {
    inner: std::os::unix::net::UnixStream,
    settings: Settings,
}

socket_common!(UnixStream, std::os::unix::net::UnixStream);
socket_timeouts!(UnixStream);
stream_io!(UnixStream);

/// `sockaddr_un` for a filesystem path.
fn unix_addr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "paths must not contain interior null bytes",
        ));
    }
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path must be shorter than SUN_LEN",
        ));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

impl UnixStream {
    /// Connects to the socket bound at `path`.
    ///
    /// # Errors
    ///
    /// As std's; `InvalidInput` for a path too long for `sockaddr_un`.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        if !crate::driver::parks() {
            return std::os::unix::net::UnixStream::connect(path).map(UnixStream::from);
        }
        let (addr, len) = unix_addr(path.as_ref())?;
        let fd = new_socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
        let addr_ptr = (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>();
        // SAFETY: `addr` lives until the call returns.
        let result = unsafe { ops::connect(fd.as_raw_fd(), addr_ptr, len, None) };
        result.expect("checked: on a green thread")?;
        Ok(UnixStream::from(std::os::unix::net::UnixStream::from(fd)))
    }

    /// A connected pair of streams.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((a.into(), b.into()))
    }

    /// The address of the peer.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
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
}

/// A Unix domain listening socket, like [`std::os::unix::net::UnixListener`].
#[derive(Debug)]
pub struct UnixListener {
    inner: std::os::unix::net::UnixListener,
    settings: Settings,
}

socket_common!(UnixListener, std::os::unix::net::UnixListener, listener);

impl UnixListener {
    /// Binds a listener at `path`, with an accept backlog of
    /// [`LISTEN_BACKLOG`](super::LISTEN_BACKLOG).
    ///
    /// # Errors
    ///
    /// As std's (`AddrInUse` if the path exists, ...).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        super::raise_backlog(std::os::fd::AsRawFd::as_raw_fd(&listener))?;
        Ok(UnixListener::from(listener))
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        if self.settings.blocking() {
            // SAFETY: all-zero is a valid sockaddr_storage; the address is read back below
            // through std, which knows how to represent unnamed peers.
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if let Some(fd) = ops::accept(
                self.settings.op_socket(self.as_raw_fd()),
                &mut storage,
                &mut len,
            ) {
                // SAFETY: accept returned a fresh socket that nothing else owns.
                let stream = unsafe {
                    <std::os::unix::net::UnixStream as std::os::fd::FromRawFd>::from_raw_fd(fd?)
                };
                let peer = stream.peer_addr()?;
                return Ok((UnixStream::from(stream), peer));
            }
        }
        let (stream, addr) =
            super::socket::accept_blocking(&self.settings, self.as_raw_fd(), || {
                self.inner.accept()
            })?;
        Ok((UnixStream::from(stream), addr))
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(stream, _)| stream))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A Unix domain datagram socket, like [`std::os::unix::net::UnixDatagram`], whose
/// blocking calls (`send`, `recv`, `send_to`, `recv_from`, `peek`...) park only the calling
/// green thread.
///
/// ```
/// use greenring::net::UnixDatagram;
///
/// let (a, b) = UnixDatagram::pair()?;
/// let reader = greenring::spawn(move || {
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf).unwrap(); // parks this green thread until the datagram
///     buf[..n].to_vec()
/// });
/// a.send(b"hello")?;
/// assert_eq!(reader.join().unwrap(), b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixDatagram {
    inner: std::os::unix::net::UnixDatagram,
    settings: Settings,
}

socket_common!(UnixDatagram, std::os::unix::net::UnixDatagram);
socket_timeouts!(UnixDatagram);

/// The std form of the address the kernel wrote in `addr` (`len` bytes).
fn std_unix_addr(addr: &libc::sockaddr_un, len: libc::socklen_t) -> io::Result<SocketAddr> {
    let offset = std::mem::size_of::<libc::sa_family_t>();
    let path_len = (len as usize)
        .saturating_sub(offset)
        .min(addr.sun_path.len());
    let bytes: Vec<u8> = addr.sun_path[..path_len].iter().map(|&c| c as u8).collect();
    match bytes.split_first() {
        // Unnamed (an unbound sender): std has no constructor for it, but an unbound
        // socket's own address is one.
        None => {
            static UNNAMED: std::sync::OnceLock<SocketAddr> = std::sync::OnceLock::new();
            if let Some(addr) = UNNAMED.get() {
                return Ok(addr.clone());
            }
            let addr = std::os::unix::net::UnixDatagram::unbound()?.local_addr()?;
            Ok(UNNAMED.get_or_init(|| addr).clone())
        }
        Some((0, name)) => {
            <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)
        }
        Some(_) => {
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            let path = std::ffi::OsStr::from_bytes(&bytes[..end]);
            SocketAddr::from_pathname(path)
        }
    }
}

impl UnixDatagram {
    /// A socket bound to `path`.
    ///
    /// # Errors
    ///
    /// As std's (`AddrInUse` if the path exists, ...).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::bind(path).map(UnixDatagram::from)
    }

    /// A socket bound to `addr` (a path or, on Linux, an abstract name).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::bind_addr(addr).map(UnixDatagram::from)
    }

    /// A socket bound to no address.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn unbound() -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::unbound().map(UnixDatagram::from)
    }

    /// A pair of connected sockets.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((a.into(), b.into()))
    }

    /// Sets the peer `send` sends to and the only one `recv` receives from (this never
    /// waits).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// As [`connect`](UnixDatagram::connect), to an address.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.inner.connect_addr(addr)
    }

    /// The address of the connected peer.
    ///
    /// # Errors
    ///
    /// As std's (`NotConnected`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
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

    /// Sends `buf` as one datagram to the connected peer, parking the green thread while
    /// the peer's queue is full.
    ///
    /// # Errors
    ///
    /// As std's; `WouldBlock` after the write timeout.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        if self.settings.blocking() {
            let socket = self.settings.op_socket(self.as_raw_fd());
            if let Some(result) = ops::send(
                socket,
                buf,
                libc::MSG_NOSIGNAL,
                self.settings.write_timeout(),
            ) {
                return result;
            }
        }
        self.inner.send(buf)
    }

    /// Receives one datagram from the connected peer, parking the green thread until one
    /// arrives.
    ///
    /// # Errors
    ///
    /// As std's; `WouldBlock` after the read timeout.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_flags(buf, 0)
            .unwrap_or_else(|| self.inner.recv(buf))
    }

    /// Receives the next datagram without taking it from the socket (`MSG_PEEK`).
    ///
    /// # Errors
    ///
    /// As [`recv`](UnixDatagram::recv)'s.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(result) = self.recv_flags(buf, libc::MSG_PEEK) {
            return result;
        }
        // std's `peek` on Unix datagram sockets is not stable yet.
        // SAFETY: `buf` is valid for `buf.len()` writable bytes for the call.
        let n = unsafe {
            crate::sys::recv(
                self.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn recv_flags(&self, buf: &mut [u8], flags: i32) -> Option<io::Result<usize>> {
        if !self.settings.blocking() {
            return None;
        }
        let socket = self.settings.op_socket(self.as_raw_fd());
        ops::recv(socket, buf, flags, self.settings.read_timeout())
    }

    /// Sends `buf` as one datagram to the socket bound at `path`.
    ///
    /// # Errors
    ///
    /// As std's; `InvalidInput` for a path too long for `sockaddr_un`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        if !self.settings.blocking() || !crate::thread::is_green() {
            return self.inner.send_to(buf, path);
        }
        let (addr, len) = unix_addr(path.as_ref())?;
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        let mut msg = super::socket::msghdr(&mut iov, 1);
        msg.msg_name = (&addr as *const libc::sockaddr_un).cast_mut().cast();
        msg.msg_namelen = len;
        let socket = self.settings.op_socket(self.as_raw_fd());
        // SAFETY: `msg`, `iov`, `addr` and `buf` all live until the call returns.
        let result = unsafe {
            ops::sendmsg(
                socket,
                &msg,
                libc::MSG_NOSIGNAL,
                self.settings.write_timeout(),
            )
        };
        match result {
            Some(result) => result,
            None => self.inner.send_to(buf, path),
        }
    }

    /// As [`send_to`](UnixDatagram::send_to), to an address (sent with std's call; a
    /// datagram send waits only while the receiver's queue is full).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        match addr.as_pathname() {
            Some(path) => self.send_to(buf, path),
            None => self.inner.send_to_addr(buf, addr),
        }
    }

    /// Receives one datagram and the address of its sender, parking the green thread
    /// until one arrives.
    ///
    /// # Errors
    ///
    /// As std's; `WouldBlock` after the read timeout.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if let Some(result) = self.recv_from_flags(buf, 0) {
            return result;
        }
        self.inner.recv_from(buf)
    }

    /// Receives the next datagram and its sender's address without taking it from the
    /// socket (`MSG_PEEK`).
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UnixDatagram::recv_from)'s.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if let Some(result) = self.recv_from_flags(buf, libc::MSG_PEEK) {
            return result;
        }
        // SAFETY: all-zero is a valid sockaddr_un.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: `buf`, `addr` and `len` are valid for the call.
        let n = unsafe {
            crate::sys::recvfrom(
                self.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK,
                (&mut addr as *mut libc::sockaddr_un).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize, std_unix_addr(&addr, len)?))
    }

    fn recv_from_flags(
        &self,
        buf: &mut [u8],
        flags: i32,
    ) -> Option<io::Result<(usize, SocketAddr)>> {
        if !self.settings.blocking() {
            return None;
        }
        // SAFETY: all-zero is a valid sockaddr_un.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg = super::socket::msghdr(&mut iov, 1);
        msg.msg_name = (&mut addr as *mut libc::sockaddr_un).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        let socket = self.settings.op_socket(self.as_raw_fd());
        let timeout = self.settings.read_timeout();
        // SAFETY: `msg`, `iov`, `addr` and `buf` all live until the call returns.
        let result = unsafe { ops::recvmsg_flags(socket, &mut msg, flags, timeout) }?;
        Some(result.and_then(|n| Ok((n, std_unix_addr(&addr, msg.msg_namelen)?))))
    }
}
