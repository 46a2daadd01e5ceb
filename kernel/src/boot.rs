//! What the boot loader handed over (through PVH or Multiboot2), turned into the kernel's
//! own records: the memory map, the command line (copied: low memory is reused for the
//! AP trampoline), modules, the RSDP and the framebuffer.

use rexo_bootinfo::BootInfo;
use rexo_memmap::{MemoryMap, Region};

use crate::arch::entry::{PROTOCOL_MULTIBOOT2, PROTOCOL_PVH};
use crate::mem::phys::IdentityMemory;

static MEMORY: IdentityMemory = IdentityMemory;

/// The most command-line bytes the kernel keeps.
const CMDLINE_CAPACITY: usize = 4096;
static CMDLINE: spin::Once<([u8; CMDLINE_CAPACITY], usize)> = spin::Once::new();

/// Reads the boot information of whichever protocol started the kernel.
pub fn read(protocol: u32, info: u32, magic: u32) -> Result<BootInfo<'static>, BootError> {
    let parsed = match protocol {
        PROTOCOL_PVH => rexo_bootinfo::parse_pvh(&MEMORY, u64::from(info)),
        PROTOCOL_MULTIBOOT2 if magic == rexo_bootinfo::MULTIBOOT2_MAGIC => {
            rexo_bootinfo::parse_multiboot2(&MEMORY, u64::from(info))
        }
        PROTOCOL_MULTIBOOT2 => return Err(BootError::BadMultiboot2Magic(magic)),
        _ => return Err(BootError::UnknownProtocol(protocol)),
    };
    parsed.map_err(BootError::Info)
}

/// Why the boot information could not be used.
#[derive(Debug)]
pub enum BootError {
    /// The trampoline recorded a protocol it does not know (a kernel bug).
    UnknownProtocol(u32),
    /// Entered through the Multiboot2 entry without the Multiboot2 magic in EAX.
    BadMultiboot2Magic(u32),
    /// The boot structures are malformed.
    Info(rexo_bootinfo::BootInfoError),
    /// The command line is longer than the kernel keeps.
    CommandLineTooLong(usize),
    /// The memory map has more regions than the kernel keeps (it names how many).
    MemoryMap(rexo_memmap::MapError),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::UnknownProtocol(p) => write!(f, "unknown boot protocol {p}"),
            BootError::BadMultiboot2Magic(m) => write!(
                f,
                "entered through Multiboot2 without its magic (eax={m:#x})"
            ),
            BootError::Info(e) => write!(f, "bad boot information: {e}"),
            BootError::CommandLineTooLong(n) => write!(
                f,
                "the command line has {n} bytes; at most {CMDLINE_CAPACITY} are supported"
            ),
            BootError::MemoryMap(e) => write!(f, "memory map: {e}"),
        }
    }
}

/// Copies the command line into kernel memory and returns it.
pub fn keep_cmdline(cmdline: &str) -> Result<&'static str, BootError> {
    if cmdline.len() > CMDLINE_CAPACITY {
        return Err(BootError::CommandLineTooLong(cmdline.len()));
    }
    let (bytes, len) = CMDLINE.call_once(|| {
        let mut bytes = [0; CMDLINE_CAPACITY];
        bytes[..cmdline.len()].copy_from_slice(cmdline.as_bytes());
        (bytes, cmdline.len())
    });
    // The bytes were copied from a `&str`, so they are UTF-8.
    Ok(core::str::from_utf8(&bytes[..*len]).unwrap_or(""))
}

/// The loader's memory map, normalised: sorted, merged, overlaps resolved in favour of
/// the stricter kind (reserved ranges inside RAM stay reserved), cut at the CPU's
/// physical address width of `phys_bits` (taken as at least 36: 64 GiB) or the identity
/// map's reach, and kept for the kernel's life; what the boot information's parse cut is
/// warned of here too.
pub fn memory_map(boot: &BootInfo<'_>, phys_bits: u8) -> Result<&'static MemoryMap, BootError> {
    let limit = 1 << phys_bits.clamp(36, crate::arch::paging::IDENTITY_MAP_BITS);
    let regions = boot.memory_map().map(Region::from);
    let map = crate::mem::set_memory_map(limit, regions).map_err(BootError::MemoryMap)?;
    // One test on the normal path for what the parse and the map cut.
    if map.was_cut() | boot.warning.is_some() {
        if let Some(warning) = boot.warning {
            log::warn!("boot information: {warning}");
        }
        if map.was_cut() {
            log::warn!("memory map: past {limit:#x}, beyond the CPU's addresses: ignored");
        }
    }
    Ok(map)
}
