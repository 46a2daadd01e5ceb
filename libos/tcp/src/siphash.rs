//! SipHash-2-4, the keyed pseudorandom function of Aumasson and Bernstein ("SipHash: a
//! fast short-input PRF", 2012), written from the paper's description: the initial
//! sequence numbers' F (RFC 6528).

/// The four words the state starts from, each XORed with half of the key: the ASCII of
/// "somepseudorandomlygeneratedbytes".
const INITIAL_STATE: [u64; 4] = [
    0x736f_6d65_7073_6575,
    0x646f_7261_6e64_6f6d,
    0x6c79_6765_6e65_7261,
    0x7465_6462_7974_6573,
];

/// SipHash-2-4 of `message` under `key` (its 16 bytes little-endian, so that bytes
/// 0..8 are the paper's k0 and 8..16 its k1).
pub fn siphash_2_4(key: u128, message: &[u8]) -> u64 {
    let (k0, k1) = (key as u64, (key >> 64) as u64);
    let mut v = [
        INITIAL_STATE[0] ^ k0,
        INITIAL_STATE[1] ^ k1,
        INITIAL_STATE[2] ^ k0,
        INITIAL_STATE[3] ^ k1,
    ];
    let mut words = message.chunks_exact(8);
    for word in &mut words {
        let m = u64::from_le_bytes(word.try_into().expect("chunks of 8 bytes"));
        compress(&mut v, m);
    }
    // The last word: the bytes left over, then the message length modulo 256 in its
    // most significant byte.
    let mut last = [0u8; 8];
    let rest = words.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = message.len() as u8;
    compress(&mut v, u64::from_le_bytes(last));
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Takes the message word `m` into the state: two SipRounds between XORs of `m`.
fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

/// One SipRound: additions, rotations and XORs of the four words.
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// The key of the paper's test values: the bytes 0 to 15.
    const PAPER_KEY: u128 = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100;

    #[test]
    fn the_papers_test_value_comes_out() {
        // Appendix A: the 15-byte message 00 01 .. 0e under the key 00 01 .. 0f.
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(siphash_2_4(PAPER_KEY, &message), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn every_length_agrees_with_cores_siphash_2_4() {
        // core's SipHasher (deprecated, kept for SipHash-2-4) is written independently.
        let message: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for key in [PAPER_KEY, 0, u128::MAX, 0x5eed_0f7e_c0de] {
            for len in 0..=message.len() {
                #[allow(deprecated)]
                let mut core_hasher =
                    core::hash::SipHasher::new_with_keys(key as u64, (key >> 64) as u64);
                core::hash::Hasher::write(&mut core_hasher, &message[..len]);
                let expected = core::hash::Hasher::finish(&core_hasher);
                assert_eq!(
                    siphash_2_4(key, &message[..len]),
                    expected,
                    "key {key:#x}, {len} bytes"
                );
            }
        }
    }
}
