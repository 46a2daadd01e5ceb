//! Split virtqueues (spec 2.7): a descriptor table, the available ring the driver fills
//! and the used ring the device fills, in one DMA block laid out as the legacy
//! interface requires (spec 2.7.2: used ring on the next 4096-byte boundary), which the
//! modern interface accepts too.

use alloc::vec;
use alloc::vec::Vec;

use rexo_api::DeviceError;
use rexo_devio::{Dma, Mmio, Platform, PortWindow, barrier};

/// Descriptor flag: the chain goes on at `next`.
pub const DESC_NEXT: u16 = 1;
/// Descriptor flag: the device writes the buffer (else it reads it).
pub const DESC_WRITE: u16 = 2;
/// Why [`Virtqueue::pop_used`] fails: the device's used index ran more than a ring
/// ahead, so the queue cannot be read on until the device is reset.
pub const USED_INDEX_OVERRUN: &str = "the used ring index ran past the ring (device fault)";
/// Used ring flag: the device asks not to be notified (it is polling the ring).
const USED_NO_NOTIFY: u16 = 1;
/// Available ring flag (`VIRTQ_AVAIL_F_NO_INTERRUPT`): the driver asks the device not to
/// interrupt it for used buffers (it is polling the ring; spec 2.7.7).
const AVAIL_NO_INTERRUPT: u16 = 1;

/// Bytes of one descriptor: `addr` u64, `len` u32, `flags` u16, `next` u16.
const DESC_SIZE: usize = 16;
/// The legacy interface's ring alignment (spec 2.7.2, "QUEUE_ALIGN").
const LEGACY_ALIGN: usize = 4096;
/// Offset of `idx` in either ring (after the u16 `flags`).
const RING_IDX: usize = 2;
/// Offset of `ring[0]` in either ring (after `flags` and `idx`).
const RING_ENTRIES: usize = 4;
/// Bytes of an available ring entry: a head's descriptor number, u16.
const AVAIL_ENTRY_BYTES: usize = 2;
/// Bytes of a used ring entry: `id` u32, `len` u32.
const USED_ENTRY_BYTES: usize = 8;
/// Offset of `len` in a used ring entry.
const USED_ENTRY_LEN: usize = 4;
/// Bytes of the u16 after either ring's entries (`used_event`, `avail_event`).
const RING_EVENT_BYTES: usize = 2;

/// Where the parts of a queue of some size lie in its DMA block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The available ring (`flags`, `idx`, `ring[size]`, `used_event`).
    pub avail: usize,
    /// The used ring (`flags`, `idx`, `ring[size]` of `id` u32 + `len` u32, `avail_event`).
    pub used: usize,
    /// Bytes of the whole block.
    pub total: usize,
}

impl Layout {
    /// The layout of a `size`-entry queue (descriptors at 0).
    pub fn new(size: u16) -> Self {
        let size = usize::from(size);
        let mut layout = Self {
            avail: DESC_SIZE * size,
            used: 0,
            total: 0,
        };
        // Each ring's `ring[size]`, one past its last entry, is its event field.
        layout.used = (layout.avail_entry(size) + RING_EVENT_BYTES).next_multiple_of(LEGACY_ALIGN);
        layout.total = layout.used_entry(size) + RING_EVENT_BYTES;
        layout
    }

    /// Offset of the available ring's `ring[slot]`.
    pub fn avail_entry(&self, slot: usize) -> usize {
        self.avail + RING_ENTRIES + AVAIL_ENTRY_BYTES * slot
    }

    /// Offset of the used ring's `ring[slot]` (its `id`; `len` follows).
    pub fn used_entry(&self, slot: usize) -> usize {
        self.used + RING_ENTRIES + USED_ENTRY_BYTES * slot
    }
}

/// Entries the device added to the used ring that the driver has not taken, or `None`
/// when the device's index is impossible (more than the ring holds).
pub fn used_pending(device_idx: u16, driver_next: u16, size: u16) -> Option<u16> {
    let pending = device_idx.wrapping_sub(driver_next);
    (pending <= size).then_some(pending)
}

/// How the driver tells the device a queue has new buffers.
#[derive(Clone, Debug)]
pub enum Doorbell {
    /// Modern: a 16-bit write of the queue number at `at` in the notification area.
    Mmio {
        /// The notification area.
        window: Mmio,
        /// This queue's register in it.
        at: usize,
        /// The queue number written.
        queue: u16,
    },
    /// Legacy: the queue number written to the notify port.
    Port {
        /// BAR 0.
        ports: PortWindow,
        /// The notify port's offset.
        at: u16,
        /// The queue number written.
        queue: u16,
    },
}

impl Doorbell {
    /// Rings it.
    fn ring(&self) {
        match self {
            Self::Mmio { window, at, queue } => window.write16(*at, *queue),
            Self::Port { ports, at, queue } => ports.write16(*at, *queue),
        }
    }
}

/// One finished chain from the used ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    /// The chain's head descriptor: one the driver pushed and the device had not
    /// returned before (so its buffers are the driver's again from here).
    pub id: u16,
    /// Bytes the device wrote into the chain.
    pub len: u32,
}

/// A split virtqueue. Descriptors are the caller's to assign (every driver here gives
/// each buffer fixed descriptors); the queue publishes heads and hands back used ones,
/// only those the device holds: a used entry naming any other head (a repeat, or one
/// outside the queue) is dropped, counted and warned of at powers of two.
pub struct Virtqueue {
    /// Descriptors and both rings.
    ring: Dma,
    /// Where the rings are in `ring`.
    layout: Layout,
    /// The queue's number on the device.
    index: u16,
    /// Entries (a power of two).
    size: u16,
    /// How to notify the device.
    doorbell: Doorbell,
    /// The available index after the heads pushed so far.
    avail_next: u16,
    /// The available index the device was last shown.
    avail_published: u16,
    /// The next used entry to take.
    used_next: u16,
    /// The device's used index as last read (re-read only when caught up with it).
    used_seen: u16,
    /// Used entries taken so far (free-running, never wraps): the position of the next.
    used_taken: u64,
    /// For each head the device holds (published, not returned), the first used-ring
    /// position that may return it: entries before it were written before the device
    /// could see the head (a repeat of its last use, say), so they cannot.
    held_from: Vec<Option<u64>>,
    /// The heads pushed since the last [`publish`](Self::publish), which stamps their
    /// `held_from`.
    unpublished: Vec<u16>,
    /// Used entries dropped for naming a head the device did not hold.
    stray_used: u64,
    /// Whether the available ring asks the device for no interrupts
    /// ([`stop_interrupts`](Self::stop_interrupts)).
    interrupts_stopped: bool,
}

impl Virtqueue {
    /// Queue `index` of `size` entries (a power of two) in fresh zeroed DMA memory from
    /// `platform`.
    pub fn new(
        platform: &'static dyn Platform,
        index: u16,
        size: u16,
        doorbell: Doorbell,
    ) -> Result<Self, DeviceError> {
        let layout = Layout::new(size);
        Ok(Self {
            ring: Dma::new(platform, layout.total)?,
            layout,
            index,
            size,
            doorbell,
            avail_next: 0,
            avail_published: 0,
            used_next: 0,
            used_seen: 0,
            used_taken: 0,
            held_from: vec![None; usize::from(size)],
            unpublished: Vec::with_capacity(usize::from(size)),
            stray_used: 0,
            interrupts_stopped: false,
        })
    }

    /// The memory of its descriptors and rings.
    pub fn memory_mut(&mut self) -> &mut Dma {
        &mut self.ring
    }

    /// Empties the queue as if new (zeroed rings, ring indices at 0, no head with the
    /// device), for a device that was reset and forgot it: only then, as the device may
    /// otherwise still read and write these rings. The caller writes its descriptors
    /// and gives the queue to the device again.
    pub fn restart(&mut self) {
        self.ring.bytes_mut(0, self.layout.total).fill(0);
        self.avail_next = 0;
        self.avail_published = 0;
        self.used_next = 0;
        self.used_seen = 0;
        self.held_from.fill(None);
        self.unpublished.clear();
        self.interrupts_stopped = false;
    }

    /// Chains the device returned so far (used entries taken for a head it held; stray
    /// entries not counted), over every restart: free-running, never wraps.
    pub fn returned(&self) -> u64 {
        self.used_taken - self.stray_used
    }

    /// Used entries dropped so far because they named a head the device did not hold
    /// (a repeat of one already returned, or a number outside the queue); for tests, as
    /// the count is otherwise only logged.
    #[cfg(test)]
    pub fn stray_used(&self) -> u64 {
        self.stray_used
    }

    /// The queue's number on the device.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// The ring slot of free-running ring index `index`.
    fn slot(&self, index: u16) -> usize {
        usize::from(index & (self.size - 1))
    }

    /// The device addresses of the descriptor table, available ring and used ring.
    pub fn addresses(&self) -> (u64, u64, u64) {
        let base = self.ring.phys();
        (
            base,
            base + self.layout.avail as u64,
            base + self.layout.used as u64,
        )
    }

    /// Writes descriptor `id` (below the size: the caller's own numbering).
    pub fn set_descriptor(&mut self, id: u16, address: u64, len: u32, flags: u16, next: u16) {
        let at = usize::from(id) * DESC_SIZE;
        self.ring.write64(at, address);
        self.ring.write32(at + 8, len);
        self.ring.write16(at + 12, flags);
        self.ring.write16(at + 14, next);
    }

    /// Changes the length of descriptor `id`.
    pub fn set_length(&mut self, id: u16, len: u32) {
        self.ring.write32(usize::from(id) * DESC_SIZE + 8, len);
    }

    /// Changes the flags and `next` of descriptor `id`.
    pub fn set_link(&mut self, id: u16, flags: u16, next: u16) {
        let at = usize::from(id) * DESC_SIZE;
        self.ring.write16(at + 12, flags);
        self.ring.write16(at + 14, next);
    }

    /// Puts the chain starting at `head` (below the size) in the available ring; the
    /// device sees it, and holds it, from the next [`publish`](Self::publish).
    pub fn push(&mut self, head: u16) {
        let entry = self.layout.avail_entry(self.slot(self.avail_next));
        self.ring.write16(entry, head);
        self.avail_next = self.avail_next.wrapping_add(1);
        self.unpublished.push(head);
    }

    /// Takes back the chains pushed since the last [`publish`](Self::publish), which the
    /// device never saw: the available index goes back to the one it was last shown.
    /// Their heads.
    pub fn withdraw_unpublished(&mut self) -> alloc::vec::Drain<'_, u16> {
        self.avail_next = self.avail_published;
        self.unpublished.drain(..)
    }

    /// Shows the device every chain pushed since the last call, and notifies it unless
    /// it said it is polling (one doorbell for the whole batch).
    pub fn publish(&mut self) {
        if self.avail_next == self.avail_published {
            return;
        }
        // The device holds the new heads from here; the used entries it wrote so far
        // (read before it can see them) cannot return them.
        let device_idx = self.ring.read16(self.layout.used + RING_IDX);
        let written = device_idx.wrapping_sub(self.used_next).min(self.size);
        let held_from = self.used_taken + u64::from(written);
        for head in self.unpublished.drain(..) {
            self.held_from[usize::from(head)] = Some(held_from);
        }
        // The descriptors and ring entries (and the buffers) before the index (and the
        // used index read before it).
        barrier();
        self.ring
            .write16(self.layout.avail + RING_IDX, self.avail_next);
        self.avail_published = self.avail_next;
        // The index store before the flags load (spec 2.7.10.1: check after publishing).
        barrier();
        if self.ring.read16(self.layout.used) & USED_NO_NOTIFY == 0 {
            self.doorbell.ring();
        }
    }

    /// Asks the device to send no interrupt for the chains it returns from here
    /// (`VIRTQ_AVAIL_F_NO_INTERRUPT`, spec 2.7.7: the driver is polling the ring). A plain
    /// store to the available ring, made only when the flag is not set already.
    pub fn stop_interrupts(&mut self) {
        if !self.interrupts_stopped {
            self.ring.write16(self.layout.avail, AVAIL_NO_INTERRUPT);
            self.interrupts_stopped = true;
        }
    }

    /// Asks the device to interrupt again for each chain it returns, then looks at the
    /// used ring: whether a chain is already there that was not taken. One the device
    /// returned while interrupts were stopped raised none, and nothing will: the caller
    /// wakes whoever waits itself. The flag's store comes before the used index's load
    /// (a full fence, as the specification's example of receiving used buffers has it);
    /// the device stores its used index before it loads the flags, so a chain the look
    /// does not see finds the flag clear and interrupts.
    pub fn resume_interrupts(&mut self) -> bool {
        if self.interrupts_stopped {
            self.ring.write16(self.layout.avail, 0);
            self.interrupts_stopped = false;
        }
        barrier();
        self.ring.read16(self.layout.used + RING_IDX) != self.used_next
    }

    /// Takes the next finished chain from the used ring, if any: only a head the device
    /// holds (published, not returned; an entry written before the head was published
    /// cannot return it). An entry naming any other (a repeat, or a number outside the
    /// queue) is dropped and counted (warned of at powers of two), and the next one is
    /// looked at. A used index more than a ring ahead means the device broke
    /// ([`DeviceError::Failed`]).
    // Inlined into its callers, with `next_used`: it runs on every poll, and under TCG
    // the return of a call costs a lookup (an empty virtio-net poll: 148 ns before the
    // ownership check, 175 ns with it out of line).
    #[inline(always)]
    pub fn pop_used(&mut self) -> Result<Option<Used>, DeviceError> {
        loop {
            let position = self.used_taken;
            let Some((id, len)) = self.next_used()? else {
                return Ok(None);
            };
            let held = usize::try_from(id)
                .ok()
                .and_then(|head| self.held_from.get_mut(head))
                .filter(|from| from.is_some_and(|from| position >= from));
            match held {
                Some(held) => {
                    *held = None;
                    // Below the size, which is a u16.
                    let id = id as u16;
                    return Ok(Some(Used { id, len }));
                }
                None => self.drop_stray(id),
            }
        }
    }

    /// Counts a used entry naming head `id`, which the device did not hold: dropped.
    /// Kept out of line: a device that repeats entries is rare.
    #[cold]
    #[inline(never)]
    fn drop_stray(&mut self, id: u32) {
        self.stray_used += 1;
        if self.stray_used.is_power_of_two() {
            log::warn!(
                "virtio: queue {}: used ring entry for head {id}, which the device does not \
                 hold (a repeat, or outside the {} entries), dropped; {} so far",
                self.index,
                self.size,
                self.stray_used
            );
        }
    }

    /// The next entry of the used ring, as (`id`, `len`), if the device added one.
    #[inline(always)]
    fn next_used(&mut self) -> Result<Option<(u32, u32)>, DeviceError> {
        if self.used_next == self.used_seen {
            let device_idx = self.ring.read16(self.layout.used + RING_IDX);
            if used_pending(device_idx, self.used_next, self.size).is_none() {
                // Nothing after this index can be trusted: the queue is unusable until
                // the device is reset and the queue restarted.
                return Err(DeviceError::Failed(USED_INDEX_OVERRUN));
            }
            self.used_seen = device_idx;
            if self.used_next == self.used_seen {
                return Ok(None);
            }
            // The index before the entries (and the data) it covers.
            barrier();
        }
        let entry = self.layout.used_entry(self.slot(self.used_next));
        let id = self.ring.read32(entry);
        let len = self.ring.read32(entry + USED_ENTRY_LEN);
        self.used_next = self.used_next.wrapping_add(1);
        self.used_taken += 1;
        Ok(Some((id, len)))
    }
}

/// The device's side of a queue, played by host tests: it takes the heads the driver
/// published and puts finished chains in the used ring.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct DeviceSide {
    /// The next available entry to take.
    next_avail: u16,
    /// The used index after the chains given back so far.
    used_idx: u16,
}

#[cfg(test)]
impl DeviceSide {
    /// The next head the driver published on `vq`, if any.
    pub(crate) fn take(&mut self, vq: &Virtqueue) -> Option<u16> {
        if vq.ring.read16(vq.layout.avail + RING_IDX) == self.next_avail {
            return None;
        }
        let entry = vq.layout.avail_entry(vq.slot(self.next_avail));
        self.next_avail = self.next_avail.wrapping_add(1);
        Some(vq.ring.read16(entry))
    }

    /// Whether the device would interrupt for a chain it returns on `vq` now (the
    /// available ring's flags do not say `NO_INTERRUPT`).
    pub(crate) fn would_interrupt(&self, vq: &Virtqueue) -> bool {
        vq.ring.read16(vq.layout.avail) & AVAIL_NO_INTERRUPT == 0
    }

    /// Gives chain `id` back to `vq` with `len` bytes written into it.
    pub(crate) fn give_back(&mut self, vq: &mut Virtqueue, id: u32, len: u32) {
        let entry = vq.layout.used_entry(vq.slot(self.used_idx));
        vq.ring.write32(entry, id);
        vq.ring.write32(entry + USED_ENTRY_LEN, len);
        self.used_idx = self.used_idx.wrapping_add(1);
        vq.ring.write16(vq.layout.used + RING_IDX, self.used_idx);
    }
}

/// The device's side of a queue's used ring, played by a host test from outside the
/// driver's borrow of the queue (a clock hook: a device that answers while the driver
/// waits).
#[cfg(test)]
pub(crate) struct UsedRingWriter {
    /// The device's view of the queue's memory.
    ring: Mmio,
    /// Where the rings are in it.
    layout: Layout,
    /// The queue's entries.
    size: u16,
    /// The used index after the chains given back so far.
    used_idx: core::sync::atomic::AtomicU16,
}

#[cfg(test)]
impl UsedRingWriter {
    /// Gives chain `id` back with `len` bytes written into it.
    pub(crate) fn give_back(&self, id: u32, len: u32) {
        use core::sync::atomic::Ordering;
        let index = self.used_idx.fetch_add(1, Ordering::Relaxed);
        let entry = self.layout.used_entry(usize::from(index % self.size));
        self.ring.write32(entry, id);
        self.ring.write32(entry + USED_ENTRY_LEN, len);
        self.ring
            .write16(self.layout.used + RING_IDX, index.wrapping_add(1));
    }
}

#[cfg(test)]
impl Virtqueue {
    /// The device's side of this queue's used ring, its memory from `platform`, from
    /// used index 0.
    pub(crate) fn used_ring_writer(
        &self,
        platform: &rexo_devio::host::HostPlatform,
    ) -> UsedRingWriter {
        UsedRingWriter {
            ring: platform.device_view(&self.ring),
            layout: self.layout,
            size: self.size,
            used_idx: core::sync::atomic::AtomicU16::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_legacy_formula() {
        // Spec 2.7.2: used at ALIGN(16 * size + 6 + 2 * size, 4096).
        assert_eq!(
            Layout::new(256),
            Layout {
                avail: 4096,
                used: 8192,
                total: 8192 + 6 + 2048
            }
        );
        assert_eq!(Layout::new(128).used, 4096);
        assert_eq!(Layout::new(1024).used, 16384 + 4096);
    }

    /// A queue of `size` entries over host memory, and the device's side of it.
    fn queue_on_host(size: u16) -> (Virtqueue, DeviceSide) {
        let doorbell = Doorbell::Mmio {
            window: rexo_devio::host::registers(4),
            at: 0,
            queue: 0,
        };
        let platform = rexo_devio::host::HostPlatform::leaked();
        let vq = Virtqueue::new(platform, 0, size, doorbell).unwrap();
        (vq, DeviceSide::default())
    }

    /// Pushes and publishes `head` on `vq`, and has the device take it.
    fn post(vq: &mut Virtqueue, device: &mut DeviceSide, head: u16) {
        vq.push(head);
        vq.publish();
        assert_eq!(device.take(vq), Some(head));
    }

    #[test]
    fn only_heads_the_device_holds_come_back() {
        let (mut vq, mut device) = queue_on_host(8);
        vq.push(0);
        vq.push(4);
        vq.publish();
        assert_eq!(device.take(&vq), Some(0));
        assert_eq!(device.take(&vq), Some(4));
        // Head 0 twice, head 2 never pushed, 8 and 0x1_0000 outside the queue, then 4.
        for id in [0, 0, 2, 8, 0x1_0000, 4] {
            device.give_back(&mut vq, id, 7);
        }
        assert_eq!(vq.pop_used(), Ok(Some(Used { id: 0, len: 7 })));
        assert_eq!(vq.pop_used(), Ok(Some(Used { id: 4, len: 7 })));
        assert_eq!(vq.pop_used(), Ok(None));
        assert_eq!(vq.stray_used(), 4);
        // Pushed again, head 0 is the device's again.
        post(&mut vq, &mut device, 0);
        device.give_back(&mut vq, 0, 1);
        assert_eq!(vq.pop_used(), Ok(Some(Used { id: 0, len: 1 })));
        assert_eq!(vq.stray_used(), 4);
    }

    #[test]
    fn a_repeat_written_before_its_head_was_posted_again_is_dropped() {
        let (mut vq, mut device) = queue_on_host(4);
        post(&mut vq, &mut device, 1);
        device.give_back(&mut vq, 1, 10);
        device.give_back(&mut vq, 1, 10);
        // The driver takes one entry and posts the buffer again before it reads the
        // next: the repeat was written before the device could see the new post.
        assert_eq!(vq.pop_used(), Ok(Some(Used { id: 1, len: 10 })));
        vq.push(1);
        vq.publish();
        assert_eq!(vq.pop_used(), Ok(None));
        assert_eq!(vq.stray_used(), 1);
        // The device's answer to the new post comes back.
        assert_eq!(device.take(&vq), Some(1));
        device.give_back(&mut vq, 1, 20);
        assert_eq!(vq.pop_used(), Ok(Some(Used { id: 1, len: 20 })));
    }

    #[test]
    fn a_restarted_queue_is_empty_and_holds_nothing() {
        let (mut vq, mut device) = queue_on_host(8);
        post(&mut vq, &mut device, 3);
        vq.restart();
        // A device reset loses what it held: a late return of head 3 is a stranger's.
        let mut device = DeviceSide::default();
        assert_eq!(
            device.take(&vq),
            None,
            "the available ring starts again at 0"
        );
        device.give_back(&mut vq, 3, 0);
        assert_eq!(vq.pop_used(), Ok(None));
        assert_eq!(vq.stray_used(), 1);
        post(&mut vq, &mut device, 5);
    }

    #[test]
    fn used_index_arithmetic_wraps_and_refuses_the_impossible() {
        assert_eq!(used_pending(5, 3, 256), Some(2));
        assert_eq!(used_pending(2, 65534, 256), Some(4));
        assert_eq!(used_pending(3, 3, 256), Some(0));
        assert_eq!(used_pending(300, 3, 256), None);
        assert_eq!(used_pending(2, 3, 256), None);
    }
}
