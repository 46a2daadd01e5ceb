//! The device registry. At the first ask, every PCI function the bus walk found is
//! offered to the drivers in [`DRIVERS`] in order; the first whose `matches` accepts it
//! probes it (with the function's [`DeviceFunction`]: its own configuration space, BAR
//! windows and DMA memory) and returns the devices it found. Each device then sits in
//! a slot of the [`Registry`]; an app opens one and holds it alone (a lease) until it
//! drops the handle, or until the kernel revokes it: every later call through the old
//! handle says [`DeviceError::Revoked`], and the device stays in the slot for the next
//! holder.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod appcode;
mod away;
pub mod baremetal;
mod exact;
mod interrupts;
mod lease;
mod lent;
mod machine;
mod ordered;
mod reentry;
mod sharing;
mod shutdown;
mod xn;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use alloc::boxed::Box;

use appcode::calling_app;
use rexo_api::{
    ApiError, CapError, DeviceError, DeviceInfo, DeviceKind, Filter, Ipv4Config, NetDevice,
    NetSharing, OpenDevice,
};
use rexo_devio::{DeviceFunction, Found, PciBus};
use rexo_pci::{Address, Function};

pub use interrupts::{Binder, BinderFns, Sweep};
pub use machine::Machine;
pub use rexo_api::Leaving;
pub use shutdown::ShutDown;

/// One driver: which functions it takes and how it starts them.
pub struct Driver {
    /// Its name, as `pci` and `devices` show it.
    pub name: &'static str,
    /// Whether it drives this function (vendor, device, class).
    pub matches: fn(&Function) -> bool,
    /// Starts the device(s) on the function: a controller may have several disks.
    pub probe: fn(DeviceFunction) -> Result<Vec<Found>, DeviceError>,
}

/// The drivers, tried in order (the first that matches takes the function).
pub static DRIVERS: &[Driver] = &[
    Driver {
        name: "virtio-net",
        matches: rexo_virtio::net::matches,
        probe: rexo_virtio::net::probe,
    },
    Driver {
        name: "virtio-blk",
        matches: rexo_virtio::blk::matches,
        probe: rexo_virtio::blk::probe,
    },
    Driver {
        name: "e1000",
        matches: rexo_e1000::matches,
        probe: rexo_e1000::probe,
    },
    Driver {
        name: "rtl8139",
        matches: rexo_rtl8139::matches,
        probe: rexo_rtl8139::probe,
    },
    Driver {
        name: "nvme",
        matches: rexo_nvme::matches,
        probe: rexo_nvme::probe,
    },
    Driver {
        name: "ahci",
        matches: rexo_ahci::matches,
        probe: rexo_ahci::probe,
    },
    Driver {
        name: "ata",
        matches: rexo_ata::matches,
        probe: rexo_ata::probe,
    },
    Driver {
        name: "xhci",
        matches: rexo_xhci::matches,
        probe: rexo_xhci::probe,
    },
];

/// What happened to a function at binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The function.
    pub address: Address,
    /// The driver that took it.
    pub driver: &'static str,
    /// `Ok(devices found)`, or why the probe failed.
    pub outcome: Result<usize, DeviceError>,
}

/// An app holding a device: its capability owner number and its name.
pub type Holder = (u16, &'static str);

/// The holder [`Registry::devices`] shows for a device whose lock the calling core holds,
/// in a call on it whose closure asks ([`reentry`]).
pub(crate) const IN_CALL: &str = "(inside a call on it on this core)";

/// The state of one slot, behind its lock.
struct SlotState {
    /// The device.
    device: Found,
    /// The app holding it (its owner number and name), if any.
    holder: Option<Holder>,
    /// Bumped at every open and revocation: a lease of another generation is dead.
    generation: u64,
    /// A disk's extent table (other devices: `Raw`).
    protection: xn::Protection,
    /// A network interface shared by packet filters, while apps are bound to it.
    sharing: Option<sharing::Sharing>,
    /// The interrupt sources bound to the holder.
    interrupts: interrupts::Bindings,
    /// The holder's per-queue handles on a network interface (`split_queues`), a gate
    /// per pair (index *i* is pair *i*), cut at the lease's end.
    queues: Vec<lease::Gate>,
    /// Whether the disk is out of the slot, in the kernel's use
    /// ([`away::outside_the_lock`]): `device` stands in for it meanwhile.
    away: bool,
    /// A disk holder's ordered writes and the requests they wait for, kept in the slot
    /// so that the walk before a power-off or reboot sends them ([`shutdown`]).
    ordered: ordered::OrderedWrites,
}

/// One device and who holds it.
pub struct Slot {
    /// What it is.
    kind: DeviceKind,
    /// Its function.
    address: Address,
    /// Its driver.
    driver: &'static str,
    /// Model, MAC or size, taken at binding (and logged then), for listings. A
    /// keyboard's is asked again at each listing ([`describe`]) but one inside a call on
    /// it on the listing core, which cannot take its lock and shows this text, what was
    /// attached at binding (no app code runs inside a keyboard's calls, so none lists).
    about: String,
    /// The device and its holder.
    state: spin::Mutex<SlotState>,
    /// The core inside a device call holding `state`'s lock ([`reentry`]).
    in_call: reentry::InCall,
    /// The apps holding it, for the calls that do not wait for a call on another core
    /// ([`reentry::Members`]).
    members: reentry::Members,
    /// Bindings on the shared interface dropped by the app's code inside a call that
    /// held the lock: ended as that call returns ([`sharing`]).
    unbound_in_call: spin::Mutex<Vec<u64>>,
    /// `unbound_in_call` may hold bindings: checked after every call, so that a call
    /// whose app dropped none takes no second lock.
    unbound_pending: core::sync::atomic::AtomicBool,
    /// A sweep of the kernel's passed the slot by while another core was inside a call
    /// holding its lock: that call disarms its bindings revoked by force as it returns
    /// ([`reentry::lock_or_hand_over`]).
    disarm_pending: core::sync::atomic::AtomicBool,
    /// The turns of BareMetal calls on the device from several cores.
    baremetal: baremetal::Turn,
    /// How many ordered writes its disk has queued, read without the lock
    /// ([`ordered::OrderedWrites::queued_count`]).
    ordered_queued: alloc::sync::Arc<core::sync::atomic::AtomicUsize>,
}

impl Slot {
    /// A free slot for `device`, found by `driver` on the function at `address`.
    fn new(address: Address, driver: &'static str, device: Found) -> Self {
        let kind = match device {
            Found::Net(_) => DeviceKind::Net,
            Found::Block(_) => DeviceKind::Block,
            Found::Keyboard(_) => DeviceKind::Keyboard,
        };
        let ordered = ordered::OrderedWrites::default();
        Self {
            kind,
            address,
            driver,
            about: describe(&device),
            ordered_queued: ordered.queued_count(),
            state: spin::Mutex::new(SlotState {
                protection: match device {
                    Found::Block(_) => xn::Protection::Unknown,
                    _ => xn::Protection::Raw,
                },
                device,
                holder: None,
                generation: 0,
                sharing: None,
                interrupts: interrupts::Bindings::default(),
                queues: Vec::new(),
                away: false,
                ordered,
            }),
            in_call: reentry::InCall::new(),
            members: reentry::Members::default(),
            unbound_in_call: spin::Mutex::new(Vec::new()),
            unbound_pending: core::sync::atomic::AtomicBool::new(false),
            disarm_pending: core::sync::atomic::AtomicBool::new(false),
            baremetal: baremetal::Turn::new(),
        }
    }
}

/// Every bound device, and what happened at binding.
pub struct Registry {
    /// The devices, in binding order.
    slots: Vec<Slot>,
    /// One line per function a driver matched.
    bindings: Vec<Binding>,
    /// The kernel's half of interrupt bindings.
    binder: &'static dyn Binder,
}

/// A device's one-line description; a keyboard's says what is attached now
/// ([`KeyboardDevice::attached`]).
fn describe(found: &Found) -> String {
    match found {
        Found::Net(net) => {
            let info = net.info();
            let m = info.mac;
            format!(
                "mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {} queue(s), link {}",
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                info.queues,
                if info.link_up { "up" } else { "down" }
            )
        }
        Found::Keyboard(keyboard) => match keyboard.attached() {
            Ok(attached) => attached,
            Err(error) => format!("keyboard ({error})"),
        },
        Found::Block(disk) => {
            let info = disk.info();
            let mib = info.sectors.saturating_mul(u64::from(info.sector_size)) >> 20;
            format!(
                "{} MiB ({} sectors of {} bytes), {} queue(s) x {}, model {:?}",
                mib, info.sectors, info.sector_size, info.queues, info.depth, info.model
            )
        }
    }
}

impl Registry {
    /// Offers each function `bus`'s walk found to the drivers and keeps what they found;
    /// `binder` records the interrupt sources its leases bind. Panics when a function
    /// the drivers take was bound already: a bus is bound once ([`Machine::registry`]).
    pub fn bind(binder: &'static dyn Binder, bus: &'static PciBus) -> Self {
        let mut slots = Vec::new();
        let mut bindings = Vec::new();
        for function in bus.functions() {
            let Some(driver) = DRIVERS.iter().find(|d| (d.matches)(function)) else {
                continue;
            };
            let address = function.header.address;
            let device_function = bus.bind(address).expect("a bus is bound once");
            let outcome = (driver.probe)(device_function);
            let outcome = outcome.map(|found| {
                let count = found.len();
                for device in found {
                    let slot = Slot::new(address, driver.name, device);
                    log::info!("{address} {}: {}", driver.name, slot.about);
                    slots.push(slot);
                }
                count
            });
            if let Err(error) = &outcome {
                log::warn!("{address} {}: not started: {error}", driver.name);
            }
            bindings.push(Binding {
                address,
                driver: driver.name,
                outcome,
            });
        }
        Self {
            slots,
            bindings,
            binder,
        }
    }

    /// What happened to each function a driver matched.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Every device, numbered within its kind. One whose lock the calling core holds, in
    /// a call on it whose closure asks, shows `"(inside a call on it on this core)"` as its
    /// holder, no interrupt bindings and its description from binding; one whose lock
    /// another core holds in a call, whose closure may run long, is not waited for: it
    /// shows the holder the slot published at its last change (an open, a lease's end, a
    /// binding made or ended), no interrupt bindings and its description from binding.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        calling_app(self.binder, |_| {
            let core = self.binder.core_index();
            let mut counts = [0usize; 3];
            self.slots
                .iter()
                .map(|slot| {
                    let counter = &mut counts[slot.kind as usize];
                    let index = *counter;
                    *counter += 1;
                    let (holder, interrupts, about) = match reentry::lock_unless_in_call(slot, core)
                    {
                        Ok(state) => (
                            state
                                .holder
                                .or_else(|| sharing::first_holder(&state))
                                .map(|(_, name)| name),
                            state.interrupts.list(),
                            match &state.device {
                                // What is attached changes after binding.
                                keyboard @ Found::Keyboard(_) => describe(keyboard),
                                _ => slot.about.clone(),
                            },
                        ),
                        Err(reentry::InCallOn::ThisCore) => {
                            (Some(IN_CALL), Vec::new(), slot.about.clone())
                        }
                        Err(reentry::InCallOn::AnotherCore) => {
                            (Some(slot.members.shown()), Vec::new(), slot.about.clone())
                        }
                    };
                    DeviceInfo {
                        index,
                        kind: slot.kind,
                        address: slot.address,
                        driver: slot.driver,
                        about,
                        holder,
                        interrupts,
                    }
                })
                .collect()
        })
    }

    /// The `index`th slot of `kind`.
    fn slot(&'static self, kind: DeviceKind, index: usize) -> Result<&'static Slot, ApiError> {
        self.slots
            .iter()
            .filter(|slot| slot.kind == kind)
            .nth(index)
            .ok_or(ApiError::NoSuchDevice)
    }

    /// Opens device `index` of `kind` for `holder` alone. Asked while another core holds
    /// its lock in a call, whose closure may run long, it answers [`ApiError::DeviceBusy`]
    /// with the holder the slot published at its last change (as [`Registry::devices`]
    /// shows it) without waiting; from inside a call on it on the calling core,
    /// `Reentered`.
    pub fn open(
        &'static self,
        kind: DeviceKind,
        index: usize,
        holder: Holder,
    ) -> Result<OpenDevice, ApiError> {
        calling_app(self.binder, |_| {
            let slot = self.slot(kind, index)?;
            let state = match reentry::lock_unless_in_call(slot, self.binder.core_index()) {
                Ok(state) => state,
                Err(reentry::InCallOn::ThisCore) => {
                    return Err(ApiError::Device(DeviceError::Reentered));
                }
                Err(reentry::InCallOn::AnotherCore) => {
                    return Err(ApiError::DeviceBusy(slot.members.shown()));
                }
            };
            if let Some((_, current)) = state.holder.or_else(|| sharing::first_holder(&state)) {
                return Err(ApiError::DeviceBusy(current));
            }
            let (mut state, refreshed) = xn::refreshed(slot, state);
            refreshed.map_err(ApiError::Device)?;
            if let xn::Protection::Damaged(error) = &state.protection {
                return Err(ApiError::Extents(*error));
            }
            state.holder = Some(holder);
            slot.members.publish(&state);
            state.generation += 1;
            let generation = state.generation;
            drop(state);
            Ok(lease::open(slot, generation, holder, self.binder))
        })
    }

    /// Binds `holder` to the frames of network interface `index` that match `filters`,
    /// sharing it with other apps bound the same way (`Kernel::bind_net`): `address` is
    /// the interface's (`ip=`), which the kernel answers ARP and ping for.
    pub fn bind_net(
        &'static self,
        index: usize,
        holder: Holder,
        filters: &[Filter],
        address: Option<Ipv4Config>,
    ) -> Result<Box<dyn NetDevice>, ApiError> {
        calling_app(self.binder, |_| {
            let slot = self.slot(DeviceKind::Net, index)?;
            sharing::bind((slot, self.binder), holder, filters, address)
        })
    }

    /// How network interface `index` is shared (`None`: no app is bound by filters).
    pub fn net_sharing(&'static self, index: usize) -> Result<Option<NetSharing>, ApiError> {
        calling_app(self.binder, |_| {
            let slot = self.slot(DeviceKind::Net, index)?;
            let state = reentry::lock(slot, self.binder.core_index()).map_err(ApiError::Device)?;
            Ok(sharing::report(&state))
        })
    }

    /// The holder `owner` gives back the interrupt binding `cap`
    /// (`Kernel::return_interrupt`): its queue's source is disarmed and refuses to arm
    /// again under this lease. Anything but a live interrupt capability of `owner` is
    /// refused with nothing changed and given back; the refusal is the table's, for the
    /// kernel to check against the abort protocol once no slot is locked. Returned from
    /// inside a call on its device (whose lock, or one of whose queue pairs' gates, the
    /// calling core holds), it is given back all the same, and its source stays armed (and
    /// `devices()` lists the binding) until the device's next arm of the queue, the lease's
    /// end or a sweep of the kernel's ([`Registry::disarm_revoked`], which the kernel asks
    /// for only after a forced revocation), whichever comes first. A device another core
    /// holds in a call is waited for only if `owner` holds it: a binding is its holder's.
    pub fn return_interrupt(
        &self,
        owner: u16,
        cap: rexo_api::Cap,
    ) -> Result<(), (CapError, rexo_api::Cap)> {
        calling_app(self.binder, |_| {
            let id = cap.id();
            let core = self.binder.core_index();
            for slot in &self.slots {
                // A binding is the holder's: a slot `owner` does not hold is passed by rather
                // than waited for while another app's call holds it.
                let Some(mut state) = reentry::lock_for(slot, core, owner) else {
                    continue;
                };
                if reentry::in_pair_call(&state, core) {
                    continue;
                }
                if let Some(queue) = state.interrupts.queue_of(id) {
                    self.binder.give_back(owner, cap)?;
                    state.interrupts.unbind(id);
                    // The binding is gone either way; a device that cannot disarm masks
                    // nothing more than it did.
                    let _ = interrupts::driver_arm(&mut state.device, queue, None);
                    return Ok(());
                }
            }
            self.binder.give_back(owner, cap)
        })
    }

    /// Disarms the source of every binding the kernel took by force (a missed revocation
    /// deadline, the kernel's root over the vectors revoked) and marks it unbound, without
    /// waiting for the holder's next arm. Returns the [`Sweep`]: how many were disarmed
    /// (logged per device when any) and how many slots were passed by. It takes the slots'
    /// locks and calls the drivers, so it must not run in an interrupt handler. A slot
    /// whose lock another core holds in a call (whose closure may run long) is not waited
    /// for: its disarm is handed to that call, which does it as it returns, and the slot is
    /// not counted. A slot whose lock, or one of whose queue pairs' gates, the calling core
    /// holds in a call is passed by and counted in [`Sweep::passed_by`], for the caller to
    /// sweep again later (the kernel asks for the sweep again, which a core runs when its
    /// work runs dry, after that call has returned).
    pub fn disarm_revoked(&self) -> Sweep {
        let core = self.binder.core_index();
        let mut sweep = Sweep::default();
        for slot in &self.slots {
            let mut state = match reentry::lock_or_hand_over(slot, core) {
                Ok(Some(state)) if !reentry::in_pair_call(&state, core) => state,
                Ok(None) => continue,
                _ => {
                    sweep.passed_by += 1;
                    continue;
                }
            };
            sweep.disarmed += interrupts::disarm_revoked(slot, &mut state, self.binder);
        }
        sweep
    }

    /// Takes back every device the app of owner number `owner` holds (it ended): its
    /// handles go dead, its filters go. Returns how many (logged when any). A slot whose
    /// lock the calling core holds in a call (another app's, which ran this one from inside
    /// its closure) is passed by: the app could not reach it. So is one another core holds
    /// in a call, whose closure may run long, unless the app holds it or is bound to it:
    /// the call may be its own, which is waited for, as is a drain of its own abandoned
    /// requests.
    pub fn revoke_all_of(&self, owner: u16) -> usize {
        let core = self.binder.core_index();
        let mut name = "";
        let taken = self
            .slots
            .iter()
            .filter(|slot| {
                let Some(mut state) = away::lock_when_back(slot, core, owner) else {
                    return false;
                };
                let held = state.holder.filter(|(holder, _)| *holder == owner);
                if let Some((_, holder)) = held {
                    name = holder;
                    state = lease::end(slot, state, self.binder);
                }
                let bound = sharing::unbind_all_of(slot, &mut state, owner);
                if let Some((_, holder)) = bound {
                    name = holder;
                }
                held.is_some() || bound.is_some()
            })
            .count();
        if taken > 0 {
            log::info!("app '{name}' ended holding {taken} devices: taken back");
        }
        taken
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::boxed::Box;
    use rexo_api::{NetDevice, NetInfo, OpenDevice};

    /// A network interface that counts what it was asked; its one queue wakes a core as
    /// its [`Wake`] says. It splits into one handle that lends a buffer to every send
    /// ([`crate::reentry::tests::Lending`]).
    pub(crate) struct Counting(pub(crate) usize, pub(crate) Wake);

    /// How a [`Counting`] interface's queue wakes a core.
    pub(crate) enum Wake {
        /// It cannot (`Unsupported`).
        Never,
        /// Arming routes vector 219 (a shared line) through the binder and records the
        /// core.
        Routed(Routes, Armed),
        /// Arming records the core and routes nothing: a driver that left its message as
        /// an earlier arm set it.
        Unrouted(Armed),
    }

    /// The tests' kernel half of interrupt bindings.
    type Routes = &'static crate::interrupts::tests::TableBinder;
    /// The core a test NIC's queue is armed for.
    pub(crate) type Armed = alloc::sync::Arc<spin::Mutex<Option<usize>>>;

    impl NetDevice for Counting {
        fn info(&self) -> NetInfo {
            NetInfo {
                mac: [2, 0, 0, 0, 0, 1],
                max_frame: rexo_api::device::ETHERNET_MAX_FRAME,
                queues: 1,
                link_up: true,
                checksum_offload: false,
                tcp_segmentation: None,
                receive_steering: None,
                pair: None,
            }
        }
        fn receive(
            &mut self,
            _: usize,
            _: usize,
            _: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            self.0 += 1;
            Ok(0)
        }
        fn send_segments(
            &mut self,
            _: usize,
            _: &[usize],
            offload: bool,
            _: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            if offload {
                return Err(DeviceError::Unsupported("checksum offload"));
            }
            Ok(())
        }
        fn transmit_pending(&mut self, _: usize) -> Result<usize, DeviceError> {
            Ok(self.0)
        }
        fn wake_on_receive(
            &mut self,
            queue: usize,
            core: Option<usize>,
        ) -> Result<(), DeviceError> {
            match &self.1 {
                Wake::Never => Err(DeviceError::Unsupported("MSI-X")),
                Wake::Routed(binder, armed) => route_wake((binder, armed), queue, core),
                Wake::Unrouted(armed) => {
                    *armed.lock() = core;
                    Ok(())
                }
            }
        }
        fn split_queues(&mut self) -> Result<alloc::vec::Vec<Box<dyn NetDevice>>, DeviceError> {
            Ok(alloc::vec![
                Box::new(crate::reentry::tests::Lending) as Box<dyn NetDevice>
            ])
        }
    }

    /// Arms a test device's one queue for `core` (`None`: disarms it), routing vector 219
    /// (a shared line) through `binder` and recording the core in `armed`.
    fn route_wake(
        (binder, armed): (Routes, &Armed),
        queue: usize,
        core: Option<usize>,
    ) -> Result<(), DeviceError> {
        if queue > 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        if core.is_some() {
            binder
                .routed
                .store(219, core::sync::atomic::Ordering::Relaxed);
        }
        *armed.lock() = core;
        Ok(())
    }

    /// A disk that counts how often its requests were abandoned.
    struct Forgetful(alloc::sync::Arc<core::sync::atomic::AtomicUsize>);

    impl rexo_api::BlockDevice for Forgetful {
        fn info(&self) -> rexo_api::BlockInfo {
            rexo_api::BlockInfo {
                sectors: 8,
                sector_size: 512,
                max_sectors: 8,
                queues: 1,
                depth: 1,
                model: String::new(),
            }
        }
        fn submit_read(&mut self, _: usize, _: u64, _: u32) -> Result<rexo_api::Tag, DeviceError> {
            Ok(1)
        }
        fn submit_write_checked(
            &mut self,
            _: usize,
            _: u64,
            _: u32,
            _: &mut dyn FnMut(&mut [u8]) -> bool,
        ) -> Result<rexo_api::Tag, DeviceError> {
            Ok(1)
        }
        fn submit_flush(&mut self, _: usize) -> Result<rexo_api::Tag, DeviceError> {
            Ok(1)
        }
        fn poll(&mut self, _: usize, _: rexo_api::Completion<'_>) -> Result<usize, DeviceError> {
            Ok(0)
        }
        fn wake_on_completion(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Err(DeviceError::Unsupported("wake-ups on a simulated disk"))
        }
        fn abandon_requests(&mut self) {
            self.0.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        /// It keeps nothing (every request is done at once, with no data): nothing to
        /// write out.
        fn shut_down(&mut self, _: Leaving) -> Result<(), DeviceError> {
            Ok(())
        }
    }

    #[test]
    fn a_disk_forgets_its_requests_whenever_its_holder_changes() {
        use core::sync::atomic::Ordering;
        let count = alloc::sync::Arc::new(core::sync::atomic::AtomicUsize::new(0));
        let registry = registry_with(
            Found::Block(Box::new(Forgetful(count.clone()))),
            "test-disk",
        );
        let lease = lease_disk_to(registry, (1, "first"));
        drop(lease);
        assert_eq!(count.load(Ordering::Relaxed), 1, "dropped");
        let _held = lease_disk_to(registry, (2, "second"));
        assert_eq!(registry.revoke_all_of(2), 1);
        assert_eq!(count.load(Ordering::Relaxed), 2, "revoked");
    }

    #[test]
    fn polling_a_queue_the_disk_lacks_is_refused() {
        let count = alloc::sync::Arc::new(core::sync::atomic::AtomicUsize::new(0));
        let registry = registry_with(Found::Block(Box::new(Forgetful(count))), "test-disk");
        let mut disk = lease_disk_to(registry, (1, "fs"));
        assert_eq!(
            disk.poll(7, &mut |_, _| {}),
            Err(DeviceError::NoSuchQueue(7))
        );
        assert_eq!(disk.poll(0, &mut |_, _| {}), Ok(0));
    }

    /// A disk in memory that completes every request at the next poll. [`MemoryDisk::new`]
    /// is a plain one; a test changes one setting to make the disk it needs
    /// (`MemoryDisk { max_sectors: 4, ..MemoryDisk::new() }`).
    pub(crate) struct MemoryDisk {
        /// The sectors held in memory (after `base_lba`).
        pub(crate) data: Vec<u8>,
        /// Requests taken and not yet polled: tag, byte range of `data`.
        done: Vec<(rexo_api::Tag, usize, usize)>,
        /// The tag of the first request after each poll (the next ones count up).
        first_tag: rexo_api::Tag,
        /// The most sectors a request carries; larger ones are refused, as drivers
        /// refuse them.
        max_sectors: u32,
        /// Sectors before the memory: the disk says it has this many more, reads zeros
        /// from them and refuses reads that cross into the memory and writes that start
        /// below it.
        base_lba: u64,
        /// Bytes per sector.
        sector_size: usize,
        /// While on, every read is refused.
        failing_reads: alloc::sync::Arc<core::sync::atomic::AtomicBool>,
        /// Every read covering one of these sectors is refused with
        /// [`DeviceError::Status`] (empty: none), as a bad sector is.
        pub(crate) bad_reads: core::ops::Range<u64>,
        /// Every write covering this sector is refused (`u64::MAX`: none).
        bad_sector: alloc::sync::Arc<core::sync::atomic::AtomicU64>,
        /// While on, every flush is refused.
        pub(crate) failing_flushes: alloc::sync::Arc<core::sync::atomic::AtomicBool>,
        /// While it holds back, every read, every write and every drain of abandoned
        /// requests waits.
        hold_back: alloc::sync::Arc<HoldBack>,
        /// With a binder and a record, arming its one queue routes vector 219 through the
        /// binder and records the core; without, it cannot wake a core.
        wakes: Option<(Routes, Armed)>,
        /// Shut down: every later request and poll is refused.
        shut_down: bool,
    }

    impl MemoryDisk {
        /// Sectors of 512 bytes in memory.
        const SECTORS: u64 = 8192;

        /// A zeroed disk of 4 MiB, tags from 1, requests of up to 64 sectors, and no
        /// failures.
        pub(crate) fn new() -> Self {
            Self {
                data: alloc::vec![0u8; Self::SECTORS as usize * 512],
                done: Vec::new(),
                first_tag: 1,
                max_sectors: 64,
                base_lba: 0,
                sector_size: 512,
                failing_reads: Default::default(),
                bad_reads: 0..0,
                bad_sector: alloc::sync::Arc::new(core::sync::atomic::AtomicU64::new(u64::MAX)),
                failing_flushes: Default::default(),
                hold_back: Default::default(),
                wakes: None,
                shut_down: false,
            }
        }

        /// [`rexo_api::device::DISK_SHUT_DOWN`] once the disk was shut down.
        fn usable(&self) -> Result<(), DeviceError> {
            if self.shut_down {
                return Err(rexo_api::device::DISK_SHUT_DOWN);
            }
            Ok(())
        }

        /// The byte range of `data` that `sectors` sectors from `lba` are, or why the
        /// disk refuses them.
        fn range(&self, lba: u64, sectors: u32) -> Result<(usize, usize), DeviceError> {
            if sectors > self.max_sectors {
                return Err(DeviceError::Unsupported("requests over max_sectors"));
            }
            let lba = lba
                .checked_sub(self.base_lba)
                .ok_or(DeviceError::Unsupported(
                    "sectors before the simulated tail",
                ))?;
            let size = self.sector_size;
            Ok((lba as usize * size, sectors as usize * size))
        }

        /// Where a read of sectors before the memory (zeros) is taken from, in place of
        /// a byte offset of `data`.
        const ZEROS: usize = usize::MAX;

        /// Takes a request for bytes `at..at + len`, completed at the next poll.
        fn take(&mut self, at: usize, len: usize) -> rexo_api::Tag {
            let tag = self.first_tag + self.done.len() as u32;
            self.done.push((tag, at, len));
            tag
        }
    }

    impl rexo_api::BlockDevice for MemoryDisk {
        fn info(&self) -> rexo_api::BlockInfo {
            let sectors = (self.data.len() / self.sector_size) as u64;
            rexo_api::BlockInfo {
                sectors: self.base_lba + sectors,
                sector_size: self.sector_size as u32,
                max_sectors: self.max_sectors,
                queues: 1,
                depth: 8,
                model: String::new(),
            }
        }
        fn submit_read(
            &mut self,
            _: usize,
            lba: u64,
            sectors: u32,
        ) -> Result<rexo_api::Tag, DeviceError> {
            self.hold_back.pass();
            self.usable()?;
            if self
                .failing_reads
                .load(core::sync::atomic::Ordering::Relaxed)
            {
                return Err(DeviceError::Timeout {
                    what: "a simulated read",
                    ms: 0,
                });
            }
            if lba < self.bad_reads.end
                && self.bad_reads.start < lba.saturating_add(u64::from(sectors))
            {
                return Err(DeviceError::Status {
                    what: "a simulated read",
                    status: 1,
                });
            }
            if lba.saturating_add(u64::from(sectors)) <= self.base_lba
                && sectors <= self.max_sectors
            {
                return Ok(self.take(Self::ZEROS, sectors as usize * self.sector_size));
            }
            let (at, len) = self.range(lba, sectors)?;
            Ok(self.take(at, len))
        }
        /// The fill writes a buffer of its own (a driver's DMA buffer), copied to the
        /// disk only if the write goes.
        fn submit_write_checked(
            &mut self,
            _: usize,
            lba: u64,
            sectors: u32,
            fill: &mut dyn FnMut(&mut [u8]) -> bool,
        ) -> Result<rexo_api::Tag, DeviceError> {
            self.hold_back.pass();
            self.usable()?;
            let bad = self.bad_sector.load(core::sync::atomic::Ordering::Relaxed);
            if (lba..lba + u64::from(sectors)).contains(&bad) {
                return Err(DeviceError::Status {
                    what: "a simulated write",
                    status: 1,
                });
            }
            let (at, len) = self.range(lba, sectors)?;
            let mut buffer = alloc::vec![0; len];
            if !fill(&mut buffer) {
                return Err(DeviceError::Withdrawn);
            }
            self.data[at..at + len].copy_from_slice(&buffer);
            Ok(self.take(at, 0))
        }
        fn submit_flush(&mut self, _: usize) -> Result<rexo_api::Tag, DeviceError> {
            self.usable()?;
            if self
                .failing_flushes
                .load(core::sync::atomic::Ordering::Relaxed)
            {
                return Err(DeviceError::Status {
                    what: "a simulated flush",
                    status: 1,
                });
            }
            Ok(self.take(0, 0))
        }
        fn poll(&mut self, _: usize, done: rexo_api::Completion<'_>) -> Result<usize, DeviceError> {
            self.usable()?;
            let finished = core::mem::take(&mut self.done);
            for &(tag, at, len) in &finished {
                if at == Self::ZEROS {
                    done(tag, Ok(&alloc::vec![0; len]));
                } else {
                    done(tag, Ok(&self.data[at..at + len]));
                }
            }
            Ok(finished.len())
        }
        fn wake_on_completion(
            &mut self,
            queue: usize,
            core: Option<usize>,
        ) -> Result<(), DeviceError> {
            let (binder, armed) = self
                .wakes
                .as_ref()
                .ok_or(DeviceError::Unsupported("wake-ups on a simulated disk"))?;
            route_wake((binder, armed), queue, core)
        }
        /// Waits while held back (see [`HoldBack`]), as a driver's drain waits for the device.
        fn abandon_requests(&mut self) {
            self.hold_back.pass();
            self.done.clear();
        }
        /// Its writes landed when they were taken: the requests in flight are dropped,
        /// and everything after is refused. While flushes fail, so does the shutdown
        /// (the cache not written out).
        fn shut_down(&mut self, _: Leaving) -> Result<(), DeviceError> {
            let flushed = self.submit_flush(0);
            self.done.clear();
            self.shut_down = true;
            flushed.map(drop)
        }
    }

    #[test]
    fn an_app_that_panics_in_its_disk_code_ends_after_the_device_call_is_done() {
        use crate::interrupts::tests::ends_the_app;
        let registry = registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory");
        let mut disk = lease_disk_to(registry, (1, "panicker"));
        let tag = disk.submit_write(0, 100, 1, &mut |b| b.fill(7)).unwrap();
        rexo_api::device::wait_for(disk.as_mut(), 0, tag, &mut |_| {}).unwrap();
        assert!(ends_the_app(|| {
            let _ = disk.submit_write(0, 100, 1, &mut |b| {
                b[0] = 1;
                panic!("an app's bug while filling a write");
            });
        }));
        let _ = disk.submit_read(0, 100, 1).unwrap();
        let _ = disk.submit_read(0, 101, 1).unwrap();
        let mut completions = 0;
        assert!(ends_the_app(|| {
            let _ = disk.poll(0, &mut |_, _| {
                completions += 1;
                panic!("an app's bug on a completion");
            });
        }));
        assert_eq!(
            completions, 1,
            "nothing more is handed to an app that aborted"
        );
        assert_eq!(registry.revoke_all_of(1), 1, "the slot's lock is free");
        let mut next = lease_disk_to(registry, (2, "next"));
        let tag = next.submit_read(0, 100, 1).unwrap();
        let mut data = Vec::new();
        rexo_api::device::wait_for(next.as_mut(), 0, tag, &mut |d| data = d.to_vec()).unwrap();
        assert_eq!(
            data, [7; 512],
            "the aborted fill's write was withdrawn: the sector keeps what it held"
        );
    }

    /// A network interface whose driver panics as it receives or reports its sends (a
    /// driver's bug, not the app's); the rest is [`Counting`]'s.
    struct PanickingDriver(Counting);

    impl NetDevice for PanickingDriver {
        fn info(&self) -> NetInfo {
            self.0.info()
        }
        fn receive(
            &mut self,
            _: usize,
            _: usize,
            _: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            panic!("a driver's bug while receiving")
        }
        fn send_segments(
            &mut self,
            queue: usize,
            segments: &[usize],
            offload: bool,
            fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            self.0.send_segments(queue, segments, offload, fill)
        }
        fn transmit_pending(&mut self, _: usize) -> Result<usize, DeviceError> {
            panic!("a driver's bug counting sends")
        }
        fn wake_on_receive(
            &mut self,
            queue: usize,
            core: Option<usize>,
        ) -> Result<(), DeviceError> {
            self.0.wake_on_receive(queue, core)
        }
        fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
            self.0.split_queues()
        }
    }

    /// A keyboard whose driver panics when asked for a byte, or what is attached once
    /// its flag is set (binding asks it first).
    struct PanickingKeyboard(alloc::sync::Arc<core::sync::atomic::AtomicBool>);

    impl rexo_api::KeyboardDevice for PanickingKeyboard {
        fn read_byte(&mut self) -> Result<Option<u8>, DeviceError> {
            panic!("a driver's bug reading a byte")
        }
        fn attached(&self) -> Result<String, DeviceError> {
            if self.0.load(core::sync::atomic::Ordering::Relaxed) {
                panic!("a driver's bug describing the keyboard")
            }
            Ok(String::from("a keyboard"))
        }
    }

    #[test]
    fn a_panic_in_the_drivers_code_during_an_apps_call_is_the_kernels() {
        use crate::interrupts::tests::is_the_kernels;
        // A fresh device for each call: a crash leaves the one it hit half done.
        let leased = || {
            let nic = PanickingDriver(Counting(0, Wake::Never));
            let registry = registry_with(Found::Net(Box::new(nic)), "panicking-net");
            lease_net(registry, (1, "app"))
        };
        let mut nic = leased();
        assert!(
            is_the_kernels(|| _ = nic.receive(0, 1, &mut |_| {})),
            "receive"
        );
        let mut nic = leased();
        assert!(
            is_the_kernels(|| _ = nic.transmit_pending(0)),
            "transmit_pending"
        );
        let describing = alloc::sync::Arc::new(core::sync::atomic::AtomicBool::new(false));
        let keyboard = PanickingKeyboard(describing.clone());
        let registry = registry_with(Found::Keyboard(Box::new(keyboard)), "xhci");
        describing.store(true, core::sync::atomic::Ordering::Relaxed);
        assert!(is_the_kernels(|| _ = registry.devices()), "devices");
        let keyboard = PanickingKeyboard(Default::default());
        let registry = registry_with(Found::Keyboard(Box::new(keyboard)), "xhci");
        let open = registry.open(DeviceKind::Keyboard, 0, (1, "app"));
        let mut keyboard = open.and_then(OpenDevice::into_keyboard).unwrap();
        assert!(is_the_kernels(|| _ = keyboard.read_byte()), "read_byte");
    }

    #[test]
    fn a_disk_with_an_extent_table_lets_each_app_touch_only_its_blocks() {
        use rexo_api::{ExtentError, ExtentOp};
        let registry = registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory");
        let open = |name: &'static str| {
            registry
                .open(DeviceKind::Block, 0, (1, name))
                .and_then(OpenDevice::into_block)
        };
        let wait = |disk: &mut dyn rexo_api::BlockDevice, tag| {
            rexo_api::device::wait_for(disk, 0, tag, &mut |_| {})
        };
        // A raw disk: its holder has all of it, and no table to change.
        let mut raw = open("fs").unwrap();
        let tag = raw.submit_write(0, 100, 1, &mut |b| b.fill(7)).unwrap();
        assert_eq!(wait(raw.as_mut(), tag), Ok(()));
        assert_eq!(
            registry
                .extents(0, "fs", Some(ExtentOp::Format { force: false }))
                .err(),
            Some(ApiError::DeviceBusy("fs")),
            "held"
        );
        drop(raw);
        assert_eq!(
            registry.extents(0, "fs", None).err(),
            Some(ApiError::Extents(ExtentError::NoTable))
        );
        registry
            .extents(0, "fs", Some(ExtentOp::Format { force: false }))
            .unwrap();
        let extents = registry
            .extents(0, "fs", Some(ExtentOp::Allocate { sectors: 64 }))
            .unwrap();
        assert_eq!(
            (
                extents[0].start,
                extents[0].count,
                extents[0].holder.as_str()
            ),
            (0, 64, "fs")
        );
        registry
            .extents(
                0,
                "fs",
                Some(ExtentOp::Share {
                    start: 8,
                    count: 8,
                    reader: "web".into(),
                }),
            )
            .unwrap();
        assert_eq!(
            registry
                .extents(0, "fs", Some(ExtentOp::Format { force: false }))
                .err()
                .map(|e| matches!(e, ApiError::Extents(_))),
            Some(true),
            "a sound table is not formatted over"
        );
        // The owner reads and writes its extent, nothing past it.
        let mut fs = open("fs").unwrap();
        let tag = fs.submit_write(0, 0, 64, &mut |b| b.fill(1)).unwrap();
        assert_eq!(wait(fs.as_mut(), tag), Ok(()));
        assert_eq!(
            fs.submit_read(0, 60, 8).err(),
            Some(DeviceError::Denied {
                sector: 64,
                write: false
            })
        );
        let table = fs.info().sectors - 8;
        assert_eq!(
            fs.submit_write(0, table, 1, &mut |_| {}).err(),
            Some(DeviceError::Denied {
                sector: table,
                write: true
            })
        );
        // Ordered writes: checked like writes, and they land.
        let (tag, ordered, finished) = write_then_ordered(fs.as_mut());
        assert_eq!(
            finished,
            [tag, ordered],
            "the write before it completed first"
        );
        assert!(
            read_sectors(fs.as_mut(), 3, 1)
                .iter()
                .all(|&byte| byte == 6),
            "the ordered write landed"
        );
        assert_eq!(
            fs.submit_write_ordered(0, table, 1, &mut |_| {}).err(),
            Some(DeviceError::Denied {
                sector: table,
                write: true
            })
        );
        let capacity = fs.info().sectors;
        for (lba, sectors) in [(capacity, 1), (0, 0), (0, 65)] {
            assert_eq!(
                fs.submit_write_ordered(0, lba, sectors, &mut |_| {}).err(),
                Some(DeviceError::OutOfRange {
                    lba,
                    sectors: u64::from(sectors),
                    capacity
                })
            );
        }
        assert_eq!(
            fs.submit_write_ordered(1, 0, 1, &mut |_| {}).err(),
            Some(DeviceError::NoSuchQueue(1))
        );
        drop(fs);
        // Another app reads what was shared with it, nothing else, and writes nothing.
        let mut web = open("web").unwrap();
        assert!(web.submit_read(0, 8, 8).is_ok());
        assert_eq!(
            web.submit_read(0, 0, 1).err(),
            Some(DeviceError::Denied {
                sector: 0,
                write: false
            })
        );
        assert_eq!(
            web.submit_write(0, 8, 1, &mut |_| {}).err(),
            Some(DeviceError::Denied {
                sector: 8,
                write: true
            })
        );
        assert_eq!(
            web.submit_write_ordered(0, 8, 1, &mut |_| {}).err(),
            Some(DeviceError::Denied {
                sector: 8,
                write: true
            })
        );
        drop(web);
        registry
            .extents(
                0,
                "fs",
                Some(ExtentOp::Revoke {
                    reader: "web".into(),
                }),
            )
            .unwrap();
        let mut web = open("web").unwrap();
        assert_eq!(
            web.submit_read(0, 8, 1).err(),
            Some(DeviceError::Denied {
                sector: 8,
                write: false
            })
        );
    }

    #[test]
    fn an_unreadable_extent_table_refuses_the_disk_until_it_is_read() {
        use core::sync::atomic::Ordering;
        use rexo_api::ExtentOp;
        let failing = alloc::sync::Arc::new(core::sync::atomic::AtomicBool::new(false));
        let disk = MemoryDisk {
            failing_reads: failing.clone(),
            ..MemoryDisk::new()
        };
        let (registry, _) = registry_with_table(disk);
        // The next boot: the table is read again at the first open, and that read fails.
        registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        failing.store(true, Ordering::Relaxed);
        let unreadable = ApiError::Device(DeviceError::Timeout {
            what: "a simulated read",
            ms: 0,
        });
        let open = |name: &'static str| {
            registry
                .open(DeviceKind::Block, 0, (1, name))
                .and_then(OpenDevice::into_block)
        };
        assert_eq!(open("intruder").err(), Some(unreadable), "not a raw disk");
        assert_eq!(registry.extents(0, "fs", None).err(), Some(unreadable));
        assert_eq!(
            registry
                .extents(0, "fs", Some(ExtentOp::Format { force: false }))
                .err(),
            Some(unreadable),
            "a table that could not be read is not formatted over"
        );
        // Once the disk reads again, the table is found and holds.
        failing.store(false, Ordering::Relaxed);
        let mut intruder = open("intruder").unwrap();
        assert_eq!(
            intruder.submit_write(0, 0, 1, &mut |_| {}).err(),
            Some(DeviceError::Denied {
                sector: 0,
                write: true
            })
        );
        drop(intruder);
        let mut fs = open("fs").unwrap();
        assert!(fs.submit_write(0, 0, 64, &mut |_| {}).is_ok());
    }

    /// Disk 0 of `registry` leased to app `name` (owner 1).
    pub(crate) fn lease_disk(
        registry: &'static Registry,
        name: &'static str,
    ) -> Box<dyn rexo_api::BlockDevice> {
        lease_disk_to(registry, (1, name))
    }

    /// Every message logged in this test process.
    pub(crate) static LOGGED: spin::Mutex<Vec<String>> = spin::Mutex::new(Vec::new());

    /// The logger that keeps messages in [`LOGGED`].
    struct Recorder;

    impl log::Log for Recorder {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            LOGGED.lock().push(alloc::format!("{}", record.args()));
        }
        fn flush(&self) {}
    }

    /// Whether a message starting with `start` was logged since the test process began.
    pub(crate) fn logged(start: &str) -> bool {
        LOGGED.lock().iter().any(|line| line.starts_with(start))
    }

    /// Keeps warnings in [`LOGGED`] (the logger may be set already by another test).
    pub(crate) fn record_logs() {
        let _ = log::set_logger(&Recorder);
        log::set_max_level(log::LevelFilter::Warn);
    }

    /// Disk 0 of `registry` leased to `holder` (owner id, app name).
    pub(crate) fn lease_disk_to(
        registry: &'static Registry,
        holder: Holder,
    ) -> Box<dyn rexo_api::BlockDevice> {
        registry
            .open(DeviceKind::Block, 0, holder)
            .and_then(OpenDevice::into_block)
            .unwrap()
    }

    /// Checks that `seen` is `sectors` sectors of zeros (`what` says why it should be).
    fn assert_zeroed(seen: &[u8], sectors: usize, what: &str) {
        assert_eq!(seen.len(), sectors * 512);
        let first = seen.iter().position(|&b| b != 0);
        assert_eq!(first, None, "{what}: the first nonzero byte");
    }

    /// Sectors `start..start + count` of `disk`, read in requests of its `max_sectors`.
    fn read_sectors(disk: &mut dyn rexo_api::BlockDevice, start: u64, count: u64) -> Vec<u8> {
        let most = disk.info().max_sectors;
        let mut bytes = Vec::new();
        for at in (start..start + count).step_by(most as usize) {
            let tag = disk
                .submit_read(0, at, (start + count - at).min(u64::from(most)) as u32)
                .unwrap();
            rexo_api::device::wait_for(disk, 0, tag, &mut |data| bytes.extend_from_slice(data))
                .unwrap();
        }
        bytes
    }

    /// Fills sectors `start..start + count` of `disk` with `byte`, in requests of its
    /// `max_sectors`.
    fn fill_sectors(disk: &mut dyn rexo_api::BlockDevice, start: u64, count: u64, byte: u8) {
        let most = disk.info().max_sectors;
        for at in (start..start + count).step_by(most as usize) {
            let sectors = (start + count - at).min(u64::from(most)) as u32;
            let tag = disk
                .submit_write(0, at, sectors, &mut |b| b.fill(byte))
                .unwrap();
            rexo_api::device::wait_for(disk, 0, tag, &mut |_| {}).unwrap();
        }
    }

    /// Polls queue 0 of `disk`, checking that each request succeeded, until `enough`
    /// holds of the tags completed so far; those tags, in the order completed.
    fn poll_until(
        disk: &mut dyn rexo_api::BlockDevice,
        enough: impl Fn(&[rexo_api::Tag]) -> bool,
    ) -> Vec<rexo_api::Tag> {
        let mut finished = Vec::new();
        while !enough(&finished) {
            disk.poll(0, &mut |tag, result| {
                assert!(result.is_ok());
                finished.push(tag);
            })
            .unwrap();
        }
        finished
    }

    /// Writes 5s over sector 2 of `disk`, then 6s over sector 3 as an ordered write,
    /// and polls until the ordered write completes: the write's tag, the ordered
    /// write's, and the tags completed, in order.
    fn write_then_ordered(
        disk: &mut dyn rexo_api::BlockDevice,
    ) -> (rexo_api::Tag, rexo_api::Tag, Vec<rexo_api::Tag>) {
        let write = disk.submit_write(0, 2, 1, &mut |b| b.fill(5)).unwrap();
        let ordered = disk
            .submit_write_ordered(0, 3, 1, &mut |b| b.fill(6))
            .unwrap();
        let finished = poll_until(disk, |done| done.contains(&ordered));
        (write, ordered, finished)
    }

    #[test]
    fn a_newly_allocated_extent_reads_as_zeros_not_as_its_last_owners_data() {
        use rexo_api::ExtentOp;
        let registry = registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory");
        let allocate = |name: &str, sectors| {
            registry
                .extents(0, name, Some(ExtentOp::Allocate { sectors }))
                .unwrap()
                .into_iter()
                .rfind(|e| e.holder == name)
                .map(|e| (e.start, e.count))
                .unwrap()
        };
        registry
            .extents(0, "fs", Some(ExtentOp::Format { force: false }))
            .unwrap();
        // 200 sectors: four zeroing requests of at most 64, the last one short.
        assert_eq!(allocate("fs", 200), (0, 200));
        assert_eq!(allocate("kv", 64), (200, 64));
        let mut fs = lease_disk(registry, "fs");
        fill_sectors(fs.as_mut(), 0, 200, 0xAB);
        drop(fs);
        let mut kv = lease_disk(registry, "kv");
        fill_sectors(kv.as_mut(), 200, 64, 0xCD);
        drop(kv);
        let share = ExtentOp::Share {
            start: 8,
            count: 8,
            reader: "web".into(),
        };
        registry.extents(0, "fs", Some(share)).unwrap();
        let mut web = lease_disk(registry, "web");
        assert!(
            read_sectors(web.as_mut(), 8, 8).iter().all(|&b| b == 0xAB),
            "a share is the owner's data, not wiped"
        );
        drop(web);
        registry
            .extents(0, "fs", Some(ExtentOp::Free { start: 0 }))
            .unwrap();
        assert_eq!(allocate("web", 200), (0, 200), "the same blocks, first fit");
        let mut web = lease_disk(registry, "web");
        assert_zeroed(
            &read_sectors(web.as_mut(), 0, 200),
            200,
            "fs's data is gone",
        );
        drop(web);
        let mut kv = lease_disk(registry, "kv");
        assert!(
            read_sectors(kv.as_mut(), 200, 64)
                .iter()
                .all(|&b| b == 0xCD),
            "the wipe stops at the extent's end"
        );
    }

    #[test]
    fn an_allocation_whose_zeroing_fails_is_refused_and_changes_nothing() {
        use core::sync::atomic::Ordering;
        use rexo_api::ExtentOp;
        let bad = alloc::sync::Arc::new(core::sync::atomic::AtomicU64::new(u64::MAX));
        let disk = MemoryDisk {
            bad_sector: bad.clone(),
            ..MemoryDisk::new()
        };
        let (registry, before) = registry_with_table(disk);
        // web's extent would be 64..264; its second zeroing request fails.
        bad.store(150, Ordering::Relaxed);
        assert_eq!(
            registry
                .extents(0, "web", Some(ExtentOp::Allocate { sectors: 200 }))
                .err(),
            Some(ApiError::Device(DeviceError::Status {
                what: "a simulated write",
                status: 1
            }))
        );
        assert_eq!(registry.extents(0, "fs", None), Ok(before.clone()));
        // The table on the disk is unchanged too: read again, as at the next boot.
        registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        assert_eq!(registry.extents(0, "fs", None), Ok(before));
        let mut web = lease_disk(registry, "web");
        assert_eq!(
            web.submit_read(0, 64, 1).err(),
            Some(DeviceError::Denied {
                sector: 64,
                write: false
            })
        );
        drop(web);
        // Once the disk writes again, the same blocks are allocated.
        bad.store(u64::MAX, Ordering::Relaxed);
        let after = registry
            .extents(0, "web", Some(ExtentOp::Allocate { sectors: 200 }))
            .unwrap();
        assert_eq!((after[1].start, after[1].count), (64, 200));
    }

    #[test]
    fn a_request_of_no_sectors_on_a_disk_with_a_table_is_out_of_range() {
        let (registry, _) = registry_with_table(MemoryDisk::new());
        let mut fs = lease_disk(registry, "fs");
        let capacity = fs.info().sectors;
        for lba in [0, capacity - 8] {
            let out_of_range = Some(DeviceError::OutOfRange {
                lba,
                sectors: 0,
                capacity,
            });
            assert_eq!(fs.submit_read(0, lba, 0).err(), out_of_range);
            assert_eq!(fs.submit_write(0, lba, 0, &mut |_| {}).err(), out_of_range);
        }
    }

    #[test]
    fn a_table_whose_flush_fails_is_read_again_from_the_disk() {
        use core::sync::atomic::Ordering;
        use rexo_api::ExtentOp;
        let failing = alloc::sync::Arc::new(core::sync::atomic::AtomicBool::new(false));
        let disk = MemoryDisk {
            failing_flushes: failing.clone(),
            ..MemoryDisk::new()
        };
        let (registry, _) = registry_with_table(disk);
        // The free's table is written, but its flush fails: the disk may hold either.
        failing.store(true, Ordering::Relaxed);
        assert_eq!(
            registry
                .extents(0, "fs", Some(ExtentOp::Free { start: 0 }))
                .err(),
            Some(ApiError::Device(DeviceError::Status {
                what: "a simulated flush",
                status: 1
            }))
        );
        failing.store(false, Ordering::Relaxed);
        // What is checked now is what the disk holds (here, the new table): the same as
        // after a reboot.
        let now = registry.extents(0, "fs", None).unwrap();
        assert!(now.is_empty(), "the disk's table, not the old one: {now:?}");
        let mut fs = lease_disk(registry, "fs");
        assert_eq!(
            fs.submit_write(0, 0, 1, &mut |_| {}).err(),
            Some(DeviceError::Denied {
                sector: 0,
                write: true
            })
        );
        drop(fs);
        registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        assert_eq!(registry.extents(0, "fs", None), Ok(now), "after a reboot");
    }

    /// What a test of [`Lagging`] sees of it: requests submitted and not yet completed,
    /// the most at once, and the sector whose write fails as it completes (`u64::MAX`:
    /// none).
    #[derive(Default)]
    struct LagWatch {
        in_flight: core::sync::atomic::AtomicUsize,
        most: core::sync::atomic::AtomicUsize,
        bad: core::sync::atomic::AtomicU64,
    }

    /// A memory disk that finishes one request per poll, oldest first (each with a tag of
    /// its own), and fails (on completion) each write covering the watched bad sector.
    struct Lagging {
        /// The sectors and the requests' work.
        disk: MemoryDisk,
        /// Requests in flight, oldest first: tag, byte range, whether it fails.
        queue: Vec<(rexo_api::Tag, usize, usize, bool)>,
        /// The last tag given.
        last_tag: rexo_api::Tag,
        /// What the test sees.
        watch: alloc::sync::Arc<LagWatch>,
    }

    impl Lagging {
        /// Queues the request the memory disk just took (and finished), under a tag of
        /// its own; fails it on completion when `fails`.
        fn queued(&mut self, fails: bool) -> rexo_api::Tag {
            use core::sync::atomic::Ordering;
            let (_, at, len) = self.disk.done.pop().expect("the memory disk queued it");
            self.last_tag += 1;
            self.queue.push((self.last_tag, at, len, fails));
            let now = self.watch.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            self.watch.most.fetch_max(now, Ordering::Relaxed);
            self.last_tag
        }
    }

    impl rexo_api::BlockDevice for Lagging {
        fn info(&self) -> rexo_api::BlockInfo {
            self.disk.info()
        }
        fn submit_read(
            &mut self,
            queue: usize,
            lba: u64,
            sectors: u32,
        ) -> Result<rexo_api::Tag, DeviceError> {
            self.disk.submit_read(queue, lba, sectors)?;
            Ok(self.queued(false))
        }
        fn submit_write_checked(
            &mut self,
            queue: usize,
            lba: u64,
            sectors: u32,
            fill: &mut dyn FnMut(&mut [u8]) -> bool,
        ) -> Result<rexo_api::Tag, DeviceError> {
            self.disk.submit_write_checked(queue, lba, sectors, fill)?;
            let bad = self.watch.bad.load(core::sync::atomic::Ordering::Relaxed);
            Ok(self.queued((lba..lba + u64::from(sectors)).contains(&bad)))
        }
        fn submit_flush(&mut self, queue: usize) -> Result<rexo_api::Tag, DeviceError> {
            self.disk.submit_flush(queue)?;
            Ok(self.queued(false))
        }
        fn poll(&mut self, _: usize, done: rexo_api::Completion<'_>) -> Result<usize, DeviceError> {
            self.disk.usable()?;
            if self.queue.is_empty() {
                return Ok(0);
            }
            let (tag, at, len, fails) = self.queue.remove(0);
            self.watch
                .in_flight
                .fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
            if fails {
                done(
                    tag,
                    Err(DeviceError::Status {
                        what: "a simulated write",
                        status: 1,
                    }),
                );
            } else {
                done(tag, Ok(&self.disk.data[at..at + len]));
            }
            Ok(1)
        }
        fn wake_on_completion(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Err(DeviceError::Unsupported("wake-ups on a simulated disk"))
        }
        fn abandon_requests(&mut self) {
            let abandoned = self.queue.len();
            self.queue.clear();
            self.watch
                .in_flight
                .fetch_sub(abandoned, core::sync::atomic::Ordering::Relaxed);
        }
        /// The memory disk's: its writes landed when taken, and it refuses everything
        /// after (the requests lagging here are dropped).
        fn shut_down(&mut self, leaving: Leaving) -> Result<(), DeviceError> {
            self.abandon_requests();
            self.disk.shut_down(leaving)
        }
    }

    /// A registry whose one disk is a [`Lagging`] memory disk filled with 0xEE (no table),
    /// and the disk's watch.
    fn lagging_registry() -> (&'static Registry, alloc::sync::Arc<LagWatch>) {
        let watch = alloc::sync::Arc::new(LagWatch::default());
        watch
            .bad
            .store(u64::MAX, core::sync::atomic::Ordering::Relaxed);
        let mut disk = MemoryDisk::new();
        disk.data.fill(0xEE);
        let lagging = Lagging {
            disk,
            queue: Vec::new(),
            last_tag: 0,
            watch: watch.clone(),
        };
        (
            registry_with(Found::Block(Box::new(lagging)), "memory"),
            watch,
        )
    }

    #[test]
    fn an_extent_is_zeroed_with_requests_up_to_the_depth_in_flight() {
        use core::sync::atomic::Ordering;
        use rexo_api::ExtentOp;
        let (registry, watch) = lagging_registry();
        // Forced: the disk holds 0xEE everywhere, the table's sectors too.
        registry
            .extents(0, "fs", Some(ExtentOp::Format { force: true }))
            .unwrap();
        assert_eq!(watch.most.load(Ordering::Relaxed), 1, "table write, flush");
        // 1000 sectors: 16 requests of at most 64, the last one short, 8 (the depth) at once.
        let extents = registry
            .extents(0, "fs", Some(ExtentOp::Allocate { sectors: 1000 }))
            .unwrap();
        assert_eq!((extents[0].start, extents[0].count), (0, 1000));
        assert_eq!(watch.most.load(Ordering::Relaxed), 8);
        assert_eq!(watch.in_flight.load(Ordering::Relaxed), 0);
        let mut fs = lease_disk(registry, "fs");
        assert_zeroed(
            &read_sectors(fs.as_mut(), 0, 1000),
            1000,
            "every sector zeroed",
        );
        drop(fs);
        let mut raw = lease_disk(registry, "fs");
        assert_eq!(
            raw.submit_read(0, 1000, 1).err(),
            Some(DeviceError::Denied {
                sector: 1000,
                write: false
            }),
            "past the extent"
        );
    }

    #[test]
    fn a_zeroing_write_failing_mid_window_still_waits_for_the_others() {
        use core::sync::atomic::Ordering;
        use rexo_api::ExtentOp;
        let (registry, watch) = lagging_registry();
        // Forced: the disk holds 0xEE everywhere, the table's sectors too.
        registry
            .extents(0, "fs", Some(ExtentOp::Format { force: true }))
            .unwrap();
        let before = registry.extents(0, "fs", None).unwrap();
        // The third request fails as it completes, with the seven after it in flight.
        watch.bad.store(150, Ordering::Relaxed);
        assert_eq!(
            registry
                .extents(0, "fs", Some(ExtentOp::Allocate { sectors: 1000 }))
                .err(),
            Some(ApiError::Device(DeviceError::Status {
                what: "a simulated write",
                status: 1
            }))
        );
        assert_eq!(
            watch.in_flight.load(Ordering::Relaxed),
            0,
            "every submitted write waited for"
        );
        assert_eq!(watch.most.load(Ordering::Relaxed), 8);
        assert_eq!(registry.extents(0, "fs", None), Ok(before));
        watch.bad.store(u64::MAX, Ordering::Relaxed);
        let after = registry
            .extents(0, "fs", Some(ExtentOp::Allocate { sectors: 1000 }))
            .unwrap();
        assert_eq!((after[0].start, after[0].count), (0, 1000));
    }

    #[test]
    fn requests_are_refused_while_the_protection_is_unknown() {
        let address = Address::new(0, 0, 7, 0).unwrap();
        let mut state = Slot::new(address, "memory", Found::Block(Box::new(MemoryDisk::new())))
            .state
            .into_inner();
        assert_eq!(state.protection, xn::Protection::Unknown);
        assert_eq!(
            xn::check(&state, "app", 5, 1, false),
            Err(DeviceError::Denied {
                sector: 5,
                write: false
            })
        );
        state.protection = xn::Protection::Raw;
        assert_eq!(xn::check(&state, "app", 5, 1, false), Ok(()));
    }

    /// Ordered writes an app queues without polling are bounded: each holds a copy of
    /// its data in the kernel's heap (which keeps the frames it grows by), and there was
    /// no limit, so an app could fill the kernel's memory. Past the bound the queue is
    /// full until the app polls them to completion.
    #[test]
    fn ordered_writes_not_yet_completed_are_bounded_per_queue() {
        let registry = registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory");
        let mut disk = lease_disk(registry, "fs");
        let mut queued = Vec::new();
        for index in 0..rexo_api::MAX_ORDERED_PER_QUEUE as u64 {
            let tag = disk
                .submit_write_ordered(0, index, 1, &mut |b| b.fill(1))
                .unwrap();
            queued.push(tag);
        }
        assert_eq!(
            disk.submit_write_ordered(0, 0, 1, &mut |b| b.fill(2)).err(),
            Some(DeviceError::QueueFull)
        );
        let finished = poll_until(disk.as_mut(), |done| done.len() >= queued.len());
        assert_eq!(finished, queued, "in the order submitted");
        let tag = disk
            .submit_write_ordered(0, 0, 1, &mut |b| b.fill(2))
            .unwrap();
        rexo_api::device::wait_for(disk.as_mut(), 0, tag, &mut |_| {}).unwrap();
    }

    /// Ordered writes still queued when their holder gives them up, or its lease ends,
    /// are not written (nobody would be told how they ended): a warning counts them,
    /// naming the disk and the holder.
    #[test]
    fn ordered_writes_given_up_or_left_at_the_leases_end_are_counted_in_a_warning() {
        record_logs();
        let registry = registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory");
        let queue_behind_a_write = |disk: &mut dyn rexo_api::BlockDevice, count| {
            disk.submit_write(0, 0, 1, &mut |b| b.fill(1)).unwrap();
            for lba in 1..=count {
                disk.submit_write_ordered(0, lba, 1, &mut |b| b.fill(2))
                    .unwrap();
            }
        };
        let mut disk = lease_disk_to(registry, (1, "giver"));
        queue_behind_a_write(disk.as_mut(), 2);
        disk.abandon_requests();
        let gave_up = "00:03.0 memory: 2 ordered write(s) of giver given up unwritten: it gave \
                       up its requests";
        assert!(logged(gave_up), "{:?}", LOGGED.lock());
        drop(disk);
        let mut disk = lease_disk_to(registry, (2, "leaver"));
        queue_behind_a_write(disk.as_mut(), 3);
        drop(disk);
        let ended = "00:03.0 memory: 3 ordered write(s) of leaver given up unwritten: its lease \
                     ended";
        assert!(logged(ended), "{:?}", LOGGED.lock());
    }

    /// The copies of an ordered write's data a lease holds are bounded in bytes too: the
    /// bound in number alone let an app hold 64 requests' worth per queue (megabytes per
    /// disk) of the kernel's heap, charged to nobody. Past it the app is told to poll
    /// and retry; the bytes come back as the writes complete, or when it gives them up.
    #[test]
    fn the_bytes_ordered_writes_hold_are_bounded_per_lease() {
        use rexo_api::MAX_ORDERED_BYTES;
        let registry = registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory");
        let mut disk = lease_disk(registry, "fs");
        let most = disk.info().max_sectors;
        let fitting = MAX_ORDERED_BYTES / (most as usize * 512);
        assert!(
            fitting < rexo_api::MAX_ORDERED_PER_QUEUE,
            "the bytes bind first"
        );
        let fill_up = |disk: &mut Box<dyn rexo_api::BlockDevice>| {
            let mut queued = Vec::new();
            for index in 0..fitting as u64 {
                let lba = index * u64::from(most);
                let tag = disk.submit_write_ordered(0, lba, most, &mut |b| b.fill(1));
                queued.push(tag.unwrap());
            }
            assert_eq!(
                disk.submit_write_ordered(0, 0, 1, &mut |b| b.fill(2)).err(),
                Some(DeviceError::QueueFull),
                "one sector more passes the bound"
            );
            queued
        };
        let queued = fill_up(&mut disk);
        let finished = poll_until(disk.as_mut(), |done| done.len() >= queued.len());
        assert_eq!(finished, queued, "completed in the order submitted");
        fill_up(&mut disk);
        disk.abandon_requests();
        let tag = disk
            .submit_write_ordered(0, 0, most, &mut |b| b.fill(3))
            .unwrap();
        rexo_api::device::wait_for(disk.as_mut(), 0, tag, &mut |_| {}).unwrap();
    }

    /// A driver's tag of 2^31 or more never passes for an ordered write's: the app gets
    /// driver tags without their top bit. It used to get them as they were, so a write
    /// submitted before an ordered write could have the ordered write's tag, and its
    /// completion passed for the ordered write's (durable) one.
    #[test]
    fn a_driver_tag_past_2_31_is_not_taken_for_an_ordered_write() {
        // The driver numbers its requests from 2^31 up (as a driver that counts its
        // tags up does after 2^31 requests).
        let disk = MemoryDisk {
            first_tag: 1 << 31,
            ..MemoryDisk::new()
        };
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let mut disk = lease_disk(registry, "fs");
        let (write, ordered, finished) = write_then_ordered(disk.as_mut());
        assert_ne!(write, ordered);
        assert_eq!(finished, [write, ordered]);
        assert!(
            read_sectors(disk.as_mut(), 3, 1)
                .iter()
                .all(|&byte| byte == 6),
            "the ordered write landed"
        );
    }

    /// The table is read and written in requests of up to the device's `max_sectors`,
    /// as the wipe is: it used to be one request of 4 KiB, which such a disk refused,
    /// so the table could not be made, and a table on it could never be read (the disk
    /// refused to every app for good).
    #[test]
    fn a_disk_with_small_requests_reads_and_writes_its_table() {
        // Requests of at most 4 sectors (2 KiB, less than the table's 4 KiB).
        let disk = MemoryDisk {
            max_sectors: 4,
            ..MemoryDisk::new()
        };
        let (registry, granted) = registry_with_table(disk);
        // The next boot: the table is read again at the first open.
        registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        let mut other = lease_disk(registry, "kv");
        assert_eq!(
            other.submit_read(0, 0, 1).err(),
            Some(DeviceError::Denied {
                sector: 0,
                write: false
            })
        );
        drop(other);
        assert_eq!(registry.extents(0, "fs", None).unwrap(), granted);
    }

    /// A format writes the table over the disk's last 8 KiB: on a partitioned disk
    /// that is a GPT's backup header and entries, elsewhere a file system's last block.
    /// It is refused when sector 0 holds a boot signature or the table's sectors hold
    /// data, unless forced; it used to write over them whatever they held.
    #[test]
    fn a_format_over_a_partition_table_or_data_needs_force() {
        use rexo_api::{ExtentError, ExtentOp};
        let format = |registry: &'static Registry, force| {
            registry.extents(0, "fs", Some(ExtentOp::Format { force }))
        };
        let in_use = |why| Err(ApiError::Extents(ExtentError::InUse(why)));
        let partition = "sector 0 holds a partition table (an MBR or a GPT's protective MBR)";
        let data = "the sectors the table takes at the disk's end hold data";
        let mut partitioned = MemoryDisk::new();
        partitioned.data[510..512].copy_from_slice(&[0x55, 0xAA]);
        let mut backup = MemoryDisk::new();
        let end = backup.data.len();
        backup.data[end - 512..end - 504].copy_from_slice(b"EFI PART");
        let loader = "the locator's sectors (at the end of the first MiB) hold data";
        let mut boot_loader = MemoryDisk::new();
        boot_loader.data[(1 << 20) - 100] = 0x90;
        for (disk, why) in [
            (partitioned, partition),
            (backup, data),
            (boot_loader, loader),
        ] {
            let registry = registry_with(Found::Block(Box::new(disk)), "memory");
            assert_eq!(format(registry, false), in_use(why));
            assert_eq!(
                registry.extents(0, "fs", None),
                Err(ApiError::Extents(ExtentError::NoTable)),
                "nothing written"
            );
            let end = MemoryDisk::SECTORS;
            assert_eq!(format(registry, true), Ok(Vec::new()), "forced");
            let mut fs = lease_disk(registry, "fs");
            assert!(fs.submit_read(0, end - 1, 1).is_err(), "the table's now");
            drop(fs);
            registry.slots[0].state.lock().protection = xn::Protection::Raw;
            let mut raw = lease_disk(registry, "fs");
            let copy = read_sectors(raw.as_mut(), end - 8, 8);
            assert_eq!(&copy[..8], b"RexoXN03", "written over");
            assert_zeroed(&copy[3584..], 1, "the rest of the copy");
            let locator = read_sectors(raw.as_mut(), 2040, 8);
            for copy in [0, 2048] {
                let (written, rest) = locator[copy..][..2048].split_at(512);
                assert_eq!(
                    &written[..8],
                    b"RexoXNat",
                    "the locator's copies written over"
                );
                assert_zeroed(rest, 3, "the rest of the locator");
            }
        }
        // A damaged table is what a format replaces: no force needed.
        let mut damaged = MemoryDisk::new();
        let end = damaged.data.len();
        damaged.data[end - 4096..end - 4088].copy_from_slice(b"RexoXN03");
        let registry = registry_with(Found::Block(Box::new(damaged)), "memory");
        assert!(matches!(
            registry.extents(0, "fs", None),
            Err(ApiError::Extents(ExtentError::Corrupt(_)))
        ));
        assert_eq!(format(registry, false), Ok(Vec::new()));
    }

    /// What a test sees of a memory disk's reads, writes and drains: while `closed`,
    /// each waits (and `waiting` says one does), as during a long wipe, a slow read or
    /// write of the extent table, or a drain of a device that does not answer.
    #[derive(Default)]
    pub(crate) struct HoldBack {
        closed: core::sync::atomic::AtomicBool,
        waiting: core::sync::atomic::AtomicBool,
    }

    impl HoldBack {
        /// Returns once the disk is let go, saying in `waiting` that it waited.
        fn pass(&self) {
            use core::sync::atomic::Ordering;
            while self.closed.load(Ordering::Acquire) {
                self.waiting.store(true, Ordering::Release);
                std::thread::yield_now();
            }
        }

        /// Holds the disk's reads, writes and drains back, starts `held` on a thread and waits
        /// until it is held, then runs `calls` on another thread (so that a call stuck
        /// behind `held` fails the test instead of hanging it) and lets the disk go.
        /// Returns `held`'s thread and what `calls` returned, an error if they did not
        /// complete within 5 s.
        pub(crate) fn during<Held: Send + 'static, Calls: Send + 'static>(
            &self,
            held: impl FnOnce() -> Held + Send + 'static,
            calls: impl FnOnce() -> Calls + Send + 'static,
        ) -> (
            std::thread::JoinHandle<Held>,
            Result<Calls, std::sync::mpsc::RecvTimeoutError>,
        ) {
            use core::sync::atomic::Ordering;
            self.closed.store(true, Ordering::Release);
            self.waiting.store(false, Ordering::Release);
            let holding = std::thread::spawn(held);
            while !self.waiting.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            let (send, answer) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = send.send(calls());
            });
            let during = answer.recv_timeout(std::time::Duration::from_secs(5));
            self.let_go();
            (holding, during)
        }

        /// Lets the disk go: what waits goes on.
        pub(crate) fn let_go(&self) {
            self.closed
                .store(false, core::sync::atomic::Ordering::Release);
        }
    }

    /// A registry of one memory disk whose reads, writes and drains the [`HoldBack`]
    /// holds back.
    pub(crate) fn held_back_disk() -> (alloc::sync::Arc<HoldBack>, &'static Registry) {
        let hold_back = alloc::sync::Arc::new(HoldBack::default());
        let disk = MemoryDisk {
            hold_back: hold_back.clone(),
            ..MemoryDisk::new()
        };
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        (hold_back, registry)
    }

    /// Runs `calls` on a thread of its own while `call` runs on another thread (a core
    /// of its own), inside a device call whose closure calls the `wait` it is given:
    /// that waits until `calls` returned or 5 s passed, as an app's closure may wait for
    /// anything. Returns what `calls` returned, an error if it did not return in time
    /// (it waited for the call), and what `call` returned once it has.
    pub(crate) fn while_inside<Held: Send + 'static, Calls: Send + 'static>(
        call: impl FnOnce(&dyn Fn()) -> Held + Send + 'static,
        calls: impl FnOnce() -> Calls + Send + 'static,
    ) -> (Result<Calls, std::sync::mpsc::RecvTimeoutError>, Held) {
        use core::sync::atomic::{AtomicBool, Ordering};
        let (inside, released) = (
            alloc::sync::Arc::new(AtomicBool::new(false)),
            alloc::sync::Arc::new(AtomicBool::new(false)),
        );
        let (entered, waited_for) = (inside.clone(), released.clone());
        let holding = std::thread::spawn(move || {
            call(&|| {
                entered.store(true, Ordering::Release);
                while !waited_for.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
            })
        });
        while !inside.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let (send, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = send.send(calls());
        });
        let answered = answer.recv_timeout(std::time::Duration::from_secs(5));
        released.store(true, Ordering::Release);
        (answered, holding.join().unwrap())
    }

    /// [`while_inside`] a `poll` of app 2 ("blocker") on disk 0 of `registry`, which
    /// returns app 2's lease.
    pub(crate) fn inside_a_call<Calls: Send + 'static>(
        registry: &'static Registry,
        calls: impl FnOnce() -> Calls + Send + 'static,
    ) -> (
        Result<Calls, std::sync::mpsc::RecvTimeoutError>,
        Box<dyn rexo_api::BlockDevice>,
    ) {
        let call = move |wait: &dyn Fn()| {
            let mut disk = lease_disk_to(registry, (2, "blocker"));
            let _ = disk.submit_read(0, 0, 1).unwrap();
            assert_eq!(disk.poll(0, &mut |_, _| wait()), Ok(1));
            disk
        };
        while_inside(call, calls)
    }

    /// A registry of one memory disk.
    fn memory_disk() -> &'static Registry {
        registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory")
    }

    /// Another app's open of a device whose holder is inside a call on it on another
    /// core is answered busy at once: it used to spin on the slot's lock for as long as
    /// the holder's closure ran.
    #[test]
    fn an_open_of_a_device_another_core_holds_in_a_call_is_busy_at_once() {
        let registry = memory_disk();
        let (during, _) = inside_a_call(registry, move || {
            registry.open(DeviceKind::Block, 0, (3, "kv")).err()
        });
        assert_eq!(during, Ok(Some(ApiError::DeviceBusy("blocker"))));
    }

    /// `devices` lists a device whose holder is inside a call on it on another core,
    /// held by that holder, without waiting: it used to spin on the slot's lock for as
    /// long as the holder's closure ran.
    #[test]
    fn devices_lists_a_device_another_core_holds_in_a_call_without_waiting() {
        let registry = memory_disk();
        let (during, _) = inside_a_call(registry, move || registry.devices()[0].holder);
        assert_eq!(during, Ok(Some("blocker")));
    }

    /// The end of an app that holds nothing another core holds in a call returns at once:
    /// it used to spin on that slot's lock for as long as the holder's closure ran, inside
    /// the kernel's clean-up, so the manifest's runs never finished. The end of the app
    /// inside the call waits for it, then takes the disk back.
    #[test]
    fn an_app_ends_without_waiting_for_another_apps_call_and_after_its_own() {
        let registry = memory_disk();
        let (during, _) = inside_a_call(registry, move || registry.revoke_all_of(3));
        assert_eq!(during, Ok(0), "app 3 ended at once");
        let (send, answered) = std::sync::mpsc::channel();
        let (during, mut disk) = inside_a_call(registry, move || {
            let ending = std::thread::spawn(move || send.send(registry.revoke_all_of(2)));
            std::thread::sleep(std::time::Duration::from_millis(50));
            ending.is_finished()
        });
        assert_eq!(during, Ok(false), "app 2's end waits for its call");
        let timeout = std::time::Duration::from_secs(5);
        assert_eq!(
            answered.recv_timeout(timeout),
            Ok(1),
            "then takes its disk back"
        );
        assert_eq!(disk.submit_read(0, 0, 1), Err(DeviceError::Revoked));
    }

    /// [`two_disks_the_second_waking`], its second disk opened by app 1 ("fs") and its
    /// completions on queue 0 bound to wake core 1.
    fn the_second_disk_waking_core_1(
        binder: Routes,
    ) -> (&'static Registry, Armed, Box<dyn rexo_api::BlockDevice>) {
        let (registry, armed) = two_disks_the_second_waking(binder);
        let open = registry.open(DeviceKind::Block, 1, (1, "fs"));
        let mut fs = open.and_then(OpenDevice::into_block).unwrap();
        fs.wake_on_completion(0, Some(1)).unwrap();
        (registry, armed, fs)
    }

    /// A registry of two memory disks, the second of which can wake a core (through
    /// `binder`, recording the core in what is returned with the registry).
    fn two_disks_the_second_waking(binder: Routes) -> (&'static Registry, Armed) {
        let armed = Armed::default();
        let address = Address::new(0, 0, 3, 0).unwrap();
        let waking = MemoryDisk {
            wakes: Some((binder, armed.clone())),
            ..MemoryDisk::new()
        };
        let registry = Box::leak(Box::new(Registry {
            slots: [MemoryDisk::new(), waking]
                .map(|disk| Slot::new(address, "memory", Found::Block(Box::new(disk))))
                .into(),
            bindings: Vec::new(),
            binder,
        }));
        (registry, armed)
    }

    /// An interrupt binding returned while another app is inside a call on another
    /// device is given back and its source disarmed at once: `return_interrupt` used to
    /// lock every slot in turn, spinning on that one for as long as the closure ran.
    #[test]
    fn an_interrupt_returned_while_another_device_is_held_in_a_call_goes_back_at_once() {
        let binder = crate::interrupts::tests::TableBinder::leaked();
        let (registry, armed, mut fs) = the_second_disk_waking_core_1(binder);
        let cap = binder.take_minted().pop().unwrap();
        let (during, _) = inside_a_call(registry, move || registry.return_interrupt(1, cap));
        assert!(matches!(during, Ok(Ok(()))), "given back at once");
        assert_eq!(*armed.lock(), None, "its source disarmed");
        assert_eq!(fs.wake_on_completion(0, Some(1)), Err(DeviceError::Unbound));
    }

    /// The kernel's sweep of bindings revoked by force passes by a device another core
    /// holds in a call, without counting it (the call disarms it as it returns), and
    /// disarms the others: it used to spin on that slot's lock for as long as the closure
    /// ran, holding up the kernel task (and the core) that ran it.
    #[test]
    fn the_sweep_passes_by_a_device_another_core_holds_in_a_call() {
        let binder = crate::interrupts::tests::TableBinder::leaked();
        let (registry, armed, _held) = the_second_disk_waking_core_1(binder);
        binder.revoke(binder.take_minted().pop().unwrap().id());
        let (during, _) = inside_a_call(registry, move || registry.disarm_revoked());
        let swept = Sweep {
            disarmed: 1,
            passed_by: 0,
        };
        assert_eq!(during, Ok(swept), "disk 1 swept, disk 0 handed to its call");
        assert_eq!(*armed.lock(), None, "its source disarmed");
        assert_eq!(registry.disarm_revoked(), Sweep::default(), "then swept");
    }

    /// A binding revoked by force on a device another core holds in a call is disarmed
    /// by that call as it returns, and the sweep that passed the device by asks for no
    /// sweep again: it counted the device in `passed_by`, and the kernel asked for the
    /// sweep again each time, so every idle core ran it over and over (taking every
    /// other slot's lock) for as long as the closure held the device.
    #[test]
    fn a_device_another_core_holds_in_a_call_is_disarmed_as_the_call_returns() {
        let binder = crate::interrupts::tests::TableBinder::leaked();
        let (registry, armed, mut fs) = the_second_disk_waking_core_1(binder);
        binder.revoke(binder.take_minted().pop().unwrap().id());
        let call = move |wait: &dyn Fn()| {
            let _ = fs.submit_read(0, 0, 1).unwrap();
            assert_eq!(fs.poll(0, &mut |_, _| wait()), Ok(1));
            fs
        };
        let armed_inside = armed.clone();
        let (during, mut fs) = while_inside(call, move || {
            (registry.disarm_revoked(), *armed_inside.lock())
        });
        assert_eq!(
            during,
            Ok((Sweep::default(), Some(1))),
            "passed by uncounted, still armed during the call"
        );
        assert_eq!(*armed.lock(), None, "disarmed as the call returned");
        assert_eq!(registry.devices()[1].interrupts, alloc::vec![], "unbound");
        assert_eq!(fs.wake_on_completion(0, Some(1)), Err(DeviceError::Unbound));
    }

    /// A disk's holder going drains its requests in flight outside the slot's lock: it
    /// used to hold it until the device answered or its driver reset it (about 20 s for
    /// a device that never answers), so an app's exit, `devices` and every call that
    /// takes each slot's lock waited for one unresponsive disk. Meanwhile the disk is
    /// busy; the mark goes when the drain ends.
    #[test]
    fn other_calls_complete_while_abandoned_requests_drain() {
        let (hold_back, registry) = held_back_disk();
        let mut fs = lease_disk(registry, "fs");
        let _ = fs.submit_read(0, 0, 1).unwrap();
        let (dropping, during) = hold_back.during(
            move || drop(fs),
            move || {
                (
                    registry.devices(),
                    registry.revoke_all_of(1),
                    registry.open(DeviceKind::Block, 0, (2, "kv")).err(),
                )
            },
        );
        let (devices, revoked, refused) = during.expect("calls during the drain");
        let draining = "the kernel (draining abandoned requests)";
        assert_eq!(
            (devices[0].holder, revoked, refused),
            (Some(draining), 0, Some(ApiError::DeviceBusy(draining)))
        );
        dropping.join().unwrap();
        assert_eq!(registry.devices()[0].holder, None, "the mark is gone");
        let mut kv = lease_disk(registry, "kv");
        assert_eq!(
            read_sectors(kv.as_mut(), 0, 1).len(),
            512,
            "the disk is back"
        );
    }

    /// An app giving up its own requests in flight (`abandon_requests` on its live
    /// lease, as `device::wait_for` does when a poll fails) drains them outside the
    /// slot's lock too: it used to hold it until the device answered or its driver reset
    /// it, so `devices` and every app's exit waited for one unresponsive disk. Meanwhile
    /// the disk stays the app's, and the app's own end waits for the drain before it
    /// takes the disk back.
    #[test]
    fn other_calls_complete_while_an_app_drains_its_own_abandoned_requests() {
        let (hold_back, registry) = held_back_disk();
        let mut fs = lease_disk(registry, "fs");
        let (drained, during) = hold_back.during(abandoning(fs), move || {
            (
                registry.devices(),
                registry.revoke_all_of(2),
                registry.open(DeviceKind::Block, 0, (2, "kv")).err(),
            )
        });
        let (devices, revoked, refused) = during.expect("calls during the drain");
        assert_eq!(
            (devices[0].holder, revoked, refused),
            (Some("fs"), 0, Some(ApiError::DeviceBusy("fs")))
        );
        fs = drained.join().unwrap();
        assert_eq!(
            read_sectors(fs.as_mut(), 0, 1).len(),
            512,
            "the lease goes on"
        );
        let (drained, during) = hold_back.during(abandoning(fs), move || {
            let ending = std::thread::spawn(move || registry.revoke_all_of(1));
            std::thread::sleep(std::time::Duration::from_millis(50));
            (ending.is_finished(), ending)
        });
        let (ended_during_the_drain, ending) = during.expect("the app's end started");
        assert!(!ended_during_the_drain, "the app's end waits for its drain");
        assert_eq!(ending.join().unwrap(), 1, "then takes the disk back");
        let mut fs = drained.join().unwrap();
        assert_eq!(fs.submit_read(0, 0, 1).err(), Some(DeviceError::Revoked));
        assert_eq!(registry.devices()[0].holder, None);
        let mut kv = lease_disk(registry, "kv");
        assert_eq!(
            read_sectors(kv.as_mut(), 0, 1).len(),
            512,
            "the disk is back"
        );
    }

    /// Submits a read on `disk`, then gives up its requests on a thread of its own (the
    /// work [`HoldBack::during`] holds), which hands the disk back.
    fn abandoning(
        mut disk: Box<dyn rexo_api::BlockDevice>,
    ) -> impl FnOnce() -> Box<dyn rexo_api::BlockDevice> + Send + 'static {
        let _ = disk.submit_read(0, 0, 1).unwrap();
        move || {
            disk.abandon_requests();
            disk
        }
    }

    /// An interrupt binding the kernel revokes while its holder drains its own abandoned
    /// requests is disarmed on the disk once the drain ends: the sweep found the disk
    /// out of its slot, and the disarm it made there would not reach it.
    #[test]
    fn a_binding_revoked_while_its_holder_drains_is_disarmed_on_the_disk() {
        let binder = crate::interrupts::tests::TableBinder::leaked();
        let (hold_back, armed) = (alloc::sync::Arc::new(HoldBack::default()), Armed::default());
        let disk = MemoryDisk {
            hold_back: hold_back.clone(),
            wakes: Some((binder, armed.clone())),
            ..MemoryDisk::new()
        };
        let registry = registry_binding_with(Found::Block(Box::new(disk)), "memory", binder);
        let mut fs = lease_disk(registry, "fs");
        fs.wake_on_completion(0, Some(1)).unwrap();
        let cap = binder.take_minted().pop().unwrap();
        let (drained, during) = hold_back.during(abandoning(fs), move || {
            binder.revoke(cap.id());
            registry.disarm_revoked().disarmed
        });
        assert_eq!(during, Ok(1), "swept during the drain");
        let mut fs = drained.join().unwrap();
        assert_eq!(*armed.lock(), None, "disarmed once the disk is back");
        assert_eq!(fs.wake_on_completion(0, Some(1)), Err(DeviceError::Unbound));
    }

    /// An allocation's wipe runs without the slot's lock: it used to hold it for the
    /// whole wipe (minutes on a big disk), and every call that takes each slot's lock
    /// (`devices`, `revoke_all_of` when any app ends) spun that long. Meanwhile the
    /// disk is busy; the mark goes when the wipe ends, a failed one too.
    #[test]
    fn other_calls_complete_while_an_extent_is_wiped() {
        use core::sync::atomic::Ordering;
        use rexo_api::ExtentOp;
        let hold_back = alloc::sync::Arc::new(HoldBack::default());
        let bad = alloc::sync::Arc::new(core::sync::atomic::AtomicU64::new(u64::MAX));
        let disk = MemoryDisk {
            bad_sector: bad.clone(),
            hold_back: hold_back.clone(),
            ..MemoryDisk::new()
        };
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        registry
            .extents(0, "fs", Some(ExtentOp::Format { force: false }))
            .unwrap();
        let (allocation, during) = hold_back.during(
            move || registry.extents(0, "fs", Some(ExtentOp::Allocate { sectors: 100 })),
            move || (registry.devices(), registry.revoke_all_of(7)),
        );
        let (devices, revoked) = during.expect("devices and revoke_all_of during the wipe");
        let zeroing = "the kernel (zeroing a new extent)";
        assert_eq!((devices[0].holder, revoked), (Some(zeroing), 0));
        let granted = allocation.join().unwrap().unwrap();
        assert_eq!((granted[0].start, granted[0].count), (0, 100));
        assert_eq!(registry.devices()[0].holder, None, "the mark is gone");
        // Busy while marked; a failed wipe clears the mark too.
        bad.store(150, Ordering::Relaxed);
        let (failing, during) = hold_back.during(
            move || registry.extents(0, "kv", Some(ExtentOp::Allocate { sectors: 100 })),
            move || {
                (
                    registry.extents(0, "fs", None),
                    registry.open(DeviceKind::Block, 0, (1, "fs")).err(),
                )
            },
        );
        let (listed, opened) = during.expect("extents and open during the wipe");
        assert_eq!(listed, Err(ApiError::DeviceBusy(zeroing)));
        assert_eq!(opened, Some(ApiError::DeviceBusy(zeroing)));
        assert!(matches!(
            failing.join().unwrap(),
            Err(ApiError::Device(DeviceError::Status { .. }))
        ));
        assert_eq!(registry.devices()[0].holder, None, "the mark is gone");
        assert_eq!(registry.extents(0, "fs", None), Ok(granted));
        let mut fs = lease_disk(registry, "fs");
        assert_eq!(
            read_sectors(fs.as_mut(), 0, 1).len(),
            512,
            "the disk is back"
        );
    }

    /// The extent table's reads and writes (a change's write, the first read by
    /// `extents` or by `open`) run without the slot's lock: they used to hold it for
    /// the disk's round trip (up to a driver's 10 s timeout), and every call that takes
    /// each slot's lock (`devices`, `revoke_all_of` when any app ends) and every other
    /// app's call on the disk spun that long. Meanwhile the disk is busy, shown held by
    /// the kernel; the mark goes when the I/O ends and the table it read or wrote is the
    /// one in force.
    #[test]
    fn other_calls_complete_while_the_extent_table_is_read_or_written() {
        use rexo_api::ExtentOp;
        let (hold_back, registry) = held_back_disk();
        registry
            .extents(0, "fs", Some(ExtentOp::Format { force: false }))
            .unwrap();
        registry
            .extents(0, "fs", Some(ExtentOp::Allocate { sectors: 64 }))
            .unwrap();
        let table_io = "the kernel (reading or writing the extent table)";
        let calls = move || {
            (
                registry.devices()[0].holder,
                registry.revoke_all_of(7),
                registry.extents(0, "kv", None).err(),
                registry.open(DeviceKind::Block, 0, (2, "kv")).err(),
            )
        };
        let busy = Some(ApiError::DeviceBusy(table_io));
        let share = ExtentOp::Share {
            start: 0,
            count: 8,
            reader: "kv".into(),
        };
        let (sharing, during) =
            hold_back.during(move || registry.extents(0, "fs", Some(share)), calls);
        assert_eq!(
            during.expect("calls during the table's write"),
            (Some(table_io), 0, busy, busy)
        );
        let shared = sharing.join().unwrap().unwrap();
        assert_eq!(shared.len(), 2, "the share is in force");
        let unread = || registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        unread();
        let (listing, during) = hold_back.during(move || registry.extents(0, "fs", None), calls);
        assert_eq!(
            during.expect("calls during the table's read by extents"),
            (Some(table_io), 0, busy, busy)
        );
        assert_eq!(listing.join().unwrap(), Ok(shared.clone()));
        unread();
        let (opening, during) = hold_back.during(
            move || registry.open(DeviceKind::Block, 0, (1, "fs")).map(drop),
            calls,
        );
        assert_eq!(
            during.expect("calls during the table's read by open"),
            (Some(table_io), 0, busy, busy)
        );
        assert_eq!(opening.join().unwrap(), Ok(()));
        assert_eq!(registry.devices()[0].holder, None, "the mark is gone");
        assert_eq!(registry.extents(0, "kv", None), Ok(shared));
    }

    /// A change to the table whose write stops part way (a crash, here a write the disk
    /// refuses) leaves the table before it in force, read again from the disk. The
    /// table used to be one copy rewritten in place: the torn copy failed its checksum,
    /// the disk was damaged, and only a format (dropping every extent) brought it back.
    #[test]
    fn a_torn_table_write_leaves_the_previous_table() {
        use core::sync::atomic::Ordering;
        use rexo_api::ExtentOp;
        // Requests of 4 sectors: a copy of the table (8 sectors) is written in two.
        let bad = alloc::sync::Arc::new(core::sync::atomic::AtomicU64::new(u64::MAX));
        let disk = MemoryDisk {
            max_sectors: 4,
            bad_sector: bad.clone(),
            ..MemoryDisk::new()
        };
        let (registry, _) = registry_with_table(disk);
        let one_sector = Some(ExtentOp::Allocate { sectors: 1 });
        // 40 apps' extents: 41 entries, so the table spans six sectors (generations
        // 3..=42).
        let mut before = Vec::new();
        for app in 0..40 {
            before = registry
                .extents(0, &format!("app{app}"), one_sector.clone())
                .unwrap();
        }
        // The next table's second request fails: its first four sectors are written.
        bad.store(MemoryDisk::SECTORS - 1, Ordering::Relaxed);
        assert_eq!(
            registry.extents(0, "late", one_sector.clone()).err(),
            Some(ApiError::Device(DeviceError::Status {
                what: "a simulated write",
                status: 1
            }))
        );
        bad.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(registry.extents(0, "fs", None), Ok(before.clone()));
        registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        assert_eq!(
            registry.extents(0, "fs", None),
            Ok(before),
            "after a reboot"
        );
        let after = registry.extents(0, "late", one_sector).unwrap();
        assert_eq!(after.len(), 42, "the disk takes changes again");
    }

    /// A disk whose size in bytes does not fit a u64 is protected by its table: the
    /// size check before reading the table used to overflow (a wrapped product made
    /// such a disk look too small for a table, so raw, open to every holder).
    #[test]
    fn the_table_of_a_disk_larger_than_a_u64_of_bytes_protects_it() {
        // `1 << 55` sectors of 512 bytes (2^64 bytes: more than a u64 counts), whose last
        // 4 MiB are in memory; the table in its copy, the other one zeros.
        const SECTORS: u64 = 1 << 55;
        let mut table = rexo_xn::Table::format(SECTORS, 512).unwrap();
        table.allocate("fs", 64).unwrap();
        let mut disk = MemoryDisk {
            base_lba: SECTORS - MemoryDisk::SECTORS,
            ..MemoryDisk::new()
        };
        let at = (table.copy_start(table.copy()) - disk.base_lba) as usize * 512;
        disk.data[at..at + rexo_xn::COPY_BYTES].copy_from_slice(&table.to_bytes());
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let extents = registry.extents(0, "fs", None).unwrap();
        assert_eq!(extents, table.entries());
        let mut other = lease_disk(registry, "kv");
        assert_eq!(
            other.submit_read(0, 0, 1).err(),
            Some(DeviceError::Denied {
                sector: 0,
                write: false
            }),
            "the table, not a raw disk"
        );
    }

    /// A memory disk of `sectors` sectors holding `table` at the end of the disk it was
    /// made for (as many sectors or fewer), and its locator.
    fn disk_holding(table: &rexo_xn::Table, sectors: u64) -> MemoryDisk {
        disk_of_sectors_holding(table, sectors, 512)
    }

    /// [`disk_holding`] with sectors of `size` bytes (`table` made for them).
    pub(crate) fn disk_of_sectors_holding(
        table: &rexo_xn::Table,
        sectors: u64,
        size: usize,
    ) -> MemoryDisk {
        let mut disk = MemoryDisk::new();
        disk.sector_size = size;
        disk.data.resize(sectors as usize * size, 0);
        let at = table.copy_start(table.copy()) as usize * size;
        disk.data[at..at + rexo_xn::COPY_BYTES].copy_from_slice(&table.to_bytes());
        let locator = rexo_xn::locator_area(size as u64).0 as usize * size;
        let bytes = table.locator();
        disk.data[locator..locator + bytes.len()].copy_from_slice(&bytes);
        disk
    }

    /// A disk that grew keeps its table at its old end, and its locator says where: the
    /// disk is not taken for a raw one (it used to be: its new end held no table, so
    /// every holder had all of it), and the sectors past the old end belong to nobody.
    /// One that shrank is damaged: no request passes.
    #[test]
    fn a_disk_that_grew_keeps_its_table_and_one_that_shrank_refuses_everyone() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let mut table = rexo_xn::Table::format(SECTORS, 512).unwrap();
        let granted = table.allocate("fs", 64).unwrap();
        let mut grown = disk_holding(&table, 2 * SECTORS);
        // Someone's data at the new end, where a grown table goes.
        let end = grown.data.len();
        grown.data[end - 100] = 0xEE;
        let registry = registry_with(Found::Block(Box::new(grown)), "memory");
        assert_eq!(
            registry.extents(0, "fs", None).unwrap(),
            core::slice::from_ref(&granted)
        );
        let mut other = lease_disk(registry, "kv");
        for sector in [0, SECTORS, 2 * SECTORS - 1] {
            assert_eq!(
                other.submit_read(0, sector, 1).err(),
                Some(DeviceError::Denied {
                    sector,
                    write: false
                }),
                "the table, not a raw disk: sector {sector}"
            );
        }
        drop(other);
        let mut fs = lease_disk(registry, "fs");
        assert!(
            fs.submit_read(0, granted.start, 1).is_ok(),
            "its own extent"
        );
        drop(fs);
        // A change is written where the table is, at the old end, and allocations stay
        // before it.
        let allocate =
            |sectors| registry.extents(0, "fs", Some(rexo_api::ExtentOp::Allocate { sectors }));
        allocate(8).unwrap();
        let reread = || {
            registry.slots[0].state.lock().protection = xn::Protection::Unknown;
            registry.extents(0, "fs", None)
        };
        assert_eq!(reread().unwrap().len(), 2);
        assert_eq!(
            allocate(SECTORS),
            Err(ApiError::Extents(rexo_api::ExtentError::NoSpace(SECTORS)))
        );
        // Grown, the table moves to the new end with the same extents, and the new
        // sectors can be granted; read again from the disk, it is found there.
        let before = reread().unwrap();
        let grow = |force| registry.extents(0, "fs", Some(rexo_api::ExtentOp::Grow { force }));
        assert_eq!(
            grow(false),
            Err(ApiError::Extents(rexo_api::ExtentError::InUse(
                "the sectors the table takes at the disk's end hold data"
            ))),
            "not over data unless forced"
        );
        assert_eq!(reread(), Ok(before.clone()), "nothing written");
        assert_eq!(grow(true), Ok(before.clone()));
        assert_eq!(reread(), Ok(before));
        let big = allocate(SECTORS).unwrap();
        let (locator, count) = rexo_xn::locator_area(512);
        assert_eq!(
            big.last().map(|e| (e.start, e.end())),
            Some((locator + count, locator + count + SECTORS)),
            "after the locator, over the old end"
        );
        assert_eq!(
            grow(false),
            Err(ApiError::Extents(rexo_api::ExtentError::NothingToGrow))
        );
        registry.slots[0].state.lock().protection = xn::Protection::Raw;
        let mut raw = lease_disk(registry, "fs");
        let named = rexo_xn::read_locator(&read_sectors(raw.as_mut(), locator, count));
        assert_eq!(
            named,
            Ok(Some(2 * SECTORS)),
            "the locator names the new size"
        );
        drop(raw);

        let mut shrunk = disk_holding(&table, SECTORS);
        shrunk.data.truncate(SECTORS as usize / 2 * 512);
        let registry = registry_with(Found::Block(Box::new(shrunk)), "memory");
        assert!(matches!(
            registry.extents(0, "fs", None),
            Err(ApiError::Extents(rexo_api::ExtentError::WrongDisk { .. }))
        ));
        assert!(
            registry.open(DeviceKind::Block, 0, (1, "fs")).is_err(),
            "nobody's"
        );
    }

    /// The locator, when it names another disk, says where the table is, whatever the
    /// disk's end holds. The end used to be read first: a disk grown by one copy's
    /// sectors found its old copy B where its new copy A goes and was refused as
    /// damaged, and a grown disk shrunk back to its old size found the table left at
    /// the old end, older than the one the locator names (an extent freed and granted
    /// to another app since was its old holder's again).
    #[test]
    fn the_locator_says_where_the_table_is_whatever_the_end_holds() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let mut table = rexo_xn::Table::format(SECTORS, 512).unwrap();
        table.allocate("fs", 64).unwrap();
        table.allocate("fs", 8).unwrap();
        assert_eq!(
            table.copy(),
            1,
            "in copy B, where a disk 8 sectors larger has A"
        );
        let grown = disk_holding(&table, SECTORS + 8);
        let registry = registry_with(Found::Block(Box::new(grown)), "memory");
        assert_eq!(
            registry.extents(0, "fs", None),
            Ok(table.entries().to_vec())
        );

        // Grown to twice the size and moved there, then an extent freed and granted to
        // another app; then the disk shrinks back to its old size.
        let mut moved = table.grown(2 * SECTORS).unwrap();
        moved.free("fs", 0).unwrap();
        moved.allocate("kv", 64).unwrap();
        let mut disk = disk_holding(&moved, 2 * SECTORS);
        let old = table.copy_start(table.copy()) as usize * 512;
        disk.data[old..old + rexo_xn::COPY_BYTES].copy_from_slice(&table.to_bytes());
        disk.data.truncate(SECTORS as usize * 512);
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        assert_eq!(
            registry.extents(0, "fs", None),
            Err(ApiError::Extents(rexo_api::ExtentError::WrongDisk {
                table: 2 * SECTORS,
                disk: SECTORS
            }))
        );
        assert!(
            registry.open(DeviceKind::Block, 0, (1, "fs")).is_err(),
            "not the old table's"
        );
    }

    /// A format zeroes both copies' sectors before the locator: an older sound table at
    /// the end (a disk shrunk back to an earlier size) is neither taken after a crash
    /// before the new table is written nor wins over it by generation after.
    #[test]
    fn a_format_leaves_nothing_of_an_older_table_at_the_end() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let mut older = rexo_xn::Table::format(SECTORS, 512).unwrap();
        for _ in 0..4 {
            older.allocate("fs", 64).unwrap();
        }
        // The locator names a larger disk: the disk shrank back, its end holds `older`.
        let mut disk = disk_holding(&older, SECTORS);
        let locator = rexo_xn::locator_area(512).0 as usize * 512;
        let larger = older.grown(2 * SECTORS).unwrap().locator();
        disk.data[locator..locator + rexo_xn::COPY_BYTES].copy_from_slice(&larger);
        let fresh = rexo_xn::Table::format(SECTORS, 512).unwrap();
        let crash = disk.bad_sector.clone();
        crash.store(
            fresh.copy_start(fresh.copy()),
            core::sync::atomic::Ordering::Relaxed,
        );
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let format = Some(rexo_api::ExtentOp::Format { force: false });
        // A write over the table's sectors fails, as a crash there would leave it (the
        // format's first one now, its last one before the zeroing): damaged either way.
        assert!(registry.extents(0, "fs", format.clone()).is_err());
        assert!(
            matches!(
                registry.extents(0, "fs", None),
                Err(ApiError::Extents(
                    rexo_api::ExtentError::WrongDisk { .. } | rexo_api::ExtentError::Corrupt(_)
                ))
            ),
            "damaged, not the older table"
        );
        crash.store(u64::MAX, core::sync::atomic::Ordering::Relaxed);
        assert_eq!(registry.extents(0, "fs", format), Ok(Vec::new()));
        registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        assert_eq!(
            registry.extents(0, "fs", None),
            Ok(Vec::new()),
            "read again"
        );
    }

    /// A disk without a locator (damaged by a table of an earlier format at its end)
    /// gets its locator before its end is zeroed: a crash in between leaves it damaged,
    /// never raw (open whole to its holder).
    #[test]
    fn a_format_without_a_locator_writes_it_before_it_zeroes_the_end() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let mut disk = MemoryDisk::new();
        let (start, _) = rexo_xn::table_area(SECTORS, 512);
        disk.data[start as usize * 512..][..8].copy_from_slice(b"RexoXN02");
        let crash = disk.bad_sector.clone();
        crash.store(
            rexo_xn::locator_area(512).0,
            core::sync::atomic::Ordering::Relaxed,
        );
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let format = Some(rexo_api::ExtentOp::Format { force: false });
        assert!(matches!(
            registry.extents(0, "fs", None),
            Err(ApiError::Extents(rexo_api::ExtentError::Corrupt(_)))
        ));
        // The locator's write fails, as a crash there would leave it.
        assert!(registry.extents(0, "fs", format).is_err());
        assert!(
            matches!(
                registry.extents(0, "fs", None),
                Err(ApiError::Extents(rexo_api::ExtentError::Corrupt(_)))
            ),
            "still damaged, not raw"
        );
    }

    /// A grow zeroes the new end's copies before it writes there: a table left at that
    /// end from an earlier life of the disk at that size, of a higher generation, would
    /// otherwise be read after the grow.
    #[test]
    fn a_grow_leaves_nothing_of_a_table_from_an_earlier_life_at_the_new_end() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let mut table = rexo_xn::Table::format(SECTORS, 512).unwrap();
        table.allocate("fs", 64).unwrap();
        let mut earlier = rexo_xn::Table::format(2 * SECTORS, 512).unwrap();
        for _ in 0..9 {
            earlier.allocate("old", 64).unwrap();
        }
        let grown = table.grown(2 * SECTORS).unwrap();
        assert_ne!(earlier.copy(), grown.copy(), "the grow writes beside it");
        assert!(earlier.generation() > grown.generation());
        let mut disk = disk_holding(&table, 2 * SECTORS);
        let at = earlier.copy_start(earlier.copy()) as usize * 512;
        disk.data[at..at + rexo_xn::COPY_BYTES].copy_from_slice(&earlier.to_bytes());
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let grow = Some(rexo_api::ExtentOp::Grow { force: false });
        assert_eq!(
            registry.extents(0, "fs", grow),
            Ok(table.entries().to_vec())
        );
        registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        assert_eq!(
            registry.extents(0, "fs", None),
            Ok(table.entries().to_vec()),
            "the grown table, not the earlier life's"
        );
    }

    /// A disk that shrank under 2 MiB (too small for a table) still holds its locator,
    /// which names the larger disk it was: it is damaged like any disk that shrank. It
    /// used to be taken for a raw disk without a look at the locator, so every app's
    /// extents were open whole to its holder.
    #[test]
    fn a_disk_that_shrank_under_the_smallest_for_a_table_refuses_everyone() {
        let mut table = rexo_xn::Table::format(MemoryDisk::SECTORS, 512).unwrap();
        table.allocate("fs", 64).unwrap();
        let mut shrunk = disk_holding(&table, MemoryDisk::SECTORS);
        shrunk.data.truncate(3000 * 512);
        let registry = registry_with(Found::Block(Box::new(shrunk)), "memory");
        assert_eq!(
            registry.extents(0, "fs", None),
            Err(ApiError::Extents(rexo_api::ExtentError::WrongDisk {
                table: MemoryDisk::SECTORS,
                disk: 3000
            }))
        );
        assert!(
            registry.open(DeviceKind::Block, 0, (1, "kv")).is_err(),
            "nobody's"
        );
        // Cut inside the locator's sectors (2040..2048), its first one holds it all.
        let mut cut = disk_holding(&table, MemoryDisk::SECTORS);
        cut.data.truncate(2041 * 512);
        let registry = registry_with(Found::Block(Box::new(cut)), "memory");
        assert_eq!(
            registry.extents(0, "fs", None),
            Err(ApiError::Extents(rexo_api::ExtentError::WrongDisk {
                table: MemoryDisk::SECTORS,
                disk: 2041
            }))
        );
    }

    /// A disk cut under the locator's first sector holds nothing of its protection: it
    /// is raw, nothing left on it can say otherwise (a limit docs/storage.md states).
    #[test]
    fn a_disk_cut_below_the_locator_is_raw() {
        let mut table = rexo_xn::Table::format(MemoryDisk::SECTORS, 512).unwrap();
        table.allocate("fs", 64).unwrap();
        let mut tiny = disk_holding(&table, MemoryDisk::SECTORS);
        tiny.data.truncate(2040 * 512);
        let registry = registry_with(Found::Block(Box::new(tiny)), "memory");
        assert_eq!(
            registry.extents(0, "fs", None),
            Err(ApiError::Extents(rexo_api::ExtentError::NoTable))
        );
    }

    /// A table for a disk of `MemoryDisk::SECTORS` sectors granting "fs" 64 of them.
    fn table_granting_fs() -> rexo_xn::Table {
        let mut table = rexo_xn::Table::format(MemoryDisk::SECTORS, 512).unwrap();
        table.allocate("fs", 64).unwrap();
        table
    }

    /// The bytes of sectors `start..start + count` of disk 0 of `registry`, read through
    /// a lease of the disk taken as raw (its protection is read again afterwards).
    pub(crate) fn raw_sectors(registry: &'static Registry, start: u64, count: u64) -> Vec<u8> {
        registry.slots[0].state.lock().protection = xn::Protection::Raw;
        let mut raw = lease_disk(registry, "fs");
        let bytes = read_sectors(raw.as_mut(), start, count);
        drop(raw);
        registry.slots[0].state.lock().protection = xn::Protection::Unknown;
        bytes
    }

    /// Whether app "kv" is refused sector 0 of disk 0 of `registry` (a table protects
    /// the disk: it is not raw).
    fn kv_refused(registry: &'static Registry) -> bool {
        let mut kv = lease_disk(registry, "kv");
        kv.submit_read(0, 0, 1).is_err()
    }

    /// A sound table at the disk's end beside a locator that is damaged (its checksum
    /// failing) or missing is the table, and reading it rewrites the locator naming the
    /// disk; a failed rewrite keeps the table in force and the next use tries again. The
    /// locator used to be left as it was (only a format or a grow wrote it): grown, the
    /// disk then read as damaged.
    #[test]
    fn a_damaged_or_missing_locator_beside_a_sound_table_is_rewritten() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let table = table_granting_fs();
        let (locator, count) = rexo_xn::locator_area(512);
        let at = locator as usize * 512;
        for (failing, damage) in [(false, Some(9)), (false, None), (true, Some(9))] {
            let mut disk = disk_holding(&table, SECTORS);
            match damage {
                Some(byte) => disk.data[at + byte] ^= 1,
                None => disk.data[at..at + rexo_xn::COPY_BYTES].fill(0),
            }
            let crash = disk.bad_sector.clone();
            let bad = if failing { locator } else { u64::MAX };
            crash.store(bad, core::sync::atomic::Ordering::Relaxed);
            let registry = registry_with(Found::Block(Box::new(disk)), "memory");
            assert_eq!(
                registry.extents(0, "fs", None),
                Ok(table.entries().to_vec())
            );
            assert!(kv_refused(registry), "the table, not a raw disk");
            crash.store(u64::MAX, core::sync::atomic::Ordering::Relaxed);
            // A failed rewrite: the next use tries again.
            assert_eq!(
                registry.extents(0, "fs", None),
                Ok(table.entries().to_vec())
            );
            assert_eq!(
                raw_sectors(registry, locator, count),
                table.locator(),
                "rewritten ({damage:?}, failing first: {failing})"
            );
        }
    }

    /// A sound table at the disk's end beside locator's sectors holding something else
    /// (a boot loader's code in the gap after an MBR) is the table, and those sectors
    /// are left as they are, as a format without force leaves them. They used to be
    /// written over at the first open.
    #[test]
    fn foreign_bytes_where_the_locator_goes_beside_a_sound_table_are_left_as_they_are() {
        let table = table_granting_fs();
        let (locator, count) = rexo_xn::locator_area(512);
        let at = locator as usize * 512;
        let mut disk = disk_holding(&table, MemoryDisk::SECTORS);
        let foreign: Vec<u8> = (0..rexo_xn::COPY_BYTES).map(|at| at as u8 | 1).collect();
        disk.data[at..at + rexo_xn::COPY_BYTES].copy_from_slice(&foreign);
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        assert_eq!(
            registry.extents(0, "fs", None),
            Ok(table.entries().to_vec())
        );
        assert!(kv_refused(registry), "the table, not a raw disk");
        assert_eq!(raw_sectors(registry, locator, count), foreign);
    }

    /// Either copy of the locator finds the table of a disk that grew, and the other is
    /// rewritten. The locator used to be one copy: a changed byte of its magic made the
    /// disk raw, every app's extents open whole to its holder.
    #[test]
    fn either_copy_of_the_locator_finds_the_table_of_a_disk_that_grew() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let table = table_granting_fs();
        let (locator, count) = rexo_xn::locator_area(512);
        for copy in [0, 2048] {
            let mut disk = disk_holding(&table, 2 * SECTORS);
            disk.data[locator as usize * 512 + copy] ^= 0x20;
            let registry = registry_with(Found::Block(Box::new(disk)), "memory");
            assert_eq!(
                registry.extents(0, "fs", None),
                Ok(table.entries().to_vec())
            );
            assert!(kv_refused(registry), "the table, not a raw disk");
            assert_eq!(raw_sectors(registry, locator, count), table.locator());
        }
    }

    /// On a disk of 4 KiB sectors that grew, either sector of the locator damaged whole
    /// leaves the other's copy to find the table, and the locator is rewritten. Both
    /// copies used to share one sector there: with it damaged the disk read as raw,
    /// every app's extents open whole to its holder.
    #[test]
    fn one_bad_sector_of_a_4_kib_sector_disks_locator_leaves_the_other_copy() {
        let mut table = rexo_xn::Table::format(1024, 4096).unwrap();
        table.allocate("fs", 64).unwrap();
        let (locator, count) = rexo_xn::locator_area(4096);
        for bad in locator..locator + count {
            let mut disk = disk_of_sectors_holding(&table, 2048, 4096);
            disk.data[bad as usize * 4096..][..4096].fill(0xA5);
            let registry = registry_with(Found::Block(Box::new(disk)), "memory");
            assert_eq!(
                registry.extents(0, "fs", None),
                Ok(table.entries().to_vec()),
                "sector {bad} damaged"
            );
            assert!(kv_refused(registry), "the table, not a raw disk");
            assert_eq!(raw_sectors(registry, locator, count), table.locator());
        }
    }

    /// A crash that tore a grow's write of the locator between its two sectors leaves
    /// the copies disagreeing: the new end holds the grown table (written before the
    /// locator), which wins, and the other copy is rewritten naming it.
    #[test]
    fn a_grow_whose_locator_write_was_torn_is_done() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let table = table_granting_fs();
        let grown = table.grown(2 * SECTORS).unwrap();
        let (locator, count) = rexo_xn::locator_area(512);
        let at = locator as usize * 512;
        for (first, second) in [(&table, &grown), (&grown, &table)] {
            let mut disk = disk_holding(&grown, 2 * SECTORS);
            let old = table.copy_start(table.copy()) as usize * 512;
            disk.data[old..old + rexo_xn::COPY_BYTES].copy_from_slice(&table.to_bytes());
            disk.data[at..at + 2048].copy_from_slice(&first.locator()[..2048]);
            disk.data[at + 2048..at + 4096].copy_from_slice(&second.locator()[2048..]);
            let registry = registry_with(Found::Block(Box::new(disk)), "memory");
            let allocate = Some(rexo_api::ExtentOp::Allocate { sectors: SECTORS });
            assert_eq!(
                registry.extents(0, "fs", allocate).unwrap().len(),
                2,
                "past the old end"
            );
            assert_eq!(raw_sectors(registry, locator, count), grown.locator());
        }
    }

    /// A format of a damaged disk whose locator's copies name a larger disk and a
    /// smaller one with a sound table zeroes that table too: a crash that tears the new
    /// locator's write, leaving the copy naming the smaller disk, finds no table there
    /// (the disk stays damaged, not an older table in force).
    #[test]
    fn a_format_torn_in_its_locator_leaves_no_older_table_to_find() {
        const SECTORS: u64 = MemoryDisk::SECTORS;
        let mut older = rexo_xn::Table::format(SECTORS, 512).unwrap();
        older.allocate("old", 64).unwrap();
        let larger = rexo_xn::Table::format(4 * SECTORS, 512).unwrap();
        let mut disk = disk_holding(&older, 2 * SECTORS);
        disk.max_sectors = 4;
        let (locator, _) = rexo_xn::locator_area(512);
        let at = locator as usize * 512;
        disk.data[at..at + 2048].copy_from_slice(&larger.locator()[..2048]);
        let crash = disk.bad_sector.clone();
        crash.store(locator + 4, core::sync::atomic::Ordering::Relaxed);
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let damaged = Err(ApiError::Extents(rexo_api::ExtentError::WrongDisk {
            table: 4 * SECTORS,
            disk: 2 * SECTORS,
        }));
        assert_eq!(registry.extents(0, "fs", None), damaged);
        let format = Some(rexo_api::ExtentOp::Format { force: false });
        assert!(registry.extents(0, "fs", format.clone()).is_err(), "torn");
        assert!(
            matches!(
                registry.extents(0, "fs", None),
                Err(ApiError::Extents(rexo_api::ExtentError::Corrupt(_)))
            ),
            "damaged, not the older table"
        );
        crash.store(u64::MAX, core::sync::atomic::Ordering::Relaxed);
        assert_eq!(registry.extents(0, "fs", format), Ok(Vec::new()));
    }

    /// A damaged disk too small for a table (it shrank) cannot be formatted: giving up
    /// its protection zeroes every sector of it, the locator's last (a crash part way
    /// leaves it damaged), and it is raw. Refused on a disk with a sound table, and on a
    /// damaged one large enough for a table (a format mends it): the review found that
    /// giving it up opened every former extent of every app to whoever opened it raw.
    #[test]
    fn the_protection_of_a_damaged_disk_too_small_for_a_table_can_be_given_up() {
        use rexo_api::{ExtentError, ExtentOp};
        const SECTORS: u64 = MemoryDisk::SECTORS;
        const SHRUNK: u64 = 3000;
        let table = table_granting_fs();
        let mut shrunk = disk_holding(&table, SECTORS);
        shrunk.data.truncate(SHRUNK as usize * 512);
        shrunk.max_sectors = 4;
        // Apps' data on either side of the locator.
        shrunk.data[100 * 512] = 0xEE;
        shrunk.data[2900 * 512] = 0xEE;
        let crash = shrunk.bad_sector.clone();
        crash.store(2500, core::sync::atomic::Ordering::Relaxed);
        let registry = registry_with(Found::Block(Box::new(shrunk)), "memory");
        assert_eq!(
            registry.extents(0, "fs", Some(ExtentOp::Format { force: true })),
            Err(ApiError::Extents(ExtentError::TooSmall))
        );
        let damaged = registry.extents(0, "fs", None);
        assert!(damaged.is_err(), "{damaged:?}");
        assert!(
            registry
                .extents(0, "fs", Some(ExtentOp::Unprotect))
                .is_err(),
            "torn"
        );
        assert_eq!(registry.extents(0, "fs", None), damaged, "still damaged");
        crash.store(u64::MAX, core::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            registry.extents(0, "fs", Some(ExtentOp::Unprotect)),
            Ok(Vec::new())
        );
        assert_zeroed(&raw_sectors(registry, 0, SHRUNK), SHRUNK as usize, "raw");
        assert_eq!(
            registry.extents(0, "fs", None),
            Err(ApiError::Extents(ExtentError::NoTable)),
            "raw, read again"
        );
        assert!(!kv_refused(registry));
        assert_eq!(
            registry.extents(0, "fs", Some(ExtentOp::Unprotect)),
            Err(ApiError::Extents(ExtentError::NoTable))
        );
        let (sound, _) = registry_with_table(MemoryDisk::new());
        assert!(matches!(
            sound.extents(0, "fs", Some(ExtentOp::Unprotect)),
            Err(ApiError::Extents(ExtentError::Corrupt(_)))
        ));

        // A damaged disk large enough for a table (one copy of its locator names a
        // larger disk) is left as it is.
        let larger = table.grown(2 * SECTORS).unwrap();
        let mut disk = disk_holding(&table, SECTORS);
        let (locator, _) = rexo_xn::locator_area(512);
        let at = locator as usize * 512;
        disk.data[at..at + 2048].copy_from_slice(&larger.locator()[..2048]);
        let before = disk.data.clone();
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        assert_eq!(
            registry.extents(0, "fs", Some(ExtentOp::Unprotect)),
            Err(ApiError::Extents(ExtentError::FormatInstead))
        );
        assert_eq!(raw_sectors(registry, 0, SECTORS), before, "nothing written");
    }

    /// A registry over `disk` with its extent table made and 64 sectors granted to "fs";
    /// returns the registry and the grant.
    fn registry_with_table(disk: MemoryDisk) -> (&'static Registry, Vec<rexo_api::DiskExtent>) {
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        registry
            .extents(0, "fs", Some(rexo_api::ExtentOp::Format { force: false }))
            .unwrap();
        let granted = registry
            .extents(0, "fs", Some(rexo_api::ExtentOp::Allocate { sectors: 64 }))
            .unwrap();
        (registry, granted)
    }

    /// A registry with one device, `found`, driven by `driver`, at PCI address 00:03.0,
    /// leaked so leases may borrow it.
    pub(crate) fn registry_with(found: Found, driver: &'static str) -> &'static Registry {
        registry_binding_with(
            found,
            driver,
            crate::interrupts::tests::TableBinder::leaked(),
        )
    }

    /// [`registry_with`], its interrupt bindings minted by `binder`.
    fn registry_binding_with(
        found: Found,
        driver: &'static str,
        binder: Routes,
    ) -> &'static Registry {
        let address = Address::new(0, 0, 3, 0).unwrap();
        Box::leak(Box::new(Registry {
            slots: alloc::vec![Slot::new(address, driver, found)],
            bindings: Vec::new(),
            binder,
        }))
    }

    /// Interface 0 of `registry` leased to `holder` (owner id, app name).
    pub(crate) fn lease_net(registry: &'static Registry, holder: Holder) -> Box<dyn NetDevice> {
        registry
            .open(DeviceKind::Net, 0, holder)
            .and_then(OpenDevice::into_net)
            .unwrap()
    }

    fn registry() -> &'static Registry {
        registry_with(Found::Net(Box::new(Counting(0, Wake::Never))), "test-net")
    }

    /// A keyboard whose answer to [`KeyboardDevice::attached`] the test changes.
    struct Plugged(alloc::sync::Arc<spin::Mutex<&'static str>>);

    impl rexo_api::KeyboardDevice for Plugged {
        fn read_byte(&mut self) -> Result<Option<u8>, DeviceError> {
            Ok(None)
        }

        fn attached(&self) -> Result<String, DeviceError> {
            Ok(String::from(*self.0.lock()))
        }
    }

    #[test]
    fn a_keyboard_is_listed_with_what_is_attached_when_listed() {
        let now = alloc::sync::Arc::new(spin::Mutex::new("USB controller: no keyboard attached"));
        let keyboard = Found::Keyboard(Box::new(Plugged(now.clone())));
        let registry = registry_with(keyboard, "xhci");
        let about = || registry.devices()[0].about.clone();
        assert_eq!(about(), "USB controller: no keyboard attached");
        *now.lock() = "USB keyboard on port 1";
        assert_eq!(about(), "USB keyboard on port 1");
        let lease = registry
            .open(DeviceKind::Keyboard, 0, (1, "monitor"))
            .and_then(OpenDevice::into_keyboard)
            .unwrap();
        assert_eq!(lease.attached(), Ok(String::from("USB keyboard on port 1")));
        *now.lock() = "USB controller: no keyboard attached";
        assert_eq!(about(), "USB controller: no keyboard attached", "held");
    }

    #[test]
    fn one_holder_at_a_time_and_dropping_frees() {
        let registry = registry();
        let mut lease = lease_net(registry, (1, "first"));
        assert_eq!(lease.receive(0, 1, &mut |_| {}), Ok(0));
        assert_eq!(
            registry
                .open(DeviceKind::Net, 0, (2, "second"))
                .and_then(OpenDevice::into_net)
                .err(),
            Some(ApiError::DeviceBusy("first"))
        );
        assert_eq!(registry.devices()[0].holder, Some("first"));
        assert!(
            registry.devices()[0]
                .about
                .contains("mac 02:00:00:00:00:01")
        );
        drop(lease);
        assert_eq!(registry.devices()[0].holder, None);
        let mut again = lease_net(registry, (2, "second"));
        assert_eq!(
            again.transmit_pending(0),
            Ok(1),
            "the device kept its state"
        );
        assert_eq!(
            registry
                .open(DeviceKind::Net, 1, (2, "second"))
                .and_then(OpenDevice::into_net)
                .err(),
            Some(ApiError::NoSuchDevice)
        );
        assert_eq!(
            registry
                .open(DeviceKind::Block, 0, (2, "second"))
                .and_then(OpenDevice::into_block)
                .err(),
            Some(ApiError::NoSuchDevice)
        );
    }

    #[test]
    fn revoked_handles_go_dead_and_do_not_free_the_next_holder() {
        let registry = registry();
        let mut old = lease_net(registry, (1, "first"));
        assert_eq!(registry.revoke_all_of(2), 0);
        assert_eq!(registry.revoke_all_of(1), 1);
        assert_eq!(old.receive(0, 1, &mut |_| {}), Err(DeviceError::Revoked));
        let mut new = lease_net(registry, (3, "third"));
        drop(old);
        assert_eq!(
            registry.devices()[0].holder,
            Some("third"),
            "a dead lease frees nothing"
        );
        assert_eq!(new.receive(0, 1, &mut |_| {}), Ok(0));
    }

    /// A network interface of as many queues as counters, each counting its receive
    /// calls; it splits into one interface per queue over the same counter.
    struct Queues(Vec<alloc::sync::Arc<spin::Mutex<usize>>>);

    impl NetDevice for Queues {
        fn info(&self) -> NetInfo {
            NetInfo {
                queues: self.0.len(),
                ..Counting(0, Wake::Never).info()
            }
        }
        fn receive(
            &mut self,
            queue: usize,
            _: usize,
            _: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            let mut count = self
                .0
                .get(queue)
                .ok_or(DeviceError::NoSuchQueue(queue))?
                .lock();
            *count += 1;
            Ok(*count)
        }
        fn send_segments(
            &mut self,
            _: usize,
            _: &[usize],
            _: bool,
            _: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            Ok(())
        }
        fn transmit_pending(&mut self, _: usize) -> Result<usize, DeviceError> {
            Ok(0)
        }
        fn wake_on_receive(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Err(DeviceError::Unsupported("MSI-X"))
        }
        fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
            Ok(self
                .0
                .iter()
                .map(|count| Box::new(Queues(alloc::vec![count.clone()])) as Box<dyn NetDevice>)
                .collect())
        }
    }

    /// A registry with one two-queue interface that splits.
    fn two_queues() -> &'static Registry {
        let counts = (0..2).map(|_| Default::default()).collect();
        registry_with(Found::Net(Box::new(Queues(counts))), "test-net")
    }

    #[test]
    fn a_lease_splits_into_one_handle_per_queue() {
        let registry = two_queues();
        let mut lease = lease_net(registry, (1, "kv"));
        let mut handles = lease.split_queues().unwrap();
        assert_eq!(handles.len(), 2);
        assert_eq!(handles[1].info().queues, 1);
        assert_eq!(handles[1].receive(0, 1, &mut |_| {}), Ok(1));
        assert_eq!(
            handles[1].receive(1, 1, &mut |_| {}),
            Err(DeviceError::NoSuchQueue(1))
        );
        // Handle 1 is the device's queue 1, and the lease still drives it.
        assert_eq!(lease.receive(1, 1, &mut |_| {}), Ok(2));
        assert_eq!(handles[0].receive(0, 1, &mut |_| {}), Ok(1));
        // The wake-up is the device's, reached through the lease.
        assert_eq!(
            handles[1].wake_on_receive(0, Some(1)),
            Err(DeviceError::Unsupported("MSI-X"))
        );
        assert_eq!(
            handles[1].wake_on_receive(1, Some(1)),
            Err(DeviceError::NoSuchQueue(1))
        );
    }

    #[test]
    fn revocation_cuts_every_queue_handle() {
        let registry = two_queues();
        let mut lease = lease_net(registry, (1, "kv"));
        let mut handles = lease.split_queues().unwrap();
        assert_eq!(registry.revoke_all_of(1), 1);
        for handle in &mut handles {
            assert_eq!(handle.receive(0, 1, &mut |_| {}), Err(DeviceError::Revoked));
            assert_eq!(handle.transmit_pending(0), Err(DeviceError::Revoked));
            assert_eq!(handle.wake_on_receive(0, None), Err(DeviceError::Revoked));
            assert_eq!(
                handle.info().queues,
                1,
                "a cut handle still says what it was"
            );
        }
        assert_eq!(lease.split_queues().err(), Some(DeviceError::Revoked));
        // The next holder's handles work; the old ones stay cut.
        let mut next = lease_net(registry, (2, "httpd"));
        let mut fresh = next.split_queues().unwrap();
        assert_eq!(fresh[0].receive(0, 1, &mut |_| {}), Ok(1));
        assert_eq!(
            handles[0].receive(0, 1, &mut |_| {}),
            Err(DeviceError::Revoked)
        );
        // Dropping the lease ends it, and that cuts its handles too.
        drop(next);
        assert_eq!(
            fresh[1].receive(0, 1, &mut |_| {}),
            Err(DeviceError::Revoked)
        );
        assert_eq!(registry.devices()[0].holder, None);
    }

    #[test]
    fn queue_handles_work_from_their_own_threads() {
        const CALLS: usize = 20_000;
        let registry = two_queues();
        let mut lease = lease_net(registry, (1, "kv"));
        let threads: Vec<_> = lease
            .split_queues()
            .unwrap()
            .into_iter()
            .map(|mut handle| {
                std::thread::spawn(move || {
                    (0..CALLS)
                        .map(|_| handle.receive(0, 1, &mut |_| {}).unwrap())
                        .last()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), Some(CALLS));
        }
        assert_eq!(lease.receive(0, 1, &mut |_| {}), Ok(CALLS + 1));
        assert_eq!(lease.receive(1, 1, &mut |_| {}), Ok(CALLS + 1));
    }
}
