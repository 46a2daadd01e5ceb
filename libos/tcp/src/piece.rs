//! What applications queue for sending: [`Piece`]s, each a small owned buffer (a
//! prebuilt response header) or a range of a shared [`Blob`] (a file in the cache).
//! A connection keeps the pieces, not copies of their bytes, until the peer
//! acknowledges them, and sends and retransmits straight from them.

use crate::checksum::{self, Blob};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// A run of bytes queued for sending.
#[derive(Clone, Debug)]
pub struct Piece(Kind);

#[derive(Clone, Debug)]
enum Kind {
    /// Bytes the connection owns (small: a response header).
    Owned { bytes: Vec<u8>, start: usize },
    /// A range of a shared blob, whose block sums give the checksum.
    Shared {
        blob: Arc<Blob>,
        start: usize,
        end: usize,
    },
}

impl Piece {
    /// Owned bytes: summed when sent, so keep them small (headers).
    pub fn owned(bytes: Vec<u8>) -> Piece {
        Piece(Kind::Owned { bytes, start: 0 })
    }

    /// The bytes `start..end` of `blob`, shared; `None` if the range is not within it.
    pub fn shared(blob: Arc<Blob>, start: usize, end: usize) -> Option<Piece> {
        (start <= end && end <= blob.bytes().len()).then_some(Piece(Kind::Shared {
            blob,
            start,
            end,
        }))
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes not yet acknowledged.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.0 {
            Kind::Owned { bytes, start } => &bytes[*start..],
            Kind::Shared { blob, start, end } => &blob.bytes()[*start..*end],
        }
    }

    /// The one's complement sum of `bytes()[from..to]` as if it began a payload: from
    /// the blob's stored block sums for shared bytes, summed here for owned ones.
    pub(crate) fn sum(&self, from: usize, to: usize) -> u16 {
        match &self.0 {
            Kind::Owned { bytes, start } => checksum::sum(&bytes[start + from..start + to]),
            Kind::Shared { blob, start, .. } => blob.sum_of(start + from, start + to),
        }
    }

    /// Drops the first `n` bytes (acknowledged).
    pub(crate) fn consume(&mut self, n: usize) {
        match &mut self.0 {
            Kind::Owned { start, .. } | Kind::Shared { start, .. } => *start += n,
        }
    }
}
