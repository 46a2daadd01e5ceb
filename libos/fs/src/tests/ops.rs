//! Every operation and every error case, against a `MemoryDisk`.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Rng, snapshot};
use crate::dir::Location;
use crate::disk::BlockStore;
use crate::format::zeroed;
use crate::fs::FileSystem;
use crate::path::parse;
use crate::*;

pub(crate) fn fresh(blocks: u64) -> FileSystem<MemoryDisk> {
    FileSystem::format(MemoryDisk::new(blocks)).unwrap()
}

fn remount(fs: FileSystem<MemoryDisk>) -> FileSystem<MemoryDisk> {
    FileSystem::mount(fs.into_disk()).unwrap()
}

fn names_in(fs: &mut FileSystem<MemoryDisk>, path: &str) -> Vec<String> {
    fs.list(path)
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect()
}

fn not_found(path: &str) -> FsError {
    FsError::NotFound(path.into())
}

#[test]
fn a_fresh_file_system_is_empty_and_checks_clean() {
    let mut fs = fresh(1024);
    assert_eq!(fs.list("/").unwrap(), []);
    let root = fs.stat("/").unwrap();
    assert_eq!(
        (root.kind, root.size, root.blocks),
        (FileKind::Directory, 0, 0)
    );
    let layout_data = 1024 - 1 - 64 - 1;
    assert_eq!(
        fs.statfs(),
        StatFs {
            block_size: 4096,
            total_blocks: layout_data,
            free_blocks: layout_data
        }
    );
    let report = fs.check().unwrap();
    assert_eq!(
        (
            report.directories,
            report.files,
            report.used_blocks,
            report.free_blocks
        ),
        (1, 0, 0, layout_data)
    );
    let mut disk = fs.into_disk();
    assert_eq!(FileSystem::fsck(&mut disk).unwrap().journal_transactions, 0);
    let mut fs = FileSystem::mount(disk).unwrap();
    assert_eq!(fs.list("/").unwrap(), []);
}

#[test]
fn formatting_needs_room_and_mounting_needs_a_file_system() {
    assert_eq!(
        FileSystem::format(MemoryDisk::new(97)).unwrap_err(),
        FsError::TooSmall(97)
    );
    assert!(FileSystem::format(MemoryDisk::new(98)).is_ok());
    // A disk of no block (an empty image) is too small, not a disk error reading block 0.
    assert_eq!(
        FileSystem::mount(MemoryDisk::new(0)).unwrap_err(),
        FsError::TooSmall(0)
    );
    assert_eq!(
        FileSystem::fsck(&mut MemoryDisk::new(0)).unwrap_err(),
        FsError::TooSmall(0)
    );
    assert_eq!(
        FileSystem::mount(MemoryDisk::new(1024)).unwrap_err(),
        FsError::NotFormatted
    );
    assert_eq!(
        FileSystem::fsck(&mut MemoryDisk::new(1024)).unwrap_err(),
        FsError::NotFormatted
    );
}

#[test]
fn memory_disks_refuse_bad_requests() {
    let mut disk = MemoryDisk::new(4);
    let mut block = vec![7u8; BLOCK_SIZE];
    disk.read(3, &mut block).unwrap();
    assert!(
        block.iter().all(|&byte| byte == 0),
        "unwritten blocks read as zeros"
    );
    assert!(
        disk.read(4, &mut block)
            .unwrap_err()
            .contains("past the end")
    );
    assert!(
        disk.write(0, &block[..10])
            .unwrap_err()
            .contains("10 bytes")
    );
    block[0] = 9;
    disk.write(2, &block).unwrap();
    let mut back = vec![0u8; BLOCK_SIZE];
    disk.read(2, &mut back).unwrap();
    assert_eq!(back, block);
    assert_eq!(disk.blocks(), 4);
    assert_eq!(alloc::format!("{disk:?}"), "MemoryDisk(4 blocks)");
}

#[test]
fn directories_and_files_are_created_once() {
    let mut fs = fresh(1024);
    fs.mkdir("/a").unwrap();
    fs.mkdir("/a/b").unwrap();
    fs.create("/a/b/f").unwrap();
    fs.create("/a//g/").unwrap();
    assert_eq!(names_in(&mut fs, "/a"), ["b", "g"]);
    assert_eq!(fs.mkdir("/a").unwrap_err(), FsError::Exists("/a".into()));
    assert_eq!(
        fs.create("/a/b/f").unwrap_err(),
        FsError::Exists("/a/b/f".into())
    );
    assert_eq!(
        fs.mkdir("/a/b/f").unwrap_err(),
        FsError::Exists("/a/b/f".into())
    );
    assert_eq!(fs.mkdir("/").unwrap_err(), FsError::Exists("/".into()));
    assert_eq!(fs.create("/x/y").unwrap_err(), not_found("/x"));
    assert_eq!(fs.mkdir("/a/x/y").unwrap_err(), not_found("/a/x"));
    assert_eq!(
        fs.create("/a/b/f/z").unwrap_err(),
        FsError::NotADirectory("/a/b/f".into())
    );
    assert_eq!(
        fs.mkdir("/a/g/h/i").unwrap_err(),
        FsError::NotADirectory("/a/g".into())
    );
    let longest = alloc::format!("/{}", "x".repeat(MAX_NAME));
    fs.create(&longest).unwrap();
    let too_long = alloc::format!("/{}", "x".repeat(MAX_NAME + 1));
    assert_eq!(
        fs.create(&too_long).unwrap_err(),
        FsError::NameTooLong(too_long)
    );
    for bad in ["", "a", "/a/./b", "/a/../b", "/nul\0"] {
        assert_eq!(
            fs.create(bad).unwrap_err(),
            FsError::InvalidName(bad.into())
        );
        assert_eq!(fs.mkdir(bad).unwrap_err(), FsError::InvalidName(bad.into()));
    }
    let unicode = "/ünïcödé ✓";
    fs.create(unicode).unwrap();
    let fs = &mut remount(fs);
    assert_eq!(names_in(fs, "/").len(), 3);
    assert!(names_in(fs, "/").contains(&String::from("ünïcödé ✓")));
    assert_eq!(fs.stat("/a/b").unwrap().kind, FileKind::Directory);
    assert_eq!(fs.stat("/a/b/f").unwrap().kind, FileKind::File);
    fs.check().unwrap();
}

#[test]
fn writes_and_reads_meet_at_any_offset() {
    let mut fs = fresh(1024);
    fs.create("/f").unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    fs.write("/f", 0, &data).unwrap();
    assert_eq!(fs.read_all("/f").unwrap(), data);
    fs.write("/f", 4090, b"across a block boundary").unwrap();
    let mut expected = data.clone();
    expected[4090..4090 + 23].copy_from_slice(b"across a block boundary");
    assert_eq!(fs.read_all("/f").unwrap(), expected);
    let mut buf = [0u8; 30];
    assert_eq!(fs.read("/f", 4085, &mut buf).unwrap(), 30);
    assert_eq!(&buf[..], &expected[4085..4115]);
    assert_eq!(
        fs.read("/f", 9990, &mut buf).unwrap(),
        10,
        "stops at the end"
    );
    assert_eq!(&buf[..10], &expected[9990..]);
    assert_eq!(fs.read("/f", 10_000, &mut buf).unwrap(), 0);
    assert_eq!(fs.read("/f", u64::MAX, &mut buf).unwrap(), 0);
    fs.write("/f", 10_000, &[]).unwrap();
    fs.write("/f", 50_000, &[]).unwrap();
    assert_eq!(
        fs.stat("/f").unwrap().size,
        10_000,
        "empty writes change nothing"
    );
    assert_eq!(fs.stat("/f").unwrap().blocks, 3);
    let fs = &mut remount(fs);
    assert_eq!(fs.read_all("/f").unwrap(), expected);
    fs.check().unwrap();
}

#[test]
fn reading_and_writing_refuse_what_is_not_a_file() {
    let mut fs = fresh(1024);
    fs.mkdir("/d").unwrap();
    fs.create("/f").unwrap();
    let mut buf = [0u8; 4];
    let is_directory = FsError::IsADirectory("/d".into());
    assert_eq!(fs.write("/d", 0, b"x").unwrap_err(), is_directory);
    assert_eq!(fs.read("/d", 0, &mut buf).unwrap_err(), is_directory);
    assert_eq!(fs.read_all("/d").unwrap_err(), is_directory);
    assert_eq!(fs.truncate("/d", 0).unwrap_err(), is_directory);
    assert_eq!(fs.write("/g", 0, b"x").unwrap_err(), not_found("/g"));
    assert_eq!(fs.read("/g", 0, &mut buf).unwrap_err(), not_found("/g"));
    assert_eq!(fs.truncate("/d/g", 0).unwrap_err(), not_found("/d/g"));
    assert_eq!(
        fs.write("/f/g", 0, b"x").unwrap_err(),
        FsError::NotADirectory("/f".into())
    );
    assert_eq!(
        fs.write("/f", MAX_FILE_SIZE, b"x").unwrap_err(),
        FsError::FileTooLarge("/f".into())
    );
    assert_eq!(
        fs.write("/f", u64::MAX, b"x").unwrap_err(),
        FsError::FileTooLarge("/f".into())
    );
    assert_eq!(
        fs.truncate("/f", MAX_FILE_SIZE + 1).unwrap_err(),
        FsError::FileTooLarge("/f".into())
    );
    fs.write("/f", MAX_FILE_SIZE - 1, b"x").unwrap();
    assert_eq!(fs.stat("/f").unwrap().size, MAX_FILE_SIZE);
    fs.check().unwrap();
}

/// `size` bytes of a pattern that differs with `seed`.
fn pattern(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Overwriting a file in place journals every block written, so the blocks committed
/// but not yet home grow until a checkpoint. On a 4 GiB disk (sparse in memory), whose
/// journal is 64 MiB, they stay under the 8 MiB bound: a commit that would take them
/// past it checkpoints first, and one transaction larger than it alone is written home
/// right after its commit. Then the file reads back after a remount.
#[test]
fn overwriting_in_place_keeps_the_pending_blocks_under_the_bound() {
    let mut fs = fresh(1 << 20);
    assert_eq!(fs.layout.journal_blocks, 16384);
    fs.set_cache_blocks(0);
    let bound = DEFAULT_MAX_PENDING_BLOCKS;
    let size = 3 * bound * BLOCK_SIZE / 2;
    let mib = 1 << 20;
    fs.create("/f").unwrap();
    fs.write("/f", 0, &pattern(size, 0)).unwrap();
    fs.sync().unwrap();
    super::pending_watch::take_peak();
    let megabytes = pattern(size, 1);
    for (index, chunk) in megabytes.chunks(mib).enumerate() {
        fs.write("/f", (index * mib) as u64, chunk).unwrap();
    }
    let peak = super::pending_watch::take_peak();
    assert!(
        peak <= bound && peak >= bound / 2,
        "{peak} blocks pending at most, 1 MiB at a time"
    );
    let whole = pattern(size, 2);
    fs.write("/f", 0, &whole).unwrap();
    let peak = super::pending_watch::take_peak();
    assert!(peak > size / BLOCK_SIZE, "one transaction: {peak} blocks");
    assert_eq!(
        fs.store.pending.len(),
        0,
        "a transaction past the bound goes home at once"
    );
    let mut fs = remount(fs);
    FileSystem::fsck(&mut fs.store.disk).unwrap();
    assert!(fs.read_all("/f").unwrap() == whole, "the file reads back");
}

/// A write whose new block images the app cannot get (a test's thread gives
/// `try_block` only so many) is `NoMemory` before anything is committed: nothing
/// written to the disk, the old bytes and size intact, the file system clean, mounted
/// and after a remount; with the memory there, the same write goes through. The write
/// covers 21 blocks: a partial old one, 19 whole, a partial new one (zeros first).
/// With no block at all, what fails first is the read of a block it changes.
#[test]
fn a_write_refused_its_memory_is_no_memory_and_changes_nothing() {
    let mut fs = FileSystem::format(super::CountingDisk::new(MemoryDisk::new(1024))).unwrap();
    fs.create("/f").unwrap();
    let old = pattern(20 * BLOCK_SIZE, 0);
    fs.write("/f", 0, &old).unwrap();
    fs.sync().unwrap();
    let new = pattern(20 * BLOCK_SIZE, 3);
    let no_memory = FsError::NoMemory {
        what: "writing /f (21 blocks)".into(),
        bytes: 21 * BLOCK_SIZE as u64,
    };
    for left in [0, 10, 19] {
        let writes = fs.store.disk.counts.writes;
        let refused = super::app_memory::with_blocks_left(left, || fs.write("/f", 100, &new));
        if left == 0 {
            assert!(
                matches!(&refused, Err(FsError::NoMemory { what, .. }) if what.starts_with("reading block")),
                "{refused:?}"
            );
        } else {
            assert_eq!(refused, Err(no_memory.clone()), "{left} blocks left");
        }
        assert_eq!(
            fs.store.disk.counts.writes, writes,
            "{left}: nothing written"
        );
        fs.check().unwrap();
        assert!(fs.read_all("/f").unwrap() == old, "{left}: the old bytes");
    }
    let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
    FileSystem::fsck(&mut fs.store.disk).unwrap();
    assert!(
        fs.read_all("/f").unwrap() == old,
        "the old bytes, remounted"
    );
    fs.write("/f", 100, &new).unwrap();
    let mut expected = old[..100].to_vec();
    expected.extend_from_slice(&new);
    assert!(
        fs.read_all("/f").unwrap() == expected,
        "the write, with memory"
    );
}

/// Runs `write` on `fs` with 0, 1, 2... blocks of memory until it succeeds: each
/// refusal must be `NoMemory` and leave `/f` holding `old` and the file system clean
/// and usable (an unrelated write to `/g` goes through and is committed; no part of
/// the refused write may be committed with it). Returns the last refusal's `what` and the blocks
/// the write took.
fn least_memory(
    fs: &mut FileSystem<super::CountingDisk>,
    old: &[u8],
    write: &mut dyn FnMut(&mut FileSystem<super::CountingDisk>) -> Result<(), FsError>,
) -> (String, u64) {
    let mut last = String::new();
    for left in 0.. {
        let writes = fs.store.disk.counts.writes;
        match super::app_memory::with_blocks_left(left, || write(fs)) {
            Ok(()) => return (last, left),
            Err(FsError::NoMemory { what, .. }) => last = what,
            Err(other) => panic!("{left} blocks left: {other:?}"),
        }
        let fresh_written = fs.store.disk.counts.writes - writes;
        fs.check().unwrap();
        assert!(fs.read_all("/f").unwrap() == old, "{left}: the old bytes");
        let writes = fs.store.disk.counts.writes;
        fs.write("/g", 0, &left.to_le_bytes()).unwrap();
        fs.commit().unwrap();
        assert!(
            fs.store.disk.counts.writes > writes,
            "{left}: /g is written"
        );
        assert!(
            fs.read_all("/f").unwrap() == old,
            "{left}: the old bytes after /g's commit ({fresh_written} fresh blocks written)"
        );
    }
    unreachable!()
}

/// A write that cannot get the blocks to read what it changes (a partial block of the
/// file, the directory block holding its inode) is `NoMemory`, nothing changed, the
/// file system usable, here with the running transaction not committed by the write
/// (`OnCommit`). Blocks read by a write were copied out of the cache infallibly, so
/// the write went through with no memory at all.
#[test]
fn a_write_refused_the_memory_to_read_what_it_changes_changes_nothing() {
    let mut fs = FileSystem::format(super::CountingDisk::new(MemoryDisk::new(1024))).unwrap();
    fs.create("/f").unwrap();
    fs.create("/g").unwrap();
    let old = pattern(2 * BLOCK_SIZE, 0);
    fs.write("/f", 0, &old).unwrap();
    fs.sync().unwrap();
    fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
    let (last, least) = least_memory(&mut fs, &old, &mut |fs| fs.write("/f", 100, b"changed"));
    assert!(least > 0, "the write read its blocks without memory");
    // The last refusal is the partial block's copy, named as the write's.
    assert_eq!(last, "writing /f (1 blocks)");
    fs.commit().unwrap();
    let mut expected = old.clone();
    expected[100..107].copy_from_slice(b"changed");
    let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
    FileSystem::fsck(&mut fs.store.disk).unwrap();
    assert!(
        fs.read_all("/f").unwrap() == expected,
        "the write, remounted"
    );
}

/// A write whose commit cannot get its memory (its descriptor and commit blocks, the
/// run's buffer) is `NoMemory` with nothing committed: the running transaction is put
/// back as before the write (the next commit does not carry it), the file system goes
/// on (not stopped), clean, and takes the write when the memory is there. Both for a
/// write in place (no fresh blocks) and for 20 new blocks, written home before the
/// journal's blocks are wanted. Before, the commit allocated infallibly (it never
/// refused), and a refusal there stopped the file system.
#[test]
fn a_write_whose_commit_is_refused_its_memory_commits_nothing() {
    let mut fs = FileSystem::format(super::CountingDisk::new(MemoryDisk::new(1024))).unwrap();
    fs.create("/f").unwrap();
    fs.create("/g").unwrap();
    let mut old = pattern(2 * BLOCK_SIZE, 0);
    fs.write("/f", 0, &old).unwrap();
    fs.sync().unwrap();
    let appended = pattern(20 * BLOCK_SIZE, 5);
    let writes: [(u64, &[u8]); 2] = [(100, b"changed"), (old.len() as u64, &appended)];
    for (offset, data) in writes {
        let (last, _) = least_memory(&mut fs, &old, &mut |fs| fs.write("/f", offset, data));
        assert!(
            last.starts_with("committing journal transaction"),
            "the last refusal is the commit's: {last}"
        );
        let at = offset as usize;
        old.resize(old.len().max(at + data.len()), 0);
        old[at..at + data.len()].copy_from_slice(data);
        assert!(fs.read_all("/f").unwrap() == old, "the write at {offset}");
    }
    let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
    FileSystem::fsck(&mut fs.store.disk).unwrap();
    assert!(fs.read_all("/f").unwrap() == old, "both writes, remounted");
}

/// A checkpoint that cannot get its memory (the journal header's block, the run's
/// buffer) is `NoMemory` with nothing written: its blocks stay pending, the file
/// system goes on, and with the memory the same checkpoint goes through. Before, the
/// header's block was made infallibly after the pending blocks were written home:
/// under memory pressure the app ended in Rust's allocation failure, and here the
/// checkpoint went through with a block less than it takes.
#[test]
fn a_checkpoint_refused_its_memory_writes_nothing() {
    let mut fs = FileSystem::format(super::CountingDisk::new(MemoryDisk::new(1024))).unwrap();
    fs.create("/f").unwrap();
    let data = pattern(3 * BLOCK_SIZE, 0);
    fs.write("/f", 0, &data).unwrap();
    let pending = fs.store.pending.len() as u64;
    assert!(pending > 0, "the write is committed, not yet home");
    // The header's block and a run's buffer of one block per pending block.
    for left in 0..=pending {
        let writes = fs.store.disk.counts.writes;
        let refused = super::app_memory::with_blocks_left(left, || fs.sync());
        assert!(
            matches!(&refused, Err(FsError::NoMemory { .. })),
            "{left} blocks left: {refused:?}"
        );
        assert_eq!(
            fs.store.disk.counts.writes, writes,
            "{left}: nothing written"
        );
        assert_eq!(
            fs.store.pending.len() as u64,
            pending,
            "{left}: still pending"
        );
        fs.check().unwrap();
    }
    super::app_memory::with_blocks_left(pending + 1, || fs.sync()).unwrap();
    assert_eq!(fs.store.pending.len(), 0, "home");
    let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
    FileSystem::fsck(&mut fs.store.disk).unwrap();
    assert!(fs.read_all("/f").unwrap() == data, "the file, remounted");
}

/// Operations that change metadata (create, mkdir, rename, unlink, a one-byte write
/// adding a sixth extent to a file, in its overflow block) cannot get the blocks for
/// their new metadata images (directory blocks, the superblock, a bitmap block, an
/// overflow block): each is `NoMemory` at 0, 1, 2... blocks until it goes through,
/// every refusal leaving the tree as it was and the file system clean (`OnCommit`:
/// nothing committed by them). Before, those images were copies or encodings made
/// infallibly: each went through with no memory at all.
#[test]
fn operations_refused_the_memory_for_their_metadata_images_change_nothing() {
    let mut fs = fresh(1024);
    fs.create("/f").unwrap();
    fs.mkdir("/d").unwrap();
    for n in 0..5u64 {
        fs.write("/f", 2 * n * BLOCK_SIZE as u64, b"x").unwrap();
    }
    fs.sync().unwrap();
    fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
    type Operation = fn(&mut FileSystem<MemoryDisk>) -> Result<(), FsError>;
    let operations: [(&str, Operation); 5] = [
        ("create", |fs| fs.create("/h")),
        ("mkdir", |fs| fs.mkdir("/d/e")),
        ("rename", |fs| fs.rename("/h", "/d/h")),
        ("unlink", |fs| fs.unlink("/d/h")),
        ("extent", |fs| fs.write("/f", 11 * BLOCK_SIZE as u64, b"y")),
    ];
    for (name, operation) in operations {
        let before = snapshot(&mut fs).unwrap();
        let mut left = 0;
        loop {
            match super::app_memory::with_blocks_left(left, || operation(&mut fs)) {
                Ok(()) => break,
                Err(FsError::NoMemory { .. }) => {}
                Err(other) => panic!("{name}, {left} blocks left: {other:?}"),
            }
            fs.check().unwrap();
            assert_eq!(snapshot(&mut fs).unwrap(), before, "{name}, {left}");
            left += 1;
        }
        assert!(left > 0, "{name} made its metadata images without memory");
        fs.commit().unwrap();
    }
    let mut fs = remount(fs);
    FileSystem::fsck(&mut fs.store.disk).unwrap();
    assert!(fs.stat("/d/e").is_ok());
    assert_eq!(fs.stat("/d/h"), Err(FsError::NotFound("/d/h".into())));
    assert_eq!(fs.read_all("/f").unwrap().len(), 11 * BLOCK_SIZE + 1);
}

/// A file too large to hold in memory (here sparse, 2^60 bytes) is refused by
/// `read_all` as `NoMemory`, not `FileTooLarge`, whose doc means past `MAX_FILE_SIZE`.
#[test]
fn read_all_of_a_file_past_memory_says_so() {
    let mut fs = fresh(1024);
    fs.create("/huge").unwrap();
    fs.truncate("/huge", crate::MAX_FILE_SIZE).unwrap();
    let refused = fs.read_all("/huge").unwrap_err();
    assert_eq!(
        refused,
        FsError::NoMemory {
            what: "reading /huge whole".into(),
            bytes: crate::MAX_FILE_SIZE
        }
    );
}

#[test]
fn holes_read_as_zeros_and_take_no_blocks() {
    let mut fs = fresh(1024);
    fs.create("/sparse").unwrap();
    fs.write("/sparse", 1 << 20, b"end").unwrap();
    let stat = fs.stat("/sparse").unwrap();
    assert_eq!((stat.size, stat.blocks), ((1 << 20) + 3, 1));
    let contents = fs.read_all("/sparse").unwrap();
    assert!(contents[..1 << 20].iter().all(|&byte| byte == 0));
    assert_eq!(&contents[1 << 20..], b"end");
    fs.write("/sparse", 1 << 40, b"far").unwrap();
    fs.write("/sparse", 5000, b"middle").unwrap();
    let stat = fs.stat("/sparse").unwrap();
    assert_eq!((stat.size, stat.blocks), ((1 << 40) + 3, 3));
    let mut buf = [1u8; 8];
    assert_eq!(fs.read("/sparse", (1 << 40) - 5, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"\0\0\0\0\0far");
    let fs = &mut remount(fs);
    let mut buf = [1u8; 10];
    fs.read("/sparse", 4998, &mut buf).unwrap();
    assert_eq!(&buf, b"\0\0middle\0\0");
    assert_eq!(
        fs.statfs().total_blocks - fs.statfs().free_blocks,
        3 + 1,
        "and the root's block"
    );
    fs.check().unwrap();
}

#[test]
fn truncation_frees_blocks_and_zeroes_the_cut_tail() {
    let mut fs = fresh(1024);
    fs.create("/f").unwrap();
    let free = fs.statfs().free_blocks;
    fs.write("/f", 0, &[0xFF; 5 * 4096]).unwrap();
    assert_eq!(fs.statfs().free_blocks, free - 5);
    fs.truncate("/f", 4096 + 10).unwrap();
    assert_eq!(fs.statfs().free_blocks, free - 2);
    assert_eq!(fs.stat("/f").unwrap().blocks, 2);
    fs.truncate("/f", 3 * 4096).unwrap();
    assert_eq!(fs.stat("/f").unwrap().blocks, 2, "growing leaves a hole");
    let contents = fs.read_all("/f").unwrap();
    assert_eq!(contents.len(), 3 * 4096);
    assert!(contents[..4106].iter().all(|&byte| byte == 0xFF));
    assert!(
        contents[4106..].iter().all(|&byte| byte == 0),
        "the cut tail reads as zeros"
    );
    fs.truncate("/f", 3 * 4096).unwrap();
    fs.truncate("/f", 0).unwrap();
    assert_eq!(fs.stat("/f").unwrap().blocks, 0);
    assert_eq!(fs.statfs().free_blocks, free);
    fs.truncate("/f", 1 << 50).unwrap();
    assert_eq!(fs.stat("/f").unwrap().size, 1 << 50);
    assert_eq!(fs.statfs().free_blocks, free);
    fs.check().unwrap();
}

#[test]
fn unlink_and_rmdir_remove_the_right_kind() {
    let mut fs = fresh(1024);
    let free = fs.statfs().free_blocks;
    fs.mkdir("/d").unwrap();
    fs.create("/d/f").unwrap();
    fs.write("/d/f", 0, &[1; 9000]).unwrap();
    assert_eq!(
        fs.unlink("/d").unwrap_err(),
        FsError::IsADirectory("/d".into())
    );
    assert_eq!(fs.rmdir("/d").unwrap_err(), FsError::NotEmpty("/d".into()));
    assert_eq!(
        fs.rmdir("/d/f").unwrap_err(),
        FsError::NotADirectory("/d/f".into())
    );
    assert_eq!(fs.unlink("/").unwrap_err(), FsError::Root);
    assert_eq!(fs.rmdir("/").unwrap_err(), FsError::Root);
    assert_eq!(fs.unlink("/d/g").unwrap_err(), not_found("/d/g"));
    assert_eq!(fs.rmdir("/e").unwrap_err(), not_found("/e"));
    assert_eq!(
        fs.unlink("/d/f/x").unwrap_err(),
        FsError::NotADirectory("/d/f".into())
    );
    fs.unlink("/d/f").unwrap();
    assert_eq!(fs.stat("/d/f").unwrap_err(), not_found("/d/f"));
    assert_eq!(
        fs.stat("/d").unwrap().blocks,
        0,
        "an empty directory has no blocks"
    );
    fs.rmdir("/d").unwrap();
    assert_eq!(fs.list("/").unwrap(), []);
    assert_eq!(fs.statfs().free_blocks, free, "every block came back");
    let fs = &mut remount(fs);
    assert_eq!(fs.statfs().free_blocks, free);
    fs.check().unwrap();
}

#[test]
fn rename_moves_and_replaces_atomically() {
    let mut fs = fresh(1024);
    fs.mkdir("/a").unwrap();
    fs.mkdir("/a/sub").unwrap();
    fs.mkdir("/b").unwrap();
    fs.create("/a/sub/deep").unwrap();
    fs.write("/a/sub/deep", 0, b"deep").unwrap();
    fs.create("/a/f").unwrap();
    fs.write("/a/f", 0, b"first").unwrap();
    fs.create("/b/g").unwrap();
    fs.write("/b/g", 0, &[7; 3 * 4096]).unwrap();

    fs.rename("/a/f", "/a/f2").unwrap();
    assert_eq!(fs.read_all("/a/f2").unwrap(), b"first");
    let free = fs.statfs().free_blocks;
    fs.rename("/a/f2", "/b/g").unwrap();
    assert_eq!(fs.read_all("/b/g").unwrap(), b"first", "replaced");
    assert_eq!(names_in(&mut fs, "/a"), ["sub"]);
    assert_eq!(
        fs.statfs().free_blocks,
        free + 3,
        "the old /b/g's blocks are freed"
    );
    fs.rename("/a/sub", "/b/moved").unwrap();
    assert_eq!(fs.read_all("/b/moved/deep").unwrap(), b"deep");
    fs.rename("/b/moved", "/b/moved").unwrap();
    fs.rename("/b/g", "/b//g/").unwrap();
    fs.mkdir("/empty").unwrap();
    fs.rename("/b/moved", "/empty").unwrap();
    assert_eq!(fs.read_all("/empty/deep").unwrap(), b"deep");

    fs.mkdir("/full").unwrap();
    fs.create("/full/x").unwrap();
    assert_eq!(
        fs.rename("/empty", "/full").unwrap_err(),
        FsError::NotEmpty("/full".into())
    );
    assert_eq!(
        fs.rename("/b/g", "/full").unwrap_err(),
        FsError::IsADirectory("/full".into())
    );
    assert_eq!(
        fs.rename("/full", "/b/g").unwrap_err(),
        FsError::NotADirectory("/b/g".into())
    );
    assert_eq!(
        fs.rename("/full", "/full/x/y").unwrap_err(),
        FsError::IntoItself {
            from: "/full".into(),
            to: "/full/x/y".into()
        }
    );
    assert_eq!(
        fs.rename("/full", "/full/new").unwrap_err(),
        FsError::IntoItself {
            from: "/full".into(),
            to: "/full/new".into()
        }
    );
    assert_eq!(fs.rename("/", "/x").unwrap_err(), FsError::Root);
    assert_eq!(fs.rename("/full", "/").unwrap_err(), FsError::Root);
    assert_eq!(fs.rename("/nope", "/x").unwrap_err(), not_found("/nope"));
    assert_eq!(
        fs.rename("/b/g", "/nope/x").unwrap_err(),
        not_found("/nope")
    );
    assert_eq!(
        fs.rename("/b/g", "/b/g/x").unwrap_err(),
        FsError::NotADirectory("/b/g".into())
    );
    assert_eq!(
        fs.rename("/b/g", "rel").unwrap_err(),
        FsError::InvalidName("rel".into())
    );
    let before = snapshot(&mut fs).unwrap();
    let fs = &mut remount(fs);
    assert_eq!(snapshot(fs).unwrap(), before);
    fs.check().unwrap();
}

#[test]
fn listings_are_sorted_and_stats_carry_a_change_stamp() {
    let mut fs = fresh(1024);
    for name in ["zeta", "alpha", "mid"] {
        fs.create(&alloc::format!("/{name}")).unwrap();
    }
    fs.mkdir("/dir").unwrap();
    fs.create("/dir/inner").unwrap();
    fs.write("/mid", 0, b"12345").unwrap();
    let listing = fs.list("/").unwrap();
    let summary: Vec<(&str, FileKind, u64)> = listing
        .iter()
        .map(|entry| (entry.name.as_str(), entry.kind, entry.size))
        .collect();
    assert_eq!(
        summary,
        [
            ("alpha", FileKind::File, 0),
            ("dir", FileKind::Directory, 4096),
            ("mid", FileKind::File, 5),
            ("zeta", FileKind::File, 0),
        ]
    );
    assert_eq!(
        fs.list("/mid").unwrap_err(),
        FsError::NotADirectory("/mid".into())
    );
    assert_eq!(fs.list("/none").unwrap_err(), not_found("/none"));
    let before = fs.stat("/mid").unwrap().changed;
    assert!(before > fs.stat("/alpha").unwrap().changed);
    fs.write("/mid", 0, b"x").unwrap();
    assert!(fs.stat("/mid").unwrap().changed > before);
}

#[test]
fn large_files_span_many_transactions_and_many_extents() {
    let mut fs = fresh(4096);
    fs.create("/big").unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let transactions_before = fs.journal.next_sequence;
    fs.write("/big", 0, &big).unwrap();
    assert!(
        fs.journal.next_sequence - transactions_before > 5,
        "a 2 MB write takes several transactions of a 64-block journal"
    );
    assert_eq!(fs.read_all("/big").unwrap(), big);
    // Two files written block by block, interleaved: neither can merge its extents.
    fs.create("/odd").unwrap();
    fs.create("/even").unwrap();
    for index in 0..400u64 {
        let name = if index % 2 == 0 { "/even" } else { "/odd" };
        let offset = index / 2 * 4096;
        fs.write(name, offset, &index.to_le_bytes().repeat(512))
            .unwrap();
    }
    let names = parse("/odd").unwrap();
    let inode = fs.lookup(&names).unwrap().inode;
    let (extents, chain) = fs.load_extents(&inode).unwrap();
    assert_eq!(extents.len(), 200);
    assert_eq!(chain.len(), 2, "196 overflow extents take two blocks");
    let mut fs = remount(fs);
    for index in 0..400u64 {
        let name = if index % 2 == 0 { "/even" } else { "/odd" };
        let mut buf = [0u8; 8];
        fs.read(name, index / 2 * 4096 + 4088, &mut buf).unwrap();
        assert_eq!(buf, index.to_le_bytes());
    }
    fs.check().unwrap();
    fs.truncate("/odd", 10 * 4096).unwrap();
    let inode = fs.lookup(&names).unwrap().inode;
    assert_eq!(fs.load_extents(&inode).unwrap().1.len(), 1);
    fs.truncate("/odd", 3 * 4096).unwrap();
    let inode = fs.lookup(&names).unwrap().inode;
    assert_eq!(fs.load_extents(&inode).unwrap().1.len(), 0);
    fs.check().unwrap();
    let free = fs.statfs().free_blocks;
    fs.unlink("/even").unwrap();
    fs.unlink("/big").unwrap();
    assert_eq!(
        fs.statfs().free_blocks,
        free + 202 + 489,
        "data and overflow blocks"
    );
    fs.unlink("/odd").unwrap();
    assert_eq!(fs.statfs().free_blocks, fs.statfs().total_blocks);
    fs.check().unwrap();
}

#[test]
fn a_file_can_fill_the_disk_and_a_full_disk_changes_nothing() {
    let mut fs = fresh(256);
    let total = fs.statfs().total_blocks;
    fs.create("/all").unwrap();
    let everything = vec![0x5A; (total as usize - 1) * 4096];
    fs.write("/all", 0, &everything).unwrap();
    assert_eq!(
        fs.statfs().free_blocks,
        0,
        "the root's block and the file fill the data"
    );
    fs.mkdir("/sub").unwrap();
    let before = snapshot(&mut fs).unwrap();
    assert_eq!(
        fs.write("/all", 1 << 30, b"x").unwrap_err(),
        FsError::NoSpace
    );
    assert_eq!(
        fs.create("/sub/more").unwrap_err(),
        FsError::NoSpace,
        "needs a directory block"
    );
    assert_eq!(
        snapshot(&mut fs).unwrap(),
        before,
        "the failures left no trace"
    );
    assert_eq!(fs.check().unwrap().free_blocks, 0);
    fs.create("/more").unwrap();
    fs.write("/all", 100, b"overwrite in place needs no space")
        .unwrap();
    fs.truncate("/all", 1 << 30).unwrap();
    assert_eq!(fs.check().unwrap().free_blocks, 0);
    fs.truncate("/all", 4096).unwrap();
    fs.write("/more", 0, &vec![1; 30 * 4096]).unwrap();
    let fs = &mut remount(fs);
    assert_eq!(fs.read_all("/more").unwrap(), vec![1; 30 * 4096]);
    assert_eq!(&fs.read_all("/all").unwrap()[100..104], b"over");
    fs.check().unwrap();
}

/// A large write (several transactions) into a disk whose free blocks are just
/// enough for its data but are all apart, so that its extents need an overflow block
/// too: `NoSpace` before any piece is written, where it used to leave the first piece
/// written.
#[test]
fn a_large_write_short_of_an_overflow_block_writes_nothing() {
    let mut fs = fresh(256);
    let mut count = 0;
    loop {
        let path = alloc::format!("/f{count}");
        fs.create(&path).unwrap();
        if fs.write(&path, 0, &[1; 4096]) == Err(FsError::NoSpace) {
            fs.unlink(&path).unwrap();
            break;
        }
        count += 1;
    }
    for index in (0..count).step_by(2) {
        fs.unlink(&alloc::format!("/f{index}")).unwrap();
    }
    fs.create("/big").unwrap();
    let before = snapshot(&mut fs).unwrap();
    let free = fs.statfs().free_blocks;
    let piece = fs.journal.capacity() - 8;
    assert!(
        free > piece,
        "{free} free blocks make a write of several pieces"
    );
    assert_eq!(
        fs.write("/big", 0, &vec![7; free as usize * 4096]),
        Err(FsError::NoSpace)
    );
    assert!(snapshot(&mut fs).unwrap() == before, "nothing was written");
    assert_eq!(fs.statfs().free_blocks, free);
    fs.check().unwrap();
    // One block fewer fits: the overflow block takes the last one.
    fs.write("/big", 0, &vec![7; (free as usize - 1) * 4096])
        .unwrap();
    assert_eq!(fs.statfs().free_blocks, 0);
    let fs = &mut remount(fs);
    assert_eq!(
        fs.read_all("/big").unwrap(),
        vec![7; (free as usize - 1) * 4096]
    );
    fs.check().unwrap();
}

/// Free space in 169 runs of 5 blocks, one used block apart, and nothing else free;
/// before it, `/sparse`: one block at every other logical block from 1000, 1,018
/// extents, its six overflow extent blocks full. A write into its hole at 0 changes
/// all six with each piece (its new extents come first), and its first piece adds a
/// seventh, placed where that piece's data ends. Returns the free blocks (845).
fn runs_of_five_after_a_sparse_file<D: BlockStore>(fs: &mut FileSystem<D>) -> u64 {
    fs.create("/sparse").unwrap();
    for index in 0..4 + 169 * 6 {
        fs.write("/sparse", (1000 + 2 * index) * 4096, &[3; 4096])
            .unwrap();
    }
    for index in 0..169 {
        for (name, blocks) in [("a", 5), ("b", 1)] {
            let path = alloc::format!("/{name}{index}");
            fs.create(&path).unwrap();
            fs.write(&path, 0, &vec![1; blocks * 4096]).unwrap();
        }
    }
    fs.create("/rest").unwrap();
    let rest = fs.statfs().free_blocks as usize;
    fs.write("/rest", 0, &vec![0; rest * 4096]).unwrap();
    for index in 0..169 {
        fs.unlink(&alloc::format!("/a{index}")).unwrap();
    }
    let free = fs.statfs().free_blocks;
    assert_eq!(free, 169 * 5);
    free
}

/// A large write whose pieces are halved (a whole piece's transaction, its data and
/// the six or seven overflow blocks, is too large for the journal) into free space in
/// runs of 5 blocks ([`runs_of_five_after_a_sparse_file`]): a halved piece ends inside
/// a run and the overflow block it adds splits that run, so the write makes 170
/// extents where whole pieces would make 169, and needs a second new overflow block.
/// `NoSpace` before any piece is written, where the rehearsal of whole pieces used to
/// pass and the write to fail after committing its first pieces.
#[test]
fn a_large_write_of_halved_pieces_is_rehearsed_as_halved() {
    let mut fs = fresh(4096);
    assert_eq!(fs.journal.capacity() - 8, 55, "whole pieces of 55 blocks");
    let free = runs_of_five_after_a_sparse_file(&mut fs);
    let before = snapshot(&mut fs).unwrap();
    // Whole pieces: 844 data blocks and one overflow block, the free blocks exactly.
    assert_eq!(
        fs.write("/sparse", 0, &vec![7; (free as usize - 1) * 4096]),
        Err(FsError::NoSpace)
    );
    assert!(snapshot(&mut fs).unwrap() == before, "nothing was written");
    assert_eq!(fs.statfs().free_blocks, free);
    fs.check().unwrap();
    // One block fewer fits: the halved pieces' two overflow blocks take the rest.
    let data = vec![7; (free as usize - 2) * 4096];
    fs.write("/sparse", 0, &data).unwrap();
    assert_eq!(fs.statfs().free_blocks, 0);
    let fs = &mut remount(fs);
    let mut head = vec![0; data.len()];
    assert_eq!(fs.read("/sparse", 0, &mut head).unwrap(), data.len());
    assert!(head == data);
    fs.check().unwrap();
}

/// The rehearsal of [`a_large_write_of_halved_pieces_is_rehearsed_as_halved`] with
/// operations waiting in the running transaction ([`CommitPolicy::OnCommit`]): its
/// pieces join that transaction for a while, and it is put back as it was, the
/// waiting operations' blocks (the root directory block among them) included.
#[test]
fn a_rehearsal_puts_the_running_transaction_back() {
    let mut fs = fresh(4096);
    let free = runs_of_five_after_a_sparse_file(&mut fs);
    fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
    fs.write("/b0", 0, &[9; 4096]).unwrap();
    fs.truncate("/b1", 100).unwrap();
    let before = snapshot(&mut fs).unwrap();
    assert_eq!(
        fs.write("/sparse", 0, &vec![7; (free as usize - 1) * 4096]),
        Err(FsError::NoSpace)
    );
    assert!(
        snapshot(&mut fs).unwrap() == before,
        "the waiting operations stay"
    );
    assert_eq!(fs.statfs().free_blocks, free);
    fs.commit().unwrap();
    let fs = &mut remount(fs);
    assert!(snapshot(fs).unwrap() == before);
    fs.check().unwrap();
}

/// A memory disk that keeps only the blocks holding something other than zeros, so
/// that a test can fill a large one with zeros cheaply.
struct ZerosFreeDisk {
    blocks: u64,
    kept: alloc::collections::BTreeMap<u64, Vec<u8>>,
}

impl BlockStore for ZerosFreeDisk {
    fn blocks(&self) -> u64 {
        self.blocks
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        match self.kept.get(&block) {
            Some(data) => buf.copy_from_slice(data),
            None => buf.fill(0),
        }
        Ok(())
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        if data.iter().all(|&byte| byte == 0) {
            self.kept.remove(&block);
        } else {
            self.kept.insert(block, data.to_vec());
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// [`a_large_write_of_halved_pieces_is_rehearsed_as_halved`] with a journal that holds
/// the whole write as one piece: the free blocks may be short, but the write is one
/// transaction, so it is not rehearsed until its piece is halved; then it must be,
/// before the first half is committed.
#[test]
fn a_write_of_one_piece_halved_is_rehearsed_before_its_first_half() {
    let disk = ZerosFreeDisk {
        blocks: 64 * 854,
        kept: alloc::collections::BTreeMap::new(),
    };
    let mut fs = FileSystem::format(disk).unwrap();
    assert_eq!(fs.journal.capacity() - 8, 845, "one piece of 845 blocks");
    let free = runs_of_five_after_a_sparse_file(&mut fs);
    let before = fs.stat("/sparse").unwrap();
    assert_eq!(
        fs.write("/sparse", 0, &vec![7; (free as usize - 1) * 4096]),
        Err(FsError::NoSpace)
    );
    assert_eq!(fs.stat("/sparse").unwrap(), before, "nothing was written");
    assert_eq!(fs.statfs().free_blocks, free);
    fs.check().unwrap();
    fs.write("/sparse", 0, &vec![7; (free as usize - 2) * 4096])
        .unwrap();
    assert_eq!(fs.statfs().free_blocks, 0);
    fs.check().unwrap();
}

#[test]
fn a_write_too_big_for_the_free_space_writes_nothing() {
    let mut fs = fresh(256);
    fs.create("/f").unwrap();
    fs.write("/f", 0, b"keep").unwrap();
    let before = snapshot(&mut fs).unwrap();
    let free = fs.statfs().free_blocks as usize;
    assert_eq!(
        fs.write("/f", 0, &vec![9; (free + 2) * 4096]).unwrap_err(),
        FsError::NoSpace
    );
    assert_eq!(snapshot(&mut fs).unwrap(), before);
    assert_eq!(fs.statfs().free_blocks as usize, free);
    fs.check().unwrap();
}

#[test]
fn directories_spill_into_blocks_and_shrink_back() {
    let mut fs = fresh(2048);
    fs.mkdir("/d").unwrap();
    let mut names: Vec<String> = (0..300)
        .map(|i| alloc::format!("{}-{i}", "entry".repeat(i % 40 + 1)))
        .collect();
    for name in &names {
        fs.create(&alloc::format!("/d/{name}")).unwrap();
        fs.write(&alloc::format!("/d/{name}"), 0, name.as_bytes())
            .unwrap();
    }
    let blocks = fs.stat("/d").unwrap().blocks;
    assert!(blocks > 5, "300 entries take {blocks} blocks");
    let mut fs = remount(fs);
    let mut rng = Rng::new(5);
    while !names.is_empty() {
        let name = names.swap_remove(rng.below(names.len() as u64) as usize);
        fs.unlink(&alloc::format!("/d/{name}")).unwrap();
        if names.len().is_multiple_of(25) {
            let mut expected = names.clone();
            expected.sort();
            assert_eq!(names_in(&mut fs, "/d"), expected);
            for name in names.iter().take(5) {
                assert_eq!(
                    fs.read_all(&alloc::format!("/d/{name}")).unwrap(),
                    name.as_bytes()
                );
            }
            fs.check().unwrap();
        }
    }
    assert_eq!(fs.stat("/d").unwrap().blocks, 0);
    fs.rmdir("/d").unwrap();
    assert_eq!(fs.statfs().free_blocks, fs.statfs().total_blocks);
}

#[test]
fn small_files_of_a_directory_are_placed_together_after_it() {
    let mut fs = fresh(4096);
    fs.mkdir("/noise").unwrap();
    fs.create("/noise/big").unwrap();
    fs.write("/noise/big", 0, &[1; 40 * 4096]).unwrap();
    fs.mkdir("/d").unwrap();
    fs.create("/d/one").unwrap();
    fs.write("/d/one", 0, &[2; 6000]).unwrap();
    fs.create("/d/two").unwrap();
    fs.write("/d/two", 0, &[3; 100]).unwrap();
    let directory_block = match fs.lookup(&["d", "one"]).unwrap().location {
        Location::Entry { block, .. } => block,
        Location::Root => unreachable!(),
    };
    let physical = |fs: &mut FileSystem<MemoryDisk>, names: &[&str]| {
        let inode = fs.lookup(names).unwrap().inode;
        fs.load_extents(&inode).unwrap().0
    };
    let one = physical(&mut fs, &["d", "one"]);
    let two = physical(&mut fs, &["d", "two"]);
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0].physical,
        directory_block + 1,
        "right after the directory block"
    );
    assert_eq!(
        two[0].physical,
        directory_block + 3,
        "right after its sibling"
    );
    fs.write("/d/one", 2 * 4096, b"grows").unwrap();
    let one = physical(&mut fs, &["d", "one"]);
    assert_eq!(
        one[1].physical,
        directory_block + 4,
        "the next free block after its end"
    );
}

#[test]
fn operations_are_durable_without_sync_and_sync_empties_the_journal() {
    let mut fs = fresh(1024);
    fs.mkdir("/d").unwrap();
    fs.create("/d/f").unwrap();
    fs.write("/d/f", 0, b"journaled").unwrap();
    assert_eq!(fs.check().unwrap().journal_transactions, 3);
    let mut disk = fs.into_disk();
    assert_eq!(FileSystem::fsck(&mut disk).unwrap().journal_transactions, 3);
    let mut fs = FileSystem::mount(disk).unwrap();
    assert_eq!(fs.read_all("/d/f").unwrap(), b"journaled", "replayed");
    assert_eq!(
        fs.check().unwrap().journal_transactions,
        0,
        "mount writes the replay home"
    );
    fs.write("/d/f", 0, b"J").unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.check().unwrap().journal_transactions, 0);
    fs.sync().unwrap();
    let mut disk = fs.into_disk();
    assert_eq!(FileSystem::fsck(&mut disk).unwrap().journal_transactions, 0);
    let mut fs = FileSystem::mount(disk).unwrap();
    assert_eq!(fs.read_all("/d/f").unwrap(), b"Journaled");
}

/// A file's blocks go through the journal as they are, and after a checkpoint the log
/// starts again at its second block, so a shorter transaction leaves them where the
/// scan looks for the next one. A file holding a transaction numbered two past the next
/// (descriptor, image, commit; its number read off a change stamp) wrote any block at
/// the mount after next: /secret read the forged 'P's. Journal images beginning with a
/// journal magic are escaped now.
#[test]
fn a_files_bytes_written_through_the_journal_never_replay_as_a_transaction() {
    use crate::journal::write_transaction;
    use crate::store::read_disk;
    let mut fs = fresh(1024);
    fs.create("/secret").unwrap();
    fs.write("/secret", 0, &[b'S'; 4096]).unwrap();
    fs.create("/x").unwrap();
    fs.write("/x", 0, &[0; 8 * 4096]).unwrap();
    fs.sync().unwrap();
    let secret = fs.lookup(&["secret"]).unwrap().inode;
    let secret_block = secret.inline[0].physical;
    let next = fs.stat("/x").unwrap().changed + 1;
    assert_eq!(
        next, fs.journal.next_sequence,
        "the next number is learnt from a stamp"
    );
    // Transaction next + 2 at journal block 5: a descriptor, an image of /secret's
    // block, a commit; made on a scratch disk and written as /x's blocks 1 to 3.
    let mut scratch = MemoryDisk::new(1024);
    let forged = alloc::collections::BTreeMap::from([(secret_block, {
        let mut block = zeroed();
        block.fill(b'P');
        block
    })]);
    write_transaction(&mut scratch, 5, next + 2, &forged).unwrap();
    let mut bytes = vec![0; 8 * 4096];
    for (chunk, position) in bytes.chunks_mut(4096).skip(1).zip(5..8) {
        chunk.copy_from_slice(&read_disk(&mut scratch, position).unwrap()[..]);
    }
    // Transaction `next` at journal block 2: its descriptor, the root directory's
    // block, then /x's blocks 0 to 7, so /x's block 1 at journal block 5.
    fs.write("/x", 0, &bytes).unwrap();
    fs.sync().unwrap();
    // Transaction next + 1 at journal block 2 takes blocks 2 to 4: the scan looks for
    // next + 2 at block 5, where the forged descriptor lies but for its magic.
    fs.create("/y").unwrap();
    let mut disk = fs.into_disk();
    assert_eq!(
        read_disk(&mut disk, 5).unwrap()[6..],
        read_disk(&mut scratch, 5).unwrap()[6..],
        "the forged descriptor is where the scan looks"
    );
    let mut fs = FileSystem::mount(disk).unwrap();
    let secret = fs.read_all("/secret").unwrap();
    assert!(
        secret.iter().all(|&byte| byte == b'S'),
        "/x's bytes replayed: /secret begins {:?}",
        &secret[..8]
    );
    assert!(fs.read_all("/x").unwrap() == bytes, "/x reads as written");
}

#[test]
fn a_full_journal_is_checkpointed_on_the_way() {
    let mut fs = fresh(512);
    fs.create("/f").unwrap();
    for round in 0..200u32 {
        fs.write("/f", u64::from(round) * 100, &round.to_le_bytes())
            .unwrap();
        assert!(fs.journal.position <= fs.journal.end);
    }
    let mut fs = remount(fs);
    for round in 0..200u32 {
        let mut buf = [0u8; 4];
        fs.read("/f", u64::from(round) * 100, &mut buf).unwrap();
        assert_eq!(buf, round.to_le_bytes());
    }
    fs.check().unwrap();
}

/// Appends blocks to `/fill/filler` until the running transaction has no room for one
/// more block.
fn fill_running<D: BlockStore>(fs: &mut FileSystem<D>) {
    let capacity = fs.journal.capacity();
    while crate::journal::transaction_length(fs.store.running.len() as u64 + 1) <= capacity {
        let size = fs.stat("/fill/filler").unwrap().size;
        fs.write("/fill/filler", size, &[7; BLOCK_SIZE]).unwrap();
    }
}

/// An operation and the paths whose inodes it writes.
type StampedOperation = (
    &'static str,
    fn(&mut FileSystem<MemoryDisk>) -> Result<(), FsError>,
    &'static [&'static str],
);

#[test]
fn an_operation_that_commits_the_full_running_transaction_first_is_stamped_with_its_own() {
    let cases: [StampedOperation; 8] = [
        ("create", |fs| fs.create("/d/new"), &["/d/new"]),
        ("mkdir", |fs| fs.mkdir("/d/new"), &["/d/new"]),
        (
            "create growing its directory",
            |fs| fs.create("/g/new"),
            &["/g", "/g/new"],
        ),
        ("write", |fs| fs.write("/d/f", 2, b"changed"), &["/d/f"]),
        ("truncate", |fs| fs.truncate("/d/f", 1), &["/d/f"]),
        (
            "rename",
            |fs| fs.rename("/e/moved", "/d/moved"),
            &["/e", "/d/moved"],
        ),
        (
            "unlink emptying its directory",
            |fs| fs.unlink("/e/moved"),
            &["/e"],
        ),
        (
            "rmdir emptying its directory",
            |fs| fs.rmdir("/g/sub"),
            &["/g"],
        ),
    ];
    for (name, operation, stamped) in cases {
        let mut fs = fresh(1024);
        for directory in ["/fill", "/d", "/e", "/g"] {
            fs.mkdir(directory).unwrap();
        }
        fs.create("/fill/filler").unwrap();
        fs.create("/d/f").unwrap();
        fs.write("/d/f", 0, b"before").unwrap();
        fs.create("/e/moved").unwrap();
        if name.starts_with("rmdir") {
            fs.mkdir("/g/sub").unwrap();
        }
        fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
        fill_running(&mut fs);
        let full = fs.journal.next_sequence;
        operation(&mut fs).unwrap();
        assert_eq!(
            fs.journal.next_sequence,
            full + 1,
            "{name}: the full running transaction was committed first"
        );
        fs.commit().unwrap();
        assert_eq!(fs.journal.next_sequence, full + 2, "{name}");
        let holding = full + 1;
        let mut fs = remount(fs);
        assert_eq!(fs.stat("/fill/filler").unwrap().changed, full, "{name}");
        for path in stamped {
            assert_eq!(
                fs.stat(path).unwrap().changed,
                holding,
                "{name}: {path} is stamped with the transaction holding its change"
            );
        }
    }
}

#[test]
fn a_transaction_larger_than_the_journal_is_refused_whole() {
    let mut fs = fresh(1024);
    fs.create("/f").unwrap();
    let before = snapshot(&mut fs).unwrap();
    let capacity = fs.journal.capacity();
    let start = fs.layout.data_start + 10;
    let result = fs.transact(|fs| {
        for block in start..start + capacity {
            fs.store.stage(block, zeroed());
        }
        Ok(())
    });
    assert_eq!(
        result.unwrap_err(),
        FsError::TooLarge {
            needed: capacity + 2,
            capacity
        }
    );
    assert!(fs.store.staged.is_empty());
    assert_eq!(snapshot(&mut fs).unwrap(), before);
    let fs = &mut remount(fs);
    assert_eq!(snapshot(fs).unwrap(), before);
}

/// A disk that fails every write after a number of them (or every flush).
pub(super) struct FailingDisk {
    pub(super) inner: MemoryDisk,
    pub(super) writes_left: u64,
    pub(super) fail_flush: bool,
}

impl BlockStore for FailingDisk {
    fn blocks(&self) -> u64 {
        self.inner.blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        self.inner.read(block, buf)
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        if self.writes_left == 0 {
            return Err("medium error".into());
        }
        self.writes_left -= 1;
        self.inner.write(block, data)
    }
    fn flush(&mut self) -> Result<(), String> {
        if self.fail_flush {
            return Err("flush failed".into());
        }
        self.inner.flush()
    }
}

#[test]
fn a_disk_error_stops_the_file_system_and_a_remount_recovers() {
    for (writes_left, fail_flush) in [(0, false), (1, false), (2, false), (3, false), (100, true)] {
        let mut fs = fresh(512);
        fs.create("/f").unwrap();
        fs.write("/f", 0, b"old").unwrap();
        fs.sync().unwrap();
        let inner = fs.into_disk();
        let mut fs = FileSystem::mount(FailingDisk {
            inner,
            writes_left,
            fail_flush,
        })
        .unwrap();
        let error = fs.write("/f", 0, b"new").unwrap_err();
        assert!(matches!(error, FsError::Disk(_)), "{error}");
        let again = fs.read_all("/f").unwrap_err();
        assert!(alloc::format!("{again}").contains("stopped after an earlier disk error"));
        assert!(fs.sync().is_err());
        let mut fs = FileSystem::mount(fs.into_disk().inner).unwrap();
        let contents = fs.read_all("/f").unwrap();
        assert!(contents == b"old" || contents == b"new", "{contents:?}");
        fs.check().unwrap();
    }
}

/// A commit that alone takes the pending blocks past the bound is checkpointed at once;
/// when that checkpoint's first write fails, the operation is still committed (in the
/// journal, flushed), so it reports `Ok`, and the failed checkpoint has stopped the
/// file system, which refuses the next operation; after a remount the data is there.
/// (The operation reported the checkpoint's error, and dropped what it had staged.)
#[test]
fn a_failed_checkpoint_after_its_commit_leaves_the_operation_done() {
    let mut fs = fresh(512);
    fs.create("/f").unwrap();
    fs.sync().unwrap();
    let synced = fs.into_disk();
    let failing = |writes_left| FailingDisk {
        inner: synced.clone(),
        writes_left,
        fail_flush: false,
    };
    // The writes of the operation's commit, none of a checkpoint (under the bound).
    let mut measured = FileSystem::mount(failing(u64::MAX)).unwrap();
    measured.write("/f", 0, b"committed").unwrap();
    assert!(
        !measured.store.pending.is_empty(),
        "committed, not yet home"
    );
    let commit_writes = u64::MAX - measured.into_disk().writes_left;
    let mut fs = FileSystem::mount(failing(commit_writes)).unwrap();
    fs.set_max_pending_blocks(0);
    fs.write("/f", 0, b"committed").unwrap();
    let refused = fs.create("/g").unwrap_err();
    assert!(
        alloc::format!("{refused}").contains("stopped after an earlier disk error"),
        "{refused}"
    );
    assert!(
        fs.sync().is_err(),
        "nothing is written home on a stopped mount"
    );
    let mut fs = FileSystem::mount(fs.into_disk().inner).unwrap();
    assert_eq!(fs.read_all("/f").unwrap(), b"committed");
    assert!(fs.lookup(&["g"]).is_err());
    fs.check().unwrap();
}

/// An operation that first commits the full running transaction
/// ([`CommitPolicy::OnCommit`]), whose checkpoint then fails: the commit stands (the
/// waiting operations are there after a remount) and the operation itself is refused,
/// not run again on the stopped file system (where it joined a running transaction
/// that no commit could make durable, and answered `Ok`).
#[test]
fn an_operation_whose_first_commit_stops_the_mount_is_refused() {
    let mut fs = fresh(1024);
    fs.mkdir("/fill").unwrap();
    fs.create("/fill/filler").unwrap();
    fs.mkdir("/d").unwrap();
    fs.sync().unwrap();
    let synced = fs.into_disk();
    let filled = |writes_left| {
        let failing = FailingDisk {
            inner: synced.clone(),
            writes_left,
            fail_flush: false,
        };
        let mut fs = FileSystem::mount(failing).unwrap();
        fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
        fill_running(&mut fs);
        fs
    };
    // The writes of the full running transaction's commit (the create joins the next).
    let mut measured = filled(u64::MAX);
    let before = measured.store.disk.writes_left;
    let full = measured.journal.next_sequence;
    measured.create("/d/new").unwrap();
    assert_eq!(measured.journal.next_sequence, full + 1, "committed first");
    let commit_writes = before - measured.store.disk.writes_left;
    let mut fs = filled(u64::MAX);
    let size = fs.stat("/fill/filler").unwrap().size;
    fs.set_max_pending_blocks(0);
    fs.store.disk.writes_left = commit_writes;
    let refused = fs.create("/d/new").unwrap_err();
    assert!(
        alloc::format!("{refused}").contains("stopped after an earlier disk error"),
        "{refused}"
    );
    let mut fs = FileSystem::mount(fs.into_disk().inner).unwrap();
    assert_eq!(fs.stat("/fill/filler").unwrap().size, size);
    assert!(fs.lookup(&["d", "new"]).is_err());
    fs.check().unwrap();
}

/// A disk whose every read of one block (the second field) fails.
pub(super) struct BadBlock(pub(super) MemoryDisk, pub(super) u64);

impl BlockStore for BadBlock {
    fn blocks(&self) -> u64 {
        self.0.blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        if block == self.1 {
            return Err("unreadable".into());
        }
        self.0.read(block, buf)
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        self.0.write(block, data)
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_read_error_fails_the_operation_only() {
    let mut fs = fresh(512);
    fs.create("/f").unwrap();
    fs.write("/f", 0, b"data").unwrap();
    fs.create("/g").unwrap();
    fs.sync().unwrap();
    let inode = fs.lookup(&["f"]).unwrap().inode;
    let data_block = inode.inline[0].physical;
    let mut fs = FileSystem::mount(BadBlock(fs.into_disk(), data_block)).unwrap();
    let error = fs.read_all("/f").unwrap_err();
    assert_eq!(
        error,
        FsError::Disk(alloc::format!("reading block {data_block}: unreadable"))
    );
    fs.write("/g", 0, b"still fine").unwrap();
    assert_eq!(fs.read_all("/g").unwrap(), b"still fine");
}

/// A disk whose `fail_at`th read of block `block` fails (0: none does), counting the
/// reads in `reads`.
pub(super) struct FlakyBlock {
    pub(super) inner: MemoryDisk,
    pub(super) block: u64,
    pub(super) reads: u64,
    pub(super) fail_at: u64,
}

impl BlockStore for FlakyBlock {
    fn blocks(&self) -> u64 {
        self.inner.blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), String> {
        if block == self.block {
            self.reads += 1;
            if self.reads == self.fail_at {
                return Err("unreadable".into());
            }
        }
        self.inner.read(block, buf)
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        self.inner.write(block, data)
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn an_operation_whose_commit_cannot_read_the_bitmap_changes_nothing() {
    let mut fs = fresh(512);
    fs.create("/f").unwrap();
    fs.write("/f", 0, b"data").unwrap();
    fs.create("/g").unwrap();
    fs.sync().unwrap();
    let disk = fs.into_disk();
    let bitmap = crate::format::Layout::for_disk(disk.blocks())
        .unwrap()
        .bitmap_start;
    let unlink_with_failing_read = |fail_at: u64| {
        let mut fs = FileSystem::mount(FlakyBlock {
            inner: disk.clone(),
            block: bitmap,
            reads: 0,
            fail_at: 0,
        })
        .unwrap();
        fs.set_cache_blocks(0);
        fs.store.disk.fail_at = fail_at;
        let result = fs.unlink("/f");
        (fs, result)
    };
    // The bitmap reads of an unlink with the cache off: the last is its commit's (which
    // blocks of the transaction are fresh).
    let (fs, result) = unlink_with_failing_read(0);
    result.unwrap();
    let reads = fs.store.disk.reads;
    assert!(reads >= 2, "{reads} bitmap reads");
    let (mut fs, result) = unlink_with_failing_read(reads);
    assert_eq!(
        result,
        Err(FsError::Disk(alloc::format!(
            "reading block {bitmap}: unreadable"
        )))
    );
    assert!(fs.store.running.is_empty() && fs.store.staged.is_empty());
    assert_eq!(
        fs.read_all("/f").unwrap(),
        b"data",
        "the refused unlink stays undone"
    );
    fs.create("/h").unwrap();
    let free = fs.statfs().free_blocks;
    let mut fs = FileSystem::mount(fs.into_disk().inner).unwrap();
    assert_eq!(fs.statfs().free_blocks, free);
    assert_eq!(names_in(&mut fs, "/"), ["f", "g", "h"]);
    fs.check().unwrap();
}

#[test]
fn errors_read_well() {
    let samples = [
        (FsError::NotFound("/a".into()), "/a: not found"),
        (
            FsError::Corrupt {
                block: 9,
                what: "/d: directory block checksum mismatch".into(),
            },
            "corrupt block 9: /d: directory block checksum mismatch",
        ),
        (FsError::NoSpace, "no free block left"),
        (
            FsError::TooLarge {
                needed: 70,
                capacity: 63,
            },
            "operation needs 70 journal blocks, the journal holds 63",
        ),
        (
            FsError::IntoItself {
                from: "/a".into(),
                to: "/a/b".into(),
            },
            "cannot move directory /a inside itself (/a/b)",
        ),
    ];
    for (error, text) in samples {
        assert_eq!(alloc::format!("{error}"), text);
    }
}

#[test]
fn replace_creates_a_file_or_makes_it_hold_exactly_the_new_bytes() {
    let mut fs = fresh(512);
    fs.mkdir("/d").unwrap();
    fs.replace("/d/f", &[1u8; 10_000]).unwrap();
    assert_eq!(fs.read_all("/d/f").unwrap(), vec![1u8; 10_000]);
    fs.replace("/d/f", b"short").unwrap();
    let mut fs = remount(fs);
    assert_eq!(fs.read_all("/d/f").unwrap(), b"short");
    assert_eq!(
        fs.replace("/d", b"x"),
        Err(FsError::IsADirectory(String::from("/d")))
    );
    assert_eq!(fs.replace("/none/f", b"x"), Err(not_found("/none")));
    fs.check().unwrap();
}

#[test]
fn batched_operations_are_durable_at_commit_and_one_transaction() {
    let mut fs = fresh(1024);
    fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
    assert_eq!(fs.commit_policy(), CommitPolicy::OnCommit);
    fs.mkdir("/d").unwrap();
    for index in 0..20 {
        let path = alloc::format!("/d/f{index}");
        fs.create(&path).unwrap();
        fs.write(&path, 0, &[index as u8; 1000]).unwrap();
    }
    assert_eq!(fs.read_all("/d/f7").unwrap(), [7; 1000], "reads see it");
    assert_eq!(
        fs.check().unwrap().journal_transactions,
        0,
        "nothing committed"
    );
    fs.write("/d/f3", 1 << 40, b"x").unwrap();
    fs.truncate("/d/f3", 1000).unwrap();
    let running = fs.store.running.clone();
    assert_eq!(
        fs.create("/d/f3"),
        Err(FsError::Exists(String::from("/d/f3")))
    );
    assert_eq!(
        fs.write("/d", 0, b"x"),
        Err(FsError::IsADirectory("/d".into()))
    );
    let free = fs.statfs().free_blocks;
    assert_eq!(
        fs.write("/d/f3", 0, &vec![1; 1000 * 4096]),
        Err(FsError::NoSpace)
    );
    assert_eq!(fs.statfs().free_blocks, free);
    assert!(fs.store.running == running, "failures left it alone");
    let lost = FileSystem::mount(fs.store.disk.clone()).unwrap();
    let mut lost = lost;
    assert_eq!(lost.list("/").unwrap(), [], "not durable before commit");
    fs.commit().unwrap();
    assert!(fs.store.running.is_empty());
    assert_eq!(
        fs.check().unwrap().journal_transactions,
        1,
        "one transaction"
    );
    let mut durable = FileSystem::mount(fs.store.disk.clone()).unwrap();
    assert_eq!(durable.read_all("/d/f19").unwrap(), [19; 1000]);
    fs.unlink("/d/f0").unwrap();
    fs.set_commit_policy(CommitPolicy::EachOperation).unwrap();
    assert!(fs.store.running.is_empty(), "going back commits");
    fs.unlink("/d/f1").unwrap();
    assert!(fs.store.running.is_empty());
    let mut fs = remount(fs);
    assert_eq!(fs.list("/d").unwrap().len(), 18);
    fs.check().unwrap();
}

#[test]
fn a_running_transaction_is_committed_before_it_outgrows_the_journal() {
    let mut fs = fresh(512);
    fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
    let capacity = fs.journal.capacity();
    fs.create("/f").unwrap();
    for round in 0..100u64 {
        fs.write("/f", round * 4096, &[round as u8; 4096]).unwrap();
        let length = crate::journal::transaction_length(fs.store.running.len() as u64);
        assert!(length <= capacity, "round {round}: {length} > {capacity}");
    }
    assert_eq!(fs.journal.next_sequence, 2, "committed once on the way");
    fs.commit().unwrap();
    let mut fs = remount(fs);
    for round in 0..100u64 {
        let mut buf = [0u8; 4096];
        fs.read("/f", round * 4096, &mut buf).unwrap();
        assert_eq!(buf, [round as u8; 4096]);
    }
    fs.check().unwrap();
    let mut big = fresh(64 * 2048);
    big.set_commit_policy(CommitPolicy::OnCommit).unwrap();
    big.create("/g").unwrap();
    big.write("/g", 0, &vec![3; 4096 * (MAX_RUNNING_BLOCKS + 10)])
        .unwrap();
    assert!(big.store.running.len() < MAX_RUNNING_BLOCKS, "bounded");
}

/// The physical blocks of the file at `path`, in logical order.
fn physical_blocks(fs: &mut FileSystem<MemoryDisk>, path: &str) -> Vec<u64> {
    let inode = fs.lookup(&parse(path).unwrap()).unwrap().inode;
    let (extents, _) = fs.load_extents(&inode).unwrap();
    extents
        .iter()
        .flat_map(|extent| extent.physical..extent.physical_end())
        .collect()
}

#[test]
fn linked_files_are_placed_right_after_their_page() {
    let mut fs = fresh(4096);
    fs.mkdir("/pages").unwrap();
    fs.mkdir("/img").unwrap();
    for index in 0..20 {
        fs.replace(&alloc::format!("/img/filler-{index}"), &[9; 5000])
            .unwrap();
    }
    fs.replace("/pages/index.html", &[1; 6000]).unwrap();
    for index in 0..5 {
        fs.unlink(&alloc::format!("/img/filler-{index}")).unwrap();
    }
    fs.replace_after("/img/a.png", &[2; 5000], "/pages/index.html")
        .unwrap();
    fs.replace_after("/img/b.png", &[3; 100], "/img/a.png")
        .unwrap();
    let page = physical_blocks(&mut fs, "/pages/index.html");
    let a = physical_blocks(&mut fs, "/img/a.png");
    let b = physical_blocks(&mut fs, "/img/b.png");
    assert_eq!(a[0], page[1] + 1, "page {page:?}, a {a:?}");
    assert_eq!(b[0], a[1] + 1, "a {a:?}, b {b:?}");
    // Without a neighbour a new file in /img fills the holes the fillers left next to
    // /img's entries, before the page.
    fs.replace("/img/c.png", &[4; 100]).unwrap();
    assert!(physical_blocks(&mut fs, "/img/c.png")[0] < page[0]);

    let mut fs = remount(fs);
    assert_eq!(fs.read_all("/img/a.png").unwrap(), [2; 5000]);
    assert_eq!(fs.read_all("/img/b.png").unwrap(), [3; 100]);
    assert_eq!(
        fs.replace_after("/img/d.png", b"x", "/nowhere"),
        Err(not_found("/nowhere"))
    );
    assert_eq!(
        fs.replace_after("/img/d.png", b"x", "/img"),
        Err(FsError::IsADirectory(String::from("/img")))
    );
    assert_eq!(
        fs.stat("/img/d.png"),
        Err(not_found("/img/d.png")),
        "nothing made"
    );
    // A neighbour without blocks places nothing: the usual goal.
    fs.create("/empty").unwrap();
    fs.replace_after("/img/e.png", b"e", "/empty").unwrap();
    assert_eq!(fs.read_all("/img/e.png").unwrap(), b"e");
    fs.check().unwrap();
}

/// A file written a piece at a time, a hole first: `write_after` places its first block
/// right after the neighbour's last, and the pieces written after it with `write` follow.
#[test]
fn a_file_written_in_pieces_after_a_neighbour_follows_it() {
    let mut fs = fresh(4096);
    fs.mkdir("/img").unwrap();
    for index in 0..10 {
        fs.replace(&alloc::format!("/img/filler-{index}"), &[9; 5000])
            .unwrap();
    }
    fs.replace("/index.html", &[1; 6000]).unwrap();
    for index in 0..5 {
        fs.unlink(&alloc::format!("/img/filler-{index}")).unwrap();
    }
    fs.create("/img/big.png").unwrap();
    fs.write_after("/img/big.png", 3 * 4096, &[2; 4096], "/index.html")
        .unwrap();
    fs.write("/img/big.png", 5 * 4096, &[3; 5000]).unwrap();
    let page = physical_blocks(&mut fs, "/index.html");
    let big = physical_blocks(&mut fs, "/img/big.png");
    assert_eq!(
        big,
        [page[1] + 1, page[1] + 2, page[1] + 3],
        "page {page:?}"
    );
    assert_eq!(
        fs.write_after("/img/big.png", 0, b"x", "/nowhere"),
        Err(not_found("/nowhere"))
    );
    assert_eq!(
        fs.write_after("/img/big.png", 0, b"x", "/img"),
        Err(FsError::IsADirectory(String::from("/img")))
    );
    let mut fs = remount(fs);
    let mut expected = alloc::vec![0u8; 5 * 4096 + 5000];
    expected[3 * 4096..4 * 4096].fill(2);
    expected[5 * 4096..].fill(3);
    assert_eq!(fs.read_all("/img/big.png").unwrap(), expected);
    fs.check().unwrap();
}
