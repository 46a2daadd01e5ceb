//! Devices as apps and library OSes get them: a network interface is a receive ring to
//! poll and a transmit ring to fill, a disk is a queue of block requests; the frames and
//! blocks live in the driver's DMA buffers and are lent to the app in place, never
//! copied between the device and the app. An app opens a device through
//! [`Kernel::open_net`](crate::Kernel::open_net) or
//! [`Kernel::open_block`](crate::Kernel::open_block) and holds it alone until it drops
//! the handle (or the kernel revokes it, after which every call says
//! [`DeviceError::Revoked`]).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use rexo_pci::{Address, PciError};

/// Why a device or its driver refused or failed a request. The device and the rest of
/// the system keep running unless the variant says the device stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// A base address register is unusable (zero, impossible size, wrong kind).
    BadBar {
        /// The BAR.
        index: u8,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Configuration space could not be reached.
    Config(PciError),
    /// No memory for DMA buffers or rings, or for the kernel's copy of a request (an
    /// ordered write's data).
    NoMemory,
    /// The device lacks something the driver needs (named).
    Unsupported(&'static str),
    /// The device did not answer in time.
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long the driver waited, in milliseconds.
        ms: u64,
    },
    /// The device completed a request with an error status.
    Status {
        /// The request or register.
        what: &'static str,
        /// The device's status value.
        status: u32,
    },
    /// The device returned an index outside its ring (a device or driver fault); the
    /// entry was ignored.
    BadIndex {
        /// The ring.
        what: &'static str,
        /// The index it gave.
        index: u32,
        /// The ring's size.
        size: u32,
    },
    /// A frame longer than the interface carries.
    TooLong {
        /// Bytes asked for.
        len: usize,
        /// The most the interface takes.
        max: usize,
    },
    /// A frame shorter than an Ethernet header.
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// A block range past the end of the disk, or not whole sectors.
    OutOfRange {
        /// First sector asked for.
        lba: u64,
        /// Sectors asked for.
        sectors: u64,
        /// Sectors on the disk.
        capacity: u64,
    },
    /// Every slot of the ring is in use; poll completions and retry.
    QueueFull,
    /// The device has no queue of that number.
    NoSuchQueue(usize),
    /// The handle was revoked by the kernel (or the device removed).
    Revoked,
    /// The device reported a fatal state and stopped (named).
    Failed(&'static str),
    /// The driver reset the device to recover from a fault while the request was in
    /// flight: it was not done, or not known to be (a write may or may not have reached
    /// the medium). The device works on; submit the request again.
    Reset,
    /// The disk's extent table does not let the app touch this sector (protected disk
    /// blocks: `Kernel::disk_extents`).
    Denied {
        /// The first sector refused.
        sector: u64,
        /// Whether it was a write.
        write: bool,
    },
    /// The frame or disk write was filled but withdrawn before the device saw it: on a
    /// shared interface, the frame's source is not one the sender's filters let it send
    /// from ([`Kernel::bind_net`](crate::Kernel::bind_net)), counted and never sent; or
    /// the fill itself withdrew it ([`NetDevice::send_frame`],
    /// [`BlockDevice::submit_write_checked`]).
    Withdrawn,
    /// A frame given in more segments than the interface gathers, or than the queue
    /// could ever hold at once (a virtio-net queue pair with fewer transmit buffers).
    TooManySegments {
        /// Segments given.
        segments: usize,
        /// The most the interface takes ([`MAX_SEGMENTS`], or the queue's fewer).
        max: usize,
    },
    /// A frame segment of no bytes.
    EmptySegment {
        /// Which segment (from 0).
        index: usize,
    },
    /// A frame given to [`NetDevice::send_tcp_segmented`] that the device cannot cut into
    /// segments (named); it was not sent.
    NotSegmentable(&'static str),
    /// An ordered write was not written: a request submitted before it on its queue (an
    /// ordered write among them) failed, so the disk would hold it without what it
    /// depends on ([`BlockDevice::submit_write_ordered`]).
    DependencyFailed,
    /// The queue's interrupt binding (its `InterruptCap`) was returned or revoked: the
    /// source no longer wakes this lease's cores, and arming it again is refused for the
    /// rest of the lease. The device still works by polling.
    Unbound,
    /// Arming the queue's wake-up would bind its interrupt source past the kernel's
    /// budget of bindings at once, `max` ([`MAX_INTERRUPT_BINDINGS`](crate::MAX_INTERRUPT_BINDINGS),
    /// counted over every app's leases): nothing was armed or bound. The device still
    /// works by polling; arming again may succeed once other bindings have gone
    /// (returned, or their leases ended).
    TooManyInterruptBindings {
        /// The most bindings the kernel holds at once.
        max: usize,
    },
    /// Called from inside the app's own closure (a `deliver`, `fill` or `done`) of a
    /// device call on the same device, whose lock that call holds on this core: waiting
    /// for it would never end. Nothing was done; make the call after the closure
    /// returns.
    Reentered,
}

/// The most segments one frame may be sent in ([`NetDevice::transmit_gather`]).
pub const MAX_SEGMENTS: usize = 8;

/// What a queue pair's own handle ([`NetDevice::split_queues`]) answers, on every call,
/// once the device failed on the pair (virtio-net: a used index run past one of its
/// rings, or a transmit queue it stopped returning frames from; e1000e: a transmit unit
/// that stopped, or that held frames with the link down) until the whole device is
/// reset; the
/// handle cannot reset it itself. The next receive, send or `transmit_pending` through
/// the whole interface, on any of its queues (`transmit_pending(0)` will do), resets the
/// device, renewing every pair, after which the handles work again; its other calls
/// (`info`, `wake_on_receive`, `split_queues`) do not. Here, not in the driver, so that
/// a library OS over any driver can tell it from the other failures.
pub const PAIR_BROKEN: DeviceError = DeviceError::Failed(
    "the device failed on this queue pair: the pair fails until the whole device is \
     reset, which the next receive, send or transmit_pending through the whole device does",
);

/// What the machine does once its disks are told ([`BlockDevice::shut_down`]): what the
/// drivers send depends on it, and the kernel's log lines name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaving {
    /// The ACPI sleep request (S5): the power goes.
    PowerOff,
    /// A reset (the ACPI reset register, the keyboard controller, a triple fault), which
    /// may reset the disks or cut their power with the machine's.
    Reboot,
}

impl fmt::Display for Leaving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PowerOff => "power-off",
            Self::Reboot => "reboot",
        })
    }
}

/// What a disk answers to every submission, poll and arming of a wake-up once the kernel
/// shut it down ([`BlockDevice::shut_down`]: the machine is powering off or rebooting),
/// whether or not the shutdown went through: its controller is sent nothing more.
pub const DISK_SHUT_DOWN: DeviceError =
    DeviceError::Failed("the disk was shut down: the machine is powering off or rebooting");

/// The internet checksum, and where a TCP or UDP checksum goes: what a NIC's checksum
/// offload computes ([`NetDevice::transmit_offloaded`]), for drivers and simulated NICs.
pub use rexo_pktfilter::{
    TransportChecksum, TransportSegment, checksum as internet_checksum, transport_checksum,
    transport_segment,
};

/// Bytes of an Ethernet header: the shortest frame an interface sends.
pub const ETHERNET_HEADER: usize = 14;

/// Bytes of the largest untagged Ethernet frame without its FCS: a 1500-byte payload
/// (the standard MTU) after the header.
pub const ETHERNET_MAX_FRAME: usize = ETHERNET_HEADER + 1500;

impl DeviceError {
    /// Checks a frame of `len` bytes for an interface whose largest frame is `max`:
    /// [`DeviceError::TooShort`] under an Ethernet header, [`DeviceError::TooLong`] past
    /// `max` (the check every network driver makes before it touches its ring).
    pub fn check_frame(len: usize, max: usize) -> Result<(), DeviceError> {
        if len < ETHERNET_HEADER {
            Err(DeviceError::TooShort { len })
        } else if len > max {
            Err(DeviceError::TooLong { len, max })
        } else {
            Ok(())
        }
    }

    /// Checks a frame given as segments of the lengths `segments` for an interface whose
    /// largest frame is `max`: [`DeviceError::TooManySegments`] past [`MAX_SEGMENTS`],
    /// [`DeviceError::EmptySegment`] for a segment of no bytes, then
    /// [`DeviceError::check_frame`] on the sum, which it returns.
    pub fn check_segments(segments: &[usize], max: usize) -> Result<usize, DeviceError> {
        if segments.len() > MAX_SEGMENTS {
            return Err(DeviceError::TooManySegments {
                segments: segments.len(),
                max: MAX_SEGMENTS,
            });
        }
        if let Some(index) = segments.iter().position(|&len| len == 0) {
            return Err(DeviceError::EmptySegment { index });
        }
        let len = segments
            .iter()
            .fold(0usize, |sum, &len| sum.saturating_add(len));
        DeviceError::check_frame(len, max).map(|()| len)
    }
}

/// Lends the disjoint byte ranges `ranges` (start, length) of `block` as separate
/// slices, in the order of `ranges` (which may be any order), through `with`: how a
/// driver hands a gathered frame's segments, each in its own DMA buffer, to the filler
/// at once. `None` when ranges overlap, fall outside `block`, or exceed
/// [`MAX_SEGMENTS`].
pub fn lend_ranges<T>(
    block: &mut [u8],
    ranges: &[(usize, usize)],
    with: impl FnOnce(&mut [&mut [u8]]) -> T,
) -> Option<T> {
    if ranges.len() > MAX_SEGMENTS {
        return None;
    }
    let mut order = [0usize; MAX_SEGMENTS];
    for (i, slot) in order.iter_mut().enumerate().take(ranges.len()) {
        *slot = i;
    }
    let order = &mut order[..ranges.len()];
    order.sort_unstable_by_key(|&i| ranges[i].0);
    let mut parts: [&mut [u8]; MAX_SEGMENTS] = Default::default();
    let (mut rest, mut at) = (block, 0usize);
    for &i in order.iter() {
        let (start, len) = ranges[i];
        let skip = start.checked_sub(at)?;
        if skip.checked_add(len)? > rest.len() {
            return None;
        }
        let (_, tail) = rest.split_at_mut(skip);
        let (part, tail) = tail.split_at_mut(len);
        parts[i] = part;
        rest = tail;
        at = start + len;
    }
    Some(with(&mut parts[..ranges.len()]))
}

/// What a NIC with checksum offload needs of a frame just filled in `parts`: with
/// `offload`, and the frame in one segment, the layout of its IPv4 TCP or UDP checksum,
/// with the checksum field seeded with the pseudo-header's sum (the device adds the
/// rest); `None` otherwise (drivers refuse offload of a frame in several segments
/// before filling).
pub fn seed_checksum(parts: &mut [&mut [u8]], offload: bool) -> Option<TransportChecksum> {
    let [frame] = parts else {
        return None;
    };
    let layout = transport_checksum(frame).filter(|_| offload)?;
    let field = layout.start + layout.offset;
    frame[field..field + 2].copy_from_slice(&layout.seed.to_be_bytes());
    Some(layout)
}

/// How a device cuts one TCP/IPv4 frame into segments
/// ([`NetDevice::send_tcp_segmented`]): what virtio-net's header (`hdr_len`, `gso_size`,
/// `csum_start`, `csum_offset`) and an e1000 TCP context descriptor ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegmentation {
    /// Bytes of headers (Ethernet, IPv4, TCP with options) repeated in every segment.
    pub header_len: usize,
    /// Payload bytes per segment (the last carries the rest).
    pub mss: usize,
    /// The TCP checksum's layout, its field seeded for the whole frame's length.
    pub checksum: TransportChecksum,
}

/// Checks `frame`, to be cut into segments of `mss` payload bytes that each fit in
/// `max_frame`, and seeds its TCP checksum field: an unfragmented IPv4 TCP frame whose
/// lengths agree, without SYN, RST or URG (only FIN and PSH may go, on the last
/// segment) and without CWR (virtio 1.1 5.1.6.2.1: a driver should not send one for
/// segmentation without VIRTIO_NET_F_HOST_ECN, which none here negotiates), with 1 to
/// `max_frame - header_len` bytes per segment. Anything else is
/// [`DeviceError::NotSegmentable`] naming why, the frame left as it was.
pub fn tcp_segmentation(
    frame: &mut [u8],
    mss: usize,
    max_frame: usize,
) -> Result<TcpSegmentation, DeviceError> {
    let cut = check_tcp_segmentation(frame, mss, max_frame)?;
    let field = cut.checksum.start + cut.checksum.offset;
    frame[field..field + 2].copy_from_slice(&cut.checksum.seed.to_be_bytes());
    Ok(cut)
}

/// What [`tcp_segmentation`] checks, without seeding the checksum: whether a device
/// takes `frame` to cut at `mss` (a caller that must not lose the frame asks first).
pub fn check_tcp_segmentation(
    frame: &[u8],
    mss: usize,
    max_frame: usize,
) -> Result<TcpSegmentation, DeviceError> {
    let refuse = |why| Err(DeviceError::NotSegmentable(why));
    let Some(checksum) = transport_checksum(frame).filter(|layout| layout.offset == 16) else {
        return refuse("not an unfragmented IPv4 TCP frame with consistent lengths");
    };
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    if frame.len() != ETHERNET_HEADER + total {
        return refuse("the IPv4 total length is not the frame's");
    }
    let tcp = checksum.start;
    let header_len = tcp + usize::from(frame.get(tcp + 12).copied().unwrap_or(0) >> 4) * 4;
    if header_len < tcp + 20 || header_len > frame.len() {
        return refuse("the TCP header length is outside the frame");
    }
    // SYN 0x02, RST 0x04, URG 0x20, CWR 0x80.
    if frame[tcp + 13] & 0xA6 != 0 {
        return refuse("a SYN, RST, URG or CWR segment is not cut");
    }
    if mss == 0 || mss > max_frame.saturating_sub(header_len) {
        return refuse("the segment size is 0 or a segment would not fit in a frame");
    }
    Ok(TcpSegmentation {
        header_len,
        mss,
        checksum,
    })
}

/// Lends `buffer` cut into consecutive segments of the lengths `segments` through
/// `with` (how a device that cannot gather still lets a frame be written in segments,
/// in place in its one buffer). `None` when they exceed [`MAX_SEGMENTS`] or the buffer.
pub fn lend_consecutive<T>(
    buffer: &mut [u8],
    segments: &[usize],
    with: impl FnOnce(&mut [&mut [u8]]) -> T,
) -> Option<T> {
    let mut ranges = [(0usize, 0usize); MAX_SEGMENTS];
    let mut at = 0usize;
    for (range, &len) in ranges.iter_mut().zip(segments) {
        *range = (at, len);
        at = at.checked_add(len)?;
    }
    lend_ranges(buffer, ranges.get(..segments.len())?, with)
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadBar { index, why } => write!(f, "BAR {index} is unusable: {why}"),
            Self::Config(error) => write!(f, "configuration space: {error}"),
            Self::NoMemory => f.write_str("no memory for DMA or for a request's copy"),
            Self::Unsupported(what) => write!(f, "the device lacks {what}"),
            Self::Timeout { what, ms } => write!(f, "no answer to {what} within {ms} ms"),
            Self::Status { what, status } => write!(f, "{what} failed with status {status:#x}"),
            Self::BadIndex { what, index, size } => {
                write!(
                    f,
                    "the device gave index {index} in the {size}-entry {what}"
                )
            }
            Self::TooLong { len, max } => write!(
                f,
                "a {len}-byte frame is longer than the {max} bytes the interface carries"
            ),
            Self::TooShort { len } => {
                write!(f, "a {len}-byte frame is shorter than an Ethernet header")
            }
            Self::OutOfRange {
                lba,
                sectors,
                capacity,
            } => write!(
                f,
                "sectors {lba}..{} are past the end of the disk ({capacity} sectors)",
                lba.saturating_add(*sectors)
            ),
            Self::QueueFull => f.write_str("the queue is full"),
            Self::NoSuchQueue(q) => write!(f, "the device has no queue {q}"),
            Self::Revoked => f.write_str("the device was taken back by the kernel"),
            Self::Failed(why) => write!(f, "the device stopped: {why}"),
            Self::Reset => f.write_str(
                "the device was reset while the request was in flight: it may not have been done",
            ),
            Self::Denied { sector, write } => write!(
                f,
                "the disk's extent table does not let this app {} sector {sector}",
                if *write { "write" } else { "read" }
            ),
            Self::Withdrawn => {
                f.write_str("withdrawn before the device saw it (a frame's source this app may not send from, or a fill that gave up); not done")
            }
            Self::TooManySegments { segments, max } => write!(
                f,
                "a frame in {segments} segments is more than the {max} the interface gathers"
            ),
            Self::EmptySegment { index } => write!(f, "segment {index} of the frame is empty"),
            Self::NotSegmentable(why) => {
                write!(
                    f,
                    "the frame cannot be cut into TCP segments: {why}; it was not sent"
                )
            }
            Self::DependencyFailed => f.write_str(
                "not written: a request submitted before this ordered write on its queue failed",
            ),
            Self::Unbound => f.write_str(
                "the queue's interrupt binding was returned or revoked: poll it, it wakes no core",
            ),
            Self::TooManyInterruptBindings { max } => write!(
                f,
                "the kernel holds its most interrupt bindings ({max}): nothing armed, poll the queue"
            ),
            Self::Reentered => f.write_str(
                "called from inside a closure of a call on the same device, which holds it",
            ),
        }
    }
}

/// What an app knows of a network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInfo {
    /// The MAC address.
    pub mac: [u8; 6],
    /// The largest frame, Ethernet header included, without the FCS (1514 for a 1500 MTU).
    pub max_frame: usize,
    /// Receive/transmit queue pairs.
    pub queues: usize,
    /// Whether the link is up: as the driver reads it at each call, but through an
    /// app's lease as it was when the lease began (the registry answers `info` from a
    /// snapshot, without a lock), so a link lost later does not show here.
    pub link_up: bool,
    /// Whether the device computes the TCP and UDP checksums of IPv4 frames sent with
    /// [`NetDevice::transmit_offloaded`].
    pub checksum_offload: bool,
    /// With TCP segmentation offload (TSO) for IPv4, the largest frame
    /// [`NetDevice::send_tcp_segmented`] takes (the device cuts it into frames of at most
    /// `max_frame`); `None` without.
    pub tcp_segmentation: Option<usize>,
    /// How the device places received flows on its queue pairs, when it does so by a
    /// hash an app can compute (RSS on the 82574); `None` with one pair, or where the
    /// device places flows otherwise (virtio-net: a multi-queue tap sends a flow's
    /// frames to the queue the guest last sent it on, Linux's tun flow table).
    pub receive_steering: Option<ReceiveSteering>,
    /// For a handle of one queue pair ([`NetDevice::split_queues`]), which pair of the
    /// device it is; `None` for the whole device.
    pub pair: Option<usize>,
}

/// Receive-Side Scaling as the 82574 does it (its datasheet, "Receive-Side Scaling";
/// Microsoft's RSS specification): the Toeplitz hash ([`toeplitz_hash`]) of a received
/// IPv4 frame's source and destination addresses, then for TCP its source and
/// destination ports (every other IPv4 frame, UDP included, by its addresses only),
/// whose low 7 bits pick the queue pair in `table`. Non-IP frames go to pair 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveSteering {
    /// The hash key.
    pub key: [u8; 40],
    /// The queue pair of each value of the hash's low 7 bits.
    pub table: [u8; 128],
}

impl ReceiveSteering {
    /// The queue pair an IPv4 frame from `source` to `destination` lands on; `tcp_ports`
    /// are a TCP segment's source and destination ports (`None` for any other frame).
    pub fn pair_of(
        &self,
        source: core::net::Ipv4Addr,
        destination: core::net::Ipv4Addr,
        tcp_ports: Option<(u16, u16)>,
    ) -> usize {
        let mut input = [0u8; 12];
        input[..4].copy_from_slice(&source.octets());
        input[4..8].copy_from_slice(&destination.octets());
        let len = match tcp_ports {
            Some((source_port, destination_port)) => {
                input[8..10].copy_from_slice(&source_port.to_be_bytes());
                input[10..].copy_from_slice(&destination_port.to_be_bytes());
                12
            }
            None => 8,
        };
        let hash = toeplitz_hash(&self.key, &input[..len]);
        usize::from(self.table[hash as usize % self.table.len()])
    }
}

/// The 40-byte example key of Microsoft's RSS specification, which spreads typical
/// address/port mixes evenly (the 82574 driver programs it).
pub const RSS_EXAMPLE_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` (at most 36 bytes) under `key`: for each set bit of
/// the input, most significant first, the 32 key bits starting at that bit's place are
/// added (XOR) into the hash.
pub fn toeplitz_hash(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (index, byte) in input.iter().enumerate() {
        let following = key.get(index + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((following >> (7 - bit)) & 1);
        }
    }
    hash
}

/// A network interface, opened by one app. Frames are whole Ethernet frames without the
/// FCS (the device adds and checks it).
pub trait NetDevice: Send {
    /// The interface.
    fn info(&self) -> NetInfo;
    /// Hands up to `budget` received frames of queue `queue` to `deliver`, each in place
    /// in its DMA buffer (the buffer goes back to the device after `deliver` returns);
    /// returns how many. Never waits. Each frame is at most [`NetInfo::max_frame`] bytes,
    /// so a caller can size its copies by it: a longer one the device took is dropped,
    /// not delivered (the e1000, rtl8139 and virtio-net drivers do so).
    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError>;
    /// Sends one frame on queue `queue`, built in place in segments of the lengths
    /// `segments` (at most [`MAX_SEGMENTS`], none empty): `fill` gets one slice per
    /// segment, each in transmit DMA memory (a device that gathers gives each its own
    /// buffer and descriptor, so headers and payload are written apart and never copied
    /// together), writes them and says whether the frame may go; `false` withdraws it
    /// (the buffers go back unsent) and the call says [`DeviceError::Withdrawn`] (the
    /// kernel checks frames of a shared interface this way without copying them). With
    /// `offload` the device computes the frame's TCP or UDP checksum if it is an IPv4
    /// TCP or UDP frame (whatever its checksum field holds; other frames go as they
    /// are): only where [`NetInfo::checksum_offload`] says so, and only for a frame in
    /// one segment, elsewhere [`DeviceError::Unsupported`]. [`DeviceError::QueueFull`]
    /// when the buffers are in flight (call again: sending reclaims finished buffers
    /// first); [`DeviceError::TooManySegments`] when the queue could never hold the
    /// frame's segments at once, however long one waits. Through a lease or a binding, what `fill` is lent holds zeros or bytes
    /// the same app put there, never another holder's (docs/drivers.md). The calls
    /// below are this one, named.
    fn send_segments(
        &mut self,
        queue: usize,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError>;
    /// Sends one frame of `len` bytes on queue `queue` in one segment:
    /// [`send_segments`](NetDevice::send_segments) with `fill` writing the whole frame.
    fn send_frame(
        &mut self,
        queue: usize,
        len: usize,
        offload: bool,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), DeviceError> {
        self.send_segments(queue, &[len], offload, &mut |parts| match parts {
            [frame] => fill(frame),
            _ => false,
        })
    }
    /// Sends one frame of `len` bytes on queue `queue`: `fill` writes it in place
    /// ([`send_frame`](NetDevice::send_frame) without a last word or offload).
    fn transmit(
        &mut self,
        queue: usize,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), DeviceError> {
        self.send_frame(queue, len, false, &mut |buffer| {
            fill(buffer);
            true
        })
    }
    /// [`send_frame`](NetDevice::send_frame) without offload: `fill` may withdraw.
    fn transmit_checked(
        &mut self,
        queue: usize,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), DeviceError> {
        self.send_frame(queue, len, false, fill)
    }
    /// [`send_frame`](NetDevice::send_frame) with checksum offload.
    fn transmit_offloaded(
        &mut self,
        queue: usize,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), DeviceError> {
        self.send_frame(queue, len, true, fill)
    }
    /// Scatter-gather transmit: one frame in segments of the lengths `segments`, each
    /// written in place by `fill` (its own buffer where the device gathers)
    /// ([`send_segments`](NetDevice::send_segments) without a last word or offload).
    fn transmit_gather(
        &mut self,
        queue: usize,
        segments: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<(), DeviceError> {
        self.send_segments(queue, segments, false, &mut |parts| {
            fill(parts);
            true
        })
    }
    /// Sends one TCP/IPv4 frame of `len` bytes, up to [`NetInfo::tcp_segmentation`],
    /// which the device cuts into segments of at most `max_frame` (TCP segmentation
    /// offload), computing every checksum: `fill` builds the frame in place in one
    /// transmit buffer and returns the payload bytes each segment carries (the
    /// connection's MSS), or `None` to withdraw it ([`DeviceError::Withdrawn`]). The
    /// driver checks the frame with [`tcp_segmentation`] ([`DeviceError::NotSegmentable`]
    /// otherwise); a frame no longer than `max_frame` goes as one frame with checksum
    /// offload. [`DeviceError::Unsupported`] on a device without TSO (the default),
    /// [`DeviceError::TooLong`] past the limit, [`DeviceError::QueueFull`] when every
    /// buffer for such frames is in flight. What `fill` is lent holds what
    /// [`send_segments`](NetDevice::send_segments) says.
    fn send_tcp_segmented(
        &mut self,
        _queue: usize,
        _len: usize,
        _fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported("TCP segmentation offload"))
    }
    /// Frames queued for sending that the device has not finished with.
    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError>;
    /// Arms `queue` so that the next frame arriving on it wakes core `core` (the
    /// machine's index) from `Kernel::sleep_ns` through the device's MSI-X message (or
    /// its legacy INTx line); `None` disarms it. A frame already in the ring when it is
    /// armed wakes the core too (the driver raises the wake, and the kernel remembers a
    /// wake that comes before the sleep), so an idle core may arm and sleep at once, and
    /// must arm again before the next sleep (a receive may spend the wake).
    /// [`DeviceError::Unsupported`] when the device has neither. Through a lease, the
    /// first arm of a queue binds its interrupt source to the holder (an `InterruptCap`,
    /// `Kernel::interrupt_caps`); once that is returned or revoked, arming answers
    /// [`DeviceError::Unbound`].
    fn wake_on_receive(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError>;
    /// One handle per queue pair, handle `i` an interface of one queue (its queue 0) that
    /// is pair `i`: each may be moved to its own core and driven there at the same time
    /// as the others, none waiting for another (multi-core serving, docs/drivers.md). The
    /// interface stays usable (interrupt arming, `info`); a frame path used through both
    /// it and a handle is serialized. Through a lease, revoking the lease cuts every
    /// handle ([`DeviceError::Revoked`]) and a handle arms its pair's wake-up under the
    /// lease. A handle whose pair the device failed on answers [`PAIR_BROKEN`] until a
    /// receive, send or `transmit_pending` through the interface resets the device. [`DeviceError::Unsupported`] (the
    /// default) where the driver cannot split.
    fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
        Err(DeviceError::Unsupported("a handle per queue pair"))
    }
}

/// The most ordered writes ([`BlockDevice::submit_write_ordered`]) one queue of a lent
/// disk holds not yet completed; one more is [`DeviceError::QueueFull`] until the holder
/// polls the oldest to completion. Each holds a copy of its data (up to a request's,
/// 64 KiB with Rexo's drivers) in the kernel's heap, which keeps the frames it grows by:
/// the bound, with [`MAX_ORDERED_BYTES`] over a lease's queues, keeps an app from filling
/// the kernel's memory with them.
pub const MAX_ORDERED_PER_QUEUE: usize = 64;

/// The most bytes of data the ordered writes of one lease of a disk hold in the kernel's
/// heap while not yet completed, over all its queues (1 MiB): an ordered write that would
/// pass it is [`DeviceError::QueueFull`] until the holder polls ordered writes to
/// completion (or gives them up with [`BlockDevice::abandon_requests`]). One write is
/// taken whatever its size when the lease holds none. Without it an app could hold
/// [`MAX_ORDERED_PER_QUEUE`] requests' worth per queue, megabytes per disk, charged to
/// nobody.
pub const MAX_ORDERED_BYTES: usize = 1 << 20;

/// The most filters one binding on a shared network interface may name
/// ([`Kernel::bind_net`](crate::Kernel::bind_net);
/// [`ApiError::TooManyFilters`](crate::ApiError::TooManyFilters) past it). An app binds
/// the few ports it serves (a server's port or two, a resolver's), so 64 is ample; the
/// bound keeps what one bind costs the kernel (overlap checks, the merged tree, the
/// binding's rules and counters) small, whatever list an app passes.
pub const MAX_BINDING_FILTERS: usize = 64;

/// The most bindings one shared network interface holds at once
/// ([`ApiError::TooManyBindings`](crate::ApiError::TooManyBindings) past it, until one
/// ends). Apps bind once or a few times each, so 64 is ample; with
/// [`MAX_BINDING_FILTERS`] it bounds the filters the kernel merges and checks on an
/// interface, and the memory they take.
pub const MAX_INTERFACE_BINDINGS: usize = 64;

/// The most bindings one app holds at once on one shared network interface
/// ([`ApiError::TooManyBindings`](crate::ApiError::TooManyBindings) with this `max` past
/// it, until one of the app's ends). Apps bind a few ports each, so 16 is ample; the cap
/// keeps one app from taking all [`MAX_INTERFACE_BINDINGS`] places and locking the others
/// out: an app holds at most a quarter of them, so 4 apps can always bind (while fewer
/// than 4 are bound, whatever they hold, another app can bind).
pub const MAX_APP_BINDINGS: usize = 16;

// What the doc of MAX_APP_BINDINGS promises.
const _: () = assert!(4 * MAX_APP_BINDINGS <= MAX_INTERFACE_BINDINGS);

/// One app's binding on a shared network interface
/// ([`Kernel::bind_net`](crate::Kernel::bind_net)), as [`NetSharing`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetBinding {
    /// The app.
    pub app: &'static str,
    /// Its receive filters, in the filter language.
    pub filters: Vec<String>,
    /// Frames handed to it in place, in its own receive calls.
    pub delivered: u64,
    /// Frames another app's receive call found for it, queued until it polls.
    pub queued: u64,
    /// Frames for it dropped because its queue was full.
    pub dropped: u64,
    /// Frames it sent.
    pub sent: u64,
    /// Frames it tried to send from a source its filters do not give it: withdrawn.
    pub refused: u64,
}

/// How the kernel demultiplexes a shared network interface: the address it answers ARP
/// and ping for, each app's binding, and what matched no filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSharing {
    /// The interface's address (the kernel word `ip=`).
    pub address: rexo_cmdline::Ipv4Config,
    /// Every app bound to it.
    pub bindings: Vec<NetBinding>,
    /// ARP requests for the address the kernel answered (its reply taken by the device).
    pub arp_answered: u64,
    /// ARP replies the kernel handed to every app (their stacks learn neighbours).
    pub arp_shared: u64,
    /// ICMP echo requests for the address the kernel answered (its reply taken by the
    /// device).
    pub echo_answered: u64,
    /// Frames no filter matched (or that no filter judges: IPv4 with options) and the
    /// kernel does not answer: dropped.
    pub unmatched: u64,
    /// Later fragments of IPv4 datagrams (a fragment offset other than 0), which the
    /// kernel drops before any filter judges them: a later fragment belongs to its first
    /// fragment's flow (RFC 791), whose ports it does not carry, so no filter can tell
    /// whose it is.
    pub fragments_dropped: u64,
}

impl fmt::Display for NetBinding {
    /// `APP (FILTER | FILTER): received N in place, N queued, N dropped; sent N, refused N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): received {} in place, {} queued, {} dropped; sent {}, refused {}",
            self.app,
            self.filters.join(" | "),
            self.delivered,
            self.queued,
            self.dropped,
            self.sent,
            self.refused
        )
    }
}

impl fmt::Display for NetSharing {
    /// The kernel's part: what it answered, handed on and dropped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the kernel answered {} ARP requests and {} pings, gave {} ARP replies to the apps, dropped {} frames no filter matched and {} later IPv4 fragments",
            self.arp_answered,
            self.echo_answered,
            self.arp_shared,
            self.unmatched,
            self.fragments_dropped
        )
    }
}

/// What an app knows of a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Sectors on the disk.
    pub sectors: u64,
    /// Bytes per sector.
    pub sector_size: u32,
    /// The most sectors one request may cover.
    pub max_sectors: u32,
    /// Queues (requests on different queues never share a lock).
    pub queues: usize,
    /// Requests each queue holds in flight.
    pub depth: usize,
    /// The model string the device reports (empty when it reports none).
    pub model: String,
}

/// A request's number on its queue, given back with its completion.
pub type Tag = u32;

/// What [`BlockDevice::poll`] hands each finished request to: its tag, and its data
/// (reads) or its error.
pub type Completion<'a> = &'a mut dyn FnMut(Tag, Result<&[u8], DeviceError>);

/// A disk, opened by one app.
pub trait BlockDevice: Send {
    /// The disk.
    fn info(&self) -> BlockInfo;
    /// Queues a read of `sectors` sectors from `lba` on queue `queue`; the data comes with
    /// the completion.
    fn submit_read(&mut self, queue: usize, lba: u64, sectors: u32) -> Result<Tag, DeviceError>;
    /// Queues a write of `sectors` sectors at `lba`: `fill` writes the data in place in
    /// the request's DMA buffer, which is exactly `sectors` times
    /// [`BlockInfo::sector_size`] bytes long (every driver and the kernel's block layer
    /// hand over no more and no less), and says whether the write may go; `false`
    /// withdraws it before the device sees it (the buffer goes back unused, the disk
    /// keeps what it held) and the call says [`DeviceError::Withdrawn`]. The kernel's
    /// block layer withdraws the write of an app whose `fill` aborted this way, and
    /// lends the buffer zeroed, never holding an earlier request's bytes.
    fn submit_write_checked(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<Tag, DeviceError>;
    /// Queues a write of `sectors` sectors at `lba`: `fill` writes the data in place
    /// ([`submit_write_checked`](BlockDevice::submit_write_checked) that never withdraws).
    fn submit_write(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Tag, DeviceError> {
        self.submit_write_checked(queue, lba, sectors, &mut |buffer| {
            fill(buffer);
            true
        })
    }
    /// Queues a flush: its completion means every write completed before it is durable.
    fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError>;
    /// Queues an ordered write (XN's ordering): it reaches the disk only after every
    /// request submitted before it on `queue` has completed and a flush made them
    /// durable, and its completion means it is durable too. Later requests are not held
    /// back by it; ordered writes on a queue run in the order submitted. When a request
    /// submitted before it on `queue` fails (an earlier ordered write included), it is
    /// not written and completes with [`DeviceError::DependencyFailed`]. `fill` writes
    /// the data, which is copied once (the write starts later) into the kernel's heap:
    /// [`DeviceError::NoMemory`] when that copy cannot be made. A queue holds at most
    /// [`MAX_ORDERED_PER_QUEUE`] ordered writes not yet completed, and a lease's ordered
    /// writes at most [`MAX_ORDERED_BYTES`] of data: one more is
    /// [`DeviceError::QueueFull`] until `poll` completes the oldest. The kernel's block
    /// layer provides it on every disk it lends (its tags are 2^31 and up; it hands out
    /// the other requests' tags below); a driver's own handle says `Unsupported`. The
    /// layer sends the ordered writes it still holds before the machine powers off or
    /// reboots (logging each one it could not write) and takes none after: then
    /// [`DISK_SHUT_DOWN`]. Those still queued when the holder gives up its requests
    /// ([`BlockDevice::abandon_requests`]) or its lease ends are not written, their
    /// count logged.
    fn submit_write_ordered(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Tag, DeviceError> {
        let _ = (queue, lba, sectors, fill);
        Err(DeviceError::Unsupported(
            "ordered writes (the kernel's block layer provides them)",
        ))
    }
    /// Hands each finished request of queue `queue` to `done` (a read with its data, in
    /// place); returns how many. A request the device does not finish within the
    /// driver's timeout completes with [`DeviceError::Timeout`] (NVMe's and
    /// virtio-blk's only once a device reset has made sure the device will not carry
    /// it out later), one the device had when its driver reset it with
    /// [`DeviceError::Reset`]. Never waits, with one exception: the poll in which a
    /// driver resets a device it judged stuck may wait for the device to acknowledge
    /// the reset, up to that driver's reset timeout (virtio-blk: 1 s; docs/drivers.md).
    /// An error may come after some requests were handed to `done` (a driver giving
    /// the device up in that poll): those finished all the same.
    fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError>;
    /// Arms `queue` so that the next request finishing on it wakes core `core` (the
    /// machine's index) from `Kernel::sleep_ns` through the device's MSI or MSI-X
    /// message; `None` disarms it. Arm, poll once more, sleep, arm again (a wake is
    /// one-shot). [`DeviceError::Unsupported`] when the device or its driver cannot.
    /// Through a lease, the binding rules of [`NetDevice::wake_on_receive`] apply.
    fn wake_on_completion(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError>;
    /// The holder changed (the kernel calls this when a handle is dropped or revoked), or
    /// gave up on its requests (a holder whose `poll` failed calls it before reusing the
    /// memory it was reading into): requests still in flight belong to no one now. Their
    /// completions are dropped when they come, and their buffers reused only then, so
    /// neither the next holder nor a later `poll` ever sees them. The disk drivers
    /// withdraw the requests the device was not yet told of and wait (bounded by their
    /// timeouts, then a device reset) for the ones it has, so none reaches the disk
    /// after this returns: the sectors of a holder that went are safe to hand on. So the
    /// call may block until the device answers or is reset (for a device that never
    /// answers, NVMe and virtio-blk: 10 s and the reset); the registry runs
    /// it outside the slot's lock, when a holder goes (the disk shown held by the kernel
    /// meanwhile) and when a holder gives up its own requests (the disk still the
    /// holder's).
    fn abandon_requests(&mut self);
    /// The machine is `leaving` (powering off or rebooting): tells the disk, as its kind
    /// asks, so that what was written survives. The requests already submitted go to the
    /// device and are waited for (their completions dropped: nobody polls after this),
    /// then the disk is made to write its cache out and, where its kind asks for it,
    /// told of the power loss (at a reboot too where a reset may cut its power without
    /// it: NVMe's shutdown notification; an ATA disk is only flushed at a reboot, as
    /// Linux does, its standby kept for the power-off). Each wait is bounded by
    /// the driver's timeouts (docs/drivers.md); the error says which step failed or timed
    /// out. From then on, whatever it returned, every submission, poll and arming of a
    /// wake-up fails with [`DISK_SHUT_DOWN`]. Only the kernel calls it, through the
    /// registry's walk of the disks before the ACPI sleep request or the reset; a lease
    /// refuses it
    /// ([`DeviceError::Unsupported`]). What each driver sends: docs/drivers.md,
    /// "Power-off" (NVMe a shutdown notification, CC.SHN; AHCI and IDE disks FLUSH
    /// CACHE (EXT), then STANDBY IMMEDIATE at a power-off; virtio-blk a FLUSH when
    /// negotiated).
    fn shut_down(&mut self, leaving: Leaving) -> Result<(), DeviceError>;
}

/// A keyboard, opened by one app (the consoles' keyboards are read through
/// `Kernel::read_byte` instead).
pub trait KeyboardDevice: Send {
    /// The next byte of typed input, as a terminal sends it (`\r` for Enter, 0x7F for
    /// Backspace, `ESC [ A` for the up arrow), without waiting.
    fn read_byte(&mut self) -> Result<Option<u8>, DeviceError>;
    /// What types through this device now, for the device list, asked each time it is
    /// listed: the keyboards attached (`USB keyboard on port 1`), or that none is
    /// (`USB controller: no keyboard attached`).
    fn attached(&self) -> Result<String, DeviceError>;
}

/// A device an app opened: it holds it alone until it drops the handle.
pub enum OpenDevice {
    /// A network interface.
    Net(Box<dyn NetDevice>),
    /// A disk.
    Block(Box<dyn BlockDevice>),
    /// A keyboard.
    Keyboard(Box<dyn KeyboardDevice>),
}

impl OpenDevice {
    /// The network interface, or [`ApiError::NoSuchDevice`](crate::ApiError::NoSuchDevice) for another kind.
    pub fn into_net(self) -> Result<Box<dyn NetDevice>, crate::ApiError> {
        match self {
            OpenDevice::Net(nic) => Ok(nic),
            _ => Err(crate::ApiError::NoSuchDevice),
        }
    }

    /// The disk, or [`ApiError::NoSuchDevice`](crate::ApiError::NoSuchDevice) for another kind.
    pub fn into_block(self) -> Result<Box<dyn BlockDevice>, crate::ApiError> {
        match self {
            OpenDevice::Block(disk) => Ok(disk),
            _ => Err(crate::ApiError::NoSuchDevice),
        }
    }

    /// The keyboard, or [`ApiError::NoSuchDevice`](crate::ApiError::NoSuchDevice) for another kind.
    pub fn into_keyboard(self) -> Result<Box<dyn KeyboardDevice>, crate::ApiError> {
        match self {
            OpenDevice::Keyboard(keyboard) => Ok(keyboard),
            _ => Err(crate::ApiError::NoSuchDevice),
        }
    }
}

/// A disk's extents and who holds them: XN's idea. Each disk with an extent table (made
/// by [`ExtentOp::Format`]) lets an app read and write only the extents it holds, and
/// read those shared with it; disks without one are raw (their holder has all of it).
pub use rexo_xn::{Extent as DiskExtent, XnError as ExtentError};

/// A change to a disk's extent table, made by the calling app (its name is the holder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtentOp {
    /// Writes an empty table on a raw disk (or one whose table is damaged), its locator
    /// in the disk's first MiB, and zeros over the rest of the table's sectors, in an
    /// order that a crash leaves damaged, never raw (docs/storage.md). It is refused ([`ExtentError::InUse`]) when
    /// sector 0 holds a boot signature (an MBR, or a GPT disk's protective MBR), when
    /// the locator's sectors hold anything but zeros or a locator, or when the table's
    /// sectors at the disk's end hold anything but zeros or an extent table (a GPT's
    /// backup, a file system's last block), unless `force`.
    Format {
        /// Writes the table over whatever the disk holds there.
        force: bool,
    },
    /// Grants the caller a new extent of this many sectors, which reads as zeros: the
    /// kernel writes zeros over it (and flushes) before the table that grants it is
    /// written, so no app reads a previous holder's data, and a crash in between leaves
    /// it free. The call takes the time to write the extent once (meanwhile opening the
    /// disk or changing its table answers `DeviceBusy`); if a write fails, the
    /// allocation fails with the device's error and the table is unchanged. Freeing does
    /// not wipe (the next allocation does), and sharing never does.
    Allocate {
        /// Sectors.
        sectors: u64,
    },
    /// Shares part of an extent the caller holds with another app, read-only.
    Share {
        /// First sector.
        start: u64,
        /// Sectors.
        count: u64,
        /// The app that may read it.
        reader: String,
    },
    /// Takes back every share the caller gave `reader`.
    Revoke {
        /// The app the shares were given to.
        reader: String,
    },
    /// Moves the table of a disk that grew (its table found at the old end through its
    /// locator) to the disk's new end, so that the sectors past the old end can be
    /// allocated; the extents are unchanged. The new end's copies are zeroed, the table
    /// written there, each flushed, then the locator; [`ExtentError::NothingToGrow`] when
    /// the table spans the disk already, [`ExtentError::GrowthTooSmall`] when the disk
    /// grew by less than the table's two copies. Refused ([`ExtentError::InUse`]) when
    /// the new end's sectors hold anything but zeros or an extent table, or the
    /// locator's sectors anything but zeros or a locator, unless `force`.
    Grow {
        /// Writes the table and the locator over whatever their sectors hold.
        force: bool,
    },
    /// Gives up the protection of a damaged disk too small for a table
    /// ([`ExtentError::TooSmall`]), which no format can mend: every sector is zeroed and
    /// flushed, the locator's last (a crash part way leaves it damaged), and the disk
    /// then reads as raw (its holder has all of it), holding no app's former data.
    /// Refused like a format on a disk with a sound table, with
    /// [`ExtentError::FormatInstead`] on a damaged disk large enough for a table (a
    /// format mends it), and with [`ExtentError::NoTable`] on a raw disk.
    Unprotect,
    /// Gives back the caller's extent that starts at this sector (and its shares).
    Free {
        /// Its first sector.
        start: u64,
    },
}

/// What a device is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// A network interface ([`NetDevice`]).
    Net,
    /// A disk ([`BlockDevice`]).
    Block,
    /// A keyboard ([`KeyboardDevice`]).
    Keyboard,
}

/// One device the kernel bound a driver to, or tried to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its number among devices of its kind (what `open_net`/`open_block` take).
    pub index: usize,
    /// What it is.
    pub kind: DeviceKind,
    /// Where it is (a PCI address; the legacy IDE channels have their controller's).
    pub address: Address,
    /// The driver's name (`virtio-net`, `nvme`...).
    pub driver: &'static str,
    /// A description: model, MAC address or size.
    pub about: String,
    /// The app holding it, if any.
    pub holder: Option<&'static str>,
    /// The interrupt sources its holder has bound (`Kernel::interrupt_caps`).
    pub interrupts: Vec<InterruptBinding>,
}

/// One interrupt source of a leased device bound to its holder: the `InterruptVector`
/// capability `entry` (in `Kernel::capabilities`, naming the vector) for queue `queue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptBinding {
    /// The capability's entry.
    pub entry: crate::EntryId,
    /// The queue whose source it binds.
    pub queue: usize,
}

/// Waits for the one request `tag` of `queue` (polling, other completions dropped) and
/// returns its data through `done`; used by simple callers that keep one request in
/// flight. When `poll` itself fails, it gives the requests in flight up to the device
/// ([`BlockDevice::abandon_requests`]) and returns that error, so that `tag` never
/// completes into memory the caller reuses afterwards.
pub fn wait_for(
    disk: &mut dyn BlockDevice,
    queue: usize,
    tag: Tag,
    done: &mut dyn FnMut(&[u8]),
) -> Result<(), DeviceError> {
    let mut result = None;
    while result.is_none() {
        let polled = disk.poll(queue, &mut |finished, data| {
            if finished == tag {
                result = Some(data.map(&mut *done));
            }
        });
        if let Err(failed) = polled {
            disk.abandon_requests();
            return Err(failed);
        }
        core::hint::spin_loop();
    }
    result.unwrap_or(Ok(()))
}

/// Why a length-checked transfer ([`submit_write_exact`], [`wait_for_read_exact`])
/// failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExactError {
    /// The driver handed over a buffer (or data) of this many bytes, not the length asked.
    WrongLength(usize),
    /// The device failed the request.
    Device(DeviceError),
}

/// Queues a write of `sectors` at `lba` on `queue`, whose buffer must be `bytes` long:
/// `fill` writes it. A buffer of another length withdraws the write (nothing of it
/// reaches the disk) and is [`ExactError::WrongLength`] with the length handed over.
pub fn submit_write_exact(
    disk: &mut dyn BlockDevice,
    queue: usize,
    (lba, sectors): (u64, u32),
    bytes: usize,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<Tag, ExactError> {
    let mut handed = None;
    let queued = disk.submit_write_checked(queue, lba, sectors, &mut |buffer| {
        if buffer.len() != bytes {
            handed = Some(buffer.len());
            return false;
        }
        fill(buffer);
        true
    });
    match handed {
        Some(len) => Err(ExactError::WrongLength(len)),
        None => queued.map_err(ExactError::Device),
    }
}

/// Waits for read `tag` on `queue` ([`wait_for`]) and copies its data into `into`: data
/// of another length is [`ExactError::WrongLength`] with its length, nothing of it
/// copied.
pub fn wait_for_read_exact(
    disk: &mut dyn BlockDevice,
    queue: usize,
    tag: Tag,
    into: &mut [u8],
) -> Result<(), ExactError> {
    let mut handed = None;
    wait_for(disk, queue, tag, &mut |data| {
        if data.len() == into.len() {
            into.copy_from_slice(data);
        } else {
            handed = Some(data.len());
        }
    })
    .map_err(ExactError::Device)?;
    handed.map_or(Ok(()), |len| Err(ExactError::WrongLength(len)))
}

/// Queues the next request of a [`run_windowed`] series on the disk: its tag and what
/// `done` needs of it, the error that refused it, or `None` when no request is left.
pub type SubmitNext<'a, T, E> =
    &'a mut dyn FnMut(&mut dyn BlockDevice) -> Option<Result<(Tag, T), E>>;

/// Takes a finished request of a [`run_windowed`] series: what `submit` gave with it, and
/// its data or the device's error.
pub type TakeFinished<'a, T, E> = &'a mut dyn FnMut(T, Result<&[u8], DeviceError>) -> Result<(), E>;

/// Runs a series of requests on `queue`, keeping up to `window` (at least 1) in flight:
/// `submit` queues the next one and gives its tag with what `done` needs of it (`None`:
/// none left), `done` takes each finished one with its data or error. `in_flight` holds
/// the requests in flight (cleared first; a caller that keeps it from run to run
/// allocates nothing).
///
/// The first error stops the submissions: one `submit` answers (a request refused) or one
/// `done` answers (it is not called after an error). Every request queued is still waited
/// for, so that none completes into a later caller's wait; the inner result is then that
/// error. When `poll` itself fails, the requests in flight are given up to the device
/// ([`BlockDevice::abandon_requests`]) and the outer result is that error.
pub fn run_windowed<T, E>(
    disk: &mut dyn BlockDevice,
    queue: usize,
    window: usize,
    in_flight: &mut Vec<(Tag, T)>,
    submit: SubmitNext<'_, T, E>,
    done: TakeFinished<'_, T, E>,
) -> Result<Result<(), E>, DeviceError> {
    in_flight.clear();
    let mut error = None;
    let mut submitted_all = false;
    loop {
        while error.is_none() && !submitted_all && in_flight.len() < window.max(1) {
            match submit(disk) {
                Some(Ok(request)) => in_flight.push(request),
                Some(Err(refused)) => error = Some(refused),
                None => submitted_all = true,
            }
        }
        if in_flight.is_empty() {
            return Ok(error.map_or(Ok(()), Err));
        }
        let polled = disk.poll(queue, &mut |tag, result| {
            let Some(index) = in_flight.iter().position(|(queued, _)| *queued == tag) else {
                return;
            };
            let (_, request) = in_flight.swap_remove(index);
            if error.is_none() {
                error = done(request, result).err();
            }
        });
        if let Err(failed) = polled {
            disk.abandon_requests();
            return Err(failed);
        }
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toeplitz_hashes_match_the_rss_specifications_verification_suite() {
        use core::net::Ipv4Addr;
        /// Source, destination, their ports, the IPv4 hash, the TCP/IPv4 hash.
        type Case = ([u8; 4], [u8; 4], (u16, u16), u32, u32);
        let suite: [Case; 3] = [
            (
                [66, 9, 149, 187],
                [161, 142, 100, 80],
                (2794, 1766),
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                [199, 92, 111, 2],
                [65, 69, 140, 83],
                (14230, 4739),
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                [24, 19, 198, 95],
                [12, 22, 207, 184],
                (12898, 38024),
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
        ];
        for (source, destination, (sport, dport), ipv4, tcp) in suite {
            let mut input = alloc::vec::Vec::new();
            input.extend_from_slice(&source);
            input.extend_from_slice(&destination);
            assert_eq!(toeplitz_hash(&RSS_EXAMPLE_KEY, &input), ipv4);
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz_hash(&RSS_EXAMPLE_KEY, &input), tcp);
            // The table picks by the low 7 bits.
            let mut table = [0u8; 128];
            table[(tcp & 0x7f) as usize] = 1;
            let steering = ReceiveSteering {
                key: RSS_EXAMPLE_KEY,
                table,
            };
            let (source, destination) = (Ipv4Addr::from(source), Ipv4Addr::from(destination));
            assert_eq!(
                steering.pair_of(source, destination, Some((sport, dport))),
                1
            );
        }
    }

    #[test]
    fn segments_are_checked_and_summed() {
        assert_eq!(DeviceError::check_segments(&[14, 1, 45], 1514), Ok(60));
        assert_eq!(
            DeviceError::check_segments(&[1000, 515], 1514),
            Err(DeviceError::TooLong {
                len: 1515,
                max: 1514
            })
        );
        assert_eq!(
            DeviceError::check_segments(&[20; MAX_SEGMENTS + 1], 1514),
            Err(DeviceError::TooManySegments {
                segments: 9,
                max: 8
            })
        );
        assert_eq!(
            DeviceError::check_segments(&[60, 0], 1514),
            Err(DeviceError::EmptySegment { index: 1 })
        );
        assert_eq!(
            DeviceError::check_segments(&[], 1514),
            Err(DeviceError::TooShort { len: 0 })
        );
        assert_eq!(
            DeviceError::check_segments(&[usize::MAX, 2], 1514),
            Err(DeviceError::TooLong {
                len: usize::MAX,
                max: 1514
            })
        );
    }

    /// A TCP/IPv4 frame with `payload` bytes and TCP `flags`.
    fn tcp_frame(payload: usize, flags: u8) -> alloc::vec::Vec<u8> {
        let total = 40 + payload;
        let mut frame = alloc::vec![0u8; 14 + total];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&(total as u16).to_be_bytes());
        frame[23] = 6;
        frame[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        frame[46] = 5 << 4;
        frame[47] = flags;
        frame
    }

    #[test]
    fn frames_to_segment_are_checked_and_their_checksum_seeded() {
        let mut frame = tcp_frame(10_000, 0x18);
        let cut = tcp_segmentation(&mut frame, 1460, 1514).unwrap();
        assert_eq!((cut.header_len, cut.mss), (54, 1460));
        assert_eq!((cut.checksum.start, cut.checksum.offset), (34, 16));
        let seed = u16::from_be_bytes([frame[50], frame[51]]);
        assert_eq!(seed, transport_checksum(&frame).unwrap().seed);
        // Each segment must fit: 54 + 1461 > 1514, nor wrap past it (54 + usize::MAX
        // wrapped to 53); no segment size at all.
        for mss in [1461, usize::MAX, usize::MAX - 53, 0] {
            assert!(matches!(
                tcp_segmentation(&mut tcp_frame(10_000, 0x10), mss, 1514),
                Err(DeviceError::NotSegmentable(_))
            ));
        }
        // SYN, RST, URG, CWR; UDP; a fragment; a total length that is not the frame's.
        let mut udp = tcp_frame(3000, 0x10);
        udp[23] = 17;
        let mut fragment = tcp_frame(3000, 0x10);
        fragment[20] = 0x20;
        let mut short = tcp_frame(3000, 0x10);
        short[16..18].copy_from_slice(&1000u16.to_be_bytes());
        for (what, mut bad) in [
            ("SYN", tcp_frame(3000, 0x02)),
            ("RST", tcp_frame(3000, 0x14)),
            ("URG", tcp_frame(3000, 0x30)),
            ("CWR", tcp_frame(3000, 0x90)),
            ("UDP", udp),
            ("fragment", fragment),
            ("lengths", short),
        ] {
            let before = bad.clone();
            let refused = tcp_segmentation(&mut bad, 1460, 1514);
            assert!(
                matches!(refused, Err(DeviceError::NotSegmentable(_))),
                "{what}"
            );
            assert_eq!(bad, before, "{what}: left as it was");
        }
    }

    #[test]
    fn ranges_are_lent_apart_in_the_order_given() {
        let mut block = [0u8; 64];
        // Out of order, as buffers come off a free list.
        let lent = lend_ranges(&mut block, &[(40, 3), (2, 5), (20, 1)], |parts| {
            assert_eq!(
                parts
                    .iter()
                    .map(|p| p.len())
                    .collect::<alloc::vec::Vec<_>>(),
                [3, 5, 1]
            );
            for (i, part) in parts.iter_mut().enumerate() {
                part.fill(i as u8 + 1);
            }
        });
        assert_eq!(lent, Some(()));
        assert_eq!(&block[40..43], &[1, 1, 1]);
        assert_eq!(&block[2..7], &[2; 5]);
        assert_eq!(block[20], 3);
        assert_eq!(
            block.iter().filter(|&&b| b != 0).count(),
            9,
            "nothing else written"
        );
        // Overlapping, outside the block, or too many: refused.
        assert_eq!(lend_ranges(&mut block, &[(0, 10), (5, 2)], |_| ()), None);
        assert_eq!(lend_ranges(&mut block, &[(60, 5)], |_| ()), None);
        assert_eq!(
            lend_ranges(&mut block, &[(0, 1); MAX_SEGMENTS + 1], |_| ()),
            None
        );
        let mut frame = [0u8; 10];
        let lens = lend_consecutive(&mut frame, &[3, 7], |parts| {
            parts[1][0] = 9;
            (parts[0].len(), parts[1].len())
        });
        assert_eq!(lens, Some((3, 7)));
        assert_eq!(frame[3], 9);
        assert_eq!(lend_consecutive(&mut frame, &[6, 6], |_| ()), None);
    }

    /// Reads sectors 0..8 of `disk` one per request with `window` in flight; the sectors
    /// handed to `done` in the order they finished, and the outcome.
    fn read_windowed(
        disk: &mut crate::testing::MemoryDisk,
        window: usize,
    ) -> (Vec<u64>, Result<Result<(), DeviceError>, DeviceError>) {
        let (mut next, mut finished) = (0, Vec::new());
        let outcome = run_windowed(
            disk,
            0,
            window,
            &mut Vec::new(),
            &mut |disk| {
                (next < 8).then(|| {
                    next += 1;
                    disk.submit_read(0, next - 1, 1).map(|tag| (tag, next - 1))
                })
            },
            &mut |sector, data| {
                finished.push(sector);
                data.map(|_| ())
            },
        );
        (finished, outcome)
    }

    #[test]
    fn a_windowed_run_keeps_the_window_full_and_waits_for_every_request_after_an_error() {
        let mut disk = crate::testing::MemoryDisk::new(alloc::vec![0; 8 * 512]);
        disk.depth = 3;
        assert_eq!(read_windowed(&mut disk, 3), ((0..8).collect(), Ok(Ok(()))));
        assert_eq!(disk.most_in_flight(), 3);
        // One request finishes per poll, the newest first: sector 2 fails while 0 and 1
        // are still in flight. Nothing more is submitted, and both are waited for.
        disk.newest_first = true;
        disk.failing_reads = 2..3;
        let (finished, outcome) = read_windowed(&mut disk, 3);
        assert_eq!(finished, [2], "no call after the error");
        assert!(matches!(outcome, Ok(Err(DeviceError::Status { .. }))));
        assert_eq!(
            disk.request_sizes().len(),
            8 + 3,
            "sectors 0, 1, 2 submitted"
        );
        assert_eq!(disk.in_flight(), 0);
        // A failed poll gives the requests in flight up to the device.
        disk.newest_first = false;
        disk.failing_reads = 0..0;
        disk.polls_before_failing = Some(0);
        let (finished, outcome) = read_windowed(&mut disk, 3);
        assert!(finished.is_empty());
        assert!(matches!(outcome, Err(DeviceError::Timeout { .. })));
        assert_eq!(disk.in_flight(), 0, "abandoned");
    }

    #[test]
    fn a_failed_poll_abandons_the_request_waited_for() {
        // Each poll finishes the newest request alone: the first poll hands over another
        // request's data (dropped), the second fails with the one waited for in flight.
        let mut disk = crate::testing::MemoryDisk::new(alloc::vec![0; 8 * 512]);
        disk.depth = 2;
        disk.newest_first = true;
        disk.polls_before_failing = Some(1);
        let tag = disk.submit_read(0, 0, 1).unwrap();
        disk.submit_read(0, 1, 1).unwrap();
        let mut handed = false;
        let error = wait_for(&mut disk, 0, tag, &mut |_| handed = true).unwrap_err();
        assert!(matches!(error, DeviceError::Timeout { .. }), "{error:?}");
        assert!(!handed, "no data");
        assert_eq!(
            disk.in_flight(),
            0,
            "the request was given up to the device"
        );
    }
}
