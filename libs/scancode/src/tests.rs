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
fn the_extended_prefix_marks_only_the_next_code_and_other_extended_keys_give_nothing() {
    let decoder = Decoder::new();
    // The keypad's Enter (E0 1C) and Delete (E0 53) give nothing; the prefix is spent,
    // so the next Enter and A are the main keys'.
    let codes = [EXTENDED, 0x1C, 0x1C, EXTENDED, 0x53, 0x1E];
    assert_eq!(typed(&decoder, &codes), b"\ra");
}

#[test]
fn keys_without_a_byte_give_nothing() {
    let decoder = Decoder::new();
    // F1, F10, Caps Lock, the keypad's 7, and a code past set 1's keys.
    assert_eq!(typed(&decoder, &[0x3B, 0x44, 0x3A, 0x47, 0x7F]), b"");
    assert_eq!(decoder.pending(), None);
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
