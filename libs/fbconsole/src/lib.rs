//! A text console drawn on a linear framebuffer.
//!
//! The kernel gets a framebuffer from the boot loader, makes a `&mut [u8]` over its
//! memory and hands it to [`Console::new`] with the [`Geometry`] and a buffer of
//! [`Cell`]s (one per character cell of the screen); log text written to the console is
//! drawn as 8x16 character cells. The same code runs on the host over a `Vec`, which is
//! how it is tested. No heap, no `unsafe`.
//!
//! Video memory is only ever written, never read ([`Surface`] has no way to read): a
//! framebuffer behind a PCI BAR, mapped uncached, answers each read over the bus, and
//! copying the screen up a line there read some 8 MB per line at 1920x1080. The console
//! keeps the text (character and colours per cell) in the cell buffer, in RAM, and
//! scrolls by shifting that and redrawing only the cells whose contents change.
//!
//! Glyphs come from the public-domain 8x8 font of the `font8x8` crate, each row drawn
//! twice. Characters without a glyph (and control characters other than the ones the
//! console interprets) are drawn as a hollow box, so that lost text stays visible.
#![cfg_attr(target_os = "none", no_std)]

use core::fmt;

use font8x8::UnicodeFonts;
use font8x8::legacy::BASIC_LEGACY;

/// Width of a character cell in pixels.
pub const GLYPH_WIDTH: u32 = 8;
/// Height of a character cell in pixels (the 8x8 font with each row drawn twice).
pub const GLYPH_HEIGHT: u32 = 16;
/// Tab stops are every this many columns.
pub const TAB_WIDTH: u32 = 8;
/// The foreground colour of a new console (light grey).
pub const DEFAULT_FG: (u8, u8, u8) = (0xc0, 0xc0, 0xc0);
/// The background colour of a new console (black).
pub const DEFAULT_BG: (u8, u8, u8) = (0, 0, 0);

/// Drawn for characters without a glyph: a hollow box filling the cell.
const REPLACEMENT: [u8; 8] = [0xff, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0xff];

/// How a pixel's bytes hold its colour: little-endian value of `bytes_per_pixel` bytes,
/// each channel `*_bits` wide starting at bit `*_shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bytes per pixel: 2, 3 or 4.
    pub bytes_per_pixel: u8,
    /// Lowest bit of the red channel.
    pub red_shift: u8,
    /// Width of the red channel in bits (1..=8).
    pub red_bits: u8,
    /// Lowest bit of the green channel.
    pub green_shift: u8,
    /// Width of the green channel in bits (1..=8).
    pub green_bits: u8,
    /// Lowest bit of the blue channel.
    pub blue_shift: u8,
    /// Width of the blue channel in bits (1..=8).
    pub blue_bits: u8,
}

/// The framebuffer's shape, as the boot loader reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Visible pixels per line.
    pub width: u32,
    /// Visible lines.
    pub height: u32,
    /// Bytes from the start of one line to the start of the next (at least
    /// `width * bytes_per_pixel`).
    pub pitch: u32,
    /// The pixel layout.
    pub format: PixelFormat,
}

impl Geometry {
    /// The character cells the screen holds (text columns times rows): the length of
    /// the cell buffer [`Console::new`] needs.
    pub fn cells(&self) -> usize {
        (self.width / GLYPH_WIDTH) as usize * (self.height / GLYPH_HEIGHT) as usize
    }

    /// Checks that the console can draw on this screen over `surface_size` bytes of
    /// video memory: a format of 16, 24 or 32 bpp with sane channels, a screen holding
    /// at least one character, a pitch holding a line and `pitch * height` bytes within
    /// `surface_size`. [`Console::new`] checks the same; a caller checks first to refuse
    /// a screen before it allocates its [`cells`](Self::cells), whose count a nonsense
    /// size makes nonsense too.
    pub fn validate(&self, surface_size: usize) -> Result<(), ConsoleError> {
        self.format.validate()?;
        let Geometry {
            width,
            height,
            pitch,
            format,
        } = *self;
        if width < GLYPH_WIDTH || height < GLYPH_HEIGHT {
            return Err(ConsoleError::TooSmall { width, height });
        }
        let line = u64::from(width) * u64::from(format.bytes_per_pixel);
        if u64::from(pitch) < line {
            return Err(ConsoleError::PitchTooSmall {
                pitch,
                needed: line,
            });
        }
        let needed = u64::from(pitch) * u64::from(height);
        if needed > surface_size as u64 {
            return Err(ConsoleError::BufferTooSmall {
                needed,
                len: surface_size,
            });
        }
        Ok(())
    }
}

/// Video memory as the console uses it: written, never read.
pub trait Surface {
    /// Its size in bytes.
    fn size(&self) -> usize;
    /// Writes `bytes` at `offset`. The console writes only inside the first `pitch *
    /// height` bytes, which [`Console::new`] checks are within [`size`](Self::size).
    fn write(&mut self, offset: usize, bytes: &[u8]);
}

impl Surface for [u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        let target = self
            .get_mut(offset..)
            .and_then(|rest| rest.get_mut(..bytes.len()));
        if let Some(target) = target {
            target.copy_from_slice(bytes);
        }
    }
}

/// One character cell as the console keeps it in RAM: what is drawn there, so that the
/// console redraws it without reading video memory. [`Cell::default`] is a cell whose
/// pixels the console does not know (not drawn since the console was made).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    /// The character drawn, `None` when the console has not drawn the cell.
    ch: Option<char>,
    /// Its foreground pixel bytes.
    fg: [u8; 4],
    /// Its background pixel bytes.
    bg: [u8; 4],
}

/// A colour channel, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The red channel.
    Red,
    /// The green channel.
    Green,
    /// The blue channel.
    Blue,
}

/// Why [`Console::new`] or [`Geometry::validate`] refused a framebuffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleError {
    /// Only 2, 3 and 4 bytes per pixel (16, 24, 32 bpp) are drawn.
    UnsupportedBytesPerPixel(u8),
    /// A channel is 0 or more than 8 bits wide, or does not fit in the pixel.
    BadChannel {
        /// The channel.
        channel: Channel,
        /// Its lowest bit.
        shift: u8,
        /// Its width in bits.
        bits: u8,
    },
    /// Two channels share bits.
    OverlappingChannels(Channel, Channel),
    /// The screen cannot hold one character cell.
    TooSmall {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The pitch is shorter than a line of pixels.
    PitchTooSmall {
        /// The pitch given.
        pitch: u32,
        /// Bytes in one line of pixels.
        needed: u64,
    },
    /// The buffer is shorter than `pitch * height`.
    BufferTooSmall {
        /// `pitch * height`.
        needed: u64,
        /// The buffer's length.
        len: usize,
    },
    /// The cell buffer holds fewer cells than the screen ([`Geometry::cells`]).
    TooFewCells {
        /// The screen's cells.
        needed: usize,
        /// The cell buffer's length.
        len: usize,
    },
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnsupportedBytesPerPixel(n) => write!(
                f,
                "framebuffer has {n} bytes per pixel; only 2, 3 and 4 are supported"
            ),
            Self::BadChannel {
                channel,
                shift,
                bits,
            } => write!(
                f,
                "framebuffer {channel:?} channel ({bits} bits at bit {shift}) is not 1..=8 bits inside the pixel"
            ),
            Self::OverlappingChannels(a, b) => {
                write!(f, "framebuffer {a:?} and {b:?} channels overlap")
            }
            Self::TooSmall { width, height } => write!(
                f,
                "framebuffer {width}x{height} is smaller than one {GLYPH_WIDTH}x{GLYPH_HEIGHT} character"
            ),
            Self::PitchTooSmall { pitch, needed } => write!(
                f,
                "framebuffer pitch {pitch} is shorter than a line of {needed} bytes"
            ),
            Self::BufferTooSmall { needed, len } => write!(
                f,
                "framebuffer memory of {len} bytes is shorter than pitch * height = {needed}"
            ),
            Self::TooFewCells { needed, len } => write!(
                f,
                "the console's buffer of {len} text cells is smaller than the screen's {needed}"
            ),
        }
    }
}

impl core::error::Error for ConsoleError {}

impl PixelFormat {
    /// Checks the pixel size and the channels.
    fn validate(&self) -> Result<(), ConsoleError> {
        if !(2..=4).contains(&self.bytes_per_pixel) {
            return Err(ConsoleError::UnsupportedBytesPerPixel(self.bytes_per_pixel));
        }
        let pixel_bits = u32::from(self.bytes_per_pixel) * 8;
        let channels = self.channels();
        let mut masks = [0u32; 3];
        for (mask, &(channel, shift, bits)) in masks.iter_mut().zip(&channels) {
            if !(1..=8).contains(&bits) || u32::from(shift) + u32::from(bits) > pixel_bits {
                return Err(ConsoleError::BadChannel {
                    channel,
                    shift,
                    bits,
                });
            }
            *mask = ((1u32 << bits) - 1) << shift;
        }
        for i in 0..3 {
            for j in i + 1..3 {
                if masks[i] & masks[j] != 0 {
                    return Err(ConsoleError::OverlappingChannels(
                        channels[i].0,
                        channels[j].0,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The channels as (name, shift, bits).
    fn channels(&self) -> [(Channel, u8, u8); 3] {
        [
            (Channel::Red, self.red_shift, self.red_bits),
            (Channel::Green, self.green_shift, self.green_bits),
            (Channel::Blue, self.blue_shift, self.blue_bits),
        ]
    }

    /// The bytes of one pixel of colour `(r, g, b)` (the first `bytes_per_pixel` count).
    /// Each channel keeps its most significant bits. Needs a validated format.
    fn encode(&self, (r, g, b): (u8, u8, u8)) -> [u8; 4] {
        let field = |value: u8, shift: u8, bits: u8| (u32::from(value) >> (8 - bits)) << shift;
        (field(r, self.red_shift, self.red_bits)
            | field(g, self.green_shift, self.green_bits)
            | field(b, self.blue_shift, self.blue_bits))
        .to_le_bytes()
    }
}

/// The 8x8 glyph for `c`: bit `x` of row `y` set means pixel (x, y) is foreground.
fn glyph(c: char) -> [u8; 8] {
    if c.is_control() {
        return REPLACEMENT;
    }
    if c.is_ascii() {
        return BASIC_LEGACY.get(c as usize).copied().unwrap_or(REPLACEMENT);
    }
    font8x8::LATIN_FONTS
        .get(c)
        .or_else(|| font8x8::GREEK_FONTS.get(c))
        .or_else(|| font8x8::BOX_FONTS.get(c))
        .or_else(|| font8x8::BLOCK_FONTS.get(c))
        .or_else(|| font8x8::HIRAGANA_FONTS.get(c))
        .or_else(|| font8x8::MISC_FONTS.get(c))
        .unwrap_or(REPLACEMENT)
}

/// Bytes of one pixel line of a cell at the widest pixel: the most one write carries.
const CELL_LINE_BYTES: usize = GLYPH_WIDTH as usize * 4;

/// A text console over framebuffer memory: a cursor, colours, the text in RAM, and the
/// drawing.
///
/// Writing never reads video memory, and never touches bytes outside the visible pixels
/// (the padding at the end of each line, when the pitch is longer than a line, stays as
/// it was).
pub struct Console<'a, S: Surface + ?Sized = [u8]> {
    /// The framebuffer memory.
    surface: &'a mut S,
    /// What each character cell shows, row by row (`columns * rows` of them).
    cells: &'a mut [Cell],
    /// The framebuffer's shape (validated).
    geometry: Geometry,
    /// Bytes per pixel.
    bpp: usize,
    /// Bytes per line.
    pitch: usize,
    /// Text columns.
    columns: u32,
    /// Text rows.
    rows: u32,
    /// Cursor column; equal to `columns` after the last column was written (the line
    /// wraps at the next character).
    col: u32,
    /// Cursor row.
    row: u32,
    /// Foreground pixel bytes.
    fg: [u8; 4],
    /// Background pixel bytes.
    bg: [u8; 4],
}

impl<S: Surface + ?Sized> fmt::Debug for Console<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("geometry", &self.geometry)
            .field("col", &self.col)
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

impl<'a, S: Surface + ?Sized> Console<'a, S> {
    /// A console over `surface`, laid out as `geometry` says, keeping its text in
    /// `cells` (at least [`Geometry::cells`] of them; the rest go unused). Checks the
    /// geometry against the surface ([`Geometry::validate`]) and that the cells are
    /// enough. Draws nothing: call [`clear`](Self::clear) to start from a blank screen.
    /// The cells are taken as they are, each saying what its place on the screen shows:
    /// give [`Cell::default`]s, cells whose pixels are unknown to the console (it never
    /// reads them), which a scroll brings up blank until they are drawn.
    pub fn new(
        surface: &'a mut S,
        cells: &'a mut [Cell],
        geometry: Geometry,
    ) -> Result<Self, ConsoleError> {
        geometry.validate(surface.size())?;
        let len = cells.len();
        let Some(cells) = cells.get_mut(..geometry.cells()) else {
            return Err(ConsoleError::TooFewCells {
                needed: geometry.cells(),
                len,
            });
        };
        let format = geometry.format;
        Ok(Self {
            surface,
            cells,
            geometry,
            bpp: usize::from(format.bytes_per_pixel),
            pitch: geometry.pitch as usize,
            columns: geometry.width / GLYPH_WIDTH,
            rows: geometry.height / GLYPH_HEIGHT,
            col: 0,
            row: 0,
            fg: format.encode(DEFAULT_FG),
            bg: format.encode(DEFAULT_BG),
        })
    }

    /// Text columns on the screen.
    pub fn columns(&self) -> u32 {
        self.columns
    }

    /// Text rows on the screen.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Paints every visible pixel in the background colour and moves the cursor to the
    /// top left.
    pub fn clear(&mut self) {
        self.fill_lines(0, self.geometry.height as usize);
        let blank = self.blank();
        self.cells.fill(blank);
        self.col = 0;
        self.row = 0;
    }

    /// Sets the colours of text written from now on.
    pub fn set_colors(&mut self, fg: (u8, u8, u8), bg: (u8, u8, u8)) {
        self.fg = self.geometry.format.encode(fg);
        self.bg = self.geometry.format.encode(bg);
    }

    /// Writes text at the cursor. `\n` starts a new line, `\r` returns to the start of
    /// the line, `\t` fills up to the next tab stop, `\x08` moves one column left (without
    /// erasing; from the first column to the last of the row above, so that a line that
    /// wrapped is erased back over its wrap; it stays in the top left corner), `\x07` (the
    /// bell, which a framebuffer cannot ring) does nothing. Lines wrap at the right edge;
    /// at the bottom the screen scrolls up one text row.
    pub fn write_str(&mut self, s: &str) {
        for c in s.chars() {
            self.write_char(c);
        }
    }

    /// Writes bytes as text (see [`write_str`](Self::write_str)): their valid UTF-8 as it
    /// is, each invalid sequence as one U+FFFD (a BareMetal program's `b_output`, whose
    /// bytes the serial line gets unchanged).
    pub fn write_lossy(&mut self, bytes: &[u8]) {
        for chunk in bytes.utf8_chunks() {
            self.write_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                self.write_char('\u{FFFD}');
            }
        }
    }

    /// Writes one character (see [`write_str`](Self::write_str)).
    fn write_char(&mut self, c: char) {
        match c {
            '\n' => self.newline(),
            '\r' => self.col = 0,
            '\x08' => self.back(),
            '\x07' => {}
            '\t' => {
                self.wrap_if_full();
                let stop = ((self.col / TAB_WIDTH + 1) * TAB_WIDTH).min(self.columns);
                while self.col < stop {
                    self.put(' ');
                }
            }
            c => {
                self.wrap_if_full();
                self.put(c);
            }
        }
    }

    /// Moves the cursor one column left; from the first column to the last of the row
    /// above (none above the top row).
    fn back(&mut self) {
        if self.col > 0 {
            self.col -= 1;
        } else if self.row > 0 {
            self.row -= 1;
            self.col = self.columns - 1;
        }
    }

    /// Moves to the next line if the last one is full.
    fn wrap_if_full(&mut self) {
        if self.col >= self.columns {
            self.newline();
        }
    }

    /// Puts `c` at the cursor (which is on the screen) in the current colours and
    /// advances it.
    fn put(&mut self, c: char) {
        let index = (self.row * self.columns + self.col) as usize;
        let (fg, bg) = (self.fg, self.bg);
        self.show(
            index,
            Cell {
                ch: Some(c),
                fg,
                bg,
            },
        );
        self.col += 1;
    }

    /// A space in the current colours.
    fn blank(&self) -> Cell {
        Cell {
            ch: Some(' '),
            fg: self.fg,
            bg: self.bg,
        }
    }

    /// Moves the cursor to the start of the next line, scrolling at the bottom.
    fn newline(&mut self) {
        self.col = 0;
        if self.row + 1 < self.rows {
            self.row += 1;
        } else {
            self.scroll();
        }
    }

    /// Moves every text row up by one and blanks the last, in the cells; only the cells
    /// whose contents change are drawn. A cell never drawn (its pixels unknown) comes up
    /// blank.
    fn scroll(&mut self) {
        let (columns, blank) = (self.columns as usize, self.blank());
        for index in 0..self.cells.len() {
            let below = self.cells.get(index + columns).copied();
            self.show(
                index,
                below.filter(|cell| cell.ch.is_some()).unwrap_or(blank),
            );
        }
    }

    /// Makes cell `index` show `cell`, drawing it unless it already does.
    fn show(&mut self, index: usize, cell: Cell) {
        if self.cells[index] == cell {
            return;
        }
        self.cells[index] = cell;
        let columns = self.columns as usize;
        let (x, top) = (index % columns, index / columns * GLYPH_HEIGHT as usize);
        let bpp = self.bpp;
        let rows = glyph(cell.ch.unwrap_or(' '));
        let mut line = [0u8; CELL_LINE_BYTES];
        let line = &mut line[..GLYPH_WIDTH as usize * bpp];
        for dy in 0..GLYPH_HEIGHT as usize {
            let bits = rows[dy / 2];
            for (dx, pixel) in line.chunks_exact_mut(bpp).enumerate() {
                let colour = if bits >> dx & 1 == 1 {
                    &cell.fg
                } else {
                    &cell.bg
                };
                pixel.copy_from_slice(&colour[..bpp]);
            }
            let start = (top + dy) * self.pitch + x * line.len();
            self.surface.write(start, line);
        }
    }

    /// Paints pixel lines `first..end` in the background colour, eight pixels a write.
    fn fill_lines(&mut self, first: usize, end: usize) {
        let line_bytes = self.geometry.width as usize * self.bpp;
        let mut run = [0u8; CELL_LINE_BYTES];
        let run = &mut run[..GLYPH_WIDTH as usize * self.bpp];
        for pixel in run.chunks_exact_mut(self.bpp) {
            pixel.copy_from_slice(&self.bg[..self.bpp]);
        }
        for y in first..end {
            for at in (0..line_bytes).step_by(run.len()) {
                let len = run.len().min(line_bytes - at);
                self.surface.write(y * self.pitch + at, &run[..len]);
            }
        }
    }
}

impl<S: Surface + ?Sized> fmt::Write for Console<'_, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        Console::write_str(self, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
