//! Crash consistency: random operation sequences on a disk that records every write
//! and flush; then, for every cut point in the record, the disk as a crash right
//! there would leave it (every write up to the cut kept; or the writes up to the last
//! flush kept and a random subset of the later ones) must mount (recovery), check
//! clean, and hold exactly the tree after some operation: one that had completed by
//! the cut, or the one in progress. So nothing done before the last completed
//! operation (and so before the last `sync`) is lost, and no operation is half done.
//! With batched commits (`CommitPolicy::OnCommit`) the operations after the last
//! completed `commit`, `sync` or remount may be lost, but only whole and in order: the
//! tree is the one after some operation from that one on.

use alloc::vec;
use alloc::vec::Vec;

use super::model::Model;
use super::property::{Mix, Op, random_op, step};
use super::{Node, Rng, Snapshot, snapshot};
use crate::disk::BlockStore;
use crate::fs::FileSystem;
use crate::{BLOCK_SIZE, CommitPolicy, DEFAULT_MAX_PENDING_BLOCKS, FsError, MemoryDisk};

/// What reached the disk.
#[derive(Clone, Debug)]
enum Event {
    Write(u64, Vec<u8>),
    Flush,
}

/// A memory disk that records every write and flush.
struct Recorder {
    disk: MemoryDisk,
    log: Vec<Event>,
}

impl Recorder {
    fn new(disk: MemoryDisk) -> Self {
        Self {
            disk,
            log: Vec::new(),
        }
    }
}

impl BlockStore for Recorder {
    fn blocks(&self) -> u64 {
        self.disk.blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), alloc::string::String> {
        self.disk.read(block, buf)
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), alloc::string::String> {
        self.log.push(Event::Write(block, data.to_vec()));
        self.disk.write(block, data)
    }
    fn flush(&mut self) -> Result<(), alloc::string::String> {
        self.log.push(Event::Flush);
        Ok(())
    }
}

/// The disks a crash at each point of `log` (applied to `base`) could leave, handed
/// to `check` with the cut's index: everything up to the cut, the last flushed state
/// plus a random subset of the writes after it, and (when `tears`, a disk of 512-byte
/// sectors) everything up to the cut with the write at the cut torn: some of its
/// sectors written (a random choice, neither none nor all), the others as they were.
fn for_each_crash(
    base: &MemoryDisk,
    log: &[Event],
    rng: &mut Rng,
    tears: bool,
    mut check: impl FnMut(usize, MemoryDisk),
) {
    let mut image = base.clone();
    let mut flushed = base.clone();
    let mut unflushed: Vec<(u64, &[u8])> = Vec::new();
    for cut in 0..=log.len() {
        check(cut, image.clone());
        if tears && let Some(Event::Write(block, data)) = log.get(cut) {
            let mut crashed = image.clone();
            let old = crate::store::read_disk(&mut crashed, *block).unwrap();
            let written = 1 + rng.below(254) as u8;
            crashed
                .write(*block, &torn(&old[..], data, written))
                .unwrap();
            check(cut, crashed);
        }
        if !unflushed.is_empty() {
            let mut partial = flushed.clone();
            for (block, data) in &unflushed {
                if rng.chance(50) {
                    partial.write(*block, data).unwrap();
                }
            }
            check(cut, partial);
        }
        match log.get(cut) {
            Some(Event::Write(block, data)) => {
                image.write(*block, data).unwrap();
                unflushed.push((*block, data));
            }
            Some(Event::Flush) => {
                flushed = image.clone();
                unflushed.clear();
            }
            None => {}
        }
    }
}

/// Bytes per sector of the disks whose torn writes the tests make: a 4 KiB block goes
/// to such a disk as eight sectors, and a crash may leave any of them written and the
/// others not.
const SECTOR: usize = 512;

/// A write of `new` over `old` torn by a crash: the sectors whose bit is set in
/// `written` (bit i for sector i) hold `new`'s bytes, the others `old`'s.
fn torn(old: &[u8], new: &[u8], written: u8) -> Vec<u8> {
    let sectors = old.chunks(SECTOR).zip(new.chunks(SECTOR));
    sectors
        .enumerate()
        .flat_map(|(index, (old, new))| if written & 1 << index != 0 { new } else { old })
        .copied()
        .collect()
}

/// The disks a crash at a sector boundary of the writes of `log` (applied to `base` in
/// order) could leave, handed to `check` with the index of the write cut: before each
/// write the disk with every earlier write whole, and that write cut after each of its
/// sectors, its first k of eight sectors written or its last k (k = 1 to 7: a disk
/// writes a request's sectors in any order), the others as they were; and the disk
/// after the last write. A cut that leaves the block as it was or as it is after the
/// write (only the sectors on one side of it change), or as another cut of the same
/// write left it, is the same disk and is checked once.
fn for_each_sector_cut(base: &MemoryDisk, log: &[Event], mut check: impl FnMut(usize, MemoryDisk)) {
    let mut image = base.clone();
    for (index, event) in log.iter().enumerate() {
        let Event::Write(block, data) = event else {
            continue;
        };
        check(index, image.clone());
        let old = crate::store::read_disk(&mut image, *block).unwrap();
        let mut seen = vec![old.to_vec(), data.clone()];
        for sectors in 1..8 {
            let first: u8 = (1 << sectors) - 1;
            for written in [first, !first] {
                let cut = torn(&old[..], data, written);
                if seen.contains(&cut) {
                    continue;
                }
                let mut crashed = image.clone();
                crashed.write(*block, &cut).unwrap();
                seen.push(cut);
                check(index, crashed);
            }
        }
        image.write(*block, data).unwrap();
    }
    check(log.len(), image);
}

/// `base` with the writes of `events` applied: what the disk holds once they are all
/// done.
fn with_writes(base: &MemoryDisk, events: &[Event]) -> MemoryDisk {
    let mut image = base.clone();
    for event in events {
        if let Event::Write(block, data) = event {
            image.write(*block, data).unwrap();
        }
    }
    image
}

/// Mounts a crashed disk; it must recover and check clean. Returns its tree and the
/// disk after recovery.
fn recover(disk: MemoryDisk, context: &str) -> (Snapshot, MemoryDisk) {
    let mut fs =
        FileSystem::mount(disk).unwrap_or_else(|e| panic!("{context}: recovery failed: {e}"));
    fs.check()
        .unwrap_or_else(|e| panic!("{context}: inconsistent after recovery: {e}"));
    let tree = snapshot(&mut fs).unwrap_or_else(|e| panic!("{context}: {e}"));
    let mut disk = fs.into_disk();
    FileSystem::fsck(&mut disk).unwrap_or_else(|e| panic!("{context}: {e}"));
    (tree, disk)
}

/// A crash in the middle of recovery (mount's replay) recovers to the same tree; with
/// `tears`, also one tearing the write it cuts.
fn crash_during_recovery(
    disk: &MemoryDisk,
    expected: &Snapshot,
    rng: &mut Rng,
    tears: bool,
    context: &str,
) {
    let mut recording = Recorder::new(disk.clone());
    drop(FileSystem::mount(&mut recording).unwrap());
    for_each_crash(disk, &recording.log, rng, tears, |cut, crashed| {
        let (tree, _) = recover(crashed, &alloc::format!("{context}, recovery cut {cut}"));
        assert!(
            tree == *expected,
            "{context}, recovery cut {cut}: another tree"
        );
    });
}

/// What one recorded run checked.
#[derive(Default)]
struct Checked {
    /// Crash images recovered and compared.
    images: usize,
    /// Recoveries crashed in turn.
    recoveries: usize,
    /// Images whose tree was older than the last operation completed by the cut
    /// (operations not yet committed, lost as they may be).
    older: usize,
    /// Writes of the superblock torn (with `tears`).
    torn_superblocks: usize,
    /// Writes of the journal header torn (with `tears`).
    torn_headers: usize,
    /// Writes of the journal header: the format's and every checkpoint's.
    header_writes: usize,
}

/// One recorded run of `operations` random operations under `mix` (and its commit
/// policy). A crash image must hold the tree after some operation from the last one
/// known durable by the cut (each completed one with `EachOperation`; the last
/// completed `commit`, `sync` or remount with `OnCommit`) to the one in progress. With
/// `tears`, the write at each cut is also torn (see [`for_each_crash`]). Every mount
/// keeps at most `max_pending` blocks pending before it checkpoints.
fn crash_run(seed: u64, operations: usize, mix: Mix, tears: bool, max_pending: usize) -> Checked {
    let mut rng = Rng::new(seed);
    let base = super::ops::fresh(256).into_disk();
    let mut mounted = FileSystem::mount(Recorder::new(base.clone())).unwrap();
    mounted.set_commit_policy(mix.policy).unwrap();
    mounted.set_max_pending_blocks(max_pending);
    let mut fs = Some(mounted);
    let mut model = Model::new();
    let mut states = vec![model.snapshot()];
    let mut ends = Vec::new();
    // durable[i]: state i was durable once the operation leading to it completed.
    let mut durable = vec![true];
    for index in 0..operations {
        let op = random_op(&mut rng, &model, mix);
        step(
            &mut fs,
            &mut model,
            &op,
            &alloc::format!("seed {seed} op {index}"),
        );
        states.push(model.snapshot());
        ends.push(fs.as_ref().map_or(0, |fs| fs.store.disk.log.len()));
        durable.push(
            mix.policy == CommitPolicy::EachOperation
                || matches!(op, Op::Commit | Op::Sync | Op::Remount),
        );
    }
    let log = fs.take().map(|fs| fs.into_disk().log).unwrap_or_default();
    let written = |number| {
        (log.iter())
            .filter(|event| matches!(event, Event::Write(block, _) if *block == number))
            .count()
    };
    let mut checked = Checked {
        header_writes: written(1),
        ..Checked::default()
    };
    if tears {
        checked.torn_superblocks = written(0);
        checked.torn_headers = written(1);
    }
    for_each_crash(
        &base,
        &log,
        &mut rng.clone_seeded(),
        tears,
        |cut, crashed| {
            let context = alloc::format!("seed {seed}, cut {cut} of {}", log.len());
            let completed = ends.iter().filter(|&&end| end <= cut).count();
            let oldest = (0..=completed).rev().find(|&i| durable[i]).unwrap_or(0);
            let allowed = &states[oldest..(completed + 2).min(states.len())];
            let needs_replay = {
                let mut probe = crashed.clone();
                FileSystem::fsck(&mut probe).map_or(0, |report| report.journal_transactions) > 0
            };
            let (tree, _) = recover(crashed.clone(), &context);
            assert!(
                allowed.contains(&tree),
                "{context}: the tree is not the one after an operation from {oldest} to {}",
                completed + 1
            );
            if !states[completed..(completed + 2).min(states.len())].contains(&tree) {
                checked.older += 1;
            }
            if needs_replay && cut % 16 == 0 && checked.recoveries < 12 {
                checked.recoveries += 1;
                crash_during_recovery(&crashed, &tree, &mut rng, tears, &context);
            }
            checked.images += 1;
        },
    );
    checked
}

impl Rng {
    /// A second generator derived from this one.
    fn clone_seeded(&mut self) -> Rng {
        Rng::new(self.next())
    }
}

/// The operations of the crash runs that commit each operation.
fn each_operation() -> Mix {
    Mix {
        max_write: 16_000,
        large_writes: 0,
        sync_and_remount: 10,
        flat: 30,
        commits: 0,
        policy: CommitPolicy::EachOperation,
    }
}

/// The operations of the crash runs with batched commits.
fn batched() -> Mix {
    Mix {
        max_write: 16_000,
        large_writes: 0,
        sync_and_remount: 6,
        flat: 30,
        commits: 6,
        policy: CommitPolicy::OnCommit,
    }
}

#[test]
fn a_crash_at_any_write_leaves_the_tree_of_an_operation_boundary() {
    let mix = each_operation();
    let (mut checked, mut recoveries) = (0, 0);
    for seed in 0..24 * super::property::long_factor() {
        let run = crash_run(100 + seed, 40, mix, false, DEFAULT_MAX_PENDING_BLOCKS);
        checked += run.images;
        recoveries += run.recoveries;
        assert_eq!(run.older, 0, "seed {seed}: a completed operation was lost");
    }
    assert!(checked >= 4000, "only {checked} crash images checked");
    assert!(recoveries >= 100, "only {recoveries} recoveries crashed");
}

#[test]
fn a_crash_with_batched_commits_leaves_the_tree_after_the_last_commit_or_later() {
    let mix = batched();
    let (mut checked, mut recoveries, mut older) = (0, 0, 0);
    for seed in 0..24 * super::property::long_factor() {
        let run = crash_run(500 + seed, 80, mix, false, DEFAULT_MAX_PENDING_BLOCKS);
        checked += run.images;
        recoveries += run.recoveries;
        older += run.older;
    }
    assert!(checked >= 3000, "only {checked} crash images checked");
    assert!(recoveries >= 100, "only {recoveries} recoveries crashed");
    assert!(
        older >= 300,
        "only {older} images lost uncommitted operations: is the batching tested?"
    );
}

/// The same on a disk of 512-byte sectors, where a crash can tear the write it cuts:
/// some of the block's sectors new, the others old. Every write of each run is also
/// torn, under both policies, and recoveries are crashed (and torn) in turn. A
/// checkpoint's torn write of the superblock or the journal header left the disk
/// refused (checksum mismatch), though nothing was lost.
#[test]
fn a_crash_tearing_a_write_at_sector_boundaries_leaves_the_tree_of_an_operation_boundary() {
    let (mut checked, mut recoveries) = (0, 0);
    let (mut superblocks, mut headers) = (0, 0);
    for seed in 0..8 * super::property::long_factor() {
        for (first, operations, mix) in [(900, 40, each_operation()), (950, 80, batched())] {
            let run = crash_run(
                first + seed,
                operations,
                mix,
                true,
                DEFAULT_MAX_PENDING_BLOCKS,
            );
            checked += run.images;
            recoveries += run.recoveries;
            superblocks += run.torn_superblocks;
            headers += run.torn_headers;
            if mix.policy == CommitPolicy::EachOperation {
                assert_eq!(run.older, 0, "seed {seed}: a completed operation was lost");
            }
        }
    }
    assert!(checked >= 3500, "only {checked} crash images checked");
    assert!(recoveries >= 100, "only {recoveries} recoveries crashed");
    assert!(
        superblocks >= 20 && headers >= 20,
        "only {superblocks} superblock and {headers} journal header writes torn"
    );
}

/// The same around checkpoints forced by the memory bound rather than a full journal:
/// with at most 2 blocks pending, most commits checkpoint before or after their
/// transaction. Every write of each run is also torn, under both policies.
#[test]
fn a_crash_around_checkpoints_forced_by_the_pending_bound_leaves_the_tree_of_an_operation_boundary()
{
    let (mut checked, mut header_writes) = (0, 0);
    for seed in 0..4 * super::property::long_factor() {
        for (first, operations, mix) in [(1300, 40, each_operation()), (1350, 80, batched())] {
            let run = crash_run(first + seed, operations, mix, true, 2);
            checked += run.images;
            header_writes += run.header_writes;
            if mix.policy == CommitPolicy::EachOperation {
                assert_eq!(run.older, 0, "seed {seed}: a completed operation was lost");
            }
        }
    }
    assert!(checked >= 2000, "only {checked} crash images checked");
    // 25 with the default bound (syncs, remounts and full journals alone).
    assert!(
        header_writes >= 50,
        "only {header_writes} checkpoints: is the bound forcing any?"
    );
}

#[test]
fn a_crash_during_a_large_write_leaves_a_prefix_of_it() {
    let mut fs = super::ops::fresh(512);
    fs.create("/big").unwrap();
    let base = fs.into_disk();
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 247) as u8 + 1).collect();
    let mut fs = FileSystem::mount(Recorder::new(base.clone())).unwrap();
    fs.write("/big", 0, &data).unwrap();
    let log = fs.into_disk().log;
    let pieces = log
        .iter()
        .filter(|event| matches!(event, Event::Flush))
        .count();
    assert!(pieces >= 3, "the write took {pieces} flushes");
    let mut last_size = 0;
    let mut sizes = Vec::new();
    // Ordered writes: each piece's new blocks go home, then a flush, then its journal
    // transaction (a journal write never follows an unflushed home write).
    let layout = crate::format::Layout::for_disk(base.blocks()).unwrap();
    let journal = layout.journal_start..layout.journal_end();
    let mut in_place = 0;
    let mut since_flush = 0;
    for event in &log {
        match event {
            Event::Write(block, _) if !journal.contains(block) && *block != 0 => {
                in_place += 1;
                since_flush += 1;
            }
            Event::Write(..) => assert_eq!(since_flush, 0, "a journal write before a flush"),
            Event::Flush => since_flush = 0,
        }
    }
    assert!(in_place >= 100, "{in_place} blocks written in place");
    // Each cut gives every write up to it, then the flushed state plus some of the later
    // writes (in any order: a piece whose commit came through without its new blocks
    // would show other bytes).
    let mut last_cut = None;
    let mut partials = 0;
    for_each_crash(&base, &log, &mut Rng::new(3), false, |cut, crashed| {
        let partial = last_cut == Some(cut);
        last_cut = Some(cut);
        partials += usize::from(partial);
        let (tree, _) = recover(crashed, &alloc::format!("cut {cut}"));
        let Some(Node::File(file)) = tree.get("/big") else {
            panic!("cut {cut}: /big is gone");
        };
        let size = file.size as usize;
        if partial {
            assert!(size <= last_size, "cut {cut}: more than every write gives");
        } else {
            assert!(size >= last_size, "cut {cut}: the file shrank");
        }
        assert!(
            size == data.len() || size.is_multiple_of(BLOCK_SIZE),
            "cut {cut}: size {size}"
        );
        for (&index, block) in &file.blocks {
            let start = index as usize * BLOCK_SIZE;
            let end = (start + BLOCK_SIZE).min(size);
            assert_eq!(
                &block[..end - start],
                &data[start..end],
                "cut {cut}: block {index}"
            );
        }
        assert_eq!(
            file.blocks.len(),
            size.div_ceil(BLOCK_SIZE),
            "cut {cut}: no holes"
        );
        if partial {
            return;
        }
        if size != last_size {
            sizes.push(size);
        }
        last_size = size;
    });
    assert!(partials >= 100, "only {partials} partial images");
    assert_eq!(last_size, data.len());
    assert!(sizes.len() >= 3, "prefixes seen: {sizes:?}");
}

#[test]
fn a_new_format_replays_none_of_the_old_file_systems_transactions() {
    let mut fs = super::ops::fresh(512);
    fs.mkdir("/x").unwrap();
    fs.mkdir("/y").unwrap();
    // Formatted again with both transactions still in the journal; the new first
    // transaction (the same three blocks) lands where the old one was.
    let mut fs = FileSystem::format(fs.into_disk()).unwrap();
    fs.mkdir("/z").unwrap();
    let (tree, _) = recover(fs.into_disk(), "after the second format");
    let names: Vec<&str> = tree.keys().map(|name| name.as_str()).collect();
    assert_eq!(
        names,
        ["/", "/z"],
        "the old file system's transaction 2 replayed"
    );
}

/// A crash at any point of a format over a file system leaves the old file system
/// whole, the new one, or a disk that mount refuses as `NotFormatted` (format it again):
/// any of the writes since the last flush lost (block 0 loses its magic, and that is
/// flushed, before anything else is written; it used to be flushed only with the
/// bitmap and journal, so a crash could leave the old superblock over a new bitmap,
/// which mount refused as corrupt), or the write at the cut torn at any sector
/// boundary. Block 0's writes change its first sector alone when it matters: clearing
/// the old magic, and writing the new one over the rest of the new superblock, already
/// flushed. Block 0 was zeroed whole and the new superblock written whole, and a tear
/// left a block with the magic but not its CRC: refused as damaged (superblock
/// checksum mismatch), which repair refuses too.
#[test]
fn a_crash_during_a_format_leaves_the_old_file_system_the_new_one_or_an_unformatted_disk() {
    let mut old = super::ops::fresh(512);
    old.mkdir("/kept").unwrap();
    old.create("/kept/file").unwrap();
    old.write("/kept/file", 0, &[3; 9000]).unwrap();
    old.sync().unwrap();
    let synced_tree = snapshot(&mut old).unwrap();
    let synced = old.into_disk();
    // The same with operations in the journal, block 0's image among them.
    let mut old = FileSystem::mount(synced.clone()).unwrap();
    old.mkdir("/journaled").unwrap();
    let journaled_tree = snapshot(&mut old).unwrap();
    let journaled = old.into_disk();
    let (mut unformatted, mut kept, mut new) = (0, 0, 0);
    for (base, old_tree) in [(synced, synced_tree), (journaled, journaled_tree)] {
        let mut recording = Recorder::new(base.clone());
        let new_tree = snapshot(&mut FileSystem::format(&mut recording).unwrap()).unwrap();
        let mut judge = |cut: usize, crashed: MemoryDisk| match FileSystem::mount(crashed) {
            Err(FsError::NotFormatted) => unformatted += 1,
            Ok(mut fs) => {
                let tree = snapshot(&mut fs).unwrap();
                assert!(
                    tree == old_tree || tree == new_tree,
                    "cut {cut}: neither the old nor the new tree"
                );
                kept += usize::from(tree == old_tree);
                new += usize::from(tree == new_tree);
            }
            Err(error) => panic!("cut {cut}: {error}"),
        };
        for_each_crash(&base, &recording.log, &mut Rng::new(7), true, &mut judge);
        for_each_sector_cut(&base, &recording.log, &mut judge);
    }
    assert!(
        unformatted > 0 && kept > 0 && new > 0,
        "{unformatted} unformatted, {kept} kept, {new} new"
    );
}

/// A fresh file system's tree after `mkdir /a` (the root grows, so block 0 is
/// journaled), its disk with the journal not yet replayed, and what the mount that
/// replays it writes and flushes (the checkpoint).
fn checkpoint_after_mkdir() -> (Snapshot, MemoryDisk, Vec<Event>) {
    let mut fs = super::ops::fresh(256);
    fs.mkdir("/a").unwrap();
    let expected = snapshot(&mut fs).unwrap();
    let journaled = fs.into_disk();
    let mut recording = Recorder::new(journaled.clone());
    drop(FileSystem::mount(&mut recording).unwrap());
    (expected, journaled, recording.log)
}

/// The tree after `mkdir /a` and the disk a crash leaves when it tears the write of
/// block 0 at mount's checkpoint, the sectors of `written` new and the others old.
fn superblock_torn_at_a_checkpoint(written: u8, context: &str) -> (Snapshot, MemoryDisk) {
    // Mount replays the journal: the checkpoint writing block 0 home.
    let (expected, journaled, log) = checkpoint_after_mkdir();
    let at = (log.iter())
        .position(|event| matches!(event, Event::Write(0, _)))
        .expect("the checkpoint writes block 0");
    let Event::Write(_, new) = &log[at] else {
        unreachable!("found as a write")
    };
    let mut crashed = with_writes(&journaled, &log[..at]);
    let old = crate::store::read_disk(&mut crashed, 0).unwrap();
    let block = torn(&old[..], new, written);
    assert!(
        crate::format::Superblock::is_torn(&block.clone().try_into().unwrap()),
        "{context}: not torn"
    );
    crashed.write(0, &block).unwrap();
    (expected, crashed)
}

/// A checkpoint writes block 0 home when the root directory's inode changed (the
/// superblock holds it). On a disk of 512-byte sectors a crash can tear that write, the
/// superblock's fields from one write and its CRC from the other. The journal still
/// holds block 0's image then, so mount, fsck and repair read it from there; they
/// refused the disk (superblock checksum mismatch), repair too, though nothing was lost.
#[test]
fn a_superblock_torn_at_a_checkpoint_is_read_from_the_journal() {
    for written in [0x01, 0x0f, 0x7f, 0x80, 0xf0] {
        let context = alloc::format!("block 0's sectors {written:#010b} written");
        let (expected, crashed) = superblock_torn_at_a_checkpoint(written, &context);
        let (tree, _) = recover(crashed.clone(), &context);
        assert!(tree == expected, "{context}: another tree");
        let (mut repaired, report) = FileSystem::repair(crashed).unwrap();
        assert!(report.fixes.is_empty(), "{context}: {:?}", report.fixes);
        assert!(snapshot(&mut repaired).unwrap() == expected, "{context}");
    }
}

/// A superblock torn at a checkpoint on a disk that fails to read the journal holding
/// its image fails mount and the check with the disk's error, as a sound one's does; it
/// was refused as damaged (superblock checksum mismatch), sending the user to repair
/// for an I/O failure.
#[test]
fn a_torn_superblock_whose_journal_cannot_be_read_fails_with_the_disk_error() {
    let (_, crashed) = superblock_torn_at_a_checkpoint(0x0f, "block 0 torn");
    let journal_start = (crate::format::Layout::for_disk(crashed.blocks()).unwrap()).journal_start;
    let failing = || super::ops::FlakyBlock {
        inner: crashed.clone(),
        block: journal_start,
        reads: 0,
        fail_at: 1,
    };
    let error = FsError::Disk(alloc::format!("reading block {journal_start}: unreadable"));
    assert_eq!(FileSystem::mount(failing()).err(), Some(error.clone()));
    assert_eq!(
        FileSystem::mount_read_only(failing()).err(),
        Some(error.clone())
    );
    assert_eq!(FileSystem::fsck(&mut failing()).err(), Some(error));
}

/// Repair of a superblock torn at a checkpoint on a disk that fails to read the journal
/// holding its image fails with the disk's error, writing nothing; it blamed damage
/// (superblock checksum mismatch, "repair needs the superblock").
#[test]
fn a_torn_superblock_whose_journal_cannot_be_read_fails_repair_with_the_disk_error() {
    let (expected, mut crashed) = superblock_torn_at_a_checkpoint(0x0f, "block 0 torn");
    let before = super::corrupt::contents(&mut crashed);
    let journal_start = (crate::format::Layout::for_disk(crashed.blocks()).unwrap()).journal_start;
    let mut failing = super::ops::BadBlock(crashed, journal_start);
    assert_eq!(
        FileSystem::repair(&mut failing).map(drop),
        Err(FsError::Disk(alloc::format!(
            "reading block {journal_start}: unreadable"
        )))
    );
    assert!(
        super::corrupt::contents(&mut failing.0) == before,
        "repair wrote"
    );
    let (mut repaired, _) = FileSystem::repair(failing.0).unwrap();
    assert!(snapshot(&mut repaired).unwrap() == expected);
}

/// A disk whose block `block` cannot be read until it is written again (a sector a
/// crash tore mid-write, whose checksum the drive then refuses).
struct UnreadableUntilRewritten<D = MemoryDisk> {
    disk: D,
    block: u64,
    rewritten: bool,
}

impl<D> UnreadableUntilRewritten<D> {
    fn new(disk: D, block: u64) -> Self {
        Self {
            disk,
            block,
            rewritten: false,
        }
    }
}

impl<D: BlockStore> BlockStore for UnreadableUntilRewritten<D> {
    fn blocks(&self) -> u64 {
        self.disk.blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), alloc::string::String> {
        if block == self.block && !self.rewritten {
            return Err("unreadable".into());
        }
        self.disk.read(block, buf)
    }
    fn write(&mut self, block: u64, data: &[u8]) -> Result<(), alloc::string::String> {
        self.rewritten |= block == self.block;
        self.disk.write(block, data)
    }
    fn flush(&mut self) -> Result<(), alloc::string::String> {
        self.disk.flush()
    }
}

/// A format over a disk whose block 0 cannot be read (a sector a crash tore) while the
/// old journal holds its image: a crash at any write of it leaves the old file system,
/// the new one or `NotFormatted`. Block 0 is written without its magic and flushed
/// first; written with the bitmap and journal, a crash that left it unreadable beside
/// the new bitmap had mount take the old superblock from the old journal and refuse the
/// disk as corrupt.
#[test]
fn a_crash_during_a_format_over_an_unreadable_block_0_leaves_old_new_or_unformatted() {
    // The journal holds block 0's image (the root grew); what block 0 holds at home is
    // never read while it is unreadable: bytes no write of format makes, so that a
    // crashed disk's block 0 tells whether a write of it landed.
    let mut old = super::ops::fresh(256);
    old.mkdir("/a").unwrap();
    let old_tree = snapshot(&mut old).unwrap();
    let mut base = old.into_disk();
    base.write(0, &[0xEE; BLOCK_SIZE]).unwrap();
    let mut recording = UnreadableUntilRewritten::new(Recorder::new(base.clone()), 0);
    let new_tree = snapshot(&mut FileSystem::format(&mut recording).unwrap()).unwrap();
    // Block 0 is written twice: the new superblock without its magic (flushed before
    // the bitmap and journal), then with it; not a second time without it.
    let block_0_writes = (recording.disk.log.iter())
        .filter(|event| matches!(event, Event::Write(0, _)))
        .count();
    assert_eq!(block_0_writes, 2, "format's writes of block 0");
    let old_block_0 = crate::store::read_disk(&mut base.clone(), 0).unwrap();
    let mut judge = |cut: usize, crashed: MemoryDisk| {
        // Block 0 stays unreadable until a write of it landed.
        let mut disk = UnreadableUntilRewritten::new(crashed.clone(), 0);
        disk.rewritten = crate::store::read_disk(&mut crashed.clone(), 0).unwrap() != old_block_0;
        match FileSystem::mount(disk) {
            Err(FsError::NotFormatted) => {}
            Ok(mut fs) => {
                let tree = snapshot(&mut fs).unwrap();
                assert!(
                    tree == old_tree || tree == new_tree,
                    "cut {cut}: neither tree"
                );
            }
            Err(error) => panic!("cut {cut}: {error}"),
        }
    };
    let log = &recording.disk.log;
    for_each_crash(&base, log, &mut Rng::new(7), true, &mut judge);
    for_each_sector_cut(&base, log, &mut judge);
}

/// Block 0 unreadable (a crash at a checkpoint tore its sector, say) while the journal
/// holds its image is read from the journal, as a torn superblock is: mount, `fsck`,
/// the read-only mount and repair (of the disk damaged elsewhere too) work, and mount
/// and repair write it back; the read-only mount and `fsck` write nothing. Every one of
/// them failed with the disk's error and nothing wrote block 0 back. With no image of
/// block 0 in the journal they still fail with the disk's error, writing nothing.
#[test]
fn an_unreadable_block_0_is_read_from_the_journal_and_written_back() {
    let (expected, journaled) = {
        let mut fs = super::ops::fresh(256);
        fs.mkdir("/a").unwrap();
        (snapshot(&mut fs).unwrap(), fs.into_disk())
    };
    let unreadable = || UnreadableUntilRewritten::new(journaled.clone(), 0);
    let mut disk = unreadable();
    assert!(FileSystem::fsck(&mut disk).is_ok());
    let (mut fs, found) = FileSystem::mount_read_only(disk).unwrap();
    assert_eq!(found, None);
    assert!(snapshot(&mut fs).unwrap() == expected);
    assert!(!fs.into_disk().rewritten, "a read-only mount wrote block 0");
    let mut fs = FileSystem::mount(unreadable()).unwrap();
    assert!(snapshot(&mut fs).unwrap() == expected);
    let disk = fs.into_disk();
    assert!(disk.rewritten, "mount did not write block 0 back");
    let (tree, _) = recover(disk.disk, "after mount");
    assert!(tree == expected);
    let (mut fs, report) = FileSystem::repair(unreadable()).unwrap();
    assert!(report.fixes.is_empty(), "{:?}", report.fixes);
    assert!(snapshot(&mut fs).unwrap() == expected);
    assert!(
        fs.into_disk().rewritten,
        "repair did not write block 0 back"
    );
    // Damaged elsewhere too (a directory not in the journal, which holds block 0's
    // image: the root grew a block): repair rebuilds, block 0 from the journal's image.
    let mut fs = FileSystem::mount(super::corrupt::sample_on(256)).unwrap();
    fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
    for index in 0..10 {
        fs.mkdir(&alloc::format!("/{index}{}", "n".repeat(250)))
            .unwrap();
    }
    fs.commit().unwrap();
    let mut damaged = fs.into_disk();
    super::repair::damage_directory_a(&mut damaged);
    let (mut fs, _) = FileSystem::repair(damaged.clone()).unwrap();
    let expected = snapshot(&mut fs).unwrap();
    let (mut fs, report) = FileSystem::repair(UnreadableUntilRewritten::new(damaged, 0)).unwrap();
    assert!(!report.fixes.is_empty());
    assert!(snapshot(&mut fs).unwrap() == expected);
    let disk = fs.into_disk();
    assert!(disk.rewritten, "repair did not write block 0 back");
    let (tree, _) = recover(disk.disk, "after repair");
    assert!(tree == expected);
    // No image of block 0 in the journal: nothing to read the root from.
    let mut synced = FileSystem::mount(journaled).unwrap();
    synced.sync().unwrap();
    let unreadable = || UnreadableUntilRewritten::new(synced.store.disk.clone(), 0);
    let error = FsError::Disk(alloc::string::String::from("reading block 0: unreadable"));
    assert_eq!(
        FileSystem::fsck(&mut unreadable()).err(),
        Some(error.clone())
    );
    assert_eq!(FileSystem::mount(unreadable()).err(), Some(error.clone()));
    let mut disk = unreadable();
    assert_eq!(FileSystem::repair(&mut disk).err(), Some(error));
    assert!(!disk.rewritten, "a failed repair wrote block 0");
}

/// A checkpoint's last write is the journal header's, once every home write is
/// durable. On a disk of 512-byte sectors a crash can tear it; the header lies whole in
/// its first sector (format version 2), so a torn write leaves the old header (the
/// journal replayed again over blocks already home) or the new one (an empty journal).
/// Its CRC was at the block's end, and a torn header was refused as damaged (journal
/// header checksum mismatch), though nothing was lost.
#[test]
fn a_journal_header_torn_at_a_checkpoint_leaves_the_old_or_the_new_one() {
    // Mount replays the journal: the checkpoint, ending with the header.
    let (expected, journaled, log) = checkpoint_after_mkdir();
    let at = (log.iter())
        .rposition(|event| matches!(event, Event::Write(1, _)))
        .expect("the checkpoint writes the journal header");
    assert!(
        matches!(log[at + 1..], [Event::Flush]),
        "the header is the checkpoint's last write"
    );
    let Event::Write(_, new) = &log[at] else {
        unreachable!("found as a write")
    };
    let before = with_writes(&journaled, &log[..at]);
    let old = crate::store::read_disk(&mut before.clone(), 1).unwrap();
    for written in [0x01, 0x0f, 0x7f, 0x80, 0xf0, 0xfe] {
        let context = alloc::format!("the header's sectors {written:#010b} written");
        let mut crashed = before.clone();
        crashed.write(1, &torn(&old[..], new, written)).unwrap();
        let checked =
            FileSystem::fsck(&mut crashed.clone()).unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(
            checked.journal_transactions > 0,
            written & 1 == 0,
            "{context}: the old header replays the journal, the new one does not"
        );
        let (tree, _) = recover(crashed, &context);
        assert!(tree == expected, "{context}: another tree");
    }
}

/// Damaged disks for [`a_crash_during_a_repair_leaves_the_damaged_file_system_or_the_repaired_one`]:
/// what each holds wrong.
fn damaged_disks() -> Vec<(&'static str, MemoryDisk)> {
    use super::corrupt::{edit_block, edit_entry, first_block, sample_on};
    // Small disks: each crash image is a copy of one.
    let sample = || sample_on(256);
    let layout = crate::format::Layout::for_disk(sample().blocks()).unwrap();
    let sample_with_journaled = |path: &str, data: &[u8]| {
        let mut fs = FileSystem::mount(sample()).unwrap();
        fs.create(path).unwrap();
        fs.write(path, 0, data).unwrap();
        fs.into_disk()
    };
    let mut journaled = sample_with_journaled("/journaled", &[5; 9000]);
    super::repair::damage_directory_a(&mut journaled);
    // /g takes 60 blocks of /big: the copies outgrow the 64-block journal, so the
    // rebuild writes in place before its end.
    let mut fs = FileSystem::mount(sample()).unwrap();
    fs.create("/big").unwrap();
    let big: Vec<u8> = (0..64 * BLOCK_SIZE)
        .map(|i| (i / BLOCK_SIZE) as u8)
        .collect();
    fs.write("/big", 0, &big).unwrap();
    fs.sync().unwrap();
    let mut shared = fs.into_disk();
    let root_block = first_block(&shared, &[]);
    let big_block = first_block(&shared, &["big"]);
    edit_entry(&mut shared, root_block, "g", |inode| {
        inode.inline[0].physical = big_block + 2;
        inode.inline[0].count = 60;
        inode.size = 60 * BLOCK_SIZE as u64;
    });
    let mut bitmap = sample();
    let g_block = first_block(&bitmap, &["g"]);
    edit_block(
        &mut bitmap,
        layout.bitmap_start,
        crate::format::BITMAP_MAGIC,
        |block| {
            let (_, byte, bit) = crate::format::bitmap_position(&layout, g_block);
            crate::format::set_bit(block, byte, bit, false);
        },
    );
    // A transaction whose CRC-32C holds: one naming a journal block, and one whose
    // image of block 0 is a damaged superblock (its root a file).
    let journal_with = |staged: alloc::collections::BTreeMap<u64, crate::format::Block>| {
        let mut disk = sample_with_journaled("/journaled", b"dropped");
        let header = crate::store::read_disk(&mut disk, layout.journal_start).unwrap();
        let sequence = crate::journal::decode_header(&header, layout.journal_start).unwrap();
        crate::journal::write_transaction(&mut disk, layout.journal_start + 1, sequence, &staged)
            .unwrap();
        disk
    };
    let journal = journal_with([(layout.journal_start + 8, crate::format::zeroed())].into());
    let mut superblock = crate::store::read_disk(&mut sample(), 0).unwrap();
    superblock[128] = 1;
    crate::format::seal(&mut superblock, crate::format::SUPERBLOCK_MAGIC, 0);
    let journaled_superblock = journal_with([(0, superblock)].into());
    vec![
        (
            "a damaged directory under operations in the journal",
            journaled,
        ),
        ("60 blocks of a file another file owns", shared),
        ("a wrong bitmap", bitmap),
        ("a damaged journal", journal),
        ("a damaged superblock in the journal", journaled_superblock),
    ]
}

/// A crash at any point of a repair (any write since the last flush lost, or the
/// write at the cut torn at any sector boundary) leaves the damaged file system, which
/// mount refuses as corrupt and repair then repairs to the same tree, or the repaired
/// one: never a disk that mounts with another tree, nor one repair cannot repair. The
/// rebuild writes only blocks the damaged tree does not use, then commits the new
/// superblock through the journal. It formatted the disk and built the tree through
/// the ordinary operations, so a crash could leave a disk refused as `NotFormatted`,
/// which repair refuses too, or an empty or partly built tree that mounted, the damaged
/// one's files lost.
#[test]
fn a_crash_during_a_repair_leaves_the_damaged_file_system_or_the_repaired_one() {
    let (mut refused, mut repaired) = (0, 0);
    let mut most_bitmap_writes = 0;
    for (damage, disk) in damaged_disks() {
        let bitmap = crate::format::Layout::for_disk(disk.blocks())
            .unwrap()
            .bitmap_start;
        let (mut fs, _) = FileSystem::repair(disk.clone()).unwrap();
        let expected = snapshot(&mut fs).unwrap();
        let mut recording = Recorder::new(disk.clone());
        drop(FileSystem::repair(&mut recording).unwrap());
        let mut judge = |cut: usize, crashed: MemoryDisk| {
            let context = alloc::format!("{damage}, cut {cut}");
            match FileSystem::mount(crashed.clone()) {
                Ok(mut fs) => {
                    let tree = snapshot(&mut fs).unwrap();
                    assert!(tree == expected, "{context}: mounted another tree");
                    repaired += 1;
                }
                Err(FsError::Corrupt { .. }) => {
                    let (mut fs, _) = FileSystem::repair(crashed)
                        .unwrap_or_else(|e| panic!("{context}: repair failed: {e}"));
                    let tree = snapshot(&mut fs).unwrap();
                    assert!(tree == expected, "{context}: repaired to another tree");
                    refused += 1;
                }
                Err(error) => panic!("{context}: {error}"),
            }
        };
        for_each_crash(&disk, &recording.log, &mut Rng::new(11), true, &mut judge);
        for_each_sector_cut(&disk, &recording.log, &mut judge);
        let bitmap_writes = (recording.log.iter())
            .filter(|event| matches!(event, Event::Write(block, _) if *block == bitmap))
            .count();
        most_bitmap_writes = most_bitmap_writes.max(bitmap_writes);
    }
    assert!(
        refused > 0 && repaired > 0,
        "{refused} refused, {repaired} repaired"
    );
    // One rebuild outgrew the journal and wrote in place before its last commit.
    assert!(
        most_bitmap_writes >= 2,
        "the bitmap written {most_bitmap_writes} times"
    );
}

/// An overflow extent block is written when it is allocated, whatever the block held:
/// a crash can tear an earlier write of the same image (a commit's fresh blocks go
/// home in place before it), leaving the block free with the new image's bytes but
/// not its CRC. The same operation done again after recovery allocated that block
/// again, found it equal but for the CRC (which a staged image gets at commit) and did
/// not write it: its file then pointed at a block whose CRC fails (overflow extent
/// block checksum mismatch).
#[test]
fn an_overflow_block_allocated_over_a_torn_image_of_itself_is_written() {
    let mut fs = super::ops::fresh(256);
    fs.create("/frag").unwrap();
    for index in 0..4 {
        fs.write("/frag", index * 2 * BLOCK_SIZE as u64, b"piece")
            .unwrap();
    }
    fs.sync().unwrap();
    let base = fs.into_disk();
    let (offset, data) = (100 * BLOCK_SIZE as u64, vec![7; 20 * BLOCK_SIZE]);
    let mut recording = FileSystem::mount(Recorder::new(base.clone())).unwrap();
    recording.write("/frag", offset, &data).unwrap();
    let overflow = recording.lookup(&["frag"]).unwrap().inode.overflow;
    assert_ne!(overflow, 0, "the fifth extent goes to an overflow block");
    let log = recording.into_disk().log;
    let at = (log.iter())
        .position(|event| matches!(event, Event::Write(block, _) if *block == overflow))
        .expect("the overflow block is fresh: written home before the commit");
    let Event::Write(_, image) = &log[at] else {
        unreachable!("found as a write")
    };
    // Its first seven sectors written: all but the CRC.
    let mut crashed = with_writes(&base, &log[..at]);
    let old = crate::store::read_disk(&mut crashed, overflow).unwrap();
    crashed
        .write(overflow, &torn(&old[..], image, 0x7f))
        .unwrap();
    let mut again = FileSystem::mount(crashed).unwrap();
    again.write("/frag", offset, &data).unwrap();
    again.check().unwrap();
    let mut disk = again.into_disk();
    FileSystem::fsck(&mut disk).unwrap();
}
