//! Copies between the block layer's memory and a driver's buffers, which must be the
//! length asked: a driver that hands over another length is a fault reported as an
//! error, never a copy cut short (stale bytes on the disk) or a panic (the kernel's).

use rexo_api::device::{self, ExactError};
use rexo_api::{BlockDevice, DeviceError, Tag};

/// The error for a driver buffer of `len` bytes where another length was asked.
pub(crate) fn wrong_length(len: usize) -> DeviceError {
    DeviceError::Status {
        what: "the driver handed over a buffer of another length than asked (status: its bytes)",
        status: u32::try_from(len).unwrap_or(u32::MAX),
    }
}

/// The registry's error for a failed length-checked transfer: a wrong length is
/// [`wrong_length`].
fn device_error(failed: ExactError) -> DeviceError {
    match failed {
        ExactError::WrongLength(len) => wrong_length(len),
        ExactError::Device(error) => error,
    }
}

/// Queues a write of `sectors` at `lba` on `queue`, whose buffer must be `bytes` long
/// ([`device::submit_write_exact`]): a buffer of another length is [`wrong_length`].
pub(crate) fn submit_write_exact(
    disk: &mut dyn BlockDevice,
    queue: usize,
    at: (u64, u32),
    bytes: usize,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<Tag, DeviceError> {
    device::submit_write_exact(disk, queue, at, bytes, fill).map_err(device_error)
}

/// Waits for read `tag` on `queue` and copies its data into `into`
/// ([`device::wait_for_read_exact`]): data of another length is [`wrong_length`].
pub(crate) fn wait_for_read_exact(
    disk: &mut dyn BlockDevice,
    queue: usize,
    tag: Tag,
    into: &mut [u8],
) -> Result<(), DeviceError> {
    device::wait_for_read_exact(disk, queue, tag, into).map_err(device_error)
}
