//! The capability list: a bounded walk and the MSI and MSI-X decoders.
//!
//! The list lives in the 192 bytes after the 64-byte header, so a well-formed one has at
//! most 48 entries. The walk refuses a pointer into the header and remembers every entry
//! it visited: a list that comes back to one is reported as a cycle, never followed.

use core::fmt;

use crate::{Address, BarKind, BarSlot, ConfigSpace, Header, PciError};

/// Capability ID of MSI.
pub const ID_MSI: u8 = 0x05;
/// Capability ID of PCI Express.
pub const ID_PCIE: u8 = 0x10;
/// Capability ID of MSI-X.
pub const ID_MSIX: u8 = 0x11;

/// One entry of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Capability ID.
    pub id: u8,
    /// Where it is in configuration space.
    pub offset: u16,
}

/// Walks the capability list of the function whose header is `header`: yields each
/// entry, or one error (pointer into the header, cycle, failed access) and then stops.
pub fn capabilities<'a, C: ConfigSpace>(cs: &'a C, header: &Header) -> CapabilityIter<'a, C> {
    let pointer_at = if header.layout() == 2 { 0x14 } else { 0x34 };
    let next = if header.has_capabilities() {
        (header.raw[pointer_at / 4] & 0xFF) as u16
    } else {
        0
    };
    CapabilityIter {
        cs,
        header: *header,
        next,
        seen: 0,
    }
}

/// The iterator [`capabilities`] returns.
pub struct CapabilityIter<'a, C> {
    /// Configuration space.
    cs: &'a C,
    /// The function.
    header: Header,
    /// The next entry's offset (0: the end).
    next: u16,
    /// One bit per dword of 0x40..0x100 already visited.
    seen: u64,
}

impl<C: ConfigSpace> Iterator for CapabilityIter<'_, C> {
    type Item = Result<Capability, PciError>;

    fn next(&mut self) -> Option<Self::Item> {
        // The low two bits of a pointer are reserved and masked off.
        let offset = self.next & 0xFC;
        if offset == 0 {
            return None;
        }
        self.next = 0;
        if offset < 0x40 {
            return Some(Err(PciError::CapabilityPointer(offset)));
        }
        let bit = 1u64 << ((offset - 0x40) / 4);
        if self.seen & bit != 0 {
            return Some(Err(PciError::CapabilityCycle(offset)));
        }
        self.seen |= bit;
        match self.cs.read32(self.header.address, offset) {
            Ok(word) => {
                self.next = (word >> 8) as u16 & 0xFF;
                Some(Ok(Capability {
                    id: word as u8,
                    offset,
                }))
            }
            Err(error) => Some(Err(error)),
        }
    }
}

/// A decoded MSI capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msi {
    /// Where it is.
    pub offset: u16,
    /// The message address has an upper 32 bits.
    pub address64: bool,
    /// Each vector can be masked on its own (mask and pending registers exist).
    pub per_vector_masking: bool,
    /// Vectors the function can use (1, 2, 4, .. 32).
    pub vectors: u8,
    /// MSI is on.
    pub enabled: bool,
}

/// Message control (the upper half of the MSI capability's first register): MSI enable.
const MSI_ENABLE: u32 = 1 << 16;
/// Message control: Multiple Message Enable (bits 6:4 of the control word), vectors
/// granted as a power of two; 0 is one message.
const MSI_MULTIPLE_ENABLE: u32 = 7 << 20;
/// The low address bits a message address must have clear (it is dword-aligned).
const MSI_ADDRESS_ALIGN: u64 = 3;

impl Msi {
    /// Decodes the MSI capability at `offset` whose first register (ID, next, control)
    /// is `word`: a Multiple Message Capable field past 32 vectors, or a capability that
    /// runs past the 256 bytes of PCI configuration space, is [`PciError::BadCapability`].
    pub fn decode(offset: u16, word: u32) -> Result<Self, PciError> {
        let control = (word >> 16) as u16;
        let log2 = (control >> 1) & 7;
        if log2 > 5 {
            return Err(PciError::BadCapability(offset));
        }
        let msi = Self {
            offset,
            address64: control & (1 << 7) != 0,
            per_vector_masking: control & (1 << 8) != 0,
            vectors: 1 << log2,
            enabled: control & 1 != 0,
        };
        if u32::from(offset) + u32::from(msi.bytes()) > 0x100 {
            return Err(PciError::BadCapability(offset));
        }
        Ok(msi)
    }

    /// Bytes the capability spans: 10 (32-bit address), 14 (64-bit), plus 10 for the
    /// mask and pending registers (PCI Local Bus 3.0, 6.8.1), rounded up to dwords.
    pub fn bytes(&self) -> u16 {
        let address = if self.address64 { 0x0C } else { 0x08 };
        address + if self.per_vector_masking { 0x0C } else { 0x04 }
    }

    /// The offset (from the capability) of the message data register.
    fn data_at(&self) -> u16 {
        if self.address64 { 0x0C } else { 0x08 }
    }

    /// The offset of the mask bits register, when the function has one.
    fn mask_at(&self) -> Option<u16> {
        self.per_vector_masking.then(|| self.data_at() + 4)
    }

    /// Points the function's one message at `address` with data `data` (the low 16
    /// bits are the message; x86 puts the vector there), MSI left off: the control
    /// register gets one message (Multiple Message Enable 0) and enable off, vector 0
    /// masked when the function can mask, then the address (both halves on a 64-bit
    /// capability) and the data are written and read back. An address a 32-bit
    /// capability cannot hold, or one not dword-aligned, is
    /// [`PciError::MsiAddress`]; a register that does not keep what was written is
    /// [`PciError::RegisterStuck`]. Turn it on with [`Msi::set_enabled`].
    pub fn program(
        &self,
        cs: &mut impl ConfigSpace,
        at: Address,
        address: u64,
        data: u16,
    ) -> Result<(), PciError> {
        if address & MSI_ADDRESS_ALIGN != 0 || (!self.address64 && address >> 32 != 0) {
            return Err(PciError::MsiAddress(address));
        }
        let control = cs.read32(at, self.offset)?;
        cs.write32(
            at,
            self.offset,
            control & !(MSI_ENABLE | MSI_MULTIPLE_ENABLE),
        )?;
        self.set_masked(cs, at, true)?;
        let high = self.address64.then_some((8u16, (address >> 32) as u32));
        let writes = [(4u16, address as u32)]
            .into_iter()
            .chain(high)
            .chain([(self.data_at(), u32::from(data))]);
        for (register, value) in writes {
            let offset = self.offset + register;
            cs.write32(at, offset, value)?;
            // The data register's upper half is reserved (or extended data, unused).
            let keeps = if register == self.data_at() {
                0xFFFF
            } else {
                u32::MAX
            };
            let read = cs.read32(at, offset)?;
            if read & keeps != value {
                return Err(PciError::RegisterStuck {
                    offset,
                    wrote: value,
                    read,
                });
            }
        }
        Ok(())
    }

    /// Turns MSI on or off (one message); off, the function sends nothing (its INTx
    /// stays disabled in the command register).
    pub fn set_enabled(
        &self,
        cs: &mut impl ConfigSpace,
        at: Address,
        on: bool,
    ) -> Result<(), PciError> {
        let control = cs.read32(at, self.offset)? & !(MSI_ENABLE | MSI_MULTIPLE_ENABLE);
        let control = if on { control | MSI_ENABLE } else { control };
        cs.write32(at, self.offset, control)
    }

    /// Masks or unmasks vector 0 when the function has per-vector mask bits (the other
    /// 31 bits stay masked); does nothing without them (and says so: `false`).
    pub fn set_masked(
        &self,
        cs: &mut impl ConfigSpace,
        at: Address,
        masked: bool,
    ) -> Result<bool, PciError> {
        let Some(mask) = self.mask_at() else {
            return Ok(false);
        };
        let bits = if masked { u32::MAX } else { !1 };
        cs.write32(at, self.offset + mask, bits)?;
        Ok(true)
    }
}

/// A decoded MSI-X capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiX {
    /// Where it is.
    pub offset: u16,
    /// Entries in the vector table (1..=2048).
    pub table_size: u16,
    /// The BAR holding the vector table.
    pub table_bar: u8,
    /// The table's offset in that BAR.
    pub table_offset: u32,
    /// The BAR holding the pending-bit array.
    pub pba_bar: u8,
    /// The array's offset in that BAR.
    pub pba_offset: u32,
    /// MSI-X is on.
    pub enabled: bool,
    /// Every vector is masked at once.
    pub function_mask: bool,
}

/// Bytes the MSI-X capability spans: control, table and pending-bit registers.
const MSIX_BYTES: u32 = 12;

impl MsiX {
    /// Decodes the MSI-X capability at `offset` from its three registers (`read(at)`
    /// reads the one at `offset + at`), checking that the table (16 bytes per entry) and
    /// the pending bits lie inside memory BARs of `bars`: either outside, or a capability
    /// that runs past the 256 bytes of PCI configuration space (its registers then not
    /// read: they would be extended space, or no register at all), is
    /// [`PciError::BadCapability`].
    pub fn decode(
        offset: u16,
        read: impl Fn(u16) -> Result<u32, PciError>,
        bars: &[BarSlot; 6],
    ) -> Result<Self, PciError> {
        if u32::from(offset) + MSIX_BYTES > 0x100 {
            return Err(PciError::BadCapability(offset));
        }
        let words = [read(0)?, read(4)?, read(8)?];
        let control = (words[0] >> 16) as u16;
        let table_size = (control & 0x7FF) + 1;
        let msix = Self {
            offset,
            table_size,
            table_bar: (words[1] & 7) as u8,
            table_offset: words[1] & !7,
            pba_bar: (words[2] & 7) as u8,
            pba_offset: words[2] & !7,
            enabled: control & (1 << 15) != 0,
            function_mask: control & (1 << 14) != 0,
        };
        let table_bytes = u64::from(table_size) * 16;
        let pba_bytes = u64::from(table_size).div_ceil(64) * 8;
        for (bar, start, len) in [
            (msix.table_bar, msix.table_offset, table_bytes),
            (msix.pba_bar, msix.pba_offset, pba_bytes),
        ] {
            let Some(BarSlot::Bar(window)) = bars.get(usize::from(bar)) else {
                return Err(PciError::BadBarIndicator(bar));
            };
            if window.kind == BarKind::Io || u64::from(start) + len > window.size {
                return Err(PciError::BadCapability(offset));
            }
        }
        Ok(msix)
    }
}

/// What a function's capability list says, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Entries walked.
    pub count: u8,
    /// A PCI Express capability is present.
    pub pcie: bool,
    /// The MSI capability.
    pub msi: Option<Msi>,
    /// The MSI-X capability.
    pub msix: Option<MsiX>,
    /// Why the walk or a decode stopped, if it did (entries before it are kept).
    pub error: Option<PciError>,
}

impl Capabilities {
    /// Walks and decodes the capability list of `header` (`bars` as [`crate::probe_bars`]
    /// sized them, for MSI-X). Errors are recorded in `error`, not returned.
    pub fn read(cs: &impl ConfigSpace, header: &Header, bars: &[BarSlot; 6]) -> Self {
        let mut caps = Self {
            count: 0,
            pcie: false,
            msi: None,
            msix: None,
            error: None,
        };
        for entry in capabilities(cs, header) {
            let decoded = entry.and_then(|cap| {
                caps.count += 1;
                let read = |at: u16| cs.read32(header.address, cap.offset + at);
                match cap.id {
                    ID_PCIE => caps.pcie = true,
                    ID_MSI => caps.msi = Some(Msi::decode(cap.offset, read(0)?)?),
                    ID_MSIX => caps.msix = Some(MsiX::decode(cap.offset, read, bars)?),
                    _ => {}
                }
                Ok(())
            });
            if let Err(error) = decoded {
                caps.error = Some(error);
                break;
            }
        }
        caps
    }
}

impl fmt::Display for Capabilities {
    /// ` pcie msi 64-bit masking vectors 4 msix 3 table bar1+0x0 pba bar1+0x800`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pcie {
            write!(f, " pcie")?;
        }
        if let Some(msi) = self.msi {
            let width = if msi.address64 { "64-bit" } else { "32-bit" };
            write!(f, " msi {width}")?;
            if msi.per_vector_masking {
                write!(f, " masking")?;
            }
            write!(f, " vectors {}", msi.vectors)?;
        }
        if let Some(x) = self.msix {
            write!(
                f,
                " msix {} table bar{}+{:#x} pba bar{}+{:#x}",
                x.table_size, x.table_bar, x.table_offset, x.pba_bar, x.pba_offset
            )?;
        }
        if let Some(error) = self.error {
            write!(f, " caps error ({error})")?;
        }
        Ok(())
    }
}
