//! A shutdown counts every wake-up that will come: green threads waiting for a
//! blocking-pool job, for a file operation run on the pool (epoll backend), or (within the
//! grace period) for an OS thread feeding their channel complete normally, and no
//! `JoinHandle` hangs once its runtime is gone. Each test runs under a watchdog.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::runtime::Cancelled;
use greenring::sync::mpsc;
use greenring::{IoBackend, Runtime};

const LIMIT: Duration = Duration::from_secs(30);

/// Sets its flag when dropped: shows a green thread's destructors ran.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn shutdown_waits_for_a_spawn_blocking_join() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (started, dropped) = (flag(), flag());
        let (their_started, guard) = (Arc::clone(&started), SetOnDrop(Arc::clone(&dropped)));
        let waiter = rt.spawn(move || {
            let _guard = guard;
            their_started.store(true, Ordering::SeqCst);
            greenring::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(300));
                7
            })
            .join()
            .unwrap()
        });
        wait_for(&started);
        std::thread::sleep(Duration::from_millis(20));
        drop(rt);
        assert_eq!(waiter.join().unwrap(), 7, "the join completed normally");
        assert!(dropped.load(Ordering::SeqCst), "its destructors ran");
    });
}

#[test]
fn shutdown_waits_for_a_file_operation_offloaded_by_the_epoll_backend() {
    watchdog::within(LIMIT, || {
        let dir = std::env::temp_dir().join(format!("greenring-offload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let rt = Runtime::builder()
            .worker_threads(1)
            .io_backend(IoBackend::Epoll)
            .build()
            .unwrap();
        let (started, dropped) = (flag(), flag());
        let (their_started, guard) = (Arc::clone(&started), SetOnDrop(Arc::clone(&dropped)));
        let path = fifo.clone();
        // Opening a FIFO for reading blocks (on the blocking pool) until a writer opens it.
        let opener = rt.spawn(move || {
            let _guard = guard;
            their_started.store(true, Ordering::SeqCst);
            greenring::fs::File::open(&path).map(drop)
        });
        wait_for(&started);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .map(drop)
        });
        let start = Instant::now();
        drop(rt);
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "the drop waited"
        );
        opener.join().unwrap().unwrap();
        writer.join().unwrap().unwrap();
        assert!(dropped.load(Ordering::SeqCst), "its destructors ran");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn shutdown_waits_within_the_grace_for_a_channel_fed_by_an_os_thread() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let (tx, rx) = mpsc::channel();
        let (started, dropped) = (flag(), flag());
        let (their_started, guard) = (Arc::clone(&started), SetOnDrop(Arc::clone(&dropped)));
        let receiver = rt.spawn(move || {
            let _guard = guard;
            their_started.store(true, Ordering::SeqCst);
            rx.recv().unwrap()
        });
        wait_for(&started);
        let feeder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            tx.send(42).unwrap();
        });
        drop(rt);
        assert_eq!(receiver.join().unwrap(), 42, "received normally");
        assert!(dropped.load(Ordering::SeqCst), "its destructors ran");
        feeder.join().unwrap();
    });
}

#[test]
fn threads_parked_past_the_grace_unwind_and_their_joins_end_cancelled() {
    watchdog::within(LIMIT, || {
        let rt = Runtime::builder()
            .worker_threads(2)
            .shutdown_grace(Duration::from_millis(100))
            .build()
            .unwrap();
        // The sender stays alive but never sends: nothing will wake the receiver.
        let (tx, rx) = mpsc::channel::<u32>();
        let (started, dropped) = (flag(), flag());
        let (their_started, guard) = (Arc::clone(&started), SetOnDrop(Arc::clone(&dropped)));
        let receiver = rt.spawn(move || {
            let _guard = guard;
            their_started.store(true, Ordering::SeqCst);
            rx.recv()
        });
        wait_for(&started);
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        drop(rt);
        assert!(start.elapsed() < Duration::from_secs(10));
        let payload = receiver.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<Cancelled>(), Some(&Cancelled));
        assert!(dropped.load(Ordering::SeqCst), "its destructors ran");
        drop(tx);
    });
}

#[test]
fn joins_of_threads_left_behind_by_a_timed_out_shutdown_end_cancelled() {
    watchdog::within(LIMIT, || {
        // No hand-off monitor: nothing may run the queued thread while the worker is busy
        // (a migrating runtime would hand the worker to a spare OS thread).
        let rt = Runtime::builder()
            .worker_threads(1)
            .handoff_threshold(None)
            .build()
            .unwrap();
        let stop = flag();
        let their_stop = Arc::clone(&stop);
        // Computes without a blocking point until told to stop: the shutdown times out.
        let computing = rt.spawn(move || {
            while !their_stop.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
        // Queued behind it on the only worker: never starts.
        let queued = rt.spawn(|| 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!rt.shutdown_timeout(Duration::from_millis(100)));
        for payload in [computing.join().unwrap_err(), queued.join().unwrap_err()] {
            assert_eq!(payload.downcast_ref::<Cancelled>(), Some(&Cancelled));
        }
        stop.store(true, Ordering::SeqCst);
    });
}
