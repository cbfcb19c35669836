//! Unix domain stream sockets: [`UnixListener`] and [`UnixStream`].

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::socket::{new_socket, socket_common, socket_timeouts, stream_io, Settings};
use crate::reactor::ops;

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
        if !crate::thread::is_green() {
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

socket_common!(UnixListener, std::os::unix::net::UnixListener);

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
        let (stream, addr) = self.inner.accept()?;
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
