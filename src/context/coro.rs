//! The context backend on corosensei, running on our own stacks.

use std::cell::{Cell, UnsafeCell};
use std::num::NonZeroUsize;
use std::ptr;

use corosensei::stack::StackPointer;
use corosensei::{Coroutine, CoroutineResult, Yielder};

use super::Main;
use crate::stack::Stack;

/// The bounds of one of our stacks, lent to corosensei. The memory stays owned by the
/// green thread's `Stack`; this only describes it.
struct Bounds {
    base: StackPointer,
    limit: StackPointer,
}

// SAFETY: `base` is the 16-byte aligned top of a mapped stack and `limit` the start of its
// guard page (page aligned), so the range includes a guard page and far more than
// corosensei's MIN_STACK_SIZE usable bytes (ours is at least 16 KiB). The `Context::init`
// contract keeps the memory mapped while corosensei uses it.
unsafe impl corosensei::stack::Stack for Bounds {
    fn base(&self) -> StackPointer {
        self.base
    }

    fn limit(&self) -> StackPointer {
        self.limit
    }
}

type Co = Coroutine<(), (), (), Bounds>;

/// A probe to run on the context's stack (see [`Context::probe`]).
type Visit = (unsafe extern "C" fn(*mut u8), *mut u8);

/// A context switched by corosensei.
pub(crate) struct Context {
    coroutine: UnsafeCell<Option<Co>>,
    /// The coroutine's yielder; set when it starts, lives on the coroutine's stack.
    yielder: Cell<*const Yielder<(), ()>>,
    /// Set by [`Context::probe`] before it resumes the suspended context, which runs it in
    /// [`Context::suspend`] and switches straight back.
    visit: Cell<Option<Visit>>,
}

impl Context {
    /// An empty context, to be prepared by [`Context::init`].
    pub(crate) fn new() -> Context {
        Context {
            coroutine: UnsafeCell::new(None),
            yielder: Cell::new(ptr::null()),
            visit: Cell::new(None),
        }
    }

    /// Prepares the context to run `main(arg)` on `stack` when first resumed.
    ///
    /// # Safety
    ///
    /// `self` must not move, and `stack` must stay mapped and unused by anything else, until
    /// the context has finished or will never be resumed again. Called once.
    pub(crate) unsafe fn init(&self, stack: &Stack, main: Main, arg: *mut u8) {
        let bounds = Bounds {
            base: NonZeroUsize::new(stack.top() as usize).expect("stack top is not null"),
            limit: NonZeroUsize::new(stack.guard_range().0).expect("guard is not at 0"),
        };
        let this = self as *const Context as usize;
        let arg = arg as usize;
        let coroutine = Co::with_stack(bounds, move |yielder: &Yielder<(), ()>, ()| {
            // SAFETY: `this` is the Context, which does not move while it can run.
            let ctx = unsafe { &*(this as *const Context) };
            ctx.yielder.set(yielder);
            // SAFETY: `main` and `arg` come together from `init`, whose caller vouches.
            unsafe { main(arg as *mut u8) };
        });
        // SAFETY: not running yet, so nothing else refers to the slot.
        unsafe { *self.coroutine.get() = Some(coroutine) };
    }

    /// Runs the context until it suspends (`false`) or its `main` returns (`true`).
    ///
    /// # Safety
    ///
    /// Initialised, not finished, not running, and resumed by one thread at a time.
    pub(crate) unsafe fn resume(&self) -> bool {
        // SAFETY: not running, so the resumer is the only one touching the slot; the
        // coroutine itself reaches the Context only through `yielder` (a Cell).
        let coroutine = unsafe { &mut *self.coroutine.get() };
        let coroutine = coroutine.as_mut().expect("resume after init");
        matches!(coroutine.resume(()), CoroutineResult::Return(()))
    }

    /// Switches back to whoever resumed this context; returns when it is resumed again
    /// (not when it is only resumed to run a probe, see [`Context::probe`]).
    ///
    /// # Safety
    ///
    /// Must be called on this context's own stack, while it runs.
    pub(crate) unsafe fn suspend(&self) {
        loop {
            // SAFETY: the yielder was set when the coroutine started and lives at the base
            // of its stack, which is where we are running.
            unsafe { (*self.yielder.get()).suspend(()) }
            let Some((f, arg)) = self.visit.take() else {
                return;
            };
            // SAFETY: `probe`'s caller vouches for `f` and `arg`, and that `f` does not
            // unwind.
            unsafe { f(arg) };
        }
    }
}

impl Context {
    /// Calls `f(arg)` on this suspended context's own stack, where it switched away, so an
    /// unwinder started in `f` walks the context's frames. corosensei keeps a suspended
    /// coroutine's registers to itself, so unlike `own::Context::probe` this resumes the
    /// context: it wakes inside [`Context::suspend`], below the thread's own frames, runs
    /// `f` there and switches straight back. No code of the thread runs, and nothing the
    /// thread uses is written (`f`'s frames lie below the stack pointer it stopped at).
    ///
    /// # Safety
    ///
    /// Started, not running, not finished, and not resumed by anyone else until this
    /// returns, on the OS thread that owns its run. `f` must not unwind.
    // Used when corosensei is the runtime's backend (the feature, or no assembly of ours).
    #[cfg_attr(not(feature = "corosensei"), allow(dead_code))]
    pub(crate) unsafe fn probe(&self, f: unsafe extern "C" fn(*mut u8), arg: *mut u8) {
        self.visit.set(Some((f, arg)));
        // SAFETY: suspended and resumed only by us (the caller's contract), so we are the
        // only one touching the slot; the context is inside `suspend`, which runs the visit
        // and yields again.
        let coroutine = unsafe { &mut *self.coroutine.get() };
        let coroutine = coroutine.as_mut().expect("probe after start");
        let result = coroutine.resume(());
        debug_assert!(matches!(result, CoroutineResult::Yield(())));
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(coroutine) = self.coroutine.get_mut().take() {
            if coroutine.started() && !coroutine.done() {
                // Unwinding it here would run the thread's code on whatever thread drops
                // the context; leak its frames instead, as the stack itself is leaked.
                std::mem::forget(coroutine);
            }
        }
    }
}
