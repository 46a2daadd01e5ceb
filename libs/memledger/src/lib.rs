//! The kernel's books on app memory, kept apart from the page tables and the frame
//! allocator so that the rules can be tested on the host:
//!
//! - **Charges and quotas.** Every grant of frames is charged to the owner it was made
//!   for (delegation does not move the charge) until the frames go back; an owner may have
//!   a quota, and a charge past it is refused before anything is taken.
//! - **Loans.** A run started by another owner (`run_app`) gets as its quota what that
//!   owner may still take ([`Quota::LentBy`]): its quota less what it holds and what it
//!   lent already. The lender's own charges count the loan until the run ends, so two runs
//!   it starts side by side (its tasks on several cores) share that rest, never get it
//!   twice. When the run ends, the charges of its grants still alive (delegated to
//!   another app, which keeps them) move to the lender, so that memory lent once is never
//!   counted by nobody and the lender cannot take its quota again on top of it.
//! - **Grants.** The frames behind memory capabilities. A grant's frames go back to the
//!   allocator, and come off its owner's charge, once no live memory capability and no
//!   revoked region covers them, frame by frame: the grant is cut, and the parts still
//!   named (a split half another app holds, a child lent away) stay, charged as before,
//!   while the rest goes back at once.
//! - **Mappings.** Capabilities whose holder mapped them for direct access (zero copy).
//!   When such a capability is taken by force (a missed revocation deadline, the kernel's
//!   own revocation), its range becomes a *revoked region*: the kernel unmaps it, and the
//!   frames under it stay out of the free pool until the holder has ended, so that the
//!   holder's stale references can never see another owner's data. A capability given
//!   back by its holder, or released when the holder ends, needs no such care: no
//!   reference to it can be left (an app's view lives only inside its
//!   `Kernel::map_memory` call, whose closure cannot keep the slice).
//!
//! - **Heap growth.** The kernel heap's growth that an app run's own code causes (its
//!   `Vec`s and `Box`es), counted per owner against the run's quota ([`HeapGrowth`]).
//!
//! The ledger only decides; the kernel does what a [`Reclaim`] says (unmap, map back,
//! free) in that order.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

mod heap_growth;

pub use heap_growth::HeapGrowth;

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use rexo_captable::{EntryId, OwnerId};
use rexo_memmap::FrameRange;

/// Frames the ledger keeps for a grant: anything that knows its physical range and can be
/// cut in two, so that the part of a grant no capability names goes back alone.
pub trait Frames: Sized {
    /// The physical bytes `start..end`.
    fn range(&self) -> Range<u64>;

    /// The first `offset` bytes and the rest; `self` back if it cannot be cut there.
    fn split_at(self, offset: u64) -> Result<(Self, Self), Self>;
}

impl Frames for FrameRange {
    fn range(&self) -> Range<u64> {
        self.start()..self.end()
    }

    fn split_at(self, offset: u64) -> Result<(Self, Self), Self> {
        FrameRange::split_at(self, offset)
    }
}

/// Why the ledger refused a charge or a quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// The owner is beyond the ledger's owners.
    BadOwner(OwnerId),
    /// The charge would take the owner past its quota (or past `u64::MAX`).
    QuotaExceeded,
    /// A grant of no bytes was asked for.
    ZeroSize,
    /// The whole frames of the size asked for pass `u64::MAX` (for an owner with no
    /// quota: with one, such a size is [`QuotaExceeded`](LedgerError::QuotaExceeded)).
    TooLarge,
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::BadOwner(owner) => write!(f, "no such owner: {}", owner.0),
            LedgerError::QuotaExceeded => f.write_str("the owner's memory quota is used up"),
            LedgerError::ZeroSize => f.write_str("a grant of 0 bytes"),
            LedgerError::TooLarge => f.write_str("a size past the last whole frame"),
        }
    }
}

/// The bytes of a frame: grants are made, and charged, in whole frames.
const FRAME: u64 = rexo_memmap::FRAME_SIZE;

/// Where the quota of a run ([`Ledger::start_run`]) comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// This many bytes (`None`: no limit): a boot manifest entry's.
    Fixed(Option<u64>),
    /// What this owner may still take, lent to the run until it ends: the caller of
    /// `run_app`.
    LentBy(OwnerId),
}

/// A mapped capability, or a region revoked from one: the range and who holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The capability's entry.
    pub entry: EntryId,
    /// Its physical range.
    pub range: Range<u64>,
    /// Its holder.
    pub holder: OwnerId,
}

/// What the kernel must do after a change, in this order: unmap `unmap` (and flush every
/// core's TLB), map `remap` back, then free `free`.
#[derive(Debug)]
pub struct Reclaim<F> {
    /// Ranges just revoked by force from a holder that may still touch them.
    pub unmap: Vec<Range<u64>>,
    /// Revoked ranges whose holder ended: safe to map again.
    pub remap: Vec<Range<u64>>,
    /// Frames no capability names any more and no revoked region covers: whole grants, or
    /// the parts of one cut from the parts still named.
    pub free: Vec<F>,
}

/// The books: charges, quotas, grants, mappings and revoked regions.
pub struct Ledger<F> {
    held: Vec<u64>,
    quota: Vec<Option<u64>>,
    /// Per owner, the loan its run lives on: the lender and the bytes lent.
    loans: Vec<Option<(OwnerId, u64)>>,
    /// Frames behind capabilities, and the owner each grant is charged to.
    grants: Vec<(F, OwnerId)>,
    mapped: Vec<Mapping>,
    revoked: Vec<Mapping>,
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The runs of `range` that the `named` ranges cover, widened to whole frames (never past
/// `range`), joined where they touch or overlap, in order.
fn covered(range: &Range<u64>, named: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = named
        .iter()
        .filter(|r| overlaps(r, range))
        .map(|r| {
            let start = r.start.max(range.start);
            let end = r.end.min(range.end);
            let end = end.checked_next_multiple_of(FRAME).unwrap_or(range.end);
            start - start % FRAME..end.min(range.end)
        })
        .collect();
    runs.sort_unstable_by_key(|r| r.start);
    let mut joined: Vec<Range<u64>> = Vec::new();
    for run in runs {
        match joined.last_mut() {
            Some(last) if run.start <= last.end => last.end = last.end.max(run.end),
            _ => joined.push(run),
        }
    }
    joined
}

/// `frames` cut at the addresses `cuts` (ascending, strictly inside): the pieces in order.
/// A cut the frames refuse leaves the two pieces around it joined.
fn cut<F: Frames>(frames: F, cuts: impl Iterator<Item = u64>) -> Vec<F> {
    let mut pieces = Vec::new();
    let mut rest = frames;
    for at in cuts {
        let offset = at - rest.range().start;
        rest = match rest.split_at(offset) {
            Ok((piece, after)) => {
                pieces.push(piece);
                after
            }
            Err(whole) => whole,
        };
    }
    pieces.push(rest);
    pieces
}

impl<F: Frames> Ledger<F> {
    /// Empty books for owners `0..owners`.
    pub fn new(owners: usize) -> Self {
        Self {
            held: alloc::vec![0; owners],
            quota: alloc::vec![None; owners],
            loans: alloc::vec![None; owners],
            grants: Vec::new(),
            mapped: Vec::new(),
            revoked: Vec::new(),
        }
    }

    fn index(&self, owner: OwnerId) -> Result<usize, LedgerError> {
        let index = usize::from(owner.0);
        (index < self.held.len())
            .then_some(index)
            .ok_or(LedgerError::BadOwner(owner))
    }

    /// Starts `owner`'s run with its `quota`, and returns the quota set. A quota lent by
    /// another owner is that owner's quota less what it holds and what it lent already
    /// (no limit if it has none), lent until [`end_run`](Self::end_run). An owner that
    /// lends to itself, or an owner beyond the books, is refused (`BadOwner`) and nothing
    /// changes. A loan from an earlier run of `owner` not ended is paid back first.
    pub fn start_run(&mut self, owner: OwnerId, quota: Quota) -> Result<Option<u64>, LedgerError> {
        let index = self.index(owner)?;
        let lender = match quota {
            Quota::Fixed(bytes) => {
                self.end_run(owner);
                self.quota[index] = bytes;
                return Ok(bytes);
            }
            Quota::LentBy(lender) => lender,
        };
        let from = self.index(lender)?;
        if lender == owner {
            return Err(LedgerError::BadOwner(owner));
        }
        self.end_run(owner);
        let used = self.held[from].saturating_add(self.lent(from));
        let lent = self.quota[from].map(|quota| quota.saturating_sub(used));
        if let Some(bytes) = lent {
            self.loans[index] = Some((lender, bytes));
        }
        self.quota[index] = lent;
        Ok(lent)
    }

    /// Ends `owner`'s run: its quota goes, and what it was lent goes back to its lender,
    /// which takes over the charges of `owner`'s grants, wherever they were delegated:
    /// those still alive when `owner`'s capabilities are gone (handed to another app)
    /// stay counted against the lender's quota until their frames go back. Returns the
    /// lender, if the run was lent its quota.
    pub fn end_run(&mut self, owner: OwnerId) -> Option<OwnerId> {
        let index = self.index(owner).ok()?;
        self.quota[index] = None;
        let (lender, _) = self.loans[index].take()?;
        let mut moved = 0u64;
        for (frames, charged) in self.grants.iter_mut().filter(|(_, o)| *o == owner) {
            *charged = lender;
            moved = moved.saturating_add(frames.range().end - frames.range().start);
        }
        self.uncharge(owner, moved);
        if let Ok(to) = self.index(lender) {
            self.held[to] = self.held[to].saturating_add(moved);
        }
        Some(lender)
    }

    /// Bytes of its quota owner `index` lent to runs still going: the sum of the loans
    /// it made.
    fn lent(&self, index: usize) -> u64 {
        self.loans
            .iter()
            .flatten()
            .filter(|(lender, _)| usize::from(lender.0) == index)
            .fold(0, |lent, &(_, bytes)| lent.saturating_add(bytes))
    }

    /// Bytes charged to `owner` (0 for an owner beyond the books).
    pub fn held(&self, owner: OwnerId) -> u64 {
        self.index(owner).map_or(0, |index| self.held[index])
    }

    /// Charges `bytes` to `owner` if its quota allows, counting what it lent to runs still
    /// going (a reservation before frames are taken); nothing changes on a refusal.
    pub fn charge(&mut self, owner: OwnerId, bytes: u64) -> Result<(), LedgerError> {
        let index = self.index(owner)?;
        let total = self.held[index]
            .checked_add(bytes)
            .ok_or(LedgerError::QuotaExceeded)?;
        let committed = total
            .checked_add(self.lent(index))
            .ok_or(LedgerError::QuotaExceeded)?;
        if self.quota[index].is_some_and(|quota| committed > quota) {
            return Err(LedgerError::QuotaExceeded);
        }
        self.held[index] = total;
        Ok(())
    }

    /// Reserves what a grant of `bytes` to `owner` takes, `bytes` rounded up to whole
    /// 4 KiB frames, with [`charge`](Self::charge), and returns the bytes reserved.
    /// [`ZeroSize`](LedgerError::ZeroSize) for 0 bytes (nothing to grant, not a lack of
    /// memory); when the whole frames pass `u64::MAX`,
    /// [`QuotaExceeded`](LedgerError::QuotaExceeded) for an owner with a quota (past any
    /// quota), else [`TooLarge`](LedgerError::TooLarge); nothing changes on a refusal.
    pub fn reserve_frames(&mut self, owner: OwnerId, bytes: u64) -> Result<u64, LedgerError> {
        if bytes == 0 {
            return Err(LedgerError::ZeroSize);
        }
        let Some(whole) = bytes.checked_next_multiple_of(FRAME) else {
            let has_quota = self.quota[self.index(owner)?].is_some();
            return Err(if has_quota {
                LedgerError::QuotaExceeded
            } else {
                LedgerError::TooLarge
            });
        };
        self.charge(owner, whole)?;
        Ok(whole)
    }

    /// Takes `bytes` off `owner`'s charge (a reservation that was not used).
    pub fn uncharge(&mut self, owner: OwnerId, bytes: u64) {
        if let Ok(index) = self.index(owner) {
            self.held[index] = self.held[index].saturating_sub(bytes);
        }
    }

    /// Records `frames`, granted to `owner` for `reserved` bytes charged before: the charge
    /// becomes the frames' length (the allocator may round up). The reservation comes off
    /// before the frames go on, so other reservations still pending (another core's, up
    /// to `u64::MAX` in all) cannot make the sum overflow; the sum saturates.
    pub fn record_grant(&mut self, owner: OwnerId, frames: F, reserved: u64) {
        let len = frames.range().end - frames.range().start;
        if let Ok(index) = self.index(owner) {
            self.held[index] = self.held[index]
                .saturating_sub(reserved)
                .saturating_add(len);
        }
        self.grants.push((frames, owner));
    }

    /// Records that `holder` mapped `entry` over `range`. It stays recorded until
    /// [`forget_mapping`](Self::forget_mapping) or the entry goes, since the ledger cannot
    /// see views end.
    pub fn record_mapping(&mut self, entry: EntryId, range: Range<u64>, holder: OwnerId) {
        self.forget_mapping(entry);
        self.mapped.push(Mapping {
            entry,
            range,
            holder,
        });
    }

    /// Forgets that `entry` was mapped: its holder used the capability itself (split,
    /// merge, derive, delegate), which it cannot do while a view of it is alive.
    pub fn forget_mapping(&mut self, entry: EntryId) {
        self.mapped.retain(|m| m.entry != entry);
    }

    /// The revoked region holding `addr`, if any.
    pub fn revoked_at(&self, addr: u64) -> Option<&Mapping> {
        self.revoked.iter().find(|r| r.range.contains(&addr))
    }

    /// Whether any of the `len` bytes from `start` lies in a revoked region (an app's
    /// buffer the kernel must not copy to or from: the copy would fault).
    pub fn touches_revoked(&self, start: u64, len: u64) -> bool {
        let range = start..start.saturating_add(len);
        !range.is_empty() && self.revoked.iter().any(|r| overlaps(&r.range, &range))
    }

    /// Every revoked region (still unmapped, its holder not ended).
    pub fn revoked(&self) -> &[Mapping] {
        &self.revoked
    }

    /// Brings the books up to date with the table's `live` memory entries after a change.
    /// `forced`: the entries that went were taken by force, so mapped ones become revoked
    /// regions. `ended`: that owner has ended, so its revoked regions are lifted. Every
    /// grant is cut where the ranges of live entries and revoked regions (widened to whole
    /// frames) start and end: the pieces none of them covers are freed and come off their
    /// owner's charge, the others stay grants charged to it.
    pub fn reclaim(
        &mut self,
        live: &[(EntryId, Range<u64>)],
        forced: bool,
        ended: Option<OwnerId>,
    ) -> Reclaim<F> {
        let mut out = Reclaim {
            unmap: Vec::new(),
            remap: Vec::new(),
            free: Vec::new(),
        };
        let (kept, gone): (Vec<_>, Vec<_>) = core::mem::take(&mut self.mapped)
            .into_iter()
            .partition(|m| live.iter().any(|(id, _)| *id == m.entry));
        self.mapped = kept;
        if forced {
            out.unmap.extend(gone.iter().map(|m| m.range.clone()));
            self.revoked.extend(gone);
        }
        if let Some(owner) = ended {
            let (lifted, still): (Vec<_>, Vec<_>) = core::mem::take(&mut self.revoked)
                .into_iter()
                .partition(|r| r.holder == owner);
            self.revoked = still;
            out.remap.extend(lifted.into_iter().map(|r| r.range));
        }
        let named: Vec<Range<u64>> = live
            .iter()
            .map(|(_, r)| r.clone())
            .chain(self.revoked.iter().map(|r| r.range.clone()))
            .collect();
        for (frames, owner) in core::mem::take(&mut self.grants) {
            let range = frames.range();
            let runs = covered(&range, &named);
            let cuts = runs.iter().flat_map(|run| [run.start, run.end]);
            let inside = cuts.filter(|&at| range.start < at && at < range.end);
            for piece in cut(frames, inside) {
                let piece_range = piece.range();
                if named.iter().any(|r| overlaps(r, &piece_range)) {
                    self.grants.push((piece, owner));
                } else {
                    self.uncharge(owner, piece_range.end - piece_range.start);
                    out.free.push(piece);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
