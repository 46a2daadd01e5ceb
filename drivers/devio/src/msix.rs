//! MSI-X: a device's vector table (in one of its memory BARs), each entry a message the
//! device writes to raise an interrupt. Rexo points entries at a core's wake vector, so a
//! device can wake a core halted in `sleep_ns` when there is work (polled drivers that
//! let idle cores sleep).

use rexo_api::DeviceError;

use crate::{Mmio, Platform};

/// Bytes per table entry: message address (low, high), data, vector control.
const ENTRY: usize = 16;
/// The vector control word's mask bit.
const MASKED: u32 = 1;

/// A function's MSI-X vector table, enabled, every entry masked until pointed at a core.
pub struct MsixTable {
    /// The table's registers.
    table: Mmio,
    /// Entries.
    size: u16,
    /// The kernel (which message wakes which core).
    platform: &'static dyn Platform,
}

impl MsixTable {
    /// The table in `table` (already checked to hold `size` entries), every entry masked.
    pub(crate) fn new(table: Mmio, size: u16, platform: &'static dyn Platform) -> Self {
        let msix = Self {
            table,
            size,
            platform,
        };
        for entry in 0..size {
            msix.table.write32(usize::from(entry) * ENTRY + 12, MASKED);
        }
        msix
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
    /// message on it wakes that core.
    pub fn wake(&self, entry: u16, core: usize) -> Result<(), DeviceError> {
        let at = self.entry(entry)?;
        let (address, data) = crate::platform::wake_message_for(self.platform, core)?;
        self.table.write32(at + 12, MASKED);
        self.table.write32(at, address as u32);
        self.table.write32(at + 4, (address >> 32) as u32);
        self.table.write32(at + 8, data);
        self.table.write32(at + 12, 0);
        Ok(())
    }

    /// Masks `entry`: the device keeps its message pending instead of sending it.
    pub fn mask(&self, entry: u16) -> Result<(), DeviceError> {
        let at = self.entry(entry)?;
        self.table.write32(at + 12, MASKED);
        Ok(())
    }
}
