//! One AHCI port and the ATA disk on it: the command list, received-FIS area and
//! per-slot command tables (AHCI 4.2) in one DMA block, a data buffer per slot, and the
//! slot bookkeeping. Commands are prepared at submit and issued together (one PxSACT
//! and one PxCI write) at the next poll; completion is a PxSACT (queued) or PxCI bit
//! going clear.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use rexo_api::device::DISK_SHUT_DOWN;
use rexo_api::{BlockDevice, BlockInfo, Completion, DeviceError, Leaving, Tag};
use rexo_ata::command::{
    self, Command, Direction, LOG_PAGE_BYTES, NCQ_COMMAND_ERROR_LOG, Operation, Protocol,
    RefusedCommand, STATUS_BSY, STATUS_DRQ,
};
use rexo_ata::identify::{IDENTIFY_BYTES, Identity, SECTOR_BYTES};
use rexo_devio::{Dma, Mmio, NS_PER_MS, Platform, barrier, pause};

use crate::fis::{FIS_BYTES, register_h2d};
use crate::{CAP_S64A, CAP_SNCQ, Wake};

/// PxCLB: the command list's address (1 KiB aligned).
const PX_CLB: usize = 0x00;
/// PxCLBU: the command list address's upper 32 bits.
const PX_CLBU: usize = 0x04;
/// PxFB: the received-FIS area's address (256-byte aligned).
const PX_FB: usize = 0x08;
/// PxFBU: the received-FIS area address's upper 32 bits.
const PX_FBU: usize = 0x0C;
/// PxIS: interrupt status (write 1 to clear).
const PX_IS: usize = 0x10;
/// PxIE: interrupt enable (0 unless the port is armed to wake a core).
const PX_IE: usize = 0x14;
/// PxCMD: command and status.
const PX_CMD: usize = 0x18;
/// PxTFD: the task file: status in bits 7:0, error in bits 15:8.
const PX_TFD: usize = 0x20;
/// PxSIG: the signature of the attached device.
const PX_SIG: usize = 0x24;
/// PxSSTS: SATA status (DET in bits 3:0).
const PX_SSTS: usize = 0x28;
/// PxSCTL: SATA control (DET in bits 3:0 starts a COMRESET).
const PX_SCTL: usize = 0x2C;
/// PxSERR: SATA error (write 1 to clear).
const PX_SERR: usize = 0x30;
/// PxSACT: queued commands outstanding, one bit per slot.
const PX_SACT: usize = 0x34;
/// PxCI: commands issued, one bit per slot.
const PX_CI: usize = 0x38;

/// PxCMD: start (process the command list).
const CMD_ST: u32 = 1 << 0;
/// PxCMD: spin up device.
const CMD_SUD: u32 = 1 << 1;
/// PxCMD: power on device.
const CMD_POD: u32 = 1 << 2;
/// PxCMD: FIS receive enable.
const CMD_FRE: u32 = 1 << 4;
/// PxCMD: FIS receive running.
const CMD_FR: u32 = 1 << 14;
/// PxCMD: command list running.
const CMD_CR: u32 = 1 << 15;

/// PxIS: task file error (the device reported ERR).
const IS_TFES: u32 = 1 << 30;
/// PxIS: host bus fatal error.
const IS_HBFS: u32 = 1 << 29;
/// PxIS: host bus data error.
const IS_HBDS: u32 = 1 << 28;
/// PxIS: interface fatal error.
const IS_IFS: u32 = 1 << 27;
/// PxIS: interface non-fatal error (AHCI 3.3.5: the HBA met an error on the SATA
/// interface and carried on; PxCMD.ST stays set and the command list keeps running).
const IS_INFS: u32 = 1 << 26;
/// PxIS: overflow (the device sent more data than the PRDs hold).
const IS_OFS: u32 = 1 << 24;
/// Every PxIS error that stops the command list: the port must be recovered (INFS is
/// not one).
const IS_FATAL: u32 = IS_TFES | IS_HBFS | IS_HBDS | IS_IFS | IS_OFS;
/// PxIS: a Set Device Bits FIS arrived (queued commands finished).
const IS_SDBS: u32 = 1 << 3;
/// PxIS: a DMA Setup FIS arrived.
const IS_DSS: u32 = 1 << 2;
/// PxIS: a PIO Setup FIS arrived.
const IS_PSS: u32 = 1 << 1;
/// PxIS: a D2H Register FIS arrived (a non-queued command finished).
const IS_DHRS: u32 = 1 << 0;
/// The PxIS causes that say a command finished.
const IS_DONE: u32 = IS_SDBS | IS_DSS | IS_PSS | IS_DHRS;

/// PxSERR DIAG.X and DIAG.N: device presence and PHY ready changes, reflected in PxIS.PCS
/// and PxIS.PRCS; link events, left for whoever handles those.
const SERR_LINK_CHANGES: u32 = (1 << 26) | (1 << 16);

/// PxSSTS/PxSCTL DET field.
const DET_MASK: u32 = 0xF;
/// PxSSTS.DET: device presence detected, PHY communication not established (yet).
const DET_PRESENT: u32 = 1;
/// PxSSTS.DET: device present and PHY communication established.
const DET_ESTABLISHED: u32 = 3;
/// PxSCTL.DET: perform interface initialisation (COMRESET).
const DET_COMRESET: u32 = 1;

/// PxSIG of an ATA disk.
const SIG_ATA: u32 = 0x0000_0101;
/// PxSIG of an ATAPI device.
const SIG_ATAPI: u32 = 0xEB14_0101;
/// PxSIG of an enclosure management bridge.
const SIG_SEMB: u32 = 0xC33C_0101;
/// PxSIG of a port multiplier.
const SIG_PM: u32 = 0x9669_0101;

/// Command slots at most (AHCI: 32 per port).
const MAX_SLOTS: usize = 32;
/// Offset of the command list in the tables block: 32 headers of 32 bytes.
const COMMAND_LIST: usize = 0x000;
/// Bytes per command header.
const HEADER_BYTES: usize = 32;
/// Offset in a command header of DW1, PRDBC: the bytes the HBA moved.
const HEADER_PRDBC: usize = 4;
/// Offset in a command header of DW2-3, CTBA: the command table's address.
const HEADER_CTBA: usize = 8;
/// Offset of the received-FIS area (256 bytes).
const RECEIVED_FIS: usize = 0x400;
/// Offset of slot 0's command table; each is 128-byte aligned.
const COMMAND_TABLES: usize = 0x800;
/// Bytes per command table: the command FIS area (0x80) and one PRD entry, rounded
/// up to the 128-byte alignment.
const TABLE_STRIDE: usize = 0x100;
/// Offset of the PRD table in a command table.
const TABLE_PRDT: usize = 0x80;
/// Offset of the command table of READ LOG EXT after an NCQ error, past the slots' own:
/// every slot may hold a command to issue again, so the log read borrows slot 0's
/// command header only ([`AhciDisk::read_ncq_error_log`]).
const LOG_TABLE: usize = COMMAND_TABLES + MAX_SLOTS * TABLE_STRIDE;
/// Offset of the page READ LOG EXT reads into (its table's one PRD entry points here).
const LOG_PAGE: usize = LOG_TABLE + TABLE_STRIDE;
/// Bytes of the tables block.
const TABLES_BYTES: usize = LOG_PAGE + LOG_PAGE_BYTES;

/// Command header DW0: the command FIS length in dwords (bits 4:0).
const HEADER_CFL: u32 = (FIS_BYTES / 4) as u32;
/// Command header DW0: the command writes to the device.
const HEADER_WRITE: u32 = 1 << 6;
/// Command header DW0: PRD entries (bits 31:16), always one here.
const HEADER_ONE_PRD: u32 = 1 << 16;

/// Offset of `slot`'s command header in the tables block.
fn header(slot: usize) -> usize {
    COMMAND_LIST + slot * HEADER_BYTES
}

/// Offset of `slot`'s command table in the tables block.
fn table(slot: usize) -> usize {
    COMMAND_TABLES + slot * TABLE_STRIDE
}

/// The sectors one request may cover (each slot's buffer is 64 KiB).
const BUFFER_SECTORS: u32 = 128;
/// How long IDENTIFY may take.
const IDENTIFY_TIMEOUT_MS: u64 = 1_000;
/// How long READ LOG EXT of the NCQ Command Error log may take (one page the device
/// keeps, as IDENTIFY's).
const LOG_TIMEOUT_MS: u64 = 1_000;
/// How long the command list or FIS engine may take to stop (AHCI 10.1.2: 500 ms).
const STOP_TIMEOUT_MS: u64 = 500;
/// How long the device may stay busy after a COMRESET (of a port in use, its disk spun up
/// already, or of one wedged busy past [`SPIN_UP_TIMEOUT_MS`]; QEMU's needs none).
const READY_TIMEOUT_MS: u64 = 5_000;
/// How long a device whose link is up may stay busy (BSY or DRQ) when its port is first
/// started: a 3.5" disk takes 7 to 15 s to spin up (once PxCMD.SUD starts it, or cold on
/// a port the firmware never touched), and ATA allows up to 31 s for BSY to clear after
/// power-on or a reset (ATA8-ACS; Linux waits ATA_TMOUT_BOOT, 30 s, at probe). A COMRESET
/// meanwhile could start the spin-up over, so none is sent before it runs out (then one,
/// for a device wedged busy); QEMU's disks are ready at once. Every port's device spins
/// up at the same time, so the bound is one for all of them ([`spin_up_deadline`]).
const SPIN_UP_TIMEOUT_MS: u64 = 31_000;
/// How long a port's device is waited for at least when the ports started before it
/// used up the spin-up bound: it spun up alongside theirs, so it had the whole bound
/// too, and gets a look rather than a wait.
const LATE_SPIN_UP_WAIT_MS: u64 = 100;
/// How long COMRESET is held (AHCI 10.4.2: at least 1 ms).
const COMRESET_HOLD_NS: u64 = 1_000_000;
/// How long every port's link may take to come up after the HBA reset (the PHY's
/// out-of-band handshake takes a few ms): a port that shows no device by then
/// (PxSSTS.DET 0) is empty, and costs the boot no more.
const LINK_TIMEOUT_MS: u64 = 50;
/// How long, in all, the link of a port that shows a device present may take to come
/// up after the HBA reset (PxSSTS.DET 1: the PHY saw the device, its handshake is not
/// done); a slow link is not taken for an empty port, which the driver never looks at
/// again (no hot-plug).
const PRESENT_LINK_TIMEOUT_MS: u64 = 1_000;

/// Powers and spins up the port's device (AHCI 10.10.1; SUD only matters with
/// staggered spin-up, POD only with cold presence detection, both harmless otherwise).
pub(crate) fn spin_up(registers: &Mmio, staggered: bool) {
    let command = registers.read32(PX_CMD);
    let up = if staggered {
        CMD_SUD | CMD_POD
    } else {
        CMD_POD
    };
    registers.write32(PX_CMD, command | up);
}

/// When every port's device must have spun up ([`SPIN_UP_TIMEOUT_MS`] from now): taken
/// once the links are up, since every port's device spins up at once (from
/// [`spin_up`]), so that N ports busy past the bound cost it once, not N times.
pub(crate) fn spin_up_deadline(platform: &dyn Platform) -> u64 {
    platform.now_ns() + SPIN_UP_TIMEOUT_MS * NS_PER_MS
}

/// Whether a device is present with the link established.
fn linked(registers: &Mmio) -> bool {
    registers.read32(PX_SSTS) & DET_MASK == DET_ESTABLISHED
}

/// Whether a device is present whose link is not established yet (PxSSTS.DET 1; AHCI
/// 1.3.1 3.3.10).
fn link_coming_up(registers: &Mmio) -> bool {
    registers.read32(PX_SSTS) & DET_MASK == DET_PRESENT
}

/// Waits for the links of `ports` (number, registers) after the HBA reset: up to
/// [`LINK_TIMEOUT_MS`] for all of them, then, up to [`PRESENT_LINK_TIMEOUT_MS`] in all,
/// only while a port shows a device whose link is not established yet (DET 1). A port
/// with no device (DET 0) or offline (DET 4) is not waited for past the first bound;
/// one still without a link at the end is logged, and [`AhciDisk::start`] skips it.
pub(crate) fn wait_for_links(platform: &dyn Platform, ports: &[(u8, Mmio)]) {
    let all = rexo_devio::wait_until(platform, "SATA links", LINK_TIMEOUT_MS, || {
        ports.iter().all(|(_, registers)| linked(registers))
    });
    if all.is_ok() {
        return;
    }
    let present = rexo_devio::wait_until(
        platform,
        "the SATA links of present devices",
        PRESENT_LINK_TIMEOUT_MS - LINK_TIMEOUT_MS,
        || {
            ports
                .iter()
                .all(|(_, registers)| !link_coming_up(registers))
        },
    );
    if present.is_err() {
        for (number, _) in ports
            .iter()
            .filter(|(_, registers)| link_coming_up(registers))
        {
            log::warn!(
                "ahci: port {number}: a device is present but its link did not come up \
                 within {PRESENT_LINK_TIMEOUT_MS} ms"
            );
        }
    }
}

/// A request holding a slot.
#[derive(Clone, Copy, Debug)]
struct Request {
    /// What it does.
    operation: Operation,
    /// Sectors it moves.
    sectors: u32,
    /// When it is late: issued (its PxSACT/PxCI write) plus its operation's
    /// [`Operation::timeout_ms`] (platform clock, ns); `None` while it waits to be issued.
    deadline: Option<u64>,
}

/// The slot `slot`'s bit in PxSACT/PxCI.
fn bit(slot: usize) -> u32 {
    1 << slot
}

/// The slots of `mask`, lowest first.
fn slots_of(mask: u32) -> impl Iterator<Item = usize> {
    (0..MAX_SLOTS).filter(move |&slot| mask & bit(slot) != 0)
}

/// The lowest slot below `depth` not in `busy`.
fn free_slot(busy: u32, depth: usize) -> Option<usize> {
    let slot = (!busy).trailing_zeros() as usize;
    (slot < depth).then_some(slot)
}

/// One ATA disk on an AHCI port.
pub struct AhciDisk {
    /// The port's registers.
    registers: Mmio,
    /// The port number (for messages).
    number: u8,
    /// Command list, received FIS and command tables.
    tables: Dma,
    /// Each slot's data buffer.
    buffers: Vec<Dma>,
    /// The request holding each slot.
    requests: [Option<Request>; MAX_SLOTS],
    /// Slots prepared but not yet issued.
    ready: u32,
    /// Non-queued commands (a flush among queued ones or behind another flush) waiting
    /// for the port to be idle: SATA cannot mix the two kinds, and each is issued alone
    /// (see [`Self::issue`]), in the order submitted: a slot says nothing of it, as a
    /// later command may take a lower slot. A timeout fails them with the late command
    /// ([`Self::abort_if_late`]).
    held: VecDeque<usize>,
    /// Slots the HBA has.
    issued: u32,
    /// Queued commands to issue again one at a time, each alone in the queue, before
    /// anything else: those outstanding at an NCQ error whose failed command the log did
    /// not name ([`Self::recover_queued`]).
    retrying: u32,
    /// Which ready/issued slots are NCQ commands (a held one never is: only non-queued
    /// commands are held).
    queued: u32,
    /// No issued command's deadline is earlier (`u64::MAX` after an abort): a lower bound
    /// that costs each poll one comparison, left as it is when commands finish and made
    /// exact again only once it has passed.
    earliest_deadline: u64,
    /// What IDENTIFY said.
    identity: Identity,
    /// READ/WRITE FPDMA QUEUED, or one DMA EXT command at a time.
    ncq: bool,
    /// Slots used.
    depth: usize,
    /// Set when the port could not be recovered; every call then fails.
    failed: Option<&'static str>,
    /// Shut down for a power-off or reboot ([`BlockDevice::shut_down`]): every later
    /// request, poll and arming is refused with [`DISK_SHUT_DOWN`].
    shut_down: bool,
    /// The clock.
    platform: &'static dyn Platform,
    /// The controller's interrupt message, when it has MSI or MSI-X.
    wake: Option<Arc<Wake>>,
    /// PxIE is on: the next finished command (or error) wakes the core armed.
    armed: bool,
    /// Interface non-fatal errors cleared so far (logged at each power of two).
    non_fatal_errors: u64,
}

impl AhciDisk {
    /// Sets up port `number` (registers `registers`, HBA capabilities `cap`, `slots`
    /// command slots, the HBA's interrupt message `wake`) and identifies its disk, whose
    /// device is waited for until `spin_up_by_ns` ([`spin_up_deadline`]; at least
    /// [`LATE_SPIN_UP_WAIT_MS`]); `None` (logged) when the port holds no ATA disk (AHCI
    /// 10.1.2 for the port initialisation).
    pub(crate) fn start(
        registers: Mmio,
        number: u8,
        cap: u32,
        slots: u32,
        platform: &'static dyn Platform,
        wake: Option<Arc<Wake>>,
        spin_up_by_ns: u64,
    ) -> Result<Option<Self>, DeviceError> {
        if !linked(&registers) {
            log::info!("ahci: port {number}: empty");
            return Ok(None);
        }
        let mut disk = Self::new(registers, number, platform, wake)?;
        disk.check_reachable(cap, &disk.tables)?;
        disk.check_reachable(cap, &disk.buffers[0])?;
        disk.stop()?;
        // AHCI registers take dword accesses only (AHCI 3): each address in two halves.
        let list = disk.tables.phys() + COMMAND_LIST as u64;
        let received = disk.tables.phys() + RECEIVED_FIS as u64;
        disk.registers.write32(PX_CLB, list as u32);
        disk.registers.write32(PX_CLBU, (list >> 32) as u32);
        disk.registers.write32(PX_FB, received as u32);
        disk.registers.write32(PX_FBU, (received >> 32) as u32);
        disk.registers.write32(PX_SERR, u32::MAX);
        disk.registers.write32(PX_IS, u32::MAX);
        disk.registers.write32(PX_IE, 0);
        let command = disk.registers.read32(PX_CMD);
        disk.registers.write32(PX_CMD, command | CMD_FRE);
        // The device's first D2H FIS (which also sets PxSIG) clears BSY, once it spun up;
        // one still busy past ATA's bound is wedged (a command firmware left it in), and
        // gets one COMRESET.
        let left_ms = spin_up_by_ns.saturating_sub(platform.now_ns()) / NS_PER_MS;
        if disk.wait_idle(left_ms.max(LATE_SPIN_UP_WAIT_MS)).is_err() {
            disk.comreset()?;
        }
        let signature = disk.registers.read32(PX_SIG);
        if signature != SIG_ATA {
            let what = match signature {
                SIG_ATAPI => "an ATAPI device",
                SIG_SEMB => "an enclosure management bridge",
                SIG_PM => "a port multiplier",
                _ => "an unknown device",
            };
            log::info!("ahci: port {number}: {what} (signature {signature:#010x}), skipped");
            disk.stop()?;
            return Ok(None);
        }
        disk.registers
            .write32(PX_CMD, disk.registers.read32(PX_CMD) | CMD_ST);
        disk.attach_buffer(0);
        disk.identity = Identity::parse(disk.identify()?)?;
        if let Some(warning) = disk.identity.capacity_warning() {
            log::warn!("ahci: port {number}: {warning}");
        }
        disk.ncq = cap & CAP_SNCQ != 0 && disk.identity.ncq_depth.is_some();
        let depth = match disk.identity.ncq_depth {
            Some(depth) if disk.ncq => depth.min(slots) as usize,
            _ => 1,
        }
        .min(MAX_SLOTS);
        disk.add_slots(depth, cap)?;
        log::info!(
            "ahci: port {number}: {:?}, {} sectors, {}",
            disk.identity.model,
            disk.identity.sectors,
            if disk.ncq {
                alloc::format!("NCQ, {} in flight", disk.depth)
            } else {
                alloc::string::String::from("DMA EXT, one at a time")
            }
        );
        Ok(Some(disk))
    }

    /// Port `number`'s disk, idle: its command list, FIS area and command tables, slot
    /// 0's buffer (not yet attached), one slot, no NCQ, and the identity unknown
    /// (IDENTIFY fills it in).
    fn new(
        registers: Mmio,
        number: u8,
        platform: &'static dyn Platform,
        wake: Option<Arc<Wake>>,
    ) -> Result<Self, DeviceError> {
        let mut tables = Dma::new(platform, TABLES_BYTES)?;
        let log_page = tables.phys() + LOG_PAGE as u64;
        tables.write64(LOG_TABLE + TABLE_PRDT, log_page);
        let first_buffer = Dma::new(platform, (BUFFER_SECTORS * SECTOR_BYTES) as usize)?;
        Ok(Self {
            registers,
            number,
            tables,
            buffers: alloc::vec![first_buffer],
            requests: [None; MAX_SLOTS],
            ready: 0,
            held: VecDeque::with_capacity(MAX_SLOTS),
            issued: 0,
            retrying: 0,
            queued: 0,
            earliest_deadline: u64::MAX,
            identity: Identity::default(),
            ncq: false,
            depth: 1,
            failed: None,
            shut_down: false,
            platform,
            wake,
            armed: false,
            non_fatal_errors: 0,
        })
    }

    /// Gives the disk `depth` slots: a buffer for each slot past the first (refused above
    /// 4 GiB when `cap` lacks 64-bit addressing), attached to it.
    fn add_slots(&mut self, depth: usize, cap: u32) -> Result<(), DeviceError> {
        self.depth = depth;
        while self.buffers.len() < depth {
            let buffer = Dma::new(self.platform, (BUFFER_SECTORS * SECTOR_BYTES) as usize)?;
            self.check_reachable(cap, &buffer)?;
            self.buffers.push(buffer);
        }
        for slot in 1..depth {
            self.attach_buffer(slot);
        }
        Ok(())
    }

    /// Points `slot`'s command header at its command table, and the table's one PRD
    /// entry at the slot's buffer (both fixed; commands change only the rest).
    fn attach_buffer(&mut self, slot: usize) {
        self.point_header_at(slot, table(slot));
        self.tables
            .write64(table(slot) + TABLE_PRDT, self.buffers[slot].phys());
    }

    /// Points `slot`'s command header at the command table at offset `table`.
    fn point_header_at(&mut self, slot: usize, table: usize) {
        let table_address = self.tables.phys() + table as u64;
        self.tables
            .write64(header(slot) + HEADER_CTBA, table_address);
    }

    /// Refuses memory above 4 GiB when the HBA has only 32-bit addresses.
    fn check_reachable(&self, cap: u32, memory: &Dma) -> Result<(), DeviceError> {
        let end = memory.phys() + memory.len() as u64;
        if cap & CAP_S64A == 0 && end > 1 << 32 {
            return Err(DeviceError::Unsupported("64-bit DMA addresses"));
        }
        Ok(())
    }

    /// Stops the command list (PxCMD.ST cleared, PxCMD.CR waited for).
    fn stop_command_list(&self) -> Result<(), DeviceError> {
        let registers = &self.registers;
        registers.write32(PX_CMD, registers.read32(PX_CMD) & !CMD_ST);
        rexo_devio::wait_until(
            self.platform,
            "the AHCI command list to stop",
            STOP_TIMEOUT_MS,
            || registers.read32(PX_CMD) & CMD_CR == 0,
        )
    }

    /// Stops the command list and FIS engines (AHCI 10.1.2).
    fn stop(&mut self) -> Result<(), DeviceError> {
        self.stop_command_list()?;
        let registers = &self.registers;
        registers.write32(PX_CMD, registers.read32(PX_CMD) & !CMD_FRE);
        rexo_devio::wait_until(
            self.platform,
            "the AHCI FIS receive to stop",
            STOP_TIMEOUT_MS,
            || registers.read32(PX_CMD) & CMD_FR == 0,
        )
    }

    /// Waits up to `timeout_ms` until the device is neither busy nor wanting data (a
    /// `Timeout` naming "the SATA device to be ready" past it).
    fn wait_idle(&self, timeout_ms: u64) -> Result<(), DeviceError> {
        let what = "the SATA device to be ready";
        rexo_devio::wait_until(self.platform, what, timeout_ms, || {
            self.registers.read32(PX_TFD) & u32::from(STATUS_BSY | STATUS_DRQ) == 0
        })
    }

    /// Resets the link and the device (COMRESET, AHCI 10.4.2) and waits for it.
    fn comreset(&mut self) -> Result<(), DeviceError> {
        let control = self.registers.read32(PX_SCTL) & !DET_MASK;
        self.registers.write32(PX_SCTL, control | DET_COMRESET);
        pause(self.platform, COMRESET_HOLD_NS);
        self.registers.write32(PX_SCTL, control);
        rexo_devio::wait_until(
            self.platform,
            "the SATA link after COMRESET",
            READY_TIMEOUT_MS,
            || linked(&self.registers),
        )?;
        self.registers.write32(PX_SERR, u32::MAX);
        self.wait_idle(READY_TIMEOUT_MS)
    }

    /// Writes `command` into `slot`'s command table and header; `bytes` of data move
    /// through the slot's buffer.
    fn prepare(&mut self, slot: usize, command: &Command, write: bool, bytes: usize) {
        self.write_command(table(slot), slot, command, write, bytes);
    }

    /// Writes `command` into the command table at offset `table` and into `slot`'s
    /// header (not its table address); `bytes` of data move through the table's PRD.
    fn write_command(
        &mut self,
        table: usize,
        slot: usize,
        command: &Command,
        write: bool,
        bytes: usize,
    ) {
        for (i, dword) in register_h2d(command).chunks_exact(4).enumerate() {
            let value = u32::from_le_bytes([dword[0], dword[1], dword[2], dword[3]]);
            self.tables.write32(table + 4 * i, value);
        }
        // PRD DW3: byte count minus one (bit 0 set: counts are even), no interrupt.
        self.tables
            .write32(table + TABLE_PRDT + 12, (bytes.max(2) - 1) as u32);
        let direction = if write { HEADER_WRITE } else { 0 };
        let prds = if bytes == 0 { 0 } else { HEADER_ONE_PRD };
        self.tables
            .write32(header(slot), HEADER_CFL | direction | prds);
        self.tables.write32(header(slot) + HEADER_PRDBC, 0);
    }

    /// Runs IDENTIFY DEVICE in slot 0 and returns its data.
    fn identify(&mut self) -> Result<&[u8], DeviceError> {
        self.prepare(0, &Command::identify(), false, IDENTIFY_BYTES);
        barrier();
        self.registers.write32(PX_CI, bit(0));
        let registers = &self.registers;
        rexo_devio::wait_until(self.platform, "IDENTIFY", IDENTIFY_TIMEOUT_MS, || {
            registers.read32(PX_CI) & bit(0) == 0 || registers.read32(PX_IS) & IS_FATAL != 0
        })?;
        self.identify_data()
    }

    /// The data of the IDENTIFY DEVICE that slot 0 finished: an error when the HBA
    /// reported a fatal one (the port is restarted) or moved fewer than its 512 bytes by
    /// PRDBC (slot 0's buffer then holds no identity: zeroes, as it was allocated).
    fn identify_data(&mut self) -> Result<&[u8], DeviceError> {
        if self.registers.read32(PX_IS) & IS_FATAL != 0 {
            let status = self.registers.read32(PX_TFD);
            self.restart(false)?;
            return Err(DeviceError::Status {
                what: "IDENTIFY DEVICE",
                status,
            });
        }
        let moved = self.tables.read32(header(0) + HEADER_PRDBC);
        if moved < IDENTIFY_BYTES as u32 {
            return Err(DeviceError::Status {
                what: "IDENTIFY DEVICE (the HBA moved fewer than 512 bytes; status: the bytes \
                       it moved)",
                status: moved,
            });
        }
        Ok(self.buffers[0].bytes(0, IDENTIFY_BYTES))
    }

    /// Brings the port back after an error or a timeout (AHCI 6.2.2): stop, clear the
    /// errors, COMRESET when the device is stuck or was running queued commands (an NCQ
    /// error leaves it refusing new ones until reset, or until its NCQ Command Error log
    /// is read: [`Self::recover_queued`] restarts without one to read it), start.
    fn restart(&mut self, was_queued: bool) -> Result<(), DeviceError> {
        self.stop_command_list()?;
        let registers = &self.registers;
        registers.write32(PX_SERR, u32::MAX);
        self.clear_interrupt_status(u32::MAX);
        let stuck = registers.read32(PX_TFD) & u32::from(STATUS_BSY | STATUS_DRQ) != 0;
        if stuck || was_queued {
            self.comreset()?;
        }
        self.registers
            .write32(PX_CMD, self.registers.read32(PX_CMD) | CMD_ST);
        Ok(())
    }

    /// Slots holding a request, issued or not.
    fn busy(&self) -> u32 {
        let held = self.held.iter().fold(0, |mask, &slot| mask | bit(slot));
        self.ready | held | self.issued | self.retrying
    }

    /// [`DISK_SHUT_DOWN`] once the disk was shut down, `Failed` once the port could not
    /// be recovered.
    fn usable(&self) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        self.failed
            .map_or(Ok(()), |why| Err(DeviceError::Failed(why)))
    }

    /// Takes a slot for `operation` and prepares its command; issued at the next poll.
    fn submit(
        &mut self,
        queue: usize,
        operation: Operation,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<Tag, DeviceError> {
        self.usable()?;
        if queue != 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        let transfer = matches!(operation, Operation::Transfer(_));
        if transfer {
            command::check_range(lba, sectors, self.identity.sectors, BUFFER_SECTORS)?;
        }
        let queued = self.ncq && transfer;
        let busy = self.busy();
        // Queued commands wait behind a non-queued one; a non-queued one among queued
        // ones, or behind another non-queued one, is held until they finish (SATA runs
        // one kind at a time, and non-queued commands one at a time).
        let non_queued_pending = busy & !self.queued != 0;
        if queued && non_queued_pending {
            return Err(DeviceError::QueueFull);
        }
        let slot = free_slot(busy, self.depth).ok_or(DeviceError::QueueFull)?;
        let bytes = (sectors * SECTOR_BYTES) as usize;
        // `sectors` is at most BUFFER_SECTORS (checked), which fits the count fields.
        let command = match operation {
            Operation::Flush => Command::flush(self.identity.lba48),
            Operation::Standby => Command::standby_immediate(),
            Operation::Transfer(direction) if queued => {
                Command::queued(direction, lba, sectors as u16, slot as u8)
            }
            Operation::Transfer(direction) => Command::transfer(
                direction,
                Protocol::Dma,
                self.identity.lba48,
                lba,
                sectors as u16,
            ),
        };
        let write = operation == Operation::Transfer(Direction::Write);
        if write && !fill(self.buffers[slot].bytes_mut(0, bytes)) {
            // The slot was not taken yet: nothing to give back.
            return Err(DeviceError::Withdrawn);
        }
        if queued && !write {
            // A queued read is not held to PRDBC (`poll`): one reported done without
            // its data would lend what the slot's buffer held before, an earlier
            // request's sectors, perhaps an earlier holder's. So it lends zeros
            // instead; writing its bytes of memory is small beside the disk's transfer.
            self.buffers[slot].bytes_mut(0, bytes).fill(0);
        }
        self.prepare(slot, &command, write, bytes);
        self.requests[slot] = Some(Request {
            operation,
            sectors,
            deadline: None,
        });
        if queued {
            self.queued |= bit(slot);
            self.ready |= bit(slot);
        } else if busy != 0 {
            self.held.push_back(slot);
        } else {
            self.ready |= bit(slot);
        }
        Ok(slot as Tag)
    }

    /// Issues the prepared slots with one write of each doorbell (AHCI 5.3.2: PxSACT
    /// before PxCI for queued commands), and the oldest held command once nothing else is
    /// issued, the others held until it ends: the HBA may run the non-queued commands of
    /// one PxCI write in any order (AHCI 1.3.1 5.3.2), so an error could not be pinned
    /// to one of them, and `poll` fails the one issued. While commands are to be retried
    /// after an NCQ error ([`Self::recover_queued`]) only they go, the lowest slot first,
    /// each once the one before ended, the prepared ones waiting behind them. Timeouts
    /// count from here (one clock reading for the batch).
    fn issue(&mut self) {
        let batch = if self.retrying != 0 {
            if self.issued != 0 {
                return;
            }
            let next = bit(self.retrying.trailing_zeros() as usize);
            self.retrying &= !next;
            next
        } else if self.ready != 0 {
            core::mem::take(&mut self.ready)
        } else if self.issued == 0
            && let Some(oldest) = self.held.pop_front()
        {
            bit(oldest)
        } else {
            return;
        };
        barrier();
        let queued = batch & self.queued;
        if queued != 0 {
            self.registers.write32(PX_SACT, queued);
        }
        self.registers.write32(PX_CI, batch);
        let now = self.platform.now_ns();
        for slot in slots_of(batch) {
            if let Some(request) = &mut self.requests[slot] {
                let timeout_ns = request.operation.timeout_ms() * NS_PER_MS;
                let deadline = now.saturating_add(timeout_ns);
                request.deadline = Some(deadline);
                self.earliest_deadline = self.earliest_deadline.min(deadline);
            }
        }
        self.issued |= batch;
    }

    /// Clears `causes` in PxIS, then the port's bit in the HBA's IS when it has an
    /// interrupt message (both write-1-to-clear; in that order, AHCI 1.3.1 10.7.2).
    fn clear_interrupt_status(&self, causes: u32) {
        self.registers.write32(PX_IS, causes);
        if let Some(wake) = &self.wake {
            wake.clear_pending(self.number);
        }
    }

    /// Turns the port's interrupt off (PxIE 0), clears its completion causes and lets
    /// the controller's message go.
    fn disarm(&mut self) {
        self.registers.write32(PX_IE, 0);
        self.clear_interrupt_status(IS_DONE);
        if let Some(wake) = &self.wake {
            wake.disarm(self.number);
        }
        self.armed = false;
    }

    /// Clears an interface non-fatal error: the PxSERR error bits behind it (not its link
    /// changes), then PxIS.INFS (both write-1-to-clear), and counts it. The HBA carried
    /// on, so the commands in flight run on and finish as usual.
    fn clear_non_fatal(&mut self) {
        let serror = self.registers.read32(PX_SERR) & !SERR_LINK_CHANGES;
        self.registers.write32(PX_SERR, serror);
        self.registers.write32(PX_IS, IS_INFS);
        self.non_fatal_errors += 1;
        if self.non_fatal_errors.is_power_of_two() {
            log::warn!(
                "ahci: port {}: interface non-fatal error (PxSERR {serror:#x}), {} so far; \
                 commands carry on",
                self.number,
                self.non_fatal_errors
            );
        }
    }

    /// Reads PxIS once: clears an interface non-fatal error, and on a fatal one fails
    /// the issued request with [`DeviceError::Status`] (PxTFD) and restarts the port, or
    /// with several queued commands outstanding recovers them ([`Self::recover_queued`]),
    /// returning the number failed.
    fn fail_on_error_status(&mut self, done: Completion<'_>) -> Option<usize> {
        let interrupts = self.registers.read32(PX_IS);
        if interrupts & IS_INFS != 0 {
            self.clear_non_fatal();
        }
        let errors = interrupts & IS_FATAL;
        if errors == 0 {
            return None;
        }
        let status = self.registers.read32(PX_TFD);
        log::warn!(
            "ahci: port {}: error (PxIS {errors:#x}, PxTFD {status:#x})",
            self.number
        );
        let error = DeviceError::Status {
            what: "the AHCI command",
            status,
        };
        if (self.issued & self.queued).count_ones() > 1 {
            return Some(self.recover_queued(errors, error, done));
        }
        Some(self.abort_issued(error, done))
    }

    /// Recovers the queued commands outstanding at a fatal error (AHCI 1.3.1 6.2.2.2):
    /// after a task-file error the port is restarted and the NCQ Command Error log read
    /// ([`Self::read_ncq_error_log`]), which names the command the device refused and
    /// ends the error state in which it aborted the others: that one fails with the
    /// status and error the log gives, the others are issued again by the next poll.
    /// Where the log names none of them (another error, the log not read, NQ set, a tag
    /// not outstanding) the port is restarted with a COMRESET, which ends the device's
    /// error state too, and the commands are retried one at a time ([`Self::issue`]): a
    /// good one finishes, the bad one fails again with its own status, alone, so
    /// `fail_on_error_status` fails only it, and none is retried twice for one error. The
    /// number failed (`error` fails them all when the port does not come back).
    fn recover_queued(&mut self, errors: u32, error: DeviceError, done: Completion<'_>) -> usize {
        if self.armed {
            self.disarm();
        }
        let outstanding = core::mem::take(&mut self.issued);
        self.earliest_deadline = u64::MAX;
        let refused = (errors & IS_TFES != 0 && self.restart(false).is_ok())
            .then(|| self.read_ncq_error_log())
            .flatten()
            .filter(|refused| outstanding & bit(usize::from(refused.tag)) != 0);
        if let Some(refused) = refused {
            let slot = usize::from(refused.tag);
            let status = command::error_value(refused.status, refused.error);
            log::warn!(
                "ahci: port {}: the NCQ error log names slot {slot} (status {status:#x}); \
                 the other {} commands go again",
                self.number,
                outstanding.count_ones() - 1
            );
            self.ready |= outstanding & !bit(slot);
            let error = DeviceError::Status {
                what: "the AHCI command",
                status,
            };
            return self.fail_slots(bit(slot), error, done);
        }
        if !self.restart_or_give_up(true) {
            return self.fail_slots(outstanding, error, done);
        }
        log::warn!(
            "ahci: port {}: the NCQ error log names no outstanding command; retrying the {} \
             outstanding one at a time",
            self.number,
            outstanding.count_ones()
        );
        self.retrying |= outstanding;
        0
    }

    /// Reads the NCQ Command Error log (READ LOG EXT of log 10h, one page) on the restarted
    /// port, in slot 0's command header pointed at the log's own command table for the
    /// time (slot 0's table and buffer may hold a command to issue again), polled for
    /// up to [`LOG_TIMEOUT_MS`]: the command it names, or `None` when the read failed, timed
    /// out or moved short, or the page names none ([`RefusedCommand::from_log`]). Slot
    /// 0's header is given back once the command ended cleanly, else once the command
    /// list stopped (a fatal error leaves PxCI set and the list running).
    fn read_ncq_error_log(&mut self) -> Option<RefusedCommand> {
        let slot_0_flags = self.tables.read32(header(0));
        let read_log = Command::read_log(NCQ_COMMAND_ERROR_LOG, 1);
        self.write_command(LOG_TABLE, 0, &read_log, false, LOG_PAGE_BYTES);
        self.point_header_at(0, LOG_TABLE);
        barrier();
        self.registers.write32(PX_CI, bit(0));
        let registers = &self.registers;
        let ended = rexo_devio::wait_until(
            self.platform,
            "the NCQ Command Error log",
            LOG_TIMEOUT_MS,
            || registers.read32(PX_CI) & bit(0) == 0 || registers.read32(PX_IS) & IS_FATAL != 0,
        );
        let clean = ended.is_ok() && self.registers.read32(PX_IS) & IS_FATAL == 0;
        if !clean && self.stop_command_list().is_err() {
            // Still running: slot 0 keeps the log's table; the restart that follows fails
            // too and gives the port up.
            return None;
        }
        let read = clean && self.tables.read32(header(0) + HEADER_PRDBC) >= LOG_PAGE_BYTES as u32;
        self.tables.write32(header(0), slot_0_flags);
        self.tables.write32(header(0) + HEADER_PRDBC, 0);
        self.point_header_at(0, table(0));
        read.then(|| RefusedCommand::from_log(self.tables.bytes(LOG_PAGE, LOG_PAGE_BYTES)))
            .flatten()
    }

    /// Fails every issued request with [`DeviceError::Timeout`] (naming a late one's
    /// [`Operation::timeout_ms`]) and restarts the port when one of them is past its
    /// deadline, and with them the held commands and those waiting to be retried, not on
    /// the disk ([`Self::fail_unsent`]): each would otherwise go to the disk taken for
    /// hung and wait its own timeout in turn. The number failed. Costs
    /// one clock reading and one comparison until the earliest deadline passes.
    fn abort_if_late(&mut self, done: Completion<'_>) -> usize {
        if self.issued == 0 {
            return 0;
        }
        let now = self.platform.now_ns();
        if now <= self.earliest_deadline {
            return 0;
        }
        // The bound passed: it may belong to a command that finished since, so look at
        // the ones still issued, and make the bound exact when none is late.
        let mut earliest = u64::MAX;
        let mut late = None;
        for slot in slots_of(self.issued) {
            if let Some(Request {
                operation,
                deadline: Some(deadline),
                ..
            }) = self.requests[slot]
            {
                earliest = earliest.min(deadline);
                if now > deadline {
                    late = Some(operation);
                }
            }
        }
        let Some(late) = late else {
            self.earliest_deadline = earliest;
            return 0;
        };
        let error = DeviceError::Timeout {
            what: "the AHCI command",
            ms: late.timeout_ms(),
        };
        let aborted = self.abort_issued(error, done);
        aborted + self.fail_unsent(error, done)
    }

    /// Fails every command not on the disk, held or waiting to be retried, with
    /// `error`; the number failed.
    fn fail_unsent(&mut self, error: DeviceError, done: Completion<'_>) -> usize {
        let held = self.held.len();
        for slot in self.held.drain(..) {
            self.requests[slot] = None;
            done(slot as Tag, Err(error));
        }
        let retrying = core::mem::take(&mut self.retrying);
        held + self.fail_slots(retrying, error, done)
    }

    /// Runs `operation` (one without data: a flush, the standby) once the port is idle,
    /// polling until it ends, within [`Operation::timeout_ms`] (past it the poll fails it
    /// and restarts the port): its outcome.
    fn run_alone(&mut self, operation: Operation) -> Result<(), DeviceError> {
        let tag = self.submit(0, operation, 0, 0, &mut |_| true)?;
        rexo_api::device::wait_for(self, 0, tag, &mut |_| {})
    }

    /// Fails every issued request with `error` and restarts the port.
    fn abort_issued(&mut self, error: DeviceError, done: Completion<'_>) -> usize {
        if self.armed {
            self.disarm();
        }
        let aborted = core::mem::take(&mut self.issued);
        let was_queued = aborted & self.queued != 0;
        let failed = self.fail_slots(aborted, error, done);
        self.earliest_deadline = u64::MAX;
        self.restart_or_give_up(was_queued);
        failed
    }

    /// Fails the requests in the slots of `slots` with `error`; the number failed.
    fn fail_slots(&mut self, slots: u32, error: DeviceError, done: Completion<'_>) -> usize {
        for slot in slots_of(slots) {
            self.requests[slot] = None;
            done(slot as Tag, Err(error));
        }
        self.queued &= !slots;
        slots.count_ones() as usize
    }

    /// Restarts the port ([`Self::restart`], with a COMRESET when `was_queued`); a port
    /// that does not come back is failed for good, every later call refused. Whether it
    /// came back.
    fn restart_or_give_up(&mut self, was_queued: bool) -> bool {
        let Err(why) = self.restart(was_queued) else {
            return true;
        };
        log::warn!("ahci: port {}: not recovered: {why}", self.number);
        self.failed = Some("the AHCI port did not restart after an error");
        false
    }
}

impl Drop for AhciDisk {
    /// Stops the port before its command list, FIS area and buffers go back (only a
    /// failed probe drops a disk); a port that does not stop keeps them for good.
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            log::warn!("ahci: port {}: not stopped: {error}", self.number);
            rexo_devio::abandon_to_device(
                &format_args!("ahci: port {}", self.number),
                core::iter::once(&mut self.tables).chain(&mut self.buffers),
            );
        }
    }
}

impl BlockDevice for AhciDisk {
    /// Drains the port: the commands in flight finish (or time out and restart the port)
    /// with their completions dropped, so the next holder starts from an idle port.
    fn abandon_requests(&mut self) {
        while self.failed.is_none() && self.requests.iter().any(Option::is_some) {
            if self.poll(0, &mut |_, _| {}).is_err() {
                break;
            }
        }
    }

    /// The requests submitted are issued and drained as
    /// [`abandon_requests`](Self::abandon_requests) drains them, then the disk is told
    /// as [`rexo_ata::shutdown::tell`] says (FLUSH CACHE (EXT), then STANDBY IMMEDIATE
    /// at a power-off), each command within its [`Operation::timeout_ms`] (60 s). The port's
    /// interrupt is turned off; the disk refuses everything after.
    fn shut_down(&mut self, leaving: Leaving) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        self.abandon_requests();
        if self.armed {
            self.disarm();
        }
        let told = rexo_ata::shutdown::tell(leaving, |step| self.run_alone(step.into()), |_| false);
        self.shut_down = true;
        told
    }

    /// Points the HBA's message at `core` and enables the port's completion and error
    /// causes (their stale status cleared first, in PxIS and then the port's bit in IS);
    /// disarmed by the next poll that finds a command finished, or by `None`.
    fn wake_on_completion(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        if queue != 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        let Some(core) = core else {
            self.disarm();
            return Ok(());
        };
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        let wake = self
            .wake
            .as_ref()
            .ok_or(DeviceError::Unsupported("MSI or MSI-X"))?;
        wake.arm(self.number, core)?;
        self.clear_interrupt_status(IS_DONE);
        self.registers.write32(PX_IE, IS_DONE | IS_FATAL);
        self.armed = true;
        Ok(())
    }

    fn info(&self) -> BlockInfo {
        BlockInfo {
            sectors: self.identity.sectors,
            sector_size: SECTOR_BYTES,
            max_sectors: BUFFER_SECTORS,
            queues: 1,
            depth: self.depth,
            model: self.identity.model.clone(),
        }
    }

    fn submit_read(&mut self, queue: usize, lba: u64, sectors: u32) -> Result<Tag, DeviceError> {
        self.submit(
            queue,
            Operation::Transfer(Direction::Read),
            lba,
            sectors,
            &mut |_| true,
        )
    }

    fn submit_write_checked(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<Tag, DeviceError> {
        self.submit(
            queue,
            Operation::Transfer(Direction::Write),
            lba,
            sectors,
            fill,
        )
    }

    fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError> {
        self.submit(queue, Operation::Flush, 0, 0, &mut |_| true)
    }

    fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
        self.usable()?;
        if queue != 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        self.issue();
        if self.issued == 0 {
            return Ok(0);
        }
        // Queued and non-queued commands never run together, so one register says which
        // are still running.
        let running = if self.issued & self.queued != 0 {
            self.registers.read32(PX_SACT)
        } else {
            self.registers.read32(PX_CI)
        };
        let finished = self.issued & !running;
        if finished == 0 {
            // The interrupt status when nothing finished (an uncached read off the
            // queued completion path): a non-fatal error waits there harmlessly until then.
            if let Some(failed) = self.fail_on_error_status(done) {
                return Ok(failed);
            }
            return Ok(self.abort_if_late(done));
        }
        if finished & !self.queued != 0 {
            // Some HBAs clear a failed non-queued command's PxCI bit too (QEMU did until
            // its fix "PxCI should not get cleared when ERR_STAT is set"): only PxIS
            // tells it from one that succeeded. It ran alone: it is the one failed.
            if let Some(failed) = self.fail_on_error_status(done) {
                return Ok(failed);
            }
        }
        if self.armed {
            self.disarm();
        }
        let finished_queued = finished & self.queued;
        self.issued &= !finished;
        self.queued &= !finished;
        let mut count = 0;
        for slot in slots_of(finished) {
            let Some(request) = self.requests[slot].take() else {
                return Err(DeviceError::BadIndex {
                    what: "AHCI command slots",
                    index: slot as u32,
                    size: self.depth as u32,
                });
            };
            count += 1;
            match request.operation {
                Operation::Transfer(Direction::Read) => {
                    let bytes = request.sectors * SECTOR_BYTES;
                    // PRDBC (command header DW1, AHCI 1.3.1 section 4.2.2): the bytes the
                    // HBA moved, zeroed at `prepare`. The HBA need not update it for a
                    // native queued (FPDMA) command, so it is read (and held to) for a
                    // non-queued read only. Short, the rest of the slot's buffer still holds an earlier
                    // request's (maybe an earlier holder's) data: never lent out.
                    let short = (finished_queued & bit(slot) == 0)
                        .then(|| self.tables.read32(header(slot) + HEADER_PRDBC))
                        .filter(|&moved| moved < bytes);
                    if let Some(moved) = short {
                        let error = DeviceError::Status {
                            what: "the AHCI read (the HBA moved fewer bytes than asked; \
                                   status: the bytes it moved)",
                            status: moved,
                        };
                        done(slot as Tag, Err(error));
                    } else {
                        done(slot as Tag, Ok(self.buffers[slot].bytes(0, bytes as usize)));
                    }
                }
                _ => done(slot as Tag, Ok(&[])),
            }
        }
        // Under steady NCQ load every poll finds something finished: a command stuck
        // among them is timed out here, by the clock alone.
        Ok(count + self.abort_if_late(done))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rexo_devio::host::HostPlatform;

    /// PxTFD after a failed command: error ABRT, status DRDY, DSC and ERR.
    const TFD_ABORTED: u32 = 0x0451;

    /// A running port with a 1024-sector disk (LBA48, no NCQ: one command at a time)
    /// whose registers are plain memory, and those registers: the test plays the HBA,
    /// and write-1-to-clear registers just keep the last value written.
    fn port_with_fake_hba() -> (AhciDisk, Mmio) {
        let (disk, registers, _) = port_of_depth_with_fake_hba(1);
        (disk, registers)
    }

    /// As [`port_with_fake_hba`], with NCQ and `depth` slots when `depth` is above 1 (then
    /// PxSACT keeps only the last doorbell written, not the running set), and the
    /// platform whose clock the test moves. The link is up, so a COMRESET finishes.
    fn port_of_depth_with_fake_hba(depth: usize) -> (AhciDisk, Mmio, &'static HostPlatform) {
        let platform = HostPlatform::leaked();
        let (disk, registers) = fake_port(platform, 0, depth, None);
        (disk, registers, platform)
    }

    /// As [`port_of_depth_with_fake_hba`], on `platform`, numbered `number`, with the
    /// controller's interrupt message `wake`.
    fn fake_port(
        platform: &'static HostPlatform,
        number: u8,
        depth: usize,
        wake: Option<Arc<Wake>>,
    ) -> (AhciDisk, Mmio) {
        let registers = rexo_devio::host::registers(0x80);
        let mut disk = AhciDisk::new(registers.clone(), number, platform, wake).unwrap();
        disk.identity = Identity {
            sectors: 1024,
            lba48: true,
            dma: true,
            ncq_depth: (depth > 1).then_some(depth as u32),
            ..Identity::default()
        };
        disk.ncq = depth > 1;
        disk.attach_buffer(0);
        disk.add_slots(depth, CAP_S64A).unwrap();
        registers.write32(PX_CMD, CMD_ST | CMD_FRE);
        registers.write32(PX_SSTS, DET_ESTABLISHED);
        (disk, registers)
    }

    /// PxTFD of an idle disk: DRDY and DSC.
    const TFD_READY: u32 = 0x50;

    /// IDENTIFY DEVICE data of a 1024-sector disk with LBA (28-bit) and DMA.
    fn identify_data() -> [u8; IDENTIFY_BYTES] {
        let mut data = [0; IDENTIFY_BYTES];
        data[49 * 2..49 * 2 + 2].copy_from_slice(&(3u16 << 8).to_le_bytes());
        data[60 * 2..60 * 2 + 2].copy_from_slice(&1024u16.to_le_bytes());
        data
    }

    /// A disk on the port whose registers are `registers`, linked, played at each clock
    /// reading of `platform` (the clock moves 1 ms a reading; PxIS cleared): busy (PxTFD BSY) until
    /// `busy_until_ns`, then ready with an ATA signature, answering IDENTIFY DEVICE in
    /// slot 0 (its data and PRDBC written where the command list the driver gave leads).
    pub(crate) fn play_disk(
        platform: &'static HostPlatform,
        registers: Mmio,
        busy_until_ns: u64,
    ) -> impl Fn() + Send + Sync + 'static {
        registers.write32(PX_SSTS, DET_ESTABLISHED);
        registers.write32(PX_SIG, SIG_ATA);
        move || {
            platform.advance_clock(NS_PER_MS);
            // Write-1-to-clear, and nothing to report.
            registers.write32(PX_IS, 0);
            if platform.clock() < busy_until_ns {
                registers.write32(PX_TFD, u32::from(STATUS_BSY));
                return;
            }
            registers.write32(PX_TFD, TFD_READY);
            let command = registers.read32(PX_CMD);
            if registers.read32(PX_CI) & bit(0) == 0 || command & CMD_ST == 0 {
                return;
            }
            let list =
                u64::from(registers.read32(PX_CLB)) | u64::from(registers.read32(PX_CLBU)) << 32;
            let headers = platform.device_view_at(list, HEADER_BYTES);
            let table = headers.read64(HEADER_CTBA);
            let prd = platform.device_view_at(table + TABLE_PRDT as u64, 16);
            let buffer = platform.device_view_at(prd.read64(0), IDENTIFY_BYTES);
            for (offset, byte) in identify_data().into_iter().enumerate() {
                buffer.write8(offset, byte);
            }
            headers.write32(HEADER_PRDBC, IDENTIFY_BYTES as u32);
            registers.write32(PX_CI, 0);
        }
    }

    /// The values written to PxSCTL by `accesses` of a port's registers.
    fn sctl_writes(accesses: &[rexo_devio::host::MmioAccess]) -> Vec<u64> {
        accesses
            .iter()
            .filter(|access| access.offset == PX_SCTL)
            .filter_map(|access| access.written)
            .collect()
    }

    #[test]
    fn a_disk_busy_spinning_up_is_waited_for_without_comreset_up_to_atas_31_s() {
        // Past 31 s one COMRESET (held 1 ms), which a device still busy 5 s later fails.
        for busy_s in [0, 12, 33, 40] {
            let platform = HostPlatform::leaked();
            let registers = rexo_devio::host::registers(0x80);
            let disk = play_disk(platform, registers.clone(), busy_s * 1_000 * NS_PER_MS);
            platform.on_clock_reading(disk);
            rexo_devio::host::record_accesses(&registers, platform);
            let deadline = spin_up_deadline(platform);
            let started =
                AhciDisk::start(registers.clone(), 0, CAP_S64A, 1, platform, None, deadline);
            let sctl = sctl_writes(&rexo_devio::host::take_accesses(&registers));
            let comreset: &[u64] = if busy_s < 31 { &[] } else { &[1, 0] };
            assert_eq!(sctl, comreset, "COMRESET, busy for {busy_s} s");
            if busy_s < 36 {
                let disk = started.unwrap().expect("the disk is found");
                assert_eq!(disk.identity.sectors, 1024, "busy for {busy_s} s");
            } else {
                let timeout = DeviceError::Timeout {
                    what: "the SATA device to be ready",
                    ms: READY_TIMEOUT_MS,
                };
                assert_eq!(started.err(), Some(timeout), "busy for {busy_s} s");
            }
        }
    }

    #[test]
    fn a_present_devices_slow_link_is_waited_for_and_an_empty_port_is_not() {
        // Port 1's DET and the clock reading (a millisecond each) at which its link comes
        // up, if ever; the link it ends with, and the milliseconds waited.
        let cases = [
            (0, None, false, LINK_TIMEOUT_MS),
            (DET_PRESENT, Some(200), true, 200),
            (DET_PRESENT, None, false, PRESENT_LINK_TIMEOUT_MS),
        ];
        for (det, comes_up_at, up, expected_ms) in cases {
            let platform = HostPlatform::leaked();
            let ports: Vec<(u8, Mmio)> = (0..2)
                .map(|number| (number, rexo_devio::host::registers(0x80)))
                .collect();
            // Port 0 is empty (DET 0).
            let port = ports[1].1.clone();
            port.write32(PX_SSTS, det);
            let readings = std::sync::atomic::AtomicU32::new(0);
            platform.on_clock_reading(move || {
                platform.advance_clock(NS_PER_MS);
                let reading = readings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if comes_up_at == Some(reading) {
                    port.write32(PX_SSTS, DET_ESTABLISHED);
                }
            });
            let start = platform.now_ns();
            wait_for_links(platform, &ports);
            let waited_ms = (platform.now_ns() - start) / NS_PER_MS;
            assert!(!linked(&ports[0].1), "port 0 stays empty");
            assert_eq!(linked(&ports[1].1), up, "DET {det}, up at {comes_up_at:?}");
            assert!(
                (expected_ms..expected_ms + 5).contains(&waited_ms),
                "DET {det}, up at {comes_up_at:?}: waited {waited_ms} ms"
            );
        }
    }

    #[test]
    fn every_arm_asks_for_the_message_even_for_the_core_it_already_names() {
        let platform = HostPlatform::leaked();
        let (table, entries) = platform.msix_table(1);
        let hba = rexo_devio::host::registers(0x100);
        let wake = Arc::new(Wake::new(rexo_devio::Vectors::MsiX(table), hba));
        let (mut first, _) = fake_port(platform, 0, 1, Some(wake.clone()));
        let (mut second, _) = fake_port(platform, 1, 1, Some(wake));
        first.wake_on_completion(0, Some(1)).unwrap();
        assert_ne!(
            entries.read32(0),
            0,
            "the first arm points the message at core 1"
        );
        assert_eq!(platform.take_messages_asked(), [1]);
        // The kernel learns the vector an arm routes from the driver asking for its
        // message: each later arm for core 1 asks again, the same port's after a disarm
        // (its lease ended), and another port's while the first waits.
        for (disk, what) in [(&mut first, "armed again"), (&mut second, "another port")] {
            if what == "armed again" {
                disk.wake_on_completion(0, None).unwrap();
            }
            disk.wake_on_completion(0, Some(1)).unwrap();
            assert_eq!(platform.take_messages_asked(), [1], "{what}");
        }
    }

    #[test]
    fn arming_disarming_and_restarting_clear_the_ports_bit_in_the_hbas_is_with_its_pxis() {
        const PORT: u8 = 3;
        /// IS (ABAR 0x08).
        const HBA_IS: usize = 0x08;
        let platform = HostPlatform::leaked();
        let (table, _) = platform.msix_table(1);
        let hba = rexo_devio::host::registers(0x100);
        let wake = Wake::new(rexo_devio::Vectors::MsiX(table), hba.clone());
        let (mut disk, registers) = fake_port(platform, PORT, 1, Some(Arc::new(wake)));
        // Plain memory keeps the last value written to each (the order, PxIS first, is
        // `clear_interrupt_status`'s).
        for (what, causes) in [("arm", IS_DONE), ("disarm", IS_DONE), ("restart", u32::MAX)] {
            registers.write32(PX_IS, 0);
            hba.write32(HBA_IS, 0);
            match what {
                "arm" => disk.wake_on_completion(0, Some(1)).unwrap(),
                "disarm" => disk.wake_on_completion(0, None).unwrap(),
                _ => disk.restart(false).unwrap(),
            }
            assert_eq!(registers.read32(PX_IS), causes, "{what}: PxIS");
            assert_eq!(hba.read32(HBA_IS), 1 << PORT, "{what}: IS");
        }
    }

    #[test]
    fn a_port_that_does_not_stop_keeps_its_memory_and_one_that_stops_gives_it_back() {
        for (command, live_after) in [(CMD_ST | CMD_CR, 3), (CMD_ST, 0)] {
            let (disk, registers, platform) = port_of_depth_with_fake_hba(2);
            // Plain memory as PxCMD: CR stays as written, set or clear.
            registers.write32(PX_CMD, command);
            assert_eq!(platform.live(), 3, "the tables and two buffers");
            drop(disk);
            assert_eq!(platform.live(), live_after, "PxCMD {command:#x}");
        }
    }

    /// Plays the HBA's PRDBC update: the command in slot `tag` moved `bytes`.
    fn hba_moved(disk: &mut AhciDisk, tag: Tag, bytes: u32) {
        disk.tables
            .write32(header(tag as usize) + HEADER_PRDBC, bytes);
    }

    /// Polls `disk` once; the completions it handed out, as (tag, error if any).
    fn poll_once(disk: &mut AhciDisk) -> Vec<(Tag, Option<DeviceError>)> {
        rexo_devio::host::completions(disk, 0)
            .into_iter()
            .map(|(tag, result)| (tag, result.err()))
            .collect()
    }

    #[test]
    fn a_request_past_the_identified_capacity_is_refused_before_it_is_issued() {
        let (mut disk, registers) = port_with_fake_hba();
        // What `Identity::parse` leaves of IDENTIFY words 100..=103 all ones.
        disk.identity.sectors = 1 << 48;
        assert_eq!(
            disk.submit_read(0, 1 << 48, 1),
            Err(DeviceError::OutOfRange {
                lba: 1 << 48,
                sectors: 1,
                capacity: 1 << 48
            })
        );
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(registers.read32(PX_CI), 0, "nothing issued");
    }

    #[test]
    fn a_withdrawn_write_issues_no_command_and_leaves_its_slot_free() {
        let (mut disk, registers) = port_with_fake_hba();
        let withdrawn = disk.submit_write_checked(0, 8, 1, &mut |buffer| {
            buffer.fill(0x5A);
            false
        });
        assert_eq!(withdrawn, Err(DeviceError::Withdrawn));
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(registers.read32(PX_CI), 0, "nothing issued");
        assert_eq!(disk.busy(), 0, "no slot taken");
    }

    #[test]
    fn an_interface_non_fatal_error_is_cleared_and_the_command_finishes_normally() {
        let (mut disk, registers) = port_with_fake_hba();
        let tag = disk.submit_write(0, 8, 1, &mut |b| b.fill(0x5A)).unwrap();
        assert_eq!(poll_once(&mut disk), [], "issued, still running");
        assert_eq!(registers.read32(PX_CI), 1);
        // A CRC error on a non-data FIS: the HBA sets INFS and carries on.
        let crc = 1 << 21;
        registers.write32(PX_SERR, crc);
        registers.write32(PX_IS, IS_INFS);
        assert_eq!(poll_once(&mut disk), [], "no completion, no failure");
        assert_eq!(disk.non_fatal_errors, 1);
        // Cleared with write-1-to-clear of just those bits, not the restart's all-ones.
        assert_eq!(registers.read32(PX_IS), IS_INFS);
        assert_eq!(registers.read32(PX_SERR), crc);
        assert_eq!(registers.read32(PX_CMD) & CMD_ST, CMD_ST);
        assert_eq!(registers.read32(PX_SCTL), 0, "no COMRESET");
        assert_eq!(disk.failed, None);
        // The HBA finishes the command: it completes without error.
        registers.write32(PX_IS, IS_DHRS);
        registers.write32(PX_CI, 0);
        assert_eq!(poll_once(&mut disk), [(tag, None)]);
        assert_eq!(disk.non_fatal_errors, 1);
        // The slot is free again and works as before.
        let next = disk.submit_read(0, 8, 1).unwrap();
        assert_eq!(poll_once(&mut disk), []);
        hba_moved(&mut disk, next, SECTOR_BYTES);
        registers.write32(PX_CI, 0);
        assert_eq!(poll_once(&mut disk), [(next, None)]);
    }

    #[test]
    fn a_fatal_error_fails_the_command_and_restarts_the_port_even_with_a_non_fatal_one() {
        for status in [IS_TFES, IS_HBFS, IS_HBDS, IS_IFS, IS_OFS, IS_TFES | IS_INFS] {
            let (mut disk, registers) = port_with_fake_hba();
            let tag = disk.submit_read(0, 0, 4).unwrap();
            assert_eq!(poll_once(&mut disk), []);
            registers.write32(PX_TFD, TFD_ABORTED);
            registers.write32(PX_IS, status);
            let error = DeviceError::Status {
                what: "the AHCI command",
                status: TFD_ABORTED,
            };
            assert_eq!(
                poll_once(&mut disk),
                [(tag, Some(error))],
                "PxIS {status:#x}"
            );
            // The restart cleared every status and error bit and started the port again.
            assert_eq!(registers.read32(PX_IS), u32::MAX);
            assert_eq!(registers.read32(PX_SERR), u32::MAX);
            assert_eq!(registers.read32(PX_CMD) & CMD_ST, CMD_ST);
            assert_eq!(disk.failed, None);
            assert_eq!(disk.issued, 0, "nothing left in flight");
        }
    }

    #[test]
    fn a_non_queued_command_whose_ci_bit_clears_on_an_error_fails_and_restarts_the_port() {
        let error = DeviceError::Status {
            what: "the AHCI command",
            status: TFD_ABORTED,
        };
        for operation in [Operation::Transfer(Direction::Write), Operation::Flush] {
            let (mut disk, registers) = port_with_fake_hba();
            let tag = match operation {
                Operation::Flush => disk.submit_flush(0),
                _ => disk.submit_write(0, 8, 1, &mut |b| b.fill(0x5A)),
            }
            .unwrap();
            assert_eq!(poll_once(&mut disk), [], "issued, still running");
            // The HBA clears PxCI with the error, as older QEMU did.
            registers.write32(PX_CI, 0);
            registers.write32(PX_IS, IS_TFES);
            registers.write32(PX_TFD, TFD_ABORTED);
            assert_eq!(poll_once(&mut disk), [(tag, Some(error))], "{operation:?}");
            // The restart cleared the error, so the next command does not meet it.
            assert_eq!(registers.read32(PX_IS), u32::MAX);
            assert_eq!(disk.issued, 0, "nothing left in flight");
            assert_eq!(disk.failed, None);
            registers.write32(PX_IS, 0);
            let next = disk.submit_read(0, 0, 1).unwrap();
            assert_eq!(poll_once(&mut disk), []);
            hba_moved(&mut disk, next, SECTOR_BYTES);
            registers.write32(PX_CI, 0);
            assert_eq!(poll_once(&mut disk), [(next, None)]);
        }
    }

    #[test]
    fn a_stuck_queued_command_times_out_while_the_others_keep_finishing() {
        const DEPTH: usize = 8;
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(DEPTH);
        let tags: Vec<Tag> = (0..DEPTH)
            .map(|i| disk.submit_read(0, 8 * i as u64, 1).unwrap())
            .collect();
        assert_eq!(poll_once(&mut disk), [], "all issued, none finished");
        let all = (1u32 << DEPTH) - 1;
        assert_eq!(registers.read32(PX_SACT), all);
        // Slot 0 never finishes; one other slot finishes at every poll, 3 s apart.
        let mut running = all;
        for (round, slot) in (1..DEPTH).enumerate() {
            platform.advance_clock(3_000 * NS_PER_MS);
            running &= !bit(slot);
            registers.write32(PX_SACT, running);
            let seen = poll_once(&mut disk);
            if round < 3 {
                assert_eq!(seen, [(tags[slot], None)], "at {} s", 3 * (round + 1));
                continue;
            }
            // 12 s after they were issued, past the 10 s deadline, though a slot finished.
            let timeout = Some(DeviceError::Timeout {
                what: "the AHCI command",
                ms: command::TRANSFER_TIMEOUT_MS,
            });
            let mut expected = alloc::vec![(tags[slot], None), (tags[0], timeout)];
            expected.extend(((slot + 1)..DEPTH).map(|late| (tags[late], timeout)));
            assert_eq!(seen, expected);
            break;
        }
        assert_eq!(disk.issued, 0, "nothing left in flight");
        assert_eq!(disk.failed, None, "the port restarted");
        assert_eq!(registers.read32(PX_CMD) & CMD_ST, CMD_ST);
        // The restarted port takes commands again (the HBA cleared PxIS as told).
        registers.write32(PX_IS, 0);
        let next = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(poll_once(&mut disk), []);
        registers.write32(PX_SACT, 0);
        assert_eq!(poll_once(&mut disk), [(next, None)]);
    }

    #[test]
    fn a_command_times_out_counting_from_its_issue_not_from_its_submission() {
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(2);
        let timeout = Some(DeviceError::Timeout {
            what: "the AHCI command",
            ms: command::WRITE_OUT_TIMEOUT_MS,
        });
        let read = disk.submit_read(0, 0, 1).unwrap();
        // The caller polls only 20 s later (a long compute step): the poll that issues
        // the read neither fails it nor restarts the port.
        platform.advance_clock(2 * command::TRANSFER_TIMEOUT_MS * NS_PER_MS);
        assert_eq!(poll_once(&mut disk), [], "issued, not timed out");
        assert_eq!(disk.issued, bit(read as usize));
        assert_eq!(registers.read32(PX_IS), 0, "no restart");
        // A flush submitted now is held until the read finishes, 9 s later.
        let flush = disk.submit_flush(0).unwrap();
        assert_eq!(poll_once(&mut disk), [], "the flush held");
        platform.advance_clock(9_000 * NS_PER_MS);
        registers.write32(PX_SACT, 0);
        assert_eq!(poll_once(&mut disk), [(read, None)]);
        // The flush is issued by the next poll, 9 s after its submission; 68 s after
        // it, it is still not late.
        assert_eq!(poll_once(&mut disk), [], "the flush issued");
        assert_eq!(disk.issued, bit(flush as usize));
        platform.advance_clock(59_000 * NS_PER_MS);
        assert_eq!(poll_once(&mut disk), [], "59 s after its issue");
        assert_eq!(registers.read32(PX_IS), 0, "no restart");
        // Left unanswered past 60 s from its issue, it times out and the port restarts.
        platform.advance_clock(1_000 * NS_PER_MS + 1);
        assert_eq!(poll_once(&mut disk), [(flush, timeout)]);
        assert_eq!(registers.read32(PX_IS), u32::MAX, "the port restarted");
        assert_eq!(disk.issued, 0, "nothing left in flight");
        assert_eq!(disk.failed, None);
    }

    #[test]
    fn a_flush_may_run_past_the_read_and_write_timeout_and_times_out_at_its_own() {
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(1);
        // Plays the device: busy writing its cache out until a COMRESET (seen in PxSCTL
        // at a clock reading; the restart's waits read the clock).
        registers.write32(PX_TFD, u32::from(STATUS_BSY));
        let reset = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let (seen, device) = (reset.clone(), registers.clone());
        platform.on_clock_reading(move || {
            if device.read32(PX_SCTL) & DET_MASK == DET_COMRESET {
                seen.store(true, core::sync::atomic::Ordering::Relaxed);
                device.write32(PX_TFD, 0);
            }
        });
        let flush = disk.submit_flush(0).unwrap();
        assert_eq!(poll_once(&mut disk), [], "issued");
        platform.advance_clock(15_000 * NS_PER_MS);
        assert_eq!(poll_once(&mut disk), [], "still running 15 s on");
        assert!(
            !reset.load(core::sync::atomic::Ordering::Relaxed),
            "no COMRESET"
        );
        assert_eq!(registers.read32(PX_IS), 0, "no restart");
        assert_eq!(disk.issued, bit(flush as usize));
        platform.advance_clock((command::WRITE_OUT_TIMEOUT_MS - 15_000) * NS_PER_MS);
        let timeout = Some(DeviceError::Timeout {
            what: "the AHCI command",
            ms: command::WRITE_OUT_TIMEOUT_MS,
        });
        assert_eq!(poll_once(&mut disk), [(flush, timeout)]);
        assert!(
            reset.load(core::sync::atomic::Ordering::Relaxed),
            "COMRESET past 60 s"
        );
        assert_eq!(disk.failed, None, "the port restarted");
    }

    /// A depth-4 port whose queued read ended with two flushes held behind it (submitted
    /// while it ran): the port, its registers, its clock, and the two flushes' slots.
    fn two_flushes_held_behind_a_read() -> (AhciDisk, Mmio, &'static HostPlatform, Tag, Tag) {
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(4);
        let read = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(poll_once(&mut disk), [], "the read issued");
        let first = disk.submit_flush(0).unwrap();
        let second = disk.submit_flush(0).unwrap();
        assert_eq!(poll_once(&mut disk), [], "both flushes held");
        registers.write32(PX_SACT, 0);
        registers.write32(PX_CI, 0);
        assert_eq!(poll_once(&mut disk), [(read, None)]);
        (disk, registers, platform, first, second)
    }

    #[test]
    fn held_flushes_are_issued_one_at_a_time_so_an_error_fails_only_its_own() {
        // The queue drained: the next poll issues the first flush alone.
        let (mut disk, registers, _, first, second) = two_flushes_held_behind_a_read();
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(
            registers.read32(PX_CI),
            bit(first as usize),
            "one flush issued"
        );
        // It fails: only it is failed, and the port restarts.
        registers.write32(PX_TFD, TFD_ABORTED);
        registers.write32(PX_IS, IS_TFES);
        registers.write32(PX_CI, 0);
        let error = DeviceError::Status {
            what: "the AHCI command",
            status: TFD_ABORTED,
        };
        assert_eq!(poll_once(&mut disk), [(first, Some(error))]);
        // The second runs once the first ended, and finishes.
        registers.write32(PX_IS, 0);
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(
            registers.read32(PX_CI),
            bit(second as usize),
            "then the other"
        );
        registers.write32(PX_CI, 0);
        assert_eq!(poll_once(&mut disk), [(second, None)]);
        assert_eq!(disk.busy(), 0);
    }

    #[test]
    fn held_flushes_are_issued_in_the_order_submitted_not_by_slot() {
        let (mut disk, registers, _, a, b) = two_flushes_held_behind_a_read();
        assert_eq!(poll_once(&mut disk), [], "A issued");
        assert_eq!(registers.read32(PX_CI), bit(a as usize));
        // A later flush takes the read's slot, below B's.
        let c = disk.submit_flush(0).unwrap();
        assert!(c < b, "C in slot {c}, B in slot {b}");
        for (ended, next) in [(a, b), (b, c)] {
            registers.write32(PX_CI, 0);
            assert_eq!(poll_once(&mut disk), [(ended, None)]);
            assert_eq!(poll_once(&mut disk), []);
            assert_eq!(
                registers.read32(PX_CI),
                bit(next as usize),
                "slot {next} after slot {ended}"
            );
        }
        registers.write32(PX_CI, 0);
        assert_eq!(poll_once(&mut disk), [(c, None)]);
        assert_eq!(disk.busy(), 0);
    }

    #[test]
    fn held_flushes_behind_one_that_times_out_fail_with_it_at_one_reset() {
        let (mut disk, registers, platform, first, second) = two_flushes_held_behind_a_read();
        // Plays a disk that stays busy with every flush sent (PxCI keeps its bit), and
        // counts the COMRESETs (seen in PxSCTL at a clock reading), each leaving it ready.
        registers.write32(PX_TFD, u32::from(STATUS_BSY));
        let resets = Arc::new(core::sync::atomic::AtomicU32::new(0));
        let (counted, device) = (resets.clone(), registers.clone());
        let in_reset = core::sync::atomic::AtomicBool::new(false);
        platform.on_clock_reading(move || {
            let resetting = device.read32(PX_SCTL) & DET_MASK == DET_COMRESET;
            if resetting && !in_reset.swap(true, core::sync::atomic::Ordering::Relaxed) {
                counted.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                device.write32(PX_TFD, 0);
            }
            in_reset.store(resetting, core::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(poll_once(&mut disk), [], "the first flush issued");
        assert_eq!(registers.read32(PX_CI), bit(first as usize));
        // Past its 60 s the disk is taken for hung: the flush never sent fails with the
        // one sent, and no later flush waits another 60 s for it.
        platform.advance_clock(command::WRITE_OUT_TIMEOUT_MS * NS_PER_MS + 1);
        let timeout = Some(DeviceError::Timeout {
            what: "the AHCI command",
            ms: command::WRITE_OUT_TIMEOUT_MS,
        });
        assert_eq!(poll_once(&mut disk), [(first, timeout), (second, timeout)]);
        assert_eq!(resets.load(core::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(disk.busy(), 0, "nothing held or in flight");
        assert_eq!(disk.failed, None, "the port restarted");
    }

    /// An NCQ Command Error log page: byte 0 `first` (NQ and the tag), then `status` and
    /// `error`, its checksum set.
    fn ncq_error_log(first: u8, status: u8, error: u8) -> Vec<u8> {
        let mut page = alloc::vec![0; LOG_PAGE_BYTES];
        page[..4].copy_from_slice(&[first, 0, status, error]);
        let sum = page.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
        page[LOG_PAGE_BYTES - 1] = sum.wrapping_neg();
        page
    }

    /// The COMRESETs, the READ LOG EXT commands, and the clock readings with the command
    /// list stopped while slot 0's header held the log's table, an
    /// [`hba_with_ncq_error_log`] saw.
    type Seen = Arc<(
        core::sync::atomic::AtomicU32,
        core::sync::atomic::AtomicU32,
        core::sync::atomic::AtomicU32,
    )>;

    /// Plays an NCQ HBA's recovery at each clock reading: PxIS written all ones (a
    /// restart's clearing) reads 0 again; a COMRESET (PxSCTL.DET 1) is counted; READ LOG
    /// EXT of log 10h issued in slot 0 through the log's command table is counted and
    /// answered with `page` (moved into the log page, 512 bytes by PRDBC, PxCI cleared)
    /// or, without one, aborted as QEMU aborts it (PxIS.TFES, PxTFD [`TFD_ABORTED`],
    /// PxCI left set); PxCMD.ST found clear while slot 0's header points at the log's
    /// table is counted. What it saw.
    fn hba_with_ncq_error_log(
        disk: &AhciDisk,
        registers: &Mmio,
        platform: &'static HostPlatform,
        page: Option<Vec<u8>>,
    ) -> Seen {
        use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
        let seen: Seen = Arc::new((AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)));
        let counts = seen.clone();
        let tables = platform.device_view(&disk.tables);
        let registers = registers.clone();
        let in_reset = AtomicBool::new(false);
        platform.on_clock_reading(move || {
            if registers.read32(PX_IS) == u32::MAX {
                registers.write32(PX_IS, 0);
            }
            let resetting = registers.read32(PX_SCTL) & DET_MASK == DET_COMRESET;
            if resetting && !in_reset.swap(true, Relaxed) {
                counts.0.fetch_add(1, Relaxed);
            }
            in_reset.store(resetting, Relaxed);
            let log_table = tables.phys() + LOG_TABLE as u64;
            let read_log = (tables.read32(LOG_TABLE) >> 16) as u8 == command::READ_LOG_EXT
                && tables.read8(LOG_TABLE + 4) == NCQ_COMMAND_ERROR_LOG;
            let holds_log = tables.read64(header(0) + HEADER_CTBA) == log_table;
            if holds_log && registers.read32(PX_CMD) & CMD_ST == 0 {
                counts.2.fetch_add(1, Relaxed);
            }
            let log_issued =
                registers.read32(PX_CI) & bit(0) != 0 && registers.read32(PX_IS) == 0 && holds_log;
            if !(read_log && log_issued) {
                return;
            }
            counts.1.fetch_add(1, Relaxed);
            match &page {
                Some(page) => {
                    for (i, &byte) in page.iter().enumerate() {
                        tables.write8(LOG_PAGE + i, byte);
                    }
                    tables.write32(header(0) + HEADER_PRDBC, LOG_PAGE_BYTES as u32);
                    registers.write32(PX_CI, 0);
                }
                None => {
                    registers.write32(PX_TFD, TFD_ABORTED);
                    registers.write32(PX_IS, IS_TFES);
                }
            }
        });
        seen
    }

    /// The COMRESETs and log reads `seen` counted.
    fn counted(seen: &Seen) -> (u32, u32) {
        use core::sync::atomic::Ordering::Relaxed;
        (seen.0.load(Relaxed), seen.1.load(Relaxed))
    }

    /// Plays the device refusing a queued command: PxTFD [`TFD_ABORTED`], PxIS.TFES, its
    /// PxSACT bit (and the others the device aborted with it) left set.
    fn device_refuses(registers: &Mmio) {
        registers.write32(PX_TFD, TFD_ABORTED);
        registers.write32(PX_IS, IS_TFES);
    }

    #[test]
    fn an_ncq_error_fails_only_the_command_the_log_names_and_issues_the_others_again() {
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(4);
        let good = disk.submit_read(0, 0, 1).unwrap();
        let bad = disk.submit_read(0, 8, 1).unwrap();
        assert_eq!(poll_once(&mut disk), [], "both issued");
        let both = bit(good as usize) | bit(bad as usize);
        assert_eq!(registers.read32(PX_SACT), both);
        // The read in slot 0 lends slot 0's header to the log read: it comes back as it was.
        assert_eq!(good, 0);
        let good_header = (
            disk.tables.read32(header(0)),
            disk.tables.read64(header(0) + HEADER_CTBA),
        );
        // The device refuses `bad` (an uncorrectable sector, its log says), aborting
        // `good` with it: both stay in PxSACT.
        let log = ncq_error_log(bad as u8, 0x41, 0x40);
        let seen = hba_with_ncq_error_log(&disk, &registers, platform, Some(log));
        device_refuses(&registers);
        let refused = DeviceError::Status {
            what: "the AHCI command",
            status: 0x4041,
        };
        assert_eq!(poll_once(&mut disk), [(bad, Some(refused))]);
        assert_eq!(counted(&seen), (0, 1), "the log read, no COMRESET");
        assert_eq!(
            (
                disk.tables.read32(header(0)),
                disk.tables.read64(header(0) + HEADER_CTBA)
            ),
            good_header
        );
        // The good read goes again, and finishes with its data.
        assert_eq!(poll_once(&mut disk), [], "issued again");
        assert_eq!(registers.read32(PX_SACT), bit(good as usize));
        assert_eq!(registers.read32(PX_CI), bit(good as usize));
        disk.buffers[good as usize]
            .bytes_mut(0, SECTOR_BYTES as usize)
            .fill(0x5A);
        registers.write32(PX_SACT, 0);
        let lent = rexo_devio::host::completions(&mut disk, 0);
        assert_eq!(lent, [(good, Ok(vec![0x5A; SECTOR_BYTES as usize]))]);
        assert_eq!(disk.busy(), 0);
        assert_eq!(disk.failed, None);
    }

    #[test]
    fn an_ncq_error_the_log_does_not_explain_retries_each_command_alone_and_fails_only_the_bad_one()
    {
        let not_queued = ncq_error_log(0x80 | 1, 0x41, 0x04);
        let not_outstanding = ncq_error_log(3, 0x41, 0x04);
        for (what, page) in [
            ("log read aborted", None),
            ("NQ set", Some(not_queued)),
            ("a tag not outstanding", Some(not_outstanding)),
        ] {
            let (mut disk, registers, platform) = port_of_depth_with_fake_hba(4);
            let tags: Vec<Tag> = (0..3)
                .map(|i| disk.submit_read(0, 8 * i, 1).unwrap())
                .collect();
            let bad = tags[1];
            assert_eq!(poll_once(&mut disk), [], "{what}: all issued");
            let seen = hba_with_ncq_error_log(&disk, &registers, platform, page);
            device_refuses(&registers);
            assert_eq!(poll_once(&mut disk), [], "{what}: none failed yet");
            assert_eq!(
                counted(&seen),
                (1, 1),
                "{what}: the log read, then a COMRESET"
            );
            // A read submitted now waits until the retries are over.
            let later = disk.submit_read(0, 64, 1).unwrap();
            for &tag in tags.iter().chain([&later]) {
                assert_eq!(poll_once(&mut disk), [], "{what}: slot {tag} issued");
                assert_eq!(
                    registers.read32(PX_SACT),
                    bit(tag as usize),
                    "{what}: alone"
                );
                assert_eq!(registers.read32(PX_CI), bit(tag as usize), "{what}: alone");
                if tag != bad {
                    registers.write32(PX_SACT, 0);
                    assert_eq!(poll_once(&mut disk), [(tag, None)], "{what}");
                    continue;
                }
                // It fails again, alone: only it fails, with the device's status.
                device_refuses(&registers);
                let refused = DeviceError::Status {
                    what: "the AHCI command",
                    status: TFD_ABORTED,
                };
                assert_eq!(poll_once(&mut disk), [(bad, Some(refused))], "{what}");
                assert_eq!(counted(&seen), (2, 1), "{what}: a COMRESET, no log read");
            }
            assert_eq!(disk.busy(), 0, "{what}");
            assert_eq!(disk.failed, None, "{what}");
        }
    }

    #[test]
    fn an_aborted_log_read_stops_the_command_list_before_slot_0_is_given_back() {
        use core::sync::atomic::Ordering::Relaxed;
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(4);
        for lba in [0, 8] {
            disk.submit_read(0, lba, 1).unwrap();
        }
        assert_eq!(poll_once(&mut disk), [], "both issued");
        // QEMU aborts the log read: PxIS.TFES with PxCI's bit 0 still set and the list
        // running, so slot 0 is not the driver's until the list stops.
        let seen = hba_with_ncq_error_log(&disk, &registers, platform, None);
        device_refuses(&registers);
        assert_eq!(poll_once(&mut disk), [], "none failed yet");
        assert_eq!(counted(&seen), (1, 1), "the log read, then a COMRESET");
        assert!(
            seen.2.load(Relaxed) > 0,
            "the command list stopped while slot 0 still held the log's table"
        );
        assert_eq!(disk.failed, None);
    }

    #[test]
    fn a_timeout_while_retrying_one_at_a_time_fails_the_commands_still_to_retry() {
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(4);
        let tags: Vec<Tag> = (0..3)
            .map(|i| disk.submit_read(0, 8 * i, 1).unwrap())
            .collect();
        assert_eq!(poll_once(&mut disk), [], "all issued");
        let seen = hba_with_ncq_error_log(&disk, &registers, platform, None);
        device_refuses(&registers);
        assert_eq!(poll_once(&mut disk), [], "none failed yet");
        assert_eq!(poll_once(&mut disk), [], "the first retried");
        assert_eq!(registers.read32(PX_SACT), bit(tags[0] as usize));
        // The disk never answers it: past its 10 s, the two still to retry fail with it.
        platform.advance_clock(command::TRANSFER_TIMEOUT_MS * NS_PER_MS + 1);
        let timeout = Some(DeviceError::Timeout {
            what: "the AHCI command",
            ms: command::TRANSFER_TIMEOUT_MS,
        });
        let expected: Vec<_> = tags.iter().map(|&tag| (tag, timeout)).collect();
        assert_eq!(poll_once(&mut disk), expected);
        assert_eq!(counted(&seen), (2, 1), "one COMRESET more, at the timeout");
        assert_eq!(disk.busy(), 0);
        assert_eq!(disk.failed, None);
    }

    #[test]
    fn a_non_queued_read_the_hba_moved_short_fails_instead_of_lending_older_bytes() {
        let (mut disk, registers) = port_with_fake_hba();
        let short = |moved| DeviceError::Status {
            what: "the AHCI read (the HBA moved fewer bytes than asked; status: the bytes it \
                   moved)",
            status: moved,
        };
        // A full read leaves its bytes in the slot's buffer.
        disk.buffers[0].bytes_mut(0, 2048).fill(0xA5);
        let full = disk.submit_read(0, 0, 4).unwrap();
        assert_eq!(poll_once(&mut disk), []);
        hba_moved(&mut disk, full, 2048);
        registers.write32(PX_CI, 0);
        // (`completions` checks the poll's count, 1, against what it lent.)
        let lent = rexo_devio::host::completions(&mut disk, 0);
        assert_eq!(lent, [(full, Ok(alloc::vec![0xA5; 2048]))]);
        // The next reads of that slot move 1000 bytes, then none (their PRDBC, zeroed
        // when prepared, is not the earlier read's): both fail, nothing is lent.
        for moved in [1000, 0] {
            let tag = disk.submit_read(0, 4, 4).unwrap();
            assert_eq!(poll_once(&mut disk), []);
            if moved != 0 {
                hba_moved(&mut disk, tag, moved);
            }
            registers.write32(PX_CI, 0);
            assert_eq!(poll_once(&mut disk), [(tag, Some(short(moved)))]);
        }
        assert_eq!(disk.failed, None, "the port carries on");
    }

    #[test]
    fn an_identify_the_hba_moved_short_fails_instead_of_giving_a_zero_identity() {
        let (mut disk, registers) = port_with_fake_hba();
        // The HBA finished IDENTIFY DEVICE in slot 0 without error.
        disk.prepare(0, &Command::identify(), false, IDENTIFY_BYTES);
        registers.write32(PX_CI, 0);
        for moved in [0, 200] {
            if moved != 0 {
                hba_moved(&mut disk, 0, moved);
            }
            let error = DeviceError::Status {
                what: "IDENTIFY DEVICE (the HBA moved fewer than 512 bytes; status: the bytes \
                       it moved)",
                status: moved,
            };
            assert_eq!(disk.identify_data(), Err(error), "{moved} bytes moved");
        }
        disk.buffers[0].bytes_mut(0, IDENTIFY_BYTES).fill(0x41);
        hba_moved(&mut disk, 0, IDENTIFY_BYTES as u32);
        assert_eq!(disk.identify_data(), Ok(&[0x41; IDENTIFY_BYTES][..]));
    }

    #[test]
    fn a_queued_read_completes_without_looking_at_prdbc() {
        let (mut disk, registers, _) = port_of_depth_with_fake_hba(2);
        let tag = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(poll_once(&mut disk), []);
        // No PRDBC written: AHCI 4.2.2 does not require it for FPDMA commands.
        registers.write32(PX_SACT, 0);
        assert_eq!(poll_once(&mut disk), [(tag, None)]);
    }

    #[test]
    fn a_queued_read_reported_done_without_its_data_lends_zeros_not_the_slots_earlier_bytes() {
        let (mut disk, registers, _) = port_of_depth_with_fake_hba(2);
        // Slot 0's buffer still holds an earlier request's sector (another holder's).
        disk.buffers[0]
            .bytes_mut(0, SECTOR_BYTES as usize)
            .fill(0xA5);
        let tag = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(poll_once(&mut disk), []);
        // The HBA reports it done having moved nothing.
        registers.write32(PX_SACT, 0);
        let lent = rexo_devio::host::completions(&mut disk, 0);
        assert_eq!(lent, [(tag, Ok(vec![0; SECTOR_BYTES as usize]))]);
    }

    #[test]
    fn free_slots_are_the_lowest_clear_bits_within_the_depth() {
        assert_eq!(free_slot(0, 32), Some(0));
        assert_eq!(free_slot(0b1011, 32), Some(2));
        assert_eq!(free_slot(0b1111, 4), None);
        assert_eq!(free_slot(u32::MAX, 32), None);
        assert_eq!(free_slot(0x7FFF_FFFF, 32), Some(31));
    }

    #[test]
    fn slots_of_lists_each_set_bit() {
        let slots: Vec<usize> = slots_of(0x8000_0005).collect();
        assert_eq!(slots, [0, 2, 31]);
    }

    /// Plays an HBA that finishes the command in slot 0 (a port without NCQ) at the
    /// clock reading after its PxCI write: with an error (PxIS.TFES, PxTFD
    /// [`TFD_ABORTED`], PxCI cleared too, as older QEMU did) when `fails` says so of its
    /// opcode, cleanly (PxIS cleared of a restart's all-ones) otherwise, or never when
    /// `hangs` says so (the clock then moves 1 s at each reading). The opcodes issued,
    /// in order.
    fn hba_finishing_commands(
        disk: &AhciDisk,
        registers: &Mmio,
        platform: &'static HostPlatform,
        fails: fn(u8) -> bool,
        hangs: fn(u8) -> bool,
    ) -> Arc<spin::Mutex<Vec<u8>>> {
        let issued = Arc::new(spin::Mutex::new(Vec::new()));
        let record = issued.clone();
        let tables = platform.device_view(&disk.tables);
        let registers = registers.clone();
        let hung = core::sync::atomic::AtomicBool::new(false);
        platform.on_clock_reading(move || {
            if registers.read32(PX_CI) & bit(0) == 0 {
                return;
            }
            let opcode = (tables.read32(COMMAND_TABLES) >> 16) as u8;
            if hangs(opcode) {
                if !hung.swap(true, core::sync::atomic::Ordering::Relaxed) {
                    record.lock().push(opcode);
                }
                platform.advance_clock(1_000 * NS_PER_MS);
                return;
            }
            record.lock().push(opcode);
            if fails(opcode) {
                registers.write32(PX_TFD, TFD_ABORTED);
                registers.write32(PX_IS, IS_TFES);
            } else {
                registers.write32(PX_IS, 0);
            }
            registers.write32(PX_CI, 0);
        });
        issued
    }

    #[test]
    fn a_shutdown_issues_what_was_submitted_then_flushes_and_stops_the_disk() {
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(1);
        let issued = hba_finishing_commands(&disk, &registers, platform, |_| false, |_| false);
        // A write submitted and never polled: its holder went quiet.
        disk.submit_write(0, 8, 1, &mut |b| b.fill(0x5A)).unwrap();
        assert_eq!(disk.shut_down(Leaving::PowerOff), Ok(()));
        assert_eq!(
            *issued.lock(),
            [
                command::WRITE_DMA_EXT,
                command::FLUSH_CACHE_EXT,
                command::STANDBY_IMMEDIATE
            ]
        );
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }

    /// At a reboot the disk writes its cache out and keeps spinning, as Linux leaves a
    /// SATA disk at a reboot: the firmware's first read needs no spin-up.
    #[test]
    fn a_reboot_issues_what_was_submitted_then_flushes_the_disk_without_stopping_it() {
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(1);
        let issued = hba_finishing_commands(&disk, &registers, platform, |_| false, |_| false);
        disk.submit_write(0, 8, 1, &mut |b| b.fill(0x5A)).unwrap();
        assert_eq!(disk.shut_down(Leaving::Reboot), Ok(()));
        assert_eq!(
            *issued.lock(),
            [command::WRITE_DMA_EXT, command::FLUSH_CACHE_EXT]
        );
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }

    #[test]
    fn a_failed_flush_still_stops_the_disk_and_one_that_never_stops_times_out() {
        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(1);
        let issued = hba_finishing_commands(
            &disk,
            &registers,
            platform,
            |opcode| opcode == command::FLUSH_CACHE_EXT,
            |_| false,
        );
        let flush_failed = DeviceError::Status {
            what: "the AHCI command",
            status: TFD_ABORTED,
        };
        assert_eq!(disk.shut_down(Leaving::PowerOff), Err(flush_failed));
        assert_eq!(
            *issued.lock(),
            [command::FLUSH_CACHE_EXT, command::STANDBY_IMMEDIATE]
        );
        rexo_api::testing::assert_refuses_everything(&mut disk);

        let (mut disk, registers, platform) = port_of_depth_with_fake_hba(1);
        let issued = hba_finishing_commands(
            &disk,
            &registers,
            platform,
            |_| false,
            |opcode| opcode == command::STANDBY_IMMEDIATE,
        );
        let timeout = DeviceError::Timeout {
            what: "the AHCI command",
            ms: command::WRITE_OUT_TIMEOUT_MS,
        };
        assert_eq!(disk.shut_down(Leaving::PowerOff), Err(timeout));
        assert_eq!(
            *issued.lock(),
            [command::FLUSH_CACHE_EXT, command::STANDBY_IMMEDIATE]
        );
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }
}
