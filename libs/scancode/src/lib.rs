//! The PS/2 keyboard's scan codes (set 1) as the bytes a terminal would send: ASCII, `\r`
//! for Enter, 0x7F for Backspace, `ESC [ A`-style sequences for the arrow keys, Control
//! with a letter or one of `@[\]^_` (Shift or not) as its control character. The kernel
//! hands [`Decoder::poll`] its port read; the 8042's polling, at most [`POLL_CODES`] codes
//! a call, and the translation are here, where the host tests reach them.

#![cfg_attr(target_os = "none", no_std)]

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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

/// The 8042's data port: the next scan code (or mouse byte).
const DATA_PORT: u16 = 0x60;
/// The 8042's status port.
const STATUS_PORT: u16 = 0x64;
/// Status: a byte waits in the data port.
const STATUS_OUTPUT_FULL: u8 = 1 << 0;
/// Status: the waiting byte is the mouse's.
const STATUS_FROM_MOUSE: u8 = 1 << 5;

/// The most codes one [`Decoder::poll`] reads (Linux's `I8042_BUFFER_SIZE`): a status
/// port that never reads empty (a legacy-free board's, or a stuck controller) costs a
/// poll 16 reads, not the core.
pub const POLL_CODES: usize = 16;

/// Left Shift held (bit of [`Decoder`]'s modifiers).
const LEFT_SHIFT: u8 = 1 << 0;
/// Right Shift held.
const RIGHT_SHIFT: u8 = 1 << 1;
/// Left Control held.
const LEFT_CONTROL: u8 = 1 << 2;
/// Right Control (E0 1D) held.
const RIGHT_CONTROL: u8 = 1 << 3;

/// What Control turns a typed `byte` into: its control character for `@` to `_` and the
/// lower-case letters (`^C` 0x03 for `c` and `C`, ESC for `[`, NUL for `@`), as terminals
/// send it; any other byte is unchanged. The PS/2 and the USB keyboards share it.
pub const fn with_control(byte: u8) -> u8 {
    match byte {
        b'a'..=b'z' | b'@'..=b'_' => byte & 0x1F,
        _ => byte,
    }
}

/// The keyboard's state between scan codes: each Shift and Control key held (left and
/// right apart, so that releasing one leaves the other's hold), a 0xE0 prefix seen, and
/// the rest of an arrow key's escape sequence. Atomics, so that a `static` one serves
/// every core that polls the keyboard without a lock.
pub struct Decoder {
    /// The modifier keys held: [`LEFT_SHIFT`], [`RIGHT_SHIFT`], [`LEFT_CONTROL`],
    /// [`RIGHT_CONTROL`].
    modifiers: AtomicU8,
    extended: AtomicBool,
    /// Bytes of an escape sequence still to hand out, last byte first (0: none).
    pending: [AtomicU8; 2],
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A keyboard with no key held.
    pub const fn new() -> Self {
        Self {
            modifiers: AtomicU8::new(0),
            extended: AtomicBool::new(false),
            pending: [const { AtomicU8::new(0) }; 2],
        }
    }

    /// The next byte of an arrow key's escape sequence still to hand out, if any (taken:
    /// read it before the next scan code).
    pub fn pending(&self) -> Option<u8> {
        let take = |slot: &AtomicU8| slot.swap(0, Ordering::Relaxed);
        self.pending.iter().rev().map(take).find(|&byte| byte != 0)
    }

    /// The next byte typed, if any (never blocks): an arrow key's byte still pending,
    /// else the 8042's codes read through `read_port` (a port's byte: the kernel's `inb`),
    /// the mouse's skipped, until one gives a byte, the status says empty (or reads 0xFF:
    /// no 8042 behind the port), or [`POLL_CODES`] were read.
    pub fn poll(&self, mut read_port: impl FnMut(u16) -> u8) -> Option<u8> {
        if let Some(byte) = self.pending() {
            return Some(byte);
        }
        for _ in 0..POLL_CODES {
            let status = read_port(STATUS_PORT);
            if status == 0xFF || status & STATUS_OUTPUT_FULL == 0 {
                return None;
            }
            let code = read_port(DATA_PORT);
            if status & STATUS_FROM_MOUSE == 0
                && let Some(byte) = self.translate(code)
            {
                return Some(byte);
            }
        }
        None
    }

    /// Turns one scan code into a byte, tracking Shift, Control and the 0xE0 prefix;
    /// `None` for a prefix, a modifier, a release and a key with no byte. An arrow key
    /// gives ESC, and [`Decoder::pending`] then `[` and its letter. The shifts a keyboard
    /// sends around its grey keys (E0 2A, E0 AA, E0 36, E0 B6) are not Shift: ignored.
    pub fn translate(&self, code: u8) -> Option<u8> {
        if code == 0xE0 {
            self.extended.store(true, Ordering::Relaxed);
            return None;
        }
        let extended = self.extended.swap(false, Ordering::Relaxed);
        let released = code & 0x80 != 0;
        let key = code & 0x7F;
        let modifier = match (extended, key) {
            (false, 0x2A) => LEFT_SHIFT,
            (false, 0x36) => RIGHT_SHIFT,
            (false, 0x1D) => LEFT_CONTROL,
            (true, 0x1D) => RIGHT_CONTROL,
            (true, 0x2A | 0x36) => return None,
            _ if released => return None,
            _ => 0,
        };
        if modifier != 0 {
            if released {
                self.modifiers.fetch_and(!modifier, Ordering::Relaxed);
            } else {
                self.modifiers.fetch_or(modifier, Ordering::Relaxed);
            }
            return None;
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
            self.pending[1].store(b'[', Ordering::Relaxed);
            self.pending[0].store(arrow, Ordering::Relaxed);
            return Some(0x1B);
        }
        let (plain, shifted) = *KEYS.get(usize::from(key))?;
        let modifiers = self.modifiers.load(Ordering::Relaxed);
        let byte = if modifiers & (LEFT_SHIFT | RIGHT_SHIFT) != 0 {
            shifted
        } else {
            plain
        };
        match byte {
            0 => None,
            _ if modifiers & (LEFT_CONTROL | RIGHT_CONTROL) != 0 => Some(with_control(byte)),
            _ => Some(byte),
        }
    }
}

#[cfg(test)]
mod tests;
