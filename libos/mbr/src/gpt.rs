//! The GUID partition table (UEFI 2.x, "GUID Partition Table (GPT) Disk Layout"),
//! behind a protective MBR: a header at LBA 1 and a backup of it in the disk's last
//! sector, each naming an array of entries and sealed with CRC-32s (header and array).
//! Header fields, little-endian: signature "EFI PART" (+0), revision (+8), header
//! size (+12), header CRC (+16, computed with itself zeroed), the header's own LBA
//! (+24), first and last usable LBA (+40, +48), the entry array's LBA (+72), number of
//! entries (+80), entry size (+84), the array's CRC (+88). Entry fields: type GUID
//! (+0), unique GUID (+16), first and last LBA, inclusive (+32, +40), attributes (+48),
//! name in UTF-16LE (+56, 36 units).
//!
//! Rexo's types: [`GUID_BMFS`] and [`GUID_REXO_FS`], standing for the MBR types
//! [`TYPE_BMFS`] and [`TYPE_REXO_FS`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rexo_crc::{Crc32, crc32};

use crate::{Kind, MbrError, Partition, ReadSectors, TYPE_BMFS, TYPE_REXO_FS, read_sectors};

/// A GUID as GPT stores it: the first three fields little-endian, the last eight bytes
/// in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The type of an unused entry.
    pub const UNUSED: Self = Self([0; 16]);

    /// The GUID written `time_low-time_mid-time_high-rest[0..2]-rest[2..8]` in hex.
    pub const fn new(time_low: u32, time_mid: u16, time_high: u16, rest: [u8; 8]) -> Self {
        let low = time_low.to_le_bytes();
        let mid = time_mid.to_le_bytes();
        let high = time_high.to_le_bytes();
        Self([
            low[0], low[1], low[2], low[3], mid[0], mid[1], high[0], high[1], rest[0], rest[1],
            rest[2], rest[3], rest[4], rest[5], rest[6], rest[7],
        ])
    }
}

/// The type GUID of a BMFS partition, d53939d2-050c-4e81-873f-fd5d3746c4be (a random
/// version 4 GUID made for Rexo); [`TYPE_BMFS`] under MBR.
pub const GUID_BMFS: Guid = Guid::new(
    0xD539_39D2,
    0x050C,
    0x4E81,
    [0x87, 0x3F, 0xFD, 0x5D, 0x37, 0x46, 0xC4, 0xBE],
);
/// The type GUID of a Rexo file system partition, 450ec203-fcf1-4ced-a1aa-194f7f09970a
/// (a random version 4 GUID made for Rexo); [`TYPE_REXO_FS`] under MBR.
pub const GUID_REXO_FS: Guid = Guid::new(
    0x450E_C203,
    0xFCF1,
    0x4CED,
    [0xA1, 0xAA, 0x19, 0x4F, 0x7F, 0x09, 0x97, 0x0A],
);

/// The MBR type Rexo's type GUID `guid` stands for, if it is one of them.
pub fn mbr_type_of(guid: Guid) -> Option<u8> {
    match guid {
        GUID_BMFS => Some(TYPE_BMFS),
        GUID_REXO_FS => Some(TYPE_REXO_FS),
        _ => None,
    }
}

/// The most bytes of entries read (entry count times entry size): 1 MiB, 8,192 entries
/// of 128 bytes; tools write 128 (16 KiB). A header asking for more is refused.
pub const MAX_ENTRY_ARRAY: u64 = 1 << 20;
/// Bytes of a revision 1.0 header.
const HEADER_BYTES: usize = 92;
/// UTF-16 units of an entry's name.
const NAME_UNITS: usize = 36;

/// What a GPT entry says beyond its sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What the partition holds.
    pub type_guid: Guid,
    /// The partition's own GUID.
    pub unique_guid: Guid,
    /// Its attribute bits.
    pub attributes: u64,
    /// Its name, UTF-16, padded with zeros.
    pub name: [u16; NAME_UNITS],
}

impl Entry {
    /// The name up to its first zero (an unpaired surrogate read as U+FFFD).
    pub fn name(&self) -> String {
        let units = self.name.iter().copied().take_while(|&unit| unit != 0);
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

/// The fields of a header that passed its checks.
struct Header {
    /// The first sector a partition may use.
    first_usable: u64,
    /// The last sector a partition may use.
    last_usable: u64,
    /// Where the entry array starts.
    entries_lba: u64,
    /// Entries in the array.
    entries: u32,
    /// Bytes per entry.
    entry_size: u32,
    /// The array's CRC-32.
    entries_crc: u32,
}

impl Header {
    /// Bytes of the entry array.
    fn array_bytes(&self) -> u64 {
        u64::from(self.entries) * u64::from(self.entry_size)
    }
}

/// The little-endian u32 at `at` of `bytes`.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The little-endian u64 at `at` of `bytes`.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from(u32_at(bytes, at)) | u64::from(u32_at(bytes, at + 4)) << 32
}

/// The GUID at `at` of `bytes`.
fn guid_at(bytes: &[u8], at: usize) -> Guid {
    let mut guid = [0; 16];
    guid.copy_from_slice(&bytes[at..at + 16]);
    Guid(guid)
}

/// The header in `sector` (read from LBA `lba` of a disk of `disk_sectors` sectors of
/// `sector_size` bytes), or what is wrong with it.
fn header(
    sector: &[u8],
    lba: u64,
    sector_size: usize,
    disk_sectors: u64,
) -> Result<Header, String> {
    if sector.len() < HEADER_BYTES {
        return Err(format!("{sector_size}-byte sectors cannot hold a header"));
    }
    if sector[..8] != *b"EFI PART" {
        return Err(String::from("no \"EFI PART\" signature"));
    }
    let revision = u32_at(sector, 8);
    if revision >> 16 != 1 {
        return Err(format!(
            "revision {}.{} (1.x is read)",
            revision >> 16,
            revision & 0xFFFF
        ));
    }
    let size = u32_at(sector, 12) as usize;
    if !(HEADER_BYTES..=sector_size).contains(&size) {
        return Err(format!(
            "header size {size} (it is {HEADER_BYTES} to the sector's {sector_size} bytes)"
        ));
    }
    // The CRC covers the header with its own CRC field read as zero.
    let mut sealed = Crc32::new();
    sealed.update(&sector[..16]);
    sealed.update(&[0; 4]);
    sealed.update(&sector[20..size]);
    let (stored, computed) = (u32_at(sector, 16), sealed.finish());
    if stored != computed {
        return Err(format!(
            "header CRC32 {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let my_lba = u64_at(sector, 24);
    if my_lba != lba {
        return Err(format!("the header says it is at LBA {my_lba}"));
    }
    let header = Header {
        first_usable: u64_at(sector, 40),
        last_usable: u64_at(sector, 48),
        entries_lba: u64_at(sector, 72),
        entries: u32_at(sector, 80),
        entry_size: u32_at(sector, 84),
        entries_crc: u32_at(sector, 88),
    };
    // UEFI: 128 times a power of two (128, 256, 512, ...).
    if header.entry_size < 128 || !header.entry_size.is_power_of_two() {
        return Err(format!(
            "entry size {} (128 times a power of two)",
            header.entry_size
        ));
    }
    if header.array_bytes() > MAX_ENTRY_ARRAY {
        return Err(format!(
            "an entry array of {} entries of {} bytes (at most {MAX_ENTRY_ARRAY} bytes are read)",
            header.entries, header.entry_size
        ));
    }
    let array_sectors = header.array_bytes().div_ceil(sector_size as u64);
    check_usable(&header, array_sectors, disk_sectors)?;
    let (first, last) = (header.first_usable, header.last_usable);
    let array_start = header.entries_lba;
    let array_end = array_start
        .checked_add(array_sectors)
        .filter(|&end| end <= disk_sectors)
        .ok_or_else(|| {
            format!(
                "the entry array at LBA {array_start} runs past the disk's {disk_sectors} sectors"
            )
        })?;
    // Between the primary header (LBA 1) and the first usable sector, or between the
    // last usable sector and the backup header (the disk's last sector).
    let before_usable = array_start >= 2 && array_end <= first;
    let after_usable = array_start > last && array_end < disk_sectors;
    if !before_usable && !after_usable {
        return Err(format!(
            "the entry array at LBA {array_start} ({array_sectors} sectors) overlaps sector 0, a header or the usable sectors",
        ));
    }
    Ok(header)
}

/// Checks `header`'s usable sectors against the layout UEFI gives a disk of
/// `disk_sectors` sectors whose entry arrays take `array_sectors` each: the protective
/// MBR (LBA 0), the primary header (LBA 1) and its array before the first usable
/// sector; the backup array and the backup header (the last sector) after the last.
fn check_usable(header: &Header, array_sectors: u64, disk_sectors: u64) -> Result<(), String> {
    let (first, last) = (header.first_usable, header.last_usable);
    if first > last {
        return Err(format!(
            "the first usable LBA {first} is after the last {last}"
        ));
    }
    if last >= disk_sectors {
        return Err(format!(
            "the usable sectors end at LBA {last}, past the disk's {disk_sectors} sectors"
        ));
    }
    let lowest = 2 + array_sectors;
    if first < lowest {
        return Err(format!(
            "the first usable LBA {first} reaches over sector 0, the primary header or its \
             {array_sectors}-sector entry array (LBA {lowest} at the earliest)"
        ));
    }
    // The backup array and header take the last `array_sectors + 1` sectors (a disk too
    // small for both copies has no usable sector at all).
    let highest = disk_sectors.saturating_sub(2 + array_sectors);
    if last > highest {
        return Err(format!(
            "the last usable LBA {last} reaches over the backup's {array_sectors}-sector entry \
             array or header at the disk's end (LBA {highest} at the latest)"
        ));
    }
    Ok(())
}

/// Why one GPT copy (header and entry array) was not taken.
enum CopyFault {
    /// The copy is damaged (named, with its LBA).
    Corrupt(String),
    /// The device failed a read (its error).
    Unreadable(String),
}

/// The header at `lba` and its entry array (entry count times entry size bytes), both
/// checked against their CRCs; `Corrupt` names what is wrong with them.
fn read_copy(
    read: ReadSectors,
    sector_size: usize,
    disk_sectors: u64,
    lba: u64,
) -> Result<(Header, Vec<u8>), CopyFault> {
    let at = |why: &str| CopyFault::Corrupt(format!("LBA {lba}: {why}"));
    if lba >= disk_sectors {
        return Err(at(&format!("past the disk's {disk_sectors} sectors")));
    }
    let sector = read_sectors(read, sector_size, lba, 1).map_err(CopyFault::Unreadable)?;
    let header = header(&sector, lba, sector_size, disk_sectors).map_err(|why| at(&why))?;
    let bytes = header.array_bytes() as usize;
    let sectors = bytes.div_ceil(sector_size) as u32;
    let mut array = read_sectors(read, sector_size, header.entries_lba, sectors)
        .map_err(CopyFault::Unreadable)?;
    array.truncate(bytes);
    let (stored, computed) = (header.entries_crc, crc32(&array));
    if stored != computed {
        return Err(at(&format!(
            "entry array CRC32 {stored:#010x}, computed {computed:#010x}"
        )));
    }
    Ok((header, array))
}

/// The partitions of a disk whose sector 0 holds a protective MBR: from the primary GPT
/// (LBA 1), or from the backup (the last sector) when the primary header or its array
/// is bad or cannot be read, then with why the primary was passed over. A bad copy is one with a wrong
/// signature, revision, size, CRC, or LBA, usable sectors that reach over sector 0,
/// either header or room for either entry array, or an array that does not fit
/// between a header and the usable sectors; both bad is
/// `Corrupt` naming what failed in each. Used entries (a non-zero type GUID) in a
/// sector before the first usable one, past the last, ending before they start or
/// overlapping another are refused.
pub(crate) fn read(
    read: ReadSectors,
    sector_size: usize,
    disk_sectors: u64,
) -> Result<(Vec<Partition>, Option<String>), MbrError> {
    // A copy that cannot be read (a bad sector: the backup's reason to be) is passed over
    // like a damaged one; both unreadable is `Unreadable`.
    let passed_over = |error, which| match error {
        CopyFault::Corrupt(why) => Ok(format!("the {which} header at {why}")),
        CopyFault::Unreadable(why) => Err(format!("the {which} header or array: {why}")),
    };
    let primary = match read_copy(read, sector_size, disk_sectors, 1) {
        Ok((header, array)) => return Ok((entries(&header, &array)?, None)),
        Err(error) => passed_over(error, "primary"),
    };
    let why_primary = primary.as_ref().unwrap_or_else(|why| why).clone();
    let backup_lba = disk_sectors.saturating_sub(1);
    let backup = match read_copy(read, sector_size, disk_sectors, backup_lba) {
        Ok((header, array)) => return Ok((entries(&header, &array)?, Some(why_primary))),
        Err(error) => passed_over(error, "backup"),
    };
    match (primary, backup) {
        (Err(primary), Err(backup)) => Err(MbrError::Unreadable(format!("{primary}; {backup}"))),
        (primary, backup) => Err(MbrError::Corrupt(format!(
            "a protective MBR but no good GPT: {}; {}",
            primary.unwrap_or_else(|why| why),
            backup.unwrap_or_else(|why| why)
        ))),
    }
}

/// A used entry, as read.
struct Used {
    /// Its number, from 1 in array order.
    number: usize,
    /// Its fields.
    entry: Entry,
    /// Its first sector.
    first: u64,
    /// Its last sector.
    last: u64,
}

/// `Corrupt`: GPT entry `number` (named by `entry`'s name, if it has one) and `why`.
fn refuse(number: usize, entry: &Entry, why: &str) -> MbrError {
    let name = entry.name();
    let named = if name.is_empty() {
        String::new()
    } else {
        format!(" (\"{name}\")")
    };
    MbrError::Corrupt(format!("GPT entry {number}{named}: {why}"))
}

/// The used entries of `array`, checked against `header`'s usable sectors and each
/// other.
fn entries(header: &Header, array: &[u8]) -> Result<Vec<Partition>, MbrError> {
    let mut found: Vec<Used> = Vec::new();
    for (index, raw) in array.chunks_exact(header.entry_size as usize).enumerate() {
        let type_guid = guid_at(raw, 0);
        if type_guid == Guid::UNUSED {
            continue;
        }
        let mut name = [0u16; NAME_UNITS];
        for (unit, pair) in name.iter_mut().zip(raw[56..128].chunks_exact(2)) {
            *unit = u16::from_le_bytes([pair[0], pair[1]]);
        }
        let entry = Entry {
            type_guid,
            unique_guid: guid_at(raw, 16),
            attributes: u64_at(raw, 48),
            name,
        };
        let number = index + 1;
        let (first, last) = (u64_at(raw, 32), u64_at(raw, 40));
        if last < first {
            let why = format!("ends at LBA {last}, before it starts at LBA {first}");
            return Err(refuse(number, &entry, &why));
        }
        if first < header.first_usable || last > header.last_usable {
            let why = format!(
                "LBA {first} to {last} is outside the usable sectors (LBA {} to {})",
                header.first_usable, header.last_usable
            );
            return Err(refuse(number, &entry, &why));
        }
        found.push(Used {
            number,
            entry,
            first,
            last,
        });
    }
    // In order of their first sectors, no entry may reach the next one.
    let mut by_start: Vec<&Used> = found.iter().collect();
    by_start.sort_unstable_by_key(|used| (used.first, used.number));
    for pair in by_start.windows(2) {
        let (earlier, later) = (pair[0], pair[1]);
        if later.first <= earlier.last {
            // Named as MBR's are: the later entry in the table overlaps the earlier.
            let (this, other) = if later.number > earlier.number {
                (later, earlier)
            } else {
                (earlier, later)
            };
            let why = format!("overlaps entry {}", other.number);
            return Err(refuse(this.number, &this.entry, &why));
        }
    }
    Ok(found
        .into_iter()
        .map(|used| Partition {
            number: used.number,
            kind: Kind::Gpt(used.entry),
            first: used.first,
            sectors: used.last - used.first + 1,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::next_random;
    use crate::{SECTOR, TYPE_GPT_PROTECTIVE, Table, read_device_table, read_table, table};
    use alloc::vec;
    use rexo_api::DeviceError;
    use rexo_api::testing::MemoryDisk;

    /// Entries in the arrays written.
    const ENTRIES: u64 = 128;
    /// Sectors of an array of them.
    const ARRAY_SECTORS: u64 = ENTRIES * 128 / SECTOR as u64;
    /// The type of an EFI system partition (from the UEFI specification).
    const GUID_EFI_SYSTEM: Guid = Guid::new(
        0xC12A_7328,
        0xF81F,
        0x11D2,
        [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
    );

    /// A disk of `sectors` 512-byte sectors as tools write it: a protective MBR, the
    /// primary header at LBA 1 with its array at 2, the backup array just before the
    /// backup header in the last sector, and `entries` (type, first and last LBA,
    /// name) in the first entries of both arrays.
    fn gpt_disk(sectors: u64, entries: &[(Guid, u64, u64, &str)]) -> Vec<u8> {
        let mut disk = vec![0u8; sectors as usize * SECTOR];
        disk[..SECTOR].copy_from_slice(
            &table(&[(TYPE_GPT_PROTECTIVE, 1, (sectors - 1).min(0xFFFF_FFFF))]).unwrap(),
        );
        let mut array = vec![0u8; (ENTRIES * 128) as usize];
        for (i, &(type_guid, first, last, name)) in entries.iter().enumerate() {
            let raw = &mut array[i * 128..(i + 1) * 128];
            raw[..16].copy_from_slice(&type_guid.0);
            raw[16] = i as u8 + 1;
            raw[32..40].copy_from_slice(&first.to_le_bytes());
            raw[40..48].copy_from_slice(&last.to_le_bytes());
            for (at, unit) in name.encode_utf16().enumerate() {
                raw[56 + 2 * at..58 + 2 * at].copy_from_slice(&unit.to_le_bytes());
            }
        }
        let last = sectors - 1;
        for (lba, alternate, array_lba) in [(1, last, 2), (last, 1, last - ARRAY_SECTORS)] {
            let at = array_lba as usize * SECTOR;
            disk[at..at + array.len()].copy_from_slice(&array);
            let header = &mut disk[lba as usize * SECTOR..][..SECTOR];
            header[..8].copy_from_slice(b"EFI PART");
            header[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
            header[12..16].copy_from_slice(&92u32.to_le_bytes());
            header[24..32].copy_from_slice(&lba.to_le_bytes());
            header[32..40].copy_from_slice(&alternate.to_le_bytes());
            header[40..48].copy_from_slice(&(2 + ARRAY_SECTORS).to_le_bytes());
            header[48..56].copy_from_slice(&(last - ARRAY_SECTORS - 1).to_le_bytes());
            header[72..80].copy_from_slice(&array_lba.to_le_bytes());
            header[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
            header[84..88].copy_from_slice(&128u32.to_le_bytes());
            header[88..92].copy_from_slice(&crc32(&array).to_le_bytes());
            seal(header);
        }
        disk
    }

    /// Recomputes the CRC of the header in `sector`.
    fn seal(sector: &mut [u8]) {
        sector[16..20].fill(0);
        let crc = crc32(&sector[..92]);
        sector[16..20].copy_from_slice(&crc.to_le_bytes());
    }

    /// The header sector at `lba` of `disk`.
    fn header_at(disk: &mut [u8], lba: u64) -> &mut [u8] {
        &mut disk[lba as usize * SECTOR..][..SECTOR]
    }

    /// The table of `disk`, whose first `sectors` sectors are all the disk has.
    fn read_disk(disk: &[u8], sectors: u64) -> Result<Table, MbrError> {
        let present = &disk[..(sectors as usize * SECTOR).min(disk.len())];
        read_table(SECTOR as u32, sectors, &mut |lba, count| {
            let start = lba as usize * SECTOR;
            present
                .get(start..start + count as usize * SECTOR)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| format!("LBA {lba} is past the image"))
        })
    }

    /// Asserts that a disk of [`THREE`] whose two headers hold `value` at byte `at`
    /// (resealed) is refused, each copy for `why`.
    fn assert_both_headers_refused(at: usize, value: &[u8], why: &str) {
        let mut disk = gpt_disk(10_000, &THREE);
        for lba in [1, 9999] {
            let header = header_at(&mut disk, lba);
            header[at..at + value.len()].copy_from_slice(value);
            seal(header);
        }
        let refused = corrupt(read_disk(&disk, 10_000));
        assert!(
            refused.contains(&format!("LBA 1: {why}; "))
                && refused.ends_with(&format!("LBA 9999: {why}")),
            "{refused}"
        );
    }

    /// The `Corrupt` reason of `result`.
    fn corrupt(result: Result<Table, MbrError>) -> String {
        match result {
            Err(MbrError::Corrupt(why)) => why,
            other => panic!("not refused as corrupt: {other:?}"),
        }
    }

    /// Three partitions: BMFS, an EFI system partition and the Rexo file system.
    const THREE: [(Guid, u64, u64, &str); 3] = [
        (GUID_BMFS, 2048, 4095, "BMFS"),
        (GUID_EFI_SYSTEM, 4096, 6143, "EFI"),
        (GUID_REXO_FS, 6144, 8191, "Rexo FS"),
    ];

    #[test]
    fn rexo_type_guids_are_stored_mixed_endian() {
        // Python's uuid.UUID(...).bytes_le of each.
        assert_eq!(
            GUID_BMFS.0,
            [
                0xD2, 0x39, 0x39, 0xD5, 0x0C, 0x05, 0x81, 0x4E, 0x87, 0x3F, 0xFD, 0x5D, 0x37, 0x46,
                0xC4, 0xBE
            ]
        );
        assert_eq!(
            GUID_REXO_FS.0,
            [
                0x03, 0xC2, 0x0E, 0x45, 0xF1, 0xFC, 0xED, 0x4C, 0xA1, 0xAA, 0x19, 0x4F, 0x7F, 0x09,
                0x97, 0x0A
            ]
        );
    }

    #[test]
    fn a_gpt_with_rexo_partitions_is_found() {
        let disk = gpt_disk(10_000, &THREE);
        let table = read_disk(&disk, 10_000).unwrap();
        assert_eq!(table.from_backup, None);
        assert_eq!(table.partitions.len(), 3);
        let rexo = table.first_holding(TYPE_REXO_FS).unwrap();
        assert_eq!((rexo.number, rexo.first, rexo.sectors), (3, 6144, 2048));
        let Kind::Gpt(entry) = rexo.kind else {
            panic!("not a GPT partition: {rexo:?}");
        };
        assert_eq!(entry.name(), "Rexo FS");
        assert_eq!(entry.type_guid, GUID_REXO_FS);
        assert_eq!(entry.unique_guid.0[0], 3);
        let bmfs = table.first_holding(TYPE_BMFS).unwrap();
        assert_eq!((bmfs.number, bmfs.first, bmfs.sectors), (1, 2048, 2048));
        assert!(!table.partitions[1].holds(TYPE_BMFS));
        assert!(!table.partitions[1].holds(TYPE_GPT_PROTECTIVE));
    }

    #[test]
    fn a_bad_primary_header_or_array_falls_back_to_the_backup() {
        let good = read_disk(&gpt_disk(10_000, &THREE), 10_000).unwrap();
        let mut disk = gpt_disk(10_000, &THREE);
        header_at(&mut disk, 1)[60] ^= 1;
        let table = read_disk(&disk, 10_000).unwrap();
        assert_eq!(table.partitions, good.partitions);
        let why = table.from_backup.unwrap();
        assert!(
            why.starts_with("the primary header at LBA 1: header CRC32"),
            "{why}"
        );

        let mut disk = gpt_disk(10_000, &THREE);
        disk[2 * SECTOR + 40] ^= 1;
        let table = read_disk(&disk, 10_000).unwrap();
        assert_eq!(table.partitions, good.partitions);
        let why = table.from_backup.unwrap();
        assert!(why.contains("LBA 1: entry array CRC32"), "{why}");
    }

    #[test]
    fn both_copies_bad_is_a_clear_error() {
        let mut disk = gpt_disk(10_000, &THREE);
        header_at(&mut disk, 1)[60] ^= 1;
        disk[(10_000 - 1 - ARRAY_SECTORS) as usize * SECTOR] ^= 1;
        let why = corrupt(read_disk(&disk, 10_000));
        assert!(
            why.starts_with("a protective MBR but no good GPT: "),
            "{why}"
        );
        assert!(
            why.contains("the primary header at LBA 1: header CRC32"),
            "{why}"
        );
        assert!(
            why.contains("the backup header at LBA 9999: entry array CRC32"),
            "{why}"
        );
    }

    #[test]
    fn a_protective_mbr_without_a_gpt_is_a_clear_error() {
        let mut disk = vec![0u8; 100 * SECTOR];
        disk[..SECTOR].copy_from_slice(&table(&[(TYPE_GPT_PROTECTIVE, 1, 99)]).unwrap());
        assert_eq!(
            corrupt(read_disk(&disk, 100)),
            "a protective MBR but no good GPT: the primary header at LBA 1: no \"EFI PART\" \
             signature; the backup header at LBA 99: no \"EFI PART\" signature"
        );
    }

    #[test]
    fn overlapping_entries_are_refused() {
        let overlapping = [
            (GUID_BMFS, 2048, 4095, "BMFS"),
            (GUID_REXO_FS, 4095, 8191, "Rexo FS"),
        ];
        assert_eq!(
            corrupt(read_disk(&gpt_disk(10_000, &overlapping), 10_000)),
            "GPT entry 2 (\"Rexo FS\"): overlaps entry 1"
        );
        // The later entry is named whichever starts first; one inside another too.
        let inside = [
            (GUID_BMFS, 3000, 3001, "BMFS"),
            (GUID_REXO_FS, 2048, 8191, ""),
        ];
        assert_eq!(
            corrupt(read_disk(&gpt_disk(10_000, &inside), 10_000)),
            "GPT entry 2: overlaps entry 1"
        );
    }

    #[test]
    fn entries_outside_the_usable_sectors_or_inverted_are_refused() {
        // Usable: LBA 34 to 9966 on 10,000 sectors.
        for (first, last, why) in [
            (
                33,
                100,
                "LBA 33 to 100 is outside the usable sectors (LBA 34 to 9966)",
            ),
            (
                9000,
                9967,
                "LBA 9000 to 9967 is outside the usable sectors (LBA 34 to 9966)",
            ),
            (5000, 4999, "ends at LBA 4999, before it starts at LBA 5000"),
        ] {
            let disk = gpt_disk(10_000, &[THREE[0], (GUID_REXO_FS, first, last, "x")]);
            assert_eq!(
                corrupt(read_disk(&disk, 10_000)),
                format!("GPT entry 2 (\"x\"): {why}")
            );
        }
        // The last usable sector itself is usable.
        let disk = gpt_disk(10_000, &[(GUID_REXO_FS, 34, 9966, "all")]);
        assert_eq!(
            read_disk(&disk, 10_000).unwrap().partitions[0].sectors,
            9933
        );
    }

    #[test]
    fn a_disk_smaller_than_its_header_claims_is_refused() {
        let disk = gpt_disk(10_000, &THREE);
        let why = corrupt(read_disk(&disk, 1000));
        assert!(
            why.contains(
                "the primary header at LBA 1: the usable sectors end at LBA 9966, past the \
                 disk's 1000 sectors"
            ),
            "{why}"
        );
        assert!(
            why.contains("the backup header at LBA 999: no \"EFI PART\""),
            "{why}"
        );
        // Down to no room for a header at all, never a panic.
        for sectors in 0..40 {
            assert!(read_disk(&disk, sectors).is_err(), "{sectors} sectors");
        }
        // A device that gives less than asked for.
        let short = read_table(SECTOR as u32, 10_000, &mut |lba, _| {
            Ok(disk[lba as usize * SECTOR..][..100].to_vec())
        });
        assert_eq!(
            short,
            Err(MbrError::Unreadable(String::from(
                "100 bytes from LBA 0, not 512"
            )))
        );
    }

    #[test]
    fn headers_with_impossible_fields_are_refused_with_the_reason() {
        let cases: [(usize, u32, &str); 6] = [
            (8, 0x0002_0000, "revision 2.0 (1.x is read)"),
            (
                12,
                91,
                "header size 91 (it is 92 to the sector's 512 bytes)",
            ),
            (
                12,
                513,
                "header size 513 (it is 92 to the sector's 512 bytes)",
            ),
            (84, 100, "entry size 100 (128 times a power of two)"),
            (84, 384, "entry size 384 (128 times a power of two)"),
            (
                80,
                16_384,
                "an entry array of 16384 entries of 128 bytes (at most 1048576 bytes are read)",
            ),
        ];
        for (at, value, why) in cases {
            assert_both_headers_refused(at, &value.to_le_bytes(), why);
        }
        // A header claiming another LBA, and an array over the usable sectors.
        let mut disk = gpt_disk(10_000, &THREE);
        let header = header_at(&mut disk, 1);
        header[24..32].copy_from_slice(&2u64.to_le_bytes());
        seal(header);
        let why = read_disk(&disk, 10_000).unwrap().from_backup.unwrap();
        assert_eq!(
            why,
            "the primary header at LBA 1: the header says it is at LBA 2"
        );
        // No entries and the array at LBA 0: refused by name, not a subtraction below zero.
        let mut disk = gpt_disk(10_000, &THREE);
        let header = header_at(&mut disk, 1);
        header[72..80].copy_from_slice(&0u64.to_le_bytes());
        header[80..84].copy_from_slice(&0u32.to_le_bytes());
        seal(header);
        let why = read_disk(&disk, 10_000).unwrap().from_backup.unwrap();
        assert!(
            why.contains("the entry array at LBA 0 (0 sectors) overlaps"),
            "{why}"
        );
        let mut disk = gpt_disk(10_000, &THREE);
        let header = header_at(&mut disk, 1);
        header[72..80].copy_from_slice(&40u64.to_le_bytes());
        seal(header);
        let why = read_disk(&disk, 10_000).unwrap().from_backup.unwrap();
        assert!(
            why.contains("the entry array at LBA 40 (32 sectors) overlaps"),
            "{why}"
        );
    }

    #[test]
    fn usable_sectors_over_a_header_or_an_entry_array_are_refused() {
        // 10,000 sectors, arrays of 32: usable at most LBA 34 to 9966.
        let over_the_end = |last| {
            format!(
                "the last usable LBA {last} reaches over the backup's 32-sector entry array or \
                 header at the disk's end (LBA 9966 at the latest)"
            )
        };
        let over_the_start = |first| {
            format!(
                "the first usable LBA {first} reaches over sector 0, the primary header or its \
                 32-sector entry array (LBA 34 at the earliest)"
            )
        };
        let cases = [
            (48, 9967u64, over_the_end(9967)),
            (48, 9998, over_the_end(9998)),
            (48, 9999, over_the_end(9999)),
            (40, 33, over_the_start(33)),
            (40, 1, over_the_start(1)),
        ];
        for (at, value, why) in cases {
            assert_both_headers_refused(at, &value.to_le_bytes(), &why);
        }
        // The primary's array between the last usable sector and the backup header is
        // where it may be; one sector later it holds the backup header, at 1 the primary.
        let mut disk = gpt_disk(10_000, &THREE);
        let header = header_at(&mut disk, 1);
        header[72..80].copy_from_slice(&9967u64.to_le_bytes());
        seal(header);
        let table = read_disk(&disk, 10_000).unwrap();
        assert_eq!((table.partitions.len(), table.from_backup), (3, None));
        for array_lba in [9968, 1] {
            let mut disk = gpt_disk(10_000, &THREE);
            let header = header_at(&mut disk, 1);
            header[72..80].copy_from_slice(&u64::to_le_bytes(array_lba));
            seal(header);
            let why = read_disk(&disk, 10_000).unwrap().from_backup.unwrap();
            assert!(
                why.contains(&format!(
                    "the entry array at LBA {array_lba} (32 sectors) overlaps sector 0, a header"
                )),
                "{why}"
            );
        }
    }

    #[test]
    fn random_headers_and_entries_are_refused_or_read_never_a_panic() {
        let mut state = 0x0123_4567_89ab_cdefu64;
        let mut next = || next_random(&mut state);
        for round in 0..2_000 {
            let mut disk = gpt_disk(200, &[(GUID_REXO_FS, 40, 100, "r")]);
            // A few random bytes in the primary header (resealed) and its first entries.
            for _ in 0..1 + round % 4 {
                let at = (next() % 92) as usize;
                header_at(&mut disk, 1)[at] = next() as u8;
                let at = 2 * SECTOR + (next() % 512) as usize;
                disk[at] = next() as u8;
            }
            seal(header_at(&mut disk, 1));
            let sectors = 150 + next() % 60;
            if let Ok(table) = read_disk(&disk, sectors) {
                assert!(
                    table
                        .partitions
                        .iter()
                        .all(|p| p.first >= 1 && p.first + p.sectors <= sectors)
                );
            }
        }
    }

    #[test]
    fn flipped_bytes_of_a_whole_gpt_disk_are_refused_or_read_consistently() {
        let mut state = 0x0F11_77ED_0000_0001u64;
        let mut next = || next_random(&mut state);
        let base = gpt_disk(10_000, &THREE);
        let last = 9_999;
        // Sector 0, both headers and both arrays: where a table's bytes are.
        let places = [
            0,
            1,
            2,
            3,
            last,
            last - ARRAY_SECTORS,
            last - ARRAY_SECTORS + 1,
        ];
        let (mut read, mut refused) = (0, 0);
        for round in 0..1_500 {
            let mut disk = base.clone();
            for _ in 0..1 + next() % 3 {
                let sector = places[(next() % places.len() as u64) as usize];
                let at = sector as usize * SECTOR + (next() % SECTOR as u64) as usize;
                match next() % 3 {
                    0 => {
                        let edges = [0, 1, 33, 128, 9_999, 10_000, u64::from(u32::MAX), u64::MAX];
                        let value = edges[(next() % edges.len() as u64) as usize];
                        let at = at / 8 * 8;
                        disk[at..at + 8].copy_from_slice(&value.to_le_bytes());
                    }
                    _ => disk[at] ^= 1 << (next() % 8),
                }
            }
            // Most rounds reseal what changed, so that the checks behind the CRCs run.
            if next() % 4 != 0 {
                for (lba, array_lba) in [(1, 2), (last, last - ARRAY_SECTORS)] {
                    let at = array_lba as usize * SECTOR;
                    let crc = crc32(&disk[at..at + (ENTRIES * 128) as usize]);
                    header_at(&mut disk, lba)[88..92].copy_from_slice(&crc.to_le_bytes());
                    seal(header_at(&mut disk, lba));
                }
            }
            let sectors = if next() % 8 == 0 {
                5_000 + next() % 5_000
            } else {
                10_000
            };
            let Ok(table) = read_disk(&disk, sectors) else {
                refused += 1;
                continue;
            };
            read += 1;
            let header = if table.from_backup.is_some() {
                sectors - 1
            } else {
                1
            };
            let mut runs: Vec<(u64, u64)> = Vec::new();
            for p in &table.partitions {
                let end = p.first + p.sectors;
                assert!(
                    p.sectors > 0 && p.first >= 1 && end <= sectors,
                    "round {round}: {p:?}"
                );
                let protective = p.holds(TYPE_GPT_PROTECTIVE);
                if !protective && matches!(p.kind, Kind::Gpt(_)) {
                    assert!(!(p.first..end).contains(&header), "round {round}: {p:?}");
                }
                if !protective {
                    runs.push((p.first, end));
                }
            }
            runs.sort_unstable();
            assert!(
                runs.windows(2).all(|pair| pair[0].1 <= pair[1].0),
                "round {round}"
            );
        }
        assert!(read > 50 && refused > 50, "{read} read, {refused} refused");
    }

    #[test]
    fn a_device_is_read_in_requests_it_takes() {
        // Requests of at most 5 sectors, each finished on the next poll.
        let mut device = MemoryDisk::new(gpt_disk(10_000, &THREE));
        device.max_sectors = 5;
        let table = read_device_table(&mut device).unwrap();
        assert_eq!(table.first_holding(TYPE_REXO_FS).unwrap().first, 6144);
        // Sector 0, the header, then the 32-sector array in requests of 5.
        assert_eq!(device.request_sizes(), [1, 1, 5, 5, 5, 5, 5, 5, 2]);
        // A bad sector in the primary's array: the backup is read, and says why.
        device.failing_reads = 20..21;
        let table = read_device_table(&mut device).unwrap();
        assert_eq!(table.first_holding(TYPE_REXO_FS).unwrap().first, 6144);
        let why = table.from_backup.unwrap();
        assert!(why.starts_with("the primary header or array: "), "{why}");
        // Both copies unreadable: the device's errors, each named.
        device.failing_reads = 20..u64::MAX;
        let status = DeviceError::Status {
            what: "read",
            status: 1,
        };
        assert_eq!(
            read_device_table(&mut device),
            Err(MbrError::Unreadable(format!(
                "the primary header or array: {status}; the backup header or array: {status}"
            )))
        );
    }
}
