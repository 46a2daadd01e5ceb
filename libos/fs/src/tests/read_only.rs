//! Read-only mounts: a damaged file system is read where the damage is not, every
//! change is refused with `ReadOnly`, and nothing is ever written to the disk.

use alloc::vec::Vec;

use super::corrupt::{
    contents, edit_block, edit_entry, entry_of, first_block, put_raw, sample, sample_with_journaled,
};
use super::ops::FailingDisk;
use super::{CountingDisk, Counts, snapshot};
use crate::disk::BlockStore;
use crate::format::{EXTENTS_MAGIC, OVERFLOW_EXTENTS_AT, OVERFLOW_NEXT_AT, put};
use crate::fs::FileSystem;
use crate::{FsError, MemoryDisk};

/// Every kind of change, each refused with `ReadOnly`.
fn refuses_every_change(fs: &mut FileSystem<MemoryDisk>) {
    let results = [
        fs.mkdir("/new"),
        fs.create("/new-file"),
        fs.write("/g", 0, b"x"),
        // Blocks past the end: a damaged mount counts no free block (NoSpace before).
        fs.write("/g", 1 << 20, b"x"),
        fs.write("/g", 0, b""),
        fs.mkdir("/g"),
        fs.replace("/g", b"x"),
        fs.truncate("/g", 0),
        fs.truncate("/g", 3),
        fs.unlink("/g"),
        fs.unlink("/missing"),
        fs.rename("/g", "/h"),
        fs.rename("/g", "/g"),
        fs.replace_after("/h", b"x", "/g"),
        fs.write_after("/g", 0, b"x", "/g"),
        fs.commit(),
        fs.sync(),
    ];
    for (index, result) in results.into_iter().enumerate() {
        assert!(
            matches!(result, Err(FsError::ReadOnly(_))),
            "change {index}: {result:?}"
        );
    }
}

#[test]
fn a_sound_file_system_mounted_read_only_reads_and_refuses_changes() {
    let mut disk = sample();
    let before = contents(&mut disk);
    let expected = snapshot(&mut FileSystem::mount(disk.clone()).unwrap()).unwrap();
    let (mut fs, found) = FileSystem::mount_read_only(disk).unwrap();
    assert_eq!(found, None);
    assert!(fs.is_read_only());
    assert_eq!(snapshot(&mut fs).unwrap(), expected);
    refuses_every_change(&mut fs);
    assert_eq!(fs.read_all("/g").unwrap(), b"gee", "nothing changed");
    assert!(contents(&mut fs.into_disk()) == before, "wrote to the disk");
}

#[test]
fn a_damaged_file_system_is_read_where_the_damage_is_not() {
    let mut disk = sample();
    let a_block = super::repair::damage_directory_a(&mut disk);
    let before = contents(&mut disk);
    assert!(FileSystem::mount(disk.clone()).is_err(), "mount refuses it");
    let (mut fs, found) = FileSystem::mount_read_only(disk).unwrap();
    let found = found.expect("the check's finding");
    assert!(
        matches!(&found, FsError::Corrupt { block, .. } if *block == a_block),
        "{found}"
    );
    assert_eq!(fs.read_all("/g").unwrap(), b"gee");
    assert_eq!(fs.read_all("/frag").unwrap().len(), 5 * 8192 + 5);
    let names: alloc::vec::Vec<_> = fs.list("/").unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["a", "frag", "g"]);
    let damaged = fs.list("/a").unwrap_err();
    assert!(
        matches!(&damaged, FsError::Corrupt { block, .. } if *block == a_block),
        "{damaged}"
    );
    assert!(fs.read_all("/a/b/f").is_err());
    refuses_every_change(&mut fs);
    assert!(contents(&mut fs.into_disk()) == before, "wrote to the disk");
}

#[test]
fn journaled_operations_are_seen_but_never_written_home() {
    let mut disk = sample_with_journaled("/journaled", b"only in the journal");
    let before = contents(&mut disk);
    let (mut fs, found) = FileSystem::mount_read_only(disk).unwrap();
    assert_eq!(found, None);
    assert_eq!(fs.read_all("/journaled").unwrap(), b"only in the journal");
    assert!(
        contents(&mut fs.into_disk()) == before,
        "the journal was written home"
    );
}

#[test]
fn a_journal_that_cannot_be_written_home_is_read_through_in_memory() {
    let disk = sample_with_journaled("/journaled", b"only in the journal");
    for (writes_left, fail_flush) in [(0, false), (1, false), (100, true)] {
        let failing = FailingDisk {
            inner: disk.clone(),
            writes_left,
            fail_flush,
        };
        let mut told = Vec::new();
        let mut fs =
            FileSystem::mount_to_read(failing, &mut |why| told.push(alloc::format!("{why}")))
                .expect("mounted read-only, not refused");
        assert!(fs.is_read_only());
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            told[0].contains("writing the journal home failed"),
            "{told:?}"
        );
        assert_eq!(fs.read_all("/journaled").unwrap(), b"only in the journal");
        assert_eq!(fs.read_all("/g").unwrap(), b"gee");
        assert!(matches!(fs.create("/new"), Err(FsError::ReadOnly(_))));
    }
    let mut told = 0;
    let mut fs = FileSystem::mount_to_read(disk, &mut |_| told += 1).unwrap();
    assert_eq!(told, 0);
    assert!(
        !fs.is_read_only(),
        "a disk that takes writes mounts writable"
    );
    fs.create("/new").unwrap();
}

#[test]
fn without_a_superblock_there_is_nothing_to_mount() {
    let mut disk = sample();
    put_raw(&mut disk, 0, &crate::format::zeroed());
    assert_eq!(
        FileSystem::mount_read_only(disk).map(|_| ()).unwrap_err(),
        FsError::NotFormatted
    );
}

/// `disk` mounted read-only (it must be found damaged), counting its requests, with
/// the cache off: every metadata block read is a disk read.
fn damaged_read_only(disk: MemoryDisk) -> FileSystem<CountingDisk> {
    let (mut fs, found) = FileSystem::mount_read_only(CountingDisk::new(disk)).unwrap();
    assert!(found.is_some(), "the check finds the damage");
    fs.set_cache_blocks(0);
    fs.store.disk.counts = Counts::default();
    fs
}

/// Whether `result` is `Corrupt` naming block `at`.
fn is_corrupt<T>(result: &Result<T, FsError>, at: u64) -> bool {
    matches!(result, Err(FsError::Corrupt { block, .. }) if *block == at)
}

#[test]
fn an_overflow_chain_that_loops_is_corrupt_at_once() {
    let mut disk = sample();
    let overflow = entry_of(&disk, &["frag"]).1.overflow;
    edit_block(&mut disk, overflow, EXTENTS_MAGIC, |block| {
        put(&mut block[..], OVERFLOW_NEXT_AT, &overflow.to_le_bytes());
    });
    let mut fs = damaged_read_only(disk);
    let result = fs.read_all("/frag");
    assert!(is_corrupt(&result, overflow), "{result:?}");
    let reads = fs.store.disk.counts.reads;
    assert!(
        reads <= 10,
        "{reads} reads: the chain was walked round and round"
    );
    assert_eq!(fs.read_all("/g").unwrap(), b"gee");
}

#[test]
fn extents_out_of_logical_order_are_corrupt_not_misread() {
    let mut disk = sample();
    let overflow = entry_of(&disk, &["frag"]).1.overflow;
    // The overflow block's first extent (file block 8) claims file block 2, which an
    // inline extent maps already (an extent's first field is its logical block).
    edit_block(&mut disk, overflow, EXTENTS_MAGIC, |block| {
        put(&mut block[..], OVERFLOW_EXTENTS_AT, &2u64.to_le_bytes());
    });
    let mut fs = damaged_read_only(disk);
    let result = fs.read_all("/frag");
    assert!(
        matches!(result, Err(FsError::Corrupt { ref what, .. }) if what.contains("overlaps or precedes")),
        "{result:?}"
    );
    assert_eq!(fs.read_all("/g").unwrap(), b"gee");
}

#[test]
fn a_directory_is_read_as_far_as_its_size_not_its_extents() {
    let mut disk = sample();
    let (root_block, a) = entry_of(&disk, &["a"]);
    assert_eq!(a.size, 4096);
    let a_block = first_block(&disk, &["a"]);
    // One extent from /a's block to the end of the disk: the blocks after it (/a/b's
    // directory block, /a/b/f's data, ...) are not /a's.
    let to_the_end = disk.blocks() - a_block;
    edit_entry(&mut disk, root_block, "a", |inode| {
        inode.inline[0].count = to_the_end
    });
    let mut fs = damaged_read_only(disk);
    let names: Vec<_> = fs.list("/a").unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["b"]);
    assert_eq!(fs.stat("/a/f"), Err(FsError::NotFound("/a/f".into())));
    assert_eq!(fs.read_all("/a/b/f").unwrap(), [1; 8000]);
}

#[test]
fn a_directory_block_that_is_another_files_overflow_block_is_corrupt() {
    let mut disk = sample();
    let (root_block, _) = entry_of(&disk, &["a"]);
    let overflow = entry_of(&disk, &["frag"]).1.overflow;
    edit_entry(&mut disk, root_block, "a", |inode| {
        inode.inline[0].physical = overflow
    });
    let (mut fs, found) = FileSystem::mount_read_only(disk).unwrap();
    assert!(found.is_some(), "the check finds the damage");
    // Verified as an overflow block, and so cached: it must not then pass as /a's
    // directory block.
    assert_eq!(fs.stat("/frag").unwrap().blocks, 6);
    for result in [fs.stat("/a/x").map(|_| ()), fs.list("/a").map(|_| ())] {
        assert!(
            matches!(&result, Err(FsError::Corrupt { block, what })
                if *block == overflow && what.contains("not a directory block")),
            "{result:?}"
        );
    }
    assert_eq!(fs.read_all("/frag").unwrap().len(), 5 * 8192 + 5);
}
