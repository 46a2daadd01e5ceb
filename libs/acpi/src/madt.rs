//! The MADT (signature `APIC`): local APICs, IO-APICs, interrupt overrides, NMI wiring.

use rexo_physmem::{read_u8, read_u16, read_u32, read_u64};

use crate::info::{
    AcpiInfo, InterruptOverride, IoApic, LocalApic, LocalApicNmi, Warning, inti_flags, too_short,
};

/// Offset of the first MADT entry (after the local APIC address and flags).
const ENTRIES: usize = 44;

/// Reads the MADT's fixed fields and walks its entries. An entry too short for its type is
/// skipped with a warning; one with a length below 2 or running past the table ends the walk.
/// A local APIC address of 0 leaves the default one (in the address override entry, type
/// 5, with [`Warning::LocalApicOverrideAtZero`]).
pub(crate) fn parse(info: &mut AcpiInfo, table: &[u8]) {
    let (Some(lapic_addr), Some(flags)) = (read_u32(table, 36), read_u32(table, 40)) else {
        info.warn(too_short(table));
        return;
    };
    if lapic_addr != 0 {
        info.local_apic_address = u64::from(lapic_addr);
    }
    info.pcat_compat = flags & 1 != 0;

    let mut offset = ENTRIES;
    while offset < table.len() {
        let entry_type = read_u8(table, offset).unwrap_or(0);
        let len = usize::from(read_u8(table, offset + 1).unwrap_or(0));
        let bad = Warning::BadMadtEntry {
            entry_type,
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
        };
        let Some(entry) = table.get(offset..offset + len).filter(|_| len >= 2) else {
            info.warn(bad);
            return;
        };
        if entry_parse(info, entry_type, entry).is_none() {
            info.warn(bad);
        }
        offset += len;
    }
}

/// Records one entry; `None` if it is too short for its type. Unknown types are ignored.
fn entry_parse(info: &mut AcpiInfo, entry_type: u8, e: &[u8]) -> Option<()> {
    match entry_type {
        // Processor Local APIC.
        0 => {
            let flags = read_u32(e, 4)?;
            info.add_local_apic(LocalApic {
                processor_uid: u32::from(read_u8(e, 2)?),
                apic_id: u32::from(read_u8(e, 3)?),
                enabled: flags & 1 != 0,
                online_capable: flags & 2 != 0,
                x2apic: false,
            });
        }
        // IO-APIC (at address 0 no registers can be: dropped, as Linux does).
        1 => {
            let (id, address, gsi_base) = (read_u8(e, 2)?, read_u32(e, 4)?, read_u32(e, 8)?);
            if address == 0 {
                info.warn(Warning::IoApicAtAddressZero { id });
            } else {
                info.add_io_apic(IoApic {
                    id,
                    address,
                    gsi_base,
                });
            }
        }
        // Interrupt Source Override.
        2 => {
            let (polarity, trigger) = inti_flags(read_u16(e, 8)?);
            info.add_override(InterruptOverride {
                bus: read_u8(e, 2)?,
                irq: read_u8(e, 3)?,
                gsi: read_u32(e, 4)?,
                polarity,
                trigger,
            });
        }
        // Local APIC NMI (UID 0xFF: all processors).
        4 => {
            let lint = read_u8(e, 5)?;
            let (polarity, trigger) = inti_flags(read_u16(e, 3)?);
            let uid = read_u8(e, 2)?;
            info.add_nmi(LocalApicNmi {
                processor_uid: (uid != 0xff).then_some(u32::from(uid)),
                lint,
                polarity,
                trigger,
            });
        }
        // Local APIC Address Override (at 0 no registers can be: ignored, as the header's 0).
        5 => match read_u64(e, 4)? {
            0 => info.warn(Warning::LocalApicOverrideAtZero),
            address => info.local_apic_address = address,
        },
        // Processor Local x2APIC.
        9 => {
            let processor_uid = read_u32(e, 12)?;
            let flags = read_u32(e, 8)?;
            info.add_local_apic(LocalApic {
                processor_uid,
                apic_id: read_u32(e, 4)?,
                enabled: flags & 1 != 0,
                online_capable: flags & 2 != 0,
                x2apic: true,
            });
        }
        // Local x2APIC NMI (UID 0xFFFFFFFF: all processors).
        0xA => {
            let lint = read_u8(e, 8)?;
            let (polarity, trigger) = inti_flags(read_u16(e, 2)?);
            let uid = read_u32(e, 4)?;
            info.add_nmi(LocalApicNmi {
                processor_uid: (uid != u32::MAX).then_some(uid),
                lint,
                polarity,
                trigger,
            });
        }
        _ => {}
    }
    Some(())
}
