//! The Internet checksum (RFC 1071) and buffers that carry it precomputed.
//!
//! One's complement sums are additive and byte-order independent: the sum of a
//! concatenation is the sum of the parts' sums, where a part that starts at an odd
//! offset contributes its own sum byte-swapped. A [`Blob`] stores the sum of each
//! [`BLOCK`]-byte block of its bytes once, so the payload share of any segment's
//! checksum is composed from the stored sums plus at most two partial blocks.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// The size of the blocks whose sums a [`Blob`] stores (even, so every block starts
/// at an even offset of the blob).
pub const BLOCK: usize = 64;

/// The 16-bit one's complement sum of `data` as big-endian words (an odd last byte
/// padded with zero), not complemented: 0 only when every byte is zero (or there are none).
pub fn sum(data: &[u8]) -> u16 {
    let mut words = data.chunks_exact(2);
    // 2^48 words of 0xffff fit in a u64: no folding inside the loop.
    let mut total: u64 = words
        .by_ref()
        .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = words.remainder() {
        total += u64::from(*last) << 8;
    }
    fold(total)
}

/// The one's complement sum of two sums.
pub fn add(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// The contribution of a part whose sum is `part` when it starts at byte `offset` of
/// the whole: byte-swapped at an odd offset (RFC 1071, 2(B)).
pub fn at_offset(part: u16, offset: usize) -> u16 {
    if offset % 2 == 1 {
        part.swap_bytes()
    } else {
        part
    }
}

/// The sum of the TCP pseudo-header (RFC 9293, 3.1) for a segment of `tcp_len` bytes
/// (header and payload) from `src` to `dst`.
pub fn pseudo_header(src: [u8; 4], dst: [u8; 4], tcp_len: usize) -> u16 {
    let mut words = [0u8; 12];
    words[..4].copy_from_slice(&src);
    words[4..8].copy_from_slice(&dst);
    words[9] = 6;
    words[10..].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    sum(&words)
}

/// Folds the carries of a wide sum back into 16 bits.
fn fold(mut total: u64) -> u16 {
    while total > 0xffff {
        total = (total & 0xffff) + (total >> 16);
    }
    total as u16
}

/// Immutable bytes shared between an application's cache and the connections sending
/// them, with the one's complement sum of each [`BLOCK`]-byte block computed once.
#[derive(Debug)]
pub struct Blob {
    bytes: Cow<'static, [u8]>,
    block_sums: Box<[u16]>,
}

impl Blob {
    /// Takes `bytes` and sums each of its blocks (the only pass over them).
    pub fn new(bytes: impl Into<Box<[u8]>>) -> Blob {
        Blob::summed(Cow::Owned(bytes.into().into_vec()))
    }

    /// Borrows `bytes` that live as long as the program (a file in the app's image:
    /// not copied) and sums each of its blocks.
    pub fn new_static(bytes: &'static [u8]) -> Blob {
        Blob::summed(Cow::Borrowed(bytes))
    }

    /// The blob of `bytes`, each block summed.
    fn summed(bytes: Cow<'static, [u8]>) -> Blob {
        let block_sums: Vec<u16> = bytes.chunks(BLOCK).map(sum).collect();
        Blob {
            bytes,
            block_sums: block_sums.into_boxed_slice(),
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The one's complement sum of `bytes()[start..end]` as if those bytes began a
    /// payload (at an even offset): whole blocks come from the stored sums, only the
    /// bytes of a partial first and last block are read. `None` if the range is not
    /// within the blob.
    pub fn sum_range(&self, start: usize, end: usize) -> Option<u16> {
        (start <= end && end <= self.bytes.len()).then(|| self.sum_of(start, end))
    }

    /// [`Blob::sum_range`] of a range known to be within the blob.
    pub(crate) fn sum_of(&self, start: usize, end: usize) -> u16 {
        let first_full = start.div_ceil(BLOCK);
        let last_full = end / BLOCK;
        // Sums aligned on the blob's own grid, swapped at the end if `start` is odd.
        let total = if first_full >= last_full {
            sum_aligned(&self.bytes[start..end], start)
        } else {
            let head = sum_aligned(&self.bytes[start..first_full * BLOCK], start);
            let blocks = self.block_sums[first_full..last_full]
                .iter()
                .fold(head, |acc, s| add(acc, *s));
            add(blocks, sum(&self.bytes[last_full * BLOCK..end]))
        };
        at_offset(total, start)
    }
}

/// The sum of `bytes` placed at `offset` of a grid of big-endian words.
fn sum_aligned(bytes: &[u8], offset: usize) -> u16 {
    at_offset(sum(bytes), offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook sum: every byte at its place in a big-endian word.
    fn naive(data: &[u8]) -> u16 {
        let mut total: u32 = 0;
        for (i, byte) in data.iter().enumerate() {
            total += if i % 2 == 0 {
                u32::from(*byte) << 8
            } else {
                u32::from(*byte)
            };
            total = (total & 0xffff) + (total >> 16);
        }
        total as u16
    }

    #[test]
    fn sums_match_the_textbook_sum() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xff; 64]), 0xffff);
        // RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(sum(&data), naive(&data));
    }

    #[test]
    fn a_blob_range_sum_equals_summing_the_range() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 131 + i / 7) as u8).collect();
        let blob = Blob::new(data.clone());
        for start in [0, 1, 2, 63, 64, 65, 127, 1000, 1001, 4999, 5000] {
            for len in [0, 1, 2, 3, 63, 64, 65, 128, 1459, 1460, 3000] {
                let end = (start + len).min(data.len());
                assert_eq!(
                    blob.sum_range(start, end),
                    Some(naive(&data[start..end])),
                    "{start}..{end}"
                );
            }
        }
        assert_eq!(blob.sum_range(10, 5001), None);
        assert_eq!(blob.sum_range(11, 10), None);
        let data: &'static [u8] = b"a borrowed blob of an odd length: 37";
        let borrowed = Blob::new_static(data);
        assert_eq!(borrowed.bytes().as_ptr(), data.as_ptr(), "not copied");
        assert_eq!(borrowed.sum_range(1, data.len()), Some(naive(&data[1..])));
    }

    #[test]
    fn parts_at_odd_offsets_compose() {
        let data: Vec<u8> = (0..301u32).map(|i| (i * 29) as u8).collect();
        for cut in [0, 1, 2, 77, 150, 151, 300, 301] {
            let (a, b) = data.split_at(cut);
            assert_eq!(
                add(sum(a), at_offset(sum(b), cut)),
                naive(&data),
                "cut {cut}"
            );
        }
    }
}
