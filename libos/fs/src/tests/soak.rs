//! Soak: files created, written, truncated, renamed and deleted thousands of times on one
//! disk give back every block they took (the free count, fsck's and the mounted disk's
//! alike), whatever the commit policy.

use alloc::format;
use alloc::vec;

use super::Rng;
use crate::fs::FileSystem;
use crate::{CommitPolicy, MemoryDisk};

/// Runs `cycles` rounds of file operations on a fresh disk under `policy` (a few files,
/// each created, written at random offsets and lengths, truncated, maybe renamed, and
/// deleted); every block comes back once they are gone, on the mounted disk too.
fn soak(cycles: usize, policy: CommitPolicy) {
    let mut fs = FileSystem::format(MemoryDisk::new(4096)).unwrap();
    fs.set_commit_policy(policy).unwrap();
    fs.mkdir("/d").unwrap();
    fs.sync().unwrap();
    let before = fs.statfs().free_blocks;
    let checked = fs.check().unwrap();
    assert_eq!(checked.free_blocks, before);
    let mut random = Rng::new(0x50a_c0de);
    let data = vec![0x5au8; 24 << 10];
    for cycle in 0..cycles {
        let names = [format!("/d/a{}", cycle % 7), format!("/b{}", cycle % 5)];
        for name in &names {
            fs.create(name).unwrap();
            let offset = random.below(16 << 10);
            let len = random.below(data.len() as u64) as usize;
            fs.write(name, offset, &data[..len]).unwrap();
            fs.truncate(name, random.below(offset + len as u64 + 1))
                .unwrap();
            fs.write(
                name,
                random.below(4 << 10),
                &data[..random.below(4 << 10) as usize],
            )
            .unwrap();
        }
        if random.below(2) == 0 {
            fs.rename(&names[0], "/d/renamed").unwrap();
            fs.unlink("/d/renamed").unwrap();
        } else {
            fs.unlink(&names[0]).unwrap();
        }
        fs.unlink(&names[1]).unwrap();
        if cycle % 64 == 63 {
            fs.commit().unwrap();
        }
    }
    fs.sync().unwrap();
    assert_eq!(
        fs.statfs().free_blocks,
        before,
        "blocks leaked in {cycles} cycles"
    );
    assert_eq!(fs.check().unwrap(), checked, "fsck's counts after the soak");
    let mut fs = FileSystem::mount(fs.into_disk()).unwrap();
    assert_eq!(
        fs.statfs().free_blocks,
        before,
        "the mounted disk's free blocks"
    );
    assert_eq!(
        fs.check().unwrap(),
        checked,
        "fsck's counts on the mounted disk"
    );
    assert!(fs.list("/d").unwrap().is_empty());
}

#[test]
fn ten_thousand_file_lives_give_back_every_block() {
    soak(10_000, CommitPolicy::EachOperation);
}

#[test]
fn ten_thousand_file_lives_in_batched_commits_give_back_every_block() {
    soak(10_000, CommitPolicy::OnCommit);
}
