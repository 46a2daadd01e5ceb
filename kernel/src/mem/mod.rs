//! Physical memory: the frame allocator over the boot memory map, the kernel heap,
//! guarded stacks, and the identity-mapped view of physical memory.

pub mod frames;
pub mod heap;
pub mod phys;
pub mod stacks;

use rexo_memmap::MemoryMap;

static MEMORY_MAP: spin::Once<MemoryMap> = spin::Once::new();

/// Records the machine's normalised memory map (once, at boot).
pub fn set_memory_map(map: MemoryMap) -> &'static MemoryMap {
    MEMORY_MAP.call_once(|| map)
}

/// The machine's normalised memory map, once known.
pub fn memory_map() -> Option<&'static MemoryMap> {
    MEMORY_MAP.get()
}
