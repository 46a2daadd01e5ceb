//! Telling the disks the machine is powering off or rebooting ([`Leaving`]): the kernel
//! walks them before its ACPI sleep request or its reset, and each driver's
//! [`BlockDevice::shut_down`](rexo_api::BlockDevice::shut_down) makes its disk write
//! its cache out and tells it of the power loss as its kind asks (NVMe's shutdown
//! notification; ATA's STANDBY IMMEDIATE at a power-off only, ...). A disk that cannot be reached in time, or whose shutdown
//! fails, is logged with a warning naming it and passed by: the power-off or reboot
//! goes ahead.
//!
//! The walk first reaches every disk and holds it until that disk is told (then lets it
//! go), so that no app submits anything more meanwhile. Then, before any disk is told,
//! it polls the disks it holds, round after round, until none has a request of its
//! holder in flight or an ordered write queued in the block layer
//! ([`OrderedWrites::poll_before_shutdown`]: each ordered write sent once the requests
//! it waits for ended, flushed, written, flushed), within [`DRAIN_WAIT_NS`]; each
//! ordered write that could not be written is counted in a warning naming the disk. A
//! disk the walk could not reach is neither polled nor told: its ordered writes are
//! not sent, but counted (read without its lock) in a warning naming the disk, beside
//! the one saying it was not told and why.
//! Draining every disk before telling any matters where disks share a channel: an IDE
//! drive takes no command while the other drive of its channel has one in flight, which
//! only a poll of that drive ends, so a drive told while its partner's command waited
//! for a poll nobody made would wait for the channel and not be told.
//!
//! A disk is reached through its slot's lock, which a call in progress holds. A call on
//! another core gets [`REACH_WAIT_NS`] to end (a disk out of its slot, its abandoned
//! requests draining outside the lock, as long to come back). A disk still held then is
//! looked for once more, as long, when its turn to be told comes, and drained alone: the
//! disks before it are told and let go by then, so a call on it whose closure waited for
//! one of them (submitting to it, refused once it is told) has ended. A call on the
//! calling core itself (power-off asked from inside the app's own closure of a device
//! call, which holds that disk) never ends while the walk waits, so that disk is passed
//! by at once.

use alloc::vec::Vec;
use core::fmt;

use rexo_api::{DeviceError, DeviceKind, Leaving};
use rexo_devio::Found;
use rexo_pci::Address;
use spin::MutexGuard;

use crate::ordered::{OrderedWrites, Sent};
use crate::{Registry, Slot, SlotState};

/// How long the walk waits for a disk another core is using (a call on it in progress,
/// or its abandoned requests draining outside its slot) before it goes on without
/// telling it: 1 s.
const REACH_WAIT_NS: u64 = 1_000_000_000;

/// How long the walk polls the disks it holds for their holders' requests in flight and
/// ordered writes before it tells them all the same: 15 s, past the drivers' 10 s
/// read and write timeouts, so that a read or write a device holds is ended by its
/// driver (and what depends on it fails as such) before the walk gives up on the rest.
/// An ATA flush may run 60 s: one still running then is drained by the disk's shutdown.
const DRAIN_WAIT_NS: u64 = 15_000_000_000;

/// Why the ordered writes a disk still holds when [`DRAIN_WAIT_NS`] ran out are not
/// written.
const DRAIN_TIMED_OUT: DeviceError = DeviceError::Timeout {
    what: "the requests in flight and ordered writes queued before the shutdown",
    ms: DRAIN_WAIT_NS / 1_000_000,
};

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
            Self::InCallHere => f.write_str(
                "the power-off or reboot was asked from inside a call on it on this core",
            ),
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
    /// [`BlockDevice::shut_down`](rexo_api::BlockDevice::shut_down)), one after the other,
    /// in binding order; `now_ns` is the clock. Each is logged: told of the power-off (or
    /// reboot), or not told with why (a warning). Every disk is reached first and held
    /// until it is told, and before any is told, the requests in flight and the ordered
    /// writes queued on them are seen to their end, the ordered writes sent logged and each
    /// not written counted in a warning (module documentation). A disk another core holds
    /// is waited for up to 1 s (`REACH_WAIT_NS`), and once more as long when its turn to be
    /// told comes, one the calling core holds in a call is passed by at once (module
    /// documentation). Every disk whose driver was asked refuses every later request
    /// ([`rexo_api::device::DISK_SHUT_DOWN`]), told or not. Never runs the app's code; a
    /// driver's shutdown is bounded by its own timeouts.
    pub fn shut_down_disks(&self, leaving: Leaving, now_ns: impl Fn() -> u64) -> ShutDown {
        let core = self.binder.core_index();
        let mut disks: Vec<Disk<'_>> = self
            .slots
            .iter()
            .filter(|slot| slot.kind == DeviceKind::Block)
            .enumerate()
            .map(|(index, slot)| Disk {
                slot,
                name: DiskName {
                    address: slot.address,
                    driver: slot.driver,
                    index,
                },
                reached: reach(slot, core, &now_ns),
                sent: Sent::default(),
                stopped: None,
            })
            .collect();
        drain(&mut disks, &now_ns);
        let mut walk = ShutDown::default();
        for mut disk in disks {
            if matches!(disk.reached, Err(NotTold::HeldElsewhere)) {
                // The disks before it are told and released by now: a call on it that
                // waited for one of them (the app's closure submitting to it) has ended
                // with DISK_SHUT_DOWN, so it is looked for once more and drained alone.
                disk.reached = reach(disk.slot, core, &now_ns);
                drain(core::slice::from_mut(&mut disk), &now_ns);
            }
            let name = &disk.name;
            if let Err(why) = &disk.reached {
                lost_unreached(disk.slot, name, leaving, why);
            }
            let (sent, stopped) = (disk.sent, disk.stopped);
            let told = disk
                .reached
                .and_then(|mut state| tell(&mut state, name, leaving, (sent, stopped)));
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

/// One disk of the walk.
struct Disk<'a> {
    /// Its slot, looked for once more when another core held it past the first wait.
    slot: &'a Slot,
    /// How its log lines name it.
    name: DiskName,
    /// Its slot's lock, held until it is told, or why it could not be reached.
    reached: Result<MutexGuard<'a, SlotState>, NotTold>,
    /// What became of its ordered writes so far.
    sent: Sent,
    /// Why the walk stopped polling it with work left (a poll failed, or
    /// [`DRAIN_WAIT_NS`] ran out).
    stopped: Option<DeviceError>,
}

/// The disk and the ordered writes in a slot of kind Block.
fn parts(state: &mut SlotState) -> (&mut dyn rexo_api::BlockDevice, &mut OrderedWrites) {
    match &mut state.device {
        Found::Block(disk) => (disk.as_mut(), &mut state.ordered),
        _ => unreachable!("a slot of kind Block holds a disk"),
    }
}

/// Polls the disks reached, round after round, until none has a request of its holder
/// in flight or an ordered write queued, or [`DRAIN_WAIT_NS`] passed by `now_ns`; a disk
/// whose poll fails is left out from then on. A disk with work left is marked stopped.
fn drain(disks: &mut [Disk<'_>], now_ns: &dyn Fn() -> u64) {
    // Read once work is found: a walk with nothing to drain does not look at the clock.
    let mut start = None;
    loop {
        let mut busy = false;
        for disk in disks.iter_mut() {
            let (Ok(state), None) = (&mut disk.reached, &disk.stopped) else {
                continue;
            };
            let (device, ordered) = parts(state);
            if !ordered.busy() {
                continue;
            }
            match ordered.poll_before_shutdown(device, &mut disk.sent) {
                Ok(()) => busy |= ordered.busy(),
                Err(error) => disk.stopped = Some(error),
            }
        }
        if !busy {
            return;
        }
        let start = *start.get_or_insert_with(now_ns);
        if now_ns().saturating_sub(start) > DRAIN_WAIT_NS {
            for disk in disks.iter_mut() {
                if let Ok(state) = &mut disk.reached
                    && parts(state).1.busy()
                {
                    disk.stopped.get_or_insert(DRAIN_TIMED_OUT);
                }
            }
            return;
        }
        core::hint::spin_loop();
    }
}

/// Tells the disk in `state` the machine is `leaving`, after logging as `name` what
/// became of its ordered writes: `sent` by the drain, and those it left queued (not
/// written: the drain `stopped` with work left), a warning with why.
fn tell(
    state: &mut SlotState,
    name: &DiskName,
    leaving: Leaving,
    (mut sent, stopped): (Sent, Option<DeviceError>),
) -> Result<(), NotTold> {
    let (disk, ordered) = parts(state);
    let left = ordered.shut_down();
    if left > 0 {
        sent.not_written += left;
        sent.why.get_or_insert(stopped.unwrap_or(DRAIN_TIMED_OUT));
    }
    if sent.written > 0 {
        let written = sent.written;
        log::info!("{name}: {written} ordered write(s) sent before the {leaving}");
    }
    if let Some(why) = sent.why {
        let lost = sent.not_written;
        log::warn!("{name}: {lost} ordered write(s) not written before the {leaving}: {why}");
    }
    disk.shut_down(leaving).map_err(NotTold::Device)
}

/// Logs as `name` the ordered writes queued on the disk in `slot`, which the walk could
/// not reach (`why`): neither sent nor written, their count read without the lock.
fn lost_unreached(slot: &Slot, name: &DiskName, leaving: Leaving, why: &NotTold) {
    let lost = slot
        .ordered_queued
        .load(core::sync::atomic::Ordering::Relaxed);
    if lost > 0 {
        log::warn!(
            "{name}: {lost} ordered write(s) not written before the {leaving}: the disk could \
             not be reached ({why})"
        );
    }
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
    use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
        assert!(matches!(
            fs.shut_down(Leaving::PowerOff),
            Err(DeviceError::Unsupported(_))
        ));
    }

    /// What reached a [`Recording`] disk, in order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Event {
        /// A write at this sector, its first byte this.
        Write(u64, u8),
        /// A flush.
        Flush,
        /// The shutdown, for a power-off or a reboot.
        ShutDown(Leaving),
    }

    /// A disk in memory that records the writes, flushes and shutdown it is sent.
    struct Recording {
        /// The disk.
        disk: rexo_api::testing::MemoryDisk,
        /// What it was sent.
        events: Arc<Mutex<Vec<Event>>>,
        /// While on, no request completes: every poll finds none done.
        silent: Arc<AtomicBool>,
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
                silent: Arc::default(),
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
            if self.silent.load(Ordering::Relaxed) {
                return Ok(0);
            }
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
        fn shut_down(&mut self, leaving: Leaving) -> Result<(), DeviceError> {
            self.record(Event::ShutDown(leaving));
            self.disk.shut_down(leaving)
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
                Event::ShutDown(Leaving::PowerOff),
            ]
        );
        assert_eq!(
            fs.submit_write_ordered(0, 4, 1, &mut |b| b.fill(7)).err(),
            Some(DISK_SHUT_DOWN)
        );
    }

    /// A reboot's walk tells each disk it is a reboot, not a power-off (an ATA disk is
    /// then flushed and not stopped).
    #[test]
    fn a_reboots_walk_tells_the_disks_of_the_reboot() {
        let (disk, events) = Recording::new();
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let walked = registry.shut_down_disks(Leaving::Reboot, clock(1));
        assert_eq!((walked.told, walked.not_told), (1, 0));
        assert_eq!(*events.lock().unwrap(), [Event::ShutDown(Leaving::Reboot)]);
    }

    /// A disk that never completes the write an ordered write waits for holds the walk
    /// up for the drain's wait only: the ordered write is not written (a warning says
    /// so) and the disk is told.
    #[test]
    fn a_disk_that_completes_nothing_holds_the_walk_up_only_for_the_drains_wait() {
        let (disk, events) = Recording::new();
        let silent = disk.silent.clone();
        let registry = registry_with(Found::Block(Box::new(disk)), "memory");
        let mut fs = lease_disk(registry, "fs");
        fs.submit_write(0, 2, 1, &mut |b| b.fill(5)).unwrap();
        fs.submit_write_ordered(0, 3, 1, &mut |b| b.fill(6))
            .unwrap();
        silent.store(true, Ordering::Relaxed);
        // 1 s a reading: past the wait after 16.
        let walked = registry.shut_down_disks(Leaving::PowerOff, clock(1_000_000_000));
        let told = ShutDown {
            told: 1,
            not_told: 0,
        };
        assert_eq!(walked, told);
        assert_eq!(
            *events.lock().unwrap(),
            [Event::Write(2, 5), Event::ShutDown(Leaving::PowerOff)]
        );
    }

    /// One of two drives sharing a channel, as an IDE channel's master and slave do: the
    /// channel takes one command at a time, and only a poll of the drive whose command it
    /// holds ends that command. A shutdown needs the channel for its flush: while the
    /// other drive's command holds it, the drive is not told (ATA's driver waits 60 s
    /// for the channel first; this one gives up at once).
    struct ChannelDrive {
        /// 0 or 1.
        number: usize,
        /// The drive whose command the channel holds, if any: shared by both.
        channel: Arc<Mutex<Option<usize>>>,
        /// The command in flight: its tag and sectors.
        command: Option<(Tag, u32)>,
        /// Shut down: everything after is refused.
        shut_down: bool,
    }

    impl ChannelDrive {
        /// Both drives of a channel.
        fn pair() -> [Self; 2] {
            let channel = Arc::new(Mutex::new(None));
            [0, 1].map(|number| Self {
                number,
                channel: channel.clone(),
                command: None,
                shut_down: false,
            })
        }

        /// Takes the channel for a command of `sectors` (`QueueFull` while the other
        /// drive's holds it).
        fn issue(&mut self, sectors: u32) -> Result<Tag, DeviceError> {
            if self.shut_down {
                return Err(DISK_SHUT_DOWN);
            }
            let mut channel = self.channel.lock().unwrap();
            if channel.is_some() {
                return Err(DeviceError::QueueFull);
            }
            *channel = Some(self.number);
            self.command = Some((1, sectors));
            Ok(1)
        }
    }

    impl BlockDevice for ChannelDrive {
        fn info(&self) -> BlockInfo {
            BlockInfo {
                sectors: 8192,
                sector_size: 512,
                max_sectors: 8,
                queues: 1,
                depth: 1,
                model: alloc::string::String::new(),
            }
        }
        fn submit_read(&mut self, _: usize, _: u64, sectors: u32) -> Result<Tag, DeviceError> {
            self.issue(sectors)
        }
        fn submit_write_checked(
            &mut self,
            _: usize,
            _: u64,
            sectors: u32,
            fill: &mut dyn FnMut(&mut [u8]) -> bool,
        ) -> Result<Tag, DeviceError> {
            if !fill(&mut alloc::vec![0; sectors as usize * 512]) {
                return Err(DeviceError::Withdrawn);
            }
            self.issue(0)
        }
        fn submit_flush(&mut self, _: usize) -> Result<Tag, DeviceError> {
            self.issue(0)
        }
        fn poll(&mut self, _: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
            if self.shut_down {
                return Err(DISK_SHUT_DOWN);
            }
            let Some((tag, sectors)) = self.command.take() else {
                return Ok(0);
            };
            *self.channel.lock().unwrap() = None;
            done(tag, Ok(&alloc::vec![0; sectors as usize * 512]));
            Ok(1)
        }
        fn wake_on_completion(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Err(DeviceError::Unsupported("wake-ups on a simulated drive"))
        }
        fn abandon_requests(&mut self) {
            let _ = self.poll(0, &mut |_, _| {});
        }
        /// Its own command drained, then the channel's flush; refused everything after.
        fn shut_down(&mut self, _: Leaving) -> Result<(), DeviceError> {
            self.abandon_requests();
            let flushed = self.issue(0).map_err(|_| DeviceError::Timeout {
                what: "the channel, which the other drive's command holds",
                ms: 10_000,
            });
            self.abandon_requests();
            self.shut_down = true;
            flushed.map(drop)
        }
    }

    /// The second drive of a channel has a command its holder never polled when the
    /// machine powers off: every disk's requests are seen to their end before any is
    /// told, so the first drive finds the channel free and both are told.
    #[test]
    fn a_drive_whose_partner_holds_the_channel_with_an_unpolled_command_is_told() {
        let address = Address::new(0, 0, 1, 1).unwrap();
        let [master, slave] = ChannelDrive::pair();
        let registry: &'static Registry = Box::leak(Box::new(Registry {
            slots: alloc::vec![
                Slot::new(address, "ata", Found::Block(Box::new(master))),
                Slot::new(address, "ata", Found::Block(Box::new(slave))),
            ],
            bindings: Vec::new(),
            binder: crate::interrupts::tests::TableBinder::leaked(),
        }));
        let mut fs = registry
            .open(DeviceKind::Block, 1, (1, "fs"))
            .and_then(rexo_api::OpenDevice::into_block)
            .unwrap();
        fs.submit_read(0, 0, 1).unwrap();
        assert_eq!(walk(registry), (2, 0));
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

    /// A disk another core holds past the wait keeps its ordered writes queued: not
    /// sent, and counted in a warning naming the disk.
    #[test]
    fn the_ordered_writes_of_a_disk_passed_by_are_counted_as_lost() {
        crate::tests::record_logs();
        let (hold_back, registry) = held_back_disk();
        let mut fs = lease_disk(registry, "fs");
        // Two ordered writes waiting behind a write the app has not polled yet.
        fs.submit_write(0, 0, 1, &mut |b| b.fill(7)).unwrap();
        for lba in [1, 2] {
            fs.submit_write_ordered(0, lba, 1, &mut |b| b.fill(8))
                .unwrap();
        }
        let (writing, walked) = hold_back.during(
            move || {
                let written = fs.submit_write(0, 3, 1, &mut |b| b.fill(9)).map(drop);
                (fs, written)
            },
            move || registry.shut_down_disks(Leaving::Reboot, clock(100_000_000)),
        );
        let walked = walked.expect("the walk ends");
        assert_eq!((walked.told, walked.not_told), (0, 1));
        let lost = "00:03.0 memory disk 0: 2 ordered write(s) not written before the reboot: \
                    the disk could not be reached (another core held it";
        assert!(
            crate::tests::logged(lost),
            "{:?}",
            crate::tests::LOGGED.lock()
        );
        drop(writing.join().unwrap());
    }

    /// An app on another core is inside a call on disk 1 whose closure submits to disk
    /// 0, which the walk holds while it waits for disk 1: disk 1 is passed by at first,
    /// then looked for once more after disk 0 is told and let go (the closure's call on
    /// it refused, so the call on disk 1 ends), and told.
    #[test]
    fn a_disk_whose_call_waits_for_a_disk_told_before_it_is_looked_for_again_and_told() {
        let address = Address::new(0, 0, 3, 0).unwrap();
        let registry: &'static Registry = Box::leak(Box::new(Registry {
            slots: [0, 1]
                .map(|_| Slot::new(address, "memory", Found::Block(Box::new(MemoryDisk::new()))))
                .into(),
            bindings: Vec::new(),
            binder: crate::interrupts::tests::TableBinder::leaked(),
        }));
        let open = |index| {
            registry
                .open(DeviceKind::Block, index, (1, "fs"))
                .and_then(rexo_api::OpenDevice::into_block)
                .unwrap()
        };
        let (mut first, mut second) = (open(0), open(1));
        // The app is inside its call on disk 1; the walk holds disk 0.
        let (inside, holding) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (inside_app, holding_app) = (inside.clone(), holding.clone());
        let app = std::thread::spawn(move || {
            let mut nested = None;
            let written = second.submit_write(0, 0, 1, &mut |b| {
                b.fill(7);
                inside_app.store(true, Ordering::Release);
                while !holding_app.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                nested = Some(first.submit_write(0, 0, 1, &mut |b| b.fill(8)).map(drop));
            });
            (written.map(drop), nested)
        });
        while !inside.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let (send, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let readings = AtomicU64::new(0);
            // 100 ms a reading, up to 1.5 s: the first wait for disk 1 gives up after a
            // dozen looks, a second one waits as long as the app's call lasts.
            let walked = registry.shut_down_disks(Leaving::PowerOff, || {
                let reading = readings.fetch_add(1, Ordering::Relaxed);
                // The second reading starts the wait for disk 1, disk 0 held.
                if reading == 1 {
                    holding.store(true, Ordering::Release);
                }
                std::thread::yield_now();
                reading.min(15) * 100_000_000
            });
            let _ = send.send(walked);
        });
        let walked = answer.recv_timeout(std::time::Duration::from_secs(5));
        let told = ShutDown {
            told: 2,
            not_told: 0,
        };
        assert_eq!(walked, Ok(told));
        assert_eq!(
            app.join().unwrap(),
            (Ok(()), Some(Err(DISK_SHUT_DOWN))),
            "the call on disk 1 went first, its closure's on disk 0 refused"
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
