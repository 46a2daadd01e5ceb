//! The framebuffer text console: the boot loader's linear framebuffer, drawn by
//! `rexo-fbconsole`. Absent when the loader gave no framebuffer (PVH, serial-only boots).
//! Its text cells live on the heap (made before the console), so that it scrolls without
//! reading video memory. Its window is mapped write-combining where the CPU has the PAT
//! (`paging::write_combine`): its stores are gathered into bursts, and each write ends
//! with a fence that drains them.

use crate::arch::paging::{self, Caching};
use rexo_bootinfo::Framebuffer;
use rexo_fbconsole::{Cell, Console, ConsoleError, Geometry, PixelFormat};
use spin::Mutex;

/// The console, if there is one (`pub(crate)` for the kernel tests that hold it).
pub(crate) static CONSOLE: Mutex<Option<Console<'static>>> = Mutex::new(None);

/// Starts the console on the loader's framebuffer. Returns a description for the log (its
/// columns, rows and how its window is mapped), or why the framebuffer cannot be used.
pub fn init(fb: &Framebuffer) -> Result<(u32, u32, Caching), &'static str> {
    let geometry = Geometry {
        width: fb.width,
        height: fb.height,
        pitch: fb.pitch,
        format: PixelFormat {
            bytes_per_pixel: fb.bpp.div_ceil(8),
            red_shift: fb.red_shift,
            red_bits: fb.red_bits,
            green_shift: fb.green_shift,
            green_bits: fb.green_bits,
            blue_shift: fb.blue_shift,
            blue_bits: fb.blue_bits,
        },
    };
    let bytes = u64::from(fb.pitch) * u64::from(fb.height);
    let unsupported = |_: ConsoleError| "framebuffer geometry not supported";
    geometry.validate(bytes as usize).map_err(unsupported)?;
    let mut cells = alloc::vec::Vec::new();
    (cells.try_reserve_exact(geometry.cells())).map_err(|_| "no memory for its text cells")?;
    cells.resize(geometry.cells(), Cell::default());
    let map = crate::mem::memory_map().ok_or("no memory map yet")?;
    let memory = crate::mem::phys::claim_device(fb.addr, bytes, map)
        .map_err(|_| "framebuffer memory cannot be claimed")?;
    let caching = paging::write_combine(fb.addr..fb.addr + bytes);
    let mut console = Console::new(memory, cells.leak(), geometry).map_err(unsupported)?;
    console.clear();
    let size = (console.columns(), console.rows(), caching);
    *CONSOLE.lock() = Some(console);
    Ok(size)
}

/// Draws text on the framebuffer console, if there is one and it is free. Writers hold
/// the console lock, so it is held only by a writer without that lock (a crash report,
/// a line nested in this core's own) racing a core the crash stopped in here, or by this
/// core's own interrupted line: that text is skipped, and serial alone gets it. The text
/// is on the screen when it returns: write-combined stores are drained (SFENCE), or the
/// last line before a halt or an idle core's sleep could wait in the buffers.
pub fn write_str(s: &str) {
    if let Some(Some(console)) = CONSOLE.try_lock().as_deref_mut() {
        console.write_str(s);
        crate::arch::cpu::store_fence();
    }
}

/// [`write_str`] for bytes, each invalid UTF-8 sequence drawn as U+FFFD.
pub fn write_lossy(bytes: &[u8]) {
    if let Some(Some(console)) = CONSOLE.try_lock().as_deref_mut() {
        console.write_lossy(bytes);
        crate::arch::cpu::store_fence();
    }
}
