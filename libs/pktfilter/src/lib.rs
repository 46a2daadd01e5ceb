//! Packet filters in the manner of the MIT exokernel's DPF: an app binds to incoming
//! traffic with a declarative filter, a conjunction of *atoms* (`offset`, `width`, `mask`,
//! `value`: "the 2 bytes at 12, masked with 0xFFFF, equal 0x0800"; from byte 54 on, a
//! TCP frame's payload bytes wherever its TCP options end, [`TCP_PAYLOAD`]; in an IPv4 frame
//! nothing past the datagram's total length, such as Ethernet padding). Because filters are
//! data, not code, the kernel can do what it could not with code:
//!
//! - check a new filter against the installed ones and refuse one that overlaps (some
//!   frame would match both), naming the owner it collides with ([`Filters::insert`];
//!   [`Filters::insert_all`] installs a batch whole or not at all, with one rebuild);
//! - merge them into one decision tree that reads each tested field once per level and
//!   picks the child by value, so demultiplexing filters that share their fields costs
//!   about the depth of the tree (at most two levels per atom), not the number of
//!   filters; a node's filters that test unrelated fields are tried a test at a time
//!   ([`Filters::classify`]), and a set of filters whose tree would cost some frame more
//!   than [`MAX_FRAME_TESTS`] tests is refused ([`InsertError::TooManyTests`]), so no
//!   owner's filters make every frame slow; an app's filters are held to its share
//!   ([`APP_FRAME_TESTS`], [`InsertError::OverShare`]), so [`SHARING_APPS`] apps always fit.
//!
//! Filters are written in a small language ([`Filter::parse`]): atoms `OFFSET:WIDTH=VALUE`
//! or `OFFSET:WIDTH/MASK=VALUE` joined by `&`, and words for the common headers (`ipv4`,
//! `arp`, `udp`, `tcp`, `icmp`, `dport N`, `sport N`, `dst A.B.C.D`, `src A.B.C.D`; a
//! port word needs `tcp` or `udp` beside it).
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

mod filter;
mod tree;

pub use filter::{Atom, FIRST_FRAGMENT, Filter, MAX_ATOMS, ParseError, TCP_PAYLOAD};
pub use tree::{APP_FRAME_TESTS, Filters, InsertError, MAX_FRAME_TESTS, SHARING_APPS};

/// The internet checksum (RFC 1071) of `bytes`: what the kernel puts in the answers it
/// makes for a shared interface, and what a frame's IPv4, ICMP or TCP checksum field
/// makes zero when it is right.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Where a device that computes checksums (offload) puts the TCP or UDP checksum of an
/// IPv4 frame: what virtio-net's header and an e1000 descriptor ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportChecksum {
    /// The transport header's first byte in the frame: the device sums from here to the
    /// end of the IP datagram.
    pub start: usize,
    /// The checksum field's offset from `start` (16 for TCP, 6 for UDP).
    pub offset: usize,
    /// The pseudo-header's sum (folded, not complemented) to put in the field before
    /// the device adds the segment to it.
    pub seed: u16,
}

/// Where an unfragmented IPv4 TCP or UDP frame whose lengths agree carries its
/// transport segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportSegment {
    /// The transport header's first byte in the frame.
    pub start: usize,
    /// The segment's length in bytes (the IP total length less the IP header).
    pub len: usize,
    /// The IP protocol: 6 TCP, 17 UDP.
    pub protocol: u8,
}

/// The transport segment of `frame` if it is an unfragmented IPv4 TCP or UDP frame whose
/// lengths agree (the frame may be longer: Ethernet padding); `None` for anything else.
pub fn transport_segment(frame: &[u8]) -> Option<TransportSegment> {
    if frame.get(12..14)? != [0x08, 0x00] || frame.get(14)? >> 4 != 4 {
        return None;
    }
    let header = usize::from(frame[14] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]));
    let fragmented = u16::from_be_bytes([*frame.get(20)?, *frame.get(21)?]) & 0x3FFF != 0;
    let protocol = *frame.get(23)?;
    let len = total.checked_sub(header)?;
    if !matches!(protocol, 6 | 17) || header < 20 || fragmented || frame.len() < 14 + total {
        return None;
    }
    Some(TransportSegment {
        start: 14 + header,
        len,
        protocol,
    })
}

/// The checksum layout of `frame` if it is an unfragmented IPv4 TCP or UDP frame whose
/// lengths agree ([`transport_segment`]); `None` for anything else (sent as it is).
pub fn transport_checksum(frame: &[u8]) -> Option<TransportChecksum> {
    let segment = transport_segment(frame)?;
    let offset = if segment.protocol == 6 { 16 } else { 6 };
    if segment.len < offset + 2 {
        return None;
    }
    // The pseudo-header: addresses, zero, protocol, transport length; its folded sum
    // is the complement of its checksum.
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&frame[26..34]);
    pseudo[9] = segment.protocol;
    pseudo[10..].copy_from_slice(&(segment.len as u16).to_be_bytes());
    Some(TransportChecksum {
        start: segment.start,
        offset,
        seed: !checksum(&pseudo),
    })
}

#[cfg(test)]
mod tests {
    use super::{checksum, transport_checksum};

    /// An IPv4 frame of `protocol` with a `payload`-byte transport segment whose
    /// checksum field (at `offset`) is right.
    fn frame(protocol: u8, offset: usize, segment: usize) -> alloc::vec::Vec<u8> {
        let mut frame = alloc::vec![0u8; 14 + 20 + segment];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&((20 + segment) as u16).to_be_bytes());
        frame[23] = protocol;
        frame[26..34].copy_from_slice(&[10, 0, 2, 15, 10, 0, 2, 2]);
        for (i, byte) in frame[34..].iter_mut().enumerate() {
            *byte = (i * 7 + 3) as u8;
        }
        frame[34 + offset..36 + offset].fill(0);
        let mut pseudo = frame[26..34].to_vec();
        pseudo.extend_from_slice(&[0, protocol]);
        pseudo.extend_from_slice(&(segment as u16).to_be_bytes());
        pseudo.extend_from_slice(&frame[34..]);
        let sum = checksum(&pseudo);
        frame[34 + offset..36 + offset].copy_from_slice(&sum.to_be_bytes());
        frame
    }

    #[test]
    fn a_device_seeded_with_the_pseudo_header_computes_the_right_checksum() {
        for (protocol, offset, segment) in [(6, 16, 20), (6, 16, 1480), (17, 6, 9), (17, 6, 8)] {
            let right = frame(protocol, offset, segment);
            let layout = transport_checksum(&right).unwrap();
            assert_eq!((layout.start, layout.offset), (34, offset));
            // What the device does: the field holds the seed, the sum covers the segment.
            let mut offloaded = right.clone();
            let field = layout.start + layout.offset;
            offloaded[field..field + 2].copy_from_slice(&layout.seed.to_be_bytes());
            let sum = checksum(&offloaded[layout.start..]);
            offloaded[field..field + 2].copy_from_slice(&sum.to_be_bytes());
            assert_eq!(offloaded, right, "protocol {protocol}, {segment} bytes");
        }
    }

    #[test]
    fn other_frames_have_no_transport_checksum_layout() {
        let tcp = frame(6, 16, 20);
        let mut icmp = tcp.clone();
        icmp[23] = 1;
        let mut fragment = tcp.clone();
        fragment[20] = 0x20;
        let mut arp = tcp.clone();
        arp[13] = 0x06;
        let mut long = tcp.clone();
        long[17] += 1;
        for other in [&icmp, &fragment, &arp, &long, &tcp[..30].to_vec()] {
            assert_eq!(transport_checksum(other), None);
        }
    }

    #[test]
    fn the_checksum_is_rfc_1071s() {
        // RFC 1071's example: the one's complement sum of these words is 0xddf2.
        let words = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&words), !0xddf2);
        assert_eq!(checksum(&[0xff]), !0xff00, "an odd byte is padded");
    }
}
