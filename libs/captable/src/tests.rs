//! Unit tests: one or more per operation and per error.

use crate::table::Slot;
use crate::*;

struct Kernel;
type Table = CapTable<Kernel, 16, 4, 3>;

const APP: OwnerId = OwnerId(1);
const OTHER: OwnerId = OwnerId(2);
const RW: Rights = Rights::READ.union(Rights::WRITE);
/// The most shares of one root the tests' `mint_child` makes, past what they make.
const SHARES: usize = 8;

fn mem(start: u64, len: u64) -> Resource {
    Resource::new(ResourceKind::Memory, start, len).expect("valid range")
}

/// A table where `APP` and `OTHER` run, with a memory root of `rights` held by `APP`.
fn setup(rights: Rights) -> (Table, Cap) {
    let mut t = Table::new();
    t.start_owner(&Kernel, APP).expect("start APP");
    t.start_owner(&Kernel, OTHER).expect("start OTHER");
    let cap = t
        .mint(&Kernel, APP, mem(0x10_0000, 0x10_0000), rights)
        .expect("mint");
    (t, cap)
}

/// The slots the table's scans were given, on one test's thread.
pub(crate) mod slot_watch {
    use core::cell::Cell;

    std::thread_local! {
        /// The slots counted so far.
        static SCANNED: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts `slots` slots given to one scan.
    pub(crate) fn scanned(slots: usize) {
        SCANNED.set(SCANNED.get() + slots);
    }

    /// The slots scans were given while `run` ran.
    pub(crate) fn scanned_by(run: impl FnOnce()) -> usize {
        let before = SCANNED.get();
        run();
        SCANNED.get() - before
    }
}

// ---- rights and resources ----

#[test]
fn rights_set_operations_and_display() {
    let r = Rights::READ | Rights::MAP;
    assert!(r.contains(Rights::READ) && !r.contains(Rights::WRITE));
    assert_eq!(r.difference(Rights::READ), Rights::MAP);
    assert_eq!(r & Rights::MAP, Rights::MAP);
    assert_eq!(r.to_string(), "READ|MAP");
    assert_eq!(Rights::NONE.to_string(), "none");
    assert_eq!(Rights::from_bits(0x40), None);
    assert_eq!(Rights::from_bits(Rights::ALL.bits()), Some(Rights::ALL));
}

#[test]
fn resources_are_validated() {
    assert_eq!(
        Resource::new(ResourceKind::Memory, 0, 0),
        Err(CapError::BadRange)
    );
    assert_eq!(
        Resource::new(ResourceKind::Memory, 0x800, 0x1000),
        Err(CapError::BadRange)
    );
    assert_eq!(
        Resource::new(ResourceKind::DmaBuffer, 0, 0x1001),
        Err(CapError::BadRange)
    );
    assert_eq!(
        Resource::new(ResourceKind::Core, u64::MAX, 2),
        Err(CapError::BadRange)
    );
    assert_eq!(
        Resource::new(ResourceKind::InterruptVector, 250, 7),
        Err(CapError::BadRange)
    );
    let v = Resource::new(ResourceKind::InterruptVector, 32, 224).expect("vectors 32..256");
    assert_eq!((v.start(), v.len(), v.end()), (32, 224, 256));
    assert_eq!(v.page_size(), None);
    assert_eq!(v.to_string(), "vector 32..256");
    assert_eq!(mem(0x1000, 0x1000).page_size(), Some(PageSize::Size4K));
    assert_eq!(
        mem(0x20_0000, 0x40_0000).page_size(),
        Some(PageSize::Size2M)
    );
    assert_eq!(mem(1 << 30, 1 << 30).page_size(), Some(PageSize::Size1G));
    assert_eq!(mem(0x1000, 0x1000).to_string(), "memory 0x1000..0x2000");
    let core = Resource::new(ResourceKind::Core, 0, 4).expect("cores");
    assert!(
        !core.overlaps(&mem(0, 0x1000)),
        "kinds never overlap each other"
    );
}

// ---- mint ----

#[test]
fn mint_gives_a_working_cap_and_refuses_bad_input() {
    let (mut t, cap) = setup(RW);
    let info = t.check(APP, &cap, Rights::READ).expect("check");
    assert_eq!(
        (info.owner, info.resource, info.rights),
        (APP, mem(0x10_0000, 0x10_0000), RW)
    );
    assert_eq!(info.parent, None);
    assert_eq!(
        t.mint(&Kernel, OwnerId(4), mem(0, 0x1000), RW)
            .map(|c| c.id()),
        Err(CapError::BadOwner(OwnerId(4)))
    );
    assert_eq!(
        t.mint(&Kernel, OTHER, mem(0x1F_F000, 0x2000), RW)
            .map(|c| c.id()),
        Err(CapError::Overlaps)
    );
    // Another kind over the same numbers does not overlap.
    let cores = Resource::new(ResourceKind::Core, 0x10_0000, 1).expect("cores");
    assert!(t.mint(&Kernel, OTHER, cores, RW).is_ok());
}

#[test]
fn mint_child_shares_a_kernel_root_among_holders() {
    let mut t = Table::new();
    let vector = |v| Resource::new(ResourceKind::InterruptVector, v, 1).expect("vector");
    let all = Resource::new(ResourceKind::InterruptVector, 32, 224).expect("vectors");
    let root = t
        .mint(&Kernel, OwnerId(0), all, Rights::READ | Rights::REVOKE)
        .expect("root");
    // Two holders share vector 219 (a shared line): children may overlap.
    let a = t.mint_child(&Kernel, root.id(), APP, vector(219), Rights::READ, SHARES);
    let b = t.mint_child(&Kernel, root.id(), OTHER, vector(219), Rights::READ, SHARES);
    let (a, b) = (a.expect("first share"), b.expect("second share"));
    assert_eq!(
        t.check(APP, &a, Rights::READ).map(|e| e.parent),
        Ok(Some(root.id()))
    );
    assert_eq!(t.check(APP, &b, Rights::READ), Err(CapError::NotOwner));
    // Refusals change nothing.
    let live = t.live();
    assert_eq!(
        t.mint_child(&Kernel, root.id(), APP, vector(219), Rights::WRITE, SHARES),
        Err(CapError::NoRight(Rights::WRITE))
    );
    assert_eq!(
        t.mint_child(&Kernel, root.id(), APP, vector(16), Rights::READ, SHARES),
        Err(CapError::OutOfRange)
    );
    assert_eq!(
        t.mint_child(
            &Kernel,
            root.id(),
            APP,
            mem(0, 0x1000),
            Rights::READ,
            SHARES
        ),
        Err(CapError::OutOfRange),
        "another kind is outside the parent"
    );
    assert_eq!(
        t.mint_child(
            &Kernel,
            root.id(),
            OwnerId(9),
            vector(33),
            Rights::READ,
            SHARES
        ),
        Err(CapError::BadOwner(OwnerId(9)))
    );
    assert_eq!(t.live(), live);
    // Each share goes alone; a returned parent is refused as a parent.
    assert_eq!(t.return_cap(APP, &a), Ok(1));
    assert_eq!(t.check(APP, &a, Rights::READ), Err(CapError::Revoked));
    assert!(t.check(OTHER, &b, Rights::READ).is_ok());
    assert_eq!(t.return_cap(OwnerId(0), &root), Ok(2));
    assert_eq!(t.check(OTHER, &b, Rights::READ), Err(CapError::Revoked));
    assert_eq!(
        t.mint_child(&Kernel, root.id(), APP, vector(33), Rights::READ, SHARES),
        Err(CapError::Revoked)
    );
}

#[test]
fn mint_reports_full() {
    let mut t = Table::new();
    for i in 0..16 {
        t.mint(&Kernel, APP, mem(i * 0x1000, 0x1000), RW)
            .expect("room");
    }
    assert_eq!(
        t.mint(&Kernel, APP, mem(0x10_0000, 0x1000), RW)
            .map(|c| c.id()),
        Err(CapError::Full)
    );
    assert_eq!(t.live(), t.capacity());
}

// ---- check ----

#[test]
fn check_refuses_missing_rights_wrong_owner_and_other_tables() {
    let (t, cap) = setup(Rights::READ);
    assert_eq!(
        t.check(APP, &cap, RW).map(|_| ()),
        Err(CapError::NoRight(Rights::WRITE))
    );
    assert_eq!(
        t.check(OTHER, &cap, Rights::READ).map(|_| ()),
        Err(CapError::NotOwner)
    );
    let (t2, _) = setup(RW);
    assert_ne!(t.id(), t2.id());
    assert_eq!(
        t2.check(APP, &cap, Rights::NONE).map(|_| ()),
        Err(CapError::WrongTable)
    );
}

#[test]
fn check_access_checks_kind_and_range() {
    let (t, cap) = setup(RW);
    assert_eq!(
        t.check_access(APP, &cap, Rights::READ, &mem(0x10_0000, 0x1000)),
        Ok(())
    );
    assert_eq!(
        t.check_access(APP, &cap, Rights::READ, &mem(0x1F_F000, 0x2000)),
        Err(CapError::OutOfRange)
    );
    let core = Resource::new(ResourceKind::Core, 0, 1).expect("core");
    assert_eq!(
        t.check_access(APP, &cap, Rights::READ, &core),
        Err(CapError::WrongKind)
    );
    // Another kind is refused as such, before the rights it lacks (a core's capability
    // handed in as a timer's has no read right).
    assert_eq!(
        t.check_access(APP, &cap, Rights::EXECUTE, &core),
        Err(CapError::WrongKind)
    );
    assert_eq!(
        t.check_access(APP, &cap, Rights::EXECUTE, &mem(0x10_0000, 0x1000)),
        Err(CapError::NoRight(Rights::EXECUTE))
    );
}

// ---- derive ----

#[test]
fn derive_narrows_and_records_its_parent() {
    let (mut t, cap) = setup(RW);
    let child = t
        .derive(APP, &cap, 0x10_1000, 0x2000, Rights::READ)
        .expect("derive");
    let info = t.check(APP, &child, Rights::READ).expect("child works");
    assert_eq!(info.parent, Some(cap.id()));
    assert_eq!(info.resource, mem(0x10_1000, 0x2000));
    assert_eq!(
        t.check(APP, &child, Rights::WRITE).map(|_| ()),
        Err(CapError::NoRight(Rights::WRITE))
    );
}

#[test]
fn derive_never_grows_rights_or_range() {
    let (mut t, cap) = setup(Rights::READ);
    let err = |r: Result<Cap, CapError>| r.map(|c| c.id()).unwrap_err();
    assert_eq!(
        err(t.derive(APP, &cap, 0x10_0000, 0x1000, RW)),
        CapError::NoRight(Rights::WRITE)
    );
    assert_eq!(
        err(t.derive(APP, &cap, 0xF_F000, 0x2000, Rights::READ)),
        CapError::OutOfRange
    );
    assert_eq!(
        err(t.derive(APP, &cap, 0x1F_F000, 0x2000, Rights::READ)),
        CapError::OutOfRange
    );
    assert_eq!(
        err(t.derive(APP, &cap, 0x10_0800, 0x1000, Rights::READ)),
        CapError::BadRange
    );
    assert_eq!(
        err(t.derive(APP, &cap, u64::MAX - 0xFFF, 0x2000, Rights::READ)),
        CapError::BadRange
    );
    assert_eq!(
        err(t.derive(OTHER, &cap, 0x10_0000, 0x1000, Rights::READ)),
        CapError::NotOwner
    );
    assert_eq!(t.live(), 1, "refused derives leave nothing behind");
}

// ---- split and merge ----

#[test]
fn split_in_place_then_merge_back() {
    let (mut t, cap) = setup(RW);
    let high = t.split(APP, &cap, 0x4000).expect("split");
    assert_eq!(
        t.check(APP, &cap, RW).map(|i| i.resource),
        Ok(mem(0x10_0000, 0x4000))
    );
    assert_eq!(
        t.check(APP, &high, RW).map(|i| i.resource),
        Ok(mem(0x10_4000, 0xFC000))
    );
    t.merge(APP, &high, &cap).expect("merge in either order");
    assert_eq!(
        t.check(APP, &high, RW).map(|i| i.resource),
        Ok(mem(0x10_0000, 0x10_0000))
    );
    assert_eq!(
        t.check(APP, &cap, RW).map(|_| ()),
        Err(CapError::Revoked),
        "merged-away handle"
    );
}

#[test]
fn split_refuses_bad_offsets_and_children() {
    let (mut t, cap) = setup(RW);
    let err = |r: Result<Cap, CapError>| r.map(|c| c.id()).unwrap_err();
    assert_eq!(err(t.split(APP, &cap, 0)), CapError::OutOfRange);
    assert_eq!(err(t.split(APP, &cap, 0x10_0000)), CapError::OutOfRange);
    assert_eq!(err(t.split(APP, &cap, 0x800)), CapError::BadRange);
    let _child = t
        .derive(APP, &cap, 0x10_0000, 0x1000, Rights::READ)
        .expect("derive");
    assert_eq!(err(t.split(APP, &cap, 0x4000)), CapError::HasChildren);
    assert_eq!(err(t.split(OTHER, &cap, 0x4000)), CapError::NotOwner);
}

#[test]
fn merge_refuses_non_siblings_gaps_and_differing_rights() {
    let (mut t, root) = setup(RW);
    let a = t.derive(APP, &root, 0x10_0000, 0x1000, RW).expect("a");
    let b = t.derive(APP, &root, 0x10_2000, 0x1000, RW).expect("b");
    let c = t
        .derive(APP, &root, 0x10_1000, 0x1000, Rights::READ)
        .expect("c");
    let grandchild = t
        .derive(APP, &a, 0x10_0000, 0x1000, RW)
        .expect("grandchild");
    assert_eq!(t.merge(APP, &a, &a), Err(CapError::NotSiblings));
    assert_eq!(t.merge(APP, &b, &grandchild), Err(CapError::NotSiblings));
    assert_eq!(t.merge(APP, &a, &b), Err(CapError::NotAdjacent));
    assert_eq!(t.merge(APP, &b, &c), Err(CapError::RightsDiffer));
    let d = t.derive(APP, &root, 0x10_3000, 0x1000, RW).expect("d");
    assert_eq!(t.merge(OTHER, &b, &d), Err(CapError::NotOwner));
    t.delegate(APP, &root, APP)
        .expect_err("root lacks DELEGATE");
    let cores = Resource::new(ResourceKind::Core, 0, 2).expect("cores");
    let core_root = t.mint(&Kernel, APP, cores, RW).expect("cores");
    let core_half = t.split(APP, &core_root, 1).expect("split cores");
    assert_eq!(
        t.merge(APP, &core_root, &root),
        Err(CapError::NotSiblings),
        "kinds differ"
    );
    let _kid = t.derive(APP, &core_half, 1, 1, RW).expect("kid");
    assert_eq!(
        t.merge(APP, &core_root, &core_half),
        Err(CapError::HasChildren)
    );
    t.merge(APP, &b, &d).expect("adjacent siblings merge");
}

#[test]
fn roots_granted_apart_are_not_siblings_and_each_stays_revocable_by_name() {
    let mut t = Table::new();
    t.start_owner(&Kernel, APP).expect("start APP");
    t.start_owner(&Kernel, OTHER).expect("start OTHER");
    let all = RW | Rights::DELEGATE;
    let a = t
        .grant(&Kernel, APP, mem(0x10_0000, 0x2000), all)
        .expect("a");
    let b = t
        .grant(&Kernel, APP, mem(0x10_2000, 0x1000), all)
        .expect("b");
    assert_eq!(t.merge(APP, &a, &b), Err(CapError::NotSiblings));
    assert_eq!(t.merge(APP, &b, &a), Err(CapError::NotSiblings));
    // Nor does a grant delegated from another owner join one's own.
    let theirs = t
        .grant(&Kernel, OTHER, mem(0x10_3000, 0x1000), all)
        .expect("c");
    t.delegate(OTHER, &theirs, APP).expect("delegate");
    assert_eq!(t.merge(APP, &b, &theirs), Err(CapError::NotSiblings));
    // Pieces split from one grant still merge back, whichever was split last.
    let a_high = t.split(APP, &a, 0x1000).expect("split a");
    assert_eq!(t.merge(APP, &a_high, &b), Err(CapError::NotSiblings));
    t.merge(APP, &a_high, &a).expect("the pieces of a merge");
    // The kernel takes b by the name it granted it under, and nothing else.
    let taken = t.revoke(&Kernel, b.id(), RevokeReason::Kernel).expect("b");
    assert_eq!((taken.resource, taken.entries), (mem(0x10_2000, 0x1000), 1));
    let write =
        |t: &Table, cap: &Cap, start| t.check_access(APP, cap, Rights::WRITE, &mem(start, 0x1000));
    assert_eq!(write(&t, &a_high, 0x10_2000), Err(CapError::OutOfRange));
    assert_eq!(write(&t, &a_high, 0x10_1000), Ok(()));
    assert_eq!(write(&t, &theirs, 0x10_3000), Ok(()));
}

#[test]
fn a_refused_merge_leaves_the_sibling_working_and_a_merged_one_revoked() {
    let (mut t, root) = setup(RW);
    let a = t.derive(APP, &root, 0x10_0000, 0x1000, RW).expect("a");
    let far = t.derive(APP, &root, 0x10_2000, 0x1000, RW).expect("far");
    let near = t.derive(APP, &root, 0x10_1000, 0x1000, RW).expect("near");
    assert_eq!(t.merge(APP, &a, &far), Err(CapError::NotAdjacent));
    let write =
        |t: &Table, cap: &Cap, start| t.check_access(APP, cap, Rights::WRITE, &mem(start, 0x1000));
    assert_eq!(
        write(&t, &far, 0x10_2000),
        Ok(()),
        "the refused sibling writes"
    );
    assert_eq!(t.return_cap(APP, &far), Ok(1), "and returns");
    t.merge(APP, &a, &near).expect("adjacent siblings merge");
    assert_eq!(write(&t, &a, 0x10_1000), Ok(()), "a covers both");
    assert_eq!(write(&t, &near, 0x10_1000), Err(CapError::Revoked));
    assert_eq!(t.return_cap(APP, &near), Err(CapError::Revoked));
}

// ---- delegate and return ----

#[test]
fn delegate_moves_the_entry_and_needs_the_right() {
    let (mut t, cap) = setup(RW | Rights::DELEGATE);
    let plain = t
        .derive(APP, &cap, 0x10_0000, 0x1000, Rights::READ)
        .expect("derive");
    assert_eq!(
        t.delegate(APP, &plain, OTHER),
        Err(CapError::NoRight(Rights::DELEGATE))
    );
    assert_eq!(
        t.delegate(APP, &cap, OwnerId(9)),
        Err(CapError::BadOwner(OwnerId(9)))
    );
    assert_eq!(t.delegate(OTHER, &cap, OTHER), Err(CapError::NotOwner));
    let idle = OwnerId(3);
    assert_eq!(t.delegate(APP, &cap, idle), Err(CapError::NotRunning(idle)));
    t.delegate(APP, &cap, OTHER).expect("delegate");
    assert_eq!(
        t.check(APP, &cap, Rights::READ).map(|_| ()),
        Err(CapError::NotOwner)
    );
    assert!(t.check(OTHER, &cap, Rights::READ).is_ok());
    assert_eq!(t.entries_of(OTHER).count(), 1);
}

#[test]
fn delegate_checks_the_handle_before_the_receiver() {
    // CapError's order: a stale handle answers Revoked and another's handle NotOwner,
    // even when the receiver is beyond the table or ended.
    let (mut t, cap) = setup(RW | Rights::DELEGATE);
    let gone = t
        .derive(APP, &cap, 0x10_0000, 0x1000, RW | Rights::DELEGATE)
        .expect("derive");
    t.return_cap(APP, &gone).expect("return");
    let (beyond, ended) = (OwnerId(9), OwnerId(3));
    for to in [beyond, ended] {
        assert_eq!(t.delegate(APP, &gone, to), Err(CapError::Revoked));
        assert_eq!(t.delegate(OTHER, &cap, to), Err(CapError::NotOwner));
    }
    assert_eq!(
        t.delegate(APP, &cap, beyond),
        Err(CapError::BadOwner(beyond))
    );
    assert_eq!(
        t.delegate(APP, &cap, ended),
        Err(CapError::NotRunning(ended))
    );
    t.release_owner(&Kernel, OTHER, None).expect("OTHER ends");
    assert_eq!(
        t.delegate(APP, &cap, OTHER),
        Err(CapError::NotRunning(OTHER))
    );
    assert!(
        t.check(APP, &cap, Rights::READ).is_ok(),
        "a refusal keeps it"
    );
}

#[test]
fn return_frees_the_subtree_and_tells_other_holders() {
    let (mut t, cap) = setup(RW | Rights::DELEGATE);
    let lent = t
        .derive(
            APP,
            &cap,
            0x10_0000,
            0x1000,
            Rights::READ | Rights::DELEGATE,
        )
        .expect("d");
    t.delegate(APP, &lent, OTHER).expect("lend");
    assert_eq!(t.return_cap(OTHER, &cap), Err(CapError::NotOwner));
    assert_eq!(t.return_cap(APP, &cap), Ok(2));
    assert_eq!(
        t.check(OTHER, &lent, Rights::READ).map(|_| ()),
        Err(CapError::Revoked)
    );
    let lost: Vec<_> = t.repossessions(OTHER).expect("log").collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (lost[0].entry, lost[0].reason),
        (lent.id(), RevokeReason::AncestorReturned)
    );
    assert_eq!(
        t.repossessions(APP).expect("log").count(),
        0,
        "giving back is not a loss"
    );
    assert_eq!(t.return_cap(APP, &cap), Err(CapError::Revoked));
    // The range is free for the kernel to mint again.
    assert!(
        t.mint(&Kernel, OTHER, mem(0x10_0000, 0x10_0000), RW)
            .is_ok()
    );
}

// ---- revocation ----

#[test]
fn request_then_comply() {
    let (mut t, cap) = setup(RW);
    t.request_revocation(&Kernel, cap.id(), 500)
        .expect("request");
    let pending: Vec<_> = t.pending_revocations(APP).collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].state,
        EntryState::RevokeRequested { deadline_ns: 500 }
    );
    assert!(
        t.check(APP, &cap, Rights::READ).is_ok(),
        "still usable until the deadline"
    );
    let err = |r: Result<Cap, CapError>| r.map(|c| c.id()).unwrap_err();
    assert_eq!(
        err(t.derive(APP, &cap, 0x10_0000, 0x1000, RW)),
        CapError::RevocationPending
    );
    assert_eq!(err(t.split(APP, &cap, 0x1000)), CapError::RevocationPending);
    assert_eq!(t.revoke_next_expired(&Kernel, 499), None);
    assert_eq!(t.return_cap(APP, &cap), Ok(1));
    assert_eq!(t.revoke_next_expired(&Kernel, 10_000), None);
    assert_eq!(t.repossessions(APP).expect("log").count(), 0);
}

#[test]
fn deadline_passes_and_the_kernel_takes_it() {
    let (mut t, cap) = setup(RW);
    let child = t
        .derive(APP, &cap, 0x10_0000, 0x1000, Rights::READ)
        .expect("derive");
    t.request_revocation(&Kernel, cap.id(), 500)
        .expect("request");
    assert_eq!(t.merge(APP, &cap, &child), Err(CapError::RevocationPending));
    let taken = t.revoke_next_expired(&Kernel, 500).expect("expired");
    assert_eq!(
        (taken.resource, taken.entries),
        (mem(0x10_0000, 0x10_0000), 2)
    );
    assert_eq!(
        t.check(APP, &cap, Rights::NONE).map(|_| ()),
        Err(CapError::Revoked)
    );
    assert_eq!(
        t.check(APP, &child, Rights::NONE).map(|_| ()),
        Err(CapError::Revoked)
    );
    let log: Vec<_> = t.repossessions(APP).expect("log").collect();
    assert!(
        log.iter()
            .all(|r| r.reason == RevokeReason::DeadlinePassed && r.owner == APP)
    );
    assert_eq!(log.len(), 2);
    assert_eq!(
        t.request_revocation(&Kernel, cap.id(), 1),
        Err(CapError::Revoked)
    );
}

#[test]
fn forced_revoke_is_transitive_across_owners() {
    let (mut t, root) = setup(Rights::ALL);
    let a = t
        .derive(APP, &root, 0x10_0000, 0x8000, Rights::ALL)
        .expect("a");
    let b = t
        .derive(APP, &a, 0x10_0000, 0x4000, Rights::ALL)
        .expect("b");
    let c = t
        .derive(APP, &b, 0x10_0000, 0x1000, Rights::READ)
        .expect("c");
    t.delegate(APP, &b, OTHER).expect("delegate b");
    let sibling = t
        .derive(APP, &root, 0x18_0000, 0x1000, Rights::READ)
        .expect("sibling");
    let r = t
        .revoke(&Kernel, a.id(), RevokeReason::Kernel)
        .expect("revoke");
    assert_eq!(r.entries, 3);
    for cap in [&a, &c] {
        assert_eq!(
            t.check(APP, cap, Rights::NONE).map(|_| ()),
            Err(CapError::Revoked)
        );
    }
    assert_eq!(
        t.check(OTHER, &b, Rights::NONE).map(|_| ()),
        Err(CapError::Revoked)
    );
    assert!(t.check(APP, &root, Rights::NONE).is_ok());
    assert!(t.check(APP, &sibling, Rights::NONE).is_ok());
    let other: Vec<_> = t.repossessions(OTHER).expect("log").collect();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].resource, mem(0x10_0000, 0x4000));
    assert_eq!(
        other[0].to_string(),
        format!(
            "app 2 lost {} memory 0x100000..0x104000: revoked by the kernel",
            b.id()
        )
    );
}

#[test]
fn the_kernel_revokes_every_piece_of_what_it_minted_by_its_name() {
    let (mut t, root) = setup(Rights::ALL);
    let high = t.split(APP, &root, 0x8000).expect("split");
    let top = t.split(APP, &high, 0x4000).expect("split again");
    t.delegate(APP, &top, OTHER)
        .expect("delegate the top piece");
    let kid = (t.derive(OTHER, &top, 0x10_C000, 0x1000, RW)).expect("derived from a piece");
    let other_grant = t
        .grant(&Kernel, APP, mem(0x20_0000, 0x1000), RW)
        .expect("grant");
    // Asked back by its name, every piece is asked back, each of its holder.
    t.request_revocation(&Kernel, root.id(), 500)
        .expect("request");
    let asked = |t: &Table, who| t.pending_revocations(who).map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(asked(&t, APP), [root.id(), high.id()]);
    assert_eq!(asked(&t, OTHER), [top.id()]);
    // Taken by its name, every piece goes with what was derived from it, each holder told.
    let taken = t.revoke(&Kernel, root.id(), RevokeReason::Kernel);
    let whole = Revocation {
        resource: mem(0x10_0000, 0x10_0000),
        entries: 4,
    };
    assert_eq!(taken, Ok(whole));
    for (who, cap) in [(APP, &root), (APP, &high), (OTHER, &top), (OTHER, &kid)] {
        assert_eq!(
            t.check(who, cap, Rights::NONE).err(),
            Some(CapError::Revoked)
        );
    }
    let lost = |t: &Table, who| {
        let log = t.repossessions(who).expect("log");
        log.map(|r| (r.entry, r.reason)).collect::<Vec<_>>()
    };
    let kernel = RevokeReason::Kernel;
    assert_eq!(lost(&t, APP), [(root.id(), kernel), (high.id(), kernel)]);
    assert_eq!(lost(&t, OTHER), [(top.id(), kernel), (kid.id(), kernel)]);
    assert!(t.check(APP, &other_grant, RW).is_ok(), "another mint stays");
    // A mint's name reaches its pieces after its own entry was merged into one, and only
    // then: a piece's name, gone, reaches nothing.
    let cap = t
        .mint(&Kernel, APP, mem(0x40_0000, 0x2000), RW)
        .expect("mint");
    let piece = t.split(APP, &cap, 0x1000).expect("split");
    t.merge(APP, &piece, &cap).expect("merge into the piece");
    let rest = t.split(APP, &piece, 0x1000).expect("split the piece");
    t.merge(APP, &piece, &rest).expect("and merge it back");
    let taken = t.revoke(&Kernel, rest.id(), RevokeReason::Kernel);
    assert_eq!(
        taken,
        Err(CapError::Revoked),
        "the name of a piece merged away"
    );
    let taken = t
        .revoke(&Kernel, cap.id(), RevokeReason::Kernel)
        .map(|r| r.entries);
    assert_eq!(
        taken,
        Ok(1),
        "the mint's name takes the piece it was merged into"
    );
    assert_eq!(
        t.check(APP, &piece, Rights::NONE).err(),
        Some(CapError::Revoked)
    );
    let again = t.request_revocation(&Kernel, cap.id(), 1);
    assert_eq!(again, Err(CapError::Revoked), "nothing of it is left");
}

#[test]
fn revoke_derived_needs_revoke_and_a_descendant() {
    let (mut t, root) = setup(RW | Rights::REVOKE | Rights::DELEGATE);
    let lent = t
        .derive(
            APP,
            &root,
            0x10_0000,
            0x1000,
            Rights::READ | Rights::DELEGATE,
        )
        .expect("d");
    let deeper = t
        .derive(APP, &lent, 0x10_0000, 0x1000, Rights::READ)
        .expect("deeper");
    t.delegate(APP, &lent, OTHER).expect("lend");
    let (_other_table, foreign) = setup(RW);
    assert_eq!(
        t.revoke_derived(APP, &root, foreign.id()).map(|_| ()),
        Err(CapError::WrongTable)
    );
    assert_eq!(
        t.revoke_derived(OTHER, &lent, deeper.id()).map(|_| ()),
        Err(CapError::NoRight(Rights::REVOKE))
    );
    assert_eq!(
        t.revoke_derived(APP, &deeper, root.id()).map(|_| ()),
        Err(CapError::NoRight(Rights::REVOKE))
    );
    assert_eq!(
        t.revoke_derived(APP, &root, root.id()).map(|_| ()),
        Err(CapError::NotDescendant)
    );
    let r = t
        .revoke_derived(APP, &root, deeper.id())
        .expect("grandchild");
    assert_eq!(r.entries, 1);
    let r = t.revoke_derived(APP, &root, lent.id()).expect("child");
    assert_eq!(r.entries, 1);
    assert_eq!(
        t.repossessions(OTHER)
            .expect("log")
            .next()
            .map(|r| r.reason),
        Some(RevokeReason::Holder)
    );
    assert_eq!(
        t.revoke_derived(APP, &root, lent.id()).map(|_| ()),
        Err(CapError::Revoked)
    );
}

#[test]
fn a_borrower_keeps_no_part_of_a_lent_range_its_lender_revokes() {
    let mut t = Table::new();
    t.start_owner(&Kernel, APP).expect("start APP");
    t.start_owner(&Kernel, OTHER).expect("start OTHER");
    let all = RW | Rights::DELEGATE | Rights::REVOKE;
    let parent = t
        .mint(&Kernel, APP, mem(0x20_0000, 0x20_0000), all)
        .expect("mint");
    let lend = |t: &mut Table, start| {
        let child =
            (t.derive(APP, &parent, start, 0x10_0000, RW | Rights::DELEGATE)).expect("derive");
        t.delegate(APP, &child, OTHER).expect("lend");
        child
    };
    let (lent, next) = (lend(&mut t, 0x20_0000), lend(&mut t, 0x30_0000));
    // A piece split off (or two lent entries merged into one name) would be no longer
    // what the lender revokes by name: the piece would escape it.
    assert_eq!(
        t.split(OTHER, &lent, 0x1000).map(|c| c.id()),
        Err(CapError::Lent)
    );
    assert_eq!(t.merge(OTHER, &lent, &next), Err(CapError::Lent));
    assert!(CapError::Lent.to_string().contains("lent"));
    // What the borrower derives and splits for itself goes with the lent entry.
    let own = (t.derive(OTHER, &lent, 0x20_0000, 0x10_0000, RW)).expect("derive");
    let own_high = t.split(OTHER, &own, 0x1000).expect("split its own");
    let taken = t.revoke_derived(APP, &parent, lent.id()).expect("revoke");
    assert_eq!(taken.entries, 3);
    for cap in [&lent, &own, &own_high] {
        let write = t.check_access(OTHER, cap, Rights::WRITE, &mem(0x20_1000, 0x1000));
        assert_eq!(write, Err(CapError::Revoked));
    }
    let held: Vec<_> = t.entries_of(OTHER).map(|e| e.resource).collect();
    assert_eq!(held, [mem(0x30_0000, 0x10_0000)], "only the other loan");
    // Handed back to its maker, an entry is its own again.
    t.delegate(OTHER, &next, APP).expect("give back");
    t.split(APP, &next, 0x1000)
        .expect("the lender splits its own");
}

#[test]
fn release_owner_takes_everything_back() {
    let (mut t, root) = setup(Rights::ALL);
    let lent = t
        .derive(APP, &root, 0x10_0000, 0x1000, Rights::ALL)
        .expect("d");
    t.delegate(APP, &lent, OTHER).expect("lend");
    let core = Resource::new(ResourceKind::Core, 1, 1).expect("core");
    t.mint(&Kernel, APP, core, RW).expect("core");
    assert_eq!(t.release_owner(&Kernel, APP, None), Ok(3));
    assert_eq!(t.live(), 0);
    assert_eq!(
        t.repossessions(OTHER)
            .expect("log")
            .next()
            .map(|r| r.reason),
        Some(RevokeReason::OwnerReleased)
    );
    assert_eq!(t.repossessions(APP).expect("log").count(), 0);
    assert_eq!(
        t.release_owner(&Kernel, OwnerId(4), None),
        Err(CapError::BadOwner(OwnerId(4)))
    );
}

// ---- logs and listings ----

#[test]
fn logs_are_bounded_per_owner_and_count_drops() {
    let mut t = Table::new();
    for i in 0..5 {
        let cap = t
            .mint(&Kernel, APP, mem(i * 0x1000, 0x1000), RW)
            .expect("mint");
        t.revoke(&Kernel, cap.id(), RevokeReason::Kernel)
            .expect("revoke");
    }
    let log: Vec<_> = t.repossessions(APP).expect("log").collect();
    assert_eq!(log.len(), 3, "LOG = 3");
    assert_eq!(
        log[0].resource,
        mem(0x2000, 0x1000),
        "the oldest went first"
    );
    assert_eq!(t.repossessions_dropped(APP), Ok(2));
    assert_eq!(t.repossessions(OTHER).expect("log").count(), 0);
    t.clear_repossessions(APP).expect("clear");
    assert_eq!(t.repossessions(APP).expect("log").count(), 0);
    assert_eq!(t.repossessions_dropped(APP), Ok(0));
    assert!(t.repossessions(OwnerId(7)).is_err());
    assert_eq!(
        t.repossessions_dropped(OwnerId(7)),
        Err(CapError::BadOwner(OwnerId(7)))
    );
    assert_eq!(
        t.clear_repossessions(OwnerId(7)),
        Err(CapError::BadOwner(OwnerId(7)))
    );
}

#[test]
fn zero_length_log_only_counts() {
    let mut t: CapTable<Kernel, 2, 2, 0> = CapTable::new();
    let cap = t.mint(&Kernel, APP, mem(0, 0x1000), RW).expect("mint");
    t.revoke(&Kernel, cap.id(), RevokeReason::Kernel)
        .expect("revoke");
    assert_eq!(t.repossessions(APP).expect("log").count(), 0);
    assert_eq!(t.repossessions_dropped(APP), Ok(1));
}

#[test]
fn listings_show_who_holds_what() {
    let (mut t, root) = setup(Rights::ALL);
    let lent = t
        .derive(
            APP,
            &root,
            0x10_0000,
            0x1000,
            Rights::READ | Rights::DELEGATE,
        )
        .expect("d");
    t.delegate(APP, &lent, OTHER).expect("lend");
    assert_eq!(t.entries().count(), 2);
    let other: Vec<_> = t.entries_of(OTHER).collect();
    assert_eq!(other.len(), 1);
    assert_eq!((other[0].id, other[0].parent), (lent.id(), Some(root.id())));
    assert_eq!(
        other[0].id.to_string(),
        format!("#{}.{}", lent.id().index(), lent.id().generation())
    );
    assert_eq!(other[0].id.table(), t.id());
}

// ---- generations ----

#[test]
fn generations_advance_and_the_last_one_retires_the_slot() {
    let mut t: CapTable<Kernel, 1, 2, 1> = CapTable::new();
    let first = t.mint(&Kernel, APP, mem(0, 0x1000), RW).expect("mint");
    t.return_cap(APP, &first).expect("return");
    let second = t.mint(&Kernel, APP, mem(0, 0x1000), RW).expect("mint");
    assert_eq!(second.id().index(), first.id().index());
    assert_eq!(second.id().generation(), first.id().generation() + 1);
    assert_eq!(
        t.check(APP, &first, Rights::NONE).map(|_| ()),
        Err(CapError::Revoked)
    );
    t.return_cap(APP, &second).expect("return");
    // Jump to the last generation: freeing it retires the slot instead of wrapping.
    t.slots[0] = Slot {
        generation: u64::MAX - 1,
        entry: None,
    };
    let last = t
        .mint(&Kernel, APP, mem(0, 0x1000), RW)
        .expect("mint at the last generation");
    assert_eq!(last.id().generation(), u64::MAX - 1);
    t.return_cap(APP, &last).expect("return");
    assert_eq!(
        t.mint(&Kernel, APP, mem(0, 0x1000), RW).map(|c| c.id()),
        Err(CapError::Full)
    );
    assert_eq!(
        t.check(APP, &last, Rights::NONE).map(|_| ()),
        Err(CapError::Revoked)
    );
}

#[test]
fn a_slot_aged_past_two_to_the_32_keeps_minting_and_refuses_its_stale_handles() {
    // Every slot near the old u32 limit, as after 2^32 - 2 entries made and gone in each
    // (the kernel's 256 slots under one app's derive/return churn): every mint must still
    // find a slot, and the slot go on past 2^32.
    let mut t: CapTable<Kernel, 2, 2, 1> = CapTable::new();
    for slot in &mut t.slots {
        *slot = Slot {
            generation: (u32::MAX - 1).into(),
            entry: None,
        };
    }
    // New entries take the lowest free slot: slot 0 goes on from u32::MAX - 1 past 2^32
    // (with the old u32 generations it retired at once, then slot 1 did, then Full).
    let mut stale = Vec::new();
    for _ in 0..4 {
        let cap = t
            .mint(&Kernel, APP, mem(0, 0x1000), RW)
            .expect("a free slot, however old");
        t.return_cap(APP, &cap).expect("return");
        stale.push(cap);
    }
    let fresh = t.mint(&Kernel, APP, mem(0, 0x1000), RW).expect("mint");
    assert_eq!(fresh.id().index(), 0);
    assert_eq!(fresh.id().generation(), (1 << 32) + 2);
    let other = t.mint(&Kernel, APP, mem(0x1000, 0x1000), RW);
    assert_eq!(other.map(|c| c.id().index()), Ok(1), "slot 1 is free too");
    for cap in &stale {
        assert_eq!(
            t.check(APP, cap, Rights::NONE).map(|_| ()),
            Err(CapError::Revoked)
        );
    }
    assert_eq!(
        t.check(APP, &fresh, Rights::READ).map(|e| e.id),
        Ok(fresh.id())
    );
}

#[test]
fn errors_display_clearly() {
    assert_eq!(
        CapError::NoRight(Rights::DELEGATE).to_string(),
        "capability lacks right DELEGATE"
    );
    assert_eq!(
        CapError::BadOwner(OwnerId(9)).to_string(),
        "no such owner: 9"
    );
    assert_eq!(CapError::Revoked.to_string(), "capability revoked");
    assert_eq!(OwnerId::KERNEL.to_string(), "kernel");
    assert_eq!(ResourceKind::ALL.len(), 8);
}

// ---- the inbox (park and pick up) ----

/// A child of `of` over the page at `start`, with every right `of` has.
fn page(t: &mut Table, of: &Cap, start: u64) -> Cap {
    t.derive(APP, of, start, 0x1000, Rights::ALL)
        .expect("derive")
}

#[test]
fn parked_handles_are_picked_up_once_by_their_holder_and_kind() {
    let (mut t, cap) = setup(Rights::ALL);
    let id = cap.id();
    t.delegate(APP, &cap, OTHER).expect("delegate");
    t.park(&Kernel, cap);
    assert_eq!(t.parked(OTHER), 1);
    assert_eq!(t.pick_up(&Kernel, APP, ResourceKind::Memory), None);
    assert_eq!(t.pick_up(&Kernel, OTHER, ResourceKind::Core), None);
    let got = t
        .pick_up(&Kernel, OTHER, ResourceKind::Memory)
        .expect("parked");
    assert_eq!(got.id(), id);
    assert_eq!(t.pick_up(&Kernel, OTHER, ResourceKind::Memory), None);
    assert_eq!(t.check(OTHER, &got, Rights::READ).map(|e| e.id), Ok(id));
}

#[test]
fn a_parked_handle_revoked_leaves_nothing_behind() {
    // An app looping derive, delegate to itself, revoke: every parked handle goes with its
    // entry, and a reused slot does not hand out the new entry as parked.
    let (mut t, root) = setup(Rights::ALL);
    for _ in 0..10_000 {
        let child = page(&mut t, &root, 0x10_0000);
        let id = child.id();
        t.delegate(APP, &child, APP).expect("delegate to itself");
        t.park(&Kernel, child);
        t.revoke_derived(APP, &root, id).expect("revoke");
        assert_eq!(t.parked(APP), 0);
    }
    let fresh = page(&mut t, &root, 0x10_0000);
    assert_eq!(t.pick_up(&Kernel, APP, ResourceKind::Memory), None);
    t.park(&Kernel, fresh);
    t.release_owner(&Kernel, APP, None).expect("release");
    assert_eq!(t.pick_up(&Kernel, APP, ResourceKind::Memory), None);
}

#[test]
fn a_missed_deadline_blames_only_the_holder_asked() {
    // APP derives a child for itself and one it lends to OTHER; only APP was asked.
    let (mut t, cap) = setup(Rights::ALL);
    let own = page(&mut t, &cap, 0x10_0000);
    let lent = page(&mut t, &cap, 0x10_1000);
    t.delegate(APP, &lent, OTHER).expect("lend");
    t.request_revocation(&Kernel, cap.id(), 10)
        .expect("request");
    assert!(t.revoke_next_expired(&Kernel, 10).is_some());
    let reasons = |t: &Table, owner| -> Vec<_> {
        let log = t.repossessions(owner).expect("log");
        log.map(|r| (r.entry, r.reason)).collect()
    };
    let mut app = reasons(&t, APP);
    app.sort_by_key(|(entry, _)| entry.index());
    assert_eq!(
        app,
        [
            (cap.id(), RevokeReason::DeadlinePassed),
            (own.id(), RevokeReason::DeadlinePassed)
        ]
    );
    assert_eq!(
        reasons(&t, OTHER),
        [(lent.id(), RevokeReason::AncestorTaken)]
    );
}

#[test]
fn a_holder_that_missed_its_own_deadline_forfeits_when_an_ancestors_is_enforced_first() {
    // APP lends c (from its root, slot 0) to OTHER, asked for c by 50 and the root by
    // 100, and lends `later` to OTHER too, asked by 200; OTHER lends d (below c) on to
    // THIRD, asked nothing. Enforcement first runs at 100 and takes the root's subtree.
    const THIRD: OwnerId = OwnerId(3);
    let (mut t, root) = setup(Rights::ALL);
    t.start_owner(&Kernel, THIRD).expect("start THIRD");
    let c = t
        .derive(APP, &root, 0x10_0000, 0x2000, Rights::ALL)
        .expect("derive");
    let later = page(&mut t, &root, 0x10_2000);
    t.delegate(APP, &c, OTHER).expect("lend c");
    t.delegate(APP, &later, OTHER).expect("lend later");
    let own = t.derive(OTHER, &c, 0x10_0000, 0x1000, RW).expect("derive");
    let d = t
        .derive(OTHER, &c, 0x10_1000, 0x1000, Rights::ALL)
        .expect("derive");
    t.delegate(OTHER, &d, THIRD).expect("lend d");
    t.request_revocation(&Kernel, c.id(), 50).expect("ask c");
    t.request_revocation(&Kernel, root.id(), 100)
        .expect("ask root");
    t.request_revocation(&Kernel, later.id(), 200)
        .expect("ask later");
    assert_eq!(root.id().index(), 0);
    assert!(t.revoke_next_expired(&Kernel, 100).is_some());
    assert_eq!(t.revoke_next_expired(&Kernel, 100), None);
    let reason = |t: &Table, owner, id| {
        let mut log = t.repossessions(owner).expect("log");
        log.find(|r| r.entry == id).map(|r| r.reason)
    };
    for (owner, cap, expected) in [
        (APP, &root, RevokeReason::DeadlinePassed),
        (OTHER, &c, RevokeReason::DeadlinePassed),
        (OTHER, &own, RevokeReason::DeadlinePassed),
        (OTHER, &later, RevokeReason::AncestorTaken),
        (THIRD, &d, RevokeReason::AncestorTaken),
    ] {
        assert_eq!(
            reason(&t, owner, cap.id()),
            Some(expected),
            "{owner:?} {cap:?}"
        );
        let forfeit = if expected == RevokeReason::DeadlinePassed {
            Forfeit::Recorded
        } else {
            Forfeit::NotForfeited
        };
        assert_eq!(t.forfeited(owner, cap.id()), forfeit, "{owner:?} {cap:?}");
    }
}

#[test]
fn a_holder_lent_back_what_it_lent_forfeits_whichever_expired_entry_is_taken_first() {
    // APP holds a (asked back by 50) and lends b, from a, to OTHER (asked by 30), which
    // lends c, from b, back to APP. A freed low slot puts b below a, so b's subtree is
    // taken first: APP missed a's deadline, an ancestor of c, so it forfeits c too.
    let (mut t, root) = setup(Rights::ALL);
    let spare = page(&mut t, &root, 0x10_0000);
    let a = t
        .derive(APP, &root, 0x10_2000, 0x2000, Rights::ALL)
        .expect("derive a");
    t.return_cap(APP, &spare).expect("return spare");
    let b = t
        .derive(APP, &a, 0x10_2000, 0x2000, Rights::ALL)
        .expect("derive b");
    assert!(b.id().index() < a.id().index(), "b takes the freed slot");
    t.delegate(APP, &b, OTHER).expect("lend b");
    let c = t
        .derive(OTHER, &b, 0x10_2000, 0x1000, Rights::ALL)
        .expect("derive c");
    t.delegate(OTHER, &c, APP).expect("lend c back");
    t.request_revocation(&Kernel, a.id(), 50).expect("ask a");
    t.request_revocation(&Kernel, b.id(), 30).expect("ask b");
    assert!(t.revoke_next_expired(&Kernel, 50).is_some());
    assert!(t.revoke_next_expired(&Kernel, 50).is_some());
    assert_eq!(t.revoke_next_expired(&Kernel, 50), None);
    for (owner, cap) in [(APP, &a), (OTHER, &b), (APP, &c)] {
        let mut log = t.repossessions(owner).expect("log");
        let reason = log.find(|r| r.entry == cap.id()).map(|r| r.reason);
        assert_eq!(
            reason,
            Some(RevokeReason::DeadlinePassed),
            "{owner:?} {cap:?}"
        );
        assert_eq!(t.forfeited(owner, cap.id()), Forfeit::Recorded, "{owner:?}");
    }
}

#[test]
fn an_owner_runs_from_its_start_to_its_release() {
    let mut t = Table::new();
    assert_eq!(t.running(OTHER), Err(CapError::NotRunning(OTHER)));
    t.start_owner(&Kernel, OTHER).expect("start");
    assert_eq!(t.running(OTHER), Ok(()));
    assert_eq!(t.running(APP), Err(CapError::NotRunning(APP)));
    t.release_owner(&Kernel, OTHER, None).expect("release");
    assert_eq!(t.running(OTHER), Err(CapError::NotRunning(OTHER)));
    let beyond = OwnerId(4);
    assert_eq!(
        t.start_owner(&Kernel, beyond),
        Err(CapError::BadOwner(beyond))
    );
    assert_eq!(t.running(beyond), Err(CapError::NotRunning(beyond)));
}

#[test]
fn what_was_forfeited_at_a_deadline_is_remembered_until_the_owner_is_released() {
    // More repossessions than the log holds (3 here) come after the deadline's record.
    let (mut t, cap) = setup(Rights::ALL);
    t.request_revocation(&Kernel, cap.id(), 10)
        .expect("request");
    assert!(t.revoke_next_expired(&Kernel, 10).is_some());
    for k in 0..5 {
        let other = t
            .mint(&Kernel, APP, mem(0x40_0000 + k * 0x1000, 0x1000), RW)
            .expect("mint");
        t.revoke(&Kernel, other.id(), RevokeReason::Kernel)
            .expect("revoke");
        assert_eq!(t.forfeited(APP, other.id()), Forfeit::NotForfeited);
    }
    assert!(
        t.repossessions(APP)
            .expect("log")
            .all(|r| r.reason == RevokeReason::Kernel),
        "the ring lost the deadline's record"
    );
    assert_eq!(t.forfeited(APP, cap.id()), Forfeit::Recorded);
    assert_eq!(t.forfeited(OTHER, cap.id()), Forfeit::NotForfeited);
    // Its slot took new entries meanwhile; the record does not live there.
    let index = cap.id().index();
    assert!(
        t.mint(&Kernel, OTHER, mem(0x80_0000, 0x1000), RW)
            .is_ok_and(|c| c.id().index() == index)
    );
    assert_eq!(t.forfeited(APP, cap.id()), Forfeit::Recorded);
    t.release_owner(&Kernel, APP, None).expect("release");
    assert_eq!(t.forfeited(APP, cap.id()), Forfeit::NotForfeited);
}

#[test]
fn a_forfeit_is_still_reported_after_the_next_entry_of_its_slot_is_forfeited_too() {
    // APP forfeits its entry, OTHER gets the slot and forfeits its entry too.
    let mut t: CapTable<Kernel, 2, 3, 1> = CapTable::new();
    let first = t.mint(&Kernel, APP, mem(0, 0x1000), RW).expect("mint");
    t.request_revocation(&Kernel, first.id(), 1)
        .expect("request");
    assert!(t.revoke_next_expired(&Kernel, 1).is_some());
    let second = t.mint(&Kernel, OTHER, mem(0, 0x1000), RW).expect("mint");
    assert_eq!(second.id().index(), first.id().index(), "the slot reused");
    t.request_revocation(&Kernel, second.id(), 2)
        .expect("request");
    assert!(t.revoke_next_expired(&Kernel, 2).is_some());
    assert_eq!(t.forfeited(OTHER, second.id()), Forfeit::Recorded);
    assert_eq!(t.forfeited(APP, first.id()), Forfeit::Recorded);
    assert_eq!(t.forfeited(APP, second.id()), Forfeit::NotForfeited);
    assert_eq!(t.forfeited(OTHER, first.id()), Forfeit::NotForfeited);
}

/// Mints an entry of `range` for `owner` and takes it at a deadline `owner` misses.
fn forfeit<const N: usize>(
    t: &mut CapTable<Kernel, N, 3, 1>,
    owner: OwnerId,
    range: Resource,
    now: u64,
) -> Cap {
    let cap = (t.mint(&Kernel, owner, range, RW)).expect("room for a grant after every forfeit");
    t.request_revocation(&Kernel, cap.id(), now)
        .expect("request");
    assert!(t.revoke_next_expired(&Kernel, now).is_some());
    cap
}

#[test]
fn forfeits_never_fill_the_table_and_one_without_a_place_costs_its_owner_a_record() {
    // Two slots and two record places; a long-running app misses one deadline after another.
    let mut t: CapTable<Kernel, 2, 3, 1> = CapTable::new();
    let kept = t.mint(&Kernel, OTHER, mem(0, 0x1000), RW).expect("mint");
    let forfeited: Vec<_> = (0..5u64)
        .map(|now| forfeit(&mut t, APP, mem(0x10_0000, 0x1000), now))
        .collect();
    // Each forfeit past the second gave up the app's record of the lowest entry id.
    let answers: Vec<_> = forfeited.iter().map(|c| t.forfeited(APP, c.id())).collect();
    assert_eq!(answers[..3], [Forfeit::RecordsLost; 3]);
    assert_eq!(answers[3..], [Forfeit::Recorded; 2]);
    assert!(answers.iter().all(|answer| answer.presumed()));
    // Lost records never make a gone handle work again or name another's entry.
    let reused = t
        .mint(&Kernel, OTHER, mem(0x20_0000, 0x1000), RW)
        .expect("mint");
    for cap in &forfeited {
        assert_eq!(t.check(APP, cap, Rights::NONE), Err(CapError::Revoked));
        assert_eq!(t.check(OTHER, cap, Rights::NONE), Err(CapError::Revoked));
    }
    // Live entries and other owners' are not presumed forfeited.
    assert_eq!(t.forfeited(APP, reused.id()), Forfeit::NotForfeited);
    assert_eq!(t.forfeited(OTHER, forfeited[4].id()), Forfeit::NotForfeited);
    assert!(!Forfeit::NotForfeited.presumed());
    assert_eq!(
        t.mint(&Kernel, APP, mem(0x30_0000, 0x1000), RW)
            .map(|c| c.id()),
        Err(CapError::Full),
        "two live entries fill it"
    );
    t.release_owner(&Kernel, APP, None).expect("release");
    assert!((forfeited.iter()).all(|c| t.forfeited(APP, c.id()) == Forfeit::NotForfeited));
    t.return_cap(OTHER, &kept).expect("return");
}

#[test]
fn a_flood_of_forfeits_by_one_owner_never_costs_another_owner_its_record() {
    // Four record places: APP fills them and goes on missing deadlines, OTHER misses one.
    let mut t: CapTable<Kernel, 4, 3, 1> = CapTable::new();
    let flood = |t: &mut CapTable<Kernel, 4, 3, 1>, from: u64| {
        for now in from..from + 6 {
            forfeit(t, APP, mem(0x10_0000, 0x1000), now);
        }
    };
    flood(&mut t, 0);
    let own = forfeit(&mut t, OTHER, mem(0x20_0000, 0x1000), 10);
    flood(&mut t, 20);
    assert_eq!(t.forfeited(OTHER, own.id()), Forfeit::Recorded);
    // OTHER's records are not lost: an entry it lost otherwise is not presumed forfeited.
    let taken = t
        .mint(&Kernel, OTHER, mem(0x30_0000, 0x1000), RW)
        .expect("mint");
    t.revoke(&Kernel, taken.id(), RevokeReason::Kernel)
        .expect("revoke");
    assert_eq!(t.forfeited(OTHER, taken.id()), Forfeit::NotForfeited);
    assert_eq!(t.forfeited(APP, taken.id()), Forfeit::RecordsLost);
}

// ---- entry limits ----

/// A table of 16 entries where `APP` and `OTHER` run, each app's requests limited to 4
/// entries and 6 entries kept for the kernel's own mints.
fn limited() -> Table {
    let mut t = Table::with_limits(4, 6);
    t.start_owner(&Kernel, APP).expect("start APP");
    t.start_owner(&Kernel, OTHER).expect("start OTHER");
    t
}

fn core(index: u64) -> Resource {
    Resource::new(ResourceKind::Core, index, 1).expect("valid core")
}

#[test]
fn derives_of_one_page_stop_at_the_owners_limit_and_others_still_get_entries() {
    let mut t = limited();
    let page = t.grant(&Kernel, APP, mem(0, 0x1000), RW).expect("grant");
    let mut children = Vec::new();
    for _ in 0..3 {
        let child = t.derive(APP, &page, 0, 0x1000, Rights::READ);
        children.push(child.expect("within the limit"));
    }
    let full = Err(CapError::TooManyEntries { max: 4 });
    assert_eq!(
        t.derive(APP, &page, 0, 0x1000, Rights::READ)
            .map(|c| c.id()),
        full
    );
    assert_eq!(
        t.grant(&Kernel, APP, mem(0x1000, 0x1000), RW)
            .map(|c| c.id()),
        full
    );
    assert_eq!(t.made_by(APP), 4);
    // Another app and the kernel are not held back by it.
    let other = t
        .grant(&Kernel, OTHER, mem(0x2000, 0x2000), RW)
        .expect("another app");
    t.split(OTHER, &other, 0x1000).expect("another app's split");
    t.mint(&Kernel, APP, core(0), Rights::EXECUTE)
        .expect("a core for APP");
    assert_eq!(t.made_by(APP), 4, "the kernel's mints count against no app");
    // An entry that goes makes room again.
    let child = children.pop().expect("a child");
    assert_eq!(t.return_cap(APP, &child), Ok(1));
    let two = t
        .grant(&Kernel, APP, mem(0x8000, 0x2000), RW)
        .expect("room after a return");
    assert_eq!(
        t.split(APP, &two, 0x1000).map(|c| c.id()),
        full,
        "a split counts"
    );
}

#[test]
fn delegated_and_parked_entries_still_count_against_the_owner_that_made_them() {
    let mut t = limited();
    let rights = RW | Rights::DELEGATE;
    for i in 0..4 {
        let cap = t
            .grant(&Kernel, APP, mem(i * 0x1000, 0x1000), rights)
            .expect("grant");
        t.delegate(APP, &cap, OTHER).expect("delegate");
        t.park(&Kernel, cap);
    }
    assert_eq!(t.entries_of(APP).count(), 0);
    assert_eq!(
        t.grant(&Kernel, APP, mem(0x8000, 0x1000), rights)
            .map(|c| c.id()),
        Err(CapError::TooManyEntries { max: 4 }),
        "handing entries away does not make room"
    );
    // The receiver's own requests are not charged for what it was handed.
    let held = t
        .pick_up(&Kernel, OTHER, ResourceKind::Memory)
        .expect("parked");
    t.derive(OTHER, &held, 0, 0x1000, Rights::READ)
        .expect("the receiver's room");
    assert_eq!(t.made_by(OTHER), 1);
    assert_eq!(t.return_cap(OTHER, &held), Ok(2));
    t.grant(&Kernel, APP, mem(0x8000, 0x1000), rights)
        .expect("room once one went");
}

/// Fills the 10 entries a [`limited`] table leaves outside its reserve with the apps'
/// requests: a grant and 3 derives each for `APP` and `OTHER`, a grant and a derive for
/// `third`.
fn fill_the_apps_room(t: &mut Table, third: OwnerId) {
    for (i, (owner, derives)) in [(APP, 3), (OTHER, 3), (third, 1)].into_iter().enumerate() {
        let base = i as u64 * 0x10_0000;
        let cap = t
            .grant(&Kernel, owner, mem(base, 0x4000), RW)
            .expect("an app's grant outside the reserve");
        for _ in 0..derives {
            t.derive(owner, &cap, base, 0x1000, Rights::READ)
                .expect("an app's derive outside the reserve");
        }
    }
}

#[test]
fn the_reserve_is_left_to_the_kernels_own_mints() {
    let mut t = limited();
    let third = OwnerId(3);
    t.start_owner(&Kernel, third).expect("start");
    // 16 entries less 6 reserved: 10 for the apps' requests.
    fill_the_apps_room(&mut t, third);
    assert_eq!(t.live(), 10);
    let refused = t.grant(&Kernel, third, mem(0x80_0000, 0x1000), RW);
    assert_eq!(refused.map(|c| c.id()), Err(CapError::Full));
    for index in 0..5 {
        t.mint(&Kernel, third, core(index), Rights::EXECUTE)
            .expect("the reserve");
    }
    // The kernel's own requests have no limit either.
    let kernel = t.grant(&Kernel, OwnerId::KERNEL, mem(0x90_0000, 0x1000), RW);
    kernel.expect("the kernel's last entry");
    assert_eq!(t.live(), t.capacity());
}

#[test]
fn shares_stop_at_their_limit_and_leave_the_apps_room() {
    let mut t = limited();
    let third = OwnerId(3);
    t.start_owner(&Kernel, third).expect("start");
    let all = Resource::new(ResourceKind::InterruptVector, 32, 224).expect("vectors");
    let root = t.mint(&Kernel, OwnerId::KERNEL, all, Rights::READ);
    let root = root.expect("root").id();
    let wake = Resource::new(ResourceKind::InterruptVector, 33, 1).expect("vector");
    // The reserve of 6: the root and 5 shares, the kernel's most.
    let share = |t: &mut Table| t.mint_child(&Kernel, root, third, wake, Rights::READ, 5);
    let first = share(&mut t).expect("a share");
    for _ in 1..5 {
        share(&mut t).expect("a share");
    }
    let live = t.live();
    assert_eq!(
        share(&mut t).map(|c| c.id()),
        Err(CapError::TooManyShares { max: 5 })
    );
    assert_eq!(t.live(), live, "a refusal changes nothing");
    fill_the_apps_room(&mut t, third);
    assert_eq!(
        t.live(),
        t.capacity(),
        "the apps' 10 entries were all theirs"
    );
    // A share that goes makes room for the next.
    assert_eq!(t.return_cap(third, &first), Ok(1));
    share(&mut t).expect("the returned share's place");
}

/// The kernel is no heir: an app's entries counted as the kernel's would let apps take
/// the reserve kept for the kernel (debug builds stop there).
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "an app's entries inherited by the kernel")]
fn the_kernel_inherits_no_apps_entries() {
    let (mut t, _) = setup(RW);
    _ = t.release_owner(&Kernel, APP, Some(OwnerId::KERNEL));
}

#[test]
fn an_ended_runs_entries_that_live_on_count_against_its_heir_or_its_next_run() {
    let mut t = limited();
    let child = OwnerId(3);
    let rights = RW | Rights::DELEGATE;
    let hand_away = |t: &mut Table| {
        t.start_owner(&Kernel, child).expect("the run starts");
        for i in 0..4 {
            let cap = t
                .grant(&Kernel, child, mem(i * 0x1000, 0x1000), rights)
                .expect("grant");
            t.delegate(child, &cap, OTHER).expect("delegate");
        }
    };
    hand_away(&mut t);
    t.release_owner(&Kernel, child, Some(APP))
        .expect("a lent run ends");
    assert_eq!((t.made_by(child), t.made_by(APP)), (0, 4));
    t.start_owner(&Kernel, child).expect("the next run");
    t.grant(&Kernel, child, mem(0x8000, 0x1000), RW)
        .expect("the next run starts with nothing counted");
    assert_eq!(
        t.grant(&Kernel, APP, mem(0x9000, 0x1000), RW)
            .map(|c| c.id()),
        Err(CapError::TooManyEntries { max: 4 }),
        "the heir answers for them"
    );
    // Without an heir they stay with the app, for its next run.
    let mut t = limited();
    hand_away(&mut t);
    t.release_owner(&Kernel, child, None).expect("a run ends");
    t.start_owner(&Kernel, child).expect("the next run");
    assert_eq!(
        t.grant(&Kernel, child, mem(0x8000, 0x1000), RW)
            .map(|c| c.id()),
        Err(CapError::TooManyEntries { max: 4 })
    );
}

#[test]
fn can_grant_answers_as_the_grant_would_without_making_anything() {
    let mut t = limited();
    assert_eq!(t.can_grant(OwnerId(4)), Err(CapError::BadOwner(OwnerId(4))));
    for i in 0..4 {
        assert_eq!(t.can_grant(APP), Ok(()));
        t.grant(&Kernel, APP, mem(i * 0x1000, 0x1000), RW)
            .expect("within the limit");
    }
    let live = t.live();
    let full = Err(CapError::TooManyEntries { max: 4 });
    assert_eq!(t.can_grant(APP), full);
    assert_eq!(t.live(), live, "asking made nothing");
    // 16 entries less 6 reserved: OTHER may make the last 6 outside the reserve.
    let cap = t
        .grant(&Kernel, OTHER, mem(0x10_0000, 0x4000), RW)
        .expect("grant");
    for _ in 0..3 {
        t.derive(OTHER, &cap, 0x10_0000, 0x1000, Rights::READ)
            .expect("derive");
    }
    let third = OwnerId(3);
    t.start_owner(&Kernel, third).expect("start");
    t.grant(&Kernel, third, mem(0x20_0000, 0x1000), RW)
        .expect("the last entry outside the reserve");
    t.grant(&Kernel, third, mem(0x30_0000, 0x1000), RW)
        .expect("the last entry outside the reserve");
    assert_eq!(t.can_grant(third), Err(CapError::Full));
    assert_eq!(
        t.can_grant(OwnerId::KERNEL),
        Ok(()),
        "the kernel takes the reserve"
    );
}

// ---- storage ----

#[test]
fn a_table_of_thousands_of_entries_is_a_few_pointers_by_value_and_builds_on_a_small_stack() {
    type Large = CapTable<Kernel, 4096, 64, 8>;
    let by_value = core::mem::size_of::<Large>();
    assert!(by_value <= 128, "the table is {by_value} bytes by value");
    // Its storage goes straight to the heap: no array of it passes through this stack.
    let built = std::thread::Builder::new()
        .stack_size(32 << 10)
        .spawn(|| {
            let mut t = Large::with_limits(64, 100);
            let cap = t.mint(&Kernel, APP, mem(0, 0x1000), RW).expect("mint");
            (t.capacity(), t.live(), cap.id().index())
        })
        .expect("a thread")
        .join()
        .expect("built within 32 KiB of stack");
    assert_eq!(built, (4096, 1, 0));
}

#[test]
fn what_the_kernel_holds_counts_in_its_reserve_so_every_app_still_reaches_its_limit() {
    // 16 entries: the kernel's reserve of 6, and 4 for each of the apps 1, 2 and 3 (10
    // outside the reserve, as in the_reserve_is_left_to_the_kernels_own_mints).
    let mut t = limited();
    let third = OwnerId(3);
    t.start_owner(&Kernel, third).expect("start");
    for index in 0..3 {
        t.mint(&Kernel, APP, core(index), Rights::EXECUTE)
            .expect("the kernel's mint");
    }
    fill_the_apps_room(&mut t, third);
    // The 3 the kernel holds and the 3 free are its reserve.
    assert_eq!(t.live(), 13);
    assert_eq!(t.can_grant(third), Err(CapError::Full));
    for index in 3..6 {
        t.mint(&Kernel, OTHER, core(index), Rights::EXECUTE)
            .expect("the rest of the reserve");
    }
    assert_eq!(t.live(), t.capacity());
}

#[test]
fn a_derive_and_its_return_cost_the_entries_in_use_not_the_capacity() {
    // 100,000 slots and one app's page: each round's derive and return looks at the few
    // occupied slots (with every slot scanned, 100,000 a scan).
    type Large = CapTable<Kernel, 100_000, 4, 3>;
    let mut t = Large::with_limits(64, 1_000);
    t.start_owner(&Kernel, APP).expect("start");
    let page = t.grant(&Kernel, APP, mem(0, 0x1000), RW).expect("grant");
    let rounds = 1_000;
    let looked_at = slot_watch::scanned_by(|| {
        for _ in 0..rounds {
            let child = t
                .derive(APP, &page, 0, 0x1000, Rights::READ)
                .expect("derive");
            assert_eq!(t.return_cap(APP, &child), Ok(1));
        }
    });
    assert!(
        looked_at <= 20 * rounds,
        "{looked_at} slots looked at in {rounds} rounds"
    );
    assert_eq!((t.live(), t.is_live(page.id())), (1, true));
}
