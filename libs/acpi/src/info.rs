//! [`AcpiInfo`], the parse result, and the record types it holds.

use core::fmt;

use rexo_memmap::{MemoryMap, NotDevice};
use rexo_physmem::{PhysMemory, read_u8, read_u16, read_u32, read_u64};

use crate::fadt::Fadt;
use crate::{
    AcpiError, HEADER_LEN, MAX_IO_APICS, MAX_LOCAL_APIC_NMIS, MAX_LOCAL_APICS, MAX_MCFG_SEGMENTS,
    MAX_OVERRIDES, MAX_TABLES, MAX_WARNINGS, Signature, load_table, s5, signature,
};

/// A fixed-capacity list; `push` past the capacity reports `false`.
#[derive(Clone, Debug)]
struct List<T, const N: usize> {
    items: [T; N],
    len: usize,
}

/// The value of a [`List`]'s unused slots, known at compile time.
trait Unused: Copy {
    /// The unused slot.
    const UNUSED: Self;
}

impl<T: Unused, const N: usize> List<T, N> {
    /// The empty list.
    const EMPTY: Self = Self {
        items: [T::UNUSED; N],
        len: 0,
    };
}

impl<T: Copy, const N: usize> List<T, N> {
    fn push(&mut self, item: T) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = item;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn is_full(&self) -> bool {
        self.len >= N
    }

    fn as_slice(&self) -> &[T] {
        self.items.get(..self.len).unwrap_or(&[])
    }
}

/// One table found through the RSDP (including the root table, DSDT and FACS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableInfo {
    /// The table's signature.
    pub signature: Signature,
    /// Physical address of the table.
    pub address: u64,
    /// Length in bytes, as the table says.
    pub length: u32,
}

/// A processor's local APIC (MADT entry type 0, or type 9 for x2APIC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalApic {
    /// ACPI processor UID (matches the processor objects in the namespace).
    pub processor_uid: u32,
    /// The local APIC (or x2APIC) ID.
    pub apic_id: u32,
    /// The processor is usable now.
    pub enabled: bool,
    /// The processor is disabled now but can be brought online (ACPI 6.3+).
    pub online_capable: bool,
    /// The entry was a Processor Local x2APIC structure.
    pub x2apic: bool,
}

/// An IO-APIC (MADT entry type 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoApic {
    /// The IO-APIC's ID.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u32,
    /// First global system interrupt it handles.
    pub gsi_base: u32,
}

/// How many redirection entries (GSIs) the IO-APIC at `address` has, whose version
/// register (IOAPICVER, register 1) reads `version`: its maximum redirection entry (bits
/// 16-23) plus one. A register reading all ones is no IO-APIC answering there (Linux skips
/// such an IO-APIC too): [`Warning::IoApicNotAnswering`], and it is to be left unused.
pub fn io_apic_entries(address: u64, version: u32) -> Result<u32, Warning> {
    if version == u32::MAX {
        return Err(Warning::IoApicNotAnswering { address });
    }
    Ok((version >> 16 & 0xFF) + 1)
}

/// Whether GSI `gsi` is one of the `entries` GSIs from `gsi_base` an IO-APIC serves
/// (without overflowing where the base is near `u32::MAX`).
pub fn io_apic_serves(gsi_base: u32, entries: u32, gsi: u32) -> bool {
    gsi.checked_sub(gsi_base)
        .is_some_and(|index| index < entries)
}

/// Interrupt input polarity (MPS INTI flags, bits 0-1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Polarity {
    /// As the bus specifies (ISA: active high).
    #[default]
    BusDefault,
    /// Active high.
    ActiveHigh,
    /// The reserved value 2.
    Reserved,
    /// Active low.
    ActiveLow,
}

/// Interrupt trigger mode (MPS INTI flags, bits 2-3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TriggerMode {
    /// As the bus specifies (ISA: edge).
    #[default]
    BusDefault,
    /// Edge triggered.
    Edge,
    /// The reserved value 2.
    Reserved,
    /// Level triggered.
    Level,
}

/// Splits MPS INTI flags into polarity and trigger mode.
pub(crate) fn inti_flags(flags: u16) -> (Polarity, TriggerMode) {
    let polarity = match flags & 3 {
        0 => Polarity::BusDefault,
        1 => Polarity::ActiveHigh,
        2 => Polarity::Reserved,
        _ => Polarity::ActiveLow,
    };
    let trigger = match (flags >> 2) & 3 {
        0 => TriggerMode::BusDefault,
        1 => TriggerMode::Edge,
        2 => TriggerMode::Reserved,
        _ => TriggerMode::Level,
    };
    (polarity, trigger)
}

/// An interrupt source override (MADT entry type 2): ISA IRQ `irq` arrives at `gsi`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterruptOverride {
    /// The bus (0 = ISA).
    pub bus: u8,
    /// The bus-relative IRQ.
    pub irq: u8,
    /// The global system interrupt it is wired to.
    pub gsi: u32,
    /// Input polarity.
    pub polarity: Polarity,
    /// Trigger mode.
    pub trigger: TriggerMode,
}

/// Where an ISA IRQ arrives at the IO-APICs and how it signals ([`AcpiInfo::isa_route`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaRoute {
    /// The global system interrupt.
    pub gsi: u32,
    /// Active low (else active high, the ISA default).
    pub active_low: bool,
    /// Level-triggered (else edge, the ISA default).
    pub level: bool,
}

/// Which local APIC LINT pin is wired to NMI (MADT entry type 4, or 0xA for x2APIC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalApicNmi {
    /// The processor UID it applies to; `None` means every processor.
    pub processor_uid: Option<u32>,
    /// The LINT pin (0 or 1).
    pub lint: u8,
    /// Input polarity.
    pub polarity: Polarity,
    /// Trigger mode.
    pub trigger: TriggerMode,
}

/// The HPET table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hpet {
    /// Physical address of the HPET registers.
    pub base_address: u64,
    /// The HPET's sequence number.
    pub number: u8,
    /// Minimum clock tick in periodic mode, in main counter ticks.
    pub minimum_tick: u16,
    /// Hardware revision ID (event timer block ID bits 0-7).
    pub hardware_revision: u8,
    /// Number of comparators (bits 8-12, plus one).
    pub comparators: u8,
    /// The main counter is 64 bits wide (bit 13).
    pub counter_64bit: bool,
    /// The HPET can replace the legacy PIT and RTC interrupts (bit 15).
    pub legacy_replacement: bool,
    /// PCI vendor ID of the block (bits 16-31).
    pub pci_vendor_id: u16,
}

/// One PCI Express enhanced configuration space area (an MCFG entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct McfgSegment {
    /// Physical base address of the ECAM area.
    pub base: u64,
    /// PCI segment group number.
    pub segment: u16,
    /// First bus decoded.
    pub start_bus: u8,
    /// Last bus decoded.
    pub end_bus: u8,
}

/// The fixed-capacity lists [`Capacity`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    /// [`crate::MAX_LOCAL_APICS`].
    LocalApics,
    /// [`crate::MAX_LOCAL_APIC_NMIS`].
    LocalApicNmis,
    /// [`crate::MAX_IO_APICS`].
    IoApics,
    /// [`crate::MAX_OVERRIDES`].
    Overrides,
    /// [`crate::MAX_MCFG_SEGMENTS`].
    McfgSegments,
    /// [`crate::MAX_TABLES`].
    Tables,
}

/// Something wrong with the tables that [`crate::parse`] skipped over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A root table entry is zero.
    NullTableAddress,
    /// A table's header is not in readable memory.
    TableUnreadable {
        /// Where the table should be.
        address: u64,
    },
    /// A table's length is below the header size (a FACS's below 64 bytes), above
    /// [`crate::MAX_TABLE_LEN`], or the table runs out of readable memory.
    BadTableLength {
        /// The table's signature.
        signature: Signature,
        /// Its address.
        address: u64,
        /// The length it claims.
        length: u32,
    },
    /// A table's checksum is wrong.
    BadChecksum {
        /// The table's signature.
        signature: Signature,
        /// Its address.
        address: u64,
    },
    /// A pointer to a DSDT or FACS found a different signature.
    UnexpectedSignature {
        /// The signature wanted.
        expected: Signature,
        /// The signature found.
        found: Signature,
        /// Where.
        address: u64,
    },
    /// A second MADT, HPET, MCFG or FADT; the first one is used.
    DuplicateTable {
        /// The table's signature.
        signature: Signature,
        /// Address of the ignored copy.
        address: u64,
    },
    /// A table is shorter than the fixed part its parser needs.
    TableTooShort {
        /// The table's signature.
        signature: Signature,
        /// Its length.
        length: u32,
    },
    /// A MADT entry is too short for its type or runs past the table (a length below 2 ends
    /// the walk).
    BadMadtEntry {
        /// The entry's type.
        entry_type: u8,
        /// Its offset in the MADT.
        offset: u32,
    },
    /// An MCFG entry whose start bus is above its end bus.
    BadMcfgEntry {
        /// Index of the entry.
        index: u32,
    },
    /// The XSDT is broken, or the revision 2+ part of the RSDP that names it (its length or
    /// extended checksum); the RSDT was used instead.
    BadXsdt(AcpiError),
    /// A `_S5_` package was found in the DSDT but could not be decoded ([`AcpiInfo::find_s5`]).
    BadS5,
    /// A list was full; later entries were dropped.
    CapacityExceeded(Capacity),
    /// A second MADT entry (type 0 or 9) for a local APIC ID already listed; the first
    /// one is kept (starting one processor twice would reset it while it runs).
    DuplicateLocalApic {
        /// The APIC ID.
        apic_id: u32,
    },
    /// The FADT's century register is at a CMOS index the RTC's ports 0x70 and 0x71
    /// cannot read as such (one of the clock's own registers, or the extended bank at
    /// 0x80 and above); it is taken as absent ([`crate::Fadt::century`]).
    BadCenturyIndex {
        /// The index the FADT gives.
        index: u8,
    },
    /// A MADT IO-APIC entry gives its registers' address as 0; the entry is dropped
    /// (its register window would be page 0, where no IO-APIC can be).
    IoApicAtAddressZero {
        /// The IO-APIC's ID.
        id: u8,
    },
    /// The MADT's local APIC address override entry (type 5) gives address 0; it is
    /// ignored, and the address stays the MADT header's (or the default).
    LocalApicOverrideAtZero,
    /// The local APIC's registers are not device memory by the memory map
    /// ([`AcpiInfo::check_apic_registers`]); [`DEFAULT_LOCAL_APIC_ADDRESS`] is used instead.
    LocalApicNotDevice {
        /// The address the MADT gave.
        address: u64,
        /// What the map says is there.
        why: NotDevice,
    },
    /// A MADT IO-APIC's registers are not device memory by the memory map
    /// ([`AcpiInfo::check_apic_registers`]); the IO-APIC is left unused.
    IoApicNotDevice {
        /// The IO-APIC's ID.
        id: u8,
        /// Its registers' address.
        address: u32,
        /// What the map says is there.
        why: NotDevice,
    },
    /// The version register of the IO-APIC a MADT entry places at `address` reads all
    /// ones: nothing answers there ([`io_apic_entries`]), and it is left unused.
    IoApicNotAnswering {
        /// The IO-APIC's register address.
        address: u64,
    },
    /// The HPET table's registers are not in system memory (address space 0): the HPET is
    /// taken as absent.
    HpetNotInMemory {
        /// The address space ID of its base address.
        address_space: u8,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NullTableAddress => write!(f, "root table lists a null table address"),
            Self::TableUnreadable { address } => write!(f, "table at {address:#x} is unreadable"),
            Self::BadTableLength {
                signature,
                address,
                length,
            } => {
                write!(
                    f,
                    "table \"{signature}\" at {address:#x} has a bad length {length}"
                )
            }
            Self::BadChecksum { signature, address } => {
                write!(
                    f,
                    "table \"{signature}\" at {address:#x} has a bad checksum"
                )
            }
            Self::UnexpectedSignature {
                expected,
                found,
                address,
            } => write!(
                f,
                "expected table \"{expected}\" at {address:#x}, found \"{found}\""
            ),
            Self::DuplicateTable { signature, address } => {
                write!(f, "duplicate table \"{signature}\" at {address:#x} ignored")
            }
            Self::TableTooShort { signature, length } => {
                write!(f, "table \"{signature}\" is too short ({length} bytes)")
            }
            Self::BadMadtEntry { entry_type, offset } => {
                write!(f, "bad MADT entry of type {entry_type} at offset {offset}")
            }
            Self::BadMcfgEntry { index } => write!(f, "MCFG entry {index} has start bus > end bus"),
            Self::BadXsdt(e) => write!(f, "XSDT unusable ({e}); using the RSDT"),
            Self::BadS5 => write!(f, "DSDT has an undecodable _S5_ package"),
            Self::CapacityExceeded(c) => write!(f, "too many entries: {c:?} list is full"),
            Self::DuplicateLocalApic { apic_id } => {
                write!(
                    f,
                    "MADT lists local APIC ID {apic_id} twice; the second is ignored"
                )
            }
            Self::BadCenturyIndex { index } => write!(
                f,
                "FADT century register at CMOS index {index:#04x} is not one ports 0x70/0x71 read; ignored (years 2000-2099)"
            ),
            Self::IoApicAtAddressZero { id } => {
                write!(f, "MADT IO-APIC {id} at address 0: ignored")
            }
            Self::LocalApicOverrideAtZero => {
                write!(f, "MADT local APIC address override to address 0: ignored")
            }
            Self::LocalApicNotDevice { address, why } => write!(
                f,
                "local APIC registers at {address:#x} {}: using {DEFAULT_LOCAL_APIC_ADDRESS:#x}",
                not_device(why)
            ),
            Self::IoApicNotDevice { id, address, why } => write!(
                f,
                "MADT IO-APIC {id}'s registers at {address:#x} {}: ignored",
                not_device(why)
            ),
            Self::IoApicNotAnswering { address } => write!(
                f,
                "no IO-APIC answers at {address:#x} (its registers read all ones): not used"
            ),
            Self::HpetNotInMemory { address_space } => write!(
                f,
                "HPET registers in address space {address_space}, not system memory: HPET ignored"
            ),
        }
    }
}

/// Why a register window is not device memory, for a warning.
fn not_device(why: NotDevice) -> &'static str {
    match why {
        NotDevice::Ram => "lie in RAM by the memory map",
        NotDevice::OutOfReach => "lie in page 0 or past the identity map",
    }
}

/// Bytes of the local APIC's register page.
const LOCAL_APIC_WINDOW: u64 = 4096;
/// Bytes of an IO-APIC's register window (IOREGSEL at 0, IOWIN at 0x10).
const IO_APIC_WINDOW: u64 = 0x20;

/// Which single-instance tables have been parsed already.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    pub madt: bool,
    pub hpet: bool,
    pub mcfg: bool,
    pub fadt: bool,
}

/// The local APIC's architectural physical address after reset (Intel SDM Vol. 3A,
/// "Local APIC Status and Location"), used when the tables name none.
pub const DEFAULT_LOCAL_APIC_ADDRESS: u64 = 0xFEE0_0000;

/// Everything [`crate::parse`] learned from the ACPI tables.
#[derive(Clone, Debug)]
pub struct AcpiInfo {
    /// Physical address of the RSDP.
    pub rsdp: u64,
    /// The RSDP's revision (0 for ACPI 1.0, 2 for 2.0 and later).
    pub revision: u8,
    /// The OEM ID from the RSDP.
    pub oem_id: [u8; 6],
    /// Physical address of the root table in use (XSDT or RSDT).
    pub root_table: u64,
    /// Local APIC registers' physical address (the MADT's, or its 64-bit override entry);
    /// [`DEFAULT_LOCAL_APIC_ADDRESS`] without a usable MADT or where it says 0 (an override
    /// entry saying 0 is ignored with [`Warning::LocalApicOverrideAtZero`]), and where
    /// it is not device memory once [`Self::check_apic_registers`] ran.
    pub local_apic_address: u64,
    /// The MADT's PCAT_COMPAT flag: dual 8259 PICs are present and must be masked.
    pub pcat_compat: bool,
    /// The HPET table, if any.
    pub hpet: Option<Hpet>,
    /// The FADT fields the kernel needs, if a FADT was found.
    pub fadt: Option<Fadt>,
    pub(crate) seen: Seen,
    local_apics: List<LocalApic, MAX_LOCAL_APICS>,
    nmis: List<LocalApicNmi, MAX_LOCAL_APIC_NMIS>,
    io_apics: List<IoApic, MAX_IO_APICS>,
    overrides: List<InterruptOverride, MAX_OVERRIDES>,
    mcfg: List<McfgSegment, MAX_MCFG_SEGMENTS>,
    tables: List<TableInfo, MAX_TABLES>,
    warnings: List<Option<Warning>, MAX_WARNINGS>,
    dropped_warnings: u32,
}

impl AcpiInfo {
    /// The empty result, built at compile time (filling its lists at run time was hundreds
    /// of instructions the boot translates under an emulator).
    const EMPTY: Self = Self {
        rsdp: 0,
        revision: 0,
        oem_id: [0; 6],
        root_table: 0,
        local_apic_address: DEFAULT_LOCAL_APIC_ADDRESS,
        pcat_compat: false,
        hpet: None,
        fadt: None,
        seen: Seen {
            madt: false,
            hpet: false,
            mcfg: false,
            fadt: false,
        },
        local_apics: List::EMPTY,
        nmis: List::EMPTY,
        io_apics: List::EMPTY,
        overrides: List::EMPTY,
        mcfg: List::EMPTY,
        tables: List::EMPTY,
        warnings: List::EMPTY,
        dropped_warnings: 0,
    };

    /// An empty result for the RSDP at `rsdp`: [`Self::EMPTY`] copied whole, then the RSDP's
    /// fields set (`..Self::EMPTY` copies each list on its own).
    pub(crate) fn new(rsdp: u64, revision: u8, oem_id: [u8; 6]) -> Self {
        let mut info = Self::EMPTY;
        info.rsdp = rsdp;
        info.revision = revision;
        info.oem_id = oem_id;
        info
    }

    /// Local APICs in MADT order (entries from both type 0 and type 9), one per APIC ID:
    /// a later entry for an ID already listed is dropped with
    /// [`Warning::DuplicateLocalApic`].
    pub fn local_apics(&self) -> &[LocalApic] {
        self.local_apics.as_slice()
    }

    /// Local APIC NMI entries in MADT order.
    pub fn local_apic_nmis(&self) -> &[LocalApicNmi] {
        self.nmis.as_slice()
    }

    /// IO-APICs in MADT order (but those at address 0: [`Warning::IoApicAtAddressZero`];
    /// and once [`Self::check_apic_registers`] ran, those outside device memory).
    pub fn io_apics(&self) -> &[IoApic] {
        self.io_apics.as_slice()
    }

    /// Interrupt source overrides in MADT order.
    pub fn interrupt_overrides(&self) -> &[InterruptOverride] {
        self.overrides.as_slice()
    }

    /// PCI Express ECAM areas from the MCFG (empty without one).
    pub fn mcfg_segments(&self) -> &[McfgSegment] {
        self.mcfg.as_slice()
    }

    /// Every valid table found, in discovery order: root table, the tables it lists, then
    /// FACS and DSDT.
    pub fn tables(&self) -> &[TableInfo] {
        self.tables.as_slice()
    }

    /// The first table with signature `sig`, if any.
    pub fn table(&self, sig: &[u8; 4]) -> Option<&TableInfo> {
        self.tables().iter().find(|t| &t.signature.0 == sig)
    }

    /// What was wrong with the tables, in the order it was found (identical warnings once).
    pub fn warnings(&self) -> impl Iterator<Item = Warning> + '_ {
        self.warnings.as_slice().iter().flatten().copied()
    }

    /// How many warnings did not fit into [`MAX_WARNINGS`].
    pub fn dropped_warnings(&self) -> u32 {
        self.dropped_warnings
    }

    /// The global system interrupt ISA IRQ `irq` arrives at, after overrides.
    pub fn isa_irq_to_gsi(&self, irq: u8) -> u32 {
        self.isa_route(irq).gsi
    }

    /// ISA IRQ `irq`'s GSI, polarity and trigger mode: its interrupt source override,
    /// else the ISA defaults (GSI = IRQ, edge, active high). PC chipsets wire the PIT
    /// (IRQ 0) to IO-APIC pin 2; a MADT without the IRQ 0 override (QEMU's `microvm`
    /// has none) still has that wiring, so IRQ 0 maps to GSI 2 then too, as other
    /// kernels do.
    pub fn isa_route(&self, irq: u8) -> IsaRoute {
        let found = self
            .interrupt_overrides()
            .iter()
            .find(|o| o.bus == 0 && o.irq == irq);
        let default_gsi = if irq == 0 { 2 } else { u32::from(irq) };
        IsaRoute {
            gsi: found.map_or(default_gsi, |o| o.gsi),
            active_low: found.is_some_and(|o| o.polarity == Polarity::ActiveLow),
            level: found.is_some_and(|o| o.trigger == TriggerMode::Level),
        }
    }

    /// `SLP_TYPa` and `SLP_TYPb` for soft-off, from the `\_S5` package of the FADT's DSDT,
    /// read again through `mem` and searched now (only power-off needs them, so the boot does
    /// not scan the DSDT). `Ok(None)` without a FADT, a valid DSDT (the boot warned about a
    /// broken one) or a `Name (_S5, ...)`; [`Warning::BadS5`] if one is there but none
    /// decodes.
    pub fn find_s5(&self, mem: &impl PhysMemory) -> Result<Option<(u8, u8)>, Warning> {
        let Some(address) = self.fadt.and_then(|f| f.dsdt) else {
            return Ok(None);
        };
        let dsdt = match load_table(mem, address) {
            Ok((found, table)) if found.0 == *b"DSDT" => table,
            _ => return Ok(None),
        };
        match s5::find(dsdt.get(HEADER_LEN..).unwrap_or(&[])) {
            s5::Found::Yes(v) => Ok(Some(v)),
            s5::Found::Malformed => Err(Warning::BadS5),
            s5::Found::No => Ok(None),
        }
    }

    /// Records a warning unless an identical one is already recorded.
    pub(crate) fn warn(&mut self, w: Warning) {
        if self.warnings().any(|x| x == w) {
            return;
        }
        if !self.warnings.push(Some(w)) {
            self.dropped_warnings = self.dropped_warnings.saturating_add(1);
        }
    }

    /// Checks the APICs' register windows against `map` before anything writes them: each
    /// must be device memory below `limit`, the top of the identity map the kernel reaches
    /// them through ([`MemoryMap::device_range`]: no RAM of any kind, not in page 0). An
    /// IO-APIC whose 32 bytes are not is dropped ([`Warning::IoApicNotDevice`]); a local
    /// APIC whose page is not is taken to be at [`DEFAULT_LOCAL_APIC_ADDRESS`]
    /// ([`Warning::LocalApicNotDevice`]). The tables name where the firmware put them, and
    /// a wrong address would have the kernel write RAM (its own image, say) or fault.
    pub fn check_apic_registers(&mut self, map: &MemoryMap, limit: u64) {
        let address = self.local_apic_address;
        if let Err(why) = map.device_range(address, LOCAL_APIC_WINDOW, limit) {
            self.warn(Warning::LocalApicNotDevice { address, why });
            self.local_apic_address = DEFAULT_LOCAL_APIC_ADDRESS;
        }
        let listed = core::mem::replace(&mut self.io_apics, List::EMPTY);
        for &io in listed.as_slice() {
            match map.device_range(u64::from(io.address), IO_APIC_WINDOW, limit) {
                Ok(_) => _ = self.io_apics.push(io),
                Err(why) => self.warn(Warning::IoApicNotDevice {
                    id: io.id,
                    address: io.address,
                    why,
                }),
            }
        }
    }

    /// Lists a checked table with signature `signature`.
    pub(crate) fn add_table(&mut self, address: u64, signature: Signature, table: &[u8]) {
        let entry = TableInfo {
            signature,
            address,
            length: u32::try_from(table.len()).unwrap_or(u32::MAX),
        };
        if !self.tables.push(entry) {
            self.warn(Warning::CapacityExceeded(Capacity::Tables));
        }
    }

    pub(crate) fn add_local_apic(&mut self, lapic: LocalApic) {
        if self.local_apics.is_full() {
            self.warn(Warning::CapacityExceeded(Capacity::LocalApics));
        } else if self
            .local_apics()
            .iter()
            .any(|l| l.apic_id == lapic.apic_id)
        {
            self.warn(Warning::DuplicateLocalApic {
                apic_id: lapic.apic_id,
            });
        } else {
            self.local_apics.push(lapic);
        }
    }

    pub(crate) fn add_nmi(&mut self, nmi: LocalApicNmi) {
        if !self.nmis.push(nmi) {
            self.warn(Warning::CapacityExceeded(Capacity::LocalApicNmis));
        }
    }

    pub(crate) fn add_io_apic(&mut self, io: IoApic) {
        if !self.io_apics.push(io) {
            self.warn(Warning::CapacityExceeded(Capacity::IoApics));
        }
    }

    pub(crate) fn add_override(&mut self, o: InterruptOverride) {
        if !self.overrides.push(o) {
            self.warn(Warning::CapacityExceeded(Capacity::Overrides));
        }
    }
}

impl Unused for TableInfo {
    const UNUSED: Self = Self {
        signature: Signature([0; 4]),
        address: 0,
        length: 0,
    };
}

impl Unused for LocalApic {
    const UNUSED: Self = Self {
        processor_uid: 0,
        apic_id: 0,
        enabled: false,
        online_capable: false,
        x2apic: false,
    };
}

impl Unused for IoApic {
    const UNUSED: Self = Self {
        id: 0,
        address: 0,
        gsi_base: 0,
    };
}

impl Unused for InterruptOverride {
    const UNUSED: Self = Self {
        bus: 0,
        irq: 0,
        gsi: 0,
        polarity: Polarity::BusDefault,
        trigger: TriggerMode::BusDefault,
    };
}

impl Unused for LocalApicNmi {
    const UNUSED: Self = Self {
        processor_uid: None,
        lint: 0,
        polarity: Polarity::BusDefault,
        trigger: TriggerMode::BusDefault,
    };
}

impl Unused for McfgSegment {
    const UNUSED: Self = Self {
        base: 0,
        segment: 0,
        start_bus: 0,
        end_bus: 0,
    };
}

impl Unused for Option<Warning> {
    const UNUSED: Self = None;
}

/// Fixed part of the HPET table: header, block ID, base address GAS, number, minimum tick,
/// page protection.
const HPET_LEN: usize = 56;

/// Reads the HPET table.
pub(crate) fn parse_hpet(info: &mut AcpiInfo, table: &[u8]) {
    let (Some(id), Some(base), Some(number), Some(tick)) = (
        read_u32(table, 36),
        read_u64(table, 44),
        read_u8(table, 52),
        read_u16(table, 53),
    ) else {
        info.warn(too_short(table));
        return;
    };
    if table.len() < HPET_LEN {
        info.warn(too_short(table));
        return;
    }
    // The base address is a Generic Address Structure at 40: only system memory (space 0)
    // holds registers the kernel maps; an HPET elsewhere is no HPET to it.
    if let Some(space @ 1..) = read_u8(table, 40) {
        info.warn(Warning::HpetNotInMemory {
            address_space: space,
        });
        return;
    }
    info.hpet = Some(Hpet {
        base_address: base,
        number,
        minimum_tick: tick,
        hardware_revision: (id & 0xff) as u8,
        comparators: ((id >> 8) & 0x1f) as u8 + 1,
        counter_64bit: id & (1 << 13) != 0,
        legacy_replacement: id & (1 << 15) != 0,
        pci_vendor_id: (id >> 16) as u16,
    });
}

/// Offset of the first MCFG entry (header plus 8 reserved bytes).
const MCFG_ENTRIES: usize = HEADER_LEN + 8;

/// Reads the MCFG's ECAM areas.
pub(crate) fn parse_mcfg(info: &mut AcpiInfo, table: &[u8]) {
    let Some(entries) = table.get(MCFG_ENTRIES..) else {
        info.warn(too_short(table));
        return;
    };
    for (index, e) in entries.chunks_exact(16).enumerate() {
        let (Some(base), Some(segment), Some(start_bus), Some(end_bus)) = (
            read_u64(e, 0),
            read_u16(e, 8),
            read_u8(e, 10),
            read_u8(e, 11),
        ) else {
            continue;
        };
        if start_bus > end_bus {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            info.warn(Warning::BadMcfgEntry { index });
            continue;
        }
        if !info.mcfg.push(McfgSegment {
            base,
            segment,
            start_bus,
            end_bus,
        }) {
            info.warn(Warning::CapacityExceeded(Capacity::McfgSegments));
            break;
        }
    }
}

/// The warning for a table shorter than its fixed part.
pub(crate) fn too_short(table: &[u8]) -> Warning {
    Warning::TableTooShort {
        signature: signature(table),
        length: u32::try_from(table.len()).unwrap_or(u32::MAX),
    }
}
