//! x86-64 System V context switch, implemented in `asm/x86_64.S`.
//!
//! # Register contract
//!
//! `greenring_switch(save_sp: rdi, next_sp: rsi)` is an ordinary `extern "C"` call, so the
//! compiler already treats every caller-saved register (rax, rcx, rdx, rsi, rdi, r8-r11,
//! xmm0-15, the x87 stack) as clobbered. The switch saves exactly the callee-saved state the
//! ABI asks a function to preserve: rbx, rbp, r12-r15, the MXCSR control bits and the x87
//! control word, and rsp itself (stored through `save_sp`).
//!
//! # A suspended stack
//!
//! ```text
//!          higher addresses
//!        | caller's frames ...      |
//!        | return address           |  <- pushed by `call greenring_switch`
//!        | rbp                      |  FRAME_RBP = 48
//!        | rbx                      |  FRAME_RBX = 40
//!        | r12                      |  FRAME_R12 = 32
//!        | r13                      |  FRAME_R13 = 24
//!        | r14                      |  FRAME_R14 = 16
//!        | r15                      |  FRAME_R15 = 8
//!  sp -> | x87 CW (hi) | MXCSR (lo) |  FRAME_MXCSR = 0, FRAME_X87CW = 4
//!          lower addresses
//! ```
//!
//! # A fresh stack, as `init_stack` lays it out
//!
//! ```text
//!  top -> +--------------------------+  (16-byte aligned, exclusive)
//!         | 0                        |  top - 8:  padding
//!         | 0                        |  top - 16: padding; rsp after `ret` (aligned)
//!         | greenring_trampoline     |  top - 24: "return address" of the first switch
//!         | rbp = 0                  |  ends frame-pointer walks
//!         | rbx = 0                  |
//!         | r12 = entry              |  the trampoline calls r12 ...
//!         | r13 = arg                |  ... with rdi = r13
//!         | r14 = 0                  |
//!         | r15 = 0                  |
//!  sp ->  | 0x037F << 32 | 0x1F80    |  default x87 CW and MXCSR of the ABI
//! ```
//!
//! The trampoline's CFI marks the return address undefined, so a panic's backtrace and gdb
//! stop cleanly at the base of the green stack.
//!
//! # Costs
//!
//! The switch leaves by `jmp` to the saved return address instead of `ret`, because a `ret`
//! into another context always misses the return-stack predictor. The MXCSR and x87
//! control words are saved on every switch (the ABI makes their control bits callee-saved)
//! but reloaded only when they differ, as `ldmxcsr`/`fldcw` serialise the pipeline. The
//! `stmxcsr` alone costs ~5 ns a switch pair on AMD EPYC, which is most of the difference
//! to corosensei (which leaves these words alone); see the figures in `docs/compare.md`.

use core::arch::global_asm;

use super::Entry;

global_asm!(include_str!("../../asm/x86_64.S"));

extern "C" {
    fn greenring_switch(save_sp: *mut *mut u8, next_sp: *mut u8);
    fn greenring_trampoline();
    // Used by the own-assembly backend only (not with the `corosensei` feature).
    #[cfg_attr(feature = "corosensei", allow(dead_code))]
    fn greenring_probe(suspended_sp: *mut u8, f: unsafe extern "C" fn(*mut u8), arg: *mut u8);
}

/// Offsets in words of the fresh frame, counted down from the top of the stack. They must
/// match the `FRAME_*` offsets in `asm/x86_64.S` (frame at `sp`, return address above it).
const WORDS_FROM_TOP_RET: usize = 3;
const WORDS_FROM_TOP_RBP: usize = 4;
const WORDS_FROM_TOP_RBX: usize = 5;
const WORDS_FROM_TOP_R12: usize = 6;
const WORDS_FROM_TOP_R13: usize = 7;
const WORDS_FROM_TOP_R14: usize = 8;
const WORDS_FROM_TOP_R15: usize = 9;
const WORDS_FROM_TOP_FPCTRL: usize = 10;

/// MXCSR with all exceptions masked and round-to-nearest, in the low half; the x87 control
/// word of the same defaults (extended precision) in the high half. Both are the ABI's
/// initial values.
const DEFAULT_FP_CONTROL: usize = 0x1F80 | (0x037F << 32);

/// Lays out a fresh frame below `top` so that switching to the returned stack pointer calls
/// `entry(arg)` on this stack.
///
/// # Safety
///
/// `top` must be 16-byte aligned and the end (exclusive) of at least 80 writable bytes that
/// nothing else uses while the context lives.
pub(crate) unsafe fn init_stack(top: *mut u8, entry: Entry, arg: *mut u8) -> *mut u8 {
    debug_assert_eq!(top as usize % 16, 0, "stack top must be 16-byte aligned");
    let top = top.cast::<usize>();
    let slots: [(usize, usize); 10] = [
        (1, 0),
        (2, 0),
        (
            WORDS_FROM_TOP_RET,
            greenring_trampoline as *const () as usize,
        ),
        (WORDS_FROM_TOP_RBP, 0),
        (WORDS_FROM_TOP_RBX, 0),
        (WORDS_FROM_TOP_R12, entry as *const () as usize),
        (WORDS_FROM_TOP_R13, arg as usize),
        (WORDS_FROM_TOP_R14, 0),
        (WORDS_FROM_TOP_R15, 0),
        (WORDS_FROM_TOP_FPCTRL, DEFAULT_FP_CONTROL),
    ];
    for (words_down, value) in slots {
        // SAFETY: the caller guarantees 80 writable bytes below `top`; words_down <= 10.
        unsafe { top.sub(words_down).write(value) };
    }
    // SAFETY: as above, the lowest slot is still inside the caller's region.
    unsafe { top.sub(WORDS_FROM_TOP_FPCTRL).cast() }
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
/// context suspended at `suspended_sp` (see `greenring_probe` in `asm/x86_64.S`): a
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
