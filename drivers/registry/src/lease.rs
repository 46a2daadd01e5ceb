//! An app's handle on a device: every call checks that the lease is still the slot's
//! current one, then forwards to the driver under the slot's lock (but a disk's
//! `abandon_requests`, whose drain runs outside it: [`away::outside_the_lock`]). A
//! network lease splits into one handle per queue pair ([`QueueLease`]), each behind its
//! pair's gate instead of the slot's lock, so that cores drive their pairs at the same
//! time. A call made from inside the app's closure of a call holding that lock (or, for
//! the whole device, one of its gates) on the same core is refused, and a lease dropped
//! there ends as that call returns ([`crate::reentry`]). Every call, and the drop,
//! takes the lock in a kernel section ([`calling_app`]).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, Ordering};

use rexo_api::{
    BlockDevice, BlockInfo, Completion, DeviceError, KeyboardDevice, Leaving, NetDevice, NetInfo,
    OpenDevice, Tag,
};
use rexo_devio::Found;
use spin::MutexGuard;

use crate::appcode::{AppCode, calling_app};
use crate::lent::ClearedForHolder;
use crate::reentry::{self, InCall};
use crate::{Binder, Holder, Slot, SlotState, away};

/// The slot's state if `generation` is still current; [`DeviceError::Reentered`] when
/// `core` is inside a call holding the slot's lock or one of its gates.
fn live(
    slot: &Slot,
    generation: u64,
    core: usize,
) -> Result<spin::MutexGuard<'_, SlotState>, DeviceError> {
    let state = reentry::lock_whole(slot, core)?;
    if state.generation == generation && state.holder.is_some() {
        Ok(state)
    } else {
        Err(DeviceError::Revoked)
    }
}

/// The name a disk's slot shows as its holder while the requests its holder abandoned
/// as it went drain (while a holder drains its own, the slot shows the holder).
const DRAINING: &str = "the kernel (draining abandoned requests)";

/// Ends the lease on the device in `slot` (`state`, its lock): the slot is free again,
/// the interrupt sources bound to the holder are disarmed and their capabilities go back
/// to the kernel, and a disk's requests in flight belong to no one. Those drain (which
/// may last until the device answers or its driver resets it) outside the slot's lock,
/// the slot marked held by [`DRAINING`] meanwhile ([`away::outside_the_lock`]), so calls
/// that take every slot's lock do not wait for an unresponsive disk. Returns the lock.
pub(crate) fn end<'a>(
    slot: &'a Slot,
    mut state: MutexGuard<'a, SlotState>,
    binder: &dyn Binder,
) -> MutexGuard<'a, SlotState> {
    let holder = state.holder.take().map_or("no app", |(_, name)| name);
    slot.members.publish(&state);
    give_up_ordered(slot, &mut state, holder, "its lease ended");
    state.generation += 1;
    for gate in state.queues.drain(..) {
        // Waits for a call in progress on that queue, then cuts the handle.
        *gate.handle.lock() = None;
    }
    for queue in state.interrupts.end(binder) {
        // Ended either way; a device that cannot disarm masks nothing more than it did.
        let _ = crate::interrupts::driver_arm(&mut state.device, queue, None);
    }
    away::outside_the_lock(slot, state, DRAINING, |disk| disk.abandon_requests()).0
}

/// Gives up the ordered writes `holder` has queued on the disk in `slot` (`state`, its
/// lock), unwritten, as they were never sent: a warning counts them, naming the disk,
/// the holder and `why`.
fn give_up_ordered(slot: &Slot, state: &mut SlotState, holder: &str, why: &str) {
    let given_up = state.ordered.clear();
    if given_up > 0 {
        log::warn!(
            "{} {}: {given_up} ordered write(s) of {holder} given up unwritten: {why}",
            slot.address,
            slot.driver
        );
    }
}

/// Arms or disarms `queue`'s wake-up on `slot` if the lease `(binder, owner,
/// generation)` is live, binding its interrupt source to the holder
/// ([`crate::interrupts`]).
fn wake(
    slot: &Slot,
    lease: (&'static dyn Binder, u16, u64),
    queue: usize,
    core: Option<usize>,
) -> Result<(), DeviceError> {
    calling_app(lease.0, |_| {
        let mut state = live(slot, lease.2, lease.0.core_index())?;
        let state = &mut *state;
        crate::interrupts::arm(
            (&mut state.interrupts, &mut state.device),
            lease,
            (queue, core),
        )
    })
}

/// What the device was when the lease began (`info` needs no lock).
enum Snapshot {
    /// A network interface.
    Net(NetInfo),
    /// A disk.
    Block(BlockInfo),
    /// A keyboard.
    Keyboard,
}

/// An app's handle on a device of any kind; [`open`] hands it out as the
/// [`OpenDevice`] of the slot's kind.
struct Lease {
    /// The device's slot.
    slot: &'static Slot,
    /// The generation this lease was opened at.
    generation: u64,
    /// The app holding it (the disk's extent table is checked for its name).
    holder: Holder,
    /// The kernel's half of interrupt bindings.
    binder: &'static dyn Binder,
    /// The device as it was when opened.
    snapshot: Snapshot,
    /// A network interface's transmit memory cleared for the holder ([`crate::lent`]).
    cleared: RefCell<ClearedForHolder>,
}

/// The lease of `holder` on `slot` at `generation`, as the handle of its kind.
pub(crate) fn open(
    slot: &'static Slot,
    generation: u64,
    holder: Holder,
    binder: &'static dyn Binder,
) -> OpenDevice {
    let snapshot = match &slot.state.lock().device {
        Found::Net(nic) => Snapshot::Net(nic.info()),
        Found::Block(disk) => Snapshot::Block(disk.info()),
        Found::Keyboard(_) => Snapshot::Keyboard,
    };
    let lease = Lease {
        slot,
        generation,
        holder,
        binder,
        snapshot,
        cleared: RefCell::default(),
    };
    match lease.snapshot {
        Snapshot::Net(_) => OpenDevice::Net(Box::new(lease)),
        Snapshot::Block(_) => OpenDevice::Block(Box::new(lease)),
        Snapshot::Keyboard => OpenDevice::Keyboard(Box::new(lease)),
    }
}

impl Lease {
    /// A disk's snapshot (the lease is handed out as a disk only for a disk slot).
    fn block_info(&self) -> &BlockInfo {
        match &self.snapshot {
            Snapshot::Block(info) => info,
            _ => unreachable!("handed out as a disk only for a disk slot"),
        }
    }

    /// Runs `call` on the device if the lease is live, marked as this core's call
    /// ([`reentry`]), in one kernel section ([`calling_app`]) whose app's code `call`
    /// runs through the [`AppCode`] it is given.
    fn with<T>(
        &self,
        call: impl FnOnce(&mut AppCode, &mut Found) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        calling_app(self.binder, |app| {
            let core = self.binder.core_index();
            let mut state = live(self.slot, self.generation, core)?;
            reentry::during(self.slot, &mut state, (self.binder, core), |state| {
                call(app, &mut state.device)
            })
        })
    }

    /// Runs `call` on the network interface if the lease is live ([`Lease::with`]).
    fn net<T>(
        &self,
        call: impl FnOnce(&mut AppCode, &mut dyn NetDevice) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        self.with(|app, device| match device {
            Found::Net(nic) => call(app, nic.as_mut()),
            _ => Err(DeviceError::Revoked),
        })
    }

    /// Submits a request on `queue` through `call` if the lease is live and the disk's
    /// extent table lets the holder touch `range` (first sector, sectors, whether to
    /// write them; `None` for a flush, which touches none), and notes it under the same
    /// lock among the requests that later ordered writes on the queue wait for
    /// ([`crate::ordered`]). The tag the app knows it by.
    fn submit(
        &mut self,
        queue: usize,
        range: Option<(u64, u32, bool)>,
        call: impl FnOnce(&mut AppCode, &mut dyn BlockDevice) -> Result<Tag, DeviceError>,
    ) -> Result<Tag, DeviceError> {
        calling_app(self.binder, |app| {
            let core = self.binder.core_index();
            let mut state = live(self.slot, self.generation, core)?;
            if let Some((lba, sectors, write)) = range {
                crate::xn::check(&state, self.holder.1, lba, sectors, write)?;
            }
            reentry::during(self.slot, &mut state, (self.binder, core), |state| {
                let Found::Block(disk) = &mut state.device else {
                    return Err(DeviceError::Revoked);
                };
                let tag = call(app, disk.as_mut())?;
                Ok(state.ordered.submitted(queue, tag))
            })
        })
    }

    /// Arms or disarms `queue`'s wake-up if the lease is live, binding its interrupt
    /// source to the holder ([`crate::interrupts`]).
    fn wake(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        wake(
            self.slot,
            (self.binder, self.holder.0, self.generation),
            queue,
            core,
        )
    }
}

/// The frame path of a [`NetDevice`] that hands each call to the device reached through
/// `self.$reach(|app, device| ...)` (a lease's check that it is still live, in one kernel
/// section: [`calling_app`]), the app's closures run through its [`AppCode`], the memory
/// a send lends them cleared first through `self.cleared` ([`crate::lent`]).
macro_rules! forward_frame_path {
    ($reach:ident) => {
        fn receive(
            &mut self,
            queue: usize,
            budget: usize,
            deliver: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            self.$reach(|app, device| {
                device.receive(queue, budget, &mut |frame| {
                    app.run(|| deliver(frame));
                })
            })
        }

        fn send_segments(
            &mut self,
            queue: usize,
            segments: &[usize],
            offload: bool,
            fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            self.$reach(|app, device| {
                device.send_segments(queue, segments, offload, &mut |parts| {
                    self.cleared.borrow_mut().clear_parts(parts);
                    app.run(|| fill(parts)).unwrap_or(false)
                })
            })
        }

        fn send_tcp_segmented(
            &mut self,
            queue: usize,
            len: usize,
            fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
        ) -> Result<(), DeviceError> {
            self.$reach(|app, device| {
                device.send_tcp_segmented(queue, len, &mut |frame| {
                    self.cleared.borrow_mut().clear(frame);
                    app.run(|| fill(frame)).flatten()
                })
            })
        }

        fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
            self.$reach(|_, device| device.transmit_pending(queue))
        }
    };
}

impl NetDevice for Lease {
    fn info(&self) -> NetInfo {
        match &self.snapshot {
            Snapshot::Net(info) => info.clone(),
            _ => unreachable!("handed out as a network interface only for a network slot"),
        }
    }

    forward_frame_path!(net);

    fn wake_on_receive(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        self.wake(queue, core)
    }

    /// The driver's handles, each behind its pair's gate, which the slot keeps until the
    /// lease ends. Splitting again hands out handles behind the same gates (one per
    /// pair, however often the lease splits), so a call through one pair's handle from
    /// inside a call through another of the same pair is refused rather than left
    /// spinning on the driver's pair lock its own core holds.
    fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
        calling_app(self.binder, |_| {
            let mut state = live(self.slot, self.generation, self.binder.core_index())?;
            let Found::Net(nic) = &mut state.device else {
                return Err(DeviceError::Revoked);
            };
            let handles = nic.split_queues()?;
            let lease = (self.binder, self.holder.0, self.generation);
            Ok(handles
                .into_iter()
                .enumerate()
                .map(|(queue, handle)| {
                    let info = handle.info();
                    // A gate of an earlier split keeps its handle: the driver's new one
                    // reaches the same pair.
                    let gate = match state.queues.get(queue) {
                        Some(gate) => gate.clone(),
                        None => {
                            let gate = Arc::new(QueueGate {
                                handle: spin::Mutex::new(Some(handle)),
                                in_call: InCall::new(),
                                end_after_call: AtomicBool::new(false),
                            });
                            state.queues.push(gate.clone());
                            gate
                        }
                    };
                    Box::new(QueueLease {
                        slot: self.slot,
                        lease,
                        queue,
                        gate,
                        info,
                        cleared: RefCell::default(),
                    }) as Box<dyn NetDevice>
                })
                .collect())
        })
    }
}

/// A driver's handle on one queue pair while its lease lasts, behind its gate.
pub(crate) struct QueueGate {
    /// The handle: `None` once cut.
    handle: spin::Mutex<Option<Box<dyn NetDevice>>>,
    /// The core inside a call holding `handle`'s lock ([`reentry`]).
    pub(crate) in_call: InCall,
    /// Whether the lease was dropped from inside that call: it ends as the call returns.
    end_after_call: AtomicBool,
}

/// A queue pair's gate, shared by the pair's handles (of every split) and the slot.
pub(crate) type Gate = Arc<QueueGate>;

/// An app's handle on one queue pair of its network lease
/// ([`NetDevice::split_queues`]). The frame path takes only the pair's gate, which the
/// core driving the pair and the lease's end alone take (never contended while the
/// lease lasts, so the check costs one uncontended lock on a line that core owns);
/// ending the lease takes each gate, so no call is in the driver once it has ended.
/// Arming the wake-up is the device's (its interrupt bindings) and takes the slot's
/// lock, off the frame path.
struct QueueLease {
    /// The device's slot.
    slot: &'static Slot,
    /// The lease: the kernel's half of interrupt bindings, the holder, the generation.
    lease: (&'static dyn Binder, u16, u64),
    /// Which of the device's queues this is.
    queue: usize,
    /// The driver's handle.
    gate: Gate,
    /// The pair as an interface of one queue, when split.
    info: NetInfo,
    /// The pair's transmit memory cleared for the holder ([`crate::lent`]).
    cleared: RefCell<ClearedForHolder>,
}

impl QueueLease {
    /// The kernel's half of the lease.
    fn binder(&self) -> &'static dyn Binder {
        self.lease.0
    }

    /// Runs `call` on the pair's handle if the lease is live, marked as this core's call
    /// ([`reentry`]); [`DeviceError::Reentered`] inside a call through the whole device,
    /// which may hold the pair, or through another handle on the same pair (the gate is
    /// the pair's). Ends the lease after the call if it was dropped inside it.
    fn with<T>(
        &self,
        call: impl FnOnce(&mut AppCode, &mut dyn NetDevice) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        calling_app(self.binder(), |app| {
            let core = self.binder().core_index();
            if self.slot.in_call.by(core) || self.gate.in_call.by(core) {
                return Err(DeviceError::Reentered);
            }
            let answer = match self.gate.handle.lock().as_mut() {
                Some(handle) => self
                    .gate
                    .in_call
                    .during(core, || call(app, handle.as_mut())),
                None => Err(DeviceError::Revoked),
            };
            // Almost never set: a load keeps the frame path off the swap's exclusive access.
            if self.gate.end_after_call.load(Ordering::Relaxed)
                && self.gate.end_after_call.swap(false, Ordering::Relaxed)
            {
                let state = self.slot.state.lock();
                if state.generation == self.lease.2 {
                    end_after_calls(self.slot, state, core, self.binder());
                }
            }
            answer
        })
    }
}

impl NetDevice for QueueLease {
    fn info(&self) -> NetInfo {
        self.info.clone()
    }

    forward_frame_path!(with);

    /// Queue 0 is the device's queue `self.queue`.
    fn wake_on_receive(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        if queue != 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        wake(self.slot, self.lease, self.queue, core)
    }
}

impl BlockDevice for Lease {
    fn info(&self) -> BlockInfo {
        self.block_info().clone()
    }

    fn submit_read(&mut self, queue: usize, lba: u64, sectors: u32) -> Result<Tag, DeviceError> {
        self.submit(queue, Some((lba, sectors, false)), |_, disk| {
            disk.submit_read(queue, lba, sectors)
        })
    }

    /// A `fill` that aborts withdraws the write: the disk keeps what it held. The buffer
    /// comes to `fill` zeroed ([`crate::lent`]).
    fn submit_write_checked(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<Tag, DeviceError> {
        self.submit(queue, Some((lba, sectors, true)), |app, disk| {
            disk.submit_write_checked(queue, lba, sectors, &mut |buffer| {
                buffer.fill(0);
                app.run(|| fill(buffer)).unwrap_or(false)
            })
        })
    }

    fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError> {
        self.submit(queue, None, |_, disk| disk.submit_flush(queue))
    }

    fn submit_write_ordered(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Tag, DeviceError> {
        let info = self.block_info();
        let (capacity, max_sectors, queues, sector_size) = (
            info.sectors,
            info.max_sectors,
            info.queues,
            info.sector_size,
        );
        let fits = lba
            .checked_add(u64::from(sectors))
            .is_some_and(|end| end <= capacity);
        if sectors == 0 || sectors > max_sectors || !fits {
            let sectors = u64::from(sectors);
            return Err(DeviceError::OutOfRange {
                lba,
                sectors,
                capacity,
            });
        }
        if queue >= queues {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        let bytes = sectors as usize * sector_size as usize;
        let core = self.binder.core_index();
        calling_app(self.binder, |_| {
            let state = live(self.slot, self.generation, core)?;
            crate::xn::check(&state, self.holder.1, lba, sectors, true)?;
            state.ordered.room(queue, bytes)
        })?;
        // The app's data, in the app's own code (no lock held, its heap growth its own).
        let mut data = Vec::new();
        data.try_reserve_exact(bytes)
            .map_err(|_| DeviceError::NoMemory)?;
        data.resize(bytes, 0);
        fill(&mut data);
        // Looked at again: the disk may have been shut down while `fill` ran.
        calling_app(self.binder, |_| {
            let mut state = live(self.slot, self.generation, core)?;
            state.ordered.room(queue, bytes)?;
            Ok(state.ordered.queue_write(queue, lba, sectors, data))
        })
    }

    fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
        if queue >= self.block_info().queues {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        calling_app(self.binder, |app| {
            let core = self.binder.core_index();
            let mut state = live(self.slot, self.generation, core)?;
            let done = &mut |tag, result: Result<&[u8], DeviceError>| {
                app.run(|| done(tag, result));
            };
            reentry::during(self.slot, &mut state, (self.binder, core), |state| {
                let Found::Block(disk) = &mut state.device else {
                    return Err(DeviceError::Revoked);
                };
                state.ordered.poll(disk.as_mut(), queue, done)
            })
        })
    }

    fn wake_on_completion(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        self.wake(queue, core)
    }

    /// Refused: only the kernel shuts a disk down, at power-off and reboot
    /// ([`Registry::shut_down_disks`](crate::Registry::shut_down_disks)); the disk may
    /// hold other apps' extents.
    fn shut_down(&mut self, _: Leaving) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported(
            "shutting a disk down (the kernel does, at power-off and reboot)",
        ))
    }

    /// The drain runs outside the slot's lock ([`away::outside_the_lock`]), the disk
    /// still the holder's, as at the lease's [`end`].
    fn abandon_requests(&mut self) {
        calling_app(self.binder, |_| {
            // A dead lease has nothing to abandon: its requests were abandoned at revocation.
            if let Ok(mut state) = live(self.slot, self.generation, self.binder.core_index()) {
                let why = "it gave up its requests";
                give_up_ordered(self.slot, &mut state, self.holder.1, why);
                away::outside_the_lock(self.slot, state, DRAINING, |disk| disk.abandon_requests());
            }
        })
    }
}

impl KeyboardDevice for Lease {
    fn read_byte(&mut self) -> Result<Option<u8>, DeviceError> {
        self.with(|_, device| match device {
            Found::Keyboard(keyboard) => keyboard.read_byte(),
            _ => Err(DeviceError::Revoked),
        })
    }

    fn attached(&self) -> Result<String, DeviceError> {
        self.with(|_, device| match device {
            Found::Keyboard(keyboard) => keyboard.attached(),
            _ => Err(DeviceError::Revoked),
        })
    }
}

impl Drop for Lease {
    /// Ends the lease: the slot is free again unless it was revoked (and maybe reopened)
    /// since. Dropped inside a call on one of its queue pairs, it ends as that call
    /// returns; a slot this core holds in a call through another handle is not this
    /// lease's, which ended before ([`reentry`]).
    fn drop(&mut self) {
        calling_app(self.binder, |_| {
            let core = self.binder.core_index();
            let Ok(state) = reentry::lock(self.slot, core) else {
                return;
            };
            if state.generation != self.generation {
                return;
            }
            end_after_calls(self.slot, state, core, self.binder);
        })
    }
}

/// Ends the lease on `slot` (`state`, its lock) now, or, while `core` is inside a call on
/// one of its queue pairs (whose gate [`end`] would wait for forever), marks that call's
/// gate to end it as the call returns; the call ending there looks again, so a lease
/// dropped in calls nested across pairs ends as the outermost returns.
fn end_after_calls(
    slot: &Slot,
    state: MutexGuard<'_, SlotState>,
    core: usize,
    binder: &dyn Binder,
) {
    match state.queues.iter().find(|gate| gate.in_call.by(core)) {
        Some(gate) => gate.end_after_call.store(true, Ordering::Relaxed),
        None => drop(end(slot, state, binder)),
    }
}
