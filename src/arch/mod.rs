//! Architecture-specific context switching: exactly one module per architecture, each
//! exporting the same tiny API on top of its file in `asm/`:
//!
//! - `init_stack(top, entry, arg) -> sp`: lay out a fresh frame so that the first switch to
//!   `sp` calls `entry(arg)` on that stack;
//! - `switch(save_sp, next_sp)`: save the callee-saved state of the caller, store its stack
//!   pointer in `*save_sp` and continue the context suspended at `next_sp`;
//! - `probe(suspended_sp, f, arg)`: call `f(arg)` with unwind information that continues
//!   into the context suspended at `suspended_sp` (for `Runtime::dump`'s backtraces).
//!
//! Architectures without our assembly have no module here; the runtime then uses the
//! corosensei backend (see `crate::context`).

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(crate) use self::aarch64::{init_stack, probe, switch};
#[cfg(target_arch = "x86_64")]
pub(crate) use self::x86_64::{init_stack, probe, switch};

/// Whether this architecture has greenring's own assembly.
pub(crate) const HAS_OWN_ASM: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// The first function a fresh context runs, with the argument given to `init_stack`.
///
/// It must never return: there is no caller frame to return into (the trampoline traps).
pub(crate) type Entry = unsafe extern "C" fn(arg: *mut u8) -> !;
