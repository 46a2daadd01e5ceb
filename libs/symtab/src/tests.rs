use super::*;
use rexo_testkit::Rng;

fn sym(addr: u64, size: u64, name: &str) -> Symbol {
    Symbol {
        addr,
        size,
        name: name.into(),
    }
}

/// Recomputes the checksum after a test edited the payload on purpose, so that the
/// deeper checks (names, order) are the ones that must catch the damage.
fn fix_checksum(bytes: &mut [u8]) {
    let count = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let strings = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
    let end = (HEADER_LEN + count * RECORD_LEN + strings).min(bytes.len());
    let sum = checksum(&bytes[HEADER_LEN..end]);
    bytes[24..28].copy_from_slice(&sum.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn sample() -> Vec<u8> {
    encode(
        &[
            sym(0x20_3000, 0x40, "rexo::boot::start"),
            sym(0x20_1000, 0x100, "rexo::main"),
            sym(0x20_1200, 0x10, "core::panicking::panic"),
        ],
        RESERVED_BYTES,
    )
    .unwrap()
}

#[test]
fn round_trip_and_lookup_at_start_middle_end_and_gaps() {
    let bytes = sample();
    let t = SymbolTable::parse(&bytes).unwrap();
    assert_eq!(t.len(), 3);
    assert!(!t.is_empty());
    assert_eq!(t.lookup(0x20_1000), Some(("rexo::main", 0)));
    assert_eq!(t.lookup(0x20_1080), Some(("rexo::main", 0x80)));
    assert_eq!(t.lookup(0x20_10ff), Some(("rexo::main", 0xff)));
    assert_eq!(t.lookup(0x20_1100), None, "one past the end");
    assert_eq!(t.lookup(0x20_11ff), None, "gap");
    assert_eq!(t.lookup(0x20_1200), Some(("core::panicking::panic", 0)));
    assert_eq!(t.lookup(0x20_120f), Some(("core::panicking::panic", 0xf)));
    assert_eq!(t.lookup(0x20_3000), Some(("rexo::boot::start", 0)));
    assert_eq!(t.lookup(0x20_303f), Some(("rexo::boot::start", 0x3f)));
    assert_eq!(t.lookup(0x20_3040), None, "after the last");
    assert_eq!(t.lookup(0x20_0fff), None, "before the first");
    assert_eq!(t.lookup(0), None);
    assert_eq!(t.lookup(u64::MAX), None);
}

#[test]
fn table_in_a_zero_filled_section_parses() {
    let bytes = sample();
    let mut section = vec![0u8; RESERVED_BYTES];
    section[..bytes.len()].copy_from_slice(&bytes);
    let t = SymbolTable::parse(&section).unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(t.lookup(0x20_1004), Some(("rexo::main", 4)));
}

#[test]
fn empty_table_and_unwritten_section() {
    let bytes = encode(&[], RESERVED_BYTES).unwrap();
    assert_eq!(bytes.len(), HEADER_LEN);
    let t = SymbolTable::parse(&bytes).unwrap();
    assert_eq!(t.len(), 0);
    assert!(t.is_empty());
    assert_eq!(t.lookup(0x20_0000), None);

    let zeros = vec![0u8; RESERVED_BYTES];
    assert_eq!(SymbolTable::parse(&zeros).unwrap_err(), SymtabError::Empty);
    assert_eq!(SymbolTable::parse(&[]).unwrap_err(), SymtabError::Empty);
}

#[test]
fn over_the_limit_says_how_many_bytes_were_needed() {
    let symbols: Vec<Symbol> = (0..100)
        .map(|i| sym(0x20_0000 + i * 0x100, 0x80, &format!("function_{i}")))
        .collect();
    let full = encode(&symbols, usize::MAX).unwrap();
    assert_eq!(
        encode(&symbols, full.len() - 1).unwrap_err(),
        EncodeError::TooLarge {
            needed: full.len(),
            limit: full.len() - 1
        }
    );
    assert_eq!(encode(&symbols, full.len()).unwrap(), full);
    let msg = encode(&symbols, 10).unwrap_err().to_string();
    assert!(msg.contains(&full.len().to_string()), "{msg}");
}

#[test]
fn long_names_are_cut_at_a_char_boundary() {
    let long = format!("{}é tail", "a".repeat(MAX_NAME_BYTES - 1));
    let bytes = encode(&[sym(0x1000, 4, &long)], RESERVED_BYTES).unwrap();
    let t = SymbolTable::parse(&bytes).unwrap();
    let (name, _) = t.lookup(0x1000).unwrap();
    assert_eq!(name, "a".repeat(MAX_NAME_BYTES - 1));

    let exact = "b".repeat(MAX_NAME_BYTES + 50);
    let bytes = encode(&[sym(0x1000, 4, &exact)], RESERVED_BYTES).unwrap();
    let t = SymbolTable::parse(&bytes).unwrap();
    assert_eq!(t.lookup(0x1003).unwrap().0.len(), MAX_NAME_BYTES);
}

#[test]
fn equal_names_are_stored_once() {
    let one = encode(&[sym(0x1000, 4, "core::fmt::write")], RESERVED_BYTES).unwrap();
    let two = encode(
        &[
            sym(0x1000, 4, "core::fmt::write"),
            sym(0x2000, 4, "core::fmt::write"),
        ],
        RESERVED_BYTES,
    )
    .unwrap();
    assert_eq!(two.len(), one.len() + RECORD_LEN);
    let t = SymbolTable::parse(&two).unwrap();
    assert_eq!(t.lookup(0x2002), Some(("core::fmt::write", 2)));
}

#[test]
fn overlaps_aliases_zero_sizes_and_empty_names_are_resolved() {
    let bytes = encode(
        &[
            // Runs into the next symbol: cut at 0x1080.
            sym(0x1000, 0x100, "outer"),
            sym(0x1080, 0x10, "inner"),
            // Aliases: the larger one wins.
            sym(0x2000, 0x10, "small_alias"),
            sym(0x2000, 0x20, "big_alias"),
            // Zero size: extends to the next symbol.
            sym(0x3000, 0, "asm_label"),
            sym(0x3100, 0x10, "after_label"),
            // No name: dropped.
            sym(0x4000, 0x10, ""),
            // Zero size and last: dropped.
            sym(0x5000, 0, "last_label"),
        ],
        RESERVED_BYTES,
    )
    .unwrap();
    let t = SymbolTable::parse(&bytes).unwrap();
    assert_eq!(t.len(), 5);
    assert_eq!(t.lookup(0x107f), Some(("outer", 0x7f)));
    assert_eq!(t.lookup(0x1080), Some(("inner", 0)));
    assert_eq!(t.lookup(0x1090), None);
    assert_eq!(t.lookup(0x201f), Some(("big_alias", 0x1f)));
    assert_eq!(t.lookup(0x30ff), Some(("asm_label", 0xff)));
    assert_eq!(t.lookup(0x3100), Some(("after_label", 0)));
    assert_eq!(t.lookup(0x4000), None);
    assert_eq!(t.lookup(0x5000), None);
}

#[test]
fn encode_refuses_impossible_symbols() {
    assert_eq!(
        encode(&[sym(0x1000, 1 << 32, "huge")], RESERVED_BYTES).unwrap_err(),
        EncodeError::SymbolTooLarge {
            name: "huge".into(),
            size: 1 << 32
        }
    );
    assert_eq!(
        encode(
            &[sym(0x1000, 4, "low"), sym(0x2_0000_1000, 4, "high")],
            RESERVED_BYTES
        )
        .unwrap_err(),
        EncodeError::SpanTooWide {
            base: 0x1000,
            addr: 0x2_0000_1000
        }
    );
    // A size that runs past the end of the address space is cut, not refused.
    let bytes = encode(&[sym(u64::MAX - 3, 100, "top")], RESERVED_BYTES).unwrap();
    let t = SymbolTable::parse(&bytes).unwrap();
    assert_eq!(t.lookup(u64::MAX - 1), Some(("top", 2)));
}

#[test]
fn truncated_tables_are_refused() {
    let bytes = sample();
    for cut in [
        4,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 5,
        bytes.len() - 1,
    ] {
        assert!(
            matches!(
                SymbolTable::parse(&bytes[..cut]),
                Err(SymtabError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
    assert_eq!(
        SymbolTable::parse(&bytes[..bytes.len() - 1]).unwrap_err(),
        SymtabError::Truncated {
            needed: bytes.len(),
            available: bytes.len() - 1
        }
    );
    // A huge count in the header must not overflow or read out of range.
    let mut huge = bytes.clone();
    put_u32(&mut huge, 16, u32::MAX);
    put_u32(&mut huge, 20, u32::MAX);
    assert!(matches!(
        SymbolTable::parse(&huge),
        Err(SymtabError::Truncated { .. })
    ));
}

#[test]
fn bad_magic_version_and_checksum_are_refused() {
    let mut bytes = sample();
    bytes[0] = b'X';
    assert_eq!(
        SymbolTable::parse(&bytes).unwrap_err(),
        SymtabError::BadMagic
    );
    assert_eq!(SymbolTable::parse(&[1]).unwrap_err(), SymtabError::BadMagic);

    let mut bytes = sample();
    put_u32(&mut bytes, 4, 2);
    assert_eq!(
        SymbolTable::parse(&bytes).unwrap_err(),
        SymtabError::UnsupportedVersion(2)
    );

    let mut bytes = sample();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        SymbolTable::parse(&bytes).unwrap_err(),
        SymtabError::ChecksumMismatch
    );
}

#[test]
fn bad_records_are_refused() {
    // Records of `sample()`, sorted: main (0), panic (1), start (2).
    let record = |i: usize| HEADER_LEN + i * RECORD_LEN;
    let strings_len = |b: &[u8]| u32::from_le_bytes(b[20..24].try_into().unwrap());

    let mut b = sample();
    let past = strings_len(&b);
    put_u32(&mut b, record(1) + 8, past);
    fix_checksum(&mut b);
    assert_eq!(
        SymbolTable::parse(&b).unwrap_err(),
        SymtabError::NameOutOfRange { index: 1 }
    );

    // A length byte that runs past the end of the string area.
    let mut b = sample();
    let last_name = u32::from_le_bytes(b[record(2) + 8..record(2) + 12].try_into().unwrap());
    b[HEADER_LEN + 3 * RECORD_LEN + last_name as usize] = 255;
    fix_checksum(&mut b);
    assert_eq!(
        SymbolTable::parse(&b).unwrap_err(),
        SymtabError::NameOutOfRange { index: 2 }
    );

    let mut b = sample();
    let name0 = u32::from_le_bytes(b[record(0) + 8..record(0) + 12].try_into().unwrap());
    b[HEADER_LEN + 3 * RECORD_LEN + name0 as usize + 1] = 0xff;
    fix_checksum(&mut b);
    assert_eq!(
        SymbolTable::parse(&b).unwrap_err(),
        SymtabError::NameNotUtf8 { index: 0 }
    );

    let mut b = sample();
    put_u32(&mut b, record(1) + 4, 0);
    fix_checksum(&mut b);
    assert_eq!(
        SymbolTable::parse(&b).unwrap_err(),
        SymtabError::ZeroSize { index: 1 }
    );

    // Record 2 moved below record 1: unsorted.
    let mut b = sample();
    put_u32(&mut b, record(2), 0x10);
    fix_checksum(&mut b);
    assert_eq!(
        SymbolTable::parse(&b).unwrap_err(),
        SymtabError::Unsorted { index: 2 }
    );

    // Record 0 grown into record 1: overlapping.
    let mut b = sample();
    put_u32(&mut b, record(0) + 4, 0x201);
    fix_checksum(&mut b);
    assert_eq!(
        SymbolTable::parse(&b).unwrap_err(),
        SymtabError::Unsorted { index: 1 }
    );

    // A base so high that a record's start or end passes 2^64.
    let mut b = sample();
    b[8..16].copy_from_slice(&(u64::MAX - 0x100).to_le_bytes());
    fix_checksum(&mut b);
    assert_eq!(
        SymbolTable::parse(&b).unwrap_err(),
        SymtabError::AddressOverflow { index: 1 }
    );
    let mut b = sample();
    b[8..16].copy_from_slice(&(u64::MAX - 0x80).to_le_bytes());
    fix_checksum(&mut b);
    assert_eq!(
        SymbolTable::parse(&b).unwrap_err(),
        SymtabError::AddressOverflow { index: 0 }
    );
}

#[test]
fn errors_display_their_cause() {
    let msg = SymtabError::Truncated {
        needed: 90,
        available: 40,
    }
    .to_string();
    assert!(msg.contains("90") && msg.contains("40"), "{msg}");
    assert!(
        SymtabError::NameNotUtf8 { index: 7 }
            .to_string()
            .contains('7')
    );
}

/// Parses `bytes` and, if they are accepted, checks that lookups agree with the records.
/// Returns whether they were accepted.
fn parse_and_probe(bytes: &[u8], rng: &mut Rng) -> bool {
    let Ok(t) = SymbolTable::parse(bytes) else {
        return false;
    };
    for i in 0..t.len() {
        let r = t.record(i).unwrap();
        let (_, offset) = t.lookup(r.start).unwrap();
        assert_eq!(offset, 0);
        let (_, offset) = t.lookup(r.start + r.size - 1).unwrap();
        assert_eq!(offset, r.size - 1);
    }
    for _ in 0..16 {
        if let Some((_, offset)) = t.lookup(rng.next_u64()) {
            assert!(offset < u64::from(u32::MAX));
        }
    }
    true
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = encode(
        &(0..40)
            .map(|i| sym(0x20_0000 + i * 0x40, 0x20 + i, &format!("f{i}_ü")))
            .collect::<Vec<_>>(),
        RESERVED_BYTES,
    )
    .unwrap();
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..20_000 {
        let mut bytes = match round % 3 {
            // Pure noise, sometimes behind a valid magic and version.
            0 => {
                let len = rng.below(200);
                let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if len >= 8 && rng.below(2) == 0 {
                    b[..4].copy_from_slice(&MAGIC);
                    b[4..8].copy_from_slice(&VERSION.to_le_bytes());
                }
                b
            }
            // A valid table with a few random bytes changed.
            _ => {
                let mut b = valid.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(b.len());
                    b[at] = rng.next_u64() as u8;
                }
                if rng.below(4) == 0 {
                    b.truncate(rng.below(b.len()).max(HEADER_LEN));
                }
                b
            }
        };
        parse_and_probe(&bytes, &mut rng);
        if bytes.len() >= HEADER_LEN {
            fix_checksum(&mut bytes);
            match parse_and_probe(&bytes, &mut rng) {
                true => accepted += 1,
                false => refused += 1,
            }
        }
    }
    // Both outcomes must be common, or the test explores nothing.
    assert!(accepted > 200 && refused > 1000, "{accepted} {refused}");
}

#[test]
fn debug_shows_the_shape_not_the_bytes() {
    let bytes = sample();
    let text = format!("{:?}", SymbolTable::parse(&bytes).unwrap());
    assert!(
        text.contains("len: 3") && text.contains("0x201000"),
        "{text}"
    );
}
