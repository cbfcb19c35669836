//! What greenring's socket types keep besides the std socket: their timeouts and blocking
//! mode, which io_uring ops do not take from the socket (`SO_RCVTIMEO` does not apply to
//! them), and a fresh socket for `connect`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Read/write timeouts and the non-blocking flag of one socket, readable through `&self`.
///
/// Clones made by `try_clone` share them, as std's clones (dup'ed fds of one open socket)
/// share `O_NONBLOCK` and `SO_RCVTIMEO`; the epoll registrations stay per fd.
#[derive(Debug, Default)]
pub(super) struct Settings {
    shared: Arc<Shared>,
    /// The workers whose epoll sets hold the socket (see `reactor::ops::Socket`); a clone
    /// is a new fd and starts with none.
    epoll_registered: AtomicU64,
}

/// The settings every clone of a socket shares.
#[derive(Debug, Default)]
struct Shared {
    /// Nanoseconds, 0 for none.
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    nonblocking: AtomicBool,
}

fn encode(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| {
        u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
    })
}

fn decode(nanos: u64) -> Option<Duration> {
    (nanos != 0).then(|| Duration::from_nanos(nanos))
}

impl Settings {
    pub(super) fn read_timeout(&self) -> Option<Duration> {
        decode(self.shared.read_timeout.load(Ordering::Relaxed))
    }

    pub(super) fn write_timeout(&self) -> Option<Duration> {
        decode(self.shared.write_timeout.load(Ordering::Relaxed))
    }

    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.shared
            .read_timeout
            .store(encode(timeout), Ordering::Relaxed);
    }

    pub(super) fn set_write_timeout(&self, timeout: Option<Duration>) {
        self.shared
            .write_timeout
            .store(encode(timeout), Ordering::Relaxed);
    }

    /// `true` when blocking calls should go through io_uring (the socket is in blocking mode).
    pub(super) fn blocking(&self) -> bool {
        !self.shared.nonblocking.load(Ordering::Relaxed)
    }

    pub(super) fn set_nonblocking(&self, nonblocking: bool) {
        self.shared
            .nonblocking
            .store(nonblocking, Ordering::Relaxed);
    }

    /// The socket `fd` with these settings, as the reactor's ops take it.
    pub(super) fn op_socket(&self, fd: std::os::fd::RawFd) -> crate::reactor::Socket<'_> {
        crate::reactor::Socket::new(fd, &self.epoll_registered)
    }

    /// The settings of a clone (`try_clone`): the same shared timeouts and mode, and no
    /// epoll registration yet (the clone is another fd).
    pub(super) fn duplicate(&self) -> Settings {
        Settings {
            shared: Arc::clone(&self.shared),
            epoll_registered: AtomicU64::new(0),
        }
    }
}

/// A new blocking, close-on-exec socket.
pub(super) fn new_socket(domain: i32, kind: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory-safety preconditions. The runtime's own call (the
    // kernel may grow the fd table meanwhile, see `stats::in_kernel`).
    let fd =
        crate::stats::in_kernel(|| unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, 0) });
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fd`'s `O_NONBLOCK` flag, set or cleared; returns whether it was set before.
fn swap_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<bool> {
    let flags = crate::sys::get_flags(fd);
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted != flags && crate::sys::set_flags(fd, wanted) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// Listeners are non-blocking underneath, whatever their owner set: `accept4(2)` has no
/// per-call non-blocking flag (unlike `recv` and `send`, which get `MSG_DONTWAIT`), and a
/// green thread that lost a race for a connection to another accepter must get `EAGAIN`
/// and wait for readiness, not block its worker's OS thread in the kernel. The owner's
/// blocking mode lives in [`Settings`]: an accept in blocking mode off green threads waits
/// in `poll(2)` ([`accept_blocking`]), and the flag is put back as the owner set it when the
/// listener leaves greenring (into std, an `OwnedFd` or a raw fd, by its last handle).
impl Settings {
    /// Settings for the listener `fd` just taken over: its current blocking mode is the
    /// owner's, and the fd becomes non-blocking underneath.
    pub(super) fn adopt_listener(fd: RawFd) -> Settings {
        let settings = Settings::default();
        // A failure means an fd that is not open: every later call reports that.
        if let Ok(was_nonblocking) = swap_nonblocking(fd, true) {
            settings.set_nonblocking(was_nonblocking);
        }
        settings
    }

    /// The listener `fd` leaves greenring: back to the owner's blocking mode, unless another
    /// greenring handle of the same socket (a `try_clone`) still uses it.
    pub(super) fn release_listener(&self, fd: RawFd) {
        if Arc::strong_count(&self.shared) == 1 {
            let _ = swap_nonblocking(fd, !self.blocking());
        }
    }
}

/// `accept` off green threads on a listener that is non-blocking underneath (see
/// [`Settings::adopt_listener`]): `accept` as std makes it, and in blocking mode, while it
/// would block, a wait in `poll(2)` for a connection.
///
/// # Errors
///
/// As `accept`'s; `WouldBlock` only in non-blocking mode.
pub(super) fn accept_blocking<T>(
    settings: &Settings,
    fd: RawFd,
    mut accept: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match accept() {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && settings.blocking() => {
                let mut poll = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the call only.
                if unsafe { crate::sys::poll(&mut poll, 1, -1) } < 0 {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        return Err(err);
                    }
                }
            }
            result => return result,
        }
    }
}

/// Implements what every socket type of ours shares with its std counterpart: conversions,
/// file-descriptor traits, the blocking mode and the timeouts. `listener` makes the type's
/// fd non-blocking underneath (see [`Settings::adopt_listener`]).
macro_rules! socket_common {
    ($ty:ident, $std:ty) => {
        $crate::net::socket::socket_common!($ty, $std, false);
    };
    ($ty:ident, $std:ty, listener) => {
        $crate::net::socket::socket_common!($ty, $std, true);
    };
    ($ty:ident, $std:ty, $listener:literal) => {
        impl From<$std> for $ty {
            fn from(inner: $std) -> $ty {
                let settings = if $listener {
                    $crate::net::socket::Settings::adopt_listener(inner.as_raw_fd())
                } else {
                    // std sockets are blocking unless set otherwise; we cannot read the flag
                    // cheaply, so a socket that was made non-blocking must be told again.
                    Default::default()
                };
                $ty { inner, settings }
            }
        }

        impl From<$ty> for $std {
            fn from(socket: $ty) -> $std {
                if $listener {
                    socket.settings.release_listener(socket.inner.as_raw_fd());
                }
                socket.inner
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.inner.as_raw_fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl std::os::fd::FromRawFd for $ty {
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $ty {
                // SAFETY: forwarded: the caller hands us ownership of an open socket.
                $ty::from(unsafe { <$std>::from_raw_fd(fd) })
            }
        }

        impl From<std::os::fd::OwnedFd> for $ty {
            /// Takes ownership of an open socket, in blocking mode as far as greenring
            /// knows (as `from_raw_fd`).
            fn from(fd: std::os::fd::OwnedFd) -> $ty {
                $ty::from(<$std>::from(fd))
            }
        }

        impl From<$ty> for std::os::fd::OwnedFd {
            fn from(socket: $ty) -> std::os::fd::OwnedFd {
                <$std>::from(socket).into()
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                <$std>::from(self).into_raw_fd()
            }
        }

        impl $ty {
            /// Moves the socket into or out of non-blocking mode, as std's `set_nonblocking`.
            /// In non-blocking mode every call is std's and returns `WouldBlock` instead
            /// of waiting.
            ///
            /// # Errors
            ///
            /// As std's.
            pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
                if !$listener {
                    self.inner.set_nonblocking(nonblocking)?;
                }
                self.settings.set_nonblocking(nonblocking);
                Ok(())
            }

            /// A second handle to the same socket (a dup'ed fd, as std's). As with std,
            /// the two share their timeouts and blocking mode: setting them on one sets
            /// them for both.
            ///
            /// # Errors
            ///
            /// As std's (out of file descriptors).
            pub fn try_clone(&self) -> std::io::Result<$ty> {
                Ok($ty {
                    inner: self.inner.try_clone()?,
                    settings: self.settings.duplicate(),
                })
            }

            /// Takes the pending `SO_ERROR`.
            ///
            /// # Errors
            ///
            /// As std's.
            pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
                self.inner.take_error()
            }
        }
    };
}

/// Implements the read/write timeouts of a stream or datagram socket.
macro_rules! socket_timeouts {
    ($ty:ident) => {
        impl $ty {
            /// Sets how long a read may wait before failing with `WouldBlock` (as std does
            /// on Linux); `None` waits forever.
            ///
            /// # Errors
            ///
            /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
            pub fn set_read_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.inner.set_read_timeout(timeout)?;
                self.settings.set_read_timeout(timeout);
                Ok(())
            }

            /// Sets how long a write may wait before failing with `WouldBlock`; `None`
            /// waits forever.
            ///
            /// # Errors
            ///
            /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
            pub fn set_write_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.inner.set_write_timeout(timeout)?;
                self.settings.set_write_timeout(timeout);
                Ok(())
            }

            /// The read timeout.
            ///
            /// # Errors
            ///
            /// Never; the `Result` mirrors std.
            pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.settings.read_timeout())
            }

            /// The write timeout.
            ///
            /// # Errors
            ///
            /// Never; the `Result` mirrors std.
            pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.settings.write_timeout())
            }
        }
    };
}

/// Implements `Read` and `Write` for a stream type and for references to it: through the
/// ring on green threads (in blocking mode), through the std socket otherwise.
macro_rules! stream_io {
    ($ty:ident) => {
        impl $ty {
            fn recv_into(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                use std::os::fd::AsRawFd;
                if self.settings.blocking() {
                    let timeout = self.settings.read_timeout();
                    if let Some(result) = crate::driver::recv(
                        self.settings.op_socket(self.as_raw_fd()),
                        buf,
                        0,
                        timeout,
                    ) {
                        return result;
                    }
                }
                std::io::Read::read(&mut &self.inner, buf)
            }

            fn send_from(&self, buf: &[u8]) -> std::io::Result<usize> {
                use std::os::fd::AsRawFd;
                if self.settings.blocking() {
                    let timeout = self.settings.write_timeout();
                    if let Some(result) = crate::driver::send(
                        self.settings.op_socket(self.as_raw_fd()),
                        buf,
                        libc::MSG_NOSIGNAL,
                        timeout,
                    ) {
                        return result;
                    }
                }
                std::io::Write::write(&mut &self.inner, buf)
            }

            fn read_vectored_impl(
                &self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                use std::os::fd::AsRawFd;
                if self.settings.blocking() {
                    // IoSliceMut is ABI-compatible with iovec on Unix.
                    let mut msg = super::socket::msghdr(bufs.as_mut_ptr().cast(), bufs.len());
                    let timeout = self.settings.read_timeout();
                    // SAFETY: `msg` points at `bufs`, both borrowed for the whole call.
                    let result = unsafe {
                        crate::driver::recvmsg(
                            self.settings.op_socket(self.as_raw_fd()),
                            &mut msg,
                            timeout,
                        )
                    };
                    if let Some(result) = result {
                        return result;
                    }
                }
                std::io::Read::read_vectored(&mut &self.inner, bufs)
            }

            fn write_vectored_impl(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                use std::os::fd::AsRawFd;
                if self.settings.blocking() {
                    // IoSlice is ABI-compatible with iovec on Unix; sendmsg only reads it.
                    let msg = super::socket::msghdr(bufs.as_ptr().cast_mut().cast(), bufs.len());
                    let timeout = self.settings.write_timeout();
                    let socket = self.settings.op_socket(self.as_raw_fd());
                    // SAFETY: `msg` points at `bufs`, both borrowed for the whole call.
                    let result = unsafe {
                        crate::driver::sendmsg(socket, &msg, libc::MSG_NOSIGNAL, timeout)
                    };
                    if let Some(result) = result {
                        return result;
                    }
                }
                std::io::Write::write_vectored(&mut &self.inner, bufs)
            }
        }

        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.recv_into(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.read_vectored_impl(bufs)
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.send_from(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.write_vectored_impl(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

pub(super) use {socket_common, socket_timeouts, stream_io};

/// A `msghdr` over `iovecs` (with no name and no control data).
pub(super) fn msghdr(iov: *mut libc::iovec, iovlen: usize) -> libc::msghdr {
    // SAFETY: all-zero is a valid msghdr (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = iovlen;
    msg
}
