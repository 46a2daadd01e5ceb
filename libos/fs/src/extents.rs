//! Extent lists: which physical blocks hold which logical blocks of a file, kept
//! sorted by logical block, four in the inode and the rest in a chain of overflow
//! extent blocks.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::FileSystem;
use crate::disk::BlockStore;
use crate::error::FsError;
use crate::format::{
    CRC_AT, EXTENTS_PER_OVERFLOW_BLOCK, Extent, INLINE_EXTENTS, Inode, Layout, OverflowBlock,
};

/// The physical block holding logical block `logical`, if it is mapped.
pub(crate) fn physical_of(extents: &[Extent], logical: u64) -> Option<u64> {
    let index = extents.partition_point(|extent| extent.logical_end() <= logical);
    let extent = extents.get(index)?;
    (extent.logical <= logical).then(|| extent.physical + (logical - extent.logical))
}

/// Why `extent` cannot follow extents that end at logical block `previous_end` in a file
/// of the file system `layout` describes (it overlaps or precedes the one before, or lies
/// outside the data region), or `None` if it can: for loading a file's extents and for
/// fsck alike.
pub(crate) fn misplaced(layout: &Layout, previous_end: u64, extent: &Extent) -> Option<String> {
    let describe = || {
        let Extent {
            logical,
            physical,
            count,
        } = extent;
        format!("extent ({logical}, {physical}, {count})")
    };
    if extent.logical < previous_end {
        return Some(format!(
            "{} overlaps or precedes the one before",
            describe()
        ));
    }
    (!layout.in_data(extent.physical, extent.count)).then(|| {
        format!(
            "{} lies outside the data region (blocks {}..{})",
            describe(),
            layout.data_start,
            layout.blocks
        )
    })
}

/// Maps the unmapped logical blocks `logical..logical + count` to physical blocks
/// `physical..`, merging with a neighbouring extent that continues both runs.
pub(crate) fn map(extents: &mut Vec<Extent>, logical: u64, physical: u64, count: u64) {
    let index = extents.partition_point(|extent| extent.logical < logical);
    let joins = |before: &Extent, after: &Extent| {
        before.logical_end() == after.logical && before.physical_end() == after.physical
    };
    let new = Extent {
        logical,
        physical,
        count,
    };
    let previous = index.checked_sub(1).and_then(|at| extents.get(at).copied());
    if let Some(previous) = previous.filter(|previous| joins(previous, &new)) {
        let mut merged = previous;
        merged.count += count;
        let next = extents.get(index).copied();
        if let Some(next) = next.filter(|next| joins(&merged, next)) {
            merged.count += next.count;
            extents.remove(index);
        }
        if let Some(slot) = extents.get_mut(index - 1) {
            *slot = merged;
        }
        return;
    }
    if let Some(next) = extents.get_mut(index).filter(|next| joins(&new, next)) {
        next.logical = logical;
        next.physical = physical;
        next.count += count;
        return;
    }
    extents.insert(index, new);
}

/// Unmaps every logical block from `keep` on; returns the freed physical runs.
pub(crate) fn cut(extents: &mut Vec<Extent>, keep: u64) -> Vec<(u64, u64)> {
    let mut freed = Vec::new();
    extents.retain_mut(|extent| {
        if extent.logical >= keep {
            freed.push((extent.physical, extent.count));
            false
        } else if extent.logical_end() > keep {
            let kept = keep - extent.logical;
            freed.push((extent.physical + kept, extent.count - kept));
            extent.count = kept;
            true
        } else {
            true
        }
    });
    freed
}

/// The unmapped runs `(logical, count)` of logical blocks `first..end`.
pub(crate) fn unmapped_runs(extents: &[Extent], first: u64, end: u64) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut at = first;
    for extent in extents
        .iter()
        .filter(|extent| extent.logical_end() > first && extent.logical < end)
    {
        if extent.logical > at {
            runs.push((at, extent.logical - at));
        }
        at = at.max(extent.logical_end());
    }
    if at < end {
        runs.push((at, end - at));
    }
    runs
}

/// Blocks mapped by `extents`.
pub(crate) fn mapped_blocks(extents: &[Extent]) -> u64 {
    extents
        .iter()
        .fold(0u64, |sum, extent| sum.saturating_add(extent.count))
}

impl<D: BlockStore> FileSystem<D> {
    /// All extents of `inode`, in logical order, and the overflow blocks holding them.
    /// `Corrupt` (found as the extents are read, not after) if the chain of overflow
    /// blocks loops or leaves the data region, or if an extent lies outside the data
    /// region or does not start at or after the end of the one before.
    pub(crate) fn load_extents(
        &mut self,
        inode: &Inode,
    ) -> Result<(Vec<Extent>, Vec<u64>), FsError> {
        let mut extents = Vec::with_capacity(inode.inline.len());
        self.append_extents(&mut extents, &inode.inline)?;
        let mut chain = Vec::new();
        let mut visited = BTreeSet::new();
        let mut next = inode.overflow;
        while next != 0 {
            if !self.layout.in_data(next, 1) {
                return Err(FsError::corrupt(
                    next,
                    format!("overflow extent block {next} outside the data region"),
                ));
            }
            if !visited.insert(next) {
                return Err(FsError::corrupt(
                    next,
                    format!("overflow extent block {next} comes round again: the chain loops"),
                ));
            }
            let overflow = self.read_sealed(next, |block, trust| {
                OverflowBlock::decode_as(block, next, trust)
            })?;
            chain.push(next);
            self.append_extents(&mut extents, &overflow.extents)?;
            next = overflow.next;
        }
        Ok((extents, chain))
    }

    /// Appends `more` to `extents`, checking each with [`misplaced`].
    fn append_extents(&self, extents: &mut Vec<Extent>, more: &[Extent]) -> Result<(), FsError> {
        for extent in more {
            let previous_end = extents.last().map_or(0, Extent::logical_end);
            if let Some(why) = misplaced(&self.layout, previous_end, extent) {
                return Err(FsError::corrupt(extent.physical, why));
            }
            extents.push(*extent);
        }
        Ok(())
    }

    /// Puts `extents` into `inode`: the first four inline, the rest in overflow blocks
    /// (reusing its chain, allocating near `goal`, freeing what is left over). The
    /// caller writes the inode.
    pub(crate) fn store_extents(
        &mut self,
        inode: &mut Inode,
        extents: Vec<Extent>,
        goal: u64,
    ) -> Result<(), FsError> {
        let (_, mut chain) = self.load_extents(inode)?;
        let inline_count = extents.len().min(INLINE_EXTENTS);
        let (inline, rest) = extents.split_at(inline_count);
        let pieces: Vec<&[Extent]> = rest.chunks(EXTENTS_PER_OVERFLOW_BLOCK).collect();
        for spare in chain.split_off(pieces.len().min(chain.len())) {
            self.free_run(spare, 1)?;
        }
        let kept = chain.len();
        while chain.len() < pieces.len() {
            let (block, _) = self.allocate_run(goal, 1)?;
            chain.push(block);
        }
        for (index, piece) in pieces.iter().enumerate() {
            let Some(&number) = chain.get(index) else {
                break;
            };
            let overflow = OverflowBlock {
                next: chain.get(index + 1).copied().unwrap_or(0),
                extents: piece.to_vec(),
            };
            let image = overflow.encode(number)?;
            // A block of the chain, verified when it was loaded, is left as it is when
            // only its CRC (which a staged image gets at commit) could differ; a block
            // just allocated holds whatever was left there (a write a crash tore, say).
            if index >= kept || self.store.read(number)?[..CRC_AT] != image[..CRC_AT] {
                self.store.stage_metadata(number, image);
            }
        }
        inode.inline = inline.to_vec();
        inode.overflow = chain.first().copied().unwrap_or(0);
        Ok(())
    }

    /// Frees every block of `inode`: its data (or directory) blocks and overflow blocks.
    pub(crate) fn free_all_blocks(&mut self, inode: &Inode) -> Result<(), FsError> {
        let (extents, chain) = self.load_extents(inode)?;
        for extent in extents {
            self.free_run(extent.physical, extent.count)?;
        }
        for block in chain {
            self.free_run(block, 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extent(logical: u64, physical: u64, count: u64) -> Extent {
        Extent {
            logical,
            physical,
            count,
        }
    }

    #[test]
    fn mapping_merges_neighbours_and_cutting_frees_the_tail() {
        let mut extents = Vec::new();
        map(&mut extents, 0, 100, 2);
        map(&mut extents, 4, 104, 1);
        assert_eq!(extents, [extent(0, 100, 2), extent(4, 104, 1)]);
        map(&mut extents, 2, 102, 2);
        assert_eq!(extents, [extent(0, 100, 5)], "joins both sides");
        map(&mut extents, 9, 300, 1);
        map(&mut extents, 8, 299, 1);
        assert_eq!(extents, [extent(0, 100, 5), extent(8, 299, 2)]);
        map(&mut extents, 6, 50, 1);
        assert_eq!(physical_of(&extents, 6), Some(50));
        assert_eq!(physical_of(&extents, 7), None);
        assert_eq!(physical_of(&extents, 9), Some(300));
        assert_eq!(unmapped_runs(&extents, 0, 12), [(5, 1), (7, 1), (10, 2)]);
        assert_eq!(mapped_blocks(&extents), 8);
        assert_eq!(cut(&mut extents, 3), [(103, 2), (50, 1), (299, 2)]);
        assert_eq!(extents, [extent(0, 100, 3)]);
    }
}
