//! xHCI USB host controllers (PCI class 0C.03.30) with HID boot-protocol keyboards.
//!
//! The controller is taken from the firmware (USB Legacy Support capability), has its
//! ports switched over from EHCI where it shares them (Intel's, `routing`), is halted,
//! reset and started with a command ring, one event ring segment on interrupter 0
//! (polled: its interrupt stays off) and scratchpad buffers. Each controller is one
//! [`KeyboardDevice`], returned at once, whether or not a device is connected; its
//! polls attach each root port with a device connected once its connection has been
//! stable for 100 ms (the connect debounce of USB 2.0 7.1.7.3, which thus holds up
//! neither the probe nor the boot): the port is reset and its device addressed; a
//! device whose configuration has a boot keyboard interface is configured (boot
//! protocol, idle rate 0) and its interrupt IN endpoint keeps `REPORTS_IN_FLIGHT`
//! Normal TRBs queued for 8-byte boot reports. Reading the keyboard device polls the
//! event ring in DMA memory (no register access while nothing happens), turns new key
//! presses into terminal bytes (and a held key into its repeats, `hid`) and queues
//! the TRBs again (one doorbell per keyboard per poll); it types nothing when no device
//! was a boot keyboard. Devices are hot-plugged: a Port Status Change Event has the
//! poll read the port, clear its change bits and attach a device connected (after the
//! same debounce) or give back the slot of one unplugged.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod debounce;
mod hid;
mod restarts;
mod ring;
mod routing;
mod spec;
mod stray;
mod usb;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::{DeviceError, KeyboardDevice};
use rexo_devio::{DeviceFunction, Dma, Found, Mmio, Platform, barrier, pause, wait_until};
use rexo_pci::{Address, Function};

use crate::debounce::Connections;
use crate::restarts::{Decision, Restarts};
use crate::ring::{EventRing, InFlight, ProducerRing};
use crate::spec::{Trb, cap, completion, endpoint, endpoint_state, ext, op, port, rt, trb};
use crate::stray::{Stray, StrayEvents};

/// PCI class, subclass and programming interface of an xHCI controller.
const CLASS_XHCI: (u8, u8, u8) = (0x0C, 0x03, 0x30);
/// TRBs of the command ring (one page; the driver runs one command at a time).
const COMMAND_RING_TRBS: usize = 256;
/// TRBs of the event ring's one segment (one page).
const EVENT_RING_TRBS: usize = 256;
/// TRBs of each endpoint 0 transfer ring (one page).
const CONTROL_RING_TRBS: usize = 256;
/// TRBs of each keyboard's report ring; entry `i` receives into report buffer `i`.
const REPORT_RING_TRBS: usize = 64;
/// Bytes per report buffer: the largest full-speed interrupt packet, so 64 buffers
/// fill one page.
const REPORT_STRIDE: usize = 64;
/// Normal TRBs kept queued per keyboard, so reports arriving between polls wait in
/// memory rather than being NAKed.
const REPORTS_IN_FLIGHT: usize = 8;
/// Bytes of a boot keyboard report (HID 1.11 B.1).
const BOOT_REPORT_LEN: u16 = 8;
/// Bytes of the descriptor buffer of each device (configurations longer are cut).
const DESCRIPTOR_BUFFER: usize = 4096;
/// Bytes of each device's input and output contexts: 33 contexts of up to 64 bytes.
const CONTEXT_BYTES: usize = 33 * 64;
/// How long the firmware may take to give the controller up.
const HANDOFF_TIMEOUT_MS: u64 = 1_000;
/// How long halting, resetting and starting the controller may take.
const STATE_TIMEOUT_MS: u64 = 1_000;
/// How long the controller may take to be ready (USBSTS.CNR clear) when the driver first
/// looks, before it writes any operational register (xHCI 1.2 4.2; Linux's handoff
/// waits as long); past it the driver warns and halts and resets it all the same, as
/// Linux does.
const READY_TIMEOUT_MS: u64 = 5_000;
/// How long the controller is left alone after HCRST is written: Intel's may hang on a
/// register access within 1 ms of it (Linux's xhci_reset waits 1 ms for them,
/// libpayload does on every x86 controller); waited on every controller, once a probe.
const RESET_SETTLE_NS: u64 = 1_000_000;
/// How long a command may take.
const COMMAND_TIMEOUT_MS: u64 = 1_000;
/// How long aborting a timed-out command may take, until CRCR.CRR clears and again
/// until the Command Ring Stopped event (xHCI 4.6.1.2 suggests 5 s).
const ABORT_TIMEOUT_MS: u64 = 5_000;
/// How long a control transfer may take.
const TRANSFER_TIMEOUT_MS: u64 = 1_000;
/// How long a port reset may take.
const PORT_RESET_TIMEOUT_MS: u64 = 500;
/// The reset recovery time before a device is addressed (USB 2.0 7.1.7.3: 10 ms).
const PORT_RECOVERY_NS: u64 = 10_000_000;
/// How long a device is left after Address Device before its first request: USB 2.0
/// 9.2.6.3 gives it 2 ms to take its address (SetAddress recovery), some devices need
/// more, and Linux waits 10 ms.
const ADDRESS_RECOVERY_NS: u64 = 10_000_000;
/// How often an idle poll reads USBSTS for a controller error.
const HEALTH_CHECK_NS: u64 = 100_000_000;
/// Extended capabilities looked at before the list is taken as broken.
const MAX_EXTENDED_CAPABILITIES: usize = 64;
/// Bytes of a page as the controller sees it (PAGESIZE bit 0).
const PAGE: usize = 4096;

/// Whether this driver takes `function`: any xHCI controller.
pub fn matches(function: &Function) -> bool {
    function.header.class() == CLASS_XHCI
}

/// Starts the controller on `function`: one keyboard device for all the boot
/// keyboards on its root ports, attached by its polls once their connect debounce is
/// over, those connected now and those plugged in later alike. An Intel controller that
/// shares its ports with EHCI has them switched over before its reset (`routing`); a
/// configuration-space error there is warned of and the controller started all the same.
pub fn probe(mut function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    function.enable()?;
    let bar = function.mmio(0)?;
    let address = function.address();
    let header = function.function().header;
    let switch_ports =
        || routing::switch_ports_or_warn(address, header.vendor(), header.device_id(), &function);
    let mut xhci = Xhci::start(bar, function.platform(), address, switch_ports)?;
    log::info!(
        "{address} xhci: {} ports, {} slots, {}-byte contexts, {} scratchpad pages",
        xhci.ports,
        xhci.max_slots,
        xhci.context_size,
        xhci.scratchpads
    );
    xhci.note_connections();
    Ok(vec![Found::Keyboard(Box::new(xhci))])
}

/// The controller's register windows (xHCI 5).
struct Registers {
    /// The operational registers.
    op: Mmio,
    /// The root ports' register sets.
    ports: Mmio,
    /// Interrupter 0's register set.
    interrupter: Mmio,
    /// The doorbell array (0 is the controller's, n is slot n's).
    doorbells: Mmio,
}

impl Registers {
    /// Writes the 64-bit operational or runtime register at `offset` of `window` as two
    /// halves, low first (xHCI 5.1: 32-bit accesses work with every controller).
    fn write64(window: &Mmio, offset: usize, value: u64) {
        window.write32(offset, value as u32);
        window.write32(offset + 4, (value >> 32) as u32);
    }

    /// PORTSC of `port` (1-based).
    fn portsc(&self, port: u8) -> u32 {
        self.ports.read32((usize::from(port) - 1) * op::PORT_STRIDE)
    }

    /// Writes PORTSC of `port`: the bits to keep from `current`, plus `set`.
    fn set_portsc(&self, port: u8, current: u32, set: u32) {
        self.ports.write32(
            (usize::from(port) - 1) * op::PORT_STRIDE,
            (current & port::PRESERVE) | set,
        );
    }

    /// Clears the change bits set in `status`, PORTSC of `port` as just read, when
    /// there are any (write 1 to clear; the other change bits written 0, PED not
    /// written 1, which would disable the port). Returns them.
    fn clear_changes(&self, port: u8, status: u32) -> u32 {
        let changes = status & port::CHANGES;
        if changes != 0 {
            self.set_portsc(port, status, changes);
        }
        changes
    }
}

/// A keyboard's interrupt IN endpoint and its reports.
struct Keyboard {
    /// What its configuration descriptor says.
    descriptor: usb::BootKeyboard,
    /// Bytes each Normal TRB receives.
    report_len: u32,
    /// The endpoint's transfer ring.
    ring: ProducerRing,
    /// Its report TRBs the controller holds.
    in_flight: InFlight,
    /// Report buffer `i` (at `i * REPORT_STRIDE`) belongs to ring entry `i`.
    reports: Dma,
    /// Key state between reports.
    decoder: hid::BootKeyboard,
    /// TRBs queued since the doorbell was last rung.
    doorbell_due: bool,
    /// The completion code that halted the endpoint, until it is restarted.
    halted: Option<u8>,
    /// When its halted endpoint is restarted, or the keyboard given up.
    restarts: Restarts,
    /// A restart of its endpoint is under way: no report TRB is queued until it
    /// ends ([`Xhci::restart_reports`]).
    restarting: bool,
}

/// One addressed device and the memory the controller holds for it.
struct Device {
    /// Its slot.
    slot: u8,
    /// Its root port (1-based).
    port: u8,
    /// Its port speed ID.
    speed: u8,
    /// The output device context (the controller writes it).
    output: Dma,
    /// The input context for commands.
    input: Dma,
    /// Endpoint 0's transfer ring.
    control: ProducerRing,
    /// Endpoint 0's max packet size.
    control_max_packet: u16,
    /// Descriptors read into it.
    buffer: Dma,
    /// The boot keyboard, when it is one.
    keyboard: Option<Keyboard>,
    /// Memory of a keyboard not used, kept as long as the controller may use it: the
    /// report ring of a Configure Endpoint that failed or timed out, until the slot is
    /// disabled ([`Xhci::configure_keyboard`]); the ring and the report buffers of a
    /// keyboard given up whose slot Disable Slot could not free ([`Xhci::drop_keyboard`]).
    kept: Vec<Dma>,
}

/// A running controller and its devices; dropping it halts the controller before its
/// memory goes back.
struct Xhci {
    /// The PCI function, for messages.
    address: Address,
    /// Register windows.
    registers: Registers,
    /// The clock.
    platform: &'static dyn Platform,
    /// Bytes per context (32 or 64).
    context_size: usize,
    /// Whether DMA addresses may lie above 4 GiB (AC64).
    addresses_64: bool,
    /// Device slots enabled (MaxSlotsEn).
    max_slots: u8,
    /// Root ports.
    ports: u8,
    /// Scratchpad pages given to the controller.
    scratchpads: usize,
    /// The device context base address array.
    dcbaa: Dma,
    /// Memory only the controller uses: the scratchpad array and pages, the segment table.
    controller_memory: Vec<Dma>,
    /// The command ring.
    commands: ProducerRing,
    /// The event ring.
    events: EventRing,
    /// Addressed devices.
    devices: Vec<Device>,
    /// Bytes typed, not read yet.
    typed: VecDeque<u8>,
    /// When USBSTS was last read by an idle poll.
    last_health_check: u64,
    /// Stray events seen, for their logging.
    strays: StrayEvents,
    /// Why the controller stopped, once it did.
    failed: Option<&'static str>,
    /// The controller lost events (a full event ring) since the report endpoints were
    /// last restarted: the next poll restarts them.
    events_lost: bool,
    /// Root ports with a device connected and not attached yet, until their connect
    /// debounce is over ([`attach_debounced`](Self::attach_debounced)).
    connections: Connections,
    /// Root ports named by Port Status Change Events since the last poll, for it to
    /// follow ([`follow_port_changes`](Self::follow_port_changes)), each once.
    port_changes: Vec<u8>,
    /// Commands that timed out unfetched and were made No Ops
    /// ([`abort_command`](Self::abort_command)), by address, until their completion.
    skipped: Vec<u64>,
}

/// Takes the controller from the firmware (xHCI 4.22.1): sets the OS Owned semaphore of
/// the USB Legacy Support capability, waits for the BIOS Owned one to clear, and turns
/// the firmware's SMIs off. A firmware that does not let go is overruled (logged).
fn take_from_firmware(bar: &Mmio, platform: &dyn Platform, address: Address, first: usize) {
    let mut offset = first;
    for _ in 0..MAX_EXTENDED_CAPABILITIES {
        if offset == 0 || offset + 8 > bar.len() {
            return;
        }
        let header = bar.read32(offset);
        if header as u8 == ext::LEGACY_SUPPORT {
            // The semaphores are bytes of their own: writing byte 3 leaves the BIOS's alone.
            bar.write8(offset + 3, 1);
            let released = wait_until(platform, "BIOS handoff", HANDOFF_TIMEOUT_MS, || {
                bar.read32(offset) & (ext::BIOS_OWNED | ext::OS_OWNED) == ext::OS_OWNED
            });
            if released.is_err() {
                log::warn!("{address} xhci: the firmware kept the controller; taking it anyway");
                bar.write8(offset + 2, 0);
            }
            let control = bar.read32(offset + 4);
            bar.write32(offset + 4, (control & !ext::SMI_ENABLES) | ext::SMI_CHANGES);
            return;
        }
        let next = ((header >> 8) & 0xFF) as usize;
        if next == 0 {
            return;
        }
        offset += next * 4;
    }
}

impl Xhci {
    /// Clears every change bit set on every root port, since while one stays set the
    /// port generates no Port Status Change Event (xHCI 4.19.2), and one the firmware
    /// left set survives the controller reset (PORTSC's change bits are sticky, xHCI
    /// 5.4.8); then starts the connect debounce of each port with a device connected,
    /// which the polls attach ([`attach_debounced`](Self::attach_debounced)).
    fn note_connections(&mut self) {
        let now = self.platform.now_ns();
        for port in 1..=self.ports {
            let status = self.registers.portsc(port);
            self.registers.clear_changes(port, status);
            if status & port::CONNECTED != 0 {
                self.connections.seen(port, now);
            }
        }
    }

    /// Takes the controller in `bar` from the firmware, runs `before_reset` (the port
    /// switch of a controller that shares its ports, which cannot fail the start),
    /// resets and starts it.
    fn start(
        bar: Mmio,
        platform: &'static dyn Platform,
        address: Address,
        before_reset: impl FnOnce(),
    ) -> Result<Self, DeviceError> {
        let bad = |why| DeviceError::BadBar { index: 0, why };
        if bar.len() < 0x20 {
            return Err(bad("too small for the capability registers"));
        }
        let cap_length = (bar.read32(cap::CAPLENGTH) & 0xFF) as usize;
        let params1 = bar.read32(cap::HCSPARAMS1);
        let params2 = bar.read32(cap::HCSPARAMS2);
        let cparams1 = bar.read32(cap::HCCPARAMS1);
        let doorbell_offset = (bar.read32(cap::DBOFF) & !0x3) as usize;
        let runtime_offset = (bar.read32(cap::RTSOFF) & !0x1F) as usize;
        let max_slots = params1 as u8;
        let ports = (params1 >> 24) as u8;
        if max_slots == 0 || ports == 0 {
            return Err(DeviceError::Unsupported("device slots and root ports"));
        }
        // The operational registers are dwords (xHCI 5.4): at an unaligned CAPLENGTH
        // every access to them would be misaligned.
        if !cap_length.is_multiple_of(4) {
            return Err(bad("operational registers not dword aligned (CAPLENGTH)"));
        }
        let op = bar
            .window(cap_length, op::CONFIG + 4)
            .ok_or(bad("too small for the operational registers"))?;
        let registers = Registers {
            ports: bar
                .window(
                    cap_length + op::PORTSC,
                    usize::from(ports) * op::PORT_STRIDE,
                )
                .ok_or(bad("too small for its ports"))?,
            interrupter: bar
                .window(runtime_offset + rt::INTERRUPTER0, 0x20)
                .ok_or(bad("too small for the runtime registers"))?,
            doorbells: bar
                .window(doorbell_offset, (usize::from(max_slots) + 1) * 4)
                .ok_or(bad("too small for the doorbells"))?,
            op,
        };

        take_from_firmware(&bar, platform, address, ((cparams1 >> 16) as usize) * 4);
        before_reset();
        let op = &registers.op;
        // No operational register but HCRST may be written before CNR clears (xHCI 4.2).
        // One still not ready is halted and reset all the same, as Linux's handoff does:
        // the wait after HCRST requires CNR clear.
        let ready = wait_until(
            platform,
            "the controller to be ready",
            READY_TIMEOUT_MS,
            || op.read32(op::USBSTS) & op::STS_NOT_READY == 0,
        );
        if ready.is_err() {
            log::warn!(
                "{address} xhci: not ready (USBSTS.CNR) after {READY_TIMEOUT_MS} ms; resetting it anyway"
            );
        }
        // Halt (xHCI 4.2: reset only a halted controller), then reset.
        op.write32(op::USBCMD, op.read32(op::USBCMD) & !op::CMD_RUN);
        wait_until(platform, "the controller to halt", STATE_TIMEOUT_MS, || {
            op.read32(op::USBSTS) & op::STS_HALTED != 0
        })?;
        op.write32(op::USBCMD, op::CMD_RESET);
        pause(platform, RESET_SETTLE_NS);
        wait_until(platform, "the controller reset", STATE_TIMEOUT_MS, || {
            op.read32(op::USBCMD) & op::CMD_RESET == 0
                && op.read32(op::USBSTS) & op::STS_NOT_READY == 0
        })?;
        if op.read32(op::PAGESIZE) & op::PAGESIZE_4K == 0 {
            return Err(DeviceError::Unsupported("4 KiB pages"));
        }

        let addresses_64 = cparams1 & cap::AC64 != 0;
        let dma = |bytes| reachable(Dma::new(platform, bytes)?, addresses_64);
        let scratchpads = spec::scratchpad_count(params2);
        let mut dcbaa = dma((usize::from(max_slots) + 1) * 8)?;
        let mut controller_memory = Vec::new();
        if scratchpads > 0 {
            let mut array = dma(scratchpads * 8)?;
            let pages = dma(scratchpads * PAGE)?;
            for i in 0..scratchpads {
                array.write64(i * 8, pages.phys() + (i * PAGE) as u64);
            }
            dcbaa.write64(0, array.phys());
            controller_memory.push(array);
            controller_memory.push(pages);
        }
        let commands = ProducerRing::new(dma(COMMAND_RING_TRBS * trb::SIZE)?, COMMAND_RING_TRBS);
        let events = EventRing::new(dma(EVENT_RING_TRBS * trb::SIZE)?, EVENT_RING_TRBS);
        // The event ring segment table: one entry of base and size (xHCI 6.5).
        let mut segments = dma(16)?;
        segments.write64(0, events.phys());
        segments.write32(8, EVENT_RING_TRBS as u32);

        let xhci = Self {
            address,
            registers,
            platform,
            context_size: if cparams1 & cap::CSZ != 0 { 64 } else { 32 },
            addresses_64,
            max_slots,
            ports,
            scratchpads,
            dcbaa,
            controller_memory,
            commands,
            events,
            devices: Vec::new(),
            typed: VecDeque::with_capacity(64),
            last_health_check: 0,
            strays: StrayEvents::default(),
            failed: None,
            events_lost: false,
            connections: Connections::default(),
            port_changes: Vec::new(),
            skipped: Vec::new(),
        };
        let op = &xhci.registers.op;
        op.write32(op::CONFIG, u32::from(max_slots));
        Registers::write64(op, op::DCBAAP, xhci.dcbaa.phys());
        Registers::write64(op, op::CRCR, xhci.commands.phys() | op::CRCR_CYCLE);
        let interrupter = &xhci.registers.interrupter;
        // Polled: IMAN.IE stays 0 (IP is write-1-to-clear).
        interrupter.write32(rt::IMAN, 1);
        interrupter.write32(rt::ERSTSZ, 1);
        Registers::write64(interrupter, rt::ERDP, xhci.events.phys());
        // Writing ERSTBA last starts the event ring (xHCI 4.9.4).
        Registers::write64(interrupter, rt::ERSTBA, segments.phys());
        let mut xhci = xhci;
        xhci.controller_memory.push(segments);
        let op = &xhci.registers.op;
        op.write32(op::USBCMD, op::CMD_RUN);
        wait_until(platform, "the controller to run", STATE_TIMEOUT_MS, || {
            op.read32(op::USBSTS) & op::STS_HALTED == 0
        })?;
        Ok(xhci)
    }

    /// Fresh DMA memory the controller can reach.
    fn dma(&self, bytes: usize) -> Result<Dma, DeviceError> {
        reachable(Dma::new(self.platform, bytes)?, self.addresses_64)
    }

    /// Rings doorbell `index` (0: commands; a slot: `target` is the endpoint's DCI).
    fn ring_doorbell(&self, index: u8, target: u8) {
        barrier();
        self.registers
            .doorbells
            .write32(usize::from(index) * 4, u32::from(target));
    }

    /// Tells the controller the events up to the consumer's position are handled.
    fn acknowledge_events(&self) {
        Registers::write64(
            &self.registers.interrupter,
            rt::ERDP,
            self.events.dequeue_pointer() | rt::ERDP_BUSY,
        );
    }

    /// Waits for the event `wanted` accepts, up to `ms` milliseconds from `start` (a
    /// clock reading); events before it are handled as usual (reports queue their bytes,
    /// stray events are logged and dropped). Only a fault of the controller (a fatal
    /// Host Controller Event; at the deadline, an error in USBSTS) ends the wait early.
    fn wait_event(
        &mut self,
        what: &'static str,
        start: u64,
        ms: u64,
        wanted: impl Fn(&Trb) -> bool,
    ) -> Result<Trb, DeviceError> {
        loop {
            // The time first, then the events: a core that was away past the deadline
            // still takes an event that came meanwhile.
            let late = self.platform.now_ns().saturating_sub(start) > ms * 1_000_000;
            let mut handled = false;
            while let Some(event) = self.events.peek() {
                self.events.pop();
                handled = true;
                if wanted(&event) {
                    self.acknowledge_events();
                    return Ok(event);
                }
                if let Err(error) = self.handle_event(event) {
                    self.acknowledge_events();
                    return Err(error);
                }
            }
            if handled {
                self.acknowledge_events();
            }
            if late {
                self.check_health()?;
                return Err(DeviceError::Timeout { what, ms });
            }
            core::hint::spin_loop();
        }
    }

    /// Runs one command and waits for its completion. A command that times out is
    /// aborted ([`abort_command`](Self::abort_command)), so that the next one does not
    /// queue behind it; its completion met during the abort (it finished just before)
    /// is its answer, success or `Status`, not a timeout. A failed controller runs none.
    fn command(&mut self, what: &'static str, command: Trb) -> Result<Trb, DeviceError> {
        if let Some(why) = self.failed {
            return Err(DeviceError::Failed(why));
        }
        let index = self.commands.push(command);
        let address = self.commands.address_of(index);
        self.ring_doorbell(0, 0);
        let start = self.platform.now_ns();
        let waited = self.wait_event(what, start, COMMAND_TIMEOUT_MS, |event| {
            event.kind() == trb::COMMAND_COMPLETION && event.parameter == address
        });
        let event = match waited {
            Err(timeout @ DeviceError::Timeout { .. }) => match self.abort_command(address)? {
                Some(completed) => completed,
                None => return Err(timeout),
            },
            waited => waited?,
        };
        match event.completion_code() {
            completion::SUCCESS => Ok(event),
            code => Err(DeviceError::Status {
                what,
                status: code.into(),
            }),
        }
    }

    /// Aborts the command at `address`, which timed out (xHCI 4.6.1.2): sets CRCR.CA,
    /// waits for CRCR.CRR to clear, then for the Command Ring Stopped event (taking the
    /// command's own Command Aborted event on the way, or its completion with any other
    /// code when it finished just before the abort: returned, so that it is not dropped
    /// as a stray one and a slot that Enable Slot gave is not lost). The next command's
    /// doorbell starts the ring again where it stopped. The write carries the next free
    /// entry and its cycle state, for a controller whose ring stopped before the write
    /// lands and takes it as its new dequeue pointer (its bits 63:6 only: right for the
    /// next command when that entry starts a 64-byte block). When CRR is already clear
    /// the ring is stopped and the controller never fetched the command (CRR is set by
    /// the command doorbell and cleared only by CS, CA or R/S = 0, xHCI 5.4.5): nothing
    /// runs to be aborted, and the ring's dequeue pointer still names the command,
    /// which the next doorbell would run first. Software may change a stopped ring's
    /// TRBs (4.6.1.1, 4.6.1.2), but may set its dequeue pointer only to a 64-byte
    /// boundary (CRCR's pointer is bits 63:6), not past one TRB, so the command is
    /// turned into a No Op Command (4.6.2) in place: the next doorbell runs that, then
    /// the next command, and the No Op's completion is expected
    /// ([`skipped`](Self::skipped)), not a stray one. An abort that does not finish
    /// (CRR still set, or no Command Ring Stopped event, each within
    /// [`ABORT_TIMEOUT_MS`]) fails the controller: its command ring is in a state the
    /// driver no longer knows.
    fn abort_command(&mut self, address: u64) -> Result<Option<Trb>, DeviceError> {
        let op = &self.registers.op;
        if op.read32(op::CRCR) & op::CRCR_RUNNING == 0 {
            if let Some(index) = self.commands.entry_at(address) {
                self.commands.overwrite(index, Trb::no_op_command());
                if !self.skipped.contains(&address) {
                    self.skipped.push(address);
                }
            }
            return Ok(None);
        }
        let (next, cycle) = self.commands.enqueue();
        Registers::write64(op, op::CRCR, next | u64::from(cycle) | op::CRCR_ABORT);
        let stopped = wait_until(
            self.platform,
            "the command ring to stop",
            ABORT_TIMEOUT_MS,
            || op.read32(op::CRCR) & op::CRCR_RUNNING == 0,
        );
        if stopped.is_err() {
            let why = "a timed-out command could not be aborted (CRCR.CRR stayed set)";
            self.failed = Some(why);
            return Err(DeviceError::Failed(why));
        }
        let start = self.platform.now_ns();
        let mut completed = None;
        loop {
            let event = self.wait_event("Command Ring Stopped", start, ABORT_TIMEOUT_MS, |event| {
                event.kind() == trb::COMMAND_COMPLETION
                    && (event.completion_code() == completion::COMMAND_RING_STOPPED
                        || event.parameter == address)
            });
            match event {
                Ok(event) if event.completion_code() == completion::COMMAND_RING_STOPPED => {
                    return Ok(completed);
                }
                Ok(aborted) if aborted.completion_code() == completion::COMMAND_ABORTED => {}
                Ok(finished) => completed = Some(finished),
                Err(DeviceError::Timeout { .. }) => {
                    let why = "a timed-out command's abort got no Command Ring Stopped event";
                    self.failed = Some(why);
                    return Err(DeviceError::Failed(why));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Runs a control transfer on device `device`'s endpoint 0: `setup`, then `len`
    /// bytes IN into its buffer when `len > 0`; returns the bytes received. A stage
    /// that fails halts the endpoint, which is restarted past the transfer. One that
    /// times out is still queued, and the endpoint would run the next transfer only
    /// after it: the endpoint is stopped and moved on past its TRBs (xHCI 4.6.9,
    /// [`restart_endpoint`](Self::restart_endpoint)) before the timeout is returned (or
    /// the restart's own error, when that fails).
    fn control(
        &mut self,
        device: usize,
        what: &'static str,
        setup: [u8; 8],
        len: u16,
    ) -> Result<usize, DeviceError> {
        let data_in = len > 0;
        let target = &mut self.devices[device];
        let slot = target.slot;
        let setup = target.control.push(Trb::setup(setup, data_in));
        let data = data_in.then(|| {
            target
                .control
                .push(Trb::data_in(target.buffer.phys(), len.into()))
        });
        let status = target.control.push(Trb::status(data_in));
        let mut transfer = ControlTransfer {
            setup: target.control.address_of(setup),
            data: data.map(|i| target.control.address_of(i)),
            status: target.control.address_of(status),
            len,
            received: None,
        };
        self.ring_doorbell(slot, 1);
        let start = self.platform.now_ns();
        loop {
            let waited = self.wait_event(what, start, TRANSFER_TIMEOUT_MS, |event| {
                event.kind() == trb::TRANSFER_EVENT && event.slot() == slot && event.endpoint() == 1
            });
            let event = match waited {
                Err(timeout @ DeviceError::Timeout { .. }) => {
                    self.restart_endpoint(device, 1, None)?;
                    return Err(timeout);
                }
                waited => waited?,
            };
            match transfer.on_event(&event) {
                ControlStep::Waiting => {}
                ControlStep::NotOurs => self.drop_stray(Stray::NotThisControlTransfer, &event),
                ControlStep::Done(received) => return Ok(received),
                ControlStep::Halted(code) => {
                    log::warn!(
                        "{} xhci: slot {slot} endpoint 1 halted (completion code {code}), \
                         restarting",
                        self.address
                    );
                    // Every setup stage starts at DATA0 (USB 2.0 8.5.3): the toggle needs
                    // no keeping.
                    self.restart_endpoint(device, 1, Some(Reset::Hard))?;
                    return Err(DeviceError::Status {
                        what,
                        status: code.into(),
                    });
                }
            }
        }
    }

    /// Restarts endpoint `dci` of device `device`: after it halted, Reset Endpoint as
    /// `halted` says (xHCI 4.6.8); when it did not halt (`None`), Stop Endpoint (4.6.9);
    /// then its dequeue pointer is moved past the TRBs it abandoned. Stop Endpoint on an
    /// endpoint that is not Running (its halt's event lost with others, or stopped
    /// already) fails with Context State Error: the endpoint's state in the output
    /// device context then says what to do, Reset Endpoint (hard) first when it is
    /// Halted, the dequeue pointer alone when it is Stopped. A Reset Endpoint that
    /// fails is followed as [`after_failed_reset`](Self::after_failed_reset) says.
    /// Returns the Reset Endpoint it issued, if any: a hard one, whether `halted` asked for it or the endpoint was
    /// found Halted, reset the host's data toggle, and a report endpoint's device needs
    /// CLEAR_FEATURE(ENDPOINT_HALT) to match. One that failed and was gone on from (the
    /// endpoint found Stopped or Running) is returned too: the device may have sent a
    /// STALL and needs the CLEAR_FEATURE to report again, though the host's toggle was
    /// not reset, so the two may disagree for one report (dropped as a repeat).
    fn restart_endpoint(
        &mut self,
        device: usize,
        dci: u8,
        halted: Option<Reset>,
    ) -> Result<Option<Reset>, DeviceError> {
        let target = &self.devices[device];
        let slot = target.slot;
        let (pointer, cycle) = if dci == 1 {
            target.control.enqueue()
        } else {
            match &target.keyboard {
                Some(keyboard) => keyboard.ring.enqueue(),
                None => return Ok(None),
            }
        };
        let reset = match halted {
            Some(reset) => Some(reset),
            None => self
                .stop_or_find_halted(device, dci)?
                .then_some(Reset::Hard),
        };
        if let Some(reset) = reset {
            let preserve = reset == Reset::Soft;
            let command = Trb::reset_endpoint(slot, dci, preserve);
            if let Err(error) = self.command("Reset Endpoint", command) {
                self.after_failed_reset(device, dci, error)?;
            }
        }
        self.command(
            "Set TR Dequeue Pointer",
            Trb::set_dequeue(slot, dci, pointer, cycle),
        )?;
        Ok(reset)
    }

    /// Goes on after Reset Endpoint on endpoint `dci` of device `device` failed with
    /// `error` (say Context State Error: the endpoint was not Halted any more, xHCI
    /// 4.6.8), from the endpoint's state in the output device context: Stopped needs
    /// only its dequeue pointer moved, Running is stopped first (Stop Endpoint, 4.6.9);
    /// in any other state, or when the controller failed, `error` is returned (the
    /// endpoint cannot be restarted: a report endpoint's keyboard is given up, not the
    /// controller).
    fn after_failed_reset(
        &mut self,
        device: usize,
        dci: u8,
        error: DeviceError,
    ) -> Result<(), DeviceError> {
        if self.failed.is_some() {
            return Err(error);
        }
        let state = self.endpoint_state(device, dci);
        let slot = self.devices[device].slot;
        log::warn!(
            "{} xhci: slot {slot} endpoint {dci}: {error} (endpoint state {state})",
            self.address
        );
        match state {
            endpoint_state::STOPPED => Ok(()),
            endpoint_state::RUNNING => self
                .command("Stop Endpoint", Trb::stop_endpoint(slot, dci))
                .map(drop),
            _ => Err(error),
        }
    }

    /// Stops endpoint `dci` of device `device`, not seen to halt (Stop Endpoint, xHCI
    /// 4.6.9); whether it needs Reset Endpoint first: when Stop Endpoint fails with
    /// Context State Error and the output device context says Halted (its halt's event
    /// lost). Stopped already needs only the dequeue pointer moved; any other failure is
    /// returned.
    fn stop_or_find_halted(&mut self, device: usize, dci: u8) -> Result<bool, DeviceError> {
        let slot = self.devices[device].slot;
        let error = match self.command("Stop Endpoint", Trb::stop_endpoint(slot, dci)) {
            Ok(_) => return Ok(false),
            Err(error @ DeviceError::Status { status, .. })
                if status == u32::from(completion::CONTEXT_STATE_ERROR) =>
            {
                error
            }
            Err(error) => return Err(error),
        };
        match self.endpoint_state(device, dci) {
            endpoint_state::HALTED => {
                log::warn!(
                    "{} xhci: slot {slot} endpoint {dci} found halted (its event lost), \
                     restarting",
                    self.address
                );
                Ok(true)
            }
            endpoint_state::STOPPED => Ok(false),
            _ => Err(error),
        }
    }

    /// The state of endpoint `dci` of device `device`, as the controller keeps it in the
    /// device's output context ([`endpoint_state`]).
    fn endpoint_state(&self, device: usize, dci: u8) -> u8 {
        let context = spec::context_offset(dci.into(), self.context_size);
        endpoint_state::of(self.devices[device].output.read32(context))
    }

    /// Attaches each root port whose connection has been stable for the connect debounce
    /// ([`debounce`], USB 2.0 7.1.7.3: 100 ms from the connect seen to the port reset),
    /// logging what it found, and queues the reports of the keyboards found. A port
    /// whose connection changed meanwhile (PORTSC.CSC, cleared when the connection was
    /// seen; every change bit set is cleared with it) waits the debounce again from when the change is seen (a clock read then,
    /// after the ports attached before it), or no more when nothing is connected
    /// to it any more (a later connection comes back through its Port Status Change
    /// Event, [`follow_port_changes`](Self::follow_port_changes)). Returns whether it
    /// looked at a port; an error only when the controller failed.
    fn attach_debounced(&mut self) -> Result<bool, DeviceError> {
        let now = self.platform.now_ns();
        let mut looked = false;
        while let Some(port) = self.connections.take_due(now) {
            looked = true;
            let status = self.registers.portsc(port);
            if status & port::CONNECT_CHANGE != 0 {
                self.registers.clear_changes(port, status);
                if status & port::CONNECTED != 0 {
                    // Read afresh: attaching the ports before it may have taken tens of
                    // milliseconds since `now`, and the change happened in them.
                    self.connections.seen(port, self.platform.now_ns());
                }
                continue;
            }
            let address = self.address;
            match self.attach(port) {
                Ok(Some((vendor, product))) => {
                    log::info!("{address} xhci: port {port}: keyboard {vendor:04x}:{product:04x}")
                }
                Ok(None) => {}
                Err(error) => log::warn!("{address} xhci: port {port}: {error}"),
            }
            if let Some(why) = self.failed {
                return Err(DeviceError::Failed(why));
            }
        }
        if looked {
            self.start_reports();
        }
        Ok(looked)
    }

    /// Resets root port `port` if it needs it and gives its device a slot (Enable Slot);
    /// sets it up ([`set_up_or_give_back`](Self::set_up_or_give_back)), returning a boot
    /// keyboard's vendor and product IDs.
    fn attach(&mut self, port: u8) -> Result<Option<(u16, u16)>, DeviceError> {
        let mut status = self.registers.portsc(port);
        if status & port::CONNECTED == 0 {
            return Ok(None);
        }
        // USB 3 ports enable themselves; USB 2 ports need a reset (xHCI 4.3.1).
        if status & port::ENABLED == 0 {
            self.registers.set_portsc(port, status, port::RESET);
            let registers = &self.registers;
            wait_until(self.platform, "a port reset", PORT_RESET_TIMEOUT_MS, || {
                registers.portsc(port) & port::RESET_CHANGE != 0
            })?;
            status = self.registers.portsc(port);
            self.registers.set_portsc(port, status, port::RESET_CHANGE);
            if status & port::ENABLED == 0 {
                return Err(DeviceError::Status {
                    what: "port reset",
                    status,
                });
            }
            rexo_devio::pause(self.platform, PORT_RECOVERY_NS);
        }
        let speed = ((status >> port::SPEED_SHIFT) & port::SPEED_MASK) as u8;
        // The device's memory first: once Enable Slot gave a slot, no failure to get it
        // leaves the slot enabled.
        let mut device = Device {
            slot: 0,
            port,
            speed,
            output: self.dma(CONTEXT_BYTES)?,
            input: self.dma(CONTEXT_BYTES)?,
            control: ProducerRing::new(self.dma(CONTROL_RING_TRBS * trb::SIZE)?, CONTROL_RING_TRBS),
            control_max_packet: usb::default_max_packet(speed),
            buffer: self.dma(DESCRIPTOR_BUFFER)?,
            keyboard: None,
            kept: Vec::new(),
        };

        let slot = self.command("Enable Slot", Trb::enable_slot())?.slot();
        let refused = if slot == 0 || slot > self.max_slots {
            Some("device slot")
        } else if self.devices.iter().any(|device| device.slot == slot) {
            // A broken controller's answer: the slot's context and doorbell stay the
            // other device's.
            Some("device slot from Enable Slot (another device's already)")
        } else {
            None
        };
        if let Some(what) = refused {
            return Err(DeviceError::BadIndex {
                what,
                index: slot.into(),
                size: self.max_slots.into(),
            });
        }
        device.slot = slot;
        // The device joins the list before the controller hears of it: its memory then
        // lives as long as the controller runs.
        self.devices.push(device);
        let index = self.devices.len() - 1;
        let output = self.devices[index].output.phys();
        self.dcbaa.write64(usize::from(slot) * 8, output);
        self.set_up_or_give_back(index)
    }

    /// Sets up device `index`, just given its slot
    /// ([`set_up_device`](Self::set_up_device)), returning a boot keyboard's vendor and
    /// product IDs. A set-up that fails, or a device that is not a boot keyboard, has
    /// its slot disabled again ([`disable_slot`](Self::disable_slot)): the slot is free
    /// for another device or a retry, and the device's memory goes back (kept while the
    /// controller may still use it, when Disable Slot fails too: logged).
    fn set_up_or_give_back(&mut self, index: usize) -> Result<Option<(u16, u16)>, DeviceError> {
        let (slot, port) = (self.devices[index].slot, self.devices[index].port);
        let set_up = self.set_up_device(index);
        if matches!(set_up, Ok(Some(_))) {
            return set_up;
        }
        match self.disable_slot(index) {
            Ok(()) if set_up.is_ok() => log::info!(
                "{} xhci: port {port}: slot {slot} given back (no boot keyboard)",
                self.address
            ),
            Ok(()) => {}
            Err(error) => log::warn!("{} xhci: slot {slot}: {error}", self.address),
        }
        set_up
    }

    /// Sets up device `index`, just given its slot: Address Device, endpoint 0's max
    /// packet size, the device and configuration descriptors, and when it is a boot
    /// keyboard [`set_up_boot_keyboard`](Self::set_up_boot_keyboard); returns the
    /// keyboard's vendor and product IDs.
    fn set_up_device(&mut self, index: usize) -> Result<Option<(u16, u16)>, DeviceError> {
        let context_size = self.context_size;
        let target = &mut self.devices[index];
        let (slot, port, speed) = (target.slot, target.port, target.speed);
        let input = input_context(target, context_size, spec::ADD_SLOT_AND_EP0, 1);
        self.command("Address Device", Trb::address_device(input, slot))?;
        rexo_devio::pause(self.platform, ADDRESS_RECOVERY_NS);

        if speed == usb::speed::FULL {
            // A full-speed device's endpoint 0 may take more than 8 bytes: the first 8
            // bytes of its device descriptor say (USB 2.0 9.6.1 bMaxPacketSize0).
            let got = self.control(
                index,
                "GET_DESCRIPTOR (device, 8 bytes)",
                usb::get_descriptor(usb::DESCRIPTOR_DEVICE, 8),
                8,
            )?;
            let target = &mut self.devices[index];
            let max_packet = u16::from(target.buffer.bytes(0, got).get(7).copied().unwrap_or(0));
            if max_packet != target.control_max_packet && matches!(max_packet, 8 | 16 | 32 | 64) {
                target.control_max_packet = max_packet;
                let input = input_context(target, context_size, spec::ADD_EP0, 1);
                self.command("Evaluate Context", Trb::evaluate_context(input, slot))?;
            }
        }
        let got = self.control(
            index,
            "GET_DESCRIPTOR (device)",
            usb::get_descriptor(usb::DESCRIPTOR_DEVICE, usb::DEVICE_DESCRIPTOR_LEN),
            usb::DEVICE_DESCRIPTOR_LEN,
        )?;
        let descriptor = self.devices[index].buffer.bytes(0, got);
        let id = |at: usize| {
            descriptor
                .get(at..at + 2)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
        };
        let (vendor, product) = (id(8), id(10));

        let got = self.control(
            index,
            "GET_DESCRIPTOR (configuration header)",
            usb::get_descriptor(usb::DESCRIPTOR_CONFIGURATION, usb::CONFIGURATION_HEADER_LEN),
            usb::CONFIGURATION_HEADER_LEN,
        )?;
        let total = usb::total_length(self.devices[index].buffer.bytes(0, got))
            .ok_or(DeviceError::Unsupported("a configuration descriptor"))?
            .min(DESCRIPTOR_BUFFER as u16);
        let got = self.control(
            index,
            "GET_DESCRIPTOR (configuration)",
            usb::get_descriptor(usb::DESCRIPTOR_CONFIGURATION, total),
            total,
        )?;
        let Some(found) = usb::find_boot_keyboard(self.devices[index].buffer.bytes(0, got)) else {
            log::info!(
                "{} xhci: port {port}: device {vendor:04x}:{product:04x} is not a boot keyboard",
                self.address
            );
            return Ok(None);
        };
        if found.max_packet < BOOT_REPORT_LEN {
            return Err(DeviceError::Unsupported("8-byte boot reports"));
        }

        self.set_up_boot_keyboard(index, found)?;
        Ok(Some((vendor, product)))
    }

    /// Sets device `index` up as the boot keyboard `found` on its interface:
    /// SET_CONFIGURATION, SET_PROTOCOL(boot), SET_IDLE(0), whose STALL (the request is
    /// optional) is no failure while any other error is, then Configure Endpoint
    /// ([`configure_keyboard`](Self::configure_keyboard)).
    fn set_up_boot_keyboard(
        &mut self,
        index: usize,
        found: usb::BootKeyboard,
    ) -> Result<(), DeviceError> {
        self.control(
            index,
            "SET_CONFIGURATION",
            usb::set_configuration(found.configuration),
            0,
        )?;
        self.control(
            index,
            "SET_PROTOCOL (boot)",
            usb::set_boot_protocol(found.interface),
            0,
        )?;
        // SET_IDLE is optional for keyboards (HID 1.11 7.2.4): one without it answers
        // with a STALL (a request error, USB 2.0 9.2.7), after which `control` restarted
        // endpoint 0. Any other error (a transaction error, a timeout) is a device that
        // did not answer.
        match self.control(index, "SET_IDLE", usb::set_idle(found.interface), 0) {
            Ok(_) => {}
            Err(DeviceError::Status { what, status }) if status == completion::STALL.into() => {
                let port = self.devices[index].port;
                log::info!(
                    "{} xhci: port {port}: {what} stalled (optional)",
                    self.address
                );
            }
            Err(error) => return Err(error),
        }

        let keyboard = Keyboard {
            descriptor: found,
            report_len: u32::from(found.max_packet).min(REPORT_STRIDE as u32),
            ring: ProducerRing::new(self.dma(REPORT_RING_TRBS * trb::SIZE)?, REPORT_RING_TRBS),
            in_flight: InFlight::new(REPORT_RING_TRBS),
            reports: self.dma(REPORT_RING_TRBS * REPORT_STRIDE)?,
            decoder: hid::BootKeyboard::new(),
            doorbell_due: false,
            halted: None,
            restarts: Restarts::default(),
            restarting: false,
        };
        self.configure_keyboard(index, keyboard)
    }

    /// Adds `keyboard`'s report endpoint to device `index` with Configure Endpoint; the
    /// device keeps the keyboard when the command succeeds.
    ///
    /// When it fails or times out, the keyboard is dropped but not its transfer ring,
    /// which stays with the device ([`Device::kept`]) until its slot is disabled
    /// ([`attach`](Self::attach) does, [`disable_slot`](Self::disable_slot)): the input
    /// context gave the controller the ring's address, and a Configure Endpoint that
    /// timed out may still have run unseen (one that completed just before its abort is
    /// answered by [`Xhci::command`], but its completion may be among events the
    /// controller lost). Configure Endpoint takes the endpoint from Disabled to Running
    /// (xHCI 4.6.6) with its TR Dequeue Pointer at this ring. A Running endpoint waits
    /// for its doorbell, which the driver never rings for it, but the controller holds
    /// the address and may read TRBs there (a prefetch, a stray doorbell): freed and
    /// reused, the memory could read as TRBs that make the controller write into someone
    /// else's memory. So the ring stays as the driver left it (only its Link TRB, cycle
    /// 0: nothing the controller may run) and goes with the device's other memory: back
    /// once Disable Slot succeeded or the controller halted, kept for good otherwise
    /// ([`Xhci`]'s drop). The report buffers go back at once: no TRB names them yet.
    fn configure_keyboard(&mut self, index: usize, keyboard: Keyboard) -> Result<(), DeviceError> {
        let context_size = self.context_size;
        let target = &mut self.devices[index];
        let slot = target.slot;
        let input = configure_context(target, context_size, &keyboard);
        match self.command("Configure Endpoint", Trb::configure_endpoint(input, slot)) {
            Ok(_) => {
                self.devices[index].keyboard = Some(keyboard);
                Ok(())
            }
            Err(error) => {
                let ring = keyboard.ring.into_memory();
                self.devices[index].kept.push(ring);
                Err(error)
            }
        }
    }

    /// Disables device `index`'s slot (Disable Slot): once that succeeds the controller
    /// has stopped the slot's endpoints and no longer uses its contexts or rings (xHCI
    /// 4.6.4), so the device leaves the list, its memory goes back and the slot is free
    /// for another device. When Disable Slot fails or times out, its error is returned
    /// and the device stays in the list with its memory, which the controller may still
    /// use (back once it halted, [`Xhci`]'s drop).
    fn disable_slot(&mut self, index: usize) -> Result<(), DeviceError> {
        let slot = self.devices[index].slot;
        self.command("Disable Slot", Trb::disable_slot(slot))?;
        self.dcbaa.write64(usize::from(slot) * 8, 0);
        self.devices.remove(index);
        Ok(())
    }

    /// Queues [`REPORTS_IN_FLIGHT`] report TRBs on every keyboard and rings their doorbells.
    fn start_reports(&mut self) {
        for device in &mut self.devices {
            if let Some(keyboard) = &mut device.keyboard {
                keyboard.queue_reports();
            }
        }
        self.ring_report_doorbells();
    }

    /// Rings the doorbell of every keyboard with TRBs queued since the last time.
    fn ring_report_doorbells(&mut self) {
        barrier();
        for device in &mut self.devices {
            if let Some(keyboard) = device.keyboard.as_mut().filter(|k| k.doorbell_due) {
                keyboard.doorbell_due = false;
                self.registers.doorbells.write32(
                    usize::from(device.slot) * 4,
                    keyboard.descriptor.dci().into(),
                );
            }
        }
    }

    /// Handles an event nobody waits for: a keyboard report is decoded into
    /// [`typed`](Self::typed) and its TRB queued again; a report error marks the
    /// endpoint halted; a port status change notes its port for the poll to follow
    /// ([`follow_port_changes`](Self::follow_port_changes): doing it here could run a
    /// command while another one is waited on); the
    /// completion of a command skipped as a No Op is dropped, its wait long over; a
    /// Host Controller Event is handled by
    /// [`host_controller_event`](Self::host_controller_event) (the only error); anything
    /// else is a stray event, logged and dropped.
    fn handle_event(&mut self, event: Trb) -> Result<(), DeviceError> {
        match event.kind() {
            trb::TRANSFER_EVENT => self.handle_report(event),
            trb::HOST_CONTROLLER_EVENT => return self.host_controller_event(&event),
            trb::PORT_STATUS_CHANGE => match event.port() {
                port if (1..=self.ports).contains(&port) => self.note_port_change(port),
                _ => self.drop_stray(Stray::UnknownPort, &event),
            },
            trb::COMMAND_COMPLETION => {
                match self.skipped.iter().position(|&at| at == event.parameter) {
                    Some(skipped) => drop(self.skipped.swap_remove(skipped)),
                    None => self.drop_stray(Stray::NotThisCommand, &event),
                }
            }
            _ => self.drop_stray(Stray::UnhandledType, &event),
        }
        Ok(())
    }

    /// A Host Controller Event (xHCI 6.4.2.7). Event Ring Full Error (the ring was full,
    /// 4.9.4) and Event Lost Error (an internal overrun) mean events were dropped: a
    /// command or control transfer whose completion was among them times out (and a
    /// command is aborted), and report TRBs the controller completed unseen would stay
    /// counted in flight, so the next poll restarts every report endpoint (Stop
    /// Endpoint, its dequeue pointer moved past what it held, the reports queued
    /// again); logged once per restart. A Port Status Change Event may be among those
    /// lost, and a port whose change bits stay set generates none again (xHCI 4.19.2),
    /// so every root port is followed by the next poll too. Any other code is an error
    /// of the controller itself (with USBSTS.HCE, an internal error): it fails the
    /// controller.
    fn host_controller_event(&mut self, event: &Trb) -> Result<(), DeviceError> {
        let code = event.completion_code();
        if matches!(code, completion::EVENT_RING_FULL | completion::EVENT_LOST) {
            if !self.events_lost {
                log::warn!(
                    "{} xhci: the controller lost events (completion code {code}); \
                     restarting the report endpoints",
                    self.address
                );
            }
            self.events_lost = true;
            self.port_changes = (1..=self.ports).collect();
            return Ok(());
        }
        self.failed = Some("the controller reported an internal error (Host Controller Event)");
        Err(DeviceError::Status {
            what: "host controller event",
            status: code.into(),
        })
    }

    /// A Transfer Event on a keyboard's interrupt endpoint (the clock is read only for
    /// one whose slot and endpoint are a keyboard's, not for a stray one).
    fn handle_report(&mut self, event: Trb) {
        let slot = event.slot();
        let Some(device) = self.devices.iter_mut().find(|d| d.slot == slot) else {
            self.drop_stray(Stray::UnknownSlot, &event);
            return;
        };
        let Some(keyboard) = device
            .keyboard
            .as_mut()
            .filter(|k| k.descriptor.dci() == event.endpoint())
        else {
            let cause = if event.endpoint() == 1 {
                // A late endpoint 0 event (a transfer given up on).
                Stray::NotThisControlTransfer
            } else {
                Stray::UnusedEndpoint
            };
            self.drop_stray(cause, &event);
            return;
        };
        let now = self.platform.now_ns();
        if let Err(cause) = keyboard.take_report(event, now, &mut self.typed) {
            self.drop_stray(cause, &event);
        }
    }

    /// Drops `event`, a stray one of `cause`: logged with what it was at the 1st, 2nd,
    /// 4th, 8th... of its cause ([`StrayEvents`]), as a faulty controller may repeat
    /// it without end.
    fn drop_stray(&mut self, cause: Stray, event: &Trb) {
        if let Some(seen) = self.strays.count(cause) {
            log::warn!(
                "{} xhci: dropped a {cause} ({seen} so far): type {}, slot {}, endpoint {}, \
                 TRB {:#x}, completion code {}",
                self.address,
                event.kind(),
                event.slot(),
                event.endpoint(),
                event.parameter,
                event.completion_code()
            );
        }
    }

    /// Restarts the report endpoints that halted (the endpoint is reset: a soft retry
    /// after a USB Transaction Error, else a hard reset and CLEAR_FEATURE(ENDPOINT_HALT),
    /// so that the device's data toggle starts again at DATA0 as the host's does, USB
    /// 2.0 9.4.5), and every one after the controller lost events (the endpoint is
    /// stopped, or reset when it turns out halted); the reports are queued again. A
    /// halted endpoint is restarted when its [`Restarts`] say: at once after a
    /// good report, each further halt in a row after a growing delay, and after
    /// [`restarts::MAX_IN_A_ROW`] restarts in a row the keyboard is given up; its halts
    /// are logged at the 1st, 2nd, 4th... A CLEAR_FEATURE that fails (the device gone)
    /// is logged: the device's endpoint halts again, or not. A keyboard whose port has
    /// nothing connected any more is given up rather than restarted
    /// ([`drop_keyboard`](Self::drop_keyboard)), as is one whose endpoint cannot be
    /// restarted (a restart's command failed, the endpoint's state not one to go on
    /// from). Returns whether any keyboard was restarted or given up; an error only
    /// when the controller failed.
    fn restart_reports(&mut self) -> Result<bool, DeviceError> {
        let lost = core::mem::take(&mut self.events_lost);
        let now = self.platform.now_ns();
        let mut acted = false;
        // From the last: a keyboard given up leaves the list.
        for index in (0..self.devices.len()).rev() {
            let device = &self.devices[index];
            let Some(keyboard) = &device.keyboard else {
                continue;
            };
            let halted = keyboard.halted;
            // A USB Transaction Error the device did not see is retried with its data
            // toggle kept (xHCI 4.6.8.1), a few times in a row; any other halt, and one
            // that soft retries did not mend, resets the toggle on both sides.
            let soft = keyboard.restarts.may_soft_retry();
            let reset = halted.map(|code| match code {
                completion::USB_TRANSACTION_ERROR if soft => Reset::Soft,
                _ => Reset::Hard,
            });
            let decision = match halted {
                Some(_) => keyboard.restarts.decide(now),
                None if lost => Decision::Restart,
                None => continue,
            };
            if decision == Decision::Wait {
                continue;
            }
            acted = true;
            if self.registers.portsc(device.port) & port::CONNECTED == 0 {
                self.drop_keyboard(index, "nothing is connected to its port")?;
                continue;
            }
            if decision == Decision::GiveUp {
                self.drop_keyboard(index, "its report endpoint kept halting")?;
                continue;
            }
            let slot = device.slot;
            let (dci, address) = (keyboard.descriptor.dci(), keyboard.descriptor.endpoint);
            // Reports completing meanwhile are taken but not queued again: the dequeue
            // pointer goes to the enqueue position restart_endpoint reads first. A held
            // key's repeats end: its release may be among the reports lost (the halted
            // one's, or those of lost events), and it would repeat for ever.
            let seen = self.devices[index].keyboard.as_mut().and_then(|keyboard| {
                keyboard.restarting = true;
                keyboard.decoder.stop_repeating();
                halted.and(keyboard.restarts.halted())
            });
            if let (Some(code), Some(seen)) = (halted, seen) {
                log::warn!(
                    "{} xhci: slot {slot} endpoint {dci} halted (completion code {code}; \
                     {seen} halts so far), restarting",
                    self.address
                );
            }
            // The endpoint may be found Halted, its halt's event lost, and reset hard
            // though `reset` did not ask for it: the device's toggle follows the reset
            // actually issued.
            let restarted = match self.restart_endpoint(index, dci, reset) {
                Ok(restarted) => restarted,
                Err(error) if self.failed.is_some() => return Err(error),
                Err(error) => {
                    let why = format!("its report endpoint could not be restarted ({error})");
                    self.drop_keyboard(index, &why)?;
                    continue;
                }
            };
            if restarted == Some(Reset::Hard) {
                let clear = usb::clear_halt(address);
                if let Err(error) = self.control(index, "CLEAR_FEATURE (halt)", clear, 0) {
                    if self.failed.is_some() {
                        return Err(error);
                    }
                    log::warn!("{} xhci: slot {slot}: {error}", self.address);
                }
            }
            let now = self.platform.now_ns();
            if let Some(keyboard) = &mut self.devices[index].keyboard {
                keyboard.restarting = false;
                keyboard.halted = None;
                if halted.is_some() {
                    keyboard.restarts.restarted(now);
                }
                // The dequeue pointer moved past the TRBs the endpoint held.
                keyboard.in_flight.abandon();
                keyboard.queue_reports();
            }
        }
        self.ring_report_doorbells();
        Ok(acted)
    }

    /// Gives up device `index`'s keyboard, logging `why`: its slot is disabled
    /// ([`disable_slot`](Self::disable_slot)), so the device leaves the list, its memory
    /// goes back and the slot is free. When Disable Slot fails or times out, the
    /// keyboard's ring and report buffers stay with the device ([`Device::kept`]) as
    /// long as the controller may use them, and its later events are stray ones. Only
    /// a failure of the controller as a whole is returned.
    fn drop_keyboard(&mut self, index: usize, why: &str) -> Result<(), DeviceError> {
        let port = self.devices[index].port;
        log::warn!(
            "{} xhci: port {port}: keyboard given up: {why}",
            self.address
        );
        // A failed Disable Slot was logged there, and changes nothing here.
        self.give_back(index)?;
        Ok(())
    }

    /// Disables device `index`'s slot ([`disable_slot`](Self::disable_slot)), so the
    /// device leaves the list, its memory goes back and the slot is free. When Disable
    /// Slot fails or times out (logged), a keyboard's ring and report buffers stay
    /// with the device ([`Device::kept`]) as long as the controller may use them.
    /// Returns whether the slot was freed; only a failure of the controller as a whole
    /// is an error.
    fn give_back(&mut self, index: usize) -> Result<bool, DeviceError> {
        let slot = self.devices[index].slot;
        match self.disable_slot(index) {
            Ok(()) => Ok(true),
            Err(error) if self.failed.is_some() => Err(error),
            Err(error) => {
                log::warn!("{} xhci: slot {slot}: {error}", self.address);
                let device = &mut self.devices[index];
                if let Some(keyboard) = device.keyboard.take() {
                    device
                        .kept
                        .extend([keyboard.ring.into_memory(), keyboard.reports]);
                }
                Ok(false)
            }
        }
    }

    /// Has the next poll follow `port`
    /// ([`follow_port_changes`](Self::follow_port_changes)), once however often it is
    /// noted.
    fn note_port_change(&mut self, port: u8) {
        if !self.port_changes.contains(&port) {
            self.port_changes.push(port);
        }
    }

    /// Follows the root ports that Port Status Change Events named (xHCI 4.19.2, 5.4.8):
    /// reads each one's PORTSC and clears every change bit set (write 1 to clear; the
    /// other change bits written 0, PED not written 1, which would disable the port),
    /// since while any stays set the port generates no further event; one found set
    /// again right after (a change between the read and the write) has the next poll
    /// follow the port again. A port with
    /// nothing connected gives back the slot of each device on it, an unplugged
    /// keyboard among them ([`give_back`](Self::give_back), logged once the slot is
    /// free), and waits for no
    /// connection; a new connection (CSC with CCS) gives back what was attached there
    /// (the device was replugged between polls) and starts its connect debounce, after
    /// which [`attach_debounced`](Self::attach_debounced) attaches it as at probe. Any
    /// other change (a reset finished, a link state) changes nothing more. An error only
    /// when the controller failed.
    fn follow_port_changes(&mut self) -> Result<(), DeviceError> {
        for port in core::mem::take(&mut self.port_changes) {
            let status = self.registers.portsc(port);
            let changes = self.registers.clear_changes(port, status);
            if changes != 0 {
                // A change set between the read and the write was not cleared, and
                // raises no event of its own: the next poll follows the port again.
                if self.registers.portsc(port) & port::CHANGES != 0 {
                    self.note_port_change(port);
                }
            }
            let connected = status & port::CONNECTED != 0;
            if connected && changes & port::CONNECT_CHANGE == 0 {
                continue;
            }
            // From the last: a device given back leaves the list.
            for index in (0..self.devices.len()).rev() {
                if self.devices[index].port != port {
                    continue;
                }
                let slot = self.devices[index].slot;
                // A failed Disable Slot (logged) leaves the slot held.
                if self.give_back(index)? {
                    let what = if connected { "replugged" } else { "unplugged" };
                    log::info!(
                        "{} xhci: port {port}: device {what}, slot {slot} given back",
                        self.address
                    );
                }
            }
            if connected {
                self.connections.seen(port, self.platform.now_ns());
            } else {
                self.connections.forget(port);
            }
        }
        Ok(())
    }

    /// Reads USBSTS: a host system or controller error stops the device.
    fn check_health(&mut self) -> Result<(), DeviceError> {
        let status = self.registers.op.read32(op::USBSTS);
        if status & (op::STS_HOST_SYSTEM_ERROR | op::STS_CONTROLLER_ERROR) != 0 {
            self.failed = Some("host system or controller error (USBSTS)");
            return Err(DeviceError::Status {
                what: "USBSTS",
                status,
            });
        }
        Ok(())
    }

    /// Handles every event written since the last poll (stray events are logged and
    /// dropped; a fatal Host Controller Event fails the controller, ends the batch and
    /// is returned); follows the root ports their Port Status Change Events named
    /// ([`follow_port_changes`](Self::follow_port_changes)); then, even with no events,
    /// restarts any keyboard report endpoint
    /// that halted and whose delay passed, and all of them after lost events (one that
    /// cannot be restarted gives its keyboard up;
    /// [`restart_reports`](Self::restart_reports)), and attaches the ports whose connect
    /// debounce is over ([`attach_debounced`](Self::attach_debounced)); only when it
    /// handled no event and restarted, gave up or attached nothing, reads USBSTS, at
    /// most once per [`HEALTH_CHECK_NS`].
    fn poll(&mut self) -> Result<(), DeviceError> {
        let mut handled = false;
        let mut result = Ok(());
        while let Some(event) = self.events.peek() {
            self.events.pop();
            handled = true;
            result = self.handle_event(event);
            if result.is_err() {
                break;
            }
        }
        if handled {
            self.acknowledge_events();
            self.ring_report_doorbells();
        }
        // A batch that ended in a fault failed the controller: nothing is restarted.
        result?;
        self.follow_port_changes()?;
        let halted = |device: &Device| device.keyboard.as_ref().is_some_and(|k| k.halted.is_some());
        let mut restarted = false;
        if self.events_lost || self.devices.iter().any(halted) {
            restarted = self.restart_reports()?;
        }
        let attached = !self.connections.is_empty() && self.attach_debounced()?;
        if handled || restarted || attached {
            return Ok(());
        }
        let now = self.platform.now_ns();
        if now.saturating_sub(self.last_health_check) > HEALTH_CHECK_NS {
            self.last_health_check = now;
            self.check_health()?;
        }
        Ok(())
    }

    /// Types the repeat of each keyboard's held key that is due now
    /// ([`hid::BootKeyboard::repeat`]): the keys' typematic, made as the device is read.
    /// The clock is read only while a key repeats.
    fn type_repeats(&mut self) {
        let mut now = None;
        for device in &mut self.devices {
            let Some(keyboard) = device.keyboard.as_mut().filter(|k| k.decoder.repeats()) else {
                continue;
            };
            let now = *now.get_or_insert_with(|| self.platform.now_ns());
            keyboard
                .decoder
                .repeat(now, &mut |byte| self.typed.push_back(byte));
        }
    }
}

impl Keyboard {
    /// Queues Normal TRBs, each for a report into the buffer of the entry it takes,
    /// until [`REPORTS_IN_FLIGHT`] are held by the controller.
    fn queue_reports(&mut self) {
        while self.in_flight.count() < REPORTS_IN_FLIGHT {
            let buffer = self.reports.phys() + (self.ring.next_index() * REPORT_STRIDE) as u64;
            self.ring.push(Trb::normal(buffer, self.report_len));
            self.in_flight.pushed();
            self.doorbell_due = true;
        }
    }

    /// A Transfer Event on the report endpoint, taken at clock reading `now`: a report
    /// is decoded into `typed` and its TRB queued again, unless the endpoint is being
    /// restarted (its dequeue pointer is to be moved to the ring's enqueue position read before: a TRB
    /// queued there now would be skipped, its report lost); an error marks the
    /// endpoint halted. An event for a TRB
    /// not on the ring, or one the controller does not hold (a repeat, or one never
    /// queued), is a stray one (the cause is returned for the caller to log): it
    /// changes nothing, so it cannot queue TRBs beyond those the controller completed.
    fn take_report(&mut self, event: Trb, now: u64, typed: &mut VecDeque<u8>) -> Result<(), Stray> {
        let entry = self
            .ring
            .entry_at(event.parameter)
            .ok_or(Stray::NotOnReportRing)?;
        if !self.in_flight.complete(entry) {
            return Err(Stray::ReportNotInFlight);
        }
        match event.completion_code() {
            completion::SUCCESS | completion::SHORT_PACKET => {
                let len = self.report_len.saturating_sub(event.residual()) as usize;
                let report = self.reports.bytes(entry * REPORT_STRIDE, len);
                self.decoder
                    .report(report, now, &mut |byte| typed.push_back(byte));
                self.restarts.good_report();
                if !self.restarting {
                    self.queue_reports();
                }
            }
            code => self.halted = Some(code),
        }
        Ok(())
    }
}

/// Fills `device`'s input context for Address Device (`add` =
/// [`spec::ADD_SLOT_AND_EP0`]) or Evaluate Context (`add` = [`spec::ADD_EP0`]: endpoint
/// 0's max packet size), with the slot's last context `entries`; returns its address.
fn input_context(device: &mut Device, size: usize, add: u32, entries: u8) -> u64 {
    let input = &mut device.input;
    input.bytes_mut(0, CONTEXT_BYTES).fill(0);
    input.write32(spec::INPUT_ADD_FLAGS, add);
    let slot = spec::context_offset(1, size);
    input.write32(slot, spec::slot_dword0(device.speed, entries));
    input.write32(slot + 4, spec::slot_dword1(device.port));
    let ep0 = spec::context_offset(2, size);
    input.write32(
        ep0 + 4,
        spec::endpoint_dword1(endpoint::CONTROL, device.control_max_packet),
    );
    input.write64(ep0 + 8, spec::endpoint_dequeue(device.control.phys(), true));
    input.write32(ep0 + 16, spec::endpoint_dword4(8, 0));
    input.phys()
}

/// The TRBs of one control transfer on endpoint 0, and what its events said so far.
struct ControlTransfer {
    /// The Setup Stage TRB's address.
    setup: u64,
    /// The Data Stage TRB's address, with a data stage.
    data: Option<u64>,
    /// The Status Stage TRB's address (it interrupts on completion).
    status: u64,
    /// Bytes asked for IN.
    len: u16,
    /// Bytes received, once a short packet ended the data stage.
    received: Option<usize>,
}

/// How Reset Endpoint takes a halted endpoint to Stopped (xHCI 4.6.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    /// Transfer State Preserve: the host keeps the endpoint's data toggle, a soft retry
    /// (xHCI 4.6.8.1) of a USB Transaction Error the device never saw as one.
    Soft,
    /// The host's data toggle goes back to DATA0; for a report endpoint the device's is
    /// reset too (CLEAR_FEATURE(ENDPOINT_HALT)), or the next report would look like a
    /// repeat to the host and be dropped.
    Hard,
}

/// What a control transfer's event means ([`ControlTransfer::on_event`]).
#[derive(Debug, PartialEq, Eq)]
enum ControlStep {
    /// More events to come.
    Waiting,
    /// The event names none of this transfer's TRBs: a stray one, dropped.
    NotOurs,
    /// The status stage succeeded: the transfer is over, with this many bytes IN.
    Done(usize),
    /// A stage failed with this completion code: the endpoint halted.
    Halted(u8),
}

impl ControlTransfer {
    /// Takes a Transfer Event of endpoint 0. Only an event for one of this transfer's
    /// TRBs counts: a repeat, or a late one of an earlier transfer (given up on, or
    /// whose data stage ended short), names a TRB the controller is done with and is
    /// dropped ([`ControlStep::NotOurs`]), so that it neither ends this transfer nor
    /// restarts the endpoint (whose dequeue pointer would then skip the TRBs the
    /// controller still owns). A repeated short packet keeps the first one's count.
    fn on_event(&mut self, event: &Trb) -> ControlStep {
        let at = event.parameter;
        if at != self.setup && Some(at) != self.data && at != self.status {
            return ControlStep::NotOurs;
        }
        match event.completion_code() {
            completion::SHORT_PACKET if Some(at) == self.data => {
                let residual = event.residual() as usize;
                self.received
                    .get_or_insert(usize::from(self.len).saturating_sub(residual));
                ControlStep::Waiting
            }
            completion::SUCCESS if at == self.status => {
                ControlStep::Done(self.received.unwrap_or(usize::from(self.len)))
            }
            completion::SUCCESS => ControlStep::Waiting,
            code => ControlStep::Halted(code),
        }
    }
}

/// Fills `device`'s input context for Configure Endpoint adding `keyboard`'s interrupt
/// IN endpoint (xHCI 4.6.6); returns its address.
fn configure_context(device: &mut Device, size: usize, keyboard: &Keyboard) -> u64 {
    let dci = keyboard.descriptor.dci();
    let input = &mut device.input;
    input.bytes_mut(0, CONTEXT_BYTES).fill(0);
    input.write32(spec::INPUT_ADD_FLAGS, spec::ADD_SLOT | (1 << dci));
    let slot = spec::context_offset(1, size);
    input.write32(slot, spec::slot_dword0(device.speed, dci));
    input.write32(slot + 4, spec::slot_dword1(device.port));
    let context = spec::context_offset(usize::from(dci) + 1, size);
    let max_packet = keyboard.descriptor.max_packet;
    input.write32(
        context,
        spec::endpoint_dword0(usb::interrupt_interval(
            device.speed,
            keyboard.descriptor.interval,
        )),
    );
    input.write32(
        context + 4,
        spec::endpoint_dword1(endpoint::INTERRUPT_IN, max_packet),
    );
    input.write64(
        context + 8,
        spec::endpoint_dequeue(keyboard.ring.phys(), true),
    );
    input.write32(
        context + 16,
        spec::endpoint_dword4(BOOT_REPORT_LEN, max_packet),
    );
    input.phys()
}

/// `memory`, if a controller without 64-bit addressing can reach it.
fn reachable(memory: Dma, addresses_64: bool) -> Result<Dma, DeviceError> {
    if !addresses_64 && memory.phys() + memory.len() as u64 > 1 << 32 {
        return Err(DeviceError::Unsupported("64-bit addressing (AC64)"));
    }
    Ok(memory)
}

impl KeyboardDevice for Xhci {
    fn read_byte(&mut self) -> Result<Option<u8>, DeviceError> {
        if let Some(byte) = self.typed.pop_front() {
            return Ok(Some(byte));
        }
        if let Some(why) = self.failed {
            return Err(DeviceError::Failed(why));
        }
        self.poll()?;
        if self.typed.is_empty() {
            self.type_repeats();
        }
        Ok(self.typed.pop_front())
    }

    fn attached(&self) -> Result<String, DeviceError> {
        if let Some(why) = self.failed {
            return Err(DeviceError::Failed(why));
        }
        let ports: Vec<String> = self
            .devices
            .iter()
            .filter(|device| device.keyboard.is_some())
            .map(|device| format!("port {}", device.port))
            .collect();
        Ok(if !ports.is_empty() {
            format!("USB keyboard on {}", ports.join(", "))
        } else if !self.connections.is_empty() {
            String::from("USB controller: no keyboard attached yet (a device is connecting)")
        } else {
            String::from("USB controller: no keyboard attached")
        })
    }
}

impl Drop for Xhci {
    /// Halts the controller so it stops using the memory about to go back; a controller
    /// that does not report halted (USBSTS.HCH) may still use it, so it is kept for good.
    fn drop(&mut self) {
        let op = &self.registers.op;
        op.write32(op::USBCMD, op.read32(op::USBCMD) & !op::CMD_RUN);
        let halted = wait_until(
            self.platform,
            "the controller to halt",
            STATE_TIMEOUT_MS,
            || op.read32(op::USBSTS) & op::STS_HALTED != 0,
        );
        if let Err(error) = halted {
            log::warn!("{} xhci: {error}", self.address);
            let devices = self.devices.iter_mut().flat_map(Device::memory_mut);
            rexo_devio::abandon_to_device(
                &format_args!("{} xhci", self.address),
                [
                    &mut self.dcbaa,
                    self.commands.memory_mut(),
                    self.events.memory_mut(),
                ]
                .into_iter()
                .chain(&mut self.controller_memory)
                .chain(devices),
            );
        }
    }
}

impl Device {
    /// Every block of DMA memory the controller is given for this device.
    fn memory_mut(&mut self) -> impl Iterator<Item = &mut Dma> {
        let keyboard = self
            .keyboard
            .iter_mut()
            .flat_map(|keyboard| [keyboard.ring.memory_mut(), &mut keyboard.reports]);
        [
            &mut self.output,
            &mut self.input,
            self.control.memory_mut(),
            &mut self.buffer,
        ]
        .into_iter()
        .chain(&mut self.kept)
        .chain(keyboard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_devio::host::HostPlatform;

    /// The driver's log lines, caught per test thread.
    mod captured_log {
        use std::cell::RefCell;
        use std::string::{String, ToString};
        use std::vec::Vec;

        std::thread_local! {
            /// This thread's lines since it last took them.
            static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        }

        /// Keeps every record's message in [`LINES`] of the thread that logs it.
        struct Capture;

        impl log::Log for Capture {
            fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                true
            }

            fn log(&self, record: &log::Record<'_>) {
                LINES.with(|lines| lines.borrow_mut().push(record.args().to_string()));
            }

            fn flush(&self) {}
        }

        /// The lines this thread logged since the last call (the first call installs
        /// the logger).
        pub fn take() -> Vec<String> {
            static INSTALL: std::sync::Once = std::sync::Once::new();
            INSTALL.call_once(|| {
                log::set_logger(&Capture).expect("no other logger in the tests");
                log::set_max_level(log::LevelFilter::Trace);
            });
            LINES.with(|lines| lines.take())
        }
    }

    /// Capability registers in plain memory: one slot, one port, doorbells at 0x1000,
    /// runtime registers at 0x1800, the operational registers at `cap_length`.
    fn capability_registers(cap_length: u8) -> Mmio {
        let bar = rexo_devio::host::registers(0x2000);
        bar.write32(cap::CAPLENGTH, u32::from(cap_length));
        bar.write32(cap::HCSPARAMS1, 1 << 24 | 1);
        bar.write32(cap::DBOFF, 0x1000);
        bar.write32(cap::RTSOFF, 0x1800);
        bar
    }

    /// A keyboard on endpoint 1 IN (DCI 3) with its reports queued, its memory from
    /// `platform`.
    fn keyboard(platform: &'static HostPlatform) -> Keyboard {
        let mut keyboard = unqueued_keyboard(platform);
        keyboard.queue_reports();
        keyboard
    }

    /// A keyboard on endpoint 1 IN (DCI 3) before Configure Endpoint, no report queued,
    /// its memory (ring and reports) from `platform`.
    fn unqueued_keyboard(platform: &'static HostPlatform) -> Keyboard {
        Keyboard {
            descriptor: usb::BootKeyboard {
                configuration: 1,
                interface: 0,
                endpoint: 0x81,
                max_packet: 8,
                interval: 10,
            },
            report_len: 8,
            ring: ProducerRing::new(
                Dma::new(platform, REPORT_RING_TRBS * trb::SIZE).unwrap(),
                REPORT_RING_TRBS,
            ),
            in_flight: InFlight::new(REPORT_RING_TRBS),
            reports: Dma::new(platform, REPORT_RING_TRBS * REPORT_STRIDE).unwrap(),
            decoder: hid::BootKeyboard::new(),
            doorbell_due: false,
            halted: None,
            restarts: Restarts::default(),
            restarting: false,
        }
    }

    /// A Transfer Event with completion `code` for report ring entry `entry`.
    fn report_event(keyboard: &Keyboard, entry: usize, code: u8) -> Trb {
        Trb {
            parameter: keyboard.ring.address_of(entry),
            status: u32::from(code) << 24,
            control: (1 << 24) | (3 << 16) | (trb::TRANSFER_EVENT << 10) | trb::CYCLE,
        }
    }

    #[test]
    fn repeated_report_events_queue_nothing_more() {
        let mut keyboard = keyboard(HostPlatform::leaked());
        let mut typed = VecDeque::new();
        assert_eq!(keyboard.ring.next_index(), REPORTS_IN_FLIGHT);
        let first = report_event(&keyboard, 0, completion::SUCCESS);
        keyboard.take_report(first, 0, &mut typed).unwrap();
        assert_eq!(keyboard.ring.next_index(), REPORTS_IN_FLIGHT + 1);
        // A faulty controller repeats the event, more often than the ring has entries.
        for _ in 0..2 * REPORT_RING_TRBS {
            let repeat = keyboard.take_report(first, 0, &mut typed);
            assert_eq!(repeat, Err(Stray::ReportNotInFlight));
        }
        let never_queued = report_event(&keyboard, 40, completion::SUCCESS);
        let taken = keyboard.take_report(never_queued, 0, &mut typed);
        assert_eq!(taken, Err(Stray::ReportNotInFlight));
        let elsewhere = Trb {
            parameter: keyboard.ring.phys() + 0x1_0000,
            ..first
        };
        let taken = keyboard.take_report(elsewhere, 0, &mut typed);
        assert_eq!(taken, Err(Stray::NotOnReportRing));
        assert_eq!(keyboard.ring.next_index(), REPORTS_IN_FLIGHT + 1);
        assert_eq!(keyboard.in_flight.count(), REPORTS_IN_FLIGHT);
        // A repeated error does not halt the endpoint again.
        let failed = report_event(&keyboard, 1, completion::STALL);
        keyboard.take_report(failed, 0, &mut typed).unwrap();
        keyboard.halted = None;
        let repeat = keyboard.take_report(failed, 0, &mut typed);
        assert_eq!(repeat, Err(Stray::ReportNotInFlight));
        assert_eq!(keyboard.halted, None);
        // The next report in order is taken.
        let second = report_event(&keyboard, 2, completion::SUCCESS);
        keyboard.take_report(second, 0, &mut typed).unwrap();
        assert_eq!(keyboard.ring.next_index(), REPORTS_IN_FLIGHT + 3);
    }

    /// A running controller whose registers are plain memory ([`controller`] with one
    /// slot), with its rings and one addressed keyboard in slot 1 on port 1, and the
    /// platform that lent its memory (9 blocks).
    fn controller_with_a_keyboard() -> (Xhci, &'static HostPlatform) {
        let (mut xhci, platform) = controller(1);
        let mut device = device_on(&xhci, 1, 1);
        device.keyboard = Some(keyboard(platform));
        xhci.devices.push(device);
        (xhci, platform)
    }

    #[test]
    fn a_controller_that_does_not_halt_keeps_its_memory_and_one_that_halts_gives_it_back() {
        for (status, live_after) in [(0, 9), (op::STS_HALTED, 0)] {
            let (xhci, platform) = controller_with_a_keyboard();
            xhci.registers.op.write32(op::USBCMD, op::CMD_RUN);
            xhci.registers.op.write32(op::USBSTS, status);
            assert_eq!(platform.live(), 9);
            drop(xhci);
            assert_eq!(platform.live(), live_after, "USBSTS {status:#x}");
        }
    }

    #[test]
    fn a_controller_that_halts_while_the_core_is_away_past_the_deadline_gives_its_memory_back() {
        let (xhci, platform) = controller_with_a_keyboard();
        let registers = xhci.registers.op.clone();
        registers.write32(op::USBCMD, op::CMD_RUN);
        registers.write32(op::USBSTS, 0);
        let readings = std::sync::atomic::AtomicU32::new(0);
        platform.on_clock_reading(move || {
            // At the second reading the core comes back from far past the deadline, and
            // the controller has halted meanwhile.
            if readings.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 1 {
                platform.advance_clock(2 * STATE_TIMEOUT_MS * 1_000_000);
                registers.write32(op::USBSTS, op::STS_HALTED);
            }
        });
        drop(xhci);
        assert_eq!(platform.live(), 0);
    }

    #[test]
    fn operational_registers_at_an_unaligned_caplength_are_refused() {
        let address = Address {
            segment: 0,
            bus: 0,
            device: 3,
            function: 0,
        };
        for cap_length in [0x21, 0x22, 0x23] {
            let bar = capability_registers(cap_length);
            assert!(
                matches!(
                    Xhci::start(bar, HostPlatform::leaked(), address, || {}),
                    Err(DeviceError::BadBar { index: 0, .. })
                ),
                "CAPLENGTH {cap_length:#x}"
            );
        }
    }

    /// A controller in plain memory that clears HCRST 1 ms after it is written and sets
    /// USBSTS's CNR while `not_ready(now, reset)` (`reset`: when HCRST was first seen,
    /// `u64::MAX` before), halted while R/S is clear; before HCRST the clock moves
    /// `tick_ns` a reading. Its registers, its operational window and when HCRST came.
    fn resetting_controller(
        platform: &'static HostPlatform,
        tick_ns: u64,
        not_ready: impl Fn(u64, u64) -> bool + Send + Sync + 'static,
    ) -> (Mmio, Mmio, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        use std::sync::atomic::{AtomicU64, Ordering};
        let bar = capability_registers(0x20);
        bar.write32(cap::HCCPARAMS1, cap::AC64);
        let op = bar.window(0x20, op::CONFIG + 4).unwrap();
        op.write32(op::PAGESIZE, op::PAGESIZE_4K);
        op.write32(op::USBSTS, op::STS_NOT_READY | op::STS_HALTED);
        let reset_at = std::sync::Arc::new(AtomicU64::new(u64::MAX));
        let (device, reset_seen) = (op.clone(), reset_at.clone());
        platform.on_clock_reading(move || {
            let now = platform.clock();
            let command = device.read32(op::USBCMD);
            if command & op::CMD_RESET != 0 && reset_seen.load(Ordering::Relaxed) == u64::MAX {
                reset_seen.store(now, Ordering::Relaxed);
            }
            let reset = reset_seen.load(Ordering::Relaxed);
            if reset == u64::MAX {
                platform.advance_clock(tick_ns);
            }
            if command & op::CMD_RESET != 0 && now >= reset.saturating_add(rexo_devio::NS_PER_MS) {
                device.write32(op::USBCMD, command & !op::CMD_RESET);
            }
            let halted = command & op::CMD_RUN == 0;
            device.write32(
                op::USBSTS,
                if not_ready(now, reset) {
                    op::STS_NOT_READY
                } else {
                    0
                } | if halted { op::STS_HALTED } else { 0 },
            );
        });
        (bar, op, reset_at)
    }

    #[test]
    fn the_reset_waits_for_cnr_before_any_operational_write_and_1_ms_after_hcrst() {
        use rexo_devio::NS_PER_MS;
        use std::sync::atomic::Ordering;
        /// When the controller is first ready (CNR clears), and how long CNR stays set
        /// again after HCRST.
        const READY_AT_NS: u64 = 5_000_000;
        const RESET_NOT_READY_NS: u64 = 2_000_000;
        let platform = HostPlatform::leaked();
        // CNR until READY_AT_NS and for a while after HCRST.
        let (bar, op, reset_at) = resetting_controller(platform, 0, |now, reset| {
            now < READY_AT_NS || (reset..reset.saturating_add(RESET_NOT_READY_NS)).contains(&now)
        });
        rexo_devio::host::record_accesses(&op, platform);
        let address = Address::new(0, 0, 3, 0).unwrap();
        let xhci = Xhci::start(bar, platform, address, || {}).unwrap();
        let accesses = rexo_devio::host::take_accesses(&op);
        let reset = reset_at.load(Ordering::Relaxed);
        let reset_write = accesses
            .iter()
            .position(|access| {
                access.offset == op::USBCMD
                    && access
                        .written
                        .is_some_and(|value| value & u64::from(op::CMD_RESET) != 0)
            })
            .expect("HCRST written");
        let after = accesses[reset_write + 1];
        assert!(
            after.at_ns >= accesses[reset_write].at_ns + NS_PER_MS,
            "{after:?} within 1 ms of HCRST at {} ns",
            accesses[reset_write].at_ns
        );
        for (index, access) in accesses.iter().enumerate() {
            let not_ready = access.at_ns < READY_AT_NS
                || (reset..reset + RESET_NOT_READY_NS).contains(&access.at_ns);
            assert!(
                access.written.is_none() || !not_ready || index == reset_write,
                "{access:?} written while CNR was set"
            );
        }
        drop(xhci);
    }

    #[test]
    fn a_controller_not_ready_until_its_reset_is_reset_after_5_s_and_comes_up() {
        use rexo_devio::NS_PER_MS;
        use std::sync::atomic::Ordering;
        let platform = HostPlatform::leaked();
        // CNR set until HCRST clears it, 1 ms after the write. Before HCRST the clock
        // moves a millisecond a reading, so the 5 s wait takes 5,000 readings.
        let (bar, op, reset_at) = resetting_controller(platform, NS_PER_MS, |now, reset| {
            now < reset.saturating_add(NS_PER_MS)
        });
        captured_log::take();
        let address = Address::new(0, 0, 3, 0).unwrap();
        let xhci = Xhci::start(bar, platform, address, || {})
            .expect("a controller not ready before its reset comes up");
        let reset = reset_at.load(Ordering::Relaxed);
        assert!(
            (READY_TIMEOUT_MS * NS_PER_MS..u64::MAX).contains(&reset),
            "HCRST written at {reset} ns, before the 5 s wait ended"
        );
        assert_ne!(op.read32(op::USBCMD) & op::CMD_RUN, 0, "running");
        assert_eq!(
            captured_log::take(),
            [format!(
                "{address} xhci: not ready (USBSTS.CNR) after 5000 ms; resetting it anyway"
            )]
        );
        drop(xhci);
    }

    #[test]
    fn a_config_space_error_in_the_port_switch_is_warned_of_and_the_controller_started() {
        use routing::{USB2PRM, USB3_PSSEN, USB3PRM, XUSB2PR};
        let address = Address::new(0, 0, 0x14, 0).unwrap();
        for failing in [USB3PRM, USB3_PSSEN, USB2PRM, XUSB2PR] {
            let platform = HostPlatform::leaked();
            let (bar, op, _) = resetting_controller(platform, 0, |_, _| false);
            let config = routing::tests::four_switchable_ports_failing_at(Some(failing));
            captured_log::take();
            let xhci = Xhci::start(bar, platform, address, || {
                routing::switch_ports_or_warn(address, 0x8086, 0x1E31, &config)
            });
            assert!(
                xhci.is_ok(),
                "config {failing:#x} failing: the probe failed"
            );
            assert_ne!(op.read32(op::USBCMD) & op::CMD_RUN, 0, "running");
            assert_eq!(
                captured_log::take(),
                [format!(
                    "{address} xhci: ports not all switched over from EHCI (configuration space: \
                     configuration access at {failing:#x} failed); starting it anyway: a keyboard \
                     on a port left to EHCI is not seen"
                )]
            );
        }
    }

    /// A running controller in plain memory with `max_slots` slots, no device yet, and
    /// two root ports with a device connected and enabled; USBSTS says halted, so that
    /// dropping it does not wait. And the platform that lent its memory.
    fn controller(max_slots: u8) -> (Xhci, &'static HostPlatform) {
        let platform = HostPlatform::leaked();
        let bar = rexo_devio::host::registers(0x2000);
        let ports = 2;
        let op = bar.window(0x20, op::CONFIG + 4).unwrap();
        op.write32(op::USBSTS, op::STS_HALTED);
        let registers = Registers {
            ports: bar
                .window(0x20 + op::PORTSC, usize::from(ports) * op::PORT_STRIDE)
                .unwrap(),
            interrupter: bar.window(0x1800 + rt::INTERRUPTER0, 0x20).unwrap(),
            doorbells: bar
                .window(0x1000, (usize::from(max_slots) + 1) * 4)
                .unwrap(),
            op,
        };
        for port in 1..=ports {
            registers.set_portsc(port, 0, port::CONNECTED | port::ENABLED);
        }
        let dma = |bytes| Dma::new(platform, bytes).unwrap();
        let xhci = Xhci {
            address: Address {
                segment: 0,
                bus: 0,
                device: 3,
                function: 0,
            },
            registers,
            platform,
            context_size: 32,
            addresses_64: true,
            max_slots,
            ports,
            scratchpads: 0,
            dcbaa: dma((usize::from(max_slots) + 1) * 8),
            controller_memory: Vec::new(),
            commands: ProducerRing::new(dma(COMMAND_RING_TRBS * trb::SIZE), COMMAND_RING_TRBS),
            events: EventRing::new(dma(EVENT_RING_TRBS * trb::SIZE), EVENT_RING_TRBS),
            devices: Vec::new(),
            typed: VecDeque::new(),
            last_health_check: 0,
            strays: StrayEvents::default(),
            failed: None,
            events_lost: false,
            connections: Connections::default(),
            port_changes: Vec::new(),
            skipped: Vec::new(),
        };
        (xhci, platform)
    }

    /// A successful Command Completion Event for command ring entry `entry` of `xhci`,
    /// naming slot `slot`, on the event ring's first pass.
    fn command_done(xhci: &Xhci, entry: usize, slot: u8) -> Trb {
        Trb {
            parameter: xhci.commands.address_of(entry),
            status: u32::from(completion::SUCCESS) << 24,
            control: u32::from(slot) << 24 | trb::COMMAND_COMPLETION << 10 | trb::CYCLE,
        }
    }

    /// A full-speed device of `xhci` in slot `slot` on port `port`, no keyboard.
    fn device_on(xhci: &Xhci, slot: u8, port: u8) -> Device {
        let dma = |bytes| Dma::new(xhci.platform, bytes).unwrap();
        Device {
            slot,
            port,
            speed: usb::speed::FULL,
            output: dma(CONTEXT_BYTES),
            input: dma(CONTEXT_BYTES),
            control: ProducerRing::new(dma(CONTROL_RING_TRBS * trb::SIZE), CONTROL_RING_TRBS),
            control_max_packet: 8,
            buffer: dma(DESCRIPTOR_BUFFER),
            keyboard: None,
            kept: Vec::new(),
        }
    }

    #[test]
    fn a_command_answer_that_came_while_the_core_was_away_past_the_deadline_is_taken() {
        let (mut xhci, platform) = controller(4);
        let events = platform.device_view(xhci.events.memory());
        let answer = command_done(&xhci, 0, 1);
        let readings = std::sync::atomic::AtomicU32::new(0);
        platform.on_clock_reading(move || {
            // At the first reading in the wait the core comes back from far away, and
            // the controller answered meanwhile (the event ring's first entry).
            if readings.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 1 {
                platform.advance_clock(COMMAND_TIMEOUT_MS * 2_000_000);
                events.write64(0, answer.parameter);
                events.write32(8, answer.status);
                events.write32(12, answer.control);
            }
        });
        let done = xhci.command("Enable Slot", Trb::enable_slot());
        assert_eq!(done.map(|event| event.slot()), Ok(1));
    }

    /// Writes `event` into entry `index` of the event ring through the device's view
    /// `events`, as the controller does while the driver waits.
    fn post_from_device(events: &Mmio, index: usize, event: Trb) {
        let at = index * trb::SIZE;
        events.write64(at, event.parameter);
        events.write32(at + 8, event.status);
        events.write32(at + 12, event.control);
    }

    /// A Command Completion Event with completion `code` for the command at `at`.
    fn command_event(at: u64, code: u8) -> Trb {
        Trb {
            parameter: at,
            status: u32::from(code) << 24,
            control: trb::COMMAND_COMPLETION << 10 | trb::CYCLE,
        }
    }

    #[test]
    fn a_command_that_timed_out_is_aborted_and_the_next_command_runs() {
        let (mut xhci, platform) = controller(4);
        let op = xhci.registers.op.clone();
        let events = platform.device_view(xhci.events.memory());
        let commands = platform.device_view(xhci.commands.memory_mut());
        let (first, second) = (xhci.commands.address_of(0), xhci.commands.address_of(1));
        // The controller fetched the first command and hangs on it: its command ring
        // runs until CRCR.CA, and only then does it take the next command.
        op.write32(op::CRCR, op::CRCR_RUNNING);
        let aborted = std::sync::atomic::AtomicBool::new(false);
        let answered = std::sync::atomic::AtomicBool::new(false);
        let registers = op.clone();
        platform.on_clock_reading(move || {
            use std::sync::atomic::Ordering::Relaxed;
            if registers.read32(op::CRCR) & op::CRCR_ABORT as u32 != 0 {
                registers.write32(op::CRCR, 0);
                post_from_device(
                    &events,
                    0,
                    command_event(first, completion::COMMAND_ABORTED),
                );
                let stopped = command_event(second, completion::COMMAND_RING_STOPPED);
                post_from_device(&events, 1, stopped);
                aborted.store(true, Relaxed);
            }
            let queued = commands.read32(trb::SIZE + 12) & trb::CYCLE != 0;
            if aborted.load(Relaxed) && queued && !answered.swap(true, Relaxed) {
                post_from_device(&events, 2, command_event(second, completion::SUCCESS));
            }
        });
        captured_log::take();
        assert_eq!(
            xhci.command("Configure Endpoint", Trb::configure_endpoint(0x1000, 1)),
            Err(DeviceError::Timeout {
                what: "Configure Endpoint",
                ms: COMMAND_TIMEOUT_MS
            })
        );
        assert_eq!(
            op.read32(op::CRCR) & op::CRCR_RUNNING,
            0,
            "the ring stopped"
        );
        // The abort's own events are not strays, nor taken for the next command's.
        let done = xhci.command("Enable Slot", Trb::enable_slot());
        assert_eq!(
            done.map(|event| event.completion_code()),
            Ok(completion::SUCCESS)
        );
        assert!(xhci.failed.is_none());
        assert_eq!(captured_log::take(), Vec::<String>::new());
    }

    #[test]
    fn a_command_that_completed_just_before_its_abort_returns_its_completion() {
        let no_slots_available = 9;
        for code in [completion::SUCCESS, no_slots_available] {
            let (mut xhci, platform) = controller(4);
            let op = xhci.registers.op.clone();
            let events = platform.device_view(xhci.events.memory());
            let (first, next) = (xhci.commands.address_of(0), xhci.commands.address_of(1));
            // Enable Slot completes (slot 2) only as CRCR.CA lands: its completion
            // comes before the Command Ring Stopped event of the idle ring.
            op.write32(op::CRCR, op::CRCR_RUNNING);
            let registers = op.clone();
            platform.on_clock_reading(move || {
                if registers.read32(op::CRCR) & op::CRCR_ABORT as u32 != 0 {
                    registers.write32(op::CRCR, 0);
                    let done = Trb {
                        control: 2 << 24 | command_event(first, code).control,
                        ..command_event(first, code)
                    };
                    post_from_device(&events, 0, done);
                    let stopped = command_event(next, completion::COMMAND_RING_STOPPED);
                    post_from_device(&events, 1, stopped);
                }
            });
            captured_log::take();
            let answer = xhci.command("Enable Slot", Trb::enable_slot());
            let expected = if code == completion::SUCCESS {
                Ok(2)
            } else {
                Err(DeviceError::Status {
                    what: "Enable Slot",
                    status: code.into(),
                })
            };
            assert_eq!(answer.map(|event| event.slot()), expected);
            assert!(xhci.failed.is_none());
            assert_eq!(captured_log::take(), Vec::<String>::new(), "no stray");
        }
    }

    #[test]
    fn a_command_whose_abort_does_not_stop_the_ring_fails_the_controller() {
        let (mut xhci, platform) = controller(4);
        // The command ring runs on, CA or not (CRR is read-only: a write leaves it).
        let registers = xhci.registers.op.clone();
        platform.on_clock_reading(move || {
            registers.write32(op::CRCR, registers.read32(op::CRCR) | op::CRCR_RUNNING);
        });
        let why = "a timed-out command could not be aborted (CRCR.CRR stayed set)";
        assert_eq!(
            xhci.command("Enable Slot", Trb::enable_slot()),
            Err(DeviceError::Failed(why))
        );
        assert_eq!(xhci.read_byte(), Err(DeviceError::Failed(why)));
        assert_eq!(
            xhci.command("Enable Slot", Trb::enable_slot()),
            Err(DeviceError::Failed(why))
        );
        assert_eq!(
            xhci.commands.next_index(),
            1,
            "no command after the failure"
        );
    }

    #[test]
    fn a_command_the_controller_never_fetched_is_skipped_and_never_runs() {
        use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
        use std::sync::{Arc, Mutex};
        let (mut xhci, platform) = controller(4);
        let op = xhci.registers.op.clone();
        let writer = EventWriter {
            events: platform.device_view(xhci.events.memory()),
            written: Arc::new(AtomicUsize::new(0)),
        };
        let commands = platform.device_view(xhci.commands.memory_mut());
        let ring = xhci.commands.address_of(0);
        let ran = Arc::new(Mutex::new(Vec::new()));
        let ran_by_controller = ran.clone();
        let (running, dequeue, slots) = (
            AtomicBool::new(false),
            AtomicUsize::new(0),
            AtomicU8::new(0),
        );
        // The first command's doorbell is lost: the command ring stays stopped (CRR
        // clear) until the second command's doorbell starts it at its dequeue pointer,
        // entry 0. Then it runs every command it owns from there in turn, Enable Slot
        // giving slots 1, 2...
        platform.on_clock_reading(move || {
            if !running.load(Relaxed) {
                if commands.read32(trb::SIZE + 12) & trb::CYCLE != 0 {
                    running.store(true, Relaxed);
                    op.write32(op::CRCR, op::CRCR_RUNNING);
                }
                return;
            }
            let entry = dequeue.load(Relaxed);
            let control = commands.read32(entry * trb::SIZE + 12);
            if control & trb::CYCLE != 0 {
                let kind = control >> 10 & 0x3F;
                let slot = if kind == trb::ENABLE_SLOT {
                    slots.fetch_add(1, Relaxed) + 1
                } else {
                    0
                };
                let at = ring + (entry * trb::SIZE) as u64;
                let done = command_event(at, completion::SUCCESS);
                writer.write(Trb {
                    control: u32::from(slot) << 24 | done.control,
                    ..done
                });
                ran_by_controller.lock().unwrap().push(kind);
                dequeue.store(entry + 1, Relaxed);
            }
        });
        captured_log::take();
        assert_eq!(
            xhci.command("Enable Slot", Trb::enable_slot()),
            Err(DeviceError::Timeout {
                what: "Enable Slot",
                ms: COMMAND_TIMEOUT_MS
            })
        );
        // The command never fetched does not run before the next one (taking a slot
        // nobody would free): a No Op does, whose completion is no stray.
        let done = xhci.command("Enable Slot", Trb::enable_slot());
        assert_eq!(done.map(|event| event.slot()), Ok(1));
        assert_eq!(*ran.lock().unwrap(), [trb::NO_OP_COMMAND, trb::ENABLE_SLOT]);
        assert!(xhci.skipped.is_empty(), "the No Op's completion was seen");
        assert!(xhci.failed.is_none());
        assert_eq!(captured_log::take(), Vec::<String>::new());
    }

    #[test]
    fn enable_slot_giving_a_slot_in_use_is_refused_and_overwrites_nothing() {
        let (mut xhci, _) = controller(4);
        // The device on port 1 was given slot 2.
        let first = device_on(&xhci, 2, 1);
        let first_output = first.output.phys();
        xhci.dcbaa.write64(2 * 8, first_output);
        xhci.devices.push(first);
        // Enable Slot for port 2's device answers slot 2 again.
        let event = command_done(&xhci, 0, 2);
        xhci.events.post(0, event);
        assert_eq!(
            xhci.attach(2),
            Err(DeviceError::BadIndex {
                what: "device slot from Enable Slot (another device's already)",
                index: 2,
                size: 4,
            })
        );
        assert_eq!(xhci.devices.len(), 1, "no second device on slot 2");
        assert_eq!(xhci.devices[0].port, 1);
        assert_eq!(xhci.dcbaa.read64(2 * 8), first_output, "its context stays");
        assert_eq!(
            xhci.commands.next_index(),
            1,
            "no command after Enable Slot"
        );
    }

    #[test]
    fn a_stray_event_in_a_poll_is_logged_and_an_endpoint_halted_before_it_restarted() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        captured_log::take();
        let stalled = report_event(
            xhci.devices[0].keyboard.as_ref().unwrap(),
            0,
            completion::STALL,
        );
        // The report stalls, and a Transfer Event for a slot without a device follows.
        xhci.events.post(0, stalled);
        let stray = Trb {
            control: stalled.control & !(0xFF << 24) | 3 << 24,
            ..stalled
        };
        xhci.events.post(1, stray);
        // The stray event is dropped; the same poll restarts the endpoint (Reset
        // Endpoint, which this controller fails with a TRB Error, the endpoint not
        // Halted in its context: the keyboard is given up).
        let trb_error = &[5];
        answer_commands(&mut xhci, platform, 2, trb_error);
        assert_eq!(xhci.read_byte(), Ok(None));
        let sent: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
        assert_eq!(sent, [trb::RESET_ENDPOINT, trb::DISABLE_SLOT]);
        let logged = captured_log::take();
        assert!(
            logged
                .iter()
                .any(|line| line.contains("slot without a device") && line.contains("slot 3")),
            "{logged:?}"
        );
    }

    /// A Transfer Event of slot `slot`, endpoint `dci`, for the TRB at `at`, successful.
    fn transfer_event(slot: u8, dci: u8, at: u64) -> Trb {
        Trb {
            parameter: at,
            status: u32::from(completion::SUCCESS) << 24,
            control: u32::from(slot) << 24
                | u32::from(dci) << 16
                | trb::TRANSFER_EVENT << 10
                | trb::CYCLE,
        }
    }

    #[test]
    fn stray_events_during_a_command_are_logged_and_the_command_still_completes() {
        let (mut xhci, _) = controller_with_a_keyboard();
        captured_log::take();
        let report_ring = xhci.devices[0].keyboard.as_ref().unwrap().ring.phys();
        let strays = [
            transfer_event(3, 3, report_ring),
            command_done(&xhci, 7, 1),
            transfer_event(1, 3, report_ring + 0x1_0000),
            transfer_event(1, 1, 0x1234_0000),
            // An MFINDEX Wrap Event (type 39), never enabled.
            Trb::new(39, 0, 0, trb::CYCLE),
        ];
        for (entry, stray) in strays.into_iter().enumerate() {
            xhci.events.post(entry, stray);
        }
        xhci.events.post(strays.len(), command_done(&xhci, 0, 1));
        let done = xhci.command("Enable Slot", Trb::enable_slot());
        assert_eq!(done.map(|event| event.slot()), Ok(1));
        let logged = captured_log::take();
        for cause in [
            Stray::UnknownSlot,
            Stray::NotThisCommand,
            Stray::NotOnReportRing,
            Stray::NotThisControlTransfer,
            Stray::UnhandledType,
        ] {
            let cause = cause.to_string();
            assert!(
                logged.iter().any(|line| line.contains(&cause)),
                "{cause}: {logged:?}"
            );
        }
    }

    #[test]
    fn a_transfer_event_for_an_endpoint_the_driver_does_not_use_is_logged() {
        let (mut xhci, _) = controller_with_a_keyboard();
        captured_log::take();
        // The keyboard's device reports on endpoint 2 IN (DCI 5), which it never
        // configured.
        xhci.events.post(0, transfer_event(1, 5, 0x1000));
        assert_eq!(xhci.read_byte(), Ok(None));
        let logged = captured_log::take();
        let unused = Stray::UnusedEndpoint.to_string();
        assert!(
            logged
                .iter()
                .any(|line| line.contains(&unused) && line.contains("endpoint 5")),
            "{logged:?}"
        );
    }

    #[test]
    fn stray_transfer_events_do_not_read_the_clock() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        let (mut xhci, platform) = controller_with_a_keyboard();
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        platform.on_clock_reading(move || {
            counted.fetch_add(1, Relaxed);
        });
        // One for a slot without a device, one for an endpoint the keyboard does not use.
        xhci.events.post(0, transfer_event(3, 3, 0x1000));
        xhci.events.post(1, transfer_event(1, 5, 0x1000));
        assert_eq!(xhci.read_byte(), Ok(None));
        assert_eq!(reads.load(Relaxed), 0);
    }

    #[test]
    fn a_keyboard_whose_configure_endpoint_timed_out_keeps_its_ring_while_the_controller_runs() {
        // Halted at the drop, then not.
        for (status, live_after_drop) in [(op::STS_HALTED, 0), (0, 8)] {
            let (mut xhci, platform) = controller(1);
            xhci.devices.push(device_on(&xhci, 1, 1));
            let keyboard = unqueued_keyboard(platform);
            let ring = keyboard.ring.phys();
            assert_eq!(platform.live(), 9);
            // The controller never answers: Configure Endpoint and then Disable Slot
            // (attach's next step) time out.
            assert_eq!(
                xhci.configure_keyboard(0, keyboard),
                Err(DeviceError::Timeout {
                    what: "Configure Endpoint",
                    ms: COMMAND_TIMEOUT_MS
                })
            );
            assert_eq!(
                xhci.disable_slot(0),
                Err(DeviceError::Timeout {
                    what: "Disable Slot",
                    ms: COMMAND_TIMEOUT_MS
                })
            );
            let device = &xhci.devices[0];
            assert!(device.keyboard.is_none());
            let kept: Vec<u64> = device.kept.iter().map(Dma::phys).collect();
            assert_eq!(kept, [ring]);
            assert_eq!(
                platform.live(),
                8,
                "the report buffers went back, the ring not"
            );
            xhci.registers.op.write32(op::USBSTS, status);
            drop(xhci);
            assert_eq!(platform.live(), live_after_drop, "USBSTS {status:#x}");
        }
    }

    #[test]
    fn a_keyboard_whose_configure_endpoint_failed_has_its_slot_disabled_and_memory_back() {
        let (mut xhci, platform) = controller(1);
        let device = device_on(&xhci, 1, 1);
        xhci.dcbaa.write64(8, device.output.phys());
        xhci.devices.push(device);
        let keyboard = unqueued_keyboard(platform);
        assert_eq!(platform.live(), 9);
        // Configure Endpoint fails (Bandwidth Error); Disable Slot (attach's next step)
        // succeeds.
        let bandwidth_error = 8;
        let configure = command_event(xhci.commands.address_of(0), bandwidth_error);
        xhci.events.post(0, configure);
        xhci.events.post(1, command_done(&xhci, 1, 1));
        assert_eq!(
            xhci.configure_keyboard(0, keyboard),
            Err(DeviceError::Status {
                what: "Configure Endpoint",
                status: bandwidth_error.into()
            })
        );
        assert_eq!(platform.live(), 8, "the report ring stays with the device");
        assert_eq!(xhci.disable_slot(0), Ok(()));
        let disable = xhci.commands.memory_mut().read32(trb::SIZE + 12);
        assert_eq!(disable & !trb::CYCLE, Trb::disable_slot(1).control);
        assert!(xhci.devices.is_empty(), "slot 1 is free again");
        assert_eq!(xhci.dcbaa.read64(8), 0);
        assert_eq!(platform.live(), 3, "the device's memory and ring went back");
    }

    #[test]
    fn a_command_with_only_stray_events_times_out_and_a_controller_fault_fails_it() {
        let (mut xhci, _) = controller_with_a_keyboard();
        xhci.events.post(0, transfer_event(3, 1, 0x1000));
        assert_eq!(
            xhci.command("Enable Slot", Trb::enable_slot()),
            Err(DeviceError::Timeout {
                what: "Enable Slot",
                ms: COMMAND_TIMEOUT_MS
            })
        );
        let fault = Trb::new(trb::HOST_CONTROLLER_EVENT, 0, 4 << 24, trb::CYCLE);
        xhci.events.post(1, fault);
        assert_eq!(
            xhci.command("Enable Slot", Trb::enable_slot()),
            Err(DeviceError::Status {
                what: "host controller event",
                status: 4
            })
        );
        assert!(xhci.failed.is_some());
    }

    /// Plays a controller that answers each command of `xhci`, in order, with success
    /// once it is queued, its completions from event ring entry `first_event` on.
    fn answer_every_command(xhci: &mut Xhci, platform: &'static HostPlatform, first_event: usize) {
        answer_commands(xhci, platform, first_event, &[]);
    }

    /// [`answer_every_command`], the first commands answered with completion `codes` in
    /// turn, those after them with success.
    fn answer_commands(
        xhci: &mut Xhci,
        platform: &'static HostPlatform,
        first_event: usize,
        codes: &'static [u8],
    ) {
        let events = platform.device_view(xhci.events.memory());
        let commands = platform.device_view(xhci.commands.memory_mut());
        let ring = xhci.commands.address_of(0);
        let answered = std::sync::atomic::AtomicUsize::new(0);
        platform.on_clock_reading(move || {
            let entry = answered.load(std::sync::atomic::Ordering::Relaxed);
            if commands.read32(entry * trb::SIZE + 12) & trb::CYCLE != 0 {
                let at = ring + (entry * trb::SIZE) as u64;
                let code = codes.get(entry).copied().unwrap_or(completion::SUCCESS);
                let done = command_event(at, code);
                post_from_device(&events, first_event + entry, done);
                answered.store(entry + 1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }

    #[test]
    fn a_full_event_ring_restarts_the_report_endpoints_and_the_controller_works_on() {
        for lost in [completion::EVENT_RING_FULL, completion::EVENT_LOST] {
            let (mut xhci, platform) = controller_with_a_keyboard();
            captured_log::take();
            let event = Trb::new(
                trb::HOST_CONTROLLER_EVENT,
                0,
                u32::from(lost) << 24,
                trb::CYCLE,
            );
            xhci.events.post(0, event);
            answer_every_command(&mut xhci, platform, 1);
            assert_eq!(xhci.read_byte(), Ok(None), "code {lost}");
            assert!(xhci.failed.is_none());
            let mut kind = |entry: usize| {
                xhci.commands.memory_mut().read32(entry * trb::SIZE + 12) >> 10 & 0x3F
            };
            assert_eq!((kind(0), kind(1)), (trb::STOP_ENDPOINT, trb::SET_DEQUEUE));
            let keyboard = xhci.devices[0].keyboard.as_ref().unwrap();
            assert_eq!(
                keyboard.ring.next_index(),
                2 * REPORTS_IN_FLIGHT,
                "queued again"
            );
            assert_eq!(keyboard.in_flight.count(), REPORTS_IN_FLIGHT);
            let logged = captured_log::take();
            assert!(
                logged.iter().any(|line| line.contains("lost events")),
                "{logged:?}"
            );
        }
    }

    #[test]
    fn a_report_endpoint_not_running_after_lost_events_is_restarted_from_its_state() {
        let halted_restart = [trb::STOP_ENDPOINT, trb::RESET_ENDPOINT, trb::SET_DEQUEUE];
        let stopped_restart = [trb::STOP_ENDPOINT, trb::SET_DEQUEUE, 0];
        let halted_cleared = vec![usb::clear_halt(0x81)];
        for (state, sent, cleared) in [
            (endpoint_state::HALTED, halted_restart, halted_cleared),
            (endpoint_state::STOPPED, stopped_restart, vec![]),
        ] {
            let (mut xhci, platform) = controller_with_a_keyboard();
            // The report endpoint (DCI 3) halted or stopped, its event lost.
            let context = spec::context_offset(3, xhci.context_size);
            xhci.devices[0].output.write32(context, state.into());
            let codes = &[completion::CONTEXT_STATE_ERROR];
            let writer = play_controller(&mut xhci, platform, codes, &[]);
            let lost = u32::from(completion::EVENT_RING_FULL) << 24;
            writer.write(Trb::new(trb::HOST_CONTROLLER_EVENT, 0, lost, trb::CYCLE));
            assert_eq!(xhci.read_byte(), Ok(None), "state {state}");
            assert!(xhci.failed.is_none());
            let mut kind = |entry: usize| {
                xhci.commands.memory_mut().read32(entry * trb::SIZE + 12) >> 10 & 0x3F
            };
            assert_eq!([kind(0), kind(1), kind(2)], sent, "state {state}");
            let keyboard = xhci.devices[0].keyboard.as_ref().unwrap();
            assert_eq!(keyboard.in_flight.count(), REPORTS_IN_FLIGHT);
            // A hard reset found needed puts the host's toggle back to DATA0: the
            // device's goes with it.
            assert_eq!(setup_packets(&mut xhci), cleared, "state {state}");
        }
    }

    #[test]
    fn stray_events_during_a_control_transfer_are_dropped_and_it_completes() {
        let (mut xhci, _) = controller(1);
        let device = device_on(&xhci, 1, 1);
        // No data stage: the setup TRB is entry 0, the status TRB entry 1.
        let status = device.control.address_of(1);
        let earlier = device.control.address_of(40);
        xhci.devices.push(device);
        captured_log::take();
        xhci.events.post(0, transfer_event(3, 1, status));
        xhci.events.post(1, transfer_event(1, 1, earlier));
        xhci.events.post(2, transfer_event(1, 1, status));
        let done = xhci.control(0, "SET_CONFIGURATION", usb::set_configuration(1), 0);
        assert_eq!(done, Ok(0));
        let logged = captured_log::take();
        let control = Stray::NotThisControlTransfer.to_string();
        assert!(
            logged.iter().any(|line| line.contains(&control)),
            "{logged:?}"
        );
    }

    /// A Transfer Event of slot 1 endpoint 0 for the TRB at `at` with completion `code`
    /// and `residual` bytes not moved.
    fn control_event(at: u64, code: u8, residual: u32) -> Trb {
        Trb {
            parameter: at,
            status: u32::from(code) << 24 | residual,
            control: (1 << 24) | (1 << 16) | (trb::TRANSFER_EVENT << 10) | trb::CYCLE,
        }
    }

    #[test]
    fn a_short_data_stage_completes_its_control_transfer_once() {
        let mut transfer = ControlTransfer {
            setup: 0x1000,
            data: Some(0x1010),
            status: 0x1020,
            len: 18,
            received: None,
        };
        let short = control_event(0x1010, completion::SHORT_PACKET, 10);
        assert_eq!(transfer.on_event(&short), ControlStep::Waiting);
        // Repeated, with another count: the first one stands.
        let again = control_event(0x1010, completion::SHORT_PACKET, 0);
        assert_eq!(transfer.on_event(&again), ControlStep::Waiting);
        let status = control_event(0x1020, completion::SUCCESS, 0);
        assert_eq!(transfer.on_event(&status), ControlStep::Done(8));
        // The next transfer, on the TRBs after: the earlier one's repeated short packet
        // and status event are dropped, neither ending it nor halting the endpoint.
        let mut next = ControlTransfer {
            setup: 0x1030,
            data: Some(0x1040),
            status: 0x1050,
            len: 9,
            received: None,
        };
        for late in [short, again, status] {
            assert_eq!(next.on_event(&late), ControlStep::NotOurs);
        }
        // Nor does a late error of a transfer given up on.
        let stalled = control_event(0x1010, completion::STALL, 0);
        assert_eq!(next.on_event(&stalled), ControlStep::NotOurs);
        // Its own stall halts it; its own status ends it with every byte.
        let own_stall = control_event(0x1040, completion::STALL, 0);
        assert_eq!(
            next.on_event(&own_stall),
            ControlStep::Halted(completion::STALL)
        );
        let own_status = control_event(0x1050, completion::SUCCESS, 0);
        assert_eq!(next.on_event(&own_status), ControlStep::Done(9));
    }

    /// Writes events into the event ring as the controller does, each in the next entry
    /// with the cycle bit of its pass over the ring, from the device's view of it.
    #[derive(Clone)]
    struct EventWriter {
        /// The device's view of the event ring.
        events: Mmio,
        /// Events written so far.
        written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl EventWriter {
        /// Writes `event` (its own cycle bit replaced) into the next entry.
        fn write(&self, event: Trb) {
            let count = self
                .written
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let cycle = u32::from((count / EVENT_RING_TRBS).is_multiple_of(2));
            let control = event.control & !trb::CYCLE | cycle;
            post_from_device(
                &self.events,
                count % EVENT_RING_TRBS,
                Trb { control, ..event },
            );
        }
    }

    /// Plays `xhci`'s controller from the clock hook (no more than a ring's worth of
    /// commands and of control TRBs): each command queued is answered in turn, the first
    /// ones with `command_codes`, the others with success; each control transfer
    /// queued on device 0's endpoint 0 ends with an event for its Status Stage TRB,
    /// the first ones with `control_codes`, the others with success ([`NEVER_ANSWERED`]:
    /// none). Returns the writer of its events, for the test's own between them.
    fn play_controller(
        xhci: &mut Xhci,
        platform: &'static HostPlatform,
        command_codes: &'static [u8],
        control_codes: &'static [u8],
    ) -> EventWriter {
        play_controller_acting(xhci, platform, command_codes, control_codes, |_, _| {})
    }

    /// [`play_controller`], which also runs `act` on each command (its TRB, the cycle
    /// bit cleared) and the event writer just before it answers it: what the
    /// controller does meanwhile.
    fn play_controller_acting(
        xhci: &mut Xhci,
        platform: &'static HostPlatform,
        command_codes: &'static [u8],
        control_codes: &'static [u8],
        act: impl Fn(Trb, &EventWriter) + Send + Sync + 'static,
    ) -> EventWriter {
        play_device(xhci, platform, command_codes, control_codes, &[], act)
    }

    /// [`play_controller_acting`], device 0 answering each GET_DESCRIPTOR with the
    /// first bytes it asks for of the one of `descriptors` of its type (byte 1), written
    /// into its descriptor buffer, where every data stage of the driver's receives.
    fn play_device(
        xhci: &mut Xhci,
        platform: &'static HostPlatform,
        command_codes: &'static [u8],
        control_codes: &'static [u8],
        descriptors: &'static [&'static [u8]],
        act: impl Fn(Trb, &EventWriter) + Send + Sync + 'static,
    ) -> EventWriter {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        let writer = EventWriter {
            events: platform.device_view(xhci.events.memory()),
            written: std::sync::Arc::new(AtomicUsize::new(0)),
        };
        let commands = platform.device_view(xhci.commands.memory_mut());
        let command_ring = xhci.commands.address_of(0);
        let device = &mut xhci.devices[0];
        let slot = device.slot;
        let control = platform.device_view(device.control.memory_mut());
        let control_ring = device.control.address_of(0);
        let buffer = platform.device_view(&device.buffer);
        let (answered, looked_at, ended) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let stuck = std::sync::atomic::AtomicBool::new(false);
        let hook_writer = writer.clone();
        platform.on_clock_reading(move || {
            let entry = answered.load(Relaxed);
            let control_dword = commands.read32(entry * trb::SIZE + 12);
            if control_dword & trb::CYCLE != 0 {
                let at = command_ring + (entry * trb::SIZE) as u64;
                let command = Trb {
                    parameter: commands.read64(entry * trb::SIZE),
                    status: commands.read32(entry * trb::SIZE + 8),
                    control: control_dword & !trb::CYCLE,
                };
                act(command, &hook_writer);
                if command.kind() == trb::SET_DEQUEUE && command.endpoint() == 1 {
                    let target = (command.parameter & !0xF) - control_ring;
                    looked_at.store(target as usize / trb::SIZE, Relaxed);
                    stuck.store(false, Relaxed);
                }
                let code = command_codes.get(entry).copied();
                hook_writer.write(command_event(at, code.unwrap_or(completion::SUCCESS)));
                answered.store(entry + 1, Relaxed);
            }
            let entry = looked_at.load(Relaxed);
            let written = control.read32(entry * trb::SIZE + 12);
            if written & trb::CYCLE != 0 && !stuck.load(Relaxed) {
                looked_at.store(entry + 1, Relaxed);
                let request = control.read64(entry * trb::SIZE).to_le_bytes();
                let get_descriptor = request[..2] == [0x80, 6];
                if written >> 10 & 0x3F == trb::SETUP && get_descriptor {
                    let asked = usize::from(u16::from_le_bytes([request[6], request[7]]));
                    let found = descriptors.iter().find(|d| d.get(1) == Some(&request[3]));
                    for (at, &byte) in found.iter().flat_map(|d| d.iter().take(asked)).enumerate() {
                        buffer.write8(at, byte);
                    }
                }
                if written >> 10 & 0x3F == trb::STATUS {
                    let at = control_ring + (entry * trb::SIZE) as u64;
                    let code = control_codes.get(ended.fetch_add(1, Relaxed)).copied();
                    match code.unwrap_or(completion::SUCCESS) {
                        NEVER_ANSWERED => stuck.store(true, Relaxed),
                        code => hook_writer.write(Trb {
                            status: u32::from(code) << 24,
                            ..transfer_event(slot, 1, at)
                        }),
                    }
                }
            }
        });
        writer
    }

    /// A control code for [`play_controller`]: the transfer gets no event, and endpoint
    /// 0 runs nothing after it until Set TR Dequeue Pointer moves it on (completion code
    /// 0, Invalid, is never written by a controller).
    const NEVER_ANSWERED: u8 = 0;

    /// The commands queued on `xhci`'s command ring so far.
    fn commands_sent(xhci: &mut Xhci) -> Vec<Trb> {
        let sent = xhci.commands.next_index();
        let memory = xhci.commands.memory_mut();
        (0..sent)
            .map(|entry| {
                let at = entry * trb::SIZE;
                Trb {
                    parameter: memory.read64(at),
                    status: memory.read32(at + 8),
                    control: memory.read32(at + 12) & !trb::CYCLE,
                }
            })
            .collect()
    }

    /// How many commands of type `kind` `xhci` queued so far.
    fn count_sent(xhci: &mut Xhci, kind: u32) -> usize {
        commands_sent(xhci)
            .iter()
            .filter(|command| command.kind() == kind)
            .count()
    }

    /// Writes a Transfer Event with completion `code` for the oldest report TRB device
    /// 0's keyboard has in flight.
    fn fail_oldest_report(xhci: &Xhci, writer: &EventWriter, code: u8) {
        let keyboard = xhci.devices[0].keyboard.as_ref().unwrap();
        let usable = REPORT_RING_TRBS - 1;
        let oldest = (keyboard.ring.next_index() + usable - keyboard.in_flight.count()) % usable;
        writer.write(report_event(keyboard, oldest, code));
    }

    /// Polls `xhci` `times` times, each answered with no byte.
    fn poll_quietly(xhci: &mut Xhci, times: usize) {
        for _ in 0..times {
            assert_eq!(xhci.read_byte(), Ok(None));
        }
    }

    #[test]
    fn a_keyboard_that_keeps_failing_is_restarted_once_per_delay_and_then_given_up() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        xhci.dcbaa.write64(8, xhci.devices[0].output.phys());
        let writer = play_controller(&mut xhci, platform, &[], &[]);
        captured_log::take();
        // The first halt after a good report is restarted at once.
        fail_oldest_report(&xhci, &writer, completion::USB_TRANSACTION_ERROR);
        poll_quietly(&mut xhci, 1);
        assert_eq!(count_sent(&mut xhci, trb::RESET_ENDPOINT), 1);
        // Each further halt in a row waits for its delay, however often it is polled.
        let mut delay = restarts::FIRST_DELAY_NS;
        for restarted in 2..=restarts::MAX_IN_A_ROW as usize {
            fail_oldest_report(&xhci, &writer, completion::USB_TRANSACTION_ERROR);
            poll_quietly(&mut xhci, 200);
            platform.advance_clock(delay - 1_000_000);
            poll_quietly(&mut xhci, 200);
            assert_eq!(
                count_sent(&mut xhci, trb::RESET_ENDPOINT),
                restarted - 1,
                "not before its delay"
            );
            platform.advance_clock(1_000_000);
            poll_quietly(&mut xhci, 200);
            assert_eq!(count_sent(&mut xhci, trb::RESET_ENDPOINT), restarted);
            delay *= 2;
        }
        // The next halt in a row gives the keyboard up: its slot is disabled, its memory
        // back.
        fail_oldest_report(&xhci, &writer, completion::USB_TRANSACTION_ERROR);
        poll_quietly(&mut xhci, 1);
        let sent = commands_sent(&mut xhci);
        assert_eq!(sent.last().map(Trb::kind), Some(trb::DISABLE_SLOT));
        assert!(xhci.devices.is_empty());
        assert_eq!(xhci.dcbaa.read64(8), 0);
        assert_eq!(platform.live(), 3, "the controller's rings and array alone");
        poll_quietly(&mut xhci, 200);
        assert_eq!(commands_sent(&mut xhci).len(), sent.len(), "nothing more");
        assert!(xhci.failed.is_none());
        let logged = captured_log::take();
        let halts = logged.iter().filter(|line| line.contains("halted")).count();
        assert_eq!(halts, 4, "the 1st, 2nd, 4th and 8th halt: {logged:?}");
        assert!(
            logged.iter().any(|line| line.contains("keyboard given up")),
            "{logged:?}"
        );
    }

    #[test]
    fn a_keyboard_whose_port_has_nothing_connected_is_given_up_not_restarted() {
        // Disable Slot succeeds, then fails (TRB Error).
        let disabled: [(&[u8], usize); 2] = [(&[completion::SUCCESS], 3), (&[5], 9)];
        for (codes, live_after) in disabled {
            let disable = codes[0];
            let (mut xhci, platform) = controller_with_a_keyboard();
            xhci.dcbaa.write64(8, xhci.devices[0].output.phys());
            let writer = play_controller(&mut xhci, platform, codes, &[]);
            // The keyboard is unplugged: its queued report fails, the port is empty.
            xhci.registers.ports.write32(0, 0);
            fail_oldest_report(&xhci, &writer, completion::USB_TRANSACTION_ERROR);
            poll_quietly(&mut xhci, 1);
            let sent: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
            assert_eq!(sent, [trb::DISABLE_SLOT], "code {disable}");
            assert!(xhci.failed.is_none());
            assert_eq!(platform.live(), live_after, "code {disable}");
            poll_quietly(&mut xhci, 200);
            assert_eq!(commands_sent(&mut xhci).len(), 1, "nothing more");
            if disable == completion::SUCCESS {
                assert!(xhci.devices.is_empty());
                assert_eq!(xhci.dcbaa.read64(8), 0);
            } else {
                // The ring and report buffers stay with the device while the controller
                // runs, and go back once it halted.
                let device = &xhci.devices[0];
                assert!(device.keyboard.is_none());
                assert_eq!(device.kept.len(), 2);
                drop(xhci);
                assert_eq!(platform.live(), 0);
            }
        }
    }

    #[test]
    fn a_clear_feature_that_fails_after_a_stall_leaves_the_controller_working() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        // The device is gone: CLEAR_FEATURE's status stage ends in a Transaction Error.
        let writer = play_controller(
            &mut xhci,
            platform,
            &[],
            &[completion::USB_TRANSACTION_ERROR],
        );
        captured_log::take();
        fail_oldest_report(&xhci, &writer, completion::STALL);
        poll_quietly(&mut xhci, 1);
        assert!(xhci.failed.is_none());
        let sent: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
        assert_eq!(
            sent,
            [
                trb::RESET_ENDPOINT,
                trb::SET_DEQUEUE,
                // Endpoint 0, halted by the failed CLEAR_FEATURE.
                trb::RESET_ENDPOINT,
                trb::SET_DEQUEUE
            ]
        );
        let keyboard = xhci.devices[0].keyboard.as_ref().unwrap();
        assert_eq!(
            keyboard.in_flight.count(),
            REPORTS_IN_FLIGHT,
            "queued again"
        );
        let logged = captured_log::take();
        assert!(
            logged.iter().any(|line| line.contains("CLEAR_FEATURE")),
            "{logged:?}"
        );
    }

    #[test]
    fn a_restart_after_lost_events_never_points_the_endpoint_at_a_trb_the_controller_owns() {
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        let (mut xhci, platform) = controller_with_a_keyboard();
        let keyboard = xhci.devices[0].keyboard.as_mut().unwrap();
        let (ring_address, first_report) = (keyboard.ring.phys(), keyboard.ring.address_of(0));
        let reports = platform.device_view(&keyboard.reports);
        let ring = platform.device_view(keyboard.ring.memory_mut());
        let pointed_at_owned = std::sync::Arc::new(AtomicBool::new(false));
        let pointed = pointed_at_owned.clone();
        // While Stop Endpoint runs, the first report TRB receives an `a`: its Transfer
        // Event comes before the command's completion. Set TR Dequeue Pointer is
        // checked against the ring as the controller sees it then.
        let writer =
            play_controller_acting(&mut xhci, platform, &[], &[], move |command, events| {
                if command.kind() == trb::STOP_ENDPOINT {
                    reports.write32(0, 0x0004_0000);
                    events.write(transfer_event(1, 3, first_report));
                }
                if command.kind() == trb::SET_DEQUEUE {
                    let target = command.parameter & !0xF;
                    let entry = (target - ring_address) as usize / trb::SIZE;
                    let cycle = ring.read32(entry * trb::SIZE + 12) & trb::CYCLE;
                    let owned = u64::from(cycle) == command.parameter & 1;
                    pointed.store(owned, Relaxed);
                }
            });
        let lost = u32::from(completion::EVENT_RING_FULL) << 24;
        writer.write(Trb::new(trb::HOST_CONTROLLER_EVENT, 0, lost, trb::CYCLE));
        assert_eq!(xhci.read_byte(), Ok(Some(b'a')));
        assert_eq!(xhci.read_byte(), Ok(None));
        let sent: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
        assert_eq!(sent, [trb::STOP_ENDPOINT, trb::SET_DEQUEUE]);
        assert!(
            !pointed_at_owned.load(Relaxed),
            "Set TR Dequeue Pointer named a TRB queued during the restart"
        );
        // The restarted endpoint's first TRB is the next report's, taken, not a stray.
        let keyboard = xhci.devices[0].keyboard.as_ref().unwrap();
        assert_eq!(keyboard.in_flight.count(), REPORTS_IN_FLIGHT);
        let next = keyboard.ring.address_of(REPORTS_IN_FLIGHT);
        let reports = platform.device_view(&keyboard.reports);
        reports.write32(REPORTS_IN_FLIGHT * REPORT_STRIDE, 0x0005_0000);
        writer.write(transfer_event(1, 3, next));
        assert_eq!(xhci.read_byte(), Ok(Some(b'b')));
    }

    #[test]
    fn a_key_held_repeats_as_the_keyboard_is_read_until_released() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        let writer = event_writer(&xhci, platform);
        let keyboard = xhci.devices[0].keyboard.as_ref().unwrap();
        let reports = platform.device_view(&keyboard.reports);
        let (held, released) = (keyboard.ring.address_of(0), keyboard.ring.address_of(1));
        // A pressed (usage 0x04 in the first key slot) and held.
        reports.write32(0, 0x0004_0000);
        writer.write(transfer_event(1, 3, held));
        assert_eq!(xhci.read_byte(), Ok(Some(b'a')));
        platform.advance_clock(hid::REPEAT_DELAY_NS - 1_000_000);
        assert_eq!(xhci.read_byte(), Ok(None), "before the delay");
        platform.advance_clock(1_000_000);
        assert_eq!(xhci.read_byte(), Ok(Some(b'a')));
        assert_eq!(xhci.read_byte(), Ok(None), "one repeat");
        platform.advance_clock(hid::REPEAT_INTERVAL_NS);
        assert_eq!(xhci.read_byte(), Ok(Some(b'a')));
        // Released: a report of no key.
        writer.write(transfer_event(1, 3, released));
        assert_eq!(xhci.read_byte(), Ok(None));
        platform.advance_clock(2 * hid::REPEAT_DELAY_NS);
        assert_eq!(xhci.read_byte(), Ok(None), "released");
    }

    #[test]
    fn a_report_endpoint_restarted_after_lost_events_ends_a_repeat() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        let writer = play_controller(&mut xhci, platform, &[], &[]);
        let keyboard = xhci.devices[0].keyboard.as_ref().unwrap();
        let reports = platform.device_view(&keyboard.reports);
        reports.write32(0, 0x0004_0000);
        writer.write(transfer_event(1, 3, keyboard.ring.address_of(0)));
        assert_eq!(xhci.read_byte(), Ok(Some(b'a')));
        // The release may have been among the events lost: A repeats no more.
        let lost = u32::from(completion::EVENT_RING_FULL) << 24;
        writer.write(Trb::new(trb::HOST_CONTROLLER_EVENT, 0, lost, trb::CYCLE));
        assert_eq!(xhci.read_byte(), Ok(None));
        let sent: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
        assert_eq!(sent, [trb::STOP_ENDPOINT, trb::SET_DEQUEUE]);
        platform.advance_clock(2 * hid::REPEAT_DELAY_NS);
        assert_eq!(xhci.read_byte(), Ok(None));
    }

    /// The setup packets of the control transfers queued on device 0's endpoint 0.
    fn setup_packets(xhci: &mut Xhci) -> Vec<[u8; 8]> {
        let control = &mut xhci.devices[0].control;
        let queued = control.next_index();
        let memory = control.memory_mut();
        (0..queued)
            .filter(|entry| memory.read32(entry * trb::SIZE + 12) >> 10 & 0x3F == trb::SETUP)
            .map(|entry| memory.read64(entry * trb::SIZE).to_le_bytes())
            .collect()
    }

    #[test]
    fn a_transaction_error_is_soft_retried_and_other_halts_clear_the_devices_halt() {
        let babble = 3;
        for code in [completion::USB_TRANSACTION_ERROR, babble, completion::STALL] {
            let (mut xhci, platform) = controller_with_a_keyboard();
            let writer = play_controller(&mut xhci, platform, &[], &[]);
            fail_oldest_report(&xhci, &writer, code);
            poll_quietly(&mut xhci, 1);
            let sent = commands_sent(&mut xhci);
            let kinds: Vec<u32> = sent.iter().map(Trb::kind).collect();
            assert_eq!(
                kinds,
                [trb::RESET_ENDPOINT, trb::SET_DEQUEUE],
                "code {code}"
            );
            let soft = code == completion::USB_TRANSACTION_ERROR;
            assert_eq!(sent[0], Trb::reset_endpoint(1, 3, soft), "code {code}");
            let cleared = setup_packets(&mut xhci);
            if soft {
                assert!(cleared.is_empty(), "the device saw no halt");
            } else {
                assert_eq!(cleared, [usb::clear_halt(0x81)], "code {code}");
            }
        }
    }

    #[test]
    fn a_failed_reset_endpoint_goes_on_from_the_endpoints_state_or_gives_its_keyboard_up() {
        let stopped = [trb::RESET_ENDPOINT, trb::SET_DEQUEUE].as_slice();
        let running = [trb::RESET_ENDPOINT, trb::STOP_ENDPOINT, trb::SET_DEQUEUE].as_slice();
        let given_up = [trb::RESET_ENDPOINT, trb::DISABLE_SLOT].as_slice();
        for (state, sent) in [
            (endpoint_state::STOPPED, stopped),
            (endpoint_state::RUNNING, running),
            (endpoint_state::HALTED, given_up),
        ] {
            let (mut xhci, platform) = controller_with_a_keyboard();
            xhci.dcbaa.write64(8, xhci.devices[0].output.phys());
            // Reset Endpoint is refused (not Halted any more), the endpoint in `state`.
            let context = spec::context_offset(3, xhci.context_size);
            xhci.devices[0].output.write32(context, state.into());
            let writer =
                play_controller(&mut xhci, platform, &[completion::CONTEXT_STATE_ERROR], &[]);
            captured_log::take();
            fail_oldest_report(&xhci, &writer, completion::STALL);
            poll_quietly(&mut xhci, 1);
            assert!(xhci.failed.is_none(), "state {state}");
            let kinds: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
            assert_eq!(kinds, sent, "state {state}");
            let logged = captured_log::take();
            if state == endpoint_state::HALTED {
                assert!(xhci.devices.is_empty(), "state {state}");
                assert!(
                    logged.iter().any(|line| line.contains("keyboard given up")),
                    "{logged:?}"
                );
            } else {
                let keyboard = xhci.devices[0].keyboard.as_ref().unwrap();
                assert_eq!(
                    keyboard.in_flight.count(),
                    REPORTS_IN_FLIGHT,
                    "state {state}"
                );
                assert_eq!(setup_packets(&mut xhci), [usb::clear_halt(0x81)]);
            }
            poll_quietly(&mut xhci, 1);
        }
    }

    #[test]
    fn transaction_errors_that_soft_retries_did_not_mend_reset_the_toggle_on_both_sides() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        let writer = play_controller(&mut xhci, platform, &[], &[]);
        for _ in 0..4 {
            fail_oldest_report(&xhci, &writer, completion::USB_TRANSACTION_ERROR);
            poll_quietly(&mut xhci, 1);
            platform.advance_clock(1_000_000_000);
        }
        let resets: Vec<bool> = commands_sent(&mut xhci)
            .iter()
            .filter(|command| command.kind() == trb::RESET_ENDPOINT)
            .map(|command| command.control & trb::TSP != 0)
            .collect();
        assert_eq!(resets, [true, true, true, false]);
        assert_eq!(setup_packets(&mut xhci), [usb::clear_halt(0x81)]);
    }

    #[test]
    fn a_control_transfer_that_timed_out_is_taken_off_endpoint_0_and_the_next_one_completes() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        // SET_IDLE is never answered: endpoint 0 runs nothing after it until moved on.
        play_controller(&mut xhci, platform, &[], &[NEVER_ANSWERED]);
        assert_eq!(
            xhci.control(0, "SET_IDLE", usb::set_idle(0), 0),
            Err(DeviceError::Timeout {
                what: "SET_IDLE",
                ms: TRANSFER_TIMEOUT_MS
            })
        );
        // Its setup and status TRBs are entries 0 and 1: the endpoint goes on at 2.
        let past = xhci.devices[0].control.address_of(2);
        assert_eq!(
            commands_sent(&mut xhci),
            [Trb::stop_endpoint(1, 1), Trb::set_dequeue(1, 1, past, true)]
        );
        let protocol = usb::set_boot_protocol(0);
        assert_eq!(xhci.control(0, "SET_PROTOCOL (boot)", protocol, 0), Ok(0));
        assert!(xhci.failed.is_none());
    }

    /// The boot keyboard the tests' devices offer: configuration 1, interface 0,
    /// endpoint 1 IN (DCI 3), as [`unqueued_keyboard`]'s.
    fn boot_keyboard() -> usb::BootKeyboard {
        unqueued_keyboard(HostPlatform::leaked()).descriptor
    }

    #[test]
    fn a_keyboard_that_stalls_set_idle_is_used_and_its_endpoint_0_works_after() {
        let (mut xhci, platform) = controller(1);
        xhci.devices.push(device_on(&xhci, 1, 1));
        // SET_CONFIGURATION and SET_PROTOCOL succeed; SET_IDLE, optional, stalls.
        let stalled = &[completion::SUCCESS, completion::SUCCESS, completion::STALL];
        play_controller(&mut xhci, platform, &[], stalled);
        captured_log::take();
        assert_eq!(xhci.set_up_boot_keyboard(0, boot_keyboard()), Ok(()));
        // SET_IDLE's setup and status TRBs are entries 4 and 5: endpoint 0, halted by
        // the stall, is reset and goes on at 6 before Configure Endpoint.
        let past = xhci.devices[0].control.address_of(6);
        let sent = commands_sent(&mut xhci);
        assert_eq!(
            sent[..2],
            [
                Trb::reset_endpoint(1, 1, false),
                Trb::set_dequeue(1, 1, past, true)
            ]
        );
        let kinds: Vec<u32> = sent[2..].iter().map(Trb::kind).collect();
        assert_eq!(kinds, [trb::CONFIGURE_ENDPOINT]);
        assert!(xhci.devices[0].keyboard.is_some());
        let logged = captured_log::take();
        assert!(
            logged.iter().any(|line| line.contains("SET_IDLE stalled")),
            "{logged:?}"
        );
        let protocol = usb::set_boot_protocol(0);
        assert_eq!(xhci.control(0, "SET_PROTOCOL (boot)", protocol, 0), Ok(0));
        assert!(xhci.failed.is_none());
    }

    #[test]
    fn a_keyboard_that_does_not_answer_set_idle_is_not_used() {
        let transaction_error: &[u8] = &[
            completion::SUCCESS,
            completion::SUCCESS,
            completion::USB_TRANSACTION_ERROR,
        ];
        let no_answer: &[u8] = &[completion::SUCCESS, completion::SUCCESS, NEVER_ANSWERED];
        let expected = [
            DeviceError::Status {
                what: "SET_IDLE",
                status: completion::USB_TRANSACTION_ERROR.into(),
            },
            DeviceError::Timeout {
                what: "SET_IDLE",
                ms: TRANSFER_TIMEOUT_MS,
            },
        ];
        for (codes, error) in [transaction_error, no_answer].into_iter().zip(expected) {
            let (mut xhci, platform) = controller(1);
            xhci.devices.push(device_on(&xhci, 1, 1));
            play_controller(&mut xhci, platform, &[], codes);
            let set_up = xhci.set_up_boot_keyboard(0, boot_keyboard());
            assert_eq!(set_up, Err(error));
            assert_eq!(count_sent(&mut xhci, trb::CONFIGURE_ENDPOINT), 0, "{error}");
            assert!(xhci.devices[0].keyboard.is_none());
            // Endpoint 0 was moved on past SET_IDLE: it runs the next request.
            let protocol = usb::set_boot_protocol(0);
            assert_eq!(xhci.control(0, "SET_PROTOCOL (boot)", protocol, 0), Ok(0));
            assert!(xhci.failed.is_none());
        }
    }

    #[test]
    fn a_device_gets_its_set_address_recovery_before_its_first_request() {
        use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
        let (mut xhci, platform) = controller(1);
        let writer = EventWriter {
            events: platform.device_view(xhci.events.memory()),
            written: std::sync::Arc::new(AtomicUsize::new(0)),
        };
        let commands = platform.device_view(xhci.commands.memory_mut());
        let command_ring = xhci.commands.address_of(0);
        let doorbells = xhci.registers.doorbells.clone();
        let readings_to_request = std::sync::Arc::new(AtomicU64::new(0));
        let seen = readings_to_request.clone();
        let (answered, addressed, requested) = (
            AtomicUsize::new(0),
            AtomicBool::new(false),
            AtomicBool::new(false),
        );
        // Enable Slot gives slot 1, every command succeeds, and no control transfer is
        // answered; the clock readings between Address Device's completion and slot 1's
        // first doorbell are counted.
        platform.on_clock_reading(move || {
            if addressed.load(Relaxed) && !requested.load(Relaxed) {
                if doorbells.read32(4) != 0 {
                    requested.store(true, Relaxed);
                } else {
                    seen.fetch_add(1, Relaxed);
                }
            }
            let entry = answered.load(Relaxed);
            let control = commands.read32(entry * trb::SIZE + 12);
            if control & trb::CYCLE != 0 {
                let at = command_ring + (entry * trb::SIZE) as u64;
                let done = command_event(at, completion::SUCCESS);
                writer.write(Trb {
                    control: 1 << 24 | done.control,
                    ..done
                });
                if control >> 10 & 0x3F == trb::ADDRESS_DEVICE {
                    addressed.store(true, Relaxed);
                }
                answered.store(entry + 1, Relaxed);
            }
        });
        let attached = xhci.attach(1);
        assert!(
            matches!(attached, Err(DeviceError::Timeout { what, .. }) if what.starts_with("GET_DESCRIPTOR")),
            "{attached:?}"
        );
        let waited = readings_to_request.load(Relaxed) * HostPlatform::CLOCK_TICK_NS;
        assert!(
            waited >= ADDRESS_RECOVERY_NS,
            "first request {waited} ns after Address Device"
        );
    }

    /// Plays a controller of one device slot for [`Xhci::attach`] from the clock hook:
    /// each command queued is answered in turn, Enable Slot with slot 1 while it is free
    /// (else No Slots Available Error), Disable Slot freeing it, Address Device with
    /// `address_code`, the others with success; no control transfer is answered.
    fn play_one_slot(xhci: &mut Xhci, platform: &'static HostPlatform, address_code: u8) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
        let writer = EventWriter {
            events: platform.device_view(xhci.events.memory()),
            written: std::sync::Arc::new(AtomicUsize::new(0)),
        };
        let commands = platform.device_view(xhci.commands.memory_mut());
        let command_ring = xhci.commands.address_of(0);
        let (answered, slot_in_use) = (AtomicUsize::new(0), AtomicBool::new(false));
        platform.on_clock_reading(move || {
            let entry = answered.load(Relaxed);
            let control = commands.read32(entry * trb::SIZE + 12);
            if control & trb::CYCLE == 0 {
                return;
            }
            let no_slots_available = 9;
            let (code, slot): (u8, u8) = match control >> 10 & 0x3F {
                trb::ENABLE_SLOT if slot_in_use.swap(true, Relaxed) => (no_slots_available, 0),
                trb::ENABLE_SLOT => (completion::SUCCESS, 1),
                trb::DISABLE_SLOT => {
                    slot_in_use.store(false, Relaxed);
                    (completion::SUCCESS, 1)
                }
                trb::ADDRESS_DEVICE => (address_code, 1),
                _ => (completion::SUCCESS, 1),
            };
            let done = command_event(command_ring + (entry * trb::SIZE) as u64, code);
            writer.write(Trb {
                control: u32::from(slot) << 24 | done.control,
                ..done
            });
            answered.store(entry + 1, Relaxed);
        });
    }

    #[test]
    fn a_device_whose_set_up_fails_has_its_slot_disabled_and_memory_back() {
        let address_failed = DeviceError::Status {
            what: "Address Device",
            status: completion::USB_TRANSACTION_ERROR.into(),
        };
        let descriptor_timed_out = DeviceError::Timeout {
            what: "GET_DESCRIPTOR (device)",
            ms: TRANSFER_TIMEOUT_MS,
        };
        for (address_code, error) in [
            (completion::USB_TRANSACTION_ERROR, address_failed),
            (completion::SUCCESS, descriptor_timed_out),
        ] {
            let (mut xhci, platform) = controller(1);
            play_one_slot(&mut xhci, platform, address_code);
            let live = platform.live();
            // Tried twice, as a replugged device or a retry would be: the second gets
            // the slot the first gave back.
            for attempt in [1, 2] {
                assert_eq!(xhci.attach(1), Err(error), "attempt {attempt}");
                assert!(xhci.devices.is_empty(), "{error}");
                assert_eq!(xhci.dcbaa.read64(8), 0, "{error}");
                assert_eq!(
                    platform.live(),
                    live,
                    "{error}: the device's memory went back"
                );
            }
            assert_eq!(count_sent(&mut xhci, trb::DISABLE_SLOT), 2, "{error}");
            assert!(xhci.failed.is_none());
        }
    }

    /// A full-speed device descriptor (USB 2.0 9.6.1): endpoint 0 of 8 bytes, vendor
    /// 0x46f4, product 0x0001, one configuration.
    const DEVICE_DESCRIPTOR: [u8; 18] = [
        18, 1, 0x00, 0x02, 0, 0, 0, 8, 0xF4, 0x46, 0x01, 0x00, 0, 0, 0, 0, 0, 1,
    ];

    /// A mass-storage configuration (class 8, SCSI, bulk-only): no boot keyboard.
    const STORAGE_CONFIGURATION: [u8; 32] = [
        9, 2, 32, 0, 1, 1, 0, 0x80, 50, //
        9, 4, 0, 0, 2, 8, 6, 0x50, 0, //
        7, 5, 0x81, 2, 64, 0, 0, //
        7, 5, 0x02, 2, 64, 0, 0,
    ];

    #[test]
    fn a_device_that_is_not_a_boot_keyboard_has_its_slot_disabled_and_memory_back() {
        let storage: &'static [&'static [u8]] = &[&DEVICE_DESCRIPTOR, &STORAGE_CONFIGURATION];
        let (mut xhci, platform) = controller(1);
        let live = platform.live();
        xhci.devices.push(device_on(&xhci, 1, 1));
        xhci.dcbaa.write64(8, xhci.devices[0].output.phys());
        play_device(&mut xhci, platform, &[], &[], storage, |_, _| {});
        captured_log::take();
        assert_eq!(xhci.set_up_or_give_back(0), Ok(None));
        let kinds: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
        assert_eq!(kinds, [trb::ADDRESS_DEVICE, trb::DISABLE_SLOT]);
        assert!(xhci.devices.is_empty());
        assert_eq!(xhci.dcbaa.read64(8), 0);
        assert_eq!(platform.live(), live, "the device's memory went back");
        let logged = captured_log::take();
        for said in [
            "port 1: device 46f4:0001 is not a boot keyboard",
            "port 1: slot 1 given back (no boot keyboard)",
        ] {
            assert!(logged.iter().any(|line| line.contains(said)), "{logged:?}");
        }
        assert!(xhci.failed.is_none());
    }

    #[test]
    fn the_device_says_which_ports_have_a_keyboard_attached() {
        let (mut xhci, platform) = controller(2);
        let none = String::from("USB controller: no keyboard attached");
        assert_eq!(xhci.attached(), Ok(none.clone()));
        xhci.connections.seen(2, 0);
        let connecting = "USB controller: no keyboard attached yet (a device is connecting)";
        assert_eq!(xhci.attached(), Ok(String::from(connecting)));
        xhci.connections.take_due(debounce::DEBOUNCE_NS);
        xhci.devices.push(device_on(&xhci, 1, 1));
        assert_eq!(xhci.attached(), Ok(none), "a device, no keyboard");
        let mut keyboard = device_on(&xhci, 2, 2);
        keyboard.keyboard = Some(unqueued_keyboard(platform));
        xhci.devices.push(keyboard);
        assert_eq!(xhci.attached(), Ok(String::from("USB keyboard on port 2")));
        xhci.failed = Some("gone");
        assert_eq!(xhci.attached(), Err(DeviceError::Failed("gone")));
    }

    #[test]
    fn a_boot_keyboard_keeps_its_slot() {
        let keyboard: &'static [&'static [u8]] = &[&DEVICE_DESCRIPTOR, &usb::tests::QEMU_KEYBOARD];
        let (mut xhci, platform) = controller(1);
        xhci.devices.push(device_on(&xhci, 1, 1));
        play_device(&mut xhci, platform, &[], &[], keyboard, |_, _| {});
        assert_eq!(xhci.set_up_or_give_back(0), Ok(Some((0x46f4, 1))));
        let kinds: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
        assert_eq!(kinds, [trb::ADDRESS_DEVICE, trb::CONFIGURE_ENDPOINT]);
        assert!(xhci.devices[0].keyboard.is_some());
    }

    /// Port 1's attach takes 40 ms (its reset 30), during which port 2's device bounces:
    /// port 2's debounce starts again from when its change is seen, after port 1's
    /// attach, not from the poll's start, so it is reset 100 ms after that.
    #[test]
    fn a_port_that_bounced_while_another_attached_waits_100_ms_from_the_bounce() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        let (mut xhci, platform) = controller(1);
        let ports = xhci.registers.ports.clone();
        let stride = op::PORT_STRIDE;
        ports.write32(0, port::CONNECTED);
        ports.write32(stride, port::CONNECTED);
        let events = platform.device_view(xhci.events.memory());
        let commands = platform.device_view(xhci.commands.memory_mut());
        let ring = xhci.commands.address_of(0);
        // Resets of ports 1 and 2.
        let resets = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let seen_by_hook = resets.clone();
        // A reset ends at once, port 1's 30 ms on, port 2's device bouncing meanwhile;
        // PORTSC.CSC is write-1-to-clear; each Enable Slot answers slot 0, refused,
        // which ends the attach.
        platform.on_clock_reading(move || {
            for (index, at) in [0, stride].into_iter().enumerate() {
                let status = ports.read32(at);
                if status & port::RESET != 0 {
                    seen_by_hook[index].fetch_add(1, Relaxed);
                    ports.write32(at, port::CONNECTED | port::ENABLED | port::RESET_CHANGE);
                    if index == 0 {
                        platform.advance_clock(30_000_000);
                        ports.write32(stride, port::CONNECTED | port::CONNECT_CHANGE);
                    }
                } else if status & (port::CONNECT_CHANGE | port::CONNECTED) == port::CONNECT_CHANGE
                {
                    ports.write32(at, port::CONNECTED);
                }
            }
            for entry in 0..2 {
                let control = entry * trb::SIZE + 12;
                if commands.read32(control) & trb::CYCLE != 0 && events.read32(control) == 0 {
                    let at = ring + (entry * trb::SIZE) as u64;
                    post_from_device(&events, entry, command_event(at, completion::SUCCESS));
                }
            }
        });
        let since = platform.now_ns();
        xhci.connections.seen(1, since);
        xhci.connections.seen(2, since);
        let mut poll_at = |ms: u64| {
            let now = platform.now_ns();
            platform.advance_clock((since + ms * 1_000_000).saturating_sub(now));
            assert_eq!(xhci.read_byte(), Ok(None));
            [0, 1].map(|index| resets[index].load(Relaxed))
        };
        // Port 1's attach ends at 140 ms (its reset, then the 10 ms reset recovery),
        // when port 2's change is seen.
        assert_eq!(poll_at(100), [1, 0], "port 1 attached, port 2 bounced");
        assert_eq!(poll_at(201), [1, 0], "port 2 stable for 61 ms only");
        assert_eq!(poll_at(239), [1, 0], "port 2 stable for 99 ms only");
        assert_eq!(poll_at(241), [1, 1]);
        assert!(xhci.connections.is_empty());
    }

    #[test]
    fn a_port_is_reset_only_once_its_connection_was_stable_for_100_ms() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        for bounce in [false, true] {
            let (mut xhci, platform) = controller(1);
            let ports = xhci.registers.ports.clone();
            let device_side = ports.clone();
            ports.write32(0, port::CONNECTED);
            let events = platform.device_view(xhci.events.memory());
            let commands = platform.device_view(xhci.commands.memory_mut());
            let ring = xhci.commands.address_of(0);
            let resets = Arc::new(AtomicUsize::new(0));
            let seen_by_hook = resets.clone();
            // Port 1 (PORTSC at 0) needs a reset, which ends at once; PORTSC.CSC is
            // write-1-to-clear (a write of it leaves the port connected); Enable Slot
            // answers slot 0, refused, which ends the attach.
            platform.on_clock_reading(move || {
                let status = ports.read32(0);
                if status & port::RESET != 0 {
                    seen_by_hook.fetch_add(1, Relaxed);
                    ports.write32(0, port::CONNECTED | port::ENABLED | port::RESET_CHANGE);
                } else if status & (port::CONNECT_CHANGE | port::CONNECTED) == port::CONNECT_CHANGE
                {
                    ports.write32(0, port::CONNECTED);
                }
                if commands.read32(12) & trb::CYCLE != 0 && events.read32(12) == 0 {
                    post_from_device(&events, 0, command_event(ring, completion::SUCCESS));
                }
            });
            let since = platform.now_ns();
            xhci.connections.seen(1, since);
            let mut poll_at = |ms: u64| {
                let now = platform.now_ns();
                platform.advance_clock((since + ms * 1_000_000).saturating_sub(now));
                assert_eq!(xhci.read_byte(), Ok(None));
                resets.load(Relaxed)
            };
            assert_eq!(poll_at(0), 0);
            if bounce {
                // The device bounced at 50 ms: its debounce starts again when the poll
                // after 100 ms sees it.
                poll_at(50);
                device_side.write32(0, port::CONNECTED | port::CONNECT_CHANGE);
                assert_eq!(poll_at(99), 0);
                assert_eq!(poll_at(101), 0, "the connection changed");
                assert_eq!(poll_at(200), 0);
                assert_eq!(poll_at(202), 1);
            } else {
                assert_eq!(poll_at(50), 0);
                assert_eq!(poll_at(99), 0);
                assert_eq!(poll_at(100), 1);
            }
            assert!(xhci.connections.is_empty());
        }
    }

    /// A Port Status Change Event for root port `port` (xHCI 6.4.2.3).
    fn port_change_event(port: u8) -> Trb {
        Trb {
            parameter: u64::from(port) << 24,
            status: u32::from(completion::SUCCESS) << 24,
            control: trb::PORT_STATUS_CHANGE << 10,
        }
    }

    /// An event writer of `xhci`'s event ring from its first entry.
    fn event_writer(xhci: &Xhci, platform: &'static HostPlatform) -> EventWriter {
        EventWriter {
            events: platform.device_view(xhci.events.memory()),
            written: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    /// Port 1 of a controller with nothing connected at probe gets a full-speed device
    /// later: its Port Status Change Event has the poll clear CSC and start the connect
    /// debounce, and 100 ms after that the port is reset and the device given a slot.
    #[test]
    fn a_device_plugged_in_after_the_probe_is_attached_after_its_debounce() {
        use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
        use std::sync::{Arc, Mutex};
        let (mut xhci, platform) = controller(1);
        let ports = xhci.registers.ports.clone();
        ports.write32(0, port::POWER);
        ports.write32(op::PORT_STRIDE, port::POWER);
        let writer = event_writer(&xhci, platform);
        let commands = platform.device_view(xhci.commands.memory_mut());
        let ring = xhci.commands.address_of(0);
        // Port 1 as the controller keeps it: what it last showed, and the driver's
        // writes (a value other than that): PR ends a reset at once (PED, PRC), the
        // change bits written 1 clear; Enable Slot answers slot 0, refused, which ends
        // the attach.
        let shown = Arc::new(AtomicU32::new(port::POWER));
        let writes = Arc::new(Mutex::new(Vec::new()));
        let (port_side, writes_seen) = (shown.clone(), writes.clone());
        let (hook_ports, hook_writer) = (ports.clone(), writer.clone());
        let answered = AtomicUsize::new(0);
        platform.on_clock_reading(move || {
            let now = hook_ports.read32(0);
            let before = port_side.load(Relaxed);
            if now != before {
                writes_seen.lock().unwrap().push(now);
                let after = if now & port::RESET != 0 {
                    before | port::ENABLED | port::RESET_CHANGE
                } else {
                    before & !(now & port::CHANGES)
                };
                hook_ports.write32(0, after);
                port_side.store(after, Relaxed);
            }
            let entry = answered.load(Relaxed);
            if commands.read32(entry * trb::SIZE + 12) & trb::CYCLE != 0 {
                let at = ring + (entry * trb::SIZE) as u64;
                hook_writer.write(command_event(at, completion::SUCCESS));
                answered.store(entry + 1, Relaxed);
            }
        });
        let resets = || {
            let writes = writes.lock().unwrap();
            writes.iter().filter(|&&w| w & port::RESET != 0).count()
        };
        poll_quietly(&mut xhci, 1);
        assert!(xhci.connections.is_empty());
        // The device is plugged in at 10 ms.
        platform.advance_clock(10_000_000);
        let plugged = port::POWER | port::CONNECTED | port::CONNECT_CHANGE | 1 << 10;
        shown.store(plugged, Relaxed);
        ports.write32(0, plugged);
        writer.write(port_change_event(1));
        poll_quietly(&mut xhci, 1);
        assert_eq!(
            *writes.lock().unwrap(),
            [port::POWER | port::CONNECT_CHANGE],
            "CSC cleared, PP kept, PED and PR not written"
        );
        assert_eq!(ports.read32(0) & port::CHANGES, 0);
        let connecting = "USB controller: no keyboard attached yet (a device is connecting)";
        assert_eq!(xhci.attached(), Ok(String::from(connecting)));
        platform.advance_clock(99_000_000);
        poll_quietly(&mut xhci, 1);
        assert_eq!(resets(), 0, "stable for 99 ms only");
        platform.advance_clock(1_000_000);
        captured_log::take();
        poll_quietly(&mut xhci, 1);
        assert_eq!(resets(), 1);
        assert_eq!(count_sent(&mut xhci, trb::ENABLE_SLOT), 1);
        assert!(xhci.connections.is_empty());
        let logged = captured_log::take();
        assert!(
            logged
                .iter()
                .any(|line| line.contains("port 1: the device gave index 0")),
            "{logged:?}"
        );
    }

    #[test]
    fn an_unplugged_keyboard_has_its_slot_disabled_and_memory_back_at_its_port_change() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        xhci.dcbaa.write64(8, xhci.devices[0].output.phys());
        let writer = play_controller(&mut xhci, platform, &[], &[]);
        assert_eq!(xhci.attached(), Ok(String::from("USB keyboard on port 1")));
        // Unplugged: nothing connected, the port disabled, both changes noted.
        let ports = xhci.registers.ports.clone();
        let unplugged = port::POWER | port::CONNECT_CHANGE | 1 << 18;
        ports.write32(0, unplugged);
        writer.write(port_change_event(1));
        captured_log::take();
        poll_quietly(&mut xhci, 1);
        let sent: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
        assert_eq!(sent, [trb::DISABLE_SLOT]);
        assert!(xhci.devices.is_empty());
        assert_eq!(xhci.dcbaa.read64(8), 0);
        assert_eq!(platform.live(), 3, "only the controller's memory is left");
        // The registers are plain memory: they hold the write, CSC and PEC written 1.
        assert_eq!(ports.read32(0), unplugged);
        let none = String::from("USB controller: no keyboard attached");
        assert_eq!(xhci.attached(), Ok(none));
        let logged = captured_log::take();
        let said = "port 1: device unplugged, slot 1 given back";
        assert!(logged.iter().any(|line| line.contains(said)), "{logged:?}");
        poll_quietly(&mut xhci, 20);
        assert_eq!(commands_sent(&mut xhci).len(), 1, "nothing more");
        assert!(xhci.failed.is_none());
    }

    /// The keyboard is unplugged between the poll's read of PORTSC (PRC only) and its
    /// clearing write: CSC is set with PRC, so the port raises no new event. The
    /// registers are plain memory, so the read after the write sees the bits written 1
    /// still set, as a controller shows a change set meanwhile; the test then leaves
    /// the register as the controller would (PRC cleared, the unplug's CSC kept).
    #[test]
    fn a_change_between_the_read_and_the_clearing_write_is_followed_at_the_next_poll() {
        let (mut xhci, platform) = controller_with_a_keyboard();
        xhci.dcbaa.write64(8, xhci.devices[0].output.phys());
        let writer = play_controller(&mut xhci, platform, &[], &[]);
        let ports = xhci.registers.ports.clone();
        let enabled = port::POWER | port::CONNECTED | port::ENABLED | 1 << 10;
        ports.write32(0, enabled | port::RESET_CHANGE);
        writer.write(port_change_event(1));
        poll_quietly(&mut xhci, 1);
        assert!(commands_sent(&mut xhci).is_empty(), "a reset change only");
        ports.write32(0, port::POWER | port::CONNECT_CHANGE);
        poll_quietly(&mut xhci, 1);
        let sent: Vec<u32> = commands_sent(&mut xhci).iter().map(Trb::kind).collect();
        assert_eq!(sent, [trb::DISABLE_SLOT]);
        assert!(xhci.devices.is_empty());
    }

    /// Change bits left set before the probe (port 1: PEC and OCC with nothing
    /// connected; port 2: CSC and PRC on a connection) are all cleared, and port 2's
    /// connection starts its debounce; when it bounces (CSC again, with PRC), the port
    /// seen due has both cleared too. The registers are plain memory: each holds the
    /// driver's write, PLS and PED not kept.
    #[test]
    fn change_bits_left_set_are_cleared_at_the_probe_and_at_a_bounce() {
        let (mut xhci, platform) = controller(1);
        let ports = xhci.registers.ports.clone();
        // PEC (bit 18) and OCC (bit 20), with the link in RxDetect (PLS 5).
        let (pec, occ) = (1 << 18, 1 << 20);
        let stale = port::POWER | 5 << 5 | pec | occ;
        ports.write32(0, stale);
        let connected = port::POWER | port::CONNECTED | port::ENABLED | 1 << 10;
        let changed = port::CONNECT_CHANGE | port::RESET_CHANGE;
        ports.write32(op::PORT_STRIDE, connected | changed);
        xhci.note_connections();
        assert_eq!(ports.read32(0), port::POWER | pec | occ);
        assert_eq!(ports.read32(op::PORT_STRIDE), port::POWER | changed);
        ports.write32(op::PORT_STRIDE, connected | changed);
        platform.advance_clock(debounce::DEBOUNCE_NS);
        poll_quietly(&mut xhci, 1);
        assert_eq!(ports.read32(op::PORT_STRIDE), port::POWER | changed);
        assert!(commands_sent(&mut xhci).is_empty(), "waiting again");
    }

    /// The slot of an unplugged keyboard whose Disable Slot fails stays held, and no
    /// line says it was given back; a keyboard replugged between polls (CSC with CCS)
    /// is said to be replugged, not unplugged.
    #[test]
    fn a_slot_is_said_given_back_only_once_free_and_a_replug_is_named_so() {
        for (code, status, said) in [
            (&[completion::CONTEXT_STATE_ERROR][..], port::POWER, None),
            (&[], port::POWER | port::CONNECTED, Some("replugged")),
        ] {
            let (mut xhci, platform) = controller_with_a_keyboard();
            xhci.dcbaa.write64(8, xhci.devices[0].output.phys());
            let writer = play_controller(&mut xhci, platform, code, &[]);
            let ports = xhci.registers.ports.clone();
            ports.write32(0, status | port::CONNECT_CHANGE);
            writer.write(port_change_event(1));
            captured_log::take();
            poll_quietly(&mut xhci, 1);
            assert_eq!(count_sent(&mut xhci, trb::DISABLE_SLOT), 1);
            assert_eq!(xhci.devices.len(), usize::from(said.is_none()));
            let logged = captured_log::take();
            let given: Vec<&String> = logged.iter().filter(|l| l.contains("given back")).collect();
            match said {
                None => assert!(given.is_empty(), "{logged:?}"),
                Some(what) => {
                    let line = format!("port 1: device {what}, slot 1 given back");
                    assert!(given.iter().any(|l| l.contains(&line)), "{logged:?}");
                }
            }
        }
    }

    #[test]
    fn every_change_bit_set_is_cleared_and_the_port_left_enabled() {
        let (mut xhci, platform) = controller(1);
        let ports = xhci.registers.ports.clone();
        let writer = event_writer(&xhci, platform);
        // Port 1: a reset finished (PRC) on the device connected; port 2: every change
        // bit, a new connection among them; and an event naming a port there is not.
        let enabled = port::POWER | port::CONNECTED | port::ENABLED | 1 << 10;
        ports.write32(0, enabled | port::RESET_CHANGE);
        ports.write32(op::PORT_STRIDE, enabled | port::CHANGES);
        for port in [1, 2, 9] {
            writer.write(port_change_event(port));
        }
        captured_log::take();
        poll_quietly(&mut xhci, 1);
        // Plain memory: each register holds the driver's write, with neither CCS nor
        // PED (a PED written 1 disables the port) and the change bits written 1.
        assert_eq!(ports.read32(0), port::POWER | port::RESET_CHANGE);
        assert_eq!(ports.read32(op::PORT_STRIDE), port::POWER | port::CHANGES);
        // Only port 2's change was a connection: its debounce started.
        let now = platform.now_ns();
        assert_eq!(
            xhci.connections.take_due(now + debounce::DEBOUNCE_NS),
            Some(2)
        );
        assert!(xhci.connections.is_empty());
        let logged = captured_log::take();
        let said = "dropped a port status change for no root port (1 so far)";
        assert!(logged.iter().any(|line| line.contains(said)), "{logged:?}");
        assert!(commands_sent(&mut xhci).is_empty());
    }

    #[test]
    fn after_lost_events_every_root_port_is_followed() {
        let (mut xhci, platform) = controller(1);
        let ports = xhci.registers.ports.clone();
        let writer = event_writer(&xhci, platform);
        // Port 2's device was connected; its Port Status Change Event was lost.
        ports.write32(0, port::POWER);
        let connected = port::POWER | port::CONNECTED | port::CONNECT_CHANGE;
        ports.write32(op::PORT_STRIDE, connected);
        writer.write(Trb {
            parameter: 0,
            status: u32::from(completion::EVENT_RING_FULL) << 24,
            control: trb::HOST_CONTROLLER_EVENT << 10,
        });
        poll_quietly(&mut xhci, 1);
        assert_eq!(
            ports.read32(op::PORT_STRIDE),
            port::POWER | port::CONNECT_CHANGE
        );
        let now = platform.now_ns();
        assert_eq!(
            xhci.connections.take_due(now + debounce::DEBOUNCE_NS),
            Some(2)
        );
    }
}
