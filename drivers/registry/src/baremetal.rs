//! BareMetal's storage and network calls (`b_nvs_read`, `b_nvs_write`, `b_net_tx`,
//! `b_net_rx`, and `b_system` 0x30 for the MAC address) on the registry's devices: the
//! kernel's BareMetal call table forwards here with the app's buffers (`b_net_rx` leaves
//! its frame in a buffer of the calling core's, [`ReceiveBuffers`], as BareMetal leaves it
//! in its driver's). Each call holds its device only for its own duration (as the holder
//! `baremetal`), so a device an app holds is refused to BareMetal code. Calls on one
//! device from several cores take turns (`Turn`: a call waits up to 1 s for the others
//! before it, as BareMetal's own wait for the interface's lock), rather than refusing
//! each other as two holders would. BareMetal counts storage in 4096-byte sectors. And the bookkeeping of the jobs `smp_set` gives cores
//! ([`Jobs`]), which a load of a new binary must not run under.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use spin::{Mutex, Once};

use rexo_api::{
    ApiError, BinaryError, BlockDevice, DeviceError, DeviceKind, NetDevice, OpenDevice,
    device::wait_for,
};

use crate::exact::{submit_write_exact, wait_for_read_exact};
use crate::{Binder, Registry};

/// BareMetal's sector.
pub const SECTOR: u64 = 4096;
/// The most bytes of an app's buffer one piece of a storage call uses (256 sectors): the
/// kernel hands on no larger buffer at once.
pub const PIECE_BYTES: u64 = 256 * SECTOR;
/// The holder BareMetal calls act as (owner 0: the kernel).
const HOLDER: crate::Holder = (0, "baremetal");
/// How long `b_net_tx` waits for a free transmit buffer, in nanoseconds.
const TX_WAIT_NS: u64 = 10_000_000;
/// How long a BareMetal call waits for its turn on a device another core's BareMetal
/// calls use, in nanoseconds (a storage call of many pieces may hold a disk that long).
const TURN_WAIT_NS: u64 = 1_000_000_000;
/// [`Turn`]'s value for no core.
const NO_CORE: usize = usize::MAX;

/// Which core's BareMetal call uses a device (each slot has one), and which core waits to
/// be next: BareMetal calls on one device take turns. The core that waited longest goes
/// next, so that a core calling in a tight loop (`b_net_rx`) does not keep the device
/// from another core's call by taking it again at once.
pub(crate) struct Turn {
    /// The core whose call uses the device ([`NO_CORE`]: none).
    core: AtomicUsize,
    /// The core waiting to go next ([`NO_CORE`]: none); others wait until it went.
    next: AtomicUsize,
}

impl Turn {
    /// No call uses the device.
    pub(crate) const fn new() -> Self {
        Self {
            core: AtomicUsize::new(NO_CORE),
            next: AtomicUsize::new(NO_CORE),
        }
    }

    /// Waits for a turn of core `core`, at most [`TURN_WAIT_NS`] on `binder`'s clock;
    /// whether it came (the caller then gives it up with [`Turn::give_up`]).
    fn take(&self, core: usize, binder: &dyn Binder) -> bool {
        // The clock is read only once the turn is found taken: an untaken one (the
        // usual case, a program polling b_net_rx) costs no clock read.
        let mut start = None;
        loop {
            let next = self.next.load(Ordering::Acquire);
            if (next == NO_CORE || next == core)
                && (self.core)
                    .compare_exchange(NO_CORE, core, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                self.leave_line(core);
                return true;
            }
            let now = binder.now_ns();
            if now.saturating_sub(*start.get_or_insert(now)) > TURN_WAIT_NS {
                self.leave_line(core);
                return false;
            }
            let _ =
                (self.next).compare_exchange(NO_CORE, core, Ordering::AcqRel, Ordering::Relaxed);
            core::hint::spin_loop();
        }
    }

    /// Core `core` no longer waits to go next.
    fn leave_line(&self, core: usize) {
        let _ = (self.next).compare_exchange(core, NO_CORE, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Ends core `core`'s turn.
    fn give_up(&self, core: usize) {
        let _ = (self.core).compare_exchange(core, NO_CORE, Ordering::Release, Ordering::Relaxed);
    }
}

/// A device a BareMetal call holds for its duration ([`Registry::open_for_call`]): the
/// lease, then the call's turn, ended in that order as it is dropped.
struct Held<D> {
    /// The lease, of its kind (dropped first: fields drop in order).
    device: D,
    /// The call's turn on the device.
    _turn: TurnHeld,
}

/// A core's turn on a device, given up when dropped.
struct TurnHeld {
    /// The device's turns.
    turn: &'static Turn,
    /// The core whose turn it is.
    core: usize,
}

impl Drop for TurnHeld {
    fn drop(&mut self) {
        self.turn.give_up(self.core);
    }
}

/// The longest frame `b_net_rx` hands over (BareMetal's limit: an Ethernet frame with a
/// VLAN tag, without its FCS); a longer one is dropped.
pub const FRAME_BYTES: usize = 1522;

/// Per core, the buffer `b_net_rx` leaves a received frame in and whose address it hands
/// the program (RDI), as BareMetal hands out its driver's buffer: allocated by the core's
/// first `b_net_rx` in a kernel section ([`Binder::kernel_section`]; from memory the
/// program can read, the kernel's identity-mapped heap),
/// kept for good, and overwritten by that core's next `b_net_rx`. One per core, so that
/// programs polling on several cores never see each other's frames.
pub struct ReceiveBuffers<const CORES: usize> {
    /// Each core's buffer, once it received.
    buffers: [Once<Box<Mutex<[u8; FRAME_BYTES]>>>; CORES],
}

impl<const CORES: usize> Default for ReceiveBuffers<CORES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CORES: usize> ReceiveBuffers<CORES> {
    /// No buffer allocated yet.
    pub const fn new() -> Self {
        Self {
            buffers: [const { Once::new() }; CORES],
        }
    }

    /// Core `core`'s buffer (allocated on its first use); `None` for no such core.
    fn of(&self, core: usize) -> Option<&Mutex<[u8; FRAME_BYTES]>> {
        let buffer = self.buffers.get(core)?;
        Some(buffer.call_once(|| Box::new(Mutex::new([0; FRAME_BYTES]))))
    }

    /// Core `core`'s buffer if it is allocated already.
    fn allocated(&self, core: usize) -> Option<&Mutex<[u8; FRAME_BYTES]>> {
        self.buffers.get(core)?.get().map(|buffer| &**buffer)
    }
}

/// Direction of a storage call.
pub enum Transfer<'a> {
    /// `b_nvs_read` into the buffer.
    Read(&'a mut [u8]),
    /// `b_nvs_write` from the buffer.
    Write(&'a [u8]),
}

impl Registry {
    /// Opens device `index` of `kind` for a BareMetal call (as [`HOLDER`]) once the
    /// calling core's turn on it came ([`Turn`]), as the handle `into` makes of it.
    /// Refused at once for no such device or one an app holds; refused with
    /// [`ApiError::DeviceBusy`] naming `baremetal` when other cores' BareMetal calls kept
    /// it past [`TURN_WAIT_NS`].
    fn open_for_call<D>(
        &'static self,
        kind: DeviceKind,
        index: usize,
        into: impl FnOnce(OpenDevice) -> Result<D, ApiError>,
    ) -> Result<Held<D>, ApiError> {
        let slot = self.slot(kind, index)?;
        let core = self.binder.core_index();
        if !slot.baremetal.take(core, self.binder) {
            return Err(ApiError::DeviceBusy(HOLDER.1));
        }
        let turn = TurnHeld {
            turn: &slot.baremetal,
            core,
        };
        let device = self.open(kind, index, HOLDER).and_then(into)?;
        Ok(Held {
            device,
            _turn: turn,
        })
    }

    /// Releases what the calling core's BareMetal calls held when they were abandoned (the
    /// kernel ended the app in the middle of one: a panic, memory taken back by force):
    /// each device's lease, ended as a lease's end does, and the call's turn on it, which
    /// would otherwise leave the device held by `baremetal`, refused to every later call,
    /// for good. The kernel calls it at the abort point around a BareMetal program, before
    /// the app ends; BareMetal calls do not nest, so every call of this core is abandoned.
    pub fn baremetal_release_abandoned(&'static self) {
        let core = self.binder.core_index();
        for slot in &self.slots {
            slot.baremetal.leave_line(core);
            if slot.baremetal.core.load(Ordering::Acquire) != core {
                continue;
            }
            match crate::reentry::lock_whole(slot, core) {
                Ok(state) if state.holder == Some(HOLDER) => {
                    drop(crate::lease::end(slot, state, self.binder))
                }
                Ok(_) => {}
                Err(error) => log::warn!("baremetal: {}: lease not ended: {error}", slot.address),
            }
            slot.baremetal.give_up(core);
            log::info!(
                "baremetal: {} released from an abandoned call",
                slot.address
            );
        }
    }

    /// `b_nvs_read` / `b_nvs_write`: `sectors` whole 4096-byte sectors from `sector` on
    /// disk `drive`, in pieces of at most [`PIECE_BYTES`]; `buffer(offset, len)` gives
    /// the app's bytes `offset..offset + len` of the request, `None` if they are not
    /// mapped. The disk is opened once, by the first piece with a buffer, and held for
    /// the call's other pieces. Returns the sectors done: a piece that fails ends the
    /// request, logged (no buffer, no such disk, one held by an app, or the device's
    /// error), and so does the disk's end (the sectors before it are done, as BareMetal
    /// counts them).
    pub fn baremetal_storage<'a>(
        &'static self,
        drive: usize,
        sector: u64,
        sectors: u64,
        mut buffer: impl FnMut(u64, u64) -> Option<Transfer<'a>>,
    ) -> u64 {
        let mut disk = None;
        let mut done = 0;
        while done < sectors {
            let count = (sectors - done).min(PIECE_BYTES / SECTOR);
            let transfer = buffer(done * SECTOR, count * SECTOR);
            let at = sector.saturating_add(done);
            let piece = self.storage_piece(drive, &mut disk, at, transfer);
            done += piece;
            if piece < count {
                break;
            }
        }
        done
    }

    /// One piece of [`Registry::baremetal_storage`] on disk `drive`, held in `disk`
    /// (opened here into it when the call has not opened it yet): the sectors done, 0 on
    /// any error (logged).
    fn storage_piece(
        &'static self,
        drive: usize,
        disk: &mut Option<Held<Box<dyn BlockDevice>>>,
        sector: u64,
        transfer: Option<Transfer<'_>>,
    ) -> u64 {
        let Some(transfer) = transfer else {
            log::warn!("baremetal: disk {drive}: no buffer (its address is not mapped)");
            return 0;
        };
        let disk = match disk {
            Some(disk) => disk,
            None => match self.open_for_call(DeviceKind::Block, drive, OpenDevice::into_block) {
                Ok(opened) => disk.insert(opened),
                Err(error) => {
                    log::warn!("baremetal: disk {drive}: {error}");
                    return 0;
                }
            },
        };
        match storage(disk.device.as_mut(), sector, transfer) {
            Ok(done) => done,
            Err(error) => {
                log::warn!("baremetal: disk {drive}, sector {sector}: {error}");
                0
            }
        }
    }

    /// `b_net_tx`: sends `frame` on the interface RDX names ([`interface_of`]); false if it
    /// was not sent (logged: BareMetal's call returns nothing).
    pub fn baremetal_transmit(&'static self, rdx: u64, frame: &[u8]) -> bool {
        let interface = interface_of(rdx);
        let mut nic = match self.open_for_call(DeviceKind::Net, interface, OpenDevice::into_net) {
            Ok(nic) => nic,
            Err(error) => {
                log::warn!("baremetal: interface {interface}: {error}");
                return false;
            }
        };
        let nic: &mut dyn NetDevice = nic.device.as_mut();
        let start = self.binder.now_ns();
        loop {
            match nic.transmit(0, frame.len(), &mut |buffer| buffer.copy_from_slice(frame)) {
                Err(DeviceError::QueueFull) if self.binder.now_ns() - start < TX_WAIT_NS => {
                    core::hint::spin_loop()
                }
                Ok(()) => return true,
                Err(error) => {
                    log::warn!("baremetal: interface {interface}: {error}");
                    return false;
                }
            }
        }
    }

    /// `b_system` 0x30 (`b_net_status`): the MAC address of the interface RDX names
    /// ([`interface_of`]), its first byte the most significant of the low 48 bits; 0 when
    /// BareMetal calls cannot use it (no such interface, or one an app holds), as
    /// BareMetal answers 0 without a network.
    pub fn baremetal_mac(&'static self, rdx: u64) -> u64 {
        let interface = interface_of(rdx);
        let opened = self.open_for_call(DeviceKind::Net, interface, OpenDevice::into_net);
        opened.map_or(0, |nic| {
            (nic.device.info().mac.iter()).fold(0, |mac, &byte| mac << 8 | u64::from(byte))
        })
    }

    /// `b_net_rx`: the next received frame of the interface RDX names ([`interface_of`])
    /// into the calling core's buffer of `buffers`; returns that buffer's address (also when no frame came,
    /// 0 only for a core beyond `buffers`) and the frame's length (0: none; a frame longer
    /// than [`FRAME_BYTES`] is dropped). A missing interface is not logged, as programs
    /// poll `b_net_rx` in tight loops.
    pub fn baremetal_receive<const CORES: usize>(
        &'static self,
        rdx: u64,
        buffers: &ReceiveBuffers<CORES>,
    ) -> (u64, u64) {
        let interface = interface_of(rdx);
        let core = self.binder.core_index();
        // The core's first call allocates its buffer: a kernel section, as an allocation
        // refused to the app (its quota, its stack) would end it inside `call_once`,
        // leaving the buffer's `Once` running for good and every later call spinning.
        // Later calls (programs poll in tight loops) find it without the section.
        let mut buffer = buffers.allocated(core);
        if buffer.is_none() {
            self.binder
                .kernel_section(&mut || buffer = buffers.of(core));
        }
        let Some(buffer) = buffer else {
            return (0, 0);
        };
        // The buffer is locked only while a frame is copied in, not across the wait for
        // the device's turn and the driver's call: a driver that panics there ends the
        // app at its abort point with nothing of this core's left locked.
        let address = buffer.lock().as_ptr() as u64;
        let Ok(mut nic) = self.open_for_call(DeviceKind::Net, interface, OpenDevice::into_net)
        else {
            return (address, 0);
        };
        let mut len = 0;
        let received = nic.device.receive(0, 1, &mut |frame| {
            if let Some(target) = buffer.lock().get_mut(..frame.len()) {
                target.copy_from_slice(frame);
                len = frame.len();
            }
        });
        if let Err(error) = received {
            log::warn!("baremetal: interface {interface}: {error}");
        }
        (address, len as u64)
    }
}

/// The network interface BareMetal's network calls (`b_net_tx`, `b_net_rx`, `b_system`
/// 0x30) name in RDX: its low 8 bits, as BareMetal keeps them (the rest is ignored).
pub fn interface_of(rdx: u64) -> usize {
    (rdx & 0xFF) as usize
}

/// The 0xCF8 configuration address for RDX as BareMetal's bus calls (`b_system` 0x50
/// and 0x51) take it: segment << 32 | bus << 24 | device << 19 | function << 16 |
/// register (16 bits, an index of 32-bit registers). `None` for a segment other than 0
/// (the ports reach segment 0 alone), bits set above the segment's 16, or a register past
/// the 256-byte configuration space (index 64 and up: PCIe's extended registers, which
/// BareMetal reaches through ECAM, are not reached here).
pub fn pci_address(rdx: u64) -> Option<u32> {
    let register = rdx & 0xFFFF;
    if rdx >> 32 != 0 || register >= 64 {
        return None;
    }
    let bus_device_function = (rdx >> 16) & 0xFFFF;
    Some(0x8000_0000 | (bus_device_function << 8) as u32 | (register << 2) as u32)
}

/// The key code `b_input` gives for console byte `byte`, as BareMetal's keyboard codes
/// them: Enter (`\r`, or `\n`) is 0x1C and Backspace (0x7F, or `^H`) 0x0E, which
/// BareMetal's serial driver makes of a terminal's bytes "to the same value as a
/// keyboard" and its programs compare with (its monitor ends a line on 0x1C); every other
/// byte is itself (so arrow keys come as `ESC [ A`-style bytes, as on BareMetal's serial
/// line).
fn key_code(byte: u8) -> u8 {
    match byte {
        b'\r' | b'\n' => 0x1C,
        0x7F | 0x08 => 0x0E,
        other => other,
    }
}

/// `b_input`'s keys, made of the console's bytes as BareMetal's key codes (`\r` and `\n`
/// Enter, 0x1C; DEL and BS Backspace, 0x0E; any other byte as it is), but for a `\n` read
/// right after a `\r`, which is passed over: a terminal that sends CR LF for Return types
/// one Enter, as on BareMetal (whose serial driver makes Enter of the CR and hands the LF
/// on as 0x0A), where it typed two, an empty line after each. A lone `\n` is still Enter.
pub struct Keys {
    /// Whether the last byte read was `\r`.
    after_return: AtomicBool,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

impl Keys {
    /// No byte read yet.
    pub const fn new() -> Self {
        Self {
            after_return: AtomicBool::new(false),
        }
    }

    /// The key code of the next byte `read` gives, 0 (no key) when it gives none; a `\n`
    /// right after a `\r` (however long after) is passed over for the byte after it.
    pub fn next(&self, mut read: impl FnMut() -> Option<u8>) -> u8 {
        while let Some(byte) = read() {
            let after_return = self.after_return.swap(byte == b'\r', Ordering::Relaxed);
            if !(after_return && byte == b'\n') {
                return key_code(byte);
            }
        }
        0
    }
}

/// The `b_system` functions the kernel does not provide (it answers them all ones), each
/// warned of the first time a program calls it in a boot: BareMetal answers them with a
/// bare `ret` (RAX kept), so a program would otherwise go on with a wrong answer unseen.
/// Functions 0x80 and up, which BareMetal's table does not reach, count as one.
pub struct Unprovided {
    /// A bit per function 0x00..=0x7F, then one for all the rest.
    warned: [AtomicU64; 3],
}

impl Default for Unprovided {
    fn default() -> Self {
        Self::new()
    }
}

impl Unprovided {
    /// No function warned of yet.
    pub const fn new() -> Self {
        Self {
            warned: [const { AtomicU64::new(0) }; 3],
        }
    }

    /// Logs a warning naming `function` (and BareMetal's name for it where BareMetal
    /// documents it) unless one was logged before; whether it logged.
    pub fn warn(&self, function: u64) -> bool {
        let bit = function.min(0x80);
        let mask = 1 << (bit % 64);
        let first = self.warned[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed) & mask == 0;
        if first {
            let name = match function {
                0x02 => " (BareMetal's GET_MOUSE: no mouse here)",
                0x52 => " (BareMetal's STDOUT_SET: the output routine stays the kernel's)",
                0x53 => " (BareMetal's STDOUT_GET)",
                0x63 => " (BareMetal's CALLBACK_MOUSE: no mouse here)",
                _ => "",
            };
            log::warn!(
                "baremetal: b_system function {function:#x}{name} is not provided: RAX = all ones"
            );
        }
        first
    }
}

/// A line of a `b_system` 0x70 memory dump: each byte as two upper-case hex digits,
/// separated by spaces.
pub struct HexBytes<'a>(pub &'a [u8]);

impl core::fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            let gap = if i == 0 { "" } else { " " };
            write!(f, "{gap}{byte:02X}")?;
        }
        Ok(())
    }
}

/// Runs one storage call on `disk`: 4096-byte sectors turned into the disk's own; the
/// 4096-byte sectors done, fewer than asked where the request crosses the disk's end.
fn storage(
    disk: &mut dyn BlockDevice,
    sector: u64,
    transfer: Transfer<'_>,
) -> Result<u64, DeviceError> {
    let info = disk.info();
    let size = u64::from(info.sector_size);
    let bytes = match &transfer {
        Transfer::Read(buffer) => buffer.len() as u64,
        Transfer::Write(data) => data.len() as u64,
    };
    if size == 0 || !SECTOR.is_multiple_of(size) {
        return Err(DeviceError::Unsupported("sectors that divide 4096 bytes"));
    }
    let per = SECTOR / size;
    let (first, asked) = (sector.saturating_mul(per), bytes / size);
    // A request crossing the disk's end does the whole 4096-byte sectors before it.
    let count = asked.min(info.sectors.saturating_sub(first) / per * per);
    if count == 0 && asked > 0 {
        return Err(DeviceError::OutOfRange {
            lba: first,
            sectors: asked,
            capacity: info.sectors,
        });
    }
    let chunk = u64::from(info.max_sectors.max(1));
    let mut done = 0;
    let mut transfer = transfer;
    while done < count {
        let n = (count - done).min(chunk);
        let range = (done * size) as usize..((done + n) * size) as usize;
        let at = (first + done, n as u32);
        match &mut transfer {
            Transfer::Read(buffer) => {
                let tag = disk.submit_read(0, at.0, at.1)?;
                wait_for_read_exact(disk, 0, tag, &mut buffer[range])?;
            }
            Transfer::Write(data) => {
                let part = &data[range];
                let tag = submit_write_exact(disk, 0, at, part.len(), &mut |buffer| {
                    buffer.copy_from_slice(part)
                })?;
                wait_for(disk, 0, tag, &mut |_| {})?;
            }
        }
        done += n;
    }
    Ok(count / per)
}

/// The bit of [`Jobs`]'s state that says a load is replacing the binary.
const LOADING: u64 = 1 << 63;

/// Each of `CORES` cores' BareMetal job (`smp_set`: code in the app area it runs as a
/// task of its work loop), the runs of the binary's entry itself (`exec`,
/// [`Jobs::run_main`]), and the loads of a new binary into that area, which must not
/// overlap them: a job still running when the area is overwritten would go on in code
/// and data of the new binary. So a load is refused while any job or run is counted
/// ([`BinaryError::JobsRunning`]; BareMetal code may loop forever, so waiting could
/// never end), and a job or run is refused while a load runs.
pub struct Jobs<const CORES: usize> {
    /// Each core's job, or the entry it runs ([`Jobs::run_main`]): the code address, or 0
    /// when idle.
    slots: [AtomicU64; CORES],
    /// How many jobs are set and runs of the entry go on, with [`LOADING`] while a load
    /// runs.
    state: AtomicU64,
}

impl<const CORES: usize> Default for Jobs<CORES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CORES: usize> Jobs<CORES> {
    /// No jobs, no load.
    pub const fn new() -> Self {
        Self {
            slots: [const { AtomicU64::new(0) }; CORES],
            state: AtomicU64::new(0),
        }
    }

    /// [`Jobs::start`]'s setting of a job: sets `code` (not 0) as core `core`'s job;
    /// false (nothing set) if that core has one, there is no such core, or a load runs.
    /// The caller then runs it and calls [`Jobs::finish`].
    fn set(&self, core: usize, code: u64) -> bool {
        let Some(slot) = self.slots.get(core).filter(|_| code != 0) else {
            return false;
        };
        // Counted before the slot is taken, so a load that starts now sees the job.
        if !self.count_job() {
            return false;
        }
        if slot
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.state.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// `smp_set`: sets `code` as core `core`'s job and has `run(core)` hand it to that
    /// core, which calls [`Jobs::finish`] when the job returns; whether it was accepted.
    /// The caller's own core (`caller`) is accepted and given nothing: BareMetal's boot
    /// core never runs its own slot, and its smptest sets every core, its own too, then
    /// runs the code itself. Refused (nothing set) when `code` is 0, that core has a job
    /// or runs the entry, there is no such core or a load runs, and when `run` could not hand the job on (it
    /// is ended).
    pub fn start(
        &self,
        core: usize,
        caller: usize,
        code: u64,
        run: impl FnOnce(usize) -> bool,
    ) -> bool {
        if core == caller {
            return true;
        }
        if !self.set(core, code) {
            return false;
        }
        let handed = run(core);
        if !handed {
            self.finish(core);
        }
        handed
    }

    /// Counts one more job in `state`; false (nothing counted) while a load runs.
    fn count_job(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & LOADING == 0).then_some(state + 1)
            })
            .is_ok()
    }

    /// Ends core `core`'s job: it returned, or it could not be started.
    pub fn finish(&self, core: usize) {
        let ended = self
            .slots
            .get(core)
            .is_some_and(|slot| slot.swap(0, Ordering::AcqRel) != 0);
        if ended {
            self.state.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The code core `core`'s job runs (0: none).
    pub fn running(&self, core: usize) -> u64 {
        self.slots
            .get(core)
            .map_or(0, |slot| slot.load(Ordering::Acquire))
    }

    /// `b_system` 0x13 (`smp_get`) on core `core`: its slot as BareMetal keeps it, the
    /// code of its job or of the entry it runs with bits 0 (present) and 1 (active:
    /// running, as the core asking is the one that runs it) set, or 1 (present) without.
    pub fn slot(&self, core: usize) -> u64 {
        match self.running(core) {
            0 => 1,
            code => code | 0b11,
        }
    }

    /// Whether a core other than `me` has a job or runs the entry.
    pub fn busy_besides(&self, me: usize) -> bool {
        (0..CORES).any(|core| core != me && self.running(core) != 0)
    }

    /// Runs `main`, the loaded binary's entry at `code` called on core `core` (`exec`),
    /// counted as a job until it returns, so a load meanwhile is refused
    /// ([`BinaryError::JobsRunning`]); refused itself while a load runs
    /// ([`BinaryError::Loading`]: the binary may be half copied). The core's slot names
    /// `code` meanwhile, as BareMetal's boot core's slot names the code it runs (its
    /// payload): [`Jobs::slot`] gives it present and active there, [`Jobs::busy_besides`]
    /// counts it and [`Jobs::start`] refuses the core to other cores. A slot already set
    /// (a job queued behind the entry before it began) is left as it is.
    pub fn run_main<T>(
        &self,
        core: usize,
        code: u64,
        main: impl FnOnce() -> T,
    ) -> Result<T, BinaryError> {
        if !self.count_job() {
            return Err(BinaryError::Loading);
        }
        let named = (self.slots.get(core)).filter(|slot| {
            code != 0
                && slot
                    .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
        });
        let returned = main();
        if let Some(slot) = named {
            slot.store(0, Ordering::Release);
        }
        self.state.fetch_sub(1, Ordering::AcqRel);
        Ok(returned)
    }

    /// Runs `load`, which replaces the binary, unless a job is set
    /// ([`BinaryError::JobsRunning`]); no job can be set meanwhile. Waits for another
    /// load that runs (a copy into memory: short).
    pub fn load<T>(&self, load: impl FnOnce() -> Result<T, BinaryError>) -> Result<T, BinaryError> {
        loop {
            match self
                .state
                .compare_exchange(0, LOADING, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(LOADING) => core::hint::spin_loop(),
                Err(jobs) => return Err(BinaryError::JobsRunning { jobs }),
            }
        }
        let loaded = load();
        self.state.store(0, Ordering::Release);
        loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharing::tests::shared;
    use crate::tests::{LOGGED, logged, record_logs};
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use rexo_devio::Found;

    #[test]
    fn a_storage_call_through_buffers_of_another_length_is_an_error_not_a_panic() {
        for skew in [-1, 1] {
            let mut disk = rexo_api::testing::MemoryDisk::new(alloc::vec![0xEE; 16 * 512]);
            let handed = Err(crate::exact::wrong_length(
                4096_usize.saturating_add_signed(skew),
            ));
            disk.read_skew = skew;
            let mut buffer = alloc::vec![0; 4096];
            assert_eq!(storage(&mut disk, 0, Transfer::Read(&mut buffer)), handed);
            assert!(buffer.iter().all(|&byte| byte == 0), "nothing copied");
            disk.write_skew = skew;
            assert_eq!(storage(&mut disk, 0, Transfer::Write(&[7; 4096])), handed);
            assert!(
                disk.data().iter().all(|&byte| byte == 0xEE),
                "nothing written"
            );
        }
    }

    #[test]
    fn a_missing_disk_or_interface_is_logged() {
        record_logs();
        let (registry, _) = shared();
        let mut buffer = [0; 4096];
        let mut read = Some(Transfer::Read(&mut buffer));
        assert_eq!(registry.baremetal_storage(5, 0, 1, |_, _| read.take()), 0);
        assert!(logged("baremetal: disk 5: "), "{:?}", LOGGED.lock());
        assert_eq!(registry.baremetal_storage(6, 0, 1, |_, _| None), 0);
        assert!(
            logged("baremetal: disk 6: no buffer"),
            "{:?}",
            LOGGED.lock()
        );
        assert!(!registry.baremetal_transmit(9, &[0; 60]));
        assert!(logged("baremetal: interface 9: "), "{:?}", LOGGED.lock());
    }

    #[test]
    fn an_unprovided_function_is_warned_of_once() {
        record_logs();
        let unprovided = Unprovided::new();
        assert!(unprovided.warn(0x99));
        assert!(logged("baremetal: b_system function 0x99 is not provided"));
        assert!(
            !unprovided.warn(0x99),
            "the second call is not logged again"
        );
        assert!(unprovided.warn(0x52));
        assert!(logged(
            "baremetal: b_system function 0x52 (BareMetal's STDOUT_SET: the output"
        ));
        assert!(
            unprovided.warn(0x7F),
            "the last of BareMetal's table has its own bit"
        );
        assert!(
            !unprovided.warn(0x80),
            "0x80 and up count as one: 0x99 was warned of"
        );
        assert!(!unprovided.warn(u64::MAX));
        assert!(unprovided.warn(0x40), "others are still to warn of");
    }

    #[test]
    fn a_storage_call_of_more_than_256_sectors_is_done_in_pieces() {
        let disk = rexo_api::testing::MemoryDisk::new(alloc::vec![0; 4 << 20]);
        let registry = crate::tests::registry_with(Found::Block(Box::new(disk)), "memory");
        let sectors = 300;
        let data: Vec<u8> = (0..sectors * SECTOR).map(|i| (i / SECTOR) as u8).collect();
        let mut asked = Vec::new();
        // As the kernel's: no buffer over PIECE_BYTES is handed on.
        let written = registry.baremetal_storage(0, 2, sectors, |offset, len| {
            asked.push((offset, len));
            let range = offset as usize..(offset + len) as usize;
            (len <= PIECE_BYTES).then(|| Transfer::Write(&data[range]))
        });
        assert_eq!(written, sectors);
        assert_eq!(asked, [(0, PIECE_BYTES), (PIECE_BYTES, 44 * SECTOR)]);
        let mut back = alloc::vec![0u8; data.len()];
        let mut rest = back.as_mut_slice();
        let read = registry.baremetal_storage(0, 2, sectors, |_, len| {
            let (piece, after) = core::mem::take(&mut rest).split_at_mut(len as usize);
            rest = after;
            Some(Transfer::Read(piece))
        });
        assert_eq!(read, sectors);
        assert!(back == data, "read back what was written");
    }

    #[test]
    fn a_storage_call_crossing_the_disks_end_does_the_sectors_before_it() {
        // 10 sectors of 4096 bytes and half of one more, in 512-byte sectors.
        let mut disk = rexo_api::testing::MemoryDisk::new(alloc::vec![0xEE; 84 * 512]);
        let mut buffer = alloc::vec![0; 4 * 4096];
        assert_eq!(storage(&mut disk, 8, Transfer::Read(&mut buffer)), Ok(2));
        assert_eq!(
            storage(&mut disk, 8, Transfer::Write(&[7; 4 * 4096])),
            Ok(2)
        );
        assert!(disk.data()[64 * 512..80 * 512].iter().all(|&b| b == 7));
        assert!(
            disk.data()[80 * 512..].iter().all(|&b| b == 0xEE),
            "past 10: kept"
        );
        let outside = storage(&mut disk, 10, Transfer::Read(&mut buffer));
        assert!(matches!(outside, Err(DeviceError::OutOfRange { .. })));
        let registry = crate::tests::registry_with(Found::Block(Box::new(disk)), "memory");
        let mut back = alloc::vec![0; 300 * 4096];
        let mut rest = back.as_mut_slice();
        let read = registry.baremetal_storage(0, 5, 300, |_, len| {
            let (piece, after) = core::mem::take(&mut rest).split_at_mut(len as usize);
            rest = after;
            Some(Transfer::Read(piece))
        });
        assert_eq!(read, 5, "sectors 5 to 9");
        assert!(back[3 * 4096..5 * 4096].iter().all(|&b| b == 7));
    }

    #[test]
    fn a_storage_call_stops_at_the_first_piece_that_fails() {
        record_logs();
        let disk = rexo_api::testing::MemoryDisk::new(alloc::vec![0; 4 << 20]);
        let registry = crate::tests::registry_with(Found::Block(Box::new(disk)), "memory");
        let data = alloc::vec![7u8; PIECE_BYTES as usize];
        let mut pieces = 0;
        let written = registry.baremetal_storage(0, 0, 600, |_, _| {
            pieces += 1;
            (pieces == 1).then_some(Transfer::Write(&data))
        });
        assert_eq!(written, 256, "the first piece only");
        assert_eq!(pieces, 2, "nothing asked after the failed piece");
        assert!(
            logged("baremetal: disk 0: no buffer"),
            "{:?}",
            LOGGED.lock()
        );
    }

    #[test]
    fn a_load_is_refused_while_a_job_is_set_and_a_job_while_a_load_runs() {
        let jobs = Jobs::<4>::new();
        assert!(jobs.set(1, 0x40));
        assert!(!jobs.set(1, 0x80), "core 1 has a job");
        assert!(jobs.set(2, 0x80));
        assert!(jobs.busy_besides(0) && jobs.busy_besides(1));
        let mut loaded = false;
        let refused = jobs.load(|| {
            loaded = true;
            Ok(())
        });
        assert_eq!(refused, Err(BinaryError::JobsRunning { jobs: 2 }));
        assert!(!loaded, "the area was not touched");
        jobs.finish(1);
        jobs.finish(1);
        assert_eq!(jobs.running(1), 0);
        assert_eq!(
            jobs.load(|| Ok(())),
            Err(BinaryError::JobsRunning { jobs: 1 }),
            "an idle core's finish counts once"
        );
        jobs.finish(2);
        let during = jobs.load(|| Ok(jobs.set(3, 0x40)));
        assert_eq!(during, Ok(false), "no job is set while a load runs");
        assert_eq!(jobs.running(3), 0);
        assert!(jobs.set(3, 0x40), "after the load, jobs are set again");
        assert_eq!(jobs.running(3), 0x40);
        assert!(
            !jobs.set(4, 0x40) && !jobs.set(0, 0),
            "no core 4; code 0 is idle"
        );
        assert!(!jobs.busy_besides(3));
    }

    #[test]
    fn a_job_goes_to_another_core_the_callers_own_is_accepted_with_nothing_set() {
        let jobs = Jobs::<4>::new();
        let mut handed = Vec::new();
        assert!(jobs.start(0, 0, 0x40, |core| {
            handed.push(core);
            true
        }));
        assert!(
            handed.is_empty() && jobs.running(0) == 0,
            "nothing given to the caller"
        );
        assert_eq!(jobs.load(|| Ok(())), Ok(()), "a load is not kept out by it");
        assert!(jobs.start(2, 0, 0x40, |core| {
            handed.push(core);
            true
        }));
        assert_eq!((handed.as_slice(), jobs.running(2)), ([2].as_slice(), 0x40));
        assert!(!jobs.start(2, 0, 0x80, |_| true), "core 2 is busy");
        assert!(!jobs.start(3, 0, 0x80, |_| false), "not handed on");
        assert_eq!(
            jobs.running(3),
            0,
            "the job that was not handed on is ended"
        );
        jobs.finish(2);
        assert_eq!(jobs.load(|| Ok(())), Ok(()), "no job is left counted");
    }

    #[test]
    fn a_load_is_refused_while_the_main_binary_runs_and_a_run_while_a_load_runs() {
        let jobs = Jobs::<2>::new();
        let during = jobs.run_main(0, 0x1000, || jobs.load(|| Ok(())));
        assert_eq!(during, Ok(Err(BinaryError::JobsRunning { jobs: 1 })));
        assert_eq!(jobs.load(|| Ok(7)), Ok(7), "uncounted once it returned");
        let mut ran = false;
        let refused = jobs.load(|| {
            Ok(jobs.run_main(0, 0x1000, || {
                ran = true;
            }))
        });
        assert_eq!(refused, Ok(Err(BinaryError::Loading)));
        assert!(!ran, "a half-copied binary is not run");
        assert_eq!(
            jobs.run_main(0, 0x1000, || 5),
            Ok(5),
            "after the load it runs"
        );
    }

    #[test]
    fn the_core_running_the_entry_has_it_in_its_slot_as_baremetals_boot_core() {
        let jobs = Jobs::<2>::new();
        let seen = jobs.run_main(0, 0x1000, || {
            let refused = !jobs.start(0, 1, 0x2000, |_| true);
            (jobs.slot(0), jobs.busy_besides(1), refused)
        });
        assert_eq!(
            seen,
            Ok((0x1003, true, true)),
            "present, active, busy, taken"
        );
        assert_eq!(jobs.slot(0), 1, "present alone once the entry returned");
        assert!(!jobs.busy_besides(1));
        // A job set on the core before the entry began keeps its slot.
        assert!(jobs.start(0, 1, 0x2000, |_| true));
        assert_eq!(jobs.run_main(0, 0x1000, || jobs.slot(0)), Ok(0x2003));
        assert_eq!(jobs.running(0), 0x2000, "the job's slot outlives the entry");
    }

    #[test]
    fn a_dump_line_shows_each_byte_as_two_hex_digits() {
        let line = alloc::format!("{}", HexBytes(b"BM\x00\xff\x0a"));
        assert_eq!(line, "42 4D 00 FF 0A");
        assert_eq!(alloc::format!("{}", HexBytes(&[])), "");
    }

    #[test]
    fn smp_get_gives_the_slot_with_baremetals_present_and_active_flags() {
        let jobs = Jobs::<2>::new();
        assert_eq!(jobs.slot(1), 1, "present, no job");
        assert!(jobs.start(1, 0, 0x1000, |_| true));
        assert_eq!(jobs.slot(1), 0x1003, "the job, present and active");
        jobs.finish(1);
        assert_eq!(jobs.slot(1), 1);
    }

    #[test]
    fn enter_and_backspace_become_baremetals_keyboard_codes() {
        assert_eq!(
            key_code(b'\r'),
            0x1C,
            "Enter from a terminal or the keyboard"
        );
        assert_eq!(key_code(b'\n'), 0x1C);
        assert_eq!(key_code(0x7F), 0x0E, "Backspace");
        assert_eq!(key_code(0x08), 0x0E);
        for byte in [b'a', b'Z', b' ', 0x1B, b'[', 0x03] {
            assert_eq!(key_code(byte), byte, "{byte:#x} passes unchanged");
        }
    }

    #[test]
    fn an_lf_right_after_a_cr_is_passed_over_and_a_lone_lf_is_enter() {
        let keys = Keys::new();
        let mut bytes = b"a\r\nb\n\r\r\n\n".iter().copied();
        let typed: Vec<u8> = core::iter::from_fn(|| Some(keys.next(|| bytes.next())))
            .take_while(|&key| key != 0)
            .collect();
        assert_eq!(typed, [b'a', 0x1C, b'b', 0x1C, 0x1C, 0x1C, 0x1C]);
        // The LF of a CR LF read in two calls, nothing between them.
        keys.next(|| Some(b'\r'));
        assert_eq!(keys.next(|| None), 0, "no key yet");
        let mut lf_then_x = [b'\n', b'x'].into_iter();
        assert_eq!(keys.next(|| lf_then_x.next()), b'x', "the LF passed over");
    }

    #[test]
    fn pci_addresses_are_decoded_as_baremetals_bus_calls_lay_them_out() {
        assert_eq!(pci_address(0), Some(0x8000_0000));
        // Bus 1, device 2, function 3, register 0x0F (byte offset 0x3C).
        let rdx = 1 << 24 | 2 << 19 | 3 << 16 | 0x0F;
        let address = 0x8000_0000 | 1 << 16 | 2 << 11 | 3 << 8 | 0x3C;
        assert_eq!(pci_address(rdx), Some(address));
        // q35's LPC bridge, 00:1F.0.
        assert_eq!(pci_address(0x1F << 19), Some(0x8000_F800));
        assert_eq!(pci_address(0xFF << 24 | 0xFF << 16 | 63), Some(0x80FF_FFFC));
        assert_eq!(pci_address(64), None, "past the 256 bytes");
        assert_eq!(pci_address(0x3FF), None, "a PCIe extended register");
        assert_eq!(pci_address(1 << 32), None, "segment 1");
        assert_eq!(pci_address(1 << 48), None, "above the segment");
    }

    #[test]
    fn the_mac_address_reads_first_byte_first_and_is_0_without_an_interface() {
        let (registry, _) = shared();
        assert_eq!(registry.baremetal_mac(0), 0x0200_0000_0001);
        assert_eq!(registry.baremetal_mac(1), 0, "no second interface");
        let _held = registry.open(DeviceKind::Net, 0, (7, "app")).unwrap();
        assert_eq!(registry.baremetal_mac(0), 0, "held by an app");
    }

    #[test]
    fn network_calls_take_the_low_8_bits_of_rdx_as_the_interface() {
        let (registry, wire) = shared();
        let rdx = 0xFFFF_FF00;
        assert_eq!(registry.baremetal_mac(rdx), 0x0200_0000_0001);
        assert!(registry.baremetal_transmit(rdx, &[4; 60]));
        assert_eq!(wire.lock().sent.len(), 1);
        wire.lock().incoming.push_back(alloc::vec![5; 60]);
        let buffers: &'static ReceiveBuffers<64> = Box::leak(Box::default());
        assert_eq!(registry.baremetal_receive(rdx, buffers).1, 60);
        assert_eq!(interface_of(0x1_01), 1);
    }

    /// A registry of one disk in memory (4 MiB).
    fn a_disk() -> &'static Registry {
        let disk = rexo_api::testing::MemoryDisk::new(alloc::vec![0; 4 << 20]);
        crate::tests::registry_with(Found::Block(Box::new(disk)), "memory")
    }

    /// Starts a `b_nvs_read` of 300 sectors on another thread (a core of its own) that
    /// holds the disk, between its two pieces, until `open` is set; returns once it does.
    fn reading_until(
        registry: &'static Registry,
        open: &'static AtomicBool,
    ) -> std::thread::JoinHandle<u64> {
        let entered: &'static AtomicBool = Box::leak(Box::default());
        let buffer: &'static mut [u8] = alloc::vec![0; 300 * 4096].leak();
        let reading = std::thread::spawn(move || {
            let mut rest = buffer;
            registry.baremetal_storage(0, 0, 300, |offset, len| {
                if offset > 0 {
                    entered.store(true, Ordering::Release);
                    while !open.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                }
                let (piece, after) = core::mem::take(&mut rest).split_at_mut(len as usize);
                rest = after;
                Some(Transfer::Read(piece))
            })
        });
        while !entered.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        reading
    }

    /// A one-sector `b_nvs_read` of disk 0 on another thread; its sectors done.
    fn read_one_sector(registry: &'static Registry) -> std::thread::JoinHandle<u64> {
        std::thread::spawn(move || {
            let mut buffer = alloc::vec![0; 4096];
            let mut read = Some(Transfer::Read(&mut buffer));
            registry.baremetal_storage(0, 0, 1, |_, _| read.take())
        })
    }

    #[test]
    fn a_call_waits_for_another_cores_call_on_the_device_instead_of_failing() {
        let registry = a_disk();
        let open: &'static AtomicBool = Box::leak(Box::default());
        let reading = reading_until(registry, open);
        let waiting = read_one_sector(registry);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiting.is_finished(), "waits for the other call");
        open.store(true, Ordering::Release);
        assert_eq!(reading.join().unwrap(), 300);
        assert_eq!(waiting.join().unwrap(), 1, "done once the other call ended");
    }

    #[test]
    fn a_call_waits_at_most_a_second_for_its_turn() {
        record_logs();
        let registry = a_disk();
        let open: &'static AtomicBool = Box::leak(Box::default());
        let reading = reading_until(registry, open);
        let start = std::time::Instant::now();
        assert_eq!(read_one_sector(registry).join().unwrap(), 0, "no turn came");
        let waited = start.elapsed().as_nanos() as u64;
        assert!(
            (TURN_WAIT_NS..10 * TURN_WAIT_NS).contains(&waited),
            "{waited} ns"
        );
        let refused = "baremetal: disk 0: the device is held by the app baremetal";
        assert!(logged(refused), "{:?}", LOGGED.lock());
        open.store(true, Ordering::Release);
        assert_eq!(reading.join().unwrap(), 300);
        assert_eq!(
            read_one_sector(registry).join().unwrap(),
            1,
            "the next has its turn"
        );
    }

    #[test]
    fn a_device_an_app_holds_is_refused_to_baremetal_calls_at_once() {
        let (registry, wire) = shared();
        let _held = registry.open(DeviceKind::Net, 0, (7, "app")).unwrap();
        // At once: no wait, so no read of the clock every wait is bounded on (a bound on
        // the host's wall clock failed when the test thread was descheduled).
        let reads = crate::interrupts::tests::clock_reads();
        assert!(!registry.baremetal_transmit(0, &[1; 60]));
        assert_eq!(registry.baremetal_mac(0), 0);
        assert_eq!(crate::interrupts::tests::clock_reads(), reads, "at once");
        assert!(wire.lock().sent.is_empty());
    }

    #[test]
    fn what_a_call_abandoned_at_an_abort_held_is_released_on_its_own_core_only() {
        let (registry, wire) = shared();
        let app = (7, "app");
        // As an abort leaves a call: its lease and turn never dropped, on another core.
        let abandon = || {
            let held = registry.open_for_call(DeviceKind::Net, 0, OpenDevice::into_net);
            core::mem::forget(held.unwrap());
        };
        let (abandoned, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                abandon();
                abandoned.wait();
                release.wait();
                registry.baremetal_release_abandoned();
            });
            abandoned.wait();
            registry.baremetal_release_abandoned();
            let busy = registry.open(DeviceKind::Net, 0, app).err();
            assert_eq!(
                busy,
                Some(ApiError::DeviceBusy("baremetal")),
                "another core's"
            );
            release.wait();
        });
        drop(registry.open(DeviceKind::Net, 0, app).expect("released"));
        assert!(
            registry.baremetal_transmit(0, &[3; 60]),
            "a call has its turn at once"
        );
        assert_eq!(wire.lock().sent.len(), 1);
    }

    #[test]
    fn a_receive_loop_on_one_core_loses_no_frame_another_core_sends() {
        let (registry, wire) = shared();
        let buffers: &'static ReceiveBuffers<64> = Box::leak(Box::default());
        let stop: &'static core::sync::atomic::AtomicBool = Box::leak(Box::default());
        let polling = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                registry.baremetal_receive(0, buffers);
            }
        });
        let sent = (0..200)
            .filter(|_| registry.baremetal_transmit(0, &[2; 60]))
            .count();
        stop.store(true, Ordering::Relaxed);
        polling.join().unwrap();
        assert_eq!(sent, 200, "every b_net_tx went out");
        assert_eq!(wire.lock().sent.len(), 200);
    }

    #[test]
    fn a_frame_is_received_into_the_calling_cores_buffer_whose_address_is_returned() {
        let (registry, wire) = shared();
        let buffers: &'static ReceiveBuffers<64> = Box::leak(Box::default());
        let (empty, none) = registry.baremetal_receive(0, buffers);
        assert!(empty != 0 && none == 0, "no frame: the buffer, length 0");
        let frame: Vec<u8> = (0..FRAME_BYTES).map(|i| i as u8).collect();
        wire.lock().incoming.push_back(frame.clone());
        let (address, len) = registry.baremetal_receive(0, buffers);
        assert_eq!(
            (address, len),
            (empty, FRAME_BYTES as u64),
            "the same buffer"
        );
        let buffer = buffers.of(registry.binder.core_index()).unwrap().lock();
        assert_eq!(buffer.as_ptr() as u64, address);
        assert!(
            buffer[..] == frame[..],
            "the whole frame, at the address returned"
        );
        drop(buffer);
        wire.lock().incoming.push_back(alloc::vec![9; 60]);
        let other = std::thread::spawn(move || registry.baremetal_receive(0, buffers).0);
        let elsewhere = other.join().unwrap();
        assert!(elsewhere != address, "another core has a buffer of its own");
        wire.lock()
            .incoming
            .push_back(alloc::vec![7; FRAME_BYTES + 1]);
        assert_eq!(
            registry.baremetal_receive(0, buffers),
            (address, 0),
            "too long"
        );
        assert_eq!(
            registry.baremetal_receive(1, buffers),
            (address, 0),
            "no interface 1"
        );
    }
}
