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
use alloc::vec::Vec;
use core::fmt;

pub use rexo_captable::{Cap, CapError, EntryInfo as CapInfo};

/// A capability over memory the kernel granted to the caller: the only way to reach that
/// memory. It is minted by the kernel's capability table (a [`Cap`] cannot be built
/// anywhere else), is not `Clone`, and stops working once returned or revoked.
#[derive(Debug)]
pub struct MemoryCap(Cap);

impl MemoryCap {
    /// Wraps a capability the kernel minted (apps cannot make a [`Cap`]).
    pub fn new(cap: Cap) -> Self {
        Self(cap)
    }

    /// The underlying capability.
    pub fn cap(&self) -> &Cap {
        &self.0
    }

    /// Unwraps the capability (to give it back).
    pub fn into_cap(self) -> Cap {
        self.0
    }
}

/// An app's entry point: it gets the kernel and returns when the app is done.
pub type AppMain = fn(&dyn Kernel) -> Result<(), ApiError>;

/// A task that runs once on each core it is sent to; it gets the kernel and the core's index.
pub type CoreTask = Arc<dyn Fn(&dyn Kernel, usize) + Send + Sync>;

/// Why the kernel could not do what an app asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The work queue is full; nothing was submitted.
    QueueFull,
    /// No app of that name is linked into the image.
    NoSuchApp,
    /// The machine could not be powered off, for this reason.
    PowerOffFailed(&'static str),
    /// The capability was refused (revoked, not the caller's, lacking a right, out of
    /// range...).
    Refused(CapError),
    /// No memory left to grant.
    OutOfMemory,
    /// An app ended with this failure code (C apps: a non-zero return from `main`).
    AppFailed(i32),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::QueueFull => f.write_str("the work queue is full"),
            ApiError::NoSuchApp => f.write_str("no app of that name in this image"),
            ApiError::PowerOffFailed(why) => write!(f, "cannot power off: {why}"),
            ApiError::Refused(error) => write!(f, "capability refused: {error}"),
            ApiError::OutOfMemory => f.write_str("no memory left"),
            ApiError::AppFailed(code) => write!(f, "the app failed with code {code}"),
        }
    }
}

/// An app linked into the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppInfo {
    /// The name `app=` and the monitor's `run` select it by.
    pub name: &'static str,
    /// One line on what it does.
    pub about: &'static str,
}

/// The machine's memory, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Usable RAM in the boot memory map.
    pub usable: u64,
    /// RAM the frame allocator has not handed out.
    pub free: u64,
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
    /// The next byte of console input (serial line or PS/2 keyboard), without waiting.
    /// Keys arrive as a terminal sends them: `\r` for Enter, 0x7F for Backspace, `ESC [ A`
    /// for the up arrow.
    fn read_byte(&self) -> Option<u8>;
    /// Writes text to the consoles as it is (no log prefix, no newline added).
    fn write_str(&self, text: &str);
    /// Halts the calling core for about `ns` nanoseconds (woken early by an interrupt).
    fn sleep_ns(&self, ns: u64);
    /// The machine's memory.
    fn memory(&self) -> MemoryInfo;
    /// The apps linked into the image.
    fn apps(&self) -> Vec<AppInfo>;
    /// Runs the app `name` on the calling core and returns when it does.
    fn run_app(&self, name: &str) -> Result<(), ApiError>;
    /// Reboots the machine.
    fn reboot(&self) -> !;
    /// Powers the machine off; returns only if that is impossible, saying why.
    fn power_off(&self) -> ApiError;
    /// Grants the caller `bytes` of zeroed memory (whole 4 KiB frames) as a capability.
    fn allocate_memory(&self, bytes: u64) -> Result<MemoryCap, ApiError>;
    /// Copies `data` into the memory `cap` names, at `offset` (needs the write right).
    fn write_memory(&self, cap: &MemoryCap, offset: u64, data: &[u8]) -> Result<(), ApiError>;
    /// Copies from the memory `cap` names, at `offset`, into `buffer` (needs the read right).
    fn read_memory(&self, cap: &MemoryCap, offset: u64, buffer: &mut [u8]) -> Result<(), ApiError>;
    /// Gives the memory back; the capability (and all derived from it) stops working.
    fn return_memory(&self, cap: MemoryCap) -> Result<(), ApiError>;
    /// Every live capability in the machine: who holds what (the monitor's `caps`).
    fn capabilities(&self) -> Vec<CapInfo>;
}
