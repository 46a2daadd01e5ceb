//! The Rexo kernel API: what an app may ask of the kernel. Apps are
//! `#![forbid(unsafe_code)]` crates with one entry point, `fn main(kernel: &dyn Kernel)`;
//! the kernel passes its implementation of [`Kernel`] when it starts the app.
//!
//! This is the foundation's small API (cores, time, logging, the work queue); the
//! exokernel issue grows it into capabilities over memory, devices and time.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

pub mod device;

pub use device::{
    BlockDevice, BlockInfo, Completion, DeviceError, DeviceInfo, DeviceKind, DiskExtent,
    ExtentError, ExtentOp, KeyboardDevice, MAX_SEGMENTS, NetBinding, NetDevice, NetInfo,
    NetSharing, OpenDevice, Tag,
};

/// Packet filters in the filter language (`tcp dport 80`, `udp dport 11211`): what an
/// app binds to on a shared interface ([`Kernel::bind_net`]).
pub use rexo_pktfilter::{Filter, ParseError as FilterError};

pub use rexo_captable::{Cap, CapError, EntryInfo as CapInfo};

/// A typed wrapper over a [`Cap`] of one resource kind.
macro_rules! cap_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(Cap);

        impl $name {
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
    };
}

cap_type!(
    /// A capability over memory the kernel granted to the caller: the only way to reach
    /// that memory. It is minted by the kernel's capability table (a [`Cap`] cannot be
    /// built anywhere else), is not `Clone`, and stops working once returned or revoked.
    MemoryCap
);

cap_type!(
    /// A capability over one core (resource `core N..N+1`, the machine's index N), minted
    /// when the app starts for each core of its run ([`Kernel::core_caps`]). Holding it is
    /// the permission to run work there: [`Kernel::run_on_every_core`] and
    /// [`Kernel::arm_timer`] refuse a core the app no longer holds.
    CoreCap
);

cap_type!(
    /// A capability over a one-shot deadline on one core's timer ([`Kernel::arm_timer`];
    /// resource `timer N..N+1` for core N). Returning it cancels the deadline.
    TimerCap
);

/// Direct access to the memory of a [`MemoryCap`] ([`Kernel::map_memory`]): its bytes as
/// a slice, read and written in place with no kernel call and no copy.
///
/// The view borrows the capability mutably, so while it is alive the capability cannot
/// be returned, delegated, split, merged or derived from, nor mapped twice; a holder that
/// complies with a revocation request has to drop its views first. A holder that misses
/// the deadline loses the memory by force: the kernel unmaps it, and the next touch
/// through a view ends the app's task ("app X touched revoked region Y"); nothing is
/// read or written, and the frames are given to nobody else until the app has ended.
///
/// ```no_run
/// # use rexo_api::{ApiError, Kernel};
/// fn app(kernel: &dyn Kernel) -> Result<(), ApiError> {
///     let mut cap = kernel.allocate_memory(8192)?;
///     let mut view = kernel.map_memory(&mut cap)?;
///     view[..5].copy_from_slice(b"hello");
///     assert_eq!(&view[..5], b"hello");
///     // The view is not used after this: its borrow ends and the capability can go.
///     kernel.return_memory(cap)
/// }
/// ```
///
/// Returning the capability while a view of it is alive does not build:
///
/// ```compile_fail,E0505
/// # use rexo_api::{ApiError, Kernel};
/// fn app(kernel: &dyn Kernel) -> Result<(), ApiError> {
///     let mut cap = kernel.allocate_memory(4096)?;
///     let mut view = kernel.map_memory(&mut cap)?;
///     kernel.return_memory(cap)?;
///     view[0] = 1;
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct MemoryView<'cap> {
    bytes: &'cap mut [u8],
}

impl<'cap> MemoryView<'cap> {
    /// A view over `bytes` (the kernel makes them from the capability's frames).
    pub fn new(bytes: &'cap mut [u8]) -> Self {
        Self { bytes }
    }
}

impl core::ops::Deref for MemoryView<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl core::ops::DerefMut for MemoryView<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.bytes
    }
}

pub use rexo_captable::{EntryId, Rights};

/// What to do with a memory capability one holds ([`Kernel::memory_op`]).
#[derive(Debug)]
pub enum MemoryOp {
    /// A child capability over `len` bytes from `start` (inside the parent's range),
    /// with `rights` (a subset of the parent's). The parent's holder can later take it
    /// back ([`MemoryOp::RevokeDerived`]), wherever it was delegated.
    Derive {
        /// First byte (an address inside the parent's range).
        start: u64,
        /// Bytes (whole 4 KiB frames).
        len: u64,
        /// The child's rights.
        rights: Rights,
    },
    /// Splits the capability at `offset` bytes: it keeps the low part, the result holds
    /// the rest (siblings that [`MemoryOp::Merge`] joins again).
    Split {
        /// Where to cut (a multiple of 4 KiB, strictly inside).
        offset: u64,
    },
    /// Joins the adjacent sibling `other` into the capability (`other` stops working).
    Merge {
        /// The sibling.
        other: MemoryCap,
    },
    /// Takes back by force the capability `entry`, derived from this one (needs the
    /// revoke right); its holder gets a repossession record.
    RevokeDerived {
        /// The derived capability's entry (from [`Kernel::capabilities`]).
        entry: EntryId,
    },
}

/// An app's entry point: it gets the kernel and returns when the app is done.
pub type AppMain = fn(&dyn Kernel) -> Result<(), ApiError>;

/// An app linked into the image: its name, a one-line description and its entry point
/// (the image's list is `rexo-image`'s `APPS`).
#[derive(Clone, Copy)]
pub struct AppEntry {
    /// The name `app=` selects it by.
    pub name: &'static str,
    /// What it does, for error messages and the monitor.
    pub about: &'static str,
    /// Runs the app.
    pub main: AppMain,
}

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
    /// No device of that kind and number ([`Kernel::devices`] lists them).
    NoSuchDevice,
    /// The device is held by another app (named) until it drops its handle.
    DeviceBusy(&'static str),
    /// The device or its driver failed.
    Device(DeviceError),
    /// The disk's extent table refused the change (or is missing or damaged).
    Extents(ExtentError),
    /// A filter overlaps one installed by the app named: some frame would match both.
    FilterOverlap(&'static str),
    /// Sharing a network interface needs the address the kernel answers ARP and ping
    /// for: the kernel word `ip=ADDRESS/PREFIX[,ROUTER[,DNS]]`.
    NoAddress,
    /// The app holds no capability over this core (the machine's index): it was never
    /// the app's, or the app gave it back.
    CoreNotHeld(usize),
    /// The deadline asked for is not in the future.
    DeadlinePassed,
    /// The core's timer capability is held (by this app or another) until returned.
    TimerBusy,
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
            ApiError::NoSuchDevice => f.write_str("no such device"),
            ApiError::DeviceBusy(holder) => write!(f, "the device is held by the app {holder}"),
            ApiError::Device(error) => write!(f, "device: {error}"),
            ApiError::Extents(error) => write!(f, "extents: {error}"),
            ApiError::FilterOverlap(owner) => write!(
                f,
                "the filter overlaps one of the app {owner}: some frame would match both"
            ),
            ApiError::NoAddress => f.write_str(
                "sharing a network interface needs the kernel word ip=ADDRESS/PREFIX[,ROUTER[,DNS]]",
            ),
            ApiError::CoreNotHeld(core) => {
                write!(f, "the app holds no capability over core {core}")
            }
            ApiError::DeadlinePassed => f.write_str("the deadline has passed already"),
            ApiError::TimerBusy => f.write_str("the core's timer is held already"),
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

/// One PCI function as the kernel's bus walk found it: address, IDs, class, its base
/// address registers with their sizes, and its capabilities (MSI, MSI-X, PCIe). Its
/// `Display` is the monitor's `pci` line.
pub use rexo_pci::Function as PciFunction;

/// A fixed IPv4 configuration (the kernel command line's `ip=`).
pub use rexo_cmdline::Ipv4Config;

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
    /// The fixed IPv4 configuration the kernel command line gives the apps' TCP/IP
    /// library OS (`ip=ADDRESS/PREFIX[,ROUTER[,DNS]]`); `None`: they configure by DHCP.
    fn ipv4_config(&self) -> Option<Ipv4Config>;
    /// The index of the core running the caller (0 is the boot core).
    fn core_index(&self) -> usize;
    /// Nanoseconds since boot (monotonic).
    fn now_ns(&self) -> u64;
    /// Writes one log line (with the time and core number) to the consoles.
    fn log(&self, line: fmt::Arguments<'_>);
    /// Runs `task` once on every core of the app and returns when all have finished; the
    /// calling core runs queued work while it waits. The task's index is the core's place
    /// among the app's cores (`0..cores()`); `core_index()` inside the task gives the
    /// machine's index of the core. An app that does not hold the capability of one of
    /// its cores gets [`ApiError::CoreNotHeld`] naming it, and nothing runs.
    fn run_on_every_core(&self, task: CoreTask) -> Result<(), ApiError>;
    /// The next byte of console input (serial line or PS/2 keyboard), without waiting.
    /// Keys arrive as a terminal sends them: `\r` for Enter, 0x7F for Backspace, `ESC [ A`
    /// for the up arrow.
    fn read_byte(&self) -> Option<u8>;
    /// Writes text to the consoles as it is (no log prefix, no newline added).
    fn write_str(&self, text: &str);
    /// Halts the calling core until about `ns` nanoseconds passed or an interrupt came (a
    /// device's wake message after `NetDevice::wake_on_receive`, a cross-core wake),
    /// whichever is first: one nap, so callers check what woke them.
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
    /// Maps the memory `cap` names for direct access, as a [`MemoryView`] that borrows
    /// `cap` (needs the read and write rights, and no other live capability may name the
    /// memory: refused with [`CapError::Overlaps`] while a parent or derived capability
    /// does).
    fn map_memory<'cap>(&self, cap: &'cap mut MemoryCap) -> Result<MemoryView<'cap>, ApiError>;
    /// Gives the memory back; the capability (and all derived from it) stops working.
    fn return_memory(&self, cap: MemoryCap) -> Result<(), ApiError>;
    /// Derives, splits, merges or takes back by force (what `op` says) with the memory
    /// capability `cap`; derive and split give the new capability.
    fn memory_op(&self, cap: &MemoryCap, op: MemoryOp) -> Result<Option<MemoryCap>, ApiError>;
    /// Hands `cap` to the running app `app` (needs the delegate right): from then on that
    /// app holds it, and finds it in its [`received_memory`](Kernel::received_memory).
    /// To lend and keep the power to take back, derive a child and delegate the child.
    /// A refused delegation gives the capability back with the reason.
    fn delegate_memory(&self, cap: MemoryCap, app: &str) -> Result<(), (ApiError, MemoryCap)>;
    /// The memory capabilities other apps delegated to the caller since it last asked.
    fn received_memory(&self) -> Vec<MemoryCap>;
    /// Every live capability in the machine: who holds what (the monitor's `caps`).
    fn capabilities(&self) -> Vec<CapInfo>;
    /// The capabilities over the app's cores that the kernel minted when it started, each
    /// handed out once (a second call gives only what came since: nothing).
    fn core_caps(&self) -> Vec<CoreCap>;
    /// Gives a core back: from then on [`run_on_every_core`](Kernel::run_on_every_core)
    /// and [`arm_timer`](Kernel::arm_timer) answer [`ApiError::CoreNotHeld`] for it.
    fn return_core(&self, cap: CoreCap) -> Result<(), ApiError>;
    /// Arms the calling core's timer for monotonic time `deadline_ns`: a one-shot deadline
    /// on a core the app holds ([`ApiError::CoreNotHeld`] otherwise), in the future
    /// ([`ApiError::DeadlinePassed`]), one per core at a time, fired or not, until it is
    /// returned ([`ApiError::TimerBusy`]).
    /// The core takes its timer interrupt then (ending a nap of [`sleep_ns`](Kernel::sleep_ns));
    /// [`timer_fired`](Kernel::timer_fired) says whether it has.
    fn arm_timer(&self, deadline_ns: u64) -> Result<TimerCap, ApiError>;
    /// Whether the timer's core took its timer interrupt at or after the deadline.
    fn timer_fired(&self, timer: &TimerCap) -> Result<bool, ApiError>;
    /// Gives the timer back, cancelling its deadline if it has not fired.
    fn return_timer(&self, timer: TimerCap) -> Result<(), ApiError>;
    /// The kernel's requests to give capabilities back (visible revocation): each names
    /// the capability and its deadline (`state`). Return them with `return_memory` before
    /// the deadline; after it the kernel takes them, and using one then ends the app.
    fn revocation_requests(&self) -> Vec<CapInfo>;
    /// Every PCI function the kernel's bus walk found, on every segment (through ECAM
    /// where the MCFG table lists windows, else the legacy ports 0xCF8/0xCFC), walked
    /// once. A listing: nothing is changed.
    fn pci_functions(&self) -> Vec<PciFunction>;
    /// Loads a BareMetal flat binary at its link address (0xFFFF_8000_0000_0000),
    /// replacing what was loaded before: `binary`, or the first boot module when `None`;
    /// a refused binary leaves the earlier one in place.
    fn load_baremetal(&self, binary: Option<&[u8]>) -> Result<LoadedInfo, BinaryError>;
    /// Runs the loaded BareMetal binary on the calling core, trusted and in ring 0 as on
    /// BareMetal, with BareMetal's call table installed; returns its RAX when it returns.
    /// Memory it changed stays changed: a second run starts from that state, a
    /// [`load_baremetal`](Kernel::load_baremetal) starts afresh.
    fn exec_baremetal(&self) -> Result<u64, BinaryError>;
    /// Every device a driver is bound to (drivers bind on the first call of this or the
    /// `open_` calls), with its holder.
    fn devices(&self) -> Vec<DeviceInfo>;
    /// Opens device `index` of `kind` for the caller alone until the handle is dropped
    /// ([`ApiError::DeviceBusy`] while another app holds it).
    fn open_device(&self, kind: DeviceKind, index: usize) -> Result<OpenDevice, ApiError>;
    /// Applies `op` (if any) to disk `disk`'s extent table as the caller, then returns
    /// the table's extents. The disk must not be open (by anyone) meanwhile.
    fn disk_extents(&self, disk: usize, op: Option<ExtentOp>) -> Result<Vec<DiskExtent>, ApiError>;
    /// Opens network interface `index` ([`open_device`](Kernel::open_device)).
    fn open_net(&self, index: usize) -> Result<Box<dyn NetDevice>, ApiError> {
        self.open_device(DeviceKind::Net, index)?.into_net()
    }
    /// Binds the caller to the frames of network interface `index` that match one of
    /// `filters`, sharing the interface with other apps (the MIT exokernel's packet
    /// filters). The kernel refuses a filter that overlaps another app's
    /// ([`ApiError::FilterOverlap`]), runs the merged filters on every frame it receives,
    /// hands the caller's frames to it in place when it polls (frames another app's poll
    /// finds are queued for it), answers ARP and ping for the address of `ip=` itself
    /// ([`ApiError::NoAddress`] without it), and lets the caller send only from that
    /// address and the ports its filters name ([`DeviceError::Withdrawn`] otherwise).
    /// [`ApiError::DeviceBusy`] while an app holds the interface whole.
    fn bind_net(&self, index: usize, filters: &[Filter]) -> Result<Box<dyn NetDevice>, ApiError>;
    /// How interface `index` is shared: `None` when no app is bound to it by filters.
    fn net_sharing(&self, index: usize) -> Result<Option<NetSharing>, ApiError>;
    /// Opens disk `index` ([`open_device`](Kernel::open_device)).
    fn open_block(&self, index: usize) -> Result<Box<dyn BlockDevice>, ApiError> {
        self.open_device(DeviceKind::Block, index)?.into_block()
    }
    /// Opens keyboard `index` ([`open_device`](Kernel::open_device)).
    fn open_keyboard(&self, index: usize) -> Result<Box<dyn KeyboardDevice>, ApiError> {
        self.open_device(DeviceKind::Keyboard, index)?
            .into_keyboard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
