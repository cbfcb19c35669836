//! Mapping stack memory and installing guard pages.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};

use super::Stack;

/// `madvise` advice that installs guard regions (Linux 6.13); libc 0.2 does not name it yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;

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
    let mut stacks = Vec::with_capacity(count);
    for index in 0..count {
        let guard = base + index * stride;
        install_guard(guard, page).map_err(|err| limit_error(len, err))?;
        let top = guard + stride;
        stacks.push(Stack {
            // SAFETY: `top` is inside or one past a successful mapping, never null.
            top: unsafe { NonNull::new_unchecked(top as *mut u8) },
            usable,
            mapping: Arc::clone(&mapping),
        });
    }
    Ok(stacks)
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
            assert_eq!(pair[0].top() as usize % 16, 0);
            assert_eq!(pair[1].guard_range().0, pair[0].top() as usize);
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
