//! MSI-X: a device's vector table (in one of its memory BARs), each entry a message the
//! device writes to raise an interrupt. Rexo points entries at a core's wake vector, so a
//! device can wake a core halted in `sleep_ns` when there is work (polled drivers that
//! let idle cores sleep).

use alloc::vec;
use alloc::vec::Vec;

use rexo_api::DeviceError;

use crate::{Mmio, Platform};

/// Bytes per table entry: message address (low, high), data, vector control.
pub(crate) const ENTRY: usize = 16;
/// The vector control word's mask bit.
const MASKED: u32 = 1;

/// A function's MSI-X vector table, enabled, every entry masked until pointed at a core.
/// Only this writes the table, so it remembers what each entry holds and writes an
/// entry only where that changes: an arm for the core an entry already names just
/// unmasks it (one register write, not five), or writes nothing if it is unmasked.
pub struct MsixTable {
    /// The table's registers.
    table: Mmio,
    /// Entries.
    size: u16,
    /// The kernel (which message wakes which core).
    platform: &'static dyn Platform,
    /// What each entry holds, as last written.
    written: spin::Mutex<Vec<Written>>,
}

/// What one table entry holds, as last written.
#[derive(Clone, Copy)]
struct Written {
    /// Its message (address, data), once one was written.
    message: Option<(u64, u32)>,
    /// Whether its vector control word masks it.
    masked: bool,
}

impl MsixTable {
    /// The table in `table` (already checked to hold `size` entries), every entry masked.
    pub(crate) fn new(table: Mmio, size: u16, platform: &'static dyn Platform) -> Self {
        for entry in 0..size {
            table.write32(usize::from(entry) * ENTRY + 12, MASKED);
        }
        let masked = Written {
            message: None,
            masked: true,
        };
        Self {
            table,
            size,
            platform,
            written: spin::Mutex::new(vec![masked; usize::from(size)]),
        }
    }

    /// Entries in the table.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// The register offset of `entry`, checked.
    fn entry(&self, entry: u16) -> Result<usize, DeviceError> {
        if entry < self.size {
            Ok(usize::from(entry) * ENTRY)
        } else {
            Err(DeviceError::BadIndex {
                what: "MSI-X table",
                index: u32::from(entry),
                size: u32::from(self.size),
            })
        }
    }

    /// Points `entry` at core `core`'s wake vector and unmasks it: the device's next
    /// message on it wakes that core. The kernel is asked for the message every time
    /// (that is how it learns which vector the caller routes); the address and data are
    /// written, the entry masked meanwhile, only when they change.
    pub fn wake(&self, entry: u16, core: usize) -> Result<(), DeviceError> {
        let at = self.entry(entry)?;
        let message = crate::platform::wake_message_for(self.platform, core)?;
        let mut written = self.written.lock();
        let held = &mut written[usize::from(entry)];
        if held.message != Some(message) {
            let (address, data) = message;
            self.table.write32(at + 12, MASKED);
            self.table.write32(at, address as u32);
            self.table.write32(at + 4, (address >> 32) as u32);
            self.table.write32(at + 8, data);
            *held = Written {
                message: Some(message),
                masked: true,
            };
        }
        if held.masked {
            self.table.write32(at + 12, 0);
            held.masked = false;
        }
        Ok(())
    }

    /// Masks `entry`: the device keeps its message pending instead of sending it.
    pub fn mask(&self, entry: u16) -> Result<(), DeviceError> {
        let at = self.entry(entry)?;
        let mut written = self.written.lock();
        let held = &mut written[usize::from(entry)];
        if !held.masked {
            self.table.write32(at + 12, MASKED);
            held.masked = true;
        }
        Ok(())
    }
}

/// One-shot wake-ups of a device's queues through its MSI-X table (the disks'
/// `wake_on_completion`): queue `q` signals through its own entry all along, and that
/// entry stays masked (the device's messages kept pending) except from
/// [`arm`](Self::arm) to the next [`spent`](Self::spent), which the driver calls when a
/// poll finds work on the queue. So a core that polls a busy queue is not interrupted
/// by it; an arm with a message already pending wakes the core at once (callers look
/// at the queue again after waking). virtio-net arms its receive queues here but spends
/// their wakes in the queues' rings (NO_INTERRUPT), where a pair's own handle reaches.
pub struct QueueWakes {
    /// The table, when the device has MSI-X.
    table: Option<MsixTable>,
    /// Each queue's entry, when it got one.
    entries: Vec<Option<u16>>,
    /// The core each queue is armed for (its entry unmasked), if it is.
    armed: Vec<Option<usize>>,
}

impl QueueWakes {
    /// Wake-ups for queues `0..entries.len()`, queue `q` signalling through entry
    /// `entries[q]` of `table` (`None`: it has none); `table` `None` when the device
    /// has no MSI-X. Every entry stays masked until armed.
    pub fn new(table: Option<MsixTable>, entries: Vec<Option<u16>>) -> Self {
        let armed = vec![None; entries.len()];
        Self {
            table,
            entries,
            armed,
        }
    }

    /// The table entry queue `queue` signals through, if it has one.
    pub fn entry(&self, queue: usize) -> Option<u16> {
        self.entries.get(queue).copied().flatten()
    }

    /// Whether any queue can wake a core.
    pub fn any(&self) -> bool {
        self.table.is_some() && self.entries.iter().any(Option::is_some)
    }

    /// Arms `queue` so that its next message wakes core `core`, or disarms it (`None`).
    /// Errors, with nothing changed: [`DeviceError::NoSuchQueue`] for a queue out of
    /// range, [`DeviceError::Unsupported`] without MSI-X or an entry for the queue, or
    /// for a core the kernel has no message for.
    pub fn arm(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        let entry = *self
            .entries
            .get(queue)
            .ok_or(DeviceError::NoSuchQueue(queue))?;
        let table = self
            .table
            .as_ref()
            .ok_or(DeviceError::Unsupported("MSI-X"))?;
        let entry = entry.ok_or(DeviceError::Unsupported("an MSI-X vector for this queue"))?;
        match core {
            Some(core) => table.wake(entry, core)?,
            None => table.mask(entry)?,
        }
        self.armed[queue] = core;
        Ok(())
    }

    /// The driver has news for `queue` that the device will send no message about (it
    /// was reset, say): a core armed for it is woken at once, and the wake spent.
    pub fn wake_now(&mut self, queue: usize) {
        if let (Some(&Some(core)), Some(table)) = (self.armed.get(queue), &self.table) {
            let platform = table.platform;
            self.spent(queue);
            platform.wake_core(core);
        }
    }

    /// [`wake_now`](Self::wake_now) for every queue.
    pub fn wake_all_now(&mut self) {
        for queue in 0..self.armed.len() {
            self.wake_now(queue);
        }
    }

    /// The driver found work on `queue`: a wake armed for it is spent, its entry masked
    /// again. Nothing for a queue out of range or not armed.
    pub fn spent(&mut self, queue: usize) {
        if let (Some(Some(_)), Some(Some(entry)), Some(table)) =
            (self.armed.get(queue), self.entries.get(queue), &self.table)
        {
            // The entry was checked against the table when the queue was armed.
            let _ = table.mask(*entry);
            self.armed[queue] = None;
        }
    }

    /// Disarms every queue (the holder changed: no core waits any more).
    pub fn disarm_all(&mut self) {
        for queue in 0..self.armed.len() {
            self.spent(queue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostPlatform;
    use alloc::vec;

    /// A table of `size` entries over host memory, and the memory to read it back.
    fn table(size: u16) -> (MsixTable, Mmio) {
        HostPlatform::leaked().msix_table(size)
    }

    /// Entry `entry`'s (address, data, masked) as the device would read them.
    fn entry(memory: &Mmio, entry: usize) -> (u64, u32, bool) {
        let at = entry * ENTRY;
        (
            u64::from(memory.read32(at)) | u64::from(memory.read32(at + 4)) << 32,
            memory.read32(at + 8),
            memory.read32(at + 12) & MASKED != 0,
        )
    }

    #[test]
    fn waking_a_queue_now_wakes_its_armed_core_once_and_spends_the_wake() {
        let platform = HostPlatform::leaked();
        let (msix, memory) = platform.msix_table(3);
        let mut wakes = QueueWakes::new(Some(msix), vec![Some(1), Some(2)]);
        wakes.wake_all_now();
        assert_eq!(platform.take_woken(), [], "nobody armed");
        wakes.arm(1, Some(1)).unwrap();
        wakes.wake_all_now();
        assert_eq!(platform.take_woken(), [1]);
        assert!(entry(&memory, 2).2, "masked again: the wake is spent");
        wakes.wake_now(1);
        assert_eq!(platform.take_woken(), [], "spent");
    }

    #[test]
    fn an_armed_queue_unmasks_its_entry_until_its_work_is_found() {
        let (msix, memory) = table(5);
        let mut wakes = QueueWakes::new(Some(msix), vec![Some(1), Some(2), None]);
        assert!(wakes.any());
        assert!((0..5).all(|e| entry(&memory, e).2), "all masked at first");
        wakes.arm(1, Some(1)).unwrap();
        assert_eq!(
            entry(&memory, 2),
            (0xFEE0_1000, HostPlatform::WAKE_VECTOR, false)
        );
        assert!(entry(&memory, 1).2, "queue 0's entry untouched");
        wakes.spent(0);
        assert!(!entry(&memory, 2).2, "another queue's work spends nothing");
        wakes.spent(1);
        assert!(
            entry(&memory, 2).2,
            "one-shot: masked once the work is found"
        );
        wakes.spent(1);
        assert!(entry(&memory, 2).2);
        wakes.arm(0, Some(0)).unwrap();
        assert_eq!(
            entry(&memory, 1),
            (0xFEE0_0000, HostPlatform::WAKE_VECTOR, false)
        );
        wakes.arm(0, None).unwrap();
        assert!(entry(&memory, 1).2, "None disarms");
        wakes.arm(0, Some(0)).unwrap();
        wakes.arm(1, Some(0)).unwrap();
        wakes.disarm_all();
        assert!((0..5).all(|e| entry(&memory, e).2));
    }

    /// Every arm wrote the entry's address and data again (five register writes, an
    /// MMIO exit each on a hypervisor), though kv and httpd arm for the same core before
    /// every nap. Now an arm for the core the entry names only unmasks it: a value the
    /// test puts in the data word (which the table never reads) stays.
    #[test]
    fn an_arm_for_the_core_an_entry_names_writes_only_its_mask() {
        let platform = HostPlatform::leaked();
        let (msix, memory) = platform.msix_table(2);
        msix.wake(1, 1).unwrap();
        let at = ENTRY;
        assert_eq!(
            entry(&memory, 1),
            (0xFEE0_1000, HostPlatform::WAKE_VECTOR, false)
        );
        memory.write32(at + 8, 0xD0D0);
        msix.wake(1, 1).unwrap();
        assert_eq!(
            memory.read32(at + 8),
            0xD0D0,
            "unmasked already: nothing written"
        );
        msix.mask(1).unwrap();
        msix.wake(1, 1).unwrap();
        assert_eq!(
            entry(&memory, 1),
            (0xFEE0_1000, 0xD0D0, false),
            "only unmasked"
        );
        assert_eq!(
            platform.take_messages_asked(),
            [1, 1, 1],
            "the kernel is asked at every arm (it learns the vector routed so)"
        );
        msix.wake(1, 0).unwrap();
        assert_eq!(
            entry(&memory, 1),
            (0xFEE0_0000, HostPlatform::WAKE_VECTOR, false),
            "another core: the message written"
        );
        assert!(entry(&memory, 0).2, "entry 0 untouched");
    }

    #[test]
    fn bad_queues_and_cores_are_refused_with_nothing_changed() {
        let (msix, memory) = table(2);
        let mut wakes = QueueWakes::new(Some(msix), vec![Some(1), None]);
        wakes.arm(0, Some(0)).unwrap();
        let before = entry(&memory, 1);
        assert_eq!(wakes.arm(2, Some(0)), Err(DeviceError::NoSuchQueue(2)));
        assert_eq!(
            wakes.arm(usize::MAX, None),
            Err(DeviceError::NoSuchQueue(usize::MAX))
        );
        assert_eq!(
            wakes.arm(0, Some(HostPlatform::CORES)),
            Err(DeviceError::Unsupported(
                "an interrupt message for that core"
            ))
        );
        assert_eq!(entry(&memory, 1), before, "still armed for core 0");
        assert_eq!(
            wakes.arm(1, Some(0)),
            Err(DeviceError::Unsupported("an MSI-X vector for this queue"))
        );
        wakes.spent(0);
        assert!(
            entry(&memory, 1).2,
            "the earlier arm is still the one spent"
        );
        let mut none = QueueWakes::new(None, vec![None]);
        assert!(!none.any());
        assert_eq!(none.arm(0, Some(0)), Err(DeviceError::Unsupported("MSI-X")));
        assert_eq!(none.arm(1, Some(0)), Err(DeviceError::NoSuchQueue(1)));
    }
}
