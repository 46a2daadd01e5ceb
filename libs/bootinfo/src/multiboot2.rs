//! Multiboot2: the boot information block and its tags.

use rexo_physmem::{PhysMemory, read_u8, read_u32, read_u64};

use crate::{
    BootInfo, BootInfoError, BootInfoWarning, Framebuffer, MAX_MODULES, MapSource, Module,
    PAGE_ZERO_END, Protocol, Rsdp, StringKind, Structure, c_str,
};
use rexo_acpi::RsdpCopy;

/// Tag types this parser reads.
const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_LOADER_NAME: u32 = 2;
const TAG_MODULE: u32 = 3;
const TAG_BASIC_MEMINFO: u32 = 4;
const TAG_MMAP: u32 = 6;
const TAG_FRAMEBUFFER: u32 = 8;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;
const TAG_EFI_MMAP: u32 = 17;

/// Bytes before a memory map tag's entries (type 6 or 17): the tag header, the entry size
/// and the entry version.
const MAP_TAG_HEAD: usize = 16;
/// Smallest memory map entry (base, length, type, reserved).
const MMAP_ENTRY_MIN: u32 = 24;
/// Smallest EFI memory descriptor.
const EFI_DESCRIPTOR_MIN: u32 = 40;
/// Framebuffer type with direct RGB pixels.
const FB_TYPE_RGB: u8 = 1;

/// Reads the Multiboot2 information block at `info` (the EBX value at a Multiboot2 entry).
///
/// The memory map comes from tag 6, else from the EFI memory map (tag 17), else from the
/// basic memory information (tag 4); a map tag without one whole entry is refused, and a
/// part entry at its end is dropped with a warning. The RSDP is the copy inside tag 15 (ACPI
/// 2.0+) when it is valid whole, else the ACPI 1.0 part inside tag 14 or tag 15, checked by
/// `rexo_acpi::check_copy` ([`BootInfo::rsdp`]; a tag passed over is warned of, and with
/// none valid the kernel searches the BIOS areas for one). Of several tags of one type the first is read and the
/// others skipped unread, for every type but modules (tag 3: every one is a module).
/// The block is kept up to its end tag's end ([`BootInfo::info_ranges`]), with a warning
/// where its `total_size` says more.
pub fn parse_multiboot2<'a>(
    mem: &'a impl PhysMemory,
    info: u64,
) -> Result<BootInfo<'a>, BootInfoError> {
    if !info.is_multiple_of(8) {
        return Err(BootInfoError::Misaligned { address: info });
    }
    let unreadable = BootInfoError::Unreadable {
        what: Structure::InfoBlock,
        address: info,
    };
    // The loader's name and the modules' command lines are read from the block later on.
    let head = (info >= PAGE_ZERO_END)
        .then(|| mem.read(info, 8))
        .flatten()
        .filter(|b| b.len() == 8)
        .ok_or(unreadable)?;
    let total = read_u32(head, 0).unwrap_or(0);
    if total < 16 {
        return Err(BootInfoError::BadTotalSize { size: total });
    }
    let block = mem
        .read(info, total as usize)
        .filter(|b| b.len() == total as usize)
        .ok_or(unreadable)?;

    let mut boot = BootInfo::new(Protocol::Multiboot2);
    let mut mmap = None;
    let mut efi_mmap = None;
    let mut meminfo = None;
    let mut rsdp_old = None;
    let mut rsdp_new = None;
    // A bit per tag type below 32 (every type read here) of those already read.
    let mut types_read = 0u32;
    let mut modules = 0usize;

    let mut offset = 8usize;
    loop {
        let offset32 = u32::try_from(offset).unwrap_or(u32::MAX);
        let (Some(tag_type), Some(size)) = (read_u32(block, offset), read_u32(block, offset + 4))
        else {
            return Err(BootInfoError::MissingEndTag);
        };
        if size < 8 {
            return Err(BootInfoError::TagTooSmall {
                offset: offset32,
                size,
            });
        }
        let truncated = BootInfoError::TagTruncated {
            offset: offset32,
            tag_type,
            size,
        };
        let tag = offset
            .checked_add(size as usize)
            .and_then(|end| block.get(offset..end))
            .ok_or(truncated)?;
        let short = BootInfoError::TagTooShortForType { tag_type, size };
        let type_bit = 1u32.checked_shl(tag_type).unwrap_or(0);
        let already_read = types_read & type_bit != 0;
        types_read |= type_bit & !(1 << TAG_MODULE);
        match tag_type {
            TAG_END => {
                // The block ends with its end tag (Multiboot2 3.6.1; GRUB's total_size is
                // exactly there): only that much is kept from use, whatever total_size says.
                let end = u32::try_from(offset + tag.len()).unwrap_or(total);
                if end != total {
                    boot.warn(BootInfoWarning::TotalSizePastEndTag {
                        total_size: total,
                        end_tag_end: end,
                    });
                }
                boot.push_info_range(info, u64::from(end));
                break;
            }
            // The first tag of a type wins, as in GRUB's own order; modules are a list.
            _ if already_read => {}
            TAG_CMDLINE => boot.cmdline = c_str(tag.get(8..).unwrap_or(&[]), StringKind::Cmdline)?,
            TAG_LOADER_NAME => {
                boot.loader_name = c_str(tag.get(8..).unwrap_or(&[]), StringKind::LoaderName)?;
            }
            TAG_MODULE => {
                let (Some(start), Some(end)) = (read_u32(tag, 8), read_u32(tag, 12)) else {
                    return Err(short);
                };
                if end < start {
                    return Err(BootInfoError::BadModule { index: modules });
                }
                let which = StringKind::ModuleCmdline(modules);
                let cmdline = c_str(tag.get(16..).unwrap_or(&[]), which)?;
                let count = u32::try_from(modules + 1).unwrap_or(u32::MAX);
                if modules >= MAX_MODULES {
                    return Err(BootInfoError::TooManyModules { count });
                }
                let module = Module {
                    start: u64::from(start),
                    end: u64::from(end),
                    cmdline,
                };
                boot.push_module(module, count)?;
                modules += 1;
            }
            TAG_BASIC_MEMINFO => {
                let (Some(lower), Some(upper)) = (read_u32(tag, 8), read_u32(tag, 12)) else {
                    return Err(short);
                };
                meminfo = Some((lower, upper));
            }
            TAG_MMAP => {
                let entry_size = read_u32(tag, 8).ok_or(short)?;
                if entry_size < MMAP_ENTRY_MIN {
                    return Err(BootInfoError::BadMapEntrySize { size: entry_size });
                }
                mmap = Some((tag, entry_size));
            }
            TAG_FRAMEBUFFER => boot.framebuffer = framebuffer(tag).ok_or(short)?,
            TAG_ACPI_OLD => rsdp_old = rsdp_tag(info, offset, tag),
            TAG_ACPI_NEW => rsdp_new = rsdp_tag(info, offset, tag),
            TAG_EFI_MMAP => {
                let desc_size = read_u32(tag, 8).ok_or(short)?;
                if desc_size < EFI_DESCRIPTOR_MIN {
                    return Err(BootInfoError::BadMapEntrySize { size: desc_size });
                }
                efi_mmap = Some((tag, desc_size));
            }
            _ => {}
        }
        // Tags start on 8-byte boundaries.
        offset = offset
            .checked_add((size as usize).next_multiple_of(8))
            .ok_or(truncated)?;
    }
    boot.rsdp = rsdp(&mut boot, rsdp_old, rsdp_new);

    let map = if let Some((tag, entry_size)) = mmap {
        let entries = map_entries(&mut boot, tag, entry_size)?;
        let size = entry_size as usize;
        MapSource::E820 { entries, size }
    } else if let Some((tag, desc_size)) = efi_mmap {
        let entries = map_entries(&mut boot, tag, desc_size)?;
        let size = desc_size as usize;
        MapSource::Efi { entries, size }
    } else if let Some((lower_kib, upper_kib)) = meminfo {
        MapSource::Basic {
            lower_kib,
            upper_kib,
        }
    } else {
        return Err(BootInfoError::NoMemoryMap);
    };
    boot.set_memory_map(map);
    Ok(boot)
}

/// An ACPI tag's RSDP copy: its address and what [`rexo_acpi::check_copy`] found valid.
type RsdpTag = Option<(u64, Option<RsdpCopy>)>;

/// The RSDP copy of the ACPI tag `tag` at `offset` in the block at `info`, checked.
fn rsdp_tag(info: u64, offset: usize, tag: &[u8]) -> RsdpTag {
    let address = info.saturating_add(offset as u64 + 8);
    Some((address, rexo_acpi::check_copy(tag.get(8..)?)))
}

/// The RSDP of the ACPI tags read: tag 15's if it holds a valid RSDP whole, else tag 14's
/// (its ACPI 1.0 part: all it copies, whatever the revision byte says), else tag 15's ACPI
/// 1.0 part (its revision 2 part broken); none without a valid one. The first tag passed
/// over as not valid is warned of (tag 14 only when no whole tag 15 is there).
fn rsdp(boot: &mut BootInfo<'_>, old: RsdpTag, new: RsdpTag) -> Option<Rsdp> {
    let whole = new.filter(|&(_, copy)| copy == Some(RsdpCopy::Whole));
    let bad_new = new.is_some() && whole.is_none();
    let bad_old = whole.is_none() && old.is_some_and(|(_, copy)| copy.is_none());
    if let Some(tag_type) = [(bad_new, TAG_ACPI_NEW), (bad_old, TAG_ACPI_OLD)]
        .into_iter()
        .find_map(|(bad, tag_type)| bad.then_some(tag_type))
    {
        boot.warn(BootInfoWarning::BadRsdpCopy { tag_type });
    }
    let whole = whole.map(|(address, _)| Rsdp {
        address,
        acpi1_only: false,
    });
    let acpi1_part = [old, new]
        .into_iter()
        .flatten()
        .find(|(_, copy)| copy.is_some());
    whole.or(acpi1_part.map(|(address, _)| Rsdp {
        address,
        acpi1_only: true,
    }))
}

/// The entries of the memory map tag `tag` (type 6 or 17), of `entry_size` bytes each (not
/// 0): a body without one whole entry is refused (the map would be empty), and part of an
/// entry at its end is dropped with a warning.
fn map_entries<'t>(
    boot: &mut BootInfo<'_>,
    tag: &'t [u8],
    entry_size: u32,
) -> Result<&'t [u8], BootInfoError> {
    let body = tag.get(MAP_TAG_HEAD..).unwrap_or(&[]);
    let size = entry_size as usize;
    let whole = body.len() - body.len() % size;
    // One test on the normal path for both problems.
    if whole == 0 || whole != body.len() {
        let tag_type = read_u32(tag, 0).unwrap_or(0);
        // The body is inside the information block, whose size is a u32.
        let body_size = u32::try_from(body.len()).unwrap_or(u32::MAX);
        if whole == 0 {
            return Err(BootInfoError::MapTagWithoutEntries {
                tag_type,
                entry_size,
                body_size,
            });
        }
        boot.warn(BootInfoWarning::PartialMapEntry {
            tag_type,
            entry_size,
            body_size,
        });
    }
    Ok(body.get(..whole).unwrap_or(&[]))
}

/// The framebuffer tag: `Some(None)` for indexed or EGA text modes, `None` if too short.
fn framebuffer(tag: &[u8]) -> Option<Option<Framebuffer>> {
    let fb_type = read_u8(tag, 29)?;
    let (addr, pitch, width, height, bpp) = (
        read_u64(tag, 8)?,
        read_u32(tag, 16)?,
        read_u32(tag, 20)?,
        read_u32(tag, 24)?,
        read_u8(tag, 28)?,
    );
    if fb_type != FB_TYPE_RGB {
        return Some(None);
    }
    // RGB color info follows the common part (which ends with a 16-bit reserved field).
    let c = |i: usize| read_u8(tag, 32 + i);
    Some(Some(Framebuffer {
        addr,
        pitch,
        width,
        height,
        bpp,
        red_shift: c(0)?,
        red_bits: c(1)?,
        green_shift: c(2)?,
        green_bits: c(3)?,
        blue_shift: c(4)?,
        blue_bits: c(5)?,
    }))
}
