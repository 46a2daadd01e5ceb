//! Host tests of BMFS on in-memory disks.

use super::*;

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};

fn disk(mib: usize) -> Vec<u8> {
    vec![0u8; mib << 20]
}

#[test]
fn files_round_trip_and_survive_reopening() {
    let mut volume = Volume::format(disk(16)).unwrap();
    assert_eq!(volume.blocks(), 8);
    volume.create("hello.app", 1).unwrap();
    volume.write("hello.app", b"\x90\xc3").unwrap();
    volume.create("data.bin", 3).unwrap();
    let big: Vec<u8> = (0..5 << 20).map(|i| (i % 251) as u8).collect();
    volume.write("data.bin", &big).unwrap();
    let mut volume = Volume::open(volume.into_disk()).unwrap();
    assert_eq!(volume.read("hello.app").unwrap(), b"\x90\xc3");
    assert_eq!(volume.read("data.bin").unwrap(), big);
    let mut part = [0u8; 4];
    assert_eq!(
        volume
            .read_at("data.bin", (5 << 20) - 2, &mut part)
            .unwrap(),
        2,
        "clipped at the size"
    );
    assert_eq!(
        volume.file_blocks(),
        6,
        "block 0 and the last are BMFS's own"
    );
    assert_eq!(volume.free_blocks(), 6 - 4);
    let names: Vec<&str> = volume.files().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["hello.app", "data.bin"]);
}

#[test]
fn space_is_found_and_freed() {
    let mut volume = Volume::format(disk(14)).unwrap(); // blocks 1..=5 for files
    volume.create("a", 2).unwrap();
    volume.create("b", 2).unwrap();
    assert_eq!(
        volume.create("c", 2).unwrap_err(),
        BmfsError::NoSpace { blocks: 2 }
    );
    volume.create("c", 1).unwrap();
    volume.delete("a").unwrap();
    let c = volume.create("d", 2).unwrap();
    assert_eq!(c.start, 1, "the freed run is reused");
    assert_eq!(
        volume.create("d", 1).unwrap_err(),
        BmfsError::Exists("d".into())
    );
    assert_eq!(
        volume.delete("zz").unwrap_err(),
        BmfsError::NotFound("zz".into())
    );
    let reopened = Volume::open(volume.into_disk()).unwrap();
    assert_eq!(reopened.files().count(), 3);
}

#[test]
fn block_counts_past_the_disk_are_no_space() {
    // `cargo xtask disk ... --blocks 18446744073709551615` asks for these.
    let mut volume = Volume::format(disk(12)).unwrap();
    for blocks in [u64::MAX, u64::MAX - 1] {
        assert_eq!(
            volume.create("huge", blocks).unwrap_err(),
            BmfsError::NoSpace { blocks }
        );
    }
    volume.create("a", 1).unwrap();
    assert_eq!(
        volume.create("huge", u64::MAX).unwrap_err(),
        BmfsError::NoSpace { blocks: u64::MAX }
    );
    let reopened = Volume::open(volume.into_disk()).unwrap();
    let names: Vec<&str> = reopened.files().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(reopened.free_blocks(), 3);
}

#[test]
fn bad_requests_say_why_and_change_nothing() {
    let mut volume = Volume::format(disk(8)).unwrap();
    assert!(matches!(
        volume.create("", 1),
        Err(BmfsError::InvalidName(_))
    ));
    assert!(matches!(
        volume.create(&"x".repeat(32), 1),
        Err(BmfsError::InvalidName(_))
    ));
    assert!(matches!(
        volume.create("tab\there", 1),
        Err(BmfsError::InvalidName(_))
    ));
    volume.create("small", 1).unwrap();
    let too_big = vec![0u8; (BLOCK + 1) as usize];
    assert_eq!(
        volume.write("small", &too_big).unwrap_err(),
        BmfsError::TooLarge {
            size: BLOCK + 1,
            capacity: BLOCK
        }
    );
    assert_eq!(volume.find("small").unwrap().size, 0);
    assert_eq!(
        Volume::format(disk(5)).err(),
        Some(BmfsError::TooSmall(5 << 20))
    );
    assert_eq!(Volume::open(disk(8)).err(), Some(BmfsError::NotBmfs));
}

/// A small file that is no BMFS (the README, 16,840 bytes) is "not a BMFS disk", not a
/// disk "too small for BMFS": the size was checked before the marker. A BMFS cut short
/// keeps its marker and is too small.
#[test]
fn a_small_file_without_the_marker_is_not_bmfs() {
    for bytes in [0, 1000, 16_840] {
        let text = vec![b'#'; bytes];
        assert_eq!(
            Volume::open(text).err(),
            Some(BmfsError::NotBmfs),
            "{bytes}"
        );
    }
    let mut cut = Volume::format(disk(6)).unwrap().into_disk();
    cut.truncate(3 << 20);
    assert_eq!(Volume::open(cut).err(), Some(BmfsError::TooSmall(3 << 20)));
}

#[test]
fn the_last_block_is_the_file_systems_own() {
    // BMFS keeps the first and the last block (BareMetal's copy of block 0): on the
    // smallest disk, three blocks, one is left for files.
    let mut volume = Volume::format(disk(6)).unwrap();
    assert_eq!((volume.file_blocks(), volume.free_blocks()), (1, 1));
    assert_eq!(
        volume.create("two", 2).unwrap_err(),
        BmfsError::NoSpace { blocks: 2 }
    );
    assert_eq!(volume.create("one", 1).unwrap().start, 1);
    assert_eq!(volume.free_blocks(), 0);
    assert_eq!(
        volume.create("more", 1).unwrap_err(),
        BmfsError::NoSpace { blocks: 1 }
    );
    // A directory naming the last block (another tool's, or a damaged one) is refused.
    let mut image = volume.into_disk();
    let last = Entry {
        name: "last".into(),
        start: 2,
        reserved: 1,
        size: 0,
    };
    let at = DIRECTORY_AT as usize + RECORD;
    image[at..at + RECORD].copy_from_slice(&encode(&last));
    let refused = Volume::open(image).err();
    assert_eq!(refused, Some(BmfsError::OutsideDisk("last".into())));
    assert!(format!("{}", refused.unwrap()).contains("the last block"));
}

#[test]
fn the_directory_holds_64_files() {
    let mut volume = Volume::format(disk(2 * 66)).unwrap();
    for i in 0..RECORDS {
        volume.create(&alloc::format!("f{i}"), 1).unwrap();
    }
    assert_eq!(
        volume.create("one-more", 1).unwrap_err(),
        BmfsError::DirectoryFull
    );
}

/// An image with a hand-written directory record.
fn image_with(records: &[(&str, u64, u64, u64)]) -> Vec<u8> {
    let mut image = Volume::format(disk(16)).unwrap().into_disk();
    for (i, (name, start, reserved, size)) in records.iter().enumerate() {
        let entry = Entry {
            name: (*name).into(),
            start: *start,
            reserved: *reserved,
            size: *size,
        };
        let at = DIRECTORY_AT as usize + i * RECORD;
        image[at..at + RECORD].copy_from_slice(&encode(&entry));
    }
    image
}

#[test]
fn corrupt_images_are_refused_with_the_reason() {
    let open = |records: &[(&str, u64, u64, u64)]| Volume::open(image_with(records)).err();
    assert_eq!(
        open(&[("a", 1, 2, 10), ("b", 2, 1, 10)]),
        Some(BmfsError::Overlap("a".into(), "b".into()))
    );
    assert_eq!(
        open(&[("a", 7, 2, 10)]),
        Some(BmfsError::OutsideDisk("a".into()))
    );
    assert_eq!(
        open(&[("a", 0, 1, 10)]),
        Some(BmfsError::OutsideDisk("a".into())),
        "block 0 is the file system's"
    );
    assert_eq!(
        open(&[("a", 1, u64::MAX, 10)]),
        Some(BmfsError::OutsideDisk("a".into()))
    );
    assert_eq!(
        open(&[("a", 6, 2, 10)]),
        Some(BmfsError::OutsideDisk("a".into())),
        "the last block (7) is the file system's"
    );
    assert_eq!(
        open(&[("a", 1, 1, BLOCK + 1)]),
        Some(BmfsError::SizeTooLarge("a".into()))
    );
    assert_eq!(
        open(&[("a", 1, 1, 1), ("a", 2, 1, 1)]),
        Some(BmfsError::Duplicate("a".into()))
    );
    assert_eq!(
        format!("{}", BmfsError::Duplicate("a".into())),
        "two directory records are named 'a'"
    );
    let mut image = image_with(&[("a", 1, 1, 1)]);
    image[DIRECTORY_AT as usize..DIRECTORY_AT as usize + 32].fill(b'x');
    assert_eq!(Volume::open(image).err(), Some(BmfsError::BadName(0)));
    assert!(open(&[("a", 1, 1, 1), ("b", 2, 5, 0)]).is_none());
}

/// Fuzz noise from `seed`: a library OS may depend only on the API and other library
/// OSes (the app rules), so it is a local linear congruential generator.
fn noise(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    }
}

#[test]
fn random_directories_never_panic() {
    let mut next = noise(0x005E_ED0F_B3F5);
    let base = Volume::format(disk(8)).unwrap().into_disk();
    for _ in 0..300 {
        let mut image = base.clone();
        for byte in &mut image[DIRECTORY_AT as usize..DIRECTORY_AT as usize + RECORDS * RECORD] {
            *byte = match next() % 4 {
                0 => 0,
                1 => (next() % 4) as u8,
                _ => next() as u8,
            };
        }
        if let Ok(mut volume) = Volume::open(image) {
            let names: Vec<String> = volume.files().map(|f| f.name.clone()).collect();
            for name in names {
                volume.read(&name).unwrap();
            }
        }
    }
}

/// A disk of `size` bytes that keeps only the first 4 MiB (block 0, the directory);
/// the rest reads as zeros and takes writes without keeping them.
struct Vast {
    head: Vec<u8>,
    size: u64,
}

impl Disk for Vast {
    fn size(&self) -> u64 {
        self.size
    }
    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), String> {
        buffer.fill(0);
        let start = offset.min(self.head.len() as u64) as usize;
        let end = (offset + buffer.len() as u64).min(self.head.len() as u64) as usize;
        buffer[..end - start].copy_from_slice(&self.head[start..end]);
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let start = offset.min(self.head.len() as u64) as usize;
        let end = (offset + data.len() as u64).min(self.head.len() as u64) as usize;
        self.head[start..end].copy_from_slice(&data[..end - start]);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_file_larger_than_memory_is_an_error_not_an_abort() {
    let size = 1u64 << 62;
    let vast = Vast {
        head: disk(4),
        size,
    };
    let mut volume = Volume::format(vast).unwrap().into_disk();
    // A record as a damaged or enormous disk may hold: all but block 0 and the last,
    // full.
    let entry = Entry {
        name: "huge".into(),
        start: 1,
        reserved: size / BLOCK - 2,
        size: size - 2 * BLOCK,
    };
    volume.write(DIRECTORY_AT, &encode(&entry)).unwrap();
    let mut volume = Volume::open(volume).unwrap();
    assert_eq!(
        volume.read("huge"),
        Err(BmfsError::NoMemory("huge".into(), size - 2 * BLOCK))
    );
    let mut piece = [1u8; 16];
    assert_eq!(volume.read_at("huge", size / 2, &mut piece), Ok(16));
    assert_eq!(piece, [0; 16], "read in pieces instead");
}

#[test]
fn flipped_bytes_of_a_used_directory_are_refused_or_consistent() {
    let mut next = noise(0x0B3F_5F11);
    let size = 64 << 20;
    let mut volume = Volume::format(Vast {
        head: vec![0; 8192],
        size,
    })
    .unwrap();
    for (name, blocks, bytes) in [("a", 1, 10), ("bee.app", 3, 5 << 20), ("c", 2, 0)] {
        volume.create(name, blocks).unwrap();
        volume.write(name, &vec![7; bytes]).unwrap();
    }
    volume.delete("c").unwrap();
    volume.create("d", 4).unwrap();
    let base = volume.into_disk().head;
    let (mut opened, mut refused) = (0, 0);
    for round in 0..2000 {
        let mut head = base.clone();
        for _ in 0..1 + next() % 3 {
            let at = match next() % 10 {
                0 => 1024 + next() as usize % 4,
                _ => DIRECTORY_AT as usize + next() as usize % (4 * RECORD),
            };
            match next() % 3 {
                0 => {
                    let edge = [0, 1, 2, 31, 32, u64::MAX, size / BLOCK, u64::MAX / BLOCK];
                    let value = edge[next() as usize % edge.len()];
                    let at = at / 8 * 8;
                    head[at..at + 8].copy_from_slice(&value.to_le_bytes());
                }
                _ => head[at] ^= 1 << (next() % 8),
            }
        }
        let Ok(mut volume) = Volume::open(Vast { head, size }) else {
            refused += 1;
            continue;
        };
        opened += 1;
        let files: Vec<Entry> = volume.files().cloned().collect();
        assert!(volume.free_blocks() < volume.blocks(), "round {round}");
        for file in &files {
            assert!(file.start >= 1 && file.start + file.reserved < volume.blocks());
            let mut piece = [0u8; 64];
            volume
                .read_at(&file.name, file.size / 2, &mut piece)
                .unwrap();
            volume.write(&file.name, b"fits any file").ok();
        }
        match volume.create("new", 2) {
            Ok(entry) => assert!(entry.start + 2 < volume.blocks(), "round {round}"),
            Err(error) => assert!(
                matches!(error, BmfsError::NoSpace { .. } | BmfsError::DirectoryFull),
                "round {round}: {error}"
            ),
        }
        if let Some(file) = files.first() {
            volume.delete(&file.name).unwrap();
        }
        Volume::open(volume.into_disk()).expect("what opened and changed opens again");
    }
    assert!(
        opened > 100 && refused > 100,
        "{opened} opened, {refused} refused"
    );
}

#[test]
fn a_file_of_no_blocks_shares_none() {
    // Where a file that reserved no blocks starts, another's run may start too: the
    // directory is sound in either record order, and free_run places a new file over
    // it, at the first free block.
    let open = |records: &[(&str, u64, u64, u64)]| Volume::open(image_with(records)).err();
    assert_eq!(open(&[("a", 2, 1, 10), ("z", 2, 0, 0)]), None);
    assert_eq!(open(&[("z", 2, 0, 0), ("a", 2, 1, 10)]), None);
    let mut volume = Volume::open(image_with(&[("gone", 1, 1, 0), ("z", 3, 0, 0)])).unwrap();
    volume.delete("gone").unwrap();
    assert_eq!(volume.create("new", 4).unwrap().start, 1);
    let volume = Volume::open(volume.into_disk()).expect("a volume a create left opens");
    assert_eq!(volume.files().count(), 2);
    // Every file block of the disk (1 to 6) is free: a file of no blocks at 2 takes none.
    let mut volume = Volume::open(image_with(&[("z", 2, 0, 0)])).unwrap();
    assert_eq!(volume.create("all", 6).unwrap().start, 1);
}

/// A disk in memory whose writes fail once `budget` bytes have been written: the write
/// that crosses it keeps the whole 512-byte sectors that fit (a disk writes a sector
/// whole or not at all) and fails, as does every write after it. The budget is shared,
/// so a test can change it under an open volume.
struct FailingAfter {
    disk: Vec<u8>,
    budget: Rc<Cell<u64>>,
}

impl FailingAfter {
    /// `disk`, failing writes after `budget` bytes.
    fn new(disk: Vec<u8>, budget: u64) -> Self {
        Self {
            disk,
            budget: Rc::new(Cell::new(budget)),
        }
    }
}

impl Disk for FailingAfter {
    fn size(&self) -> u64 {
        self.disk.size()
    }
    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), String> {
        self.disk.read(offset, buffer)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let (len, budget) = (data.len() as u64, self.budget.get());
        if len <= budget {
            self.budget.set(budget - len);
            return self.disk.write(offset, data);
        }
        let kept = ((offset + budget) / 512 * 512).saturating_sub(offset);
        self.disk.write(offset, &data[..kept as usize])?;
        self.budget.set(0);
        Err("write failed".into())
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// `write_in_pieces` writes what `fill` gives a buffer at a time, byte for byte as one
/// `write` would; a `fill` that fails leaves the file empty and says why.
#[test]
fn a_write_in_pieces_lands_whole_or_leaves_the_file_empty() {
    let data: Vec<u8> = (0..(3 << 20) + 5).map(|at: u32| (at % 251) as u8).collect();
    let mut volume = Volume::format(disk(16)).unwrap();
    volume.create("f", 2).unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    let mut offsets = Vec::new();
    let mut fill = |piece: &mut [u8], at: u64| {
        offsets.push((at, piece.len()));
        piece.copy_from_slice(&data[at as usize..at as usize + piece.len()]);
        Ok(())
    };
    volume
        .write_in_pieces("f", data.len() as u64, &mut buffer, &mut fill)
        .unwrap();
    assert_eq!(
        offsets,
        [
            (0, 1 << 20),
            (1 << 20, 1 << 20),
            (2 << 20, 1 << 20),
            (3 << 20, 5)
        ]
    );
    assert_eq!(volume.read("f").unwrap(), data);
    let mut failing = |_: &mut [u8], at: u64| match at {
        0 => Ok(()),
        _ => Err(String::from("the source ended")),
    };
    let err = volume
        .write_in_pieces("f", 2 << 20, &mut buffer, &mut failing)
        .unwrap_err();
    assert_eq!(err, BmfsError::Source("the source ended".into()));
    assert_eq!(volume.find("f").unwrap().size, 0);
    let err = volume
        .write_in_pieces("f", 1, &mut [], &mut failing)
        .unwrap_err();
    assert!(matches!(err, BmfsError::Source(_)), "{err}");
}

/// An empty buffer for data to write is the caller's mistake: refused before the file's
/// size is stored as 0, so the file keeps its contents.
#[test]
fn a_write_in_pieces_without_a_buffer_leaves_the_file_as_it_was() {
    let mut volume = Volume::format(disk(16)).unwrap();
    volume.create("f", 1).unwrap();
    volume.write("f", b"kept").unwrap();
    let err = volume
        .write_in_pieces("f", 1, &mut [], |_, _| Ok(()))
        .unwrap_err();
    assert_eq!(
        err,
        BmfsError::Source("no buffer to read the data into".into())
    );
    assert_eq!(volume.read("f").unwrap(), b"kept");
}

#[test]
fn a_write_cut_short_leaves_the_old_file_an_empty_one_or_the_new_one() {
    let old = vec![0xAA; 3 << 20];
    let new = vec![0x55; 3 << 20];
    let mut volume = Volume::format(disk(16)).unwrap();
    volume.create("f", 2).unwrap();
    volume.write("f", &old).unwrap();
    let image = volume.into_disk();
    for budget in [
        0,
        64,
        512,
        1 << 20,
        (3 << 20) - 512,
        3 << 20,
        (3 << 20) + 64,
    ] {
        let mut volume = Volume::open(FailingAfter::new(image.clone(), budget)).unwrap();
        assert!(volume.write("f", &new).is_err(), "budget {budget}");
        let mut volume = Volume::open(volume.into_disk().disk).unwrap();
        let read = volume.read("f").unwrap();
        assert!(
            read == old || read.is_empty() || read == new,
            "budget {budget}: {} bytes, {} of them new",
            read.len(),
            read.iter().filter(|&&b| b == 0x55).count()
        );
    }
}

#[test]
fn a_failed_change_leaves_the_directory_in_memory_as_on_disk() {
    let mut volume = Volume::format(FailingAfter::new(disk(16), u64::MAX)).unwrap();
    volume.create("a", 2).unwrap();
    volume.write("a", b"kept").unwrap();
    let budget = Rc::clone(&volume.disk.budget);
    budget.set(0);
    assert!(matches!(volume.delete("a"), Err(BmfsError::Disk(_))));
    assert_eq!(
        volume.find("a").unwrap().size,
        4,
        "still there, blocks taken"
    );
    budget.set(u64::MAX);
    let b = volume.create("b", 2).unwrap();
    assert_eq!(b.start, 3, "a's blocks are not free");
    // A create whose record write and undo both fail (the end marker's move, first,
    // fits the budget): the disk may hold its record.
    budget.set(RECORD as u64);
    assert!(matches!(
        volume.create("c", 1),
        Err(BmfsError::NeedsReopen(_))
    ));
    assert!(volume.find("c").is_err(), "not created");
    let mut volume = Volume::open(volume.into_disk().disk).expect("no two records overlap");
    assert_eq!(volume.read("a").unwrap(), b"kept");
    assert_eq!(volume.files().count(), 2);
}

/// What a [`Scripted`] disk does with one write.
#[derive(Clone, Copy)]
enum WriteOutcome {
    /// The data reaches the disk and the write succeeds.
    Lands,
    /// The data reaches the disk but the write reports failure (a device that timed
    /// out after writing, a flush that failed after the data got there).
    LandsButFails,
    /// Nothing reaches the disk and the write fails.
    Fails,
}

/// A disk in memory whose next writes do what `script` says, in turn; once it is
/// empty, writes succeed. The script is shared, so a test can set it under an open
/// volume.
struct Scripted {
    disk: Vec<u8>,
    script: Rc<RefCell<VecDeque<WriteOutcome>>>,
}

impl Disk for Scripted {
    fn size(&self) -> u64 {
        self.disk.size()
    }
    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), String> {
        self.disk.read(offset, buffer)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let outcome = self.script.borrow_mut().pop_front();
        match outcome.unwrap_or(WriteOutcome::Lands) {
            WriteOutcome::Lands => self.disk.write(offset, data),
            WriteOutcome::LandsButFails => {
                self.disk.write(offset, data)?;
                Err("write failed after its data landed".into())
            }
            WriteOutcome::Fails => Err("write failed".into()),
        }
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// A volume on a 16 MiB [`Scripted`] disk holding "a" (block 1) and "b" (block 2), and
/// its script.
fn scripted_volume() -> (Volume<Scripted>, Rc<RefCell<VecDeque<WriteOutcome>>>) {
    let script = Rc::new(RefCell::new(VecDeque::new()));
    let disk = Scripted {
        disk: disk(16),
        script: Rc::clone(&script),
    };
    let mut volume = Volume::format(disk).unwrap();
    volume.create("a", 1).unwrap();
    volume.create("b", 1).unwrap();
    (volume, script)
}

/// The names of the files on `volume`'s disk as an open finds them now.
fn names_on_disk(volume: &Volume<Scripted>) -> Vec<String> {
    let reopened = Volume::open(volume.disk.disk.clone()).expect("the disk opens");
    reopened.files().map(|f| f.name.clone()).collect()
}

#[test]
fn a_failed_create_leaves_no_record_on_disk() {
    use WriteOutcome::*;
    let (mut volume, script) = scripted_volume();
    // At the end marker's record (the marker moves first), then in a deleted record:
    // each time the record reaches the disk though its write fails.
    script.borrow_mut().extend([Lands, LandsButFails]);
    assert!(matches!(volume.create("c", 2), Err(BmfsError::Disk(_))));
    assert!(volume.find("c").is_err());
    assert_eq!(names_on_disk(&volume), ["a", "b"], "no file c on the disk");
    volume.delete("a").unwrap();
    script.borrow_mut().push_back(LandsButFails);
    assert!(matches!(volume.create("d", 3), Err(BmfsError::Disk(_))));
    assert_eq!(names_on_disk(&volume), ["b"], "no file d on the disk");
    // The volume goes on, and what it places overlaps nothing the disk holds.
    assert_eq!(volume.create("e", 4).unwrap().start, 3);
    volume.create("f", 1).unwrap();
    let reopened = Volume::open(volume.into_disk().disk).expect("no two records overlap");
    let names: Vec<&str> = reopened.files().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["e", "b", "f"]);
}

#[test]
fn a_create_whose_undo_fails_too_refuses_changes_until_reopened() {
    use WriteOutcome::*;
    let (mut volume, script) = scripted_volume();
    volume.write("b", b"bee").unwrap();
    // "c" (blocks 3 and 4) reaches the disk; writing its record back fails.
    script.borrow_mut().extend([Lands, LandsButFails, Fails]);
    let error = volume.create("c", 2).unwrap_err();
    assert!(matches!(error, BmfsError::NeedsReopen(_)), "{error}");
    assert!(volume.find("c").is_err());
    // Deleting "a" and placing a file of 3 blocks would put it over "c" (blocks 3..6).
    for refused in [
        volume.delete("a").err(),
        volume.create("d", 3).err(),
        volume.write("b", b"new").err(),
    ] {
        assert_eq!(refused, Some(error.clone()));
    }
    assert_eq!(volume.read("b").unwrap(), b"bee", "reads go on");
    let reopened = Volume::open(volume.into_disk().disk).expect("the disk is consistent");
    let names: Vec<&str> = reopened.files().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "the create reached the disk");
}

#[test]
fn emptying_a_file_writes_its_directory_record_once() {
    let mut volume = Volume::format(FailingAfter::new(disk(16), u64::MAX)).unwrap();
    volume.create("a", 2).unwrap();
    volume.write("a", b"kept").unwrap();
    // Room for one record's write, no more.
    let budget = Rc::clone(&volume.disk.budget);
    budget.set(RECORD as u64);
    volume.write("a", b"").unwrap();
    assert_eq!(volume.find("a").unwrap().size, 0);
    let mut volume = Volume::open(volume.into_disk().disk).unwrap();
    assert_eq!(volume.read("a").unwrap(), b"");
}

#[test]
fn the_directory_ends_at_the_first_name_starting_with_byte_0() {
    // What another BMFS tool may leave after the end marker: a record overlapping "a"
    // and one with a corrupt name. Neither is part of the directory.
    let mut image = image_with(&[("a", 1, 1, 1), ("", 0, 0, 0), ("ghost", 1, 2, 5)]);
    let at = DIRECTORY_AT as usize + 3 * RECORD;
    image[at..at + RECORD].fill(b'x');
    let mut volume = Volume::open(image).expect("records after the end marker are unused");
    let names: Vec<&str> = volume.files().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(volume.free_blocks(), 5);
    // "b" fills the end marker's record: the marker moves to the next one, over "ghost".
    volume.create("b", 1).unwrap();
    let image = volume.into_disk();
    let at = DIRECTORY_AT as usize + 2 * RECORD;
    assert_eq!(image[at], 0, "the end marker follows the new record");
    let volume = Volume::open(image).expect("ghost stays outside the directory");
    let names: Vec<&str> = volume.files().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

/// A disk in memory that records the largest read and write it was asked for.
struct Measured {
    disk: Vec<u8>,
    largest: usize,
}

impl Disk for Measured {
    fn size(&self) -> u64 {
        self.disk.size()
    }
    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), String> {
        self.largest = self.largest.max(buffer.len());
        self.disk.read(offset, buffer)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        self.largest = self.largest.max(data.len());
        self.disk.write(offset, data)
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_copy_moves_a_piece_at_a_time_into_a_new_file_of_as_many_blocks() {
    let data: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 253) as u8).collect();
    let mut volume = Volume::format(disk(16)).unwrap();
    volume.create("big.bin", 2).unwrap();
    volume.write("big.bin", &data).unwrap();
    volume.create("empty", 1).unwrap();
    let mut volume = Volume::open(Measured {
        disk: volume.into_disk(),
        largest: 0,
    })
    .unwrap();
    assert_eq!(volume.copy("big.bin", "copy.bin"), Ok(data.len() as u64));
    assert!(volume.disk.largest <= COPY_PIECE, "{}", volume.disk.largest);
    assert_eq!(volume.copy("empty", "empty2"), Ok(0));
    assert_eq!(
        volume.copy("big.bin", "empty"),
        Err(BmfsError::Exists("empty".into()))
    );
    assert_eq!(
        volume.copy("nope", "x"),
        Err(BmfsError::NotFound("nope".into()))
    );
    let mut volume = Volume::open(volume.into_disk().disk).unwrap();
    assert_eq!(volume.read("copy.bin").unwrap(), data);
    assert_eq!(volume.find("copy.bin").unwrap().reserved, 2);
    assert_eq!(volume.read("empty2").unwrap(), b"");
    assert!(volume.find("x").is_err());
}

#[test]
fn a_copy_that_fails_deletes_its_new_file() {
    use WriteOutcome::*;
    let (mut volume, script) = scripted_volume();
    volume.write("a", &vec![0x5A; (1 << 20) + 3]).unwrap();
    let free = volume.free_blocks();
    // The create's two record writes (the end marker moves first) land; the data's
    // first write fails, and the delete's record write lands.
    script.borrow_mut().extend([Lands, Lands, Fails]);
    let error = volume.copy("a", "c").unwrap_err();
    assert_eq!(
        error.to_string(),
        "copying to 'c' failed (disk: write failed); 'c' deleted"
    );
    assert_eq!(volume.free_blocks(), free, "c's block is free again");
    assert_eq!(names_on_disk(&volume), ["a", "b"], "no file c on the disk");
    // The delete fails too: said, and the file left, empty, for `rm`.
    script.borrow_mut().extend([Lands, Lands, Fails, Fails]);
    let error = volume.copy("a", "d").unwrap_err();
    assert!(
        matches!(&error, BmfsError::CopyFailed { to, left: Some(_), .. } if to == "d"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("deleting 'd' failed too"),
        "{error}"
    );
    assert_eq!(volume.read("d").unwrap(), b"");
}
