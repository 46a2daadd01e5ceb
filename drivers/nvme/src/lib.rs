//! NVMe controllers (PCI class 01.08.02): the controller is reset and enabled with an
//! admin queue pair, identified (model, serial, firmware, MDTS), and namespace 1
//! becomes one disk served by up to four I/O queue pairs (one per core is the intent),
//! each with its own submission and completion queue and per-request DMA buffers.
//! Requests are polled: completions are found by their phase tag in DMA memory, and
//! doorbells are written once per poll for every request queued since. With MSI-X,
//! I/O completion queue `k` signals through entry `k` (entry 0 is the admin queue's),
//! masked except while a core is armed to be woken (`wake_on_completion`). A controller
//! that holds a command past the I/O timeout is reset and its I/O queues created anew,
//! `poll` by `poll` (the `recovery` module); the late request fails with a timeout only
//! once the reset has disabled the controller, so it can never be carried out later. At
//! power-off and reboot the I/O queues are deleted and the controller told of a normal
//! shutdown (CC.SHN), awaited until CSTS.SHST says it is complete
//! (`BlockDevice::shut_down`).
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

mod queue;
mod recovery;
mod spec;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use rexo_api::device::DISK_SHUT_DOWN;
use rexo_api::{BlockDevice, BlockInfo, Completion, DeviceError, Leaving, Tag};
use rexo_devio::{DeviceFunction, Dma, Found, Mmio, MsixTable, Platform, QueueWakes};
use rexo_pci::{Address, Function};

use crate::queue::QueuePair;
use crate::recovery::Reset;
use crate::spec::{Capabilities, Command, PAGE};

/// PCI class, subclass and programming interface of an NVM Express controller.
const CLASS_NVME: (u8, u8, u8) = (0x01, 0x08, 0x02);
/// The I/O queue pairs asked for (one per core of a small machine; the apps spread
/// requests over them).
const IO_QUEUES_WANTED: u16 = 4;
/// The name of Set Features Number of Queues in errors and logs.
const SET_QUEUE_COUNT: &str = "Set Features (Number of Queues)";
/// Requests in flight per I/O queue (the queues get one more entry: a full queue
/// keeps one entry empty).
const IO_DEPTH: u32 = 64;
/// Low bits of an I/O command identifier that name its slot: enough for the `IO_DEPTH`
/// slots of the deepest queue (6 bits for 64), leaving 10 for the slot's generation.
const SLOT_BITS: u32 = u32::BITS - (IO_DEPTH - 1).leading_zeros();
/// The slot's bits of an I/O command identifier.
const SLOT_MASK: u16 = (1 << SLOT_BITS) - 1;
/// Generations a slot's command identifiers cycle through (1023 in the 10 upper bits):
/// all values but the last, so no identifier is FFFFh, which the Error Information log
/// page uses for an error of no particular command.
const GENERATIONS: u16 = (1 << (u16::BITS - SLOT_BITS)) - 1;
/// The command identifier no command carries: the Error Information log page gives it
/// for an error of no particular command.
const NO_COMMAND_ID: u16 = 0xFFFF;
/// The largest request in bytes: each request slot owns a buffer this big, so it
/// bounds the DMA memory (4 queues x 64 slots x 64 KiB = 16 MiB per controller); its
/// PRP list (15 entries) fits one page many times over.
const MAX_TRANSFER: u64 = 64 * 1024;
/// Entries in each admin queue (the driver runs one admin command at a time).
const ADMIN_ENTRIES: u32 = 8;
/// How long an admin command may take.
const ADMIN_TIMEOUT_MS: u64 = 5_000;
/// How long the controller may hold an I/O command. Past it the controller is reset
/// (section 3.7.2), and the request fails with a timeout once CSTS.RDY has cleared: only
/// a reset makes sure the command is never carried out later (NVMe keeps no order
/// between outstanding commands, and Abort is best effort), over a newer write to the
/// same sectors, say.
const IO_TIMEOUT_NS: u64 = 10_000_000_000;
/// How often `poll` looks for requests past their timeout.
const TIMEOUT_CHECK_NS: u64 = 100_000_000;
/// The namespace served.
const NAMESPACE: u32 = 1;

/// Whether this driver takes `function`: any NVM Express controller.
pub fn matches(function: &Function) -> bool {
    function.header.class() == CLASS_NVME
}

/// Starts the controller on `function`: one disk (namespace 1).
pub fn probe(mut function: DeviceFunction) -> Result<Vec<Found>, DeviceError> {
    function.enable()?;
    let registers = function.mmio(0)?;
    // MSI-X on, every entry masked: completion queues with an entry can wake a core.
    let msix = match function.msix() {
        Ok(table) => Some(table),
        Err(error) => {
            log::info!(
                "{} nvme: completions polled only: {error}",
                function.address()
            );
            None
        }
    };
    let capabilities = Capabilities::decode(read64(&registers, spec::REG_CAP));
    let version = registers.read32(spec::REG_VS);
    log::info!(
        "{} nvme: version {}.{}, CAP.MQES+1 {}, doorbell stride {}",
        function.address(),
        version >> 16,
        (version >> 8) & 0xFF,
        capabilities.max_queue_entries,
        capabilities.doorbell_stride
    );
    if !capabilities.nvm_command_set {
        return Err(DeviceError::Unsupported("the NVM command set"));
    }
    if capabilities.min_page > PAGE as u64 {
        return Err(DeviceError::Unsupported("4 KiB memory pages"));
    }
    // Doorbell pairs the BAR holds beyond the admin pair.
    let pairs_in_bar =
        registers.len().saturating_sub(spec::REG_DOORBELLS) / (2 * capabilities.doorbell_stride);
    if pairs_in_bar < 2 {
        return Err(DeviceError::BadBar {
            index: 0,
            why: "too small for the doorbells",
        });
    }

    // CAP.MQES bounds every I/O queue; one entry stays empty.
    let depth = IO_DEPTH.min(capabilities.max_queue_entries - 1);
    if depth == 0 {
        return Err(DeviceError::Unsupported(
            "I/O queues of two entries (CAP.MQES)",
        ));
    }

    // The memory the controller will write is made before the controller value: on an
    // early return, locals drop in reverse, so the controller is reset first.
    let admin = QueuePair::new(
        function.platform(),
        registers.clone(),
        0,
        ADMIN_ENTRIES,
        capabilities.doorbell_stride,
    )?;
    let controller = Controller {
        registers: registers.clone(),
        platform: function.platform(),
        address: function.address(),
        ready_timeout_ms: capabilities.ready_timeout_ms,
        shutdown_timeout_ms: spec::SHUTDOWN_TIMEOUT_MIN_MS,
    };
    controller.disable()?;
    controller.set_admin_queue(&admin);
    // From here on, dropping `disk` (on any error) resets the controller before its
    // memory goes back, or keeps that memory for good when the reset is not confirmed
    // (its Identify page and I/O queues are in it before the controller hears of them).
    let mut disk = Nvme::new(controller, admin);
    disk.controller.enable()?;

    let identity = disk.identify("Identify Controller", spec::CNS_CONTROLLER, 0)?;
    let model = spec::identify_string(&identity[spec::ID_MODEL]);
    let serial = spec::identify_string(&identity[spec::ID_SERIAL]);
    let firmware = spec::identify_string(&identity[spec::ID_FIRMWARE]);
    let max_bytes =
        spec::max_transfer(identity[spec::ID_MDTS], capabilities.min_page, MAX_TRANSFER);
    let rtd3e = u32::from_le_bytes(identity[spec::ID_RTD3E].try_into().unwrap_or_default());
    disk.controller.shutdown_timeout_ms = spec::shutdown_timeout_ms(rtd3e);

    let namespace = disk.identify("Identify Namespace", spec::CNS_NAMESPACE, NAMESPACE)?;
    let sectors = u64::from_le_bytes(
        namespace[spec::NS_SIZE..spec::NS_SIZE + 8]
            .try_into()
            .unwrap_or_default(),
    );
    if sectors == 0 {
        return Err(DeviceError::Unsupported("an active namespace 1"));
    }
    let (sector_size, metadata) = spec::lba_format(namespace)?;
    if metadata != 0 {
        return Err(DeviceError::Unsupported("sectors without metadata"));
    }
    // NLB is a 16-bit count; the buffer holds whole sectors.
    let max_sectors = (max_bytes / u64::from(sector_size)).min(1 << 16) as u32;
    if max_sectors == 0 {
        return Err(DeviceError::Unsupported("transfers of a whole sector"));
    }
    disk.identify_page = None;

    let wanted = IO_QUEUES_WANTED.min((pairs_in_bar - 1) as u16);
    disk.queue_pairs_asked = wanted;
    let granted = disk.admin_command(SET_QUEUE_COUNT, |id| Command::set_queue_count(id, wanted))?;
    let pairs = spec::granted_pairs(granted, wanted);
    let request_bytes = max_sectors as usize * sector_size as usize;
    for id in 1..=pairs {
        let vector = completion_vector(msix.as_ref(), id);
        let pair = QueuePair::new(
            function.platform(),
            registers.clone(),
            id,
            depth + 1,
            capabilities.doorbell_stride,
        )?;
        disk.queues.push(IoQueue::new(
            function.platform(),
            pair,
            depth,
            request_bytes,
            vector,
        )?);
        let index = disk.queues.len() - 1;
        for step in 2 * index..2 * index + 2 {
            let (what, build) = disk.queue_creation(step);
            disk.admin_command(what, build)?;
        }
    }

    let vectors = disk.queues.iter().map(|io| io.vector).collect();
    disk.wakes = QueueWakes::new(msix, vectors);
    disk.info = BlockInfo {
        sectors,
        sector_size,
        max_sectors,
        queues: disk.queues.len(),
        depth: depth as usize,
        model,
    };
    log::info!(
        "{} nvme: {:?} serial {:?} firmware {:?}: {} sectors of {} bytes, {} I/O queue(s) x {}, {} sectors per request, {}",
        function.address(),
        disk.info.model,
        serial,
        firmware,
        sectors,
        sector_size,
        pairs,
        depth,
        max_sectors,
        if disk.wakes.any() {
            "completions can wake a core through MSI-X"
        } else {
            "completions polled only"
        }
    );
    Ok(vec![Found::Block(Box::new(disk))])
}

/// The MSI-X entry I/O completion queue `id` signals through: entry `id` when the
/// table has it (entry 0 is the admin queue's, whose interrupts cannot be turned off),
/// else none (the queue is polled only).
fn completion_vector(msix: Option<&MsixTable>, id: u16) -> Option<u16> {
    msix.filter(|table| id < table.size()).map(|_| id)
}

/// Reads a 64-bit register as two 32-bit halves, low first (some controllers take
/// no 64-bit accesses).
fn read64(registers: &Mmio, offset: usize) -> u64 {
    u64::from(registers.read32(offset)) | (u64::from(registers.read32(offset + 4)) << 32)
}

/// Writes a 64-bit register as two 32-bit halves, low first.
fn write64(registers: &Mmio, offset: usize, value: u64) {
    registers.write32(offset, value as u32);
    registers.write32(offset + 4, (value >> 32) as u32);
}

/// The controller's enable state (disabling it stops its DMA: [`Nvme`]'s drop does so
/// before the queues' memory is given back).
struct Controller {
    /// BAR 0.
    registers: Mmio,
    /// The clock.
    platform: &'static dyn Platform,
    /// Where the controller is on the PCI bus (for messages).
    address: Address,
    /// How long CSTS.RDY may take to follow CC.EN (CAP.TO).
    ready_timeout_ms: u64,
    /// How long a normal shutdown may take ([`spec::shutdown_timeout_ms`] of RTD3E).
    shutdown_timeout_ms: u64,
}

impl Controller {
    /// Clears CC.EN (a controller reset) and waits for CSTS.RDY to clear.
    fn disable(&self) -> Result<(), DeviceError> {
        self.clear_enable();
        self.wait_ready(false, "the controller to reset")
    }

    /// Clears CC.EN when it is set (a controller reset), without waiting: the controller
    /// may use the queues' memory until CSTS.RDY clears.
    fn clear_enable(&self) {
        if self.registers.read32(spec::REG_CC) & spec::CC_ENABLE != 0 {
            self.registers.write32(spec::REG_CC, 0);
        }
    }

    /// Sets CC.EN and waits for CSTS.RDY (section 3.5.1).
    fn enable(&self) -> Result<(), DeviceError> {
        self.set_enable();
        self.wait_ready(true, "the controller to become ready")
    }

    /// Sets CC.EN with the NVM command set, 4 KiB pages, round-robin arbitration and
    /// the standard I/O entry sizes, without waiting for CSTS.RDY.
    fn set_enable(&self) {
        self.registers.write32(
            spec::REG_CC,
            spec::CC_ENABLE | spec::CC_IOSQES_64 | spec::CC_IOCQES_16,
        );
    }

    /// Tells the disabled controller where its admin queues are (AQA, ASQ, ACQ).
    fn set_admin_queue(&self, admin: &QueuePair) {
        self.registers
            .write32(spec::REG_AQA, spec::admin_queue_attributes(admin.entries));
        write64(&self.registers, spec::REG_ASQ, admin.submission_base());
        write64(&self.registers, spec::REG_ACQ, admin.completion_base());
    }

    /// Waits until CSTS.RDY is `ready`, within CAP.TO.
    fn wait_ready(&self, ready: bool, what: &'static str) -> Result<(), DeviceError> {
        rexo_devio::wait_until_or_fault(self.platform, what, self.ready_timeout_ms, || {
            let status = self.status()?;
            if ready && status & spec::CSTS_FATAL != 0 {
                return Err(DeviceError::Failed("controller fatal status (CSTS.CFS)"));
            }
            Ok((status & spec::CSTS_READY != 0) == ready)
        })
    }

    /// CSTS, or `Failed` when the controller no longer answers (all ones).
    fn status(&self) -> Result<u32, DeviceError> {
        match self.registers.read32(spec::REG_CSTS) {
            u32::MAX => Err(DeviceError::Failed("the controller no longer answers")),
            status => Ok(status),
        }
    }

    /// `Failed` when the controller reports a fatal status.
    fn check_fatal(&self) -> Result<(), DeviceError> {
        if self.status()? & spec::CSTS_FATAL != 0 {
            return Err(DeviceError::Failed("controller fatal status (CSTS.CFS)"));
        }
        Ok(())
    }

    /// Tells the controller the power is about to go (CC.SHN a normal shutdown, CC.EN
    /// kept) and waits, within the shutdown timeout, for CSTS.SHST to say its shutdown
    /// processing is complete (NVMe Base, "Shutdown").
    fn shut_down(&self) -> Result<(), DeviceError> {
        let configuration = self.registers.read32(spec::REG_CC) & !spec::CC_SHUTDOWN_MASK;
        self.registers
            .write32(spec::REG_CC, configuration | spec::CC_SHUTDOWN_NORMAL);
        rexo_devio::wait_until_or_fault(
            self.platform,
            "the controller's shutdown (CSTS.SHST complete)",
            self.shutdown_timeout_ms,
            || Ok(self.status()? & spec::CSTS_SHUTDOWN_MASK == spec::CSTS_SHUTDOWN_COMPLETE),
        )
    }

    /// Whether CAP.TO has passed since `since` (a clock reading).
    fn ready_timeout_passed(&self, since: u64) -> bool {
        self.platform.now_ns().saturating_sub(since) > self.ready_timeout_ms * 1_000_000
    }
}

/// What a request slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Nothing: free for the next request.
    Free,
    /// A request the controller has.
    Busy {
        /// Its command.
        operation: Operation,
        /// Its data bytes.
        bytes: usize,
        /// When the controller was told of it (its doorbell write; its timeouts count
        /// from there), or `None` while it waits for the next `poll` to ring it in.
        rung_at: Option<u64>,
    },
    /// A request whose holder went: the slot (with its buffer) stays out of use until
    /// the controller completes it after all, or is reset (when it holds the command
    /// past [`IO_TIMEOUT_NS`]).
    Abandoned {
        /// When the controller was told of it, if it was (the controller is reset when
        /// it holds the command past [`IO_TIMEOUT_NS`] from then).
        rung_at: Option<u64>,
    },
    /// A request the controller had when it was reset: the queue's first `poll` once the
    /// reset is over fails it with [`DeviceError::Reset`], or with
    /// [`DeviceError::Timeout`] if it is the one the reset was for, and frees the slot
    /// (with `Failed` instead if the reset failed for good); abandoned, it is freed as
    /// soon as the controller is disabled.
    Interrupted {
        /// When the controller was told of it, if it was.
        rung_at: Option<u64>,
        /// Its command, when it was held past [`IO_TIMEOUT_NS`] (the reset began
        /// because of it).
        timed_out: Option<Operation>,
    },
}

/// A request slot: what it holds, and the generation of its latest command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SlotState {
    /// What it holds.
    state: Slot,
    /// The generation of its latest command, so a completion carrying an earlier one (a
    /// repeat of one already taken, say of a request that timed out or was abandoned,
    /// once the slot holds a new request, or of any command from before a controller
    /// reset) is stale.
    generation: u16,
}

impl SlotState {
    /// Moves the slot to its next generation (of [`GENERATIONS`]) and returns it.
    fn advance_generation(&mut self) -> u16 {
        self.generation = (self.generation + 1) % GENERATIONS;
        self.generation
    }
}

/// The I/O commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    /// Read: the completion lends the data.
    Read,
    /// Write.
    Write,
    /// Flush.
    Flush,
}

impl Operation {
    /// The command's name, for errors.
    fn name(self) -> &'static str {
        match self {
            Self::Read => "NVMe read",
            Self::Write => "NVMe write",
            Self::Flush => "NVMe flush",
        }
    }
}

/// One I/O queue pair with its request slots: slot `i` is tag `i`, owning buffer `i`
/// and PRP list `i`; its commands' identifiers are `i` in the low [`SLOT_BITS`] and the
/// slot's generation, bumped at each use, above them.
struct IoQueue {
    /// The queues.
    pair: QueuePair,
    /// The slots' data buffers, `request_bytes` each.
    buffers: Dma,
    /// Bytes per buffer.
    request_bytes: usize,
    /// The slots' PRP lists, filled once (the buffers never move), `list_bytes` each.
    prp_lists: Dma,
    /// Bytes per PRP list (a power of two, so no list crosses a page).
    list_bytes: usize,
    /// The slots, each with its generation.
    slots: Vec<SlotState>,
    /// Free slots (a stack).
    free: Vec<u16>,
    /// Whether any slot is [`Slot::Interrupted`].
    interrupted: bool,
    /// The MSI-X entry its completion queue signals through, if any.
    vector: Option<u16>,
    /// Stale completions dropped so far.
    stale_completions: u64,
    /// When `poll` next looks for late requests.
    next_timeout_check: u64,
    /// A fault found by a poll that handed completions over (which returned their
    /// count): the next poll returns it first.
    unreported_fault: Option<DeviceError>,
}

impl IoQueue {
    /// `depth` slots of `request_bytes` on `pair`, in DMA memory from `platform`; its
    /// completion queue signals through MSI-X entry `vector`, if any.
    fn new(
        platform: &'static dyn Platform,
        pair: QueuePair,
        depth: u32,
        request_bytes: usize,
        vector: Option<u16>,
    ) -> Result<Self, DeviceError> {
        let slots = depth as usize;
        let request_bytes = request_bytes.next_multiple_of(PAGE);
        let list_entries = (request_bytes / PAGE).saturating_sub(1).max(1);
        let list_bytes = (list_entries * 8).next_power_of_two();
        let buffers = Dma::new(platform, slots * request_bytes)?;
        let mut prp_lists = Dma::new(platform, slots * list_bytes)?;
        for slot in 0..slots {
            let buffer = buffers.phys() + (slot * request_bytes) as u64;
            for entry in 0..list_entries {
                prp_lists.write64(
                    slot * list_bytes + 8 * entry,
                    spec::prp_list_entry(buffer, entry),
                );
            }
        }
        Ok(Self {
            pair,
            buffers,
            request_bytes,
            prp_lists,
            list_bytes,
            slots: vec![
                SlotState {
                    state: Slot::Free,
                    generation: 0,
                };
                slots
            ],
            free: (0..depth as u16).rev().collect(),
            interrupted: false,
            vector,
            stale_completions: 0,
            next_timeout_check: 0,
            unreported_fault: None,
        })
    }

    /// Gives slot `slot` its next generation: the identifier of the command it now
    /// takes.
    fn next_command_id(&mut self, slot: u16) -> u16 {
        let generation = self.slots[usize::from(slot)].advance_generation();
        (generation << SLOT_BITS) | slot
    }

    /// Frees slot `index`.
    fn release(&mut self, index: usize) {
        self.slots[index].state = Slot::Free;
        self.free.push(index as u16);
    }

    /// Gives up the requests in flight (their holder went): those queued since the
    /// last doorbell are taken back unsent and their slots freed; the controller's
    /// have their completions dropped when they come, and a fault not yet reported is
    /// forgotten. Requests failed by a reset but
    /// not yet told of are freed when the controller was `disabled` since they were
    /// sent, else abandoned until it is.
    fn abandon(&mut self, disabled: bool) {
        for id in self.pair.withdraw_unrung() {
            let index = usize::from(id & SLOT_MASK);
            if self.slots[index].generation == id >> SLOT_BITS
                && matches!(
                    self.slots[index].state,
                    Slot::Busy { .. } | Slot::Interrupted { .. }
                )
            {
                self.release(index);
            }
        }
        for index in 0..self.slots.len() {
            match self.slots[index].state {
                Slot::Busy { rung_at, .. } => self.slots[index].state = Slot::Abandoned { rung_at },
                Slot::Interrupted { .. } if disabled => self.release(index),
                Slot::Interrupted { rung_at, .. } => {
                    self.slots[index].state = Slot::Abandoned { rung_at }
                }
                Slot::Free | Slot::Abandoned { .. } => {}
            }
        }
        self.interrupted = false;
        self.unreported_fault = None;
    }

    /// Whether a slot holds an abandoned request (the controller may still have it).
    fn has_abandoned(&self) -> bool {
        self.slots
            .iter()
            .any(|slot| matches!(slot.state, Slot::Abandoned { .. }))
    }

    /// Hands each completion the controller posted to `done` and frees its slot;
    /// `queues` is the number of I/O queues, for errors. The number handed over, and
    /// the first fault found (a foreign queue or command identifier), if any.
    fn take_completions(
        &mut self,
        queues: usize,
        done: Completion<'_>,
    ) -> (usize, Option<DeviceError>) {
        let mut finished = 0;
        let mut fault = None;
        while let Some((completion, _)) = self.pair.take() {
            let index = usize::from(completion.id & SLOT_MASK);
            if completion.queue != self.pair.id {
                fault.get_or_insert(DeviceError::BadIndex {
                    what: "I/O completion's submission queue",
                    index: completion.queue.into(),
                    size: queues as u32 + 1,
                });
                continue;
            }
            let slot = self.slots.get(index).copied();
            if slot.is_some_and(|slot| slot.generation != completion.id >> SLOT_BITS) {
                // Never the slot's current request's: that one waits for its own.
                self.drop_stale(completion.id);
                continue;
            }
            match slot.map(|slot| slot.state) {
                Some(Slot::Busy {
                    operation, bytes, ..
                }) => {
                    let result = if completion.failed() {
                        Err(DeviceError::Status {
                            what: operation.name(),
                            status: completion.status.into(),
                        })
                    } else if operation == Operation::Read {
                        Ok(self.buffers.bytes(index * self.request_bytes, bytes))
                    } else {
                        Ok(&[][..])
                    };
                    done(index as Tag, result);
                    finished += 1;
                }
                Some(Slot::Abandoned { .. }) => {
                    log::debug!("nvme: completion of abandoned request {index} dropped");
                }
                _ => {
                    fault.get_or_insert(DeviceError::BadIndex {
                        what: "I/O completion's command identifier (no such request)",
                        index: index as u32,
                        size: self.slots.len() as u32,
                    });
                    continue;
                }
            }
            self.release(index);
        }
        self.pair.release();
        (finished, fault)
    }

    /// Finds the commands the controller has held for over [`IO_TIMEOUT_NS`] at `now`
    /// (counted from their doorbell write; a `now` behind that, read on a core whose
    /// clock lags the ringing core's, counts as no time): each such request becomes
    /// [`Slot::Interrupted`] as timed out, told of only once a controller reset has
    /// made sure the controller will not carry it out. Whether any command, a request's
    /// or an abandoned one's, is that late: the caller then resets the controller.
    fn time_out(&mut self, now: u64) -> bool {
        let mut late = false;
        for slot in &mut self.slots {
            match slot.state {
                Slot::Busy {
                    operation,
                    rung_at: Some(since),
                    ..
                } if now.saturating_sub(since) > IO_TIMEOUT_NS => {
                    slot.state = Slot::Interrupted {
                        rung_at: Some(since),
                        timed_out: Some(operation),
                    };
                    self.interrupted = true;
                    late = true;
                }
                Slot::Abandoned {
                    rung_at: Some(since),
                } if now.saturating_sub(since) > IO_TIMEOUT_NS => late = true,
                _ => {}
            }
        }
        late
    }

    /// Tells the controller of the commands queued since the last doorbell (one
    /// doorbell write), their timeouts counting from now (a clock reading from
    /// `platform`); nothing when there are none.
    fn ring(&mut self, platform: &dyn Platform) {
        let mut unrung = self.pair.unrung_ids().peekable();
        if unrung.peek().is_none() {
            return;
        }
        let now = platform.now_ns();
        for id in unrung {
            if let Slot::Busy { rung_at, .. } = &mut self.slots[usize::from(id & SLOT_MASK)].state {
                *rung_at = Some(now);
            }
        }
        self.pair.ring();
    }

    /// Counts a completion whose command identifier `id` names an earlier use of its
    /// slot than the current one, which is dropped (warned of at powers of two).
    fn drop_stale(&mut self, id: u16) {
        self.stale_completions += 1;
        if self.stale_completions.is_power_of_two() {
            log::warn!(
                "nvme: queue {}: stale completion (command identifier {id:#x}, slot {} now \
                 at generation {}) dropped, {} so far",
                self.pair.id,
                id & SLOT_MASK,
                self.slots[usize::from(id & SLOT_MASK)].generation,
                self.stale_completions
            );
        }
    }

    /// Every block of DMA memory the controller is given for this queue.
    fn memory_mut(&mut self) -> impl Iterator<Item = &mut Dma> {
        let [submission, completion] = self.pair.memory_mut();
        [
            submission,
            completion,
            &mut self.buffers,
            &mut self.prp_lists,
        ]
        .into_iter()
    }

    /// The PRPs of `bytes` in slot `slot`'s buffer.
    fn prps(&self, slot: usize, bytes: usize) -> (u64, u64) {
        spec::prps(
            self.buffers.phys() + (slot * self.request_bytes) as u64,
            bytes,
            self.prp_lists.phys() + (slot * self.list_bytes) as u64,
        )
    }
}

/// What writes a write request's data in place into its buffer, and says whether the
/// write may go (`false` withdraws it).
type Fill<'a> = &'a mut dyn FnMut(&mut [u8]) -> bool;

/// An NVMe controller serving namespace 1 as a disk.
struct Nvme {
    /// The controller; first, so that it is reset before the queues' memory goes.
    controller: Controller,
    /// The admin queue pair.
    admin: QueuePair,
    /// The next admin command identifier (they count up, skipping [`NO_COMMAND_ID`]).
    next_admin_id: u16,
    /// The I/O queue pairs (queue `i` of the API is NVMe queue `i + 1`).
    queues: Vec<IoQueue>,
    /// The I/O queue pairs Set Features Number of Queues asks for, at the probe and
    /// again after every controller reset (0 until the probe asks).
    queue_pairs_asked: u16,
    /// The disk.
    info: BlockInfo,
    /// The clock.
    platform: &'static dyn Platform,
    /// Why the controller stopped, once it did.
    failed: Option<&'static str>,
    /// Shut down for a power-off or reboot ([`BlockDevice::shut_down`]): every later
    /// request, poll and arming is refused with [`DISK_SHUT_DOWN`].
    shut_down: bool,
    /// How far a controller reset has come, while one runs.
    reset: Option<Reset>,
    /// Completion wake-ups: API queue `q` (completion queue `q + 1`) through MSI-X
    /// entry `q + 1`.
    wakes: QueueWakes,
    /// The page Identify answers land in, while the probe reads them.
    identify_page: Option<Dma>,
}

impl Drop for Nvme {
    /// Resets the controller before its memory goes back; a controller whose CSTS.RDY
    /// does not clear (within CAP.TO) may still use that memory, so it is kept for good.
    fn drop(&mut self) {
        if let Err(error) = self.controller.disable() {
            let address = self.controller.address;
            log::warn!("{address} nvme: reset at release: {error}");
            let queues = self.queues.iter_mut().flat_map(IoQueue::memory_mut);
            rexo_devio::abandon_to_device(
                &format_args!("{address} nvme"),
                self.admin
                    .memory_mut()
                    .into_iter()
                    .chain(queues)
                    .chain(&mut self.identify_page),
            );
        }
    }
}

impl Nvme {
    /// The disk of the enabled `controller` with its `admin` queue pair, before its
    /// I/O queues exist: no queues or wake-ups, and a blank [`BlockInfo`].
    fn new(controller: Controller, admin: QueuePair) -> Self {
        let platform = controller.platform;
        Self {
            controller,
            admin,
            next_admin_id: 0,
            queues: Vec::new(),
            queue_pairs_asked: 0,
            info: BlockInfo {
                sectors: 0,
                sector_size: 0,
                max_sectors: 0,
                queues: 0,
                depth: 0,
                model: alloc::string::String::new(),
            },
            platform,
            failed: None,
            shut_down: false,
            reset: None,
            wakes: QueueWakes::new(None, Vec::new()),
            identify_page: None,
        }
    }

    /// Runs Identify `cns` of namespace `namespace` (named `what`) into the Identify
    /// page (made at the first call) and lends the page's bytes.
    fn identify(
        &mut self,
        what: &'static str,
        cns: u32,
        namespace: u32,
    ) -> Result<&[u8], DeviceError> {
        let phys = self.identify_page()?.phys();
        self.admin_command(what, |id| Command::identify(id, cns, namespace, phys))?;
        Ok(self.identify_page()?.bytes(0, PAGE))
    }

    /// The page Identify data lands in, allocated at its first use.
    fn identify_page(&mut self) -> Result<&Dma, DeviceError> {
        let page = match self.identify_page.take() {
            Some(page) => page,
            None => Dma::new(self.platform, PAGE)?,
        };
        Ok(self.identify_page.insert(page))
    }

    /// Runs one admin command (built from its identifier) and waits for it: its
    /// completion dword 0.
    fn admin_command(
        &mut self,
        what: &'static str,
        build: impl FnOnce(u16) -> Command,
    ) -> Result<u32, DeviceError> {
        let id = self.send_admin(build);
        let platform = self.platform;
        let answer = rexo_devio::wait_for(platform, what, ADMIN_TIMEOUT_MS, || {
            self.admin_answer(what, id)
        });
        if let Err(DeviceError::Timeout { .. }) = answer {
            self.controller.check_fatal()?;
        }
        answer
    }

    /// Queues one admin command (built from its identifier) and rings it in: its
    /// identifier. One admin command is in flight at a time.
    fn send_admin(&mut self, build: impl FnOnce(u16) -> Command) -> u16 {
        let id = self.next_admin_id;
        self.next_admin_id = match id.wrapping_add(1) {
            NO_COMMAND_ID => 0,
            next => next,
        };
        self.admin.push(&build(id));
        self.admin.ring();
        id
    }

    /// The answer to admin command `id` (named `what`), the one in flight: its
    /// completion dword 0, or `None` while the controller has posted none.
    fn admin_answer(&mut self, what: &'static str, id: u16) -> Result<Option<u32>, DeviceError> {
        let Some((completion, dw0)) = self.admin.take() else {
            return Ok(None);
        };
        self.admin.release();
        if completion.id != id {
            // One admin command is in flight at a time: any other identifier is the
            // controller's fault.
            return Err(DeviceError::BadIndex {
                what: "admin completion's command identifiers (not the one in flight)",
                index: completion.id.into(),
                size: 1 << 16,
            });
        }
        if completion.failed() {
            return Err(DeviceError::Status {
                what,
                status: completion.status.into(),
            });
        }
        Ok(Some(dw0))
    }

    /// Admin command `step` of creating the I/O queues, two per pair (Create I/O
    /// Completion Queue of pair `step / 2`, then its Submission Queue): its name, and
    /// how it is built from its identifier.
    fn queue_creation(&self, step: usize) -> (&'static str, impl FnOnce(u16) -> Command + use<>) {
        let io = &self.queues[step / 2];
        let (id, entries, vector) = (io.pair.id, io.pair.entries, io.vector);
        let (submission, completion) = (io.pair.submission_base(), io.pair.completion_base());
        let creates_submission = step % 2 == 1;
        let what = if creates_submission {
            "Create I/O Submission Queue"
        } else {
            "Create I/O Completion Queue"
        };
        (what, move |cid| {
            if creates_submission {
                Command::create_submission_queue(cid, id, entries, submission)
            } else {
                Command::create_completion_queue(cid, id, entries, completion, vector)
            }
        })
    }

    /// [`DISK_SHUT_DOWN`] once the disk was shut down, `Failed` once the controller
    /// stopped.
    fn usable(&self) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        self.failed
            .map_or(Ok(()), |why| Err(DeviceError::Failed(why)))
    }

    /// Admin command `step` of deleting the I/O queues before a shutdown, two per pair
    /// (every Delete I/O Submission Queue, then every Delete I/O Completion Queue: a
    /// completion queue goes after the submission queues on it): its name, and how it
    /// is built from its identifier.
    fn queue_deletion(&self, step: usize) -> (&'static str, impl FnOnce(u16) -> Command + use<>) {
        let pairs = self.queues.len();
        let queue = self.queues[step % pairs].pair.id;
        let deletes_submission = step < pairs;
        let what = if deletes_submission {
            "Delete I/O Submission Queue"
        } else {
            "Delete I/O Completion Queue"
        };
        (what, move |cid| {
            Command::delete_queue(cid, queue, deletes_submission)
        })
    }

    /// The shutdown of [`BlockDevice::shut_down`] once the requests drained: a reset
    /// still running is finished (its steps each bounded), then a controller that works
    /// (not failed, no fatal status) has its I/O queues deleted (a deletion refused or
    /// unanswered is logged, and the shutdown goes on: the notification is what counts)
    /// and is told of the power loss ([`Controller::shut_down`]).
    fn notify_shutdown(&mut self) -> Result<(), DeviceError> {
        while self.reset.is_some() {
            self.continue_reset()?;
            core::hint::spin_loop();
        }
        self.usable()?;
        self.controller.check_fatal()?;
        for step in 0..2 * self.queues.len() {
            let (what, build) = self.queue_deletion(step);
            if let Err(error) = self.admin_command(what, build) {
                let address = self.controller.address;
                log::warn!("{address} nvme: {what}: {error}; shutting down with the queues");
                break;
            }
        }
        self.controller.shut_down()
    }

    /// Queues `operation` on `sectors` sectors from `lba` (checked against the disk
    /// first) on queue `queue`; `fill` writes a write's data into the slot's buffer, or
    /// withdraws it (the slot goes back free, no command is queued).
    fn submit(
        &mut self,
        queue: usize,
        operation: Operation,
        lba: u64,
        sectors: u32,
        fill: Option<Fill<'_>>,
    ) -> Result<Tag, DeviceError> {
        self.usable()?;
        if self.reset.is_some() {
            // The queues are being made anew: nothing goes on them until `poll` has.
            return Err(DeviceError::QueueFull);
        }
        let capacity = self.info.sectors;
        if operation != Operation::Flush {
            let past_end = lba
                .checked_add(u64::from(sectors))
                .is_none_or(|end| end > capacity);
            if sectors == 0 || sectors > self.info.max_sectors || past_end {
                return Err(DeviceError::OutOfRange {
                    lba,
                    sectors: sectors.into(),
                    capacity,
                });
            }
        }
        let bytes = sectors as usize * self.info.sector_size as usize;
        let io = self
            .queues
            .get_mut(queue)
            .ok_or(DeviceError::NoSuchQueue(queue))?;
        let slot = io.free.pop().ok_or(DeviceError::QueueFull)?;
        let index = usize::from(slot);
        if let Some(fill) = fill
            && !fill(io.buffers.bytes_mut(index * io.request_bytes, bytes))
        {
            io.free.push(slot);
            return Err(DeviceError::Withdrawn);
        }
        let id = io.next_command_id(slot);
        let command = match operation {
            Operation::Flush => Command::flush(id, NAMESPACE),
            Operation::Read | Operation::Write => Command::read_write(
                if operation == Operation::Read {
                    spec::IO_READ
                } else {
                    spec::IO_WRITE
                },
                id,
                NAMESPACE,
                lba,
                sectors,
                io.prps(index, bytes),
            ),
        };
        io.pair.push(&command);
        io.slots[index].state = Slot::Busy {
            operation,
            bytes,
            rung_at: None,
        };
        Ok(Tag::from(slot))
    }
}

impl BlockDevice for Nvme {
    fn info(&self) -> BlockInfo {
        self.info.clone()
    }

    fn submit_read(&mut self, queue: usize, lba: u64, sectors: u32) -> Result<Tag, DeviceError> {
        self.submit(queue, Operation::Read, lba, sectors, None)
    }

    fn submit_write_checked(
        &mut self,
        queue: usize,
        lba: u64,
        sectors: u32,
        fill: Fill<'_>,
    ) -> Result<Tag, DeviceError> {
        self.submit(queue, Operation::Write, lba, sectors, Some(fill))
    }

    fn submit_flush(&mut self, queue: usize) -> Result<Tag, DeviceError> {
        self.submit(queue, Operation::Flush, 0, 0, None)
    }

    /// Unmasks the queue's MSI-X entry, pointed at `core`: the controller's next message
    /// for a completion on it wakes the core. Disarmed (masked again) by the next poll
    /// that hands over a completion, or by `None`. During a controller reset, or with
    /// requests it interrupted still to be failed at the queue's next poll, the core is
    /// woken at once instead (no message comes for those, and polls move the reset on).
    fn wake_on_completion(&mut self, queue: usize, core: Option<usize>) -> Result<(), DeviceError> {
        if self.shut_down && core.is_some() {
            return Err(DISK_SHUT_DOWN);
        }
        self.wakes.arm(queue, core)?;
        if self.reset.is_some() || self.queues.get(queue).is_some_and(|io| io.interrupted) {
            self.wakes.wake_now(queue);
        }
        Ok(())
    }

    /// Takes back the requests the controller was not yet told of, then drains the
    /// ones it has: polls until each is completed (its completion dropped) or, held
    /// past [`IO_TIMEOUT_NS`], freed by a controller reset (or the disk fails for
    /// good). So none lands on the disk after the holder changed.
    fn abandon_requests(&mut self) {
        self.wakes.disarm_all();
        let disabled = self.disabled_since_reset();
        for io in &mut self.queues {
            io.abandon(disabled);
        }
        let queues = self.queues.len();
        rexo_devio::drain_abandoned(self, queues, |disk| {
            disk.failed.is_none() && disk.queues.iter().any(IoQueue::has_abandoned)
        });
    }

    /// The requests queued since the last doorbell are rung in, then drained as
    /// [`abandon_requests`](Self::abandon_requests) drains (each completed, or freed by a
    /// controller reset when held past [`IO_TIMEOUT_NS`]); then the controller is shut
    /// down ([`Nvme::notify_shutdown`]: the I/O queues deleted, CC.SHN a normal shutdown,
    /// CSTS.SHST complete within RTD3E, at least 5 s and at most 60 s), at a reboot as at
    /// a power-off (NVMe Base 2.0, 3.6: the normal shutdown whenever the power may go,
    /// and a reset may cut it). A controller that failed for good is not told (its
    /// `Failed`). The disk refuses everything after.
    fn shut_down(&mut self, _: Leaving) -> Result<(), DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        if self.failed.is_none() && self.reset.is_none() {
            for io in &mut self.queues {
                io.ring(self.platform);
            }
        }
        self.abandon_requests();
        let told = self.notify_shutdown();
        self.shut_down = true;
        told
    }

    fn poll(&mut self, queue: usize, done: Completion<'_>) -> Result<usize, DeviceError> {
        if self.shut_down {
            return Err(DISK_SHUT_DOWN);
        }
        let reset_progress = if self.reset.is_some() {
            self.continue_reset()
        } else {
            Ok(())
        };
        if let Some(why) = self.failed {
            // The requests a reset that failed for good interrupted end with it, once.
            let error = DeviceError::Failed(why);
            let failed = self
                .queues
                .get_mut(queue)
                .map_or(0, |io| io.fail_interrupted(error, done));
            return if failed > 0 { Ok(failed) } else { Err(error) };
        }
        reset_progress?;
        let io = self
            .queues
            .get_mut(queue)
            .ok_or(DeviceError::NoSuchQueue(queue))?;
        if self.reset.is_none() {
            // Requests queued since the last poll reach the controller in one doorbell
            // write, even from a poll that only says a fault held back (the caller may
            // then sleep on their completions). Their timeouts count from here.
            io.ring(self.platform);
        }
        if let Some(fault) = io.unreported_fault.take() {
            return Err(fault);
        }
        let mut finished = 0;
        let mut late = false;
        if self.reset.is_none() {
            // The reset is over: a request it interrupted may be submitted again.
            if io.interrupted {
                finished += io.fail_interrupted(DeviceError::Reset, done);
            }
            let (taken, found) = io.take_completions(self.info.queues, done);
            finished += taken;
            io.unreported_fault = found;
            if io.free.len() < io.slots.len() {
                let now = self.platform.now_ns();
                if now >= io.next_timeout_check {
                    io.next_timeout_check = now + TIMEOUT_CHECK_NS;
                    late = io.time_out(now);
                }
            }
        }
        if late {
            // The late requests fail once the reset has disabled the controller (or
            // with the disk, when it cannot be).
            self.start_reset("a command not completed within the I/O timeout");
            if let Err(error) = self.continue_reset() {
                // A reset that fails at once (the controller gone, say) ends this
                // queue's requests it interrupted now, the late ones with them.
                finished += self.queues[queue].fail_interrupted(error, done);
                if finished == 0 {
                    return Err(error);
                }
            }
        }
        if finished > 0 {
            self.wakes.spent(queue);
        }
        // A fault met beside completions waits for the next poll: their count stands.
        if finished == 0
            && let Some(fault) = self.queues[queue].unreported_fault.take()
        {
            return Err(fault);
        }
        Ok(finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ControllerSide;
    use rexo_devio::host::HostPlatform;

    /// Bytes per sector of the test disk.
    const SECTOR_BYTES: usize = 512;

    /// A 1024-sector disk with one I/O queue pair of `depth` slots on a controller whose
    /// registers are plain memory (the test plays the controller), and the platform
    /// whose clock the test moves.
    fn disk_with_fake_controller(depth: u32) -> (Nvme, &'static HostPlatform) {
        disk_of_pairs(1, depth)
    }

    /// [`disk_with_fake_controller`] with `pairs` I/O queue pairs, whose probe asked for
    /// [`IO_QUEUES_WANTED`].
    fn disk_of_pairs(pairs: u16, depth: u32) -> (Nvme, &'static HostPlatform) {
        let platform = HostPlatform::leaked();
        let stride = 4;
        let registers = rexo_devio::host::registers(spec::doorbell(pairs + 1, false, stride));
        let admin = QueuePair::new(platform, registers.clone(), 0, ADMIN_ENTRIES, stride);
        let queues: Vec<IoQueue> = (1..=pairs)
            .map(|id| {
                let pair = QueuePair::new(platform, registers.clone(), id, depth + 1, stride);
                IoQueue::new(platform, pair.unwrap(), depth, PAGE, None).unwrap()
            })
            .collect();
        let controller = Controller {
            registers,
            platform,
            address: Address::new(0, 0, 4, 0).unwrap(),
            ready_timeout_ms: 500,
            shutdown_timeout_ms: spec::SHUTDOWN_TIMEOUT_MIN_MS,
        };
        let mut disk = Nvme::new(controller, admin.unwrap());
        disk.queue_pairs_asked = IO_QUEUES_WANTED;
        disk.wakes = QueueWakes::new(None, vec![None; queues.len()]);
        disk.queues = queues;
        disk.info = BlockInfo {
            sectors: 1024,
            sector_size: SECTOR_BYTES as u32,
            max_sectors: (PAGE / SECTOR_BYTES) as u32,
            queues: pairs.into(),
            depth: depth as usize,
            model: alloc::string::String::new(),
        };
        (disk, platform)
    }

    /// Polls queue 0 of `disk` once: the completions it handed out, as (tag, data or
    /// error).
    fn poll_once(disk: &mut Nvme) -> Vec<(Tag, Result<Vec<u8>, DeviceError>)> {
        rexo_devio::host::completions(disk, 0)
    }

    #[test]
    fn a_controller_that_does_not_reset_keeps_its_memory_and_one_that_resets_gives_it_back() {
        for (status, live_after) in [(spec::CSTS_READY, 6), (0, 0)] {
            let (disk, platform) = disk_with_fake_controller(1);
            // Plain memory as CSTS: RDY stays as written, whatever CC.EN says.
            disk.controller.registers.write32(spec::REG_CSTS, status);
            assert_eq!(platform.live(), 6, "two queue pairs, buffers, PRP lists");
            drop(disk);
            assert_eq!(platform.live(), live_after, "CSTS {status:#x}");
        }
    }

    #[test]
    fn a_controller_that_disables_while_the_core_is_away_past_the_deadline_is_taken() {
        let (disk, platform) = disk_with_fake_controller(1);
        let registers = disk.controller.registers.clone();
        registers.write32(spec::REG_CSTS, spec::CSTS_READY);
        let far_past_cap_to_ns = 2 * disk.controller.ready_timeout_ms * 1_000_000;
        let readings = std::sync::atomic::AtomicU32::new(0);
        platform.on_clock_reading(move || {
            // At the second reading the core comes back from far past CAP.TO, and the
            // controller has cleared CSTS.RDY meanwhile.
            if readings.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 1 {
                platform.advance_clock(far_past_cap_to_ns);
                registers.write32(spec::REG_CSTS, 0);
            }
        });
        assert_eq!(disk.controller.wait_ready(false, "the disable"), Ok(()));
    }

    #[test]
    fn command_identifiers_keep_the_slot_low_and_never_reach_ffff() {
        assert_eq!((SLOT_BITS, SLOT_MASK, GENERATIONS), (6, 0x3F, 1023));
        let (mut disk, _) = disk_with_fake_controller(IO_DEPTH);
        let io = &mut disk.queues[0];
        let last = IO_DEPTH as u16 - 1;
        let ids: Vec<u16> = (0..2 * GENERATIONS)
            .map(|_| io.next_command_id(last))
            .collect();
        assert!(
            ids.iter()
                .all(|&id| id & SLOT_MASK == last && id != NO_COMMAND_ID)
        );
        // Each use of the slot differs from the one before; the cycle is 1023 long.
        assert!(ids.windows(2).all(|pair| pair[0] != pair[1]));
        assert_eq!(ids[0], ids[usize::from(GENERATIONS)]);
        assert_eq!(ids[0], (1 << SLOT_BITS) | last);
    }

    #[test]
    fn a_withdrawn_write_queues_no_command_and_frees_its_slot() {
        let (mut disk, _) = disk_with_fake_controller(1);
        let mut controller = ControllerSide::default();
        for _ in 0..2 {
            let withdrawn = disk.submit_write_checked(0, 0, 1, &mut |buffer| {
                buffer.fill(0x55);
                false
            });
            assert_eq!(withdrawn, Err(DeviceError::Withdrawn));
        }
        assert_eq!(poll_once(&mut disk), []);
        assert!(
            controller.take_command(&disk.queues[0].pair).is_none(),
            "nothing reached the controller"
        );
        disk.submit_write(0, 0, 1, &mut |buffer| buffer.fill(1))
            .unwrap();
        assert_eq!(poll_once(&mut disk), []);
        assert!(controller.take_command(&disk.queues[0].pair).is_some());
    }

    #[test]
    fn a_write_queued_but_not_rung_in_when_its_holder_goes_never_reaches_the_controller() {
        let (mut disk, _) = disk_with_fake_controller(2);
        let mut controller = ControllerSide::default();
        // One write rung in and finished by the controller, one queued behind it.
        disk.submit_write(0, 0, 1, &mut |buffer| buffer.fill(1))
            .unwrap();
        assert_eq!(poll_once(&mut disk), [], "rung in, not finished");
        let sent = controller.take_command(&disk.queues[0].pair).unwrap().id();
        controller.complete(&mut disk.queues[0].pair, sent, 0);
        disk.submit_write(0, 8, 1, &mut |buffer| buffer.fill(2))
            .unwrap();
        disk.abandon_requests();
        assert_eq!(disk.queues[0].free.len(), 2, "both slots back");
        // The next holder's poll rings the doorbell: the withdrawn write is not in it.
        assert_eq!(poll_once(&mut disk), []);
        assert!(
            controller.take_command(&disk.queues[0].pair).is_none(),
            "the unsent write never reached the controller"
        );
        let read = disk.submit_read(0, 16, 1).unwrap();
        assert_eq!(poll_once(&mut disk), []);
        let id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        controller.complete(&mut disk.queues[0].pair, id, 0);
        let finished = poll_once(&mut disk);
        assert!(
            matches!(finished[..], [(tag, Ok(_))] if tag == read),
            "{finished:?}"
        );
    }

    #[test]
    fn a_flush_queues_an_nvm_flush_of_the_namespace_and_completes() {
        let (mut disk, _) = disk_with_fake_controller(1);
        let mut controller = ControllerSide::default();
        let flush = disk.submit_flush(0).unwrap();
        assert_eq!(poll_once(&mut disk), [], "rung in, not finished");
        let command = controller
            .take_command(&disk.queues[0].pair)
            .expect("the flush reached the controller");
        let Command(dwords) = command;
        // Dword 0: opcode 00h (Flush), FUSE and PSDT 0; dword 1: the NSID.
        assert_eq!(dwords[0] & 0xFFFF, 0x00, "opcode: {dwords:08X?}");
        assert_eq!(dwords[1], NAMESPACE, "NSID: {dwords:08X?}");
        assert_eq!(dwords[2..], [0; 14], "no data, no range: {dwords:08X?}");
        controller.complete(&mut disk.queues[0].pair, command.id(), 0);
        let finished = poll_once(&mut disk);
        assert!(
            matches!(finished[..], [(tag, Ok(_))] if tag == flush),
            "{finished:?}"
        );
    }

    #[test]
    fn admin_command_identifiers_skip_ffff() {
        let (mut disk, _) = disk_with_fake_controller(1);
        let mut controller = ControllerSide::default();
        disk.next_admin_id = NO_COMMAND_ID - 1;
        // `admin_command` waits for its answer on this one thread (and would time
        // out only after millions of clock readings, at 1 us each): the completions
        // of the two commands are posted before they are rung in.
        controller.complete(&mut disk.admin, NO_COMMAND_ID - 1, 0);
        controller.complete(&mut disk.admin, 0, 0);
        for expected in [NO_COMMAND_ID - 1, 0] {
            let answer = disk.admin_command("Set Features", |cid| Command::set_queue_count(cid, 1));
            assert_eq!(answer, Ok(0), "command {expected:#06X}");
            let command = controller.take_command(&disk.admin).unwrap();
            assert_eq!(command.id(), expected);
        }
        assert_eq!(disk.next_admin_id, 1);
    }

    #[test]
    fn a_late_completion_of_a_slots_earlier_request_does_not_complete_its_new_one() {
        let (mut disk, _) = disk_with_fake_controller(1);
        let mut controller = ControllerSide::default();
        let first = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(poll_once(&mut disk), [], "rung in, not finished");
        let old = controller.take_command(&disk.queues[0].pair).unwrap().id();
        // Its holder goes once the controller has finished it: the drain takes the
        // completion in (dropped), and the slot comes back.
        controller.complete(&mut disk.queues[0].pair, old, 0);
        disk.abandon_requests();
        assert_eq!(disk.queues[0].free, [0], "drained before abandon returns");
        assert_eq!(poll_once(&mut disk), []);
        // A new read takes the slot, whose buffer still holds the old read's bytes.
        disk.queues[0].buffers.bytes_mut(0, PAGE).fill(0xAA);
        let second = disk.submit_read(0, 8, 1).unwrap();
        assert_eq!(second, first, "the same slot");
        assert_eq!(poll_once(&mut disk), []);
        let new = controller.take_command(&disk.queues[0].pair).unwrap().id();
        // The old command's completion comes again: stale, it completes nothing.
        controller.complete(&mut disk.queues[0].pair, old, 0);
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(disk.queues[0].stale_completions, 1);
        assert_eq!(disk.submit_read(0, 8, 1), Err(DeviceError::QueueFull));
        // The new read's own completion, after its data: it completes with that data.
        disk.queues[0].buffers.bytes_mut(0, SECTOR_BYTES).fill(0x55);
        controller.complete(&mut disk.queues[0].pair, new, 0);
        assert_eq!(
            poll_once(&mut disk),
            [(second, Ok(vec![0x55; SECTOR_BYTES]))]
        );
        assert_eq!(disk.queues[0].free, [0], "the slot is free again");
    }

    #[test]
    fn completions_taken_beside_a_foreign_identifier_are_counted_and_the_fault_follows() {
        for (foreign_queue, holder_goes) in [(false, false), (true, false), (false, true)] {
            let (mut disk, _) = disk_with_fake_controller(2);
            let mut controller = ControllerSide::default();
            let first = disk.submit_read(0, 0, 1).unwrap();
            let second = disk.submit_read(0, 8, 1).unwrap();
            assert_eq!(poll_once(&mut disk), [], "rung in, not finished");
            let first_id = controller.take_command(&disk.queues[0].pair).unwrap().id();
            let second_id = controller.take_command(&disk.queues[0].pair).unwrap().id();
            // A valid completion, a faulty one, and another valid one, in one batch.
            controller.complete(&mut disk.queues[0].pair, first_id, 0);
            let fault = if foreign_queue {
                controller.complete_naming(&mut disk.queues[0].pair, 7, second_id, 0);
                DeviceError::BadIndex {
                    what: "I/O completion's submission queue",
                    index: 7,
                    size: 2,
                }
            } else {
                // No request has slot 5 (there are two).
                controller.complete(&mut disk.queues[0].pair, 5, 0);
                DeviceError::BadIndex {
                    what: "I/O completion's command identifier (no such request)",
                    index: 5,
                    size: 2,
                }
            };
            controller.complete(&mut disk.queues[0].pair, second_id, 0);
            let mut seen = Vec::new();
            let count = disk.poll(0, &mut |tag, result| {
                seen.push((tag, result.map(<[u8]>::to_vec)))
            });
            let data = Ok(vec![0; SECTOR_BYTES]);
            assert_eq!(seen, [(first, data.clone()), (second, data)]);
            assert_eq!(count, Ok(2), "foreign queue: {foreign_queue}");
            if holder_goes {
                // The next holder is not told of the fault its predecessor's poll met.
                disk.abandon_requests();
            } else {
                // The fault is said at the next poll, which hands over nothing else.
                assert_eq!(disk.poll(0, &mut |_, _| panic!("nothing")), Err(fault));
            }
            assert_eq!(poll_once(&mut disk), []);
            assert_eq!(disk.queues[0].free.len(), 2, "both slots are free again");
        }
    }

    #[test]
    fn a_poll_that_says_a_held_back_fault_still_rings_in_what_was_queued_since() {
        let (mut disk, _) = disk_with_fake_controller(2);
        let mut controller = ControllerSide::default();
        let first = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(poll_once(&mut disk), [], "rung in, not finished");
        let first_id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        // The read is answered beside a completion for no request: the fault waits for
        // the next poll.
        controller.complete(&mut disk.queues[0].pair, first_id, 0);
        controller.complete(&mut disk.queues[0].pair, 5, 0);
        assert_eq!(poll_once(&mut disk), [(first, Ok(vec![0; SECTOR_BYTES]))]);
        // A read queued before that poll: the poll says the fault, and the read reaches
        // the controller all the same (the caller may sleep on it now).
        disk.submit_read(0, 8, 1).unwrap();
        let fault = DeviceError::BadIndex {
            what: "I/O completion's command identifier (no such request)",
            index: 5,
            size: 2,
        };
        assert_eq!(disk.poll(0, &mut |_, _| panic!("nothing")), Err(fault));
        assert!(
            controller.take_command(&disk.queues[0].pair).is_some(),
            "the submission queue's tail doorbell was written"
        );
    }

    /// The timeout of a read, as `poll` hands it over.
    const READ_TIMEOUT: DeviceError = DeviceError::Timeout {
        what: "NVMe read",
        ms: IO_TIMEOUT_NS / 1_000_000,
    };

    /// Sets the fake controller's CSTS to `status`.
    fn set_status(disk: &Nvme, status: u32) {
        disk.controller.registers.write32(spec::REG_CSTS, status);
    }

    /// Whether CC.EN is set.
    fn enabled(disk: &Nvme) -> bool {
        disk.controller.registers.read32(spec::REG_CC) & spec::CC_ENABLE != 0
    }

    /// `disk` with its controller enabled and ready, as `probe` leaves it.
    fn ready_disk(depth: u32) -> (Nvme, &'static HostPlatform) {
        let (disk, platform) = disk_with_fake_controller(depth);
        disk.controller.set_enable();
        set_status(&disk, spec::CSTS_READY);
        (disk, platform)
    }

    /// Sends a one-sector read of `lba` that `controller` takes and never completes,
    /// and polls past its timeout: the poll begins a controller reset (CC.EN cleared)
    /// and hands nothing over yet. Its tag and its command identifier.
    fn lose_a_read(
        disk: &mut Nvme,
        platform: &HostPlatform,
        controller: &mut ControllerSide,
        lba: u64,
    ) -> (Tag, u16) {
        let tag = disk.submit_read(0, lba, 1).unwrap();
        assert_eq!(poll_once(disk), [], "rung in, not finished");
        let id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        platform.advance_clock(IO_TIMEOUT_NS + TIMEOUT_CHECK_NS);
        assert_eq!(
            poll_once(disk),
            [],
            "not failed while the controller may run it"
        );
        assert!(matches!(disk.reset, Some(Reset::Disabling { .. })));
        assert!(!enabled(disk), "CC.EN cleared");
        (tag, id)
    }

    /// Sends one-sector reads of LBA 0 and 8 that `controller` takes and never
    /// completes, the second half an I/O timeout after the first, and moves the clock
    /// on until the first is past its timeout and the second is not: the next poll
    /// begins a reset for the first, with the second in flight. Their tags and command
    /// identifiers.
    fn lose_a_read_beside_another(
        disk: &mut Nvme,
        platform: &HostPlatform,
        controller: &mut ControllerSide,
    ) -> [(Tag, u16); 2] {
        let reads = [0, 8].map(|lba| {
            let tag = disk.submit_read(0, lba, 1).unwrap();
            assert_eq!(poll_once(disk), [], "rung in, not finished");
            let id = controller.take_command(&disk.queues[0].pair).unwrap().id();
            platform.advance_clock(IO_TIMEOUT_NS / 2);
            (tag, id)
        });
        platform.advance_clock(TIMEOUT_CHECK_NS);
        assert_eq!(disk.reset, None);
        reads
    }

    /// Lets the controller come back from a reset `poll` began: CSTS.RDY clears (if it
    /// has not yet), then (after CC.EN is set again) Set Features Number of Queues (one
    /// pair granted: completion dword 0 is 0) and the two admin commands of each I/O
    /// queue pair succeed and CSTS.RDY is set, for the next poll to see. The admin
    /// queue's controller side, holding them.
    fn bring_back(disk: &mut Nvme) -> ControllerSide {
        if matches!(disk.reset, Some(Reset::Disabling { .. })) {
            assert!(!enabled(disk), "CC.EN cleared");
            set_status(disk, 0);
            assert_eq!(poll_once(disk), []);
        }
        assert!(enabled(disk), "CC.EN set again once CSTS.RDY cleared");
        assert!(matches!(disk.reset, Some(Reset::Enabling { .. })));
        // The admin queue starts over: its answers go from its first entry on.
        let mut admin = ControllerSide::default();
        for offset in 0..1 + 2 * disk.queues.len() as u16 {
            admin.complete(&mut disk.admin, disk.next_admin_id + offset, 0);
        }
        set_status(disk, spec::CSTS_READY);
        admin
    }

    #[test]
    fn a_controller_that_drops_every_command_is_reset_and_serves_a_new_read() {
        let (mut disk, platform) = ready_disk(1);
        // One read is answered (its completion stays in the completion queue's memory),
        // and the next is lost.
        let mut controller = ControllerSide::default();
        let answered = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(poll_once(&mut disk), []);
        let id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        controller.complete(&mut disk.queues[0].pair, id, 0);
        assert_eq!(
            poll_once(&mut disk),
            [(answered, Ok(vec![0; SECTOR_BYTES]))]
        );
        // The controller is reset at the timeout (CC.EN cleared); nothing is queued
        // until the reset is over, and the poll that ends it fails the lost read.
        let (first, old) = lose_a_read(&mut disk, platform, &mut controller, 0);
        assert_eq!(disk.submit_read(0, 8, 1), Err(DeviceError::QueueFull));
        let mut admin = bring_back(&mut disk);
        assert_eq!(poll_once(&mut disk), [(first, Err(READ_TIMEOUT))]);
        assert_eq!(disk.reset, None, "the reset is over");
        // The admin queue was given again, the Number of Queues asked for again, and the
        // I/O queue pair created anew.
        let registers = &disk.controller.registers;
        assert_eq!(
            read64(registers, spec::REG_ASQ),
            disk.admin.submission_base()
        );
        assert_eq!(
            read64(registers, spec::REG_ACQ),
            disk.admin.completion_base()
        );
        let pair = &disk.queues[0].pair;
        let created: Vec<(u8, u32, u32)> = (0..3)
            .map(|_| admin.take_command(&disk.admin).unwrap().0)
            .map(|dwords| (dwords[0] as u8, dwords[6], dwords[10]))
            .collect();
        assert_eq!(
            created,
            [
                (spec::ADMIN_SET_FEATURES, 0, spec::FEATURE_QUEUE_COUNT),
                (
                    spec::ADMIN_CREATE_CQ,
                    pair.completion_base() as u32,
                    1 << 16 | 1
                ),
                (
                    spec::ADMIN_CREATE_SQ,
                    pair.submission_base() as u32,
                    1 << 16 | 1
                ),
            ]
        );
        // A new read takes the slot back, under a new command identifier, and completes
        // (the queues start over at their first entries).
        let mut controller = ControllerSide::default();
        let second = disk.submit_read(0, 8, 1).unwrap();
        assert_eq!(second, first, "the same slot");
        assert_eq!(poll_once(&mut disk), []);
        let new = controller.take_command(&disk.queues[0].pair).unwrap().id();
        assert_ne!(new, old);
        disk.queues[0].buffers.bytes_mut(0, SECTOR_BYTES).fill(0x55);
        controller.complete(&mut disk.queues[0].pair, new, 0);
        assert_eq!(
            poll_once(&mut disk),
            [(second, Ok(vec![0x55; SECTOR_BYTES]))]
        );
        assert_eq!(disk.queues[0].stale_completions, 0);
    }

    #[test]
    fn a_write_held_past_its_timeout_fails_only_once_a_reset_has_disabled_the_controller() {
        let (mut disk, platform) = ready_disk(2);
        let mut controller = ControllerSide::default();
        // A write of X to sector 8 that the controller takes and sits on.
        let stale = disk
            .submit_write(0, 8, 1, &mut |buffer| buffer.fill(b'X'))
            .unwrap();
        assert_eq!(poll_once(&mut disk), [], "rung in, not finished");
        let stale_id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        // Past the timeout the controller is reset, and the write is not failed yet:
        // the caller would write Y over sector 8, and the controller, which may still
        // carry the write out, put X back over it.
        platform.advance_clock(IO_TIMEOUT_NS + TIMEOUT_CHECK_NS);
        assert_eq!(poll_once(&mut disk), []);
        assert!(!enabled(&disk), "CC.EN cleared");
        assert!(matches!(disk.reset, Some(Reset::Disabling { .. })));
        assert_eq!(
            disk.submit_write(0, 8, 1, &mut |buffer| buffer.fill(b'Y')),
            Err(DeviceError::QueueFull),
            "nothing goes in while the controller may still run the write"
        );
        // Nor while CSTS.RDY stays set (the controller has not yet dropped it).
        platform.advance_clock(disk.controller.ready_timeout_ms * 500_000);
        assert_eq!(poll_once(&mut disk), []);
        assert!(matches!(disk.reset, Some(Reset::Disabling { .. })));
        // CSTS.RDY clears: the controller dropped every command. Once its queues are
        // made again, the write fails with its timeout, and Y goes in.
        bring_back(&mut disk);
        let timeout = DeviceError::Timeout {
            what: "NVMe write",
            ms: IO_TIMEOUT_NS / 1_000_000,
        };
        assert_eq!(poll_once(&mut disk), [(stale, Err(timeout))]);
        let mut controller = ControllerSide::default();
        let newer = disk
            .submit_write(0, 8, 1, &mut |buffer| buffer.fill(b'Y'))
            .unwrap();
        assert_eq!(poll_once(&mut disk), []);
        let newer_id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        // An answer for the old write, from a controller that posts one after all, is
        // stale: it never stands for Y's.
        controller.complete(&mut disk.queues[0].pair, stale_id, 0);
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(disk.queues[0].stale_completions, 1);
        controller.complete(&mut disk.queues[0].pair, newer_id, 0);
        assert_eq!(poll_once(&mut disk), [(newer, Ok(vec![]))]);
    }

    #[test]
    fn a_write_whose_holder_went_held_past_the_io_timeout_is_drained_by_a_reset() {
        let (mut disk, platform) = ready_disk(1);
        let mut controller = ControllerSide::default();
        disk.submit_write(0, 8, 1, &mut |buffer| buffer.fill(b'X'))
            .unwrap();
        assert_eq!(poll_once(&mut disk), [], "rung in, not finished");
        controller.take_command(&disk.queues[0].pair).unwrap();
        // The controller sits on the write; time runs at a timeout check per clock
        // reading, and CSTS.RDY follows CC.EN once it is cleared.
        let registers = disk.controller.registers.clone();
        platform.on_clock_reading(move || {
            platform.advance_clock(TIMEOUT_CHECK_NS);
            if registers.read32(spec::REG_CC) & spec::CC_ENABLE == 0 {
                registers.write32(spec::REG_CSTS, 0);
            }
        });
        // Its holder goes: the drain polls until the write is past the I/O timeout, and
        // the reset that follows frees its slot once the controller is disabled.
        let start = platform.now_ns();
        disk.abandon_requests();
        let drained_in = platform.now_ns() - start;
        assert!(
            (IO_TIMEOUT_NS..IO_TIMEOUT_NS + 5 * TIMEOUT_CHECK_NS).contains(&drained_in),
            "drained in {drained_in} ns"
        );
        assert!(matches!(disk.reset, Some(Reset::Enabling { .. })));
        assert_eq!(disk.queues[0].free, [0], "the slot is free again");
    }

    #[test]
    fn a_request_times_out_counting_from_its_doorbell_not_from_its_submission() {
        let (mut disk, platform) = ready_disk(1);
        let mut controller = ControllerSide::default();
        let tag = disk.submit_read(0, 0, 1).unwrap();
        // The caller polls only after twice the I/O timeout (a long compute step): the
        // poll that rings the read in neither fails it nor resets the controller.
        platform.advance_clock(2 * IO_TIMEOUT_NS + TIMEOUT_CHECK_NS);
        assert_eq!(poll_once(&mut disk), [], "rung in, not timed out");
        assert_eq!(disk.reset, None);
        // The controller carries it out, and the read completes with its data.
        let id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        disk.queues[0].buffers.bytes_mut(0, SECTOR_BYTES).fill(0x55);
        controller.complete(&mut disk.queues[0].pair, id, 0);
        assert_eq!(poll_once(&mut disk), [(tag, Ok(vec![0x55; SECTOR_BYTES]))]);
        // A read rung in and then not answered still times out.
        let (late, _) = lose_a_read(&mut disk, platform, &mut controller, 8);
        assert_eq!(late, tag, "the same slot");
    }

    #[test]
    fn a_request_rung_in_on_a_core_whose_clock_runs_ahead_is_not_timed_out_at_once() {
        let (mut disk, platform) = ready_disk(1);
        let mut controller = ControllerSide::default();
        let tag = disk.submit_read(0, 0, 1).unwrap();
        assert_eq!(poll_once(&mut disk), [], "rung in");
        // The doorbell was written on a core whose clock is a millisecond ahead of the
        // one that polls next (clocks of different cores are not kept in step).
        let Slot::Busy { rung_at, .. } = &mut disk.queues[0].slots[tag as usize].state else {
            panic!("the read is in flight");
        };
        platform.advance_clock(TIMEOUT_CHECK_NS);
        *rung_at = Some(platform.now_ns() + 1_000_000);
        // The poll's clock reading is behind the doorbell's: no time has passed, so the
        // read is neither timed out nor the controller reset.
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(disk.reset, None);
        let id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        controller.complete(&mut disk.queues[0].pair, id, 0);
        assert_eq!(poll_once(&mut disk), [(tag, Ok(vec![0; SECTOR_BYTES]))]);
    }

    #[test]
    fn reads_late_when_the_controller_is_gone_fail_with_the_disk_in_the_poll_that_finds_it() {
        let (mut disk, platform) = ready_disk(2);
        let mut controller = ControllerSide::default();
        let [(late, _), (cut, _)] =
            lose_a_read_beside_another(&mut disk, platform, &mut controller);
        // The controller is gone (its registers read all ones): the reset the late read
        // needs cannot begin, and both reads end with the disk in the poll that finds it.
        set_status(&disk, u32::MAX);
        let gone = DeviceError::Failed("the controller no longer answers");
        assert_eq!(poll_once(&mut disk), [(late, Err(gone)), (cut, Err(gone))]);
        assert_eq!(disk.poll(0, &mut |_, _| panic!("nothing")), Err(gone));
    }

    #[test]
    fn a_controller_that_does_not_come_back_from_a_reset_fails_the_disk_for_good() {
        // Where the controller stops: CSTS.RDY never clears, never comes back, or the
        // controller is ready but never answers Set Features Number of Queues, or
        // answers it and never answers Create I/O Completion Queue.
        for stage in 0..4 {
            let (mut disk, platform) = ready_disk(1);
            let (lost, _) = lose_a_read(&mut disk, platform, &mut ControllerSide::default(), 0);
            if stage > 0 {
                set_status(&disk, 0);
                assert_eq!(poll_once(&mut disk), []);
            }
            if stage > 1 {
                set_status(&disk, spec::CSTS_READY);
                assert_eq!(poll_once(&mut disk), []);
                assert!(matches!(disk.reset, Some(Reset::Creating { step: 0, .. })));
            }
            if stage > 2 {
                let mut admin = ControllerSide::default();
                admin.complete(&mut disk.admin, disk.next_admin_id - 1, 0);
                assert_eq!(poll_once(&mut disk), []);
                assert!(matches!(disk.reset, Some(Reset::Creating { step: 1, .. })));
            }
            // Polls within the bound wait on (each returns at once); the first past it
            // fails the disk.
            assert_eq!(poll_once(&mut disk), []);
            let (why, wait_ms) = match stage {
                0 => (
                    "the controller did not reset (CSTS.RDY stayed set)",
                    disk.controller.ready_timeout_ms,
                ),
                1 => (
                    "the controller did not become ready after a reset",
                    disk.controller.ready_timeout_ms,
                ),
                2 => (
                    "the number of I/O queues was not set after a reset",
                    ADMIN_TIMEOUT_MS,
                ),
                _ => (
                    "an I/O queue was not created after a reset",
                    ADMIN_TIMEOUT_MS,
                ),
            };
            platform.advance_clock(wait_ms * 1_000_000);
            // The lost read ends with the disk, not with a timeout: the controller did
            // not come back to say it dropped it.
            let failed = DeviceError::Failed(why);
            assert_eq!(poll_once(&mut disk), [(lost, Err(failed))]);
            assert_failed_for_good(&mut disk, why);
        }
    }

    #[test]
    fn an_admin_answer_that_came_while_the_core_was_away_past_the_deadline_is_taken() {
        let (mut disk, platform) = ready_disk(1);
        let completions = platform.device_view(disk.admin.memory_mut()[1]);
        let id = disk.next_admin_id;
        let readings = std::sync::atomic::AtomicU32::new(0);
        platform.on_clock_reading(move || {
            // At the second reading in the wait (the first after a look) the core comes
            // back from far away, and the controller answered meanwhile (the first
            // entry, phase 1).
            if readings.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 1 {
                platform.advance_clock(ADMIN_TIMEOUT_MS * 2_000_000);
                completions.write32(12, u32::from(id) | spec::CQ_PHASE);
            }
        });
        let answer = disk.admin_command("Identify Controller", |id| {
            Command::identify(id, spec::CNS_CONTROLLER, 0, 0)
        });
        assert_eq!(answer, Ok(0));
    }

    #[test]
    fn a_reset_step_the_controller_finished_while_the_core_was_away_is_taken() {
        let (mut disk, platform) = ready_disk(1);
        lose_a_read(&mut disk, platform, &mut ControllerSide::default(), 0);
        // At the next clock reading the core has been away past CAP.TO, and the
        // controller cleared CSTS.RDY meanwhile.
        let registers = disk.controller.registers.clone();
        let away_ns = disk.controller.ready_timeout_ms * 2_000_000;
        let once = std::sync::atomic::AtomicBool::new(true);
        platform.on_clock_reading(move || {
            if once.swap(false, std::sync::atomic::Ordering::Relaxed) {
                platform.advance_clock(away_ns);
                registers.write32(spec::REG_CSTS, 0);
            }
        });
        assert_eq!(poll_once(&mut disk), []);
        assert!(
            matches!(disk.reset, Some(Reset::Enabling { .. })),
            "the disabled controller is enabled again, not failed"
        );
    }

    #[test]
    fn a_request_in_flight_at_a_reset_that_fails_for_good_ends_with_it() {
        let (mut disk, platform) = ready_disk(2);
        let mut controller = ControllerSide::default();
        let [(lost, _), (cut, _)] =
            lose_a_read_beside_another(&mut disk, platform, &mut controller);
        assert_eq!(poll_once(&mut disk), [], "the reset begins");
        assert!(matches!(disk.reset, Some(Reset::Disabling { .. })));
        // CSTS.RDY never clears: the first poll past CAP.TO fails the disk, and hands
        // the reads it interrupted its reason.
        platform.advance_clock(disk.controller.ready_timeout_ms * 1_000_000);
        let failed = DeviceError::Failed("the controller did not reset (CSTS.RDY stayed set)");
        assert_eq!(
            poll_once(&mut disk),
            [(lost, Err(failed)), (cut, Err(failed))]
        );
        assert_failed_for_good(
            &mut disk,
            "the controller did not reset (CSTS.RDY stayed set)",
        );
    }

    /// Checks that `disk` failed for `why` with its controller left disabled, and that
    /// every call says so at once.
    fn assert_failed_for_good(disk: &mut Nvme, why: &'static str) {
        let failed = DeviceError::Failed(why);
        assert_eq!(disk.poll(0, &mut |_, _| panic!("nothing")), Err(failed));
        assert!(!enabled(disk), "the controller is left disabled");
        assert_eq!(disk.poll(0, &mut |_, _| panic!("nothing")), Err(failed));
        assert_eq!(disk.submit_read(0, 0, 1), Err(failed));
        assert_eq!(disk.submit_write(0, 0, 1, &mut |_| {}), Err(failed));
        assert_eq!(disk.submit_flush(0), Err(failed));
        disk.abandon_requests();
        assert_eq!(disk.poll(0, &mut |_, _| panic!("nothing")), Err(failed));
    }

    #[test]
    fn a_controller_that_refuses_an_io_queue_after_a_reset_fails_the_disk_for_good() {
        let (mut disk, platform) = ready_disk(1);
        let (lost, _) = lose_a_read(&mut disk, platform, &mut ControllerSide::default(), 0);
        set_status(&disk, 0);
        assert_eq!(poll_once(&mut disk), []);
        // Set Features Number of Queues succeeds, and Create I/O Completion Queue fails:
        // Invalid Queue Identifier (SCT 1, SC 1).
        let mut admin = ControllerSide::default();
        admin.complete(&mut disk.admin, disk.next_admin_id, 0);
        admin.complete(&mut disk.admin, disk.next_admin_id + 1, 0x101);
        set_status(&disk, spec::CSTS_READY);
        let why = "an I/O queue was refused after a reset";
        assert_eq!(
            poll_once(&mut disk),
            [(lost, Err(DeviceError::Failed(why)))]
        );
        assert_failed_for_good(&mut disk, why);
    }

    /// Times a read out on `disk` and lets its controller reset until it is ready
    /// again, with no admin command answered: the lost read's tag, and the admin queue's
    /// controller side.
    /// Asserts that the next poll fails `lost` and the disk for good with `why`, the reset
    /// having sent the Number of Queues' Set Features and no queue creation after it.
    fn assert_set_features_alone_then_failed(
        disk: &mut Nvme,
        admin: &mut ControllerSide,
        lost: Tag,
        why: &'static str,
    ) {
        assert_eq!(poll_once(disk), [(lost, Err(DeviceError::Failed(why)))]);
        assert_eq!(
            admin.take_command(&disk.admin).map(|c| c.0[0] as u8),
            Some(spec::ADMIN_SET_FEATURES)
        );
        assert_eq!(admin.take_command(&disk.admin), None, "no queue created");
        assert_failed_for_good(disk, why);
    }

    fn reset_to_ready(disk: &mut Nvme, platform: &HostPlatform) -> (Tag, ControllerSide) {
        let (lost, _) = lose_a_read(disk, platform, &mut ControllerSide::default(), 0);
        set_status(disk, 0);
        assert_eq!(poll_once(disk), []);
        set_status(disk, spec::CSTS_READY);
        assert_eq!(poll_once(disk), []);
        (lost, ControllerSide::default())
    }

    #[test]
    fn a_reset_asks_for_the_number_of_queues_again_before_creating_them() {
        let (mut disk, platform) = ready_disk(1);
        let (lost, mut admin) = reset_to_ready(&mut disk, platform);
        // The first admin command once the controller is ready: Set Features (09h),
        // Number of Queues (07h), as many pairs as the probe asked for (0-based).
        let asked = u32::from(IO_QUEUES_WANTED - 1);
        let first = admin.take_command(&disk.admin).unwrap();
        assert_eq!(
            (first.0[0] as u8, first.0[10], first.0[11]),
            (
                spec::ADMIN_SET_FEATURES,
                spec::FEATURE_QUEUE_COUNT,
                asked << 16 | asked
            )
        );
        assert_eq!(admin.take_command(&disk.admin), None, "one at a time");
        // One pair granted (dword 0 is 0): enough for the one queue; the queue is
        // created and the reset ends.
        admin.complete(&mut disk.admin, first.id(), 0);
        assert_eq!(poll_once(&mut disk), []);
        let create = admin.take_command(&disk.admin).unwrap();
        assert_eq!(create.0[0] as u8, spec::ADMIN_CREATE_CQ);
        admin.complete(&mut disk.admin, create.id(), 0);
        assert_eq!(poll_once(&mut disk), []);
        let create = admin.take_command(&disk.admin).unwrap();
        assert_eq!(create.0[0] as u8, spec::ADMIN_CREATE_SQ);
        admin.complete(&mut disk.admin, create.id(), 0);
        assert_eq!(poll_once(&mut disk), [(lost, Err(READ_TIMEOUT))]);
        assert_eq!(disk.reset, None);
    }

    #[test]
    fn a_reset_granted_fewer_queues_than_the_disk_runs_fails_the_disk_for_good() {
        let (mut disk, platform) = disk_of_pairs(2, 1);
        disk.controller.set_enable();
        set_status(&disk, spec::CSTS_READY);
        let (lost, mut admin) = reset_to_ready(&mut disk, platform);
        // One pair granted (dword 0 is 0) where the disk runs two: the second queue
        // would be refused, so the disk stops now, saying why.
        admin.complete(&mut disk.admin, disk.next_admin_id - 1, 0);
        let why = "fewer I/O queues were granted after a reset";
        assert_set_features_alone_then_failed(&mut disk, &mut admin, lost, why);
    }

    #[test]
    fn a_reset_whose_number_of_queues_is_refused_creates_the_queues_on_the_old_count() {
        let (mut disk, platform) = ready_disk(1);
        let (lost, mut admin) = reset_to_ready(&mut disk, platform);
        // Command Sequence Error (SCT 0, SC 0Ch) from a controller that kept the
        // allocation: the queue is created on it, and the reset ends.
        admin.complete(&mut disk.admin, disk.next_admin_id - 1, 0x0C);
        assert_eq!(poll_once(&mut disk), []);
        admin.complete(&mut disk.admin, disk.next_admin_id - 1, 0);
        assert_eq!(poll_once(&mut disk), []);
        admin.complete(&mut disk.admin, disk.next_admin_id - 1, 0);
        assert_eq!(poll_once(&mut disk), [(lost, Err(READ_TIMEOUT))]);
        let opcodes: Vec<u8> = (0..3)
            .map(|_| admin.take_command(&disk.admin).unwrap().0[0] as u8)
            .collect();
        assert_eq!(
            opcodes,
            [
                spec::ADMIN_SET_FEATURES,
                spec::ADMIN_CREATE_CQ,
                spec::ADMIN_CREATE_SQ
            ]
        );
        assert_eq!(disk.reset, None, "the reset is over");
    }

    #[test]
    fn a_reset_whose_number_of_queues_is_answered_under_another_identifier_fails_the_disk() {
        let (mut disk, platform) = ready_disk(1);
        let (lost, mut admin) = reset_to_ready(&mut disk, platform);
        // The answer names a command that is not in flight: the controller's fault, not
        // a refusal to set the count again, so no queue is created.
        admin.complete(&mut disk.admin, disk.next_admin_id + 5, 0);
        let why = "the number of I/O queues was not set after a reset";
        assert_set_features_alone_then_failed(&mut disk, &mut admin, lost, why);
    }

    #[test]
    fn requests_in_flight_at_a_reset_fail_and_late_completions_from_before_it_are_dropped() {
        let (mut disk, platform) = ready_disk(2);
        let mut controller = ControllerSide::default();
        let [(lost, lost_id), (cut, cut_id)] =
            lose_a_read_beside_another(&mut disk, platform, &mut controller);
        // The first is past its timeout: the reset begins with the second in flight.
        assert_eq!(poll_once(&mut disk), []);
        assert!(matches!(disk.reset, Some(Reset::Disabling { .. })));
        // Both fail once the reset is over (not before: until then nothing may be
        // submitted again), the late one with its timeout, and their slots are free
        // again.
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(disk.submit_read(0, 16, 1), Err(DeviceError::QueueFull));
        set_status(&disk, 0);
        assert_eq!(poll_once(&mut disk), [], "disabled, still resetting");
        bring_back(&mut disk);
        assert_eq!(
            poll_once(&mut disk),
            [(lost, Err(READ_TIMEOUT)), (cut, Err(DeviceError::Reset))]
        );
        assert_eq!(disk.reset, None, "the reset is over");
        assert_eq!(disk.queues[0].free.len(), 2, "both slots are free again");
        let new = disk.submit_read(0, 16, 1);
        assert!(
            new.is_ok(),
            "a request goes in right after a Reset: {new:?}"
        );
        let new = new.unwrap();
        // A controller that answers commands from before the reset after all: the
        // answers are stale, whether the slot is free or holds a new request.
        let mut controller = ControllerSide::default();
        assert_eq!(poll_once(&mut disk), []);
        let new_id = controller.take_command(&disk.queues[0].pair).unwrap().id();
        let other = if new == lost { cut_id } else { lost_id };
        let same = if new == lost { lost_id } else { cut_id };
        controller.complete(&mut disk.queues[0].pair, other, 0);
        controller.complete(&mut disk.queues[0].pair, same, 0);
        assert_eq!(poll_once(&mut disk), []);
        assert_eq!(disk.queues[0].stale_completions, 2);
        controller.complete(&mut disk.queues[0].pair, new_id, 0);
        assert_eq!(poll_once(&mut disk), [(new, Ok(vec![0; SECTOR_BYTES]))]);
    }

    #[test]
    fn cores_armed_for_completions_are_woken_by_a_reset_and_while_it_lasts() {
        let (mut disk, platform) = ready_disk(2);
        let (table, _) = platform.msix_table(2);
        disk.wakes = QueueWakes::new(Some(table), vec![Some(1)]);
        let mut controller = ControllerSide::default();
        // Reads in flight when the reset begins, their core armed and asleep: the
        // controller will never send a message for them.
        let [(lost, _), (cut, _)] =
            lose_a_read_beside_another(&mut disk, platform, &mut controller);
        disk.wake_on_completion(0, Some(1)).unwrap();
        assert_eq!(platform.take_woken(), [], "armed, nothing to say yet");
        assert_eq!(poll_once(&mut disk), []);
        assert!(matches!(disk.reset, Some(Reset::Disabling { .. })));
        assert_eq!(platform.take_woken(), [1], "the reset wakes the armed core");
        // Armed again during the reset: woken at once, to poll it on.
        disk.wake_on_completion(0, Some(1)).unwrap();
        assert_eq!(platform.take_woken(), [1]);
        set_status(&disk, 0);
        assert_eq!(poll_once(&mut disk), []);
        bring_back(&mut disk);
        // The reset is over in another queue's poll, say: the interrupted reads are
        // still to be reported here, so arming wakes at once.
        disk.continue_reset().unwrap();
        assert_eq!(disk.reset, None);
        disk.wake_on_completion(0, Some(1)).unwrap();
        assert_eq!(platform.take_woken(), [1]);
        assert_eq!(
            poll_once(&mut disk),
            [(lost, Err(READ_TIMEOUT)), (cut, Err(DeviceError::Reset))]
        );
        // Nothing more to say: an arm waits for the controller's message.
        disk.wake_on_completion(0, Some(1)).unwrap();
        assert_eq!(platform.take_woken(), []);
    }

    /// Has the fake controller finish a normal shutdown as soon as CC.SHN asks for one
    /// (CSTS.SHST complete), looking at each clock reading.
    fn finish_shutdowns(disk: &Nvme, platform: &HostPlatform) {
        let registers = disk.controller.registers.clone();
        platform.on_clock_reading(move || {
            let asked = registers.read32(spec::REG_CC) & spec::CC_SHUTDOWN_MASK;
            if asked == spec::CC_SHUTDOWN_NORMAL {
                let status = registers.read32(spec::REG_CSTS) & !spec::CSTS_SHUTDOWN_MASK;
                registers.write32(spec::REG_CSTS, status | spec::CSTS_SHUTDOWN_COMPLETE);
            }
        });
    }

    /// Posts the answers to the next `count` admin commands (successes), as the
    /// controller will give them, before the driver sends them: its side of the admin
    /// queue, holding them.
    fn answer_admin_commands(disk: &mut Nvme, count: u16) -> ControllerSide {
        let mut admin = ControllerSide::default();
        for offset in 0..count {
            admin.complete(&mut disk.admin, disk.next_admin_id + offset, 0);
        }
        admin
    }

    #[test]
    fn a_shutdown_sends_what_was_queued_deletes_the_queues_and_waits_for_shst_complete() {
        let (mut disk, platform) = ready_disk(2);
        let mut controller = ControllerSide::default();
        // A write queued but not rung in: its holder never polled again.
        let tag = disk
            .submit_write(0, 8, 1, &mut |buffer| buffer.fill(b'S'))
            .unwrap();
        let slot = usize::from(tag as u16);
        let id = (disk.queues[0].slots[slot].generation << SLOT_BITS) | slot as u16;
        // The controller will carry it out, and answer the two deletions.
        controller.complete(&mut disk.queues[0].pair, id, 0);
        let mut admin = answer_admin_commands(&mut disk, 2);
        finish_shutdowns(&disk, platform);
        assert_eq!(disk.shut_down(Leaving::PowerOff), Ok(()));
        let write = controller.take_command(&disk.queues[0].pair);
        assert_eq!(
            write.map(|command| (command.0[0] as u8, command.id(), command.0[10])),
            Some((spec::IO_WRITE, id, 8)),
            "the queued write was rung in before the shutdown"
        );
        let deleted: Vec<(u8, u32)> = (0..2)
            .map(|_| admin.take_command(&disk.admin).unwrap().0)
            .map(|dwords| (dwords[0] as u8, dwords[10]))
            .collect();
        assert_eq!(
            deleted,
            [(spec::ADMIN_DELETE_SQ, 1), (spec::ADMIN_DELETE_CQ, 1)]
        );
        assert_eq!(admin.take_command(&disk.admin), None);
        let configuration = disk.controller.registers.read32(spec::REG_CC);
        assert_eq!(
            configuration & spec::CC_SHUTDOWN_MASK,
            spec::CC_SHUTDOWN_NORMAL
        );
        assert!(enabled(&disk), "CC.EN kept");
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }

    #[test]
    fn a_controller_that_never_completes_its_shutdown_times_out_and_is_not_used_again() {
        let (mut disk, platform) = ready_disk(1);
        answer_admin_commands(&mut disk, 2);
        // CSTS.SHST never says complete; 100 ms go by at each look.
        platform.on_clock_reading(move || platform.advance_clock(100_000_000));
        assert_eq!(
            disk.shut_down(Leaving::PowerOff),
            Err(DeviceError::Timeout {
                what: "the controller's shutdown (CSTS.SHST complete)",
                ms: spec::SHUTDOWN_TIMEOUT_MIN_MS
            })
        );
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }

    #[test]
    fn a_controller_failed_for_good_is_not_told_and_is_not_used_again() {
        let (mut disk, _) = ready_disk(1);
        disk.failed = Some("the controller no longer answers");
        assert_eq!(
            disk.shut_down(Leaving::PowerOff),
            Err(DeviceError::Failed("the controller no longer answers"))
        );
        let configuration = disk.controller.registers.read32(spec::REG_CC);
        assert_eq!(configuration & spec::CC_SHUTDOWN_MASK, 0, "no notification");
        rexo_api::testing::assert_refuses_everything(&mut disk);
    }
}
