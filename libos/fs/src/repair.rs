//! Repair (`fsck -y`): salvages what a damaged file system still holds and writes a
//! consistent one around the same data blocks.
//!
//! 1. The journal's committed transactions are laid over the disk as mount would
//!    replay them; a damaged journal is dropped (said in the report), and one the disk
//!    fails to read or the app has not the memory to hold fails the repair (`Disk`,
//!    `NoMemory`, nothing written).
//! 2. The tree is walked from the root as the check walks it, but every problem is
//!    worked around and written down instead of stopping the walk:
//!    - a directory block whose magic, number or CRC is wrong is dropped with its
//!      entries, and so is one already used by another directory; an entry whose inode
//!      does not parse is dropped (and the rest of its block, if its name cannot be
//!      read);
//!    - an overflow extent block that does not parse, lies outside the data region or
//!      is already in use ends the extent chain there;
//!    - a block a directory's extent or an overflow pointer names that does not parse
//!      is no metadata: a file that claims it, before or after, keeps it;
//!    - an empty, out-of-order, overlapping or out-of-region extent is dropped;
//!    - a file block already used by another file is copied, so both files keep their
//!      bytes (the walk notes the block; step 3 reads it as it writes the copy, so one
//!      copied block is in memory at a time); one already used by metadata becomes a
//!      hole;
//!    - a file whose extents reach past its size grows to cover them;
//!    - a second entry of a name is kept under a new name (`NAME~2`, ...).
//! 3. The journal's blocks are written home (file data is journaled too) and the
//!    journal emptied, its numbers going on past every one it may hold and every stamp
//!    the walk read, so that every change stamp the rebuild writes is above the
//!    damaged tree's; the salvaged tree is built through the ordinary operations in
//!    an empty file system ([`FileSystem::for_rebuild`]): directories anew, each file
//!    adopting its surviving data blocks where they are (no data is moved but the
//!    copies above). Every block it writes is one the damaged tree does not use (the
//!    directory and overflow blocks the walk read are kept apart until the end), and
//!    all of it is written home and flushed before the new superblock, block 0, is
//!    committed alone through the journal: a crash before that commit leaves the
//!    damaged tree as the walk found it (a repair then walks it again to the same
//!    result), one after it the repaired tree. The result is checked.
//!
//! A consistent file system is left as it is: nothing is written. So is one whose check
//! the disk fails (a read, of the journal or any block, failing perhaps only once): the
//! check could not say it is damaged, and the repair fails with the disk's error
//! (`Disk`). Repair needs the
//! superblock (it holds the root directory): a damaged one is refused and nothing is
//! written, unless a crash tore its write (or left it unreadable) while the journal
//! holds its image ([`crate::fs::layout_and_journal`]), which is used then and written
//! back. Building beside the
//! damaged tree takes free blocks for the new directory and overflow blocks and the
//! copies: without them repair fails with `NoSpace`, the damaged tree left as it was.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::disk::{BLOCK_SIZE, BlockStore};
use crate::error::FsError;
use crate::format::{
    DirectoryBlock, Extent, FileKind, Inode, Layout, MAX_NAME, OverflowBlock, Superblock,
};
use crate::fs::{CommitPolicy, FileSystem, home_superblock};
use crate::fsck::UsedBlocks;
use crate::journal::{scan, sequence_past_journal};
use crate::path::{child, parse};
use crate::store::{Store, flush_disk, write_sorted};
use crate::{FsckReport, MAX_FILE_SIZE};

/// Bytes per block, as a u64.
const BLOCK: u64 = BLOCK_SIZE as u64;

/// The most blocks shared between files that repair copies (256 MiB of the disk); blocks
/// shared past that become holes, said in the report. The walk notes each copy (16
/// bytes) and the rebuild reads its block as it writes the copy, one at a time.
pub const MAX_COPIED_BLOCKS: usize = 65_536;

/// What [`FileSystem::repair`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairReport {
    /// What the check found first, then each problem met while salvaging and what
    /// was done about it, one line each; empty when the file system was consistent
    /// and nothing was written.
    pub fixes: Vec<String>,
    /// The repaired file system, as its check counts it.
    pub result: FsckReport,
}

/// A file or directory salvaged from the damaged tree.
struct Salvaged {
    /// Its path in the repaired tree (a renamed duplicate's new name).
    path: String,
    /// File or directory.
    kind: FileKind,
    /// A file's size (directories are rebuilt).
    size: u64,
    /// A file's surviving extents (directories are rebuilt).
    extents: Vec<Extent>,
    /// Blocks it shared with another file: logical block, and the physical block the
    /// other file keeps, read when the copy is written.
    copies: Vec<(u64, u64)>,
}

/// What the salvage walk found.
struct Salvage {
    /// Everything salvaged, each directory before its entries.
    nodes: Vec<Salvaged>,
    /// The damaged tree's directory and overflow blocks the walk read, those that parse
    /// and those that do not, but those a salvaged file keeps: the rebuild leaves them
    /// as they are until it commits, so that a repair after a crash walks the same
    /// tree. In increasing order, each once.
    kept_apart: Vec<u64>,
    /// Each problem met and what was done about it.
    fixes: Vec<String>,
    /// The largest change stamp of the inodes walked.
    newest_stamp: u64,
}

/// The salvage walk's state.
struct Salvager<'a, D> {
    store: &'a mut Store<D>,
    layout: Layout,
    /// Blocks taken by metadata (the regions, directory and overflow blocks that parse).
    metadata: UsedBlocks,
    /// Blocks taken by file data.
    data: UsedBlocks,
    /// File data blocks a directory turned out to own: dropped from files at the end.
    taken_back: BTreeSet<u64>,
    /// The data region's blocks the walk read as directory or overflow blocks, whatever
    /// it made of them. One that parses is metadata and no file keeps it (a file that
    /// claimed it first gives it back, one that claims it after gets a hole); one that
    /// does not parse is not, and a file that claims it keeps it.
    walked: Vec<u64>,
    /// Everything salvaged, each directory before its entries.
    nodes: Vec<Salvaged>,
    /// Blocks copied so far.
    copied: usize,
    fixes: Vec<String>,
    /// The largest change stamp of the inodes walked so far.
    newest_stamp: u64,
}

impl<D: BlockStore> FileSystem<D> {
    /// Repairs the file system on `disk` and mounts the result; see the module notes
    /// for what is salvaged and how. A consistent file system is mounted untouched
    /// (the report lists no fixes). Fails, writing nothing, when the superblock is
    /// damaged or unreadable (and not torn by a crash, or unreadable, with its image in
    /// the journal, which is then used and written back), the disk fails
    /// a read of the check (the journal's, or any block's) or of the journal, or the app
    /// cannot get the memory to hold the journal's transactions or the map of used
    /// blocks; fails if the disk fails, and with `NoSpace` if the disk has not the free
    /// blocks to build the tree beside the damaged one. A crash, or any failure, before
    /// the rebuilt tree is committed leaves the damaged tree as it was.
    pub fn repair(mut disk: D) -> Result<(Self, RepairReport), FsError> {
        let found = match Self::fsck(&mut disk) {
            Ok(result) => {
                let fixes = Vec::new();
                return Ok((Self::mount(disk)?, RepairReport { fixes, result }));
            }
            // The journal's transactions or the map of used blocks, which the repair
            // needs as well; or a read the disk failed (the journal's, say, perhaps
            // only once): the check could not say the file system is damaged, and
            // rebuilding a sound one would write it all anew for nothing.
            Err(error @ (FsError::NoMemory { .. } | FsError::Disk(_))) => return Err(error),
            Err(error) => error,
        };
        let blocks = disk.blocks();
        let needs_superblock = |error| match error {
            FsError::Corrupt { block, what } => FsError::corrupt(
                block,
                format!("{what} (repair needs the superblock: it holds the root directory)"),
            ),
            other => other,
        };
        // A superblock torn by a crash has its image in the journal, read below, and the
        // disk size's layout (a sound superblock's must equal it).
        let (layout, home) = home_superblock(&mut disk).map_err(needs_superblock)?;
        let mut fixes = alloc::vec![format!(
            "the check found: {found}; the bitmap and every directory are rebuilt"
        )];
        let pending = match scan(&mut disk, &layout) {
            Ok(replay) => replay.blocks,
            Err(error @ FsError::Corrupt { .. }) => {
                fixes.push(format!("journal: {error}; its transactions are dropped"));
                BTreeMap::new()
            }
            // Only a damaged journal is dropped: one the disk fails to read, or too large
            // for the app's memory, may be sound, and dropping it would lose committed
            // operations.
            Err(error) => return Err(error),
        };
        let mut store = Store::new(disk, pending, &layout);
        let root = match (Superblock::decode(&store.read(0)?, blocks), home) {
            (Ok(replayed), _) => replayed.root,
            (Err(error), Ok(home)) => {
                fixes.push(format!(
                    "journal: its superblock is damaged ({error}); the one on disk is used"
                ));
                // Not written home: the old superblock stays until the rebuild commits.
                store.pending.remove(&0);
                home.root
            }
            (Err(_), Err(torn)) => return Err(needs_superblock(torn)),
        };
        let salvage = Salvager::run(&mut store, &layout, root)?;
        fixes.extend(salvage.fixes);
        // The stamps the rebuild writes are above every one the damaged tree holds.
        let next_sequence = sequence_past_journal(&mut store.disk, &layout, salvage.newest_stamp)?;
        // File data lives in the journal too: what it holds goes home (a checkpoint:
        // the journal still holds it) before the emptied journal replaces it.
        let mut disk = store.disk;
        write_sorted(
            &mut disk,
            store.pending.len(),
            store.pending.iter().map(|(number, block)| (*number, block)),
        )?;
        flush_disk(&mut disk)?;
        let mut fs = Self::for_rebuild(disk, layout, next_sequence)?;
        fs.rebuild(&salvage.nodes, &salvage.kept_apart)?;
        let result = fs.check().map_err(|error| {
            FsError::corrupt(
                0,
                format!("repair left an inconsistent file system (a bug): {error}"),
            )
        })?;
        Ok((fs, RepairReport { fixes, result }))
    }

    /// Builds the salvaged tree in this empty file system ([`FileSystem::for_rebuild`]),
    /// keeping the blocks `kept_apart` as they are, then commits it and writes it home.
    fn rebuild(&mut self, nodes: &[Salvaged], kept_apart: &[u64]) -> Result<(), FsError> {
        for node in nodes {
            for extent in &node.extents {
                self.transact(|fs| fs.claim_run(extent.physical, extent.count))?;
            }
        }
        self.transact(|fs| {
            kept_apart
                .iter()
                .try_for_each(|&block| fs.claim_run(block, 1))
        })?;
        for node in nodes.iter().skip(1) {
            match node.kind {
                FileKind::Directory => self.mkdir(&node.path)?,
                FileKind::File => self.adopt(node)?,
            }
        }
        for node in nodes {
            for (logical, shared) in &node.copies {
                // The other file adopted the block where it lies: nothing wrote it since.
                let bytes = self.store.read_data(*shared, false)?;
                let offset = logical * BLOCK;
                let length = (node.size - offset).min(BLOCK) as usize;
                self.write(&node.path, offset, bytes.get(..length).unwrap_or_default())?;
            }
        }
        self.transact(|fs| {
            kept_apart
                .iter()
                .try_for_each(|&block| fs.free_run(block, 1))
        })?;
        self.finish_rebuild()?;
        self.set_commit_policy(CommitPolicy::EachOperation)
    }

    /// Creates the file `node` over its surviving blocks (already marked used).
    fn adopt(&mut self, node: &Salvaged) -> Result<(), FsError> {
        let names = parse(&node.path)?;
        let Some((name, parent_names)) = names.split_last() else {
            return Err(FsError::Exists(String::from("/")));
        };
        let parent = self.lookup_directory(parent_names)?;
        self.transact(|fs| {
            let mut inode = Inode::new(FileKind::File, 0);
            inode.size = node.size;
            let goal = fs.goal_near(&parent.location);
            fs.store_extents(&mut inode, node.extents.clone(), goal)?;
            fs.insert_entry(&parent, parent_names, name, inode)
        })
    }
}

impl<'a, D: BlockStore> Salvager<'a, D> {
    /// Walks the tree under `root`: what survives, and what was done on the way.
    fn run(store: &'a mut Store<D>, layout: &Layout, root: Inode) -> Result<Salvage, FsError> {
        let mut salvager = Salvager {
            store,
            layout: *layout,
            metadata: UsedBlocks::new(layout.blocks)?,
            data: UsedBlocks::new(layout.blocks)?,
            taken_back: BTreeSet::new(),
            walked: Vec::new(),
            nodes: Vec::new(),
            copied: 0,
            fixes: Vec::new(),
            newest_stamp: 0,
        };
        for block in 0..layout.data_start {
            salvager.metadata.insert(block);
        }
        let mut stack = alloc::vec![(String::from("/"), root)];
        while let Some((path, inode)) = stack.pop() {
            salvager.newest_stamp = salvager.newest_stamp.max(inode.changed);
            match inode.kind {
                FileKind::File => salvager.file(path, &inode)?,
                FileKind::Directory => stack.extend(salvager.directory(path, &inode)?),
            }
        }
        salvager.give_back_taken_blocks();
        let mut kept_apart = core::mem::take(&mut salvager.walked);
        // A walked block that parsed and that a file claimed was given back; one that
        // did not parse and that a file claimed stays that file's, adopted in place.
        kept_apart
            .retain(|&block| salvager.metadata.contains(block) || !salvager.data.contains(block));
        kept_apart.sort_unstable();
        kept_apart.dedup();
        Ok(Salvage {
            nodes: salvager.nodes,
            kept_apart,
            fixes: salvager.fixes,
            newest_stamp: salvager.newest_stamp,
        })
    }

    /// Salvages a file: its extents, copies of blocks it shares, a size covering them.
    fn file(&mut self, path: String, inode: &Inode) -> Result<(), FsError> {
        let mut copies = Vec::new();
        let mut extents = Vec::new();
        for extent in self.extents(&path, inode)? {
            let mut run: Option<Extent> = None;
            for offset in 0..extent.count {
                let (logical, physical) = (extent.logical + offset, extent.physical + offset);
                let own = if self.metadata.contains(physical) {
                    self.fixes.push(format!(
                        "{path}: block {physical} (file block {logical}) is metadata; it becomes a hole"
                    ));
                    false
                } else if !self.data.insert(physical) {
                    self.copy_shared(&path, logical, physical, &mut copies);
                    false
                } else {
                    true
                };
                run = match (run, own) {
                    (Some(mut open), true) if open.physical_end() == physical => {
                        open.count += 1;
                        Some(open)
                    }
                    (open, true) => {
                        extents.extend(open);
                        Some(Extent {
                            logical,
                            physical,
                            count: 1,
                        })
                    }
                    (open, false) => {
                        extents.extend(open);
                        None
                    }
                };
            }
            extents.extend(run);
        }
        let covered = extents
            .iter()
            .map(Extent::logical_end)
            .chain(copies.iter().map(|(logical, _)| logical + 1))
            .max()
            .unwrap_or(0);
        let mut size = inode.size;
        if size > MAX_FILE_SIZE || size.div_ceil(BLOCK) < covered {
            let grown = covered * BLOCK;
            self.fixes.push(format!(
                "{path}: size {size} is past the largest file or short of its blocks; set to {grown}"
            ));
            size = grown;
        }
        self.nodes.push(Salvaged {
            path,
            kind: FileKind::File,
            size,
            extents,
            copies,
        });
        Ok(())
    }

    /// Notes a copy of file block `logical` at `physical`, which another file owns.
    fn copy_shared(
        &mut self,
        path: &str,
        logical: u64,
        physical: u64,
        copies: &mut Vec<(u64, u64)>,
    ) {
        if self.copied >= MAX_COPIED_BLOCKS {
            self.fixes.push(format!(
                "{path}: block {physical} (file block {logical}) is another file's, and {MAX_COPIED_BLOCKS} blocks are copied already; it becomes a hole"
            ));
            return;
        }
        self.fixes.push(format!(
            "{path}: block {physical} (file block {logical}) is also another file's; copied"
        ));
        copies.push((logical, physical));
        self.copied += 1;
    }

    /// Salvages a directory: the entries of its readable blocks, to walk next.
    fn directory(&mut self, path: String, inode: &Inode) -> Result<Vec<(String, Inode)>, FsError> {
        let mut names = BTreeSet::new();
        let mut children = Vec::new();
        for extent in self.extents(&path, inode)? {
            for block in extent.physical..extent.physical_end() {
                if self.metadata.contains(block) {
                    self.fixes.push(format!(
                        "{path}: directory block {block} is already in use (another directory's, or an ancestor's); skipped"
                    ));
                    continue;
                }
                self.walked.push(block);
                let read = self.store.read(block)?;
                let entries = match DirectoryBlock::salvage(&read, block) {
                    Ok((entries, problems)) => {
                        for problem in problems {
                            self.fixes
                                .push(format!("{path}: directory block {block}: {problem}"));
                        }
                        entries
                    }
                    Err(error) => {
                        self.fixes
                            .push(format!("{path}: {error}; the entries it held are lost"));
                        continue;
                    }
                };
                self.metadata.insert(block);
                if self.data.contains(block) {
                    self.taken_back.insert(block);
                }
                for entry in entries {
                    let name = unique_name(&mut names, &entry.name);
                    if name != entry.name {
                        self.fixes.push(format!(
                            "{}: a second entry of this name; kept as {name}",
                            child(&path, &entry.name)
                        ));
                    }
                    children.push((child(&path, &name), entry.inode));
                }
            }
        }
        self.nodes.push(Salvaged {
            path,
            kind: FileKind::Directory,
            size: 0,
            extents: Vec::new(),
            copies: Vec::new(),
        });
        Ok(children)
    }

    /// The usable extents of `inode`: its overflow chain followed while it is sound,
    /// then each extent checked on its own.
    fn extents(&mut self, path: &str, inode: &Inode) -> Result<Vec<Extent>, FsError> {
        let mut found = inode.inline.clone();
        let mut next = inode.overflow;
        while next != 0 {
            let problem = if !self.layout.in_data(next, 1) {
                Some(String::from("lies outside the data region"))
            } else if self.metadata.contains(next) || self.data.contains(next) {
                Some(String::from("is already in use"))
            } else {
                self.walked.push(next);
                match OverflowBlock::decode(&self.store.read(next)?, next) {
                    Ok(overflow) => {
                        self.metadata.insert(next);
                        found.extend(overflow.extents);
                        next = overflow.next;
                        None
                    }
                    Err(error) => Some(format!("does not parse ({error})")),
                }
            };
            if let Some(what) = problem {
                self.fixes.push(format!(
                    "{path}: overflow extent block {next} {what}; the extents from there on are lost"
                ));
                break;
            }
        }
        let mut kept: Vec<Extent> = Vec::new();
        let limit = MAX_FILE_SIZE / BLOCK;
        for extent in found {
            let after_previous = kept
                .last()
                .is_none_or(|last| extent.logical >= last.logical_end());
            let problem = if extent.count == 0 {
                Some("is empty")
            } else if !after_previous {
                Some("overlaps or precedes the one before")
            } else if extent
                .logical
                .checked_add(extent.count)
                .is_none_or(|end| end > limit)
            {
                Some("reaches past the largest file")
            } else if !self.layout.in_data(extent.physical, extent.count) {
                Some("lies outside the data region")
            } else {
                None
            };
            match problem {
                Some(what) => self.fixes.push(format!(
                    "{path}: extent ({}, {}, {}) {what}; dropped",
                    extent.logical, extent.physical, extent.count
                )),
                None => kept.push(extent),
            }
        }
        Ok(kept)
    }

    /// Drops from every file the blocks a directory turned out to own.
    fn give_back_taken_blocks(&mut self) {
        if self.taken_back.is_empty() {
            return;
        }
        for node in &mut self.nodes {
            let before = core::mem::take(&mut node.extents);
            for extent in before {
                let mut start = 0;
                for offset in 0..=extent.count {
                    let taken = offset < extent.count
                        && self.taken_back.contains(&(extent.physical + offset));
                    if offset == extent.count || taken {
                        if offset > start {
                            node.extents.push(Extent {
                                logical: extent.logical + start,
                                physical: extent.physical + start,
                                count: offset - start,
                            });
                        }
                        start = offset + 1;
                    }
                    if taken {
                        self.fixes.push(format!(
                            "{}: block {} (file block {}) is a directory's; it becomes a hole",
                            node.path,
                            extent.physical + offset,
                            extent.logical + offset
                        ));
                    }
                }
            }
        }
    }
}

/// `name`, or `name~2`, `name~3`, ... (shortened to fit) if it is taken; recorded.
fn unique_name(taken: &mut BTreeSet<String>, name: &str) -> String {
    let mut candidate = String::from(name);
    let mut number = 2u64;
    while taken.contains(&candidate) {
        let suffix = format!("~{number}");
        let mut keep = name.len().min(MAX_NAME - suffix.len());
        while !name.is_char_boundary(keep) {
            keep -= 1;
        }
        candidate = format!("{}{suffix}", name.get(..keep).unwrap_or_default());
        number += 1;
    }
    taken.insert(candidate.clone());
    candidate
}
