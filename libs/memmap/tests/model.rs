//! Property tests: the memory map and the frame allocator against naive models.

use std::collections::BTreeSet;
use std::ops::Range;

use proptest::prelude::*;
use rexo_memmap::{
    AllocError, FRAME_SIZE, FrameAllocator, FrameRange, MemoryMap, Region, RegionKind,
};

const KINDS: [RegionKind; 5] = [
    RegionKind::Usable,
    RegionKind::Reserved,
    RegionKind::AcpiReclaimable,
    RegionKind::AcpiNvs,
    RegionKind::Bad,
];

/// The strictest kind among the input regions covering byte `x`.
fn kind_at(regions: &[Region], x: u64) -> Option<RegionKind> {
    regions
        .iter()
        .filter(|r| r.start <= x && x < r.end)
        .map(|r| r.kind)
        .max_by_key(|k| k.strictness())
}

fn kind() -> impl Strategy<Value = RegionKind> {
    prop_oneof![
        4 => Just(RegionKind::Usable),
        1 => (0..KINDS.len()).prop_map(|i| KINDS[i]),
    ]
}

proptest! {
    /// Normalizing gives sorted, disjoint, merged regions that agree with the input at every
    /// address (the strictest covering kind wins), even for a full map of overlaps.
    #[test]
    fn normalize_matches_pointwise_model(
        raw in prop::collection::vec((0u64..2000, 0u64..300, kind()), 0..=MemoryMap::CAPACITY)
    ) {
        let input: Vec<Region> = raw
            .iter()
            .map(|&(start, len, kind)| Region { start, end: start + len, kind })
            .collect();
        let mut map = MemoryMap::new();
        for region in &input {
            map.add(*region).unwrap();
        }
        map.normalize();
        let out = map.regions();
        for pair in out.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start, "{pair:?} overlap or unsorted");
            prop_assert!(
                pair[0].end < pair[1].start || pair[0].kind != pair[1].kind,
                "{pair:?} not merged"
            );
        }
        prop_assert!(out.iter().all(|r| r.start < r.end));
        for x in 0..2400 {
            prop_assert_eq!(kind_at(out, x), kind_at(&input, x), "at {}", x);
        }
        let usable = (0..2400).filter(|&x| kind_at(&input, x) == Some(RegionKind::Usable)).count();
        prop_assert_eq!(map.usable_bytes(), usable as u64);
        // Zero-length regions are ignored.
        let highest = input.iter().filter(|r| r.start < r.end).map(|r| r.end).max();
        prop_assert_eq!(map.highest_address(), highest.unwrap_or(0));
        // Normalizing again changes nothing.
        let before = out.to_vec();
        map.normalize();
        prop_assert_eq!(map.regions(), &before[..]);
    }
}

/// Frames (by address) that may be handed out: every byte usable in the map, no byte in a
/// non-usable region or a reserved range.
fn model_free(input: &[Region], reserved: &[Range<u64>], span: Range<u64>) -> BTreeSet<u64> {
    let usable = |x: u64| kind_at(input, x) == Some(RegionKind::Usable);
    (span.start / FRAME_SIZE..span.end / FRAME_SIZE)
        .map(|i| i * FRAME_SIZE)
        .filter(|&f| {
            // Coverage changes only at region boundaries: test the frame's bytes at those.
            let mut points = vec![f];
            for r in input {
                for p in [r.start, r.end] {
                    if f < p && p < f + FRAME_SIZE {
                        points.push(p);
                    }
                }
            }
            points.iter().all(|&x| usable(x))
                && !reserved
                    .iter()
                    .any(|r| r.start < r.end && r.start < f + FRAME_SIZE && f < r.end)
        })
        .collect()
}

fn frames_of(a: &FrameAllocator) -> BTreeSet<u64> {
    a.free_ranges()
        .flat_map(|r| r.step_by(FRAME_SIZE as usize))
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    Allocate { frames: u64, align_shift: u32 },
    Free { index: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..=64, 12u32..=22).prop_map(|(frames, align_shift)| Op::Allocate { frames, align_shift }),
        2 => any::<usize>().prop_map(|index| Op::Free { index }),
    ]
}

const SPAN: u64 = 8 << 20;

proptest! {
    /// Allocate/free sequences against a set of free frames: no frame handed out twice, never
    /// a reserved frame, alignment and size as asked, OutOfMemory only when no aligned run
    /// exists, and frees restore everything.
    #[test]
    fn allocator_matches_frame_set_model(
        raw in prop::collection::vec((0u64..SPAN, 1u64..(2 << 20), kind()), 0..12),
        raw_reserved in prop::collection::vec((0u64..SPAN, 0u64..(512 << 10)), 0..6),
        base in prop_oneof![Just(0u64), Just(4u64 << 30), Just(1u64 << 45)],
        ops in prop::collection::vec(op(), 1..80),
        normalized in any::<bool>(),
    ) {
        let input: Vec<Region> = raw
            .iter()
            .map(|&(start, len, kind)| Region { start: base + start, end: base + start + len, kind })
            .collect();
        let reserved: Vec<Range<u64>> = raw_reserved
            .iter()
            .map(|&(start, len)| base + start..base + start + len)
            .collect();
        let mut map = MemoryMap::new();
        for region in &input {
            map.add(*region).unwrap();
        }
        if normalized {
            map.normalize();
        }
        let mut a = FrameAllocator::new(&map, &reserved).unwrap();
        let mut model = model_free(&input, &reserved, base..base + SPAN + (2 << 20));
        if !normalized {
            // Unnormalized: each usable entry is shrunk on its own, so frames straddling two
            // usable entries may be missing, but nothing outside the model may appear.
            let have = frames_of(&a);
            prop_assert!(have.is_subset(&model));
            model = have;
        }
        prop_assert_eq!(frames_of(&a), model.clone());
        let initial = a.free_bytes();
        prop_assert_eq!(initial, model.len() as u64 * FRAME_SIZE);
        let mut held: Vec<FrameRange> = Vec::new();
        for op in ops {
            match op {
                Op::Allocate { frames, align_shift } => {
                    let align = 1u64 << align_shift;
                    let size = frames * FRAME_SIZE;
                    match a.allocate(size - FRAME_SIZE / 2, align) {
                        Ok(range) => {
                            prop_assert_eq!(range.start() % align, 0);
                            prop_assert_eq!(range.len(), size);
                            for f in (range.start()..range.end()).step_by(FRAME_SIZE as usize) {
                                prop_assert!(model.remove(&f), "frame {:#x} not free", f);
                            }
                            held.push(range);
                        }
                        Err(AllocError::OutOfMemory { requested }) => {
                            prop_assert_eq!(requested, size);
                            let fits = model.iter().any(|&f| {
                                f % align == 0
                                    && (0..frames).all(|i| model.contains(&(f + i * FRAME_SIZE)))
                            });
                            prop_assert!(!fits, "OutOfMemory but {} frames at {:#x} fit", frames, align);
                        }
                        Err(AllocError::TooFragmented) => {
                            prop_assert_eq!(a.free_ranges().count(), FrameAllocator::CAPACITY);
                        }
                        Err(other) => prop_assert!(false, "unexpected {other}"),
                    }
                }
                Op::Free { index } => {
                    if !held.is_empty() {
                        let range = held.swap_remove(index % held.len());
                        for f in (range.start()..range.end()).step_by(FRAME_SIZE as usize) {
                            prop_assert!(model.insert(f));
                        }
                        prop_assert!(a.try_free(range).is_ok(), "room in the free list");
                    }
                }
            }
            prop_assert_eq!(a.free_bytes(), model.len() as u64 * FRAME_SIZE);
            prop_assert_eq!(frames_of(&a), model.clone());
        }
        for range in held {
            prop_assert!(a.try_free(range).is_ok(), "room in the free list");
        }
        prop_assert_eq!(a.free_bytes(), initial);
    }
}
