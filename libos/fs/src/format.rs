//! The on-disk format: block headers, the layout of the regions, the superblock,
//! embedded inodes and extents, directory blocks, overflow extent blocks and bitmap
//! blocks. Every parser checks what it reads and returns `FsError::Corrupt` naming the
//! block; nothing here panics on disk data.
//!
//! Every metadata block starts with an 8-byte magic naming its kind and the block's own
//! number (u64), and ends with a CRC-32 of its first 4092 bytes. All integers are
//! little-endian.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rexo_crc::crc32;

use crate::disk::BLOCK_SIZE;
use crate::error::FsError;

/// One block's bytes.
pub(crate) type Block = Box<[u8; BLOCK_SIZE]>;

/// What a hole in a file reads as, and the bytes of a new block of zeros.
pub(crate) static ZEROS: [u8; BLOCK_SIZE] = [0; BLOCK_SIZE];

/// A block of zeros.
pub(crate) fn zeroed() -> Block {
    Box::new([0; BLOCK_SIZE])
}

/// A block holding `bytes` (a block's worth), or `None` when the app cannot get the
/// memory: for blocks kept in numbers the disk decides (a journal replay).
pub(crate) fn try_block(bytes: &[u8]) -> Option<Block> {
    #[cfg(test)]
    if !crate::tests::app_memory::take_block() {
        return None;
    }
    // Reserved and copied into, not zeroed first: a replay keeps many blocks.
    let mut block = Vec::new();
    block.try_reserve_exact(BLOCK_SIZE).ok()?;
    block.extend_from_slice(bytes);
    block.into_boxed_slice().try_into().ok()
}

/// A copy of `bytes` (a block's worth) to become the new image of block `number`,
/// or `NoMemory` when the app cannot get the memory: every metadata block an
/// operation changes is made so.
pub(crate) fn copy_to_change(bytes: &[u8], number: u64) -> Result<Block, FsError> {
    try_block(bytes).ok_or_else(|| FsError::NoMemory {
        what: format!("changing block {number}"),
        bytes: BLOCK_SIZE as u64,
    })
}

/// An empty buffer with room for `blocks` blocks, or `None` when the app cannot get
/// the memory: a run of blocks read or written in one request. Counted as `blocks`
/// blocks against a test's budget (`tests::app_memory`).
pub(crate) fn try_run_buffer(blocks: usize) -> Option<Vec<u8>> {
    #[cfg(test)]
    if !crate::tests::app_memory::take_blocks(blocks as u64) {
        return None;
    }
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(blocks.checked_mul(BLOCK_SIZE)?)
        .ok()?;
    Some(buffer)
}

/// `len` items of their default (zeros), or `None` when the app cannot get the memory
/// (or `len` is past what it can address): for buffers as large as the disk decides.
pub(crate) fn try_zeroed<T: Clone + Default>(len: u64) -> Option<Vec<T>> {
    let len = usize::try_from(len).ok()?;
    let mut items = Vec::new();
    items.try_reserve_exact(len).ok()?;
    items.resize(len, T::default());
    Some(items)
}

/// Refuses `bytes[range]` of block `number` unless every byte is zero: a field the
/// format reserves (`what`), which no writer of this version sets.
pub(crate) fn check_zero(
    bytes: &[u8],
    range: core::ops::Range<usize>,
    number: u64,
    what: &str,
) -> Result<(), FsError> {
    match bytes.get(range.clone()) {
        Some(field) if field.iter().all(|&byte| byte == 0) => Ok(()),
        _ => Err(FsError::corrupt(
            number,
            format!("{what} (bytes {}..{}) not zero", range.start, range.end),
        )),
    }
}

/// Where the block's own number is.
const SELF_AT: usize = 8;
/// Where a metadata block's contents start.
pub(crate) const BODY_AT: usize = 16;
/// Where the CRC-32 of bytes `0..CRC_AT` is.
pub(crate) const CRC_AT: usize = BLOCK_SIZE - 4;

/// The superblock's magic (block 0).
pub(crate) const SUPERBLOCK_MAGIC: [u8; 8] = *b"RXFS-SB1";
/// A directory block's magic.
pub(crate) const DIRECTORY_MAGIC: [u8; 8] = *b"RXFS-DIR";
/// An overflow extent block's magic.
pub(crate) const EXTENTS_MAGIC: [u8; 8] = *b"RXFS-EXT";
/// A bitmap block's magic.
pub(crate) const BITMAP_MAGIC: [u8; 8] = *b"RXFS-BMP";
/// The journal header's magic.
pub(crate) const JOURNAL_HEADER_MAGIC: [u8; 8] = *b"RXFS-JHD";
/// A journal descriptor block's magic.
pub(crate) const DESCRIPTOR_MAGIC: [u8; 8] = *b"RXFS-JDS";
/// A journal commit block's magic.
pub(crate) const COMMIT_MAGIC: [u8; 8] = *b"RXFS-JCM";

/// The format version in the superblock: 2 since the journal header lives in its
/// block's first sector, with its own CRC (version 1 had the frame's CRC at the block's
/// end, so a crash tearing its write left a header refused as damaged).
pub(crate) const VERSION: u32 = 2;

/// Reads a little-endian u16 at `at` (0 when out of range; callers pass checked offsets).
pub(crate) fn get_u16(bytes: &[u8], at: usize) -> u16 {
    let mut raw = [0; 2];
    if let Some(source) = bytes.get(at..at.saturating_add(2)) {
        raw.copy_from_slice(source);
    }
    u16::from_le_bytes(raw)
}

/// Reads a little-endian u32 at `at`.
pub(crate) fn get_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0; 4];
    if let Some(source) = bytes.get(at..at.saturating_add(4)) {
        raw.copy_from_slice(source);
    }
    u32::from_le_bytes(raw)
}

/// Reads a little-endian u64 at `at`.
pub(crate) fn get_u64(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0; 8];
    if let Some(source) = bytes.get(at..at.saturating_add(8)) {
        raw.copy_from_slice(source);
    }
    u64::from_le_bytes(raw)
}

/// Writes `value` at `at`.
pub(crate) fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    if let Some(target) = bytes.get_mut(at..at.saturating_add(value.len())) {
        target.copy_from_slice(value);
    }
}

/// Stamps a metadata block with its magic, its own number and its checksum.
pub(crate) fn seal(block: &mut Block, magic: [u8; 8], number: u64) {
    stamp(block, magic, number);
    seal_checksum(block);
}

/// Writes a metadata block's magic and own number but not its CRC: for blocks staged
/// in a transaction, which the store seals once at commit (`Store::stage_metadata`)
/// however often an operation changes them before that, and which nothing reads back
/// through a CRC check until then.
pub(crate) fn stamp(block: &mut Block, magic: [u8; 8], number: u64) {
    put(&mut block[..], 0, &magic);
    put(&mut block[..], SELF_AT, &number.to_le_bytes());
}

/// Writes a stamped metadata block's CRC.
pub(crate) fn seal_checksum(block: &mut Block) {
    let crc = crc32(&block[..CRC_AT]);
    put(&mut block[..], CRC_AT, &crc.to_le_bytes());
}

/// Bytes of the smallest sector a disk writes whole: a block whose contents all lie in
/// its first this many bytes survives any torn write of it whole, old or new.
pub(crate) const SECTOR_BYTES: usize = 512;
/// Where the CRC-32 of bytes `0..SECTOR_CRC_AT` is in a block framed in its first sector.
pub(crate) const SECTOR_CRC_AT: usize = SECTOR_BYTES - 4;

/// Frames a block whose contents lie in its first sector, bytes `BODY_AT..SECTOR_CRC_AT`,
/// the rest of the block left zero (the journal header, which a checkpoint rewrites in
/// place): its magic, its own number, and a CRC-32 of its first 508 bytes in the
/// sector's last 4. A crash tearing its write at sector boundaries leaves the old block
/// or the new one.
pub(crate) fn seal_in_first_sector(block: &mut Block, magic: [u8; 8], number: u64) {
    stamp(block, magic, number);
    let crc = crc32(&block[..SECTOR_CRC_AT]);
    put(&mut block[..], SECTOR_CRC_AT, &crc.to_le_bytes());
}

/// Checks a block framed by [`seal_in_first_sector`]: magic, CRC, own number, and
/// zeros after the first sector.
pub(crate) fn check_in_first_sector(
    block: &Block,
    magic: [u8; 8],
    number: u64,
    what: &str,
) -> Result<(), FsError> {
    check_frame(block, magic, number, what, Some(SECTOR_CRC_AT))?;
    check_zero(
        &block[..],
        SECTOR_BYTES..BLOCK_SIZE,
        number,
        &format!("{what}'s bytes past its first sector"),
    )
}

/// Whether a metadata block's CRC must be computed to trust it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// It comes from the disk and was not checked yet: verify the CRC.
    Verify,
    /// It was sealed by this mount or already verified since it was read (the CRC,
    /// 4 KiB of work, is skipped; magic and own number are still checked).
    Sealed,
}

/// Checks a metadata block's magic, checksum and own number.
pub(crate) fn check_header(
    block: &Block,
    magic: [u8; 8],
    number: u64,
    what: &str,
) -> Result<(), FsError> {
    check_header_as(block, magic, number, what, Trust::Verify)
}

/// Checks a metadata block's magic and own number, and its checksum unless `trust`
/// says it was checked or sealed already.
pub(crate) fn check_header_as(
    block: &Block,
    magic: [u8; 8],
    number: u64,
    what: &str,
    trust: Trust,
) -> Result<(), FsError> {
    let crc_at = (trust == Trust::Verify).then_some(CRC_AT);
    check_frame(block, magic, number, what, crc_at)
}

/// Checks a block's magic, the CRC-32 of its bytes `0..crc_at` kept at `crc_at` (when
/// given) and its own number.
fn check_frame(
    block: &Block,
    magic: [u8; 8],
    number: u64,
    what: &str,
    crc_at: Option<usize>,
) -> Result<(), FsError> {
    if block[..8] != magic {
        return Err(FsError::corrupt(
            number,
            format!("not a {what} (bad magic)"),
        ));
    }
    if crc_at.is_some_and(|at| crc32(&block[..at]) != get_u32(&block[..], at)) {
        return Err(FsError::corrupt(
            number,
            format!("{what} checksum mismatch"),
        ));
    }
    let claimed = get_u64(&block[..], SELF_AT);
    if claimed != number {
        return Err(FsError::corrupt(
            number,
            format!("{what} claims to be block {claimed}"),
        ));
    }
    Ok(())
}

/// The smallest journal, in blocks (header included).
pub(crate) const MIN_JOURNAL_BLOCKS: u64 = 64;
/// The largest journal, in blocks (64 MiB).
pub(crate) const MAX_JOURNAL_BLOCKS: u64 = 16384;
/// The journal is this fraction of the disk, within the bounds above.
const JOURNAL_FRACTION: u64 = 64;
/// The fewest data blocks a disk must leave after the metadata regions.
const MIN_DATA_BLOCKS: u64 = 32;
/// The fewest blocks a disk must have to be formatted (392 KiB): the superblock, the
/// smallest journal (64 blocks), one bitmap block and 32 data blocks; a smaller one is
/// `FsError::TooSmall`.
pub const MIN_DISK_BLOCKS: u64 = 1 + MIN_JOURNAL_BLOCKS + 1 + MIN_DATA_BLOCKS;
/// Allocation bits in one bitmap block (bytes 16..4092).
pub(crate) const BITS_PER_BITMAP_BLOCK: u64 = ((CRC_AT - BODY_AT) * 8) as u64;

/// Where the regions of a disk are; a pure function of the disk's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Blocks on the disk.
    pub(crate) blocks: u64,
    /// The journal's first block (its header).
    pub(crate) journal_start: u64,
    /// Blocks in the journal, header included.
    pub(crate) journal_blocks: u64,
    /// The first bitmap block.
    pub(crate) bitmap_start: u64,
    /// Bitmap blocks.
    pub(crate) bitmap_blocks: u64,
    /// The first data block; data blocks run to the end of the disk.
    pub(crate) data_start: u64,
}

impl Layout {
    /// The layout of a disk of `blocks` blocks, or `TooSmall`.
    pub(crate) fn for_disk(blocks: u64) -> Result<Self, FsError> {
        let journal_blocks =
            (blocks / JOURNAL_FRACTION).clamp(MIN_JOURNAL_BLOCKS, MAX_JOURNAL_BLOCKS);
        let journal_start = 1;
        let bitmap_start = journal_start + journal_blocks;
        let bitmap_blocks = blocks.div_ceil(BITS_PER_BITMAP_BLOCK);
        let data_start = bitmap_start + bitmap_blocks;
        let enough = data_start
            .checked_add(MIN_DATA_BLOCKS)
            .is_some_and(|needed| needed <= blocks);
        if !enough {
            return Err(FsError::TooSmall(blocks));
        }
        Ok(Self {
            blocks,
            journal_start,
            journal_blocks,
            bitmap_start,
            bitmap_blocks,
            data_start,
        })
    }

    /// Blocks of the data region.
    pub(crate) fn data_blocks(&self) -> u64 {
        self.blocks - self.data_start
    }

    /// Whether `count` blocks from `start` all lie in the data region.
    pub(crate) fn in_data(&self, start: u64, count: u64) -> bool {
        start >= self.data_start
            && start
                .checked_add(count)
                .is_some_and(|end| end <= self.blocks)
    }

    /// The block just past the journal.
    pub(crate) fn journal_end(&self) -> u64 {
        self.journal_start + self.journal_blocks
    }
}

/// What an inode describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A regular file of bytes.
    File,
    /// A directory of named entries.
    Directory,
}

/// A run of `count` blocks of a file, from logical block `logical` (the file's byte
/// `logical * 4096`) stored at physical blocks `physical..physical + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    /// The first logical block.
    pub(crate) logical: u64,
    /// The first physical block.
    pub(crate) physical: u64,
    /// Blocks in the run (at least 1).
    pub(crate) count: u64,
}

/// Bytes of one extent on disk: logical, physical and count as u64s.
const EXTENT_SIZE: usize = 24;

impl Extent {
    /// The logical block just past the run.
    pub(crate) fn logical_end(&self) -> u64 {
        self.logical.saturating_add(self.count)
    }

    /// The physical block just past the run.
    pub(crate) fn physical_end(&self) -> u64 {
        self.physical.saturating_add(self.count)
    }

    fn decode(bytes: &[u8], at: usize, block: u64) -> Result<Self, FsError> {
        let extent = Self {
            logical: get_u64(bytes, at),
            physical: get_u64(bytes, at + 8),
            count: get_u64(bytes, at + 16),
        };
        let wraps = extent.logical.checked_add(extent.count).is_none()
            || extent.physical.checked_add(extent.count).is_none();
        if extent.count == 0 || wraps {
            return Err(FsError::corrupt(
                block,
                format!(
                    "extent ({}, {}, {}) is empty or wraps",
                    extent.logical, extent.physical, extent.count
                ),
            ));
        }
        Ok(extent)
    }

    fn encode(&self, bytes: &mut [u8], at: usize) {
        put(bytes, at, &self.logical.to_le_bytes());
        put(bytes, at + 8, &self.physical.to_le_bytes());
        put(bytes, at + 16, &self.count.to_le_bytes());
    }
}

/// Extents kept inside the inode itself.
pub(crate) const INLINE_EXTENTS: usize = 4;
/// Bytes of an embedded inode.
pub(crate) const INODE_SIZE: usize = 32 + INLINE_EXTENTS * EXTENT_SIZE;

/// A file's or directory's inode, embedded in its directory entry (the root's in the
/// superblock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Inode {
    /// File or directory.
    pub(crate) kind: FileKind,
    /// Bytes (a directory: its blocks times 4096).
    pub(crate) size: u64,
    /// The sequence number of the journal transaction that last wrote this inode.
    pub(crate) changed: u64,
    /// The first overflow extent block, or 0 when every extent is inline.
    pub(crate) overflow: u64,
    /// The first (up to 4) extents, in logical order.
    pub(crate) inline: Vec<Extent>,
}

impl Inode {
    /// An empty file or directory.
    pub(crate) fn new(kind: FileKind, changed: u64) -> Self {
        Self {
            kind,
            size: 0,
            changed,
            overflow: 0,
            inline: Vec::new(),
        }
    }

    /// Reads the inode at `at` in `bytes`, found in `block`.
    pub(crate) fn decode(bytes: &[u8], at: usize, block: u64) -> Result<Self, FsError> {
        let field = |offset: usize| at + offset;
        let kind = match bytes.get(at) {
            Some(1) => FileKind::File,
            Some(2) => FileKind::Directory,
            Some(other) => {
                return Err(FsError::corrupt(block, format!("inode kind {other}")));
            }
            None => return Err(FsError::corrupt(block, "inode cut short")),
        };
        let inline_count = usize::from(bytes.get(field(1)).copied().unwrap_or(0));
        if inline_count > INLINE_EXTENTS {
            return Err(FsError::corrupt(
                block,
                format!("inode with {inline_count} inline extents"),
            ));
        }
        check_zero(bytes, field(2)..field(8), block, "inode's reserved bytes")?;
        let overflow = get_u64(bytes, field(24));
        if overflow != 0 && inline_count < INLINE_EXTENTS {
            return Err(FsError::corrupt(
                block,
                "inode has an overflow block but free inline extents",
            ));
        }
        let inline = (0..inline_count)
            .map(|index| Extent::decode(bytes, field(32 + index * EXTENT_SIZE), block))
            .collect::<Result<Vec<_>, _>>()?;
        check_zero(
            bytes,
            field(32 + inline_count * EXTENT_SIZE)..field(INODE_SIZE),
            block,
            "inode's unused inline extents",
        )?;
        Ok(Self {
            kind,
            size: get_u64(bytes, field(8)),
            changed: get_u64(bytes, field(16)),
            overflow,
            inline,
        })
    }

    /// Writes the inode at `at` in `bytes`.
    pub(crate) fn encode(&self, bytes: &mut [u8], at: usize) {
        let kind: u8 = match self.kind {
            FileKind::File => 1,
            FileKind::Directory => 2,
        };
        let mut raw = [0u8; INODE_SIZE];
        raw[0] = kind;
        raw[1] = self.inline.len().min(INLINE_EXTENTS) as u8;
        put(&mut raw, 8, &self.size.to_le_bytes());
        put(&mut raw, 16, &self.changed.to_le_bytes());
        put(&mut raw, 24, &self.overflow.to_le_bytes());
        for (index, extent) in self.inline.iter().take(INLINE_EXTENTS).enumerate() {
            extent.encode(&mut raw, 32 + index * EXTENT_SIZE);
        }
        put(bytes, at, &raw);
    }
}

/// Where the version, layout and root inode are in the superblock.
const VERSION_AT: usize = 16;
const LAYOUT_AT: usize = 24;
/// Just past the superblock's six layout fields (u64s).
const LAYOUT_END: usize = LAYOUT_AT + 6 * 8;
/// Where the root directory's inode is in the superblock.
const ROOT_INODE_AT: usize = 128;

/// Block 0: the format version, the layout and the root directory's inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Superblock {
    /// Where the regions are.
    pub(crate) layout: Layout,
    /// The root directory's inode.
    pub(crate) root: Inode,
}

impl Superblock {
    /// The superblock of a new, empty file system of `layout`: an empty root directory.
    pub(crate) fn empty(layout: Layout) -> Self {
        Self {
            layout,
            root: Inode::new(FileKind::Directory, 0),
        }
    }

    /// Parses block 0 of a disk of `disk_blocks` blocks, checking the layout against it.
    pub(crate) fn decode(block: &Block, disk_blocks: u64) -> Result<Self, FsError> {
        Self::decode_as(block, disk_blocks, Trust::Verify)
    }

    /// Whether block 0 is a superblock whose write a crash cut short: its magic is
    /// there but its CRC fails. On a disk of sectors smaller than a block the write of
    /// block 0 at a checkpoint can leave some sectors new and some old; the superblock's
    /// fields (its first 256 bytes) then come from one write and its CRC (its last 4)
    /// maybe from the other.
    pub(crate) fn is_torn(block: &Block) -> bool {
        block[..8] == SUPERBLOCK_MAGIC && crc32(&block[..CRC_AT]) != get_u32(&block[..], CRC_AT)
    }

    /// [`Superblock::decode`], the CRC checked only if `trust` asks.
    pub(crate) fn decode_as(
        block: &Block,
        disk_blocks: u64,
        trust: Trust,
    ) -> Result<Self, FsError> {
        if block[..8] != SUPERBLOCK_MAGIC {
            return Err(FsError::NotFormatted);
        }
        check_header_as(block, SUPERBLOCK_MAGIC, 0, "superblock", trust)?;
        let version = get_u32(&block[..], VERSION_AT);
        if version != VERSION {
            return Err(FsError::corrupt(
                0,
                format!("format version {version} (this rexo-fs reads version {VERSION})"),
            ));
        }
        // Read on every path lookup: the reserved bytes (most of the block) are scanned
        // with the CRC, when the block comes from the disk; a sealed one has zeros there.
        let reserved = [
            VERSION_AT + 4..LAYOUT_AT,
            LAYOUT_END..ROOT_INODE_AT,
            ROOT_INODE_AT + INODE_SIZE..CRC_AT,
        ];
        if trust == Trust::Verify {
            for range in reserved {
                check_zero(&block[..], range, 0, "superblock's reserved bytes")?;
            }
        }
        let field = |index: usize| get_u64(&block[..], LAYOUT_AT + 8 * index);
        let stored = Layout {
            blocks: field(0),
            journal_start: field(1),
            journal_blocks: field(2),
            bitmap_start: field(3),
            bitmap_blocks: field(4),
            data_start: field(5),
        };
        if stored.blocks != disk_blocks {
            return Err(FsError::corrupt(
                0,
                format!(
                    "superblock is for {} blocks, the disk has {disk_blocks}",
                    stored.blocks
                ),
            ));
        }
        if Layout::for_disk(stored.blocks).ok() != Some(stored) {
            return Err(FsError::corrupt(
                0,
                format!(
                    "regions (journal {}+{}, bitmap {}+{}, data from {}) do not fit a {}-block disk",
                    stored.journal_start,
                    stored.journal_blocks,
                    stored.bitmap_start,
                    stored.bitmap_blocks,
                    stored.data_start,
                    stored.blocks
                ),
            ));
        }
        let root = Inode::decode(&block[..], ROOT_INODE_AT, 0).map_err(|e| e.under("/"))?;
        if root.kind != FileKind::Directory {
            return Err(FsError::corrupt(0, "the root is not a directory"));
        }
        Ok(Self {
            layout: stored,
            root,
        })
    }

    /// The superblock's bytes, stamped; the CRC is left for `seal_checksum` (at commit).
    /// `NoMemory` when the app cannot get the block.
    pub(crate) fn encode(&self) -> Result<Block, FsError> {
        let mut block = copy_to_change(&ZEROS, 0)?;
        put(&mut block[..], VERSION_AT, &VERSION.to_le_bytes());
        let layout = &self.layout;
        let fields = [
            layout.blocks,
            layout.journal_start,
            layout.journal_blocks,
            layout.bitmap_start,
            layout.bitmap_blocks,
            layout.data_start,
        ];
        for (index, value) in fields.iter().enumerate() {
            put(&mut block[..], LAYOUT_AT + 8 * index, &value.to_le_bytes());
        }
        self.root.encode(&mut block[..], ROOT_INODE_AT);
        stamp(&mut block, SUPERBLOCK_MAGIC, 0);
        Ok(block)
    }
}

/// The longest name, in bytes.
pub const MAX_NAME: usize = 255;
/// Where a directory block's entry count is.
const ENTRY_COUNT_AT: usize = BODY_AT;
/// Where a directory block's entries start.
const ENTRIES_AT: usize = 24;
/// Bytes of entries one directory block holds.
pub(crate) const DIRECTORY_CAPACITY: usize = CRC_AT - ENTRIES_AT;

/// Whether `name` may be stored in a directory.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && !name.bytes().any(|byte| byte == b'/' || byte == 0)
}

/// One entry of a directory block: a name and the inode embedded with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The name (1 to 255 bytes of UTF-8, no `/` or NUL, not `.` or `..`).
    pub(crate) name: String,
    /// The file's or directory's inode.
    pub(crate) inode: Inode,
}

impl Entry {
    /// Bytes the entry takes in a directory block: name length, inode, name.
    pub(crate) fn size_on_disk(name: &str) -> usize {
        1 + INODE_SIZE + name.len()
    }

    /// Writes the entry into directory `block` at `at` (name length, inode, name: the
    /// layout's one writer); returns the bytes it took.
    fn encode_at(&self, block: &mut Block, at: usize) -> usize {
        put(&mut block[..], at, &[self.name.len() as u8]);
        self.inode.encode(&mut block[..], at + 1);
        put(&mut block[..], at + 1 + INODE_SIZE, self.name.as_bytes());
        Self::size_on_disk(&self.name)
    }
}

/// A directory block's entries, in the order stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DirectoryBlock {
    /// The entries.
    pub(crate) entries: Vec<Entry>,
}

impl DirectoryBlock {
    /// Parses directory block `number`.
    pub(crate) fn decode(block: &Block, number: u64) -> Result<Self, FsError> {
        Self::decode_as(block, number, Trust::Verify)
    }

    /// [`DirectoryBlock::decode`], the CRC checked only if `trust` asks.
    pub(crate) fn decode_as(block: &Block, number: u64, trust: Trust) -> Result<Self, FsError> {
        Self::check_header(block, number, trust)?;
        let count = get_u16(&block[..], ENTRY_COUNT_AT);
        check_zero(
            &block[..],
            ENTRY_COUNT_AT + 2..ENTRIES_AT,
            number,
            "directory block's reserved bytes",
        )?;
        let mut at = ENTRIES_AT;
        let mut entries = Vec::new();
        for index in 0..count {
            let entry = decode_entry(block, number, at)
                .map_err(|what| FsError::corrupt(number, format!("entry {index}: {what}")))?;
            at += Entry::size_on_disk(&entry.name);
            entries.push(entry);
        }
        if block[at.min(CRC_AT)..CRC_AT].iter().any(|&byte| byte != 0) {
            return Err(FsError::corrupt(
                number,
                "bytes after the last directory entry",
            ));
        }
        Ok(Self { entries })
    }

    /// Repair's reading of directory block `number`, whose header (magic, number,
    /// CRC) must check: the entries that parse, and a line on each that does not. An
    /// entry with a bad inode is skipped; one whose name cannot be read ends the block
    /// (where the next one starts is not known).
    pub(crate) fn salvage(
        block: &Block,
        number: u64,
    ) -> Result<(Vec<Entry>, Vec<String>), FsError> {
        Self::check_header(block, number, Trust::Verify)?;
        let count = get_u16(&block[..], ENTRY_COUNT_AT);
        let (mut at, mut entries, mut problems) = (ENTRIES_AT, Vec::new(), Vec::new());
        for index in 0..count {
            match decode_entry(block, number, at) {
                Ok(entry) => {
                    at += Entry::size_on_disk(&entry.name);
                    entries.push(entry);
                }
                Err(what) => match entry_name(block, at) {
                    Ok(name) => {
                        problems.push(format!("entry {index}: {what}; dropped"));
                        at += Entry::size_on_disk(name);
                    }
                    Err(_) => {
                        let rest = count - index;
                        problems.push(format!(
                            "entry {index}: {what}; it and what follows ({rest} entries) are lost"
                        ));
                        break;
                    }
                },
            }
        }
        Ok((entries, problems))
    }

    /// The block's bytes, stamped as block `number`; the CRC is left for
    /// `seal_checksum` (at commit). `NoMemory` when the app cannot get the block.
    pub(crate) fn encode(&self, number: u64) -> Result<Block, FsError> {
        let mut block = copy_to_change(&ZEROS, number)?;
        put(
            &mut block[..],
            ENTRY_COUNT_AT,
            &(self.entries.len() as u16).to_le_bytes(),
        );
        let mut at = ENTRIES_AT;
        for entry in &self.entries {
            at += entry.encode_at(&mut block, at);
        }
        stamp(&mut block, DIRECTORY_MAGIC, number);
        Ok(block)
    }

    /// The index and inode of the entry named `name` in directory block `number`,
    /// found without parsing the other entries: for a block already checked whole
    /// (sealed by this mount, or verified since it was read). Its magic and own number
    /// are still checked (a block verified as another kind is `Corrupt` here), and it
    /// never panics on a bad block.
    pub(crate) fn find_sealed(
        block: &Block,
        number: u64,
        name: &str,
    ) -> Result<Option<(usize, Inode)>, FsError> {
        let found = Self::locate_sealed(block, number, name)?;
        Ok(found.map(|(index, _, inode)| (index, inode)))
    }

    /// [`find_sealed`](Self::find_sealed), with where the entry starts in the block.
    fn locate_sealed(
        block: &Block,
        number: u64,
        name: &str,
    ) -> Result<Option<(usize, usize, Inode)>, FsError> {
        Self::check_header(block, number, Trust::Sealed)?;
        let count = usize::from(get_u16(&block[..], ENTRY_COUNT_AT));
        let mut at = ENTRIES_AT;
        for index in 0..count {
            let name_len = usize::from(block[at.min(CRC_AT)]);
            let name_at = at + 1 + INODE_SIZE;
            let stored = block
                .get(name_at..name_at + name_len)
                .filter(|_| name_at + name_len <= CRC_AT);
            let Some(stored) = stored else {
                return Err(FsError::corrupt(
                    number,
                    format!("entry {index}: runs past the block"),
                ));
            };
            if stored == name.as_bytes() {
                return Ok(Some((
                    index,
                    at,
                    Inode::decode(&block[..], at + 1, number)?,
                )));
            }
            at = name_at + name_len;
        }
        Ok(None)
    }

    /// The header of directory block `number`: its magic and own number, and its CRC
    /// unless `trust` says the block was checked whole already (a block verified as
    /// another kind is `Corrupt` all the same).
    fn check_header(block: &Block, number: u64, trust: Trust) -> Result<(), FsError> {
        check_header_as(block, DIRECTORY_MAGIC, number, "directory block", trust)
    }

    /// Where entry `to` of directory block `number` starts, stepping over the entries
    /// from `from`, which starts at `at`, by their name lengths (nothing else parsed):
    /// `Corrupt` if one of them runs past the block.
    fn skip_entries(
        block: &Block,
        number: u64,
        mut at: usize,
        from: usize,
        to: usize,
    ) -> Result<usize, FsError> {
        for index in from..to {
            at += 1 + INODE_SIZE + usize::from(block[at.min(CRC_AT)]);
            if at > CRC_AT {
                return Err(FsError::corrupt(
                    number,
                    format!("entry {index}: runs past the block"),
                ));
            }
        }
        Ok(at)
    }

    /// Directory block `number` (checked whole, as for [`DirectoryBlock::find_sealed`])
    /// with `entry` appended after its last entry, stamped for staging, found by
    /// stepping over the other entries' lengths without parsing them; `None` if it
    /// does not fit. Creating a file in a directory of a hundred then costs one copy
    /// of the block, not a parse of every entry and inode before it. Its magic and own
    /// number are still checked, and it never panics on a bad block.
    pub(crate) fn append_sealed(
        block: &Block,
        number: u64,
        entry: &Entry,
    ) -> Result<Option<Block>, FsError> {
        Self::check_header(block, number, Trust::Sealed)?;
        let count = get_u16(&block[..], ENTRY_COUNT_AT);
        let at = Self::skip_entries(block, number, ENTRIES_AT, 0, usize::from(count))?;
        let size = Entry::size_on_disk(&entry.name);
        if at - ENTRIES_AT + size > DIRECTORY_CAPACITY {
            return Ok(None);
        }
        let mut appended = copy_to_change(&block[..], number)?;
        put(
            &mut appended[..],
            ENTRY_COUNT_AT,
            &(count + 1).to_le_bytes(),
        );
        entry.encode_at(&mut appended, at);
        stamp(&mut appended, DIRECTORY_MAGIC, number);
        Ok(Some(appended))
    }

    /// The inode of entry `name` of directory block `number` (checked whole, as for
    /// [`DirectoryBlock::find_sealed`]) and the block without it, stamped for staging
    /// (`None` if it was the last entry): the entries after it move down, the others are
    /// not parsed. `None` if there is no such entry. Its magic and own number are still
    /// checked (by `find_sealed`), and it never panics on a bad block.
    pub(crate) fn remove_sealed(
        block: &Block,
        number: u64,
        name: &str,
    ) -> Result<Option<(Inode, Option<Block>)>, FsError> {
        let Some((index, at, inode)) = Self::locate_sealed(block, number, name)? else {
            return Ok(None);
        };
        let count = usize::from(get_u16(&block[..], ENTRY_COUNT_AT));
        if count == 1 {
            return Ok(Some((inode, None)));
        }
        let end = Self::skip_entries(block, number, at, index, count)?;
        let size = Entry::size_on_disk(name);
        let mut rest = copy_to_change(&block[..], number)?;
        rest.copy_within(at + size..end, at);
        rest[end - size..end].fill(0);
        put(
            &mut rest[..],
            ENTRY_COUNT_AT,
            &(count as u16 - 1).to_le_bytes(),
        );
        stamp(&mut rest, DIRECTORY_MAGIC, number);
        Ok(Some((inode, Some(rest))))
    }

    /// Rewrites the inode of entry `index` of the checked directory block `number` in
    /// place, stamped for staging (the other entries are not parsed).
    pub(crate) fn replace_inode(
        block: &mut Block,
        number: u64,
        index: usize,
        inode: &Inode,
    ) -> Result<(), FsError> {
        let count = usize::from(get_u16(&block[..], ENTRY_COUNT_AT));
        if index >= count {
            return Err(FsError::corrupt(number, format!("no entry {index}")));
        }
        let at = Self::skip_entries(block, number, ENTRIES_AT, 0, index)?;
        if at + 1 + INODE_SIZE > CRC_AT {
            return Err(FsError::corrupt(
                number,
                format!("entry {index}: runs past the block"),
            ));
        }
        inode.encode(&mut block[..], at + 1);
        stamp(block, DIRECTORY_MAGIC, number);
        Ok(())
    }

    /// The index of the entry named `name`.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|entry| entry.name == name)
    }
}

/// The name of the directory entry at `at`, or what is wrong with it.
fn entry_name(block: &Block, at: usize) -> Result<&str, String> {
    let name_len = usize::from(*block.get(at).ok_or("runs past the block")?);
    let name_at = at + 1 + INODE_SIZE;
    let name_end = name_at + name_len;
    if name_len == 0 {
        return Err("empty name".into());
    }
    if name_end > CRC_AT {
        return Err("runs past the block".into());
    }
    let name = core::str::from_utf8(&block[name_at..name_end])
        .map_err(|_| String::from("name is not UTF-8"))?;
    if !valid_name(name) {
        return Err(format!("invalid name {name:?}"));
    }
    Ok(name)
}

/// Reads one directory entry at `at`, or says what is wrong with it.
fn decode_entry(block: &Block, number: u64, at: usize) -> Result<Entry, String> {
    let name = entry_name(block, at)?;
    let inode = Inode::decode(&block[..], at + 1, number).map_err(|error| match error {
        FsError::Corrupt { what, .. } => format!("{name}: {what}"),
        other => format!("{name}: {other}"),
    })?;
    Ok(Entry {
        name: name.into(),
        inode,
    })
}

/// Where an overflow block's extent count, next block and extents are.
const OVERFLOW_COUNT_AT: usize = BODY_AT;
pub(crate) const OVERFLOW_NEXT_AT: usize = 24;
pub(crate) const OVERFLOW_EXTENTS_AT: usize = 32;
/// Extents one overflow block holds.
pub(crate) const EXTENTS_PER_OVERFLOW_BLOCK: usize = (CRC_AT - OVERFLOW_EXTENTS_AT) / EXTENT_SIZE;

/// An overflow extent block: more extents of a file with more than four, and the next
/// block of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OverflowBlock {
    /// The next overflow block, or 0.
    pub(crate) next: u64,
    /// Its extents (1 to 169), continuing the inode's in logical order.
    pub(crate) extents: Vec<Extent>,
}

impl OverflowBlock {
    /// Parses overflow block `number`.
    pub(crate) fn decode(block: &Block, number: u64) -> Result<Self, FsError> {
        Self::decode_as(block, number, Trust::Verify)
    }

    /// [`OverflowBlock::decode`], the CRC checked only if `trust` asks.
    pub(crate) fn decode_as(block: &Block, number: u64, trust: Trust) -> Result<Self, FsError> {
        check_header_as(block, EXTENTS_MAGIC, number, "overflow extent block", trust)?;
        let count = get_u32(&block[..], OVERFLOW_COUNT_AT) as usize;
        if count == 0 || count > EXTENTS_PER_OVERFLOW_BLOCK {
            return Err(FsError::corrupt(
                number,
                format!("overflow extent block with {count} extents"),
            ));
        }
        check_zero(
            &block[..],
            OVERFLOW_COUNT_AT + 4..OVERFLOW_NEXT_AT,
            number,
            "overflow extent block's reserved bytes",
        )?;
        let extents = (0..count)
            .map(|index| {
                Extent::decode(
                    &block[..],
                    OVERFLOW_EXTENTS_AT + index * EXTENT_SIZE,
                    number,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_zero(
            &block[..],
            OVERFLOW_EXTENTS_AT + count * EXTENT_SIZE..CRC_AT,
            number,
            "overflow extent block's unused extents and padding",
        )?;
        Ok(Self {
            next: get_u64(&block[..], OVERFLOW_NEXT_AT),
            extents,
        })
    }

    /// The block's bytes, stamped as block `number`; the CRC is left for
    /// `seal_checksum` (at commit). `NoMemory` when the app cannot get the block.
    pub(crate) fn encode(&self, number: u64) -> Result<Block, FsError> {
        let mut block = copy_to_change(&ZEROS, number)?;
        let count = self.extents.len().min(EXTENTS_PER_OVERFLOW_BLOCK);
        put(
            &mut block[..],
            OVERFLOW_COUNT_AT,
            &(count as u32).to_le_bytes(),
        );
        put(&mut block[..], OVERFLOW_NEXT_AT, &self.next.to_le_bytes());
        for (index, extent) in self.extents.iter().take(count).enumerate() {
            extent.encode(&mut block[..], OVERFLOW_EXTENTS_AT + index * EXTENT_SIZE);
        }
        stamp(&mut block, EXTENTS_MAGIC, number);
        Ok(block)
    }
}

/// Where block `block`'s allocation bit is: the bitmap block, the byte in it, the bit.
pub(crate) fn bitmap_position(layout: &Layout, block: u64) -> (u64, usize, u8) {
    let index = block / BITS_PER_BITMAP_BLOCK;
    let bit = (block % BITS_PER_BITMAP_BLOCK) as usize;
    (
        layout.bitmap_start + index,
        BODY_AT + bit / 8,
        (bit % 8) as u8,
    )
}

/// Checks bitmap block `number`.
pub(crate) fn check_bitmap(block: &Block, number: u64) -> Result<(), FsError> {
    check_header(block, BITMAP_MAGIC, number, "bitmap block")
}

/// Whether the bit at (`byte`, `bit`) of a bitmap block is set.
pub(crate) fn bit_is_set(block: &Block, byte: usize, bit: u8) -> bool {
    block.get(byte).is_some_and(|value| value & (1 << bit) != 0)
}

/// Sets or clears the bit at (`byte`, `bit`).
pub(crate) fn set_bit(block: &mut Block, byte: usize, bit: u8, used: bool) {
    if let Some(value) = block.get_mut(byte) {
        if used {
            *value |= 1 << bit;
        } else {
            *value &= !(1 << bit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_scale_with_the_disk() {
        assert_eq!(MIN_DISK_BLOCKS, 98);
        assert_eq!(
            Layout::for_disk(MIN_DISK_BLOCKS - 1),
            Err(FsError::TooSmall(97))
        );
        let small = Layout::for_disk(MIN_DISK_BLOCKS).unwrap();
        assert_eq!(
            (small.journal_blocks, small.bitmap_blocks, small.data_start),
            (64, 1, 66)
        );
        let big = Layout::for_disk(1 << 20).unwrap();
        assert_eq!((big.journal_blocks, big.bitmap_blocks), (16384, 33));
        let huge = Layout::for_disk(1 << 40).unwrap();
        assert_eq!(huge.journal_blocks, MAX_JOURNAL_BLOCKS);
        assert_eq!(INODE_SIZE, 128);
        assert_eq!(EXTENTS_PER_OVERFLOW_BLOCK, 169);
        assert_eq!(BITS_PER_BITMAP_BLOCK, 32608);
    }

    /// A directory block of `count` entries named `f0`, `f1`, ..., sealed as block 70.
    fn sealed_directory(count: usize) -> (DirectoryBlock, Block) {
        let directory = DirectoryBlock {
            entries: (0..count)
                .map(|index| Entry {
                    name: alloc::format!("f{index}"),
                    inode: Inode::new(FileKind::File, index as u64),
                })
                .collect(),
        };
        let mut block = directory.encode(70).unwrap();
        seal_checksum(&mut block);
        (directory, block)
    }

    #[test]
    fn appending_in_place_is_parsing_pushing_and_encoding() {
        let (mut directory, block) = sealed_directory(5);
        let mut inode = Inode::new(FileKind::File, 9);
        inode.size = 1024;
        inode.inline.push(Extent {
            logical: 0,
            physical: 300,
            count: 1,
        });
        let entry = Entry {
            name: "new".into(),
            inode,
        };
        let mut appended = DirectoryBlock::append_sealed(&block, 70, &entry)
            .unwrap()
            .expect("room for a sixth entry");
        directory.entries.push(entry);
        let expected = directory.encode(70).unwrap();
        assert_eq!(appended[..CRC_AT], expected[..CRC_AT]);
        seal_checksum(&mut appended);
        assert_eq!(DirectoryBlock::decode(&appended, 70).unwrap(), directory);
    }

    #[test]
    fn appending_stops_at_exactly_the_room_left() {
        let (directory, block) = sealed_directory(29);
        let used: usize = directory
            .entries
            .iter()
            .map(|entry| Entry::size_on_disk(&entry.name))
            .sum();
        let left = DIRECTORY_CAPACITY - used;
        let entry = |name_len: usize| Entry {
            name: "x".repeat(name_len),
            inode: Inode::new(FileKind::File, 1),
        };
        // One byte more than the room left, then exactly the room left.
        let too_long = entry(left - INODE_SIZE);
        assert_eq!(Entry::size_on_disk(&too_long.name), left + 1);
        assert_eq!(
            DirectoryBlock::append_sealed(&block, 70, &too_long),
            Ok(None)
        );
        let fits = entry(left - 1 - INODE_SIZE);
        assert_eq!(Entry::size_on_disk(&fits.name), left);
        let full = DirectoryBlock::append_sealed(&block, 70, &fits)
            .unwrap()
            .expect("exactly the room left");
        assert_eq!(
            DirectoryBlock::append_sealed(&full, 70, &entry(1)),
            Ok(None)
        );
    }

    #[test]
    fn appending_to_a_block_whose_entries_run_past_it_is_refused() {
        let (_, mut block) = sealed_directory(3);
        put(&mut block[..], ENTRY_COUNT_AT, &40u16.to_le_bytes());
        let entry = Entry {
            name: "new".into(),
            inode: Inode::new(FileKind::File, 1),
        };
        let error = DirectoryBlock::append_sealed(&block, 70, &entry).unwrap_err();
        assert!(
            matches!(&error, FsError::Corrupt { block: 70, what } if what.contains("runs past the block")),
            "{error:?}"
        );
    }

    #[test]
    fn removing_in_place_is_parsing_removing_and_encoding() {
        let (directory, block) = sealed_directory(12);
        for name in ["f0", "f5", "f11"] {
            let (inode, rest) = DirectoryBlock::remove_sealed(&block, 70, name)
                .unwrap()
                .expect("the entry is there");
            let mut expected = directory.clone();
            let index = expected.find(name).unwrap();
            assert_eq!(inode, expected.entries.remove(index).inode);
            let mut rest = rest.expect("entries are left");
            assert_eq!(
                rest[..CRC_AT],
                expected.encode(70).unwrap()[..CRC_AT],
                "{name}"
            );
            seal_checksum(&mut rest);
            assert_eq!(DirectoryBlock::decode(&rest, 70).unwrap(), expected);
        }
        assert_eq!(DirectoryBlock::remove_sealed(&block, 70, "f12"), Ok(None));
        let (alone, block) = sealed_directory(1);
        assert_eq!(
            DirectoryBlock::remove_sealed(&block, 70, "f0"),
            Ok(Some((alone.entries[0].inode.clone(), None)))
        );
    }

    #[test]
    fn removing_from_a_block_whose_entries_run_past_it_is_refused() {
        let (_, mut block) = sealed_directory(3);
        put(&mut block[..], ENTRY_COUNT_AT, &40u16.to_le_bytes());
        let error = DirectoryBlock::remove_sealed(&block, 70, "f1").unwrap_err();
        assert!(
            matches!(&error, FsError::Corrupt { block: 70, what } if what.contains("runs past the block")),
            "{error:?}"
        );
    }

    #[test]
    fn changing_in_place_checks_the_block_is_this_directory_block() {
        let overflow = OverflowBlock {
            next: 0,
            extents: alloc::vec![Extent {
                logical: 4,
                physical: 300,
                count: 1,
            }],
        };
        let mut other_kind = overflow.encode(70).unwrap();
        seal_checksum(&mut other_kind);
        let (_, elsewhere) = sealed_directory(3);
        let entry = Entry {
            name: "new".into(),
            inode: Inode::new(FileKind::File, 1),
        };
        for (block, number, what) in [
            (&other_kind, 70, "not a directory block (bad magic)"),
            (&elsewhere, 71, "directory block claims to be block 70"),
        ] {
            let corrupt = Some(FsError::corrupt(number, what));
            let found = DirectoryBlock::find_sealed(block, number, "f1");
            assert_eq!(found.err(), corrupt);
            let appended = DirectoryBlock::append_sealed(block, number, &entry);
            assert_eq!(appended.err(), corrupt);
            let removed = DirectoryBlock::remove_sealed(block, number, "f1");
            assert_eq!(removed.err(), corrupt);
        }
    }

    #[test]
    fn directory_blocks_round_trip_and_detect_damage() {
        let mut directory = DirectoryBlock::default();
        let mut inode = Inode::new(FileKind::File, 7);
        inode.size = 5000;
        inode.inline.push(Extent {
            logical: 0,
            physical: 90,
            count: 2,
        });
        directory.entries.push(Entry {
            name: "a".repeat(MAX_NAME),
            inode,
        });
        directory.entries.push(Entry {
            name: "b".into(),
            inode: Inode::new(FileKind::Directory, 1),
        });
        let mut block = directory.encode(70).unwrap();
        seal_checksum(&mut block);
        assert_eq!(DirectoryBlock::decode(&block, 70).unwrap(), directory);
        assert!(matches!(
            DirectoryBlock::decode(&block, 71),
            Err(FsError::Corrupt { block: 71, .. })
        ));
        let mut flipped = block.clone();
        flipped[100] ^= 1;
        assert!(DirectoryBlock::decode(&flipped, 70).is_err());
    }
}
