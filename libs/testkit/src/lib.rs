//! Helpers shared by the host tests of the library crates (a dev-dependency only).
#![cfg_attr(target_os = "none", no_std)]

/// xorshift64*: a small, deterministic pseudo-random generator for fuzz-style tests, so
/// that a failing case reproduces from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits. The seed must not be zero.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn is_deterministic_and_moves() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        let first = a.next_u64();
        assert_eq!(first, b.next_u64());
        assert_ne!(first, a.next_u64());
    }
}
