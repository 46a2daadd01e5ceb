//! smoltcp's `phy::Device` over a Rexo [`NetDevice`], in two halves, because of how
//! the two token models meet:
//!
//! - Rexo lends a received frame only inside `NetDevice::receive`'s `deliver` closure
//!   (it lives in the driver's DMA buffer, which goes back to the device afterwards), and
//!   the `NetDevice` is borrowed mutably for the whole call.
//! - smoltcp's `Device::receive` hands out a receive token *and* a transmit token, and
//!   sends the reply to a frame (an ARP reply, an ICMP echo reply, a TCP RST or ACK) from
//!   inside the receive token's `consume`, before that returns.
//!
//! So a receive token that reads the frame in place from the NIC cannot come with a
//! transmit token that writes to the same NIC: both would need the `&mut dyn NetDevice`
//! at once. Of the two ways out, copying every received frame into a buffer before
//! smoltcp sees it, or receiving in place and copying only the replies made *while* a
//! frame is being processed, the second is taken: [`LentFrame`] wraps one frame lent by
//! the driver and gives smoltcp a [`ReplyToken`] that writes into [`Staging`]; the staged
//! replies go to the NIC (one copy each) as soon as `NetDevice::receive` returns. Replies
//! made during receive are small (ARP 42 bytes, a TCP ACK or RST 54 bytes) except ICMP
//! echo replies, while received frames are as large as the sender makes them, so this
//! copies far fewer bytes. [`Counters`] records both: in QEMU (netdemo, 500 echo
//! connections and a 10 MiB echo) 16.8 MB were received in place and 14 KB of replies
//! copied, where copying each received frame would have copied all 16.8 MB. Everything the sockets send on their own (data, delayed ACKs,
//! retransmissions, DHCP, ARP requests) goes through [`NicTx`], whose token lets smoltcp
//! build the frame in place in the transmit DMA buffer: no copy. When the NIC has no
//! room, or its queue pair is broken until the device is reset ([`PAIR_BROKEN`]), the
//! frame (or staged reply, up to a received batch of them) is built in the [`Backlog`]
//! instead and copied to the NIC once it takes it: smoltcp counts it as sent, so it must
//! not be lost.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use rexo_api::device::PAIR_BROKEN;
use rexo_api::{DeviceError, NetDevice};

use crate::tso::{self, Tso};
use smoltcp::phy::{self, DeviceCapabilities};
use smoltcp::time::Instant;

/// What the adapter moved and dropped, for the app's statistics and for measuring the
/// cost of the reply copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames the NIC delivered (all handed to smoltcp in place).
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames sent, built in place or copied from staging.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Replies made while a received frame was processed, copied from staging to the NIC
    /// (or to the stack's backlog, to go later; a reply dropped is not counted).
    pub replies_copied: u64,
    /// Bytes of those replies: the only bytes the adapter copies.
    pub reply_bytes_copied: u64,
    /// Frames the NIC refused for good (revoked, the link's filters, a frame it cannot
    /// send at all), and replies made during receive that found a received batch's
    /// worth of frames already waiting in the stack (peers ask again: ARP, ping, a
    /// segment answered by a reset; the stack receives only as many frames as it has
    /// room to answer, so this is a safeguard). A full ring is not a refusal, nor a queue
    /// pair the device broke ([`PAIR_BROKEN`], until the stack has the device reset):
    /// smoltcp's frames wait in the stack (`Backlog`) and go out later, whole and in order.
    pub tx_dropped: u64,
    /// Frames that waited in the stack because the NIC's ring (or its buffers for
    /// large frames) was full when they were built, or the stack's queue pair broken
    /// ([`PAIR_BROKEN`]).
    pub tx_held: u64,
    /// Handshakes left unfinished past the grace time, their sockets given back to
    /// listening for new SYNs (a SYN flood's spoofed connections).
    pub half_open_recycled: u64,
    /// Large TCP segments the NIC took to cut into MTU-sized ones (segmentation
    /// offload; counted in `tx_frames` too).
    pub segmented_by_nic: u64,
    /// Large TCP segments cut by the stack instead, because the NIC refused to cut them
    /// (each of their frames counted in `tx_frames`); a large segment waiting for one
    /// of the NIC's buffers waits whole.
    pub segmented_by_stack: u64,
    /// Times the stack found its queue pair broken by the device ([`PAIR_BROKEN`], to a
    /// receive or a send) and had the whole device reset (a stack per queue pair,
    /// [`crate::attach_cores`]; frames in flight then are lost, frames waiting in the
    /// stack go after the reset).
    pub pair_resets: u64,
    /// DHCP leases refused because no host could use them (a prefix of 0, a router off
    /// the address's network, the network's own or broadcast address as the address, a
    /// loopback one: [`rexo_api::Ipv4Config::check`]) or because they ended before the
    /// stack took them (a lease of 0 s);
    /// the client rests (10 s, doubling for each refusal in a row up to 320 s), then
    /// asks for another.
    pub dhcp_leases_refused: u64,
    /// DHCP leases lost: expired without renewal, ended by the server (a NAK, counted
    /// in `dhcp_naks` too) or refused at renewal (counted in `dhcp_leases_refused`
    /// too), the address dropped. Counted by the stack that runs the DHCP client (the
    /// one stack, or pair 0's of the stacks [`crate::attach_cores`] splits, whose others
    /// drop the address with it); the client then asks for a new lease (after its rest,
    /// for a NAK or a refusal).
    pub dhcp_leases_lost: u64,
    /// DNS servers a DHCP lease named that no host could have (not a unicast host
    /// address, in 0/8, 127/8 or 240/4, or the leased address's network's own or
    /// broadcast address: [`rexo_api::Ipv4Config::check`]), left out
    /// of the lease taken, which keeps the others in its order.
    pub dhcp_dns_servers_dropped: u64,
    /// DHCP server answers (offers and acknowledgements) to the stack's client dropped
    /// before its DHCP client (smoltcp's) saw them, because their timers would have
    /// made it panic: T1 (option 58) past the lease (option 51, 120 s when absent) with
    /// no T2 (option 59). Anyone on the link can send one.
    pub dhcp_answers_refused: u64,
    /// DHCP NAKs to the client's REQUESTs: the server refused the lease asked for or
    /// being renewed (an address held is dropped, counted in `dhcp_leases_lost` too);
    /// the client rests as after a refused lease, then asks for another.
    pub dhcp_naks: u64,
    /// DHCP server answers to the stack's client that put options in their `file` or
    /// `sname` field (option 52, option overload), which the client (smoltcp's) never
    /// reads: it works with the options field alone, so such an answer whose subnet
    /// mask, say, is out there gives no lease. Handed on all the same.
    pub dhcp_answers_overloaded: u64,
    /// IPv4 frames dropped before the protocols saw them for addresses no host sends
    /// from or to (RFC 1122): a source in 127/8, 224/4 or 240/4 or the network's
    /// broadcast address, TCP to another address than the stack's (a broadcast or
    /// multicast SYN) or from 0/8, and a unicast destination on an Ethernet group
    /// address; and ARP whose sender address is a broadcast or multicast one.
    pub rx_misaddressed: u64,
    /// UDP datagrams dropped unsent because their next hop (the destination on the
    /// link, else the router) did not answer ARP within 3 s of their first try, or
    /// there was no route, and those queued to the same next hop before it was given
    /// up on ([`crate::Stack::send_to`]).
    pub udp_unresolved_dropped: u64,
    /// UDP datagrams a socket received that the app had not read, dropped when the
    /// socket was replaced for a datagram that waited for its next hop
    /// ([`udp_unresolved_dropped`](Self::udp_unresolved_dropped)) because the datagrams
    /// kept from an earlier replacement, still unread, filled the socket's receive
    /// buffer (its datagrams and bytes).
    pub udp_unread_dropped: u64,
    /// ARP from another MAC address claiming the stack's address (its sender address,
    /// RFC 5227 2.4): another host uses it. Counted by the stack that guards the address
    /// (the one stack, or pair 0's of the stacks [`crate::attach_cores`] splits).
    pub address_conflicts: u64,
    /// Conflicts answered with an announcement of the address (the first, or one 10 s
    /// or more after the last defence): the stack keeps it.
    pub address_defences: u64,
    /// Leased addresses given up for a second conflict within 10 s of a defence: the
    /// lease is dropped (counted in `dhcp_leases_lost` too), the address declined to its
    /// server (`dhcp_declines`) and the client rests as after a refused lease, then asks
    /// for another. A fixed address is never given up.
    pub addresses_given_up: u64,
    /// DHCPDECLINEs handed to the NIC (one dropped for want of room in its transmit
    /// backlog is counted in `tx_dropped` too): one to the server of each leased address given up
    /// (`addresses_given_up`), so that it marks the address in use rather than offer it
    /// again (RFC 2131 3.1 step 5).
    pub dhcp_declines: u64,
}

impl core::ops::AddAssign for Counters {
    /// Adds `other`'s counts: what several stacks (a core each) moved together.
    fn add_assign(&mut self, other: Counters) {
        self.rx_frames += other.rx_frames;
        self.rx_bytes += other.rx_bytes;
        self.tx_frames += other.tx_frames;
        self.tx_bytes += other.tx_bytes;
        self.replies_copied += other.replies_copied;
        self.reply_bytes_copied += other.reply_bytes_copied;
        self.tx_dropped += other.tx_dropped;
        self.tx_held += other.tx_held;
        self.half_open_recycled += other.half_open_recycled;
        self.segmented_by_nic += other.segmented_by_nic;
        self.segmented_by_stack += other.segmented_by_stack;
        self.pair_resets += other.pair_resets;
        self.dhcp_leases_refused += other.dhcp_leases_refused;
        self.dhcp_leases_lost += other.dhcp_leases_lost;
        self.dhcp_dns_servers_dropped += other.dhcp_dns_servers_dropped;
        self.dhcp_answers_refused += other.dhcp_answers_refused;
        self.dhcp_naks += other.dhcp_naks;
        self.dhcp_answers_overloaded += other.dhcp_answers_overloaded;
        self.rx_misaddressed += other.rx_misaddressed;
        self.udp_unresolved_dropped += other.udp_unresolved_dropped;
        self.udp_unread_dropped += other.udp_unread_dropped;
        self.address_conflicts += other.address_conflicts;
        self.address_defences += other.address_defences;
        self.addresses_given_up += other.addresses_given_up;
        self.dhcp_declines += other.dhcp_declines;
    }
}

/// Sends a frame `fill` writes on `queue`: through the NIC's checksum offload with
/// `offload` (the stack then leaves TCP and UDP checksums zero for the NIC to compute).
/// With `clamp` (segmentation offload on), a SYN's MSS option goes out as this end's
/// real MSS.
fn send(
    nic: &mut dyn NetDevice,
    queue: usize,
    len: usize,
    offload: bool,
    clamp: Option<u16>,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<(), DeviceError> {
    nic.send_frame(queue, len, offload, &mut |buffer| {
        fill(buffer);
        if let Some(mss) = clamp {
            tso::clamp_syn(buffer, mss);
        }
        true
    })
}

/// Whether `capabilities` leave transport checksums to the NIC.
pub(crate) fn offloads(capabilities: &DeviceCapabilities) -> bool {
    !capabilities.checksum.tcp.tx()
}

/// Replies smoltcp wrote while frames were lent by the driver, waiting for the NIC to be
/// free. Bounded: at most one reply per received frame, and the stack receives at most a
/// batch of frames per `NetDevice::receive` call.
pub(crate) struct Staging {
    /// The replies, back to back.
    bytes: Vec<u8>,
    /// The length of each reply in `bytes`, in order.
    lengths: Vec<usize>,
    /// This end's real MSS, with segmentation offload (see [`send`]).
    clamp: Option<u16>,
}

impl Staging {
    /// Room for `frames` replies of up to `max_frame` bytes without reallocating.
    /// `clamp`: see [`send`].
    pub(crate) fn new(frames: usize, max_frame: usize, clamp: Option<u16>) -> Self {
        Self {
            bytes: Vec::with_capacity(frames * max_frame),
            lengths: Vec::with_capacity(frames),
            clamp,
        }
    }

    /// Stages `reply`, made by the stack itself while a received frame was processed.
    pub(crate) fn stage(&mut self, reply: &[u8]) {
        self.bytes.extend_from_slice(reply);
        self.lengths.push(reply.len());
    }

    /// Sends every staged reply on `queue`, in order, after what `backlog` holds, and
    /// empties the staging area. A reply the NIC has no room for (or that meets the
    /// queue pair broken) joins the backlog, unless its bound for replies is reached: it
    /// is then dropped and counted. [`PAIR_BROKEN`] when the pair is broken (what waits
    /// goes once the device is reset), `Revoked` when the NIC was taken away.
    pub(crate) fn flush(
        &mut self,
        nic: &mut dyn NetDevice,
        queue: usize,
        offload: bool,
        counters: &mut Counters,
        backlog: &mut Backlog,
    ) -> Result<(), DeviceError> {
        let mut outcome = backlog.flush(nic, queue, counters);
        let mut at = 0;
        for &len in &self.lengths {
            let reply = &self.bytes[at..at + len];
            at += len;
            let sent = if backlog.is_empty() {
                send(nic, queue, len, offload, self.clamp, &mut |buffer| {
                    buffer.copy_from_slice(reply)
                })
            } else {
                Err(DeviceError::QueueFull)
            };
            match sent {
                Ok(()) => {
                    counters.tx_frames += 1;
                    counters.tx_bytes += len as u64;
                }
                Err(DeviceError::QueueFull | PAIR_BROKEN)
                    if backlog.frames.len() >= backlog.replies_at_most =>
                {
                    counters.tx_dropped += 1;
                    continue;
                }
                Err(error @ (DeviceError::QueueFull | PAIR_BROKEN)) => {
                    if error == PAIR_BROKEN && outcome.is_ok() {
                        outcome = Err(PAIR_BROKEN);
                    }
                    let held = backlog.hold(counters, len, Kind::Small { offload });
                    held.copy_from_slice(reply);
                    if let Some(mss) = self.clamp {
                        tso::clamp_syn(held, mss);
                    }
                }
                Err(DeviceError::Revoked) => {
                    outcome = Err(DeviceError::Revoked);
                    continue;
                }
                Err(_) => {
                    counters.tx_dropped += 1;
                    continue;
                }
            }
            // Copied: to the NIC, or into the backlog to go later.
            counters.replies_copied += 1;
            counters.reply_bytes_copied += len as u64;
        }
        self.bytes.clear();
        self.lengths.clear();
        outcome
    }
}

/// How a frame waiting in the [`Backlog`] is to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A frame the link carries, with or without checksum offload.
    Small {
        /// The NIC computes its transport checksum.
        offload: bool,
    },
    /// A TCP frame longer than the link's, for the NIC to cut
    /// ([`NetDevice::send_tcp_segmented`]).
    Large,
}

/// A frame waiting in the [`Backlog`].
struct Held {
    /// The whole frame.
    bytes: Vec<u8>,
    /// How it goes.
    kind: Kind,
}

/// Frames smoltcp built (or replies staged) that the NIC had no room for when they were
/// made (or that met the stack's queue pair broken, [`PAIR_BROKEN`]), in order: smoltcp counts a frame as sent once its transmit token ran, so such
/// a frame must not be lost (TCP would wait for a retransmission timeout, about a
/// second after a few). They go before anything else, and while any waits the stack
/// gives smoltcp no transmit token (smoltcp keeps its data in the sockets). Replies
/// staged during receive join only while fewer than a received batch's worth of frames
/// wait; later ones are dropped (their peers ask again), so a flood while the NIC's ring
/// is full cannot grow it. The stack receives only as many frames as there is room for
/// their replies ([`Backlog::room_for_replies`]), so the rest of a flood waits in the
/// device's receive ring. So the backlog holds at most one frame of smoltcp's (or the
/// pieces of a large one the stack cut) and the replies of one received batch.
pub(crate) struct Backlog {
    /// The frames, oldest first.
    frames: VecDeque<Held>,
    /// The most frames waiting that a reply still joins (a received batch).
    replies_at_most: usize,
    /// Buffers of frames sent, kept for the next ones (at most `replies_at_most`).
    spare: Vec<Vec<u8>>,
    /// Where a frame goes that the NIC refused for good (smoltcp's closure must run).
    discard: Vec<u8>,
    /// Segmentation offload, when the NIC has it: how large frames are cut.
    tso: Option<Tso>,
    /// The largest frame the link carries.
    max_frame: usize,
}

impl Backlog {
    /// An empty backlog for a link of `max_frame` bytes, with `tso` when the NIC cuts
    /// large TCP frames, that staged replies join while fewer than `replies_at_most`
    /// frames wait.
    pub(crate) fn new(max_frame: usize, tso: Option<Tso>, replies_at_most: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            replies_at_most,
            spare: Vec::new(),
            discard: Vec::new(),
            tso,
            max_frame,
        }
    }

    /// Whether no frame waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// How many frames the stack may receive now with a reply for each still kept:
    /// the replies the backlog takes beyond what waits in it, after sending on `queue`
    /// what the NIC has room for. 0 while it is full: received frames' replies would
    /// be dropped. `Revoked` when the NIC was taken away, [`PAIR_BROKEN`] when the queue
    /// pair is broken (what waits stays until the device is reset).
    pub(crate) fn room_for_replies(
        &mut self,
        nic: &mut dyn NetDevice,
        queue: usize,
        counters: &mut Counters,
    ) -> Result<usize, DeviceError> {
        self.flush(nic, queue, counters)?;
        Ok(self.replies_at_most.saturating_sub(self.frames.len()))
    }

    /// The segmentation offload state, when the NIC has it.
    pub(crate) fn tso(&self) -> Option<&Tso> {
        self.tso.as_ref()
    }

    /// The segmentation offload state, to change.
    pub(crate) fn tso_mut(&mut self) -> Option<&mut Tso> {
        self.tso.as_mut()
    }

    /// Room for a frame of `len` bytes sent as `kind`, at the end of the backlog.
    fn hold(&mut self, counters: &mut Counters, len: usize, kind: Kind) -> &mut [u8] {
        counters.tx_held += 1;
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.resize(len, 0);
        self.frames.push_back(Held { bytes, kind });
        &mut self.frames.back_mut().expect("just pushed").bytes
    }

    /// Keeps the buffer of a frame sent or cut for the next frame held, if fewer than a
    /// batch's worth are kept.
    fn recycle(&mut self, bytes: Vec<u8>) {
        if self.spare.len() < self.replies_at_most {
            self.spare.push(bytes);
        }
    }

    /// Replaces the large frame at the front with the link-sized frames the stack cuts
    /// it into (their checksums computed here).
    fn cut_front(&mut self, counters: &mut Counters) {
        let Some(held) = self.frames.pop_front() else {
            return;
        };
        let mss = self
            .tso
            .as_ref()
            .and_then(|tso| tso.cut_size(&held.bytes, self.max_frame));
        let mut pieces = VecDeque::new();
        let cut = mss.and_then(|mss| {
            tso::segment(&held.bytes, mss, &mut |piece| {
                pieces.push_back(Held {
                    bytes: piece.to_vec(),
                    kind: Kind::Small { offload: false },
                });
            })
        });
        match cut {
            Some(_) => {
                counters.segmented_by_stack += 1;
                while let Some(piece) = pieces.pop_back() {
                    self.frames.push_front(piece);
                }
            }
            // Not a TCP/IPv4 frame: no NIC takes it, and no stack makes one.
            None => counters.tx_dropped += 1,
        }
        self.recycle(held.bytes);
    }

    /// Sends what waits on `queue`, in order, until the NIC has no room. `Revoked`
    /// when the NIC was taken away, [`PAIR_BROKEN`] when the queue pair is broken (what
    /// waits stays, whole, until the device is reset); a frame the NIC refuses for good
    /// is dropped and counted,
    /// except a large one, which the stack cuts instead (also when the NIC has no
    /// buffer for it while it holds nothing at all).
    pub(crate) fn flush(
        &mut self,
        nic: &mut dyn NetDevice,
        queue: usize,
        counters: &mut Counters,
    ) -> Result<(), DeviceError> {
        // Whether the front frame met a NIC with no buffer for it yet nothing in flight
        // (it may have finished with everything in between: try again once).
        let mut retried = false;
        while let Some(held) = self.frames.front() {
            let (bytes, len) = (&held.bytes, held.bytes.len());
            let sent = match (held.kind, &self.tso) {
                (Kind::Large, Some(tso)) => match tso.nic_cut_size(bytes, self.max_frame) {
                    Some(mss) => nic.send_tcp_segmented(queue, len, &mut |buffer| {
                        buffer.copy_from_slice(bytes);
                        Some(mss)
                    }),
                    None => Err(DeviceError::NotSegmentable("refused by the stack's check")),
                },
                (Kind::Large, None) => Err(DeviceError::Unsupported("TCP segmentation offload")),
                (Kind::Small { offload }, _) => send(nic, queue, len, offload, None, &mut |b| {
                    b.copy_from_slice(bytes)
                }),
            };
            match sent {
                Ok(()) => {
                    counters.tx_frames += 1;
                    counters.tx_bytes += len as u64;
                    if held.kind == Kind::Large {
                        counters.segmented_by_nic += 1;
                    }
                    if let Some(held) = self.frames.pop_front() {
                        self.recycle(held.bytes);
                    }
                    retried = false;
                }
                // No buffer for large frames although the NIC holds nothing, twice: it
                // never will have one (a NIC with none); cut by the stack.
                Err(DeviceError::QueueFull)
                    if held.kind == Kind::Large && nic.transmit_pending(queue) == Ok(0) =>
                {
                    if retried {
                        self.cut_front(counters);
                    }
                    retried = !retried;
                }
                // Waits whole for one of the NIC's buffers to come back.
                Err(DeviceError::QueueFull) => return Ok(()),
                Err(error @ (DeviceError::Revoked | PAIR_BROKEN)) => return Err(error),
                Err(_) if held.kind == Kind::Large => self.cut_front(counters),
                Err(_) => {
                    counters.tx_dropped += 1;
                    if let Some(held) = self.frames.pop_front() {
                        self.recycle(held.bytes);
                    }
                }
            }
        }
        Ok(())
    }
}

/// One received frame, lent by the driver for the time of one `deliver` call, as a
/// smoltcp device that yields it once.
pub(crate) struct LentFrame<'frame, 'staging> {
    /// The frame, until smoltcp takes it.
    pub(crate) frame: Option<&'frame [u8]>,
    /// Where replies go.
    pub(crate) staging: &'staging mut Staging,
    /// The real device's capabilities (smoltcp reads them for every frame it builds).
    pub(crate) capabilities: DeviceCapabilities,
}

impl phy::Device for LentFrame<'_, '_> {
    type RxToken<'a>
        = FrameToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = ReplyToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(FrameToken<'_>, ReplyToken<'_>)> {
        let frame = self.frame.take()?;
        Some((
            FrameToken(frame),
            ReplyToken {
                staging: self.staging,
            },
        ))
    }

    /// smoltcp sends during receive only through the token paired with the frame; it
    /// asks for a separate one only when sockets send, which the stack does through
    /// [`NicTx`] after the frame is given back.
    fn transmit(&mut self, _now: Instant) -> Option<ReplyToken<'_>> {
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.capabilities.clone()
    }
}

/// A received frame, read in place.
pub(crate) struct FrameToken<'a>(&'a [u8]);

impl phy::RxToken for FrameToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

/// A reply to the frame being processed, written to [`Staging`].
pub(crate) struct ReplyToken<'a> {
    /// Where it goes.
    staging: &'a mut Staging,
}

impl phy::TxToken for ReplyToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let start = self.staging.bytes.len();
        self.staging.bytes.resize(start + len, 0);
        let result = f(&mut self.staging.bytes[start..]);
        self.staging.lengths.push(len);
        result
    }
}

/// The NIC's transmit side as a smoltcp device: frames are built in place in the
/// transmit DMA buffer.
pub(crate) struct NicTx<'a> {
    /// The NIC.
    pub(crate) nic: &'a mut dyn NetDevice,
    /// The queue sent on.
    pub(crate) queue: usize,
    /// The counters.
    pub(crate) counters: &'a mut Counters,
    /// Frames waiting for room in the NIC: while any waits, smoltcp gets no token.
    pub(crate) backlog: &'a mut Backlog,
    /// The NIC's capabilities.
    pub(crate) capabilities: DeviceCapabilities,
    /// The transaction ID of the last DHCP message the stack's client sent, if it was a
    /// REQUEST: the only one whose NAK the client acts on
    /// ([`crate::ingress::note_dhcp_request`]). `None` for a stack with no DHCP client,
    /// which reads no such ID: its frames are not parsed for one.
    pub(crate) dhcp_request: Option<&'a mut Option<u32>>,
}

impl phy::Device for NicTx<'_> {
    type RxToken<'a>
        = FrameToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = NicTxToken<'a>
    where
        Self: 'a;

    /// Frames are received through [`LentFrame`] only.
    fn receive(&mut self, _now: Instant) -> Option<(FrameToken<'_>, NicTxToken<'_>)> {
        None
    }

    /// A token only when nothing waits in the backlog (after sending what it can):
    /// otherwise smoltcp keeps its data in the socket and tries again at the next poll.
    fn transmit(&mut self, _now: Instant) -> Option<NicTxToken<'_>> {
        // `Revoked` and `PAIR_BROKEN` show again at the next poll's first look, which
        // reports the one and has the device reset for the other.
        let _ = self.backlog.flush(self.nic, self.queue, self.counters);
        if !self.backlog.is_empty() {
            return None;
        }
        Some(NicTxToken {
            offload: offloads(&self.capabilities),
            nic: &mut *self.nic,
            queue: self.queue,
            counters: &mut *self.counters,
            backlog: &mut *self.backlog,
            dhcp_request: self.dhcp_request.as_deref_mut(),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.capabilities.clone()
    }
}

/// One frame to build in place in a transmit DMA buffer, or in the [`Backlog`] when the
/// NIC has no room for it.
pub(crate) struct NicTxToken<'a> {
    /// The NIC.
    nic: &'a mut dyn NetDevice,
    /// The queue.
    queue: usize,
    /// The counters.
    counters: &'a mut Counters,
    /// See [`NicTx::backlog`].
    backlog: &'a mut Backlog,
    /// The NIC computes the transport checksums.
    offload: bool,
    /// See [`NicTx::dhcp_request`].
    dhcp_request: Option<&'a mut Option<u32>>,
}

impl phy::TxToken for NicTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut build = Some(f);
        let mut result = None;
        let backlog = self.backlog;
        let mut dhcp_request = self.dhcp_request;
        let max_frame = backlog.max_frame;
        // A large frame the NIC would refuse after it was built (found by the same
        // check the driver makes) is kept whole, to be cut by the stack.
        let mut kept = None;
        let (sent, kind) = match &backlog.tso {
            Some(tso) if len > max_frame => {
                let sent = self.nic.send_tcp_segmented(self.queue, len, &mut |buffer| {
                    result = Some(build.take()?(buffer));
                    let mss = tso.nic_cut_size(buffer, max_frame);
                    if mss.is_none() {
                        kept = Some(buffer.to_vec());
                    }
                    mss
                });
                (sent, Kind::Large)
            }
            tso => {
                let clamp = tso.as_ref().map(|tso| tso.local_mss);
                let sent = send(
                    self.nic,
                    self.queue,
                    len,
                    self.offload,
                    clamp,
                    &mut |buffer| {
                        if let Some(build) = build.take() {
                            result = Some(build(buffer));
                            if let Some(request) = &mut dhcp_request {
                                crate::ingress::note_dhcp_request(buffer, request);
                            }
                        }
                    },
                );
                let offload = self.offload;
                (sent, Kind::Small { offload })
            }
        };
        let counters = self.counters;
        match sent {
            Ok(()) => {
                counters.tx_frames += 1;
                counters.tx_bytes += len as u64;
                if kind == Kind::Large {
                    counters.segmented_by_nic += 1;
                }
            }
            Err(_) if kept.is_some() => {
                let held = backlog.hold(counters, len, Kind::Large);
                held.copy_from_slice(kept.as_deref().unwrap_or_default());
            }
            // Not taken from smoltcp yet: built in the backlog, sent as soon as there
            // is room or the device is reset (a large frame the NIC refuses otherwise is
            // cut by the stack).
            Err(error)
                if result.is_none()
                    && (error == DeviceError::QueueFull
                        || error == PAIR_BROKEN
                        || kind == Kind::Large)
                    && error != DeviceError::Revoked =>
            {
                let held = backlog.hold(counters, len, kind);
                if let Some(build) = build.take() {
                    result = Some(build(held));
                    if let Some(request) = &mut dhcp_request {
                        crate::ingress::note_dhcp_request(held, request);
                    }
                }
                if let (Kind::Small { .. }, Some(tso)) = (kind, &backlog.tso) {
                    let mss = tso.local_mss;
                    if let Some(held) = backlog.frames.back_mut() {
                        tso::clamp_syn(&mut held.bytes, mss);
                    }
                }
            }
            Err(_) => counters.tx_dropped += 1,
        }
        match (result, build) {
            (Some(result), _) => result,
            (None, Some(build)) => {
                backlog.discard.clear();
                backlog.discard.resize(len, 0);
                build(&mut backlog.discard)
            }
            // The NIC calls `fill` at most once, and `build` was taken only there.
            (None, None) => unreachable!("the frame was built but gave no result"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;
    use alloc::vec;
    use smoltcp::phy::{Device, TxToken};

    /// A TCP/IPv4 frame with `payload` bytes (ACK and PSH) of a connection the stack
    /// never raised, its checksum left to the NIC.
    fn large_frame(payload: usize) -> Vec<u8> {
        let total = 40 + payload;
        let mut f = vec![0u8; 14 + total];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(total as u16).to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f[34..38].copy_from_slice(&[0, 80, 0x9C, 0x40]);
        f[46] = 5 << 4;
        f[47] = 0x18;
        for (i, byte) in f[54..].iter_mut().enumerate() {
            *byte = (i * 7) as u8;
        }
        f
    }

    /// smoltcp builds a large frame the NIC would refuse once built (here: of a
    /// connection whose MSS the stack did not raise, so no segment size is known): it
    /// is not lost but cut by the stack at RFC 879's 536 bytes, every byte on the wire.
    #[test]
    fn a_large_frame_the_nic_would_refuse_is_cut_by_the_stack() {
        let (wire, a, _b) = Wire::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 256);
        let mut nic = a.with_segmentation_offload(14 + 65_535);
        let mut counters = Counters::default();
        let mut backlog = Backlog::new(1514, Some(Tso::new(1514, 14 + 65_535)), 32);
        let frame = large_frame(10_000);
        let mut tx = NicTx {
            nic: &mut nic,
            queue: 0,
            counters: &mut counters,
            backlog: &mut backlog,
            capabilities: DeviceCapabilities::default(),
            dhcp_request: None,
        };
        let token = tx.transmit(Instant::ZERO).expect("a token");
        token.consume(frame.len(), |buffer| buffer.copy_from_slice(&frame));
        assert!(!tx.backlog.is_empty(), "held, not dropped");
        assert!(
            tx.transmit(Instant::ZERO).is_some(),
            "sent at the next look"
        );
        assert!(
            wire.segmented(true).is_empty(),
            "not given to the NIC to cut"
        );
        let mut payload = Vec::new();
        wire.carry(|f| {
            assert!(f.len() <= 14 + 40 + 536);
            payload.extend_from_slice(&f[54..]);
            true
        });
        assert_eq!(payload, &frame[54..]);
        assert_eq!(counters.segmented_by_stack, 1);
        assert_eq!(counters.tx_frames, 10_000u64.div_ceil(536));
        assert_eq!((counters.tx_held, counters.tx_dropped), (1, 0));
    }
}
