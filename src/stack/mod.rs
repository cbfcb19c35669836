//! Green thread stacks: anonymous mmapped memory with a guard page at the low end.
//!
//! - [`map`] maps regions holding one or many stacks and installs their guard pages, with
//!   `MADV_GUARD_INSTALL` where the kernel has it (Linux >= 6.13: the guard costs no extra
//!   mapping) and `mprotect(PROT_NONE)` elsewhere (each guard splits the mapping in two, so
//!   every live stack costs two of the `vm.max_map_count` entries).
//! - [`pool`] carves stacks of the runtime's default size out of large slabs and keeps freed
//!   ones for reuse: a bounded cache per worker in front of a bounded shared pool, so that
//!   steady-state spawning does no system call.
//!
//! Invariant: a stack is reused or unmapped only after the green thread that ran on it has
//! finished; a stack whose thread never finished is leaked instead (see `Task`'s `Drop`).

mod map;
mod pool;

use std::io;
use std::ptr::NonNull;
use std::sync::Arc;

pub(crate) use self::map::page_size;
pub use self::map::StackGuard;
pub(crate) use self::pool::{LocalCache, StackPool, TRIM_AFTER};

/// Smallest usable stack size a green thread may ask for, in bytes.
pub const MIN_STACK_SIZE: usize = 16 * 1024;
/// Usable stack size of a green thread when neither the runtime nor the thread says
/// otherwise, in bytes.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;
/// The most a stack's start is skewed below the top of its memory (see [`Stack::top`]):
/// within the first half page, so that a thread whose first frames fit in 2 KiB still
/// touches one page.
const MAX_SKEW: usize = 2048;
/// The step between the skews of neighbouring stacks: three cache lines, so consecutive
/// stacks land in different sets and in different lines of a set's prefetch pair.
const SKEW_STEP: usize = 192;

/// Largest usable stack size a green thread may ask for, in bytes.
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// Checks a requested usable stack size and rounds it up to whole pages.
///
/// # Errors
///
/// `InvalidInput` when `size` is below [`MIN_STACK_SIZE`] (zero included) or above
/// [`MAX_STACK_SIZE`].
pub(crate) fn checked_stack_size(size: usize) -> io::Result<usize> {
    if size < MIN_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "greenring: stack size of {size} bytes is below the minimum of \
                 {MIN_STACK_SIZE} bytes"
            ),
        ));
    }
    if size > MAX_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "greenring: stack size of {size} bytes is above the maximum of \
                 {MAX_STACK_SIZE} bytes"
            ),
        ));
    }
    let page = page_size();
    Ok(size.div_ceil(page) * page)
}

/// One green thread's stack: `usable` bytes ending at `top`, with a guard page right below.
pub(crate) struct Stack {
    /// Highest address of the stack, exclusive; page aligned.
    top: NonNull<u8>,
    /// Bytes between the guard page and `top`.
    usable: usize,
    /// Bytes left unused at the top (a multiple of 64 below [`MAX_SKEW`]), different for
    /// neighbouring stacks of a slab: see [`Stack::top`].
    skew: usize,
    /// The mapping the stack lives in; unmapped when its last stack is dropped.
    mapping: Arc<map::Mapping>,
}

// SAFETY: a Stack is plain memory owned by whoever holds the value; the raw pointer is only
// an address into `mapping`, which is itself Send + Sync.
unsafe impl Send for Stack {}

impl Stack {
    /// Where the thread's stack begins (exclusive): `skew` bytes below the top of its
    /// memory, 64-byte aligned. Stacks that all began at the same offset in a page would
    /// put the hot top frames of every thread in the same few L1 cache sets (which only
    /// the address bits within a page select), so streaming through thousands of new
    /// threads' frames would evict each other's and the running thread's.
    pub(crate) fn top(&self) -> *mut u8 {
        self.top.as_ptr().wrapping_sub(self.skew)
    }

    /// The usable size in bytes.
    pub(crate) fn usable_size(&self) -> usize {
        self.usable
    }

    /// Lowest usable address: everything in `[limit - page, limit)` is the guard page.
    pub(crate) fn limit(&self) -> usize {
        self.top.as_ptr() as usize - self.usable
    }

    /// Gives up the stack without returning its memory (see `map::release`, which did);
    /// the mapping is unmapped when the result is its last reference.
    fn into_mapping(self) -> Arc<map::Mapping> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the Arc is read out once, and `this` is neither used nor dropped again.
        unsafe { std::ptr::read(&this.mapping) }
    }

    /// The guard page's address range `(start, end)`, end exclusive.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        let limit = self.limit();
        (limit - page_size(), limit)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Stacks carved from a slab that lives on keep their pages until the whole slab is
        // unmapped; hand the memory back now. Guard regions survive MADV_DONTNEED.
        if Arc::strong_count(&self.mapping) > 1 {
            // SAFETY: [limit, top) lies inside `mapping`, which is still mapped (we hold a
            // reference), and belongs to this stack alone, whose thread has finished.
            unsafe {
                libc::madvise(
                    self.limit() as *mut libc::c_void,
                    self.usable,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

/// How much of a green thread's stack is touched (see `crate::dump`
/// for reused stacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackUse {
    /// Pages of the stack that are resident (touched).
    pub touched_pages: usize,
    /// Usable pages of the stack.
    pub pages: usize,
    /// Bytes in a page.
    pub page_size: usize,
}

impl StackUse {
    /// Touched bytes.
    pub fn touched_bytes(&self) -> usize {
        self.touched_pages * self.page_size
    }
}

/// Stack use of the stack `(lowest, top)`, from `mincore`.
pub(crate) fn stack_use((lowest, top): (usize, usize), buf: &mut Vec<u8>) -> Option<StackUse> {
    let page_size = page_size();
    // mincore writes one byte per page the range touches: round up, so a range that is
    // not page aligned can never overrun the buffer.
    let pages = (top - lowest).div_ceil(page_size);
    buf.clear();
    buf.resize(pages, 0);
    // SAFETY: [lowest, top) is the usable part of a mapped stack (page aligned): stacks of
    // live threads stay mapped, and the buffer has one byte per page.
    let rc = unsafe {
        libc::mincore(
            lowest as *mut libc::c_void,
            top - lowest,
            buf.as_mut_ptr().cast(),
        )
    };
    (rc == 0).then(|| StackUse {
        touched_pages: buf.iter().filter(|&&b| b & 1 != 0).count(),
        pages,
        page_size,
    })
}
