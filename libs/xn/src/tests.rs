//! Host tests of the extent table.

use super::*;
use rexo_testkit::Rng;

fn table() -> Table {
    Table::format(16384, 512).unwrap()
}

/// Parses `bytes` as copy `copy` of a disk of `sectors` sectors of 512 bytes, the other
/// copy holding zeros.
fn parse_alone(bytes: &[u8], copy: usize, sectors: u64) -> Result<Table, XnError> {
    let zeros = alloc::vec![0; COPY_BYTES];
    let mut copies = [&zeros[..]; COPIES];
    copies[copy] = bytes;
    Table::parse(copies, sectors, 512)
}

/// What [`find`] makes of a disk of `sectors` sectors of 512 bytes whose locator's
/// sectors hold `region` and on which the tables of `sound` are found, each at the end
/// of the disk it was made for (no table anywhere else).
fn find_among(region: &[u8], sectors: u64, sound: &[&Table]) -> Result<Located, XnError> {
    find_among_sized(region, sectors, 512, sound)
}

/// [`find_among`] on a disk of `sector_size`-byte sectors.
fn find_among_sized(
    region: &[u8],
    sectors: u64,
    sector_size: u64,
    sound: &[&Table],
) -> Result<Located, XnError> {
    find(region, sectors, sector_size, |made_for| {
        Ok::<_, ()>(
            (sound.iter())
                .find(|table| table.sectors() == made_for)
                .map(|table| (*table).clone())
                .ok_or(XnError::NoTable),
        )
    })
    .unwrap()
}

/// Parses `table` written alone to its copy, as after a format.
fn reread(table: &Table) -> Result<Table, XnError> {
    parse_alone(&table.to_bytes(), table.copy(), 16384)
}

#[test]
fn extents_are_granted_checked_and_persist() {
    let mut t = table();
    assert_eq!(t.table_start(), 16384 - 16, "two copies of 8 sectors");
    let a = t.allocate("fs", 1000).unwrap();
    let b = t.allocate("kv", 500).unwrap();
    assert_eq!((a.start, b.start), (0, 1000));
    assert_eq!(t.check_access("fs", 0, 1000, true), Ok(()));
    assert!(matches!(
        t.check_access("fs", 999, 2, false),
        Err(XnError::Denied { sector: 1000, .. })
    ));
    assert!(matches!(
        t.check_access("kv", 0, 1, false),
        Err(XnError::Denied {
            sector: 0,
            write: false,
            ..
        })
    ));
    assert!(
        t.check_access("fs", t.table_start(), 1, false).is_err(),
        "the table is nobody's"
    );
    let again = reread(&t).unwrap();
    assert_eq!(again, t);
}

#[test]
fn shares_are_read_only_inside_their_extent_and_revocable() {
    let mut t = table();
    let a = t.allocate("fs", 100).unwrap();
    t.share("fs", a.start + 10, 20, "httpd").unwrap();
    assert_eq!(t.check_access("httpd", 10, 20, false), Ok(()));
    assert!(t.check_access("httpd", 10, 1, true).is_err(), "read-only");
    assert!(
        t.check_access("httpd", 9, 2, false).is_err(),
        "only the shared part"
    );
    assert_eq!(
        t.share("httpd", 10, 5, "other"),
        Err(XnError::NotOwner),
        "a reader cannot re-share"
    );
    assert_eq!(
        t.share("fs", 90, 20, "httpd"),
        Err(XnError::NotOwner),
        "past the extent"
    );
    assert_eq!(t.revoke("fs", "httpd"), Ok(1));
    assert!(t.check_access("httpd", 10, 1, false).is_err());
    t.share("fs", 0, 5, "httpd").unwrap();
    t.free("fs", a.start).unwrap();
    assert!(t.entries().is_empty(), "freeing takes the shares with it");
    assert_eq!(t.free("fs", 0), Err(XnError::NotFound));
}

#[test]
fn space_and_names_are_bounded() {
    let mut t = table();
    assert_eq!(
        t.allocate("fs", 16384),
        Err(XnError::NoSpace(16384)),
        "the table's sectors are not usable"
    );
    assert_eq!(t.allocate("", 1), Err(XnError::BadName));
    assert_eq!(t.allocate(&"x".repeat(32), 1), Err(XnError::BadName));
    assert_eq!(t.allocate("fs", 0), Err(XnError::NoSpace(0)));
    for i in 0..MAX_ENTRIES {
        let app = format!("app{}", i / MAX_ENTRIES_PER_HOLDER);
        t.allocate(&app, 1).unwrap_or_else(|e| panic!("{i}: {e}"));
    }
    assert_eq!(t.allocate("fs", 1), Err(XnError::TableFull));
    assert_eq!(Table::format(8, 512), Err(XnError::TooSmall));
}

#[test]
fn damaged_tables_are_refused_with_the_reason() {
    let mut t = table();
    t.allocate("fs", 10).unwrap();
    let good = t.to_bytes();
    assert_eq!(
        parse_alone(&alloc::vec![0; COPY_BYTES], 0, 16384),
        Err(XnError::NoTable)
    );
    assert_eq!(
        parse_alone(&good, t.copy(), 20000),
        Err(XnError::WrongDisk {
            table: 16384,
            disk: 20000
        })
    );
    let mut flipped = good.clone();
    flipped[HEADER + 3] ^= 1;
    assert_eq!(
        parse_alone(&flipped, t.copy(), 16384),
        Err(XnError::Corrupt("checksum mismatch"))
    );
    // A consistent checksum over overlapping extents is still refused.
    let mut overlap = t.clone();
    overlap.entries.push(Extent {
        start: 5,
        count: 10,
        holder: "kv".into(),
        rights: READ | WRITE,
    });
    assert_eq!(
        reread(&overlap),
        Err(XnError::Corrupt("two extents overlap"))
    );
    let mut outside = t.clone();
    outside.entries.push(Extent {
        start: 16380,
        count: 10,
        holder: "kv".into(),
        rights: READ | WRITE,
    });
    assert_eq!(
        reread(&outside),
        Err(XnError::Corrupt("an extent outside the disk"))
    );
}

#[test]
fn the_parser_survives_noise() {
    let mut rng = Rng(0xD15C_0000_0000_0001);
    let mut t = table();
    t.allocate("fs", 10).unwrap();
    t.share("fs", 2, 3, "web").unwrap();
    let good = t.to_bytes();
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(HEADER + 2 * ENTRY);
            bytes[at] = rng.next_u64() as u8;
        }
        // Recompute the checksum half the time so the entry checks are reached.
        if rng.below(2) == 0 {
            let count =
                (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize).min(MAX_ENTRIES);
            let crc = checksum(&bytes[..HEADER + count * ENTRY]);
            bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        }
        let _ = parse_alone(&bytes, t.copy(), 16384);
    }
    // A locator of any length, each copy naming any sector count with its checksum
    // right half the time, for disks of any size: an answer, never a panic, and a disk
    // it sends the reader to is never larger and always large enough for a table.
    let locator = t.locator();
    for _ in 0..20_000 {
        let mut bytes = locator[..rng.below(COPY_BYTES + 1)].to_vec();
        for at in locator_copies(512) {
            if let Some(copy) = bytes.get_mut(at..at + LOCATOR_BYTES) {
                copy[8..16].copy_from_slice(&rng.next_u64().to_le_bytes());
                if rng.below(2) == 0 {
                    let crc = locator_checksum(&copy[..16]);
                    copy[16..20].copy_from_slice(&crc);
                }
            }
        }
        let (sectors, size) = (rng.next_u64() >> rng.below(64), [512, 4096][rng.below(2)]);
        let _ = find(&bytes, sectors, size, |made_for| {
            assert!(made_for <= sectors && holds_a_table(made_for, size));
            Ok::<_, ()>(Err(XnError::NoTable))
        });
    }
}

#[test]
fn a_request_of_no_sectors_is_refused_anywhere() {
    let mut t = table();
    t.allocate("fs", 1000).unwrap();
    for start in [0, 500, 1000, t.table_start(), 16384, u64::MAX] {
        for write in [false, true] {
            assert_eq!(
                t.check_access("fs", start, 0, write),
                Err(XnError::EmptyRequest),
                "0 sectors at {start}, write={write}"
            );
        }
    }
    assert_eq!(t.check_access("fs", 500, 1, true), Ok(()));
}

#[test]
fn access_agrees_with_a_sector_by_sector_model() {
    let mut rng = Rng(42);
    for _ in 0..200 {
        let mut t = Table::format(4096, 512).unwrap();
        let names = ["a", "b", "c"];
        for _ in 0..rng.below(8) {
            let holder = names[rng.below(3)];
            if let Ok(extent) = t.allocate(holder, 1 + rng.below(300) as u64)
                && rng.below(2) == 0
            {
                let reader = names[rng.below(3)];
                let start = extent.start + rng.below(extent.count as usize) as u64;
                let count = 1 + rng.below((extent.end() - start) as usize) as u64;
                t.share(holder, start, count, reader).unwrap();
            }
        }
        for _ in 0..50 {
            let holder = names[rng.below(3)];
            let (start, count, write) = (
                rng.below(4100) as u64,
                1 + rng.below(64) as u64,
                rng.below(2) == 0,
            );
            let need = if write { WRITE } else { READ };
            let model = (start..start + count).all(|s| {
                t.entries().iter().any(|e| {
                    e.holder == holder && e.rights & need != 0 && e.start <= s && s < e.end()
                })
            });
            assert_eq!(
                t.check_access(holder, start, count, write).is_ok(),
                model,
                "{holder} {start}+{count} write={write}"
            );
        }
    }
}

#[test]
fn a_disk_larger_than_a_u64_of_bytes_holds_a_table() {
    assert!(!holds_a_table(4095, 512));
    assert!(holds_a_table(4096, 512));
    for (sectors, size) in [(1 << 55, 512), (u64::MAX, 4096)] {
        assert!(holds_a_table(sectors, size), "{sectors} x {size}");
        let mut table = Table::format(sectors, size).unwrap();
        let extent = table.allocate("fs", 64).unwrap();
        let zeros = alloc::vec![0; COPY_BYTES];
        let bytes = table.to_bytes();
        let mut copies = [&zeros[..]; COPIES];
        copies[table.copy()] = &bytes;
        let again = Table::parse(copies, sectors, size).unwrap();
        assert_eq!(again.entries(), [extent]);
    }
}

/// The header is checksummed too: a copy whose generation (or disk size) was changed
/// is refused, not taken as the newest. The CRC used to cover the entries only.
#[test]
fn a_changed_header_fails_the_checksum() {
    let mut t = table();
    t.allocate("fs", 10).unwrap();
    let mut bytes = t.to_bytes();
    bytes[24] ^= 2;
    assert_eq!(
        parse_alone(&bytes, t.copy(), 16384),
        Err(XnError::Corrupt("checksum mismatch"))
    );
}

/// A change is written over the older copy; a crash part way through leaves that copy
/// with sectors of both generations, and the disk opens with the table before the
/// change (it used to be one copy, rewritten in place: a torn write left the disk
/// damaged, and only a format, which drops every extent, brought it back).
#[test]
fn a_torn_write_falls_back_to_the_previous_table() {
    // Tables of 20 entries: a copy spans three sectors.
    let mut oldest = table();
    for holder in ["fs", "kv"].iter().cycle().take(20) {
        oldest.allocate(holder, 10).unwrap();
    }
    let mut older = oldest.clone();
    older.free("fs", 0).unwrap();
    let mut copies = [alloc::vec![0u8; COPY_BYTES], alloc::vec![0u8; COPY_BYTES]];
    copies[oldest.copy()] = oldest.to_bytes();
    copies[older.copy()] = older.to_bytes();
    let parse = |copies: &[Vec<u8>; 2]| Table::parse([&copies[0], &copies[1]], 16384, 512);
    assert_eq!(parse(&copies), Ok(older.clone()), "the newer of two");
    let mut newer = older.clone();
    newer.free("kv", 10).unwrap();
    assert_eq!(
        newer.copy(),
        oldest.copy(),
        "the change overwrites the older copy"
    );
    // A crash part way through: some sectors of the copy written, the others still the
    // oldest's. The disk holds the table before the change.
    let bytes = newer.to_bytes();
    for (from, to) in [(0, 512), (512, COPY_BYTES), (0, 1024)] {
        let mut torn = copies.clone();
        torn[newer.copy()][from..to].copy_from_slice(&bytes[from..to]);
        assert_eq!(
            parse(&torn),
            Ok(older.clone()),
            "bytes {from}..{to} written"
        );
    }
    copies[newer.copy()] = bytes;
    assert_eq!(
        parse(&copies),
        Ok(newer.clone()),
        "written whole: the newer table"
    );
    // The next change tears the other copy: the newer table holds.
    let mut next = newer.clone();
    next.free("fs", 20).unwrap();
    copies[next.copy()][512..1024].copy_from_slice(&next.to_bytes()[512..1024]);
    assert_eq!(parse(&copies), Ok(newer));
}

/// Each generation has its copy: one found in the other's place is refused.
#[test]
fn a_copy_in_the_other_copys_place_is_refused() {
    let t = table();
    assert_eq!(
        parse_alone(&t.to_bytes(), 1 - t.copy(), 16384),
        Err(XnError::Corrupt("a generation in the other copy's place"))
    );
    assert_eq!(reread(&t), Ok(t));
}

/// A generation read off the disk stays below 2^63, as the journal of `rexo-fs` bounds
/// its sequence numbers. A copy at u64::MAX is damaged: it used to be read, and the
/// next change overflowed (a panic; in release a wrap to generation 0, written to copy
/// A and read after a reboot as older than B, so the change was undone). A table at
/// the last generation refuses every change and is left as it was.
#[test]
fn a_generation_at_the_end_of_its_range_is_refused_not_wrapped() {
    let mut older = table();
    older.allocate("fs", 100).unwrap();
    let mut crafted = older.clone();
    crafted.free("fs", 0).unwrap();
    crafted.generation = u64::MAX;
    assert_eq!((older.copy(), crafted.copy()), (0, 1));
    let (a, b) = (older.to_bytes(), crafted.to_bytes());
    assert_eq!(
        Table::parse([&a, &b], 16384, 512),
        Ok(older),
        "the sound copy A, not B at u64::MAX"
    );
    assert_eq!(
        parse_alone(&b, 1, 16384),
        Err(XnError::Corrupt("a generation out of range"))
    );

    let mut last = table();
    let extent = last.allocate("fs", 100).unwrap();
    last.share("fs", 0, 10, "httpd").unwrap();
    last.generation = (1 << 63) - 1;
    let before = parse_alone(&last.to_bytes(), 1, 16384).unwrap();
    let mut last = before.clone();
    let at_end = Err(XnError::Corrupt(
        "the generation is at the end of its range",
    ));
    assert_eq!(last.allocate("kv", 8).map(|_| ()), at_end);
    assert_eq!(last.share("fs", 10, 10, "kv"), at_end);
    assert_eq!(last.revoke("fs", "httpd").map(|_| ()), at_end);
    assert_eq!(last.free("fs", extent.start), at_end);
    assert_eq!(last.grown(32768).map(|_| ()), at_end);
    assert_eq!(
        last, before,
        "every refused change left the table as it was"
    );
    assert_eq!(
        last.revoke("fs", "kv"),
        Ok(0),
        "revoking nothing changes nothing"
    );
}

/// A table of an earlier format (one copy, `RexoXN01`; no locator, `RexoXN02`) is
/// damaged, not a raw disk open to its holder.
#[test]
fn a_table_of_an_earlier_format_is_damaged_not_raw() {
    for magic in [b"RexoXN01", b"RexoXN02"] {
        let mut bytes = table().to_bytes();
        bytes[..8].copy_from_slice(magic);
        assert_eq!(
            parse_alone(&bytes, 1, 16384),
            Err(XnError::Corrupt(
                "a table of an earlier format (without a locator): format it again"
            ))
        );
    }
}

/// The locator and both copies take whole sectors: with sectors of 1 MiB each takes one,
/// so a disk of 2 MiB is large enough in bytes but has no room for all three after
/// sector 0.
#[test]
fn the_copies_take_whole_sectors() {
    assert!(holds_a_table(512, 4096));
    assert_eq!(
        locator_area(4096),
        (254, 2),
        "the first MiB's last 8 KiB: a sector for each copy"
    );
    assert_eq!(locator_area(512), (2040, 8));
    let t = Table::format(512, 4096).unwrap();
    assert_eq!((t.copy_start(0), t.copy_start(1)), (510, 511));
    assert_eq!(
        table_area(512, 4096),
        (510, 2),
        "both copies, to the disk's end"
    );
    assert_eq!(locator_area(1 << 20), (1, 2), "never sector 0");
    assert!(
        !holds_a_table(4, 1 << 20),
        "no room for the locator and two copies"
    );
    assert!(holds_a_table(5, 1 << 20));
}

/// A format would write over a partition table's backup or a file system's last block:
/// a boot signature in sector 0, or data in the table's sectors, is refused.
#[test]
fn a_format_names_what_it_would_write_over() {
    let blank = alloc::vec![0u8; 2 * COPY_BYTES];
    let no_locator = alloc::vec![0u8; COPY_BYTES];
    let mut boot = alloc::vec![0u8; 512];
    assert_eq!(
        format_hazard(&boot, &no_locator, &blank, 512),
        None,
        "a blank disk"
    );
    boot[510..512].copy_from_slice(&[0x55, 0xAA]);
    assert!(matches!(
        format_hazard(&boot, &no_locator, &blank, 512),
        Some(XnError::InUse(_))
    ));
    let first = alloc::vec![0u8; 512];
    for at in [0, COPY_BYTES - 1, COPY_BYTES, 2 * COPY_BYTES - 1] {
        let mut area = blank.clone();
        area[at] = 1;
        assert!(
            matches!(
                format_hazard(&first, &no_locator, &area, 512),
                Some(XnError::InUse(_))
            ),
            "a byte at {at}"
        );
    }
    // Data where the locator goes (a boot loader's, a file system's) is refused too; an
    // old locator is what a format replaces.
    let mut data = no_locator.clone();
    data[COPY_BYTES - 1] = 7;
    assert!(matches!(
        format_hazard(&first, &data, &blank, 512),
        Some(XnError::InUse(_))
    ));
    assert_eq!(format_hazard(&first, &table().locator(), &blank, 512), None);
    assert!(matches!(
        locator_hazard(&data, 512),
        Some(XnError::InUse(_))
    ));
    assert_eq!(locator_hazard(&no_locator, 512), None);
    assert_eq!(locator_hazard(&table().locator(), 512), None);
    // A damaged table (or one of the first format) is what a format replaces.
    let mut damaged = blank.clone();
    damaged[COPY_BYTES..][..COPY_BYTES].copy_from_slice(&table().to_bytes());
    damaged[COPY_BYTES + 40] ^= 0xFF;
    damaged[..8].copy_from_slice(b"RexoXN01");
    damaged[100] = 3;
    assert_eq!(format_hazard(&first, &no_locator, &damaged, 512), None);
}

#[test]
fn one_holder_cannot_fill_the_table_for_the_others() {
    let mut t = table();
    for i in 0..MAX_ENTRIES_PER_HOLDER - 1 {
        t.allocate("greedy", 1)
            .unwrap_or_else(|e| panic!("{i}: {e}"));
    }
    // Its last entry a share it gives: the shares count against the giver, not the reader.
    let first = t.entries()[0].start;
    t.share("greedy", first, 1, "reader").unwrap();
    assert_eq!(t.allocate("greedy", 1), Err(XnError::HolderFull));
    assert_eq!(
        t.share("greedy", first, 1, "other"),
        Err(XnError::HolderFull)
    );
    let generation = t.generation();
    // The others still get entries, the reader included.
    t.allocate("reader", 1).unwrap();
    t.allocate("other", 1).unwrap();
    assert_eq!(t.generation(), generation + 2);
    // Revoking the share gives the giver its entry back.
    assert_eq!(t.revoke("greedy", "reader"), Ok(1));
    t.allocate("greedy", 1).unwrap();
    assert_eq!(t.allocate("greedy", 1), Err(XnError::HolderFull));
}

/// A disk that grew keeps its table at its old end: its locator names the size the table
/// was made for, so the disk is not taken for a raw one (it used to be: the new end held
/// no table, and its holder had all of it). A disk that shrank, or whose table was
/// wiped, is damaged; one without a locator is raw.
#[test]
fn the_locator_finds_the_table_of_a_disk_that_grew() {
    let t = table();
    let locator = t.locator();
    assert_eq!(
        read_locators(&locator, 512),
        [Ok(Some(16384)), Ok(Some(16384))]
    );
    let grown = find_among(&locator, 32768, &[&t]).unwrap();
    assert_eq!(
        (grown.table, grown.mend_locator),
        (t.clone(), false),
        "grown"
    );
    assert_eq!(
        find_among(&locator, 8192, &[&t]),
        Err(XnError::WrongDisk {
            table: 16384,
            disk: 8192
        }),
        "shrunk"
    );
    assert_eq!(
        find_among(&locator, 16384, &[]),
        Err(XnError::Corrupt(
            "the locator names a table at the disk's end, and there is none"
        ))
    );
    assert_eq!(
        find_among(&locator, 32768, &[]),
        Err(XnError::Corrupt("no table where the locator says"))
    );
    let blank = [0u8; COPY_BYTES];
    assert_eq!(find_among(&blank, 32768, &[]), Err(XnError::NoTable), "raw");
    let mut damaged = locator.clone();
    damaged[9] ^= 1;
    damaged[2048 + 9] ^= 1;
    assert_eq!(
        find_among(&damaged, 32768, &[]),
        Err(XnError::Corrupt("the locator's checksum"))
    );
    assert_eq!(
        read_locator(&locator[..12]),
        Err(XnError::Corrupt("a locator cut short"))
    );
    assert_eq!(
        read_locators(&locator[..2060], 512),
        [
            Ok(Some(16384)),
            Err(XnError::Corrupt("a locator cut short"))
        ],
        "a disk cut inside the locator's sectors"
    );
    let tiny = Table::format(4096, 512).unwrap().locator();
    let mut small = tiny.clone();
    for at in locator_copies(512) {
        small[at + 8..at + 16].copy_from_slice(&100u64.to_le_bytes());
        let crc = locator_checksum(&small[at..at + 16]);
        small[at + 16..at + 20].copy_from_slice(&crc);
    }
    assert_eq!(
        find_among(&small, 32768, &[]),
        Err(XnError::Corrupt(
            "the locator names a disk too small for a table"
        ))
    );
    // Grown, the same entries are one generation on, made for the new size: copies at
    // the new end, the sectors between the ends free.
    let mut old = t.clone();
    let extent = old.allocate("fs", 64).unwrap();
    let grown = old.grown(32768).unwrap();
    assert_eq!(grown.entries(), [extent]);
    assert_eq!(grown.generation(), old.generation() + 1);
    assert_eq!(grown.table_start(), 32768 - 16);
    let bytes = grown.to_bytes();
    let mut copies = [&[0u8; COPY_BYTES][..]; COPIES];
    copies[grown.copy()] = &bytes;
    assert_eq!(Table::parse(copies, 32768, 512), Ok(grown.clone()));
    assert_eq!(grown.clone().allocate("kv", 20000).unwrap().start, 2048);
    assert_eq!(grown.grown(32768), Err(XnError::NothingToGrow));
    // Grown by less than the two copies, the new end's copies would lie over the old.
    assert_eq!(old.grown(16384 + 15), Err(XnError::GrowthTooSmall(16)));
    assert!(old.grown(16384 + 16).is_ok());
    assert_eq!(
        grown.grown(16384),
        Err(XnError::WrongDisk {
            table: 32768,
            disk: 16384
        })
    );
}

/// The locator's sectors belong to nobody: allocations go around them, and a table with
/// an extent over them is damaged.
#[test]
fn extents_go_around_the_locator() {
    let mut t = table();
    let (locator, count) = locator_area(512);
    let first = t.allocate("fs", locator - 8).unwrap();
    assert_eq!(first.start, 0);
    let second = t.allocate("kv", 100).unwrap();
    assert_eq!(
        second.start,
        locator + count,
        "past the locator, not over it"
    );
    let eight = t.allocate("web", 8).unwrap();
    assert_eq!(eight.start, locator - 8, "the gap before it is still used");
    for sector in locator..locator + count {
        assert!(t.check_access("fs", sector, 1, false).is_err());
        assert!(t.check_access("kv", sector, 1, false).is_err());
    }
    let mut bytes = table().to_bytes();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes[HEADER..HEADER + 8].copy_from_slice(&0u64.to_le_bytes());
    bytes[HEADER + 8..HEADER + 16].copy_from_slice(&(locator + 1).to_le_bytes());
    bytes[HEADER + 16..HEADER + 18].copy_from_slice(b"fs");
    bytes[HEADER + 48] = READ | WRITE;
    let crc = checksum(&bytes[..HEADER + ENTRY]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        parse_alone(&bytes, 1, 16384),
        Err(XnError::Corrupt("an extent over the table's locator"))
    );
}

/// The locator is kept twice, in the 4 KiB's first and fifth 512-byte sectors: either
/// sound copy says where the table is, and the other is to be rewritten. It used to be
/// one copy: a changed byte of its magic made a disk that grew read as raw, open whole
/// to its holder.
#[test]
fn either_copy_of_the_locator_finds_the_table() {
    let t = table();
    let locator = t.locator();
    assert_eq!(
        &locator[2048..2056],
        b"RexoXNat",
        "the fifth 512-byte sector"
    );
    for at in locator_copies(512) {
        for byte in [at, at + 9] {
            let mut one_left = locator.clone();
            one_left[byte] ^= 0x20;
            let found = find_among(&one_left, 32768, &[&t]).unwrap();
            assert_eq!(
                (found.table, found.mend_locator),
                (t.clone(), true),
                "byte {byte}"
            );
        }
    }
    // A sound table at the disk's end beside a damaged or missing locator (or one
    // naming a disk too small for a table) is the table; the locator is to be mended.
    let mut damaged = locator.clone();
    damaged[9] ^= 1;
    damaged[2048 + 9] ^= 1;
    let mut too_small = locator.clone();
    too_small[8..16].copy_from_slice(&100u64.to_le_bytes());
    let crc = locator_checksum(&too_small[..16]);
    too_small[16..20].copy_from_slice(&crc);
    too_small[2048..].fill(0);
    for region in [damaged, alloc::vec![0; COPY_BYTES], too_small] {
        let found = find_among(&region, 16384, &[&t]).unwrap();
        assert_eq!((found.table, found.mend_locator), (t.clone(), true));
    }
    let sound = find_among(&locator, 16384, &[&t]).unwrap();
    assert!(!sound.mend_locator, "both copies name it");
}

/// Copies that disagree (a crash tore the locator's write between its two sectors):
/// the largest size whose end holds a sound table wins (a grow writes the new end's
/// table before the locator); a copy naming a larger disk makes it damaged.
#[test]
fn copies_of_the_locator_that_disagree_are_decided_by_the_tables() {
    let mut old = table();
    old.allocate("fs", 64).unwrap();
    let grown = old.grown(32768).unwrap();
    let (small, large) = (old.locator(), grown.locator());
    let torn = |first: &[u8], second: &[u8]| {
        let mut region = first[..2048].to_vec();
        region.extend_from_slice(&second[2048..]);
        region
    };
    for region in [torn(&small, &large), torn(&large, &small)] {
        let found = find_among(&region, 32768, &[&old, &grown]).unwrap();
        assert_eq!((found.table, found.mend_locator), (grown.clone(), true));
        // The new end's table not (or no longer) sound: the old one, same extents.
        let found = find_among(&region, 32768, &[&old]).unwrap();
        assert_eq!((found.table, found.mend_locator), (old.clone(), true));
        assert_eq!(
            find_among(&region, 32768, &[]),
            Err(XnError::Corrupt(
                "the locator names a table at the disk's end, and there is none"
            ))
        );
        // Shrunk back: a copy names a larger disk, whatever the other finds.
        assert_eq!(
            find_among(&region, 16384, &[&old]),
            Err(XnError::WrongDisk {
                table: 32768,
                disk: 16384
            })
        );
    }
    // Where a format or the removal of the protection looks: every end a copy could send
    // a reader to, and the disk's own.
    assert_eq!(
        table_places(&torn(&small, &large), 65536, 512),
        [65536, 32768, 16384]
    );
    assert_eq!(table_places(&[0; COPY_BYTES], 3000, 512), [0u64; 0]);
}

/// The locator's two copies lie in sectors of their own for every sector size, so one
/// bad sector leaves the other copy: on a disk of 4 KiB sectors they used to share the
/// first MiB's last sector, and with it damaged a disk that grew read as raw.
#[test]
fn each_copy_of_the_locator_has_a_sector_of_its_own() {
    for size in [512, 1024, 2048, 4096, 8192] {
        let [first, second] = locator_copies(size).map(|at| at as u64 / size);
        assert_ne!(first, second, "{size}-byte sectors");
        assert!(
            first.max(second) < locator_area(size).1,
            "{size}-byte sectors"
        );
    }
    let mut old = Table::format(1024, 4096).unwrap();
    old.allocate("fs", 64).unwrap();
    let locator = old.locator();
    assert_eq!(locator.len(), 2 * 4096);
    for bad_sector in 0..2 {
        let mut region = locator.clone();
        region[bad_sector * 4096..][..4096].fill(0xA5);
        let found = find_among_sized(&region, 2048, 4096, &[&old]).unwrap();
        assert_eq!(
            (found.table, found.mend_locator),
            (old.clone(), true),
            "sector {bad_sector} damaged"
        );
    }
}

/// The bytes of a locator's sectors as the code before the 4 KiB-sector fix wrote them
/// for a disk of `sectors` sectors of `sector_size` bytes: both copies in the first
/// MiB's last 4 KiB (at its start and 2 KiB in), the sector before it (a 4 KiB-sector
/// disk's first sector of the locator now) holding zeros.
fn earlier_layout_locator(sectors: u64, sector_size: u64) -> Vec<u8> {
    let mut block = alloc::vec![0u8; 4096];
    for at in [0, 2048] {
        block[at..at + 8].copy_from_slice(b"RexoXNat");
        block[at + 8..at + 16].copy_from_slice(&sectors.to_le_bytes());
        let crc = rexo_crc::crc32(&block[at..at + 16]);
        block[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
    let mut region = alloc::vec![0u8; (locator_area(sector_size).1 * sector_size) as usize];
    let start = region.len() - 4096;
    region[start..].copy_from_slice(&block);
    region
}

/// A disk formatted before the copies of the locator got a sector each is still read:
/// on 512-byte sectors the layout is unchanged (nothing to mend), on 4 KiB sectors the
/// copy at the start of the last sector still finds the table of a disk that grew, and
/// the locator is to be rewritten in the new layout.
#[test]
fn a_locator_of_the_earlier_layout_still_finds_its_table() {
    for (size, sectors, mend) in [(512, 16384, false), (4096, 1024, true)] {
        let mut old = Table::format(sectors, size).unwrap();
        old.allocate("fs", 64).unwrap();
        let region = earlier_layout_locator(sectors, size);
        if !mend {
            assert_eq!(region, old.locator(), "the same bytes");
        }
        let found = find_among_sized(&region, 2 * sectors, size, &[&old]).unwrap();
        assert_eq!(
            (found.table, found.mend_locator),
            (old.clone(), mend),
            "{size}-byte sectors"
        );
        assert_eq!(locator_hazard(&region, size), None, "to be rewritten");
        // Data in the sector the earlier layout left to others (4 KiB sectors: the
        // sector before the locator's) is not written over.
        let mut beside_data = region.clone();
        beside_data[100] = 7;
        assert_eq!(
            locator_hazard(&beside_data, size).is_some(),
            size == 4096,
            "{size}-byte sectors"
        );
    }
    // Once rewritten in the new layout, a copy whose magic was damaged in the sector
    // before is rewritten again: that sector is the locator's.
    let mut damaged = Table::format(1024, 4096).unwrap().locator();
    damaged[0] ^= 0x20;
    assert_eq!(locator_hazard(&damaged, 4096), None);
}
