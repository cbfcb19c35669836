//! Converting socket addresses to and from their C form.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};

/// A socket address as the kernel reads it.
pub(super) struct RawAddr {
    pub(super) storage: libc::sockaddr_storage,
    pub(super) len: libc::socklen_t,
}

impl RawAddr {
    /// Room for any address the kernel writes back (accept, recvfrom).
    pub(super) fn empty() -> RawAddr {
        RawAddr {
            // SAFETY: all-zero is a valid sockaddr_storage.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    pub(super) fn from_std(addr: &SocketAddr) -> RawAddr {
        let mut raw = RawAddr::empty();
        match addr {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe {
                    (&mut raw.storage as *mut libc::sockaddr_storage)
                        .cast::<libc::sockaddr_in>()
                        .write(sin)
                };
                raw.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe {
                    (&mut raw.storage as *mut libc::sockaddr_storage)
                        .cast::<libc::sockaddr_in6>()
                        .write(sin6)
                };
                raw.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    pub(super) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    /// The std address the kernel wrote.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a family other than IPv4/IPv6.
    pub(super) fn to_std(&self) -> io::Result<SocketAddr> {
        match i32::from(self.storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
                let sin = unsafe {
                    *(&self.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
                let sin6 = unsafe {
                    *(&self.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            family => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unexpected socket address family {family}"),
            )),
        }
    }
}

/// `true` for the std address types whose `to_socket_addrs` never makes a system call (an
/// IP address and a port): they resolve in place. Host names can only come in a string
/// (`&str`, `String`, `(&str, u16)`, ...), which may hold either a name or a literal.
///
/// Only an optimisation (it spares a blocking-pool hop), so comparing the type's name with
/// the names of the std types is enough: at worst an unknown type takes the pool.
fn resolves_in_place<A: ?Sized>() -> bool {
    use std::any::type_name;
    let name = type_name::<A>().trim_start_matches('&');
    [
        type_name::<SocketAddr>(),
        type_name::<SocketAddrV4>(),
        type_name::<SocketAddrV6>(),
        type_name::<(IpAddr, u16)>(),
        type_name::<(Ipv4Addr, u16)>(),
        type_name::<(Ipv6Addr, u16)>(),
        type_name::<[SocketAddr]>(),
    ]
    .contains(&name)
}

/// The addresses `addr` resolves to, as std resolves them. On a green thread, a host name
/// (`getaddrinfo(3)`, which may wait for DNS for seconds) is resolved on the blocking pool
/// while only the green thread waits; IP addresses resolve in place.
///
/// # Errors
///
/// std's resolution error (`getaddrinfo`'s, or `InvalidInput` for a malformed address).
pub(super) fn resolve<A: ToSocketAddrs + Send>(addr: A) -> io::Result<Vec<SocketAddr>> {
    if resolves_in_place::<A>() || !crate::thread::is_green() || std::thread::panicking() {
        return Ok(addr.to_socket_addrs()?.collect());
    }
    crate::driver::pool::offload(move || Ok(addr.to_socket_addrs()?.collect()))
}

/// Tries `f` on each of `addrs` in turn, as std does: the first success, or the last error.
pub(super) fn each_addr<T>(
    addrs: &[SocketAddr],
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addrs {
        match f(addr) {
            Ok(value) => return Ok(value),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in ["127.0.0.1:80", "[::1]:443", "[fe80::1%3]:8080", "0.0.0.0:0"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(RawAddr::from_std(&addr).to_std().unwrap(), addr);
        }
    }

    #[test]
    fn ip_addresses_resolve_in_place_and_strings_do_not() {
        assert!(resolves_in_place::<SocketAddr>());
        assert!(resolves_in_place::<&SocketAddr>());
        assert!(resolves_in_place::<(Ipv4Addr, u16)>());
        assert!(resolves_in_place::<&[SocketAddr]>());
        assert!(!resolves_in_place::<&str>());
        assert!(!resolves_in_place::<(&str, u16)>());
        assert!(!resolves_in_place::<String>());
    }
}
