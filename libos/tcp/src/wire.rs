//! IPv4 and TCP headers: reading a received packet into a [`Segment`] (every malformed
//! input refused with a [`Malformed`] reason) and writing the headers of a segment to
//! send.

use crate::checksum;
use crate::seq::Seq;

/// FIN: no more data from the sender.
pub const FIN: u8 = 0x01;
/// SYN: synchronize sequence numbers.
pub const SYN: u8 = 0x02;
/// RST: reset the connection.
pub const RST: u8 = 0x04;
/// PSH: push.
pub const PSH: u8 = 0x08;
/// ACK: the acknowledgment field is significant.
pub const ACK: u8 = 0x10;

/// The IPv4 header this crate writes: 20 bytes, no options.
pub const IPV4_HEADER: usize = 20;
/// The TCP header without options.
pub const TCP_HEADER: usize = 20;
/// The most header bytes [`write_headers`] produces: IPv4, TCP, and MSS and window
/// scale options (4 + 1 + 3 bytes).
pub const MAX_HEADERS: usize = IPV4_HEADER + TCP_HEADER + 8;

/// Why a received packet was not a TCP segment this crate can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its headers say, or than a minimal header.
    Truncated,
    /// Not IPv4, or an IPv4 header length below 20 bytes.
    BadIpHeader,
    /// An IPv4 total length below the header length.
    BadIpLength,
    /// Not TCP (protocol 6).
    NotTcp,
    /// A fragment: reassembly is not done here.
    Fragment,
    /// A TCP data offset below 5 words or past the packet's end.
    BadDataOffset,
    /// A TCP option whose length is below 2 or runs past the header.
    BadOption,
    /// A wrong IPv4 header or TCP checksum (only when asked to check).
    BadChecksum,
}

/// A received TCP segment: its header's fields (through `Deref`), and its payload
/// borrowed from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The header's fields; the MSS and window scale options as received.
    pub header: Header,
    /// The data.
    pub payload: &'a [u8],
}

impl core::ops::Deref for Segment<'_> {
    type Target = Header;

    fn deref(&self) -> &Header {
        &self.header
    }
}

impl Segment<'_> {
    /// Whether all of `flags` are set.
    pub fn has(&self, flags: u8) -> bool {
        self.flags & flags == flags
    }

    /// Whether it asks for a new connection: a SYN without ACK, FIN or RST (a SYN that
    /// also closes or resets, as scanners send to slip past filters, opens nothing).
    pub fn opens(&self) -> bool {
        self.flags & (SYN | ACK | FIN | RST) == SYN
    }

    /// The sequence space the segment occupies: its data, plus one each for SYN and FIN.
    pub fn seq_len(&self) -> usize {
        self.payload.len() + usize::from(self.has(SYN)) + usize::from(self.has(FIN))
    }
}

/// The IPv4 protocol number of TCP.
pub(crate) const TCP: u8 = 6;

/// The IPv4 header and payload of `packet` (from its IPv4 header on; bytes past the
/// IPv4 total length, such as Ethernet padding, are ignored) if it is a whole IPv4
/// packet (not a fragment) carrying `protocol`, else what is wrong with it
/// ([`Malformed::NotTcp`] for another protocol); the header checksum is not checked.
pub(crate) fn ipv4(packet: &[u8], protocol: u8) -> Result<(&[u8], &[u8]), Malformed> {
    if packet.len() < IPV4_HEADER {
        return Err(Malformed::Truncated);
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    if packet[0] >> 4 != 4 || ihl < IPV4_HEADER {
        return Err(Malformed::BadIpHeader);
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < ihl {
        return Err(Malformed::BadIpLength);
    }
    if packet.len() < total {
        return Err(Malformed::Truncated);
    }
    if packet[9] != protocol {
        return Err(Malformed::NotTcp);
    }
    // More fragments, or a fragment offset: either way not a whole packet.
    if u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0 {
        return Err(Malformed::Fragment);
    }
    Ok(packet[..total].split_at(ihl))
}

/// Reads the IPv4 packet `packet` (from its IPv4 header on; bytes past the IPv4 total
/// length, such as Ethernet padding, are ignored) as a TCP segment; with `verify`, the
/// IPv4 header checksum and the TCP checksum are checked too.
pub fn parse(packet: &[u8], verify: bool) -> Result<Segment<'_>, Malformed> {
    let (header, tcp) = ipv4(packet, TCP)?;
    if verify && checksum::sum(header) != 0xffff {
        return Err(Malformed::BadChecksum);
    }
    if tcp.len() < TCP_HEADER {
        return Err(Malformed::Truncated);
    }
    let offset = usize::from(tcp[12] >> 4) * 4;
    if offset < TCP_HEADER || offset > tcp.len() {
        return Err(Malformed::BadDataOffset);
    }
    let src: [u8; 4] = packet[12..16].try_into().unwrap_or_default();
    let dst: [u8; 4] = packet[16..20].try_into().unwrap_or_default();
    if verify {
        let whole = checksum::add(
            checksum::pseudo_header(src, dst, tcp.len()),
            checksum::sum(tcp),
        );
        if whole != 0xffff {
            return Err(Malformed::BadChecksum);
        }
    }
    let (mss, window_scale) = options(&tcp[TCP_HEADER..offset])?;
    let word = |at: usize| u32::from_be_bytes([tcp[at], tcp[at + 1], tcp[at + 2], tcp[at + 3]]);
    Ok(Segment {
        header: Header {
            src,
            dst,
            src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
            dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
            seq: Seq(word(4)),
            ack: Seq(word(8)),
            flags: tcp[13],
            window: u16::from_be_bytes([tcp[14], tcp[15]]),
            mss,
            window_scale,
        },
        payload: &tcp[offset..],
    })
}

/// The MSS and window scale options among `options`; others are skipped by length.
fn options(mut options: &[u8]) -> Result<(Option<u16>, Option<u8>), Malformed> {
    let (mut mss, mut scale) = (None, None);
    while let Some(&kind) = options.first() {
        match kind {
            0 => break,
            1 => options = &options[1..],
            _ => {
                let len = usize::from(*options.get(1).ok_or(Malformed::BadOption)?);
                if len < 2 || len > options.len() {
                    return Err(Malformed::BadOption);
                }
                match (kind, len) {
                    (2, 4) => mss = Some(u16::from_be_bytes([options[2], options[3]])),
                    (3, 3) => scale = Some(options[2]),
                    (2 | 3, _) => return Err(Malformed::BadOption),
                    _ => {}
                }
                options = &options[len..];
            }
        }
    }
    Ok((mss, scale))
}

/// The fields of a TCP segment's IPv4 and TCP headers that this crate reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The IPv4 source address.
    pub src: [u8; 4],
    /// The IPv4 destination address.
    pub dst: [u8; 4],
    /// The source port.
    pub src_port: u16,
    /// The destination port.
    pub dst_port: u16,
    /// The sequence number.
    pub seq: Seq,
    /// The acknowledgment number (sent as 0 without [`ACK`]).
    pub ack: Seq,
    /// The flags ([`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`], ...).
    pub flags: u8,
    /// The window field as sent (scaled).
    pub window: u16,
    /// The MSS option (on SYN segments).
    pub mss: Option<u16>,
    /// The window scale option's shift (on SYN segments).
    pub window_scale: Option<u8>,
}

/// Writes the IPv4 and TCP headers of `header` with a payload of `payload_len` bytes
/// whose one's complement sum is `payload_sum` into `out`, checksums included; returns
/// how many bytes the headers take. `ip_id` is the IPv4 identification.
pub fn write_headers(
    header: &Header,
    ip_id: u16,
    payload_len: usize,
    payload_sum: u16,
    out: &mut [u8; MAX_HEADERS],
) -> usize {
    let options = if header.mss.is_some() { 4 } else { 0 }
        + if header.window_scale.is_some() { 4 } else { 0 };
    let tcp_header = TCP_HEADER + options;
    let len = IPV4_HEADER + tcp_header;
    let ip = &mut out[..IPV4_HEADER];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&((len + payload_len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[12..16].copy_from_slice(&header.src);
    ip[16..20].copy_from_slice(&header.dst);
    let ip_sum = !checksum::sum(ip);
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let tcp = &mut out[IPV4_HEADER..len];
    tcp[0..2].copy_from_slice(&header.src_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&header.dst_port.to_be_bytes());
    tcp[4..8].copy_from_slice(&header.seq.0.to_be_bytes());
    let ack = if header.flags & ACK != 0 {
        header.ack.0
    } else {
        0
    };
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = ((tcp_header / 4) as u8) << 4;
    tcp[13] = header.flags;
    tcp[14..16].copy_from_slice(&header.window.to_be_bytes());
    tcp[16..20].fill(0);
    let mut at = TCP_HEADER;
    if let Some(mss) = header.mss {
        tcp[at..at + 4].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
        at += 4;
    }
    if let Some(shift) = header.window_scale {
        tcp[at..at + 4].copy_from_slice(&[1, 3, 3, shift]);
    }
    let tcp_sum = [
        checksum::pseudo_header(header.src, header.dst, tcp_header + payload_len),
        checksum::sum(tcp),
        payload_sum,
    ]
    .into_iter()
    .fold(0, checksum::add);
    tcp[16..18].copy_from_slice(&(!tcp_sum).to_be_bytes());
    len
}

/// Puts the pseudo-header's sum for a segment of `header` with `payload_len` bytes of
/// payload, not complemented, in the checksum field of `headers` (written by
/// [`write_headers`]): what a NIC that completes the checksum, or cuts the segment,
/// expects there.
pub fn seed_checksum(header: &Header, payload_len: usize, headers: &mut [u8]) {
    let tcp_len = headers.len() - IPV4_HEADER + payload_len;
    let seed = checksum::pseudo_header(header.src, header.dst, tcp_len);
    headers[IPV4_HEADER + 16..IPV4_HEADER + 18].copy_from_slice(&seed.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn header() -> Header {
        Header {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            src_port: 80,
            dst_port: 40000,
            seq: Seq(0xfffffff0),
            ack: Seq(77),
            flags: ACK | PSH,
            window: 1234,
            mss: None,
            window_scale: None,
        }
    }

    fn packet(header: &Header, payload: &[u8]) -> Vec<u8> {
        let mut out = [0; MAX_HEADERS];
        let len = write_headers(header, 9, payload.len(), checksum::sum(payload), &mut out);
        let mut packet = out[..len].to_vec();
        packet.extend_from_slice(payload);
        packet
    }

    #[test]
    fn written_headers_read_back_with_valid_checksums() {
        let mut syn = header();
        syn.flags = SYN | ACK;
        syn.mss = Some(1460);
        syn.window_scale = Some(7);
        for (h, payload) in [(header(), &b"hello, odd"[..]), (syn, &b""[..])] {
            let bytes = packet(&h, payload);
            let seg = parse(&bytes, true).expect("valid");
            assert_eq!((seg.src, seg.dst), (h.src, h.dst));
            assert_eq!((seg.src_port, seg.dst_port), (h.src_port, h.dst_port));
            assert_eq!((seg.seq, seg.ack, seg.flags), (h.seq, h.ack, h.flags));
            assert_eq!(
                (seg.window, seg.mss, seg.window_scale),
                (h.window, h.mss, h.window_scale)
            );
            assert_eq!(seg.payload, payload);
        }
    }

    #[test]
    fn every_malformed_packet_is_refused_with_its_reason() {
        let good = packet(&header(), b"data");
        let with = |at: usize, value: u8| {
            let mut p = good.clone();
            p[at] = value;
            p
        };
        assert_eq!(parse(&good[..19], false), Err(Malformed::Truncated));
        assert_eq!(
            parse(&good[..good.len() - 1], false),
            Err(Malformed::Truncated)
        );
        assert_eq!(parse(&with(0, 0x65), false), Err(Malformed::BadIpHeader));
        assert_eq!(parse(&with(0, 0x44), false), Err(Malformed::BadIpHeader));
        assert_eq!(
            parse(&with(3, 10), false).unwrap_err(),
            Malformed::BadIpLength
        );
        assert_eq!(parse(&with(9, 17), false), Err(Malformed::NotTcp));
        assert_eq!(parse(&with(6, 0x20), false), Err(Malformed::Fragment));
        assert_eq!(parse(&with(32, 0x40), false), Err(Malformed::BadDataOffset));
        assert_eq!(parse(&with(32, 0xf0), false), Err(Malformed::BadDataOffset));
        assert_eq!(parse(&with(42, b'x'), true), Err(Malformed::BadChecksum));
        assert!(
            parse(&with(42, b'x'), false).is_ok(),
            "checksums only when asked"
        );
        assert_eq!(
            parse(&with(8, 1), true),
            Err(Malformed::BadChecksum),
            "IPv4 header"
        );
        // A truncated TCP header inside a consistent IPv4 packet.
        let mut short = good[..30].to_vec();
        short[2..4].copy_from_slice(&30u16.to_be_bytes());
        assert_eq!(parse(&short, false), Err(Malformed::Truncated));
    }

    #[test]
    fn options_are_read_and_bad_ones_refused() {
        let mut syn = header();
        syn.mss = Some(536);
        let good = packet(&syn, b"");
        let seg = parse(&good, false).unwrap();
        assert_eq!((seg.mss, seg.window_scale), (Some(536), None));
        let mut bad = good.clone();
        bad[41] = 1; // MSS option length 1
        assert_eq!(parse(&bad, false), Err(Malformed::BadOption));
        bad[41] = 9; // runs past the header
        assert_eq!(parse(&bad, false), Err(Malformed::BadOption));
        bad[40] = 8; // an unknown option of length 4 is skipped
        bad[41] = 4;
        assert_eq!(parse(&bad, false).unwrap().mss, None);
    }
}
