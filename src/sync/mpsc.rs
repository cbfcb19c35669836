//! Multi-producer, single-consumer channels mirroring [`std::sync::mpsc`], whose blocking
//! calls park only the calling green thread. The error types are std's own.
//!
//! ```
//! use greenring::sync::mpsc;
//!
//! let (tx, rx) = mpsc::channel();
//! for i in 0..10 {
//!     let tx = tx.clone();
//!     greenring::spawn(move || tx.send(i).unwrap());
//! }
//! drop(tx);
//! let mut got: Vec<i32> = rx.iter().collect();
//! got.sort();
//! assert_eq!(got, (0..10).collect::<Vec<_>>());
//! ```

use std::sync::Arc;

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use super::chan::{receiver_api, receiver_iters, sender_handle, Chan, SendFailure};

/// An unbounded channel: `send` never waits.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Chan::new(None);
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// A bounded channel holding up to `bound` values; `send` waits while it is full. A bound
/// of 0 makes a rendezvous channel: `send` returns once a receiver took the value.
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    let chan = Chan::new(Some(bound));
    (
        SyncSender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

fn disconnected<T>(failure: SendFailure<T>) -> SendError<T> {
    match failure {
        SendFailure::Disconnected(value) | SendFailure::Timeout(value) => SendError(value),
    }
}

/// The sending half of [`channel`].
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends a value.
    ///
    /// # Errors
    ///
    /// `SendError` carrying the value when the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.send(value, None).map_err(disconnected)
    }
}

/// The sending half of [`sync_channel`].
pub struct SyncSender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> SyncSender<T> {
    /// Sends a value, waiting for room (or, with bound 0, for a receiver to take it).
    ///
    /// # Errors
    ///
    /// `SendError` carrying the value when the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.send(value, None).map_err(disconnected)
    }

    /// Sends without waiting.
    ///
    /// # Errors
    ///
    /// `TrySendError::Full` when there is no room (bound 0: no receiver waiting),
    /// `Disconnected` when the receiver is gone.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(value)
    }
}

/// The receiving half of [`channel`] and [`sync_channel`].
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

receiver_api!();
receiver_iters!();
sender_handle!(Sender);
sender_handle!(SyncSender);
