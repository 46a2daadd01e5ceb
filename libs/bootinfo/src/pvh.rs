//! PVH: `struct hvm_start_info` and the tables it points at.

use rexo_physmem::{PhysMemory, read_u32, read_u64};

use crate::{
    BootInfo, BootInfoError, E820_ENTRY, MAX_MODULES, MapSource, Module, PAGE_ZERO_END, PVH_MAGIC,
    Protocol, Rsdp, StringKind, Structure, c_str_at,
};

/// Size of `hvm_start_info` version 0 (no memory map fields).
const START_INFO_V0: usize = 40;
/// Size of `hvm_start_info` version 1.
const START_INFO_V1: usize = 56;
/// Size of one `hvm_modlist_entry` (paddr, size, cmdline_paddr, reserved).
const MODLIST_ENTRY: usize = 32;

/// Reads the PVH `hvm_start_info` at `start_info` (the EBX value at the PVH entry).
pub fn parse_pvh<'a>(
    mem: &'a impl PhysMemory,
    start_info: u64,
) -> Result<BootInfo<'a>, BootInfoError> {
    let unreadable = |what, address| BootInfoError::Unreadable { what, address };
    let si = read_exact(mem, start_info, START_INFO_V0)
        .ok_or(unreadable(Structure::StartInfo, start_info))?;
    let field32 = |o| read_u32(si, o).unwrap_or(0);
    let field64 = |o| read_u64(si, o).unwrap_or(0);
    let magic = field32(0);
    if magic != PVH_MAGIC {
        return Err(BootInfoError::BadMagic { found: magic });
    }
    let version = field32(4);
    let nr_modules = field32(12);
    let modlist = field64(16);
    let cmdline = field64(24);
    let rsdp = field64(32);

    let mut info = BootInfo::new(Protocol::Pvh);
    info.rsdp = (rsdp != 0).then_some(Rsdp {
        address: rsdp,
        acpi1_only: false,
    });

    // The memory map (version 1+).
    if version == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    let v1 = read_exact(mem, start_info, START_INFO_V1)
        .ok_or(unreadable(Structure::StartInfo, start_info))?;
    info.push_info_range(start_info, START_INFO_V1 as u64);
    let memmap = read_u64(v1, 40).unwrap_or(0);
    let entries = read_u32(v1, 48).unwrap_or(0);
    if memmap == 0 || entries == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    let map_len = (entries as usize)
        .checked_mul(E820_ENTRY)
        .ok_or(unreadable(Structure::MemoryMap, memmap))?;
    let map = read_exact(mem, memmap, map_len).ok_or(unreadable(Structure::MemoryMap, memmap))?;
    info.push_info_range(memmap, map_len as u64);
    info.set_memory_map(MapSource::E820 {
        entries: map,
        size: E820_ENTRY,
    });

    if cmdline != 0 {
        let (s, size) = c_str_at(mem, cmdline, StringKind::Cmdline)?;
        info.cmdline = s;
        info.push_info_range(cmdline, size);
    }

    if nr_modules != 0 {
        if nr_modules as usize > MAX_MODULES {
            return Err(BootInfoError::TooManyModules { count: nr_modules });
        }
        let list_len = nr_modules as usize * MODLIST_ENTRY;
        // A list in page 0 beside a count: address 0 is readable at boot (the real-mode
        // interrupt table), and its bytes are no module list.
        let list = Some(modlist)
            .filter(|&a| a >= PAGE_ZERO_END)
            .and_then(|a| read_exact(mem, a, list_len))
            .ok_or(unreadable(Structure::ModuleList, modlist))?;
        info.push_info_range(modlist, list_len as u64);
        for (index, e) in list.chunks_exact(MODLIST_ENTRY).enumerate() {
            let bad = BootInfoError::BadModule { index };
            let start = read_u64(e, 0).ok_or(bad)?;
            let end = read_u64(e, 8)
                .and_then(|size| start.checked_add(size))
                .ok_or(bad)?;
            let cmd_addr = read_u64(e, 16).ok_or(bad)?;
            let mut cmdline = "";
            if cmd_addr != 0 {
                let (s, size) = c_str_at(mem, cmd_addr, StringKind::ModuleCmdline(index))?;
                cmdline = s;
                info.push_info_range(cmd_addr, size);
            }
            info.push_module(
                Module {
                    start,
                    end,
                    cmdline,
                },
                nr_modules,
            )?;
        }
    }
    Ok(info)
}

/// Exactly `len` bytes at `phys`.
fn read_exact(mem: &impl PhysMemory, phys: u64, len: usize) -> Option<&[u8]> {
    mem.read(phys, len).filter(|b| b.len() == len)
}
