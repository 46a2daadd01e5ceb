//! The read cache: clean blocks as they are on the disk, up to a bound, the least
//! recently used dropped first.

use alloc::collections::BTreeMap;

use crate::format::Block;

/// Blocks read from the disk, keyed by number, with when each was last used.
#[derive(Debug)]
pub(crate) struct Cache {
    /// The most blocks held.
    capacity: usize,
    /// Block number to contents, last use, and whether its metadata CRC was verified
    /// (or it was written by this mount).
    blocks: BTreeMap<u64, (Block, u64, bool)>,
    /// Last use to block number: the first is the one to drop.
    uses: BTreeMap<u64, u64>,
    /// Counts uses.
    clock: u64,
}

impl Cache {
    /// An empty cache of at most `capacity` blocks.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            blocks: BTreeMap::new(),
            uses: BTreeMap::new(),
            clock: 0,
        }
    }

    /// The most blocks held.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Holds at most `capacity` blocks from now on, dropping the least recently used.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.blocks.len() > capacity {
            self.drop_oldest();
        }
    }

    /// Whether block `number` is held.
    pub(crate) fn contains(&self, number: u64) -> bool {
        self.blocks.contains_key(&number)
    }

    /// Block `number` if held (it becomes the most recently used).
    pub(crate) fn get(&mut self, number: u64) -> Option<&Block> {
        self.get_verified(number).map(|(block, _)| block)
    }

    /// Block `number` if held (it becomes the most recently used), and whether it is
    /// known good (see [`Cache::verified`]).
    pub(crate) fn get_verified(&mut self, number: u64) -> Option<(&Block, bool)> {
        let now = self.tick();
        let (block, used, verified) = self.blocks.get_mut(&number)?;
        self.uses.remove(used);
        *used = now;
        self.uses.insert(now, number);
        Some((block, *verified))
    }

    /// Block `number`, if held, passed its metadata check: its CRC need not be computed
    /// again while it stays.
    pub(crate) fn verified(&mut self, number: u64) {
        if let Some((_, _, verified)) = self.blocks.get_mut(&number) {
            *verified = true;
        }
    }

    /// Holds `block` as block `number`, the most recently used.
    pub(crate) fn insert(&mut self, number: u64, block: Block) {
        if self.capacity == 0 {
            return;
        }
        let now = self.tick();
        if let Some((_, used, _)) = self.blocks.insert(number, (block, now, false)) {
            self.uses.remove(&used);
        } else if self.blocks.len() > self.capacity {
            self.drop_oldest();
        }
        self.uses.insert(now, number);
    }

    /// Holds `block`, just written to the disk as block `number` by this mount (so known
    /// good), as the most recently used.
    pub(crate) fn insert_written(&mut self, number: u64, block: Block) {
        self.insert(number, block);
        self.verified(number);
    }

    /// Block `number` was written to the disk as `block` (sealed by this mount): a held
    /// copy is replaced and known good.
    pub(crate) fn refresh(&mut self, number: u64, block: &Block) {
        if let Some((held, _, verified)) = self.blocks.get_mut(&number) {
            held.clone_from(block);
            *verified = true;
        }
    }

    /// Drops every block (after a disk error nothing read before is trusted).
    pub(crate) fn clear(&mut self) {
        self.blocks.clear();
        self.uses.clear();
    }

    /// Blocks held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn drop_oldest(&mut self) {
        if let Some((_, number)) = self.uses.pop_first() {
            self.blocks.remove(&number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::zeroed;

    fn block(fill: u8) -> Block {
        let mut block = zeroed();
        block.fill(fill);
        block
    }

    #[test]
    fn the_least_recently_used_block_goes_first() {
        let mut cache = Cache::new(3);
        for number in 1..=3 {
            cache.insert(number, block(number as u8));
        }
        assert!(cache.get(1).is_some(), "1 is used again");
        cache.insert(4, block(4));
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains(2), "2 was the least recently used");
        cache.refresh(3, &block(9));
        cache.refresh(7, &block(9));
        assert_eq!(cache.get(3).map(|b| b[0]), Some(9), "refreshed in place");
        assert!(!cache.contains(7), "refresh adds nothing");
        cache.insert(4, block(5));
        assert_eq!(cache.len(), 3, "a block held once");
        cache.set_capacity(1);
        assert_eq!((cache.len(), cache.contains(4)), (1, true));
        cache.set_capacity(0);
        cache.insert(8, block(8));
        assert_eq!(cache.len(), 0, "a cache of 0 holds nothing");
        cache.set_capacity(2);
        cache.insert_written(8, block(8));
        assert_eq!(
            cache.get_verified(8).map(|(b, v)| (b[0], v)),
            Some((8, true))
        );
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
