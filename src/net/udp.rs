//! UDP: [`UdpSocket`].

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use super::addr::RawAddr;
use super::socket::{msghdr, socket_common, socket_timeouts, Settings};
use crate::reactor::ops;

/// A UDP socket, like [`std::net::UdpSocket`], whose blocking calls park only the calling
/// green thread.
#[derive(Debug)]
pub struct UdpSocket {
    inner: std::net::UdpSocket,
    settings: Settings,
}

socket_common!(UdpSocket, std::net::UdpSocket);
socket_timeouts!(UdpSocket);

impl UdpSocket {
    /// Binds a socket to `addr`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        std::net::UdpSocket::bind(addr).map(UdpSocket::from)
    }

    /// Sets the default peer for `send` and the only peer `recv` accepts.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        self.inner.connect(addr)
    }

    /// Sends `buf` to the connected peer.
    ///
    /// # Errors
    ///
    /// As std's; `WouldBlock` after the write timeout.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        if self.settings.blocking() {
            if let Some(result) = ops::send(
                self.settings.op_socket(self.as_raw_fd()),
                buf,
                self.settings.write_timeout(),
            ) {
                return result;
            }
        }
        self.inner.send(buf)
    }

    /// Receives one datagram from the connected peer.
    ///
    /// # Errors
    ///
    /// As std's; `WouldBlock` after the read timeout.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.settings.blocking() {
            if let Some(result) = ops::recv(
                self.settings.op_socket(self.as_raw_fd()),
                buf,
                0,
                self.settings.read_timeout(),
            ) {
                return result;
            }
        }
        self.inner.recv(buf)
    }

    /// Sends `buf` to `addr` (its first resolved address, as std).
    ///
    /// # Errors
    ///
    /// As std's; `InvalidInput` when `addr` resolves to nothing.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(target) = addr.to_socket_addrs()?.next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            ));
        };
        if self.settings.blocking() {
            let raw = RawAddr::from_std(&target);
            let mut iov = libc::iovec {
                iov_base: buf.as_ptr().cast_mut().cast(),
                iov_len: buf.len(),
            };
            let mut msg = msghdr(&mut iov, 1);
            msg.msg_name = raw.as_ptr().cast_mut().cast();
            msg.msg_namelen = raw.len;
            // SAFETY: `msg`, `iov`, `raw` and `buf` all live until the call returns.
            let result = unsafe {
                ops::sendmsg(
                    self.settings.op_socket(self.as_raw_fd()),
                    &msg,
                    self.settings.write_timeout(),
                )
            };
            if let Some(result) = result {
                return result;
            }
        }
        self.inner.send_to(buf, target)
    }

    /// Receives one datagram and the address it came from.
    ///
    /// # Errors
    ///
    /// As std's; `WouldBlock` after the read timeout.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if self.settings.blocking() {
            let mut from = RawAddr::empty();
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg = msghdr(&mut iov, 1);
            msg.msg_name = (&mut from.storage as *mut libc::sockaddr_storage).cast();
            msg.msg_namelen = from.len;
            // SAFETY: `msg`, `iov`, `from` and `buf` all live until the call returns.
            let result = unsafe {
                ops::recvmsg(
                    self.settings.op_socket(self.as_raw_fd()),
                    &mut msg,
                    self.settings.read_timeout(),
                )
            };
            if let Some(result) = result {
                let n = result?;
                from.len = msg.msg_namelen;
                return Ok((n, from.to_std()?));
            }
        }
        self.inner.recv_from(buf)
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

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.inner.set_broadcast(broadcast)
    }
}
