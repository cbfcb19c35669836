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

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use super::chan::{receiver_api, receiver_iters, sender_handle, Chan, SendFailure};

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

    /// Sends, waiting at most `timeout` for room (on a rendezvous channel, for a receiver
    /// to take the value), like std's `mpmc::Sender::send_timeout`.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] carrying the value when the timeout passed first,
    /// [`SendTimeoutError::Disconnected`] when every receiver is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use greenring::sync::mpmc::{self, SendTimeoutError};
    ///
    /// let (tx, rx) = mpmc::bounded(1);
    /// tx.send(1).unwrap();
    /// let full = tx.send_timeout(2, Duration::from_millis(1));
    /// assert_eq!(full, Err(SendTimeoutError::Timeout(2)));
    /// drop(rx);
    /// let gone = tx.send_timeout(3, Duration::from_millis(1));
    /// assert_eq!(gone, Err(SendTimeoutError::Disconnected(3)));
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan
            .send(value, crate::timeout::deadline_after(timeout))
            .map_err(|failure| match failure {
                SendFailure::Disconnected(value) => SendTimeoutError::Disconnected(value),
                SendFailure::Timeout(value) => SendTimeoutError::Timeout(value),
            })
    }
}

/// Why [`Sender::send_timeout`] failed, with the value that was not sent: std's
/// `SendTimeoutError` (unstable in std, `mpmc_channel`), with its `Debug`, `Display` and
/// `Error`.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The channel stayed full (on a rendezvous channel: no receiver took the value) until
    /// the timeout passed.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Prints `"SendTimeoutError(..)"`, quotes included, as std's does (it formats the name
/// as a `&str` with `Debug`), so that `T` need not be `Debug`.
impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt("SendTimeoutError(..)", f)
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendTimeoutError::Timeout(..) => "timed out waiting on send operation",
            SendTimeoutError::Disconnected(..) => "sending on a disconnected channel",
        })
    }
}

impl<T> Error for SendTimeoutError<T> {}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(SendError(value): SendError<T>) -> SendTimeoutError<T> {
        SendTimeoutError::Disconnected(value)
    }
}

/// A receiving half; clone it for more consumers.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

receiver_api!();
receiver_iters!();
sender_handle!(Sender);

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.add_receiver();
        Receiver {
            chan: Arc::clone(&self.chan),
        }
    }
}
