//! A disk taken out of its slot for the kernel's use, so that slow work on it runs
//! without the slot's lock.

use alloc::boxed::Box;

use rexo_api::{BlockDevice, BlockInfo, DeviceError, Leaving};
use rexo_devio::Found;
use spin::MutexGuard;

use crate::{Slot, SlotState};

/// What a disk's slot holds while the disk itself is out, in the kernel's use: the
/// disk's description, and a refusal for every request (none comes: the slot is marked
/// busy).
struct Away(BlockInfo);

/// What [`Away`] answers.
const AWAY: DeviceError =
    DeviceError::Unsupported("the disk is out of its slot, in the kernel's use");

impl BlockDevice for Away {
    fn info(&self) -> BlockInfo {
        self.0.clone()
    }
    fn submit_read(&mut self, _: usize, _: u64, _: u32) -> Result<rexo_api::Tag, DeviceError> {
        Err(AWAY)
    }
    fn submit_write_checked(
        &mut self,
        _: usize,
        _: u64,
        _: u32,
        _: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<rexo_api::Tag, DeviceError> {
        Err(AWAY)
    }
    fn submit_flush(&mut self, _: usize) -> Result<rexo_api::Tag, DeviceError> {
        Err(AWAY)
    }
    fn poll(&mut self, _: usize, _: rexo_api::Completion<'_>) -> Result<usize, DeviceError> {
        Err(AWAY)
    }
    fn wake_on_completion(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
        Err(AWAY)
    }
    fn abandon_requests(&mut self) {}
    fn shut_down(&mut self, _: Leaving) -> Result<(), DeviceError> {
        Err(AWAY)
    }
}

/// The owner number of the kernel's mark on a slot whose disk it has out while nobody
/// holds it: no app has it, so nothing revokes it.
const KERNEL: u16 = u16::MAX;

/// Runs `work` on the disk in `slot` with the slot's lock (`state`) dropped, so calls
/// that take every slot's lock (`devices`, `revoke_all_of` when an app ends, ...) do not
/// wait for it: the disk is taken out of the slot (an [`Away`] in its place), and both
/// are undone under the lock again, whatever `work` returns. Meanwhile the slot stays
/// held by its holder, or, when nobody holds it, is marked held by the kernel under the
/// name `why` ([`KERNEL`]'s number); `open`, `extents` as
/// [`rexo_api::ApiError::DeviceBusy`] and `devices` show the name. So no lease begins
/// or ends before the disk is back: others' `revoke_all_of` pass it by, and the
/// holder's own waits for it ([`lock_when_back`]); the source of an interrupt binding
/// returned or revoked meanwhile is disarmed once the disk is back. Returns the lock
/// and `work`'s answer, `None` when the slot holds no disk.
pub(crate) fn outside_the_lock<'a, R>(
    slot: &'a Slot,
    mut state: MutexGuard<'a, SlotState>,
    why: &'static str,
    work: impl FnOnce(&mut dyn BlockDevice) -> R,
) -> (MutexGuard<'a, SlotState>, Option<R>) {
    let Found::Block(disk) = &mut state.device else {
        return (state, None);
    };
    let away = Box::new(Away(disk.info()));
    let mut disk = core::mem::replace(disk, away);
    let holder = state.holder;
    state.holder = Some(holder.unwrap_or((KERNEL, why)));
    state.away = true;
    let bound = state.interrupts.list();
    drop(state);
    let answer = work(disk.as_mut());
    let mut state = slot.state.lock();
    state.device = Found::Block(disk);
    state.holder = holder;
    state.away = false;
    // A binding returned or revoked meanwhile was disarmed on the stand-in: now on the disk.
    let still_bound = state.interrupts.list();
    for gone in bound
        .iter()
        .filter(|binding| !still_bound.contains(binding))
    {
        // Unbound either way; a device that cannot disarm masks nothing more than it did.
        let _ = crate::interrupts::driver_arm(&mut state.device, gone.queue, None);
    }
    (state, Some(answer))
}

/// The lock of `slot` for the end of app `owner` on `core`, once its disk is back in it
/// if `owner` holds it and its disk is out ([`outside_the_lock`]: the holder draining
/// its own abandoned requests when its app ends): the end of an app takes back its disk
/// only after that. Otherwise as soon as the lock is free, but `None` when nothing of
/// `owner`'s can be there: `core` is inside a call holding it (another app's, which ran
/// this one from inside its closure), or another core is and `owner` neither holds nor
/// is bound to the slot ([`crate::reentry::lock_for`]).
pub(crate) fn lock_when_back(
    slot: &Slot,
    core: usize,
    owner: u16,
) -> Option<MutexGuard<'_, SlotState>> {
    loop {
        let state = crate::reentry::lock_for(slot, core, owner)?;
        let owners_work = state.holder.is_some_and(|(holder, _)| holder == owner);
        if !(state.away && owners_work) {
            return Some(state);
        }
        drop(state);
        core::hint::spin_loop();
    }
}
