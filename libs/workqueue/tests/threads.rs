//! Threads standing for cores: a thread parks when `prepare_idle` says so and is unparked by
//! the queue's waker. Every wait has a deadline, so a lost wake-up fails instead of hanging.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use rexo_workqueue::{Batch, QueueFull, SubmitError, Task, Waker, WorkQueue};

const DEADLINE: Duration = Duration::from_secs(60);

/// Unparks the thread standing for a core.
struct Parker {
    threads: Vec<OnceLock<Thread>>,
}

impl Waker for Parker {
    fn wake(&self, core: usize) {
        // A core registers before it first marks itself idle, so it is always there.
        self.threads[core]
            .get()
            .expect("core thread registered")
            .unpark();
    }
}

thread_local! {
    /// The core the current thread stands for (set by the core threads).
    static CORE: Cell<Option<usize>> = const { Cell::new(None) };
}

fn current_core() -> Option<usize> {
    CORE.with(Cell::get)
}

/// A queue and the threads running its cores `first_thread_core..cores`.
struct Machine {
    q: Arc<WorkQueue<Parker>>,
    stops: Arc<Vec<AtomicBool>>,
    threads: Vec<JoinHandle<()>>,
    exited: Arc<AtomicUsize>,
    first_thread_core: usize,
}

impl Machine {
    fn start(cores: usize, first_thread_core: usize, shared: usize, mailbox: usize) -> Self {
        let parker = Parker {
            threads: (0..cores).map(|_| OnceLock::new()).collect(),
        };
        let q = Arc::new(WorkQueue::new(cores, shared, mailbox, parker));
        let stops: Arc<Vec<AtomicBool>> =
            Arc::new((0..cores).map(|_| AtomicBool::new(false)).collect());
        let exited = Arc::new(AtomicUsize::new(0));
        let threads = (first_thread_core..cores)
            .map(|core| {
                let (q, stops, exited) = (Arc::clone(&q), Arc::clone(&stops), Arc::clone(&exited));
                thread::spawn(move || {
                    CORE.with(|c| c.set(Some(core)));
                    q.waker().threads[core].set(thread::current()).unwrap();
                    // The kernel's work loop.
                    while !stops[core].load(Ordering::Acquire) {
                        if let Some(task) = q.next(core) {
                            task();
                        } else if q.prepare_idle(core) {
                            thread::park();
                            q.finish_idle(core);
                        }
                    }
                    exited.fetch_add(1, Ordering::Release);
                })
            })
            .collect();
        Self {
            q,
            stops,
            threads,
            exited,
            first_thread_core,
        }
    }

    /// Stops every core thread through its mailbox (which must wake it) and joins them.
    fn shutdown(self) {
        for core in self.first_thread_core..self.q.cores() {
            let stops = Arc::clone(&self.stops);
            let mut task: Task = Box::new(move || stops[core].store(true, Ordering::Release));
            loop {
                match self.q.submit_to(core, task) {
                    Ok(()) => break,
                    Err(SubmitError::Full(back)) => {
                        task = back;
                        thread::yield_now();
                    }
                    Err(err) => panic!("{err}"),
                }
            }
        }
        let want = self.threads.len();
        wait_until("core threads to stop", || {
            self.exited.load(Ordering::Acquire) == want
        });
        for thread in self.threads {
            thread.join().unwrap();
        }
    }
}

/// Waits (sleeping briefly) until `done` holds; fails the test after the deadline.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}: lost wake-up?"
        );
        thread::sleep(Duration::from_micros(200));
    }
}

/// Submits, retrying while the queue is full (the task comes back each time).
fn submit_retrying(q: &WorkQueue<Parker>, core: Option<usize>, mut task: Task) -> usize {
    let mut refusals = 0;
    loop {
        let result = match core {
            None => q.submit(task).map_err(|QueueFull(back)| back),
            Some(core) => q.submit_to(core, task).map_err(SubmitError::into_task),
        };
        match result {
            Ok(()) => return refusals,
            Err(back) => {
                refusals += 1;
                task = back;
                thread::yield_now();
            }
        }
    }
}

#[test]
fn many_producers_many_cores_every_task_once() {
    const CORES: usize = 3;
    const PRODUCERS: usize = 3;
    const PER_PRODUCER: usize = 20_000;
    const TOTAL: usize = PRODUCERS * PER_PRODUCER;
    // Small rings, so that producers hit Full often.
    let machine = Machine::start(CORES, 0, 16, 4);
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..TOTAL).map(|_| AtomicUsize::new(0)).collect());
    let wrong_core = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let refusals = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = Arc::clone(&machine.q);
            let (runs, wrong_core, done, refusals) = (
                Arc::clone(&runs),
                Arc::clone(&wrong_core),
                Arc::clone(&done),
                Arc::clone(&refusals),
            );
            thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    let id = p * PER_PRODUCER + i;
                    // Every fourth task goes to one core's mailbox.
                    let target = id.is_multiple_of(4).then_some(id / 4 % CORES);
                    let (runs, wrong_core, done) = (
                        Arc::clone(&runs),
                        Arc::clone(&wrong_core),
                        Arc::clone(&done),
                    );
                    let task: Task = Box::new(move || {
                        runs[id].fetch_add(1, Ordering::Relaxed);
                        if target.is_some_and(|t| current_core() != Some(t)) {
                            wrong_core.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Release);
                    });
                    let r = submit_retrying(&q, target, task);
                    refusals.fetch_add(r, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    wait_until("every task to run", || {
        done.load(Ordering::Acquire) == TOTAL
    });
    let stats = machine.q.stats();
    machine.shutdown();
    assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
    assert_eq!(wrong_core.load(Ordering::Relaxed), 0);
    assert_eq!(stats.submitted, TOTAL as u64);
    assert_eq!(stats.taken, TOTAL as u64);
    // Refused submissions lost nothing (all tasks ran once) and did happen.
    assert!(refusals.load(Ordering::Relaxed) > 0);
}

/// A task that reports itself done first and then keeps its core busy for `delay` spins.
fn early_done(done: &Arc<AtomicUsize>, delay: usize) -> Task {
    let done = Arc::clone(done);
    Box::new(move || {
        done.fetch_add(1, Ordering::Release);
        for _ in 0..delay {
            std::hint::spin_loop();
        }
    })
}

/// One task at a time, each waited for: the cores go idle between almost every task, which
/// is where a lost wake-up would show. Each task reports itself done a varying while before
/// its core goes idle, and the next task is ready beforehand, so that across the rounds the
/// next submission lands at every point of the core's way into idle.
fn ping_pong(cores: usize) {
    const ROUNDS: usize = 20_000;
    let machine = Machine::start(cores, 0, 4, 4);
    let done = Arc::new(AtomicUsize::new(0));
    let mut task = early_done(&done, 0);
    for round in 0..ROUNDS {
        let target = (round % 3 == 0).then_some(round % cores);
        submit_retrying(&machine.q, target, task);
        task = early_done(&done, round % 2000);
        // Spin rather than sleep, to submit right after the last task reported.
        let start = Instant::now();
        let mut spins = 0u32;
        while done.load(Ordering::Acquire) <= round {
            spins += 1;
            if spins.is_multiple_of(1024) {
                assert!(
                    start.elapsed() < DEADLINE,
                    "round {round}: task never ran (lost wake-up)"
                );
                thread::yield_now();
            }
            std::hint::spin_loop();
        }
    }
    drop(task);
    let stats = machine.q.stats();
    machine.shutdown();
    assert_eq!(done.load(Ordering::Relaxed), ROUNDS);
    assert!(stats.wakeups > 0, "the cores never slept: {stats:?}");
}

#[test]
fn ping_pong_one_core_no_lost_wakeup() {
    ping_pong(1);
}

#[test]
fn ping_pong_two_cores_no_lost_wakeup() {
    ping_pong(2);
}

#[test]
fn batch_wait_with_helpers() {
    // Core 0 is this thread (it waits on the batch); cores 1 and 2 are threads.
    let machine = Machine::start(3, 1, 64, 8);
    let batch = Batch::new();
    let sum = Arc::new(AtomicUsize::new(0));
    for i in 0..2_000 {
        let sum = Arc::clone(&sum);
        let task = move || {
            sum.fetch_add(i, Ordering::Relaxed);
        };
        if batch.submit(&machine.q, task.clone()).is_err() {
            // No room: this core runs the refused task itself.
            task();
        }
    }
    batch.wait(&machine.q, 0);
    assert_eq!(batch.pending(), 0);
    // `wait` returned only after every task's effect is visible.
    assert_eq!(sum.load(Ordering::Relaxed), (0..2_000).sum::<usize>());
    machine.shutdown();
}
