//! virtio-net (spec 5.1): receive/transmit queue pairs (several with VIRTIO_NET_F_MQ,
//! enabled through the control queue), frames in place after the virtio-net header in
//! fixed 2 KiB DMA buffers, one descriptor per frame (two, header and frame, for a legacy
//! device without VIRTIO_F_ANY_LAYOUT: spec 2.7.4.3). With VIRTIO_NET_F_HOST_TSO4 (a tap
//! backend offers it) each transmit queue also has [`TSO_BUFFERS`] buffers of 68 KiB for
//! TCP frames of up to 64 KiB that the device cuts into segments (spec 5.1.6.2).
//!
//! A device whose used index runs more than a ring ahead of the driver (a broken device:
//! the queue cannot be read on) is reset as virtio-blk resets a stuck one (status 0, the
//! features again, every queue renewed; given up after 3 resets in a row with no frame
//! received or sent in between). The receive buffers are posted again; frames in flight on
//! transmit are lost (logged, and no longer counted by `transmit_pending`). The call that
//! met the overrun then goes on on the renewed device. Only calls through the device reset
//! it: a pair's own handle ([`NetDevice::split_queues`]) that meets an overrun tells the
//! device, and it and every later call of the pair answer [`PAIR_BROKEN`] until the next
//! receive, send or `transmit_pending` through the whole device, on any of its queues,
//! resets it (which renews every pair).
//!
//! A device that stops returning transmitted frames is reset the same way, its reason
//! logged: one that set DEVICE_NEEDS_RESET (spec 2.1.2: it may stop processing) once its
//! transmit queue has held frames with none returned for over 100 ms (`STATUS_LOOK_MS`),
//! and any other once that has lasted over 5 s (`TX_STALL_TIMEOUT_MS`) with the link up. A
//! pair looks when `transmit_pending` finds frames in flight, or a send finds the transmit
//! queue full, and counts from the first look that found it so (any frame returned starts
//! the count again).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::AtomicBool;

use rexo_api::device::{ETHERNET_HEADER, ETHERNET_MAX_FRAME};
use rexo_api::{DeviceError, MAX_SEGMENTS, NetDevice, NetInfo};
use rexo_devio::pairs::{PairHealth, PairedDevice, pair_at};
use rexo_devio::{
    DeviceFunction, Dma, Found, MsixTable, NS_PER_MS, Platform, QueuePair, QueueWakes, Stall,
};
use rexo_pci::{Address, Function};

use crate::queue::{DESC_NEXT, DESC_WRITE, USED_INDEX_OVERRUN, Virtqueue};
use crate::recovery::{NEEDS_RESET, Parts, Recovery, Restart};
use crate::transport::Transport;

/// Transitional virtio-net (legacy interface, maybe modern too).
const DEVICE_TRANSITIONAL: u16 = 0x1000;
/// Modern-only virtio-net (0x1040 + device type 1).
const DEVICE_MODERN: u16 = 0x1041;

/// Feature: the device computes checksums of frames whose header asks (NEEDS_CSUM).
const F_CSUM: u64 = 1 << 0;
/// Header flag: the device completes the checksum at `csum_start + csum_offset`.
const HEADER_NEEDS_CSUM: u8 = 1;
/// Feature: the device cuts TCP/IPv4 frames into segments (`VIRTIO_NET_F_HOST_TSO4`;
/// spec 5.1.3.1: needs [`F_CSUM`]).
const F_HOST_TSO4: u64 = 1 << 11;
/// Header `gso_type`: TCP over IPv4 (`VIRTIO_NET_HDR_GSO_TCPV4`).
const GSO_TCPV4: u8 = 1;
/// Feature: the device configuration holds the MAC address.
const F_MAC: u64 = 1 << 5;
/// Feature: the device configuration holds the link status.
const F_STATUS: u64 = 1 << 16;
/// Feature: the control queue exists (spec 5.1.6.5).
const F_CTRL_VQ: u64 = 1 << 17;
/// Feature: several queue pairs, enabled with `VQ_PAIRS_SET` on the control queue
/// (spec 5.1.6.5.5); needs `F_CTRL_VQ`.
const F_MQ: u64 = 1 << 22;
/// Feature (legacy): the header and frame may share a descriptor.
const F_ANY_LAYOUT: u64 = 1 << 27;
/// The features this driver takes whenever the device offers them.
const F_WANTED: u64 = F_MAC | F_STATUS | F_ANY_LAYOUT | F_CSUM;

/// Device configuration: the MAC address (6 bytes).
const CONFIG_MAC: usize = 0;
/// Device configuration: the status word (with `F_STATUS`).
const CONFIG_STATUS: usize = 6;
/// Device configuration: `max_virtqueue_pairs` (with `F_MQ`).
const CONFIG_MAX_PAIRS: usize = 8;
/// Status bit: the link is up.
const STATUS_LINK_UP: u16 = 1;

/// The most queue pairs used, whatever the device offers (each costs 1 MiB of buffers).
pub const MAX_PAIRS: u16 = 8;
/// The largest `max_virtqueue_pairs` a device may give (spec 5.1.4.1: 0x8000).
const DEVICE_MAX_PAIRS: u16 = 0x8000;
/// Entries wanted per queue (the legacy interface's size is the device's; buffers stay
/// at most this many).
const QUEUE_ENTRIES: u16 = 256;

/// Frames a queue of `size` entries holds at `chain` descriptors a frame (up to
/// [`QUEUE_ENTRIES`]); a queue too small for one (a legacy queue of 1 entry, 2 a frame
/// without ANY_LAYOUT) is refused: the interface would receive nothing and answer every
/// send with `QueueFull`.
fn frames_in(size: u16, chain: u16) -> Result<u16, DeviceError> {
    match (size / chain).min(QUEUE_ENTRIES) {
        0 => Err(DeviceError::Unsupported("a queue too small for one frame")),
        frames => Ok(frames),
    }
}
/// Entries wanted on the control queue (one command at a time, 3 descriptors).
const CONTROL_ENTRIES: u16 = 4;
/// Descriptors of a control command: class and command, its data, the ack.
const CONTROL_CHAIN: u16 = 3;

/// Control command class: multi-queue (`VIRTIO_NET_CTRL_MQ`).
const CTRL_MQ: u8 = 4;
/// Control command of [`CTRL_MQ`]: set the queue pairs in use (`VQ_PAIRS_SET`).
const CTRL_MQ_VQ_PAIRS_SET: u8 = 0;
/// The device's acknowledgement of a control command that worked (`VIRTIO_NET_OK`).
const CTRL_OK: u8 = 0;
/// How long the device may take to answer a control command, in milliseconds.
const CTRL_TIMEOUT_MS: u64 = 1_000;
/// What the control command is called in its errors.
const VQ_PAIRS_SET: &str = "the control queue's VQ_PAIRS_SET";

/// Every call's answer once the device did not come back from a reset, or was judged
/// broken again after 3 resets in a row with no frame received or sent.
const GIVEN_UP: DeviceError = DeviceError::Failed(
    "virtio-net: the device did not come back from a reset, or stayed broken through \
     resets (given up)",
);

/// How long a transmit queue may hold frames with none returned, the link up, before the
/// device counts as stalled and is reset: the 5 s Linux's network stack gives a transmit
/// queue by default before its watchdog fires (a whole queue of 256 maximum-size frames
/// goes out in 0.31 s even at 10 Mb/s).
const TX_STALL_TIMEOUT_MS: u64 = 5_000;
/// How long a transmit queue may hold frames with none returned before each look at it
/// reads the device status for DEVICE_NEEDS_RESET: a device returns frames far sooner
/// while it works, so the status register is not read on the frame path.
const STATUS_LOOK_MS: u64 = 100;
/// Why a device is reset: a transmit queue stalled past [`TX_STALL_TIMEOUT_MS`] (whose
/// 5 s the text names).
const TRANSMIT_STALLED: &str =
    "the transmit queue held frames with none returned for over 5 s, the link up";
/// Why a device is reset when no pair says why (each pair that fails records its
/// reason, so only a reset that finds them taken already would).
const PAIR_FAILED: &str = "a queue pair failed";

/// What a pair whose used ring the device broke answers (through its own handle, or
/// the device's call that met it before the reset) until the whole device is reset:
/// the pair is named in the log. Defined in `rexo-api`, so that `rexo-net` can tell it.
pub use rexo_api::device::PAIR_BROKEN;

/// `struct virtio_net_hdr` on the modern interface (spec 5.1.6: `num_buffers` always
/// present with VERSION_1).
const HEADER_MODERN: usize = 12;
/// The legacy header without MRG_RXBUF (no `num_buffers`).
const HEADER_LEGACY: usize = 10;
/// Bytes per buffer (two per page, so none crosses a page).
const BUFFER_STRIDE: usize = 2048;
/// The largest frame sent for segmentation: a whole IPv4 datagram (65,535 bytes) after
/// the Ethernet header.
const TSO_MAX_FRAME: usize = ETHERNET_HEADER + 65_535;
/// Bytes per segmentation buffer: the header and the largest frame, in whole pages.
const TSO_STRIDE: usize = 17 * 4096;
/// Segmentation buffers per transmit queue with TSO (their descriptors are taken from
/// the small buffers': 1.1 MiB more per queue pair).
pub const TSO_BUFFERS: u16 = 16;

/// The features to ask for of those `offered` by a device whose configuration shows
/// `config_len` bytes: `F_MQ` only with `F_CTRL_VQ` (the pairs are enabled through the
/// control queue; spec 5.1.3.1 forbids MQ without it), the control queue only for
/// multi-queue (nothing else here uses it), and `F_STATUS` only when the configuration
/// holds the status field (without the feature the link counts as up: spec 5.1.4.2).
pub fn wanted_features(offered: u64, config_len: usize) -> u64 {
    let fields = if crate::transport::config_holds(config_len, CONFIG_STATUS, 2) {
        F_WANTED
    } else {
        F_WANTED & !F_STATUS
    };
    let queues = if offered & (F_MQ | F_CTRL_VQ) == F_MQ | F_CTRL_VQ {
        fields | F_MQ | F_CTRL_VQ
    } else {
        fields
    };
    // TSO only with checksum offload, which it needs.
    if offered & (F_CSUM | F_HOST_TSO4) == F_CSUM | F_HOST_TSO4 {
        queues | F_HOST_TSO4
    } else {
        queues
    }
}

/// The queue pairs to use when the device offers `max` (its `max_virtqueue_pairs`):
/// up to [`MAX_PAIRS`]; a `max` outside the specification's 1..=0x8000 is refused, and
/// so is 0x8000 itself, whose control queue (number 0x10000) no 16-bit queue select
/// reaches.
pub fn pairs_to_use(max: u16) -> Result<u16, DeviceError> {
    if !(1..=DEVICE_MAX_PAIRS).contains(&max) {
        return Err(DeviceError::Unsupported(
            "a max_virtqueue_pairs within 1..=0x8000",
        ));
    }
    // The control queue's number, 2 x `max`, must fit the queue select.
    queue_numbers(0, max)?;
    Ok(max.min(MAX_PAIRS))
}

/// The device's queue numbers of pair `pair` (receive, transmit) and of the control
/// queue when the device has `max_pairs` pairs (spec 5.1.2: receiveq1, transmitq1, ...,
/// receiveqN, transmitqN, controlq); `Unsupported` when one of them does not fit the
/// 16-bit queue select.
pub fn queue_numbers(pair: u16, max_pairs: u16) -> Result<(u16, u16, u16), DeviceError> {
    let number = |queue: u32| {
        u16::try_from(queue).map_err(|_| {
            DeviceError::Unsupported("virtio-net queue numbers that fit the 16-bit queue select")
        })
    };
    let (pair, max_pairs) = (u32::from(pair), u32::from(max_pairs));
    Ok((
        number(2 * pair)?,
        number(2 * pair + 1)?,
        number(2 * max_pairs)?,
    ))
}

/// Whether this driver takes `function`.
pub fn matches(function: &Function) -> bool {
    crate::transport::is_device(function, DEVICE_TRANSITIONAL, DEVICE_MODERN)
}

/// Starts the network interface on `function`.
pub fn probe(mut function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    let msix = crate::transport::msix_first(&mut function, "virtio-net", "no receive wake-ups");
    let transport = Transport::new(&mut function)?;
    let platform = function.platform();
    let config_len = transport.config_len();
    let choose = |offered| {
        let wanted = wanted_features(offered, config_len);
        if offered & !wanted & F_STATUS != 0 {
            log::warn!(
                "virtio-net {}: VIRTIO_NET_F_STATUS declined: the device configuration ({config_len} bytes) has no status field; the link counts as up",
                function.address()
            );
        }
        wanted
    };
    let features = transport.negotiate_with(platform, choose, 0)?;
    let net = VirtioNet::new(&function, transport.clone(), platform, features, msix)
        .inspect_err(|_| transport.fail())?;
    // One lock at a time: a guard in the arguments lives to the end of the statement.
    let rx_count = net.pairs[0].lock().rx_count;
    let tx_count = net.pairs[0].lock().tx_count;
    log::info!(
        "virtio-net {}: {} interface, mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {} queue pair(s) ({}), {} receive and {} transmit buffers each, {} descriptor(s) per frame",
        function.address(),
        if net.transport.is_modern() {
            "modern"
        } else {
            "legacy"
        },
        net.mac[0],
        net.mac[1],
        net.mac[2],
        net.mac[3],
        net.mac[4],
        net.mac[5],
        net.pairs.len(),
        match net.offered_pairs {
            Some(max) => alloc::format!("the device offers {max}"),
            None => "no multi-queue".into(),
        },
        rx_count,
        tx_count,
        net.shape.chain,
    );
    Ok(vec![Found::Net(Box::new(net))])
}

/// One receive/transmit queue pair and its buffers.
pub(crate) struct Pair {
    /// The receive queue; buffer `b` owns the `chain` descriptors from `chain * b`.
    rx: Virtqueue,
    /// Receive buffers, [`BUFFER_STRIDE`] apart.
    rx_buffers: Dma,
    /// Receive buffers (and descriptors) in use.
    rx_count: u16,
    /// The transmit queue; descriptors assigned as on the receive queue.
    tx: Virtqueue,
    /// Transmit buffers, [`BUFFER_STRIDE`] apart; each header is written with its frame
    /// (zero, or a checksum request).
    tx_buffers: Dma,
    /// Small transmit buffers not in flight.
    tx_free: Vec<u16>,
    /// Small transmit buffers: `0..tx_small`; the rest are segmentation buffers.
    tx_small: u16,
    /// The segmentation buffers, with TSO.
    tso: Option<TsoBuffers>,
    /// Transmit buffers, small and for segmentation (and descriptors, as on receive).
    tx_count: u16,
    /// For each buffer in flight, the buffer of the frame's next segment ([`NO_LINK`]
    /// after the last).
    tx_link: Vec<u16>,
    /// Frames the device holds.
    tx_frames: usize,
    /// What finds the device stopped on transmit.
    watch: TransmitWatch,
    /// Why the pair was marked broken, for the reset's log (taken by the reset).
    fault: Option<&'static str>,
    /// Whether the device runs, is being reset or was given up, or broke this pair's
    /// rings (nothing more is then taken from or posted to them until the whole device
    /// is reset): what the pair's own handle ([`NetDevice::split_queues`]), whose calls
    /// bypass the device, checks.
    health: PairHealth,
}

impl AsMut<PairHealth> for Pair {
    fn as_mut(&mut self) -> &mut PairHealth {
        &mut self.health
    }
}

/// What a pair needs to find its device stopped on transmit: the clock, how long the
/// device has held frames with none returned, and reads of the device's status and link
/// (its registers are only read through this copy, never written).
struct TransmitWatch {
    /// The clock.
    platform: &'static dyn Platform,
    /// How long the transmit queue has held frames with none returned.
    stall: Stall,
    /// The device's registers.
    device: Transport,
    /// The device reports the link status (VIRTIO_NET_F_STATUS).
    link_status: bool,
}

impl TransmitWatch {
    /// The watch of a pair of the device on `device` (`link_status`: whether it reports
    /// the link), reading the clock of `platform`.
    fn new(platform: &'static dyn Platform, device: Transport, link_status: bool) -> Self {
        Self {
            platform,
            stall: Stall::default(),
            device,
            link_status,
        }
    }
}

/// Whether the link of the device on `transport` is up: always without
/// VIRTIO_NET_F_STATUS (`link_status` false; spec 5.1.4.2), else its status field says.
fn link_up(transport: &Transport, link_status: bool) -> bool {
    !link_status
        || transport
            .config16(CONFIG_STATUS)
            .is_none_or(|status| status & STATUS_LINK_UP != 0)
}

/// A transmit queue's buffers for frames the device segments.
struct TsoBuffers {
    /// The buffers, [`TSO_STRIDE`] apart: the queue's transmit buffers from `tx_small`.
    dma: Dma,
    /// Those not in flight.
    free: Vec<u16>,
}

/// The end of a frame's list of transmit buffers.
const NO_LINK: u16 = u16::MAX;

/// A virtio network interface with one or more queue pairs.
pub(crate) struct VirtioNet {
    /// The device's registers.
    transport: Transport,
    /// The clock (reset timeouts).
    platform: &'static dyn Platform,
    /// Where the device is on the PCI bus (for messages).
    address: Address,
    /// The MAC address.
    mac: [u8; 6],
    /// The device reports the link status.
    link_status: bool,
    /// What every pair's frames look like.
    shape: Shape,
    /// The largest frame the device cuts into segments, when every pair has TSO
    /// buffers: fixed once the pairs are made, so that `info` takes no pair's lock.
    tcp_segmentation: Option<usize>,
    /// The queue pairs in use; `NetDevice` queue `q` is `pairs[q]`. Each behind its own
    /// lock, shared with its handle once split ([`NetDevice::split_queues`]).
    pairs: Vec<Arc<spin::Mutex<Pair>>>,
    /// `max_virtqueue_pairs` when multi-queue was negotiated.
    offered_pairs: Option<u16>,
    /// The control queue and its command buffer, with multi-queue: only used while
    /// starting, but held until the device is reset (it was given their addresses).
    control: Option<(Virtqueue, Dma)>,
    /// Receive wake-ups: receive queue `q` through MSI-X entry `q`.
    wakes: QueueWakes,
    /// Resets of a broken device, and whether it was given up ([`GIVEN_UP`]).
    recovery: Recovery,
    /// Chains the device had returned on every pair's queues at the last reset: more
    /// since means it finished something.
    returned_at_reset: u64,
    /// Set by a pair that found a used ring broken (shared with every pair): the next
    /// call through the device resets it.
    reset_wanted: Arc<AtomicBool>,
}

impl VirtioNet {
    /// Sets up the queues of a device whose features are negotiated, and starts it.
    fn new(
        function: &DeviceFunction,
        transport: Transport,
        platform: &'static dyn Platform,
        features: u64,
        msix: Option<MsixTable>,
    ) -> Result<Self, DeviceError> {
        if features & F_MAC == 0 {
            return Err(DeviceError::Unsupported("a MAC address (VIRTIO_NET_F_MAC)"));
        }
        let mac = transport
            .config_bytes(CONFIG_MAC)
            .ok_or(DeviceError::Unsupported(
                "the MAC address in the device configuration",
            ))?;
        let offered_pairs = crate::transport::promised(
            features & F_MQ != 0,
            || transport.config16(CONFIG_MAX_PAIRS),
            "max_virtqueue_pairs in the device configuration",
        )?;
        let pairs = match offered_pairs {
            Some(max) => pairs_to_use(max)?,
            None => 1,
        };
        let chain = if transport.is_modern() || features & F_ANY_LAYOUT != 0 {
            1
        } else {
            2
        };
        let reset_wanted = Arc::new(AtomicBool::new(false));
        let mut queues = Vec::with_capacity(usize::from(pairs));
        let mut vectors = Vec::with_capacity(usize::from(pairs));
        for pair in 0..pairs {
            let (rx_index, tx_index, _) = queue_numbers(pair, offered_pairs.unwrap_or(1))?;
            let rx = transport.allocate_queue(function, rx_index, QUEUE_ENTRIES)?;
            // Receive queue `pair` signals through MSI-X entry `pair`, when the table
            // has it and the device takes it.
            vectors.push(transport.queue_entry(
                msix.as_ref(),
                rx_index,
                pair,
                &alloc::format!("virtio-net {}", function.address()),
            ));
            let tx = transport.allocate_queue(function, tx_index, QUEUE_ENTRIES)?;
            let (rx_count, tx_count) = (frames_in(rx.size(), chain)?, frames_in(tx.size(), chain)?);
            let tso_count = if features & F_HOST_TSO4 != 0 {
                TSO_BUFFERS.min(tx_count / 2)
            } else {
                0
            };
            let tx_small = tx_count - tso_count;
            let mut pair = Pair {
                rx_buffers: function.dma(usize::from(rx_count) * BUFFER_STRIDE)?,
                tx_buffers: function.dma(usize::from(tx_small) * BUFFER_STRIDE)?,
                tso: match tso_count {
                    0 => None,
                    count => Some(TsoBuffers {
                        dma: function.dma(usize::from(count) * TSO_STRIDE)?,
                        free: Vec::new(),
                    }),
                },
                tx_small,
                rx,
                rx_count,
                tx,
                tx_free: Vec::new(),
                tx_count,
                tx_link: vec![NO_LINK; usize::from(tx_count)],
                tx_frames: 0,
                watch: TransmitWatch::new(platform, transport.clone(), features & F_STATUS != 0),
                fault: None,
                health: PairHealth::new(reset_wanted.clone(), GIVEN_UP),
            };
            // Every transmit buffer starts free, as after a reset.
            pair.forget_transmits();
            queues.push(Arc::new(spin::Mutex::new(pair)));
        }
        let control = match offered_pairs {
            Some(max) => {
                let (_, _, index) = queue_numbers(0, max)?;
                Some((
                    transport.allocate_queue(function, index, CONTROL_ENTRIES)?,
                    function.dma(64)?,
                ))
            }
            None => None,
        };
        let tcp_segmentation = queues
            .iter()
            .all(|pair| pair.lock().tso.is_some())
            .then_some(TSO_MAX_FRAME);
        let recovery = Recovery::new(features);
        let mut net = Self {
            address: function.address(),
            shape: Shape {
                chain,
                header_len: if transport.is_modern() {
                    HEADER_MODERN
                } else {
                    HEADER_LEGACY
                },
                checksum_offload: features & F_CSUM != 0,
            },
            tcp_segmentation,
            mac,
            link_status: features & F_STATUS != 0,
            pairs: queues,
            offered_pairs,
            control: None,
            transport,
            platform,
            wakes: QueueWakes::new(msix, vectors),
            recovery,
            returned_at_reset: 0,
            reset_wanted,
        };
        // From here on, dropping `net` resets the device before its memory goes.
        net.start(control)?;
        Ok(net)
    }

    /// Gives the device its queues and receive buffers, starts it, and with more than
    /// one pair enables them with `VQ_PAIRS_SET` (an error when the device refuses or
    /// does not answer: the pairs it offered are then not what the driver uses).
    fn start(&mut self, control: Option<(Virtqueue, Dma)>) -> Result<(), DeviceError> {
        let header = self.shape.header_len as u32;
        let chain = self.shape.chain;
        for pair in &self.pairs {
            let mut pair = pair.lock();
            self.transport.enable_queue(&pair.rx)?;
            self.transport.enable_queue(&pair.tx)?;
            for buffer in 0..pair.rx_count {
                let address = pair.rx_buffers.phys() + u64::from(buffer) * BUFFER_STRIDE as u64;
                let head = buffer * chain;
                if chain == 1 {
                    let len = header + ETHERNET_MAX_FRAME as u32;
                    pair.rx.set_descriptor(head, address, len, DESC_WRITE, 0);
                } else {
                    let frame = address + u64::from(header);
                    pair.rx
                        .set_descriptor(head, address, header, DESC_WRITE | DESC_NEXT, head + 1);
                    pair.rx.set_descriptor(
                        head + 1,
                        frame,
                        ETHERNET_MAX_FRAME as u32,
                        DESC_WRITE,
                        0,
                    );
                }
                pair.rx.push(head);
            }
            for buffer in 0..pair.tx_count {
                let address = pair.tx_address(buffer);
                let head = buffer * chain;
                if chain == 1 {
                    pair.tx.set_descriptor(head, address, 0, 0, 0);
                } else {
                    let frame = address + u64::from(header);
                    pair.tx
                        .set_descriptor(head, address, header, DESC_NEXT, head + 1);
                    pair.tx.set_descriptor(head + 1, frame, 0, 0, 0);
                }
            }
        }
        if let Some((queue, _)) = &control {
            self.transport.enable_queue(queue)?;
        }
        // Held from here: the device knows the control queue's rings.
        self.control = control;
        self.transport.driver_ok();
        // The device may be notified only after DRIVER_OK (spec 3.1.1).
        for pair in &self.pairs {
            let mut pair = pair.lock();
            pair.rx.publish();
        }
        // The device starts with one pair (spec 5.1.6.5.5); more need the command.
        if self.pairs.len() > 1 {
            self.set_pairs(self.pairs.len() as u16)?;
        }
        Ok(())
    }

    /// Sends `VQ_PAIRS_SET` with `pairs` on the control queue and waits for the device's
    /// acknowledgement: [`DeviceError::Status`] with its ack byte when it refuses,
    /// [`DeviceError::Timeout`] when it does not answer within a second;
    /// [`DeviceError::Unsupported`] when the device's control queue is too small for the
    /// command's descriptors (nothing is written past its table).
    fn set_pairs(&mut self, pairs: u16) -> Result<(), DeviceError> {
        let platform = self.platform;
        let Some((queue, buffer)) = &mut self.control else {
            return Err(DeviceError::Unsupported(
                "a control queue (VIRTIO_NET_F_CTRL_VQ)",
            ));
        };
        if queue.size() < CONTROL_CHAIN {
            return Err(DeviceError::Unsupported(
                "a control queue of at least 3 entries",
            ));
        }
        // Three descriptors (spec 5.1.6.5): class and command, the pair count (LE), and
        // the ack the device writes; separate, as legacy devices may require.
        let [low, high] = pairs.to_le_bytes();
        buffer
            .bytes_mut(0, 5)
            .copy_from_slice(&[CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, low, high, 0xFF]);
        let base = buffer.phys();
        queue.set_descriptor(0, base, 2, DESC_NEXT, 1);
        queue.set_descriptor(1, base + 2, 2, DESC_NEXT, 2);
        queue.set_descriptor(2, base + 4, 1, DESC_WRITE, 0);
        queue.push(0);
        queue.publish();
        // The command's chain, head 0, is the only one the device holds: the queue
        // drops any other used entry. The wait looks once more past the deadline, so a
        // core held up meanwhile still takes an answer that came.
        rexo_devio::wait_until_or_fault(platform, VQ_PAIRS_SET, CTRL_TIMEOUT_MS, || {
            Ok(queue.pop_used()?.is_some())
        })?;
        match buffer.bytes(4, 1)[0] {
            CTRL_OK => Ok(()),
            ack => Err(DeviceError::Status {
                what: VQ_PAIRS_SET,
                status: u32::from(ack),
            }),
        }
    }

    /// Runs `call` on pair `queue` of a device not given up, with the frames' shape
    /// ([`PairedDevice::run_on_pair`]: a device that broke one of the pair's used rings,
    /// its index run past the ring, is reset).
    fn on_pair<T>(
        &mut self,
        queue: usize,
        mut call: impl FnMut(&mut Pair, Shape) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        self.recovery.usable()?;
        let shape = self.shape;
        self.run_on_pair(queue, |pair| call(pair, shape))
    }

    /// Chains the device returned so far on every pair's queues.
    fn returned(&self) -> u64 {
        self.pairs
            .iter()
            .map(|pair| {
                let pair = pair.lock();
                pair.rx.returned() + pair.tx.returned()
            })
            .sum()
    }
}

impl PairedDevice for VirtioNet {
    type Pair = Pair;

    fn pairs(&self) -> &[Arc<spin::Mutex<Pair>>] {
        &self.pairs
    }

    fn reset_wanted(&self) -> &AtomicBool {
        &self.reset_wanted
    }

    /// Resets a device that failed on a pair (a used ring broken, a transmit queue
    /// stalled, DEVICE_NEEDS_RESET: [`Restart::recover`], logging the first failed
    /// pair's reason); a frame received or sent since the last reset starts the count
    /// of resets in a row again.
    fn reset_device(&mut self) -> Result<(), DeviceError> {
        if self.returned() != self.returned_at_reset {
            self.recovery.device_finished();
        }
        let mut why = None;
        for pair in &self.pairs {
            let fault = pair.lock().fault.take();
            why = why.or(fault);
        }
        self.recover(why.unwrap_or(PAIR_FAILED))
    }
}

impl Restart for VirtioNet {
    const NAME: &'static str = "virtio-net";
    const GIVEN_UP: DeviceError = GIVEN_UP;

    fn parts(&mut self) -> Parts<'_> {
        (
            &mut self.recovery,
            &mut self.wakes,
            &self.transport,
            self.platform,
        )
    }

    /// Every queue renewed (receive queue `q` with MSI-X entry `q`), the transmit
    /// buffers all free again (the frames in flight are lost), then started as at probe:
    /// the receive buffers posted, DRIVER_OK, and the pairs enabled again.
    fn renew(&mut self) -> Result<(), DeviceError> {
        let mut lost = 0;
        for (index, pair) in self.pairs.iter().enumerate() {
            let mut pair = pair.lock();
            self.transport
                .renew_queue(&mut pair.rx, self.wakes.entry(index))?;
            self.transport.renew_queue(&mut pair.tx, None)?;
            lost += pair.forget_transmits();
        }
        if lost > 0 {
            log::warn!("virtio-net: {lost} frame(s) in flight on transmit lost to the reset");
        }
        let mut control = self.control.take();
        if let Some((queue, _)) = &mut control {
            self.transport.renew_queue(queue, None)?;
        }
        self.start(control)?;
        self.returned_at_reset = self.returned();
        Ok(())
    }
}

impl Pair {
    /// `used` (a used ring's next entry), or [`PAIR_BROKEN`] if the device broke the
    /// ring: the pair is then marked broken, and the device told to reset itself.
    #[inline(always)]
    fn checked<T>(&mut self, used: Result<T, DeviceError>) -> Result<T, DeviceError> {
        match used {
            Err(DeviceError::Failed(USED_INDEX_OVERRUN)) => {
                Err(self.mark_broken(USED_INDEX_OVERRUN))
            }
            used => used,
        }
    }

    /// Marks the pair broken because of `why` ([`PairHealth::mark_broken`]), says so
    /// in the log naming it, keeps `why` for the reset's log, and asks the device for a
    /// reset: [`PAIR_BROKEN`].
    #[cold]
    #[inline(never)]
    fn mark_broken(&mut self, why: &'static str) -> DeviceError {
        log::error!(
            "virtio-net: pair {}: {why} ({} frame(s) in flight on transmit); the whole \
             device is reset (at once when this call came through the device, else by its \
             next receive, send or transmit_pending through it); the pair fails until then",
            self.rx.index() / 2,
            self.tx_frames,
        );
        self.fault = Some(why);
        self.health.mark_broken()
    }

    /// After a reclaim that left frames in flight, or found the transmit queue full:
    /// [`PAIR_BROKEN`] (the pair marked broken, the device asked for a reset) once the
    /// device has held frames with none returned for over [`STATUS_LOOK_MS`] and says
    /// DEVICE_NEEDS_RESET, or for over [`TX_STALL_TIMEOUT_MS`] with the link up (a link
    /// down holds frames back: the count starts again). Counted from the first look
    /// that found frames held since one was last returned.
    fn check_transmit_stall(&mut self) -> Result<(), DeviceError> {
        let platform = self.watch.platform;
        let mut now = 0;
        let read_clock = || {
            now = platform.now_ns();
            now
        };
        let Some(stalled) = self
            .watch
            .stall
            .look_holding(self.tx_frames > 0, read_clock)
        else {
            return Ok(());
        };
        if stalled > STATUS_LOOK_MS * NS_PER_MS && self.watch.device.needs_reset() {
            return Err(self.mark_broken(NEEDS_RESET));
        }
        if stalled <= TX_STALL_TIMEOUT_MS * NS_PER_MS {
            return Ok(());
        }
        if !link_up(&self.watch.device, self.watch.link_status) {
            self.watch.stall.restart(now);
            return Ok(());
        }
        Err(self.mark_broken(TRANSMIT_STALLED))
    }

    /// The bus address of transmit buffer `buffer` (small or for segmentation).
    fn tx_address(&self, buffer: u16) -> u64 {
        match (&self.tso, buffer.checked_sub(self.tx_small)) {
            (Some(tso), Some(index)) => tso.dma.phys() + u64::from(index) * TSO_STRIDE as u64,
            _ => self.tx_buffers.phys() + u64::from(buffer) * BUFFER_STRIDE as u64,
        }
    }

    /// Hands the frame whose first buffer is `head_buffer` to the device: its header
    /// descriptor (set at start) when the chain is 2, then one data descriptor per
    /// buffer of `buffers` covering `lengths[i]` bytes after the header room.
    fn post(&mut self, chain: u16, header_len: usize, buffers: &[u16], lengths: &[usize]) {
        // Each segment's data descriptor is its buffer's last (the first buffer's
        // header has its own descriptor, set at start, when the chain is 2).
        let data = |buffer: u16| buffer * chain + (chain - 1);
        for (i, (&buffer, &len)) in buffers.iter().zip(lengths).enumerate() {
            let (mut address, mut bytes) =
                (self.tx_address(buffer) + header_len as u64, len as u32);
            if i == 0 && chain == 1 {
                address -= header_len as u64;
                bytes += header_len as u32;
            }
            let (flags, next) = match buffers.get(i + 1) {
                Some(&next) => (DESC_NEXT, data(next)),
                None => (0, 0),
            };
            self.tx
                .set_descriptor(data(buffer), address, bytes, flags, next);
            self.tx_link[usize::from(buffer)] = buffers.get(i + 1).copied().unwrap_or(NO_LINK);
        }
        self.tx_frames += 1;
        self.tx.push(buffers[0] * chain);
        self.tx.publish();
    }

    /// Frees every transmit buffer, for a new pair or a device that was reset and forgot
    /// the frames in flight: returns how many frames were lost.
    fn forget_transmits(&mut self) -> usize {
        self.tx_free = (0..self.tx_small).rev().collect();
        if let Some(tso) = &mut self.tso {
            tso.free = (self.tx_small..self.tx_count).rev().collect();
        }
        self.tx_link.fill(NO_LINK);
        self.watch.stall.progress();
        core::mem::take(&mut self.tx_frames)
    }

    /// Takes back the transmit buffers the device finished with (the queue hands back
    /// only heads the device holds: each the first buffer of a frame in flight).
    fn reclaim(&mut self, chain: u16) -> Result<(), DeviceError> {
        loop {
            let used = self.tx.pop_used();
            let Some(used) = self.checked(used)? else {
                return Ok(());
            };
            self.tx_frames -= 1;
            self.watch.stall.progress();
            // The frame's buffers, its head's and each further segment's.
            let mut next = used.id / chain;
            while next != NO_LINK {
                match &mut self.tso {
                    Some(tso) if next >= self.tx_small => tso.free.push(next),
                    _ => self.tx_free.push(next),
                }
                next = core::mem::replace(&mut self.tx_link[usize::from(next)], NO_LINK);
            }
        }
    }

    /// Hands received frames to `deliver`, counting each in `delivered`, until `budget`
    /// are counted, and queues their buffers to be re-posted (the caller publishes them).
    fn take_received(
        &mut self,
        chain: u16,
        header_len: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
        delivered: &mut usize,
    ) -> Result<(), DeviceError> {
        while *delivered < budget {
            // Only a head the device holds, a posted buffer's (the queue drops a repeat
            // or a stranger, which would post a buffer twice).
            let used = self.rx.pop_used();
            let Some(used) = self.checked(used)? else {
                break;
            };
            let buffer = used.id / chain;
            let len = (used.len as usize).saturating_sub(header_len);
            // A frame shorter than an Ethernet header or longer than the buffer is the
            // device's mistake: dropped, its buffer re-posted.
            if (ETHERNET_HEADER..=ETHERNET_MAX_FRAME).contains(&len) {
                let at = usize::from(buffer) * BUFFER_STRIDE + header_len;
                deliver(self.rx_buffers.bytes(at, len));
                *delivered += 1;
            }
            self.rx.push(used.id);
        }
        Ok(())
    }

    /// [`QueuePair::receive`] counting into `delivered`, which keeps the frames delivered
    /// before a failure part way through the batch (a broken used ring): the call after
    /// the reset passes the same count and has the rest of `budget`. A receive that
    /// takes a frame spends the queue's wake: the device is asked for no more
    /// interrupts on it (NO_INTERRUPT) until the next `wake_on_receive`.
    fn receive_counted(
        &mut self,
        shape: Shape,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
        delivered: &mut usize,
    ) -> Result<(), DeviceError> {
        if !self.health.usable()? {
            return Ok(());
        }
        let (chain, header_len) = (shape.chain, shape.header_len);
        let returned = self.rx.returned();
        let taken = self.take_received(chain, header_len, budget, deliver, delivered);
        // The core is polling: a frame per interrupt would cost it an interrupt entry,
        // an EOI and its next nap (the kernel remembers the wake).
        if self.rx.returned() != returned {
            self.rx.stop_interrupts();
        }
        // Every buffer handed back goes to the device with one doorbell.
        self.rx.publish();
        taken
    }
}

/// What every pair's frames look like: the same for all pairs of a device.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    /// Descriptors per frame: 1, or 2 when the header needs its own.
    chain: u16,
    /// Bytes of the virtio-net header before each frame.
    header_len: usize,
    /// The device computes transport checksums (`VIRTIO_NET_F_CSUM`: QEMU offers it
    /// over a tap, not over user networking or sockets).
    checksum_offload: bool,
}

/// The frame path of one pair (the `NetDevice` calls of its queue), for the device and
/// for the pair's own handle ([`rexo_devio::pairs::split`]) alike. While the device is
/// being reset the rings are left alone (nothing received, sends
/// [`DeviceError::QueueFull`]); once it is given up every call is [`GIVEN_UP`], and once
/// it broke one of the pair's used rings, [`PAIR_BROKEN`] until it is reset.
impl QueuePair for Pair {
    type Layout = Shape;

    /// [`NetDevice::receive`] on this pair.
    fn receive(
        &mut self,
        shape: Shape,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        let mut delivered = 0;
        self.receive_counted(shape, budget, deliver, &mut delivered)?;
        Ok(delivered)
    }

    /// [`NetDevice::send_segments`] on this pair: one descriptor chain: the virtio-net
    /// header and segment 0 in the first buffer (two descriptors on legacy devices
    /// without ANY_LAYOUT), then one descriptor per further segment, each in its own
    /// buffer (the segments are never copied together). A frame in more segments than
    /// the pair has small transmit buffers (4 on a queue of 8 entries with HOST_TSO4, 2
    /// on a legacy queue of 4 without ANY_LAYOUT) is [`DeviceError::TooManySegments`]
    /// naming that count, not `QueueFull`: the buffers would never all be free.
    fn send_segments(
        &mut self,
        shape: Shape,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        if offload && !shape.checksum_offload {
            return Err(DeviceError::Unsupported(
                "checksum offload (VIRTIO_NET_F_CSUM)",
            ));
        }
        if !self.health.usable()? {
            return Err(DeviceError::QueueFull);
        }
        let (chain, header_len) = (shape.chain, shape.header_len);
        DeviceError::check_segments(segments, ETHERNET_MAX_FRAME)?;
        // Each segment takes a small transmit buffer: a frame in more than the pair has
        // would never find them free.
        if segments.len() > usize::from(self.tx_small) {
            return Err(DeviceError::TooManySegments {
                segments: segments.len(),
                max: self.tx_small.into(),
            });
        }
        if offload && segments.len() > 1 {
            return Err(DeviceError::Unsupported(
                "checksum offload of a frame in several segments",
            ));
        }
        if self.tx_free.len() < segments.len() {
            self.reclaim(chain)?;
        }
        if self.tx_free.len() < segments.len() {
            self.check_transmit_stall()?;
            return Err(DeviceError::QueueFull);
        }
        // Segment i right after the header room of the i-th buffer taken.
        let mut buffers = [0u16; MAX_SEGMENTS];
        let mut ranges = [(0usize, 0usize); MAX_SEGMENTS];
        for (i, &len) in segments.iter().enumerate() {
            let buffer = self.tx_free.pop().ok_or(DeviceError::QueueFull)?;
            buffers[i] = buffer;
            ranges[i] = (usize::from(buffer) * BUFFER_STRIDE + header_len, len);
        }
        let (buffers, ranges) = (&buffers[..segments.len()], &ranges[..segments.len()]);
        let mut checksum = None;
        let block = self
            .tx_buffers
            .bytes_mut(0, usize::from(self.tx_small) * BUFFER_STRIDE);
        let filled = rexo_api::device::lend_ranges(block, ranges, |parts| {
            if !fill(parts) {
                return false;
            }
            checksum = rexo_api::device::seed_checksum(parts, offload);
            true
        });
        if filled != Some(true) {
            // Back unsent, in the order they were taken.
            self.tx_free.extend(buffers.iter().rev());
            return Err(match filled {
                Some(_) => DeviceError::Withdrawn,
                None => DeviceError::TooManySegments {
                    segments: segments.len(),
                    max: MAX_SEGMENTS,
                },
            });
        }
        let first = usize::from(buffers[0]) * BUFFER_STRIDE;
        self.tx_buffers
            .bytes_mut(first, header_len)
            .copy_from_slice(&virtio_header(checksum, None)[..header_len]);
        let mut lengths = [0usize; MAX_SEGMENTS];
        for (length, &(_, len)) in lengths.iter_mut().zip(ranges) {
            *length = len;
        }
        self.post(chain, header_len, buffers, &lengths[..buffers.len()]);
        Ok(())
    }

    /// [`NetDevice::send_tcp_segmented`] on this pair: one descriptor chain over one
    /// segmentation buffer: the header asks for
    /// `GSO_TCPV4` with the frame's `hdr_len` and the `gso_size` `fill` returned, and the
    /// checksum (a frame that fits one segment goes with the checksum request only).
    fn send_tcp_segmented(
        &mut self,
        shape: Shape,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), DeviceError> {
        if !self.health.usable()? {
            return Err(DeviceError::QueueFull);
        }
        let (chain, header_len) = (shape.chain, shape.header_len);
        let tso_full = |pair: &Self| pair.tso.as_ref().is_some_and(|tso| tso.free.is_empty());
        if tso_full(self) {
            self.reclaim(chain)?;
            if tso_full(self) {
                self.check_transmit_stall()?;
            }
        }
        let tx_small = self.tx_small;
        let Some(tso) = self.tso.as_mut() else {
            return Err(DeviceError::Unsupported(
                "TCP segmentation offload (VIRTIO_NET_F_HOST_TSO4)",
            ));
        };
        DeviceError::check_frame(len, TSO_MAX_FRAME)?;
        let buffer = tso.free.pop().ok_or(DeviceError::QueueFull)?;
        let at = usize::from(buffer - tx_small) * TSO_STRIDE;
        let frame = tso.dma.bytes_mut(at + header_len, len);
        let cut = match fill(frame) {
            None => Err(DeviceError::Withdrawn),
            Some(_) if len <= ETHERNET_MAX_FRAME => {
                rexo_api::device::seed_checksum(&mut [frame], true)
                    .map(|checksum| (checksum, None))
                    .ok_or(DeviceError::NotSegmentable("not an IPv4 TCP frame"))
            }
            Some(mss) => rexo_api::device::tcp_segmentation(frame, mss, ETHERNET_MAX_FRAME)
                .map(|cut| (cut.checksum, Some(cut))),
        };
        let (checksum, cut) = match cut {
            Ok(done) => done,
            Err(error) => {
                tso.free.push(buffer);
                return Err(error);
            }
        };
        tso.dma
            .bytes_mut(at, header_len)
            .copy_from_slice(&virtio_header(Some(checksum), cut)[..header_len]);
        self.post(chain, header_len, &[buffer], &[len]);
        Ok(())
    }

    /// [`NetDevice::transmit_pending`] on this pair: [`PAIR_BROKEN`] when the frames
    /// in flight show the device stopped (DEVICE_NEEDS_RESET, or a stall).
    fn transmit_pending(&mut self, shape: Shape) -> Result<usize, DeviceError> {
        if self.health.usable()? {
            self.reclaim(shape.chain)?;
            self.check_transmit_stall()?;
        }
        Ok(self.tx_frames)
    }
}

impl NetDevice for VirtioNet {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac,
            max_frame: ETHERNET_MAX_FRAME,
            queues: self.pairs.len(),
            // The feature is taken only when the configuration holds the field.
            link_up: link_up(&self.transport, self.link_status),
            checksum_offload: self.shape.checksum_offload,
            tcp_segmentation: self.tcp_segmentation,
            receive_steering: None,
            pair: None,
        }
    }

    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        // One count through both calls: a broken used ring met part way through a batch
        // fails the call after some frames were delivered, and the call after the reset
        // has the rest of the budget.
        let mut delivered = 0;
        self.on_pair(queue, |pair, shape| {
            pair.receive_counted(shape, budget, deliver, &mut delivered)
        })?;
        Ok(delivered)
    }

    fn send_segments(
        &mut self,
        queue: usize,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        self.on_pair(queue, |pair, shape| {
            pair.send_segments(shape, segments, offload, fill)
        })
    }

    fn send_tcp_segmented(
        &mut self,
        queue: usize,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), DeviceError> {
        self.on_pair(queue, |pair, shape| {
            pair.send_tcp_segmented(shape, len, fill)
        })
    }

    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
        self.on_pair(queue, |pair, shape| pair.transmit_pending(shape))
    }

    /// Receive queue `q` signals through MSI-X entry `q`, masked (its messages pending)
    /// until a core asks to be woken, and unmasked until `None`. A receive that takes a
    /// frame spends the wake without touching the table: it sets NO_INTERRUPT in the
    /// queue's available ring, a store to memory (no MMIO), so a core polling a busy
    /// queue is not interrupted for every frame. Arming clears the flag, then looks at
    /// the used ring (after a full fence): a frame that came while the flag was set
    /// raised no message, so the driver wakes the core itself; one that comes after the
    /// look finds the flag clear and sends the message. Unmasking with one pending
    /// wakes the core at once too: callers re-check the ring after waking, as
    /// `sleep_ns` says. The flag, not a masked entry, because a pair's own handle
    /// ([`NetDevice::split_queues`]) receives without the device and its table.
    ///
    /// Never waits for the pair's lock: a pair's own handle holds it through the app's
    /// closures, and this runs with the device's registry slot locked. When the pair is
    /// busy the core is woken at once instead (the wake spent, the flag left to the
    /// receive in progress): it looks at the ring again and arms again before its next
    /// sleep, which clears the flag, so no frame goes unseen.
    fn wake_on_receive(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        self.recovery.usable()?;
        self.wakes.arm(queue, core)?;
        if core.is_some()
            && pair_at(&self.pairs, queue)?
                .try_lock()
                .is_none_or(|mut pair| pair.rx.resume_interrupts())
        {
            self.wakes.wake_now(queue);
        }
        Ok(())
    }

    /// Each handle holds its pair (behind the pair's own lock, which only the core
    /// driving that pair takes on the frame path: pairs share no mutable state, each has
    /// its own rings, buffers and doorbell).
    fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
        Ok(rexo_devio::pairs::split(
            &self.pairs,
            self.shape,
            self.info(),
            "arming a virtio-net pair's wake-up without the device",
        ))
    }
}

/// The virtio-net header (spec 5.1.6: flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset, little-endian; `num_buffers` zero): NEEDS_CSUM with `checksum`, and
/// `GSO_TCPV4` with `cut`.
fn virtio_header(
    checksum: Option<rexo_api::device::TransportChecksum>,
    cut: Option<rexo_api::device::TcpSegmentation>,
) -> [u8; HEADER_MODERN] {
    let mut header = [0u8; HEADER_MODERN];
    if let Some(layout) = checksum {
        header[0] = HEADER_NEEDS_CSUM;
        header[6..8].copy_from_slice(&(layout.start as u16).to_le_bytes());
        header[8..10].copy_from_slice(&(layout.offset as u16).to_le_bytes());
    }
    if let Some(cut) = cut {
        header[1] = GSO_TCPV4;
        header[2..4].copy_from_slice(&(cut.header_len as u16).to_le_bytes());
        header[4..6].copy_from_slice(&(cut.mss as u16).to_le_bytes());
    }
    header
}

impl Drop for VirtioNet {
    /// Resets the device before its rings and buffers are freed (a pair's memory once its
    /// last handle goes too); a device whose status does not read back 0 may still use
    /// them, so they are kept for good.
    fn drop(&mut self) {
        if let Err(error) = self.transport.reset(self.platform) {
            log::error!("{} virtio-net: reset before release: {error}", self.address);
            let mut pairs: Vec<_> = self.pairs.iter().map(|pair| pair.lock()).collect();
            let control = self
                .control
                .iter_mut()
                .flat_map(|(queue, command)| [queue.memory_mut(), command]);
            rexo_devio::abandon_to_device(
                &format_args!("{} virtio-net", self.address),
                pairs
                    .iter_mut()
                    .flat_map(|pair| pair.memory_mut())
                    .chain(control),
            );
        }
    }
}

impl Pair {
    /// Every block of DMA memory the device is given for this pair.
    fn memory_mut(&mut self) -> impl Iterator<Item = &mut Dma> {
        let tso = self.tso.iter_mut().map(|tso| &mut tso.dma);
        [
            self.rx.memory_mut(),
            &mut self.rx_buffers,
            self.tx.memory_mut(),
            &mut self.tx_buffers,
        ]
        .into_iter()
        .chain(tso)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_devio::pairs::PairState;

    /// A pair over host memory with `buffers` receive and `transmits` transmit buffers
    /// (a chain of one descriptor each; queues of `2 * buffers` entries), none posted,
    /// on a device of its own.
    fn unposted_pair(buffers: u16, transmits: u16) -> Pair {
        let (_, transport) = crate::transport::HostDevice::modern(2 * buffers);
        let platform = rexo_devio::host::HostPlatform::leaked();
        unposted_pair_from(platform, transport, buffers, transmits)
    }

    /// As [`unposted_pair`], its memory and clock from `platform`, on the device whose
    /// registers are `transport`.
    fn unposted_pair_from(
        platform: &'static rexo_devio::host::HostPlatform,
        transport: Transport,
        buffers: u16,
        transmits: u16,
    ) -> Pair {
        let queue = |index| {
            let doorbell = crate::queue::Doorbell::Mmio {
                window: rexo_devio::host::registers(4),
                at: 0,
                queue: index,
            };
            Virtqueue::new(platform, index, 2 * buffers, doorbell).unwrap()
        };
        let tx_bytes = usize::from(transmits.max(1)) * BUFFER_STRIDE;
        let mut pair = Pair {
            rx: queue(0),
            rx_buffers: Dma::new(platform, usize::from(buffers) * BUFFER_STRIDE).unwrap(),
            rx_count: buffers,
            tx: queue(1),
            tx_buffers: Dma::new(platform, tx_bytes).unwrap(),
            tx_free: Vec::new(),
            tx_small: transmits,
            tso: None,
            tx_count: transmits,
            tx_link: vec![NO_LINK; usize::from(transmits)],
            tx_frames: 0,
            watch: TransmitWatch::new(platform, transport, false),
            fault: None,
            health: PairHealth::new(Arc::new(AtomicBool::new(false)), GIVEN_UP),
        };
        pair.forget_transmits();
        pair
    }

    /// A pair over host memory with `buffers` receive buffers posted, and no transmit
    /// buffers; the test plays the device.
    fn pair_on_host(buffers: u16) -> Pair {
        let mut pair = unposted_pair(buffers, 0);
        for buffer in 0..buffers {
            pair.rx.push(buffer);
        }
        pair.rx.publish();
        pair
    }

    /// Receive buffers of the interface [`net_on_host`] makes.
    const HOST_RX_BUFFERS: u16 = 4;

    /// A started interface of one pair ([`HOST_RX_BUFFERS`] receive and 2 transmit
    /// buffers) on a modern device played by the test, the device, and the platform
    /// the pair's memory and the clock come from.
    fn net_on_host() -> (
        VirtioNet,
        crate::transport::HostDevice,
        &'static rexo_devio::host::HostPlatform,
    ) {
        let platform = rexo_devio::host::HostPlatform::leaked();
        let (device, transport) = crate::transport::HostDevice::modern(2 * HOST_RX_BUFFERS);
        let features = transport.negotiate(platform, 0, 0).unwrap();
        let recovery = Recovery::new(features);
        let mut pair = unposted_pair_from(platform, transport.clone(), HOST_RX_BUFFERS, 2);
        let reset_wanted = Arc::new(AtomicBool::new(false));
        pair.health = PairHealth::new(reset_wanted.clone(), GIVEN_UP);
        let mut net = VirtioNet {
            transport,
            platform,
            address: Address::new(0, 0, 5, 0).unwrap(),
            mac: [2, 0, 0, 0, 0, 1],
            link_status: false,
            shape: Shape {
                chain: 1,
                header_len: HEADER_MODERN,
                checksum_offload: false,
            },
            tcp_segmentation: None,
            pairs: vec![Arc::new(spin::Mutex::new(pair))],
            offered_pairs: None,
            control: None,
            wakes: QueueWakes::new(None, vec![None]),
            recovery,
            returned_at_reset: 0,
            reset_wanted,
        };
        net.start(None).unwrap();
        (net, device, platform)
    }

    /// Plays a device whose used index on `net`'s receive queue runs past the ring.
    fn overrun_the_receive_ring(net: &VirtioNet) {
        let mut device_side = crate::queue::DeviceSide::default();
        let mut pair = net.pairs[0].lock();
        for _ in 0..pair.rx.size() + 2 {
            device_side.give_back(&mut pair.rx, 0, 0);
        }
    }

    /// Sends a 60-byte frame on `net`'s queue 0.
    fn send_frame(net: &mut VirtioNet) -> Result<(), DeviceError> {
        net.send_segments(0, &[60], false, &mut |parts| {
            parts[0].fill(0x42);
            true
        })
    }

    /// Sends a frame on both of `net`'s transmit buffers, which the device takes and
    /// never returns; the first look at the queue (a send finding it full) starts the
    /// stall's count.
    fn hold_every_transmit_buffer(net: &mut VirtioNet) {
        send_frame(net).unwrap();
        send_frame(net).unwrap();
        let mut tx_side = crate::queue::DeviceSide::default();
        let pair = net.pairs[0].lock();
        assert!(tx_side.take(&pair.tx).is_some() && tx_side.take(&pair.tx).is_some());
        drop(pair);
        assert_eq!(send_frame(net), Err(DeviceError::QueueFull));
    }

    /// The device status of a started device.
    const RUNNING: u8 = crate::transport::STATUS_ACKNOWLEDGE
        | crate::transport::STATUS_DRIVER
        | crate::transport::STATUS_FEATURES_OK
        | crate::transport::STATUS_DRIVER_OK;

    /// A device that sets DEVICE_NEEDS_RESET may stop processing (spec 2.1.2): its
    /// transmit queue then holds frames for good. `transmit_pending` used to count them
    /// for ever (and sends answered `QueueFull`), nothing logged or reset.
    #[test]
    fn a_device_needing_a_reset_is_reset_once_its_transmit_queue_stalls() {
        let (mut net, device, platform) = net_on_host();
        hold_every_transmit_buffer(&mut net);
        device.set_status(RUNNING | crate::transport::STATUS_NEEDS_RESET);
        assert_eq!(
            net.transmit_pending(0),
            Ok(2),
            "the status is not read at once"
        );
        platform.advance_clock(STATUS_LOOK_MS * NS_PER_MS);
        assert_eq!(
            net.transmit_pending(0),
            Ok(0),
            "the frames lost to the reset"
        );
        assert_eq!(device.status(), RUNNING, "reset and started again");
        assert_eq!(send_frame(&mut net), Ok(()));
        assert_eq!(net.transmit_pending(0), Ok(1));
    }

    /// A send that finds the transmit queue of a device needing a reset full resets it
    /// and goes out on the renewed device (it used to answer `QueueFull` for good).
    #[test]
    fn a_send_finding_the_queue_full_of_a_device_needing_a_reset_goes_out_after_it() {
        let (mut net, device, platform) = net_on_host();
        hold_every_transmit_buffer(&mut net);
        device.set_status(RUNNING | crate::transport::STATUS_NEEDS_RESET);
        platform.advance_clock(STATUS_LOOK_MS * NS_PER_MS);
        assert_eq!(send_frame(&mut net), Ok(()));
        assert_eq!(device.status(), RUNNING, "reset and started again");
        let mut tx_side = crate::queue::DeviceSide::default();
        assert_eq!(
            tx_side.take(&net.pairs[0].lock().tx),
            Some(0),
            "sent after it"
        );
        assert_eq!(net.transmit_pending(0), Ok(1));
    }

    /// A segmented send that finds every segmentation buffer in flight looks at the
    /// stall too: on a device needing a reset it resets it and goes on on the renewed
    /// pair (here its frame is withdrawn: it took a buffer, so the reset freed them).
    #[test]
    fn a_segmented_send_finding_its_buffers_held_by_a_device_needing_a_reset_resets_it() {
        let (mut net, device, platform) = net_on_host();
        {
            let mut pair = net.pairs[0].lock();
            // A third transmit buffer, for segmentation, in flight and taken.
            pair.tso = Some(TsoBuffers {
                dma: Dma::new(platform, TSO_STRIDE).unwrap(),
                free: Vec::new(),
            });
            pair.tx_count = 3;
            pair.tx_link.push(NO_LINK);
            pair.post(1, HEADER_MODERN, &[2], &[60]);
            let mut tx_side = crate::queue::DeviceSide::default();
            assert_eq!(tx_side.take(&pair.tx), Some(2));
        }
        let send = |net: &mut VirtioNet| net.send_tcp_segmented(0, 60, &mut |_| None);
        assert_eq!(send(&mut net), Err(DeviceError::QueueFull));
        device.set_status(RUNNING | crate::transport::STATUS_NEEDS_RESET);
        platform.advance_clock(STATUS_LOOK_MS * NS_PER_MS);
        assert_eq!(
            send(&mut net),
            Err(DeviceError::Withdrawn),
            "a buffer, after the reset"
        );
        assert_eq!(device.status(), RUNNING, "reset and started again");
    }

    /// A device that stops returning transmitted frames without saying so is reset once
    /// none came back for [`TX_STALL_TIMEOUT_MS`], counted from the first look and from
    /// the last frame returned.
    #[test]
    fn a_transmit_queue_that_stalls_resets_the_device_after_the_timeout() {
        let (mut net, device, platform) = net_on_host();
        hold_every_transmit_buffer(&mut net);
        let timeout = TX_STALL_TIMEOUT_MS * NS_PER_MS;
        platform.advance_clock(timeout * 4 / 5);
        // One frame comes back: the count starts again.
        {
            let mut tx_side = crate::queue::DeviceSide::default();
            let mut pair = net.pairs[0].lock();
            let head = tx_side.take(&pair.tx).unwrap();
            tx_side.give_back(&mut pair.tx, head.into(), 0);
        }
        assert_eq!(net.transmit_pending(0), Ok(1));
        platform.advance_clock(timeout * 4 / 5);
        assert_eq!(
            net.transmit_pending(0),
            Ok(1),
            "not stalled for long enough"
        );
        device.set_status(0);
        platform.advance_clock(timeout / 5);
        assert_eq!(
            net.transmit_pending(0),
            Ok(0),
            "the frame lost to the reset"
        );
        assert_eq!(device.status(), RUNNING, "reset and started again");
        assert_eq!(send_frame(&mut net), Ok(()));
    }

    /// With the link down the device may hold frames back: no reset then, and the count
    /// starts again once the link is up.
    #[test]
    fn a_transmit_queue_held_with_the_link_down_is_not_reset() {
        let (mut net, device, platform) = net_on_host();
        net.pairs[0].lock().watch.link_status = true;
        device.set_config16(CONFIG_STATUS, 0);
        hold_every_transmit_buffer(&mut net);
        let timeout = TX_STALL_TIMEOUT_MS * NS_PER_MS;
        platform.advance_clock(2 * timeout);
        assert_eq!(net.transmit_pending(0), Ok(2));
        assert_eq!(device.status(), RUNNING, "not reset");
        device.set_config16(CONFIG_STATUS, STATUS_LINK_UP);
        platform.advance_clock(timeout * 4 / 5);
        assert_eq!(
            net.transmit_pending(0),
            Ok(2),
            "counted from the link's look"
        );
        platform.advance_clock(timeout / 5);
        assert_eq!(net.transmit_pending(0), Ok(0), "reset");
    }

    /// A pair's own handle cannot reset the device: one whose transmit queue stalls
    /// answers [`PAIR_BROKEN`] until the next call through the device resets it.
    #[test]
    fn a_stall_met_by_a_pairs_own_handle_is_reset_by_the_next_call_through_the_device() {
        let (mut net, device, platform) = net_on_host();
        let mut handle = net.split_queues().unwrap().pop().unwrap();
        hold_every_transmit_buffer(&mut net);
        device.set_status(0);
        platform.advance_clock(TX_STALL_TIMEOUT_MS * NS_PER_MS + 1);
        assert_eq!(handle.transmit_pending(0), Err(PAIR_BROKEN));
        assert_eq!(device.status(), 0, "the handle cannot reset the device");
        assert_eq!(net.transmit_pending(0), Ok(0));
        assert_eq!(device.status(), RUNNING, "reset and started again");
        assert_eq!(handle.transmit_pending(0), Ok(0));
    }

    /// The reset rule of a broken used ring holds for a stall: given up after 3 resets
    /// in a row with no frame received or sent in between.
    #[test]
    fn a_device_stalled_again_after_three_resets_in_a_row_is_given_up() {
        let (mut net, device, platform) = net_on_host();
        for reset in 1..=crate::recovery::RESETS_IN_A_ROW {
            hold_every_transmit_buffer(&mut net);
            platform.advance_clock(TX_STALL_TIMEOUT_MS * NS_PER_MS + 1);
            assert_eq!(net.transmit_pending(0), Ok(0), "reset {reset}");
        }
        hold_every_transmit_buffer(&mut net);
        platform.advance_clock(TX_STALL_TIMEOUT_MS * NS_PER_MS + 1);
        assert_eq!(net.transmit_pending(0), Err(GIVEN_UP));
        assert_ne!(device.status() & crate::transport::STATUS_FAILED, 0);
    }

    /// A legacy queue of one entry, at two descriptors a frame, holds no frame: it is
    /// refused, not taken for an interface that receives nothing and sends nothing.
    #[test]
    fn a_queue_too_small_for_one_frame_is_refused() {
        let refused = Err(DeviceError::Unsupported("a queue too small for one frame"));
        assert_eq!(frames_in(1, 2), refused);
        assert_eq!(frames_in(2, 2), Ok(1));
        assert_eq!(frames_in(1, 1), Ok(1));
        assert_eq!(
            frames_in(1024, 2),
            Ok(QUEUE_ENTRIES),
            "at most QUEUE_ENTRIES"
        );
    }

    #[test]
    fn a_used_index_past_the_ring_resets_the_device_and_posts_the_receive_buffers_again() {
        use crate::transport::{
            STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
        };
        let (mut net, device, _) = net_on_host();
        let running = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
        assert_eq!(device.status(), running);
        // A frame in flight on transmit, taken by the device and never returned.
        send_frame(&mut net).unwrap();
        let mut tx_side = crate::queue::DeviceSide::default();
        assert!(tx_side.take(&net.pairs[0].lock().tx).is_some());
        assert_eq!(net.transmit_pending(0), Ok(1));
        // A status the reset and the start after it must overwrite.
        device.set_status(0);
        overrun_the_receive_ring(&net);
        assert_eq!(net.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        assert_eq!(device.status(), running, "reset and started again");
        // The frame in flight is lost, not pending for ever.
        assert_eq!(net.transmit_pending(0), Ok(0));
        // Every receive buffer is the device's again, from ring index 0.
        let mut rx_side = crate::queue::DeviceSide::default();
        let posted: Vec<_> =
            core::iter::from_fn(|| rx_side.take(&net.pairs[0].lock().rx)).collect();
        assert_eq!(posted, [0, 1, 2, 3]);
        // A frame the renewed device receives is delivered.
        {
            let mut pair = net.pairs[0].lock();
            let frame = [0x5A; 60];
            pair.rx_buffers
                .bytes_mut(HEADER_MODERN, frame.len())
                .copy_from_slice(&frame);
            rx_side.give_back(&mut pair.rx, 0, (HEADER_MODERN + frame.len()) as u32);
        }
        let mut frames = Vec::new();
        assert_eq!(
            net.receive(0, 8, &mut |bytes| frames.push(bytes.len())),
            Ok(1)
        );
        assert_eq!(frames, [60]);
        // Both transmit buffers are free again: two frames go, from ring index 0.
        send_frame(&mut net).unwrap();
        send_frame(&mut net).unwrap();
        let mut tx_side = crate::queue::DeviceSide::default();
        let pair = net.pairs[0].lock();
        assert_eq!(
            [tx_side.take(&pair.tx), tx_side.take(&pair.tx)],
            [Some(0), Some(1)]
        );
    }

    /// A used ring that breaks part way through a batch: the frames delivered before
    /// the break are counted in what the call returns (the error that started the
    /// reset used to drop them).
    #[test]
    fn frames_delivered_before_a_used_ring_breaks_are_counted() {
        let (mut net, _device, _) = net_on_host();
        let mut device_side = crate::queue::DeviceSide::default();
        {
            let mut pair = net.pairs[0].lock();
            for buffer in 0..2 {
                assert_eq!(device_side.take(&pair.rx), Some(buffer));
                let at = usize::from(buffer) * BUFFER_STRIDE + HEADER_MODERN;
                pair.rx_buffers.bytes_mut(at, 60).fill(0x5A);
                device_side.give_back(&mut pair.rx, u32::from(buffer), (HEADER_MODERN + 60) as u32);
            }
        }
        // The driver sees both entries at once and takes one; the used index then runs
        // past the ring (the entries wrapping onto the second frame's say the same), found
        // once the second frame is delivered.
        assert_eq!(net.receive(0, 1, &mut |_| {}), Ok(1));
        {
            let mut pair = net.pairs[0].lock();
            for _ in 0..pair.rx.size() + 2 {
                device_side.give_back(&mut pair.rx, 1, (HEADER_MODERN + 60) as u32);
            }
        }
        let mut frames = 0;
        assert_eq!(net.receive(0, 8, &mut |_| frames += 1), Ok(1));
        assert_eq!(frames, 1);
    }

    /// Plays the device receiving a 60-byte frame on `net`'s queue 0, into the next
    /// buffer posted.
    fn receive_a_frame_on(net: &VirtioNet, device_side: &mut crate::queue::DeviceSide) {
        let mut pair = net.pairs[0].lock();
        let buffer = device_side.take(&pair.rx).expect("a buffer posted");
        let at = usize::from(buffer) * BUFFER_STRIDE + HEADER_MODERN;
        pair.rx_buffers.bytes_mut(at, 60).fill(0x5A);
        device_side.give_back(&mut pair.rx, u32::from(buffer), (HEADER_MODERN + 60) as u32);
    }

    /// An armed receive queue's MSI-X entry stayed unmasked and its available ring never
    /// said NO_INTERRUPT, so a core that armed once and then polled a busy queue was
    /// interrupted for every frame. A receive that takes a frame now sets the flag;
    /// arming clears it, and wakes the core itself for a frame that came while it was
    /// set (the device sent no message for it).
    #[test]
    fn a_receive_that_takes_a_frame_spends_the_wake_until_the_next_arm() {
        let (mut net, _device, platform) = net_on_host();
        let (table, entries) = platform.msix_table(1);
        net.wakes = QueueWakes::new(Some(table), vec![Some(0)]);
        let masked = || entries.read32(12) & 1 != 0;
        let would_interrupt = |net: &VirtioNet, side: &crate::queue::DeviceSide| {
            side.would_interrupt(&net.pairs[0].lock().rx)
        };
        let mut side = crate::queue::DeviceSide::default();
        net.wake_on_receive(0, Some(1)).unwrap();
        assert!(!masked() && would_interrupt(&net, &side));
        assert_eq!(platform.take_woken(), [], "nothing waiting");
        receive_a_frame_on(&net, &mut side);
        assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(1));
        assert!(
            !would_interrupt(&net, &side),
            "the core polls: no interrupt per frame"
        );
        assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(0));
        // A frame that comes between the last poll and the arm raised nothing.
        receive_a_frame_on(&net, &mut side);
        net.wake_on_receive(0, Some(1)).unwrap();
        assert_eq!(platform.take_woken(), [1], "woken for the frame waiting");
        assert!(would_interrupt(&net, &side));
        assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(1));
        // Armed with nothing waiting: the next frame's message wakes the core, and an
        // empty poll spends nothing.
        net.wake_on_receive(0, Some(1)).unwrap();
        assert_eq!(platform.take_woken(), []);
        assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(0));
        assert!(!masked() && would_interrupt(&net, &side));
        net.wake_on_receive(0, None).unwrap();
        assert!(masked());
    }

    /// Arming waited for the pair's spin lock, which a pair's own handle holds through
    /// the app's closures, with the device's registry slot locked meanwhile (and for
    /// good when such a closure asks for the slot). An arm that finds the pair busy now
    /// wakes the core at once, and the core's next look and arm miss no frame.
    #[test]
    fn an_arm_that_finds_the_pair_busy_wakes_the_core_at_once_without_waiting() {
        let (mut net, _device, platform) = net_on_host();
        let (table, entries) = platform.msix_table(1);
        net.wakes = QueueWakes::new(Some(table), vec![Some(0)]);
        let masked = || entries.read32(12) & 1 != 0;
        let mut side = crate::queue::DeviceSide::default();
        net.wake_on_receive(0, Some(1)).unwrap();
        receive_a_frame_on(&net, &mut side);
        assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(1));
        // A frame comes while another core's call holds the pair (its receive set
        // NO_INTERRUPT: the device sends no message for it).
        receive_a_frame_on(&net, &mut side);
        let pair = net.pairs[0].clone();
        let held = pair.lock();
        let (answer, arm) = std::sync::mpsc::channel();
        let waited = std::thread::scope(|scope| {
            scope.spawn(|| answer.send(net.wake_on_receive(0, Some(1))).unwrap());
            let waited = arm.recv_timeout(std::time::Duration::from_secs(2));
            drop(held);
            waited
        });
        assert_eq!(waited, Ok(Ok(())), "the arm waited for the pair's lock");
        assert_eq!(platform.take_woken(), [1], "woken at once");
        assert!(masked(), "the wake spent");
        // The woken core looks again and finds the frame, then arms again.
        assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(1));
        net.wake_on_receive(0, Some(1)).unwrap();
        assert_eq!(platform.take_woken(), [], "nothing waiting");
        assert!(!masked());
        assert!(side.would_interrupt(&net.pairs[0].lock().rx));
    }

    #[test]
    fn a_device_broken_again_after_three_resets_in_a_row_is_given_up() {
        let (mut net, device, _) = net_on_host();
        for reset in 1..=crate::recovery::RESETS_IN_A_ROW {
            overrun_the_receive_ring(&net);
            assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(0), "reset {reset}");
        }
        overrun_the_receive_ring(&net);
        assert_eq!(net.receive(0, 8, &mut |_| {}), Err(GIVEN_UP));
        assert_ne!(device.status() & crate::transport::STATUS_FAILED, 0);
        assert_eq!(send_frame(&mut net), Err(GIVEN_UP));
        assert_eq!(net.transmit_pending(0), Err(GIVEN_UP));
    }

    /// A pair's own handle bypasses the device, so it checks where the device is: it
    /// used to post frames to a device given up, and, during a reset from another core,
    /// to rings being renewed (rung before DRIVER_OK, then overwritten by the start).
    #[test]
    fn a_pairs_own_handle_waits_out_a_reset_and_fails_once_the_device_is_given_up() {
        let (mut net, _device, _) = net_on_host();
        let mut handle = net.split_queues().unwrap().pop().unwrap();
        let send = |handle: &mut Box<dyn NetDevice>| {
            handle.send_segments(0, &[60], false, &mut |parts| {
                parts[0].fill(0x42);
                true
            })
        };
        // While the rings are renewed: nothing is sent or taken.
        net.mark_pairs(PairState::Resetting);
        assert_eq!(send(&mut handle), Err(DeviceError::QueueFull));
        assert_eq!(handle.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        assert_eq!(handle.transmit_pending(0), Ok(0));
        let mut tx_side = crate::queue::DeviceSide::default();
        assert_eq!(
            tx_side.take(&net.pairs[0].lock().tx),
            None,
            "nothing posted"
        );
        // A reset through the device leaves the pair running again.
        net.mark_pairs(PairState::Running);
        overrun_the_receive_ring(&net);
        assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(0));
        assert_eq!(send(&mut handle), Ok(()));
        // Given up: the handle fails as the device does.
        for _ in 0..crate::recovery::RESETS_IN_A_ROW {
            overrun_the_receive_ring(&net);
            let _ = net.receive(0, 8, &mut |_| {});
        }
        assert_eq!(net.receive(0, 8, &mut |_| {}), Err(GIVEN_UP));
        assert_eq!(send(&mut handle), Err(GIVEN_UP));
        assert_eq!(handle.receive(0, 8, &mut |_| {}), Err(GIVEN_UP));
        assert_eq!(handle.transmit_pending(0), Err(GIVEN_UP));
    }

    /// [`net_on_host`] with a second pair (sharing its memory's platform) and a control
    /// queue whose device acknowledges every `VQ_PAIRS_SET` while the driver waits, so
    /// that the device can be reset; not started again with two pairs until a reset.
    fn two_pairs_on_host() -> (VirtioNet, crate::transport::HostDevice) {
        let (mut net, device, platform) = net_on_host();
        let mut second = unposted_pair_from(platform, net.transport.clone(), HOST_RX_BUFFERS, 2);
        second.health = PairHealth::new(net.reset_wanted.clone(), GIVEN_UP);
        net.pairs.push(Arc::new(spin::Mutex::new(second)));
        net.wakes = QueueWakes::new(None, vec![None, None]);
        let (queue, buffer) = control_queue_on_host(platform, 4);
        let used_ring = queue.used_ring_writer(platform);
        let command = platform.device_view(&buffer);
        net.control = Some((queue, buffer));
        platform.on_clock_reading(move || {
            // The ack byte the driver sets to 0xFF before each command.
            if command.read8(4) == 0xFF {
                command.write8(4, CTRL_OK);
                used_ring.give_back(0, 1);
            }
        });
        (net, device)
    }

    /// A pair's own handle cannot reset the device: it used to answer the queue's
    /// overrun error for ever, and the device was never told (a call through it reset
    /// only when it met the broken ring itself). Now the handle says what is wrong and
    /// what to do, and the device's next receive, send or `transmit_pending`, on any
    /// queue, resets it.
    #[test]
    fn a_ring_broken_under_a_pairs_own_handle_is_reset_by_the_next_call_through_the_device() {
        use crate::transport::{
            STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
        };
        let (mut net, device) = two_pairs_on_host();
        let mut handle = net.split_queues().unwrap().pop().unwrap();
        let send = |handle: &mut Box<dyn NetDevice>| {
            handle.send_segments(0, &[60], false, &mut |parts| {
                parts[0].fill(0x42);
                true
            })
        };
        // A status the reset and the start after it must overwrite.
        device.set_status(0);
        {
            let mut device_side = crate::queue::DeviceSide::default();
            let mut pair = net.pairs[1].lock();
            for _ in 0..pair.rx.size() + 2 {
                device_side.give_back(&mut pair.rx, 0, 0);
            }
        }
        assert_eq!(handle.receive(0, 8, &mut |_| {}), Err(PAIR_BROKEN));
        assert_eq!(send(&mut handle), Err(PAIR_BROKEN), "nothing posted");
        assert_eq!(handle.transmit_pending(0), Err(PAIR_BROKEN));
        let mut tx_side = crate::queue::DeviceSide::default();
        assert_eq!(tx_side.take(&net.pairs[1].lock().tx), None);
        assert_eq!(device.status(), 0, "the handle cannot reset the device");
        // A call through the device on the other pair.
        assert_eq!(net.transmit_pending(0), Ok(0));
        let running = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
        assert_eq!(device.status(), running, "reset and started again");
        assert_eq!(handle.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        assert_eq!(send(&mut handle), Ok(()));
        assert_eq!(handle.transmit_pending(0), Ok(1));
    }

    #[test]
    fn a_frame_the_device_returns_starts_the_count_of_resets_again() {
        let (mut net, device, _) = net_on_host();
        for _ in 0..crate::recovery::RESETS_IN_A_ROW {
            overrun_the_receive_ring(&net);
            assert_eq!(net.receive(0, 8, &mut |_| {}), Ok(0));
        }
        // The renewed device returns a transmitted frame.
        send_frame(&mut net).unwrap();
        {
            let mut tx_side = crate::queue::DeviceSide::default();
            let mut pair = net.pairs[0].lock();
            let head = tx_side.take(&pair.tx).unwrap();
            tx_side.give_back(&mut pair.tx, head.into(), 0);
        }
        assert_eq!(net.transmit_pending(0), Ok(0));
        overrun_the_receive_ring(&net);
        assert_eq!(
            net.receive(0, 8, &mut |_| {}),
            Ok(0),
            "reset again, not given up"
        );
        assert_eq!(device.status() & crate::transport::STATUS_FAILED, 0);
    }

    /// A control queue (queue 2) of `entries` with its command buffer, memory from
    /// `platform`.
    fn control_queue_on_host(
        platform: &'static rexo_devio::host::HostPlatform,
        entries: u16,
    ) -> (Virtqueue, Dma) {
        let doorbell = crate::queue::Doorbell::Mmio {
            window: rexo_devio::host::registers(4),
            at: 0,
            queue: 2,
        };
        let queue = Virtqueue::new(platform, 2, entries, doorbell).unwrap();
        (queue, Dma::new(platform, 64).unwrap())
    }

    #[test]
    fn a_device_that_does_not_reset_keeps_its_memory_and_one_that_resets_gives_it_back() {
        for (stuck, live_after) in [(true, 6), (false, 0)] {
            let (mut net, _device, platform) = net_on_host();
            net.control = Some(control_queue_on_host(platform, 4));
            if stuck {
                net.transport = Transport::never_resetting();
            }
            assert_eq!(
                platform.live(),
                6,
                "2 rings, 2 buffer blocks, the control queue"
            );
            drop(net);
            assert_eq!(platform.live(), live_after, "stuck: {stuck}");
        }
    }

    #[test]
    fn a_control_queue_too_small_for_the_command_is_refused_untouched() {
        let (mut net, _device, _) = net_on_host();
        // A device whose control queue has 2 entries: the command's third descriptor
        // would lie past the table, over the available ring.
        net.control = Some(control_queue_on_host(
            rexo_devio::host::HostPlatform::leaked(),
            2,
        ));
        assert_eq!(
            net.set_pairs(2),
            Err(DeviceError::Unsupported(
                "a control queue of at least 3 entries"
            ))
        );
        let (queue, _) = net.control.as_ref().unwrap();
        assert_eq!(
            crate::queue::DeviceSide::default().take(queue),
            None,
            "nothing published"
        );
    }

    #[test]
    fn a_pairs_answer_that_comes_while_the_core_is_away_past_the_deadline_is_taken() {
        let (mut net, _device, platform) = net_on_host();
        let (queue, buffer) = control_queue_on_host(platform, 4);
        let used_ring = queue.used_ring_writer(platform);
        let command = platform.device_view(&buffer);
        net.control = Some((queue, buffer));
        let readings = core::sync::atomic::AtomicU32::new(0);
        platform.on_clock_reading(move || {
            // At the second reading the core comes back from far past the deadline, and
            // the device has answered meanwhile: the ack, then the command's chain.
            if readings.fetch_add(1, core::sync::atomic::Ordering::Relaxed) == 1 {
                platform.advance_clock(2 * CTRL_TIMEOUT_MS * 1_000_000);
                command.write8(4, CTRL_OK);
                used_ring.give_back(0, 1);
            }
        });
        assert_eq!(net.set_pairs(2), Ok(()));
    }

    #[test]
    fn a_frame_in_more_segments_than_the_pair_has_transmit_buffers_is_too_many_segments() {
        // The pair has 2 transmit buffers, all free: 3 segments can never be sent.
        let (mut net, _device, _) = net_on_host();
        let mut fill = |parts: &mut [&mut [u8]]| {
            for part in parts {
                part.fill(0x42);
            }
            true
        };
        for _ in 0..3 {
            assert_eq!(
                net.send_segments(0, &[14, 20, 26], false, &mut fill),
                Err(DeviceError::TooManySegments {
                    segments: 3,
                    max: 2
                }),
                "refused for what it is, not QueueFull"
            );
        }
        assert_eq!(net.send_segments(0, &[14, 46], false, &mut fill), Ok(()));
    }

    #[test]
    fn a_repeated_receive_entry_is_dropped_not_delivered_or_posted_twice() {
        let shape = Shape {
            chain: 1,
            header_len: HEADER_MODERN,
            checksum_offload: false,
        };
        let mut pair = pair_on_host(2);
        let mut device = crate::queue::DeviceSide::default();
        assert_eq!(device.take(&pair.rx), Some(0));
        assert_eq!(device.take(&pair.rx), Some(1));
        let frame = [0x5A; 60];
        pair.rx_buffers
            .bytes_mut(HEADER_MODERN, frame.len())
            .copy_from_slice(&frame);
        let used_len = (HEADER_MODERN + frame.len()) as u32;
        device.give_back(&mut pair.rx, 0, used_len);
        device.give_back(&mut pair.rx, 0, used_len);
        let mut frames = Vec::new();
        let delivered = pair
            .receive(shape, 8, &mut |bytes| frames.push(bytes.to_vec()))
            .unwrap();
        assert_eq!((delivered, frames), (1, vec![frame.to_vec()]));
        assert_eq!(pair.rx.stray_used(), 1, "the repeat is counted");
        // Buffer 0 is posted again once: the device sees it once, and buffer 1 is still
        // the device's.
        assert_eq!(device.take(&pair.rx), Some(0));
        assert_eq!(device.take(&pair.rx), None);
    }

    /// A device configuration with every field this driver reads.
    const FULL_CONFIG: usize = CONFIG_MAX_PAIRS + 2;

    #[test]
    fn multi_queue_needs_thecontrol_queue() {
        assert_eq!(
            wanted_features(F_MQ | F_CTRL_VQ | F_MAC, FULL_CONFIG),
            F_WANTED | F_MQ | F_CTRL_VQ
        );
        // MQ without the control queue cannot be enabled; the control queue alone is
        // of no use here.
        assert_eq!(wanted_features(F_MQ | F_MAC, FULL_CONFIG), F_WANTED);
        assert_eq!(wanted_features(F_CTRL_VQ | F_MAC, FULL_CONFIG), F_WANTED);
    }

    #[test]
    fn link_status_is_taken_only_when_the_configuration_holds_it() {
        let offered = F_MAC | F_STATUS;
        assert_eq!(
            wanted_features(offered, CONFIG_STATUS + 2) & F_STATUS,
            F_STATUS
        );
        // A configuration of just the MAC address (or less) has no status field: reading
        // it would run past the window.
        assert_eq!(wanted_features(offered, CONFIG_STATUS + 1) & F_STATUS, 0);
        assert_eq!(wanted_features(offered, 6) & F_STATUS, 0);
        assert_eq!(wanted_features(offered, 6) & F_MAC, F_MAC);
    }

    #[test]
    fn segmentation_offload_is_taken_only_with_checksum_offload() {
        let offered = F_MAC | F_CSUM | F_HOST_TSO4;
        assert_eq!(
            wanted_features(offered, FULL_CONFIG),
            F_WANTED | F_HOST_TSO4
        );
        assert_eq!(wanted_features(F_MAC | F_HOST_TSO4, FULL_CONFIG), F_WANTED);
        let layout = rexo_api::device::TransportChecksum {
            start: 34,
            offset: 16,
            seed: 0,
        };
        let cut = rexo_api::device::TcpSegmentation {
            header_len: 54,
            mss: 1460,
            checksum: layout,
        };
        assert_eq!(
            virtio_header(Some(layout), Some(cut)),
            [1, GSO_TCPV4, 54, 0, 0xB4, 0x05, 34, 0, 16, 0, 0, 0]
        );
        assert_eq!(virtio_header(None, None), [0; HEADER_MODERN]);
    }

    #[test]
    fn pairs_are_capped_and_checked() {
        assert_eq!(pairs_to_use(1), Ok(1));
        assert_eq!(pairs_to_use(2), Ok(2));
        assert_eq!(pairs_to_use(64), Ok(MAX_PAIRS));
        assert_eq!(pairs_to_use(0x7fff), Ok(MAX_PAIRS));
        // Allowed by the specification, but its control queue would be queue 0x10000.
        assert!(pairs_to_use(0x8000).is_err());
        assert!(pairs_to_use(0).is_err());
        assert!(pairs_to_use(0x8001).is_err());
    }

    #[test]
    fn queues_are_numbered_by_pair_with_thecontrol_queue_last() {
        assert_eq!(queue_numbers(0, 1), Ok((0, 1, 2)));
        assert_eq!(queue_numbers(1, 4), Ok((2, 3, 8)));
        // The control queue follows every pair the device has, used or not.
        assert_eq!(queue_numbers(0, 16), Ok((0, 1, 32)));
        assert_eq!(queue_numbers(7, 0x7fff), Ok((14, 15, 0xfffe)));
        // 2 x 0x8000 does not wrap to 0, receive queue 0's number.
        assert!(queue_numbers(0, 0x8000).is_err());
        assert!(queue_numbers(0x8000, 0x7fff).is_err());
    }
}
