//! The values of a green thread's green-thread locals (`crate::local`): one map per thread,
//! by key address, kept in its task record.

use std::any::Any;
use std::cell::UnsafeCell;

/// One green thread's values, by key address. Only that thread touches it.
#[derive(Default)]
pub(crate) struct LocalMap {
    entries: UnsafeCell<Vec<(usize, Box<dyn Any>)>>,
}

impl LocalMap {
    /// The value of `key`, created by `init` if absent. `init` may itself use other keys.
    pub(crate) fn get_or_init(
        &self,
        key: usize,
        init: impl FnOnce() -> Box<dyn Any>,
    ) -> *const dyn Any {
        if let Some(value) = self.find(key) {
            return value;
        }
        let value = init();
        // An initializer that used this same key created it already: keep that one.
        if let Some(existing) = self.find(key) {
            return existing;
        }
        let address: *const dyn Any = &*value;
        // SAFETY: only the owning thread touches the map, and no reference into the Vec is
        // alive (callers hold pointers into the boxes, which do not move).
        unsafe { (*self.entries.get()).push((key, value)) };
        address
    }

    fn find(&self, key: usize) -> Option<*const dyn Any> {
        // SAFETY: as in `get_or_init`.
        let entries = unsafe { &*self.entries.get() };
        entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| &**value as *const dyn Any)
    }

    /// Drops every value, latest first; values created by destructors are dropped too. Called
    /// by the thread itself when it ends.
    pub(crate) fn destroy(&self) {
        loop {
            // SAFETY: as in `get_or_init`; the values are moved out before any destructor
            // runs, so a destructor using a key finds a consistent (empty) map.
            let entries = std::mem::take(unsafe { &mut *self.entries.get() });
            if entries.is_empty() {
                return;
            }
            for entry in entries.into_iter().rev() {
                drop(entry);
            }
        }
    }
}

impl Drop for LocalMap {
    fn drop(&mut self) {
        // A green thread that never finished (its runtime abandoned it) may still have
        // references to these values on its leaked stack: leak them with it. (A finished
        // green thread's map is emptied by `destroy_current`.)
        std::mem::forget(std::mem::take(self.entries.get_mut()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn destroy_drops_values_created_by_destructors() {
        struct Canary(Rc<Cell<u32>>);
        impl Drop for Canary {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let dropped = Rc::new(Cell::new(0));
        let map = LocalMap::default();
        let d = Rc::clone(&dropped);
        map.get_or_init(1, move || Box::new(Canary(d)));
        let d = Rc::clone(&dropped);
        map.get_or_init(2, move || Box::new(Canary(d)));
        map.destroy();
        assert_eq!(dropped.get(), 2);
        assert!(map.find(1).is_none());
    }
}
