//! The PCI and PCIe bus layer, independent of how configuration space is reached.
//!
//! The kernel implements [`ConfigSpace`] twice: with the legacy ports 0xCF8/0xCFC (256
//! bytes per function, segment 0) and with ECAM (the MCFG table's memory-mapped window,
//! 4 KiB per function). On top of it this crate finds every function ([`enumerate`]),
//! sizes base address registers ([`probe_bars`]) and walks and decodes the capability
//! list ([`capabilities`], [`Msi`], [`MsiX`]). Nothing here allocates or panics on what a
//! device returns: bad values come back as [`PciError`] or [`BarSlot::Invalid`].

#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

mod access;
mod bar;
mod caps;
mod enumerate;

use core::fmt;

pub use access::{Access, Hardware};
pub use bar::{Bar, BarError, BarKind, BarSlot, probe_bars};
pub use caps::{Capabilities, Capability, CapabilityIter, Msi, MsiX, capabilities};
pub use enumerate::{Report, enumerate};

/// Where a function lives: segment group, bus, device (0..32), function (0..8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// PCI segment group (0 unless the MCFG table lists others).
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..32.
    pub device: u8,
    /// Function number, 0..8.
    pub function: u8,
}

impl Address {
    /// The address, or [`PciError::BadAddress`] when device >= 32 or function >= 8.
    pub fn new(segment: u16, bus: u8, device: u8, function: u8) -> Result<Self, PciError> {
        if device >= 32 || function >= 8 {
            return Err(PciError::BadAddress);
        }
        Ok(Self {
            segment,
            bus,
            device,
            function,
        })
    }

    /// The 0xCF8 port layout (enable bit set) of register `offset` of this function, or
    /// [`PciError::BadOffset`] when it is unaligned or beyond the 256 bytes the ports reach.
    pub fn legacy(self, offset: u16) -> Result<u32, PciError> {
        check_offset(offset, 256)?;
        if self.device >= 32 || self.function >= 8 {
            return Err(PciError::BadAddress);
        }
        Ok(0x8000_0000
            | u32::from(self.bus) << 16
            | u32::from(self.device) << 11
            | u32::from(self.function) << 8
            | u32::from(offset))
    }

    /// The byte offset of register `offset` of this function from the ECAM base of its
    /// segment (base of bus 0: bus << 20 | device << 15 | function << 12 | offset), or
    /// [`PciError::BadOffset`] when it is unaligned or beyond 4 KiB.
    pub fn ecam_offset(self, offset: u16) -> Result<u64, PciError> {
        check_offset(offset, 4096)?;
        if self.device >= 32 || self.function >= 8 {
            return Err(PciError::BadAddress);
        }
        Ok(u64::from(self.bus) << 20
            | u64::from(self.device) << 15
            | u64::from(self.function) << 12
            | u64::from(offset))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segment != 0 {
            write!(f, "{:04x}:", self.segment)?;
        }
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Checks that `offset` is a 32-bit aligned register below `limit`.
fn check_offset(offset: u16, limit: u16) -> Result<(), PciError> {
    if !offset.is_multiple_of(4) || offset >= limit {
        return Err(PciError::BadOffset(offset));
    }
    Ok(())
}

/// Why a configuration access or a decode failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// Device >= 32 or function >= 8.
    BadAddress,
    /// The register offset is unaligned or beyond what the access method reaches.
    BadOffset(u16),
    /// No access method reaches this segment and bus.
    NoSuchBus {
        /// Segment group.
        segment: u16,
        /// Bus.
        bus: u8,
    },
    /// The access method failed (for ECAM: the window is not device memory).
    Access(u64),
    /// A capability pointer points into the 64-byte header or past the space.
    CapabilityPointer(u16),
    /// The capability list comes back to a capability already seen.
    CapabilityCycle(u16),
    /// An MSI-X table or PBA names a BAR that does not exist.
    BadBarIndicator(u8),
    /// The capability at this offset holds impossible values.
    BadCapability(u16),
    /// An MSI message address the function cannot hold (above 4 GiB on a 32-bit
    /// capability) or not dword-aligned.
    MsiAddress(u64),
    /// A register did not keep the value written to it.
    RegisterStuck {
        /// The register's offset in configuration space.
        offset: u16,
        /// What was written.
        wrote: u32,
        /// What it read back as.
        read: u32,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress => write!(f, "device or function number out of range"),
            Self::BadOffset(o) => {
                write!(f, "configuration offset {o:#x} unaligned or out of range")
            }
            Self::NoSuchBus { segment, bus } => {
                write!(f, "no configuration access to segment {segment} bus {bus}")
            }
            Self::Access(a) => write!(f, "configuration access at {a:#x} failed"),
            Self::CapabilityPointer(p) => write!(f, "capability pointer {p:#x} out of bounds"),
            Self::CapabilityCycle(p) => write!(f, "capability list loops back to {p:#x}"),
            Self::BadBarIndicator(b) => {
                write!(f, "MSI-X structure in BAR {b}, which does not exist")
            }
            Self::BadCapability(o) => write!(f, "capability at {o:#x} holds impossible values"),
            Self::MsiAddress(a) => write!(
                f,
                "MSI message address {a:#x} is not one the function can hold (unaligned, or above 4 GiB on a 32-bit capability)"
            ),
            Self::RegisterStuck {
                offset,
                wrote,
                read,
            } => write!(
                f,
                "configuration register {offset:#x} reads {read:#x} after {wrote:#x} was written"
            ),
        }
    }
}

/// Configuration space, reached one 32-bit register at a time. `offset` is a byte
/// offset, a multiple of 4; implementations refuse offsets they cannot reach. A function
/// that is not there reads as all ones, as on real hardware.
pub trait ConfigSpace {
    /// Reads the register at `offset` of the function at `address`.
    fn read32(&self, address: Address, offset: u16) -> Result<u32, PciError>;
    /// Writes the register at `offset` of the function at `address`.
    fn write32(&mut self, address: Address, offset: u16, value: u32) -> Result<(), PciError>;
}

/// The command register's I/O space decode bit.
pub const COMMAND_IO: u16 = 1 << 0;
/// The command register's memory space decode bit.
pub const COMMAND_MEMORY: u16 = 1 << 1;

/// The decoded first 64 bytes of a function's configuration space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Where the function is.
    pub address: Address,
    /// The 16 registers as read (`raw[i]` is the register at offset `4 * i`).
    pub raw: [u32; 16],
}

impl Header {
    /// Reads the header of the function at `address`; `Ok(None)` when nothing answers
    /// (vendor 0xFFFF).
    pub fn read(cs: &impl ConfigSpace, address: Address) -> Result<Option<Self>, PciError> {
        let id = cs.read32(address, 0)?;
        if id as u16 == 0xFFFF || id as u16 == 0 {
            return Ok(None);
        }
        let mut raw = [0u32; 16];
        raw[0] = id;
        for (offset, word) in (4u16..).step_by(4).zip(raw.iter_mut().skip(1)) {
            *word = cs.read32(address, offset)?;
        }
        Ok(Some(Self { address, raw }))
    }

    /// Vendor ID.
    pub fn vendor(&self) -> u16 {
        self.raw[0] as u16
    }

    /// Device ID.
    pub fn device_id(&self) -> u16 {
        (self.raw[0] >> 16) as u16
    }

    /// Base class, subclass and programming interface.
    pub fn class(&self) -> (u8, u8, u8) {
        let c = self.raw[2];
        ((c >> 24) as u8, (c >> 16) as u8, (c >> 8) as u8)
    }

    /// The header layout: 0 device, 1 PCI-to-PCI bridge, 2 CardBus bridge.
    pub fn layout(&self) -> u8 {
        (self.raw[3] >> 16) as u8 & 0x7F
    }

    /// Function 0 says the device has functions 1..8 too.
    pub fn multifunction(&self) -> bool {
        (self.raw[3] >> 16) & 0x80 != 0
    }

    /// The status register says a capability list exists.
    pub fn has_capabilities(&self) -> bool {
        (self.raw[1] >> 16) & 0x10 != 0
    }

    /// The number of base address registers the layout has (6, 2, or 0 for CardBus and
    /// unknown layouts, whose one register is a socket window, not a BAR).
    pub fn bar_count(&self) -> u8 {
        match self.layout() {
            0 => 6,
            1 => 2,
            _ => 0,
        }
    }

    /// A PCI-to-PCI bridge's secondary and subordinate bus numbers.
    pub fn bridge_buses(&self) -> Option<(u8, u8)> {
        (self.layout() == 1).then(|| ((self.raw[6] >> 8) as u8, (self.raw[6] >> 16) as u8))
    }
}

/// Everything known about one function: header, sized BARs and capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// The header as read before probing.
    pub header: Header,
    /// The base address registers, sized.
    pub bars: [BarSlot; 6],
    /// The capability list, decoded.
    pub capabilities: Capabilities,
}

impl Function {
    /// Reads, sizes (see [`probe_bars`]: this writes the BARs and, but on a host bridge,
    /// the command register, restoring both) and decodes the function whose header is
    /// `header`.
    pub fn describe(cs: &mut impl ConfigSpace, header: Header) -> Result<Self, PciError> {
        let bars = probe_bars(cs, &header)?;
        let capabilities = Capabilities::read(cs, &header, &bars);
        Ok(Self {
            header,
            bars,
            capabilities,
        })
    }
}

impl fmt::Display for Function {
    /// `00:03.0 1af4:1000 class 02.00.00 bar0 io 0xc000 size 0x20 ... msix 3@bar1+0x0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        let (class, sub, prog_if) = h.class();
        write!(
            f,
            "{} {:04x}:{:04x} class {class:02x}.{sub:02x}.{prog_if:02x}",
            h.address,
            h.vendor(),
            h.device_id()
        )?;
        for (index, slot) in self.bars.iter().enumerate() {
            match slot {
                BarSlot::Bar(bar) => write!(f, " bar{index} {bar}")?,
                BarSlot::Invalid(error) => write!(f, " bar{index} invalid ({error})")?,
                BarSlot::Unused | BarSlot::Upper => {}
            }
        }
        write!(f, "{}", self.capabilities)
    }
}
