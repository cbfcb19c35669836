//! The async bridge: futures on green threads, green threads in async code.

use std::time::Duration;

use greenring::Runtime;

#[test]
fn a_tokio_channel_drained_from_green_threads() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u64>();
    // Tokio tasks produce; a green thread consumes with blocking-style code.
    tokio.spawn(async move {
        for i in 0..1000 {
            tx.send(i).await.unwrap();
        }
    });
    let consumer = rt.spawn(move || {
        let mut sum = 0u64;
        while let Some(n) = greenring::block_on(rx.recv()) {
            sum += u64::from(n);
        }
        done_tx.send(sum).unwrap();
    });
    consumer.join().unwrap();
    assert_eq!(tokio.block_on(done_rx).unwrap(), (0..1000u64).sum());
}

#[test]
fn many_green_threads_wait_on_futures_woken_by_tokio() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let waiters: Vec<_> = (0..100u64)
        .map(|i| {
            let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
            tokio.spawn(async move {
                tokio::time::sleep(Duration::from_millis(i % 10)).await;
                tx.send(i).unwrap();
            });
            rt.spawn(move || greenring::block_on(rx).unwrap())
        })
        .collect();
    for (i, waiter) in waiters.into_iter().enumerate() {
        assert_eq!(waiter.join().unwrap(), i as u64);
    }
}

#[test]
fn green_threads_awaited_inside_tokio() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let handles: Vec<_> = (0..50u32)
        .map(|i| {
            rt.spawn(move || {
                greenring::time::sleep(Duration::from_millis(u64::from(i % 5)));
                i * 2
            })
        })
        .collect();
    let sum = tokio.block_on(async move {
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..50).map(|i| i * 2).sum::<u32>());
    // A panic arrives as the Err payload, as with join.
    let failing = rt.spawn(|| -> u32 { panic!("from green") });
    let payload = tokio.block_on(failing).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from green"));
}

#[test]
fn block_on_off_green_threads() {
    let (tx, rx) = tokio::sync::oneshot::channel::<&str>();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        tx.send("from an OS thread").unwrap();
    });
    assert_eq!(greenring::block_on(rx).unwrap(), "from an OS thread");
    assert_eq!(greenring::block_on(async { 5 }), 5);
}
