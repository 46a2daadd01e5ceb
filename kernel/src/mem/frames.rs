//! The machine's physical frame allocator (`rexo-memmap`) behind one lock. It hands out
//! owned [`FrameRange`]s; it never hands out the kernel image, boot modules, the boot
//! loader's structures, ACPI tables, low memory or page tables.

use rexo_memmap::{AllocError, FRAME_SIZE, FrameAllocator, FrameRange, MemoryMap};
use spin::Mutex;

static ALLOCATOR: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::empty());
/// Freed frames the allocator's full free list had no room for, given back again at every
/// free it takes, so that none is lost ([`waiting_bytes`]).
static WAITING: Mutex<alloc::vec::Vec<FrameRange>> = Mutex::new(alloc::vec::Vec::new());

/// Starts the allocator over the usable regions of `map`, less `reserved`.
pub fn init(map: &MemoryMap, reserved: &[core::ops::Range<u64>]) -> Result<(), AllocError> {
    ALLOCATOR.lock().fill(map, reserved)
}

/// Allocates `bytes` (rounded up to whole frames) aligned to `align`.
pub fn allocate(bytes: u64, align: u64) -> Result<FrameRange, AllocError> {
    ALLOCATOR.lock().allocate(bytes, align)
}

/// [`allocate`], refused if it would leave less than `reserve` bytes free.
pub fn allocate_leaving(bytes: u64, align: u64, reserve: u64) -> Result<FrameRange, AllocError> {
    ALLOCATOR.lock().allocate_leaving(bytes, align, reserve)
}

/// Returns frames to the allocator; those its full free list cannot take wait (logged),
/// tried again after a free it takes (the list just refused one, so not after that).
pub fn free(frames: FrameRange) {
    let refused = ALLOCATOR.lock().try_free(frames).err();
    let mut waiting = WAITING.lock();
    if let Some(frames) = refused {
        log::warn!(
            "frames: free list full, {} KiB wait for room",
            frames.len() >> 10
        );
        waiting.push(frames); // the heap may grow: the allocator is not held
    } else if !waiting.is_empty() {
        ALLOCATOR.lock().free_waiting(&mut waiting);
    }
}

/// Freed bytes waiting for room in the allocator's free list (0 but for fragmentation).
pub fn waiting_bytes() -> u64 {
    WAITING.lock().iter().map(FrameRange::len).sum()
}

/// Whether no code holds the allocator's locks right now (so code that interrupted this
/// core may take or free frames without waiting for itself).
pub fn is_free() -> bool {
    !ALLOCATOR.is_locked() && !WAITING.is_locked()
}

/// Bytes still free.
pub fn free_bytes() -> u64 {
    ALLOCATOR.lock().free_bytes()
}

/// Takes one frame for a page table, for good (page tables are never freed), and returns
/// its address: inside the map in use, so that it can be zeroed through it (until the
/// kernel's own tables are, the boot tables' 4 GiB: a fault then is a triple fault).
pub fn allocate_page_table() -> Option<u64> {
    let top = crate::arch::paging::mapped_top();
    let frame = ALLOCATOR.lock().allocate_below(FRAME_SIZE, FRAME_SIZE, top);
    Some(frame.ok()?.leak().start)
}
