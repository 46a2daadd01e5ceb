use super::*;

/// The bytes `codes` give, one scan code after the other, with whatever each leaves
/// pending handed out before the next (as the kernel's polling does).
fn typed(decoder: &Decoder, codes: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for &code in codes {
        bytes.extend(decoder.translate(code));
        bytes.extend(core::iter::from_fn(|| decoder.pending()));
    }
    bytes
}

/// The release of the key whose press is `code`.
const fn up(code: u8) -> u8 {
    code | 0x80
}

const LEFT_SHIFT: u8 = 0x2A;
const RIGHT_SHIFT: u8 = 0x36;
const CONTROL: u8 = 0x1D;
/// The grey keys' fake Shift press (after [`EXTENDED`]); its release is `up(FAKE_SHIFT)`.
const FAKE_SHIFT: u8 = 0x2A;
const EXTENDED: u8 = 0xE0;
/// Caps Lock's scan code.
const CAPS_LOCK_KEY: u8 = 0x3A;

#[test]
fn keys_give_their_characters_and_releases_give_nothing() {
    let decoder = Decoder::new();
    // h, i, 1, =, ;, \, /, each pressed and released.
    let keys = [0x23, 0x17, 0x02, 0x0D, 0x27, 0x2B, 0x35];
    let codes: Vec<u8> = keys.iter().flat_map(|&k| [k, up(k)]).collect();
    assert_eq!(typed(&decoder, &codes), b"hi1=;\\/");
}

#[test]
fn enter_backspace_escape_tab_and_space_are_what_terminals_send() {
    let decoder = Decoder::new();
    assert_eq!(
        typed(&decoder, &[0x1C, 0x0E, 0x01, 0x0F, 0x39]),
        [b'\r', 0x7F, 0x1B, b'\t', b' ']
    );
}

#[test]
fn either_shift_held_gives_the_shifted_characters_until_released() {
    let decoder = Decoder::new();
    let codes = [
        LEFT_SHIFT,
        0x1E,
        0x02,
        up(LEFT_SHIFT),
        0x1E,
        RIGHT_SHIFT,
        0x28,
    ];
    assert_eq!(typed(&decoder, &codes), b"A!a\"");
    assert_eq!(typed(&decoder, &[up(RIGHT_SHIFT), 0x28]), b"'");
}

#[test]
fn control_with_a_letter_gives_its_control_character_and_others_unchanged() {
    let decoder = Decoder::new();
    // Control-C, Control-A, Control-1, then C with Control released.
    let codes = [CONTROL, 0x2E, 0x1E, 0x02, up(CONTROL), 0x2E];
    assert_eq!(typed(&decoder, &codes), [0x03, 0x01, b'1', b'c']);
}

#[test]
fn arrow_keys_give_their_escape_sequences() {
    let decoder = Decoder::new();
    let arrows = [0x48, 0x50, 0x4D, 0x4B].map(|key| [EXTENDED, key, EXTENDED, up(key)]);
    assert_eq!(
        typed(&decoder, arrows.as_flattened()),
        b"\x1b[A\x1b[B\x1b[C\x1b[D"
    );
    // The sequence waits for its reader: ESC first, then '[' and the letter.
    assert_eq!(decoder.translate(EXTENDED), None);
    assert_eq!(decoder.translate(0x48), Some(0x1B));
    assert_eq!(decoder.pending(), Some(b'['));
    assert_eq!(decoder.pending(), Some(b'A'));
    assert_eq!(decoder.pending(), None);
}

#[test]
fn the_extended_prefix_marks_only_the_next_code_and_extended_keys_without_a_byte_give_nothing() {
    let decoder = Decoder::new();
    // Right Alt (E0 38) and Left GUI (E0 5B) give nothing; the prefix is spent, so the
    // next Enter and A are the main keys'.
    let codes = [EXTENDED, 0x38, 0x1C, EXTENDED, 0x5B, 0x1E];
    assert_eq!(typed(&decoder, &codes), b"\ra");
    // Home (E0 47), then the keypad's 7 (47).
    assert_eq!(typed(&decoder, &[EXTENDED, 0x47, 0x47]), b"\x1b[H7");
}

#[test]
fn keys_without_a_byte_give_nothing() {
    let decoder = Decoder::new();
    // F1, F10, Num Lock, Scroll Lock, Left Alt, F11, and a code past set 1's keys.
    assert_eq!(
        typed(&decoder, &[0x3B, 0x44, 0x45, 0x46, 0x38, 0x57, 0x7F]),
        b""
    );
    assert_eq!(decoder.pending(), None);
}

#[test]
fn the_keypad_types_as_with_num_lock_on_as_the_usb_keyboard_does() {
    let decoder = Decoder::new();
    // 7 8 9 - 4 5 6 + 1 2 3 0 . *, then / (E0 35) and Enter (E0 1C).
    let mut codes: Vec<u8> = (0x47..=0x53).chain([0x37]).collect();
    codes.extend([EXTENDED, 0x35, EXTENDED, 0x1C]);
    assert_eq!(typed(&decoder, &codes), b"789-456+1230.*/\r");
    // Num Lock (45) changes nothing, nor does Shift.
    codes.splice(0..0, [0x45, LEFT_SHIFT]);
    assert_eq!(typed(&decoder, &codes), b"789-456+1230.*/\r");
}

#[test]
fn home_end_and_delete_give_their_escape_sequences() {
    let decoder = Decoder::new();
    let codes = [EXTENDED, 0x47, EXTENDED, 0x4F, EXTENDED, 0x53];
    assert_eq!(typed(&decoder, &codes), b"\x1b[H\x1b[F\x1b[3~");
    // Delete's four bytes wait for their reader, ESC first.
    assert_eq!(decoder.translate(EXTENDED), None);
    assert_eq!(decoder.translate(0x53), Some(0x1B));
    let rest: Vec<u8> = core::iter::from_fn(|| decoder.pending()).collect();
    assert_eq!(rest, b"[3~");
}

#[test]
fn insert_page_up_and_page_down_give_their_escape_sequences() {
    let decoder = Decoder::new();
    let codes = [EXTENDED, 0x52, EXTENDED, 0x49, EXTENDED, 0x51];
    assert_eq!(typed(&decoder, &codes), b"\x1b[2~\x1b[5~\x1b[6~");
}

#[test]
fn caps_lock_toggles_the_letters_shift_inverts_it_and_a_held_caps_lock_toggles_once() {
    let decoder = Decoder::new();
    // Caps Lock pressed and released: A, 1 and ; then; with Shift, a.
    let codes = [CAPS_LOCK_KEY, up(CAPS_LOCK_KEY), 0x1E, 0x02, 0x27];
    assert_eq!(typed(&decoder, &codes), b"A1;");
    assert_eq!(typed(&decoder, &[LEFT_SHIFT, 0x1E, up(LEFT_SHIFT)]), b"a");
    // Held, Caps Lock repeats its press (typematic): it goes off once, not each time.
    let held = [
        CAPS_LOCK_KEY,
        CAPS_LOCK_KEY,
        CAPS_LOCK_KEY,
        CAPS_LOCK_KEY,
        up(CAPS_LOCK_KEY),
        0x1E,
    ];
    assert_eq!(typed(&decoder, &held), b"a");
    // Control with Caps Lock on gives the letter's control character.
    let codes = [CAPS_LOCK_KEY, up(CAPS_LOCK_KEY), CONTROL, 0x2E, up(CONTROL)];
    assert_eq!(typed(&decoder, &codes), [0x03]);
}

/// The PS/2 keys of the main block, row by row from their first scan code, by the
/// character each types unshifted.
const MAIN_ROWS: [(u8, &[u8]); 4] = [
    (0x02, b"1234567890-="),
    (0x10, b"qwertyuiop[]"),
    (0x1E, b"asdfghjkl;'`"),
    (0x2B, b"\\zxcvbnm,./"),
];

/// The characters of the USB keys 0x04 to 0x38, in usage order (HID Usage Tables 10).
const USB_ORDER: &[u8] = b"abcdefghijklmnopqrstuvwxyz1234567890\r\x1b\x7f\t -=[]\\#;'`,./";

/// Every key the decoder types or toggles with, as its PS/2 codes and the USB usage of
/// the same key.
fn every_key() -> Vec<(Vec<u8>, u8)> {
    let usb = |character: u8| {
        let at = USB_ORDER.iter().position(|&c| c == character).unwrap();
        0x04 + u8::try_from(at).unwrap()
    };
    let mut keys: Vec<(Vec<u8>, u8)> = MAIN_ROWS
        .iter()
        .flat_map(|&(first, row)| (first..).zip(row).map(|(code, &c)| (vec![code], usb(c))))
        .collect();
    // Escape, Backspace, Tab, Enter, Space.
    for (code, character) in [
        (0x01, 0x1B),
        (0x0E, 0x7F),
        (0x0F, b'\t'),
        (0x1C, b'\r'),
        (0x39, b' '),
    ] {
        keys.push((vec![code], usb(character)));
    }
    // Caps Lock; the keypad's 7 8 9 - 4 5 6 + 1 2 3 0 . and *.
    keys.push((vec![CAPS_LOCK_KEY], 0x39));
    let keypad = [
        0x5F, 0x60, 0x61, 0x56, 0x5C, 0x5D, 0x5E, 0x57, 0x59, 0x5A, 0x5B, 0x62, 0x63,
    ];
    keys.extend(
        (0x47..=0x53)
            .zip(keypad)
            .map(|(code, usage)| (vec![code], usage)),
    );
    keys.push((vec![0x37], 0x55));
    // The grey keys: the keypad's / and Enter, Home, Up, Page Up, Left, Right, End, Down,
    // Page Down, Insert, Delete.
    let grey = [
        (0x35, 0x54),
        (0x1C, 0x58),
        (0x47, 0x4A),
        (0x48, 0x52),
        (0x49, 0x4B),
        (0x4B, 0x50),
        (0x4D, 0x4F),
        (0x4F, 0x4D),
        (0x50, 0x51),
        (0x51, 0x4E),
        (0x52, 0x49),
        (0x53, 0x4C),
    ];
    keys.extend(grey.map(|(code, usage)| (vec![EXTENDED, code], usage)));
    keys
}

#[test]
fn every_key_types_what_the_usb_keyboard_types_for_it() {
    // The modifiers as PS/2 codes and as a boot report's bits.
    let modifiers: [(&[u8], u8); 6] = [
        (&[], 0),
        (&[LEFT_SHIFT], keys::LEFT_SHIFT),
        (&[RIGHT_SHIFT], keys::RIGHT_SHIFT),
        (&[CONTROL], keys::LEFT_CONTROL),
        (&[EXTENDED, CONTROL], keys::RIGHT_CONTROL),
        (
            &[LEFT_SHIFT, CONTROL],
            keys::LEFT_SHIFT | keys::LEFT_CONTROL,
        ),
    ];
    for (codes, usage) in every_key() {
        for (held, bits) in modifiers {
            for caps_lock in [false, true] {
                let decoder = Decoder::new();
                if caps_lock {
                    typed(&decoder, &[CAPS_LOCK_KEY, up(CAPS_LOCK_KEY)]);
                }
                let mut pressed = held.to_vec();
                pressed.extend(&codes);
                assert_eq!(
                    typed(&decoder, &pressed),
                    key_bytes(usage, bits, caps_lock),
                    "PS/2 {codes:02x?} and USB {usage:#04x}, modifiers {bits:#04x}, Caps Lock {caps_lock}"
                );
            }
        }
        if usage != CAPS_LOCK {
            assert!(!key_bytes(usage, 0, false).is_empty(), "{usage:#04x} types");
        }
    }
}

#[test]
fn control_gives_the_control_character_after_shift_and_for_at_to_underscore() {
    let decoder = Decoder::new();
    // Control-Shift-C, then Control-[ and Control-] (Shift released), Control-Shift-2 ('@').
    let codes = [CONTROL, LEFT_SHIFT, 0x2E, up(LEFT_SHIFT), 0x1A, 0x1B];
    assert_eq!(typed(&decoder, &codes), [0x03, 0x1B, 0x1D]);
    assert_eq!(typed(&decoder, &[RIGHT_SHIFT, 0x03]), [0x00]);
}

#[test]
fn releasing_one_shift_or_control_leaves_the_other_held() {
    let decoder = Decoder::new();
    let codes = [LEFT_SHIFT, RIGHT_SHIFT, up(RIGHT_SHIFT), 0x1E];
    assert_eq!(typed(&decoder, &codes), b"A");
    assert_eq!(typed(&decoder, &[up(LEFT_SHIFT), 0x1E]), b"a");
    // Left Control, then Right Control (E0 1D) pressed and released.
    let codes = [CONTROL, EXTENDED, CONTROL, EXTENDED, up(CONTROL), 0x2E];
    assert_eq!(typed(&decoder, &codes), [0x03]);
    assert_eq!(typed(&decoder, &[up(CONTROL), 0x2E]), b"c");
    // Right Control alone, and the other way round.
    let codes = [EXTENDED, CONTROL, CONTROL, up(CONTROL), 0x2E];
    assert_eq!(typed(&decoder, &codes), [0x03]);
}

#[test]
fn the_grey_keys_fake_shifts_are_not_shift() {
    let decoder = Decoder::new();
    // Up pressed (E0 2A E0 48, Num Lock on), A typed while it is held: no Shift.
    let codes = [EXTENDED, FAKE_SHIFT, EXTENDED, 0x48, 0x1E];
    assert_eq!(typed(&decoder, &codes), b"\x1b[Aa");
    let codes = [EXTENDED, up(0x48), EXTENDED, up(FAKE_SHIFT)];
    assert_eq!(typed(&decoder, &codes), b"");
    // Left Shift held, Up pressed (E0 AA E0 48), A typed while it is held: still Shift.
    let codes = [LEFT_SHIFT, EXTENDED, up(FAKE_SHIFT), EXTENDED, 0x48, 0x1E];
    assert_eq!(typed(&decoder, &codes), b"\x1b[AA");
}

/// An 8042 whose status port reads `status` on every read and whose data port hands out
/// `codes` in turn (then 0); counts the data reads, and panics past 1,000 of them (an
/// unbounded poll).
struct Controller {
    status: u8,
    codes: Vec<u8>,
    data_reads: usize,
}

impl Controller {
    fn read_port(&mut self, port: u16) -> u8 {
        match port {
            STATUS_PORT => self.status,
            DATA_PORT => {
                self.data_reads += 1;
                assert!(self.data_reads <= 1000, "the poll did not stop");
                self.codes.get(self.data_reads - 1).copied().unwrap_or(0)
            }
            _ => panic!("port {port:#x} is not the 8042's"),
        }
    }
}

#[test]
fn a_status_that_never_reads_empty_ends_a_poll_after_16_codes() {
    let decoder = Decoder::new();
    // Output full for ever, from the keyboard (0x01) or the mouse (0x21), with codes that
    // give no byte (0).
    for status in [STATUS_OUTPUT_FULL, STATUS_OUTPUT_FULL | STATUS_FROM_MOUSE] {
        let mut controller = Controller {
            status,
            codes: Vec::new(),
            data_reads: 0,
        };
        assert_eq!(decoder.poll(|port| controller.read_port(port)), None);
        assert_eq!(controller.data_reads, POLL_CODES);
    }
}

#[test]
fn a_poll_reads_codes_until_one_gives_a_byte_and_skips_the_mouses() {
    let decoder = Decoder::new();
    // A release and Left Shift give nothing; then A, shifted.
    let mut controller = Controller {
        status: STATUS_OUTPUT_FULL,
        codes: vec![up(0x1E), LEFT_SHIFT, 0x1E],
        data_reads: 0,
    };
    assert_eq!(decoder.poll(|port| controller.read_port(port)), Some(b'A'));
    assert_eq!(controller.data_reads, 3);
    // A mouse byte that would be A is not typed; an empty status or none (0xFF) gives
    // nothing, and no data is read.
    let mut mouse = Controller {
        status: STATUS_OUTPUT_FULL | STATUS_FROM_MOUSE,
        codes: vec![0x1E],
        data_reads: 0,
    };
    assert_eq!(decoder.poll(|port| mouse.read_port(port)), None);
    for status in [0x00, 0xFF] {
        let mut idle = Controller {
            status,
            codes: vec![0x1E],
            data_reads: 0,
        };
        assert_eq!(decoder.poll(|port| idle.read_port(port)), None);
        assert_eq!(idle.data_reads, 0);
    }
    // An arrow's pending bytes come first, without a port read.
    let mut arrow = Controller {
        status: STATUS_OUTPUT_FULL,
        codes: vec![EXTENDED, 0x48],
        data_reads: 0,
    };
    assert_eq!(decoder.poll(|port| arrow.read_port(port)), Some(0x1B));
    let mut none = Controller {
        status: 0x00,
        codes: Vec::new(),
        data_reads: 0,
    };
    let typed: Vec<u8> =
        core::iter::from_fn(|| decoder.poll(|port| none.read_port(port))).collect();
    assert_eq!(typed, b"[A");
}
