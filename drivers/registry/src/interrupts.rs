//! Interrupt bindings: which interrupt sources of a leased device are bound to its holder.
//!
//! The first time a lease arms a queue's wake-up, the kernel records the vector the
//! driver routed the queue's source to (its MSI or MSI-X message, or its legacy line) and
//! mints an `InterruptVector` capability for the holder ([`Binder::bind`]): a share of
//! the kernel's root over the vectors, since one vector serves many sources (every MSI
//! source goes to a core's wake vector, devices share a line). What is exclusive is the
//! binding of a (device, queue) source to one lease, and that is kept here, per slot.
//! The holder returns the capability ([`Registry::return_interrupt`](crate::Registry::return_interrupt))
//! or the kernel revokes it: the source is disarmed and the queue refuses to arm again
//! ([`DeviceError::Unbound`]) until the device is opened anew. A forced revocation is
//! found by the kernel's sweep ([`Registry::disarm_revoked`](crate::Registry::disarm_revoked))
//! (on a device another core holds in a call, by that call as it returns) or, failing
//! that, by the holder's next arm. When the lease ends, its bindings go back
//! to the kernel.

use alloc::vec::Vec;

use rexo_api::{Cap, CapError, DeviceError, EntryId, InterruptBinding};
use rexo_devio::Found;

use crate::{Slot, SlotState};

/// What one sweep of [`Registry::disarm_revoked`](crate::Registry::disarm_revoked) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Sources disarmed: bindings taken by force, now unbound.
    pub disarmed: usize,
    /// Slots passed by unswept, because the calling core is inside a call holding their
    /// lock or one of their queue pairs' gates: a binding taken by force there is still
    /// armed, and the sweep must run again once that call returned (the kernel asks for
    /// it again). A slot another core holds in a call is not counted: that call disarms
    /// it as it returns.
    pub passed_by: usize,
}

/// The kernel's half of a lease: interrupt bindings, and the abort points under which a
/// device call runs the app's own code ([`Binder::run_app_code`]), and the kernel sections
/// the registry's own code in an app's call runs as ([`Binder::kernel_section`]).
pub trait Binder: Sync {
    /// The vector a driver routed an interrupt source to on the calling core since the
    /// last call (a wake message or a line), taken; `None` when it routed none.
    fn take_routed(&self) -> Option<u8>;
    /// Mints for app `owner` a capability over `vector`, handed out by its next
    /// `interrupt_caps`.
    fn bind(&self, owner: u16, vector: u8) -> Result<EntryId, CapError>;
    /// Whether `entry` is still live (not returned, not revoked).
    fn live(&self, entry: EntryId) -> bool;
    /// The holder `owner` gives `cap` back; refused, with `cap` given back, when it is not
    /// its live interrupt capability (another kind stays live).
    fn give_back(&self, owner: u16, cap: Cap) -> Result<(), (CapError, Cap)>;
    /// The kernel takes `entry` back (its lease ended).
    fn take_back(&self, entry: EntryId);
    /// Runs `code`, the app's, under an abort point of its own: `true` if the app panicked
    /// or broke the abort protocol in it (its end is then put off to
    /// [`Binder::end_aborted_app`]).
    fn run_app_code(&self, code: &mut dyn FnMut()) -> bool;
    /// Ends the app whose code [`Binder::run_app_code`] saw abort, at the app's own abort
    /// point, once the device call is done with the device.
    fn end_aborted_app(&self) -> !;
    /// Runs `call`, registry code an app's call reached, as a kernel section: a panic or a
    /// failed allocation in it is the kernel's, not the app's end with a lock held; the
    /// app's code inside it still runs under an abort point of its own
    /// ([`Binder::run_app_code`]).
    fn kernel_section(&self, call: &mut dyn FnMut());
    /// The machine's index of the calling core (a device's lock records the core inside a
    /// call that holds it, to answer a call from that call's own closure).
    fn core_index(&self) -> usize;
    /// Nanoseconds since boot (monotonic): how long a BareMetal call has waited for its
    /// device ([`crate::baremetal`]).
    fn now_ns(&self) -> u64;
}

/// A [`Binder`] made of the kernel's functions, one per method.
pub struct BinderFns {
    /// [`Binder::take_routed`].
    pub take_routed: fn() -> Option<u8>,
    /// [`Binder::bind`].
    pub bind: fn(u16, u8) -> Result<EntryId, CapError>,
    /// [`Binder::live`].
    pub live: fn(EntryId) -> bool,
    /// [`Binder::give_back`].
    pub give_back: fn(u16, Cap) -> Result<(), (CapError, Cap)>,
    /// [`Binder::take_back`].
    pub take_back: fn(EntryId),
    /// [`Binder::run_app_code`].
    pub run_app_code: fn(&mut dyn FnMut()) -> bool,
    /// [`Binder::end_aborted_app`].
    pub end_aborted_app: fn() -> !,
    /// [`Binder::kernel_section`].
    pub kernel_section: fn(&mut dyn FnMut()),
    /// [`Binder::core_index`].
    pub core_index: fn() -> usize,
    /// [`Binder::now_ns`].
    pub now_ns: fn() -> u64,
}

impl Binder for BinderFns {
    fn take_routed(&self) -> Option<u8> {
        (self.take_routed)()
    }
    fn bind(&self, owner: u16, vector: u8) -> Result<EntryId, CapError> {
        (self.bind)(owner, vector)
    }
    fn live(&self, entry: EntryId) -> bool {
        (self.live)(entry)
    }
    fn give_back(&self, owner: u16, cap: Cap) -> Result<(), (CapError, Cap)> {
        (self.give_back)(owner, cap)
    }
    fn take_back(&self, entry: EntryId) {
        (self.take_back)(entry)
    }
    fn run_app_code(&self, code: &mut dyn FnMut()) -> bool {
        (self.run_app_code)(code)
    }
    fn end_aborted_app(&self) -> ! {
        (self.end_aborted_app)()
    }
    fn kernel_section(&self, call: &mut dyn FnMut()) {
        (self.kernel_section)(call)
    }
    fn core_index(&self) -> usize {
        (self.core_index)()
    }
    fn now_ns(&self) -> u64 {
        (self.now_ns)()
    }
}

/// One queue's binding under one lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bound {
    /// The lease's generation.
    generation: u64,
    /// The queue.
    queue: usize,
    /// The capability; `None` once returned or revoked.
    entry: Option<EntryId>,
}

/// A slot's bindings.
#[derive(Default)]
pub(crate) struct Bindings(Vec<Bound>);

impl Bindings {
    /// The live bindings, for `DeviceInfo::interrupts`.
    pub(crate) fn list(&self) -> Vec<InterruptBinding> {
        let live = |b: &Bound| {
            b.entry.map(|entry| InterruptBinding {
                entry,
                queue: b.queue,
            })
        };
        self.0.iter().filter_map(live).collect()
    }

    /// The queue bound by `entry`.
    pub(crate) fn queue_of(&self, entry: EntryId) -> Option<usize> {
        self.0
            .iter()
            .find(|b| b.entry == Some(entry))
            .map(|b| b.queue)
    }

    /// Marks `entry`'s binding unbound (returned or revoked).
    pub(crate) fn unbind(&mut self, entry: EntryId) {
        for bound in self.0.iter_mut().filter(|b| b.entry == Some(entry)) {
            bound.entry = None;
        }
    }

    /// Marks unbound every binding whose capability the kernel took by force (no longer
    /// live), and returns their queues for disarming.
    pub(crate) fn revoked(&mut self, binder: &dyn Binder) -> Vec<usize> {
        let revoked = |b: &&mut Bound| b.entry.is_some_and(|entry| !binder.live(entry));
        let unbind = |b: &mut Bound| {
            b.entry = None;
            b.queue
        };
        self.0.iter_mut().filter(revoked).map(unbind).collect()
    }

    /// Forgets every binding (the lease ended): each live one goes back to the kernel,
    /// and its queue is returned for disarming.
    pub(crate) fn end(&mut self, binder: &dyn Binder) -> Vec<usize> {
        let ended = core::mem::take(&mut self.0);
        ended
            .into_iter()
            .filter_map(|b| {
                b.entry.map(|entry| {
                    binder.take_back(entry);
                    b.queue
                })
            })
            .collect()
    }
}

/// Arms (`core` `Some`) or disarms `queue` of the device under lease `generation` of
/// `owner`, through the driver's wake call ([`driver_arm`]), with the binding rules of the
/// module: an unbound queue is refused with nothing armed; a binding the kernel revoked
/// is found here, its source disarmed and refused; the first arm binds the vector it
/// routes (if it routes none, or the kernel cannot bind it, the source is disarmed again
/// and [`DeviceError::Unsupported`] given, or [`DeviceError::TooManyInterruptBindings`]
/// when the kernel holds its most bindings).
pub(crate) fn arm(
    (bindings, device): (&mut Bindings, &mut Found),
    (binder, owner, generation): (&dyn Binder, u16, u64),
    (queue, core): (usize, Option<usize>),
) -> Result<(), DeviceError> {
    if core.is_none() {
        return driver_arm(device, queue, None);
    }
    let at = bindings
        .0
        .iter()
        .position(|b| (b.generation, b.queue) == (generation, queue));
    match at.map(|i| bindings.0[i].entry) {
        Some(None) => return Err(DeviceError::Unbound),
        Some(Some(entry)) if !binder.live(entry) => {
            bindings.unbind(entry);
            let _ = driver_arm(device, queue, None);
            return Err(DeviceError::Unbound);
        }
        _ => {}
    }
    binder.take_routed();
    driver_arm(device, queue, core)?;
    let routed = binder.take_routed();
    if at.is_some() {
        return Ok(());
    }
    // Armed but unbound, the source would be out of the kernel's reach: nothing to
    // revoke, nothing the lease's end disarms.
    let Some(vector) = routed else {
        let _ = driver_arm(device, queue, None);
        return Err(DeviceError::Unsupported(
            "an interrupt binding (the driver armed the source but routed no vector)",
        ));
    };
    match binder.bind(owner, vector) {
        Ok(entry) => {
            let entry = Some(entry);
            bindings.0.push(Bound {
                generation,
                queue,
                entry,
            });
            Ok(())
        }
        Err(error) => {
            let _ = driver_arm(device, queue, None);
            Err(match error {
                CapError::TooManyShares { max } => DeviceError::TooManyInterruptBindings { max },
                _ => DeviceError::Unsupported(
                    "an interrupt binding (the kernel's capability table is full)",
                ),
            })
        }
    }
}

/// Disarms the source of every binding of `slot` (`state`, its lock) that the kernel
/// took by force and marks it unbound; returns how many (logged when any). The kernel's
/// sweep runs it on each slot it takes
/// ([`Registry::disarm_revoked`](crate::Registry::disarm_revoked)), and a call the sweep
/// handed the slot to, as it returns ([`crate::reentry::during`]).
pub(crate) fn disarm_revoked(slot: &Slot, state: &mut SlotState, binder: &dyn Binder) -> usize {
    let queues = state.interrupts.revoked(binder);
    for &queue in &queues {
        // Unbound either way; a device that cannot disarm masks nothing more.
        let _ = driver_arm(&mut state.device, queue, None);
    }
    if !queues.is_empty() {
        let (address, driver, disarmed) = (slot.address, slot.driver, queues.len());
        log::info!(
            "{address} {driver}: interrupt bindings revoked by force: {disarmed} source(s) disarmed"
        );
    }
    queues.len()
}

/// The driver's wake call for `queue` of a network interface or a disk.
pub(crate) fn driver_arm(
    device: &mut Found,
    queue: usize,
    core: Option<usize>,
) -> Result<(), DeviceError> {
    match device {
        Found::Net(nic) => nic.wake_on_receive(queue, core),
        Found::Block(disk) => disk.wake_on_completion(queue, core),
        Found::Keyboard(_) => Err(DeviceError::Revoked),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tests::{Armed, Counting, Wake};
    use crate::{Registry, Slot};
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    use rexo_api::{ApiError, DeviceKind, OpenDevice};
    use rexo_captable::{CapTable, OwnerId, Resource, ResourceKind, RevokeReason, Rights};
    use rexo_pci::Address;

    /// The tests' proof of kernel authority.
    pub(crate) struct Authority;

    /// The kernel's half over a real capability table: a root over the vectors held by
    /// owner 0, the minted capabilities kept as the kernel's inbox keeps them.
    pub(crate) struct TableBinder {
        /// The table, its root and the inbox.
        table: spin::Mutex<(CapTable<Authority, 32, 4, 4>, Cap, Vec<Cap>)>,
        /// What the last driver call routed (0: nothing).
        pub(crate) routed: AtomicU8,
        /// The most bindings at once (the kernel's `MAX_INTERRUPT_BINDINGS`).
        most: AtomicUsize,
    }

    impl TableBinder {
        /// A binder with an empty table but for the root, for the life of the tests.
        pub(crate) fn leaked() -> &'static Self {
            let mut table = CapTable::new();
            let vectors = Resource::new(ResourceKind::InterruptVector, 32, 224).unwrap();
            let root = table.mint(&Authority, OwnerId(0), vectors, Rights::READ);
            Box::leak(Box::new(Self {
                table: spin::Mutex::new((table, root.unwrap(), Vec::new())),
                routed: AtomicU8::new(0),
                most: AtomicUsize::new(rexo_api::MAX_INTERRUPT_BINDINGS),
            }))
        }

        /// The capabilities minted so far, taken.
        pub(crate) fn take_minted(&self) -> Vec<Cap> {
            core::mem::take(&mut self.table.lock().2)
        }

        /// Revokes `entry` by force, as the kernel does.
        pub(crate) fn revoke(&self, entry: EntryId) {
            let mut table = self.table.lock();
            table
                .0
                .revoke(&Authority, entry, RevokeReason::Kernel)
                .unwrap();
        }

        /// A live core capability for `owner`, to hand in where an interrupt one goes.
        fn core_cap(&self, owner: u16) -> Cap {
            let core = Resource::new(ResourceKind::Core, u64::from(owner), 1).unwrap();
            let mut table = self.table.lock();
            table
                .0
                .mint(&Authority, OwnerId(owner), core, Rights::READ)
                .unwrap()
        }
    }

    impl Binder for TableBinder {
        fn take_routed(&self) -> Option<u8> {
            Some(self.routed.swap(0, Ordering::Relaxed)).filter(|&v| v != 0)
        }
        fn bind(&self, owner: u16, vector: u8) -> Result<EntryId, CapError> {
            let resource = Resource::new(ResourceKind::InterruptVector, u64::from(vector), 1)?;
            let (table, root, inbox) = &mut *self.table.lock();
            let most = self.most.load(Ordering::Relaxed);
            let owner = OwnerId(owner);
            let cap =
                table.mint_child(&Authority, root.id(), owner, resource, Rights::READ, most)?;
            let id = cap.id();
            inbox.push(cap);
            Ok(id)
        }
        fn live(&self, entry: EntryId) -> bool {
            self.table.lock().0.entries().any(|e| e.id == entry)
        }
        fn give_back(&self, owner: u16, cap: Cap) -> Result<(), (CapError, Cap)> {
            let table = &mut self.table.lock().0;
            let info = table.check(OwnerId(owner), &cap, Rights::NONE);
            let returned = info.and_then(|info| {
                if info.resource.kind() != ResourceKind::InterruptVector {
                    return Err(CapError::WrongKind);
                }
                table.return_cap(OwnerId(owner), &cap).map(|_| ())
            });
            returned.map_err(|error| (error, cap))
        }
        fn take_back(&self, entry: EntryId) {
            let _ = self
                .table
                .lock()
                .0
                .revoke(&Authority, entry, RevokeReason::Kernel);
        }
        /// The host's abort point is a caught panic.
        fn run_app_code(&self, code: &mut dyn FnMut()) -> bool {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(code)).is_err()
        }
        /// The app's end on the host: a panic the test's caller catches.
        fn end_aborted_app(&self) -> ! {
            std::panic::panic_any(AppEnded)
        }
        /// The host's kernel section: a panic in it (the app's code's is caught by
        /// `run_app_code` first) comes out as [`KernelCrash`], the kernel's.
        fn kernel_section(&self, call: &mut dyn FnMut()) {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
                std::panic::panic_any(KernelCrash);
            }
        }
        /// Each test thread is a core of its own.
        fn core_index(&self) -> usize {
            static NEXT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
            std::thread_local! {
                static CORE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
            }
            CORE.with(|core| *core)
        }
        /// The host's clock, from the first reading (counted, [`clock_reads`]).
        fn now_ns(&self) -> u64 {
            CLOCK_READS.with(|reads| reads.set(reads.get() + 1));
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_nanos() as u64
        }
    }

    std::thread_local! {
        /// The calling thread's reads of [`TableBinder::now_ns`].
        static CLOCK_READS: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
    }

    /// How often this thread has read the test binder's clock: a call that read it never
    /// waited for anything (every wait is bounded on that clock), whatever the host's
    /// scheduler did meanwhile.
    pub(crate) fn clock_reads() -> u64 {
        CLOCK_READS.with(core::cell::Cell::get)
    }

    /// What [`TableBinder::end_aborted_app`] panics with.
    #[derive(Debug)]
    struct AppEnded;

    /// What [`TableBinder::kernel_section`] panics with: a crash report.
    #[derive(Debug)]
    struct KernelCrash;

    /// Runs `call`, which panics in the app's code; whether it ended the app through the
    /// kernel's half ([`AppEnded`]) rather than with the app's own panic running out of
    /// the device call.
    pub(crate) fn ends_the_app(call: impl FnOnce()) -> bool {
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_err();
        panic.is::<AppEnded>()
    }

    /// Runs `call`, which panics in the registry's or a driver's own code during an app's
    /// call; whether the panic came out of a kernel section ([`KernelCrash`]: the
    /// kernel's crash report) rather than running out of the call as the app's end.
    pub(crate) fn is_the_kernels(call: impl FnOnce()) -> bool {
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_err();
        panic.is::<KernelCrash>()
    }

    /// A registry of two NICs sharing line vector 219, and what each is armed for.
    fn two_on_a_line() -> (&'static Registry, &'static TableBinder, [Armed; 2]) {
        let binder = TableBinder::leaked();
        let armed = [Arc::default(), Arc::default()];
        let slots = (0..2)
            .map(|i| {
                let nic = Counting(0, Wake::Routed(binder, Arc::clone(&armed[i])));
                Slot::new(
                    Address::new(0, 0, 6 + i as u8, 0).unwrap(),
                    "waking",
                    Found::Net(Box::new(nic)),
                )
            })
            .collect();
        let registry = Registry {
            slots,
            bindings: Vec::new(),
            binder,
        };
        (Box::leak(Box::new(registry)), binder, armed)
    }

    /// NIC `index` of `registry`, opened by app `owner`.
    fn open(registry: &'static Registry, index: usize, owner: u16) -> Result<Nic, ApiError> {
        registry
            .open(DeviceKind::Net, index, (owner, "app"))
            .and_then(OpenDevice::into_net)
    }

    /// A leased NIC.
    type Nic = Box<dyn rexo_api::NetDevice>;

    /// [`two_on_a_line`], NIC 0 leased by app 1 and NIC 1 by app 2, each armed (for cores
    /// 0 and 1), and the two bindings minted.
    fn both_armed() -> (
        &'static Registry,
        &'static TableBinder,
        [Armed; 2],
        [Nic; 2],
        Vec<Cap>,
    ) {
        let (registry, binder, armed) = two_on_a_line();
        let (mut a, mut b) = (open(registry, 0, 1).unwrap(), open(registry, 1, 2).unwrap());
        a.wake_on_receive(0, Some(0)).unwrap();
        b.wake_on_receive(0, Some(1)).unwrap();
        (registry, binder, armed, [a, b], binder.take_minted())
    }

    #[test]
    fn a_binding_past_the_kernels_most_is_refused_with_its_source_disarmed() {
        let (registry, binder, armed) = two_on_a_line();
        binder.most.store(1, Ordering::Relaxed);
        let (mut a, mut b) = (open(registry, 0, 1).unwrap(), open(registry, 1, 2).unwrap());
        a.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(
            b.wake_on_receive(0, Some(1)),
            Err(DeviceError::TooManyInterruptBindings { max: 1 })
        );
        assert_eq!(
            *armed[1].lock(),
            None,
            "armed by the driver, disarmed again"
        );
        assert!(registry.devices()[1].interrupts.is_empty());
        // The first binding gone with its lease, the second app's arm binds.
        drop(a);
        assert_eq!(binder.take_minted().len(), 1);
        b.wake_on_receive(0, Some(1)).unwrap();
        assert_eq!(*armed[1].lock(), Some(1));
    }

    #[test]
    fn the_first_arm_binds_the_source_and_a_returned_binding_refuses_to_arm() {
        let (registry, binder, armed) = two_on_a_line();
        let open = |owner, name| {
            registry
                .open(DeviceKind::Net, 0, (owner, name))
                .and_then(OpenDevice::into_net)
        };
        let mut nic = open(1, "a").unwrap();
        nic.wake_on_receive(0, Some(2)).unwrap();
        nic.wake_on_receive(0, Some(3)).unwrap();
        assert_eq!(*armed[0].lock(), Some(3));
        assert_eq!(
            nic.wake_on_receive(1, Some(2)),
            Err(DeviceError::NoSuchQueue(1))
        );
        let mut minted = binder.take_minted();
        assert_eq!(minted.len(), 1, "one binding per queue and lease");
        let cap = minted.pop().unwrap();
        let listed = &registry.devices()[0].interrupts;
        assert_eq!(
            listed,
            &[InterruptBinding {
                entry: cap.id(),
                queue: 0
            }]
        );
        let info = binder
            .table
            .lock()
            .0
            .entries()
            .find(|e| e.id == cap.id())
            .unwrap();
        assert_eq!(
            (info.owner, info.resource.start(), info.rights),
            (OwnerId(1), 219, Rights::READ)
        );
        // A capability of another kind is refused; the binding and the core stay.
        let core = binder.core_cap(1);
        let core_id = core.id();
        let Err((CapError::WrongKind, core)) = registry.return_interrupt(1, core) else {
            panic!("a core capability returned as a binding was not refused with it back");
        };
        assert_eq!(core.id(), core_id);
        assert!(binder.live(core_id) && binder.live(cap.id()));
        assert_eq!(*armed[0].lock(), Some(3), "still armed");
        // Returned: disarmed, gone from the table and the listing, and arming refused.
        registry.return_interrupt(1, cap).unwrap();
        assert_eq!(*armed[0].lock(), None);
        assert!(registry.devices()[0].interrupts.is_empty());
        assert_eq!(nic.wake_on_receive(0, Some(2)), Err(DeviceError::Unbound));
        assert_eq!(*armed[0].lock(), None, "nothing armed by the refusal");
        assert!(binder.take_minted().is_empty(), "no second binding");
        nic.wake_on_receive(0, None).unwrap();
        // A new lease binds afresh.
        drop(nic);
        let mut nic = open(1, "a").unwrap();
        nic.wake_on_receive(0, Some(2)).unwrap();
        assert_eq!(binder.take_minted().len(), 1);
    }

    #[test]
    fn the_sweep_disarms_a_source_revoked_by_force_before_the_holder_arms_again() {
        let (registry, binder, armed, [mut a, mut b], minted) = both_armed();
        assert_eq!(registry.disarm_revoked().disarmed, 0, "nothing revoked yet");
        assert_eq!((*armed[0].lock(), *armed[1].lock()), (Some(0), Some(1)));
        // The kernel takes b's binding by force; the sweep disarms its source at once,
        // with no call from b, and leaves a's armed.
        binder.revoke(minted[1].id());
        assert_eq!(*armed[1].lock(), Some(1), "armed until the sweep");
        assert_eq!(registry.disarm_revoked().disarmed, 1);
        assert_eq!(*armed[1].lock(), None);
        assert_eq!(*armed[0].lock(), Some(0));
        assert_eq!(registry.devices()[1].interrupts, []);
        assert_eq!(registry.disarm_revoked().disarmed, 0, "swept once");
        assert_eq!(b.wake_on_receive(0, Some(1)), Err(DeviceError::Unbound));
        assert_eq!(*armed[1].lock(), None);
        // The kernel's root revoked: every binding goes with it, and so does every source.
        let root = binder.table.lock().1.id();
        binder.revoke(root);
        assert_eq!(registry.disarm_revoked().disarmed, 1);
        assert_eq!(*armed[0].lock(), None);
        assert_eq!(a.wake_on_receive(0, Some(0)), Err(DeviceError::Unbound));
    }

    #[test]
    fn a_binding_returned_inside_a_pairs_call_is_given_back_and_its_source_disarmed_after() {
        let (registry, binder, armed, [mut a, _b], mut minted) = both_armed();
        let mut pair = a.split_queues().unwrap().remove(0);
        let mut cap = Some(minted.remove(0));
        let id = cap.as_ref().unwrap().id();
        let mut inside = None;
        pair.transmit(0, 60, &mut |_| {
            let returned = registry.return_interrupt(1, cap.take().unwrap());
            let swept = registry.disarm_revoked().disarmed;
            inside = Some((returned, swept, *armed[0].lock()));
        })
        .unwrap();
        // The whole device is not called while its pair's gate is held on this core.
        assert_eq!(
            inside,
            Some((Ok(()), 0, Some(0))),
            "given back, still armed"
        );
        assert!(!binder.live(id));
        assert_eq!(
            registry.disarm_revoked().disarmed,
            1,
            "disarmed by the next sweep"
        );
        assert_eq!(*armed[0].lock(), None);
        assert_eq!(a.wake_on_receive(0, Some(0)), Err(DeviceError::Unbound));
    }

    #[test]
    fn a_sweep_inside_a_call_on_the_slot_reports_it_passed_by_and_the_next_one_disarms() {
        let (registry, binder, armed, [mut a, _b], minted) = both_armed();
        let mut pair = a.split_queues().unwrap().remove(0);
        let mut inside = None;
        pair.transmit(0, 60, &mut |_| {
            // Taken by force while this core is inside a call on a's device: the sweep
            // cannot reach that slot from here, and says so.
            binder.revoke(minted[0].id());
            inside = Some((registry.disarm_revoked(), *armed[0].lock()));
        })
        .unwrap();
        let passed_by = Sweep {
            disarmed: 0,
            passed_by: 1,
        };
        assert_eq!(inside, Some((passed_by, Some(0))), "still armed");
        let disarmed = Sweep {
            disarmed: 1,
            passed_by: 0,
        };
        assert_eq!(
            registry.disarm_revoked(),
            disarmed,
            "swept again after the call"
        );
        assert_eq!(*armed[0].lock(), None);
        assert_eq!(a.wake_on_receive(0, Some(0)), Err(DeviceError::Unbound));
    }

    #[test]
    fn a_revoked_or_ended_binding_disarms_its_source_and_others_on_the_line_keep_theirs() {
        let (registry, binder, armed, [mut a, mut b], minted) = both_armed();
        assert_eq!(
            minted.len(),
            2,
            "two apps share the line, each with its binding"
        );
        // Another app's capability is refused, and changes nothing.
        let (a_cap, b_cap) = (&minted[0], &minted[1]);
        assert_eq!(
            binder.table.lock().0.check(OwnerId(2), a_cap, Rights::READ),
            Err(CapError::NotOwner)
        );
        // The kernel revokes b's binding: b's next arm disarms it and says so; a's stays.
        binder.revoke(b_cap.id());
        assert_eq!(b.wake_on_receive(0, Some(1)), Err(DeviceError::Unbound));
        assert_eq!(*armed[1].lock(), None);
        assert_eq!(b.wake_on_receive(0, Some(1)), Err(DeviceError::Unbound));
        a.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(*armed[0].lock(), Some(0));
        // a's lease ends: its binding goes back to the kernel and its source is disarmed.
        drop(a);
        assert!(!binder.live(a_cap.id()));
        assert_eq!(*armed[0].lock(), None);
        // So does an app's that ends holding the device.
        let mut c = open(registry, 0, 3).unwrap();
        c.wake_on_receive(0, Some(0)).unwrap();
        let c_cap = binder.take_minted().pop().unwrap();
        assert_eq!(registry.revoke_all_of(3), 1);
        assert!(!binder.live(c_cap.id()));
        assert_eq!(*armed[0].lock(), None);
        assert_eq!(c.wake_on_receive(0, Some(0)), Err(DeviceError::Revoked));
    }

    #[test]
    fn a_first_arm_that_routes_no_vector_is_disarmed_and_refused() {
        let binder = TableBinder::leaked();
        let armed = Armed::default();
        let nic = Found::Net(Box::new(Counting(0, Wake::Unrouted(armed.clone()))));
        let slot = Slot::new(Address::new(0, 0, 6, 0).unwrap(), "unrouted", nic);
        let registry = Box::leak(Box::new(Registry {
            slots: alloc::vec![slot],
            bindings: Vec::new(),
            binder,
        }));
        let mut lease = open(registry, 0, 1).unwrap();
        assert!(matches!(
            lease.wake_on_receive(0, Some(0)),
            Err(DeviceError::Unsupported(_))
        ));
        assert_eq!(*armed.lock(), None, "disarmed again");
        assert!(binder.take_minted().is_empty());
        assert!(registry.devices()[0].interrupts.is_empty());
        assert_eq!(
            lease.wake_on_receive(0, None),
            Ok(()),
            "disarming still works"
        );
    }
}
