//! Calls into the registry from inside the app's own code in a device call, and from
//! other cores while such a call holds a device.
//!
//! A device call runs the app's closures ([`crate::appcode`]) with the slot's lock held,
//! or a queue pair's gate. Those locks are not re-entrant: a closure that calls the
//! kernel about the same device (`devices`, `open_device`, `net_sharing`, a call through
//! another handle on it, dropping one) would spin forever on a lock its own core holds,
//! and every core that wants the lock after it would wait too. So each such lock records
//! the core inside a call that holds it ([`InCall`]) and every way into the registry looks
//! first: that core is answered [`DeviceError::Reentered`], or, where nothing can be
//! answered (a handle dropped), the work waits until the call returns.
//!
//! A closure may also run long (a completion handler that waits for something), so a
//! call the registry serves for another app does not wait for a slot another core holds
//! inside a call ([`lock_unless_in_call`]): `devices` lists it by the apps the slot
//! publishes ([`Members`]) and `open` answers `DeviceBusy` naming the first. Nor does
//! the kernel's clean-up when an app ends: `revoke_all_of` waits only for a slot the
//! ending app holds or is bound to ([`lock_for`]: the call may be the app's own, on
//! another of its cores, and its devices are taken back only once that returns); nor
//! `return_interrupt`, for a slot the returning app does not hold (its binding is not
//! there); nor `disarm_revoked`, which hands the slot's disarm to that call, done as it
//! returns ([`lock_or_hand_over`], [`during`]), so the kernel need not sweep again. The
//! other calls wait for the lock as before.
//!
//! The lock order: a slot's lock, then one of its pairs' gates ([`crate::lease`]'s end
//! cuts them); its [`Members`]' lock is taken last, alone or under the slot's, and held
//! only to copy the apps in or out (no other lock is taken and no app code runs under it).
//! The disarm a call does as it returns takes nothing the call itself did not: the
//! kernel's capability table (whether a binding is live) and the driver's wake call, under
//! the slot's lock, as an arm does; and [`during`] never runs while its core holds one of
//! the slot's pairs' gates (a lease's calls are refused there, [`lock_whole`], and a
//! shared interface has no lease, so no gates).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use rexo_api::DeviceError;
use spin::MutexGuard;

use crate::{Binder, Holder, Slot, SlotState};

/// The holder [`Members::shown`] names when none was published.
const IN_A_CALL: &str = "(an app, inside a call on it on another core)";

/// What [`InCall`] holds while no core is inside a call.
const NO_CORE: usize = usize::MAX;

/// The core, if any, inside a device call that holds a lock (the only one that sets or
/// clears it, under that lock, so its own loads may be relaxed; another core's load
/// acquires what was published under the lock before the call began).
pub(crate) struct InCall(AtomicUsize);

impl InCall {
    /// No core inside a call.
    pub(crate) const fn new() -> Self {
        Self(AtomicUsize::new(NO_CORE))
    }

    /// Whether `core` is inside a call holding the lock.
    pub(crate) fn by(&self, core: usize) -> bool {
        self.0.load(Ordering::Relaxed) == core
    }

    /// Whether some core is inside a call holding the lock (for a core that is not). The
    /// load is sequentially consistent, as a slot call's end is
    /// ([`InCall::during_in_order`]): a flag this core set before it found the mark is
    /// seen by that call's end.
    fn by_any(&self) -> bool {
        self.0.load(Ordering::SeqCst) != NO_CORE
    }

    /// Runs `call`, which `core` makes with the lock held, marked as inside a call
    /// meanwhile (cleared before the caller unlocks).
    pub(crate) fn during<R>(&self, core: usize, call: impl FnOnce() -> R) -> R {
        self.0.store(core, Ordering::Release);
        let answer = call();
        self.0.store(NO_CORE, Ordering::Release);
        answer
    }

    /// As [`InCall::during`], the mark cleared in the sequentially consistent order, so
    /// that this core's next sequentially consistent load sees a flag another core set
    /// before it found the mark still there ([`lock_or_hand_over`]). A slot's calls only:
    /// a pair's frame path keeps the cheaper release.
    fn during_in_order<R>(&self, core: usize, call: impl FnOnce() -> R) -> R {
        self.0.store(core, Ordering::Release);
        let answer = call();
        self.0.store(NO_CORE, Ordering::SeqCst);
        answer
    }
}

/// `slot`'s lock for `core`; [`DeviceError::Reentered`] when `core` is inside a device
/// call that holds it.
pub(crate) fn lock(slot: &Slot, core: usize) -> Result<MutexGuard<'_, SlotState>, DeviceError> {
    if slot.in_call.by(core) {
        return Err(DeviceError::Reentered);
    }
    Ok(slot.state.lock())
}

/// Runs `call`, which `core` (its index by `binder`) makes on `slot` with its lock held
/// (`state`), marked as inside a call meanwhile; then ends the bindings on the shared
/// interface the app's code dropped inside it ([`crate::sharing`]), and, if a sweep of
/// the kernel's handed the slot to this call ([`lock_or_hand_over`]), disarms its
/// bindings revoked by force ([`crate::interrupts::disarm_revoked`]). Every call that
/// runs the app's code with the slot's lock held runs through here.
pub(crate) fn during<R>(
    slot: &Slot,
    state: &mut SlotState,
    (binder, core): (&dyn Binder, usize),
    call: impl FnOnce(&mut SlotState) -> R,
) -> R {
    let answer = slot.in_call.during_in_order(core, || call(state));
    if slot.unbound_pending.load(Ordering::Relaxed)
        && slot.unbound_pending.swap(false, Ordering::Acquire)
    {
        let dropped = core::mem::take(&mut *slot.unbound_in_call.lock());
        crate::sharing::unbind(slot, state, &dropped);
    }
    // Almost never set: a load keeps the call off the swap's exclusive access.
    if slot.disarm_pending.load(Ordering::SeqCst)
        && slot.disarm_pending.swap(false, Ordering::Acquire)
    {
        crate::interrupts::disarm_revoked(slot, state, binder);
    }
    answer
}

/// `slot`'s lock for a call through the whole device by `core` (the driver's whole
/// device may wait for what one of its queue pairs holds); [`DeviceError::Reentered`]
/// when `core` is inside a device call that holds the lock or one of the pairs' gates.
pub(crate) fn lock_whole(
    slot: &Slot,
    core: usize,
) -> Result<MutexGuard<'_, SlotState>, DeviceError> {
    let state = lock(slot, core)?;
    if in_pair_call(&state, core) {
        return Err(DeviceError::Reentered);
    }
    Ok(state)
}

/// Whether `core` is inside a call holding one of the queue pairs' gates of the slot
/// whose state is `state`.
pub(crate) fn in_pair_call(state: &SlotState, core: usize) -> bool {
    state.queues.iter().any(|gate| gate.in_call.by(core))
}

/// Which core is inside a call holding a slot's lock that [`lock_unless_in_call`] did
/// not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InCallOn {
    /// The calling core: its own closure asks.
    ThisCore,
    /// Another core: its app's closure may run for as long as it likes.
    AnotherCore,
}

/// `slot`'s lock for `core`, waited for only while no core is inside a call that holds
/// it (a driver's work without the app's code, which ends); which core is, otherwise.
pub(crate) fn lock_unless_in_call(
    slot: &Slot,
    core: usize,
) -> Result<MutexGuard<'_, SlotState>, InCallOn> {
    loop {
        // Only the core holding the lock marks it in a call, after taking it and before
        // letting it go: a lock found taken and unmarked is looked at again.
        if slot.in_call.by(core) {
            return Err(InCallOn::ThisCore);
        }
        if let Some(state) = slot.state.try_lock() {
            return Ok(state);
        }
        if slot.in_call.by_any() {
            return Err(InCallOn::AnotherCore);
        }
        core::hint::spin_loop();
    }
}

/// `slot`'s lock for the kernel's sweep on `core` ([`lock_unless_in_call`]), or `None`
/// once the sweep's work there is handed to another core's call that holds it: the
/// slot's `disarm_pending` set, which [`during`] takes as that call returns. The call may
/// have ended between the failed try and the flag (and its end not seen the flag), so
/// the lock is looked at again: taken (the flag with it) if free, waited for while held
/// outside a call, `None` once a core is seen inside one (whose end, in the sequentially
/// consistent order after the flag, sees it). [`InCallOn::ThisCore`] when `core` is
/// inside a call holding it (which returns before the sweep can run again there).
pub(crate) fn lock_or_hand_over(
    slot: &Slot,
    core: usize,
) -> Result<Option<MutexGuard<'_, SlotState>>, InCallOn> {
    match lock_unless_in_call(slot, core) {
        Ok(state) => return Ok(Some(state)),
        Err(InCallOn::ThisCore) => return Err(InCallOn::ThisCore),
        Err(InCallOn::AnotherCore) => {}
    }
    slot.disarm_pending.store(true, Ordering::SeqCst);
    loop {
        if let Some(state) = slot.state.try_lock() {
            slot.disarm_pending.store(false, Ordering::Relaxed);
            return Ok(Some(state));
        }
        if slot.in_call.by_any() {
            return Ok(None);
        }
        core::hint::spin_loop();
    }
}

/// `slot`'s lock for work on app `owner`'s behalf by `core`, waited for while another
/// core is inside a call holding it only if `owner` holds the slot or is bound to it
/// ([`Members`]: that call may be the app's own, which its end must wait for); `None`
/// when `core` is inside a call holding it, or another core is and nothing of `owner`'s
/// is in the slot (none can come while the call holds the lock).
pub(crate) fn lock_for(slot: &Slot, core: usize, owner: u16) -> Option<MutexGuard<'_, SlotState>> {
    loop {
        match lock_unless_in_call(slot, core) {
            Ok(state) => return Some(state),
            Err(InCallOn::AnotherCore) if slot.members.include(owner) => {
                core::hint::spin_loop();
            }
            Err(_) => return None,
        }
    }
}

/// The apps holding a slot, published for the calls that do not wait for a call on
/// another core holding its lock ([`lock_unless_in_call`]): the holder, or the apps
/// bound to its shared interface (the first bound first), as the slot's state had them
/// when its lock was last let go after a change. Published under the slot's lock by
/// every change of either (an open, a lease's end, a binding made or ended), so a call
/// holding the lock, which can make none, leaves them as they were when it began. The
/// kernel's mark on a disk out of its slot ([`crate::away`]) is not an app, and not
/// published: the slot's lock is free meanwhile.
#[derive(Default)]
pub(crate) struct Members(spin::Mutex<Vec<Holder>>);

impl Members {
    /// Publishes the holder and bound apps of the slot whose state is `state` (its lock
    /// held).
    pub(crate) fn publish(&self, state: &SlotState) {
        let mut members = self.0.lock();
        members.clear();
        members.extend(state.holder.iter().copied());
        members.extend(crate::sharing::bound_apps(state));
    }

    /// The name of the app the slot shows as its holder: its holder, or the first app
    /// bound to it ([`IN_A_CALL`] if none was published, which no call made for a
    /// holder or a bound app leaves).
    pub(crate) fn shown(&self) -> &'static str {
        self.0.lock().first().map_or(IN_A_CALL, |&(_, name)| name)
    }

    /// Whether app `owner` holds the slot or is bound to it.
    fn include(&self, owner: u16) -> bool {
        self.0.lock().iter().any(|&(member, _)| member == owner)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sharing::tests::{config, filters};
    use crate::tests::{Counting, lease_net, registry_with};
    use crate::{IN_CALL, Registry};
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use rexo_api::{ApiError, DeviceKind, NetDevice, NetInfo};
    use rexo_devio::Found;

    /// An interface of one queue that lends a buffer to every send and hands one frame to
    /// every receive; it splits into two handles like itself.
    pub(crate) struct Lending;

    impl NetDevice for Lending {
        fn info(&self) -> NetInfo {
            Counting(0, crate::tests::Wake::Never).info()
        }
        fn receive(
            &mut self,
            _: usize,
            _: usize,
            deliver: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            deliver(&[0; 60]);
            Ok(1)
        }
        fn send_segments(
            &mut self,
            _: usize,
            segments: &[usize],
            _: bool,
            fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            let mut frame = alloc::vec![0; segments.iter().sum()];
            fill(&mut [&mut frame[..]]);
            Ok(())
        }
        fn transmit_pending(&mut self, _: usize) -> Result<usize, DeviceError> {
            Ok(0)
        }
        fn wake_on_receive(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Ok(())
        }
        fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
            Ok(alloc::vec![
                Box::new(Lending) as Box<dyn NetDevice>,
                Box::new(Lending)
            ])
        }
    }

    /// [`Lending`]'s frame path as one pair of a device, whose lock the driver holds
    /// while the app's closures run (as virtio-net's and the e1000e's pairs).
    #[derive(Default)]
    struct LendingPair;

    impl rexo_devio::QueuePair for LendingPair {
        type Layout = ();
        fn receive(
            &mut self,
            _: (),
            budget: usize,
            deliver: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            Lending.receive(0, budget, deliver)
        }
        fn send_segments(
            &mut self,
            _: (),
            segments: &[usize],
            offload: bool,
            fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            Lending.send_segments(0, segments, offload, fill)
        }
        fn transmit_pending(&mut self, _: ()) -> Result<usize, DeviceError> {
            Ok(0)
        }
    }

    /// An interface of two [`LendingPair`]s, each behind its lock, split into
    /// `rexo_devio::pairs::split`'s handles as the drivers split.
    struct LockedPairs(Vec<alloc::sync::Arc<spin::Mutex<LendingPair>>>);

    impl NetDevice for LockedPairs {
        fn info(&self) -> NetInfo {
            NetInfo {
                queues: self.0.len(),
                ..Lending.info()
            }
        }
        fn receive(
            &mut self,
            queue: usize,
            budget: usize,
            deliver: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            use rexo_devio::QueuePair;
            self.0[queue].lock().receive((), budget, deliver)
        }
        fn send_segments(
            &mut self,
            queue: usize,
            segments: &[usize],
            offload: bool,
            fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            use rexo_devio::QueuePair;
            self.0[queue]
                .lock()
                .send_segments((), segments, offload, fill)
        }
        fn transmit_pending(&mut self, _: usize) -> Result<usize, DeviceError> {
            Ok(0)
        }
        fn wake_on_receive(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Ok(())
        }
        fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
            let info = self.info();
            Ok(rexo_devio::pairs::split(&self.0, (), info, "the device's"))
        }
    }

    /// What `test` returns, run on a thread of its own (a core of its own): a test that
    /// spins on a lock its own core holds fails after a few seconds instead of hanging.
    fn in_time<T: Send + 'static>(test: impl FnOnce() -> T + Send + 'static) -> T {
        let (answer, answered) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || answer.send(test()).unwrap());
        match answered.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(value) => value,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("hung: a call waits for a lock its own core holds")
            }
            Err(_) => std::panic::resume_unwind(thread.join().unwrap_err()),
        }
    }

    /// A registry with one [`Lending`] interface.
    fn lending() -> &'static Registry {
        registry_with(Found::Net(Box::new(Lending)), "test-net")
    }

    /// What the registry answers about interface 0 from inside a call on it.
    fn asked_inside(registry: &'static Registry) -> (Option<&'static str>, [bool; 3]) {
        let held = registry.devices()[0].holder;
        let reentered = Err(ApiError::Device(DeviceError::Reentered));
        let opened = registry.open(DeviceKind::Net, 0, (2, "other")).map(|_| ());
        let shared = registry.net_sharing(0).map(|_| ());
        let bound = registry.bind_net(0, (2, "other"), &filters(&["udp dport 7"]), config());
        let bound = bound.map(|_| ());
        let refused = [opened == reentered, shared == reentered, bound == reentered];
        (held, refused)
    }

    #[test]
    fn a_closure_that_asks_about_its_own_device_is_refused_instead_of_spinning() {
        let registry = lending();
        let (inside_fill, inside_deliver, after) = in_time(move || {
            let mut nic = lease_net(registry, (1, "app"));
            let mut in_fill = None;
            nic.transmit(0, 60, &mut |_| in_fill = Some(asked_inside(registry)))
                .unwrap();
            let mut in_deliver = None;
            nic.receive(0, 1, &mut |_| in_deliver = Some(asked_inside(registry)))
                .unwrap();
            let after = registry.devices()[0].holder;
            (in_fill.unwrap(), in_deliver.unwrap(), after)
        });
        assert_eq!(inside_fill, (Some(IN_CALL), [true; 3]));
        assert_eq!(inside_deliver, (Some(IN_CALL), [true; 3]));
        assert_eq!(after, Some("app"), "after the calls");
    }

    /// Interface 0 of `registry` leased by app 1, and its pairs' handles.
    fn leased_and_split(
        registry: &'static Registry,
    ) -> (Box<dyn NetDevice>, Vec<Box<dyn NetDevice>>) {
        let mut lease = lease_net(registry, (1, "app"));
        let pairs = lease.split_queues().unwrap();
        (lease, pairs)
    }

    #[test]
    fn a_second_splits_handle_called_inside_the_firsts_call_on_its_pair_is_refused() {
        let pairs = (0..2).map(|_| Default::default()).collect();
        let registry = registry_with(Found::Net(Box::new(LockedPairs(pairs))), "test-net");
        let (inside, after, gates) = in_time(move || {
            let (mut lease, mut first) = leased_and_split(registry);
            let mut second = lease.split_queues().unwrap();
            let mut inside = None;
            first[0]
                .receive(0, 1, &mut |_| {
                    let pair = second[0].transmit(0, 60, &mut |_| {});
                    let other_pair = second[1].transmit(0, 60, &mut |_| {});
                    inside = Some((pair, other_pair));
                })
                .unwrap();
            let after = (
                lease.receive(0, 1, &mut |_| {}),
                second[0].receive(0, 1, &mut |_| {}),
                registry.devices()[0].holder,
            );
            let _third = lease.split_queues().unwrap();
            let gates = registry.slots[0].state.lock().queues.len();
            (inside.unwrap(), after, gates)
        });
        assert_eq!(inside, (Err(DeviceError::Reentered), Ok(())));
        assert_eq!(after, (Ok(1), Ok(1), Some("app")));
        assert_eq!(
            gates, 2,
            "one gate per pair, however often the lease splits"
        );
    }

    #[test]
    fn a_lease_dropped_inside_a_call_on_its_pair_ends_as_the_call_returns() {
        let registry = lending();
        let (inside, after) = in_time(move || {
            let (lease, mut pairs) = leased_and_split(registry);
            let mut pair = pairs.remove(0);
            let mut lease = Some(lease);
            let mut inside = None;
            pair.transmit(0, 60, &mut |_| {
                let whole = lease.as_mut().unwrap().transmit(0, 60, &mut |_| {});
                drop(lease.take());
                inside = Some((whole, registry.devices()[0].holder));
            })
            .unwrap();
            let after = (
                pair.receive(0, 1, &mut |_| {}),
                registry.devices()[0].holder,
            );
            (inside.unwrap(), after)
        });
        assert_eq!(inside, (Err(DeviceError::Reentered), Some("app")));
        assert_eq!(after, (Err(DeviceError::Revoked), None));
    }

    #[test]
    fn a_lease_dropped_inside_a_lower_pairs_call_from_a_higher_pairs_ends_as_the_outer_returns() {
        let registry = lending();
        let (inside, after) = in_time(move || {
            let (lease, mut pairs) = leased_and_split(registry);
            let (mut second, mut first) = (pairs.pop().unwrap(), pairs.pop().unwrap());
            let mut lease = Some(lease);
            let mut inside = None;
            second
                .transmit(0, 60, &mut |_| {
                    let inner = first.transmit(0, 60, &mut |_| drop(lease.take()));
                    inside = Some((inner, registry.devices()[0].holder));
                })
                .unwrap();
            let after = (
                first.receive(0, 1, &mut |_| {}),
                second.receive(0, 1, &mut |_| {}),
                registry.devices()[0].holder,
            );
            (inside.unwrap(), after)
        });
        assert_eq!(
            inside,
            (Ok(()), Some("app")),
            "still held inside the outer call"
        );
        let revoked = Err(DeviceError::Revoked);
        assert_eq!(after, (revoked, revoked, None));
    }

    #[test]
    fn a_binding_dropped_inside_another_bindings_call_ends_as_the_call_returns() {
        let (registry, _wire) = crate::sharing::tests::shared();
        let bindings = in_time(move || {
            let mut first = registry
                .bind_net(0, (1, "app"), &filters(&["udp dport 7"]), config())
                .unwrap();
            let mut second = registry
                .bind_net(0, (1, "app"), &filters(&["udp dport 8"]), config())
                .map(Some)
                .unwrap();
            let _ = first.transmit(0, 60, &mut |_| drop(second.take()));
            let shared = registry.net_sharing(0).unwrap().unwrap();
            shared.bindings.len()
        });
        assert_eq!(bindings, 1, "the dropped binding ended");
    }
}
