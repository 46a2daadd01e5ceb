//! The kernel heap: talc over frames from the frame allocator, a small start at boot
//! and more 512 KiB at a time when it runs out (so an idle machine holds little).
//!
//! Every app's `Vec`s and `Box`es come from this heap too. Growth for app code (this core
//! inside an abort point, not in a kernel section) is bounded: counted per owner against
//! the run's memory quota ([`APP_GROWTH`], cleared as the run ends), and never taken
//! from the kernel's reserve (`caps::KERNEL_RESERVE`), so that the app's allocation fails
//! (a `try_reserve` error, or a panic that ends the app alone) before a kernel section's
//! can. Growth in a kernel section is the kernel's, uncharged, the reserve its own: that
//! includes the registry's and the drivers' code an app's device call reaches (its own
//! closures there run under an abort point of their own, charged). The count is of the
//! growth a run caused, not of what it holds: a free gives nothing back to it, and a
//! `Vec` grown by doubling (a `realloc` that cannot grow its block in place allocates,
//! copies and frees) holds its old and new blocks at once, so its growth can reach 1.5
//! to 2 times its final size; an app that frees a large buffer and takes it again is
//! charged again if other code took the room meanwhile (docs/api.md says how to size a
//! quota). The heap never gives frames back: what an app's growth took stays in the heap
//! for every later allocation, and what an app ended mid-way held there is leaked. App
//! code (apps run on the core's kernel stack) with less than [`STACK_ROOM`] of it left is
//! refused before the heap's lock is taken (an allocation fails; a free panics, which
//! ends the app), so that its stack never runs out, ending it, with the lock held for
//! good (a kernel section refuses it likewise, ending the app as a stack overflow:
//! `arch::abort::kernel_section`).

#![allow(unsafe_code)] // claiming raw memory for the allocator

use core::alloc::{GlobalAlloc, Layout};

use talc::TalcLock;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;

use rexo_memledger::HeapGrowth;

/// How much the heap grows by at least (and its start at boot).
const GROWTH: u64 = 512 << 10;

/// The heap's source of memory: frames from the frame allocator, taken when talc runs out.
#[derive(Debug)]
pub struct Frames;

/// Per owner, the heap growth its run's own code caused (cleared by `apps` as the run ends).
pub static APP_GROWTH: HeapGrowth<{ crate::caps::OWNERS }> = HeapGrowth::new();

// SAFETY: `acquire` uses only the frame allocator (its own lock, no heap allocation), this
// core's `apps::current` lock (a copy out, no allocation), lock-free counters, and talc's
// `claim` on the frames it got, never the global allocator.
unsafe impl Source for Frames {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let bytes = (layout.size() as u64 + layout.align() as u64 + 4096).next_multiple_of(GROWTH);
        // Code in an abort point (an app's): charged to the run `apps::current` names,
        // within its quota, leaving the kernel's reserve. That takes this core's
        // `apps::current` lock, held elsewhere only to copy the run in or out, never
        // around an allocation; interrupt handlers run in kernel sections, never here.
        let app = crate::arch::abort::can_abort();
        let run = app.then(crate::apps::current).flatten();
        let left = if app { crate::caps::KERNEL_RESERVE } else { 0 };
        let take = || super::frames::allocate_leaving(bytes, 4096, left).ok();
        let frames = APP_GROWTH.charged(run.map(|r| (r.owner, r.quota)), bytes, take);
        // The heap owns these frames for the life of the machine.
        let range = frames.ok_or(())?.leak();
        // SAFETY: identity-mapped RAM the frame allocator handed to us alone, never returned.
        let claimed =
            unsafe { talc.claim(range.start as *mut u8, (range.end - range.start) as usize) };
        claimed.map(|_| ()).ok_or(())
    }
}

/// The stack app code must have left to use the heap or to enter a kernel section
/// (`arch::abort::kernel_section`): talc's deepest call (a growth included), or the
/// section's, with room to spare, and enough for the panic that ends the app.
const STACK_ROOM: u64 = 16 << 10;

/// Whether this core runs code inside an abort point with less than [`STACK_ROOM`] of its
/// kernel stack left.
pub(crate) fn stack_short() -> bool {
    // Outside an abort point (almost every call) the per-core data is never read.
    crate::arch::abort::can_abort() && {
        let bottom = crate::arch::percpu::current().stack().bottom;
        (bottom..bottom + STACK_ROOM).contains(&(&raw const bottom as u64))
    }
}

/// Talc behind its lock, refusing code short of stack ([`stack_short`]).
struct Heap(TalcLock<spin::Mutex<()>, Frames>);

// SAFETY: each call is talc's, unchanged, or refused before it (a null pointer, which the
// contract allows; a panic instead of a free, the block left allocated). `realloc` is
// talc's (in place where it can), refused as an allocation is: one check covers the call.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let refused = stack_short().then(core::ptr::null_mut);
        // SAFETY: the caller's promises, passed on to talc.
        refused.unwrap_or_else(|| unsafe { self.0.alloc(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        assert!(!stack_short(), "too little stack left to free memory");
        // SAFETY: the caller's promises, passed on to talc.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let refused = stack_short().then(core::ptr::null_mut);
        // SAFETY: the caller's promises, passed on to talc.
        refused.unwrap_or_else(|| unsafe { self.0.realloc(ptr, layout, new_size) })
    }
}

#[global_allocator]
static HEAP: Heap = Heap(TalcLock::new(Frames));

/// Whether no code holds the heap's lock right now (so code that interrupted this core
/// may allocate without waiting for itself).
pub fn is_free() -> bool {
    HEAP.0.try_lock().is_some()
}

/// Bytes the heap has handed out and not had back (the kernel tests' leak checks).
pub fn allocated_bytes() -> usize {
    HEAP.0.lock().counters().allocated_bytes
}

/// The heap's size at boot for a machine with `usable` bytes of RAM: 512 KiB (it grows on
/// demand; apps get their memory as frames, not from the kernel heap), at most half the RAM.
pub fn size_for(usable: u64) -> u64 {
    GROWTH.min((usable / 2) & !0xFFF)
}

/// Gives the heap `bytes` of frames. Errors if the frames cannot be had.
pub fn init(bytes: u64) -> Result<(), rexo_memmap::AllocError> {
    let frames = super::frames::allocate(bytes, 4096)?;
    // The heap owns these frames for the life of the machine.
    let range = frames.leak();
    let (start, len) = (range.start, range.end - range.start);
    // SAFETY: the frames are identity-mapped RAM that the allocator handed out to us
    // alone (and we never return), so talc may use them exclusively.
    let claimed = unsafe { HEAP.0.lock().claim(start as *mut u8, len as usize) };
    claimed
        .map(|_| ())
        .ok_or(rexo_memmap::AllocError::OutOfMemory { requested: bytes })
}
