//! Split virtqueues (spec 2.7): a descriptor table, the available ring the driver fills
//! and the used ring the device fills, in one DMA block laid out as the legacy
//! interface requires (spec 2.7.2: used ring on the next 4096-byte boundary), which the
//! modern interface accepts too.

use rexo_api::DeviceError;
use rexo_devio::{Dma, Mmio, Platform, PortWindow, barrier};

/// Descriptor flag: the chain goes on at `next`.
pub const DESC_NEXT: u16 = 1;
/// Descriptor flag: the device writes the buffer (else it reads it).
pub const DESC_WRITE: u16 = 2;
/// Used ring flag: the device asks not to be notified (it is polling the ring).
const USED_NO_NOTIFY: u16 = 1;

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
    /// The chain's head descriptor.
    pub id: u16,
    /// Bytes the device wrote into the chain.
    pub len: u32,
}

/// A split virtqueue. Descriptors are the caller's to assign (every driver here gives
/// each buffer fixed descriptors); the queue publishes heads and hands back used ones.
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
        })
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

    /// Puts the chain starting at `head` in the available ring; the device sees it at
    /// the next [`publish`](Self::publish).
    pub fn push(&mut self, head: u16) {
        let entry = self.layout.avail_entry(self.slot(self.avail_next));
        self.ring.write16(entry, head);
        self.avail_next = self.avail_next.wrapping_add(1);
    }

    /// Shows the device every chain pushed since the last call, and notifies it unless
    /// it said it is polling (one doorbell for the whole batch).
    pub fn publish(&mut self) {
        if self.avail_next == self.avail_published {
            return;
        }
        // The descriptors and ring entries (and the buffers) before the index.
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

    /// Takes the next finished chain from the used ring, if any. A head outside the
    /// queue is refused ([`DeviceError::BadIndex`]; the entry is skipped); a used index
    /// more than a ring ahead means the device broke ([`DeviceError::Failed`]).
    pub fn pop_used(&mut self) -> Result<Option<Used>, DeviceError> {
        if self.used_next == self.used_seen {
            let device_idx = self.ring.read16(self.layout.used + RING_IDX);
            if used_pending(device_idx, self.used_next, self.size).is_none() {
                // Nothing after this index can be trusted: the queue is unusable.
                return Err(DeviceError::Failed(
                    "the used ring index ran past the ring (device fault)",
                ));
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
        match u16::try_from(id) {
            Ok(id) if id < self.size => Ok(Some(Used { id, len })),
            _ => Err(DeviceError::BadIndex {
                what: "used ring",
                index: id,
                size: u32::from(self.size),
            }),
        }
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

    /// Gives chain `id` back to `vq` with `len` bytes written into it.
    pub(crate) fn give_back(&mut self, vq: &mut Virtqueue, id: u32, len: u32) {
        let entry = vq.layout.used_entry(vq.slot(self.used_idx));
        vq.ring.write32(entry, id);
        vq.ring.write32(entry + USED_ENTRY_LEN, len);
        self.used_idx = self.used_idx.wrapping_add(1);
        vq.ring.write16(vq.layout.used + RING_IDX, self.used_idx);
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

    #[test]
    fn used_index_arithmetic_wraps_and_refuses_the_impossible() {
        assert_eq!(used_pending(5, 3, 256), Some(2));
        assert_eq!(used_pending(2, 65534, 256), Some(4));
        assert_eq!(used_pending(3, 3, 256), Some(0));
        assert_eq!(used_pending(300, 3, 256), None);
        assert_eq!(used_pending(2, 3, 256), None);
    }
}
