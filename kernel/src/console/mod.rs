//! The kernel consoles: COM1 from the first instruction of Rust, and a framebuffer text
//! console once the boot loader handed over a framebuffer. Output from all cores goes
//! through one lock so that lines never interleave.

#![allow(unsafe_code)] // releasing the console locks of a writer that was aborted

pub mod framebuffer;
pub mod keyboard;
pub mod serial;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering, Ordering::SeqCst};
use spin::Mutex;

/// Guards both consoles; holds nothing, it only serialises writers.
static CONSOLE_LOCK: Mutex<()> = Mutex::new(());
/// The core that holds `CONSOLE_LOCK` (`usize::MAX`: none).
static HOLDER: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The core writing a crash report (`usize::MAX`: none): from then on only it writes,
/// without the lock (the core that held it may be the one that crashed); any other core
/// that comes to write stops there.
static CRASHING: AtomicUsize = AtomicUsize::new(usize::MAX);

struct Consoles;

impl Write for Consoles {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        serial::write_bytes(s.as_bytes());
        framebuffer::write_str(s);
        Ok(())
    }
}

/// Writes formatted text to every console, atomically with respect to other cores.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    // Only kernel `Display` code runs in here: an app's log line and panic message are
    // formatted before (`apps`, `crash::app_panic`, `rexo-logline`).
    write_with(|consoles| consoles.write_fmt(args));
}

/// Writes `text` to every console as [`write_fmt`] does, without `core::fmt` (the
/// ready line: under emulation the formatting code costs its translation the first time
/// it runs; an app's text, a piece of `rexo_logline::TEXT_PIECE_BYTES` at a time).
pub fn write_str(text: &str) {
    write_with(|consoles| consoles.write_str(text));
}

/// Writes `bytes` to every console as [`write_fmt`] does (BareMetal's `b_output`):
/// unchanged on the serial line (but `\n` sent as `\r\n`), as text on the framebuffer
/// (each invalid UTF-8 sequence as U+FFFD).
pub fn write_bytes(bytes: &[u8]) {
    write_with(|_| {
        serial::write_bytes(bytes);
        framebuffer::write_lossy(bytes);
        Ok(())
    });
}

fn write_with(write: impl FnOnce(&mut Consoles) -> fmt::Result) {
    let core = crate::arch::percpu::core_index();
    let crashing = crashing_core();
    if crashing.is_some_and(|crashing| crashing != core) {
        // Another core's crash report: this core writes nothing more and stops, as the
        // report's NMI stops it (its text would land inside the report).
        crate::crash::stopped_by_other_core();
    }
    // The crash report, or a line written from inside this core's own line (which would
    // wait for itself forever): no lock.
    if crashing.is_some() || HOLDER.load(Ordering::Relaxed) == core {
        let _ = write(&mut Consoles);
        return;
    }
    let _guard = CONSOLE_LOCK.lock();
    HOLDER.store(core, Ordering::Relaxed);
    let _ = write(&mut Consoles);
    HOLDER.store(usize::MAX, Ordering::Relaxed);
}

/// Whether no core is writing right now (so code that interrupted this core may log
/// without waiting for itself).
pub fn is_free() -> bool {
    !CONSOLE_LOCK.is_locked()
}

/// Releases the console lock if this core holds it, and the framebuffer console's own
/// lock with it (the abandoned writer may have been drawing): called when the code that
/// was writing was abandoned. An app's `Display` code runs before the lock is taken; only
/// a fault while the console reads an app's text (a `&str` in memory taken back from it,
/// `apps::on_page_fault`) abandons a writer that holds it.
pub fn release_after_abort() {
    if HOLDER.load(Ordering::Relaxed) == crate::arch::percpu::core_index() {
        if framebuffer::CONSOLE.is_locked() && crashing_core().is_none() {
            // SAFETY: while this core holds the console lock, and no crash report writes
            // without it, only this core's writers (the abandoned one, or a line nested in
            // it) can hold the framebuffer console, and none of them runs again. It is
            // released before the console lock, so no other core's writer holds it yet.
            unsafe { framebuffer::CONSOLE.force_unlock() };
        }
        HOLDER.store(usize::MAX, Ordering::Relaxed);
        // SAFETY: this core holds the lock and the writer that took it will never run
        // again (its frames were abandoned), so nothing else releases or uses the guard.
        unsafe { CONSOLE_LOCK.force_unlock() };
    }
}

/// Takes the consoles over for a crash report and returns whether this core is the first
/// to crash (a second crashing core stays silent; [`crashing_core`] tells it which was).
pub fn begin_crash_report() -> bool {
    let core = crate::arch::percpu::core_index();
    CRASHING.compare_exchange(usize::MAX, core, SeqCst, SeqCst) == Ok(usize::MAX)
}

/// The core writing a crash report, if one is being written.
pub fn crashing_core() -> Option<usize> {
    Some(CRASHING.load(SeqCst)).filter(|&core| core != usize::MAX)
}

/// The next byte of console input, from the serial line or the PS/2 keyboard (never blocks).
pub fn read_byte() -> Option<u8> {
    serial::try_read_byte().or_else(keyboard::try_read_byte)
}

/// Prints to every console, like `print!`.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints a line to every console, like `println!`.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
