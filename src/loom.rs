//! The one seam between greenring's concurrency protocols and the platform.
//!
//! Protocol code (the park word, the idle/wake protocol, the stall monitor's slot, the
//! carrier word, the wait queues of `sync`) takes its atomics, locks and OS-thread parking
//! from here. Normally these are std's. Built with `RUSTFLAGS="--cfg loom"` they are
//! loom's models, so the protocols as written (not copies) are model-checked by the
//! `loom_tests` modules beside them:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib loom
//! ```
//!
//! Under loom the rest of the runtime still compiles but must not run (loom's types panic
//! outside a model), so only the `loom_tests` modules are run in that configuration.

#[cfg(not(loom))]
mod imp {
    pub(crate) mod sync {
        pub(crate) use std::sync::{Mutex, MutexGuard};

        pub(crate) mod atomic {
            pub(crate) use std::sync::atomic::{
                fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
            };
        }
    }

    pub(crate) mod thread {
        pub(crate) use std::thread::{current, park, park_timeout, Thread};
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) mod sync {
        pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

        pub(crate) mod atomic {
            pub(crate) use loom::sync::atomic::{
                fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
            };
        }
    }

    pub(crate) mod thread {
        pub(crate) use loom::thread::{current, park, Thread};

        /// Loom does not model time: a timed park returns after one yield, which lets a
        /// model explore "the timeout passes" against every other order.
        pub(crate) fn park_timeout(_timeout: std::time::Duration) {
            loom::thread::yield_now();
        }
    }
}

pub(crate) use imp::*;
