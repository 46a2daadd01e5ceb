//! The machine's physical frame allocator (`rexo-memmap`) behind one lock. It hands out
//! owned [`FrameRange`]s; it never hands out the kernel image, boot modules, the boot
//! loader's structures, ACPI tables, low memory or page tables.

use rexo_memmap::{AllocError, FRAME_SIZE, FrameAllocator, FrameRange, MemoryMap};
use spin::Mutex;

static ALLOCATOR: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::empty());

/// Starts the allocator over the usable regions of `map`, less `reserved`.
pub fn init(map: &MemoryMap, reserved: &[core::ops::Range<u64>]) -> Result<(), AllocError> {
    *ALLOCATOR.lock() = FrameAllocator::new(map, reserved)?;
    Ok(())
}

/// Allocates `bytes` (rounded up to whole frames) aligned to `align`.
pub fn allocate(bytes: u64, align: u64) -> Result<FrameRange, AllocError> {
    ALLOCATOR.lock().allocate(bytes, align)
}

/// [`allocate`], refused if it would leave less than `reserve` bytes free.
pub fn allocate_leaving(bytes: u64, align: u64, reserve: u64) -> Result<FrameRange, AllocError> {
    ALLOCATOR.lock().allocate_leaving(bytes, align, reserve)
}

/// Returns frames to the allocator.
pub fn free(frames: FrameRange) {
    ALLOCATOR.lock().free(frames);
}

/// Whether no code holds the allocator's lock right now (so code that interrupted this
/// core may take or free frames without waiting for itself).
pub fn is_free() -> bool {
    !ALLOCATOR.is_locked()
}

/// Bytes still free.
pub fn free_bytes() -> u64 {
    ALLOCATOR.lock().free_bytes()
}

/// Takes one frame for a page table, for good (page tables are never freed), and returns
/// its address.
pub fn allocate_page_table() -> Option<u64> {
    let frame = ALLOCATOR.lock().allocate(FRAME_SIZE, FRAME_SIZE).ok()?;
    Some(frame.leak().start)
}
