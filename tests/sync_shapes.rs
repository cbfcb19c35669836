//! The shapes of `greenring::sync` that std code relies on without naming them: variance,
//! auto traits, iterator types and error types, as std's. Most of these checks are made by
//! the compiler: the test does not build when a shape differs.

use std::error::Error;
use std::time::Duration;

use greenring::sync::mpmc::{self, SendTimeoutError};
use greenring::sync::{mpsc, RwLock, RwLockReadGuard};

fn is_sync<T: Sync>(_: &T) {}

#[test]
fn a_read_guard_coerces_to_a_shorter_lifetime_of_its_value() {
    // Compiles only if the guard is covariant in its value's type, as std's.
    fn shorten<'a, 'b>(guard: RwLockReadGuard<'a, &'static str>) -> RwLockReadGuard<'a, &'b str> {
        guard
    }
    let lock = RwLock::new("static");
    let local = String::from("local");
    let guard = shorten(lock.read().unwrap());
    assert_eq!(*guard, "static");
    assert_ne!(*guard, local.as_str());
    is_sync(&guard);
    drop(guard);
    assert!(lock.try_write().is_ok());
}

#[test]
fn mpmc_receivers_iterate_as_std_receivers_do() {
    let (tx, rx) = mpmc::unbounded();
    for n in 0..3 {
        tx.send(n).unwrap();
    }
    let queued: mpmc::TryIter<'_, i32> = rx.try_iter();
    assert_eq!(queued.collect::<Vec<_>>(), [0, 1, 2]);
    tx.send(3).unwrap();
    let mut by_reference = Vec::new();
    for n in &rx {
        by_reference.push(n);
        if n == 3 {
            break;
        }
    }
    assert_eq!(by_reference, [3]);
    let other = rx.clone();
    tx.send(4).unwrap();
    drop(tx);
    let borrowed: mpmc::Iter<'_, i32> = other.iter();
    assert_eq!(borrowed.collect::<Vec<_>>(), [4]);
    let owned: mpmc::IntoIter<i32> = rx.into_iter();
    assert_eq!(owned.count(), 0, "ends once every sender is gone");
    // mpsc's, for comparison: the same shapes.
    let (tx, rx) = mpsc::channel();
    tx.send(1).unwrap();
    drop(tx);
    let owned: mpsc::IntoIter<i32> = rx.into_iter();
    assert_eq!(owned.collect::<Vec<_>>(), [1]);
}

#[test]
fn mpmc_send_timeout_reports_std_s_send_timeout_error() {
    let (tx, rx) = mpmc::bounded(1);
    tx.send(1).unwrap();
    let err = tx.send_timeout(2, Duration::from_millis(10)).unwrap_err();
    assert_eq!(err, SendTimeoutError::Timeout(2));
    assert_eq!(err.to_string(), "timed out waiting on send operation");
    // std's `Debug` prints its name as a quoted string.
    assert_eq!(format!("{err:?}"), "\"SendTimeoutError(..)\"");
    assert!(err.source().is_none());
    drop(rx);
    let err = tx.send_timeout(3, Duration::from_millis(10)).unwrap_err();
    assert_eq!(err, SendTimeoutError::Disconnected(3));
    assert_eq!(err.to_string(), "sending on a disconnected channel");
    let boxed: Box<dyn Error + Send + Sync> = Box::new(err);
    assert_eq!(boxed.to_string(), "sending on a disconnected channel");
    let from_send: SendTimeoutError<u8> = mpmc::SendError(5).into();
    assert_eq!(from_send, SendTimeoutError::Disconnected(5));
}
