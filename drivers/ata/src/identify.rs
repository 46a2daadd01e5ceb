//! Decoding IDENTIFY DEVICE data (ACS-3 7.12.7, table 45): 256 little-endian words.

use alloc::format;
use alloc::string::String;

use rexo_api::DeviceError;

/// Bytes of IDENTIFY DEVICE data.
pub const IDENTIFY_BYTES: usize = 512;

/// Words 27..=46: the model number, 40 ASCII characters, each word's high byte first.
const MODEL_WORDS: core::ops::Range<usize> = 27..47;
/// Word 49 (capabilities): bit 8 DMA supported, bit 9 LBA supported.
const CAPABILITIES: usize = 49;
/// Word 49 bit 8: DMA supported.
const CAPABILITY_DMA: u16 = 1 << 8;
/// Word 49 bit 9: LBA supported.
const CAPABILITY_LBA: u16 = 1 << 9;
/// Word 53: which optional words are valid.
const VALID_WORDS: usize = 53;
/// Word 53 bit 2: word 88 is valid.
const VALID_WORD_88: u16 = 1 << 2;
/// Word 63 (multiword DMA): bits 10:8 the mode selected, bits 2:0 those supported.
const MULTIWORD_DMA: usize = 63;
/// Word 63 bits 10:8: a multiword DMA mode (2, 1 or 0) is selected.
const MULTIWORD_DMA_SELECTED: u16 = 0x0700;
/// Word 88 (Ultra DMA): bits 14:8 the mode selected, bits 6:0 those supported.
const ULTRA_DMA: usize = 88;
/// Word 88 bits 14:8: an Ultra DMA mode (6 to 0) is selected.
const ULTRA_DMA_SELECTED: u16 = 0x7F00;
/// Words 60..=61: sectors addressable by 28-bit commands.
const SECTORS_28: usize = 60;
/// Word 75 bits 4:0: the deepest NCQ queue, minus one.
const QUEUE_DEPTH: usize = 75;
/// Word 76 (Serial ATA capabilities): bit 8 native command queuing.
const SATA_CAPABILITIES: usize = 76;
/// Word 76 bit 8: NCQ supported.
const SATA_NCQ: u16 = 1 << 8;
/// Word 83 (command sets supported): bit 10 the 48-bit address feature set.
const COMMAND_SETS: usize = 83;
/// Word 83 bit 10: 48-bit addressing.
const COMMAND_SET_LBA48: u16 = 1 << 10;
/// Words 100..=103: sectors addressable by 48-bit commands.
const SECTORS_48: usize = 100;
/// Word 106 (physical/logical sector size): bit 12 the logical sector is longer than
/// 256 words, its length then in words 117..=118.
const SECTOR_SIZE: usize = 106;
/// Word 106 bit 12: logical sectors longer than 512 bytes.
const SECTOR_SIZE_LONG: u16 = 1 << 12;
/// Words 117..=118: words per logical sector (when word 106 bit 12 says so).
const LOGICAL_SECTOR_WORDS: usize = 117;

/// The most sectors the 28-bit commands reach: ATA caps words 60..=61 at 0FFF_FFFFh, so
/// their highest address is 0FFF_FFFEh (0FFF_FFFFh there means "see words 100..=103").
const LBA28_LIMIT: u64 = 0x0FFF_FFFF;
/// The most sectors the 48-bit commands reach: ATA caps words 100..=103 at
/// 0000_FFFF_FFFF_FFFFh (the 48-bit address feature set allows capacities up to
/// 2^48 - 1 sectors), so their highest address is FFFF_FFFF_FFFEh.
const LBA48_LIMIT: u64 = (1 << 48) - 1;

/// Bytes per sector this code drives (the only size both transports here move).
pub const SECTOR_BYTES: u32 = 512;

/// What IDENTIFY DEVICE says of a disk, as far as the drivers use it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The model string, trimmed.
    pub model: String,
    /// The sectors the commands can address: the count the disk claims (words
    /// 100..=103 with the 48-bit commands, else 60..=61) cut to 2^48 - 1 (or to
    /// 0FFF_FFFFh without the 48-bit commands), the most ATA lets those words claim,
    /// so a request's LBA is never cut short to another sector's nor past the highest
    /// address ATA gives a sector.
    pub sectors: u64,
    /// The count the disk claims when it is past what the commands address (`sectors`
    /// then holds the cut count): the caller warns, naming the disk
    /// ([`capacity_warning`](Self::capacity_warning)).
    pub claimed_past_reach: Option<u64>,
    /// Whether the 48-bit commands (the EXT forms) are supported.
    pub lba48: bool,
    /// Whether the disk takes DMA transfers as it is set up: DMA supported (word 49
    /// bit 8) and a multiword DMA mode (word 63 bits 10:8) or an Ultra DMA mode (word 88
    /// bits 14:8, when word 53 bit 2 says word 88 is valid) selected. Nothing here
    /// selects one (SET FEATURES); firmware or the drive's default did, or the disk
    /// moves data by PIO.
    pub dma: bool,
    /// The NCQ queue depth, when native command queuing is supported.
    pub ncq_depth: Option<u32>,
}

/// Word `index` of `data`.
fn word(data: &[u8], index: usize) -> u16 {
    u16::from_le_bytes([data[2 * index], data[2 * index + 1]])
}

/// Whether a word with the "valid" signature of words 76..=93 and 106 (bit 15 clear,
/// bit 14 set for 83/106; neither 0 nor 0xFFFF for 76) carries information.
fn signed_valid(value: u16) -> bool {
    value & 0xC000 == 0x4000
}

/// The model string of words 27..=46, trailing blanks removed; bytes outside printable
/// ASCII become `?`.
pub fn model(data: &[u8]) -> String {
    let mut model = String::new();
    for index in MODEL_WORDS {
        for byte in word(data, index).to_be_bytes() {
            model.push(if byte.is_ascii_graphic() || byte == b' ' {
                char::from(byte)
            } else {
                '?'
            });
        }
    }
    let trimmed = model.trim_end_matches([' ', '?']).len();
    model.truncate(trimmed);
    model
}

impl Identity {
    /// Decodes the 512 bytes of IDENTIFY DEVICE data in `data`; refuses disks this code
    /// cannot drive (no LBA, sectors other than 512 bytes, no sectors). A capacity
    /// claimed past what the commands address is cut to it, the claim kept in
    /// [`claimed_past_reach`](Self::claimed_past_reach) for the caller's warning.
    pub fn parse(data: &[u8]) -> Result<Self, DeviceError> {
        if data.len() < IDENTIFY_BYTES {
            return Err(DeviceError::Unsupported("512 bytes of IDENTIFY data"));
        }
        let capabilities = word(data, CAPABILITIES);
        if capabilities & CAPABILITY_LBA == 0 {
            return Err(DeviceError::Unsupported("LBA addressing"));
        }
        let sector_size = word(data, SECTOR_SIZE);
        if signed_valid(sector_size) && sector_size & SECTOR_SIZE_LONG != 0 {
            let words = u32::from(word(data, LOGICAL_SECTOR_WORDS))
                | u32::from(word(data, LOGICAL_SECTOR_WORDS + 1)) << 16;
            // Compared in words: the device's count doubled could wrap (to 512, even).
            if words != SECTOR_BYTES / 2 {
                return Err(DeviceError::Unsupported("512-byte logical sectors"));
            }
        }
        let command_sets = word(data, COMMAND_SETS);
        let lba48 = signed_valid(command_sets) && command_sets & COMMAND_SET_LBA48 != 0;
        let (claimed, limit) = if lba48 {
            let claimed = (0..4).fold(0u64, |sum, i| {
                sum | u64::from(word(data, SECTORS_48 + i)) << (16 * i)
            });
            (claimed, LBA48_LIMIT)
        } else {
            let claimed =
                u64::from(word(data, SECTORS_28)) | u64::from(word(data, SECTORS_28 + 1)) << 16;
            (claimed, LBA28_LIMIT)
        };
        if claimed == 0 {
            return Err(DeviceError::Unsupported("a nonzero capacity"));
        }
        let sectors = claimed.min(limit);
        let dma_mode = word(data, MULTIWORD_DMA) & MULTIWORD_DMA_SELECTED != 0
            || (word(data, VALID_WORDS) & VALID_WORD_88 != 0
                && word(data, ULTRA_DMA) & ULTRA_DMA_SELECTED != 0);
        let sata = word(data, SATA_CAPABILITIES);
        let ncq_depth = (sata != 0 && sata != 0xFFFF && sata & SATA_NCQ != 0)
            .then(|| u32::from(word(data, QUEUE_DEPTH) & 0x1F) + 1);
        Ok(Self {
            model: model(data),
            sectors,
            claimed_past_reach: (claimed > limit).then_some(claimed),
            lba48,
            dma: capabilities & CAPABILITY_DMA != 0 && dma_mode,
            ncq_depth,
        })
    }

    /// The warning for a disk whose claimed capacity was cut to what the commands
    /// address, for its driver to log after the disk's name; `None` when none was.
    pub fn capacity_warning(&self) -> Option<String> {
        let bits = if self.lba48 { 48 } else { 28 };
        self.claimed_past_reach.map(|claimed| {
            format!(
                "IDENTIFY DEVICE claims {claimed} sectors; {bits}-bit addresses reach the \
                 first {}, the rest is not used",
                self.sectors
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IDENTIFY data with `words` set.
    fn data(words: &[(usize, u16)]) -> [u8; IDENTIFY_BYTES] {
        let mut data = [0; IDENTIFY_BYTES];
        for &(index, value) in words {
            data[2 * index..2 * index + 2].copy_from_slice(&value.to_le_bytes());
        }
        data
    }

    /// Puts `text` in the model words, byte-swapped as the device sends it.
    fn with_model(mut data: [u8; IDENTIFY_BYTES], text: &str) -> [u8; IDENTIFY_BYTES] {
        let mut padded = [b' '; 40];
        padded[..text.len()].copy_from_slice(text.as_bytes());
        for (i, pair) in padded.chunks(2).enumerate() {
            data[2 * (27 + i)] = pair[1];
            data[2 * (27 + i) + 1] = pair[0];
        }
        data
    }

    #[test]
    fn a_qemu_like_disk_decodes() {
        // QEMU 7.2's words 53, 63 and 88: multiword DMA modes 0-2 supported, none
        // selected; Ultra DMA modes 0-5 supported, mode 5 selected.
        let raw = data(&[
            (49, CAPABILITY_LBA | CAPABILITY_DMA),
            (53, 0x0007),
            (60, 0x4000),
            (61, 0),
            (63, 0x0007),
            (75, 31),
            (76, SATA_NCQ | 0x6),
            (83, 0x4000 | COMMAND_SET_LBA48),
            (88, 0x203F),
            (100, 0x0000),
            (101, 0x0010),
            (106, 0x4000),
        ]);
        let identity = Identity::parse(&with_model(raw, "QEMU HARDDISK")).unwrap();
        assert_eq!(identity.model, "QEMU HARDDISK");
        assert_eq!(identity.sectors, 0x10_0000);
        assert!(identity.lba48 && identity.dma);
        assert_eq!(identity.ncq_depth, Some(32));
    }

    #[test]
    fn without_lba48_the_28_bit_count_is_used() {
        let raw = data(&[(49, CAPABILITY_LBA), (60, 0x1234), (61, 0x5), (83, 0)]);
        let identity = Identity::parse(&raw).unwrap();
        assert_eq!(identity.sectors, 0x5_1234);
        assert!(!identity.lba48 && !identity.dma);
        assert_eq!(identity.ncq_depth, None);
    }

    #[test]
    fn dma_needs_a_dma_mode_selected() {
        let dma = |words: &[(usize, u16)]| {
            let mut raw = data(&[(49, CAPABILITY_LBA | CAPABILITY_DMA), (60, 8)]);
            for &(index, value) in words {
                raw[2 * index..2 * index + 2].copy_from_slice(&value.to_le_bytes());
            }
            Identity::parse(&raw).unwrap().dma
        };
        assert!(!dma(&[]), "no mode selected");
        assert!(
            !dma(&[(53, 0x0007), (63, 0x0007), (88, 0x003F)]),
            "modes supported, none selected"
        );
        assert!(dma(&[(63, 0x0407)]), "multiword DMA mode 2");
        assert!(dma(&[(53, 0x0007), (88, 0x203F)]), "Ultra DMA mode 5");
        assert!(dma(&[(53, 0x0007), (88, 0x407F)]), "Ultra DMA mode 6");
        assert!(
            !dma(&[(53, 0x0003), (88, 0x203F)]),
            "word 88 not valid (word 53 bit 2 clear)"
        );
        let no_dma = data(&[(49, CAPABILITY_LBA), (60, 8), (63, 0x0407)]);
        assert!(
            !Identity::parse(&no_dma).unwrap().dma,
            "a mode selected without DMA supported"
        );
    }

    #[test]
    fn a_capacity_past_what_the_commands_address_is_cut_to_it() {
        // Words 100..=103 all ones: cut to 2^48 - 1, the most ATA lets them claim (the
        // highest 48-bit address is FFFF_FFFF_FFFEh), as 60..=61 are cut to 0FFF_FFFFh.
        let mut words = [(49, CAPABILITY_LBA), (83, 0x4000 | COMMAND_SET_LBA48)].to_vec();
        words.extend((100..104).map(|index| (index, 0xFFFF)));
        let identity = Identity::parse(&data(&words)).unwrap();
        assert_eq!(identity.sectors, (1 << 48) - 1);
        assert_eq!(identity.claimed_past_reach, Some(u64::MAX));
        assert_eq!(
            identity.capacity_warning().as_deref(),
            Some(
                "IDENTIFY DEVICE claims 18446744073709551615 sectors; 48-bit addresses reach \
                 the first 281474976710655, the rest is not used"
            )
        );
        words.truncate(2);
        words.extend([(103, 0x0001)]);
        let identity = Identity::parse(&data(&words)).unwrap();
        assert_eq!(
            (identity.sectors, identity.claimed_past_reach),
            ((1 << 48) - 1, Some(1 << 48)),
            "2^48 is one past the cap"
        );
        words.truncate(2);
        words.extend([(100, 0xFFFF), (101, 0xFFFF), (102, 0xFFFF)]);
        let identity = Identity::parse(&data(&words)).unwrap();
        assert_eq!(
            identity.sectors,
            (1 << 48) - 1,
            "the cap itself is a capacity ATA allows"
        );
        assert_eq!(
            (identity.claimed_past_reach, identity.capacity_warning()),
            (None, None)
        );
        // Without the 48-bit commands, words 60..=61 past 0FFF_FFFFh, the most ATA lets
        // them claim (the highest 28-bit address is 0FFF_FFFEh; words 100..=103 unused).
        let raw = data(&[(49, CAPABILITY_LBA), (60, 0xFFFF), (61, 0xFFFF), (100, 1)]);
        let identity = Identity::parse(&raw).unwrap();
        assert!(!identity.lba48);
        assert_eq!(identity.sectors, 0x0FFF_FFFF);
        assert_eq!(identity.claimed_past_reach, Some(0xFFFF_FFFF));
        assert!(identity.capacity_warning().unwrap().contains("28-bit"));
        let raw = data(&[(49, CAPABILITY_LBA), (60, 0x0000), (61, 0x1000)]);
        let identity = Identity::parse(&raw).unwrap();
        assert_eq!(identity.sectors, 0x0FFF_FFFF, "2^28 is one past the cap");
        assert_eq!(identity.claimed_past_reach, Some(1 << 28));
        let raw = data(&[(49, CAPABILITY_LBA), (60, 0xFFFF), (61, 0x0FFF)]);
        let identity = Identity::parse(&raw).unwrap();
        assert_eq!(
            (identity.sectors, identity.claimed_past_reach),
            (0x0FFF_FFFF, None),
            "the cap itself is a capacity ATA allows"
        );
    }

    #[test]
    fn unusable_disks_are_refused() {
        assert!(Identity::parse(&data(&[(60, 8)])).is_err(), "no LBA");
        assert!(
            Identity::parse(&data(&[(49, CAPABILITY_LBA)])).is_err(),
            "no sectors"
        );
        let big = data(&[
            (49, CAPABILITY_LBA),
            (60, 8),
            (106, 0x4000 | SECTOR_SIZE_LONG),
            (117, 2048),
        ]);
        assert!(Identity::parse(&big).is_err(), "4 KiB sectors");
        // 0x8000_0100 words: doubled in 32 bits that wraps to 512 bytes.
        let wrapping = data(&[
            (49, CAPABILITY_LBA),
            (60, 8),
            (106, 0x4000 | SECTOR_SIZE_LONG),
            (117, 0x0100),
            (118, 0x8000),
        ]);
        assert_eq!(
            Identity::parse(&wrapping),
            Err(DeviceError::Unsupported("512-byte logical sectors"))
        );
        assert!(Identity::parse(&[0; 100]).is_err());
    }

    #[test]
    fn model_strings_are_unswapped_and_trimmed() {
        let raw = with_model([0; IDENTIFY_BYTES], "ABCDE");
        assert_eq!(model(&raw), "ABCDE");
    }
}
