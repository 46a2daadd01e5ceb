//! Register layouts, TRB formats and context layouts of the xHCI specification
//! (revision 1.2); section numbers refer to it.

/// Capability registers (5.3), from BAR 0.
pub mod cap {
    /// CAPLENGTH (byte 0) and HCIVERSION (bytes 2..4).
    pub const CAPLENGTH: usize = 0x00;
    /// HCSPARAMS1: MaxSlots 7:0, MaxIntrs 18:8, MaxPorts 31:24.
    pub const HCSPARAMS1: usize = 0x04;
    /// HCSPARAMS2: Max Scratchpad Buffers Hi 25:21, Lo 31:27.
    pub const HCSPARAMS2: usize = 0x08;
    /// HCCPARAMS1: AC64 bit 0, CSZ bit 2, xECP 31:16 (in dwords).
    pub const HCCPARAMS1: usize = 0x10;
    /// DBOFF: the doorbell array's offset.
    pub const DBOFF: usize = 0x14;
    /// RTSOFF: the runtime registers' offset.
    pub const RTSOFF: usize = 0x18;
    /// HCCPARAMS1.AC64: the controller takes 64-bit addresses.
    pub const AC64: u32 = 1 << 0;
    /// HCCPARAMS1.CSZ: contexts are 64 bytes (else 32).
    pub const CSZ: u32 = 1 << 2;
}

/// Operational registers (5.4), at CAPLENGTH.
pub mod op {
    /// USBCMD.
    pub const USBCMD: usize = 0x00;
    /// USBSTS.
    pub const USBSTS: usize = 0x04;
    /// PAGESIZE: bit n set = pages of 2^(n+12) bytes supported.
    pub const PAGESIZE: usize = 0x08;
    /// CRCR: command ring pointer and its cycle state (64-bit).
    pub const CRCR: usize = 0x18;
    /// DCBAAP: the device context base address array (64-bit).
    pub const DCBAAP: usize = 0x30;
    /// CONFIG: MaxSlotsEn 7:0.
    pub const CONFIG: usize = 0x38;
    /// The first PORTSC; port n (1-based) is at `PORTSC + 0x10 * (n - 1)`.
    pub const PORTSC: usize = 0x400;
    /// Bytes between ports' register sets.
    pub const PORT_STRIDE: usize = 0x10;

    /// USBCMD.RS: run.
    pub const CMD_RUN: u32 = 1 << 0;
    /// USBCMD.HCRST: reset.
    pub const CMD_RESET: u32 = 1 << 1;
    /// USBSTS.HCH: halted.
    pub const STS_HALTED: u32 = 1 << 0;
    /// USBSTS.HSE: host system error (a DMA access failed).
    pub const STS_HOST_SYSTEM_ERROR: u32 = 1 << 2;
    /// USBSTS.CNR: controller not ready (after reset).
    pub const STS_NOT_READY: u32 = 1 << 11;
    /// USBSTS.HCE: host controller error (internal).
    pub const STS_CONTROLLER_ERROR: u32 = 1 << 12;
    /// PAGESIZE bit 0: 4 KiB pages.
    pub const PAGESIZE_4K: u32 = 1 << 0;
    /// CRCR.RCS: the command ring's initial cycle state.
    pub const CRCR_CYCLE: u64 = 1 << 0;
    /// CRCR.CA: abort the command running and stop the command ring (5.4.5).
    pub const CRCR_ABORT: u64 = 1 << 2;
    /// CRCR.CRR: the command ring is running (read-only; in the low dword).
    pub const CRCR_RUNNING: u32 = 1 << 3;
}

/// PORTSC bits (5.4.8).
pub mod port {
    /// CCS: a device is connected.
    pub const CONNECTED: u32 = 1 << 0;
    /// PED: enabled (write 1 disables it: never written as 1).
    pub const ENABLED: u32 = 1 << 1;
    /// PR: reset (write 1 starts it).
    pub const RESET: u32 = 1 << 4;
    /// PP: powered.
    pub const POWER: u32 = 1 << 9;
    /// Port speed ID, 13:10.
    pub const SPEED_SHIFT: u32 = 10;
    /// The speed field's mask after shifting.
    pub const SPEED_MASK: u32 = 0xF;
    /// CSC: the connect status changed (write 1 to clear).
    pub const CONNECT_CHANGE: u32 = 1 << 17;
    /// PRC: the reset finished (write 1 to clear).
    pub const RESET_CHANGE: u32 = 1 << 21;
    /// The seven change bits, all write-1-to-clear: CSC, PEC, WRC, OCC, PRC, PLC, CEC
    /// (17 to 23). While any stays set the port generates no further Port Status Change
    /// Event (4.19.2).
    pub const CHANGES: u32 = 0x7F << 17;
    /// The read-write bits a write must carry back unchanged: PP, PIC, WCE/WDE/WOE
    /// (PED and the change bits are write-1-to-clear and PR/LWS/WPR actions, so never kept).
    pub const PRESERVE: u32 = POWER | (0x3 << 14) | (0x7 << 25);
}

/// Runtime registers (5.5), at RTSOFF: interrupter 0's set.
pub mod rt {
    /// Interrupter 0's register set.
    pub const INTERRUPTER0: usize = 0x20;
    /// IMAN (within the set): IE bit 1, IP bit 0.
    pub const IMAN: usize = 0x00;
    /// ERSTSZ: segments in the event ring segment table.
    pub const ERSTSZ: usize = 0x08;
    /// ERSTBA: the segment table's address (64-bit; writing it starts the event ring).
    pub const ERSTBA: usize = 0x10;
    /// ERDP: the event ring dequeue pointer (64-bit).
    pub const ERDP: usize = 0x18;
    /// ERDP.EHB: event handler busy (write 1 to clear).
    pub const ERDP_BUSY: u64 = 1 << 3;
}

/// Extended capabilities (7).
pub mod ext {
    /// USB Legacy Support (7.1).
    pub const LEGACY_SUPPORT: u8 = 1;
    /// USBLEGSUP: HC BIOS Owned Semaphore.
    pub const BIOS_OWNED: u32 = 1 << 16;
    /// USBLEGSUP: HC OS Owned Semaphore.
    pub const OS_OWNED: u32 = 1 << 24;
    /// USBLEGCTLSTS (at +4): the SMI enables (bits 0, 4, 13, 14, 15).
    pub const SMI_ENABLES: u32 = (1 << 0) | (1 << 4) | (0x7 << 13);
    /// USBLEGCTLSTS: the SMI status bits 31:29 (write 1 to clear).
    pub const SMI_CHANGES: u32 = 0x7 << 29;
}

/// TRB types (6.4.6).
pub mod trb {
    /// Normal (transfer).
    pub const NORMAL: u32 = 1;
    /// Setup Stage.
    pub const SETUP: u32 = 2;
    /// Data Stage.
    pub const DATA: u32 = 3;
    /// Status Stage.
    pub const STATUS: u32 = 4;
    /// Link.
    pub const LINK: u32 = 6;
    /// Enable Slot Command.
    pub const ENABLE_SLOT: u32 = 9;
    /// Disable Slot Command.
    pub const DISABLE_SLOT: u32 = 10;
    /// Address Device Command.
    pub const ADDRESS_DEVICE: u32 = 11;
    /// Configure Endpoint Command.
    pub const CONFIGURE_ENDPOINT: u32 = 12;
    /// Evaluate Context Command.
    pub const EVALUATE_CONTEXT: u32 = 13;
    /// Reset Endpoint Command.
    pub const RESET_ENDPOINT: u32 = 14;
    /// Stop Endpoint Command.
    pub const STOP_ENDPOINT: u32 = 15;
    /// Set TR Dequeue Pointer Command.
    pub const SET_DEQUEUE: u32 = 16;
    /// No Op Command.
    pub const NO_OP_COMMAND: u32 = 23;
    /// Transfer Event.
    pub const TRANSFER_EVENT: u32 = 32;
    /// Command Completion Event.
    pub const COMMAND_COMPLETION: u32 = 33;
    /// Port Status Change Event.
    pub const PORT_STATUS_CHANGE: u32 = 34;
    /// Host Controller Event.
    pub const HOST_CONTROLLER_EVENT: u32 = 37;

    /// Control dword: the cycle bit.
    pub const CYCLE: u32 = 1 << 0;
    /// Data Stage: interrupt on a short packet (so the event says how much came).
    pub const ISP: u32 = 1 << 2;
    /// Link TRB: toggle cycle.
    pub const TOGGLE_CYCLE: u32 = 1 << 1;
    /// Interrupt on completion.
    pub const IOC: u32 = 1 << 5;
    /// Immediate data (the setup packet is in the TRB).
    pub const IDT: u32 = 1 << 6;
    /// Reset Endpoint: Transfer State Preserve (6.4.3.7).
    pub const TSP: u32 = 1 << 9;
    /// Data/Status stage direction: IN.
    pub const DIR_IN: u32 = 1 << 16;
    /// Setup TRB transfer type: IN data stage.
    pub const TRANSFER_IN: u32 = 3 << 16;
    /// Setup TRB transfer type: no data stage.
    pub const TRANSFER_NONE: u32 = 0;

    /// Bytes per TRB.
    pub const SIZE: usize = 16;
}

/// Completion codes (6.4.5).
pub mod completion {
    /// Success.
    pub const SUCCESS: u8 = 1;
    /// USB Transaction Error: the device did not answer well, retries run out (4.10.2.3);
    /// also what an unplugged keyboard's queued reports end with.
    pub const USB_TRANSACTION_ERROR: u8 = 4;
    /// Stall Error: the endpoint answered STALL (a report endpoint's is handled as any
    /// other halt that is no USB Transaction Error; SET_IDLE's means the keyboard
    /// lacks the optional request).
    pub const STALL: u8 = 6;
    /// Short Packet: fewer bytes than the TRB asked for (fine for reports and descriptors).
    pub const SHORT_PACKET: u8 = 13;
    /// Context State Error: the command is not allowed in the endpoint's (or slot's)
    /// present state, say Stop Endpoint on an endpoint already Halted or Stopped.
    pub const CONTEXT_STATE_ERROR: u8 = 19;
    /// Event Ring Full Error: a Host Controller Event saying the event ring was full,
    /// so events were dropped (4.9.4).
    pub const EVENT_RING_FULL: u8 = 21;
    /// Command Ring Stopped: the command ring stopped after CRCR.CS or CA (4.6.1.2).
    pub const COMMAND_RING_STOPPED: u8 = 24;
    /// Command Aborted: the command running when CRCR.CA was set was aborted (4.6.1.2).
    pub const COMMAND_ABORTED: u8 = 25;
    /// Event Lost Error: an internal overrun of the controller lost events.
    pub const EVENT_LOST: u8 = 32;
}

/// Endpoint types of the endpoint context (6.2.3, table 6-9).
pub mod endpoint {
    /// Control, bidirectional.
    pub const CONTROL: u32 = 4;
    /// Interrupt IN.
    pub const INTERRUPT_IN: u32 = 7;
}

/// Endpoint states, the EP State field of an endpoint context's dword 0 (6.2.3, table
/// 6-8), as the controller keeps it in the output device context.
pub mod endpoint_state {
    /// Running: it runs TDs at its doorbell; Stop Endpoint takes it to Stopped.
    pub const RUNNING: u8 = 1;
    /// Halted: a transfer failed; Reset Endpoint takes it to Stopped.
    pub const HALTED: u8 = 2;
    /// Stopped: Set TR Dequeue Pointer may move its dequeue pointer.
    pub const STOPPED: u8 = 3;

    /// The EP State field of endpoint context dword 0 `dword0`.
    pub fn of(dword0: u32) -> u8 {
        (dword0 & 0x7) as u8
    }
}

/// One TRB as its four dwords: parameter (2), status, control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trb {
    /// Dwords 0 and 1.
    pub parameter: u64,
    /// Dword 2.
    pub status: u32,
    /// Dword 3 (type, flags, cycle bit).
    pub control: u32,
}

impl Trb {
    /// The TRB type (control 15:10).
    pub fn kind(&self) -> u32 {
        (self.control >> 10) & 0x3F
    }

    /// An event's completion code (status 31:24).
    pub fn completion_code(&self) -> u8 {
        (self.status >> 24) as u8
    }

    /// A Transfer Event's residual length: bytes not transferred (status 23:0).
    pub fn residual(&self) -> u32 {
        self.status & 0x00FF_FFFF
    }

    /// The slot an event concerns (control 31:24).
    pub fn slot(&self) -> u8 {
        (self.control >> 24) as u8
    }

    /// A Port Status Change Event's root port (1-based, parameter 31:24, 6.4.2.3).
    pub fn port(&self) -> u8 {
        (self.parameter >> 24) as u8
    }

    /// A Transfer Event's endpoint (device context index, control 20:16).
    pub fn endpoint(&self) -> u8 {
        ((self.control >> 16) & 0x1F) as u8
    }

    /// A command or transfer TRB of `kind` with `flags` (the cycle bit is set at queueing).
    pub fn new(kind: u32, parameter: u64, status: u32, flags: u32) -> Self {
        Self {
            parameter,
            status,
            control: (kind << 10) | flags,
        }
    }

    /// A Link TRB back to `target` (6.4.4.1), toggling the cycle state.
    pub fn link(target: u64) -> Self {
        Self::new(trb::LINK, target, 0, trb::TOGGLE_CYCLE)
    }

    /// No Op Command (4.6.2): the controller only answers it, with success.
    pub fn no_op_command() -> Self {
        Self::new(trb::NO_OP_COMMAND, 0, 0, 0)
    }

    /// Enable Slot (slot type 0: USB).
    pub fn enable_slot() -> Self {
        Self::new(trb::ENABLE_SLOT, 0, 0, 0)
    }

    /// Disable Slot for `slot` (4.6.4).
    pub fn disable_slot(slot: u8) -> Self {
        Self::new(trb::DISABLE_SLOT, 0, 0, u32::from(slot) << 24)
    }

    /// Address Device for `slot` with the input context at `input`.
    pub fn address_device(input: u64, slot: u8) -> Self {
        Self::new(trb::ADDRESS_DEVICE, input, 0, u32::from(slot) << 24)
    }

    /// Evaluate Context for `slot` with the input context at `input`.
    pub fn evaluate_context(input: u64, slot: u8) -> Self {
        Self::new(trb::EVALUATE_CONTEXT, input, 0, u32::from(slot) << 24)
    }

    /// Configure Endpoint for `slot` with the input context at `input`.
    pub fn configure_endpoint(input: u64, slot: u8) -> Self {
        Self::new(trb::CONFIGURE_ENDPOINT, input, 0, u32::from(slot) << 24)
    }

    /// Reset Endpoint (a halted endpoint goes to Stopped) for `slot`'s endpoint `dci`;
    /// with `preserve_transfer_state` (TSP) the endpoint keeps its data toggle
    /// (4.6.8.1, soft retry), else it goes back to DATA0.
    pub fn reset_endpoint(slot: u8, dci: u8, preserve_transfer_state: bool) -> Self {
        let tsp = if preserve_transfer_state { trb::TSP } else { 0 };
        Self::new(
            trb::RESET_ENDPOINT,
            0,
            0,
            (u32::from(slot) << 24) | (u32::from(dci) << 16) | tsp,
        )
    }

    /// Stop Endpoint (a running endpoint goes to Stopped) for `slot`'s endpoint `dci`.
    pub fn stop_endpoint(slot: u8, dci: u8) -> Self {
        Self::new(
            trb::STOP_ENDPOINT,
            0,
            0,
            (u32::from(slot) << 24) | (u32::from(dci) << 16),
        )
    }

    /// Set TR Dequeue Pointer of `slot`'s endpoint `dci` to `pointer` with cycle state `cycle`.
    pub fn set_dequeue(slot: u8, dci: u8, pointer: u64, cycle: bool) -> Self {
        Self::new(
            trb::SET_DEQUEUE,
            pointer | u64::from(cycle),
            0,
            (u32::from(slot) << 24) | (u32::from(dci) << 16),
        )
    }

    /// A Setup Stage TRB carrying `setup` (8 bytes, immediate), with a data stage IN
    /// when `data_in`, else none.
    pub fn setup(setup: [u8; 8], data_in: bool) -> Self {
        let transfer = if data_in {
            trb::TRANSFER_IN
        } else {
            trb::TRANSFER_NONE
        };
        Self::new(
            trb::SETUP,
            u64::from_le_bytes(setup),
            8,
            trb::IDT | transfer,
        )
    }

    /// A Data Stage TRB reading up to `len` bytes IN to `buffer` (a short packet raises
    /// an event with the residual length).
    pub fn data_in(buffer: u64, len: u32) -> Self {
        Self::new(trb::DATA, buffer, len, trb::DIR_IN | trb::ISP)
    }

    /// The Status Stage TRB, interrupting on completion: IN when there was no data stage,
    /// OUT after an IN data stage (USB 2.0 8.5.3).
    pub fn status(after_data_in: bool) -> Self {
        let direction = if after_data_in { 0 } else { trb::DIR_IN };
        Self::new(trb::STATUS, 0, 0, trb::IOC | direction)
    }

    /// A Normal TRB receiving up to `len` bytes into `buffer`, interrupting on completion.
    pub fn normal(buffer: u64, len: u32) -> Self {
        Self::new(trb::NORMAL, buffer, len, trb::IOC)
    }
}

/// Input and device contexts (6.2): context `index` of a structure whose contexts are
/// `size` bytes (32, or 64 with CSZ). In an input context, index 0 is the input control
/// context, 1 the slot, 2 endpoint 0 (device context index + 1).
pub fn context_offset(index: usize, size: usize) -> usize {
    index * size
}

/// The input control context's Add Context flags dword (6.2.5.1).
pub const INPUT_ADD_FLAGS: usize = 4;
/// Add Context flag A0: the slot context.
pub const ADD_SLOT: u32 = 1 << 0;
/// Add Context flag A1: endpoint 0's context.
pub const ADD_EP0: u32 = 1 << 1;
/// Both, as Address Device needs them (4.6.5).
pub const ADD_SLOT_AND_EP0: u32 = ADD_SLOT | ADD_EP0;

/// Slot context dword 0 (6.2.2): route string 0 (a root port), `speed`, and
/// `entries` = the last valid device context index.
pub fn slot_dword0(speed: u8, entries: u8) -> u32 {
    (u32::from(speed & 0xF) << 20) | (u32::from(entries & 0x1F) << 27)
}

/// Slot context dword 1: the root hub port number (1-based).
pub fn slot_dword1(root_port: u8) -> u32 {
    u32::from(root_port) << 16
}

/// Endpoint context dword 0 (6.2.3): the interval exponent (2^interval x 125 us).
pub fn endpoint_dword0(interval: u8) -> u32 {
    u32::from(interval) << 16
}

/// Endpoint context dword 1: three retries on errors (CErr), `kind`, `max_packet`.
pub fn endpoint_dword1(kind: u32, max_packet: u16) -> u32 {
    (3 << 1) | (kind << 3) | (u32::from(max_packet) << 16)
}

/// Endpoint context dword 4: average TRB length and max ESIT payload (low 16 bits).
pub fn endpoint_dword4(average_trb: u16, esit_payload: u16) -> u32 {
    u32::from(average_trb) | (u32::from(esit_payload) << 16)
}

/// Endpoint context dwords 2-3: the transfer ring's dequeue pointer with its cycle state.
pub fn endpoint_dequeue(ring: u64, cycle: bool) -> u64 {
    ring | u64::from(cycle)
}

/// Scratchpad buffers the controller asks for (HCSPARAMS2, Hi 25:21 and Lo 31:27).
pub fn scratchpad_count(hcsparams2: u32) -> usize {
    ((((hcsparams2 >> 21) & 0x1F) << 5) | (hcsparams2 >> 27)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratchpad_count_joins_its_two_halves() {
        assert_eq!(scratchpad_count(0), 0);
        assert_eq!(scratchpad_count(4 << 27), 4);
        assert_eq!(scratchpad_count((1 << 21) | (2 << 27)), 34);
        assert_eq!(scratchpad_count(u32::MAX), 1023);
    }

    #[test]
    fn command_trbs_carry_type_slot_and_endpoint() {
        let trb = Trb::address_device(0x1000, 3);
        assert_eq!((trb.kind(), trb.slot(), trb.parameter), (11, 3, 0x1000));
        let trb = Trb::set_dequeue(2, 3, 0x2000, true);
        assert_eq!(
            (trb.kind(), trb.slot(), trb.endpoint(), trb.parameter),
            (16, 2, 3, 0x2001)
        );
        assert_eq!(Trb::link(0x4000).control, (6 << 10) | 2);
        let hard = Trb::reset_endpoint(2, 3, false);
        assert_eq!((hard.kind(), hard.slot(), hard.endpoint()), (14, 2, 3));
        assert_eq!(hard.control & (1 << 9), 0);
        let soft = Trb::reset_endpoint(2, 3, true);
        assert_eq!(soft.control, hard.control | (1 << 9), "TSP");
    }

    #[test]
    fn control_stages_have_the_usb_directions() {
        let setup = Trb::setup([0x80, 6, 0, 1, 0, 0, 18, 0], true);
        assert_eq!(setup.parameter, 0x0012_0000_0100_0680);
        assert_eq!(setup.status, 8);
        assert_eq!(setup.control, (2 << 10) | (1 << 6) | (3 << 16));
        assert_eq!(Trb::setup([0; 8], false).control & (3 << 16), 0);
        assert_eq!(Trb::status(true).control, (4 << 10) | (1 << 5));
        assert_eq!(Trb::status(false).control, (4 << 10) | (1 << 5) | (1 << 16));
        assert_eq!(
            Trb::data_in(0x3000, 18).control,
            (3 << 10) | (1 << 16) | (1 << 2)
        );
    }

    #[test]
    fn events_decode() {
        let event = Trb {
            parameter: 0x5010,
            status: (13 << 24) | 5,
            control: (7 << 24) | (3 << 16) | (32 << 10) | 1,
        };
        assert_eq!(
            (
                event.kind(),
                event.completion_code(),
                event.residual(),
                event.slot(),
                event.endpoint()
            ),
            (32, 13, 5, 7, 3)
        );
    }

    #[test]
    fn contexts_encode() {
        assert_eq!(slot_dword0(1, 1), (1 << 20) | (1 << 27));
        assert_eq!(slot_dword1(2), 2 << 16);
        assert_eq!(endpoint_dword1(4, 8), (3 << 1) | (4 << 3) | (8 << 16));
        assert_eq!(endpoint_dequeue(0x7000, true), 0x7001);
        assert_eq!(context_offset(2, 64), 128);
        assert_eq!(endpoint_state::of(0x0003_0002), endpoint_state::HALTED);
    }
}
