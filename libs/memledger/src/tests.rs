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
fn a_split_half_returned_does_not_free_its_siblings_frames() {
    let mut table = Table::new();
    let mut ledger = Ledger::new(4);
    let low = mint(&mut table, APP, 0x40_0000, 0x2000);
    ledger.record_grant(APP, Span(0x40_0000..0x40_2000), 0x2000);
    let high = table.split(APP, &low, 0x1000).unwrap();
    table.return_cap(APP, &low).unwrap();
    assert!(ledger.reclaim(&live(&table), false, None).free.is_empty());
    table.return_cap(APP, &high).unwrap();
    assert_eq!(ledger.reclaim(&live(&table), false, None).free.len(), 1);
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

/// Random grants, maps, splits, returns, forced revocations and ends against a model:
/// frames are freed exactly once, never while a live capability or a revoked region
/// covers them, and every charge goes back.
#[test]
fn random_operations_never_free_frames_in_use() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed * 0x9E37_79B9);
        let mut table = Table::new();
        let mut ledger = Ledger::new(4);
        let mut caps: Vec<(Cap, OwnerId)> = Vec::new();
        let mut unmapped: Vec<Range<u64>> = Vec::new();
        let mut freed: Vec<Range<u64>> = Vec::new();
        let mut next = 0x10_0000u64;
        for _ in 0..200 {
            let forced;
            let mut ended = None;
            match rng.below(6) {
                0 => {
                    let owner = OwnerId(1 + rng.below(3) as u16);
                    let len = 0x1000 * (1 + rng.below(4) as u64);
                    ledger.charge(owner, len).unwrap();
                    let cap = mint(&mut table, owner, next, len);
                    ledger.record_grant(owner, Span(next..next + len), len);
                    next += len + 0x1000;
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
                    if let Ok(half) = table.split(*owner, cap, 0x1000) {
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
                _ => {
                    let owner = OwnerId(1 + rng.below(3) as u16);
                    table.release_owner(&Kernel, owner, None).unwrap();
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
        }
        for owner in 1..4 {
            table.release_owner(&Kernel, OwnerId(owner), None).unwrap();
            let out = ledger.reclaim(&live(&table), false, Some(OwnerId(owner)));
            freed.extend(out.free.into_iter().map(|Span(r)| r));
        }
        let total: u64 = freed.iter().map(|r| r.end - r.start).sum();
        let granted: u64 = next - 0x10_0000;
        assert!(total <= granted);
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
