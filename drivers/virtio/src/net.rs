//! virtio-net (spec 5.1): one receive/transmit queue pair, frames in place after the
//! virtio-net header in fixed 2 KiB DMA buffers, one descriptor per frame (two, header
//! and frame, for a legacy device without VIRTIO_F_ANY_LAYOUT: spec 2.7.4.3).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::device::ETHERNET_HEADER;
use rexo_api::{DeviceError, NetDevice, NetInfo};
use rexo_devio::{DeviceFunction, Dma, Found, MsixTable, Platform};
use rexo_pci::Function;

use crate::queue::{DESC_NEXT, DESC_WRITE, Virtqueue};
use crate::transport::{Transport, VENDOR};

/// Transitional virtio-net (legacy interface, maybe modern too).
const DEVICE_TRANSITIONAL: u16 = 0x1000;
/// Modern-only virtio-net (0x1040 + device type 1).
const DEVICE_MODERN: u16 = 0x1041;

/// Feature: the device computes checksums of frames whose header asks (NEEDS_CSUM).
const F_CSUM: u64 = 1 << 0;
/// Header flag: the device completes the checksum at `csum_start + csum_offset`.
const HEADER_NEEDS_CSUM: u8 = 1;
/// Feature: the device configuration holds the MAC address.
const F_MAC: u64 = 1 << 5;
/// Feature: the device configuration holds the link status.
const F_STATUS: u64 = 1 << 16;
/// Feature (legacy): the header and frame may share a descriptor.
const F_ANY_LAYOUT: u64 = 1 << 27;

/// Device configuration: the MAC address (6 bytes).
const CONFIG_MAC: usize = 0;
/// Device configuration: the status word (with `F_STATUS`).
const CONFIG_STATUS: usize = 6;
/// Status bit: the link is up.
const STATUS_LINK_UP: u16 = 1;

/// The receive queue of pair 0.
const RX_QUEUE: u16 = 0;
/// The transmit queue of pair 0.
const TX_QUEUE: u16 = 1;
/// Entries wanted per queue (the legacy interface's size is the device's; buffers stay
/// at most this many).
const QUEUE_ENTRIES: u16 = 256;

/// `struct virtio_net_hdr` on the modern interface (spec 5.1.6: `num_buffers` always
/// present with VERSION_1).
const HEADER_MODERN: usize = 12;
/// The legacy header without MRG_RXBUF (no `num_buffers`).
const HEADER_LEGACY: usize = 10;
/// The largest frame: a 1500-byte MTU plus the Ethernet header (no FCS).
const MAX_FRAME: usize = 1514;
/// Bytes per buffer (two per page, so none crosses a page).
const BUFFER_STRIDE: usize = 2048;

/// The buffer whose chain starts at descriptor `head` (buffer `b` owns descriptors
/// `chain * b ..` `chain * (b + 1)`), or `None` when `head` starts no buffer's chain.
pub fn chain_buffer(head: u16, chain: u16, buffers: u16) -> Option<u16> {
    (head.is_multiple_of(chain) && head / chain < buffers).then_some(head / chain)
}

/// Whether this driver takes `function`.
pub fn matches(function: &Function) -> bool {
    let header = &function.header;
    header.vendor() == VENDOR && matches!(header.device_id(), DEVICE_TRANSITIONAL | DEVICE_MODERN)
}

/// Starts the network interface on `function`.
pub fn probe(mut function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    // MSI-X goes on (every entry masked) before the transport is read: on a legacy
    // device it moves the device configuration (spec 4.1.4.8).
    let msix = match function.msix() {
        Ok(table) => Some(table),
        Err(error) => {
            log::info!(
                "virtio-net {}: no receive wake-ups: {error}",
                function.address()
            );
            None
        }
    };
    let transport = Transport::new(&mut function)?;
    let platform = function.platform();
    let features = transport.negotiate(platform, F_MAC | F_STATUS | F_ANY_LAYOUT | F_CSUM, 0)?;
    let net = VirtioNet::new(&function, transport.clone(), platform, features, msix)
        .inspect_err(|_| transport.fail())?;
    log::info!(
        "virtio-net {}: {} interface, mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {} receive and {} transmit buffers, {} descriptor(s) per frame",
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
        net.rx_count,
        net.tx_busy.len(),
        net.chain,
    );
    Ok(vec![Found::Net(Box::new(net))])
}

/// A virtio network interface with one queue pair.
pub struct VirtioNet {
    /// The device's registers.
    transport: Transport,
    /// The clock (reset timeouts).
    platform: &'static dyn Platform,
    /// The MAC address.
    mac: [u8; 6],
    /// The device reports the link status.
    link_status: bool,
    /// Bytes of the virtio-net header before each frame.
    header_len: usize,
    /// The device computes transport checksums (`VIRTIO_NET_F_CSUM`: QEMU offers it
    /// over a tap, not over user networking or sockets).
    checksum_offload: bool,
    /// Descriptors per frame: 1, or 2 when the header needs its own.
    chain: u16,
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
    /// Transmit buffers not in flight.
    tx_free: Vec<u16>,
    /// Which transmit buffers the device holds.
    tx_busy: Vec<bool>,
    /// The MSI-X table whose entry [`RX_VECTOR`] the receive queue signals through.
    msix: Option<MsixTable>,
}

/// The MSI-X entry of the receive queue.
const RX_VECTOR: u16 = 0;

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
        let rx = transport.allocate_queue(function, RX_QUEUE, QUEUE_ENTRIES)?;
        let msix =
            match msix.map(|table| transport.queue_vector(RX_QUEUE, RX_VECTOR).map(|()| table)) {
                Some(Ok(table)) => Some(table),
                Some(Err(error)) => {
                    log::info!(
                        "virtio-net {}: no receive wake-ups: {error}",
                        function.address()
                    );
                    None
                }
                None => None,
            };
        let tx = transport.allocate_queue(function, TX_QUEUE, QUEUE_ENTRIES)?;
        let chain = if transport.is_modern() || features & F_ANY_LAYOUT != 0 {
            1
        } else {
            2
        };
        let rx_count = (rx.size() / chain).min(QUEUE_ENTRIES);
        let tx_count = (tx.size() / chain).min(QUEUE_ENTRIES);
        let mut net = Self {
            chain,
            mac: transport.config_bytes(CONFIG_MAC),
            link_status: features & F_STATUS != 0,
            checksum_offload: features & F_CSUM != 0,
            header_len: if transport.is_modern() {
                HEADER_MODERN
            } else {
                HEADER_LEGACY
            },
            rx_buffers: function.dma(usize::from(rx_count) * BUFFER_STRIDE)?,
            tx_buffers: function.dma(usize::from(tx_count) * BUFFER_STRIDE)?,
            rx,
            rx_count,
            tx,
            tx_free: (0..tx_count).rev().collect(),
            tx_busy: vec![false; usize::from(tx_count)],
            transport,
            platform,
            msix,
        };
        // From here on, dropping `net` resets the device before its memory goes.
        net.start()?;
        Ok(net)
    }

    /// Gives the device its queues and receive buffers, and starts it.
    fn start(&mut self) -> Result<(), DeviceError> {
        self.transport.enable_queue(&self.rx)?;
        self.transport.enable_queue(&self.tx)?;
        let header = self.header_len as u32;
        for buffer in 0..self.rx_count {
            let address = self.rx_buffers.phys() + u64::from(buffer) * BUFFER_STRIDE as u64;
            let head = buffer * self.chain;
            if self.chain == 1 {
                let len = header + MAX_FRAME as u32;
                self.rx.set_descriptor(head, address, len, DESC_WRITE, 0);
            } else {
                let frame = address + u64::from(header);
                self.rx
                    .set_descriptor(head, address, header, DESC_WRITE | DESC_NEXT, head + 1);
                self.rx
                    .set_descriptor(head + 1, frame, MAX_FRAME as u32, DESC_WRITE, 0);
            }
            self.rx.push(head);
        }
        for buffer in 0..self.tx_busy.len() as u16 {
            let address = self.tx_buffers.phys() + u64::from(buffer) * BUFFER_STRIDE as u64;
            let head = buffer * self.chain;
            if self.chain == 1 {
                self.tx.set_descriptor(head, address, 0, 0, 0);
            } else {
                let frame = address + u64::from(header);
                self.tx
                    .set_descriptor(head, address, header, DESC_NEXT, head + 1);
                self.tx.set_descriptor(head + 1, frame, 0, 0, 0);
            }
        }
        self.transport.driver_ok();
        // The device may be notified only after DRIVER_OK (spec 3.1.1).
        self.rx.publish();
        Ok(())
    }

    /// Refuses queues other than pair 0.
    fn check_queue(queue: usize) -> Result<(), DeviceError> {
        if queue == 0 {
            Ok(())
        } else {
            Err(DeviceError::NoSuchQueue(queue))
        }
    }

    /// Takes back the transmit buffers the device finished with.
    fn reclaim(&mut self) -> Result<(), DeviceError> {
        let buffers = self.tx_busy.len() as u16;
        while let Some(used) = self.tx.pop_used()? {
            let buffer = chain_buffer(used.id, self.chain, buffers);
            match buffer.map(|b| (b, &mut self.tx_busy[usize::from(b)])) {
                Some((buffer, busy @ true)) => {
                    *busy = false;
                    self.tx_free.push(buffer);
                }
                _ => {
                    return Err(DeviceError::BadIndex {
                        what: "virtio-net transmit ring (not in flight)",
                        index: u32::from(used.id),
                        size: u32::from(self.tx.size()),
                    });
                }
            }
        }
        Ok(())
    }

    /// Hands up to `budget` received frames to `deliver` and queues their buffers to be
    /// re-posted (the caller publishes them).
    fn take_received(
        &mut self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        let mut delivered = 0;
        while delivered < budget {
            let Some(used) = self.rx.pop_used()? else {
                break;
            };
            let Some(buffer) = chain_buffer(used.id, self.chain, self.rx_count) else {
                return Err(DeviceError::BadIndex {
                    what: "virtio-net receive ring (not a buffer's chain)",
                    index: u32::from(used.id),
                    size: u32::from(self.rx.size()),
                });
            };
            let len = (used.len as usize).saturating_sub(self.header_len);
            // A frame shorter than an Ethernet header or longer than the buffer is the
            // device's mistake: dropped, its buffer re-posted.
            if (ETHERNET_HEADER..=MAX_FRAME).contains(&len) {
                let at = usize::from(buffer) * BUFFER_STRIDE + self.header_len;
                deliver(self.rx_buffers.bytes(at, len));
                delivered += 1;
            }
            self.rx.push(used.id);
        }
        Ok(delivered)
    }
}

impl NetDevice for VirtioNet {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac,
            max_frame: MAX_FRAME,
            queues: 1,
            link_up: !self.link_status
                || self.transport.config16(CONFIG_STATUS) & STATUS_LINK_UP != 0,
            checksum_offload: self.checksum_offload,
        }
    }

    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        Self::check_queue(queue)?;
        let taken = self.take_received(budget, deliver);
        // Every buffer handed back goes to the device with one doorbell.
        self.rx.publish();
        taken
    }

    fn send_frame(
        &mut self,
        queue: usize,
        len: usize,
        offload: bool,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<(), DeviceError> {
        if offload && !self.checksum_offload {
            return Err(DeviceError::Unsupported(
                "checksum offload (VIRTIO_NET_F_CSUM)",
            ));
        }
        Self::check_queue(queue)?;
        DeviceError::check_frame(len, MAX_FRAME)?;
        if self.tx_free.is_empty() {
            self.reclaim()?;
        }
        let buffer = self.tx_free.pop().ok_or(DeviceError::QueueFull)?;
        let at = usize::from(buffer) * BUFFER_STRIDE;
        let frame = self.tx_buffers.bytes_mut(at + self.header_len, len);
        if !fill(frame) {
            self.tx_free.push(buffer);
            return Err(DeviceError::Withdrawn);
        }
        let checksum = if offload {
            rexo_api::device::transport_checksum(frame)
        } else {
            None
        };
        let mut header = [0u8; HEADER_MODERN];
        if let Some(layout) = checksum {
            let field = layout.start + layout.offset;
            frame[field..field + 2].copy_from_slice(&layout.seed.to_be_bytes());
            // flags, gso_type NONE, hdr_len, gso_size, csum_start, csum_offset (LE).
            header[0] = HEADER_NEEDS_CSUM;
            header[6..8].copy_from_slice(&(layout.start as u16).to_le_bytes());
            header[8..10].copy_from_slice(&(layout.offset as u16).to_le_bytes());
        }
        self.tx_buffers
            .bytes_mut(at, self.header_len)
            .copy_from_slice(&header[..self.header_len]);
        self.tx_busy[usize::from(buffer)] = true;
        let head = buffer * self.chain;
        if self.chain == 1 {
            self.tx.set_length(head, (self.header_len + len) as u32);
        } else {
            self.tx.set_length(head + 1, len as u32);
        }
        self.tx.push(head);
        self.tx.publish();
        Ok(())
    }

    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
        Self::check_queue(queue)?;
        self.reclaim()?;
        Ok(self.tx_busy.len() - self.tx_free.len())
    }

    /// The receive queue signals through MSI-X entry [`RX_VECTOR`] all along (the
    /// avail ring never sets NO_INTERRUPT); the entry stays masked, its messages pending,
    /// until a core asks to be woken. Unmasking with one pending wakes the core at once:
    /// callers re-check the ring after waking, as `sleep_ns` says.
    fn wake_on_receive(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        Self::check_queue(queue)?;
        let msix = self
            .msix
            .as_ref()
            .ok_or(DeviceError::Unsupported("MSI-X"))?;
        match core {
            Some(core) => msix.wake(RX_VECTOR, core),
            None => msix.mask(RX_VECTOR),
        }
    }
}

impl Drop for VirtioNet {
    fn drop(&mut self) {
        // The device must stop using the rings and buffers before they are freed.
        if let Err(error) = self.transport.reset(self.platform) {
            log::error!("virtio-net: reset before release: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_map_to_buffers() {
        assert_eq!(chain_buffer(5, 1, 256), Some(5));
        assert_eq!(chain_buffer(256, 1, 256), None);
        assert_eq!(chain_buffer(6, 2, 128), Some(3));
        assert_eq!(chain_buffer(7, 2, 128), None);
        assert_eq!(chain_buffer(256, 2, 128), None);
    }
}
