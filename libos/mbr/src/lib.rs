//! The partition tables Rexo's file system libraries read to find their partitions
//! and the host tools write: MBR, and GPT behind a protective MBR.
//!
//! MBR (sector 0: four 16-byte entries at byte 446, the signature 0x55 0xAA at 510):
//! only what a data disk needs: primary partitions by LBA (start and length,
//! little-endian u32s at +8 and +12 of an entry), the type byte at +4; CHS fields are
//! written as "use LBA" and ignored when read. Types: [`TYPE_BMFS`] and
//! [`TYPE_REXO_FS`], from the range MBR leaves to local use.
//!
//! GPT ([`gpt`]): when sector 0 holds a protective entry ([`TYPE_GPT_PROTECTIVE`]),
//! the partitions are those of the GPT: its header at LBA 1, or the backup in the last
//! sector when that one or its entry array is bad (CRC, signature, fields), and Rexo's
//! partitions are those of type [`gpt::GUID_BMFS`] and [`gpt::GUID_REXO_FS`].
//! [`read_table`] reads either; [`Partition::holds`] matches an MBR type byte or the
//! GUID standing for it.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod gpt;

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
/// The type of a protective MBR entry: the disk's partitions are in its GPT.
pub const TYPE_GPT_PROTECTIVE: u8 = 0xEE;
/// Where the four entries start.
const ENTRIES: usize = 446;

/// What a partition's table says it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An MBR entry's type byte.
    Mbr(u8),
    /// A GPT entry's type GUID, name and the rest.
    Gpt(gpt::Entry),
}

/// One partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its number: 1 to 4 under MBR, its entry's (from 1) under GPT.
    pub number: usize,
    /// What it holds.
    pub kind: Kind,
    /// Its first sector.
    pub first: u64,
    /// Its sectors.
    pub sectors: u64,
}

impl Partition {
    /// Whether it is of MBR type `kind`, or of the GPT type GUID standing for it
    /// ([`gpt::mbr_type_of`]).
    pub fn holds(&self, kind: u8) -> bool {
        match self.kind {
            Kind::Mbr(byte) => byte == kind,
            Kind::Gpt(entry) => gpt::mbr_type_of(entry.type_guid) == Some(kind),
        }
    }
}

/// A disk's partitions, as [`read_table`] found them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// The used entries, in table order.
    pub partitions: Vec<Partition>,
    /// Why the primary GPT was passed over, when the partitions come from the backup.
    pub from_backup: Option<String>,
}

impl Table {
    /// The first partition of type `kind` ([`Partition::holds`]).
    pub fn first_holding(&self, kind: u8) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.holds(kind))
    }
}

/// Reads `sectors` sectors from an LBA of a disk: the bytes, or the device's error.
pub type ReadSectors<'a> = &'a mut dyn FnMut(u64, u32) -> Result<Vec<u8>, String>;

/// Why a table was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MbrError {
    /// No MBR signature: the disk is not partitioned.
    NoTable,
    /// An entry or a GPT header is impossible (named).
    Corrupt(String),
    /// The device failed a read (its error).
    Unreadable(String),
    /// The partitions given to [`table`] do not fit an MBR (why).
    Unwritable(String),
}

impl fmt::Display for MbrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTable => f.write_str("no partition table"),
            Self::Corrupt(why) => write!(f, "bad partition table: {why}"),
            Self::Unreadable(why) => write!(f, "partition table unreadable: {why}"),
            Self::Unwritable(why) => write!(f, "partition table not written: {why}"),
        }
    }
}

/// The MBR partitions of a disk of `disk_sectors` sectors whose sector 0 is `sector0`,
/// in table order; entries of type 0 are unused. A partition in sector 0, past the end
/// of the disk, or overlapping another is refused; a protective entry
/// ([`TYPE_GPT_PROTECTIVE`]) may run past the end (it says 0xFFFFFFFF sectors on disks
/// larger than that, and some tools write that on any disk) and overlap the others (a
/// hybrid MBR mirrors GPT partitions beside it): [`read_table`] reads its GPT.
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
        if kind != TYPE_GPT_PROTECTIVE && first + sectors > disk_sectors {
            return Err(bad("runs past the end of the disk"));
        }
        // A hybrid MBR's protective entry may cover the MBR entries that mirror GPT ones.
        if let Some(other) = found.iter().find(|p| {
            let overlap = first < p.first + p.sectors && p.first < first + sectors;
            overlap && kind != TYPE_GPT_PROTECTIVE && !p.holds(TYPE_GPT_PROTECTIVE)
        }) {
            return Err(bad(&format!("overlaps partition {}", other.number)));
        }
        found.push(Partition {
            number,
            kind: Kind::Mbr(kind),
            first,
            sectors,
        });
    }
    Ok(found)
}

/// `sectors` sectors from `lba` through `read`, refused unless exactly that many bytes
/// of `sector_size`-byte sectors come; the error is why the read failed.
fn read_sectors(
    read: ReadSectors,
    sector_size: usize,
    lba: u64,
    sectors: u32,
) -> Result<Vec<u8>, String> {
    if sectors == 0 {
        return Ok(Vec::new());
    }
    let bytes = read(lba, sectors)?;
    let wanted = sectors as usize * sector_size;
    if bytes.len() != wanted {
        return Err(format!(
            "{} bytes from LBA {lba}, not {wanted}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The partition table of a disk of `disk_sectors` sectors of `sector_size` bytes,
/// read through `read`: its MBR's partitions ([`parse`]), or with a protective entry
/// its GPT's ([`gpt`]: the primary, else the backup, saying why).
pub fn read_table(
    sector_size: u32,
    disk_sectors: u64,
    read: ReadSectors,
) -> Result<Table, MbrError> {
    let sector_size = sector_size.max(1) as usize;
    let sectors_in_mbr = SECTOR.div_ceil(sector_size) as u32;
    let sector0 =
        read_sectors(read, sector_size, 0, sectors_in_mbr).map_err(MbrError::Unreadable)?;
    let partitions = parse(&sector0, disk_sectors)?;
    if !partitions.iter().any(|p| p.holds(TYPE_GPT_PROTECTIVE)) {
        return Ok(Table {
            partitions,
            from_backup: None,
        });
    }
    let (partitions, from_backup) = gpt::read(read, sector_size, disk_sectors)?;
    Ok(Table {
        partitions,
        from_backup,
    })
}

/// [`read_table`] of `device`, read on queue 0 one request at a time (each at most the
/// device's `max_sectors`).
pub fn read_device_table(device: &mut dyn rexo_api::BlockDevice) -> Result<Table, MbrError> {
    let info = device.info();
    let most = info.max_sectors.max(1);
    read_table(info.sector_size, info.sectors, &mut |lba, sectors| {
        let mut bytes = Vec::new();
        let mut done = 0;
        while done < sectors {
            let count = most.min(sectors - done);
            let tag = device
                .submit_read(0, lba + u64::from(done), count)
                .map_err(|e| format!("{e}"))?;
            rexo_api::device::wait_for(device, 0, tag, &mut |data| bytes.extend_from_slice(data))
                .map_err(|e| format!("{e}"))?;
            done += count;
        }
        Ok(bytes)
    })
}

/// What [`on_first_disk_holding`]'s `attempt` found where it looked.
pub enum Attempt<T> {
    /// The file system is there: what the work on it gave (the search ends).
    Done(Result<T, String>),
    /// Not there, and why (the search goes on).
    NotHere(String),
}

/// Looks for a file system on every disk in turn: `attempt` on the whole disk, then on
/// the disk's first partition of type `kind` (MBR, or GPT with the GUID standing for
/// it: [`read_device_table`], [`Partition::holds`]); the first `Done` ends the search.
/// Each disk is opened for the look and given back afterwards. The error says what was
/// found on each disk (`what`: the file system's name, for the message), with a bad
/// partition table's reason and a GPT read from its backup header.
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
        let table = match read_device_table(disk.as_mut()) {
            Ok(table) => table,
            Err(MbrError::NoTable) => {
                tried.push(format!("disk {}: {whole}", device.index));
                continue;
            }
            Err(error) => {
                tried.push(format!("disk {}: {whole}; {error}", device.index));
                continue;
            }
        };
        let backup = match &table.from_backup {
            Some(why) => format!(" (GPT read from its backup header: {why})"),
            None => String::new(),
        };
        match table.first_holding(kind) {
            Some(p) => match attempt(disk.as_mut(), Some(p)) {
                Attempt::Done(result) => return result,
                Attempt::NotHere(why) => tried.push(format!(
                    "disk {} partition {}{backup}: {why}",
                    device.index, p.number
                )),
            },
            None => tried.push(format!("disk {}{backup}: {whole}", device.index)),
        }
    }
    if tried.is_empty() {
        return Err(String::from("no disk (`devices` lists them)"));
    }
    Err(format!("no {what} ({})", tried.join("; ")))
}

/// Sector 0 of a disk holding `partitions` (type, first sector, sectors; in that
/// order), or why an MBR cannot hold them: more than 4, or one starting, as long as, or
/// ending past sector 0xFFFFFFFF (an entry's LBA and length are 32-bit: 2 TiB of
/// 512-byte sectors).
pub fn table(partitions: &[(u8, u64, u64)]) -> Result<[u8; SECTOR], MbrError> {
    if partitions.len() > 4 {
        return Err(MbrError::Unwritable(format!(
            "{} partitions (an MBR holds 4)",
            partitions.len()
        )));
    }
    let mut sector = [0u8; SECTOR];
    for (i, &(kind, first, sectors)) in partitions.iter().enumerate() {
        let last = first.saturating_add(sectors).saturating_sub(1);
        let (Ok(first32), Ok(sectors32), Ok(_)) = (
            u32::try_from(first),
            u32::try_from(sectors),
            u32::try_from(last),
        ) else {
            return Err(MbrError::Unwritable(format!(
                "partition {} (sector {first}, {sectors} sectors) reaches past what an MBR can describe (2 TiB)",
                i + 1
            )));
        };
        let entry = &mut sector[ENTRIES + 16 * i..ENTRIES + 16 * (i + 1)];
        // CHS start and end "use LBA" (0xFE 0xFF 0xFF), the type, LBA start and length.
        entry[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
        entry[4] = kind;
        entry[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
        entry[8..12].copy_from_slice(&first32.to_le_bytes());
        entry[12..16].copy_from_slice(&sectors32.to_le_bytes());
    }
    sector[510..512].copy_from_slice(&[0x55, 0xAA]);
    Ok(sector)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next of a xorshift64 sequence from `state`: cheap, repeatable test bytes.
    pub(crate) fn next_random(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn a_table_written_reads_back() {
        let sector = table(&[(TYPE_BMFS, 2048, 65536), (TYPE_REXO_FS, 67584, 100_000)]).unwrap();
        assert_eq!(
            parse(&sector, 167_584),
            Ok(alloc::vec![
                Partition {
                    number: 1,
                    kind: Kind::Mbr(TYPE_BMFS),
                    first: 2048,
                    sectors: 65536
                },
                Partition {
                    number: 2,
                    kind: Kind::Mbr(TYPE_REXO_FS),
                    first: 67584,
                    sectors: 100_000
                },
            ])
        );
    }

    #[test]
    fn a_table_an_mbr_cannot_hold_is_refused_not_wrapped() {
        let refused = |partitions: &[(u8, u64, u64)]| match table(partitions) {
            Err(MbrError::Unwritable(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        // The last sector an entry can reach is 0xFFFFFFFF.
        assert!(table(&[(TYPE_BMFS, 1, 0xFFFF_FFFF)]).is_ok());
        assert!(table(&[(TYPE_BMFS, 0xFFFF_FFFF, 1)]).is_ok());
        let why = refused(&[(TYPE_BMFS, 2048, 0xFFFF_FFFF)]);
        assert!(
            why.contains("partition 1") && why.contains("(2 TiB)"),
            "{why}"
        );
        // `disk partition big.img 2100G 2040G`: the second starts below 2 TiB, ends past.
        let why = refused(&[
            (TYPE_BMFS, 2048, 2040 << 21),
            (TYPE_REXO_FS, 2048 + (2040 << 21), 59 << 21),
        ]);
        assert!(why.starts_with("partition 2 (sector 4278192128,"), "{why}");
        refused(&[(TYPE_BMFS, 1 << 32, 1)]);
        refused(&[(TYPE_BMFS, 1, 1 << 32)]);
        refused(&[(TYPE_BMFS, u64::MAX, u64::MAX)]);
        let five = [(TYPE_BMFS, 1, 1); 5];
        assert_eq!(refused(&five), "5 partitions (an MBR holds 4)");
        assert!(table(&five[..4]).is_ok());
    }

    #[test]
    fn a_disk_without_a_protective_entry_is_read_by_its_mbr() {
        let mut disk = alloc::vec![0u8; 4 * SECTOR];
        disk[..SECTOR].copy_from_slice(&table(&[(TYPE_REXO_FS, 2, 2)]).unwrap());
        let table = read_table(512, 4, &mut |lba, sectors| {
            Ok(disk[lba as usize * SECTOR..][..sectors as usize * SECTOR].to_vec())
        })
        .unwrap();
        assert_eq!(table.from_backup, None);
        assert_eq!(table.first_holding(TYPE_REXO_FS).unwrap().first, 2);
        assert_eq!(table.first_holding(TYPE_BMFS), None);
    }

    #[test]
    fn impossible_tables_are_refused_with_the_reason() {
        assert_eq!(parse(&[0u8; SECTOR], 100), Err(MbrError::NoTable));
        assert_eq!(parse(&[0u8; 100], 100), Err(MbrError::NoTable));
        let past = table(&[(TYPE_REXO_FS, 2048, 4096)]).unwrap();
        assert!(
            matches!(parse(&past, 4000), Err(MbrError::Corrupt(why)) if why.contains("past the end"))
        );
        let overlap = table(&[(TYPE_BMFS, 2048, 4096), (TYPE_REXO_FS, 4000, 10)]).unwrap();
        assert!(
            matches!(parse(&overlap, 100_000), Err(MbrError::Corrupt(why)) if why.contains("overlaps partition 1"))
        );
        let zero = table(&[(TYPE_BMFS, 0, 10)]).unwrap();
        assert!(matches!(parse(&zero, 100), Err(MbrError::Corrupt(_))));
        // A protective entry may say 0xFFFFFFFF sectors on any disk; its GPT is checked.
        let protective = table(&[(TYPE_GPT_PROTECTIVE, 1, 0xFFFF_FFFF)]).unwrap();
        assert_eq!(parse(&protective, 100).unwrap()[0].sectors, 0xFFFF_FFFF);
        let protective_and_past =
            table(&[(TYPE_GPT_PROTECTIVE, 1, 49), (TYPE_BMFS, 50, 51)]).unwrap();
        assert!(
            matches!(parse(&protective_and_past, 100), Err(MbrError::Corrupt(why)) if why.contains("partition 2: runs past"))
        );
        // A hybrid MBR: the protective entry over the whole disk, a mirrored GPT partition
        // inside it.
        let hybrid = table(&[(TYPE_GPT_PROTECTIVE, 1, 0xFFFF_FFFF), (0x0C, 2048, 4096)]).unwrap();
        assert_eq!(parse(&hybrid, 100_000).map(|p| p.len()), Ok(2));
        // Random sectors with a signature: refused or parsed, never a panic.
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            let mut sector = [0u8; SECTOR];
            for byte in sector.iter_mut() {
                *byte = next_random(&mut state) as u8;
            }
            sector[510..512].copy_from_slice(&[0x55, 0xAA]);
            if let Ok(partitions) = parse(&sector, 1 << 40) {
                assert!(partitions.iter().all(|p| p.first > 0 && p.sectors > 0));
            }
        }
    }
}
