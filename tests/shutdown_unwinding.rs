//! A green thread unwound by its runtime's shutdown may block in its destructors (lock a
//! mutex, receive, join): it must wait for the wake-up, blocking its worker's OS thread,
//! not spin. Alone in its test binary so the CPU time it measures is its own.

#[path = "support/watchdog.rs"]
mod watchdog;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenring::runtime::Cancelled;
use greenring::sync::{mpsc, Mutex};
use greenring::Runtime;

/// CPU time (user and system) used by this process so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a full rusage into the valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: initialised by the call above.
    let usage = unsafe { usage.assume_init() };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// Blocks in its drop: locks `mutex`, then receives from `rx`, as a cancelled thread's
/// destructor would.
struct BlocksInDrop {
    mutex: Arc<Mutex<u32>>,
    rx: Option<mpsc::Receiver<u32>>,
    done: Arc<AtomicBool>,
}

impl Drop for BlocksInDrop {
    fn drop(&mut self) {
        assert!(std::thread::panicking(), "dropped by the shutdown's unwind");
        *self.mutex.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let got = self.rx.take().unwrap().recv();
        assert_eq!(got, Ok(7));
        self.done.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_destructor_blocking_during_shutdown_waits_without_spinning() {
    watchdog::within(Duration::from_secs(30), || {
        const HOLD: Duration = Duration::from_millis(400);
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let mutex = Arc::new(Mutex::new(0));
        let (tx, rx) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let (started, their_started) = {
            let flag = Arc::new(AtomicBool::new(false));
            (Arc::clone(&flag), flag)
        };
        let guard = BlocksInDrop {
            mutex: Arc::clone(&mutex),
            rx: Some(rx),
            done: Arc::clone(&done),
        };
        // Sleeps until the shutdown cancels it; its guard then blocks while unwinding.
        let sleeper = rt.spawn(move || {
            let _guard = guard;
            their_started.store(true, Ordering::SeqCst);
            greenring::time::sleep(Duration::from_secs(3600));
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // An OS thread holds the lock, then sends, during the drop.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let holder = {
            let mutex = Arc::clone(&mutex);
            std::thread::spawn(move || {
                let held = mutex.lock().unwrap();
                locked_tx.send(()).unwrap();
                std::thread::sleep(HOLD);
                drop(held);
                std::thread::sleep(HOLD);
                tx.send(7).unwrap();
            })
        };
        locked_rx.recv().unwrap();
        let (wall, cpu) = (Instant::now(), cpu_time());
        drop(rt);
        let (wall, cpu) = (wall.elapsed(), cpu_time() - cpu);
        holder.join().unwrap();
        assert!(done.load(Ordering::SeqCst), "the destructor completed");
        assert_eq!(*mutex.lock().unwrap(), 1);
        let payload = sleeper.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<Cancelled>(), Some(&Cancelled));
        assert!(
            wall >= HOLD,
            "the drop waited for the destructor ({wall:?})"
        );
        // A spinning wait would burn a whole CPU for the wall time; a waiting one, ~0.
        assert!(
            cpu < wall / 2,
            "the drop used {cpu:?} of CPU over {wall:?}: the destructor spun"
        );
        eprintln!("drop: {wall:?} wall, {cpu:?} CPU");
    });
}
