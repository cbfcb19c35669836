//! The shapes of `greenring::sync` that std code relies on without naming them: variance,
//! auto traits, iterator types and error types, as std's. Most of these checks are made by
//! the compiler: the test does not build when a shape differs.

use greenring::sync::{RwLock, RwLockReadGuard};

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
