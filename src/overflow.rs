//! Reporting green thread stack overflows.
//!
//! Every green stack has a guard page below it. Touching it raises SIGSEGV (or SIGBUS) on a
//! stack that has no room left, so each worker runs with an alternate signal stack
//! ([`AltStack`]) and the handler runs there. The handler compares the faulting address
//! with the guard page of the green thread running on this OS thread; on a match it writes
//! `green thread '<name>' has overflowed its stack` to stderr and aborts, as std does for OS
//! threads. Any other fault goes to the handler that was installed before ours (std's own
//! overflow handler, or the default action), so faults elsewhere behave as they would
//! without greenring.
//!
//! The handler only calls async-signal-safe functions: `write(2)`, `sigaction(2)` and
//! `abort(3)`; it reads a const-initialised thread-local (no lazy initialisation, no
//! allocation) and the running task's immutable fields.

use std::mem;
use std::ptr;
use std::sync::{Once, OnceLock};

/// The actions for SIGSEGV and SIGBUS that were in place before ours.
static PREVIOUS: OnceLock<[libc::sigaction; 2]> = OnceLock::new();
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Size of the alternate signal stack we map when a worker has none.
const ALTSTACK_SIZE: usize = 64 * 1024;

/// Installs the overflow handler for the whole process, once.
pub(crate) fn install_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, no flags, empty mask).
        let mut previous: [libc::sigaction; 2] = unsafe { mem::zeroed() };
        for (signal, previous) in SIGNALS.iter().zip(previous.iter_mut()) {
            // SAFETY: reading the current action into a valid out-pointer.
            unsafe { libc::sigaction(*signal, ptr::null(), previous) };
        }
        // Publish the previous actions before the handler can run.
        PREVIOUS.get_or_init(|| previous);
        for signal in SIGNALS {
            // SAFETY: as above.
            let mut action: libc::sigaction = unsafe { mem::zeroed() };
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `on_fault` has the SA_SIGINFO signature and is async-signal-safe.
            unsafe {
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, ptr::null_mut());
            }
        }
    });
}

unsafe extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let address = unsafe { (*info).si_addr() } as usize;
    // The running green thread's guard (set before its first run) and `name` never change;
    // reading them and the current-task cell (a plain thread-local) is async-signal-safe.
    crate::task::current::with(|task| {
        if task
            .guard()
            .is_some_and(|(start, end)| (start..end).contains(&address))
        {
            let name = task.name.as_deref().unwrap_or("<unnamed>");
            write_stderr(b"\ngreen thread '");
            write_stderr(name.as_bytes());
            write_stderr(
                b"' has overflowed its stack\nfatal runtime error: stack overflow, aborting\n",
            );
            // SAFETY: abort is async-signal-safe.
            unsafe { libc::abort() };
        }
    });
    // SAFETY: forwarding the same arguments the kernel gave us.
    unsafe { chain(signal, info, context) };
}

/// Hands a fault that is not ours to the previous action.
///
/// # Safety
///
/// Called from the signal handler with the kernel's arguments.
unsafe fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let index = usize::from(signal == libc::SIGBUS);
    let previous = PREVIOUS.get().map(|p| p[index]);
    match previous {
        Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
            if p.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: with SA_SIGINFO the previous handler has this signature.
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { mem::transmute(p.sa_sigaction) };
                handler(signal, info, context);
            } else {
                // SAFETY: without SA_SIGINFO the previous handler takes only the signal.
                let handler: extern "C" fn(libc::c_int) = unsafe { mem::transmute(p.sa_sigaction) };
                handler(signal);
            }
        }
        _ => {
            // Restore the default action and return: the faulting instruction runs again
            // and the kernel applies the default (a core dump), as without greenring.
            // SAFETY: all-zero is SIG_DFL with no flags; sigaction is async-signal-safe.
            unsafe {
                let default: libc::sigaction = mem::zeroed();
                libc::sigaction(signal, &default, ptr::null_mut());
            }
        }
    }
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: writing a valid buffer to fd 2; write is async-signal-safe. A short or failed
    // write loses part of the message, nothing more.
    unsafe { crate::sys::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
}

/// The alternate signal stack of one worker OS thread, for as long as the value lives.
/// Threads that already have one (std installs one on the threads it spawns) keep theirs.
pub(crate) struct AltStack {
    mapping: Option<memmap2::MmapMut>,
}

impl AltStack {
    /// Makes sure the current OS thread has an alternate signal stack.
    pub(crate) fn install() -> AltStack {
        // SAFETY: an all-zero stack_t is valid; sigaltstack reads the current one into it.
        let mut old: libc::stack_t = unsafe { mem::zeroed() };
        // SAFETY: valid out-pointer, no new stack.
        unsafe { libc::sigaltstack(ptr::null(), &mut old) };
        if old.ss_flags & libc::SS_DISABLE == 0 {
            return AltStack { mapping: None };
        }
        // Without an alternate stack an overflow still kills the process (SIGSEGV), only
        // without the message; so a refused mapping is not an error worth failing for.
        let Ok(mut mapping) = memmap2::MmapMut::map_anon(ALTSTACK_SIZE) else {
            return AltStack { mapping: None };
        };
        let new = libc::stack_t {
            ss_sp: mapping.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: ALTSTACK_SIZE,
        };
        // SAFETY: the mapping stays alive until Drop disables the alternate stack.
        unsafe { libc::sigaltstack(&new, ptr::null_mut()) };
        AltStack {
            mapping: Some(mapping),
        }
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        if self.mapping.is_some() {
            let disable = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling before the mapping is unmapped (when `self.mapping` drops
            // right after); we are not on the alternate stack here.
            unsafe { libc::sigaltstack(&disable, ptr::null_mut()) };
        }
    }
}
