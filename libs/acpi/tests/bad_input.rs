//! Broken, truncated and hostile tables: clear errors or warnings, never a panic or a hang.

mod common;

use common::*;
use rexo_acpi::{
    AcpiError, ByteRegister, Capacity, DEFAULT_LOCAL_APIC_ADDRESS, GenericAddress, MAX_IO_APICS,
    MAX_LOCAL_APICS, MAX_OVERRIDES, MAX_TABLE_LEN, MAX_TABLES, MAX_WARNINGS, RsdpCopy, Signature,
    SleepRegister, Unaddressable, Warning, check_copy, find_rsdp_bios, interrupt_destination,
    io_apic_entries, io_apic_serves, ipi_destination, parse, parse_acpi1,
};
use rexo_memmap::{MemoryMap, NotDevice, Region, RegionKind};
use rexo_physmem::SparseMemory;
use rexo_testkit::Rng;

/// Address of the q35-smp4 recording's RSDP and of its MADT.
const Q35_RSDP: u64 = 0xF59E0;
const Q35_MADT: u64 = 0x0FFE_2227;
const Q35_RSDT: u64 = 0x0FFE_2353;

#[test]
fn corrupted_table_checksum_skips_only_that_table() {
    let mut mem = recorded("q35-smp4");
    mem.read_mut(Q35_MADT + 50, 1).unwrap()[0] ^= 0x55;
    let info = parse(&mem, Q35_RSDP).unwrap();
    let w: Vec<Warning> = info.warnings().collect();
    assert_eq!(
        w,
        [Warning::BadChecksum {
            signature: Signature(*b"APIC"),
            address: Q35_MADT
        }]
    );
    assert!(w[0].to_string().contains("APIC"));
    assert!(info.local_apics().is_empty());
    assert!(info.table(b"APIC").is_none());
    assert_eq!(info.local_apic_address, DEFAULT_LOCAL_APIC_ADDRESS);
    // The rest still parsed.
    assert!(info.hpet.is_some() && info.fadt.is_some());
    assert_eq!(info.find_s5(&mem), Ok(Some((0, 0))));
}

#[test]
fn truncated_table_length_is_a_warning() {
    let mut mem = recorded("q35-smp4");
    mem.write(Q35_MADT + 4, &0x0010_0000u32.to_le_bytes())
        .unwrap();
    let info = parse(&mem, Q35_RSDP).unwrap();
    assert_eq!(
        info.warnings().collect::<Vec<_>>(),
        [Warning::BadTableLength {
            signature: Signature(*b"APIC"),
            address: Q35_MADT,
            length: 0x0010_0000
        }]
    );
    mem.write(Q35_MADT + 4, &10u32.to_le_bytes()).unwrap();
    let info = parse(&mem, Q35_RSDP).unwrap();
    assert!(matches!(
        info.warnings().next(),
        Some(Warning::BadTableLength { length: 10, .. })
    ));
}

#[test]
fn broken_root_table_is_an_error() {
    let mut mem = recorded("q35-smp4");
    mem.read_mut(Q35_RSDT + 40, 1).unwrap()[0] ^= 1;
    assert_eq!(
        parse(&mem, Q35_RSDP).unwrap_err(),
        AcpiError::RootBadChecksum { address: Q35_RSDT }
    );

    let mut mem = recorded("q35-smp4");
    mem.write(Q35_RSDT + 4, &u32::MAX.to_le_bytes()).unwrap();
    assert_eq!(
        parse(&mem, Q35_RSDP).unwrap_err(),
        AcpiError::RootBadLength {
            address: Q35_RSDT,
            length: u32::MAX
        }
    );
}

#[test]
fn rsdt_pointing_past_memory() {
    let mut mem = recorded("q35-smp4");
    mem.write(Q35_RSDP, &rsdp_v1(0x7000_0000)).unwrap();
    assert_eq!(
        parse(&mem, Q35_RSDP).unwrap_err(),
        AcpiError::RootUnreadable {
            address: 0x7000_0000
        }
    );
    // A table entry past memory is only a warning.
    let mem = synthetic(&[]);
    let mut mem2 = SparseMemory::new()
        .with(RSDP, rsdp_v1(TABLES as u32))
        .unwrap();
    mem2.insert(TABLES, table(b"RSDT", 1, &rsdt_body(&[0xFFFF_FFF0, 0])))
        .unwrap();
    let info = parse(&mem2, RSDP).unwrap();
    assert_eq!(
        info.warnings().collect::<Vec<_>>(),
        [
            Warning::TableUnreadable {
                address: 0xFFFF_FFF0
            },
            Warning::NullTableAddress
        ]
    );
    assert_eq!(parse(&mem, RSDP).unwrap().tables().len(), 1);
}

#[test]
fn zero_garbage_and_missing_rsdp() {
    let mem = SparseMemory::new().with(0x1000, vec![0u8; 64]).unwrap();
    assert_eq!(
        parse(&mem, 0x1000).unwrap_err(),
        AcpiError::RsdpBadSignature { address: 0x1000 }
    );
    assert_eq!(
        parse(&mem, 0x5000).unwrap_err(),
        AcpiError::RsdpUnreadable { address: 0x5000 }
    );
    assert_eq!(
        parse(&mem, u64::MAX - 4).unwrap_err(),
        AcpiError::RsdpUnreadable {
            address: u64::MAX - 4
        }
    );
    assert_eq!(find_rsdp_bios(&mem), None);

    let mut bad = rsdp_v1(0x1000);
    bad[19] ^= 0xFF;
    let mem = SparseMemory::new().with(0xE0000, bad).unwrap();
    assert_eq!(
        parse(&mem, 0xE0000).unwrap_err(),
        AcpiError::RsdpBadChecksum { address: 0xE0000 }
    );
    assert_eq!(find_rsdp_bios(&mem), None);

    let garbage: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    let mem = SparseMemory::new().with(0xE0000, garbage).unwrap();
    assert!(parse(&mem, 0xE0000).is_err());

    let mem = SparseMemory::new().with(0xE0000, rsdp_v1(0)).unwrap();
    assert_eq!(parse(&mem, 0xE0000).unwrap_err(), AcpiError::NoRootTable);
    assert!(AcpiError::NoRootTable.to_string().contains("RSDT"));
}

#[test]
fn rsdp_v2_length_and_extended_checksum() {
    let mut r = rsdp_v2(0, 0x2000);
    r[20..24].copy_from_slice(&20u32.to_le_bytes());
    fix_checksum(&mut r, 32);
    let mem = SparseMemory::new().with(0xE0000, r.clone()).unwrap();
    assert_eq!(
        parse(&mem, 0xE0000).unwrap_err(),
        AcpiError::RsdpBadLength {
            address: 0xE0000,
            length: 20
        }
    );

    let mut r = rsdp_v2(0, 0x2000);
    r[33] = 1;
    let mem = SparseMemory::new().with(0xE0000, r).unwrap();
    assert_eq!(
        parse(&mem, 0xE0000).unwrap_err(),
        AcpiError::RsdpBadExtendedChecksum { address: 0xE0000 }
    );
}

#[test]
fn a_length_longer_than_any_real_tables_is_refused_unread() {
    // Each length below was read whole, over memory holding only the first page: the
    // checksum of an SSDT of 2 GiB, an RSDP's extended checksum over 3.75 GiB, and an
    // XSDT of 3.75 GiB; the kernel's reads reached device space.
    let ssdt_at = TABLES + 0x1000;
    let mut ssdt = table(b"SSDT", 1, &[0; 64]);
    ssdt[4..8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    let mem = Recording::new(synthetic(&[ssdt]));
    let info = parse(&mem, RSDP).unwrap();
    let warnings: Vec<_> = info.warnings().collect();
    let bad = Warning::BadTableLength {
        signature: Signature(*b"SSDT"),
        address: ssdt_at,
        length: 0x8000_0000,
    };
    assert_eq!(warnings, [bad]);
    assert!(mem.furthest_read_end() <= ssdt_at + 0x1000);

    let mut r = rsdp_v2(0, TABLES);
    r[20..24].copy_from_slice(&0xF000_0000u32.to_le_bytes());
    fix_checksum(&mut r, 32);
    let mem = Recording::new(SparseMemory::new().with(RSDP, r).unwrap());
    assert_eq!(
        parse(&mem, RSDP).unwrap_err(),
        AcpiError::RsdpBadLength {
            address: RSDP,
            length: 0xF000_0000
        }
    );
    assert!(mem.furthest_read_end() <= RSDP + 0x1000);

    let mut xsdt = table(b"XSDT", 1, &[0; 8]);
    xsdt[4..8].copy_from_slice(&0xF000_0000u32.to_le_bytes());
    let mem = SparseMemory::new()
        .with(RSDP, rsdp_v2(0, TABLES))
        .and_then(|m| m.with(TABLES, xsdt))
        .unwrap();
    let mem = Recording::new(mem);
    assert_eq!(
        parse(&mem, RSDP).unwrap_err(),
        AcpiError::RootBadLength {
            address: TABLES,
            length: 0xF000_0000
        }
    );
    assert!(mem.furthest_read_end() <= TABLES + 0x1000);

    // The longest accepted is read whole.
    let long = table(b"SSDT", 1, &vec![0; MAX_TABLE_LEN - 36]);
    let mem = synthetic(std::slice::from_ref(&long));
    let info = parse(&mem, RSDP).unwrap();
    assert_eq!(info.warnings().count(), 0);
    assert_eq!(info.table(b"SSDT").unwrap().length as usize, MAX_TABLE_LEN);
    let mut longer = long;
    longer.push(0);
    longer[4..8].copy_from_slice(&(MAX_TABLE_LEN as u32 + 1).to_le_bytes());
    fix_checksum(&mut longer, 9);
    let info = parse(&synthetic(&[longer]), RSDP).unwrap();
    assert!(matches!(
        info.warnings().next(),
        Some(Warning::BadTableLength { .. })
    ));
}

#[test]
fn a_broken_revision_2_part_leaves_the_rsdt_in_use() {
    let madt = table(b"APIC", 1, &madt_body(&[lapic(0, 0, 1), lapic(1, 1, 1)]));
    let rsdt = table(b"RSDT", 1, &rsdt_body(&[0x3000]));
    let with_rsdp = |rsdp: Vec<u8>| {
        SparseMemory::new()
            .with(0xE0000, rsdp)
            .unwrap()
            .with(0x2000, rsdt.clone())
            .unwrap()
            .with(0x3000, madt.clone())
            .unwrap()
    };
    let mut length_0 = rsdp_v2(0x2000, 0x1000);
    length_0[20..24].copy_from_slice(&0u32.to_le_bytes());
    fix_checksum(&mut length_0, 32);
    let mut bad_extended_checksum = rsdp_v2(0x2000, 0x1000);
    bad_extended_checksum[33] = 1;
    // A Multiboot2 tag 14 copy of a revision 2 RSDP: its first 20 bytes only.
    let acpi1_copy = rsdp_v2(0x2000, 0x1000)[..20].to_vec();
    let cases = [
        (
            length_0,
            AcpiError::RsdpBadLength {
                address: 0xE0000,
                length: 0,
            },
        ),
        (
            bad_extended_checksum,
            AcpiError::RsdpBadExtendedChecksum { address: 0xE0000 },
        ),
        (acpi1_copy, AcpiError::RsdpUnreadable { address: 0xE0000 }),
    ];
    for (rsdp, error) in cases {
        let info = parse(&with_rsdp(rsdp), 0xE0000).unwrap();
        assert_eq!((info.revision, info.root_table), (2, 0x2000));
        assert_eq!(info.local_apics().len(), 2, "the MADT is read");
        let warnings: Vec<_> = info.warnings().collect();
        assert_eq!(warnings, [Warning::BadXsdt(error)]);
        assert!(warnings[0].to_string().contains("using the RSDT"));
    }
}

#[test]
fn a_copy_of_the_acpi_1_part_alone_is_read_no_further() {
    // Multiboot2's tag 14: the first 20 bytes of a revision 2 RSDP, then the block's other
    // bytes (here the tag's padding and the next tag, a tag 15 of the same RSDP).
    let mut tag_14 = rsdp_v2(0x2000, 0x1000)[..20].to_vec();
    tag_14.extend_from_slice(&[0, 0, 0, 0, 15, 0, 0, 0, 44, 0, 0, 0]);
    tag_14.extend_from_slice(&rsdp_v2(0x2000, 0x1000));
    let mem = SparseMemory::new()
        .with(0x9010, tag_14)
        .unwrap()
        .with(0x2000, table(b"RSDT", 1, &rsdt_body(&[0x3000])))
        .unwrap()
        .with(0x3000, table(b"APIC", 1, &madt_body(&[lapic(0, 0, 1)])))
        .unwrap();
    let info = parse_acpi1(&mem, 0x9010).unwrap();
    assert_eq!((info.revision, info.root_table), (2, 0x2000));
    assert_eq!(info.local_apics().len(), 1, "the MADT is read");
    assert_eq!(info.warnings().count(), 0, "nothing read past the copy");
    // `parse` takes the bytes after it for the revision 2 part.
    let warnings: Vec<_> = parse(&mem, 0x9010).unwrap().warnings().collect();
    let length_0 = AcpiError::RsdpBadLength {
        address: 0x9010,
        length: 0,
    };
    assert_eq!(warnings, [Warning::BadXsdt(length_0)]);
    // A broken ACPI 1.0 part is an error still.
    let mut bad = rsdp_v1(0x2000);
    bad[8] ^= 1;
    let mem = SparseMemory::new().with(0x9010, bad).unwrap();
    let error = AcpiError::RsdpBadChecksum { address: 0x9010 };
    assert_eq!(parse_acpi1(&mem, 0x9010).unwrap_err(), error);
}

#[test]
fn a_copy_is_checked_within_its_own_bytes() {
    let whole = rsdp_v2(0x2000, 0x1000);
    assert_eq!(check_copy(&whole), Some(RsdpCopy::Whole));
    assert_eq!(
        check_copy(&[&whole[..], &[0xAA; 8]].concat()),
        Some(RsdpCopy::Whole),
        "the length says where it ends"
    );
    let part = Some(RsdpCopy::Acpi1Part);
    assert_eq!(check_copy(&whole[..20]), part, "a tag 14 copy");
    assert_eq!(check_copy(&whole[..35]), part, "its length past the copy");
    assert_eq!(check_copy(&rsdp_v1(0x2000)), part, "revision 0");
    // A revision 0 RSDP followed by what would pass as a revision 2 part.
    let mut revision_0 = whole.clone();
    revision_0[15] = 0;
    fix_checksum(&mut revision_0[..20], 8);
    fix_checksum(&mut revision_0, 32);
    assert_eq!(check_copy(&revision_0), part);
    let mut bad_extended_checksum = whole.clone();
    bad_extended_checksum[33] ^= 1;
    assert_eq!(check_copy(&bad_extended_checksum), part);
    let mut length_35 = whole.clone();
    length_35[20] = 35;
    fix_checksum(&mut length_35, 32);
    assert_eq!(check_copy(&length_35), part);
    let mut bad_checksum = whole.clone();
    bad_checksum[8] ^= 1;
    assert_eq!(check_copy(&bad_checksum), None);
    let mut bad_signature = whole.clone();
    bad_signature[0] = b'X';
    assert_eq!(check_copy(&bad_signature), None);
    assert_eq!(check_copy(&whole[..19]), None);
    assert_eq!(check_copy(&[]), None);
}

#[test]
fn the_bios_scan_prefers_a_whole_rsdp_to_one_whose_revision_2_part_is_broken() {
    let mut broken = rsdp_v2(0x2000, 0x1000);
    broken[33] = 1;
    let mem = SparseMemory::new().with(0xE0000, broken.clone()).unwrap();
    assert_eq!(find_rsdp_bios(&mem), Some(0xE0000), "its RSDT is usable");
    let mem = mem.with(0xE0040, rsdp_v2(0x2000, 0x1000)).unwrap();
    assert_eq!(find_rsdp_bios(&mem), Some(0xE0040));
}

#[test]
fn finds_rsdp_in_ebda_first() {
    let mut bda = vec![0u8; 0x100];
    bda[0x0E..0x10].copy_from_slice(&0x9FC0u16.to_le_bytes());
    let mem = SparseMemory::new()
        .with(0x400, bda)
        .unwrap()
        .with(0x9FC00 + 0x30, rsdp_v1(0x1234))
        .unwrap()
        .with(0xFFFF0, rsdp_v1(0x5678))
        .unwrap();
    assert_eq!(find_rsdp_bios(&mem), Some(0x9FC30));
    let mem = SparseMemory::new().with(0xFFFF0, rsdp_v1(0x5678)).unwrap();
    assert_eq!(find_rsdp_bios(&mem), Some(0xFFFF0));
    // Not on a 16-byte boundary: not found.
    let mem = SparseMemory::new().with(0xE0008, rsdp_v1(0x5678)).unwrap();
    assert_eq!(find_rsdp_bios(&mem), None);
}

#[test]
fn xsdt_preferred_and_rsdt_fallback() {
    let madt_x = table(b"APIC", 1, &madt_body(&[lapic(0, 0, 1), lapic(1, 1, 1)]));
    let madt_r = table(b"APIC", 1, &madt_body(&[lapic(0, 0, 1)]));
    let xsdt = table(b"XSDT", 1, &0x3000u64.to_le_bytes());
    let rsdt = table(b"RSDT", 1, &rsdt_body(&[0x4000]));
    let build = |xsdt: Vec<u8>| {
        SparseMemory::new()
            .with(0xE0000, rsdp_v2(0x2000, 0x1000))
            .unwrap()
            .with(0x1000, xsdt)
            .unwrap()
            .with(0x2000, rsdt.clone())
            .unwrap()
            .with(0x3000, madt_x.clone())
            .unwrap()
            .with(0x4000, madt_r.clone())
            .unwrap()
    };
    let info = parse(&build(xsdt.clone()), 0xE0000).unwrap();
    assert_eq!(info.root_table, 0x1000);
    assert_eq!(info.revision, 2);
    assert_eq!(info.local_apics().len(), 2);

    let mut broken = xsdt.clone();
    broken[40] ^= 1;
    let info = parse(&build(broken), 0xE0000).unwrap();
    assert_eq!(info.root_table, 0x2000);
    assert_eq!(info.local_apics().len(), 1);
    assert_eq!(
        info.warnings().collect::<Vec<_>>(),
        [Warning::BadXsdt(AcpiError::RootBadChecksum {
            address: 0x1000
        })]
    );

    // An XSDT slot holding an RSDT signature is an error when there is no RSDT to fall back on.
    let mem = SparseMemory::new()
        .with(0xE0000, rsdp_v2(0, 0x2000))
        .unwrap()
        .with(0x2000, rsdt.clone())
        .unwrap();
    assert_eq!(
        parse(&mem, 0xE0000).unwrap_err(),
        AcpiError::RootBadSignature {
            address: 0x2000,
            found: Signature(*b"RSDT")
        }
    );
}

#[test]
fn madt_entry_with_length_zero_ends_the_walk() {
    let madt = table(
        b"APIC",
        1,
        &madt_body(&[lapic(0, 0, 1), vec![0, 0, 0, 0], lapic(1, 1, 1)]),
    );
    let info = parse(&synthetic(&[madt]), RSDP).unwrap();
    assert_eq!(info.local_apics().len(), 1);
    assert_eq!(
        info.warnings().collect::<Vec<_>>(),
        [Warning::BadMadtEntry {
            entry_type: 0,
            offset: 52
        }]
    );
    // Length 1, and an entry running past the end.
    let madt = table(b"APIC", 1, &madt_body(&[vec![1, 1], vec![0, 8, 0, 0]]));
    let info = parse(&synthetic(&[madt]), RSDP).unwrap();
    assert!(matches!(
        info.warnings().next(),
        Some(Warning::BadMadtEntry {
            entry_type: 1,
            offset: 44
        })
    ));
}

#[test]
fn short_madt_entry_is_skipped() {
    // A local APIC entry claiming 4 bytes: skipped, the walk goes on.
    let madt = table(b"APIC", 1, &madt_body(&[vec![0, 4, 0, 0], lapic(1, 1, 1)]));
    let info = parse(&synthetic(&[madt]), RSDP).unwrap();
    assert_eq!(info.local_apics().len(), 1);
    assert_eq!(info.warnings().count(), 1);
}

#[test]
fn x2apic_entries_nmis_and_address_override() {
    let mut x2 = vec![9, 16, 0, 0];
    x2.extend_from_slice(&0x1_0000u32.to_le_bytes());
    x2.extend_from_slice(&2u32.to_le_bytes()); // online capable, not enabled
    x2.extend_from_slice(&77u32.to_le_bytes());
    let mut x2nmi = vec![0xA, 12, 0x0D, 0];
    x2nmi.extend_from_slice(&u32::MAX.to_le_bytes());
    x2nmi.extend_from_slice(&[1, 0, 0, 0]);
    let nmi = vec![4, 6, 3, 0x05, 0, 0];
    let mut over = vec![5, 12, 0, 0];
    over.extend_from_slice(&0x1_FEE0_0000u64.to_le_bytes());
    let unknown = vec![0x7F, 3, 0];
    let madt = table(b"APIC", 1, &madt_body(&[x2, x2nmi, nmi, over, unknown]));
    let info = parse(&synthetic(&[madt]), RSDP).unwrap();
    assert_eq!(info.warnings().count(), 0);
    let l = info.local_apics()[0];
    assert_eq!(
        (
            l.apic_id,
            l.processor_uid,
            l.enabled,
            l.online_capable,
            l.x2apic
        ),
        (0x1_0000, 77, false, true, true)
    );
    assert_eq!(info.local_apic_address, 0x1_FEE0_0000);
    let n = info.local_apic_nmis();
    assert_eq!((n[0].processor_uid, n[0].lint), (None, 1));
    assert_eq!(
        (n[0].polarity, n[0].trigger),
        (
            rexo_acpi::Polarity::ActiveHigh,
            rexo_acpi::TriggerMode::Level
        )
    );
    assert_eq!((n[1].processor_uid, n[1].lint), (Some(3), 0));
    assert_eq!(
        (n[1].polarity, n[1].trigger),
        (
            rexo_acpi::Polarity::ActiveHigh,
            rexo_acpi::TriggerMode::Edge
        )
    );
}

#[test]
fn a_local_apic_id_listed_twice_is_kept_once() {
    // The same ID as a second type 0 entry, and again as an x2APIC (type 9) entry: the
    // kernel would start that processor twice, resetting it while it runs.
    let mut x2 = vec![9, 16, 0, 0];
    x2.extend_from_slice(&1u32.to_le_bytes());
    x2.extend_from_slice(&1u32.to_le_bytes());
    x2.extend_from_slice(&9u32.to_le_bytes());
    let madt = table(
        b"APIC",
        1,
        &madt_body(&[
            lapic(0, 0, 1),
            lapic(1, 1, 1),
            lapic(2, 1, 1),
            x2,
            lapic(3, 2, 1),
        ]),
    );
    let info = parse(&synthetic(&[madt]), RSDP).unwrap();
    let listed: Vec<(u32, u32)> = info
        .local_apics()
        .iter()
        .map(|l| (l.apic_id, l.processor_uid))
        .collect();
    assert_eq!(
        listed,
        [(0, 0), (1, 1), (2, 3)],
        "the first entry of an ID wins"
    );
    let warnings: Vec<Warning> = info.warnings().collect();
    assert_eq!(warnings, [Warning::DuplicateLocalApic { apic_id: 1 }]);
    assert!(
        warnings[0].to_string().contains("ID 1 twice"),
        "{}",
        warnings[0]
    );
}

/// A MADT IO-APIC entry.
fn io_apic(id: u8, address: u32, gsi_base: u32) -> Vec<u8> {
    let mut e = vec![1, 12, id, 0];
    e.extend_from_slice(&address.to_le_bytes());
    e.extend_from_slice(&gsi_base.to_le_bytes());
    e
}

#[test]
fn an_io_apic_at_address_0_is_dropped_with_a_warning() {
    let entries = [io_apic(0, 0, 0), io_apic(1, 0xFEC0_0000, 0)];
    let madt = table(b"APIC", 1, &madt_body(&entries));
    let info = parse(&synthetic(&[madt]), RSDP).unwrap();
    let kept: Vec<_> = info.io_apics().iter().map(|io| io.id).collect();
    assert_eq!(kept, [1]);
    let warnings: Vec<_> = info.warnings().collect();
    assert_eq!(warnings, [Warning::IoApicAtAddressZero { id: 0 }]);
    assert!(
        warnings[0].to_string().contains("address 0"),
        "{}",
        warnings[0]
    );
}

#[test]
fn apic_registers_outside_device_memory_are_not_used() {
    // Neither address was checked: an IO-APIC at 2 MiB (the kernel's image) had its
    // entries masked by writes into the kernel, and a local APIC there was written too.
    let mut over = vec![5, 12, 0, 0];
    over.extend_from_slice(&0x20_0000u64.to_le_bytes());
    let entries = [
        over,
        lapic(0, 0, 1),
        io_apic(0, 0x20_0000, 0),
        io_apic(1, 0xFEC0_0000, 24),
        io_apic(2, 0xFFFF_FFF0, 48),
    ];
    let madt = table(b"APIC", 1, &madt_body(&entries));
    let mut info = parse(&synthetic(&[madt]), RSDP).unwrap();
    let mut map = MemoryMap::new();
    let ram = Region {
        start: 0x10_0000,
        end: 0x800_0000,
        kind: RegionKind::Usable,
    };
    map.add(ram).unwrap();
    map.normalize();
    info.check_apic_registers(&map, 4 << 30);
    assert_eq!(info.local_apic_address, DEFAULT_LOCAL_APIC_ADDRESS);
    let kept: Vec<_> = info.io_apics().iter().map(|io| io.id).collect();
    assert_eq!(kept, [1]);
    let warnings: Vec<_> = info.warnings().collect();
    assert_eq!(
        warnings,
        [
            Warning::LocalApicNotDevice {
                address: 0x20_0000,
                why: NotDevice::Ram
            },
            Warning::IoApicNotDevice {
                id: 0,
                address: 0x20_0000,
                why: NotDevice::Ram
            },
            Warning::IoApicNotDevice {
                id: 2,
                address: 0xFFFF_FFF0,
                why: NotDevice::OutOfReach
            },
        ]
    );
    let text = warnings[1].to_string();
    assert!(text.contains("0x200000") && text.contains("RAM"), "{text}");

    // Where the firmware put them, they stay, without a word.
    let kept = [entries[1].clone(), entries[3].clone()];
    let madt = table(b"APIC", 1, &madt_body(&kept));
    let mut info = parse(&synthetic(&[madt]), RSDP).unwrap();
    info.check_apic_registers(&map, 4 << 30);
    assert_eq!(info.local_apic_address, DEFAULT_LOCAL_APIC_ADDRESS);
    assert_eq!(info.io_apics().len(), 1);
    assert_eq!(info.warnings().count(), 0);
}

#[test]
fn an_io_apic_whose_registers_read_all_ones_has_no_entries() {
    assert_eq!(io_apic_entries(0xFEC0_0000, 0x0017_0020), Ok(24));
    let absent = io_apic_entries(0xFEC0_0000, u32::MAX);
    assert_eq!(
        absent,
        Err(Warning::IoApicNotAnswering {
            address: 0xFEC0_0000
        })
    );
    let text = absent.unwrap_err().to_string();
    assert!(
        text.contains("0xfec00000") && text.contains("all ones"),
        "{text}"
    );
}

#[test]
fn an_io_apic_near_the_last_gsi_serves_only_its_own() {
    assert!(io_apic_serves(24, 24, 24) && io_apic_serves(24, 24, 47));
    assert!(!io_apic_serves(24, 24, 23) && !io_apic_serves(24, 24, 48));
    let base = u32::MAX - 10;
    assert!(io_apic_serves(base, 24, base) && io_apic_serves(base, 24, u32::MAX));
    assert!(
        !io_apic_serves(0, 0, 0),
        "an IO-APIC without entries serves nothing"
    );
}

#[test]
fn no_interrupt_names_a_core_by_the_broadcast_id() {
    use Unaddressable::{Broadcast, TooWide};
    // xAPIC: 8 bits, of which 0xFF reaches every core (an INIT to it resets the boot core).
    assert_eq!(ipi_destination(0xFE, false), Ok(0xFE));
    assert_eq!(ipi_destination(0xFF, false), Err(Broadcast));
    assert_eq!(ipi_destination(0x100, false), Err(TooWide));
    // x2APIC: 32 bits, of which all ones is the broadcast.
    assert_eq!(ipi_destination(0xFF, true), Ok(0xFF));
    assert_eq!(ipi_destination(0x1_0000, true), Ok(0x1_0000));
    assert_eq!(ipi_destination(u32::MAX, true), Err(Broadcast));
    assert!(Broadcast.to_string().contains("broadcast"));
}

#[test]
fn an_io_apic_or_msi_destination_names_8_bit_ids_only_whatever_the_apic_mode() {
    use Unaddressable::{Broadcast, TooWide};
    assert_eq!(interrupt_destination(0), Ok(0));
    assert_eq!(interrupt_destination(0xFE), Ok(0xFE));
    assert_eq!(interrupt_destination(0xFF), Err(Broadcast));
    // An x2APIC id past 8 bits: cut to them it would name another core or every core.
    assert_eq!(interrupt_destination(0x101), Err(TooWide));
    assert_eq!(interrupt_destination(0x1FF), Err(TooWide));
    assert!(TooWide.to_string().contains("8 bits"));
}

#[test]
fn too_many_entries_are_dropped_with_one_warning() {
    let mut entries: Vec<Vec<u8>> = (0..300u32).map(|i| lapic(i as u8, i as u8, 1)).collect();
    for i in 0..20u8 {
        entries.push(io_apic(i, 0xFEC0_0000, u32::from(i) * 24));
    }
    for i in 0..40u8 {
        entries.push(vec![2, 10, 0, i, i, 0, 0, 0, 0, 0]);
    }
    let madt = table(b"APIC", 1, &madt_body(&entries));
    assert!(madt.len() < 0x1000);
    let info = parse(&synthetic(&[madt]), RSDP).unwrap();
    assert_eq!(info.local_apics().len(), MAX_LOCAL_APICS);
    assert_eq!(info.io_apics().len(), MAX_IO_APICS);
    assert_eq!(info.interrupt_overrides().len(), MAX_OVERRIDES);
    assert_eq!(
        info.warnings().collect::<Vec<_>>(),
        [
            Warning::CapacityExceeded(Capacity::LocalApics),
            Warning::CapacityExceeded(Capacity::IoApics),
            Warning::CapacityExceeded(Capacity::Overrides)
        ]
    );
}

#[test]
fn too_many_tables_and_warnings() {
    let tables: Vec<Vec<u8>> = (0..80)
        .map(|i| table(&[b'T', b'S', b'T', b'0' + (i % 10) as u8], 1, &[]))
        .collect();
    let info = parse(&synthetic(&tables), RSDP).unwrap();
    assert_eq!(info.tables().len(), MAX_TABLES);
    assert_eq!(
        info.warnings().collect::<Vec<_>>(),
        [Warning::CapacityExceeded(Capacity::Tables)]
    );

    // 30 distinct unreadable entries: 16 warnings kept, 14 counted.
    let addrs: Vec<u32> = (0..30).map(|i| 0x8000_0000 + i * 0x1000).collect();
    let mem = SparseMemory::new()
        .with(RSDP, rsdp_v1(TABLES as u32))
        .unwrap()
        .with(TABLES, table(b"RSDT", 1, &rsdt_body(&addrs)))
        .unwrap();
    let info = parse(&mem, RSDP).unwrap();
    assert_eq!(info.warnings().count(), MAX_WARNINGS);
    assert_eq!(info.dropped_warnings(), 14);
}

#[test]
fn duplicate_and_short_tables() {
    let madt = table(b"APIC", 1, &madt_body(&[lapic(0, 0, 1)]));
    let short_hpet = table(b"HPET", 1, &[0; 10]);
    let short_fadt = table(b"FACP", 1, &[0; 40]);
    let short_mcfg = table(b"MCFG", 1, &[0; 4]);
    let info = parse(
        &synthetic(&[madt.clone(), madt, short_hpet, short_fadt, short_mcfg]),
        RSDP,
    )
    .unwrap();
    let w: Vec<Warning> = info.warnings().collect();
    assert_eq!(w.len(), 4, "{w:?}");
    assert_eq!(
        w[0],
        Warning::DuplicateTable {
            signature: Signature(*b"APIC"),
            address: TABLES + 0x2000
        }
    );
    assert_eq!(
        w[1],
        Warning::TableTooShort {
            signature: Signature(*b"HPET"),
            length: 46
        }
    );
    assert_eq!(
        w[2],
        Warning::TableTooShort {
            signature: Signature(*b"FACP"),
            length: 76
        }
    );
    assert_eq!(
        w[3],
        Warning::TableTooShort {
            signature: Signature(*b"MCFG"),
            length: 40
        }
    );
    assert!(info.hpet.is_none() && info.fadt.is_none());
    assert_eq!(info.local_apics().len(), 1);
}

/// An HPET table body: block ID, base address GAS in `space` at `address`, number 0,
/// minimum tick 0, page protection 0.
fn hpet_body(space: u8, address: u64) -> Vec<u8> {
    let mut body = 0x8086_A201u32.to_le_bytes().to_vec();
    body.extend_from_slice(&[space, 64, 0, 0]);
    body.extend_from_slice(&address.to_le_bytes());
    body.extend_from_slice(&[0; 4]);
    body
}

#[test]
fn an_hpet_outside_system_memory_is_dropped_with_a_warning() {
    let in_memory = parse(
        &synthetic(&[table(b"HPET", 1, &hpet_body(0, 0xFED0_0000))]),
        RSDP,
    );
    let hpet = in_memory
        .unwrap()
        .hpet
        .expect("an HPET in system memory is kept");
    assert_eq!(hpet.base_address, 0xFED0_0000);
    for space in [1, 2, 0x7F] {
        let hpet = table(b"HPET", 1, &hpet_body(space, 0x40));
        let info = parse(&synthetic(&[hpet]), RSDP).unwrap();
        assert_eq!(
            info.hpet, None,
            "space {space}: no memory-mapped HPET there"
        );
        assert_eq!(
            info.warnings().collect::<Vec<_>>(),
            [Warning::HpetNotInMemory {
                address_space: space
            }]
        );
    }
}

#[test]
fn mcfg_bad_entry_and_many_segments() {
    let mut body = vec![0u8; 8];
    for i in 0..20u16 {
        body.extend_from_slice(&(0xE000_0000u64 + u64::from(i) * 0x1000_0000).to_le_bytes());
        body.extend_from_slice(&i.to_le_bytes());
        body.extend_from_slice(&[if i == 0 { 9 } else { 0 }, 1, 0, 0, 0, 0]);
    }
    let info = parse(&synthetic(&[table(b"MCFG", 1, &body)]), RSDP).unwrap();
    assert_eq!(info.mcfg_segments().len(), 16);
    assert_eq!(info.mcfg_segments()[0].segment, 1);
    assert_eq!(
        info.warnings().collect::<Vec<_>>(),
        [
            Warning::BadMcfgEntry { index: 0 },
            Warning::CapacityExceeded(Capacity::McfgSegments)
        ]
    );
}

/// A 276-byte (ACPI 6) FADT body with the given fields set.
fn fadt6(flags: u32, dsdt: u32) -> Vec<u8> {
    let mut b = vec![0u8; 276 - 36];
    let at = |o: usize| o - 36;
    b[at(40)..at(44)].copy_from_slice(&dsdt.to_le_bytes());
    b[at(112)..at(116)].copy_from_slice(&flags.to_le_bytes());
    // X_PM1a_CNT_BLK in I/O space at 0x404, X_PM_TMR_BLK at 0x408.
    b[at(172)] = 1;
    b[at(176)..at(184)].copy_from_slice(&0x404u64.to_le_bytes());
    b[at(208)] = 1;
    b[at(212)..at(220)].copy_from_slice(&0x408u64.to_le_bytes());
    // Sleep control / status registers in memory.
    b[at(244)] = 0;
    b[at(245)] = 8;
    b[at(248)..at(256)].copy_from_slice(&0xFE00_0000u64.to_le_bytes());
    b[at(257)] = 8;
    b[at(260)..at(268)].copy_from_slice(&0xFE00_0001u64.to_le_bytes());
    b
}

#[test]
fn without_a_madt_or_with_one_saying_0_the_local_apic_is_at_its_reset_address() {
    // Only a FADT: the xAPIC's registers at 0 page-faulted on the kernel's first write.
    let fadt = table(b"FACP", 6, &fadt6(0, 0));
    let info = parse(&synthetic(&[fadt]), RSDP).unwrap();
    assert_eq!(info.local_apic_address, 0xFEE0_0000);
    let mut body = madt_body(&[lapic(0, 0, 1)]);
    body[..4].fill(0);
    let info = parse(&synthetic(&[table(b"APIC", 1, &body)]), RSDP).unwrap();
    assert_eq!(info.local_apics().len(), 1);
    assert_eq!(info.local_apic_address, 0xFEE0_0000);
}

#[test]
fn a_local_apic_address_override_to_0_is_ignored_with_a_warning() {
    // An override entry of 0 gave the xAPIC's registers at page 0, without a word.
    let mut over = vec![5, 12, 0, 0];
    over.extend_from_slice(&0u64.to_le_bytes());
    let madt = table(b"APIC", 1, &madt_body(&[over, lapic(0, 0, 1)]));
    let info = parse(&synthetic(&[madt]), RSDP).unwrap();
    assert_eq!(info.local_apics().len(), 1);
    assert_eq!(info.local_apic_address, DEFAULT_LOCAL_APIC_ADDRESS);
    let warnings: Vec<_> = info.warnings().collect();
    assert_eq!(warnings, [Warning::LocalApicOverrideAtZero]);
    let text = warnings[0].to_string();
    assert!(
        text.contains("override") && text.contains("address 0"),
        "{text}"
    );
}

#[test]
fn hardware_reduced_fadt_and_bad_dsdt_pointer() {
    let hw_reduced = 1 << 20 | 1 << 8;
    let fadt = table(b"FACP", 6, &fadt6(hw_reduced, (TABLES + 0x1000) as u32));
    // The DSDT pointer names the FADT itself: wrong signature.
    let mem = synthetic(&[fadt]);
    let info = parse(&mem, RSDP).unwrap();
    let f = info.fadt.unwrap();
    assert!(f.hardware_reduced);
    assert_eq!(f.revision, 6);
    assert_eq!(f.pm1a_control_block, Some(0x404));
    assert_eq!(
        f.pm_timer,
        Some(rexo_acpi::PmTimer {
            port: 0x408,
            bits: 32
        })
    );
    assert_eq!(f.sleep_control.unwrap().address, 0xFE00_0000);
    assert_eq!(f.sleep_status.unwrap().address, 0xFE00_0001);
    assert_eq!(f.reset, None);
    assert_eq!(f.boot_arch, Some(rexo_acpi::BootArch(0)));
    assert_eq!(
        info.warnings().collect::<Vec<_>>(),
        [Warning::UnexpectedSignature {
            expected: Signature(*b"DSDT"),
            found: Signature(*b"FACP"),
            address: TABLES + 0x1000
        }]
    );
    // The DSDT that was not one at boot has no `\_S5` at power-off either.
    assert_eq!(info.find_s5(&mem), Ok(None));
}

#[test]
fn a_sleep_request_goes_to_the_sleep_control_register_on_hardware_reduced_acpi_else_pm1a() {
    let hw_reduced = 1 << 20;
    let fadt = table(b"FACP", 6, &fadt6(hw_reduced, 0));
    let f = parse(&synthetic(&[fadt]), RSDP).unwrap().fadt.unwrap();
    // Hardware-reduced ACPI sleeps through its sleep control register alone (the FADT
    // names a PM1a control block too); a FADT without the register its kind of ACPI
    // sleeps through says which it lacks.
    let control = f.sleep_control.as_ref().unwrap();
    assert_eq!(f.sleep_register(), Ok(SleepRegister::Control(control)));
    let without_control = rexo_acpi::Fadt {
        sleep_control: None,
        ..f
    };
    assert_eq!(
        without_control.sleep_register(),
        Err("hardware-reduced ACPI without a sleep control register")
    );
    let legacy = |pm1a_control_block| rexo_acpi::Fadt {
        hardware_reduced: false,
        pm1a_control_block,
        ..f
    };
    assert_eq!(
        legacy(Some(0x404)).sleep_register(),
        Ok(SleepRegister::Pm1a(0x404))
    );
    assert_eq!(legacy(None).sleep_register(), Err("no PM1a control block"));
}

#[test]
fn the_reset_and_sleep_control_registers_are_written_one_byte_at_their_own_address() {
    // A reset register of width 32 at port 0xCF9 was written with outl, a dword reaching
    // PCI's configuration data at 0xCFC, and one at 0x10CF9 was written at port 0xCF9.
    let mut body = fadt6(1 << 10, 0);
    let reset = |body: &mut Vec<u8>, space: u8, width: u8, address: u64| {
        body[116 - 36] = space;
        body[117 - 36] = width;
        body[119 - 36] = 3;
        body[120 - 36..128 - 36].copy_from_slice(&address.to_le_bytes());
        body[128 - 36] = 6;
    };
    let register = |body: &Vec<u8>| {
        let info = parse(&synthetic(&[table(b"FACP", 6, body)]), RSDP).unwrap();
        let reset = info.fadt.unwrap().reset.unwrap();
        assert_eq!(reset.value, 6);
        reset.register.byte_register()
    };
    reset(&mut body, 1, 32, 0xCF9);
    assert_eq!(register(&body), Some(ByteRegister::Port(0xCF9)));
    reset(&mut body, 1, 8, 0x1_0CF9);
    assert_eq!(register(&body), None);
    reset(&mut body, 0, 32, 0xFED0_0CF9);
    assert_eq!(register(&body), Some(ByteRegister::Memory(0xFED0_0CF9)));
    reset(&mut body, 2, 8, 0xCF9);
    assert_eq!(register(&body), None);

    let info = parse(&synthetic(&[table(b"FACP", 6, &body)]), RSDP).unwrap();
    let control = info.fadt.unwrap().sleep_control.unwrap();
    assert_eq!(
        control.byte_register(),
        Some(ByteRegister::Memory(0xFE00_0000))
    );
    let zero = GenericAddress {
        address: 0,
        ..control
    };
    assert_eq!(zero.byte_register(), None);
}

#[test]
fn a_short_fadt_lacks_exactly_the_fields_it_cuts_off() {
    let mut full = fadt6(1 << 10, 0);
    let at = |o: usize| o - 36;
    // Reset register: I/O port 0xCF9, value 6. Legacy PM1a control block at 0xB004.
    full[at(116)] = 1;
    full[at(120)..at(128)].copy_from_slice(&0xCF9u64.to_le_bytes());
    full[at(128)] = 6;
    full[at(64)..at(68)].copy_from_slice(&0xB004u32.to_le_bytes());
    let fadt_of_length = |length: usize| {
        let info = parse(&synthetic(&[table(b"FACP", 6, &full[..length - 36])]), RSDP).unwrap();
        info.fadt.unwrap()
    };
    // The reset register without its value is no reset register.
    assert_eq!(fadt_of_length(128).reset, None);
    assert_eq!(fadt_of_length(129).reset.map(|r| r.value), Some(6));
    // A cut-off X_PM1a_CNT_BLK leaves the 32-bit field's port.
    assert_eq!(fadt_of_length(183).pm1a_control_block, Some(0xB004));
    assert_eq!(fadt_of_length(184).pm1a_control_block, Some(0x404));
    assert_eq!(fadt_of_length(219).pm_timer, None);
    assert_eq!(fadt_of_length(220).pm_timer.map(|t| t.port), Some(0x408));
    assert_eq!(fadt_of_length(267).sleep_status, None);
    assert_eq!(
        fadt_of_length(268).sleep_status.map(|g| g.address),
        Some(0xFE00_0001)
    );
}

#[test]
fn the_fixed_hardwares_ports_are_the_fadts_blocks_of_at_least_their_least_length() {
    let at = |o: usize| o - 36;
    let mut body = fadt6(1 << 10, 0);
    // Legacy blocks: PM1a/PM1b events, PM1b control, PM2 control, GPE0, GPE1; the SMI
    // command port; lengths PM1 events 8, PM1 control 0 (too short: 2), PM2 1, GPE0 16,
    // GPE1 0 (too short: 2). X_GPE1_BLK overrides its 32-bit field. The reset register
    // in I/O space at 0x504 (PM1b control's port: each range is listed as the FADT says).
    for (offset, port) in [
        (56, 0x400),
        (60, 0x500),
        (68, 0x504),
        (72, 0x450),
        (80, 0x420),
    ] {
        body[at(offset)..at(offset + 4)].copy_from_slice(&(port as u32).to_le_bytes());
    }
    body[at(84)..at(88)].copy_from_slice(&0x430u32.to_le_bytes());
    body[at(232)] = 1;
    body[at(236)..at(244)].copy_from_slice(&0x440u64.to_le_bytes());
    body[at(48)..at(52)].copy_from_slice(&0xB2u32.to_le_bytes());
    body[at(88)..at(94)].copy_from_slice(&[8, 0, 1, 4, 16, 0]);
    body[at(116)] = 1;
    body[at(120)..at(128)].copy_from_slice(&0x504u64.to_le_bytes());
    let fadt = |body: &[u8]| {
        let info = parse(&synthetic(&[table(b"FACP", 6, body)]), RSDP).unwrap();
        info.fadt.unwrap()
    };
    assert_eq!(
        fadt(&body).io_ports(),
        [
            (0x400, 8),
            (0x500, 8),
            (0x404, 2),
            (0x504, 2),
            (0x450, 1),
            (0x408, 4),
            (0x420, 16),
            (0x440, 2),
            (0xB2, 1),
            (0x504, 1)
        ]
    );
    // An FADT of ACPI 1.0's length names the 32-bit fields' ports alone.
    let short = fadt(&body[..at(116)]).io_ports();
    assert_eq!((short[2], short[5], short[7]), ((0, 0), (0, 0), (0x430, 2)));
    // One that names none gives none.
    assert!(
        fadt(&vec![0; at(116)])
            .io_ports()
            .iter()
            .all(|&ports| ports == (0, 0))
    );
}

#[test]
fn a_century_index_ports_0x70_and_0x71_cannot_read_is_dropped_with_a_warning() {
    let century_of = |index: u8| {
        let mut body = fadt6(0, 0);
        body[108 - 36] = index;
        let info = parse(&synthetic(&[table(b"FACP", 6, &body)]), RSDP).unwrap();
        (
            info.fadt.unwrap().century,
            info.warnings().collect::<Vec<_>>(),
        )
    };
    // 0 says there is none; 0x0E to 0x7F are the standard bank past the clock's registers.
    assert_eq!(century_of(0), (None, vec![]));
    for index in [0x0E, 0x32, 0x7F] {
        assert_eq!(century_of(index), (Some(index), vec![]));
    }
    // The clock's own registers, and the extended bank (bit 7 would mask NMIs).
    for index in [0x01, 0x09, 0x0D, 0x80, 0xC8, 0xFF] {
        assert_eq!(
            century_of(index),
            (None, vec![Warning::BadCenturyIndex { index }]),
            "{index:#x}"
        );
    }
    assert!(
        Warning::BadCenturyIndex { index: 0x80 }
            .to_string()
            .contains("CMOS index 0x80")
    );
}

#[test]
fn dsdt_with_malformed_s5() {
    let dsdt = table(
        b"DSDT",
        2,
        &[0x08, b'_', b'S', b'5', b'_', 0x12, 4, 2, 0xFF, 0xFF],
    );
    let fadt = table(b"FACP", 6, &fadt6(0, (TABLES + 0x2000) as u32));
    let mem = synthetic(&[fadt, dsdt]);
    let info = parse(&mem, RSDP).unwrap();
    // The boot does not search the DSDT: the bad package is found (and warned about) only
    // when power-off asks for `\_S5`.
    assert_eq!(info.warnings().count(), 0);
    assert_eq!(info.find_s5(&mem), Err(Warning::BadS5));
    assert!(Warning::BadS5.to_string().contains("_S5_"));
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for machine in ["q35-smp4", "pc-smp4"] {
        let base = recorded(machine);
        let chunks: Vec<(u64, usize)> = base.chunks().map(|(a, b)| (a, b.len())).collect();
        let rsdp = find_rsdp_bios(&base).unwrap();
        for round in 0..1500 {
            let mut mem = base.clone();
            let flips = 1 + rng.next_u64() % 8;
            for _ in 0..flips {
                // Chunks are picked uniformly, so the small ones (BDA, RSDP) are hit as often as the tables.
                let (addr, len) = chunks[(rng.next_u64() % chunks.len() as u64) as usize];
                let off = rng.next_u64() % len as u64;
                let byte = mem.read_mut(addr + off, 1).unwrap();
                byte[0] ^= 1 << (rng.next_u64() % 8);
            }
            // Half the rounds, also repair the checksums so the flipped fields are parsed.
            if round % 2 == 0
                && let Ok(info) = parse(&mem, rsdp)
            {
                for t in info.tables().iter().filter(|t| t.signature.0 != *b"FACS") {
                    if let Some(bytes) = mem.read_mut(t.address, t.length as usize) {
                        fix_checksum(bytes, 9);
                    }
                }
            }
            let _ = find_rsdp_bios(&mem);
            if let Ok(info) = parse(&mem, rsdp) {
                for w in info.warnings() {
                    assert!(!w.to_string().is_empty());
                }
                assert!(info.tables().len() <= MAX_TABLES);
                let _ = info.find_s5(&mem);
            }
        }
    }
}
