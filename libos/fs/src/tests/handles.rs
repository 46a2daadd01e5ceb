//! Open files: reads through a handle agree with reads by path after every kind of
//! change, a large file's reads go to the disk alone, and bad handles are refused.

use alloc::vec;
use alloc::vec::Vec;

use super::ops::fresh;
use super::{CountingDisk, Rng};
use crate::disk::BlockStore;
use crate::fs::FileSystem;
use crate::*;

/// Reads `length` bytes at `offset` through `file` and by path; both must agree.
fn both<D: BlockStore>(
    fs: &mut FileSystem<D>,
    file: &mut File,
    offset: u64,
    length: usize,
) -> Result<Vec<u8>, FsError> {
    let mut through = vec![0xAA; length];
    let got = fs.read_at(file, offset, &mut through);
    let mut by_path = vec![0x55; length];
    let expected = fs.read(file.path(), offset, &mut by_path);
    assert_eq!(got, expected, "{} at {offset}, {length} bytes", file.path());
    let read = got?;
    assert!(
        through[read..].iter().all(|&b| b == 0xAA),
        "wrote past the end"
    );
    through.truncate(read);
    by_path.truncate(read);
    assert!(
        through == by_path,
        "{} at {offset}: other bytes",
        file.path()
    );
    // In place: the pieces cover exactly what was read, once each, with the same bytes.
    let mut in_place = vec![0x33; read];
    let mut covered = vec![false; read];
    let mut take = |at: usize, data: &[u8]| {
        for (i, &byte) in data.iter().enumerate() {
            assert!(!covered[at + i], "byte {} handed over twice", at + i);
            covered[at + i] = true;
            in_place[at + i] = byte;
        }
    };
    let got = fs.read_at_in_place(file, offset, length, &mut take);
    assert_eq!(got, Ok(read), "{} in place at {offset}", file.path());
    assert!(covered.iter().all(|&c| c), "every byte handed over");
    assert!(in_place == through, "{} in place at {offset}", file.path());
    Ok(through)
}

#[test]
fn a_handle_reads_the_file_as_it_is_now() {
    let mut fs = fresh(4096);
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 13 % 251) as u8).collect();
    fs.replace("/big", &big).unwrap();
    fs.replace("/small", b"hello").unwrap();
    let mut handle = fs.open("/big").unwrap();
    let mut small = fs.open("//small").unwrap();
    assert_eq!(small.path(), "/small");
    assert_eq!(
        both(&mut fs, &mut handle, 4096 * 3, 4096).unwrap(),
        &big[12288..16384]
    );
    assert_eq!(
        both(&mut fs, &mut handle, 5000, 10_000).unwrap(),
        &big[5000..15000]
    );
    assert_eq!(
        both(&mut fs, &mut handle, 699_000, 4096).unwrap(),
        &big[699_000..]
    );
    assert!(both(&mut fs, &mut handle, 700_000, 10).unwrap().is_empty());
    assert_eq!(both(&mut fs, &mut small, 1, 100).unwrap(), b"ello");
    // Changed, grown with a hole, truncated, replaced, removed.
    fs.write("/big", 8192, &[1; 4096]).unwrap();
    assert_eq!(both(&mut fs, &mut handle, 8192, 4096).unwrap(), [1; 4096]);
    fs.write("/big", 900_000, &[2; 10]).unwrap();
    let tail = both(&mut fs, &mut handle, 699_000, 300_000).unwrap();
    assert_eq!((tail.len(), tail[1000], tail[201_000]), (201_010, 0, 2));
    fs.truncate("/big", 10_000).unwrap();
    assert_eq!(both(&mut fs, &mut handle, 4096, 8192).unwrap().len(), 5904);
    fs.unlink("/big").unwrap();
    assert_eq!(
        both(&mut fs, &mut handle, 0, 10),
        Err(FsError::NotFound("/big".into()))
    );
    fs.rename("/small", "/big").unwrap();
    assert_eq!(both(&mut fs, &mut handle, 0, 10).unwrap(), b"hello");
    assert_eq!(
        both(&mut fs, &mut small, 0, 10),
        Err(FsError::NotFound("/small".into()))
    );
    fs.mkdir("/small").unwrap();
    assert_eq!(
        both(&mut fs, &mut small, 0, 10),
        Err(FsError::IsADirectory("/small".into()))
    );
}

#[test]
fn handles_agree_with_reads_by_path_over_random_changes() {
    let mut rng = Rng::new(7);
    for policy in [CommitPolicy::EachOperation, CommitPolicy::OnCommit] {
        let mut fs = fresh(8192);
        fs.set_commit_policy(policy).unwrap();
        let paths = ["/a", "/b", "/c"];
        for path in paths {
            fs.create(path).unwrap();
        }
        let mut handles: Vec<File> = paths.iter().map(|p| fs.open(p).unwrap()).collect();
        for _ in 0..400 {
            let path = *rng.pick(&paths);
            let size = rng.below(600_000);
            let _ = match rng.below(10) {
                0..=3 => {
                    let length = rng.below(200_000) as usize;
                    let data = rng.bytes(length);
                    fs.write(path, size, &data)
                }
                4 => fs.truncate(path, size),
                5 => fs.unlink(path),
                6 => fs.create(path),
                7 => fs.commit(),
                _ => Ok(()),
            };
            for handle in &mut handles {
                let (offset, length) = (rng.below(700_000), rng.below(300_000));
                let _ = both(&mut fs, handle, offset, length as usize);
            }
        }
        fs.check().unwrap();
    }
}

#[test]
fn a_large_file_read_through_a_handle_goes_to_the_disk_alone() {
    let disk = CountingDisk::new(MemoryDisk::new(4096));
    let mut fs = FileSystem::format(disk).unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    fs.replace("/big", &big).unwrap();
    fs.sync().unwrap();
    fs.drop_cache();
    let mut handle = fs.open("/big").unwrap();
    // Opening read the root's directory block together with the blocks after it (the
    // file's first ones): the reads below stay past those.
    let (reads, blocks) = (fs.store.disk.counts.reads, fs.store.disk.counts.read_blocks);
    let cached = fs.store.cache.len();
    let mut buf = vec![0; 4096];
    let mut offsets = Rng::new(3);
    for _ in 0..100 {
        let at = (64 + offsets.below(424)) * 4096;
        assert_eq!(fs.read_at(&mut handle, at, &mut buf), Ok(4096));
        assert!(buf == big[at as usize..at as usize + 4096], "at {at}");
    }
    assert_eq!(
        (
            fs.store.disk.counts.reads - reads,
            fs.store.disk.counts.read_blocks - blocks
        ),
        (100, 100),
        "one request of one block per read, no metadata"
    );
    assert_eq!(fs.store.cache.len(), cached, "nothing more cached");
}

#[test]
fn a_handle_from_another_mount_is_refused() {
    let mut fs = fresh(1024);
    fs.replace("/f", b"data").unwrap();
    let mut handle = fs.open("/f").unwrap();
    let mut other = fresh(1024);
    other.replace("/f", b"other").unwrap();
    let mut buf = [0; 8];
    let refused = other.read_at(&mut handle, 0, &mut buf);
    assert_eq!(refused, Err(FsError::OtherMount("/f".into())));
    assert_eq!(
        alloc::format!("{}", refused.unwrap_err()),
        "/f: the handle was opened on another mount"
    );
    let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
    assert!(matches!(
        fs.read_at(&mut handle, 0, &mut buf),
        Err(FsError::OtherMount(_))
    ));
    assert_eq!(fs.open("/g").unwrap_err(), FsError::NotFound("/g".into()));
    assert_eq!(fs.open("/").unwrap_err(), FsError::IsADirectory("/".into()));
    assert!(matches!(fs.open("f"), Err(FsError::InvalidName(_))));
    let mut handle = fs.open("/f").unwrap();
    assert_eq!(fs.read_at(&mut handle, 0, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"data");
}
