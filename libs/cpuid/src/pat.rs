//! The page attribute table (Intel SDM Vol. 3A, "Page Attribute Table (PAT)"): the
//! IA32_PAT value every core is given, and the PAT entry, so the memory type, that a
//! page-table entry selects.
//!
//! IA32_PAT holds eight entries, one byte each (entry `i` in bits `8i..8i+3`). A page's
//! entry is chosen by three bits of the page-table entry that maps it: PWT (bit 3), PCD
//! (bit 4) and the PAT bit, bit 7 in an entry mapping a 4 KiB page and bit 12 in one
//! mapping a 2 MiB or 1 GiB page: index = PAT x 4 + PCD x 2 + PWT. The table's value after
//! power-up or reset, [`POWER_ON`], gives the meanings PCD and PWT had before the PAT:
//! 0 WB, 1 WT, 2 UC-, 3 UC. The kernel's mappings use entry 0 (write-back: RAM) and 3 (PCD
//! and PWT: uncached device windows); [`PROGRAMMED`] keeps those and makes entry 1 (PWT
//! alone) write-combining, for the framebuffer, as Linux does. An entry of the lower four
//! needs no PAT bit, whose place differs between levels, and the PAT errata of the
//! Pentium II, III, M and 4 leave those four usable where the upper four are not. The SDM
//! asks for the same value on every processor.

/// IA32_PAT's MSR number.
pub const MSR: u32 = 0x277;

/// IA32_PAT after power-up or reset (and kept by INIT), the SDM's table "Memory Type
/// Setting of PAT Entries Following a Power-up or Reset": WB, WT, UC-, UC, WB, WT, UC-,
/// UC.
pub const POWER_ON: u64 = 0x0007_0406_0007_0406;

/// The entry the kernel makes write-combining: 1, selected by PWT alone in an entry of
/// any level (PCD and the PAT bit clear).
pub const WRITE_COMBINING_ENTRY: u8 = 1;

/// The value every core's IA32_PAT is given: [`POWER_ON`] with entry
/// [`WRITE_COMBINING_ENTRY`] write-combining (0x0007_0406_0007_0106), its other entries
/// at their power-on types, whatever the firmware left there.
pub const PROGRAMMED: u64 = with_entry(POWER_ON, WRITE_COMBINING_ENTRY, MemoryType::WriteCombining);

/// A memory type a PAT entry can hold, by its encoding (the SDM's table "Memory Types That
/// Can Be Encoded With PAT"; 2, 3 and 8 up are reserved: WRMSR faults on them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    /// Uncacheable (UC).
    Uncacheable = 0,
    /// Write-combining (WC): not cached, stores gathered in the core's write-combining
    /// buffers and written out later, in any order, until a fence drains them.
    WriteCombining = 1,
    /// Write-through (WT).
    WriteThrough = 4,
    /// Write-protected (WP).
    WriteProtected = 5,
    /// Write-back (WB).
    WriteBack = 6,
    /// Uncached, which an MTRR's write-combining overrides (UC-).
    UncachedMinus = 7,
}

impl MemoryType {
    /// The type whose encoding is `byte` (`None`: a reserved encoding).
    pub fn from_encoding(byte: u8) -> Option<Self> {
        [
            Self::Uncacheable,
            Self::WriteCombining,
            Self::WriteThrough,
            Self::WriteProtected,
            Self::WriteBack,
            Self::UncachedMinus,
        ]
        .into_iter()
        .find(|&kind| kind as u8 == byte)
    }
}

/// `pat` with its entry `index` (0 to 7) set to `kind`.
pub const fn with_entry(pat: u64, index: u8, kind: MemoryType) -> u64 {
    let shift = 8 * index as u32;
    pat & !(0xFF << shift) | (kind as u64) << shift
}

/// The memory type entry `index` (0 to 7) of `pat` holds (`None`: a reserved encoding).
pub fn memory_type(pat: u64, index: u8) -> Option<MemoryType> {
    MemoryType::from_encoding((pat >> (8 * u32::from(index))) as u8)
}

/// The PAT entry (0 to 7) that a paging-structure entry mapping a page selects: PWT
/// (bit 3), PCD (bit 4), and the PAT bit, bit 7 where the entry maps a 4 KiB page
/// (`four_kib`) and bit 12 where it maps a 2 MiB or 1 GiB page (bit 7 is then the
/// page-size bit).
pub fn entry_index(entry: u64, four_kib: bool) -> u8 {
    let pat_bit = if four_kib { 7 } else { 12 };
    let bit = |n: u32| (entry >> n & 1) as u8;
    bit(pat_bit) << 2 | bit(4) << 1 | bit(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PWT: u64 = 1 << 3;
    const PCD: u64 = 1 << 4;

    #[test]
    fn the_programmed_table_makes_entry_1_write_combining_and_keeps_the_others() {
        assert_eq!(PROGRAMMED, 0x0007_0406_0007_0106);
        let types = |pat| (0..8).map(|i| memory_type(pat, i)).collect::<Vec<_>>();
        let (before, after) = (types(POWER_ON), types(PROGRAMMED));
        for index in 0..8 {
            let expected = match index {
                1 => Some(MemoryType::WriteCombining),
                _ => before[index],
            };
            assert_eq!(after[index], expected, "entry {index}");
        }
        use MemoryType::{Uncacheable, UncachedMinus, WriteBack, WriteThrough};
        let power_on = [WriteBack, WriteThrough, UncachedMinus, Uncacheable];
        assert_eq!(before[..4], power_on.map(Some), "the power-on meanings");
        assert_eq!(
            before[4..],
            power_on.map(Some),
            "the upper four repeat them"
        );
    }

    #[test]
    fn the_kernels_three_mappings_select_wb_uc_and_wc_at_every_level() {
        // A 4 KiB page's entry, then a 2 MiB page's (bit 7: its page size, not PAT).
        for (four_kib, size_bit) in [(true, 0), (false, 1 << 7)] {
            let page = 0x8000_0000 | 0x3 | size_bit; // present, writable
            let selected = |bits| memory_type(PROGRAMMED, entry_index(page | bits, four_kib));
            assert_eq!(selected(0), Some(MemoryType::WriteBack));
            assert_eq!(selected(PCD | PWT), Some(MemoryType::Uncacheable));
            assert_eq!(selected(PWT), Some(MemoryType::WriteCombining));
            // Before the table is programmed the same bits mean write-through.
            let before = memory_type(POWER_ON, entry_index(page | PWT, four_kib));
            assert_eq!(before, Some(MemoryType::WriteThrough));
        }
    }

    #[test]
    fn the_pat_bit_is_bit_7_of_a_4_kib_page_and_bit_12_of_a_larger_one() {
        assert_eq!(entry_index(1 << 7 | PWT, true), 5);
        assert_eq!(
            entry_index(1 << 12 | PWT, true),
            1,
            "bit 12 is an address bit"
        );
        assert_eq!(entry_index(1 << 12 | PCD | PWT, false), 7);
        assert_eq!(
            entry_index(1 << 7 | PCD, false),
            2,
            "bit 7 is the page size"
        );
    }

    #[test]
    fn reserved_encodings_are_no_type() {
        for byte in [2, 3, 8, 0x10, 0xFF] {
            assert_eq!(MemoryType::from_encoding(byte), None, "{byte:#x}");
        }
        assert_eq!(memory_type(0x0200, 1), None);
        assert_eq!(
            with_entry(0, 7, MemoryType::UncachedMinus),
            0x0700_0000_0000_0000
        );
    }
}
