//! The key index: a seeded hash and an open-addressing table from hashes to slab slots.
//!
//! Why not `BTreeMap<Vec<u8>, _>`: every lookup would compare the key against about
//! log2(n) stored keys, each in its own allocation (a cache miss per level: 17 levels at
//! 100k items), and every insert would copy the key into a new `Vec`. Here a lookup
//! hashes the key once, reads one 8-byte slot (usually the right one: the table is kept
//! at most half full) and compares the key once, in the item's own allocation.
//!
//! Each slot packs the upper 32 bits of the hash (which also choose the home slot) with
//! the slab index plus one, 0 meaning empty, so probing and growing never touch the
//! items. Linear probing with backward-shift deletion: no tombstones to clean up. The
//! table doubles past half full and halves below an eighth full, so it never holds
//! more than [`SHRINK_BELOW`] slots per entry (or its initial few).

use alloc::vec;
use alloc::vec::Vec;

/// An empty slot.
const EMPTY: u64 = 0;
/// Slots in a new table (a power of two), and the fewest it shrinks to.
const INITIAL_SLOTS: usize = 8;
/// A table whose entries fill less than 1 / `SHRINK_BELOW` of its slots halves: with
/// growth past half full, each entry holds at most this many slots (the cache charges
/// them to it).
pub(crate) const SHRINK_BELOW: usize = 8;

/// Hashes `bytes` with `seed`. Keys come from the network, so the seed (chosen per cache
/// at creation) keeps clients from aiming many keys at one slot. The mixing step is a
/// folded 64x64->128-bit multiply per 8-byte word: few instructions for short keys.
pub(crate) fn hash(seed: u64, bytes: &[u8]) -> u64 {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
    const FINAL: u64 = 0xd6e8_feb8_6659_fd93;
    let mut state = seed ^ (bytes.len() as u64).wrapping_mul(MULTIPLIER);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        state = fold_multiply(state ^ u64::from_le_bytes(eight), MULTIPLIER);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut eight = [0u8; 8];
        eight[..rest.len()].copy_from_slice(rest);
        state = fold_multiply(state ^ u64::from_le_bytes(eight), MULTIPLIER);
    }
    fold_multiply(state, FINAL)
}

/// The 128-bit product of `a` and `b`, its halves XORed: every input bit reaches the
/// middle bits of the result.
fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Hash-to-slot index: finds a slab index by key hash, the caller confirming the key.
pub(crate) struct Table {
    slots: Vec<u64>,
    len: usize,
}

impl Table {
    /// An empty table.
    pub(crate) fn new() -> Self {
        Self {
            slots: vec![EMPTY; INITIAL_SLOTS],
            len: 0,
        }
    }

    /// The first slab index stored under `hash` for which `is_key` holds.
    pub(crate) fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mask = self.slots.len() - 1;
        let mut at = home(tag, mask);
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                return None;
            }
            if slot >> 32 == tag && is_key(index_of(slot)) {
                return Some(index_of(slot));
            }
            at = (at + 1) & mask;
        }
    }

    /// Records `index` under `hash` (the key must not be in the table).
    pub(crate) fn insert(&mut self, hash: u64, index: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.place((tag_of(hash) << 32) | (u64::from(index) + 1));
        self.len += 1;
    }

    /// Forgets `index`, stored under `hash`.
    pub(crate) fn remove(&mut self, hash: u64, index: u32) {
        let mask = self.slots.len() - 1;
        let mut hole = self.slot_holding(hash, index);
        // Backward shift: later slots of the same run move into the hole when their home
        // is not between the hole and themselves, so every run stays unbroken.
        let mut next = (hole + 1) & mask;
        while self.slots[next] != EMPTY {
            let their_home = home(self.slots[next] >> 32, mask);
            let distance_to_hole = next.wrapping_sub(hole) & mask;
            let distance_to_home = next.wrapping_sub(their_home) & mask;
            if distance_to_home >= distance_to_hole {
                self.slots[hole] = self.slots[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        if self.len * SHRINK_BELOW < self.slots.len() && self.slots.len() > INITIAL_SLOTS {
            self.resize(self.slots.len() / 2);
        }
    }

    /// Records that the entry stored under `hash` for slab index `from` moved to `to`.
    pub(crate) fn relocate(&mut self, hash: u64, from: u32, to: u32) {
        let at = self.slot_holding(hash, from);
        self.slots[at] = (tag_of(hash) << 32) | (u64::from(to) + 1);
    }

    /// The slot holding slab index `index`, stored under `hash` (it must be in the
    /// table): probed for from its home.
    fn slot_holding(&self, hash: u64, index: u32) -> usize {
        let wanted = (tag_of(hash) << 32) | (u64::from(index) + 1);
        let mask = self.slots.len() - 1;
        let mut at = home(tag_of(hash), mask);
        while self.slots[at] != wanted {
            debug_assert_ne!(self.slots[at], EMPTY, "an index not in the table");
            at = (at + 1) & mask;
        }
        at
    }

    /// Forgets everything, back to the initial size.
    pub(crate) fn clear(&mut self) {
        *self = Self::new();
    }

    /// The bytes the slots take.
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.slots.len() * core::mem::size_of::<u64>()
    }

    /// Doubles the slots.
    fn grow(&mut self) {
        self.resize(self.slots.len() * 2);
    }

    /// Moves to `slots` slots (a power of two holding every entry), placing every entry
    /// again (the tag holds its home).
    fn resize(&mut self, slots: usize) {
        let old = core::mem::replace(&mut self.slots, vec![EMPTY; slots]);
        for slot in old.into_iter().filter(|&slot| slot != EMPTY) {
            self.place(slot);
        }
    }

    /// Puts `slot` in the first empty slot from its home.
    fn place(&mut self, slot: u64) {
        let mask = self.slots.len() - 1;
        let mut at = home(slot >> 32, mask);
        while self.slots[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.slots[at] = slot;
    }
}

/// The part of a hash kept in the slot.
fn tag_of(hash: u64) -> u64 {
    hash >> 32
}

/// The home slot of a tag.
fn home(tag: u64, mask: usize) -> usize {
    tag as usize & mask
}

/// The slab index in a (non-empty) slot.
fn index_of(slot: u64) -> u32 {
    (slot as u32) - 1
}
