//! Repair: every kind of damage the check refuses is worked around, the result is
//! consistent (checked, mounted, repaired again without a fix), what the damage did
//! not touch reads back the same, and the report names what was done. A consistent
//! file system is left byte for byte as it was; a damaged superblock is refused and
//! nothing is written.

use alloc::string::String;
use alloc::vec::Vec;

use super::app_memory::with_blocks_left;
use super::corrupt::{
    contents, edit_block, edit_entry, entry_of, first_block, put_raw, raw, sample,
    sample_with_journaled,
};
use super::fuzz::{base, exercise, mutate};
use super::{Node, Rng, Snapshot, snapshot};
use crate::format::{BITMAP_MAGIC, CRC_AT, DIRECTORY_MAGIC, Extent, bitmap_position, set_bit};
use crate::fs::FileSystem;
use crate::journal::write_transaction;
use crate::repair::RepairReport;
use crate::{FsError, MemoryDisk};

/// Repairs `disk`, checks the result from scratch (fsck of the disk, a mount, a
/// second repair that finds nothing) and returns its tree and the report.
fn repaired(disk: MemoryDisk) -> (Snapshot, RepairReport) {
    let (fs, report) = FileSystem::repair(disk).expect("repair");
    let mut disk = fs.into_disk();
    let checked = FileSystem::fsck(&mut disk).expect("the repaired disk is consistent");
    assert_eq!(checked, report.result);
    let (mut again, second) = FileSystem::repair(disk).unwrap();
    assert!(
        second.fixes.is_empty(),
        "a second repair: {:?}",
        second.fixes
    );
    (snapshot(&mut again).unwrap(), report)
}

/// Asserts that some fix contains `what`.
fn said(report: &RepairReport, what: &str) {
    assert!(
        report.fixes.iter().any(|fix| fix.contains(what)),
        "no fix says {what:?}: {:#?}",
        report.fixes
    );
}

/// The sample's tree, read through a mount.
fn original() -> Snapshot {
    snapshot(&mut FileSystem::mount(sample()).unwrap()).unwrap()
}

/// `tree` without `path` and everything under it.
fn without(tree: &Snapshot, path: &str) -> Snapshot {
    let under = alloc::format!("{path}/");
    tree.iter()
        .filter(|(name, _)| name.as_str() != path && !name.starts_with(&under))
        .map(|(name, node)| (name.clone(), node.clone()))
        .collect()
}

/// `tree` with the directory `path` empty.
fn emptied(tree: &Snapshot, path: &str) -> Snapshot {
    let mut emptied = without(tree, path);
    emptied.insert(String::from(path), Node::Directory);
    emptied
}

/// Flips a bit in the directory block of `/a`, whose CRC then fails; returns it.
pub(super) fn damage_directory_a(disk: &mut MemoryDisk) -> u64 {
    let a_block = first_block(disk, &["a"]);
    let mut block = raw(disk, a_block);
    block[40] ^= 1;
    put_raw(disk, a_block, &block);
    a_block
}

/// Asserts that two trees are the same, naming the paths that differ (the trees
/// themselves are too large to print).
fn same_tree(actual: &Snapshot, expected: &Snapshot) {
    let differing: Vec<&String> = actual
        .keys()
        .chain(expected.keys())
        .filter(|path| actual.get(*path) != expected.get(*path))
        .collect();
    assert!(differing.is_empty(), "the trees differ at {differing:?}");
}

/// The file at `path` in `tree`.
fn file<'a>(tree: &'a Snapshot, path: &str) -> &'a super::FileImage {
    match tree.get(path) {
        Some(Node::File(image)) => image,
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn a_consistent_file_system_is_left_as_it_is() {
    let mut disk = sample();
    let before = contents(&mut disk);
    let (fs, report) = FileSystem::repair(disk).unwrap();
    assert!(report.fixes.is_empty());
    assert_eq!((report.result.directories, report.result.files), (3, 3));
    assert!(contents(&mut fs.into_disk()) == before, "repair wrote");
}

#[test]
fn a_damaged_superblock_is_refused_and_nothing_written() {
    let mut disk = sample();
    let mut block = raw(&mut disk, 0);
    block[200] ^= 0x40;
    put_raw(&mut disk, 0, &block);
    let before = contents(&mut disk);
    let mut copy = disk.clone();
    let error = FileSystem::repair(&mut copy).map(|_| ()).unwrap_err();
    assert!(
        matches!(&error, FsError::Corrupt { block: 0, what } if what.contains("repair needs the superblock")),
        "{error}"
    );
    assert!(contents(&mut copy) == before);

    let mut blank = sample();
    put_raw(&mut blank, 0, &crate::format::zeroed());
    assert_eq!(
        FileSystem::repair(blank).map(|_| ()).unwrap_err(),
        FsError::NotFormatted
    );
}

#[test]
fn a_damaged_directory_block_loses_only_its_entries() {
    let mut disk = sample();
    let a_block = damage_directory_a(&mut disk);
    let (tree, report) = repaired(disk);
    said(&report, &alloc::format!("/a: corrupt block {a_block}"));
    said(&report, "the entries it held are lost");
    same_tree(&tree, &emptied(&original(), "/a"));
    assert_eq!(report.result.files, 2);
}

#[test]
fn a_directory_pointing_at_an_ancestor_is_cut_off() {
    for (ancestor, disk) in super::corrupt::cycles() {
        let (tree, report) = repaired(disk);
        said(
            &report,
            &alloc::format!("/a/b: directory block {ancestor} is already in use"),
        );
        same_tree(&tree, &emptied(&original(), "/a/b"));
    }
}

#[test]
fn bad_extents_are_dropped_and_the_rest_kept() {
    let disk = sample();
    let root_block = first_block(&disk, &[]);
    let whole = original();
    for physical in [5000, 1020, 3] {
        let mut disk = disk.clone();
        edit_entry(&mut disk, root_block, "g", |inode| {
            inode.inline[0].physical = physical;
            inode.inline[0].count = if physical == 1020 { 10 } else { 1 };
        });
        let (tree, report) = repaired(disk);
        said(&report, "/g: extent (0, ");
        let g = file(&tree, "/g");
        assert_eq!(
            (g.size, g.blocks.len()),
            (3, 0),
            "/g keeps its size, as a hole"
        );
        same_tree(&without(&tree, "/g"), &without(&whole, "/g"));
    }

    // An extent that wraps does not parse: the entry goes, its neighbours stay.
    let mut wrapping = disk.clone();
    edit_entry(&mut wrapping, root_block, "g", |inode| {
        inode.inline[0].physical = u64::MAX
    });
    let (tree, report) = repaired(wrapping);
    said(
        &report,
        "entry 1: g: extent (0, 18446744073709551615, 1) is empty or wraps; dropped",
    );
    same_tree(&tree, &without(&whole, "/g"));

    let mut overlapping = disk.clone();
    edit_entry(&mut overlapping, root_block, "frag", |inode| {
        inode.inline[1].logical = 0
    });
    let (tree, report) = repaired(overlapping);
    said(&report, "overlaps or precedes the one before; dropped");
    let mut expected = file(&whole, "/frag").clone();
    expected.blocks.remove(&2);
    assert_eq!(file(&tree, "/frag"), &expected);
}

#[test]
fn a_block_shared_by_two_files_is_copied() {
    let mut disk = sample();
    let root_block = first_block(&disk, &[]);
    let f_block = first_block(&disk, &["a", "b", "f"]);
    edit_entry(&mut disk, root_block, "g", |inode| {
        inode.inline[0].physical = f_block + 1
    });
    let (tree, report) = repaired(disk);
    said(
        &report,
        &alloc::format!("block {} (file block ", f_block + 1),
    );
    said(&report, "is also another file's; copied");
    let whole = original();
    assert_eq!(file(&tree, "/a/b/f"), file(&whole, "/a/b/f"));
    let g = file(&tree, "/g");
    // /g now holds what f's second block held: 8000 - 4096 bytes of 1, then zeros.
    let block = g.blocks.get(&0).expect("/g keeps a block");
    assert_eq!(g.size, 3);
    assert!(block.get(..3).is_some_and(|bytes| bytes == [1, 1, 1]));
}

/// A disk whose block `block` cannot be read until something has been written.
struct UnreadableUntilWritten {
    disk: MemoryDisk,
    block: u64,
    written: bool,
}

impl crate::disk::BlockStore for UnreadableUntilWritten {
    fn blocks(&self) -> u64 {
        self.disk.blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        if block == self.block && !self.written {
            return Err("not yet".into());
        }
        self.disk.read(block, buf)
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        self.written = true;
        self.disk.write(block, data)
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The walk reads no file data: it notes the blocks it will copy, and the rebuild
/// reads each as it writes its copy, so a repair holds one copied block at a time. The
/// walk read them all and held them until the rebuild (up to `MAX_COPIED_BLOCKS`, 256
/// MiB), so this disk, whose shared blocks read only once the repair writes, failed it.
#[test]
fn the_blocks_repair_copies_are_read_as_it_writes_them() {
    let mut disk = sample();
    let root_block = first_block(&disk, &[]);
    let f_block = first_block(&disk, &["a", "b", "f"]);
    edit_entry(&mut disk, root_block, "g", |inode| {
        inode.inline[0].physical = f_block;
        inode.inline[0].count = 2;
        inode.size = 8000;
    });
    for shared in [f_block, f_block + 1] {
        let watched = UnreadableUntilWritten {
            disk: disk.clone(),
            block: shared,
            written: false,
        };
        let (fs, report) = FileSystem::repair(watched).expect("repair");
        said(&report, "is also another file's; copied");
        let (tree, _) = repaired(fs.into_disk().disk);
        assert_eq!(file(&tree, "/g"), file(&tree, "/a/b/f"), "block {shared}");
        assert_eq!(file(&tree, "/a/b/f"), file(&original(), "/a/b/f"));
    }
}

#[test]
fn a_damaged_overflow_block_keeps_the_inline_extents() {
    let mut disk = sample();
    let (_, frag) = entry_of(&disk, &["frag"]);
    let mut block = raw(&mut disk, frag.overflow);
    block[50] ^= 2;
    put_raw(&mut disk, frag.overflow, &block);
    let (tree, report) = repaired(disk);
    said(
        &report,
        &alloc::format!(
            "/frag: overflow extent block {} does not parse",
            frag.overflow
        ),
    );
    let whole = original();
    let mut expected = file(&whole, "/frag").clone();
    expected.blocks.retain(|logical, _| *logical < 8);
    assert_eq!(file(&tree, "/frag"), &expected);
    same_tree(&without(&tree, "/frag"), &without(&whole, "/frag"));
}

#[test]
fn sizes_grow_to_cover_their_blocks() {
    for size in [0, u64::MAX] {
        let mut disk = sample();
        let root_block = first_block(&disk, &[]);
        edit_entry(&mut disk, root_block, "g", |inode| inode.size = size);
        let (tree, report) = repaired(disk);
        said(
            &report,
            &alloc::format!("/g: size {size} is past the largest file or short"),
        );
        assert_eq!(file(&tree, "/g").size, 4096);
    }
}

#[test]
fn a_wrong_bitmap_is_rebuilt() {
    let disk = sample();
    let g_block = first_block(&disk, &["g"]);
    let mut damaged = disk.clone();
    edit_block(&mut damaged, 1 + 64, BITMAP_MAGIC, |block| {
        let layout = crate::format::Layout::for_disk(1024).unwrap();
        let (_, byte, bit) = bitmap_position(&layout, g_block);
        set_bit(block, byte, bit, false);
        let (_, byte, bit) = bitmap_position(&layout, 1000);
        set_bit(block, byte, bit, true);
    });
    let (tree, report) = repaired(damaged);
    said(
        &report,
        "the check found: corrupt block 65: bitmap marks block",
    );
    same_tree(&tree, &original());
    assert_eq!(report.result, FileSystem::fsck(&mut disk.clone()).unwrap());
}

#[test]
fn a_second_entry_of_a_name_is_kept_under_a_new_name() {
    let mut disk = sample();
    let root_block = first_block(&disk, &[]);
    // Rename the entry "g" to "a" (both one byte): two entries called "a".
    edit_block(&mut disk, root_block, DIRECTORY_MAGIC, |block| {
        let entries = crate::format::DirectoryBlock::decode_as(
            block,
            root_block,
            crate::format::Trust::Sealed,
        )
        .unwrap();
        let mut at = 24;
        for entry in &entries.entries {
            if entry.name == "g" {
                block[at + crate::format::Entry::size_on_disk("g") - 1] = b'a';
            }
            at += crate::format::Entry::size_on_disk(&entry.name);
        }
    });
    let (tree, report) = repaired(disk);
    said(&report, "/a: a second entry of this name; kept as a~2");
    let whole = original();
    let renamed: Vec<&String> = tree
        .keys()
        .filter(|path| path.starts_with("/a~2"))
        .collect();
    assert_eq!(renamed.len(), 1, "{tree:#?}");
    let mut expected = without(&whole, "/g");
    let moved = match tree.get("/a~2") {
        Some(Node::File(_)) => (String::from("/a~2"), whole.get("/g").unwrap().clone()),
        _ => panic!("the file is the second entry: {tree:#?}"),
    };
    expected.insert(moved.0, moved.1);
    same_tree(&tree, &expected);
}

#[test]
fn a_damaged_journal_is_dropped() {
    let mut disk = sample();
    let mut staged = alloc::collections::BTreeMap::new();
    staged.insert(10, crate::format::zeroed());
    let sequence = crate::journal::decode_header(&raw(&mut disk, 1), 1).unwrap();
    write_transaction(&mut disk, 2, sequence, &staged).unwrap();
    let (tree, report) = repaired(disk);
    said(&report, "journal: corrupt block 2");
    said(&report, "its transactions are dropped");
    same_tree(&tree, &original());
}

#[test]
fn a_journal_holding_operations_is_replayed_before_repairing() {
    let mut fs = FileSystem::mount(sample()).unwrap();
    fs.create("/journaled").unwrap();
    fs.write("/journaled", 0, b"in the journal").unwrap();
    let journaled = snapshot(&mut fs).unwrap();
    let mut disk = fs.into_disk();
    let a_block = damage_directory_a(&mut disk);
    let (tree, report) = repaired(disk);
    said(&report, &alloc::format!("/a: corrupt block {a_block}"));
    same_tree(&tree, &emptied(&journaled, "/a"));
}

/// A superblock torn by a crash at a checkpoint (the home's fields, the new image's
/// CRC) on a disk damaged elsewhere too is read from the journal, which holds its
/// image, as mount reads it; repair refused the disk ("repair needs the superblock").
#[test]
fn a_superblock_torn_with_its_image_in_the_journal_is_repaired() {
    // Directories enough for the root to take a second block, which changes its
    // inode in the superblock; one transaction, so that no checkpoint writes it home.
    let mut fs = FileSystem::mount(sample()).unwrap();
    fs.set_commit_policy(crate::CommitPolicy::OnCommit).unwrap();
    for index in 0..10 {
        fs.mkdir(&alloc::format!("/{index}{}", "n".repeat(250)))
            .unwrap();
    }
    fs.commit().unwrap();
    let journaled = snapshot(&mut fs).unwrap();
    let mut disk = fs.into_disk();
    let replay = crate::journal::scan(&mut disk, &crate::format::Layout::for_disk(1024).unwrap());
    let image = replay
        .unwrap()
        .blocks
        .remove(&0)
        .expect("block 0 is journaled");
    let mut home = raw(&mut disk, 0);
    assert!(home != image, "the root's inode changed");
    home[CRC_AT..].copy_from_slice(&image[CRC_AT..]);
    put_raw(&mut disk, 0, &home);
    let a_block = damage_directory_a(&mut disk);
    let (tree, report) = repaired(disk);
    said(&report, &alloc::format!("/a: corrupt block {a_block}"));
    same_tree(&tree, &emptied(&journaled, "/a"));
}

/// A journal the disk fails to read may hold committed operations: repair fails with
/// the disk's error and writes nothing. It dropped the journal as damaged and rebuilt
/// the file system without its operations.
#[test]
fn a_journal_the_disk_cannot_read_fails_the_repair_and_writes_nothing() {
    let mut disk = sample_with_journaled("/journaled", b"in the journal");
    let before = contents(&mut disk);
    let mut failing = super::ops::BadBlock(disk, 1);
    assert_eq!(
        FileSystem::repair(&mut failing).map(drop),
        Err(FsError::Disk(String::from("reading block 1: unreadable")))
    );
    assert!(contents(&mut failing.0) == before, "repair wrote");
    let (mut fs, _) = FileSystem::repair(failing.0).unwrap();
    assert_eq!(fs.read_all("/journaled").unwrap(), b"in the journal");
}

/// A read the disk fails once, the check's read of the journal, fails the repair with
/// the disk's error and writes nothing: the check could not say the file system is
/// damaged. Any error of the check but NoMemory was taken for damage, so the repair
/// went on, its own read of the journal succeeded, and it rebuilt a sound file system
/// (the journal written home, every directory and the bitmap written anew).
#[test]
fn a_check_the_disk_fails_once_fails_the_repair_and_writes_nothing() {
    let disk = sample_with_journaled("/journaled", b"in the journal");
    let before = contents(&mut disk.clone());
    let mut flaky = super::ops::FlakyBlock {
        inner: disk,
        block: 1,
        reads: 0,
        fail_at: 1,
    };
    assert_eq!(
        FileSystem::repair(&mut flaky).map(drop),
        Err(FsError::Disk(String::from("reading block 1: unreadable")))
    );
    assert_eq!(
        flaky.reads, 1,
        "the check's read failed, nothing read after it"
    );
    assert!(contents(&mut flaky.inner) == before, "repair wrote");
    let (mut fs, report) = FileSystem::repair(flaky).unwrap();
    assert_eq!(report.fixes, Vec::<String>::new(), "sound: nothing to fix");
    assert_eq!(fs.read_all("/journaled").unwrap(), b"in the journal");
}

#[test]
fn a_journal_the_app_cannot_hold_fails_the_repair_and_writes_nothing() {
    let mut disk = sample_with_journaled("/journaled", b"in the journal");
    damage_directory_a(&mut disk);
    let before = contents(&mut disk);
    // The fewest blocks with which the check replays the journal (and finds /a).
    let replays = |left| {
        let checked = with_blocks_left(left, || FileSystem::fsck(&mut disk.clone()));
        !matches!(checked, Err(FsError::NoMemory { .. }))
    };
    let needed = (0..100).find(|&left| replays(left)).unwrap();
    assert!(needed > 0);
    // Short for the check's replay, then for repair's own once the check is done.
    for left in [needed - 1, needed] {
        let repaired = with_blocks_left(left, || FileSystem::repair(&mut disk).map(drop));
        assert!(
            matches!(repaired, Err(FsError::NoMemory { .. })),
            "{left} blocks: {repaired:?}"
        );
        assert!(contents(&mut disk) == before, "{left} blocks: repair wrote");
    }
    let (mut fs, _) = FileSystem::repair(disk).unwrap();
    assert_eq!(fs.read_all("/journaled").unwrap(), b"in the journal");
}

/// Mutated images (metadata bytes changed, most resealed): each is repaired to a
/// consistent file system, or refused only for a damaged superblock; one the check
/// accepts keeps its tree.
fn fuzz(journaled: bool, rounds: u64, seed: u64) -> (u64, u64) {
    let (image, metadata) = base(journaled);
    let mut rng = Rng::new(seed);
    let (mut repaired_count, mut refused) = (0, 0);
    for round in 0..rounds {
        let mut disk = image.clone();
        let mut touched_superblock = false;
        for _ in 0..1 + rng.below(2) {
            let number = *rng.pick(&metadata);
            touched_superblock |= number == 0;
            let reseal = rng.chance(80);
            mutate(&mut disk, number, &mut rng, reseal);
        }
        let accepted = FileSystem::mount(disk.clone())
            .ok()
            .map(|mut fs| snapshot(&mut fs).unwrap());
        match FileSystem::repair(disk) {
            Ok((mut fs, report)) => {
                if let Some(tree) = accepted {
                    assert!(report.fixes.is_empty(), "round {round}: {:?}", report.fixes);
                    same_tree(&snapshot(&mut fs).unwrap(), &tree);
                }
                let mut disk = fs.into_disk();
                FileSystem::fsck(&mut disk)
                    .unwrap_or_else(|e| panic!("round {round}: repaired but {e}"));
                let mut fs = FileSystem::mount(disk).unwrap();
                exercise(&mut fs, &mut rng);
                repaired_count += 1;
            }
            Err(error) => {
                assert!(
                    touched_superblock,
                    "round {round}: refused with the superblock intact: {error}"
                );
                refused += 1;
            }
        }
    }
    (repaired_count, refused)
}

#[test]
fn mutated_metadata_is_repaired_to_consistency() {
    let rounds = 500 * super::property::long_factor();
    let (repaired_count, _) = fuzz(false, rounds, 11);
    assert!(repaired_count > rounds / 2, "{repaired_count} of {rounds}");
}

#[test]
fn mutated_metadata_with_a_full_journal_is_repaired_to_consistency() {
    let rounds = 500 * super::property::long_factor();
    let (repaired_count, _) = fuzz(true, rounds, 12);
    assert!(repaired_count > rounds / 2, "{repaired_count} of {rounds}");
}

#[test]
fn an_extent_list_is_split_around_blocks_a_directory_owns() {
    // /g's only block is made the same block as /a's directory block, and /g is met
    // first (the root's entries are walked in reverse order of the stack).
    let mut disk = sample();
    let root_block = first_block(&disk, &[]);
    let a_block = first_block(&disk, &["a"]);
    edit_entry(&mut disk, root_block, "frag", |inode| {
        inode.inline[0] = Extent {
            logical: 0,
            physical: a_block,
            count: 1,
        };
    });
    let (tree, report) = repaired(disk);
    said(
        &report,
        &alloc::format!("/frag: block {a_block} (file block 0)"),
    );
    said(&report, "it becomes a hole");
    let whole = original();
    // Whichever is walked first, /a keeps its entries and /frag loses that block.
    same_tree(&without(&tree, "/frag"), &without(&whole, "/frag"));
    let mut expected = file(&whole, "/frag").clone();
    expected.blocks.remove(&0);
    assert_eq!(file(&tree, "/frag"), &expected);
}

/// The rebuild writes none of the damaged tree's blocks before it commits, so it needs
/// free blocks for the new directories and overflow blocks beside the old ones: on a
/// disk too full for them repair fails with `NoSpace`, and the damaged file system is
/// left as it was, read as before by a read-only mount. (It formatted the disk and
/// rebuilt over the old blocks: this disk was repaired then, but a crash lost it.)
#[test]
fn a_repair_without_room_beside_the_damaged_tree_fails_and_loses_nothing() {
    let mut fs = FileSystem::mount(super::corrupt::sample_on(256)).unwrap();
    let free = fs.statfs().free_blocks as usize;
    fs.create("/big").unwrap();
    fs.write("/big", 0, &alloc::vec![9; (free - 2) * 4096])
        .unwrap();
    fs.sync().unwrap();
    let mut disk = fs.into_disk();
    let root_block = first_block(&disk, &[]);
    let f_block = first_block(&disk, &["a", "b", "f"]);
    edit_entry(&mut disk, root_block, "g", |inode| {
        inode.inline[0].physical = f_block + 1
    });
    let read = |disk: &MemoryDisk| {
        let (mut fs, found) = FileSystem::mount_read_only(disk.clone()).unwrap();
        let files: Vec<Vec<u8>> = ["/a/b/f", "/g", "/big", "/frag"]
            .iter()
            .map(|path| fs.read_all(path).unwrap())
            .collect();
        (files, found)
    };
    let before = read(&disk);
    assert_eq!(
        FileSystem::repair(&mut disk).map(drop),
        Err(FsError::NoSpace)
    );
    assert!(read(&disk) == before, "the damaged tree reads otherwise");
}

/// A directory's extent over a file's data block (which does not parse as a directory
/// block) leaves the block to the file, whichever is walked first: the walk marked it
/// metadata before parsing it, so a file walked later lost it to a hole, and one walked
/// earlier kept it while the rebuild kept it apart too (claimed twice: "bitmap already
/// marks block N used", the repair failed).
#[test]
fn a_directory_extent_over_a_file_block_leaves_the_block_to_the_file() {
    // The root's entries are walked /frag, /g, /a, then /a/b and /a/b/f.
    for (path, names) in [("/g", &["g"][..]), ("/a/b/f", &["a", "b", "f"][..])] {
        let mut disk = sample();
        let block = first_block(&disk, names);
        let root_block = first_block(&disk, &[]);
        edit_entry(&mut disk, root_block, "a", |inode| {
            inode.inline.push(Extent {
                logical: 1,
                physical: block,
                count: 1,
            });
            inode.size = 8192;
        });
        let (tree, report) = repaired(disk);
        said(&report, &alloc::format!("corrupt block {block}"));
        same_tree(&tree, &original());
        assert!(
            file(&tree, path) == file(&original(), path),
            "{path} lost its block"
        );
    }
}

/// An overflow extent pointer at a later-walked file's data block: the block does not
/// parse, ends the chain, and stays the file's (it became a hole).
#[test]
fn an_overflow_pointer_at_a_file_block_leaves_the_block_to_the_file() {
    let mut disk = sample();
    let g_block = first_block(&disk, &["g"]);
    let root_block = first_block(&disk, &[]);
    // /frag is walked before /g.
    edit_entry(&mut disk, root_block, "frag", |inode| {
        inode.overflow = g_block
    });
    let (tree, report) = repaired(disk);
    said(
        &report,
        &alloc::format!("/frag: overflow extent block {g_block} does not parse"),
    );
    let whole = original();
    assert!(file(&tree, "/g") == file(&whole, "/g"), "/g lost its block");
    same_tree(&without(&tree, "/frag"), &without(&whole, "/frag"));
}

/// The change stamp of every file and directory of `fs`, the root's among them.
fn stamps(fs: &mut FileSystem<MemoryDisk>) -> Vec<u64> {
    let paths: Vec<String> = snapshot(fs).unwrap().into_keys().collect();
    paths
        .iter()
        .map(|path| fs.stat(path).unwrap().changed)
        .collect()
}

/// Every change stamp after a repair is above every one before it, so that a tool that
/// kept one sees the repaired inodes as changed: the rebuild's journal began at
/// sequence 1 again, stamping every inode 1. Disks whose stamps pass 500: operations in
/// the journal, a damaged journal (its transactions dropped), and a repair cut by a
/// crash after it wrote the journal's blocks home and zeroed its log, before it
/// rewrote the header (the scan then finds no transaction past the old header's
/// number, below the stamps on the disk), and a journal header that does not read
/// (the stamps the salvage walk reads bound them then).
#[test]
fn change_stamps_after_a_repair_are_above_every_stamp_before() {
    let mut fs = FileSystem::mount(sample()).unwrap();
    for round in 0..500u32 {
        fs.write("/g", 0, &round.to_le_bytes()).unwrap();
    }
    fs.create("/late").unwrap();
    let before = stamps(&mut fs).into_iter().max().unwrap();
    assert!(before > 500, "{before}");
    let journaled = fs.into_disk();

    let mut fs = FileSystem::mount(journaled.clone()).unwrap();
    fs.sync().unwrap();
    let mut damaged_journal = fs.into_disk();
    let mut unreadable_header = damaged_journal.clone();
    let mut header = raw(&mut unreadable_header, 1);
    header[16] ^= 1;
    put_raw(&mut unreadable_header, 1, &header);
    let sequence = crate::journal::decode_header(&raw(&mut damaged_journal, 1), 1).unwrap();
    let staged = alloc::collections::BTreeMap::from([(10, crate::format::zeroed())]);
    write_transaction(&mut damaged_journal, 2, sequence, &staged).unwrap();

    let mut cut = journaled.clone();
    let layout = crate::format::Layout::for_disk(1024).unwrap();
    let replay = crate::journal::scan(&mut cut, &layout).unwrap();
    assert!(replay.transactions > 0);
    for (number, block) in &replay.blocks {
        put_raw(&mut cut, *number, block);
    }
    put_raw(&mut cut, 2, &crate::format::zeroed());

    let mut damaged_directory = journaled;
    damage_directory_a(&mut damaged_directory);
    damage_directory_a(&mut cut);
    for (name, disk) in [
        ("operations in the journal", damaged_directory),
        ("a damaged journal", damaged_journal),
        ("a repair cut after the journal went home", cut),
        ("an unreadable journal header", unreadable_header),
    ] {
        let (mut fs, _) = FileSystem::repair(disk).unwrap();
        let after = stamps(&mut fs);
        assert!(
            after.iter().all(|&stamp| stamp > before),
            "{name}: stamps {after:?}, {before} before"
        );
        let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
        fs.create("/new").unwrap();
        assert!(fs.stat("/new").unwrap().changed > before, "{name}");
    }
}

/// A repair over a journal header whose number is near 2^63, the bound sequence
/// numbers stay below, leaves a disk that mounts: the rebuild commits its superblock
/// as its first number and the checkpoint writes the next into the header, so a header
/// within the journal's blocks of the bound counts as one that does not read (the
/// numbers go on past the stamps the salvage walk reads, the newest /frag's). The
/// number was held at 2^63 - 1, so with the header at 2^63 - J - 1 or above (J the
/// journal's blocks) the checkpoint wrote 2^63 into the header and the mount refused
/// it; one below that counts on from the header.
#[test]
fn a_repair_over_a_journal_header_near_the_bound_leaves_a_disk_that_mounts() {
    let journal = crate::format::Layout::for_disk(1024)
        .unwrap()
        .journal_blocks;
    let newest = stamps(&mut FileSystem::mount(sample()).unwrap())
        .into_iter()
        .max()
        .unwrap();
    let bound = 1u64 << 63;
    for (header, first) in [
        (bound - 2, newest + 1),
        (bound - journal - 1, newest + 1),
        (bound - journal - 2, bound - 2),
    ] {
        let mut disk = sample();
        put_raw(
            &mut disk,
            1,
            &crate::journal::encode_header(1, header).unwrap(),
        );
        damage_directory_a(&mut disk);
        let (fs, _) = FileSystem::repair(disk).unwrap();
        let mut fs = FileSystem::mount(fs.into_disk())
            .unwrap_or_else(|error| panic!("header {header}: {error}"));
        assert_eq!(stamps(&mut fs).into_iter().max(), Some(first), "{header}");
    }
}

/// A change stamp with no room past it (a damaged inode's, up to `u64::MAX`) is passed
/// over: repair's numbers go on from the journal header's, not back to 1 for every
/// stamp, below those the tree holds; a stamp with room past it still counts.
#[test]
fn a_stamp_with_no_room_past_it_is_passed_over() {
    let layout = crate::format::Layout::for_disk(1024).unwrap();
    let mut disk = sample();
    put_raw(
        &mut disk,
        1,
        &crate::journal::encode_header(1, 500).unwrap(),
    );
    let past =
        |disk: &mut _, stamp| crate::journal::sequence_past_journal(disk, &layout, stamp).unwrap();
    for stamp in [u64::MAX, (1 << 63) - 2] {
        assert_eq!(
            past(&mut disk, stamp),
            500 + layout.journal_blocks,
            "{stamp}"
        );
    }
    assert_eq!(past(&mut disk, 90_000), 90_001);
}
