//! What the kernel tests read of the page tables.

use super::{Caching, GIB4, WRITABLE, installed};

/// Whether `addr` is mapped (what the kernel tests check of guard pages and the map).
pub fn is_mapped(addr: u64) -> bool {
    if !installed() {
        return addr < GIB4;
    }
    mapping(addr).is_some()
}

/// The bytes of the page that maps `addr`: 1 GiB, 2 MiB or 4 KiB (`None`: not mapped).
pub fn page_bytes(addr: u64) -> Option<u64> {
    super::leaf(addr).map(|(_, bytes)| bytes)
}

/// How an address is mapped: what the kernel tests check of RAM and device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The page may be written.
    pub writable: bool,
    /// Write-back, uncached or write-combining: the memory type that the PAT entry its
    /// PWT, PCD and PAT bits select holds in the kernel's table
    /// (`rexo_cpuid::pat::PROGRAMMED`).
    pub caching: Caching,
}

/// How `addr` is mapped in the installed tables (`None`: not mapped); the entry that maps
/// it, at whichever level, decides.
pub fn mapping(addr: u64) -> Option<Mapping> {
    use rexo_cpuid::pat::{self, MemoryType};
    let (leaf, bytes) = super::leaf(addr)?;
    let index = pat::entry_index(leaf, bytes == 4096);
    let caching = match pat::memory_type(pat::PROGRAMMED, index) {
        Some(MemoryType::WriteBack) => Caching::WriteBack,
        Some(MemoryType::Uncacheable) => Caching::Uncached,
        Some(MemoryType::WriteCombining) => Caching::WriteCombining,
        other => panic!("the entry mapping {addr:#x} selects PAT entry {index}: {other:?}"),
    };
    Some(Mapping {
        writable: leaf & WRITABLE != 0,
        caching,
    })
}
