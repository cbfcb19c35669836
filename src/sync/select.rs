//! [`Select`]: wait until one of several receivers is ready.

use std::fmt;
use std::time::{Duration, Instant};

use super::chan::Selectable;
use super::wait::Waiter;
use super::{mpmc, mpsc};

/// Waits on several receivers (of any value types) at once.
///
/// [`Select::ready`] returns the index of a receiver whose `try_recv` will not say `Empty`:
/// a value is queued, or every sender is gone. With several consumers on one `mpmc`
/// channel, another consumer may take the value first; `try_recv` then says `Empty` and the
/// caller selects again.
///
/// ```
/// use std::time::Duration;
/// use greenring::sync::{mpsc, Select};
///
/// let (numbers_tx, numbers) = mpsc::channel::<u32>();
/// let (words_tx, words) = mpsc::channel::<&str>();
/// greenring::spawn(move || words_tx.send("hello").unwrap());
/// let mut select = Select::new();
/// let n = select.recv(&numbers);
/// let w = select.recv(&words);
/// let ready = select.ready_timeout(Duration::from_secs(10)).unwrap();
/// assert_eq!(ready, w);
/// assert_ne!(ready, n);
/// assert_eq!(words.try_recv(), Ok("hello"));
/// # drop(numbers_tx);
/// ```
#[derive(Default)]
pub struct Select<'a> {
    receivers: Vec<&'a dyn Selectable>,
    /// Where the next scan starts, so one busy receiver does not starve the others.
    start: usize,
}

/// [`Select::ready_timeout`] found no ready receiver in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectTimeoutError;

impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting on select")
    }
}

impl std::error::Error for SelectTimeoutError {}

/// A receiver [`Select`] can wait on: `mpsc::Receiver` and `mpmc::Receiver`.
pub trait SelectReceiver: sealed::Sealed {
    /// The channel behind the receiver, as `Select` sees it.
    #[doc(hidden)]
    fn select_handle(&self) -> SelectHandle<'_>;
}

/// The channel behind a receiver, opaque outside greenring.
#[doc(hidden)]
pub struct SelectHandle<'a>(&'a dyn Selectable);

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for super::mpsc::Receiver<T> {}
    impl<T> Sealed for super::mpmc::Receiver<T> {}
}

impl<T> SelectReceiver for mpsc::Receiver<T> {
    fn select_handle(&self) -> SelectHandle<'_> {
        SelectHandle(self.selectable())
    }
}

impl<T> SelectReceiver for mpmc::Receiver<T> {
    fn select_handle(&self) -> SelectHandle<'_> {
        SelectHandle(self.selectable())
    }
}

impl<'a> Select<'a> {
    /// An empty selection.
    pub fn new() -> Select<'a> {
        Select::default()
    }

    /// Adds a receiver; returns its index.
    pub fn recv<R: SelectReceiver>(&mut self, receiver: &'a R) -> usize {
        self.receivers.push(receiver.select_handle().0);
        self.receivers.len() - 1
    }

    /// Waits until a receiver is ready; its index.
    ///
    /// # Panics
    ///
    /// With no receivers added (it would wait forever).
    pub fn ready(&mut self) -> usize {
        self.ready_until(None).expect("no deadline, no timeout")
    }

    /// Waits at most `timeout` for a receiver to be ready.
    ///
    /// # Errors
    ///
    /// `SelectTimeoutError` when none became ready in time.
    ///
    /// # Panics
    ///
    /// With no receivers added.
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, SelectTimeoutError> {
        self.ready_until(crate::timeout::deadline_after(timeout))
    }

    fn scan(&mut self) -> Option<usize> {
        let n = self.receivers.len();
        let found = (0..n)
            .map(|i| (self.start + i) % n)
            .find(|&i| self.receivers[i].is_ready());
        self.start = (self.start + 1) % n;
        found
    }

    fn ready_until(&mut self, deadline: Option<Instant>) -> Result<usize, SelectTimeoutError> {
        assert!(
            !self.receivers.is_empty(),
            "Select::ready with no receivers would wait forever"
        );
        super::shim::count_call();
        loop {
            if let Some(index) = self.scan() {
                return Ok(index);
            }
            let _wait = crate::task::wait::hint(crate::task::wait::SELECT);
            let waiter = Waiter::new();
            let ready_at_register = self.receivers.iter().any(|r| r.register(&waiter));
            let receivers = &self.receivers;
            let notified = ready_at_register
                || waiter.wait(deadline, || {
                    // The lists are locked one by one: leave as `GONE` first, so none of
                    // them can choose this waiter any more, then pass on a wake-up that
                    // came before that.
                    let chosen = waiter.abandon();
                    for receiver in receivers {
                        receiver.unregister(&waiter);
                    }
                    if chosen {
                        for receiver in receivers.iter().filter(|r| r.is_ready()) {
                            receiver.pass_on();
                        }
                    }
                });
            for receiver in &self.receivers {
                receiver.unregister(&waiter);
            }
            if let Some(index) = self.scan() {
                if notified {
                    // The wake-up we consumed may have been meant for another receiver's
                    // waiters: hand one to every other ready receiver.
                    for (i, receiver) in self.receivers.iter().enumerate() {
                        if i != index && receiver.is_ready() {
                            receiver.pass_on();
                        }
                    }
                }
                return Ok(index);
            }
            if !notified && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SelectTimeoutError);
            }
        }
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("receivers", &self.receivers.len())
            .finish()
    }
}
