//! [`Barrier`] and [`WaitGroup`].

use std::fmt;
use std::sync::Arc;

use super::shim::const_fn;
use super::{Condvar, Mutex};

/// A barrier for `n` threads, like [`std::sync::Barrier`]; reusable.
pub struct Barrier {
    state: Mutex<BarrierState>,
    all_arrived: Condvar,
    parties: usize,
}

struct BarrierState {
    arrived: usize,
    generation: u64,
}

/// Returned by [`Barrier::wait`]: one of the threads is the leader of each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// `true` for exactly one thread of each round.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    const_fn! {
        /// A barrier that releases its waiters once `n` have arrived (`n` of 0 acts as 1).
        pub fn new(n: usize) -> Barrier {
            Barrier {
                state: Mutex::new(BarrierState {
                    arrived: 0,
                    generation: 0,
                }),
                all_arrived: Condvar::new(),
                parties: n,
            }
        }
    }

    /// Waits until all parties have arrived in this round.
    pub fn wait(&self) -> BarrierWaitResult {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = state.generation;
        state.arrived += 1;
        if state.arrived < self.parties {
            while state.generation == generation {
                state = self
                    .all_arrived
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            BarrierWaitResult(false)
        } else {
            state.arrived = 0;
            state.generation = state.generation.wrapping_add(1);
            self.all_arrived.notify_all();
            BarrierWaitResult(true)
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .finish_non_exhaustive()
    }
}

/// Waits for a group of threads to finish, Go's `sync.WaitGroup` in crossbeam's shape:
/// every clone is one member; dropping a clone marks it done; `wait` drops the caller's
/// own membership and waits for all other members.
///
/// ```
/// use greenring::sync::WaitGroup;
///
/// let group = WaitGroup::new();
/// for _ in 0..10 {
///     let member = group.clone();
///     greenring::spawn(move || drop(member));
/// }
/// group.wait();
/// ```
pub struct WaitGroup {
    inner: Arc<WaitGroupInner>,
}

struct WaitGroupInner {
    members: Mutex<usize>,
    all_done: Condvar,
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl WaitGroup {
    /// A group with one member: the returned handle.
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(WaitGroupInner {
                members: Mutex::new(1),
                all_done: Condvar::new(),
            }),
        }
    }

    /// Leaves the group and waits until every other member has left.
    pub fn wait(self) {
        let inner = Arc::clone(&self.inner);
        drop(self);
        let members = inner
            .members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(
            inner
                .all_done
                .wait_while(members, |n| *n > 0)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }
}

impl Clone for WaitGroup {
    fn clone(&self) -> WaitGroup {
        *self
            .inner
            .members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        WaitGroup {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for WaitGroup {
    fn drop(&mut self) {
        let mut members = self
            .inner
            .members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *members -= 1;
        if *members == 0 {
            self.inner.all_done.notify_all();
        }
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members = *self
            .inner
            .members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.debug_struct("WaitGroup")
            .field("members", &members)
            .finish()
    }
}
