//! The kernel consoles: COM1 from the first instruction of Rust, and a framebuffer text
//! console once the boot loader handed over a framebuffer. Output from all cores goes
//! through one lock so that lines never interleave.

pub mod framebuffer;
pub mod keyboard;
pub mod serial;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;

/// Guards both consoles; holds nothing, it only serialises writers.
static CONSOLE_LOCK: Mutex<()> = Mutex::new(());
/// Set once a crash report starts: from then on only the crashing core writes, without
/// the lock (the core that held it may be the one that crashed).
static CRASHING: AtomicBool = AtomicBool::new(false);

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
    if CRASHING.load(Ordering::Relaxed) {
        let _ = Consoles.write_fmt(args);
        return;
    }
    let _guard = CONSOLE_LOCK.lock();
    let _ = Consoles.write_fmt(args);
}

/// Takes the consoles over for a crash report and returns whether this core is the first
/// to crash (a second crashing core stays silent).
pub fn begin_crash_report() -> bool {
    !CRASHING.swap(true, Ordering::AcqRel)
}

/// The next byte of console input, from the serial line or the PS/2 keyboard (never blocks).
pub fn read_byte() -> Option<u8> {
    serial::try_read_byte().or_else(keyboard::try_read_byte)
}

/// Whether a crash report is being written.
pub fn crash_in_progress() -> bool {
    CRASHING.load(Ordering::Relaxed)
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
