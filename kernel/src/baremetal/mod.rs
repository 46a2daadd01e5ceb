//! BareMetal binary compatibility: unmodified BareMetal applications (flat binaries
//! linked at 0xFFFF_8000_0000_0000) run trusted, in ring 0, as on BareMetal.
//!
//! # The call table
//!
//! Eight 8-byte code pointers at physical (= virtual) 0x100010..0x100050: `b_input`,
//! `b_output`, `b_net_tx`, `b_net_rx`, `b_nvs_read`, `b_nvs_write`, `b_system`, and
//! `b_user`, BareMetal's stub for a user function, a bare `ret` as there (every register
//! and flag kept). Each of the seven calls
//! points at an assembly stub that saves every general register, calls Rust and reloads
//! them, so every register is preserved except the call's outputs (the direction flag
//! comes back clear and ZF set exactly when AL is 0, as BareMetal's `b_input` leaves it
//! for its callers' `jz`; other flags are not kept). The page 0x100000..0x101000 is kept from
//! the frame allocator ([`TABLE_PAGE`]).
//!
//! - `b_input`: AL = the next byte from the serial line (or PS/2 keyboard), 0 if none
//!   (the rest of RAX kept: BareMetal writes AL alone),
//!   with Enter (`\r` or `\n`) as 0x1C and Backspace (0x7F or 0x08) as 0x0E, BareMetal's
//!   keyboard codes, which its serial driver makes of those bytes too and its programs
//!   compare with (`rexo_drivers::baremetal::Keys`); a `\n` right after a `\r` is passed
//!   over, so a terminal's CR LF is one Enter (on BareMetal, Enter and a 0x0A); other
//!   bytes as they come (arrow keys as `ESC [ A`-style bytes, as on BareMetal's serial
//!   line).
//! - `b_output`: RCX bytes at RSI to the consoles, unchanged on the serial line but `\n` sent as `\r\n` (as text on
//!   the framebuffer, invalid UTF-8 as U+FFFD), in pieces of 1 MiB; an unmapped piece
//!   ends it, with a warning (an unmapped buffer prints nothing).
//! - `b_net_tx` (RSI frame, RCX length, RDX interface: its low 8 bits, as BareMetal
//!   reads it, here and in 0x30) and `b_net_rx` (RDX interface; RDI = the frame, in a
//!   buffer of the calling core's that the kernel keeps and that core's next `b_net_rx`
//!   overwrites, RCX = its length, 0 if none) on the network interfaces `devices` lists; `b_nvs_read` (RAX first 4096-byte sector, RCX sectors,
//!   RDX drive, RDI buffer) and `b_nvs_write` (RSI data) on its disks, in pieces of 256
//!   sectors (1 MiB); RCX = sectors done: the pieces before the first that failed
//!   (logged: an unmapped buffer, no such disk, a device error); a request crossing the
//!   disk's end does the sectors before it and counts them (refused whole if it starts
//!   beyond).
//!   `b_net_tx` logs a frame it could not send (one longer than BareMetal's 1522 bytes,
//!   then an unmapped buffer, before any device); `b_net_rx`, which programs poll in tight
//!   loops, is silent for a missing interface. Each call holds its device only while it
//!   runs (`rexo_drivers::baremetal`), so a device an app holds is refused; calls on one
//!   device from several cores take turns, each waiting up to 1 s for the others (as
//!   BareMetal's wait for the interface's lock), then refused (logged).
//!
//! # `b_system` (RCX = function, RAX and RDX = arguments, RAX = result)
//!
//! Unknown functions and bad arguments return [`calls::ERROR`] (all ones), where
//! BareMetal keeps RAX (a bare `ret`); a function not provided is warned of the first time
//! a program calls it in a boot (0x80 and up as one), with BareMetal's name for it where
//! BareMetal documents it (`rexo_drivers::baremetal::Unprovided`). docs/api.md, "BareMetal binary
//! compatibility", lists what differs from BareMetal and why.
//!
//! | function | result |
//! |---|---|
//! | 0x00 | nanoseconds since boot (the TSC clock) |
//! | 0x01 | MiB of the app's memory window at 0xFFFF_8000_0000_0000 |
//! | 0x10 | the calling core's local APIC id |
//! | 0x11 | how many cores the calling app has (every core for the app `baremetal`; in a job, the app that gave it) |
//! | 0x12 | `smp_set`: run the code at RAX (16-byte aligned, inside the app) on the app's core with APIC id RDX, as a task of Rexo's work loop acting for the app (its calls see the app's cores; a panic in one, or memory taken from the app by force, ends the job alone); RAX (the code address) if accepted, 0 if refused (that core has a BareMetal job or runs the binary's entry, not the app's core, bad address, queue full, a load running). The calling core is accepted and never runs it, as BareMetal's boot core (its smptest sets every APIC id with RAX loaded once, its own too, then calls the code itself) |
//! | 0x13 | `smp_get`: the calling core's slot as BareMetal's: the code address it runs with bits 0 (present) and 1 (active) set, 1 without any. On the core that runs the binary's entry that is 0xFFFF_8000_0000_0003: BareMetal's boot core's slot names the code it was set to run, its payload (a program its monitor loads and `call`s sees the monitor's, 0x1E0000 \| 3) |
//! | 0x14, 0x15 | lock / unlock: spin until bit 0 of the byte at RAX is set by us / clear it; RAX kept, or ERROR for an address outside mapped memory |
//! | 0x16 | 1 if a core other than the caller has a BareMetal job or runs the binary's entry, else 0 |
//! | 0x1F | the TSC |
//! | 0x20-0x24 | framebuffer address, width, height, pixels per line, bits per pixel; 0 without a framebuffer |
//! | 0x30 | `b_net_status`: the MAC address of interface RDX, its first byte the most significant of 48 bits; 0 without one (or while an app holds it) |
//! | 0x50, 0x51 | PCI configuration read / write (RAX = value, kept by a write) through ports 0xCF8/0xCFC; RDX as BareMetal lays it out: segment << 32, bus << 24, device << 19, function << 16, register index (16 bits, in 32-bit words); ERROR for a segment other than 0 and for registers 64 and up (PCIe's extended space, which BareMetal reaches through ECAM) |
//! | 0x60-0x62 | the timer, network, keyboard callback: nothing, RAX kept, as BareMetal's (a bare `ret`) |
//! | 0x70 | print RDX bytes at RAX in hex, 16 per line, at most 1 MiB ([`raw::MAX_ACCESS`]); RAX kept, ERROR for an unmapped or larger range |
//! | 0x71 | print RAX as 16 hex digits (no newline); returns RAX |
//! | 0x72 | wait RAX microseconds; RAX kept |
//! | 0x7D | reset: returns, RAX kept (jobs already given run to completion): a divergence, below |
//! | 0x7E | reboot |
//! | 0x7F | power off (returns ERROR only if that failed) |
//!
//! 0x02 (the mouse), 0x52/0x53 (replace the output routine) and 0x63 (the mouse callback)
//! are not provided and return ERROR, with the warning, as does 0x31, which BareMetal
//! leaves empty.
//!
//! Other divergences from BareMetal: 0x7D returns, where BareMetal's resets every core,
//! the caller's too, and never returns (Rexo's other apps and cores go on); `b_net_tx`
//! sends frames up to the interface's largest, 1514 bytes, and logs and drops a longer
//! one, where BareMetal accepts 1522 (a VLAN tag's 4 more); 0x50/0x51 reach registers
//! 0..=63 of segment 0 only (above).
//!
//! # Loading
//!
//! The app is the first boot module (QEMU `-initrd FILE`, GRUB `module2`). The built-in
//! app `baremetal` refuses an empty module, one larger than the app area, and one that
//! starts with an ELF (`\x7fELF`) or PE (`MZ`) header ("not a flat binary: ELF"). A flat
//! binary has no length field, so a truncated one cannot be told apart. The app area is
//! allocated once per boot from the frame allocator, 2 MiB aligned: half the free memory,
//! at most 64 MiB, at least 2 MiB, refused (`NoArea`) if it would leave less than the
//! kernel's reserve free (4 MiB, as app grants leave it: the kernel heap grows into it).
//! It is charged to no quota: only the app table's trusted apps load (below). It is zeroed, the binary is copied to its start, and
//! virtual 0xFFFF_8000_0000_0000.. is mapped onto it with 2 MiB pages (PML4 entry 256,
//! shared by every core). `Kernel::load_baremetal` and `exec_baremetal` serve only apps
//! whose app-table entry grants BareMetal code (`AppEntry::may_run_baremetal`: the
//! monitor's `load` and `exec`, and the built-in app `baremetal`, which loads and runs
//! its module through them), since the code runs with the kernel's rights; others get
//! `BinaryError::NotGranted`, and `run_app` starts the app `baremetal` only for an app
//! granted it too (`ApiError::NotGranted`; `app=baremetal` is the operator's). A load is refused while cores still run the loaded binary (`exec`) or jobs it gave them with
//! `smp_set` (`BinaryError::JobsRunning`): they would go on in the new binary's code and
//! data; an `exec` while a load runs is refused (`BinaryError::Loading`). A load whose
//! source is taken from the app mid-copy (memory revoked by force: a page fault) releases
//! the area and the load, then ends the app (`ApiError::Repossessed`); the binary loaded
//! before is forgotten from the moment the area is overwritten (`exec`: `NotLoaded`, checked
//! once no load can start, so an `exec` that looked before such a load began runs nothing).
//! An area whose mapping fails (no frame for a page table) goes back to the frame
//! allocator with nothing of it mapped: the mapping is all or nothing. An app ended inside
//! `exec` (a panic in a call, memory taken from it by force) leaves nothing behind: the
//! run stops being counted and the devices its abandoned calls held are released
//! ([`run_loaded`]). The app is called at 0xFFFF_8000_0000_0000 on the boot core;
//! when it returns its RAX is logged and the machine powers off like after any app. A
//! module missing or refused ends the app `baremetal` with `ApiError::Binary` (why): as
//! the boot's app that stops the boot as failed, started by another app (the monitor's
//! `run baremetal`) it is that app's answer and the caller goes on.
//! While BareMetal code runs on a core (the entry, a job), that core's timer interrupts
//! it every 5 ms ([`calls::run_code`]), so that a `hlt` waiting for input returns, as
//! BareMetal's timer and devices interrupt it (Rexo polls the serial line and the PS/2
//! keyboard, and arms the timer only for deadlines otherwise).

mod calls;
mod raw;
mod tests;

use core::ops::Range;
use core::sync::atomic::Ordering::{Acquire, Release};
use core::sync::atomic::{AtomicBool, AtomicU64};

use crate::arch::paging;
use crate::devices::run_app_code;
use crate::mem::frames;
use crate::mem::phys::IdentityMemory;
use rexo_api::BAREMETAL_AREA_MAX as AREA_MAX;
use rexo_physmem::PhysMemory;

pub use raw::{ENTRIES, TABLE, TABLE_PAGE};

/// Where BareMetal apps are linked and run.
pub const APP_BASE: u64 = 0xFFFF_8000_0000_0000;
/// Pages of the app area.
const MIB2: u64 = 2 << 20;
/// The app area (allocated on the first load) as the loader sees it.
static AREA: spin::Mutex<Option<&'static mut [u8]>> = spin::Mutex::new(None);
/// Bytes of the app area mapped at [`APP_BASE`] (0 before the first load).
static AREA_BYTES: AtomicU64 = AtomicU64::new(0);
/// Whether the app area holds a whole binary: cleared as a load starts overwriting it,
/// set when its copy is done (both under the area's lock).
static COMPLETE: AtomicBool = AtomicBool::new(false);

/// The first boot module's range, if there is one.
fn first_module() -> Option<Range<u64>> {
    (crate::boot_modules().first()).map(|module| module.start..module.end)
}

/// The virtual range BareMetal code may run in and use: [`APP_BASE`] plus the app area.
pub fn app_window() -> Range<u64> {
    APP_BASE..APP_BASE + app_window_bytes()
}

/// Bytes mapped at [`APP_BASE`].
fn app_window_bytes() -> u64 {
    AREA_BYTES.load(Acquire)
}

/// Why a BareMetal binary was refused: the API's error, so that the monitor and the
/// kernel's own app report the same messages.
pub use rexo_api::BinaryError as LoadError;

/// Checks that `image` can be a flat BareMetal binary of at most `capacity` bytes.
pub fn check_image(image: &[u8], capacity: u64) -> Result<(), LoadError> {
    if image.is_empty() {
        return Err(LoadError::Empty);
    }
    if image.starts_with(b"\x7fELF") {
        return Err(LoadError::NotFlat("ELF"));
    }
    if image.starts_with(b"MZ") {
        return Err(LoadError::NotFlat("PE (MZ header)"));
    }
    if image.len() as u64 > capacity {
        return Err(LoadError::TooLarge {
            size: image.len() as u64,
            capacity,
        });
    }
    Ok(())
}

/// The size of the app area for `free` free bytes.
fn area_size(free: u64) -> u64 {
    (free / 2).min(AREA_MAX) & !(MIB2 - 1)
}

/// Allocates and maps the app area on first use; returns the loader's view of it.
fn area() -> Result<spin::MutexGuard<'static, Option<&'static mut [u8]>>, LoadError> {
    let mut area = AREA.lock();
    if area.is_none() {
        let range = area_frames()?;
        if let Err(e) = paging::map_ram_at(APP_BASE, range.start(), range.len()) {
            log::warn!("baremetal: cannot map the app area: {e}");
            frames::free(range);
            return Err(LoadError::NoArea);
        }
        let (start, end) = (range.start(), range.end());
        log::debug!("baremetal: app area [{start:#x}, {end:#x}) at {APP_BASE:#x}");
        *area = Some(raw::take_area(range));
        AREA_BYTES.store(end - start, Release);
    }
    Ok(area)
}

/// Frames for the app area ([`area_size`] of the free memory, 2 MiB aligned), never the
/// kernel's reserve, which its heap grows into (`NoArea` if that leaves less than 2 MiB).
fn area_frames() -> Result<rexo_memmap::FrameRange, LoadError> {
    let size = area_size(frames::free_bytes());
    let reserved = frames::allocate_leaving(size, MIB2, crate::caps::KERNEL_RESERVE);
    reserved.map_err(|_| LoadError::NoArea)
}

/// Loads `binary`, or the first boot module when `None`, into the app area; returns its
/// size. Refused while cores run jobs of the loaded binary ([`calls::JOBS`]). Calls
/// `record(None)` before the area stops holding the binary loaded before, and
/// `record(Some(size))` once the copy is done, both under the area's lock, so that a
/// record never outlives the area's contents. The load is a kernel section (it holds the
/// load's state, the area's lock and, mapping the area, paging's), but for the copy from
/// the app's memory, which runs under an abort point of its own: if the memory is taken
/// from the app mid-copy (a fault), the area and the load are released first, then the
/// app ends.
pub fn load(binary: Option<&[u8]>, mut record: impl FnMut(Option<u64>)) -> Result<u64, LoadError> {
    let image = match binary {
        Some(image) => image,
        None => {
            let module = first_module().ok_or(LoadError::NoModule)?;
            let len = (module.end - module.start) as usize;
            PhysMemory::read(&IdentityMemory, module.start, len).ok_or(LoadError::Empty)?
        }
    };
    check_image(image, AREA_MAX)?;
    let load = || {
        let mut guard = area()?;
        let area = guard.as_mut().ok_or(LoadError::NoArea)?;
        check_image(image, area.len() as u64)?;
        record(None);
        COMPLETE.store(false, Release);
        area.fill(0);
        let copy = &mut || area[..image.len()].copy_from_slice(image);
        let aborted = run_app_code(copy);
        if !aborted {
            record(Some(image.len() as u64));
            COMPLETE.store(true, Release);
        }
        Ok((image.len() as u64, aborted))
    };
    let (size, copy_aborted) = crate::arch::abort::kernel_section(|| calls::JOBS.load(load))?;
    if copy_aborted {
        crate::arch::abort::abort_current();
    }
    Ok(size)
}

/// The built-in app `baremetal`: loads the boot module and runs it on this core with the
/// call table (`Kernel::load_baremetal` and `exec_baremetal`, which its app-table entry
/// grants it) and reports its RAX. A missing or refused module is its error,
/// `ApiError::Binary`: the app that started it goes on (the monitor's `run` prints it),
/// and as the boot's app (`app=baremetal`) it stops the boot (exit status "failure").
pub fn app(kernel: &rexo_api::Kernel) -> Result<(), rexo_api::ApiError> {
    let rax = kernel
        .load_baremetal(None)
        .and_then(|_| kernel.exec_baremetal());
    let rax = rax.map_err(rexo_api::ApiError::Binary)?;
    log::info!("baremetal: the app returned rax={rax:#x}");
    Ok(())
}

/// Runs what [`load`] put in the app area on the calling core, with the call table
/// installed, and returns its RAX; `Loading` while a load runs (loads wait for it:
/// [`calls::JOBS`]), `NotLoaded` unless the area holds a whole binary (checked once no
/// load can start: a load that began after the caller looked, and was aborted mid-copy,
/// left half a binary). The binary runs under an abort point of its own: if the app is
/// ended in it (a panic in a call, memory taken from it by force), the run is no longer
/// counted and the devices its abandoned calls held are released, then the app ends.
pub fn run_loaded() -> Result<u64, LoadError> {
    raw::install_table();
    let run = || COMPLETE.load(Acquire).then(|| calls::run_code(APP_BASE));
    let main = calls::JOBS.run_main(crate::arch::percpu::core_index(), APP_BASE, run);
    let Some(rax) = main?.ok_or(LoadError::NotLoaded)? else {
        crate::arch::abort::abort_current();
    };
    Ok(rax)
}
