//! What the hooks know of each fd number: what kind of file it is, whether its owner made it
//! non-blocking, and its socket timeouts, learnt once (`fstat`, `F_GETFL`, `getsockopt`) the
//! first time a green thread makes a hooked call on it, and forgotten whenever the program
//! changes them through a hooked call (`fcntl(F_SETFL)`, `ioctl(FIONBIO)`, `setsockopt` of
//! a timeout) or the number gets another file (`close`, `dup2`, `dup3`). Each number also
//! has a generation, bumped when it gets another file: a readiness wait records it, so a
//! wait on a number that was closed meanwhile ends instead of reading the new file.
//!
//! The table is a two-level array of atomics, chunks allocated on first classification
//! (never by `close` and the other hooks that only forget, which may run anywhere, even
//! before `main`). fds past [`MAX_FDS`] are never classified: their calls stay plain.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

/// fds per chunk.
const CHUNK: usize = 1024;
/// Chunks, at most.
const CHUNKS: usize = 4096;
/// fds the table can describe (4 M).
pub(super) const MAX_FDS: usize = CHUNK * CHUNKS;

/// `state`: nothing known yet.
const UNKNOWN: u64 = 0;
/// `state` bit: known.
const KNOWN: u64 = 1 << 0;
/// `state` bit: a socket.
const SOCKET: u64 = 1 << 1;
/// `state` bit: a pipe, FIFO or character device (a terminal): pollable, no position.
const STREAM: u64 = 1 << 2;
/// `state` bit: its owner made it non-blocking (`O_NONBLOCK`).
const NONBLOCKING: u64 = 1 << 3;

/// What the table holds for one fd number.
#[derive(Default)]
struct Entry {
    state: AtomicU64,
    /// Bumped when the number gets another file.
    generation: AtomicU64,
    /// `SO_RCVTIMEO`, `SO_SNDTIMEO` in ns (0: none), valid while `state` is known.
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
}

type Chunk = [Entry; CHUNK];

static TABLE: [AtomicPtr<Chunk>; CHUNKS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

/// The entry of `fd` if its chunk exists.
fn existing(fd: i32) -> Option<&'static Entry> {
    let fd = usize::try_from(fd).ok().filter(|&fd| fd < MAX_FDS)?;
    let chunk = TABLE[fd / CHUNK].load(Ordering::Acquire);
    // SAFETY: a non-null chunk was allocated (zeroed: every entry a default one) by
    // `entry` and is never freed.
    unsafe { chunk.as_ref() }.map(|chunk| &chunk[fd % CHUNK])
}

/// The entry of `fd`, allocating its chunk; `None` past [`MAX_FDS`].
fn entry(fd: i32) -> Option<&'static Entry> {
    if let Some(entry) = existing(fd) {
        return Some(entry);
    }
    let index = usize::try_from(fd).ok().filter(|&fd| fd < MAX_FDS)? / CHUNK;
    // Zeroed on the heap (an entry of zeros is a default one): built on the stack, a chunk
    // would take 32 KiB of a green thread's.
    let layout = std::alloc::Layout::new::<Chunk>();
    // SAFETY: the layout has a non-zero size.
    let fresh = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Chunk>();
    if fresh.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    if TABLE[index]
        .compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // SAFETY: ours, never shared, allocated above with this layout: another thread
        // installed its chunk first.
        unsafe { std::alloc::dealloc(fresh.cast(), layout) };
    }
    existing(fd)
}

/// What a hooked call on a green thread needs to know of its fd.
#[derive(Clone, Copy, Debug)]
pub(super) struct Info {
    pub(super) kind: Kind,
    pub(super) nonblocking: bool,
    pub(super) read_timeout: Option<Duration>,
    pub(super) write_timeout: Option<Duration>,
    /// The number's generation counter and its value when this was read.
    pub(super) generation: Option<(&'static AtomicU64, u64)>,
}

/// The kind of file behind an fd, as far as the hooks are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A socket: its calls park the green thread.
    Socket,
    /// A pipe, FIFO or character device (a terminal): reads and writes park the green thread.
    Stream,
    /// A regular file, directory, block device, or anything unknown: plain calls.
    Plain,
}

fn nanos(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| {
        u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
    })
}

fn duration(nanos: u64) -> Option<Duration> {
    (nanos != 0).then(|| Duration::from_nanos(nanos))
}

/// What the hooks know of `fd`, learning it now if they did not know it yet.
pub(super) fn info(fd: i32) -> Info {
    let Some(entry) = entry(fd) else {
        return Info {
            kind: Kind::Plain,
            nonblocking: false,
            read_timeout: None,
            write_timeout: None,
            generation: None,
        };
    };
    let generation = entry.generation.load(Ordering::Acquire);
    let mut state = entry.state.load(Ordering::Acquire);
    if state & KNOWN == 0 {
        state = learn(fd, entry);
        // Kept only if the number still has the file it was learnt of.
        if entry.generation.load(Ordering::Acquire) == generation {
            let _ =
                entry
                    .state
                    .compare_exchange(UNKNOWN, state, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
    Info {
        kind: if state & SOCKET != 0 {
            Kind::Socket
        } else if state & STREAM != 0 {
            Kind::Stream
        } else {
            Kind::Plain
        },
        nonblocking: state & NONBLOCKING != 0,
        read_timeout: duration(entry.read_timeout.load(Ordering::Relaxed)),
        write_timeout: duration(entry.write_timeout.load(Ordering::Relaxed)),
        generation: Some((&entry.generation, generation)),
    }
}

/// Asks the kernel about `fd`: its state word (timeouts stored in `entry` as a side effect).
fn learn(fd: i32, entry: &Entry) -> u64 {
    // SAFETY: an all-zero `stat` is valid; fstat writes a full one into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for the call; a bad fd is an error.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return KNOWN; // plain: the call itself reports the bad fd
    }
    let mut state = KNOWN;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => state |= SOCKET,
        libc::S_IFIFO | libc::S_IFCHR => state |= STREAM,
        _ => return state,
    }
    let flags = crate::sys::get_flags(fd);
    if flags >= 0 && flags & libc::O_NONBLOCK != 0 {
        state |= NONBLOCKING;
    }
    if state & SOCKET != 0 {
        entry.read_timeout.store(
            nanos(socket_timeout(fd, libc::SO_RCVTIMEO)),
            Ordering::Relaxed,
        );
        entry.write_timeout.store(
            nanos(socket_timeout(fd, libc::SO_SNDTIMEO)),
            Ordering::Relaxed,
        );
    }
    state
}

/// The socket timeout `option` of `fd`, `None` for none (or an error).
fn socket_timeout(fd: i32, option: i32) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv` and `len` are valid for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if rc != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return None;
    }
    Some(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
}

/// The program changed what the hooks know of `fd` (its flags, its timeouts): learnt again
/// at its next hooked call on a green thread.
pub(super) fn forget(fd: i32) {
    if let Some(entry) = existing(fd) {
        entry.state.store(UNKNOWN, Ordering::Release);
    }
}

/// The number `fd` was closed, or is getting another file: forgotten, and its generation
/// moves on (waits that began before end).
pub(super) fn replaced(fd: i32) {
    if let Some(entry) = existing(fd) {
        entry.generation.fetch_add(1, Ordering::AcqRel);
        entry.state.store(UNKNOWN, Ordering::Release);
    }
}
