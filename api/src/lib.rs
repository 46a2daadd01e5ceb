//! The Rexo kernel API: what an app may ask of the kernel. Apps are
//! `#![forbid(unsafe_code)]` crates with one entry point, `fn main(kernel: &dyn Kernel)`;
//! the kernel passes its implementation of [`Kernel`] when it starts the app.
//!
//! This is the foundation's small API (cores, time, logging, the work queue); the
//! exokernel issue grows it into capabilities over memory, devices and time.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::sync::Arc;
use core::fmt;

/// A task that runs once on each core it is sent to; it gets the kernel and the core's index.
pub type CoreTask = Arc<dyn Fn(&dyn Kernel, usize) + Send + Sync>;

/// Why the kernel could not do what an app asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The work queue is full; nothing was submitted.
    QueueFull,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::QueueFull => f.write_str("the work queue is full"),
        }
    }
}

/// The kernel as an app sees it.
pub trait Kernel: Sync {
    /// How many cores run the work loop.
    fn cores(&self) -> usize;
    /// The index of the core running the caller (0 is the boot core).
    fn core_index(&self) -> usize;
    /// Nanoseconds since boot (monotonic).
    fn now_ns(&self) -> u64;
    /// Writes one log line (with the time and core number) to the consoles.
    fn log(&self, line: fmt::Arguments<'_>);
    /// Runs `task` once on every core and returns when all have finished; the calling core
    /// runs queued work while it waits.
    fn run_on_every_core(&self, task: CoreTask) -> Result<(), ApiError>;
}
