//! What an op is: a value that knows the kernel call it stands for in both of its forms,
//! an io_uring SQE and the plain system call (non-blocking for sockets). It borrows the
//! caller's buffers and addresses; the green thread's own buffer stays the buffer. The
//! driver (`super::run`) runs every op the same way.

use std::io;

use io_uring::squeue::Entry;

use crate::reactor::Socket;

/// How an expired timeout is reported, mirroring std on Linux.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TimeoutKind {
    /// Socket read/write timeouts: `EAGAIN`, i.e. `ErrorKind::WouldBlock` (as std's
    /// `SO_RCVTIMEO`/`SO_SNDTIMEO`).
    WouldBlock,
    /// `connect_timeout`: `ErrorKind::TimedOut`.
    TimedOut,
}

impl TimeoutKind {
    /// The error for an expired timeout of this kind.
    pub(crate) fn error(self) -> io::Error {
        match self {
            TimeoutKind::WouldBlock => io::Error::from_raw_os_error(libc::EAGAIN),
            TimeoutKind::TimedOut => {
                io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
            }
        }
    }
}

/// What an op's system call waits for when it would block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The fd becoming readable (recv, accept).
    Readable,
    /// The fd becoming writable (send, connect).
    Writable,
    /// Nothing the kernel can announce (files): the call runs on the blocking pool.
    Pool,
}

/// One kernel operation, in its two forms.
///
/// # Safety
///
/// Every pointer the SQE of [`Op::entry`] holds, and every pointer [`Op::call`] passes to
/// the kernel, stays valid for as long as the op value lives (the driver keeps the value
/// alive until the kernel is done with it).
pub(crate) unsafe trait Op {
    /// What the system call waits for when it would block.
    const WAIT: Wait;
    /// How an expired timeout is reported.
    const TIMEOUT: TimeoutKind = TimeoutKind::WouldBlock;
    /// `false` for ops that must not be restarted after `EINTR` (a connect goes on in the
    /// kernel).
    const RESTART: bool = true;

    /// The fd the op works on (for readiness waits).
    fn socket(&self) -> Socket<'_>;

    /// `true` when the io_uring backend should try the system call first: it usually
    /// succeeds at once.
    fn call_first(&self) -> bool {
        false
    }

    /// The op as an SQE (without `user_data`: the driver tags it). `empty` is `true` when
    /// the system call just reported `EAGAIN`, so the op will have to wait for readiness.
    fn entry(&mut self, empty: bool) -> Entry;

    /// The system call, non-blocking when the op waits for readiness: the result, or -1
    /// with `errno` set. For [`Wait::Pool`] ops it runs on a pool thread and may block.
    fn call(&mut self) -> isize;
}

/// Clamps a buffer length to what one SQE can carry.
pub(super) fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
