//! The FADT (signature `FACP`) and, through it, the FACS and the DSDT.

use rexo_physmem::{PhysMemory, read_u8, read_u16, read_u32, read_u64};

use crate::info::{AcpiInfo, Warning, too_short};
use crate::{MAX_TABLE_LEN, Signature, fetch, load_table, signature};

/// Length of the ACPI 1.0 FADT, the least we accept.
const V1_LEN: usize = 116;
/// Minimum length of a FACS.
const FACS_MIN_LEN: usize = 64;

/// FADT flag: the reset register is supported.
const RESET_REG_SUP: u32 = 1 << 10;
/// FADT flag: the PM timer is 32 bits wide (else 24).
const TMR_VAL_EXT: u32 = 1 << 8;
/// FADT flag: hardware-reduced ACPI (no fixed hardware, sleep registers instead).
const HW_REDUCED_ACPI: u32 = 1 << 20;

/// Address space of a [`GenericAddress`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressSpace {
    /// Memory-mapped.
    #[default]
    SystemMemory,
    /// x86 I/O ports.
    SystemIo,
    /// PCI configuration space.
    PciConfig,
    /// Any other space ID (embedded controller, SMBus, functional fixed hardware...).
    Other(u8),
}

/// An ACPI Generic Address Structure: a register somewhere in an address space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenericAddress {
    /// The address space.
    pub space: AddressSpace,
    /// Register width in bits.
    pub bit_width: u8,
    /// Bit offset of the register at `address`.
    pub bit_offset: u8,
    /// Access size (0 undefined, 1 byte, 2 word, 3 dword, 4 qword).
    pub access_size: u8,
    /// The address in `space`.
    pub address: u64,
}

impl GenericAddress {
    /// Decodes the 12-byte structure at `offset` of `bytes`.
    fn read(bytes: &[u8], offset: usize) -> Option<Self> {
        let space = match read_u8(bytes, offset)? {
            0 => AddressSpace::SystemMemory,
            1 => AddressSpace::SystemIo,
            2 => AddressSpace::PciConfig,
            other => AddressSpace::Other(other),
        };
        Some(Self {
            space,
            bit_width: read_u8(bytes, offset + 1)?,
            bit_offset: read_u8(bytes, offset + 2)?,
            access_size: read_u8(bytes, offset + 3)?,
            address: read_u64(bytes, offset + 4)?,
        })
    }

    /// Where a one-byte write to this register goes, whatever width it says: the reset
    /// and sleep control registers are 8 bits wide at bit offset 0 (ACPI 6.5, the FADT's
    /// `RESET_REG` and section 4.8.3.7), and Linux writes the reset register one byte
    /// whatever its width (ACPICA's "Fix access width for reset vector"); a width of 32 on
    /// port 0xCF9 wrote a dword reaching 0xCFC, PCI's configuration data. `None` at
    /// address 0, for a port above 0xFFFF (none exists: not the port it truncates to) or
    /// in another address space.
    pub fn byte_register(&self) -> Option<ByteRegister> {
        match self.space {
            AddressSpace::SystemIo => self.io_port().map(ByteRegister::Port),
            AddressSpace::SystemMemory if self.address != 0 => {
                Some(ByteRegister::Memory(self.address))
            }
            _ => None,
        }
    }

    /// The I/O port, if this is a non-zero register in I/O space.
    fn io_port(&self) -> Option<u16> {
        if self.space == AddressSpace::SystemIo && self.address != 0 {
            u16::try_from(self.address).ok()
        } else {
            None
        }
    }
}

/// Where a one-byte register write goes ([`GenericAddress::byte_register`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRegister {
    /// An I/O port.
    Port(u16),
    /// A physical memory address.
    Memory(u64),
}

/// The ACPI PM timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmTimer {
    /// Its I/O port.
    pub port: u16,
    /// Counter width in bits: 24 or 32.
    pub bits: u8,
}

/// The reset register and the value to write to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    /// The register.
    pub register: GenericAddress,
    /// The value that resets the machine.
    pub value: u8,
}

/// IA-PC boot architecture flags (FADT `IAPC_BOOT_ARCH`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootArch(pub u16);

impl BootArch {
    /// Legacy devices (ISA/LPC) are present.
    pub fn legacy_devices(self) -> bool {
        self.0 & 1 != 0
    }

    /// An 8042 keyboard controller is present.
    pub fn has_8042(self) -> bool {
        self.0 & 2 != 0
    }

    /// VGA must not be probed.
    pub fn vga_not_present(self) -> bool {
        self.0 & 4 != 0
    }

    /// MSI must not be enabled.
    pub fn msi_not_supported(self) -> bool {
        self.0 & 8 != 0
    }

    /// The OS must not enable PCIe ASPM.
    pub fn pcie_aspm_controls(self) -> bool {
        self.0 & 0x10 != 0
    }

    /// There is no CMOS RTC.
    pub fn cmos_rtc_not_present(self) -> bool {
        self.0 & 0x20 != 0
    }
}

/// The FADT fields the kernel needs. The 64-bit `X_` fields win over the 32-bit ones when
/// present and usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fadt {
    /// The FADT's revision.
    pub revision: u8,
    /// The SCI interrupt (an ISA IRQ, or a GSI on non-PIC systems).
    pub sci_interrupt: u16,
    /// The SMI command port (0: ACPI mode cannot be switched).
    pub smi_command_port: u32,
    /// Value to write to the SMI command port to enter ACPI mode.
    pub acpi_enable: u8,
    /// PM1a event block port.
    pub pm1a_event_block: Option<u16>,
    /// PM1b event block port.
    pub pm1b_event_block: Option<u16>,
    /// PM1 event block length in bytes.
    pub pm1_event_length: u8,
    /// PM1a control block port (`SLP_TYP`/`SLP_EN` go here).
    pub pm1a_control_block: Option<u16>,
    /// PM1b control block port.
    pub pm1b_control_block: Option<u16>,
    /// PM1 control block length in bytes.
    pub pm1_control_length: u8,
    /// PM2 control block port (the arbiter's disable bit).
    pub pm2_control_block: Option<u16>,
    /// PM2 control block length in bytes.
    pub pm2_control_length: u8,
    /// General-purpose event block 0's port (its status and enable registers).
    pub gpe0_block: Option<u16>,
    /// GPE0 block length in bytes.
    pub gpe0_length: u8,
    /// General-purpose event block 1's port.
    pub gpe1_block: Option<u16>,
    /// GPE1 block length in bytes.
    pub gpe1_length: u8,
    /// The PM timer, if the FADT names one.
    pub pm_timer: Option<PmTimer>,
    /// The reset register, if the FADT is long enough and `RESET_REG_SUP` is set.
    pub reset: Option<ResetRegister>,
    /// Sleep control register (hardware-reduced ACPI, FADT 5.0+).
    pub sleep_control: Option<GenericAddress>,
    /// Sleep status register (hardware-reduced ACPI, FADT 5.0+).
    pub sleep_status: Option<GenericAddress>,
    /// The `HW_REDUCED_ACPI` flag.
    pub hardware_reduced: bool,
    /// All FADT flags.
    pub flags: u32,
    /// IA-PC boot architecture flags (FADT revision 3+; `None` before).
    pub boot_arch: Option<BootArch>,
    /// CMOS index of the RTC century register, if the RTC has one: in the standard
    /// bank past the clock's own registers (0x0E to 0x7F), read through ports 0x70 and
    /// 0x71. An index there (0x00 to 0x0D) or in the extended bank (0x80 and above, ports
    /// 0x72 and 0x73; written to port 0x70 it would mask NMIs and read another register)
    /// is dropped with [`Warning::BadCenturyIndex`], as if the RTC had none.
    pub century: Option<u8>,
    /// Physical address of the FACS, if any.
    pub facs: Option<u64>,
    /// Physical address of the DSDT, if any.
    pub dsdt: Option<u64>,
}

/// Where an ACPI sleep request (a sleep type with its enable bit) is written
/// ([`Fadt::sleep_register`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleepRegister<'a> {
    /// Hardware-reduced ACPI's sleep control register ([`Fadt::sleep_control`]).
    Control(&'a GenericAddress),
    /// The PM1a control block's port ([`Fadt::pm1a_control_block`]); the PM1b control
    /// block, where the FADT names one, takes the request too.
    Pm1a(u16),
}

/// How far into the FADT the fields read here reach (the end of the sleep status register).
const READ_LEN: usize = 268;
/// The first CMOS index past the clock's own registers (time 0x00-0x09, status 0x0A-0x0D).
const FIRST_FREE_CMOS_INDEX: u8 = 0x0E;
/// The CMOS indices ports 0x70 and 0x71 reach: bit 7 of the index port masks NMIs.
const CMOS_BANK_SIZE: u8 = 0x80;
/// Where the fields read past [`V1_LEN`] end, ascending; the reset register and its value
/// count as one field (the register is used only with its value).
const FIELD_ENDS: [usize; 13] = [
    129, 140, 148, 160, 172, 184, 196, 208, 220, 232, 244, 256, READ_LEN,
];

impl Fadt {
    /// How many port ranges [`io_ports`](Self::io_ports) gives.
    pub const IO_PORT_RANGES: usize = 10;

    /// Where a sleep request goes: the sleep control register on hardware-reduced ACPI,
    /// else the PM1a control block; `Err` says which of them the FADT lacks.
    pub fn sleep_register(&self) -> Result<SleepRegister<'_>, &'static str> {
        let (control, pm1a) = (self.sleep_control.as_ref(), self.pm1a_control_block);
        match (self.hardware_reduced, control, pm1a) {
            (true, Some(control), _) => Ok(SleepRegister::Control(control)),
            (true, None, _) => Err("hardware-reduced ACPI without a sleep control register"),
            (false, _, Some(pm1a)) => Ok(SleepRegister::Pm1a(pm1a)),
            (false, _, None) => Err("no PM1a control block"),
        }
    }

    /// The I/O ports of the ACPI fixed hardware the FADT names, as (first port, count):
    /// the PM1a and PM1b event and control blocks, the PM2 control block, the PM timer, the
    /// GPE0 and GPE1 blocks, the SMI command port and the reset register where it is a
    /// port; (0, 0) for one it does not name. A block's length is the FADT's, at least
    /// the least the ACPI specification allows (4 bytes of PM1 events, 2 of PM1 control,
    /// 1 of PM2 control, 2 of a GPE block; the PM timer's is 4). Only the kernel may touch
    /// them: a write there can put the machine to sleep, power it off, or take ACPI mode
    /// from the OS.
    pub fn io_ports(&self) -> [(u16, u16); Self::IO_PORT_RANGES] {
        let block = |port: Option<u16>, len: u8, least: u16| {
            port.map_or((0, 0), |port| (port, u16::from(len).max(least)))
        };
        let smi_command = u16::try_from(self.smi_command_port)
            .ok()
            .filter(|&p| p != 0);
        let reset = self.reset.and_then(|reset| reset.register.io_port());
        [
            block(self.pm1a_event_block, self.pm1_event_length, 4),
            block(self.pm1b_event_block, self.pm1_event_length, 4),
            block(self.pm1a_control_block, self.pm1_control_length, 2),
            block(self.pm1b_control_block, self.pm1_control_length, 2),
            block(self.pm2_control_block, self.pm2_control_length, 1),
            block(self.pm_timer.map(|timer| timer.port), 4, 4),
            block(self.gpe0_block, self.gpe0_length, 2),
            block(self.gpe1_block, self.gpe1_length, 2),
            block(smi_command, 1, 1),
            block(reset, 1, 1),
        ]
    }
}

/// Reads the FADT, then lists the FACS and DSDT (its `\_S5` is found only when asked for,
/// by [`AcpiInfo::find_s5`]).
pub(crate) fn parse(mem: &impl PhysMemory, info: &mut AcpiInfo, table: &[u8]) {
    if table.len() < V1_LEN {
        info.warn(too_short(table));
        return;
    }
    // The fields are read from a copy that holds the table up to the end of the last field
    // it holds whole, and zeros past it: a field a short (older) FADT lacks reads as zero,
    // which each field below takes as absent, just as it does a zero in the table. So no
    // read can fail.
    let whole = FIELD_ENDS
        .iter()
        .rev()
        .find(|&&end| end <= table.len())
        .map_or(V1_LEN, |&end| end);
    let mut t = [0u8; READ_LEN];
    if let (Some(copy), Some(fields)) = (t.get_mut(..whole), table.get(..whole)) {
        copy.copy_from_slice(fields);
    }
    let t = &t;
    let u8_at = |o| read_u8(t, o).unwrap_or(0);
    let u32_at = |o| read_u32(t, o).unwrap_or(0);
    let gas = |o| GenericAddress::read(t, o);
    let port = |legacy, x| port(t, legacy, x);
    let address = |legacy: usize, x: usize| {
        read_u64(t, x)
            .filter(|&a| a != 0)
            .or_else(|| Some(u64::from(u32_at(legacy))).filter(|&a| a != 0))
    };
    let revision = u8_at(8);
    let flags = u32_at(112);
    let pm_timer = port(76, 208)
        .filter(|_| u8_at(91) == 4 || gas(208).and_then(|g| g.io_port()).is_some())
        .map(|port| PmTimer {
            port,
            bits: if flags & TMR_VAL_EXT != 0 { 32 } else { 24 },
        });
    let reset = gas(116)
        .filter(|g| flags & RESET_REG_SUP != 0 && g.address != 0)
        .and_then(|register| {
            Some(ResetRegister {
                register,
                value: read_u8(t, 128)?,
            })
        });
    let nonzero = |o| gas(o).filter(|g| g.address != 0);
    let century = match u8_at(108) {
        0 => None,
        index if (FIRST_FREE_CMOS_INDEX..CMOS_BANK_SIZE).contains(&index) => Some(index),
        index => {
            info.warn(Warning::BadCenturyIndex { index });
            None
        }
    };
    let fadt = Fadt {
        revision,
        sci_interrupt: read_u16(t, 46).unwrap_or(0),
        smi_command_port: u32_at(48),
        acpi_enable: u8_at(52),
        pm1a_event_block: port(56, 148),
        pm1b_event_block: port(60, 160),
        pm1_event_length: u8_at(88),
        pm1a_control_block: port(64, 172),
        pm1b_control_block: port(68, 184),
        pm1_control_length: u8_at(89),
        pm2_control_block: port(72, 196),
        pm2_control_length: u8_at(90),
        gpe0_block: port(80, 220),
        gpe0_length: u8_at(92),
        gpe1_block: port(84, 232),
        gpe1_length: u8_at(93),
        pm_timer,
        reset,
        sleep_control: nonzero(244),
        sleep_status: nonzero(256),
        hardware_reduced: flags & HW_REDUCED_ACPI != 0,
        flags,
        boot_arch: (revision >= 3)
            .then(|| read_u16(t, 109).map(BootArch))
            .flatten(),
        century,
        facs: address(36, 132),
        dsdt: address(40, 140),
    };
    info.fadt = Some(fadt);

    if let Some(facs) = fadt.facs {
        list_facs(mem, info, facs);
    }
    if let Some(dsdt) = fadt.dsdt {
        match load_table(mem, dsdt) {
            Ok((found, table)) if found.0 == *b"DSDT" => info.add_table(dsdt, found, table),
            Ok((found, _)) => info.warn(Warning::UnexpectedSignature {
                expected: Signature(*b"DSDT"),
                found,
                address: dsdt,
            }),
            Err(w) => info.warn(w),
        }
    }
}

/// The port of the FADT's register whose 32-bit field is at `legacy` and whose `X_` GAS is at
/// `x`: from the GAS if usable, else from the 32-bit field. Never inlined: the five port
/// registers share one copy (the boot's cost under an emulator is every distinct copy of code
/// it runs).
#[inline(never)]
fn port(t: &[u8; READ_LEN], legacy: usize, x: usize) -> Option<u16> {
    GenericAddress::read(t, x)
        .and_then(|g| g.io_port())
        .or_else(|| {
            let legacy = read_u32(t, legacy).unwrap_or(0);
            u16::try_from(legacy).ok().filter(|&p| p != 0)
        })
}

/// Lists the FACS (it has a signature and length, at most [`MAX_TABLE_LEN`], but no
/// checksum).
fn list_facs(mem: &impl PhysMemory, info: &mut AcpiInfo, address: u64) {
    let Some(head) = fetch(mem, address, 8).and_then(|b| <&[u8; 8]>::try_from(b).ok()) else {
        info.warn(Warning::TableUnreadable { address });
        return;
    };
    let found = signature(head);
    if found.0 != *b"FACS" {
        info.warn(Warning::UnexpectedSignature {
            expected: Signature(*b"FACS"),
            found,
            address,
        });
        return;
    }
    let length = read_u32(head, 4).unwrap_or(0);
    match usize::try_from(length)
        .ok()
        .filter(|l| (FACS_MIN_LEN..=MAX_TABLE_LEN).contains(l))
        .and_then(|l| fetch(mem, address, l))
    {
        Some(facs) => info.add_table(address, found, facs),
        None => info.warn(Warning::BadTableLength {
            signature: found,
            address,
            length,
        }),
    }
}
