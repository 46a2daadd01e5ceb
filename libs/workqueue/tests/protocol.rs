//! The queue protocol step by step, on one thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rexo_workqueue::{
    Batch, BatchQueueFull, BatchSubmitError, MAX_CORES, QueueFull, Stats, SubmitError, Task, Waker,
    WorkQueue,
};

/// Records every wake-up.
#[derive(Default)]
struct Recorder(Mutex<Vec<usize>>);

impl Waker for Recorder {
    fn wake(&self, core: usize) {
        self.0.lock().unwrap().push(core);
    }
}

fn queue(cores: usize, shared: usize, mailbox: usize) -> WorkQueue<Recorder> {
    WorkQueue::new(cores, shared, mailbox, Recorder::default())
}

fn woken(q: &WorkQueue<Recorder>) -> Vec<usize> {
    q.waker().0.lock().unwrap().clone()
}

/// A task that adds its tag to `log`.
fn tagged(log: &Arc<Mutex<Vec<u32>>>, tag: u32) -> Task {
    let log = Arc::clone(log);
    Box::new(move || log.lock().unwrap().push(tag))
}

#[test]
fn sizes_are_clamped() {
    let q = queue(0, 0, 0);
    assert_eq!(q.cores(), 1);
    assert!(q.submit(Box::new(|| {})).is_ok());
    assert!(q.submit(Box::new(|| {})).is_err());
    assert!(q.submit_to(0, Box::new(|| {})).is_ok());
    assert!(matches!(
        q.submit_to(0, Box::new(|| {})),
        Err(SubmitError::Full(_))
    ));
    assert_eq!(queue(10_000, 1, 1).cores(), MAX_CORES);
}

#[test]
fn mailbox_first_then_shared_in_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let q = queue(2, 8, 8);
    q.submit(tagged(&log, 1)).unwrap();
    q.submit(tagged(&log, 2)).unwrap();
    q.submit_to(1, tagged(&log, 3)).unwrap();
    while let Some(task) = q.next(1) {
        task();
    }
    assert_eq!(*log.lock().unwrap(), [3, 1, 2]);
    assert!(q.next(0).is_none());
    assert_eq!(
        q.stats(),
        Stats {
            submitted: 3,
            taken: 3,
            wakeups: 0
        }
    );
}

#[test]
fn submit_to_reaches_only_that_core() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let q = queue(3, 8, 8);
    q.submit_to(1, tagged(&log, 7)).unwrap();
    assert!(q.next(0).is_none());
    assert!(q.next(2).is_none());
    q.next(1).unwrap()();
    assert_eq!(*log.lock().unwrap(), [7]);
}

#[test]
fn no_such_core_gives_the_task_back() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let q = queue(2, 8, 8);
    let err = q.submit_to(2, tagged(&log, 9)).unwrap_err();
    assert!(matches!(err, SubmitError::NoSuchCore { core: 2, .. }));
    assert_eq!(err.to_string(), "no core 2 in the work queue");
    assert_eq!(format!("{err:?}"), "NoSuchCore { core: 2, .. }");
    err.into_task()();
    assert_eq!(*log.lock().unwrap(), [9]);
    assert!(q.next(2).is_none());
    assert!(!q.prepare_idle(2));
    assert!(!q.is_idle(2));
    q.finish_idle(2);
    assert_eq!(q.stats().submitted, 0);
}

#[test]
fn full_queue_loses_nothing() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let q = queue(1, 2, 1);
    q.submit(tagged(&log, 1)).unwrap();
    q.submit(tagged(&log, 2)).unwrap();
    let QueueFull(back) = q.submit(tagged(&log, 3)).unwrap_err();
    q.submit_to(0, tagged(&log, 4)).unwrap();
    let err = q.submit_to(0, tagged(&log, 5)).unwrap_err();
    assert_eq!(err.to_string(), "core mailbox full");
    assert_eq!(QueueFull(Box::new(|| {})).to_string(), "work queue full");
    while let Some(task) = q.next(0) {
        task();
    }
    back();
    err.into_task()();
    assert_eq!(*log.lock().unwrap(), [4, 1, 2, 3, 5]);
}

#[test]
fn idle_then_woken_exactly_once() {
    let q = queue(2, 8, 8);
    assert!(q.prepare_idle(0));
    assert!(q.is_idle(0));
    assert!(!q.is_idle(1));
    q.submit(Box::new(|| {})).unwrap();
    // The submitter cleared the bit and woke core 0.
    assert!(!q.is_idle(0));
    assert_eq!(woken(&q), [0]);
    // A second task finds no idle core: no more wake-ups.
    q.submit(Box::new(|| {})).unwrap();
    assert_eq!(woken(&q), [0]);
    q.finish_idle(0);
    assert!(!q.is_idle(0));
    assert_eq!(q.stats().wakeups, 1);
}

#[test]
fn prepare_idle_rechecks_after_marking() {
    let q = queue(2, 8, 8);
    q.submit(Box::new(|| {})).unwrap();
    // Work in the shared queue: do not halt, and do not stay marked.
    assert!(!q.prepare_idle(1));
    assert!(!q.is_idle(1));
    q.next(1).unwrap()();
    q.submit_to(1, Box::new(|| {})).unwrap();
    assert!(!q.prepare_idle(1));
    // Another core's mailbox is not this core's work.
    assert!(q.prepare_idle(0));
    q.next(1).unwrap()();
    assert!(q.prepare_idle(1));
    assert!(woken(&q).is_empty());
}

#[test]
fn submit_to_wakes_only_its_core_and_submit_the_lowest_idle() {
    let q = queue(3, 8, 8);
    for core in 0..3 {
        assert!(q.prepare_idle(core));
    }
    q.submit_to(2, Box::new(|| {})).unwrap();
    assert_eq!(woken(&q), [2]);
    assert!(q.is_idle(0) && q.is_idle(1) && !q.is_idle(2));
    q.submit(Box::new(|| {})).unwrap();
    assert_eq!(woken(&q), [2, 0]);
    q.submit(Box::new(|| {})).unwrap();
    assert_eq!(woken(&q), [2, 0, 1]);
    q.submit(Box::new(|| {})).unwrap();
    assert_eq!(woken(&q), [2, 0, 1]);
}

#[test]
fn a_core_taking_a_mailbox_task_wakes_another_for_the_shared_queue() {
    let q = queue(3, 8, 8);
    for core in 0..3 {
        assert!(q.prepare_idle(core));
    }
    // A shared task wakes core 0; a task for core 0's mailbox, racing with it, finds the
    // bit taken and wakes nobody.
    q.submit(Box::new(|| {})).unwrap();
    q.submit_to(0, Box::new(|| {})).unwrap();
    assert_eq!(woken(&q), [0]);
    // Core 0 takes its mailbox task first and may run it for long: an idle core is woken
    // for the shared task.
    q.finish_idle(0);
    let _mailbox_task = q.next(0).unwrap();
    assert_eq!(woken(&q), [0, 1]);
    q.finish_idle(1);
    q.next(1).expect("the shared task")();
    // With the shared queue empty, a mailbox task wakes nobody.
    q.submit_to(0, Box::new(|| {})).unwrap();
    q.next(0).unwrap()();
    assert_eq!(woken(&q), [0, 1]);
    assert!(q.is_idle(2));
}

#[test]
fn high_core_numbers_use_the_upper_bitmap_words() {
    let q = queue(MAX_CORES, 4, 1);
    assert!(q.prepare_idle(MAX_CORES - 1));
    assert!(q.prepare_idle(130));
    q.submit(Box::new(|| {})).unwrap();
    assert_eq!(woken(&q), [130]);
    q.submit_to(MAX_CORES - 1, Box::new(|| {})).unwrap();
    assert_eq!(woken(&q), [130, MAX_CORES - 1]);
}

#[test]
fn batch_on_a_single_core_runs_itself() {
    let q = queue(1, 64, 4);
    let batch = Batch::new();
    let sum = Arc::new(AtomicUsize::new(0));
    for i in 1..=10 {
        let sum = Arc::clone(&sum);
        batch
            .submit(&q, move || {
                sum.fetch_add(i, Ordering::Relaxed);
            })
            .unwrap();
    }
    let sum2 = Arc::clone(&sum);
    batch
        .submit_to(&q, 0, move || {
            sum2.fetch_add(100, Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(batch.pending(), 11);
    assert_eq!(format!("{batch:?}"), "Batch { pending: 11 }");
    batch.wait(&q, 0);
    assert_eq!(batch.pending(), 0);
    assert_eq!(sum.load(Ordering::Relaxed), 155);
    // Waiting on an empty batch returns at once.
    Batch::default().wait(&q, 0);
}

#[test]
fn batch_tasks_that_submit_more_batch_tasks() {
    let q = Arc::new(queue(1, 64, 4));
    let batch = Arc::new(Batch::new());
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (q2, b2, c2) = (Arc::clone(&q), Arc::clone(&batch), Arc::clone(&count));
        batch
            .submit(&q, move || {
                c2.fetch_add(1, Ordering::Relaxed);
                let c3 = Arc::clone(&c2);
                b2.submit(&q2, move || {
                    c3.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            })
            .unwrap();
    }
    batch.wait(&q, 0);
    assert_eq!(count.load(Ordering::Relaxed), 8);
}

#[test]
fn batch_task_refused_counts_when_dropped_or_run() {
    let q = queue(1, 1, 1);
    let batch = Batch::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let add = |ran: &Arc<AtomicUsize>| {
        let ran = Arc::clone(ran);
        move || {
            ran.fetch_add(1, Ordering::Relaxed);
        }
    };
    batch.submit(&q, add(&ran)).unwrap();
    let err = batch.submit(&q, add(&ran)).unwrap_err();
    assert_eq!(err, BatchQueueFull);
    assert_eq!(err.to_string(), "work queue full");
    assert_eq!(batch.pending(), 1, "the refused task is dropped at once");
    batch.submit_to(&q, 0, add(&ran)).unwrap();
    let err = batch.submit_to(&q, 0, add(&ran)).unwrap_err();
    assert_eq!(err, BatchSubmitError::Full);
    assert_eq!(batch.pending(), 2);
    let err = batch.submit_to(&q, 5, add(&ran)).unwrap_err();
    assert_eq!(err, BatchSubmitError::NoSuchCore(5));
    assert_eq!(err.to_string(), "no core 5 in the work queue");
    assert_eq!(batch.pending(), 2);
    batch.wait(&q, 0);
    assert_eq!(ran.load(Ordering::Relaxed), 2);
}

#[test]
fn a_batch_task_the_full_shared_queue_refuses_is_finished_while_the_error_is_held() {
    // As with a full mailbox: a caller that keeps the refusal until its wait is over must
    // not wait for the refused task.
    let q = queue(1, 1, 1);
    let batch = Batch::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let add = || {
        let ran = Arc::clone(&ran);
        move || _ = ran.fetch_add(1, Ordering::Relaxed)
    };
    batch.submit(&q, add()).unwrap();
    let refused = batch.submit(&q, add());
    while let Some(task) = q.next(0) {
        task();
    }
    assert_eq!(batch.pending(), 0, "the refused task is not pending");
    let refused = refused.map_err(|error| error.to_string());
    assert_eq!(refused, Err("work queue full".to_string()));
    assert_eq!(ran.load(Ordering::Relaxed), 1);
}

#[test]
fn a_batch_task_a_full_mailbox_refuses_is_finished_while_the_error_is_held() {
    // `sched::run_on_core_range` keeps the refusal until its wait is over: the refused
    // task must not count as pending meanwhile, or the wait never ends.
    let q = queue(2, 4, 1);
    let batch = Batch::new();
    let ran = Arc::new(AtomicUsize::new(0));
    for core in [0, 1, 1] {
        let ran = Arc::clone(&ran);
        let submitted = batch.submit_to(&q, core, move || {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        if let Err(refused) = submitted {
            assert_eq!(refused.to_string(), "core mailbox full");
            assert_eq!(batch.pending(), 2, "the refused task is still pending");
            q.next(1).expect("core 1's queued task")();
            batch.wait(&q, 0);
        }
    }
    assert_eq!(ran.load(Ordering::Relaxed), 2);
}

#[test]
fn a_pending_task_is_submitted_once_and_kept_while_the_queue_refuses_it() {
    use rexo_workqueue::Pending;
    let q = queue(1, 1, 1);
    let pending = Pending::new();
    let submit = || q.submit(Box::new(|| {}));
    pending.submit_if_requested(|| panic!("nothing was asked for"));
    pending.request();
    pending.request();
    // The queue is full: the submit is refused and the request stays.
    q.submit(Box::new(|| {})).unwrap();
    pending.submit_if_requested(submit);
    assert!(pending.is_requested(), "a refused submit is tried again");
    assert_eq!(q.stats().submitted, 1);
    q.next(0).expect("the task that filled the queue")();
    pending.submit_if_requested(submit);
    assert!(!pending.is_requested());
    assert_eq!(q.stats().submitted, 2, "two requests, one task");
    pending.submit_if_requested(|| panic!("submitted already"));
}

#[test]
fn a_batchs_boxed_tasks_wait_for_their_submit_and_a_refused_one_drops_the_rest() {
    let q = queue(2, 4, 1);
    let batch = Batch::new();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&ran);
    let tasks = batch.boxed_for_cores(0..4, move |core| log.lock().unwrap().push(core));
    assert_eq!(format!("{tasks:?}"), "BoxedTasks { cores: [0, 1, 2, 3] }");
    assert_eq!(batch.pending(), 4);
    assert_eq!(
        q.stats().submitted,
        0,
        "nothing is queued before the submit"
    );
    assert_eq!(
        tasks.submit_to_cores(&q),
        Err(BatchSubmitError::NoSuchCore(2))
    );
    assert_eq!(
        batch.pending(),
        2,
        "the refused task and the rest are dropped"
    );
    for core in 0..2 {
        while let Some(task) = q.next(core) {
            task();
        }
    }
    assert_eq!(*ran.lock().unwrap(), [0, 1]);
    assert_eq!(batch.pending(), 0);
}
