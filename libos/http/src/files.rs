//! The static file table: each file with everything serving it needs, computed once.

use crate::response::{HeadBuilder, Persistence, Status};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use rexo_tcp::Blob;

/// A file as httpd serves it.
#[derive(Debug)]
pub struct StaticFile {
    /// The bytes (borrowed from the app image or owned: read from disk, generated),
    /// with the sums of their 64-byte blocks: the file cache and, shared with the
    /// connections sending it, the TCP retransmission pool.
    content: Arc<Blob>,
    /// The `Content-Type` value.
    content_type: &'static str,
    /// The strong entity tag, quotes included.
    etag: Box<[u8]>,
    /// The `200 OK` head for each [`Persistence`], in its order, summed the same way.
    heads: [Arc<Blob>; 3],
}

impl StaticFile {
    /// Prepares `content` for serving under `path` (whose extension picks the type).
    fn new(path: &str, content: Blob) -> StaticFile {
        let content_type = content_type_for(path);
        let etag = entity_tag(content.bytes());
        let head = |persistence| {
            let mut head = HeadBuilder::new(Status::Ok);
            head.field(b"Content-Type", content_type.as_bytes());
            head.number(b"Content-Length", content.bytes().len() as u64);
            head.field(b"ETag", &etag);
            head.field(b"Accept-Ranges", b"bytes");
            Arc::new(Blob::new(head.finish(persistence)))
        };
        let heads = Persistence::ALL.map(head);
        StaticFile {
            content: Arc::new(content),
            content_type,
            etag,
            heads,
        }
    }

    /// The file's bytes.
    pub fn content(&self) -> &[u8] {
        self.content.bytes()
    }

    /// The file's bytes with their block sums, to queue ranges of on a TCP connection
    /// (`rexo_tcp::Piece::shared`) without copying.
    pub fn blob(&self) -> &Arc<Blob> {
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
        self.heads[persistence as usize].bytes()
    }

    /// [`ok_head`](Self::ok_head) as a blob, to queue on a TCP connection as it is.
    pub fn ok_head_blob(&self, persistence: Persistence) -> &Arc<Blob> {
        &self.heads[persistence as usize]
    }

    /// The one's complement sum (not complemented, see
    /// [`ones_complement_sum`](crate::ones_complement_sum)) of the `len` content bytes at
    /// `offset`, as if they started a TCP payload: the payload's share of its checksum.
    /// `None` if the range leaves the file.
    ///
    /// The file's [`Blob`] summed each 64-byte block once at insertion: whole blocks
    /// come from those sums, only the bytes of a partial first and last block are read.
    /// `rexo-tcp` composes the checksum of every segment it sends from the same sums.
    pub fn segment_checksum(&self, offset: usize, len: usize) -> Option<u16> {
        self.content.sum_range(offset, offset.checked_add(len)?)
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
        self.insert(path, Blob::new_static(content))
    }

    /// Adds a file whose bytes the table owns (read from disk, generated), as
    /// [`insert_static`](Self::insert_static) does.
    pub fn insert_owned(&mut self, path: &str, content: Vec<u8>) -> Option<Arc<StaticFile>> {
        self.insert(path, Blob::new(content))
    }

    /// Prepares and stores a file.
    fn insert(&mut self, path: &str, content: Blob) -> Option<Arc<StaticFile>> {
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
