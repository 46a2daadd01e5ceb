//! ICMP destination-unreachable messages about our segments (RFC 792): reading one
//! whole, and the MSS that Path MTU Discovery (RFC 1191) takes from a "fragmentation
//! needed and DF set".

use crate::Tuple;
use crate::checksum;
use crate::seq::Seq;
use crate::wire::{self, IPV4_HEADER, TCP, TCP_HEADER};

/// ICMP's type of destination-unreachable messages.
const DESTINATION_UNREACHABLE: u8 = 3;
/// The code of "fragmentation needed and DF set", whose unused field RFC 1191 (4) gives
/// the MTU of the next hop that refused the datagram.
pub const FRAGMENTATION_NEEDED: u8 = 4;
/// The code of "protocol unreachable", a hard error (RFC 1122, 4.2.3.9).
pub const PROTOCOL_UNREACHABLE: u8 = 2;
/// The code of "port unreachable", a hard error (RFC 1122, 4.2.3.9).
pub const PORT_UNREACHABLE: u8 = 3;
/// The IPv4 protocol number of ICMP.
const ICMP: u8 = 1;
/// The ICMP header: type, code, checksum, and the field that holds the next-hop MTU.
const ICMP_HEADER: usize = 8;
/// The IPv4 and TCP headers, without options, that a datagram carries besides a
/// segment's payload: an MTU less these is the MSS it takes.
const HEADERS: usize = IPV4_HEADER + TCP_HEADER;
/// The least MTU of any link (RFC 791): no router names less (RFC 1191, 4), so a
/// message that does is bogus.
const LEAST_MTU: usize = 68;
/// The least MSS Path MTU Discovery lowers a connection to: that of the 576-byte
/// datagrams every host takes (RFC 791; RFC 879's default MSS, which a connection
/// whose peer sent no MSS option takes too), so that a forged message cannot make a
/// connection crawl in tiny segments (RFC 5927, 7).
pub const LEAST_PATH_MSS: usize = 536;
/// How long after Path MTU Discovery lowered a connection's MSS it tries the MSS its
/// handshake gave again (the first-hop MTU's, within the peer's): RFC 1191 (3) forbids
/// trying a larger PMTU less than 5 minutes after a "fragmentation needed" and
/// recommends 10 minutes; a path still narrow refuses the next full segment and the
/// MSS falls again.
pub const PMTU_RAISE_NS: u64 = 10 * 60 * 1_000_000_000;
/// RFC 1191's (7) plateaus of common MTUs, largest first: a router that names no
/// next-hop MTU (RFC 1191, 5) gets the largest below what the path is known to refuse.
const PLATEAUS: [usize; 11] = [
    65_535, 32_000, 17_914, 8_166, 4_352, 2_002, 1_492, 1_006, 508, 296, 68,
];

/// A destination-unreachable message about a TCP segment, read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreachable {
    /// Why the segment did not get through (RFC 792's codes: 4 is fragmentation needed...).
    pub code: u8,
    /// The MTU of the next hop, with code 4, fragmentation needed (0 from a router older
    /// than RFC 1191).
    pub next_hop_mtu: u16,
    /// Where the message was sent: the quoted segment's source, if it is genuine.
    pub to: [u8; 4],
    /// The quoted segment's addresses and ports, from our side (its source is ours).
    pub tuple: Tuple,
    /// The quoted datagram's IPv4 total length.
    pub quoted_len: u16,
    /// The length of the quoted datagram's IPv4 header.
    pub quoted_header: usize,
    /// The quoted segment's sequence number.
    pub seq: Seq,
}

/// What an IPv4 packet is as an ICMP message about a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Not a destination-unreachable message quoting an IPv4 TCP header as far as its
    /// source port (a fragment, another protocol or type, a quote cut before the port).
    Other,
    /// One about a segment from this port, but cut before the quoted sequence number,
    /// or with a wrong IPv4 header or ICMP checksum: nothing in it can be trusted.
    Damaged(u16),
    /// One read whole, its checksums right.
    Unreachable(Unreachable),
}

/// Reads the IPv4 packet `packet` as an ICMP destination-unreachable message about a
/// TCP segment (its IPv4 header and ICMP checksums always checked: no NIC checks an
/// ICMP message's). A quote holds the segment's IPv4 header and at least its first 8
/// bytes (RFC 792): the ports and the sequence number.
pub fn read(packet: &[u8]) -> Read {
    // Its IPv4 header and ICMP message, if it is a whole IPv4 packet carrying ICMP.
    let Ok((header, icmp)) = wire::ipv4(packet, ICMP) else {
        return Read::Other;
    };
    if icmp.len() < ICMP_HEADER || icmp[0] != DESTINATION_UNREACHABLE {
        return Read::Other;
    }
    let quote = &icmp[ICMP_HEADER..];
    if quote.len() < IPV4_HEADER || quote[0] >> 4 != 4 || quote[9] != TCP {
        return Read::Other;
    }
    let quoted_header = usize::from(quote[0] & 0x0f) * 4;
    let port = quote.get(quoted_header..quoted_header + 2);
    let Some(port) = port.filter(|_| quoted_header >= IPV4_HEADER) else {
        return Read::Other;
    };
    let port = u16::from_be_bytes([port[0], port[1]]);
    let intact = checksum::sum(header) == 0xffff && checksum::sum(icmp) == 0xffff;
    let Some(tcp) = quote
        .get(quoted_header..quoted_header + 8)
        .filter(|_| intact)
    else {
        return Read::Damaged(port);
    };
    let address = |bytes: &[u8]| -> [u8; 4] { bytes.try_into().unwrap_or_default() };
    Read::Unreachable(Unreachable {
        code: icmp[1],
        next_hop_mtu: u16::from_be_bytes([icmp[6], icmp[7]]),
        to: address(&packet[16..20]),
        tuple: Tuple {
            local: address(&quote[12..16]),
            local_port: port,
            remote: address(&quote[16..20]),
            remote_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        },
        quoted_len: u16::from_be_bytes([quote[2], quote[3]]),
        quoted_header,
        seq: Seq(u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]])),
    })
}

/// The MSS a connection sending segments of `mss` payload bytes (datagrams of `mss`
/// plus 40 bytes: it sends no options) takes from a "fragmentation needed" naming
/// `next_hop_mtu` about a datagram of `quoted_len` bytes whose header took
/// `quoted_header`; `None` if it keeps its own. An MTU below 68, or one the quoted
/// datagram fits (no router refuses such a datagram, RFC 1191, 4), is bogus; one not
/// below the connection's datagrams changes nothing (RFC 1191, 3: a message never
/// raises the estimate; 6.4: the messages about one burst must not each lower it
/// again). A next-hop MTU of 0, from a router older than RFC 1191, stands for the
/// largest plateau below the refused datagram's length (RFC 1191, 5), if that datagram
/// was no longer than the connection's: a longer one went before the MSS last fell and
/// says nothing new. A 4.2BSD router quotes the length plus the header's, so a datagram
/// exactly one header longer is taken as the connection's. The MSS never falls below
/// [`LEAST_PATH_MSS`].
pub fn lowered_mss(
    mss: usize,
    next_hop_mtu: u16,
    quoted_len: u16,
    quoted_header: usize,
) -> Option<usize> {
    let (datagram, quoted) = (mss + HEADERS, usize::from(quoted_len));
    let mtu = match next_hop_mtu {
        0 => {
            let refused = match quoted - datagram.min(quoted) {
                excess if excess == quoted_header => datagram,
                _ => quoted,
            };
            if refused > datagram {
                return None;
            }
            PLATEAUS.into_iter().find(|&plateau| plateau < refused)?
        }
        mtu => usize::from(mtu),
    };
    if !(LEAST_MTU..datagram.min(quoted)).contains(&mtu) {
        return None;
    }
    let lowered = (mtu - HEADERS).max(LEAST_PATH_MSS);
    (lowered < mss).then_some(lowered)
}

/// What a destination-unreachable message about a connection's segment did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A "fragmentation needed" lowered the connection's MSS.
    MssLowered,
    /// Another code was noted for the app, or ended a half-open connection.
    Noted,
    /// Nothing: it did not quote a segment in flight, or named no usable MTU.
    Dropped,
}

/// An ICMP destination-unreachable message with `code` and next-hop `mtu` from a
/// router (192.168.0.1) to `to`, quoting `quote` (a router quotes the IPv4 header and
/// the first 8 bytes of the datagram it refused, RFC 792, or more, RFC 1812), its
/// checksums right.
#[cfg(test)]
pub(crate) fn message_about(to: [u8; 4], quote: &[u8], code: u8, mtu: u16) -> alloc::vec::Vec<u8> {
    let mut icmp = alloc::vec![DESTINATION_UNREACHABLE, code, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(quote);
    let sum = !checksum::sum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let len = (IPV4_HEADER + icmp.len()) as u16;
    let mut packet = alloc::vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, ICMP, 0, 0];
    packet[2..4].copy_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&[192, 168, 0, 1]);
    packet.extend_from_slice(&to);
    let sum = !checksum::sum(&packet);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    packet.extend_from_slice(&icmp);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A "fragmentation needed" from a router naming `mtu`, quoting a 1500-byte
    /// datagram from 10.0.0.1:80 to 10.0.0.2:5000 whose sequence number is 7.
    fn message(mtu: u16) -> Vec<u8> {
        let mut quote = Vec::from([0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 63, 6, 0, 0]);
        quote.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        quote.extend_from_slice(&[0, 80, 0x13, 0x88, 0, 0, 0, 7]);
        message_about([10, 0, 0, 1], &quote, FRAGMENTATION_NEEDED, mtu)
    }

    /// The first `len` bytes of `packet`, its IPv4 length and both checksums made right.
    fn cut(packet: &[u8], len: usize) -> Vec<u8> {
        let mut cut = packet[..len].to_vec();
        cut[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        for at in [10, IPV4_HEADER + 2] {
            cut[at..at + 2].fill(0);
        }
        let sum = !checksum::sum(&cut[..IPV4_HEADER]);
        cut[10..12].copy_from_slice(&sum.to_be_bytes());
        let sum = !checksum::sum(&cut[IPV4_HEADER..]);
        cut[IPV4_HEADER + 2..IPV4_HEADER + 4].copy_from_slice(&sum.to_be_bytes());
        cut
    }

    #[test]
    fn a_whole_message_is_read_and_a_damaged_one_named_by_its_port_only() {
        let whole = message(1400);
        assert_eq!(
            read(&whole),
            Read::Unreachable(Unreachable {
                code: FRAGMENTATION_NEEDED,
                next_hop_mtu: 1400,
                to: [10, 0, 0, 1],
                tuple: Tuple {
                    local: [10, 0, 0, 1],
                    local_port: 80,
                    remote: [10, 0, 0, 2],
                    remote_port: 5000,
                },
                quoted_len: 1500,
                quoted_header: 20,
                seq: Seq(7),
            })
        );
        let mut wrong_sum = whole.clone();
        wrong_sum[30] ^= 1;
        assert_eq!(read(&wrong_sum), Read::Damaged(80));
        // Cut after the quoted ports, before the sequence number: its checksums are
        // right for what is left, but the quote is not whole.
        let quoted_tcp = IPV4_HEADER + ICMP_HEADER + IPV4_HEADER;
        assert_eq!(read(&cut(&whole, quoted_tcp + 4)), Read::Damaged(80));
        // (Cut at its own length, it reads as before: the cut alone made it damaged.)
        assert_eq!(read(&cut(&whole, quoted_tcp + 8)), read(&whole));
        // Cut before the port, shorter than its IPv4 length, another type, a quote of
        // UDP, a fragment: not about a segment of ours.
        assert_eq!(read(&cut(&whole, quoted_tcp + 1)), Read::Other);
        assert_eq!(read(&whole[..whole.len() - 1]), Read::Other);
        for (at, value) in [(20, 11), (37, 17), (6, 0x20)] {
            let mut other = whole.clone();
            other[at] = value;
            assert_eq!(read(&other), Read::Other, "byte {at} = {value}");
        }
    }

    /// [`lowered_mss`] for a quoted datagram with a 20-byte header.
    fn lowered(mss: usize, next_hop_mtu: u16, quoted_len: u16) -> Option<usize> {
        lowered_mss(mss, next_hop_mtu, quoted_len, 20)
    }

    #[test]
    fn the_mss_falls_to_the_next_hop_mtu_less_40_within_its_bounds() {
        assert_eq!(lowered(1460, 1400, 1500), Some(1360));
        assert_eq!(lowered(1460, 1499, 1500), Some(1459));
        // Not below the connection's datagrams, or below 68: bogus.
        assert_eq!(lowered(1460, 1500, 1500), None);
        assert_eq!(lowered(1360, 1400, 1500), None);
        assert_eq!(lowered(1460, 67, 1500), None);
        assert_eq!(lowered(1460, 1400, 1400), None, "the datagram fits");
        // Below 576 bytes: the floor; a connection at it already keeps its MSS.
        assert_eq!(lowered(1460, 68, 1500), Some(LEAST_PATH_MSS));
        assert_eq!(lowered(1460, 296, 1500), Some(LEAST_PATH_MSS));
        assert_eq!(lowered(536, 296, 576), None);
    }

    #[test]
    fn a_next_hop_mtu_of_0_takes_the_plateau_below_what_was_refused() {
        // PPPoE's 1492 below a 1500-byte datagram, and 1006 below 1492.
        assert_eq!(lowered(1460, 0, 1500), Some(1452));
        assert_eq!(lowered(1452, 0, 1492), Some(966));
        // A datagram longer than the connection's went before its MSS fell: nothing
        // new (the rest of a burst of 1500-byte datagrams once it sends 1492).
        assert_eq!(lowered(1452, 0, 1500), None);
        assert_eq!(lowered(1452, 0, 9000), None);
        // 4.2BSD's length, one header too long: the connection's datagram, 1500.
        assert_eq!(lowered(1460, 0, 1520), Some(1452));
        assert_eq!(lowered_mss(1460, 0, 1524, 24), Some(1452));
        // A small one: the floor, and nothing below 68.
        assert_eq!(lowered(1460, 0, 600), Some(LEAST_PATH_MSS));
        assert_eq!(lowered(1460, 0, 68), None);
    }
}
