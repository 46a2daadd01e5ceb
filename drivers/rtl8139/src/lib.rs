//! Realtek RTL8139 Fast Ethernet controller (register map and bits from the RTL8139D
//! datasheet's register descriptions; receive and transmit flows from Realtek's
//! programming guide).
//!
//! The registers are reached through the memory BAR 1 rather than the I/O BAR 0: memory
//! writes are posted (an `out` stalls the core until the device acknowledges it), and
//! the transmit doorbell and the receive pointer are written once per frame or batch.
//!
//! Receive: one contiguous ring of 32 KiB + 16 bytes with WRAP set, so the chip writes a
//! packet that crosses the end on past it into the slack after the ring and every frame
//! is lent to the app in place, in one piece (the 64 KiB ring would be larger, but WRAP
//! is ignored there and frames would have to be copied). Each packet is a 4-byte header
//! (status, length with the CRC), the frame and its CRC, padded to 4 bytes.
//!
//! Transmit: the chip's four fixed descriptors (TSAD0-3 / TSD0-3), used strictly in
//! order, each with its own 2 KiB buffer; finished ones are reclaimed from the one
//! "transmit status of all descriptors" register.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::device::{ETHERNET_HEADER, ETHERNET_MAX_FRAME};
use rexo_api::{DeviceError, NetDevice, NetInfo};
use rexo_devio::{DeviceFunction, Dma, Found, LineWake, Mmio, Platform, Stall, barrier};
use rexo_pci::{Address, Function};

/// Realtek's PCI vendor ID.
const VENDOR_REALTEK: u16 = 0x10EC;
/// The RTL8139's PCI device ID.
const DEVICE_RTL8139: u16 = 0x8139;
/// The memory BAR with the registers (BAR 0 is the same registers as I/O ports).
const REGISTER_BAR: usize = 1;
/// Bytes of the register window the datasheet defines.
const REGISTER_WINDOW: usize = 0x100;

/// ID registers IDR0-3: the first four bytes of the MAC address (loaded from the EEPROM).
const IDR0: usize = 0x00;
/// ID registers IDR4-5: the last two bytes of the MAC address.
const IDR4: usize = 0x04;
/// Transmit status of descriptor 0 (TSD0); descriptor `i` at `+ 4 * i`.
const TSD0: usize = 0x10;
/// Transmit start address of descriptor 0 (TSAD0); descriptor `i` at `+ 4 * i`.
const TX_ADDRESS0: usize = 0x20;
/// Receive buffer start address (RBSTART).
const RBSTART: usize = 0x30;
/// Command register (CR).
const CR: usize = 0x37;
/// Current address of packet read (CAPR): the driver's read position, minus 16.
const CAPR: usize = 0x38;
/// Current buffer address (CBR): where the chip writes next in the receive ring.
const CBR: usize = 0x3A;
/// Interrupt mask register (IMR).
const IMR: usize = 0x3C;
/// Interrupt status register (ISR), write one to clear.
const ISR: usize = 0x3E;
/// ISR/IMR: receive OK, receive buffer overflow, receive FIFO overflow: the causes that
/// raise the INTx line while a wake is armed.
const RX_CAUSES: u16 = (1 << 0) | (1 << 4) | (1 << 6);
/// Transmit configuration register (TCR).
const TCR: usize = 0x40;
/// Receive configuration register (RCR).
const RCR: usize = 0x44;
/// Missed packet counter (MPC); any write clears it.
const MPC: usize = 0x4C;
/// 93C46 command register (9346CR): unlocks CONFIG0-4 for writing.
const CR9346: usize = 0x50;
/// Configuration register 1 (CONFIG1).
const CONFIG1: usize = 0x52;
/// Media status register (MSR).
const MSR: usize = 0x58;
/// Transmit status of all descriptors (TSAD): OWN/TABT/TUN/TOK of all four at once.
const TX_SUMMARY: usize = 0x60;

/// CR: software reset; the chip clears it when the reset is done.
const CR_RST: u8 = 1 << 4;
/// CR: receiver enable.
const CR_RE: u8 = 1 << 3;
/// CR: transmitter enable.
const CR_TE: u8 = 1 << 2;

/// 9346CR: configuration registers writable.
const CR9346_CONFIG_WRITE: u8 = 0b11 << 6;
/// 9346CR: normal operation (configuration registers locked).
const CR9346_NORMAL: u8 = 0;
/// CONFIG1: sleep mode (RTL8139/8139A; reserved or PME enable on later parts).
const CONFIG1_SLEEP: u8 = 1 << 1;
/// CONFIG1: power down (RTL8139/8139A; VPD enable on later parts).
const CONFIG1_PWRDN: u8 = 1 << 0;
/// MSR: inverse of the link status (set when the link is down).
const MSR_LINKB: u8 = 1 << 2;

/// RCR: accept physical-match frames (to our MAC).
const RCR_APM: u32 = 1 << 1;
/// RCR: accept broadcast frames.
const RCR_AB: u32 = 1 << 3;
/// RCR: write a packet crossing the ring's end on past it (not back at the start).
const RCR_WRAP: u32 = 1 << 7;
/// RCR: unlimited receive DMA burst (MXDMA = 111).
const RCR_MXDMA_UNLIMITED: u32 = 0b111 << 8;
/// RCR: 32 KiB + 16-byte receive ring (RBLEN = 10).
const RCR_RBLEN_32K: u32 = 0b10 << 11;
/// RCR: no receive FIFO threshold: a whole packet is in the FIFO before DMA (RXFTH = 111).
const RCR_RXFTH_NONE: u32 = 0b111 << 13;
/// The receive configuration: our frames and broadcasts into the 32 KiB ring.
const RCR_VALUE: u32 =
    RCR_APM | RCR_AB | RCR_WRAP | RCR_MXDMA_UNLIMITED | RCR_RBLEN_32K | RCR_RXFTH_NONE;
/// TCR: 2048-byte transmit DMA burst (MXDMA = 111).
const TCR_MXDMA_2048: u32 = 0b111 << 8;
/// TCR: the standard 9.6 us interframe gap (IFG = 11).
const TCR_IFG_STANDARD: u32 = 0b11 << 24;
/// The transmit configuration (CRC appended by the chip: TCR bit 16 stays 0).
const TCR_VALUE: u32 = TCR_MXDMA_2048 | TCR_IFG_STANDARD;
/// TCR: clear abort (write only): a transmitter halted by a transmit abort (TSD TABT)
/// sends the aborted frame again; written only in that state.
const TCR_CLRABT: u32 = 1 << 0;

/// Bytes of the receive ring proper (RBLEN = 32K; the chip also needs 16 more).
const RX_RING: usize = 32 * 1024;
/// The longest packet the chip stores (it flags longer ones LONG, up to 4 KiB).
const RX_MAX_PACKET: usize = 4096;
/// The receive buffer: the ring, the chip's 16 bytes, and room for a packet written on
/// past the end (WRAP).
const RX_BUFFER_BYTES: usize = RX_RING + 16 + RX_MAX_PACKET;
/// Bytes of a packet's header in the ring (status, then length).
const RX_HEADER: usize = 4;
/// Bytes of the CRC the chip stores after each frame.
const CRC: usize = 4;
/// Release ring space to the chip (write CAPR) after this many consumed bytes even
/// while more packets wait, so a long batch does not starve it.
const RX_RELEASE_BYTES: usize = RX_RING / 4;
/// Receive status: receive OK.
const RX_ROK: u16 = 1 << 0;
/// Receive status: frame alignment error.
const RX_FAE: u16 = 1 << 1;
/// Receive status: CRC error.
const RX_CRC: u16 = 1 << 2;
/// Receive status: packet longer than 4 KiB.
const RX_LONG: u16 = 1 << 3;
/// Receive status: runt (shorter than 64 bytes).
const RX_RUNT: u16 = 1 << 4;
/// Receive status: invalid symbol error (100BASE-TX).
const RX_ISE: u16 = 1 << 5;
/// The length the chip writes while it is still copying the packet (early receive).
const RX_LENGTH_IN_PROGRESS: u16 = 0xFFF0;

/// Transmit descriptors (fixed by the chip).
const TX_SLOTS: usize = 4;
/// Bytes of each descriptor's buffer (a frame, rounded up; TSAD wants 4-byte alignment).
const TX_BUFFER: usize = 2048;
/// The shortest frame on the wire without the FCS: shorter ones are padded with zeros
/// (the chip does not pad).
const MIN_FRAME: usize = 60;
/// TSD: the early transmit threshold field (ERTXTH, bits 16-21) starts here; the chip
/// starts sending a frame once this many 32-byte units of it are in its FIFO (or all of
/// it).
const TSD_THRESHOLD_SHIFT: u32 = 16;
/// Bytes per unit of the early transmit threshold.
const TX_THRESHOLD_UNIT: usize = 32;
/// The early transmit threshold to begin with, in bytes: lower values risk underruns on
/// a busy bus.
const TX_THRESHOLD_START: usize = 256;
/// How far each FIFO underrun raises the early transmit threshold, in bytes.
const TX_THRESHOLD_STEP: usize = 64;
/// The highest early transmit threshold, in bytes: the first multiple of the unit at
/// least as long as the longest frame (1514 bytes), so the chip waits for the whole
/// frame and cannot underrun (the field allows up to 63 units, 2016 bytes).
const TX_THRESHOLD_MAX: usize = 1536;
/// TSD: bits 0-12 hold the frame's size.
const TSD_SIZE_MASK: u32 = 0x1FFF;
/// TX_SUMMARY: OWN (DMA done) of descriptor 0; descriptor `i` at `<< i`.
const TX_SUMMARY_OWN: u16 = 1 << 0;
/// TX_SUMMARY: transmit aborted (excessive collisions) of descriptor 0.
const TX_SUMMARY_TABT: u16 = 1 << 4;
/// TX_SUMMARY: FIFO underrun of descriptor 0.
const TX_SUMMARY_TUN: u16 = 1 << 8;
/// TX_SUMMARY: transmit OK of descriptor 0.
const TX_SUMMARY_TOK: u16 = 1 << 12;

/// How long the software reset and the receiver stop may take (the datasheet gives no
/// figure; the chip needs microseconds).
const RESET_TIMEOUT_MS: u64 = 100;
/// How long a caller may wait on frames in flight with none finishing (a send finding all
/// four descriptors in flight, or `transmit_pending`) before the chip counts as stuck and
/// is reset (a frame takes 120 us at 100 Mb/s; 16 collision retries take milliseconds).
const TX_STUCK_NS: u64 = 1_000_000_000;
/// How long the packet at the read position may stay not all in the ring (its header
/// saying the chip is still copying it in, [`RX_LENGTH_IN_PROGRESS`], or giving a length
/// that runs past the chip's write position, CBR) before the receive FIFO counts as hung
/// and the receiver is reset: the chip copies a whole packet (at most 4 KiB, already in
/// its FIFO: no receive threshold) in microseconds; Linux's 8139too waits two ticks.
const RX_COPY_TIMEOUT_NS: u64 = 10_000_000;
/// How many times a frame aborted (each abort: 16 collisions in a row) is sent again
/// before it is reported failed and the chip reset.
const TX_ABORT_RETRIES: u32 = 4;
/// How long after TCR.CLRABT the aborted descriptor's TABT may still be the last
/// attempt's, unless the chip showed the frame in flight meanwhile: a new abort takes 16
/// more collisions, each after a random backoff (some 18 ms on average at 100 Mb/s, ten
/// times that at 10 Mb/s), while the old TABT may show until the resend starts. Seen
/// within this time, TABT is not counted as another abort (at worst, a rare quick
/// abort delays the reset by one retry); otherwise a caller looping on
/// `transmit_pending` would spend every retry in a few polls of one abort.
const TX_ABORT_SETTLE_NS: u64 = 5_000_000;

/// Whether this driver takes `function`: the RTL8139 (10EC:8139).
pub fn matches(function: &Function) -> bool {
    function.header.vendor() == VENDOR_REALTEK && function.header.device_id() == DEVICE_RTL8139
}

/// Starts the RTL8139 on `function`: its one network interface.
pub fn probe(mut function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    function.enable()?;
    let regs = function.mmio(REGISTER_BAR)?;
    if regs.len() < REGISTER_WINDOW {
        return Err(DeviceError::BadBar {
            index: REGISTER_BAR as u8,
            why: "smaller than the 256-byte register window",
        });
    }
    // No MSI or MSI-X on the chip: its INTx line wakes the core.
    let line = function.intx();
    match &line {
        Ok(line) => log::info!("rtl8139: wake-ups through INTx on IRQ {}", line.irq()),
        Err(error) => log::info!("rtl8139: no wake-ups: {error}"),
    }
    let rx = function.dma(RX_BUFFER_BYTES)?;
    let tx = function.dma(TX_SLOTS * TX_BUFFER)?;
    below_4_gib(&rx)?;
    below_4_gib(&tx)?;
    let mut nic = Rtl8139::new(regs, function.platform(), function.address(), line, rx, tx);
    nic.start()?;
    nic.mac = mac_from(nic.regs.read32(IDR0), nic.regs.read16(IDR4));
    Ok(vec![Found::Net(Box::new(nic))])
}

/// Refuses `dma` unless all of it lies below 4 GiB: the chip's address registers have
/// 32 bits.
fn below_4_gib(dma: &Dma) -> Result<(), DeviceError> {
    let last = dma.phys() + dma.len() as u64 - 1;
    u32::try_from(last)
        .map(|_| ())
        .map_err(|_| DeviceError::Unsupported("DMA above 4 GiB (32-bit addresses only)"))
}

/// One RTL8139.
pub struct Rtl8139 {
    /// The registers.
    regs: Mmio,
    /// The clock, for timeouts.
    platform: &'static dyn Platform,
    /// Where the chip is on the PCI bus (for messages).
    address: Address,
    /// The MAC address.
    mac: [u8; 6],
    /// The receive ring (and its slack).
    rx: Dma,
    /// Where the next packet's header is, in `[0, RX_RING)`.
    rx_offset: usize,
    /// Where the chip writes next (CBR), as last read.
    rx_written: usize,
    /// Bytes consumed since CAPR was last written (still held from the chip).
    rx_unreleased: usize,
    /// How long the packet at `rx_offset` has not been all in the ring (its header saying
    /// the chip is still copying it in, or its length past CBR), counted from the first
    /// receive that found it so.
    rx_copy_stall: Stall,
    /// The transmit buffers, descriptor `i` at `i * TX_BUFFER`.
    tx: Dma,
    /// The descriptor the next frame goes in (the chip sends them in order).
    tx_next: usize,
    /// Descriptors handed to the chip and not yet reclaimed.
    tx_in_flight: usize,
    /// How long a caller has waited on frames in flight with none finishing, if one
    /// does (a send finding every descriptor in flight, or `transmit_pending`).
    tx_stall: Stall,
    /// How many times the oldest frame in flight was aborted and sent again.
    tx_retries: u32,
    /// The descriptor whose abort TCR.CLRABT last cleared, and when: its TABT seen
    /// again within [`TX_ABORT_SETTLE_NS`] is still that abort's, unless the chip showed
    /// the frame in flight since (which forgets this).
    tx_abort_cleared: Option<(usize, u64)>,
    /// Transmit aborts so far (logged at each power of two).
    tx_aborts: u64,
    /// The early transmit threshold given with each frame, in bytes: raised by each
    /// FIFO underrun up to [`TX_THRESHOLD_MAX`], kept across chip resets (the bus that
    /// starved the FIFO stays as busy).
    tx_threshold: usize,
    /// Transmit FIFO underruns so far (logged at each power of two).
    tx_underruns: u64,
    /// The INTx line that wakes a core, or why there is none.
    line: Result<LineWake, DeviceError>,
    /// Whether the receive causes are unmasked (from a wake's arming until a receive
    /// takes packets from the ring, delivered or not, or resets the receiver).
    armed: bool,
}

impl Rtl8139 {
    /// The chip behind `regs` at `address`, not yet started: `line` is its wake-up (or
    /// why there is none), `rx` its receive ring ([`RX_BUFFER_BYTES`]) and `tx` its
    /// transmit buffers ([`TX_SLOTS`] of [`TX_BUFFER`] bytes).
    fn new(
        regs: Mmio,
        platform: &'static dyn Platform,
        address: Address,
        line: Result<LineWake, DeviceError>,
        rx: Dma,
        tx: Dma,
    ) -> Self {
        Self {
            regs,
            platform,
            address,
            mac: [0; 6],
            rx,
            rx_offset: 0,
            rx_written: 0,
            rx_unreleased: 0,
            rx_copy_stall: Stall::default(),
            tx,
            tx_next: 0,
            tx_in_flight: 0,
            tx_stall: Stall::default(),
            tx_retries: 0,
            tx_abort_cleared: None,
            tx_aborts: 0,
            tx_threshold: TX_THRESHOLD_START,
            tx_underruns: 0,
            line,
            armed: false,
        }
    }

    /// The bus address of the receive ring (below 4 GiB: `probe` checked).
    fn rx_start(&self) -> u32 {
        self.rx.phys() as u32
    }

    /// The bus address of the transmit buffers (below 4 GiB: `probe` checked).
    fn tx_start(&self) -> u32 {
        self.tx.phys() as u32
    }

    /// Powers the chip on, resets it and brings up receive and transmit (the datasheet's
    /// initialisation order: the ring and descriptors addressed, then RE/TE, then
    /// RCR/TCR, whose thresholds the chip takes only while RE/TE are set). Interrupts stay
    /// masked (the driver polls) until a wake is armed; a wake armed before a restart
    /// (the transmit path's, [`Self::retry_aborted`] and [`Self::check_stuck`]) is armed
    /// again after it, its receive causes acknowledged and unmasked: the kernel still
    /// has the core waiting on the line.
    fn start(&mut self) -> Result<(), DeviceError> {
        let regs = &self.regs;
        regs.write8(CR9346, CR9346_CONFIG_WRITE);
        let config1 = regs.read8(CONFIG1);
        regs.write8(CONFIG1, config1 & !(CONFIG1_SLEEP | CONFIG1_PWRDN));
        regs.write8(CR9346, CR9346_NORMAL);
        self.reset()?;
        let regs = &self.regs;
        regs.write16(IMR, 0);
        regs.write32(RBSTART, self.rx_start());
        for slot in 0..TX_SLOTS {
            regs.write32(
                TX_ADDRESS0 + 4 * slot,
                self.tx_start() + (slot * TX_BUFFER) as u32,
            );
        }
        regs.write8(CR, CR_RE | CR_TE);
        regs.write32(RCR, RCR_VALUE);
        regs.write32(TCR, TCR_VALUE);
        regs.write32(MPC, 0);
        regs.write16(ISR, 0xFFFF);
        self.tx_next = 0;
        self.tx_in_flight = 0;
        self.tx_stall.progress();
        self.tx_retries = 0;
        self.tx_abort_cleared = None;
        self.restart_ring();
        if self.armed {
            self.regs.write16(IMR, RX_CAUSES);
        }
        Ok(())
    }

    /// Software reset: the chip stops receive and transmit DMA and takes its registers'
    /// defaults, and clears CR.RST when done (the datasheet); a timeout if it does not.
    fn reset(&self) -> Result<(), DeviceError> {
        self.regs.write8(CR, CR_RST);
        rexo_devio::wait_until(
            self.platform,
            "the software reset",
            RESET_TIMEOUT_MS,
            || self.regs.read8(CR) & CR_RST == 0,
        )
    }

    /// Takes the chip's write position as the ring's start (0 after a reset) and hands
    /// it the whole ring.
    fn restart_ring(&mut self) {
        self.rx_written = self.chip_write_position();
        self.rx_offset = self.rx_written;
        self.rx_copy_stall.progress();
        self.release();
    }

    /// Stops and restarts the receiver after a corrupt packet header (Realtek's
    /// recommended recovery: RE off, RE on, RCR again; the ring starts over where the
    /// chip writes next, 0 on the chip, wherever an emulator left it).
    fn reset_receiver(&mut self) -> Result<(), DeviceError> {
        self.regs.write8(CR, CR_TE);
        rexo_devio::wait_until(self.platform, "the receiver stop", RESET_TIMEOUT_MS, || {
            self.regs.read8(CR) & CR_RE == 0
        })?;
        self.regs.write8(CR, CR_RE | CR_TE);
        self.regs.write32(RBSTART, self.rx_start());
        self.regs.write32(RCR, RCR_VALUE);
        self.restart_ring();
        Ok(())
    }

    /// Gives the ring up to `rx_offset` back to the chip (CAPR).
    fn release(&mut self) {
        self.regs.write16(CAPR, capr_for(self.rx_offset));
        self.rx_unreleased = 0;
    }

    /// Re-reads where the chip writes next; returns the bytes ready from `rx_offset`.
    fn refresh_written(&mut self) -> usize {
        self.rx_written = self.chip_write_position();
        ring_distance(self.rx_offset, self.rx_written)
    }

    /// Whether a receive would act on the ring now: the packet at the read position is
    /// all in it, or its header cannot be trusted (the receive resets the receiver). A
    /// packet the chip is still copying in (its header says so, or its length runs past
    /// CBR) is not: the receive would take nothing and leave the wake unspent. Nor is
    /// one whose copy stalled: the receiver reset for it ([`Self::wait_for_copy`]) is
    /// left to the first receive after [`RX_COPY_TIMEOUT_NS`].
    fn receive_due(&mut self) -> bool {
        let ready = self.refresh_written();
        if ready == 0 {
            return false;
        }
        match parse_rx_header(self.rx.read32(self.rx_offset)) {
            RxHeader::Packet(length) => ready >= RX_HEADER + length,
            RxHeader::InProgress => false,
            RxHeader::Bad => true,
        }
    }

    /// Where the chip writes next (CBR) in the ring, down to a dword: packets start on
    /// dwords, so a CBR between two (a broken chip's) must neither put the read position
    /// off one nor count a packet's unaligned end as ready, which would move the read
    /// position past what the chip wrote, onto an earlier lap's packets.
    fn chip_write_position(&self) -> usize {
        (usize::from(self.regs.read16(CBR)) % RX_RING) & !3
    }

    /// Masks the receive causes of an armed wake once a receive has taken what raised
    /// them (packets, delivered or skipped, or a ring the receiver reset discarded): the
    /// chip's INTx falls, so another device's core on the shared line is not woken
    /// again and again by ours. ISR stays set until the next arming acknowledges it.
    fn spend_wake(&mut self) {
        if self.armed {
            self.regs.write16(IMR, 0);
            self.armed = false;
        }
    }

    /// The packet at the read position is not all in the ring yet (`why`): `Ok` while
    /// that has lasted [`RX_COPY_TIMEOUT_NS`] or less since the first receive that found
    /// it so (the receive stops there, the next one looks again); past it the receive
    /// FIFO counts as hung: the receiver is reset, the wake spent, and
    /// [`DeviceError::Timeout`]. A packet taken earlier in the same receive started the
    /// count again, so only a receive that found nothing before this packet can end the
    /// wait (an error would lose the count of the frames it delivered).
    fn wait_for_copy(&mut self, why: &str) -> Result<(), DeviceError> {
        if self.rx_copy_stall.look(self.platform.now_ns()) <= RX_COPY_TIMEOUT_NS {
            return Ok(());
        }
        log::warn!(
            "{} rtl8139: a received packet not all in the ring after {} ms ({why}); \
             resetting the receiver",
            self.address,
            RX_COPY_TIMEOUT_NS / 1_000_000
        );
        self.spend_wake();
        self.reset_receiver()?;
        Err(DeviceError::Timeout {
            what: "received packet copy (receiver reset)",
            ms: RX_COPY_TIMEOUT_NS / 1_000_000,
        })
    }

    /// Reclaims the descriptors the chip finished, oldest first (one register read for
    /// all four). A frame the chip underran went out all the same and is reclaimed as
    /// sent ([`Self::underran`]); an aborted one is sent again ([`Self::retry_aborted`]),
    /// or past its retries failed with a chip restart ([`Restarted`]).
    fn reclaim(&mut self) -> Result<Option<Restarted>, DeviceError> {
        if self.tx_in_flight == 0 {
            return Ok(None);
        }
        let summary = self.regs.read16(TX_SUMMARY);
        let before = self.tx_in_flight;
        let mut result = Ok(None);
        while self.tx_in_flight > 0 {
            let oldest = (self.tx_next + TX_SLOTS - self.tx_in_flight) % TX_SLOTS;
            match tx_slot_state(summary, oldest) {
                TxSlot::InFlight => {
                    // An aborted frame shown in flight again: the chip restarted it,
                    // so its next TABT is a new abort.
                    self.tx_abort_cleared = None;
                    break;
                }
                TxSlot::Sent => self.frame_done(),
                TxSlot::SentAfterUnderrun => {
                    self.frame_done();
                    self.underran();
                }
                TxSlot::Aborted => {
                    result = self.retry_aborted(oldest);
                    break;
                }
            }
        }
        if self.tx_in_flight < before {
            self.tx_stall.progress();
        }
        result
    }

    /// Reclaims the oldest frame in flight, which the chip sent: its retries and its
    /// cleared abort are forgotten.
    fn frame_done(&mut self) {
        self.tx_in_flight -= 1;
        self.tx_retries = 0;
        self.tx_abort_cleared = None;
    }

    /// Counts a transmit FIFO underrun (logged at each power of two) and raises the
    /// early transmit threshold by [`TX_THRESHOLD_STEP`], up to [`TX_THRESHOLD_MAX`],
    /// so the chip holds more of each later frame before it starts sending.
    fn underran(&mut self) {
        self.tx_underruns += 1;
        self.tx_threshold = raised_threshold(self.tx_threshold);
        if self.tx_underruns.is_power_of_two() {
            log::warn!(
                "{} rtl8139: transmit FIFO underrun, {} so far; early transmit threshold now \
                 {} bytes",
                self.address,
                self.tx_underruns,
                self.tx_threshold
            );
        }
    }

    /// Answers the abort of the oldest frame in flight, in descriptor `slot`: the chip's
    /// transmitter halts on it (TSD TABT, after 16 collisions in a row), and TCR.CLRABT
    /// sends it again, the descriptor staying in flight until that ends it. TABT seen
    /// again within [`TX_ABORT_SETTLE_NS`] of that, with the frame not shown in flight
    /// meanwhile, is the same abort, not counted. After [`TX_ABORT_RETRIES`] of one
    /// frame it is failed (`Status`, its TSD, [`Restarted`]) and the chip reset, which
    /// starts its transmitter again (the frames in flight and the receive ring's unread
    /// ones are lost).
    fn retry_aborted(&mut self, slot: usize) -> Result<Option<Restarted>, DeviceError> {
        let now = self.platform.now_ns();
        if let Some((cleared, at)) = self.tx_abort_cleared
            && cleared == slot
            && now.saturating_sub(at) < TX_ABORT_SETTLE_NS
        {
            return Ok(None);
        }
        self.tx_aborts += 1;
        if self.tx_aborts.is_power_of_two() {
            log::warn!(
                "{} rtl8139: transmit aborted (excessive collisions), {} so far",
                self.address,
                self.tx_aborts
            );
        }
        if self.tx_retries < TX_ABORT_RETRIES {
            self.tx_retries += 1;
            self.regs.write32(TCR, TCR_VALUE | TCR_CLRABT);
            self.tx_abort_cleared = Some((slot, now));
            return Ok(None);
        }
        let status = self.regs.read32(TSD0 + 4 * slot);
        log::warn!(
            "{} rtl8139: a frame aborted {} times; resetting the chip ({} frame(s) in \
             flight lost)",
            self.address,
            TX_ABORT_RETRIES + 1,
            self.tx_in_flight
        );
        self.start()?;
        Ok(Some(Restarted(DeviceError::Status {
            what: "transmit (aborted: excessive collisions; chip reset)",
            status,
        })))
    }

    /// Called while a caller waits on frames in flight: after [`TX_STUCK_NS`] of waiting
    /// with none finished, a full restart ([`Restarted`], [`DeviceError::Timeout`]).
    fn check_stuck(&mut self) -> Result<Option<Restarted>, DeviceError> {
        if self.tx_stall.look(self.platform.now_ns()) <= TX_STUCK_NS {
            return Ok(None);
        }
        log::warn!(
            "{} rtl8139: transmit stuck for a second; resetting the chip ({} frame(s) in \
             flight lost)",
            self.address,
            self.tx_in_flight
        );
        self.start()?;
        Ok(Some(Restarted(DeviceError::Timeout {
            what: "transmit",
            ms: TX_STUCK_NS / 1_000_000,
        })))
    }
}

impl NetDevice for Rtl8139 {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac,
            max_frame: ETHERNET_MAX_FRAME,
            queues: 1,
            link_up: self.regs.read8(MSR) & MSR_LINKB == 0,
            checksum_offload: false,
            tcp_segmentation: None,
            receive_steering: None,
            pair: None,
        }
    }

    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        check_queue(queue)?;
        let mut delivered = 0;
        let mut consumed = false;
        while delivered < budget {
            // CBR is read only once the packets known from the last read are consumed.
            let mut ready = ring_distance(self.rx_offset, self.rx_written);
            if ready == 0 {
                ready = self.refresh_written();
                if ready == 0 {
                    break;
                }
            }
            let header = self.rx.read32(self.rx_offset);
            let length = match parse_rx_header(header) {
                RxHeader::Packet(length) => length,
                RxHeader::InProgress => {
                    self.wait_for_copy("its header says the chip is still copying it in")?;
                    break;
                }
                // Frames delivered were lent to the caller: an error would lose their
                // count. The call ends with it; the next one meets the header first.
                RxHeader::Bad if delivered > 0 => break,
                RxHeader::Bad => {
                    self.spend_wake();
                    self.reset_receiver()?;
                    return Err(DeviceError::Status {
                        what: "received packet header (receiver reset)",
                        status: header,
                    });
                }
            };
            if ready < RX_HEADER + length && self.refresh_written() < RX_HEADER + length {
                self.wait_for_copy("its length runs past where the chip has written (CBR)")?;
                break;
            }
            barrier();
            // A frame longer than `max_frame` (the chip takes up to 4 KiB) is skipped:
            // callers size their copies by it.
            let frame = length - CRC;
            if frame <= ETHERNET_MAX_FRAME {
                deliver(self.rx.bytes(self.rx_offset + RX_HEADER, frame));
                delivered += 1;
            }
            consumed = true;
            self.rx_copy_stall.progress();
            let next = next_rx_offset(self.rx_offset, length);
            self.rx_unreleased += ring_distance(self.rx_offset, next);
            self.rx_offset = next;
            if self.rx_offset == self.rx_written || self.rx_unreleased >= RX_RELEASE_BYTES {
                self.release();
            }
        }
        if consumed {
            self.spend_wake();
        }
        Ok(delivered)
    }

    /// The chip takes each frame from one buffer: the segments are consecutive pieces
    /// of the slot's buffer, written there in place (no gathering, and no copy).
    fn send_segments(
        &mut self,
        queue: usize,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        if offload {
            return Err(DeviceError::Unsupported("checksum offload"));
        }
        check_queue(queue)?;
        let len = DeviceError::check_segments(segments, ETHERNET_MAX_FRAME)?;
        if self.tx_in_flight == TX_SLOTS {
            // A chip restarted here has every descriptor free: the frame goes out on it
            // (the failure that restarted it was logged, and lost only the frames in
            // flight).
            self.reclaim()?;
            if self.tx_in_flight == TX_SLOTS {
                self.check_stuck()?;
            }
            if self.tx_in_flight == TX_SLOTS {
                return Err(DeviceError::QueueFull);
            }
        }
        let slot = self.tx_next;
        let size = len.max(MIN_FRAME);
        let buffer = self.tx.bytes_mut(slot * TX_BUFFER, size);
        let (frame, padding) = buffer.split_at_mut(len);
        // A withdrawn frame leaves the slot unstarted: the next fill reuses it.
        let filled = rexo_api::device::lend_consecutive(frame, segments, |parts| fill(parts));
        if !filled.ok_or(DeviceError::TooManySegments {
            segments: segments.len(),
            max: rexo_api::MAX_SEGMENTS,
        })? {
            return Err(DeviceError::Withdrawn);
        }
        padding.fill(0);
        barrier();
        self.regs
            .write32(TSD0 + 4 * slot, tsd_command(size, self.tx_threshold));
        self.tx_next = (slot + 1) % TX_SLOTS;
        self.tx_in_flight += 1;
        Ok(())
    }

    /// The frames in flight; a chip that finishes none of them for `TX_STUCK_NS` of
    /// such calls is reset ([`DeviceError::Timeout`]), so a caller waiting for them to
    /// go does not wait forever. A restart of the chip here answers the failure that
    /// caused it, once (`Restarted`).
    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
        check_queue(queue)?;
        let mut restarted = self.reclaim()?;
        if restarted.is_none() && self.tx_in_flight > 0 {
            restarted = self.check_stuck()?;
        }
        match restarted {
            Some(Restarted(failure)) => Err(failure),
            None => Ok(self.tx_in_flight),
        }
    }

    /// The RTL8139 has no MSI or MSI-X capability: its receive causes raise its INTx
    /// line, acknowledged and unmasked here, masked again by the receive that takes
    /// packets from the ring, delivered or skipped, or resets the receiver. A packet
    /// already all in the ring when the wake is armed wakes the core at once, so the
    /// caller may sleep at once; one still being copied in raises ROK once it is in. A
    /// copy that stalls for ever raises nothing and wakes nothing: the receiver is reset
    /// for it by the first receive 10 ms (`RX_COPY_TIMEOUT_NS`) after the first one
    /// that found it so, which a caller's nap delays to the nap's end.
    fn wake_on_receive(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        check_queue(queue)?;
        let line = self.line.as_ref().map_err(|error| *error)?;
        match core {
            Some(core) => {
                self.regs.write16(ISR, RX_CAUSES);
                self.regs.write16(IMR, RX_CAUSES);
                self.armed = true;
                line.arm(core)?;
                // A packet that came before the acknowledgement (its ROK masked since the
                // receive that spent the last wake) lost its ROK to it, and the chip has
                // no register to raise a cause again: the kernel wakes the core instead,
                // or it would sleep its whole nap with the packet in the ring. The chip
                // raises ROK once the packet is in the ring, CBR past it, so a packet not
                // seen here, or seen still being copied in, raises the line itself once
                // in (a stalled one never: the next receive's wait_for_copy resets it).
                if self.receive_due() {
                    self.platform.wake_core(core);
                }
                Ok(())
            }
            None => {
                self.regs.write16(IMR, 0);
                self.armed = false;
                Ok(())
            }
        }
    }
}

impl Drop for Rtl8139 {
    /// Resets the chip so it stops DMA before its buffers go back to the kernel; a chip
    /// whose CR.RST does not clear (within `RESET_TIMEOUT_MS`) may still write the
    /// receive ring or read the transmit buffers, so both are kept for good.
    fn drop(&mut self) {
        if let Err(error) = self.reset() {
            log::warn!("{} rtl8139: reset at release: {error}", self.address);
            rexo_devio::abandon_to_device(
                &format_args!("{} rtl8139", self.address),
                [&mut self.rx, &mut self.tx],
            );
        }
    }
}

/// The chip has one receive/transmit queue pair: queue 0.
fn check_queue(queue: usize) -> Result<(), DeviceError> {
    if queue == 0 {
        Ok(())
    } else {
        Err(DeviceError::NoSuchQueue(queue))
    }
}

/// The MAC address from IDR0-3 (`low`, little-endian) and IDR4-5 (`high`).
fn mac_from(low: u32, high: u16) -> [u8; 6] {
    let [a, b, c, d] = low.to_le_bytes();
    let [e, f] = high.to_le_bytes();
    [a, b, c, d, e, f]
}

/// What a packet header in the receive ring says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RxHeader {
    /// A good packet of this many bytes (the frame and its CRC).
    Packet(usize),
    /// The chip is still copying the packet in.
    InProgress,
    /// An error status or an impossible length: the ring cannot be trusted past it.
    Bad,
}

/// Decodes the header word (status in the low half, length with CRC in the high half).
fn parse_rx_header(header: u32) -> RxHeader {
    let status = header as u16;
    let length = (header >> 16) as u16;
    if length == RX_LENGTH_IN_PROGRESS {
        return RxHeader::InProgress;
    }
    let errors = RX_FAE | RX_CRC | RX_LONG | RX_RUNT | RX_ISE;
    let length = usize::from(length);
    if status & RX_ROK == 0
        || status & errors != 0
        || !(ETHERNET_HEADER + CRC..=RX_MAX_PACKET).contains(&length)
    {
        return RxHeader::Bad;
    }
    RxHeader::Packet(length)
}

/// Where the packet after the one at `offset` of `length` bytes (frame and CRC) starts:
/// past its header, dword-aligned, back in the ring.
fn next_rx_offset(offset: usize, length: usize) -> usize {
    ((offset + RX_HEADER + length + 3) & !3) % RX_RING
}

/// Bytes from `from` to `to` going forward around the ring.
fn ring_distance(from: usize, to: usize) -> usize {
    (to + RX_RING - from) % RX_RING
}

/// CAPR for a read position: the chip adds 16 to what is written (a quirk every driver
/// and the emulators share).
fn capr_for(offset: usize) -> u16 {
    (offset as u16).wrapping_sub(16)
}

/// The TSD value that sends `size` bytes once `threshold` bytes of them (a multiple of
/// [`TX_THRESHOLD_UNIT`], at most [`TX_THRESHOLD_MAX`]) are in the chip's FIFO: OWN
/// clear (the chip's), the size and the early transmit threshold.
fn tsd_command(size: usize, threshold: usize) -> u32 {
    let units = (threshold / TX_THRESHOLD_UNIT) as u32;
    (size as u32 & TSD_SIZE_MASK) | units << TSD_THRESHOLD_SHIFT
}

/// The early transmit threshold after an underrun at `threshold`, in bytes.
fn raised_threshold(threshold: usize) -> usize {
    (threshold + TX_THRESHOLD_STEP).min(TX_THRESHOLD_MAX)
}

/// A failure the transmit path answered by restarting the chip, the frames in flight
/// lost: `transmit_pending` answers it once; a send that met it goes on, every
/// descriptor of the restarted chip free.
struct Restarted(DeviceError);

/// What became of a descriptor handed to the chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxSlot {
    /// Still being sent.
    InFlight,
    /// Sent.
    Sent,
    /// Aborted (excessive collisions): not sent, the transmitter halted on it.
    Aborted,
    /// Sent after its FIFO underran: the chip fetched the data again and sent the frame
    /// (TSD TUN with DMA done; TOK stays clear, though ISR.TOK is raised: the RTL8139
    /// datasheets' TSD).
    SentAfterUnderrun,
}

/// The state of descriptor `slot` in the TX_SUMMARY value `summary`.
fn tx_slot_state(summary: u16, slot: usize) -> TxSlot {
    let has = |bit: u16| summary & (bit << slot) != 0;
    if has(TX_SUMMARY_TOK) {
        TxSlot::Sent
    } else if has(TX_SUMMARY_TABT) {
        TxSlot::Aborted
    } else if has(TX_SUMMARY_TUN) && has(TX_SUMMARY_OWN) {
        TxSlot::SentAfterUnderrun
    } else {
        TxSlot::InFlight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_devio::host::HostPlatform;

    /// A started chip whose registers are plain memory (the test plays the chip: CBR is
    /// where it wrote up to), with its ring and buffers in host memory.
    fn chip_on_host() -> Rtl8139 {
        chip_on(HostPlatform::leaked())
    }

    /// [`chip_on_host`] on `platform`, whose clock and DMA allocations the test watches.
    fn chip_on(platform: &'static HostPlatform) -> Rtl8139 {
        chip_with_line(
            platform,
            Err(DeviceError::Unsupported("a line on the host")),
        )
    }

    /// [`chip_on`] `platform` with `line` as its wake-up (or why there is none).
    fn chip_with_line(
        platform: &'static HostPlatform,
        line: Result<LineWake, DeviceError>,
    ) -> Rtl8139 {
        Rtl8139::new(
            rexo_devio::host::registers(REGISTER_WINDOW),
            platform,
            Address::new(0, 0, 3, 0).unwrap(),
            line,
            Dma::new(platform, RX_BUFFER_BYTES).unwrap(),
            Dma::new(platform, TX_SLOTS * TX_BUFFER).unwrap(),
        )
    }

    /// [`chip_on`] `platform` with its INTx line on IRQ 11 (level-triggered, as PCI
    /// lines are), its receive wake armed for core 0.
    fn armed_chip_on(platform: &'static HostPlatform) -> Rtl8139 {
        let mut chip = chip_with_line(platform, platform.line_wake(11, true));
        chip.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(chip.regs.read16(IMR), RX_CAUSES);
        chip
    }

    /// Writes a good packet of a `frame`-byte frame (bytes `fill`) and its CRC at ring
    /// offset `at`, as the chip does; where the next one goes.
    fn put_packet(chip: &mut Rtl8139, at: usize, frame: usize, fill: u8) -> usize {
        let length = frame + CRC;
        chip.rx
            .write32(at, (length as u32) << 16 | u32::from(RX_ROK));
        chip.rx.bytes_mut(at + RX_HEADER, frame).fill(fill);
        next_rx_offset(at, length)
    }

    #[test]
    fn frames_longer_than_max_frame_are_skipped_not_delivered() {
        let mut chip = chip_on_host();
        // A 1600-byte frame (the chip keeps up to 4 KiB), then a 1514-byte one.
        let second = put_packet(&mut chip, 0, 1600, 0xAA);
        let end = put_packet(&mut chip, second, ETHERNET_MAX_FRAME, 0x55);
        chip.regs.write16(CBR, end as u16);
        let mut frames = Vec::new();
        let delivered = chip
            .receive(0, 8, &mut |frame| frames.push(frame.to_vec()))
            .unwrap();
        assert_eq!(delivered, 1);
        assert_eq!(frames, [vec![0x55; ETHERNET_MAX_FRAME]]);
        // Both went back to the chip (CAPR: the read position less 16).
        assert_eq!(chip.rx_offset, end);
        assert_eq!(chip.regs.read16(CAPR), capr_for(end));
    }

    #[test]
    fn a_receive_that_takes_only_skipped_or_bad_packets_still_masks_an_armed_wake() {
        let mut chip = armed_chip_on(HostPlatform::leaked());
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        assert_eq!(
            chip.regs.read16(IMR),
            RX_CAUSES,
            "nothing came: still armed"
        );
        // A 1600-byte frame, stored by the chip (ROK) and skipped by the driver.
        let end = put_packet(&mut chip, 0, 1600, 0xAA);
        chip.regs.write16(CBR, end as u16);
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        assert_eq!(chip.regs.read16(IMR), 0, "masked: the line falls");
        assert!(!chip.armed);
        // Armed again, a corrupt header: the receiver reset discards the ring.
        chip.wake_on_receive(0, Some(0)).unwrap();
        chip.rx.write32(end, (64 << 16) | u32::from(RX_CRC));
        chip.regs.write16(CBR, (end + 256) as u16);
        assert!(chip.receive(0, 8, &mut |_| panic!("no frame")).is_err());
        assert_eq!(chip.regs.read16(IMR), 0, "masked after the receiver reset");
        assert!(!chip.armed);
    }

    /// Before: arming the wake acknowledged ISR's receive causes (write one to clear),
    /// with them the ROK of a packet that came while the last wake was spent (IMR 0),
    /// then unmasked them: nothing was pending, the line never rose, and the core slept
    /// its whole nap with the packet in the ring. Now the arming wakes the core itself.
    #[test]
    fn arming_with_a_packet_in_the_ring_wakes_the_core_at_once() {
        let platform = HostPlatform::leaked();
        let mut chip = armed_chip_on(platform);
        assert!(platform.take_woken().is_empty(), "an empty ring: no wake");
        // A packet taken spends the wake.
        let second = put_packet(&mut chip, 0, 64, 0x11);
        chip.regs.write16(CBR, second as u16);
        assert_eq!(chip.receive(0, 8, &mut |_| {}), Ok(1));
        assert_eq!(chip.regs.read16(IMR), 0, "spent");
        // The next packet comes while the wake is spent, before it is armed again.
        let end = put_packet(&mut chip, second, 64, 0x22);
        chip.regs.write16(CBR, end as u16);
        chip.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(platform.take_woken(), [0], "woken for the packet waiting");
        assert_eq!(chip.regs.read16(IMR), RX_CAUSES, "and armed for the next");
        assert_eq!(chip.receive(0, 8, &mut |_| {}), Ok(1), "still in the ring");
    }

    #[test]
    fn arming_wakes_the_core_only_for_a_packet_all_in_the_ring() {
        let platform = HostPlatform::leaked();
        let mut chip = armed_chip_on(platform);
        // CBR past a packet's header, short of its end: first with the header the chip
        // leaves while it copies, then with its length written. The chip raises ROK
        // once the packet is in, so no wake is due yet: one would find nothing to
        // take, and arming again would wake again until the copy ended.
        put_header_in_progress(&mut chip, 0);
        chip.regs.write16(CBR, 0x20);
        for what in ["header in progress", "length past CBR"] {
            chip.wake_on_receive(0, Some(0)).unwrap();
            assert_eq!(platform.take_woken(), [], "{what}");
            assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
            put_packet(&mut chip, 0, 64, 0x11);
        }
        // All in: the wake is due.
        let end = next_rx_offset(0, 64 + CRC);
        chip.regs.write16(CBR, end as u16);
        chip.wake_on_receive(0, Some(0)).unwrap();
        assert_eq!(platform.take_woken(), [0], "all in");
        assert_eq!(chip.receive(0, 8, &mut |_| {}), Ok(1));
    }

    /// Writes the header the chip leaves while it still copies a packet in, at ring
    /// offset `at`.
    fn put_header_in_progress(chip: &mut Rtl8139, at: usize) {
        chip.rx.write32(at, u32::from(RX_LENGTH_IN_PROGRESS) << 16);
    }

    #[test]
    fn a_header_stuck_in_progress_past_the_timeout_resets_the_receiver_once() {
        let platform = HostPlatform::leaked();
        let mut chip = armed_chip_on(platform);
        let end = 0x400;
        chip.regs.write16(CBR, end as u16);
        put_header_in_progress(&mut chip, 0);
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        // The chip finishes that packet in time: delivered, and the count starts over
        // at the next header in progress.
        platform.advance_clock(RX_COPY_TIMEOUT_NS * 3 / 4);
        let second = put_packet(&mut chip, 0, 60, 0x11);
        put_header_in_progress(&mut chip, second);
        assert_eq!(chip.receive(0, 8, &mut |_| ()), Ok(1));
        chip.wake_on_receive(0, Some(0)).unwrap();
        platform.advance_clock(RX_COPY_TIMEOUT_NS * 3 / 4);
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
        assert_eq!(chip.rx_offset, second, "still waiting");
        // That one never finishes: the receiver is reset, the ring starts over where the
        // chip writes next, the wake is spent, and the error comes once.
        platform.advance_clock(RX_COPY_TIMEOUT_NS);
        let timeout = DeviceError::Timeout {
            what: "received packet copy (receiver reset)",
            ms: RX_COPY_TIMEOUT_NS / 1_000_000,
        };
        assert_eq!(
            chip.receive(0, 8, &mut |_| panic!("no frame")),
            Err(timeout)
        );
        assert_eq!(chip.regs.read8(CR), CR_RE | CR_TE);
        assert_eq!(chip.rx_offset, end);
        assert_eq!(chip.regs.read16(CAPR), capr_for(end));
        assert_eq!(chip.regs.read16(IMR), 0);
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
    }

    /// Before: a header whose length ran past the chip's write position (CBR) was
    /// waited on with no limit: a chip that never wrote the rest (or a header whose
    /// length was wrong) stopped receiving for good, every call breaking off there. Now
    /// it is waited on as a header in progress is: up to the timeout, then the receiver
    /// is reset once.
    #[test]
    fn a_packet_longer_than_the_chip_has_written_is_waited_for_only_until_the_timeout() {
        let platform = HostPlatform::leaked();
        let mut chip = armed_chip_on(platform);
        // A good header of a 1000-byte frame, the chip's write position 64 bytes on.
        put_packet(&mut chip, 0, 1000, 0x33);
        chip.regs.write16(CBR, 64);
        assert_eq!(
            chip.receive(0, 8, &mut |_| panic!("not all written")),
            Ok(0)
        );
        // The chip writes the rest in time: delivered.
        platform.advance_clock(RX_COPY_TIMEOUT_NS * 3 / 4);
        let second = next_rx_offset(0, 1000 + CRC);
        chip.regs.write16(CBR, second as u16);
        assert_eq!(
            chip.receive(0, 8, &mut |frame| assert_eq!(frame.len(), 1000)),
            Ok(1)
        );
        // The next one's header comes, its length past CBR for good.
        chip.wake_on_receive(0, Some(0)).unwrap();
        put_packet(&mut chip, second, 1000, 0x44);
        let end = second + 64;
        chip.regs.write16(CBR, end as u16);
        platform.advance_clock(RX_COPY_TIMEOUT_NS * 3 / 4);
        assert_eq!(
            chip.receive(0, 8, &mut |_| panic!("not all written")),
            Ok(0)
        );
        assert_eq!(chip.rx_offset, second, "still waiting");
        assert_eq!(
            chip.regs.read16(IMR),
            RX_CAUSES,
            "nothing taken: still armed"
        );
        platform.advance_clock(RX_COPY_TIMEOUT_NS);
        let timeout = DeviceError::Timeout {
            what: "received packet copy (receiver reset)",
            ms: RX_COPY_TIMEOUT_NS / 1_000_000,
        };
        assert_eq!(
            chip.receive(0, 8, &mut |_| panic!("not all written")),
            Err(timeout)
        );
        assert_eq!(chip.regs.read8(CR), CR_RE | CR_TE);
        assert_eq!(
            chip.rx_offset, end,
            "the ring starts over where the chip writes"
        );
        assert_eq!(chip.regs.read16(CAPR), capr_for(end));
        assert_eq!(chip.regs.read16(IMR), 0, "the wake spent");
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
    }

    #[test]
    fn a_bad_header_after_frames_ends_the_call_with_their_count_then_resets_the_receiver() {
        let mut chip = chip_on_host();
        let second = put_packet(&mut chip, 0, 60, 0x11);
        let bad = put_packet(&mut chip, second, 100, 0x22);
        // A CRC error where the third packet's header is, and the chip wrote on past it.
        chip.rx.write32(bad, (64 << 16) | u32::from(RX_CRC));
        let end = bad + 256;
        chip.regs.write16(CBR, end as u16);
        let mut frames = Vec::new();
        let delivered = chip.receive(0, 8, &mut |frame| frames.push(frame.to_vec()));
        assert_eq!(delivered, Ok(2));
        assert_eq!(frames, [vec![0x11; 60], vec![0x22; 100]]);
        assert_eq!(chip.rx_offset, bad, "stopped at the bad header");
        // The next call meets it first: the receiver is reset, the ring starts over
        // where the chip writes next, all of it handed back.
        let error = DeviceError::Status {
            what: "received packet header (receiver reset)",
            status: (64 << 16) | u32::from(RX_CRC),
        };
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Err(error));
        assert_eq!(chip.regs.read8(CR), CR_RE | CR_TE);
        assert_eq!(chip.rx_offset, end);
        assert_eq!(chip.regs.read16(CAPR), capr_for(end));
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Ok(0));
    }

    #[test]
    fn a_chip_write_position_off_a_dword_neither_misaligns_the_ring_nor_overshoots_it() {
        let mut chip = chip_on_host();
        // A packet of a 61-byte frame, which a chip ends at 72 (dword-aligned), and an
        // earlier lap's packet there; this chip says it wrote up to 69 only.
        let stale = put_packet(&mut chip, 0, 61, 0x11);
        put_packet(&mut chip, stale, 60, 0xEE);
        chip.regs.write16(CBR, 69);
        let mut frames = Vec::new();
        let delivered = chip.receive(0, 8, &mut |frame| frames.push(frame.to_vec()));
        assert!(
            frames.iter().all(|frame| !frame.contains(&0xEE)),
            "a frame from past the chip's write position was delivered"
        );
        assert_eq!(delivered, Ok(frames.len()));
        // A corrupt header, and a receiver restarted with CBR off a dword: the next
        // header is read at a dword (a bad one here: an error, not a panic).
        let mut chip = chip_on_host();
        chip.rx.write32(0, (64 << 16) | u32::from(RX_CRC));
        chip.regs.write16(CBR, 0x102);
        assert!(chip.receive(0, 8, &mut |_| ()).is_err());
        chip.regs.write16(CBR, 0x200);
        let error = DeviceError::Status {
            what: "received packet header (receiver reset)",
            status: 0,
        };
        assert_eq!(chip.receive(0, 8, &mut |_| panic!("no frame")), Err(error));
    }

    #[test]
    fn a_chip_that_does_not_reset_keeps_its_memory_and_one_that_resets_gives_it_back() {
        for (resets, live_after) in [(false, 2), (true, 0)] {
            let platform = HostPlatform::leaked();
            let chip = chip_on(platform);
            if resets {
                // The chip clears CR.RST by itself a moment after it is set; plain
                // memory alone keeps it set.
                let regs = chip.regs.clone();
                platform.on_clock_reading(move || regs.write8(CR, regs.read8(CR) & !CR_RST));
            }
            assert_eq!(
                platform.live(),
                2,
                "the receive ring and the transmit buffers"
            );
            drop(chip);
            assert_eq!(platform.live(), live_after, "resets: {resets}");
        }
    }

    #[test]
    fn a_reset_that_finishes_while_the_core_is_away_past_the_deadline_is_taken() {
        let platform = HostPlatform::leaked();
        let chip = chip_on(platform);
        let regs = chip.regs.clone();
        let readings = std::sync::atomic::AtomicU32::new(0);
        platform.on_clock_reading(move || {
            // At the second reading the core comes back from far away, and the chip has
            // finished its reset meanwhile.
            if readings.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 1 {
                platform.advance_clock(RESET_TIMEOUT_MS * 2_000_000);
                regs.write8(CR, regs.read8(CR) & !CR_RST);
            }
        });
        assert_eq!(chip.reset(), Ok(()));
    }

    /// [`chip_on`] a fresh platform, as a chip whose CR.RST clears a moment after it is
    /// set (so a reset finishes); and the platform, whose clock the test moves.
    fn chip_that_resets() -> (Rtl8139, &'static HostPlatform) {
        let platform = HostPlatform::leaked();
        let chip = chip_on(platform);
        let regs = chip.regs.clone();
        platform.on_clock_reading(move || regs.write8(CR, regs.read8(CR) & !CR_RST));
        (chip, platform)
    }

    /// Sends a 60-byte frame of `byte`s on `chip`.
    fn send(chip: &mut Rtl8139, byte: u8) -> Result<(), DeviceError> {
        chip.transmit(0, 60, &mut |frame| frame.fill(byte))
    }

    #[test]
    fn a_frame_the_fifo_underran_counts_as_sent_and_raises_the_early_transmit_threshold() {
        let mut chip = chip_on_host();
        for byte in 1..=4 {
            send(&mut chip, byte).unwrap();
        }
        // Descriptor 0's FIFO underran: the chip fetched the frame again and sent it
        // (TUN and OWN, no TOK).
        chip.regs
            .write16(TX_SUMMARY, TX_SUMMARY_TUN | TX_SUMMARY_OWN);
        assert_eq!(send(&mut chip, 5), Ok(()), "the freed descriptor takes it");
        let raised = TX_THRESHOLD_START + TX_THRESHOLD_STEP;
        assert_eq!(chip.regs.read32(TSD0), tsd_command(60, raised));
        assert_eq!(chip.transmit_pending(0), Ok(4));
        assert_eq!((chip.tx_underruns, chip.tx_threshold), (1, raised));
    }

    #[test]
    fn an_aborted_frame_is_sent_again_and_stays_in_flight_until_it_goes() {
        let (mut chip, _) = chip_that_resets();
        send(&mut chip, 0x11).unwrap();
        send(&mut chip, 0x22).unwrap();
        // Descriptor 0 aborted after 16 collisions: the transmitter halts there.
        chip.regs.write16(TX_SUMMARY, TX_SUMMARY_TABT);
        assert_eq!(chip.transmit_pending(0), Ok(2), "both still in flight");
        assert_eq!(chip.regs.read32(TCR), TCR_VALUE | TCR_CLRABT, "sent again");
        assert_eq!(chip.tx_aborts, 1);
        // The second attempt goes, then the frame after it.
        chip.regs.write32(TCR, TCR_VALUE);
        chip.regs
            .write16(TX_SUMMARY, TX_SUMMARY_TOK | TX_SUMMARY_TOK << 1);
        assert_eq!(chip.transmit_pending(0), Ok(0));
        assert_eq!(chip.regs.read32(TCR), TCR_VALUE, "no abort to clear");
        assert_eq!(chip.tx_next, 2, "no reset");
    }

    #[test]
    fn a_frame_aborted_past_its_retries_fails_and_the_chip_is_reset() {
        let (mut chip, platform) = chip_that_resets();
        send(&mut chip, 0x11).unwrap();
        chip.regs.write32(TSD0, 1 << 30);
        for attempt in 1..=TX_ABORT_RETRIES {
            chip.regs.write16(TX_SUMMARY, TX_SUMMARY_TABT);
            assert_eq!(chip.transmit_pending(0), Ok(1), "abort {attempt}");
            assert_eq!(chip.tx_retries, attempt);
            // The chip takes CLRABT and sends the frame again; the next abort comes
            // after the settling time, or after a poll that saw the frame in flight.
            chip.regs.write32(TCR, TCR_VALUE);
            if attempt % 2 == 0 {
                chip.regs.write16(TX_SUMMARY, 0);
                assert_eq!(chip.transmit_pending(0), Ok(1), "resent {attempt}");
            } else {
                platform.advance_clock(TX_ABORT_SETTLE_NS);
            }
        }
        chip.regs.write16(TX_SUMMARY, TX_SUMMARY_TABT);
        let error = DeviceError::Status {
            what: "transmit (aborted: excessive collisions; chip reset)",
            status: 1 << 30,
        };
        assert_eq!(chip.transmit_pending(0), Err(error));
        assert_eq!(
            (chip.tx_in_flight, chip.tx_next, chip.tx_retries),
            (0, 0, 0)
        );
        assert_eq!(chip.regs.read32(TCR), TCR_VALUE, "started again");
        // The next frame goes out in descriptor 0, as on the reset chip.
        chip.regs.write16(TX_SUMMARY, 0);
        send(&mut chip, 0x22).unwrap();
        assert_eq!(chip.regs.read32(TSD0), tsd_command(60, TX_THRESHOLD_START));
    }

    /// Before: a send that found all four descriptors in flight and restarted the chip
    /// (the oldest frame aborted past its retries, or the transmitter stuck for a second)
    /// failed with that failure, its own frame not sent though the restart had freed
    /// every descriptor (rexo-net drops a frame whose send fails so). Now it goes out on
    /// the restarted chip, in descriptor 0; `transmit_pending` still answers the failure.
    #[test]
    fn a_send_that_restarts_the_chip_goes_out_on_the_restarted_chip() {
        // The oldest frame aborted past its retries, met by sends.
        let (mut chip, platform) = chip_that_resets();
        for byte in 1..=4 {
            send(&mut chip, byte).unwrap();
        }
        for attempt in 1..=TX_ABORT_RETRIES {
            chip.regs.write16(TX_SUMMARY, TX_SUMMARY_TABT);
            assert_eq!(send(&mut chip, 0x55), Err(DeviceError::QueueFull));
            assert_eq!(chip.tx_retries, attempt);
            chip.regs.write32(TCR, TCR_VALUE);
            platform.advance_clock(TX_ABORT_SETTLE_NS);
        }
        chip.regs.write16(TX_SUMMARY, TX_SUMMARY_TABT);
        assert_eq!(send(&mut chip, 0x55), Ok(()), "sent on the restarted chip");
        assert_eq!(chip.regs.read32(TCR), TCR_VALUE, "started again");
        assert_eq!(chip.regs.read32(TSD0), tsd_command(60, TX_THRESHOLD_START));
        assert_eq!(chip.tx.bytes(0, 60), [0x55; 60]);
        chip.regs.write16(TX_SUMMARY, TX_SUMMARY_TOK);
        assert_eq!(chip.transmit_pending(0), Ok(0), "it went");
        // A transmitter stuck for a second, met by a send.
        let (mut chip, platform) = chip_that_resets();
        for byte in 1..=4 {
            send(&mut chip, byte).unwrap();
        }
        assert_eq!(send(&mut chip, 0x66), Err(DeviceError::QueueFull));
        platform.advance_clock(2 * TX_STUCK_NS);
        assert_eq!(send(&mut chip, 0x66), Ok(()), "sent on the restarted chip");
        assert_eq!((chip.tx_next, chip.tx_in_flight), (1, 1));
        assert_eq!(chip.tx.bytes(0, 60), [0x66; 60]);
    }

    #[test]
    fn a_chip_reset_by_the_transmit_path_keeps_an_armed_wake_armed_and_a_spent_one_masked() {
        let platform = HostPlatform::leaked();
        let mut chip = armed_chip_on(platform);
        let regs = chip.regs.clone();
        platform.on_clock_reading(move || regs.write8(CR, regs.read8(CR) & !CR_RST));
        for armed in [true, false] {
            if !armed {
                chip.wake_on_receive(0, None).unwrap();
            }
            send(&mut chip, 0x11).unwrap();
            assert_eq!(chip.transmit_pending(0), Ok(1), "armed: {armed}");
            platform.advance_clock(2 * TX_STUCK_NS);
            assert!(
                matches!(chip.transmit_pending(0), Err(DeviceError::Timeout { .. })),
                "reset (armed: {armed})"
            );
            let imr = if armed { RX_CAUSES } else { 0 };
            assert_eq!(chip.regs.read16(IMR), imr, "armed: {armed}");
            assert_eq!(chip.armed, armed);
        }
    }

    #[test]
    fn polls_within_the_settling_time_of_an_abort_count_no_more_retries() {
        let (mut chip, platform) = chip_that_resets();
        send(&mut chip, 0x11).unwrap();
        chip.regs.write16(TX_SUMMARY, TX_SUMMARY_TABT);
        assert_eq!(chip.transmit_pending(0), Ok(1));
        chip.regs.write32(TCR, TCR_VALUE);
        // The first attempt's TABT still shows while the resend runs.
        for poll in 0..2 * TX_ABORT_RETRIES {
            assert_eq!(chip.transmit_pending(0), Ok(1), "poll {poll}");
        }
        assert_eq!((chip.tx_retries, chip.tx_aborts), (1, 1));
        assert_eq!(chip.regs.read32(TCR), TCR_VALUE, "CLRABT written once");
        assert_eq!(chip.tx_next, 1, "no reset");
        // Past the settling time TABT is a new abort.
        platform.advance_clock(TX_ABORT_SETTLE_NS);
        assert_eq!(chip.transmit_pending(0), Ok(1));
        assert_eq!((chip.tx_retries, chip.tx_aborts), (2, 2));
        assert_eq!(chip.regs.read32(TCR), TCR_VALUE | TCR_CLRABT);
    }

    #[test]
    fn a_transmitter_that_never_finishes_ends_a_wait_on_transmit_pending() {
        let (mut chip, platform) = chip_that_resets();
        send(&mut chip, 0x11).unwrap();
        assert_eq!(chip.transmit_pending(0), Ok(1));
        platform.advance_clock(TX_STUCK_NS / 2);
        assert_eq!(chip.transmit_pending(0), Ok(1), "not stuck yet");
        platform.advance_clock(TX_STUCK_NS);
        let timeout = DeviceError::Timeout {
            what: "transmit",
            ms: TX_STUCK_NS / 1_000_000,
        };
        assert_eq!(chip.transmit_pending(0), Err(timeout));
        assert_eq!(chip.transmit_pending(0), Ok(0), "reset: nothing in flight");
        // A frame that finishes restarts the count: no reset however long the wait was.
        send(&mut chip, 0x22).unwrap();
        assert_eq!(chip.transmit_pending(0), Ok(1));
        platform.advance_clock(2 * TX_STUCK_NS);
        chip.regs.write16(TX_SUMMARY, TX_SUMMARY_TOK);
        assert_eq!(chip.transmit_pending(0), Ok(0));
    }

    #[test]
    fn mac_is_little_endian_across_the_id_registers() {
        assert_eq!(
            mac_from(0x5634_1252, 0x0000_9A78),
            [0x52, 0x12, 0x34, 0x56, 0x78, 0x9A]
        );
    }

    #[test]
    fn packet_headers_decode() {
        // ROK + physical match, 64 bytes with CRC.
        assert_eq!(parse_rx_header(0x0040_4001), RxHeader::Packet(64));
        assert_eq!(parse_rx_header(0x05EE_2001), RxHeader::Packet(1518));
        assert_eq!(parse_rx_header(0xFFF0_0000), RxHeader::InProgress);
        // CRC error, no ROK.
        assert_eq!(parse_rx_header(0x0040_0004), RxHeader::Bad);
        // ROK with a runt flag.
        assert_eq!(parse_rx_header(0x0040_0011), RxHeader::Bad);
        // Shorter than a header plus CRC, longer than the chip stores, or empty memory.
        assert_eq!(parse_rx_header(0x0011_0001), RxHeader::Bad);
        assert_eq!(parse_rx_header(0x1001_0001), RxHeader::Bad);
        assert_eq!(parse_rx_header(0), RxHeader::Bad);
    }

    #[test]
    fn ring_positions_align_and_wrap() {
        assert_eq!(next_rx_offset(0, 64), 68);
        assert_eq!(next_rx_offset(0, 65), 72);
        assert_eq!(
            next_rx_offset(RX_RING - 8, 1518),
            (RX_RING - 8 + 4 + 1520) % RX_RING
        );
        assert_eq!(ring_distance(100, 100), 0);
        assert_eq!(ring_distance(RX_RING - 4, 8), 12);
        assert_eq!(ring_distance(8, RX_RING - 4), RX_RING - 12);
        assert_eq!(capr_for(0), 0xFFF0);
        assert_eq!(capr_for(0x100), 0xF0);
    }

    #[test]
    fn transmit_descriptors_encode_and_decode() {
        assert_eq!(tsd_command(60, 256), 60 | 8 << 16);
        assert_eq!(tsd_command(1514, 320), 1514 | 10 << 16);
        assert_eq!(tsd_command(1514, TX_THRESHOLD_MAX), 1514 | 48 << 16);
        assert_eq!(raised_threshold(TX_THRESHOLD_START), 320);
        assert_eq!(raised_threshold(1472), TX_THRESHOLD_MAX);
        assert_eq!(raised_threshold(TX_THRESHOLD_MAX), TX_THRESHOLD_MAX);
        // Descriptor 2 sent, 1 aborted, 3 DMA done but not yet on the wire, 0 fresh.
        let summary = (1 << 14) | (1 << 5) | (1 << 3) | (1 << 2);
        assert_eq!(tx_slot_state(summary, 2), TxSlot::Sent);
        assert_eq!(tx_slot_state(summary, 1), TxSlot::Aborted);
        assert_eq!(tx_slot_state(summary, 3), TxSlot::InFlight);
        assert_eq!(tx_slot_state(summary, 0), TxSlot::InFlight);
        // Underrun with the descriptor back with the driver: sent all the same.
        assert_eq!(tx_slot_state((1 << 8) | 1, 0), TxSlot::SentAfterUnderrun);
    }
}
