//! Socket ops: receives, sends, accept and connect, each a value in both of its forms (see
//! [`Op`]).

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::time::Duration;

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::Fd;

use super::op::{len_u32, Op, TimeoutKind, Wait};
use super::run;
use crate::reactor::Socket;

/// `IORING_RECVSEND_POLL_FIRST` (Linux 5.19; ignored by older kernels): the kernel arms
/// its readiness poll at once instead of first trying a receive it expects to fail.
const RECVSEND_POLL_FIRST: u16 = 1;

/// How the io_uring backend runs socket reads and writes. By default both are SQEs: they
/// share the worker's `io_uring_enter` with its other ops (see `op` for the measurements).
/// `GREENRING_SOCKET_PATH` selects the other forms, to measure them side by side: a
/// comma-separated list of `send-call` (try a send as a non-blocking system call first),
/// `recv-call` (the same for a recv) and `recv-poll-first` (queue every recv with the
/// poll-first hint).
#[derive(Clone, Copy)]
struct SocketPath {
    recv_call_first: bool,
    recv_poll_first: bool,
    send_call_first: bool,
}

fn socket_path() -> SocketPath {
    static PATH: OnceLock<SocketPath> = OnceLock::new();
    *PATH.get_or_init(|| {
        let var = std::env::var("GREENRING_SOCKET_PATH").unwrap_or_default();
        let has = |name: &str| var.split(',').any(|part| part.trim() == name);
        SocketPath {
            recv_call_first: has("recv-call"),
            recv_poll_first: has("recv-poll-first"),
            send_call_first: has("send-call"),
        }
    })
}

/// `recv(2)`.
struct Recv<'a> {
    socket: Socket<'a>,
    buf: *mut u8,
    len: usize,
    flags: i32,
}

// SAFETY: `buf` points to `len` writable bytes borrowed by the caller of `recv` for as
// long as the op lives.
unsafe impl Op for Recv<'_> {
    const WAIT: Wait = Wait::Readable;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn call_first(&self) -> bool {
        socket_path().recv_call_first
    }

    fn entry(&mut self, empty: bool) -> Entry {
        let poll_first = empty || socket_path().recv_poll_first;
        opcode::Recv::new(Fd(self.socket.fd), self.buf, len_u32(self.len))
            .flags(self.flags)
            .ioprio(if poll_first { RECVSEND_POLL_FIRST } else { 0 })
            .build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        unsafe {
            crate::sys::recv(
                self.socket.fd,
                self.buf.cast(),
                self.len,
                self.flags | libc::MSG_DONTWAIT,
            )
        }
    }
}

/// `recv(2)` into `buf`.
pub(crate) fn recv(
    socket: Socket<'_>,
    buf: &mut [u8],
    flags: i32,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    let (buf, len) = (buf.as_mut_ptr(), buf.len());
    run(
        Recv {
            socket,
            buf,
            len,
            flags,
        },
        timeout,
    )
}

/// `send(2)` with the caller's flags (greenring's sockets pass `MSG_NOSIGNAL`, as std does).
struct Send<'a> {
    socket: Socket<'a>,
    buf: *const u8,
    len: usize,
    flags: i32,
}

// SAFETY: `buf` points to `len` readable bytes borrowed by the caller of `send` for as
// long as the op lives.
unsafe impl Op for Send<'_> {
    const WAIT: Wait = Wait::Writable;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn call_first(&self) -> bool {
        socket_path().send_call_first
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::Send::new(Fd(self.socket.fd), self.buf, len_u32(self.len))
            .flags(self.flags)
            .build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        unsafe {
            crate::sys::send(
                self.socket.fd,
                self.buf.cast(),
                self.len,
                self.flags | libc::MSG_DONTWAIT,
            )
        }
    }
}

/// `send(2)` of `buf` with `flags` (`MSG_NOSIGNAL` for greenring's sockets, as std's).
pub(crate) fn send(
    socket: Socket<'_>,
    buf: &[u8],
    flags: i32,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    let (buf, len) = (buf.as_ptr(), buf.len());
    run(
        Send {
            socket,
            buf,
            len,
            flags,
        },
        timeout,
    )
}

/// `recvmsg(2)`.
struct RecvMsg<'a> {
    socket: Socket<'a>,
    msg: *mut libc::msghdr,
}

// SAFETY: the caller of `recvmsg` keeps `msg` and what it points to valid for the call.
unsafe impl Op for RecvMsg<'_> {
    const WAIT: Wait = Wait::Readable;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::RecvMsg::new(Fd(self.socket.fd), self.msg).build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        unsafe { crate::sys::recvmsg(self.socket.fd, self.msg, libc::MSG_DONTWAIT) }
    }
}

/// `recvmsg(2)`.
///
/// # Safety
///
/// `msg` and everything it points to (iovecs, buffers, name) stay valid for the call.
pub(crate) unsafe fn recvmsg(
    socket: Socket<'_>,
    msg: *mut libc::msghdr,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    run(RecvMsg { socket, msg }, timeout)
}

/// `sendmsg(2)` with the caller's flags.
struct SendMsg<'a> {
    socket: Socket<'a>,
    msg: *const libc::msghdr,
    flags: i32,
}

// SAFETY: the caller of `sendmsg` keeps `msg` and what it points to valid for the call.
unsafe impl Op for SendMsg<'_> {
    const WAIT: Wait = Wait::Writable;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn call_first(&self) -> bool {
        socket_path().send_call_first
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::SendMsg::new(Fd(self.socket.fd), self.msg)
            .flags(self.flags as u32)
            .build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        unsafe { crate::sys::sendmsg(self.socket.fd, self.msg, self.flags | libc::MSG_DONTWAIT) }
    }
}

/// `sendmsg(2)` with `flags` (`MSG_NOSIGNAL` for greenring's sockets).
///
/// # Safety
///
/// `msg` and everything it points to stay valid for the call.
pub(crate) unsafe fn sendmsg(
    socket: Socket<'_>,
    msg: *const libc::msghdr,
    flags: i32,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    run(SendMsg { socket, msg, flags }, timeout)
}

/// `accept4(2)` with the caller's flags. greenring's listeners are non-blocking underneath
/// (see `net::socket::Settings::adopt_listener`): `accept4` has no per-call non-blocking
/// flag, and a worker must never block in it when another thread takes the connection
/// first. A listener in blocking mode (one the hooks accept on for code greenring does not
/// own) is polled first instead: there, a lost race blocks the worker until the next
/// connection, on the epoll backend only (io_uring accepts in the kernel).
struct Accept<'a> {
    socket: Socket<'a>,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: i32,
    /// The listener is non-blocking underneath.
    nonblocking: bool,
}

// SAFETY: `addr` and `len` are borrowed mutably by the caller of `accept` for the call.
unsafe impl Op for Accept<'_> {
    const WAIT: Wait = Wait::Readable;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::Accept::new(Fd(self.socket.fd), self.addr, self.len)
            .flags(self.flags)
            .build()
    }

    fn call(&mut self) -> isize {
        if !self.nonblocking && super::stream::poll_now(self.socket.fd, libc::POLLIN) < 0 {
            return -1;
        }
        // SAFETY: see the impl. The runtime's own call, which makes an fd (see
        // `stats::in_kernel`).
        crate::stats::in_kernel(|| unsafe {
            crate::sys::accept4(self.socket.fd, self.addr, self.len, self.flags)
        }) as isize
    }
}

/// `accept4(2)` with `SOCK_CLOEXEC` on one of greenring's listeners (non-blocking
/// underneath), filling `addr`/`len` with the peer's address.
pub(crate) fn accept(
    socket: Socket<'_>,
    addr: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
) -> Option<io::Result<RawFd>> {
    let op = Accept {
        socket,
        addr: (addr as *mut libc::sockaddr_storage).cast(),
        len,
        flags: libc::SOCK_CLOEXEC,
        nonblocking: true,
    };
    run(op, None).map(|r| r.map(|fd| fd as RawFd))
}

/// `accept4(2)` with `flags` on a listener in blocking mode (see [`Accept`]).
///
/// # Safety
///
/// `addr` and `len` are null or valid for the call, as for `accept4(2)`.
#[cfg_attr(not(feature = "hooks"), allow(dead_code))]
pub(crate) unsafe fn accept_blocking_listener(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: i32,
) -> Option<io::Result<RawFd>> {
    let op = Accept {
        socket: Socket::fd(fd),
        addr,
        len,
        flags,
        nonblocking: false,
    };
    run(op, None).map(|r| r.map(|fd| fd as RawFd))
}

/// `connect(2)`. Its system call form makes the socket non-blocking for the op's life (a
/// connecting socket is not shared yet) and restores its flags when the op is dropped: the
/// first call starts the connection, the call after writability reads its outcome from
/// `SO_ERROR`.
struct Connect<'a> {
    socket: Socket<'a>,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    /// The socket's file status flags before the op made it non-blocking.
    saved_flags: Option<i32>,
}

impl Connect<'_> {
    /// The first call: non-blocking mode, then `connect(2)`; -1 with `EAGAIN` while the
    /// connection is in progress.
    fn start(&mut self) -> isize {
        let fd = self.socket.fd;
        let flags = crate::sys::get_flags(fd);
        if flags < 0 {
            return -1;
        }
        if crate::sys::set_flags(fd, flags | libc::O_NONBLOCK) < 0 {
            return -1;
        }
        self.saved_flags = Some(flags);
        // SAFETY: see the impl.
        if unsafe { crate::sys::connect(self.socket.fd, self.addr, self.len) } == 0 {
            return 0;
        }
        // SAFETY: reading errno is always allowed.
        let errno = unsafe { libc::__errno_location() };
        // SAFETY: as above.
        if unsafe { *errno } == libc::EINPROGRESS {
            // SAFETY: as above.
            unsafe { *errno = libc::EAGAIN };
        }
        -1
    }

    /// A later call, once writable: the outcome of the connection attempt.
    fn outcome(&self) -> isize {
        let mut error: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `error` and `size` are valid for the call.
        let got = unsafe {
            libc::getsockopt(
                self.socket.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut error as *mut libc::c_int).cast(),
                &mut size,
            )
        };
        if got < 0 {
            return -1;
        }
        if error != 0 {
            // SAFETY: setting errno is always allowed.
            unsafe { *libc::__errno_location() = error };
            return -1;
        }
        0
    }
}

// SAFETY: the caller of `connect` keeps `addr` valid for `len` bytes for the call.
unsafe impl Op for Connect<'_> {
    const WAIT: Wait = Wait::Writable;
    const TIMEOUT: TimeoutKind = TimeoutKind::TimedOut;
    // The connection attempt goes on in the kernel after an interruption, as with
    // connect(2) itself.
    const RESTART: bool = false;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::Connect::new(Fd(self.socket.fd), self.addr, self.len).build()
    }

    fn call(&mut self) -> isize {
        if self.saved_flags.is_none() {
            self.start()
        } else {
            self.outcome()
        }
    }
}

impl Drop for Connect<'_> {
    fn drop(&mut self) {
        if let Some(flags) = self.saved_flags {
            // Back to blocking mode, as the io_uring form leaves the socket.
            crate::sys::set_flags(self.socket.fd, flags);
        }
    }
}

/// `connect(2)` to `addr`, with an optional timeout (reported as `TimedOut`).
///
/// # Safety
///
/// `addr` points to `len` valid bytes of a socket address for the whole call.
pub(crate) unsafe fn connect(
    fd: RawFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    timeout: Option<Duration>,
) -> Option<io::Result<()>> {
    let op = Connect {
        socket: Socket::fd(fd),
        addr,
        len,
        saved_flags: None,
    };
    run(op, timeout).map(|r| r.map(drop))
}

/// `recvmsg(2)` with extra flags (`MSG_PEEK`).
struct RecvMsgFlags<'a> {
    socket: Socket<'a>,
    msg: *mut libc::msghdr,
    flags: i32,
}

// SAFETY: the caller of `recvmsg_flags` keeps `msg` and what it points to valid for the
// call.
unsafe impl Op for RecvMsgFlags<'_> {
    const WAIT: Wait = Wait::Readable;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::RecvMsg::new(Fd(self.socket.fd), self.msg)
            .flags(self.flags as u32)
            .build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        unsafe { crate::sys::recvmsg(self.socket.fd, self.msg, self.flags | libc::MSG_DONTWAIT) }
    }
}

/// `recvmsg(2)` with `flags` (e.g. `MSG_PEEK`).
///
/// # Safety
///
/// `msg` and everything it points to (iovecs, buffers, name) stay valid for the call.
pub(crate) unsafe fn recvmsg_flags(
    socket: Socket<'_>,
    msg: *mut libc::msghdr,
    flags: i32,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    run(RecvMsgFlags { socket, msg, flags }, timeout)
}
