//! The consistency check, run by `fsck` on a disk (read-only, with the journal's
//! committed transactions laid over it as mount would replay them) and by every mount
//! before the file system is used.
//!
//! It checks every block's magic, checksum and own number; the tree from the root,
//! visiting each directory block once (a directory pointing back at an ancestor's
//! block is a block used twice, so cycles are caught and the walk ends); names (valid,
//! unique in their directory); extents (non-empty, sorted, not overlapping, inside the
//! data region, none past a file's end, a directory's covering exactly its size, no
//! empty directory block); that no block is used twice; and that the bitmap marks
//! exactly the metadata regions and the blocks in use.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::MAX_FILE_SIZE;
use crate::disk::{BLOCK_SIZE, BlockStore};
use crate::error::FsError;
use crate::format::{
    BITS_PER_BITMAP_BLOCK, DirectoryBlock, Extent, FileKind, Inode, Layout, OverflowBlock,
    Superblock, bit_is_set, bitmap_position, check_bitmap, try_zeroed,
};
use crate::path::child;
use crate::store::Store;

/// What a consistent file system holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsckReport {
    /// Directories, the root included.
    pub directories: u64,
    /// Files.
    pub files: u64,
    /// Data blocks in use (file data, directory blocks, overflow extent blocks).
    pub used_blocks: u64,
    /// Free data blocks.
    pub free_blocks: u64,
    /// Committed journal transactions not yet written home (mount replays them).
    pub journal_transactions: u64,
}

/// One bit per disk block: which blocks the tree uses.
pub(crate) struct UsedBlocks {
    words: Vec<u64>,
}

impl UsedBlocks {
    /// No block marked, for a disk of `blocks` blocks; [`FsError::NoMemory`] naming the
    /// bytes needed (one bit per block) when the app cannot get them.
    pub(crate) fn new(blocks: u64) -> Result<Self, FsError> {
        let len = blocks.div_ceil(64);
        let words = try_zeroed(len).ok_or_else(|| FsError::NoMemory {
            what: String::from("a map of the disk's used blocks"),
            bytes: len.saturating_mul(8),
        })?;
        Ok(Self { words })
    }

    /// Whether `block` is marked.
    pub(crate) fn contains(&self, block: u64) -> bool {
        self.words
            .get((block / 64) as usize)
            .is_some_and(|word| word & (1 << (block % 64)) != 0)
    }

    /// Marks `block`; false when it was marked already.
    pub(crate) fn insert(&mut self, block: u64) -> bool {
        match self.words.get_mut((block / 64) as usize) {
            Some(word) if *word & (1 << (block % 64)) == 0 => {
                *word |= 1 << (block % 64);
                true
            }
            _ => false,
        }
    }
}

/// A file or directory waiting to be checked.
struct Pending {
    /// Its path.
    path: String,
    /// Its inode.
    inode: Inode,
    /// The block holding its inode (0 for the root).
    holder: u64,
}

/// The walk's state.
struct Checker<'a, D> {
    store: &'a mut Store<D>,
    layout: Layout,
    used: UsedBlocks,
    report: FsckReport,
}

/// Checks the file system seen through `store`; `journal_transactions` is reported.
pub(crate) fn check<D: BlockStore>(
    store: &mut Store<D>,
    layout: &Layout,
    journal_transactions: u64,
) -> Result<FsckReport, FsError> {
    let superblock = Superblock::decode(&store.read(0)?, layout.blocks)?;
    if superblock.layout != *layout {
        return Err(FsError::corrupt(0, "superblock layout changed"));
    }
    let mut checker = Checker {
        store,
        layout: *layout,
        used: UsedBlocks::new(layout.blocks)?,
        report: FsckReport {
            directories: 0,
            files: 0,
            used_blocks: 0,
            free_blocks: 0,
            journal_transactions,
        },
    };
    for block in 0..layout.data_start {
        checker.used.insert(block);
    }
    checker.walk(Pending {
        path: String::from("/"),
        inode: superblock.root,
        holder: 0,
    })?;
    checker.check_bitmap()?;
    Ok(checker.report)
}

impl<D: BlockStore> Checker<'_, D> {
    /// Checks the tree under `root`, one directory at a time.
    fn walk(&mut self, root: Pending) -> Result<(), FsError> {
        let mut stack = vec![root];
        while let Some(next) = stack.pop() {
            let extents = self.check_inode(&next)?;
            match next.inode.kind {
                FileKind::File => self.report.files += 1,
                FileKind::Directory => {
                    self.report.directories += 1;
                    stack.extend(self.check_directory(&next, &extents)?);
                }
            }
        }
        Ok(())
    }

    /// Claims `block` for `path`, or reports it used twice.
    fn claim(&mut self, block: u64, path: &str, what: &str) -> Result<(), FsError> {
        if !self.used.insert(block) {
            return Err(FsError::corrupt(
                block,
                format!(
                    "{path}: {what} block {block} is already in use (shared with another file, metadata or an ancestor directory)"
                ),
            ));
        }
        if block >= self.layout.data_start {
            self.report.used_blocks += 1;
        }
        Ok(())
    }

    /// Checks an inode and claims its blocks; returns its extents.
    fn check_inode(&mut self, item: &Pending) -> Result<Vec<Extent>, FsError> {
        let (path, inode, holder) = (&item.path, &item.inode, item.holder);
        let mut extents = inode.inline.clone();
        let mut next = inode.overflow;
        while next != 0 {
            if !self.layout.in_data(next, 1) {
                return Err(FsError::corrupt(
                    holder,
                    format!("{path}: overflow extent block {next} outside the data region"),
                ));
            }
            self.claim(next, path, "overflow extent")?;
            let overflow =
                OverflowBlock::decode(&self.store.read(next)?, next).map_err(|e| e.under(path))?;
            extents.extend(overflow.extents);
            next = overflow.next;
        }
        let mut logical_end = 0;
        for extent in &extents {
            if let Some(why) = crate::extents::misplaced(&self.layout, logical_end, extent) {
                return Err(FsError::corrupt(holder, format!("{path}: {why}")));
            }
            for block in extent.physical..extent.physical_end() {
                self.claim(block, path, "data")?;
            }
            logical_end = extent.logical_end();
        }
        self.check_size(item, &extents, logical_end)?;
        Ok(extents)
    }

    /// Checks a size against the extents: a file's extents end within its size, a
    /// directory's cover exactly its size.
    fn check_size(
        &self,
        item: &Pending,
        extents: &[Extent],
        logical_end: u64,
    ) -> Result<(), FsError> {
        let (path, size, holder) = (&item.path, item.inode.size, item.holder);
        let block = BLOCK_SIZE as u64;
        let problem = match item.inode.kind {
            FileKind::File if size > MAX_FILE_SIZE => {
                Some(format!("size {size} is beyond the largest file"))
            }
            FileKind::File if logical_end > size.div_ceil(block) => Some(format!(
                "extents reach block {logical_end}, past the size {size}"
            )),
            FileKind::Directory => {
                let contiguous = extents.iter().try_fold(0u64, |at, extent| {
                    (extent.logical == at).then(|| extent.logical_end())
                });
                (size % block != 0 || contiguous != Some(size / block))
                    .then(|| format!("directory blocks do not cover its size {size} exactly"))
            }
            FileKind::File => None,
        };
        match problem {
            Some(what) => Err(FsError::corrupt(holder, format!("{path}: {what}"))),
            None => Ok(()),
        }
    }

    /// Checks a directory's blocks and returns its entries to check.
    fn check_directory(
        &mut self,
        item: &Pending,
        extents: &[Extent],
    ) -> Result<Vec<Pending>, FsError> {
        let mut names = BTreeSet::new();
        let mut children = Vec::new();
        for extent in extents {
            for block in extent.physical..extent.physical_end() {
                let entries = DirectoryBlock::decode(&self.store.read(block)?, block)
                    .map_err(|e| e.under(&item.path))?;
                if entries.entries.is_empty() {
                    return Err(FsError::corrupt(
                        block,
                        format!("{}: empty directory block", item.path),
                    ));
                }
                for entry in entries.entries {
                    let path = child(&item.path, &entry.name);
                    if !names.insert(entry.name) {
                        return Err(FsError::corrupt(
                            block,
                            format!("{path}: two entries of this name"),
                        ));
                    }
                    children.push(Pending {
                        path,
                        inode: entry.inode,
                        holder: block,
                    });
                }
            }
        }
        Ok(children)
    }

    /// Checks that the bitmap marks exactly the blocks in use.
    fn check_bitmap(&mut self) -> Result<(), FsError> {
        let layout = self.layout;
        for index in 0..layout.bitmap_blocks {
            let number = layout.bitmap_start + index;
            let contents = self.store.read(number)?;
            check_bitmap(&contents, number)?;
            let first = index * BITS_PER_BITMAP_BLOCK;
            for block in first..first + BITS_PER_BITMAP_BLOCK {
                let (_, byte, bit) = bitmap_position(&layout, block);
                let marked = bit_is_set(&contents, byte, bit);
                let used = block < layout.blocks && self.used.contains(block);
                if marked != used {
                    let what = match (marked, block < layout.blocks) {
                        (true, false) => {
                            format!("bitmap marks block {block}, past the end of the disk")
                        }
                        (true, true) => {
                            format!("bitmap marks block {block} used but nothing uses it")
                        }
                        _ => format!("bitmap marks block {block} free but it is in use"),
                    };
                    return Err(FsError::corrupt(number, what));
                }
            }
        }
        self.report.free_blocks = layout.data_blocks() - self.report.used_blocks;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_too_large_for_memory_is_an_error_not_an_abort() {
        let blocks = 1 << 62;
        assert_eq!(
            UsedBlocks::new(blocks).err(),
            Some(FsError::NoMemory {
                what: String::from("a map of the disk's used blocks"),
                bytes: blocks / 8,
            })
        );
        let used = UsedBlocks::new(1000).unwrap();
        assert!(!used.contains(999));
    }
}
