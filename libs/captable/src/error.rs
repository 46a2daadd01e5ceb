//! [`CapError`]: why the table refused an operation.

use core::fmt;

use crate::{OwnerId, Rights};

/// Why an operation was refused. Every operation checks in the same order: the handle's
/// table ([`WrongTable`](CapError::WrongTable)), its generation
/// ([`Revoked`](CapError::Revoked)), the caller ([`NotOwner`](CapError::NotOwner)), the
/// entry's state ([`RevocationPending`](CapError::RevocationPending)), whether it is lent
/// where a split or merge asks ([`Lent`](CapError::Lent)), the kind where one
/// is asked for ([`WrongKind`](CapError::WrongKind)), the rights, the range, the owner
/// handed to ([`BadOwner`](CapError::BadOwner), then [`NotRunning`](CapError::NotRunning)),
/// and last the owner's entry limit ([`TooManyEntries`](CapError::TooManyEntries)) or the
/// parent's shares ([`TooManyShares`](CapError::TooManyShares)) and the table's room
/// ([`Full`](CapError::Full)); a refused operation changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapError {
    /// The handle's entry was revoked, returned, merged away or never existed in this
    /// table (its generation is stale).
    Revoked,
    /// The handle was minted by another table.
    WrongTable,
    /// The capability lacks these rights.
    NoRight(Rights),
    /// The requested range is not inside the capability's range (or a split offset is not
    /// strictly inside it).
    OutOfRange,
    /// The range is empty, wraps, is not aligned to its kind's granule or passes its limit.
    BadRange,
    /// The capability is for another kind of resource.
    WrongKind,
    /// No free entry is left (for a request of an owner: none outside the part of the
    /// reserve for the kernel's own mints that it does not hold,
    /// [`CapTable::with_limits`](crate::CapTable::with_limits)).
    Full,
    /// The owner's requests already made `max` live entries, its limit
    /// ([`CapTable::with_limits`](crate::CapTable::with_limits)); one must go first.
    TooManyEntries {
        /// The limit.
        max: usize,
    },
    /// The parent already has `max` shares, the most
    /// [`CapTable::mint_child`](crate::CapTable::mint_child) was told to make of it: one
    /// must go first.
    TooManyShares {
        /// The limit.
        max: usize,
    },
    /// The two capabilities are not distinct siblings: derived from one parent, or roots
    /// split from one mint (two roots minted or granted apart are not siblings).
    NotSiblings,
    /// The two siblings' ranges do not touch.
    NotAdjacent,
    /// The two siblings have different rights.
    RightsDiffer,
    /// The caller does not own the capability.
    NotOwner,
    /// The owner id is beyond the table's owners.
    BadOwner(OwnerId),
    /// The capability has live derived capabilities, which the operation would break.
    HasChildren,
    /// The capability is lent to the caller: derived by another owner (or minted by the
    /// kernel as a share of its own) and handed over, so the holder of an ancestor may
    /// take it back by name ([`CapTable::revoke_derived`](crate::CapTable::revoke_derived)).
    /// Its borrower cannot split or merge it, which would move part of the range under
    /// another name out of that reach; it derives from it instead (children go with it).
    Lent,
    /// The kernel asked for the capability back; it cannot be derived, split, merged or
    /// delegated until it is returned.
    RevocationPending,
    /// A new root would overlap a live root of the same kind.
    Overlaps,
    /// The target is not derived (transitively) from the given capability.
    NotDescendant,
    /// The owner is not running ([`CapTable::start_owner`](crate::CapTable::start_owner)):
    /// nothing may be handed to it.
    NotRunning(OwnerId),
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapError::Revoked => f.write_str("capability revoked"),
            CapError::WrongTable => f.write_str("capability from another table"),
            CapError::NoRight(r) => write!(f, "capability lacks right {r}"),
            CapError::OutOfRange => f.write_str("range outside the capability"),
            CapError::BadRange => {
                f.write_str("bad range (empty, wrapping, unaligned or past the limit)")
            }
            CapError::WrongKind => f.write_str("capability for another kind of resource"),
            CapError::Full => f.write_str("capability table full"),
            CapError::TooManyEntries { max } => {
                write!(
                    f,
                    "the owner's limit of {max} capability entries is reached"
                )
            }
            CapError::TooManyShares { max } => {
                write!(f, "the limit of {max} shares of the capability is reached")
            }
            CapError::NotSiblings => f.write_str("capabilities are not siblings"),
            CapError::NotAdjacent => f.write_str("capabilities are not adjacent"),
            CapError::RightsDiffer => f.write_str("capabilities have different rights"),
            CapError::NotOwner => f.write_str("caller does not own the capability"),
            CapError::BadOwner(o) => write!(f, "no such owner: {}", o.0),
            CapError::HasChildren => f.write_str("capability has derived capabilities"),
            CapError::Lent => f.write_str(
                "capability lent to its holder: not split or merged (derive from it instead)",
            ),
            CapError::RevocationPending => f.write_str("revocation of the capability is pending"),
            CapError::Overlaps => f.write_str("range overlaps a live capability"),
            CapError::NotDescendant => f.write_str("target is not derived from the capability"),
            CapError::NotRunning(o) => write!(f, "owner {} is not running", o.0),
        }
    }
}

impl core::error::Error for CapError {}
