//! The BareMetal calls themselves, on the registers the entry stub saved. See the
//! module documentation of [`super`] for what each call does here.

use core::sync::atomic::Ordering;

use super::raw::{self, Regs};
use crate::arch::cpu;
use crate::arch::percpu::{self, MAX_CORES};
use rexo_drivers::baremetal::{FRAME_BYTES, HexBytes, Jobs, Keys, ReceiveBuffers, Transfer};
use rexo_drivers::baremetal::{Unprovided, pci_address};

/// What `b_system` returns for an unknown function or a bad argument: all ones.
pub const ERROR: u64 = u64::MAX;
/// What `b_smp_set` (0x12) returns when it was refused (busy core or not the app's, code
/// outside the app, not 16-byte aligned, queue full, a load running); else its RAX.
pub const SMP_SET_FAILED: u64 = 0;

/// Each core's BareMetal job, and the loads that must not run under them.
pub static JOBS: Jobs<MAX_CORES> = Jobs::new();
/// Each core's buffer `b_net_rx` leaves frames in (RDI).
static RECEIVED: ReceiveBuffers<MAX_CORES> = ReceiveBuffers::new();
/// The keys `b_input` makes of the console's bytes (one Enter for a CR LF).
static KEYS: Keys = Keys::new();
/// The `b_system` functions not provided that a program called (each warned of once).
static UNPROVIDED: Unprovided = Unprovided::new();
/// The period of the timer interrupt of a core that runs BareMetal code: its `hlt`
/// returns within it.
const TICK_NS: u64 = 5_000_000;

/// Runs the call `regs.call` on the registers of the calling app.
pub fn dispatch(regs: &mut Regs) {
    match regs.call {
        0 => regs.rax = regs.rax & !0xFF | u64::from(KEYS.next(crate::console::read_byte)),
        1 => output(regs.rsi, regs.rcx),
        2 if regs.rcx > FRAME_BYTES as u64 => log::warn!(
            "baremetal: b_net_tx: a {}-byte frame is longer than BareMetal's {FRAME_BYTES}, nothing sent",
            regs.rcx
        ),
        2 => match raw::app_bytes(regs.rsi, regs.rcx) {
            Some(frame) => _ = registry().baremetal_transmit(regs.rdx, frame),
            None => log::warn!("baremetal: b_net_tx: frame buffer not mapped, nothing sent"),
        },
        3 => (regs.rdi, regs.rcx) = registry().baremetal_receive(regs.rdx, &RECEIVED),
        4 | 5 => regs.rcx = storage(regs),
        _ => regs.rax = system(regs.rcx, regs.rax, regs.rdx),
    }
}

/// The bound devices.
pub(super) fn registry() -> &'static rexo_drivers::Registry {
    crate::devices::machine().registry()
}

/// `b_nvs_read` (call 4) or `b_nvs_write` (5): RCX 4096-byte sectors from sector RAX of
/// drive RDX, into RDI or from RSI; the sectors done.
fn storage(regs: &Regs) -> u64 {
    let buffer = |offset: u64, bytes| match regs.call {
        4 => raw::app_bytes_mut(regs.rdi.wrapping_add(offset), bytes).map(Transfer::Read),
        _ => raw::app_bytes(regs.rsi.wrapping_add(offset), bytes).map(Transfer::Write),
    };
    registry().baremetal_storage(regs.rdx as usize, regs.rax, regs.rcx, buffer)
}

/// `b_output`: `count` bytes at `text` to the consoles, in pieces of at most
/// [`raw::MAX_ACCESS`] (unchanged on the serial line but `\n` sent as `\r\n`, invalid UTF-8 as U+FFFD on the
/// framebuffer); an unmapped piece ends it, with a warning.
fn output(text: u64, count: u64) {
    let mut done = 0;
    while done < count {
        let piece = (count - done).min(raw::MAX_ACCESS);
        let Some(bytes) = raw::app_bytes(text.wrapping_add(done), piece) else {
            let first = text.wrapping_add(done);
            log::warn!(
                "baremetal: b_output: {count} bytes at {text:#x}: {done} printed, not mapped from {first:#x}"
            );
            return;
        };
        crate::console::write_bytes(bytes);
        done += piece;
    }
}

/// `b_system`: function `function` with arguments `rax` and `rdx`.
pub fn system(function: u64, rax: u64, rdx: u64) -> u64 {
    match function {
        0x00 => crate::time::now_ns(),
        0x01 => super::app_window_bytes() >> 20,
        0x10 => u64::from(percpu::current().apic_id.load(Ordering::Relaxed)),
        0x11 => app_cores().len() as u64,
        0x12 => smp_set(rax, rdx),
        0x13 => JOBS.slot(percpu::core_index()),
        0x14 => raw::lock_byte(rax).map_or(ERROR, |lock| {
            raw::spin_lock(lock);
            rax
        }),
        0x15 => raw::lock_byte(rax).map_or(ERROR, |lock| {
            lock.fetch_and(!1, Ordering::Release);
            rax
        }),
        0x16 => u64::from(JOBS.busy_besides(percpu::core_index())),
        0x1F => cpu::rdtsc(),
        0x20..=0x24 => screen(function),
        0x30 => registry().baremetal_mac(rdx),
        0x50 => pci_address(rdx).map_or(ERROR, |address| {
            u64::from(crate::devices::machine().bus().read_legacy(address))
        }),
        0x51 => match (pci_address(rdx), u32::try_from(rax)) {
            (Some(address), Ok(value)) => {
                crate::devices::machine().bus().write_legacy(address, value);
                rax
            }
            _ => ERROR,
        },
        // Callbacks (timer, network, keyboard): a bare `ret` on BareMetal. And reset, which
        // resets every core there, the caller's too.
        0x60..=0x62 | 0x7D => rax,
        0x70 => dump_memory(rax, rdx),
        0x71 => {
            crate::kprint!("{rax:016X}");
            rax
        }
        0x72 => {
            crate::time::delay_us(rax);
            rax
        }
        0x7E => crate::power::reboot(),
        0x7F => {
            let why = crate::power::power_off();
            log::warn!("baremetal: cannot power off ({why})");
            ERROR
        }
        _ => {
            UNPROVIDED.warn(function);
            ERROR
        }
    }
}

/// Runs BareMetal code at `entry` on this core as the app's code
/// ([`crate::devices::run_app_code`]: an abort point of its own inside the app's), the
/// core's timer firing every [`TICK_NS`] meanwhile, as its `hlt` waits for an interrupt.
/// Returns its RAX, or `None` if the app was ended in it, once the devices its abandoned
/// calls held are released: the caller then ends it at its own abort point
/// (`abort_current`), which takes the reason the app was ended.
pub fn run_code(entry: u64) -> Option<u64> {
    let mut rax = 0;
    crate::time::set_tick(TICK_NS);
    let aborted = crate::devices::run_app_code(&mut || rax = raw::call_app(entry));
    crate::time::set_tick(u64::MAX);
    if aborted {
        registry().baremetal_release_abandoned();
    }
    (!aborted).then_some(rax)
}

/// The cores BareMetal code may use: the calling app's, every core when no app runs.
fn app_cores() -> core::ops::Range<usize> {
    crate::apps::current().map_or(0..crate::smp_cores(), |run| run.cores.range())
}

/// The index of the app's core whose local APIC id is `apic_id`.
fn core_of_apic(apic_id: u64) -> Option<usize> {
    app_cores()
        .find(|&core| u64::from(percpu::core(core).apic_id.load(Ordering::Relaxed)) == apic_id)
}

/// `b_smp_set`: runs the app code at `code` (16-byte aligned) on the app's core with
/// APIC id `apic_id`, as a task of that core's work loop ([`Jobs::start`]: refused while
/// that core has a BareMetal job or a load runs; the calling core is accepted and runs
/// nothing). The job runs as the calling app (the kernel when none) under an abort
/// point of its own: its calls see the app's cores, and a panic in one (or memory taken
/// from the app by force) ends the job alone, through that point.
/// Returns `code`, as BareMetal does, or [`SMP_SET_FAILED`].
fn smp_set(code: u64, apic_id: u64) -> u64 {
    let valid = code.is_multiple_of(16) && super::app_window().contains(&code);
    let app = crate::apps::current();
    let run = |core| {
        let job = move || {
            let kernel = || crate::apps::api_as(rexo_captable::OwnerId::KERNEL);
            let api = app.map_or_else(kernel, crate::apps::token);
            let ended = || crate::arch::abort::abort_current();
            crate::apps::run_as_abort_point(&api, || _ = run_code(code).unwrap_or_else(ended));
            JOBS.finish(core);
        };
        crate::sched::submit_to(core, job).is_ok()
    };
    match core_of_apic(apic_id) {
        Some(core) if valid && JOBS.start(core, percpu::core_index(), code, run) => code,
        _ => SMP_SET_FAILED,
    }
}

/// Framebuffer facts (0x20 address, 0x21 X, 0x22 Y, 0x23 pixels per line, 0x24 bits
/// per pixel), all 0 without a framebuffer.
fn screen(function: u64) -> u64 {
    let Some(fb) = crate::BOOT_STATE
        .get()
        .and_then(|state| state.boot.framebuffer)
    else {
        return 0;
    };
    let bytes_per_pixel = u64::from(fb.bpp).div_ceil(8).max(1);
    match function {
        0x20 => fb.addr,
        0x21 => u64::from(fb.width),
        0x22 => u64::from(fb.height),
        0x23 => u64::from(fb.pitch) / bytes_per_pixel,
        _ => u64::from(fb.bpp),
    }
}

/// `0x70`: prints `len` bytes from `addr` as hex, 16 per line. Returns `addr`, or [`ERROR`]
/// if the range is not accessible.
fn dump_memory(addr: u64, len: u64) -> u64 {
    let Some(bytes) = raw::app_bytes(addr, len) else {
        return ERROR;
    };
    for (i, line) in bytes.chunks(16).enumerate() {
        crate::kprintln!("{:016X}: {}", addr + 16 * i as u64, HexBytes(line));
    }
    addr
}
