//! TCP ports served by Rexo's own TCP (`rexo-tcp`) instead of smoltcp
//! ([`Stack::serve_own`](crate::Stack::serve_own)).
//!
//! Receiving: [`Stack::poll`](crate::Stack::poll) shows each frame the NIC lends it to
//! [`OwnTcp::input`] first. An IPv4 TCP segment to the stack's address and one of the
//! served ports (not a later fragment) goes to the `rexo_tcp::Endpoint` in place, in
//! the driver's buffer, and so does an ICMP destination-unreachable message to the
//! stack's address about a segment from a served port (Path MTU Discovery: a router
//! that cannot forward a full segment says so, and the connection's MSS falls,
//! `Endpoint::input_icmp`); everything else (ARP, other ICMP, DHCP, UDP, other ports)
//! goes on to smoltcp as before. On an interface split into a stack per queue pair
//! ([`crate::attach_cores`]) such a message may land on another stack than the
//! connection it quotes (the device places it by its own addresses): a stack without
//! that connection hands it to the others (`cores::IcmpBoard`), and the one holding it
//! acts on it at its next poll.
//!
//! Sending: at the start of each poll, before receiving, [`OwnTcp::output`] runs the
//! endpoint's timers and hands each segment it emits to the NIC. Sending first lets
//! the ACK owed for a request received at one poll ride on the answer the app queued
//! before the next, instead of going alone (the app polls again at once after a poll
//! that took frames: [`Stack::poll`](crate::Stack::poll) says so). Each segment goes
//! as one frame in one transmit buffer: the Ethernet header, the segment's IPv4 and
//! TCP headers, then its payload pieces (slices of a prebuilt head or of a file's
//! `Blob`) written one after the other straight from the pieces: the one copy into
//! the device's memory every frame costs. Gathering them, a NIC segment per piece
//! (`send_segments`), copies the same bytes, since every driver's segments are DMA
//! buffers of its own, and takes a ring entry per piece: measured slower
//! (docs/network.md). The checksums are the ones `rexo-tcp` filled in, composed from
//! the blobs' precomputed block sums: checksum offload is not asked for, since the
//! precomputed sum costs a few additions per segment where the NIC would read every
//! byte again (a super-segment's are the NIC's, below).
//!
//! Segmentation offload: on a NIC that cuts TCP/IPv4 frames
//! ([`NetInfo::tcp_segmentation`](rexo_api::NetInfo), with checksum offload) the
//! stack sets the endpoint's `Config::segmentation` to the most payload such a frame
//! holds ([`segmentation_limit`]), and the endpoint hands out super-segments: each goes
//! as one frame through [`NetDevice::send_tcp_segmented`], which the NIC cuts at the
//! connection's MSS (`Outgoing::cut`), computing every checksum; counted in
//! [`OwnCounters::tx_segmented`] and the NIC's `segmented_by_nic`. When the NIC has
//! no buffer for such a frame the segment waits, like one for a full ring; a NIC that
//! refuses super-segments for good (not segmentable, unsupported, or no buffer while
//! it holds nothing) turns them off for the endpoint, counted in
//! [`OwnCounters::offload_refused`], and the refused segment goes again at once in
//! MSS-sized segments: nothing is lost. A NIC without it never sees a frame longer
//! than its MTU.
//!
//! The Ethernet destination is the source address of a frame received from the
//! segment's IPv4 destination, not smoltcp's ARP cache: a server only answers peers
//! that spoke first, so the frame that brought their segment names the next hop back
//! (the peer itself on the link, or the router that forwarded it), without an ARP
//! exchange or a lookup in smoltcp's neighbour cache, which it does not make public.
//! Only a frame whose segment proves it came from the peer (`rexo_tcp::Sender::Peer`:
//! it acknowledged our sequence numbers) moves a known peer's way back; a SYN from
//! another MAC does so only once the proof held is [`PROVEN_NS`] old (the address may
//! have passed to another machine), or at once if nothing proved it. Any other frame
//! (`Sender::Unknown`: a bad checksum, a reset, a stray ACK) changes nothing: it neither
//! teaches an address nor moves or pushes out one. So a spoofed segment cannot turn a
//! peer's traffic elsewhere. A busy peer's proof is stamped again only once the stamp is
//! a quarter of [`PROVEN_NS`] old, so that most of its frames change nothing: its way
//! holds against another MAC's SYN for at least three quarters of [`PROVEN_NS`] after
//! its last proof. The table is bounded (two generations of [`NEIGHBOURS`] addresses
//! learnt from SYNs and proofs, beside the addresses of live connections): when the
//! newer generation fills, the older one is forgotten but for the addresses the endpoint
//! still has a connection or a half-open one with (`Endpoint::talks_with`), which move
//! to the new generation. So a flood of SYNs from spoofed sources pushes out only
//! addresses without a connection that were quiet for that long, never a live peer's
//! way (which a spoofed SYN in its name could then set). A segment to an address the
//! table no longer holds is dropped and counted ([`OwnCounters::no_neighbour`]) and
//! TCP's retransmission sends it again once the peer's next frame named the way back.
//! A RST answering a segment for no connection needs no table: it goes back to the
//! source of the frame that brought that segment (`Outgoing::reply_to`), a peer known
//! or not, since it tells nothing the segment did not say; a frame from a group
//! address (never a sender's) is answered the table's way.

use alloc::collections::BTreeMap;

use rexo_api::device::{ETHERNET_HEADER, PAIR_BROKEN};
use rexo_api::{DeviceError, NetDevice};
use rexo_tcp::{Endpoint, Outgoing, Sender};

use crate::cores::IcmpShare;
use crate::device::Counters;

/// Addresses per generation of the neighbour table.
pub const NEIGHBOURS: usize = 1024;
/// How old the proof of a peer's way back (a segment of its own) must be before a SYN
/// from another MAC moves it (about an ARP cache entry's life).
pub const PROVEN_NS: u64 = 30_000_000_000;

/// What the ports served by `rexo-tcp` moved, beside the NIC's [`Counters`] (which
/// count these frames too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnCounters {
    /// Frames handed to `rexo-tcp`, in place: its segments, and ICMP messages about
    /// them (what it made of those: its `Stats::icmp_mss_lowered`, `icmp_unreachable`
    /// and `icmp_dropped`); on a split interface also the ICMP messages handed on to
    /// the other stacks ([`icmp_handed_on`](Self::icmp_handed_on)).
    pub rx_frames: u64,
    /// Frames sent for it.
    pub tx_frames: u64,
    /// Payload pieces those frames carried (a segment across a head and a body has two).
    pub tx_pieces: u64,
    /// Segments dropped because no frame from their destination was remembered (never a
    /// RST answering a segment for no connection, which goes back where it came from).
    pub no_neighbour: u64,
    /// Super-segments among the frames sent, for the NIC to cut (segmentation offload).
    pub tx_segmented: u64,
    /// Times the NIC refused a super-segment for good, which turned segmentation
    /// offload off for the endpoint.
    pub offload_refused: u64,
    /// ICMP destination-unreachable messages about a connection this stack does not
    /// hold, handed on to the other stacks of a split interface
    /// ([`crate::attach_cores`]); the one holding it acts on it.
    pub icmp_handed_on: u64,
    /// Such messages from the other stacks that this one missed, pushed out by later
    /// ones before its poll took them (the board keeps 16).
    pub icmp_missed: u64,
}

/// The largest TCP payload a frame of `max_frame` bytes carries: the frame less its
/// Ethernet header and 40 bytes of IPv4 and TCP headers without options (0 for a frame
/// too small for them).
pub(crate) fn link_mss(max_frame: usize) -> usize {
    max_frame.saturating_sub(ETHERNET_HEADER + 40)
}

/// The `Config::segmentation` for a NIC with `info`: the payload of its largest TCP
/// frame to cut (IPv4 and TCP headers without options), when it cuts frames and
/// computes checksums; `None` otherwise.
pub(crate) fn segmentation_limit(info: &rexo_api::NetInfo) -> Option<usize> {
    let max = info.tcp_segmentation.filter(|&max| max > info.max_frame)?;
    info.checksum_offload
        .then(|| link_mss(max).min(rexo_tcp::MAX_SEGMENTATION))
}

/// The neighbour table: IPv4 address to the way back to it, in two generations; when
/// the newer one is full the older one is forgotten, but for live peers' addresses.
#[derive(Default)]
struct Neighbours {
    /// Addresses seen since the last turn, and live peers' carried over at it.
    newer: BTreeMap<[u8; 4], Way>,
    /// Addresses seen in the generation before.
    older: BTreeMap<[u8; 4], Way>,
    /// How many addresses of live peers the last turn carried into `newer`: the
    /// generation turns once it learnt [`NEIGHBOURS`] more.
    carried: usize,
}

/// The way back to a peer: the MAC address its frames came from, and when a segment of
/// its own last proved it (`None`: never), stamped at most every `PROVEN_NS / 4`.
#[derive(Clone, Copy, Debug)]
struct Way {
    mac: [u8; 6],
    proven_at: Option<u64>,
}

impl Way {
    /// Learns from a frame from `mac` at `now` whose segment showed `sender` of itself.
    /// A proof from the same MAC is stamped again only once the stamp is
    /// `PROVEN_NS / 4` old, so a busy peer's way is not rewritten per frame.
    fn learn(&mut self, mac: [u8; 6], sender: Sender, now: u64) {
        let younger_than = |span: u64| {
            self.proven_at
                .is_some_and(|at| now.saturating_sub(at) < span)
        };
        match sender {
            Sender::Peer if self.mac != mac || !younger_than(PROVEN_NS / 4) => {
                *self = Way {
                    mac,
                    proven_at: Some(now),
                };
            }
            Sender::Caller if self.mac != mac && !younger_than(PROVEN_NS) => {
                *self = Way {
                    mac,
                    proven_at: None,
                };
            }
            _ => {}
        }
    }
}

impl Neighbours {
    /// Learns from a frame from `mac` at `now` that brought `ip`'s segment, which showed
    /// `sender` of itself (the module's doc says what moves a known way). A frame that
    /// proves nothing changes nothing. An address in the newer generation, the common
    /// case, is updated in place with one search. `live` says whether an address has a
    /// connection, whose way a turn of the generations keeps.
    fn learn(
        &mut self,
        ip: [u8; 4],
        mac: [u8; 6],
        sender: Sender,
        now: u64,
        live: impl Fn([u8; 4]) -> bool,
    ) {
        if sender == Sender::Unknown {
            return;
        }
        if let Some(way) = self.newer.get_mut(&ip) {
            way.learn(mac, sender, now);
            return;
        }
        let mut way = self.older.remove(&ip).unwrap_or(Way {
            mac,
            proven_at: None,
        });
        way.learn(mac, sender, now);
        if self.newer.len() >= self.carried + NEIGHBOURS {
            let forgotten = core::mem::replace(&mut self.older, core::mem::take(&mut self.newer));
            self.newer = forgotten.into_iter().filter(|&(ip, _)| live(ip)).collect();
            self.carried = self.newer.len();
        }
        self.newer.insert(ip, way);
    }

    /// Where frames to `ip` go.
    fn get(&self, ip: [u8; 4]) -> Option<[u8; 6]> {
        self.newer
            .get(&ip)
            .or_else(|| self.older.get(&ip))
            .map(|way| way.mac)
    }
}

/// The `rexo-tcp` side of a [`Stack`](crate::Stack): the endpoint (with the ports it
/// serves) and the way back to its peers.
pub(crate) struct OwnTcp {
    /// The TCP engine, which the app drives between polls.
    pub(crate) endpoint: Endpoint,
    /// The way back to each peer.
    neighbours: Neighbours,
    /// What moved.
    pub(crate) counters: OwnCounters,
}

impl OwnTcp {
    /// The endpoint, serving nothing yet.
    pub(crate) fn new(endpoint: Endpoint) -> OwnTcp {
        OwnTcp {
            endpoint,
            neighbours: Neighbours::default(),
            counters: OwnCounters::default(),
        }
    }

    /// Whether `port` is served here.
    pub(crate) fn serves(&self, port: u16) -> bool {
        self.endpoint.listens(port)
    }

    /// Serves `port` (the caller checked that nothing else does).
    pub(crate) fn listen(&mut self, port: u16) -> Result<(), rexo_tcp::Error> {
        self.endpoint.listen(port)
    }

    /// Takes `frame` if it is an IPv4 TCP segment to `address` and a served port, or an
    /// ICMP destination-unreachable message to `address` about a segment from a served
    /// port, and hands it to the endpoint in place (or such a message about a
    /// connection the endpoint does not hold to the other stacks, through `icmp`);
    /// `false` leaves it to smoltcp.
    pub(crate) fn input(
        &mut self,
        now_ns: u64,
        frame: &[u8],
        address: Option<[u8; 4]>,
        icmp: Option<&mut IcmpShare>,
    ) -> bool {
        let Some(address) = address else {
            return false;
        };
        let segment = match crate::ipv4_payload(frame) {
            Some((6, segment)) => segment,
            Some((1, _)) => return self.input_icmp(now_ns, frame, address, icmp),
            _ => return false,
        };
        let packet = &frame[ETHERNET_HEADER..];
        // A later fragment has no TCP header where one would be: not ours to judge.
        let later_fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff != 0;
        if packet[16..20] != address || later_fragment || segment.len() < 4 {
            return false;
        }
        let port = u16::from_be_bytes([segment[2], segment[3]]);
        if !self.serves(port) {
            return false;
        }
        let mut source = [0; 6];
        source.copy_from_slice(&frame[6..12]);
        let mut peer = [0; 4];
        peer.copy_from_slice(&packet[12..16]);
        self.counters.rx_frames += 1;
        // A group address is never a sender's: a reset does not go to one.
        let sender = if source[0] & 1 == 0 {
            self.endpoint.input_from(now_ns, packet, source)
        } else {
            self.endpoint.input(now_ns, packet)
        };
        let endpoint = &self.endpoint;
        self.neighbours.learn(peer, source, sender, now_ns, |ip| {
            endpoint.talks_with(address, ip)
        });
        true
    }

    /// Takes the ICMP message in `frame` (an IPv4 packet carrying ICMP) if it is sent to
    /// `address` and the endpoint takes it (a destination-unreachable message about a
    /// segment from a served port: Path MTU Discovery, `Endpoint::input_icmp`). Its
    /// sender is a router, not a peer: it teaches no way back. One about a connection
    /// the endpoint does not hold goes to the other stacks through `icmp`, when the
    /// interface is split: the device placed it by its own addresses, not by the
    /// connection's flow.
    fn input_icmp(
        &mut self,
        now_ns: u64,
        frame: &[u8],
        address: [u8; 4],
        icmp: Option<&mut IcmpShare>,
    ) -> bool {
        let packet = &frame[ETHERNET_HEADER..];
        if packet[16..20] != address {
            return false;
        }
        // Split, a message is acted on once: handed on, or acted on here as `input_icmp`
        // would. One `unreachable_about` refuses (another port's, damaged) is read again
        // by `input_icmp`, which takes nothing but a damaged one about a served port,
        // counted there alone: a second parse of a rare message, nothing counted twice.
        match icmp.map(|icmp| (self.endpoint.unreachable_about(packet), icmp)) {
            Some((Some(message), icmp)) if !self.endpoint.holds(&message) => {
                icmp.post(message);
                self.counters.icmp_handed_on += 1;
            }
            Some((Some(message), _)) => self.endpoint.input_unreachable(now_ns, &message),
            _ if !self.endpoint.input_icmp(now_ns, packet) => return false,
            _ => {}
        }
        self.counters.rx_frames += 1;
        true
    }

    /// Acts on the ICMP messages the other stacks of a split interface handed on since
    /// the last call, each about a connection of theirs or this endpoint's: those about
    /// this endpoint's, as if received here (`Endpoint::input_unreachable`).
    pub(crate) fn take_icmp(&mut self, now_ns: u64, icmp: &mut IcmpShare) {
        let endpoint = &mut self.endpoint;
        self.counters.icmp_missed += icmp.take(|message| {
            if endpoint.holds(&message) {
                endpoint.input_unreachable(now_ns, &message);
            }
        });
    }

    /// Runs the endpoint's timers and sends what it has on `queue` from `mac`, until it
    /// has nothing more or the ring is full. Only a revoked NIC is an error, and a queue
    /// pair the device broke ([`PAIR_BROKEN`]: the segment met it waits in the endpoint,
    /// as for a full ring, and goes at the first call after the device is reset); a
    /// frame the NIC refuses otherwise is dropped and counted (TCP sends it again), but
    /// for a super-segment refused for good, which turns segmentation offload off and is
    /// sent again at once as MSS-sized segments.
    pub(crate) fn output(
        &mut self,
        now_ns: u64,
        nic: &mut dyn NetDevice,
        queue: usize,
        mac: [u8; 6],
        nic_counters: &mut Counters,
    ) -> Result<(), DeviceError> {
        let Self {
            endpoint,
            neighbours,
            counters,
            ..
        } = self;
        let (mut revoked, mut refused, mut broken) = (false, false, false);
        endpoint.poll(now_ns, &mut |segment| {
            let headers = segment.headers;
            let mut peer = [0; 4];
            peer.copy_from_slice(&headers[16..20]);
            let Some(next_hop) = segment.reply_to.or_else(|| neighbours.get(peer)) else {
                counters.no_neighbour += 1;
                return true;
            };
            let addresses = [next_hop, mac];
            let sent = match segment.cut {
                None => send(nic, queue, addresses, segment),
                Some(mss) => send_segmented(nic, queue, addresses, segment, mss),
            };
            match sent {
                Ok(len) => {
                    counters.tx_frames += 1;
                    counters.tx_pieces +=
                        segment.payload.iter().filter(|p| !p.is_empty()).count() as u64;
                    nic_counters.tx_frames += 1;
                    nic_counters.tx_bytes += len as u64;
                    if segment.cut.is_some() {
                        counters.tx_segmented += 1;
                        nic_counters.segmented_by_nic += 1;
                    }
                    true
                }
                Err(DeviceError::QueueFull) => false,
                Err(DeviceError::Revoked) => {
                    revoked = true;
                    false
                }
                Err(PAIR_BROKEN) => {
                    broken = true;
                    false
                }
                // A super-segment the NIC cannot cut: sent again, smaller, at once.
                Err(error) if segment.cut.is_some() && error != DeviceError::Withdrawn => {
                    refused = true;
                    false
                }
                Err(_) => {
                    nic_counters.tx_dropped += 1;
                    true
                }
            }
        });
        if revoked {
            return Err(DeviceError::Revoked);
        }
        if broken {
            return Err(PAIR_BROKEN);
        }
        if refused {
            counters.offload_refused += 1;
            endpoint.set_segmentation(None);
            return self.output(now_ns, nic, queue, mac, nic_counters);
        }
        Ok(())
    }
}

/// Writes `segment` from `addresses[1]` to `addresses[0]` into `frame`, its pieces
/// copied one after the other.
fn write(frame: &mut [u8], addresses: [[u8; 6]; 2], segment: &Outgoing<'_>) {
    frame[..6].copy_from_slice(&addresses[0]);
    frame[6..12].copy_from_slice(&addresses[1]);
    frame[12..14].copy_from_slice(&crate::ETHERTYPE_IPV4);
    let mut at = ETHERNET_HEADER + segment.headers.len();
    frame[ETHERNET_HEADER..at].copy_from_slice(segment.headers);
    for piece in segment.payload {
        frame[at..at + piece.len()].copy_from_slice(piece);
        at += piece.len();
    }
}

/// Sends `segment` from `addresses[1]` to `addresses[0]` as one frame; the frame's
/// length.
fn send(
    nic: &mut dyn NetDevice,
    queue: usize,
    addresses: [[u8; 6]; 2],
    segment: &Outgoing<'_>,
) -> Result<usize, DeviceError> {
    let len = ETHERNET_HEADER + segment.len();
    nic.send_frame(queue, len, false, &mut |frame| {
        write(frame, addresses, segment);
        true
    })?;
    Ok(len)
}

/// Sends the super-segment `segment` as one frame for the NIC to cut at `mss`; the
/// frame's length. A NIC with no buffer for it while it holds nothing is asked once
/// more (it may have finished everything between the two looks), then refuses it for
/// good ([`DeviceError::Unsupported`]).
fn send_segmented(
    nic: &mut dyn NetDevice,
    queue: usize,
    addresses: [[u8; 6]; 2],
    segment: &Outgoing<'_>,
    mss: usize,
) -> Result<usize, DeviceError> {
    let len = ETHERNET_HEADER + segment.len();
    let try_once = |nic: &mut dyn NetDevice| {
        nic.send_tcp_segmented(queue, len, &mut |frame| {
            write(frame, addresses, segment);
            Some(mss)
        })
    };
    match try_once(nic) {
        Err(DeviceError::QueueFull) if nic.transmit_pending(queue)? == 0 => match try_once(nic) {
            Err(DeviceError::QueueFull) => Err(DeviceError::Unsupported(
                "a buffer for a frame to cut while the NIC holds nothing",
            )),
            other => other,
        },
        other => other,
    }?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::{NEIGHBOURS, Neighbours, PROVEN_NS};
    use rexo_tcp::Sender;

    /// The peer's IPv4 address in the neighbour tests.
    const CLIENT: [u8; 4] = [10, 0, 0, 7];
    /// The MAC of the machine that really holds `CLIENT`.
    const REAL: [u8; 6] = [2, 0, 0, 0, 0, 7];
    /// Another MAC claiming `CLIENT`.
    const SPOOFER: [u8; 6] = [2, 0, 0, 0, 0, 66];

    /// No address has a connection.
    fn nobody(_: [u8; 4]) -> bool {
        false
    }

    /// The `i`th of many distinct addresses.
    fn ip(i: usize) -> [u8; 4] {
        (i as u32).to_be_bytes()
    }

    #[test]
    fn the_neighbour_table_keeps_two_generations_and_no_more() {
        let mut table = Neighbours::default();
        table.learn([10, 0, 0, 1], [2, 0, 0, 0, 0, 1], Sender::Peer, 0, nobody);
        for i in 0..NEIGHBOURS {
            table.learn(ip(i + 1000), [2, 0, 0, 0, 0, 9], Sender::Caller, 0, nobody);
        }
        // One turn: the first address is in the older generation, still known.
        assert_eq!(table.get([10, 0, 0, 1]), Some([2, 0, 0, 0, 0, 1]));
        // A peer that speaks again moves to the newer one, with its new way back.
        table.learn([10, 0, 0, 1], [2, 0, 0, 0, 0, 2], Sender::Peer, 0, nobody);
        for i in 0..2 * NEIGHBOURS {
            table.learn(
                ip(i + 100_000),
                [2, 0, 0, 0, 0, 9],
                Sender::Caller,
                0,
                nobody,
            );
            assert!(table.newer.len() + table.older.len() <= 2 * NEIGHBOURS);
        }
        // Two turns of other addresses: forgotten.
        assert_eq!(table.get([10, 0, 0, 1]), None);
        assert_eq!(
            table.get(ip(100_000 + 2 * NEIGHBOURS - 1)),
            Some([2, 0, 0, 0, 0, 9])
        );
    }

    #[test]
    fn only_the_peers_own_proof_moves_its_way_back_until_it_goes_quiet() {
        let mut table = Neighbours::default();
        // A frame that proves nothing does not even teach an address not known yet.
        table.learn(CLIENT, SPOOFER, Sender::Unknown, 0, nobody);
        assert_eq!(table.get(CLIENT), None);
        // A SYN from another MAC teaches it, which the peer's SYN replaces (nothing
        // proved the first), and its proof holds.
        table.learn(CLIENT, SPOOFER, Sender::Caller, 1, nobody);
        assert_eq!(table.get(CLIENT), Some(SPOOFER));
        table.learn(CLIENT, REAL, Sender::Caller, 1, nobody);
        table.learn(CLIENT, REAL, Sender::Peer, 2, nobody);
        for sender in [Sender::Unknown, Sender::Caller] {
            table.learn(CLIENT, SPOOFER, sender, 3, nobody);
            assert_eq!(table.get(CLIENT), Some(REAL), "{sender:?} from another MAC");
        }
        // The peer's proof moves it (a new network card, the same machine).
        table.learn(CLIENT, [2, 0, 0, 0, 0, 8], Sender::Peer, 4, nobody);
        assert_eq!(table.get(CLIENT), Some([2, 0, 0, 0, 0, 8]));
        // Quiet for PROVEN_NS: the address may be another machine's now, whose SYN counts.
        table.learn(CLIENT, SPOOFER, Sender::Unknown, 4 + PROVEN_NS, nobody);
        assert_eq!(
            table.get(CLIENT),
            Some([2, 0, 0, 0, 0, 8]),
            "not for a stray frame"
        );
        table.learn(CLIENT, REAL, Sender::Caller, 4 + PROVEN_NS, nobody);
        assert_eq!(table.get(CLIENT), Some(REAL));
    }

    #[test]
    fn a_busy_peers_proof_is_stamped_again_only_once_a_quarter_of_proven_ns_old() {
        let mut table = Neighbours::default();
        table.learn(CLIENT, REAL, Sender::Peer, 0, nobody);
        table.learn(CLIENT, REAL, Sender::Peer, PROVEN_NS / 4 - 1, nobody);
        assert_eq!(table.newer[&CLIENT].proven_at, Some(0), "left alone");
        table.learn(CLIENT, REAL, Sender::Peer, PROVEN_NS / 4, nobody);
        assert_eq!(table.newer[&CLIENT].proven_at, Some(PROVEN_NS / 4));
        // Its way holds for PROVEN_NS after that stamp.
        table.learn(
            CLIENT,
            SPOOFER,
            Sender::Caller,
            PROVEN_NS / 4 + PROVEN_NS - 1,
            nobody,
        );
        assert_eq!(table.get(CLIENT), Some(REAL));
        table.learn(
            CLIENT,
            SPOOFER,
            Sender::Caller,
            PROVEN_NS / 4 + PROVEN_NS,
            nobody,
        );
        assert_eq!(table.get(CLIENT), Some(SPOOFER));
    }

    #[test]
    fn frames_that_prove_nothing_neither_teach_nor_push_out_an_address() {
        let mut table = Neighbours::default();
        table.learn(CLIENT, REAL, Sender::Peer, 0, nobody);
        for i in 0..3 * NEIGHBOURS {
            table.learn(ip(i + 1000), SPOOFER, Sender::Unknown, 1, nobody);
        }
        assert_eq!((table.newer.len(), table.older.len()), (1, 0));
        // The spoofed frame in the peer's name, long after its proof.
        table.learn(CLIENT, SPOOFER, Sender::Unknown, 1 + PROVEN_NS, nobody);
        assert_eq!(table.get(CLIENT), Some(REAL));
        assert_eq!(table.newer[&CLIENT].proven_at, Some(0), "its proof kept");
    }

    #[test]
    fn a_flood_of_syns_never_pushes_out_a_peer_with_a_connection() {
        let mut table = Neighbours::default();
        let (quiet, live) = ([10, 0, 0, 8], |ip| ip == CLIENT);
        table.learn(CLIENT, REAL, Sender::Peer, 0, live);
        table.learn(quiet, REAL, Sender::Peer, 0, live);
        for i in 0..5 * NEIGHBOURS {
            table.learn(ip(i + 1000), SPOOFER, Sender::Caller, 1, live);
            assert!(table.newer.len() + table.older.len() <= 2 * NEIGHBOURS + 1);
        }
        assert_eq!(table.get(quiet), None, "no connection: forgotten");
        assert_eq!(table.get(CLIENT), Some(REAL));
        // A SYN in its name from another MAC: its recent proof holds the way.
        table.learn(CLIENT, SPOOFER, Sender::Caller, 2, live);
        assert_eq!(table.get(CLIENT), Some(REAL));
    }
}
