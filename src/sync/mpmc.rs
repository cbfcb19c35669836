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

use std::sync::Arc;
use std::time::Duration;

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use super::chan::{receiver_api, sender_handle, Chan, SendFailure};

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
            .send(value, crate::time::deadline_after(timeout))
            .map_err(|failure| match failure {
                SendFailure::Disconnected(value) => TrySendError::Disconnected(value),
                SendFailure::Timeout(value) => TrySendError::Full(value),
            })
    }
}

/// A receiving half; clone it for more consumers.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

receiver_api!();
sender_handle!(Sender);

impl<T> Receiver<T> {
    /// An iterator of received values that ends when every sender is gone.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// An iterator of the values queued now.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
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
