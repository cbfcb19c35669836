//! Channels across workers and OS threads: no message lost or duplicated, order per
//! producer, disconnection, rendezvous, select.

use std::collections::HashMap;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use greenring::sync::{mpmc, mpsc, Select};
use greenring::Runtime;

/// A producer's way to send one (producer, sequence) message, whatever the channel kind.
type SendFn = Box<dyn Fn((u64, u64)) + Send>;

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

const PRODUCERS: u64 = 8;
/// Each bound with the messages each producer sends: 1,000,000 messages in all through the
/// unbounded and the 64-slot channel. Bound 1 hands off every message (and wakes an OS
/// thread ~20 us away for half of them), so it hunts lost wake-ups with 100,000.
const RUNS: [(Option<usize>, u64); 3] = [(None, 125_000), (Some(64), 125_000), (Some(1), 12_500)];

/// Checks a receiver's stream: every (producer, seq) exactly once, in order per producer.
fn check_stream(received: impl Iterator<Item = (u64, u64)>) -> u64 {
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut count = 0;
    for (producer, seq) in received {
        let expected = next.entry(producer).or_insert(0);
        assert_eq!(
            seq, *expected,
            "producer {producer}: order kept, nothing lost or doubled"
        );
        *expected += 1;
        count += 1;
    }
    count
}

#[test]
fn a_million_messages_through_unbounded_and_bounded_channels() {
    let rt = runtime();
    for (bound, per_producer) in RUNS {
        let (consumer, senders) = match bound {
            None => {
                let (tx, rx) = mpsc::channel::<(u64, u64)>();
                let consumer = rt.spawn(move || check_stream(rx.iter()));
                let senders: Vec<SendFn> = (0..PRODUCERS)
                    .map(|_| {
                        let tx = tx.clone();
                        Box::new(move |m| tx.send(m).unwrap()) as SendFn
                    })
                    .collect();
                (consumer, senders)
            }
            Some(n) => {
                let (tx, rx) = mpsc::sync_channel::<(u64, u64)>(n);
                let consumer = rt.spawn(move || check_stream(rx.iter()));
                let senders: Vec<SendFn> = (0..PRODUCERS)
                    .map(|_| {
                        let tx = tx.clone();
                        Box::new(move |m| tx.send(m).unwrap()) as SendFn
                    })
                    .collect();
                (consumer, senders)
            }
        };
        // Half the producers are green threads, half OS threads.
        let producers: Vec<Box<dyn FnOnce()>> = senders
            .into_iter()
            .enumerate()
            .map(|(p, send)| {
                let body = move || (0..per_producer).for_each(|seq| send((p as u64, seq)));
                if p % 2 == 0 {
                    let h = rt.spawn(body);
                    Box::new(move || h.join().unwrap()) as Box<dyn FnOnce()>
                } else {
                    let h = std::thread::spawn(body);
                    Box::new(move || h.join().unwrap())
                }
            })
            .collect();
        producers.into_iter().for_each(|join| join());
        assert_eq!(
            consumer.join().unwrap(),
            PRODUCERS * per_producer,
            "bound {bound:?}"
        );
    }
}

#[test]
fn mpmc_consumers_share_the_work_exactly_once() {
    let rt = runtime();
    let (tx, rx) = mpmc::bounded::<u64>(32);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || rx.iter().collect::<Vec<_>>())
        })
        .collect();
    drop(rx);
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let tx = tx.clone();
            rt.spawn(move || (0..25_000).for_each(|i| tx.send(p * 25_000 + i).unwrap()))
        })
        .collect();
    drop(tx);
    producers.into_iter().for_each(|h| h.join().unwrap());
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..100_000).collect::<Vec<_>>());
}

#[test]
fn rendezvous_channel_hands_over_in_person() {
    let rt = runtime();
    let (tx, rx) = mpsc::sync_channel::<u32>(0);
    assert_eq!(
        tx.try_send(1),
        Err(TrySendError::Full(1)),
        "nobody is receiving"
    );
    let sender = rt.spawn(move || {
        let start = Instant::now();
        tx.send(7).unwrap();
        start.elapsed()
    });
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(rx.recv().unwrap(), 7);
    assert!(
        sender.join().unwrap() >= Duration::from_millis(25),
        "send waited for the receiver"
    );
}

#[test]
fn disconnection_from_either_side() {
    let rt = runtime();
    rt.block_on(|| {
        let (tx, rx) = mpsc::channel::<u8>();
        tx.send(1).unwrap();
        drop(tx);
        assert_eq!(rx.recv(), Ok(1), "queued values are still delivered");
        assert!(rx.recv().is_err());
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Disconnected)
        );

        let (tx, rx) = mpsc::sync_channel::<u8>(1);
        drop(rx);
        assert_eq!(tx.send(3).unwrap_err().0, 3, "the value comes back");

        // A receiver blocked in recv wakes when the last sender goes.
        let (tx, rx) = mpsc::channel::<u8>();
        let waiting = greenring::spawn(move || rx.recv());
        greenring::time::sleep(Duration::from_millis(10));
        drop(tx);
        assert!(waiting.join().unwrap().is_err());

        // A sender blocked on a full channel wakes when the receiver goes.
        let (tx, rx) = mpsc::sync_channel::<u8>(1);
        tx.send(1).unwrap();
        let blocked = greenring::spawn(move || tx.send(2));
        greenring::time::sleep(Duration::from_millis(10));
        drop(rx);
        assert_eq!(blocked.join().unwrap().unwrap_err().0, 2);
    });
}

#[test]
fn timeouts_and_try_variants() {
    let rt = runtime();
    rt.block_on(|| {
        let (tx, rx) = mpsc::channel::<u8>();
        let start = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(9).unwrap();
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![9]);

        let (tx, _rx) = mpmc::bounded::<u8>(1);
        tx.send(1).unwrap();
        assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
        assert_eq!(
            tx.send_timeout(3, Duration::from_millis(10)),
            Err(mpmc::SendTimeoutError::Timeout(3))
        );
    });
}

#[test]
fn select_over_receivers_of_different_types() {
    let rt = runtime();
    rt.block_on(|| {
        let (num_tx, nums) = mpsc::channel::<u64>();
        let (word_tx, words) = mpmc::unbounded::<String>();
        let mut select = Select::new();
        let n = select.recv(&nums);
        let w = select.recv(&words);
        assert!(
            select.ready_timeout(Duration::from_millis(20)).is_err(),
            "nothing yet"
        );

        // The helper hands its senders back, so neither channel disconnects before the
        // join below.
        let helper = greenring::spawn(move || {
            greenring::time::sleep(Duration::from_millis(10));
            word_tx.send("hi".into()).unwrap();
            greenring::time::sleep(Duration::from_millis(10));
            num_tx.send(42).unwrap();
            (num_tx, word_tx)
        });
        let first = select.ready();
        assert_eq!(first, w);
        assert_eq!(words.try_recv().unwrap(), "hi");
        let second = select.ready_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(second, n);
        assert_eq!(nums.try_recv().unwrap(), 42);
        drop(helper.join().unwrap());
        // Disconnected receivers count as ready (recv would not wait).
        let ready = select.ready_timeout(Duration::from_secs(10)).unwrap();
        assert!(ready == n || ready == w);
    });
}
