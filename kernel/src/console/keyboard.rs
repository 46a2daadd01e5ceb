//! The PS/2 keyboard behind the 8042 controller (ports 0x60/0x64), polled: scan code set 1
//! turned into the bytes a terminal would send (`rexo-scancode`: ASCII, `\r` for Enter,
//! 0x7F for Backspace, `ESC [ A`-style sequences for the cursor keys; the USB keyboard's
//! bytes for the same key, from the same table), so the console input looks the same from
//! the keyboard, a USB one and the serial line.

use crate::arch::cpu::inb;

/// Shift, Control, Caps Lock, the 0xE0 prefix and a key's escape sequence still to hand out.
static DECODER: rexo_scancode::Decoder = rexo_scancode::Decoder::new();

/// Returns the next byte typed on the PS/2 keyboard, if any (never blocks: at most
/// `rexo_scancode::POLL_CODES` codes are read). A machine without an 8042 reads 0xFF from
/// its status port and gives nothing.
pub fn try_read_byte() -> Option<u8> {
    DECODER.poll(inb)
}
