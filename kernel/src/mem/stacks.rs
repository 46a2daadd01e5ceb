//! Kernel stacks with a guard page under each: a stack overflow touches an unmapped page
//! and becomes a double fault with a report, instead of silently corrupting memory.

use crate::arch::paging;
use crate::arch::percpu::StackBounds;

const PAGE: u64 = 4096;

/// Why a stack could not be made.
#[derive(Debug)]
pub enum StackError {
    /// No frames left.
    Frames(rexo_memmap::AllocError),
    /// The guard page could not be unmapped.
    Paging(paging::PagingError),
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StackError::Frames(e) => write!(f, "no memory for a stack: {e}"),
            StackError::Paging(e) => write!(f, "cannot place a stack guard page: {e}"),
        }
    }
}

/// Allocates a stack of `bytes` (rounded up to pages) with an unmapped guard page below
/// it. Stacks live for the life of the machine (each belongs to a core).
pub fn allocate(bytes: u64) -> Result<StackBounds, StackError> {
    let mut stack = [StackBounds::default()];
    allocate_into(bytes, &mut stack)?;
    Ok(stack[0])
}

/// Allocates `N` stacks of `bytes` each, every one with its own guard page, and returns
/// their bounds (the guard pages lie between them: no stack's bounds include one).
pub fn allocate_many<const N: usize>(bytes: u64) -> Result<[StackBounds; N], StackError> {
    let mut stacks = [StackBounds::default(); N];
    allocate_into(bytes, &mut stacks)?;
    Ok(stacks)
}

/// Fills `stacks` with the bounds of as many stacks of `bytes` (rounded up to pages), in
/// one run of frames, each above a guard page of its own. Not generic, so that every
/// caller shares one copy of the loop (fewer blocks for an emulator to translate at boot).
fn allocate_into(bytes: u64, stacks: &mut [StackBounds]) -> Result<(), StackError> {
    let bytes = bytes.next_multiple_of(PAGE);
    let frames = super::frames::allocate((bytes + PAGE) * stacks.len() as u64, PAGE)
        .map_err(StackError::Frames)?;
    // The core owns its stacks forever; the guard frames stay allocated but unmapped.
    let mut guard = frames.leak().start;
    for stack in stacks {
        paging::unmap_page(guard).map_err(StackError::Paging)?;
        *stack = StackBounds {
            bottom: guard + PAGE,
            top: guard + PAGE + bytes,
        };
        guard += bytes + PAGE;
    }
    Ok(())
}
