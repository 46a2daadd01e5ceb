//! BareMetal's storage and network calls (`b_nvs_read`, `b_nvs_write`, `b_net_tx`,
//! `b_net_rx`) on the registry's devices: the kernel's BareMetal call table forwards
//! here with the app's buffers. Each call holds its device only for its own duration
//! (as the holder `baremetal`), so a device an app holds is refused to BareMetal code.
//! BareMetal counts storage in 4096-byte sectors.

use rexo_api::{BlockDevice, DeviceError, DeviceKind, OpenDevice, device::wait_for};

use crate::Registry;

/// BareMetal's sector.
pub const SECTOR: u64 = 4096;
/// The holder BareMetal calls act as (owner 0: the kernel).
const HOLDER: crate::Holder = (0, "baremetal");
/// How long `b_net_tx` waits for a free transmit buffer, in nanoseconds.
const TX_WAIT_NS: u64 = 10_000_000;

/// Direction of a storage call.
pub enum Transfer<'a> {
    /// `b_nvs_read` into the buffer.
    Read(&'a mut [u8]),
    /// `b_nvs_write` from the buffer.
    Write(&'a [u8]),
}

impl Registry {
    /// `b_nvs_read` / `b_nvs_write`: whole 4096-byte sectors from `sector` on disk
    /// `drive`; returns the sectors done (0 on any error, logged).
    pub fn baremetal_storage(
        &'static self,
        drive: usize,
        sector: u64,
        transfer: Transfer<'_>,
    ) -> u64 {
        let Ok(mut disk) = self
            .open(DeviceKind::Block, drive, HOLDER)
            .and_then(OpenDevice::into_block)
        else {
            return 0;
        };
        match storage(disk.as_mut(), sector, transfer) {
            Ok(done) => done,
            Err(error) => {
                log::warn!("baremetal: disk {drive}, sector {sector}: {error}");
                0
            }
        }
    }

    /// `b_net_tx`: sends `frame` on interface `interface`; false if it was not sent.
    pub fn baremetal_transmit(
        &'static self,
        interface: usize,
        frame: &[u8],
        now_ns: impl Fn() -> u64,
    ) -> bool {
        let Ok(mut nic) = self
            .open(DeviceKind::Net, interface, HOLDER)
            .and_then(OpenDevice::into_net)
        else {
            return false;
        };
        let start = now_ns();
        loop {
            match nic.transmit(0, frame.len(), &mut |buffer| buffer.copy_from_slice(frame)) {
                Err(DeviceError::QueueFull) if now_ns() - start < TX_WAIT_NS => {
                    core::hint::spin_loop()
                }
                Ok(()) => return true,
                Err(error) => {
                    log::warn!("baremetal: interface {interface}: {error}");
                    return false;
                }
            }
        }
    }

    /// `b_net_rx`: the next received frame of interface `interface` into `buffer`;
    /// returns its length (0: none; a frame longer than `buffer` is dropped).
    pub fn baremetal_receive(&'static self, interface: usize, buffer: &mut [u8]) -> usize {
        let Ok(mut nic) = self
            .open(DeviceKind::Net, interface, HOLDER)
            .and_then(OpenDevice::into_net)
        else {
            return 0;
        };
        let mut len = 0;
        let received = nic.receive(0, 1, &mut |frame| {
            if let Some(target) = buffer.get_mut(..frame.len()) {
                target.copy_from_slice(frame);
                len = frame.len();
            }
        });
        if let Err(error) = received {
            log::warn!("baremetal: interface {interface}: {error}");
        }
        len
    }
}

/// Runs one storage call on `disk`: 4096-byte sectors turned into the disk's own.
fn storage(
    disk: &mut dyn BlockDevice,
    sector: u64,
    transfer: Transfer<'_>,
) -> Result<u64, DeviceError> {
    let info = disk.info();
    let size = u64::from(info.sector_size);
    let bytes = match &transfer {
        Transfer::Read(buffer) => buffer.len() as u64,
        Transfer::Write(data) => data.len() as u64,
    };
    if size == 0 || !SECTOR.is_multiple_of(size) {
        return Err(DeviceError::Unsupported("sectors that divide 4096 bytes"));
    }
    let per = SECTOR / size;
    let (first, count) = (sector.saturating_mul(per), bytes / size);
    let end = first.checked_add(count).filter(|&end| end <= info.sectors);
    if end.is_none() {
        return Err(DeviceError::OutOfRange {
            lba: first,
            sectors: count,
            capacity: info.sectors,
        });
    }
    let chunk = u64::from(info.max_sectors.max(1));
    let mut done = 0;
    let mut transfer = transfer;
    while done < count {
        let n = (count - done).min(chunk);
        let range = (done * size) as usize..((done + n) * size) as usize;
        let tag = match &mut transfer {
            Transfer::Read(_) => disk.submit_read(0, first + done, n as u32)?,
            Transfer::Write(data) => {
                let part = &data[range.clone()];
                disk.submit_write(0, first + done, n as u32, &mut |buffer| {
                    buffer.copy_from_slice(part)
                })?
            }
        };
        wait_for(disk, 0, tag, &mut |data| {
            if let Transfer::Read(buffer) = &mut transfer {
                buffer[range.clone()].copy_from_slice(&data[..range.len()]);
            }
        })?;
        done += n;
    }
    Ok(count / per)
}
