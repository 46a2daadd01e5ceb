//! One IDE channel (command and control blocks, bus-master registers) and the drives on
//! it. Register layout: ATA/ATAPI-6 section 7 (command block at 0x1F0/0x170, control at
//! 0x3F6/0x376 in compatibility mode); bus-master IDE: the PCI IDE Bus Master spec
//! (SFF-8038i) as the PIIX/PIIX3 datasheets give it.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use rexo_api::device::DISK_SHUT_DOWN;
use rexo_api::{BlockDevice, BlockInfo, Completion, DeviceError, Leaving, Tag};
use rexo_devio::{Dma, LineWake, NS_PER_MS, Platform, PortWindow, barrier, pause};

use crate::command::{
    self, Command, Direction, Operation, Protocol, STATUS_BSY, STATUS_DF, STATUS_DRQ, STATUS_ERR,
    WRITE_OUT_TIMEOUT_MS,
};
use crate::identify::{IDENTIFY_BYTES, Identity, SECTOR_BYTES};

/// Command block: the 16-bit data port.
const REG_DATA: u16 = 0;
/// Command block: error (read) / features (write).
const REG_ERROR: u16 = 1;
/// Command block: sector count.
const REG_COUNT: u16 = 2;
/// Command block: LBA bits 7:0 (47:40... in the "previous" byte of the 48-bit forms).
const REG_LBA_LOW: u16 = 3;
/// Command block: LBA bits 15:8; holds signature byte 0x14 for ATAPI devices.
const REG_LBA_MID: u16 = 4;
/// Command block: LBA bits 23:16; holds signature byte 0xEB for ATAPI devices.
const REG_LBA_HIGH: u16 = 5;
/// Command block: device (drive select, LBA bit, LBA 27:24 of the 28-bit forms).
const REG_DEVICE: u16 = 6;
/// Command block: status (read, acknowledges the interrupt) / command (write).
const REG_STATUS: u16 = 7;
/// Command block: the command register (the status register's write side).
const REG_COMMAND: u16 = 7;
/// Control block: alternate status (read, no side effect) / device control (write).
const REG_CONTROL: u16 = 0;
/// Device control: interrupts off (nIEN): this driver polls until a wake is armed.
const CONTROL_NIEN: u8 = 0x02;
/// Device control: software reset of both drives on the channel.
const CONTROL_SRST: u8 = 0x04;
/// Device register: bits 7 and 5 are obsolete ones some drives still want set.
const DEVICE_OBSOLETE: u8 = 0xA0;
/// Device register bit 4: the slave drive (drive 1).
const DEVICE_DRIVE1: u8 = 0x10;

/// Bus-master registers per channel (primary at 0, secondary at 8).
const BM_CHANNEL_STRIDE: u16 = 8;
/// Bus-master command register.
const BM_COMMAND: u16 = 0;
/// Bus-master status register.
const BM_STATUS: u16 = 2;
/// Bus-master PRD table address (32 bits, dword-aligned, not crossing 64 KiB).
const BM_PRDT: u16 = 4;
/// Bus-master command: start.
const BM_START: u8 = 0x01;
/// Bus-master command: the controller writes memory (a disk read).
const BM_TO_MEMORY: u8 = 0x08;
/// Bus-master status: the bus master is moving data; it clears once the last PRD region
/// is done (or when Start is cleared).
const BM_STATUS_ACTIVE: u8 = 0x01;
/// Bus-master status: a DMA error (write 1 to clear).
const BM_STATUS_ERROR: u8 = 0x02;
/// Bus-master status: the drive raised its interrupt (write 1 to clear).
const BM_STATUS_INTERRUPT: u8 = 0x04;
/// Bus-master status: the controller is simplex-only, one channel at a time may do
/// bus-master DMA (read-only; SFF-8038i).
const BM_STATUS_SIMPLEX: u8 = 0x80;
/// PRD entry, last byte: bit 7 marks the end of the table (EOT).
const PRD_END: u16 = 0x8000;
/// Bytes per PRD entry.
const PRD_BYTES: usize = 8;
/// A PRD region may not cross a 64 KiB boundary.
const PRD_BOUNDARY: u64 = 0x1_0000;

/// The sectors one request may cover: the data buffer's size (64 KiB).
const BUFFER_SECTORS: u32 = 128;
/// How long the bus master may stay Active after the drive finished a DMA command (it
/// drains its FIFO in microseconds; longer means the drive moved fewer bytes than asked).
const DMA_DRAIN_TIMEOUT_MS: u64 = 10;
/// How long a drive may stay busy after reset or selection (ATA allows 31 s after a
/// power-on reset; a soft reset of a spinning drive is far quicker).
const READY_TIMEOUT_MS: u64 = 3_000;
/// How long IDENTIFY may take before the drive counts as absent.
const IDENTIFY_TIMEOUT_MS: u64 = 1_000;
/// The longest hold of SRST and the wait after it (ATA-6 9.2: at least 5 us; 2 ms
/// before the status is valid).
const RESET_HOLD_NS: u64 = 5_000;
/// The wait after releasing SRST before BSY is meaningful.
const RESET_SETTLE_NS: u64 = 2_000_000;

/// No drive selected yet (or unknown after a reset).
const NOBODY: u8 = 0xFF;

/// The bytes of the PRD table's allocation (one page: far more entries than a request
/// of [`BUFFER_SECTORS`] needs).
const PRD_TABLE_BYTES: usize = 4096;
/// How long the bus master may report Active after Start is cleared (SFF-8038i clears
/// Active together with Start: anything but a read or two means it did not stop).
const DMA_STOP_TIMEOUT_MS: u64 = 10;

/// Every call's answer (but disarming a wake's) on a channel whose bus master did not
/// confirm a stop ([`Channel::confirm_dma_stopped`]), from either drive: it may still move data through
/// the last PRD table it was given, into or out of a drive's DMA memory, so the channel
/// takes no more commands and that memory is never given back.
const BUS_MASTER_NOT_STOPPED: DeviceError = DeviceError::Failed(
    "ata: the channel's bus master did not stop (Active still set after Start was \
     cleared; its DMA memory is kept, the channel takes no more commands)",
);

/// How long [`IdeDisk::run_alone`] waits for the channel while the other drive's command
/// holds it: as long as the longest command may run ([`WRITE_OUT_TIMEOUT_MS`]), past
/// which its holder's polls end it.
const CHANNEL_WAIT_MS: u64 = WRITE_OUT_TIMEOUT_MS;

/// What [`IdeDisk::run_alone`]'s timeout names when the other drive's command held the
/// channel for all of [`CHANNEL_WAIT_MS`].
const CHANNEL_HELD: &str = "the IDE channel, which the other drive's command holds";

/// Whether `[phys, phys + len)` lies below 4 GiB, where the bus master reaches (the PRD
/// table register and the PRD entries hold 32-bit addresses).
fn below_4gib(phys: u64, len: usize) -> bool {
    phys.checked_add(len as u64)
        .is_some_and(|end| end <= 1 << 32)
}

/// The `(address, bytes)` PRD regions covering `[phys, phys + len)`, split at 64 KiB
/// boundaries; a byte count of 0 in an entry means 64 KiB. The buffer must lie below
/// 4 GiB ([`dma_reach`] checked it before DMA was chosen), so every address fits 32 bits.
fn prd_regions(phys: u64, len: usize) -> impl Iterator<Item = (u32, u16)> {
    let end = phys + len as u64;
    let mut at = phys;
    core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let stop = end.min((at / PRD_BOUNDARY + 1) * PRD_BOUNDARY);
        let region = (at as u32, (stop - at) as u16);
        at = stop;
        Some(region)
    })
}

/// Whether the bus master reaches both the data buffer at `buffer` (`buffer_len` bytes)
/// and the PRD table at `prd` (`prd_len` bytes); else why it does not.
fn dma_reach(buffer: u64, buffer_len: usize, prd: u64, prd_len: usize) -> Result<(), &'static str> {
    if !below_4gib(buffer, buffer_len) {
        return Err("the data buffer lies above 4 GiB (PRDs hold 32-bit addresses)");
    }
    if !below_4gib(prd, prd_len) {
        return Err("the PRD table lies above 4 GiB (its register holds a 32-bit address)");
    }
    Ok(())
}

/// The outcome of a DMA transfer from the bus-master status read after the drive
/// finished it and before Start is cleared (SFF-8038i: Active clears once the last PRD
/// region is done; the PRD table covers exactly the transfer, so Active still set means
/// the drive moved fewer bytes than asked, and clearing Start would drop what is left).
fn dma_outcome(status: u8) -> Result<(), DeviceError> {
    let what = if status & BM_STATUS_ERROR != 0 {
        "the bus-master DMA transfer"
    } else if status & BM_STATUS_ACTIVE != 0 {
        "the bus-master DMA transfer (the drive finished before the PRD table was done: \
         Active still set)"
    } else {
        return Ok(());
    };
    Err(DeviceError::Status {
        what,
        status: u32::from(status),
    })
}

/// Waits for the bus master to end a DMA transfer the drive reports done and returns
/// its last status (for [`dma_outcome`]): `read_status` reads the bus-master status,
/// `now_ns` is the clock. The common case, Active already clear (or Error set) at the
/// first read, costs that one read and no clock reads; otherwise it reads on for at
/// most [`DMA_DRAIN_TIMEOUT_MS`], the last read taken after the clock said the time
/// was up (so a core away for the whole wait still gets one look).
fn drain_dma(mut read_status: impl FnMut() -> u8, mut now_ns: impl FnMut() -> u64) -> u8 {
    let drained = |status: u8| status & (BM_STATUS_ACTIVE | BM_STATUS_ERROR) != BM_STATUS_ACTIVE;
    let status = read_status();
    if drained(status) {
        return status;
    }
    let start = now_ns();
    loop {
        core::hint::spin_loop();
        let expired = now_ns().saturating_sub(start) > DMA_DRAIN_TIMEOUT_MS * NS_PER_MS;
        let status = read_status();
        if drained(status) || expired {
            return status;
        }
    }
}

/// Whether the controller whose bus-master registers are `bus_master` is simplex-only:
/// bit 7 of either channel's bus-master status (SFF-8038i: only one channel at a time
/// may do bus-master DMA; the PIIX's reads 0).
pub(crate) fn simplex_only(bus_master: &PortWindow) -> bool {
    [0, BM_CHANNEL_STRIDE]
        .into_iter()
        .any(|channel| bus_master.read8(channel + BM_STATUS) & BM_STATUS_SIMPLEX != 0)
}

/// Bus-master DMA on a simplex-only controller ([`simplex_only`]), shared by its two
/// channels: the first channel with a disk that takes DMA keeps it, and the other
/// channel's disks use PIO, so the two channels never run DMA at once.
pub(crate) struct SimplexDma {
    /// The channel whose disks use DMA, or [`NOBODY`] before one does.
    holder: AtomicU8,
}

impl SimplexDma {
    /// DMA not yet taken by either channel.
    pub(crate) fn new() -> Self {
        Self {
            holder: AtomicU8::new(NOBODY),
        }
    }

    /// Whether channel `number`'s disks may use DMA: the channel holds it already, or
    /// nobody did and it does from now on.
    fn take(&self, number: u8) -> bool {
        match self
            .holder
            .compare_exchange(NOBODY, number, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(holder) => holder == number,
        }
    }
}

/// One IDE channel, shared by its two drives: whichever has a command in flight owns
/// it (`busy`), since ATA runs one command per channel.
pub struct Channel {
    /// 0 primary, 1 secondary.
    number: u8,
    /// The command block.
    command: PortWindow,
    /// The control block.
    control: PortWindow,
    /// The controller's bus-master registers (both channels), when it has them.
    bus_master: Option<PortWindow>,
    /// The controller's DMA, shared with the other channel, when the controller is
    /// simplex-only.
    simplex: Option<Arc<SimplexDma>>,
    /// A drive has a command in flight.
    busy: AtomicBool,
    /// The bus master did not confirm a stop: the channel is failed for good
    /// ([`BUS_MASTER_NOT_STOPPED`]).
    bus_master_not_stopped: AtomicBool,
    /// The drive last selected (saves the selection delay when it does not change).
    selected: AtomicU8,
    /// The channel's ISA IRQ (14 or 15) as a wake-up, or why there is none.
    line: Result<LineWake, DeviceError>,
    /// The drives' interrupts are on (nIEN clear): since a drive first armed a wake. Its
    /// lock is held across every device control write after `new` ([`Self::arm`]'s, and
    /// [`Self::reset`]'s from SRST set to SRST released), so that the other drive's
    /// arming never releases a reset's SRST before its hold is over.
    interrupts: spin::Mutex<bool>,
    /// The clock.
    platform: &'static dyn Platform,
}

impl Channel {
    /// Channel `number` on the given ports with its interrupt line `line`, interrupts
    /// and bus master off; `simplex` when the controller is simplex-only.
    pub fn new(
        number: u8,
        (command, control): (PortWindow, PortWindow),
        bus_master: Option<PortWindow>,
        simplex: Option<Arc<SimplexDma>>,
        line: Result<LineWake, DeviceError>,
        platform: &'static dyn Platform,
    ) -> Self {
        control.write8(REG_CONTROL, CONTROL_NIEN);
        let channel = Self {
            number,
            command,
            control,
            bus_master,
            simplex,
            busy: AtomicBool::new(false),
            bus_master_not_stopped: AtomicBool::new(false),
            selected: AtomicU8::new(NOBODY),
            line,
            interrupts: spin::Mutex::new(false),
            platform,
        };
        // Whatever the firmware left running stops; from here every command's end
        // stops the bus master again, so a new command finds it idle and cleared.
        channel.stop_dma(None);
        channel
    }

    /// `Ok` when this channel's disks may use bus-master DMA, which is always but on a
    /// simplex-only controller whose other channel's disks use it ([`SimplexDma`]);
    /// else why they may not.
    fn dma_allowed(&self) -> Result<(), &'static str> {
        match &self.simplex {
            Some(simplex) if !simplex.take(self.number) => Err(
                "the controller is simplex-only (bus-master status bit 7) and the other \
                 channel's disks use DMA",
            ),
            _ => Ok(()),
        }
    }

    /// The alternate status (reading it acknowledges nothing).
    fn alt_status(&self) -> u8 {
        self.control.read8(REG_CONTROL)
    }

    /// Waits the 400 ns a drive needs before its status is valid after a command or a
    /// selection (ATA-6 9.1: four reads of the alternate status take that long).
    fn settle(&self) {
        for _ in 0..4 {
            self.alt_status();
        }
    }

    /// Selects `drive` in the device register and waits for its status to be valid
    /// ([`Self::settle`]).
    fn write_select(&self, drive: u8) {
        self.command
            .write8(REG_DEVICE, DEVICE_OBSOLETE | drive_bit(drive));
        self.settle();
    }

    /// [`BUS_MASTER_NOT_STOPPED`] once the bus master did not confirm a stop, for every
    /// call of either drive but disarming a wake.
    fn usable(&self) -> Result<(), DeviceError> {
        if self.bus_master_not_stopped.load(Ordering::Acquire) {
            Err(BUS_MASTER_NOT_STOPPED)
        } else {
            Ok(())
        }
    }

    /// Takes the channel for one command: [`DeviceError::QueueFull`] when the other
    /// drive has one in flight, and [`BUS_MASTER_NOT_STOPPED`] (the channel given back)
    /// when the channel failed, even after the caller's own [`Self::usable`]: a holder
    /// fails the channel before it gives it back, so a claim that follows sees it.
    fn claim(&self) -> Result<(), DeviceError> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .map_err(|_| DeviceError::QueueFull)?;
        self.usable().inspect_err(|_| self.release())
    }

    /// Gives the channel back after a command.
    fn release(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// The device control value outside a reset: nIEN unless the drives' interrupts are
    /// on (`interrupts`: a drive armed a wake).
    fn control_value(interrupts: bool) -> u8 {
        if interrupts { 0 } else { CONTROL_NIEN }
    }

    /// Arms the channel's line to wake core `core` at the next interrupt of either
    /// drive, turning the drives' interrupts on the first time. They stay on: the line
    /// is edge-triggered (the drive raises INTRQ at a command's end and for each PIO
    /// block, and reading the status register, which every command's end and every PIO
    /// block's start do, lowers it), so the kernel masks it after one interrupt until
    /// the next arming, and an interrupt nobody waits for costs at most that one. The
    /// first arming waits for a reset of the other drive's holder to release SRST.
    fn arm(&self, core: usize) -> Result<(), DeviceError> {
        let line = self.line.as_ref().map_err(|error| *error)?;
        let mut interrupts = self.interrupts.lock();
        if !*interrupts {
            *interrupts = true;
            self.control.write8(REG_CONTROL, 0);
        }
        drop(interrupts);
        line.arm(core)
    }

    /// Soft-resets both drives (SRST) and waits for the master to leave BSY. The master
    /// is selected first, as a reset leaves it on real drives (ATA-6 9.2: DEV cleared):
    /// status reads of an absent slave left selected (by firmware) are 0, not BSY,
    /// whether the reset is over or not, and under QEMU, whose reset completes later on
    /// its main thread, the master could not be selected while that slave was still
    /// busy with it (the select ignored, the master found "empty").
    fn reset(&self) -> Result<(), DeviceError> {
        self.selected.store(NOBODY, Ordering::Relaxed);
        self.write_select(0);
        let interrupts = self.interrupts.lock();
        let control = Self::control_value(*interrupts);
        self.control.write8(REG_CONTROL, CONTROL_SRST | control);
        pause(self.platform, RESET_HOLD_NS);
        self.control.write8(REG_CONTROL, control);
        drop(interrupts);
        pause(self.platform, RESET_SETTLE_NS);
        rexo_devio::wait_until(
            self.platform,
            "the IDE channel's reset",
            READY_TIMEOUT_MS,
            || self.alt_status() & STATUS_BSY == 0,
        )
    }

    /// [`reset`](Self::reset) after `drive`'s command failed or hung, so that the next
    /// command finds the channel idle; a reset that fails is logged, the command's own
    /// error being the one returned.
    fn reset_after_command(&self, drive: u8) {
        if let Err(error) = self.reset() {
            log::warn!("ata: {}: {error}", self.drive_name(drive));
        }
    }

    /// Selects `drive` and waits until it can take a command (neither BSY nor DRQ).
    fn select(&self, drive: u8) -> Result<(), DeviceError> {
        if self.selected.swap(drive, Ordering::Relaxed) != drive {
            self.write_select(drive);
        }
        let result = rexo_devio::wait_until(
            self.platform,
            "the IDE drive to be ready",
            READY_TIMEOUT_MS,
            || self.alt_status() & (STATUS_BSY | STATUS_DRQ) == 0,
        );
        if result.is_err() {
            self.selected.store(NOBODY, Ordering::Relaxed);
        }
        result
    }

    /// Selects `drive` for a command ([`Self::select`]), the caller holding the channel.
    /// A drive still busy or holding DRQ past the wait, with no command in flight, stays
    /// so unless something ends it (the command timeout's reset needs a request): the
    /// channel is reset (logged) and the drive waited for once more.
    fn select_for_command(&self, drive: u8) -> Result<(), DeviceError> {
        let Err(error) = self.select(drive) else {
            return Ok(());
        };
        log::warn!(
            "ata: {}: {error}: resetting channel {}",
            self.drive_name(drive),
            self.number
        );
        self.reset()?;
        self.select(drive)
    }

    /// Writes `command` for `drive` into the task file and starts it (ATA-6 6.20: the
    /// "previous" bytes of the 48-bit forms first).
    fn issue(&self, drive: u8, command: &Command) {
        let ports = &self.command;
        let lba = command.lba.to_le_bytes();
        if command.extended {
            ports.write8(REG_ERROR, (command.features >> 8) as u8);
            ports.write8(REG_COUNT, (command.count >> 8) as u8);
            ports.write8(REG_LBA_LOW, lba[3]);
            ports.write8(REG_LBA_MID, lba[4]);
            ports.write8(REG_LBA_HIGH, lba[5]);
        }
        ports.write8(REG_ERROR, command.features as u8);
        ports.write8(REG_COUNT, command.count as u8);
        ports.write8(REG_LBA_LOW, lba[0]);
        ports.write8(REG_LBA_MID, lba[1]);
        ports.write8(REG_LBA_HIGH, lba[2]);
        ports.write8(
            REG_DEVICE,
            DEVICE_OBSOLETE | command.device | drive_bit(drive),
        );
        ports.write8(REG_COMMAND, command.opcode);
        self.settle();
    }

    /// The bus-master register `register` of this channel.
    fn bm_read8(&self, bus_master: &PortWindow, register: u16) -> u8 {
        bus_master.read8(u16::from(self.number) * BM_CHANNEL_STRIDE + register)
    }

    /// Writes bus-master register `register` of this channel.
    fn bm_write8(&self, bus_master: &PortWindow, register: u16, value: u8) {
        bus_master.write8(u16::from(self.number) * BM_CHANNEL_STRIDE + register, value);
    }

    /// Stops the bus master and clears its Error and Interrupt bits (write 1 to clear),
    /// keeping the rest of its status: `status` when the caller has just read it, else
    /// read here.
    fn stop_dma(&self, status: Option<u8>) {
        let Some(bm) = &self.bus_master else {
            return;
        };
        self.bm_write8(bm, BM_COMMAND, 0);
        let status = status.unwrap_or_else(|| self.bm_read8(bm, BM_STATUS));
        self.bm_write8(
            bm,
            BM_STATUS,
            status | BM_STATUS_ERROR | BM_STATUS_INTERRUPT,
        );
    }

    /// Ends a DMA transfer the drive reports done: waits for the bus master to clear
    /// Active or report an error ([`drain_dma`]), then stops it; an error when it
    /// reported one or stayed Active ([`dma_outcome`]).
    fn finish_dma(&self) -> Result<(), DeviceError> {
        let Some(bm) = &self.bus_master else {
            return Ok(());
        };
        let status = drain_dma(|| self.bm_read8(bm, BM_STATUS), || self.platform.now_ns());
        self.stop_dma(Some(status));
        dma_outcome(status)
    }

    /// Whether `drive` may hold an ATA disk, from what the reset left (ATA-6 9.12: the
    /// signature in the LBA registers): false (logged) for an ATAPI device or an empty
    /// position. Must run for both drives before any command: commands write the task
    /// file of both drives and wipe the signatures.
    fn maybe_ata(&self, drive: u8) -> bool {
        let name = self.drive_name(drive);
        self.selected.store(drive, Ordering::Relaxed);
        self.write_select(drive);
        let signature = (
            self.command.read8(REG_LBA_MID),
            self.command.read8(REG_LBA_HIGH),
        );
        if matches!(signature, (0x14, 0xEB) | (0x69, 0x96)) {
            log::info!("ata: {name}: an ATAPI device, skipped");
            return false;
        }
        // A floating bus reads 0xFF, an empty position behind a present drive 0 (an
        // ATAPI device may read 0 too, hence the signature first).
        let status = self.alt_status();
        if status == 0 || status == 0xFF {
            log::info!("ata: {name}: empty");
            return false;
        }
        true
    }

    /// Reads the IDENTIFY DEVICE data of `drive` into `data`; `None` (logged) when no
    /// ATA disk answers.
    fn identify(&self, drive: u8, data: &mut [u8; IDENTIFY_BYTES]) -> Option<()> {
        let name = self.drive_name(drive);
        if let Err(error) = self.select(drive) {
            log::info!("ata: {name}: no drive ({error})");
            return None;
        }
        self.issue(drive, &Command::identify());
        if self.alt_status() == 0 {
            log::info!("ata: {name}: empty");
            return None;
        }
        let answered =
            rexo_devio::wait_until(self.platform, "IDENTIFY", IDENTIFY_TIMEOUT_MS, || {
                self.alt_status() & STATUS_BSY == 0
            })
            .and_then(|()| {
                rexo_devio::wait_until(self.platform, "IDENTIFY data", IDENTIFY_TIMEOUT_MS, || {
                    self.alt_status() & (STATUS_DRQ | STATUS_ERR) != 0
                })
            });
        if let Err(error) = answered {
            log::info!("ata: {name}: no drive ({error})");
            self.selected.store(NOBODY, Ordering::Relaxed);
            return None;
        }
        let status = self.command.read8(REG_STATUS);
        if status & STATUS_ERR != 0 {
            log::info!(
                "ata: {name}: refused IDENTIFY DEVICE (status {status:#x}): not an ATA disk"
            );
            return None;
        }
        for word in data.chunks_exact_mut(2) {
            word.copy_from_slice(&self.command.read16(REG_DATA).to_le_bytes());
        }
        self.settle();
        Some(())
    }

    /// "primary master" and so on, for messages.
    fn drive_name(&self, drive: u8) -> &'static str {
        match (self.number, drive) {
            (0, 0) => "primary master",
            (0, _) => "primary slave",
            (_, 0) => "secondary master",
            _ => "secondary slave",
        }
    }

    /// Stops the bus master ([`Self::stop_dma`]) after a command of `drive` that did
    /// not end cleanly (an error, a hang, a release) and confirms the stop
    /// ([`Self::confirm_dma_stopped`]).
    fn stop_dma_confirmed(&self, drive: u8) {
        self.stop_dma(None);
        self.confirm_dma_stopped(drive);
    }

    /// Waits (at most [`DMA_STOP_TIMEOUT_MS`]) for the bus master, just stopped
    /// ([`Self::stop_dma`]) after a command of `drive`, to read back inactive (Active
    /// clear). If it stays Active it may still move data to or from the memory its PRD
    /// table names (the table it holds is `drive`'s: the stop that fails follows a
    /// command of `drive`), so the channel fails for good (logged): both drives refuse
    /// every later call ([`Self::usable`]) and keep their DMA memory ([`IdeDisk`]'s
    /// drop; the other drive's kept as a precaution). Nothing to wait for on a channel
    /// without a bus master.
    fn confirm_dma_stopped(&self, drive: u8) {
        let Some(bm) = &self.bus_master else {
            return;
        };
        let stopped = rexo_devio::wait_until(
            self.platform,
            "the bus master's stop (Active clear)",
            DMA_STOP_TIMEOUT_MS,
            || self.bm_read8(bm, BM_STATUS) & BM_STATUS_ACTIVE == 0,
        );
        if let Err(error) = stopped {
            self.bus_master_not_stopped.store(true, Ordering::Release);
            log::error!(
                "ata: {}: {error}: channel {} takes no more commands",
                self.drive_name(drive),
                self.number
            );
        }
    }
}

/// The device register's drive select bit for `drive`.
fn drive_bit(drive: u8) -> u8 {
    if drive == 0 { 0 } else { DEVICE_DRIVE1 }
}

/// Finds the ATA disks on `channel` (reset first; empty channels and ATAPI devices are
/// logged and skipped).
pub(crate) fn detect(
    channel: &Arc<Channel>,
    platform: &'static dyn Platform,
) -> alloc::vec::Vec<IdeDisk> {
    let mut disks = alloc::vec::Vec::new();
    if channel.alt_status() == 0xFF {
        log::info!(
            "ata: channel {}: nothing attached (floating bus)",
            channel.number
        );
        return disks;
    }
    if let Err(error) = channel.reset() {
        log::warn!("ata: channel {}: {error}", channel.number);
        return disks;
    }
    let candidates = [channel.maybe_ata(0), channel.maybe_ata(1)];
    for drive in (0..2).filter(|&drive| candidates[usize::from(drive)]) {
        let mut data = [0; IDENTIFY_BYTES];
        if channel.identify(drive, &mut data).is_none() {
            continue;
        }
        let name = channel.drive_name(drive);
        match Identity::parse(&data)
            .and_then(|identity| IdeDisk::new(Arc::clone(channel), drive, identity, platform))
        {
            Ok(disk) => {
                if let Some(warning) = disk.identity.capacity_warning() {
                    log::warn!("ata: {name}: {warning}");
                }
                log::info!(
                    "ata: {name}: {:?}, {} sectors, {}, {}",
                    disk.identity.model,
                    disk.identity.sectors,
                    if disk.identity.lba48 {
                        "LBA48"
                    } else {
                        "LBA28"
                    },
                    match disk.protocol {
                        Protocol::Dma => "bus-master DMA",
                        Protocol::Pio => "PIO",
                    }
                );
                disks.push(disk);
            }
            Err(error) => log::warn!("ata: {name}: not used: {error}"),
        }
    }
    disks
}

/// The one request in flight on a drive.
struct Request {
    /// Its tag.
    tag: Tag,
    /// What it does.
    operation: Operation,
    /// Sectors it moves.
    sectors: u32,
    /// Sectors moved so far by PIO.
    moved: u32,
    /// When it was issued.
    since: u64,
}

/// One ATA disk on an IDE channel.
pub struct IdeDisk {
    /// Its channel, shared with the other drive.
    channel: Arc<Channel>,
    /// 0 master, 1 slave.
    drive: u8,
    /// What IDENTIFY said.
    identity: Identity,
    /// Bus-master DMA, or PIO when the controller or drive cannot.
    protocol: Protocol,
    /// The request's data (read into or written from in place).
    buffer: Dma,
    /// The PRD table (DMA only; below 4 GiB).
    prd: Option<Dma>,
    /// The request in flight.
    request: Option<Request>,
    /// The next request's tag.
    next_tag: Tag,
    /// The most sectors per request.
    max_sectors: u32,
    /// Shut down for a power-off or reboot ([`BlockDevice::shut_down`]): every later
    /// request, poll and arming is refused with [`DISK_SHUT_DOWN`].
    shut_down: bool,
    /// The clock.
    platform: &'static dyn Platform,
}

impl IdeDisk {
    /// The disk `drive` of `channel`, described by `identity`; DMA when the controller
    /// has a bus master, the drive takes DMA as it is set up ([`Identity::dma`]: a DMA
    /// mode selected), the bus master reaches the data buffer and the PRD table (below
    /// 4 GiB) and, on a simplex-only controller, the other channel's disks do not use
    /// DMA ([`Channel::dma_allowed`]), else PIO (logged when one of the last two is why).
    fn new(
        channel: Arc<Channel>,
        drive: u8,
        identity: Identity,
        platform: &'static dyn Platform,
    ) -> Result<Self, DeviceError> {
        let max_sectors = command::max_sectors(identity.lba48, BUFFER_SECTORS);
        let buffer = Dma::new(platform, (max_sectors * SECTOR_BYTES) as usize)?;
        let prd = if channel.bus_master.is_some() && identity.dma {
            let prd = Dma::new(platform, PRD_TABLE_BYTES)?;
            let reach = dma_reach(buffer.phys(), buffer.len(), prd.phys(), prd.len());
            match reach.and_then(|()| channel.dma_allowed()) {
                Ok(()) => Some(prd),
                Err(why) => {
                    log::warn!(
                        "ata: {}: PIO instead of bus-master DMA: {why}",
                        channel.drive_name(drive)
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            channel,
            drive,
            protocol: if prd.is_some() {
                Protocol::Dma
            } else {
                Protocol::Pio
            },
            identity,
            buffer,
            prd,
            request: None,
            next_tag: 0,
            max_sectors,
            shut_down: false,
            platform,
        })
    }

    /// Checks `queue`, claims the channel and starts `operation`; the request's tag.
    fn start(
        &mut self,
        queue: usize,
        operation: Operation,
        lba: u64,
        sectors: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<Tag, DeviceError> {
        if queue != 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        self.channel.usable()?;
        if let Operation::Transfer(_) = operation {
            command::check_range(lba, sectors, self.identity.sectors, self.max_sectors)?;
        }
        if self.request.is_some() {
            return Err(DeviceError::QueueFull);
        }
        self.channel.claim()?;
        let bytes = (sectors * SECTOR_BYTES) as usize;
        let write = operation == Operation::Transfer(Direction::Write);
        if write && !fill(self.buffer.bytes_mut(0, bytes)) {
            self.channel.release();
            return Err(DeviceError::Withdrawn);
        }
        if let Err(error) = self.channel.select_for_command(self.drive) {
            self.channel.release();
            return Err(error);
        }
        let lba48 = self.identity.lba48;
        let command = match operation {
            Operation::Flush => Command::flush(lba48),
            Operation::Standby => Command::standby_immediate(),
            // `sectors` is at most `max_sectors` (checked), which fits the count field.
            Operation::Transfer(direction) => {
                Command::transfer(direction, self.protocol, lba48, lba, sectors as u16)
            }
        };
        match (operation, &mut self.prd, &self.channel.bus_master) {
            (Operation::Transfer(direction), Some(prd), Some(bm)) => {
                if direction == Direction::Read {
                    // Past the bus master's word (Active clears once its PRD table is
                    // done), nothing shows how many bytes a DMA read moved: the drive's
                    // registers do not (DRQ is clear at the end either way; READ DMA
                    // (EXT) returns no sector count). One reported done without its data
                    // would lend what the buffer held before, the last request's
                    // sectors, perhaps of an earlier holder of the disk (the buffer
                    // serves every lease in turn): so it lends zeros instead. Writing
                    // at most 64 KiB of memory is small beside moving them over IDE.
                    self.buffer.bytes_mut(0, bytes).fill(0);
                }
                // DMA was chosen only with the buffer below 4 GiB (`new`).
                let mut entries = prd_regions(self.buffer.phys(), bytes).peekable();
                let mut at = 0;
                while let Some((address, count)) = entries.next() {
                    prd.write32(at, address);
                    prd.write16(at + 4, count);
                    let end = if entries.peek().is_none() { PRD_END } else { 0 };
                    prd.write16(at + 6, end);
                    at += PRD_BYTES;
                }
                let to_memory = if direction == Direction::Read {
                    BM_TO_MEMORY
                } else {
                    0
                };
                // The table lies below 4 GiB (`new`): the cast keeps every bit.
                bm.write32(
                    u16::from(self.channel.number) * BM_CHANNEL_STRIDE + BM_PRDT,
                    prd.phys() as u32,
                );
                self.channel.bm_write8(bm, BM_COMMAND, to_memory);
                barrier();
                self.channel.issue(self.drive, &command);
                self.channel.bm_write8(bm, BM_COMMAND, to_memory | BM_START);
            }
            _ => self.channel.issue(self.drive, &command),
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        self.request = Some(Request {
            tag,
            operation,
            sectors,
            moved: 0,
            since: self.platform.now_ns(),
        });
        Ok(tag)
    }

    /// Runs `operation` (one without data: a flush, the standby) and polls until it
    /// ends: the channel is waited for while the other drive has a command in flight (up
    /// to [`CHANNEL_WAIT_MS`]: its holder's polls end it), then the command runs within
    /// its [`Operation::timeout_ms`] (past it the channel is reset). Its outcome (a
    /// timeout naming [`CHANNEL_HELD`] when the channel never came free).
    fn run_alone(&mut self, operation: Operation) -> Result<(), DeviceError> {
        let platform = self.platform;
        let take_channel = || match self.start(0, operation, 0, 0, &mut |_| true) {
            Ok(tag) => Ok(Some(tag)),
            Err(DeviceError::QueueFull) => Ok(None),
            Err(error) => Err(error),
        };
        let tag = rexo_devio::wait_for(platform, CHANNEL_HELD, CHANNEL_WAIT_MS, take_channel)?;
        rexo_api::device::wait_for(self, 0, tag, &mut |_| {})
    }

    /// Moves the request on as far as the drive lets it without waiting (but for the
    /// bus master's last bytes after a DMA command, [`Channel::finish_dma`], and the
    /// channel's reset after an error that leaves DRQ set or a timeout): `None` while
    /// it runs, else its outcome.
    fn progress(&mut self) -> Option<Result<(), DeviceError>> {
        let request = self.request.as_mut()?;
        let channel = &*self.channel;
        loop {
            let status = channel.alt_status();
            if status & STATUS_BSY == 0 && status & (STATUS_ERR | STATUS_DF) != 0 {
                let error = channel.command.read8(REG_ERROR);
                channel.stop_dma_confirmed(self.drive);
                channel.command.read8(REG_STATUS);
                // A drive may report the error with DRQ still set, its block waiting (a
                // read's uncorrectable sector: drive manuals leave the host to read the
                // block or reset). Nothing reads it here, and a drive holding DRQ takes
                // no command: the reset ends it, so the next command finds it ready.
                if status & STATUS_DRQ != 0 {
                    channel.reset_after_command(self.drive);
                }
                return Some(Err(DeviceError::Status {
                    what: "the ATA command",
                    status: command::error_value(status, error),
                }));
            }
            let idle = status & (STATUS_BSY | STATUS_DRQ) == 0;
            let data_ready = status & (STATUS_BSY | STATUS_DRQ) == STATUS_DRQ;
            let pio = self.protocol == Protocol::Pio;
            match request.operation {
                Operation::Transfer(direction)
                    if pio && data_ready && request.moved < request.sectors =>
                {
                    // The status register, not the alternate: ATA's PIO protocols read
                    // it before each block, which ends the block's interrupt (INTRQ
                    // falls). Otherwise INTRQ stays high from the first block to the
                    // command's end, the later blocks make no new edge on the
                    // edge-triggered line, and a core armed between blocks sleeps on.
                    channel.command.read8(REG_STATUS);
                    let at = (request.moved * SECTOR_BYTES) as usize;
                    let sector = self.buffer.bytes_mut(at, SECTOR_BYTES as usize);
                    for word in sector.chunks_exact_mut(2) {
                        match direction {
                            Direction::Read => word
                                .copy_from_slice(&channel.command.read16(REG_DATA).to_le_bytes()),
                            Direction::Write => channel
                                .command
                                .write16(REG_DATA, u16::from_le_bytes([word[0], word[1]])),
                        }
                    }
                    request.moved += 1;
                    channel.settle();
                    continue;
                }
                Operation::Transfer(_) if pio && idle && request.moved == request.sectors => {
                    channel.command.read8(REG_STATUS);
                    return Some(Ok(()));
                }
                // The drive ended the command with sectors still to move, and no error:
                // it will ask for no more. The status read ends the command (INTRQ
                // falls), so the channel takes the next one.
                Operation::Transfer(_) if pio && idle => {
                    channel.command.read8(REG_STATUS);
                    return Some(Err(DeviceError::Status {
                        what: "the ATA PIO transfer, which the drive ended before its last sector",
                        status: u32::from(status),
                    }));
                }
                Operation::Transfer(_) if !pio && idle => {
                    let outcome = channel.finish_dma();
                    // A transfer the bus master did not end (Active when the drain
                    // expired, or Error): finish_dma stopped it, and it may not obey.
                    if outcome.is_err() {
                        channel.confirm_dma_stopped(self.drive);
                    }
                    channel.command.read8(REG_STATUS);
                    return Some(outcome);
                }
                Operation::Flush | Operation::Standby if idle => {
                    channel.command.read8(REG_STATUS);
                    return Some(Ok(()));
                }
                _ => {}
            }
            let waited = self.platform.now_ns().saturating_sub(request.since);
            let timeout_ms = request.operation.timeout_ms();
            if waited <= timeout_ms * NS_PER_MS {
                return None;
            }
            // The drive hung: stop the bus master and reset the channel so the next
            // command finds it idle.
            channel.stop_dma_confirmed(self.drive);
            channel.reset_after_command(self.drive);
            return Some(Err(DeviceError::Timeout {
                what: "the ATA command",
                ms: timeout_ms,
            }));
        }
    }
}

impl Drop for IdeDisk {
    /// Stops a DMA still running into the buffers before they go back; a bus master that
    /// still reads Active after the stop (this one or an earlier one on the channel, of
    /// either drive, which then fails the channel for good) may go on moving data, so a DMA
    /// disk's data buffer and PRD table are then kept for good.
    fn drop(&mut self) {
        if self.request.take().is_some() {
            self.channel.stop_dma_confirmed(self.drive);
            self.channel.release();
        }
        if self.channel.usable().is_err() && self.prd.is_some() {
            let name = self.channel.drive_name(self.drive);
            let memory = core::iter::once(&mut self.buffer).chain(&mut self.prd);
            rexo_devio::abandon_to_device(&format_args!("ata {name}"), memory);
        }
    }
}

impl BlockDevice for IdeDisk {
    /// The PIIX's IDE function has neither MSI nor MSI-X: the channel's ISA IRQ (14 or
    /// 15, edge-triggered, in compatibility mode) wakes the core. `None` arms nothing,
    /// on a failed channel too; a completion after it wakes the core last armed once
    /// at most.
    fn wake_on_completion(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        if queue != 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        let Some(core) = core else {
            return self
                .channel
                .line
                .as_ref()
                .map(|_| ())
                .map_err(|error| *error);
        };
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        self.channel.usable()?;
        self.channel.arm(core)
    }

    /// Drains the drive: the command in flight finishes (or times out and resets the
    /// channel) with its completion dropped, so the next holder starts from an idle drive.
    fn abandon_requests(&mut self) {
        while self.request.is_some() {
            if self.poll(0, &mut |_, _| {}).is_err() {
                break;
            }
        }
    }

    /// The command in flight is drained as [`abandon_requests`](Self::abandon_requests)
    /// drains it, then the drive is told as [`crate::shutdown::tell`] says (FLUSH CACHE
    /// (EXT), then STANDBY IMMEDIATE at a power-off), each command within its
    /// [`Operation::timeout_ms`] (60 s) once the channel is free (the other drive's command
    /// waited for up to [`WRITE_OUT_TIMEOUT_MS`] (60 s), once: a channel that stays held
    /// through the flush's wait is not waited for again, the drive not told). A failed
    /// channel's drive is not told. The disk refuses everything after.
    fn shut_down(&mut self, leaving: Leaving) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        self.abandon_requests();
        // A channel held through the flush's wait is held still: the standby would only
        // wait as long again.
        let channel_held = |error: &DeviceError| matches!(error, DeviceError::Timeout { what, .. } if *what == CHANNEL_HELD);
        let told = crate::shutdown::tell(leaving, |step| self.run_alone(step.into()), channel_held);
        self.shut_down = true;
        told
    }

    fn info(&self) -> BlockInfo {
        BlockInfo {
            sectors: self.identity.sectors,
            sector_size: SECTOR_BYTES,
            max_sectors: self.max_sectors,
            queues: 1,
            depth: 1,
            model: self.identity.model.clone(),
        }
    }

    fn submit_read(&mut self, queue: usize, lba: u64, sectors: u32) -> Result<Tag, DeviceError> {
        self.start(
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
        self.start(
            queue,
            Operation::Transfer(Direction::Write),
            lba,
            sectors,
            fill,
        )
    }

    fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError> {
        self.start(queue, Operation::Flush, 0, 0, &mut |_| true)
    }

    fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
        if queue != 0 {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        if self.request.is_none() {
            // A request in flight ends with its own outcome, even when its end is what
            // fails the channel; from then on every poll says the channel failed.
            self.channel.usable()?;
        }
        let Some(outcome) = self.progress() else {
            return Ok(0);
        };
        let Some(request) = self.request.take() else {
            return Ok(0);
        };
        self.channel.release();
        match (outcome, request.operation) {
            (Ok(()), Operation::Transfer(Direction::Read)) => {
                let bytes = (request.sectors * SECTOR_BYTES) as usize;
                done(request.tag, Ok(self.buffer.bytes(0, bytes)));
            }
            (Ok(()), _) => done(request.tag, Ok(&[])),
            (Err(error), _) => done(request.tag, Err(error)),
        }
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_devio::host::{FakePorts, HostPlatform, PortRead, PortWrite};

    /// Status: the drive is ready (DRDY), neither busy nor asking for data.
    const STATUS_READY: u8 = 0x40;

    /// The master of a PIO-only channel (no bus master) on fake ports, ready, with
    /// `sectors` sectors and the 28-bit commands only: the disk and its command and
    /// control blocks, their writes so far taken.
    fn pio_disk(sectors: u64) -> (IdeDisk, FakePorts, FakePorts) {
        let (disk, command, control, _) = disk_on_fake_ports(0, sectors, false, None);
        (disk, command, control)
    }

    /// The master of channel `number` on fake ports, ready, with `sectors` sectors, the
    /// 48-bit commands when `lba48`, the channel's interrupt line (IRQ 14 or 15), and
    /// the bus master `bus_master` when given: the disk,
    /// its command and control blocks, and the bus master's writes at start (taken from
    /// it, as the blocks' are).
    fn disk_on_fake_ports(
        number: u8,
        sectors: u64,
        lba48: bool,
        bus_master: Option<&FakePorts>,
    ) -> (IdeDisk, FakePorts, FakePorts, Vec<PortWrite>) {
        disk_on(HostPlatform::leaked(), number, sectors, lba48, bus_master)
    }

    /// [`disk_on_fake_ports`] on `platform`, whose DMA allocations the test counts.
    fn disk_on(
        platform: &'static HostPlatform,
        number: u8,
        sectors: u64,
        lba48: bool,
        bus_master: Option<&FakePorts>,
    ) -> (IdeDisk, FakePorts, FakePorts, Vec<PortWrite>) {
        let (command, control) = (FakePorts::new(8), FakePorts::new(1));
        control.answer8(REG_CONTROL, STATUS_READY);
        command.answer8(REG_STATUS, STATUS_READY);
        let channel = Channel::new(
            number,
            (command.window(), control.window()),
            bus_master.map(FakePorts::window),
            None,
            platform.line_wake(14 + number, false),
            platform,
        );
        let identity = Identity {
            model: "QEMU HARDDISK".into(),
            sectors,
            lba48,
            dma: bus_master.is_some(),
            ncq_depth: None,
            claimed_past_reach: None,
        };
        let disk = IdeDisk::new(Arc::new(channel), 0, identity, platform).unwrap();
        command.take_writes();
        control.take_writes();
        let started = bus_master.map(FakePorts::take_writes).unwrap_or_default();
        (disk, command, control, started)
    }

    /// 8-bit writes of `(offset, value)`.
    fn writes8(writes: &[(u16, u8)]) -> alloc::vec::Vec<PortWrite> {
        writes
            .iter()
            .map(|&(offset, value)| PortWrite {
                offset,
                bytes: 1,
                value: value.into(),
            })
            .collect()
    }

    #[test]
    fn a_reset_selects_the_master_before_it_begins() {
        let (disk, command, control) = pio_disk(1 << 20);
        assert_eq!(disk.channel.reset(), Ok(()));
        // The writes of both blocks in the order they were made (0 the command block's,
        // 1 the control block's).
        let writes = FakePorts::take_writes_of(&[&command, &control]);
        let first_to = |window| writes.iter().position(|&(to, _)| to == window);
        let (select, srst) = (first_to(0), first_to(1));
        assert_eq!(
            select.map(|at| writes[at].1),
            Some(writes8(&[(REG_DEVICE, DEVICE_OBSOLETE | drive_bit(0))])[0]),
            "the master selected first"
        );
        assert!(
            srst.is_some_and(|at| writes[at].1.value & u32::from(CONTROL_SRST) != 0),
            "then the reset"
        );
        assert!(select < srst, "the select written before SRST");
    }

    #[test]
    fn a_withdrawn_write_touches_no_register_and_leaves_the_channel_free() {
        let (mut disk, command, control) = pio_disk(1 << 20);
        let withdrawn = disk.submit_write_checked(0, 8, 2, &mut |_| false);
        assert_eq!(withdrawn, Err(DeviceError::Withdrawn));
        assert_eq!(command.take_writes(), [], "no selection, no task file");
        assert_eq!(control.take_writes(), []);
        assert_eq!(disk.submit_read(0, 8, 2), Ok(0), "the channel is free");
    }

    #[test]
    fn a_pio_transfer_the_drive_ends_short_fails_at_once_and_frees_the_channel() {
        let stopped_short = Err(DeviceError::Status {
            what: "the ATA PIO transfer, which the drive ended before its last sector",
            status: STATUS_READY.into(),
        });
        for direction in [Direction::Read, Direction::Write] {
            let (mut disk, command, control) = pio_disk(1 << 20);
            command.answer8(REG_DATA, 0x5A);
            let first = match direction {
                Direction::Read => disk.submit_read(0, 8, 4),
                Direction::Write => disk.submit_write_checked(0, 8, 4, &mut |_| true),
            };
            assert_eq!(first, Ok(0));
            // The drive asks for one sector, then goes idle with three still to move.
            control.answer8_in_turn(REG_CONTROL, &[STATUS_READY | STATUS_DRQ, STATUS_READY]);
            let mut outcomes = Vec::new();
            let polled = disk.poll(0, &mut |tag, result| {
                outcomes.push((tag, result.map(<[u8]>::len)))
            });
            assert_eq!(polled, Ok(1), "{direction:?}: ended at once, no timeout");
            assert_eq!(outcomes, [(0, stopped_short)], "{direction:?}");
            // The next read on the channel runs and lends its sector.
            assert_eq!(disk.submit_read(0, 8, 1), Ok(1), "{direction:?}");
            control.answer8_in_turn(REG_CONTROL, &[STATUS_READY | STATUS_DRQ, STATUS_READY]);
            let mut sector = Vec::new();
            let polled = disk.poll(0, &mut |tag, result| {
                sector.push((tag, result.map(<[u8]>::to_vec)))
            });
            assert_eq!(polled, Ok(1));
            // Each 16-bit read: the data port's answer, then the next port's (0).
            assert_eq!(sector, [(1, Ok([0x5A, 0].repeat(256)))], "{direction:?}");
        }
    }

    /// Plays a drive on `control`'s channel that a software reset makes ready: at each
    /// clock reading (a reset pauses after writing SRST) the control block's writes are
    /// taken and, once one sets SRST, the alternate status reads [`STATUS_READY`]; each
    /// reading also moves the clock a millisecond on, so a wait for the drive ends in a
    /// few thousand looks. The flag says whether SRST was written.
    fn ready_after_srst(platform: &'static HostPlatform, control: FakePorts) -> Arc<AtomicBool> {
        let reset = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&reset);
        platform.on_clock_reading(move || {
            platform.advance_clock(NS_PER_MS);
            let writes = control.take_writes();
            if writes
                .iter()
                .any(|write| write.value & u32::from(CONTROL_SRST) != 0)
            {
                seen.store(true, Ordering::Relaxed);
                control.answer8(REG_CONTROL, STATUS_READY);
            }
        });
        reset
    }

    #[test]
    fn a_first_arming_during_a_reset_leaves_srst_set_for_its_whole_hold() {
        let platform = HostPlatform::leaked();
        let (disk, _command, control, _) = disk_on(platform, 0, 1 << 20, false, None);
        let channel = Arc::clone(&disk.channel);
        // The control block's writes, each with the clock reading that found it, and the
        // other core's arming, started once SRST is written.
        let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let arming = Arc::new(std::sync::Mutex::new(None));
        let (log, other_core) = (Arc::clone(&writes), Arc::clone(&arming));
        let readings = std::sync::atomic::AtomicU64::new(0);
        platform.on_clock_reading(move || {
            let reading = readings.fetch_add(1, Ordering::Relaxed);
            let mut log = log.lock().unwrap();
            log.extend(
                control
                    .take_writes()
                    .iter()
                    .map(|w| (reading, w.value as u8)),
            );
            let srst = log.iter().any(|&(_, value)| value & CONTROL_SRST != 0);
            let mut other_core = other_core.lock().unwrap();
            if srst && other_core.is_none() {
                let channel = Arc::clone(&channel);
                *other_core = Some(std::thread::spawn(move || channel.arm(1)));
                // Time for its control write to land, if nothing holds it back.
                let since = std::time::Instant::now();
                while since.elapsed() < std::time::Duration::from_millis(300) {
                    let written = control.take_writes();
                    log.extend(written.iter().map(|w| (reading, w.value as u8)));
                    if !written.is_empty() {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        });
        assert_eq!(disk.channel.reset(), Ok(()));
        let armed = arming
            .lock()
            .unwrap()
            .take()
            .expect("armed during the reset");
        assert_eq!(armed.join().unwrap(), Ok(()));
        let mut log = writes.lock().unwrap().clone();
        log.extend(
            control
                .take_writes()
                .iter()
                .map(|w| (u64::MAX, w.value as u8)),
        );
        let values: Vec<u8> = log.iter().map(|&(_, value)| value).collect();
        // SRST with nIEN, released to nIEN by the reset, then the arming's 0.
        assert_eq!(values, [CONTROL_SRST | CONTROL_NIEN, CONTROL_NIEN, 0]);
        // One reading a microsecond: SRST held at least 5.
        let held = log[1].0 - log[0].0;
        assert!(
            held >= RESET_HOLD_NS / HostPlatform::CLOCK_TICK_NS,
            "held {held} us"
        );
    }

    #[test]
    fn a_read_error_that_leaves_drq_set_resets_the_channel_and_the_next_read_runs() {
        let platform = HostPlatform::leaked();
        let (mut disk, command, control, _) = disk_on(platform, 0, 1 << 20, false, None);
        assert_eq!(disk.submit_read(0, 8, 2), Ok(0));
        let reset = ready_after_srst(platform, control);
        // An uncorrectable first sector (UNC, error 0x40), reported as drives do: BSY
        // clear, ERR and DRQ set, the sector still waiting; DRQ stays until a reset.
        command.answer8(REG_ERROR, 0x40);
        let unc = STATUS_READY | STATUS_DRQ | STATUS_ERR;
        control.answer8_in_turn(REG_CONTROL, &[unc, STATUS_READY | STATUS_DRQ]);
        let failed = rexo_devio::host::completions(&mut disk, 0);
        let status = command::error_value(unc, 0x40);
        let error = DeviceError::Status {
            what: "the ATA command",
            status,
        };
        assert_eq!(failed, [(0, Err(error))]);
        assert!(reset.load(Ordering::Relaxed), "reset at the error");
        // The next read runs (each 16-bit read: the data port's answer, then the next
        // port's, the error register's, 0 again).
        command.answer8(REG_DATA, 0x5A);
        command.answer8(REG_ERROR, 0);
        assert_eq!(disk.submit_read(0, 8, 1), Ok(1));
        control.answer8_in_turn(REG_CONTROL, &[STATUS_READY | STATUS_DRQ, STATUS_READY]);
        let read = rexo_devio::host::completions(&mut disk, 0);
        assert_eq!(read, [(1, Ok([0x5A, 0].repeat(256)))]);
    }

    #[test]
    fn a_flush_may_run_past_the_read_and_write_timeout_and_times_out_at_its_own() {
        let platform = HostPlatform::leaked();
        let (mut disk, _command, control, _) = disk_on(platform, 0, 1 << 20, false, None);
        assert_eq!(disk.submit_flush(0), Ok(0));
        // The drive writes a large cache out: BSY for longer than a read may take.
        control.answer8(REG_CONTROL, STATUS_READY | STATUS_BSY);
        let reset = ready_after_srst(platform, control);
        platform.advance_clock(15_000 * NS_PER_MS);
        assert_eq!(rexo_devio::host::completions(&mut disk, 0), []);
        assert!(!reset.load(Ordering::Relaxed), "no SRST 15 s on");
        platform.advance_clock((WRITE_OUT_TIMEOUT_MS - 15_000) * NS_PER_MS);
        let timeout = DeviceError::Timeout {
            what: "the ATA command",
            ms: WRITE_OUT_TIMEOUT_MS,
        };
        assert_eq!(
            rexo_devio::host::completions(&mut disk, 0),
            [(0, Err(timeout))]
        );
        assert!(reset.load(Ordering::Relaxed), "the channel reset past 60 s");
    }

    #[test]
    fn a_drive_found_not_ready_with_no_command_in_flight_gets_a_reset_and_takes_the_command() {
        let platform = HostPlatform::leaked();
        let (mut disk, _command, control, _) = disk_on(platform, 0, 1 << 20, false, None);
        // DRQ held with no request in flight: no poll would end it.
        control.answer8(REG_CONTROL, STATUS_READY | STATUS_DRQ);
        let reset = ready_after_srst(platform, control);
        assert_eq!(disk.submit_read(0, 8, 1), Ok(0));
        assert!(reset.load(Ordering::Relaxed));
        control.answer8_in_turn(REG_CONTROL, &[STATUS_READY | STATUS_DRQ, STATUS_READY]);
        let read = rexo_devio::host::completions(&mut disk, 0);
        assert_eq!(read, [(0, Ok(vec![0; 512]))]);
    }

    #[test]
    fn each_pio_block_begins_with_a_status_read_that_ends_its_interrupt() {
        for direction in [Direction::Read, Direction::Write] {
            let (mut disk, command, control) = pio_disk(1 << 20);
            let submitted = match direction {
                Direction::Read => disk.submit_read(0, 8, 3),
                Direction::Write => disk.submit_write_checked(0, 8, 3, &mut |_| true),
            };
            assert_eq!(submitted, Ok(0));
            command.record_reads();
            // The drive asks for each of the three blocks in turn (the third one's DRQ
            // still read once more), then ends the command.
            control.answer8(REG_CONTROL, STATUS_READY | STATUS_DRQ);
            assert_eq!(disk.poll(0, &mut |_, _| {}), Ok(0), "{direction:?}");
            control.answer8(REG_CONTROL, STATUS_READY);
            assert_eq!(disk.poll(0, &mut |_, _| {}), Ok(1), "{direction:?}");
            // ATA's PIO protocols: the host reads the status register (INTRQ falls)
            // before each block, so each block's interrupt is an edge of its own; the
            // command's end is read from it too.
            let status = PortRead {
                offset: REG_STATUS,
                bytes: 1,
            };
            let data = PortRead {
                offset: REG_DATA,
                bytes: 2,
            };
            let mut block = vec![status];
            if direction == Direction::Read {
                block.extend([data; 256]);
            }
            let mut expected = block.repeat(3);
            expected.push(status);
            assert_eq!(command.take_reads(), expected, "{direction:?}");
        }
    }

    #[test]
    fn a_28_bit_read_writes_the_task_file_as_ata_says() {
        let (mut disk, command, _control) = pio_disk(1 << 28);
        assert_eq!(disk.submit_read(0, 0x0ABC_DEF1, 3), Ok(0));
        // ATA-6 READ SECTORS (0x20) in the 28-bit task file: features 0, count, LBA 7:0,
        // 15:8, 23:16, the device register (obsolete bits 7 and 5, LBA bit 6, drive 0 in
        // bit 4, LBA 27:24 in bits 3:0), the command last; the drive was selected first
        // (the device register alone).
        let expected = writes8(&[
            (REG_DEVICE, 0xA0),
            (REG_ERROR, 0),
            (REG_COUNT, 3),
            (REG_LBA_LOW, 0xF1),
            (REG_LBA_MID, 0xDE),
            (REG_LBA_HIGH, 0xBC),
            (REG_DEVICE, 0xEA),
            (REG_COMMAND, 0x20),
        ]);
        assert_eq!(command.take_writes(), expected);
    }

    #[test]
    fn a_request_past_the_identified_capacity_never_reaches_the_drive() {
        // What `Identity::parse` leaves of IDENTIFY words 100..=103 all ones.
        let (mut disk, command, _control, _) = disk_on_fake_ports(0, 1 << 48, true, None);
        assert_eq!(
            disk.submit_read(0, 1 << 48, 1),
            Err(DeviceError::OutOfRange {
                lba: 1 << 48,
                sectors: 1,
                capacity: 1 << 48
            })
        );
        assert_eq!(command.take_writes(), [], "nothing reached the drive");
    }

    #[test]
    fn a_48_bit_read_writes_the_high_order_bytes_first() {
        let (mut disk, command, _control, _) = disk_on_fake_ports(0, 1 << 40, true, None);
        assert_eq!(disk.submit_read(0, 0x0012_3456_789A, 3), Ok(0));
        // ATA-6 6.20 READ SECTORS EXT (0x24): the "previous" bytes first (features and
        // count 15:8, LBA 31:24, 39:32, 47:40), then the current ones (features and count
        // 7:0, LBA 7:0, 15:8, 23:16); the device register has the LBA bit and no address
        // bits; the command last.
        let task_file = [REG_ERROR, REG_COUNT, REG_LBA_LOW, REG_LBA_MID, REG_LBA_HIGH];
        let (previous, current) = ([0, 0, 0x34, 0x12, 0x00], [0, 3, 0x9A, 0x78, 0x56]);
        let mut expected = vec![(REG_DEVICE, 0xA0)];
        expected.extend(task_file.into_iter().zip(previous));
        expected.extend(task_file.into_iter().zip(current));
        expected.extend([(REG_DEVICE, 0xE0), (REG_COMMAND, command::READ_SECTORS_EXT)]);
        assert_eq!(command.take_writes(), writes8(&expected));
    }

    #[test]
    fn a_48_bit_count_puts_its_high_byte_in_the_previous_count() {
        let (disk, command, _control, _) = disk_on_fake_ports(0, 1 << 40, true, None);
        // The largest count a command here takes (65536, a count of 0, is never asked:
        // the limit is 65535, and this driver's buffer holds 128 sectors).
        assert_eq!(command::max_sectors(true, u32::MAX), 65535);
        let largest = Command::transfer(Direction::Write, Protocol::Dma, true, 0, u16::MAX);
        disk.channel.issue(0, &largest);
        let writes = command.take_writes();
        let count: Vec<_> = writes
            .iter()
            .filter(|write| write.offset == REG_COUNT)
            .cloned()
            .collect();
        assert_eq!(count, writes8(&[(REG_COUNT, 0xFF), (REG_COUNT, 0xFF)]));
        assert_eq!(
            writes.last(),
            writes8(&[(REG_COMMAND, command::WRITE_DMA_EXT)]).first()
        );
    }

    #[test]
    fn a_dma_write_programs_the_prd_table_and_the_channels_bus_master_registers() {
        let bus_master = FakePorts::new(16);
        let (mut disk, command, control, started) =
            disk_on_fake_ports(1, 1 << 40, true, Some(&bus_master));
        // Whatever the firmware left running was stopped: channel 1's registers, 8 up.
        let write = |offset, bytes, value| PortWrite {
            offset,
            bytes,
            value,
        };
        let stop = [write(8, 1, 0), write(10, 1, 0x06)];
        assert_eq!(started, stop);
        // The host's heap lies above 4 GiB, where `new` refuses DMA: the test lends the
        // disk a PRD table anyway, and checks the 32 bits the bus master would get.
        assert_eq!(disk.protocol, Protocol::Pio);
        lend_dma(&mut disk);
        let tag = disk
            .submit_write_checked(0, 0x0001_0000_0000, 3, &mut |data| {
                data.fill(0x5A);
                true
            })
            .unwrap();
        // One PRD entry (1536 bytes in one page cross no 64 KiB boundary), marked last.
        let prd = disk.prd.as_ref().unwrap();
        let buffer = disk.buffer.phys();
        assert_eq!(
            (prd.read32(0), prd.read16(4), prd.read16(6)),
            (buffer as u32, 3 * 512, PRD_END)
        );
        // The table's address, the direction (to the device) without Start, then Start
        // once the command is issued.
        assert_eq!(
            bus_master.take_writes(),
            [
                write(12, 4, prd.phys() as u32),
                write(8, 1, 0),
                write(8, 1, u32::from(BM_START)),
            ]
        );
        let opcode = command.take_writes().pop().unwrap();
        assert_eq!(opcode, writes8(&[(REG_COMMAND, command::WRITE_DMA_EXT)])[0]);
        // The drive is done and the bus master idle (Interrupt set): the write completes,
        // the bus master is stopped and its Error and Interrupt bits cleared.
        bus_master.answer8(10, BM_STATUS_INTERRUPT);
        let mut done = Vec::new();
        disk.poll(0, &mut |tag, result| {
            done.push((tag, result.map(<[u8]>::len)))
        })
        .unwrap();
        assert_eq!(done, [(tag, Ok(0))]);
        assert_eq!(bus_master.take_writes(), stop);
        // A write that completes needs no software reset and leaves the interrupt
        // setting alone: the device control register is never written.
        assert_eq!(control.take_writes(), []);
    }

    /// Lends `disk` a PRD table and makes it a DMA disk: the host's heap lies above
    /// 4 GiB, where `new` refuses DMA (the bus master could not reach it).
    fn lend_dma(disk: &mut IdeDisk) {
        disk.prd = Some(Dma::new(disk.platform, PRD_TABLE_BYTES).unwrap());
        disk.protocol = Protocol::Dma;
    }

    /// The slave beside `master` on its channel, with the same capacity, a DMA disk
    /// ([`lend_dma`]).
    fn dma_slave_of(master: &IdeDisk) -> IdeDisk {
        let mut slave = IdeDisk::new(
            Arc::clone(&master.channel),
            1,
            master.identity.clone(),
            master.platform,
        )
        .unwrap();
        lend_dma(&mut slave);
        slave
    }

    /// How a DMA request ends with a bus master that will not stop.
    #[derive(Clone, Copy, Debug)]
    enum Unstopped {
        /// The drive reports an error; the stop that follows leaves Active set.
        DriveError,
        /// The drive finishes, the bus master stays Active through the drain and the stop.
        ActiveAfterTheDrain,
        /// The disk is dropped with the request in flight; its stop leaves Active set.
        DroppedInFlight,
    }

    /// Starts a DMA read on `disk` and ends it as `how` says, with the bus master
    /// `bus_master` (of `disk`'s channel) reading Active from then on; `disk` is gone
    /// after [`Unstopped::DroppedInFlight`].
    fn end_with_the_bus_master_active(
        mut disk: IdeDisk,
        control: &FakePorts,
        bus_master: &FakePorts,
        how: Unstopped,
    ) -> Option<IdeDisk> {
        disk.submit_read(0, 8, 2).unwrap();
        // Fake ports do not read back what is written: Active reads as answered,
        // whatever the stop writes to Start.
        bus_master.answer8(BM_STATUS, BM_STATUS_ACTIVE);
        let drive_status = match how {
            Unstopped::DriveError => STATUS_READY | STATUS_ERR,
            Unstopped::ActiveAfterTheDrain => STATUS_READY,
            Unstopped::DroppedInFlight => {
                drop(disk);
                return None;
            }
        };
        control.answer8(REG_CONTROL, drive_status);
        let mut outcomes = Vec::new();
        let polled = disk.poll(0, &mut |_, result| outcomes.push(result.map(<[u8]>::len)));
        assert_eq!(polled, Ok(1), "{how:?}");
        assert!(
            matches!(outcomes[..], [Err(DeviceError::Status { .. })]),
            "{how:?}: the request ends with its own error: {outcomes:?}"
        );
        Some(disk)
    }

    /// Every call that would start or await a request on `disk`, refused with
    /// [`BUS_MASTER_NOT_STOPPED`] without touching a register of `ports` or calling the
    /// write's fill; disarming its wake goes through (it touches nothing either).
    fn assert_refused(disk: &mut IdeDisk, ports: [&FakePorts; 3], case: &dyn core::fmt::Debug) {
        for ports in ports {
            ports.take_writes();
        }
        let refused = BUS_MASTER_NOT_STOPPED;
        assert_eq!(disk.submit_read(0, 8, 2), Err(refused), "{case:?}");
        let mut filled = false;
        let write = disk.submit_write_checked(0, 8, 2, &mut |_| {
            filled = true;
            true
        });
        assert_eq!((write, filled), (Err(refused), false), "{case:?}");
        assert_eq!(disk.submit_flush(0), Err(refused), "{case:?}");
        let mut lent = 0;
        assert_eq!(
            disk.poll(0, &mut |_, _| lent += 1),
            Err(refused),
            "{case:?}"
        );
        assert_eq!(lent, 0, "{case:?}: nothing lent");
        assert_eq!(
            disk.wake_on_completion(0, Some(0)),
            Err(refused),
            "{case:?}"
        );
        assert_eq!(
            disk.wake_on_completion(0, None),
            Ok(()),
            "{case:?}: disarmed"
        );
        for ports in ports {
            assert_eq!(ports.take_writes(), [], "{case:?}: no register written");
        }
    }

    #[test]
    fn a_dma_read_reported_done_without_its_data_lends_zeros_not_the_buffers_earlier_bytes() {
        let platform = HostPlatform::leaked();
        let bus_master = FakePorts::new(16);
        let (mut disk, _command, control, _) =
            disk_on(platform, 0, 1 << 20, false, Some(&bus_master));
        lend_dma(&mut disk);
        let device = platform.device_view(&disk.buffer);
        // Each read ends with the drive idle and the bus master done (Interrupt, Active
        // clear, no error): all a DMA read's end shows.
        control.answer8(REG_CONTROL, STATUS_READY);
        bus_master.answer8(BM_STATUS, BM_STATUS_INTERRUPT);
        // One holder's read: the drive moves its two sectors.
        let first = disk.submit_read(0, 8, 2).unwrap();
        (0..1024).for_each(|at| device.write8(at, 0xA5));
        let read = rexo_devio::host::completions(&mut disk, 0);
        assert_eq!(read, [(first, Ok(vec![0xA5; 1024]))]);
        // The next read (the next holder's, of other sectors) moves nothing.
        let second = disk.submit_read(0, 64, 2).unwrap();
        let read = rexo_devio::host::completions(&mut disk, 0);
        assert_eq!(
            read,
            [(second, Ok(vec![0; 1024]))],
            "not the first read's bytes"
        );
    }

    #[test]
    fn a_dma_disk_whose_bus_master_stays_active_keeps_its_memory_and_one_that_stops_gives_it_back()
    {
        for (status, live_after) in [(BM_STATUS_ACTIVE, 2), (0, 0)] {
            let platform = HostPlatform::leaked();
            let bus_master = FakePorts::new(16);
            let (mut disk, ..) = disk_on(platform, 0, 1 << 20, false, Some(&bus_master));
            lend_dma(&mut disk);
            disk.submit_read(0, 8, 2).unwrap();
            // Fake ports do not read back what is written: Active reads as answered,
            // whatever the drop writes to Start.
            bus_master.answer8(BM_STATUS, status);
            assert_eq!(platform.live(), 2, "the data buffer and the PRD table");
            drop(disk);
            assert_eq!(platform.live(), live_after, "status {status:#x}");
        }
    }

    #[test]
    fn a_dma_disk_whose_bus_master_does_not_stop_refuses_every_later_call_and_keeps_its_memory() {
        for how in [Unstopped::DriveError, Unstopped::ActiveAfterTheDrain] {
            let platform = HostPlatform::leaked();
            let bus_master = FakePorts::new(16);
            let (mut disk, command, control, _) =
                disk_on(platform, 0, 1 << 20, false, Some(&bus_master));
            lend_dma(&mut disk);
            let mut disk =
                end_with_the_bus_master_active(disk, &control, &bus_master, how).unwrap();
            // The bus master may still write the buffer: nothing reuses it.
            assert_refused(&mut disk, [&command, &control, &bus_master], &how);
            // Reading inactive later proves nothing of a bus master that ignored a stop:
            // the memory stays kept, the bus master untouched.
            bus_master.answer8(BM_STATUS, 0);
            drop(disk);
            assert_eq!(platform.live(), 2, "{how:?}: the buffer and PRD table kept");
            assert_eq!(bus_master.take_writes(), [], "{how:?}");
        }
    }

    #[test]
    fn a_bus_master_that_does_not_stop_fails_the_other_drive_of_its_channel_and_not_the_other_channel()
     {
        for how in [
            Unstopped::DriveError,
            Unstopped::ActiveAfterTheDrain,
            Unstopped::DroppedInFlight,
        ] {
            let platform = HostPlatform::leaked();
            // One bus master for both channels, as a PIIX has (channel 1's registers 8 up).
            let bus_master = FakePorts::new(16);
            let (mut master, command, control, _) =
                disk_on(platform, 0, 1 << 20, false, Some(&bus_master));
            lend_dma(&mut master);
            let mut slave = dma_slave_of(&master);
            let (mut elsewhere, .., elsewhere_control, _) =
                disk_on(platform, 1, 1 << 20, false, Some(&bus_master));
            lend_dma(&mut elsewhere);
            let master = end_with_the_bus_master_active(master, &control, &bus_master, how);
            assert_refused(&mut slave, [&command, &control, &bus_master], &how);
            if let Some(mut master) = master {
                assert_refused(&mut master, [&command, &control, &bus_master], &how);
            }
            // The other channel's bus master stopped: its disk reads on.
            bus_master.answer8(BM_CHANNEL_STRIDE + BM_STATUS, BM_STATUS_INTERRUPT);
            elsewhere_control.answer8(REG_CONTROL, STATUS_READY);
            let tag = elsewhere.submit_read(0, 8, 1).unwrap();
            let read = rexo_devio::host::completions(&mut elsewhere, 0);
            assert_eq!(read, [(tag, Ok(vec![0; 512]))], "{how:?}");
            // Each disk of the failed channel keeps its memory (the master's, whose table
            // the bus master holds, and the slave's as a precaution), the other
            // channel's disk gives its back.
            let live = platform.live();
            drop(slave);
            drop(elsewhere);
            assert_eq!(
                platform.live(),
                live - 2,
                "{how:?}: only the other channel's"
            );
        }
    }

    #[test]
    fn a_claim_after_the_holder_failed_and_released_the_channel_is_refused_and_gives_it_back() {
        let bus_master = FakePorts::new(16);
        let (mut master, _command, control, _) =
            disk_on_fake_ports(0, 1 << 20, false, Some(&bus_master));
        lend_dma(&mut master);
        let slave = dma_slave_of(&master);
        // The slave's start found the channel usable while the master held it; then
        // the master's read ended with the bus master not stopping, which failed the
        // channel and released it. The slave's claim comes next (no fake port or clock
        // reading lies between `start`'s two checks, so the claim is called alone).
        slave.channel.usable().unwrap();
        end_with_the_bus_master_active(master, &control, &bus_master, Unstopped::DriveError);
        assert_eq!(slave.channel.claim(), Err(BUS_MASTER_NOT_STOPPED));
        assert!(!slave.channel.busy.load(Ordering::Acquire), "given back");
    }

    #[test]
    fn a_simplex_only_controller_is_found_by_bus_master_status_bit_7() {
        let bus_master = FakePorts::new(16);
        // The PIIX's: bits 6:5 (the drives' DMA-capable flags) may be set, bit 7 never.
        bus_master.answer8(BM_STATUS, 0x60);
        bus_master.answer8(BM_CHANNEL_STRIDE + BM_STATUS, 0x60);
        assert!(!simplex_only(&bus_master.window()));
        for channel in [0, BM_CHANNEL_STRIDE] {
            bus_master.answer8(channel + BM_STATUS, BM_STATUS_SIMPLEX);
            assert!(simplex_only(&bus_master.window()), "channel at {channel}");
            bus_master.answer8(channel + BM_STATUS, 0);
        }
    }

    #[test]
    fn on_a_simplex_only_controller_one_channels_disks_use_dma() {
        // `IdeDisk::new` asks `dma_allowed` once the bus master reaches the disk's
        // memory, which the host's heap, above 4 GiB, never is: the channels are asked
        // here as `new` asks them.
        let platform = HostPlatform::leaked();
        let bus_master = FakePorts::new(16);
        let channel = |number, simplex: &Option<Arc<SimplexDma>>| {
            Channel::new(
                number,
                (FakePorts::new(8).window(), FakePorts::new(1).window()),
                Some(bus_master.window()),
                simplex.clone(),
                platform.line_wake(14 + number, false),
                platform,
            )
        };
        let simplex = Some(Arc::new(SimplexDma::new()));
        let (primary, secondary) = (channel(0, &simplex), channel(1, &simplex));
        assert_eq!(primary.dma_allowed(), Ok(()), "the first to ask takes it");
        assert!(
            secondary.dma_allowed().is_err(),
            "the other channel uses PIO"
        );
        assert_eq!(primary.dma_allowed(), Ok(()), "the holder's other drive");
        assert!(secondary.dma_allowed().is_err());
        // The secondary asks first: it keeps DMA.
        let simplex = Some(Arc::new(SimplexDma::new()));
        let (primary, secondary) = (channel(0, &simplex), channel(1, &simplex));
        assert_eq!(secondary.dma_allowed(), Ok(()));
        assert!(primary.dma_allowed().is_err());
        // A controller that is not simplex-only: both channels run DMA.
        let (primary, secondary) = (channel(0, &None), channel(1, &None));
        assert_eq!(
            (primary.dma_allowed(), secondary.dma_allowed()),
            (Ok(()), Ok(()))
        );
    }

    #[test]
    fn prd_regions_split_at_64k_boundaries() {
        let regions: alloc::vec::Vec<_> = prd_regions(0x1_F000, 0x1_0000).collect();
        assert_eq!(regions, [(0x1_F000, 0x1000), (0x2_0000, 0xF000)]);
        let whole: alloc::vec::Vec<_> = prd_regions(0x10_0000, 0x1_0000).collect();
        assert_eq!(whole, [(0x10_0000, 0)], "a count of 0 is 64 KiB");
        let small: alloc::vec::Vec<_> = prd_regions(0x3000, 512).collect();
        assert_eq!(small, [(0x3000, 512)]);
        let last: alloc::vec::Vec<_> = prd_regions(0xFFFF_0000, 0x1_0000).collect();
        assert_eq!(last, [(0xFFFF_0000, 0)], "up to the last byte below 4 GiB");
    }

    /// Runs [`drain_dma`] on a bus master whose status reads are `reads` in turn (the last
    /// one repeating) and a clock that moves 1 ms per look: the status it ends with, the
    /// reads it made and the clock's last value in ms.
    fn drain(reads: &[u8]) -> (u8, usize, u64) {
        let mut taken = 0;
        let mut ms = 0;
        let status = drain_dma(
            || {
                taken += 1;
                reads[(taken - 1).min(reads.len() - 1)]
            },
            || {
                ms += 1;
                ms * NS_PER_MS
            },
        );
        (status, taken, ms)
    }

    #[test]
    fn the_dma_wait_ends_when_the_bus_master_is_no_longer_active_or_the_time_is_up() {
        let active = BM_STATUS_ACTIVE | BM_STATUS_INTERRUPT;
        // The common case: one read, no clock.
        assert_eq!(drain(&[BM_STATUS_INTERRUPT]), (BM_STATUS_INTERRUPT, 1, 0));
        // Active clears at the fourth read.
        let (status, reads, _) = drain(&[active, active, active, BM_STATUS_INTERRUPT]);
        assert_eq!((status, reads), (BM_STATUS_INTERRUPT, 4));
        assert_eq!(dma_outcome(status), Ok(()));
        // Never clears: the wait ends once more than 10 ms passed, with a last look.
        let (status, reads, ms) = drain(&[active]);
        assert_eq!(status, active);
        assert_eq!(
            ms,
            DMA_DRAIN_TIMEOUT_MS + 2,
            "the start and 11 looks at the clock"
        );
        assert_eq!(reads, 1 + (DMA_DRAIN_TIMEOUT_MS + 1) as usize);
        assert!(
            matches!(dma_outcome(status), Err(DeviceError::Status { what, .. }) if what.contains("Active"))
        );
        // An error ends the wait at once, Active or not.
        let failed = BM_STATUS_ERROR | active;
        assert_eq!(drain(&[active, failed]), (failed, 2, 2));
        assert!(dma_outcome(failed).is_err());
    }

    #[test]
    fn the_bus_master_status_gives_the_dma_outcome() {
        assert_eq!(dma_outcome(BM_STATUS_INTERRUPT), Ok(()));
        assert_eq!(dma_outcome(0), Ok(()));
        let short = dma_outcome(BM_STATUS_ACTIVE | BM_STATUS_INTERRUPT);
        assert!(
            matches!(short, Err(DeviceError::Status { what, status: 0x05 }) if what.contains("Active")),
            "{short:?}"
        );
        let failed = dma_outcome(BM_STATUS_ERROR | BM_STATUS_ACTIVE | BM_STATUS_INTERRUPT);
        assert_eq!(
            failed,
            Err(DeviceError::Status {
                what: "the bus-master DMA transfer",
                status: 0x07
            })
        );
    }

    #[test]
    fn dma_needs_the_buffer_and_the_prd_table_below_4_gib() {
        assert_eq!(dma_reach(0x10_0000, 0x1_0000, 0x20_0000, 4096), Ok(()));
        assert_eq!(
            dma_reach(0xFFFF_0000, 0x1_0000, 0xFFFF_E000, 4096),
            Ok(()),
            "up to the last byte below 4 GiB"
        );
        assert!(dma_reach(0x1_0000_0000, 0x1_0000, 0x20_0000, 4096).is_err());
        assert!(dma_reach(0xFFFF_8000, 0x1_0000, 0x20_0000, 4096).is_err());
        assert!(
            dma_reach(0x10_0000, 0x1_0000, 0x1_0000_0000, 4096).is_err(),
            "a PRD table above 4 GiB would be read from the wrong page"
        );
        assert!(dma_reach(0x10_0000, 0x1_0000, 0xFFFF_F800, 4096).is_err());
        assert!(dma_reach(0x10_0000, 0x1_0000, u64::MAX - 0xFFF, 4096).is_err());
    }

    /// The opcodes `command` (a command block) was given since its writes were last
    /// taken.
    fn opcodes(command: &FakePorts) -> Vec<u8> {
        command
            .take_writes()
            .iter()
            .filter(|write| write.offset == REG_COMMAND)
            .map(|write| write.value as u8)
            .collect()
    }

    #[test]
    fn a_shutdown_drains_the_command_in_flight_then_flushes_and_stops_the_drive() {
        let (mut disk, command, _) = pio_disk(1 << 20);
        // The holder's own flush, started and never polled.
        assert_eq!(disk.submit_flush(0), Ok(0));
        assert_eq!(disk.shut_down(Leaving::PowerOff), Ok(()));
        assert_eq!(
            opcodes(&command),
            [
                command::FLUSH_CACHE,
                command::FLUSH_CACHE,
                command::STANDBY_IMMEDIATE
            ]
        );
        assert!(
            !disk.channel.busy.load(Ordering::Relaxed),
            "the channel free"
        );
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }

    /// At a reboot the drive writes its cache out and keeps spinning, as Linux leaves
    /// an ATA disk at a reboot.
    #[test]
    fn a_reboot_drains_the_command_in_flight_then_flushes_the_drive_without_stopping_it() {
        let (mut disk, command, _) = pio_disk(1 << 20);
        assert_eq!(disk.submit_flush(0), Ok(0));
        assert_eq!(disk.shut_down(Leaving::Reboot), Ok(()));
        assert_eq!(
            opcodes(&command),
            [command::FLUSH_CACHE, command::FLUSH_CACHE]
        );
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }

    /// The other drive of the channel holds it with a command nobody polls (its holder
    /// could not be reached): the drive waits for the channel once, as long as the
    /// longest command may run, and is not told; its standby does not wait as long again.
    #[test]
    fn a_drive_whose_channel_stays_held_waits_for_it_once_and_is_not_told() {
        let platform = HostPlatform::leaked();
        let (mut master, command, _, _) = disk_on(platform, 0, 1 << 20, false, None);
        let mut slave = IdeDisk::new(
            Arc::clone(&master.channel),
            1,
            master.identity.clone(),
            platform,
        )
        .unwrap();
        assert_eq!(slave.submit_flush(0), Ok(0));
        command.take_writes();
        platform.on_clock_reading(move || platform.advance_clock(100 * NS_PER_MS));
        let before = platform.now_ns();
        assert_eq!(
            master.shut_down(Leaving::PowerOff),
            Err(DeviceError::Timeout {
                what: "the IDE channel, which the other drive's command holds",
                ms: CHANNEL_WAIT_MS,
            })
        );
        let waited_ms = (platform.now_ns() - before) / NS_PER_MS;
        assert!(
            (CHANNEL_WAIT_MS..CHANNEL_WAIT_MS + 1_000).contains(&waited_ms),
            "waited {waited_ms} ms"
        );
        assert_eq!(opcodes(&command), [], "nothing issued for the drive");
        rexo_api::testing::assert_refuses_everything(&mut master);
        // The other drive's command is its holder's still.
        assert_eq!(slave.poll(0, &mut |_, _| {}), Ok(1));
    }

    #[test]
    fn a_failed_flush_still_stops_the_drive() {
        let (mut disk, command, control) = pio_disk(1 << 20);
        // The drive refuses every command (ERR, ABRT in the error register).
        control.answer8(REG_CONTROL, STATUS_READY | STATUS_ERR);
        command.answer8(REG_ERROR, 0x04);
        let refused = DeviceError::Status {
            what: "the ATA command",
            status: command::error_value(STATUS_READY | STATUS_ERR, 0x04),
        };
        assert_eq!(disk.shut_down(Leaving::PowerOff), Err(refused));
        assert_eq!(
            opcodes(&command),
            [command::FLUSH_CACHE, command::STANDBY_IMMEDIATE]
        );
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }
}
