//! Copies between the block layer's memory and a driver's buffers, which must be the
//! length asked: a driver that hands over another length is a fault reported as an
//! error, never a copy cut short (stale bytes on the disk) or a panic (the kernel's).

use rexo_api::{BlockDevice, DeviceError, Tag, device::wait_for};

/// The error for a driver buffer of `len` bytes where another length was asked.
pub(crate) fn wrong_length(len: usize) -> DeviceError {
    DeviceError::Status {
        what: "the driver handed over a buffer of another length than asked (status: its bytes)",
        status: u32::try_from(len).unwrap_or(u32::MAX),
    }
}

/// Queues a write of `sectors` at `lba` on `queue`, whose buffer must be `bytes` long:
/// `fill` writes it. A buffer of another length withdraws the write (nothing of it
/// reaches the disk) and is [`wrong_length`].
pub(crate) fn submit_write_exact(
    disk: &mut dyn BlockDevice,
    queue: usize,
    (lba, sectors): (u64, u32),
    bytes: usize,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<Tag, DeviceError> {
    let mut handed = None;
    disk.submit_write_checked(queue, lba, sectors, &mut |buffer| {
        if buffer.len() != bytes {
            handed = Some(buffer.len());
            return false;
        }
        fill(buffer);
        true
    })
    .map_err(|error| handed.map_or(error, wrong_length))
}

/// Waits for read `tag` on `queue` ([`wait_for`]) and copies its data into `into`: data
/// of another length is [`wrong_length`], nothing of it copied.
pub(crate) fn wait_for_read_exact(
    disk: &mut dyn BlockDevice,
    queue: usize,
    tag: Tag,
    into: &mut [u8],
) -> Result<(), DeviceError> {
    let mut handed = None;
    wait_for(disk, queue, tag, &mut |data| {
        if data.len() == into.len() {
            into.copy_from_slice(data);
        } else {
            handed = Some(data.len());
        }
    })?;
    handed.map_or(Ok(()), |len| Err(wrong_length(len)))
}
