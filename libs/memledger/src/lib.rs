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
//! - **Grants.** The frames behind memory capabilities. Frames go back to the allocator
//!   once no live memory capability overlaps them (so a split half that is returned does
//!   not free its sibling's frames).
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

/// Frames the ledger keeps for a grant: anything that knows its physical range.
pub trait Frames {
    /// The physical bytes `start..end`.
    fn range(&self) -> Range<u64>;
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
const FRAME: u64 = 4096;

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
    /// Frames no capability names any more and no revoked region covers.
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
    /// regions. `ended`: that owner has ended, so its revoked regions are lifted.
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
        let named = |range: &Range<u64>| {
            live.iter().any(|(_, r)| overlaps(r, range))
                || self.revoked.iter().any(|r| overlaps(&r.range, range))
        };
        let (busy, unused): (Vec<_>, Vec<_>) = core::mem::take(&mut self.grants)
            .into_iter()
            .partition(|(frames, _)| named(&frames.range()));
        self.grants = busy;
        for (frames, owner) in unused {
            let range = frames.range();
            self.uncharge(owner, range.end - range.start);
            out.free.push(frames);
        }
        out
    }
}

#[cfg(test)]
mod tests;
