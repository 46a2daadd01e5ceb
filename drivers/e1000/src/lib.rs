//! Intel 8254x (e1000) and 8257x (e1000e, the 82574) network controllers.
//!
//! Both families are driven the same way through their BAR0 registers: a global reset,
//! interrupts masked (the driver polls), the PHY powered up, the MAC address from
//! RAL0/RAH0 (or the EEPROM through EERD), link up, then the queue pairs: a receive
//! ring of 2048-byte buffers whose frames are lent to the app in place and given back
//! to the device in batches (one RDT write per 32), and a transmit ring whose buffers
//! the app fills in place, reclaimed by the descriptors' DD bits (never by reading
//! TDH). Frames go out as extended data descriptors, with a checksum context
//! descriptor before one whose TCP/UDP checksum the device is to compute (checksum
//! offload) when the layout differs from the last. The 8254x has one queue pair with
//! legacy receive descriptors; the 82574 has two, with RSS spreading received IP
//! traffic over them (extended receive descriptors; frames RSS does not hash, such as
//! non-IP ones, arrive on queue 0).
//!
//! A transmit unit that stops (descriptors with the device, none finished for 2 s while
//! the link is up and not paused: Linux's "Detected Tx Unit Hang") is found when a send
//! finds the ring full or `transmit_pending` finds frames pending, and the device is
//! reset (global reset, the same registers, MAC and RSS set again, every receive buffer
//! given back to it); the frames in flight on every pair are lost. A pair's own handle
//! ([`NetDevice::split_queues`]) cannot reset the device: it answers [`PAIR_BROKEN`]
//! until the next receive, send or `transmit_pending` through the whole device does.
//!
//! A transmit unit without a link stops its DMA and never sends what it holds: a look
//! that finds it holding frames for 2 s with the link down has the device reset the same
//! way to drop them (counted as a link loss, not a hang), and until a send finds the
//! link up again every send drops its frame (counted) instead of queueing it, so the
//! ring never stalls and the device is not reset again while the cable is out. A
//! receive that finds nothing looks at the link every 100 ms, so a loss while nothing
//! is queued is counted and logged too: every loss after a look found the link up,
//! once, whichever pair or path finds it.
//!
//! [`PAIR_BROKEN`]: rexo_api::device::PAIR_BROKEN
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod regs;
mod ring;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rexo_api::{DeviceError, MAX_SEGMENTS, NetDevice, NetInfo, RSS_EXAMPLE_KEY, ReceiveSteering};
use rexo_devio::pairs::{PairHealth, PairedDevice};
use rexo_devio::{
    DeviceFunction, Dma, Found, LineWake, Mmio, MsixTable, NS_PER_MS, Platform, QueuePair, barrier,
};
use rexo_pci::{Address, Function};

use regs::*;
use ring::{
    BUFFER_BYTES, DESCRIPTOR_BYTES, DESCRIPTOR_FIELDS, ETHERNET_MAX_FRAME, Model, RxFields,
    RxFormat, RxRing, RxVerdict, TxRing,
};

/// Intel's PCI vendor ID.
const VENDOR_INTEL: u16 = 0x8086;
/// Receive descriptors (256 × 16 bytes: one page; a multiple of 8 as RDLEN needs).
const RX_DESCRIPTORS: usize = 256;
/// Transmit descriptors (one page, like the receive ring).
const TX_DESCRIPTORS: usize = 256;
/// Receive buffers given back per RDT write: fewer register writes, and the device
/// still holds at least `RX_DESCRIPTORS - 1 - RX_POST_BATCH` empty buffers.
const RX_POST_BATCH: usize = 32;
/// How long a reset may take (the SDM gives no bound; Linux allows tens of ms).
const RESET_TIMEOUT_MS: u64 = 100;
/// How long the 82574 may take to stop DMA before a reset, and to reload its NVM after.
const PCIE_SETTLE_MS: u64 = 10;
/// How long one PHY register access may take (MDIO runs at about 2.5 MHz: 64 bits).
const PHY_TIMEOUT_MS: u64 = 10;
/// How long one EEPROM word read may take.
const EEPROM_TIMEOUT_MS: u64 = 10;
/// How long the transmit unit may hold descriptors without finishing any, with the link
/// up and not paused, before it counts as hung and the device is reset. A full ring of
/// 255 maximum-size frames goes out in 0.31 s even at 10 Mb/s; Linux's e1000/e1000e
/// report a hang after 1 s and reset after the stack's 5 s transmit watchdog. 2 s is
/// six times the slowest honest drain and frees a stuck interface well before TCP's
/// retransmissions give up.
const TX_HANG_TIMEOUT_MS: u64 = 2_000;
/// How often a receive that finds nothing looks at the link (STATUS.LU), so that a link
/// lost while nothing is queued is counted: ten register reads a second on an idle
/// interface, none while frames come. A loss shorter than this may go unseen (the
/// driver polls; the link-change interrupt cause shares ICR, which the wake-ups clear).
const LINK_LOOK_MS: u64 = 100;
/// Every call's answer once the device did not come back from a reset.
const GIVEN_UP: DeviceError =
    DeviceError::Failed("e1000: the device did not come back from a reset (given up)");

/// Whether this driver takes `function`: an Intel controller in the model table.
pub fn matches(function: &Function) -> bool {
    function.header.vendor() == VENDOR_INTEL && ring::model(function.header.device_id()).is_some()
}

/// Resets and starts the controller on `function`: one network interface (one queue
/// pair on the 8254x, two on the 82574).
pub fn probe(mut function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    let model = ring::model(function.function().header.device_id())
        .ok_or(DeviceError::Unsupported("a supported 8254x/82574 model"))?;
    function.enable()?;
    let regs = function.mmio(0)?;
    if regs.len() < REGISTER_SPAN {
        return Err(DeviceError::BadBar {
            index: 0,
            why: "shorter than the register set",
        });
    }
    let platform = function.platform();
    let address = function.address();
    reset(platform, address, &regs, &model)?;
    settle_after_reset(platform, &regs, &model)?;
    power_up_phy(platform, &regs)?;
    let mac = mac_address(platform, &regs, &model)?;
    // MSI-X (the 82574 has it): every entry masked until a core asks to be woken by a
    // queue. The 8254x has neither MSI-X nor MSI: its INTx line wakes the core.
    let wakes = if model.pcie {
        function.msix().map(Wakes::MsiX)
    } else {
        function
            .intx()
            .map(|line| Wakes::Line { line, armed: false })
    };
    let nic = E1000::start(
        platform,
        address,
        regs,
        model,
        mac,
        wakes.unwrap_or_else(Wakes::None),
    )?;
    let m = mac;
    log::info!(
        "e1000: {} at {}: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {} queue pair(s) ({})",
        model.name,
        address,
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        nic.queues.len(),
        match (model.rx_format(), &nic.wakes) {
            (RxFormat::Extended, Wakes::MsiX(_)) => {
                alloc::string::String::from("RSS over IP addresses and TCP ports, MSI-X wake-ups")
            }
            (RxFormat::Extended, _) => {
                alloc::string::String::from("RSS over IP addresses and TCP ports, no MSI-X")
            }
            (RxFormat::Legacy, Wakes::Line { line, .. }) => {
                alloc::format!("no RSS, wake-ups through INTx on IRQ {}", line.irq())
            }
            (RxFormat::Legacy, _) => alloc::string::String::from("no RSS, no wake-ups"),
        }
    );
    Ok(vec![Found::Net(Box::new(nic))])
}

/// Global reset (the SDM's and the 82574 datasheet's "Software Reset"): interrupts
/// masked, on the 82574 bus mastering stopped first, then CTRL.RST and the wait for it
/// to clear: the device's DMA stopped and its registers at their defaults.
fn reset(
    platform: &dyn Platform,
    address: Address,
    regs: &Mmio,
    model: &Model,
) -> Result<(), DeviceError> {
    regs.write32(IMC, ALL_INTERRUPTS);
    if model.pcie {
        regs.write32(CTRL, regs.read32(CTRL) | CTRL_GIO_MASTER_DISABLE);
        // The 82574 datasheet asks to let outstanding DMA finish first; if it never
        // settles, the reset aborts it anyway, so a timeout is only worth a warning.
        let settled =
            rexo_devio::wait_until(platform, "PCIe master disable", PCIE_SETTLE_MS, || {
                regs.read32(STATUS) & STATUS_GIO_MASTER_ENABLE == 0
            });
        if let Err(error) = settled {
            log::warn!("{address} e1000: {error}; resetting anyway");
        }
    }
    regs.write32(CTRL, regs.read32(CTRL) | CTRL_RST);
    // The SDM asks for at least 1 us after setting RST before the next register access.
    rexo_devio::pause(platform, 2_000);
    rexo_devio::wait_until(platform, "device reset", RESET_TIMEOUT_MS, || {
        regs.read32(CTRL) & CTRL_RST == 0
    })
}

/// After [`reset`], before the device is set up: the wait for the 82574's NVM reload,
/// then interrupts masked again and causes read away, so nothing stale is left pending.
fn settle_after_reset(
    platform: &dyn Platform,
    regs: &Mmio,
    model: &Model,
) -> Result<(), DeviceError> {
    if model.pcie {
        rexo_devio::wait_until(
            platform,
            "NVM auto-read after reset",
            PCIE_SETTLE_MS,
            || regs.read32(EECD) & EECD_AUTO_RD != 0,
        )?;
    }
    regs.write32(IMC, ALL_INTERRUPTS);
    regs.read32(ICR);
    Ok(())
}

/// Runs the MDIC access `command` on the internal PHY; the register's value.
fn phy_access(platform: &dyn Platform, regs: &Mmio, command: u32) -> Result<u16, DeviceError> {
    regs.write32(MDIC, command);
    let mut outcome = None;
    rexo_devio::wait_until(platform, "PHY register access", PHY_TIMEOUT_MS, || {
        outcome = ring::mdic_outcome(regs.read32(MDIC));
        outcome.is_some()
    })?;
    outcome.unwrap_or(Err(DeviceError::Timeout {
        what: "PHY register access",
        ms: PHY_TIMEOUT_MS,
    }))
}

/// Powers the PHY up if firmware or an earlier driver powered it down (the MAC reset
/// leaves the PHY as it was), restarting auto-negotiation so the link comes up.
fn power_up_phy(platform: &dyn Platform, regs: &Mmio) -> Result<(), DeviceError> {
    let control = phy_access(platform, regs, ring::mdic_read(PHY_CONTROL))?;
    if let Some(up) = ring::phy_power_up(control) {
        phy_access(platform, regs, ring::mdic_write(PHY_CONTROL, up))?;
    }
    Ok(())
}

/// The MAC address: RAL0/RAH0 as the reset loaded them from the EEPROM, else the
/// EEPROM's words 0..3 read through EERD.
fn mac_address(
    platform: &dyn Platform,
    regs: &Mmio,
    model: &Model,
) -> Result<[u8; 6], DeviceError> {
    if let Some(mac) = ring::mac_from_receive_address(regs.read32(RAL0), regs.read32(RAH0)) {
        return Ok(mac);
    }
    let layout = model.eerd.ok_or(DeviceError::Unsupported(
        "a MAC address in RAL0 (no EERD to read the EEPROM)",
    ))?;
    let mut words = [0u16; 3];
    for (index, word) in (0u8..).zip(words.iter_mut()) {
        regs.write32(EERD, layout.request(index));
        let mut read = None;
        rexo_devio::wait_until(platform, "EEPROM read", EEPROM_TIMEOUT_MS, || {
            read = layout.word(regs.read32(EERD));
            read.is_some()
        })?;
        *word = read.unwrap_or_default();
    }
    ring::mac_from_eeprom(words).ok_or(DeviceError::Status {
        what: "EEPROM MAC address",
        status: u32::from(words[0]),
    })
}

/// One receive/transmit queue pair: its rings, buffers and software state.
struct Queue {
    /// Receive descriptors.
    rx_descriptors: Dma,
    /// Receive buffers, `BUFFER_BYTES` per descriptor, in ring order.
    rx_buffers: Dma,
    /// Which receive descriptor comes next and what to give back.
    rx: RxRing,
    /// Write-backs (DD) found on the receive descriptor at RDT, which the device was not
    /// given, dropped: over every reset of the device.
    rx_stray_write_backs: u64,
    /// An earlier receive buffer held the start of a frame longer than one buffer.
    rx_spanning: bool,
    /// Transmit descriptors.
    tx_descriptors: Dma,
    /// Transmit buffers, `BUFFER_BYTES` per descriptor, in ring order.
    tx_buffers: Dma,
    /// Which transmit descriptors the device holds.
    tx: TxRing,
    /// This queue's register offset above queue 0's (`QUEUE_STRIDE` per queue).
    registers: usize,
    /// BAR0, a copy of the device's window: on the frame path the queue writes only its
    /// own tail registers (RDT and TDT at `registers`), so queues on different cores
    /// never write the same register.
    regs: Mmio,
    /// How the device writes receive descriptors back.
    rx_format: RxFormat,
    /// The checksum context (transport header start, checksum field) the device holds,
    /// set by the last context descriptor queued.
    tx_context: Option<(usize, usize)>,
    /// The clock, for the transmit unit's hang check.
    platform: &'static dyn Platform,
    /// Where the device runs, is reset or was given up, or whether its transmit unit hung
    /// on this pair (broken): what the pair's own handle, whose calls bypass the device,
    /// checks.
    health: PairHealth,
    /// What this pair found that the reset it asked for is to mend, until that reset.
    fault: Option<TransmitFault>,
    /// The link as the pairs found it (shared with the device and every pair).
    link: Arc<Link>,
}

/// What a pair found on its transmit ring that the device's reset is to mend.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TransmitFault {
    /// The transmit unit held frames and finished none, the link up and not paused.
    Hang,
    /// The link was down while the transmit unit held frames: without a link it stops
    /// its DMA and never sends them (Intel's Linux drivers reset the controller to flush
    /// them); the reset drops them.
    LinkLost,
}

/// The link as the pairs found it, shared by the device and every pair.
#[derive(Default)]
struct Link {
    /// Set by the first look that found the link down with frames held, cleared by the
    /// first send that finds it up again (STATUS.LU): until then every send reads
    /// STATUS and drops its frame rather than queue it where it would stall.
    down: AtomicBool,
    /// Whether the last look at STATUS.LU found the link up (not before a look did).
    up: AtomicBool,
    /// When a receive that finds nothing may look at STATUS.LU again (0: at once).
    next_look_ns: AtomicU64,
    /// Times a look found the link down after one found it up, whether frames were
    /// held or not ([`Link::saw`]).
    losses: AtomicU64,
    /// Frames dropped for want of a link: those held when it was found down (lost to
    /// the reset that flushes them) and those sent while it was down.
    dropped: AtomicU64,
}

impl Link {
    /// Takes what a look at STATUS.LU found, `up`: the link found down after a look
    /// found it up is a loss, counted and logged (with how it was found, `how`, and
    /// `queue`); found up again after a loss, that is logged too. Whichever pair or
    /// path looks first counts a loss, once.
    fn saw(&self, up: bool, queue: usize, how: &str) {
        if self.up.swap(up, Ordering::AcqRel) == up {
            return;
        }
        if up {
            if self.losses.load(Ordering::Relaxed) > 0 {
                log::info!("e1000: queue {queue}: link up again ({how})");
            }
            return;
        }
        let losses = self.losses.fetch_add(1, Ordering::Relaxed) + 1;
        log::warn!("e1000: queue {queue}: link down ({how}; lost {losses} time(s) since start)");
    }

    /// Has a receive on `queue` that found nothing look at STATUS.LU through `regs`
    /// at `now_ns`, if [`LINK_LOOK_MS`] passed since such a look (one pair looks then):
    /// a link lost while nothing is queued, which no send notices, is counted too.
    /// A receive that found frames needs no look: they came over the link.
    fn look(&self, regs: &Mmio, now_ns: u64, queue: usize) {
        let due_ns = self.next_look_ns.load(Ordering::Relaxed);
        let next_ns = now_ns.saturating_add(LINK_LOOK_MS * NS_PER_MS);
        if now_ns < due_ns
            || (self.next_look_ns)
                .compare_exchange(due_ns, next_ns, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let up = regs.read32(STATUS) & STATUS_LU != 0;
        self.saw(up, queue, "found by a receive");
    }
}

impl AsMut<PairHealth> for Queue {
    fn as_mut(&mut self) -> &mut PairHealth {
        &mut self.health
    }
}

impl Queue {
    /// Allocates queue `index`'s rings and buffers and points every descriptor at
    /// its buffer.
    fn new(
        platform: &'static dyn Platform,
        index: usize,
        regs: Mmio,
        rx_format: RxFormat,
        reset_wanted: Arc<AtomicBool>,
        link: Arc<Link>,
    ) -> Result<Self, DeviceError> {
        let mut queue = Self {
            rx_descriptors: Dma::new(platform, RX_DESCRIPTORS * DESCRIPTOR_BYTES)?,
            rx_buffers: Dma::new(platform, RX_DESCRIPTORS * BUFFER_BYTES)?,
            rx: RxRing::new(RX_DESCRIPTORS),
            rx_stray_write_backs: 0,
            rx_spanning: false,
            tx_descriptors: Dma::new(platform, TX_DESCRIPTORS * DESCRIPTOR_BYTES)?,
            tx_buffers: Dma::new(platform, TX_DESCRIPTORS * BUFFER_BYTES)?,
            tx: TxRing::new(TX_DESCRIPTORS),
            registers: index * QUEUE_STRIDE,
            regs,
            rx_format,
            tx_context: None,
            platform,
            health: PairHealth::new(reset_wanted, GIVEN_UP),
            fault: None,
            link,
        };
        queue.renew();
        Ok(queue)
    }

    /// This queue's index, as the log names it.
    fn index(&self) -> usize {
        self.registers / QUEUE_STRIDE
    }

    /// Puts the rings in their starting state, for a new pair or a device that was
    /// reset: every descriptor pointing at its buffer with its status cleared, nothing
    /// received or queued, no checksum context. Returns the frames that were in flight
    /// on transmit: lost, the device having forgotten them.
    fn renew(&mut self) -> usize {
        let lost = self.tx.frames_in_flight();
        self.rx = RxRing::new(RX_DESCRIPTORS);
        self.rx_spanning = false;
        self.tx = TxRing::new(TX_DESCRIPTORS);
        self.tx_context = None;
        for slot in 0..RX_DESCRIPTORS {
            let buffer = self.rx_buffer(slot);
            self.rx_descriptors.write64(slot * DESCRIPTOR_BYTES, buffer);
            self.rx_descriptors
                .write64(slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS, 0);
        }
        for slot in 0..TX_DESCRIPTORS {
            let buffer = self.tx_buffer(slot);
            self.tx_descriptors.write64(slot * DESCRIPTOR_BYTES, buffer);
            self.tx_descriptors
                .write64(slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS, 0);
        }
        lost
    }

    /// After a reclaim that left descriptors with the device: [`PAIR_BROKEN`] once the
    /// transmit unit has finished none for [`TX_HANG_TIMEOUT_MS`], the device then asked
    /// for a reset. STATUS is read only then: with the link down the frames held will
    /// never go, and the reset drops them ([`Queue::mark_link_lost`]); with the
    /// transmitter paused by the link partner (XOFF) the device is held back, not stuck,
    /// and the count starts again; else the transmit unit hung ([`Queue::mark_hung`]).
    ///
    /// [`PAIR_BROKEN`]: rexo_api::device::PAIR_BROKEN
    fn check_transmit_stall(&mut self) -> Result<(), DeviceError> {
        let now = self.platform.now_ns();
        if self.tx.stalled_for(now) <= TX_HANG_TIMEOUT_MS * NS_PER_MS {
            return Ok(());
        }
        let status = self.regs.read32(STATUS);
        if status & STATUS_LU == 0 {
            self.link.saw(false, self.index(), "found with frames held");
            return Err(self.mark_link_lost());
        }
        if status & STATUS_TXOFF != 0 {
            self.tx.restart_stall_count(now);
            return Ok(());
        }
        Err(self.mark_hung())
    }

    /// The link is down with frames held: a transmit unit without a link stops its DMA
    /// and never sends them (Intel's Linux drivers reset the controller to flush them).
    /// Marks the link down and the pair broken for a reset that drops them
    /// ([`TransmitFault::LinkLost`]); the first pair to find it so says so in the log
    /// (the loss is counted by [`Link::saw`]). [`rexo_api::device::PAIR_BROKEN`].
    #[cold]
    #[inline(never)]
    fn mark_link_lost(&mut self) -> DeviceError {
        if !self.link.down.swap(true, Ordering::AcqRel) {
            log::warn!(
                "e1000: queue {}: link down with {} frame(s) held for over \
                 {TX_HANG_TIMEOUT_MS} ms (without a link the transmit unit never sends \
                 them): the whole device is reset to drop them (at once when this call came \
                 through the device, else by its next receive, send or transmit_pending \
                 through it), and frames sent until the link is back are dropped and \
                 counted",
                self.index(),
                self.tx.frames_in_flight(),
            );
        }
        self.fault = Some(TransmitFault::LinkLost);
        self.health.mark_broken()
    }

    /// Whether sends are to drop their frames for want of a link: while a look found it
    /// down with frames held ([`Link::down`]) each send reads STATUS, and the first that
    /// finds the link up again ends that and says so in the log.
    fn link_down(&self) -> bool {
        if !self.link.down.load(Ordering::Acquire) {
            return false;
        }
        let up = self.regs.read32(STATUS) & STATUS_LU != 0;
        self.link.saw(up, self.index(), "found by a send");
        if !up {
            return true;
        }
        if self.link.down.swap(false, Ordering::AcqRel) {
            log::info!(
                "e1000: sends go out again; {} frame(s) dropped for want of a link since start",
                self.link.dropped.load(Ordering::Relaxed)
            );
        }
        false
    }

    /// Marks the pair hung ([`PairHealth::mark_broken`]), says so in the log with the
    /// device's transmit head and tail, and asks the device for a reset:
    /// [`rexo_api::device::PAIR_BROKEN`].
    #[cold]
    #[inline(never)]
    fn mark_hung(&mut self) -> DeviceError {
        self.fault = Some(TransmitFault::Hang);
        log::error!(
            "e1000: queue {}: transmit unit hang: {} frame(s) pending, none finished for over \
             {TX_HANG_TIMEOUT_MS} ms with the link up and not paused (TDH {}, TDT {}); the \
             whole device is reset (at once when this call came through the device, else \
             by its next receive, send or transmit_pending through it); the pair fails until \
             then",
            self.index(),
            self.tx.frames_in_flight(),
            self.regs.read32(TDH + self.registers),
            self.regs.read32(TDT + self.registers),
        );
        self.health.mark_broken()
    }

    /// Every block of DMA memory the device is given for this pair: its rings and
    /// buffers.
    fn memory_mut(&mut self) -> [&mut Dma; 4] {
        [
            &mut self.rx_descriptors,
            &mut self.rx_buffers,
            &mut self.tx_descriptors,
            &mut self.tx_buffers,
        ]
    }

    /// The device address of receive buffer `slot`.
    fn rx_buffer(&self, slot: usize) -> u64 {
        self.rx_buffers.phys() + (slot * BUFFER_BYTES) as u64
    }

    /// The device address of transmit buffer `slot`.
    fn tx_buffer(&self, slot: usize) -> u64 {
        self.tx_buffers.phys() + (slot * BUFFER_BYTES) as u64
    }

    /// Programs both rings' base, length, head and tail (SDM, "Receive
    /// Initialization" and "Transmit Initialization"): all receive buffers but one
    /// are given to the device, no frame is queued.
    fn program(&self) {
        let regs = &self.regs;
        let at = |register: usize| register + self.registers;
        let rx_base = self.rx_descriptors.phys();
        regs.write32(at(RDBAL), rx_base as u32);
        regs.write32(at(RDBAH), (rx_base >> 32) as u32);
        regs.write32(at(RDLEN), (RX_DESCRIPTORS * DESCRIPTOR_BYTES) as u32);
        regs.write32(at(RDH), 0);
        regs.write32(at(RDT), self.rx.tail() as u32);
        let tx_base = self.tx_descriptors.phys();
        regs.write32(at(TDBAL), tx_base as u32);
        regs.write32(at(TDBAH), (tx_base >> 32) as u32);
        regs.write32(at(TDLEN), (TX_DESCRIPTORS * DESCRIPTOR_BYTES) as u32);
        regs.write32(at(TDH), 0);
        regs.write32(at(TDT), 0);
    }

    /// Hands up to `budget` received frames to `deliver`, gives their buffers back (RDT
    /// in batches); how many frames were delivered and how many descriptors were taken
    /// from the ring (frames dropped, bad or too long, take one or more and deliver
    /// nothing).
    fn receive_counted(
        &mut self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<Received, DeviceError> {
        let mut received = Received {
            delivered: 0,
            descriptors: 0,
        };
        if !self.health.usable()? {
            return Ok(received);
        }
        let format = self.rx_format;
        for _ in 0..budget {
            let slot = self.rx.next();
            if !self.written_back(slot) {
                break;
            }
            if !self.rx.next_given() {
                self.drop_stray_write_back(slot);
                break;
            }
            let fields_at = slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS;
            // Read the length only after seeing DD: the device may write the
            // descriptor's bytes in any order.
            barrier();
            let fields = RxFields::decode(format, self.rx_descriptors.read64(fields_at));
            if let RxVerdict::Deliver(len) = ring::rx_verdict(fields, &mut self.rx_spanning) {
                deliver(self.rx_buffers.bytes(slot * BUFFER_BYTES, len));
                received.delivered += 1;
            }
            self.clean_rx_descriptor(slot);
            self.rx.advance();
            received.descriptors += 1;
        }
        if let Some(tail) = self.rx.tail_to_post(RX_POST_BATCH) {
            barrier();
            self.regs.write32(RDT + self.registers, tail as u32);
        }
        if received.descriptors == 0 {
            self.link
                .look(&self.regs, self.platform.now_ns(), self.index());
        }
        Ok(received)
    }

    /// Whether the device wrote a descriptor back (DD) at the next receive slot, one it
    /// was given: a frame, or a piece of one, waits to be taken.
    fn frame_waiting(&self) -> bool {
        self.rx.next_given() && self.written_back(self.rx.next())
    }

    /// Whether receive descriptor `slot` shows a write-back (DD).
    fn written_back(&self, slot: usize) -> bool {
        let fields_at = slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS;
        RxFields::decode(self.rx_format, self.rx_descriptors.read64(fields_at)).done()
    }

    /// Readies receive descriptor `slot` for the device again: its buffer's address (the
    /// extended write-back overwrites it with the RSS hash), its status cleared.
    fn clean_rx_descriptor(&mut self, slot: usize) {
        let buffer = self.rx_buffer(slot);
        self.rx_descriptors.write64(slot * DESCRIPTOR_BYTES, buffer);
        let fields_at = slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS;
        self.rx_descriptors.write64(fields_at, 0);
    }

    /// Drops a write-back (DD) on receive descriptor `slot`, the one at RDT, which the
    /// device was not given (a faulty device's): taken as a frame, it would move the
    /// driver past RDT and its next RDT would equal the device's head, giving the device
    /// no descriptor for good. The descriptor is cleaned to go back with the next RDT;
    /// the drop is counted and logged at each power of two. Kept out of line: rare.
    #[cold]
    #[inline(never)]
    fn drop_stray_write_back(&mut self, slot: usize) {
        self.clean_rx_descriptor(slot);
        self.rx_stray_write_backs += 1;
        if self.rx_stray_write_backs.is_power_of_two() {
            log::warn!(
                "e1000: queue {}: receive descriptor {slot} written back (DD) at RDT, which \
                 the device was not given, dropped; {} so far",
                self.index(),
                self.rx_stray_write_backs
            );
        }
    }

    /// Takes back the transmit descriptors the device finished with.
    fn reclaim_transmitted(&mut self) {
        let descriptors = &self.tx_descriptors;
        self.tx.reclaim(|slot| {
            ring::tx_done(descriptors.read64(slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS))
        });
    }
}

/// The frame path of one pair (the `NetDevice` calls of its queue), for the device and
/// for the pair's own handle ([`rexo_devio::pairs::split`]) alike.
impl QueuePair for Queue {
    type Layout = ();

    /// Hands up to `budget` received frames to `deliver`, gives their buffers back (RDT
    /// in batches); how many were delivered ([`Queue::receive_counted`]).
    fn receive(
        &mut self,
        (): (),
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        Ok(self.receive_counted(budget, deliver)?.delivered)
    }

    /// One data descriptor per segment, each pointing at its own slot's buffer, EOP on
    /// the last (the segments are never copied together).
    fn send_segments(
        &mut self,
        (): (),
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        ring::check_segments(segments)?;
        if !self.health.usable()? {
            return Err(DeviceError::QueueFull);
        }
        if offload && segments.len() > 1 {
            return Err(DeviceError::Unsupported(
                "checksum offload of a frame in several segments",
            ));
        }
        // A descriptor per segment, and one more: a context descriptor may go before the
        // frame's. Reclaim only when short: one pass then frees every finished one.
        let needed = segments.len() + 1;
        if self.tx.free() < needed {
            self.reclaim_transmitted();
        }
        if self.tx.free() < needed {
            self.check_transmit_stall()?;
            return Err(DeviceError::QueueFull);
        }
        // Segment i goes in the buffer of the i-th free slot (a withdrawn frame leaves
        // them unqueued: the next fill reuses them).
        let mut ranges = [(0usize, 0usize); MAX_SEGMENTS];
        for (i, (range, &len)) in ranges.iter_mut().zip(segments).enumerate() {
            let slot = self.tx.slot_ahead(i).ok_or(DeviceError::QueueFull)?;
            *range = (slot * BUFFER_BYTES, len);
        }
        let ranges = &ranges[..segments.len()];
        let mut checksum = None;
        let buffers = self.tx_buffers.bytes_mut(0, TX_DESCRIPTORS * BUFFER_BYTES);
        let filled = rexo_api::device::lend_ranges(buffers, ranges, |parts| {
            if !fill(parts) {
                return false;
            }
            checksum = rexo_api::device::seed_checksum(parts, offload);
            true
        });
        if !filled.ok_or(DeviceError::TooManySegments {
            segments: segments.len(),
            max: MAX_SEGMENTS,
        })? {
            return Err(DeviceError::Withdrawn);
        }
        if self.link_down() {
            // Taken and dropped, as a wire without a cable would: queued, it would only
            // stall the ring until the link came back, and never go.
            self.link.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let first_buffer = self.tx_buffer(ranges[0].0 / BUFFER_BYTES);
        let mut data_slot = ranges[0].0 / BUFFER_BYTES;
        if let Some(layout) = checksum {
            let field = layout.start + layout.offset;
            if self.tx_context != Some((layout.start, field)) {
                // The context takes this slot; the frame's descriptor, the next one,
                // points at this slot's buffer (the next slot's buffer is free until
                // the ring wraps past this one, which needs both done).
                let at = data_slot * DESCRIPTOR_BYTES;
                self.tx_descriptors
                    .write64(at, ring::tx_context_offsets(layout.start, field));
                self.tx_descriptors.write64(
                    at + DESCRIPTOR_FIELDS,
                    ring::tx_context_fields(layout.offset == 16),
                );
                self.tx.queued(false);
                self.tx_context = Some((layout.start, field));
                data_slot = self.tx.slot_to_fill().ok_or(DeviceError::QueueFull)?;
            }
        }
        let mut tail = 0;
        for (i, &(offset, len)) in ranges.iter().enumerate() {
            let slot = if i == 0 {
                data_slot
            } else {
                offset / BUFFER_BYTES
            };
            let buffer = if i == 0 {
                first_buffer
            } else {
                self.tx_buffer(slot)
            };
            let at = slot * DESCRIPTOR_BYTES;
            let last = i + 1 == ranges.len();
            self.tx_descriptors.write64(at, buffer);
            self.tx_descriptors.write64(
                at + DESCRIPTOR_FIELDS,
                ring::tx_data_fields(len, checksum.is_some(), last),
            );
            tail = self.tx.queued(last);
        }
        barrier();
        self.regs.write32(TDT + self.registers, tail as u32);
        Ok(())
    }

    /// Frames queued that the device has not finished with (each counted once, however
    /// many descriptors it took), after reclaiming the rest; [`PAIR_BROKEN`] when they
    /// show the transmit unit hung. While the device is reset, what was in flight.
    ///
    /// [`PAIR_BROKEN`]: rexo_api::device::PAIR_BROKEN
    fn transmit_pending(&mut self, (): ()) -> Result<usize, DeviceError> {
        if !self.health.usable()? {
            return Ok(self.tx.frames_in_flight());
        }
        self.reclaim_transmitted();
        if self.tx.frames_in_flight() > 0 {
            self.check_transmit_stall()?;
        }
        Ok(self.tx.frames_in_flight())
    }
}

/// What one receive took from a pair's ring.
struct Received {
    /// Frames handed to the caller.
    delivered: usize,
    /// Descriptors taken from the ring and given back: the delivered frames' and the
    /// dropped ones'.
    descriptors: usize,
}

/// How receive queues wake a core.
enum Wakes {
    /// The 82574's MSI-X table: receive queue `q` signals through entry `q`.
    MsiX(MsixTable),
    /// The 8254x's INTx line (its one queue), `armed` from a wake's arming until a
    /// receive takes descriptors from the ring, frames delivered or dropped (its cause
    /// masked again then, so the line falls).
    Line {
        /// The line.
        line: LineWake,
        /// Whether the receive cause is unmasked.
        armed: bool,
    },
    /// Neither (why not).
    None(DeviceError),
}

/// One started controller: its registers and its queue pairs.
struct E1000 {
    /// BAR0.
    regs: Mmio,
    /// The clock, for the reset at drop.
    platform: &'static dyn Platform,
    /// Where the controller is on the PCI bus (for messages).
    address: Address,
    /// Which controller.
    model: Model,
    /// The MAC address.
    mac: [u8; 6],
    /// The queue pairs (one on the 8254x, two on the 82574), each behind its own lock,
    /// shared with its handle once split ([`NetDevice::split_queues`]).
    queues: Vec<Arc<spin::Mutex<Queue>>>,
    /// How receive queues wake a core.
    wakes: Wakes,
    /// Set by a pair that found the transmit unit hung (shared with every pair): the
    /// next call through the device resets it.
    reset_wanted: Arc<AtomicBool>,
    /// Resets after a transmit unit hang since the device was started.
    resets: u64,
    /// The link as the pairs found it (shared with every pair).
    link: Arc<Link>,
}

impl E1000 {
    /// Allocates the rings and starts the device ([`configure`](Self::configure)).
    fn start(
        platform: &'static dyn Platform,
        address: Address,
        regs: Mmio,
        model: Model,
        mac: [u8; 6],
        wakes: Wakes,
    ) -> Result<Self, DeviceError> {
        let reset_wanted = Arc::new(AtomicBool::new(false));
        let link = Arc::new(Link::default());
        let queues = (0..model.queues())
            .map(|index| {
                let queue = Queue::new(
                    platform,
                    index,
                    regs.clone(),
                    model.rx_format(),
                    reset_wanted.clone(),
                    link.clone(),
                );
                queue.map(|queue| Arc::new(spin::Mutex::new(queue)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let nic = Self {
            regs,
            platform,
            address,
            model,
            mac,
            queues,
            wakes,
            reset_wanted,
            resets: 0,
            link,
        };
        nic.configure();
        Ok(nic)
    }

    /// Programs link, addresses, the queues (and RSS over them) of a device fresh from
    /// its reset, and enables the receiver and transmitter (SDM, "General
    /// Configuration"); the pairs' rings must be in their starting state.
    fn configure(&self) {
        let (regs, model, mac) = (&self.regs, self.model, self.mac);
        if matches!(self.wakes, Wakes::MsiX(_)) {
            // Receive queue q's cause goes to MSI-X entry q and clears itself when the
            // message is sent; the causes stay masked (IMS) until a core asks.
            let queues = self.queues.len() as u32;
            let ivar = (0..queues).fold(0, |ivar, q| ivar | (q | IVAR_VALID) << (4 * q));
            regs.write32(IVAR, ivar);
            regs.write32(EIAC, (0..queues).fold(0, |mask, q| mask | ICR_RXQ0 << q));
        }

        // Link: set link up and let the MAC take speed and duplex from the PHY's
        // auto-negotiation (ASDE on the 8254x; the 82574 does so by itself); no link,
        // PHY or VLAN overrides left from firmware.
        let mut ctrl = regs.read32(CTRL) | CTRL_SLU;
        if !model.pcie {
            ctrl |= CTRL_ASDE;
        }
        ctrl &= !(CTRL_LRST | CTRL_PHY_RST | CTRL_ILOS | CTRL_VME);
        regs.write32(CTRL, ctrl);
        if model.pcie {
            regs.write32(CTRL_EXT, regs.read32(CTRL_EXT) | CTRL_EXT_DRV_LOAD);
        }

        // Addresses: ours in entry 0, no multicast groups.
        let (ral, rah) = ring::receive_address(mac);
        regs.write32(RAL0, ral);
        regs.write32(RAH0, rah);
        for entry in 0..MTA_ENTRIES {
            regs.write32(MTA + 4 * entry, 0);
        }

        for queue in &self.queues {
            queue.lock().program();
        }
        regs.write32(RDTR, 0);
        regs.write32(TIPG, ring::tipg(&model));
        if model.rx_format() == RxFormat::Extended {
            // RSS (82574 datasheet, "Receive-Side Scaling"): extended descriptors, the
            // checksum field given to the hash, the key, and a table alternating
            // between the two queues; frames RSS does not hash go to queue 0.
            regs.write32(RFCTL, regs.read32(RFCTL) | RFCTL_EXTEN);
            regs.write32(RXCSUM, regs.read32(RXCSUM) | RXCSUM_PCSD);
            for (index, key) in RSS_EXAMPLE_KEY.chunks_exact(4).enumerate() {
                let word = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
                regs.write32(RSSRK + 4 * index, word);
            }
            for index in 0..RETA_REGISTERS {
                regs.write32(RETA + 4 * index, RETA_ALTERNATE);
            }
            regs.write32(MRQC, MRQC_RSS | MRQC_HASH_ALL);
            // Reset enables transmit queue 0 only.
            for queue in self.queues.iter().skip(1) {
                let tarc = TARC0 + queue.lock().registers;
                regs.write32(tarc, regs.read32(tarc) | TARC_ENABLE);
            }
        }

        barrier();
        regs.write32(RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC | RCTL_BSIZE_2048);
        regs.write32(
            TCTL,
            TCTL_EN
                | TCTL_PSP
                | TCTL_CT_15
                | (ring::collision_distance(&model) << TCTL_COLD_SHIFT)
                | TCTL_RTLC,
        );
    }
}

impl PairedDevice for E1000 {
    type Pair = Queue;

    fn pairs(&self) -> &[Arc<spin::Mutex<Queue>>] {
        &self.queues
    }

    fn reset_wanted(&self) -> &AtomicBool {
        &self.reset_wanted
    }

    /// Resets a device whose transmit unit hung, or held frames with the link down
    /// (their [`TransmitFault`]; every pair left alone meanwhile,
    /// [`rexo_devio::pairs::PairState::Resetting`]): the global reset, every pair's
    /// rings renewed (the frames in flight lost, counted dropped for want of a link
    /// when no pair hung, every receive buffer the device's again), the device
    /// configured as at probe with the same MAC address and RSS, and the receive causes
    /// armed before armed again. A device that does not come back is given up: every
    /// later call is [`GIVEN_UP`] (its memory is kept at drop if it still does not
    /// stop).
    fn reset_device(&mut self) -> Result<(), DeviceError> {
        let armed = self.regs.read32(IMS);
        let stopped = reset(self.platform, self.address, &self.regs, &self.model)
            .and_then(|()| settle_after_reset(self.platform, &self.regs, &self.model));
        if let Err(error) = stopped {
            log::error!(
                "{} e1000: the device did not come back from its reset: {error}; given up",
                self.address
            );
            return Err(GIVEN_UP);
        }
        let (mut lost, mut hung) = (0, false);
        for queue in &self.queues {
            let mut queue = queue.lock();
            hung |= queue.fault.take() == Some(TransmitFault::Hang);
            lost += queue.renew();
        }
        self.configure();
        self.regs.write32(IMS, armed);
        if hung {
            self.resets += 1;
            log::warn!(
                "{} e1000: reset after a transmit unit hang ({} since start): {lost} \
                 frame(s) in flight lost",
                self.address,
                self.resets
            );
        } else {
            self.link.dropped.fetch_add(lost as u64, Ordering::Relaxed);
            log::warn!(
                "{} e1000: reset to drop the {lost} frame(s) held without a link",
                self.address
            );
        }
        Ok(())
    }
}

impl Drop for E1000 {
    /// Stops the device's DMA (receiver and transmitter off, then a global reset)
    /// before the rings and buffers go back to the kernel; a device whose CTRL.RST does
    /// not clear, or whose RCTL.EN or TCTL.EN still reads 1 after it, may still use
    /// them, so every pair's rings and buffers are kept for good.
    fn drop(&mut self) {
        let regs = &self.regs;
        regs.write32(RCTL, 0);
        regs.write32(TCTL, 0);
        let stopped = reset(self.platform, self.address, regs, &self.model).and_then(|()| {
            rexo_devio::wait_until(
                self.platform,
                "receiver and transmitter off",
                RESET_TIMEOUT_MS,
                || regs.read32(RCTL) & RCTL_EN == 0 && regs.read32(TCTL) & TCTL_EN == 0,
            )
        });
        if let Err(error) = stopped {
            log::warn!("{} e1000: reset at release: {error}", self.address);
            let mut queues: Vec<_> = self.queues.iter().map(|queue| queue.lock()).collect();
            rexo_devio::abandon_to_device(
                &format_args!("{} e1000", self.address),
                queues.iter_mut().flat_map(|queue| queue.memory_mut()),
            );
        }
    }
}

/// How the 82574 places received flows on its pairs once [`E1000::start`] programmed
/// RSS: the example key, and the redirection table [`RETA_ALTERNATE`] fills (four
/// one-byte entries per register, least significant first, bit 7 picking queue 1).
fn rss_steering() -> ReceiveSteering {
    let entries = RETA_ALTERNATE.to_le_bytes();
    ReceiveSteering {
        key: RSS_EXAMPLE_KEY,
        table: core::array::from_fn(|entry| entries[entry % entries.len()] >> 7),
    }
}

impl NetDevice for E1000 {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac,
            max_frame: ETHERNET_MAX_FRAME,
            queues: self.queues.len(),
            link_up: self.regs.read32(STATUS) & STATUS_LU != 0,
            // Every 8254x and 8257x computes TCP/UDP checksums from a context descriptor.
            checksum_offload: true,
            tcp_segmentation: None,
            // RSS, as `start` programs it on the 82574 (its two pairs).
            receive_steering: (self.queues.len() > 1).then(rss_steering),
            pair: None,
        }
    }

    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        let received = self.run_on_pair(queue, |pair| pair.receive_counted(budget, deliver))?;
        if let Wakes::Line {
            armed: armed @ true,
            ..
        } = &mut self.wakes
            && received.descriptors > 0
        {
            // The wake is spent, even on frames all dropped (RXT0 was raised for them):
            // the cause masked, so the shared line falls.
            self.regs.write32(IMC, ICR_RXT0);
            *armed = false;
        }
        Ok(received.delivered)
    }

    fn send_segments(
        &mut self,
        queue: usize,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        self.run_on_pair(queue, |pair| {
            pair.send_segments((), segments, offload, fill)
        })
    }

    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
        self.run_on_pair(queue, |pair| pair.transmit_pending(()))
    }

    /// The 82574's receive queue `queue` raises its cause (IMS) through MSI-X entry
    /// `queue` pointed at `core`; the 8254x's receive cause raises its INTx line. A frame
    /// already in the ring when the wake is armed raises it too (through ICS), so the
    /// caller may sleep at once; so does arming a pair whose queue another core holds
    /// (perhaps for nothing: its ring is not looked at).
    fn wake_on_receive(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        if queue >= self.queues.len() {
            return Err(DeviceError::NoSuchQueue(queue));
        }
        let regs = &self.regs;
        let cause = match (&mut self.wakes, core) {
            (Wakes::MsiX(msix), Some(core)) => {
                msix.wake(queue as u16, core)?;
                // Reading ICR clears the causes already signalled, so that the next frame
                // raises its cause afresh (QEMU's model sends nothing for a cause it
                // signalled and nobody cleared, even with EIAC).
                regs.read32(ICR);
                regs.write32(IMS, ICR_RXQ0 << queue);
                ICR_RXQ0 << queue
            }
            (Wakes::MsiX(msix), None) => {
                regs.write32(IMC, ICR_RXQ0 << queue);
                return msix.mask(queue as u16);
            }
            (Wakes::Line { line, armed }, Some(core)) => {
                // Acknowledged (ICR read clears it), unmasked, then the line armed: frames
                // from now on raise it.
                regs.read32(ICR);
                regs.write32(IMS, ICR_RXT0);
                *armed = true;
                line.arm(core)?;
                ICR_RXT0
            }
            (Wakes::Line { armed, .. }, None) => {
                regs.write32(IMC, ICR_RXT0);
                *armed = false;
                return Ok(());
            }
            (Wakes::None(why), _) => return Err(*why),
        };
        // A frame that came before the ICR read with its cause masked (since the receive
        // that spent the 8254x's last wake, or before the 82574 queue's first arming)
        // sent nothing, and the read cleared its cause: the device is told to raise it
        // again, or the core would sleep its whole nap with the frame in the ring. The
        // device writes a descriptor back before raising its cause, so a frame not seen
        // here raises it itself. A queue another core holds (a split pair's receive,
        // running its app's deliver, which may arm a pair too) is not waited for, or two
        // such cores arming each other's pair would wait for ever, the registry's lock
        // held: the cause is raised anyway, one wake-up perhaps for nothing.
        if self.queues[queue]
            .try_lock()
            .is_none_or(|pair| pair.frame_waiting())
        {
            regs.write32(ICS, cause);
        }
        Ok(())
    }
    /// The 82574's two pairs, each handle holding its pair (behind the pair's own lock,
    /// which only the core driving that pair takes on the frame path): the pairs have
    /// their own rings, buffers and tail registers, and share only the register window,
    /// whose accessors take `&self`. The 8254x answers [`DeviceError::Unsupported`]: it
    /// has one pair, so a split would serve no second core, and its receive path spends
    /// the INTx wake-up (`Wakes::Line`), state of the whole device.
    fn split_queues(&mut self) -> Result<Vec<Box<dyn NetDevice>>, DeviceError> {
        if self.queues.len() < 2 {
            return Err(DeviceError::Unsupported(
                "a handle per queue pair on a one-queue 8254x",
            ));
        }
        Ok(rexo_devio::pairs::split(
            &self.queues,
            (),
            self.info(),
            "arming an 82574 pair's wake-up without the device",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_api::device::PAIR_BROKEN;
    use rexo_devio::host::HostPlatform;

    /// A started controller of `model` whose registers are plain memory (the test plays
    /// the device), its rings and buffers from `platform`.
    fn nic_on(platform: &'static HostPlatform, model: Model) -> E1000 {
        let no_wakes = Wakes::None(DeviceError::Unsupported("wake-ups on the host"));
        nic_waking_by(platform, model, no_wakes)
    }

    /// [`nic_on`] `platform`, its receive queues waking cores by `wakes`.
    fn nic_waking_by(platform: &'static HostPlatform, model: Model, wakes: Wakes) -> E1000 {
        let regs = rexo_devio::host::registers(REGISTER_SPAN);
        E1000::start(
            platform,
            Address::new(0, 0, 3, 0).unwrap(),
            regs,
            model,
            [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            wakes,
        )
        .unwrap()
    }

    /// A device that never completes its reset: CTRL.RST stays set, as plain memory
    /// keeps it.
    fn reset_never_completes(_: &Mmio) {}

    /// A device's reset completing: CTRL.RST cleared by the device (plain memory alone
    /// keeps it set).
    fn reset_completes(regs: &Mmio) {
        regs.write32(CTRL, regs.read32(CTRL) & !CTRL_RST);
    }

    /// A device whose reset completes but whose receiver is on after it (RCTL.EN).
    fn reset_completes_with_the_receiver_on(regs: &Mmio) {
        reset_completes(regs);
        regs.write32(RCTL, RCTL_EN);
    }

    #[test]
    fn a_device_that_does_not_reset_keeps_its_memory_and_one_that_resets_gives_it_back() {
        // An 82540EM (one pair) and an 82574L (two).
        for model in [0x100E, 0x10D3].map(|id| ring::model(id).unwrap()) {
            let memory = 4 * model.queues();
            let devices = [
                (reset_never_completes as fn(&Mmio), memory),
                (reset_completes, 0),
                (reset_completes_with_the_receiver_on, memory),
            ];
            for (case, (device, live_after)) in devices.into_iter().enumerate() {
                let platform = HostPlatform::leaked();
                let nic = nic_on(platform, model);
                // The device acts while the driver waits on the clock.
                let regs = nic.regs.clone();
                platform.on_clock_reading(move || device(&regs));
                assert_eq!(
                    platform.live(),
                    memory,
                    "two rings, two buffer blocks a pair"
                );
                drop(nic);
                assert_eq!(platform.live(), live_after, "{} case {case}", model.name);
            }
        }
    }

    #[test]
    fn the_steering_an_82574_reports_is_what_it_programs_and_its_handles_name_their_pair() {
        let mut nic = nic_on(HostPlatform::leaked(), ring::model(0x10D3).unwrap());
        let steering = nic
            .info()
            .receive_steering
            .expect("the 82574 steers by RSS");
        for (index, key) in steering.key.chunks_exact(4).enumerate() {
            let programmed = nic.regs.read32(RSSRK + 4 * index).to_le_bytes();
            assert_eq!(programmed, key, "RSSRK{index}");
        }
        for (index, pairs) in steering.table.chunks_exact(4).enumerate() {
            let programmed = nic.regs.read32(RETA + 4 * index).to_le_bytes();
            assert_eq!(programmed.map(|entry| entry >> 7), pairs, "RETA{index}");
        }
        assert_eq!(nic.info().pair, None);
        let handles = nic.split_queues().unwrap();
        let pairs: Vec<_> = handles.iter().map(|handle| handle.info().pair).collect();
        assert_eq!(pairs, [Some(0), Some(1)]);
        assert_eq!(handles[1].info().receive_steering, Some(steering));
        let one_pair = nic_on(HostPlatform::leaked(), ring::model(0x100E).unwrap());
        assert_eq!(one_pair.info().receive_steering, None);
    }

    /// A device whose global reset (CTRL.RST) puts every register at its default (0 in
    /// this model) and clears itself; the link stays as it was (STATUS.LU: the PHY's,
    /// which the MAC's reset leaves alone) and the NVM loaded (EECD.AUTO_RD).
    fn reset_to_defaults(regs: &Mmio) {
        if regs.read32(CTRL) & CTRL_RST != 0 {
            let link = regs.read32(STATUS) & STATUS_LU;
            for offset in (0..REGISTER_SPAN).step_by(4) {
                regs.write32(offset, 0);
            }
            regs.write32(STATUS, link);
            regs.write32(EECD, EECD_AUTO_RD);
        }
    }

    /// STATUS.LU and EECD.AUTO_RD, as a device with a link and its NVM read shows them.
    fn link_up_and_nvm_loaded(regs: &Mmio) {
        regs.write32(STATUS, STATUS_LU);
        regs.write32(EECD, EECD_AUTO_RD);
    }

    /// A started controller of model `device_id` with the link up, whose registers go
    /// to their defaults at a global reset ([`reset_to_defaults`]).
    fn nic_that_resets(device_id: u16) -> (&'static HostPlatform, E1000) {
        let platform = HostPlatform::leaked();
        let nic = nic_on(platform, ring::model(device_id).unwrap());
        link_up_and_nvm_loaded(&nic.regs);
        let regs = nic.regs.clone();
        platform.on_clock_reading(move || reset_to_defaults(&regs));
        (platform, nic)
    }

    /// Every register but IMC (write-only on the device; the reset writes it).
    fn registers_of(regs: &Mmio) -> Vec<(usize, u32)> {
        (0..REGISTER_SPAN)
            .step_by(4)
            .filter(|&offset| offset != IMC)
            .map(|offset| (offset, regs.read32(offset)))
            .collect()
    }

    /// The device finishes transmit descriptors `slots` of `queue`.
    fn finish_transmits(queue: &mut Queue, slots: core::ops::Range<usize>) {
        for slot in slots {
            let at = slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS;
            let fields = queue.tx_descriptors.read64(at);
            queue
                .tx_descriptors
                .write64(at, fields | (u64::from(ring::TX_STATUS_DD) << 32));
        }
    }

    /// The hang timeout in nanoseconds.
    const HANG_NS: u64 = TX_HANG_TIMEOUT_MS * NS_PER_MS;

    /// Before: nothing looked for a transmit unit that stopped; its frames stayed
    /// pending for ever and the ring, once full, refused every frame. Now the device is
    /// reset once the timeout has passed (and not before), with every register it had,
    /// and works on.
    #[test]
    fn a_hung_transmit_unit_is_reset_after_the_timeout_and_the_device_works_after() {
        for id in [0x100E, 0x10D3] {
            let (platform, mut nic) = nic_that_resets(id);
            let model = nic.model;
            let started = registers_of(&nic.regs);
            for _ in 0..3 {
                nic.transmit(0, 60, &mut |_| {}).unwrap();
            }
            assert_eq!(nic.transmit_pending(0), Ok(3), "the count starts");
            platform.advance_clock(HANG_NS - 100_000);
            assert_eq!(nic.transmit_pending(0), Ok(3), "{}: not yet", model.name);
            assert_eq!(nic.regs.read32(TDT), 3, "{}: not reset", model.name);
            platform.advance_clock(200_000);
            assert_eq!(
                nic.transmit_pending(0),
                Ok(0),
                "{}: reset, the frames lost",
                model.name
            );
            assert_eq!(
                registers_of(&nic.regs),
                started,
                "{}: the registers as started",
                model.name
            );
            // It works on: a frame goes out from the start of the renewed ring.
            nic.transmit(0, 60, &mut |_| {}).unwrap();
            assert_eq!(nic.regs.read32(TDT), 1, "{}", model.name);
            finish_transmits(&mut nic.queues[0].lock(), 0..1);
            assert_eq!(nic.transmit_pending(0), Ok(0), "{}", model.name);
        }
    }

    #[test]
    fn a_paused_transmitter_is_not_hung_and_progress_restarts_the_count() {
        let platform = HostPlatform::leaked();
        let mut nic = nic_on(platform, ring::model(0x100E).unwrap());
        for _ in 0..2 {
            nic.transmit(0, 60, &mut |_| {}).unwrap();
        }
        assert_eq!(nic.transmit_pending(0), Ok(2));
        nic.regs.write32(STATUS, STATUS_LU | STATUS_TXOFF);
        for look in 0..2 {
            platform.advance_clock(2 * HANG_NS);
            assert_eq!(nic.transmit_pending(0), Ok(2), "held back: look {look}");
        }
        nic.regs.write32(STATUS, STATUS_LU);
        platform.advance_clock(HANG_NS / 2);
        // The oldest frame finishes: the count starts again.
        finish_transmits(&mut nic.queues[0].lock(), 0..1);
        assert_eq!(nic.transmit_pending(0), Ok(1));
        platform.advance_clock(HANG_NS * 3 / 4);
        assert_eq!(nic.transmit_pending(0), Ok(1), "the count started again");
        assert_eq!(nic.regs.read32(TDT), 2, "not reset");
    }

    /// Before: a link lost with frames held (a transmit unit without a link stops its DMA
    /// and never sends them) left them in the ring for good, every look past the timeout
    /// starting the count again, the ring filling and every send refused (QueueFull) while
    /// the cable was out. Now the first look past the timeout with the link down resets
    /// the device to drop them, counted, not as a hang; frames sent while the link is
    /// down are taken and dropped, counted, without touching the ring, so nothing stalls
    /// and nothing is reset again; and the first send after the link is back goes out.
    #[test]
    fn frames_held_when_the_link_is_lost_are_dropped_once_and_sends_go_out_when_it_is_back() {
        for id in [0x100E, 0x10D3] {
            let (platform, mut nic) = nic_that_resets(id);
            let name = nic.model.name;
            let mut started = registers_of(&nic.regs);
            // A receive finds nothing and sees the link up, as a stack's first poll does
            // (a loss is the link found down after it was found up).
            assert_eq!(nic.receive(0, 1, &mut |_| {}), Ok(0), "{name}");
            for _ in 0..3 {
                nic.transmit(0, 60, &mut |_| {}).unwrap();
            }
            assert_eq!(nic.transmit_pending(0), Ok(3), "{name}: the count starts");
            nic.regs.write32(STATUS, 0);
            platform.advance_clock(HANG_NS - 100_000);
            assert_eq!(nic.transmit_pending(0), Ok(3), "{name}: not yet");
            platform.advance_clock(200_000);
            assert_eq!(nic.transmit_pending(0), Ok(0), "{name}: dropped by a reset");
            for (offset, value) in &mut started {
                if *offset == STATUS {
                    *value = 0;
                }
            }
            assert_eq!(registers_of(&nic.regs), started, "{name}: reset");
            let counts = |nic: &E1000| {
                let link = &nic.link;
                let (losses, dropped) = (&link.losses, &link.dropped);
                (
                    losses.load(Ordering::Relaxed),
                    dropped.load(Ordering::Relaxed),
                )
            };
            assert_eq!(counts(&nic), (1, 3), "{name}: one loss, three frames");
            assert_eq!(nic.resets, 0, "{name}: not a hang");
            // While the link is down: more than a ring of frames taken and dropped, none
            // queued, no stall, no reset again (a reset would clear the MTA entry).
            let marker = MTA + 4;
            nic.regs.write32(marker, 0x5A5A);
            for _ in 0..2 * TX_DESCRIPTORS {
                nic.transmit(0, 60, &mut |_| {}).unwrap();
            }
            platform.advance_clock(4 * HANG_NS);
            assert_eq!(nic.transmit_pending(0), Ok(0), "{name}");
            assert_eq!(nic.transmit(0, 60, &mut |_| {}), Ok(()), "{name}");
            assert_eq!(nic.regs.read32(TDT), 0, "{name}: nothing queued");
            assert_eq!(nic.regs.read32(marker), 0x5A5A, "{name}: not reset again");
            let dropped = 3 + 2 * TX_DESCRIPTORS as u64 + 1;
            assert_eq!(counts(&nic), (1, dropped), "{name}");
            // The link is back: the next frame goes out, from the start of the ring.
            nic.regs.write32(STATUS, STATUS_LU);
            nic.transmit(0, 60, &mut |_| {}).unwrap();
            assert_eq!(nic.regs.read32(TDT), 1, "{name}");
            assert_eq!(nic.transmit_pending(0), Ok(1), "{name}");
            finish_transmits(&mut nic.queues[0].lock(), 0..1);
            assert_eq!(nic.transmit_pending(0), Ok(0), "{name}");
            assert_eq!(counts(&nic), (1, dropped), "{name}");
        }
    }

    /// Before: a link lost while nothing was queued was counted nowhere (only a look
    /// past the hang timeout with frames held counted a loss), so a cable pulled from
    /// an idle interface left no trace. Now a receive that finds nothing looks at the
    /// link every 100 ms: each loss after the link was seen up is counted once, on
    /// whichever pair looks, and a loss found so is not counted again when frames held
    /// without the link reset the device.
    #[test]
    fn a_link_lost_while_nothing_is_queued_is_counted_once_per_loss() {
        const LOOK_NS: u64 = LINK_LOOK_MS * NS_PER_MS;
        for id in [0x100E, 0x10D3] {
            let (platform, mut nic) = nic_that_resets(id);
            let name = nic.model.name;
            let other = nic.queues.len() - 1;
            let losses = |nic: &E1000| nic.link.losses.load(Ordering::Relaxed);
            let idle_receive = |nic: &mut E1000, queue: usize| {
                assert_eq!(nic.receive(queue, 8, &mut |_| {}), Ok(0), "{name}");
            };
            idle_receive(&mut nic, 0);
            nic.regs.write32(STATUS, 0);
            idle_receive(&mut nic, 0);
            assert_eq!(losses(&nic), 0, "{name}: not looked at again within 100 ms");
            platform.advance_clock(LOOK_NS);
            idle_receive(&mut nic, 0);
            assert_eq!(losses(&nic), 1, "{name}: lost with nothing queued");
            platform.advance_clock(LOOK_NS);
            idle_receive(&mut nic, other);
            assert_eq!(losses(&nic), 1, "{name}: still down, on any pair");
            nic.regs.write32(STATUS, STATUS_LU);
            platform.advance_clock(LOOK_NS);
            idle_receive(&mut nic, other);
            nic.regs.write32(STATUS, 0);
            platform.advance_clock(LOOK_NS);
            idle_receive(&mut nic, other);
            assert_eq!(losses(&nic), 2, "{name}: lost again");
            // Frames held with that link down reset the device, the loss counted once.
            for _ in 0..3 {
                nic.transmit(0, 60, &mut |_| {}).unwrap();
            }
            assert_eq!(nic.transmit_pending(0), Ok(3), "{name}");
            platform.advance_clock(HANG_NS + LOOK_NS);
            assert_eq!(nic.transmit_pending(0), Ok(0), "{name}: dropped by a reset");
            assert_eq!(losses(&nic), 2, "{name}: the same loss");
        }
    }

    /// A send that finds the ring full looks for a hang too: past the timeout it is sent
    /// on the reset device instead of refused.
    #[test]
    fn a_send_finding_the_ring_full_of_a_hung_unit_goes_out_after_the_reset() {
        let (platform, mut nic) = nic_that_resets(0x100E);
        while nic.transmit(0, 60, &mut |_| {}).is_ok() {}
        assert_eq!(
            nic.transmit(0, 60, &mut |_| {}),
            Err(DeviceError::QueueFull),
            "the count starts"
        );
        platform.advance_clock(HANG_NS + 1_000);
        assert_eq!(nic.transmit(0, 60, &mut |_| {}), Ok(()));
        assert_eq!(nic.regs.read32(TDT), 1);
        assert_eq!(nic.transmit_pending(0), Ok(1));
    }

    /// An 82574 pair's own handle cannot reset the device: it answers PAIR_BROKEN until
    /// the next receive, send or `transmit_pending` through the whole device resets it,
    /// then works again.
    #[test]
    fn a_hang_met_by_a_pairs_own_handle_is_reset_by_the_next_call_through_the_device() {
        let (platform, mut nic) = nic_that_resets(0x10D3);
        let mut handles = nic.split_queues().unwrap();
        handles[1].transmit(0, 60, &mut |_| {}).unwrap();
        assert_eq!(handles[1].transmit_pending(0), Ok(1));
        platform.advance_clock(HANG_NS + 1_000);
        assert_eq!(handles[1].transmit_pending(0), Err(PAIR_BROKEN));
        assert_eq!(handles[1].receive(0, 8, &mut |_| {}), Err(PAIR_BROKEN));
        assert_eq!(
            handles[1].transmit(0, 60, &mut |_| {}),
            Err(PAIR_BROKEN),
            "nothing queued"
        );
        assert_eq!(handles[0].transmit_pending(0), Ok(0), "the other pair runs");
        // Any call through the device resets it first.
        assert_eq!(nic.receive(0, 8, &mut |_| {}), Ok(0));
        assert_eq!(handles[1].transmit_pending(0), Ok(0), "the frame was lost");
        handles[1].transmit(0, 60, &mut |_| {}).unwrap();
        assert_eq!(nic.regs.read32(TDT + QUEUE_STRIDE), 1);
        assert_eq!(handles[1].transmit_pending(0), Ok(1));
    }

    /// Before: an 8254x's armed INTx wake was masked again only by a receive that
    /// delivered a frame, so one whose frames were all dropped left RXT0 unmasked and the
    /// shared line asserted. Now any receive that takes a descriptor spends the wake.
    #[test]
    fn a_receive_that_drops_every_frame_still_masks_an_armed_line_wake() {
        let platform = HostPlatform::leaked();
        let line = platform.line_wake(11, true).unwrap();
        let wakes = Wakes::Line { line, armed: false };
        let mut nic = nic_waking_by(platform, ring::model(0x100E).unwrap(), wakes);
        nic.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(nic.regs.read32(IMS), ICR_RXT0);
        assert_eq!(nic.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        assert_eq!(nic.regs.read32(IMC), 0, "nothing came: still armed");
        // A VLAN-tagged 1518-byte frame, written back whole (DD, EOP) and dropped: longer
        // than max_frame.
        let whole = u64::from(ring::RX_STATUS_DD | ring::RX_STATUS_EOP) << 32;
        nic.queues[0]
            .lock()
            .rx_descriptors
            .write64(DESCRIPTOR_FIELDS, whole | 1518);
        assert_eq!(nic.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        assert_eq!(nic.regs.read32(IMC), ICR_RXT0, "masked: the line falls");
        assert!(matches!(nic.wakes, Wakes::Line { armed: false, .. }));
    }

    /// Before: a write-back (DD) on the receive descriptor at RDT, which the device was
    /// not given, was taken as a frame: the driver moved past RDT and wrote RDT = the
    /// device's head, leaving it no descriptor, and then waited on the one at RDT, which
    /// nothing gave back: receive stopped for good. Now it is dropped and counted, and
    /// the device is given the ring again. The same on the 8254x (legacy descriptors)
    /// and on the 82574 (extended).
    #[test]
    fn a_write_back_on_the_descriptor_at_rdt_is_dropped_and_receive_goes_on() {
        for id in [0x100E, 0x10D3] {
            let model = ring::model(id).unwrap();
            let nic = nic_on(HostPlatform::leaked(), model);
            let done = u64::from(ring::RX_STATUS_DD | ring::RX_STATUS_EOP);
            let written_back = match model.rx_format() {
                RxFormat::Legacy => done << 32 | 64,
                RxFormat::Extended => done | 64 << 32,
            };
            let mut queue = nic.queues[0].lock();
            let write_back = |queue: &mut Queue, slot: usize| {
                let fields_at = slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS;
                queue.rx_descriptors.write64(fields_at, written_back);
            };
            let last = RX_DESCRIPTORS - 1;
            assert_eq!(queue.regs.read32(RDT) as usize, last, "{}", model.name);
            // The device writes back every descriptor it was given, its head then at
            // RDT, and sets DD on the one at RDT too.
            for slot in 0..=last {
                write_back(&mut queue, slot);
            }
            queue.regs.write32(RDH, last as u32);
            let mut frames = 0;
            let received = queue.receive((), 1000, &mut |frame| {
                assert_eq!(frame.len(), 64);
                frames += 1;
            });
            assert_eq!(
                received,
                Ok(last),
                "{}: the one at RDT is no frame",
                model.name
            );
            assert_eq!(frames, last);
            assert_eq!(queue.rx_stray_write_backs, 1);
            let fields_at = last * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS;
            assert_eq!(queue.rx_descriptors.read64(fields_at), 0, "cleaned");
            let tail = queue.regs.read32(RDT) as usize;
            assert_eq!(tail, last - 1, "{}: the device holds 255 again", model.name);
            // The device fills the descriptor it now holds at its head, then slot 0
            // after the wrap.
            write_back(&mut queue, last);
            write_back(&mut queue, 0);
            queue.regs.write32(RDH, 1);
            assert_eq!(
                queue.receive((), 1000, &mut |_| {}),
                Ok(2),
                "{}",
                model.name
            );
            assert_eq!(queue.rx_stray_write_backs, 1);
        }
    }

    /// Before: arming an 8254x's line wake read ICR, which cleared the RXT0 of a frame
    /// that came while the last wake was spent (RXT0 masked), then unmasked RXT0:
    /// nothing was pending, the line never rose, and the core slept its whole nap with
    /// the frame in the ring. Now the arming has the device raise RXT0 again (ICS).
    #[test]
    fn arming_a_line_wake_with_a_frame_in_the_ring_raises_its_cause() {
        let platform = HostPlatform::leaked();
        let line = platform.line_wake(11, true).unwrap();
        let wakes = Wakes::Line { line, armed: false };
        let mut nic = nic_waking_by(platform, ring::model(0x100E).unwrap(), wakes);
        nic.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(nic.regs.read32(ICS), 0, "an empty ring: nothing raised");
        // A frame taken spends the wake; the next comes while it is spent.
        let written_back = u64::from(ring::RX_STATUS_DD | ring::RX_STATUS_EOP) << 32 | 64;
        for slot in 0..2 {
            let fields_at = slot * DESCRIPTOR_BYTES + DESCRIPTOR_FIELDS;
            let mut queue = nic.queues[0].lock();
            queue.rx_descriptors.write64(fields_at, written_back);
        }
        assert_eq!(nic.receive(0, 1, &mut |_| {}), Ok(1));
        assert_eq!(nic.regs.read32(IMC), ICR_RXT0, "spent");
        nic.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(
            nic.regs.read32(ICS),
            ICR_RXT0,
            "raised for the frame waiting"
        );
        assert_eq!(nic.receive(0, 8, &mut |_| {}), Ok(1), "still in the ring");
    }

    /// The 82574's arming reads ICR too, which clears the cause of a frame that came
    /// before the queue's first arming (masked until then): the arming raises it again,
    /// through the queue's own cause.
    #[test]
    fn arming_an_82574_queue_with_a_frame_in_its_ring_raises_its_cause() {
        let platform = HostPlatform::leaked();
        let (msix, _table) = platform.msix_table(2);
        let mut nic = nic_waking_by(platform, ring::model(0x10D3).unwrap(), Wakes::MsiX(msix));
        // Extended write-back: status in the low bits, the length in bits 47:32.
        let written_back = u64::from(ring::RX_STATUS_DD | ring::RX_STATUS_EOP) | 64 << 32;
        let mut queue = nic.queues[1].lock();
        queue
            .rx_descriptors
            .write64(DESCRIPTOR_FIELDS, written_back);
        drop(queue);
        nic.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(nic.regs.read32(ICS), 0, "queue 0's ring is empty");
        nic.wake_on_receive(1, Some(0)).unwrap();
        assert_eq!(nic.regs.read32(ICS), ICR_RXQ0 << 1);
    }

    #[test]
    fn arming_a_queue_another_core_holds_raises_its_cause_without_waiting_for_it() {
        let platform = HostPlatform::leaked();
        let (msix, _table) = platform.msix_table(2);
        let mut nic = nic_waking_by(platform, ring::model(0x10D3).unwrap(), Wakes::MsiX(msix));
        // Another core's receive on pair 1 holds its queue while its app's deliver runs,
        // and that app arms pair 1 (through the registry, the device's lock held).
        let pair = nic.queues[1].clone();
        let receiving = pair.lock();
        let (send, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let armed = nic.wake_on_receive(1, Some(0));
            send.send((armed, nic.regs.read32(ICS))).unwrap();
        });
        let seen = answer.recv_timeout(std::time::Duration::from_secs(5));
        drop(receiving);
        let (armed, ics) = seen.expect("arming waited for the queue another core holds");
        assert_eq!(armed, Ok(()));
        assert_eq!(ics, ICR_RXQ0 << 1, "raised: a frame may wait, unseen");
    }

    /// A 64-byte IPv4 UDP frame (a transport segment of 30 bytes), whose checksum the
    /// device may fill in.
    fn udp_frame(frame: &mut [u8]) {
        frame.fill(0);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&50u16.to_be_bytes());
        frame[23] = 17;
    }

    #[test]
    fn frames_pending_count_frames_not_descriptors() {
        let platform = HostPlatform::leaked();
        let mut nic = nic_on(platform, ring::model(0x100E).unwrap());
        // A frame gathered from five segments: five descriptors, one frame.
        nic.send_segments(0, &[20, 20, 20, 20, 20], false, &mut |_| true)
            .unwrap();
        assert_eq!(nic.transmit_pending(0), Ok(1));
        // A frame whose checksum the device fills in: a context descriptor, then its own.
        nic.send_segments(0, &[64], true, &mut |parts| {
            udp_frame(parts[0]);
            true
        })
        .unwrap();
        assert_eq!(nic.transmit_pending(0), Ok(2));
        let mut queue = nic.queues[0].lock();
        assert!(
            queue.tx_context.is_some(),
            "a context descriptor went first"
        );
        // The device finishes the first frame's descriptors, then all of them.
        finish_transmits(&mut queue, 0..5);
        assert_eq!(queue.transmit_pending(()), Ok(1));
        finish_transmits(&mut queue, 5..7);
        assert_eq!(queue.transmit_pending(()), Ok(0));
    }
}
