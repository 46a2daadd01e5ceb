//! One accepted connection: requests read into a bounded buffer, answered one at a
//! time in order (pipelined requests wait in the buffer), each answer's head and body
//! written straight from where they live into the socket's send buffer.

use alloc::vec::Vec;
use core::cell::RefCell;

use rexo_http::{Page, Response, Site, Step};
use rexo_net::{Connection, Stack};

use crate::status::Counters;

/// A connection silent this long (no byte moved either way) is closed, or reset if it
/// was in the middle of an answer: this bounds what a slow or vanished client holds.
/// Shorter than the TCP timeout (`TCP_OPTIONS`), so that the server, not the stack,
/// decides how an idle connection ends.
pub const IDLE_TIMEOUT_NS: u64 = 15_000_000_000;
/// While lingering (see [`Client`]), the connection closes once its peer has sent
/// nothing for this long.
pub const LINGER_QUIET_NS: u64 = 250_000_000;
/// The longest a connection lingers; a peer still sending then is reset.
pub const LINGER_MAX_NS: u64 = 5_000_000_000;

/// An answer being sent and how much of it was queued.
struct Sending {
    /// The answer.
    response: Response,
    /// Bytes of head and body, in that order, queued so far.
    queued: usize,
}

impl Sending {
    /// Bytes of the whole answer.
    fn len(&self) -> usize {
        self.response.head().len() + self.response.body().bytes().len()
    }
}

/// How a finished connection is to be given back to the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// In order: what was queued is still sent, then a FIN.
    Close,
    /// At once, with a reset.
    Abort,
}

/// What one [`Client::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The connection stays; `moved` says whether any byte moved.
    Open {
        /// Whether the step read or queued anything.
        moved: bool,
    },
    /// The connection is done; give it back as said.
    Finished(Ending),
}

/// One connection. After an answer that closes the connection because the request was
/// refused (400, 413, 431...), the client may still be sending (the rest of a 100 KB
/// head): closing at once would leave those bytes unread, and peers answer unread bytes
/// with a reset that can destroy the answer in flight. So the connection lingers,
/// reading and discarding, until the peer closes or goes quiet, as Apache's lingering
/// close does.
pub struct Client {
    /// The connection.
    connection: Connection,
    /// Request bytes read and not yet answered, at most the site's
    /// [`buffer_bound`](rexo_http::Limits::buffer_bound).
    inbox: Vec<u8>,
    /// The answer being sent.
    sending: Option<Sending>,
    /// The peer closed its side: everything it sent is in `inbox` or answered.
    peer_closed: bool,
    /// When the connection started lingering, and when the peer last sent a byte since.
    lingering: Option<(u64, u64)>,
    /// When a byte last moved either way.
    last_activity_ns: u64,
}

impl Client {
    /// A client for a newly accepted connection at `now_ns`.
    pub fn new(connection: Connection, now_ns: u64) -> Client {
        Client {
            connection,
            inbox: Vec::new(),
            sending: None,
            peer_closed: false,
            lingering: None,
            last_activity_ns: now_ns,
        }
    }

    /// The connection, to give back to the stack once finished.
    pub fn into_connection(self) -> Connection {
        self.connection
    }

    /// Request bytes waiting in the buffer.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.inbox.len()
    }

    /// Whether the client is between answers (nothing being sent).
    pub fn is_between_answers(&self) -> bool {
        self.sending.is_none()
    }

    /// Moves the connection on as far as it can without waiting: sends what fits of
    /// the current answer, reads requests, answers them in order. `pages` supplies the
    /// dynamic pages (see [`Site::serve`]).
    pub fn step(
        &mut self,
        stack: &mut Stack,
        site: &Site,
        pages: &mut dyn FnMut(&[u8]) -> Page,
        counters: &RefCell<Counters>,
        now_ns: u64,
    ) -> Progress {
        let mut moved = false;
        loop {
            if let Some((since_ns, last_byte_ns)) = self.lingering {
                return self.linger(stack, counters, now_ns, since_ns, last_byte_ns, moved);
            }
            if let Some(sending) = &mut self.sending {
                match queue_answer(stack, &self.connection, sending) {
                    Ok(0) => {}
                    Ok(_) => moved = true,
                    Err(_) => {
                        // The peer closed or reset mid-answer: only this connection ends.
                        counters.borrow_mut().broken += 1;
                        return Progress::Finished(Ending::Abort);
                    }
                }
                if sending.queued < sending.len() {
                    return self.open_or_idle(moved, now_ns, counters);
                }
                let response = &sending.response;
                let refused = response.status().code() >= 400;
                let closes = response.closes();
                self.sending = None;
                if closes && refused && !self.peer_closed {
                    self.lingering = Some((now_ns, now_ns));
                    continue;
                }
                if closes {
                    return Progress::Finished(Ending::Close);
                }
            }
            moved |= self.read(stack, site.limits.buffer_bound());
            if self.inbox.is_empty() && self.peer_closed {
                return Progress::Finished(Ending::Close);
            }
            if self.inbox.is_empty() {
                return self.open_or_idle(moved, now_ns, counters);
            }
            match site.serve(&self.inbox, pages) {
                Step::NeedMore if self.peer_closed => {
                    // A request cut off by the peer's close: nothing can be answered.
                    return Progress::Finished(Ending::Close);
                }
                Step::NeedMore => return self.open_or_idle(moved, now_ns, counters),
                Step::Answer { response, consumed } => {
                    let mut counters = counters.borrow_mut();
                    counters.answered(response.status().code());
                    counters.head_bytes += response.head().len() as u64;
                    counters.body_bytes += response.body().bytes().len() as u64;
                    self.inbox.drain(..consumed);
                    self.sending = Some(Sending {
                        response,
                        queued: 0,
                    });
                    moved = true;
                }
            }
        }
    }

    /// Reads what the peer sent into `inbox`, up to `bound` bytes in all; whether any
    /// byte came.
    fn read(&mut self, stack: &mut Stack, bound: usize) -> bool {
        let mut moved = false;
        // `read_with` lends one contiguous part of the receive ring: a second call gets
        // the part after the wrap.
        while !self.peer_closed && self.inbox.len() < bound {
            let room = bound - self.inbox.len();
            let inbox = &mut self.inbox;
            match stack.read_with(&self.connection, |data| {
                let take = data.len().min(room);
                inbox.extend_from_slice(&data[..take]);
                take
            }) {
                Ok(0) => break,
                Ok(_) => moved = true,
                Err(_) => self.peer_closed = true,
            }
        }
        moved
    }

    /// The connection stays open, unless it was idle too long.
    fn open_or_idle(&mut self, moved: bool, now_ns: u64, counters: &RefCell<Counters>) -> Progress {
        if moved {
            self.last_activity_ns = now_ns;
        } else if now_ns.saturating_sub(self.last_activity_ns) > IDLE_TIMEOUT_NS {
            counters.borrow_mut().idle_closed += 1;
            return Progress::Finished(if self.sending.is_some() {
                Ending::Abort
            } else {
                Ending::Close
            });
        }
        Progress::Open { moved }
    }

    /// Reads and discards what the peer still sends after a refusal; closes when it
    /// closes or goes quiet, resets it if it keeps sending.
    fn linger(
        &mut self,
        stack: &mut Stack,
        counters: &RefCell<Counters>,
        now_ns: u64,
        since_ns: u64,
        mut last_byte_ns: u64,
        mut moved: bool,
    ) -> Progress {
        loop {
            match stack.read_with(&self.connection, |data| data.len()) {
                Ok(0) => break,
                Ok(_) => {
                    moved = true;
                    last_byte_ns = now_ns;
                }
                Err(_) => return Progress::Finished(Ending::Close),
            }
        }
        if now_ns.saturating_sub(since_ns) > LINGER_MAX_NS {
            counters.borrow_mut().linger_reset += 1;
            return Progress::Finished(Ending::Abort);
        }
        if now_ns.saturating_sub(last_byte_ns) > LINGER_QUIET_NS {
            return Progress::Finished(Ending::Close);
        }
        self.lingering = Some((since_ns, last_byte_ns));
        Progress::Open { moved }
    }
}

/// Queues as much of the answer as the send buffer takes; the bytes queued, or the
/// stack's error once the connection cannot send.
///
/// The head comes from the file's prebuilt heads (or was built for this answer) and the
/// body straight from the file table, copied once, into smoltcp's send buffer: the one
/// copy smoltcp costs, since it segments and retransmits from its own buffer. Cheetah
/// went further: its TCP kept no send buffer but retransmitted from the file cache
/// (`Body::File` holds the file alive until acknowledged for that) and took each
/// segment's checksum from `StaticFile::segment_checksum`. Both need a TCP of our own
/// whose segments point into the file, which `rexo-net` keeps open as a choice to
/// make by measurement; with smoltcp the checksums are computed (or offloaded) per frame.
/// Head and body are written back to back in one lend, so smoltcp fills each segment
/// to the MSS across the boundary.
fn queue_answer(
    stack: &mut Stack,
    connection: &Connection,
    sending: &mut Sending,
) -> Result<usize, rexo_net::NetError> {
    let mut total = 0;
    loop {
        let head = sending.response.head();
        let body = sending.response.body().bytes();
        if sending.queued >= head.len() + body.len() {
            return Ok(total);
        }
        let queued = sending.queued;
        let written = stack.write_with(connection, |room| {
            copy_from_parts(&[head, body], queued, room)
        })?;
        if written == 0 {
            return Ok(total);
        }
        sending.queued += written;
        total += written;
    }
}

/// Copies the bytes of `parts`, taken as one run, from `offset` into `room`; returns how
/// many fitted.
fn copy_from_parts(parts: &[&[u8]], offset: usize, room: &mut [u8]) -> usize {
    let mut skip = offset;
    let mut filled = 0;
    for part in parts {
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        let piece = &part[skip..];
        skip = 0;
        let take = piece.len().min(room.len() - filled);
        room[filled..filled + take].copy_from_slice(&piece[..take]);
        filled += take;
        if filled == room.len() {
            break;
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::copy_from_parts;

    #[test]
    fn parts_are_copied_as_one_run_from_any_offset_into_any_room() {
        let head: &[u8] = b"HEAD\r\n\r\n";
        let body: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let whole: Vec<u8> = head.iter().chain(&body).copied().collect();
        for offset in [
            0,
            3,
            head.len() - 1,
            head.len(),
            head.len() + 1,
            2000,
            whole.len(),
        ] {
            for room_len in [0, 1, 5, head.len(), 1460, 4096] {
                let mut room = vec![0xeeu8; room_len];
                let filled = copy_from_parts(&[head, &body], offset, &mut room);
                let expected = &whole[offset..(offset + room_len).min(whole.len())];
                assert_eq!(
                    &room[..filled],
                    expected,
                    "offset {offset}, room {room_len}"
                );
            }
        }
    }

    #[test]
    fn empty_parts_are_skipped() {
        let mut room = [0u8; 4];
        assert_eq!(copy_from_parts(&[b"", b"ab", b"", b"cd"], 1, &mut room), 3);
        assert_eq!(&room[..3], b"bcd");
    }
}
