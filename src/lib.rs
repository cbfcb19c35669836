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
//!
//! # Soundness
//!
//! [`spawn`] is safe and sound: **a green thread runs on one OS thread from its first
//! instruction to its end.** Idle workers steal only threads that have not started; every
//! wake-up (from another worker, an OS thread, a timer, an I/O completion) resumes a thread
//! on the OS thread it started on. So OS-thread-bound state held across a blocking call
//! stays valid, as on an OS thread:
//!
//! ```
//! use std::io::Write;
//! let handle = greenring::spawn(|| {
//!     // A StdoutLock is a reentrant lock owned by this OS thread, and a thread_local!
//!     // borrow is this OS thread's slot: both survive the sleep, because the green
//!     // thread comes back to the same OS thread.
//!     thread_local!(static SEEN: std::cell::RefCell<Vec<u32>> = const {
//!         std::cell::RefCell::new(Vec::new())
//!     });
//!     let mut out = std::io::stdout().lock();
//!     let before = std::thread::current().id();
//!     SEEN.with_borrow_mut(|seen| {
//!         seen.push(1);
//!         greenring::time::sleep(std::time::Duration::from_millis(1));
//!         seen.push(2);
//!     });
//!     writeln!(out, "still on {:?}", std::thread::current().id()).unwrap();
//!     assert_eq!(std::thread::current().id(), before);
//! });
//! handle.join().unwrap();
//! ```
//!
//! (`rand::thread_rng()`, an `Rc` to the OS thread's generator, is the other common case.)
//! async Rust rejects such code when the future could move (`!Send` across `.await`); a
//! stackful runtime cannot see it, so it does not move started threads.
//!
//! What remains the program's responsibility:
//! - `unsafe` code that moves a `!Send` value into a green thread (a false
//!   `unsafe impl Send`) is its author's, as with `std::thread::spawn`.
//! - A std (or `parking_lot`) lock held across a greenring blocking call can deadlock a
//!   worker: if green thread B blocks its OS thread on a lock that green thread A, anchored
//!   to the same worker, holds across a `read`, A can never run again. Use
//!   [`greenring::sync`](crate::sync), whose locks park only the green thread. The monitor
//!   logs an error naming both when it sees a worker blocked like this.
//! - A green thread that blocks its OS thread in code greenring does not own holds up the
//!   started threads of its worker (see [`runtime::Builder::handoff_threshold`]); use
//!   [`spawn_blocking`] for such calls.
//! - A green thread that blocks while unwinding (a destructor that sleeps, locks or does
//!   I/O during a panic) blocks its OS thread instead of switching away, so no other green
//!   thread sees [`std::thread::panicking`]; its worker's other threads wait for it. If
//!   it waits for one of them (a `greenring::sync::Mutex` that a thread of the same worker
//!   holds across a sleep), that is a deadlock: the monitor names the unwinding thread, the
//!   lock and its holder in an error.
//!
//! [`runtime::Builder::migrate_started_threads`] is the `unsafe` opt-in that lets started
//! threads move between OS threads again; its `# Safety` section is the contract the
//! compiler cannot check.
//!
//! # Cooperative scheduling
//!
//! A green thread runs until it waits (I/O, a lock, a channel, `sleep`, `park`, `join`) or
//! yields; nothing preempts it. Calls that could have waited but did not (an I/O op that
//! completed at once, a `greenring::sync` call that did not park, every `try_` call of
//! [`sync`] and [`JoinHandle::is_finished`]) share one budget: the 64th such call in a row
//! yields to the worker's other threads, so a thread that spins on `try_recv` or keeps
//! finding data on its socket lets the others run. During a runtime's shutdown that yield
//! is a cancellation point, like every blocking call (see [`runtime`]); a thread that is
//! unwinding never yields. A loop that calls none of these keeps its worker: call
//! [`yield_now`] in it.
//!
//! # Panic messages
//!
//! std's default panic hook names the OS thread, which for a green thread is its worker.
//! The first [`Runtime`] built in the process wraps the panic hook in place then: when it
//! is std's default, a panic on a green thread prints std's message (in Rust 1.95's layout,
//! with the backtrace `RUST_BACKTRACE` asks for) naming the green thread, its
//! [`thread::Builder::name`] or `<unnamed>`; other panics, and every panic when the program
//! had set a hook of its own, go to the hook in place as before. A hook set after the
//! runtime started replaces the wrapper, as `std::panic::set_hook` always does. (std cannot
//! say whether a hook is its default: greenring compares the hook it takes with a second
//! `take_hook`, which returns std's default.) Under `cargo test`, libtest puts a hook of its
//! own in place while it captures the tests' output, so there the messages are libtest's,
//! naming the worker; with `--nocapture` they name the green thread.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod arch;
mod blocking;
mod bridge;
mod context;
mod driver;
pub mod dump;
pub mod fs;
#[cfg(feature = "hooks")]
mod hooks;
pub mod io;
pub mod local;
mod loom;
mod metrics;
pub mod net;
pub mod os;
mod overflow;
mod panic_message;
pub mod process;
mod reactor;
mod report;
pub mod runtime;
mod sched;
mod stack;
mod stats;
pub mod sync;
mod sys;
mod task;
pub mod thread;
pub mod time;
mod timeout;

#[doc(hidden)]
pub mod bench_support;

/// The README's Rust examples, compiled and run as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
/// The Rust examples of `docs/*.md`, compiled and run the same way (one module a file).
#[cfg(doctest)]
#[doc = include_str!("../docs/architecture.md")]
mod docs_architecture {}
#[cfg(doctest)]
#[doc = include_str!("../docs/compare.md")]
mod docs_compare {}
#[cfg(doctest)]
#[doc = include_str!("../docs/observability.md")]
mod docs_observability {}
#[cfg(doctest)]
#[doc = include_str!("../docs/porting.md")]
mod docs_porting {}

pub use crate::blocking::spawn_blocking;
pub use crate::bridge::block_on;
pub use crate::context::SwitchBackend;
pub use crate::runtime::{IoBackend, Runtime};
pub use crate::stack::{StackGuard, DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use crate::thread::{current, park, spawn, yield_now, JoinHandle};

/// A dump of the runtime of the calling green thread, or of the default runtime (started
/// if it was not): see [`Runtime::dump`].
///
/// # Panics
///
/// When the default runtime cannot start.
///
/// ```
/// let sleeper = greenring::spawn(|| greenring::time::sleep(std::time::Duration::from_millis(50)));
/// let dump = greenring::dump();
/// println!("{dump}");
/// sleeper.join().unwrap();
/// ```
pub fn dump() -> dump::Dump {
    let shared = runtime::current_shared()
        .unwrap_or_else(|err| panic!("greenring: no runtime to dump: {err}"));
    dump::take(&shared)
}
