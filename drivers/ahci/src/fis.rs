//! The Register Host-to-Device FIS that carries an ATA command to the disk (SATA 3.x
//! 10.5.5; AHCI 4.2.3.1 puts it at the start of the command table).

use rexo_ata::command::Command;

/// FIS type: Register, host to device.
const FIS_REGISTER_H2D: u8 = 0x27;
/// Byte 1 bit 7: the FIS carries a command (not a device control update).
const FIS_COMMAND: u8 = 0x80;
/// Bytes of the FIS.
pub const FIS_BYTES: usize = 20;

/// The Register H2D FIS for `command`.
pub fn register_h2d(command: &Command) -> [u8; FIS_BYTES] {
    let lba = command.lba.to_le_bytes();
    let [features_low, features_high] = command.features.to_le_bytes();
    let [count_low, count_high] = command.count.to_le_bytes();
    [
        FIS_REGISTER_H2D,
        FIS_COMMAND,
        command.opcode,
        features_low,
        lba[0],
        lba[1],
        lba[2],
        command.device,
        lba[3],
        lba[4],
        lba[5],
        features_high,
        count_low,
        count_high,
        0, // ICC
        0, // control
        0,
        0,
        0,
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_ata::command::{Direction, Protocol, READ_DMA_EXT, WRITE_FPDMA_QUEUED};

    #[test]
    fn a_queued_write_lays_out_count_tag_and_lba() {
        let fis = register_h2d(&Command::queued(
            Direction::Write,
            0x0605_0403_0201,
            0x0102,
            5,
        ));
        assert_eq!(fis[..4], [0x27, 0x80, WRITE_FPDMA_QUEUED, 0x02]);
        assert_eq!(fis[4..8], [0x01, 0x02, 0x03, 0x40]);
        assert_eq!(fis[8..12], [0x04, 0x05, 0x06, 0x01]);
        assert_eq!(fis[12..14], [5 << 3, 0]);
    }

    #[test]
    fn a_dma_ext_read_carries_its_count() {
        let fis = register_h2d(&Command::transfer(
            Direction::Read,
            Protocol::Dma,
            true,
            9,
            300,
        ));
        assert_eq!(fis[2], READ_DMA_EXT);
        assert_eq!(fis[12..14], 300u16.to_le_bytes());
        assert_eq!(fis[4], 9);
    }
}
