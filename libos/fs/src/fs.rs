//! The file system: format, mount (with recovery), the operations, transactions and
//! checkpoints.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::disk::{BLOCK_SIZE, BlockStore};
use crate::error::FsError;
use crate::extents::{cut, mapped_blocks, physical_of, unmapped_runs};
use crate::file::next_mount;
use crate::format::{
    BITMAP_MAGIC, BITS_PER_BITMAP_BLOCK, Block, EXTENTS_PER_OVERFLOW_BLOCK, Extent, FileKind,
    INLINE_EXTENTS, Inode, Layout, SUPERBLOCK_MAGIC, Superblock, ZEROS, bit_is_set,
    bitmap_position, check_header_as, seal, seal_checksum, set_bit, try_block, try_zeroed, zeroed,
};
use crate::fsck::{FsckReport, check};
use crate::journal::{Journal, Replay, encode_header, scan, transaction_length, write_transaction};
use crate::path::{join, parse};
use crate::store::{
    Displaced, RUN_BLOCKS, Store, flush_disk, read_disk, write_disk, write_disk_run, write_sorted,
};
use crate::{DirEntry, MAX_FILE_SIZE, Metadata, StatFs};

/// Bytes per block, as a u64 for offset arithmetic.
const BLOCK: u64 = BLOCK_SIZE as u64;

/// When completed operations are committed to the journal (see
/// [`FileSystem::set_commit_policy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommitPolicy {
    /// Each operation is committed and flushed before it returns: durable then (the
    /// default).
    #[default]
    EachOperation,
    /// Completed operations gather in a running transaction in memory (reads see it),
    /// committed as one when [`FileSystem::commit`] or [`FileSystem::sync`] is called,
    /// when the next operation would make it too large for the journal (it is committed
    /// first), or when it reaches [`MAX_RUNNING_BLOCKS`]. A crash loses the operations
    /// since the last commit, never part of one: the tree is as after some operation
    /// at or after the last `commit`/`sync` returned.
    OnCommit,
}

/// The most blocks the running transaction gathers before it is committed (4 MiB).
pub const MAX_RUNNING_BLOCKS: usize = 1024;

/// The fewest fresh blocks a commit writes in place rather than through the journal
/// (64 KiB): below that the journal's one sequential run costs less than the extra
/// flush that ordering them first takes.
pub const MIN_IN_PLACE_BLOCKS: usize = 16;

/// The blocks committed to the journal but not yet written home that a mount keeps in
/// memory unless told otherwise (8 MiB; [`FileSystem::set_max_pending_blocks`]): past
/// them a commit checkpoints, so the memory a mount holds does not grow with the
/// journal (64 MiB on a disk of 4 GiB or more). A disk of up to 512 MiB, whose journal
/// is at most this size, checkpoints as often as before; on a larger one a checkpoint's
/// two flushes and header write are still spread over 2048 blocks written.
pub const DEFAULT_MAX_PENDING_BLOCKS: usize = 2048;

/// A mounted Rexo file system on a disk `D`.
///
/// Every operation that changes something is all or nothing, and goes to the journal
/// as part of one transaction (a large write as several, see [`FileSystem::write`]).
/// By default ([`CommitPolicy::EachOperation`]) each operation is its own transaction,
/// committed and flushed before it returns: durable then. With
/// [`CommitPolicy::OnCommit`] operations gather in a running transaction, made durable
/// by [`FileSystem::commit`] ("fsync"). [`FileSystem::sync`] commits and checkpoints:
/// it writes the journaled blocks to their homes and empties the journal.
#[derive(Debug)]
pub struct FileSystem<D: BlockStore> {
    /// The disk and the changes above it.
    pub(crate) store: Store<D>,
    /// Where the regions are.
    pub(crate) layout: Layout,
    /// Where the journal writes next.
    pub(crate) journal: Journal,
    /// Free data blocks (counting the transaction being built).
    pub(crate) free_blocks: u64,
    /// Set when a write or flush failed: the file system then refuses to go on.
    failed: Option<String>,
    /// When operations are committed.
    policy: CommitPolicy,
    /// Where a file without blocks gets its first one, while [`FileSystem::replace_after`]
    /// or [`FileSystem::write_after`] runs (else just after its directory entry's block).
    placement: Option<u64>,
    /// Why the file system is mounted read-only, if it is: what its check found, or the
    /// failed write of its journal home.
    read_only: Option<String>,
    /// This mount's number (handles remember it: see [`crate::File`]).
    pub(crate) mount: u64,
    /// Counts the operations that changed something, so that a handle knows when
    /// what it holds may be out of date.
    pub(crate) version: u64,
    /// Set while repair builds a salvaged tree ([`FileSystem::for_rebuild`]): a commit
    /// writes the running transaction home in place, but block 0, which stays in it.
    rebuilding: bool,
    /// The most pending blocks (committed, not yet home) kept before a checkpoint.
    max_pending: usize,
}

impl<D: BlockStore> FileSystem<D> {
    /// Writes an empty file system (an empty root directory) over the whole disk; the
    /// whole journal is cleared, so nothing an earlier file system left there replays.
    ///
    /// A crash at any write, one torn at 512-byte sector boundaries too, leaves the old
    /// file system, the new one, or a disk that mount refuses as `NotFormatted` (format
    /// it again): an old superblock first loses its magic alone (its first sector, the
    /// only one that changes), flushed, before anything else is written (an unreadable
    /// block 0 gets the new superblock without its magic, flushed, and keeps it); then
    /// the new superblock is written without its magic (unless it is there already),
    /// with the bitmap and journal, and flushed; its magic, the first sector again, is
    /// the last write.
    pub fn format(mut disk: D) -> Result<Self, FsError> {
        let layout = Layout::for_disk(disk.blocks())?;
        let mut sealed = Superblock::empty(layout).encode()?;
        seal_checksum(&mut sealed);
        let mut unmarked = sealed.clone();
        unmarked[..SUPERBLOCK_MAGIC.len()].fill(0);
        // Before the bitmap and journal change under the old superblock, flushed: the
        // old one without its magic, or, where block 0 cannot be read (mount would take
        // the old superblock from the old journal), the new one without its magic, which
        // is then written once. Else the new one without its magic goes with them.
        match read_disk(&mut disk, 0) {
            Ok(mut old) if old[..SUPERBLOCK_MAGIC.len()] == SUPERBLOCK_MAGIC => {
                old[..SUPERBLOCK_MAGIC.len()].fill(0);
                write_disk(&mut disk, 0, &old)?;
                flush_disk(&mut disk)?;
                write_disk(&mut disk, 0, &unmarked)?;
            }
            Ok(_) => write_disk(&mut disk, 0, &unmarked)?,
            Err(_) => {
                write_disk(&mut disk, 0, &unmarked)?;
                flush_disk(&mut disk)?;
            }
        }
        for index in 0..layout.bitmap_blocks {
            let number = layout.bitmap_start + index;
            write_disk(&mut disk, number, &initial_bitmap(&layout, number))?;
        }
        write_disk(
            &mut disk,
            layout.journal_start,
            &encode_header(layout.journal_start, 1)?,
        )?;
        // The whole log, not just its first block: the journal restarts at sequence 1,
        // and an earlier file system's transactions 2, 3, ... left further on would
        // otherwise be replayed after the new ones.
        zero_blocks(&mut disk, layout.journal_start + 1, layout.journal_end())?;
        flush_disk(&mut disk)?;
        write_disk(&mut disk, 0, &sealed)?;
        flush_disk(&mut disk)?;
        Ok(Self::with_store(
            Store::new(disk, BTreeMap::new(), &layout),
            layout,
            Journal::empty(&layout, 1),
            layout.data_blocks(),
        ))
    }

    /// A file system of `layout` over `store`, its journal writing next as `journal`
    /// says, with `free_blocks` free data blocks: writable, committing each operation,
    /// not rebuilding; a new mount number.
    fn with_store(store: Store<D>, layout: Layout, journal: Journal, free_blocks: u64) -> Self {
        Self {
            store,
            layout,
            journal,
            free_blocks,
            failed: None,
            read_only: None,
            policy: CommitPolicy::EachOperation,
            placement: None,
            mount: next_mount(),
            version: 0,
            rebuilding: false,
            max_pending: DEFAULT_MAX_PENDING_BLOCKS,
        }
    }

    /// An empty file system for repair to build a salvaged tree in, over the disk of
    /// `layout` whose journal's blocks are home (written and flushed). The journal is
    /// emptied first: the log's first block zeroed and flushed, so that nothing replays
    /// (a first transaction left whole over later ones zeroed would lay its older images
    /// over the newer ones already home), then the rest of it (no transaction left there
    /// is ever replayed after the rebuild's), flushed, then its header (sequence
    /// `next_sequence`, in one sector), flushed. The new superblock and bitmap start in
    /// the running transaction, and until [`FileSystem::finish_rebuild`] commits write
    /// what it holds home in place, but block 0: the old superblock, and the old tree
    /// under it, stay as they are unless the rebuild writes over the old tree's blocks,
    /// which repair keeps it from.
    pub(crate) fn for_rebuild(
        mut disk: D,
        layout: Layout,
        next_sequence: u64,
    ) -> Result<Self, FsError> {
        let log = layout.journal_start + 1;
        zero_blocks(&mut disk, log, log + 1)?;
        flush_disk(&mut disk)?;
        zero_blocks(&mut disk, log + 1, layout.journal_end())?;
        flush_disk(&mut disk)?;
        let header = encode_header(layout.journal_start, next_sequence)?;
        write_disk(&mut disk, layout.journal_start, &header)?;
        flush_disk(&mut disk)?;
        let mut fs = Self::with_store(
            Store::new(disk, BTreeMap::new(), &layout),
            layout,
            Journal::empty(&layout, next_sequence),
            layout.data_blocks(),
        );
        fs.policy = CommitPolicy::OnCommit;
        fs.rebuilding = true;
        fs.store
            .stage_metadata(0, Superblock::empty(layout).encode()?);
        for number in layout.bitmap_start..layout.bitmap_start + layout.bitmap_blocks {
            fs.store.stage(number, initial_bitmap(&layout, number));
        }
        fs.store.absorb_staged();
        Ok(fs)
    }

    /// Ends [`FileSystem::for_rebuild`]: writes home in place what the running
    /// transaction holds but block 0 and flushes, then commits block 0 alone to the
    /// journal (the commit: a crash before it leaves the old superblock, one after it the
    /// new tree) and checkpoints it as any commit is (torn at home, it is read from the
    /// journal).
    pub(crate) fn finish_rebuild(&mut self) -> Result<(), FsError> {
        self.commit_running()?;
        self.rebuilding = false;
        self.sync()
    }

    /// Mounts the file system on `disk`: replays the journal's committed transactions,
    /// checks the whole file system (as [`FileSystem::fsck`]) and refuses it, writing
    /// nothing, if anything is wrong. The check reads all metadata and needs a bit of
    /// memory per disk block.
    pub fn mount(disk: D) -> Result<Self, FsError> {
        match Self::mount_read_only(disk)? {
            (mut fs, None) => fs.make_writable().map(|()| fs),
            (_, Some(refused)) => Err(refused),
        }
    }

    /// A sound file system mounted read-only, made writable: the journal's committed
    /// transactions are written home.
    fn make_writable(&mut self) -> Result<(), FsError> {
        self.read_only = None;
        if self.journal.transactions > 0 {
            self.write_home()?;
        }
        Ok(())
    }

    /// Mounts `disk` for work that only reads: a sound file system as [`FileSystem::mount`]
    /// does, else read-only as [`FileSystem::mount_read_only`] does, telling `read_only`
    /// why: what the check found, or the failed write of the journal home (a lease
    /// without write access, a disk error), after which the journal stays laid over the
    /// disk in memory and nothing more is written.
    pub(crate) fn mount_to_read(
        disk: D,
        read_only: &mut dyn FnMut(&FsError),
    ) -> Result<Self, FsError> {
        let (mut fs, found) = Self::mount_read_only(disk)?;
        let why = match found {
            Some(found) => found,
            None => match fs.make_writable() {
                Ok(()) => return Ok(fs),
                Err(error) => fs.read_on_in_memory(error),
            },
        };
        read_only(&why);
        Ok(fs)
    }

    /// Leaves this file system read-only after writing the journal home failed with
    /// `error`, and returns why (a disk error naming the write): the replayed blocks are
    /// still laid over the disk (`write_home` drops them only once written), so reads go
    /// on through them.
    fn read_on_in_memory(&mut self, error: FsError) -> FsError {
        let why = match error {
            FsError::Disk(message) => {
                FsError::Disk(alloc::format!("writing the journal home failed: {message}"))
            }
            other => other,
        };
        self.failed = None;
        self.read_only = Some(alloc::format!("{why}"));
        why
    }

    /// Mounts the file system on `disk` to read it even if its check fails: the
    /// journal's committed transactions are laid over the disk in memory (never written
    /// home), and every operation that would change something (and `commit`, `sync`)
    /// answers [`FsError::ReadOnly`]. Also returns what the check found (`None`: the file
    /// system is sound). Reading is safe where the damage is not: every metadata block
    /// is verified as it is read, so a read that meets damage fails with `Corrupt`
    /// naming it, and the rest reads as it is. The superblock (or, torn by a crash or
    /// unreadable, its image in the journal) and the journal must be readable; nothing
    /// is ever written to the disk.
    pub fn mount_read_only(disk: D) -> Result<(Self, Option<FsError>), FsError> {
        let mut disk = disk;
        let (layout, replay) = layout_and_journal(&mut disk)?;
        let mut store = Store::new(disk, replay.blocks, &layout);
        let checked = check(&mut store, &layout, replay.transactions);
        let mut journal = Journal::empty(&layout, replay.next_sequence);
        journal.transactions = replay.transactions;
        let why = match &checked {
            Ok(_) => String::from("asked for"),
            Err(error) => alloc::format!("{error}"),
        };
        let free_blocks = checked.as_ref().map_or(0, |report| report.free_blocks);
        let mut fs = Self::with_store(store, layout, journal, free_blocks);
        fs.read_only = Some(why);
        Ok((fs, checked.err()))
    }

    /// Checks the file system on `disk` without writing to it: the journal's committed
    /// transactions are laid over the disk as mount would replay them.
    pub fn fsck(disk: &mut D) -> Result<FsckReport, FsError> {
        let (layout, replay) = layout_and_journal(disk)?;
        let mut store = Store::new(disk, replay.blocks, &layout);
        check(&mut store, &layout, replay.transactions)
    }

    /// Checks this mounted file system as it stands (journaled changes included).
    pub fn check(&mut self) -> Result<FsckReport, FsError> {
        self.usable()?;
        self.store.seal_running();
        let transactions = self.journal.transactions;
        check(&mut self.store, &self.layout, transactions)
    }

    /// Gives the disk back, as a crash would leave it: every committed operation is
    /// durable in the journal (with [`CommitPolicy::EachOperation`], every completed
    /// one), the running transaction is dropped. Call [`FileSystem::commit`] first to
    /// keep it, or [`FileSystem::sync`] to leave the journal empty too.
    pub fn into_disk(self) -> D {
        self.store.disk
    }

    /// How operations are committed.
    pub fn commit_policy(&self) -> CommitPolicy {
        self.policy
    }

    /// Sets how operations are committed (a new mount starts with
    /// [`CommitPolicy::EachOperation`]). Going back to `EachOperation` commits the
    /// running transaction, so every completed operation is durable when it returns.
    pub fn set_commit_policy(&mut self, policy: CommitPolicy) -> Result<(), FsError> {
        self.policy = policy;
        if policy == CommitPolicy::EachOperation {
            self.commit()?;
        }
        Ok(())
    }

    /// Sets how many clean blocks the read cache holds (from
    /// [`DEFAULT_CACHE_BLOCKS`](crate::DEFAULT_CACHE_BLOCKS)); 0 turns it off and drops what it holds.
    pub fn set_cache_blocks(&mut self, blocks: usize) {
        self.store.cache.set_capacity(blocks);
    }

    /// Sets how many blocks committed to the journal but not yet written home this mount
    /// keeps in memory (from [`DEFAULT_MAX_PENDING_BLOCKS`]; 0 checkpoints after every
    /// commit): a commit that would take them past it checkpoints first, and one that
    /// leaves more (a transaction larger than it alone) checkpoints after. Applies
    /// from the next commit; a lower bound means more checkpoints, a higher one more
    /// memory (at most the journal's size).
    pub fn set_max_pending_blocks(&mut self, blocks: usize) {
        self.max_pending = blocks;
    }

    /// The most blocks committed but not yet written home this mount keeps in memory
    /// ([`FileSystem::set_max_pending_blocks`]).
    pub fn max_pending_blocks(&self) -> usize {
        self.max_pending
    }

    /// Empties the read cache: the next reads go to the disk (a cold start for a
    /// benchmark). Changes not yet written home stay in memory: they are not a cache.
    pub fn drop_cache(&mut self) {
        self.store.cache.clear();
    }

    /// Sets how many blocks a cache miss in the data region reads together (from
    /// [`DEFAULT_READ_TOGETHER`](crate::DEFAULT_READ_TOGETHER); clamped to 1 ..= 256): the block and the ones after
    /// it, so that a directory block brings the small files placed after it. Applies
    /// to metadata and to files of at most that many blocks; 1 reads blocks alone.
    pub fn set_read_together(&mut self, blocks: u64) {
        self.store.together = blocks.clamp(1, RUN_BLOCKS as u64);
    }

    /// Whether a file of `size` bytes is small: read together with its neighbours.
    fn is_small(&self, size: u64) -> bool {
        size <= self.store.together * BLOCK
    }

    /// Makes every completed operation durable ("fsync"): writes the running
    /// transaction to the journal as one transaction and flushes. Nothing is written
    /// home (that is [`FileSystem::sync`]); with nothing running it does nothing.
    /// `NoMemory` when the commit cannot get its memory: nothing committed, the
    /// operations stay in the running transaction and the file system usable.
    pub fn commit(&mut self) -> Result<(), FsError> {
        self.writable()?;
        self.commit_running()
    }

    /// Makes everything done so far durable and written home: commits the running
    /// transaction, then writes the journaled blocks to their places, flushes, empties
    /// the journal and flushes again.
    pub fn sync(&mut self) -> Result<(), FsError> {
        self.writable()?;
        self.commit_running()?;
        self.write_home()
    }

    /// Data blocks in all and free.
    pub fn statfs(&self) -> StatFs {
        StatFs {
            block_size: BLOCK,
            total_blocks: self.layout.data_blocks(),
            free_blocks: self.free_blocks,
        }
    }

    /// Creates the directory `path`; its parent must exist.
    pub fn mkdir(&mut self, path: &str) -> Result<(), FsError> {
        self.make(path, FileKind::Directory)
    }

    /// Creates the empty file `path`; its parent must exist.
    pub fn create(&mut self, path: &str) -> Result<(), FsError> {
        self.make(path, FileKind::File)
    }

    /// Writes `data` at byte `offset` of the file `path`, which grows as needed; a
    /// gap past the old end is a hole that reads as zeros and takes no blocks.
    ///
    /// A write whose blocks fit one journal transaction is atomic. A larger one is cut
    /// at block boundaries into transactions, each committed in turn from the lowest
    /// offset: a crash in the middle leaves a prefix of the write done (each piece
    /// grows the size only as far as it wrote). A write that cannot have the blocks
    /// it needs returns `NoSpace` before writing anything: one cut into several
    /// transactions, when the free blocks may not cover its data blocks and the
    /// overflow extent blocks its extents can take, first (before committing any, so
    /// for a write of one piece once that piece has been halved) rehearses all of their
    /// allocations, piece by piece as they will be cut (halved pieces too), and
    /// forgets them. A piece that cannot get the memory it needs (its new block
    /// images, up to the journal's size: 64 MiB on a disk of 4 GiB or more; the blocks
    /// it reads to change; its commit's journal blocks and buffer) returns `NoMemory`
    /// with nothing of it committed (in a write of several, the pieces before it are)
    /// and the file system usable.
    pub fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), FsError> {
        self.writable()?;
        let names = parse(path)?;
        let found = self.lookup_file(&names)?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&end| end <= MAX_FILE_SIZE)
            .ok_or_else(|| FsError::FileTooLarge(join(&names)))?;
        if data.is_empty() {
            return Ok(());
        }
        let (extents, _) = self.load_extents(&found.inode)?;
        let needed: u64 = unmapped_runs(&extents, offset / BLOCK, end.div_ceil(BLOCK))
            .iter()
            .map(|&(_, count)| count)
            .sum();
        if needed > self.free_blocks {
            return Err(FsError::NoSpace);
        }
        let mut done = 0usize;
        let mut piece_blocks = self.journal.capacity().saturating_sub(8).max(1);
        // Each run allocated adds at most one extent, and `store_extents` reuses the
        // file's chain of overflow blocks: the write takes at most `needed` data blocks
        // and the overflow blocks of all its extents, old and new.
        let overflow_bound = (extents.len() as u64)
            .saturating_add(needed)
            .saturating_sub(INLINE_EXTENTS as u64)
            .div_ceil(EXTENTS_PER_OVERFLOW_BLOCK as u64);
        let space_may_be_short = needed.saturating_add(overflow_bound) > self.free_blocks;
        let mut rehearse = needed > 0 && space_may_be_short;
        while done < data.len() {
            let at = offset + done as u64;
            let length = (piece_end(at, piece_blocks, end) - at) as usize;
            // Once the write is known to take several transactions (from the start, or
            // when its first piece has been halved), before any of them.
            if rehearse && length < data.len() {
                self.rehearse_write(&names, offset, end, piece_blocks)?;
                rehearse = false;
            }
            let piece = data.get(done..done + length).unwrap_or_default();
            match self.transact(|fs| fs.write_piece(&names, at, piece)) {
                Ok(()) => done += length,
                Err(FsError::TooLarge { .. }) if piece_blocks > 1 => piece_blocks /= 2,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Makes the file `path` hold exactly `data`, creating it if missing: create,
    /// truncate to 0 and write, each committed in turn (a crash between them leaves
    /// the file empty or holding a prefix of `data`).
    pub fn replace(&mut self, path: &str, data: &[u8]) -> Result<(), FsError> {
        match self.create(path) {
            Ok(()) | Err(FsError::Exists(_)) => {}
            Err(error) => return Err(error),
        }
        self.truncate(path, 0)?;
        self.write(path, 0, data)
    }

    /// [`FileSystem::replace`], with the file's blocks placed from the end of the file
    /// `neighbour` on (the first free blocks at or after it) instead of next to its
    /// directory entry: Cheetah's grouping, which puts the files a web page links to
    /// right after the page, wherever their directories are, so that reading the page
    /// reads them too (see [`FileSystem::set_read_together`]). A `neighbour` without
    /// blocks places nothing; one that is missing or a directory is an error.
    pub fn replace_after(
        &mut self,
        path: &str,
        data: &[u8],
        neighbour: &str,
    ) -> Result<(), FsError> {
        self.placed_after(neighbour, |fs| fs.replace(path, data))
    }

    /// [`FileSystem::write`], with the blocks it gives a file that has none before them
    /// placed from the end of the file `neighbour` on, as [`FileSystem::replace_after`]
    /// places them: a file written a piece at a time, holes left, is grouped by writing
    /// its first piece with this and the rest with `write` (each new block goes after the
    /// file's block before it). A `neighbour` without blocks places nothing; one that is
    /// missing or a directory is an error, before anything is written.
    pub fn write_after(
        &mut self,
        path: &str,
        offset: u64,
        data: &[u8],
        neighbour: &str,
    ) -> Result<(), FsError> {
        self.placed_after(neighbour, |fs| fs.write(path, offset, data))
    }

    /// Runs `operation` with a file's first blocks placed from the end of the file
    /// `neighbour` on (the placement forgotten afterwards, whatever the result).
    fn placed_after(
        &mut self,
        neighbour: &str,
        operation: impl FnOnce(&mut Self) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        self.writable()?;
        let found = self.lookup_file(&parse(neighbour)?)?;
        let (extents, _) = self.load_extents(&found.inode)?;
        self.placement = extents.last().map(|extent| extent.physical_end());
        let result = operation(self);
        self.placement = None;
        result
    }

    /// Reads from byte `offset` of the file `path` into `buf`; returns the bytes read,
    /// fewer than `buf.len()` at the end of the file. Holes read as zeros.
    pub fn read(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        self.usable()?;
        let names = parse(path)?;
        let found = self.lookup_file(&names)?;
        let (extents, _) = self.load_extents(&found.inode)?;
        self.read_mapped(found.inode.size, &extents, offset, buf)
    }

    /// Reads from byte `offset` of a file of `size` bytes mapped by `extents` into
    /// `buf`; returns the bytes read. A small file's blocks come through the cache
    /// (read together with their neighbours); a large file's whole blocks go from the
    /// disk straight into `buf`, in physically contiguous runs.
    pub(crate) fn read_mapped(
        &mut self,
        size: u64,
        extents: &[Extent],
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, FsError> {
        self.read_mapped_in_place(size, extents, offset, buf.len(), &mut |at, data| {
            if let Some(target) = buf.get_mut(at..at + data.len()) {
                target.copy_from_slice(data);
            }
        })
    }

    /// [`read_mapped`](Self::read_mapped) handing the bytes to `take` where they are (a
    /// large file's whole blocks in the device's buffers, others in the cache), in
    /// pieces in any order, each with its offset from `offset`; at most `len` bytes.
    pub(crate) fn read_mapped_in_place(
        &mut self,
        size: u64,
        extents: &[Extent],
        offset: u64,
        len: usize,
        take: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<usize, FsError> {
        if offset >= size {
            return Ok(0);
        }
        let length = (size - offset).min(len as u64) as usize;
        let small = self.is_small(size);
        let mut done = 0;
        while done < length {
            let at = offset + done as u64;
            let logical = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let take_now = (BLOCK_SIZE - within).min(length - done);
            let physical = physical_of(extents, logical);
            let whole = (length - done) / BLOCK_SIZE;
            match physical {
                // Whole blocks of a large file: the physically contiguous run of them
                // straight from the device, not through the cache.
                Some(first) if !small && within == 0 && whole > 0 => {
                    let mut count = 1;
                    while count < whole
                        && physical_of(extents, logical + count as u64)
                            == Some(first + count as u64)
                    {
                        count += 1;
                    }
                    let base = done;
                    let mut shifted = |at: usize, data: &[u8]| take(base + at, data);
                    self.store.read_run_in_place(first, count, &mut shifted)?;
                    done += count * BLOCK_SIZE;
                    continue;
                }
                Some(physical) => {
                    let block = self.store.read_data(physical, small)?;
                    take(
                        done,
                        block.get(within..within + take_now).unwrap_or_default(),
                    );
                }
                None => take(done, &ZEROS[..take_now]),
            }
            done += take_now;
        }
        Ok(length)
    }

    /// The whole file `path`; `NoMemory` when the app cannot hold it (a large file, or a
    /// sparse one up to [`MAX_FILE_SIZE`]: read it a piece at a time with
    /// [`FileSystem::read`] or [`FileSystem::read_at`]).
    pub fn read_all(&mut self, path: &str) -> Result<Vec<u8>, FsError> {
        let size = self.stat(path)?.size;
        let mut contents = try_zeroed(size).ok_or_else(|| FsError::NoMemory {
            what: alloc::format!("reading {path} whole"),
            bytes: size,
        })?;
        let read = self.read(path, 0, &mut contents)?;
        contents.truncate(read);
        Ok(contents)
    }

    /// Sets the size of the file `path` to `length`: shrinking frees the blocks past
    /// the end, growing leaves a hole.
    pub fn truncate(&mut self, path: &str, length: u64) -> Result<(), FsError> {
        self.writable()?;
        let names = parse(path)?;
        let found = self.lookup_file(&names)?;
        if length > MAX_FILE_SIZE {
            return Err(FsError::FileTooLarge(join(&names)));
        }
        if length == found.inode.size {
            return Ok(());
        }
        self.transact(|fs| fs.resize(&names, length))
    }

    /// Removes the file `path` and frees its blocks.
    pub fn unlink(&mut self, path: &str) -> Result<(), FsError> {
        self.remove(path, FileKind::File)
    }

    /// Removes the empty directory `path`.
    pub fn rmdir(&mut self, path: &str) -> Result<(), FsError> {
        self.remove(path, FileKind::Directory)
    }

    /// Moves `from` to `to`, across directories too, in one transaction. An existing
    /// `to` is replaced atomically if it is a file and `from` is a file, or an empty
    /// directory and `from` a directory. A directory cannot move inside itself.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        self.writable()?;
        let source_names = parse(from)?;
        let target_names = parse(to)?;
        let (Some((source_name, source_parent)), Some((target_name, target_parent))) =
            (source_names.split_last(), target_names.split_last())
        else {
            return Err(FsError::Root);
        };
        let source = self.lookup(&source_names)?;
        if source.inode.kind == FileKind::Directory
            && target_names.len() > source_names.len()
            && target_names.starts_with(&source_names)
        {
            return Err(FsError::IntoItself {
                from: join(&source_names),
                to: join(&target_names),
            });
        }
        let parent = self.lookup_directory(target_parent)?;
        if source_names == target_names {
            return Ok(());
        }
        let replaced = self.find_in_directory(&parent.inode, target_name, target_parent)?;
        if let Some(target) = &replaced {
            check_replaceable(&source.inode, &target.inode, &target_names)?;
        }
        self.transact(|fs| {
            if let Some(target) = &replaced {
                fs.free_all_blocks(&target.inode)?;
                let parent = fs.lookup_directory(target_parent)?;
                fs.remove_entry(&parent, target_parent, target_name)?;
            }
            let parent = fs.lookup_directory(source_parent)?;
            let moved = fs.remove_entry(&parent, source_parent, source_name)?;
            let parent = fs.lookup_directory(target_parent)?;
            fs.insert_entry(&parent, target_parent, target_name, moved)
        })
    }

    /// The entries of the directory `path`, sorted by name.
    pub fn list(&mut self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        self.usable()?;
        let names = parse(path)?;
        let directory = self.lookup_directory(&names)?;
        let mut listing: Vec<DirEntry> = self
            .entries(&directory.inode, &names)?
            .into_iter()
            .map(|entry| DirEntry {
                name: entry.name,
                kind: entry.inode.kind,
                size: entry.inode.size,
            })
            .collect();
        listing.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listing)
    }

    /// What is at `path`.
    pub fn stat(&mut self, path: &str) -> Result<Metadata, FsError> {
        self.usable()?;
        let names = parse(path)?;
        let found = self.lookup(&names)?;
        let (extents, _) = self.load_extents(&found.inode)?;
        Ok(Metadata {
            kind: found.inode.kind,
            size: found.inode.size,
            blocks: mapped_blocks(&extents),
            changed: found.inode.changed,
        })
    }

    /// Refuses to go on after a failed write or flush.
    pub(crate) fn usable(&self) -> Result<(), FsError> {
        match &self.failed {
            Some(message) => Err(FsError::Disk(alloc::format!(
                "stopped after an earlier disk error ({message}); mount again"
            ))),
            None => Ok(()),
        }
    }

    /// Refuses to change anything when mounted read-only (or after a failed write): the
    /// first check of every call that changes the file system, so that a read-only
    /// mount answers `ReadOnly`, never what the change would have met (a damaged mount
    /// counts no free block: `NoSpace`), nor `Ok` for a change that changes nothing.
    fn writable(&self) -> Result<(), FsError> {
        self.usable()?;
        match &self.read_only {
            Some(why) => Err(FsError::ReadOnly(why.clone())),
            None => Ok(()),
        }
    }

    /// Whether the file system is mounted read-only ([`FileSystem::mount_read_only`]),
    /// because its check found damage or the write of its journal home failed.
    pub fn is_read_only(&self) -> bool {
        self.read_only.is_some()
    }

    /// Runs `operation` all or nothing: adds what it staged to the running
    /// transaction if it succeeds (and commits as the policy says), forgets it (and the
    /// blocks it allocated or freed) if it fails, leaving the running transaction as it
    /// was (unless a write or flush failed: the file system has stopped then).
    pub(crate) fn transact<T>(
        &mut self,
        mut operation: impl FnMut(&mut Self) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        self.writable()?;
        let free_before = self.free_blocks;
        let result = self
            .stage_for_running(&mut operation, free_before)
            .and_then(|(value, joined)| self.join_running(joined).map(|()| value));
        if result.is_err() {
            self.store.drop_staged();
            self.free_blocks = free_before;
        }
        result
    }

    /// Runs `operation` until what it stages fits in the running transaction, so that
    /// the inodes it writes are stamped with the number of the transaction that will
    /// hold them: if its blocks and the running transaction's together would not fit
    /// the journal, what it staged is forgotten (the free count goes back to
    /// `free_before`), the running transaction is committed and the operation runs
    /// again, now in the next one. `TooLarge` if its blocks alone cannot fit. With its
    /// value, the running transaction's blocks once the staged ones join it.
    fn stage_for_running<T>(
        &mut self,
        operation: &mut impl FnMut(&mut Self) -> Result<T, FsError>,
        free_before: u64,
    ) -> Result<(T, usize), FsError> {
        loop {
            let value = operation(self)?;
            self.check_fits_journal(self.store.staged.len() as u64)?;
            let joined = self.joined_blocks();
            if transaction_length(joined as u64) <= self.journal.capacity() {
                return Ok((value, joined));
            }
            // Never loops again: the running transaction is empty after the commit, and
            // the staged blocks alone fit.
            self.store.drop_staged();
            self.free_blocks = free_before;
            self.commit_running()?;
            // The commit stands, but a checkpoint after it may have stopped the file
            // system: then this operation is refused, not run on it.
            self.usable()?;
        }
    }

    /// `TooLarge` if a transaction of `targets` blocks cannot fit the journal.
    fn check_fits_journal(&self, targets: u64) -> Result<(), FsError> {
        let capacity = self.journal.capacity();
        let needed = transaction_length(targets);
        if needed > capacity {
            return Err(FsError::TooLarge { needed, capacity });
        }
        Ok(())
    }

    /// Blocks in the running transaction once the staged ones have joined it.
    fn joined_blocks(&self) -> usize {
        let running = &self.store.running;
        let staged = &self.store.staged;
        running.len() + staged.keys().filter(|n| !running.contains_key(n)).count()
    }

    /// Moves the staged blocks (which [`FileSystem::stage_for_running`] has made fit)
    /// into the running transaction, committed afterwards if the policy commits each
    /// operation or it has grown to [`MAX_RUNNING_BLOCKS`] (`joined` blocks, as
    /// [`FileSystem::joined_blocks`] counted them). What that commit reads (the
    /// bitmap, to find the fresh blocks) is read before the blocks move, so that once
    /// they have moved only a write or flush error, which stops the file system, can
    /// fail it: an operation refused otherwise is left out whole.
    ///
    /// A commit that cannot get its memory (`NoMemory`, nothing committed) puts the
    /// running transaction back as it was before the blocks moved: the operation is
    /// left out whole and the file system stays usable.
    fn join_running(&mut self, joined: usize) -> Result<(), FsError> {
        if self.store.staged.is_empty() {
            return Ok(());
        }
        self.journal.check_sequence_room()?;
        let commit = self.policy == CommitPolicy::EachOperation || joined >= MAX_RUNNING_BLOCKS;
        if !commit {
            self.store.absorb_staged();
            self.version += 1;
            return Ok(());
        }
        let fresh = self.fresh_blocks(true)?;
        let mut displaced = Displaced::new();
        self.store.absorb_staged_noting(&mut displaced);
        self.version += 1;
        let result = self.commit_running_with(fresh);
        if let Err(FsError::NoMemory { .. }) = result {
            self.store.restore_running(displaced);
        }
        result
    }

    /// Writes the running transaction to the journal as one transaction and flushes
    /// (checkpointing first if the journal has no room left for it, or if its blocks
    /// would take the pending ones past [`FileSystem::set_max_pending_blocks`]'s bound;
    /// after, if they alone do); its blocks become pending (written home at the next
    /// checkpoint).
    fn commit_running(&mut self) -> Result<(), FsError> {
        if self.store.running.is_empty() {
            return Ok(());
        }
        let fresh = self.fresh_blocks(false)?;
        self.commit_running_with(fresh)
    }

    /// [`FileSystem::commit_running`] with the fresh blocks of the running transaction
    /// (see [`FileSystem::fresh_blocks`]) found already: fails only on a write or flush
    /// error before the commit, which stops the file system, or when a step cannot get
    /// its memory (`NoMemory`, had before that step writes anything): then nothing is
    /// committed, the running transaction holds what it held but its fresh blocks
    /// already written home, and the file system goes on. A checkpoint after the
    /// commit that fails stops it too (but for `NoMemory`), but the transaction is
    /// committed: `Ok`.
    fn commit_running_with(&mut self, fresh: Vec<u64>) -> Result<(), FsError> {
        // Never empty here: commit_running checked, join_running has just absorbed.
        self.store.seal_running();
        if self.rebuilding {
            return self.write_rebuilt_in_place();
        }
        self.write_fresh_in_place(fresh)?;
        if self.store.running.is_empty() {
            return Ok(());
        }
        let length = transaction_length(self.store.running.len() as u64);
        if !self.journal.has_room_for(length) || self.pending_with_running() > self.max_pending {
            self.write_home()?;
        }
        let (position, sequence) = (self.journal.position, self.journal.next_sequence);
        let result = write_transaction(
            &mut self.store.disk,
            position,
            sequence,
            &self.store.running,
        )
        .and_then(|_| flush_disk(&mut self.store.disk));
        self.stop_on_error(result)?;
        let running = core::mem::take(&mut self.store.running);
        self.store.pending.extend(running);
        #[cfg(test)]
        crate::tests::pending_watch::saw(self.store.pending.len());
        self.journal.position += length;
        self.journal.next_sequence += 1;
        self.journal.transactions += 1;
        if self.store.pending.len() > self.max_pending {
            // A transaction larger than the bound alone: home now, not held until the
            // next commit. It is committed whatever the checkpoint meets: a failure
            // has stopped the file system (stop_on_error), refusing what comes next,
            // but for NoMemory, which wrote nothing and leaves it pending till the next.
            let _stopped_on_failure = self.write_home();
        }
        Ok(())
    }

    /// Pending blocks once the running transaction's have joined them (a block in both
    /// counted once).
    fn pending_with_running(&self) -> usize {
        let pending = &self.store.pending;
        let running = self.store.running.keys();
        pending.len()
            + running
                .filter(|number| !pending.contains_key(number))
                .count()
    }

    /// Ordered writes: when at least [`MIN_IN_PLACE_BLOCKS`] blocks of the running
    /// transaction are `fresh` (free as the last commit left the bitmap, and with no
    /// image in the journal that a replay or checkpoint would write over them), writes
    /// them home now and flushes, and takes them out of the transaction, whose
    /// metadata then publishes them. Until that commit they are free blocks, so a crash
    /// before it loses nothing; after it they are durable, since the flush came first.
    fn write_fresh_in_place(&mut self, fresh: Vec<u64>) -> Result<(), FsError> {
        if fresh.len() < MIN_IN_PLACE_BLOCKS {
            return Ok(());
        }
        let running = &self.store.running;
        let result = write_sorted(
            &mut self.store.disk,
            fresh.len(),
            fresh
                .iter()
                .filter_map(|number| running.get(number).map(|block| (*number, block))),
        )
        .and_then(|()| flush_disk(&mut self.store.disk));
        self.stop_on_error(result)?;
        // Now clean, they stay readable from the cache (a new directory block is
        // changed again by the next entries).
        for number in fresh {
            if let Some(block) = self.store.running.remove(&number) {
                self.store.cache.insert_written(number, block);
            }
        }
        Ok(())
    }

    /// A commit while repair rebuilds ([`FileSystem::for_rebuild`]): writes the running
    /// transaction's blocks home, but block 0, which stays in it, and flushes. None of
    /// them is a block the old tree uses (nor its superblock), so a crash leaves it as
    /// it was.
    fn write_rebuilt_in_place(&mut self) -> Result<(), FsError> {
        let result = write_sorted(
            &mut self.store.disk,
            self.store.running.len(),
            self.store
                .running
                .iter()
                .filter(|(number, _)| **number != 0)
                .map(|(number, block)| (*number, block)),
        )
        .and_then(|()| flush_disk(&mut self.store.disk));
        self.stop_on_error(result)?;
        let superblock = self.store.running.remove(&0);
        let running = core::mem::take(&mut self.store.running);
        for (number, block) in running {
            self.store.cache.insert_written(number, block);
        }
        self.store
            .running
            .extend(superblock.map(|block| (0, block)));
        Ok(())
    }

    /// The blocks of the running transaction (and, when `with_staged`, of the
    /// operation in progress, about to join it) that are fresh (see
    /// [`FileSystem::write_fresh_in_place`]), in increasing order. Reads the bitmap as
    /// the last commit left it: the one step of a commit that can fail on a read.
    fn fresh_blocks(&mut self, with_staged: bool) -> Result<Vec<u64>, FsError> {
        if self.rebuilding {
            // Every block goes home in place then: there is no bitmap to read yet.
            return Ok(Vec::new());
        }
        let staged = with_staged.then_some(&self.store.staged);
        let mut candidates: Vec<u64> = self
            .store
            .running
            .keys()
            .chain(staged.into_iter().flat_map(|staged| staged.keys()))
            .copied()
            .filter(|number| {
                self.layout.in_data(*number, 1) && !self.store.pending.contains_key(number)
            })
            .collect();
        if with_staged {
            candidates.sort_unstable();
            candidates.dedup();
        }
        let mut fresh = Vec::new();
        let layout = &self.layout;
        // The candidates of one bitmap block together, read once (in place, no copy).
        for group in candidates
            .chunk_by(|a, b| bitmap_position(layout, *a).0 == bitmap_position(layout, *b).0)
        {
            // chunk_by never yields an empty group.
            let bitmap = bitmap_position(layout, group[0]).0;
            self.store.with_committed_metadata(bitmap, |block, trust| {
                check_header_as(block, BITMAP_MAGIC, bitmap, "bitmap block", trust)?;
                fresh.extend(group.iter().copied().filter(|&number| {
                    let (_, byte, bit) = bitmap_position(layout, number);
                    !bit_is_set(block, byte, bit)
                }));
                Ok(())
            })?;
        }
        Ok(fresh)
    }

    /// The checkpoint: writes every pending block home, flushes, records the journal
    /// as empty and flushes again. Refused once the file system has stopped.
    fn write_home(&mut self) -> Result<(), FsError> {
        self.usable()?;
        if self.journal.is_empty() && self.journal.transactions == 0 {
            return Ok(());
        }
        let result = self.write_pending_home();
        self.stop_on_error(result)?;
        let pending = core::mem::take(&mut self.store.pending);
        for (number, block) in &pending {
            self.store.cache.refresh(*number, block);
        }
        self.journal = Journal::empty(&self.layout, self.journal.next_sequence);
        Ok(())
    }

    /// [`FileSystem::write_home`]'s writes and flushes. Has the header's block before
    /// it writes anything: `NoMemory` without it (as without the run's buffer of
    /// `write_sorted`), nothing written.
    fn write_pending_home(&mut self) -> Result<(), FsError> {
        let header = encode_header(self.journal.start, self.journal.next_sequence)?;
        write_sorted(
            &mut self.store.disk,
            self.store.pending.len(),
            self.store
                .pending
                .iter()
                .map(|(number, block)| (*number, block)),
        )?;
        flush_disk(&mut self.store.disk)?;
        write_disk(&mut self.store.disk, self.journal.start, &header)?;
        flush_disk(&mut self.store.disk)
    }

    /// Remembers a failed write or flush. `NoMemory` stops nothing: every step that
    /// returns it has had its memory before writing anything, so the disk is as it was.
    fn stop_on_error(&mut self, result: Result<(), FsError>) -> Result<(), FsError> {
        if let Err(error) = &result
            && !matches!(error, FsError::NoMemory { .. })
        {
            self.failed = Some(alloc::format!("{error}"));
            self.store.cache.clear();
        }
        result
    }

    /// Creates an empty file or directory at `path`.
    fn make(&mut self, path: &str, kind: FileKind) -> Result<(), FsError> {
        self.writable()?;
        let names = parse(path)?;
        let Some((name, parent_names)) = names.split_last() else {
            return Err(FsError::Exists(String::from("/")));
        };
        let parent = self.lookup_directory(parent_names)?;
        if self
            .find_in_directory(&parent.inode, name, parent_names)?
            .is_some()
        {
            return Err(FsError::Exists(join(&names)));
        }
        self.transact(|fs| {
            let inode = Inode::new(kind, fs.journal.next_sequence);
            fs.insert_entry(&parent, parent_names, name, inode)
        })
    }

    /// Removes the file (or empty directory) at `path`.
    fn remove(&mut self, path: &str, kind: FileKind) -> Result<(), FsError> {
        self.writable()?;
        let names = parse(path)?;
        let Some((name, parent_names)) = names.split_last() else {
            return Err(FsError::Root);
        };
        let found = self.lookup(&names)?;
        match (kind, found.inode.kind) {
            (FileKind::File, FileKind::Directory) => {
                return Err(FsError::IsADirectory(join(&names)));
            }
            (FileKind::Directory, FileKind::File) => {
                return Err(FsError::NotADirectory(join(&names)));
            }
            (FileKind::Directory, FileKind::Directory) if found.inode.size > 0 => {
                return Err(FsError::NotEmpty(join(&names)));
            }
            _ => {}
        }
        self.transact(|fs| {
            fs.free_all_blocks(&found.inode)?;
            let parent = fs.lookup_directory(parent_names)?;
            fs.remove_entry(&parent, parent_names, name).map(|_| ())
        })
    }

    /// Runs the allocations of a write of bytes `offset..end` as
    /// [`FileSystem::write`] will make them, then forgets them: `NoSpace` (before
    /// anything is committed) if the disk cannot hold the data blocks and the overflow
    /// extent blocks the file's extents will take, `TooLarge` if a piece of one block
    /// cannot fit the journal. See [`FileSystem::rehearse_pieces`].
    fn rehearse_write(
        &mut self,
        names: &[&str],
        offset: u64,
        end: u64,
        piece_blocks: u64,
    ) -> Result<(), FsError> {
        self.writable()?;
        let free_before = self.free_blocks;
        let mut displaced = Displaced::new();
        let result = self.rehearse_pieces(names, offset, end, piece_blocks, &mut displaced);
        self.store.drop_staged();
        self.store.restore_running(displaced);
        self.free_blocks = free_before;
        result
    }

    /// The pieces of [`FileSystem::rehearse_write`], cut as [`FileSystem::write`]
    /// cuts them: `piece_blocks` blocks each, halved (and the piece's allocations
    /// forgotten) while a piece's transaction, the metadata its
    /// [`FileSystem::map_piece`] stages and its data blocks, would not fit the journal.
    /// Each piece's blocks join the running transaction, as its commit would leave
    /// them for the next piece; what they displaced there is noted in `displaced`. The
    /// halved pieces place their overflow extent blocks between other data blocks than
    /// whole ones would, which can split one more run of the file into two extents.
    fn rehearse_pieces(
        &mut self,
        names: &[&str],
        offset: u64,
        end: u64,
        mut piece_blocks: u64,
        displaced: &mut Displaced,
    ) -> Result<(), FsError> {
        let mut at = offset;
        while at < end {
            let free_before = self.free_blocks;
            let piece_end = piece_end(at, piece_blocks, end);
            self.map_piece(names, at, piece_end)?;
            let data_blocks = piece_end.div_ceil(BLOCK) - at / BLOCK;
            match self.check_fits_journal(self.store.staged.len() as u64 + data_blocks) {
                Ok(()) => {
                    self.store.absorb_staged_noting(displaced);
                    at = piece_end;
                }
                Err(FsError::TooLarge { .. }) if piece_blocks > 1 => {
                    self.store.drop_staged();
                    self.free_blocks = free_before;
                    piece_blocks /= 2;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// The mapping half of a piece of a write: maps the blocks of bytes `offset..end`
    /// (allocating the unmapped ones near their neighbours), grows the size to `end`
    /// and stages the inode with its extents. Returns the extents before and after, and
    /// the size before.
    fn map_piece(
        &mut self,
        names: &[&str],
        offset: u64,
        end: u64,
    ) -> Result<(Vec<Extent>, Vec<Extent>, u64), FsError> {
        let found = self.lookup_file(names)?;
        let mut inode = found.inode;
        let (before, _) = self.load_extents(&inode)?;
        let mut extents = before.clone();
        let (first, last_end) = (offset / BLOCK, end.div_ceil(BLOCK));
        for (start, count) in unmapped_runs(&extents, first, last_end) {
            let mut logical = start;
            while logical < start + count {
                let goal = self.data_goal(&extents, logical, &found.location);
                let (physical, got) = self.allocate_run(goal, start + count - logical)?;
                crate::extents::map(&mut extents, logical, physical, got);
                logical += got;
            }
        }
        let old_size = inode.size;
        inode.size = inode.size.max(end);
        let goal = self.goal_near(&found.location);
        self.store_extents(&mut inode, extents.clone(), goal)?;
        self.write_inode(&found.location, inode)?;
        Ok((before, extents, old_size))
    }

    /// One transaction of a write: maps the blocks of `offset..offset + data.len()`
    /// ([`FileSystem::map_piece`]), writes them and grows the size. `NoMemory` when the
    /// app cannot get the new images of its data blocks (up to the journal's size):
    /// the transaction then fails whole, nothing of it committed.
    fn write_piece(&mut self, names: &[&str], offset: u64, data: &[u8]) -> Result<(), FsError> {
        let end = offset + data.len() as u64;
        let (before, extents, old_size) = self.map_piece(names, offset, end)?;
        let (first, last_end) = (offset / BLOCK, end.div_ceil(BLOCK));
        let no_memory = || FsError::NoMemory {
            what: alloc::format!("writing {} ({} blocks)", join(names), last_end - first),
            bytes: (last_end - first) * BLOCK,
        };
        for logical in first..last_end {
            let Some(physical) = physical_of(&extents, logical) else {
                return Err(FsError::corrupt(0, "a block just mapped is missing"));
            };
            let block_start = logical * BLOCK;
            let from = offset.max(block_start);
            let to = end.min(block_start + BLOCK);
            let source = data
                .get((from - offset) as usize..(to - offset) as usize)
                .unwrap_or_default();
            if to - from == BLOCK {
                let image = try_block(source).ok_or_else(no_memory)?;
                self.store.stage(physical, image);
                continue;
            }
            let mut image = if physical_of(&before, logical).is_none() {
                try_block(&ZEROS).ok_or_else(no_memory)?
            } else {
                let small = self.is_small(old_size);
                self.store
                    .read_data(physical, small)
                    .map_err(|error| match error {
                        FsError::NoMemory { .. } => no_memory(),
                        error => error,
                    })?
            };
            if let Some(target) =
                image.get_mut((from - block_start) as usize..(to - block_start) as usize)
            {
                target.copy_from_slice(source);
            }
            self.store.stage(physical, image);
        }
        Ok(())
    }

    /// Where a new block for logical block `logical` should go: after the block
    /// before it, else after the file's last block before it, else where
    /// [`FileSystem::replace_after`] or [`FileSystem::write_after`] places it, else after the directory block holding
    /// the file's entry.
    fn data_goal(
        &self,
        extents: &[crate::format::Extent],
        logical: u64,
        location: &crate::dir::Location,
    ) -> u64 {
        extents
            .iter()
            .rev()
            .find(|extent| extent.logical < logical)
            .map_or_else(
                || self.placement.unwrap_or_else(|| self.goal_near(location)),
                |extent| extent.physical_end(),
            )
    }

    /// Sets the file's size to `length` in the transaction being built.
    fn resize(&mut self, names: &[&str], length: u64) -> Result<(), FsError> {
        let found = self.lookup_file(names)?;
        let mut inode = found.inode;
        let (mut extents, _) = self.load_extents(&inode)?;
        if length < inode.size {
            for (start, count) in cut(&mut extents, length.div_ceil(BLOCK)) {
                self.free_run(start, count)?;
            }
            let tail = (length % BLOCK) as usize;
            if let (true, Some(physical)) = (tail != 0, physical_of(&extents, length / BLOCK)) {
                let small = self.is_small(inode.size);
                let mut image = self.store.read_data(physical, small)?;
                if let Some(rest) = image.get_mut(tail..) {
                    rest.fill(0);
                }
                self.store.stage(physical, image);
            }
        }
        inode.size = length;
        let goal = self.goal_near(&found.location);
        self.store_extents(&mut inode, extents, goal)?;
        self.write_inode(&found.location, inode)
    }
}

/// The layout of the file system on `disk` and its journal's committed transactions,
/// read without writing anything. The superblock gives the layout, unless a crash tore
/// its write at a checkpoint ([`Superblock::is_torn`]), or block 0 cannot be read (a
/// sector a crash tore may read so), while the journal still holds its image (it does
/// until the checkpoint has written every block home and flushed): then the layout is
/// the disk size's, which a sound superblock's must equal anyway, and the superblock
/// read through the replay is the journal's (mount writes it home). A torn superblock
/// the journal holds no sound image of is refused as damaged, as before, and an
/// unreadable one fails with the disk's error; a journal that cannot be read (the disk
/// fails, or the app lacks the memory to hold it) fails as it does under a sound
/// superblock.
pub(crate) fn layout_and_journal<D: BlockStore>(disk: &mut D) -> Result<(Layout, Replay), FsError> {
    let (layout, torn) = match home_superblock(disk)? {
        (layout, Ok(_)) => return Ok((layout, scan(disk, &layout)?)),
        (layout, Err(torn)) => (layout, torn),
    };
    let replay = match scan(disk, &layout) {
        Ok(replay) => replay,
        // A damaged journal holds no sound image of block 0.
        Err(FsError::Corrupt { .. }) => return Err(torn),
        Err(error) => return Err(error),
    };
    match replay.blocks.get(&0) {
        Some(image) if Superblock::decode(image, disk.blocks()).is_ok() => Ok((layout, replay)),
        _ => Err(torn),
    }
}

/// The layout of the file system on `disk` and its superblock as block 0 holds it, or
/// the error that refuses a superblock a crash tore ([`Superblock::is_torn`]) or the
/// disk's error reading block 0, whose layout is then the disk size's (a sound
/// superblock's must equal it). Fails if block 0 holds no superblock, a damaged one not
/// torn, or if the disk is too small for a layout (with the torn superblock's error, or
/// the disk's); a disk of no block at all (an empty image, one under 4 KiB) is
/// `TooSmall` before block 0 is asked for.
pub(crate) fn home_superblock<D: BlockStore>(
    disk: &mut D,
) -> Result<(Layout, Result<Superblock, FsError>), FsError> {
    let blocks = disk.blocks();
    if blocks == 0 {
        return Err(FsError::TooSmall(0));
    }
    let home = match read_disk(disk, 0) {
        Ok(home) => home,
        Err(unreadable) => {
            let layout = Layout::for_disk(blocks).map_err(|_| unreadable.clone())?;
            return Ok((layout, Err(unreadable)));
        }
    };
    match Superblock::decode(&home, blocks) {
        Ok(superblock) => Ok((superblock.layout, Ok(superblock))),
        Err(torn) if Superblock::is_torn(&home) => {
            let layout = Layout::for_disk(blocks).map_err(|_| torn.clone())?;
            Ok((layout, Err(torn)))
        }
        Err(error) => Err(error),
    }
}

/// Where the piece of a write from byte `at` ends: `piece_blocks` blocks on from the
/// block holding `at`, or at the write's `end`.
fn piece_end(at: u64, piece_blocks: u64, end: u64) -> u64 {
    (at / BLOCK)
        .saturating_add(piece_blocks)
        .saturating_mul(BLOCK)
        .min(end)
}

/// Whether `source` may replace `target` (at `path`) in a rename.
fn check_replaceable(source: &Inode, target: &Inode, path: &[&str]) -> Result<(), FsError> {
    match (source.kind, target.kind) {
        (FileKind::File, FileKind::File) => Ok(()),
        (FileKind::Directory, FileKind::Directory) if target.size == 0 => Ok(()),
        (FileKind::Directory, FileKind::Directory) => Err(FsError::NotEmpty(join(path))),
        (FileKind::File, FileKind::Directory) => Err(FsError::IsADirectory(join(path))),
        (FileKind::Directory, FileKind::File) => Err(FsError::NotADirectory(join(path))),
    }
}

/// Writes zeros over blocks `first..end`, in runs of at most [`RUN_BLOCKS`].
fn zero_blocks<D: BlockStore>(disk: &mut D, first: u64, end: u64) -> Result<(), FsError> {
    let blocks = end.saturating_sub(first).min(RUN_BLOCKS as u64) as usize;
    let zeros = alloc::vec![0; blocks * BLOCK_SIZE];
    let mut at = first;
    while at < end {
        let count = (end - at).min(RUN_BLOCKS as u64) as usize;
        write_disk_run(
            disk,
            at,
            zeros.get(..count * BLOCK_SIZE).unwrap_or_default(),
        )?;
        at += count as u64;
    }
    Ok(())
}

/// Bitmap block `number` of a fresh file system: the superblock, journal and bitmap
/// marked used, every data block free.
fn initial_bitmap(layout: &Layout, number: u64) -> Block {
    let mut block = zeroed();
    let index = number - layout.bitmap_start;
    let first = index * BITS_PER_BITMAP_BLOCK;
    let end = layout.data_start.min(first + BITS_PER_BITMAP_BLOCK);
    for used in first..end {
        let (_, byte, bit) = bitmap_position(layout, used);
        set_bit(&mut block, byte, bit, true);
    }
    seal(&mut block, BITMAP_MAGIC, number);
    block
}
