//! Rexo's own TCP, for servers first: a sans-IO engine that consumes received IPv4 TCP
//! segments ([`Endpoint::input`]) and produces segments to send ([`Endpoint::poll`]),
//! with the clock passed in as nanoseconds. No device access: the caller (the TCP/IP
//! library OS) moves the packets.
//!
//! The send path is Cheetah's: an application queues [`Piece`]s, small owned buffers
//! (prebuilt response headers) or ranges of shared immutable [`Blob`]s (the file
//! cache), and a connection keeps only those references until they are acknowledged.
//! Each segment, first sent or retransmitted, is filled to the MSS across piece
//! boundaries and handed out as an [`Outgoing`]: the IPv4 and TCP headers plus slices
//! of the pieces, for a gathering NIC to send without assembling a copy. Its checksum
//! is composed from the sums each [`Blob`] stored of its blocks once, so file bytes are
//! not summed again per send.
//!
//! What the engine does: passive open with a bounded half-open table (a full table
//! evicts its oldest entry, so a SYN flood never grows it), MSS and window scale
//! options, in-order receive with a small reassembly of out-of-order runs (and a FIN
//! ahead of a gap), RFC 6298 retransmission timeouts with exponential back-off, fast
//! retransmit and NewReno recovery on three duplicate ACKs, zero-window probes (a
//! persist timer in place of the retransmission timer, with a limit on unanswered
//! probes), keep-alive, orderly close in every FIN state with a compact, bounded
//! TIME-WAIT table, abortive close, RFC 5961's checks on RST, SYN and ACK (with its
//! challenge ACKs limited per connection), Path MTU Discovery (RFC 1191) from the ICMP
//! messages the caller hands over ([`Endpoint::input_icmp`], checked against forgery
//! as RFC 5927 says), and counters ([`Stats`]) for everything dropped. Nagle's
//! algorithm is not used; sender-side silly-window avoidance is. Not done: active open,
//! SACK, timestamps, congestion control beyond NewReno, IP options on sent packets (see
//! docs/network.md).
//!
//! Segmentation offload: with [`Config::segmentation`] a connection hands out
//! super-segments of up to that many payload bytes, whole MSS-sized segments within
//! its send and congestion windows, for a NIC that cuts them at the MSS
//! ([`Outgoing::cut`]); retransmissions after a loss (a timeout, three duplicate ACKs)
//! carry one MSS, and slow start grows the window back to super-segments. Pacing:
//! [`Endpoint::poll`] gives the connections turns of [`Config::burst`] data segments
//! each, round after round, so that many connections share the NIC in turn rather
//! than each sending its whole window before the next.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod challenge;
pub mod checksum;
mod conn;
mod half_open;
mod icmp;
mod piece;
mod seq;
mod siphash;
mod time_wait;
mod wire;

/// The most payload bytes a super-segment can carry ([`Config::segmentation`] is held to
/// it), and the largest [`Config::mss`]: an IPv4 total length is 16 bits, less the IPv4
/// and TCP headers (no options).
pub const MAX_SEGMENTATION: usize = 65_535 - 40;

pub use challenge::{CHALLENGE_ACKS_PER_SECOND, OUT_OF_WINDOW_ACK_INTERVAL_NS};
pub use checksum::{BLOCK, Blob};
pub use icmp::{LEAST_PATH_MSS, PMTU_RAISE_NS, Unreachable};
pub use piece::Piece;
pub use seq::Seq;
pub use wire::{ACK, FIN, Header, Malformed, PSH, RST, SYN, Segment, parse};

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use conn::{Conn, Output, Pace, Setup, Turn};
use core::ops::Bound;
use core::sync::atomic::{AtomicU64, Ordering};

/// The knobs of an [`Endpoint`]; [`Config::default`] suits a web server. Durations are
/// in nanoseconds, and timers saturate: `u64::MAX` means never.
#[derive(Clone, Debug)]
pub struct Config {
    /// The MSS announced, and the most payload per segment sent (1460: Ethernet); at
    /// least [`MIN_MSS`], and at most the link's MTU less 40 bytes of headers and
    /// [`MAX_SEGMENTATION`].
    pub mss: u16,
    /// Each connection's receive buffer in bytes (the most window offered): at least 1,
    /// at most [`MAX_RECV_BUFFER`].
    pub recv_buffer: usize,
    /// The most pieces a connection holds unacknowledged ([`Error::QueueFull`] beyond).
    pub max_send_pieces: usize,
    /// The most half-open connections (SYN received, handshake unfinished).
    pub half_open: usize,
    /// The most established connections waiting for [`Endpoint::accept`].
    pub backlog: usize,
    /// The most connections holding a slot: accepted or waiting, and those that ended
    /// while received bytes wait for the app. An ended connection whose handle the app
    /// has not released yet costs only a small record (its addresses and why it
    /// ended) until [`Endpoint::close`] or [`Endpoint::abort`]. At most this many such
    /// records are kept: beyond, an ended connection whose handle is held keeps its
    /// slot until released, so that an app that never releases its handles (like one
    /// leaking file descriptors) has new connections refused once the slots are taken
    /// too, while every handle still answers as its own connection ended. Connections
    /// the app released ([`Endpoint::close`], [`Endpoint::abort`]) that are still
    /// finishing with the peer (FIN-WAIT-1 or 2, CLOSING, LAST-ACK, a RST owed) do not
    /// count: [`Config::max_released`] bounds them.
    pub max_connections: usize,
    /// The most connections the app released that may still be finishing with the
    /// peer (their FIN unacknowledged, or the peer's FIN awaited in FIN-WAIT-2 for up
    /// to [`Config::fin_wait2_ns`]) beside the [`Config::max_connections`] the app
    /// holds: beyond, one is reset (a RST, [`Stats::released_evicted`]), as a full
    /// TIME-WAIT table forgets its oldest: the one longest in FIN-WAIT-2, which has
    /// nothing left to deliver, else the one released longest ago.
    pub max_released: usize,
    /// The most connections kept in TIME-WAIT; the oldest is forgotten beyond.
    pub time_wait_entries: usize,
    /// How long TIME-WAIT lasts.
    pub time_wait_ns: u64,
    /// How long FIN-WAIT-2 waits for the peer's FIN, once the app released the
    /// connection, before it is dropped: counted from the release ([`Endpoint::close`])
    /// or from FIN-WAIT-2's start, whichever came later (one the app still holds may
    /// wait for the peer as long as it reads).
    pub fin_wait2_ns: u64,
    /// The retransmission timeout before any round trip was measured (RFC 6298: 1 s).
    pub rto_initial_ns: u64,
    /// The smallest retransmission timeout.
    pub rto_min_ns: u64,
    /// The largest retransmission timeout.
    pub rto_max_ns: u64,
    /// Retransmissions of the same data before the connection is reset; also the
    /// zero-window probes in a row the peer may leave unanswered (any acceptable ACK,
    /// whatever its window, answers them all).
    pub max_retransmits: u32,
    /// How long a connection the app released ([`Endpoint::close`]) may wait behind a
    /// zero window, counted from when data began to wait there or the peer last
    /// acknowledged more, before it is reset even though the peer answers its probes:
    /// nobody reads it, and such a peer would hold its slot forever (an open connection
    /// waits as long as the probes are answered, RFC 1122, 4.2.2.17). However much the
    /// peer acknowledges at a zero window (a peer may take each probe's byte), the
    /// whole wait is capped at 4 times this from when the window closed. When the
    /// wait runs out a probe goes at once, and only an answer that still shows a zero
    /// window resets it (one that opens the window lets the data flow; left
    /// unanswered, it counts toward [`Config::max_retransmits`]); its probes are at
    /// most a quarter of this apart (never less than [`Config::rto_min_ns`]).
    pub released_zero_window_ns: u64,
    /// Retransmissions of a SYN-ACK before the half-open connection is dropped.
    pub syn_retries: u32,
    /// Idle time before a keep-alive probe, and between probes; `None`: no keep-alive.
    pub keepalive_ns: Option<u64>,
    /// Unanswered keep-alive probes before the connection is reset.
    pub keepalive_probes: u32,
    /// Whether to check the IPv4 and TCP checksums of received segments (not needed
    /// where the NIC checked them).
    pub verify_checksums: bool,
    /// The key of the initial sequence numbers (RFC 6528: a 4 us clock plus SipHash-2-4
    /// of the addresses and ports under this key). They are only as hard to guess as
    /// the key: pick it at random, from an entropy source (the default is a constant).
    pub secret: u128,
    /// With TCP segmentation offload, the most payload bytes of one segment handed
    /// out: a connection then sends super-segments of as many whole MSS-sized segments
    /// as fit (and its windows allow), which the NIC cuts at the MSS
    /// ([`Outgoing::cut`]); `None` (the default): every segment fits the MSS. Held to
    /// [`MAX_SEGMENTATION`].
    pub segmentation: Option<usize>,
    /// The most data segments (super-segments with `segmentation`) a connection sends
    /// in its turn of a [`poll`](Endpoint::poll) before each other connection with data
    /// had its turn (at least 1), so that connections share the NIC in turn.
    pub burst: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mss: 1460,
            recv_buffer: 64 * 1024,
            max_send_pieces: 64,
            half_open: 256,
            backlog: 64,
            max_connections: 1024,
            max_released: 1024,
            time_wait_entries: 1024,
            time_wait_ns: 10_000_000_000,
            fin_wait2_ns: 30_000_000_000,
            rto_initial_ns: 1_000_000_000,
            rto_min_ns: 200_000_000,
            rto_max_ns: 60_000_000_000,
            max_retransmits: 10,
            released_zero_window_ns: 60_000_000_000,
            syn_retries: 3,
            keepalive_ns: None,
            keepalive_probes: 5,
            verify_checksums: true,
            secret: 0x5eed_0f7e_c0de,
            segmentation: None,
            burst: 1,
        }
    }
}

/// The smallest [`Config::mss`] an [`Endpoint`] takes; a peer announcing less is held
/// to it too (the payload of the smallest IPv4 datagram every host takes, 576 bytes,
/// is far above it).
pub const MIN_MSS: u16 = 64;

/// The largest [`Config::recv_buffer`]: the largest window RFC 7323 (2.3) lets a
/// window scale of 14 offer, 65,535 << 14 bytes (less than 2^31, within which sequence
/// numbers compare).
pub const MAX_RECV_BUFFER: usize = 0xffff << 14;

/// Why [`Endpoint::new`] refused a [`Config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// [`Config::mss`] (shown) is below [`MIN_MSS`].
    MssTooSmall(u16),
    /// [`Config::mss`] (shown) is above [`MAX_SEGMENTATION`]: a full segment's IPv4
    /// total length would not fit its 16 bits.
    MssTooLarge(u16),
    /// [`Config::rto_min_ns`] is above [`Config::rto_max_ns`] (shown, in that order).
    RtoBounds(u64, u64),
    /// [`Config::recv_buffer`] (shown) is 0, a window that never opens, or above
    /// [`MAX_RECV_BUFFER`].
    RecvBuffer(usize),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::MssTooSmall(mss) => write!(f, "an MSS of {mss} bytes is below {MIN_MSS}"),
            Self::MssTooLarge(mss) => write!(
                f,
                "an MSS of {mss} bytes is above {MAX_SEGMENTATION}, the most TCP payload an IPv4 datagram carries"
            ),
            Self::RtoBounds(min, max) => {
                write!(
                    f,
                    "the least RTO ({min} ns) is above the largest ({max} ns)"
                )
            }
            Self::RecvBuffer(bytes) => write!(
                f,
                "a receive buffer of {bytes} bytes is not between 1 and {MAX_RECV_BUFFER}"
            ),
        }
    }
}

/// Why a call on a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such connection (never was, or released).
    BadId,
    /// The handle was made by another endpoint: it names none of this one's
    /// connections (use it on the endpoint that accepted it).
    ForeignId,
    /// The port is already listening.
    PortInUse,
    /// The send queue holds [`Config::max_send_pieces`] pieces.
    QueueFull,
    /// The connection's sending side is closed.
    Closed,
    /// The peer closed its side and everything it sent was read.
    Finished,
    /// The peer reset the connection.
    Reset,
    /// The peer stopped answering (retransmissions, zero-window probes or keep-alives
    /// ran out), or a released connection waited too long behind a zero window.
    TimedOut,
}

/// The state of a connection (RFC 9293's names; connections appear established).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Data flows both ways.
    Established,
    /// We sent FIN, not yet acknowledged.
    FinWait1,
    /// Our FIN was acknowledged; waiting for the peer's.
    FinWait2,
    /// Both sent FIN at once; ours not yet acknowledged.
    Closing,
    /// Both sides closed; lingering for stray segments.
    TimeWait,
    /// The peer closed; we may still send.
    CloseWait,
    /// The peer closed, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// Gone (closed, reset or timed out).
    Closed,
}

/// Counters of what an [`Endpoint`] did and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to [`Endpoint::input`].
    pub segments_in: u64,
    /// Segments handed to the sender.
    pub segments_out: u64,
    /// Super-segments among them, for the NIC to cut ([`Config::segmentation`]).
    pub segments_offloaded: u64,
    /// Segments sent again (timeouts, fast retransmits).
    pub segments_retransmitted: u64,
    /// Packets too short for their headers.
    pub truncated: u64,
    /// Packets with a bad IPv4 header, length, fragment bits, TCP data offset or option.
    pub bad_header: u64,
    /// Packets that were not TCP.
    pub not_tcp: u64,
    /// Packets with a wrong checksum (when checked).
    pub bad_checksum: u64,
    /// Segments outside the receive window, or acknowledging what was not sent.
    pub out_of_window: u64,
    /// Segments for no connection or port (answered with RST where RFC 9293 says so).
    pub no_connection: u64,
    /// SYNs that opened a half-open connection.
    pub syns: u64,
    /// Half-open connections evicted because the table was full.
    pub half_open_evicted: u64,
    /// Half-open connections dropped after their SYN-ACKs went unanswered.
    pub half_open_expired: u64,
    /// Completed handshakes dropped because the backlog or connection table was full
    /// (ended connections whose handles the app holds fill it once their records do,
    /// [`Config::max_connections`]; connections the app released never do).
    pub backlog_full: u64,
    /// RSTs sent.
    pub rst_sent: u64,
    /// Acceptable RSTs received.
    pub rst_received: u64,
    /// ACKs sent in answer to an in-window RST or SYN, or to an ACK of data never sent
    /// or acknowledged long ago (RFC 5961's challenge ACKs).
    pub challenge_acks: u64,
    /// Challenge ACKs not sent: their connection had sent
    /// [`CHALLENGE_ACKS_PER_SECOND`] that second (RFC 5961, 7).
    pub challenge_acks_limited: u64,
    /// ACKs not sent in answer to out-of-window segments without data: their connection
    /// (or TIME-WAIT entry) had sent one less than [`OUT_OF_WINDOW_ACK_INTERVAL_NS`] ago.
    pub out_of_window_acks_limited: u64,
    /// Duplicate ACKs received.
    pub duplicate_acks: u64,
    /// Fast retransmits (three duplicate ACKs).
    pub fast_retransmits: u64,
    /// Retransmission timeouts.
    pub retransmits: u64,
    /// Connections reset after their retransmissions ran out.
    pub retransmit_timeouts: u64,
    /// Out-of-order segments kept for reassembly (as a run of their own or joined to
    /// one held; not those whose data was all held already).
    pub out_of_order_kept: u64,
    /// Out-of-order runs dropped (the reassembly runs were all taken).
    pub out_of_order_dropped: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Connections reset behind a zero window: their probes went unanswered
    /// [`Config::max_retransmits`] times, or the app released them, they waited longer
    /// than [`Config::released_zero_window_ns`] and the probe sent then was answered
    /// with a zero window still.
    pub zero_window_timeouts: u64,
    /// Keep-alive probes sent.
    pub keepalive_probes: u64,
    /// Connections reset after unanswered keep-alives.
    pub keepalive_timeouts: u64,
    /// Connections dropped in FIN-WAIT-2 for want of the peer's FIN.
    pub fin_wait2_timeouts: u64,
    /// TIME-WAIT entries forgotten early because the table was full.
    pub time_wait_evicted: u64,
    /// Connections the app released, still finishing with the peer, reset because
    /// [`Config::max_released`] such were there.
    pub released_evicted: u64,
    /// TIME-WAIT entries ended by a new SYN for the same addresses and ports.
    pub time_wait_reused: u64,
    /// ICMP "fragmentation needed" messages that lowered a connection's MSS (Path MTU
    /// Discovery, [`Endpoint::input_icmp`]).
    pub icmp_mss_lowered: u64,
    /// Lowered MSSs raised to their handshake's again, [`PMTU_RAISE_NS`] after they last
    /// fell (RFC 1191, 6.3).
    pub mss_raised: u64,
    /// Other ICMP destination-unreachable messages acted on: noted for the app
    /// ([`Endpoint::unreachable`]), or a hard error ending a half-open connection.
    pub icmp_unreachable: u64,
    /// ICMP destination-unreachable messages about a listening port not acted on:
    /// damaged (a checksum, a quote cut short), sent to another address than the
    /// quoted segment's source, about no connection or no segment in flight (the
    /// quoted sequence number outside what was sent and not yet acknowledged), naming
    /// an MTU below 68, one the quoted datagram fits, or one not below the connection's
    /// datagrams (the same MTU again, from the other segments of a burst), or one its
    /// MSS cannot fall to.
    pub icmp_dropped: u64,
}

impl Stats {
    /// Counts a malformed packet under its reason.
    fn malformed(&mut self, reason: Malformed) {
        *match reason {
            Malformed::Truncated => &mut self.truncated,
            Malformed::NotTcp => &mut self.not_tcp,
            Malformed::BadChecksum => &mut self.bad_checksum,
            Malformed::BadIpHeader
            | Malformed::BadIpLength
            | Malformed::Fragment
            | Malformed::BadDataOffset
            | Malformed::BadOption => &mut self.bad_header,
        } += 1;
    }
}

/// A connection's addresses and ports, from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    /// Our address.
    pub local: [u8; 4],
    /// Our port.
    pub local_port: u16,
    /// The peer's address.
    pub remote: [u8; 4],
    /// The peer's port.
    pub remote_port: u16,
}

impl Tuple {
    /// The least tuple (an empty range ends before it).
    const MIN: Tuple = Tuple {
        local: [0; 4],
        local_port: 0,
        remote: [0; 4],
        remote_port: 0,
    };
}

/// The link-layer (Ethernet) address a received packet came from, which the caller may
/// give with it ([`Endpoint::input_from`]) so that a reset answering it goes straight
/// back.
pub type LinkAddress = [u8; 6];

/// A segment to send: the IPv4 and TCP headers, checksums filled in, and the payload
/// as slices of the queued pieces (in order, to be sent right after the headers).
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// The IPv4 and TCP headers.
    pub headers: &'a [u8],
    /// The payload, in pieces.
    pub payload: &'a [&'a [u8]],
    /// `Some(mss)` for a super-segment ([`Config::segmentation`]), longer than the
    /// MSS: the NIC must cut it into segments of `mss` payload bytes (the last the
    /// rest; FIN and PSH on the last only) and compute their checksums; its TCP
    /// checksum field holds the pseudo-header's sum for the whole segment. `None`: a
    /// segment to send as it is, its checksums complete.
    pub cut: Option<usize>,
    /// For a RST answering a segment for no connection, the link-layer address that
    /// segment came from when the caller gave it ([`Endpoint::input_from`]): send it
    /// back there, whether or not the peer's address is known (the RST tells only what
    /// the segment itself said). `None` for every other segment, which goes the way
    /// the caller knows to the peer's address (a connection's segments, and the ACK a
    /// segment for a connection in TIME-WAIT or a half-open one gets, carry its
    /// sequence numbers, which only the peer may see).
    pub reply_to: Option<LinkAddress>,
}

impl Outgoing<'_> {
    /// The length of the IPv4 packet.
    pub fn len(&self) -> usize {
        self.headers.len() + self.payload.iter().map(|p| p.len()).sum::<usize>()
    }

    /// Whether the packet is empty (never: it always has headers).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the packet into `out` (for senders that cannot gather).
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.headers);
        for piece in self.payload {
            out.extend_from_slice(piece);
        }
    }
}

/// A connection handle; stale once the connection is released. It names the endpoint
/// that made it: another endpoint (an app with one per core) refuses it with
/// [`Error::ForeignId`] instead of reaching its own connection in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnId {
    /// The identity of the endpoint that made it.
    endpoint: u64,
    index: u32,
    generation: u64,
}

/// What is left of a connection that left the table while the app held its handle
/// (reset, timed out or closed by the peer, nothing left to read): what the handle
/// answers until the app releases it.
struct Gone {
    tuple: Tuple,
    mss: usize,
    /// The connection's last ICMP destination-unreachable code ([`Endpoint::unreachable`]).
    unreachable: Option<u8>,
    /// Why it ended abnormally; `None`: both sides closed.
    error: Option<Error>,
}

impl Gone {
    /// What `send` on its handle answers (as [`Conn`]'s send does once it ended).
    fn send_error(&self) -> Error {
        self.error.unwrap_or(Error::Closed)
    }

    /// What `recv` on its handle answers (as [`Conn`]'s recv does once all was read).
    fn recv_error(&self) -> Error {
        self.error.unwrap_or(Error::Finished)
    }
}

/// A slot of the connection table.
struct Slot {
    /// Moved on for each connection the slot takes. A `u64`, so that it never comes
    /// round again: 2^64 connections through one slot take some 11 million years at
    /// 50,000 a second, where a `u32` wrapped in a day and a handle the app kept matched
    /// a stranger's connection in the slot.
    generation: u64,
    conn: Option<Conn>,
}

/// Whether `id` still names a released connection finishing with the peer in `slots`.
fn still_finishing(slots: &[Slot], id: ConnId) -> bool {
    let slot = &slots[id.index as usize];
    slot.generation == id.generation && slot.conn.as_ref().is_some_and(Conn::finishing)
}

/// Appends `id` to `queue` (one of the endpoint's orders of released connections),
/// first dropping the entries no longer finishing when they outnumber the `finishing`
/// ones, so that the queue stays within about twice those at a cost of O(1) a push.
fn push_pruned(queue: &mut VecDeque<ConnId>, id: ConnId, finishing: usize, slots: &[Slot]) {
    if queue.len() > 2 * finishing + 8 {
        queue.retain(|&id| still_finishing(slots, id));
    }
    queue.push_back(id);
}

/// Takes entries off the front of `queue` until one names a connection still
/// finishing, and returns its slot's index (`None` when none is left).
fn first_live(queue: &mut VecDeque<ConnId>, slots: &[Slot]) -> Option<usize> {
    while let Some(id) = queue.pop_front() {
        if still_finishing(slots, id) {
            return Some(id.index as usize);
        }
    }
    None
}

/// The endpoint's orders of connections by time: their timers' deadlines and their
/// idle cuts.
struct Orders<'a> {
    timers: &'a mut BTreeSet<(u64, Tuple)>,
    idle_cuts: &'a mut BTreeSet<(u64, Tuple)>,
}

/// Moves the connection in `slot` to its deadline and its idle cut in `orders`, or out
/// of them if it is not `in_table`.
fn reschedule(orders: Orders<'_>, config: &Config, slot: &mut Slot, in_table: bool) {
    let Some(conn) = slot.conn.as_mut() else {
        return;
    };
    let (deadline, idle_cut) = match in_table {
        true => (conn.deadline(config), conn.idle_cut_at()),
        false => (None, None),
    };
    let tuple = conn.tuple;
    move_to(orders.timers, &mut conn.scheduled, deadline, tuple);
    move_to(
        orders.idle_cuts,
        &mut conn.idle_cut_scheduled,
        idle_cut,
        tuple,
    );
}

/// Moves `tuple`'s entry in `order` from `*at` to `to` (`None`: no entry).
fn move_to(
    order: &mut BTreeSet<(u64, Tuple)>,
    at: &mut Option<u64>,
    to: Option<u64>,
    tuple: Tuple,
) {
    if *at == to {
        return;
    }
    if let Some(old) = *at {
        order.remove(&(old, tuple));
    }
    if let Some(new) = to {
        order.insert((new, tuple));
    }
    *at = to;
}

/// Gives the connection in `slot` (`tuple`'s) its turn at `out`: `None` if `emit`
/// refused a segment, else whether it has data left for another turn. A connection
/// with nothing left that is finished joins `finished`.
fn take_turn(
    slot: &mut Slot,
    tuple: Tuple,
    now: u64,
    out: &mut Output<'_>,
    pace: Pace,
    finished: &mut Vec<Tuple>,
) -> Option<bool> {
    #[cfg(test)]
    crate::tests::count_visited();
    let Some(conn) = slot.conn.as_mut() else {
        return Some(false);
    };
    match conn.output(now, out, pace) {
        Turn::Refused => None,
        Turn::More => Some(true),
        Turn::Done => {
            if conn.finished() {
                finished.push(tuple);
            }
            Some(false)
        }
    }
}

/// What a segment given to [`Endpoint::input`] showed of its sender, for a caller that
/// learns the way back to peers from the frames that bring their segments (a blind
/// spoofer of a peer's address must not move that way elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// It acknowledged our sequence numbers (an acceptable segment of a connection, or
    /// the handshake's last ACK), which only the peer sees: it came from the peer.
    Peer,
    /// A SYN that opened a connection to a listening port: a peer not yet proven.
    Caller,
    /// Anything else (malformed, out of window, a reset, a segment for no connection):
    /// nothing is known of where it came from.
    Unknown,
}

/// The TCP engine of one address space: listening ports, connections, and the
/// segments between them and the network.
pub struct Endpoint {
    /// This endpoint's identity, which its [`ConnId`]s carry: unique among the
    /// endpoints made since boot ([`NEXT_ENDPOINT`]).
    id: u64,
    config: Config,
    listening: Vec<u16>,
    /// The half-open connections, kept in the order their SYN-ACKs go again.
    half_open: half_open::Table,
    accept_queue: VecDeque<ConnId>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    by_tuple: BTreeMap<Tuple, usize>,
    /// How many slots hold a connection the app released (still finishing with the
    /// peer): not counted against [`Config::max_connections`].
    released: usize,
    /// How many of those are still finishing ([`Conn::finishing`]: not closed, not in
    /// TIME-WAIT), which [`Config::max_released`] bounds.
    finishing: usize,
    /// The released connections still finishing, in the order the app released them;
    /// an entry whose connection ended meanwhile is dropped when met (or when stale
    /// ones outnumber the live, [`push_pruned`]).
    released_order: VecDeque<ConnId>,
    /// Of those, the ones in FIN-WAIT-2 (all they had to send is acknowledged, the
    /// peer's FIN awaited), in the order they got there: the first reset past
    /// [`Config::max_released`], as a reset loses nothing of theirs. Entries are
    /// dropped as in `released_order`.
    drained: VecDeque<ConnId>,
    /// The handles whose connection left the table and its slot (by index and
    /// generation): a new connection in the slot has another generation, so a stale
    /// handle reaches only this. At most [`Config::max_connections`] records.
    gone: BTreeMap<ConnId, Gone>,
    time_wait: time_wait::Table,
    /// The connections in the table that have a timer, by their earliest deadline
    /// ([`Conn::deadline`]), then tuple: a poll runs the timers of those due, and
    /// [`next_deadline`](Endpoint::next_deadline) reads the first, without computing
    /// every connection's deadline. [`follow`](Endpoint::follow) keeps it true.
    timers: BTreeSet<(u64, Tuple)>,
    /// The connections in the table that are idle with a congestion window a turn of
    /// a poll will cut ([`Conn::idle_cut_at`]), by when, then tuple: they are owed a
    /// turn then, as they would have had one on every poll.
    idle_cuts: BTreeSet<(u64, Tuple)>,
    /// The connections in the table owed a turn of a poll: every one that changed
    /// since its last turn (a segment, a timer, the app, an eviction) or whose turn
    /// was cut short ([`Turn::More`], a refusal), so a poll gives turns only to them
    /// (a turn of any other would send nothing and change nothing).
    owed: BTreeSet<Tuple>,
    /// RSTs and ACKs owed to segments without a connection, bounded, each with where
    /// it goes back to when that is its segment's own link-layer source.
    replies: VecDeque<(Header, Option<LinkAddress>)>,
    /// The connection whose segment `emit` last refused: the next poll starts with the
    /// one after it, so that a full transmit ring is shared in turn, not taken by the
    /// first connections every time.
    resume: Option<Tuple>,
    /// The latest time given to [`input`](Endpoint::input) or
    /// [`poll`](Endpoint::poll): when a call without a clock ([`close`](Endpoint::close))
    /// happened, as near as the endpoint knows.
    clock: u64,
    ip_id: u16,
    stats: Stats,
}

/// `base` doubled `times` times, at most `max`.
fn backed_off(base: u64, times: u32, max: u64) -> u64 {
    base.saturating_mul(1 << times.min(32)).min(max)
}

/// The slot of `tuple`'s connection in the table `by_tuple`, if it is there.
fn slot_of(by_tuple: &BTreeMap<Tuple, usize>, tuple: &Tuple) -> Option<usize> {
    #[cfg(test)]
    crate::tests::count_looked_up();
    by_tuple.get(tuple).copied()
}

/// The identity of the next endpoint made: a `u64`, so that it never comes round again.
static NEXT_ENDPOINT: AtomicU64 = AtomicU64::new(0);

/// The most replies owed to connectionless segments; more are not answered.
const MAX_REPLIES: usize = 256;

impl Endpoint {
    /// An endpoint with nothing listening, or [`ConfigError::MssTooSmall`] for a
    /// [`Config::mss`] below [`MIN_MSS`], [`ConfigError::MssTooLarge`] for one above
    /// [`MAX_SEGMENTATION`], [`ConfigError::RtoBounds`] for a least RTO
    /// above the largest, [`ConfigError::RecvBuffer`] for a receive buffer of 0 or
    /// above [`MAX_RECV_BUFFER`]. The MSS must also fit the link (its MTU less 40 bytes of IPv4
    /// and TCP headers), which only the caller knows.
    pub fn new(config: Config) -> Result<Endpoint, ConfigError> {
        if config.mss < MIN_MSS {
            return Err(ConfigError::MssTooSmall(config.mss));
        }
        if usize::from(config.mss) > MAX_SEGMENTATION {
            return Err(ConfigError::MssTooLarge(config.mss));
        }
        if config.rto_min_ns > config.rto_max_ns {
            return Err(ConfigError::RtoBounds(config.rto_min_ns, config.rto_max_ns));
        }
        if !(1..=MAX_RECV_BUFFER).contains(&config.recv_buffer) {
            return Err(ConfigError::RecvBuffer(config.recv_buffer));
        }
        Ok(Endpoint {
            id: NEXT_ENDPOINT.fetch_add(1, Ordering::Relaxed),
            config,
            listening: Vec::new(),
            half_open: half_open::Table::default(),
            accept_queue: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            by_tuple: BTreeMap::new(),
            released: 0,
            finishing: 0,
            released_order: VecDeque::new(),
            drained: VecDeque::new(),
            gone: BTreeMap::new(),
            time_wait: time_wait::Table::default(),
            timers: BTreeSet::new(),
            idle_cuts: BTreeSet::new(),
            owed: BTreeSet::new(),
            replies: VecDeque::new(),
            resume: None,
            clock: 0,
            ip_id: 0,
            stats: Stats::default(),
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Changes [`Config::segmentation`]: from the next poll segments are made to the
    /// new limit (those sent are retransmitted one MSS at a time either way).
    pub fn set_segmentation(&mut self, segmentation: Option<usize>) {
        self.config.segmentation = segmentation;
    }

    /// The current [`Config::segmentation`].
    pub fn segmentation(&self) -> Option<usize> {
        self.config.segmentation
    }

    /// Accepts connections to `port` on any local address.
    pub fn listen(&mut self, port: u16) -> Result<(), Error> {
        if self.listening.contains(&port) {
            return Err(Error::PortInUse);
        }
        self.listening.push(port);
        Ok(())
    }

    /// Whether `port` accepts connections ([`listen`](Self::listen) took it).
    pub fn listens(&self, port: u16) -> bool {
        self.listening.contains(&port)
    }

    /// The next established connection not yet accepted.
    pub fn accept(&mut self) -> Option<ConnId> {
        self.accept_queue.pop_front()
    }

    /// How many connections hold a slot: accepted or waiting, and those that left the
    /// table (reset, timed out or closed by the peer) while their bytes wait for the app
    /// to read them, or while the records of ended connections whose handles the app
    /// holds are full; and those the app released while they finish with the peer
    /// ([`released`](Self::released)). [`Config::max_connections`] bounds those the
    /// app did not release, [`Config::max_released`] the others.
    pub fn connections(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// How many connections the app released still hold a slot while they finish with
    /// the peer (their FIN unacknowledged, the peer's awaited, a RST owed).
    pub fn released(&self) -> usize {
        self.released
    }

    /// How many connections are half-open.
    pub fn half_open(&self) -> usize {
        self.half_open.len()
    }

    /// Whether a connection (in the table, or half-open) joins `remote` to one of
    /// the listening ports at `local`: a few searches per listening port, for a caller
    /// that must not forget the way back to a live peer.
    pub fn talks_with(&self, local: [u8; 4], remote: [u8; 4]) -> bool {
        self.listening.iter().any(|&local_port| {
            let tuple = |remote_port| Tuple {
                local,
                local_port,
                remote,
                remote_port,
            };
            let range = tuple(0)..=tuple(u16::MAX);
            self.by_tuple.range(range.clone()).next().is_some() || self.half_open.any_in(range)
        })
    }

    /// How many connections are remembered in TIME-WAIT.
    pub fn time_wait(&self) -> usize {
        self.time_wait.len()
    }

    /// [`Error::ForeignId`] for a handle another endpoint made.
    fn check(&self, id: ConnId) -> Result<(), Error> {
        if id.endpoint == self.id {
            Ok(())
        } else {
            Err(Error::ForeignId)
        }
    }

    fn conn(&self, id: ConnId) -> Result<&Conn, Error> {
        self.check(id)?;
        let slot = self.slots.get(id.index as usize).ok_or(Error::BadId)?;
        match &slot.conn {
            Some(conn) if slot.generation == id.generation && !conn.released => Ok(conn),
            _ => Err(Error::BadId),
        }
    }

    /// What is left of `id`'s connection if it left the table.
    fn gone_of(&self, id: ConnId) -> Option<&Gone> {
        self.gone.get(&id)
    }

    /// `open` of `id`'s connection, or `gone` of what is left of it.
    fn read<T>(
        &self,
        id: ConnId,
        open: impl FnOnce(&Conn) -> T,
        gone: impl FnOnce(&Gone) -> T,
    ) -> Result<T, Error> {
        match self.conn(id) {
            Ok(conn) => Ok(open(conn)),
            Err(error) => self.gone_of(id).map(gone).ok_or(error),
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Result<&mut Conn, Error> {
        self.check(id)?;
        let slot = self.slots.get_mut(id.index as usize).ok_or(Error::BadId)?;
        match &mut slot.conn {
            Some(conn) if slot.generation == id.generation && !conn.released => Ok(conn),
            _ => Err(Error::BadId),
        }
    }

    /// The connection's addresses and ports.
    pub fn tuple(&self, id: ConnId) -> Result<Tuple, Error> {
        self.read(id, |conn| conn.tuple, |gone| gone.tuple)
    }

    /// The connection's state.
    pub fn state(&self, id: ConnId) -> Result<State, Error> {
        self.read(id, |conn| conn.state, |_| State::Closed)
    }

    /// The most payload bytes per segment the connection sends.
    pub fn mss(&self, id: ConnId) -> Result<usize, Error> {
        self.read(id, Conn::mss, |gone| gone.mss)
    }

    /// The code (RFC 792) of the last ICMP destination-unreachable message, other than
    /// "fragmentation needed" (which lowers the MSS instead), about a segment of the
    /// connection in flight since the peer last acknowledged new data: a router said
    /// the peer is unreachable, which may be why the connection stalls or later times
    /// out (RFC 1122, 4.2.3.9: made available to the app). It never ends a
    /// connection, whatever the code: a soft error (0, 1, 5) must not, and a hard one
    /// (2, 3) is taken as soft once the handshake is done, so that a forged one
    /// cannot reset it (RFC 5927, 5.2).
    pub fn unreachable(&self, id: ConnId) -> Result<Option<u8>, Error> {
        self.read(id, |conn| conn.unreachable, |gone| gone.unreachable)
    }

    /// The bytes queued on the connection and not yet acknowledged.
    pub fn unacknowledged(&self, id: ConnId) -> Result<usize, Error> {
        self.read(id, Conn::unacknowledged, |_| 0)
    }

    /// Queues `piece` for sending; it is kept, not copied, until acknowledged.
    pub fn send(&mut self, id: ConnId, piece: Piece) -> Result<(), Error> {
        self.check(id)?;
        let config = &self.config;
        let slot = self.slots.get_mut(id.index as usize).ok_or(Error::BadId)?;
        let sent = match &mut slot.conn {
            Some(conn) if slot.generation == id.generation && !conn.released => {
                conn.send(piece, config)
            }
            _ => match self.gone.get(&id) {
                Some(gone) => Err(gone.send_error()),
                None => Err(Error::BadId),
            },
        };
        // A refused send changed nothing, and a stale handle's slot may hold a stranger.
        if sent.is_ok() {
            let index = id.index as usize;
            self.follow(index, self.in_table(index));
        }
        sent
    }

    /// Copies received bytes into `buf`: `Ok(0)` when none are there yet,
    /// [`Error::Finished`] once the peer closed and all was read, [`Error::Reset`]
    /// (or [`Error::TimedOut`]) once the connection ended so and all was read.
    pub fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> Result<usize, Error> {
        let read = match self.conn_mut(id) {
            Ok(conn) => conn.recv(buf),
            Err(error) => {
                return Err(self.gone_of(id).map_or(error, Gone::recv_error));
            }
        };
        // Nothing read changes nothing (an app reads every connection each loop: the
        // idle ones are owed no turn for it); bytes read may owe a window update.
        let index = id.index as usize;
        let in_table = self.in_table(index);
        if matches!(read, Ok(n) if n > 0) {
            self.follow(index, in_table);
        }
        self.bury_if_read(index, in_table);
        read
    }

    /// Closes the sending side once what is queued is sent (a FIN); the connection can
    /// still receive.
    pub fn shutdown(&mut self, id: ConnId) -> Result<(), Error> {
        match self.conn_mut(id) {
            Ok(conn) => {
                conn.shutdown();
                let index = id.index as usize;
                self.follow(index, self.in_table(index));
            }
            Err(error) => _ = self.gone_of(id).ok_or(error)?,
        }
        Ok(())
    }

    /// Closes the connection and gives the handle up: what is queued is still sent,
    /// then a FIN; the bytes received and not read are dropped (the window opens), and
    /// what the peer still sends is acknowledged and dropped: a lingering close, not
    /// the reset RFC 1122 (4.2.2.13) suggests, which could make the peer's TCP drop
    /// what we sent last before its app read it (RFC 9112, 9.6). A connection already
    /// in FIN-WAIT-2 waits [`Config::fin_wait2_ns`] from now for the peer's FIN, now
    /// being the latest time the endpoint was given ([`input`](Endpoint::input) or
    /// [`poll`](Endpoint::poll)). Past [`Config::max_released`] released connections
    /// still finishing with their peers, one is reset ([`Stats::released_evicted`]):
    /// the one longest in FIN-WAIT-2, which loses nothing, else the one released
    /// longest ago, whose data not yet acknowledged, and its FIN, are lost.
    pub fn close(&mut self, id: ConnId) -> Result<(), Error> {
        self.release(id, Conn::shutdown)
    }

    /// Resets the connection (a RST) and gives the handle up.
    pub fn abort(&mut self, id: ConnId) -> Result<(), Error> {
        self.release(id, |conn| {
            // A RST still owed (a timeout's, the emitter full) is still sent.
            let send_rst = conn.state != State::Closed || conn.rst_pending;
            conn.reset(Error::Reset, send_rst);
        })
    }

    /// Gives `id` up after `last` on its connection; a connection that already left the
    /// table (it waited only for the app to read) frees its slot at once, and what is
    /// left of one that left its slot too is forgotten.
    fn release(&mut self, id: ConnId, last: impl FnOnce(&mut Conn)) -> Result<(), Error> {
        let now = self.clock;
        let fin_wait2_end = now.saturating_add(self.config.fin_wait2_ns);
        let conn = match self.conn_mut(id) {
            Ok(conn) => conn,
            Err(error) => {
                return match self.gone.remove(&id) {
                    Some(_) => Ok(()),
                    None => Err(error),
                };
            }
        };
        last(conn);
        conn.release(fin_wait2_end);
        let (finishing, fin_wait_2) = (conn.finishing(), conn.state == State::FinWait2);
        if finishing {
            self.finishing += 1;
            push_pruned(&mut self.released_order, id, self.finishing, &self.slots);
            if fin_wait_2 {
                push_pruned(&mut self.drained, id, self.finishing, &self.slots);
            }
        }
        self.released += 1;
        let index = id.index as usize;
        let in_table = self.in_table(index);
        self.follow(index, in_table);
        if !in_table {
            self.free_slot(index);
        }
        self.reset_oldest_released();
        Ok(())
    }

    /// Resets a released connection still finishing with the peer if more than
    /// [`Config::max_released`] are: the one longest in FIN-WAIT-2 (nothing of its own
    /// left to deliver), else the one released longest ago, whose unsent or
    /// unacknowledged data and FIN are lost. Its RST goes on the next poll, which frees
    /// its slot.
    fn reset_oldest_released(&mut self) {
        if self.finishing <= self.config.max_released {
            return;
        }
        let victim = first_live(&mut self.drained, &self.slots)
            .or_else(|| first_live(&mut self.released_order, &self.slots));
        if let Some(index) = victim
            && let Some(conn) = self.slots[index].conn.as_mut()
        {
            conn.reset(Error::Reset, true);
            self.finishing -= 1;
            self.stats.released_evicted += 1;
            // It was finishing, so not closed: in the table.
            self.follow(index, true);
        }
    }

    /// Keeps the count and orders of released connections true after the connection
    /// in slot `index` took a segment, given whether it was finishing and its state
    /// before: one that ended leaves the count, one that reached FIN-WAIT-2 joins
    /// `drained`.
    fn follow_released(&mut self, index: usize, (was_finishing, was): (bool, State)) {
        let slot = &self.slots[index];
        let Some(conn) = slot.conn.as_ref().filter(|_| was_finishing) else {
            return;
        };
        if !conn.finishing() {
            self.finishing -= 1;
        } else if was != State::FinWait2 && conn.state == State::FinWait2 {
            let id = ConnId {
                endpoint: self.id,
                index: index as u32,
                generation: slot.generation,
            };
            push_pruned(&mut self.drained, id, self.finishing, &self.slots);
        }
    }

    /// Keeps the endpoint's orders true for the connection in slot `index` after it
    /// changed: while it is in the table it is owed a turn of the next poll and its
    /// places in the orders of timers and idle cuts follow it; it leaves those orders
    /// once it left the table ([`retire`](Endpoint::retire) takes it off `owed`).
    /// `in_table`: whether it is in the table, which the caller knows from the search
    /// that found it (or [`in_table`](Endpoint::in_table) tells).
    fn follow(&mut self, index: usize, in_table: bool) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some(tuple) = slot.conn.as_ref().map(|conn| conn.tuple) else {
            return;
        };
        let orders = Orders {
            timers: &mut self.timers,
            idle_cuts: &mut self.idle_cuts,
        };
        reschedule(orders, &self.config, slot, in_table);
        if in_table {
            self.owed.insert(tuple);
        }
    }

    /// Whether the connection in slot `index` is in the table: one not closed always is
    /// (no search), a closed one until the poll after it closed retires it.
    fn in_table(&self, index: usize) -> bool {
        let Some(conn) = self.slots.get(index).and_then(|slot| slot.conn.as_ref()) else {
            return false;
        };
        conn.state != State::Closed || slot_of(&self.by_tuple, &conn.tuple) == Some(index)
    }

    /// Empties the slot `index`, which holds a connection (every caller checked), and
    /// puts it on the free list: the connection it held.
    fn free_slot(&mut self, index: usize) -> Conn {
        let conn = self.slots[index]
            .conn
            .take()
            .expect("free_slot: the caller checked the slot holds a connection");
        self.free.push(index);
        if conn.released {
            self.released -= 1;
        }
        conn
    }

    /// Frees the slot `index` of a connection that left the table (`in_table` is
    /// false: the caller knows, so the table is not searched again) once the app has
    /// read all it received, leaving what its handle still answers in the `gone`
    /// records; while those hold [`Config::max_connections`] records, the connection
    /// keeps its slot instead, so that handles the app never releases are bounded too.
    fn bury_if_read(&mut self, index: usize, in_table: bool) {
        let slot = &mut self.slots[index];
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        if in_table
            || conn.unread()
            || conn.state != State::Closed
            || self.gone.len() >= self.config.max_connections
        {
            return;
        }
        let gone = Gone {
            tuple: conn.tuple,
            mss: conn.mss(),
            unreachable: conn.unreachable,
            error: conn.error,
        };
        let id = ConnId {
            endpoint: self.id,
            index: index as u32,
            generation: slot.generation,
        };
        self.gone.insert(id, gone);
        self.free_slot(index);
    }

    /// The initial sequence number for `tuple` at `now` (RFC 6528: M + F, M a 4 us
    /// clock and F SipHash-2-4, a keyed pseudorandom function, of our address and port
    /// and the peer's under [`Config::secret`]).
    fn isn(&self, tuple: &Tuple, now: u64) -> Seq {
        let mut connection = [0u8; 12];
        connection[..4].copy_from_slice(&tuple.local);
        connection[4..6].copy_from_slice(&tuple.local_port.to_be_bytes());
        connection[6..10].copy_from_slice(&tuple.remote);
        connection[10..].copy_from_slice(&tuple.remote_port.to_be_bytes());
        let f = siphash::siphash_2_4(self.config.secret, &connection);
        Seq((f as u32).wrapping_add((now / 4000) as u32))
    }

    /// Processes one received IPv4 packet at `now` and says what it showed of its
    /// sender. Anything malformed, out of window or for no connection is dropped and
    /// counted (some answered with a RST or ACK on the next [`poll`](Endpoint::poll)).
    /// The caller finds the way to the peer of every segment it sends; with the packet's
    /// link-layer source, [`input_from`](Endpoint::input_from) answers a segment for no
    /// connection there.
    pub fn input(&mut self, now: u64, packet: &[u8]) -> Sender {
        self.receive(now, packet, None)
    }

    /// [`input`](Endpoint::input) of a packet that came from `link`: a RST answering a
    /// segment for no connection goes back there ([`Outgoing::reply_to`]), so that a
    /// peer whose address the caller does not know (it never opened a connection) still
    /// hears that there is none.
    pub fn input_from(&mut self, now: u64, packet: &[u8], link: LinkAddress) -> Sender {
        self.receive(now, packet, Some(link))
    }

    /// [`input`](Endpoint::input) of a packet from `link`, if known.
    fn receive(&mut self, now: u64, packet: &[u8], link: Option<LinkAddress>) -> Sender {
        self.clock = self.clock.max(now);
        self.stats.segments_in += 1;
        let seg = match parse(packet, self.config.verify_checksums) {
            Ok(seg) => seg,
            Err(reason) => {
                self.stats.malformed(reason);
                return Sender::Unknown;
            }
        };
        let tuple = Tuple {
            local: seg.dst,
            local_port: seg.dst_port,
            remote: seg.src,
            remote_port: seg.src_port,
        };
        let mut ended_time_wait = None;
        if let Some(index) = slot_of(&self.by_tuple, &tuple) {
            let Some(conn) = self.slots[index].conn.as_mut() else {
                return Sender::Unknown;
            };
            if conn.state != State::TimeWait {
                let before = (conn.finishing(), conn.state);
                let sender = match conn.input(&seg, now, &self.config, &mut self.stats) {
                    true => Sender::Peer,
                    false => Sender::Unknown,
                };
                let done = conn.state == State::Closed && conn.finished();
                self.follow_released(index, before);
                self.follow(index, true);
                // Reset, or its FIN acknowledged in LAST-ACK: it leaves the table at
                // once, so that the peer's next SYN for the tuple opens a new connection.
                if done {
                    self.retire(tuple, now);
                }
                return sender;
            }
            // Held by the app (a released one left for the compact table): it answers
            // as the compact entry does.
            let Some(old_snd_nxt) = conn.input_time_wait(&seg, now, &self.config, &mut self.stats)
            else {
                self.follow(index, true);
                return Sender::Unknown;
            };
            ended_time_wait = Some(old_snd_nxt);
            self.retire(tuple, now);
        }
        if self.time_wait.contains(&tuple) {
            match self.input_time_wait(&tuple, &seg, now) {
                Some(old_snd_nxt) => ended_time_wait = Some(old_snd_nxt),
                None => return Sender::Unknown,
            }
        }
        if self.half_open.contains(&tuple) {
            return self.input_half_open(tuple, &seg, now, link);
        }
        if seg.has(RST) || seg.has(SYN | FIN) {
            // A SYN that also closes opens nothing (`Segment::opens`): dropped
            // unanswered, to an open port or a closed one alike, as Linux does.
            self.stats.no_connection += 1;
        } else if seg.opens() && self.listening.contains(&seg.dst_port) {
            self.open(tuple, &seg, now, ended_time_wait);
            return Sender::Caller;
        } else {
            self.stats.no_connection += 1;
            self.reply_reset(&tuple, &seg, link);
        }
        Sender::Unknown
    }

    /// Processes one received IPv4 packet carrying ICMP at `now`: `true` if it is a
    /// destination-unreachable message quoting a TCP segment from one of the listening
    /// ports, which is taken (acted on or dropped, counted in [`Stats`] either way);
    /// `false` leaves anything else to the caller, nothing counted. Its checksums are
    /// always checked (no NIC checks an ICMP message's), and it must quote a segment
    /// in flight: sent to the quoted segment's source, about a connection's addresses
    /// and ports, its sequence number within what was sent and not yet acknowledged
    /// (RFC 5927, 4.1), or a half-open connection's SYN-ACK. Path MTU Discovery (RFC
    /// 1191): a "fragmentation needed" naming a next-hop MTU below the connection's
    /// datagrams (and the quoted one's) lowers its MSS to that MTU less 40 bytes
    /// (never below [`LEAST_PATH_MSS`]; with no MTU named, the plateau below what was
    /// refused), and what is in flight goes again at once in segments of the new
    /// size, its congestion window unchanged. [`PMTU_RAISE_NS`] after it last fell, the
    /// MSS the handshake gave is tried again (RFC 1191, 6.3). Other codes are noted for the app
    /// ([`unreachable`](Endpoint::unreachable)); a hard one (protocol or port
    /// unreachable) ends a half-open connection.
    pub fn input_icmp(&mut self, now: u64, packet: &[u8]) -> bool {
        let message = match icmp::read(packet) {
            icmp::Read::Other => return false,
            icmp::Read::Damaged(port) => {
                let ours = self.listens(port);
                self.stats.icmp_dropped += u64::from(ours);
                return ours;
            }
            icmp::Read::Unreachable(message) => message,
        };
        if !self.listens(message.tuple.local_port) {
            return false;
        }
        self.input_unreachable(now, &message);
        true
    }

    /// The IPv4 packet `packet` read as [`input_icmp`](Endpoint::input_icmp) reads it,
    /// without acting on it: a whole destination-unreachable message, its checksums
    /// right, quoting a segment from a listening port; `None` for anything else. For a
    /// caller that hands such a message to the endpoint holding its connection
    /// ([`holds`](Endpoint::holds), [`input_unreachable`](Endpoint::input_unreachable)).
    pub fn unreachable_about(&self, packet: &[u8]) -> Option<Unreachable> {
        match icmp::read(packet) {
            icmp::Read::Unreachable(message) if self.listens(message.tuple.local_port) => {
                Some(message)
            }
            _ => None,
        }
    }

    /// Whether the connection `message` quotes is this endpoint's, established or
    /// half-open.
    pub fn holds(&self, message: &Unreachable) -> bool {
        let tuple = &message.tuple;
        self.by_tuple.contains_key(tuple) || self.half_open.contains(tuple)
    }

    /// Acts on `message` at `now` as [`input_icmp`](Endpoint::input_icmp) does on the
    /// packet it was read from ([`unreachable_about`](Endpoint::unreachable_about)),
    /// counted in [`Stats`].
    pub fn input_unreachable(&mut self, now: u64, message: &Unreachable) {
        self.clock = self.clock.max(now);
        *match self.act_on_unreachable(message, now) {
            icmp::Outcome::MssLowered => &mut self.stats.icmp_mss_lowered,
            icmp::Outcome::Noted => &mut self.stats.icmp_unreachable,
            icmp::Outcome::Dropped => &mut self.stats.icmp_dropped,
        } += 1;
    }

    /// What a destination-unreachable `message` about a segment from a listening port
    /// does at `now` ([`input_icmp`](Endpoint::input_icmp) says).
    fn act_on_unreachable(&mut self, message: &icmp::Unreachable, now: u64) -> icmp::Outcome {
        let tuple = &message.tuple;
        if message.to != tuple.local {
            return icmp::Outcome::Dropped;
        }
        if let Some(index) = slot_of(&self.by_tuple, tuple)
            && let Some(conn) = self.slots[index].conn.as_mut()
        {
            let outcome = conn.icmp_unreachable(message, now);
            self.follow(index, true);
            return outcome;
        }
        // A half-open connection has sent only its SYN-ACK; a hard error ends it (RFC
        // 1122, 4.2.3.9), a soft one must not, and no MTU refuses a SYN-ACK.
        let hard = matches!(
            message.code,
            icmp::PROTOCOL_UNREACHABLE | icmp::PORT_UNREACHABLE
        );
        match self.half_open.get_mut(tuple) {
            Some(half) if hard && message.seq == half.iss => {
                self.half_open.remove(tuple);
                icmp::Outcome::Noted
            }
            _ => icmp::Outcome::Dropped,
        }
    }

    /// Queues the RST RFC 9293 (3.10.7.1) answers `seg` (from `link`, if known) with.
    fn reply_reset(&mut self, tuple: &Tuple, seg: &Segment<'_>, link: Option<LinkAddress>) {
        let (seq, ack, flags) = if seg.has(ACK) {
            (seg.ack, Seq(0), RST)
        } else {
            (Seq(0), seg.seq.plus(seg.seq_len()), RST | ACK)
        };
        self.reply(tuple, seq, ack, flags, 0, link);
    }

    /// Queues a segment without data or connection, offering `window`, to go back to
    /// `reply_to` if given.
    fn reply(
        &mut self,
        tuple: &Tuple,
        seq: Seq,
        ack: Seq,
        flags: u8,
        window: u16,
        reply_to: Option<LinkAddress>,
    ) {
        if self.replies.len() >= MAX_REPLIES {
            return;
        }
        let header = Header {
            src: tuple.local,
            dst: tuple.remote,
            src_port: tuple.local_port,
            dst_port: tuple.remote_port,
            seq,
            ack,
            flags,
            window,
            mss: None,
            window_scale: None,
        };
        self.replies.push_back((header, reply_to));
    }

    /// A segment for a connection in TIME-WAIT at `now`; `Some(the old connection's
    /// snd_nxt)` if it is a new SYN that ended the TIME-WAIT and must be processed as a
    /// new connection (RFC 1122, 4.2.2.13: a SYN above the old sequence space). As RFC
    /// 9293 (3.10.7.4) says: a retransmitted FIN is acknowledged and restarts the
    /// timer, an unacceptable segment (or one acknowledging what was never sent) is
    /// acknowledged (offering the window the connection last offered), an acceptable
    /// one (the last ACK again) is dropped; a RST is dropped too (RFC 1337).
    fn input_time_wait(&mut self, tuple: &Tuple, seg: &Segment<'_>, now: u64) -> Option<Seq> {
        let entry = self.time_wait.get_mut(tuple)?;
        let (seq, ack, window) = (entry.snd_nxt, entry.rcv_nxt, entry.window);
        let acks = &mut entry.out_of_window_acks;
        match time_wait::answer(seg, (seq, ack), acks, now, &mut self.stats) {
            time_wait::Answer::Reopen => {
                self.time_wait.remove(tuple);
                return Some(seq);
            }
            time_wait::Answer::Drop => return None,
            time_wait::Answer::FinAgain => {
                let until = now.saturating_add(self.config.time_wait_ns);
                self.time_wait.restart(tuple, until);
            }
            time_wait::Answer::Acknowledge => {}
        }
        self.reply(tuple, seq, ack, ACK, window, None);
        None
    }

    /// A SYN to a listening port: a new half-open connection, evicting the oldest if
    /// the table is full. A connection that ended a TIME-WAIT whose `snd_nxt` was
    /// `old_snd_nxt` starts above the old sequence space, whatever the clock says
    /// (RFC 1122, 4.2.2.13): past it by more than the largest unscaled window.
    fn open(&mut self, tuple: Tuple, seg: &Segment<'_>, now: u64, old_snd_nxt: Option<Seq>) {
        self.stats.syns += 1;
        let iss = match old_snd_nxt {
            Some(old) => old.plus(0x1_0001),
            None => self.isn(&tuple, now),
        };
        let peer = (seg.mss, seg.window_scale);
        let entry = half_open::HalfOpen::new(iss, seg.seq, peer, now, self.config.rto_initial_ns);
        if self.half_open.insert(tuple, entry, self.config.half_open) {
            self.stats.half_open_evicted += 1;
        }
    }

    /// Our window scale shift: the smallest that fits the receive buffer in 16 bits.
    fn our_shift(&self) -> u8 {
        let mut shift = 0;
        while shift < 14 && (self.config.recv_buffer >> shift) > 0xffff {
            shift += 1;
        }
        shift
    }

    /// The window a SYN-ACK offers (never scaled): the receive buffer, at most 65,535.
    fn handshake_window(&self) -> u16 {
        self.config.recv_buffer.min(0xffff) as u16
    }

    /// The window a half-open connection's segments other than its SYN-ACK offer once
    /// both ends offered window scaling, which the peer scales (RFC 7323, 2.2: all but
    /// SYNs): the receive buffer shifted by [`our_shift`](Self::our_shift).
    fn scaled_handshake_window(&self) -> u16 {
        (self.config.recv_buffer >> self.our_shift()).min(0xffff) as u16
    }

    /// A segment for a half-open connection, from `link` if known: [`Sender::Peer`]
    /// once it acknowledges our SYN. As in a synchronized state (RFC 9293, 3.10.7.4,
    /// and RFC 5961): a RST ends it only at exactly the expected sequence number, and
    /// one elsewhere in the window, or a SYN other than the peer's first again, gets a
    /// challenge ACK (a peer that restarted with a new ISN answers it with the RST
    /// that ends the stale entry), at most [`CHALLENGE_ACKS_PER_SECOND`]; a segment out
    /// of the window gets an ACK (without data, at most one per
    /// [`OUT_OF_WINDOW_ACK_INTERVAL_NS`]); these ACKs offer the window scaled as the
    /// peer reads it.
    fn input_half_open(
        &mut self,
        tuple: Tuple,
        seg: &Segment<'_>,
        now: u64,
        link: Option<LinkAddress>,
    ) -> Sender {
        let window = self.handshake_window();
        let scaled_window = self.scaled_handshake_window();
        let held = self.connections() - self.released;
        let Some(half) = self.half_open.get_mut(&tuple) else {
            return Sender::Unknown;
        };
        let ack_window = match half.peer_shift {
            Some(_) => scaled_window,
            None => window,
        };
        let (snd_nxt, rcv_nxt) = (half.iss.plus(1), half.irs.plus(1));
        let in_window = seg
            .seq
            .acceptable(seg.seq_len(), rcv_nxt, usize::from(window));
        if seg.has(RST) {
            if seg.seq == rcv_nxt {
                self.stats.rst_received += 1;
                self.half_open.remove(&tuple);
            } else if in_window {
                if half.challenges.allow(now, &mut self.stats) {
                    self.reply(&tuple, snd_nxt, rcv_nxt, ACK, ack_window, None);
                }
            } else {
                self.stats.out_of_window += 1;
            }
            return Sender::Unknown;
        }
        if seg.has(SYN) {
            if seg.seq == half.irs && !seg.has(ACK) {
                // The peer's SYN again (our SYN-ACK was lost): answer it again.
                self.half_open.owe_syn_ack(tuple);
            } else if half.challenges.allow(now, &mut self.stats) {
                self.reply(&tuple, snd_nxt, rcv_nxt, ACK, ack_window, None);
            }
            return Sender::Unknown;
        }
        if !in_window {
            self.stats.out_of_window += 1;
            if half.out_of_window_acks.allow(seg, now, &mut self.stats) {
                self.reply(&tuple, snd_nxt, rcv_nxt, ACK, ack_window, None);
            }
            return Sender::Unknown;
        }
        if !seg.has(ACK) {
            self.stats.out_of_window += 1;
            return Sender::Unknown;
        }
        if seg.ack != snd_nxt {
            self.stats.out_of_window += 1;
            self.reply_reset(&tuple, seg, link);
            return Sender::Unknown;
        }
        if self.accept_queue.len() >= self.config.backlog || held >= self.config.max_connections {
            // Kept half-open: the SYN-ACK's retransmission asks the peer again.
            self.stats.backlog_full += 1;
            return Sender::Peer;
        }
        let setup = Setup {
            tuple,
            iss: half.iss,
            irs: half.irs,
            peer_mss: half.peer_mss,
            syn_retransmitted: half.retries > 0,
            shifts: half.peer_shift.map(|peer| (self.our_shift(), peer)),
        };
        self.half_open.remove(&tuple);
        let mut conn = Conn::new(&setup, &self.config, now);
        conn.input(seg, now, &self.config, &mut self.stats);
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        slot.conn = Some(conn);
        self.by_tuple.insert(tuple, index);
        self.accept_queue.push_back(ConnId {
            endpoint: self.id,
            index: index as u32,
            generation: slot.generation,
        });
        self.follow(index, true);
        Sender::Peer
    }

    /// The earliest time [`poll`](Endpoint::poll) has timers to run, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        let conns = self.timers.first().map(|&(at, _)| at);
        conns
            .into_iter()
            .chain(self.half_open.next_deadline())
            .chain(self.time_wait.next_expiry())
            .min()
    }

    /// Runs the timers due at `now` and hands every segment due to `emit` (which
    /// returns `false` when it can take no more: the rest waits for the next call,
    /// which starts with the connection after the one refused). Connections take turns
    /// of at most [`Config::burst`] data segments each, round after round, until all
    /// is sent or `emit` refuses; only those owed one take a turn: changed since their
    /// last (a segment, a timer, a call of the app) or cut short there, or idle long
    /// enough for their congestion window to be cut, as a turn of any other sends
    /// nothing. Connections done with the network whose turn came leave the table (and
    /// their slots) either way, a refusal or not.
    pub fn poll(&mut self, now: u64, emit: &mut dyn FnMut(&Outgoing<'_>) -> bool) {
        self.clock = self.clock.max(now);
        self.run_timers(now);
        let mut finished = Vec::new();
        self.send_due(now, emit, &mut finished);
        for tuple in finished {
            self.retire(tuple, now);
        }
    }

    /// Hands the segments due at `now` to `emit`, as [`poll`](Endpoint::poll) says,
    /// until all is sent or `emit` refuses; the connections that had their turn and
    /// are done with the network join `finished`.
    fn send_due(
        &mut self,
        now: u64,
        emit: &mut dyn FnMut(&Outgoing<'_>) -> bool,
        finished: &mut Vec<Tuple>,
    ) {
        let window = self.handshake_window();
        let shift = self.our_shift();
        let mut out = Output {
            emit,
            ip_id: &mut self.ip_id,
            stats: &mut self.stats,
        };
        while let Some((reply, reply_to)) = self.replies.front() {
            if !out.send_reply(reply, *reply_to) {
                return;
            }
            self.replies.pop_front();
        }
        while let Some((tuple, half)) = self.half_open.first_owed() {
            let header = Header {
                src: tuple.local,
                dst: tuple.remote,
                src_port: tuple.local_port,
                dst_port: tuple.remote_port,
                seq: half.iss,
                ack: half.irs.plus(1),
                flags: SYN | ACK,
                window,
                mss: Some(self.config.mss),
                window_scale: half.peer_shift.map(|_| shift),
            };
            if !out.send(&header, &[], 0, 0) {
                return;
            }
            self.half_open.syn_ack_sent(&tuple);
        }
        let pace = Pace {
            segmentation: self
                .config
                .segmentation
                .map(|max| max.min(MAX_SEGMENTATION)),
            burst: self.config.burst.max(1),
        };
        // Connections with data left after their turn, in turn order.
        let mut more: Vec<(Tuple, usize)> = Vec::new();
        let start = self.resume.take();
        // After the refused connection to the end, then from the start to it.
        let (from, to): (Bound<&Tuple>, Bound<&Tuple>) = match &start {
            Some(start) => (Bound::Excluded(start), Bound::Included(start)),
            None => (Bound::Unbounded, Bound::Excluded(&Tuple::MIN)),
        };
        let later = self.owed.range((from, Bound::Unbounded));
        let earlier = self.owed.range((Bound::Unbounded, to));
        let turns: Vec<Tuple> = later.chain(earlier).copied().collect();
        let config = &self.config;
        // A connection's deadline and idle cut move once, after its last turn of the
        // poll (those still in `more` when `emit` refuses, on the way out).
        let mut turn_of = |tuple: Tuple, index: usize, out: &mut Output<'_>| {
            let slot = &mut self.slots[index];
            let turn = take_turn(slot, tuple, now, out, pace, finished);
            if turn != Some(true) {
                let orders = Orders {
                    timers: &mut self.timers,
                    idle_cuts: &mut self.idle_cuts,
                };
                reschedule(orders, config, slot, true);
            }
            if turn == Some(false) {
                self.owed.remove(&tuple);
            }
            turn
        };
        for tuple in turns {
            let Some(index) = slot_of(&self.by_tuple, &tuple) else {
                continue;
            };
            match turn_of(tuple, index, &mut out) {
                None => {
                    self.resume = Some(tuple);
                    return self.reschedule_each(&more);
                }
                Some(true) => more.push((tuple, index)),
                Some(false) => {}
            }
        }
        // Further rounds, in the same order, for those with data left.
        while !more.is_empty() {
            let mut kept = 0;
            for i in 0..more.len() {
                let (tuple, index) = more[i];
                match turn_of(tuple, index, &mut out) {
                    None => {
                        self.resume = Some(tuple);
                        self.reschedule_each(&more[..kept]);
                        return self.reschedule_each(&more[i + 1..]);
                    }
                    Some(true) => {
                        more[kept] = more[i];
                        kept += 1;
                    }
                    Some(false) => {}
                }
            }
            more.truncate(kept);
        }
    }

    /// Moves each of the connections `turned` (tuples and slots, in the table) to its
    /// deadline and idle cut in the orders, as after a turn.
    fn reschedule_each(&mut self, turned: &[(Tuple, usize)]) {
        for &(_, index) in turned {
            let orders = Orders {
                timers: &mut self.timers,
                idle_cuts: &mut self.idle_cuts,
            };
            reschedule(orders, &self.config, &mut self.slots[index], true);
        }
    }

    /// Takes a connection that is done with the network ([`Conn::finished`]) out of the
    /// demultiplexing. A released one frees its slot (leaving TIME-WAIT to the compact
    /// table), as does one not yet accepted, which leaves the accept queue (nobody
    /// holds its handle); one the app holds keeps its slot while it has bytes to read
    /// or the records of ended connections are full ([`Endpoint::bury_if_read`]).
    fn retire(&mut self, tuple: Tuple, now: u64) {
        let Some(index) = self.by_tuple.remove(&tuple) else {
            return;
        };
        self.owed.remove(&tuple);
        self.follow(index, false);
        let slot = &mut self.slots[index];
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        if !conn.released {
            let id = ConnId {
                endpoint: self.id,
                index: index as u32,
                generation: slot.generation,
            };
            let Some(queued) = self.accept_queue.iter().position(|&q| q == id) else {
                return self.bury_if_read(index, false);
            };
            self.accept_queue.remove(queued);
        }
        let conn = self.free_slot(index);
        if conn.state != State::TimeWait {
            return;
        }
        let until = conn.close_at.unwrap_or(now);
        let entry = time_wait::Entry::new(
            conn.sequence(),
            conn.window_field(),
            conn.out_of_window_acks,
            until,
        );
        if self
            .time_wait
            .insert(tuple, entry, self.config.time_wait_entries)
        {
            self.stats.time_wait_evicted += 1;
        }
    }

    /// Runs the timers due at `now`.
    fn run_timers(&mut self, now: u64) {
        self.half_open
            .run_timers(now, &self.config, &mut self.stats);
        let due: Vec<Tuple> = self
            .timers
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, tuple)| tuple)
            .collect();
        for tuple in due {
            let Some(index) = slot_of(&self.by_tuple, &tuple) else {
                continue;
            };
            if let Some(conn) = self.slots[index].conn.as_mut() {
                let finishing = conn.finishing();
                conn.on_timer(now, &self.config, &mut self.stats);
                if finishing && !conn.finishing() {
                    self.finishing -= 1;
                }
            }
            self.follow(index, true);
        }
        let cuts_due = self.idle_cuts.iter().take_while(|&&(at, _)| at <= now);
        self.owed.extend(cuts_due.map(|&(_, tuple)| tuple));
        self.time_wait.expire(now);
    }
}

#[cfg(test)]
mod tests;
