//! The system calls greenring makes itself, for the calls the `hooks` feature interposes.
//!
//! With `hooks` on, the process's `read`, `recv`, `connect`, `poll`, `close`, `fcntl`, ...
//! are greenring's hooks (see `crate::hooks`), which decide whether to park the calling
//! green thread. greenring's own code must never enter them (the driver would call itself
//! from inside an op, a worker would run hook code, a signal handler would look at the fd
//! table), so it makes these calls here: as raw system calls with the feature on, and as
//! libc's functions without it. Each function has the contract of the libc function of the
//! same name, returns what it returns and sets `errno` the same way.

use libc::{c_int, c_void, size_t, sockaddr, socklen_t, ssize_t};

/// Defines each function as the system call `$nr` (with `hooks`) or as libc's function of
/// the same name (without).
macro_rules! calls {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $nr:ident;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`, as libc's.")]
            ///
            /// # Safety
            ///
            /// As libc's function of the same name.
            #[inline]
            pub(crate) unsafe fn $name($($arg: $ty),*) -> $ret {
                #[cfg(feature = "hooks")]
                // SAFETY: forwarded: the caller holds the libc function's contract, which
                // the system call shares.
                let result = unsafe { libc::syscall(libc::$nr $(, $arg)*) as $ret };
                #[cfg(not(feature = "hooks"))]
                // SAFETY: forwarded: the caller holds the libc function's contract.
                let result = unsafe { libc::$name($($arg),*) };
                result
            }
        )*
    };
}

calls! {
    fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t = SYS_read;
    fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t = SYS_write;
    fn pread(fd: c_int, buf: *mut c_void, len: size_t, at: libc::off_t) -> ssize_t = SYS_pread64;
    fn pwrite(fd: c_int, buf: *const c_void, len: size_t, at: libc::off_t) -> ssize_t
        = SYS_pwrite64;
    fn recvfrom(
        fd: c_int,
        buf: *mut c_void,
        len: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        addrlen: *mut socklen_t
    ) -> ssize_t = SYS_recvfrom;
    fn sendto(
        fd: c_int,
        buf: *const c_void,
        len: size_t,
        flags: c_int,
        addr: *const sockaddr,
        addrlen: socklen_t
    ) -> ssize_t = SYS_sendto;
    fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t = SYS_recvmsg;
    fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> ssize_t = SYS_sendmsg;
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int
        = SYS_accept4;
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int = SYS_connect;
    fn close(fd: c_int) -> c_int = SYS_close;
}

/// `fcntl(fd, cmd, arg)`, as libc's (the third argument as an integer).
///
/// # Safety
///
/// As libc's, for `cmd` (here only flag commands: no pointer is passed).
#[inline]
unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_int) -> c_int {
    #[cfg(feature = "hooks")]
    // SAFETY: forwarded: the caller holds fcntl's contract for `cmd`.
    let result = unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) as c_int };
    #[cfg(not(feature = "hooks"))]
    // SAFETY: forwarded: the caller holds fcntl's contract for `cmd`.
    let result = unsafe { libc::fcntl(fd, cmd, arg) };
    result
}

/// `fcntl(fd, F_GETFL)`: the file status flags of `fd`, or -1 with `errno`.
pub(crate) fn get_flags(fd: c_int) -> c_int {
    // SAFETY: F_GETFL reads the flags of an fd; a bad fd is an error, not undefined.
    unsafe { fcntl(fd, libc::F_GETFL, 0) }
}

/// `fcntl(fd, F_SETFL, flags)`: 0, or -1 with `errno`.
pub(crate) fn set_flags(fd: c_int, flags: c_int) -> c_int {
    // SAFETY: F_SETFL writes the flags of an fd; a bad fd is an error, not undefined.
    unsafe { fcntl(fd, libc::F_SETFL, flags) }
}

/// `poll`, as libc's (`ppoll` underneath with `hooks`: AArch64 has no `poll` system call).
///
/// # Safety
///
/// As libc's: `fds` points to `nfds` valid `pollfd`s.
#[inline]
pub(crate) unsafe fn poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    #[cfg(feature = "hooks")]
    let result = {
        let ts = (timeout >= 0).then(|| libc::timespec {
            tv_sec: libc::time_t::from(timeout / 1000),
            tv_nsec: libc::c_long::from((timeout % 1000) * 1_000_000),
        });
        let ts = ts
            .as_ref()
            .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
        // SAFETY: forwarded: `fds` is the caller's; `ts` lives for the call; no signal mask.
        unsafe {
            libc::syscall(
                libc::SYS_ppoll,
                fds,
                nfds,
                ts,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            ) as c_int
        }
    };
    #[cfg(not(feature = "hooks"))]
    // SAFETY: forwarded.
    let result = unsafe { libc::poll(fds, nfds, timeout) };
    result
}

/// `recv(2)`: `recvfrom` without an address.
///
/// # Safety
///
/// As `recv(2)`.
#[inline]
pub(crate) unsafe fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: forwarded.
    unsafe {
        recvfrom(
            fd,
            buf,
            len,
            flags,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// `send(2)`: `sendto` without an address.
///
/// # Safety
///
/// As `send(2)`.
#[inline]
pub(crate) unsafe fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: forwarded.
    unsafe { sendto(fd, buf, len, flags, std::ptr::null(), 0) }
}
