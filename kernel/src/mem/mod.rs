//! Physical memory: the frame allocator over the boot memory map, the kernel heap,
//! guarded stacks, and the identity-mapped view of physical memory.

pub mod frames;
pub mod heap;
pub mod phys;
pub mod stacks;

use rexo_memmap::{MapError, MemoryMap, Region};

/// The memory map's storage, filled in place (24 KiB, too large for the boot stack); all
/// zeros until then (limit 0), so in `.bss`, not the image.
static MAP_STORAGE: spin::Mutex<MemoryMap> = spin::Mutex::new(MemoryMap::below(0));
static MEMORY_MAP: spin::Once<&'static MemoryMap> = spin::Once::new();

/// Records the machine's memory map from `regions` below `limit`, normalised
/// ([`MemoryMap::fill`]): once, at boot.
pub fn set_memory_map(
    limit: u64,
    regions: impl IntoIterator<Item = Region>,
) -> Result<&'static MemoryMap, MapError> {
    let storage = MAP_STORAGE.try_lock().expect("the memory map is set once");
    let map = spin::MutexGuard::leak(storage);
    map.fill(limit, regions)?;
    Ok(MEMORY_MAP.call_once(|| map))
}

/// The machine's normalised memory map, once known.
pub fn memory_map() -> Option<&'static MemoryMap> {
    MEMORY_MAP.get().copied()
}
