//! A `JoinHandle` awaited as a `Future` by code whose `Waker` misbehaves: the green thread
//! still completes and the process lives on. Run in a child process, so a regression (an
//! abort) fails this test alone.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use greenring::Runtime;

/// A waker whose `wake` panics.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics");
    }
}

/// A waker that does nothing.
struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_panicking_waker_does_not_stop_the_thread_completing() {
    const NAME: &str = "a_panicking_waker_does_not_stop_the_thread_completing";
    if support::is_child(NAME) {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (go, wait) = mpsc::channel::<()>();
        let mut handle = pin!(rt.spawn(move || {
            wait.recv().unwrap();
            42
        }));
        let panicking = Waker::from(Arc::new(PanickingWaker));
        let pending = handle.as_mut().poll(&mut Context::from_waker(&panicking));
        assert!(pending.is_pending(), "the thread waits for `go`");
        go.send(()).unwrap();
        // The completion wakes the panicking waker (no other poll replaces it first).
        while !handle.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let noop = Waker::from(Arc::new(NoopWaker));
        let Poll::Ready(result) = handle.as_mut().poll(&mut Context::from_waker(&noop)) else {
            panic!("a finished thread's handle is ready");
        };
        assert_eq!(result.unwrap(), 42);
        // The worker lives on: it runs (and completes) another thread.
        assert_eq!(rt.spawn(|| 7).join().unwrap(), 7);
        drop(rt);
        return;
    }
    let output = support::run_child(NAME, &[]);
    assert!(
        output.status.success(),
        "child failed ({}):\n{}",
        output.status,
        support::stderr(&output)
    );
}
