//! A submission/completion queue pair in DMA memory: entries written at the tail,
//! completions found by their phase tag (NVMe Base 4.1, 4.6).

use alloc::vec::Vec;

use rexo_api::DeviceError;
use rexo_devio::{Dma, Mmio, Platform, barrier};

use crate::spec::{self, CQ_ENTRY, Command, Completion, SQ_ENTRY};

/// One queue pair: the submission queue the driver fills and the completion queue the
/// controller fills, with their doorbells.
pub struct QueuePair {
    /// The queue identifier (0 is the admin pair).
    pub id: u16,
    /// Entries in each of the two queues.
    pub entries: u32,
    /// The submission queue.
    submission: Dma,
    /// The completion queue.
    completion: Dma,
    /// Where the next command goes.
    tail: u32,
    /// The tail the controller was last told (doorbells are written in batches).
    rung_tail: u32,
    /// Where the next completion comes.
    head: u32,
    /// The head the controller was last told.
    released_head: u32,
    /// The phase tag of new completions (flips at each wrap; the zeroed queue starts at 1).
    phase: bool,
    /// The controller's registers.
    registers: Mmio,
    /// The submission queue tail doorbell's offset.
    tail_doorbell: usize,
    /// The completion queue head doorbell's offset.
    head_doorbell: usize,
}

impl QueuePair {
    /// A pair of `entries`-entry queues numbered `id` in fresh DMA memory from
    /// `platform`; `stride` is the doorbell stride (CAP.DSTRD).
    pub fn new(
        platform: &'static dyn Platform,
        registers: Mmio,
        id: u16,
        entries: u32,
        stride: usize,
    ) -> Result<Self, DeviceError> {
        let slots = entries as usize;
        Ok(Self {
            id,
            entries,
            submission: Dma::new(platform, slots * SQ_ENTRY)?,
            completion: Dma::new(platform, slots * CQ_ENTRY)?,
            tail: 0,
            rung_tail: 0,
            head: 0,
            released_head: 0,
            phase: true,
            registers,
            tail_doorbell: spec::doorbell(id, false, stride),
            head_doorbell: spec::doorbell(id, true, stride),
        })
    }

    /// Both queues' memory.
    pub fn memory_mut(&mut self) -> [&mut Dma; 2] {
        [&mut self.submission, &mut self.completion]
    }

    /// Starts the pair over, as the controller does at a reset (which deletes the I/O
    /// queues and empties the admin ones): both queues empty, the completion queue
    /// zeroed so that no entry of before the reset carries the phase tag of new ones.
    /// Only once the controller is disabled (CSTS.RDY 0): it writes the completion
    /// queue until then.
    pub fn restart(&mut self) {
        let len = self.completion.len();
        self.completion.bytes_mut(0, len).fill(0);
        self.tail = 0;
        self.rung_tail = 0;
        self.head = 0;
        self.released_head = 0;
        self.phase = true;
    }

    /// The submission queue's address.
    pub fn submission_base(&self) -> u64 {
        self.submission.phys()
    }

    /// The completion queue's address.
    pub fn completion_base(&self) -> u64 {
        self.completion.phys()
    }

    /// Writes `command` at the tail. The caller keeps fewer commands outstanding than
    /// entries (so the tail never catches the controller's head); the controller sees
    /// the command at the next [`ring`](Self::ring).
    pub fn push(&mut self, command: &Command) {
        let at = self.tail as usize * SQ_ENTRY;
        for (i, pair) in command.0.chunks_exact(2).enumerate() {
            let value = u64::from(pair[0]) | (u64::from(pair[1]) << 32);
            self.submission.write64(at + 8 * i, value);
        }
        self.tail = (self.tail + 1) % self.entries;
    }

    /// Tells the controller about the commands pushed since the last ring (one doorbell
    /// write for all of them); nothing when there are none.
    pub fn ring(&mut self) {
        if self.tail != self.rung_tail {
            // The entries must be in memory before the controller hears of them.
            barrier();
            self.registers.write32(self.tail_doorbell, self.tail);
            self.rung_tail = self.tail;
        }
    }

    /// The command identifiers of the commands pushed since the last
    /// [`ring`](Self::ring), which the controller has not been told of, oldest first.
    pub fn unrung_ids(&self) -> impl Iterator<Item = u16> + '_ {
        let unrung = (self.tail + self.entries - self.rung_tail) % self.entries;
        (0..unrung).map(move |offset| {
            let at = (self.rung_tail + offset) % self.entries;
            // Command dword 0 holds the identifier in its upper half.
            (self.submission.read32(at as usize * SQ_ENTRY) >> 16) as u16
        })
    }

    /// Takes back the commands pushed since the last [`ring`](Self::ring), which the
    /// controller was never told of: the tail goes back to the one it was last told.
    /// Their command identifiers, oldest first.
    pub fn withdraw_unrung(&mut self) -> Vec<u16> {
        let ids = self.unrung_ids().collect();
        self.tail = self.rung_tail;
        ids
    }

    /// The next new completion and its dword 0, taken off the queue, or `None` when the
    /// controller has posted none. Call [`release`](Self::release) after a batch.
    pub fn take(&mut self) -> Option<(Completion, u32)> {
        let at = self.head as usize * CQ_ENTRY;
        let dw3 = self.completion.read32(at + 12);
        if (dw3 & spec::CQ_PHASE != 0) != self.phase {
            return None;
        }
        // The rest of the entry is read after its phase tag (x86 keeps loads in order;
        // the fence keeps the compiler from hoisting them).
        barrier();
        let completion = Completion::decode(self.completion.read32(at + 8), dw3);
        let dw0 = self.completion.read32(at);
        self.head += 1;
        if self.head == self.entries {
            self.head = 0;
            self.phase = !self.phase;
        }
        Some((completion, dw0))
    }

    /// Tells the controller the completions taken so far are consumed (one doorbell
    /// write per batch); nothing when none were taken.
    pub fn release(&mut self) {
        if self.head != self.released_head {
            self.registers.write32(self.head_doorbell, self.head);
            self.released_head = self.head;
        }
    }
}

/// The controller's half of a queue pair, for the host tests: takes the commands the
/// driver rang in and posts their completions with the phase tag.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct ControllerSide {
    /// The next submission queue entry to take.
    submission_head: u32,
    /// Where the next completion goes.
    completion_tail: u32,
    /// Whether the completion queue wrapped an odd number of times (new entries then
    /// carry phase 0).
    odd_pass: bool,
}

#[cfg(test)]
impl ControllerSide {
    /// The next command the driver rang in on `pair`, if any.
    pub(crate) fn take_command(&mut self, pair: &QueuePair) -> Option<Command> {
        if self.submission_head == pair.registers.read32(pair.tail_doorbell) {
            return None;
        }
        let at = self.submission_head as usize * SQ_ENTRY;
        let mut dwords = [0; 16];
        for (i, dword) in dwords.iter_mut().enumerate() {
            *dword = pair.submission.read32(at + 4 * i);
        }
        self.submission_head = (self.submission_head + 1) % pair.entries;
        Some(Command(dwords))
    }

    /// Posts a completion of command `id` with status `status` on `pair`.
    pub(crate) fn complete(&mut self, pair: &mut QueuePair, id: u16, status: u16) {
        let queue = pair.id;
        self.complete_naming(pair, queue, id, status);
    }

    /// Posts a completion of command `id` with status `status` on `pair`, naming
    /// submission queue `queue` (a broken controller's may name another).
    pub(crate) fn complete_naming(
        &mut self,
        pair: &mut QueuePair,
        queue: u16,
        id: u16,
        status: u16,
    ) {
        let at = self.completion_tail as usize * CQ_ENTRY;
        let phase = if self.odd_pass { 0 } else { spec::CQ_PHASE };
        pair.completion.write32(at, 0);
        pair.completion
            .write32(at + 8, self.submission_head | (u32::from(queue) << 16));
        pair.completion
            .write32(at + 12, u32::from(id) | phase | (u32::from(status) << 17));
        self.completion_tail += 1;
        if self.completion_tail == pair.entries {
            self.completion_tail = 0;
            self.odd_pass = !self.odd_pass;
        }
    }
}
