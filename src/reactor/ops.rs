//! The blocking operations of `net` and `fs`, each written once: a value implementing
//! [`Op`] (its SQE and its system call), run by the driver of [`super::op`].
//!
//! Each function returns `None` when the caller is not a green thread (it should then make
//! the ordinary blocking system call) and otherwise the op's outcome. All buffers and
//! addresses are borrowed from the caller, and no backend returns before the kernel is
//! done with them.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::time::Duration;

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::{Fd, FsyncFlags};

pub(crate) use super::op::Socket;
pub(crate) use super::op::TimeoutKind;
use super::op::{run, Op, Wait};

/// `IORING_RECVSEND_POLL_FIRST` (Linux 5.19; ignored by older kernels): the kernel arms
/// its readiness poll at once instead of first trying a receive it expects to fail.
const RECVSEND_POLL_FIRST: u16 = 1;

/// Clamps a buffer length to what one SQE can carry.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

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
            libc::recv(
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

/// `send(2)` with `MSG_NOSIGNAL`, as std does.
struct Send<'a> {
    socket: Socket<'a>,
    buf: *const u8,
    len: usize,
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
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        unsafe {
            libc::send(
                self.socket.fd,
                self.buf.cast(),
                self.len,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        }
    }
}

/// `send(2)` of `buf` (with `MSG_NOSIGNAL`, as std does).
pub(crate) fn send(
    socket: Socket<'_>,
    buf: &[u8],
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    let (buf, len) = (buf.as_ptr(), buf.len());
    run(Send { socket, buf, len }, timeout)
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
        unsafe { libc::recvmsg(self.socket.fd, self.msg, libc::MSG_DONTWAIT) }
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

/// `sendmsg(2)` with `MSG_NOSIGNAL`.
struct SendMsg<'a> {
    socket: Socket<'a>,
    msg: *const libc::msghdr,
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
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        unsafe {
            libc::sendmsg(
                self.socket.fd,
                self.msg,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        }
    }
}

/// `sendmsg(2)` (with `MSG_NOSIGNAL`).
///
/// # Safety
///
/// `msg` and everything it points to stay valid for the call.
pub(crate) unsafe fn sendmsg(
    socket: Socket<'_>,
    msg: *const libc::msghdr,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    run(SendMsg { socket, msg }, timeout)
}

/// `accept4(2)` with `SOCK_CLOEXEC`, on a listener that is non-blocking underneath (see
/// `net::socket::Settings::adopt_listener`): `accept4` has no per-call non-blocking flag,
/// and a worker must never block in it when another thread takes the connection first.
struct Accept<'a> {
    socket: Socket<'a>,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
}

// SAFETY: `addr` and `len` are borrowed mutably by the caller of `accept` for the call.
unsafe impl Op for Accept<'_> {
    const WAIT: Wait = Wait::Readable;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::Accept::new(Fd(self.socket.fd), self.addr, self.len)
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl; the listener is non-blocking, so this never waits.
        (unsafe { libc::accept4(self.socket.fd, self.addr, self.len, libc::SOCK_CLOEXEC) }) as isize
    }
}

/// `accept4(2)` with `SOCK_CLOEXEC`, filling `addr`/`len` with the peer's address.
pub(crate) fn accept(
    socket: Socket<'_>,
    addr: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
) -> Option<io::Result<RawFd>> {
    let op = Accept {
        socket,
        addr: (addr as *mut libc::sockaddr_storage).cast(),
        len,
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
        // SAFETY: F_GETFL on an fd the caller owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return -1;
        }
        // SAFETY: F_SETFL on an fd the caller owns.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return -1;
        }
        self.saved_flags = Some(flags);
        // SAFETY: see the impl.
        if unsafe { libc::connect(self.socket.fd, self.addr, self.len) } == 0 {
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
            // SAFETY: F_SETFL on an fd the caller owns.
            unsafe { libc::fcntl(self.socket.fd, libc::F_SETFL, flags) };
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

/// Where a file read or write happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    /// At the file position, advancing it (`read(2)`/`write(2)`), for files that have no
    /// position of their own to look up (pipes, sockets).
    Position,
    /// At an explicit offset, leaving the position alone (`pread(2)`/`pwrite(2)`).
    Offset(u64),
}

impl At {
    /// The offset as io_uring takes it: `u64::MAX` (-1) is its "current position".
    ///
    /// # Errors
    ///
    /// `EINVAL`, as `pread(2)` reports it, for an offset past `i64::MAX`: `off_t` cannot
    /// hold it (std passes it on and the kernel refuses it), and `u64::MAX` would be read
    /// by io_uring as "the current position".
    fn ring_offset(self) -> io::Result<u64> {
        match self {
            At::Position => Ok(u64::MAX),
            At::Offset(offset) if i64::try_from(offset).is_ok() => Ok(offset),
            At::Offset(_) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }
}

/// `pread(2)`/`pwrite(2)`, or `read(2)`/`write(2)` at the file position.
struct ReadWrite {
    fd: RawFd,
    buf: *mut u8,
    len: usize,
    /// Checked by [`At::ring_offset`]: at most `i64::MAX`, or `u64::MAX` for the position.
    offset: u64,
    write: bool,
}

impl ReadWrite {
    /// The op, or `EINVAL` for an offset no file can have (see [`At::ring_offset`]),
    /// refused before it reaches the kernel.
    fn new(fd: RawFd, buf: *mut u8, len: usize, at: At, write: bool) -> io::Result<ReadWrite> {
        Ok(ReadWrite {
            fd,
            buf,
            len,
            offset: at.ring_offset()?,
            write,
        })
    }
}

// SAFETY: `buf` points to `len` bytes borrowed by the caller of `read_at` (mutably) or
// `write_at` for as long as the op lives.
unsafe impl Op for ReadWrite {
    const WAIT: Wait = Wait::Pool;

    fn socket(&self) -> Socket<'_> {
        Socket::fd(self.fd)
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        let (fd, len) = (Fd(self.fd), len_u32(self.len));
        if self.write {
            opcode::Write::new(fd, self.buf, len)
                .offset(self.offset)
                .build()
        } else {
            opcode::Read::new(fd, self.buf, len)
                .offset(self.offset)
                .build()
        }
    }

    fn call(&mut self) -> isize {
        let (fd, buf, len) = (self.fd, self.buf.cast(), self.len);
        // In range: checked by `ReadWrite::new`.
        let offset = self.offset as libc::off_t;
        // SAFETY: see the impl.
        unsafe {
            match (self.write, self.offset == u64::MAX) {
                (false, true) => libc::read(fd, buf, len),
                (false, false) => libc::pread(fd, buf, len, offset),
                (true, true) => libc::write(fd, buf, len),
                (true, false) => libc::pwrite(fd, buf, len, offset),
            }
        }
    }
}

/// Reads into `buf` `at` an offset or the file position; an offset past `i64::MAX` fails
/// with `EINVAL` (green thread or not), as `pread(2)` does.
pub(crate) fn read_at(fd: RawFd, buf: &mut [u8], at: At) -> Option<io::Result<usize>> {
    match ReadWrite::new(fd, buf.as_mut_ptr(), buf.len(), at, false) {
        Ok(op) => run(op, None),
        Err(err) => Some(Err(err)),
    }
}

/// Writes `buf` `at` an offset or the file position; an offset past `i64::MAX` fails with
/// `EINVAL` (green thread or not), as `pwrite(2)` does.
pub(crate) fn write_at(fd: RawFd, buf: &[u8], at: At) -> Option<io::Result<usize>> {
    // Never written through: `write` ops only read the buffer.
    match ReadWrite::new(fd, buf.as_ptr().cast_mut(), buf.len(), at, true) {
        Ok(op) => run(op, None),
        Err(err) => Some(Err(err)),
    }
}

/// `fsync(2)`, or `fdatasync(2)`.
struct Fsync {
    fd: RawFd,
    data_only: bool,
}

// SAFETY: the op holds no pointers.
unsafe impl Op for Fsync {
    const WAIT: Wait = Wait::Pool;

    fn socket(&self) -> Socket<'_> {
        Socket::fd(self.fd)
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        let flags = if self.data_only {
            FsyncFlags::DATASYNC
        } else {
            FsyncFlags::empty()
        };
        opcode::Fsync::new(Fd(self.fd)).flags(flags).build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: no pointers.
        (unsafe {
            if self.data_only {
                libc::fdatasync(self.fd)
            } else {
                libc::fsync(self.fd)
            }
        }) as isize
    }
}

/// `fsync(2)`, or `fdatasync(2)` when `data_only`.
pub(crate) fn fsync(fd: RawFd, data_only: bool) -> Option<io::Result<()>> {
    run(Fsync { fd, data_only }, None).map(|r| r.map(drop))
}

/// A path operation relative to the working directory.
enum PathCall {
    /// `openat(2)` with `O_CLOEXEC` added.
    Open { flags: i32, mode: libc::mode_t },
    /// `unlinkat(2)` of a file.
    Unlink,
    /// `mkdirat(2)`, mode 0o777 less the umask.
    Mkdir,
}

/// A [`PathCall`] on a NUL-terminated path.
struct PathOp {
    path: *const libc::c_char,
    call: PathCall,
}

// SAFETY: `path` is a NUL-terminated string borrowed by the caller for the call.
unsafe impl Op for PathOp {
    const WAIT: Wait = Wait::Pool;

    fn socket(&self) -> Socket<'_> {
        Socket::fd(libc::AT_FDCWD)
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        let cwd = Fd(libc::AT_FDCWD);
        match self.call {
            PathCall::Open { flags, mode } => opcode::OpenAt::new(cwd, self.path)
                .flags(flags | libc::O_CLOEXEC)
                .mode(mode)
                .build(),
            PathCall::Unlink => opcode::UnlinkAt::new(cwd, self.path).build(),
            PathCall::Mkdir => opcode::MkDirAt::new(cwd, self.path).mode(0o777).build(),
        }
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        (unsafe {
            match self.call {
                PathCall::Open { flags, mode } => {
                    libc::open(self.path, flags | libc::O_CLOEXEC, mode as libc::c_uint)
                }
                PathCall::Unlink => libc::unlink(self.path),
                PathCall::Mkdir => libc::mkdir(self.path, 0o777),
            }
        }) as isize
    }
}

fn path_op(path: &CStr, call: PathCall) -> Option<io::Result<usize>> {
    run(
        PathOp {
            path: path.as_ptr(),
            call,
        },
        None,
    )
}

/// `openat(2)` relative to the working directory, with `O_CLOEXEC` added.
pub(crate) fn open(path: &CStr, flags: i32, mode: libc::mode_t) -> Option<io::Result<RawFd>> {
    path_op(path, PathCall::Open { flags, mode }).map(|r| r.map(|fd| fd as RawFd))
}

/// `unlinkat(2)` relative to the working directory.
pub(crate) fn unlink(path: &CStr) -> Option<io::Result<()>> {
    path_op(path, PathCall::Unlink).map(|r| r.map(drop))
}

/// `mkdirat(2)` relative to the working directory, mode 0o777 (less the umask).
pub(crate) fn mkdir(path: &CStr) -> Option<io::Result<()>> {
    path_op(path, PathCall::Mkdir).map(|r| r.map(drop))
}

/// Waits until `fd` is readable: `IORING_OP_POLL_ADD` on io_uring, a zero `poll(2)` retried
/// on readiness on epoll. The result is the `revents` mask. For fds that only announce an
/// event, like a pidfd (readable once its process has exited).
struct PollReadable {
    fd: RawFd,
}

// SAFETY: the op holds no pointers.
unsafe impl Op for PollReadable {
    const WAIT: Wait = Wait::Readable;

    fn socket(&self) -> Socket<'_> {
        Socket::fd(self.fd)
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::PollAdd::new(Fd(self.fd), libc::POLLIN as u32).build()
    }

    fn call(&mut self) -> isize {
        poll_now(self.fd, libc::POLLIN)
    }
}

/// A zero-timeout `poll(2)` of `fd` for `events`: the `revents` mask, or -1 with `EAGAIN`
/// when nothing is ready (and -1 with `errno` on failure).
fn poll_now(fd: RawFd, events: i16) -> isize {
    let mut poll = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    match unsafe { libc::poll(&mut poll, 1, 0) } {
        n if n < 0 => -1,
        0 => {
            // SAFETY: setting errno is always allowed.
            unsafe { *libc::__errno_location() = libc::EAGAIN };
            -1
        }
        _ => poll.revents as isize,
    }
}

/// Waits until `fd` is readable (or has hung up); the `revents` mask.
pub(crate) fn poll_readable(fd: RawFd) -> Option<io::Result<usize>> {
    run(PollReadable { fd }, None)
}

/// `read(2)`/`write(2)` on a pipe or terminal left in blocking mode (a child's pipes,
/// standard input), which may be shared with code that expects it blocking.
///
/// io_uring takes the fd as it is (`IORING_OP_READ`/`WRITE` at the current position: the
/// kernel polls a pipe that has no data or room, or runs the call on its own workers). The
/// system call form, which cannot pass a per-call non-blocking flag, first checks with a
/// zero `poll` (as [`Accept`] does): a read then finds data, and a write of at most
/// `PIPE_BUF` bytes (the form writes no more at once) finds room. Should another reader of
/// the same pipe take the data in between, the read blocks the worker until more comes.
struct Stream {
    fd: RawFd,
    buf: *mut u8,
    len: usize,
    write: bool,
}

// SAFETY: `buf` points to `len` bytes borrowed by the caller of `stream_read` (mutably)
// or `stream_write` for as long as the op lives.
unsafe impl Op for Stream {
    const WAIT: Wait = Wait::Readable;

    fn socket(&self) -> Socket<'_> {
        Socket::fd(self.fd)
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        let (fd, len) = (Fd(self.fd), len_u32(self.len));
        if self.write {
            opcode::Write::new(fd, self.buf, len)
                .offset(u64::MAX)
                .build()
        } else {
            opcode::Read::new(fd, self.buf, len)
                .offset(u64::MAX)
                .build()
        }
    }

    fn call(&mut self) -> isize {
        let events = if self.write {
            libc::POLLOUT
        } else {
            libc::POLLIN
        };
        if poll_now(self.fd, events) < 0 {
            return -1;
        }
        // SAFETY: see the impl.
        unsafe {
            if self.write {
                libc::write(self.fd, self.buf.cast(), self.len.min(libc::PIPE_BUF))
            } else {
                libc::read(self.fd, self.buf.cast(), self.len)
            }
        }
    }
}

/// Runs a [`Stream`] op, waiting for writability rather than readability for a write.
fn run_stream(op: Stream) -> Option<io::Result<usize>> {
    if op.write {
        run(StreamWrite(op), None)
    } else {
        run(op, None)
    }
}

/// A [`Stream`] write, which waits for writability.
struct StreamWrite(Stream);

// SAFETY: as for `Stream`.
unsafe impl Op for StreamWrite {
    const WAIT: Wait = Wait::Writable;

    fn socket(&self) -> Socket<'_> {
        self.0.socket()
    }

    fn call_first(&self) -> bool {
        // A pipe usually has room.
        true
    }

    fn entry(&mut self, empty: bool) -> Entry {
        self.0.entry(empty)
    }

    fn call(&mut self) -> isize {
        self.0.call()
    }
}

/// `read(2)` into `buf` from a pipe or terminal in blocking mode (see [`Stream`]).
pub(crate) fn stream_read(fd: RawFd, buf: &mut [u8]) -> Option<io::Result<usize>> {
    run_stream(Stream {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len(),
        write: false,
    })
}

/// `write(2)` of `buf` to a pipe or terminal in blocking mode (see [`Stream`]).
pub(crate) fn stream_write(fd: RawFd, buf: &[u8]) -> Option<io::Result<usize>> {
    run_stream(Stream {
        fd,
        // Never written through: `write` ops only read the buffer.
        buf: buf.as_ptr().cast_mut(),
        len: buf.len(),
        write: true,
    })
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
        unsafe { libc::recvmsg(self.socket.fd, self.msg, self.flags | libc::MSG_DONTWAIT) }
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

/// `statx(2)` of `path` relative to `dirfd` (with `AT_EMPTY_PATH` and an empty path: of
/// `dirfd` itself), into `buf`.
struct Statx {
    dirfd: RawFd,
    path: *const libc::c_char,
    flags: i32,
    mask: u32,
    buf: *mut libc::statx,
}

// SAFETY: `path` is a NUL-terminated string and `buf` a writable `statx`, both borrowed
// by the caller of `statx` for as long as the op lives.
unsafe impl Op for Statx {
    const WAIT: Wait = Wait::Pool;

    fn socket(&self) -> Socket<'_> {
        Socket::fd(self.dirfd)
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::Statx::new(Fd(self.dirfd), self.path, self.buf.cast())
            .flags(self.flags)
            .mask(self.mask)
            .build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: see the impl.
        (unsafe { libc::statx(self.dirfd, self.path, self.flags, self.mask, self.buf) }) as isize
    }
}

/// `statx(2)` of `path` relative to `dirfd` with `flags` (`AT_SYMLINK_NOFOLLOW`,
/// `AT_EMPTY_PATH`), asking for the fields in `mask`.
pub(crate) fn statx(
    dirfd: RawFd,
    path: &CStr,
    flags: i32,
    mask: u32,
) -> Option<io::Result<libc::statx>> {
    // SAFETY: `statx` is plain data, for which all zeroes is a valid value.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    let op = Statx {
        dirfd,
        path: path.as_ptr(),
        flags,
        mask,
        buf: &mut buf,
    };
    run(op, None).map(|result| result.map(|_| buf))
}

/// `ftruncate(2)`: `IORING_OP_FTRUNCATE` (Linux 6.9) on io_uring.
struct Ftruncate {
    fd: RawFd,
    len: u64,
}

// SAFETY: the op holds no pointers.
unsafe impl Op for Ftruncate {
    const WAIT: Wait = Wait::Pool;

    fn socket(&self) -> Socket<'_> {
        Socket::fd(self.fd)
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::Ftruncate::new(Fd(self.fd), self.len).build()
    }

    fn call(&mut self) -> isize {
        // SAFETY: no pointers. `ftruncate` only takes the length as a signed `off_t`; a
        // length past `i64::MAX` becomes negative and fails with EINVAL, as in the SQE.
        (unsafe { libc::ftruncate(self.fd, self.len as libc::off_t) }) as isize
    }
}

/// `ftruncate(2)` of `fd` to `len` bytes; also `None` on a green thread whose ring's
/// kernel lacks `IORING_OP_FTRUNCATE` (older than 6.9): the caller then runs the call on
/// the blocking pool.
pub(crate) fn ftruncate(fd: RawFd, len: u64) -> Option<io::Result<()>> {
    let worker = crate::sched::current::worker()?;
    if let super::Reactor::Uring(ring) = worker.reactor() {
        if !ring.supports(opcode::Ftruncate::CODE) {
            return None;
        }
    }
    drop(worker);
    run(Ftruncate { fd, len }, None).map(|r| r.map(drop))
}
