//! [`ReservedRanges`]: the physical ranges the frame allocator must never hand out,
//! gathered at boot before there is a heap.

use core::fmt;
use core::ops::Range;

/// Up to [`ReservedRanges::CAPACITY`] ranges; pushing more is recorded, not lost silently,
/// and so is a range pushed over a page the kernel writes itself
/// ([`push_written`](ReservedRanges::push_written)).
pub struct ReservedRanges {
    items: [Range<u64>; ReservedRanges::CAPACITY],
    len: usize,
    overflowed: bool,
    /// Where in `items` the ranges the kernel writes are.
    written: [usize; ReservedRanges::WRITTEN_CAPACITY],
    written_len: usize,
}

/// Why a [`ReservedRanges`] list cannot be trusted ([`ReservedRanges::problem`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservedProblem {
    /// Some pushes did not fit.
    Overflowed,
    /// A range (a boot structure, a module) overlaps a range the kernel writes.
    OverWritten {
        /// The range pushed.
        range: Range<u64>,
        /// The range the kernel writes.
        written: Range<u64>,
    },
}

impl fmt::Display for ReservedProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overflowed => f.write_str(
                "too many reserved ranges (boot modules, ACPI tables) for the frame allocator",
            ),
            Self::OverWritten { range, written } => write!(
                f,
                "boot data at [{:#x}, {:#x}) overlaps [{:#x}, {:#x}), which the kernel writes",
                range.start, range.end, written.start, written.end
            ),
        }
    }
}

impl Default for ReservedRanges {
    fn default() -> Self {
        Self::new()
    }
}

impl ReservedRanges {
    /// How many ranges it holds.
    pub const CAPACITY: usize = 128;
    /// How many of them may be ranges the kernel writes ([`push_written`](Self::push_written)).
    pub const WRITTEN_CAPACITY: usize = 4;

    /// An empty list.
    pub const fn new() -> Self {
        Self {
            items: [const { 0..0 }; Self::CAPACITY],
            len: 0,
            overflowed: false,
            written: [0; Self::WRITTEN_CAPACITY],
            written_len: 0,
        }
    }

    /// Appends a range (empty ones too: they reserve nothing). One that overlaps a range
    /// pushed before it with [`push_written`](Self::push_written) is a
    /// [`ReservedProblem::OverWritten`] ([`problem`](Self::problem) finds the first).
    pub fn push(&mut self, range: Range<u64>) {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = range;
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }

    /// Appends a range the kernel itself writes at a fixed address (the application
    /// processors' trampoline, BareMetal's call table): no range pushed after it may
    /// overlap it.
    pub fn push_written(&mut self, range: Range<u64>) {
        // At `len == CAPACITY` the push below overflows, and `problem` says so first.
        match self.written.get_mut(self.written_len) {
            Some(slot) => {
                *slot = self.len;
                self.written_len += 1;
            }
            _ => self.overflowed = true,
        }
        self.push(range);
    }

    /// Why the caller must not trust the list, if so: some pushes did not fit (checked
    /// first), or a range overlaps one the kernel writes.
    pub fn problem(&self) -> Option<ReservedProblem> {
        if self.overflowed {
            return Some(ReservedProblem::Overflowed);
        }
        // Checked once, here, rather than at every push: the boot path translates less.
        let written = &self.written[..self.written_len];
        let mut pushed = self.items[..self.len].iter().enumerate();
        pushed.find_map(|(at, range)| {
            let mut before = written.iter().filter(|&&w| w < at).map(|&w| &self.items[w]);
            let written = before.find(|w| range.start < w.end && w.start < range.end)?;
            let (range, written) = (range.clone(), written.clone());
            Some(ReservedProblem::OverWritten { range, written })
        })
    }

    /// The ranges pushed, in order.
    pub fn as_slice(&self) -> &[Range<u64>] {
        &self.items[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::{ReservedProblem, ReservedRanges};

    #[test]
    fn keeps_ranges_in_order_and_reports_overflow() {
        let mut ranges = ReservedRanges::new();
        ranges.push(0..4096);
        ranges.push(8192..8192);
        assert_eq!(ranges.as_slice(), [0..4096, 8192..8192]);
        assert_eq!(ranges.problem(), None);
        for i in 0..ReservedRanges::CAPACITY as u64 {
            ranges.push(i..i + 1);
        }
        assert_eq!(ranges.as_slice().len(), ReservedRanges::CAPACITY);
        assert_eq!(
            ranges.problem(),
            Some(ReservedProblem::Overflowed),
            "the pushes past the capacity are reported"
        );
    }

    #[test]
    fn a_range_over_a_page_the_kernel_writes_is_reported() {
        // As the kernel does: low memory, then the trampoline and BareMetal's call table.
        let mut ranges = ReservedRanges::new();
        ranges.push(0..1 << 20);
        ranges.push_written(0x8000..0x9000);
        ranges.push_written(0x10_0010..0x10_0050);
        ranges.push(0x9000..0xA000); // touching is not overlapping
        ranges.push(0x10_0050..0x10_07C8); // GRUB's information under SeaBIOS
        ranges.push(0x10_0050..0x10_0050);
        assert_eq!(ranges.problem(), None);
        assert_eq!(
            ranges.as_slice().len(),
            6,
            "written ranges are reserved too"
        );
        // GRUB may place a small module at 1 MiB.
        ranges.push(0x10_0000..0x10_0800);
        ranges.push(0x7000..0x8001);
        assert_eq!(
            ranges.problem(),
            Some(ReservedProblem::OverWritten {
                range: 0x10_0000..0x10_0800,
                written: 0x10_0010..0x10_0050
            }),
            "the first one"
        );
        let text = ranges.problem().unwrap().to_string();
        assert!(text.contains("[0x100000, 0x100800)"), "{text}");
    }
}
