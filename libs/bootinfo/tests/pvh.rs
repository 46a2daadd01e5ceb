//! Synthetic PVH `hvm_start_info` structures.

use rexo_bootinfo::{
    BootInfoError, BootInfoWarning, MAX_MODULES, MAX_STRING, Module, PVH_MAGIC, Protocol, RawKind,
    RawRegion, Rsdp, StringKind, StringProblem, Structure, parse_pvh,
};
use rexo_physmem::SparseMemory;

const SI: u64 = 0x1000;
const MAP: u64 = 0x2000;
const CMDLINE: u64 = 0x3000;
const MODLIST: u64 = 0x4000;
const MODCMD: u64 = 0x5000;

/// An `hvm_start_info` (version 1).
fn start_info(version: u32, nr_modules: u32, cmdline: u64, memmap: u64, entries: u32) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&PVH_MAGIC.to_le_bytes());
    s.extend_from_slice(&version.to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    s.extend_from_slice(&nr_modules.to_le_bytes());
    s.extend_from_slice(&MODLIST.to_le_bytes());
    s.extend_from_slice(&cmdline.to_le_bytes());
    s.extend_from_slice(&0xF59E0u64.to_le_bytes());
    s.extend_from_slice(&memmap.to_le_bytes());
    s.extend_from_slice(&entries.to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    s
}

fn map_entry(addr: u64, size: u64, kind: u32) -> Vec<u8> {
    let mut e = addr.to_le_bytes().to_vec();
    e.extend_from_slice(&size.to_le_bytes());
    e.extend_from_slice(&kind.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e
}

/// QEMU's PVH map for `-m 256M`, plus one of each other type.
fn map() -> Vec<u8> {
    [
        map_entry(0, 0x9FC00, 1),
        map_entry(0x9FC00, 0x400, 2),
        map_entry(0xF0000, 0x10000, 2),
        map_entry(0x10_0000, 0xFEE_0000, 1),
        map_entry(0xFFE_0000, 0x20000, 2),
        map_entry(0xFFFC_0000, 0x40000, 2),
        map_entry(0x1000_0000, 0x1000, 3),
        map_entry(0x1000_1000, 0x1000, 4),
        map_entry(0x1000_2000, 0x1000, 5),
        map_entry(0x1000_3000, 0x1000, 12),
    ]
    .concat()
}

/// Memory holding an `hvm_start_info` (no command line, no modules) and `map`, of which
/// it says `entries` entries.
fn only_a_map(map: Vec<u8>, entries: u32) -> SparseMemory {
    SparseMemory::new()
        .with(SI, start_info(1, 0, 0, MAP, entries))
        .unwrap()
        .with(MAP, map)
        .unwrap()
}

fn module_entry(paddr: u64, size: u64, cmdline: u64) -> Vec<u8> {
    [paddr, size, cmdline, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn good() -> SparseMemory {
    SparseMemory::new()
        .with(SI, start_info(1, 2, CMDLINE, MAP, 10))
        .unwrap()
        .with(MAP, map())
        .unwrap()
        .with(CMDLINE, b"console=ttyS0 app=hello\0junk".to_vec())
        .unwrap()
        .with(
            MODLIST,
            [
                module_entry(0x80_0000, 0x1234, MODCMD),
                module_entry(0x90_0000, 16, 0),
            ]
            .concat(),
        )
        .unwrap()
        .with(MODCMD, b"initrd\0".to_vec())
        .unwrap()
}

#[test]
fn parses_every_field() {
    let mem = good();
    let info = parse_pvh(&mem, SI).unwrap();
    assert_eq!(info.protocol, Protocol::Pvh);
    assert_eq!(info.loader_name, "");
    assert_eq!(info.loader(), "an unnamed loader");
    assert_eq!(info.cmdline, "console=ttyS0 app=hello");
    let rsdp = Rsdp {
        address: 0xF59E0,
        acpi1_only: false,
    };
    assert_eq!(info.rsdp, Some(rsdp), "the firmware's, read whole");
    assert_eq!(info.framebuffer, None);
    let r = |start, len, kind| RawRegion { start, len, kind };
    assert_eq!(
        info.memory_map().collect::<Vec<_>>(),
        &[
            r(0, 0x9FC00, RawKind::Usable),
            r(0x9FC00, 0x400, RawKind::Reserved),
            r(0xF0000, 0x10000, RawKind::Reserved),
            r(0x10_0000, 0xFEE_0000, RawKind::Usable),
            r(0xFFE_0000, 0x20000, RawKind::Reserved),
            r(0xFFFC_0000, 0x40000, RawKind::Reserved),
            r(0x1000_0000, 0x1000, RawKind::AcpiReclaimable),
            r(0x1000_1000, 0x1000, RawKind::AcpiNvs),
            r(0x1000_2000, 0x1000, RawKind::Bad),
            r(0x1000_3000, 0x1000, RawKind::Reserved),
        ]
    );
    assert_eq!(
        info.modules(),
        &[
            Module {
                start: 0x80_0000,
                end: 0x80_1234,
                cmdline: "initrd"
            },
            Module {
                start: 0x90_0000,
                end: 0x90_0010,
                cmdline: ""
            }
        ]
    );
    assert_eq!(
        info.info_ranges(),
        &[
            SI..SI + 56,
            MAP..MAP + 240,
            CMDLINE..CMDLINE + 24,
            MODLIST..MODLIST + 64,
            MODCMD..MODCMD + 7
        ]
    );
}

#[test]
fn adjacent_regions_of_one_kind_merge() {
    let map = [
        map_entry(0, 0x1000, 1),
        map_entry(0x1000, 0x1000, 1),
        map_entry(0x2000, 0, 1),
        map_entry(0x2000, 0x1000, 2),
    ]
    .concat();
    let mem = only_a_map(map, 4);
    let info = parse_pvh(&mem, SI).unwrap();
    assert_eq!(info.memory_map().count(), 2);
    assert_eq!(
        info.memory_map().collect::<Vec<_>>()[0],
        RawRegion {
            start: 0,
            len: 0x2000,
            kind: RawKind::Usable
        }
    );
    assert_eq!(info.cmdline, "");
    assert!(info.modules().is_empty());
}

#[test]
fn a_region_past_the_address_space_is_cut_at_its_top_with_a_warning() {
    let map = [
        map_entry(0, 0x1000, 1),
        map_entry(u64::MAX - 0xFFF, 0x1_0000, 2),
    ]
    .concat();
    let mem = only_a_map(map, 2);
    let info = parse_pvh(&mem, SI).unwrap();
    assert_eq!(
        info.memory_map().collect::<Vec<_>>()[1],
        RawRegion {
            start: u64::MAX - 0xFFF,
            len: 0xFFF,
            kind: RawKind::Reserved
        }
    );
    assert_eq!(
        info.warning,
        Some(BootInfoWarning::RegionPastAddressSpace {
            start: u64::MAX - 0xFFF,
            len: 0x1_0000
        })
    );
    assert_eq!(parse_pvh(&good(), SI).unwrap().warning, None);
}

#[test]
fn bad_magic_version_0_and_missing_map() {
    let mut si = start_info(1, 0, 0, MAP, 1);
    si[0] ^= 1;
    let mem = SparseMemory::new().with(SI, si).unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::BadMagic {
            found: PVH_MAGIC ^ 1
        }
    );

    // Version 0 has no memory map fields (a 40-byte structure).
    let mem = SparseMemory::new()
        .with(SI, start_info(0, 0, 0, 0, 0)[..40].to_vec())
        .unwrap();
    assert_eq!(parse_pvh(&mem, SI).unwrap_err(), BootInfoError::NoMemoryMap);
    let mem = SparseMemory::new()
        .with(SI, start_info(1, 0, 0, 0, 0))
        .unwrap();
    assert_eq!(parse_pvh(&mem, SI).unwrap_err(), BootInfoError::NoMemoryMap);
    // Version 1 but truncated to 40 bytes.
    let mem = SparseMemory::new()
        .with(SI, start_info(1, 0, 0, MAP, 1)[..40].to_vec())
        .unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::StartInfo,
            address: SI
        }
    );
    assert_eq!(
        parse_pvh(&SparseMemory::new(), SI).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::StartInfo,
            address: SI
        }
    );
}

#[test]
fn counts_past_the_end() {
    let mem = only_a_map(map(), 11);
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::MemoryMap,
            address: MAP
        }
    );
    let mem = only_a_map(map(), u32::MAX);
    assert!(matches!(
        parse_pvh(&mem, SI),
        Err(BootInfoError::Unreadable {
            what: Structure::MemoryMap,
            ..
        })
    ));

    let mut mem = good();
    mem.write(SI + 12, &3u32.to_le_bytes()).unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::ModuleList,
            address: MODLIST
        }
    );
    mem.write(SI + 12, &(MAX_MODULES as u32 + 1).to_le_bytes())
        .unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::TooManyModules { count: 17 }
    );
}

#[test]
fn a_null_module_list_with_a_count_is_refused() {
    // Address 0 is readable at boot (the real-mode interrupt table); its bytes must not
    // be taken for a module list.
    let mut mem = good().with(0, module_entry(0x80_0000, 0x1000, 0)).unwrap();
    mem.write(SI + 12, &1u32.to_le_bytes()).unwrap();
    mem.write(SI + 16, &0u64.to_le_bytes()).unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::ModuleList,
            address: 0
        }
    );
}

/// A map of `count` contiguous regions alternating usable (of 1 to 7 pages, in a
/// scrambled order) and reserved (one page), from address 0: fragmented as UEFI firmware's
/// maps are.
fn alternating_map(count: u64) -> Vec<RawRegion> {
    let mut start = 0;
    (0..count)
        .map(|i| {
            let (len, kind) = if i % 2 == 0 {
                ((i * 5 % 7 + 1) * 0x1000, RawKind::Usable)
            } else {
                (0x1000, RawKind::Reserved)
            };
            start += len;
            RawRegion {
                start: start - len,
                len,
                kind,
            }
        })
        .collect()
}

/// The memory map and the warning a PVH start info with `regions` gives.
fn parse_map(regions: &[RawRegion]) -> (Vec<RawRegion>, Option<BootInfoWarning>) {
    let entries = regions.iter().map(|r| {
        let kind = if r.kind == RawKind::Usable { 1 } else { 2 };
        map_entry(r.start, r.len, kind)
    });
    let mem = only_a_map(entries.collect::<Vec<_>>().concat(), regions.len() as u32);
    let info = parse_pvh(&mem, SI).unwrap();
    (info.memory_map().collect(), info.warning)
}

#[test]
fn a_map_of_400_distinct_regions_is_kept_whole() {
    let given = alternating_map(400);
    assert_eq!(parse_map(&given), (given, None));
}

#[test]
fn strings_of_up_to_max_string_bytes_read_in_or_out_of_a_larger_readable_window() {
    let cmdline_at = |bytes: Vec<u8>| {
        SparseMemory::new()
            .with(SI, start_info(1, 0, 0x10000, MAP, 1))
            .unwrap()
            .with(MAP, map_entry(0, 0x1000, 1))
            .unwrap()
            .with(0x10000, bytes)
            .unwrap()
    };
    let string = |len: usize, then: &[u8]| [vec![b'a'; len], then.to_vec()].concat();
    // MAX_STRING bytes and the NUL, with more readable bytes after them or none.
    for after in [&b"\0more readable bytes"[..], b"\0"] {
        let mem = cmdline_at(string(MAX_STRING, after));
        let info = parse_pvh(&mem, SI).unwrap();
        assert_eq!(info.cmdline.len(), MAX_STRING);
        assert_eq!(
            info.info_ranges()[2],
            0x10000..0x10000 + MAX_STRING as u64 + 1
        );
    }
    // One byte more, with more readable bytes after the NUL or none.
    for after in [&b"\0more readable bytes"[..], b"\0"] {
        let mem = cmdline_at(string(MAX_STRING + 1, after));
        assert_eq!(
            parse_pvh(&mem, SI).unwrap_err(),
            BootInfoError::BadString {
                which: StringKind::Cmdline,
                problem: StringProblem::Unterminated
            }
        );
    }
    // A bad byte in a string read in one window.
    let mem = cmdline_at(string(10, &[0xFF, 0, b'a', b'a']).repeat(500));
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::BadString {
            which: StringKind::Cmdline,
            problem: StringProblem::NotUtf8
        }
    );
}

#[test]
fn bad_strings_and_modules() {
    let mut mem = good();
    mem.write(CMDLINE + 3, &[0xFF]).unwrap();
    let err = parse_pvh(&mem, SI).unwrap_err();
    assert_eq!(
        err,
        BootInfoError::BadString {
            which: StringKind::Cmdline,
            problem: StringProblem::NotUtf8
        }
    );
    assert!(err.to_string().contains("Cmdline"));

    // A command line that runs off the end of memory.
    let mut mem = good();
    mem.write(CMDLINE + 23, b"x").unwrap();
    mem.write(CMDLINE + 24, b"xxxx").unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::BadString {
            which: StringKind::Cmdline,
            problem: StringProblem::Unterminated
        }
    );

    // Longer than MAX_STRING.
    let mut mem = SparseMemory::new()
        .with(SI, start_info(1, 0, 0x10000, MAP, 1))
        .unwrap()
        .with(MAP, map_entry(0, 0x1000, 1))
        .unwrap();
    mem.insert(0x10000, vec![b'a'; 5000]).unwrap();
    assert!(matches!(
        parse_pvh(&mem, SI),
        Err(BootInfoError::BadString {
            problem: StringProblem::Unterminated,
            ..
        })
    ));

    let mut mem = good();
    mem.write(MODCMD, &[0xC3, 0x28, 0]).unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::BadString {
            which: StringKind::ModuleCmdline(0),
            problem: StringProblem::NotUtf8
        }
    );

    let mut mem = good();
    mem.write(MODLIST + 32 + 8, &u64::MAX.to_le_bytes())
        .unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::BadModule { index: 1 }
    );
}

#[test]
fn strings_and_a_module_list_in_page_0_are_unreadable() {
    // The kernel unmaps page 0 once its page tables are in use and keeps reading the
    // strings afterwards (the boot report).
    const LOW: u64 = 0x800;
    let mut mem = good().with(LOW, b"app=hello\0".to_vec()).unwrap();
    mem.write(SI + 24, &LOW.to_le_bytes()).unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::String(StringKind::Cmdline),
            address: LOW
        }
    );

    let mut mem = good().with(LOW, b"module\0".to_vec()).unwrap();
    mem.write(MODLIST + 32 + 16, &LOW.to_le_bytes()).unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::String(StringKind::ModuleCmdline(1)),
            address: LOW
        }
    );

    let mut mem = good()
        .with(LOW, module_entry(0x80_0000, 0x1000, 0))
        .unwrap();
    mem.write(SI + 16, &LOW.to_le_bytes()).unwrap();
    mem.write(SI + 12, &1u32.to_le_bytes()).unwrap();
    assert_eq!(
        parse_pvh(&mem, SI).unwrap_err(),
        BootInfoError::Unreadable {
            what: Structure::ModuleList,
            address: LOW
        }
    );
}
