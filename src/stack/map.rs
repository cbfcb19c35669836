//! Mapping stack memory and installing guard pages.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};

use super::Stack;

/// `madvise` advice that installs guard regions (Linux 6.13); libc 0.2 does not name it yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;
/// The `pidfd` that names the calling process to `process_madvise` (Linux 6.14); older
/// kernels need a pidfd from `pidfd_open`.
const PIDFD_SELF_THREAD_GROUP: libc::c_int = -10001;
/// Ranges one `process_madvise` call takes at most (the kernel's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// Environment variable that forces the `mprotect` guard fallback when set to `mprotect`
/// (to exercise the fallback on kernels that have guard regions). Read once per process.
pub(crate) const GUARD_ENV: &str = "GREENRING_STACK_GUARD";

/// How the guard page below each green thread's stack is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackGuard {
    /// `madvise(MADV_GUARD_INSTALL)` inside large slabs: guards cost no extra mapping, so
    /// `vm.max_map_count` does not limit the number of live green threads (Linux >= 6.13).
    GuardRegion,
    /// `mprotect(PROT_NONE)`: each guard splits its mapping, so every live stack costs two
    /// `vm.max_map_count` entries (about 32,000 live green threads at the default 65,530).
    Mprotect,
}

const GUARD_UNKNOWN: u8 = 0;
const GUARD_REGION: u8 = 1;
const GUARD_MPROTECT: u8 = 2;

/// Which guard mechanism works here; decided by the first guard installed in the process.
static GUARD_KIND: AtomicU8 = AtomicU8::new(GUARD_UNKNOWN);

/// The pidfd `process_madvise` is called with: [`PIDFD_UNKNOWN`] until the first call,
/// [`PIDFD_NONE`] when the kernel has no usable `process_madvise`.
static PIDFD: AtomicI32 = AtomicI32::new(PIDFD_UNKNOWN);
const PIDFD_UNKNOWN: i32 = i32::MIN;
const PIDFD_NONE: i32 = i32::MIN + 1;
/// Bit `advice` set: `process_madvise` refused that advice here (kernels before 6.13 take
/// only a few advices from it), so it is applied one range at a time, or not at all.
static UNBATCHED: AtomicU64 = AtomicU64::new(0);

/// The system page size, read once.
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let page = usize::try_from(page)
                .ok()
                .filter(|p| p.is_power_of_two())
                .unwrap_or(4096);
            PAGE.store(page, Ordering::Relaxed);
            page
        }
        page => page,
    }
}

impl StackGuard {
    /// The mechanism this process uses, probing the kernel (with a one-page mapping) if no
    /// stack has been mapped yet.
    pub(crate) fn current() -> StackGuard {
        if GUARD_KIND.load(Ordering::Relaxed) == GUARD_UNKNOWN {
            // Probe with a throwaway stack; failure to map leaves the answer undecided, and
            // the fallback is the honest answer then.
            drop(map_stacks(1, page_size()));
        }
        match GUARD_KIND.load(Ordering::Relaxed) {
            GUARD_REGION => StackGuard::GuardRegion,
            _ => StackGuard::Mprotect,
        }
    }
}

/// An anonymous mapping holding one or more stacks.
pub(crate) struct Mapping {
    // Only held for its Drop, which unmaps.
    _map: MmapMut,
}

/// Maps `count` stacks of `usable` bytes (page multiple) each, every one with a guard page
/// below it, and returns them.
///
/// # Errors
///
/// When the kernel refuses the mapping or a guard (address-space or map-count limits), an
/// error whose message names the limits and how to raise them.
pub(crate) fn map_stacks(count: usize, usable: usize) -> io::Result<Vec<Stack>> {
    let page = page_size();
    debug_assert!(count > 0 && usable % page == 0);
    let stride = usable.checked_add(page).ok_or_else(|| too_large(usable))?;
    let len = stride.checked_mul(count).ok_or_else(|| too_large(usable))?;
    let mut map = MmapOptions::new()
        .len(len)
        .stack()
        .map_anon()
        .map_err(|err| limit_error(len, err))?;
    let base = map.as_mut_ptr() as usize;
    // Own the mapping before any further fallible step, so an error unmaps it.
    let mapping = Arc::new(Mapping { _map: map });
    // Every guard of the slab in one pass (one system call where the kernel allows), before
    // any page is touched: nothing to zap, no TLB to flush.
    let guards: Vec<(usize, usize)> = (0..count).map(|i| (base + i * stride, page)).collect();
    install_guards(&guards).map_err(|err| limit_error(len, err))?;
    // No page is faulted in here. A stack's first page is touched by the worker that first
    // runs a thread on it (see `task`), so with several workers starting threads the page
    // faults of a burst of spawns are spread over their CPUs. Populating the slab's top
    // pages here (`MADV_POPULATE_WRITE` over all of them, one call) put every fault on the
    // spawner's CPU: a million parked threads took 2.7-4.4 us each until all had started,
    // against 1.9-2.3 us without.
    let stacks = (1..=count)
        .map(|i| Stack {
            // SAFETY: `top` is inside or one past a successful mapping, never null.
            top: unsafe { NonNull::new_unchecked((base + i * stride) as *mut u8) },
            usable,
            skew: if count > 1 {
                i * super::SKEW_STEP % super::MAX_SKEW
            } else {
                0
            },
            mapping: Arc::clone(&mapping),
        })
        .collect();
    Ok(stacks)
}

/// Returns the memory of `stacks` to the kernel and drops them, in as few system calls as
/// possible: one `process_madvise(MADV_DONTNEED)` (one TLB flush) over all of them,
/// neighbouring stacks merged into one range, where dropping them one by one costs a
/// `madvise` and a TLB shootdown each. Stacks whose mapping goes away with them are only
/// unmapped.
pub(crate) fn release(mut stacks: Vec<Stack>) {
    let page = page_size();
    stacks.sort_unstable_by_key(Stack::limit);
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < stacks.len() {
        // Stacks of one mapping are neighbours once sorted.
        let mapping = &stacks[at].mapping;
        let group = stacks[at..]
            .iter()
            .take_while(|s| Arc::ptr_eq(&s.mapping, mapping))
            .count();
        if Arc::strong_count(mapping) > group {
            for stack in &stacks[at..at + group] {
                match ranges.last_mut() {
                    // The guard page between two stacks survives MADV_DONTNEED (a guard
                    // region keeps its marker; a PROT_NONE page has nothing to drop).
                    Some((start, len)) if *start + *len + page == stack.limit() => {
                        *len += page + stack.usable;
                    }
                    _ => ranges.push((stack.limit(), stack.usable)),
                }
            }
        }
        at += group;
    }
    if !advise_batch(&ranges, libc::MADV_DONTNEED).unwrap_or(false) {
        for &(addr, len) in &ranges {
            // SAFETY: the range covers stacks we own, whose threads have finished, and the
            // guard pages between them, in mappings that stay mapped while we hold them.
            unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        }
    }
    for stack in stacks {
        drop(stack.into_mapping());
    }
}

/// Applies `advice` to every `(address, length)` range with `process_madvise`, up to
/// [`MAX_IOV`] ranges a call. `Ok(false)` when the kernel cannot do that (no
/// `process_madvise`, or not for this advice: before Linux 6.13 it took only a few) and the
/// caller must fall back; the ranges then are untouched.
///
/// # Errors
///
/// The kernel refused the advice for a range (the error of `madvise` on that range).
fn advise_batch(ranges: &[(usize, usize)], advice: libc::c_int) -> io::Result<bool> {
    let bit = 1u64 << (advice as u32 % 64);
    if ranges.is_empty() {
        return Ok(true);
    }
    if UNBATCHED.load(Ordering::Relaxed) & bit != 0 {
        return Ok(false);
    }
    let Some(pidfd) = self_pidfd() else {
        return Ok(false);
    };
    let iov: Vec<libc::iovec> = ranges
        .iter()
        .map(|&(addr, len)| libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    let mut done = 0;
    while done < iov.len() {
        let chunk = &iov[done..(done + MAX_IOV).min(iov.len())];
        // SAFETY: the iovecs name ranges of mappings the caller owns; the kernel only reads
        // the array, which outlives the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                pidfd,
                chunk.as_ptr(),
                chunk.len(),
                advice,
                0u32,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if done == 0
                && matches!(
                    err.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EBADF)
                )
            {
                // Not for this advice (or not at all) here: the caller applies it range by
                // range; a real refusal of the first range shows up there again.
                UNBATCHED.fetch_or(bit, Ordering::Relaxed);
                return Ok(false);
            }
            return Err(err);
        }
        // The call stops at the first range the advice fails for; `rc` counts the bytes of
        // the ranges before it.
        let mut advised = rc as usize;
        let mut whole = 0;
        while whole < chunk.len() && advised >= chunk[whole].iov_len {
            advised -= chunk[whole].iov_len;
            whole += 1;
        }
        done += whole;
        if whole < chunk.len() {
            // Retry the range it stopped at alone, to get its error (or see it succeed,
            // after a transient failure).
            let range = iov[done];
            // SAFETY: as above.
            if unsafe { libc::madvise(range.iov_base, range.iov_len, advice) } != 0 {
                return Err(io::Error::last_os_error());
            }
            done += 1;
        }
    }
    Ok(true)
}

/// A pidfd naming this process for `process_madvise`: `PIDFD_SELF` where the kernel knows
/// it (Linux 6.14), else one from `pidfd_open`, kept open for the life of the process.
fn self_pidfd() -> Option<libc::c_int> {
    match PIDFD.load(Ordering::Relaxed) {
        PIDFD_NONE => return None,
        PIDFD_UNKNOWN => {}
        fd => return Some(fd),
    }
    // A zero-length call checks the pidfd and nothing else.
    let works = |fd: libc::c_int| {
        // SAFETY: no ranges: the kernel reads nothing.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                fd,
                std::ptr::null::<libc::iovec>(),
                0usize,
                libc::MADV_DONTNEED,
                0u32,
            )
        };
        rc == 0
    };
    let fd = if works(PIDFD_SELF_THREAD_GROUP) {
        PIDFD_SELF_THREAD_GROUP
    } else {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0u32) } as i32;
        if fd >= 0 && works(fd) {
            fd
        } else {
            if fd >= 0 {
                // SAFETY: `fd` is the descriptor we just opened and nobody else knows.
                unsafe { crate::sys::close(fd) };
            }
            PIDFD_NONE
        }
    };
    match PIDFD.compare_exchange(PIDFD_UNKNOWN, fd, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => {}
        Err(winner) => {
            if fd >= 0 {
                // Another thread opened one first: keep theirs.
                // SAFETY: as above.
                unsafe { crate::sys::close(fd) };
            }
            return (winner != PIDFD_NONE).then_some(winner);
        }
    }
    (fd != PIDFD_NONE).then_some(fd)
}

/// Installs a guard on every `(address, length)` range: batched when guard regions work
/// here, one range at a time otherwise (the first decides which mechanism works).
fn install_guards(ranges: &[(usize, usize)]) -> io::Result<()> {
    let Some((&(addr, len), rest)) = ranges.split_first() else {
        return Ok(());
    };
    install_guard(addr, len)?;
    if GUARD_KIND.load(Ordering::Relaxed) == GUARD_REGION && advise_batch(rest, MADV_GUARD_INSTALL)?
    {
        return Ok(());
    }
    for &(addr, len) in rest {
        install_guard(addr, len)?;
    }
    Ok(())
}

/// Makes `[addr, addr + len)` fault on any access.
fn install_guard(addr: usize, len: usize) -> io::Result<()> {
    let kind = GUARD_KIND.load(Ordering::Relaxed);
    if kind != GUARD_MPROTECT {
        let forced =
            kind == GUARD_UNKNOWN && std::env::var_os(GUARD_ENV).is_some_and(|v| v == "mprotect");
        if !forced {
            // SAFETY: the range is page aligned and inside a mapping we own and nobody uses yet.
            let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_INSTALL) };
            if rc == 0 {
                GUARD_KIND.store(GUARD_REGION, Ordering::Relaxed);
                return Ok(());
            }
            let err = io::Error::last_os_error();
            // EINVAL: the kernel does not know the advice. Anything else is a real refusal.
            if kind == GUARD_REGION || err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
        GUARD_KIND.store(GUARD_MPROTECT, Ordering::Relaxed);
    }
    // SAFETY: as above.
    if unsafe { libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn too_large(usable: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("greenring: a stack of {usable} bytes overflows the address space"),
    )
}

/// Wraps a refused mapping in a message that names the limit that refused it (as far as
/// the process can tell) and how to raise it.
fn limit_error(len: usize, err: io::Error) -> io::Error {
    let kind = match err.raw_os_error() {
        Some(libc::ENOMEM) | Some(libc::EAGAIN) => io::ErrorKind::OutOfMemory,
        _ => err.kind(),
    };
    io::Error::new(
        kind,
        format!(
            "greenring: the kernel refused to map {len} bytes of green thread stacks ({err}): \
             {}; or use a smaller stack_size or fewer live green threads",
            refusing_limit(len)
        ),
    )
}

/// Which limit most likely refused a mapping of `len` more bytes, and how to raise it.
fn refusing_limit(len: usize) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the value we pass.
    let has_as_limit = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0
        && limit.rlim_cur != libc::RLIM_INFINITY;
    // The first field of statm: the process's address space, in pages.
    let in_use = read("/proc/self/statm")
        .split_whitespace()
        .next()
        .and_then(number)
        .map(|pages| pages * page_size() as u64);
    if has_as_limit && in_use.is_some_and(|used| used + len as u64 > limit.rlim_cur) {
        return format!(
            "the address-space limit RLIMIT_AS refused it ({} bytes, {} in use): raise it \
             (`ulimit -v`)",
            limit.rlim_cur,
            in_use.unwrap_or(0)
        );
    }
    let max_map_count = number(&read("/proc/sys/vm/max_map_count"));
    let maps = read("/proc/self/maps").lines().count() as u64;
    if let Some(max) = max_map_count.filter(|max| maps + 2 >= *max) {
        return format!(
            "vm.max_map_count refused it (the process has {maps} of {max} mappings): raise it \
             (`sysctl -w vm.max_map_count=262144`)"
        );
    }
    match number(&read("/proc/sys/vm/overcommit_memory")) {
        Some(2) => "strict overcommit accounting refused it (vm.overcommit_memory=2: the \
                    mapping counts against CommitLimit in /proc/meminfo): raise \
                    vm.overcommit_ratio or add swap"
            .to_owned(),
        Some(0) => "the kernel's overcommit heuristic refused it (vm.overcommit_memory=0 \
                    refuses a mapping larger than RAM and swap could back): add memory or \
                    swap, or set vm.overcommit_memory=1"
            .to_owned(),
        _ => format!(
            "a memory limit refused it: the address-space limit (`ulimit -v`, RLIMIT_AS), \
             vm.max_map_count (now {}) or the memory available",
            max_map_count.map_or("unknown".to_owned(), |max| max.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_are_aligned_and_disjoint() {
        let page = page_size();
        let stacks = map_stacks(4, 4 * page).unwrap();
        for pair in stacks.windows(2) {
            assert_eq!(pair[0].top() as usize % 64, 0);
            assert!(pair[0].top() as usize > pair[0].limit());
            assert_eq!(
                pair[1].guard_range().0,
                pair[0].limit() + pair[0].usable_size()
            );
        }
        for stack in &stacks {
            // The whole usable range is writable.
            // SAFETY: [limit, top) is mapped read-write and owned by this test.
            unsafe { std::ptr::write_bytes(stack.limit() as *mut u8, 0xA5, stack.usable_size()) };
        }
    }

    #[test]
    fn guard_kind_is_decided_after_mapping() {
        drop(map_stacks(1, page_size()).unwrap());
        assert_ne!(GUARD_KIND.load(Ordering::Relaxed), GUARD_UNKNOWN);
    }
}
