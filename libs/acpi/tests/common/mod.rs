//! Shared test helpers: recorded QEMU memory and synthetic table builders.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::cell::Cell;
use std::path::Path;

use rexo_physmem::{PhysMemory, SparseMemory};

/// The memory recorded from one QEMU machine by `fixtures/record.sh`.
pub fn recorded(machine: &str) -> SparseMemory {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(machine);
    let mut mem = SparseMemory::new();
    for entry in std::fs::read_dir(&dir).expect("fixture folder") {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let base = u64::from_str_radix(stem, 16).expect("chunk file named by hex address");
        mem.insert(base, std::fs::read(&path).unwrap()).unwrap();
    }
    mem
}

/// Sets byte `at` of `bytes` so that they sum to zero.
pub fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    bytes[at] = sum.wrapping_neg();
}

/// A description table: header with `sig`, `revision` and a right checksum, then `body`.
pub fn table(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(sig);
    t.extend_from_slice(&(36 + body.len() as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(b"REXOTS");
    t.extend_from_slice(b"TESTTABL");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"REXO");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    fix_checksum(&mut t, 9);
    t
}

/// An ACPI 1.0 RSDP naming `rsdt`.
pub fn rsdp_v1(rsdt: u32) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(b"REXOTS");
    r.push(0);
    r.extend_from_slice(&rsdt.to_le_bytes());
    fix_checksum(&mut r, 8);
    r
}

/// An ACPI 2.0 RSDP naming `rsdt` and `xsdt`.
pub fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = rsdp_v1(rsdt);
    r[15] = 2;
    fix_checksum(&mut r, 8);
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0; 4]);
    fix_checksum(&mut r, 32);
    r
}

/// An RSDT body listing `tables`.
pub fn rsdt_body(tables: &[u32]) -> Vec<u8> {
    tables.iter().flat_map(|t| t.to_le_bytes()).collect()
}

/// A MADT body: local APIC address 0xFEE00000, PCAT_COMPAT, then `entries`.
pub fn madt_body(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for e in entries {
        b.extend_from_slice(e);
    }
    b
}

/// A MADT Processor Local APIC entry.
pub fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
    let mut e = vec![0, 8, uid, id];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

/// Where `synthetic` places things.
pub const RSDP: u64 = 0xE_0000;
/// First table address used by `synthetic`; tables follow at 4 KiB steps.
pub const TABLES: u64 = 0x10_0000;

/// Memory holding an ACPI 1.0 RSDP at `RSDP`, an RSDT at `TABLES` and each of `tables` at
/// the following 4 KiB pages.
pub fn synthetic(tables: &[Vec<u8>]) -> SparseMemory {
    let addrs: Vec<u32> = (0..tables.len())
        .map(|i| (TABLES + 0x1000 * (i as u64 + 1)) as u32)
        .collect();
    let mut mem = SparseMemory::new();
    mem.insert(RSDP, rsdp_v1(TABLES as u32)).unwrap();
    mem.insert(TABLES, table(b"RSDT", 1, &rsdt_body(&addrs)))
        .unwrap();
    for (t, a) in tables.iter().zip(&addrs) {
        mem.insert(u64::from(*a), t.clone()).unwrap();
    }
    mem
}

/// Memory that remembers how far the reads asked of it reached.
pub struct Recording {
    mem: SparseMemory,
    furthest: Cell<u64>,
}

impl Recording {
    /// `mem`, recorded.
    pub fn new(mem: SparseMemory) -> Self {
        Self {
            mem,
            furthest: Cell::new(0),
        }
    }

    /// The end of the furthest-reaching read asked for, readable or not.
    pub fn furthest_read_end(&self) -> u64 {
        self.furthest.get()
    }
}

impl PhysMemory for Recording {
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
        let end = phys.saturating_add(len as u64);
        self.furthest.set(self.furthest.get().max(end));
        self.mem.read(phys, len)
    }
}
