//! The static file table: each file with everything serving it needs, computed once.

use crate::response::{HeadBuilder, Persistence, Status};
use crate::{add_sums, ones_complement_sum};
use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

/// The chunk size of the precomputed checksums: the TCP payload of a full segment on a
/// 1500-byte Ethernet MTU with no TCP options (timestamps would make it 1448, and
/// segments would then straddle chunks).
pub const SEGMENT: usize = 1460;

/// A file as httpd serves it.
#[derive(Debug)]
pub struct StaticFile {
    /// The bytes, borrowed from the app image or owned (read from disk).
    content: Cow<'static, [u8]>,
    /// The `Content-Type` value.
    content_type: &'static str,
    /// The strong entity tag, quotes included.
    etag: Box<[u8]>,
    /// The `200 OK` head for each [`Persistence`], in its order.
    heads: [Box<[u8]>; 3],
    /// Chunk sums on the grid from the body's start, then on the grid of each prebuilt
    /// head (without repeats).
    grids: Vec<ChunkSums>,
}

/// The one's complement sums of a file's content cut into [`SEGMENT`]-byte chunks on
/// one grid: chunk boundaries at the offsets `phase + k * SEGMENT` (and at 0).
#[derive(Debug)]
pub(crate) struct ChunkSums {
    /// Where the grid's boundaries fall, modulo [`SEGMENT`].
    phase: usize,
    /// The sum of each chunk, the first one (from 0 to `phase`) included.
    sums: Box<[u16]>,
}

impl ChunkSums {
    /// The sums of `content` on the grid of `phase`.
    fn new(content: &[u8], phase: usize) -> ChunkSums {
        let first_end = if phase == 0 { SEGMENT } else { phase };
        let first = first_end.min(content.len());
        let sums = core::iter::once(&content[..first])
            .chain(content[first..].chunks(SEGMENT))
            .map(ones_complement_sum)
            .collect();
        ChunkSums { phase, sums }
    }

    /// How far the grid is shifted back from multiples of [`SEGMENT`].
    fn shift(&self) -> usize {
        (SEGMENT - self.phase) % SEGMENT
    }

    /// Whether a chunk starts or ends at `position` in `length` bytes.
    pub(crate) fn has_boundary_at(&self, position: usize, length: usize) -> bool {
        position == 0 || position == length || (position + self.shift()).is_multiple_of(SEGMENT)
    }

    /// The index, start and end of the chunk holding `position` in `length` bytes.
    fn chunk_at(&self, position: usize, length: usize) -> (usize, usize, usize) {
        let index = (position + self.shift()) / SEGMENT;
        let start = (index * SEGMENT).saturating_sub(self.shift());
        let end = ((index + 1) * SEGMENT - self.shift()).min(length);
        (index, start, end)
    }
}

impl StaticFile {
    /// Prepares `content` for serving under `path` (whose extension picks the type).
    fn new(path: &str, content: Cow<'static, [u8]>) -> StaticFile {
        let content_type = content_type_for(path);
        let etag = entity_tag(&content);
        let head = |persistence| {
            let mut head = HeadBuilder::new(Status::Ok);
            head.field(b"Content-Type", content_type.as_bytes());
            head.number(b"Content-Length", content.len() as u64);
            head.field(b"ETag", &etag);
            head.field(b"Accept-Ranges", b"bytes");
            head.finish(persistence).into_boxed_slice()
        };
        let heads = Persistence::ALL.map(head);
        // A 200 answer packed to full segments carries its head and the first
        // SEGMENT - head bytes of the body in its first segment: each head length
        // gives the grid on which all of that answer's later segments fall.
        let mut phases = vec![0];
        for head in &heads {
            let phase = (SEGMENT - head.len() % SEGMENT) % SEGMENT;
            if !phases.contains(&phase) {
                phases.push(phase);
            }
        }
        let grids = phases
            .into_iter()
            .map(|phase| ChunkSums::new(&content, phase))
            .collect();
        StaticFile {
            content,
            content_type,
            etag,
            heads,
            grids,
        }
    }

    /// The file's bytes.
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    /// The `Content-Type` value.
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// The strong entity tag, with its quotes, as sent in `ETag`.
    pub fn etag(&self) -> &[u8] {
        &self.etag
    }

    /// The prebuilt head of a `200 OK` answer (GET and HEAD alike) on a connection
    /// that continues as `persistence` says.
    pub fn ok_head(&self, persistence: Persistence) -> &[u8] {
        &self.heads[persistence as usize]
    }

    /// The one's complement sum (not complemented, see
    /// [`ones_complement_sum`](crate::ones_complement_sum)) of the `len` content bytes at
    /// `offset`, as if they started a TCP payload: the payload's share of its checksum.
    /// `None` if the range leaves the file.
    ///
    /// Whole chunks come from sums computed at insertion; only unaligned ends are read.
    /// The chunks lie on [`SEGMENT`]-byte grids from the body's start and from the end
    /// of a first segment that holds a prebuilt `200` head, so every segment of a body
    /// cut either way, whether packed behind its head or not, reads no file byte.
    pub fn segment_checksum(&self, offset: usize, len: usize) -> Option<u16> {
        let end = offset.checked_add(len)?;
        let length = self.content.len();
        if end > length {
            return None;
        }
        let grid = self.grid_for(offset, end);
        let mut sum = 0;
        let mut position = offset;
        while position < end {
            let (index, chunk_start, chunk_end) = grid.chunk_at(position, length);
            let piece_end = chunk_end.min(end);
            let piece = if position == chunk_start && piece_end == chunk_end {
                grid.sums[index]
            } else {
                ones_complement_sum(&self.content[position..piece_end])
            };
            // A piece at an odd distance from the payload's start has its bytes in the
            // other halves of the payload's words: swap its sum (RFC 1071, 2(B)).
            let piece = if (position - offset) % 2 == 1 {
                piece.swap_bytes()
            } else {
                piece
            };
            sum = add_sums(sum, piece);
            position = piece_end;
        }
        Some(sum)
    }

    /// The grid that serves the bytes from `offset` to `end` best: one with chunk
    /// boundaries at both, else at one of them, else the grid from the body's start.
    pub(crate) fn grid_for(&self, offset: usize, end: usize) -> &ChunkSums {
        let length = self.content.len();
        let aligned = |position| move |grid: &&ChunkSums| grid.has_boundary_at(position, length);
        let both = |grid: &&ChunkSums| aligned(offset)(grid) && aligned(end)(grid);
        let grids = || self.grids.iter();
        grids()
            .find(both)
            .or_else(|| grids().find(aligned(offset)))
            .or_else(|| grids().find(aligned(end)))
            .unwrap_or(&self.grids[0])
    }
}

/// The strong entity tag of `content`: its length and a 64-bit FNV-1a hash, quoted. Two
/// contents that differ get different tags unless the hash collides at the same length.
fn entity_tag(content: &[u8]) -> Box<[u8]> {
    let hash = content
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let mut tag = Vec::with_capacity(36);
    tag.push(b'"');
    push_hex(&mut tag, content.len() as u64);
    tag.push(b'-');
    push_hex(&mut tag, hash);
    tag.push(b'"');
    tag.into_boxed_slice()
}

/// Appends `value` in lower-case hexadecimal without leading zeros.
fn push_hex(out: &mut Vec<u8>, value: u64) {
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(b"0123456789abcdef"[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

/// The `Content-Type` of a path, from its extension (without case): html, css, js,
/// json, txt, png, jpg, gif, svg, ico, wasm; anything else is `application/octet-stream`.
pub fn content_type_for(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((_, extension)) = name.rsplit_once('.') else {
        return "application/octet-stream";
    };
    const TYPES: [(&str, &str); 13] = [
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("json", "application/json"),
        ("txt", "text/plain; charset=utf-8"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("svg", "image/svg+xml"),
        ("ico", "image/x-icon"),
        ("wasm", "application/wasm"),
    ];
    TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(extension))
        .map_or("application/octet-stream", |(_, content_type)| content_type)
}

/// The files a site serves, by path.
#[derive(Debug, Default)]
pub struct FileTable {
    files: BTreeMap<Box<[u8]>, Arc<StaticFile>>,
}

impl FileTable {
    /// An empty table.
    pub fn new() -> FileTable {
        FileTable::default()
    }

    /// Adds a file from the app image under `path` (as requests name it after
    /// percent-decoding, such as `/index.html`), replacing and returning any file there.
    pub fn insert_static(&mut self, path: &str, content: &'static [u8]) -> Option<Arc<StaticFile>> {
        self.insert(path, Cow::Borrowed(content))
    }

    /// Adds a file whose bytes the table owns (read from disk, generated), as
    /// [`insert_static`](Self::insert_static) does.
    pub fn insert_owned(&mut self, path: &str, content: Vec<u8>) -> Option<Arc<StaticFile>> {
        self.insert(path, Cow::Owned(content))
    }

    /// Prepares and stores a file.
    fn insert(&mut self, path: &str, content: Cow<'static, [u8]>) -> Option<Arc<StaticFile>> {
        let file = Arc::new(StaticFile::new(path, content));
        self.files.insert(path.as_bytes().into(), file)
    }

    /// Removes the file at `path`; answers already holding it keep it alive until sent.
    pub fn remove(&mut self, path: &str) -> Option<Arc<StaticFile>> {
        self.files.remove(path.as_bytes())
    }

    /// The file at `path` (decoded, without query).
    pub fn get(&self, path: &[u8]) -> Option<&Arc<StaticFile>> {
        self.files.get(path)
    }

    /// How many files the table holds.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the table holds no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
