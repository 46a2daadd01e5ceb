//! [`CapTable`]: the fixed-capacity table of secure bindings and its operations.

use alloc::boxed::Box;
use alloc::vec;
use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::{CapError, Resource, ResourceKind, Rights};

/// Who holds a capability. 0 is the kernel; the others are apps, numbered by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(pub u16);

impl OwnerId {
    /// The kernel.
    pub const KERNEL: OwnerId = OwnerId(0);
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == OwnerId::KERNEL {
            f.write_str("kernel")
        } else {
            write!(f, "app {}", self.0)
        }
    }
}

/// The name of one table entry at one generation, in one table. It is a plain name that
/// can be copied and printed (the monitor lists them); it grants nothing by itself: the
/// operations that take one need the kernel's authority or a [`Cap`] for an ancestor.
/// Only the table makes them (the fields are private).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryId {
    table: u64,
    index: u32,
    generation: u64,
}

impl EntryId {
    /// Its name inside its table.
    const fn local(&self) -> LocalId {
        LocalId {
            index: self.index,
            generation: self.generation,
        }
    }

    /// The id of the table that made it.
    pub const fn table(&self) -> u64 {
        self.table
    }

    /// The slot index in the table.
    pub const fn index(&self) -> u32 {
        self.index
    }

    /// The slot's generation when the entry was made.
    pub const fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Display for EntryId {
    /// `#index.generation`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// An entry's name inside its table: an [`EntryId`] without the table's id, which every
/// entry of the table shares (so that an entry stays small).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LocalId {
    index: u32,
    generation: u64,
}

/// A capability: the handle code holds to use a resource. Only a [`CapTable`] makes one
/// (the field is private and there is no constructor), and it is neither `Clone` nor
/// `Copy`, so a holder cannot duplicate it; handing it on is a move.
#[derive(Debug, PartialEq, Eq)]
pub struct Cap {
    id: EntryId,
}

impl Cap {
    /// The entry this capability names (to match it against listings and pending
    /// revocation requests).
    pub const fn id(&self) -> EntryId {
        self.id
    }
}

/// The state of a live entry. A revoked entry is not stored: revoking frees the slot and
/// moves its generation on, so every handle to it answers [`CapError::Revoked`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// In use.
    Live,
    /// The kernel asked for it back by `deadline_ns` (on the kernel's clock); after that
    /// it may revoke it by force.
    RevokeRequested {
        /// When the kernel may take it by force, in nanoseconds.
        deadline_ns: u64,
    },
}

/// A snapshot of one live entry, for listings (the monitor's `caps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The entry's name.
    pub id: EntryId,
    /// Who holds it.
    pub owner: OwnerId,
    /// What it covers.
    pub resource: Resource,
    /// What the holder may do.
    pub rights: Rights,
    /// The entry it was derived or split from; `None` for a root the kernel minted.
    pub parent: Option<EntryId>,
    /// Live or asked back.
    pub state: EntryState,
}

/// Why a holder lost a capability, in its repossession log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeReason {
    /// The kernel revoked it by force.
    Kernel,
    /// A revocation request's deadline passed before the holder returned it (only the
    /// holder asked, for the entry or for an ancestor it holds too, gets this reason: the
    /// abort protocol ends the holder that touches such an entry again).
    DeadlinePassed,
    /// An ancestor held by another owner was taken at a revocation deadline that owner
    /// missed (no request to this holder had passed its deadline, so it is not to blame).
    AncestorTaken,
    /// The holder of an ancestor (with [`Rights::REVOKE`]) revoked it.
    Holder,
    /// Its holder returned an ancestor it was derived from.
    AncestorReturned,
    /// The owner of an ancestor ended and its capabilities went back to the kernel.
    OwnerReleased,
}

impl fmt::Display for RevokeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RevokeReason::Kernel => "revoked by the kernel",
            RevokeReason::DeadlinePassed => "revocation deadline passed",
            RevokeReason::AncestorTaken => "an ancestor's revocation deadline passed",
            RevokeReason::Holder => "revoked by the holder of an ancestor",
            RevokeReason::AncestorReturned => "an ancestor was returned",
            RevokeReason::OwnerReleased => "the owner of an ancestor ended",
        })
    }
}

/// What was taken from an owner, as its repossession log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repossession {
    /// Who lost it.
    pub owner: OwnerId,
    /// The entry that was taken (its handles now answer [`CapError::Revoked`]).
    pub entry: EntryId,
    /// The kind and range taken.
    pub resource: Resource,
    /// The rights it had.
    pub rights: Rights,
    /// Why.
    pub reason: RevokeReason,
}

impl fmt::Display for Repossession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lost {} {}: {}",
            self.owner, self.entry, self.resource, self.reason
        )
    }
}

/// The result of a revocation: a summary of the range taken, for reports, and how many
/// entries it invalidated. What to unmap is not read from it: the kernel finds that in
/// its record of mappings (`rexo-memledger`), from the entries still live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The revoked entry's resource (every entry derived from it lies inside it). For the
    /// pieces of a mint ([`CapTable::revoke`]), a summary span from the lowest piece's
    /// start to the highest one's end, which may have gaps (a piece returned in between,
    /// its frames perhaps granted to someone else since): it must not be unmapped or
    /// freed as a whole.
    pub resource: Resource,
    /// The entry and its descendants: how many handles stopped working.
    pub entries: usize,
}

/// One live entry.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    owner: OwnerId,
    resource: Resource,
    rights: Rights,
    /// The entry it was derived or split from; `None` for a root.
    parent: Option<LocalId>,
    /// The root its tree grew from, as that root was minted or granted: a root made so
    /// is its own origin, a derived entry has its parent's, and a split copies it to the
    /// new piece. So two roots share an origin only when they are pieces of one mint, and
    /// the kernel's name for that mint reaches every piece ([`CapTable::revoke`]).
    origin: LocalId,
    state: EntryState,
    /// Scratch mark for the revocation of a subtree; false outside one.
    dying: bool,
    /// The kernel holds the handle for the holder, who has not picked it up yet
    /// ([`CapTable::park`]).
    parked: bool,
    /// The owner whose request made it (a grant, a derive, a split), counted against that
    /// owner's entry limit until the entry goes, wherever it was delegated;
    /// [`OwnerId::KERNEL`], which has no limit, for the kernel's own mints.
    maker: OwnerId,
}

impl Entry {
    /// Whether it was asked back by a deadline at or before `now_ns`.
    fn expired_by(&self, now_ns: u64) -> bool {
        matches!(self.state, EntryState::RevokeRequested { deadline_ns } if deadline_ns <= now_ns)
    }

    /// Whether the entry is lent to its holder: derived (it has a parent) at another
    /// owner's request, or minted by the kernel as a share of its own root, and handed
    /// over, so the holder of an ancestor may take it back by name
    /// ([`CapTable::revoke_derived`]). Its maker is who made it, or the heir of a maker
    /// that ended ([`CapTable::release_owner`]): an entry that outlived its maker lies
    /// under no ancestor that maker still holds.
    fn lent(&self) -> bool {
        self.parent.is_some() && self.maker != self.owner
    }
}

/// A slot: an entry or nothing, and the generation its next (or current) entry has.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) generation: u64,
    pub(crate) entry: Option<Entry>,
}

/// A slot never used: no entry, generation 0.
const EMPTY_SLOT: Slot = Slot {
    generation: 0,
    entry: None,
};

impl Slot {
    /// Whether a new entry may take it: empty and not retired.
    fn is_free(&self) -> bool {
        self.entry.is_none() && self.generation != RETIRED
    }
}

/// What [`CapTable::forfeited`] knows of whether an owner lost an entry at a revocation
/// deadline it missed (the abort protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forfeit {
    /// The owner forfeited the entry: its record is kept.
    Recorded,
    /// The owner did not forfeit the entry: it is live, was never the owner's, or went
    /// another way; or the owner ended since.
    NotForfeited,
    /// The entry is gone and has no record for the owner, but some forfeit of the owner
    /// found every record place taken and was not recorded: it may have been this one.
    RecordsLost,
}

impl Forfeit {
    /// Whether the abort protocol must treat the entry as forfeited: recorded, or
    /// possibly among the owner's lost records.
    pub const fn presumed(self) -> bool {
        !matches!(self, Forfeit::NotForfeited)
    }
}

/// One forfeit kept for [`CapTable::forfeited`]: `owner` lost the entry of slot `index` at
/// `generation`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ForfeitRecord {
    owner: OwnerId,
    index: u32,
    generation: u64,
}

impl ForfeitRecord {
    /// The record that `owner` forfeited the entry `id`.
    const fn of(owner: OwnerId, id: EntryId) -> Self {
        ForfeitRecord {
            owner,
            index: id.index,
            generation: id.generation,
        }
    }
}

/// A slot whose generation reached this is retired: never used again, so that a
/// generation is never repeated for a slot. A guard only: reaching it takes 2^64 - 1
/// entries made and gone in one slot, beyond any uptime.
const RETIRED: u64 = u64::MAX;

/// A bounded ring of repossession records; when full, the oldest goes and `dropped` counts.
#[derive(Clone, Copy)]
struct Log<const LOG: usize> {
    records: [Option<Repossession>; LOG],
    head: usize,
    len: usize,
    dropped: u64,
}

impl<const LOG: usize> Log<LOG> {
    const EMPTY: Self = Log {
        records: [None; LOG],
        head: 0,
        len: 0,
        dropped: 0,
    };

    fn push(&mut self, record: Repossession) {
        if LOG == 0 {
            self.dropped = self.dropped.saturating_add(1);
        } else if self.len == LOG {
            self.records[self.head] = Some(record);
            self.head = (self.head + 1) % LOG;
            self.dropped = self.dropped.saturating_add(1);
        } else {
            self.records[(self.head + self.len) % LOG] = Some(record);
            self.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = Repossession> + '_ {
        (0..self.len).filter_map(move |k| self.records[(self.head + k) % LOG])
    }
}

/// Table ids come from one counter so that handles of two tables never match.
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// The table of secure bindings: at most `N` entries, owners `0..OWNERS`, and a
/// repossession log of `LOG` records per owner, all allocated on the heap at once when the
/// table is made. `A` is the authority type: operations
/// only the kernel may perform take a `&A`, and only the kernel can make an `A`. See the
/// crate documentation for the model.
pub struct CapTable<A, const N: usize, const OWNERS: usize, const LOG: usize> {
    id: u64,
    /// `N` slots, on the heap (as every array here), so that the table is a few pointers
    /// by value, whatever its capacity.
    pub(crate) slots: Box<[Slot]>,
    /// One past the highest slot that holds an entry: the scans stop there. New entries
    /// take the lowest free slot, so this stays near the number of live entries whatever
    /// `N` is.
    occupied: usize,
    /// Live entries.
    live: usize,
    /// Slots retired at their last generation.
    retired: usize,
    /// `OWNERS` repossession logs.
    logs: Box<[Log<LOG>]>,
    /// What owners forfeited, until each is released: `N` places, apart from the slots,
    /// so that a slot is used again whatever its last entry's fate and forfeits never
    /// fill the table.
    forfeits: Box<[Option<ForfeitRecord>]>,
    /// Per owner, whether it gave up a record of `forfeits` (or a new one was not kept)
    /// when a forfeit found no free place, until the owner is released.
    forfeits_lost: Box<[bool]>,
    /// Per owner, whether it runs: from [`start_owner`](Self::start_owner) to
    /// [`release_owner`](Self::release_owner).
    running: Box<[bool]>,
    /// The most entries one app's requests may have made and not yet gone
    /// ([`with_limits`](Self::with_limits)).
    owner_limit: usize,
    /// Entries kept for the kernel's own mints: those it holds count, and apps' requests
    /// never take the rest while it is free.
    reserve: usize,
    authority: PhantomData<fn() -> A>,
}

impl<A, const N: usize, const OWNERS: usize, const LOG: usize> Default
    for CapTable<A, N, OWNERS, LOG>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<A, const N: usize, const OWNERS: usize, const LOG: usize> CapTable<A, N, OWNERS, LOG> {
    /// An empty table with a fresh id (no two tables in one program share one), without
    /// limits on the entries owners' requests make.
    pub fn new() -> Self {
        Self::with_limits(N, 0)
    }

    /// An empty table (as [`new`](Self::new)) whose entries made at an app's request
    /// ([`grant`](Self::grant), [`derive`](Self::derive), [`split`](Self::split)) are
    /// limited: at most `owner_limit` of one app's at a time, counted until each entry
    /// goes whoever holds it then (delegated or parked; [`CapError::TooManyEntries`]
    /// past it), and never the kernel's reserve: `reserve` entries kept for its own mints
    /// ([`mint`](Self::mint), [`mint_child`](Self::mint_child)), of which the entries the
    /// kernel's mints and requests made and that are still live count, so that apps'
    /// requests leave free the part it has not taken ([`CapError::Full`]). So no app fills
    /// the table for the others or the kernel, and a table of `reserve` plus `owner_limit`
    /// times the owners that make entries has room for each to reach its limit while the
    /// kernel holds up to `reserve`. Requests of the kernel itself ([`OwnerId::KERNEL`])
    /// have no limit.
    pub fn with_limits(owner_limit: usize, reserve: usize) -> Self {
        // Entry ids hold the slot index in a `u32`.
        const {
            assert!(
                N <= u32::MAX as usize,
                "a CapTable holds at most u32::MAX entries"
            )
        };
        CapTable {
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            slots: vec![EMPTY_SLOT; N].into_boxed_slice(),
            occupied: 0,
            live: 0,
            retired: 0,
            logs: vec![Log::EMPTY; OWNERS].into_boxed_slice(),
            forfeits: vec![None; N].into_boxed_slice(),
            forfeits_lost: vec![false; OWNERS].into_boxed_slice(),
            running: vec![false; OWNERS].into_boxed_slice(),
            owner_limit,
            reserve,
            authority: PhantomData,
        }
    }

    /// This table's id, as its handles carry it.
    pub const fn id(&self) -> u64 {
        self.id
    }

    /// The number of entries it can hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The number of live entries.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Whether the entry `id` is live (in this table, at its generation): one slot read.
    pub fn is_live(&self, id: EntryId) -> bool {
        self.find(id).is_ok()
    }

    // ---- kernel operations (need `&A`) ----

    /// Makes a root capability for `resource`, held by `owner`, with `rights`: one of
    /// the kernel's own mints (a core, a timer), which may take the reserve of
    /// [`with_limits`](Self::with_limits) and counts against no owner's limit.
    ///
    /// Errors: [`BadOwner`](CapError::BadOwner), [`Overlaps`](CapError::Overlaps) if a
    /// live root of the same kind shares a unit with it, [`Full`](CapError::Full).
    pub fn mint(
        &mut self,
        _authority: &A,
        owner: OwnerId,
        resource: Resource,
        rights: Rights,
    ) -> Result<Cap, CapError> {
        self.mint_root(owner, resource, rights, OwnerId::KERNEL)
    }

    /// [`mint`](Self::mint) for what `owner` asked for (memory it allocates): counted
    /// against its entry limit and kept out of the reserve, as derived entries are.
    ///
    /// Errors: [`BadOwner`](CapError::BadOwner), [`Overlaps`](CapError::Overlaps) if a
    /// live root of the same kind shares a unit with it,
    /// [`TooManyEntries`](CapError::TooManyEntries) past `owner`'s entry limit,
    /// [`Full`](CapError::Full) when only the part of the reserve the kernel does not
    /// hold is left ([`with_limits`](Self::with_limits)).
    pub fn grant(
        &mut self,
        _authority: &A,
        owner: OwnerId,
        resource: Resource,
        rights: Rights,
    ) -> Result<Cap, CapError> {
        self.mint_root(owner, resource, rights, owner)
    }

    /// Whether a [`grant`](Self::grant) to `owner` would find room now (the same checks,
    /// without the resource): cheap, to call before the work a grant needs (taking and
    /// zeroing frames). The grant checks again.
    ///
    /// Errors: [`BadOwner`](CapError::BadOwner),
    /// [`TooManyEntries`](CapError::TooManyEntries), [`Full`](CapError::Full).
    pub fn can_grant(&self, owner: OwnerId) -> Result<(), CapError> {
        self.valid_owner(owner)?;
        self.room_for(owner)
    }

    /// Makes, for `owner`, an entry derived from the live entry `parent` (any holder's,
    /// usually a root the kernel keeps): `resource` inside the parent's, `rights` a subset
    /// of its rights. Unlike roots, such children may overlap: this is how the kernel
    /// shares one resource (an interrupt vector several sources use) among holders, each
    /// share revocable alone or all at once with the parent. At most `most` children of
    /// the parent are in the table at once (a returned or revoked one goes): the shares
    /// the kernel counts in its reserve ([`with_limits`](Self::with_limits)) stay within
    /// it, and never take the apps' room.
    ///
    /// Errors: [`BadOwner`](CapError::BadOwner), [`Revoked`](CapError::Revoked) or
    /// [`WrongTable`](CapError::WrongTable) for the parent, [`NoRight`](CapError::NoRight),
    /// [`OutOfRange`](CapError::OutOfRange) (also for another kind),
    /// [`TooManyShares`](CapError::TooManyShares) when the parent has `most` children
    /// already, [`Full`](CapError::Full).
    pub fn mint_child(
        &mut self,
        _authority: &A,
        parent: EntryId,
        owner: OwnerId,
        resource: Resource,
        rights: Rights,
        most: usize,
    ) -> Result<Cap, CapError> {
        self.valid_owner(owner)?;
        let (_, p) = self.find(parent)?;
        let missing = rights.difference(p.rights);
        if !missing.is_empty() {
            return Err(CapError::NoRight(missing));
        }
        if !p.resource.contains(&resource) {
            return Err(CapError::OutOfRange);
        }
        if self.children(parent) >= most {
            return Err(CapError::TooManyShares { max: most });
        }
        let (parent, origin) = (Some(parent.local()), Some(p.origin));
        self.insert(owner, resource, rights, parent, origin, OwnerId::KERNEL)
    }

    /// Asks the holder of `target` to return it by `deadline_ns`; the holder sees the
    /// request in [`pending_revocations`](Self::pending_revocations). A second request
    /// replaces the deadline. Until it is returned the entry still works for use
    /// ([`check`](Self::check)) but cannot be derived, split, merged or delegated. A
    /// root is asked back with every piece split from its mint, as [`revoke`](Self::revoke)
    /// takes them: each holder is asked for its own.
    pub fn request_revocation(
        &mut self,
        _authority: &A,
        target: EntryId,
        deadline_ns: u64,
    ) -> Result<(), CapError> {
        let reach = self.reach(target)?;
        for (i, slot) in self.used_mut().iter_mut().enumerate() {
            if let Some(e) = slot.entry.as_mut().filter(|e| reach.takes(i, e)) {
                e.state = EntryState::RevokeRequested { deadline_ns };
            }
        }
        Ok(())
    }

    /// Revokes `target` and every entry derived from it, transitively, by force. A root
    /// goes with every other piece split from its mint, whoever holds it (the kernel
    /// takes back what it minted whole), and a mint's name reaches the pieces that live
    /// on after its own entry went (merged into a piece, or returned). Each holder gets a
    /// [`Repossession`] record with `reason`.
    pub fn revoke(
        &mut self,
        _authority: &A,
        target: EntryId,
        reason: RevokeReason,
    ) -> Result<Revocation, CapError> {
        let reach = self.reach(target)?;
        let mut pieces = (self.used().iter().enumerate())
            .filter_map(|(i, s)| s.entry.filter(|e| reach.takes(i, e)))
            .map(|e| e.resource);
        let first = pieces.next().ok_or(CapError::Revoked)?;
        let (start, end) = pieces.fold((first.start(), first.end()), |(start, end), r| {
            (start.min(r.start()), end.max(r.end()))
        });
        let resource = Resource::new(first.kind(), start, end - start)?;
        for (i, slot) in self.used_mut().iter_mut().enumerate() {
            if let Some(e) = slot.entry.as_mut().filter(|e| reach.takes(i, e)) {
                e.dying = true;
            }
        }
        Ok(self.remove_dying(resource, Taking::For(reason), None))
    }

    /// Revokes by force one entry whose revocation deadline is at or before `now_ns`, with
    /// its descendants; `None` when no deadline has passed. Call it until `None` to enforce
    /// every deadline. The holder of an entry of the subtree that was asked back by then
    /// for it or for an ancestor it also holds (in the subtree or above it, up to the top
    /// of the tree) gets [`RevokeReason::DeadlinePassed`]; other holders of descendants,
    /// who missed nothing, get [`RevokeReason::AncestorTaken`]. So a holder's reasons do
    /// not depend on the order expired entries are taken in (their slots').
    pub fn revoke_next_expired(&mut self, _authority: &A, now_ns: u64) -> Option<Revocation> {
        let root = (self.used().iter().enumerate()).find_map(|(i, s)| {
            s.entry
                .filter(|e| e.expired_by(now_ns))
                .map(|e| (i, e.resource))
        })?;
        Some(self.remove_subtree(root, Taking::DeadlinesBy(now_ns), None))
    }

    /// Marks `owner` running (an app run starts), until [`release_owner`](Self::release_owner):
    /// the kernel hands capabilities only to running owners ([`running`](Self::running)).
    pub fn start_owner(&mut self, _authority: &A, owner: OwnerId) -> Result<(), CapError> {
        self.valid_owner(owner)?;
        if let Some(running) = self.running.get_mut(usize::from(owner.0)) {
            *running = true;
        }
        Ok(())
    }

    /// [`NotRunning`](CapError::NotRunning) unless `owner` was started and not released
    /// since: checked under the same borrow as the operation that follows it, so an owner
    /// that ended cannot be handed anything.
    pub fn running(&self, owner: OwnerId) -> Result<(), CapError> {
        match self.running.get(usize::from(owner.0)) {
            Some(true) => Ok(()),
            _ => Err(CapError::NotRunning(owner)),
        }
    }

    /// Takes back everything `owner` holds (with everything derived from it, whoever
    /// holds that; those holders get [`RevokeReason::OwnerReleased`] records), clears
    /// `owner`'s repossession log and the records of what it forfeited
    /// ([`forfeited`](Self::forfeited)) and marks it not running: for an app that ended.
    /// The entries `owner`'s requests made that live on (delegated away) count from then
    /// on against `heir`'s entry limit when there is one (the lender of a lent run, as the
    /// memory ledger moves its charges), else still against `owner`, whose next run
    /// starts with them ([`with_limits`](Self::with_limits)). Returns how many entries went.
    /// The heir is never [`OwnerId::KERNEL`] (a lender is an app, the caller of
    /// `run_app`): the kernel's entries may take the reserve the apps' must leave free
    /// ([`with_limits`](Self::with_limits)), so apps' entries counted as its own would let
    /// apps take it.
    pub fn release_owner(
        &mut self,
        _authority: &A,
        owner: OwnerId,
        heir: Option<OwnerId>,
    ) -> Result<usize, CapError> {
        self.valid_owner(owner)?;
        let mut count = 0;
        while let Some(root) = self.used().iter().enumerate().find_map(|(i, s)| {
            s.entry
                .filter(|e| e.owner == owner)
                .map(|e| (i, e.resource))
        }) {
            count += self
                .remove_subtree(root, Taking::For(RevokeReason::OwnerReleased), Some(owner))
                .entries;
        }
        if let Some(log) = self.logs.get_mut(usize::from(owner.0)) {
            *log = Log::EMPTY;
        }
        if let Some(running) = self.running.get_mut(usize::from(owner.0)) {
            *running = false;
        }
        if let Some(lost) = self.forfeits_lost.get_mut(usize::from(owner.0)) {
            *lost = false;
        }
        for place in self.forfeits.iter_mut() {
            if place.is_some_and(|record| record.owner == owner) {
                *place = None;
            }
        }
        if let Some(heir) = heir {
            debug_assert_ne!(
                heir,
                OwnerId::KERNEL,
                "an app's entries inherited by the kernel"
            );
            let made = self.used_mut().iter_mut().filter_map(|s| s.entry.as_mut());
            made.filter(|e| e.maker == owner)
                .for_each(|e| e.maker = heir);
        }
        Ok(count)
    }

    /// Keeps `cap` for its holder until the holder picks it up
    /// ([`pick_up`](Self::pick_up)): the kernel's inbox for capabilities it delegated or
    /// minted for an owner. The inbox lives in the entries themselves, so an entry revoked,
    /// returned or released while parked leaves nothing behind, and there are never more
    /// parked handles than live entries. A stale `cap` is just dropped.
    pub fn park(&mut self, _authority: &A, cap: Cap) {
        if let Ok((i, _)) = self.find(cap.id)
            && let Some(e) = self.slots[i].entry.as_mut()
        {
            e.parked = true;
        }
    }

    /// Hands `owner` the handle of one entry of `kind` parked for it (lowest slot first),
    /// `None` when none is left. The handle is the one [`park`](Self::park) took: it
    /// leaves the inbox, so there is never more than one.
    pub fn pick_up(&mut self, _authority: &A, owner: OwnerId, kind: ResourceKind) -> Option<Cap> {
        let i = self.used().iter().position(|s| {
            s.entry
                .is_some_and(|e| e.parked && e.owner == owner && e.resource.kind() == kind)
        })?;
        if let Some(e) = self.slots[i].entry.as_mut() {
            e.parked = false;
        }
        Some(Cap { id: self.id_of(i) })
    }

    /// How many handles are parked for `owner` ([`park`](Self::park)).
    #[cfg(test)]
    pub(crate) fn parked(&self, owner: OwnerId) -> usize {
        let parked = |e: &&Entry| e.parked && e.owner == owner;
        self.used()
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .filter(parked)
            .count()
    }

    /// The earliest deadline of a pending revocation request, if any.
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.entries()
            .filter_map(|e| match e.state {
                EntryState::RevokeRequested { deadline_ns } => Some(deadline_ns),
                EntryState::Live => None,
            })
            .min()
    }

    // ---- holder operations (need the `Cap` and the caller's id) ----

    /// Checks that `caller` holds `cap` with at least the rights `need`, and describes it.
    pub fn check(&self, caller: OwnerId, cap: &Cap, need: Rights) -> Result<EntryInfo, CapError> {
        let (i, e) = self.owned(caller, cap)?;
        let info = self.info(i, &e);
        let missing = need.difference(info.rights);
        if !missing.is_empty() {
            return Err(CapError::NoRight(missing));
        }
        Ok(info)
    }

    /// [`check`](Self::check), but [`WrongKind`](CapError::WrongKind) before the rights
    /// unless `cap` names a resource of `kind` (a capability of another kind is that, not
    /// one lacking a right).
    pub fn check_kind(
        &self,
        caller: OwnerId,
        cap: &Cap,
        need: Rights,
        kind: ResourceKind,
    ) -> Result<EntryInfo, CapError> {
        let (_, e) = self.owned(caller, cap)?;
        if e.resource.kind() != kind {
            return Err(CapError::WrongKind);
        }
        self.check(caller, cap, need)
    }

    /// Checks that `caller` may use `resource` (a whole range or part of it) through
    /// `cap` with the rights `need`: [`check_kind`](Self::check_kind), then
    /// [`OutOfRange`](CapError::OutOfRange).
    pub fn check_access(
        &self,
        caller: OwnerId,
        cap: &Cap,
        need: Rights,
        resource: &Resource,
    ) -> Result<(), CapError> {
        let info = self.check_kind(caller, cap, need, resource.kind())?;
        if !info.resource.contains(resource) {
            return Err(CapError::OutOfRange);
        }
        Ok(())
    }

    /// Derives a child capability for `start..start + len` (inside `cap`'s range) with
    /// `rights` (a subset of `cap`'s), held by `caller`. The child records `cap` as its
    /// parent and dies when `cap` is revoked or returned.
    ///
    /// Errors after the handle checks: [`RevocationPending`](CapError::RevocationPending),
    /// [`NoRight`](CapError::NoRight) with the rights that `cap` lacks,
    /// [`BadRange`](CapError::BadRange), [`OutOfRange`](CapError::OutOfRange),
    /// [`TooManyEntries`](CapError::TooManyEntries), [`Full`](CapError::Full) (the child
    /// counts against `caller`'s entry limit, [`with_limits`](Self::with_limits)).
    pub fn derive(
        &mut self,
        caller: OwnerId,
        cap: &Cap,
        start: u64,
        len: u64,
        rights: Rights,
    ) -> Result<Cap, CapError> {
        let (_, parent) = self.owned_live(caller, cap)?;
        let missing = rights.difference(parent.rights);
        if !missing.is_empty() {
            return Err(CapError::NoRight(missing));
        }
        let child = Resource::new(parent.resource.kind(), start, len)?;
        if !parent.resource.contains(&child) {
            return Err(CapError::OutOfRange);
        }
        let origin = Some(parent.origin);
        self.insert(caller, child, rights, Some(cap.id.local()), origin, caller)
    }

    /// Splits `cap` in place at `offset` units from its start: `cap` keeps the low part
    /// `start..start + offset`, and the returned new sibling (same parent, holder and
    /// rights) has the rest. In place, rather than two fresh children, so that the split
    /// halves are siblings [`merge`](Self::merge) can join again, the resource is never
    /// named twice, and the holder's handle stays valid. Not for an entry lent to the
    /// caller: its lender revokes it by name ([`revoke_derived`](Self::revoke_derived)),
    /// and the new sibling would escape that; the borrower derives from it instead.
    ///
    /// Errors after the handle checks: [`RevocationPending`](CapError::RevocationPending),
    /// [`Lent`](CapError::Lent), [`OutOfRange`](CapError::OutOfRange) unless `0 < offset < len`,
    /// [`BadRange`](CapError::BadRange) if `offset` is not on the kind's granule,
    /// [`HasChildren`](CapError::HasChildren) (a child could straddle the cut),
    /// [`TooManyEntries`](CapError::TooManyEntries), [`Full`](CapError::Full) (the new
    /// sibling counts against `caller`'s entry limit).
    pub fn split(&mut self, caller: OwnerId, cap: &Cap, offset: u64) -> Result<Cap, CapError> {
        let (i, e) = self.owned_live(caller, cap)?;
        if e.lent() {
            return Err(CapError::Lent);
        }
        let r = e.resource;
        if offset == 0 || offset >= r.len() {
            return Err(CapError::OutOfRange);
        }
        let low = Resource::new(r.kind(), r.start(), offset)?;
        let high = Resource::new(r.kind(), r.start() + offset, r.len() - offset)?;
        if self.has_children(cap.id) {
            return Err(CapError::HasChildren);
        }
        let new = self.insert(e.owner, high, e.rights, e.parent, Some(e.origin), caller)?;
        if let Some(entry) = self.slots[i].entry.as_mut() {
            entry.resource = low;
        }
        Ok(new)
    }

    /// Merges the sibling `b` into `a`: `a` grows to cover both ranges and `b`'s handle
    /// stops working ([`CapError::Revoked`]). Both must be held by `caller`, live, not
    /// lent to it ([`CapError::Lent`]: their lender revokes each by name, and `b`'s range
    /// would escape under `a`'s), siblings (derived from one parent, or roots split from
    /// one mint: two roots minted or granted apart are not, [`CapError::NotSiblings`], as
    /// the kernel revokes each by the name it made it under and `b`'s would escape under
    /// `a`'s), with equal rights, adjacent, and without children.
    pub fn merge(&mut self, caller: OwnerId, a: &Cap, b: &Cap) -> Result<(), CapError> {
        let (ia, ea) = self.owned(caller, a)?;
        let (ib, eb) = self.owned(caller, b)?;
        if ia == ib {
            return Err(CapError::NotSiblings);
        }
        if ea.state != EntryState::Live || eb.state != EntryState::Live {
            return Err(CapError::RevocationPending);
        }
        if ea.lent() || eb.lent() {
            return Err(CapError::Lent);
        }
        // One origin is one kind: every entry of a tree has its root's.
        if ea.parent != eb.parent || ea.origin != eb.origin {
            return Err(CapError::NotSiblings);
        }
        if ea.rights != eb.rights {
            return Err(CapError::RightsDiffer);
        }
        let (ra, rb) = (ea.resource, eb.resource);
        let start = if ra.end() == rb.start() {
            ra.start()
        } else if rb.end() == ra.start() {
            rb.start()
        } else {
            return Err(CapError::NotAdjacent);
        };
        if self.has_children(a.id) || self.has_children(b.id) {
            return Err(CapError::HasChildren);
        }
        let merged = Resource::new(ra.kind(), start, ra.len() + rb.len())?;
        if let Some(entry) = self.slots[ia].entry.as_mut() {
            entry.resource = merged;
        }
        self.free(ib);
        Ok(())
    }

    /// Hands `cap`'s entry to `to`: from now on `to` is its holder (the kernel moves the
    /// handle along). Needs [`Rights::DELEGATE`], and `to` must be a valid owner
    /// ([`CapError::BadOwner`]) that runs ([`CapError::NotRunning`]: checked after the
    /// handle, so a stale handle answers [`CapError::Revoked`] whoever `to` is). To lend a
    /// resource and keep the power to take it back, derive a child and delegate the child:
    /// the parent's holder can then [`revoke_derived`](Self::revoke_derived) it.
    pub fn delegate(&mut self, caller: OwnerId, cap: &Cap, to: OwnerId) -> Result<(), CapError> {
        let (i, e) = self.owned_live(caller, cap)?;
        if !e.rights.contains(Rights::DELEGATE) {
            return Err(CapError::NoRight(Rights::DELEGATE));
        }
        self.valid_owner(to)?;
        self.running(to)?;
        if let Some(entry) = self.slots[i].entry.as_mut() {
            entry.owner = to;
        }
        Ok(())
    }

    /// Gives `cap` back (the holder's answer to a revocation request, or just letting go):
    /// the entry and everything derived from it go; holders of derived entries other than
    /// `caller` get [`RevokeReason::AncestorReturned`] records. The range is then covered
    /// only by the parent again (for a root: back with the kernel). Works while a
    /// revocation is pending. Returns how many entries went.
    pub fn return_cap(&mut self, caller: OwnerId, cap: &Cap) -> Result<usize, CapError> {
        let (i, e) = self.owned(caller, cap)?;
        let root = (i, e.resource);
        Ok(self
            .remove_subtree(
                root,
                Taking::For(RevokeReason::AncestorReturned),
                Some(caller),
            )
            .entries)
    }

    /// Revokes `target`, which must be derived (transitively) from `ancestor`, by force:
    /// the holder of `ancestor` takes back what it lent. Needs [`Rights::REVOKE`] on
    /// `ancestor`; the holders get [`RevokeReason::Holder`] records.
    pub fn revoke_derived(
        &mut self,
        caller: OwnerId,
        ancestor: &Cap,
        target: EntryId,
    ) -> Result<Revocation, CapError> {
        let (_, a) = self.owned(caller, ancestor)?;
        if !a.rights.contains(Rights::REVOKE) {
            return Err(CapError::NoRight(Rights::REVOKE));
        }
        let (t, target_entry) = self.find(target)?;
        let mut up = target_entry.parent;
        // Every parent of a live entry is live, and the chain is at most N long.
        for _ in 0..N {
            match up {
                Some(p) if p == ancestor.id.local() => {
                    let root = (t, target_entry.resource);
                    return Ok(self.remove_subtree(root, Taking::For(RevokeReason::Holder), None));
                }
                Some(p) => up = self.find(self.named(p)).ok().and_then(|(_, e)| e.parent),
                None => break,
            }
        }
        Err(CapError::NotDescendant)
    }

    // ---- what owners and the monitor can read ----

    /// Every live entry, in slot order (the monitor's `caps`).
    pub fn entries(&self) -> impl Iterator<Item = EntryInfo> + '_ {
        self.used()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.entry.as_ref().map(|e| self.info(i, e)))
    }

    /// The live entries `owner` holds.
    pub fn entries_of(&self, owner: OwnerId) -> impl Iterator<Item = EntryInfo> + '_ {
        self.entries().filter(move |e| e.owner == owner)
    }

    /// The entries `owner` holds that the kernel asked back, with their deadlines in
    /// [`EntryInfo::state`].
    pub fn pending_revocations(&self, owner: OwnerId) -> impl Iterator<Item = EntryInfo> + '_ {
        self.entries_of(owner)
            .filter(|e| e.state != EntryState::Live)
    }

    /// Whether `owner` lost the entry `id` at a revocation deadline it missed (reason
    /// [`RevokeReason::DeadlinePassed`]), so that touching it again breaks the abort
    /// protocol. Unlike the repossession log, which is a ring, the table keeps such
    /// records until `owner` is released, however many repossessions come meanwhile, in
    /// `N` places of their own. A forfeit that finds every place taken costs a record of
    /// the owner holding the most places (the new one counted) and marks that owner's
    /// records lost, so that for that owner every gone entry without a record of its
    /// answers [`Forfeit::RecordsLost`], never a wrong [`Forfeit::NotForfeited`], until
    /// the owner is released; an owner holding fewer places than another keeps its own.
    pub fn forfeited(&self, owner: OwnerId, id: EntryId) -> Forfeit {
        let gone = id.table == self.id
            && (self.slots.get(id.index as usize)).is_some_and(|s| s.generation > id.generation);
        if !gone {
            Forfeit::NotForfeited
        } else if self.forfeits.contains(&Some(ForfeitRecord::of(owner, id))) {
            Forfeit::Recorded
        } else if self.forfeits_lost.get(usize::from(owner.0)) == Some(&true) {
            Forfeit::RecordsLost
        } else {
            Forfeit::NotForfeited
        }
    }

    /// `owner`'s repossession log, oldest first (at most `LOG` records).
    pub fn repossessions(
        &self,
        owner: OwnerId,
    ) -> Result<impl Iterator<Item = Repossession> + '_, CapError> {
        Ok(self.log(owner)?.iter())
    }

    /// How many records `owner`'s log lost to overflow since it was last cleared.
    pub fn repossessions_dropped(&self, owner: OwnerId) -> Result<u64, CapError> {
        Ok(self.log(owner)?.dropped)
    }

    /// Empties `owner`'s repossession log (once the owner has read it).
    pub fn clear_repossessions(&mut self, owner: OwnerId) -> Result<(), CapError> {
        self.valid_owner(owner)?;
        if let Some(log) = self.logs.get_mut(usize::from(owner.0)) {
            *log = Log::EMPTY;
        }
        Ok(())
    }

    // ---- internals ----

    fn valid_owner(&self, owner: OwnerId) -> Result<(), CapError> {
        if usize::from(owner.0) < OWNERS {
            Ok(())
        } else {
            Err(CapError::BadOwner(owner))
        }
    }

    fn log(&self, owner: OwnerId) -> Result<&Log<LOG>, CapError> {
        self.logs
            .get(usize::from(owner.0))
            .ok_or(CapError::BadOwner(owner))
    }

    /// The slot and a copy of the live entry named by `id`.
    fn find(&self, id: EntryId) -> Result<(usize, Entry), CapError> {
        if id.table != self.id {
            return Err(CapError::WrongTable);
        }
        let i = id.index as usize;
        match self.slots.get(i) {
            Some(Slot {
                generation,
                entry: Some(e),
                ..
            }) if *generation == id.generation => Ok((i, *e)),
            _ => Err(CapError::Revoked),
        }
    }

    /// The slot and entry of `cap`, if `caller` holds it.
    fn owned(&self, caller: OwnerId, cap: &Cap) -> Result<(usize, Entry), CapError> {
        let (i, e) = self.find(cap.id)?;
        if e.owner != caller {
            return Err(CapError::NotOwner);
        }
        Ok((i, e))
    }

    /// As [`owned`](Self::owned), and no revocation is pending.
    fn owned_live(&self, caller: OwnerId, cap: &Cap) -> Result<(usize, Entry), CapError> {
        let (i, e) = self.owned(caller, cap)?;
        if e.state != EntryState::Live {
            return Err(CapError::RevocationPending);
        }
        Ok((i, e))
    }

    fn id_of(&self, i: usize) -> EntryId {
        let generation = self.slots.get(i).map_or(RETIRED, |s| s.generation);
        EntryId {
            table: self.id,
            index: i as u32,
            generation,
        }
    }

    /// The full name of the entry named `local` in this table.
    const fn named(&self, local: LocalId) -> EntryId {
        EntryId {
            table: self.id,
            index: local.index,
            generation: local.generation,
        }
    }

    fn info(&self, i: usize, e: &Entry) -> EntryInfo {
        EntryInfo {
            id: self.id_of(i),
            owner: e.owner,
            resource: e.resource,
            rights: e.rights,
            parent: e.parent.map(|p| self.named(p)),
            state: e.state,
        }
    }

    fn has_children(&self, id: EntryId) -> bool {
        self.used()
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .any(|e| e.parent == Some(id.local()))
    }

    /// How many entries in the table were derived from `id` directly.
    fn children(&self, id: EntryId) -> usize {
        let child = |e: &&Entry| e.parent == Some(id.local());
        self.used()
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .filter(child)
            .count()
    }

    /// A root held by `owner`, unless it overlaps a live root of its kind; `maker` as
    /// for [`insert`](Self::insert).
    fn mint_root(
        &mut self,
        owner: OwnerId,
        resource: Resource,
        rights: Rights,
        maker: OwnerId,
    ) -> Result<Cap, CapError> {
        self.valid_owner(owner)?;
        let overlaps = self
            .used()
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .any(|e| e.parent.is_none() && e.resource.overlaps(&resource));
        if overlaps {
            return Err(CapError::Overlaps);
        }
        self.insert(owner, resource, rights, None, None, maker)
    }

    /// How many live entries `owner`'s requests made ([`with_limits`](Self::with_limits)).
    pub(crate) fn made_by(&self, owner: OwnerId) -> usize {
        let made = |e: &&Entry| e.maker == owner;
        self.used()
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .filter(made)
            .count()
    }

    /// Whether a new entry made at `maker`'s request finds room: one made at an app's
    /// request must stay within that app's limit and leave free the part of the reserve the
    /// kernel does not hold; the kernel's own ([`OwnerId::KERNEL`]) may take the last free
    /// slot.
    fn room_for(&self, maker: OwnerId) -> Result<(), CapError> {
        let kept_free = if maker == OwnerId::KERNEL {
            0
        } else if self.made_by(maker) >= self.owner_limit {
            let max = self.owner_limit;
            return Err(CapError::TooManyEntries { max });
        } else {
            self.reserve.saturating_sub(self.made_by(OwnerId::KERNEL))
        };
        if N - self.live - self.retired <= kept_free {
            return Err(CapError::Full);
        }
        Ok(())
    }

    /// Puts a new entry in a free slot, if there is room for one `maker` asked for
    /// ([`room_for`](Self::room_for)); `origin` as [`Entry`]'s, `None` for a new root
    /// (its own).
    fn insert(
        &mut self,
        owner: OwnerId,
        resource: Resource,
        rights: Rights,
        parent: Option<LocalId>,
        origin: Option<LocalId>,
        maker: OwnerId,
    ) -> Result<Cap, CapError> {
        self.room_for(maker)?;
        let i = self
            .slots
            .iter()
            .position(Slot::is_free)
            .ok_or(CapError::Full)?;
        #[cfg(test)]
        crate::tests::slot_watch::scanned(i + 1);
        let id = self.id_of(i);
        self.occupied = self.occupied.max(i + 1);
        self.live += 1;
        self.slots[i].entry = Some(Entry {
            owner,
            resource,
            rights,
            parent,
            origin: origin.unwrap_or(id.local()),
            state: EntryState::Live,
            dying: false,
            parked: false,
            maker,
        });
        Ok(Cap { id })
    }

    /// Records that `owner` forfeited the entry `id` in a free place of `forfeits`, or
    /// with none free in the place [`forfeit_to_give_up`](Self::forfeit_to_give_up) names.
    fn record_forfeit(&mut self, owner: OwnerId, id: EntryId) {
        let free = self.forfeits.iter().position(Option::is_none);
        if let Some(place) = (free.or_else(|| self.forfeit_to_give_up(owner)))
            .and_then(|place| self.forfeits.get_mut(place))
        {
            *place = Some(ForfeitRecord::of(owner, id));
        }
    }

    /// With every place of `forfeits` taken and a forfeit of `newcomer` to record: marks
    /// lost the owner holding the most places, the newcomer's new record counted (on a
    /// tie the lowest owner id), and names its place of the lowest entry id, so that one
    /// owner's flood of forfeits never costs another owner a record. `None` when that
    /// owner is the newcomer holding no place: the new record is not kept.
    fn forfeit_to_give_up(&mut self, newcomer: OwnerId) -> Option<usize> {
        let mut held = [0usize; OWNERS];
        for record in self.forfeits.iter().flatten() {
            if let Some(count) = held.get_mut(usize::from(record.owner.0)) {
                *count += 1;
            }
        }
        if let Some(count) = held.get_mut(usize::from(newcomer.0)) {
            *count += 1;
        }
        let (most, _) = (held.iter().enumerate())
            .max_by_key(|&(owner, &count)| (count, core::cmp::Reverse(owner)))?;
        if let Some(lost) = self.forfeits_lost.get_mut(most) {
            *lost = true;
        }
        let (place, _) = (self.forfeits.iter().enumerate())
            .filter_map(|(place, record)| record.map(|record| (place, record)))
            .filter(|(_, record)| usize::from(record.owner.0) == most)
            .min_by_key(|(_, record)| (record.index, record.generation))?;
        Some(place)
    }

    /// Empties slot `i` and moves its generation on (retiring it at the last one); the
    /// occupied slots end below the highest entry left.
    fn free(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i).filter(|s| s.entry.is_some()) else {
            return;
        };
        slot.entry = None;
        slot.generation = slot.generation.saturating_add(1);
        self.live -= 1;
        self.retired += usize::from(slot.generation == RETIRED);
        while self.occupied > 0 && self.slots[self.occupied - 1].entry.is_none() {
            self.occupied -= 1;
        }
    }

    /// The indices below [`occupied`](Self::occupied), every scan's range: every entry
    /// is in one of their slots. Tests count the slots each scan is given.
    fn scan(&self) -> core::ops::Range<usize> {
        let range = 0..self.occupied;
        #[cfg(test)]
        crate::tests::slot_watch::scanned(range.len());
        range
    }

    /// The slots of [`scan`](Self::scan).
    fn used(&self) -> &[Slot] {
        &self.slots[self.scan()]
    }

    /// [`used`](Self::used), to change entries in place.
    fn used_mut(&mut self) -> &mut [Slot] {
        let range = self.scan();
        &mut self.slots[range]
    }

    /// Whether the holder of the dying entry in slot `i` missed a deadline of its own by
    /// `now_ns` on it or on an ancestor it also holds, up to the top of its tree (dying or
    /// not: an expired ancestor above the subtree taken is taken next, so the answer does
    /// not depend on which expired subtree is taken first).
    fn missed_own_deadline(&self, i: usize, now_ns: u64) -> bool {
        let Some(owner) = self.slots[i].entry.map(|e| e.owner) else {
            return false;
        };
        let mut at = Some(i);
        // The chain of ancestors is at most N long.
        for _ in 0..N {
            let Some(e) = at.and_then(|k| self.slots[k].entry) else {
                return false;
            };
            if e.owner == owner && e.expired_by(now_ns) {
                return true;
            }
            at = (e.parent.and_then(|p| self.find(self.named(p)).ok())).map(|(k, _)| k);
        }
        false
    }

    /// What the kernel's revocation or request of `target` reaches: a derived entry
    /// alone; for a root, every live root of its origin; for a mint's name whose entry
    /// went, the live roots of that origin if there are any (else [`CapError::Revoked`]).
    fn reach(&self, target: EntryId) -> Result<Reach, CapError> {
        match self.find(target) {
            Ok((i, e)) if e.parent.is_some() => Ok(Reach::Entry(i)),
            Ok((_, e)) => Ok(Reach::Mint(e.origin)),
            Err(CapError::Revoked) => {
                let mint = Reach::Mint(target.local());
                let mut slots = self.used().iter().enumerate();
                let pieces_left = slots.any(|(i, s)| s.entry.is_some_and(|e| mint.takes(i, &e)));
                pieces_left.then_some(mint).ok_or(CapError::Revoked)
            }
            Err(error) => Err(error),
        }
    }

    /// Removes the entry in slot `root` and all its descendants, logging a record of why
    /// for each holder except `quiet` (who gave it up or is ending).
    fn remove_subtree(
        &mut self,
        (root, resource): (usize, Resource),
        taking: Taking,
        quiet: Option<OwnerId>,
    ) -> Revocation {
        if let Some(e) = self.slots.get_mut(root).and_then(|s| s.entry.as_mut()) {
            e.dying = true;
        }
        self.remove_dying(resource, taking, quiet)
    }

    /// Removes the entries marked dying and all their descendants, logging as
    /// [`remove_subtree`](Self::remove_subtree) does; `resource` is what was taken.
    fn remove_dying(
        &mut self,
        resource: Resource,
        taking: Taking,
        quiet: Option<OwnerId>,
    ) -> Revocation {
        // Mark descendants level by level: a pass marks every entry whose parent is marked.
        loop {
            let mut changed = false;
            for i in self.scan() {
                let Some(e) = self.slots[i].entry else {
                    continue;
                };
                let parent_dying = e.parent.is_some_and(|p| {
                    self.slots.get(p.index as usize).is_some_and(|s| {
                        s.generation == p.generation && s.entry.is_some_and(|pe| pe.dying)
                    })
                });
                if !e.dying && parent_dying {
                    if let Some(e) = self.slots[i].entry.as_mut() {
                        e.dying = true;
                    }
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Every record is made before any entry goes: a reason looks at ancestors.
        for i in self.scan() {
            let Some(e) = self.slots[i]
                .entry
                .filter(|e| e.dying && quiet != Some(e.owner))
            else {
                continue;
            };
            let record = Repossession {
                owner: e.owner,
                entry: self.id_of(i),
                resource: e.resource,
                rights: e.rights,
                reason: match taking {
                    Taking::For(reason) => reason,
                    Taking::DeadlinesBy(now_ns) if self.missed_own_deadline(i, now_ns) => {
                        RevokeReason::DeadlinePassed
                    }
                    Taking::DeadlinesBy(_) => RevokeReason::AncestorTaken,
                },
            };
            if record.reason == RevokeReason::DeadlinePassed {
                self.record_forfeit(e.owner, record.entry);
            }
            if let Some(log) = self.logs.get_mut(usize::from(e.owner.0)) {
                log.push(record);
            }
        }
        let mut entries = 0;
        // The range is taken once: `free` lowers `occupied` only past empty slots.
        for i in self.scan() {
            if self.slots[i].entry.is_some_and(|e| e.dying) {
                self.free(i);
                entries += 1;
            }
        }
        Revocation { resource, entries }
    }
}

/// What a revocation by the kernel reaches by one name ([`CapTable::revoke`]).
#[derive(Clone, Copy)]
enum Reach {
    /// The derived entry in this slot.
    Entry(usize),
    /// Every live root of this origin: the pieces of one mint.
    Mint(LocalId),
}

impl Reach {
    /// Whether it reaches the entry `e` in slot `i` itself (its descendants go with it).
    fn takes(self, i: usize, e: &Entry) -> bool {
        match self {
            Reach::Entry(slot) => i == slot,
            Reach::Mint(origin) => e.parent.is_none() && e.origin == origin,
        }
    }
}

/// Why [`CapTable::remove_subtree`] takes a subtree: for a reason every holder is told,
/// or at the revocation deadlines passed by a time (each holder that missed one of its
/// own is told [`RevokeReason::DeadlinePassed`], the others
/// [`RevokeReason::AncestorTaken`]).
#[derive(Clone, Copy)]
enum Taking {
    /// Every holder is told this reason.
    For(RevokeReason),
    /// The deadlines at or before this time (ns) passed.
    DeadlinesBy(u64),
}
