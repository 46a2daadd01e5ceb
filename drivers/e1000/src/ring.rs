//! The driver's pure logic: models, EEPROM and PHY register access words, MAC address
//! decoding, descriptor encoding and decoding, and ring index arithmetic. No device
//! access here, so all of it is tested on the host.

use alloc::vec;
use alloc::vec::Vec;

use rexo_api::DeviceError;
use rexo_devio::Stall;

use crate::regs::{
    MDIC_ERROR, MDIC_OP_READ, MDIC_OP_WRITE, MDIC_PHY_SHIFT, MDIC_READY, MDIC_REGISTER_SHIFT,
    PHY_ADDRESS, PHY_CONTROL_AN_ENABLE, PHY_CONTROL_POWER_DOWN, PHY_CONTROL_RESTART_AN,
};

/// Bytes of one descriptor, receive or transmit, legacy or extended (SDM, "Legacy
/// Receive Descriptor Format" and "Legacy Transmit Descriptor Format").
pub const DESCRIPTOR_BYTES: usize = 16;
/// Offset of the descriptor's upper quadword: length, status and command fields.
pub const DESCRIPTOR_FIELDS: usize = 8;
/// Bytes of every receive and transmit buffer (RCTL.BSIZE 2048).
pub const BUFFER_BYTES: usize = 2048;
/// Bytes of an Ethernet header: the shortest frame the API sends or delivers.
pub use rexo_api::device::ETHERNET_HEADER;
/// The largest frame without FCS for a 1500-byte MTU (no jumbo frames: RCTL.LPE off).
pub use rexo_api::device::ETHERNET_MAX_FRAME;

/// Receive status: descriptor done (the device wrote it back).
pub const RX_STATUS_DD: u8 = 1 << 0;
/// Receive status: end of packet (the last buffer of a frame).
pub const RX_STATUS_EOP: u8 = 1 << 1;
/// Receive errors that make a frame unusable: CRC/alignment (CE), symbol (SE),
/// sequence (SEQ), carrier extension (CXE) and RX data (RXE) errors (SDM, the receive
/// descriptor's errors field).
/// The checksum-offload bits (TCPE, IPE) are not among them: the driver does not use
/// checksum offload (the API has no way to report it).
pub const RX_ERRORS_FATAL: u8 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 4) | (1 << 7);

/// Transmit command: end of packet.
pub const TX_CMD_EOP: u8 = 1 << 0;
/// Transmit command: insert the FCS (the API's frames come without it).
pub const TX_CMD_IFCS: u8 = 1 << 1;
/// Transmit command: report status (the device sets DD when done with the descriptor).
pub const TX_CMD_RS: u8 = 1 << 3;
/// Transmit status: descriptor done.
pub const TX_STATUS_DD: u8 = 1 << 0;

/// The layout of the EEPROM Read register, which differs between models (SDM, EERD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EerdLayout {
    /// 82540, 82545, 82546: DONE is bit 4, the word address is bits 15:8.
    DoneBit4Address8,
    /// 82541, 82547 and the 82574: DONE is bit 1, the word address is bits 15:2.
    DoneBit1Address2,
}

impl EerdLayout {
    /// The EERD value that starts reading EEPROM word `word`.
    pub fn request(self, word: u8) -> u32 {
        let shift = match self {
            Self::DoneBit4Address8 => 8,
            Self::DoneBit1Address2 => 2,
        };
        (u32::from(word) << shift) | crate::regs::EERD_START
    }

    /// The word in EERD value `value` once the read is done, else `None`.
    pub fn word(self, value: u32) -> Option<u16> {
        let done = match self {
            Self::DoneBit4Address8 => 1 << 4,
            Self::DoneBit1Address2 => 1 << 1,
        };
        (value & done != 0).then_some((value >> crate::regs::EERD_DATA_SHIFT) as u16)
    }
}

/// What differs between the supported controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    /// The part, for messages.
    pub name: &'static str,
    /// How to read the EEPROM when RAL0 is empty (`None`: the 82544 has no EERD).
    pub eerd: Option<EerdLayout>,
    /// A PCI Express 8257x part (82574): master disable before reset, NVM auto-read
    /// wait after it, its own TIPG/COLD values, and two queue pairs with RSS spreading
    /// received IP traffic over them (extended receive descriptors).
    pub pcie: bool,
}

impl Model {
    /// Receive/transmit queue pairs: two on the 82574, one on the 8254x.
    pub fn queues(&self) -> usize {
        if self.pcie { 2 } else { 1 }
    }

    /// The receive descriptor format: RSS on the 82574 needs the extended one.
    pub fn rx_format(&self) -> RxFormat {
        if self.pcie {
            RxFormat::Extended
        } else {
            RxFormat::Legacy
        }
    }
}

/// An 8254x part with the given EEPROM access.
const fn i8254x(name: &'static str, eerd: Option<EerdLayout>) -> Model {
    Model {
        name,
        eerd,
        pcie: false,
    }
}

/// The EERD layout of the 82540, 82545 and 82546.
const EERD_OLD: Option<EerdLayout> = Some(EerdLayout::DoneBit4Address8);
/// The EERD layout of the 82541, 82547 and 82574.
const EERD_NEW: Option<EerdLayout> = Some(EerdLayout::DoneBit1Address2);

/// The supported controllers by PCI device ID (vendor 8086): the copper parts of the
/// 8254x SDM's device ID table and the 82574. Fibre and SerDes parts need another link
/// bring-up (no PHY) and are left out, as are the 82542/82543 (older register set,
/// bit-banged PHY access).
const MODELS: &[(u16, Model)] = &[
    (0x1008, i8254x("82544EI", None)),
    (0x100C, i8254x("82544GC", None)),
    (0x100D, i8254x("82544GC LOM", None)),
    (0x100E, i8254x("82540EM", EERD_OLD)),
    (0x1015, i8254x("82540EM LOM", EERD_OLD)),
    (0x1016, i8254x("82540EP LOM", EERD_OLD)),
    (0x1017, i8254x("82540EP", EERD_OLD)),
    (0x101E, i8254x("82540EP LP", EERD_OLD)),
    (0x100F, i8254x("82545EM", EERD_OLD)),
    (0x1026, i8254x("82545GM", EERD_OLD)),
    (0x1010, i8254x("82546EB", EERD_OLD)),
    (0x101D, i8254x("82546EB quad", EERD_OLD)),
    (0x1079, i8254x("82546GB", EERD_OLD)),
    (0x1099, i8254x("82546GB quad", EERD_OLD)),
    (0x1013, i8254x("82541EI", EERD_NEW)),
    (0x1018, i8254x("82541EI mobile", EERD_NEW)),
    (0x1014, i8254x("82541ER LOM", EERD_NEW)),
    (0x1078, i8254x("82541ER", EERD_NEW)),
    (0x1076, i8254x("82541GI", EERD_NEW)),
    (0x1077, i8254x("82541GI mobile", EERD_NEW)),
    (0x107C, i8254x("82541PI", EERD_NEW)),
    (0x1019, i8254x("82547EI", EERD_NEW)),
    (0x101A, i8254x("82547EI mobile", EERD_NEW)),
    (0x1075, i8254x("82547GI", EERD_NEW)),
    (
        0x10D3,
        Model {
            name: "82574L",
            eerd: EERD_NEW,
            pcie: true,
        },
    ),
];

/// The model of Intel device `device_id`, if supported.
pub fn model(device_id: u16) -> Option<Model> {
    MODELS
        .iter()
        .find(|(id, _)| *id == device_id)
        .map(|(_, model)| *model)
}

/// The transmit inter-packet gap for copper: IPGT 10, IPGR1 8, IPGR2 6 on the 8254x
/// (SDM, TIPG: the IEEE 802.3 gap), IPGT 8 on the 82574 (its TIPG reset value).
pub fn tipg(model: &Model) -> u32 {
    let ipgt = if model.pcie { 8 } else { 10 };
    ipgt | (8 << 10) | (6 << 20)
}

/// TCTL's collision distance for full duplex: 64 byte times on the 8254x (SDM, TCTL),
/// 63 on the 82574 (its datasheet's recommended COLD).
pub fn collision_distance(model: &Model) -> u32 {
    if model.pcie { 0x3F } else { 0x40 }
}

/// The MAC address in RAL0/RAH0, or `None` when it is empty or no unicast address.
pub fn mac_from_receive_address(ral: u32, rah: u32) -> Option<[u8; 6]> {
    let low = ral.to_le_bytes();
    let high = rah.to_le_bytes();
    usable_mac([low[0], low[1], low[2], low[3], high[0], high[1]])
}

/// The MAC address from EEPROM words 0..3 (the EEPROM map's Ethernet address words,
/// little-endian byte pairs).
pub fn mac_from_eeprom(words: [u16; 3]) -> Option<[u8; 6]> {
    let [a, b, c] = words.map(u16::to_le_bytes);
    usable_mac([a[0], a[1], b[0], b[1], c[0], c[1]])
}

/// `mac` when it is a unicast address other than zero.
fn usable_mac(mac: [u8; 6]) -> Option<[u8; 6]> {
    (mac != [0; 6] && mac[0] & 1 == 0).then_some(mac)
}

/// RAL0 and RAH0 (with Address Valid) holding `mac`.
pub fn receive_address(mac: [u8; 6]) -> (u32, u32) {
    let low = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let high = u32::from(u16::from_le_bytes([mac[4], mac[5]])) | crate::regs::RAH_AV;
    (low, high)
}

/// The MDIC value that reads register `register` of the internal PHY.
pub fn mdic_read(register: u32) -> u32 {
    MDIC_OP_READ | (PHY_ADDRESS << MDIC_PHY_SHIFT) | (register << MDIC_REGISTER_SHIFT)
}

/// The MDIC value that writes `value` to register `register` of the internal PHY.
pub fn mdic_write(register: u32, value: u16) -> u32 {
    MDIC_OP_WRITE
        | (PHY_ADDRESS << MDIC_PHY_SHIFT)
        | (register << MDIC_REGISTER_SHIFT)
        | u32::from(value)
}

/// The outcome in MDIC value `value`: `None` while the access runs, then the data
/// (bits 15:0) or the error.
pub fn mdic_outcome(value: u32) -> Option<Result<u16, DeviceError>> {
    if value & MDIC_READY == 0 {
        None
    } else if value & MDIC_ERROR != 0 {
        Some(Err(DeviceError::Status {
            what: "PHY register access (MDIC)",
            status: value,
        }))
    } else {
        Some(Ok(value as u16))
    }
}

/// The PHY control value that powers the PHY up and restarts auto-negotiation, or
/// `None` when `control` says it is already up (nothing to do: a restart would only
/// drop the link for seconds).
pub fn phy_power_up(control: u16) -> Option<u16> {
    (control & PHY_CONTROL_POWER_DOWN != 0).then_some(
        (control & !PHY_CONTROL_POWER_DOWN) | PHY_CONTROL_AN_ENABLE | PHY_CONTROL_RESTART_AN,
    )
}

/// Refuses a frame in segments of the lengths `segments` the interface cannot send
/// (too many segments, an empty one, too short or too long in all).
pub fn check_segments(segments: &[usize]) -> Result<(), DeviceError> {
    DeviceError::check_segments(segments, ETHERNET_MAX_FRAME).map(|_| ())
}

/// Transmit command: descriptor extension (a context or data descriptor, not legacy).
pub const TX_CMD_DEXT: u8 = 1 << 5;
/// Context descriptor command: the checksum context is TCP's (UDP's otherwise).
pub const TX_TUCMD_TCP: u8 = 1 << 0;
/// Data descriptor type (bits 23:20 of the upper quadword).
const TX_DTYP_DATA: u64 = 1 << 20;
/// Data descriptor option: insert the TCP/UDP checksum the context describes.
pub const TX_POPTS_TXSM: u8 = 1 << 1;

/// The lower quadword of a TCP/UDP checksum context descriptor: the device sums the
/// frame from byte `start` (TUCSS, bits 39:32) to its end and stores the result at byte
/// `field` (TUCSO, bits 47:40). No IP header checksum (the stack computes it). Both
/// offsets are under 256 in any frame this driver sends.
pub fn tx_context_offsets(start: usize, field: usize) -> u64 {
    ((start as u64 & 0xFF) << 32) | ((field as u64 & 0xFF) << 40)
}

/// The upper quadword of that context descriptor: type context, DEXT, RS (so the device
/// reports it done like any other), TCP or UDP.
pub fn tx_context_fields(tcp: bool) -> u64 {
    let tucmd = TX_CMD_DEXT | TX_CMD_RS | if tcp { TX_TUCMD_TCP } else { 0 };
    u64::from(tucmd) << 24
}

/// The upper quadword of an extended data descriptor sending `len` bytes of a frame
/// (IFCS|RS|DEXT, and EOP when it is the frame's `last`), inserting the context's
/// checksum when `checksum`. Every frame goes this way, none as a legacy descriptor:
/// QEMU's model keeps the last data descriptor's checksum options for a following
/// legacy descriptor. RS on each, so each is reclaimed from its own DD bit.
pub fn tx_data_fields(len: usize, checksum: bool, last: bool) -> u64 {
    let eop = if last { TX_CMD_EOP } else { 0 };
    let cmd = eop | TX_CMD_IFCS | TX_CMD_RS | TX_CMD_DEXT;
    let popts = if checksum { TX_POPTS_TXSM } else { 0 };
    (len as u64 & 0xF_FFFF) | TX_DTYP_DATA | (u64::from(cmd) << 24) | (u64::from(popts) << 40)
}

/// Whether the upper quadword `fields` of a transmit descriptor says the device is
/// done with it (status, bits 39:32).
pub fn tx_done(fields: u64) -> bool {
    (fields >> 32) as u8 & TX_STATUS_DD != 0
}

/// How the device writes a receive descriptor back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxFormat {
    /// Legacy (SDM): length in bits 15:0, status 39:32, errors 47:40 of the upper
    /// quadword.
    Legacy,
    /// Extended (82574 datasheet, "Extended Rx Descriptor" write-back): status in bits
    /// 19:0 and errors in 31:20 of the upper quadword (the error byte 31:24 has the
    /// legacy bit order), length in 47:32; the lower quadword holds the RSS hash and
    /// overwrites the buffer address.
    Extended,
}

/// A written-back receive descriptor's fields (upper quadword).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFields {
    /// Bytes the device wrote into the buffer.
    pub length: u16,
    /// Status bits (DD, EOP...).
    pub status: u8,
    /// Error bits.
    pub errors: u8,
}

impl RxFields {
    /// Decodes the upper quadword `fields` written back in `format`.
    pub fn decode(format: RxFormat, fields: u64) -> Self {
        match format {
            RxFormat::Legacy => Self {
                length: fields as u16,
                status: (fields >> 32) as u8,
                errors: (fields >> 40) as u8,
            },
            RxFormat::Extended => Self {
                length: (fields >> 32) as u16,
                status: fields as u8,
                errors: (fields >> 24) as u8,
            },
        }
    }

    /// Whether the device wrote the descriptor back.
    pub fn done(&self) -> bool {
        self.status & RX_STATUS_DD != 0
    }
}

/// What to do with one written-back receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxVerdict {
    /// Hand this many bytes to the app.
    Deliver(usize),
    /// Give the buffer back unread (a bad frame, or part of one too long to take).
    Drop,
}

/// Judges buffer `fields`; `spanning` says an earlier buffer of the same frame lacked
/// EOP (the frame is longer than one buffer, so longer than the interface takes) and
/// is updated for the next buffer. A frame longer than [`ETHERNET_MAX_FRAME`] (`NetInfo`'s
/// `max_frame`: a VLAN-tagged one fits the buffer) is dropped too.
pub fn rx_verdict(fields: RxFields, spanning: &mut bool) -> RxVerdict {
    let part_of_long_frame = *spanning;
    *spanning = fields.status & RX_STATUS_EOP == 0;
    let len = usize::from(fields.length);
    if part_of_long_frame
        || *spanning
        || fields.errors & RX_ERRORS_FATAL != 0
        || !(ETHERNET_HEADER..=ETHERNET_MAX_FRAME).contains(&len)
    {
        RxVerdict::Drop
    } else {
        RxVerdict::Deliver(len)
    }
}

/// The receive ring's software state. The device owns the descriptors from its head up
/// to (not including) RDT; one descriptor always stays with the driver, since RDT ==
/// RDH means "none given" (SDM 3.2.6).
#[derive(Debug)]
pub struct RxRing {
    /// Descriptors in the ring.
    size: usize,
    /// The next descriptor the device will write back.
    next: usize,
    /// Descriptors processed and cleaned but not yet given back through RDT.
    unposted: usize,
    /// The last RDT written: the descriptor there is the driver's, never given to the
    /// device, so the device writes nothing back there.
    tail: usize,
}

impl RxRing {
    /// A ring of `size` descriptors, all but one given to the device (RDT = `size - 1`).
    pub fn new(size: usize) -> Self {
        Self {
            size,
            next: 0,
            unposted: 0,
            tail: size - 1,
        }
    }

    /// The last RDT written ([`tail_to_post`](Self::tail_to_post)'s), `size - 1` for a
    /// new ring.
    pub fn tail(&self) -> usize {
        self.tail
    }

    /// The descriptor to look at next.
    pub fn next(&self) -> usize {
        self.next
    }

    /// Whether the next descriptor was given to the device, so that a write-back (DD)
    /// there is a frame: not so for the one at RDT, which the driver reaches once it
    /// has taken every descriptor the device held.
    pub fn next_given(&self) -> bool {
        self.next != self.tail
    }

    /// Marks the next descriptor processed and ready to go back.
    pub fn advance(&mut self) {
        self.next = (self.next + 1) % self.size;
        self.unposted += 1;
    }

    /// The new RDT when at least `batch` descriptors wait to go back (they all go),
    /// else `None`: the tail moves in batches to save register writes.
    pub fn tail_to_post(&mut self, batch: usize) -> Option<usize> {
        if self.unposted < batch.max(1) {
            return None;
        }
        self.unposted = 0;
        self.tail = (self.next + self.size - 1) % self.size;
        Some(self.tail)
    }
}

/// The transmit ring's software state: descriptors `[clean, clean + in_flight)` are the
/// device's; at most `size - 1` are, since TDT == TDH means "none queued". A frame takes
/// one or more of them (a context descriptor, a data descriptor per segment): it is the
/// device's until the one that ends it is reclaimed.
#[derive(Debug)]
pub struct TxRing {
    /// Descriptors in the ring.
    size: usize,
    /// The oldest descriptor the device may still be using.
    clean: usize,
    /// Descriptors queued and not reclaimed.
    in_flight: usize,
    /// For each descriptor queued and not reclaimed, whether it ends its frame (EOP).
    ends_frame: Vec<bool>,
    /// Frames queued whose last descriptor is not reclaimed.
    frames_in_flight: usize,
    /// How long the device has held descriptors without finishing any (looked at by
    /// [`stalled_for`](Self::stalled_for)); its count ends when one is reclaimed.
    stall: Stall,
}

impl TxRing {
    /// An empty ring of `size` descriptors.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            clean: 0,
            in_flight: 0,
            ends_frame: vec![false; size],
            frames_in_flight: 0,
            stall: Stall::default(),
        }
    }

    /// How long, as of `now_ns`, the device has held descriptors without finishing any:
    /// counted from the first look (this call or an earlier one) that found them so, never
    /// from before the driver looked; 0 while it holds none.
    pub fn stalled_for(&mut self, now_ns: u64) -> u64 {
        self.stall
            .look_holding(self.in_flight > 0, || now_ns)
            .unwrap_or(0)
    }

    /// Counts a stall from `now_ns` again: the device was held back (paused by its link
    /// partner, or without a link), not stuck.
    pub fn restart_stall_count(&mut self, now_ns: u64) {
        self.stall.restart(now_ns);
    }

    /// Frames the device has not been seen to finish (their last descriptor not
    /// reclaimed), however many descriptors each took.
    pub fn frames_in_flight(&self) -> usize {
        self.frames_in_flight
    }

    /// Descriptors that can be filled now.
    pub fn free(&self) -> usize {
        self.size - 1 - self.in_flight
    }

    /// The free descriptor to fill next, or `None` when the ring is full.
    pub fn slot_to_fill(&self) -> Option<usize> {
        (self.in_flight < self.size - 1).then_some((self.clean + self.in_flight) % self.size)
    }

    /// The free descriptor `ahead` places after [`slot_to_fill`](Self::slot_to_fill)'s
    /// (0 is that one), or `None` when fewer are free.
    pub fn slot_ahead(&self, ahead: usize) -> Option<usize> {
        (self.in_flight + ahead < self.size - 1)
            .then_some((self.clean + self.in_flight + ahead) % self.size)
    }

    /// Records that the slot from [`slot_to_fill`](Self::slot_to_fill) was queued, the
    /// last of its frame when `ends_frame`; returns the new TDT.
    pub fn queued(&mut self, ends_frame: bool) -> usize {
        self.ends_frame[(self.clean + self.in_flight) % self.size] = ends_frame;
        self.frames_in_flight += usize::from(ends_frame);
        self.in_flight += 1;
        (self.clean + self.in_flight) % self.size
    }

    /// Takes back the finished descriptors, oldest first, while `done(index)` says so
    /// (the device finishes them in order); returns how many.
    pub fn reclaim(&mut self, mut done: impl FnMut(usize) -> bool) -> usize {
        let mut reclaimed = 0;
        while self.in_flight > 0 && done(self.clean) {
            self.frames_in_flight -= usize::from(self.ends_frame[self.clean]);
            self.clean = (self.clean + 1) % self.size;
            self.in_flight -= 1;
            reclaimed += 1;
        }
        if reclaimed > 0 {
            self.stall.progress();
        }
        reclaimed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_descriptors_name_their_offsets_and_options() {
        // A TCP segment after a 20-byte IPv4 header: TUCSS 34, TUCSO 50.
        let offsets = tx_context_offsets(34, 50);
        assert_eq!(offsets.to_le_bytes(), [0, 0, 0, 0, 34, 50, 0, 0]);
        let context = tx_context_fields(true);
        assert_eq!((context >> 20) & 0xF, 0, "type context");
        assert_eq!(
            (context >> 24) as u8,
            TX_CMD_DEXT | TX_CMD_RS | TX_TUCMD_TCP
        );
        let data = tx_data_fields(1514, true, true);
        assert_eq!(data & 0xF_FFFF, 1514, "length");
        assert_eq!((data >> 20) & 0xF, 1, "type data");
        assert_eq!(
            (data >> 24) as u8,
            TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS | TX_CMD_DEXT
        );
        assert_eq!((data >> 32) as u8, 0, "status");
        assert_eq!((data >> 40) as u8, TX_POPTS_TXSM);
        assert_eq!(tx_data_fields(60, false, true) >> 40, 0, "no options");
    }

    #[test]
    fn models_by_device_id() {
        assert_eq!(model(0x100E).unwrap().name, "82540EM");
        assert_eq!(model(0x100E).unwrap().eerd, EERD_OLD);
        let e1000e = model(0x10D3).unwrap();
        assert!(e1000e.pcie);
        assert_eq!(e1000e.eerd, Some(EerdLayout::DoneBit1Address2));
        assert_eq!(model(0x100C).unwrap().eerd, None);
        assert_eq!(model(0x1004), None); // 82543GC: not supported
        assert_eq!(model(0x1000), None);
        assert_eq!(model(0x100E).unwrap().queues(), 1);
        assert_eq!(e1000e.queues(), 2);
        assert_eq!(e1000e.rx_format(), RxFormat::Extended);
        let mut ids: alloc::vec::Vec<u16> = MODELS.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), MODELS.len(), "a device ID is listed twice");
    }

    #[test]
    fn eerd_layouts() {
        let old = EerdLayout::DoneBit4Address8;
        let new = EerdLayout::DoneBit1Address2;
        assert_eq!(old.request(2), 0x0201);
        assert_eq!(new.request(2), 0x0009);
        assert_eq!(old.word(0x1234_0211), Some(0x1234));
        assert_eq!(old.word(0x1234_0201), None);
        assert_eq!(new.word(0xABCD_000B), Some(0xABCD));
        assert_eq!(new.word(0xABCD_0009), None);
    }

    #[test]
    fn mac_addresses() {
        // QEMU's default 52:54:00:12:34:56.
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        let (ral, rah) = receive_address(mac);
        assert_eq!((ral, rah), (0x1200_5452, 0x8000_5634));
        assert_eq!(mac_from_receive_address(ral, rah), Some(mac));
        assert_eq!(mac_from_receive_address(0, 0x8000_0000), None);
        assert_eq!(mac_from_receive_address(0xFFFF_FFFF, 0xFFFF), None);
        assert_eq!(mac_from_eeprom([0x5452, 0x1200, 0x5634]), Some(mac));
        assert_eq!(mac_from_eeprom([0, 0, 0]), None);
    }

    #[test]
    fn phy_access() {
        assert_eq!(mdic_read(0), 0x0820_0000);
        assert_eq!(mdic_write(0, 0x1140), 0x0420_1140);
        assert_eq!(mdic_outcome(0x0820_0000), None);
        assert_eq!(mdic_outcome(0x1820_1140), Some(Ok(0x1140)));
        assert!(matches!(
            mdic_outcome(0x5820_0000),
            Some(Err(DeviceError::Status { .. }))
        ));
        assert_eq!(phy_power_up(0x1140), None);
        assert_eq!(phy_power_up(0x0940), Some(0x1340));
    }

    #[test]
    fn frame_lengths() {
        assert_eq!(
            check_segments(&[13]),
            Err(DeviceError::TooShort { len: 13 })
        );
        assert_eq!(check_segments(&[14]), Ok(()));
        assert_eq!(check_segments(&[1514]), Ok(()));
        assert_eq!(check_segments(&[14, 1000, 500]), Ok(()));
        assert_eq!(
            check_segments(&[1000, 515]),
            Err(DeviceError::TooLong {
                len: 1515,
                max: 1514
            })
        );
        assert_eq!(
            check_segments(&[20; 9]),
            Err(DeviceError::TooManySegments {
                segments: 9,
                max: 8
            })
        );
        assert_eq!(
            check_segments(&[60, 0, 10]),
            Err(DeviceError::EmptySegment { index: 1 })
        );
    }

    #[test]
    fn transmit_descriptor_fields() {
        let fields = tx_data_fields(1514, false, true);
        assert_eq!(fields & 0xFFFF, 1514);
        assert_eq!((fields >> 24) as u8, 0x2B); // EOP | IFCS | RS | DEXT
        // A segment before the last: no EOP.
        assert_eq!((tx_data_fields(100, false, false) >> 24) as u8, 0x2A);
        assert!(!tx_done(fields));
        assert!(tx_done(fields | 1 << 32));
    }

    #[test]
    fn receive_verdicts() {
        let fields = |length: u16, status: u8, errors: u8| RxFields {
            length,
            status,
            errors,
        };
        let whole = RX_STATUS_DD | RX_STATUS_EOP;
        let mut spanning = false;
        assert_eq!(
            rx_verdict(fields(60, whole, 0), &mut spanning),
            RxVerdict::Deliver(60)
        );
        // A checksum error bit alone does not drop the frame (offload is off).
        assert_eq!(
            rx_verdict(fields(60, whole, 1 << 5), &mut spanning),
            RxVerdict::Deliver(60)
        );
        assert_eq!(
            rx_verdict(fields(60, whole, 1), &mut spanning),
            RxVerdict::Drop
        );
        assert_eq!(
            rx_verdict(fields(10, whole, 0), &mut spanning),
            RxVerdict::Drop
        );
        // Longer than max_frame, though in one buffer (a VLAN tag's 4 bytes more).
        assert_eq!(
            rx_verdict(fields(1514, whole, 0), &mut spanning),
            RxVerdict::Deliver(1514)
        );
        assert_eq!(
            rx_verdict(fields(1518, whole, 0), &mut spanning),
            RxVerdict::Drop
        );
        // A frame over two buffers is dropped whole, and the next one is fine.
        assert_eq!(
            rx_verdict(fields(2048, RX_STATUS_DD, 0), &mut spanning),
            RxVerdict::Drop
        );
        assert!(spanning);
        assert_eq!(
            rx_verdict(fields(100, whole, 0), &mut spanning),
            RxVerdict::Drop
        );
        assert!(!spanning);
        assert_eq!(
            rx_verdict(fields(100, whole, 0), &mut spanning),
            RxVerdict::Deliver(100)
        );
        let decoded = RxFields::decode(RxFormat::Legacy, 0x0000_0003_0000_05EA);
        assert_eq!(decoded, fields(1514, whole, 0));
        assert!(decoded.done());
        // Extended: VLAN 0, length 1514, CE error (bit 24), status DD|EOP.
        let decoded = RxFields::decode(RxFormat::Extended, 0x0000_05EA_0100_0003);
        assert_eq!(decoded, fields(1514, whole, 1));
        assert_eq!(
            rx_verdict(decoded, &mut spanning),
            RxVerdict::Drop,
            "CE is fatal in both formats"
        );
    }

    #[test]
    fn receive_ring_posts_in_batches() {
        let mut ring = RxRing::new(8);
        assert_eq!(ring.tail(), 7);
        ring.advance();
        assert_eq!(ring.tail_to_post(2), None);
        ring.advance();
        assert_eq!(ring.next(), 2);
        // Descriptors 0 and 1 go back: the device may fill up to (not including) 1.
        assert_eq!(ring.tail_to_post(2), Some(1));
        assert_eq!(ring.tail_to_post(2), None);
        for _ in 0..6 {
            ring.advance();
        }
        assert_eq!(ring.next(), 0);
        assert_eq!(ring.tail_to_post(1), Some(7));
    }

    #[test]
    fn the_descriptor_at_the_last_tail_posted_is_not_given() {
        let mut ring = RxRing::new(8);
        for _ in 0..7 {
            assert!(ring.next_given());
            ring.advance();
        }
        assert_eq!(ring.next(), 7);
        assert!(!ring.next_given(), "at the first RDT, 7");
        assert_eq!(ring.tail_to_post(2), Some(6));
        assert_eq!(ring.tail(), 6);
        assert!(ring.next_given(), "7 is the device's now");
        ring.advance();
        assert_eq!(ring.tail_to_post(2), None, "one waiting: the tail stays");
        assert_eq!(ring.tail(), 6);
    }

    #[test]
    fn transmit_ring_fills_and_reclaims_in_order() {
        let mut ring = TxRing::new(4);
        let ahead: Vec<_> = (0..4).map(|i| ring.slot_ahead(i)).collect();
        assert_eq!(ahead, [Some(0), Some(1), Some(2), None]);
        for expected in 0..3 {
            assert_eq!(ring.slot_to_fill(), Some(expected));
            assert_eq!(ring.queued(true), expected + 1);
        }
        assert_eq!(ring.slot_to_fill(), None, "one descriptor stays free");
        assert_eq!(ring.slot_ahead(0), None);
        assert_eq!(ring.free(), 0);
        // Only the oldest is done: one comes back, even if a later one says done.
        assert_eq!(ring.reclaim(|i| i == 0 || i == 2), 1);
        assert_eq!(ring.slot_to_fill(), Some(3));
        assert_eq!(
            ring.slot_ahead(1),
            None,
            "two in flight: one more may be filled"
        );
        assert_eq!(ring.queued(true), 0); // the tail wraps
        assert_eq!(ring.reclaim(|_| true), 3);
        assert_eq!(ring.free(), 3);
        assert_eq!(ring.reclaim(|_| true), 0);
    }

    #[test]
    fn a_stall_counts_from_the_first_look_and_ends_with_any_descriptor_finished() {
        let mut ring = TxRing::new(8);
        assert_eq!(ring.stalled_for(100), 0, "nothing held");
        ring.queued(true);
        ring.queued(true);
        assert_eq!(
            ring.stalled_for(1_000),
            0,
            "the first look starts the count"
        );
        assert_eq!(ring.stalled_for(3_000), 2_000);
        // One finished: the count starts again at the next look.
        assert_eq!(ring.reclaim(|i| i == 0), 1);
        assert_eq!(ring.stalled_for(5_000), 0);
        assert_eq!(ring.stalled_for(6_000), 1_000);
        ring.restart_stall_count(6_000);
        assert_eq!(ring.stalled_for(6_500), 500);
        assert_eq!(ring.reclaim(|_| true), 1);
        assert_eq!(ring.stalled_for(9_000), 0, "nothing held");
    }

    #[test]
    fn transmit_ring_counts_frames_not_descriptors() {
        let mut ring = TxRing::new(8);
        // A frame in three descriptors (a context descriptor, two segments), then one in
        // one.
        for ends_frame in [false, false, true, true] {
            ring.queued(ends_frame);
        }
        assert_eq!(ring.frames_in_flight(), 2);
        // Its first two descriptors done: the frame is still the device's.
        assert_eq!(ring.reclaim(|i| i < 2), 2);
        assert_eq!(ring.frames_in_flight(), 2);
        assert_eq!(ring.reclaim(|i| i < 3), 1);
        assert_eq!(ring.frames_in_flight(), 1);
        assert_eq!(ring.reclaim(|_| true), 1);
        assert_eq!(ring.frames_in_flight(), 0);
    }
}
