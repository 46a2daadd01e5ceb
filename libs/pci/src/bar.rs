//! Base address registers: decoding and sizing.
//!
//! Sizing follows the write-all-ones protocol: for each register, write 0xFFFF_FFFF,
//! read back which address bits stick (the size mask), write the original value back.
//! While a register holds all ones the device would decode a bogus window, so the
//! command register's memory and I/O decode bits are cleared before the first write and
//! the original command value is restored after the last one (also when an access fails
//! half-way). A host bridge (class 06.00) is the exception: its command register is not
//! written, and its registers are sized with decoding as it was, as Linux does (its
//! `mmio_always_on` quirk), since on some chipsets the host bridge's memory decode bit
//! routes RAM or MMIO the machine is using. A 64-bit register is probed in both halves, so windows above 4 GiB (where
//! OVMF puts large BARs) come out with their full address and size.

use core::fmt;

use crate::{COMMAND_IO, COMMAND_MEMORY, ConfigSpace, Header, PciError};

/// What a base address register decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O ports.
    Io,
    /// Memory below 4 GiB.
    Memory32 {
        /// Reads have no side effects (prefetchable).
        prefetchable: bool,
    },
    /// Memory anywhere; the register and the next form the address.
    Memory64 {
        /// Reads have no side effects (prefetchable).
        prefetchable: bool,
    },
}

/// One implemented base address register, sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// What it decodes.
    pub kind: BarKind,
    /// The base the firmware programmed (0: not assigned).
    pub address: u64,
    /// The window's size in bytes (a power of two).
    pub size: u64,
}

impl Bar {
    /// Prefetchable memory.
    pub fn prefetchable(&self) -> bool {
        matches!(
            self.kind,
            BarKind::Memory32 { prefetchable: true } | BarKind::Memory64 { prefetchable: true }
        )
    }
}

impl fmt::Display for Bar {
    /// `mem64 0x800000000 size 0x4000 prefetchable`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            BarKind::Io => "io",
            BarKind::Memory32 { .. } => "mem32",
            BarKind::Memory64 { .. } => "mem64",
        };
        write!(f, "{kind} {:#x} size {:#x}", self.address, self.size)?;
        if self.prefetchable() {
            write!(f, " prefetchable")?;
        }
        Ok(())
    }
}

/// Why a base address register cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// Memory type 3, which the specification reserves.
    ReservedType,
    /// A 64-bit register in the last slot, with no register for its upper half.
    NoUpperHalf,
    /// The bits that stick do not form a power-of-two size (this mask read back).
    BadSizeMask(u64),
    /// The programmed address is not a multiple of the size.
    Misaligned {
        /// The programmed address.
        address: u64,
        /// The size.
        size: u64,
    },
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedType => write!(f, "reserved memory type"),
            Self::NoUpperHalf => write!(f, "64-bit register without an upper half"),
            Self::BadSizeMask(m) => write!(f, "size mask {m:#x} is not a power of two"),
            Self::Misaligned { address, size } => {
                write!(f, "address {address:#x} not aligned to size {size:#x}")
            }
        }
    }
}

/// One of the six register slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarSlot {
    /// Not implemented (no bit sticks), or beyond the header's registers.
    Unused,
    /// An implemented register.
    Bar(Bar),
    /// The upper half of the 64-bit register in the slot before.
    Upper,
    /// An implemented register with an impossible value.
    Invalid(BarError),
}

/// Sizes the base address registers of the function whose header is `header` (six for
/// a device, two for a PCI-to-PCI bridge, none otherwise), with decoding turned off
/// while the registers hold all ones, but on a host bridge (module documentation).
/// Addresses are those in `header`; every register and the command register end as they
/// were.
pub fn probe_bars(cs: &mut impl ConfigSpace, header: &Header) -> Result<[BarSlot; 6], PciError> {
    let mut slots = [BarSlot::Unused; 6];
    let count = usize::from(header.bar_count());
    if count == 0 {
        return Ok(slots);
    }
    if matches!(header.class(), (6, 0, _)) {
        size_all(cs, header, count, &mut slots)?;
        return Ok(slots);
    }
    let address = header.address;
    let command = header.raw[1] & 0xFFFF;
    // Status bits are write-one-to-clear: the upper half is written as zeros.
    let quiet = command & !u32::from(COMMAND_IO | COMMAND_MEMORY);
    cs.write32(address, 4, quiet)?;
    let probed = size_all(cs, header, count, &mut slots);
    let restored = cs.write32(address, 4, command);
    probed.and(restored)?;
    Ok(slots)
}

/// Writes all ones to register `index`, reads back what sticks, restores it.
fn sticky(cs: &mut impl ConfigSpace, header: &Header, index: usize) -> Result<u32, PciError> {
    let offset = 0x10 + 4 * index as u16;
    cs.write32(header.address, offset, u32::MAX)?;
    let mask = cs.read32(header.address, offset);
    cs.write32(header.address, offset, header.raw[4 + index])?;
    mask
}

/// The size a mask of sticky address bits gives, if the mask is a contiguous run of
/// ones from the top.
fn size_of(mask: u64) -> Result<u64, BarError> {
    let size = (!mask).wrapping_add(1);
    if size == 0 || !size.is_power_of_two() {
        return Err(BarError::BadSizeMask(mask));
    }
    Ok(size)
}

/// Sizes registers `0..count` into `slots`.
fn size_all(
    cs: &mut impl ConfigSpace,
    header: &Header,
    count: usize,
    slots: &mut [BarSlot; 6],
) -> Result<(), PciError> {
    let mut index = 0;
    while index < count {
        let low = header.raw[4 + index];
        let sticky_low = sticky(cs, header, index)?;
        let (kind, address, mask, used) = if low & 1 == 1 {
            let mut mask = sticky_low & !3;
            // A 16-bit I/O decoder leaves the upper half zero.
            if mask != 0 && mask >> 16 == 0 {
                mask |= 0xFFFF_0000;
            }
            (
                BarKind::Io,
                u64::from(low & !3),
                u64::from(mask) | !0u64 << 32,
                1,
            )
        } else {
            let prefetchable = low & 8 != 0;
            match (low >> 1) & 3 {
                0 | 1 => {
                    let mask = u64::from(sticky_low & !0xF) | !0u64 << 32;
                    (
                        BarKind::Memory32 { prefetchable },
                        u64::from(low & !0xF),
                        mask,
                        1,
                    )
                }
                2 if index + 1 < count => {
                    let high = header.raw[5 + index];
                    let sticky_high = sticky(cs, header, index + 1)?;
                    slots[index + 1] = BarSlot::Upper;
                    let address = u64::from(high) << 32 | u64::from(low & !0xF);
                    let mask = u64::from(sticky_high) << 32 | u64::from(sticky_low & !0xF);
                    (BarKind::Memory64 { prefetchable }, address, mask, 2)
                }
                2 => {
                    slots[index] = BarSlot::Invalid(BarError::NoUpperHalf);
                    index += 1;
                    continue;
                }
                _ => {
                    slots[index] = BarSlot::Invalid(BarError::ReservedType);
                    index += 1;
                    continue;
                }
            }
        };
        slots[index] = decode(kind, address, mask);
        index += used;
    }
    Ok(())
}

/// The slot for a register of `kind` programmed to `address` whose sticky address
/// bits, with every bit above the register's width set, are `mask`.
fn decode(kind: BarKind, address: u64, mask: u64) -> BarSlot {
    let nothing = match kind {
        BarKind::Memory64 { .. } => 0,
        _ => !0u64 << 32,
    };
    if mask == nothing {
        return BarSlot::Unused;
    }
    match size_of(mask) {
        Err(error) => BarSlot::Invalid(error),
        Ok(size) if !address.is_multiple_of(size) => {
            BarSlot::Invalid(BarError::Misaligned { address, size })
        }
        Ok(size) => BarSlot::Bar(Bar {
            kind,
            address,
            size,
        }),
    }
}
