//! The PS/2 keyboard behind the 8042 controller (ports 0x60/0x64), polled: scan code set 1
//! turned into the bytes a terminal would send (ASCII, `\r` for Enter, 0x7F for Backspace,
//! `ESC [ A`-style sequences for the arrow keys), so the console input looks the same from
//! the keyboard and from the serial line.

use crate::arch::cpu::inb;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

const DATA: u16 = 0x60;
const STATUS: u16 = 0x64;
const STATUS_OUTPUT_FULL: u8 = 1 << 0;
const STATUS_FROM_MOUSE: u8 = 1 << 5;

static SHIFT: AtomicBool = AtomicBool::new(false);
static CONTROL: AtomicBool = AtomicBool::new(false);
static EXTENDED: AtomicBool = AtomicBool::new(false);
/// Bytes of an escape sequence still to hand out (the arrow keys), last byte first.
static PENDING: [AtomicU8; 2] = [const { AtomicU8::new(0) }; 2];

/// Unshifted and shifted characters of scan codes 0x00-0x39 (0: no character).
const KEYS: [(u8, u8); 0x3A] = {
    let mut keys = [(0u8, 0u8); 0x3A];
    let rows: [(usize, &[u8], &[u8]); 4] = [
        (0x02, b"1234567890-=", b"!@#$%^&*()_+"),
        (0x10, b"qwertyuiop[]", b"QWERTYUIOP{}"),
        (0x1E, b"asdfghjkl;'`", b"ASDFGHJKL:\"~"),
        (0x2B, b"\\zxcvbnm,./", b"|ZXCVBNM<>?"),
    ];
    let mut r = 0;
    while r < rows.len() {
        let (first, plain, shifted) = rows[r];
        let mut i = 0;
        while i < plain.len() {
            keys[first + i] = (plain[i], shifted[i]);
            i += 1;
        }
        r += 1;
    }
    keys[0x01] = (0x1B, 0x1B); // Escape
    keys[0x0E] = (0x7F, 0x7F); // Backspace (as terminals send it)
    keys[0x0F] = (b'\t', b'\t');
    keys[0x1C] = (b'\r', b'\r'); // Enter
    keys[0x39] = (b' ', b' ');
    keys
};

/// Returns the next byte typed on the PS/2 keyboard, if any (never blocks). A machine
/// without an 8042 reads 0xFF from its status port and gives nothing.
pub fn try_read_byte() -> Option<u8> {
    for slot in PENDING.iter().rev() {
        let byte = slot.swap(0, Ordering::Relaxed);
        if byte != 0 {
            return Some(byte);
        }
    }
    loop {
        let status = inb(STATUS);
        if status == 0xFF || status & STATUS_OUTPUT_FULL == 0 {
            return None;
        }
        let code = inb(DATA);
        if status & STATUS_FROM_MOUSE != 0 {
            continue;
        }
        if let Some(byte) = translate(code) {
            return Some(byte);
        }
    }
}

/// Turns one scan code into a byte, tracking Shift, Control and the 0xE0 prefix.
fn translate(code: u8) -> Option<u8> {
    if code == 0xE0 {
        EXTENDED.store(true, Ordering::Relaxed);
        return None;
    }
    let extended = EXTENDED.swap(false, Ordering::Relaxed);
    let released = code & 0x80 != 0;
    let key = code & 0x7F;
    match key {
        0x2A | 0x36 => {
            SHIFT.store(!released, Ordering::Relaxed);
            return None;
        }
        0x1D => {
            CONTROL.store(!released, Ordering::Relaxed);
            return None;
        }
        _ if released => return None,
        _ => {}
    }
    if extended {
        let arrow = match key {
            0x48 => b'A',
            0x50 => b'B',
            0x4D => b'C',
            0x4B => b'D',
            _ => return None,
        };
        // ESC [ X: hand out '[' and X on the next two calls.
        PENDING[1].store(b'[', Ordering::Relaxed);
        PENDING[0].store(arrow, Ordering::Relaxed);
        return Some(0x1B);
    }
    let (plain, shifted) = *KEYS.get(usize::from(key))?;
    let byte = if SHIFT.load(Ordering::Relaxed) {
        shifted
    } else {
        plain
    };
    match byte {
        0 => None,
        b'a'..=b'z' if CONTROL.load(Ordering::Relaxed) => Some(byte - b'a' + 1),
        _ => Some(byte),
    }
}
