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
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::QueueFull => f.write_str("the work queue is full"),
            ApiError::NoSuchApp => f.write_str("no app of that name in this image"),
            ApiError::PowerOffFailed(why) => write!(f, "cannot power off: {why}"),
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
}
