//! A green thread's execution context on one of our stacks, behind one internal API with
//! two backends:
//!
//! - [`own`]: greenring's assembly (`src/arch`), on x86-64 and AArch64;
//! - [`coro`]: corosensei, the reference our assembly is tested and benchmarked against, and
//!   the fallback on every other architecture.
//!
//! The runtime uses [`Context`]: `own` unless the `corosensei` feature is on or the
//! architecture has no assembly of ours. Both backends are always compiled, so tests and
//! benches can compare them in one run.
//!
//! Both implement the same protocol:
//! 1. `init(stack, main, arg)` prepares the context in place (it must not move afterwards);
//! 2. `resume()`, called by a scheduler, runs the context until it calls `suspend()` (then
//!    `resume` returns `false`) or until `main` returns (then `true`; the context is
//!    finished and must not be resumed again);
//! 3. `suspend()`, called on the context's own stack, switches back to whoever last resumed
//!    it. A context may be resumed by a different OS thread each time.
//!
//! `main` must not unwind: the runtime catches panics inside it.

pub(crate) mod coro;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod own;

#[cfg(all(
    not(feature = "corosensei"),
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub(crate) use self::own::Context;

#[cfg(any(
    feature = "corosensei",
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
))]
pub(crate) use self::coro::Context;

/// Which implementation switches between green threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchBackend {
    /// greenring's own assembly (`asm/x86_64.S`, `asm/aarch64.S`).
    OwnAsm,
    /// The corosensei crate: with the `corosensei` feature, or on other architectures.
    Corosensei,
}

impl SwitchBackend {
    /// The backend this build of greenring uses.
    pub const fn current() -> SwitchBackend {
        if cfg!(feature = "corosensei") || !crate::arch::HAS_OWN_ASM {
            SwitchBackend::Corosensei
        } else {
            SwitchBackend::OwnAsm
        }
    }
}

/// What a context runs: called once with the `arg` given to `init`; must not unwind.
pub(crate) type Main = unsafe fn(arg: *mut u8);
