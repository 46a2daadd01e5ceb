//! Bad input: damaged superblocks, directory blocks, extents, bitmaps and journals are
//! refused with an error naming the block and what is wrong, by `fsck` and by `mount`,
//! and the refused disk is left exactly as it was.

use alloc::string::String;
use alloc::vec::Vec;

use super::app_memory::with_blocks_left;
use super::ops::fresh;
use super::snapshot;
use crate::dir::Location;
use crate::disk::BlockStore;
use crate::format::{
    BITMAP_MAGIC, Block, DIRECTORY_MAGIC, DirectoryBlock, EXTENTS_MAGIC, Extent, FileKind, Inode,
    JOURNAL_HEADER_MAGIC, SUPERBLOCK_MAGIC, bitmap_position, put, seal, set_bit,
};
use crate::fs::FileSystem;
use crate::journal::write_transaction;
use crate::store::{read_disk, write_disk};
use crate::{FsError, MemoryDisk};

/// A small tree, synced: `/a/b/f` (two blocks), `/g` (one block), `/frag` (six
/// extents: an overflow block).
pub(super) fn sample() -> MemoryDisk {
    sample_on(1024)
}

/// [`sample`] on a disk of `blocks` blocks.
pub(super) fn sample_on(blocks: u64) -> MemoryDisk {
    let mut fs = fresh(blocks);
    fs.mkdir("/a").unwrap();
    fs.mkdir("/a/b").unwrap();
    fs.create("/a/b/f").unwrap();
    fs.write("/a/b/f", 0, &[1; 8000]).unwrap();
    fs.create("/g").unwrap();
    fs.write("/g", 0, b"gee").unwrap();
    fs.create("/frag").unwrap();
    for index in 0..6 {
        fs.write("/frag", index * 2 * 4096, b"piece").unwrap();
    }
    fs.sync().unwrap();
    fs.into_disk()
}

/// [`sample`] with the file `path` created and `data` written to it, in the journal
/// only (not written home).
pub(super) fn sample_with_journaled(path: &str, data: &[u8]) -> MemoryDisk {
    let mut fs = FileSystem::mount(sample()).unwrap();
    fs.create(path).unwrap();
    fs.write(path, 0, data).unwrap();
    fs.into_disk()
}

/// Where the entry of `names` is, and its inode.
pub(super) fn entry_of(disk: &MemoryDisk, names: &[&str]) -> (u64, Inode) {
    let mut fs = FileSystem::mount(disk.clone()).unwrap();
    let found = fs.lookup(names).unwrap();
    match found.location {
        Location::Entry { block, .. } => (block, found.inode),
        Location::Root => (0, found.inode),
    }
}

/// The first block of `names`'s data (or directory blocks).
pub(super) fn first_block(disk: &MemoryDisk, names: &[&str]) -> u64 {
    entry_of(disk, names).1.inline[0].physical
}

pub(super) fn raw(disk: &mut MemoryDisk, number: u64) -> Block {
    read_disk(disk, number).unwrap()
}

pub(super) fn put_raw(disk: &mut MemoryDisk, number: u64, block: &Block) {
    write_disk(disk, number, block).unwrap();
}

/// Changes the inode of entry `name` in directory block `block` (resealed).
pub(super) fn edit_entry(
    disk: &mut MemoryDisk,
    block: u64,
    name: &str,
    edit: impl FnOnce(&mut Inode),
) {
    let mut entries = DirectoryBlock::decode(&raw(disk, block), block).unwrap();
    let index = entries.find(name).unwrap();
    edit(&mut entries.entries[index].inode);
    let mut image = entries.encode(block).unwrap();
    crate::format::seal_checksum(&mut image);
    put_raw(disk, block, &image);
}

/// Changes bytes of a block and reseals it with `magic`.
pub(super) fn edit_block(
    disk: &mut MemoryDisk,
    number: u64,
    magic: [u8; 8],
    edit: impl FnOnce(&mut Block),
) {
    let mut block = raw(disk, number);
    edit(&mut block);
    seal(&mut block, magic, number);
    put_raw(disk, number, &block);
}

/// Every block of the disk, to see that a refusal wrote nothing.
pub(super) fn contents(disk: &mut MemoryDisk) -> Vec<Block> {
    (0..disk.blocks()).map(|number| raw(disk, number)).collect()
}

/// Asserts that both `fsck` and `mount` refuse `disk` with a corruption of `block`
/// whose description contains `what`, and that the disk is untouched.
fn assert_refused(mut disk: MemoryDisk, block: u64, what: &str) {
    let before = contents(&mut disk);
    let checked = FileSystem::fsck(&mut disk).unwrap_err();
    let FsError::Corrupt {
        block: found,
        what: said,
    } = &checked
    else {
        panic!("expected corruption of block {block}, got {checked}");
    };
    assert_eq!(*found, block, "{checked}");
    assert!(said.contains(what), "{checked} should say {what:?}");
    let mut disk_again = disk.clone();
    let mounted = FileSystem::mount(&mut disk_again).map(|_| ()).unwrap_err();
    assert_eq!(mounted, checked);
    assert!(
        contents(&mut disk_again) == before,
        "a refused mount wrote to the disk"
    );
}

#[test]
fn the_sample_is_sound() {
    let mut disk = sample();
    let report = FileSystem::fsck(&mut disk).unwrap();
    assert_eq!((report.directories, report.files), (3, 3));
    let (_, frag) = entry_of(&disk, &["frag"]);
    assert_ne!(frag.overflow, 0);
}

#[test]
fn superblock_damage_is_refused() {
    let mut disk = sample();
    edit_block(&mut disk, 0, *b"NOTRXFS!", |_| {});
    assert_eq!(
        FileSystem::fsck(&mut disk).unwrap_err(),
        FsError::NotFormatted
    );
    assert_eq!(FileSystem::mount(disk).unwrap_err(), FsError::NotFormatted);

    let mut disk = sample();
    let mut block = raw(&mut disk, 0);
    block[200] ^= 0x40;
    put_raw(&mut disk, 0, &block);
    assert_refused(disk, 0, "superblock checksum mismatch");

    // Version 1 had its journal header's CRC at the block's end.
    for version in [1u32, 3] {
        let mut disk = sample();
        edit_block(&mut disk, 0, SUPERBLOCK_MAGIC, |block| {
            put(&mut block[..], 16, &version.to_le_bytes())
        });
        let said = alloc::format!("format version {version} (this rexo-fs reads version 2)");
        assert_refused(disk, 0, &said);
    }

    let mut disk = sample();
    edit_block(&mut disk, 0, SUPERBLOCK_MAGIC, |block| {
        put(&mut block[..], 24, &5000u64.to_le_bytes());
    });
    assert_refused(disk, 0, "superblock is for 5000 blocks, the disk has 1024");

    for (field, value) in [(2, 4000u64), (5, 2000), (3, 1), (4, 0)] {
        let mut disk = sample();
        edit_block(&mut disk, 0, SUPERBLOCK_MAGIC, |block| {
            put(&mut block[..], 24 + 8 * field, &value.to_le_bytes());
        });
        assert_refused(disk, 0, "do not fit a 1024-block disk");
    }

    let mut disk = sample();
    edit_block(&mut disk, 0, SUPERBLOCK_MAGIC, |block| block[128] = 1);
    assert_refused(disk, 0, "the root is not a directory");

    let mut disk = sample();
    edit_block(&mut disk, 0, SUPERBLOCK_MAGIC, |block| block[128] = 9);
    assert_refused(disk, 0, "inode kind 9");
}

#[test]
fn reserved_bytes_that_are_not_zero_are_refused() {
    let disk = sample();
    let a_block = first_block(&disk, &["a"]);
    let overflow = entry_of(&disk, &["frag"]).1.overflow;
    let superblock = "superblock's reserved bytes";
    let root_inode = "/: inode's reserved bytes (bytes 130..136) not zero";
    let directory = "/a: directory block's reserved bytes (bytes 18..24) not zero";
    let entry_inode = "/a: entry 0: b: inode's reserved bytes (bytes 27..33) not zero";
    let extents = "overflow extent block's reserved bytes (bytes 20..24) not zero";
    // The root and /a/b have one block each, one inline extent; /frag's overflow block
    // holds its last two extents.
    let root_slots = "/: inode's unused inline extents (bytes 184..256) not zero";
    let entry_slots = "/a: entry 0: b: inode's unused inline extents (bytes 81..153) not zero";
    let extent_slots =
        "overflow extent block's unused extents and padding (bytes 80..4092) not zero";
    let cases = [
        (
            0,
            SUPERBLOCK_MAGIC,
            &[20, 23, 72, 127, 256, 4091][..],
            superblock,
        ),
        (0, SUPERBLOCK_MAGIC, &[130, 135], root_inode),
        (a_block, DIRECTORY_MAGIC, &[18, 23], directory),
        (a_block, DIRECTORY_MAGIC, &[27, 32], entry_inode),
        (overflow, EXTENTS_MAGIC, &[20, 23], extents),
        (0, SUPERBLOCK_MAGIC, &[184, 255], root_slots),
        (a_block, DIRECTORY_MAGIC, &[81, 152], entry_slots),
        (
            overflow,
            EXTENTS_MAGIC,
            &[80, 4087, 4088, 4091],
            extent_slots,
        ),
    ];
    for (number, magic, places, what) in cases {
        for &at in places {
            let mut disk = disk.clone();
            edit_block(&mut disk, number, magic, |block| block[at] = 1);
            assert_refused(disk, number, what);
        }
    }
}

#[test]
fn a_disk_of_another_size_is_refused() {
    let mut small = sample();
    let mut bigger = MemoryDisk::new(2048);
    for number in 0..small.blocks() {
        put_raw(&mut bigger, number, &raw(&mut small, number));
    }
    assert_refused(
        bigger,
        0,
        "superblock is for 1024 blocks, the disk has 2048",
    );
}

#[test]
fn extents_outside_the_data_region_are_refused() {
    for physical in [5000, 1024, 1020, 3, 66 - 1, u64::MAX - 1, u64::MAX] {
        let mut disk = sample();
        let (holder, _) = entry_of(&disk, &["g"]);
        let count = if physical == 1020 { 10 } else { 1 };
        edit_entry(&mut disk, holder, "g", |inode| {
            inode.inline[0].physical = physical;
            inode.inline[0].count = count;
        });
        let what = if physical == u64::MAX {
            "is empty or wraps"
        } else {
            "/g: extent"
        };
        assert_refused(disk, holder, what);
    }
}

#[test]
fn damaged_directory_blocks_are_refused() {
    let mut disk = sample();
    let a_block = first_block(&disk, &["a"]);
    let mut block = raw(&mut disk, a_block);
    block[40] ^= 1;
    put_raw(&mut disk, a_block, &block);
    assert_refused(disk, a_block, "/a: directory block checksum mismatch");

    let mut disk = sample();
    edit_block(&mut disk, a_block, DIRECTORY_MAGIC, |block| {
        put(&mut block[..], 16, &9u16.to_le_bytes());
    });
    assert_refused(disk, a_block, "/a: entry 1: empty name");

    let mut disk = sample();
    edit_block(&mut disk, a_block, DIRECTORY_MAGIC, |block| {
        block[24 + 1 + 128] = b'/';
    });
    assert_refused(disk, a_block, "invalid name \"/\"");

    let mut disk = sample();
    edit_block(&mut disk, a_block, DIRECTORY_MAGIC, |block| block[4000] = 1);
    assert_refused(disk, a_block, "bytes after the last directory entry");

    let mut disk = sample();
    edit_block(&mut disk, a_block, DIRECTORY_MAGIC, |block| {
        block[24 + 1] = 7
    });
    assert_refused(disk, a_block, "/a: entry 0: b: inode kind 7");
}

#[test]
fn a_block_in_the_wrong_place_is_refused() {
    let mut disk = sample();
    let (root_block, _) = entry_of(&disk, &["a"]);
    let a_block = first_block(&disk, &["a"]);
    let spare = 900;
    let copy = raw(&mut disk, a_block);
    put_raw(&mut disk, spare, &copy);
    edit_entry(&mut disk, root_block, "a", |inode| {
        inode.inline[0].physical = spare
    });
    assert_refused(disk, spare, &alloc::format!("claims to be block {a_block}"));
}

/// The sample with `/a/b`'s directory block made its parent's, then the root's: a
/// cycle; each with the ancestor's block.
pub(super) fn cycles() -> [(u64, MemoryDisk); 2] {
    let disk = sample();
    let a_block = first_block(&disk, &["a"]);
    let root_block = first_block(&disk, &[]);
    [a_block, root_block].map(|ancestor| {
        let mut disk = disk.clone();
        edit_entry(&mut disk, a_block, "b", |inode| {
            inode.inline[0].physical = ancestor
        });
        (ancestor, disk)
    })
}

#[test]
fn cycles_and_shared_blocks_are_refused() {
    for (ancestor, disk) in cycles() {
        assert_refused(disk, ancestor, "/a/b: data block");
    }
    let mut disk = sample();
    let root_block = first_block(&disk, &[]);
    let f_block = first_block(&disk, &["a", "b", "f"]);
    edit_entry(&mut disk, root_block, "g", |inode| {
        inode.inline[0].physical = f_block + 1
    });
    // Whichever of the two files is checked second finds the block taken.
    let error = FileSystem::fsck(&mut disk).unwrap_err();
    assert!(
        alloc::format!("{error}").contains("already in use"),
        "{error}"
    );
    assert!(FileSystem::mount(disk).is_err());
}

#[test]
fn extents_that_disagree_with_sizes_are_refused() {
    let disk = sample();
    let root_block = first_block(&disk, &[]);
    let mut past_end = disk.clone();
    edit_entry(&mut past_end, root_block, "g", |inode| inode.size = 0);
    assert_refused(
        past_end,
        root_block,
        "/g: extents reach block 1, past the size 0",
    );

    let mut overlapping = disk.clone();
    edit_entry(&mut overlapping, root_block, "frag", |inode| {
        inode.inline[1].logical = 0
    });
    assert_refused(overlapping, root_block, "overlaps or precedes");

    let mut directory = disk.clone();
    edit_entry(&mut directory, root_block, "a", |inode| inode.size = 8192);
    assert_refused(
        directory,
        root_block,
        "/a: directory blocks do not cover its size 8192",
    );

    let mut huge = disk.clone();
    edit_entry(&mut huge, root_block, "g", |inode| inode.size = u64::MAX);
    assert_refused(huge, root_block, "beyond the largest file");

    let mut bad_inline = disk.clone();
    edit_block(&mut bad_inline, root_block, DIRECTORY_MAGIC, |block| {
        block[24 + 2] = 5
    });
    let error = FileSystem::fsck(&mut bad_inline).unwrap_err();
    assert!(
        alloc::format!("{error}").contains("inline extents"),
        "{error}"
    );

    let mut lost_overflow = disk.clone();
    edit_entry(&mut lost_overflow, root_block, "g", |inode| {
        inode.inline.push(Extent {
            logical: 1,
            physical: 1000,
            count: 1,
        });
        inode.size = 8192;
    });
    assert_refused(
        lost_overflow,
        1 + 64,
        "bitmap marks block 1000 free but it is in use",
    );
}

#[test]
fn damaged_overflow_blocks_are_refused() {
    let disk = sample();
    let (root_block, frag) = entry_of(&disk, &["frag"]);
    let overflow = frag.overflow;
    let mut flipped = disk.clone();
    let mut block = raw(&mut flipped, overflow);
    block[50] ^= 2;
    put_raw(&mut flipped, overflow, &block);
    assert_refused(
        flipped,
        overflow,
        "/frag: overflow extent block checksum mismatch",
    );

    let mut empty = disk.clone();
    edit_block(&mut empty, overflow, EXTENTS_MAGIC, |block| {
        put(&mut block[..], 16, &0u32.to_le_bytes())
    });
    assert_refused(empty, overflow, "with 0 extents");

    let mut looping = disk.clone();
    edit_block(&mut looping, overflow, EXTENTS_MAGIC, |block| {
        put(&mut block[..], 24, &overflow.to_le_bytes());
    });
    assert_refused(looping, overflow, "/frag: overflow extent block");

    let mut outside = disk.clone();
    edit_entry(&mut outside, root_block, "frag", |inode| {
        inode.overflow = 10
    });
    assert_refused(
        outside,
        root_block,
        "overflow extent block 10 outside the data region",
    );
}

#[test]
fn a_bitmap_that_disagrees_is_refused() {
    let disk = sample();
    let bitmap = 1 + 64;
    let g_block = first_block(&disk, &["g"]);
    let mut freed = disk.clone();
    edit_block(&mut freed, bitmap, BITMAP_MAGIC, |block| {
        let (_, byte, bit) =
            bitmap_position(&crate::format::Layout::for_disk(1024).unwrap(), g_block);
        set_bit(block, byte, bit, false);
    });
    assert_refused(
        freed,
        bitmap,
        &alloc::format!("marks block {g_block} free but it is in use"),
    );

    let mut leaked = disk.clone();
    edit_block(&mut leaked, bitmap, BITMAP_MAGIC, |block| {
        let (_, byte, bit) = bitmap_position(&crate::format::Layout::for_disk(1024).unwrap(), 1000);
        set_bit(block, byte, bit, true);
    });
    assert_refused(leaked, bitmap, "marks block 1000 used but nothing uses it");

    let mut past_end = disk.clone();
    edit_block(&mut past_end, bitmap, BITMAP_MAGIC, |block| {
        let (_, byte, bit) = bitmap_position(&crate::format::Layout::for_disk(1024).unwrap(), 1030);
        set_bit(block, byte, bit, true);
    });
    assert_refused(
        past_end,
        bitmap,
        "marks block 1030, past the end of the disk",
    );

    let mut flipped = disk.clone();
    let mut block = raw(&mut flipped, bitmap);
    block[3000] ^= 1;
    put_raw(&mut flipped, bitmap, &block);
    assert_refused(flipped, bitmap, "bitmap block checksum mismatch");
}

#[test]
fn journal_damage_is_refused_and_a_torn_tail_ignored() {
    let mut disk = sample();
    let mut header = raw(&mut disk, 1);
    header[20] ^= 1;
    put_raw(&mut disk, 1, &header);
    assert_refused(disk, 1, "journal header checksum mismatch");

    // All of the header is in its first sector, sealed there: a byte set past it, or
    // between the sequence number and the sector's CRC, is damage.
    let past = "journal header's bytes past its first sector (bytes 512..4096) not zero";
    let between = "journal header's reserved bytes (bytes 24..508) not zero";
    for (at, what) in [(600, past), (4095, past), (30, between)] {
        let mut disk = sample();
        let mut header = raw(&mut disk, 1);
        header[at] = 1;
        crate::format::seal_in_first_sector(&mut header, JOURNAL_HEADER_MAGIC, 1);
        put_raw(&mut disk, 1, &header);
        assert_refused(disk, 1, what);
    }

    // A committed transaction that writes into the journal itself.
    let mut disk = sample();
    let mut staged = alloc::collections::BTreeMap::new();
    staged.insert(10, crate::format::zeroed());
    let sequence = crate::journal::decode_header(&raw(&mut disk, 1), 1).unwrap();
    write_transaction(&mut disk, 2, sequence, &staged).unwrap();
    assert_refused(
        disk,
        2,
        "writes block 10, outside the file system or inside the journal",
    );

    // Three operations in the journal; the last one's image damaged, then its commit
    // block lost: either way mount keeps the first two.
    let mut fs = FileSystem::mount(sample()).unwrap();
    fs.create("/one").unwrap();
    fs.create("/two").unwrap();
    let before_third = snapshot(&mut fs).unwrap();
    let third_at = fs.journal.position;
    fs.write("/two", 0, b"third").unwrap();
    let commit_at = fs.journal.position - 1;
    let disk = fs.into_disk();
    for damage in 0..2 {
        let mut disk = disk.clone();
        if damage == 0 {
            let mut image = raw(&mut disk, third_at + 1);
            image[7] ^= 0x80;
            put_raw(&mut disk, third_at + 1, &image);
        } else {
            put_raw(&mut disk, commit_at, &crate::format::zeroed());
        }
        assert_eq!(FileSystem::fsck(&mut disk).unwrap().journal_transactions, 2);
        let mut fs = FileSystem::mount(disk).unwrap();
        assert_eq!(snapshot(&mut fs).unwrap(), before_third);
        fs.check().unwrap();
    }
    let mut fs = FileSystem::mount(disk).unwrap();
    assert_eq!(fs.read_all("/two").unwrap(), b"third");
}

/// A journal header at the last sequence numbers (only a crafted disk holds one): the
/// disk mounts and reads, a change that would commit the last number (whose checkpoint
/// wrote 2^63 into the header, a number every later mount refused) is refused as
/// damage and writes nothing, and one below it commits and leaves a disk that mounts;
/// a committed transaction numbered last is not replayed.
#[test]
fn the_last_journal_sequence_numbers_are_never_committed() {
    let bound = 1u64 << 63;
    let mut disk = sample();
    put_raw(
        &mut disk,
        1,
        &crate::journal::encode_header(1, bound - 1).unwrap(),
    );
    let mut fs = FileSystem::mount(disk).unwrap();
    let before = contents(&mut fs.store.disk);
    let error = fs.create("/new").unwrap_err();
    assert!(
        matches!(&error, FsError::Corrupt { block: 1, what } if what.contains("is the last")),
        "{error:?}"
    );
    assert!(
        fs.sync().is_ok() && contents(&mut fs.store.disk) == before,
        "a refused change wrote"
    );
    fs.check().unwrap();

    let mut disk = sample();
    put_raw(
        &mut disk,
        1,
        &crate::journal::encode_header(1, bound - 2).unwrap(),
    );
    let mut fs = FileSystem::mount(disk).unwrap();
    fs.create("/new").unwrap();
    assert!(matches!(
        fs.create("/newer"),
        Err(FsError::Corrupt { block: 1, .. })
    ));
    let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
    fs.check().unwrap();
    assert!(fs.read_all("/new").unwrap().is_empty());

    // A transaction numbered 2^63 - 1 (crafted: no commit takes it) stays in the log.
    let mut disk = sample();
    put_raw(
        &mut disk,
        1,
        &crate::journal::encode_header(1, bound - 1).unwrap(),
    );
    let mut staged = alloc::collections::BTreeMap::new();
    staged.insert(3, raw(&mut disk, 3));
    write_transaction(&mut disk, 2, bound - 1, &staged).unwrap();
    assert_eq!(FileSystem::fsck(&mut disk).unwrap().journal_transactions, 0);
    let fs = FileSystem::mount(disk).unwrap();
    FileSystem::mount(fs.into_disk()).unwrap();
}

#[test]
fn damage_found_after_mounting_is_reported_not_panicked_on() {
    let mut fs = FileSystem::mount(sample()).unwrap();
    let a_block = {
        let found = fs.lookup(&["a"]).unwrap();
        found.inode.inline[0].physical
    };
    let (root_block, _) = entry_of(&fs.store.disk.clone(), &["frag"]);
    let frag_overflow = entry_of(&fs.store.disk.clone(), &["frag"]).1.overflow;
    let mut block = raw(&mut fs.store.disk, a_block);
    block[30] ^= 1;
    put_raw(&mut fs.store.disk, a_block, &block);
    let mut block = raw(&mut fs.store.disk, frag_overflow);
    block[30] ^= 1;
    put_raw(&mut fs.store.disk, frag_overflow, &block);
    // The damage is under blocks the mount's check left in the cache: read them again.
    fs.set_cache_blocks(0);
    let corrupt_a =
        |error: FsError| matches!(error, FsError::Corrupt { block, .. } if block == a_block);
    assert!(corrupt_a(fs.list("/a").unwrap_err()));
    assert!(corrupt_a(fs.read_all("/a/b/f").unwrap_err()));
    assert!(corrupt_a(fs.create("/a/new").unwrap_err()));
    assert!(corrupt_a(fs.rename("/g", "/a/g").unwrap_err()));
    assert!(matches!(fs.check(), Err(FsError::Corrupt { .. })));
    let error = fs.read_all("/frag").unwrap_err();
    assert!(matches!(error, FsError::Corrupt { block, .. } if block == frag_overflow));
    assert!(fs.unlink("/frag").is_err());
    let _: Vec<String> = fs
        .list("/")
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(fs.read_all("/g").unwrap(), b"gee", "the rest still works");
    fs.write("/g", 0, b"G").unwrap();
    let _ = root_block;
    assert_eq!(fs.stat("/g").unwrap().kind, FileKind::File);
}

#[test]
fn a_journal_the_app_cannot_hold_is_no_memory_and_nothing_is_written() {
    let mut disk = sample_with_journaled("/one", &[7; 3 * 4096]);
    let before = contents(&mut disk);
    let short_of_memory = |result: Result<(), FsError>| match result {
        Err(FsError::NoMemory { what, .. }) => what.starts_with("replaying journal transaction"),
        _ => false,
    };
    with_blocks_left(2, || {
        assert!(short_of_memory(FileSystem::fsck(&mut disk).map(drop)));
        assert!(short_of_memory(FileSystem::mount(&mut disk).map(drop)));
        assert!(short_of_memory(
            FileSystem::mount_read_only(&mut disk).map(drop)
        ));
    });
    assert!(contents(&mut disk) == before, "a refused mount wrote");
    let mut fs = FileSystem::mount(disk).unwrap();
    assert_eq!(fs.read_all("/one").unwrap(), [7; 3 * 4096]);
}
