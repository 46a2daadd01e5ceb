//! The per-machine task queue: a shared ring every core takes from, one mailbox per core,
//! idle tracking so that submitting a task wakes a halted core, and batches one can wait for.
//!
//! Every core runs
//! `loop { if let Some(task) = q.next(core) { task() } else if q.prepare_idle(core) { halt; q.finish_idle(core) } }`.
//! The crate never blocks or halts by itself: the kernel decides how a core waits (`hlt`
//! until an IPI) and how it is woken ([`Waker`]); host tests use parked threads.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

use crossbeam_queue::ArrayQueue;

/// The most cores a queue serves (the size of the idle bitmap).
pub const MAX_CORES: usize = 256;

/// Words of the idle bitmap.
const IDLE_WORDS: usize = MAX_CORES / 64;

/// A unit of work: runs to completion on whichever core takes it.
pub type Task = Box<dyn FnOnce() + Send + 'static>;

/// How the queue wakes a halted core (the kernel sends an IPI; host tests unpark a thread).
pub trait Waker: Sync {
    /// Wakes `core`, which marked itself idle and may be halted.
    fn wake(&self, core: usize);
}

/// The shared queue was full; the task comes back unrun.
pub struct QueueFull(pub Task);

impl fmt::Debug for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("work queue full")
    }
}

impl core::error::Error for QueueFull {}

/// Why [`WorkQueue::submit_to`] refused a task; the task comes back unrun.
pub enum SubmitError {
    /// The queue has no core of that number.
    NoSuchCore {
        /// The core asked for.
        core: usize,
        /// The task.
        task: Task,
    },
    /// The core's mailbox was full.
    Full(Task),
}

impl SubmitError {
    /// The task that was not queued.
    pub fn into_task(self) -> Task {
        match self {
            Self::NoSuchCore { task, .. } | Self::Full(task) => task,
        }
    }
}

impl fmt::Debug for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchCore { core, .. } => write!(f, "NoSuchCore {{ core: {core}, .. }}"),
            Self::Full(_) => f.write_str("Full(..)"),
        }
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchCore { core, .. } => BatchSubmitError::NoSuchCore(*core).fmt(f),
            Self::Full(_) => BatchSubmitError::Full.fmt(f),
        }
    }
}

impl core::error::Error for SubmitError {}

/// Why [`Batch::submit_to`] refused a task. Unlike [`SubmitError`] it does not carry the
/// task: the refused task is dropped at once (so the batch counts it finished), and
/// holding this error while waiting for the batch cannot keep [`Batch::wait`] waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSubmitError {
    /// The queue has no core of that number.
    NoSuchCore(usize),
    /// The core's mailbox was full.
    Full,
}

impl From<SubmitError> for BatchSubmitError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::NoSuchCore { core, .. } => Self::NoSuchCore(core),
            SubmitError::Full(_) => Self::Full,
        }
    }
}

impl fmt::Display for BatchSubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchCore(core) => write!(f, "no core {core} in the work queue"),
            Self::Full => f.write_str("core mailbox full"),
        }
    }
}

impl core::error::Error for BatchSubmitError {}

/// Why [`Batch::submit`] refused a task: the shared queue was full. Unlike [`QueueFull`]
/// it does not carry the task: the refused task is dropped at once (so the batch counts
/// it finished), and holding this error while waiting for the batch cannot keep
/// [`Batch::wait`] waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchQueueFull;

impl fmt::Display for BatchQueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("work queue full")
    }
}

impl core::error::Error for BatchQueueFull {}

/// Counters of a queue's life, for reports and tests (each read on its own, not a snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Tasks accepted by `submit` and `submit_to`.
    pub submitted: u64,
    /// Tasks handed out by `next`.
    pub taken: u64,
    /// Calls of [`Waker::wake`].
    pub wakeups: u64,
}

/// The task queue of one machine: a shared bounded ring, a bounded mailbox per core, and a
/// bitmap of idle cores. All methods take `&self` and are lock-free.
pub struct WorkQueue<W: Waker> {
    shared: ArrayQueue<Task>,
    mailboxes: Box<[ArrayQueue<Task>]>,
    idle: [AtomicU64; IDLE_WORDS],
    waker: W,
    submitted: AtomicU64,
    taken: AtomicU64,
    wakeups: AtomicU64,
}

impl<W: Waker> WorkQueue<W> {
    /// A queue for `cores` cores (clamped to 1..=[`MAX_CORES`]) with a shared ring of
    /// `shared_capacity` tasks and a mailbox of `mailbox_capacity` tasks per core (each at
    /// least 1).
    pub fn new(cores: usize, shared_capacity: usize, mailbox_capacity: usize, waker: W) -> Self {
        let cores = cores.clamp(1, MAX_CORES);
        let mailboxes: Vec<ArrayQueue<Task>> = (0..cores)
            .map(|_| ArrayQueue::new(mailbox_capacity.max(1)))
            .collect();
        Self {
            shared: ArrayQueue::new(shared_capacity.max(1)),
            mailboxes: mailboxes.into_boxed_slice(),
            idle: [const { AtomicU64::new(0) }; IDLE_WORDS],
            waker,
            submitted: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
        }
    }

    /// How many cores the queue serves (numbered `0..cores()`).
    pub fn cores(&self) -> usize {
        self.mailboxes.len()
    }

    /// The waker the queue was built with.
    pub fn waker(&self) -> &W {
        &self.waker
    }

    /// The queue's counters.
    pub fn stats(&self) -> Stats {
        Stats {
            submitted: self.submitted.load(Ordering::Relaxed),
            taken: self.taken.load(Ordering::Relaxed),
            wakeups: self.wakeups.load(Ordering::Relaxed),
        }
    }

    /// Queues a task for any core and wakes one idle core, if any.
    pub fn submit(&self, task: Task) -> Result<(), QueueFull> {
        self.shared.push(task).map_err(QueueFull)?;
        self.submitted.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `prepare_idle`: either that core sees the task, or we see
        // its idle bit.
        fence(Ordering::SeqCst);
        self.wake_one_idle();
        Ok(())
    }

    /// Wakes the lowest-numbered idle core, if any (clearing its idle bit).
    fn wake_one_idle(&self) {
        for (word_index, word) in self.idle.iter().enumerate() {
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                let mask = 1u64 << bits.trailing_zeros();
                let before = word.fetch_and(!mask, Ordering::SeqCst);
                if before & mask != 0 {
                    self.wake(word_index * 64 + mask.trailing_zeros() as usize);
                    return;
                }
                // Someone else woke that core; look again at what is left.
                bits = before & !mask;
            }
        }
    }

    /// Queues a task in `core`'s mailbox (only that core runs it) and wakes it if idle.
    pub fn submit_to(&self, core: usize, task: Task) -> Result<(), SubmitError> {
        let Some(mailbox) = self.mailboxes.get(core) else {
            return Err(SubmitError::NoSuchCore { core, task });
        };
        mailbox.push(task).map_err(SubmitError::Full)?;
        self.submitted.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.take_idle_bit(core) {
            self.wake(core);
        }
        Ok(())
    }

    /// The next task for `core`: from its own mailbox first, then from the shared queue.
    /// `None` if there is none (or no such core).
    ///
    /// Taking a mailbox task while the shared queue holds tasks wakes one idle core for
    /// them: the core `submit` woke may be this one, now busy with its mailbox for as long
    /// as that task runs (a `submit_to` racing with `submit` finds the bit taken and wakes
    /// nobody), and the shared tasks must not wait for it while other cores sleep.
    pub fn next(&self, core: usize) -> Option<Task> {
        let mailbox = self.mailboxes.get(core)?;
        let task = match mailbox.pop() {
            Some(task) => {
                if !self.shared.is_empty() {
                    self.wake_one_idle();
                }
                task
            }
            None => self.shared.pop()?,
        };
        self.taken.fetch_add(1, Ordering::Relaxed);
        Some(task)
    }

    /// Marks `core` idle, then looks for work again. Returns `true` if there is none: the core
    /// may halt until [`Waker::wake`] wakes it, then must call
    /// [`finish_idle`](Self::finish_idle). Returns `false` (and the core is not idle) if work
    /// arrived meanwhile, or for a core that does not exist.
    ///
    /// Because the check comes after the idle bit is set, a task submitted at any moment
    /// either is seen here or finds the bit and wakes the core: no wake-up is lost. The
    /// kernel must still make "return true, then halt" atomic with respect to the wake-up
    /// interrupt (interrupts off around this call, `sti; hlt`).
    pub fn prepare_idle(&self, core: usize) -> bool {
        if core >= self.cores() {
            return false;
        }
        let (word, mask) = Self::idle_bit(core);
        self.idle[word].fetch_or(mask, Ordering::SeqCst);
        // Pairs with the fences in `submit` and `submit_to`.
        fence(Ordering::SeqCst);
        if self.mailboxes[core].is_empty() && self.shared.is_empty() {
            return true;
        }
        // Work arrived. If a submitter took the bit already, its wake-up comes anyway and is
        // harmless; either way the core must not halt.
        self.take_idle_bit(core);
        false
    }

    /// Ends an idle period begun by [`prepare_idle`](Self::prepare_idle) (also after a
    /// spurious wake-up): the core is no longer idle.
    pub fn finish_idle(&self, core: usize) {
        if core < self.cores() {
            self.take_idle_bit(core);
        }
    }

    /// Whether `core` is marked idle (and not yet woken).
    pub fn is_idle(&self, core: usize) -> bool {
        if core >= self.cores() {
            return false;
        }
        let (word, mask) = Self::idle_bit(core);
        self.idle[word].load(Ordering::SeqCst) & mask != 0
    }

    /// The word and mask of `core`'s idle bit.
    fn idle_bit(core: usize) -> (usize, u64) {
        (core / 64, 1 << (core % 64))
    }

    /// Clears `core`'s idle bit; `true` if it was set (the caller now owns the wake-up).
    fn take_idle_bit(&self, core: usize) -> bool {
        let (word, mask) = Self::idle_bit(core);
        self.idle[word].load(Ordering::SeqCst) & mask != 0
            && self.idle[word].fetch_and(!mask, Ordering::SeqCst) & mask != 0
    }

    fn wake(&self, core: usize) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
        self.waker.wake(core);
    }
}

/// A task asked for where the queue must not be entered: an interrupt handler, whose
/// core may be in the middle of a pop (the rings are not safe to enter again on one core,
/// and a full ring would make the handler's push spin with interrupts off). The handler
/// only [`request`](Self::request)s it; code that runs regularly outside handlers (the
/// work loop) submits it with [`submit_if_requested`](Self::submit_if_requested), and a
/// refused submit leaves it requested for the next try, so a request is never lost.
#[derive(Debug, Default)]
pub struct Pending(AtomicBool);

impl Pending {
    /// Nothing requested.
    pub const fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    /// Asks for the task (from any context: it touches only a flag).
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the task is asked for and not submitted yet.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// If the task was asked for, calls `submit` (which queues it); if that is refused
    /// (the queue is full) the task stays asked for. Requests made before a submit make
    /// one task, and of cores calling this at once only one submits.
    pub fn submit_if_requested(&self, submit: impl FnOnce() -> Result<(), QueueFull>) {
        if self.0.load(Ordering::Relaxed)
            && self.0.swap(false, Ordering::AcqRel)
            && submit().is_err()
        {
            self.request();
        }
    }
}

/// A group of tasks one can wait for.
///
/// A task of the batch counts as finished when it has run, or when it is dropped unrun (one
/// [`submit`](Self::submit) or [`submit_to`](Self::submit_to) refused, dropped before
/// they return), so that [`wait`](Self::wait) never waits for a task that no longer exists.
pub struct Batch {
    pending: Arc<AtomicUsize>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("pending", &self.pending())
            .finish()
    }
}

/// Tasks of a [`Batch`], each boxed for its core and none queued yet
/// ([`Batch::boxed_for_cores`]); dropped unqueued, they count as finished.
pub struct BoxedTasks(Vec<(usize, Task)>);

impl fmt::Debug for BoxedTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cores = self.0.iter().map(|(core, _)| core);
        f.debug_struct("BoxedTasks")
            .field("cores", &cores.collect::<Vec<_>>())
            .finish()
    }
}

impl BoxedTasks {
    /// Queues each task on its core of `q`, in order, allocating nothing. At the first
    /// refused, that task and the rest are dropped unrun (they count as finished) and its
    /// error is returned; the tasks queued before it still run, and the batch can be
    /// waited for at once.
    pub fn submit_to_cores<W: Waker>(self, q: &WorkQueue<W>) -> Result<(), BatchSubmitError> {
        let submit = |(core, task)| q.submit_to(core, task).map_err(BatchSubmitError::from);
        self.0.into_iter().try_for_each(submit)
    }
}

/// Counts a batch task as finished when dropped (after it ran, or unrun).
struct Done(Arc<AtomicUsize>);

impl Drop for Done {
    fn drop(&mut self) {
        // Release: the task's effects are visible to whoever sees the count drop.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Queues `f` for any core as part of the batch. A refused `f` is dropped unrun before
    /// this returns (it counts as finished), so the batch can be waited for at once.
    pub fn submit<W: Waker>(
        &self,
        q: &WorkQueue<W>,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), BatchQueueFull> {
        q.submit(self.wrap(f))
            .map_err(|QueueFull(_refused)| BatchQueueFull)
    }

    /// Queues `f` for `core` as part of the batch. A refused `f` is dropped unrun before
    /// this returns (it counts as finished), so the batch can be waited for at once.
    pub fn submit_to<W: Waker>(
        &self,
        q: &WorkQueue<W>,
        core: usize,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), BatchSubmitError> {
        q.submit_to(core, self.wrap(f))
            .map_err(BatchSubmitError::from)
    }

    /// `f(core)` for each core of `cores`, each boxed as a task of the batch, none queued
    /// yet ([`BoxedTasks::submit_to_cores`] queues them): every allocation comes first, so
    /// a refused one (a panic that ends the caller) leaves no task of the batch queued to
    /// run for a caller that is gone.
    pub fn boxed_for_cores(
        &self,
        cores: Range<usize>,
        f: impl Fn(usize) + Send + Sync + Clone + 'static,
    ) -> BoxedTasks {
        let task = |core| {
            let f = f.clone();
            (core, self.wrap(move || f(core)))
        };
        BoxedTasks(cores.map(task).collect())
    }

    /// Returns when every task of the batch has finished. Meanwhile it runs tasks of `q` as
    /// `core` (any task, not only the batch's), so it works on a single core and cannot
    /// deadlock on its own batch; when there is nothing to run it spins (the batch's tasks
    /// are running on other cores).
    pub fn wait<W: Waker>(&self, q: &WorkQueue<W>, core: usize) {
        while self.pending() > 0 {
            match q.next(core) {
                Some(task) => task(),
                None => core::hint::spin_loop(),
            }
        }
    }

    /// How many tasks of the batch have not finished yet.
    pub fn pending(&self) -> usize {
        // Acquire: pairs with the Release in `Done`, so the tasks' effects are visible.
        self.pending.load(Ordering::Acquire)
    }

    fn wrap(&self, f: impl FnOnce() + Send + 'static) -> Task {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let done = Done(Arc::clone(&self.pending));
        Box::new(move || {
            let _done = done;
            f();
        })
    }
}
