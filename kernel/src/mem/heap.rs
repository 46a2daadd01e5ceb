//! The kernel heap: talc over frames taken from the frame allocator at boot.

#![allow(unsafe_code)] // claiming raw memory for the allocator

use talc::TalcLock;
use talc::source::Manual;

#[global_allocator]
static HEAP: TalcLock<spin::Mutex<()>, Manual> = TalcLock::new(Manual);

/// The heap's size for a machine with `usable` bytes of RAM: an eighth, between 1 MiB and
/// 64 MiB (apps get their memory as frames, not from the kernel heap).
pub fn size_for(usable: u64) -> u64 {
    (usable / 8)
        .clamp(1 << 20, 64 << 20)
        .next_multiple_of(2 << 20)
        .min((usable / 2) & !0xFFF)
}

/// Gives the heap `bytes` of frames. Errors if the frames cannot be had.
pub fn init(bytes: u64) -> Result<(), rexo_memmap::AllocError> {
    let frames = super::frames::allocate(bytes, 2 << 20)
        .or_else(|_| super::frames::allocate(bytes, 4096))?;
    // The heap owns these frames for the life of the machine.
    let range = frames.leak();
    let (start, len) = (range.start, range.end - range.start);
    // SAFETY: the frames are identity-mapped RAM that the allocator handed out to us
    // alone (and we never return), so talc may use them exclusively.
    let claimed = unsafe { HEAP.lock().claim(start as *mut u8, len as usize) };
    claimed
        .map(|_| ())
        .ok_or(rexo_memmap::AllocError::OutOfMemory { requested: bytes })
}
