//! A disk taken out of its slot for the kernel's use, so that slow work on it runs
//! without the slot's lock.

use alloc::boxed::Box;

use rexo_api::{BlockDevice, BlockInfo, DeviceError};
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
}

/// Runs `work` on the disk in `slot` (idle: nobody holds it) with the slot's lock
/// (`state`) dropped, so calls that take every slot's lock (`devices`, `revoke_all_of`
/// when an app ends, ...) do not wait for it: the disk is taken out of the slot (an
/// [`Away`] in its place), the slot marked held by the kernel under the name `why` (an
/// owner number no app has, so nothing revokes it; `open`, `extents` as
/// [`rexo_api::ApiError::DeviceBusy`] and `devices` show the name), and both are undone under the
/// lock again, whatever `work` returns. Returns the lock and `work`'s answer, `None`
/// when the slot holds no disk.
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
    state.holder = Some((u16::MAX, why));
    drop(state);
    let answer = work(disk.as_mut());
    let mut state = slot.state.lock();
    state.device = Found::Block(disk);
    state.holder = None;
    (state, Some(answer))
}
