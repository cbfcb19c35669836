//! Ops on fds that only announce events or stay in blocking mode: a poll for readability
//! (a pidfd), and reads and writes of pipes and terminals shared with code that expects
//! them blocking.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::Fd;

use super::op::{len_u32, Op, Wait};
use super::run;
use crate::reactor::Socket;

/// Waits until `fd` has one of `events` (readiness for a read unless `WRITE`):
/// `IORING_OP_POLL_ADD` on io_uring, a zero `poll(2)` retried on readiness on epoll. The
/// result is the `revents` mask. For fds that only announce an event, like a pidfd
/// (readable once its process has exited), and for `poll` of one fd by code greenring does
/// not own.
struct PollFor<'a, const WRITE: bool> {
    socket: Socket<'a>,
    events: i16,
}

// SAFETY: the op holds no pointers.
unsafe impl<const WRITE: bool> Op for PollFor<'_, WRITE> {
    const WAIT: Wait = if WRITE {
        Wait::Writable
    } else {
        Wait::Readable
    };

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        opcode::PollAdd::new(Fd(self.socket.fd), self.events as u16 as u32).build()
    }

    fn call(&mut self) -> isize {
        poll_now(self.socket.fd, self.events)
    }
}

/// A zero-timeout `poll(2)` of `fd` for `events`: the `revents` mask, or -1 with `EAGAIN`
/// when nothing is ready (and -1 with `errno` on failure).
pub(super) fn poll_now(fd: RawFd, events: i16) -> isize {
    let mut poll = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    match unsafe { crate::sys::poll(&mut poll, 1, 0) } {
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
    let op: PollFor<'_, false> = PollFor {
        socket: Socket::fd(fd),
        events: libc::POLLIN,
    };
    run(op, None)
}

/// Waits until `socket` has one of `events`, or `timeout` passes (`WouldBlock`); the
/// `revents` mask. On epoll it waits for writability when `events` asks only for output.
#[cfg_attr(not(feature = "hooks"), allow(dead_code))]
pub(crate) fn poll_for(
    socket: Socket<'_>,
    events: i16,
    timeout: Option<Duration>,
) -> Option<io::Result<usize>> {
    if events & libc::POLLIN == 0 && events & libc::POLLOUT != 0 {
        run(PollFor::<true> { socket, events }, timeout)
    } else {
        run(PollFor::<false> { socket, events }, timeout)
    }
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
struct Stream<'a> {
    socket: Socket<'a>,
    buf: *mut u8,
    len: usize,
    write: bool,
}

// SAFETY: `buf` points to `len` bytes borrowed by the caller of `stream_read` (mutably)
// or `stream_write` for as long as the op lives.
unsafe impl Op for Stream<'_> {
    const WAIT: Wait = Wait::Readable;

    fn socket(&self) -> Socket<'_> {
        self.socket
    }

    fn entry(&mut self, _empty: bool) -> Entry {
        let (fd, len) = (Fd(self.socket.fd), len_u32(self.len));
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
        let fd = self.socket.fd;
        if poll_now(fd, events) < 0 {
            return -1;
        }
        // SAFETY: see the impl.
        unsafe {
            if self.write {
                crate::sys::write(fd, self.buf.cast(), self.len.min(libc::PIPE_BUF))
            } else {
                crate::sys::read(fd, self.buf.cast(), self.len)
            }
        }
    }
}

/// Runs a [`Stream`] op, waiting for writability rather than readability for a write.
fn run_stream(op: Stream<'_>) -> Option<io::Result<usize>> {
    if op.write {
        run(StreamWrite(op), None)
    } else {
        run(op, None)
    }
}

/// A [`Stream`] write, which waits for writability.
struct StreamWrite<'a>(Stream<'a>);

// SAFETY: as for `Stream`.
unsafe impl Op for StreamWrite<'_> {
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
pub(crate) fn stream_read(socket: Socket<'_>, buf: &mut [u8]) -> Option<io::Result<usize>> {
    run_stream(Stream {
        socket,
        buf: buf.as_mut_ptr(),
        len: buf.len(),
        write: false,
    })
}

/// `write(2)` of `buf` to a pipe or terminal in blocking mode (see [`Stream`]).
pub(crate) fn stream_write(socket: Socket<'_>, buf: &[u8]) -> Option<io::Result<usize>> {
    run_stream(Stream {
        socket,
        // Never written through: `write` ops only read the buffer.
        buf: buf.as_ptr().cast_mut(),
        len: buf.len(),
        write: true,
    })
}
