//! The park word of one green thread: its unpark token, and who holds its run while it is
//! parked.
//!
//! # States
//!
//! - [`EMPTY`]: no unpark token.
//! - [`NOTIFIED`]: an unpark token waits to be consumed.
//! - [`PARKED`]: the thread switched away in `park`, and its *run reference* (the `TaskRef`
//!   that entitles its holder to resume it) is held by this word. Whoever moves the word
//!   out of `PARKED` takes that reference and must schedule the thread.
//! - [`BLOCKED`]: the thread is unwinding (a destructor parks during a panic), so it may not
//!   switch away (std's panic count belongs to the OS thread, and every green thread run
//!   on that OS thread would see `std::thread::panicking()`). It blocks the OS thread
//!   instead, in an OS-level park; whoever moves the word out of `BLOCKED` wakes that OS
//!   thread, recorded in `blocker` before the word changed.
//!
//! # Transitions
//!
//! | from | to | by | when |
//! | --- | --- | --- | --- |
//! | `EMPTY` | `NOTIFIED` | an unparker | the thread is not parked |
//! | `NOTIFIED` | `EMPTY` | the thread | `park` consumes the token without waiting |
//! | `EMPTY` | `PARKED` | the worker | after the thread's switch away has finished |
//! | `NOTIFIED` | `EMPTY` | the worker | a token arrived during the switch: run again |
//! | `PARKED` | `EMPTY` | an unparker | it takes the run reference and schedules it |
//! | `EMPTY` | `BLOCKED` | the thread | it parks while unwinding |
//! | `BLOCKED` | `EMPTY` | an unparker, or the thread on timeout | then the OS thread runs on |
//!
//! Publishing `PARKED` only after the switch away has finished (the worker does it, on its
//! own stack) means a thread is never resumed while still running on its stack; a token
//! that lands during the switch is seen by the worker's CAS, so no wake-up is lost.

use std::time::Duration;

use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::loom::sync::Mutex;
use crate::loom::thread::{self, Thread};

/// No unpark token.
const EMPTY: u8 = 0;
/// An unpark token waits.
const NOTIFIED: u8 = 1;
/// Switched away in `park`; the word owns the run reference.
const PARKED: u8 = 2;
/// Parked while unwinding: the OS thread itself waits.
const BLOCKED: u8 = 3;

/// What an unpark did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unparked {
    /// Left a token (or one was already there): the thread will see it.
    Token,
    /// The thread was parked: the caller now owns its run reference and must schedule it.
    Resume,
    /// The thread was blocked in an OS-level park and has been woken.
    Woke,
}

/// A green thread's park word (see the module documentation).
#[derive(Debug)]
pub(crate) struct ParkWord {
    state: AtomicU8,
    /// The OS thread blocked in [`ParkWord::block_os`], written before the word goes to
    /// `BLOCKED`.
    blocker: Mutex<Option<Thread>>,
}

impl ParkWord {
    pub(crate) fn new() -> ParkWord {
        ParkWord {
            state: AtomicU8::new(EMPTY),
            blocker: Mutex::new(None),
        }
    }

    /// `true` in `PARKED`: the thread waits for an unpark.
    pub(crate) fn is_parked(&self) -> bool {
        self.state.load(Ordering::Relaxed) == PARKED
    }

    /// Consumes an unpark token if there is one; `true` if there was.
    pub(crate) fn take_token(&self) -> bool {
        self.state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Called by the worker once the thread switched away to park. `true`: the word now
    /// holds the run reference (the caller must give it up). `false`: a token arrived
    /// during the switch; it is consumed and the caller keeps the reference to run the
    /// thread again.
    pub(crate) fn publish_parked(&self) -> bool {
        match self
            .state
            .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(_notified) => {
                // Only the thread (which is switched away) and this worker consume tokens,
                // and unparkers never leave NOTIFIED, so the word stays NOTIFIED until
                // this consumes it. A swap, not a store: it reads the newest token, so it
                // acquires the writes of every unpark made so far (one may have rewritten
                // NOTIFIED since the failed exchange read it), and the thread run again
                // sees them.
                self.state.swap(EMPTY, Ordering::Acquire);
                false
            }
        }
    }

    /// Makes a token available, or wakes the thread if it is parked or blocked.
    ///
    /// Always a read-modify-write with release ordering, even when a token is already
    /// there (NOTIFIED is rewritten as NOTIFIED): whatever the caller wrote before
    /// unparking (the condition the thread waits for) must reach the thread that consumes
    /// the token. An unpark that only loaded NOTIFIED and left would publish nothing: the
    /// thread could consume that older token, read the condition from before the caller's
    /// write, and park with nobody left to wake it (on x86 the caller's store can still be
    /// in its store buffer when its load of the word runs). The RMW reads the newest value
    /// of the word, so it either comes before the thread's `take_token` (which then
    /// acquires the caller's writes) or after it (and leaves a fresh token).
    pub(crate) fn unpark(&self) -> Unparked {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let next = match state {
                NOTIFIED | EMPTY => NOTIFIED,
                _parked_or_blocked => EMPTY,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(PARKED) => return Unparked::Resume,
                Ok(BLOCKED) => {
                    // The blocker was recorded before the word went to BLOCKED, and the
                    // blocked thread's loop only ends once it sees the word leave BLOCKED,
                    // so it is the thread that waits (a stale unpark of a later park is a
                    // harmless spurious wake-up there).
                    if let Some(os_thread) = self.lock_blocker().as_ref() {
                        os_thread.unpark();
                    }
                    return Unparked::Woke;
                }
                Ok(_) => return Unparked::Token,
                Err(actual) => state = actual,
            }
        }
    }

    /// Parks the calling OS thread (the one running this green thread) until unparked or
    /// until `timeout` passes, consuming the token. Used while the thread unwinds, when it
    /// must not switch away.
    pub(crate) fn block_os(&self, timeout: Option<Duration>) {
        if self.take_token() {
            return;
        }
        *self.lock_blocker() = Some(thread::current());
        if self
            .state
            .compare_exchange(EMPTY, BLOCKED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // A token arrived meanwhile (nothing else moves an EMPTY word of a running
            // thread): consume it.
            self.take_token();
            return;
        }
        match timeout {
            None => {
                while self.state.load(Ordering::Acquire) == BLOCKED {
                    thread::park();
                }
            }
            Some(timeout) => {
                if self.state.load(Ordering::Acquire) == BLOCKED {
                    thread::park_timeout(timeout);
                }
                // Leave on our own unless an unparker already moved the word (then it also
                // consumed the token for us: either way the word ends EMPTY).
                let _ = self.state.compare_exchange(
                    BLOCKED,
                    EMPTY,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
    }

    fn lock_blocker(&self) -> crate::loom::sync::MutexGuard<'_, Option<Thread>> {
        // A plain store or read under the lock: never left half done by a panic.
        self.blocker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn unpark_before_park_leaves_a_token() {
        let word = ParkWord::new();
        assert_eq!(word.unpark(), Unparked::Token);
        assert_eq!(word.unpark(), Unparked::Token, "tokens do not accumulate");
        assert!(word.take_token());
        assert!(!word.take_token());
    }

    #[test]
    fn an_unpark_after_publishing_hands_back_the_run() {
        let word = ParkWord::new();
        assert!(word.publish_parked());
        assert_eq!(word.unpark(), Unparked::Resume);
        assert_eq!(
            word.unpark(),
            Unparked::Token,
            "a second unpark leaves a token"
        );
    }

    #[test]
    fn a_token_during_the_switch_runs_the_thread_again() {
        let word = ParkWord::new();
        assert_eq!(word.unpark(), Unparked::Token);
        assert!(!word.publish_parked());
        assert!(!word.take_token(), "the worker consumed the token");
    }

    #[test]
    fn a_blocked_thread_is_woken_by_an_unpark() {
        let word = std::sync::Arc::new(ParkWord::new());
        let unparker = {
            let word = std::sync::Arc::clone(&word);
            std::thread::spawn(move || loop {
                match word.unpark() {
                    Unparked::Woke => return,
                    // Not blocked yet: take the token back and try again.
                    _ => {
                        word.take_token();
                        std::thread::yield_now();
                    }
                }
            })
        };
        word.block_os(None);
        unparker.join().unwrap();
    }

    #[test]
    fn a_timed_block_returns_after_its_timeout() {
        let word = ParkWord::new();
        let start = std::time::Instant::now();
        word.block_os(Some(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(
            word.unpark(),
            Unparked::Token,
            "the word went back to EMPTY"
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Every interleaving of the park word's parties: the green thread (consuming tokens),
    //! the worker (publishing PARKED after the switch), unparkers, and the unwinding thread
    //! that blocks its OS thread.
    use super::*;
    use crate::loom::sync::Arc;

    /// A park racing an unpark: the thread either consumes the token, or is parked and
    /// exactly one party takes its run reference back.
    #[test]
    fn park_and_unpark_never_lose_the_thread() {
        loom::model(|| {
            let word = Arc::new(ParkWord::new());
            let unparker = {
                let word = Arc::clone(&word);
                loom::thread::spawn(move || word.unpark())
            };
            // The thread's side: no token, so it switches away; the worker publishes.
            let runs_again = if word.take_token() {
                true
            } else {
                !word.publish_parked()
            };
            let unparked = unparker.join().unwrap();
            match unparked {
                Unparked::Resume => assert!(!runs_again, "resumed twice"),
                Unparked::Token => assert!(runs_again, "parked with nobody to wake it"),
                Unparked::Woke => unreachable!("nobody blocked"),
            }
        });
    }

    /// An unparker that first makes the parked thread's condition (`ready`) true.
    fn unparker_with_data(
        word: &Arc<ParkWord>,
        ready: &Arc<crate::loom::sync::atomic::AtomicBool>,
    ) -> loom::thread::JoinHandle<Unparked> {
        let (word, ready) = (Arc::clone(word), Arc::clone(ready));
        loom::thread::spawn(move || {
            ready.store(true, Ordering::Release);
            word.unpark()
        })
    }

    /// The thread's side of `while !ready { park() }`, with the worker publishing PARKED
    /// after the switch; `true` if the thread ended parked.
    fn park_until(word: &ParkWord, ready: &crate::loom::sync::atomic::AtomicBool) -> bool {
        loop {
            if ready.load(Ordering::Acquire) {
                return false;
            }
            if word.take_token() {
                continue;
            }
            if word.publish_parked() {
                return true;
            }
        }
    }

    /// The waker's data reaches a thread that consumed an older token. The thread checks
    /// its condition, finds it unmet, and parks; a stale token from an earlier unpark
    /// lets it through once, so it checks again and parks for real. The unparker makes the
    /// condition true, then unparks. Whatever the order, the thread either sees the
    /// condition or is resumed by that unpark: an unpark that only *reads* the stale token
    /// and leaves would publish nothing, and the thread could read the old condition and
    /// park for good (on x86 the unparker's store may still sit in its store buffer).
    #[test]
    fn an_unpark_meeting_a_stale_token_still_publishes_its_data() {
        use crate::loom::sync::atomic::AtomicBool;
        loom::model(|| {
            let word = Arc::new(ParkWord::new());
            let ready = Arc::new(AtomicBool::new(false));
            assert_eq!(word.unpark(), Unparked::Token, "the stale token");
            let unparker = unparker_with_data(&word, &ready);
            let parked = park_until(&word, &ready);
            let unparked = unparker.join().unwrap();
            if parked {
                assert_eq!(unparked, Unparked::Resume, "parked with nobody to wake it");
            }
        });
    }

    /// As above, with a token that arrives during the switch: the worker consumes it and
    /// runs the thread again, which must then see the data of an unpark that rewrote the
    /// token meanwhile.
    #[test]
    fn a_token_consumed_by_the_worker_carries_every_unparks_data() {
        use crate::loom::sync::atomic::AtomicBool;
        loom::model(|| {
            let word = Arc::new(ParkWord::new());
            let ready = Arc::new(AtomicBool::new(false));
            let plain = {
                let word = Arc::clone(&word);
                loom::thread::spawn(move || word.unpark())
            };
            let unparker = unparker_with_data(&word, &ready);
            let parked = park_until(&word, &ready);
            let unparked = [plain.join().unwrap(), unparker.join().unwrap()];
            if parked {
                assert!(
                    unparked.contains(&Unparked::Resume),
                    "parked with nobody to wake it"
                );
            }
        });
    }

    /// Two unparkers of one parked thread: exactly one resumes it.
    #[test]
    fn racing_unparks_resume_once() {
        loom::model(|| {
            let word = Arc::new(ParkWord::new());
            assert!(word.publish_parked());
            let other = {
                let word = Arc::clone(&word);
                loom::thread::spawn(move || word.unpark())
            };
            let mine = word.unpark();
            let theirs = other.join().unwrap();
            let resumes = [mine, theirs]
                .iter()
                .filter(|u| **u == Unparked::Resume)
                .count();
            assert_eq!(resumes, 1);
        });
    }

    /// A thread blocking its OS thread while unwinding is woken by an unpark that comes
    /// before, during or after it blocks; the model fails on a lost wake-up (deadlock).
    #[test]
    fn a_blocked_thread_is_never_left_asleep() {
        loom::model(|| {
            let word = Arc::new(ParkWord::new());
            let unparker = {
                let word = Arc::clone(&word);
                loom::thread::spawn(move || {
                    word.unpark();
                })
            };
            word.block_os(None);
            unparker.join().unwrap();
        });
    }
}
