//! Requests the small-file workload of the file system benchmark makes (directories of
//! 1 KiB files: create, read back after a remount, delete), counted by a store that
//! sees each `read`, `write`, `read_run`, `write_run` and `flush` as one request; the
//! tuned settings (batched commits, the read cache, reading together) must need far
//! fewer than one request per block and operation as before, and write each new file's
//! block once (ordered writes).

use super::{CountingDisk, Counts};
use crate::fs::FileSystem;
use crate::{CommitPolicy, MemoryDisk};

/// The counts of each phase: create (then sync), mount, read back, delete (then sync).
type Phases = [(&'static str, Counts); 4];

/// Runs the workload: `directories` directories of `files` files of 1 KiB on a disk of
/// `blocks` blocks; `tuned` batches commits and keeps the read cache and reading
/// together, else each operation commits and every read goes to the disk alone.
fn workload(directories: usize, files: usize, blocks: u64, tuned: bool) -> Phases {
    let settings = |fs: &mut FileSystem<CountingDisk>| {
        if tuned {
            fs.set_commit_policy(CommitPolicy::OnCommit).unwrap();
        } else {
            fs.set_cache_blocks(0);
            fs.set_read_together(1);
        }
    };
    let path = |d: usize, f: usize| alloc::format!("/d{d:03}/f{f:04}");
    let disk = CountingDisk::new(MemoryDisk::new(blocks));
    let mut fs = FileSystem::format(disk).unwrap();
    settings(&mut fs);
    fs.store.disk.counts = Counts::default();
    let data = [7u8; 1024];
    for d in 0..directories {
        fs.mkdir(&alloc::format!("/d{d:03}")).unwrap();
    }
    for d in 0..directories {
        for f in 0..files {
            fs.create(&path(d, f)).unwrap();
            fs.write(&path(d, f), 0, &data).unwrap();
        }
    }
    fs.sync().unwrap();
    let create = fs.store.disk.counts;
    let mut disk = fs.into_disk();
    disk.counts = Counts::default();
    let mut fs = FileSystem::mount(disk).unwrap();
    let mount = fs.store.disk.counts;
    settings(&mut fs);
    // Reading starts cold, as after a reboot: the check's blocks are forgotten.
    if tuned {
        fs.set_cache_blocks(0);
        fs.set_cache_blocks(crate::DEFAULT_CACHE_BLOCKS);
    }
    fs.store.disk.counts = Counts::default();
    for d in 0..directories {
        for f in 0..files {
            assert_eq!(fs.read_all(&path(d, f)).unwrap(), data);
        }
    }
    let read = fs.store.disk.counts;
    fs.store.disk.counts = Counts::default();
    for d in 0..directories {
        for f in 0..files {
            fs.unlink(&path(d, f)).unwrap();
        }
        fs.rmdir(&alloc::format!("/d{d:03}")).unwrap();
    }
    fs.sync().unwrap();
    let delete = fs.store.disk.counts;
    fs.check().unwrap();
    [
        ("create", create),
        ("mount", mount),
        ("read", read),
        ("delete", delete),
    ]
}

#[test]
fn the_small_file_workload_needs_far_fewer_requests() {
    let before = workload(10, 100, 16_384, false);
    let after = workload(10, 100, 16_384, true);
    for ((phase, before), (_, after)) in before.iter().zip(&after) {
        if *phase == "mount" {
            assert!(after.requests() <= before.requests(), "{phase}");
            continue;
        }
        assert!(
            after.requests() * 10 < before.requests(),
            "{phase}: {after:?} against {before:?}"
        );
    }
    // Ordered writes: a new file's block goes home once, not through the journal too.
    let (_, create) = after[0];
    assert!(
        create.write_blocks < 1200,
        "creating 1,000 files of one block wrote {} blocks",
        create.write_blocks
    );
    let (_, read) = after[2];
    assert!(
        read.reads * 10 < 1000,
        "reading 1000 files took {} requests",
        read.reads
    );
}

/// The benchmark's size: `cargo test -p rexo-fs --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn ten_thousand_files() {
    for tuned in [false, true] {
        for (phase, counts) in workload(100, 100, 262_144, tuned) {
            std::println!(
                "{} {phase}: {} requests ({} reads of {} blocks, {} writes of {} blocks, {} flushes)",
                if tuned { "tuned" } else { "each op, no cache" },
                counts.requests(),
                counts.reads,
                counts.read_blocks,
                counts.writes,
                counts.write_blocks,
                counts.flushes
            );
        }
    }
}
