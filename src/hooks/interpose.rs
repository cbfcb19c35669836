//! The interposed symbols (see the module above for what each does). Every hook's contract
//! is the libc function's of the same name.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use libc::{c_char, c_int, c_uint, c_ulong, c_void, size_t, sockaddr, socklen_t, ssize_t};

use super::fds::{self, Info, Kind};
use crate::reactor::Socket;
use crate::task::point::Cancelled;

/// Sets `errno`.
fn set_errno(errno: c_int) {
    // SAFETY: errno is this thread's; writing it is always allowed.
    unsafe { *libc::__errno_location() = errno };
}

/// A driver's outcome as a C call returns it: the count, or -1 with `errno`.
fn c_result(result: io::Result<usize>) -> ssize_t {
    match result {
        Ok(n) => n as ssize_t,
        Err(err) => {
            set_errno(err.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
    }
}

/// Runs a hook's green-thread part, which may park: during its runtime's shutdown a
/// blocking point unwinds the thread with `Cancelled`, but no unwind may leave a hook (its
/// C caller has no landing pads), so the hook gets `Err` instead and fails its call
/// (`ECANCELED`) or returns early (a sleep). Any other panic here is greenring's bug, and
/// aborts, as an unwind out of an `extern "C"` function would.
fn green<T>(call: impl FnOnce() -> T) -> Result<T, Cancelled> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(value) => Ok(value),
        Err(payload) if payload.is::<Cancelled>() => Err(Cancelled),
        Err(_) => {
            crate::report::error(format_args!(
                "greenring: a hooked libc call panicked inside greenring; aborting"
            ));
            std::process::abort()
        }
    }
}

/// A driver's outcome (`None`: make the plain call) as the hook's, `ECANCELED` if the
/// runtime's shutdown cancelled it (see [`green`]).
fn green_op<T>(call: impl FnOnce() -> Option<io::Result<T>>) -> Option<io::Result<T>> {
    green(call).unwrap_or_else(|Cancelled| Some(Err(io::Error::from_raw_os_error(libc::ECANCELED))))
}

/// `fd` as the driver takes it, with its number's generation (see `fds`).
fn socket_of(fd: RawFd, info: &Info) -> Socket<'static> {
    match info.generation {
        Some((counter, seen)) => Socket::of_generation(fd, counter, seen),
        None => Socket::fd(fd),
    }
}

/// What a green thread's hooked call on `fd` should do: `Some` with what the hooks know of
/// it when it should park (a blocking fd of a kind that waits), `None` for the plain call.
fn parking(fd: RawFd, kinds: &[Kind]) -> Option<Info> {
    if fd <= libc::STDERR_FILENO || !crate::driver::parks() {
        // The standard streams stay plain calls: std's `Stdout` and `Stderr` are locks
        // reentrant per OS thread around a `RefCell`, so a green thread parked in their
        // `write` would let another green thread of its worker into the same `RefCell`
        // (a panic: "already borrowed"), and `Stdin`'s lock, held across a parked `read`,
        // would block the next reader's OS thread (see the module documentation).
        return None;
    }
    let info = fds::info(fd);
    (!info.nonblocking && kinds.contains(&info.kind)).then_some(info)
}

/// `buf` as a slice (a null pointer is only valid with a zero length).
///
/// # Safety
///
/// `buf` is valid for `len` bytes, or `len` is 0.
unsafe fn bytes_mut<'a>(buf: *mut c_void, len: size_t) -> &'a mut [u8] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: forwarded from the caller.
    unsafe { std::slice::from_raw_parts_mut(buf.cast(), len) }
}

/// As [`bytes_mut`], shared.
///
/// # Safety
///
/// As [`bytes_mut`].
unsafe fn bytes<'a>(buf: *const c_void, len: size_t) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: forwarded from the caller.
    unsafe { std::slice::from_raw_parts(buf.cast(), len) }
}

/// A `msghdr` for `iov` and an optional address.
fn msghdr(
    iov: *const libc::iovec,
    iovcnt: c_int,
    name: *mut c_void,
    namelen: socklen_t,
) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.cast_mut();
    msg.msg_iovlen = iovcnt.max(0) as _;
    msg.msg_name = name;
    msg.msg_namelen = namelen;
    msg
}

/// The first non-empty buffer of `iov`, or an empty one.
///
/// # Safety
///
/// `iov` points to `iovcnt` valid iovecs.
unsafe fn first_buffer(iov: *const libc::iovec, iovcnt: c_int) -> (*mut c_void, size_t) {
    for i in 0..iovcnt.max(0) as usize {
        // SAFETY: within the caller's array.
        let v = unsafe { *iov.add(i) };
        if v.iov_len != 0 {
            return (v.iov_base, v.iov_len);
        }
    }
    (std::ptr::null_mut(), 0)
}

/// A pipe, FIFO or character device epoll refuses (`EPERM`): the plain call after all.
fn refused_by_epoll(result: &Option<io::Result<usize>>) -> bool {
    matches!(result, Some(Err(err)) if err.raw_os_error() == Some(libc::EPERM))
}

/// As libc's `recv`.
///
/// # Safety
///
/// As libc's `recv`.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    if flags & libc::MSG_DONTWAIT == 0 {
        if let Some(info) = parking(fd, &[Kind::Socket]) {
            // SAFETY: the caller's buffer.
            let buf = unsafe { bytes_mut(buf, len) };
            if let Some(result) = green_op(|| {
                crate::driver::recv(socket_of(fd, &info), buf, flags, info.read_timeout)
            }) {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::recv(fd, buf, len, flags) }
}

/// As libc's `recvfrom`.
///
/// # Safety
///
/// As libc's `recvfrom`.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    if flags & libc::MSG_DONTWAIT == 0 {
        if let Some(info) = parking(fd, &[Kind::Socket]) {
            let iov = libc::iovec {
                iov_base: buf,
                iov_len: len,
            };
            let namelen = if addr.is_null() || addrlen.is_null() {
                0
            } else {
                // SAFETY: the caller's length.
                unsafe { *addrlen }
            };
            let mut msg = msghdr(&iov, 1, addr.cast(), namelen);
            if addr.is_null() {
                msg.msg_name = std::ptr::null_mut();
            }
            // SAFETY: `msg` points at the caller's buffer and address, valid for the call.
            let result = green_op(|| unsafe {
                crate::driver::recvmsg_flags(
                    socket_of(fd, &info),
                    &mut msg,
                    flags,
                    info.read_timeout,
                )
            });
            if let Some(result) = result {
                if result.is_ok() && !addr.is_null() && !addrlen.is_null() {
                    // SAFETY: the caller's length.
                    unsafe { *addrlen = msg.msg_namelen };
                }
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::recvfrom(fd, buf, len, flags, addr, addrlen) }
}

/// As libc's `recvmsg`.
///
/// # Safety
///
/// As libc's `recvmsg`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t {
    if flags & libc::MSG_DONTWAIT == 0 {
        if let Some(info) = parking(fd, &[Kind::Socket]) {
            // SAFETY: the caller's message, valid for the call.
            let result = green_op(|| unsafe {
                crate::driver::recvmsg_flags(socket_of(fd, &info), msg, flags, info.read_timeout)
            });
            if let Some(result) = result {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::recvmsg(fd, msg, flags) }
}

/// As libc's `send`.
///
/// # Safety
///
/// As libc's `send`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    if flags & libc::MSG_DONTWAIT == 0 {
        if let Some(info) = parking(fd, &[Kind::Socket]) {
            // SAFETY: the caller's buffer.
            let buf = unsafe { bytes(buf, len) };
            if let Some(result) = green_op(|| {
                crate::driver::send(socket_of(fd, &info), buf, flags, info.write_timeout)
            }) {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::send(fd, buf, len, flags) }
}

/// As libc's `sendto`.
///
/// # Safety
///
/// As libc's `sendto`.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> ssize_t {
    if addr.is_null() {
        // SAFETY: forwarded.
        return unsafe { send(fd, buf, len, flags) };
    }
    if flags & libc::MSG_DONTWAIT == 0 {
        if let Some(info) = parking(fd, &[Kind::Socket]) {
            let iov = libc::iovec {
                iov_base: buf.cast_mut(),
                iov_len: len,
            };
            let msg = msghdr(&iov, 1, addr.cast_mut().cast(), addrlen);
            // SAFETY: `msg` points at the caller's buffer and address, valid for the call.
            let result = green_op(|| unsafe {
                crate::driver::sendmsg(socket_of(fd, &info), &msg, flags, info.write_timeout)
            });
            if let Some(result) = result {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::sendto(fd, buf, len, flags, addr, addrlen) }
}

/// As libc's `sendmsg`.
///
/// # Safety
///
/// As libc's `sendmsg`.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t {
    if flags & libc::MSG_DONTWAIT == 0 {
        if let Some(info) = parking(fd, &[Kind::Socket]) {
            // SAFETY: the caller's message, valid for the call.
            let result = green_op(|| unsafe {
                crate::driver::sendmsg(socket_of(fd, &info), msg, flags, info.write_timeout)
            });
            if let Some(result) = result {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::sendmsg(fd, msg, flags) }
}

/// As libc's `read`.
///
/// # Safety
///
/// As libc's `read`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    if let Some(info) = parking(fd, &[Kind::Socket, Kind::Stream]) {
        // SAFETY: the caller's buffer.
        let slice = unsafe { bytes_mut(buf, len) };
        let result = match info.kind {
            Kind::Socket => {
                green_op(|| crate::driver::recv(socket_of(fd, &info), slice, 0, info.read_timeout))
            }
            _ => green_op(|| crate::driver::stream_read(socket_of(fd, &info), slice)),
        };
        if !refused_by_epoll(&result) {
            if let Some(result) = result {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::read(fd, buf, len) }
}

/// As libc's `write`.
///
/// # Safety
///
/// As libc's `write`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    if let Some(info) = parking(fd, &[Kind::Socket, Kind::Stream]) {
        // SAFETY: the caller's buffer.
        let slice = unsafe { bytes(buf, len) };
        let result = match info.kind {
            Kind::Socket => {
                green_op(|| crate::driver::send(socket_of(fd, &info), slice, 0, info.write_timeout))
            }
            _ => green_op(|| crate::driver::stream_write(socket_of(fd, &info), slice)),
        };
        if !refused_by_epoll(&result) {
            if let Some(result) = result {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::write(fd, buf, len) }
}

/// As libc's `readv`.
///
/// # Safety
///
/// As libc's `readv`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, iovcnt: c_int) -> ssize_t {
    if let Some(info) = parking(fd, &[Kind::Socket, Kind::Stream]) {
        let result = match info.kind {
            Kind::Socket => {
                let mut msg = msghdr(iov, iovcnt, std::ptr::null_mut(), 0);
                // SAFETY: `msg` points at the caller's buffers, valid for the call.
                green_op(|| unsafe {
                    crate::driver::recvmsg_flags(
                        socket_of(fd, &info),
                        &mut msg,
                        0,
                        info.read_timeout,
                    )
                })
            }
            _ => {
                // SAFETY: the caller's array and its buffers.
                let (buf, len) = unsafe { first_buffer(iov, iovcnt) };
                // SAFETY: as above.
                let buf = unsafe { bytes_mut(buf, len) };
                green_op(|| crate::driver::stream_read(socket_of(fd, &info), buf))
            }
        };
        if !refused_by_epoll(&result) {
            if let Some(result) = result {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded: readv has the system call's contract.
    unsafe { libc::syscall(libc::SYS_readv, fd, iov, iovcnt) as ssize_t }
}

/// As libc's `writev`.
///
/// # Safety
///
/// As libc's `writev`.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const libc::iovec, iovcnt: c_int) -> ssize_t {
    if let Some(info) = parking(fd, &[Kind::Socket, Kind::Stream]) {
        let result = match info.kind {
            Kind::Socket => {
                let msg = msghdr(iov, iovcnt, std::ptr::null_mut(), 0);
                // SAFETY: `msg` points at the caller's buffers, valid for the call.
                green_op(|| unsafe {
                    crate::driver::sendmsg(socket_of(fd, &info), &msg, 0, info.write_timeout)
                })
            }
            _ => {
                // SAFETY: the caller's array and its buffers.
                let (buf, len) = unsafe { first_buffer(iov, iovcnt) };
                // SAFETY: as above.
                let buf = unsafe { bytes(buf, len) };
                green_op(|| crate::driver::stream_write(socket_of(fd, &info), buf))
            }
        };
        if !refused_by_epoll(&result) {
            if let Some(result) = result {
                return c_result(result);
            }
        }
    }
    // SAFETY: forwarded: writev has the system call's contract.
    unsafe { libc::syscall(libc::SYS_writev, fd, iov, iovcnt) as ssize_t }
}

extern "C" {
    /// glibc's report of a failed `_FORTIFY_SOURCE` check: aborts the program.
    fn __chk_fail() -> !;
}

/// As glibc's `__read_chk`: `read` as code built with `_FORTIFY_SOURCE` calls it when the
/// buffer's size is known (glibc's own would make its internal, unhooked `read`).
///
/// # Safety
///
/// As libc's `read`.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
) -> ssize_t {
    if len > buflen {
        // SAFETY: always allowed: it aborts.
        unsafe { __chk_fail() }
    }
    // SAFETY: forwarded.
    unsafe { read(fd, buf, len) }
}

/// As glibc's `__recv_chk` (see [`__read_chk`]).
///
/// # Safety
///
/// As libc's `recv`.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if len > buflen {
        // SAFETY: always allowed: it aborts.
        unsafe { __chk_fail() }
    }
    // SAFETY: forwarded.
    unsafe { recv(fd, buf, len, flags) }
}

/// As glibc's `__recvfrom_chk` (see [`__read_chk`]).
///
/// # Safety
///
/// As libc's `recvfrom`.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    if len > buflen {
        // SAFETY: always allowed: it aborts.
        unsafe { __chk_fail() }
    }
    // SAFETY: forwarded.
    unsafe { recvfrom(fd, buf, len, flags, addr, addrlen) }
}

/// As glibc's `__poll_chk` (see [`__read_chk`]): `fdslen` is the array's size in bytes.
///
/// # Safety
///
/// As libc's `poll`.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if (fdslen / std::mem::size_of::<libc::pollfd>()) < nfds as size_t {
        // SAFETY: always allowed: it aborts.
        unsafe { __chk_fail() }
    }
    // SAFETY: forwarded.
    unsafe { poll(fds, nfds, timeout) }
}

/// As glibc's `__ppoll_chk` (see [`__poll_chk`]).
///
/// # Safety
///
/// As libc's `ppoll`.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
    fdslen: size_t,
) -> c_int {
    if (fdslen / std::mem::size_of::<libc::pollfd>()) < nfds as size_t {
        // SAFETY: always allowed: it aborts.
        unsafe { __chk_fail() }
    }
    // SAFETY: forwarded.
    unsafe { ppoll(fds, nfds, timeout, sigmask) }
}

/// As libc's `connect`.
///
/// # Safety
///
/// As libc's `connect`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if let Some(info) = parking(fd, &[Kind::Socket]) {
        let connected = green_op(|| {
            // SAFETY: the caller's address, valid for the call.
            unsafe { crate::driver::connect(fd, addr, len, info.write_timeout) }
        });
        if let Some(result) = connected {
            return match result {
                Ok(()) => 0,
                // As the kernel reports a blocking connect that outlived SO_SNDTIMEO.
                Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                    set_errno(libc::EINPROGRESS);
                    -1
                }
                Err(err) => c_result(Err(err)) as c_int,
            };
        }
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::connect(fd, addr, len) }
}

/// As libc's `accept4`.
///
/// # Safety
///
/// As libc's `accept4`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    if parking(fd, &[Kind::Socket]).is_some() {
        let accepted = green_op(|| {
            // SAFETY: the caller's address and length, valid for the call.
            unsafe { crate::driver::accept_blocking_listener(fd, addr, len, flags) }
        });
        if let Some(result) = accepted {
            return match result {
                Ok(new) => {
                    fds::replaced(new);
                    new
                }
                Err(err) => c_result(Err(err)) as c_int,
            };
        }
    }
    // SAFETY: forwarded.
    let new = unsafe { crate::sys::accept4(fd, addr, len, flags) };
    fds::replaced(new);
    new
}

/// As libc's `accept`.
///
/// # Safety
///
/// As libc's `accept`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: forwarded: accept is accept4 without flags.
    unsafe { accept4(fd, addr, len, 0) }
}

/// The wait of `poll` on a green thread with a timeout: `None` for the plain call.
///
/// # Safety
///
/// `fds` points to `nfds` valid pollfds.
unsafe fn green_poll(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: Option<Duration>,
) -> Option<c_int> {
    if timeout == Some(Duration::ZERO) || !crate::driver::parks() {
        return None;
    }
    // SAFETY: forwarded; a zero timeout never waits.
    let ready = unsafe { crate::sys::poll(fds, nfds, 0) };
    if ready != 0 {
        return Some(ready);
    }
    let deadline = timeout.and_then(crate::timeout::deadline_after);
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if nfds == 1 {
        // SAFETY: one valid pollfd.
        let (fd, events) = unsafe { ((*fds).fd, (*fds).events) };
        let info = fds::info(fd);
        return match green_op(|| crate::driver::poll_for(socket_of(fd, &info), events, left()))? {
            // SAFETY: as above; the zero timeout reads the events now.
            Ok(_) => Some(unsafe { crate::sys::poll(fds, nfds, 0) }),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Some(0),
            Err(err) => Some(c_result(Err(err)) as c_int),
        };
    }
    // Several fds (or none): rounds of at most 10 ms.
    let mut round = Duration::from_millis(1);
    loop {
        let nap = left().map_or(round, |left| left.min(round));
        if nap.is_zero() {
            return Some(0);
        }
        if green(|| crate::driver::sleep_until(Instant::now() + nap)).is_err() {
            return Some(c_result(Err(io::Error::from_raw_os_error(libc::ECANCELED))) as c_int);
        }
        if nfds > 0 {
            // SAFETY: forwarded; a zero timeout never waits.
            let ready = unsafe { crate::sys::poll(fds, nfds, 0) };
            if ready != 0 {
                return Some(ready);
            }
        }
        round = (round * 2).min(Duration::from_millis(10));
    }
}

/// As libc's `poll`.
///
/// # Safety
///
/// As libc's `poll`.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    let wait = (timeout >= 0).then(|| Duration::from_millis(timeout as u64));
    // SAFETY: forwarded.
    if let Some(ready) = unsafe { green_poll(fds, nfds, wait) } {
        return ready;
    }
    // SAFETY: forwarded.
    unsafe { crate::sys::poll(fds, nfds, timeout) }
}

/// As libc's `ppoll`.
///
/// # Safety
///
/// As libc's `ppoll`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    if sigmask.is_null() {
        // SAFETY: the caller's timespec, or null.
        let wait = unsafe { timeout.as_ref() }.map(duration_of);
        // SAFETY: forwarded.
        if let Some(ready) = unsafe { green_poll(fds, nfds, wait) } {
            return ready;
        }
    }
    // SAFETY: forwarded: ppoll has the system call's contract (the kernel's sigset size).
    unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            fds,
            nfds,
            timeout,
            sigmask,
            std::mem::size_of::<c_ulong>(),
        ) as c_int
    }
}

/// A timespec as a duration (negative fields count as zero).
fn duration_of(ts: &libc::timespec) -> Duration {
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Sleeps the calling green thread for `duration`; `false` off green threads.
fn green_sleep(duration: Duration) -> bool {
    if !crate::driver::parks() {
        return false;
    }
    let now = Instant::now();
    // Cancelled by the runtime's shutdown: the sleep ends early (see `green`).
    green(|| crate::driver::sleep_until(now + crate::timeout::saturate(duration))).unwrap_or(true)
}

/// As libc's `nanosleep`.
///
/// # Safety
///
/// As libc's `nanosleep`.
#[no_mangle]
pub unsafe extern "C" fn nanosleep(req: *const libc::timespec, rem: *mut libc::timespec) -> c_int {
    // SAFETY: the caller's timespec, or null (an error the plain call reports).
    if let Some(req) = unsafe { req.as_ref() } {
        if req.tv_nsec >= 0
            && req.tv_nsec < 1_000_000_000
            && req.tv_sec >= 0
            && green_sleep(duration_of(req))
        {
            return 0;
        }
    }
    // SAFETY: forwarded.
    unsafe { libc::syscall(libc::SYS_nanosleep, req, rem) as c_int }
}

/// As libc's `clock_nanosleep` (which returns the error number rather than setting
/// `errno`).
///
/// # Safety
///
/// As libc's `clock_nanosleep`.
#[no_mangle]
pub unsafe extern "C" fn clock_nanosleep(
    clock: libc::clockid_t,
    flags: c_int,
    req: *const libc::timespec,
    rem: *mut libc::timespec,
) -> c_int {
    // SAFETY: the caller's timespec, or null (an error the plain call reports).
    if let Some(req) = unsafe { req.as_ref() } {
        if req.tv_nsec >= 0 && req.tv_nsec < 1_000_000_000 {
            let wait = if flags & libc::TIMER_ABSTIME != 0 {
                let mut now = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `now` is valid; a bad clock is an error we pass on below.
                let known = unsafe { libc::clock_gettime(clock, &mut now) } == 0;
                known.then(|| duration_of(req).saturating_sub(duration_of(&now)))
            } else {
                Some(duration_of(req))
            };
            if wait.is_some_and(green_sleep) {
                return 0;
            }
        }
    }
    // SAFETY: forwarded.
    let rc = unsafe { libc::syscall(libc::SYS_clock_nanosleep, clock, flags, req, rem) };
    if rc < 0 {
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() }
    } else {
        0
    }
}

/// As libc's `usleep`.
///
/// # Safety
///
/// As libc's `usleep`.
#[no_mangle]
pub unsafe extern "C" fn usleep(usec: libc::useconds_t) -> c_int {
    let wait = Duration::from_micros(u64::from(usec));
    if green_sleep(wait) {
        return 0;
    }
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `ts` is valid for the call.
    unsafe {
        libc::syscall(
            libc::SYS_nanosleep,
            &ts,
            std::ptr::null_mut::<libc::timespec>(),
        ) as c_int
    }
}

/// As libc's `sleep`.
///
/// # Safety
///
/// As libc's `sleep`.
#[no_mangle]
pub unsafe extern "C" fn sleep(seconds: c_uint) -> c_uint {
    if green_sleep(Duration::from_secs(u64::from(seconds))) {
        return 0;
    }
    let ts = libc::timespec {
        tv_sec: seconds as libc::time_t,
        tv_nsec: 0,
    };
    let mut rem = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` and `rem` are valid for the call.
    if unsafe { libc::syscall(libc::SYS_nanosleep, &ts, &mut rem) } < 0 {
        return rem.tv_sec as c_uint + u32::from(rem.tv_nsec > 0);
    }
    0
}

/// `getaddrinfo` as libc defines it.
type GetAddrInfo = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const libc::addrinfo,
    *mut *mut libc::addrinfo,
) -> c_int;

/// libc's `getaddrinfo`: the next definition of the symbol after ours.
fn real_getaddrinfo() -> Option<GetAddrInfo> {
    static REAL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let address = *REAL.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT finds the definition that
        // follows this object's, libc's.
        unsafe { libc::dlsym(libc::RTLD_NEXT, c"getaddrinfo".as_ptr()) as usize }
    });
    // SAFETY: a non-null address is libc's `getaddrinfo`, of this type.
    (address != 0).then(|| unsafe { std::mem::transmute::<usize, GetAddrInfo>(address) })
}

/// Pointers lent to the blocking pool while the green thread that owns them waits.
struct Lent(
    *const c_char,
    *const c_char,
    *const libc::addrinfo,
    *mut *mut libc::addrinfo,
);
// SAFETY: the caller's pointers are used by the pool thread only while the green thread
// waits for it (`offload` returns only then).
unsafe impl std::marker::Send for Lent {}

/// As libc's `getaddrinfo`.
///
/// # Safety
///
/// As libc's `getaddrinfo`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const libc::addrinfo,
    res: *mut *mut libc::addrinfo,
) -> c_int {
    let Some(real) = real_getaddrinfo() else {
        return libc::EAI_SYSTEM;
    };
    if crate::driver::parks() {
        let lent = Lent(node, service, hints, res);
        let looked_up = green(|| {
            crate::driver::pool::offload(move || {
                let lent = lent;
                // SAFETY: the caller's pointers, valid while the caller waits (see `Lent`).
                Ok(unsafe { real(lent.0, lent.1, lent.2, lent.3) })
            })
        });
        return match looked_up {
            Ok(Ok(status)) => status,
            // No pool thread could be started: the resolver's "try again".
            Ok(Err(_)) => libc::EAI_AGAIN,
            Err(Cancelled) => {
                set_errno(libc::ECANCELED);
                libc::EAI_SYSTEM
            }
        };
    }
    // SAFETY: forwarded.
    unsafe { real(node, service, hints, res) }
}

/// As libc's `close`.
///
/// # Safety
///
/// As libc's `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    fds::replaced(fd);
    // SAFETY: forwarded.
    unsafe { crate::sys::close(fd) }
}

/// As libc's `dup2`.
///
/// # Safety
///
/// As libc's `dup2`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // `dup3` refuses equal fds where `dup2` returns the fd.
    let rc = if old == new {
        // SAFETY: F_GETFD only checks the fd.
        if unsafe { libc::syscall(libc::SYS_fcntl, old, libc::F_GETFD) } < 0 {
            -1
        } else {
            old
        }
    } else {
        // SAFETY: forwarded: dup2 is dup3 without flags for distinct fds.
        unsafe { libc::syscall(libc::SYS_dup3, old, new, 0) as c_int }
    };
    if rc >= 0 && old != new {
        fds::replaced(new);
    }
    rc
}

/// As libc's `dup3`.
///
/// # Safety
///
/// As libc's `dup3`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { libc::syscall(libc::SYS_dup3, old, new, flags) as c_int };
    if rc >= 0 {
        fds::replaced(new);
    }
    rc
}

/// As libc's `fcntl` (whose third argument, when there is one, is an integer or a pointer:
/// passed on as a word).
///
/// # Safety
///
/// As libc's `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) as c_int };
    if rc >= 0 {
        match cmd {
            libc::F_SETFL => fds::forget(fd),
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => fds::replaced(rc),
            _ => {}
        }
    }
    rc
}

/// As libc's `dup`.
///
/// # Safety
///
/// As libc's `dup`.
#[no_mangle]
pub unsafe extern "C" fn dup(old: c_int) -> c_int {
    // SAFETY: forwarded.
    let new = unsafe { libc::syscall(libc::SYS_dup, old) as c_int };
    fds::replaced(new);
    new
}

/// As libc's `socket`.
///
/// # Safety
///
/// As libc's `socket`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int {
    // SAFETY: forwarded.
    let new = unsafe { libc::syscall(libc::SYS_socket, domain, kind, protocol) as c_int };
    fds::replaced(new);
    new
}

/// As libc's `socketpair`.
///
/// # Safety
///
/// As libc's `socketpair`.
#[no_mangle]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    kind: c_int,
    protocol: c_int,
    pair: *mut c_int,
) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { libc::syscall(libc::SYS_socketpair, domain, kind, protocol, pair) as c_int };
    if rc == 0 {
        // SAFETY: the kernel filled the caller's two ints.
        unsafe { replaced_pair(pair) };
    }
    rc
}

/// As libc's `pipe2`.
///
/// # Safety
///
/// As libc's `pipe2`.
#[no_mangle]
pub unsafe extern "C" fn pipe2(pair: *mut c_int, flags: c_int) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { libc::syscall(libc::SYS_pipe2, pair, flags) as c_int };
    if rc == 0 {
        // SAFETY: the kernel filled the caller's two ints.
        unsafe { replaced_pair(pair) };
    }
    rc
}

/// As libc's `pipe`.
///
/// # Safety
///
/// As libc's `pipe`.
#[no_mangle]
pub unsafe extern "C" fn pipe(pair: *mut c_int) -> c_int {
    // SAFETY: forwarded: pipe is pipe2 without flags.
    unsafe { pipe2(pair, 0) }
}

/// Both fds of a new pair are new files.
///
/// # Safety
///
/// `pair` points to two ints.
unsafe fn replaced_pair(pair: *mut c_int) {
    // SAFETY: forwarded.
    let (a, b) = unsafe { (*pair, *pair.add(1)) };
    fds::replaced(a);
    fds::replaced(b);
}

/// As libc's `ioctl`.
///
/// # Safety
///
/// As libc's `ioctl`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { libc::syscall(libc::SYS_ioctl, fd, request, arg) as c_int };
    if rc >= 0 && request == libc::FIONBIO {
        fds::forget(fd);
    }
    rc
}

/// As libc's `setsockopt`.
///
/// # Safety
///
/// As libc's `setsockopt`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { libc::syscall(libc::SYS_setsockopt, fd, level, name, value, len) as c_int };
    if rc >= 0 && level == libc::SOL_SOCKET && matches!(name, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO)
    {
        fds::forget(fd);
    }
    rc
}
