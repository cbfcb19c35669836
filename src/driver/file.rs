//! File and path ops: reads and writes at an offset or the file position, syncs, opens,
//! unlinks, directories, `statx` and `ftruncate`, each a value in both of its forms (see
//! [`Op`]). They have no readiness: on the epoll backend they run on the blocking pool.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::{Fd, FsyncFlags};

use super::op::{len_u32, Op, Wait};
use super::run;
use crate::reactor::Socket;

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
                (false, true) => crate::sys::read(fd, buf, len),
                (false, false) => crate::sys::pread(fd, buf, len, offset),
                (true, true) => crate::sys::write(fd, buf, len),
                (true, false) => crate::sys::pwrite(fd, buf, len, offset),
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
