//! Devices from C: the device list, disks and network interfaces. C gets copies: block
//! data and frames go between the caller's buffer and the driver's DMA buffers (the Rust
//! interface lends those in place instead).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::{c_int, c_uint, c_void};
use core::ops::Range;

use rexo_api::device::{self, ExactError};
use rexo_api::{BlockDevice, DeviceError, DeviceInfo, DeviceKind, Filter, Kernel, NetDevice};
use rexo_pktfilter::{Atom, MAX_ATOMS};

use crate::handles::{Object, Outcome, insert, take, with_object};
use crate::{
    REXO_EBADF, REXO_EBUSY, REXO_EINVAL, REXO_EIO, REXO_EMSGSIZE, REXO_ENOMEM, REXO_EPERM,
    REXO_ERANGE, REXO_OK, c_bytes, c_bytes_mut, error_code, with_app, with_kernel,
};

/// Bytes of `struct rexo_device`.
pub const DEVICE_ENTRY: usize = 112;
/// Bytes of `struct rexo_block_info`.
pub const BLOCK_INFO: usize = 16;
/// Bytes of `struct rexo_net_info`.
pub const NET_INFO: usize = 12;
/// Bytes of `struct rexo_atom`.
pub const ATOM: usize = 12;
/// Bytes of `struct rexo_device`'s `driver` (NUL-terminated; `about` takes the rest).
const DRIVER: usize = 16;

/// The code of `rexo.h` for a device error.
pub(crate) fn device_code(error: DeviceError) -> c_int {
    match error {
        DeviceError::OutOfRange { .. } => REXO_ERANGE,
        DeviceError::TooLong { .. } | DeviceError::TooShort { .. } => REXO_EMSGSIZE,
        DeviceError::QueueFull => REXO_EBUSY,
        DeviceError::NoMemory => REXO_ENOMEM,
        DeviceError::Revoked
        | DeviceError::Denied { .. }
        | DeviceError::Withdrawn
        | DeviceError::Unbound => REXO_EPERM,
        _ => REXO_EIO,
    }
}

/// `text` as a NUL-terminated C string in `out` (cut short to fit).
fn put_str(out: &mut [u8], text: &str) {
    let len = text.len().min(out.len() - 1);
    out[..len].copy_from_slice(&text.as_bytes()[..len]);
    out[len..].fill(0);
}

/// `struct rexo_device` for `device` (native byte order, as C reads it).
pub fn encode_device(device: &DeviceInfo) -> [u8; DEVICE_ENTRY] {
    let mut out = [0u8; DEVICE_ENTRY];
    let kind: u32 = match device.kind {
        DeviceKind::Net => 1,
        DeviceKind::Block => 2,
        DeviceKind::Keyboard => 3,
    };
    let index = u32::try_from(device.index).unwrap_or(u32::MAX);
    out[0..4].copy_from_slice(&kind.to_ne_bytes());
    out[4..8].copy_from_slice(&index.to_ne_bytes());
    out[8..10].copy_from_slice(&device.address.segment.to_ne_bytes());
    out[10] = device.address.bus;
    out[11] = device.address.device;
    out[12] = device.address.function;
    out[13] = u8::from(device.holder.is_some());
    put_str(&mut out[16..16 + DRIVER], device.driver);
    put_str(&mut out[16 + DRIVER..], &device.about);
    out
}

/// The atoms of `struct rexo_atom atoms[count]` as a filter: `REXO_EINVAL` for a bad one
/// (width not 1, 2 or 4, value outside the mask, reserved byte set, none at all,
/// contradicting atoms).
pub fn decode_filter(bytes: &[u8]) -> Result<Filter, c_int> {
    let atoms = bytes.chunks_exact(ATOM).map(|a| {
        let word = |at: usize| u32::from_ne_bytes([a[at], a[at + 1], a[at + 2], a[at + 3]]);
        let atom = Atom {
            offset: u16::from_ne_bytes([a[0], a[1]]),
            width: a[2],
            mask: word(4),
            value: word(8),
        };
        if a[3] == 0 {
            Ok(atom)
        } else {
            Err(REXO_EINVAL)
        }
    });
    let atoms = atoms.collect::<Result<Vec<_>, _>>()?;
    Filter::new(atoms).map_err(|_| REXO_EINVAL)
}

/// A handle for what `open` gave, or the error's code.
fn open_handle(open: impl FnOnce(&Kernel) -> Result<Object, rexo_api::ApiError>) -> i64 {
    with_app(|kernel, owner| match open(kernel) {
        Ok(object) => insert(owner, object),
        Err(error) => error_code(error).into(),
    })
}

/// Runs `transfer` on the disk `id` of the app running on this core, for `count` blocks:
/// a count of 0 is `REXO_EINVAL` before the handle is looked up (argument errors first).
fn with_transfer(
    id: i64,
    count: u32,
    transfer: impl FnOnce(&mut dyn BlockDevice) -> Outcome,
) -> c_int {
    if count == 0 {
        return REXO_EINVAL;
    }
    with_block(id, transfer)
}

/// Runs `f` on the disk `id` of the app running on this core.
fn with_block(id: i64, f: impl FnOnce(&mut dyn BlockDevice) -> Outcome) -> c_int {
    with_object(id, |_, object| match object {
        Object::Block(disk) => f(disk.as_mut()),
        _ => Err(REXO_EBADF),
    })
}

/// Checks a transfer of `count` blocks (not 0: [`with_transfer`] refuses that) at `block`
/// through a buffer of `len` bytes, then runs `request` on each piece the disk takes in
/// one request: its first block, its blocks, and its bytes in the buffer.
fn in_requests(
    disk: &mut dyn BlockDevice,
    (block, count, len): (u64, u32, usize),
    mut request: impl FnMut(&mut dyn BlockDevice, u64, u32, Range<usize>) -> Result<(), c_int>,
) -> Outcome {
    let info = disk.info();
    let size = info.sector_size as usize;
    if len as u64 != u64::from(count) * size as u64 {
        return Err(REXO_EINVAL);
    }
    if block
        .checked_add(count.into())
        .is_none_or(|end| end > info.sectors)
    {
        return Err(REXO_ERANGE);
    }
    let most = info.max_sectors.max(1);
    let step = most as usize * size;
    for (at, start) in (block..).step_by(most as usize).zip((0..len).step_by(step)) {
        let end = (start + step).min(len);
        request(disk, at, ((end - start) / size) as u32, start..end)?;
    }
    Ok(REXO_OK)
}

/// Waits for request `tag` (queue 0), handing its data to `done`.
fn wait(
    disk: &mut dyn BlockDevice,
    tag: Result<rexo_api::Tag, DeviceError>,
    done: &mut dyn FnMut(&[u8]),
) -> Result<(), c_int> {
    let tag = tag.map_err(device_code)?;
    device::wait_for(disk, 0, tag, done).map_err(device_code)
}

/// `int rexo_devices(struct rexo_device *list, size_t max)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_devices(list: *mut c_void, max: usize) -> c_int {
    let Some(bytes) = max.checked_mul(DEVICE_ENTRY) else {
        return REXO_EINVAL;
    };
    let out = match c_bytes_mut(list, bytes) {
        Ok(out) => out,
        Err(code) => return code,
    };
    let devices = with_kernel(|kernel, _| kernel.devices());
    for (slot, device) in out.chunks_exact_mut(DEVICE_ENTRY).zip(&devices) {
        slot.copy_from_slice(&encode_device(device));
    }
    c_int::try_from(devices.len()).unwrap_or(c_int::MAX)
}

/// `int64_t rexo_block_open(unsigned index)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_block_open(index: c_uint) -> i64 {
    open_handle(|kernel| kernel.open_block(index as usize).map(Object::Block))
}

/// `int rexo_block_info(int64_t disk, struct rexo_block_info *info)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_block_info(disk: i64, info: *mut c_void) -> c_int {
    let out = match c_bytes_mut(info, BLOCK_INFO) {
        Ok(out) => out,
        Err(code) => return code,
    };
    with_block(disk, |disk| {
        let info = disk.info();
        out[0..8].copy_from_slice(&info.sectors.to_ne_bytes());
        out[8..12].copy_from_slice(&info.sector_size.to_ne_bytes());
        out[12..16].copy_from_slice(&info.max_sectors.to_ne_bytes());
        Ok(REXO_OK)
    })
}

/// `int rexo_block_read(int64_t disk, uint64_t block, uint32_t count, void *buf, size_t len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_block_read(
    disk: i64,
    block: u64,
    count: u32,
    buf: *mut c_void,
    len: usize,
) -> c_int {
    let buffer = match c_bytes_mut(buf, len) {
        Ok(buffer) => buffer,
        Err(code) => return code,
    };
    with_transfer(disk, count, |disk| read_blocks(disk, block, count, buffer))
}

/// Reads `count` blocks from `block` into `buffer` (exactly `count` blocks long): data the
/// disk hands over at another length than asked is `REXO_EIO`, nothing of it copied.
fn read_blocks(disk: &mut dyn BlockDevice, block: u64, count: u32, buffer: &mut [u8]) -> Outcome {
    let len = buffer.len();
    in_requests(disk, (block, count, len), |disk, at, blocks, bytes| {
        let tag = disk.submit_read(0, at, blocks).map_err(device_code)?;
        device::wait_for_read_exact(disk, 0, tag, &mut buffer[bytes]).map_err(exact_code)
    })
}

/// `int rexo_block_write(int64_t disk, uint64_t block, uint32_t count, const void *buf,
/// size_t len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_block_write(
    disk: i64,
    block: u64,
    count: u32,
    buf: *const c_void,
    len: usize,
) -> c_int {
    let data = match c_bytes(buf, len) {
        Ok(data) => data,
        Err(code) => return code,
    };
    with_transfer(disk, count, |disk| write_blocks(disk, block, count, data))
}

/// Writes `count` blocks from `data` (exactly `count` blocks long) at `block`, in requests
/// waited for one by one: a buffer the disk hands over at another length than asked is
/// `REXO_EIO` at once, that request withdrawn before the device sees it (earlier requests
/// of the write are already written).
fn write_blocks(disk: &mut dyn BlockDevice, block: u64, count: u32, data: &[u8]) -> Outcome {
    in_requests(
        disk,
        (block, count, data.len()),
        |disk, at, blocks, bytes| {
            let chunk = &data[bytes];
            let tag = device::submit_write_exact(disk, 0, (at, blocks), chunk.len(), &mut |b| {
                b.copy_from_slice(chunk);
            })
            .map_err(exact_code)?;
            wait(disk, Ok(tag), &mut |_| {})
        },
    )
}

/// The code of `rexo.h` for a length-checked transfer's error: another length than asked
/// is `REXO_EIO`.
fn exact_code(error: ExactError) -> c_int {
    match error {
        ExactError::WrongLength(_) => REXO_EIO,
        ExactError::Device(error) => device_code(error),
    }
}

/// What a driver lends a transmit's filler: its buffer, to fill and let go (`true`) or
/// withdraw (`false`).
type Fill<'a> = &'a mut dyn FnMut(&mut [u8]) -> bool;

/// `int rexo_block_flush(int64_t disk)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_block_flush(disk: i64) -> c_int {
    with_block(disk, |disk| {
        let tag = disk.submit_flush(0);
        wait(disk, tag, &mut |_| {}).map(|()| REXO_OK)
    })
}

/// A network interface opened from C, with what its calls need of its info.
pub(crate) struct Interface {
    /// The interface.
    nic: Box<dyn NetDevice>,
    /// Its largest frame in bytes.
    max_frame: usize,
    /// Its receive queues (at least 1): the device, not the app, picks each frame's.
    queues: usize,
    /// The receive queue `rexo_net_receive` tries first: the one after the last that
    /// gave a frame.
    next_queue: usize,
}

impl Interface {
    /// `nic` opened from C.
    fn new(nic: Box<dyn NetDevice>) -> Self {
        let info = nic.info();
        Self {
            nic,
            max_frame: info.max_frame,
            queues: info.queues.max(1),
            next_queue: 0,
        }
    }

    /// Copies one received frame into `buffer` (at least `max_frame` bytes) and returns
    /// its length, or 0 when none waits. Every receive queue is tried, once each,
    /// starting after the one that gave the last frame (so a busy queue cannot starve
    /// the others), and the first with a frame gives one.
    fn receive_copy(&mut self, buffer: &mut [u8]) -> Outcome {
        if buffer.len() < self.max_frame {
            return Err(REXO_EINVAL);
        }
        for step in 0..self.queues {
            let queue = (self.next_queue + step) % self.queues;
            let mut got = None;
            self.nic
                .receive(queue, 1, &mut |frame| {
                    got = Some(match buffer.get_mut(..frame.len()) {
                        Some(out) => {
                            out.copy_from_slice(frame);
                            Ok(c_int::try_from(frame.len()).unwrap_or(c_int::MAX))
                        }
                        None => Err(REXO_EIO),
                    });
                })
                .map_err(device_code)?;
            if let Some(got) = got {
                self.next_queue = (queue + 1) % self.queues;
                return got;
            }
        }
        Ok(0)
    }
}

/// The network interface object for `nic`.
fn net_object(nic: Box<dyn NetDevice>) -> Object {
    Object::Net(Interface::new(nic))
}

/// `int64_t rexo_net_open(unsigned index)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_net_open(index: c_uint) -> i64 {
    open_handle(|kernel| kernel.open_net(index as usize).map(net_object))
}

/// `int64_t rexo_net_bind(unsigned index, const struct rexo_atom *atoms, size_t count)`:
/// more than `MAX_ATOMS` atoms is `REXO_EINVAL` before any is read.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_net_bind(index: c_uint, atoms: *const c_void, count: usize) -> i64 {
    if count > MAX_ATOMS {
        return REXO_EINVAL.into();
    }
    let filter = match c_bytes(atoms, count * ATOM).and_then(decode_filter) {
        Ok(filter) => filter,
        Err(code) => return code.into(),
    };
    open_handle(|kernel| kernel.bind_net(index as usize, &[filter]).map(net_object))
}

/// Runs `f` on the network interface `id` of the app running on this core.
fn with_net(id: i64, f: impl FnOnce(&mut Interface) -> Outcome) -> c_int {
    with_object(id, |_, object| match object {
        Object::Net(interface) => f(interface),
        _ => Err(REXO_EBADF),
    })
}

/// `int rexo_net_info(int64_t nic, struct rexo_net_info *info)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_net_info(nic: i64, info: *mut c_void) -> c_int {
    let out = match c_bytes_mut(info, NET_INFO) {
        Ok(out) => out,
        Err(code) => return code,
    };
    with_net(nic, |interface| {
        let info = interface.nic.info();
        out[0..6].copy_from_slice(&info.mac);
        out[6] = u8::from(info.link_up);
        out[7] = 0;
        let max_frame = u32::try_from(interface.max_frame).unwrap_or(u32::MAX);
        out[8..12].copy_from_slice(&max_frame.to_ne_bytes());
        Ok(REXO_OK)
    })
}

/// `int rexo_net_receive(int64_t nic, void *buf, size_t len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_net_receive(nic: i64, buf: *mut c_void, len: usize) -> c_int {
    let buffer = match c_bytes_mut(buf, len) {
        Ok(buffer) => buffer,
        Err(code) => return code,
    };
    with_net(nic, |interface| interface.receive_copy(buffer))
}

/// `int rexo_net_send(int64_t nic, const void *frame, size_t len)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_net_send(nic: i64, frame: *const c_void, len: usize) -> c_int {
    let data = match c_bytes(frame, len) {
        Ok(data) => data,
        Err(code) => return code,
    };
    with_net(nic, |interface| {
        send_copy(data, interface.max_frame, |fill| {
            interface.nic.transmit_checked(0, len, fill)
        })
    })
}

/// Sends a copy of `data` (of `max_frame` bytes at most) through `transmit`, which lends
/// the driver's buffer to its `fill` (`NetDevice::transmit_checked`): a buffer of another
/// length than asked is `REXO_EIO`, the frame withdrawn unsent.
fn send_copy(
    data: &[u8],
    max_frame: usize,
    transmit: impl FnOnce(Fill<'_>) -> Result<(), DeviceError>,
) -> Outcome {
    DeviceError::check_frame(data.len(), max_frame).map_err(device_code)?;
    let mut wrong_length = false;
    let sent = transmit(&mut |buffer| {
        wrong_length = buffer.len() != data.len();
        if !wrong_length {
            buffer.copy_from_slice(data);
        }
        !wrong_length
    });
    if wrong_length {
        return Err(REXO_EIO);
    }
    sent.map_err(device_code)?;
    Ok(REXO_OK)
}

/// `int rexo_dev_close(int64_t handle)`.
#[unsafe(no_mangle)]
pub extern "C" fn rexo_dev_close(handle: i64) -> c_int {
    with_app(|_, owner| {
        let taken = take(handle, owner, |object| match object {
            Object::Memory(_) | Object::Core(_) | Object::Timer(_) => Err(REXO_EBADF),
            Object::Block(_) | Object::Net(_) => Ok(()),
        });
        taken.map_or_else(|code| code, |_| REXO_OK)
    })
}

#[cfg(test)]
mod tests;
