//! TCP segmentation offload in the stack, as Linux does it: on a NIC that cuts TCP/IPv4
//! frames into segments ([`NetInfo::tcp_segmentation`](rexo_api::NetInfo)), smoltcp is
//! told the peer takes segments of a multiple of its real MSS (the peer's SYN is
//! rewritten before smoltcp reads it), so it sends one large segment where it would
//! send many, and the NIC cuts that frame at the real MSS, which the stack keeps per
//! connection. The MSS this end announces stays its real one (outgoing SYNs are
//! rewritten back). Peers that announce no MSS (RFC 879's 536 applies), or one below
//! 536, or a malformed option, are left as they are, and one whose MSS is not raised
//! (a receive buffer too small for two segments in half of it) but is above this end's
//! is told this end's: smoltcp then never builds a frame longer than the MTU for them.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use rexo_api::device::transport_segment;
use rexo_tcp::checksum::{add, pseudo_header, sum};

/// The smallest peer MSS raised (RFC 879's default); smaller ones are left to smoltcp.
pub(crate) const MIN_RAISED_MSS: u16 = 536;
/// Room kept for TCP options in a large segment: smoltcp sizes segments without them.
const OPTIONS_ROOM: usize = 40;
/// TCP flags.
const FIN: u8 = 0x01;
/// SYN.
const SYN: u8 = 0x02;
/// PSH.
const PSH: u8 = 0x08;

/// Where an unfragmented TCP/IPv4 frame's TCP header starts and how long it is, when its
/// lengths agree with the frame.
fn tcp_header(frame: &[u8]) -> Option<(usize, usize)> {
    let segment = transport_segment(frame).filter(|s| s.protocol == 6)?;
    let tcp_len = usize::from(*frame.get(segment.start + 12)? >> 4) * 4;
    (20..=segment.len)
        .contains(&tcp_len)
        .then_some((segment.start, tcp_len))
}

/// Whether the TCP checksum of the TCP/IPv4 `frame` is right: its segment's sum with
/// the pseudo-header's is all ones. False for a frame that is not TCP/IPv4 or whose
/// segment is too short to hold the checksum field.
fn tcp_checksum_right(frame: &[u8]) -> bool {
    let Some(segment) = transport_segment(frame).filter(|s| s.protocol == 6 && s.len >= 18) else {
        return false;
    };
    let (src, dst) = (&frame[26..30], &frame[30..34]);
    let pseudo = pseudo_header(
        src.try_into().unwrap_or_default(),
        dst.try_into().unwrap_or_default(),
        segment.len,
    );
    add(
        pseudo,
        sum(&frame[segment.start..segment.start + segment.len]),
    ) == 0xffff
}

/// A TCP connection as this end sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Flow {
    /// The peer's address.
    pub(crate) peer: [u8; 4],
    /// The peer's port.
    pub(crate) peer_port: u16,
    /// This end's port.
    pub(crate) local_port: u16,
}

/// The flow of a TCP/IPv4 frame, received (`incoming`: the source is the peer) or sent.
pub(crate) fn flow(frame: &[u8], incoming: bool) -> Option<Flow> {
    let (tcp, _) = tcp_header(frame)?;
    let port = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
    let (peer, peer_port, local_port) = if incoming {
        (&frame[26..30], port(tcp), port(tcp + 2))
    } else {
        (&frame[30..34], port(tcp + 2), port(tcp))
    };
    Some(Flow {
        peer: [peer[0], peer[1], peer[2], peer[3]],
        peer_port,
        local_port,
    })
}

/// The MSS option of a SYN, as smoltcp reads it (the last MSS option counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SynMss {
    /// No MSS option.
    Absent,
    /// Options smoltcp refuses (it drops the segment).
    Malformed,
    /// The option's value, at this offset in the frame.
    At {
        /// Where the 16-bit value is.
        offset: usize,
        /// The value.
        value: u16,
    },
}

/// The MSS option of `frame` if it is a TCP/IPv4 SYN (with or without ACK).
pub(crate) fn syn_mss(frame: &[u8]) -> Option<SynMss> {
    let (tcp, tcp_len) = tcp_header(frame)?;
    if frame[tcp + 13] & SYN == 0 {
        return None;
    }
    let (mut at, end) = (tcp + 20, tcp + tcp_len);
    let mut found = SynMss::Absent;
    while at < end {
        match frame[at] {
            0 => break,
            1 => at += 1,
            kind => {
                let Some(&len) = frame.get(at + 1).filter(|_| at + 1 < end) else {
                    return Some(SynMss::Malformed);
                };
                let len = usize::from(len);
                if len < 2 || at + len > end || (kind == 2 && len != 4) {
                    return Some(SynMss::Malformed);
                }
                if kind == 2 {
                    found = SynMss::At {
                        offset: at + 2,
                        value: u16::from_be_bytes([frame[at + 2], frame[at + 3]]),
                    };
                }
                at += len;
            }
        }
    }
    Some(found)
}

/// Sets the MSS value at `offset` of a TCP/IPv4 frame to `value`, updating its TCP
/// checksum as RFC 1624 does (a checksum that was wrong stays wrong).
pub(crate) fn set_mss(frame: &mut [u8], offset: usize, value: u16) {
    let Some((tcp, _)) = tcp_header(frame) else {
        return;
    };
    let old = u16::from_be_bytes([frame[offset], frame[offset + 1]]);
    frame[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
    let field = tcp + 16;
    let check = u16::from_be_bytes([frame[field], frame[field + 1]]);
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(value);
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    frame[field..field + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// The MSS smoltcp is told for a peer whose real one is `mss`: the most whole segments
/// of `mss` within `limit` bytes (at least `mss`).
pub(crate) fn raised_mss(mss: usize, limit: usize) -> usize {
    (limit / mss).max(1) * mss
}

/// Cuts the TCP/IPv4 `frame` into frames carrying `mss` payload bytes each (the last the
/// rest), as a NIC with segmentation offload does: headers repeated, the IP total
/// length, identification (one more per segment) and header checksum, the TCP sequence
/// number and checksum made for each, FIN and PSH only on the last. Gives each to
/// `emit`; returns how many, or `None` (nothing emitted) if `frame` is not TCP/IPv4.
pub(crate) fn segment(frame: &[u8], mss: usize, emit: &mut dyn FnMut(&[u8])) -> Option<usize> {
    let (tcp, tcp_len) = tcp_header(frame)?;
    let header_len = tcp + tcp_len;
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let payload = &frame[header_len..14 + total];
    let word =
        |at: usize| u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    let (seq, id) = (word(tcp + 4), u16::from_be_bytes([frame[18], frame[19]]));
    let chunks = payload.len().div_ceil(mss.max(1)).max(1);
    let mut out = Vec::with_capacity(header_len + mss);
    for (i, chunk) in payload
        .chunks(mss.max(1))
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        out.clear();
        out.extend_from_slice(&frame[..header_len]);
        out.extend_from_slice(chunk);
        let ip_total = (out.len() - 14) as u16;
        out[16..18].copy_from_slice(&ip_total.to_be_bytes());
        out[18..20].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
        out[24..26].fill(0);
        let ip_sum = rexo_api::device::internet_checksum(&out[14..tcp]);
        out[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        let offset = (i * mss) as u32;
        out[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
        if i + 1 < chunks {
            out[tcp + 13] &= !(FIN | PSH);
        }
        if let Some(layout) = rexo_api::device::transport_checksum(&out) {
            let field = layout.start + layout.offset;
            out[field..field + 2].copy_from_slice(&layout.seed.to_be_bytes());
            let sum = rexo_api::device::internet_checksum(&out[layout.start..]);
            out[field..field + 2].copy_from_slice(&sum.to_be_bytes());
        }
        emit(&out);
    }
    Some(chunks)
}

/// The stack's segmentation offload state, on a NIC that has it.
pub(crate) struct Tso {
    /// This end's real MSS: the largest frame less the Ethernet, IPv4 and TCP headers.
    pub(crate) local_mss: u16,
    /// The most payload bytes of one large segment.
    max_payload: usize,
    /// Each raised connection's real MSS (what the NIC cuts at).
    peers: BTreeMap<Flow, u16>,
    /// A SYN rewritten for smoltcp.
    syn: Vec<u8>,
}

impl Tso {
    /// The state for a NIC whose largest frame is `max_frame` and whose largest frame to
    /// segment is `max_segmented`.
    pub(crate) fn new(max_frame: usize, max_segmented: usize) -> Self {
        Self {
            local_mss: max_frame.saturating_sub(14 + 20 + 20) as u16,
            max_payload: max_segmented.saturating_sub(14 + 20 + 20 + OPTIONS_ROOM),
            peers: BTreeMap::new(),
            syn: Vec::new(),
        }
    }

    /// What smoltcp reads for the received `frame`: a SYN to `address` (this end's)
    /// whose TCP checksum is right and whose MSS option is at least [`MIN_RAISED_MSS`]
    /// comes with it raised to whole segments of the connection's real MSS (the peer's,
    /// at most this end's) within the large-segment limit and half of
    /// `receive_buffer(flow)` (smoltcp acknowledges at once only past one MSS of
    /// unacknowledged data, and must still do so every half window). One whose MSS is
    /// not raised (below [`MIN_RAISED_MSS`], or a receive buffer under four of the
    /// real MSS) but is above this end's comes with this end's: smoltcp, whose MTU is
    /// the large segment's, would otherwise build frames of the peer's MSS for a
    /// connection the NIC does not cut. Every other frame as it is. `receive_buffer`
    /// says `None` when no connection of the flow is opening (no listener or
    /// connecting socket, or a connection already synchronized holds it): the SYN then
    /// changes nothing, so a forged one cannot change the size the NIC cuts a live
    /// connection's segments at. A SYN not raised for an opening connection forgets
    /// what an earlier connection of its flow had.
    pub(crate) fn inbound<'a>(
        &'a mut self,
        frame: &'a [u8],
        address: Option<[u8; 4]>,
        receive_buffer: impl FnOnce(Flow) -> Option<usize>,
    ) -> &'a [u8] {
        let (Some(syn), Some(flow)) = (syn_mss(frame), flow(frame, true)) else {
            return frame;
        };
        let to_this_end = address.is_some_and(|address| frame[30..34] == address);
        if !to_this_end || !tcp_checksum_right(frame) {
            return frame;
        }
        let Some(window) = receive_buffer(flow) else {
            return frame;
        };
        self.peers.remove(&flow);
        let SynMss::At { offset, value } = syn else {
            return frame;
        };
        let mss = value.min(self.local_mss);
        let limit = self.max_payload.min(window / 2).min(usize::from(u16::MAX));
        let raised = (value >= MIN_RAISED_MSS)
            .then(|| raised_mss(usize::from(mss), limit))
            .filter(|&raised| raised > usize::from(mss));
        let told = match raised {
            Some(raised) => {
                self.peers.insert(flow, mss);
                raised as u16
            }
            None => mss,
        };
        if told == value {
            return frame;
        }
        self.syn.clear();
        self.syn.extend_from_slice(frame);
        set_mss(&mut self.syn, offset, told);
        &self.syn
    }

    /// The real MSS of the connection a frame this end sends belongs to, if it was raised.
    pub(crate) fn mss_of(&self, frame: &[u8]) -> Option<usize> {
        let flow = flow(frame, false)?;
        self.peers.get(&flow).map(|&mss| usize::from(mss))
    }

    /// The segment size to cut the large `frame` this end sends at, so that every
    /// segment fits in `max_frame`: its connection's real MSS less the room its TCP
    /// options take (the MSS counts none: RFC 6691), or [`MIN_RAISED_MSS`] for a
    /// connection the stack does not know; `None` if the frame is not TCP/IPv4.
    pub(crate) fn cut_size(&self, frame: &[u8], max_frame: usize) -> Option<usize> {
        let (tcp, tcp_len) = tcp_header(frame)?;
        let mss = self.mss_of(frame).unwrap_or(usize::from(MIN_RAISED_MSS));
        Some(mss.min(max_frame.saturating_sub(tcp + tcp_len)).max(1))
    }

    /// [`Tso::cut_size`] for the NIC, when the NIC takes the frame to cut at that size
    /// ([`rexo_api::device::check_tcp_segmentation`]) and its connection is one whose
    /// MSS the stack raised; `None` otherwise (the stack then cuts it itself).
    pub(crate) fn nic_cut_size(&self, frame: &[u8], max_frame: usize) -> Option<usize> {
        self.mss_of(frame)?;
        let mss = self.cut_size(frame, max_frame)?;
        rexo_api::device::check_tcp_segmentation(frame, mss, max_frame).ok()?;
        Some(mss)
    }

    /// Forgets the connections `live` does not say are still there, once they are many
    /// more than `sockets()` (so the sweep's cost is spread over as many handshakes).
    /// `sockets` is called only past the 64 connections always kept, as counting the
    /// sockets walks them all and this runs on every poll.
    pub(crate) fn sweep(&mut self, sockets: impl FnOnce() -> usize, live: impl Fn(&Flow) -> bool) {
        let raised = self.peers.len();
        if raised > 64 && raised > 2 * sockets() + 64 {
            self.peers.retain(|flow, _| live(flow));
        }
    }

    /// Connections whose MSS is raised.
    pub(crate) fn raised(&self) -> usize {
        self.peers.len()
    }
}

/// Sets the MSS option of an outgoing SYN above `local_mss` back to `local_mss`:
/// smoltcp announces what its MTU allows, which with segmentation offload is the large
/// segment, not what the link carries.
pub(crate) fn clamp_syn(frame: &mut [u8], local_mss: u16) {
    if let Some(SynMss::At { offset, value }) = syn_mss(frame)
        && value > local_mss
    {
        set_mss(frame, offset, local_mss);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use rexo_api::device::{internet_checksum, transport_checksum};

    /// The address of the end the test frames go to.
    const THIS_END: Option<[u8; 4]> = Some([10, 0, 0, 1]);

    /// A TCP/IPv4 frame from 10.0.0.2:40000 to 10.0.0.1:80 with `flags`, `options` and
    /// `payload` bytes, its TCP checksum right.
    fn frame(flags: u8, options: &[u8], payload: usize) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let total = 20 + tcp_len + payload;
        let mut f = vec![0u8; 14 + total];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(total as u16).to_be_bytes());
        f[23] = 6;
        f[26..34].copy_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[38..42].copy_from_slice(&1000u32.to_be_bytes());
        f[46] = ((tcp_len / 4) as u8) << 4;
        f[47] = flags;
        f[54..54 + options.len()].copy_from_slice(options);
        for (i, byte) in f[14 + 20 + tcp_len..].iter_mut().enumerate() {
            *byte = (i * 7) as u8;
        }
        let ip_sum = rexo_api::device::internet_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        let layout = rexo_api::device::transport_checksum(&f).unwrap();
        f[50..52].copy_from_slice(&layout.seed.to_be_bytes());
        let sum = rexo_api::device::internet_checksum(&f[34..]);
        f[50..52].copy_from_slice(&sum.to_be_bytes());
        f
    }

    /// Whether `f`'s IPv4 header and TCP checksums are right.
    fn checksums_right(f: &[u8]) -> bool {
        let layout = rexo_api::device::transport_checksum(f).unwrap();
        let mut copy = f.to_vec();
        copy[50..52].copy_from_slice(&layout.seed.to_be_bytes());
        let sum = rexo_api::device::internet_checksum(&copy[34..]);
        rexo_api::device::internet_checksum(&f[14..34]) == 0
            && sum == u16::from_be_bytes([f[50], f[51]])
    }

    #[test]
    fn the_mss_option_is_read_as_smoltcp_reads_it() {
        let mss = |value: u16| {
            let [hi, lo] = value.to_be_bytes();
            [2, 4, hi, lo]
        };
        assert_eq!(
            syn_mss(&frame(0x02, &mss(1400), 0)),
            Some(SynMss::At {
                offset: 56,
                value: 1400
            })
        );
        // After NOPs and window scale; the last MSS option counts.
        let mut options = vec![1, 1, 3, 3, 7, 1];
        options.extend_from_slice(&mss(1000));
        options.extend_from_slice(&mss(1200));
        options.extend_from_slice(&[0, 0]);
        assert_eq!(
            syn_mss(&frame(0x12, &options, 0)),
            Some(SynMss::At {
                offset: 66,
                value: 1200
            })
        );
        assert_eq!(syn_mss(&frame(0x02, &[], 0)), Some(SynMss::Absent));
        // End of list before the option: not read.
        assert_eq!(
            syn_mss(&frame(0x02, &[0, 0, 0, 0, 2, 4, 5, 0], 0)),
            Some(SynMss::Absent)
        );
        for bad in [
            &[2, 3, 5, 0][..],
            &[2, 6, 5, 0, 0, 0, 0, 0],
            &[8, 0, 0, 0],
            &[8, 12, 0, 0],
        ] {
            let mut options = bad.to_vec();
            options.resize(bad.len().div_ceil(4) * 4, 0);
            assert_eq!(
                syn_mss(&frame(0x02, &options, 0)),
                Some(SynMss::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(syn_mss(&frame(0x10, &mss(1400), 0)), None, "not a SYN");
    }

    #[test]
    fn a_peers_syn_is_raised_to_whole_segments_and_its_mss_kept() {
        let mut tso = Tso::new(1514, 14 + 65_535);
        let syn = frame(0x02, &[2, 4, 0x05, 0xB4], 0);
        let seen = tso.inbound(&syn, THIS_END, |_| Some(256 * 1024)).to_vec();
        // 44 segments of 1460 within 64 KiB less headers and room for options.
        assert_eq!(
            syn_mss(&seen),
            Some(SynMss::At {
                offset: 56,
                value: 44 * 1460
            })
        );
        assert!(checksums_right(&seen), "the checksum follows the new value");
        let mut sent = frame(0x18, &[], 10_000);
        sent[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        sent[34..38].copy_from_slice(&[0, 80, 0x9C, 0x40]);
        assert_eq!(tso.mss_of(&sent), Some(1460));
        // A larger MSS than this end's is cut at this end's; half the receive buffer
        // bounds the large segment.
        let big = frame(0x02, &[2, 4, 0x23, 0x28], 0);
        let seen = tso.inbound(&big, THIS_END, |_| Some(16 * 1024)).to_vec();
        assert_eq!(
            syn_mss(&seen),
            Some(SynMss::At {
                offset: 56,
                value: 5 * 1460
            })
        );
        assert_eq!(tso.mss_of(&sent), Some(1460));
        let small = frame(0x02, &[2, 4, 0x03, 0xE8], 0);
        let seen = tso.inbound(&small, THIS_END, |_| Some(64 * 1024)).to_vec();
        assert_eq!(
            syn_mss(&seen),
            Some(SynMss::At {
                offset: 56,
                value: 32 * 1000
            })
        );
        assert_eq!(tso.mss_of(&sent), Some(1000));
    }

    #[test]
    fn a_larger_mss_than_this_ends_that_is_not_raised_is_lowered_to_it() {
        let mut tso = Tso::new(1514, 14 + 65_535);
        // 8960 (a jumbo frame's) with a 4 KiB receive buffer: no two segments of 1460 fit
        // in half of it.
        let jumbo = frame(0x02, &[2, 4, 0x23, 0x00], 0);
        let seen = tso.inbound(&jumbo, THIS_END, |_| Some(4096)).to_vec();
        assert_eq!(
            syn_mss(&seen),
            Some(SynMss::At {
                offset: 56,
                value: 1460
            })
        );
        assert!(checksums_right(&seen));
        assert_eq!(tso.raised(), 0, "the NIC cuts none of its frames");
        // On a link whose MSS is below 536, a larger one still below 536 (never raised)
        // is lowered to it.
        let mut narrow = Tso::new(14 + 40 + 400, 14 + 65_535);
        let below_raised = frame(0x02, &[2, 4, 0x02, 0x08], 0);
        let seen = narrow
            .inbound(&below_raised, THIS_END, |_| Some(65_536))
            .to_vec();
        assert_eq!(
            syn_mss(&seen),
            Some(SynMss::At {
                offset: 56,
                value: 400
            })
        );
        let small = frame(0x02, &[2, 4, 0x01, 0x00], 0);
        assert_eq!(
            narrow.inbound(&small, THIS_END, |_| Some(65_536)),
            &small[..]
        );
    }

    /// The state with one flow raised, and the SYN that raised it (MSS 1460).
    fn one_flow_raised() -> (Tso, Vec<u8>) {
        let mut tso = Tso::new(1514, 14 + 65_535);
        let raised = frame(0x02, &[2, 4, 0x05, 0xB4], 0);
        let _ = tso.inbound(&raised, THIS_END, |_| Some(65_536));
        assert_eq!(tso.raised(), 1);
        (tso, raised)
    }

    #[test]
    fn syns_without_a_usable_mss_are_left_alone_and_forget_the_flow() {
        let (mut tso, raised) = one_flow_raised();
        for options in [&[][..], &[2, 4, 0x02, 0x00], &[2, 4, 0, 0], &[2, 3, 5, 0]] {
            let syn = frame(0x02, options, 0);
            assert_eq!(
                tso.inbound(&syn, THIS_END, |_| Some(65_536)),
                &syn[..],
                "{options:?}"
            );
            assert_eq!(tso.raised(), 0, "{options:?}");
            let _ = tso.inbound(&raised, THIS_END, |_| Some(65_536));
        }
        // No port listening (nor connecting) there; a receive buffer too small to raise;
        // not a SYN.
        let syn = frame(0x02, &[2, 4, 0x05, 0xB4], 0);
        assert_eq!(tso.inbound(&syn, THIS_END, |_| None), &syn[..]);
        assert_eq!(tso.inbound(&syn, THIS_END, |_| Some(2000)), &syn[..]);
        let data = frame(0x10, &[], 100);
        assert_eq!(tso.inbound(&data, THIS_END, |_| Some(65_536)), &data[..]);
    }

    #[test]
    fn a_syn_with_a_bad_checksum_or_to_another_address_changes_nothing() {
        let (mut tso, raised) = one_flow_raised();
        let mut bad_checksum = frame(0x02, &[2, 4, 0x02, 0x58], 0);
        bad_checksum[50] ^= 0x40;
        let mut elsewhere = frame(0x02, &[], 0);
        elsewhere[33] = 9;
        let seed = transport_checksum(&elsewhere).unwrap().seed;
        elsewhere[50..52].copy_from_slice(&seed.to_be_bytes());
        let sum = internet_checksum(&elsewhere[34..]);
        elsewhere[50..52].copy_from_slice(&sum.to_be_bytes());
        assert!(tcp_checksum_right(&raised) && tcp_checksum_right(&elsewhere));
        assert!(!tcp_checksum_right(&bad_checksum));
        for (forged, address) in [
            (&bad_checksum, THIS_END),
            (&elsewhere, THIS_END),
            (&raised, None),
        ] {
            assert_eq!(tso.inbound(forged, address, |_| Some(65_536)), &forged[..]);
            assert_eq!(tso.raised(), 1);
        }
        let mut sent = frame(0x18, &[], 10_000);
        sent[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        sent[34..38].copy_from_slice(&[0, 80, 0x9C, 0x40]);
        assert_eq!(tso.mss_of(&sent), Some(1460));
        // A flow no connection is opening (a live one holds it): nothing changes.
        let absent = frame(0x02, &[], 0);
        assert_eq!(tso.inbound(&absent, THIS_END, |_| None), &absent[..]);
        assert_eq!(tso.mss_of(&sent), Some(1460));
    }

    #[test]
    fn an_outgoing_syn_announces_the_real_mss() {
        let mut syn = frame(0x12, &[2, 4, 0xFF, 0x00], 0);
        clamp_syn(&mut syn, 1460);
        assert_eq!(
            syn_mss(&syn),
            Some(SynMss::At {
                offset: 56,
                value: 1460
            })
        );
        assert!(checksums_right(&syn));
        let mut small = frame(0x02, &[2, 4, 0x02, 0x00], 0);
        let before = small.clone();
        clamp_syn(&mut small, 1460);
        assert_eq!(small, before);
    }

    #[test]
    fn cutting_a_large_frame_gives_valid_segments() {
        let big = frame(0x19, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], 10_000);
        let mut segments = Vec::new();
        assert_eq!(
            segment(&big, 1448, &mut |f| segments.push(f.to_vec())),
            Some(7)
        );
        let mut payload = Vec::new();
        for (i, f) in segments.iter().enumerate() {
            assert!(f.len() <= 1514 && checksums_right(f), "segment {i}");
            assert_eq!(&f[54..66], &big[54..66], "options repeated");
            let seq = u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
            assert_eq!(seq, 1000 + payload.len() as u32);
            let last = i + 1 == segments.len();
            assert_eq!(
                f[47],
                if last { 0x19 } else { 0x10 },
                "FIN and PSH on the last only"
            );
            payload.extend_from_slice(&f[66..]);
        }
        assert_eq!(payload, &big[66..]);
        assert_eq!(segment(&big[..30], 1448, &mut |_| panic!()), None);
    }
}
