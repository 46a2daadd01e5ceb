//! The host tests' kernel: DMA pages from the host heap (counted; a free of pages not
//! handed out, or freed twice, panics), no devices, a clock
//! the test moves, and a machine of [`HostPlatform::CORES`] cores whose wake messages
//! are the kernel's form, and the device's view of a DMA block
//! ([`HostPlatform::device_view`]); [`registers`], plain memory standing for a device's
//! registers when a test plays the device, whose accesses a test may have recorded with
//! their time ([`record_accesses`]); [`FakePorts`], I/O ports of plain memory
//! when a test plays a device behind ports; and [`completions`], one poll of a disk.
#![allow(unsafe_code)] // a `Platform` promises what its memory is; register windows are raw allocations

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rexo_api::{BlockDevice, DeviceError, Tag};

use crate::{Dma, Mmio, Platform, PortWindow};

/// Zeroed host memory of `len` bytes as a device's register window (a test plays the
/// device), 4 KiB-aligned as a BAR is, so that a register aligned in the window is
/// aligned in memory; it lives for the rest of the test run.
pub fn registers(len: usize) -> Mmio {
    let base = zeroed_pages(len).expect("a register window's size fits a layout");
    // SAFETY: `base` is a fresh zeroed allocation of at least `len` bytes, never freed,
    // and this slice is the only reference made to it.
    Mmio::new(unsafe { core::slice::from_raw_parts_mut(base, len) })
}

/// One access to a register window whose accesses are recorded ([`record_accesses`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// The register's offset in the window recorded.
    pub offset: usize,
    /// The value written, `None` for a read.
    pub written: Option<u64>,
    /// The recording platform's clock at the access ([`HostPlatform::clock`]).
    pub at_ns: u64,
}

/// The accesses to one register window, as [`record_accesses`] asked.
struct Recording {
    /// The window's addresses.
    window: core::ops::Range<u64>,
    /// The clock the accesses are stamped with.
    clock: &'static HostPlatform,
    /// The accesses not yet taken, oldest first.
    accesses: Vec<MmioAccess>,
}

/// The register windows whose accesses are recorded, in the whole test run (windows are
/// fresh allocations, so tests running side by side never share one).
static RECORDINGS: Mutex<Vec<Recording>> = Mutex::new(Vec::new());

std::thread_local! {
    /// This thread is running a test's clock hook: the device's own accesses, not the
    /// driver's, and not recorded.
    static IN_CLOCK_HOOK: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Records every access the driver makes to `window` from now on, each stamped with
/// `clock`'s time, for [`take_accesses`]: when a register was read or written, and what
/// was written (a test checking that a driver leaves a device alone for a while).
/// Accesses from a clock hook, the test playing the device, are not recorded.
pub fn record_accesses(window: &Mmio, clock: &'static HostPlatform) {
    let start = window.phys();
    RECORDINGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Recording {
            window: start..start + window.len() as u64,
            clock,
            accesses: Vec::new(),
        });
}

/// The accesses to `window` (recorded by [`record_accesses`]) since the last call,
/// oldest first.
pub fn take_accesses(window: &Mmio) -> Vec<MmioAccess> {
    let mut recordings = RECORDINGS.lock().unwrap_or_else(PoisonError::into_inner);
    recordings
        .iter_mut()
        .find(|recording| recording.window.start == window.phys())
        .map(|recording| core::mem::take(&mut recording.accesses))
        .unwrap_or_default()
}

/// Notes an access to the register at `address` (`written`: a write's value) for the
/// window recording it, if any ([`record_accesses`]).
pub(crate) fn note_access(address: u64, written: Option<u64>) {
    if IN_CLOCK_HOOK.with(core::cell::Cell::get) {
        return;
    }
    let mut recordings = RECORDINGS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(recording) = recordings
        .iter_mut()
        .find(|recording| recording.window.contains(&address))
    {
        let access = MmioAccess {
            offset: (address - recording.window.start) as usize,
            written,
            at_ns: recording.clock.clock(),
        };
        recording.accesses.push(access);
    }
}

/// A fresh zeroed allocation from the host heap of `len` bytes (at least one),
/// 4096-aligned, or `None` when no layout is that large; running out of memory ends
/// the test run as any allocation's failure does.
fn zeroed_pages(len: usize) -> Option<*mut u8> {
    let layout = std::alloc::Layout::from_size_align(len.max(1), 4096).ok()?;
    // SAFETY: the layout has a non-zero size.
    let base = unsafe { std::alloc::alloc_zeroed(layout) };
    if base.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    Some(base)
}

/// The host's I/O port space, where every port access of a host build goes (`in` and
/// `out` fault outside the kernel): what reads of each port give, and the writes made.
struct PortSpace {
    /// What a read of each port gives, as a device's test sets it ([`FakePorts::answer8`]).
    answers: [u8; 1 << 16],
    /// Ports whose next reads give values in turn ([`FakePorts::answer8_in_turn`]), the
    /// values not yet read; the last one read becomes the port's answer.
    in_turn: Vec<(u16, VecDeque<u8>)>,
    /// The writes not yet taken, as (port, write), oldest first.
    writes: Vec<(u16, PortWrite)>,
    /// The port ranges whose reads are recorded ([`FakePorts::record_reads`]).
    recorded: Vec<core::ops::Range<u32>>,
    /// The recorded reads not yet taken, as (port, read), oldest first.
    reads: Vec<(u16, PortRead)>,
    /// The first port no [`FakePorts`] has been given (ranges are never reused, so tests
    /// running side by side never share a port).
    next_free: u32,
}

impl PortSpace {
    /// What a read of `port` gives: the next of its values in turn, else its answer.
    fn read(&mut self, port: u16) -> u8 {
        let Some(at) = self.in_turn.iter().position(|(turn, _)| *turn == port) else {
            return self.answers[usize::from(port)];
        };
        let values = &mut self.in_turn[at].1;
        let value = values
            .pop_front()
            .unwrap_or(self.answers[usize::from(port)]);
        if values.is_empty() {
            self.answers[usize::from(port)] = value;
            self.in_turn.swap_remove(at);
        }
        value
    }
}

/// The port space of the whole test run.
static PORT_SPACE: Mutex<PortSpace> = Mutex::new(PortSpace {
    answers: [0; 1 << 16],
    in_turn: Vec::new(),
    writes: Vec::new(),
    recorded: Vec::new(),
    reads: Vec::new(),
    next_free: 0,
});

/// The port space, locked; a test that panicked while holding it (a [`FakePorts::new`]
/// past the 64 Ki ports, say) left it whole, so it serves the tests after it.
fn port_space() -> MutexGuard<'static, PortSpace> {
    PORT_SPACE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One write to a port, as [`FakePorts::take_writes`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortWrite {
    /// The port's offset in its window.
    pub offset: u16,
    /// The access's width in bytes: 1, 2 or 4.
    pub bytes: u8,
    /// The value written.
    pub value: u32,
}

/// One read of a port, as [`FakePorts::take_reads`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRead {
    /// The port's offset in its window.
    pub offset: u16,
    /// The access's width in bytes: 1, 2 or 4.
    pub bytes: u8,
}

/// A fresh range of the host's port space for a test playing a device behind ports:
/// reads give what the test [answered](Self::answer8) (0 until then; an access of N
/// bytes covers N consecutive ports, little-endian), writes are recorded for
/// [`take_writes`](Self::take_writes) and never read back (a port's read and write
/// sides are often different registers, as ATA's status and command); reads are
/// recorded too once the test asks ([`record_reads`](Self::record_reads)).
///
/// Ranges are given out from port 0 up, so once 0x170 ports are given out they may cover
/// ports of this crate's fixed windows (the legacy IDE channels' at 0x170, 0x1F0, 0x376
/// and 0x3F6, configuration's at 0xCF8), which a host test reaching those also uses.
/// Writes are kept until a window covering their port takes them: those to ports of no
/// window, or of one whose test never takes them, stay for the rest of the run.
#[derive(Clone, Copy, Debug)]
pub struct FakePorts {
    /// The window the driver gets.
    window: PortWindow,
}

impl FakePorts {
    /// `len` ports no other window of the test run has; panics when the 64 Ki ports
    /// are used up.
    pub fn new(len: u16) -> Self {
        let mut space = port_space();
        // SAFETY: on the host every port access goes to `PORT_SPACE` (the `in` and
        // `out` instructions are never built), and this range is no other window's.
        let window = u16::try_from(space.next_free)
            .ok()
            .and_then(|base| unsafe { PortWindow::new(base, len) })
            .expect("the host's 64 Ki ports are used up");
        space.next_free += u32::from(len);
        Self { window }
    }

    /// The window to hand the driver.
    pub fn window(&self) -> PortWindow {
        self.window
    }

    /// Reads of the port at `offset` give `value` from now on.
    pub fn answer8(&self, offset: u16, value: u8) {
        let port = self.window.port(offset, 1);
        let mut space = port_space();
        space.in_turn.retain(|(turn, _)| *turn != port);
        space.answers[usize::from(port)] = value;
    }

    /// The next reads of the port at `offset` give `values` in turn, one a read, and
    /// the last one from then on (a register that changes as the driver reads it: a
    /// drive's status between two sectors, say).
    pub fn answer8_in_turn(&self, offset: u16, values: &[u8]) {
        let port = self.window.port(offset, 1);
        let mut space = port_space();
        space.in_turn.retain(|(turn, _)| *turn != port);
        space.in_turn.push((port, values.iter().copied().collect()));
    }

    /// The writes to this window since the last call, oldest first.
    pub fn take_writes(&self) -> Vec<PortWrite> {
        Self::take_writes_of(&[self])
            .into_iter()
            .map(|(_, write)| write)
            .collect()
    }

    /// Records every read of this window from now on, for
    /// [`take_reads`](Self::take_reads) (off until asked: a bounded wait reads a status
    /// port thousands of times, kept for the rest of the run if nobody took them).
    pub fn record_reads(&self) {
        port_space().recorded.push(self.window.ports());
    }

    /// The reads of this window recorded since the last call, oldest first.
    pub fn take_reads(&self) -> Vec<PortRead> {
        let ports = self.window.ports();
        let mut space = port_space();
        let (mine, others) = core::mem::take(&mut space.reads)
            .into_iter()
            .partition(|(port, _)| ports.contains(&u32::from(*port)));
        space.reads = others;
        mine.into_iter()
            .map(|(port, read)| PortRead {
                // Inside the window, so the offset is below its length, a `u16`.
                offset: (u32::from(port) - ports.start) as u16,
                ..read
            })
            .collect()
    }

    /// The writes to any of `windows` since the last call, oldest first, each with the
    /// index in `windows` of the window it went to (its offset is in that window): the
    /// order between writes to different windows, which [`take_writes`](Self::take_writes)
    /// on each loses (a device's command and control blocks, say). Takes them as
    /// `take_writes` on each window would.
    pub fn take_writes_of(windows: &[&Self]) -> Vec<(usize, PortWrite)> {
        let ranges: Vec<_> = windows.iter().map(|ports| ports.window.ports()).collect();
        let window_of = |port: u16| {
            let port = u32::from(port);
            ranges.iter().position(|ports| ports.contains(&port))
        };
        let mut space = port_space();
        let (mine, others) = core::mem::take(&mut space.writes)
            .into_iter()
            .partition(|(port, _)| window_of(*port).is_some());
        space.writes = others;
        mine.into_iter()
            .filter_map(|(port, write)| {
                let window = window_of(port)?;
                // Inside the window, so the offset is below its length, a `u16`.
                let offset = (u32::from(port) - ranges[window].start) as u16;
                Some((window, PortWrite { offset, ..write }))
            })
            .collect()
    }
}

/// The host's stand-ins for the `in` and `out` instructions, over [`PORT_SPACE`]; unsafe
/// only to match the instructions they stand for.
pub(crate) mod instructions {
    use super::{PortRead, PortWrite, port_space};

    /// The `bytes` ports from `port`, little-endian; the read recorded when its window
    /// asked for it.
    fn read(port: u16, bytes: u8) -> u32 {
        let mut space = port_space();
        if space
            .recorded
            .iter()
            .any(|ports| ports.contains(&u32::from(port)))
        {
            space.reads.push((port, PortRead { offset: 0, bytes }));
        }
        (0..bytes).rev().fold(0, |value, byte| {
            value << 8 | u32::from(space.read(port + u16::from(byte)))
        })
    }

    /// Records a write of `value`, `bytes` wide, to `port`.
    fn write(port: u16, bytes: u8, value: u32) {
        let write = PortWrite {
            offset: 0,
            bytes,
            value,
        };
        port_space().writes.push((port, write));
    }

    /// `in al, dx` on the host.
    ///
    /// # Safety
    ///
    /// None: every port is plain memory here.
    pub unsafe fn in8(port: u16) -> u8 {
        read(port, 1) as u8
    }

    /// `in ax, dx` on the host.
    ///
    /// # Safety
    ///
    /// None, as for [`in8`].
    pub unsafe fn in16(port: u16) -> u16 {
        read(port, 2) as u16
    }

    /// `in eax, dx` on the host.
    ///
    /// # Safety
    ///
    /// None, as for [`in8`].
    pub unsafe fn in32(port: u16) -> u32 {
        read(port, 4)
    }

    /// `out dx, al` on the host.
    ///
    /// # Safety
    ///
    /// None, as for [`in8`].
    pub unsafe fn out8(port: u16, value: u8) {
        write(port, 1, value.into());
    }

    /// `out dx, ax` on the host.
    ///
    /// # Safety
    ///
    /// None, as for [`in8`].
    pub unsafe fn out16(port: u16, value: u16) {
        write(port, 2, value.into());
    }

    /// `out dx, eax` on the host.
    ///
    /// # Safety
    ///
    /// None, as for [`in8`].
    pub unsafe fn out32(port: u16, value: u32) {
        write(port, 4, value);
    }
}

/// Polls queue `queue` of `disk` once: the requests it finished, as (tag, data or
/// error), checked to be as many as the poll says it handed out.
pub fn completions(
    disk: &mut dyn BlockDevice,
    queue: usize,
) -> Vec<(Tag, Result<Vec<u8>, DeviceError>)> {
    let mut seen = Vec::new();
    let count = disk
        .poll(queue, &mut |tag, result| {
            seen.push((tag, result.map(<[u8]>::to_vec)))
        })
        .expect("the poll succeeds");
    assert_eq!(count, seen.len(), "a poll returns how many it handed out");
    seen
}

/// What a test's device does at each clock reading ([`HostPlatform::on_clock_reading`]).
type ClockHook = Box<dyn Fn() + Send + Sync>;

/// Pages from the host heap, counted, and a clock that moves
/// [`CLOCK_TICK_NS`](Self::CLOCK_TICK_NS) on at each reading and as far as
/// [`advance_clock`](Self::advance_clock) says.
pub struct HostPlatform {
    /// DMA allocations not given back, as (address, bytes).
    live: Mutex<Vec<(u64, usize)>>,
    /// The lines armed, as (IRQ, core).
    armed: Mutex<alloc::vec::Vec<(u8, usize)>>,
    /// The cores woken by [`Platform::wake_core`], in order.
    woken: Mutex<alloc::vec::Vec<usize>>,
    /// The cores whose wake message was asked for ([`Platform::wake_message`]), in
    /// order.
    messages_asked: Mutex<alloc::vec::Vec<usize>>,
    /// The clock's next reading, in nanoseconds.
    clock_ns: AtomicU64,
    /// Run at each clock reading, when a test set it.
    clock_hook: Mutex<Option<ClockHook>>,
    /// The DMA allocations a test holds a device's view of ([`Self::device_view`]):
    /// never given back to the heap, so that no view outlives its memory.
    viewed: Mutex<alloc::vec::Vec<u64>>,
}

impl HostPlatform {
    /// Cores the host machine pretends to have.
    pub const CORES: usize = 2;
    /// The wake vector in its messages.
    pub const WAKE_VECTOR: u32 = 0x41;
    /// How far the clock moves at each reading: a bounded wait or a settling pause ends
    /// after a bounded number of readings, as on a machine whose time passes.
    pub const CLOCK_TICK_NS: u64 = 1_000;

    /// A platform for one test, living as long as the test's `Dma` and tables.
    pub fn leaked() -> &'static Self {
        Box::leak(Box::new(Self {
            live: Mutex::new(Vec::new()),
            armed: Mutex::new(alloc::vec::Vec::new()),
            woken: Mutex::new(alloc::vec::Vec::new()),
            messages_asked: Mutex::new(alloc::vec::Vec::new()),
            clock_ns: AtomicU64::new(0),
            clock_hook: Mutex::new(None),
            viewed: Mutex::new(alloc::vec::Vec::new()),
        }))
    }

    /// Runs `hook` at each clock reading from now on, in place of an earlier one: a
    /// test playing a device that acts while the driver waits on the clock (a reset
    /// bit the device clears by itself, in a register window of plain memory). The
    /// hook must not read this clock nor call `on_clock_reading`: it runs under the lock
    /// that holds the hook, and either would deadlock on it ([`Self::advance_clock`] is
    /// fine).
    pub fn on_clock_reading(&self, hook: impl Fn() + Send + Sync + 'static) {
        *self.clock_hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// Moves the clock `ns` nanoseconds on (a test's way to let a deadline pass).
    pub fn advance_clock(&self, ns: u64) {
        self.clock_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The clock's next reading, without moving it or running the hook (a clock hook's
    /// way to know the time).
    pub fn clock(&self) -> u64 {
        self.clock_ns.load(Ordering::Relaxed)
    }

    /// The device's view of `dma`, memory from this platform: a window a test playing
    /// the device writes while the driver holds `dma` (a ring entry written from a
    /// clock hook, as a device writes while the driver waits). The memory is still
    /// counted as given back when the driver frees it, but stays allocated for the
    /// rest of the test run, so the view never outlives it.
    pub fn device_view(&self, dma: &Dma) -> Mmio {
        assert!(dma.lent_by(self), "a view of another platform's memory");
        self.viewed.lock().unwrap().push(dma.phys());
        // SAFETY: `dma` is a live allocation of `dma.len()` bytes, from this platform,
        // never deallocated from here on (`dma_free` skips viewed memory). Its other
        // user, the driver's `Dma`, reaches it through volatile accesses and slices of
        // buffers lent while the device is not writing them, as with a real device.
        Mmio::new(unsafe { core::slice::from_raw_parts_mut(dma.phys() as *mut u8, dma.len()) })
    }

    /// The device's view of the `len` bytes at `phys`, inside DMA memory from this
    /// platform that the driver holds: what a device reads and writes at an address the
    /// driver gave it (a command list leads to its command tables and buffers), found
    /// from inside a clock hook. The memory stays allocated for the rest of the test run,
    /// as [`device_view`](Self::device_view)'s. Panics when the bytes are not inside one
    /// live allocation.
    pub fn device_view_at(&self, phys: u64, len: usize) -> Mmio {
        let end = phys
            .checked_add(len as u64)
            .expect("a range inside the address space");
        let holding = self
            .live
            .lock()
            .unwrap()
            .iter()
            .find(|&&(base, bytes)| base <= phys && end <= base + bytes as u64)
            .copied();
        let (base, _) =
            holding.expect("the device was given an address inside memory the driver holds");
        self.viewed.lock().unwrap().push(base);
        // SAFETY: `[phys, end)` lies inside a live allocation from this platform, never
        // deallocated from here on (`dma_free` skips viewed memory); the driver's `Dma`
        // reaches it as with a device's view (see `device_view`).
        Mmio::new(unsafe { core::slice::from_raw_parts_mut(phys as *mut u8, len) })
    }

    /// DMA allocations not given back.
    pub fn live(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// The lines armed so far, as (IRQ, core).
    pub fn armed(&self) -> alloc::vec::Vec<(u8, usize)> {
        self.armed.lock().unwrap().clone()
    }

    /// The cores woken so far by [`Platform::wake_core`], in order, taken.
    pub fn take_woken(&self) -> alloc::vec::Vec<usize> {
        core::mem::take(&mut *self.woken.lock().unwrap())
    }

    /// The cores whose wake message a driver asked for so far
    /// ([`Platform::wake_message`]: how the kernel learns which vector an arm routes),
    /// in order, taken.
    pub fn take_messages_asked(&self) -> alloc::vec::Vec<usize> {
        core::mem::take(&mut *self.messages_asked.lock().unwrap())
    }

    /// ISA IRQ `irq` as the wake-up of a test's device driving it level-triggered
    /// (`level`) or edge-triggered, as [`DeviceFunction`](crate::DeviceFunction) makes it
    /// for a bound function's own line.
    pub fn line_wake(&'static self, irq: u8, level: bool) -> Result<crate::LineWake, DeviceError> {
        crate::LineWake::new(irq, level, self)
    }

    /// An MSI-X table of `entries` entries over host memory, every entry masked, whose
    /// messages name this platform's cores; and the memory, to read it back.
    pub fn msix_table(&'static self, entries: u16) -> (crate::MsixTable, Mmio) {
        let memory = registers(usize::from(entries) * crate::msix::ENTRY);
        (crate::MsixTable::new(memory.clone(), entries, self), memory)
    }
}

// SAFETY: on the host the "physical" address is the heap address; each allocation is
// fresh, zeroed and page-aligned, used by the `Dma` that owns it and, once a test asks
// for it, by the device's view of it (`device_view`), which plays the device as DMA
// does; `dma_free` keeps viewed allocations, so a view never outlives its memory.
unsafe impl Platform for HostPlatform {
    unsafe fn dma_allocate(&self, bytes: usize) -> Option<u64> {
        let base = zeroed_pages(bytes)?;
        self.live.lock().unwrap().push((base as u64, bytes));
        Some(base as u64)
    }
    /// Panics, before anything reaches the host heap, on memory this platform did not
    /// hand out (or not at that size: the free's layout would be wrong) or that was freed
    /// already.
    unsafe fn dma_free(&self, phys: u64, bytes: usize) {
        let removed = {
            let mut live = self.live.lock().unwrap();
            let found = live.iter().position(|&block| block == (phys, bytes));
            found.map(|index| live.swap_remove(index))
        };
        assert!(
            removed.is_some(),
            "DMA memory not allocated here, or freed twice"
        );
        if self.viewed.lock().unwrap().contains(&phys) {
            return;
        }
        let layout = std::alloc::Layout::from_size_align(bytes, 4096).unwrap();
        // SAFETY: allocated by `zeroed_pages` with the same layout (`bytes` is whole
        // pages, never 0).
        unsafe { std::alloc::dealloc(phys as *mut u8, layout) };
    }
    unsafe fn claim_mmio(&self, _: u64, _: u64) -> Result<&'static mut [u8], String> {
        Err(String::from("no devices on the host"))
    }
    /// Starts at 0 and moves [`Self::CLOCK_TICK_NS`] on at each reading, and as far as
    /// [`Self::advance_clock`] says; runs the test's hook
    /// ([`Self::on_clock_reading`]) first.
    fn now_ns(&self) -> u64 {
        if let Some(hook) = &*self.clock_hook.lock().unwrap() {
            IN_CLOCK_HOOK.with(|in_hook| in_hook.set(true));
            hook();
            IN_CLOCK_HOOK.with(|in_hook| in_hook.set(false));
        }
        self.clock_ns
            .fetch_add(Self::CLOCK_TICK_NS, Ordering::Relaxed)
    }
    /// Core `core`'s local APIC is `core`, as the kernel names it in a message.
    /// Recorded, for [`Self::take_messages_asked`].
    fn wake_message(&self, core: usize) -> Option<(u64, u32)> {
        self.messages_asked.lock().unwrap().push(core);
        (core < Self::CORES).then_some((0xFEE0_0000 | (core as u64) << 12, Self::WAKE_VECTOR))
    }
    /// QEMU's MADT: IRQs 5, 9, 10 and 11 level-triggered, the others edge.
    fn line_level(&self, irq: u8) -> Result<bool, &'static str> {
        (irq < 16)
            .then_some(matches!(irq, 5 | 9 | 10 | 11))
            .ok_or("an IO-APIC serving the line")
    }
    /// Recorded, for [`Self::take_woken`].
    fn wake_core(&self, core: usize) {
        if core < Self::CORES {
            self.woken.lock().unwrap().push(core);
        }
    }
    unsafe fn wake_on_line(&self, irq: u8, core: usize) -> Result<(), &'static str> {
        if core >= Self::CORES {
            return Err("a route to that core");
        }
        self.armed.lock().unwrap().push((irq, core));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_view_writes_the_dma_block_and_outlives_it() {
        let platform = HostPlatform::leaked();
        let dma = Dma::new(platform, 64).unwrap();
        let view = platform.device_view(&dma);
        view.write32(8, 0x1234_5678);
        assert_eq!(dma.read32(8), 0x1234_5678);
        drop(dma);
        assert_eq!(platform.live(), 0, "counted as given back");
        view.write32(8, 1);
        assert_eq!(view.read32(8), 1, "the memory is still there");
        let dma = Dma::new(platform, 4096).unwrap();
        let inside = platform.device_view_at(dma.phys() + 0x100, 8);
        inside.write32(4, 0xABCD);
        assert_eq!(dma.read32(0x104), 0xABCD);
        let past_the_end = dma.phys() + 4092;
        let outside = std::panic::catch_unwind(|| platform.device_view_at(past_the_end, 8));
        assert!(outside.is_err(), "past the allocation's end");
    }

    #[test]
    fn a_free_of_memory_not_allocated_here_or_freed_twice_panics() {
        let platform = HostPlatform::leaked();
        let refused = "DMA memory not allocated here, or freed twice";
        let message = |outcome: std::thread::Result<()>| {
            let payload = outcome.expect_err("the free refused");
            payload
                .downcast_ref::<&str>()
                .map(|message| message.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
        };
        // A viewed block stays allocated once freed, so a second free reaches no heap.
        let dma = Dma::new(platform, 4096).unwrap();
        let _view = platform.device_view(&dma);
        let phys = dma.phys();
        drop(dma);
        let twice = std::panic::catch_unwind(|| {
            // SAFETY: the block is kept for its view, and the free is refused before the
            // heap.
            unsafe { platform.dma_free(phys, 4096) }
        });
        assert_eq!(message(twice).as_deref(), Some(refused), "freed twice");
        // Another platform's block, never handed out by this one.
        let elsewhere = Dma::new(HostPlatform::leaked(), 4096).unwrap();
        let stranger_phys = elsewhere.phys();
        let stranger = std::panic::catch_unwind(|| {
            // SAFETY: the free is refused before the heap; `elsewhere` keeps its block.
            unsafe { platform.dma_free(stranger_phys, 4096) }
        });
        assert_eq!(message(stranger).as_deref(), Some(refused), "not from here");
        assert_eq!(platform.live(), 0);
        drop(elsewhere);
    }

    #[test]
    fn a_port_answered_in_turn_gives_each_value_once_then_keeps_the_last() {
        let ports = FakePorts::new(2);
        let window = ports.window();
        ports.answer8_in_turn(1, &[0x58, 0x50]);
        assert_eq!(window.read8(1), 0x58);
        assert_eq!([window.read8(1), window.read8(1)], [0x50, 0x50]);
        ports.answer8_in_turn(1, &[7, 8]);
        ports.answer8(1, 9);
        assert_eq!(window.read8(1), 9, "an answer replaces the values in turn");
    }

    #[test]
    fn fake_ports_serve_answers_and_record_writes_per_window() {
        let (first, second) = (FakePorts::new(8), FakePorts::new(4));
        first.answer8(2, 0x34);
        first.answer8(3, 0x12);
        let window = first.window();
        assert_eq!((window.read8(2), window.read16(2)), (0x34, 0x1234));
        assert_eq!(window.read32(4), 0, "unanswered ports read 0");
        window.write8(7, 0x20);
        second.window().write32(0, 0xDEAD_BEEF);
        window.write16(0, 0xABCD);
        assert_eq!(window.read8(7), 0, "a write is not read back");
        let write = |offset, bytes, value| PortWrite {
            offset,
            bytes,
            value,
        };
        assert_eq!(
            first.take_writes(),
            [write(7, 1, 0x20), write(0, 2, 0xABCD)]
        );
        assert_eq!(first.take_writes(), [], "taken");
        assert_eq!(second.take_writes(), [write(0, 4, 0xDEAD_BEEF)]);
    }

    #[test]
    fn fake_ports_record_reads_once_asked_per_window() {
        let (first, second) = (FakePorts::new(8), FakePorts::new(4));
        let window = first.window();
        window.read8(7);
        first.record_reads();
        window.read8(7);
        second.window().read8(0);
        window.read16(0);
        window.write8(1, 0);
        let read = |offset, bytes| PortRead { offset, bytes };
        assert_eq!(
            first.take_reads(),
            [read(7, 1), read(0, 2)],
            "reads from the asking on, writes not among them"
        );
        assert_eq!(first.take_reads(), [], "taken");
        assert_eq!(second.take_reads(), [], "never asked");
        first.take_writes();
    }

    #[test]
    fn a_fake_ports_past_the_port_space_leaves_it_usable() {
        let first = FakePorts::new(2);
        // Past the end from any base but 0 and 1 (a window may end at the last port),
        // which `first` took or passed.
        let past_the_end = std::panic::catch_unwind(|| FakePorts::new(u16::MAX));
        assert!(past_the_end.is_err());
        let after = FakePorts::new(1);
        after.answer8(0, 0x5A);
        assert_eq!(after.window().read8(0), 0x5A);
        first.window().write8(0, 1);
        assert_eq!(first.take_writes().len(), 1);
    }

    #[test]
    fn a_clock_hook_runs_at_each_reading_and_can_play_a_register() {
        let platform = HostPlatform::leaked();
        let window = registers(4);
        window.write32(0, 1);
        let device = window.clone();
        platform.on_clock_reading(move || device.write32(0, device.read32(0) << 1));
        assert_eq!((platform.now_ns(), window.read32(0)), (0, 2));
        assert_eq!((platform.now_ns(), window.read32(0)), (1_000, 4));
    }

    #[test]
    fn a_recorded_window_gives_the_drivers_accesses_with_their_time_and_not_the_hooks() {
        let platform = HostPlatform::leaked();
        let window = registers(16);
        let device = window.clone();
        platform.on_clock_reading(move || device.write32(8, 1));
        record_accesses(&window, platform);
        window.write32(4, 7);
        platform.advance_clock(5_000);
        assert_eq!(window.read16(8), 0);
        platform.now_ns();
        assert_eq!(window.read32(8), 1, "the hook wrote it");
        let access = |offset, written, at_ns| MmioAccess {
            offset,
            written,
            at_ns,
        };
        assert_eq!(
            take_accesses(&window),
            [
                access(4, Some(7), 0),
                access(8, None, 5_000),
                access(8, None, 6_000)
            ]
        );
        assert_eq!(take_accesses(&window), [], "taken");
        assert_eq!(take_accesses(&registers(4)), [], "never recorded");
    }

    #[test]
    fn register_windows_start_on_a_page() {
        for len in [0, 1, 4, 0x80, 0x2000] {
            let window = registers(len);
            assert_eq!((window.phys() % 4096, window.len()), (0, len));
        }
    }
}
