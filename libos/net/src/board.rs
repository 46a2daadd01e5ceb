//! A board the stacks of one interface's queue pairs ([`crate::attach_cores`]) post
//! frames on for each other: the ARP frames each receives and the ICMP errors about
//! another stack's connections (`cores.rs`), and the DHCP server's answers for the
//! stack that keeps the lease (`lease.rs`).

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// The last `KEPT` frames (of type `F`) the stacks of one interface posted, numbered
/// from 1: a stack that takes less often than `KEPT` arrive misses the older ones. Off
/// the fast path: a stack looks at the count (one atomic load) on each take, and takes
/// the lock only when something was posted since its last.
pub(crate) struct Board<F, const KEPT: usize> {
    /// How many frames were ever posted.
    posted: AtomicU64,
    /// The last `KEPT`: number, poster's pair, frame.
    frames: spin::Mutex<VecDeque<(u64, usize, F)>>,
}

impl<F, const KEPT: usize> Default for Board<F, KEPT> {
    fn default() -> Self {
        Self {
            posted: AtomicU64::new(0),
            frames: spin::Mutex::new(VecDeque::new()),
        }
    }
}

/// A stack's place on a [`Board`]: its queue pair, and the number of the last frame it
/// took.
pub(crate) struct Seat<F, const KEPT: usize> {
    /// The board.
    board: Arc<Board<F, KEPT>>,
    /// The stack's queue pair.
    pair: usize,
    /// The number of the last frame taken.
    seen: u64,
    /// Frames it posted numbered past `seen`, which it does not take.
    own_unseen: u64,
}

impl<F: Clone, const KEPT: usize> Seat<F, KEPT> {
    /// The place of the stack of queue pair `pair` on `board`.
    pub(crate) fn new(board: Arc<Board<F, KEPT>>, pair: usize) -> Self {
        Self {
            board,
            pair,
            seen: 0,
            own_unseen: 0,
        }
    }

    /// Posts `frame` for the other stacks (the oldest goes when `KEPT` are held).
    pub(crate) fn post(&mut self, frame: F) {
        let mut frames = self.board.frames.lock();
        let number = self.board.posted.load(Ordering::Relaxed) + 1;
        if frames.len() == KEPT {
            frames.pop_front();
        }
        frames.push_back((number, self.pair, frame));
        self.board.posted.store(number, Ordering::Release);
        // Its own frame needs no second look.
        if self.seen + 1 == number {
            self.seen = number;
        } else {
            self.own_unseen += 1;
        }
    }

    /// Hands `take` every frame the other stacks posted since the last call, oldest
    /// first, after letting the board go; returns how many of theirs it missed, pushed
    /// out by later ones before this call.
    pub(crate) fn take(&mut self, take: impl FnMut(F)) -> u64 {
        if self.board.posted.load(Ordering::Acquire) == self.seen {
            return 0;
        }
        let (new, missed) = {
            let frames = self.board.frames.lock();
            let new: Vec<F> = frames
                .iter()
                .filter(|(number, pair, _)| *number > self.seen && *pair != self.pair)
                .map(|(.., frame)| frame.clone())
                .collect();
            let last = frames.back().map_or(self.seen, |(number, ..)| *number);
            let missed = (last - self.seen).saturating_sub(self.own_unseen + new.len() as u64);
            (self.seen, self.own_unseen) = (last, 0);
            (new, missed)
        };
        new.into_iter().for_each(take);
        missed
    }
}
