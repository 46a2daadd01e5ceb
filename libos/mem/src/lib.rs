//! The memory and time library OS: the first library OS of Rexo's exokernel, linked into
//! an app to manage the app's own frames and time.
//!
//! - [`Heap`]: an allocator over memory capabilities the app holds. It grows by arenas
//!   of [`CHUNK`] bytes granted by the kernel (within the app's quota; a refusal comes
//!   back as [`HeapError::Kernel`], never a panic) and gives back an arena that is
//!   wholly free. Allocations are [`Handle`]s, not addresses; their bytes are read and
//!   written in place through the arena's zero-copy view. The heap answers the kernel's
//!   revocation requests ([`Heap::poll_revocations`]) by moving allocations out of the
//!   arena asked for and giving it back, so an app that polls is never killed.
//! - [`Deadlines`] over a [`Clock`] ([`KernelClock`]: `now_ns` and `sleep_ns`): items due
//!   at times, the earliest first.
//!
//! The placement logic ([`space`]) is pure: host tests drive it, and the heap through a
//! stand-in for the kernel ([`Frames`]).
//!
//! ```no_run
//! # use rexo_api::{ApiError, Kernel};
//! # use rexo_mem::{Heap, HeapError};
//! fn app(kernel: &Kernel) -> Result<(), HeapError> {
//!     let mut heap = Heap::new(kernel);
//!     let greeting = heap.allocate(5)?;
//!     heap.write(greeting, 0, b"hello")?;
//!     let mut back = [0u8; 5];
//!     heap.read(greeting, 0, &mut back)?;
//!     for answer in heap.poll_revocations() {
//!         answer.returned?; // now and then, before the kernel's deadlines
//!     }
//!     heap.free(greeting)?;
//!     assert_eq!(heap.free(greeting), Err(HeapError::Freed));
//!     heap.trim()?;
//!     Ok(())
//! }
//! ```
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod heap;
pub mod space;
mod time;

pub use heap::{
    Answer, CHUNK, Frames, Handle, Heap, HeapError, KernelFrames, MAX_ALIGN, MAX_ALLOCATION, Stats,
};
pub use time::{Clock, Deadlines, KernelClock, TimerId, sleep_until};

#[cfg(test)]
mod tests;
