//! What the boot loader handed over, for both boot protocols Rexo supports: PVH (QEMU
//! `-kernel`, `hvm_start_info`) and Multiboot2 (GRUB). [`parse_pvh`] and [`parse_multiboot2`]
//! turn either into one [`BootInfo`] with fixed-capacity lists and the memory map read in
//! place (no heap: this runs before the kernel has one). Every structure is bounds-checked;
//! malformed input gives a [`BootInfoError`], never a panic or an endless loop, except what
//! the parse can cut and go past, which it records as a [`BootInfoWarning`] (docs/boot.md,
//! "Bad input from the loader").
#![cfg_attr(target_os = "none", no_std)]

mod multiboot2;
mod pvh;

use core::fmt;
use core::ops::Range;

use rexo_memmap::{Region, RegionKind};
use rexo_physmem::{PhysMemory, read_u8, read_u32, read_u64};

pub use multiboot2::parse_multiboot2;
pub use pvh::parse_pvh;

/// Value of EAX at a PVH entry (and of `hvm_start_info.magic`).
pub const PVH_MAGIC: u32 = 0x336e_c578;
/// Value of EAX at a Multiboot2 entry.
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;

/// How many modules [`BootInfo`] holds.
pub const MAX_MODULES: usize = 16;
/// How many boot structure ranges [`BootInfo::info_ranges`] holds.
pub const MAX_INFO_RANGES: usize = 4 + MAX_MODULES;
/// Longest string (without its NUL) accepted at a bare physical address (PVH strings).
pub const MAX_STRING: usize = 4096;
/// The end of page 0, which the kernel unmaps once its own page tables are in use (a null
/// pointer faults): a string it keeps, or the Multiboot2 block its strings are read from,
/// must start at or above it, and so must a PVH module list (address 0 is the real-mode
/// interrupt table, readable at boot, and no module list).
const PAGE_ZERO_END: u64 = 0x1000;

/// Which boot protocol started the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Xen PVH direct boot (QEMU `-kernel`).
    Pvh,
    /// Multiboot2 (GRUB).
    Multiboot2,
}

/// What a memory map region is, in the loader's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RawKind {
    /// Free RAM.
    Usable,
    /// Not RAM for the OS (also every unknown type).
    #[default]
    Reserved,
    /// RAM holding ACPI tables; free once they are read.
    AcpiReclaimable,
    /// ACPI non-volatile storage; must be preserved.
    AcpiNvs,
    /// Defective RAM.
    Bad,
}

impl RawKind {
    /// The kind of an E820 / Multiboot2 memory type.
    fn from_e820(t: u32) -> Self {
        match t {
            1 => Self::Usable,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Bad,
            _ => Self::Reserved,
        }
    }

    /// The kind of an EFI memory type. Loader and boot services memory is free once the
    /// kernel runs (the boot structures in it are listed in `info_ranges`).
    fn from_efi(t: u32) -> Self {
        match t {
            1..=4 | 7 => Self::Usable,
            8 => Self::Bad,
            9 => Self::AcpiReclaimable,
            10 => Self::AcpiNvs,
            _ => Self::Reserved,
        }
    }
}

/// One memory map region as the loader reported it (adjacent entries of one kind merged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawRegion {
    /// First physical address.
    pub start: u64,
    /// Length in bytes, not 0; `start + len` fits in a `u64` (a longer region is cut there).
    pub len: u64,
    /// What the region is.
    pub kind: RawKind,
}

impl From<RawRegion> for Region {
    /// The region as the kernel's memory map takes it (its end saturates at the top of the
    /// address space; [`BootInfo::memory_map`] cuts its regions there anyway).
    fn from(raw: RawRegion) -> Self {
        let kind = match raw.kind {
            RawKind::Usable => RegionKind::Usable,
            RawKind::Reserved => RegionKind::Reserved,
            RawKind::AcpiReclaimable => RegionKind::AcpiReclaimable,
            RawKind::AcpiNvs => RegionKind::AcpiNvs,
            RawKind::Bad => RegionKind::Bad,
        };
        let end = raw.start.saturating_add(raw.len);
        Self {
            start: raw.start,
            end,
            kind,
        }
    }
}

/// Bytes of an entry in E820's layout (PVH's `hvm_memmap_table_entry`, Multiboot2's tag 6):
/// start and length (`u64` each), type (`u32`), a reserved `u32`.
const E820_ENTRY: usize = 24;
/// EFI page size.
const EFI_PAGE: u64 = 4096;

/// Where the loader's memory map lies, read in place by [`BootInfo::memory_map`]: no copy,
/// so no cap on its length.
#[derive(Clone, Copy, Debug)]
enum MapSource<'a> {
    /// Entries of `size` bytes (at least [`E820_ENTRY`]) in E820's layout.
    E820 {
        /// The entries, whole ones only.
        entries: &'a [u8],
        /// Bytes of each.
        size: usize,
    },
    /// EFI memory descriptors of `size` bytes: type (`u32`), physical start (`u64` at 8),
    /// page count (`u64` at 24).
    Efi {
        /// The descriptors, whole ones only.
        entries: &'a [u8],
        /// Bytes of each (at least 40).
        size: usize,
    },
    /// Multiboot2's basic memory information: KiB of RAM from 0 and from 1 MiB.
    Basic {
        /// KiB from 0.
        lower_kib: u32,
        /// KiB from 1 MiB.
        upper_kib: u32,
    },
}

impl MapSource<'_> {
    /// How many entries it has.
    fn len(self) -> usize {
        match self {
            Self::E820 { entries, size } | Self::Efi { entries, size } => entries.len() / size,
            Self::Basic { .. } => 2,
        }
    }

    /// Entry `index`: its start, its bytes (`None`: an EFI page count of more bytes than a
    /// `u64` holds) and its kind; `None` past the last one.
    fn entry(self, index: usize) -> Option<(u64, Option<u64>, RawKind)> {
        let kib = |k: u32| Some(u64::from(k) * 1024);
        match self {
            Self::E820 { entries, size } => {
                let e = entries.get(index.checked_mul(size)?..)?;
                let kind = RawKind::from_e820(read_u32(e, 16)?);
                Some((read_u64(e, 0)?, Some(read_u64(e, 8)?), kind))
            }
            Self::Efi { entries, size } => {
                let d = entries.get(index.checked_mul(size)?..)?;
                let pages = read_u64(d, 24)?;
                let kind = RawKind::from_efi(read_u32(d, 0)?);
                Some((read_u64(d, 8)?, pages.checked_mul(EFI_PAGE), kind))
            }
            Self::Basic {
                lower_kib,
                upper_kib,
            } => match index {
                0 => Some((0, kib(lower_kib), RawKind::Usable)),
                1 => Some((0x10_0000, kib(upper_kib), RawKind::Usable)),
                _ => None,
            },
        }
    }

    /// Entry `index` as a region cut at the top of the address space.
    fn region(self, index: usize) -> Option<RawRegion> {
        let (start, len, kind) = self.entry(index)?;
        let len = len.unwrap_or(u64::MAX).min(u64::MAX - start);
        Some(RawRegion { start, len, kind })
    }
}

/// The memory map's regions ([`BootInfo::memory_map`]).
#[derive(Clone, Debug)]
pub struct MemoryRegions<'a> {
    map: MapSource<'a>,
    /// The next entry to read.
    next: usize,
}

impl Iterator for MemoryRegions<'_> {
    type Item = RawRegion;

    fn next(&mut self) -> Option<RawRegion> {
        let mut region = loop {
            let region = self.map.region(self.next)?;
            self.next += 1;
            if region.len != 0 {
                break region;
            }
        };
        // Then every later one that is empty, or adjacent and of its kind. Both are cut at
        // the top of the address space, so neither sum can overflow.
        while let Some(next) = self.map.region(self.next) {
            if next.len != 0 {
                if region.start + region.len != next.start || next.kind != region.kind {
                    break;
                }
                region.len += next.len;
            }
            self.next += 1;
        }
        Some(region)
    }
}

/// The ACPI RSDP the loader handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rsdp {
    /// Its physical address.
    pub address: u64,
    /// Whether only its ACPI 1.0 part (20 bytes, naming the RSDT) may be read there, as
    /// `rexo_acpi::parse_acpi1` does: Multiboot2's tag 14 copies no more whatever the
    /// revision byte says (the bytes after it are the block's), and a tag 15 whose revision
    /// 2 part is broken is used so.
    pub acpi1_only: bool,
}

/// A module (initial ramdisk, app image...) loaded next to the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Module<'a> {
    /// First physical address.
    pub start: u64,
    /// Physical address one past the end.
    pub end: u64,
    /// The module's command line ("" if none).
    pub cmdline: &'a str,
}

/// A linear RGB framebuffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framebuffer {
    /// Physical address of the first pixel.
    pub addr: u64,
    /// Bytes per line.
    pub pitch: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bits per pixel.
    pub bpp: u8,
    /// Bit position of red.
    pub red_shift: u8,
    /// Bits of red.
    pub red_bits: u8,
    /// Bit position of green.
    pub green_shift: u8,
    /// Bits of green.
    pub green_bits: u8,
    /// Bit position of blue.
    pub blue_shift: u8,
    /// Bits of blue.
    pub blue_bits: u8,
}

/// Which string a [`BootInfoError::BadString`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringKind {
    /// The kernel command line.
    Cmdline,
    /// The boot loader's name.
    LoaderName,
    /// The command line of module `n` (0-based).
    ModuleCmdline(usize),
}

/// What is wrong with a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringProblem {
    /// No NUL before the end of its tag, of readable memory, or of [`MAX_STRING`] bytes.
    Unterminated,
    /// Not valid UTF-8.
    NotUtf8,
}

/// Which boot structure a [`BootInfoError::Unreadable`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Structure {
    /// PVH `hvm_start_info`.
    StartInfo,
    /// PVH memory map table.
    MemoryMap,
    /// PVH module list.
    ModuleList,
    /// The Multiboot2 information block.
    InfoBlock,
    /// A PVH string (the command line, a module's command line).
    String(StringKind),
}

/// Why the boot information could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// A structure (or all the entries its count says) is not in readable memory, or
    /// starts in page 0 (below 0x1000, unmapped once the kernel's page tables are in use:
    /// the Multiboot2 block, a PVH string or module list; a null PVH module list too).
    Unreadable {
        /// Which structure.
        what: Structure,
        /// Its physical address.
        address: u64,
    },
    /// `hvm_start_info.magic` is not [`PVH_MAGIC`].
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// No memory map was handed over (PVH version 0, a null map, or no Multiboot2 map tag).
    NoMemoryMap,
    /// The Multiboot2 information block is not 8-byte aligned.
    Misaligned {
        /// Its address.
        address: u64,
    },
    /// The Multiboot2 total size is below 16 (header plus end tag).
    BadTotalSize {
        /// The size claimed.
        size: u32,
    },
    /// A Multiboot2 tag's size is below 8 (the tag header).
    TagTooSmall {
        /// Offset of the tag in the information block.
        offset: u32,
        /// Its size.
        size: u32,
    },
    /// A Multiboot2 tag runs past the information block.
    TagTruncated {
        /// Offset of the tag.
        offset: u32,
        /// Its type.
        tag_type: u32,
        /// Its size.
        size: u32,
    },
    /// A Multiboot2 tag is too short for its own fixed fields.
    TagTooShortForType {
        /// Its type.
        tag_type: u32,
        /// Its size.
        size: u32,
    },
    /// The Multiboot2 tags run to the end of the block without an end tag.
    MissingEndTag,
    /// A memory map entry size is too small (below 24; 40 for EFI descriptors).
    BadMapEntrySize {
        /// The entry size claimed.
        size: u32,
    },
    /// A Multiboot2 memory map tag (type 6 or 17) whose body holds no whole entry (the map
    /// would be empty).
    MapTagWithoutEntries {
        /// The tag's type.
        tag_type: u32,
        /// Its entry size.
        entry_size: u32,
        /// The bytes after its 16-byte head (tag header, entry size and version).
        body_size: u32,
    },
    /// More modules than [`MAX_MODULES`].
    TooManyModules {
        /// How many the loader says.
        count: u32,
    },
    /// A module whose end is below its start or past the address space.
    BadModule {
        /// Index of the module.
        index: usize,
    },
    /// A string is unterminated or not UTF-8.
    BadString {
        /// Which string.
        which: StringKind,
        /// What is wrong with it.
        problem: StringProblem,
    },
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unreadable { what, address } => {
                write!(f, "{what:?} at {address:#x} is not in readable memory")
            }
            Self::BadMagic { found } => write!(f, "PVH start info has bad magic {found:#x}"),
            Self::NoMemoryMap => write!(f, "the boot loader passed no memory map"),
            Self::Misaligned { address } => {
                write!(f, "Multiboot2 info at {address:#x} is not 8-byte aligned")
            }
            Self::BadTotalSize { size } => write!(f, "Multiboot2 total size {size} is too small"),
            Self::TagTooSmall { offset, size } => {
                write!(f, "Multiboot2 tag at offset {offset} has size {size}")
            }
            Self::TagTruncated {
                offset,
                tag_type,
                size,
            } => write!(
                f,
                "Multiboot2 tag type {tag_type} at offset {offset} (size {size}) runs past the end"
            ),
            Self::TagTooShortForType { tag_type, size } => {
                write!(
                    f,
                    "Multiboot2 tag type {tag_type} is too short ({size} bytes)"
                )
            }
            Self::MissingEndTag => write!(f, "Multiboot2 info has no end tag"),
            Self::BadMapEntrySize { size } => write!(f, "memory map entry size {size} too small"),
            Self::MapTagWithoutEntries {
                tag_type,
                entry_size,
                body_size,
            } => write!(
                f,
                "Multiboot2 memory map tag type {tag_type} has entries of {entry_size} bytes \
                 in a body of {body_size}: not one whole entry"
            ),
            Self::TooManyModules { count } => {
                write!(f, "{count} modules, at most {MAX_MODULES} supported")
            }
            Self::BadModule { index } => write!(f, "module {index} has a bad address range"),
            Self::BadString { which, problem } => write!(f, "{which:?} string: {problem:?}"),
        }
    }
}

/// Something malformed that the parse cut and went past: the boot goes on, and the kernel
/// warns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoWarning {
    /// A memory map region whose end is past the address space (`start + len` above 2^64,
    /// or an EFI page count of more bytes than a `u64` holds): cut at the top, as the
    /// kernel cuts what lies past the CPU's physical addresses.
    RegionPastAddressSpace {
        /// The region's start.
        start: u64,
        /// Its length as the loader gave it (`u64::MAX` for an EFI page count past it).
        len: u64,
    },
    /// A Multiboot2 ACPI tag whose RSDP copy is not valid (`rexo_acpi::check_copy`): tag 15
    /// without a revision 2+ RSDP whole (signature, both checksums, its length within the
    /// tag), or, with no such tag 15, tag 14 without a valid ACPI 1.0 part (signature and
    /// checksum). The RSDP is then tag 14's, else tag 15's ACPI 1.0 part, else none (the
    /// kernel searches the BIOS areas).
    BadRsdpCopy {
        /// The tag's type: 14 (ACPI 1.0) or 15 (ACPI 2.0+).
        tag_type: u32,
    },
    /// A Multiboot2 memory map tag (type 6 or 17) whose body ends in part of an entry:
    /// that part is dropped.
    PartialMapEntry {
        /// The tag's type.
        tag_type: u32,
        /// Its entry size.
        entry_size: u32,
        /// The bytes after its 16-byte head (tag header, entry size and version).
        body_size: u32,
    },
    /// A Multiboot2 information block whose `total_size` runs past its end tag, which
    /// ends the block (Multiboot2 3.6.1): only the bytes up to the end tag's end are kept
    /// from the frame allocator ([`BootInfo::info_ranges`]).
    TotalSizePastEndTag {
        /// The block's `total_size`.
        total_size: u32,
        /// Where its end tag ends, from the block's start.
        end_tag_end: u32,
    },
}

impl fmt::Display for BootInfoWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RegionPastAddressSpace { start, len } => write!(
                f,
                "memory map region at {start:#x} of {len:#x} bytes runs past 2^64: cut there"
            ),
            Self::BadRsdpCopy { tag_type } => write!(
                f,
                "Multiboot2 ACPI tag {tag_type} holds no valid {}",
                if tag_type == 15 {
                    "revision 2 RSDP whole"
                } else {
                    "ACPI 1.0 RSDP"
                }
            ),
            Self::PartialMapEntry {
                tag_type,
                entry_size,
                body_size,
            } => write!(
                f,
                "Multiboot2 memory map tag type {tag_type} has entries of {entry_size} bytes \
                 in a body of {body_size}: the part entry at its end is ignored"
            ),
            Self::TotalSizePastEndTag {
                total_size,
                end_tag_end,
            } => write!(
                f,
                "Multiboot2 information block says {total_size} bytes, but its end tag ends \
                 at byte {end_tag_end}: the bytes after it are not kept"
            ),
        }
    }
}

/// What the boot loader handed over.
#[derive(Clone, Debug)]
pub struct BootInfo<'a> {
    /// The protocol used.
    pub protocol: Protocol,
    /// The loader's name ("" when the protocol has none, as with PVH).
    pub loader_name: &'a str,
    /// The kernel command line ("" if none).
    pub cmdline: &'a str,
    /// The ACPI RSDP, if the loader gave one.
    pub rsdp: Option<Rsdp>,
    /// The RGB framebuffer, if the loader set one up.
    pub framebuffer: Option<Framebuffer>,
    /// The first thing the parse cut and went past, if any (for the kernel to warn of).
    pub warning: Option<BootInfoWarning>,
    memory_map: MapSource<'a>,
    modules: [Module<'a>; MAX_MODULES],
    module_count: usize,
    info_ranges: [Range<u64>; MAX_INFO_RANGES],
    info_range_count: usize,
}

/// An empty result (its protocol is for [`BootInfo::new`] to set).
const EMPTY: BootInfo<'static> = BootInfo {
    protocol: Protocol::Pvh,
    loader_name: "",
    cmdline: "",
    rsdp: None,
    framebuffer: None,
    warning: None,
    memory_map: MapSource::E820 {
        entries: &[],
        size: E820_ENTRY,
    },
    modules: [Module {
        start: 0,
        end: 0,
        cmdline: "",
    }; MAX_MODULES],
    module_count: 0,
    info_ranges: [const { 0..0 }; MAX_INFO_RANGES],
    info_range_count: 0,
};

impl<'a> BootInfo<'a> {
    /// The loader's name for a log line: "an unnamed loader" when the protocol gives
    /// none (PVH: QEMU, Firecracker and cloud-hypervisor all enter the same way).
    pub fn loader(&self) -> &'a str {
        if self.loader_name.is_empty() {
            "an unnamed loader"
        } else {
            self.loader_name
        }
    }

    /// An empty result for `protocol`: a copy of a constant, not field-by-field stores
    /// (less code to run at boot).
    fn new(protocol: Protocol) -> Self {
        Self { protocol, ..EMPTY }
    }

    /// The memory map in the loader's order, read where the loader left it (whatever its
    /// length: UEFI firmware hands over hundreds of descriptors). Adjacent regions of the
    /// same kind are merged; a region past the address space is cut at its top (a region
    /// ending exactly at 2^64 too, since a `u64` end cannot say 2^64: the parse warned of
    /// the first that ran past it), and empty ones are left out.
    pub fn memory_map(&self) -> MemoryRegions<'a> {
        MemoryRegions {
            map: self.memory_map,
            next: 0,
        }
    }

    /// The modules in the loader's order.
    pub fn modules(&self) -> &[Module<'a>] {
        self.modules.get(..self.module_count).unwrap_or(&[])
    }

    /// Physical ranges the boot structures themselves occupy (info block, command lines,
    /// memory map, module list): keep them until the parse result is no longer used.
    pub fn info_ranges(&self) -> &[Range<u64>] {
        self.info_ranges.get(..self.info_range_count).unwrap_or(&[])
    }

    /// Takes `map` as the memory map, warning of its first entry that runs past the
    /// address space (one ending exactly at 2^64 does not).
    fn set_memory_map(&mut self, map: MapSource<'a>) {
        self.memory_map = map;
        let runs_past = |&(start, len, _): &(u64, Option<u64>, RawKind)| {
            len.is_none_or(|len| len.saturating_sub(1) > u64::MAX - start)
        };
        let mut entries = (0..map.len()).filter_map(|index| map.entry(index));
        if let Some((start, len, _)) = entries.find(runs_past) {
            let len = len.unwrap_or(u64::MAX);
            self.warn(BootInfoWarning::RegionPastAddressSpace { start, len });
        }
    }

    /// Records `warning` unless an earlier one is recorded.
    fn warn(&mut self, warning: BootInfoWarning) {
        self.warning.get_or_insert(warning);
    }

    /// Appends a module.
    fn push_module(&mut self, module: Module<'a>, count: u32) -> Result<(), BootInfoError> {
        let slot = self
            .modules
            .get_mut(self.module_count)
            .ok_or(BootInfoError::TooManyModules { count })?;
        *slot = module;
        self.module_count += 1;
        Ok(())
    }

    /// Records that `start..start+len` holds boot structures (empty ranges are skipped; the
    /// capacity covers every range the parsers record).
    fn push_info_range(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        if end > start
            && let Some(slot) = self.info_ranges.get_mut(self.info_range_count)
        {
            *slot = start..end;
            self.info_range_count += 1;
        }
    }
}

/// Decodes `bytes` up to its first NUL as UTF-8.
fn c_str(bytes: &[u8], which: StringKind) -> Result<&str, BootInfoError> {
    let bad = |problem| BootInfoError::BadString { which, problem };
    let len = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(bad(StringProblem::Unterminated))?;
    let s = bytes.get(..len).ok_or(bad(StringProblem::Unterminated))?;
    core::str::from_utf8(s).map_err(|_| bad(StringProblem::NotUtf8))
}

/// Reads the NUL-terminated string at physical address `phys` (at most [`MAX_STRING`] bytes
/// before the NUL); returns it and its size including the NUL.
fn c_str_at(
    mem: &impl PhysMemory,
    phys: u64,
    which: StringKind,
) -> Result<(&str, u64), BootInfoError> {
    if phys < PAGE_ZERO_END {
        return Err(BootInfoError::Unreadable {
            what: Structure::String(which),
            address: phys,
        });
    }
    // One read when the longest string and its NUL would be readable (as with every
    // loader's strings); else byte by byte, up to the end of readable memory.
    let longest = MAX_STRING + 1;
    let bytes = match mem.read(phys, longest).filter(|b| b.len() == longest) {
        Some(window) => window,
        None => terminated_bytes_at(mem, phys).ok_or(BootInfoError::BadString {
            which,
            problem: StringProblem::Unterminated,
        })?,
    };
    let s = c_str(bytes, which)?;
    Ok((s, s.len() as u64 + 1))
}

/// The bytes at `phys` up to and including the first NUL, found byte by byte; `None` if a
/// byte before it is unreadable or it is not among the first [`MAX_STRING`] + 1.
fn terminated_bytes_at(mem: &impl PhysMemory, phys: u64) -> Option<&[u8]> {
    let mut len = 0usize;
    loop {
        let byte = phys
            .checked_add(len as u64)
            .and_then(|a| mem.read(a, 1))
            .and_then(|b| read_u8(b, 0))?;
        if byte == 0 {
            break;
        }
        len += 1;
        if len > MAX_STRING {
            return None;
        }
    }
    mem.read(phys, len + 1).filter(|b| b.len() == len + 1)
}
