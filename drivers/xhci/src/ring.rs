//! TRB rings (xHCI 4.9): producer rings (command and transfer rings) that end in a
//! Link TRB back to their start, and the consumer side of the event ring. Ownership of
//! each TRB is its cycle bit: the producer writes its current cycle state, the
//! consumer takes entries whose cycle bit matches its own, and both flip their state
//! at the wrap.

use rexo_devio::Dma;

use crate::spec::{Trb, trb};

/// Where a producer writes next on a ring of `entries` TRBs whose last is a Link TRB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Producer {
    /// The next entry to fill.
    next: usize,
    /// The cycle state written into it.
    cycle: bool,
    /// Entries, the link included.
    entries: usize,
}

/// One entry a producer hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The entry.
    pub index: usize,
    /// The cycle bit to write into it.
    pub cycle: bool,
    /// When this entry is the last before the link: the cycle bit that hands the Link
    /// TRB to the controller (written after the entry).
    pub link_cycle: Option<bool>,
}

impl Producer {
    /// A fresh ring: entry 0, cycle state 1 (xHCI 4.9.2: rings start with CCS = 1 on
    /// zeroed memory, so nothing is owned by the controller yet).
    pub fn new(entries: usize) -> Self {
        assert!(entries >= 2, "a ring needs an entry besides its link");
        Self {
            next: 0,
            cycle: true,
            entries,
        }
    }

    /// The next entry, and the ring's wrap when it is the last before the link.
    pub fn claim(&mut self) -> Claim {
        let mut claim = Claim {
            index: self.next,
            cycle: self.cycle,
            link_cycle: None,
        };
        self.next += 1;
        if self.next == self.entries - 1 {
            claim.link_cycle = Some(self.cycle);
            self.next = 0;
            self.cycle = !self.cycle;
        }
        claim
    }

    /// The entry written next and its cycle state (a Set TR Dequeue Pointer target).
    pub fn position(&self) -> (usize, bool) {
        (self.next, self.cycle)
    }
}

/// Where a consumer reads next on a ring of `entries` TRBs (the event ring: no link,
/// the segment table gives its size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// The next entry to look at.
    next: usize,
    /// The cycle bit that marks it written.
    cycle: bool,
    /// Entries.
    entries: usize,
}

impl Consumer {
    /// A fresh ring: entry 0, cycle state 1 (xHCI 4.9.4).
    pub fn new(entries: usize) -> Self {
        Self {
            next: 0,
            cycle: true,
            entries,
        }
    }

    /// Whether a TRB with control dword `control` at the next entry is a new one.
    pub fn is_new(&self, control: u32) -> bool {
        (control & trb::CYCLE != 0) == self.cycle
    }

    /// The next entry.
    pub fn next(&self) -> usize {
        self.next
    }

    /// Moves past the next entry, flipping the cycle state at the wrap.
    pub fn advance(&mut self) {
        self.next += 1;
        if self.next == self.entries {
            self.next = 0;
            self.cycle = !self.cycle;
        }
    }
}

/// Writes `trb` into entry `index` of `memory` with cycle bit `cycle`; the control
/// dword goes last, so the controller never sees a half-written TRB as its own.
fn write_trb(memory: &mut Dma, index: usize, trb: Trb, cycle: bool) {
    let at = index * trb::SIZE;
    memory.write64(at, trb.parameter);
    memory.write32(at + 8, trb.status);
    memory.write32(at + 12, (trb.control & !trb::CYCLE) | u32::from(cycle));
}

/// A command or transfer ring in DMA memory.
pub struct ProducerRing {
    /// The TRBs, the last a Link TRB to the first.
    memory: Dma,
    /// The next entry.
    producer: Producer,
    /// Entries, the link included.
    entries: usize,
}

impl ProducerRing {
    /// A ring of `entries` TRBs (the link included) in `memory` (zeroed).
    pub fn new(mut memory: Dma, entries: usize) -> Self {
        assert!(
            entries * trb::SIZE <= memory.len(),
            "the ring fits its memory"
        );
        let link = Trb::link(memory.phys());
        // Cycle 0: the controller stops before it until the producer gets there.
        write_trb(&mut memory, entries - 1, link, false);
        Self {
            memory,
            producer: Producer::new(entries),
            entries,
        }
    }

    /// The ring's address (for the controller's dequeue pointer).
    pub fn phys(&self) -> u64 {
        self.memory.phys()
    }

    /// The ring's memory.
    pub fn memory_mut(&mut self) -> &mut Dma {
        &mut self.memory
    }

    /// The ring's memory, the ring given up.
    pub fn into_memory(self) -> Dma {
        self.memory
    }

    /// The entry the next [`push`](Self::push) fills.
    pub fn next_index(&self) -> usize {
        self.producer.position().0
    }

    /// Queues `trb` (the caller rings the doorbell); returns its entry.
    pub fn push(&mut self, trb: Trb) -> usize {
        let claim = self.producer.claim();
        write_trb(&mut self.memory, claim.index, trb, claim.cycle);
        if let Some(cycle) = claim.link_cycle {
            let link = Trb::link(self.memory.phys());
            write_trb(&mut self.memory, self.entries - 1, link, cycle);
        }
        claim.index
    }

    /// Rewrites entry `index`, pushed but not fetched by the controller (its ring
    /// stopped), as `trb`, keeping the cycle bit that hands it to the controller.
    pub fn overwrite(&mut self, index: usize, trb: Trb) {
        let cycle = self.memory.read32(index * trb::SIZE + 12) & trb::CYCLE != 0;
        write_trb(&mut self.memory, index, trb, cycle);
    }

    /// The address of entry `index`.
    pub fn address_of(&self, index: usize) -> u64 {
        self.memory.phys() + (index * trb::SIZE) as u64
    }

    /// The entry at device address `pointer`, if it is one of this ring's TRBs (not its
    /// link).
    pub fn entry_at(&self, pointer: u64) -> Option<usize> {
        entry_index(self.memory.phys(), self.entries, pointer)
    }

    /// Where the producer writes next, and its cycle state.
    pub fn enqueue(&self) -> (u64, bool) {
        let (index, cycle) = self.producer.position();
        (self.address_of(index), cycle)
    }
}

/// The entry of a ring at `base` with `entries` TRBs (the last a link) that device
/// address `pointer` names: aligned and inside, the link excluded.
pub fn entry_index(base: u64, entries: usize, pointer: u64) -> Option<usize> {
    let offset = pointer.checked_sub(base)?;
    let index = usize::try_from(offset / trb::SIZE as u64).ok()?;
    (offset.is_multiple_of(trb::SIZE as u64) && index < entries - 1).then_some(index)
}

/// The entries of a transfer ring the controller holds: pushed, their completion not
/// seen yet. A ring's TRBs complete in order, so they are a run from the oldest; a
/// completion for any other entry (a repeat of one already seen, or one never pushed)
/// is no completion of the driver's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The oldest entry held.
    oldest: usize,
    /// Entries held, from `oldest` on.
    count: usize,
    /// Entries the producer hands out (the link excluded).
    usable: usize,
}

impl InFlight {
    /// None held on a fresh ring of `entries` TRBs (the link included).
    pub fn new(entries: usize) -> Self {
        Self {
            oldest: 0,
            count: 0,
            usable: entries - 1,
        }
    }

    /// Entries held.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The producer pushed the entry after the newest held.
    pub fn pushed(&mut self) {
        assert!(self.count < self.usable, "a ring holds at most its entries");
        self.count += 1;
    }

    /// Takes the completion of entry `index`: when it is held, it and the entries
    /// before it are done (true); otherwise nothing changes (false).
    pub fn complete(&mut self, index: usize) -> bool {
        let age = (index + self.usable - self.oldest) % self.usable;
        if index >= self.usable || age >= self.count {
            return false;
        }
        self.oldest = (index + 1) % self.usable;
        self.count -= age + 1;
        true
    }

    /// The controller gave up every entry held (its dequeue pointer was moved to the
    /// producer's).
    pub fn abandon(&mut self) {
        self.oldest = (self.oldest + self.count) % self.usable;
        self.count = 0;
    }
}

/// The event ring: one segment the controller fills.
pub struct EventRing {
    /// The TRBs.
    memory: Dma,
    /// The next entry to read.
    consumer: Consumer,
}

impl EventRing {
    /// An event ring of `entries` TRBs in `memory` (zeroed).
    pub fn new(memory: Dma, entries: usize) -> Self {
        assert!(
            entries * trb::SIZE <= memory.len(),
            "the ring fits its memory"
        );
        Self {
            memory,
            consumer: Consumer::new(entries),
        }
    }

    /// The segment's address.
    pub fn phys(&self) -> u64 {
        self.memory.phys()
    }

    /// The segment's memory.
    pub fn memory_mut(&mut self) -> &mut Dma {
        &mut self.memory
    }

    /// The next event, if the controller wrote it (read from memory, no register access).
    pub fn peek(&self) -> Option<Trb> {
        let at = self.consumer.next() * trb::SIZE;
        // The control dword (with the cycle bit) first: x86 does not reorder loads, and
        // the accesses are volatile, so the rest is at least as new.
        let control = self.memory.read32(at + 12);
        self.consumer.is_new(control).then(|| Trb {
            parameter: self.memory.read64(at),
            status: self.memory.read32(at + 8),
            control,
        })
    }

    /// Moves past the event [`peek`](Self::peek) returned.
    pub fn pop(&mut self) {
        self.consumer.advance();
    }

    /// The address of the next entry (for ERDP).
    pub fn dequeue_pointer(&self) -> u64 {
        self.memory.phys() + (self.consumer.next() * trb::SIZE) as u64
    }
}

/// The controller's side of the event ring, for the host tests.
#[cfg(test)]
impl EventRing {
    /// The ring's memory, for a test playing the controller from a hook.
    pub fn memory(&self) -> &Dma {
        &self.memory
    }

    /// Writes `event` into entry `index` as the controller would, its cycle bit as
    /// given.
    pub fn post(&mut self, index: usize, event: Trb) {
        let at = index * trb::SIZE;
        self.memory.write64(at, event.parameter);
        self.memory.write32(at + 8, event.status);
        self.memory.write32(at + 12, event.control);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_wraps_before_the_link_and_flips_its_cycle() {
        let mut producer = Producer::new(4);
        let claims: Vec<Claim> = (0..4).map(|_| producer.claim()).collect();
        assert_eq!(
            claims,
            [
                Claim {
                    index: 0,
                    cycle: true,
                    link_cycle: None
                },
                Claim {
                    index: 1,
                    cycle: true,
                    link_cycle: None
                },
                Claim {
                    index: 2,
                    cycle: true,
                    link_cycle: Some(true)
                },
                Claim {
                    index: 0,
                    cycle: false,
                    link_cycle: None
                },
            ]
        );
        assert_eq!(producer.position(), (1, false));
        producer.claim();
        assert_eq!(producer.claim().link_cycle, Some(false));
        assert_eq!(producer.position(), (0, true));
    }

    #[test]
    fn the_consumer_takes_entries_of_its_cycle_and_flips_at_the_end() {
        let mut consumer = Consumer::new(2);
        assert!(consumer.is_new(trb::CYCLE) && !consumer.is_new(0));
        consumer.advance();
        assert_eq!(consumer.next(), 1);
        consumer.advance();
        assert_eq!(consumer.next(), 0);
        assert!(consumer.is_new(0) && !consumer.is_new(trb::CYCLE));
    }

    #[test]
    fn only_entries_in_flight_complete_and_each_only_once() {
        let mut in_flight = InFlight::new(4);
        for _ in 0..3 {
            in_flight.pushed();
        }
        assert!(in_flight.complete(0));
        assert!(!in_flight.complete(0), "a repeat");
        assert_eq!(in_flight.count(), 2);
        in_flight.pushed(); // entry 0 again, after the wrap
        assert!(in_flight.complete(2), "entries 1 and 2 done");
        assert_eq!(in_flight.count(), 1);
        assert!(!in_flight.complete(1) && !in_flight.complete(2) && !in_flight.complete(3));
        assert!(in_flight.complete(0));
        assert_eq!(in_flight.count(), 0);
        assert!(!in_flight.complete(0), "nothing in flight");
        in_flight.pushed();
        in_flight.pushed();
        in_flight.abandon();
        assert_eq!(in_flight.count(), 0);
        assert!(!in_flight.complete(1) && !in_flight.complete(2));
        in_flight.pushed(); // entry 0
        assert!(!in_flight.complete(2) && in_flight.complete(0));
    }

    #[test]
    fn an_overwritten_entry_keeps_the_cycle_bit_it_was_pushed_with() {
        let platform = rexo_devio::host::HostPlatform::leaked();
        let mut ring = ProducerRing::new(Dma::new(platform, 4 * trb::SIZE).unwrap(), 4);
        // Entries 0-2 on the first pass (cycle 1), entry 0 again on the second (0).
        for _ in 0..4 {
            ring.push(Trb::enable_slot());
        }
        for (index, cycle) in [(0, 0), (1, trb::CYCLE)] {
            ring.overwrite(index, Trb::no_op_command());
            let control = ring.memory_mut().read32(index * trb::SIZE + 12);
            assert_eq!(control, Trb::no_op_command().control | cycle);
        }
    }

    #[test]
    fn device_pointers_are_checked_against_the_ring() {
        assert_eq!(entry_index(0x1000, 64, 0x1000), Some(0));
        assert_eq!(entry_index(0x1000, 64, 0x1010), Some(1));
        assert_eq!(entry_index(0x1000, 64, 0x1000 + 62 * 16), Some(62));
        assert_eq!(entry_index(0x1000, 64, 0x1000 + 63 * 16), None, "the link");
        assert_eq!(entry_index(0x1000, 64, 0x1008), None, "misaligned");
        assert_eq!(entry_index(0x1000, 64, 0xFF0), None, "before");
        assert_eq!(entry_index(0x1000, 64, u64::MAX), None);
    }
}
