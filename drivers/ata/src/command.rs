//! The ATA command set as both transports carry it (the IDE task file here, AHCI's
//! Register FIS in `rexo-ahci`): opcodes, status bits, one command's task-file values
//! and the NCQ Command Error log's page (ATA8-ACS; ATA/ATAPI-6 for the 48-bit "EXT"
//! forms).

use rexo_api::DeviceError;

use crate::shutdown::Step;

/// IDENTIFY DEVICE: 512 bytes describing an ATA disk (ACS 7.16).
pub const IDENTIFY_DEVICE: u8 = 0xEC;
/// READ SECTORS (PIO, 28-bit LBA).
pub const READ_SECTORS: u8 = 0x20;
/// READ SECTORS EXT (PIO, 48-bit LBA).
pub const READ_SECTORS_EXT: u8 = 0x24;
/// WRITE SECTORS (PIO, 28-bit LBA).
pub const WRITE_SECTORS: u8 = 0x30;
/// WRITE SECTORS EXT (PIO, 48-bit LBA).
pub const WRITE_SECTORS_EXT: u8 = 0x34;
/// READ DMA (28-bit LBA).
pub const READ_DMA: u8 = 0xC8;
/// READ DMA EXT (48-bit LBA).
pub const READ_DMA_EXT: u8 = 0x25;
/// WRITE DMA (28-bit LBA).
pub const WRITE_DMA: u8 = 0xCA;
/// WRITE DMA EXT (48-bit LBA).
pub const WRITE_DMA_EXT: u8 = 0x35;
/// READ FPDMA QUEUED (native command queuing, SATA).
pub const READ_FPDMA_QUEUED: u8 = 0x60;
/// WRITE FPDMA QUEUED (native command queuing, SATA).
pub const WRITE_FPDMA_QUEUED: u8 = 0x61;
/// FLUSH CACHE (28-bit command set).
pub const FLUSH_CACHE: u8 = 0xE7;
/// FLUSH CACHE EXT (48-bit command set).
pub const FLUSH_CACHE_EXT: u8 = 0xEA;
/// READ LOG EXT: pages of a General Purpose log, by PIO (ATA8-ACS, "READ LOG EXT - 2Fh").
pub const READ_LOG_EXT: u8 = 0x2F;
/// The NCQ Command Error log (log address 10h, one page): after a queued command fails,
/// the device names it there, and reading the page ends the error condition in which it
/// aborts every other command.
pub const NCQ_COMMAND_ERROR_LOG: u8 = 0x10;
/// STANDBY IMMEDIATE: the drive goes to its Standby mode at once (a spinning disk parks
/// its heads and spins down), no data; what a host sends before the power goes, after a
/// FLUSH CACHE (EXT).
pub const STANDBY_IMMEDIATE: u8 = 0xE0;

/// Status register: the device is busy (no other bit is valid).
pub const STATUS_BSY: u8 = 0x80;
/// Status register: the device is ready for commands.
pub const STATUS_DRDY: u8 = 0x40;
/// Status register: device fault.
pub const STATUS_DF: u8 = 0x20;
/// Status register: the device wants to move a block of PIO data.
pub const STATUS_DRQ: u8 = 0x08;
/// Status register: the command failed; the error register says why.
pub const STATUS_ERR: u8 = 0x01;

/// Device register bit 6: the LBA fields hold a logical block address.
pub const DEVICE_LBA: u8 = 0x40;

/// The largest sector count of the 28-bit commands (a count of 0 means 256).
const MAX_SECTORS_28: u32 = 256;
/// Which way data moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the disk to memory.
    Read,
    /// From memory to the disk.
    Write,
}

/// How a data command moves its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The host moves every word through the data port.
    Pio,
    /// The controller moves the data by DMA.
    Dma,
}

/// How long a read or a write may run before the driver resets the disk.
pub const TRANSFER_TIMEOUT_MS: u64 = 10_000;
/// How long FLUSH CACHE (EXT) or STANDBY IMMEDIATE may run before the driver resets the
/// disk: the whole write cache may go to the medium first (ATA8-ACS: a flush "may take
/// longer than 30 s", BSY set until the data is written or an error ends it; a busy disk
/// or one retrying a marginal sector gets there), as Linux gives a flush 30 s and more.
pub const WRITE_OUT_TIMEOUT_MS: u64 = 60_000;

/// What a disk request does, as both transports track it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Moves sectors.
    Transfer(Direction),
    /// Flushes the write cache.
    Flush,
    /// Puts the disk in standby (at power-off).
    Standby,
}

impl Operation {
    /// How long its command may run before the driver resets the disk:
    /// [`TRANSFER_TIMEOUT_MS`] or [`WRITE_OUT_TIMEOUT_MS`].
    pub fn timeout_ms(self) -> u64 {
        match self {
            Self::Transfer(_) => TRANSFER_TIMEOUT_MS,
            Self::Flush | Self::Standby => WRITE_OUT_TIMEOUT_MS,
        }
    }
}

impl From<Step> for Operation {
    fn from(step: Step) -> Self {
        match step {
            Step::Flush => Self::Flush,
            Step::Standby => Self::Standby,
        }
    }
}

/// One command's task-file values; the transport adds the drive select bit (IDE) or
/// the port multiplier port (AHCI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// The command opcode.
    pub opcode: u8,
    /// The features field (16 bits in the 48-bit forms).
    pub features: u16,
    /// The count field (16 bits in the 48-bit forms).
    pub count: u16,
    /// The LBA field (48 bits; 28 in the older forms, whose top 4 go in `device`).
    pub lba: u64,
    /// The device field without the drive select bit.
    pub device: u8,
    /// Whether the 48-bit "previous" (high-order) register contents matter.
    pub extended: bool,
}

impl Command {
    /// IDENTIFY DEVICE.
    pub fn identify() -> Self {
        Self {
            opcode: IDENTIFY_DEVICE,
            features: 0,
            count: 0,
            lba: 0,
            device: 0,
            extended: false,
        }
    }

    /// FLUSH CACHE (EXT when the disk has the 48-bit command set).
    pub fn flush(lba48: bool) -> Self {
        Self {
            opcode: if lba48 { FLUSH_CACHE_EXT } else { FLUSH_CACHE },
            features: 0,
            count: 0,
            lba: 0,
            device: DEVICE_LBA,
            extended: lba48,
        }
    }

    /// STANDBY IMMEDIATE.
    pub fn standby_immediate() -> Self {
        Self {
            opcode: STANDBY_IMMEDIATE,
            features: 0,
            count: 0,
            lba: 0,
            device: 0,
            extended: false,
        }
    }

    /// READ LOG EXT of the first `pages` pages (512 bytes each) of the General Purpose log
    /// `log` (the log address in LBA bits 7:0, the page count in the count field).
    pub fn read_log(log: u8, pages: u16) -> Self {
        Self {
            opcode: READ_LOG_EXT,
            features: 0,
            count: pages,
            lba: u64::from(log),
            device: 0,
            extended: true,
        }
    }

    /// A non-queued read or write of `sectors` (1..=256 without `lba48`, 1..=65535 with)
    /// at `lba`; the caller checked the range against the disk.
    pub fn transfer(
        direction: Direction,
        protocol: Protocol,
        lba48: bool,
        lba: u64,
        sectors: u16,
    ) -> Self {
        let opcode = match (direction, protocol, lba48) {
            (Direction::Read, Protocol::Pio, false) => READ_SECTORS,
            (Direction::Read, Protocol::Pio, true) => READ_SECTORS_EXT,
            (Direction::Read, Protocol::Dma, false) => READ_DMA,
            (Direction::Read, Protocol::Dma, true) => READ_DMA_EXT,
            (Direction::Write, Protocol::Pio, false) => WRITE_SECTORS,
            (Direction::Write, Protocol::Pio, true) => WRITE_SECTORS_EXT,
            (Direction::Write, Protocol::Dma, false) => WRITE_DMA,
            (Direction::Write, Protocol::Dma, true) => WRITE_DMA_EXT,
        };
        if lba48 {
            Self {
                opcode,
                features: 0,
                count: sectors,
                lba: lba & 0xFFFF_FFFF_FFFF,
                device: DEVICE_LBA,
                extended: true,
            }
        } else {
            // ATA-6 7.x: LBA bits 27:24 go in device bits 3:0; a count of 256 is 0.
            Self {
                opcode,
                features: 0,
                count: sectors & 0xFF,
                lba: lba & 0xFF_FFFF,
                device: DEVICE_LBA | ((lba >> 24) & 0xF) as u8,
                extended: false,
            }
        }
    }

    /// READ/WRITE FPDMA QUEUED of `sectors` at `lba` with queue tag `tag` (SATA 3.x
    /// 13.6: the sector count goes in the features field, the tag in count bits 7:3).
    pub fn queued(direction: Direction, lba: u64, sectors: u16, tag: u8) -> Self {
        Self {
            opcode: match direction {
                Direction::Read => READ_FPDMA_QUEUED,
                Direction::Write => WRITE_FPDMA_QUEUED,
            },
            features: sectors,
            count: u16::from(tag & 0x1F) << 3,
            lba: lba & 0xFFFF_FFFF_FFFF,
            device: DEVICE_LBA,
            extended: true,
        }
    }
}

/// The most sectors one command may move: `limit` (the driver's buffer), capped by the
/// 28-bit count when the disk lacks the 48-bit command set.
pub fn max_sectors(lba48: bool, limit: u32) -> u32 {
    if lba48 {
        limit.min(u32::from(u16::MAX))
    } else {
        limit.min(MAX_SECTORS_28)
    }
}

/// Checks a request of `sectors` at `lba` against a disk of `capacity` sectors and the
/// per-request limit `max`, before anything touches the device.
pub fn check_range(lba: u64, sectors: u32, capacity: u64, max: u32) -> Result<(), DeviceError> {
    let past_end = lba
        .checked_add(u64::from(sectors))
        .is_none_or(|end| end > capacity);
    if sectors == 0 || sectors > max || past_end {
        return Err(DeviceError::OutOfRange {
            lba,
            sectors: u64::from(sectors),
            capacity,
        });
    }
    Ok(())
}

/// The error value reported for a failed command: the error register in bits 15:8,
/// the status register in bits 7:0 (as AHCI's PxTFD lays them out).
pub fn error_value(status: u8, error: u8) -> u32 {
    u32::from(error) << 8 | u32::from(status)
}

/// Bytes of one page of a General Purpose log.
pub const LOG_PAGE_BYTES: usize = 512;
/// NCQ Command Error log byte 0 bit 7, NQ: the error was not for a queued command.
const LOG_NOT_QUEUED: u8 = 0x80;
/// NCQ Command Error log byte 0 bits 4:0: the tag of the queued command that failed.
const LOG_TAG_MASK: u8 = 0x1F;

/// The queued command the device refused, as its NCQ Command Error log names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedCommand {
    /// Its NCQ tag.
    pub tag: u8,
    /// The status register as the device reported the error.
    pub status: u8,
    /// The error register.
    pub error: u8,
}

impl RefusedCommand {
    /// The command that `page` (the log's one page, [`NCQ_COMMAND_ERROR_LOG`]) names:
    /// byte 0 its tag (bits 4:0) and NQ (bit 7), byte 2 the status, byte 3 the error.
    /// `None` when the page is not [`LOG_PAGE_BYTES`] long, fails its checksum (byte 511
    /// makes the 512 bytes sum to 0), or has NQ set (the error was not a queued
    /// command's, so the tag names none).
    pub fn from_log(page: &[u8]) -> Option<Self> {
        let sum = page.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
        if page.len() != LOG_PAGE_BYTES || sum != 0 || page[0] & LOG_NOT_QUEUED != 0 {
            return None;
        }
        Some(Self {
            tag: page[0] & LOG_TAG_MASK,
            status: page[2],
            error: page[3],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lba28_transfers_put_the_top_bits_in_the_device_field() {
        let c = Command::transfer(Direction::Read, Protocol::Dma, false, 0x0ABC_DEF1, 256);
        assert_eq!(c.opcode, READ_DMA);
        assert_eq!(c.count, 0, "256 sectors is a count of 0");
        assert_eq!(c.lba, 0xBC_DEF1);
        assert_eq!(c.device, DEVICE_LBA | 0xA);
        assert!(!c.extended);
    }

    #[test]
    fn lba48_transfers_pick_the_ext_opcodes() {
        let c = Command::transfer(Direction::Write, Protocol::Pio, true, 0x0012_3456_789A, 128);
        assert_eq!(
            (c.opcode, c.count, c.lba),
            (WRITE_SECTORS_EXT, 128, 0x0012_3456_789A)
        );
        assert_eq!(c.device, DEVICE_LBA);
        assert!(c.extended);
        let c = Command::transfer(Direction::Read, Protocol::Dma, true, 7, 1);
        assert_eq!(c.opcode, READ_DMA_EXT);
    }

    #[test]
    fn queued_commands_carry_count_in_features_and_tag_in_count() {
        let c = Command::queued(Direction::Write, 0x100, 64, 31);
        assert_eq!(c.opcode, WRITE_FPDMA_QUEUED);
        assert_eq!(c.features, 64);
        assert_eq!(c.count, 31 << 3);
        assert_eq!(c.device, DEVICE_LBA);
    }

    #[test]
    fn read_log_names_the_log_in_the_lba_and_the_pages_in_the_count() {
        let c = Command::read_log(NCQ_COMMAND_ERROR_LOG, 1);
        assert_eq!((c.opcode, c.lba, c.count), (READ_LOG_EXT, 0x10, 1));
        assert!(c.extended);
    }

    /// An NCQ Command Error log page with byte 0 `first`, status 0x41 and error 0x04
    /// (ABRT), its checksum set.
    fn error_log(first: u8) -> Vec<u8> {
        let mut page = alloc::vec![0; LOG_PAGE_BYTES];
        page[..4].copy_from_slice(&[first, 0, 0x41, 0x04]);
        let sum = page.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
        page[511] = sum.wrapping_neg();
        page
    }

    #[test]
    fn the_ncq_error_log_names_the_refused_tag_with_its_status_and_error() {
        let refused = RefusedCommand {
            tag: 5,
            status: 0x41,
            error: 0x04,
        };
        assert_eq!(RefusedCommand::from_log(&error_log(5)), Some(refused));
        // Bits 6:5 (UNL, DE in later standards) do not reach the tag.
        assert_eq!(RefusedCommand::from_log(&error_log(0x65)), Some(refused));
    }

    #[test]
    fn an_ncq_error_log_with_nq_a_bad_checksum_or_the_wrong_size_names_no_command() {
        assert_eq!(
            RefusedCommand::from_log(&error_log(LOG_NOT_QUEUED | 5)),
            None
        );
        let mut damaged = error_log(5);
        damaged[100] = 1;
        assert_eq!(RefusedCommand::from_log(&damaged), None);
        assert_eq!(RefusedCommand::from_log(&error_log(5)[..511]), None);
        assert_eq!(RefusedCommand::from_log(&[]), None);
    }

    #[test]
    fn ranges_past_the_end_or_empty_or_too_long_are_refused() {
        assert!(check_range(0, 8, 8, 128).is_ok());
        assert!(check_range(8, 1, 8, 128).is_err());
        assert!(check_range(0, 0, 8, 128).is_err());
        assert!(check_range(0, 129, 1000, 128).is_err());
        assert!(check_range(u64::MAX, 1, u64::MAX, 128).is_err());
        assert_eq!(max_sectors(false, 1024), 256);
        assert_eq!(max_sectors(true, 128), 128);
    }
}
