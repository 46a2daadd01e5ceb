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
    /// The app panicked; it was ended and what it held went back to the kernel.
    Panicked,
    /// The app used a resource the kernel took back at a revocation deadline it missed
    /// (the abort protocol); it was ended and what it held went back to the kernel.
    Repossessed,
    /// The grant would take the app past the memory quota its boot manifest entry gives
    /// it (`apps=NAME:CORES:MEMORY`); returning memory makes room again.
    QuotaExceeded,
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
            ApiError::Panicked => f.write_str("the app panicked and was ended"),
            ApiError::Repossessed => f.write_str(
                "the app used a resource taken back at a revocation deadline it missed, and was ended",
            ),
            ApiError::QuotaExceeded => f.write_str("the app's memory quota is used up"),
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

/// What a PCI base address register decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciBarKind {
    /// I/O ports.
    Io,
    /// Memory below 4 GiB.
    Memory32 {
        /// Reads have no side effects (the device allows prefetching).
        prefetchable: bool,
    },
    /// Memory anywhere (the register and the next one form a 64-bit address).
    Memory64 {
        /// Reads have no side effects (the device allows prefetching).
        prefetchable: bool,
    },
}

/// One base address register of a PCI function, as the firmware programmed it. Sizes
/// are not probed (that needs writing the register); a register whose address is 0
/// (not implemented, or not assigned) is not listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciBar {
    /// Which register: 0..=5 (a 64-bit one also uses the next).
    pub index: u8,
    /// What it decodes.
    pub kind: PciBarKind,
    /// Its base: an I/O port or a physical address.
    pub address: u64,
}

/// One function of a PCI device on segment 0, read from its configuration header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciFunction {
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device_id: u16,
    /// Base class code.
    pub class: u8,
    /// Subclass code.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Header type as read: layout in bits 0..7 (0 device, 1 PCI bridge, 2 CardBus
    /// bridge), bit 7 set on function 0 of a multi-function device.
    pub header_type: u8,
    /// The base address registers in use.
    pub bars: Vec<PciBar>,
}

impl PciFunction {
    /// Decodes the first 64 bytes of a function's configuration space (`header[i]` is
    /// the 32-bit register at offset `4 * i`). Headers of type 0 have six base address
    /// registers, PCI bridges two, CardBus bridges one; an unknown layout has none.
    pub fn from_header(bus: u8, device: u8, function: u8, header: &[u32; 16]) -> Self {
        let [id, _, class, misc, ..] = *header;
        let header_type = (misc >> 16) as u8;
        let bar_count = match header_type & 0x7F {
            0 => 6,
            1 => 2,
            2 => 1,
            _ => 0,
        };
        let registers = &header[4..4 + bar_count];
        let mut bars = Vec::new();
        let mut index = 0;
        while index < registers.len() {
            let low = registers[index];
            let (kind, address, used) = if low & 1 == 1 {
                (PciBarKind::Io, u64::from(low & !3), 1)
            } else {
                let prefetchable = low & 8 != 0;
                let base = u64::from(low & !0xF);
                if (low >> 1) & 3 == 2 {
                    // The high half is the next register; a 64-bit register cannot
                    // start at the last slot, so a header that says so gets 0.
                    let high = registers.get(index + 1).copied().unwrap_or(0);
                    let kind = PciBarKind::Memory64 { prefetchable };
                    (kind, base | u64::from(high) << 32, 2)
                } else {
                    (PciBarKind::Memory32 { prefetchable }, base, 1)
                }
            };
            if address != 0 {
                bars.push(PciBar {
                    index: index as u8,
                    kind,
                    address,
                });
            }
            index += used;
        }
        Self {
            bus,
            device,
            function,
            vendor: id as u16,
            device_id: (id >> 16) as u16,
            class: (class >> 24) as u8,
            subclass: (class >> 16) as u8,
            prog_if: (class >> 8) as u8,
            header_type,
            bars,
        }
    }
}

/// A BareMetal binary the kernel loaded at its link address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedInfo {
    /// Bytes of the binary.
    pub size: u64,
    /// Where it runs from (0xFFFF_8000_0000_0000, BareMetal's link address).
    pub entry: u64,
}

/// Why a BareMetal binary could not be loaded or run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryError {
    /// There is no boot module.
    NoModule,
    /// The module has no bytes.
    Empty,
    /// The module does not fit in the app area.
    TooLarge {
        /// Bytes of the module.
        size: u64,
        /// Bytes of the app area.
        capacity: u64,
    },
    /// The module starts with another format's header (named).
    NotFlat(&'static str),
    /// No memory for the app area, or it could not be mapped.
    NoArea,
    /// Nothing was loaded yet, so there is nothing to run.
    NotLoaded,
}

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinaryError::NoModule => f.write_str(
                "needs a boot module (the app's flat binary: QEMU -initrd FILE), and there is none",
            ),
            BinaryError::Empty => f.write_str("the boot module is empty"),
            BinaryError::TooLarge { size, capacity } => write!(
                f,
                "the boot module is too large: {size} bytes, the app area holds {capacity}"
            ),
            BinaryError::NotFlat(format) => write!(f, "not a flat binary: {format}"),
            BinaryError::NoArea => f.write_str("no memory for the app area (2 MiB at least)"),
            BinaryError::NotLoaded => f.write_str("no BareMetal binary is loaded"),
        }
    }
}

/// The kernel as an app sees it.
pub trait Kernel: Sync {
    /// How many cores the app has: every core that runs the work loop, or the cores its
    /// boot manifest entry gives it (`apps=NAME:CORES:MEMORY`).
    fn cores(&self) -> usize;
    /// The index of the core running the caller (0 is the boot core).
    fn core_index(&self) -> usize;
    /// Nanoseconds since boot (monotonic).
    fn now_ns(&self) -> u64;
    /// Writes one log line (with the time and core number) to the consoles.
    fn log(&self, line: fmt::Arguments<'_>);
    /// Runs `task` once on every core of the app and returns when all have finished; the
    /// calling core runs queued work while it waits. The task's index is the core's place
    /// among the app's cores (`0..cores()`); `core_index()` inside the task gives the
    /// machine's index of the core.
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
    /// Grants the caller `bytes` of zeroed memory (whole 4 KiB frames) as a capability;
    /// [`ApiError::QuotaExceeded`] past the app's memory quota (whole frames count).
    fn allocate_memory(&self, bytes: u64) -> Result<MemoryCap, ApiError>;
    /// Copies `data` into the memory `cap` names, at `offset` (needs the write right).
    fn write_memory(&self, cap: &MemoryCap, offset: u64, data: &[u8]) -> Result<(), ApiError>;
    /// Copies from the memory `cap` names, at `offset`, into `buffer` (needs the read right).
    fn read_memory(&self, cap: &MemoryCap, offset: u64, buffer: &mut [u8]) -> Result<(), ApiError>;
    /// Gives the memory back; the capability (and all derived from it) stops working.
    fn return_memory(&self, cap: MemoryCap) -> Result<(), ApiError>;
    /// Every live capability in the machine: who holds what (the monitor's `caps`).
    fn capabilities(&self) -> Vec<CapInfo>;
    /// The kernel's requests to give capabilities back (visible revocation): each names
    /// the capability and its deadline (`state`). Return them with `return_memory` before
    /// the deadline; after it the kernel takes them, and using one then ends the app.
    fn revocation_requests(&self) -> Vec<CapInfo>;
    /// Every PCI function on segment 0, found through the legacy configuration ports
    /// (0xCF8/0xCFC) by trying every bus, device and function (functions 1..8 only
    /// where function 0 says the device has several). A listing: nothing is changed.
    fn pci_functions(&self) -> Vec<PciFunction>;
    /// Loads the first boot module as a BareMetal flat binary at its link address
    /// (0xFFFF_8000_0000_0000), replacing what was loaded before; a refused module
    /// leaves the earlier binary in place.
    fn load_baremetal(&self) -> Result<LoadedInfo, BinaryError>;
    /// Runs the loaded BareMetal binary on the calling core, trusted and in ring 0 as on
    /// BareMetal, with BareMetal's call table installed; returns its RAX when it returns.
    /// Memory it changed stays changed: a second run starts from that state, a
    /// [`load_baremetal`](Kernel::load_baremetal) starts afresh.
    fn exec_baremetal(&self) -> Result<u64, BinaryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header: vendor:device, class word, header type, then base address registers.
    fn header(id: u32, class: u32, header_type: u8, bars: &[u32]) -> [u32; 16] {
        let mut words = [0; 16];
        words[0] = id;
        words[2] = class;
        words[3] = u32::from(header_type) << 16;
        words[4..4 + bars.len()].copy_from_slice(bars);
        words
    }

    #[test]
    fn decodes_ids_class_and_every_kind_of_bar() {
        let bars = [0xFEB8_0000, 0xC001, 0xFE00_000C, 0x1, 0, 0xFEBF_1008];
        let f = PciFunction::from_header(0, 2, 0, &header(0x100E_8086, 0x0200_0003, 0x80, &bars));
        assert_eq!((f.bus, f.device, f.function), (0, 2, 0));
        assert_eq!((f.vendor, f.device_id), (0x8086, 0x100E));
        assert_eq!((f.class, f.subclass, f.prog_if), (0x02, 0x00, 0x00));
        assert_eq!(f.header_type, 0x80);
        let memory32 = |prefetchable| PciBarKind::Memory32 { prefetchable };
        assert_eq!(
            f.bars,
            [
                PciBar {
                    index: 0,
                    kind: memory32(false),
                    address: 0xFEB8_0000
                },
                PciBar {
                    index: 1,
                    kind: PciBarKind::Io,
                    address: 0xC000
                },
                PciBar {
                    index: 2,
                    kind: PciBarKind::Memory64 { prefetchable: true },
                    address: 0x1_FE00_0000
                },
                PciBar {
                    index: 5,
                    kind: memory32(true),
                    address: 0xFEBF_1000
                },
            ],
            "the high half of bar2 is bar3; bar4 is unused"
        );
    }

    #[test]
    fn bridges_have_fewer_bars_and_unknown_layouts_none() {
        let all = [0xF000_0000; 6];
        let bridge = PciFunction::from_header(0, 1, 0, &header(0x1234_8086, 0x0604_0000, 1, &all));
        assert_eq!(bridge.bars.len(), 2);
        let cardbus = PciFunction::from_header(0, 1, 0, &header(0x1234_8086, 0x0607_0000, 2, &all));
        assert_eq!(cardbus.bars.len(), 1);
        let odd = PciFunction::from_header(0, 1, 0, &header(0x1234_8086, 0, 0x7F, &all));
        assert!(odd.bars.is_empty());
    }

    #[test]
    fn a_64_bit_bar_in_the_last_slot_does_not_read_past_the_header() {
        let bars = [0, 0, 0, 0, 0, 0xE000_0004];
        let f = PciFunction::from_header(0, 0, 0, &header(0xFFFF_FFFF, u32::MAX, 0, &bars));
        assert_eq!(
            f.bars,
            [PciBar {
                index: 5,
                kind: PciBarKind::Memory64 {
                    prefetchable: false
                },
                address: 0xE000_0000
            }]
        );
    }

    #[test]
    fn binary_errors_say_what_is_wrong() {
        let text = |e: BinaryError| alloc::format!("{e}");
        assert!(text(BinaryError::NoModule).contains("needs a boot module"));
        assert_eq!(text(BinaryError::NotFlat("ELF")), "not a flat binary: ELF");
        assert_eq!(
            text(BinaryError::TooLarge {
                size: 10,
                capacity: 8
            }),
            "the boot module is too large: 10 bytes, the app area holds 8"
        );
        assert_eq!(
            text(BinaryError::NotLoaded),
            "no BareMetal binary is loaded"
        );
    }
}
