//! Not public API: the raw context switch of each backend, for `benches/` and tests that
//! compare them in one run. Hidden from the docs and free to change.

use std::io;

use crate::context::{coro, Main};
use crate::stack::{checked_stack_size, StackPool, MIN_STACK_SIZE};

macro_rules! switch_pair {
    ($(#[$doc:meta])* $name:ident, $context:ty) => {
        $(#[$doc])*
        pub struct $name {
            // Declared first so it drops before the stack it runs on.
            context: Box<$context>,
            _stack: crate::stack::Stack,
        }

        impl $name {
            /// A context whose body suspends forever, on a fresh minimum-size stack.
            ///
            /// # Errors
            ///
            /// When the stack cannot be mapped.
            pub fn new() -> io::Result<Self> {
                let size = checked_stack_size(MIN_STACK_SIZE)?;
                let stack = StackPool::new(size).alloc(size, None)?;
                let context = Box::new(<$context>::new());
                let arg = (&*context as *const $context).cast_mut().cast::<u8>();
                /// Suspends back to the resumer, forever.
                ///
                /// # Safety
                ///
                /// `arg` is the running context.
                unsafe fn body(arg: *mut u8) {
                    // SAFETY: `arg` is the boxed context, alive while it can be resumed.
                    let context = unsafe { &*arg.cast_const().cast::<$context>() };
                    loop {
                        // SAFETY: called on the context's own stack while it runs.
                        unsafe { context.suspend() };
                    }
                }
                // SAFETY: the context is boxed (never moves) and dropped before the stack.
                unsafe { context.init(&stack, body as Main, arg) };
                Ok($name { context, _stack: stack })
            }

            /// Switches into the context and back: one switch pair.
            pub fn switch_pair(&mut self) {
                // SAFETY: initialised, never finishes (the body loops), resumed through
                // `&mut self` so by one thread at a time.
                let finished = unsafe { self.context.resume() };
                debug_assert!(!finished);
            }
        }
    };
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
switch_pair!(
    /// A context on greenring's own assembly.
    OwnAsmSwitch,
    crate::context::own::Context
);

switch_pair!(
    /// A context on corosensei, running on our stack.
    CorosenseiSwitch,
    coro::Context
);
