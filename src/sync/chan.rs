//! The channel core shared by `mpsc` and `mpmc`: a queue under one lock, with wait lists
//! for receivers (empty queue) and senders (full queue, or a rendezvous not yet taken).
//!
//! Capacity `None` is unbounded, `Some(n)` bounded, `Some(0)` a rendezvous: a send returns
//! once a receiver has taken its value. Values carry a sequence number and leave in FIFO
//! order, so "value `seq` was taken" is "more than `seq` values were taken".

use std::collections::VecDeque;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError, TrySendError};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::shim::{self, Mutex, MutexGuard};
use super::wait::{WaitList, Waiter};

/// Why a send did not complete.
pub(super) enum SendFailure<T> {
    Disconnected(T),
    Timeout(T),
}

struct State<T> {
    queue: VecDeque<(u64, T)>,
    capacity: Option<usize>,
    next_seq: u64,
    taken: u64,
    senders: usize,
    receivers: usize,
    receiving: WaitList,
    sending: WaitList,
}

impl<T> State<T> {
    fn list(&mut self, side: Side) -> &mut WaitList {
        match side {
            Side::Receiving => &mut self.receiving,
            Side::Sending => &mut self.sending,
        }
    }

    /// Takes the value of send `seq` back out of the queue, unless a receiver took it.
    fn remove_untaken(&mut self, seq: u64) -> Option<T> {
        let at = self.queue.iter().position(|(s, _)| *s == seq)?;
        self.queue.remove(at).map(|(_, value)| value)
    }
}

/// A channel, shared by its senders and receivers.
pub(super) struct Chan<T> {
    state: Mutex<State<T>>,
}

#[derive(Clone, Copy)]
enum Side {
    Receiving,
    Sending,
}

impl<T> Chan<T> {
    /// A channel with one sender and one receiver counted.
    pub(super) fn new(capacity: Option<usize>) -> Arc<Chan<T>> {
        Arc::new(Chan {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity,
                next_seq: 0,
                taken: 0,
                senders: 1,
                receivers: 1,
                receiving: WaitList::new(),
                sending: WaitList::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No user code runs under this lock, so it is never poisoned in a harmful way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a waiter for `side`, releases the lock, waits, and re-locks; `true` if it
    /// was notified (`false`: the deadline passed).
    ///
    /// If the wait unwinds, the waiter leaves its list, a wake-up it was given passes to
    /// the next waiter of its side, and the value of rendezvous send `unsent` (if any, and
    /// not taken yet) leaves the queue: a send that did not return did not happen, unless a
    /// receiver had taken its value already (the cancellation came between the taking and
    /// the sender's next look); no value is ever lost either way.
    fn wait<'a>(
        &'a self,
        mut state: MutexGuard<'a, State<T>>,
        side: Side,
        deadline: Option<Instant>,
        unsent: Option<u64>,
    ) -> (MutexGuard<'a, State<T>>, bool) {
        let _wait = crate::task::wait::hint(match side {
            Side::Sending => crate::task::wait::CHANNEL_SEND,
            Side::Receiving => crate::task::wait::CHANNEL_RECV,
        });
        let waiter = Waiter::new();
        state.list(side).push(waiter.clone());
        drop(state);
        let notified = waiter.wait(deadline, || {
            let mut state = self.lock();
            let list = state.list(side);
            if list.abandon(&waiter) {
                list.notify_one();
            }
            let value = unsent.and_then(|seq| state.remove_untaken(seq));
            drop(state);
            drop(value);
        });
        let mut state = self.lock();
        if !notified {
            state.list(side).remove(&waiter);
        }
        (state, notified)
    }

    /// Sends `value`, waiting for room (or for a receiver, on a rendezvous) until
    /// `deadline`.
    pub(super) fn send(&self, value: T, deadline: Option<Instant>) -> Result<(), SendFailure<T>> {
        shim::count_call();
        let mut state = self.lock();
        loop {
            if state.receivers == 0 {
                return Err(SendFailure::Disconnected(value));
            }
            let full = matches!(state.capacity, Some(n) if n > 0 && state.queue.len() >= n);
            if !full {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SendFailure::Timeout(value));
            }
            state = self.wait(state, Side::Sending, deadline, None).0;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.queue.push_back((seq, value));
        state.receiving.notify_one();
        if state.capacity != Some(0) {
            return Ok(());
        }
        // Rendezvous: wait until a receiver took it.
        loop {
            if state.taken > seq {
                return Ok(());
            }
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            if state.receivers == 0 || timed_out {
                let value = state
                    .remove_untaken(seq)
                    .expect("an untaken value is queued");
                return Err(if timed_out {
                    SendFailure::Timeout(value)
                } else {
                    SendFailure::Disconnected(value)
                });
            }
            state = self.wait(state, Side::Sending, deadline, Some(seq)).0;
        }
    }

    /// Sends without waiting.
    pub(super) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        shim::count_call();
        let mut state = self.lock();
        if state.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        match state.capacity {
            // A rendezvous succeeds only if a receiver is waiting to take the value.
            Some(0) => {
                if !state.receiving.notify_one() {
                    return Err(TrySendError::Full(value));
                }
            }
            Some(n) if state.queue.len() >= n => return Err(TrySendError::Full(value)),
            _ => {
                state.receiving.notify_one();
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.queue.push_back((seq, value));
        Ok(())
    }

    fn take(state: &mut State<T>) -> Option<T> {
        let (_, value) = state.queue.pop_front()?;
        state.taken += 1;
        if state.capacity == Some(0) {
            // Each rendezvous sender waits for its own value: let them all look.
            state.sending.notify_all();
        } else {
            state.sending.notify_one();
        }
        Some(value)
    }

    /// Receives a value, waiting until `deadline`.
    pub(super) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        shim::count_call();
        let mut state = self.lock();
        loop {
            if let Some(value) = Chan::take(&mut state) {
                return Ok(value);
            }
            if state.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            let (next, notified) = self.wait(state, Side::Receiving, deadline, None);
            state = next;
            if !notified {
                return Chan::take(&mut state).ok_or(if state.senders == 0 {
                    RecvTimeoutError::Disconnected
                } else {
                    RecvTimeoutError::Timeout
                });
            }
        }
    }

    /// Receives without waiting.
    pub(super) fn try_recv(&self) -> Result<T, TryRecvError> {
        shim::count_call();
        let mut state = self.lock();
        match Chan::take(&mut state) {
            Some(value) => Ok(value),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    pub(super) fn add_sender(&self) {
        self.lock().senders += 1;
    }

    pub(super) fn add_receiver(&self) {
        self.lock().receivers += 1;
    }

    pub(super) fn drop_sender(&self) {
        let mut state = self.lock();
        state.senders -= 1;
        if state.senders == 0 {
            state.receiving.notify_all();
        }
    }

    pub(super) fn drop_receiver(&self) {
        let mut state = self.lock();
        state.receivers -= 1;
        if state.receivers == 0 {
            state.sending.notify_all();
            // Values nobody can receive any more are dropped now, as std does.
            if state.capacity != Some(0) {
                state.queue.clear();
            }
        }
    }
}

/// Implements what every sender type shares for a `$ty<T> { chan: Arc<Chan<T>> }`:
/// cloning counts a sender in, dropping counts it out (the last one disconnects).
macro_rules! sender_handle {
    ($ty:ident) => {
        impl<T> Clone for $ty<T> {
            fn clone(&self) -> $ty<T> {
                self.chan.add_sender();
                $ty {
                    chan: std::sync::Arc::clone(&self.chan),
                }
            }
        }

        impl<T> Drop for $ty<T> {
            fn drop(&mut self) {
                self.chan.drop_sender();
            }
        }

        impl<T> std::fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }
    };
}

/// Implements the receiving API both channel families share, for a
/// `Receiver<T> { chan: Arc<Chan<T>> }`.
macro_rules! receiver_api {
    () => {
        impl<T> Receiver<T> {
            /// Receives a value, waiting for one.
            ///
            /// # Errors
            ///
            /// `RecvError` once every sender is gone and the channel is empty.
            pub fn recv(&self) -> Result<T, RecvError> {
                self.chan.recv(None).map_err(|_| RecvError)
            }

            /// Receives a value if one is queued.
            ///
            /// # Errors
            ///
            /// `Empty`, or `Disconnected` once every sender is gone and the channel is empty.
            pub fn try_recv(&self) -> Result<T, TryRecvError> {
                self.chan.try_recv()
            }

            /// Receives a value, waiting at most `timeout`.
            ///
            /// # Errors
            ///
            /// `Timeout`, or `Disconnected` once every sender is gone and the channel is
            /// empty.
            pub fn recv_timeout(
                &self,
                timeout: std::time::Duration,
            ) -> Result<T, RecvTimeoutError> {
                self.chan.recv(crate::timeout::deadline_after(timeout))
            }

            pub(super) fn selectable(&self) -> &dyn super::chan::Selectable {
                &*self.chan
            }
        }

        impl<T> Drop for Receiver<T> {
            fn drop(&mut self) {
                self.chan.drop_receiver();
            }
        }

        impl<T> std::fmt::Debug for Receiver<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Receiver").finish_non_exhaustive()
            }
        }
    };
}

/// Implements the iterators both channel families share, in the shape of std's `mpsc` and
/// `mpmc`: `Receiver::iter` and `&Receiver` give an [`Iter`]-like borrowing iterator that
/// ends when every sender is gone, `Receiver::try_iter` one of the values queued now, and
/// `Receiver` an owning one.
macro_rules! receiver_iters {
    () => {
        impl<T> Receiver<T> {
            /// An iterator of received values, waiting for each; it ends once every sender
            /// is gone and the channel is empty.
            pub fn iter(&self) -> Iter<'_, T> {
                Iter { receiver: self }
            }

            /// An iterator of the values queued now, which never waits (each step counts
            /// against the cooperative budget, see the `sync` module).
            pub fn try_iter(&self) -> TryIter<'_, T> {
                TryIter { receiver: self }
            }
        }

        /// Iterator of [`Receiver::iter`].
        #[derive(Debug)]
        pub struct Iter<'a, T: 'a> {
            receiver: &'a Receiver<T>,
        }

        impl<T> Iterator for Iter<'_, T> {
            type Item = T;

            fn next(&mut self) -> Option<T> {
                self.receiver.recv().ok()
            }
        }

        /// Iterator of [`Receiver::try_iter`].
        #[derive(Debug)]
        pub struct TryIter<'a, T: 'a> {
            receiver: &'a Receiver<T>,
        }

        impl<T> Iterator for TryIter<'_, T> {
            type Item = T;

            fn next(&mut self) -> Option<T> {
                self.receiver.try_recv().ok()
            }
        }

        /// Owning iterator of a [`Receiver`], as [`Receiver::iter`].
        #[derive(Debug)]
        pub struct IntoIter<T> {
            receiver: Receiver<T>,
        }

        impl<T> Iterator for IntoIter<T> {
            type Item = T;

            fn next(&mut self) -> Option<T> {
                self.receiver.recv().ok()
            }
        }

        impl<T> IntoIterator for Receiver<T> {
            type Item = T;
            type IntoIter = IntoIter<T>;

            fn into_iter(self) -> IntoIter<T> {
                IntoIter { receiver: self }
            }
        }

        impl<'a, T> IntoIterator for &'a Receiver<T> {
            type Item = T;
            type IntoIter = Iter<'a, T>;

            fn into_iter(self) -> Iter<'a, T> {
                self.iter()
            }
        }
    };
}

pub(super) use {receiver_api, receiver_iters, sender_handle};

/// What `Select` needs from a receiver's channel, whatever its value type.
pub(super) trait Selectable {
    /// A `recv` would not wait: a value is queued or every sender is gone.
    fn is_ready(&self) -> bool;
    /// Queues `waiter` for the next value unless ready (then returns `true`).
    fn register(&self, waiter: &Arc<Waiter>) -> bool;
    /// Removes `waiter`.
    fn unregister(&self, waiter: &Arc<Waiter>);
    /// Wakes one waiting receiver: a selector that consumed a wake-up meant for this
    /// channel but picked another passes it on.
    fn pass_on(&self);
}

impl<T> Selectable for Chan<T> {
    fn is_ready(&self) -> bool {
        let state = self.lock();
        !state.queue.is_empty() || state.senders == 0
    }

    fn register(&self, waiter: &Arc<Waiter>) -> bool {
        let mut state = self.lock();
        if !state.queue.is_empty() || state.senders == 0 {
            return true;
        }
        state.receiving.push(Arc::clone(waiter));
        false
    }

    fn unregister(&self, waiter: &Arc<Waiter>) {
        self.lock().receiving.remove(waiter);
    }

    fn pass_on(&self) {
        self.lock().receiving.notify_one();
    }
}
