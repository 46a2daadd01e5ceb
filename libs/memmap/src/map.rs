//! The physical memory map: regions of RAM and what they may be used for.

use core::fmt;
use core::ops::Range;

use crate::{FRAME_SIZE, align_down, align_up};

/// What a region of physical memory may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Free RAM.
    Usable,
    /// Not to be touched (firmware, MMIO holes, ...).
    Reserved,
    /// ACPI tables; RAM again once the tables have been read.
    AcpiReclaimable,
    /// ACPI non-volatile storage: must be preserved across sleep states.
    AcpiNvs,
    /// Memory the firmware found defective.
    Bad,
}

impl RegionKind {
    /// How strict the kind is: where regions overlap, the stricter kind wins
    /// (`Bad > AcpiNvs > Reserved > AcpiReclaimable > Usable`).
    pub const fn strictness(self) -> u8 {
        match self {
            Self::Usable => 0,
            Self::AcpiReclaimable => 1,
            Self::Reserved => 2,
            Self::AcpiNvs => 3,
            Self::Bad => 4,
        }
    }

    /// Whether the kind is RAM: usable, or holding ACPI's tables or its non-volatile
    /// storage (cached like memory, where reserved and bad ranges are not).
    pub const fn is_ram(self) -> bool {
        matches!(self, Self::Usable | Self::AcpiReclaimable | Self::AcpiNvs)
    }
}

/// What a physical range holds ([`MemoryMap::contents`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contents {
    /// RAM throughout.
    Ram,
    /// No RAM at all (device space, reserved or bad ranges, or nothing in the map).
    NoRam,
    /// Some RAM and something else.
    Mixed,
}

/// Why a range cannot be a device's memory ([`MemoryMap::device_range`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotDevice {
    /// It starts in page 0, or ends past the limit (or past the top of the address space).
    OutOfReach,
    /// It holds RAM of some kind ([`RegionKind::is_ram`]).
    Ram,
}

/// Why a boot module's range cannot hold its bytes ([`MemoryMap::check_module`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAModule {
    /// Some of it is not RAM: a device hole (whose registers would be read as the
    /// module), reserved or bad memory, or nothing in the map.
    NotRam,
    /// It overlaps the kernel's image: one of the two was loaded over the other.
    OverKernel,
}

impl fmt::Display for NotAModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotRam => "not RAM by the memory map",
            Self::OverKernel => "overlaps the kernel image",
        })
    }
}

/// A range of physical addresses `[start, end)` of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte (exclusive).
    pub end: u64,
    /// What the range may be used for.
    pub kind: RegionKind,
}

impl Region {
    /// The region's size in bytes (0 if `end <= start`).
    pub const fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// Why [`MemoryMap::add`] refused a region, or [`MemoryMap::fill`] a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The map already holds [`MemoryMap::CAPACITY`] regions.
    Full,
    /// The region ends before it starts.
    Inverted,
    /// [`MemoryMap::fill`] was given more regions than it holds: those before the one
    /// refused, normalized, still numbered [`MemoryMap::CAPACITY`] or more.
    TooManyRegions {
        /// How many it was given (empty ones and those past the limit not counted).
        given: usize,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => write!(
                f,
                "memory map full ({} regions); normalize it or drop entries",
                MemoryMap::CAPACITY
            ),
            Self::Inverted => f.write_str("memory map region ends before it starts"),
            Self::TooManyRegions { given } => write!(
                f,
                "{given} memory map regions, too many for the {} held once overlaps and neighbours merge",
                MemoryMap::CAPACITY
            ),
        }
    }
}

impl core::error::Error for MapError {}

/// Room for the normalized form of a full map: resolving overlaps of `n` regions yields at
/// most `2n` regions at every step of [`MemoryMap::normalize`] (see there).
const STORAGE: usize = 2 * MemoryMap::CAPACITY;

/// The placeholder in unused slots.
const EMPTY: Region = Region {
    start: 0,
    end: 0,
    kind: RegionKind::Usable,
};

/// What [`MemoryMap::tally`] adds up in one pass over the regions.
struct Tally {
    /// Bytes of usable memory.
    usable: u64,
    /// Bytes of RAM inside the range asked about.
    ram_in_range: u64,
    /// The end of the highest RAM region (0 without RAM).
    ram_top: u64,
}

/// The physical memory map, in a fixed array (no heap).
///
/// Fill it with [`add`](Self::add) in any order, then call [`normalize`](Self::normalize);
/// [`usable_bytes`](Self::usable_bytes) and the frame allocator expect a normalized map.
#[derive(Clone)]
pub struct MemoryMap {
    regions: [Region; STORAGE],
    len: usize,
    /// Where physical addresses end ([`below`](Self::below)): regions are cut there.
    limit: u64,
    /// Whether [`add`](Self::add) cut a region at the limit.
    cut: bool,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.regions()).finish()
    }
}

impl MemoryMap {
    /// How many regions [`add`](Self::add) accepts: real UEFI firmware hands over 100 to
    /// 300 descriptors, fragmented by boot and runtime services, ACPI and MMIO ranges.
    pub const CAPACITY: usize = 512;

    /// An empty map.
    pub const fn new() -> Self {
        Self::below(u64::MAX)
    }

    /// An empty map of a machine whose physical addresses end at `limit` (the CPU's
    /// address width): [`add`](Self::add) cuts what a loader reports past it, memory
    /// that cannot be there, and [`was_cut`](Self::was_cut) says so.
    pub const fn below(limit: u64) -> Self {
        Self {
            regions: [EMPTY; STORAGE],
            len: 0,
            limit,
            cut: false,
        }
    }

    /// Whether [`add`](Self::add) cut a region at the limit of [`below`](Self::below).
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// Adds a region as the firmware reported it (any order, overlaps allowed), cut at
    /// the map's limit ([`below`](Self::below)). Zero-length regions are ignored.
    pub fn add(&mut self, mut region: Region) -> Result<(), MapError> {
        if region.end < region.start {
            return Err(MapError::Inverted);
        }
        if region.end > self.limit {
            self.cut = true;
            region.end = self.limit.max(region.start);
        }
        if region.end == region.start {
            return Ok(());
        }
        // Normalizing can leave more than CAPACITY regions (overlaps split entries), hence >=.
        if self.len >= Self::CAPACITY {
            return Err(MapError::Full);
        }
        self.regions[self.len] = region;
        self.len += 1;
        Ok(())
    }

    /// Empties the map, then takes `regions` below `limit` as [`below`](Self::below) and
    /// [`add`](Self::add) would, and normalizes it; in place, so that a map in a `static`
    /// is filled without a copy on the stack (its storage is 24 KiB). Whenever the map
    /// fills it is normalized and the filling goes on, so duplicate, overlapping and
    /// touching regions of one kind count once. A map is refused whole
    /// ([`MapError::TooManyRegions`], counting every region given) if the regions so far,
    /// normalized, still number [`CAPACITY`](Self::CAPACITY) with more to come; never cut
    /// short: a region left out could be a reserved range inside RAM. The cost: one
    /// normalization at the end for a map of at most `CAPACITY` regions given (nothing to
    /// do for one already sorted, disjoint and merged); past that, one each time the map
    /// fills, at worst one per region past `CAPACITY` (a map that normalizes to nearly
    /// `CAPACITY` fills again at the next region), each up to O(`CAPACITY`²).
    pub fn fill(
        &mut self,
        limit: u64,
        regions: impl IntoIterator<Item = Region>,
    ) -> Result<(), MapError> {
        (self.len, self.limit, self.cut) = (0, limit, false);
        let counted = |r: &Region| r.end.min(limit) > r.start;
        let mut taken = 0;
        let mut regions = regions.into_iter();
        for region in regions.by_ref() {
            if self.len >= Self::CAPACITY {
                self.normalize();
            }
            match self.add(region) {
                Ok(()) => taken += usize::from(counted(&region)),
                Err(MapError::Full) => {
                    let given = taken + 1 + regions.filter(counted).count();
                    return Err(MapError::TooManyRegions { given });
                }
                Err(error) => return Err(error),
            }
        }
        self.normalize();
        Ok(())
    }

    /// Sorts the regions by address, resolves overlaps (the stricter kind wins, see
    /// [`RegionKind::strictness`]) and merges adjacent regions of the same kind.
    ///
    /// The regions are painted onto an initially empty, sorted, disjoint list in rising
    /// strictness, so that each painted region wins over whatever it covers. Painting one
    /// region adds at most two entries (it may split one) while taking one from the pending
    /// list, so `n` regions never need more than `2n` slots. `add` stops at `CAPACITY`
    /// regions unless the map is already disjoint (painting disjoint regions never splits),
    /// so the storage of `2 * CAPACITY` slots always suffices. A map that is already sorted,
    /// disjoint and merged (as firmware maps often are) is left as it is.
    pub fn normalize(&mut self) {
        if self.is_normalized() {
            return;
        }
        let n = self.len;
        // Stable insertion sort of the pending regions by strictness (n <= 2 * CAPACITY).
        for i in 1..n {
            let mut j = i;
            while j > 0 && self.regions[j - 1].kind.strictness() > self.regions[j].kind.strictness()
            {
                self.regions.swap(j - 1, j);
                j -= 1;
            }
        }
        // Pending regions live at the top of the storage, the result grows from the bottom.
        let mut pending = STORAGE - n;
        self.regions.copy_within(0..n, pending);
        let mut len = 0;
        while pending < STORAGE {
            let region = self.regions[pending];
            pending += 1;
            len = self.paint(len, pending, region);
        }
        self.regions[len..].fill(EMPTY);
        self.len = len;
    }

    /// Whether the regions are already sorted, disjoint and merged (as firmware maps
    /// often are): then [`normalize`](Self::normalize) has nothing to do.
    fn is_normalized(&self) -> bool {
        self.regions().windows(2).all(|pair| {
            pair[0].end < pair[1].start
                || (pair[0].end == pair[1].start && pair[0].kind != pair[1].kind)
        })
    }

    /// Paints `p` over the sorted, disjoint, merged list `regions[..len]`, whose kinds are all
    /// at most as strict as `p`'s. Slots up to `limit` are free to use. Returns the new length.
    fn paint(&mut self, len: usize, limit: usize, mut p: Region) -> usize {
        let list = &self.regions[..len];
        // Entries [lo, hi) overlap or touch `p`; all others are apart from it.
        let lo = list.partition_point(|e| e.end < p.start);
        let hi = list.partition_point(|e| e.start <= p.end);
        let mut left = None;
        let mut right = None;
        for e in &list[lo..hi] {
            if e.kind == p.kind {
                p.start = p.start.min(e.start);
                p.end = p.end.max(e.end);
            } else {
                // Only the first entry can stick out on the left, only the last on the right.
                if e.start < p.start {
                    left = Some(Region { end: p.start, ..*e });
                }
                if e.end > p.end {
                    right = Some(Region { start: p.end, ..*e });
                }
            }
        }
        let pieces = [left, Some(p), right];
        let count = pieces.iter().flatten().count();
        let new_len = len - (hi - lo) + count;
        debug_assert!(new_len <= limit, "normalize ran out of room");
        self.regions.copy_within(hi..len, lo + count);
        for (slot, piece) in self.regions[lo..].iter_mut().zip(pieces.iter().flatten()) {
            *slot = *piece;
        }
        new_len
    }

    /// The regions: as added, or sorted and disjoint after [`normalize`](Self::normalize).
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    /// Bytes of [`RegionKind::Usable`] memory (exact only for a normalized map: overlapping
    /// entries of an unnormalized one are counted twice, and the sum stops at `u64::MAX`).
    pub fn usable_bytes(&self) -> u64 {
        self.tally(0..0).usable
    }

    /// Whether `range` holds RAM throughout ([`RegionKind::is_ram`]), none, or a mix
    /// (exact for a normalized map).
    pub fn contents(&self, range: Range<u64>) -> Contents {
        let ram_bytes = self.tally(range.clone()).ram_in_range;
        match ram_bytes {
            0 => Contents::NoRam,
            n if n == range.end.saturating_sub(range.start) => Contents::Ram,
            _ => Contents::Mixed,
        }
    }

    /// The runs of whole frames in `range` that hold no RAM ([`RegionKind::is_ram`]; a frame
    /// partly RAM counts as RAM), in order, for
    /// [`frames_holding_ram`](Self::frames_holding_ram). Exact for a normalized map only:
    /// RAM regions out of order would leave RAM frames in a run.
    fn frames_without_ram(&self, range: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let mut ram = (self.regions().iter())
            .filter(move |r| r.kind.is_ram() && r.start < range.end && r.end > range.start)
            .map(|r| r.start..r.end);
        let mut from = range.start;
        core::iter::from_fn(move || {
            while from < range.end {
                let next_ram = ram.next().unwrap_or(range.end..range.end);
                let gap = align_up(from, FRAME_SIZE).unwrap_or(u64::MAX)
                    ..align_down(next_ram.start.min(range.end), FRAME_SIZE);
                from = from.max(next_ram.end);
                if gap.start < gap.end {
                    return Some(gap);
                }
            }
            None
        })
    }

    /// Each frame of `range` (its start a frame's) and whether it holds RAM
    /// ([`RegionKind::is_ram`]; a frame partly RAM holds RAM), exact for a normalized map:
    /// which 4 KiB pages of a range [`contents`](Self::contents) finds [`Contents::Mixed`]
    /// are device space, to be mapped uncached beside its RAM.
    pub fn frames_holding_ram(&self, range: Range<u64>) -> impl Iterator<Item = (u64, bool)> + '_ {
        let mut without = self.frames_without_ram(range.clone()).peekable();
        (range.step_by(FRAME_SIZE as usize)).map(move |frame| {
            while without.next_if(|run| run.end <= frame).is_some() {}
            (
                frame,
                !without.peek().is_some_and(|run| run.contains(&frame)),
            )
        })
    }

    /// The `len` bytes at `start`, if they may be a device's memory (a window or a
    /// register): past page 0, ending at or below `limit` without wrapping past the top of
    /// the address space, and holding no RAM of any kind ([`RegionKind::is_ram`]: ACPI
    /// tables and NVS too, which the kernel's parsers still read).
    pub fn device_range(&self, start: u64, len: u64, limit: u64) -> Result<Range<u64>, NotDevice> {
        let end = start.checked_add(len).filter(|&end| end <= limit);
        let range = end
            .filter(|_| start >= FRAME_SIZE)
            .map(|end| start..end)
            .ok_or(NotDevice::OutOfReach)?;
        match self.contents(range.clone()) {
            Contents::NoRam => Ok(range),
            Contents::Ram | Contents::Mixed => Err(NotDevice::Ram),
        }
    }

    /// Whether the boot module at `module` may be read as its bytes: RAM throughout
    /// ([`RegionKind::is_ram`]; exact for a normalized map) and clear of `kernel`, the
    /// kernel's image. An empty module has no bytes anywhere and always may.
    pub fn check_module(&self, module: Range<u64>, kernel: Range<u64>) -> Result<(), NotAModule> {
        if module.is_empty() {
            Ok(())
        } else if module.start < kernel.end && kernel.start < module.end {
            Err(NotAModule::OverKernel)
        } else if self.contents(module) != Contents::Ram {
            Err(NotAModule::NotRam)
        } else {
            Ok(())
        }
    }

    /// The end of the highest RAM region ([`RegionKind::is_ram`]; 0 without RAM).
    pub fn ram_top(&self) -> u64 {
        self.tally(0..0).ram_top
    }

    /// One pass over the regions for [`usable_bytes`](Self::usable_bytes),
    /// [`contents`](Self::contents) and [`ram_top`](Self::ram_top): one out-of-line
    /// function that the boot runs (and QEMU translates) once for all three.
    #[inline(never)]
    fn tally(&self, range: Range<u64>) -> Tally {
        let mut tally = Tally {
            usable: 0,
            ram_in_range: 0,
            ram_top: 0,
        };
        for region in self.regions() {
            if region.kind == RegionKind::Usable {
                tally.usable = tally.usable.saturating_add(region.size());
            }
            if region.kind.is_ram() {
                let in_range = region
                    .end
                    .min(range.end)
                    .saturating_sub(region.start.max(range.start));
                tally.ram_in_range = tally.ram_in_range.saturating_add(in_range);
                tally.ram_top = tally.ram_top.max(region.end);
            }
        }
        tally
    }

    /// The end of the highest region of any kind (0 for an empty map).
    pub fn highest_address(&self) -> u64 {
        self.regions().iter().map(|r| r.end).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegionKind::*;

    const fn r(start: u64, end: u64, kind: RegionKind) -> Region {
        Region { start, end, kind }
    }

    fn map(regions: &[Region]) -> MemoryMap {
        let mut map = MemoryMap::new();
        for region in regions {
            map.add(*region).unwrap();
        }
        map.normalize();
        map
    }

    #[test]
    fn memory_past_the_address_width_is_cut_and_said_to_be() {
        let limit = 1 << 39;
        let mut m = MemoryMap::below(limit);
        m.add(r(0, 0x9_F000, Usable)).unwrap();
        assert!(!m.was_cut());
        // One region across the limit, one past it, one ending near 2^64.
        m.add(r(limit - 0x20_0000, limit + 0x20_0000, Usable))
            .unwrap();
        m.add(r(limit, limit + 4096, Reserved)).unwrap();
        m.add(r(u64::MAX - 0x1000, u64::MAX, Usable)).unwrap();
        m.normalize();
        assert!(m.was_cut());
        assert_eq!(
            m.regions(),
            [r(0, 0x9_F000, Usable), r(limit - 0x20_0000, limit, Usable)]
        );
        assert_eq!(m.ram_top(), limit);
        assert!(
            !map(&[r(0, u64::MAX, Usable)]).was_cut(),
            "no limit: nothing cut"
        );
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn frames_without_ram_are_the_device_space_beside_ram() {
        const MIB2: u64 = 2 << 20;
        // The first 2 MiB of a PC: RAM to 0x9FC00, the EBDA reserved, the VGA window
        // unlisted, the BIOS reserved, RAM again from 1 MiB.
        let pc = map(&[
            r(0, 0x9_FC00, Usable),
            r(0x9_FC00, 0xA_0000, Reserved),
            r(0xF_0000, 0x10_0000, Reserved),
            r(0x10_0000, 0x800_0000, Usable),
        ]);
        assert_eq!(pc.contents(0..MIB2), Contents::Mixed);
        let mut without = pc.frames_without_ram(0..MIB2);
        let first = without.next();
        assert_eq!(
            first,
            Some(0xA_0000..0x10_0000),
            "the frame partly RAM is RAM"
        );
        assert_eq!(without.next(), None);
        assert_eq!(pc.frames_without_ram(MIB2..2 * MIB2).count(), 0, "all RAM");
        // Device space before, between and after RAM of every kind, and an ACPI region
        // touching usable RAM: no gap there.
        let mixed = map(&[
            r(0x1_0000, 0x2_0000, Usable),
            r(0x2_0000, 0x3_0000, AcpiReclaimable),
            r(0x4_0800, 0x5_0000, AcpiNvs),
            r(0x5_0000, 0x6_0000, Bad),
            r(0x8_0000, 0x8_1000, Usable),
        ]);
        let without: Vec<_> = mixed.frames_without_ram(0..MIB2).collect();
        assert_eq!(
            without,
            [
                0..0x1_0000,
                0x3_0000..0x4_0000,
                0x5_0000..0x8_0000,
                0x8_1000..MIB2
            ]
        );
        // Only inside the range asked about, RAM reaching into it from either side.
        let without: Vec<_> = mixed.frames_without_ram(0x1_8000..0x8_0800).collect();
        assert_eq!(without, [0x3_0000..0x4_0000, 0x5_0000..0x8_0000]);
        let holding: Vec<_> = mixed.frames_holding_ram(0x2_F000..0x4_2000).collect();
        let ram = |frame: u64| !(0x3_0000..0x4_0000).contains(&frame);
        let expected: Vec<_> = (0x2_F000..0x4_2000)
            .step_by(0x1000)
            .map(|f| (f, ram(f)))
            .collect();
        assert_eq!(holding, expected);
        let empty = MemoryMap::new();
        let without: Vec<_> = empty.frames_without_ram(0..0x2000).collect();
        assert_eq!(without, vec![0..0x2000], "nothing is RAM");
    }

    #[test]
    fn add_rejects_inverted_and_ignores_empty() {
        let mut map = MemoryMap::new();
        assert_eq!(map.add(r(10, 5, Usable)), Err(MapError::Inverted));
        assert_eq!(map.add(r(7, 7, Reserved)), Ok(()));
        assert!(map.regions().is_empty());
        assert_eq!(map.highest_address(), 0);
        assert_eq!(map.usable_bytes(), 0);
    }

    #[test]
    fn add_stops_at_capacity() {
        let mut map = MemoryMap::new();
        for i in 0..MemoryMap::CAPACITY as u64 {
            map.add(r(i * 0x2000, i * 0x2000 + 0x1000, Usable)).unwrap();
        }
        assert_eq!(
            map.add(r(1 << 40, (1 << 40) + 1, Usable)),
            Err(MapError::Full)
        );
        assert_eq!(map.regions().len(), MemoryMap::CAPACITY);
        assert!(MapError::Full.to_string().contains("512"));
    }

    /// `count` contiguous regions from 1 MiB alternating usable (1 to 7 pages) and
    /// reserved or ACPI (one page), as fragmented firmware maps are.
    fn fragmented(count: u64) -> Vec<Region> {
        let mut start = 0x10_0000;
        let kinds = [Usable, Reserved, Usable, AcpiReclaimable, Usable, AcpiNvs];
        (0..count)
            .map(|i| {
                let len = if i % 2 == 0 {
                    (i * 5 % 7 + 1) * 0x1000
                } else {
                    0x1000
                };
                start += len;
                r(start - len, start, kinds[i as usize % kinds.len()])
            })
            .collect()
    }

    #[test]
    fn a_fragmented_map_of_400_regions_is_kept_whole() {
        let given = fragmented(400);
        let mut map = MemoryMap::new();
        map.add(r(0, 0x1000, Bad)).unwrap();
        map.fill(1 << 40, given.iter().copied()).unwrap();
        assert_eq!(
            map.regions(),
            given,
            "every region, the earlier content gone"
        );
        let usable = given.iter().filter(|r| r.kind == Usable).map(Region::size);
        assert_eq!(map.usable_bytes(), usable.sum::<u64>());
    }

    #[test]
    fn a_map_of_more_regions_than_it_holds_is_refused_whole_naming_them() {
        let mut map = MemoryMap::new();
        let mut given = fragmented(MemoryMap::CAPACITY as u64 + 10);
        // Neither an empty region nor one past the limit counts.
        given.push(r(1 << 41, 1 << 41, Usable));
        given.push(r(1 << 40, 1 << 41, Usable));
        let refused = map.fill(1 << 40, given);
        let error = MapError::TooManyRegions {
            given: MemoryMap::CAPACITY + 10,
        };
        assert_eq!(refused, Err(error));
        assert_eq!(
            error.to_string(),
            "522 memory map regions, too many for the 512 held once overlaps and neighbours merge"
        );
        assert_eq!(map.fill(1 << 40, fragmented(3)), Ok(()), "and filled again");
        assert_eq!(map.regions(), fragmented(3));
    }

    #[test]
    fn a_map_of_many_duplicate_and_overlapping_regions_counts_them_once() {
        // 1,000 loader entries: low RAM, the BIOS and high RAM, each given in overlapping
        // and repeated pieces.
        let given = (0..1000u64).map(|i| match i % 3 {
            0 => r((i % 8) * 0x1000, 0x9_F000 - (i % 5) * 0x1000, Usable),
            1 => r(0xF_0000 + (i % 16) * 0x1000, 0x10_0000, Reserved),
            _ => r(0x10_0000 + (i % 7) * 0x10_0000, 0x800_0000, Usable),
        });
        let mut map = MemoryMap::new();
        map.fill(1 << 40, given).unwrap();
        assert_eq!(
            map.regions(),
            [
                r(0, 0x9_F000, Usable),
                r(0xF_0000, 0x10_0000, Reserved),
                r(0x10_0000, 0x800_0000, Usable),
            ]
        );
        // A map nearly full of distinct regions, then each of them again.
        let distinct = fragmented(MemoryMap::CAPACITY as u64 - 8);
        let twice = distinct.iter().chain(&distinct).copied();
        map.fill(1 << 40, twice).unwrap();
        assert_eq!(map.regions(), distinct);
    }

    #[test]
    fn unsorted_input_is_sorted_and_holes_stay() {
        let map = map(&[
            r(0x10_0000, 0x800_0000, Usable),
            r(0, 0x9_f000, Usable),
            r(0xf_0000, 0x10_0000, Reserved),
        ]);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x9_f000, Usable),
                r(0xf_0000, 0x10_0000, Reserved),
                r(0x10_0000, 0x800_0000, Usable),
            ]
        );
        assert_eq!(map.usable_bytes(), 0x9_f000 + 0x800_0000 - 0x10_0000);
        assert_eq!(map.highest_address(), 0x800_0000);
    }

    #[test]
    fn adjacent_and_overlapping_same_kind_merge() {
        let map = map(&[
            r(0x3000, 0x5000, Usable),
            r(0, 0x1000, Usable),
            r(0x1000, 0x3000, Usable),
            r(0x4000, 0x9000, Usable),
        ]);
        assert_eq!(map.regions(), &[r(0, 0x9000, Usable)]);
    }

    #[test]
    fn sorted_input_is_still_merged_and_resolved() {
        // Already in order: touching entries of one kind merge, overlapping ones are resolved.
        let touching = map(&[r(0, 0x1000, Usable), r(0x1000, 0x2000, Usable)]);
        assert_eq!(touching.regions(), &[r(0, 0x2000, Usable)]);
        let overlapping = map(&[r(0, 0x2000, Usable), r(0x1000, 0x3000, Reserved)]);
        assert_eq!(
            overlapping.regions(),
            &[r(0, 0x1000, Usable), r(0x1000, 0x3000, Reserved)]
        );
        // Sorted, disjoint and merged: it stays as it is.
        let normal = [
            r(0, 0x1000, Usable),
            r(0x1000, 0x2000, Reserved),
            r(0x3000, 0x4000, Reserved),
        ];
        assert_eq!(map(&normal).regions(), &normal);
    }

    #[test]
    fn stricter_kind_wins_inside() {
        // A reserved hole inside RAM splits it.
        let map = map(&[r(0, 0x10000, Usable), r(0x4000, 0x5000, Reserved)]);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x4000, Usable),
                r(0x4000, 0x5000, Reserved),
                r(0x5000, 0x10000, Usable),
            ]
        );
        assert_eq!(map.usable_bytes(), 0xf000);
    }

    #[test]
    fn strictness_order_on_overlaps() {
        // Each stricter region overlaps the previous one's upper part.
        let map = map(&[
            r(0, 100, Usable),
            r(50, 150, AcpiReclaimable),
            r(100, 200, Reserved),
            r(150, 250, AcpiNvs),
            r(200, 300, Bad),
            // Weaker kinds covering everything lose everywhere except where alone.
            r(0, 400, AcpiReclaimable),
            r(0, 300, Usable),
        ]);
        assert_eq!(
            map.regions(),
            &[
                r(0, 100, AcpiReclaimable),
                r(100, 150, Reserved),
                r(150, 200, AcpiNvs),
                r(200, 300, Bad),
                r(300, 400, AcpiReclaimable),
            ]
        );
        assert_eq!(map.usable_bytes(), 0);
    }

    #[test]
    fn weaker_inside_stricter_vanishes() {
        let map = map(&[r(0x1000, 0x2000, Usable), r(0, 0x10000, Bad)]);
        assert_eq!(map.regions(), &[r(0, 0x10000, Bad)]);
    }

    #[test]
    fn above_4gib() {
        let map = map(&[
            r(4 * GIB, 64 * GIB, Usable),
            r(0, GIB, Usable),
            r(3 * GIB, 4 * GIB, Reserved),
        ]);
        assert_eq!(map.usable_bytes(), 61 * GIB);
        assert_eq!(map.highest_address(), 64 * GIB);
        assert_eq!(map.regions().len(), 3);
    }

    #[test]
    fn normalize_full_map_of_nested_overlaps_and_again() {
        // CAPACITY / 2 large usable regions each with a reserved hole inside: CAPACITY
        // inputs whose normalized form has 3 entries for each (more than CAPACITY).
        const HALF: u64 = MemoryMap::CAPACITY as u64 / 2;
        let mut map = MemoryMap::new();
        for i in 0..HALF {
            let base = i * 0x10_0000;
            map.add(r(base + 0x1000, base + 0x3000, Reserved)).unwrap();
            map.add(r(base, base + 0x8_0000, Usable)).unwrap();
        }
        map.normalize();
        assert_eq!(map.regions().len(), 3 * HALF as usize);
        assert_eq!(
            map.add(r(1 << 40, (1 << 40) + 1, Usable)),
            Err(MapError::Full)
        );
        let before = map.clone();
        map.normalize();
        assert_eq!(map.regions(), before.regions());
        assert_eq!(map.usable_bytes(), HALF * (0x8_0000 - 0x2000));
    }

    #[test]
    fn normalize_worst_case_single_usable_with_many_holes() {
        // One usable region plus CAPACITY - 1 disjoint reserved holes inside it: twice
        // CAPACITY less one output regions.
        const HOLES: u64 = MemoryMap::CAPACITY as u64 - 1;
        let mut map = MemoryMap::new();
        map.add(r(0, 1 << 30, Usable)).unwrap();
        for i in 0..HOLES {
            map.add(r(
                0x10_0000 * (i + 1),
                0x10_0000 * (i + 1) + 0x1000,
                Reserved,
            ))
            .unwrap();
        }
        map.normalize();
        assert_eq!(map.regions().len(), 2 * HOLES as usize + 1);
        assert_eq!(map.usable_bytes(), (1 << 30) - HOLES * 0x1000);
    }

    #[test]
    fn an_unnormalized_map_counts_overlaps_twice() {
        let mut map = MemoryMap::new();
        map.add(r(0, 0x3000, Usable)).unwrap();
        map.add(r(0x1000, 0x2000, Usable)).unwrap();
        map.add(r(0x2000, 0x9000, AcpiNvs)).unwrap();
        assert_eq!(map.usable_bytes(), 0x4000);
        assert_eq!(map.ram_top(), 0x9000);
    }

    #[test]
    fn an_unnormalized_map_of_whole_address_spaces_tallies_without_overflow() {
        let mut map = MemoryMap::new();
        map.add(r(0, u64::MAX, Usable)).unwrap();
        map.add(r(1, u64::MAX, Usable)).unwrap();
        assert_eq!(map.usable_bytes(), u64::MAX);
        assert_eq!(map.contents(0..u64::MAX), Contents::Ram);
        assert_eq!(map.ram_top(), u64::MAX);
    }

    #[test]
    fn debug_lists_regions() {
        let map = map(&[r(0, 0x1000, Usable)]);
        let text = format!("{map:?}");
        assert!(text.contains("Usable"), "{text}");
        assert_eq!(text.matches("Region").count(), 1);
    }

    #[test]
    fn contents_tells_ram_from_the_rest_and_ram_top_ignores_the_rest() {
        // RAM below 3 GiB, a device hole to 4 GiB, firmware at its top, ACPI data in RAM.
        let map = map(&[
            r(0, 0x9_F000, Usable),
            r(0x10_0000, 3 * GIB - 0x10_0000, Usable),
            r(3 * GIB - 0x10_0000, 3 * GIB - 0x8_0000, AcpiReclaimable),
            r(3 * GIB - 0x8_0000, 3 * GIB, AcpiNvs),
            r(4 * GIB - 0x4_0000, 4 * GIB, Reserved),
            r(4 * GIB, 5 * GIB, Bad),
        ]);
        assert_eq!(map.contents(GIB..2 * GIB), Contents::Ram);
        assert_eq!(
            map.contents(2 * GIB..3 * GIB),
            Contents::Ram,
            "ACPI ranges are RAM"
        );
        assert_eq!(
            map.contents(3 * GIB..4 * GIB),
            Contents::NoRam,
            "reserved is not RAM"
        );
        assert_eq!(
            map.contents(4 * GIB..5 * GIB),
            Contents::NoRam,
            "bad is not RAM"
        );
        assert_eq!(
            map.contents(0..0x20_0000),
            Contents::Mixed,
            "the hole below 1 MiB"
        );
        assert_eq!(
            map.contents(3 * GIB - 0x20_0000..3 * GIB + 1),
            Contents::Mixed
        );
        assert_eq!(map.contents(7..7), Contents::NoRam);
        assert_eq!(map.ram_top(), 3 * GIB);
        assert_eq!(map.highest_address(), 5 * GIB);
        assert_eq!(MemoryMap::new().ram_top(), 0);
    }

    #[test]
    fn a_device_range_holds_no_ram_of_any_kind_and_never_wraps() {
        let map = map(&[
            r(0x10_0000, 3 * GIB - 0x10_0000, Usable),
            r(3 * GIB - 0x10_0000, 3 * GIB - 0x8_0000, AcpiReclaimable),
            r(3 * GIB - 0x8_0000, 3 * GIB, AcpiNvs),
            r(4 * GIB - 0x4_0000, 4 * GIB, Reserved),
        ]);
        let top = u64::MAX;
        assert_eq!(
            map.device_range(0xFEB8_0000, 0x2_0000, top),
            Ok(0xFEB8_0000..0xFEBA_0000)
        );
        assert_eq!(
            map.device_range(4 * GIB - 8, 8, top),
            Ok(4 * GIB - 8..4 * GIB)
        );
        // ACPI tables and NVS are RAM the parsers read: no BAR or FADT register there.
        let acpi_table = 3 * GIB - 0x10_0000;
        assert_eq!(map.device_range(acpi_table, 8, top), Err(NotDevice::Ram));
        assert_eq!(map.device_range(3 * GIB - 8, 8, top), Err(NotDevice::Ram));
        assert_eq!(
            map.device_range(3 * GIB - 8, 16, top),
            Err(NotDevice::Ram),
            "a mix"
        );
        assert_eq!(map.device_range(GIB, 1, top), Err(NotDevice::Ram));
        // A corrupt FADT reset register at the top of the address space wraps: refused.
        assert_eq!(
            map.device_range(u64::MAX, 1, top),
            Err(NotDevice::OutOfReach)
        );
        assert_eq!(
            map.device_range(u64::MAX - 7, 8, top),
            Err(NotDevice::OutOfReach)
        );
        assert_eq!(
            map.device_range(4 * GIB, 8, 4 * GIB),
            Err(NotDevice::OutOfReach)
        );
        assert_eq!(
            map.device_range(8, 8, top),
            Err(NotDevice::OutOfReach),
            "page 0"
        );
    }

    #[test]
    fn a_boot_module_is_ram_throughout_and_clear_of_the_kernel() {
        const MIB: u64 = 1 << 20;
        let map = map(&[
            r(0, 0x9_F000, Usable),
            r(MIB, 3 * GIB - MIB, Usable),
            r(3 * GIB - MIB, 3 * GIB, AcpiReclaimable),
            r(3 * GIB, 3 * GIB + 4096, Reserved),
        ]);
        let kernel = 2 * MIB..4 * MIB;
        assert_eq!(map.check_module(8 * MIB..9 * MIB, kernel.clone()), Ok(()));
        assert_eq!(
            map.check_module(4 * MIB..5 * MIB, kernel.clone()),
            Ok(()),
            "touching"
        );
        assert_eq!(
            map.check_module(0x80_0000..0x80_0000, kernel.clone()),
            Ok(()),
            "empty"
        );
        for over in [3 * MIB..5 * MIB, MIB..2 * MIB + 1, 2 * MIB..3 * MIB] {
            assert_eq!(
                map.check_module(over.clone(), kernel.clone()),
                Err(NotAModule::OverKernel),
                "{over:x?}"
            );
        }
        // The MMIO hole (its registers would be read as the module), reserved memory,
        // a range partly past the end of RAM.
        for not_ram in [
            0xFEC0_0000..0xFEC0_1000,
            3 * GIB..3 * GIB + 4096,
            0x9_E000..0xA_0000,
            3 * GIB - 4096..3 * GIB + 4096,
        ] {
            assert_eq!(
                map.check_module(not_ram.clone(), kernel.clone()),
                Err(NotAModule::NotRam),
                "{not_ram:x?}"
            );
        }
        assert_eq!(
            map.check_module(3 * GIB - 4096..3 * GIB, kernel),
            Ok(()),
            "ACPI-reclaimable RAM is RAM"
        );
    }
}
