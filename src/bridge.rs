//! The bridge between green threads and async code, both ways:
//!
//! - [`block_on`] runs a `Future` to completion on the calling thread: a green thread parks
//!   between polls (its worker runs others), an OS thread blocks; the future's `Waker`
//!   unparks it from any thread.
//! - [`JoinHandle`](crate::JoinHandle) is a `Future` of the green thread's result, so async
//!   code can await a green thread.
//!
//! ```
//! // A tokio-free future, woken from another OS thread.
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::sync::{Arc, Mutex};
//! use std::task::{Context, Poll, Waker};
//!
//! #[derive(Default)]
//! struct Flag(Mutex<(bool, Option<Waker>)>);
//! struct WaitFlag(Arc<Flag>);
//! impl Future for WaitFlag {
//!     type Output = &'static str;
//!     fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
//!         let mut state = self.0 .0.lock().unwrap();
//!         if state.0 {
//!             return Poll::Ready("set");
//!         }
//!         state.1 = Some(cx.waker().clone());
//!         Poll::Pending
//!     }
//! }
//!
//! let flag = Arc::new(Flag::default());
//! let setter = Arc::clone(&flag);
//! std::thread::spawn(move || {
//!     let mut state = setter.0.lock().unwrap();
//!     state.0 = true;
//!     if let Some(waker) = state.1.take() {
//!         waker.wake();
//!     }
//! });
//! let got = greenring::spawn(move || greenring::block_on(WaitFlag(flag))).join().unwrap();
//! assert_eq!(got, "set");
//! ```

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::thread::{self, Thread};

/// Wakes a thread blocked in [`block_on`] by unparking it.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on the calling thread and returns its output.
///
/// On a green thread only the green thread waits between polls; off green threads the OS
/// thread blocks. The future's waker may be called from any thread (a tokio reactor, an OS
/// thread, another green thread). Futures that need a particular async runtime's context
/// (tokio's timers and sockets) must be created and polled inside that runtime; channels
/// and other runtime-independent futures work anywhere.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A wake before this park left the unpark token: no wake-up is lost. A spurious
        // return only costs one more poll.
        thread::park();
    }
}
