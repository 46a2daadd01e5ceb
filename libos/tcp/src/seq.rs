//! TCP sequence numbers: 32-bit values compared and subtracted modulo 2^32 (RFC 9293,
//! 3.4), valid while the two numbers are less than 2^31 apart.

use core::cmp::Ordering;
use core::fmt;

/// A sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// This number plus `n` bytes, wrapping.
    pub fn plus(self, n: usize) -> Seq {
        Seq(self.0.wrapping_add(n as u32))
    }

    /// How far `self` is ahead of `other` (negative when behind), modulo 2^32.
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0).cast_signed()
    }

    /// The distance from `other` up to `self`, which must not be behind it: 0 if it is.
    pub fn since(self, other: Seq) -> usize {
        self.diff(other).max(0) as usize
    }

    /// Whether `self` lies in the half-open range `[start, start + len)`.
    pub fn within(self, start: Seq, len: usize) -> bool {
        let offset = self.0.wrapping_sub(start.0);
        (offset as usize) < len
    }

    /// Whether a segment starting at `self` and occupying `len` numbers is acceptable to
    /// a receiver that expects `rcv_nxt` with a window of `wnd` (RFC 9293, 3.10.7.4's
    /// four cases).
    pub(crate) fn acceptable(self, len: usize, rcv_nxt: Seq, wnd: usize) -> bool {
        match (len, wnd) {
            (0, 0) => self == rcv_nxt,
            (0, _) => self.within(rcv_nxt, wnd),
            (_, 0) => false,
            _ => self.within(rcv_nxt, wnd) || self.plus(len - 1).within(rcv_nxt, wnd),
        }
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Seq;

    #[test]
    fn comparisons_wrap_around_zero() {
        let near_end = Seq(u32::MAX - 10);
        let past = near_end.plus(20);
        assert_eq!(past, Seq(9));
        assert!(near_end < past);
        assert!(past > near_end);
        assert_eq!(past.diff(near_end), 20);
        assert_eq!(near_end.diff(past), -20);
        assert_eq!(past.since(near_end), 20);
        assert_eq!(near_end.since(past), 0);
    }

    #[test]
    fn within_is_half_open_and_wraps() {
        let start = Seq(u32::MAX - 1);
        assert!(start.within(start, 4));
        assert!(Seq(1).within(start, 4));
        assert!(!Seq(2).within(start, 4));
        assert!(!Seq(u32::MAX - 2).within(start, 4));
        assert!(!start.within(start, 0));
    }
}
