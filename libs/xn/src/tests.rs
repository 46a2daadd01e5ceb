//! Host tests of the extent table.

use super::*;
use rexo_testkit::Rng;

fn table() -> Table {
    Table::format(16384, 512).unwrap()
}

#[test]
fn extents_are_granted_checked_and_persist() {
    let mut t = table();
    assert_eq!(t.table_start(), 16384 - 8);
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
    let again = Table::parse(&t.to_bytes(), 16384, 512).unwrap();
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
    assert_eq!(t.revoke("fs", "httpd"), 1);
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
        t.allocate("fs", 1).unwrap_or_else(|e| panic!("{i}: {e}"));
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
        Table::parse(&alloc::vec![0; TABLE_BYTES], 16384, 512),
        Err(XnError::NoTable)
    );
    assert_eq!(
        Table::parse(&good, 20000, 512),
        Err(XnError::WrongDisk {
            table: 16384,
            disk: 20000
        })
    );
    let mut flipped = good.clone();
    flipped[HEADER + 3] ^= 1;
    assert_eq!(
        Table::parse(&flipped, 16384, 512),
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
        Table::parse(&overlap.to_bytes(), 16384, 512),
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
        Table::parse(&outside.to_bytes(), 16384, 512),
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
            let crc = crc32(&bytes[HEADER..HEADER + count * ENTRY]);
            bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        }
        let _ = Table::parse(&bytes, 16384, 512);
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
    assert!(!holds_a_table(31, 512));
    assert!(holds_a_table(32, 512));
    for (sectors, size) in [(1 << 55, 512), (u64::MAX, 4096)] {
        assert!(holds_a_table(sectors, size), "{sectors} x {size}");
        let mut table = Table::format(sectors, size).unwrap();
        let extent = table.allocate("fs", 64).unwrap();
        let again = Table::parse(&table.to_bytes(), sectors, size).unwrap();
        assert_eq!(again.entries(), [extent]);
    }
}
