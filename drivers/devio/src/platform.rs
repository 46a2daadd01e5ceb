//! What the kernel lends drivers, and one PCI function as its driver sees it.
#![allow(unsafe_code)] // a memory BAR is claimed from the kernel

use alloc::boxed::Box;
use alloc::string::String;

use rexo_api::{BlockDevice, DeviceError, KeyboardDevice, NetDevice};
use rexo_pci::{Address, BarKind, BarSlot, Function};

use crate::{Dma, LineWake, Mmio, MsiVector, MsixTable, PortWindow, Vectors, config::PciBus};

/// The kernel's services to drivers.
///
/// Drivers get the kernel's `Platform` ([`DeviceFunction::platform`]) for the clock,
/// the wake messages and [`Dma`] memory; what hands out memory or reaches beyond the
/// driver's own device (giving DMA memory back, claiming device memory, arming an ISA
/// line) is `unsafe`, called only from inside this crate ([`Dma`], [`DeviceFunction`],
/// [`LineWake`]), so a driver, `#![deny(unsafe_code)]`, cannot free a live [`Dma`] or
/// map the local APIC:
///
/// ```compile_fail,E0133
/// fn free_it(platform: &dyn rexo_devio::Platform, dma: &rexo_devio::Dma) {
///     platform.dma_free(dma.phys(), dma.len());
/// }
/// ```
///
/// # Safety
///
/// Implementations promise: [`dma_allocate`](Platform::dma_allocate) returns zeroed,
/// 4 KiB-aligned, identity-mapped RAM (its address is its physical address) that nothing
/// else uses until it is given back; [`claim_mmio`](Platform::claim_mmio) returns device
/// memory, mapped uncached, handed out once.
pub unsafe trait Platform: Sync {
    /// `bytes` (a multiple of 4096) of zeroed DMA memory; its physical address, or `None`
    /// when memory is short.
    ///
    /// # Safety
    ///
    /// The caller gives the memory back once, through [`dma_free`](Platform::dma_free)
    /// with the same size, or never ([`Dma`] does both).
    unsafe fn dma_allocate(&self, bytes: usize) -> Option<u64>;
    /// Gives back memory from [`dma_allocate`](Platform::dma_allocate).
    ///
    /// # Safety
    ///
    /// `[phys, phys + bytes)` is one allocation of this platform's `dma_allocate`, not
    /// given back yet, that nothing (no Rust reference, no device) uses any more.
    unsafe fn dma_free(&self, phys: u64, bytes: usize);
    /// Claims the device memory `[phys, phys + len)` for one driver.
    ///
    /// # Safety
    ///
    /// The window is one the caller may hand out: a memory BAR of the function its
    /// [`DeviceFunction`] was made for, or the MCFG table's configuration windows
    /// (device memory elsewhere, the local APIC's say, would break the kernel).
    unsafe fn claim_mmio(&self, phys: u64, len: u64) -> Result<&'static mut [u8], String>;
    /// Nanoseconds since boot (monotonic), for timeouts.
    fn now_ns(&self) -> u64;
    /// The MSI/MSI-X message (address, data) that wakes core `core` (the machine's index)
    /// from a halt: the kernel's wake vector on that core's local APIC; `None` when there
    /// is no such core or its APIC cannot be named in a message.
    fn wake_message(&self, core: usize) -> Option<(u64, u32)>;
    /// Wakes core `core` from a halt at once, as its wake message would (the kernel's
    /// wake IPI): for news a device will send no message about. Nothing for a core the
    /// machine lacks.
    fn wake_core(&self, core: usize);
    /// Whether ISA IRQ `irq` is level-triggered at its IO-APIC (the MADT's interrupt
    /// source overrides; else edge), or why it cannot wake a core (no ACPI tables, no
    /// IO-APIC serving it).
    fn line_level(&self, irq: u8) -> Result<bool, &'static str>;
    /// Records core `core` as waiting on ISA IRQ `irq` and unmasks the line, routed to
    /// the kernel's vector for it: its next interrupt masks it again and wakes every
    /// core waiting on it ([`LineWaiters`](crate::LineWaiters)).
    ///
    /// # Safety
    ///
    /// `irq` is the line of a device bound to the caller's driver (its function's INTx
    /// route, or its IDE channel's IRQ 14 or 15), not a line the kernel drives.
    unsafe fn wake_on_line(&self, irq: u8, core: usize) -> Result<(), &'static str>;
}

/// [`Platform::wake_message`] for `core`, or the error both MSI and MSI-X give when
/// there is none.
pub(crate) fn wake_message_for(
    platform: &dyn Platform,
    core: usize,
) -> Result<(u64, u32), DeviceError> {
    platform.wake_message(core).ok_or(DeviceError::Unsupported(
        "an interrupt message for that core",
    ))
}

/// A device a driver found on a function.
pub enum Found {
    /// A network interface.
    Net(Box<dyn NetDevice>),
    /// A disk.
    Block(Box<dyn BlockDevice>),
    /// A keyboard.
    Keyboard(Box<dyn KeyboardDevice>),
}

/// The command register's bus-master bit: the device may start DMA.
const COMMAND_BUS_MASTER: u32 = 1 << 2;
/// The command register's interrupt-disable bit (legacy INTx off: drivers poll or use
/// MSI-X or MSI, or turn it back on through [`DeviceFunction::intx`]).
const COMMAND_INTX_DISABLE: u32 = 1 << 10;

/// One PCI function handed to its driver: its own configuration space, its BARs as
/// windows, DMA memory and the clock. A driver holds nothing else of the machine.
pub struct DeviceFunction {
    /// The function as the bus walk described it.
    function: Function,
    /// The kernel.
    platform: &'static dyn Platform,
    /// Configuration space.
    bus: &'static PciBus,
    /// Memory BARs claimed so far (each once; later asks get a copy).
    claimed: [Option<Mmio>; 6],
}

impl DeviceFunction {
    /// The function `function` for its driver: made by [`PciBus::bind`] only, for a
    /// function its walk found (one `DeviceFunction` per function, so port windows go to
    /// one driver).
    pub(crate) fn new(
        function: Function,
        platform: &'static dyn Platform,
        bus: &'static PciBus,
    ) -> Self {
        Self {
            function,
            platform,
            bus,
            claimed: Default::default(),
        }
    }

    /// The function as the bus walk described it.
    pub fn function(&self) -> &Function {
        &self.function
    }

    /// The kernel's services.
    pub fn platform(&self) -> &'static dyn Platform {
        self.platform
    }

    /// Nanoseconds since boot.
    pub fn now_ns(&self) -> u64 {
        self.platform.now_ns()
    }

    /// `bytes` of zeroed DMA memory.
    pub fn dma(&self, bytes: usize) -> Result<Dma, DeviceError> {
        Dma::new(self.platform, bytes)
    }

    /// Reads configuration register `offset` (a multiple of 4) of this function.
    pub fn config_read(&self, offset: u16) -> Result<u32, DeviceError> {
        self.bus
            .read(self.address(), offset)
            .map_err(DeviceError::Config)
    }

    /// Writes configuration register `offset` (a multiple of 4) of this function.
    pub fn config_write(&self, offset: u16, value: u32) -> Result<(), DeviceError> {
        self.bus
            .write(self.address(), offset, value)
            .map_err(DeviceError::Config)
    }

    /// Turns on memory and I/O decoding and bus mastering (DMA), and legacy INTx off.
    pub fn enable(&self) -> Result<(), DeviceError> {
        let command = self.config_read(0x04)?;
        let on = u32::from(rexo_pci::COMMAND_IO | rexo_pci::COMMAND_MEMORY)
            | COMMAND_BUS_MASTER
            | COMMAND_INTX_DISABLE;
        // Keep the command half, write zeros to the status half (its bits are write-one-to-clear).
        self.config_write(0x04, (command & 0xFFFF) | on)
    }

    /// The BAR `index`, checked: implemented, assigned and of a plausible size.
    fn bar(&self, index: usize) -> Result<rexo_pci::Bar, DeviceError> {
        let bad = |why| DeviceError::BadBar {
            index: index as u8,
            why,
        };
        match self.function.bars.get(index) {
            Some(BarSlot::Bar(bar)) if bar.address == 0 => Err(bad("not assigned (address 0)")),
            Some(BarSlot::Bar(bar)) if bar.size == 0 || !bar.size.is_power_of_two() => {
                Err(bad("impossible size"))
            }
            Some(BarSlot::Bar(bar)) => Ok(*bar),
            Some(BarSlot::Invalid(_)) => Err(bad("invalid")),
            Some(BarSlot::Upper) => Err(bad("the upper half of a 64-bit BAR")),
            Some(BarSlot::Unused) => Err(bad("not implemented")),
            None => Err(bad("no such BAR")),
        }
    }

    /// Memory BAR `index` as a register window (claimed from the kernel on first use).
    pub fn mmio(&mut self, index: usize) -> Result<Mmio, DeviceError> {
        let bar = self.bar(index)?;
        if bar.kind == BarKind::Io {
            return Err(DeviceError::BadBar {
                index: index as u8,
                why: "an I/O BAR, not memory",
            });
        }
        if let Some(window) = &self.claimed[index] {
            return Ok(window.clone());
        }
        // SAFETY: the window is this function's own memory BAR.
        let window = unsafe { self.platform.claim_mmio(bar.address, bar.size) }.map_err(|_| {
            DeviceError::BadBar {
                index: index as u8,
                why: "its memory cannot be claimed",
            }
        })?;
        let window = Mmio::new(window);
        self.claimed[index] = Some(window.clone());
        Ok(window)
    }

    /// I/O BAR `index` as a port window; [`DeviceError::BadBar`] when its ports run past
    /// 0xFFFF, cover a port the kernel drives (the PICs, the PIT, the keyboard
    /// controller, COM1, the configuration ports, ..., and ACPI's fixed hardware where it
    /// holds it: [`crate::port::hold_for_kernel`]) or another function's window.
    pub fn ports(&self, index: usize) -> Result<PortWindow, DeviceError> {
        let bar = self.bar(index)?;
        let bad = |why| DeviceError::BadBar {
            index: index as u8,
            why,
        };
        if bar.kind != BarKind::Io {
            return Err(bad("a memory BAR, not I/O"));
        }
        let base = u16::try_from(bar.address).map_err(|_| bad("I/O address above 0xFFFF"))?;
        let len = u16::try_from(bar.size).map_err(|_| bad("impossible size"))?;
        // The ports are this function's own I/O BAR, and a `DeviceFunction` is made once
        // per function, for its one driver.
        crate::port::claim(self.address(), [(base, len)])
            .map(|[window]| window)
            .map_err(bad)
    }

    /// The function's MSI-X table, with MSI-X turned on and every entry masked (legacy
    /// INTx stays off); [`DeviceError::Unsupported`] without the capability.
    pub fn msix(&mut self) -> Result<MsixTable, DeviceError> {
        let msix = self
            .function
            .capabilities
            .msix
            .ok_or(DeviceError::Unsupported("MSI-X"))?;
        let index = msix.table_bar;
        let bar = self.mmio(usize::from(index))?;
        let bytes = usize::from(msix.table_size) * 16;
        let table = bar
            .window(msix.table_offset as usize, bytes)
            .ok_or(DeviceError::BadBar {
                index,
                why: "the MSI-X table lies outside it",
            })?;
        let table = MsixTable::new(table, msix.table_size, self.platform);
        // Message control (the upper half of the capability's first word): enable on
        // (bit 15), function mask off (bit 14).
        let word = self.config_read(msix.offset)?;
        self.config_write(msix.offset, (word | 1 << 31) & !(1 << 30))?;
        Ok(table)
    }

    /// The function's MSI capability, off until pointed at a core (one message, masked
    /// where the function can mask); [`DeviceError::Unsupported`] without it.
    pub fn msi(&self) -> Result<MsiVector, DeviceError> {
        let msi = self
            .function
            .capabilities
            .msi
            .ok_or(DeviceError::Unsupported("MSI"))?;
        MsiVector::new(msi, self.address(), self.bus, self.platform)
    }

    /// The function's interrupt messages: MSI-X when it has it, else MSI;
    /// [`DeviceError::Unsupported`] (`MSI or MSI-X`) when it has neither, and a failed
    /// MSI-X or MSI setup as its error.
    pub fn vectors(&mut self) -> Result<Vectors, DeviceError> {
        let capabilities = self.function.capabilities;
        if capabilities.msix.is_some() {
            self.msix().map(Vectors::MsiX)
        } else if capabilities.msi.is_some() {
            self.msi().map(Vectors::Msi)
        } else {
            Err(DeviceError::Unsupported("MSI or MSI-X"))
        }
    }

    /// The function's INTx line as a wake-up ([`LineWake`], level-triggered), with INTx
    /// turned on (the driver keeps its device's interrupt causes masked until armed);
    /// [`DeviceError::Unsupported`] without an interrupt pin, a line the firmware routed,
    /// or a level-triggered route for it in the kernel, and INTx left off then. The pin and
    /// line are the walk's, as it read register 0x3C before any driver ran: a driver that
    /// rewrites the register gets no other line.
    pub fn intx(&self) -> Result<LineWake, DeviceError> {
        let pins = self.function.header.raw[15];
        let irq = crate::line::intx_irq((pins >> 8) as u8, pins as u8)?;
        let wake = LineWake::new(irq, true, self.platform)?;
        let command = self.config_read(0x04)?;
        self.config_write(0x04, command & 0xFFFF & !COMMAND_INTX_DISABLE)?;
        Ok(wake)
    }

    /// The ISA IRQ of IDE channel `channel` in compatibility mode (14 primary, 15
    /// secondary: edge-triggered) as a wake-up; [`DeviceError::Unsupported`] when the
    /// function is not an IDE controller with the channel in compatibility mode, or when
    /// the kernel cannot route it edge-triggered. It claims no ports.
    pub fn legacy_ide_line(&self, channel: u8) -> Result<LineWake, DeviceError> {
        self.compatibility_channel(channel)?;
        LineWake::new(14 + channel, false, self.platform)
    }

    /// The ports of IDE channel `channel` (0 primary, 1 secondary) of a PCI IDE
    /// controller in compatibility mode: the command block (8 ports at 0x1F0 / 0x170)
    /// and the control block (the port at 0x3F6 / 0x376), claimed together or neither.
    pub fn legacy_ide_ports(&self, channel: u8) -> Result<(PortWindow, PortWindow), DeviceError> {
        let blocks = self.compatibility_channel(channel)?;
        // An IDE controller in compatibility mode decodes exactly these ports for this
        // channel (PCI IDE Controller Specification 1.0, section 2), and the controller's
        // one `DeviceFunction` goes to its one driver.
        match crate::port::claim(self.address(), blocks) {
            Ok([command, control]) => Ok((command, control)),
            Err(_) => Err(DeviceError::Unsupported(
                "the channel's ports (another function holds them)",
            )),
        }
    }

    /// The (first port, count) of IDE channel `channel`'s command and control blocks, if
    /// the function is an IDE controller with that channel in compatibility mode.
    fn compatibility_channel(&self, channel: u8) -> Result<[(u16, u16); 2], DeviceError> {
        let (class, subclass, prog_if) = self.function.header.class();
        if (class, subclass) != (0x01, 0x01) {
            return Err(DeviceError::Unsupported("an IDE controller class (01.01)"));
        }
        // Bit 0 (primary) and bit 2 (secondary) of the programming interface: native mode.
        if channel > 1 || prog_if & (1 << (2 * channel)) != 0 {
            return Err(DeviceError::Unsupported(
                "the channel in compatibility mode",
            ));
        }
        Ok(if channel == 0 {
            [(0x1F0, 8), (0x3F6, 1)]
        } else {
            [(0x170, 8), (0x376, 1)]
        })
    }

    /// The address of the function (for messages).
    pub fn address(&self) -> Address {
        self.function.header.address
    }
}
