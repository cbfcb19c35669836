//! The context backend on greenring's own assembly (`crate::arch`).

use std::cell::Cell;
use std::ptr;

use super::Main;
use crate::arch;
use crate::stack::Stack;

/// A context switched by `crate::arch::switch`.
pub(crate) struct Context {
    /// Stack pointer of the suspended context; meaningful while it is not running.
    sp: Cell<*mut u8>,
    /// Stack pointer of whoever resumed it; meaningful while it is running.
    parent_sp: Cell<*mut u8>,
    main: Cell<Option<Main>>,
    arg: Cell<*mut u8>,
    finished: Cell<bool>,
}

impl Context {
    /// An empty context, to be prepared by [`Context::init`].
    pub(crate) fn new() -> Context {
        Context {
            sp: Cell::new(ptr::null_mut()),
            parent_sp: Cell::new(ptr::null_mut()),
            main: Cell::new(None),
            arg: Cell::new(ptr::null_mut()),
            finished: Cell::new(false),
        }
    }

    /// Prepares the context to run `main(arg)` on `stack` when first resumed.
    ///
    /// # Safety
    ///
    /// `self` must not move, and `stack` must stay mapped and unused by anything else, until
    /// the context has finished or will never be resumed again. Called once.
    pub(crate) unsafe fn init(&self, stack: &Stack, main: Main, arg: *mut u8) {
        self.main.set(Some(main));
        self.arg.set(arg);
        let this = (self as *const Context).cast_mut().cast::<u8>();
        // SAFETY: the stack top is 16-byte aligned with far more than 160 usable bytes
        // below, reserved for this context by the caller.
        let sp = unsafe { arch::init_stack(stack.top(), start, this) };
        self.sp.set(sp);
    }

    /// Runs the context until it suspends (`false`) or its `main` returns (`true`).
    ///
    /// # Safety
    ///
    /// Initialised, not finished, not running, and resumed by one thread at a time.
    pub(crate) unsafe fn resume(&self) -> bool {
        // SAFETY: `sp` holds the suspended context's stack pointer (from init or from its
        // last suspend), and its stack is mapped per init's contract.
        unsafe { arch::switch(self.parent_sp.as_ptr(), self.sp.get()) };
        self.finished.get()
    }

    /// Switches back to whoever resumed this context; returns when it is resumed again.
    ///
    /// # Safety
    ///
    /// Must be called on this context's own stack, while it runs.
    pub(crate) unsafe fn suspend(&self) {
        // SAFETY: while running, `parent_sp` holds the resumer's stack pointer, saved by the
        // switch in `resume`, and the resumer's stack is its OS thread's, alive.
        unsafe { arch::switch(self.sp.as_ptr(), self.parent_sp.get()) };
    }
}

impl Context {
    /// Calls `f(arg)` with unwind information continuing into this suspended context (see
    /// `crate::arch::probe`).
    ///
    /// # Safety
    ///
    /// Started, not running, not finished, and not resumed by anyone until this returns.
    /// `f` must not unwind.
    // Used when this is the runtime's backend (not with the `corosensei` feature).
    #[cfg_attr(feature = "corosensei", allow(dead_code))]
    pub(crate) unsafe fn probe(&self, f: unsafe extern "C" fn(*mut u8), arg: *mut u8) {
        // SAFETY: suspended, so `sp` is the stack pointer its last switch saved, and the
        // stack stays as it is while nobody resumes it (the caller's contract).
        unsafe { arch::probe(self.sp.get(), f, arg) };
    }
}

/// First Rust function on a fresh stack, called by the trampoline with the `Context`.
unsafe extern "C" fn start(ctx: *mut u8) -> ! {
    // SAFETY: `init` passed the address of the Context, which does not move while the
    // context can run.
    let ctx = unsafe { &*ctx.cast::<Context>().cast_const() };
    let main = ctx.main.take().expect("a context starts once");
    // SAFETY: `main` and `arg` come together from `init`, whose caller vouches for them.
    unsafe { main(ctx.arg.get()) };
    ctx.finished.set(true);
    let mut unused_sp = ptr::null_mut();
    // SAFETY: as in `suspend`; nobody ever switches back to `unused_sp`, so this frame is
    // abandoned with nothing left to drop on it.
    unsafe { arch::switch(&mut unused_sp, ctx.parent_sp.get()) };
    unreachable!("a finished green thread was resumed");
}
