//! The PS/2 keyboard's scan codes (set 1) as the bytes a terminal would send, the same
//! as the USB keyboard's for the same key: each scan code is turned into its key's HID
//! usage and typed through [`key_bytes`], which `rexo-xhci` types boot reports with (US
//! layout with Shift, Caps Lock and Control; `\r` for Enter, 0x7F for Backspace, `ESC [ A`
//! for the up arrow, `ESC [ 3 ~` for Delete, `ESC [ 5 ~` for Page Up; the keypad as with
//! Num Lock on). The kernel
//! hands [`Decoder::poll`] its port read; the 8042's polling, at most [`POLL_CODES`] codes
//! a call, and the translation are here, where the host tests reach them.

#![cfg_attr(target_os = "none", no_std)]

mod keys;

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

pub use keys::{
    CAPS_LOCK, LEFT_CONTROL, LEFT_SHIFT, LONGEST_KEY, RIGHT_CONTROL, RIGHT_SHIFT, key_bytes,
};

/// The HID usage of each set 1 scan code below 0x54 without the 0xE0 prefix (0: a key
/// this decoder does not name: a modifier, Alt, a function key, Num and Scroll Lock).
const USAGES: [u8; 0x54] = {
    let mut usages = [0u8; 0x54];
    // Each row: its first scan code, then the usages of it and the codes after it.
    let rows: [(usize, &[u8]); 14] = [
        // Escape.
        (0x01, &[0x29]),
        // 1 to 0.
        (
            0x02,
            &[0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27],
        ),
        // - = Backspace Tab.
        (0x0C, &[0x2D, 0x2E, 0x2A, 0x2B]),
        // Q W E R T Y U I O P.
        (
            0x10,
            &[0x14, 0x1A, 0x08, 0x15, 0x17, 0x1C, 0x18, 0x0C, 0x12, 0x13],
        ),
        // [ ] Enter.
        (0x1A, &[0x2F, 0x30, 0x28]),
        // A S D F G H J K L.
        (
            0x1E,
            &[0x04, 0x16, 0x07, 0x09, 0x0A, 0x0B, 0x0D, 0x0E, 0x0F],
        ),
        // ; ' `.
        (0x27, &[0x33, 0x34, 0x35]),
        // \.
        (0x2B, &[0x31]),
        // Z X C V B N M.
        (0x2C, &[0x1D, 0x1B, 0x06, 0x19, 0x05, 0x11, 0x10]),
        // , . /.
        (0x33, &[0x36, 0x37, 0x38]),
        // The keypad's *.
        (0x37, &[0x55]),
        // Space, Caps Lock.
        (0x39, &[0x2C, CAPS_LOCK]),
        // The keypad's 7 8 9 - 4 5 6.
        (0x47, &[0x5F, 0x60, 0x61, 0x56, 0x5C, 0x5D, 0x5E]),
        // The keypad's + 1 2 3 0 . (Num Lock taken as on, as on the USB keyboard).
        (0x4E, &[0x57, 0x59, 0x5A, 0x5B, 0x62, 0x63]),
    ];
    let mut r = 0;
    while r < rows.len() {
        let (first, row) = rows[r];
        let mut i = 0;
        while i < row.len() {
            usages[first + i] = row[i];
            i += 1;
        }
        r += 1;
    }
    usages
};

/// The HID usage of set 1 scan code `key` (its release bit cleared), after the 0xE0
/// prefix when `extended`; `None` for a key that types nothing here. The grey keys' fake
/// shifts (E0 2A, E0 36) have none: they are not Shift.
fn usage(extended: bool, key: u8) -> Option<u8> {
    let usage = if extended {
        match key {
            0x1C => 0x58, // the keypad's Enter
            0x35 => 0x54, // the keypad's /
            0x47 => 0x4A, // Home
            0x48 => 0x52, // Up
            0x49 => 0x4B, // Page Up
            0x4B => 0x50, // Left
            0x4D => 0x4F, // Right
            0x4F => 0x4D, // End
            0x50 => 0x51, // Down
            0x51 => 0x4E, // Page Down
            0x52 => 0x49, // Insert
            0x53 => 0x4C, // Delete
            _ => 0,
        }
    } else {
        USAGES.get(usize::from(key)).copied().unwrap_or(0)
    };
    (usage != 0).then_some(usage)
}

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

/// The keyboard's state between scan codes: each Shift and Control key held (left and
/// right apart, so that releasing one leaves the other's hold), Caps Lock on or off and
/// its key held, a 0xE0 prefix seen, and the rest of a key's escape sequence. Atomics, so
/// that a `static` one serves every core that polls the keyboard without a lock.
pub struct Decoder {
    /// The modifier keys held, as a boot report's bits: [`LEFT_SHIFT`], [`RIGHT_SHIFT`],
    /// [`LEFT_CONTROL`], [`RIGHT_CONTROL`].
    modifiers: AtomicU8,
    /// Caps Lock is on.
    caps_lock: AtomicBool,
    /// Caps Lock's key is down: the keyboard repeats its press while it is held
    /// (typematic), and only the first press turns Caps Lock over, as the USB
    /// keyboard's held key does.
    caps_lock_held: AtomicBool,
    extended: AtomicBool,
    /// Bytes of an escape sequence still to hand out, last byte first (0: none).
    pending: [AtomicU8; LONGEST_KEY - 1],
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A keyboard with no key held and Caps Lock off.
    pub const fn new() -> Self {
        Self {
            modifiers: AtomicU8::new(0),
            caps_lock: AtomicBool::new(false),
            caps_lock_held: AtomicBool::new(false),
            extended: AtomicBool::new(false),
            pending: [const { AtomicU8::new(0) }; LONGEST_KEY - 1],
        }
    }

    /// The next byte of a key's escape sequence still to hand out, if any (taken: read
    /// it before the next scan code).
    pub fn pending(&self) -> Option<u8> {
        let take = |slot: &AtomicU8| slot.swap(0, Ordering::Relaxed);
        self.pending.iter().rev().map(take).find(|&byte| byte != 0)
    }

    /// The next byte typed, if any (never blocks): an escape sequence's byte still
    /// pending, else the 8042's codes read through `read_port` (a port's byte: the kernel's `inb`),
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

    /// Turns one scan code into a byte, tracking Shift, Control, Caps Lock and the 0xE0
    /// prefix; `None` for a prefix, a modifier, Caps Lock, a release and a key with no
    /// byte. A key typing several bytes (an arrow's `ESC [ A`) gives the first, and
    /// [`Decoder::pending`] the others. The shifts a keyboard sends around its grey keys
    /// (E0 2A, E0 AA, E0 36, E0 B6) are not Shift: ignored.
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
        let usage = usage(extended, key)?;
        if usage == CAPS_LOCK {
            let was_held = self.caps_lock_held.swap(!released, Ordering::Relaxed);
            if !released && !was_held {
                self.caps_lock.fetch_xor(true, Ordering::Relaxed);
            }
            return None;
        }
        if released {
            return None;
        }
        let modifiers = self.modifiers.load(Ordering::Relaxed);
        let caps_lock = self.caps_lock.load(Ordering::Relaxed);
        let (&first, rest) = key_bytes(usage, modifiers, caps_lock).split_first()?;
        let rest_last_first = rest.iter().rev().copied().chain(core::iter::repeat(0));
        for (slot, byte) in self.pending.iter().zip(rest_last_first) {
            slot.store(byte, Ordering::Relaxed);
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests;
