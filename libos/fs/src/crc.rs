//! Checksums. CRC-32 (IEEE 802.3, reflected polynomial `0xEDB88320`, the zlib/PNG
//! one) seals every metadata block; CRC-32C (Castagnoli, reflected `0x82F63B78`)
//! covers a whole journal transaction.
//!
//! Two polynomials because a CRC run over a block that ends with its own CRC of the
//! same polynomial comes out the same whatever the block holds (the register after
//! `message ‖ crc(message)` is a constant): a transaction checksum of the same kind
//! could not tell a sealed metadata image from a stale one.

/// The byte-at-a-time lookup table of CRC-32, built at compile time.
const IEEE: [u32; 256] = build_table(0xEDB8_8320);
/// The byte-at-a-time lookup table of CRC-32C.
const CASTAGNOLI: [u32; 256] = build_table(0x82F6_3B78);

const fn build_table(polynomial: u32) -> [u32; 256] {
    let mut table = [0u32; 256];
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
        table[index] = value;
        index += 1;
    }
    table
}

/// A running CRC over several pieces of data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32 {
    /// The inverted running value.
    state: u32,
    /// The polynomial's table.
    table: &'static [u32; 256],
}

impl Crc32 {
    /// A CRC-32 (IEEE) over nothing yet.
    pub(crate) const fn new() -> Self {
        Self {
            state: !0,
            table: &IEEE,
        }
    }

    /// A CRC-32C (Castagnoli) over nothing yet.
    pub(crate) const fn castagnoli() -> Self {
        Self {
            state: !0,
            table: &CASTAGNOLI,
        }
    }

    /// Feeds `data`.
    pub(crate) fn update(&mut self, data: &[u8]) {
        for &byte in data {
            let slot = usize::from((self.state as u8) ^ byte);
            self.state = (self.state >> 8) ^ self.table[slot];
        }
    }

    /// The checksum of everything fed.
    pub(crate) const fn finish(self) -> u32 {
        !self.state
    }
}

/// The CRC-32 of `data`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(data);
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let mut split = Crc32::new();
        split.update(b"1234");
        split.update(b"56789");
        assert_eq!(split.finish(), 0xCBF4_3926);
        let mut castagnoli = Crc32::castagnoli();
        castagnoli.update(b"123456789");
        assert_eq!(castagnoli.finish(), 0xE306_9283);
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
        let castagnoli = |data: &[u8]| {
            let mut crc = Crc32::castagnoli();
            crc.update(data);
            crc.finish()
        };
        assert_ne!(castagnoli(&sealed(1)), castagnoli(&sealed(2)));
    }
}
