//! Packet filters in the manner of the MIT exokernel's DPF: an app binds to incoming
//! traffic with a declarative filter, a conjunction of *atoms* (`offset`, `width`, `mask`,
//! `value`: "the 2 bytes at 12, masked with 0xFFFF, equal 0x0800"). Because filters are
//! data, not code, the kernel can do what it could not with code:
//!
//! - check a new filter against the installed ones and refuse one that overlaps (some
//!   frame would match both), naming the owner it collides with ([`Filters::insert`]);
//! - merge them into one decision tree that reads each tested field once per level and
//!   picks the child by value, so demultiplexing costs about the depth of the tree, not
//!   the number of filters ([`Filters::classify`]).
//!
//! Filters are written in a small language ([`Filter::parse`]): atoms `OFFSET:WIDTH=VALUE`
//! or `OFFSET:WIDTH/MASK=VALUE` joined by `&`, and words for the common headers (`ipv4`,
//! `arp`, `udp`, `tcp`, `icmp`, `dport N`, `sport N`, `dst A.B.C.D`, `src A.B.C.D`).
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

mod filter;
mod tree;

pub use filter::{Atom, Filter, ParseError};
pub use tree::{Filters, InsertError};

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

#[cfg(test)]
mod tests {
    #[test]
    fn the_checksum_is_rfc_1071s() {
        // RFC 1071's example: the one's complement sum of these words is 0xddf2.
        let words = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(super::checksum(&words), !0xddf2);
        assert_eq!(super::checksum(&[0xff]), !0xff00, "an odd byte is padded");
    }
}
