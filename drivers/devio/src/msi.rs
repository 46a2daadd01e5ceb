//! MSI: a function's one message (address and data in its configuration space), for
//! devices without MSI-X. Like an MSI-X entry it is pointed at a core's wake vector, so
//! the device can wake a core halted in `sleep_ns`; [`Vectors`] is whichever of the two
//! a function has, MSI-X preferred.

use rexo_api::DeviceError;
use rexo_pci::{Address, Msi};

use crate::{MsixTable, PciBus, Platform};

/// A function's MSI capability: one message, off until pointed at a core.
pub struct MsiVector {
    /// The capability.
    msi: Msi,
    /// The function.
    address: Address,
    /// Configuration space.
    bus: &'static PciBus,
    /// The kernel (which message wakes which core).
    platform: &'static dyn Platform,
}

impl MsiVector {
    /// The capability `msi` of the function at `address`, turned off (one message,
    /// masked where it can be). Called by `DeviceFunction::msi` only.
    pub(crate) fn new(
        msi: Msi,
        address: Address,
        bus: &'static PciBus,
        platform: &'static dyn Platform,
    ) -> Result<Self, DeviceError> {
        let vector = Self {
            msi,
            address,
            bus,
            platform,
        };
        vector.mask()?;
        Ok(vector)
    }

    /// Points the message at core `core`'s wake vector and turns it on: the device's
    /// next interrupt wakes that core. The address and data are read back (a register
    /// that does not keep them is [`DeviceError::Config`]).
    pub fn wake(&self, core: usize) -> Result<(), DeviceError> {
        let (address, data) = crate::platform::wake_message_for(self.platform, core)?;
        let data = u16::try_from(data)
            .map_err(|_| DeviceError::Unsupported("MSI data wider than 16 bits"))?;
        let mut access = self.bus.access();
        self.msi
            .program(&mut access, self.address, address, data)
            .and_then(|()| self.msi.set_enabled(&mut access, self.address, true))
            .and_then(|()| self.msi.set_masked(&mut access, self.address, false))
            .map(|_| ())
            .map_err(DeviceError::Config)
    }

    /// Stops the message: vector 0 masked when the function has mask bits (the device
    /// keeps it pending), else MSI turned off (the device sends nothing; INTx stays
    /// disabled).
    pub fn mask(&self) -> Result<(), DeviceError> {
        let mut access = self.bus.access();
        let masked = self
            .msi
            .set_masked(&mut access, self.address, true)
            .map_err(DeviceError::Config)?;
        if !masked {
            self.msi
                .set_enabled(&mut access, self.address, false)
                .map_err(DeviceError::Config)?;
        }
        Ok(())
    }
}

/// A function's interrupt messages: its MSI-X table when it has one, else its MSI
/// capability (one message: entry 0).
pub enum Vectors {
    /// The MSI-X table.
    MsiX(MsixTable),
    /// The one MSI message.
    Msi(MsiVector),
}

impl Vectors {
    /// Points `entry` at core `core`'s wake vector and unmasks it (MSI has entry 0 only:
    /// another is [`DeviceError::BadIndex`]).
    pub fn wake(&self, entry: u16, core: usize) -> Result<(), DeviceError> {
        match self {
            Self::MsiX(table) => table.wake(entry, core),
            Self::Msi(msi) => Self::only_entry(entry).and_then(|()| msi.wake(core)),
        }
    }

    /// Which kind it is, for messages: `MSI-X` or `MSI`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MsiX(_) => "MSI-X",
            Self::Msi(_) => "MSI",
        }
    }

    /// Checks that `entry` is MSI's one entry.
    fn only_entry(entry: u16) -> Result<(), DeviceError> {
        if entry == 0 {
            Ok(())
        } else {
            Err(DeviceError::BadIndex {
                what: "MSI messages",
                index: u32::from(entry),
                size: 1,
            })
        }
    }
}
