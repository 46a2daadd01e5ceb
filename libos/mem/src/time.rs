//! Time: a clock (the kernel's, or a fake one in tests) and a sorted list of deadlines.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use rexo_api::Kernel;

/// A monotonic clock in nanoseconds that can nap.
pub trait Clock {
    /// Nanoseconds since an arbitrary start; never goes back.
    fn now_ns(&self) -> u64;
    /// Naps about `ns` nanoseconds, or less (a wake-up may come early).
    fn sleep_ns(&self, ns: u64);
}

/// The kernel's clock: `now_ns` and `sleep_ns` of [`Kernel`].
#[derive(Clone, Copy)]
pub struct KernelClock<'k>(pub &'k Kernel);

impl Clock for KernelClock<'_> {
    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }

    fn sleep_ns(&self, ns: u64) {
        self.0.sleep_ns(ns);
    }
}

/// Naps on `clock` until `deadline_ns` has passed (a nap may end early, so it loops).
pub fn sleep_until(clock: &dyn Clock, deadline_ns: u64) {
    loop {
        let now = clock.now_ns();
        if now >= deadline_ns {
            return;
        }
        clock.sleep_ns(deadline_ns - now);
    }
}

/// A pending deadline's name ([`Deadlines::add`]), to cancel it in the list that made
/// it (another list answers `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId {
    at_ns: u64,
    sequence: u64,
    list: u64,
}

impl TimerId {
    /// When it is due.
    pub fn at_ns(&self) -> u64 {
        self.at_ns
    }
}

/// Items due at deadlines, kept sorted: the earliest is at hand, items due at the same
/// time come out in the order they were added.
#[derive(Debug)]
pub struct Deadlines<T> {
    pending: BTreeMap<TimerId, T>,
    sequence: u64,
    list: u64,
}

/// Numbers the deadline lists, so that a [`TimerId`] names the list that made it.
static NEXT_LIST: AtomicU64 = AtomicU64::new(0);

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deadlines<T> {
    /// No deadlines.
    pub fn new() -> Self {
        Self {
            pending: BTreeMap::new(),
            sequence: 0,
            list: NEXT_LIST.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// `item` becomes due at `at_ns`.
    pub fn add(&mut self, at_ns: u64, item: T) -> TimerId {
        let id = TimerId {
            at_ns,
            sequence: self.sequence,
            list: self.list,
        };
        self.sequence += 1;
        self.pending.insert(id, item);
        id
    }

    /// `item` becomes due `delay_ns` after `clock`'s now.
    pub fn after(&mut self, clock: &dyn Clock, delay_ns: u64, item: T) -> TimerId {
        self.add(clock.now_ns().saturating_add(delay_ns), item)
    }

    /// Takes a pending item out before it is due; `None` if it already came out or `id`
    /// is another list's.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.pending.remove(&id)
    }

    /// When the earliest item is due.
    pub fn next_ns(&self) -> Option<u64> {
        self.pending.keys().next().map(TimerId::at_ns)
    }

    /// Items pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes out every item due at or before `now_ns`, earliest first.
    pub fn expired(&mut self, now_ns: u64) -> Vec<T> {
        let later = match now_ns.checked_add(1) {
            Some(at_ns) => self.pending.split_off(&TimerId {
                at_ns,
                sequence: 0,
                list: 0,
            }),
            None => BTreeMap::new(),
        };
        let due = core::mem::replace(&mut self.pending, later);
        due.into_values().collect()
    }

    /// Naps on `clock` until the earliest item is due, then takes out every item due;
    /// empty at once when nothing is pending.
    pub fn wait(&mut self, clock: &dyn Clock) -> Vec<T> {
        match self.next_ns() {
            Some(at_ns) => {
                sleep_until(clock, at_ns);
                self.expired(clock.now_ns())
            }
            None => Vec::new(),
        }
    }
}
