//! ACPI table parsing for Rexo's boot path: no allocation, every table's bytes bounds-checked,
//! and a bad table reported as a [`Warning`] instead of a failed boot.
//!
//! [`find_rsdp_bios`] locates the RSDP on BIOS machines (boot loaders usually hand its address
//! over instead, or a copy of it, which [`check_copy`] checks); [`parse`] follows it to the
//! root table (XSDT preferred over RSDT; [`parse_acpi1`] from the RSDT of a copy of the RSDP's
//! ACPI 1.0 part alone) and reads the MADT, HPET, MCFG and FADT, and through the FADT the DSDT and the FACS; the DSDT's `\_S5`
//! sleep type is searched for only when power-off asks ([`AcpiInfo::find_s5`]). Only a broken
//! RSDP (its ACPI 1.0 part, or its revision 2+ part without an RSDT to fall back on) or
//! root table is an [`AcpiError`]; everything else that is wrong is skipped and
//! recorded in [`AcpiInfo::warnings`]. All lists have fixed capacities (see the `MAX_*`
//! constants); entries past a capacity are dropped with a warning. [`ipi_destination`]
//! and [`interrupt_destination`] say which of the MADT's local APIC ids an interrupt can
//! name alone.
#![cfg_attr(target_os = "none", no_std)]

mod destination;
mod fadt;
mod info;
mod madt;
mod rsdp;
mod s5;

use core::fmt;

use rexo_physmem::{PhysMemory, read_array, read_u32, read_u64};

pub use destination::{Unaddressable, interrupt_destination, ipi_destination};
pub use fadt::{
    AddressSpace, BootArch, ByteRegister, Fadt, GenericAddress, PmTimer, ResetRegister,
    SleepRegister,
};
pub use info::{
    AcpiInfo, Capacity, DEFAULT_LOCAL_APIC_ADDRESS, Hpet, InterruptOverride, IoApic, IsaRoute,
    LocalApic, LocalApicNmi, McfgSegment, Polarity, TableInfo, TriggerMode, Warning,
    io_apic_entries, io_apic_serves,
};
pub use rsdp::{RsdpCopy, check_copy, find_rsdp_bios};

/// How many local APICs [`AcpiInfo`] keeps.
pub const MAX_LOCAL_APICS: usize = 256;
/// How many local APIC NMI entries [`AcpiInfo`] keeps.
pub const MAX_LOCAL_APIC_NMIS: usize = 256;
/// How many IO-APICs [`AcpiInfo`] keeps.
pub const MAX_IO_APICS: usize = 16;
/// How many interrupt source overrides [`AcpiInfo`] keeps.
pub const MAX_OVERRIDES: usize = 32;
/// How many MCFG segments [`AcpiInfo`] keeps.
pub const MAX_MCFG_SEGMENTS: usize = 16;
/// How many tables [`AcpiInfo::tables`] lists.
pub const MAX_TABLES: usize = 64;
/// How many warnings [`AcpiInfo`] keeps (more are only counted).
pub const MAX_WARNINGS: usize = 16;

/// The longest description table (root table, DSDT, FACS, any other) read, 4 MiB: the
/// largest real ones, the DSDTs of big servers, are about 1 MiB. A longer length is a
/// broken table ([`Warning::BadTableLength`]), whose bytes are not read: the boot's
/// identity map reaches 4 GiB, so a length of gigabytes had its checksum summed over
/// whatever lies after the table, device space included (minutes under an emulator, reads
/// with side effects on hardware), where ACPI places tables in memory only.
pub const MAX_TABLE_LEN: usize = 4 << 20;

/// Size of the common header every description table starts with.
const HEADER_LEN: usize = 36;

/// A four-byte table signature such as `APIC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Signature(pub [u8; 4]);

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Why [`parse`] could not read the ACPI tables at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// The RSDP is not in readable memory.
    RsdpUnreadable {
        /// Where the RSDP was expected.
        address: u64,
    },
    /// The bytes at the RSDP address do not start with `RSD PTR `.
    RsdpBadSignature {
        /// Where the RSDP was expected.
        address: u64,
    },
    /// The checksum over the first 20 bytes of the RSDP is wrong.
    RsdpBadChecksum {
        /// Address of the RSDP.
        address: u64,
    },
    /// A revision 2+ RSDP says a length below 36, above 4,096 or one that runs out of
    /// memory.
    RsdpBadLength {
        /// Address of the RSDP.
        address: u64,
        /// The length it claims.
        length: u32,
    },
    /// The extended checksum of a revision 2+ RSDP is wrong.
    RsdpBadExtendedChecksum {
        /// Address of the RSDP.
        address: u64,
    },
    /// The RSDP names neither an RSDT nor an XSDT.
    NoRootTable,
    /// The root table's header is not in readable memory.
    RootUnreadable {
        /// Address of the root table.
        address: u64,
    },
    /// The root table's signature is not the expected `RSDT` or `XSDT`.
    RootBadSignature {
        /// Address of the root table.
        address: u64,
        /// What was there.
        found: Signature,
    },
    /// The root table's length is below its header size, above [`MAX_TABLE_LEN`] or runs
    /// out of memory.
    RootBadLength {
        /// Address of the root table.
        address: u64,
        /// The length it claims.
        length: u32,
    },
    /// The root table's checksum is wrong.
    RootBadChecksum {
        /// Address of the root table.
        address: u64,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RsdpUnreadable { address } => write!(f, "RSDP at {address:#x} is not readable"),
            Self::RsdpBadSignature { address } => {
                write!(f, "no RSDP signature at {address:#x}")
            }
            Self::RsdpBadChecksum { address } => {
                write!(f, "RSDP at {address:#x} has a bad checksum")
            }
            Self::RsdpBadLength { address, length } => {
                write!(f, "RSDP at {address:#x} has a bad length {length}")
            }
            Self::RsdpBadExtendedChecksum { address } => {
                write!(f, "RSDP at {address:#x} has a bad extended checksum")
            }
            Self::NoRootTable => write!(f, "RSDP names neither an RSDT nor an XSDT"),
            Self::RootUnreadable { address } => {
                write!(f, "root table at {address:#x} is not readable")
            }
            Self::RootBadSignature { address, found } => {
                write!(f, "root table at {address:#x} has signature \"{found}\"")
            }
            Self::RootBadLength { address, length } => {
                write!(f, "root table at {address:#x} has a bad length {length}")
            }
            Self::RootBadChecksum { address } => {
                write!(f, "root table at {address:#x} has a bad checksum")
            }
        }
    }
}

/// Reads the ACPI tables reachable from the RSDP at physical address `rsdp`.
///
/// The XSDT is used when the RSDP (revision 2+) names one and it is valid; otherwise the RSDT
/// (an invalid XSDT, or a revision 2+ RSDP whose length or extended checksum is wrong, with
/// a valid RSDT is a warning). Each table the root lists is checked (readable, length,
/// checksum) and skipped with a warning if bad.
pub fn parse(mem: &impl PhysMemory, rsdp: u64) -> Result<AcpiInfo, AcpiError> {
    parse_from(mem, rsdp, false)
}

/// [`parse`] from the ACPI 1.0 part of the RSDP at `rsdp` alone (its first 20 bytes, its
/// RSDT), whatever its revision says: for a copy of those bytes only, such as Multiboot2's
/// tag 14, after which lies something else than the RSDP's revision 2 part.
pub fn parse_acpi1(mem: &impl PhysMemory, rsdp: u64) -> Result<AcpiInfo, AcpiError> {
    parse_from(mem, rsdp, true)
}

/// [`parse`], or [`parse_acpi1`] with `acpi1_only`.
fn parse_from(mem: &impl PhysMemory, rsdp: u64, acpi1_only: bool) -> Result<AcpiInfo, AcpiError> {
    let ptr = rsdp::check(mem, rsdp, acpi1_only)?;
    let mut info = AcpiInfo::new(rsdp, ptr.revision, ptr.oem_id);

    let rsdt = Some(u64::from(ptr.rsdt)).filter(|&a| a != 0);
    let (root, root_addr, entry_size) = match (ptr.xsdt, rsdt) {
        (Some(x), rsdt) => match load_root(mem, x, *b"XSDT") {
            Ok(t) => (t, x, 8),
            Err(e) => {
                let r = rsdt.ok_or(e)?;
                let t = load_root(mem, r, *b"RSDT")?;
                info.warn(Warning::BadXsdt(e));
                (t, r, 4)
            }
        },
        (None, Some(r)) => (load_root(mem, r, *b"RSDT")?, r, 4),
        (None, None) => return Err(ptr.v2_error.unwrap_or(AcpiError::NoRootTable)),
    };
    // A broken revision 2+ part names no XSDT: the ACPI 1.0 part's RSDT is used instead.
    if let Some(error) = ptr.v2_error {
        info.warn(Warning::BadXsdt(error));
    }
    info.root_table = root_addr;
    let (root_signature, root) = root;
    info.add_table(root_addr, root_signature, root);

    let entries = root.get(HEADER_LEN..).unwrap_or(&[]);
    for entry in entries.chunks_exact(entry_size) {
        let address = if entry_size == 8 {
            read_u64(entry, 0)
        } else {
            read_u32(entry, 0).map(u64::from)
        };
        match address {
            Some(0) | None => info.warn(Warning::NullTableAddress),
            Some(a) => match load_table(mem, a) {
                Ok((signature, table)) => {
                    info.add_table(a, signature, table);
                    dispatch(mem, &mut info, a, signature, table);
                }
                Err(w) => info.warn(w),
            },
        }
    }
    Ok(info)
}

/// Hands a checked table (signature `sig`) to the parser for its signature; unknown tables
/// are only listed.
fn dispatch(
    mem: &impl PhysMemory,
    info: &mut AcpiInfo,
    address: u64,
    sig: Signature,
    table: &[u8],
) {
    // Whether this is the first table of its kind (marking it seen).
    let first = |seen: &mut bool| !core::mem::replace(seen, true);
    match &sig.0 {
        b"APIC" if first(&mut info.seen.madt) => madt::parse(info, table),
        b"HPET" if first(&mut info.seen.hpet) => info::parse_hpet(info, table),
        b"MCFG" if first(&mut info.seen.mcfg) => info::parse_mcfg(info, table),
        b"FACP" if first(&mut info.seen.fadt) => fadt::parse(mem, info, table),
        b"APIC" | b"HPET" | b"MCFG" | b"FACP" => info.warn(Warning::DuplicateTable {
            signature: sig,
            address,
        }),
        _ => {}
    }
}

/// The signature of a table whose header is known to be present.
fn signature(table: &[u8]) -> Signature {
    Signature(read_array(table, 0).unwrap_or_default())
}

/// Reads and checks the root table at `address`, which must carry signature `expected`.
fn load_root(
    mem: &impl PhysMemory,
    address: u64,
    expected: [u8; 4],
) -> Result<(Signature, &[u8]), AcpiError> {
    let (found, table) = load_table(mem, address).map_err(|w| match w {
        Warning::BadChecksum { .. } => AcpiError::RootBadChecksum { address },
        Warning::BadTableLength { length, .. } => AcpiError::RootBadLength { address, length },
        _ => AcpiError::RootUnreadable { address },
    })?;
    if found.0 != expected {
        return Err(AcpiError::RootBadSignature { address, found });
    }
    Ok((found, table))
}

/// Reads the description table at `address`: its header must be readable, its length at
/// least a header, at most [`MAX_TABLE_LEN`] and all readable, and its checksum right. Returns its signature (read
/// from the fixed-size header, so without a bounds check) and its bytes. Never inlined, like
/// [`fetch`]: the root table, the tables it lists and the DSDT share one copy.
#[inline(never)]
fn load_table(mem: &impl PhysMemory, address: u64) -> Result<(Signature, &[u8]), Warning> {
    // A fixed-size array: the field reads below cannot fail, so they compile to no checks.
    let header: &[u8; HEADER_LEN] = fetch(mem, address, HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(Warning::TableUnreadable { address })?;
    let signature = signature(header);
    let length = read_u32(header, 4).unwrap_or(0);
    let table = usize::try_from(length)
        .ok()
        .filter(|l| (HEADER_LEN..=MAX_TABLE_LEN).contains(l))
        .and_then(|l| fetch(mem, address, l))
        .ok_or(Warning::BadTableLength {
            signature,
            address,
            length,
        })?;
    if !checksum_ok(table) {
        return Err(Warning::BadChecksum { signature, address });
    }
    Ok((signature, table))
}

/// Reads exactly `len` bytes at `phys` (guarding against a memory that returns fewer).
/// Never inlined: the RSDP, the tables and the FACS share one copy (the boot's cost under
/// an emulator is every distinct copy of code it runs).
#[inline(never)]
fn fetch(mem: &impl PhysMemory, phys: u64, len: usize) -> Option<&[u8]> {
    mem.read(phys, len).filter(|b| b.len() == len)
}

/// Whether the bytes sum to zero modulo 256, as every ACPI checksum requires. Never
/// inlined, like [`fetch`]: one copy for the RSDP's two checksums and every table's.
#[inline(never)]
fn checksum_ok(bytes: &[u8]) -> bool {
    let mut sum = 0u8;
    for &byte in bytes {
        sum = sum.wrapping_add(byte);
    }
    sum == 0
}
