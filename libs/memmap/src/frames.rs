//! The physical frame allocator and the frame ranges it hands out.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::{FRAME_SIZE, MemoryMap, RegionKind, ReservedRanges, align_down, align_up};

/// The page sizes of x86-64 paging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB: one frame.
    Size4K,
    /// 2 MiB: a large page (page directory entry).
    Size2M,
    /// 1 GiB: a huge page (page directory pointer entry).
    Size1G,
}

impl PageSize {
    /// The page size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 4 << 10,
            Self::Size2M => 2 << 20,
            Self::Size1G => 1 << 30,
        }
    }
}

/// Owned physical frames `[start, end)`: holding it is the right to use that memory.
///
/// Not `Clone` or `Copy`; only the allocator (and [`split_at`](Self::split_at) /
/// [`merge`](Self::merge) on existing ranges) create one. Dropping it keeps the frames out of
/// the allocator for good; give them back with [`FrameAllocator::try_free`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub struct FrameRange {
    start: u64,
    len: u64,
}

impl FrameRange {
    /// The physical address of the first frame (a multiple of [`FRAME_SIZE`]).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The length in bytes (a non-zero multiple of [`FRAME_SIZE`]).
    #[expect(clippy::len_without_is_empty, reason = "a frame range is never empty")]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Keeps the frames allocated for the life of the machine and returns their range: for
    /// memory that is never given back (page tables, kernel stacks, the kernel heap).
    pub fn leak(self) -> Range<u64> {
        self.start..self.start + self.len
    }

    /// Splits into `[start, start + offset)` and `[start + offset, end)`. `offset` must be a
    /// multiple of [`FRAME_SIZE`] strictly inside the range; otherwise the range comes back.
    pub fn split_at(self, offset: u64) -> Result<(FrameRange, FrameRange), FrameRange> {
        if offset == 0 || offset >= self.len || !offset.is_multiple_of(FRAME_SIZE) {
            return Err(self);
        }
        let head = FrameRange {
            start: self.start,
            len: offset,
        };
        let tail = FrameRange {
            start: self.start + offset,
            len: self.len - offset,
        };
        Ok((head, tail))
    }

    /// Joins two contiguous ranges (`next` directly after or directly before `self`);
    /// otherwise both come back unchanged.
    pub fn merge(self, next: FrameRange) -> Result<FrameRange, (FrameRange, FrameRange)> {
        if self.end() == next.start {
            Ok(FrameRange {
                start: self.start,
                len: self.len + next.len,
            })
        } else if next.end() == self.start {
            Ok(FrameRange {
                start: next.start,
                len: self.len + next.len,
            })
        } else {
            Err((self, next))
        }
    }
}

/// Why the frame allocator could not do what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// No free run of `requested` bytes (rounded up to frames) at the asked alignment.
    OutOfMemory {
        /// The size sought, in bytes (`u64::MAX` if the request overflowed).
        requested: u64,
    },
    /// The alignment is not a power of two of at least [`FRAME_SIZE`].
    BadAlignment,
    /// Zero bytes or zero pages were asked for.
    ZeroSize,
    /// The free list is full: the request would have had to split a free range.
    TooFragmented,
    /// A reserved range given to [`FrameAllocator::new`] ends before it starts.
    BadRange {
        /// The range's start.
        start: u64,
        /// The range's end.
        end: u64,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory { requested } => {
                write!(
                    f,
                    "out of physical memory: no free run of {requested} bytes"
                )
            }
            Self::BadAlignment => write!(
                f,
                "frame alignment must be a power of two of at least {FRAME_SIZE}"
            ),
            Self::ZeroSize => f.write_str("zero-sized frame allocation"),
            Self::TooFragmented => write!(
                f,
                "physical memory too fragmented: the free list holds {} ranges",
                FrameAllocator::CAPACITY
            ),
            Self::BadRange { start, end } => {
                write!(
                    f,
                    "reserved range {start:#x}..{end:#x} ends before it starts"
                )
            }
        }
    }
}

impl core::error::Error for AllocError {}

/// A free run of frames `[start, end)`, both multiples of `FRAME_SIZE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Free {
    start: u64,
    end: u64,
}

/// Hands out physical frames: a fixed array of free ranges, sorted, disjoint and never
/// adjacent (neighbours are merged). First fit from the lowest address.
pub struct FrameAllocator {
    free: [Free; Self::CAPACITY],
    len: usize,
}

impl fmt::Debug for FrameAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.free_ranges()).finish()
    }
}

impl FrameAllocator {
    /// How many separate free ranges the allocator can track: enough for [`new`](Self::new)
    /// over any [`MemoryMap`] less up to [`ReservedRanges::CAPACITY`] ranges. Each free
    /// range starts where a usable region starts or where a region or range it must not
    /// hand out ends inside usable memory: a normalized map has at most
    /// [`MemoryMap::CAPACITY`] usable regions and no other region ends inside one, an
    /// unnormalized one at most `MemoryMap::CAPACITY` regions in all, and each reserved
    /// range adds at most one.
    pub const CAPACITY: usize = MemoryMap::CAPACITY + ReservedRanges::CAPACITY;

    /// An allocator with no memory.
    pub const fn empty() -> Self {
        Self {
            free: [Free { start: 0, end: 0 }; Self::CAPACITY],
            len: 0,
        }
    }

    /// Takes the usable regions of `map`, shrunk inward to frame boundaries, minus every
    /// non-usable region of the map and every `reserved` range (kernel image, boot modules,
    /// ACPI tables, page tables, low memory...), each widened outward to frame boundaries.
    ///
    /// The result is right for an unnormalized map too (overlaps are subtracted), but a
    /// normalized one is cheaper. Empty reserved ranges are ignored. Up to
    /// [`ReservedRanges::CAPACITY`] of them always fit ([`CAPACITY`](Self::CAPACITY)).
    pub fn new(map: &MemoryMap, reserved: &[Range<u64>]) -> Result<Self, AllocError> {
        let mut this = Self::empty();
        this.fill(map, reserved)?;
        Ok(this)
    }

    /// [`new`](Self::new), in place: the allocator is 10 KiB, so one in a `static` is
    /// filled without a copy on the stack. On an error it is left empty.
    pub fn fill(&mut self, map: &MemoryMap, reserved: &[Range<u64>]) -> Result<(), AllocError> {
        self.len = 0;
        if let Some(bad) = reserved.iter().find(|r| r.start > r.end) {
            return Err(AllocError::BadRange {
                start: bad.start,
                end: bad.end,
            });
        }
        for region in map.regions() {
            if region.kind != RegionKind::Usable {
                continue;
            }
            let Some(mut cursor) = align_up(region.start, FRAME_SIZE) else {
                continue;
            };
            let end = align_down(region.end, FRAME_SIZE);
            while cursor < end {
                let (past, next) = blockers_around(map, reserved, cursor);
                // Skip past every blocker covering the cursor, else the frames up to the
                // next blocker are free.
                if let Some(past) = past {
                    cursor = past;
                    continue;
                }
                let next = next.min(end);
                let inserted = self.insert(Free {
                    start: cursor,
                    end: next,
                });
                if inserted.is_err() {
                    self.len = 0;
                    return Err(AllocError::TooFragmented);
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Allocates `bytes` rounded up to whole frames, starting at a multiple of `align` (a power
    /// of two, at least [`FRAME_SIZE`]). Takes the lowest run that fits.
    pub fn allocate(&mut self, bytes: u64, align: u64) -> Result<FrameRange, AllocError> {
        self.allocate_below(bytes, align, u64::MAX)
    }

    /// [`allocate`](Self::allocate), from frames that end at or below `limit` (memory a
    /// smaller map reaches: the boot loader's page tables map only the first 4 GiB).
    pub fn allocate_below(
        &mut self,
        bytes: u64,
        align: u64,
        limit: u64,
    ) -> Result<FrameRange, AllocError> {
        if !align.is_power_of_two() || align < FRAME_SIZE {
            return Err(AllocError::BadAlignment);
        }
        if bytes == 0 {
            return Err(AllocError::ZeroSize);
        }
        let size = align_up(bytes, FRAME_SIZE).ok_or(AllocError::OutOfMemory {
            requested: u64::MAX,
        })?;
        let mut fragmented = false;
        for i in 0..self.len {
            let f = self.free[i];
            let Some(low) = align_up(f.start, align) else {
                continue;
            };
            match low.checked_add(size) {
                Some(low_end) if low_end <= f.end.min(limit) => {}
                _ => continue,
            }
            // The lowest fit leaves pieces on both sides: that needs one more free-list slot.
            // If there is none, the highest aligned fit may leave only a left piece.
            let start = if low > f.start && low + size < f.end && self.len == Self::CAPACITY {
                let high = align_down(f.end - size, align);
                if high + size != f.end || f.end > limit {
                    fragmented = true;
                    continue;
                }
                high
            } else {
                low
            };
            self.take(i, start, start + size);
            return Ok(FrameRange { start, len: size });
        }
        Err(if fragmented {
            AllocError::TooFragmented
        } else {
            AllocError::OutOfMemory { requested: size }
        })
    }

    /// [`allocate`](Self::allocate), refused ([`AllocError::OutOfMemory`]) if it would
    /// leave less than `reserve` bytes free: memory some other user (the kernel's heap)
    /// must still find, checked under the same hold of the allocator as the allocation.
    pub fn allocate_leaving(
        &mut self,
        bytes: u64,
        align: u64,
        reserve: u64,
    ) -> Result<FrameRange, AllocError> {
        let size = align_up(bytes, FRAME_SIZE).unwrap_or(u64::MAX);
        if self.free_bytes().saturating_sub(size) < reserve {
            return Err(AllocError::OutOfMemory { requested: size });
        }
        self.allocate(bytes, align)
    }

    /// Allocates `count` pages of `size`, naturally aligned (a 2 MiB page on a 2 MiB boundary).
    pub fn allocate_pages(&mut self, size: PageSize, count: u64) -> Result<FrameRange, AllocError> {
        if count == 0 {
            return Err(AllocError::ZeroSize);
        }
        let bytes = size
            .bytes()
            .checked_mul(count)
            .ok_or(AllocError::OutOfMemory {
                requested: u64::MAX,
            })?;
        self.allocate(bytes, size.bytes())
    }

    /// Gives frames back, merging them with free neighbours; hands them back if the free
    /// list is full and they touch no free range (to keep in a waiting list for
    /// [`free_waiting`](Self::free_waiting)).
    pub fn try_free(&mut self, frames: FrameRange) -> Result<(), FrameRange> {
        self.insert(Free {
            start: frames.start,
            end: frames.end(),
        })
        .map_err(|()| frames)
    }

    /// Gives back what the free list now has room for of `waiting`: frames that
    /// [`try_free`](Self::try_free) handed back, which the caller keeps so that none is
    /// lost. Each is tried once; those refused again stay in `waiting`. Allocates nothing
    /// (the vector never grows past its length on entry), so it may run where the frame
    /// allocator's lock is held by the caller.
    pub fn free_waiting(&mut self, waiting: &mut Vec<FrameRange>) {
        for _ in 0..waiting.len() {
            let frames = waiting.remove(0);
            if let Err(frames) = self.try_free(frames) {
                waiting.push(frames);
            }
        }
    }

    /// Bytes currently free.
    pub fn free_bytes(&self) -> u64 {
        self.free[..self.len].iter().map(|f| f.end - f.start).sum()
    }

    /// The free ranges, sorted by address.
    pub fn free_ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.free[..self.len].iter().map(|f| f.start..f.end)
    }

    /// Adds `new` to the free list, merging it with every range it overlaps or touches.
    fn insert(&mut self, new: Free) -> Result<(), ()> {
        let list = &self.free[..self.len];
        let lo = list.partition_point(|f| f.end < new.start);
        let hi = list.partition_point(|f| f.start <= new.end);
        if lo == hi {
            if self.len == Self::CAPACITY {
                return Err(());
            }
            self.free.copy_within(lo..self.len, lo + 1);
            self.free[lo] = new;
            self.len += 1;
        } else {
            self.free[lo] = Free {
                start: new.start.min(self.free[lo].start),
                end: new.end.max(self.free[hi - 1].end),
            };
            self.free.copy_within(hi..self.len, lo + 1);
            self.len -= hi - lo - 1;
        }
        Ok(())
    }

    /// Removes `[start, end)` from free range `i`, which contains it (and, if it leaves pieces
    /// on both sides, the list has a free slot).
    fn take(&mut self, i: usize, start: u64, end: u64) {
        let f = self.free[i];
        match (start > f.start, end < f.end) {
            (true, true) => {
                self.free.copy_within(i + 1..self.len, i + 2);
                self.free[i].end = start;
                self.free[i + 1] = Free {
                    start: end,
                    end: f.end,
                };
                self.len += 1;
            }
            (true, false) => self.free[i].end = start,
            (false, true) => self.free[i].start = end,
            (false, false) => {
                self.free.copy_within(i + 1..self.len, i);
                self.len -= 1;
            }
        }
    }
}

/// Everything [`FrameAllocator::new`] must not hand out (the map's non-usable regions and
/// the `reserved` ranges, each widened to whole frames; empty ones ignored), seen from
/// `cursor`: the furthest end of those covering it (`None` if none does), and the lowest
/// start above it (`u64::MAX` if none).
fn blockers_around(map: &MemoryMap, reserved: &[Range<u64>], cursor: u64) -> (Option<u64>, u64) {
    let mut past = None;
    let mut next = u64::MAX;
    let mut consider = |start: u64, end: u64| {
        if start >= end {
            return;
        }
        let start = align_down(start, FRAME_SIZE);
        let end = align_up(end, FRAME_SIZE).unwrap_or(u64::MAX);
        if start <= cursor && cursor < end {
            past = Some(past.map_or(end, |furthest: u64| furthest.max(end)));
        } else if start > cursor {
            next = next.min(start);
        }
    };
    for region in map.regions() {
        if region.kind != RegionKind::Usable {
            consider(region.start, region.end);
        }
    }
    for range in reserved {
        consider(range.start, range.end);
    }
    (past, next)
}

#[cfg(test)]
#[allow(
    clippy::single_range_in_vec_init,
    reason = "lists of reserved ranges that happen to hold one"
)]
mod tests {
    use super::*;
    use crate::Region;
    use RegionKind::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn map(regions: &[(u64, u64, RegionKind)]) -> MemoryMap {
        let mut map = MemoryMap::new();
        for &(start, end, kind) in regions {
            map.add(Region { start, end, kind }).unwrap();
        }
        map.normalize();
        map
    }

    fn ranges(a: &FrameAllocator) -> Vec<Range<u64>> {
        a.free_ranges().collect()
    }

    #[test]
    fn page_sizes() {
        assert_eq!(PageSize::Size4K.bytes(), FRAME_SIZE);
        assert_eq!(PageSize::Size2M.bytes(), 0x20_0000);
        assert_eq!(PageSize::Size1G.bytes(), 0x4000_0000);
    }

    #[test]
    fn allocating_leaving_a_reserve_stops_at_it_to_the_frame() {
        let mut a = FrameAllocator::new(&map(&[(0, 16 * MIB, Usable)]), &[]).unwrap();
        let reserve = 4 * MIB;
        let most = a
            .allocate_leaving(12 * MIB - FRAME_SIZE, FRAME_SIZE, reserve)
            .unwrap();
        assert_eq!(a.free_bytes(), reserve + FRAME_SIZE);
        // Two frames would fit, but not with the reserve left; one does, exactly.
        let past = a.allocate_leaving(8192, FRAME_SIZE, reserve);
        assert_eq!(past, Err(AllocError::OutOfMemory { requested: 8192 }));
        assert_eq!(
            a.free_bytes(),
            reserve + FRAME_SIZE,
            "a refusal takes nothing"
        );
        let last = a.allocate_leaving(1, FRAME_SIZE, reserve).unwrap();
        assert_eq!(a.free_bytes(), reserve);
        a.try_free(last).unwrap();
        a.try_free(most).unwrap();
        assert!(a.allocate_leaving(u64::MAX, FRAME_SIZE, 0).is_err());
    }

    #[test]
    fn empty_has_nothing() {
        let mut a = FrameAllocator::empty();
        assert_eq!(a.free_bytes(), 0);
        assert_eq!(
            a.allocate(1, FRAME_SIZE),
            Err(AllocError::OutOfMemory {
                requested: FRAME_SIZE
            })
        );
    }

    #[test]
    fn nothing_usable() {
        let m = map(&[(0, GIB, Reserved), (GIB, 2 * GIB, AcpiNvs)]);
        let mut a = FrameAllocator::new(&m, &[]).unwrap();
        assert_eq!(a.free_bytes(), 0);
        assert!(matches!(
            a.allocate_pages(PageSize::Size4K, 1),
            Err(AllocError::OutOfMemory { .. })
        ));
    }

    #[test]
    fn usable_shrinks_inward_and_reserved_widens_outward() {
        let m = map(&[(0x1234, 0x9_0fff, Usable)]);
        let a = FrameAllocator::new(&m, &[0x5001..0x6001]).unwrap();
        assert_eq!(ranges(&a), [0x2000..0x5000, 0x7000..0x9_0000]);
    }

    #[test]
    fn holes_reserved_and_map_overlaps_are_subtracted() {
        let m = map(&[
            (0, 0x9_f000, Usable),
            (0x9_f000, 0x10_0000, Reserved),
            (0x10_0000, 64 * MIB, Usable),
            (32 * MIB, 33 * MIB, AcpiReclaimable),
        ]);
        let reserved = [
            0..MIB,
            2 * MIB..4 * MIB,
            3 * MIB..5 * MIB,
            60 * MIB..60 * MIB,
        ];
        let a = FrameAllocator::new(&m, &reserved).unwrap();
        assert_eq!(
            ranges(&a),
            [MIB..2 * MIB, 5 * MIB..32 * MIB, 33 * MIB..64 * MIB]
        );
        assert_eq!(a.free_bytes(), MIB + 27 * MIB + 31 * MIB);
    }

    #[test]
    fn unnormalized_map_is_still_safe() {
        let mut m = MemoryMap::new();
        for (start, end, kind) in [
            (0, 16 * MIB, Usable),
            (4 * MIB, 8 * MIB, Reserved),
            (2 * MIB, 12 * MIB, Usable),
        ] {
            m.add(Region { start, end, kind }).unwrap();
        }
        let a = FrameAllocator::new(&m, &[]).unwrap();
        assert_eq!(ranges(&a), [0..4 * MIB, 8 * MIB..16 * MIB]);
    }

    #[test]
    fn inverted_reserved_range_is_an_error() {
        let m = map(&[(0, MIB, Usable)]);
        #[expect(clippy::reversed_empty_ranges, reason = "the bad input under test")]
        let bad = [0x3000..0x2000];
        let err = FrameAllocator::new(&m, &bad).unwrap_err();
        assert_eq!(
            err,
            AllocError::BadRange {
                start: 0x3000,
                end: 0x2000
            }
        );
        assert!(err.to_string().contains("0x3000..0x2000"));
    }

    #[test]
    fn regions_at_the_top_of_the_address_space() {
        let m = map(&[(u64::MAX - 0x10_0000, u64::MAX, Usable)]);
        let a = FrameAllocator::new(&m, &[u64::MAX - 0x1000..u64::MAX]).unwrap();
        let start = align_up(u64::MAX - 0x10_0000, FRAME_SIZE).unwrap();
        assert_eq!(
            ranges(&a),
            [start..align_down(u64::MAX - 0x1000, FRAME_SIZE)]
        );
    }

    #[test]
    fn bad_requests() {
        let m = map(&[(0, 16 * MIB, Usable)]);
        let mut a = FrameAllocator::new(&m, &[]).unwrap();
        assert_eq!(a.allocate(0, FRAME_SIZE), Err(AllocError::ZeroSize));
        assert_eq!(a.allocate(1, 0), Err(AllocError::BadAlignment));
        assert_eq!(a.allocate(1, 2048), Err(AllocError::BadAlignment));
        assert_eq!(a.allocate(1, 3 * FRAME_SIZE), Err(AllocError::BadAlignment));
        assert_eq!(
            a.allocate(u64::MAX, FRAME_SIZE),
            Err(AllocError::OutOfMemory {
                requested: u64::MAX
            })
        );
        assert_eq!(
            a.allocate_pages(PageSize::Size1G, u64::MAX),
            Err(AllocError::OutOfMemory {
                requested: u64::MAX
            })
        );
        assert_eq!(
            a.allocate_pages(PageSize::Size2M, 0),
            Err(AllocError::ZeroSize)
        );
        assert_eq!(
            a.allocate(17 * MIB, FRAME_SIZE),
            Err(AllocError::OutOfMemory {
                requested: 17 * MIB
            })
        );
        assert_eq!(a.free_bytes(), 16 * MIB);
        for err in [
            AllocError::ZeroSize,
            AllocError::BadAlignment,
            AllocError::TooFragmented,
            AllocError::OutOfMemory { requested: 5 },
        ] {
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn rounds_up_and_allocates_lowest_first() {
        let m = map(&[(0x1000, 16 * MIB, Usable)]);
        let mut a = FrameAllocator::new(&m, &[]).unwrap();
        let one = a.allocate(1, FRAME_SIZE).unwrap();
        assert_eq!(
            (one.start(), one.len(), one.end()),
            (0x1000, 0x1000, 0x2000)
        );
        let two = a.allocate(0x1001, FRAME_SIZE).unwrap();
        assert_eq!((two.start(), two.len()), (0x2000, 0x2000));
        assert_eq!(a.free_bytes(), 16 * MIB - 0x4000);
        a.try_free(one).unwrap();
        a.try_free(two).unwrap();
        assert_eq!(ranges(&a), [0x1000..16 * MIB]);
    }

    #[test]
    fn aligned_pages_above_4gib() {
        let m = map(&[
            (0, 640 * 1024, Usable),
            (MIB, 3 * GIB, Usable),
            (4 * GIB, 8 * GIB + 0x1000, Usable),
        ]);
        let mut a = FrameAllocator::new(&m, &[0..MIB]).unwrap();
        let total = a.free_bytes();
        let huge = a.allocate_pages(PageSize::Size1G, 3).unwrap();
        assert_eq!((huge.start(), huge.len()), (4 * GIB, 3 * GIB));
        let big = a.allocate_pages(PageSize::Size2M, 2).unwrap();
        assert_eq!((big.start(), big.len()), (2 * MIB, 4 * MIB));
        // The 1 MiB below the first 2 MiB boundary stays free.
        assert!(ranges(&a).contains(&(MIB..2 * MIB)));
        let small = a.allocate_pages(PageSize::Size4K, 1).unwrap();
        assert_eq!(small.start(), MIB);
        assert!(matches!(
            a.allocate_pages(PageSize::Size1G, 3),
            Err(AllocError::OutOfMemory { .. })
        ));
        a.try_free(huge).unwrap();
        a.try_free(big).unwrap();
        a.try_free(small).unwrap();
        assert_eq!(a.free_bytes(), total);
    }

    #[test]
    fn free_merges_with_both_neighbours() {
        let m = map(&[(0, MIB, Usable)]);
        let mut a = FrameAllocator::new(&m, &[]).unwrap();
        let x = a.allocate(0x1000, FRAME_SIZE).unwrap();
        let y = a.allocate(0x1000, FRAME_SIZE).unwrap();
        let z = a.allocate(0x1000, FRAME_SIZE).unwrap();
        a.try_free(x).unwrap();
        a.try_free(z).unwrap();
        assert_eq!(ranges(&a), [0..0x1000, 0x2000..MIB]);
        a.try_free(y).unwrap();
        assert_eq!(ranges(&a), [0..MIB]);
    }

    #[test]
    fn split_and_merge() {
        let m = map(&[(0, MIB, Usable)]);
        let mut a = FrameAllocator::new(&m, &[]).unwrap();
        let r = a.allocate(0x4000, FRAME_SIZE).unwrap();
        let r = r.split_at(0).unwrap_err();
        let r = r.split_at(0x4000).unwrap_err();
        let r = r.split_at(0x1800).unwrap_err();
        let (head, tail) = r.split_at(0x1000).unwrap();
        assert_eq!((head.start(), head.len()), (0, 0x1000));
        assert_eq!((tail.start(), tail.len()), (0x1000, 0x3000));
        let other = a.allocate(0x1000, FRAME_SIZE).unwrap();
        assert_eq!(other.start(), 0x4000);
        // Not contiguous: both come back.
        let (head, other) = head.merge(other).unwrap_err();
        // Either order works for contiguous ranges.
        let r = tail.merge(head).unwrap();
        assert_eq!((r.start(), r.len()), (0, 0x4000));
        let r = r.merge(other).unwrap();
        assert_eq!((r.start(), r.len()), (0, 0x5000));
        a.try_free(r).unwrap();
        assert_eq!(a.free_bytes(), MIB);
    }

    #[test]
    fn too_many_pieces_for_new() {
        // Each reserved 4 KiB at a MiB boundary splits the one usable region once more.
        let m = map(&[(0, GIB, Usable)]);
        let holes = |count: u64| -> Vec<Range<u64>> {
            (1..=count)
                .map(|i| i * 0x10_0000 - 0x1000..i * 0x10_0000)
                .collect()
        };
        let most = FrameAllocator::CAPACITY as u64 - 1;
        let full = FrameAllocator::new(&m, &holes(most)).unwrap();
        assert_eq!(full.free_ranges().count(), FrameAllocator::CAPACITY);
        assert!(matches!(
            FrameAllocator::new(&m, &holes(most + 1)),
            Err(AllocError::TooFragmented)
        ));
        let mut refilled = full;
        assert_eq!(
            refilled.fill(&m, &holes(most + 1)),
            Err(AllocError::TooFragmented)
        );
        assert_eq!(refilled.free_bytes(), 0, "left empty, not half filled");
    }

    #[test]
    fn a_full_map_less_every_reserved_range_fits() {
        // MemoryMap::CAPACITY usable regions apart from each other, the first
        // ReservedRanges::CAPACITY of them each split in two by a reserved frame.
        let usable = (0..MemoryMap::CAPACITY as u64).map(|i| Region {
            start: i * 0x4000,
            end: i * 0x4000 + 0x3000,
            kind: Usable,
        });
        let mut m = MemoryMap::new();
        m.fill(u64::MAX, usable).unwrap();
        assert_eq!(m.regions().len(), MemoryMap::CAPACITY);
        let mut reserved = ReservedRanges::new();
        for i in 0..ReservedRanges::CAPACITY as u64 {
            reserved.push(i * 0x4000 + 0x1000..i * 0x4000 + 0x2000);
        }
        assert_eq!(reserved.problem(), None);
        let a = FrameAllocator::new(&m, reserved.as_slice()).unwrap();
        assert_eq!(a.free_ranges().count(), FrameAllocator::CAPACITY);
        let frames = 3 * MemoryMap::CAPACITY - ReservedRanges::CAPACITY;
        assert_eq!(a.free_bytes(), frames as u64 * FRAME_SIZE);
    }

    #[test]
    fn allocating_below_a_limit_takes_only_frames_ending_under_it() {
        // Free RAM below 4 GiB nearly gone: 12 KiB just under it, the rest above.
        let m = map(&[(4 * GIB - 0x3000, 6 * GIB, Usable)]);
        let mut a = FrameAllocator::new(&m, &[]).unwrap();
        assert_eq!(
            a.allocate_below(0x4000, FRAME_SIZE, 4 * GIB),
            Err(AllocError::OutOfMemory { requested: 0x4000 })
        );
        let below: Vec<u64> = (0..3)
            .map(|_| {
                a.allocate_below(0x1000, FRAME_SIZE, 4 * GIB)
                    .unwrap()
                    .start()
            })
            .collect();
        assert_eq!(
            below,
            [4 * GIB - 0x3000, 4 * GIB - 0x2000, 4 * GIB - 0x1000]
        );
        assert_eq!(
            a.allocate_below(0x1000, FRAME_SIZE, 4 * GIB),
            Err(AllocError::OutOfMemory { requested: 0x1000 })
        );
        assert_eq!(a.allocate(0x1000, FRAME_SIZE).unwrap().start(), 4 * GIB);
    }

    #[test]
    fn full_free_list() {
        const SINGLES: u64 = FrameAllocator::CAPACITY as u64 - 1;
        // Past the single frames: the big range, with the 1 MiB boundary 0x50_0000 and the
        // 2 MiB one 0x60_0000 strictly inside it.
        const BIG: u64 = (2 * SINGLES + 1) * 0x1000;
        const TOP: u64 = 0x80_0000;
        const { assert!(BIG < 0x50_0000) };
        let m = map(&[(0, TOP, Usable)]);
        let mut a = FrameAllocator::new(&m, &[]).unwrap();
        // Keep the even frames below BIG and free the odd ones, and the last, which merges
        // with the rest up to TOP: CAPACITY - 1 single frames and one big range fill the list.
        let mut rest = a.allocate(TOP, FRAME_SIZE).unwrap();
        let mut held = Vec::new();
        for _ in 0..SINGLES {
            let (keep, tail) = rest.split_at(0x1000).unwrap();
            let (one, tail) = tail.split_at(0x1000).unwrap();
            held.push(keep);
            a.try_free(one).unwrap();
            rest = tail;
        }
        let (keep, tail) = rest.split_at(0x1000).unwrap();
        held.push(keep);
        a.try_free(tail).unwrap();
        assert_eq!(a.free_ranges().count(), FrameAllocator::CAPACITY);
        assert_eq!(a.free_ranges().last(), Some(BIG..TOP));
        // A 2 MiB-aligned frame would sit strictly inside the big range and split it.
        assert_eq!(
            a.allocate(0x1000, 0x20_0000),
            Err(AllocError::TooFragmented)
        );
        // ...unless the range's end is past a limit the fit must stay below.
        assert_eq!(
            a.allocate_below(0x10_0000, 0x10_0000, TOP - 0x1000),
            Err(AllocError::TooFragmented)
        );
        // A fit that ends at the range's end still works (the high placement).
        let high = a.allocate(0x10_0000, 0x10_0000).unwrap();
        assert_eq!(high.start(), TOP - 0x10_0000);
        // Taking a whole single frame frees a slot...
        let single = a.allocate(0x1000, FRAME_SIZE).unwrap();
        assert_eq!(single.start(), 0x1000);
        // ...which the split needs.
        let inside = a.allocate(0x1000, 0x20_0000).unwrap();
        assert_eq!(inside.start(), 0x60_0000);
        assert_eq!(a.free_ranges().count(), FrameAllocator::CAPACITY);
        // Frames that touch no free range cannot go into a full list: try_free hands them
        // back.
        let before = a.free_bytes();
        assert_eq!(a.try_free(single).map_err(|f| f.start()), Err(0x1000));
        assert_eq!(a.free_bytes(), before);
        // Frames next to a free range still merge.
        a.try_free(inside).unwrap();
        a.try_free(high).unwrap();
        assert_eq!(a.free_bytes(), before + 0x10_1000);
        assert_eq!(a.free_ranges().last(), Some(BIG..TOP));
        assert_eq!(held.len(), FrameAllocator::CAPACITY);
    }

    #[test]
    fn frames_a_full_free_list_refuses_wait_and_none_is_lost() {
        const GRANTS: usize = 2 * FrameAllocator::CAPACITY + 2;
        let m = map(&[(0, 0x80_0000, Usable)]);
        let mut a = FrameAllocator::new(&m, &[]).unwrap();
        let total = a.free_bytes();
        // An app takes 4 KiB grants and returns every other one: CAPACITY - 1 single-frame
        // ranges and the rest of memory fill the free list (the last return merges with
        // that rest).
        let grants: Vec<FrameRange> = (0..GRANTS)
            .map(|_| a.allocate(0x1000, FRAME_SIZE).unwrap())
            .collect();
        let (mut kept, mut waiting) = (Vec::new(), Vec::new());
        for (i, grant) in grants.into_iter().enumerate() {
            if i % 2 == 0 {
                kept.push(grant);
            } else if let Err(refused) = a.try_free(grant) {
                waiting.push(refused);
            }
        }
        assert_eq!(a.free_ranges().count(), FrameAllocator::CAPACITY);
        // A free of a separate range is refused: it waits, it is not lost.
        assert_eq!(waiting.len(), 1, "the CAPACITY-th single frame");
        let bytes = |list: &Vec<FrameRange>| list.iter().map(FrameRange::len).sum::<u64>();
        assert_eq!(a.free_bytes() + bytes(&waiting) + bytes(&kept), total);
        a.free_waiting(&mut waiting);
        assert_eq!(waiting.len(), 1, "the list is still full");
        // A grant between two free frames merges three ranges into one: room for it.
        a.try_free(kept.remove(1)).unwrap();
        a.free_waiting(&mut waiting);
        assert!(waiting.is_empty());
        for frames in kept.drain(..) {
            a.try_free(frames).map_err(|f| waiting.push(f)).ok();
            a.free_waiting(&mut waiting);
        }
        assert!(waiting.is_empty());
        assert_eq!(a.free_bytes(), total, "every frame came back");
        assert_eq!(a.free_ranges().count(), 1);
    }
}
