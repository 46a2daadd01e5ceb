//! Register offsets and bits of BAR0, from the Intel 8254x Family of Gigabit Ethernet
//! Controllers Software Developer's Manual (317453, "SDM", "Register Descriptions") and
//! the 82574 GbE Controller Datasheet ("Device Registers"); both families share the
//! layout used here.

/// Device Control.
pub const CTRL: usize = 0x0000;
/// Device Status.
pub const STATUS: usize = 0x0008;
/// EEPROM/Flash Control.
pub const EECD: usize = 0x0010;
/// EEPROM Read.
pub const EERD: usize = 0x0014;
/// Extended Device Control.
pub const CTRL_EXT: usize = 0x0018;
/// MDI Control: PHY register access.
pub const MDIC: usize = 0x0020;
/// Interrupt Cause Read, cleared by reading.
pub const ICR: usize = 0x00C0;
/// Interrupt Cause Set: the causes written are raised as if the device had signalled
/// them (an interrupt or MSI-X message where unmasked).
pub const ICS: usize = 0x00C8;
/// Interrupt Mask Clear.
pub const IMC: usize = 0x00D8;
/// Interrupt mask set (82574 SDM 10.2.4.4): a cause with its bit set raises an interrupt.
pub const IMS: usize = 0x00D0;
/// Extended interrupt auto clear (82574 10.2.4.6): causes cleared when their MSI-X
/// message goes out.
pub const EIAC: usize = 0x00DC;
/// Interrupt vector allocation (82574 10.2.4.9): the MSI-X entry of each queue's cause,
/// four bits each (three of entry, one valid): receive queue 0 in bits 3:0, 1 in 7:4.
pub const IVAR: usize = 0x00E4;
/// The valid bit of an IVAR field.
pub const IVAR_VALID: u32 = 1 << 3;
/// Interrupt cause: receiver timer interrupt, a frame received (8254x; with RDTR 0 at
/// once).
pub const ICR_RXT0: u32 = 1 << 7;
/// Interrupt cause: receive queue 0 (82574; queue 1 is the next bit).
pub const ICR_RXQ0: u32 = 1 << 20;
/// Receive Control.
pub const RCTL: usize = 0x0100;
/// Transmit Control.
pub const TCTL: usize = 0x0400;
/// Transmit Inter-Packet Gap.
pub const TIPG: usize = 0x0410;
/// Receive Descriptor Base Address Low, queue 0.
pub const RDBAL: usize = 0x2800;
/// Receive Descriptor Base Address High.
pub const RDBAH: usize = 0x2804;
/// Receive Descriptor Length in bytes (a multiple of 128).
pub const RDLEN: usize = 0x2808;
/// Receive Descriptor Head (the device's).
pub const RDH: usize = 0x2810;
/// Receive Descriptor Tail (the driver's: one past the last buffer given).
pub const RDT: usize = 0x2818;
/// Receive Delay Timer; zero: write back at once.
pub const RDTR: usize = 0x2820;
/// Transmit Descriptor Base Address Low, queue 0.
pub const TDBAL: usize = 0x3800;
/// Transmit Descriptor Base Address High.
pub const TDBAH: usize = 0x3804;
/// Transmit Descriptor Length in bytes (a multiple of 128).
pub const TDLEN: usize = 0x3808;
/// Transmit Descriptor Head (the device's).
pub const TDH: usize = 0x3810;
/// Transmit Descriptor Tail (the driver's: one past the last frame queued).
pub const TDT: usize = 0x3818;
/// Receive and transmit queue `n`'s registers sit `n` times this above queue 0's
/// (82574: RDBAL1 0x2900, TDBAL1 0x3900...).
pub const QUEUE_STRIDE: usize = 0x100;
/// Transmit Arbitration Count, queue 0 (82574); queue 1's follows at the stride.
pub const TARC0: usize = 0x3840;
/// Receive Checksum Control (82574): PCSD frees the descriptor field for the RSS hash.
pub const RXCSUM: usize = 0x5000;
/// Receive Filter Control (82574): EXTEN selects extended receive descriptors.
pub const RFCTL: usize = 0x5008;
/// Multiple Receive Queues Command (82574): RSS on and which headers it hashes.
pub const MRQC: usize = 0x5818;
/// RSS redirection table (82574): 128 one-byte entries in 32 registers.
pub const RETA: usize = 0x5C00;
/// Registers of the redirection table.
pub const RETA_REGISTERS: usize = 32;
/// RSS random key (82574): 40 bytes in 10 registers.
pub const RSSRK: usize = 0x5C80;
/// Multicast Table Array: 128 32-bit entries.
pub const MTA: usize = 0x5200;
/// Entries of the multicast table.
pub const MTA_ENTRIES: usize = 128;
/// Receive Address Low 0: MAC bytes 0..4.
pub const RAL0: usize = 0x5400;
/// Receive Address High 0: MAC bytes 4..6 and the Address Valid bit.
pub const RAH0: usize = 0x5404;
/// The registers the driver touches end below this offset; BAR0 must be at least this
/// long (it is 128 KiB on both families).
pub const REGISTER_SPAN: usize = 0x5D00;

/// CTRL: PCIe master disable: stop new DMA before a reset.
pub const CTRL_GIO_MASTER_DISABLE: u32 = 1 << 2;
/// CTRL: link reset (8254x; must be 0 for the link to come up).
pub const CTRL_LRST: u32 = 1 << 3;
/// CTRL: auto-speed detection (8254x copper: take speed from the PHY).
pub const CTRL_ASDE: u32 = 1 << 5;
/// CTRL: set link up.
pub const CTRL_SLU: u32 = 1 << 6;
/// CTRL: invert loss-of-signal (0 for copper).
pub const CTRL_ILOS: u32 = 1 << 7;
/// CTRL: device reset; self-clearing.
pub const CTRL_RST: u32 = 1 << 26;
/// CTRL: VLAN mode (off: tagged frames arrive as they are).
pub const CTRL_VME: u32 = 1 << 30;
/// CTRL: PHY reset (must be 0 for the PHY to run).
pub const CTRL_PHY_RST: u32 = 1 << 31;

/// STATUS: link up.
pub const STATUS_LU: u32 = 1 << 1;
/// STATUS: transmission paused by a flow-control frame from the link partner (XOFF).
pub const STATUS_TXOFF: u32 = 1 << 4;
/// STATUS: PCIe master enable status (82574): clear once master disable took effect.
pub const STATUS_GIO_MASTER_ENABLE: u32 = 1 << 19;

/// EECD: the 82574 finished loading its configuration from the NVM.
pub const EECD_AUTO_RD: u32 = 1 << 9;

/// CTRL_EXT: driver loaded (82574): the manageability firmware leaves the port to us.
pub const CTRL_EXT_DRV_LOAD: u32 = 1 << 28;

/// MDIC: the PHY register number's shift (bits 20:16).
pub const MDIC_REGISTER_SHIFT: u32 = 16;
/// MDIC: the PHY address's shift (bits 25:21).
pub const MDIC_PHY_SHIFT: u32 = 21;
/// MDIC: opcode write (bits 27:26 = 01).
pub const MDIC_OP_WRITE: u32 = 1 << 26;
/// MDIC: opcode read (bits 27:26 = 10).
pub const MDIC_OP_READ: u32 = 2 << 26;
/// MDIC: the access finished.
pub const MDIC_READY: u32 = 1 << 28;
/// MDIC: the access failed (a read got no answer from the PHY).
pub const MDIC_ERROR: u32 = 1 << 30;
/// The internal PHY's MDIO address on both families.
pub const PHY_ADDRESS: u32 = 1;
/// PHY register 0, control (IEEE 802.3 clause 22).
pub const PHY_CONTROL: u32 = 0;
/// PHY control: restart auto-negotiation.
pub const PHY_CONTROL_RESTART_AN: u16 = 1 << 9;
/// PHY control: powered down (firmware or a previous driver may leave it so).
pub const PHY_CONTROL_POWER_DOWN: u16 = 1 << 11;
/// PHY control: auto-negotiation enable.
pub const PHY_CONTROL_AN_ENABLE: u16 = 1 << 12;

/// EERD: start a read (both layouts).
pub const EERD_START: u32 = 1 << 0;
/// EERD: the read word sits in bits 31:16 (both layouts).
pub const EERD_DATA_SHIFT: u32 = 16;

/// RCTL: receiver enable.
pub const RCTL_EN: u32 = 1 << 1;
/// RCTL: accept broadcast frames.
pub const RCTL_BAM: u32 = 1 << 15;
/// RCTL: buffer size 2048 bytes is BSIZE 00 with BSEX 0 (SDM, RCTL).
pub const RCTL_BSIZE_2048: u32 = 0;
/// RCTL: strip the Ethernet CRC from received frames.
pub const RCTL_SECRC: u32 = 1 << 26;

/// TCTL: transmitter enable.
pub const TCTL_EN: u32 = 1 << 1;
/// TCTL: pad short packets to 64 bytes.
pub const TCTL_PSP: u32 = 1 << 3;
/// TCTL: collision threshold 15 (the SDM's recommended value) in bits 11:4.
pub const TCTL_CT_15: u32 = 0x0F << 4;
/// TCTL: re-transmit on late collision.
pub const TCTL_RTLC: u32 = 1 << 24;
/// TCTL: the collision distance field's shift (bits 21:12).
pub const TCTL_COLD_SHIFT: u32 = 12;

/// TARC: this transmit queue takes part in arbitration (82574; set by reset for
/// queue 0 only).
pub const TARC_ENABLE: u32 = 1 << 10;
/// RXCSUM: packet checksum disabled; the descriptor carries the RSS hash instead
/// (RSS needs it).
pub const RXCSUM_PCSD: u32 = 1 << 13;
/// RFCTL: extended receive descriptors (RSS needs them).
pub const RFCTL_EXTEN: u32 = 1 << 15;
/// MRQC: multiple receive queues by RSS (bits 1:0 = 01).
pub const MRQC_RSS: u32 = 1;
/// MRQC: hash TCP/IPv4 (addresses and ports), IPv4 (addresses), TCP/IPv6, IPv6 with
/// extension headers and IPv6 headers (bits 16..=20); other frames go to queue 0.
pub const MRQC_HASH_ALL: u32 = 0x1F << 16;
/// RETA: alternating entries for queues 0 and 1 (an entry's bit 7 picks queue 1).
pub const RETA_ALTERNATE: u32 = 0x8000_8000;

/// RAH: address valid.
pub const RAH_AV: u32 = 1 << 31;

/// Every interrupt cause (for IMC).
pub const ALL_INTERRUPTS: u32 = 0xFFFF_FFFF;
