//! The physical memory map and the physical frame allocator.
//!
//! [`MemoryMap`] collects the firmware's regions (E820, UEFI or Multiboot2 map) in whatever
//! order and shape they come, and [`MemoryMap::normalize`] turns them into a sorted list of
//! disjoint regions in which the stricter kind wins wherever entries overlap.
//! [`FrameAllocator`] hands out [`FrameRange`]s: owned runs of 4 KiB frames taken from the
//! usable memory minus every range the kernel must keep (its image, boot modules, ...).
//!
//! Neither type allocates: both are fixed-capacity arrays, so they work before there is a heap.
//! Frames the allocator's full free list cannot take back are handed back to the caller,
//! which keeps them ([`FrameAllocator::free_waiting`]).
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

mod frames;
mod map;
mod reserved;

pub use frames::{AllocError, FrameAllocator, FrameRange, PageSize};
pub use map::{Contents, MapError, MemoryMap, NotAModule, NotDevice, Region, RegionKind};
pub use reserved::{ReservedProblem, ReservedRanges};

/// The size of one physical frame (and of the smallest page), in bytes.
pub const FRAME_SIZE: u64 = 4096;

/// Usable RAM ([`MemoryMap::usable_bytes`]) below which the kernel refuses to boot, in
/// MiB; `cargo xtask run` refuses a `--mem` below it plus the first MiB's firmware areas.
pub const MIN_USABLE_MIB: u64 = 8;

/// `addr` rounded down to a multiple of `align` (a power of two).
const fn align_down(addr: u64, align: u64) -> u64 {
    addr & !(align - 1)
}

/// `addr` rounded up to a multiple of `align` (a power of two); `None` if that overflows.
const fn align_up(addr: u64, align: u64) -> Option<u64> {
    match addr.checked_add(align - 1) {
        Some(sum) => Some(align_down(sum, align)),
        None => None,
    }
}
