use super::*;
use rexo_captable::{Cap, CapTable, Resource, ResourceKind, Rights};
use rexo_testkit::Rng;

struct Kernel;
type Table = CapTable<Kernel, 64, 4, 8>;

/// Frames in the tests: just a range.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Span(Range<u64>);

impl Frames for Span {
    fn range(&self) -> Range<u64> {
        self.0.clone()
    }

    /// Cut as `FrameRange` cuts: on a frame strictly inside.
    fn split_at(self, offset: u64) -> Result<(Self, Self), Self> {
        let Span(range) = &self;
        if offset == 0 || offset >= range.end - range.start || !offset.is_multiple_of(FRAME) {
            return Err(self);
        }
        let at = range.start + offset;
        Ok((Span(range.start..at), Span(at..range.end)))
    }
}

const APP: OwnerId = OwnerId(1);
const OTHER: OwnerId = OwnerId(2);

fn live(table: &Table) -> Vec<(EntryId, Range<u64>)> {
    table
        .entries()
        .map(|e| (e.id, e.resource.start()..e.resource.end()))
        .collect()
}

fn mint(table: &mut Table, owner: OwnerId, start: u64, len: u64) -> Cap {
    let resource = Resource::new(ResourceKind::Memory, start, len).unwrap();
    table.mint(&Kernel, owner, resource, Rights::ALL).unwrap()
}

#[test]
fn quotas_refuse_past_the_limit_and_returns_make_room() {
    let mut ledger = Ledger::<Span>::new(4);
    assert_eq!(
        ledger.start_run(OwnerId(4), Quota::Fixed(Some(1))),
        Err(LedgerError::BadOwner(OwnerId(4)))
    );
    ledger.start_run(APP, Quota::Fixed(Some(8192))).unwrap();
    ledger.charge(APP, 4096).unwrap();
    ledger.charge(APP, 4096).unwrap();
    assert_eq!(ledger.charge(APP, 1), Err(LedgerError::QuotaExceeded));
    assert_eq!(ledger.held(APP), 8192, "a refusal changes nothing");
    ledger.uncharge(APP, 4096);
    ledger.charge(APP, 4096).unwrap();
    assert_eq!(ledger.charge(OTHER, u64::MAX), Ok(()), "no quota");
    assert_eq!(ledger.charge(OTHER, 1), Err(LedgerError::QuotaExceeded));
    assert_eq!(ledger.held(OwnerId(9)), 0);
}

#[test]
fn a_grant_is_charged_its_frames_and_freed_when_returned() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    ledger.charge(APP, 5000).unwrap();
    let cap = mint(&mut table, APP, 0x10_0000, 0x2000);
    ledger.record_grant(APP, Span(0x10_0000..0x10_2000), 5000);
    assert_eq!(ledger.held(APP), 0x2000, "the charge is the frames' length");
    ledger.record_mapping(cap.id(), 0x10_0000..0x10_2000, APP);
    table.return_cap(APP, &cap).unwrap();
    let out = ledger.reclaim(&live(&table), false, None);
    assert!(
        out.unmap.is_empty(),
        "a returned capability has no view left"
    );
    assert_eq!(out.free, [Span(0x10_0000..0x10_2000)]);
    assert_eq!(ledger.held(APP), 0);
    assert!(ledger.revoked().is_empty());
}

#[test]
fn a_grant_recorded_while_a_huge_reservation_is_pending_keeps_the_books() {
    // Another core of the app reserved nearly everything (no quota) and has not yet
    // taken its frames when this grant is recorded.
    let mut ledger = Ledger::new(4);
    ledger.charge(APP, 0x1000).unwrap();
    ledger.charge(APP, u64::MAX - 0x1000).unwrap();
    ledger.record_grant(APP, Span(0x10_0000..0x10_1000), 0x1000);
    assert_eq!(ledger.held(APP), u64::MAX);
    ledger.uncharge(APP, u64::MAX - 0x1000);
    assert_eq!(ledger.held(APP), 0x1000, "the grant's frames stay charged");
}

#[test]
fn a_mapped_capability_taken_by_force_stays_out_of_use_until_its_holder_ends() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    ledger.charge(APP, 0x1000).unwrap();
    let cap = mint(&mut table, APP, 0x20_0000, 0x1000);
    ledger.record_grant(APP, Span(0x20_0000..0x20_1000), 0x1000);
    ledger.record_mapping(cap.id(), 0x20_0000..0x20_1000, APP);
    table
        .revoke(
            &Kernel,
            cap.id(),
            rexo_captable::RevokeReason::DeadlinePassed,
        )
        .unwrap();
    let out = ledger.reclaim(&live(&table), true, None);
    assert_eq!(out.unmap, vec![0x20_0000..0x20_1000]);
    assert!(out.free.is_empty(), "kept out of the free pool");
    assert_eq!(ledger.held(APP), 0x1000, "still charged to the holder");
    let region = ledger.revoked_at(0x20_0FFF).expect("a revoked region");
    assert_eq!((region.entry, region.holder), (cap.id(), APP));
    assert!(ledger.revoked_at(0x20_1000).is_none());
    // Another owner ending changes nothing; later changes keep the frames too.
    let out = ledger.reclaim(&live(&table), false, Some(OTHER));
    assert!(out.free.is_empty() && out.remap.is_empty());
    let out = ledger.reclaim(&live(&table), false, Some(APP));
    assert_eq!(out.remap, vec![0x20_0000..0x20_1000]);
    assert_eq!(out.free, [Span(0x20_0000..0x20_1000)]);
    assert_eq!(ledger.held(APP), 0);
    assert!(ledger.revoked_at(0x20_0000).is_none());
}

#[test]
fn an_unmapped_capability_taken_by_force_is_freed_at_once() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    let cap = mint(&mut table, APP, 0x20_0000, 0x1000);
    ledger.record_grant(APP, Span(0x20_0000..0x20_1000), 0x1000);
    table
        .revoke(&Kernel, cap.id(), rexo_captable::RevokeReason::Kernel)
        .unwrap();
    let out = ledger.reclaim(&live(&table), true, None);
    assert!(out.unmap.is_empty());
    assert_eq!(out.free.len(), 1);
}

#[test]
fn a_split_half_returned_frees_its_own_frames_and_not_its_siblings() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    let low = mint(&mut table, APP, 0x40_0000, 0x2000);
    ledger.record_grant(APP, Span(0x40_0000..0x40_2000), 0x2000);
    let high = table.split(APP, &low, 0x1000).unwrap();
    table.return_cap(APP, &low).unwrap();
    let out = ledger.reclaim(&live(&table), false, None);
    assert_eq!(out.free, [Span(0x40_0000..0x40_1000)], "the low half only");
    assert_eq!(ledger.held(APP), 0x1000);
    table.return_cap(APP, &high).unwrap();
    let out = ledger.reclaim(&live(&table), false, None);
    assert_eq!(out.free, [Span(0x40_1000..0x40_2000)]);
    assert_eq!(ledger.held(APP), 0);
    assert!(ledger.grants.is_empty());
}

const MIB: u64 = 1 << 20;

/// The grant's pieces the books keep, with their owners.
fn kept(ledger: &Ledger<Span>) -> Vec<(Range<u64>, OwnerId)> {
    let grants = ledger.grants.iter();
    grants.map(|(Span(r), owner)| (r.clone(), *owner)).collect()
}

#[test]
fn a_grant_returned_but_for_a_page_handed_away_frees_the_rest_and_uncharges_it() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    ledger.start_run(APP, Quota::Fixed(Some(64 * MIB))).unwrap();
    table.start_owner(&Kernel, OTHER).unwrap();
    let base = 0x1000_0000;
    let reserved = ledger.reserve_frames(APP, 64 * MIB).unwrap();
    let big = mint(&mut table, APP, base, 64 * MIB);
    ledger.record_grant(APP, Span(base..base + 64 * MIB), reserved);
    let page = table.split(APP, &big, 64 * MIB - 0x1000).unwrap();
    table.delegate(APP, &page, OTHER).unwrap();
    table.return_cap(APP, &big).unwrap();
    let out = ledger.reclaim(&live(&table), false, None);
    assert_eq!(out.free, [Span(base..base + 64 * MIB - 0x1000)]);
    assert_eq!(
        ledger.held(APP),
        0x1000,
        "charged for the page it handed away"
    );
    assert_eq!(
        kept(&ledger),
        [(base + 64 * MIB - 0x1000..base + 64 * MIB, APP)]
    );
    assert_eq!(
        ledger.reserve_frames(APP, 64 * MIB - 0x1000),
        Ok(64 * MIB - 0x1000),
        "the quota has room again for all it gave back"
    );
    ledger.uncharge(APP, 64 * MIB - 0x1000);
    table.return_cap(OTHER, &page).unwrap();
    let out = ledger.reclaim(&live(&table), false, None);
    assert_eq!(out.free, [Span(base + 64 * MIB - 0x1000..base + 64 * MIB)]);
    assert_eq!(ledger.held(APP), 0);
}

#[test]
fn a_piece_returned_from_the_middle_of_a_grant_goes_back_between_the_others() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    let low = mint(&mut table, APP, 0x40_0000, 0x5000);
    ledger.record_grant(APP, Span(0x40_0000..0x40_5000), 0x5000);
    let middle = table.split(APP, &low, 0x1000).unwrap();
    let high = table.split(APP, &middle, 0x2000).unwrap();
    table.return_cap(APP, &middle).unwrap();
    let out = ledger.reclaim(&live(&table), false, None);
    assert_eq!(out.free, [Span(0x40_1000..0x40_3000)]);
    assert_eq!(
        kept(&ledger),
        [(0x40_0000..0x40_1000, APP), (0x40_3000..0x40_5000, APP)]
    );
    assert_eq!(ledger.held(APP), 0x3000);
    // Nothing changed: the pieces stay as they are.
    assert!(ledger.reclaim(&live(&table), false, None).free.is_empty());
    assert_eq!(kept(&ledger).len(), 2);
    table.return_cap(APP, &high).unwrap();
    table.return_cap(APP, &low).unwrap();
    let out = ledger.reclaim(&live(&table), false, None);
    assert_eq!(
        out.free,
        [Span(0x40_0000..0x40_1000), Span(0x40_3000..0x40_5000)]
    );
    assert_eq!(ledger.held(APP), 0);
}

#[test]
fn pieces_still_live_keep_their_frames_each_and_touching_ones_stay_one_grant() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    let base = 0x80_0000;
    let first = mint(&mut table, APP, base, 8 * FRAME);
    ledger.record_grant(APP, Span(base..base + 8 * FRAME), 8 * FRAME);
    // Eight pages; a child derived over pages 5 and 6 of two of them.
    let mut pages = alloc::vec![first];
    for _ in 1..8 {
        let last = pages.last().unwrap();
        let next = table.split(APP, last, FRAME).unwrap();
        pages.push(next);
    }
    table
        .derive(APP, &pages[6], base + 6 * FRAME, FRAME, Rights::READ)
        .unwrap();
    for gone in [1, 2, 4, 5, 7] {
        table.return_cap(APP, &pages[gone]).unwrap();
    }
    let out = ledger.reclaim(&live(&table), false, None);
    let page = |n: u64| base + n * FRAME;
    assert_eq!(
        out.free,
        [
            Span(page(1)..page(3)),
            Span(page(4)..page(6)),
            Span(page(7)..page(8))
        ]
    );
    assert_eq!(
        kept(&ledger),
        [
            (page(0)..page(1), APP),
            (page(3)..page(4), APP),
            (page(6)..page(7), APP)
        ],
        "page 6 and its child: one piece"
    );
    assert_eq!(ledger.held(APP), 3 * FRAME);
}

#[test]
fn a_revoked_region_in_a_grant_keeps_its_frames_while_the_rest_goes_back() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    let cap = mint(&mut table, APP, 0x20_0000, 0x3000);
    ledger.record_grant(APP, Span(0x20_0000..0x20_3000), 0x3000);
    // A child over the middle page, lent and mapped by its holder, then taken by force.
    let child = table
        .derive(APP, &cap, 0x20_1000, 0x1000, Rights::ALL)
        .unwrap();
    ledger.record_mapping(child.id(), 0x20_1000..0x20_2000, OTHER);
    table
        .revoke(&Kernel, child.id(), rexo_captable::RevokeReason::Kernel)
        .unwrap();
    let out = ledger.reclaim(&live(&table), true, None);
    assert_eq!(out.unmap, vec![0x20_1000..0x20_2000]);
    assert!(out.free.is_empty(), "the grant's capability is live");
    table.return_cap(APP, &cap).unwrap();
    let out = ledger.reclaim(&live(&table), false, None);
    assert_eq!(
        out.free,
        [Span(0x20_0000..0x20_1000), Span(0x20_2000..0x20_3000)]
    );
    assert_eq!(kept(&ledger), [(0x20_1000..0x20_2000, APP)]);
    assert_eq!(
        ledger.held(APP),
        0x1000,
        "still charged for the revoked page"
    );
    let out = ledger.reclaim(&live(&table), false, Some(APP));
    assert!(out.free.is_empty(), "the region's holder has not ended");
    let out = ledger.reclaim(&live(&table), false, Some(OTHER));
    assert_eq!(out.remap, vec![0x20_1000..0x20_2000]);
    assert_eq!(out.free, [Span(0x20_1000..0x20_2000)]);
    assert_eq!(ledger.held(APP), 0);
}

#[test]
fn a_mapping_the_holder_forgot_or_mapped_again_is_revoked_as_it_is_now() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    let cap = mint(&mut table, APP, 0x20_0000, 0x2000);
    ledger.record_grant(APP, Span(0x20_0000..0x20_2000), 0x2000);
    ledger.record_mapping(cap.id(), 0x20_0000..0x20_2000, APP);
    // Split: the holder used the capability, so no view of the old range is left.
    ledger.forget_mapping(cap.id());
    let high = table.split(APP, &cap, 0x1000).unwrap();
    ledger.record_mapping(high.id(), 0x20_1000..0x20_2000, APP);
    ledger.record_mapping(high.id(), 0x20_1000..0x20_2000, OTHER);
    // The kernel's revoke by the grant's name takes both pieces.
    table
        .revoke(&Kernel, cap.id(), rexo_captable::RevokeReason::Kernel)
        .unwrap();
    let out = ledger.reclaim(&live(&table), true, None);
    assert_eq!(
        out.unmap,
        vec![0x20_1000..0x20_2000],
        "the low half had no view; the high half recorded once, as mapped last"
    );
    assert!(
        ledger
            .reclaim(&live(&table), false, Some(APP))
            .free
            .is_empty()
    );
    let out = ledger.reclaim(&live(&table), false, Some(OTHER));
    assert_eq!((out.remap.len(), out.free.len()), (1, 1));
    assert_eq!(
        ledger.held(APP),
        0x2000 - 0x2000,
        "the charge went with the frames"
    );
}

/// Random grants, maps, splits, derives, delegations, returns, forced revocations and
/// ends against a model: frames are freed exactly once, never while a live capability or
/// a revoked region covers them; after every step each owner is charged exactly the
/// frames the books still keep for it; at the end every frame granted has gone back.
#[test]
fn random_operations_never_free_frames_in_use() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed * 0x9E37_79B9);
        let mut table = Table::new();
        let mut ledger = Ledger::new(4);
        let mut caps: Vec<(Cap, OwnerId)> = Vec::new();
        let mut unmapped: Vec<Range<u64>> = Vec::new();
        let mut freed: Vec<Range<u64>> = Vec::new();
        let mut granted = 0;
        let mut next = 0x10_0000u64;
        for owner in 1..4 {
            table.start_owner(&Kernel, OwnerId(owner)).unwrap();
        }
        for _ in 0..200 {
            let forced;
            let mut ended = None;
            match rng.below(8) {
                0 => {
                    let owner = OwnerId(1 + rng.below(3) as u16);
                    let len = FRAME * (1 + rng.below(6) as u64);
                    ledger.charge(owner, len).unwrap();
                    let cap = mint(&mut table, owner, next, len);
                    ledger.record_grant(owner, Span(next..next + len), len);
                    granted += len;
                    next += len + FRAME;
                    caps.push((cap, owner));
                    forced = false;
                }
                1 if !caps.is_empty() => {
                    let (cap, owner) = &caps[rng.below(caps.len())];
                    let info = table.check(*owner, cap, Rights::READ);
                    if let Ok(info) = info {
                        let range = info.resource.start()..info.resource.end();
                        ledger.record_mapping(cap.id(), range, *owner);
                    }
                    forced = false;
                }
                2 if !caps.is_empty() => {
                    let (cap, owner) = &caps[rng.below(caps.len())];
                    let offset = FRAME * (1 + rng.below(3) as u64);
                    if let Ok(half) = table.split(*owner, cap, offset) {
                        caps.push((half, *owner));
                    }
                    forced = false;
                }
                3 if !caps.is_empty() => {
                    let (cap, owner) = caps.swap_remove(rng.below(caps.len()));
                    let _ = table.return_cap(owner, &cap);
                    forced = false;
                }
                4 if !caps.is_empty() => {
                    let (cap, _) = caps.swap_remove(rng.below(caps.len()));
                    let reason = rexo_captable::RevokeReason::DeadlinePassed;
                    let _ = table.revoke(&Kernel, cap.id(), reason);
                    forced = true;
                }
                5 if !caps.is_empty() => {
                    let pick = rng.below(caps.len());
                    let (cap, owner) = &mut caps[pick];
                    let to = OwnerId(1 + rng.below(3) as u16);
                    if table.delegate(*owner, cap, to).is_ok() {
                        *owner = to;
                    }
                    forced = false;
                }
                6 if !caps.is_empty() => {
                    let (cap, owner) = &caps[rng.below(caps.len())];
                    if let Ok(info) = table.check(*owner, cap, Rights::READ) {
                        let pages = info.resource.len() / FRAME;
                        let first = rng.below(pages as usize) as u64;
                        let len = FRAME * (1 + rng.below((pages - first) as usize) as u64);
                        let start = info.resource.start() + first * FRAME;
                        let rights = Rights::READ | Rights::DELEGATE;
                        if let Ok(child) = table.derive(*owner, cap, start, len, rights) {
                            caps.push((child, *owner));
                        }
                    }
                    forced = false;
                }
                _ => {
                    let owner = OwnerId(1 + rng.below(3) as u16);
                    table.release_owner(&Kernel, owner, None).unwrap();
                    table.start_owner(&Kernel, owner).unwrap();
                    caps.retain(|(_, o)| *o != owner);
                    ended = Some(owner);
                    forced = false;
                }
            }
            let out = ledger.reclaim(&live(&table), forced, ended);
            unmapped.extend(out.unmap);
            for range in out.remap {
                let at = unmapped.iter().position(|r| *r == range);
                unmapped.swap_remove(at.expect("only what was unmapped is mapped back"));
            }
            for Span(range) in out.free {
                assert!(!freed.iter().any(|f| overlaps(f, &range)), "freed twice");
                assert!(
                    !live(&table).iter().any(|(_, r)| overlaps(r, &range)),
                    "freed under a live capability (seed {seed})"
                );
                assert!(
                    !unmapped.iter().any(|r| overlaps(r, &range)),
                    "freed while unmapped (seed {seed})"
                );
                freed.push(range);
            }
            for owner in (1..4).map(OwnerId) {
                let kept = ledger.grants.iter().filter(|(_, o)| *o == owner);
                let bytes: u64 = kept.map(|(Span(r), _)| r.end - r.start).sum();
                assert_eq!(ledger.held(owner), bytes, "charges (seed {seed})");
            }
        }
        for owner in 1..4 {
            table.release_owner(&Kernel, OwnerId(owner), None).unwrap();
            let out = ledger.reclaim(&live(&table), false, Some(OwnerId(owner)));
            freed.extend(out.free.into_iter().map(|Span(r)| r));
        }
        let total: u64 = freed.iter().map(|r| r.end - r.start).sum();
        assert_eq!(
            total, granted,
            "every frame granted went back (seed {seed})"
        );
        for owner in 1..4 {
            assert_eq!(ledger.held(OwnerId(owner)), 0, "seed {seed}");
        }
        assert!(ledger.revoked().is_empty() && ledger.grants.is_empty());
    }
}

#[test]
fn a_buffer_touching_a_revoked_region_is_known_to_the_byte() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    let cap = mint(&mut table, APP, 0x60_0000, 0x2000);
    ledger.record_grant(APP, Span(0x60_0000..0x60_2000), 0x2000);
    ledger.record_mapping(cap.id(), 0x60_0000..0x60_2000, APP);
    assert!(
        !ledger.touches_revoked(0x60_0000, 0x2000),
        "mapped, not revoked"
    );
    table
        .revoke(&Kernel, cap.id(), rexo_captable::RevokeReason::Kernel)
        .unwrap();
    ledger.reclaim(&live(&table), true, None);
    assert!(ledger.touches_revoked(0x60_1fff, 1), "its last byte");
    assert!(
        ledger.touches_revoked(0x5f_f000, 0x1001),
        "a buffer ending in it"
    );
    assert!(
        !ledger.touches_revoked(0x5f_f000, 0x1000),
        "one that ends before it"
    );
    assert!(
        !ledger.touches_revoked(0x60_2000, 64),
        "one that starts after it"
    );
    assert!(
        !ledger.touches_revoked(0x60_1000, 0),
        "an empty buffer touches nothing"
    );
    assert!(
        ledger.touches_revoked(0x5f_0000, u64::MAX),
        "a length past the end saturates"
    );
}

const LENDER: OwnerId = OwnerId(3);

#[test]
fn runs_started_side_by_side_share_what_their_lender_has_left() {
    let mut ledger = Ledger::<Span>::new(4);
    ledger
        .start_run(LENDER, Quota::Fixed(Some(8 << 20)))
        .unwrap();
    ledger.charge(LENDER, 2 << 20).unwrap();
    // Two runs started by the lender's tasks on two cores: the first gets the rest, the
    // second what is left after that loan (nothing).
    assert_eq!(
        ledger.start_run(APP, Quota::LentBy(LENDER)),
        Ok(Some(6 << 20))
    );
    assert_eq!(ledger.start_run(OTHER, Quota::LentBy(LENDER)), Ok(Some(0)));
    assert_eq!(ledger.charge(LENDER, 4096), Err(LedgerError::QuotaExceeded));
    ledger.charge(APP, 6 << 20).unwrap();
    assert_eq!(ledger.charge(OTHER, 4096), Err(LedgerError::QuotaExceeded));
    // The second run ends first: the first one's loan still counts for the lender.
    ledger.end_run(OTHER);
    assert_eq!(ledger.charge(LENDER, 4096), Err(LedgerError::QuotaExceeded));
    // Once the first ends too, the lender has its own rest back, and no more.
    ledger.uncharge(APP, 6 << 20);
    ledger.end_run(APP);
    ledger.charge(LENDER, 6 << 20).unwrap();
    assert_eq!(ledger.charge(LENDER, 1), Err(LedgerError::QuotaExceeded));
    assert_eq!(ledger.held(LENDER), 8 << 20);
}

#[test]
fn a_run_lent_by_an_owner_with_no_quota_has_none_and_lends_nothing() {
    let mut ledger = Ledger::<Span>::new(4);
    assert_eq!(ledger.start_run(APP, Quota::LentBy(LENDER)), Ok(None));
    assert_eq!(ledger.charge(APP, u64::MAX), Ok(()));
    ledger.start_run(LENDER, Quota::Fixed(Some(4096))).unwrap();
    assert_eq!(ledger.charge(LENDER, 4096), Ok(()), "nothing was lent");
}

#[test]
fn a_refused_start_changes_nothing() {
    let mut ledger = Ledger::<Span>::new(4);
    ledger.start_run(LENDER, Quota::Fixed(Some(8192))).unwrap();
    let beyond = OwnerId(4);
    assert_eq!(
        ledger.start_run(beyond, Quota::LentBy(LENDER)),
        Err(LedgerError::BadOwner(beyond))
    );
    assert_eq!(
        ledger.start_run(APP, Quota::LentBy(beyond)),
        Err(LedgerError::BadOwner(beyond))
    );
    assert_eq!(
        ledger.start_run(LENDER, Quota::LentBy(LENDER)),
        Err(LedgerError::BadOwner(LENDER))
    );
    assert_eq!(ledger.charge(APP, u64::MAX), Ok(()), "APP got no quota");
    ledger.charge(LENDER, 8192).unwrap();
    assert_eq!(ledger.charge(LENDER, 1), Err(LedgerError::QuotaExceeded));
}

#[test]
fn a_run_started_again_pays_its_old_loan_back_first() {
    let mut ledger = Ledger::<Span>::new(4);
    ledger.start_run(LENDER, Quota::Fixed(Some(8192))).unwrap();
    assert_eq!(ledger.start_run(APP, Quota::LentBy(LENDER)), Ok(Some(8192)));
    assert_eq!(ledger.start_run(APP, Quota::LentBy(LENDER)), Ok(Some(8192)));
    ledger.end_run(APP);
    assert_eq!(
        ledger.charge(LENDER, 8192),
        Ok(()),
        "the loan was paid back once"
    );
    assert_eq!(ledger.end_run(LENDER), None, "a run of its own quota");
    assert_eq!(
        ledger.charge(LENDER, 1),
        Ok(()),
        "an ended run has no quota"
    );
}

#[test]
fn a_lent_runs_grant_handed_away_stays_charged_to_the_lender_after_the_run() {
    let mut table = Table::new();
    let mut ledger = Ledger::<Span>::new(4);
    ledger
        .start_run(LENDER, Quota::Fixed(Some(0x4000)))
        .unwrap();
    assert_eq!(
        ledger.start_run(APP, Quota::LentBy(LENDER)),
        Ok(Some(0x4000))
    );
    table.start_owner(&Kernel, OTHER).unwrap();
    // The run takes the whole loan in two grants and hands one to another app.
    let mut grant = |table: &mut Table, start| {
        ledger.charge(APP, 0x2000).unwrap();
        ledger.record_grant(APP, Span(start..start + 0x2000), 0x2000);
        mint(table, APP, start, 0x2000)
    };
    let _kept = grant(&mut table, 0x10_0000);
    let handed = grant(&mut table, 0x20_0000);
    table.delegate(APP, &handed, OTHER).unwrap();
    // It ends: what it still held goes back, what it handed away lives on.
    assert_eq!(ledger.end_run(APP), Some(LENDER));
    table.release_owner(&Kernel, APP, Some(LENDER)).unwrap();
    let freed = ledger.reclaim(&live(&table), false, Some(APP)).free;
    assert_eq!(freed, [Span(0x10_0000..0x10_2000)]);
    assert_eq!(ledger.held(APP), 0);
    assert_eq!(
        ledger.held(LENDER),
        0x2000,
        "the lender answers for the live grant"
    );
    assert_eq!(
        ledger.charge(LENDER, 0x2001),
        Err(LedgerError::QuotaExceeded)
    );
    ledger.charge(LENDER, 0x2000).unwrap();
    // Once the other app gives it back, the charge goes.
    table.return_cap(OTHER, &handed).unwrap();
    let freed = ledger.reclaim(&live(&table), false, None).free;
    assert_eq!(freed, [Span(0x20_0000..0x20_2000)]);
    assert_eq!(ledger.held(LENDER), 0x2000);
}

#[test]
fn a_grant_reserves_whole_frames_and_refuses_no_bytes_and_past_u64_apart_from_the_quota() {
    let mut ledger = Ledger::<Span>::new(4);
    ledger.start_run(APP, Quota::Fixed(Some(0x3000))).unwrap();
    assert_eq!(ledger.reserve_frames(APP, 0), Err(LedgerError::ZeroSize));
    assert_eq!(
        ledger.reserve_frames(OTHER, 0),
        Err(LedgerError::ZeroSize),
        "no quota"
    );
    assert_eq!(ledger.reserve_frames(APP, 5000), Ok(0x2000));
    assert_eq!(ledger.reserve_frames(APP, 1), Ok(0x1000));
    assert_eq!(
        ledger.reserve_frames(APP, 1),
        Err(LedgerError::QuotaExceeded)
    );
    assert_eq!(
        ledger.reserve_frames(APP, u64::MAX),
        Err(LedgerError::QuotaExceeded),
        "past any quota"
    );
    assert_eq!(
        ledger.reserve_frames(OTHER, u64::MAX),
        Err(LedgerError::TooLarge),
        "no quota: no memory holds it"
    );
    assert_eq!(ledger.held(APP), 0x3000, "refusals charge nothing");
    assert_eq!(ledger.held(OTHER), 0);
}
