//! An app's handle on a device: every call checks that the lease is still the slot's
//! current one, then forwards to the driver under the slot's lock.

use rexo_api::{BlockDevice, BlockInfo, Completion, DeviceError, NetDevice, NetInfo, Tag};

use rexo_devio::Found;

use crate::{Slot, SlotState};

/// The slot's state if `generation` is still current.
fn live(slot: &Slot, generation: u64) -> Result<spin::MutexGuard<'_, SlotState>, DeviceError> {
    let state = slot.state.lock();
    if state.generation == generation && state.holder.is_some() {
        Ok(state)
    } else {
        Err(DeviceError::Revoked)
    }
}

/// Ends a lease: the slot is free again unless it was revoked (and maybe reopened) since.
fn release(slot: &Slot, generation: u64) {
    let mut state = slot.state.lock();
    if state.generation == generation {
        state.holder = None;
        state.generation += 1;
        forget_requests(&mut state.device);
    }
}

/// A disk's requests in flight belong to no one once its holder changes.
pub(crate) fn forget_requests(device: &mut Found) {
    if let Found::Block(disk) = device {
        disk.abandon_requests();
    }
}

/// An app's handle on a network interface.
pub struct NetLease {
    /// The device's slot.
    slot: &'static Slot,
    /// The generation this lease was opened at.
    generation: u64,
    /// The interface as it was when opened (`info` needs no lock).
    info: NetInfo,
}

impl NetLease {
    /// The lease on `slot` (a network slot) at `generation`.
    pub(crate) fn new(slot: &'static Slot, generation: u64) -> Self {
        let info = match &slot.state.lock().device {
            Found::Net(net) => net.info(),
            Found::Block(_) => unreachable!("a network lease on a disk slot"),
        };
        Self {
            slot,
            generation,
            info,
        }
    }

    /// Runs `call` on the device if the lease is live.
    fn with<T>(
        &mut self,
        call: impl FnOnce(&mut dyn NetDevice) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let mut state = live(self.slot, self.generation)?;
        match &mut state.device {
            Found::Net(net) => call(net.as_mut()),
            Found::Block(_) => Err(DeviceError::Revoked),
        }
    }
}

impl NetDevice for NetLease {
    fn info(&self) -> NetInfo {
        self.info.clone()
    }

    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        self.with(|net| net.receive(queue, budget, deliver))
    }

    fn transmit(
        &mut self,
        queue: usize,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), DeviceError> {
        self.with(|net| net.transmit(queue, len, fill))
    }

    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
        self.with(|net| net.transmit_pending(queue))
    }
}

impl Drop for NetLease {
    fn drop(&mut self) {
        release(self.slot, self.generation);
    }
}

/// An app's handle on a disk.
pub struct BlockLease {
    /// The device's slot.
    slot: &'static Slot,
    /// The generation this lease was opened at.
    generation: u64,
    /// The disk as it was when opened.
    info: BlockInfo,
}

impl BlockLease {
    /// The lease on `slot` (a disk slot) at `generation`.
    pub(crate) fn new(slot: &'static Slot, generation: u64) -> Self {
        let info = match &slot.state.lock().device {
            Found::Block(disk) => disk.info(),
            Found::Net(_) => unreachable!("a disk lease on a network slot"),
        };
        Self {
            slot,
            generation,
            info,
        }
    }

    /// Runs `call` on the device if the lease is live.
    fn with<T>(
        &mut self,
        call: impl FnOnce(&mut dyn BlockDevice) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let mut state = live(self.slot, self.generation)?;
        match &mut state.device {
            Found::Block(disk) => call(disk.as_mut()),
            Found::Net(_) => Err(DeviceError::Revoked),
        }
    }
}

impl BlockDevice for BlockLease {
    fn info(&self) -> BlockInfo {
        self.info.clone()
    }

    fn submit_read(&mut self, queue: usize, lba: u64, sectors: u32) -> Result<Tag, DeviceError> {
        self.with(|disk| disk.submit_read(queue, lba, sectors))
    }

    fn submit_write(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Tag, DeviceError> {
        self.with(|disk| disk.submit_write(queue, lba, sectors, fill))
    }

    fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError> {
        self.with(|disk| disk.submit_flush(queue))
    }

    fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
        self.with(|disk| disk.poll(queue, done))
    }

    fn abandon_requests(&mut self) {
        // A dead lease has nothing to abandon: its requests were abandoned at revocation.
        let _ = self.with(|disk| {
            disk.abandon_requests();
            Ok(())
        });
    }
}

impl Drop for BlockLease {
    fn drop(&mut self) {
        release(self.slot, self.generation);
    }
}
