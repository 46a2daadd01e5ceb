//! The kernel as an app sees it: the [`Kernel`] token, and its calls as direct calls of
//! the kernel's entry points.
//!
//! Every kernel call is declared once, in the list of [`kernel_calls!`](crate::kernel_calls).
//! That list gives both sides: here, one `unsafe extern "Rust"` block declaring each call's
//! entry point `rexo_kernel_NAME` as a `safe fn` (calling it needs no `unsafe`) and the
//! [`Kernel`] method that calls it; in the kernel, [`export_kernel!`](crate::export_kernel)
//! defines the same symbols (`#[unsafe(export_name)]`) over a trait with the same
//! methods, `KernelCalls`, which the kernel implements for [`AppRun`]. Both come from
//! the same tokens, so their signatures cannot differ. With the release profile's
//! link-time optimisation a call is a direct call, often inlined (`cores()` becomes one
//! load); there is no trait object and no vtable.
#![allow(unsafe_code)] // the entry points' declarations, and the token's constructor

pub use rexo_captable::OwnerId;

use crate::call_types::*;
use crate::{BlockDevice, KeyboardDevice};

/// The cores of an app run: machine indices `first..first + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreSpan {
    /// The first core's machine index.
    pub first: usize,
    /// How many cores.
    pub count: usize,
}

impl CoreSpan {
    /// The machine indices of the cores: `first..first + count`.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.first..self.first + self.count
    }
}

/// An app run as the kernel records it: what a [`Kernel`] token acts for. A record
/// grants nothing by itself; only the token the kernel mints from it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppRun {
    /// The capability owner the run's calls act as.
    pub owner: OwnerId,
    /// The owner whose core capabilities the run uses (its own, or its `run_app` caller's).
    pub core_holder: OwnerId,
    /// The app's name (device holders are shown by it).
    pub name: &'static str,
    /// The run's cores.
    pub cores: CoreSpan,
    /// The run's memory quota in bytes (`None`: no quota).
    pub quota: Option<u64>,
    /// Whether the run may load and run BareMetal code: its app entry's
    /// [`may_run_baremetal`](crate::AppEntry::may_run_baremetal) (a run `run_app` started
    /// has its own app's, not its caller's).
    pub may_run_baremetal: bool,
}

impl AppRun {
    /// `Ok` if the run may load and run BareMetal code, else why not.
    pub fn baremetal_granted(&self) -> Result<(), crate::BinaryError> {
        if self.may_run_baremetal {
            Ok(())
        } else {
            Err(crate::BinaryError::NotGranted(self.name))
        }
    }

    /// `Ok` if the run may start `app` with [`Kernel::run_app`]: an app that may run
    /// BareMetal code only from a run that may too, else why not.
    pub fn may_start(&self, app: &crate::AppEntry) -> Result<(), ApiError> {
        if app.may_run_baremetal && !self.may_run_baremetal {
            Err(ApiError::NotGranted(self.name))
        } else {
            Ok(())
        }
    }
}

/// The kernel as an app sees it: a token that acts for one app run ([`AppRun`]). The
/// kernel lends one to the app's `main` and to each of its core tasks, by reference for
/// the call only; every method is a direct call into the kernel.
///
/// Apps cannot mint one: the only constructor, [`Kernel::new`], is an `unsafe fn`, and
/// calling it needs an `unsafe` block, which apps and library OSes cannot write
/// (`#![forbid(unsafe_code)]`, and the build's app check refuses the word); the field is
/// private, so a struct literal does not build either, and the token is neither `Clone`
/// nor `Copy`, so an app cannot keep one past its call:
///
/// ```compile_fail,E0133
/// # use rexo_api::{AppRun, CoreSpan, Kernel, OwnerId};
/// let run = AppRun {
///     owner: OwnerId(1),
///     core_holder: OwnerId(1),
///     name: "forger",
///     cores: CoreSpan { first: 0, count: 1 },
///     quota: None,
///     may_run_baremetal: true,
/// };
/// let kernel = Kernel::new(run);
/// ```
///
/// ```compile_fail,E0599
/// fn keep(kernel: &rexo_api::Kernel) -> rexo_api::Kernel {
///     kernel.clone()
/// }
/// ```
#[derive(Debug)]
pub struct Kernel {
    run: AppRun,
}

impl Kernel {
    /// Mints the token for `run`: the kernel's alone.
    ///
    /// # Safety
    ///
    /// Only the kernel may call this, for an app run it started (or for itself): a token
    /// is the authority to act as `run.owner` on `run.cores`, and the kernel's capability
    /// checks trust the owner it names. A token minted elsewhere breaks the protection
    /// between apps.
    pub const unsafe fn new(run: AppRun) -> Self {
        Self { run }
    }

    /// The app run this token acts for.
    pub const fn run(&self) -> &AppRun {
        &self.run
    }

    /// Runs `work` on the memory `cap` names, in place, and gives back what it returns
    /// ([`with_memory`](Kernel::with_memory)).
    ///
    /// The bytes are `work`'s for the call only: no reference to them can outlive it, even
    /// through a capability leaked to `'static` (the slice's lifetime is the call's own),
    /// so when the capability goes (returned, taken by force, or released as the app ends)
    /// nothing of the app can reach its frames again. While `work` runs, `cap` is borrowed:
    /// it cannot be returned, delegated, split, merged or derived from, nor mapped twice. A
    /// holder that misses a revocation deadline while in `work` loses the memory by force:
    /// the kernel unmaps it, and the next touch ends the app's task ("app X touched revoked
    /// region Y"); nothing is read or written, and the frames go to nobody else until the
    /// app has ended.
    ///
    /// ```no_run
    /// # use rexo_api::{ApiError, Kernel};
    /// fn app(kernel: &Kernel) -> Result<(), ApiError> {
    ///     let mut cap = kernel.allocate_memory(8192)?;
    ///     let first = kernel.map_memory(&mut cap, |bytes| {
    ///         bytes[..5].copy_from_slice(b"hello");
    ///         bytes[0]
    ///     })?;
    ///     assert_eq!(first, b'h');
    ///     kernel.return_memory(cap).map_err(|(error, _cap)| error)
    /// }
    /// ```
    ///
    /// Keeping the bytes past the call does not build, not even from a leaked capability:
    ///
    /// ```compile_fail,E0521
    /// # use rexo_api::{ApiError, Kernel};
    /// # use std::sync::Mutex;
    /// static KEPT: Mutex<Option<&'static mut [u8]>> = Mutex::new(None);
    /// fn app(kernel: &Kernel) -> Result<(), ApiError> {
    ///     let cap = Box::leak(Box::new(kernel.allocate_memory(4096)?));
    ///     kernel.map_memory(cap, |bytes| *KEPT.lock().unwrap() = Some(bytes))
    /// }
    /// ```
    pub fn map_memory<R>(
        &self,
        cap: &mut MemoryCap,
        work: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, ApiError> {
        let (mut work, mut result) = (Some(work), None);
        self.with_memory(cap, &mut |bytes| {
            result = work.take().map(|work| work(bytes));
        })?;
        // Defensive: the kernel answers Ok only after running `work`, so a missing result
        // means a kernel that broke with_memory's contract; the app gets an error, not a
        // panic.
        result.ok_or(ApiError::Refused(crate::CapError::Revoked))
    }

    /// Opens network interface `index` ([`open_device`](Kernel::open_device)).
    pub fn open_net(&self, index: usize) -> Result<Box<dyn NetDevice>, ApiError> {
        self.open_device(DeviceKind::Net, index)?.into_net()
    }

    /// Opens disk `index` ([`open_device`](Kernel::open_device)).
    pub fn open_block(&self, index: usize) -> Result<Box<dyn BlockDevice>, ApiError> {
        self.open_device(DeviceKind::Block, index)?.into_block()
    }

    /// Opens keyboard `index` ([`open_device`](Kernel::open_device)).
    pub fn open_keyboard(&self, index: usize) -> Result<Box<dyn KeyboardDevice>, ApiError> {
        self.open_device(DeviceKind::Keyboard, index)?
            .into_keyboard()
    }
}

/// The types the kernel calls' signatures name, for both expansions of
/// [`kernel_calls!`](crate::kernel_calls) (here and in the kernel).
#[doc(hidden)]
pub mod call_types {
    pub use crate::{
        ApiError, AppInfo, AppRun, BinaryError, CapInfo, CoreCap, CoreTask, DeviceInfo, DeviceKind,
        DiskExtent, ExtentOp, Filter, InterruptCap, Ipv4Config, Kernel, LoadedInfo, MemoryCap,
        MemoryInfo, MemoryOp, NetDevice, NetSharing, OpenDevice, PciFunction, TimerCap,
    };
    pub use alloc::{boxed::Box, vec::Vec};
    pub use core::fmt;
}

/// Every kernel call, in one list (each with its doc comment, as `fn NAME(&self, ...)
/// -> RESULT;`), handed to [`kernel_call_items!`](crate::kernel_call_items) with a mode:
/// `declare` (this crate: the entry points' declarations and the [`Kernel`] methods) or
/// `export` (the kernel, through [`export_kernel!`](crate::export_kernel)). Call
/// `NAME`'s entry point is the symbol `rexo_kernel_NAME`.
#[doc(hidden)]
#[macro_export]
macro_rules! kernel_calls {
    ($($mode:tt)*) => {
        $crate::kernel_call_items! { [$($mode)*]
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
            /// Seconds since 1970-01-01 00:00:00 UTC: the machine's CMOS clock (read at
            /// the first call, which does not wait for its next second, and again every
            /// 10 minutes; assumed to keep UTC) plus the time since: the clock's second
            /// or the one before, give or take the drift since the last reading (0.6 s
            /// at most at 0.1%), never less than an answer given before.
            /// [`ApiError::NoWallClock`] on a machine without one, or for 60 s after a
            /// failed reading, after which a call reads the clock again.
            fn unix_time_s(&self) -> Result<u64, ApiError>;
            /// A random number from the CPU: RDSEED's where CPUID says it has the
            /// instruction, else (or when 10 tries gave none) RDRAND's, tried 10 times
            /// as Intel's DRNG guide advises. [`ApiError::NoRandom`] when the CPU has
            /// neither or both kept failing: the caller decides what to do without.
            fn random_u64(&self) -> Result<u64, ApiError>;
            /// Writes one log line (with the time and core number) to the consoles, its
            /// control characters shown as escapes (`^J`, `^[`), never sent.
            fn log(&self, line: fmt::Arguments<'_>);
            /// Runs `task` once on every core of the app and returns when all have finished; the
            /// calling core runs queued work while it waits. The task's index is the core's place
            /// among the app's cores (`0..cores()`); `core_index()` inside the task gives the
            /// machine's index of the core. An app that does not hold the capability of one of
            /// its cores gets [`ApiError::CoreNotHeld`] naming it, and nothing runs. The task
            /// is queued core by core, in the order of the app's cores: if a core's mailbox
            /// is full, the call waits for the tasks queued before it and answers
            /// [`ApiError::QueueFull`], so the task may have run on some cores (calling
            /// again runs it there twice).
            fn run_on_every_core(&self, task: CoreTask) -> Result<(), ApiError>;
            /// The next byte of console input (serial line or PS/2 keyboard), without waiting.
            /// Keys arrive as a terminal sends them: `\r` for Enter, 0x7F for Backspace, `ESC [ A`
            /// for the up arrow.
            fn read_byte(&self) -> Option<u8>;
            /// Writes text to the consoles as it is (no log prefix, no newline added). Up to
            /// 4 KiB of it are written whole: other cores' output never lands inside them. A
            /// longer text goes in pieces of at most 4 KiB, each cut after its last newline
            /// (else at a character), and other cores' lines may come between pieces (the
            /// console is not held for the whole of a long text).
            fn write_str(&self, text: &str);
            /// Halts the calling core until about `ns` nanoseconds passed or an interrupt came (a
            /// device's wake message after `NetDevice::wake_on_receive`, a cross-core wake),
            /// whichever is first: one nap, so callers check what woke them.
            fn sleep_ns(&self, ns: u64);
            /// The machine's memory.
            fn memory(&self) -> MemoryInfo;
            /// The apps linked into the image.
            fn apps(&self) -> Vec<AppInfo>;
            /// Runs the app `name` on the calling core and returns when it does, within what
            /// is left of the caller's memory quota; what it allocated and delegated to
            /// another app stays charged to the caller after it ends, until the frames go back.
            /// Refused ([`ApiError::NotGranted`]) when the app may run BareMetal code
            /// ([`AppEntry::may_run_baremetal`](crate::AppEntry::may_run_baremetal)) and the
            /// caller may not ([`AppRun::may_start`]).
            fn run_app(&self, name: &str) -> Result<(), ApiError>;
            /// Reboots the machine, every disk told first as at a power-off (each refuses
            /// every request from then on).
            fn reboot(&self) -> !;
            /// Powers the machine off; returns only if that is impossible, saying why.
            fn power_off(&self) -> ApiError;
            /// Grants the caller `bytes` of zeroed memory (whole 4 KiB frames) as a capability;
            /// [`ApiError::QuotaExceeded`] past the app's memory quota (whole frames count),
            /// [`ApiError::OutOfMemory`] when it would leave the kernel less than its reserve
            /// (4 MiB, which its heap grows into);
            /// [`CapError::BadRange`](crate::CapError::BadRange) for 0 bytes;
            /// [`CapError::TooManyEntries`](crate::CapError::TooManyEntries) while
            /// [`MAX_APP_ENTRIES`](crate::MAX_APP_ENTRIES) entries the app's requests made (grants,
            /// derives, splits) are live, and
            /// [`CapError::Full`](crate::CapError::Full) when only the entries kept for the
            /// kernel's own mints (cores, timers, interrupt bindings) are left.
            fn allocate_memory(&self, bytes: u64) -> Result<MemoryCap, ApiError>;
            /// Copies `data` into the memory `cap` names, at `offset` (needs the write right).
            /// [`CapError::Revoked`](crate::CapError::Revoked) for a revoked `cap`, and as
            /// well for `data` in memory the kernel took by force from the app (a view past
            /// its revocation deadline): the copy would fault.
            fn write_memory(&self, cap: &MemoryCap, offset: u64, data: &[u8])
                -> Result<(), ApiError>;
            /// Copies from the memory `cap` names, at `offset`, into `buffer` (needs the read
            /// right; `Revoked` as for [`write_memory`](Kernel::write_memory)).
            fn read_memory(&self, cap: &MemoryCap, offset: u64, buffer: &mut [u8])
                -> Result<(), ApiError>;
            /// Runs `work` once on the memory `cap` names, in place: zero copy, the bytes read
            /// and written with no kernel call ([`map_memory`](Kernel::map_memory) is the same
            /// for work that gives a value). Needs the read and write rights, and no other live
            /// capability may name the memory: refused with
            /// [`CapError::Overlaps`](crate::CapError::Overlaps) while a parent or derived
            /// capability does.
            fn with_memory(&self, cap: &mut MemoryCap, work: &mut dyn FnMut(&mut [u8]))
                -> Result<(), ApiError>;
            /// Gives the memory back; the capability (and all derived from it) stops working.
            /// A refused return gives the capability back with the reason (a capability of
            /// another kind, [`CapError::WrongKind`](crate::CapError::WrongKind), stays live).
            fn return_memory(&self, cap: MemoryCap) -> Result<(), (ApiError, MemoryCap)>;
            /// Derives, splits, merges or takes back by force (what `op` says) with the memory
            /// capability `cap`; derive and split give the new capability, and are refused
            /// past the table's limits as [`allocate_memory`](Kernel::allocate_memory) is.
            fn memory_op(&self, cap: &MemoryCap, op: MemoryOp<'_>)
                -> Result<Option<MemoryCap>, ApiError>;
            /// Hands `cap` to the running app `app` (needs the delegate right): from then on that
            /// app holds it, and finds it in its [`received_memory`](Kernel::received_memory).
            /// To lend and keep the power to take back, derive a child and delegate the child.
            /// A refused delegation gives the capability back with the reason:
            /// [`ApiError::NoSuchApp`] when no app of that name runs (or it ended meanwhile;
            /// a name over 64 bytes names none), [`ApiError::AmbiguousApp`] while two runs
            /// of it go (a boot manifest's).
            fn delegate_memory(&self, cap: MemoryCap, app: &str)
                -> Result<(), (ApiError, MemoryCap)>;
            /// The memory capabilities other apps delegated to the caller since it last asked.
            fn received_memory(&self) -> Vec<MemoryCap>;
            /// Every live capability in the machine: who holds what (the monitor's `caps`).
            fn capabilities(&self) -> Vec<CapInfo>;
            /// The capabilities over the app's cores that the kernel minted when it started, each
            /// handed out once (a second call gives only what came since: nothing).
            fn core_caps(&self) -> Vec<CoreCap>;
            /// Gives a core back: from then on [`run_on_every_core`](Kernel::run_on_every_core)
            /// and [`arm_timer`](Kernel::arm_timer) answer [`ApiError::CoreNotHeld`] for it.
            /// A refused return gives the capability back with the reason.
            fn return_core(&self, cap: CoreCap) -> Result<(), (ApiError, CoreCap)>;
            /// Arms the calling core's timer for monotonic time `deadline_ns`: a one-shot deadline
            /// on a core the app holds ([`ApiError::CoreNotHeld`] otherwise), in the future
            /// ([`ApiError::DeadlinePassed`]), one per core at a time, fired or not, until it is
            /// returned ([`ApiError::TimerBusy`]). The core takes its timer interrupt then (ending
            /// a nap of [`sleep_ns`](Kernel::sleep_ns)); [`timer_fired`](Kernel::timer_fired) says
            /// whether it has.
            fn arm_timer(&self, deadline_ns: u64) -> Result<TimerCap, ApiError>;
            /// Whether the timer's core took its timer interrupt at or after the deadline.
            fn timer_fired(&self, timer: &TimerCap) -> Result<bool, ApiError>;
            /// Gives the timer back, cancelling its deadline if it has not fired. A refused
            /// return gives the capability back with the reason.
            fn return_timer(&self, timer: TimerCap) -> Result<(), (ApiError, TimerCap)>;
            /// The interrupt bindings minted for the app since it last asked, each handed out
            /// once: one per queue of a leased device whose wake-up it armed
            /// (`wake_on_receive`, `wake_on_completion`); `DeviceInfo::interrupts` says which.
            fn interrupt_caps(&self) -> Vec<InterruptCap>;
            /// Gives an interrupt binding back: the source is masked, and arming the queue
            /// again answers [`DeviceError::Unbound`](crate::DeviceError::Unbound) until the
            /// device is opened anew. A refused return gives the capability back with the
            /// reason: one of another kind
            /// ([`CapError::WrongKind`](crate::CapError::WrongKind)) stays live.
            fn return_interrupt(&self, cap: InterruptCap)
                -> Result<(), (ApiError, InterruptCap)>;
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
            /// a refused binary leaves the earlier one in place. Refused
            /// ([`BinaryError::JobsRunning`]) while cores still run the loaded binary
            /// ([`exec_baremetal`](Kernel::exec_baremetal)) or jobs it gave them (BareMetal's
            /// `smp_set`), which would go on in the new binary. Refused
            /// ([`BinaryError::NotGranted`]) to an app whose entry in the image's app table
            /// does not grant it ([`AppEntry::may_run_baremetal`](crate::AppEntry::may_run_baremetal): the
            /// monitor's does), since the binary runs in ring 0 with the kernel's rights.
            fn load_baremetal(&self, binary: Option<&[u8]>) -> Result<LoadedInfo, BinaryError>;
            /// Runs the loaded BareMetal binary on the calling core, trusted and in ring 0 as on
            /// BareMetal, with BareMetal's call table installed; returns its RAX when it returns.
            /// Memory it changed stays changed: a second run starts from that state, a
            /// [`load_baremetal`](Kernel::load_baremetal) starts afresh. Refused
            /// ([`BinaryError::Loading`]) while a load runs on another core, and
            /// ([`BinaryError::NotGranted`]) to an app not granted BareMetal code, as
            /// [`load_baremetal`](Kernel::load_baremetal) is.
            fn exec_baremetal(&self) -> Result<u64, BinaryError>;
            /// Every device a driver is bound to (drivers bind on the first call of this or the
            /// `open_` calls), with its holder.
            fn devices(&self) -> Vec<DeviceInfo>;
            /// Opens device `index` of `kind` for the caller alone until the handle is dropped
            /// ([`ApiError::DeviceBusy`] while another app holds it, or while the kernel
            /// reads or writes its extent table for another call).
            fn open_device(&self, kind: DeviceKind, index: usize) -> Result<OpenDevice, ApiError>;
            /// Applies `op` (if any) to disk `disk`'s extent table as the caller, then returns
            /// the table's extents. The disk must not be open (by anyone) meanwhile
            /// ([`ApiError::DeviceBusy`]), nor its table being read or written for
            /// another call (`DeviceBusy` naming the kernel).
            fn disk_extents(&self, disk: usize, op: Option<ExtentOp>)
                -> Result<Vec<DiskExtent>, ApiError>;
            /// Binds the caller to the frames of network interface `index` that match one of
            /// `filters`, sharing the interface with other apps (the MIT exokernel's packet
            /// filters). The kernel refuses a filter that overlaps any bound, the caller's too
            /// ([`ApiError::FilterOverlap`]), runs the merged filters on every frame it receives,
            /// hands the caller's frames to it in place when it polls (frames another app's poll
            /// finds are queued for it), answers ARP and ping for the address of `ip=` itself
            /// ([`ApiError::NoAddress`] without it), and lets the caller send only from that
            /// address IPv4 frames (no later fragment) one of its filters would take with
            /// their two ends traded (from the ports it receives on, to the sources it
            /// receives from, with the payload bytes the filter names), ARP requests, and
            /// frames of another EtherType (0x0600 or more, not a carrier of other frames
            /// such as a VLAN tag) that one of its filters names whole and would take with
            /// only the two MACs traded, never an EtherType none of them names
            /// ([`DeviceError::Withdrawn`](crate::DeviceError::Withdrawn) otherwise).
            /// [`ApiError::DeviceBusy`] while an app holds the interface whole;
            /// [`ApiError::NoFilters`] for none, [`ApiError::TooManyFilters`] for more than
            /// [`MAX_BINDING_FILTERS`](crate::MAX_BINDING_FILTERS) filters,
            /// [`ApiError::TooManyAtoms`] for a filter of more atoms than a filter may have
            /// (a transmit rule may), [`ApiError::TooManyFilterTests`] when its filters,
            /// merged with those bound, would cost a frame more field tests than the
            /// kernel allows, [`ApiError::FilterTestShare`] when the caller's filters on
            /// the interface would cost more than its share of them,
            /// [`ApiError::TooManyBindings`] while the caller holds
            /// [`MAX_APP_BINDINGS`](crate::MAX_APP_BINDINGS) bindings on the interface or
            /// the interface holds [`MAX_INTERFACE_BINDINGS`](crate::MAX_INTERFACE_BINDINGS)
            /// in all. A refused binding installs none of its filters.
            fn bind_net(&self, index: usize, filters: &[Filter])
                -> Result<Box<dyn NetDevice>, ApiError>;
            /// How interface `index` is shared: `None` when no app is bound to it by filters.
            fn net_sharing(&self, index: usize) -> Result<Option<NetSharing>, ApiError>;
        }
    };
}

/// One expansion of the list of [`kernel_calls!`](crate::kernel_calls): `[declare]` or
/// `[export]`.
#[doc(hidden)]
#[macro_export]
macro_rules! kernel_call_items {
    ([declare] $(
        $(#[$doc:meta])*
        fn $name:ident $(<$lt:lifetime>)? (&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?;
    )*) => {
        /// The kernel's entry points.
        mod entry {
            use $crate::call_types::*;

            // SAFETY: the kernel defines each symbol with `export_kernel!`, from the same
            // list and so with the same signature, as a safe Rust function; a `Kernel` is
            // all a call needs, and only the kernel mints one.
            unsafe extern "Rust" {
                $(
                    #[link_name = concat!("rexo_kernel_", stringify!($name))]
                    pub(super) safe fn $name $(<$lt>)? (kernel: &Kernel $(, $arg: $ty)*)
                        $(-> $ret)?;
                )*
            }
        }

        impl Kernel {
            $(
                $(#[$doc])*
                #[inline]
                pub fn $name $(<$lt>)? (&self $(, $arg: $ty)*) $(-> $ret)? {
                    entry::$name(self $(, $arg)*)
                }
            )*
        }
    };
    ([export] $(
        $(#[$doc:meta])*
        fn $name:ident $(<$lt:lifetime>)? (&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?;
    )*) => {
        use $crate::call_types::*;

        /// The kernel's side of each call of [`Kernel`], for the app run a token acts for
        /// ([`AppRun`]): the entry points call it.
        pub trait KernelCalls {
            $(
                $(#[$doc])*
                fn $name $(<$lt>)? (&self $(, $arg: $ty)*) $(-> $ret)?;
            )*
        }

        $(
            #[unsafe(export_name = concat!("rexo_kernel_", stringify!($name)))]
            fn $name $(<$lt>)? (kernel: &Kernel $(, $arg: $ty)*) $(-> $ret)? {
                KernelCalls::$name(kernel.run() $(, $arg)*)
            }
        )*
    };
}

/// Defines the kernel's entry points (the symbols `rexo_kernel_NAME`) and the trait
/// `KernelCalls` they call: the calls of [`Kernel`] with the same signatures, which the
/// kernel implements for [`AppRun`] (the run a token acts for is `self`). Both come from
/// the one list the [`Kernel`] methods come from, so the two sides cannot differ. The
/// kernel invokes it once, in a module of its own; the build's app check refuses apps and
/// library OSes that name it (or the list's macros).
#[macro_export]
macro_rules! export_kernel {
    () => {
        $crate::kernel_calls! { export }
    };
}

kernel_calls!(declare);
