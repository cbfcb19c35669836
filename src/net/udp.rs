//! UDP: [`UdpSocket`].

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use super::addr::{resolve, RawAddr};
use super::socket::{msghdr, socket_common, socket_timeouts, Settings};
use crate::driver as ops;

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
    /// Binds a socket to `addr` (the first address that works). On a green thread a host
    /// name is resolved on the blocking pool while only the green thread waits (see
    /// [`TcpStream::connect`](super::TcpStream::connect)).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn bind<A: ToSocketAddrs + Send>(addr: A) -> io::Result<UdpSocket> {
        std::net::UdpSocket::bind(&resolve(addr)?[..]).map(UdpSocket::from)
    }

    /// Sets the default peer for `send` and the only peer `recv` accepts (the first
    /// address that works). Host names resolve as for [`UdpSocket::bind`].
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn connect<A: ToSocketAddrs + Send>(&self, addr: A) -> io::Result<()> {
        self.inner.connect(&resolve(addr)?[..])
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
                libc::MSG_NOSIGNAL,
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

    /// Sends `buf` to `addr` (its first resolved address, as std). Host names resolve as
    /// for [`UdpSocket::bind`].
    ///
    /// # Errors
    ///
    /// As std's; `InvalidInput` when `addr` resolves to nothing.
    pub fn send_to<A: ToSocketAddrs + Send>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(&target) = resolve(addr)?.first() else {
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
                    libc::MSG_NOSIGNAL,
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
        if let Some(result) = self.recv_from_green(buf, 0) {
            return result;
        }
        self.inner.recv_from(buf)
    }

    /// Receives the next datagram into `buf` without taking it from the socket
    /// (`MSG_PEEK`), with the address it came from: the next receive returns it again.
    /// Parks the green thread until a datagram arrives.
    ///
    /// # Errors
    ///
    /// As std's; `WouldBlock` after the read timeout.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if let Some(result) = self.recv_from_green(buf, libc::MSG_PEEK) {
            return result;
        }
        self.inner.peek_from(buf)
    }

    /// Receives the next datagram from the connected peer without taking it from the
    /// socket (`MSG_PEEK`). Parks the green thread until a datagram arrives.
    ///
    /// # Errors
    ///
    /// As std's; `WouldBlock` after the read timeout.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.settings.blocking() {
            if let Some(result) = ops::recv(
                self.settings.op_socket(self.as_raw_fd()),
                buf,
                libc::MSG_PEEK,
                self.settings.read_timeout(),
            ) {
                return result;
            }
        }
        self.inner.peek(buf)
    }

    /// `recvmsg` with `flags` and the sender's address through the reactor; `None` when
    /// the caller should make std's call (non-blocking mode, off green threads).
    fn recv_from_green(
        &self,
        buf: &mut [u8],
        flags: i32,
    ) -> Option<io::Result<(usize, SocketAddr)>> {
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
                ops::recvmsg_flags(
                    self.settings.op_socket(self.as_raw_fd()),
                    &mut msg,
                    flags,
                    self.settings.read_timeout(),
                )
            };
            return result.map(|result| {
                let n = result?;
                from.len = msg.msg_namelen;
                Ok((n, from.to_std()?))
            });
        }
        None
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

    /// Whether `SO_BROADCAST` is set.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
    }

    /// Sets the IP time-to-live of outgoing datagrams.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The IP time-to-live of outgoing datagrams.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Sets `IP_MULTICAST_LOOP`: whether multicast sent here loops back to local sockets.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v4(on)
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`, the time-to-live of outgoing IPv4 multicast.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_multicast_ttl_v4(ttl)
    }

    /// The `IP_MULTICAST_TTL`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.inner.multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v6(on)
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v6()
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface` (`UNSPECIFIED`: the kernel picks).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.join_multicast_v4(multiaddr, interface)
    }

    /// Leaves the IPv4 multicast group `multiaddr` on `interface`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.leave_multicast_v4(multiaddr, interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with index `interface` (0: the kernel picks).
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.join_multicast_v6(multiaddr, interface)
    }

    /// Leaves the IPv6 multicast group `multiaddr` on interface `interface`.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.leave_multicast_v6(multiaddr, interface)
    }
}
