//! Directories: finding a name, adding and removing entries (with their embedded
//! inodes), and writing an inode back where it lives.
//!
//! A directory's blocks are its logical blocks `0..size / 4096`, none empty: an entry
//! goes into the first block with room for it, or into a new block added at the end;
//! a block that loses its last entry takes the last block's entries (the last block is
//! freed), so an empty directory has no blocks at all.

use alloc::format;
use alloc::vec::Vec;

use crate::FileSystem;
use crate::disk::{BLOCK_SIZE, BlockStore};
use crate::error::FsError;
use crate::extents;
use crate::format::{
    Block, DirectoryBlock, Entry, FileKind, Inode, Superblock, Trust, copy_to_change,
};
use crate::path::join;

/// Where an inode is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// The root directory's, in the superblock.
    Root,
    /// Entry `index` of directory block `block`.
    Entry {
        /// The directory block.
        block: u64,
        /// The entry's index in it.
        index: usize,
    },
}

/// An inode found by path, and where it lives.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    /// Where the inode is stored.
    pub(crate) location: Location,
    /// The inode.
    pub(crate) inode: Inode,
}

impl<D: BlockStore> FileSystem<D> {
    /// The superblock as it is now.
    pub(crate) fn superblock(&mut self) -> Result<Superblock, FsError> {
        let blocks = self.layout.blocks;
        self.read_sealed(0, |block, trust| {
            Superblock::decode_as(block, blocks, trust)
        })
    }

    /// Reads metadata block `number` and parses it with `decode`, which checks the CRC
    /// when the block's [`Trust`] asks (see `Store::with_metadata`).
    pub(crate) fn read_sealed<T>(
        &mut self,
        number: u64,
        decode: impl FnOnce(&Block, Trust) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        self.store.with_metadata(number, decode)
    }

    /// What `edit` makes of directory block `number`, checked whole once (decoded when
    /// just read; a block checked already is not parsed again), then changed in place.
    fn edit_directory_block<T>(
        &mut self,
        number: u64,
        edit: impl FnOnce(&Block) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        self.read_sealed(number, |image, trust| {
            if trust == Trust::Verify {
                DirectoryBlock::decode_as(image, number, trust)?;
            }
            edit(image)
        })
    }

    /// The inode at `names` (the root for none).
    pub(crate) fn lookup(&mut self, names: &[&str]) -> Result<Found, FsError> {
        let mut found = Found {
            location: Location::Root,
            inode: self.superblock()?.root,
        };
        for (depth, name) in names.iter().enumerate() {
            let walked = names.get(..depth).unwrap_or_default();
            if found.inode.kind != FileKind::Directory {
                return Err(FsError::NotADirectory(join(walked)));
            }
            found = self
                .find_in_directory(&found.inode, name, walked)?
                .ok_or_else(|| FsError::NotFound(join(names.get(..=depth).unwrap_or_default())))?;
        }
        Ok(found)
    }

    /// The directory at `names`, or `NotADirectory`.
    pub(crate) fn lookup_directory(&mut self, names: &[&str]) -> Result<Found, FsError> {
        let found = self.lookup(names)?;
        if found.inode.kind != FileKind::Directory {
            return Err(FsError::NotADirectory(join(names)));
        }
        Ok(found)
    }

    /// The file at `names`, or `IsADirectory`.
    pub(crate) fn lookup_file(&mut self, names: &[&str]) -> Result<Found, FsError> {
        let found = self.lookup(names)?;
        if found.inode.kind != FileKind::File {
            return Err(FsError::IsADirectory(join(names)));
        }
        Ok(found)
    }

    /// The physical blocks of directory `inode`, in logical order, as they are walked:
    /// those of its logical blocks `0..size / 4096` (the extents of a damaged directory
    /// may map more, up to the whole data region).
    pub(crate) fn directory_blocks(
        &mut self,
        inode: &Inode,
    ) -> Result<impl Iterator<Item = u64> + use<D>, FsError> {
        let (extents, _) = self.load_extents(inode)?;
        let blocks = usize::try_from(inode.size / BLOCK_SIZE as u64).unwrap_or(usize::MAX);
        Ok(extents
            .into_iter()
            .flat_map(|extent| extent.physical..extent.physical_end())
            .take(blocks))
    }

    /// Reads and checks directory block `number` of the directory at `path`.
    pub(crate) fn read_directory_block(
        &mut self,
        number: u64,
        path: &[&str],
    ) -> Result<DirectoryBlock, FsError> {
        self.read_sealed(number, |block, trust| {
            DirectoryBlock::decode_as(block, number, trust)
        })
        .map_err(|error| error.under(&join(path)))
    }

    /// The entry `name` of directory `directory` (at `path`), if there is one.
    pub(crate) fn find_in_directory(
        &mut self,
        directory: &Inode,
        name: &str,
        path: &[&str],
    ) -> Result<Option<Found>, FsError> {
        for block in self.directory_blocks(directory)? {
            let found = self
                .read_sealed(block, |image, trust| match trust {
                    // Checked whole when it was read or sealed (and at mount): only the
                    // entry wanted is parsed.
                    Trust::Sealed => DirectoryBlock::find_sealed(image, block, name),
                    Trust::Verify => {
                        let mut entries = DirectoryBlock::decode_as(image, block, trust)?;
                        Ok(entries
                            .find(name)
                            .map(|index| (index, entries.entries.swap_remove(index).inode)))
                    }
                })
                .map_err(|error| error.under(&join(path)))?;
            if let Some((index, inode)) = found {
                return Ok(Some(Found {
                    location: Location::Entry { block, index },
                    inode,
                }));
            }
        }
        Ok(None)
    }

    /// Every entry of directory `directory` (at `path`).
    pub(crate) fn entries(
        &mut self,
        directory: &Inode,
        path: &[&str],
    ) -> Result<Vec<Entry>, FsError> {
        let mut all = Vec::new();
        for block in self.directory_blocks(directory)? {
            all.extend(self.read_directory_block(block, path)?.entries);
        }
        Ok(all)
    }

    /// Where new blocks for the inode at `location` should go when it has none.
    pub(crate) fn goal_near(&self, location: &Location) -> u64 {
        match location {
            Location::Root => self.layout.data_start,
            Location::Entry { block, .. } => block + 1,
        }
    }

    /// Writes `inode` back to `location`, stamped with this transaction's number.
    pub(crate) fn write_inode(
        &mut self,
        location: &Location,
        mut inode: Inode,
    ) -> Result<(), FsError> {
        inode.changed = self.journal.next_sequence;
        match *location {
            Location::Root => {
                let mut superblock = self.superblock()?;
                superblock.root = inode;
                self.store.stage_metadata(0, superblock.encode()?);
            }
            Location::Entry { block, index } => {
                let image = self.edit_directory_block(block, |image| {
                    let mut image = copy_to_change(&image[..], block)?;
                    DirectoryBlock::replace_inode(&mut image, block, index, &inode)?;
                    Ok(image)
                })?;
                self.store.stage_metadata(block, image);
            }
        }
        Ok(())
    }

    /// Adds entry `name` with `inode` to `directory` (at `path`), growing it by a block
    /// when no block has room.
    pub(crate) fn insert_entry(
        &mut self,
        directory: &Found,
        path: &[&str],
        name: &str,
        mut inode: Inode,
    ) -> Result<(), FsError> {
        inode.changed = self.journal.next_sequence;
        let entry = Entry {
            name: name.into(),
            inode,
        };
        let blocks: Vec<u64> = self.directory_blocks(&directory.inode)?.collect();
        for &block in &blocks {
            let appended = self
                .edit_directory_block(block, |image| {
                    DirectoryBlock::append_sealed(image, block, &entry)
                })
                .map_err(|error| error.under(&join(path)))?;
            if let Some(image) = appended {
                self.store.stage_metadata(block, image);
                return Ok(());
            }
        }
        let goal = blocks
            .last()
            .map_or_else(|| self.goal_near(&directory.location), |last| last + 1);
        let (block, _) = self.allocate_run(goal, 1)?;
        let fresh = DirectoryBlock {
            entries: alloc::vec![entry],
        };
        self.store.stage_metadata(block, fresh.encode(block)?);
        let mut grown = directory.inode.clone();
        let (mut list, _) = self.load_extents(&grown)?;
        extents::map(&mut list, blocks.len() as u64, block, 1);
        grown.size = (blocks.len() as u64 + 1) * BLOCK_SIZE as u64;
        self.store_extents(&mut grown, list, goal)?;
        self.write_inode(&directory.location, grown)
    }

    /// Removes entry `name` from `directory` (at `path`) and returns its inode (whose
    /// blocks the caller frees or moves), shrinking the directory when a block empties.
    pub(crate) fn remove_entry(
        &mut self,
        directory: &Found,
        path: &[&str],
        name: &str,
    ) -> Result<Inode, FsError> {
        let blocks: Vec<u64> = self.directory_blocks(&directory.inode)?.collect();
        for (logical, &block) in blocks.iter().enumerate() {
            let removed = self
                .edit_directory_block(block, |image| {
                    DirectoryBlock::remove_sealed(image, block, name)
                })
                .map_err(|error| error.under(&join(path)))?;
            let Some((inode, rest)) = removed else {
                continue;
            };
            match rest {
                Some(image) => self.store.stage_metadata(block, image),
                None => self.drop_directory_block(directory, path, &blocks, logical)?,
            }
            return Ok(inode);
        }
        Err(FsError::NotFound(crate::path::child(&join(path), name)))
    }

    /// Removes the emptied logical block `logical` from `directory`: the last block's
    /// entries move into it and the last block is freed.
    fn drop_directory_block(
        &mut self,
        directory: &Found,
        path: &[&str],
        blocks: &[u64],
        logical: usize,
    ) -> Result<(), FsError> {
        let (Some(&emptied), Some(&last)) = (blocks.get(logical), blocks.last()) else {
            return Err(FsError::corrupt(
                0,
                format!("{}: directory block {logical} missing", join(path)),
            ));
        };
        if emptied != last {
            let moved = self.read_directory_block(last, path)?;
            self.store.stage_metadata(emptied, moved.encode(emptied)?);
        }
        let mut shrunk = directory.inode.clone();
        let (mut list, _) = self.load_extents(&shrunk)?;
        let keep = blocks.len() as u64 - 1;
        for (start, count) in extents::cut(&mut list, keep) {
            self.free_run(start, count)?;
        }
        shrunk.size = keep * BLOCK_SIZE as u64;
        let goal = self.goal_near(&directory.location);
        self.store_extents(&mut shrunk, list, goal)?;
        self.write_inode(&directory.location, shrunk)
    }
}
