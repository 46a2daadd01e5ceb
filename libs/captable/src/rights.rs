//! [`Rights`]: what the holder of a capability may do with its resource.

use core::fmt;
use core::ops::{BitAnd, BitOr};

/// A set of rights over a resource. A small hand-written bit set rather than the `bitflags`
/// crate: six flags need no macro, the type stays `const`-friendly, and the crate keeps
/// no dependencies on the kernel target.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

/// The names of the single rights, in bit order, for `Display`.
const NAMES: [(Rights, &str); 6] = [
    (Rights::READ, "READ"),
    (Rights::WRITE, "WRITE"),
    (Rights::EXECUTE, "EXECUTE"),
    (Rights::MAP, "MAP"),
    (Rights::DELEGATE, "DELEGATE"),
    (Rights::REVOKE, "REVOKE"),
];

impl Rights {
    /// No rights at all (the capability still names the resource).
    pub const NONE: Rights = Rights(0);
    /// Read the resource (memory, device registers, disk blocks, packets).
    pub const READ: Rights = Rights(1 << 0);
    /// Write the resource.
    pub const WRITE: Rights = Rights(1 << 1);
    /// Execute code from it (memory) or run work on it (cores, timers).
    pub const EXECUTE: Rights = Rights(1 << 2);
    /// Have the kernel map it (identity-map entries, interrupt routing, queue attachment).
    pub const MAP: Rights = Rights(1 << 3);
    /// Hand the capability itself to another owner ([`CapTable::delegate`](crate::CapTable::delegate)).
    pub const DELEGATE: Rights = Rights(1 << 4);
    /// Revoke capabilities derived from this one ([`CapTable::revoke_derived`](crate::CapTable::revoke_derived)).
    pub const REVOKE: Rights = Rights(1 << 5);
    /// Every right.
    pub const ALL: Rights = Rights(0x3f);

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set with these bits, or `None` if a bit names no right.
    pub const fn from_bits(bits: u8) -> Option<Rights> {
        if bits & !Rights::ALL.0 == 0 {
            Some(Rights(bits))
        } else {
            None
        }
    }

    /// Whether every right in `other` is also in `self`.
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// The rights in either set.
    pub const fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// The rights in both sets.
    pub const fn intersection(self, other: Rights) -> Rights {
        Rights(self.0 & other.0)
    }

    /// The rights in `self` but not in `other`.
    pub const fn difference(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Rights {
    type Output = Rights;
    fn bitor(self, rhs: Rights) -> Rights {
        self.union(rhs)
    }
}

impl BitAnd for Rights {
    type Output = Rights;
    fn bitand(self, rhs: Rights) -> Rights {
        self.intersection(rhs)
    }
}

impl fmt::Display for Rights {
    /// `READ|WRITE`, or `none` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (right, name) in NAMES {
            if self.contains(right) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rights({self})")
    }
}
