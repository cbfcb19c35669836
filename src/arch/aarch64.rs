//! AArch64 (AAPCS64) context switch, implemented in `asm/aarch64.S`.
//!
//! # Register contract
//!
//! `greenring_switch(save_sp: x0, next_sp: x1)` is an ordinary `extern "C"` call: the
//! compiler already treats x0-x18 and v0-v7, v16-v31 as clobbered. The switch saves what
//! AAPCS64 asks a function to preserve: x19-x28, the frame pointer x29, the link register
//! x30, the low 64 bits of v8-v15 (d8-d15), and sp itself (stored through `save_sp`). FPCR
//! is left alone: Rust code never changes it.
//!
//! # A suspended stack
//!
//! ```text
//!          higher addresses
//!        | caller's frames ...     |
//!        | d14 | d15               |  FRAME_D14 = 144
//!        | d12 | d13               |  FRAME_D12 = 128
//!        | d10 | d11               |  FRAME_D10 = 112
//!        | d8  | d9                |  FRAME_D8  = 96
//!        | x29 | x30 (lr)          |  FRAME_X29 = 80: x30 is where the switch returns
//!        | x27 | x28               |  FRAME_X27 = 64
//!        | ... x19 | x20           |  FRAME_X19 = 0
//!  sp -> +-------------------------+
//! ```
//!
//! # A fresh stack, as `init_stack` lays it out
//!
//! The 160-byte frame sits directly below the (16-byte aligned) top, all zero except
//! x19 = entry, x20 = arg and x30 = `greenring_trampoline`. The first switch "returns" into
//! the trampoline with sp = top, which calls `entry(arg)`; its CFI marks x30 undefined so
//! unwinders stop at the base of the green stack, and x29 = 0 ends frame-pointer walks.

use core::arch::global_asm;

use super::Entry;

global_asm!(include_str!("../../asm/aarch64.S"));

extern "C" {
    fn greenring_switch(save_sp: *mut *mut u8, next_sp: *mut u8);
    fn greenring_trampoline();
    // Used by the own-assembly backend only (not with the `corosensei` feature).
    #[cfg_attr(feature = "corosensei", allow(dead_code))]
    fn greenring_probe(suspended_sp: *mut u8, f: unsafe extern "C" fn(*mut u8), arg: *mut u8);
}

/// Size of the frame in bytes; must match `FRAME_SIZE` in `asm/aarch64.S`.
const FRAME_SIZE: usize = 160;
/// Word offsets inside the frame; must match `FRAME_X19`, `FRAME_X19 + 8` and `FRAME_X30`.
const WORD_X19: usize = 0;
const WORD_X20: usize = 1;
const WORD_X30: usize = 11;

/// Lays out a fresh frame below `top` so that switching to the returned stack pointer calls
/// `entry(arg)` on this stack.
///
/// # Safety
///
/// `top` must be 16-byte aligned and the end (exclusive) of at least 160 writable bytes that
/// nothing else uses while the context lives.
pub(crate) unsafe fn init_stack(top: *mut u8, entry: Entry, arg: *mut u8) -> *mut u8 {
    debug_assert_eq!(top as usize % 16, 0, "stack top must be 16-byte aligned");
    // SAFETY: the caller guarantees FRAME_SIZE writable bytes below `top`.
    let frame = unsafe { top.sub(FRAME_SIZE) };
    // SAFETY: as above; the frame is 16-byte aligned so word writes are aligned.
    unsafe {
        frame.write_bytes(0, FRAME_SIZE);
        let words = frame.cast::<usize>();
        words.add(WORD_X19).write(entry as *const () as usize);
        words.add(WORD_X20).write(arg as usize);
        words
            .add(WORD_X30)
            .write(greenring_trampoline as *const () as usize);
    }
    frame
}

/// Suspends the calling context, storing its stack pointer in `*save_sp`, and continues the
/// context suspended at `next_sp`. Returns when some context switches back to `*save_sp`.
///
/// # Safety
///
/// `save_sp` must be valid for a write. `next_sp` must come from [`init_stack`] or from a
/// `save_sp` written by an earlier switch, whose context has not been resumed since, and
/// whose stack is still mapped.
#[inline(always)]
pub(crate) unsafe fn switch(save_sp: *mut *mut u8, next_sp: *mut u8) {
    // SAFETY: forwarded from the caller; greenring_switch follows the C ABI and preserves
    // every callee-saved register as seen by this caller when it is switched back to.
    unsafe { greenring_switch(save_sp, next_sp) }
}

/// Calls `f(arg)` on the caller's stack with unwind information that continues into the
/// context suspended at `suspended_sp` (see `greenring_probe` in `asm/aarch64.S`): a
/// backtrace taken in `f` shows that context's frames. The suspended stack is only read.
///
/// # Safety
///
/// `suspended_sp` must be the stack pointer saved by the [`switch`] that suspended a
/// context which has not been resumed since, whose stack stays mapped and unchanged while
/// `f` runs. `f` must not unwind.
#[cfg_attr(feature = "corosensei", allow(dead_code))]
pub(crate) unsafe fn probe(suspended_sp: *mut u8, f: unsafe extern "C" fn(*mut u8), arg: *mut u8) {
    // SAFETY: forwarded from the caller; greenring_probe is an ordinary C-ABI call that
    // returns normally after `f` does.
    unsafe { greenring_probe(suspended_sp, f, arg) }
}
