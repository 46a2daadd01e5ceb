//! The write-ahead journal: physical block journaling of every block an operation
//! changes, metadata and file data alike.
//!
//! The journal region starts with a header block holding the sequence number of the
//! next transaction, all of it in the block's first 512-byte sector with its own CRC,
//! so that a checkpoint's rewrite of it torn by a crash leaves the old header or the
//! new one; transactions follow it back to back from the region's second
//! block. A transaction of N blocks takes ceil(N / 507) descriptor blocks (the
//! sequence number, N, the descriptor's index and up to 507 home block numbers), the N
//! new block images in descriptor order, and a commit block (the sequence number, N
//! and a CRC-32C over the descriptor blocks and images: see `rexo_crc` for why not the
//! CRC-32 that seals each block). Replay starts at the second
//! block with the header's sequence number and applies transactions while each one is
//! complete, in sequence and its CRC verifies; the first that is not ends the log. A
//! transaction that cannot fit the journal is corrupt, refused before anything is
//! allocated for it; one whose images the app has not the memory to hold is
//! `FsError::NoMemory` once its CRC verifies (a torn one still ends the log; reading
//! takes a buffer of up to 1 MiB, whose lack is `NoMemory` too).
//!
//! Images are the bytes of files as well as metadata, chosen by whoever writes a file,
//! and the log restarts at the second block after each checkpoint, so a later, shorter
//! transaction leaves older images where the scan looks for the next descriptor. An
//! image beginning with the journal's magic prefix (every magic the scan accepts
//! begins with it) is therefore escaped, as jbd2 escapes its own: written with that
//! prefix zeroed and [`ESCAPED`] set in its home block number in the descriptor, and
//! given the prefix back on replay, so that no image reads as a descriptor or commit
//! block. An escape rather than a secret in every descriptor and commit block: it
//! needs nothing kept from whoever reads the disk, and no change of format, since the
//! flag is a bit that home block numbers (below the disk's size) never set, so a
//! journal written before it replays unchanged.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use rexo_crc::Crc32;

use crate::disk::{BLOCK_SIZE, BlockStore};
use crate::error::FsError;
use crate::format::{
    BODY_AT, Block, COMMIT_MAGIC, CRC_AT, DESCRIPTOR_MAGIC, JOURNAL_HEADER_MAGIC, Layout,
    SECTOR_CRC_AT, ZEROS, check_header, check_in_first_sector, check_zero, copy_to_change, get_u32,
    get_u64, put, seal, seal_in_first_sector, try_block, zeroed,
};
use crate::store::{RUN_BLOCKS, read_disk, read_disk_run, write_sorted};

/// Where a descriptor's or commit block's fields are.
const SEQUENCE_AT: usize = BODY_AT;
const TOTAL_AT: usize = 24;
const INDEX_AT: usize = 28;
const COMMIT_CRC_AT: usize = 28;
const TARGETS_AT: usize = 32;
/// The first bytes of every magic the scan accepts (the header's, a descriptor's, a
/// commit block's): an image beginning with them is escaped.
const JOURNAL_MAGIC_PREFIX: &[u8] = b"RXFS-J";
/// Set in a descriptor's home block number whose image began with
/// [`JOURNAL_MAGIC_PREFIX`] and is written with those bytes zeroed. A home block number
/// is below the disk's size, so writers before the escape never set it.
const ESCAPED: u64 = 1 << 63;
/// Home block numbers one descriptor block lists.
pub(crate) const TARGETS_PER_DESCRIPTOR: u64 = ((CRC_AT - TARGETS_AT) / 8) as u64;

/// Journal blocks a transaction of `targets` blocks takes.
pub(crate) fn transaction_length(targets: u64) -> u64 {
    targets.div_ceil(TARGETS_PER_DESCRIPTOR) + targets + 1
}

/// Where the journal writes next.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Journal {
    /// The header block.
    pub(crate) start: u64,
    /// The block past the region.
    pub(crate) end: u64,
    /// Where the next transaction goes.
    pub(crate) position: u64,
    /// The next transaction's sequence number.
    pub(crate) next_sequence: u64,
    /// Transactions committed since the journal was last emptied.
    pub(crate) transactions: u64,
}

impl Journal {
    /// An empty journal in `layout` whose next transaction is `next_sequence`.
    pub(crate) fn empty(layout: &Layout, next_sequence: u64) -> Self {
        Self {
            start: layout.journal_start,
            end: layout.journal_end(),
            position: layout.journal_start + 1,
            next_sequence,
            transactions: 0,
        }
    }

    /// Journal blocks one transaction may take (all but the header).
    pub(crate) fn capacity(&self) -> u64 {
        self.end - self.start - 1
    }

    /// Whether a transaction of `length` journal blocks fits after those written.
    pub(crate) fn has_room_for(&self, length: u64) -> bool {
        self.position + length <= self.end
    }

    /// Whether no transaction has been written since the journal was last emptied.
    pub(crate) fn is_empty(&self) -> bool {
        self.position == self.start + 1
    }

    /// Refuses, as damage, a change the journal could not commit: its next sequence
    /// number's successor, which the checkpoint after that commit writes into the
    /// header, must stay below [`MAX_SEQUENCE`] for the disk to mount again (only a
    /// crafted disk comes near it: a transaction a nanosecond for 292 years).
    pub(crate) fn check_sequence_room(&self) -> Result<(), FsError> {
        if may_commit(self.next_sequence) {
            return Ok(());
        }
        let what = format!("journal sequence number {} is the last", self.next_sequence);
        Err(FsError::corrupt(self.start, what))
    }
}

/// The journal header block saying the next transaction is `sequence`. All of it is in
/// its first 512-byte sector ([`seal_in_first_sector`]): a checkpoint rewrites it in
/// place, and a crash tearing that write on a disk of 512-byte sectors leaves the old
/// header (the journal replayed again, its blocks already home) or the new one.
/// `NoMemory` when the app cannot get the block: a checkpoint has it before it writes
/// anything.
pub(crate) fn encode_header(start: u64, sequence: u64) -> Result<Block, FsError> {
    let mut block = copy_to_change(&ZEROS, start)?;
    put(&mut block[..], SEQUENCE_AT, &sequence.to_le_bytes());
    seal_in_first_sector(&mut block, JOURNAL_HEADER_MAGIC, start);
    Ok(block)
}

/// Sequence numbers stay below this (2^63: a transaction a nanosecond for 292 years),
/// so counting on from one read off the disk cannot overflow.
const MAX_SEQUENCE: u64 = 1 << 63;

/// Whether a commit may take `sequence`: the checkpoint after it writes
/// `sequence + 1` into the header, which must stay below [`MAX_SEQUENCE`] for the disk
/// to mount again.
fn may_commit(sequence: u64) -> bool {
    sequence < MAX_SEQUENCE - 1
}

/// The sequence number in the journal header block `start`.
pub(crate) fn decode_header(block: &Block, start: u64) -> Result<u64, FsError> {
    check_in_first_sector(block, JOURNAL_HEADER_MAGIC, start, "journal header")?;
    check_zero(
        &block[..],
        SEQUENCE_AT + 8..SECTOR_CRC_AT,
        start,
        "journal header's reserved bytes",
    )?;
    let sequence = get_u64(&block[..], SEQUENCE_AT);
    if sequence >= MAX_SEQUENCE {
        return Err(FsError::corrupt(
            start,
            format!("journal sequence number {sequence} out of range"),
        ));
    }
    Ok(sequence)
}

/// The first sequence number past every one the journal of `layout` on `disk` holds
/// or handed out as a change stamp, and past `newest_stamp` (the largest the damaged
/// tree holds), for repair, which empties the journal: the header's plus the blocks
/// after it (a transaction takes three at least, so none in the log reaches it, nor
/// any stamp one left on the disk; the scan's next number would not do after a repair
/// cut by a crash once the log's transactions were home and it was zeroed, nor past a
/// damaged transaction, whose number may have been seen), or the stamp's next if
/// larger. The header's counts as 1 when it does not read as one, or when it leaves
/// no room for the rebuild's commit, and a stamp that leaves none is passed over (a
/// damaged inode's, which would otherwise send every stamp back to 1): the
/// rebuild commits its superblock as that number and the checkpoint after it writes
/// the next one into the header, which must stay below [`MAX_SEQUENCE`] for the
/// repaired disk to mount.
pub(crate) fn sequence_past_journal<D: BlockStore>(
    disk: &mut D,
    layout: &Layout,
    newest_stamp: u64,
) -> Result<u64, FsError> {
    let leaves_room = |next: &u64| may_commit(*next);
    let header = read_disk(disk, layout.journal_start)?;
    let past_journal = decode_header(&header, layout.journal_start)
        .ok()
        .and_then(|sequence| sequence.checked_add(layout.journal_blocks))
        .filter(leaves_room)
        .unwrap_or(1);
    Ok(newest_stamp
        .checked_add(1)
        .filter(leaves_room)
        .map_or(past_journal, |past_stamp| past_stamp.max(past_journal)))
}

/// Writes the transaction `staged` (home block number to new image) as number
/// `sequence` at `position`; the caller flushes. Returns the journal blocks written.
/// Every block it writes (descriptors, escaped images, commit block, the run's buffer)
/// is had before the first write: `NoMemory` without them, nothing written.
pub(crate) fn write_transaction<D: BlockStore>(
    disk: &mut D,
    position: u64,
    sequence: u64,
    staged: &BTreeMap<u64, Block>,
) -> Result<u64, FsError> {
    let total = staged.len() as u64;
    let descriptors = total.div_ceil(TARGETS_PER_DESCRIPTOR) as usize;
    let no_memory = || FsError::NoMemory {
        what: format!("committing journal transaction {sequence} ({total} blocks)"),
        bytes: transaction_length(total) * BLOCK_SIZE as u64,
    };
    let mut targets: Vec<u64> = Vec::new();
    let mut images: Vec<Cow<'_, Block>> = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    targets
        .try_reserve_exact(staged.len())
        .and_then(|()| images.try_reserve_exact(staged.len()))
        .and_then(|()| blocks.try_reserve_exact(descriptors))
        .map_err(|_| no_memory())?;
    for (&target, image) in staged {
        if image.starts_with(JOURNAL_MAGIC_PREFIX) {
            let mut escaped = try_block(&image[..]).ok_or_else(no_memory)?;
            escaped[..JOURNAL_MAGIC_PREFIX.len()].fill(0);
            images.push(Cow::Owned(escaped));
            targets.push(target | ESCAPED);
        } else {
            images.push(Cow::Borrowed(image));
            targets.push(target);
        }
    }
    let mut crc = Crc32::castagnoli();
    for (index, chunk) in targets.chunks(TARGETS_PER_DESCRIPTOR as usize).enumerate() {
        let mut descriptor = try_block(&ZEROS).ok_or_else(no_memory)?;
        put(&mut descriptor[..], SEQUENCE_AT, &sequence.to_le_bytes());
        put(&mut descriptor[..], TOTAL_AT, &(total as u32).to_le_bytes());
        put(&mut descriptor[..], INDEX_AT, &(index as u32).to_le_bytes());
        for (slot, target) in chunk.iter().enumerate() {
            put(
                &mut descriptor[..],
                TARGETS_AT + 8 * slot,
                &target.to_le_bytes(),
            );
        }
        seal(&mut descriptor, DESCRIPTOR_MAGIC, position + index as u64);
        crc.update(&descriptor[..]);
        blocks.push(descriptor);
    }
    for image in &images {
        crc.update(&image[..]);
    }
    let at = position + blocks.len() as u64 + total;
    let mut commit = try_block(&ZEROS).ok_or_else(no_memory)?;
    put(&mut commit[..], SEQUENCE_AT, &sequence.to_le_bytes());
    put(&mut commit[..], TOTAL_AT, &(total as u32).to_le_bytes());
    put(&mut commit[..], COMMIT_CRC_AT, &crc.finish().to_le_bytes());
    seal(&mut commit, COMMIT_MAGIC, at);
    // Descriptors, images and commit block are one contiguous run of the journal.
    let all = blocks
        .iter()
        .chain(images.iter().map(|image| &**image))
        .chain(core::iter::once(&commit));
    write_sorted(disk, (at + 1 - position) as usize, (position..).zip(all)).map_err(|error| {
        match error {
            FsError::NoMemory { .. } => no_memory(),
            error => error,
        }
    })?;
    Ok(at + 1 - position)
}

/// What replaying the journal would do.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// The newest committed image of every block the journal holds.
    pub(crate) blocks: BTreeMap<u64, Block>,
    /// Committed transactions found.
    pub(crate) transactions: u64,
    /// The sequence number after the last committed transaction.
    pub(crate) next_sequence: u64,
}

/// Reads the journal of `layout` and collects every committed transaction, without
/// writing anything.
pub(crate) fn scan<D: BlockStore>(disk: &mut D, layout: &Layout) -> Result<Replay, FsError> {
    let header = read_disk(disk, layout.journal_start)?;
    let mut replay = Replay {
        next_sequence: decode_header(&header, layout.journal_start)?,
        ..Replay::default()
    };
    let mut position = layout.journal_start + 1;
    // A transaction numbered past the last a commit may take (a crafted disk's) is
    // not read: replaying it would write MAX_SEQUENCE into the header.
    while may_commit(replay.next_sequence)
        && let Some(committed) = read_transaction(disk, layout, position, replay.next_sequence)?
    {
        for (target, image) in committed.targets.into_iter().zip(committed.images) {
            replay.blocks.insert(target, image);
        }
        position += committed.length;
        replay.next_sequence += 1;
        replay.transactions += 1;
    }
    Ok(replay)
}

/// One committed transaction read back.
struct Committed {
    /// Home block numbers, in order.
    targets: Vec<u64>,
    /// Their images, in the same order.
    images: Vec<Block>,
    /// Journal blocks it takes.
    length: u64,
}

/// A descriptor block read back.
struct Descriptor {
    /// Blocks in the whole transaction.
    total: u64,
    /// Home block numbers this descriptor lists.
    targets: Vec<u64>,
}

/// The descriptor at `position` if it is the `index`th of transaction `sequence`.
fn read_descriptor(block: &Block, position: u64, sequence: u64, index: u64) -> Option<Descriptor> {
    check_header(block, DESCRIPTOR_MAGIC, position, "journal descriptor").ok()?;
    let total = u64::from(get_u32(&block[..], TOTAL_AT));
    let matches = get_u64(&block[..], SEQUENCE_AT) == sequence
        && u64::from(get_u32(&block[..], INDEX_AT)) == index;
    if !matches {
        return None;
    }
    let listed = total
        .saturating_sub(index * TARGETS_PER_DESCRIPTOR)
        .min(TARGETS_PER_DESCRIPTOR);
    let targets = (0..listed as usize)
        .map(|slot| get_u64(&block[..], TARGETS_AT + 8 * slot))
        .collect();
    Some(Descriptor { total, targets })
}

/// The committed transaction `sequence` at `position`, or `None` when the log ends
/// there (no descriptor, a torn transaction, a bad checksum). A transaction whose
/// checksums verify but that names blocks it may not is corruption.
fn read_transaction<D: BlockStore>(
    disk: &mut D,
    layout: &Layout,
    position: u64,
    sequence: u64,
) -> Result<Option<Committed>, FsError> {
    let end = layout.journal_end();
    if position >= end {
        return Ok(None);
    }
    let first = read_disk(disk, position)?;
    let Some(descriptor) = read_descriptor(&first, position, sequence, 0) else {
        return Ok(None);
    };
    let total = descriptor.total;
    let descriptors = total.div_ceil(TARGETS_PER_DESCRIPTOR);
    let length = transaction_length(total);
    if total == 0 || position + length > end {
        return Err(FsError::corrupt(
            position,
            format!("journal transaction {sequence} of {total} blocks does not fit the journal"),
        ));
    }
    let mut crc = Crc32::castagnoli();
    crc.update(&first[..]);
    let mut targets = descriptor.targets;
    for index in 1..descriptors {
        let block = read_disk(disk, position + index)?;
        let Some(next) = read_descriptor(&block, position + index, sequence, index) else {
            return Ok(None);
        };
        if next.total != total {
            return Ok(None);
        }
        crc.update(&block[..]);
        targets.extend(next.targets);
    }
    // The images and the commit block, read in runs. The images are kept in memory, as
    // many as the descriptor says (up to the journal, 64 MiB): when the app cannot get
    // that much, the rest is read for the checksum alone, and a transaction that turns
    // out committed is `NoMemory` (a torn one ends the log as ever), never an abort.
    let commit_at = position + descriptors + total;
    let no_memory = || FsError::NoMemory {
        what: format!("replaying journal transaction {sequence} ({total} blocks)"),
        bytes: total * BLOCK_SIZE as u64,
    };
    let mut images = Vec::new();
    let mut kept_all = images.try_reserve_exact(total as usize).is_ok();
    let mut run = Vec::new();
    run.try_reserve_exact((total as usize + 1).min(RUN_BLOCKS) * BLOCK_SIZE)
        .map_err(|_| no_memory())?;
    let mut commit = zeroed();
    let mut at = position + descriptors;
    while at <= commit_at {
        let count = (commit_at + 1 - at).min(RUN_BLOCKS as u64);
        run.resize(count as usize * BLOCK_SIZE, 0);
        read_disk_run(disk, at, &mut run)?;
        for (number, chunk) in (at..).zip(run.chunks(BLOCK_SIZE)) {
            if number == commit_at {
                commit.copy_from_slice(chunk);
                continue;
            }
            crc.update(chunk);
            if !kept_all {
                continue;
            }
            match try_block(chunk) {
                Some(image) => images.push(image),
                None => {
                    kept_all = false;
                    images = Vec::new();
                }
            }
        }
        at += count;
    }
    let committed = check_header(&commit, COMMIT_MAGIC, commit_at, "journal commit").is_ok()
        && get_u64(&commit[..], SEQUENCE_AT) == sequence
        && u64::from(get_u32(&commit[..], TOTAL_AT)) == total
        && get_u32(&commit[..], COMMIT_CRC_AT) == crc.finish();
    if !committed {
        return Ok(None);
    }
    if let Some(bad) = targets
        .iter()
        .map(|&target| target & !ESCAPED)
        .find(|&target| target >= layout.blocks || (layout.journal_start..end).contains(&target))
    {
        return Err(FsError::corrupt(
            position,
            format!(
                "journal transaction {sequence} writes block {bad}, outside the file system or inside the journal"
            ),
        ));
    }
    if !kept_all {
        return Err(no_memory());
    }
    for (target, image) in targets.iter_mut().zip(&mut images) {
        if *target & ESCAPED == 0 {
            continue;
        }
        *target &= !ESCAPED;
        let prefix = &mut image[..JOURNAL_MAGIC_PREFIX.len()];
        if prefix.iter().any(|&byte| byte != 0) {
            return Err(FsError::corrupt(
                position,
                format!(
                    "journal transaction {sequence} escapes its image of block {target}, which does not begin with zeros"
                ),
            ));
        }
        prefix.copy_from_slice(JOURNAL_MAGIC_PREFIX);
    }
    Ok(Some(Committed {
        targets,
        images,
        length,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryDisk;
    use crate::format::{DIRECTORY_MAGIC, EXTENTS_MAGIC};
    use crate::store::write_disk;
    use crate::tests::app_memory::with_blocks_left;

    fn sealed(magic: [u8; 8], number: u64, fill: u8) -> Block {
        let mut block = zeroed();
        block[100..200].fill(fill);
        seal(&mut block, magic, number);
        block
    }

    #[test]
    fn a_stale_sealed_image_breaks_the_commit() {
        let layout = Layout::for_disk(256).unwrap();
        let mut disk = MemoryDisk::new(256);
        write_disk(&mut disk, 1, &encode_header(1, 7).unwrap()).unwrap();
        let mut staged = BTreeMap::new();
        staged.insert(100, sealed(DIRECTORY_MAGIC, 100, 1));
        staged.insert(101, sealed(EXTENTS_MAGIC, 101, 2));
        assert_eq!(write_transaction(&mut disk, 2, 7, &staged).unwrap(), 4);
        let replay = scan(&mut disk, &layout).unwrap();
        assert_eq!((replay.transactions, replay.next_sequence), (1, 8));
        assert_eq!(replay.blocks, staged);
        // The image of block 100 replaced by another validly sealed block, as a lost
        // write over an older transaction would leave it.
        write_disk(&mut disk, 3, &sealed(DIRECTORY_MAGIC, 100, 9)).unwrap();
        let replay = scan(&mut disk, &layout).unwrap();
        assert_eq!((replay.transactions, replay.next_sequence), (0, 7));
    }

    #[test]
    fn an_image_beginning_with_a_journal_magic_is_escaped_and_replays_byte_for_byte() {
        let layout = Layout::for_disk(256).unwrap();
        for magic in [JOURNAL_HEADER_MAGIC, DESCRIPTOR_MAGIC, COMMIT_MAGIC] {
            assert!(
                magic.starts_with(JOURNAL_MAGIC_PREFIX),
                "every magic the scan accepts"
            );
            let mut disk = MemoryDisk::new(256);
            write_disk(&mut disk, 1, &encode_header(1, 7).unwrap()).unwrap();
            // Block 100's image is written at journal block 3, as that block sealed: the
            // descriptor, header or commit the scan would take there.
            let mut staged = BTreeMap::new();
            staged.insert(100, sealed(magic, 3, 1));
            staged.insert(101, sealed(EXTENTS_MAGIC, 101, 2));
            assert_eq!(write_transaction(&mut disk, 2, 7, &staged).unwrap(), 4);
            let written = read_disk(&mut disk, 3).unwrap();
            assert_eq!(written[..6], [0; 6], "{magic:?} is escaped in the journal");
            assert_eq!(written[6..], staged[&100][6..]);
            assert_eq!(read_disk(&mut disk, 4).unwrap()[..], staged[&101][..]);
            let replay = scan(&mut disk, &layout).unwrap();
            assert_eq!((replay.transactions, replay.next_sequence), (1, 8));
            assert_eq!(replay.blocks, staged, "{magic:?} replays byte for byte");
        }
    }

    #[test]
    fn an_escaped_image_that_does_not_begin_with_zeros_is_corrupt() {
        let layout = Layout::for_disk(256).unwrap();
        let mut disk = MemoryDisk::new(256);
        write_disk(&mut disk, 1, &encode_header(1, 7).unwrap()).unwrap();
        let staged = BTreeMap::from([(100, sealed(EXTENTS_MAGIC, 100, 1))]);
        write_transaction(&mut disk, 2, 7, &staged).unwrap();
        // The descriptor says block 100's image is escaped, and the CRC-32C agrees.
        let mut descriptor = read_disk(&mut disk, 2).unwrap();
        put(
            &mut descriptor[..],
            TARGETS_AT,
            &(100 | ESCAPED).to_le_bytes(),
        );
        seal(&mut descriptor, DESCRIPTOR_MAGIC, 2);
        write_disk(&mut disk, 2, &descriptor).unwrap();
        let mut crc = Crc32::castagnoli();
        crc.update(&descriptor[..]);
        crc.update(&staged[&100][..]);
        let mut commit = read_disk(&mut disk, 4).unwrap();
        put(&mut commit[..], COMMIT_CRC_AT, &crc.finish().to_le_bytes());
        seal(&mut commit, COMMIT_MAGIC, 4);
        write_disk(&mut disk, 4, &commit).unwrap();
        let Err(FsError::Corrupt { block: 2, what }) = scan(&mut disk, &layout) else {
            panic!("an escaped image beginning with its magic replayed");
        };
        assert!(what.contains("escapes its image of block 100"), "{what}");
    }

    #[test]
    fn transactions_follow_in_sequence_and_a_stale_one_ends_the_log() {
        let layout = Layout::for_disk(256).unwrap();
        let mut disk = MemoryDisk::new(256);
        write_disk(&mut disk, 1, &encode_header(1, 3).unwrap()).unwrap();
        let one = BTreeMap::from([(70, sealed(DIRECTORY_MAGIC, 70, 1))]);
        let twenty: BTreeMap<u64, Block> = (100..120)
            .map(|n| (n, sealed(EXTENTS_MAGIC, n, 3)))
            .collect();
        let mut position = 2;
        position += write_transaction(&mut disk, position, 3, &one).unwrap();
        position += write_transaction(&mut disk, position, 4, &twenty).unwrap();
        assert_eq!(position, 2 + 3 + 22);
        write_transaction(&mut disk, position, 2, &one).unwrap();
        let replay = scan(&mut disk, &layout).unwrap();
        assert_eq!(
            (replay.transactions, replay.next_sequence),
            (2, 5),
            "sequence 2 is stale"
        );
        assert_eq!(replay.blocks.len(), 21);
        write_transaction(&mut disk, position, 5, &one).unwrap();
        assert_eq!(scan(&mut disk, &layout).unwrap().transactions, 3);
    }

    #[test]
    fn a_transaction_of_several_descriptor_blocks_replays() {
        let layout = Layout::for_disk(64 * 600).unwrap();
        assert_eq!(layout.journal_blocks, 600);
        let mut disk = MemoryDisk::new(64 * 600);
        write_disk(&mut disk, 1, &encode_header(1, 1).unwrap()).unwrap();
        let staged: BTreeMap<u64, Block> = (1000..1590)
            .map(|n| (n, sealed(DIRECTORY_MAGIC, n, n as u8)))
            .collect();
        assert_eq!(transaction_length(590), 593);
        assert_eq!(write_transaction(&mut disk, 2, 1, &staged).unwrap(), 593);
        let replay = scan(&mut disk, &layout).unwrap();
        assert_eq!(replay.transactions, 1);
        assert_eq!(replay.blocks, staged);
        // The second descriptor lost: the transaction is torn.
        write_disk(&mut disk, 3, &zeroed()).unwrap();
        assert_eq!(scan(&mut disk, &layout).unwrap().transactions, 0);
        assert_eq!(transaction_length(507), 509);
        assert_eq!(transaction_length(508), 511);
    }

    #[test]
    fn a_committed_transaction_larger_than_the_app_can_hold_is_no_memory() {
        let layout = Layout::for_disk(256).unwrap();
        let mut disk = MemoryDisk::new(256);
        write_disk(&mut disk, 1, &encode_header(1, 4).unwrap()).unwrap();
        let twenty: BTreeMap<u64, Block> = (100..120)
            .map(|n| (n, sealed(EXTENTS_MAGIC, n, 3)))
            .collect();
        let length = write_transaction(&mut disk, 2, 4, &twenty).unwrap();
        let replay = with_blocks_left(20, || scan(&mut disk, &layout)).unwrap();
        assert_eq!(replay.blocks, twenty, "20 blocks are enough");
        let no_memory = FsError::NoMemory {
            what: "replaying journal transaction 4 (20 blocks)".into(),
            bytes: 20 * BLOCK_SIZE as u64,
        };
        for left in [0, 1, 19] {
            let scanned = with_blocks_left(left, || scan(&mut disk, &layout));
            assert_eq!(scanned.err(), Some(no_memory.clone()), "{left} blocks left");
        }
        // Torn (its commit block lost), it ends the log whatever the memory.
        write_disk(&mut disk, 2 + length - 1, &zeroed()).unwrap();
        let replay = with_blocks_left(0, || scan(&mut disk, &layout)).unwrap();
        assert_eq!((replay.transactions, replay.next_sequence), (0, 4));
    }

    #[test]
    fn a_transaction_past_the_journal_is_corrupt_before_any_allocation() {
        // A 64-block journal (blocks 1..65): a transaction at block 2 holds 61 blocks
        // at most (its descriptor, 61 images, its commit).
        let layout = Layout::for_disk(256).unwrap();
        assert_eq!(layout.journal_end(), 65);
        for total in [62, 1 << 20, u32::MAX] {
            let mut disk = MemoryDisk::new(256);
            write_disk(&mut disk, 1, &encode_header(1, 4).unwrap()).unwrap();
            let mut descriptor = zeroed();
            put(&mut descriptor[..], SEQUENCE_AT, &4u64.to_le_bytes());
            put(&mut descriptor[..], TOTAL_AT, &total.to_le_bytes());
            seal(&mut descriptor, DESCRIPTOR_MAGIC, 2);
            write_disk(&mut disk, 2, &descriptor).unwrap();
            let scanned = with_blocks_left(0, || scan(&mut disk, &layout));
            let Err(FsError::Corrupt { block: 2, what }) = scanned else {
                panic!("{total} blocks: {scanned:?}");
            };
            assert!(what.contains("does not fit the journal"), "{what}");
        }
    }

    #[test]
    fn a_sequence_number_near_the_end_of_the_range_is_refused() {
        let layout = Layout::for_disk(256).unwrap();
        let mut disk = MemoryDisk::new(256);
        write_disk(&mut disk, 1, &encode_header(1, u64::MAX).unwrap()).unwrap();
        assert!(matches!(
            scan(&mut disk, &layout),
            Err(FsError::Corrupt { block: 1, .. })
        ));
    }
}
