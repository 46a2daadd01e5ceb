//! Host tests: the placement logic, the heap over a stand-in for the kernel's memory
//! capabilities (with a quota and revocation requests), and deadlines on a fake clock.

use super::*;
use crate::space::{Space, rounded};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use rexo_api::{ApiError, CapError, MAX_APP_ENTRIES};

/// A stand-in for the kernel's memory capabilities: regions as byte vectors, a quota,
/// the kernel's limit of live entries per app, and revocation requests the test makes.
#[derive(Default)]
struct FakeKernel {
    quota: u64,
    held: Cell<u64>,
    grant_calls: Cell<usize>,
    /// Calls of `map` (each a kernel call, `map_memory`, with the kernel).
    map_calls: Cell<usize>,
    next: Cell<u64>,
    live: RefCell<Vec<u64>>,
    /// Keys asked back, with their deadlines.
    requested: RefCell<Vec<(u64, u64)>>,
    /// The region whose next give-back is refused (then given back to the heap).
    refused: Cell<Option<u64>>,
}

struct Region {
    key: u64,
    bytes: Vec<u8>,
}

impl FakeKernel {
    fn with_quota(quota: u64) -> Self {
        Self {
            quota,
            ..Self::default()
        }
    }

    fn ask_back(&self, key: u64) {
        self.ask_back_by(key, u64::MAX);
    }

    fn ask_back_by(&self, key: u64, deadline_ns: u64) {
        self.requested.borrow_mut().push((key, deadline_ns));
    }

    fn refuse_once(&self, key: u64) {
        self.refused.set(Some(key));
    }
}

impl Frames for &FakeKernel {
    type Region = Region;
    type Key = u64;

    fn grant(&self, bytes: u64) -> Result<Region, ApiError> {
        assert_eq!(bytes % 4096, 0, "whole frames");
        self.grant_calls.set(self.grant_calls.get() + 1);
        // The kernel's order: the entry limit first, then the quota.
        if self.live.borrow().len() >= MAX_APP_ENTRIES {
            return Err(ApiError::Refused(CapError::TooManyEntries {
                max: MAX_APP_ENTRIES,
            }));
        }
        if self.held.get() + bytes > self.quota {
            return Err(ApiError::QuotaExceeded);
        }
        self.held.set(self.held.get() + bytes);
        let key = self.next.get();
        self.next.set(key + 1);
        self.live.borrow_mut().push(key);
        Ok(Region {
            key,
            bytes: vec![0; bytes as usize],
        })
    }

    fn give_back(&self, region: Region) -> Result<(), (ApiError, Option<Region>)> {
        if self.refused.get() == Some(region.key) {
            self.refused.set(None);
            return Err((ApiError::Refused(CapError::NotOwner), Some(region)));
        }
        let mut live = self.live.borrow_mut();
        let at = live.iter().position(|&k| k == region.key).expect("held");
        live.remove(at);
        self.requested
            .borrow_mut()
            .retain(|&(k, _)| k != region.key);
        self.held.set(self.held.get() - region.bytes.len() as u64);
        Ok(())
    }

    fn map<R>(
        &self,
        region: &mut Region,
        work: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, ApiError> {
        self.map_calls.set(self.map_calls.get() + 1);
        Ok(work(&mut region.bytes))
    }

    fn key(&self, region: &Region) -> u64 {
        region.key
    }

    fn requested(&self) -> Vec<(u64, u64)> {
        self.requested.borrow().clone()
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn free_ranges_coalesce_and_blocks_grow_in_place() {
    let mut space = Space::new(1024);
    let a = space.place(100, 16).expect("a");
    let b = space.place(200, 64).expect("b");
    assert_eq!((a, b), (0, 128), "b aligned to 64, leaving 112..128 free");
    let c = space.place(16, 16).expect("c");
    assert_eq!(c, 112, "first fit takes the gap");
    assert_eq!(space.free_bytes(), 1024 - 112 - 208 - 16);
    assert!(!space.resize(c, 16, 200), "b follows c");
    space.release(b, 200);
    assert!(space.resize(c, 16, 200), "b's bytes are free now");
    assert!(space.resize(c, 200, 32), "shrunk in place");
    space.release(a, 100);
    space.release(c, 32);
    assert!(space.is_unused());
    assert_eq!(space.largest_free(), 1024, "one range again");
    assert_eq!(space.place(1025, 16), None);
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let fake = FakeKernel::with_quota(8 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let mut other = Heap::with_frames(&fake, 2 * MIB);
    let h = heap.allocate(10).expect("allocated");
    heap.write(h, 0, b"0123456789").expect("written");
    let before = heap.stats();
    assert_eq!(heap.allocate(0), Err(HeapError::ZeroSize));
    assert_eq!(
        heap.allocate(MAX_ALLOCATION + 1),
        Err(HeapError::TooLarge {
            bytes: MAX_ALLOCATION + 1,
            max: MAX_ALLOCATION
        })
    );
    assert_eq!(heap.allocate_aligned(8, 24), Err(HeapError::BadAlign(24)));
    assert_eq!(
        heap.allocate_aligned(8, 8192),
        Err(HeapError::BadAlign(8192))
    );
    assert_eq!(
        heap.write(h, 5, b"123456"),
        Err(HeapError::OutOfRange {
            offset: 5,
            len: 6,
            size: 10
        })
    );
    assert_eq!(
        heap.read(h, u64::MAX, &mut [0; 2]),
        Err(HeapError::OutOfRange {
            offset: u64::MAX,
            len: 2,
            size: 10
        })
    );
    assert_eq!(heap.reallocate(h, 0), Err(HeapError::ZeroSize));
    let foreign = other.allocate(10).expect("the other heap's");
    assert_eq!(heap.free(foreign), Err(HeapError::ForeignHandle));
    assert_eq!(
        heap.read(foreign, 0, &mut [0]),
        Err(HeapError::ForeignHandle)
    );
    assert_eq!(heap.stats(), before);
    let mut back = [0u8; 10];
    heap.read(h, 0, &mut back).expect("read");
    assert_eq!(&back, b"0123456789");
    heap.free(h).expect("freed");
    assert_eq!(heap.free(h), Err(HeapError::Freed), "double free");
    assert_eq!(
        heap.write(h, 0, b"x"),
        Err(HeapError::Freed),
        "use after free"
    );
    let reused = heap.allocate(10).expect("the slot again");
    assert_eq!(
        heap.free(h),
        Err(HeapError::Freed),
        "a stale copy stays refused"
    );
    heap.free(reused).expect("freed");
    other.free(foreign).expect("freed");
}

#[test]
fn a_slot_out_of_generations_is_retired() {
    let fake = FakeKernel::with_quota(8 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let first = heap.allocate(10).expect("allocated");
    heap.write(first, 0, b"first").expect("written");
    // As after 2^32 - 2 frees and allocations of the slot.
    let old = heap.age_slot(first, u32::MAX - 1);
    heap.free(old).expect("freed");
    let last = heap.allocate(10).expect("the slot's last generation");
    heap.free(last).expect("freed");
    // The slot is not handed out again: `first` (generation 0) stays refused.
    let next = heap.allocate(10).expect("another slot");
    heap.write(next, 0, b"next").expect("written");
    assert_eq!(heap.read(first, 0, &mut [0; 4]), Err(HeapError::Freed));
    assert_eq!(heap.free(first), Err(HeapError::Freed));
    assert_eq!(heap.free(last), Err(HeapError::Freed), "double free");
    assert_eq!(heap.free(old), Err(HeapError::Freed));
    let mut back = [0u8; 4];
    heap.read(next, 0, &mut back).expect("read");
    assert_eq!(&back, b"next");
    assert_eq!(heap.stats().allocations, 1);
    heap.free(next).expect("freed");
}

#[test]
fn quota_exhaustion_is_an_error_and_loses_nothing() {
    let fake = FakeKernel::with_quota(5 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let mut held = Vec::new();
    let error = loop {
        match heap.allocate(MIB) {
            Ok(h) => {
                heap.write(h, 0, &[held.len() as u8; 64]).expect("written");
                held.push(h);
            }
            Err(error) => break error,
        }
        assert!(held.len() < 10, "the quota holds");
    };
    assert_eq!(error, HeapError::Kernel(ApiError::QuotaExceeded));
    // 2 + 2 MiB arenas hold 2 blocks each (1 MiB rounds to 1 MiB), then one arena of
    // just 1 MiB fits under the quota.
    assert_eq!(held.len(), 5);
    assert_eq!(fake.held.get(), 5 * MIB);
    for (i, &h) in held.iter().enumerate() {
        let mut back = [0u8; 64];
        heap.read(h, 0, &mut back).expect("intact");
        assert_eq!(back, [i as u8; 64]);
    }
    for h in held {
        heap.free(h).expect("freed");
    }
    assert_eq!(
        heap.stats().arenas,
        1,
        "wholly free arenas went back but the last"
    );
    assert!(
        heap.trim().expect("trimmed") > 0,
        "the last arena goes on trim"
    );
    assert_eq!((fake.held.get(), heap.stats()), (0, Stats::default()));
}

#[test]
fn a_wholly_free_arena_goes_back_unless_it_is_the_last() {
    let fake = FakeKernel::with_quota(16 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let small = heap.allocate(100).expect("small");
    let big = heap.allocate(3 * MIB).expect("big");
    assert_eq!(heap.placement(big).map(|p| p.0), Ok(1), "a second arena");
    assert_eq!(
        heap.stats().arena_bytes,
        6 * MIB,
        "4 MiB: a multiple of the chunk"
    );
    heap.free(big).expect("freed");
    assert_eq!(fake.held.get(), 2 * MIB, "the wholly free arena went back");
    heap.free(small).expect("freed");
    assert_eq!(fake.held.get(), 2 * MIB, "the last one is kept");
    let again = heap.allocate(100).expect("from the kept arena");
    assert_eq!(fake.next.get(), 2, "no new grant");
    heap.free(again).expect("freed");
}

#[test]
fn reallocation_keeps_the_bytes_and_the_handle() {
    let fake = FakeKernel::with_quota(16 * MIB);
    let mut heap = Heap::with_frames(&fake, 64 * 1024);
    let a = heap.allocate(32).expect("a");
    let b = heap.allocate(32).expect("b");
    heap.write(a, 0, &[0xA5; 32]).expect("written");
    heap.reallocate(a, 16).expect("shrunk in place");
    heap.reallocate(a, 32).expect("grown back in place");
    assert_eq!(heap.placement(a), Ok((0, 0, 32)));
    heap.reallocate(a, 100_000).expect("moved to a new arena");
    assert_eq!(heap.placement(a).map(|p| p.0), Ok(1));
    let mut back = [0u8; 32];
    heap.read(a, 0, &mut back).expect("read");
    assert_eq!(back, [0xA5; 32]);
    let before = heap.stats();
    assert_eq!(
        heap.reallocate(a, 32 * MIB),
        Err(HeapError::Kernel(ApiError::QuotaExceeded))
    );
    assert_eq!(
        heap.stats(),
        before,
        "a refused reallocation changes nothing"
    );
    heap.free(a).expect("freed");
    heap.free(b).expect("freed");
}

#[test]
fn a_surrender_maps_the_arena_and_each_target_once_whatever_it_holds() {
    // Each map is a kernel call: moving allocations one at a time (two maps each) made
    // 2,000 of them here, where the deadline may pass midway.
    let fake = FakeKernel::with_quota(8 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let small: Vec<Handle> = (0..1000u32)
        .map(|i| {
            let h = heap.allocate(16).expect("small");
            heap.write(h, 0, &i.to_le_bytes()).expect("written");
            h
        })
        .collect();
    fake.ask_back(0);
    let before = fake.map_calls.get();
    let answers = heap.poll_revocations();
    assert_eq!((answers[0].moved, answers[0].returned), (1000, Ok(())));
    assert_eq!(
        fake.map_calls.get() - before,
        2,
        "arena 0 and the new arena 1"
    );
    for (i, &h) in (0u32..).zip(&small) {
        let mut back = [0u8; 4];
        heap.read(h, 0, &mut back).expect("read");
        assert_eq!(
            (heap.placement(h).map(|p| p.0), back),
            (Ok(1), i.to_le_bytes())
        );
    }
}

#[test]
fn revocation_moves_allocations_or_gives_back_a_free_arena() {
    let fake = FakeKernel::with_quota(6 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let small: Vec<Handle> = (0..20u8)
        .map(|i| {
            let h = heap.allocate(1000 + u64::from(i)).expect("small");
            heap.write(h, 0, &[i; 1000]).expect("written");
            h
        })
        .collect();
    let big = heap.allocate(3 * MIB).expect("big: a 4 MiB arena");
    assert_eq!(fake.held.get(), 6 * MIB);
    fake.ask_back(0);
    fake.ask_back(99); // not this heap's: ignored
    let answers = heap.poll_revocations();
    assert_eq!(
        answers,
        vec![Answer {
            arena: 0,
            bytes: 2 * MIB,
            moved: 20,
            lost: Vec::new(),
            returned: Ok(()),
        }]
    );
    assert_eq!(*fake.live.borrow(), vec![1], "arena 0 went back");
    for (i, &h) in small.iter().enumerate() {
        assert_eq!(heap.placement(h).map(|p| p.0), Ok(1), "moved");
        let mut back = [0u8; 1000];
        heap.read(h, 0, &mut back).expect("read");
        assert_eq!(back, [i as u8; 1000], "moved byte-exact");
    }
    // The big block has nowhere to go within the quota: lost, and said so.
    fake.ask_back(1);
    let answers = heap.poll_revocations();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].moved, 20, "the small ones found a new arena");
    assert_eq!(answers[0].lost, vec![big]);
    assert_eq!(heap.len(big), Err(HeapError::Lost));
    assert_eq!(heap.read(big, 0, &mut [0]), Err(HeapError::Lost));
    heap.free(big).expect("a lost handle is freed");
    assert_eq!(heap.free(big), Err(HeapError::Freed));
    for h in small {
        heap.free(h).expect("freed");
    }
    // A wholly free arena asked back just goes, unmapped: nothing to copy out of it.
    fake.ask_back(2);
    let maps_before = fake.map_calls.get();
    let answers = heap.poll_revocations();
    assert_eq!((answers[0].moved, answers[0].lost.len()), (0, 0));
    assert_eq!(
        fake.map_calls.get(),
        maps_before,
        "a free arena is not mapped"
    );
    assert_eq!((fake.held.get(), heap.stats()), (0, Stats::default()));
}

#[test]
fn near_the_quota_blocks_share_one_arena_of_what_is_left() {
    let fake = FakeKernel::with_quota(5 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let small: Vec<Handle> = (0..600)
        .map(|_| heap.allocate(3000).expect("small"))
        .collect();
    assert_eq!(heap.placement(small[599]).map(|p| p.0), Ok(0));
    let big = heap.allocate(2 * MIB).expect("big: arena 1");
    assert_eq!(heap.placement(big).map(|p| p.0), Ok(1));
    // 1 MiB of quota is left: the first small block that does not fit gets a 1 MiB
    // arena, and the next ones fill it rather than an entry each.
    let more: Vec<Handle> = (0..300)
        .map(|_| heap.allocate(3000).expect("within the quota"))
        .collect();
    assert_eq!(heap.stats().arenas, 3, "one arena for them all");
    assert_eq!(fake.held.get(), 5 * MIB);
    for h in more {
        heap.free(h).expect("freed");
    }
    assert_eq!(heap.stats().arenas, 2, "the wholly free arena went back");
    // Moving arena 0's blocks: 1 MiB holds 348 of them (3008 bytes each), the rest are
    // lost for want of quota, not of capability entries.
    fake.ask_back(0);
    let answers = heap.poll_revocations();
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].moved, answers[0].lost.len()), (348, 252));
    assert_eq!(heap.stats().arenas, 2);
    assert_eq!(fake.held.get(), 3 * MIB);
}

#[test]
fn the_entry_limit_is_answered_at_once_not_with_smaller_arenas() {
    let fake = FakeKernel::with_quota(1 << 40);
    let mut heap = Heap::with_frames(&fake, 64 * 1024);
    let blocks: Vec<Handle> = (0..MAX_APP_ENTRIES)
        .map(|_| heap.allocate(64 * 1024).expect("an arena each"))
        .collect();
    let grants = fake.next.get();
    let refusal = Err(HeapError::Kernel(ApiError::Refused(
        CapError::TooManyEntries {
            max: MAX_APP_ENTRIES,
        },
    )));
    // 4 KiB needed and a 64 KiB arena asked for: a retry with a smaller arena would
    // show in the grant calls.
    assert_eq!(heap.allocate(100), refusal);
    assert_eq!(fake.next.get(), grants, "nothing granted");
    assert_eq!(
        fake.grant_calls.get(),
        grants as usize + 1,
        "asked once, not again"
    );
    for h in blocks {
        heap.free(h).expect("freed");
    }
}

#[test]
fn a_free_stands_when_the_kernel_refuses_the_arena_which_the_heap_keeps() {
    let fake = FakeKernel::with_quota(16 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let small = heap.allocate(100).expect("arena 0");
    let big = heap.allocate(3 * MIB).expect("arena 1");
    fake.refuse_once(1);
    assert_eq!(heap.free(big), Ok(()), "freed though arena 1 stays");
    assert_eq!(heap.free(big), Err(HeapError::Freed));
    assert_eq!(heap.stats().arenas, 2, "the refused arena is kept");
    assert_eq!(
        heap.stats().arena_bytes,
        fake.held.get(),
        "and the books agree"
    );
    let again = heap.allocate(3 * MIB).expect("into the kept arena");
    assert_eq!(heap.placement(again).map(|p| p.0), Ok(1));
    assert_eq!(fake.next.get(), 2, "no new grant");
    heap.free(again).expect("freed");
    heap.free(small).expect("freed");
    heap.trim().expect("trimmed");
    assert_eq!((fake.held.get(), heap.stats()), (0, Stats::default()));
}

#[test]
fn a_reallocation_stands_when_the_kernel_refuses_the_arena_it_left() {
    let fake = FakeKernel::with_quota(16 * MIB);
    let mut heap = Heap::with_frames(&fake, 64 * 1024);
    let small = heap.allocate(32 * 1024).expect("arena 0");
    let moving = heap.allocate(60 * 1024).expect("arena 1");
    assert_eq!(heap.placement(moving).map(|p| p.0), Ok(1));
    heap.write(moving, 0, b"kept").expect("written");
    fake.refuse_once(1);
    assert_eq!(heap.reallocate(moving, 100_000), Ok(()), "moved to arena 2");
    assert_eq!(heap.placement(moving).map(|p| p.0), Ok(2));
    let mut back = [0u8; 4];
    heap.read(moving, 0, &mut back).expect("read where it went");
    assert_eq!(&back, b"kept");
    assert_eq!(heap.stats().arena_bytes, fake.held.get(), "arena 1 is kept");
    heap.free(moving).expect("freed");
    heap.free(small).expect("freed");
    heap.trim().expect("trimmed");
    assert_eq!((fake.held.get(), heap.stats()), (0, Stats::default()));
}

#[test]
fn every_arena_asked_for_is_answered_though_one_is_refused() {
    let fake = FakeKernel::with_quota(32 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let first = heap.allocate(100).expect("arena 0");
    let second = heap.allocate(3 * MIB).expect("arena 1");
    let third = heap.allocate(3 * MIB).expect("arena 2");
    fake.ask_back(0);
    fake.ask_back(1);
    fake.ask_back(2);
    fake.refuse_once(1);
    let answers = heap.poll_revocations();
    let outcome: Vec<(usize, usize, usize, Result<(), HeapError>)> = answers
        .iter()
        .map(|a| (a.arena, a.moved, a.lost.len(), a.returned))
        .collect();
    let refused = Err(HeapError::Kernel(ApiError::Refused(CapError::NotOwner)));
    assert_eq!(
        outcome,
        vec![(0, 1, 0, Ok(())), (1, 1, 0, refused), (2, 1, 0, Ok(()))]
    );
    assert_eq!(*fake.live.borrow(), vec![1, 3, 4, 5], "0 and 2 went back");
    assert_eq!(heap.stats().arena_bytes, fake.held.get(), "arena 1 is kept");
    let again = heap.poll_revocations();
    assert_eq!(
        (again.len(), again[0].arena, again[0].returned),
        (1, 1, Ok(()))
    );
    assert_eq!(
        *fake.live.borrow(),
        vec![3, 4, 5],
        "the refused arena went next time"
    );
    for h in [first, second, third] {
        heap.free(h).expect("freed");
    }
}

#[test]
fn a_chunk_of_zero_or_past_the_largest_allocation_is_clamped() {
    let fake = FakeKernel::with_quota(8 * MIB);
    let mut tiny = Heap::with_frames(&fake, 0);
    let h = tiny.allocate(10).expect("one frame");
    assert_eq!(tiny.stats().arena_bytes, 4096);
    tiny.free(h).expect("freed");
    tiny.trim().expect("trimmed");
    let mut huge = Heap::with_frames(&fake, u64::MAX);
    let h = huge
        .allocate(10)
        .expect("the largest half the quota allows");
    assert_eq!(huge.stats().arena_bytes, 8 * MIB);
    huge.free(h).expect("freed");
}

#[test]
fn the_earliest_deadline_is_answered_first() {
    let fake = FakeKernel::with_quota(32 * MIB);
    let mut heap = Heap::with_frames(&fake, 2 * MIB);
    let blocks: Vec<Handle> = (0..3)
        .map(|_| heap.allocate(3 * MIB).expect("an arena each"))
        .collect();
    fake.ask_back_by(0, 300);
    fake.ask_back_by(1, 100);
    fake.ask_back_by(2, 200);
    let order: Vec<usize> = heap.poll_revocations().iter().map(|a| a.arena).collect();
    assert_eq!(order, vec![1, 2, 0]);
    for h in blocks {
        heap.free(h).expect("freed");
    }
}

/// A small random number generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The bytes the model expects in an allocation: a pattern from its tag.
fn pattern(tag: u64, len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ tag.wrapping_mul(0x9E37)) as u8)
        .collect()
}

struct Model {
    handle: Handle,
    len: u64,
    align: u64,
    tag: u64,
}

fn check_contents(heap: &mut Heap<&FakeKernel>, m: &Model) {
    let mut back = vec![0u8; m.len as usize];
    heap.read(m.handle, 0, &mut back).expect("live");
    assert!(
        back == pattern(m.tag, m.len),
        "allocation {:?} changed",
        m.handle
    );
}

/// Every live allocation where the model says, aligned, not overlapping another, and
/// every byte of every arena in a block or free; the kernel's books match the heap's.
fn check_books(heap: &Heap<&FakeKernel>, fake: &FakeKernel, model: &[Model]) {
    let mut placed: Vec<(usize, u64, u64)> = model
        .iter()
        .map(|m| {
            let (arena, offset, len) = heap.placement(m.handle).expect("live");
            assert_eq!(len, m.len);
            assert_eq!(offset % m.align, 0, "alignment honoured");
            (arena, offset, rounded(len).expect("small"))
        })
        .collect();
    placed.sort();
    for pair in placed.windows(2) {
        let ((a, start, len), (b, next, _)) = (pair[0], pair[1]);
        assert!(a != b || start + len <= next, "overlap: {pair:?}");
    }
    let stats = heap.stats();
    assert_eq!(stats.allocations, model.len());
    assert_eq!(stats.used_bytes, placed.iter().map(|p| p.2).sum::<u64>());
    assert_eq!(stats.used_bytes + stats.free_bytes, stats.arena_bytes);
    assert_eq!(
        stats.arena_bytes,
        fake.held.get(),
        "every granted byte is an arena's"
    );
}

#[test]
fn random_allocations_frees_reallocations_and_revocations_match_a_model() {
    for seed in 1..=30u64 {
        let fake = FakeKernel::with_quota(12 * MIB);
        let mut heap = Heap::with_frames(&fake, 256 * 1024);
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut model: Vec<Model> = Vec::new();
        for step in 0..1500u64 {
            let size = match rng.below(100) {
                0..70 => 1 + rng.below(512),
                70..95 => 512 + rng.below(64 * 1024),
                _ => 64 * 1024 + rng.below(3 * MIB),
            };
            match rng.below(100) {
                0..45 => {
                    let align = if rng.below(4) == 0 {
                        1 << rng.below(13)
                    } else {
                        16
                    };
                    let before = heap.stats();
                    match heap.allocate_aligned(size, align) {
                        Ok(handle) => {
                            heap.write(handle, 0, &pattern(step, size)).expect("write");
                            model.push(Model {
                                handle,
                                len: size,
                                align: align.max(16),
                                tag: step,
                            });
                        }
                        Err(error) => {
                            assert_eq!(error, HeapError::Kernel(ApiError::QuotaExceeded));
                            assert_eq!(heap.stats(), before, "a refusal changes nothing");
                        }
                    }
                }
                45..75 if !model.is_empty() => {
                    let m = model.swap_remove(rng.below(model.len() as u64) as usize);
                    check_contents(&mut heap, &m);
                    heap.free(m.handle).expect("freed");
                    assert_eq!(heap.free(m.handle), Err(HeapError::Freed));
                }
                75..95 if !model.is_empty() => {
                    let i = rng.below(model.len() as u64) as usize;
                    let m = &mut model[i];
                    let before = heap.stats();
                    match heap.reallocate(m.handle, size) {
                        Ok(()) => {
                            let keep = m.len.min(size);
                            let mut back = vec![0u8; keep as usize];
                            heap.read(m.handle, 0, &mut back).expect("read");
                            assert!(back == pattern(m.tag, m.len)[..keep as usize], "kept");
                            m.len = size;
                            m.tag = step;
                            heap.write(m.handle, 0, &pattern(step, size))
                                .expect("write");
                        }
                        Err(error) => {
                            assert_eq!(error, HeapError::Kernel(ApiError::QuotaExceeded));
                            assert_eq!(heap.stats(), before);
                        }
                    }
                }
                _ => {
                    let live = fake.live.borrow().clone();
                    if live.is_empty() {
                        continue;
                    }
                    let key = live[rng.below(live.len() as u64) as usize];
                    fake.ask_back(key);
                    let answers = heap.poll_revocations();
                    assert_eq!(answers.len(), 1);
                    assert!(!fake.live.borrow().contains(&key), "given back");
                    for lost in &answers[0].lost {
                        assert_eq!(heap.len(*lost), Err(HeapError::Lost));
                        heap.free(*lost).expect("forgotten");
                        model.retain(|m| m.handle != *lost);
                    }
                }
            }
            check_books(&heap, &fake, &model);
            if step % 100 == 0 {
                for m in &model {
                    check_contents(&mut heap, m);
                }
            }
        }
        for m in model.drain(..) {
            check_contents(&mut heap, &m);
            heap.free(m.handle).expect("freed");
        }
        let stats = heap.stats();
        assert!(stats.arenas <= 1, "wholly free arenas went back");
        assert_eq!(
            stats.largest_free, stats.arena_bytes,
            "coalesced into one range"
        );
        heap.trim().expect("trimmed");
        assert_eq!((fake.held.get(), heap.stats()), (0, Stats::default()));
    }
}

/// A clock whose naps end after at most `nap` nanoseconds, however long was asked.
struct FakeClock {
    now: Cell<u64>,
    nap: u64,
    naps: Cell<u32>,
}

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }

    fn sleep_ns(&self, ns: u64) {
        self.naps.set(self.naps.get() + 1);
        self.now.set(self.now.get() + ns.min(self.nap));
    }
}

#[test]
fn deadlines_come_out_in_order_and_wait_sleeps_until_the_first() {
    let clock = FakeClock {
        now: Cell::new(1_000),
        nap: 300,
        naps: Cell::new(0),
    };
    let mut timers = Deadlines::new();
    assert_eq!(timers.wait(&clock), Vec::<&str>::new(), "nothing pending");
    let late = timers.after(&clock, 5_000, "late");
    timers.add(2_000, "first");
    timers.add(2_000, "second, same time");
    let cancelled = timers.add(1_500, "cancelled");
    timers.add(u64::MAX, "never");
    assert_eq!(timers.cancel(cancelled), Some("cancelled"));
    assert_eq!(timers.cancel(cancelled), None);
    assert_eq!(timers.next_ns(), Some(2_000));
    assert_eq!(late.at_ns(), 6_000);
    assert_eq!(timers.expired(1_999), Vec::<&str>::new());
    assert_eq!(timers.wait(&clock), vec!["first", "second, same time"]);
    assert_eq!(clock.now_ns(), 2_000, "woke at the deadline, not before");
    assert_eq!(clock.naps.get(), 4, "short naps were repeated");
    assert_eq!(timers.wait(&clock), vec!["late"]);
    assert_eq!(clock.now_ns(), 6_000);
    assert_eq!(timers.len(), 1);
    assert_eq!(timers.expired(u64::MAX), vec!["never"]);
    assert!(timers.is_empty());
    sleep_until(&clock, 5_000);
    assert_eq!(clock.now_ns(), 6_000, "a past deadline does not sleep");
}

#[test]
fn a_deadline_is_cancelled_only_in_its_own_list() {
    let mut a = Deadlines::new();
    let mut b = Deadlines::new();
    let a_id = a.add(10, "a");
    let b_id = b.add(10, "b");
    assert_eq!(a.cancel(b_id), None, "b's id names nothing in a");
    assert_eq!(b.cancel(a_id), None);
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(a.cancel(a_id), Some("a"));
    assert_eq!(b.cancel(b_id), Some("b"));
}
