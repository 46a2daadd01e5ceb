//! Synthetic Multiboot2 information blocks.

use rexo_bootinfo::{
    BootInfoError, BootInfoWarning, Framebuffer, Module, Protocol, RawKind, RawRegion, Rsdp,
    StringKind, StringProblem, Structure, parse_multiboot2,
};
use rexo_memmap::{FrameAllocator, MemoryMap, Region};
use rexo_physmem::SparseMemory;
use rexo_testkit::Rng;

const INFO: u64 = 0x9000;

/// A tag: type, size (header plus `body`), body, padded to 8 bytes.
fn tag(tag_type: u32, body: &[u8]) -> Vec<u8> {
    let mut t = tag_type.to_le_bytes().to_vec();
    t.extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
    t.extend_from_slice(body);
    while !t.len().is_multiple_of(8) {
        t.push(0);
    }
    t
}

/// An information block holding `tags` and an end tag.
fn block(tags: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    for t in tags {
        b.extend_from_slice(t);
    }
    b.extend_from_slice(&tag(0, &[]));
    let total = b.len() as u32;
    b[..4].copy_from_slice(&total.to_le_bytes());
    b
}

fn mmap_tag(entry_size: u32, entries: &[(u64, u64, u32)]) -> Vec<u8> {
    let mut body = entry_size.to_le_bytes().to_vec();
    body.extend_from_slice(&0u32.to_le_bytes());
    for &(base, len, kind) in entries {
        let mut e = base.to_le_bytes().to_vec();
        e.extend_from_slice(&len.to_le_bytes());
        e.extend_from_slice(&kind.to_le_bytes());
        e.resize(entry_size as usize, 0);
        body.extend_from_slice(&e);
    }
    tag(6, &body)
}

fn module_tag(start: u32, end: u32, cmdline: &[u8]) -> Vec<u8> {
    let mut body = start.to_le_bytes().to_vec();
    body.extend_from_slice(&end.to_le_bytes());
    body.extend_from_slice(cmdline);
    tag(3, &body)
}

fn framebuffer_tag(fb_type: u8) -> Vec<u8> {
    let mut body = 0xFD00_0000u64.to_le_bytes().to_vec();
    for v in [4096u32, 1024, 768] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&[32, fb_type, 0, 0]);
    body.extend_from_slice(&[16, 8, 8, 8, 0, 8]);
    tag(8, &body)
}

fn mem(block: Vec<u8>) -> SparseMemory {
    SparseMemory::new().with(INFO, block).unwrap()
}

fn standard_tags() -> Vec<Vec<u8>> {
    vec![
        tag(1, b"console=ttyS0\0"),
        tag(2, b"GRUB 2.06\0"),
        module_tag(0x20_0000, 0x20_1000, b"app.elf arg\0"),
        module_tag(0x30_0000, 0x30_0000, b"\0"),
        tag(4, &[0x7F, 2, 0, 0, 0x00, 0xFC, 0, 0]),
        mmap_tag(
            24,
            &[
                (0, 0x9FC00, 1),
                (0x9FC00, 0x400, 2),
                (0x10_0000, 0xFEE_0000, 1),
                (0xFFE_0000, 0x20000, 3),
                (0xFFF_FFFF_0000, 0x1000, 4),
                (0x1_0000_0000, 0x1000, 5),
                (0x2_0000_0000, 0x1000, 9),
            ],
        ),
        framebuffer_tag(1),
        tag(14, &rsdp_v1(0x2000)),
        tag(15, &rsdp_v2(0x2000, 0x3000)),
    ]
}

/// Sets `bytes[at]` so that the bytes sum to 0 (an ACPI checksum).
fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b));
    bytes[at] = sum.wrapping_neg();
}

/// An ACPI 1.0 RSDP (revision 0, 20 bytes) naming the RSDT at `rsdt`.
fn rsdp_v1(rsdt: u32) -> Vec<u8> {
    let mut r = b"RSD PTR \0REXOTS\0".to_vec();
    r.extend_from_slice(&rsdt.to_le_bytes());
    fix_checksum(&mut r, 8);
    r
}

/// An ACPI 2.0 RSDP (revision 2, 36 bytes) naming `rsdt` and `xsdt`, both checksums right.
fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = rsdp_v1(rsdt);
    r[15] = 2;
    fix_checksum(&mut r, 8);
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0; 4]);
    fix_checksum(&mut r, 32);
    r
}

/// The RSDP at `address`, read whole (a valid tag 15's).
fn whole(address: u64) -> Option<Rsdp> {
    let acpi1_only = false;
    Some(Rsdp {
        address,
        acpi1_only,
    })
}

/// The ACPI 1.0 part of the RSDP at `address` alone.
fn acpi1_part(address: u64) -> Option<Rsdp> {
    let acpi1_only = true;
    Some(Rsdp {
        address,
        acpi1_only,
    })
}

#[test]
fn parses_every_field() {
    let b = block(&standard_tags());
    let total = b.len() as u64;
    let m = mem(b);
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(info.protocol, Protocol::Multiboot2);
    assert_eq!(info.cmdline, "console=ttyS0");
    assert_eq!(info.loader_name, "GRUB 2.06");
    assert_eq!(info.loader(), "GRUB 2.06");
    assert_eq!(
        info.modules(),
        &[
            Module {
                start: 0x20_0000,
                end: 0x20_1000,
                cmdline: "app.elf arg"
            },
            Module {
                start: 0x30_0000,
                end: 0x30_0000,
                cmdline: ""
            }
        ]
    );
    let r = |start, len, kind| RawRegion { start, len, kind };
    assert_eq!(
        info.memory_map().collect::<Vec<_>>(),
        &[
            r(0, 0x9FC00, RawKind::Usable),
            r(0x9FC00, 0x400, RawKind::Reserved),
            r(0x10_0000, 0xFEE_0000, RawKind::Usable),
            r(0xFFE_0000, 0x20000, RawKind::AcpiReclaimable),
            r(0xFFF_FFFF_0000, 0x1000, RawKind::AcpiNvs),
            r(0x1_0000_0000, 0x1000, RawKind::Bad),
            r(0x2_0000_0000, 0x1000, RawKind::Reserved),
        ]
    );
    assert_eq!(
        info.framebuffer,
        Some(Framebuffer {
            addr: 0xFD00_0000,
            pitch: 4096,
            width: 1024,
            height: 768,
            bpp: 32,
            red_shift: 16,
            red_bits: 8,
            green_shift: 8,
            green_bits: 8,
            blue_shift: 0,
            blue_bits: 8
        })
    );
    // The RSDP copy inside tag 15 (the new one wins over tag 14): find the tag's offset.
    let tags = standard_tags();
    let off15: usize = 8 + tags[..8].iter().map(Vec::len).sum::<usize>();
    assert_eq!(info.rsdp, whole(INFO + off15 as u64 + 8));
    assert_eq!(info.info_ranges().len(), 1);
    assert_eq!(info.info_ranges()[0], INFO..INFO + total);
}

#[test]
fn old_rsdp_and_text_framebuffer() {
    let m = mem(block(&[
        tag(14, &rsdp_v1(0x2000)),
        framebuffer_tag(2),
        mmap_tag(24, &[(0, 0x1000, 1)]),
    ]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(info.rsdp, acpi1_part(INFO + 16));
    assert_eq!(info.framebuffer, None);
    assert_eq!(info.cmdline, "");
    // Indexed colour is not RGB either.
    let m = mem(block(&[
        framebuffer_tag(0),
        mmap_tag(24, &[(0, 0x1000, 1)]),
    ]));
    assert_eq!(parse_multiboot2(&m, INFO).unwrap().framebuffer, None);
}

#[test]
fn an_acpi_tag_too_short_for_its_rsdp_is_ignored_with_a_warning() {
    // The RSDP copy would run past its tag (here past the block's end tag): no RSDP, so
    // that the kernel searches for one itself.
    let map = mmap_tag(24, &[(0, 0x1000, 1)]);
    for (short, tag_type) in [
        (tag(14, &rsdp_v1(0x2000)[..19]), 14),
        (tag(15, &rsdp_v1(0x2000)[..19]), 15),
    ] {
        let m = mem(block(&[map.clone(), short.clone()]));
        let info = parse_multiboot2(&m, INFO).unwrap();
        assert_eq!(info.rsdp, None, "{short:?}");
        let warning = BootInfoWarning::BadRsdpCopy { tag_type };
        assert_eq!(info.warning, Some(warning));
    }
    // A whole ACPI 1.0 RSDP is still found beside a short tag 15.
    let tags = [
        tag(14, &rsdp_v1(0x2000)),
        tag(15, &rsdp_v2(0x2000, 0x3000)[..35]),
        map,
    ];
    let memory = mem(block(&tags));
    let info = parse_multiboot2(&memory, INFO).unwrap();
    assert_eq!(info.rsdp, acpi1_part(INFO + 16));
    let warning = BootInfoWarning::BadRsdpCopy { tag_type: 15 };
    assert_eq!(info.warning, Some(warning));
    assert!(
        warning
            .to_string()
            .contains("tag 15 holds no valid revision 2 RSDP whole")
    );
}

#[test]
fn a_tag_14_copy_of_a_revision_2_rsdp_is_its_acpi_1_part_alone() {
    // GRUB copies the first 20 bytes of the RSDP into tag 14, whatever its revision.
    let tags = [a_map(), tag(14, &rsdp_v2(0x2000, 0x3000)[..20])];
    let memory = mem(block(&tags));
    let info = parse_multiboot2(&memory, INFO).unwrap();
    assert_eq!(info.rsdp, acpi1_part(body_address(&tags, 1)));
    assert_eq!(info.warning, None);
}

#[test]
fn a_valid_tag_15_is_preferred_else_tag_14_else_the_acpi_1_part_of_tag_15() {
    let v1 = tag(14, &rsdp_v1(0x2000));
    let v2 = rsdp_v2(0x2000, 0x3000);
    let mut bad_checksum = v2.clone();
    bad_checksum[8] ^= 1;
    let mut bad_extended_checksum = v2.clone();
    bad_extended_checksum[32] ^= 1;
    let mut past_the_tag = v2.clone();
    past_the_tag[20] = 37;
    fix_checksum(&mut past_the_tag, 32);
    let bad_v1 = tag(14, &bad_checksum[..20]);
    let bad_15 = Some(BootInfoWarning::BadRsdpCopy { tag_type: 15 });
    let bad_14 = Some(BootInfoWarning::BadRsdpCopy { tag_type: 14 });
    let cases = [
        // Both valid, in either order: tag 15, whole; tag 14's validity does not matter.
        (vec![v1.clone(), tag(15, &v2)], 1, false, None),
        (vec![tag(15, &v2), v1.clone()], 0, false, None),
        (vec![bad_v1.clone(), tag(15, &v2)], 1, false, None),
        // Tag 15 broken: tag 14's ACPI 1.0 part.
        (vec![v1.clone(), tag(15, &bad_checksum)], 0, true, bad_15),
        (
            vec![tag(15, &bad_extended_checksum), v1.clone()],
            1,
            true,
            bad_15,
        ),
        (vec![tag(15, &past_the_tag), v1.clone()], 1, true, bad_15),
        // Without a valid tag 14: the ACPI 1.0 part of a tag 15 whose revision 2 part is
        // broken.
        (vec![tag(15, &bad_extended_checksum)], 0, true, bad_15),
        (
            vec![bad_v1.clone(), tag(15, &past_the_tag)],
            1,
            true,
            bad_15,
        ),
    ];
    for (acpi_tags, used, acpi1_only, warning) in cases {
        let tags = [&acpi_tags[..], &[a_map()]].concat();
        let memory = mem(block(&tags));
        let info = parse_multiboot2(&memory, INFO).unwrap();
        let address = body_address(&tags, used);
        let expected = Rsdp {
            address,
            acpi1_only,
        };
        assert_eq!(info.rsdp, Some(expected), "{acpi_tags:?}");
        assert_eq!(info.warning, warning, "{acpi_tags:?}");
    }
    // Neither valid: none (the kernel searches the BIOS areas), tag 15 warned of first.
    let tags = [bad_v1.clone(), tag(15, &bad_checksum), a_map()];
    let memory = mem(block(&tags));
    let info = parse_multiboot2(&memory, INFO).unwrap();
    assert_eq!((info.rsdp, info.warning), (None, bad_15));
    let tags = [bad_v1, a_map()];
    let memory = mem(block(&tags));
    let info = parse_multiboot2(&memory, INFO).unwrap();
    assert_eq!((info.rsdp, info.warning), (None, bad_14));
}

#[test]
fn larger_map_entries_are_stepped_by_entry_size() {
    let m = mem(block(&[mmap_tag(
        32,
        &[(0, 0x1000, 1), (0x2000, 0x1000, 2)],
    )]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(
        info.memory_map().collect::<Vec<_>>()[1],
        RawRegion {
            start: 0x2000,
            len: 0x1000,
            kind: RawKind::Reserved
        }
    );
}

fn efi_tag(desc_size: u32, descs: &[(u32, u64, u64)]) -> Vec<u8> {
    let mut body = desc_size.to_le_bytes().to_vec();
    body.extend_from_slice(&1u32.to_le_bytes());
    for &(kind, start, pages) in descs {
        let mut d = kind.to_le_bytes().to_vec();
        d.extend_from_slice(&0u32.to_le_bytes());
        d.extend_from_slice(&start.to_le_bytes());
        d.extend_from_slice(&0u64.to_le_bytes());
        d.extend_from_slice(&pages.to_le_bytes());
        d.extend_from_slice(&0xFu64.to_le_bytes());
        d.resize(desc_size as usize, 0);
        body.extend_from_slice(&d);
    }
    tag(17, &body)
}

/// A UEFI map of 400 descriptors from 1 MiB, fragmented as firmware's are: in each four,
/// conventional memory and boot services data (usable RAM, one region), runtime services
/// data, and ACPI tables, ACPI NVS or MMIO in turn (MMIO is reserved like runtime
/// services data, so the two are one region).
fn fragmented_efi_map() -> Vec<(u32, u64, u64)> {
    let mut start = 0x10_0000;
    let mut descs = Vec::new();
    for i in 0..100u64 {
        for (kind, pages) in [
            (7, i % 5 + 1),
            (4, i % 3 + 1),
            (6, 1),
            ([9, 10, 11][i as usize % 3], 2),
        ] {
            descs.push((kind, start, pages));
            start += pages * 0x1000;
        }
    }
    descs
}

#[test]
fn a_fragmented_efi_map_of_400_descriptors_keeps_all_its_ram() {
    let descs = fragmented_efi_map();
    let m = mem(block(&[efi_tag(48, &descs)]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(info.warning, None);
    let map: Vec<RawRegion> = info.memory_map().collect();
    let pages_of = |kinds: &[u32]| -> u64 {
        let pages = descs.iter().filter(|(kind, ..)| kinds.contains(kind));
        pages.map(|&(_, _, pages)| pages * 0x1000).sum()
    };
    let usable = pages_of(&[7, 4]);
    assert_eq!(
        map.len(),
        100 * 3 - 100 / 3,
        "an MMIO range merges with the one before"
    );
    let bytes = |kind| {
        map.iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.len)
            .sum::<u64>()
    };
    assert_eq!(bytes(RawKind::Usable), usable);
    assert_eq!(bytes(RawKind::AcpiReclaimable), pages_of(&[9]));
    assert_eq!(bytes(RawKind::AcpiNvs), pages_of(&[10]));
    assert_eq!(bytes(RawKind::Reserved), pages_of(&[6, 11]));
    // The kernel's memory map and frame allocator take all of it.
    let mut kernel_map = MemoryMap::new();
    kernel_map
        .fill(1 << 40, map.iter().map(|&r| Region::from(r)))
        .unwrap();
    assert_eq!(kernel_map.usable_bytes(), usable);
    let frames = FrameAllocator::new(&kernel_map, &[]).unwrap();
    assert_eq!(frames.free_bytes(), usable);
}

#[test]
fn efi_map_when_no_mmap_tag() {
    let descs = [
        (7, 0, 0x9F),
        (3, 0x9F000, 1),
        (9, 0x10_0000, 2),
        (10, 0x10_2000, 1),
        (8, 0x10_3000, 1),
        (0, 0x10_4000, 1),
        (11, 0xFEC0_0000, 1),
    ];
    let m = mem(block(&[efi_tag(48, &descs)]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    let r = |start, len, kind| RawRegion { start, len, kind };
    assert_eq!(
        info.memory_map().collect::<Vec<_>>(),
        &[
            r(0, 0xA0000, RawKind::Usable),
            r(0x10_0000, 0x2000, RawKind::AcpiReclaimable),
            r(0x10_2000, 0x1000, RawKind::AcpiNvs),
            r(0x10_3000, 0x1000, RawKind::Bad),
            r(0x10_4000, 0x1000, RawKind::Reserved),
            r(0xFEC0_0000, 0x1000, RawKind::Reserved),
        ]
    );
    // Tag 6 wins over tag 17.
    let m = mem(block(&[
        efi_tag(48, &descs),
        mmap_tag(24, &[(0, 0x1000, 1)]),
    ]));
    assert_eq!(parse_multiboot2(&m, INFO).unwrap().memory_map().count(), 1);
    // Descriptor size below 40.
    let m = mem(block(&[efi_tag(32, &[])]));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap_err(),
        BootInfoError::BadMapEntrySize { size: 32 }
    );
}

#[test]
fn a_region_past_the_address_space_is_cut_at_its_top_with_a_warning() {
    let top = u64::MAX - 0xFFF;
    let r = |start, len, kind| RawRegion { start, len, kind };
    let cut_at_the_top = r(top, 0xFFF, RawKind::Usable);
    let past = |len| Some(BootInfoWarning::RegionPastAddressSpace { start: top, len });
    let m = mem(block(&[mmap_tag(24, &[(0, 0x1000, 1), (top, 0x2000, 1)])]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(
        info.memory_map().collect::<Vec<_>>(),
        &[r(0, 0x1000, RawKind::Usable), cut_at_the_top]
    );
    assert_eq!(info.warning, past(0x2000));
    // The same by an EFI descriptor's page count, and by one of more bytes than a u64 holds.
    for pages in [2, u64::MAX] {
        let m = mem(block(&[efi_tag(40, &[(7, top, pages)])]));
        let info = parse_multiboot2(&m, INFO).unwrap();
        assert_eq!(info.memory_map().collect::<Vec<_>>(), &[cut_at_the_top]);
        assert_eq!(info.warning, past(pages.saturating_mul(4096)));
    }
    // A region starting at the last byte leaves nothing; the first warning is kept.
    let m = mem(block(&[mmap_tag(
        24,
        &[(top, 0x2000, 1), (u64::MAX, 1, 2), (0, 0x1000, 1)],
    )]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(
        info.memory_map().collect::<Vec<_>>(),
        &[cut_at_the_top, r(0, 0x1000, RawKind::Usable)]
    );
    assert_eq!(info.warning, past(0x2000));
    // Up to the last byte of the address space, or to its end at 2^64 (cut, as a `u64`
    // end cannot say 2^64), is fine, and no warning.
    for len in [0xFFF, 0x1000] {
        let m = mem(block(&[mmap_tag(24, &[(top, len, 1)])]));
        let info = parse_multiboot2(&m, INFO).unwrap();
        assert_eq!(info.memory_map().collect::<Vec<_>>(), &[cut_at_the_top]);
        assert_eq!(info.warning, None, "{len:#x} bytes");
    }
    // An EFI page count of more bytes than a u64 holds runs past 2^64 even from 0.
    let m = mem(block(&[efi_tag(40, &[(7, 0, u64::MAX / 4096 + 1)])]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(
        info.memory_map().collect::<Vec<_>>(),
        &[r(0, u64::MAX, RawKind::Usable)]
    );
    assert_eq!(
        info.warning,
        Some(BootInfoWarning::RegionPastAddressSpace {
            start: 0,
            len: u64::MAX
        })
    );
    let text = past(0x2000).unwrap().to_string();
    assert!(
        text.contains("0xfffffffffffff000") && text.contains("cut"),
        "{text}"
    );
}

/// `map_tag` (an `mmap_tag` or `efi_tag`) with `extra` more body bytes.
fn with_bytes_past_the_entries(map_tag: Vec<u8>, extra: usize) -> Vec<u8> {
    let size = u32::from_le_bytes(map_tag[4..8].try_into().unwrap()) as usize;
    let mut body = map_tag[8..size].to_vec();
    body.resize(body.len() + extra, 0xEE);
    tag(u32::from_le_bytes(map_tag[..4].try_into().unwrap()), &body)
}

#[test]
fn a_part_entry_at_the_end_of_a_memory_map_tag_is_dropped_with_a_warning() {
    let whole = mmap_tag(24, &[(0, 0x1000, 1), (0x2000, 0x1000, 2)]);
    let m = mem(block(&[with_bytes_past_the_entries(whole, 20)]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(info.memory_map().count(), 2);
    let warning = BootInfoWarning::PartialMapEntry {
        tag_type: 6,
        entry_size: 24,
        body_size: 68,
    };
    assert_eq!(info.warning, Some(warning));
    let text = warning.to_string();
    assert!(text.contains("tag type 6") && text.contains("68"), "{text}");
    let efi = efi_tag(48, &[(7, 0, 16)]);
    let m = mem(block(&[with_bytes_past_the_entries(efi, 47)]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(info.memory_map().count(), 1);
    assert_eq!(
        info.warning,
        Some(BootInfoWarning::PartialMapEntry {
            tag_type: 17,
            entry_size: 48,
            body_size: 95,
        })
    );
    // Whole entries only: no warning.
    let m = mem(block(&[mmap_tag(24, &[(0, 0x1000, 1)])]));
    assert_eq!(parse_multiboot2(&m, INFO).unwrap().warning, None);
}

#[test]
fn a_memory_map_tag_without_one_whole_entry_is_refused() {
    // An entry size past the body: the map would be empty, and the boot would stop later
    // for want of memory, not for this tag.
    let mut body = 64u32.to_le_bytes().to_vec();
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&mmap_tag(24, &[(0, 0x10_0000, 1)])[16..40]);
    let m = mem(block(&[tag(6, &body)]));
    let error = parse_multiboot2(&m, INFO).unwrap_err();
    assert_eq!(
        error,
        BootInfoError::MapTagWithoutEntries {
            tag_type: 6,
            entry_size: 64,
            body_size: 24
        }
    );
    let text = error.to_string();
    assert!(
        text.contains("memory map tag type 6") && text.contains("64") && text.contains("24"),
        "{text}"
    );
    // No entry at all, in either kind of map tag.
    let m = mem(block(&[mmap_tag(24, &[])]));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap_err(),
        BootInfoError::MapTagWithoutEntries {
            tag_type: 6,
            entry_size: 24,
            body_size: 0
        }
    );
    let m = mem(block(&[with_bytes_past_the_entries(
        efi_tag(4096, &[]),
        48,
    )]));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap_err(),
        BootInfoError::MapTagWithoutEntries {
            tag_type: 17,
            entry_size: 4096,
            body_size: 48
        }
    );
}

#[test]
fn basic_meminfo_as_last_resort_and_no_map() {
    let m = mem(block(&[tag(4, &[0x7F, 2, 0, 0, 0x00, 0xFC, 0, 0])]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(
        info.memory_map().collect::<Vec<_>>(),
        &[
            RawRegion {
                start: 0,
                len: 639 * 1024,
                kind: RawKind::Usable
            },
            RawRegion {
                start: 0x10_0000,
                len: 0xFC00 * 1024,
                kind: RawKind::Usable
            }
        ]
    );
    let m = mem(block(&[tag(1, b"x\0")]));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap_err(),
        BootInfoError::NoMemoryMap
    );
}

#[test]
fn block_level_errors() {
    let good = block(&standard_tags());
    assert_eq!(
        parse_multiboot2(&mem(good.clone()), INFO + 4).unwrap_err(),
        BootInfoError::Misaligned { address: INFO + 4 }
    );
    assert_eq!(
        parse_multiboot2(&SparseMemory::new(), INFO).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::InfoBlock,
            address: INFO
        }
    );
    let mut b = good.clone();
    b[..4].copy_from_slice(&8u32.to_le_bytes());
    assert_eq!(
        parse_multiboot2(&mem(b), INFO).unwrap_err(),
        BootInfoError::BadTotalSize { size: 8 }
    );
    let mut b = good.clone();
    b[..4].copy_from_slice(&(good.len() as u32 + 8).to_le_bytes());
    assert!(matches!(
        parse_multiboot2(&mem(b), INFO),
        Err(BootInfoError::Unreadable { .. })
    ));
    // Total size cutting off the end tag.
    let mut b = good.clone();
    b[..4].copy_from_slice(&(good.len() as u32 - 8).to_le_bytes());
    assert_eq!(
        parse_multiboot2(&mem(b), INFO).unwrap_err(),
        BootInfoError::MissingEndTag
    );
}

#[test]
fn a_total_size_past_the_end_tag_keeps_only_the_block_with_a_warning() {
    // A total_size of 64 MiB kept 64 MiB from the frame allocator (near 4 GiB, all the
    // memory below it), without a word.
    let good = block(&[a_map()]);
    let end = good.len() as u64;
    let mut b = good.clone();
    b[..4].copy_from_slice(&(end as u32 + 0x1_0000).to_le_bytes());
    b.resize(b.len() + 0x1_0000, 0);
    let m = mem(b);
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(
        info.info_ranges(),
        std::slice::from_ref(&(INFO..INFO + end))
    );
    let warning = info.warning.unwrap();
    assert_eq!(
        warning,
        BootInfoWarning::TotalSizePastEndTag {
            total_size: end as u32 + 0x1_0000,
            end_tag_end: end as u32
        }
    );
    assert!(warning.to_string().contains("end tag"), "{warning}");
    let m = mem(good);
    let info = parse_multiboot2(&m, INFO).unwrap();
    assert_eq!(
        info.info_ranges(),
        std::slice::from_ref(&(INFO..INFO + end))
    );
    assert_eq!(info.warning, None);
}

#[test]
fn tag_level_errors() {
    // A tag of size 0 (must not loop forever).
    let mut b = block(&[tag(1, b"x\0")]);
    b[12..16].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        parse_multiboot2(&mem(b), INFO).unwrap_err(),
        BootInfoError::TagTooSmall { offset: 8, size: 0 }
    );
    // A tag running past the block.
    let mut b = block(&[tag(1, b"x\0")]);
    b[12..16].copy_from_slice(&100u32.to_le_bytes());
    assert_eq!(
        parse_multiboot2(&mem(b), INFO).unwrap_err(),
        BootInfoError::TagTruncated {
            offset: 8,
            tag_type: 1,
            size: 100
        }
    );
    // Tags too short for their fields.
    let m = mem(block(&[tag(3, &[0, 0, 0, 0])]));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap_err(),
        BootInfoError::TagTooShortForType {
            tag_type: 3,
            size: 12
        }
    );
    let m = mem(block(&[tag(8, &[0; 10])]));
    assert!(matches!(
        parse_multiboot2(&m, INFO),
        Err(BootInfoError::TagTooShortForType { tag_type: 8, .. })
    ));
    let m = mem(block(&[tag(6, &[])]));
    assert!(matches!(
        parse_multiboot2(&m, INFO),
        Err(BootInfoError::TagTooShortForType { tag_type: 6, .. })
    ));
    // Map entry size below 24.
    let m = mem(block(&[mmap_tag(16, &[])]));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap_err(),
        BootInfoError::BadMapEntrySize { size: 16 }
    );
    let m = mem(block(&[mmap_tag(0, &[])]));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap_err(),
        BootInfoError::BadMapEntrySize { size: 0 }
    );
}

#[test]
fn string_and_module_errors() {
    let with = |t: Vec<u8>| mem(block(&[t, mmap_tag(24, &[(0, 0x1000, 1)])]));
    assert_eq!(
        parse_multiboot2(&with(tag(1, b"abc")), INFO).unwrap_err(),
        BootInfoError::BadString {
            which: StringKind::Cmdline,
            problem: StringProblem::Unterminated
        }
    );
    assert_eq!(
        parse_multiboot2(&with(tag(2, b"\xFF\xFE\0")), INFO).unwrap_err(),
        BootInfoError::BadString {
            which: StringKind::LoaderName,
            problem: StringProblem::NotUtf8
        }
    );
    assert_eq!(
        parse_multiboot2(&with(module_tag(0, 0x1000, b"\xC0\0")), INFO).unwrap_err(),
        BootInfoError::BadString {
            which: StringKind::ModuleCmdline(0),
            problem: StringProblem::NotUtf8
        }
    );
    assert_eq!(
        parse_multiboot2(&with(module_tag(0x2000, 0x1000, b"\0")), INFO).unwrap_err(),
        BootInfoError::BadModule { index: 0 }
    );
    let mut tags: Vec<Vec<u8>> = (0..17)
        .map(|i| module_tag(i * 0x1000, i * 0x1000 + 1, b"m\0"))
        .collect();
    tags.push(mmap_tag(24, &[(0, 0x1000, 1)]));
    assert_eq!(
        parse_multiboot2(&mem(block(&tags)), INFO).unwrap_err(),
        BootInfoError::TooManyModules { count: 17 }
    );
}

#[test]
fn random_byte_flips_never_panic() {
    let good = block(&standard_tags());
    let mut rng = Rng(0xB007_1AF0_0000_0001);
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.next_u64() % 6 {
            let i = (rng.next_u64() % b.len() as u64) as usize;
            b[i] ^= 1 << (rng.next_u64() % 8);
        }
        let _ = parse_multiboot2(&mem(b), INFO).map(|i| i.memory_map().count());
    }
}

// Of several tags of one type the first is read and the later ones skipped unread (they
// may even be malformed), for every type the parser reads but modules.

/// The physical address of the body of the tag at `index` in `block(tags)`.
fn body_address(tags: &[Vec<u8>], index: usize) -> u64 {
    INFO + 8 + tags[..index].iter().map(Vec::len).sum::<usize>() as u64 + 8
}

fn a_map() -> Vec<u8> {
    mmap_tag(24, &[(0, 0x1000, 1)])
}

/// The command line and the loader's name read from `tags` beside a memory map.
fn strings_of(tags: [Vec<u8>; 3]) -> (String, String) {
    let m = mem(block(&[&tags[..], &[a_map()]].concat()));
    let info = parse_multiboot2(&m, INFO).unwrap();
    (info.cmdline.to_string(), info.loader_name.to_string())
}

#[test]
fn the_first_command_line_tag_wins() {
    let tags = [tag(1, b"first\0"), tag(1, b"second\0"), tag(1, b"bad")];
    assert_eq!(strings_of(tags).0, "first");
}

#[test]
fn the_first_loader_name_tag_wins() {
    let tags = [tag(2, b"GRUB\0"), tag(2, b"other\0"), tag(2, b"\xFF\0")];
    assert_eq!(strings_of(tags).1, "GRUB");
}

#[test]
fn the_first_basic_memory_information_tag_wins() {
    let m = mem(block(&[
        tag(4, &[0x7F, 2, 0, 0, 0x00, 0x10, 0, 0]),
        tag(4, &[1, 0, 0, 0, 0x00, 0x20, 0, 0]),
        tag(4, &[0; 4]),
    ]));
    let info = parse_multiboot2(&m, INFO).unwrap();
    let upper = info.memory_map().collect::<Vec<_>>()[1];
    assert_eq!((upper.start, upper.len), (0x10_0000, 0x1000 * 1024));
    assert_eq!(info.memory_map().collect::<Vec<_>>()[0].len, 639 * 1024);
}

/// The memory map read from `map_tags`: as the test maps below give it, one usable page
/// at 0 if the first tag wins.
fn map_of(map_tags: [Vec<u8>; 3]) -> Vec<RawRegion> {
    let m = mem(block(&map_tags));
    parse_multiboot2(&m, INFO).unwrap().memory_map().collect()
}

const ONE_USABLE_PAGE: RawRegion = RawRegion {
    start: 0,
    len: 0x1000,
    kind: RawKind::Usable,
};

#[test]
fn the_first_memory_map_tag_wins() {
    let map = map_of([
        mmap_tag(24, &[(0, 0x1000, 1)]),
        mmap_tag(24, &[(0, 0x2000, 2), (0x2000, 0x1000, 1)]),
        mmap_tag(16, &[]),
    ]);
    assert_eq!(map, [ONE_USABLE_PAGE]);
}

#[test]
fn the_first_efi_memory_map_tag_wins() {
    let map = map_of([
        efi_tag(48, &[(7, 0, 1)]),
        efi_tag(48, &[(0, 0, 2)]),
        efi_tag(32, &[]),
    ]);
    assert_eq!(map, [ONE_USABLE_PAGE]);
}

#[test]
fn the_first_framebuffer_tag_wins() {
    let mut second = framebuffer_tag(1);
    second[8..16].copy_from_slice(&0xE000_0000u64.to_le_bytes());
    let m = mem(block(&[
        framebuffer_tag(1),
        second.clone(),
        tag(8, &[0; 10]),
        a_map(),
    ]));
    let fb = parse_multiboot2(&m, INFO).unwrap().framebuffer.unwrap();
    assert_eq!(fb.addr, 0xFD00_0000);
    // Even when the first is a text mode, which gives no RGB framebuffer.
    let m = mem(block(&[framebuffer_tag(2), second, a_map()]));
    assert_eq!(parse_multiboot2(&m, INFO).unwrap().framebuffer, None);
}

#[test]
fn the_first_acpi_1_tag_wins() {
    let tags = [
        a_map(),
        tag(14, &rsdp_v1(0x2000)),
        tag(14, &rsdp_v1(0x4000)),
    ];
    let m = mem(block(&tags));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap().rsdp,
        acpi1_part(body_address(&tags, 1))
    );
    // A first tag too short for its RSDP wins too: no RSDP from it (the kernel searches).
    let m = mem(block(&[
        tag(14, &rsdp_v1(0x2000)[..19]),
        tag(14, &rsdp_v1(0x2000)),
        a_map(),
    ]));
    assert_eq!(parse_multiboot2(&m, INFO).unwrap().rsdp, None);
}

#[test]
fn the_first_acpi_2_tag_wins() {
    let tags = [
        tag(15, &rsdp_v2(0x2000, 0x3000)),
        a_map(),
        tag(15, &rsdp_v2(0x4000, 0x5000)),
    ];
    let m = mem(block(&tags));
    assert_eq!(
        parse_multiboot2(&m, INFO).unwrap().rsdp,
        whole(body_address(&tags, 0))
    );
}

#[test]
fn an_information_block_in_page_0_is_unreadable() {
    // GRUB 2.04 and older could place the block at 0; the kernel unmaps page 0 once its
    // page tables are in use, and the loader's name and module command lines are read
    // from the block after that.
    for address in [0, 0x800, 0xFF8] {
        let m = SparseMemory::new()
            .with(address, block(&standard_tags()))
            .unwrap();
        assert_eq!(
            parse_multiboot2(&m, address).unwrap_err(),
            BootInfoError::Unreadable {
                what: Structure::InfoBlock,
                address
            }
        );
    }
    let m = SparseMemory::new()
        .with(0x1000, block(&standard_tags()))
        .unwrap();
    assert_eq!(parse_multiboot2(&m, 0x1000).unwrap().loader(), "GRUB 2.06");
}
