//! [`ReservedRanges`]: the physical ranges the frame allocator must never hand out,
//! gathered at boot before there is a heap.

use core::ops::Range;

/// Up to [`ReservedRanges::CAPACITY`] ranges; pushing more is recorded, not lost silently.
pub struct ReservedRanges {
    items: [Range<u64>; ReservedRanges::CAPACITY],
    len: usize,
    overflowed: bool,
}

impl Default for ReservedRanges {
    fn default() -> Self {
        Self::new()
    }
}

impl ReservedRanges {
    /// How many ranges it holds.
    pub const CAPACITY: usize = 128;

    /// An empty list.
    pub const fn new() -> Self {
        Self {
            items: [const { 0..0 }; Self::CAPACITY],
            len: 0,
            overflowed: false,
        }
    }

    /// Appends a range (empty ones too: they reserve nothing).
    pub fn push(&mut self, range: Range<u64>) {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = range;
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }

    /// Whether some pushes did not fit (the caller must not trust the list then).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The ranges pushed, in order.
    pub fn as_slice(&self) -> &[Range<u64>] {
        &self.items[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::ReservedRanges;

    #[test]
    fn keeps_ranges_in_order_and_reports_overflow() {
        let mut ranges = ReservedRanges::new();
        ranges.push(0..4096);
        ranges.push(8192..8192);
        assert_eq!(ranges.as_slice(), [0..4096, 8192..8192]);
        assert!(!ranges.overflowed());
        for i in 0..ReservedRanges::CAPACITY as u64 {
            ranges.push(i..i + 1);
        }
        assert_eq!(ranges.as_slice().len(), ReservedRanges::CAPACITY);
        assert!(
            ranges.overflowed(),
            "the pushes past the capacity are reported"
        );
    }
}
