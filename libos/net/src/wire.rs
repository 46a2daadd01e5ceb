//! A simulated Ethernet wire between two NICs, for host tests of the stack and of the apps
//! built on it (httpd, kv, netdemo: [`Wire::joining`](crate::wire::Wire::joining) makes
//! their two stacks): each end is a `NetDevice` whose sent frames wait in its transmit ring
//! until `Wire::carry` moves them to the other end's receive ring, deciding per frame
//! whether it arrives (loss) and seeing every one. Host only: it uses the standard
//! library's locks.

use std::boxed::Box;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use core::net::Ipv4Addr;

use rexo_api::device::{ETHERNET_MAX_FRAME, internet_checksum, transport_checksum};
use rexo_api::{DeviceError, NetDevice, NetInfo, ReceiveSteering};

/// One direction of the wire: frames sent and not yet carried, and frames arrived.
#[derive(Default)]
struct Direction {
    /// Frames in the sender's transmit ring, not yet on the wire.
    in_flight: VecDeque<Vec<u8>>,
    /// Frames waiting in the receiver's ring.
    arrived: VecDeque<Vec<u8>>,
    /// Each frame given to be segmented: its length and segment size.
    segmented: Vec<(usize, usize)>,
    /// Frames given to be segmented since the last [`Wire::carry`].
    segmented_in_flight: usize,
    /// The segments of those frames in `in_flight`: they hold a buffer for large
    /// frames each, not a slot of the ring for small ones (as on virtio-net).
    segments_in_flight: usize,
}

impl Direction {
    /// Small frames in the transmit ring.
    fn small_in_flight(&self) -> usize {
        self.in_flight.len() - self.segments_in_flight
    }
}

/// One end of the wire as a NIC (largest frame [`ETHERNET_MAX_FRAME`], 1514 bytes, one queue
/// pair unless [`WireEnd::with_queues`], no MSI-X).
pub struct WireEnd {
    mac: [u8; 6],
    /// Queue pairs; each arriving frame is received on the queue [`queue_of`] picks.
    queues: usize,
    outgoing: Arc<Mutex<Direction>>,
    incoming: Arc<Mutex<Direction>>,
    /// Frames the transmit ring holds before [`DeviceError::QueueFull`].
    ring: usize,
    /// Whether the end computes transport checksums ([`WireEnd::with_checksum_offload`]).
    checksum_offload: bool,
    /// The largest frame the end segments ([`WireEnd::with_segmentation_offload`]).
    tcp_segmentation: Option<usize>,
    /// Frames to segment the end holds before [`DeviceError::QueueFull`].
    segmentation_buffers: usize,
    /// The device's RSS, when it places flows by it ([`WireEnd::as_steered_pair`]).
    steering: Option<ReceiveSteering>,
    /// Which pair of a split device the end is ([`WireEnd::as_pair`]).
    pair: Option<usize>,
    /// The largest frame the end sends and receives ([`WireEnd::with_max_frame`]).
    max_frame: usize,
}

impl WireEnd {
    /// The end, computing the TCP and UDP checksums of frames sent through
    /// `transmit_offloaded` as a NIC with checksum offload does.
    pub fn with_checksum_offload(mut self) -> Self {
        self.checksum_offload = true;
        self
    }

    /// The end, with checksum offload, also cutting TCP/IPv4 frames of up to
    /// `max_frame` bytes into segments as a NIC with TSO does
    /// ([`NetDevice::send_tcp_segmented`]); [`Wire::segmented`] lists what it was given.
    pub fn with_segmentation_offload(mut self, max_frame: usize) -> Self {
        self.checksum_offload = true;
        self.tcp_segmentation = Some(max_frame);
        self
    }

    /// The end holding at most `buffers` frames to segment between two
    /// [`Wire::carry`] calls (as a NIC with a few large buffers does).
    pub fn with_segmentation_buffers(mut self, buffers: usize) -> Self {
        self.segmentation_buffers = buffers;
        self
    }

    /// The end sending and receiving frames of at most `max_frame` bytes (a NIC whose
    /// buffers hold less than an Ethernet frame), not [`ETHERNET_MAX_FRAME`].
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// The end with `queues` queue pairs, receiving each frame on the queue
    /// [`queue_of`] picks for its flow, as a NIC with RSS does.
    pub fn with_queues(mut self, queues: usize) -> Self {
        self.queues = queues.max(1);
        self
    }
}

impl WireEnd {
    /// The end as pair `pair` of a device that places flows by `steering` (one handle
    /// of an 82574 split by [`NetDevice::split_queues`]): it receives only the IPv4
    /// frames `steering` places on `pair` (the others went to another pair, whose stack
    /// is not on this wire: they are lost here) and every other frame (ARP, which the
    /// stacks of a split interface share).
    pub fn as_steered_pair(mut self, steering: ReceiveSteering, pair: usize) -> Self {
        self.steering = Some(steering);
        self.pair = Some(pair);
        self
    }

    /// The end as pair `pair` of a split device that places no flow by a hash (one
    /// handle of virtio-net over a multi-queue tap, which sends a flow's frames to the
    /// queue that last sent on it): it receives every frame, as that pair would those
    /// of the flows its stack opened.
    pub fn as_pair(mut self, pair: usize) -> Self {
        self.pair = Some(pair);
        self
    }
}

/// What places an IPv4 frame's flow on a queue: its addresses, its protocol and the
/// four bytes after its IP header (a TCP or UDP segment's ports).
struct Ipv4Flow {
    /// The source address.
    source: [u8; 4],
    /// The destination address.
    destination: [u8; 4],
    /// The IP protocol.
    protocol: u8,
    /// The four bytes after the IP header, if the frame holds them.
    ports: Option<[u8; 4]>,
}

/// The [`Ipv4Flow`] of `frame`; `None` for a frame that is not IPv4 or too short to
/// hold an IP header.
fn ipv4_flow(frame: &[u8]) -> Option<Ipv4Flow> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let header = usize::from(ip[0] & 0x0F) * 4;
    let four = |bytes: &[u8]| <[u8; 4]>::try_from(bytes).ok();
    Some(Ipv4Flow {
        source: four(&ip[12..16])?,
        destination: four(&ip[16..20])?,
        protocol: ip[9],
        ports: ip.get(header..header + 4).and_then(four),
    })
}

/// Whether `steering` places `frame` on `pair` (true for a frame that is not IPv4).
fn steered_to(frame: &[u8], steering: &ReceiveSteering, pair: usize) -> bool {
    let Some(flow) = ipv4_flow(frame) else {
        return true;
    };
    let ports = match flow.ports {
        Some(ports) if flow.protocol == 6 => Some((
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        )),
        _ => None,
    };
    let source = core::net::Ipv4Addr::from(flow.source);
    let destination = core::net::Ipv4Addr::from(flow.destination);
    steering.pair_of(source, destination, ports) == pair
}

/// The receive queue of `queues` that a frame's flow lands on: a hash of the IPv4
/// addresses and, for TCP and UDP, the ports (the same both ways); queue 0 for every
/// other frame (ARP), as on a NIC with RSS.
pub fn queue_of(frame: &[u8], queues: usize) -> usize {
    let Some(flow) = ipv4_flow(frame) else {
        return 0;
    };
    let ports = match flow.ports {
        Some(ports) if matches!(flow.protocol, 6 | 17) => ports,
        _ => [0; 4],
    };
    let sum: usize = flow
        .source
        .iter()
        .chain(&flow.destination)
        .chain(&ports)
        .map(|&b| usize::from(b))
        .sum();
    sum % queues.max(1)
}

/// The wire: both directions, for [`Wire::carry`].
pub struct Wire {
    a_to_b: Arc<Mutex<Direction>>,
    b_to_a: Arc<Mutex<Direction>>,
}

impl Wire {
    /// A wire and its two ends (MACs `a` and `b`), each with a transmit ring of `ring`
    /// frames.
    pub fn new(a: [u8; 6], b: [u8; 6], ring: usize) -> (Wire, WireEnd, WireEnd) {
        let (a_to_b, b_to_a) = (
            Arc::<Mutex<Direction>>::default(),
            Arc::<Mutex<Direction>>::default(),
        );
        let end =
            |mac, outgoing: &Arc<Mutex<Direction>>, incoming: &Arc<Mutex<Direction>>| WireEnd {
                mac,
                outgoing: outgoing.clone(),
                incoming: incoming.clone(),
                queues: 1,
                ring,
                checksum_offload: false,
                tcp_segmentation: None,
                segmentation_buffers: usize::MAX,
                steering: None,
                pair: None,
                max_frame: ETHERNET_MAX_FRAME,
            };
        let (end_a, end_b) = (end(a, &a_to_b, &b_to_a), end(b, &b_to_a, &a_to_b));
        (Wire { a_to_b, b_to_a }, end_a, end_b)
    }

    /// Two stacks, at the static addresses `a` and `b` (a /24, no router or DNS server;
    /// MACs 02:00:00:00:00:01 and 02), joined by a wire whose transmit rings (65,536
    /// frames) no test fills: frames cross at every [`carry`](Self::carry). A test wire
    /// has no kernel to draw the stacks' seeds from: they are fixed, 1 and 2, so that
    /// test runs repeat.
    pub fn joining(a: Ipv4Addr, b: Ipv4Addr) -> (Wire, crate::Stack, crate::Stack) {
        let (wire, end_a, end_b) = Wire::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 1 << 16);
        let stack = |end, address, seed| {
            let config = crate::Config::Static {
                address,
                prefix: 24,
                gateway: None,
                dns: None,
            };
            crate::Stack::start(Box::new(end), 0, config, 0, Ok(seed)).expect("a stack on the wire")
        };
        (wire, stack(end_a, a, 1), stack(end_b, b, 2))
    }

    /// Moves every frame sent so far to the other end; `arrives` sees each and says
    /// whether it gets there (false: lost).
    pub fn carry(&self, mut arrives: impl FnMut(&[u8]) -> bool) {
        for direction in [&self.a_to_b, &self.b_to_a] {
            let mut d = direction.lock().expect("the wire's lock");
            d.segmented_in_flight = 0;
            d.segments_in_flight = 0;
            while let Some(frame) = d.in_flight.pop_front() {
                if arrives(&frame) {
                    d.arrived.push_back(frame);
                }
            }
        }
    }
}

impl Wire {
    /// The length and segment size of every frame end a (`true`) or b gave to be
    /// segmented so far.
    pub fn segmented(&self, a: bool) -> Vec<(usize, usize)> {
        let direction = if a { &self.a_to_b } else { &self.b_to_a };
        direction.lock().expect("the wire's lock").segmented.clone()
    }

    /// Puts `frame` straight into end a's receive ring, as if it came off the wire (a
    /// frame no stack would send: the tests' bad input).
    pub fn deliver_to_a(&self, frame: Vec<u8>) {
        self.b_to_a
            .lock()
            .expect("the wire's lock")
            .arrived
            .push_back(frame);
    }
}

impl NetDevice for WireEnd {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac,
            max_frame: self.max_frame,
            queues: self.queues,
            link_up: true,
            checksum_offload: self.checksum_offload,
            tcp_segmentation: self.tcp_segmentation,
            receive_steering: self.steering.clone(),
            pair: self.pair,
        }
    }

    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        if queue >= self.queues {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        let mut count = 0;
        while count < budget {
            let frame = {
                let mut incoming = self.incoming.lock().expect("the wire's lock");
                let next = incoming
                    .arrived
                    .iter()
                    .position(|frame| queue_of(frame, self.queues) == queue);
                next.and_then(|at| incoming.arrived.remove(at))
            };
            let Some(frame) = frame else {
                break;
            };
            // Longer than this NIC's largest frame: dropped, not delivered, as the
            // drivers do.
            if frame.len() > self.max_frame {
                continue;
            }
            if let (Some(steering), Some(pair)) = (&self.steering, self.pair)
                && !steered_to(&frame, steering, pair)
            {
                continue;
            }
            deliver(&frame);
            count += 1;
        }
        Ok(count)
    }

    fn send_segments(
        &mut self,
        queue: usize,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        if queue >= self.queues {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        if offload && !self.checksum_offload {
            return Err(DeviceError::Unsupported("checksum offload"));
        }
        let len = DeviceError::check_segments(segments, self.max_frame)?;
        let mut out = self.outgoing.lock().expect("the wire's lock");
        if out.small_in_flight() >= self.ring {
            return Err(DeviceError::QueueFull);
        }
        let mut frame = vec![0; len];
        let filled = rexo_api::device::lend_consecutive(&mut frame, segments, |parts| fill(parts));
        if filled != Some(true) {
            return Err(DeviceError::Withdrawn);
        }
        // What a NIC with checksum offload does: the field seeded with the
        // pseudo-header's sum, then the sum of the segment stored in it.
        if let Some(layout) = transport_checksum(&frame).filter(|_| offload) {
            let field = layout.start + layout.offset;
            frame[field..field + 2].copy_from_slice(&layout.seed.to_be_bytes());
            let sum = internet_checksum(&frame[layout.start..]);
            frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
        }
        out.in_flight.push_back(frame);
        Ok(())
    }

    /// What a NIC with TSO does: the frame checked, then cut, each segment on the wire.
    fn send_tcp_segmented(
        &mut self,
        queue: usize,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), DeviceError> {
        let Some(max) = self.tcp_segmentation else {
            return Err(DeviceError::Unsupported("TCP segmentation offload"));
        };
        if queue >= self.queues {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        DeviceError::check_frame(len, max)?;
        let mut out = self.outgoing.lock().expect("the wire's lock");
        if out.segmented_in_flight >= self.segmentation_buffers {
            return Err(DeviceError::QueueFull);
        }
        let mut frame = vec![0; len];
        let mss = fill(&mut frame).ok_or(DeviceError::Withdrawn)?;
        rexo_api::device::tcp_segmentation(&mut frame, mss, self.max_frame)?;
        out.segmented.push((len, mss));
        out.segmented_in_flight += 1;
        let segments = crate::tso::segment(&frame, mss, &mut |segment| {
            out.in_flight.push_back(segment.to_vec())
        });
        out.segments_in_flight += segments.unwrap_or(0);
        Ok(())
    }

    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
        if queue >= self.queues {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        // Frames, not segments: a large frame is one until carried.
        let out = self.outgoing.lock().expect("the wire's lock");
        Ok(out.small_in_flight() + out.segmented_in_flight)
    }

    fn wake_on_receive(&mut self, _queue: usize, _core: Option<usize>) -> Result<(), DeviceError> {
        Err(DeviceError::Unsupported("MSI-X on the simulated wire"))
    }
}
