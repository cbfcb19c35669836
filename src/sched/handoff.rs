//! The monitor: one OS thread per runtime that notices a worker stuck in one green thread.
//!
//! A green thread that calls something greenring does not own (`std::thread::sleep`, a C
//! library's `read`, a std lock, a long computation) blocks the OS thread carrying its
//! worker, and with it every green thread queued there, sleeping there or waiting for that
//! worker's I/O. The monitor samples every carrier's status (see `carrier`) every half
//! threshold; a carrier seen running the same green thread for longer than the threshold
//! (default [`DEFAULT_THRESHOLD`]) is *stalled*.
//!
//! # Anchored runtimes (the default)
//!
//! Started threads must stay on their OS thread, so the monitor cannot move them. It:
//! - marks the worker stalled, so threads spawned there go to the injector;
//! - takes the thread waiting in the worker's LIFO slot (one spawned right before the
//!   block) and requeues it: a thread that has not started goes to the injector, where
//!   other workers take it;
//! - wakes a sleeping worker, which steals the stalled worker's threads that have not
//!   started (stealing never takes started ones);
//! - logs a warning naming the stuck thread, how long and in what it was last waiting,
//!   once per stall (without a logger, the first stall of the runtime goes to standard
//!   error once);
//! - when every worker is stalled and threads that have not started wait, starts an
//!   extra worker to run them (see `extra`);
//! - if the stall lasts [`DEADLOCK_FACTOR`] times the threshold (at least
//!   [`DEADLOCK_MIN`]) while other started threads are anchored to the worker, logs an
//!   error naming them: they cannot run until the OS thread returns, and if the stuck
//!   thread waits for one of them (a std lock held across a greenring blocking call) it
//!   never will.
//!
//! # Migrating runtimes
//!
//! With `migrate_started_threads`, a stalled carrier is exiled and the worker starts on a
//! new OS thread, as Go's `sysmon` retakes a P from an M blocked in a system call. The
//! stuck green thread keeps the
//! old OS thread until it next switches back; then that OS thread parks as a *spare*, and
//! the next hand-off reuses it, so the number of running OS threads shrinks back to the
//! worker count, and the number of OS threads only grows with the largest number of green
//! threads stuck at the same time.
//!
//! Spares do not exit before the runtime shuts down: io_uring runs the completion work of
//! an op (and retries a socket read once data arrives) on the OS thread that submitted it,
//! and fails the op if that thread has exited. A parked spare costs a stack and no CPU.
//!
//! What it cannot do: it does not preempt the stuck green thread (nothing can interrupt
//! arbitrary code safely), so that thread itself is late; it only keeps the others going.
//! Each hand-off costs a thread spawn (tens of microseconds), and the stuck thread's
//! work is reported once through the `log` crate so it can be fixed (use greenring's I/O,
//! [`spawn_blocking`](crate::spawn_blocking) or [`yield_now`](crate::yield_now)).
//!
//! Time the runtime spends in the kernel for its own work while a green thread runs (a
//! ring submission, mapping stacks, making a socket: see `stats::in_kernel`) restarts the
//! run's clock: it is never reported as that thread blocking the worker.
//!
//! An idle runtime costs the monitor nothing: after [`IDLE_ROUNDS`] samples with every
//! worker asleep it sleeps until a worker wakes up.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::carrier::{Carrier, Status};
use super::worker::{run_worker, WorkerBox};
use super::Shared;
use crate::overflow::AltStack;
use crate::task::{Task, TaskRef, WeakTaskRef};

/// How long a green thread may keep its worker's OS thread without switching before the
/// worker is handed to another OS thread.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_millis(10);
/// Samples with no green thread running before the monitor sleeps until a worker wakes.
const IDLE_ROUNDS: u32 = 20;
/// A stall this many thresholds long, with other started threads anchored to the worker,
/// is reported as a suspected deadlock.
const DEADLOCK_FACTOR: u32 = 10;
/// The shortest stall reported as a suspected deadlock.
const DEADLOCK_MIN: Duration = Duration::from_millis(100);
/// At most this many of the threads stuck behind a stalled worker are named.
const NAMED_MAX: usize = 8;

/// The monitor's shared state, part of the runtime's `Shared`.
pub(crate) struct Handoff {
    threshold: Option<Duration>,
    control: Mutex<Control>,
    signal: Condvar,
    /// The monitor sleeps until a worker wakes up.
    asleep: AtomicBool,
    /// Hand-offs so far.
    count: AtomicU64,
    /// Exiled carriers whose stuck green thread has not switched back yet.
    exiled_running: AtomicUsize,
    /// Carrier threads started by hand-offs, for the runtime to join at shutdown.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Parked carrier threads waiting for a worker to carry.
    spares: Mutex<Spares>,
}

/// Sends a parked carrier the worker it should carry (`None`: exit).
type Assign = mpsc::SyncSender<Option<(Arc<WorkerBox>, Arc<Carrier>)>>;

#[derive(Default)]
struct Spares {
    parked: Vec<Assign>,
    stopped: bool,
}

#[derive(Default)]
struct Control {
    stop: bool,
    woken: bool,
}

impl Handoff {
    /// A monitor state for `threshold` (`None`: no monitor runs).
    pub(crate) fn new(threshold: Option<Duration>) -> Handoff {
        Handoff {
            threshold,
            control: Mutex::new(Control::default()),
            signal: Condvar::new(),
            asleep: AtomicBool::new(false),
            count: AtomicU64::new(0),
            exiled_running: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
            spares: Mutex::new(Spares::default()),
        }
    }

    /// Parks the calling carrier thread (just exiled) until a hand-off gives it a worker;
    /// `None` when the runtime shuts down.
    pub(crate) fn wait_as_spare(&self) -> Option<(Arc<WorkerBox>, Arc<Carrier>)> {
        let (assign, assigned) = mpsc::sync_channel(1);
        {
            let mut spares = self.lock_spares();
            if spares.stopped {
                return None;
            }
            spares.parked.push(assign);
        }
        assigned.recv().ok().flatten()
    }

    fn lock_spares(&self) -> MutexGuard<'_, Spares> {
        self.spares.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hand-offs so far.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// `true` while an exiled carrier still runs its stuck green thread.
    pub(crate) fn exiles_running(&self) -> bool {
        self.exiled_running.load(Ordering::SeqCst) != 0
    }

    /// Called by a worker that just left its sleep: wakes the monitor if it sleeps.
    pub(crate) fn worker_woke(&self) {
        // Pairs with the monitor's store of `asleep` and load of the sleeper count: either
        // it sees this worker awake, or this load sees it asleep.
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) {
            self.lock().woken = true;
            self.signal.notify_one();
        }
    }

    /// Called by an exiled carrier once its green thread switched back or finished.
    pub(crate) fn exile_ended(&self, shared: &Shared) {
        self.exiled_running.fetch_sub(1, Ordering::SeqCst);
        if shared.is_shutting_down() {
            // The workers' check that nothing can progress skipped while this ran.
            shared.wake_all();
        }
    }

    /// Stops the monitor thread and lets the spare carriers exit.
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.signal.notify_one();
        let mut spares = self.lock_spares();
        spares.stopped = true;
        // Dropping their senders wakes them with `None`.
        spares.parked.clear();
    }

    /// Keeps `thread` (a carrier or an extra worker) for the runtime to join at shutdown.
    pub(crate) fn keep_thread(&self, thread: JoinHandle<()>) {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.retain(|thread| !thread.is_finished());
        threads.push(thread);
    }

    /// The carrier threads started by hand-offs, and the extra workers' threads.
    pub(crate) fn take_threads(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Body of the monitor thread of `shared`, whose workers are `workers`, carried by
/// `carriers` (same order). Worker threads are named `<thread_name>-<index>`.
pub(crate) fn run_monitor(
    shared: Arc<Shared>,
    workers: Vec<Arc<WorkerBox>>,
    carriers: Vec<Arc<Carrier>>,
    thread_name: String,
) {
    let handoff = &shared.handoff;
    let Some(threshold) = handoff.threshold else {
        return;
    };
    let interval = (threshold / 2).max(Duration::from_millis(1));
    let mut monitor = Monitor::new(&shared, workers, carriers, thread_name, threshold);
    let now = Instant::now();
    // Per slot: the carrier's last status sample and since when it is the same run, and
    // the worker's count of the runtime's own calls into the kernel (see `stats`): a run
    // in which the runtime entered the kernel for its own work since the last sample
    // starts over.
    let mut seen: Vec<(Status, Instant, u64)> = monitor
        .carriers
        .iter()
        .map(|carrier| {
            (
                carrier.as_ref().map_or(Status::IDLE, |c| c.status()),
                now,
                0,
            )
        })
        .collect();
    let mut idle_rounds = 0;
    loop {
        if !handoff.pause(&shared, &mut idle_rounds, interval) || shared.should_exit() {
            return;
        }
        monitor.forget_extras_that_left();
        let now = Instant::now();
        let mut any_running = false;
        for (index, seen) in seen.iter_mut().enumerate() {
            let Some(carrier) = &monitor.carriers[index] else {
                continue;
            };
            let status = carrier.status();
            let in_kernel = shared.stats[index].in_kernel.get();
            let (last, since, last_in_kernel) = *seen;
            if !status.running()
                || !last.running()
                || last.run_seq() != status.run_seq()
                || in_kernel != last_in_kernel
                || in_kernel % 2 == 1
            {
                *seen = (status, now, in_kernel);
                any_running |= status.running();
                continue;
            }
            any_running = true;
            if now.duration_since(since) < threshold {
                continue;
            }
            if !shared.migrates() {
                monitor.stalled(index, status, now.duration_since(since));
            } else if monitor.hand_off(index, status, since) {
                *seen = (monitor.carrier(index).status(), now, in_kernel);
            }
        }
        if let Some(slot) = monitor.compensate() {
            seen[slot] = (monitor.carrier(slot).status(), now, 0);
            any_running = true;
        }
        idle_rounds = if any_running { 0 } else { idle_rounds + 1 };
    }
}

impl Handoff {
    /// The monitor's wait between two samples: one `interval`, or, after [`IDLE_ROUNDS`]
    /// idle samples in a row (counted in `idle_rounds`, reset here), until a worker wakes
    /// up. `false` once the monitor is told to stop.
    fn pause(&self, shared: &Shared, idle_rounds: &mut u32, interval: Duration) -> bool {
        let mut control = self.lock();
        if *idle_rounds >= IDLE_ROUNDS {
            self.asleep.store(true, Ordering::SeqCst);
            if shared.idle.all_sleeping() {
                while !control.stop && !control.woken {
                    control = self
                        .signal
                        .wait(control)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
            control.woken = false;
            self.asleep.store(false, Ordering::SeqCst);
            *idle_rounds = 0;
        } else if !control.stop {
            control = self
                .signal
                .wait_timeout(control, interval)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        !control.stop
    }
}

struct Monitor<'a> {
    shared: &'a Arc<Shared>,
    /// Per worker slot: the worker it carries (always, for the workers; for the extra
    /// slots, while an extra runs there).
    workers: Vec<Option<Arc<WorkerBox>>>,
    /// Per worker slot: its current carrier, as `workers`.
    carriers: Vec<Option<Arc<Carrier>>>,
    thread_name: String,
    spawn_failure_reported: bool,
    /// Whether the first extra worker (or the failure to start one) was reported.
    extra_reported: bool,
    /// Set once a stall, once a suspected deadlock and once a certain one (a thread that
    /// unwinds into a lock) was told on standard error (no logger took it, see
    /// `report::heard_once`).
    stall_told: AtomicBool,
    deadlock_told: AtomicBool,
    unwinding_told: AtomicBool,
    /// Per worker: what was done about its current stall.
    stalls: Vec<Stall>,
    /// Per worker slot: its stalled carrier was seen sleeping in the kernel at the last
    /// sample (see [`Monitor::waits_in_the_kernel`]).
    slept: Vec<bool>,
    deadlock_after: Duration,
}

/// What the monitor did about one worker's stall.
#[derive(Default)]
struct Stall {
    /// The run found stuck and rescued, if any.
    run: Option<u64>,
    /// The green thread of that run; weak, so the thread's end frees it (its record holds
    /// the closure's body and join packet, which a scope waits for).
    stuck: Option<WeakTaskRef>,
    /// Whether the suspected deadlock of that run (a thread anchored behind it) was
    /// reported.
    deadlock_reported: bool,
    /// Whether the certain deadlock of that run (it unwinds into a lock a thread anchored
    /// behind it holds) was reported. Separate from `deadlock_reported`: the thread may reach
    /// the lock only after the suspicion was reported, and the certain one names more.
    unwinding_reported: bool,
}

impl<'a> Monitor<'a> {
    /// The monitor of `shared`'s workers (and their carriers), with every slot an extra
    /// worker may take later empty.
    fn new(
        shared: &'a Arc<Shared>,
        workers: Vec<Arc<WorkerBox>>,
        carriers: Vec<Arc<Carrier>>,
        thread_name: String,
        threshold: Duration,
    ) -> Self {
        let slots = shared.slots();
        let mut monitor = Monitor {
            shared,
            workers: workers.into_iter().map(Some).collect(),
            carriers: carriers.into_iter().map(Some).collect(),
            thread_name,
            spawn_failure_reported: false,
            extra_reported: false,
            stall_told: AtomicBool::new(false),
            deadlock_told: AtomicBool::new(false),
            unwinding_told: AtomicBool::new(false),
            stalls: (0..slots).map(|_| Stall::default()).collect(),
            slept: vec![false; slots],
            deadlock_after: (threshold * DEADLOCK_FACTOR).max(DEADLOCK_MIN),
        };
        monitor.workers.resize_with(slots, || None);
        monitor.carriers.resize_with(slots, || None);
        monitor
    }
}

impl Monitor<'_> {
    /// The worker of slot `index`, which carries one.
    fn worker(&self, index: usize) -> &Arc<WorkerBox> {
        self.workers[index]
            .as_ref()
            .expect("greenring: the monitor looked at a worker slot that carries none")
    }

    /// The carrier of slot `index`, which carries a worker.
    fn carrier(&self, index: usize) -> &Arc<Carrier> {
        self.carriers[index]
            .as_ref()
            .expect("greenring: the monitor looked at a worker slot that carries none")
    }

    /// Drops what it kept of the extra workers that left (see `extra`).
    fn forget_extras_that_left(&mut self) {
        let shared = self.shared;
        for index in shared.workers()..shared.slots() {
            if self.workers[index].is_some() && !shared.extras().in_use(index) {
                self.workers[index] = None;
                self.carriers[index] = None;
                self.stalls[index] = Stall::default();
                self.slept[index] = false;
            }
        }
    }

    /// Decides, once per sample, whether extra workers take threads that have not started
    /// (every worker is stalled), and starts one when those threads wait and no extra
    /// running could take them (see `extra`). Returns the slot of an extra it started.
    fn compensate(&mut self) -> Option<usize> {
        let shared = self.shared;
        let extras = shared.extras();
        if extras.max() == 0 {
            return None;
        }
        // Every stalled slot's state is read on every sample, so that a verdict covers two
        // consecutive samples.
        let blocked: Vec<bool> = (0..shared.slots())
            .map(|index| self.workers[index].is_some() && self.waits_in_the_kernel(index))
            .collect();
        let all_blocked = blocked[..shared.workers()].iter().all(|&b| b);
        extras.set_compensating(all_blocked);
        if !all_blocked || !shared.queues.has_work() {
            return None;
        }
        // An extra that is not blocked (idle, running, or computing) will take them, or is
        // using a CPU already.
        let an_extra_is_not_blocked = (shared.workers()..shared.slots())
            .any(|index| self.workers[index].is_some() && !blocked[index]);
        if an_extra_is_not_blocked {
            return None;
        }
        let waiting = shared.injector_depth()
            + (0..shared.workers())
                .map(|index| shared.queue_depth(index))
                .sum::<usize>();
        match super::extra::start(shared, &self.thread_name) {
            Ok(Some(started)) => {
                let slot = started.slot;
                crate::report::debug(format_args!(
                    "greenring: every worker's OS thread is blocked; extra worker {slot} \
                     started for the {waiting} green thread(s) waiting to start"
                ));
                if !std::mem::replace(&mut self.extra_reported, true) {
                    crate::report::warn(format_args!(
                        "greenring: every worker's OS thread is blocked in code greenring \
                         does not own, and {waiting} green thread(s) that have not started \
                         wait: started an extra worker to run them (at most {} at once, see \
                         `runtime::Builder::max_extra_workers`). Threads it starts stay on \
                         it; it leaves once they have finished.",
                        extras.max()
                    ));
                }
                self.workers[slot] = Some(started.worker);
                self.carriers[slot] = Some(started.carrier);
                self.stalls[slot] = Stall::default();
                self.slept[slot] = false;
                Some(slot)
            }
            Ok(None) => {
                if !std::mem::replace(&mut self.spawn_failure_reported, true) {
                    crate::report::heard_once(
                        log::Level::Error,
                        &self.deadlock_told,
                        format_args!(
                            "greenring: every worker's OS thread and all {} extra workers are \
                         blocked in code greenring does not own; the {waiting} green \
                         thread(s) that have not started wait until one of them returns \
                         (see `runtime::Builder::max_extra_workers`)",
                            extras.max()
                        ),
                    );
                }
                None
            }
            Err(err) => {
                if !std::mem::replace(&mut self.spawn_failure_reported, true) {
                    crate::report::error(format_args!(
                        "greenring: every worker's OS thread is blocked, and no extra worker \
                         could be started to run the {waiting} green thread(s) waiting to \
                         start: {err}"
                    ));
                }
                None
            }
        }
    }

    /// `true` when slot `index` is stalled and its OS thread sleeps in the kernel (a
    /// futex, a blocking socket call, a sleep) at this sample and the one before, rather
    /// than computing. A long computation stalls its worker too, but an extra worker would
    /// only take a CPU from it (and on a machine with fewer CPUs than busy threads a
    /// computation gets less than one, so CPU time could not tell them apart; the
    /// kernel's run state can: `R` whether running or preempted).
    fn waits_in_the_kernel(&mut self, index: usize) -> bool {
        let sleeping = self.shared.is_stalled(index)
            && self.carriers[index]
                .as_ref()
                .and_then(|carrier| carrier.sleeping())
                .unwrap_or(false);
        std::mem::replace(&mut self.slept[index], sleeping) && sleeping
    }

    /// Deals with worker `index` of an anchored runtime, whose carrier has been in the run
    /// `status` for `stuck_for` (past the threshold): see the module documentation.
    fn stalled(&mut self, index: usize, status: Status, stuck_for: Duration) {
        if self.stalls[index].run != Some(status.run_seq()) {
            self.stall_began(index, status, stuck_for);
        }
        // Looked at every sample: the thread may reach the lock only after the stall began
        // (an unwind first runs the panic hook, which may print a slow backtrace), and
        // after the suspected deadlock below was reported.
        if !self.stalls[index].unwinding_reported && self.unwinding_deadlock(index) {
            return;
        }
        let stall = &self.stalls[index];
        if stall.deadlock_reported || stall.unwinding_reported || stuck_for < self.deadlock_after {
            return;
        }
        self.stalls[index].deadlock_reported = true;
        self.report_anchored_behind(index, stuck_for);
    }

    /// A new stall of worker `index`: rescues its threads that have not started and warns.
    fn stall_began(&mut self, index: usize, status: Status, stuck_for: Duration) {
        let registry = &self.shared.registries[index];
        let (stuck, _) = registry.snapshot(self.carrier(index).running_id(), 0);
        self.stalls[index] = Stall {
            run: Some(status.run_seq()),
            stuck: stuck.as_ref().map(TaskRef::downgrade),
            deadlock_reported: false,
            unwinding_reported: false,
        };
        self.shared.begin_stall(index);
        if let Some(task) = self.worker(index).lifo().take() {
            // Not started: to the injector; started (bound here): to this worker's inbox,
            // where it waits for the worker as it would have in the slot.
            self.shared.requeue(task);
        }
        self.shared.wake_one();
        self.shared.dumps.stall_began(index, stuck_for);
        if let Some(stuck) = &stuck {
            crate::report::heard_once(
                log::Level::Warn,
                &self.stall_told,
                format_args!(
                    "greenring: green thread {} has blocked worker {index}'s OS thread for {} \
                     ms without yielding (a blocking call greenring does not own, a std lock, \
                     or a long computation); {}. Threads of this worker that have not \
                     started move to other workers; started ones wait for it. Use \
                     greenring's I/O and `greenring::sync`, `spawn_blocking` or `yield_now` \
                     instead (or the `hooks` feature, for code that makes its own socket \
                     calls and sleeps).",
                    stuck.describe(),
                    stuck_for.as_millis(),
                    crate::task::wait::last_wait(stuck),
                ),
            );
        }
    }

    /// Reports, once, a stuck thread of worker `index` that unwinds into a lock a thread
    /// anchored to the same worker holds: a certain deadlock, since the holder can only run
    /// on the OS thread that waits for it. `true` when it did.
    fn unwinding_deadlock(&mut self, index: usize) -> bool {
        let registry = &self.shared.registries[index];
        let stuck = self.stalls[index]
            .stuck
            .as_ref()
            .and_then(WeakTaskRef::upgrade);
        let Some((stuck, holder)) = stuck
            .as_ref()
            .and_then(|stuck| unwinding_on_lock_of(registry, stuck).map(|h| (stuck, h)))
        else {
            return false;
        };
        self.stalls[index].unwinding_reported = true;
        crate::report::heard_once(
            log::Level::Error,
            &self.unwinding_told,
            format_args!(
                "greenring: deadlock: green thread {} is unwinding (a destructor runs during a \
             panic) and blocks worker {index}'s OS thread waiting for the \
             greenring::sync::Mutex at {:#x}, which green thread {} holds; {} is anchored to \
             worker {index} and cannot run until that wait ends, so neither ever will. A \
             thread that unwinds cannot switch away (std's panic count belongs to the OS \
             thread): in a destructor that may run during a panic, do not lock what a thread \
             of the same worker may hold across a blocking call.",
                stuck.describe(),
                stuck.wait.read().arg,
                holder.describe(),
                holder.describe(),
            ),
        );
        true
    }

    /// Reports the started threads anchored behind worker `index`, stuck for `stuck_for`
    /// (a suspected deadlock if the stuck thread waits for one of them).
    fn report_anchored_behind(&self, index: usize, stuck_for: Duration) {
        let registry = &self.shared.registries[index];
        let running = self.carrier(index).running_id();
        let (stuck, behind) = registry.snapshot(running, NAMED_MAX);
        if behind.is_empty() {
            return;
        }
        let waiting = registry.len().saturating_sub(1);
        let mut names: Vec<String> = behind.iter().map(|task| task.describe()).collect();
        if waiting > names.len() {
            names.push(format!("and {} more", waiting - names.len()));
        }
        crate::report::heard_once(
            log::Level::Error,
            &self.deadlock_told,
            format_args!(
                "greenring: worker {index}'s OS thread has been blocked for {} ms in green \
                 thread {}, and {waiting} started green thread(s) anchored to it cannot run \
                 until it returns: {}. If the blocked thread waits for one of them (a \
                 std::sync or parking_lot lock held across a greenring blocking call, or, with \
                 the `hooks` feature, across any call the hooks park: a std socket's read or \
                 write, std::thread::sleep), this is a deadlock: use greenring::sync's locks, \
                 which park the green thread instead of blocking the worker.",
                stuck_for.as_millis(),
                stuck.map_or_else(|| format!("ThreadId({running})"), |t| t.describe()),
                names.join(", "),
            ),
        );
    }

    /// Moves worker `index`, whose carrier was seen in the run `status` since `since`, to a
    /// new OS thread; `false` if the carrier moved on meanwhile or no thread could start.
    fn hand_off(&mut self, index: usize, status: Status, since: Instant) -> bool {
        let handoff = &self.shared.handoff;
        // Find the OS thread first: once the old carrier is exiled the worker must get a
        // new one, so a failure to start a thread has to come before the point of no return.
        let spare = handoff.lock_spares().parked.pop();
        let assign = match spare {
            Some(assign) => assign,
            None => match self.start_carrier(index) {
                Some(assign) => assign,
                None => return false,
            },
        };
        handoff.exiled_running.fetch_add(1, Ordering::SeqCst);
        if !self.carrier(index).try_exile(status, since) {
            // It switched back in the meantime: nothing to hand over; keep the thread.
            handoff.lock_spares().parked.push(assign);
            handoff.exile_ended(self.shared);
            return false;
        }
        handoff.count.fetch_add(1, Ordering::Relaxed);
        crate::report::debug(format_args!(
            "greenring: worker {index} ran one green thread for {} ms; handed to another OS \
             thread",
            since.elapsed().as_millis()
        ));
        let carrier = Arc::new(Carrier::new());
        let worker = Arc::clone(self.worker(index));
        if let Err(mpsc::SendError(job)) = assign.send(Some((worker, Arc::clone(&carrier)))) {
            // The spare died (it cannot, short of a bug): carry on a fresh thread.
            let assign = self
                .start_carrier(index)
                .expect("greenring: no OS thread to carry a handed-off worker");
            let _ = assign.send(job);
        }
        self.shared.dumps.set_carrier(index, &carrier);
        self.carriers[index] = Some(carrier);
        true
    }

    /// Starts a carrier OS thread that waits for its first worker; `None` (reported once)
    /// when the OS refuses a thread.
    fn start_carrier(&mut self, index: usize) -> Option<Assign> {
        let (assign, assigned) = mpsc::sync_channel(1);
        let shared = Arc::clone(self.shared);
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{index}", self.thread_name))
            .spawn(move || carry(&shared, assigned.recv().ok().flatten()));
        match spawned {
            Ok(thread) => {
                self.shared.handoff.keep_thread(thread);
                Some(assign)
            }
            Err(err) => {
                if !std::mem::replace(&mut self.spawn_failure_reported, true) {
                    crate::report::error(format_args!(
                        "greenring: worker {index} is stuck in one green thread, and no OS \
                         thread could be started to take over its other green threads: {err}"
                    ));
                }
                None
            }
        }
    }
}

/// The started thread of `registry` (its worker's) holding the lock `stuck` waits for, if
/// `stuck` blocks its OS thread on a `Mutex` while unwinding: a certain deadlock (see
/// `task::wait::WaitRecord::blocking_os`).
fn unwinding_on_lock_of(registry: &super::Registry, stuck: &Task) -> Option<TaskRef> {
    let wait = stuck.wait.read();
    if !wait.unwinding || wait.code != crate::task::wait::LOCK {
        return None;
    }
    let crate::task::wait::Detail::Holder(holder) = wait.detail else {
        return None;
    };
    (holder != stuck.id.as_u64().get())
        .then(|| registry.find(holder))
        .flatten()
}

/// Body of every carrier OS thread: carries `first`, and after each exile parks as a spare
/// until a hand-off gives it another worker, until the runtime shuts down.
pub(crate) fn carry(shared: &Shared, first: Option<(Arc<WorkerBox>, Arc<Carrier>)>) {
    let _altstack = AltStack::install();
    let mut next = first;
    while let Some((worker, carrier)) = next {
        if !run_worker(worker, carrier) {
            return;
        }
        next = shared.handoff.wait_as_spare();
    }
}
