use super::*;
use core::fmt::Write as _;
use rexo_testkit::Rng;

/// Bytes the console must never touch unless it draws there.
const SENTINEL: u8 = 0x5a;
const FG: (u8, u8, u8) = (0xff, 0x80, 0x01);
const BG: (u8, u8, u8) = (0x10, 0x20, 0x30);

fn format(bytes: u8, r: (u8, u8), g: (u8, u8), b: (u8, u8)) -> PixelFormat {
    PixelFormat {
        bytes_per_pixel: bytes,
        red_shift: r.0,
        red_bits: r.1,
        green_shift: g.0,
        green_bits: g.1,
        blue_shift: b.0,
        blue_bits: b.1,
    }
}

fn bgr32() -> PixelFormat {
    format(4, (16, 8), (8, 8), (0, 8))
}

fn geometry(width: u32, height: u32, pitch: u32, format: PixelFormat) -> Geometry {
    Geometry {
        width,
        height,
        pitch,
        format,
    }
}

/// A buffer for `g`, plus `extra` bytes after it, all set to the sentinel.
fn buffer(g: &Geometry, extra: usize) -> Vec<u8> {
    vec![SENTINEL; (g.pitch * g.height) as usize + extra]
}

/// Cells for a console of geometry `g` (leaked: a test's console outlives the call).
fn cells(g: &Geometry) -> &'static mut [Cell] {
    vec![Cell::default(); g.cells()].leak()
}

/// The bytes of pixel (x, y).
fn pixel<'b>(buf: &'b [u8], g: &Geometry, x: u32, y: u32) -> &'b [u8] {
    let bpp = g.format.bytes_per_pixel as usize;
    let at = y as usize * g.pitch as usize + x as usize * bpp;
    &buf[at..at + bpp]
}

/// Checks that cell (col, row) shows `glyph` (8x8, rows doubled) in `fg` on `bg`.
fn expect_cell(buf: &[u8], g: &Geometry, col: u32, row: u32, glyph: [u8; 8], fg: &[u8], bg: &[u8]) {
    for dy in 0..GLYPH_HEIGHT {
        for dx in 0..GLYPH_WIDTH {
            let on = glyph[(dy / 2) as usize] & (1 << dx) != 0;
            let want = if on { fg } else { bg };
            let (x, y) = (col * GLYPH_WIDTH + dx, row * GLYPH_HEIGHT + dy);
            assert_eq!(
                pixel(buf, g, x, y),
                want,
                "pixel ({x}, {y}) of cell ({col}, {row})"
            );
        }
    }
}

/// Whether pixel (x, y) lies in one of the cells listed.
fn in_cells(x: u32, y: u32, cells: &[(u32, u32)]) -> bool {
    cells
        .iter()
        .any(|&(c, r)| x / GLYPH_WIDTH == c && y / GLYPH_HEIGHT == r)
}

fn ascii(c: char) -> [u8; 8] {
    font8x8::legacy::BASIC_LEGACY[c as usize]
}

/// Draws "A#" and checks both cells pixel by pixel, and that nothing else changed.
fn check_layout(format: PixelFormat, fg: &[u8], bg: &[u8]) {
    let g = geometry(40, 40, 40 * u32::from(format.bytes_per_pixel), format);
    let mut buf = buffer(&g, 0);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.set_colors(FG, BG);
    con.write_str("A#");
    expect_cell(&buf, &g, 0, 0, ascii('A'), fg, bg);
    expect_cell(&buf, &g, 1, 0, ascii('#'), fg, bg);
    for y in 0..g.height {
        for x in 0..g.width {
            if !in_cells(x, y, &[(0, 0), (1, 0)]) {
                assert!(pixel(&buf, &g, x, y).iter().all(|&b| b == SENTINEL));
            }
        }
    }
    // The glyphs are real: both colours occur.
    assert!(ascii('A').iter().any(|&r| r != 0) && ascii('A').iter().any(|&r| r != 0xff));
}

#[test]
fn glyph_pixels_in_32_bpp_bgr_and_rgb() {
    check_layout(bgr32(), &[0x01, 0x80, 0xff, 0], &[0x30, 0x20, 0x10, 0]);
    check_layout(
        format(4, (0, 8), (8, 8), (16, 8)),
        &[0xff, 0x80, 0x01, 0],
        &[0x10, 0x20, 0x30, 0],
    );
}

#[test]
fn glyph_pixels_in_24_bpp_bgr_and_rgb() {
    check_layout(
        format(3, (16, 8), (8, 8), (0, 8)),
        &[0x01, 0x80, 0xff],
        &[0x30, 0x20, 0x10],
    );
    check_layout(
        format(3, (0, 8), (8, 8), (16, 8)),
        &[0xff, 0x80, 0x01],
        &[0x10, 0x20, 0x30],
    );
}

#[test]
fn glyph_pixels_in_16_bpp_rgb565_bgr565_and_555() {
    // RGB565, red high: fg = 31<<11 | 32<<5 | 0, bg = 2<<11 | 8<<5 | 6.
    check_layout(
        format(2, (11, 5), (5, 6), (0, 5)),
        &[0x00, 0xfc],
        &[0x06, 0x11],
    );
    // BGR565, blue high: fg = 0<<11 | 32<<5 | 31, bg = 6<<11 | 8<<5 | 2.
    check_layout(
        format(2, (0, 5), (5, 6), (11, 5)),
        &[0x1f, 0x04],
        &[0x02, 0x31],
    );
    // RGB555: fg = 31<<10 | 16<<5 | 0, bg = 2<<10 | 4<<5 | 6.
    check_layout(
        format(2, (10, 5), (5, 5), (0, 5)),
        &[0x00, 0x7e],
        &[0x86, 0x08],
    );
}

#[test]
fn characters_without_a_glyph_draw_a_box() {
    let g = geometry(64, 16, 256, bgr32());
    let mut buf = buffer(&g, 0);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.set_colors(FG, BG);
    con.write_str("\u{1}漢\u{7f}é");
    let (fg, bg) = ([0x01, 0x80, 0xff, 0], [0x30, 0x20, 0x10, 0]);
    expect_cell(&buf, &g, 0, 0, REPLACEMENT, &fg, &bg);
    expect_cell(&buf, &g, 1, 0, REPLACEMENT, &fg, &bg);
    expect_cell(&buf, &g, 2, 0, REPLACEMENT, &fg, &bg);
    let e_acute = font8x8::LATIN_FONTS.get('é').unwrap();
    assert_ne!(e_acute, REPLACEMENT);
    expect_cell(&buf, &g, 3, 0, e_acute, &fg, &bg);
}

/// A console of `cols` x `rows` cells, 32 bpp, over a sentinel buffer.
fn screen(cols: u32, rows: u32) -> (Vec<u8>, Geometry) {
    let g = geometry(cols * 8, rows * 16, cols * 32, bgr32());
    (buffer(&g, 0), g)
}

/// The screen as `text` leaves it on a freshly cleared console.
fn rendered(g: Geometry, text: &str) -> Vec<u8> {
    let mut buf = buffer(&g, 0);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str(text);
    buf
}

#[test]
fn columns_and_rows() {
    let g = geometry(1024, 768, 4096, bgr32());
    let mut buf = buffer(&g, 0);
    let con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    assert_eq!((con.columns(), con.rows()), (128, 48));
    let g = geometry(8, 16, 32, bgr32());
    let mut buf = buffer(&g, 0);
    let con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    assert_eq!((con.columns(), con.rows()), (1, 1));
}

#[test]
fn long_lines_wrap_and_a_full_line_then_newline_adds_no_blank_line() {
    let (mut buf, g) = screen(4, 3);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("abcde");
    assert_eq!((con.col, con.row), (1, 1));
    assert_eq!(buf, rendered(g, "abcd\ne"));

    let (mut buf, g) = screen(4, 3);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("abcd\nx");
    assert_eq!((con.col, con.row), (1, 1));
}

#[test]
fn scrolling_moves_rows_up_and_clears_the_last() {
    let (mut buf, g) = screen(2, 3);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("AB\nCD\nEF\n");
    assert_eq!((con.col, con.row), (0, 2));
    assert_eq!(buf, rendered(g, "CD\nEF"));
    // The last row is all background.
    for y in 32..48 {
        for x in 0..16 {
            assert_eq!(pixel(&buf, &g, x, y), [0, 0, 0, 0]);
        }
    }

    // Wrapping at the bottom scrolls too.
    let (mut buf, g) = screen(2, 2);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("ABCDE");
    assert_eq!(buf, rendered(g, "CD\nE"));
}

#[test]
fn scrolling_leaves_lines_below_the_last_text_row_alone() {
    // 40 lines: two text rows and 8 spare lines at the bottom.
    let g = geometry(16, 40, 64, bgr32());
    let mut buf = buffer(&g, 0);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.write_str("ab\ncd\nef\ngh");
    assert!(buf[32 * 64..].iter().all(|&b| b == SENTINEL));
}

#[test]
fn tab_carriage_return_and_backspace() {
    let (mut buf, g) = screen(12, 2);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("ab\tc");
    assert_eq!((con.col, con.row), (9, 0));
    assert_eq!(buf, rendered(g, "ab      c"));

    let (mut buf, g) = screen(12, 2);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("abcdefghij\t");
    assert_eq!((con.col, con.row), (12, 0), "tab stops at the edge");
    con.write_str("\t");
    assert_eq!((con.col, con.row), (8, 1), "and wraps on the next one");

    let (mut buf, g) = screen(12, 2);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("abc\rx\x08\x08y\x08\x08z");
    assert_eq!(buf, rendered(g, "zbc"));
}

#[test]
fn backspace_at_the_first_column_goes_to_the_end_of_the_row_above() {
    // The monitor's editor erases a character with "\x08 \x08": here the X that wrapped
    // onto row 1, then the 9 at the end of row 0.
    let (mut buf, g) = screen(10, 3);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("0123456789X\x08 \x08\x08 \x08");
    assert_eq!((con.col, con.row), (9, 0));
    assert_eq!(buf, rendered(g, "012345678"));

    // In the top left corner it stays.
    let (mut buf, g) = screen(10, 3);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.write_str("a\x08\x08");
    assert_eq!((con.col, con.row), (0, 0));
}

#[test]
fn the_bell_draws_nothing_and_leaves_the_cursor() {
    // The monitor's editor sends BEL for a key it refuses: no box, no column taken.
    let (mut buf, g) = screen(12, 2);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("a\x07b");
    assert_eq!((con.col, con.row), (2, 0));
    assert_eq!(buf, rendered(g, "ab"));
}

#[test]
fn pitch_padding_is_never_written() {
    // 24 pixels * 4 bytes = 96 bytes per line, pitch 128, and 64 spare bytes at the end.
    let g = geometry(24, 48, 128, bgr32());
    let mut buf = buffer(&g, 64);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("one\ntwo\nthree\nfour\nfive\tsix\x08seven");
    for y in 0..48usize {
        assert!(
            buf[y * 128 + 96..(y + 1) * 128]
                .iter()
                .all(|&b| b == SENTINEL),
            "padding of line {y}"
        );
    }
    assert!(buf[48 * 128..].iter().all(|&b| b == SENTINEL));
    // And the text itself went where the pitch says.
    let mut reference = buffer(&g, 64);
    let mut con = Console::new(&mut reference[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("sis\neve\nn");
    assert_eq!(buf, reference);
}

#[test]
fn clear_paints_every_visible_pixel() {
    let g = geometry(20, 20, 100, bgr32());
    let mut buf = buffer(&g, 0);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.set_colors(FG, BG);
    con.write_str("xyz");
    con.clear();
    assert_eq!((con.col, con.row), (0, 0));
    for y in 0..20 {
        for x in 0..20 {
            assert_eq!(pixel(&buf, &g, x, y), [0x30, 0x20, 0x10, 0]);
        }
        assert!(
            buf[y as usize * 100 + 80..(y as usize + 1) * 100]
                .iter()
                .all(|&b| b == SENTINEL)
        );
    }
}

#[test]
fn fmt_write_formats_into_the_console() {
    let (mut buf, g) = screen(10, 1);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    write!(con, "n={}", 42).unwrap();
    assert_eq!(buf, rendered(g, "n=42"));
}

#[test]
fn an_unsupported_geometry_is_refused_before_any_cells_are_asked_for() {
    // A nonsense width (its cells more than any heap holds) and a 40-bit pixel, as a
    // loader could report them, over the pitch * height bytes it gives: refused by the
    // geometry alone, for what is wrong with it, with no cell buffer made.
    let wide = geometry(u32::MAX, 768, 4096, bgr32());
    assert!(wide.cells() > 1 << 30);
    assert_eq!(
        wide.validate(4096 * 768),
        Err(ConsoleError::PitchTooSmall {
            pitch: 4096,
            needed: u64::from(u32::MAX) * 4
        })
    );
    let odd = geometry(1024, 768, 5 * 1024, format(5, (16, 8), (8, 8), (0, 8)));
    assert_eq!(
        odd.validate(5 * 1024 * 768),
        Err(ConsoleError::UnsupportedBytesPerPixel(5))
    );
    let fine = geometry(1024, 768, 4096, bgr32());
    assert_eq!(fine.validate(4096 * 768), Ok(()));
}

#[test]
fn bad_geometry_is_refused() {
    // Console::new and the check a caller makes before it has cells agree.
    let new = |g: Geometry, len: usize| {
        let made = Console::new(&mut vec![0; len][..], &mut [Cell::default(); 16], g).map(|_| ());
        assert_eq!(g.validate(len), made, "Geometry::validate and Console::new");
        made
    };
    let ok = geometry(64, 32, 256, bgr32());
    assert_eq!(new(ok, 256 * 32), Ok(()));

    for bytes in [0, 1, 5, 8] {
        let f = PixelFormat {
            bytes_per_pixel: bytes,
            ..bgr32()
        };
        assert_eq!(
            new(geometry(64, 32, 1024, f), 1 << 16),
            Err(ConsoleError::UnsupportedBytesPerPixel(bytes))
        );
    }
    let bad = |f: PixelFormat| new(geometry(64, 32, 256, f), 1 << 16);
    assert_eq!(
        bad(format(4, (16, 0), (8, 8), (0, 8))),
        Err(ConsoleError::BadChannel {
            channel: Channel::Red,
            shift: 16,
            bits: 0
        })
    );
    assert_eq!(
        bad(format(4, (16, 8), (8, 9), (0, 8))),
        Err(ConsoleError::BadChannel {
            channel: Channel::Green,
            shift: 8,
            bits: 9
        })
    );
    assert_eq!(
        bad(format(2, (11, 5), (5, 6), (12, 5))),
        Err(ConsoleError::BadChannel {
            channel: Channel::Blue,
            shift: 12,
            bits: 5
        })
    );
    assert_eq!(
        bad(format(4, (250, 8), (8, 8), (0, 8))),
        Err(ConsoleError::BadChannel {
            channel: Channel::Red,
            shift: 250,
            bits: 8
        })
    );
    assert_eq!(
        bad(format(4, (0, 8), (4, 8), (16, 8))),
        Err(ConsoleError::OverlappingChannels(
            Channel::Red,
            Channel::Green
        ))
    );
    assert_eq!(
        bad(format(4, (0, 8), (8, 8), (0, 8))),
        Err(ConsoleError::OverlappingChannels(
            Channel::Red,
            Channel::Blue
        ))
    );

    assert_eq!(
        new(geometry(7, 32, 256, bgr32()), 1 << 16),
        Err(ConsoleError::TooSmall {
            width: 7,
            height: 32
        })
    );
    assert_eq!(
        new(geometry(64, 15, 256, bgr32()), 1 << 16),
        Err(ConsoleError::TooSmall {
            width: 64,
            height: 15
        })
    );
    assert_eq!(
        new(geometry(64, 32, 255, bgr32()), 1 << 16),
        Err(ConsoleError::PitchTooSmall {
            pitch: 255,
            needed: 256
        })
    );
    assert_eq!(
        new(ok, 256 * 32 - 1),
        Err(ConsoleError::BufferTooSmall {
            needed: 256 * 32,
            len: 256 * 32 - 1
        })
    );
    assert_eq!(
        Console::new(&mut vec![0; 256 * 32][..], &mut [Cell::default(); 15], ok).map(|_| ()),
        Err(ConsoleError::TooFewCells {
            needed: 16,
            len: 15
        })
    );
    // Sizes whose product overflows 32 bits are refused, not wrapped.
    assert_eq!(
        new(geometry(u32::MAX / 4, u32::MAX, u32::MAX, bgr32()), 16),
        Err(ConsoleError::BufferTooSmall {
            needed: u64::from(u32::MAX) * u64::from(u32::MAX),
            len: 16
        })
    );
    let msg = ConsoleError::PitchTooSmall {
        pitch: 255,
        needed: 256,
    }
    .to_string();
    assert!(msg.contains("255") && msg.contains("256"), "{msg}");
}

#[test]
fn long_random_text_never_panics_nor_touches_padding() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let layouts = [
        (8, 16, 32, bgr32()),
        (9, 17, 40, bgr32()),
        (30, 50, 96, format(3, (0, 8), (8, 8), (16, 8))),
        (33, 70, 70, format(2, (11, 5), (5, 6), (0, 5))),
        (200, 100, 1000, bgr32()),
    ];
    for (width, height, pitch, f) in layouts {
        let g = geometry(width, height, pitch, f);
        let mut buf = buffer(&g, 7);
        let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
        let mut text = String::new();
        for _ in 0..20_000 {
            let r = rng.next_u64();
            let c = match r % 8 {
                0 => ['\n', '\r', '\t', '\x08', '\0', '\u{1b}'][(r >> 8) as usize % 6],
                1 => char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('?'),
                _ => char::from(b' ' + (r >> 8) as u8 % 95),
            };
            text.push(c);
            if r.is_multiple_of(97) {
                con.set_colors(
                    (r as u8, (r >> 16) as u8, (r >> 24) as u8),
                    ((r >> 32) as u8, (r >> 40) as u8, (r >> 48) as u8),
                );
            }
            if r.is_multiple_of(3001) {
                con.clear();
            }
            if text.len() > 64 {
                con.write_str(&text);
                text.clear();
            }
            assert!(con.row < con.rows() && con.col <= con.columns());
        }
        con.write_str(&text);
        let line = (width * u32::from(f.bytes_per_pixel)) as usize;
        for y in 0..height as usize {
            let start = y * pitch as usize;
            assert!(
                buf[start + line..start + pitch as usize]
                    .iter()
                    .all(|&b| b == SENTINEL)
            );
        }
        assert!(
            buf[(pitch * height) as usize..]
                .iter()
                .all(|&b| b == SENTINEL)
        );
    }
}

#[test]
fn glyphs_are_upright_unmirrored_and_rows_doubled() {
    // 'F' checked against its shape, not against the font data: a bar across the top, the
    // stem on the left, nothing in the last font row.
    let (mut buf, g) = screen(1, 1);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.set_colors((255, 255, 255), (0, 0, 0));
    con.write_str("F");
    let on = |x, y| pixel(&buf, &g, x, y) == [255, 255, 255, 0];
    assert!((0..7).all(|x| on(x, 0) && on(x, 1)), "top bar, two lines");
    assert!(
        on(1, 10) && on(2, 10) && !on(5, 10) && !on(6, 10),
        "stem on the left"
    );
    assert!((0..8).all(|x| !on(x, 14) && !on(x, 15)), "empty bottom row");
}

#[test]
fn bytes_are_drawn_with_each_invalid_sequence_as_one_replacement_character() {
    let g = geometry(64, 16, 64 * 4, bgr32());
    let (mut lossy, mut text) = (buffer(&g, 0), buffer(&g, 0));
    Console::new(&mut lossy[..], cells(&g), g)
        .unwrap()
        .write_lossy(b"a\xF0\x9F\xFFb\xC3\xA9");
    Console::new(&mut text[..], cells(&g), g)
        .unwrap()
        .write_str("a\u{FFFD}\u{FFFD}b\u{E9}");
    assert!(lossy == text, "drawn as the text with U+FFFD");
}

/// Video memory that counts the bytes the console writes into it. [`Surface`] has no
/// way to read, so a console over it cannot read video memory.
struct CountedWrites {
    bytes: Vec<u8>,
    written: usize,
}

impl Surface for CountedWrites {
    fn size(&self) -> usize {
        self.bytes.len()
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        self.written += bytes.len();
        self.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
}

#[test]
fn scrolling_redraws_from_the_cells_in_ram_only_the_cells_that_change() {
    let (buf, g) = screen(10, 4);
    let mut video = CountedWrites {
        bytes: buf,
        written: 0,
    };
    let mut con = Console::new(&mut video, cells(&g), g).unwrap();
    con.clear();
    // Several screens' worth of lines of different lengths, some wrapping: after each,
    // the screen is what a fresh console draws for the lines still visible.
    let lines: Vec<String> = (0..17)
        .map(|i| format!("{i}:{}", "ab#".repeat(i % 5)))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        con.write_str(line);
        con.write_str("\n");
        let text = lines[..=i].join("\n") + "\n";
        let wrapped: Vec<&str> = text
            .split('\n')
            .flat_map(|l| {
                l.as_bytes()
                    .chunks(10)
                    .map(|c| core::str::from_utf8(c).unwrap())
            })
            .collect();
        // The last row is the cursor's, empty.
        let visible = wrapped[wrapped.len().saturating_sub(3)..].join("\n");
        assert_eq!(con.surface.bytes, rendered(g, &visible), "after line {i}");
    }

    // A screen of equal lines: a scroll draws only the last row's three cells, which
    // go blank (the rows above it show what they showed); writing the line drew three.
    for _ in 0..4 {
        con.write_str("xyz\n");
    }
    let before = con.surface.written;
    con.write_str("xyz\n");
    let cell_bytes = (GLYPH_WIDTH * GLYPH_HEIGHT * 4) as usize;
    assert_eq!(con.surface.written - before, 6 * cell_bytes);
    assert_eq!(con.surface.bytes, rendered(g, "xyz\nxyz\nxyz\n"));
}

#[test]
fn a_scroll_brings_cells_never_drawn_up_blank() {
    // Not cleared: the screen holds what was there before (the sentinel), which the
    // console cannot know; scrolled up, those cells come up blank.
    let (mut buf, g) = screen(2, 3);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.write_str("A\n\n\n");
    assert!(buf == rendered(g, ""), "a blank screen");
}

#[test]
fn a_scroll_redraws_a_cell_whose_character_stays_but_whose_colours_change() {
    // "ab" in the default colours, then twice in others: the scroll moves the coloured
    // "ab" onto the default one, the same characters in new colours, which must be
    // drawn; the last row goes blank in the current colours.
    let (mut buf, g) = screen(3, 3);
    let mut con = Console::new(&mut buf[..], cells(&g), g).unwrap();
    con.clear();
    con.write_str("ab\n");
    con.set_colors(FG, BG);
    con.write_str("ab\nab\n");
    let (fg, bg) = ([0x01, 0x80, 0xff, 0], [0x30, 0x20, 0x10, 0]);
    let default_bg = [0, 0, 0, 0];
    for row in 0..2 {
        expect_cell(&buf, &g, 0, row, glyph('a'), &fg, &bg);
        expect_cell(&buf, &g, 1, row, glyph('b'), &fg, &bg);
        expect_cell(&buf, &g, 2, row, glyph(' '), &fg, &default_bg);
    }
    for col in 0..3 {
        expect_cell(&buf, &g, col, 2, glyph(' '), &fg, &bg);
    }
}
