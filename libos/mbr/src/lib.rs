//! The MBR partition table (sector 0: four 16-byte entries at byte 446, the signature
//! 0x55 0xAA at 510), as Rexo's file system libraries read it to find their partitions
//! and the host tools write it. Only what a data disk needs: primary partitions by
//! LBA (start and length, little-endian u32s at +8 and +12 of an entry), the type byte
//! at +4; CHS fields are written as "use LBA" and ignored when read.
//!
//! Types: [`TYPE_BMFS`] and [`TYPE_REXO_FS`], from the range MBR leaves to local use.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Bytes in the sector holding the table.
pub const SECTOR: usize = 512;
/// The type of a BMFS partition.
pub const TYPE_BMFS: u8 = 0x7E;
/// The type of a Rexo file system partition.
pub const TYPE_REXO_FS: u8 = 0x7F;
/// Where the four entries start.
const ENTRIES: usize = 446;

/// One partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its number, 1 to 4.
    pub number: usize,
    /// Its type byte.
    pub kind: u8,
    /// Its first sector.
    pub first: u64,
    /// Its sectors.
    pub sectors: u64,
}

/// Why a table was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MbrError {
    /// No MBR signature: the disk is not partitioned.
    NoTable,
    /// An entry is impossible (named).
    Corrupt(String),
}

impl fmt::Display for MbrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTable => f.write_str("no partition table"),
            Self::Corrupt(why) => write!(f, "bad partition table: {why}"),
        }
    }
}

/// The partitions of a disk of `disk_sectors` sectors whose sector 0 is `sector0`, in
/// table order; entries of type 0 are unused. A partition in sector 0, past the end
/// of the disk, or overlapping another is refused.
pub fn parse(sector0: &[u8], disk_sectors: u64) -> Result<Vec<Partition>, MbrError> {
    if sector0.len() < SECTOR || sector0[510..512] != [0x55, 0xAA] {
        return Err(MbrError::NoTable);
    }
    let mut found: Vec<Partition> = Vec::new();
    for number in 1..=4 {
        let entry = &sector0[ENTRIES + 16 * (number - 1)..ENTRIES + 16 * number];
        let kind = entry[4];
        if kind == 0 {
            continue;
        }
        let word = |at: usize| {
            u64::from(u32::from_le_bytes([
                entry[at],
                entry[at + 1],
                entry[at + 2],
                entry[at + 3],
            ]))
        };
        let (first, sectors) = (word(8), word(12));
        let bad = |why: &str| MbrError::Corrupt(format!("partition {number}: {why}"));
        if first == 0 || sectors == 0 {
            return Err(bad("starts in sector 0 or is empty"));
        }
        if first + sectors > disk_sectors {
            return Err(bad("runs past the end of the disk"));
        }
        if let Some(other) = found
            .iter()
            .find(|p| first < p.first + p.sectors && p.first < first + sectors)
        {
            return Err(bad(&format!("overlaps partition {}", other.number)));
        }
        found.push(Partition {
            number,
            kind,
            first,
            sectors,
        });
    }
    Ok(found)
}

/// The partitions of type `kind` on `device` (its sector 0 read on queue 0), or why
/// there are none (no table, a bad one, the device's error).
pub fn read_partitions(
    device: &mut dyn rexo_api::BlockDevice,
    kind: u8,
) -> Result<Vec<Partition>, String> {
    let info = device.info();
    let sectors_in_table = SECTOR.div_ceil(info.sector_size.max(1) as usize) as u32;
    let tag = device
        .submit_read(0, 0, sectors_in_table)
        .map_err(|e| format!("{e}"))?;
    let mut sector0 = Vec::new();
    rexo_api::device::wait_for(device, 0, tag, &mut |data| sector0.extend_from_slice(data))
        .map_err(|e| format!("{e}"))?;
    let partitions = parse(&sector0, info.sectors).map_err(|e| format!("{e}"))?;
    Ok(partitions.into_iter().filter(|p| p.kind == kind).collect())
}

/// What [`on_first_disk_holding`]'s `attempt` found where it looked.
pub enum Attempt<T> {
    /// The file system is there: what the work on it gave (the search ends).
    Done(Result<T, String>),
    /// Not there, and why (the search goes on).
    NotHere(String),
}

/// Looks for a file system on every disk in turn: `attempt` on the whole disk, then on
/// the disk's first partition of type `kind`; the first `Done` ends the search. Each
/// disk is opened for the look and given back afterwards. The error says what was
/// found on each disk (`what`: the file system's name, for the message).
pub fn on_first_disk_holding<T>(
    kernel: &rexo_api::Kernel,
    kind: u8,
    what: &str,
    mut attempt: impl FnMut(&mut dyn rexo_api::BlockDevice, Option<&Partition>) -> Attempt<T>,
) -> Result<T, String> {
    let mut tried = Vec::new();
    for device in kernel
        .devices()
        .into_iter()
        .filter(|d| d.kind == rexo_api::DeviceKind::Block)
    {
        let mut disk = match kernel.open_block(device.index) {
            Ok(disk) => disk,
            Err(error) => {
                tried.push(format!("disk {}: {error}", device.index));
                continue;
            }
        };
        let whole = match attempt(disk.as_mut(), None) {
            Attempt::Done(result) => return result,
            Attempt::NotHere(why) => why,
        };
        match read_partitions(disk.as_mut(), kind) {
            Ok(partitions) if !partitions.is_empty() => {
                let p = partitions[0];
                match attempt(disk.as_mut(), Some(&p)) {
                    Attempt::Done(result) => return result,
                    Attempt::NotHere(why) => tried.push(format!(
                        "disk {} partition {}: {why}",
                        device.index, p.number
                    )),
                }
            }
            _ => tried.push(format!("disk {}: {whole}", device.index)),
        }
    }
    if tried.is_empty() {
        return Err(String::from("no disk (`devices` lists them)"));
    }
    Err(format!("no {what} ({})", tried.join("; ")))
}

/// Sector 0 of a disk holding `partitions` (type, first sector, sectors; at most 4,
/// in that order).
pub fn table(partitions: &[(u8, u64, u64)]) -> [u8; SECTOR] {
    let mut sector = [0u8; SECTOR];
    for (i, &(kind, first, sectors)) in partitions.iter().take(4).enumerate() {
        let entry = &mut sector[ENTRIES + 16 * i..ENTRIES + 16 * (i + 1)];
        // CHS start and end "use LBA" (0xFE 0xFF 0xFF), the type, LBA start and length.
        entry[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
        entry[4] = kind;
        entry[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
        entry[8..12].copy_from_slice(&(first as u32).to_le_bytes());
        entry[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    }
    sector[510..512].copy_from_slice(&[0x55, 0xAA]);
    sector
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_written_reads_back() {
        let sector = table(&[(TYPE_BMFS, 2048, 65536), (TYPE_REXO_FS, 67584, 100_000)]);
        assert_eq!(
            parse(&sector, 167_584),
            Ok(alloc::vec![
                Partition {
                    number: 1,
                    kind: TYPE_BMFS,
                    first: 2048,
                    sectors: 65536
                },
                Partition {
                    number: 2,
                    kind: TYPE_REXO_FS,
                    first: 67584,
                    sectors: 100_000
                },
            ])
        );
    }

    #[test]
    fn impossible_tables_are_refused_with_the_reason() {
        assert_eq!(parse(&[0u8; SECTOR], 100), Err(MbrError::NoTable));
        assert_eq!(parse(&[0u8; 100], 100), Err(MbrError::NoTable));
        let past = table(&[(TYPE_REXO_FS, 2048, 4096)]);
        assert!(
            matches!(parse(&past, 4000), Err(MbrError::Corrupt(why)) if why.contains("past the end"))
        );
        let overlap = table(&[(TYPE_BMFS, 2048, 4096), (TYPE_REXO_FS, 4000, 10)]);
        assert!(
            matches!(parse(&overlap, 100_000), Err(MbrError::Corrupt(why)) if why.contains("overlaps partition 1"))
        );
        let zero = table(&[(TYPE_BMFS, 0, 10)]);
        assert!(matches!(parse(&zero, 100), Err(MbrError::Corrupt(_))));
        // Random sectors with a signature: refused or parsed, never a panic.
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            let mut sector = [0u8; SECTOR];
            for byte in sector.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            sector[510..512].copy_from_slice(&[0x55, 0xAA]);
            if let Ok(partitions) = parse(&sector, 1 << 40) {
                assert!(partitions.iter().all(|p| p.first > 0 && p.sectors > 0));
            }
        }
    }
}
