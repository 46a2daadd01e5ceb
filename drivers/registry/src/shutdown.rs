//! Telling the disks the machine is powering off or rebooting ([`Leaving`]): the kernel
//! walks them before its ACPI sleep request or its reset, and each driver's
//! [`BlockDevice::shut_down`](rexo_api::BlockDevice::shut_down) makes its disk write
//! its cache out and tells it of the power loss (NVMe's shutdown notification, ATA's
//! STANDBY IMMEDIATE, ...). A disk that cannot be reached in time, or whose shutdown
//! fails, is logged with a warning naming it and passed by: the power-off or reboot
//! goes ahead.
//!
//! Before a disk is told, the ordered writes its holder queued in the block layer are
//! sent ([`OrderedWrites::send_all`](crate::ordered::OrderedWrites::send_all): the
//! requests they wait for polled to their end, then each flushed, written, flushed),
//! within [`SEND_WAIT_NS`](crate::ordered::SEND_WAIT_NS) (15 s); each that could not
//! be written is counted in a warning naming the disk, never dropped unsaid.
//!
//! A disk is reached through its slot's lock, which a call in progress holds. A call on
//! another core gets [`REACH_WAIT_NS`] to end (a disk out of its slot, its abandoned
//! requests draining outside the lock, as long to come back); a call on the calling core
//! itself (power-off asked from inside the app's own closure of a device call, which
//! holds that disk) never ends while the walk waits, so that disk is passed by at once.

use core::fmt;

use rexo_api::{DeviceError, DeviceKind};
use rexo_devio::Found;
use rexo_pci::Address;
use spin::MutexGuard;

use crate::{Registry, Slot, SlotState};

/// How long the walk waits for a disk another core is using (a call on it in progress,
/// or its abandoned requests draining outside its slot) before it goes on without
/// telling it: 1 s.
const REACH_WAIT_NS: u64 = 1_000_000_000;

/// What the machine does once the disks are told: what their log lines name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaving {
    /// The ACPI sleep request (S5): the power goes.
    PowerOff,
    /// A reset (the ACPI reset register, the keyboard controller, a triple fault), which
    /// may reset the disks or cut their power with the machine's.
    Reboot,
}

impl fmt::Display for Leaving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PowerOff => "power-off",
            Self::Reboot => "reboot",
        })
    }
}

/// What one walk of the disks did ([`Registry::shut_down_disks`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutDown {
    /// Disks told: their shutdown went through.
    pub told: usize,
    /// Disks not told: their shutdown failed or timed out, or they could not be reached
    /// (each logged with a warning naming it).
    pub not_told: usize,
}

/// Why a disk was not told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NotTold {
    /// The calling core is inside a call on it, which holds it.
    InCallHere,
    /// Another core held it past [`REACH_WAIT_NS`].
    HeldElsewhere,
    /// Its shutdown failed or timed out.
    Device(DeviceError),
}

impl fmt::Display for NotTold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InCallHere => {
                f.write_str("the power-off was asked from inside a call on it on this core")
            }
            Self::HeldElsewhere => f.write_str(
                "another core held it (a call on it, or its abandoned requests draining) for \
                 over 1 s",
            ),
            Self::Device(error) => error.fmt(f),
        }
    }
}

impl Registry {
    /// Tells every disk the machine is `leaving` (powering off or rebooting:
    /// [`BlockDevice::shut_down`](rexo_api::BlockDevice::shut_down)), one after the
    /// other, in binding order; `now_ns` is the clock. Each is logged: told of the
    /// power-off (or reboot), or not told with why (a warning). The ordered writes its
    /// holder queued are sent first, those sent logged and each not written counted in
    /// a warning (module documentation). A disk another core holds is waited for up to
    /// [`REACH_WAIT_NS`], one the calling core holds in a call is passed by at once
    /// (module documentation). Every disk whose driver was asked refuses every later
    /// request ([`rexo_api::device::DISK_SHUT_DOWN`]), told or not. Never runs the
    /// app's code; a driver's shutdown is bounded by its own timeouts.
    pub fn shut_down_disks(&self, leaving: Leaving, now_ns: impl Fn() -> u64) -> ShutDown {
        let core = self.binder.core_index();
        let mut walk = ShutDown::default();
        let disks = self
            .slots
            .iter()
            .filter(|slot| slot.kind == DeviceKind::Block);
        for (index, slot) in disks.enumerate() {
            let name = DiskName {
                address: slot.address,
                driver: slot.driver,
                index,
            };
            let told = reach(slot, core, &now_ns)
                .and_then(|mut state| send_and_tell(&mut state, &name, leaving, &now_ns));
            match told {
                Ok(()) => {
                    log::info!("{name}: told of the {leaving}");
                    walk.told += 1;
                }
                Err(why) => {
                    log::warn!("{name}: not told of the {leaving}: {why}");
                    walk.not_told += 1;
                }
            }
        }
        walk
    }
}

/// A disk as the walk's log lines name it: `00:04.0 nvme disk 0`.
struct DiskName {
    /// Its function.
    address: Address,
    /// Its driver.
    driver: &'static str,
    /// Its number among the disks.
    index: usize,
}

impl fmt::Display for DiskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} disk {}", self.address, self.driver, self.index)
    }
}

/// Sends the ordered writes queued on the disk in `state`
/// ([`OrderedWrites::send_all`](crate::ordered::OrderedWrites::send_all), logged as
/// `name`: those sent, and those not written with why, a warning), then tells the disk
/// the machine is `leaving`.
fn send_and_tell(
    state: &mut SlotState,
    name: &DiskName,
    leaving: Leaving,
    now_ns: &dyn Fn() -> u64,
) -> Result<(), NotTold> {
    let Found::Block(disk) = &mut state.device else {
        unreachable!("a slot of kind Block holds a disk")
    };
    let sent = state.ordered.send_all(disk.as_mut(), now_ns);
    if sent.written > 0 {
        let written = sent.written;
        log::info!("{name}: {written} ordered write(s) sent before the {leaving}");
    }
    if let Some(why) = sent.why {
        let lost = sent.not_written;
        log::warn!("{name}: {lost} ordered write(s) not written before the {leaving}: {why}");
    }
    disk.shut_down().map_err(NotTold::Device)
}

/// `slot`'s lock with its disk in it, for `core`: waited for while another core holds
/// the lock or has the disk out of the slot, up to [`REACH_WAIT_NS`] by `now_ns`;
/// refused at once while `core` is inside a call holding the lock or one of the slot's
/// gates.
fn reach<'a>(
    slot: &'a Slot,
    core: usize,
    now_ns: &dyn Fn() -> u64,
) -> Result<MutexGuard<'a, SlotState>, NotTold> {
    let start = now_ns();
    loop {
        // Only the core holding the lock marks it in a call: a core that finds its own
        // mark finds the lock taken, and looks again here.
        if slot.in_call.by(core) {
            return Err(NotTold::InCallHere);
        }
        if let Some(state) = slot.state.try_lock() {
            if state.queues.iter().any(|gate| gate.in_call.by(core)) {
                return Err(NotTold::InCallHere);
            }
            if !state.away {
                return Ok(state);
            }
        }
        if now_ns().saturating_sub(start) > REACH_WAIT_NS {
            return Err(NotTold::HeldElsewhere);
        }
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{MemoryDisk, held_back_disk, lease_disk, registry_with};
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use rexo_api::device::DISK_SHUT_DOWN;
    use rexo_api::{BlockDevice, BlockInfo, Completion, Tag};
    use std::sync::Mutex;

    /// A clock that moves `step_ns` on at each reading, from 0.
    fn clock(step_ns: u64) -> impl Fn() -> u64 + Send + 'static {
        let now = AtomicU64::new(0);
        move || now.fetch_add(step_ns, Ordering::Relaxed)
    }

    /// What `registry`'s walk says with a clock that moves 1 ns a reading.
    fn walk(registry: &Registry) -> (usize, usize) {
        let walk = registry.shut_down_disks(Leaving::PowerOff, clock(1));
        (walk.told, walk.not_told)
    }

    #[test]
    fn every_disk_is_told_and_refuses_every_later_request() {
        let registry = registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory");
        let mut fs = lease_disk(registry, "fs");
        fs.submit_write(0, 0, 1, &mut |b| b.fill(7)).unwrap();
        assert_eq!(walk(registry), (1, 0));
        // The holder's lease still stands, but the disk refuses it everything.
        assert_eq!(fs.poll(0, &mut |_, _| {}), Err(DISK_SHUT_DOWN));
        assert_eq!(fs.submit_read(0, 0, 1), Err(DISK_SHUT_DOWN));
        assert_eq!(fs.submit_flush(0), Err(DISK_SHUT_DOWN));
        // Only the kernel shuts a disk down.
        assert!(matches!(fs.shut_down(), Err(DeviceError::Unsupported(_))));
    }

    /// What reached a [`Recording`] disk, in order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Event {
        /// A write at this sector, its first byte this.
        Write(u64, u8),
        /// A flush.
        Flush,
        /// The shutdown.
        ShutDown,
    }

    /// A disk in memory that records the writes, flushes and shutdown it is sent.
    struct Recording {
        /// The disk.
        disk: rexo_api::testing::MemoryDisk,
        /// What it was sent.
        events: Arc<Mutex<Vec<Event>>>,
    }

    impl Recording {
        /// A zeroed disk of 4 MiB taking 4 requests at once, and what it will be sent.
        fn new() -> (Self, Arc<Mutex<Vec<Event>>>) {
            let mut disk = rexo_api::testing::MemoryDisk::new(alloc::vec![0; 8192 * 512]);
            disk.depth = 4;
            let events = Arc::new(Mutex::new(Vec::new()));
            let recording = Self {
                disk,
                events: events.clone(),
            };
            (recording, events)
        }

        /// Notes `event`.
        fn record(&self, event: Event) {
            self.events.lock().unwrap().push(event);
        }
    }

    impl BlockDevice for Recording {
        fn info(&self) -> BlockInfo {
            self.disk.info()
        }
        fn submit_read(
            &mut self,
            queue: usize,
            lba: u64,
            sectors: u32,
        ) -> Result<Tag, DeviceError> {
            self.disk.submit_read(queue, lba, sectors)
        }
        fn submit_write_checked(
            &mut self,
            queue: usize,
            lba: u64,
            sectors: u32,
            fill: &mut dyn FnMut(&mut [u8]) -> bool,
        ) -> Result<Tag, DeviceError> {
            let mut first = 0;
            let tag = self
                .disk
                .submit_write_checked(queue, lba, sectors, &mut |buffer| {
                    let kept = fill(buffer);
                    first = buffer[0];
                    kept
                })?;
            self.record(Event::Write(lba, first));
            Ok(tag)
        }
        fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError> {
            let tag = self.disk.submit_flush(queue)?;
            self.record(Event::Flush);
            Ok(tag)
        }
        fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
            self.disk.poll(queue, done)
        }
        fn wake_on_completion(
            &mut self,
            queue: usize,
            core: Option<usize>,
        ) -> Result<(), DeviceError> {
            self.disk.wake_on_completion(queue, core)
        }
        fn abandon_requests(&mut self) {
            self.disk.abandon_requests();
        }
        fn shut_down(&mut self) -> Result<(), DeviceError> {
            self.record(Event::ShutDown);
            self.disk.shut_down()
        }
    }

    /// An ordered write the block layer still holds when the machine powers off (it
    /// waits for a write the app never polled) is sent, flushed on both sides, before
    /// the disk is told; the disk takes no more, into the layer's queue either.
    #[test]
    fn ordered_writes_still_queued_are_sent_before_the_disk_is_told() {
        let (disk, events) = Recording::new();
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let mut fs = lease_disk(registry, "fs");
        fs.submit_write(0, 2, 1, &mut |b| b.fill(5)).unwrap();
        fs.submit_write_ordered(0, 3, 1, &mut |b| b.fill(6))
            .unwrap();
        assert_eq!(walk(registry), (1, 0));
        assert_eq!(
            *events.lock().unwrap(),
            [
                Event::Write(2, 5),
                Event::Flush,
                Event::Write(3, 6),
                Event::Flush,
                Event::ShutDown,
            ]
        );
        assert_eq!(
            fs.submit_write_ordered(0, 4, 1, &mut |b| b.fill(7)).err(),
            Some(DISK_SHUT_DOWN)
        );
    }

    #[test]
    fn a_disk_whose_shutdown_fails_is_passed_by_and_the_next_is_told() {
        let failing = MemoryDisk::new();
        failing.failing_flushes.store(true, Ordering::Relaxed);
        let address = Address::new(0, 0, 3, 0).unwrap();
        let registry: &'static Registry = Box::leak(Box::new(Registry {
            slots: alloc::vec![
                Slot::new(address, "memory", Found::Block(Box::new(failing))),
                Slot::new(address, "memory", Found::Block(Box::new(MemoryDisk::new()))),
            ],
            bindings: alloc::vec::Vec::new(),
            binder: crate::interrupts::tests::TableBinder::leaked(),
        }));
        assert_eq!(walk(registry), (1, 1));
    }

    #[test]
    fn a_disk_another_core_holds_is_waited_for_then_told() {
        let (hold_back, registry) = held_back_disk();
        let mut fs = lease_disk(registry, "fs");
        let let_go = hold_back.clone();
        let (writing, walked) = hold_back.during(
            // Another core, inside a write on the disk: the slot's lock is held.
            move || fs.submit_write(0, 0, 1, &mut |b| b.fill(7)).map(drop),
            // The walk waits: its third look at the clock lets the write end.
            move || walk_letting_go_at_the_third_look(registry, &let_go),
        );
        assert_eq!(
            walked.expect("the walk ends"),
            ShutDown {
                told: 1,
                not_told: 0
            }
        );
        assert_eq!(writing.join().unwrap(), Ok(()), "the write went first");
    }

    /// The power-off walk of `registry`, with a clock (always 0) whose third reading
    /// lets `hold_back` go.
    fn walk_letting_go_at_the_third_look(
        registry: &Registry,
        hold_back: &crate::tests::HoldBack,
    ) -> ShutDown {
        let readings = AtomicUsize::new(0);
        registry.shut_down_disks(Leaving::PowerOff, || {
            if readings.fetch_add(1, Ordering::Relaxed) == 2 {
                hold_back.let_go();
            }
            0
        })
    }

    #[test]
    fn a_disk_another_core_holds_past_the_wait_is_passed_by() {
        let (hold_back, registry) = held_back_disk();
        let mut fs = lease_disk(registry, "fs");
        let (writing, walked) = hold_back.during(
            move || {
                let written = fs.submit_write(0, 0, 1, &mut |b| b.fill(7)).map(drop);
                (fs, written)
            },
            // 100 ms a reading: past the wait after a dozen looks.
            move || registry.shut_down_disks(Leaving::PowerOff, clock(100_000_000)),
        );
        assert_eq!(
            walked.expect("the walk ends"),
            ShutDown {
                told: 0,
                not_told: 1
            }
        );
        let (mut fs, written) = writing.join().unwrap();
        assert_eq!(written, Ok(()));
        assert_eq!(
            fs.poll(0, &mut |_, _| {}),
            Ok(1),
            "the disk not told works on"
        );
    }

    #[test]
    fn a_disk_draining_its_abandoned_requests_is_waited_for_then_told() {
        let (hold_back, registry) = held_back_disk();
        let mut fs = lease_disk(registry, "fs");
        fs.submit_read(0, 0, 1).unwrap();
        let let_go = hold_back.clone();
        // Dropping the lease drains its read outside the slot's lock, the disk out of it
        // (its stand-in in the slot, which is not the disk to tell).
        let (dropping, walked) = hold_back.during(
            move || drop(fs),
            move || walk_letting_go_at_the_third_look(registry, &let_go),
        );
        assert_eq!(
            walked.expect("the walk ends"),
            ShutDown {
                told: 1,
                not_told: 0
            }
        );
        dropping.join().unwrap();
    }

    #[test]
    fn a_power_off_asked_inside_a_call_on_the_disk_passes_it_by_at_once() {
        let registry = registry_with(Found::Block(Box::new(MemoryDisk::new())), "memory");
        let mut fs = lease_disk(registry, "fs");
        let readings = AtomicU64::new(0);
        let mut inside = None;
        fs.submit_write(0, 0, 1, &mut |b| {
            b.fill(7);
            // 100 ms a reading: a wait for the call would end after a dozen.
            inside = Some(registry.shut_down_disks(Leaving::PowerOff, || {
                readings.fetch_add(1, Ordering::Relaxed) * 100_000_000
            }));
        })
        .unwrap();
        assert_eq!(
            inside,
            Some(ShutDown {
                told: 0,
                not_told: 1
            })
        );
        assert_eq!(readings.into_inner(), 1, "no wait for the call it is in");
        assert_eq!(walk(registry), (1, 0), "told from outside the call");
    }
}
