//! Model-based property test: random operation sequences applied to the file system
//! and to the model, results and errors compared at every step, whole trees compared
//! and the file system checked every few steps and at the end.

use alloc::string::String;
use alloc::vec::Vec;

use super::model::Model;
use super::{Rng, snapshot};
use crate::disk::BlockStore;
use crate::fs::FileSystem;
use crate::{CommitPolicy, DirEntry, FileKind, FsError, MemoryDisk};

/// One random operation.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Mkdir(String),
    Create(String),
    Write(String, u64, Vec<u8>),
    Read(String, u64, usize),
    Truncate(String, u64),
    Unlink(String),
    Rmdir(String),
    Rename(String, String),
    List(String),
    Stat(String),
    Sync,
    Commit,
    Remount,
}

/// What an operation returned, comparable between the file system and the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Bytes(Vec<u8>),
    Listing(Vec<DirEntry>),
    Stat(FileKind, u64, u64),
}

/// Knobs of the operation mix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mix {
    /// The longest ordinary write.
    pub(crate) max_write: u64,
    /// Percent of writes that are large (several journal transactions).
    pub(crate) large_writes: u64,
    /// Percent of operations that sync or remount.
    pub(crate) sync_and_remount: u64,
    /// Percent of `mkdir`s turned into `create`s (fewer, fuller directories).
    pub(crate) flat: u64,
    /// Percent of operations that are `commit`s (taken from the `stat`s).
    pub(crate) commits: u64,
    /// The commit policy, set after every format and mount.
    pub(crate) policy: CommitPolicy,
}

/// Names used in paths: a few short ones and a dozen of 250 bytes, so that
/// directories spill into several blocks (and shrink back).
fn names() -> Vec<String> {
    let short = ["a", "b", "dir", "file.txt"].map(String::from);
    let long = (0..12).map(|index| alloc::format!("{}-{index:02}", "n".repeat(247)));
    short.into_iter().chain(long).collect()
}

/// What an operation would like its path to be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// An existing file.
    File,
    /// An existing directory.
    Directory,
    /// A new name in an existing directory.
    New,
}

/// A path: most often what the operation wants, else anything existing, random names
/// or now and then a bad path.
fn random_path(rng: &mut Rng, model: &Model, want: Want) -> String {
    let existing = model.paths();
    let of_kind = |kind: FileKind| -> Vec<String> {
        existing
            .iter()
            .filter(|(path, found)| *found == kind && path != "/")
            .map(|(path, _)| path.clone())
            .collect()
    };
    let roll = rng.below(100);
    if roll < 70 {
        let files = of_kind(FileKind::File);
        match want {
            Want::File if !files.is_empty() => return rng.pick(&files).clone(),
            Want::Directory if !of_kind(FileKind::Directory).is_empty() => {
                return rng.pick(&of_kind(FileKind::Directory)).clone();
            }
            _ => {
                let mut directories = of_kind(FileKind::Directory);
                directories.push(String::from("/"));
                let base = rng.pick(&directories).clone();
                return super::child(&base, rng.pick(&names()).as_str());
            }
        }
    }
    if roll < 85 {
        return rng.pick(&existing).0.clone();
    }
    if roll < 98 {
        let depth = 1 + rng.below(3);
        let names = names();
        return (0..depth)
            .map(|_| alloc::format!("/{}", rng.pick(&names)))
            .collect();
    }
    match rng.below(5) {
        0 => alloc::format!("/{}", "n".repeat(255)),
        1 => alloc::format!("/{}", "n".repeat(256)),
        2 => String::from("relative"),
        3 => String::from("/a/../b"),
        _ => String::from("/"),
    }
}

/// An offset for a write or truncate in a file of `size` bytes.
fn random_offset(rng: &mut Rng, size: u64, max: u64) -> u64 {
    match rng.below(10) {
        0..=3 => rng.below(size + 1),
        4 | 5 => size,
        6 | 7 => size + rng.below(max * 2),
        8 => rng.below(4096) * 4096,
        _ => (1 << 32) + rng.below(1 << 20),
    }
}

/// A random operation on the model's tree.
pub(crate) fn random_op(rng: &mut Rng, model: &Model, mix: Mix) -> Op {
    let roll = rng.below(100);
    let want = match roll {
        15..28 => Want::New,
        28..68 => Want::File,
        68..75 => Want::File,
        75..80 | 92..96 => Want::Directory,
        80..92 => {
            if rng.chance(50) {
                Want::File
            } else {
                Want::Directory
            }
        }
        _ => Want::New,
    };
    let path = random_path(rng, model, want);
    let size = model.stat(&path).map_or(0, |(_, size, _)| size);
    if roll >= 100 - mix.commits {
        return Op::Commit;
    }
    match roll {
        roll if roll < mix.sync_and_remount => {
            if rng.chance(50) {
                Op::Sync
            } else {
                Op::Remount
            }
        }
        roll if roll < 15 && rng.chance(mix.flat) => Op::Create(path),
        roll if roll < 15 => Op::Mkdir(path),
        roll if roll < 28 => Op::Create(path),
        roll if roll < 52 => {
            let length = if rng.chance(mix.large_writes) {
                300_000 + rng.below(100_000)
            } else {
                rng.below(mix.max_write + 1)
            };
            let offset = random_offset(rng, size, 20_000);
            Op::Write(path, offset, rng.bytes(length as usize))
        }
        roll if roll < 60 => Op::Read(
            path,
            random_offset(rng, size, 5000),
            rng.below(20_000) as usize,
        ),
        roll if roll < 68 => {
            let length = if rng.chance(5) {
                crate::MAX_FILE_SIZE + 1
            } else {
                random_offset(rng, size, 10_000)
            };
            Op::Truncate(path, length)
        }
        roll if roll < 75 => Op::Unlink(path),
        roll if roll < 80 => Op::Rmdir(path),
        roll if roll < 92 => {
            let target_want = if rng.chance(70) { Want::New } else { want };
            Op::Rename(path, random_path(rng, model, target_want))
        }
        roll if roll < 96 => Op::List(path),
        _ => Op::Stat(path),
    }
}

/// Applies `op` to the file system (a remount goes through `into_disk` and `mount`).
pub(crate) fn apply_fs<D: BlockStore>(
    fs: &mut Option<FileSystem<D>>,
    op: &Op,
) -> Result<Outcome, FsError> {
    let Some(mounted) = fs.as_mut() else {
        panic!("file system not mounted");
    };
    let done = |result: Result<(), FsError>| result.map(|()| Outcome::Done);
    match op {
        Op::Mkdir(path) => done(mounted.mkdir(path)),
        Op::Create(path) => done(mounted.create(path)),
        Op::Write(path, offset, data) => done(mounted.write(path, *offset, data)),
        Op::Read(path, offset, length) => {
            let mut buffer = alloc::vec![0xAA; *length];
            let read = mounted.read(path, *offset, &mut buffer)?;
            assert!(
                buffer[read..].iter().all(|&byte| byte == 0xAA),
                "read past what it says"
            );
            buffer.truncate(read);
            Ok(Outcome::Bytes(buffer))
        }
        Op::Truncate(path, length) => done(mounted.truncate(path, *length)),
        Op::Unlink(path) => done(mounted.unlink(path)),
        Op::Rmdir(path) => done(mounted.rmdir(path)),
        Op::Rename(from, to) => done(mounted.rename(from, to)),
        Op::List(path) => {
            let mut listing = mounted.list(path)?;
            for entry in &mut listing {
                if entry.kind == FileKind::Directory {
                    assert_eq!(entry.size % 4096, 0);
                    entry.size = 0;
                }
            }
            Ok(Outcome::Listing(listing))
        }
        Op::Stat(path) => {
            let stat = mounted.stat(path)?;
            Ok(match stat.kind {
                FileKind::Directory => Outcome::Stat(stat.kind, 0, 0),
                FileKind::File => Outcome::Stat(stat.kind, stat.size, stat.blocks),
            })
        }
        Op::Sync => done(mounted.sync()),
        Op::Commit => done(mounted.commit()),
        Op::Remount => {
            let policy = mounted.commit_policy();
            let max_pending = mounted.max_pending_blocks();
            mounted.commit()?;
            let disk = fs.take().map(FileSystem::into_disk);
            let mut remounted = FileSystem::mount(disk.unwrap())?;
            remounted.set_commit_policy(policy)?;
            remounted.set_max_pending_blocks(max_pending);
            *fs = Some(remounted);
            Ok(Outcome::Done)
        }
    }
}

/// Applies `op` to the model.
pub(crate) fn apply_model(model: &mut Model, op: &Op) -> Result<Outcome, FsError> {
    let done = |result: Result<(), FsError>| result.map(|()| Outcome::Done);
    match op {
        Op::Mkdir(path) => done(model.make(path, FileKind::Directory)),
        Op::Create(path) => done(model.make(path, FileKind::File)),
        Op::Write(path, offset, data) => done(model.write(path, *offset, data)),
        Op::Read(path, offset, length) => model.read(path, *offset, *length).map(Outcome::Bytes),
        Op::Truncate(path, length) => done(model.truncate(path, *length)),
        Op::Unlink(path) => done(model.remove(path, FileKind::File)),
        Op::Rmdir(path) => done(model.remove(path, FileKind::Directory)),
        Op::Rename(from, to) => done(model.rename(from, to)),
        Op::List(path) => model.list(path).map(Outcome::Listing),
        Op::Stat(path) => model
            .stat(path)
            .map(|(kind, size, blocks)| Outcome::Stat(kind, size, blocks)),
        Op::Sync | Op::Commit | Op::Remount => Ok(Outcome::Done),
    }
}

/// Applies `op` to both and checks they agree. A full disk is the one outcome the
/// model cannot predict: then the operation must have left no trace.
pub(crate) fn step<D: BlockStore>(
    fs: &mut Option<FileSystem<D>>,
    model: &mut Model,
    op: &Op,
    context: &str,
) {
    let before = model.clone();
    let expected = apply_model(model, op);
    let actual = apply_fs(fs, op);
    if actual == Err(FsError::NoSpace) && expected.is_ok() {
        *model = before;
        let mounted = fs.as_mut().unwrap();
        assert_eq!(
            snapshot(mounted).unwrap(),
            model.snapshot(),
            "{context}: NoSpace left a trace"
        );
        return;
    }
    assert_eq!(actual, expected, "{context}: {op:?}");
}

/// Runs `sequences` random sequences of `length` operations from `seed`.
fn run(seed: u64, sequences: u64, length: usize, disk_blocks: u64, mix: Mix) {
    for sequence in 0..sequences {
        let mut rng = Rng::new(seed + sequence);
        let mut formatted = FileSystem::format(MemoryDisk::new(disk_blocks)).unwrap();
        formatted.set_commit_policy(mix.policy).unwrap();
        if mix.policy == CommitPolicy::OnCommit {
            // A cache small enough to be evicting all the time.
            formatted.set_cache_blocks(16);
            formatted.set_read_together(8);
        }
        let mut fs = Some(formatted);
        let mut model = Model::new();
        for index in 0..length {
            let op = random_op(&mut rng, &model, mix);
            let context = alloc::format!("seed {} op {index}", seed + sequence);
            step(&mut fs, &mut model, &op, &context);
            if index % 10 == 9 || index + 1 == length {
                let mounted = fs.as_mut().unwrap();
                let report = mounted.check().unwrap_or_else(|e| panic!("{context}: {e}"));
                assert_eq!(
                    report.free_blocks,
                    mounted.statfs().free_blocks,
                    "{context}"
                );
                assert_eq!(snapshot(mounted).unwrap(), model.snapshot(), "{context}");
            }
        }
        let mut mounted = fs.take().unwrap();
        mounted.commit().unwrap();
        let mut disk = mounted.into_disk();
        FileSystem::fsck(&mut disk).unwrap();
        let mut remounted = FileSystem::mount(disk).unwrap();
        assert_eq!(snapshot(&mut remounted).unwrap(), model.snapshot());
    }
}

/// How many times longer to run, from `REXO_FS_LONG` (1 when unset).
pub(crate) fn long_factor() -> u64 {
    std::env::var("REXO_FS_LONG")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

#[test]
fn random_sequences_match_the_model() {
    let mix = Mix {
        max_write: 12_000,
        large_writes: 2,
        sync_and_remount: 4,
        flat: 0,
        commits: 0,
        policy: CommitPolicy::EachOperation,
    };
    run(1, 300 * long_factor(), 60, 1024, mix);
}

#[test]
fn random_sequences_on_a_tight_disk_match_the_model() {
    let mix = Mix {
        max_write: 40_000,
        large_writes: 0,
        sync_and_remount: 4,
        flat: 0,
        commits: 0,
        policy: CommitPolicy::EachOperation,
    };
    run(10_000, 100 * long_factor(), 80, 128, mix);
}

#[test]
fn random_sequences_in_full_directories_match_the_model() {
    let mix = Mix {
        max_write: 6000,
        large_writes: 1,
        sync_and_remount: 3,
        flat: 90,
        commits: 0,
        policy: CommitPolicy::EachOperation,
    };
    run(20_000, 60 * long_factor(), 200, 2048, mix);
}

#[test]
fn random_sequences_with_batched_commits_match_the_model() {
    let roomy = Mix {
        max_write: 12_000,
        large_writes: 2,
        sync_and_remount: 4,
        flat: 30,
        commits: 3,
        policy: CommitPolicy::OnCommit,
    };
    run(30_000, 100 * long_factor(), 80, 1024, roomy);
    let tight = Mix {
        max_write: 40_000,
        large_writes: 0,
        ..roomy
    };
    run(40_000, 60 * long_factor(), 80, 128, tight);
}
