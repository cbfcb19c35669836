//! greenring: green threads for Rust.
//!
//! Stackful coroutines ("green threads") that let you write plain blocking-style code and
//! still run tens of thousands of concurrent activities on a handful of OS threads. The API
//! mirrors `std::thread`:
//!
//! ```
//! let handles: Vec<_> = (0..1000)
//!     .map(|i| greenring::spawn(move || i * i))
//!     .collect();
//! let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(total, 332_833_500);
//! ```
//!
//! Green threads switch on greenring's own assembly (`asm/`, x86-64 and AArch64) or, with
//! the `corosensei` feature and on other architectures, on corosensei. They run on
//! mmapped stacks with a guard page below each ([`StackGuard`]), from work-stealing queues
//! on a pool of worker OS threads ([`Runtime`]).
//!
//! Off a green thread every function here still works, by doing what std does.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod arch;
mod blocking;
mod bridge;
mod context;
pub mod fs;
pub mod local;
mod loom;
mod metrics;
pub mod net;
mod overflow;
mod reactor;
pub mod runtime;
mod sched;
mod stack;
pub mod sync;
mod task;
pub mod thread;
mod thread_blocking;
pub mod time;

#[doc(hidden)]
pub mod bench_support;

pub use crate::blocking::spawn_blocking;
pub use crate::bridge::block_on;
pub use crate::context::SwitchBackend;
pub use crate::runtime::{IoBackend, Runtime};
pub use crate::stack::{StackGuard, DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use crate::thread::{current, park, spawn, yield_now, JoinHandle};
