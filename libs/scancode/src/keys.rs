//! A key's bytes, whichever keyboard typed it: keys are named by their HID usage IDs
//! (HID Usage Tables, Keyboard/Keypad page 0x07), modifiers by the bits of a boot
//! report's byte 0 (HID 1.11 B.1). The USB keyboard's reports name keys so already; the
//! PS/2 decoder turns scan codes into them. One table for both, so that a key types the
//! same bytes from either.

/// Left Control (a bit of a boot report's modifier byte).
pub const LEFT_CONTROL: u8 = 0x01;
/// Left Shift.
pub const LEFT_SHIFT: u8 = 0x02;
/// Right Control.
pub const RIGHT_CONTROL: u8 = 0x10;
/// Right Shift.
pub const RIGHT_SHIFT: u8 = 0x20;
/// Either Control.
const CONTROL: u8 = LEFT_CONTROL | RIGHT_CONTROL;
/// Either Shift.
const SHIFT: u8 = LEFT_SHIFT | RIGHT_SHIFT;

/// Caps Lock's usage: it types nothing, each press turns Caps Lock on or off.
pub const CAPS_LOCK: u8 = 0x39;

/// The escape byte that starts the cursor keys' sequences.
const ESC: u8 = 0x1B;

/// The most bytes a key types (`ESC [ 3 ~`).
pub const LONGEST_KEY: usize = 4;

/// What Control turns a typed `byte` into: its control character for `@` to `_` and the
/// lower-case letters (`^C` 0x03 for `c` and `C`, ESC for `[`, NUL for `@`), as terminals
/// send it; any other byte is unchanged.
const fn with_control(byte: u8) -> u8 {
    match byte {
        b'a'..=b'z' | b'@'..=b'_' => byte & 0x1F,
        _ => byte,
    }
}

/// The bytes for pressing key `usage` with `modifiers` down and Caps Lock `caps_lock`,
/// as a terminal (xterm) sends them: US layout with Shift, Caps Lock (which Shift
/// inverts for letters) and Control; `\r` for Enter, 0x7F for Backspace; `ESC [ A`/`B`/
/// `C`/`D` for the arrows, `ESC [ H` Home, `ESC [ F` End, `ESC [ 2 ~` Insert, `ESC [ 3 ~`
/// Delete, `ESC [ 5 ~` Page Up, `ESC [ 6 ~` Page Down; the keypad's keys as with Num Lock
/// on, whatever its state (digits and `.`, `/*-+`, Enter `\r`). Nothing for keys that
/// type nothing (Caps Lock itself, the function keys, the modifiers).
pub fn key_bytes(usage: u8, modifiers: u8, caps_lock: bool) -> &'static [u8] {
    let sequence: Option<&'static [u8]> = match usage {
        0x4F => Some(&[ESC, b'[', b'C']),
        0x50 => Some(&[ESC, b'[', b'D']),
        0x51 => Some(&[ESC, b'[', b'B']),
        0x52 => Some(&[ESC, b'[', b'A']),
        0x4A => Some(&[ESC, b'[', b'H']),
        0x4D => Some(&[ESC, b'[', b'F']),
        0x49 => Some(&[ESC, b'[', b'2', b'~']),
        0x4C => Some(&[ESC, b'[', b'3', b'~']),
        0x4B => Some(&[ESC, b'[', b'5', b'~']),
        0x4E => Some(&[ESC, b'[', b'6', b'~']),
        _ => None,
    };
    if let Some(sequence) = sequence {
        return sequence;
    }
    let Some(mut byte) = character(usage, modifiers & SHIFT != 0) else {
        return &[];
    };
    if byte.is_ascii_alphabetic() && caps_lock {
        byte ^= 0x20;
    }
    if modifiers & CONTROL != 0 {
        byte = with_control(byte);
    }
    single(byte)
}

/// The character key `usage` types, shifted or not (US layout).
fn character(usage: u8, shift: bool) -> Option<u8> {
    /// Usages 0x1E..=0x38: digits, Enter, Escape, Backspace, Tab, Space, punctuation.
    const PLAIN: &[u8; 27] = b"1234567890\r\x1b\x7f\t -=[]\\#;'`,./";
    /// The same with Shift.
    const SHIFTED: &[u8; 27] = b"!@#$%^&*()\r\x1b\x7f\t _+{}|~:\"~<>?";
    /// Keypad usages 0x54..=0x63 (Num Lock taken as on).
    const KEYPAD: &[u8; 16] = b"/*-+\r1234567890.";
    match usage {
        0x04..=0x1D => {
            let letter = b'a' + (usage - 0x04);
            Some(if shift {
                letter.to_ascii_uppercase()
            } else {
                letter
            })
        }
        0x1E..=0x38 => {
            let table = if shift { SHIFTED } else { PLAIN };
            Some(table[usize::from(usage - 0x1E)])
        }
        0x54..=0x63 => Some(KEYPAD[usize::from(usage - 0x54)]),
        _ => None,
    }
}

/// `byte` as a one-byte slice with a static lifetime.
fn single(byte: u8) -> &'static [u8] {
    /// Every byte value, so any byte can be lent as `&'static [u8]`.
    static BYTES: [u8; 256] = {
        let mut bytes = [0; 256];
        let mut i = 0;
        while i < 256 {
            bytes[i] = i as u8;
            i += 1;
        }
        bytes
    };
    let at = usize::from(byte);
    &BYTES[at..=at]
}
