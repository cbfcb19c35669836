//! Extra workers: while every worker's OS thread is blocked in code greenring does not own
//! (here `crossbeam-channel`'s receive, a futex) and green threads that have not started
//! wait, the monitor starts extra worker OS threads to run them, up to a bound, and they
//! leave once the threads they started have finished.
//!
//! Built with `--cfg greenring_migrate` every runtime migrates started threads instead: its
//! monitor hands a blocked worker's threads to a new OS thread and starts no extra worker
//! (`tests/handoff.rs` covers that mode), so these tests are not built then.
#![cfg(not(greenring_migrate))]

#[path = "support/recorder.rs"]
mod recorder;
#[path = "support/watchdog.rs"]
mod watchdog;

use std::time::{Duration, Instant};

use greenring::Runtime;

/// Polls `done` every millisecond for up to `limit`; `true` once it held.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done()
}

#[test]
fn a_producer_spawned_after_its_blocked_consumers_runs_and_the_extras_leave() {
    recorder::install();
    let started = watchdog::within(Duration::from_secs(120), || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let consumers: Vec<_> = (0..100)
            .map(|_| {
                let rx = rx.clone();
                rt.spawn(move || rx.recv().unwrap())
            })
            .collect();
        // The thread that unblocks everyone comes last: both workers are blocked in a
        // receive by then.
        let producer = rt.spawn(move || {
            for n in 0..100 {
                tx.send(n).unwrap();
            }
        });
        producer.join().unwrap();
        let mut got: Vec<u32> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        let metrics = rt.metrics();
        assert!(
            metrics.extra_workers_started > 0,
            "the producer ran on an extra worker: {metrics:?}"
        );
        assert!(
            metrics.extra_workers_started <= greenring::runtime::DEFAULT_MAX_EXTRA_WORKERS as u64
        );
        assert!(
            eventually(Duration::from_secs(10), || rt.metrics().extra_workers == 0),
            "the extra workers left: {:?}",
            rt.metrics()
        );
        // The runtime goes on as before.
        assert_eq!(rt.block_on(|| 6 * 7), 42);
        metrics.extra_workers_started
    });
    // Once per runtime, not once per extra (the other tests here run runtimes too).
    let reported = recorder::logged(&["started an extra worker"]).len();
    assert!(
        (1..=4).contains(&reported),
        "{reported} reports of extra workers for {started} started"
    );
}

#[test]
fn extra_workers_stay_within_their_bound_and_reaching_it_is_reported() {
    recorder::install();
    watchdog::within(Duration::from_secs(60), || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_extra_workers(2)
            .build()
            .unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let consumers: Vec<_> = (0..6)
            .map(|_| {
                let rx = rx.clone();
                rt.spawn(move || rx.recv().unwrap())
            })
            .collect();
        // The worker and both extras block in a receive; three consumers cannot start.
        assert!(
            eventually(Duration::from_secs(10), || rt.metrics().extra_workers == 2),
            "two extras started: {:?}",
            rt.metrics()
        );
        assert!(
            eventually(Duration::from_secs(10), || !recorder::logged(&[
                "all 2 extra workers"
            ])
            .is_empty()),
            "reaching the bound is reported"
        );
        let later = Instant::now() + Duration::from_millis(200);
        while Instant::now() < later {
            assert!(rt.metrics().extra_workers <= 2, "{:?}", rt.metrics());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(rt.metrics().extra_workers_started, 2);
        // An OS thread unblocks them all.
        for n in 0..6 {
            tx.send(n).unwrap();
        }
        let mut got: Vec<u32> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..6).collect::<Vec<_>>());
        assert!(eventually(Duration::from_secs(10), || rt
            .metrics()
            .extra_workers
            == 0));
    });
}

#[test]
fn a_thread_an_extra_worker_starts_stays_on_its_os_thread() {
    watchdog::within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<()>();
        // Blocks the only worker until the end.
        let blocker = rt.spawn(move || rx.recv().unwrap());
        let wanderer = rt.spawn(|| {
            let first = std::thread::current().id();
            let name = std::thread::current().name().map(str::to_owned);
            for _ in 0..50 {
                greenring::time::sleep(Duration::from_millis(1));
                greenring::yield_now();
                assert_eq!(std::thread::current().id(), first, "a started thread moved");
            }
            name
        });
        let name = wanderer.join().unwrap();
        assert_ne!(
            name.as_deref(),
            Some("greenring-worker-0"),
            "it ran on an extra worker, not the blocked one"
        );
        tx.send(()).unwrap();
        blocker.join().unwrap();
    });
}

#[test]
fn without_extra_workers_the_blocked_runtime_waits_for_the_os_thread() {
    watchdog::within(Duration::from_secs(60), || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_extra_workers(0)
            .build()
            .unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let consumer = rt.spawn(move || rx.recv().unwrap());
        let (ran_tx, ran_rx) = std::sync::mpsc::channel();
        let late = rt.spawn(move || ran_tx.send(()).unwrap());
        assert!(
            ran_rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "nothing else runs while the only worker is blocked"
        );
        assert_eq!(rt.metrics().extra_workers_started, 0);
        tx.send(7).unwrap();
        assert_eq!(consumer.join().unwrap(), 7);
        late.join().unwrap();
    });
}

#[test]
fn a_computation_on_every_worker_starts_no_extra_worker() {
    watchdog::within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        // Computes for 300 ms without a blocking point: the worker is stalled, but its OS
        // thread is running, not waiting; another OS thread would only take its CPU.
        let busy = rt.spawn(|| {
            let until = Instant::now() + Duration::from_millis(300);
            let mut x = 1u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            x
        });
        let later = rt.spawn(|| 7);
        busy.join().unwrap();
        assert_eq!(later.join().unwrap(), 7);
        assert_eq!(rt.metrics().extra_workers_started, 0, "{:?}", rt.metrics());
    });
}

/// `tungstenite::connect` opens a std socket: without the `hooks` feature its handshake
/// blocks the only worker's OS thread in `read`. The server, a green thread spawned after
/// the client, has not started: an extra worker runs it, and the handshake completes.
#[test]
fn tungstenite_connect_completes_when_its_server_had_not_started() {
    watchdog::within(Duration::from_secs(60), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        // Bound (and listening) before anything runs, so the connect itself completes in the
        // kernel; the handshake's answer needs the server thread.
        let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let client = rt.spawn(move || {
            let (mut ws, _) = tungstenite::connect(url).unwrap();
            ws.send(tungstenite::Message::text("ping")).unwrap();
            let answer = ws.read().unwrap();
            ws.close(None).unwrap();
            answer.into_text().unwrap().to_string()
        });
        let server = rt.spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut ws = tungstenite::accept(stream).unwrap();
            let message = ws.read().unwrap();
            ws.send(message).unwrap();
            // Until the client closes.
            while ws.read().is_ok() {}
        });
        assert_eq!(client.join().unwrap(), "ping");
        server.join().unwrap();
    });
}
