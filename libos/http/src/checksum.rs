//! The Internet checksum's one's complement sum (RFC 1071), the part of a TCP checksum
//! that depends on the payload.

/// The 16-bit one's complement sum of `data` read as big-endian words, an odd last
/// byte padded with a zero byte; not complemented, so sums of parts can be added with
/// [`add_sums`] before the TCP layer adds its pseudo-header and header and complements.
/// The result is 0 only for data of zero bytes (or none).
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut pairs = data.chunks_exact(2);
    // A u64 holds 2^48 words of 0xffff before it can overflow: no folding in the loop.
    let mut total: u64 = pairs
        .by_ref()
        .map(|pair| u64::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    if let [last] = pairs.remainder() {
        total += u64::from(*last) << 8;
    }
    fold(total)
}

/// The one's complement sum of two sums; exact, that is the same as summing the
/// concatenated data directly, when the second part starts at an even offset (else
/// byte-swap it first, RFC 1071's byte-order independence).
pub fn add_sums(first: u16, second: u16) -> u16 {
    fold(u64::from(first) + u64::from(second))
}

/// Folds the carries of a wide sum back into 16 bits.
fn fold(mut total: u64) -> u16 {
    while total > 0xffff {
        total = (total & 0xffff) + (total >> 16);
    }
    total as u16
}
