//! The TCP under httpd's port, either of two over one `rexo-net` stack: smoltcp (a
//! listener of the stack; answers copied into its send buffers) or Rexo's own TCP
//! (`Stack::serve_own`; answers queued as pieces of the file cache, sent and
//! retransmitted from there with their checksums precomputed). The connections'
//! logic (`client.rs`) is the same over both.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use rexo_http::Response;
use rexo_net::rexo_tcp::{self, ConnId, Piece};
use rexo_net::{Connection, Listener, NetError, Stack, TcpOptions};

use crate::Places;

/// Which TCP serves the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tcp {
    /// smoltcp, through `rexo-net`'s listeners.
    Smoltcp,
    /// Rexo's own TCP, `rexo-tcp`.
    Rexo,
}

impl Tcp {
    /// Its name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Tcp::Smoltcp => "smoltcp",
            Tcp::Rexo => "rexo-tcp",
        }
    }
}

/// One accepted connection, of whichever TCP.
#[derive(Debug)]
pub enum Link {
    /// A smoltcp connection.
    Smoltcp(Connection),
    /// A `rexo-tcp` connection.
    Rexo(ConnId),
}

impl Link {
    /// Whether [`Transport::shutdown`] can queue the connection's FIN while the app keeps
    /// reading it: on `rexo-tcp`, not on smoltcp.
    pub fn half_closes(&self) -> bool {
        matches!(self, Link::Rexo(_))
    }
}

/// Why a connection gives no more bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The peer closed its side (everything it sent was read), or smoltcp's
    /// connection ended either way (it does not say which).
    Closed,
    /// `rexo-tcp`'s connection was reset by the peer or timed out.
    Broken,
}

/// An answer being queued on a connection.
pub struct Sending {
    /// Its status code.
    pub status: u16,
    /// Whether the connection closes after it.
    pub closes: bool,
    /// What is left to queue.
    rest: Rest,
}

/// What of an answer is left to queue, as its TCP takes it.
enum Rest {
    /// For smoltcp: the answer, and how many bytes of head and body were copied.
    Copied {
        /// The answer.
        response: Response,
        /// Bytes queued so far.
        queued: usize,
    },
    /// For `rexo-tcp`: the pieces not yet queued.
    Pieces(VecDeque<Piece>),
}

impl Sending {
    /// Whether everything was queued.
    pub fn is_queued(&self) -> bool {
        match &self.rest {
            Rest::Copied { response, queued } => *queued >= response.sent_len(),
            Rest::Pieces(pieces) => pieces.is_empty(),
        }
    }
}

/// The stack and the TCP serving the port.
pub struct Transport {
    /// The stack.
    pub stack: Stack,
    /// The TCP.
    pub tcp: Tcp,
    /// smoltcp's listener, with [`Tcp::Smoltcp`].
    listener: Option<Listener>,
    /// With [`Tcp::Smoltcp`], the most sockets closed in order the stack may hold
    /// (each with its buffers, until its peer took the last answer): the core's
    /// draining places ([`Places::draining`]).
    max_closing: usize,
    /// Where `rexo-tcp` copies received bytes before they join a request buffer: made
    /// once, since a buffer zeroed per read costs more than the read (under TCG).
    scratch: Vec<u8>,
}

/// Bytes of [`Transport::scratch`].
const SCRATCH: usize = 4096;

impl Transport {
    /// Serves `port` on `stack` with `tcp`: smoltcp's listener with `options` and the
    /// backlog and draining places of `places`, or our own TCP with `config`.
    pub fn serve(
        mut stack: Stack,
        tcp: Tcp,
        port: u16,
        (places, options): (Places, TcpOptions),
        config: rexo_tcp::Config,
    ) -> Result<Transport, NetError> {
        let listener = match tcp {
            Tcp::Smoltcp => Some(stack.listen(port, places.backlog, options)?),
            Tcp::Rexo => {
                stack.serve_own(port, config)?;
                None
            }
        };
        Ok(Transport {
            stack,
            tcp,
            listener,
            max_closing: places.draining,
            scratch: alloc::vec![0; SCRATCH],
        })
    }

    /// The next connection whose handshake finished.
    pub fn accept(&mut self) -> Option<Link> {
        match &self.listener {
            Some(listener) => self
                .stack
                .accept(listener)
                .expect(OWN_STACK)
                .map(Link::Smoltcp),
            None => self.stack.own_tcp()?.accept().map(Link::Rexo),
        }
    }

    /// Moves up to `bound - inbox.len()` received bytes into `inbox`; how many, or
    /// why none will come.
    pub fn read(&mut self, link: &Link, inbox: &mut Vec<u8>, bound: usize) -> Result<usize, Gone> {
        let room = bound.saturating_sub(inbox.len());
        match link {
            // `read_with` lends one contiguous part of the receive ring at a time.
            Link::Smoltcp(connection) => self
                .stack
                .read_with(connection, |data| {
                    let take = data.len().min(room);
                    inbox.extend_from_slice(&data[..take]);
                    take
                })
                .map_err(|_| Gone::Closed),
            Link::Rexo(id) => {
                let take = room.min(SCRATCH);
                let own = self.stack.own_tcp().ok_or(Gone::Broken)?;
                let read = own.recv(*id, &mut self.scratch[..take]).map_err(gone)?;
                inbox.extend_from_slice(&self.scratch[..read]);
                Ok(read)
            }
        }
    }

    /// Reads and drops what the peer sent; how many bytes, or why none will come.
    pub fn discard(&mut self, link: &Link) -> Result<usize, Gone> {
        match link {
            Link::Smoltcp(connection) => self
                .stack
                .read_with(connection, |data| data.len())
                .map_err(|_| Gone::Closed),
            Link::Rexo(id) => {
                let own = self.stack.own_tcp().ok_or(Gone::Broken)?;
                own.recv(*id, &mut self.scratch).map_err(gone)
            }
        }
    }

    /// The bytes queued on the connection that wait for the peer's acknowledgment.
    pub fn unacknowledged(&mut self, link: &Link) -> usize {
        match link {
            Link::Smoltcp(connection) => self.stack.unacknowledged(connection).expect(OWN_STACK),
            Link::Rexo(id) => self
                .own()
                .map_or(0, |own| own.unacknowledged(*id).unwrap_or(0)),
        }
    }

    /// Prepares `response` for queueing on this TCP.
    pub fn sending(&self, response: Response) -> Sending {
        let (status, closes) = (response.status().code(), response.closes());
        let rest = match self.tcp {
            Tcp::Smoltcp => Rest::Copied {
                response,
                queued: 0,
            },
            Tcp::Rexo => Rest::Pieces(response.into_pieces().into()),
        };
        Sending {
            status,
            closes,
            rest,
        }
    }

    /// Queues as much of `sending` as the connection takes; how many bytes were
    /// queued, or `Err` once the connection cannot send (the peer reset it, or it broke).
    ///
    /// smoltcp copies head (its `Date` line included) and body, back to back so that
    /// segments are filled to the MSS across the boundaries, into its send buffer: the copy smoltcp costs, since it
    /// segments and retransmits from its own buffer. `rexo-tcp` keeps the pieces (the
    /// file's prebuilt head and a range of its bytes, both `Blob`s of the file cache)
    /// until they are acknowledged and sends and retransmits from them, the way Cheetah
    /// did; a connection holds a bounded number of pieces, so a client that stops
    /// reading holds up only its own answers.
    pub fn queue(&mut self, link: &Link, sending: &mut Sending) -> Result<usize, ()> {
        let mut moved = 0;
        match (&mut sending.rest, link) {
            (Rest::Copied { response, queued }, Link::Smoltcp(connection)) => {
                let [fields, date] = response.head_parts();
                let parts = [fields, date, response.body().bytes()];
                let total = response.sent_len();
                loop {
                    if *queued >= total {
                        return Ok(moved);
                    }
                    let at = *queued;
                    let written = self
                        .stack
                        .write_with(connection, |room| copy_from_parts(&parts, at, room))
                        .map_err(drop)?;
                    if written == 0 {
                        return Ok(moved);
                    }
                    *queued += written;
                    moved += written;
                }
            }
            (Rest::Pieces(pieces), Link::Rexo(id)) => {
                let own = self.own()?;
                while let Some(piece) = pieces.pop_front() {
                    // `send` takes the piece even when it refuses it: keep a copy to
                    // try again (a blob's count, or a small owned head or text).
                    match own.send(*id, piece.clone()) {
                        Ok(()) => moved += piece.len(),
                        Err(rexo_tcp::Error::QueueFull) => {
                            pieces.push_front(piece);
                            break;
                        }
                        Err(_) => return Err(()),
                    }
                }
                Ok(moved)
            }
            // A `Sending` is made by the transport of its connection.
            _ => Err(()),
        }
    }

    /// Queues a FIN after what is queued while the app keeps the connection, so that it
    /// can see the last answer acknowledged before it gives the connection back with
    /// [`finish`](Self::finish); whether it did. Only on `rexo-tcp`: `rexo-net` offers no
    /// half-close of a smoltcp connection, whose FIN goes at `finish`.
    pub fn shutdown(&mut self, link: &Link) -> bool {
        match link {
            Link::Smoltcp(_) => false,
            Link::Rexo(id) => self.own().is_ok_and(|own| own.shutdown(*id).is_ok()),
        }
    }

    /// Gives a finished connection back: `abort` resets it, else what was queued is
    /// still sent, then a FIN; but on smoltcp, whose stack holds a socket closed in
    /// order until its peer took what was queued, it is reset when the stack already
    /// holds [`max_closing`](Self::max_closing) such sockets (`Stack::close_bounded`).
    /// Whether it was reset for that.
    pub fn finish(&mut self, link: Link, abort: bool) -> bool {
        match (link, abort) {
            (Link::Smoltcp(connection), false) => self
                .stack
                .close_bounded(connection, false, self.max_closing)
                .expect(OWN_STACK),
            (Link::Smoltcp(connection), true) => {
                self.stack.abort(connection).expect(OWN_STACK);
                false
            }
            (Link::Rexo(id), abort) => {
                if let Ok(own) = self.own() {
                    // A stale handle was released already: nothing is left to end.
                    let _ = if abort { own.abort(id) } else { own.close(id) };
                }
                false
            }
        }
    }

    /// Our own TCP's endpoint (made by [`serve`](Self::serve) with [`Tcp::Rexo`]).
    fn own(&mut self) -> Result<&mut rexo_tcp::Endpoint, ()> {
        self.stack.own_tcp().ok_or(())
    }
}

/// Why a handle given to the transport's stack is that stack's: the transport made its
/// listener and every connection of its links on its one stack.
const OWN_STACK: &str = "the transport's listener and links are its own stack's";

/// What a `rexo-tcp` receive error says of the connection.
fn gone(error: rexo_tcp::Error) -> Gone {
    match error {
        rexo_tcp::Error::Reset | rexo_tcp::Error::TimedOut => Gone::Broken,
        _ => Gone::Closed,
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
