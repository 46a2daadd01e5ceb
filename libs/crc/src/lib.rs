//! Checksums, shared by every Rexo crate that seals data on disk: CRC-32 (IEEE 802.3,
//! reflected polynomial `0xEDB88320`, the zlib/PNG one, CRC-32/ISO-HDLC in the
//! catalogues) and CRC-32C (Castagnoli, reflected `0x82F63B78`). Both start the
//! register at all ones and invert the result.
//!
//! Where each is used:
//! - CRC-32 ([`crc32`], [`Crc32::new`]): every metadata block of the Rexo file system
//!   (`rexo-fs`), the header and entry array of a GPT (`rexo-mbr`), and the entries of
//!   XN's disk extent table (`rexo-xn`, read and written by the kernel's drivers).
//! - CRC-32C ([`crc32c`], [`Crc32::castagnoli`]): a whole `rexo-fs` journal transaction.
//!
//! Two polynomials in `rexo-fs` because a CRC run over a block that ends with its own
//! CRC of the same polynomial comes out the same whatever the block holds (the register
//! after `message ‖ crc(message)` is a constant): a transaction checksum of the same
//! kind could not tell a sealed metadata image from a stale one.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

/// Lookup tables of a polynomial for eight bytes at a time ("slicing by 8"):
/// `table[0]` is the byte-at-a-time table, `table[k][b]` the CRC register after byte
/// `b` followed by `k` zero bytes. Every `rexo-fs` metadata block read or sealed runs a
/// CRC over 4 KiB, which made it the file system's hottest loop (71% of the small-file
/// workload's time byte at a time); eight bytes a step is about four times faster, in
/// portable code on any CPU (the SSE 4.2 `crc32` instruction needs an intrinsic this
/// crate may not call, and covers only CRC-32C).
type Tables = [[u32; 256]; 8];

/// CRC-32's tables, built at compile time.
static IEEE: Tables = build_tables(0xEDB8_8320);
/// CRC-32C's tables.
static CASTAGNOLI: Tables = build_tables(0x82F6_3B78);

const fn build_tables(polynomial: u32) -> Tables {
    let mut tables = [[0u32; 256]; 8];
    let mut index = 0;
    while index < 256 {
        let mut value = index as u32;
        let mut bit = 0;
        while bit < 8 {
            value = if value & 1 == 1 {
                (value >> 1) ^ polynomial
            } else {
                value >> 1
            };
            bit += 1;
        }
        tables[0][index] = value;
        index += 1;
    }
    let mut slice = 1;
    while slice < 8 {
        let mut index = 0;
        while index < 256 {
            let previous = tables[slice - 1][index];
            tables[slice][index] = (previous >> 8) ^ tables[0][(previous & 0xFF) as usize];
            index += 1;
        }
        slice += 1;
    }
    tables
}

/// A running CRC over several pieces of data: CRC-32 ([`Crc32::new`]) or CRC-32C
/// ([`Crc32::castagnoli`]).
#[derive(Clone, Copy, Debug)]
pub struct Crc32 {
    /// The inverted running value.
    state: u32,
    /// The polynomial's tables.
    tables: &'static Tables,
}

impl Crc32 {
    /// A CRC-32 (IEEE) over nothing yet.
    pub const fn new() -> Self {
        Self {
            state: !0,
            tables: &IEEE,
        }
    }

    /// A CRC-32C (Castagnoli) over nothing yet.
    pub const fn castagnoli() -> Self {
        Self {
            state: !0,
            tables: &CASTAGNOLI,
        }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        let t = self.tables;
        let mut words = data.chunks_exact(8);
        for word in &mut words {
            let low = self.state ^ u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            let high = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
            let [a, b, c, d] = low.to_le_bytes().map(usize::from);
            let [e, f, g, h] = high.to_le_bytes().map(usize::from);
            self.state =
                t[7][a] ^ t[6][b] ^ t[5][c] ^ t[4][d] ^ t[3][e] ^ t[2][f] ^ t[1][g] ^ t[0][h];
        }
        for &byte in words.remainder() {
            let slot = usize::from((self.state as u8) ^ byte);
            self.state = (self.state >> 8) ^ t[0][slot];
        }
    }

    /// The checksum of everything fed.
    pub const fn finish(self) -> u32 {
        !self.state
    }
}

impl Default for Crc32 {
    /// A CRC-32 (IEEE) over nothing yet, as [`Crc32::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// The CRC-32 (IEEE) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(data);
    crc.finish()
}

/// The CRC-32C (Castagnoli) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = Crc32::castagnoli();
    crc.update(data);
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC of `data` one bit at a time, straight from the definition.
    fn bit_by_bit(polynomial: u32, data: &[u8]) -> u32 {
        let mut crc = u32::MAX;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ polynomial
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn matches_the_standard_check_values() {
        // The catalogues' check value (the CRC of "123456789") and two more.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
        let mut split = Crc32::new();
        split.update(b"1234");
        split.update(b"56789");
        assert_eq!(split.finish(), 0xCBF4_3926);
        assert_eq!(Crc32::default().finish(), crc32(b""));
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        let mut castagnoli = Crc32::castagnoli();
        castagnoli.update(b"123456789");
        assert_eq!(castagnoli.finish(), 0xE306_9283);
    }

    #[test]
    fn eight_bytes_at_a_time_match_one_at_a_time_and_bit_by_bit() {
        let data: Vec<u8> = (0..4099u32).map(|i| (i * 131 % 251) as u8).collect();
        for (tables, polynomial) in [(&IEEE, 0xEDB8_8320), (&CASTAGNOLI, 0x82F6_3B78)] {
            let mut bytewise = !0u32;
            for &byte in &data {
                bytewise = (bytewise >> 8) ^ tables[0][usize::from((bytewise as u8) ^ byte)];
            }
            assert_eq!(!bytewise, bit_by_bit(polynomial, &data));
            for split in [0, 1, 7, 8, 13, 4096] {
                let mut crc = Crc32 { state: !0, tables };
                crc.update(&data[..split]);
                crc.update(&data[split..]);
                assert_eq!(crc.finish(), !bytewise, "split at {split}");
            }
        }
        for length in 0..64 {
            assert_eq!(
                crc32(&data[..length]),
                bit_by_bit(0xEDB8_8320, &data[..length])
            );
            assert_eq!(
                crc32c(&data[..length]),
                bit_by_bit(0x82F6_3B78, &data[..length])
            );
        }
    }

    #[test]
    fn a_crc_over_self_sealed_data_is_blind_but_the_other_polynomial_sees() {
        let sealed = |fill: u8| {
            let mut block = [fill; 64].to_vec();
            let crc = crc32(&block);
            block.extend_from_slice(&crc.to_le_bytes());
            block
        };
        assert_eq!(
            crc32(&sealed(1)),
            crc32(&sealed(2)),
            "the residue is constant"
        );
        assert_ne!(crc32c(&sealed(1)), crc32c(&sealed(2)));
    }
}
