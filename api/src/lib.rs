//! The Rexo kernel API: what an app may ask of the kernel. Apps are
//! `#![forbid(unsafe_code)]` crates with one entry point, `fn main(kernel: &Kernel)`;
//! the kernel lends the app its [`Kernel`], a token apps cannot mint, when it starts the
//! app. Every call is a direct call into the kernel (module `kernel`, the one module
//! here that may hold `unsafe`: the declarations of the kernel's entry points and the
//! token's constructor).
//!
//! Beside cores, time, logging and the work queue, the kernel hands out capabilities:
//! memory, cores, timers and interrupts, devices (NICs, disks, keyboards), packet-filter
//! bindings, disk extents, and BareMetal binaries to load; docs/api.md lists every call.
//!
//! # An app's `main`
//!
//! This one takes 8 KiB of memory, writes to it, reads it back and gives it back. The
//! host tests build it, and docs/api.md ("Writing an app") quotes it, a host test
//! checking the quote:
//!
//! ```no_run
//! # mod app {
//! use rexo_api::{ApiError, Kernel};
//!
//! /// The app's entry point: 8 KiB of memory taken, used and given back.
//! pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
//!     let memory = kernel.allocate_memory(8192)?;
//!     kernel.write_memory(&memory, 4096, b"hello")?;
//!     let mut back = [0; 5];
//!     kernel.read_memory(&memory, 4096, &mut back)?;
//!     kernel.log(format_args!("read back {:?}", core::str::from_utf8(&back)));
//!     // A refused return hands the capability back after the reason, as the pair
//!     // (ApiError, MemoryCap); this app gives up and reports the reason (what it
//!     // still holds is released when it ends).
//!     kernel.return_memory(memory).map_err(|(error, _memory)| error)
//! }
//! # }
//! # fn main() {}
//! ```
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::sync::Arc;
use core::fmt;

pub mod device;
mod kernel;
// Also in this crate's own tests, which run on its disk in memory.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[doc(hidden)]
pub use kernel::call_types;
pub use kernel::{AppRun, CoreSpan, Kernel, OwnerId};

pub use device::{
    BlockDevice, BlockInfo, Completion, DeviceError, DeviceInfo, DeviceKind, DiskExtent,
    ETHERNET_MAX_FRAME, ExtentError, ExtentOp, InterruptBinding, KeyboardDevice, Leaving,
    MAX_APP_BINDINGS, MAX_BINDING_FILTERS, MAX_INTERFACE_BINDINGS, MAX_ORDERED_BYTES,
    MAX_ORDERED_PER_QUEUE, MAX_SEGMENTS, NetBinding, NetDevice, NetInfo, NetSharing, OpenDevice,
    RSS_EXAMPLE_KEY, ReceiveSteering, Tag, toeplitz_hash,
};

/// Packet filters in the filter language (`tcp dport 80`, `udp dport 11211`): what an
/// app binds to on a shared interface ([`Kernel::bind_net`]).
pub use rexo_pktfilter::{Filter, ParseError as FilterError};

pub use rexo_captable::{Cap, CapError, EntryInfo as CapInfo, EntryState};

/// The most capability-table entries one app's requests (memory grants, derives, splits)
/// may have made and still live, wherever they were delegated or parked: past it
/// [`Kernel::allocate_memory`] and [`Kernel::memory_op`] answer
/// [`CapError::TooManyEntries`] with this `max`, until one of them goes. The kernel's
/// table has room for every owner at this limit at once ([`cap_table_entries`]).
pub const MAX_APP_ENTRIES: usize = 64;

/// The interrupt bindings (shares of the kernel's root over the vectors, one per device
/// queue an app's lease armed) the kernel's capability table keeps room for: one per
/// vector of device interrupts (32..256). Bindings are not bounded by vectors (every
/// MSI-X wake-up shares one) but by the devices' queues, at most 8 a device (virtio-net's
/// receive queues): this is 28 such devices at once. The kernel binds no more: past it a
/// queue's arm answers [`DeviceError::TooManyInterruptBindings`].
pub const MAX_INTERRUPT_BINDINGS: usize = 224;

/// The most capability-table entries the kernel's own mints hold at once, and so the
/// reserve its table keeps for them: its root over the vectors, a capability over each
/// core and a timer armed on each ([`rexo_cmdline::MAX_CORES`] of each: one root per
/// core or timer at a time), and [`MAX_INTERRUPT_BINDINGS`] bindings.
pub const KERNEL_CAP_ENTRIES: usize = 1 + 2 * rexo_cmdline::MAX_CORES + MAX_INTERRUPT_BINDINGS;

/// The entries of the kernel's capability table with `owners` owners (the kernel, 0, and
/// the apps' runs, `rexo_cmdline::owners_needed`): [`KERNEL_CAP_ENTRIES`] and
/// [`MAX_APP_ENTRIES`] for each app's owner, so that every app can reach its limit while
/// the kernel holds its most. (The kernel's own requests count in its reserve.)
pub const fn cap_table_entries(owners: usize) -> usize {
    KERNEL_CAP_ENTRIES + owners.saturating_sub(1) * MAX_APP_ENTRIES
}

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
    /// A secure binding of one interrupt source of a leased device (a queue's MSI or MSI-X
    /// message, or the device's legacy line) to the app holding the lease, minted when
    /// the app first arms the queue's wake-up (resource `vector V..V+1`: the vector the
    /// source is routed to, shared by every source routed there;
    /// [`Kernel::interrupt_caps`]). Returning it ([`Kernel::return_interrupt`]) unbinds
    /// the source: the device no longer wakes the app's cores, and arming the queue
    /// again answers [`DeviceError::Unbound`].
    InterruptCap
);

cap_type!(
    /// A capability over a one-shot deadline on one core's timer ([`Kernel::arm_timer`];
    /// resource `timer N..N+1` for core N). Returning it cancels the deadline.
    TimerCap
);

pub use rexo_captable::{EntryId, Rights};

/// What to do with a memory capability one holds ([`Kernel::memory_op`]).
///
/// A merge borrows the sibling, so a refused merge leaves it with the caller, working:
///
/// ```
/// use rexo_api::{MemoryCap, MemoryOp};
/// use rexo_captable::{CapTable, OwnerId, Resource, ResourceKind, Rights};
///
/// struct Kernel;
/// let mut table: CapTable<Kernel, 4, 2, 1> = CapTable::new();
/// let frames = Resource::new(ResourceKind::Memory, 0x1000, 0x1000)?;
/// let other = MemoryCap::new(table.mint(&Kernel, OwnerId(1), frames, Rights::READ)?);
/// let merge = MemoryOp::Merge { other: &other };
/// drop(merge); // as a refusal would
/// assert!(table.check(OwnerId(1), other.cap(), Rights::READ).is_ok());
/// # Ok::<(), rexo_captable::CapError>(())
/// ```
#[derive(Debug)]
pub enum MemoryOp<'a> {
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
    /// the rest (siblings that [`MemoryOp::Merge`] joins again). Not a capability lent
    /// to the caller (derived by another app and delegated): its lender takes it back by
    /// name ([`MemoryOp::RevokeDerived`]) and a split-off part would escape that, so it
    /// answers [`CapError::Lent`]; derive from it instead.
    Split {
        /// Where to cut (a multiple of 4 KiB, strictly inside).
        offset: u64,
    },
    /// Joins the adjacent sibling `other` into the capability: once merged, `other`
    /// answers [`CapError::Revoked`]; a refused merge leaves it as it was. Neither may
    /// be lent to the caller ([`CapError::Lent`], as for [`MemoryOp::Split`]). Siblings
    /// are derived from one parent, or split from one grant: two grants side by side are
    /// not ([`CapError::NotSiblings`]), so that the kernel takes each back by its name.
    Merge {
        /// The sibling (borrowed: the caller keeps it if the merge is refused).
        other: &'a MemoryCap,
    },
    /// Takes back by force the capability `entry`, derived from this one (needs the
    /// revoke right); its holder gets a repossession record.
    RevokeDerived {
        /// The derived capability's entry (from [`Kernel::capabilities`]).
        entry: EntryId,
    },
}

impl MemoryOp<'_> {
    /// Every entry the operation uses: the capability's (`entry`) and, for a merge, the
    /// sibling's (a use of either breaks the abort protocol once repossessed).
    pub fn entries_used(&self, entry: EntryId) -> [EntryId; 2] {
        match self {
            MemoryOp::Merge { other } => [entry, other.cap().id()],
            _ => [entry; 2],
        }
    }
}

/// An app's entry point: it gets the kernel and returns when the app is done.
pub type AppMain = fn(&Kernel) -> Result<(), ApiError>;

/// An app linked into the image: its name, a one-line description, its entry point and
/// whether it may run BareMetal code (the image's list is `rexo-image`'s `APPS`, which the
/// operator writes).
#[derive(Clone, Copy)]
pub struct AppEntry {
    /// The name `app=` selects it by.
    pub name: &'static str,
    /// What it does, for error messages and the monitor.
    pub about: &'static str,
    /// Runs the app.
    pub main: AppMain,
    /// Whether the app's runs may load and run BareMetal code
    /// ([`Kernel::load_baremetal`], [`Kernel::exec_baremetal`]), which runs in ring 0
    /// with the kernel's rights: a privilege only the app table grants (the monitor's, and
    /// the kernel's own `baremetal` app's). Other apps are refused
    /// ([`BinaryError::NotGranted`]), and may not start an app that has it with
    /// [`Kernel::run_app`] ([`ApiError::NotGranted`]).
    pub may_run_baremetal: bool,
}

impl AppEntry {
    /// An app without the right to run BareMetal code.
    pub const fn new(name: &'static str, about: &'static str, main: AppMain) -> Self {
        Self {
            name,
            about,
            main,
            may_run_baremetal: false,
        }
    }
}

/// A task that runs once on each core it is sent to; it gets the kernel and the core's index.
pub type CoreTask = Arc<dyn Fn(&Kernel, usize) + Send + Sync>;

/// Why the kernel could not do what an app asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// A work queue is full: the task asked for was not queued. From
    /// [`Kernel::run_on_every_core`](crate::Kernel::run_on_every_core): a core's mailbox
    /// refused its task, which ran neither there nor on the app's cores after it, but
    /// may have run, to its end, on the cores before it.
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
    /// The app overflowed its stack (its core's kernel stack, into the guard page below
    /// it), or had too little of it left for a kernel call; it was ended and what it held
    /// went back to the kernel.
    StackOverflow,
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
    /// A binding on a shared network interface names more filters than one binding may
    /// ([`MAX_BINDING_FILTERS`]); nothing was installed.
    TooManyFilters {
        /// The most filters one binding may name.
        max: usize,
    },
    /// A binding on a shared network interface names no filter: it would take nothing
    /// but ARP replies while holding one of the app's and the interface's places.
    NoFilters,
    /// A filter of a binding on a shared network interface has more atoms than a
    /// filter may (`max`, `rexo_pktfilter::MAX_ATOMS`, which `Filter::new` and
    /// `Filter::parse` keep to: the bound on the kernel's work per filter); nothing was
    /// installed.
    TooManyAtoms {
        /// The most atoms one filter may have.
        max: usize,
    },
    /// The binding's filters, merged with those bound on the shared network interface,
    /// would cost some frame more than `max` field tests (`rexo_pktfilter::MAX_FRAME_TESTS`:
    /// the bound on the kernel's work per frame and per bind): they share too few of
    /// their fields or mask bits (the same bytes under masks with no bits in common,
    /// or unrelated fields); nothing was installed.
    TooManyFilterTests {
        /// The most field tests one frame may cost.
        max: usize,
    },
    /// The calling app's filters on the shared network interface, this binding's with
    /// those of its other bindings, would cost some frame more than its `share` of the
    /// field tests (`rexo_pktfilter::APP_FRAME_TESTS`, 8 of 32: so 4 apps can always
    /// bind, whatever the others bound), their tree built alone; nothing was installed.
    FilterTestShare {
        /// The most field tests one app's filters may cost a frame.
        share: usize,
    },
    /// The binding would make more than `max` bindings on the shared network interface:
    /// for the calling app ([`MAX_APP_BINDINGS`], until one of its own ends) or in all
    /// ([`MAX_INTERFACE_BINDINGS`], until any ends); nothing was installed.
    TooManyBindings {
        /// The limit reached: the most bindings one app holds on one interface, or one
        /// interface holds in all.
        max: usize,
    },
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
    /// The app is running already (`run_app` from another of its cores, from within
    /// itself, or while a boot-manifest entry runs it): an app runs once at a time.
    AlreadyRunning,
    /// The machine has no wall clock the kernel can read (the kernel's log says why).
    NoWallClock,
    /// The machine gave no random number: its CPU has neither RDSEED nor RDRAND, or
    /// both kept answering that they had none (CF=0) through every retry.
    NoRandom,
    /// Two runs of the app named are going (two entries of one app in a boot manifest):
    /// the name does not say which is meant, so nothing was handed over.
    AmbiguousApp,
    /// The calling app (named) may not start that app with
    /// [`Kernel::run_app`](crate::Kernel::run_app): the app runs BareMetal code (ring 0,
    /// the kernel's rights), a right the caller's entry in the image's app table does not
    /// grant ([`AppEntry::may_run_baremetal`]).
    NotGranted(&'static str),
    /// The app could not load or run its BareMetal program (why): the kernel's app
    /// `baremetal` answers it for a boot module that is missing or refused, so the app
    /// that started it ([`Kernel::run_app`]) goes on, and `app=baremetal` ends the boot as
    /// failed.
    Binary(BinaryError),
}

impl ApiError {
    /// A refusal of the table as the API reports it: [`ApiError::NoSuchApp`] for an owner
    /// that is not running (a delegation to an app that has ended), else
    /// [`ApiError::Refused`].
    pub fn refusal(error: CapError) -> Self {
        match error {
            CapError::NotRunning(_) => ApiError::NoSuchApp,
            error => ApiError::Refused(error),
        }
    }
}

/// The owner of the one running app called `name` among `runs` (owners with the names of
/// the apps they run; one owner may come more than once): how the kernel finds the
/// receiver of [`Kernel::delegate_memory`]. [`ApiError::NoSuchApp`] when no run has that
/// name, [`ApiError::AmbiguousApp`] when runs of two owners have it.
pub fn running_app<'a>(
    runs: impl IntoIterator<Item = (OwnerId, &'a str)>,
    name: &str,
) -> Result<OwnerId, ApiError> {
    let mut found = None;
    for (owner, _) in runs.into_iter().filter(|&(_, run)| run == name) {
        if found.is_some_and(|other| other != owner) {
            return Err(ApiError::AmbiguousApp);
        }
        found = Some(owner);
    }
    found.ok_or(ApiError::NoSuchApp)
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
            ApiError::StackOverflow => f.write_str("the app overflowed its stack and was ended"),
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
            ApiError::TooManyFilters { max } => {
                write!(f, "a binding names at most {max} filters")
            }
            ApiError::NoFilters => {
                f.write_str("a binding names at least one filter (it would take nothing)")
            }
            ApiError::TooManyAtoms { max } => {
                write!(f, "a filter of a binding has at most {max} atoms")
            }
            ApiError::TooManyFilterTests { max } => write!(
                f,
                "the filters would cost a frame more than {max} field tests: they share too few fields with each other and those bound"
            ),
            ApiError::FilterTestShare { share } => write!(
                f,
                "the app's filters would cost a frame more than its share of {share} field tests: they share too few fields with each other"
            ),
            ApiError::TooManyBindings { max } => write!(
                f,
                "more than {max} bindings on this interface (for this app, or in all): one must end first"
            ),
            ApiError::NoAddress => f.write_str(
                "sharing a network interface needs the kernel word ip=ADDRESS/PREFIX[,ROUTER[,DNS]]",
            ),
            ApiError::CoreNotHeld(core) => {
                write!(f, "the app holds no capability over core {core}")
            }
            ApiError::DeadlinePassed => f.write_str("the deadline has passed already"),
            ApiError::TimerBusy => f.write_str("the core's timer is held already"),
            ApiError::AlreadyRunning => f.write_str("the app is running already"),
            ApiError::NoWallClock => f.write_str("the machine has no readable wall clock"),
            ApiError::NoRandom => f.write_str(
                "the machine gave no random number (no RDSEED or RDRAND, or they kept failing)",
            ),
            ApiError::AmbiguousApp => {
                f.write_str("two runs of that app are going: the name does not say which")
            }
            ApiError::NotGranted(app) => write!(
                f,
                "app '{app}' may not start an app that runs BareMetal code (ring 0, the kernel's rights): its entry in the image's app table does not grant it"
            ),
            ApiError::Binary(why) => write!(f, "cannot run the BareMetal program: {why}"),
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
    /// RAM freed but waiting for room in the frame allocator's free list (fragmented by
    /// many separate free ranges), so not in `free` yet: 0 but in that case.
    pub waiting: u64,
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

/// The largest BareMetal app area, in bytes (64 MiB): a binary larger than this is never
/// loaded ([`BinaryError::TooLarge`]); the area the kernel allocates on the first load is
/// half its free memory, up to this, so it may hold less.
pub const BAREMETAL_AREA_MAX: u64 = 64 << 20;

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
    /// The loaded binary still runs (`exec`), or jobs it gave cores (`smp_set`) do: a
    /// new binary would run under them, so it is not loaded.
    JobsRunning {
        /// How many cores still run the binary or a job of it.
        jobs: u64,
    },
    /// A new binary is being loaded, so the app area may be half copied: not run.
    Loading,
    /// The calling app (named) may not load or run BareMetal code: its entry in the
    /// image's app table does not grant it ([`AppEntry::may_run_baremetal`]).
    NotGranted(&'static str),
}

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinaryError::NoModule => f.write_str(
                "needs a boot module (the app's flat binary: `cargo xtask run --module FILE`, or QEMU's \
                 -initrd FILE), and there is none",
            ),
            BinaryError::Empty => f.write_str("the boot module is empty"),
            BinaryError::TooLarge { size, capacity } => write!(
                f,
                "the boot module is too large: {size} bytes, the app area holds {capacity}"
            ),
            BinaryError::NotFlat(format) => write!(f, "not a flat binary: {format}"),
            BinaryError::NoArea => f.write_str(
                "no memory for the app area (2 MiB at least, leaving the kernel's 4 MiB reserve)",
            ),
            BinaryError::NotLoaded => f.write_str("no BareMetal binary is loaded"),
            BinaryError::JobsRunning { jobs } => write!(
                f,
                "{jobs} cores still run jobs of the loaded binary (exec, smp_set); load once they have returned"
            ),
            BinaryError::Loading => f.write_str(
                "a new BareMetal binary is being loaded; exec once the load has finished",
            ),
            BinaryError::NotGranted(app) => write!(
                f,
                "app '{app}' may not load or run BareMetal code (ring 0, the kernel's rights): its entry in the image's app table does not grant it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/api.md's "Writing an app" quotes the crate docs' example, which the doctests
    /// build: so the guide's code builds too.
    #[test]
    fn the_guide_quotes_the_example_app_the_doctests_build() {
        let guide = include_str!("../../docs/api.md");
        let app = rexo_testkit::crate_docs_example(include_str!("lib.rs"));
        assert!(app.contains("pub fn main(kernel: &Kernel)"), "{app}");
        rexo_testkit::assert_guide_quotes("docs/api.md", guide, &app);
    }

    #[test]
    fn an_owner_that_is_not_running_is_no_such_app() {
        let ended = rexo_captable::OwnerId(3);
        assert_eq!(
            ApiError::refusal(CapError::NotRunning(ended)),
            ApiError::NoSuchApp
        );
        assert_eq!(
            ApiError::refusal(CapError::Revoked),
            ApiError::Refused(CapError::Revoked)
        );
    }

    #[test]
    fn a_receiver_is_the_one_owner_running_that_app() {
        use rexo_captable::OwnerId;
        let runs = [
            (OwnerId(1), "monitor"),
            (OwnerId(12), "kv"),
            (OwnerId(1), "monitor"),
        ];
        assert_eq!(
            running_app(runs, "monitor"),
            Ok(OwnerId(1)),
            "one owner, two cores"
        );
        assert_eq!(running_app(runs, "kv"), Ok(OwnerId(12)));
        assert_eq!(running_app(runs, "httpd"), Err(ApiError::NoSuchApp));
        let two_runs = [
            (OwnerId(12), "kv"),
            (OwnerId(1), "monitor"),
            (OwnerId(13), "kv"),
        ];
        assert_eq!(running_app(two_runs, "kv"), Err(ApiError::AmbiguousApp));
        assert_eq!(running_app(two_runs, "monitor"), Ok(OwnerId(1)));
    }

    /// The kernel's authority in the sizing tests.
    struct Authority;

    /// Fills `t` as the worst case the kernel sizes its table for: the kernel's root over
    /// the vectors, a capability over every core and a timer on each, every binding it
    /// keeps room for, and every app's owner (1..OWNERS, started) at its limit of grants;
    /// the kernel's mints first or last. The live entries, or the first refusal.
    fn worst_case<const N: usize, const OWNERS: usize>(
        t: &mut rexo_captable::CapTable<Authority, N, OWNERS, 8>,
        kernel_first: bool,
    ) -> Result<usize, CapError> {
        use rexo_captable::{OwnerId, Resource, ResourceKind};
        use rexo_cmdline::MAX_CORES;
        let apps = (1..OWNERS).map(|owner| OwnerId(owner as u16));
        for owner in apps.clone() {
            t.start_owner(&Authority, owner)?;
        }
        let mint_all = |t: &mut rexo_captable::CapTable<Authority, N, OWNERS, 8>| {
            let vectors = Resource::new(ResourceKind::InterruptVector, 32, 224)?;
            let root = t
                .mint(&Authority, OwnerId::KERNEL, vectors, Rights::READ)?
                .id();
            for core in 0..MAX_CORES as u64 {
                let owner = OwnerId(1 + (core % (OWNERS as u64 - 1)) as u16);
                for kind in [ResourceKind::Core, ResourceKind::Timer] {
                    t.mint(
                        &Authority,
                        owner,
                        Resource::new(kind, core, 1)?,
                        Rights::READ,
                    )?;
                }
            }
            let wake = Resource::new(ResourceKind::InterruptVector, 0x21, 1)?;
            for binding in 0..MAX_INTERRUPT_BINDINGS {
                let owner = OwnerId(1 + (binding % (OWNERS - 1)) as u16);
                t.mint_child(
                    &Authority,
                    root,
                    owner,
                    wake,
                    Rights::READ,
                    MAX_INTERRUPT_BINDINGS,
                )?;
            }
            Ok::<(), CapError>(())
        };
        if kernel_first {
            mint_all(t)?;
        }
        let mut page = 0;
        for owner in apps {
            for _ in 0..MAX_APP_ENTRIES {
                let frame = Resource::new(ResourceKind::Memory, page << 12, 0x1000)?;
                t.grant(&Authority, owner, frame, Rights::READ)?;
                page += 1;
            }
        }
        if !kernel_first {
            mint_all(t)?;
        }
        Ok(t.live())
    }

    #[test]
    fn the_kernels_table_holds_every_core_timer_and_binding_and_every_app_at_its_limit() {
        // The kernel's owners today (24 apps: the image's 18, the kernel's 2, the C apps'
        // 4), and with many more apps linked in.
        const TODAY: usize = rexo_cmdline::owners_needed(24);
        const MANY: usize = rexo_cmdline::owners_needed(100);
        type Today = rexo_captable::CapTable<Authority, { cap_table_entries(TODAY) }, TODAY, 8>;
        type Many = rexo_captable::CapTable<Authority, { cap_table_entries(MANY) }, MANY, 8>;
        assert_eq!(cap_table_entries(TODAY), 2_401);
        for kernel_first in [true, false] {
            let mut today = Today::with_limits(MAX_APP_ENTRIES, KERNEL_CAP_ENTRIES);
            let full = Ok(cap_table_entries(TODAY));
            assert_eq!(worst_case(&mut today, kernel_first), full, "{TODAY} owners");
            let mut many = Many::with_limits(MAX_APP_ENTRIES, KERNEL_CAP_ENTRIES);
            let full = Ok(cap_table_entries(MANY));
            assert_eq!(worst_case(&mut many, kernel_first), full, "{MANY} owners");
        }
        // The table of 256 entries with 64 kept for the kernel ran out before either did.
        for kernel_first in [true, false] {
            let mut old: rexo_captable::CapTable<Authority, 256, TODAY, 8> =
                rexo_captable::CapTable::with_limits(MAX_APP_ENTRIES, 64);
            assert_eq!(worst_case(&mut old, kernel_first), Err(CapError::Full));
        }
    }

    #[test]
    fn a_merge_uses_the_sibling_too() {
        use rexo_captable::{CapTable, OwnerId, Resource, ResourceKind};
        struct Kernel;
        let mut table: CapTable<Kernel, 4, 2, 1> = CapTable::new();
        let mut mint = |start| {
            let frames = Resource::new(ResourceKind::Memory, start, 0x1000).expect("range");
            let cap = table.mint(&Kernel, OwnerId(1), frames, Rights::READ);
            MemoryCap::new(cap.expect("mint"))
        };
        let (cap, other) = (mint(0x1000), mint(0x2000));
        let (entry, sibling) = (cap.cap().id(), other.cap().id());
        let merge = MemoryOp::Merge { other: &other };
        assert_eq!(merge.entries_used(entry), [entry, sibling]);
        let split = MemoryOp::Split { offset: 0x1000 };
        assert_eq!(split.entries_used(entry), [entry, entry]);
    }

    #[test]
    fn only_a_run_granted_baremetal_code_starts_an_app_granted_it() {
        fn main(_: &Kernel) -> Result<(), ApiError> {
            Ok(())
        }
        let run = |may_run_baremetal| AppRun {
            owner: OwnerId(3),
            core_holder: OwnerId(3),
            name: "caller",
            cores: CoreSpan { first: 0, count: 1 },
            quota: None,
            may_run_baremetal,
        };
        let plain = AppEntry::new("hello", "greets", main);
        let granted = AppEntry {
            may_run_baremetal: true,
            ..AppEntry::new("baremetal", "runs ring 0 code", main)
        };
        assert_eq!(run(false).may_start(&plain), Ok(()));
        assert_eq!(
            run(false).may_start(&granted),
            Err(ApiError::NotGranted("caller"))
        );
        assert_eq!(run(true).may_start(&granted), Ok(()));
        let text = alloc::format!("{}", ApiError::NotGranted("caller"));
        assert!(text.starts_with("app 'caller' may not start an app that runs BareMetal code"));
    }

    #[test]
    fn binary_errors_say_what_is_wrong() {
        let text = |e: BinaryError| alloc::format!("{e}");
        // The message names xtask's flag, not only QEMU's (walk-through finding).
        assert!(text(BinaryError::NoModule).contains(
            "needs a boot module (the app's flat binary: `cargo xtask run --module FILE`, or"
        ));
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
        assert!(text(BinaryError::JobsRunning { jobs: 2 }).starts_with("2 cores still run jobs"));
        assert!(text(BinaryError::NotGranted("hello")).starts_with("app 'hello' may not load"));
    }
}
