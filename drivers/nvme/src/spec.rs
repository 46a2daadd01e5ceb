//! The parts of the NVM Express Base Specification (2.0) this driver speaks: controller
//! registers (section 3.1), queue entries (4.2, 4.6), PRPs (4.1.1), admin commands
//! (5) and NVM commands (NVM Command Set Specification 3), as constants and plain
//! encoding/decoding functions.

use alloc::string::String;

use rexo_api::DeviceError;

/// Controller Capabilities (64-bit, 3.1.1).
pub const REG_CAP: usize = 0x00;
/// Version (3.1.2).
pub const REG_VS: usize = 0x08;
/// Controller Configuration (3.1.5).
pub const REG_CC: usize = 0x14;
/// Controller Status (3.1.6).
pub const REG_CSTS: usize = 0x1C;
/// Admin Queue Attributes (3.1.8).
pub const REG_AQA: usize = 0x24;
/// Admin Submission Queue base address (64-bit, 3.1.9).
pub const REG_ASQ: usize = 0x28;
/// Admin Completion Queue base address (64-bit, 3.1.10).
pub const REG_ACQ: usize = 0x30;
/// The first doorbell (admin submission queue tail, 3.1.24).
pub const REG_DOORBELLS: usize = 0x1000;

/// CC.EN: the controller processes commands.
pub const CC_ENABLE: u32 = 1 << 0;
/// CC.IOSQES: I/O submission queue entries are 2^6 = 64 bytes.
pub const CC_IOSQES_64: u32 = 6 << 16;
/// CC.IOCQES: I/O completion queue entries are 2^4 = 16 bytes.
pub const CC_IOCQES_16: u32 = 4 << 20;
/// CC.SHN, the shutdown notification (bits 15:14).
pub const CC_SHUTDOWN_MASK: u32 = 3 << 14;
/// CC.SHN 01b: a normal shutdown (the power is about to go).
pub const CC_SHUTDOWN_NORMAL: u32 = 1 << 14;
/// CSTS.RDY: the controller is ready (follows CC.EN).
pub const CSTS_READY: u32 = 1 << 0;
/// CSTS.CFS: controller fatal status.
pub const CSTS_FATAL: u32 = 1 << 1;
/// CSTS.SHST, the shutdown status (bits 3:2).
pub const CSTS_SHUTDOWN_MASK: u32 = 3 << 2;
/// CSTS.SHST 10b: shutdown processing complete.
pub const CSTS_SHUTDOWN_COMPLETE: u32 = 2 << 2;
/// The least time a controller gets for its shutdown, whatever RTD3E says: 5 s.
pub const SHUTDOWN_TIMEOUT_MIN_MS: u64 = 5_000;
/// The most time a controller gets for its shutdown, whatever RTD3E says: 60 s.
pub const SHUTDOWN_TIMEOUT_MAX_MS: u64 = 60_000;

/// Bytes in a submission queue entry.
pub const SQ_ENTRY: usize = 64;
/// Bytes in a completion queue entry.
pub const CQ_ENTRY: usize = 16;
/// The memory page size the driver configures (CC.MPS = 0): PRPs address 4 KiB pages.
pub const PAGE: usize = 4096;

/// Admin command: Delete I/O Submission Queue (the commands left in it are aborted).
pub const ADMIN_DELETE_SQ: u8 = 0x00;
/// Admin command: Delete I/O Completion Queue (its submission queue deleted first).
pub const ADMIN_DELETE_CQ: u8 = 0x04;
/// Admin command: Create I/O Submission Queue (5.4).
pub const ADMIN_CREATE_SQ: u8 = 0x01;
/// Admin command: Create I/O Completion Queue (5.3).
pub const ADMIN_CREATE_CQ: u8 = 0x05;
/// Create I/O Completion Queue dword 11: the queue is physically contiguous (PC).
pub const CQ_PHYSICALLY_CONTIGUOUS: u32 = 1 << 0;
/// Create I/O Completion Queue dword 11: interrupts enabled (IEN); the interrupt vector
/// (IV, the MSI-X entry) is bits 31:16.
pub const CQ_INTERRUPTS_ENABLED: u32 = 1 << 1;
/// Admin command: Identify (5.17).
pub const ADMIN_IDENTIFY: u8 = 0x06;
/// Admin command: Set Features (5.27).
pub const ADMIN_SET_FEATURES: u8 = 0x09;
/// NVM command: Flush (NVM Command Set 3.2.x / Base 7.1).
pub const IO_FLUSH: u8 = 0x00;
/// NVM command: Write.
pub const IO_WRITE: u8 = 0x01;
/// NVM command: Read.
pub const IO_READ: u8 = 0x02;

/// Identify CNS 00h: the namespace data structure of the NSID.
pub const CNS_NAMESPACE: u32 = 0x00;
/// Identify CNS 01h: the controller data structure.
pub const CNS_CONTROLLER: u32 = 0x01;
/// Feature 07h: Number of Queues.
pub const FEATURE_QUEUE_COUNT: u32 = 0x07;

/// Identify Controller: serial number, bytes 4..24 (ASCII, space-padded).
pub const ID_SERIAL: core::ops::Range<usize> = 4..24;
/// Identify Controller: model number, bytes 24..64.
pub const ID_MODEL: core::ops::Range<usize> = 24..64;
/// Identify Controller: firmware revision, bytes 64..72.
pub const ID_FIRMWARE: core::ops::Range<usize> = 64..72;
/// Identify Controller: MDTS, the maximum data transfer size (a power of two of
/// CAP.MPSMIN pages; 0 means no limit).
pub const ID_MDTS: usize = 77;
/// Identify Controller: RTD3E, the RTD3 entry latency, bytes 88..92 (microseconds from
/// a normal shutdown notification to the shutdown complete; 0 when not reported).
pub const ID_RTD3E: core::ops::Range<usize> = 88..92;
/// Identify Namespace: NSZE, the size in logical blocks (64-bit).
pub const NS_SIZE: usize = 0;
/// Identify Namespace: NLBAF, the number of LBA formats in the table (0-based).
pub const NS_NLBAF: usize = 25;
/// Identify Namespace: FLBAS, the formatted LBA size: the index of the LBA format the
/// namespace is formatted with, its low 4 bits in bits 3:0 and, when NLBAF is 16 or
/// more (17 formats and up), its high 2 bits in bits 6:5 (NVM Command Set
/// Specification, Identify Namespace).
pub const NS_FLBAS: usize = 26;
/// FLBAS bits 3:0: the format index's low 4 bits.
const FLBAS_INDEX_LOW: u8 = 0x0F;
/// FLBAS bits 6:5: the format index's high 2 bits (index bits 5:4).
const FLBAS_INDEX_HIGH: u8 = 0x60;
/// The least NLBAF (0-based) whose table needs the index's high bits.
const NLBAF_WITH_HIGH_INDEX: u8 = 16;
/// The table an FLBAS past NLBAF indexes, for [`DeviceError::BadIndex`].
const NAMESPACE_FORMATS: &str = "namespace's LBA format table (FLBAS past NLBAF)";
/// Identify Namespace: the LBA format table (4 bytes each: MS 15:0, LBADS 23:16).
pub const NS_LBA_FORMATS: usize = 128;

/// The fields of CAP the driver uses (3.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// MQES + 1: the most entries an I/O queue may have.
    pub max_queue_entries: u32,
    /// Bytes between doorbells (4 << DSTRD).
    pub doorbell_stride: usize,
    /// How long CSTS.RDY may take to follow CC.EN (TO, in 500 ms units).
    pub ready_timeout_ms: u64,
    /// CSS bit 0: the NVM command set.
    pub nvm_command_set: bool,
    /// 2^(12 + MPSMIN): the smallest memory page size.
    pub min_page: u64,
}

impl Capabilities {
    /// Decodes the CAP register.
    pub fn decode(cap: u64) -> Self {
        Self {
            max_queue_entries: (cap & 0xFFFF) as u32 + 1,
            doorbell_stride: 4 << ((cap >> 32) & 0xF),
            // A TO of 0 would mean no wait at all; give the controller one unit.
            ready_timeout_ms: ((cap >> 24) & 0xFF).max(1) * 500,
            nvm_command_set: cap & (1 << 37) != 0,
            min_page: 1 << (12 + ((cap >> 48) & 0xF)),
        }
    }
}

/// The offset in BAR 0 of the doorbell of queue `queue`: its submission tail doorbell,
/// or its completion head doorbell when `completion` (3.1.24, 3.1.25).
pub fn doorbell(queue: u16, completion: bool, stride: usize) -> usize {
    REG_DOORBELLS + (2 * usize::from(queue) + usize::from(completion)) * stride
}

/// The value of AQA for admin queues of `entries` entries each (0-based sizes).
pub fn admin_queue_attributes(entries: u32) -> u32 {
    ((entries - 1) << 16) | (entries - 1)
}

/// A submission queue entry (4.2): 16 command dwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command(pub [u32; 16]);

impl Command {
    /// A command of `opcode` with identifier `id` for namespace `nsid`, PRPs (data
    /// pointer, dwords 6..10) `prp1`/`prp2` and command dwords 10..16 `cdw`.
    fn new(opcode: u8, id: u16, nsid: u32, prp1: u64, prp2: u64, cdw: [u32; 6]) -> Self {
        let mut d = [0; 16];
        d[0] = u32::from(opcode) | (u32::from(id) << 16);
        d[1] = nsid;
        d[6] = prp1 as u32;
        d[7] = (prp1 >> 32) as u32;
        d[8] = prp2 as u32;
        d[9] = (prp2 >> 32) as u32;
        d[10..].copy_from_slice(&cdw);
        Self(d)
    }

    /// Identify (CNS `cns`) of namespace `nsid` into the page at `page`.
    pub fn identify(id: u16, cns: u32, nsid: u32, page: u64) -> Self {
        Self::new(ADMIN_IDENTIFY, id, nsid, page, 0, [cns, 0, 0, 0, 0, 0])
    }

    /// Set Features Number of Queues: ask for `pairs` I/O submission and completion queues.
    pub fn set_queue_count(id: u16, pairs: u16) -> Self {
        let wanted = u32::from(pairs - 1);
        Self::new(
            ADMIN_SET_FEATURES,
            id,
            0,
            0,
            0,
            [FEATURE_QUEUE_COUNT, wanted | (wanted << 16), 0, 0, 0, 0],
        )
    }

    /// Create I/O Completion Queue `queue` of `entries` at `base` (physically
    /// contiguous), signalling through MSI-X entry `vector` (IEN set, IV the entry), or
    /// with interrupts off when `None` (the queue is polled only).
    pub fn create_completion_queue(
        id: u16,
        queue: u16,
        entries: u32,
        base: u64,
        vector: Option<u16>,
    ) -> Self {
        let size = ((entries - 1) << 16) | u32::from(queue);
        let interrupts = vector.map_or(0, |v| (u32::from(v) << 16) | CQ_INTERRUPTS_ENABLED);
        let flags = CQ_PHYSICALLY_CONTIGUOUS | interrupts;
        Self::new(ADMIN_CREATE_CQ, id, 0, base, 0, [size, flags, 0, 0, 0, 0])
    }

    /// Create I/O Submission Queue `queue` of `entries` at `base` (physically
    /// contiguous), completing on completion queue `queue`.
    pub fn create_submission_queue(id: u16, queue: u16, entries: u32, base: u64) -> Self {
        let size = ((entries - 1) << 16) | u32::from(queue);
        let attributes = (u32::from(queue) << 16) | 1;
        Self::new(
            ADMIN_CREATE_SQ,
            id,
            0,
            base,
            0,
            [size, attributes, 0, 0, 0, 0],
        )
    }

    /// Delete I/O Submission Queue (`submission`) or Completion Queue (else) `queue`.
    pub fn delete_queue(id: u16, queue: u16, submission: bool) -> Self {
        let opcode = if submission {
            ADMIN_DELETE_SQ
        } else {
            ADMIN_DELETE_CQ
        };
        Self::new(opcode, id, 0, 0, 0, [u32::from(queue), 0, 0, 0, 0, 0])
    }

    /// Read or Write (`opcode`) of `sectors` sectors (1..=65536) from `lba` of namespace
    /// `nsid`, data at PRPs `prp1`/`prp2`.
    pub fn read_write(
        opcode: u8,
        id: u16,
        nsid: u32,
        lba: u64,
        sectors: u32,
        (prp1, prp2): (u64, u64),
    ) -> Self {
        let cdw = [lba as u32, (lba >> 32) as u32, sectors - 1, 0, 0, 0];
        Self::new(opcode, id, nsid, prp1, prp2, cdw)
    }

    /// Flush of namespace `nsid`.
    pub fn flush(id: u16, nsid: u32) -> Self {
        Self::new(IO_FLUSH, id, nsid, 0, 0, [0; 6])
    }

    /// The command identifier (dword 0 bits 31:16).
    #[cfg(test)]
    pub fn id(&self) -> u16 {
        (self.0[0] >> 16) as u16
    }
}

/// PRP entry 1 and 2 (4.1.1) for `bytes` of data in the page-aligned, physically
/// contiguous buffer at `buffer`: the second page itself when the data spans two pages,
/// else the PRP list at `list` (which holds the addresses of pages 2 onwards, see
/// [`prp_list_entry`]).
pub fn prps(buffer: u64, bytes: usize, list: u64) -> (u64, u64) {
    match bytes.div_ceil(PAGE) {
        0 | 1 => (buffer, 0),
        2 => (buffer, buffer + PAGE as u64),
        _ => (buffer, list),
    }
}

/// Entry `index` of the PRP list of the buffer at `buffer`: the address of its page
/// `index + 1` (entry 1 is PRP entry 1 itself).
pub fn prp_list_entry(buffer: u64, index: usize) -> u64 {
    buffer + ((index + 1) * PAGE) as u64
}

/// The phase tag bit of a completion entry's dword 3.
pub const CQ_PHASE: u32 = 1 << 16;

/// A completion queue entry's dwords 2 and 3 (4.6), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The submission queue it completes a command of.
    pub queue: u16,
    /// The command identifier.
    pub id: u16,
    /// The phase tag: the entry is new when it matches the queue's current phase.
    pub phase: bool,
    /// The status field (bits 14:0: SC 7:0, SCT 10:8, CRD, More, DNR); 0 is success.
    pub status: u16,
}

impl Completion {
    /// Decodes dwords 2 and 3.
    pub fn decode(dw2: u32, dw3: u32) -> Self {
        Self {
            queue: (dw2 >> 16) as u16,
            id: dw3 as u16,
            phase: dw3 & CQ_PHASE != 0,
            status: (dw3 >> 17) as u16,
        }
    }

    /// Whether the command failed (a status code or status code type other than 0).
    pub fn failed(&self) -> bool {
        self.status & 0x7FF != 0
    }
}

/// The largest transfer the controller takes: MDTS (a power of two of `min_page`
/// pages, 0 for no limit) in bytes, capped at `cap`.
pub fn max_transfer(mdts: u8, min_page: u64, cap: u64) -> u64 {
    if mdts == 0 || mdts >= 32 {
        cap
    } else {
        (min_page << mdts).min(cap)
    }
}

/// How long a controller whose Identify Controller gives `rtd3e` (RTD3E, microseconds;
/// 0: not reported) gets to finish a normal shutdown, in milliseconds: RTD3E rounded
/// up, at least [`SHUTDOWN_TIMEOUT_MIN_MS`] (some report less than they take, or
/// nothing) and at most [`SHUTDOWN_TIMEOUT_MAX_MS`] (a power-off waits for it).
pub fn shutdown_timeout_ms(rtd3e: u32) -> u64 {
    u64::from(rtd3e)
        .div_ceil(1_000)
        .clamp(SHUTDOWN_TIMEOUT_MIN_MS, SHUTDOWN_TIMEOUT_MAX_MS)
}

/// The I/O queue pairs the controller granted (Set Features Number of Queues'
/// completion dword 0: NSQA 15:0 and NCQA 31:16, 0-based), capped at `wanted`.
pub fn granted_pairs(dw0: u32, wanted: u16) -> u16 {
    let submission = (dw0 & 0xFFFF) + 1;
    let completion = (dw0 >> 16) + 1;
    submission.min(completion).min(u32::from(wanted)) as u16
}

/// The formatted LBA format of an Identify Namespace structure: (sector size in
/// bytes, metadata bytes per sector). [`DeviceError::BadIndex`] when FLBAS names a
/// format past the NLBAF formats of the table, [`DeviceError::Unsupported`] when the
/// format's sector size is not 512 B to 64 KiB.
pub fn lba_format(namespace: &[u8]) -> Result<(u32, u16), DeviceError> {
    let last = namespace[NS_NLBAF];
    let flbas = namespace[NS_FLBAS];
    let mut index = flbas & FLBAS_INDEX_LOW;
    if last >= NLBAF_WITH_HIGH_INDEX {
        // Below 17 formats bits 6:5 are reserved, and ignored.
        index |= (flbas & FLBAS_INDEX_HIGH) >> 1;
    }
    if index > last {
        return Err(DeviceError::BadIndex {
            what: NAMESPACE_FORMATS,
            index: index.into(),
            size: u32::from(last) + 1,
        });
    }
    // Within the page: 64 formats of 4 bytes from byte 128.
    let at = NS_LBA_FORMATS + 4 * usize::from(index);
    let format = &namespace[at..at + 4];
    let format = u32::from_le_bytes([format[0], format[1], format[2], format[3]]);
    let lbads = (format >> 16) & 0xFF;
    // Shifted only once in range: a device's LBADS may be up to 255.
    (9..=16)
        .contains(&lbads)
        .then(|| (1 << lbads, format as u16))
        .ok_or(DeviceError::Unsupported("a sector size of 512 B to 64 KiB"))
}

/// An Identify string field (ASCII, padded with spaces or NULs) as text, trimmed;
/// bytes outside printable ASCII become '?'.
pub fn identify_string(field: &[u8]) -> String {
    let text: String = field
        .iter()
        .map(|&b| match b {
            0 => ' ',
            0x20..=0x7E => char::from(b),
            _ => '?',
        })
        .collect();
    String::from(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_decode_qemus_register() {
        // Like QEMU's nvme: MQES 2047, CQR, TO 15, DSTRD 0, CSS NVM, MPSMIN 0, MPSMAX 4.
        let cap = 0x0040_0020_0F01_07FF;
        assert_eq!(
            Capabilities::decode(cap),
            Capabilities {
                max_queue_entries: 2048,
                doorbell_stride: 4,
                ready_timeout_ms: 7500,
                nvm_command_set: true,
                min_page: 4096,
            }
        );
        let strided = Capabilities::decode((3 << 32) | (1 << 48));
        assert_eq!((strided.doorbell_stride, strided.min_page), (32, 8192));
        assert_eq!(strided.ready_timeout_ms, 500);
        assert!(!strided.nvm_command_set);
    }

    #[test]
    fn doorbells_follow_the_stride() {
        assert_eq!(doorbell(0, false, 4), 0x1000);
        assert_eq!(doorbell(0, true, 4), 0x1004);
        assert_eq!(doorbell(3, false, 4), 0x1018);
        assert_eq!(doorbell(3, true, 16), 0x1000 + 7 * 16);
    }

    #[test]
    fn commands_put_fields_in_their_dwords() {
        let c = Command::read_write(IO_WRITE, 0x1234, 1, 0x1_0000_0002, 8, (0x5000, 0x6000));
        assert_eq!(c.0[0], 0x1234_0001);
        assert_eq!(c.0[1], 1);
        assert_eq!((c.0[6], c.0[7], c.0[8], c.0[9]), (0x5000, 0, 0x6000, 0));
        assert_eq!((c.0[10], c.0[11], c.0[12]), (2, 1, 7));
        let q = Command::create_submission_queue(9, 3, 65, 0x8000);
        assert_eq!(
            (q.0[0], q.0[6], q.0[10], q.0[11]),
            (0x0009_0001, 0x8000, (64 << 16) | 3, (3 << 16) | 1)
        );
        let q = Command::create_completion_queue(9, 3, 65, 0x9000, None);
        assert_eq!((q.0[0] & 0xFF, q.0[10], q.0[11]), (5, (64 << 16) | 3, 1));
        // Interrupts on (IEN, bit 1) through MSI-X entry 3 (IV, bits 31:16).
        let q = Command::create_completion_queue(9, 3, 65, 0x9000, Some(3));
        assert_eq!((q.0[10], q.0[11]), ((64 << 16) | 3, (3 << 16) | 0b11));
        let f = Command::set_queue_count(2, 4);
        assert_eq!((f.0[10], f.0[11]), (7, 0x0003_0003));
        let i = Command::identify(1, CNS_NAMESPACE, 1, 0x1_2345_6000);
        assert_eq!((i.0[1], i.0[6], i.0[7], i.0[10]), (1, 0x2345_6000, 1, 0));
        assert_eq!(Command::flush(7, 1).0[0], 0x0007_0000);
        let d = Command::delete_queue(4, 3, true);
        assert_eq!((d.0[0], d.0[10]), (0x0004_0000, 3));
        let d = Command::delete_queue(5, 3, false);
        assert_eq!((d.0[0], d.0[10]), (0x0005_0004, 3));
    }

    #[test]
    fn the_shutdown_timeout_is_rtd3e_between_5_and_60_seconds() {
        assert_eq!(shutdown_timeout_ms(0), 5_000, "not reported");
        assert_eq!(shutdown_timeout_ms(1), 5_000);
        assert_eq!(shutdown_timeout_ms(10_000_000), 10_000);
        assert_eq!(shutdown_timeout_ms(10_000_001), 10_001, "rounded up");
        assert_eq!(shutdown_timeout_ms(u32::MAX), 60_000);
    }

    #[test]
    fn prps_use_the_second_page_or_the_list() {
        assert_eq!(prps(0x10000, 512, 0x99000), (0x10000, 0));
        assert_eq!(prps(0x10000, 4096, 0x99000), (0x10000, 0));
        assert_eq!(prps(0x10000, 4097, 0x99000), (0x10000, 0x11000));
        assert_eq!(prps(0x10000, 8192, 0x99000), (0x10000, 0x11000));
        assert_eq!(prps(0x10000, 8193, 0x99000), (0x10000, 0x99000));
        assert_eq!(prp_list_entry(0x10000, 0), 0x11000);
        assert_eq!(prp_list_entry(0x10000, 14), 0x1F000);
    }

    #[test]
    fn completions_decode_phase_id_and_status() {
        let ok = Completion::decode(0x0002_0005, 0x0001_0003);
        assert_eq!((ok.queue, ok.id, ok.phase, ok.status), (2, 3, true, 0));
        assert!(!ok.failed());
        // SCT 0, SC 0x80 (LBA out of range), DNR set, phase 0.
        let bad = Completion::decode(0, ((0x4000 | 0x80) << 17) | 9);
        assert_eq!((bad.id, bad.phase, bad.status), (9, false, 0x4080));
        assert!(bad.failed());
        // More and DNR alone are no failure.
        assert!(!Completion::decode(0, 0x6000 << 17).failed());
    }

    #[test]
    fn transfer_limits_and_queue_grants() {
        assert_eq!(max_transfer(0, 4096, 65536), 65536);
        assert_eq!(max_transfer(7, 4096, 65536), 65536);
        assert_eq!(max_transfer(2, 4096, 65536), 16384);
        assert_eq!(max_transfer(40, 4096, 65536), 65536);
        assert_eq!(granted_pairs(0x0003_0003, 4), 4);
        assert_eq!(granted_pairs(0x003F_003F, 4), 4);
        assert_eq!(granted_pairs(0x0000_0001, 4), 1);
        assert_eq!(granted_pairs(0x0001_0002, 4), 2);
    }

    /// What [`lba_format`] says of a sector size it does not take.
    const NO_SECTOR_SIZE: DeviceError =
        DeviceError::Unsupported("a sector size of 512 B to 64 KiB");

    /// Writes LBA format `index` of `ns` with data size 2^`lbads` and `metadata` bytes.
    fn set_format(ns: &mut [u8], index: usize, lbads: u8, metadata: u16) {
        let format = (u32::from(lbads) << 16) | u32::from(metadata);
        let at = NS_LBA_FORMATS + 4 * index;
        ns[at..at + 4].copy_from_slice(&format.to_le_bytes());
    }

    #[test]
    fn namespaces_give_their_sector_size() {
        let mut ns = [0u8; 4096];
        ns[NS_NLBAF] = 1;
        ns[NS_FLBAS] = 1;
        set_format(&mut ns, 1, 12, 8);
        assert_eq!(lba_format(&ns), Ok((4096, 8)));
        ns[NS_FLBAS] = 0;
        assert_eq!(lba_format(&ns), Err(NO_SECTOR_SIZE));
        set_format(&mut ns, 0, 9, 0);
        assert_eq!(lba_format(&ns), Ok((512, 0)));
    }

    #[test]
    fn format_indexes_take_flbas_high_bits_from_17_formats_on_and_stay_within_nlbaf() {
        let mut ns = [0u8; 4096];
        set_format(&mut ns, 1, 9, 0);
        set_format(&mut ns, 17, 12, 0);
        set_format(&mut ns, 33, 13, 0);
        let past = |index, formats| {
            Err(DeviceError::BadIndex {
                what: NAMESPACE_FORMATS,
                index,
                size: formats,
            })
        };
        let cases = [
            // FLBAS bits 6:5 = 01 and 3:0 = 1: format 17 of a table of 18.
            (17, 0x21, Ok((4096, 0))),
            (63, 0x41, Ok((8192, 0))),
            // With 16 formats or fewer bits 6:5 are reserved: format 1.
            (15, 0x21, Ok((512, 0))),
            // NLBAF is 0-based: format 1 of a table of 1, 17 of 17, 2 of 2.
            (0, 0x01, past(1, 1)),
            (16, 0x21, past(17, 17)),
            (1, 0x02, past(2, 2)),
        ];
        for (last, flbas, expected) in cases {
            ns[NS_NLBAF] = last;
            ns[NS_FLBAS] = flbas;
            assert_eq!(lba_format(&ns), expected, "NLBAF {last}, FLBAS {flbas:#x}");
        }
    }

    #[test]
    fn an_lba_data_size_past_a_u32_shift_is_no_format() {
        let mut ns = [0u8; 4096];
        for lbads in [32, 0xFF] {
            set_format(&mut ns, 0, lbads, 0);
            assert_eq!(lba_format(&ns), Err(NO_SECTOR_SIZE), "LBADS {lbads}");
        }
    }

    #[test]
    fn identify_strings_are_trimmed() {
        assert_eq!(
            identify_string(b"QEMU NVMe Ctrl                          "),
            "QEMU NVMe Ctrl"
        );
        assert_eq!(identify_string(b"  8.2\0\0\0"), "8.2");
        assert_eq!(identify_string(&[b'a', 0xFF, b'b', b' ']), "a?b");
        assert_eq!(identify_string(&[b' '; 40]), "");
    }
}
