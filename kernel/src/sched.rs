//! The work loop every core runs: take a task (own mailbox first, then the shared
//! queue), run it to completion, repeat; with nothing to do, halt until a wake-up IPI.
//! The queue protocol (lock-free rings, idle tracking, batches) is `rexo-workqueue`.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicUsize, Ordering};

use rexo_workqueue::{Batch, BatchSubmitError, QueueFull, SubmitError, WorkQueue};

use crate::arch::apic::{self, Ipi};
use crate::arch::cpu;
use crate::arch::idt::VECTOR_WAKE;
use crate::arch::percpu;

/// Wakes a halted core with an IPI.
pub struct IpiWaker;

impl rexo_workqueue::Waker for IpiWaker {
    fn wake(&self, core: usize) {
        apic::send_ipi(
            percpu::core(core).apic_id.load(Ordering::Relaxed),
            Ipi::Fixed(VECTOR_WAKE),
        );
    }
}

/// Capacity of the shared queue.
const SHARED_CAPACITY: usize = 4096;
/// Capacity of each core's mailbox.
const MAILBOX_CAPACITY: usize = 256;

static QUEUE: spin::Once<WorkQueue<IpiWaker>> = spin::Once::new();
/// How many cores the queue serves (0: not known yet).
static QUEUE_CORES: AtomicUsize = AtomicUsize::new(0);

/// Sizes the queue for `cores` cores (before any core enters the loop). It is made on
/// first use: on one core, nothing allocates its rings before the ready line.
pub fn init(cores: usize) {
    QUEUE_CORES.store(cores, Ordering::Release);
}

/// The queue, made by its first user with interrupts off: a handler that submits a task
/// (a forced revocation's sweep) cannot find it half made on its own core.
fn queue() -> &'static WorkQueue<IpiWaker> {
    let make = || match QUEUE_CORES.load(Ordering::Acquire) {
        0 => panic!("the work queue is sized (`sched::init`) before its first use"),
        cores => WorkQueue::new(cores, SHARED_CAPACITY, MAILBOX_CAPACITY, IpiWaker),
    };
    (QUEUE.get()).unwrap_or_else(|| cpu::without_interrupts(|| QUEUE.call_once(make)))
}

/// Runs the work loop on this core, forever.
pub fn run(core: usize) -> ! {
    let queue = queue();
    // Tasks run with interrupts on, and a core enters here with them off: a TLB
    // shootdown or a deadline must reach an app that spins. A task leaves them as it
    // found them (an aborted app's core turns them back on: `apps::ended_reason`).
    cpu::enable_interrupts();
    loop {
        if let Some(task) = queue.next(core) {
            task();
            continue;
        }
        cpu::disable_interrupts();
        // A forced revocation's, asked for in an interrupt: with interrupts off no later
        // ask can land before the halt, and prepare_idle sees the task queued here.
        crate::caps::queue_sweep();
        if queue.prepare_idle(core) {
            // `sti; hlt`: a wake-up IPI sent after prepare_idle is taken right after the
            // `sti`, so the halt ends at once and no wake-up is lost.
            cpu::enable_interrupts_and_halt();
        } else {
            cpu::enable_interrupts();
        }
        queue.finish_idle(core);
    }
}

/// Runs one queued task for core `core`, if there is one (a core waiting for something
/// helps with the work instead of spinning). Returns whether it ran one.
pub fn run_one(core: usize) -> bool {
    match queue().next(core) {
        Some(task) => {
            task();
            true
        }
        None => false,
    }
}

/// Submits a task to any core.
pub fn submit(task: impl FnOnce() + Send + 'static) -> Result<(), QueueFull> {
    queue().submit(Box::new(task))
}

/// Submits a task to core `core`.
pub fn submit_to(core: usize, task: impl FnOnce() + Send + 'static) -> Result<(), SubmitError> {
    queue().submit_to(core, Box::new(task))
}

/// Runs `f(core)` once on every core in `0..cores` and waits for all of them, helping
/// with queued work while it waits.
pub fn run_on_cores(
    cores: usize,
    f: impl Fn(usize) + Send + Sync + Clone + 'static,
) -> Result<(), BatchSubmitError> {
    run_on_core_range(0..cores, f)
}

/// Runs `f(core)` once on every core of `cores` (machine indices) and waits for all of
/// them, helping with queued work while it waits. If a core's queue refuses the task, the
/// error comes once the tasks queued before it have run. Every task is boxed before any
/// is queued, so an app whose allocation is refused (its quota) ends with none of its
/// tasks left to run for it. The submits and the wait are a kernel section: a task the
/// wait runs for someone else (the kernel's sweep, another app's task) is not ended at
/// the abort point of the app that waits (an app's task sets its own).
pub fn run_on_core_range(
    cores: core::ops::Range<usize>,
    f: impl Fn(usize) + Send + Sync + Clone + 'static,
) -> Result<(), BatchSubmitError> {
    let batch = Batch::new();
    let tasks = batch.boxed_for_cores(cores, f);
    crate::arch::abort::kernel_section(|| {
        // After a refused submit, the tasks already queued still run: wait for them too.
        let submitted = tasks.submit_to_cores(queue());
        batch.wait(queue(), percpu::core_index());
        submitted
    })
}

/// A new batch of tasks on the machine's queue.
pub fn batch() -> Batch {
    Batch::new()
}

/// The machine's queue (for batches).
pub fn machine_queue() -> &'static WorkQueue<IpiWaker> {
    queue()
}
