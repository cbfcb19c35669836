//! `Runtime::metrics` counts what the runtime did.

use std::io::{Read, Write};
use std::time::Duration;

use greenring::net::{TcpListener, TcpStream};
use greenring::Runtime;

#[test]
fn metrics_count_threads_parks_io_and_stacks() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let before = rt.metrics();
    assert_eq!(before.live_threads, 0);
    assert_eq!(before.workers.len(), 2);
    assert_eq!(before.io_submitted(), 0);

    // Live threads: 50 parked sleepers.
    let sleepers: Vec<_> = (0..50)
        .map(|_| rt.spawn(|| greenring::time::sleep(Duration::from_millis(200))))
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let during = rt.metrics();
    assert_eq!(during.live_threads, 50);
    assert!(during.stacks_mapped >= 50, "{during:?}");
    for sleeper in sleepers {
        sleeper.join().unwrap();
    }

    // I/O: an echo over loopback.
    let echoed = rt.block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = greenring::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            stream.read_exact(&mut buf).unwrap();
            stream.write_all(&buf).unwrap();
        });
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).unwrap();
        server.join().unwrap();
        buf
    });
    assert_eq!(&echoed, b"hello");

    // Parks: a ping-pong through park/unpark.
    rt.block_on(|| {
        let me = greenring::thread::current();
        let other = greenring::spawn(move || {
            for _ in 0..100 {
                me.unpark();
                greenring::park();
            }
        });
        let other_thread = other.thread().clone();
        for _ in 0..100 {
            greenring::park();
            other_thread.unpark();
        }
        other.join().unwrap();
    });

    // Spread: CPU-bound threads spawned on one worker reach the other by spawn placement
    // (its inbox) or by stealing.
    let workers_used = rt.block_on(|| {
        let busy: Vec<_> = (0..32)
            .map(|_| {
                greenring::spawn(|| {
                    let mut x = 0u64;
                    for i in 0..200_000u64 {
                        x = std::hint::black_box(x.wrapping_add(i));
                    }
                    std::hint::black_box(x);
                    greenring::runtime::worker_index().unwrap()
                })
            })
            .collect();
        let mut used = std::collections::BTreeSet::new();
        for handle in busy {
            used.insert(handle.join().unwrap());
        }
        used.len()
    });
    assert_eq!(
        workers_used, 2,
        "the CPU-bound threads ran on one worker only"
    );

    // A joined thread retires a moment after its result is handed over.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rt.metrics().live_threads != 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", rt.metrics());
        std::thread::yield_now();
    }
    let after = rt.metrics();
    // io_uring submits every op; epoll counts only the waits for readiness (the accept
    // before the client connects, at least).
    let least = match rt.io_backend() {
        greenring::IoBackend::IoUring => 4,
        greenring::IoBackend::Epoll => 1,
    };
    assert_eq!(after.io_backend, Some(rt.io_backend()));
    assert!(after.io_submitted() >= least, "{after:?}");
    // Every submitted op has completed once the threads that waited on them are done.
    assert_eq!(after.io_submitted(), after.io_completed(), "{after:?}");
    assert!(after.parks() >= 100, "{after:?}");
    assert!(after.stacks_pooled >= 1, "{after:?}");
    assert!(after.stacks_pooled <= after.stacks_mapped, "{after:?}");
    assert_eq!(after.queue_depth(), 0);
}

#[test]
fn queue_depth_shows_waiting_threads() {
    let rt = Runtime::builder()
        .worker_threads(1)
        .handoff_threshold(None)
        .build()
        .unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    // Occupy the only worker so queued threads cannot run.
    let blocker = rt.spawn(move || go_rx.recv().unwrap());
    std::thread::sleep(Duration::from_millis(20));
    let queued: Vec<_> = (0..10).map(|_| rt.spawn(|| ())).collect();
    std::thread::sleep(Duration::from_millis(20));
    let metrics = rt.metrics();
    // Spawned from outside, they wait in the injector until a worker takes a batch into
    // its own queue.
    assert_eq!(metrics.live_threads, 11);
    assert_eq!(
        metrics.injector_depth + metrics.queue_depth(),
        10,
        "{metrics:?}"
    );
    go_tx.send(()).unwrap();
    blocker.join().unwrap();
    for handle in queued {
        handle.join().unwrap();
    }
    assert_eq!(rt.metrics().queue_depth(), 0);
}
