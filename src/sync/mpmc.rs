//! Multi-producer, multi-consumer channels: like [`super::mpsc`], with cloneable receivers
//! (each value goes to exactly one of them).
//!
//! ```
//! use greenring::sync::mpmc;
//!
//! let (tx, rx) = mpmc::bounded(16);
//! let workers: Vec<_> = (0..4)
//!     .map(|_| {
//!         let rx = rx.clone();
//!         greenring::spawn(move || rx.iter().map(|n: u64| n * n).sum::<u64>())
//!     })
//!     .collect();
//! for n in 0..100 {
//!     tx.send(n).unwrap();
//! }
//! drop(tx);
//! let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
//! assert_eq!(total, (0..100u64).map(|n| n * n).sum());
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use super::chan::{Chan, Selectable, SendFailure};

/// An unbounded channel.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Chan::new(None);
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// A channel holding up to `capacity` values (0: rendezvous).
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Chan::new(Some(capacity));
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// A sending half; clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends a value, waiting for room on a bounded channel.
    ///
    /// # Errors
    ///
    /// `SendError` carrying the value when every receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan
            .send(value, None)
            .map_err(|failure| match failure {
                SendFailure::Disconnected(value) | SendFailure::Timeout(value) => SendError(value),
            })
    }

    /// Sends without waiting.
    ///
    /// # Errors
    ///
    /// `Full` or `Disconnected`.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(value)
    }

    /// Sends, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// `Full` (carrying the value) after the timeout, or `Disconnected`.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), TrySendError<T>> {
        self.chan
            .send(value, Instant::now().checked_add(timeout))
            .map_err(|failure| match failure {
                SendFailure::Disconnected(value) => TrySendError::Disconnected(value),
                SendFailure::Timeout(value) => TrySendError::Full(value),
            })
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.add_sender();
        Sender {
            chan: Arc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// A receiving half; clone it for more consumers.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

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
    /// `Empty` or `Disconnected`.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Receives a value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `Timeout` or `Disconnected`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Instant::now().checked_add(timeout))
    }

    /// An iterator of received values that ends when every sender is gone.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// An iterator of the values queued now.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    pub(super) fn selectable(&self) -> &dyn Selectable {
        &*self.chan
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.add_receiver();
        Receiver {
            chan: Arc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}
