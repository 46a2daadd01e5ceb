//! Read-only mounts: a damaged file system is read where the damage is not, every
//! change is refused with `ReadOnly`, and nothing is ever written to the disk.

use super::corrupt::{contents, put_raw, sample};
use super::snapshot;
use crate::fs::FileSystem;
use crate::{FsError, MemoryDisk};

/// Every kind of change, each refused with `ReadOnly`.
fn refuses_every_change(fs: &mut FileSystem<MemoryDisk>) {
    let results = [
        fs.mkdir("/new"),
        fs.create("/new-file"),
        fs.write("/g", 0, b"x"),
        fs.replace("/g", b"x"),
        fs.truncate("/g", 0),
        fs.unlink("/g"),
        fs.rename("/g", "/h"),
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
    let mut fs = FileSystem::mount(sample()).unwrap();
    fs.create("/journaled").unwrap();
    fs.write("/journaled", 0, b"only in the journal").unwrap();
    let mut disk = fs.into_disk();
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
fn without_a_superblock_there_is_nothing_to_mount() {
    let mut disk = sample();
    put_raw(&mut disk, 0, &crate::format::zeroed());
    assert_eq!(
        FileSystem::mount_read_only(disk).map(|_| ()).unwrap_err(),
        FsError::NotFormatted
    );
}
