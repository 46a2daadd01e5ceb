//! The kernel's table of secure bindings: capabilities over physical resources, with
//! visible revocation (issue 4, items 1 and 2). The kernel wraps one [`CapTable`]; apps
//! only ever see [`Cap`] handles and the kernel API built on them.
//!
//! # The model
//!
//! - **Resources** are ranges of one [`ResourceKind`]: memory, device register windows
//!   and DMA buffers in bytes on 4 KiB pages ([`Resource::page_size`] says whether a
//!   range can be mapped with 2 MiB or 1 GiB pages), cores, interrupt vectors (0..256),
//!   timers, NIC queues by index, disk extents in blocks. A [`Resource`] is validated
//!   when it is made (non-empty, aligned, no wrap-around), so every one in the table is sound.
//! - **Rights** are a small bit set, [`Rights`] (`READ`, `WRITE`, `EXECUTE`, `MAP`,
//!   `DELEGATE`, `REVOKE`), written here rather than taken from `bitflags`: six flags,
//!   `const` operations and no dependency.
//! - **Owners** are [`OwnerId`]s, `0` being the kernel; a table serves owners `0..OWNERS`.
//! - **Entries.** Each live entry records its holder, resource, rights, parent entry
//!   (`None` for a root the kernel minted), origin (the root its tree grew from, as it
//!   was minted: a split copies it, so the pieces of one mint share it and roots minted
//!   apart never do), and state: [`EntryState::Live`] or
//!   [`EntryState::RevokeRequested`] with a deadline. *Revoked* is not stored: revoking
//!   frees the slot and advances its generation, so every handle to the old entry answers
//!   [`CapError::Revoked`] forever. Generations are `u64`: a slot reaches the last one
//!   after 2^64 - 1 entries made and gone in it, some 580,000 years at one derive and
//!   return a microsecond (about what one costs), so no slot wears out in practice (with
//!   `u32` generations one app's churn used up the kernel's 256 slots in some 13 days).
//!   A slot whose generation reaches `u64::MAX` is still retired rather than wrapped, so
//!   a slot never reuses a generation; the table reports [`CapError::Full`] once every
//!   slot is live or retired.
//! - **Limits.** One table serves every owner, so a table made
//!   [`with_limits`](CapTable::with_limits) charges each entry made at an owner's request
//!   ([`grant`](CapTable::grant), [`derive`](CapTable::derive), [`split`](CapTable::split))
//!   to that owner until it goes, wherever it was delegated: past its limit such requests
//!   answer [`CapError::TooManyEntries`], and they never take the kernel's reserve for
//!   its own mints, of which what the kernel holds counts ([`CapError::Full`]).
//! - **Handles.** A [`Cap`] is `(table id, index, generation)`, minted only by the table:
//!   its field is private, it has no constructor, and it is neither `Clone` nor `Copy`.
//!   Every table takes a fresh id from a global counter, so a handle used on another table
//!   answers [`CapError::WrongTable`]. Holder operations also take the caller's
//!   [`OwnerId`] (the kernel knows who is calling) and refuse
//!   [`NotOwner`](CapError::NotOwner): a handle that ends up in the wrong hands is useless.
//! - **Authority.** The table is generic over an authority type `A`. Minting, revocation
//!   requests, forced revocation and releasing an owner take `&A`. The kernel defines `A`
//!   as a type with a private field (`pub struct KernelAuthority(())`), so no other crate
//!   can make one; an app that builds its own table gets handles that do not work on the
//!   kernel's.
//!
//! # Operations
//!
//! Kernel: [`mint`](CapTable::mint) (roots may not overlap), [`grant`](CapTable::grant)
//! (a root an owner asked for, within its limit),
//! [`mint_child`](CapTable::mint_child) (a share of a root, for one holder, up to a
//! number of shares the kernel gives),
//! [`request_revocation`](CapTable::request_revocation),
//! [`revoke`](CapTable::revoke), [`revoke_next_expired`](CapTable::revoke_next_expired),
//! [`release_owner`](CapTable::release_owner), [`park`](CapTable::park) and
//! [`pick_up`](CapTable::pick_up) (the inbox of handles delegated or minted for an owner
//! that it has not taken yet, kept in the entries). Holders: [`check`](CapTable::check),
//! [`check_access`](CapTable::check_access), [`derive`](CapTable::derive) (subrange and
//! subset of rights, the child records its parent), [`split`](CapTable::split) (in place:
//! the handle keeps the low part, a new sibling gets the rest),
//! [`merge`](CapTable::merge) (two adjacent siblings with equal rights: derived from one
//! parent, or roots split from one mint, never two roots minted apart, which the kernel
//! revokes each by its own name; neither split nor
//! merge takes an entry lent to the caller, derived by another owner and delegated, which
//! its lender revokes by name: [`CapError::Lent`], the borrower derives from it instead),
//! [`delegate`](CapTable::delegate) (needs `DELEGATE`; the entry changes holder),
//! [`return_cap`](CapTable::return_cap), [`revoke_derived`](CapTable::revoke_derived)
//! (needs `REVOKE` on an ancestor). Reading: [`entries`](CapTable::entries),
//! [`entries_of`](CapTable::entries_of), [`pending_revocations`](CapTable::pending_revocations),
//! [`repossessions`](CapTable::repossessions).
//!
//! The kernel's [`revoke`](CapTable::revoke) and
//! [`request_revocation`](CapTable::request_revocation) of a root reach every piece split
//! from its mint, whoever holds it, and a mint's name reaches the pieces left after its
//! own entry was merged into one or returned: what the kernel minted it takes back whole.
//! Revoking an entry revokes everything derived from it, transitively, and writes a
//! [`Repossession`] record (holder, entry, kind and range, rights, reason) into each
//! holder's log: a ring of `LOG` records per owner that counts what it had to drop. What a
//! holder loses at a revocation deadline it missed is also recorded, apart from the slots
//! (which take new entries meanwhile, so forfeits never fill the table), in `N` places of
//! their own until the holder is released: [`forfeited`](CapTable::forfeited) answers for
//! the abort protocol however many records the ring dropped since. A forfeit that finds
//! all `N` places taken costs a record of the holder with the most places (the new one
//! counted), so that one holder's flood never costs another holding fewer its records,
//! and marks that holder's records lost: gone entries without a record of its then
//! answer [`Forfeit::RecordsLost`] (which the protocol presumes forfeited), never a
//! wrong [`Forfeit::NotForfeited`].
//!
//! The table's storage (`N` slots, `N` forfeit records and `OWNERS` logs) is allocated on
//! the heap when the table is made, at its full size, and never grows: by value a table is
//! a few pointers whatever its capacity, so one of thousands of entries is never built on
//! a stack. A handle's checks ([`check`](CapTable::check),
//! [`check_access`](CapTable::check_access), [`is_live`](CapTable::is_live)) read one
//! slot; the other operations scan only the occupied slots, up to the highest one holding
//! an entry (new entries take the lowest free slot, so that is near the number of live
//! entries, whatever `N` is), a revocation `O(occupied × depth)`. Nothing panics on any input; a
//! refused operation returns a [`CapError`] and changes nothing.
//!
//! # Example
//!
//! ```
//! use rexo_captable::*;
//!
//! /// The kernel's proof of authority: only the crate that defines it can make one.
//! pub struct Kernel(());
//! let kernel = Kernel(());
//! let mut table: CapTable<Kernel, 64, 4, 8> = CapTable::new();
//! let app = OwnerId(1);
//!
//! let mem = Resource::new(ResourceKind::Memory, 0x20_0000, 0x20_0000)?;
//! let cap = table.mint(&kernel, app, mem, Rights::READ | Rights::WRITE)?;
//! let page = table.derive(app, &cap, 0x20_0000, 0x1000, Rights::READ)?;
//! assert_eq!(table.derive(app, &page, 0x20_0000, 0x1000, Rights::WRITE),
//!            Err(CapError::NoRight(Rights::WRITE)));
//!
//! // Visible revocation: ask, let the owner see it, take it by force after the deadline.
//! table.request_revocation(&kernel, cap.id(), 1_000)?;
//! assert_eq!(table.pending_revocations(app).next().map(|e| e.id), Some(cap.id()));
//! let taken = table.revoke_next_expired(&kernel, 1_000).expect("deadline passed");
//! assert_eq!((taken.resource, taken.entries), (mem, 2));
//! assert_eq!(table.check(app, &page, Rights::READ), Err(CapError::Revoked));
//! assert_eq!(table.repossessions(app)?.count(), 2);
//! # Ok::<(), CapError>(())
//! ```
//!
//! # What cannot be written
//!
//! A capability cannot be forged from its parts outside this crate:
//!
//! ```compile_fail,E0451
//! use rexo_captable::{Cap, EntryId};
//! fn forge(id: EntryId) -> Cap {
//!     Cap { id }
//! }
//! ```
//!
//! nor its name made up:
//!
//! ```compile_fail,E0451
//! let id = rexo_captable::EntryId { table: 1, index: 0, generation: 0 };
//! ```
//!
//! nor copied:
//!
//! ```compile_fail,E0599
//! fn duplicate(cap: rexo_captable::Cap) -> (rexo_captable::Cap, rexo_captable::Cap) {
//!     (cap.clone(), cap)
//! }
//! ```
//!
//! nor minted by code outside the kernel, which cannot make the kernel's authority value:
//!
//! ```compile_fail,E0603
//! use rexo_captable::*;
//! mod kernel {
//!     pub struct Authority(());
//!     pub type Table = rexo_captable::CapTable<Authority, 16, 4, 4>;
//! }
//! fn app(table: &mut kernel::Table) -> Result<Cap, CapError> {
//!     let mem = Resource::new(ResourceKind::Memory, 0, 0x1000)?;
//!     table.mint(&kernel::Authority(()), OwnerId(1), mem, Rights::ALL)
//! }
//! ```
//!
//! nor conjured from bytes in an app, which is `#![forbid(unsafe_code)]`:
//!
//! ```compile_fail,E0453
//! #![forbid(unsafe_code)]
//! #[allow(unsafe_code)]
//! fn forge() -> rexo_captable::Cap {
//!     unsafe { core::mem::transmute([0u64; 2]) }
//! }
//! ```
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

mod error;
mod resource;
mod rights;
mod table;

pub use error::CapError;
pub use resource::{PageSize, Resource, ResourceKind};
pub use rights::Rights;
pub use table::{
    Cap, CapTable, EntryId, EntryInfo, EntryState, Forfeit, OwnerId, Repossession, Revocation,
    RevokeReason,
};

#[cfg(test)]
mod tests;
