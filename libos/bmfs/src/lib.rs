//! BMFS, BareMetal's file system, read and written the same way by Rexo apps (over a
//! `BlockDevice`) and by the host disk tool (over an image file): one crate for the
//! on-disk format.
//!
//! The format (BMFS version 1): the disk is cut into 2 MiB blocks. Block 0 holds the
//! file system: the marker `BMFS` at byte 1024, and at byte 4096 the directory, 64
//! records of 64 bytes: a name of up to 31 bytes (NUL-terminated in 32), the first block,
//! the blocks reserved and the size in bytes (little-endian u64s), 8 unused bytes. A
//! name starting with byte 0 ends the directory (that record and every one after it are
//! unused, whatever they hold), one starting with byte 1 is an unused (deleted) record.
//! Each file
//! is one contiguous run of reserved blocks between block 0 and the disk's last block,
//! which BMFS keeps for itself too (BareMetal's copy of block 0); it can grow in place up
//! to what it reserved.
//!
//! Opening checks everything a corrupt image could get wrong (marker, names, runs past
//! the end of the disk or inside block 0 or the last block, overlapping runs, a size
//! larger than the run)
//! and refuses the image with the first problem; nothing is written until it opens.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod block;

pub use block::{BlockDisk, on_first_volume};

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Bytes per BMFS block.
pub const BLOCK: u64 = 2 << 20;
/// Blocks on the smallest disk BMFS takes: block 0, one file block and the last block.
pub const MIN_BLOCKS: u64 = 3;
/// Where the marker is.
const MARKER_AT: u64 = 1024;
/// The marker.
const MARKER: &[u8; 4] = b"BMFS";
/// Where the directory is.
const DIRECTORY_AT: u64 = 4096;
/// Records in the directory.
pub const RECORDS: usize = 64;
/// Bytes per record.
const RECORD: usize = 64;
/// The most bytes [`Volume::copy`] moves at once: the one buffer it holds.
pub const COPY_PIECE: usize = 64 << 10;
/// The longest name (the 32nd byte is the NUL).
pub const MAX_NAME: usize = 31;

/// A disk as BMFS needs it: bytes at offsets (the Rexo adapter turns these into whole
/// sectors; the host tool reads and writes its image file).
pub trait Disk {
    /// Bytes on the disk.
    fn size(&self) -> u64;
    /// Reads `buffer.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), String>;
    /// Writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String>;
    /// Makes every write so far durable.
    fn flush(&mut self) -> Result<(), String>;
}

/// Why BMFS refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BmfsError {
    /// The disk failed (its message).
    Disk(String),
    /// No `BMFS` marker at byte 1024: not a BMFS disk.
    NotBmfs,
    /// The disk (its size in bytes) is smaller than [`MIN_BLOCKS`] blocks: block 0, one
    /// file block and the last block.
    TooSmall(u64),
    /// A record's name is not NUL-terminated printable text (record number).
    BadName(usize),
    /// A file's blocks run past the end of the disk, into block 0 or into the last block
    /// (name): files live in blocks 1 to the disk's last but one.
    OutsideDisk(String),
    /// Two files share blocks (names).
    Overlap(String, String),
    /// A file's size is larger than its reserved blocks (name).
    SizeTooLarge(String),
    /// Two records of the directory name the same file (the name).
    Duplicate(String),
    /// No file of that name.
    NotFound(String),
    /// A file of that name exists.
    Exists(String),
    /// The name is empty, too long or holds a byte other than printable ASCII.
    InvalidName(String),
    /// All 64 records are used.
    DirectoryFull,
    /// No run of free blocks that long.
    NoSpace {
        /// Blocks asked for.
        blocks: u64,
    },
    /// The file is larger than the memory this app can get to read it whole (name,
    /// size): read it in pieces with [`Volume::read_at`].
    NoMemory(String, u64),
    /// The data is larger than the blocks the file reserved.
    TooLarge {
        /// Bytes given.
        size: u64,
        /// Bytes the file can hold.
        capacity: u64,
    },
    /// A create's directory record write failed and so did writing the record back as
    /// it was, so the disk may hold the new file's record or not (why): the volume
    /// refuses every create, write and delete with this until the disk is opened again
    /// ([`Volume::open`] reads what the disk holds); reads go on.
    NeedsReopen(String),
    /// What gave a [`Volume::write_in_pieces`] its data failed midway (why): the file is
    /// left empty; or it was given no buffer for data, the file left as it was.
    Source(String),
    /// [`Volume::copy`] failed after creating its new file: the new file's name, why,
    /// and `None` when the new file was deleted, or why deleting it failed too (the file
    /// is then left, empty unless its size was stored: `rm` it).
    CopyFailed {
        /// The new file.
        to: String,
        /// Why the copy failed.
        why: String,
        /// Why deleting the new file failed, if it did.
        left: Option<String>,
    },
}

impl fmt::Display for BmfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disk(why) => write!(f, "disk: {why}"),
            Self::NotBmfs => f.write_str("not a BMFS disk (no BMFS marker at byte 1024)"),
            Self::TooSmall(size) => write!(
                f,
                "a {size}-byte disk is too small for BMFS ({} MiB at least)",
                (MIN_BLOCKS * BLOCK) >> 20
            ),
            Self::BadName(record) => write!(f, "directory record {record} has a corrupt name"),
            Self::OutsideDisk(name) => write!(
                f,
                "'{name}' lies outside the disk's file blocks (block 0 and the last block are BMFS's own)"
            ),
            Self::Overlap(a, b) => write!(f, "'{a}' and '{b}' share blocks"),
            Self::SizeTooLarge(name) => {
                write!(f, "'{name}' claims more bytes than its blocks hold")
            }
            Self::Duplicate(name) => write!(f, "two directory records are named '{name}'"),
            Self::NotFound(name) => write!(f, "no file '{name}'"),
            Self::Exists(name) => write!(f, "'{name}' exists already"),
            Self::InvalidName(name) => {
                write!(f, "'{name}': names are 1 to 31 printable ASCII bytes")
            }
            Self::NoMemory(name, size) => {
                write!(
                    f,
                    "'{name}' ({size} bytes) is larger than the memory to read it whole"
                )
            }
            Self::DirectoryFull => write!(f, "the directory is full ({RECORDS} files)"),
            Self::NoSpace { blocks } => write!(f, "no run of {blocks} free 2 MiB blocks"),
            Self::TooLarge { size, capacity } => {
                write!(
                    f,
                    "{size} bytes do not fit the file's {capacity} reserved bytes"
                )
            }
            Self::NeedsReopen(why) => write!(
                f,
                "the directory on disk may differ from the one in memory ({why}): open the disk again"
            ),
            Self::Source(why) => f.write_str(why),
            Self::CopyFailed { to, why, left } => match left {
                None => write!(f, "copying to '{to}' failed ({why}); '{to}' deleted"),
                Some(undo) => write!(
                    f,
                    "copying to '{to}' failed ({why}), and deleting '{to}' failed too ({undo}): `rm` it"
                ),
            },
        }
    }
}

/// One file of the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its first block.
    pub start: u64,
    /// Blocks it reserved (contiguous from `start`).
    pub reserved: u64,
    /// Its size in bytes.
    pub size: u64,
}

impl Entry {
    /// Bytes the file can hold.
    pub fn capacity(&self) -> u64 {
        self.reserved * BLOCK
    }
}

/// An open BMFS disk: the directory in memory (records in place, `None` for free ones).
pub struct Volume<D> {
    /// The disk.
    disk: D,
    /// The 64 records.
    records: Vec<Option<Entry>>,
    /// The record holding the end marker (a name starting with byte 0), `RECORDS` when
    /// none does: the records from it on are unused.
    end: usize,
    /// Why the directory on disk may differ from the one in memory (a create whose
    /// record write and undo both failed): no change is made until the disk is opened
    /// again.
    unsure: Option<String>,
}

/// Decodes one record before the end marker: `Ok(None)` for a deleted one.
fn decode(index: usize, raw: &[u8]) -> Result<Option<Entry>, BmfsError> {
    if raw[0] == 1 {
        return Ok(None);
    }
    let name_len = raw[..32]
        .iter()
        .position(|&b| b == 0)
        .ok_or(BmfsError::BadName(index))?;
    let name = &raw[..name_len];
    if !name.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(BmfsError::BadName(index));
    }
    let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    Ok(Some(Entry {
        name: String::from_utf8_lossy(name).into_owned(),
        start: word(32),
        reserved: word(40),
        size: word(48),
    }))
}

/// Encodes one record.
fn encode(entry: &Entry) -> [u8; RECORD] {
    let mut raw = [0u8; RECORD];
    raw[..entry.name.len()].copy_from_slice(entry.name.as_bytes());
    raw[32..40].copy_from_slice(&entry.start.to_le_bytes());
    raw[40..48].copy_from_slice(&entry.reserved.to_le_bytes());
    raw[48..56].copy_from_slice(&entry.size.to_le_bytes());
    raw
}

/// The end marker: a record whose name starts with byte 0 (all of it zeros).
const END: [u8; RECORD] = [0; RECORD];

/// A deleted record: its name starts with byte 1.
const DELETED: [u8; RECORD] = {
    let mut raw = [0u8; RECORD];
    raw[0] = 1;
    raw
};

/// Checks a name for a new file.
fn valid_name(name: &str) -> Result<(), BmfsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && name.as_bytes()[0] > 1;
    if ok {
        Ok(())
    } else {
        Err(BmfsError::InvalidName(name.into()))
    }
}

/// Checks the directory against a disk of `blocks` blocks: every run inside blocks
/// `1..blocks - 1` (block 0 and the last block are BMFS's own), no two overlapping (a
/// file of no blocks overlaps nothing), no size past its run, no two files of one name.
fn check(records: &[Option<Entry>], blocks: u64) -> Result<(), BmfsError> {
    let mut files: Vec<&Entry> = records.iter().flatten().collect();
    for file in &files {
        let end = file.start.checked_add(file.reserved);
        if file.start == 0 || end.is_none_or(|end| end > blocks - 1) {
            return Err(BmfsError::OutsideDisk(file.name.clone()));
        }
        if file.size > file.capacity() {
            return Err(BmfsError::SizeTooLarge(file.name.clone()));
        }
    }
    // A file that reserved no blocks shares none, wherever it starts.
    let mut holding: Vec<&Entry> = files.iter().copied().filter(|f| f.reserved > 0).collect();
    holding.sort_by_key(|file| file.start);
    for pair in holding.windows(2) {
        if pair[0].start + pair[0].reserved > pair[1].start {
            return Err(BmfsError::Overlap(
                pair[0].name.clone(),
                pair[1].name.clone(),
            ));
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = files.windows(2).find(|pair| pair[0].name == pair[1].name) {
        return Err(BmfsError::Duplicate(pair[0].name.clone()));
    }
    Ok(())
}

/// Writes `size` bytes to `disk` from byte `start` on, a piece of `buffer.len()` bytes at
/// a time (cut to what is left), `fill` filling each piece (given its offset) before it
/// is written; stops at the first error.
fn write_pieces<D: Disk>(
    disk: &mut D,
    start: u64,
    size: u64,
    buffer: &mut [u8],
    mut fill: impl FnMut(&mut D, &mut [u8], u64) -> Result<(), BmfsError>,
) -> Result<(), BmfsError> {
    let (mut done, most) = (0, buffer.len() as u64);
    while done < size {
        let piece = &mut buffer[..(size - done).min(most) as usize];
        fill(disk, piece, done)?;
        disk.write(start + done, piece).map_err(BmfsError::Disk)?;
        done += piece.len() as u64;
    }
    Ok(())
}

impl<D: Disk> Volume<D> {
    /// Writes an empty BMFS on `disk` (the marker and an empty directory; block 0's first
    /// 512 bytes, where a boot sector may live, are left alone) and opens it.
    pub fn format(mut disk: D) -> Result<Self, BmfsError> {
        if disk.size() < MIN_BLOCKS * BLOCK {
            return Err(BmfsError::TooSmall(disk.size()));
        }
        disk.write(MARKER_AT, MARKER).map_err(BmfsError::Disk)?;
        disk.write(DIRECTORY_AT, &[0; RECORDS * RECORD])
            .map_err(BmfsError::Disk)?;
        disk.flush().map_err(BmfsError::Disk)?;
        Self::open(disk)
    }

    /// Opens the BMFS on `disk`, checking its directory: a disk without the marker (or too
    /// small to hold it) is [`BmfsError::NotBmfs`], and one with the marker but under
    /// [`MIN_BLOCKS`] blocks (cut short) [`BmfsError::TooSmall`].
    pub fn open(mut disk: D) -> Result<Self, BmfsError> {
        let mut marker = [0u8; 4];
        if disk.size() < MARKER_AT + marker.len() as u64 {
            return Err(BmfsError::NotBmfs);
        }
        disk.read(MARKER_AT, &mut marker).map_err(BmfsError::Disk)?;
        if &marker != MARKER {
            return Err(BmfsError::NotBmfs);
        }
        if disk.size() < MIN_BLOCKS * BLOCK {
            return Err(BmfsError::TooSmall(disk.size()));
        }
        let mut raw = vec![0u8; RECORDS * RECORD];
        disk.read(DIRECTORY_AT, &mut raw).map_err(BmfsError::Disk)?;
        let end = raw
            .chunks(RECORD)
            .position(|record| record[0] == 0)
            .unwrap_or(RECORDS);
        let mut records = raw
            .chunks(RECORD)
            .take(end)
            .enumerate()
            .map(|(index, record)| decode(index, record))
            .collect::<Result<Vec<_>, _>>()?;
        records.resize(RECORDS, None);
        check(&records, disk.size() / BLOCK)?;
        Ok(Self {
            disk,
            records,
            end,
            unsure: None,
        })
    }

    /// The files, in directory order.
    pub fn files(&self) -> impl Iterator<Item = &Entry> {
        self.records.iter().flatten()
    }

    /// The file `name`.
    pub fn find(&self, name: &str) -> Result<&Entry, BmfsError> {
        self.files()
            .find(|file| file.name == name)
            .ok_or_else(|| BmfsError::NotFound(name.into()))
    }

    /// Blocks on the disk (block 0 and the last block included).
    pub fn blocks(&self) -> u64 {
        self.disk.size() / BLOCK
    }

    /// Blocks files may reserve: all but block 0 and the last block (blocks 1 to
    /// `blocks() - 2`).
    pub fn file_blocks(&self) -> u64 {
        self.blocks() - 2
    }

    /// Blocks files may reserve that no file reserved.
    pub fn free_blocks(&self) -> u64 {
        self.file_blocks() - self.files().map(|file| file.reserved).sum::<u64>()
    }

    /// The first run of `blocks` free blocks before the last block (none for a count past
    /// any disk's); a file that reserved no blocks takes none, as in `check`.
    fn free_run(&self, blocks: u64) -> Option<u64> {
        let mut taken: Vec<(u64, u64)> = self
            .files()
            .filter(|f| f.reserved > 0)
            .map(|f| (f.start, f.start + f.reserved))
            .collect();
        taken.sort_unstable();
        let mut candidate: u64 = 1;
        for (start, end) in taken {
            if start >= candidate.checked_add(blocks)? {
                break;
            }
            candidate = candidate.max(end);
        }
        // The run ends (exclusive) at the last block at the latest: that one is BMFS's.
        let last_block = self.blocks() - 1;
        (candidate.checked_add(blocks)? <= last_block).then_some(candidate)
    }

    /// Refuses a change with [`BmfsError::NeedsReopen`] once the directory on disk may
    /// differ from the one in memory.
    fn changeable(&self) -> Result<(), BmfsError> {
        match &self.unsure {
            Some(why) => Err(BmfsError::NeedsReopen(why.clone())),
            None => Ok(()),
        }
    }

    /// Writes `record` as record `index` (`None`: deleted) and flushes; only then does
    /// the directory in memory take it, so after a failed write it still holds the
    /// record as it was (a failed delete keeps the file's blocks taken).
    fn store(&mut self, index: usize, record: Option<Entry>) -> Result<(), BmfsError> {
        self.write_record(index, &record.as_ref().map_or(DELETED, encode))?;
        self.records[index] = record;
        Ok(())
    }

    /// Writes `raw` over record `index` and flushes.
    fn write_record(&mut self, index: usize, raw: &[u8; RECORD]) -> Result<(), BmfsError> {
        self.disk
            .write(DIRECTORY_AT + (index * RECORD) as u64, raw)
            .map_err(BmfsError::Disk)?;
        self.disk.flush().map_err(BmfsError::Disk)
    }

    /// Creates the empty file `name` reserving `blocks` blocks (at least one). When the
    /// record's write fails (it may have reached the disk all the same), the record is
    /// written back unused, as it was, and the error returned: the disk holds no file
    /// the caller was told was not created. If that write fails too, the create fails
    /// with [`BmfsError::NeedsReopen`] and so does every later change until the disk is
    /// opened again.
    pub fn create(&mut self, name: &str, blocks: u64) -> Result<&Entry, BmfsError> {
        self.changeable()?;
        valid_name(name)?;
        if self.find(name).is_ok() {
            return Err(BmfsError::Exists(name.into()));
        }
        let blocks = blocks.max(1);
        let index = self
            .records
            .iter()
            .position(Option::is_none)
            .ok_or(BmfsError::DirectoryFull)?;
        let start = self.free_run(blocks).ok_or(BmfsError::NoSpace { blocks })?;
        let entry = Entry {
            name: name.into(),
            start,
            reserved: blocks,
            size: 0,
        };
        if index == self.end && index + 1 < RECORDS {
            // The end marker moves to the next record first, so that what another tool
            // left after it never becomes part of the directory.
            self.write_record(index + 1, &END)?;
        }
        if let Err(error) = self.write_record(index, &encode(&entry)) {
            return Err(self.undo_create(index, error));
        }
        self.records[index] = Some(entry);
        self.end = self.end.max(index + 1);
        Ok(self.records[index].as_ref().expect("just stored"))
    }

    /// After the failed `error` write of record `index` by a create, writes the record
    /// back unused as it was (deleted before the end marker, the end marker from it on)
    /// and returns `error`; when that fails too, the disk may hold the new record or
    /// not, and the volume stops changing anything ([`BmfsError::NeedsReopen`]).
    fn undo_create(&mut self, index: usize, error: BmfsError) -> BmfsError {
        let unused = if index < self.end { DELETED } else { END };
        match self.write_record(index, &unused) {
            Ok(()) => error,
            Err(undo) => {
                let why = alloc::format!(
                    "creating record {index} failed ({error}) and writing it back failed ({undo})"
                );
                self.unsure = Some(why.clone());
                BmfsError::NeedsReopen(why)
            }
        }
    }

    /// Replaces the contents of `name` with `data` (within its reserved blocks). The data
    /// goes over the file's own blocks, so a file that is not empty is first stored with
    /// size 0 (flushed), then the data is written and flushed, then the new size: a crash
    /// or disk error leaves the old file (before the size 0 is stored), an empty file, or
    /// the new file, never the old size over mixed bytes. Empty `data` only stores the
    /// size 0, once.
    pub fn write(&mut self, name: &str, data: &[u8]) -> Result<(), BmfsError> {
        self.replace(name, data.len() as u64, |disk, start| {
            disk.write(start, data).map_err(BmfsError::Disk)
        })
    }

    /// As [`write`](Self::write), for data larger than the memory at hand: its `size`
    /// bytes come a piece of `buffer.len()` bytes at a time, `fill` filling each piece
    /// (cut to what is left; given its offset in the file) before it is written. A
    /// `fill` that fails stops the write ([`BmfsError::Source`]), the file left empty as
    /// a crash midway leaves it. An empty `buffer` for a `size` above 0 is refused so
    /// before anything is written, the file left as it was.
    pub fn write_in_pieces<F>(
        &mut self,
        name: &str,
        size: u64,
        buffer: &mut [u8],
        mut fill: F,
    ) -> Result<(), BmfsError>
    where
        F: FnMut(&mut [u8], u64) -> Result<(), String>,
    {
        if size > 0 && buffer.is_empty() {
            return Err(BmfsError::Source("no buffer to read the data into".into()));
        }
        self.replace(name, size, |disk, start| {
            let fill = |_: &mut D, piece: &mut [u8], at| fill(piece, at).map_err(BmfsError::Source);
            write_pieces(disk, start, size, buffer, fill)
        })
    }

    /// Replaces the contents of `name` with the `size` bytes `write_data` writes to the
    /// disk from the byte it is given on, in the order [`write`](Self::write) promises.
    fn replace(
        &mut self,
        name: &str,
        size: u64,
        write_data: impl FnOnce(&mut D, u64) -> Result<(), BmfsError>,
    ) -> Result<(), BmfsError> {
        self.changeable()?;
        let index = self.index(name)?;
        let entry = self.records[index].clone().expect("found");
        let capacity = entry.capacity();
        if size > capacity {
            return Err(BmfsError::TooLarge { size, capacity });
        }
        if size == 0 {
            return self.store(index, Some(Entry { size: 0, ..entry }));
        }
        if entry.size > 0 {
            self.store(
                index,
                Some(Entry {
                    size: 0,
                    ..entry.clone()
                }),
            )?;
        }
        write_data(&mut self.disk, entry.start * BLOCK)?;
        self.disk.flush().map_err(BmfsError::Disk)?;
        self.store(index, Some(Entry { size, ..entry }))
    }

    /// Reads `buffer.len()` bytes of `name` from `offset` (clipped to the file's size);
    /// returns how many were read.
    pub fn read_at(
        &mut self,
        name: &str,
        offset: u64,
        buffer: &mut [u8],
    ) -> Result<usize, BmfsError> {
        let entry = self.find(name)?;
        let (start, size) = (entry.start, entry.size);
        let len = (buffer.len() as u64).min(size.saturating_sub(offset)) as usize;
        if len > 0 {
            self.disk
                .read(start * BLOCK + offset, &mut buffer[..len])
                .map_err(BmfsError::Disk)?;
        }
        Ok(len)
    }

    /// The whole of `name`; [`BmfsError::NoMemory`] if the app cannot get that much
    /// memory (a file's size is the disk's word: it may be as large as the disk).
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, BmfsError> {
        let size = self.find(name)?.size;
        let too_large = || BmfsError::NoMemory(name.into(), size);
        let len = usize::try_from(size).map_err(|_| too_large())?;
        let mut data = Vec::new();
        data.try_reserve_exact(len).map_err(|_| too_large())?;
        data.resize(len, 0);
        self.read_at(name, 0, &mut data)?;
        Ok(data)
    }

    /// Copies the file `from` to a new file `to` reserving as many blocks (at least one),
    /// [`COPY_PIECE`] bytes at a time, so that the one buffer held is a piece whatever
    /// the file's size; returns the bytes copied. The data goes into the new, empty file's
    /// blocks and is flushed before its size is stored, so a crash leaves it empty or
    /// whole; a failure after the create deletes it ([`BmfsError::CopyFailed`]), so its
    /// blocks are free again. An existing `to` is refused.
    pub fn copy(&mut self, from: &str, to: &str) -> Result<u64, BmfsError> {
        let source = self.find(from)?.clone();
        self.create(to, source.reserved.max(1))?;
        self.replace(to, source.size, |disk, start| {
            let mut buffer = alloc::vec![0u8; COPY_PIECE];
            let from = source.start * BLOCK;
            let read = |disk: &mut D, piece: &mut [u8], at| {
                disk.read(from + at, piece).map_err(BmfsError::Disk)
            };
            write_pieces(disk, start, source.size, &mut buffer, read)
        })
        .map(|()| source.size)
        .map_err(|error| BmfsError::CopyFailed {
            to: to.into(),
            why: alloc::format!("{error}"),
            left: self.delete(to).err().map(|undo| alloc::format!("{undo}")),
        })
    }

    /// Deletes `name` (its record marked deleted; its blocks free).
    pub fn delete(&mut self, name: &str) -> Result<(), BmfsError> {
        self.changeable()?;
        let index = self.index(name)?;
        self.store(index, None)
    }

    /// The record number of `name`.
    fn index(&self, name: &str) -> Result<usize, BmfsError> {
        self.records
            .iter()
            .position(|r| r.as_ref().is_some_and(|f| f.name == name))
            .ok_or_else(|| BmfsError::NotFound(name.into()))
    }

    /// Gives the disk back.
    pub fn into_disk(self) -> D {
        self.disk
    }
}

/// A disk in memory (tests, and the host tool's staging).
impl Disk for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), String> {
        let start = usize::try_from(offset).map_err(|_| String::from("offset too large"))?;
        let source = self
            .get(start..start + buffer.len())
            .ok_or_else(|| String::from("read past the end"))?;
        buffer.copy_from_slice(source);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let start = usize::try_from(offset).map_err(|_| String::from("offset too large"))?;
        let target = self
            .get_mut(start..start + data.len())
            .ok_or_else(|| String::from("write past the end"))?;
        target.copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
