//! virtio-blk (spec 5.2): every request queue the device offers (VIRTIO_BLK_F_MQ), each
//! request a fixed three-descriptor chain (header, data in the slot's own DMA buffer,
//! status byte), several in flight per queue. With MSI-X, request queue `q` signals
//! through entry `q`, masked except while a core is armed to be woken
//! (`wake_on_completion`).
//!
//! A device that holds a request (a caller's, or one whose holder went) for longer than
//! 10 s from the poll that published it (not from its submission) is judged stuck, as
//! one whose used ring's index runs past the ring (the queue cannot be read on). A stuck
//! device is reset (status 0, awaited inside that `poll` for up to the transport's reset
//! timeout of 1 s: it then no longer touches the rings or buffers) and initialised again
//! with the features it had, its queues renewed. Only then does the late request fail,
//! with `Timeout`, at its queue's next poll: failed while the device still held it, a
//! write could land after the caller's retry of the same sectors and put the old data
//! back. The slots of abandoned requests come back, and every other request still in
//! flight on any queue fails with `Reset` at its queue's next poll (the cores armed for
//! completions are woken then: no message comes for those). A device
//! that does not come back is given up: `Failed` for every later call. So is a device
//! judged stuck again after 3 resets in a row with no request finished by it in between
//! (one whose used index overruns right after every restart, say), instead of being
//! reset at every poll; a request it finishes starts the count again.
//!
//! The protocol counts in 512-byte units whatever the disk's blocks (spec 5.2.5), but a
//! device with a larger logical block (VIRTIO_BLK_F_BLK_SIZE, `blk_size`; QEMU's
//! `logical_block_size=4096`) fails with IOERR a request not on its blocks: the disk's
//! sectors are then its blocks (`BlockInfo::sector_size`), each request's sector number
//! and length converted to 512-byte units.
//!
//! At power-off and reboot (`BlockDevice::shut_down`) the requests queued are published
//! and drained, then a FLUSH writes the device's cache out when VIRTIO_BLK_F_FLUSH was
//! negotiated (virtio-blk has no shutdown notification of its own).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::device::DISK_SHUT_DOWN;
use rexo_api::{BlockDevice, BlockInfo, Completion, DeviceError, Leaving, Tag};
use rexo_devio::{DeviceFunction, Dma, Found, MsixTable, Platform, QueueWakes};
use rexo_pci::{Address, Function};

use crate::queue::{DESC_NEXT, DESC_WRITE, USED_INDEX_OVERRUN, Virtqueue};
use crate::recovery::{Parts, Recovery, Restart};
use crate::transport::{Transport, promised};

/// Transitional virtio-blk (legacy interface, maybe modern too).
const DEVICE_TRANSITIONAL: u16 = 0x1001;
/// Modern-only virtio-blk (0x1040 + device type 2).
const DEVICE_MODERN: u16 = 0x1042;

/// Feature: `size_max` bounds one data segment.
const F_SIZE_MAX: u64 = 1 << 1;
/// Feature: `seg_max` bounds the data segments of a request.
const F_SEG_MAX: u64 = 1 << 2;
/// Feature: the disk is read-only.
const F_RO: u64 = 1 << 5;
/// Feature: `blk_size` gives the disk's logical block size.
const F_BLK_SIZE: u64 = 1 << 6;
/// Feature: the device takes flush requests (it may cache writes).
const F_FLUSH: u64 = 1 << 9;
/// Feature: `num_queues` request queues.
const F_MQ: u64 = 1 << 12;

/// Device configuration: capacity in 512-byte sectors (u64).
const CONFIG_CAPACITY: usize = 0;
/// Device configuration: the largest data segment in bytes (u32, with `F_SIZE_MAX`).
const CONFIG_SIZE_MAX: usize = 8;
/// Device configuration: the most data segments per request (u32, with `F_SEG_MAX`).
const CONFIG_SEG_MAX: usize = 12;
/// Device configuration: the logical block size in bytes (u32, with `F_BLK_SIZE`).
const CONFIG_BLK_SIZE: usize = 20;
/// Device configuration: request queues (u16, with `F_MQ`).
const CONFIG_NUM_QUEUES: usize = 34;

/// Request type: read.
const T_IN: u32 = 0;
/// Request type: write.
const T_OUT: u32 = 1;
/// Request type: flush.
const T_FLUSH: u32 = 4;
/// Request type: the device's ID string (20 bytes).
const T_GET_ID: u32 = 8;
/// Completion status: success (IOERR 1 and UNSUPP 2 are failures).
const S_OK: u8 = 0;
/// A status byte the device has not written yet (set before each request).
const S_PENDING: u8 = 0xFF;

/// Bytes per protocol unit: virtio-blk addresses and sizes in 512-byte units whatever
/// the disk's blocks (spec 5.2.5); the disk's sectors are its `blk_size` blocks.
const SECTOR: u32 = 512;
/// The most bytes per request: the size of each slot's data buffer (64 KiB).
const MAX_REQUEST_BYTES: u32 = 64 * 1024;
/// The most requests in flight per queue.
const MAX_DEPTH: u16 = 32;
/// The most request queues used.
const MAX_QUEUES: u16 = 4;
/// Queue entries wanted: three descriptors per request.
const QUEUE_ENTRIES: u16 = 128;
/// Descriptors per request.
const CHAIN: u16 = 3;
/// Bytes per slot in the header block: the 16-byte request header, then the status byte.
const HEADER_STRIDE: usize = 32;
/// Where the status byte is in a slot's header bytes.
const STATUS_AT: usize = 16;
/// Bytes of the ID string `T_GET_ID` returns.
const ID_LEN: usize = 20;
/// How long the device may hold a request. Past it the device is reset, and the request
/// fails with a timeout once the reset is over: only a reset makes sure the device never
/// carries it out later (spec 2.4), over a newer write to the same sectors, say.
const REQUEST_TIMEOUT_NS: u64 = 10_000_000_000;
/// A stuck device: a request held longer than [`REQUEST_TIMEOUT_NS`].
const REQUEST_HELD_TOO_LONG: &str =
    "a request held by the device for longer than the request timeout (10 s)";
/// Every call's answer once the device did not come back from a reset, or was judged
/// stuck again after [`RESETS_IN_A_ROW`](crate::recovery::RESETS_IN_A_ROW) resets with no
/// request finished by it.
const GIVEN_UP: DeviceError = DeviceError::Failed(
    "virtio-blk: the device did not come back from a reset, or stayed stuck through resets \
     (given up)",
);
/// How long the ID request at start may take, in milliseconds.
const ID_TIMEOUT_MS: u64 = 1_000;

/// Whether this driver takes `function`.
pub fn matches(function: &Function) -> bool {
    crate::transport::is_device(function, DEVICE_TRANSITIONAL, DEVICE_MODERN)
}

/// Starts the disk on `function`.
pub fn probe(mut function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    let msix = crate::transport::msix_first(&mut function, "virtio-blk", "completions polled only");
    let transport = Transport::new(&mut function)?;
    let platform = function.platform();
    let wanted = F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_RO | F_FLUSH | F_MQ;
    let features = transport.negotiate(platform, wanted, 0)?;
    let disk = VirtioBlk::new(&function, transport.clone(), platform, features, msix)
        .inspect_err(|_| transport.fail())?;
    log::info!(
        "virtio-blk {}: {} interface, {} sectors of {} bytes, {} queue(s) x {}, {} sectors per request{}{}, {}",
        function.address(),
        if disk.transport.is_modern() {
            "modern"
        } else {
            "legacy"
        },
        disk.capacity,
        disk.sector_size,
        disk.queues.len(),
        disk.depth,
        disk.max_sectors,
        if disk.flush {
            ", write cache (flush)"
        } else {
            ", write-through"
        },
        if disk.read_only { ", read-only" } else { "" },
        if disk.wakes.any() {
            "completions can wake a core through MSI-X"
        } else {
            "completions polled only"
        },
    );
    Ok(vec![Found::Block(Box::new(disk))])
}

/// The largest request in sectors of `sector_size` bytes: the slot buffer's, within
/// `size_max` (one data segment per request); `None` when that is under a sector.
pub fn request_limit(size_max: Option<u32>, sector_size: u32) -> Option<u32> {
    let bytes = size_max.map_or(MAX_REQUEST_BYTES, |max| max.min(MAX_REQUEST_BYTES));
    match bytes / sector_size {
        0 => None,
        sectors => Some(sectors),
    }
}

/// The disk's sector size when the device gives `blk_size` (VIRTIO_BLK_F_BLK_SIZE) or
/// not: that size when it is a power of two from 512 bytes to a request's buffer
/// (64 KiB), else 512; `Err` with a `blk_size` outside that, ignored (the caller says
/// so): the protocol's 512-byte units then, on which the device may refuse requests not
/// on its blocks.
pub fn sector_size(blk_size: Option<u32>) -> Result<u32, u32> {
    match blk_size {
        None => Ok(SECTOR),
        Some(size) if size.is_power_of_two() && (SECTOR..=MAX_REQUEST_BYTES).contains(&size) => {
            Ok(size)
        }
        Some(refused) => Err(refused),
    }
}

/// The device's ID string: the bytes up to the first NUL, printable ASCII only
/// (anything else stops it), trailing spaces dropped.
pub fn decode_id(raw: &[u8]) -> String {
    let text: String = raw
        .iter()
        .take_while(|&&b| (0x20..0x7F).contains(&b))
        .map(|&b| char::from(b))
        .collect();
    String::from(text.trim_end())
}

/// Checks `sectors` at `lba` lie on a disk of `capacity` sectors (before anything is
/// submitted) and fit a request of `max_sectors`; returns their bytes, at `sector_size`
/// bytes a sector.
pub fn check_range(
    lba: u64,
    sectors: u32,
    capacity: u64,
    max_sectors: u32,
    sector_size: u32,
) -> Result<usize, DeviceError> {
    let out_of_range = DeviceError::OutOfRange {
        lba,
        sectors: u64::from(sectors),
        capacity,
    };
    let end = lba.checked_add(u64::from(sectors)).ok_or(out_of_range)?;
    if sectors == 0 || end > capacity {
        return Err(out_of_range);
    }
    if sectors > max_sectors {
        return Err(DeviceError::Unsupported(
            "requests over max_sectors (split them)",
        ));
    }
    Ok(sectors as usize * sector_size as usize)
}

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    /// Reads `bytes` into the slot's buffer.
    Read { bytes: usize },
    /// Writes `bytes` of the slot's buffer.
    Write { bytes: usize },
    /// Flushes the device's write cache.
    Flush,
    /// Reads the ID string.
    Identify,
}

impl Operation {
    /// The request type in its header.
    fn kind(self) -> u32 {
        match self {
            Self::Read { .. } => T_IN,
            Self::Write { .. } => T_OUT,
            Self::Flush => T_FLUSH,
            Self::Identify => T_GET_ID,
        }
    }

    /// Bytes of data it moves.
    fn bytes(self) -> usize {
        match self {
            Self::Read { bytes } | Self::Write { bytes } => bytes,
            Self::Flush => 0,
            Self::Identify => ID_LEN,
        }
    }

    /// Its name in error messages.
    fn name(self) -> &'static str {
        match self {
            Self::Read { .. } => "virtio-blk read",
            Self::Write { .. } => "virtio-blk write",
            Self::Flush => "virtio-blk flush",
            Self::Identify => "virtio-blk get-id",
        }
    }
}

/// Where a request slot stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Unused.
    Free,
    /// Queued for the device, or with it.
    Busy {
        /// The caller's tag.
        tag: Tag,
        /// What it does.
        operation: Operation,
        /// When the poll that published it to the device found it published (ns; its
        /// timeouts count from there), or `None` until then.
        published_at: Option<u64>,
    },
    /// Held by the device past [`REQUEST_TIMEOUT_NS`]: the poll that finds it so resets
    /// the device, and the reset fails it with the timeout (not before: the device may
    /// still carry it out until then).
    Late {
        /// The caller's tag.
        tag: Tag,
        /// What it does.
        operation: Operation,
        /// When it was published to the device (ns).
        since: u64,
    },
    /// Given up by its holder (or the ID request at start, unanswered in time); the slot
    /// comes back when the device returns it (or is reset).
    Abandoned {
        /// When it was published to the device (ns).
        since: u64,
    },
    /// Finished without the device (a flush the device does not need: no `error`), or
    /// in flight when the device was reset (`error`: the timeout of a late request,
    /// else [`DeviceError::Reset`]); reported at the next poll.
    Done {
        /// The caller's tag.
        tag: Tag,
        /// How it failed.
        error: Option<DeviceError>,
    },
}

impl Slot {
    /// Gives up the request in this slot (its holder went, or the ID request at start
    /// was not answered in time): one published to the device (busy, or late) becomes
    /// [`Slot::Abandoned`], counted from its publication (`unpublished` gives the time
    /// for one not yet stamped), so its slot comes back when the device returns it or
    /// is reset and its answer, or a reset's timeout, is never handed over. Any other
    /// slot stays as it is.
    fn abandon(&mut self, unpublished: impl FnOnce() -> u64) {
        match *self {
            Self::Busy { published_at, .. } => {
                *self = Self::Abandoned {
                    since: published_at.unwrap_or_else(unpublished),
                }
            }
            Self::Late { since, .. } => *self = Self::Abandoned { since },
            Self::Free | Self::Abandoned { .. } | Self::Done { .. } => {}
        }
    }
}

/// What one poll of a request queue did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Polled {
    /// Completions handed over.
    handed: usize,
    /// Of those, requests the device finished (the others failed at a reset or
    /// finished without it).
    answered: usize,
    /// Why the device is judged stuck, if it is: [`REQUEST_HELD_TOO_LONG`], or the
    /// virtqueue's fault (a used index past the ring).
    stuck: Option<&'static str>,
}

/// One request queue and its slots.
struct RequestQueue {
    /// The virtqueue; slot `s` owns descriptors `3s`, `3s + 1`, `3s + 2`.
    vq: Virtqueue,
    /// Each slot's request header and status byte, [`HEADER_STRIDE`] apart.
    headers: Dma,
    /// Each slot's data buffer.
    data: Vec<Dma>,
    /// Each slot's state.
    slots: Vec<Slot>,
    /// Free slots.
    free: Vec<u16>,
    /// The tag of the next request.
    next_tag: Tag,
    /// A read the device finished with a used length short of its data and status
    /// byte fails: on the modern interface (legacy devices are known to set the length
    /// wrong, so it is not read there: spec 2.7.8.2).
    check_used_len: bool,
}

impl RequestQueue {
    /// Every block of DMA memory the device is given for this queue.
    fn memory_mut(&mut self) -> impl Iterator<Item = &mut Dma> {
        [self.vq.memory_mut(), &mut self.headers]
            .into_iter()
            .chain(&mut self.data)
    }

    /// The request queue on `vq`, with `depth` slots of `buffer` bytes each (DMA memory
    /// from `platform`); `check_used_len` on the modern interface.
    fn new(
        platform: &'static dyn Platform,
        vq: Virtqueue,
        depth: u16,
        buffer: usize,
        check_used_len: bool,
    ) -> Result<Self, DeviceError> {
        let data = (0..depth)
            .map(|_| Dma::new(platform, buffer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            vq,
            headers: Dma::new(platform, usize::from(depth) * HEADER_STRIDE)?,
            data,
            slots: vec![Slot::Free; usize::from(depth)],
            free: (0..depth).rev().collect(),
            next_tag: 0,
            check_used_len,
        })
    }

    /// Links every slot's chain once (only lengths and flags change per request).
    fn link(&mut self) {
        for slot in 0..self.slots.len() as u16 {
            let head = slot * CHAIN;
            let header = self.headers.phys() + u64::from(slot) * HEADER_STRIDE as u64;
            let data = self.data[usize::from(slot)].phys();
            self.vq
                .set_descriptor(head, header, 16, DESC_NEXT, head + 1);
            self.vq
                .set_descriptor(head + 1, data, 0, DESC_NEXT, head + 2);
            self.vq
                .set_descriptor(head + 2, header + STATUS_AT as u64, 1, DESC_WRITE, 0);
        }
    }

    /// Queues `operation` at `sector` (in 512-byte units) in a free slot (`fill` writes a
    /// write's data, or withdraws it: the slot goes back free, untouched by the device);
    /// the device is notified at the next [`poll`](Self::poll), where its timeouts start.
    fn submit(
        &mut self,
        operation: Operation,
        sector: u64,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<Tag, DeviceError> {
        let bytes = operation.bytes();
        let slot = self.free.pop().ok_or(DeviceError::QueueFull)?;
        if let Operation::Write { .. } = operation
            && !fill(self.data[usize::from(slot)].bytes_mut(0, bytes))
        {
            self.free.push(slot);
            return Err(DeviceError::Withdrawn);
        }
        let head = slot * CHAIN;
        let at = usize::from(slot) * HEADER_STRIDE;
        self.headers.write32(at, operation.kind());
        self.headers.write32(at + 4, 0);
        self.headers.write64(at + 8, sector);
        self.headers.write8(at + STATUS_AT, S_PENDING);
        if bytes == 0 {
            // Header straight to status.
            self.vq.set_link(head, DESC_NEXT, head + 2);
        } else {
            let device_writes = if let Operation::Write { .. } = operation {
                0
            } else {
                DESC_WRITE
            };
            self.vq.set_link(head, DESC_NEXT, head + 1);
            self.vq.set_length(head + 1, bytes as u32);
            self.vq
                .set_link(head + 1, DESC_NEXT | device_writes, head + 2);
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        self.slots[usize::from(slot)] = Slot::Busy {
            tag,
            operation,
            published_at: None,
        };
        self.vq.push(head);
        Ok(tag)
    }

    /// Records a request finished without the device.
    fn submit_done(&mut self) -> Result<Tag, DeviceError> {
        let slot = self.free.pop().ok_or(DeviceError::QueueFull)?;
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        self.slots[usize::from(slot)] = Slot::Done { tag, error: None };
        Ok(tag)
    }

    /// Whether a slot holds an abandoned request (the device may still have it).
    fn has_abandoned(&self) -> bool {
        self.slots
            .iter()
            .any(|state| matches!(state, Slot::Abandoned { .. }))
    }

    /// The device was reset and this queue renewed: abandoned slots come back, late
    /// requests fail with their timeout and the others in flight with
    /// [`DeviceError::Reset`], at the next poll.
    fn after_reset(&mut self) {
        for (slot, state) in self.slots.iter_mut().enumerate() {
            match *state {
                Slot::Busy { tag, .. } => {
                    *state = Slot::Done {
                        tag,
                        error: Some(DeviceError::Reset),
                    }
                }
                Slot::Late { tag, operation, .. } => {
                    *state = Slot::Done {
                        tag,
                        error: Some(DeviceError::Timeout {
                            what: operation.name(),
                            ms: REQUEST_TIMEOUT_NS / 1_000_000,
                        }),
                    }
                }
                Slot::Abandoned { .. } => {
                    *state = Slot::Free;
                    self.free.push(slot as u16);
                }
                Slot::Free | Slot::Done { .. } => {}
            }
        }
    }

    /// Publishes the requests queued since the last poll, hands every finished request
    /// to `done`, then marks the late ones, each counted from the poll that published
    /// it (`now` gives the time, read only when something is in flight; the walk that
    /// looks for late requests stamps the new ones): they fail once the device is
    /// reset. Returns how many were handed over, and why the device is stuck, if it is
    /// (a request held past its timeout, abandoned or not, or a used ring the device
    /// broke: the queue cannot be read on).
    fn poll(&mut self, now: &dyn Fn() -> u64, done: Completion<'_>) -> Result<Polled, DeviceError> {
        self.vq.publish();
        let mut count = 0;
        let mut answered = 0;
        // Only heads the device holds come back (the queue drops any other): a slot's
        // head, `CHAIN * slot`, of a request in flight (busy, late or abandoned).
        let fault = loop {
            let used = match self.vq.pop_used() {
                Ok(Some(used)) => used,
                Ok(None) => break None,
                // The used ring cannot be read on (its index ran past it): only a
                // reset of the device makes the queue usable again.
                Err(DeviceError::Failed(USED_INDEX_OVERRUN)) => break Some(USED_INDEX_OVERRUN),
                Err(e) => return Err(e),
            };
            let slot = usize::from(used.id / CHAIN);
            if let Slot::Busy { tag, operation, .. } | Slot::Late { tag, operation, .. } =
                self.slots[slot]
            {
                let status = self.headers.bytes(slot * HEADER_STRIDE + STATUS_AT, 1)[0];
                let result = match (status, operation) {
                    // The data the device wrote, and no byte past it: the rest of the
                    // slot's buffer still holds an earlier request's (maybe an earlier
                    // holder's) data (spec 2.7.8.2: nothing past `len` may be assumed).
                    // The used length counts the status byte too, so a whole read
                    // reports one more than its data.
                    (S_OK, Operation::Read { .. } | Operation::Identify)
                        if self.check_used_len && (used.len as usize) <= operation.bytes() =>
                    {
                        Err(DeviceError::Status {
                            what: "virtio-blk read (the device wrote fewer bytes than asked; \
                                   status: the used length, its status byte included)",
                            status: used.len,
                        })
                    }
                    (S_OK, Operation::Read { .. } | Operation::Identify) => {
                        Ok(self.data[slot].bytes(0, operation.bytes()))
                    }
                    (S_OK, _) => Ok(&[][..]),
                    (status, operation) => Err(DeviceError::Status {
                        what: operation.name(),
                        status: u32::from(status),
                    }),
                };
                done(tag, result);
                count += 1;
                answered += 1;
            }
            self.slots[slot] = Slot::Free;
            self.free.push(slot as u16);
        };
        let mut clock = None;
        let mut held_too_long = false;
        for (slot, state) in self.slots.iter_mut().enumerate() {
            match *state {
                Slot::Done { tag, error } => {
                    done(tag, error.map_or(Ok(&[]), Err));
                    count += 1;
                    *state = Slot::Free;
                    self.free.push(slot as u16);
                }
                Slot::Busy {
                    tag,
                    operation,
                    published_at: None,
                } => {
                    // Published by this poll: the device has had it from now on.
                    *state = Slot::Busy {
                        tag,
                        operation,
                        published_at: Some(*clock.get_or_insert_with(now)),
                    };
                }
                Slot::Busy {
                    tag,
                    operation,
                    published_at: Some(since),
                } => {
                    let now = *clock.get_or_insert_with(now);
                    if now.saturating_sub(since) > REQUEST_TIMEOUT_NS {
                        // Not failed yet: the device may still carry it out until it is
                        // reset.
                        *state = Slot::Late {
                            tag,
                            operation,
                            since,
                        };
                        held_too_long = true;
                    }
                }
                Slot::Late { .. } => held_too_long = true,
                Slot::Abandoned { since } => {
                    let now = *clock.get_or_insert_with(now);
                    held_too_long |= now.saturating_sub(since) > REQUEST_TIMEOUT_NS;
                }
                Slot::Free => {}
            }
        }
        let stuck = fault.or(held_too_long.then_some(REQUEST_HELD_TOO_LONG));
        Ok(Polled {
            handed: count,
            answered,
            stuck,
        })
    }
}

/// A virtio disk.
pub struct VirtioBlk {
    /// The device's registers.
    transport: Transport,
    /// The clock.
    platform: &'static dyn Platform,
    /// Where the device is on the PCI bus (for messages).
    address: Address,
    /// Sectors on the disk.
    capacity: u64,
    /// Bytes per sector: the device's `blk_size`, or 512 (a whole number of the
    /// protocol's 512-byte units either way).
    sector_size: u32,
    /// The most sectors per request.
    max_sectors: u32,
    /// Requests in flight per queue.
    depth: u16,
    /// The device takes flushes.
    flush: bool,
    /// Writes are refused.
    read_only: bool,
    /// The ID string, if the device gave one.
    model: String,
    /// The request queues.
    queues: Vec<RequestQueue>,
    /// Completion wake-ups: queue `q` through MSI-X entry `q`.
    wakes: QueueWakes,
    /// Resets of a stuck device, and whether it was given up ([`GIVEN_UP`]).
    recovery: Recovery,
    /// Shut down for a power-off or reboot ([`BlockDevice::shut_down`]): every later
    /// request, poll and arming is refused with [`DISK_SHUT_DOWN`].
    shut_down: bool,
}

impl VirtioBlk {
    /// Sets up the queues of a device whose features are negotiated, and starts it.
    fn new(
        function: &DeviceFunction,
        transport: Transport,
        platform: &'static dyn Platform,
        features: u64,
        msix: Option<MsixTable>,
    ) -> Result<Self, DeviceError> {
        let has = |bit: u64| features & bit != 0;
        let capacity_units =
            transport
                .config64(CONFIG_CAPACITY)
                .ok_or(DeviceError::Unsupported(
                    "the capacity in the device configuration",
                ))?;
        let blk_size = promised(
            has(F_BLK_SIZE),
            || transport.config32(CONFIG_BLK_SIZE),
            "blk_size in the device configuration (VIRTIO_BLK_F_BLK_SIZE)",
        )?;
        let sector_size = sector_size(blk_size).unwrap_or_else(|refused| {
            log::warn!(
                "virtio-blk {}: blk_size {refused} ignored (not a power of two from 512 to \
                 65536 bytes): 512-byte sectors, which the device may refuse off its blocks",
                function.address()
            );
            SECTOR
        });
        // The capacity counts 512-byte units; a partial last sector is not used.
        let capacity = capacity_units / u64::from(sector_size / SECTOR);
        let size_max = promised(
            has(F_SIZE_MAX),
            || transport.config32(CONFIG_SIZE_MAX),
            "size_max in the device configuration (VIRTIO_BLK_F_SIZE_MAX)",
        )?;
        let max_sectors = request_limit(size_max, sector_size)
            .ok_or(DeviceError::Unsupported("a size_max of at least a sector"))?;
        let seg_max = promised(
            has(F_SEG_MAX),
            || transport.config32(CONFIG_SEG_MAX),
            "seg_max in the device configuration (VIRTIO_BLK_F_SEG_MAX)",
        )?;
        // Each request has one data segment: any seg_max from 1 up allows it.
        if seg_max == Some(0) {
            return Err(DeviceError::Unsupported("a seg_max of at least 1"));
        }
        let queue_count = promised(
            has(F_MQ),
            || transport.config16(CONFIG_NUM_QUEUES),
            "num_queues in the device configuration (VIRTIO_BLK_F_MQ)",
        )?
        .map_or(1, |count| count.clamp(1, MAX_QUEUES));
        let mut queues = Vec::new();
        let mut vectors = Vec::new();
        let mut depth = MAX_DEPTH;
        let name = alloc::format!("virtio-blk {}", function.address());
        for index in 0..queue_count {
            let vq = transport.allocate_queue(function, index, QUEUE_ENTRIES)?;
            vectors.push(transport.queue_entry(msix.as_ref(), index, index, &name));
            depth = depth.min(vq.size() / CHAIN);
            queues.push(vq);
        }
        if depth == 0 {
            return Err(DeviceError::Unsupported("queues of at least 3 entries"));
        }
        let buffer = max_sectors as usize * sector_size as usize;
        let modern = transport.is_modern();
        let queues = queues
            .into_iter()
            .map(|vq| RequestQueue::new(platform, vq, depth, buffer, modern))
            .collect::<Result<Vec<_>, _>>()?;
        let recovery = Recovery::new(features);
        let mut disk = Self {
            address: function.address(),
            capacity,
            sector_size,
            max_sectors,
            depth,
            flush: has(F_FLUSH),
            read_only: has(F_RO),
            model: String::new(),
            queues,
            transport,
            platform,
            wakes: QueueWakes::new(msix, vectors),
            recovery,
            shut_down: false,
        };
        // From here on, dropping `disk` resets the device before its memory goes.
        disk.start()?;
        disk.model = disk.identify();
        Ok(disk)
    }

    /// Gives the device its queues and starts it.
    fn start(&mut self) -> Result<(), DeviceError> {
        for queue in &mut self.queues {
            queue.link();
            self.transport.enable_queue(&queue.vq)?;
        }
        self.transport.driver_ok();
        Ok(())
    }

    /// Asks the ID string (empty when the device has none or fails the request).
    fn identify(&mut self) -> String {
        let platform = self.platform;
        let start = platform.now_ns();
        let queue = &mut self.queues[0];
        let Ok(tag) = queue.submit(Operation::Identify, 0, &mut |_| true) else {
            return String::new();
        };
        // A device stuck already (a used ring it broke) answers nothing more: the wait
        // ends there, as at the deadline, with no ID.
        let id = rexo_devio::wait_for(platform, "the device's ID", ID_TIMEOUT_MS, || {
            let mut id = None;
            let polled = queue.poll(&|| platform.now_ns(), &mut |done, result| {
                if done == tag {
                    id = Some(result.map(decode_id).unwrap_or_default());
                }
            });
            if id.is_some() {
                return Ok(id);
            }
            match polled?.stuck {
                None => Ok(None),
                Some(why) => Err(DeviceError::Failed(why)),
            }
        })
        .ok();
        // A device that did not answer keeps the slot until it does (or is reset), the
        // request abandoned whether it is still busy or was judged late by the last
        // look (held past REQUEST_TIMEOUT_NS while the core was away).
        if id.is_none() {
            for slot in &mut queue.slots {
                if let Slot::Busy { tag: held, .. } | Slot::Late { tag: held, .. } = *slot
                    && held == tag
                {
                    slot.abandon(|| start);
                }
            }
        }
        id.unwrap_or_default()
    }

    /// Forgets the requests in flight on every queue (the holder changed): those not
    /// yet published are taken back unseen and free their slots, as finished ones do;
    /// the device's keep their slots until it returns them.
    fn forget_requests(&mut self) {
        let platform = self.platform;
        for queue in &mut self.queues {
            for head in queue.vq.withdraw_unpublished() {
                let slot = head / CHAIN;
                queue.slots[usize::from(slot)] = Slot::Free;
                queue.free.push(slot);
            }
            for (slot, state) in queue.slots.iter_mut().enumerate() {
                match *state {
                    // Published (the rest were withdrawn), so stamped by the poll that
                    // published it (else counted from now).
                    Slot::Busy { .. } | Slot::Late { .. } => state.abandon(|| platform.now_ns()),
                    Slot::Done { .. } => {
                        *state = Slot::Free;
                        queue.free.push(slot as u16);
                    }
                    Slot::Free | Slot::Abandoned { .. } => {}
                }
            }
        }
    }

    /// [`DISK_SHUT_DOWN`] once the disk was shut down, the given-up error once the
    /// device was given up.
    fn usable(&self) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        self.recovery.usable()
    }

    /// Queue `queue` of a usable device, or [`DeviceError::NoSuchQueue`].
    fn queue(&mut self, queue: usize) -> Result<&mut RequestQueue, DeviceError> {
        self.usable()?;
        self.queues
            .get_mut(queue)
            .ok_or(DeviceError::NoSuchQueue(queue))
    }

    /// Checks `sectors` at `lba` lie on the disk and fit one request; their bytes.
    fn check_range(&self, lba: u64, sectors: u32) -> Result<usize, DeviceError> {
        check_range(
            lba,
            sectors,
            self.capacity,
            self.max_sectors,
            self.sector_size,
        )
    }

    /// The request header's sector number (512-byte units) of the disk's sector `lba`
    /// (checked to lie on the disk, so the product fits).
    fn protocol_sector(&self, lba: u64) -> u64 {
        lba * u64::from(self.sector_size / SECTOR)
    }
}

impl BlockDevice for VirtioBlk {
    /// Unmasks the queue's MSI-X entry, pointed at `core`: the device's next used-ring
    /// message on it wakes the core (the avail ring never suppresses them). Disarmed
    /// (masked again) by the next poll that hands over a completion, or by `None`.
    fn wake_on_completion(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        self.usable()?;
        self.wakes.arm(queue, core)
    }

    /// Takes back the requests the device was not yet shown, then drains the ones it has:
    /// polls until each is returned (its completion dropped) or, held past 10 s
    /// (`REQUEST_TIMEOUT_NS`), freed by a device reset (or the device is given up). So none
    /// lands on the disk after the holder changed.
    fn abandon_requests(&mut self) {
        self.wakes.disarm_all();
        self.forget_requests();
        let queues = self.queues.len();
        rexo_devio::drain_abandoned(self, queues, |disk| {
            disk.recovery.usable().is_ok() && disk.queues.iter().any(RequestQueue::has_abandoned)
        });
    }

    /// The requests queued since the last poll are published (a poll of each queue, its
    /// completions dropped), then drained as [`abandon_requests`](Self::abandon_requests)
    /// drains them (each returned, or freed by a device reset when held past 10 s,
    /// `REQUEST_TIMEOUT_NS`); then, when VIRTIO_BLK_F_FLUSH was negotiated, one FLUSH on
    /// queue 0 writes the device's cache out (every write has completed by then, on
    /// whichever queue), waited for as any request (a device that holds it past the timeout
    /// is reset, and the flush fails). virtio-blk has no shutdown notification of its own:
    /// the same at a reboot as at a power-off. A device given up is not told. The disk
    /// refuses everything after.
    fn shut_down(&mut self, _: Leaving) -> Result<(), DeviceError> {
        let told = self.usable().and_then(|()| {
            for queue in 0..self.queues.len() {
                let _ = self.poll(queue, &mut |_, _| {});
            }
            self.abandon_requests();
            if !self.flush {
                return Ok(());
            }
            let tag = self.submit_flush(0)?;
            rexo_api::device::wait_for(self, 0, tag, &mut |_| {})
        });
        self.shut_down = true;
        told
    }

    fn info(&self) -> BlockInfo {
        BlockInfo {
            sectors: self.capacity,
            sector_size: self.sector_size,
            max_sectors: self.max_sectors,
            queues: self.queues.len(),
            depth: usize::from(self.depth),
            model: self.model.clone(),
        }
    }

    /// Queues the read; the device is notified at the next [`poll`](Self::poll), so a
    /// batch of submissions costs one doorbell.
    fn submit_read(&mut self, queue: usize, lba: u64, sectors: u32) -> Result<Tag, DeviceError> {
        let bytes = self.check_range(lba, sectors)?;
        let sector = self.protocol_sector(lba);
        self.queue(queue)?
            .submit(Operation::Read { bytes }, sector, &mut |_| true)
    }

    /// Queues the write (notified at the next [`poll`](Self::poll), as reads).
    fn submit_write_checked(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<Tag, DeviceError> {
        let bytes = self.check_range(lba, sectors)?;
        if self.read_only {
            return Err(DeviceError::Unsupported("writes (the disk is read-only)"));
        }
        let sector = self.protocol_sector(lba);
        self.queue(queue)?
            .submit(Operation::Write { bytes }, sector, fill)
    }

    /// Queues the flush (a device without VIRTIO_BLK_F_FLUSH writes through: the
    /// flush completes at once).
    fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError> {
        let flush = self.flush;
        let queue = self.queue(queue)?;
        if flush {
            queue.submit(Operation::Flush, 0, &mut |_| true)
        } else {
            queue.submit_done()
        }
    }

    /// Hands over the queue's completions; when the device is stuck (a request held
    /// past its timeout, or its used index past the ring), resets it, or gives it up
    /// after too many resets in a row (the module's documentation says how).
    fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
        let platform = self.platform;
        let polled = self.queue(queue)?.poll(&|| platform.now_ns(), done)?;
        if polled.answered > 0 {
            self.recovery.device_finished();
        }
        if let Some(why) = polled.stuck {
            self.recover(why)?;
        }
        if polled.handed > 0 {
            self.wakes.spent(queue);
        }
        Ok(polled.handed)
    }
}

impl Restart for VirtioBlk {
    const NAME: &'static str = "virtio-blk";
    const GIVEN_UP: DeviceError = GIVEN_UP;

    fn parts(&mut self) -> Parts<'_> {
        (
            &mut self.recovery,
            &mut self.wakes,
            &self.transport,
            self.platform,
        )
    }

    /// Every queue renewed with its MSI-X entry, then DRIVER_OK; the abandoned slots
    /// come back and the requests in flight (late ones with their timeout) fail at their
    /// queues' next polls, so the cores armed for completions are woken now (the device
    /// sends no message for those).
    fn renew(&mut self) -> Result<(), DeviceError> {
        for (index, queue) in self.queues.iter_mut().enumerate() {
            self.transport
                .renew_queue(&mut queue.vq, self.wakes.entry(index))?;
        }
        self.start()?;
        for queue in &mut self.queues {
            queue.after_reset();
        }
        self.wakes.wake_all_now();
        Ok(())
    }
}

impl Drop for VirtioBlk {
    /// Resets the device before its rings and buffers are freed; a device whose status
    /// does not read back 0 may still use them, so they are kept for good.
    fn drop(&mut self) {
        if let Err(error) = self.transport.reset(self.platform) {
            log::error!("{} virtio-blk: reset before release: {error}", self.address);
            let queues = self.queues.iter_mut().flat_map(RequestQueue::memory_mut);
            rexo_devio::abandon_to_device(&format_args!("{} virtio-blk", self.address), queues);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{DeviceSide, Doorbell};
    use crate::recovery::RESETS_IN_A_ROW;
    use crate::transport::{
        HostDevice, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FAILED,
        STATUS_FEATURES_OK,
    };
    use rexo_devio::host::{HostPlatform, completions};

    /// A request queue of two 4 KiB slots over host memory, its chains linked, checking
    /// used lengths when `modern`; the test plays the device.
    fn queue_on_host(modern: bool) -> RequestQueue {
        let platform = HostPlatform::leaked();
        let doorbell = Doorbell::Mmio {
            window: rexo_devio::host::registers(4),
            at: 0,
            queue: 0,
        };
        let vq = Virtqueue::new(platform, 0, 16, doorbell).unwrap();
        let mut queue = RequestQueue::new(platform, vq, 2, 4096, modern).unwrap();
        queue.link();
        queue
    }

    /// Polls `queue` once: the completions, as (tag, data or error).
    fn poll_once(queue: &mut RequestQueue) -> Vec<(Tag, Result<Vec<u8>, DeviceError>)> {
        let mut seen = Vec::new();
        queue
            .poll(&|| 0, &mut |tag, result| {
                seen.push((tag, result.map(<[u8]>::to_vec)))
            })
            .unwrap();
        seen
    }

    /// Submits a read of `bytes`, and as the device finishes it with status OK after
    /// writing `written` bytes of `value` and the used length `used_len`: its completion.
    fn read_finished(
        queue: &mut RequestQueue,
        device: &mut DeviceSide,
        bytes: usize,
        (written, value): (usize, u8),
        used_len: u32,
    ) -> Vec<(Tag, Result<Vec<u8>, DeviceError>)> {
        let tag = queue
            .submit(Operation::Read { bytes }, 8, &mut |_| true)
            .unwrap();
        assert_eq!(poll_once(queue), [], "published, not finished");
        let head = device.take(&queue.vq).expect("the read was published");
        let slot = usize::from(head / CHAIN);
        queue.data[slot].bytes_mut(0, written).fill(value);
        queue.headers.write8(slot * HEADER_STRIDE + STATUS_AT, S_OK);
        device.give_back(&mut queue.vq, head.into(), used_len);
        let finished = poll_once(queue);
        assert!(finished.iter().all(|(done, _)| *done == tag));
        finished
    }

    #[test]
    fn a_read_the_device_wrote_short_fails_instead_of_lending_older_bytes() {
        let mut queue = queue_on_host(true);
        let mut device = DeviceSide::default();
        // An earlier request (another holder's, say) left its bytes in every slot.
        for data in &mut queue.data {
            data.bytes_mut(0, 4096).fill(0xAA);
        }
        // Status OK, but only the status byte written: none of the 1024 data bytes.
        let short = read_finished(&mut queue, &mut device, 1024, (0, 0), 1);
        assert!(
            matches!(short[..], [(_, Err(DeviceError::Status { status: 1, .. }))]),
            "{short:?}"
        );
        // 1000 of them: still short.
        let short = read_finished(&mut queue, &mut device, 1024, (1000, 0x55), 1001);
        assert!(matches!(
            short[..],
            [(_, Err(DeviceError::Status { status: 1001, .. }))]
        ));
        // All but one data byte, and the status byte: the used length equals the data
        // asked for, but the last byte would be the earlier request's.
        let short = read_finished(&mut queue, &mut device, 1024, (1023, 0x55), 1024);
        assert!(
            matches!(
                short[..],
                [(_, Err(DeviceError::Status { status: 1024, .. }))]
            ),
            "{short:?}"
        );
        // The data and the status byte: the read completes with what the device wrote.
        let whole = read_finished(&mut queue, &mut device, 1024, (1024, 0x55), 1025);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].1, Ok(vec![0x55; 1024]));
        assert_eq!(queue.free.len(), 2, "every slot back");
    }

    #[test]
    fn a_repeated_used_entry_is_dropped_and_the_rest_handed_over() {
        let mut queue = queue_on_host(false);
        let mut device = DeviceSide::default();
        let first = queue.submit(Operation::Flush, 0, &mut |_| true).unwrap();
        let second = queue.submit(Operation::Flush, 0, &mut |_| true).unwrap();
        assert_eq!(poll_once(&mut queue), []);
        let heads = [device.take(&queue.vq), device.take(&queue.vq)].map(Option::unwrap);
        for head in heads {
            let slot = usize::from(head / CHAIN);
            queue.headers.write8(slot * HEADER_STRIDE + STATUS_AT, S_OK);
        }
        // The first head twice, a head no request has, then the second.
        for id in [heads[0], heads[0], 1, heads[1]] {
            device.give_back(&mut queue.vq, id.into(), 1);
        }
        let done = poll_once(&mut queue);
        assert_eq!(done, [(first, Ok(vec![])), (second, Ok(vec![]))]);
        assert_eq!(queue.vq.stray_used(), 2);
        assert_eq!(queue.free.len(), 2, "every slot back, once");
    }

    /// A started disk of `queues` queues of two 4 KiB slots on a modern device played by
    /// the test (registers and rings in host memory), the device, and the clock.
    fn disk_on_host(queues: u16) -> (VirtioBlk, HostDevice, &'static HostPlatform) {
        disk_of_sectors_on_host(queues, SECTOR)
    }

    /// [`disk_on_host`] with sectors of `sector_size` bytes (at most 4 KiB: a slot's
    /// buffer) and 1000 512-byte units.
    fn disk_of_sectors_on_host(
        queues: u16,
        sector_size: u32,
    ) -> (VirtioBlk, HostDevice, &'static HostPlatform) {
        let platform = HostPlatform::leaked();
        let (device, transport) = HostDevice::modern(16);
        let features = transport.negotiate(platform, 0, 0).unwrap();
        let queues = (0..queues)
            .map(|index| {
                let doorbell = Doorbell::Mmio {
                    window: rexo_devio::host::registers(4),
                    at: 0,
                    queue: index,
                };
                let vq = Virtqueue::new(platform, index, 16, doorbell).unwrap();
                RequestQueue::new(platform, vq, 2, 4096, true).unwrap()
            })
            .collect::<Vec<_>>();
        let count = queues.len();
        let recovery = Recovery::new(features);
        let mut disk = VirtioBlk {
            transport,
            platform,
            address: Address::new(0, 0, 5, 0).unwrap(),
            capacity: 1000 / u64::from(sector_size / SECTOR),
            sector_size,
            max_sectors: 4096 / sector_size,
            depth: 2,
            flush: true,
            read_only: false,
            model: String::new(),
            queues,
            wakes: QueueWakes::new(None, vec![None; count]),
            recovery,
            shut_down: false,
        };
        disk.start().unwrap();
        (disk, device, platform)
    }

    /// Submits two reads on queue 0 of `disk`, which the device takes and never answers,
    /// and lets the timeout pass on `clock`: the next poll of queue 0 resets the device.
    fn lose_every_slot_of_queue_0(disk: &mut VirtioBlk, clock: &HostPlatform) {
        let mut device = DeviceSide::default();
        disk.submit_read(0, 0, 1).unwrap();
        disk.submit_read(0, 8, 1).unwrap();
        assert_eq!(completions(disk, 0), []);
        assert!(device.take(&disk.queues[0].vq).is_some());
        assert!(device.take(&disk.queues[0].vq).is_some());
        clock.advance_clock(REQUEST_TIMEOUT_NS + 1);
    }

    /// The device answers GET_ID while the core is away past the deadline: the answer is
    /// taken by the look after the clock reading that finds the deadline passed (the
    /// wait used to stop on that reading: an empty model, the slot abandoned).
    #[test]
    fn an_id_that_comes_while_the_core_is_away_past_the_deadline_is_taken() {
        use core::sync::atomic::{AtomicU32, Ordering};
        let (mut disk, _device, platform) = disk_on_host(1);
        let queue = &disk.queues[0];
        let used_ring = queue.vq.used_ring_writer(platform);
        let headers = platform.device_view(&queue.headers);
        let data = platform.device_view(&queue.data[0]);
        let readings = AtomicU32::new(0);
        platform.on_clock_reading(move || {
            // Reading 0 is identify's start, 1 the wait's start, 2 the first poll's (the
            // request, slot 0, is published by then). At reading 3, the wait's first look
            // at the clock, the core comes back from far past the deadline, and the device
            // has answered meanwhile.
            if readings.fetch_add(1, Ordering::Relaxed) == 3 {
                platform.advance_clock(2 * ID_TIMEOUT_MS * 1_000_000);
                for (at, &byte) in b"serial-1".iter().enumerate() {
                    data.write8(at, byte);
                }
                headers.write8(STATUS_AT, S_OK);
                used_ring.give_back(0, (ID_LEN + 1) as u32);
            }
        });
        assert_eq!(disk.identify(), "serial-1");
        assert!(
            matches!(disk.queues[0].slots[0], Slot::Free),
            "the slot back"
        );
    }

    /// The core is away past the request timeout while it waits for GET_ID, so the
    /// wait's last look finds the request late (held over 10 s): the ID request is
    /// abandoned all the same, as one still busy is. Its slot comes back when the device
    /// answers (the answer dropped) or, when it never does, at the reset the next poll
    /// makes, and nothing of it is handed to the disk's user. It used to stay late: the
    /// device's answer, or the reset's timeout, was handed over at a later poll as the
    /// completion of a request the user never made.
    #[test]
    fn an_id_request_found_late_by_the_waits_last_look_is_abandoned() {
        use core::sync::atomic::{AtomicU32, Ordering};
        for answered in [true, false] {
            let (mut disk, device, platform) = disk_on_host(1);
            let running = device.status();
            let readings = AtomicU32::new(0);
            platform.on_clock_reading(move || {
                // Reading 0 is identify's start, 1 the wait's start, 2 the first poll's
                // (the request, slot 0, is published then). At reading 3, the wait's first
                // look at the clock, the core comes back from past the request timeout.
                if readings.fetch_add(1, Ordering::Relaxed) == 3 {
                    platform.advance_clock(REQUEST_TIMEOUT_NS + 1);
                }
            });
            assert_eq!(disk.identify(), "", "answered: {answered}");
            assert!(
                matches!(disk.queues[0].slots[0], Slot::Abandoned { .. }),
                "answered: {answered}: {:?}",
                disk.queues[0].slots[0]
            );
            if answered {
                let queue = &mut disk.queues[0];
                queue.headers.write8(STATUS_AT, S_OK);
                queue
                    .vq
                    .used_ring_writer(platform)
                    .give_back(0, (ID_LEN + 1) as u32);
            }
            assert_eq!(completions(&mut disk, 0), [], "answered: {answered}");
            assert_eq!(completions(&mut disk, 0), [], "answered: {answered}");
            assert_eq!(disk.queues[0].free.len(), 2, "answered: {answered}");
            assert_eq!(device.status(), running, "answered: {answered}");
            if !answered {
                // Reset by the poll that found the abandoned request held too long.
                a_read_works_from_ring_index_0(&mut disk);
            }
        }
    }

    #[test]
    fn a_device_holding_requests_past_the_timeout_is_reset_and_used_again() {
        let (mut disk, device, clock) = disk_on_host(2);
        let status = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
        assert_eq!(device.status(), status);
        lose_every_slot_of_queue_0(&mut disk, clock);
        // A flush in flight on queue 1, young.
        let flush = disk.submit_flush(1).unwrap();
        assert_eq!(completions(&mut disk, 1), []);
        // A status the reset and the start after it must overwrite.
        device.set_status(0);
        assert_eq!(completions(&mut disk, 0), [], "the device is reset first");
        assert_eq!(device.status(), status, "started again");
        let timed_out = completions(&mut disk, 0);
        assert_eq!(timed_out.len(), 2);
        assert!(
            timed_out
                .iter()
                .all(|(_, result)| matches!(result, Err(DeviceError::Timeout { .. })))
        );
        assert_eq!(disk.queues[0].free.len(), 2, "the late slots are back");
        // The request in flight on queue 1 fails at its queue's next poll.
        assert_eq!(
            completions(&mut disk, 1),
            [(flush, Err(DeviceError::Reset))]
        );
        assert_eq!(disk.queues[1].free.len(), 2);
        a_read_works_from_ring_index_0(&mut disk);
    }

    /// Checks queue 0 of `disk`, renewed by a reset, starts again at ring index 0 and
    /// works: a read the device (a new one) answers completes with its data.
    fn a_read_works_from_ring_index_0(disk: &mut VirtioBlk) {
        let mut device_side = DeviceSide::default();
        let tag = disk.submit_read(0, 16, 1).unwrap();
        assert_eq!(completions(disk, 0), []);
        answer_the_published_read(disk, &mut device_side);
        assert_eq!(
            device_side.take(&disk.queues[0].vq),
            None,
            "at available index 0"
        );
        assert_eq!(completions(disk, 0), [(tag, Ok(vec![0x77; 512]))]);
    }

    /// Plays the device taking the next read published on queue 0 of `disk` and
    /// answering it: 512 bytes of 0x77, status OK.
    fn answer_the_published_read(disk: &mut VirtioBlk, device_side: &mut DeviceSide) {
        let queue = &mut disk.queues[0];
        let head = device_side.take(&queue.vq).expect("the read was published");
        let slot = usize::from(head / CHAIN);
        queue.data[slot].bytes_mut(0, 512).fill(0x77);
        queue.headers.write8(slot * HEADER_STRIDE + STATUS_AT, S_OK);
        device_side.give_back(&mut queue.vq, head.into(), 513);
    }

    #[test]
    fn a_reset_wakes_the_cores_armed_for_the_requests_it_fails() {
        let (mut disk, _, clock) = disk_on_host(2);
        let (table, _) = clock.msix_table(2);
        disk.wakes = QueueWakes::new(Some(table), vec![Some(0), Some(1)]);
        lose_every_slot_of_queue_0(&mut disk, clock);
        // A flush in flight on queue 1, its core armed and asleep.
        let flush = disk.submit_flush(1).unwrap();
        assert_eq!(completions(&mut disk, 1), []);
        disk.wake_on_completion(1, Some(1)).unwrap();
        assert_eq!(completions(&mut disk, 0), [], "reset");
        assert_eq!(
            clock.take_woken(),
            [1],
            "no message comes for the failed flush"
        );
        assert_eq!(
            completions(&mut disk, 1),
            [(flush, Err(DeviceError::Reset))]
        );
    }

    #[test]
    fn a_request_past_its_timeout_resets_the_device_and_fails_beside_the_ones_it_cut() {
        let (mut disk, device, clock) = disk_on_host(1);
        let running = device.status();
        let late = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        clock.advance_clock(REQUEST_TIMEOUT_NS / 2);
        let young = disk.submit_read(0, 8, 1).unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        device.set_status(0);
        clock.advance_clock(REQUEST_TIMEOUT_NS / 2 + 1);
        // The late read resets the device; then it fails with its timeout, and the young
        // one, cut by the reset, with Reset.
        assert_eq!(completions(&mut disk, 0), []);
        assert_eq!(device.status(), running, "reset and started again");
        let failed = completions(&mut disk, 0);
        assert!(
            matches!(
                failed[..],
                [(timed_out, Err(DeviceError::Timeout { .. })), (cut, Err(DeviceError::Reset))]
                    if timed_out == late && cut == young
            ),
            "{failed:?}"
        );
        assert_eq!(disk.queues[0].free.len(), 2, "every slot back");
        a_read_works_from_ring_index_0(&mut disk);
    }

    #[test]
    fn a_used_index_past_the_ring_resets_the_device() {
        let (mut disk, device, _) = disk_on_host(1);
        let mut device_side = DeviceSide::default();
        let read = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        let head = device_side.take(&disk.queues[0].vq).unwrap();
        // The device's used index runs a ring and one entry ahead of the driver.
        device.set_status(0);
        for _ in 0..=disk.queues[0].vq.size() {
            device_side.give_back(&mut disk.queues[0].vq, head.into(), 513);
        }
        assert_eq!(completions(&mut disk, 0), []);
        assert_ne!(device.status(), 0, "reset and started again");
        assert_eq!(completions(&mut disk, 0), [(read, Err(DeviceError::Reset))]);
        assert_eq!(disk.queues[0].free.len(), 2, "every slot back");
        a_read_works_from_ring_index_0(&mut disk);
    }

    /// Plays a device whose used index on queue 0 of `disk` runs past the ring (more
    /// than a ring ahead of the driver, wherever the driver is).
    fn overrun_the_used_index(disk: &mut VirtioBlk) {
        let mut device_side = DeviceSide::default();
        let vq = &mut disk.queues[0].vq;
        for _ in 0..vq.size() + 2 {
            device_side.give_back(vq, 0, 1);
        }
    }

    #[test]
    fn a_device_stuck_again_after_three_resets_in_a_row_is_given_up() {
        let (mut disk, device, _) = disk_on_host(1);
        for reset in 1..=RESETS_IN_A_ROW {
            // A read in flight, failed by the reset: handed over at the next poll, but
            // not finished by the device, so the count goes on.
            disk.submit_read(0, 0, 1).unwrap();
            overrun_the_used_index(&mut disk);
            device.set_status(0);
            let failed = completions(&mut disk, 0);
            assert!(
                failed
                    .iter()
                    .all(|(_, result)| *result == Err(DeviceError::Reset)),
                "{failed:?}"
            );
            assert_ne!(device.status(), 0, "reset {reset}: started again");
        }
        overrun_the_used_index(&mut disk);
        device.set_status(0);
        assert_eq!(disk.poll(0, &mut |_, _| {}), Err(GIVEN_UP));
        assert_eq!(device.status(), STATUS_FAILED, "given up, not reset again");
        assert_eq!(disk.submit_read(0, 0, 1), Err(GIVEN_UP));
    }

    #[test]
    fn a_request_the_device_finishes_starts_the_count_of_resets_again() {
        let (mut disk, device, _) = disk_on_host(1);
        for _ in 0..RESETS_IN_A_ROW {
            overrun_the_used_index(&mut disk);
            assert_eq!(completions(&mut disk, 0), []);
        }
        a_read_works_from_ring_index_0(&mut disk);
        overrun_the_used_index(&mut disk);
        device.set_status(0);
        assert_eq!(completions(&mut disk, 0), []);
        assert_ne!(device.status(), 0, "reset again, not given up");
    }

    #[test]
    fn a_queue_poll_names_the_rule_that_judged_the_device_stuck() {
        let (mut disk, _, clock) = disk_on_host(1);
        lose_every_slot_of_queue_0(&mut disk, clock);
        let polled = disk.queues[0].poll(&|| clock.now_ns(), &mut |_, _| {});
        let polled = polled.unwrap();
        assert_eq!(
            (polled.handed, polled.stuck),
            (0, Some(REQUEST_HELD_TOO_LONG))
        );
        // One slot held, the other free: the same.
        let (mut disk, _, clock) = disk_on_host(1);
        disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(completions(&mut disk, 0), [], "published");
        clock.advance_clock(REQUEST_TIMEOUT_NS + 1);
        let polled = disk.queues[0].poll(&|| clock.now_ns(), &mut |_, _| {});
        let polled = polled.unwrap();
        assert_eq!(
            (polled.handed, polled.stuck),
            (0, Some(REQUEST_HELD_TOO_LONG))
        );
    }

    /// A write of X the device sits on past its timeout, then the caller's write of Y to
    /// the same sector: X fails only once the device is reset, so it can never land over
    /// Y. It failed with the timeout at 10 s while the device still held it (with a slot
    /// free, the device was reset only at 20 s).
    #[test]
    fn a_write_held_past_its_timeout_fails_only_once_the_device_is_reset() {
        let (mut disk, device, clock) = disk_on_host(1);
        let running = device.status();
        let mut device_side = DeviceSide::default();
        let stale = disk
            .submit_write(0, 8, 1, &mut |buffer| buffer.fill(b'X'))
            .unwrap();
        assert_eq!(completions(&mut disk, 0), [], "published, not finished");
        let stale_head = device_side.take(&disk.queues[0].vq).unwrap();
        // A status only a reset and the start after it overwrite.
        device.set_status(0);
        clock.advance_clock(REQUEST_TIMEOUT_NS + 1);
        // Each completion handed over, with the device's status at that moment.
        let mut handed = Vec::new();
        let mut poll = |disk: &mut VirtioBlk| {
            disk.poll(0, &mut |tag, result| {
                handed.push((tag, result.map(<[u8]>::to_vec), device.status()))
            })
            .unwrap()
        };
        assert_eq!(poll(&mut disk), 0, "the device is reset first");
        assert_eq!(device.status(), running, "reset and started again");
        // The reset device, its rings renewed, answers X after all: nothing it may do
        // once reset (spec 2.4), and dropped, not taken for the write's success.
        let mut after_reset = DeviceSide::default();
        let header = usize::from(stale_head / CHAIN) * HEADER_STRIDE;
        disk.queues[0].headers.write8(header + STATUS_AT, S_OK);
        after_reset.give_back(&mut disk.queues[0].vq, stale_head.into(), 1);
        assert_eq!(poll(&mut disk), 1);
        let timeout = DeviceError::Timeout {
            what: "virtio-blk write",
            ms: REQUEST_TIMEOUT_NS / 1_000_000,
        };
        assert_eq!(
            handed,
            [(stale, Err(timeout), running)],
            "X failed only once the device was reset"
        );
        assert_eq!(disk.queues[0].vq.stray_used(), 1, "the late answer dropped");
        // Y goes in, and completes.
        let newer = disk
            .submit_write(0, 8, 1, &mut |buffer| buffer.fill(b'Y'))
            .unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        let queue = &mut disk.queues[0];
        let head = after_reset.take(&queue.vq).expect("Y was published");
        let slot = usize::from(head / CHAIN);
        assert_eq!(queue.headers.read64(slot * HEADER_STRIDE + 8), 8);
        assert_eq!(queue.data[slot].bytes(0, 512), [b'Y'; 512]);
        queue.headers.write8(slot * HEADER_STRIDE + STATUS_AT, S_OK);
        after_reset.give_back(&mut queue.vq, head.into(), 1);
        assert_eq!(completions(&mut disk, 0), [(newer, Ok(vec![]))]);
    }

    #[test]
    fn a_write_whose_holder_went_held_past_the_timeout_is_drained_by_a_reset() {
        let (mut disk, device, clock) = disk_on_host(1);
        let running = device.status();
        disk.submit_write(0, 8, 1, &mut |buffer| buffer.fill(b'X'))
            .unwrap();
        assert_eq!(completions(&mut disk, 0), [], "published, not finished");
        device.set_status(0);
        // The device sits on the write; 100 ms pass at each clock reading.
        clock.on_clock_reading(move || clock.advance_clock(100_000_000));
        // Its holder goes: the drain polls until the write is past its timeout, and the
        // reset that follows frees its slot.
        let start = clock.now_ns();
        disk.abandon_requests();
        let drained_in = clock.now_ns() - start;
        assert!(
            (REQUEST_TIMEOUT_NS..REQUEST_TIMEOUT_NS + 1_000_000_000).contains(&drained_in),
            "drained in {drained_in} ns"
        );
        assert_eq!(device.status(), running, "reset and started again");
        assert_eq!(disk.queues[0].free.len(), 2, "both slots free");
    }

    #[test]
    fn a_request_times_out_counting_from_the_poll_that_publishes_it() {
        let (mut disk, device, clock) = disk_on_host(1);
        let mut device_side = DeviceSide::default();
        let tag = disk.submit_read(0, 0, 1).unwrap();
        // The caller polls only after twice the timeout (a long compute step): the poll
        // that publishes the read neither fails it nor resets the device.
        clock.advance_clock(2 * REQUEST_TIMEOUT_NS + 1);
        device.set_status(0);
        assert_eq!(completions(&mut disk, 0), [], "published, not timed out");
        assert_eq!(device.status(), 0, "no reset");
        // The device carries it out, and the read completes with its data.
        answer_the_published_read(&mut disk, &mut device_side);
        assert_eq!(completions(&mut disk, 0), [(tag, Ok(vec![0x77; 512]))]);
        // A read published and then not answered still times out.
        let late = disk.submit_read(0, 8, 1).unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        clock.advance_clock(REQUEST_TIMEOUT_NS + 1);
        assert_eq!(completions(&mut disk, 0), [], "the device is reset");
        let timed_out = completions(&mut disk, 0);
        assert!(
            matches!(timed_out[..], [(tag, Err(DeviceError::Timeout { .. }))] if tag == late),
            "{timed_out:?}"
        );
    }

    #[test]
    fn abandoning_withdraws_unpublished_requests_and_drains_the_devices() {
        let (mut disk, device, _) = disk_on_host(1);
        let mut device_side = DeviceSide::default();
        // A read the device has and finishes, and a write queued behind it, unseen.
        disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        let head = device_side.take(&disk.queues[0].vq).unwrap();
        disk.submit_write(0, 8, 1, &mut |buffer| buffer.fill(0x55))
            .unwrap();
        let queue = &mut disk.queues[0];
        let slot = usize::from(head / CHAIN);
        queue.headers.write8(slot * HEADER_STRIDE + STATUS_AT, S_OK);
        device_side.give_back(&mut queue.vq, head.into(), 513);
        device.set_status(0);
        disk.abandon_requests();
        assert_eq!(
            disk.queues[0].free.len(),
            2,
            "both slots back before it returns"
        );
        assert_eq!(device.status(), 0, "no reset: the device answered");
        // The next holder's poll publishes: the withdrawn write is not in it.
        assert_eq!(completions(&mut disk, 0), []);
        assert_eq!(
            device_side.take(&disk.queues[0].vq),
            None,
            "the write never reached the device"
        );
        let tag = disk.submit_read(0, 16, 1).unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        answer_the_published_read(&mut disk, &mut device_side);
        assert_eq!(completions(&mut disk, 0), [(tag, Ok(vec![0x77; 512]))]);
    }

    /// Plays a device that finishes (status OK) every request of `disk`'s queue 0 at the
    /// clock reading after its submission, which the drain's polls make once they have
    /// published it. The request types it saw, in order.
    fn device_finishing_requests(
        disk: &VirtioBlk,
        platform: &'static HostPlatform,
    ) -> alloc::sync::Arc<spin::Mutex<Vec<u32>>> {
        let seen = alloc::sync::Arc::new(spin::Mutex::new(Vec::new()));
        let record = seen.clone();
        let queue = &disk.queues[0];
        let headers = platform.device_view(&queue.headers);
        let used_ring = queue.vq.used_ring_writer(platform);
        let slots = queue.slots.len();
        platform.on_clock_reading(move || {
            for slot in 0..slots {
                let at = slot * HEADER_STRIDE;
                if headers.read8(at + STATUS_AT) == S_PENDING {
                    record.lock().push(headers.read32(at));
                    headers.write8(at + STATUS_AT, S_OK);
                    used_ring.give_back((slot * usize::from(CHAIN)) as u32, 1);
                }
            }
        });
        seen
    }

    #[test]
    fn a_shutdown_publishes_what_was_queued_then_flushes_when_the_device_takes_flushes() {
        for takes_flushes in [true, false] {
            let (mut disk, _device, platform) = disk_on_host(1);
            disk.flush = takes_flushes;
            let mut device_side = DeviceSide::default();
            let seen = device_finishing_requests(&disk, platform);
            // A write queued and never polled: its holder went quiet.
            disk.submit_write(0, 8, 1, &mut |b| b.fill(0x55)).unwrap();
            assert_eq!(disk.shut_down(Leaving::PowerOff), Ok(()));
            let expected: &[u32] = if takes_flushes {
                &[T_OUT, T_FLUSH]
            } else {
                &[T_OUT]
            };
            assert_eq!(*seen.lock(), expected, "flushes: {takes_flushes}");
            let published = core::iter::from_fn(|| device_side.take(&disk.queues[0].vq));
            assert_eq!(published.count(), expected.len(), "all published");
            rexo_api::testing::assert_refuses_everything(&mut disk);
        }
    }

    #[test]
    fn a_device_that_does_not_reset_keeps_its_memory_and_one_that_resets_gives_it_back() {
        for (stuck, live_after) in [(true, 8), (false, 0)] {
            let (mut disk, _device, platform) = disk_on_host(2);
            if stuck {
                disk.transport = Transport::never_resetting();
            }
            assert_eq!(
                platform.live(),
                8,
                "per queue its rings, headers and 2 buffers"
            );
            drop(disk);
            assert_eq!(platform.live(), live_after, "stuck: {stuck}");
        }
    }

    #[test]
    fn a_device_that_does_not_come_back_from_a_reset_is_given_up() {
        let (mut disk, device, clock) = disk_on_host(1);
        lose_every_slot_of_queue_0(&mut disk, clock);
        // The device no longer offers VERSION_1: the features cannot be had again.
        device.offer(false);
        // The late reads are never failed with a timeout: the device may still run them.
        let mut seen = 0;
        let polled = disk.poll(0, &mut |_, _| seen += 1);
        assert_eq!((polled, seen), (Err(GIVEN_UP), 0));
        assert_ne!(device.status() & STATUS_FAILED, 0);
        assert_eq!(disk.submit_read(0, 0, 1), Err(GIVEN_UP));
        assert_eq!(disk.submit_flush(0), Err(GIVEN_UP));
        assert_eq!(disk.poll(0, &mut |_, _| seen += 1), Err(GIVEN_UP));
        assert_eq!(disk.wake_on_completion(0, Some(0)), Err(GIVEN_UP));
        assert_eq!(seen, 0);
        assert_eq!(
            disk.shut_down(Leaving::PowerOff),
            Err(GIVEN_UP),
            "not told at power-off"
        );
        assert_eq!(disk.submit_read(0, 0, 1), Err(DISK_SHUT_DOWN));
    }

    #[test]
    fn a_withdrawn_write_is_never_published_and_frees_its_slot() {
        let mut queue = queue_on_host(true);
        let mut device = DeviceSide::default();
        let write = Operation::Write { bytes: 512 };
        for _ in 0..3 {
            let withdrawn = queue.submit(write, 8, &mut |buffer| {
                buffer.fill(0x55);
                false
            });
            assert_eq!(withdrawn, Err(DeviceError::Withdrawn));
        }
        assert_eq!(poll_once(&mut queue), []);
        assert_eq!(device.take(&queue.vq), None, "nothing reached the device");
        for _ in 0..2 {
            queue.submit(write, 8, &mut |_| true).unwrap();
        }
        assert_eq!(poll_once(&mut queue), []);
        assert!(device.take(&queue.vq).is_some() && device.take(&queue.vq).is_some());
    }

    #[test]
    fn legacy_used_lengths_are_not_read() {
        let mut queue = queue_on_host(false);
        let mut device = DeviceSide::default();
        let whole = read_finished(&mut queue, &mut device, 512, (512, 0x33), 0);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].1, Ok(vec![0x33; 512]));
    }

    #[test]
    fn request_limit_respects_size_max() {
        assert_eq!(request_limit(None, SECTOR), Some(128));
        assert_eq!(request_limit(Some(4096), SECTOR), Some(8));
        assert_eq!(request_limit(Some(u32::MAX), SECTOR), Some(128));
        assert_eq!(request_limit(Some(100), SECTOR), None);
        // In sectors of 4 KiB.
        assert_eq!(request_limit(None, 4096), Some(16));
        assert_eq!(request_limit(Some(8192), 4096), Some(2));
        assert_eq!(request_limit(Some(4095), 4096), None);
    }

    #[test]
    fn ranges_past_the_end_are_refused() {
        assert_eq!(check_range(0, 8, 100, 128, SECTOR), Ok(4096));
        assert_eq!(check_range(92, 8, 100, 128, SECTOR), Ok(4096));
        assert_eq!(check_range(92, 8, 100, 16, 4096), Ok(32768));
        for (lba, sectors) in [(93, 8), (100, 1), (0, 0), (u64::MAX, 2)] {
            assert!(matches!(
                check_range(lba, sectors, 100, 128, SECTOR),
                Err(DeviceError::OutOfRange { .. })
            ));
        }
        assert!(matches!(
            check_range(0, 129, 1000, 128, SECTOR),
            Err(DeviceError::Unsupported(_))
        ));
    }

    /// A device's `blk_size` is the disk's sector size when usable (a power of two from
    /// 512 bytes to a request's buffer), else ignored for 512: it was never read, and a
    /// disk of 4 KiB logical blocks was driven in 512-byte sectors the device refuses.
    #[test]
    fn blk_size_is_the_sector_size_when_usable() {
        assert_eq!(sector_size(None), Ok(SECTOR));
        for usable in [512, 1024, 4096, 65536] {
            assert_eq!(sector_size(Some(usable)), Ok(usable));
        }
        for refused in [0, 1, 256, 3000, 4097, 131_072] {
            assert_eq!(sector_size(Some(refused)), Err(refused));
        }
    }

    /// On a disk of 4 KiB blocks a request's sector number and length are the disk's
    /// sectors in the protocol's 512-byte units (QEMU with `logical_block_size=4096`
    /// answered IOERR to every request the driver sent in 512-byte sectors that was not
    /// on its blocks).
    #[test]
    fn a_disk_of_4_kib_sectors_addresses_the_device_in_512_byte_units() {
        let (mut disk, _device, _) = disk_of_sectors_on_host(1, 4096);
        let info = disk.info();
        assert_eq!(
            (info.sectors, info.sector_size, info.max_sectors),
            (125, 4096, 1)
        );
        let mut device_side = DeviceSide::default();
        let tag = disk.submit_read(0, 3, 1).unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        let queue = &mut disk.queues[0];
        let head = device_side.take(&queue.vq).expect("the read was published");
        let slot = usize::from(head / CHAIN);
        let header = slot * HEADER_STRIDE;
        assert_eq!(queue.headers.read64(header + 8), 24, "sector 3 of 4 KiB");
        queue.data[slot].bytes_mut(0, 4096).fill(0x77);
        queue.headers.write8(header + STATUS_AT, S_OK);
        device_side.give_back(&mut queue.vq, head.into(), 4097);
        assert_eq!(completions(&mut disk, 0), [(tag, Ok(vec![0x77; 4096]))]);
        // A write: the whole sector lent, at the sector's place.
        disk.submit_write(0, 124, 1, &mut |buffer| {
            assert_eq!(buffer.len(), 4096);
            buffer.fill(0x55);
        })
        .unwrap();
        assert_eq!(completions(&mut disk, 0), []);
        let queue = &disk.queues[0];
        let head = device_side
            .take(&queue.vq)
            .expect("the write was published");
        let header = usize::from(head / CHAIN) * HEADER_STRIDE;
        assert_eq!(
            queue.headers.read64(header + 8),
            992,
            "the last whole 4 KiB"
        );
        assert!(matches!(
            disk.submit_read(0, 125, 1),
            Err(DeviceError::OutOfRange { .. })
        ));
    }

    #[test]
    fn id_strings_decode() {
        assert_eq!(decode_id(b"QM00001\0\0\0\0\0\0\0\0\0\0\0\0\0"), "QM00001");
        assert_eq!(decode_id(b"exactly-twenty-chars"), "exactly-twenty-chars");
        assert_eq!(decode_id(b"disk  \0junk"), "disk");
        assert_eq!(decode_id(&[0; 20]), "");
        assert_eq!(decode_id(b"ab\xffcd"), "ab");
    }
}
