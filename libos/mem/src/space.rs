//! The pure placement logic of one arena: which byte ranges are free, first fit with
//! alignment, and coalescing on free. It knows nothing of the kernel, so the host tests
//! drive it directly.

use alloc::collections::BTreeMap;

/// Every block's length is rounded up to a multiple of this, and every block starts on
/// one, so that free ranges never shrink to slivers no request can use.
pub const GRANULE: u64 = 16;

/// The free ranges of an arena of `size` bytes, by offset.
#[derive(Debug)]
pub struct Space {
    size: u64,
    /// Free ranges: offset -> length. Never empty-length, never adjacent (coalesced).
    free: BTreeMap<u64, u64>,
    free_bytes: u64,
}

/// `len` rounded up to the granule (`None` on overflow).
pub fn rounded(len: u64) -> Option<u64> {
    len.checked_next_multiple_of(GRANULE)
}

impl Space {
    /// An arena of `size` bytes (a multiple of the granule), all free.
    pub fn new(size: u64) -> Self {
        let mut free = BTreeMap::new();
        if size > 0 {
            free.insert(0, size);
        }
        Self {
            size,
            free,
            free_bytes: size,
        }
    }

    /// The arena's bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes not in any block.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// The longest free range.
    pub fn largest_free(&self) -> u64 {
        self.free.values().copied().max().unwrap_or(0)
    }

    /// Whether no block is placed in it (so its free ranges have coalesced into one).
    pub fn is_unused(&self) -> bool {
        self.free_bytes == self.size
    }

    /// Places a block of `len` bytes (rounded up to the granule) at the first offset that
    /// is a multiple of `align` (a power of two) and fits.
    pub fn place(&mut self, len: u64, align: u64) -> Option<u64> {
        let len = rounded(len)?;
        let align = align.max(GRANULE);
        let (start, at, run) = self.free.iter().find_map(|(&at, &run)| {
            let start = at.checked_next_multiple_of(align)?;
            (start.checked_add(len)? <= at + run).then_some((start, at, run))
        })?;
        self.free.remove(&at);
        if start > at {
            self.free.insert(at, start - at);
        }
        let end = start + len;
        if end < at + run {
            self.free.insert(end, at + run - end);
        }
        self.free_bytes -= len;
        Some(start)
    }

    /// Makes the block `[offset, offset + len)` (`len` rounded as when placed) free
    /// again, merged with the free ranges beside it. The caller frees only what it placed.
    pub fn release(&mut self, offset: u64, len: u64) {
        let Some(len) = rounded(len) else { return };
        self.free_bytes += len;
        let (mut start, mut end) = (offset, offset + len);
        if let Some((&before, &run)) = self.free.range(..offset).next_back()
            && before + run == offset
        {
            self.free.remove(&before);
            start = before;
        }
        if let Some(run) = self.free.remove(&end) {
            end += run;
        }
        self.free.insert(start, end - start);
    }

    /// Grows or shrinks the block at `offset` from `old` to `new` bytes (both more than
    /// 0) where it is; `false`, with nothing changed, when growing needs bytes after it
    /// that are not free.
    pub fn resize(&mut self, offset: u64, old: u64, new: u64) -> bool {
        let (Some(old), Some(new)) = (rounded(old), rounded(new)) else {
            return false;
        };
        if new <= old {
            if new < old {
                self.release(offset + new, old - new);
            }
            return true;
        }
        let (end, more) = (offset + old, new - old);
        match self.free.get(&end) {
            Some(&run) if run >= more => {
                self.free.remove(&end);
                if run > more {
                    self.free.insert(end + more, run - more);
                }
                self.free_bytes -= more;
                true
            }
            _ => false,
        }
    }
}
