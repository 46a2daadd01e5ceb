//! One accepted connection: requests read into a bounded buffer, answered one at a
//! time in order (pipelined requests wait in the buffer), each answer's head and body
//! queued from where they live on the connection's TCP (`transport.rs`: copied into
//! smoltcp's send buffer, or handed to `rexo-tcp` as pieces of the file cache). On
//! `rexo-tcp` a connection's last answer is drained before the connection is given back
//! ([`Client::step`]).

use alloc::vec::Vec;

use rexo_http::{DateField, Method, Page, ParseProgress, Response, Site, Step};

use crate::status::Counters;
use crate::transport::{Gone, Link, Sending, Transport};

/// A connection idle this long is closed, or reset if it was in the middle of an
/// answer: this bounds what a vanished client holds (a slow one is bounded by
/// [`REQUEST_DEADLINE_NS`] too). Idle means no request byte came and the peer
/// acknowledged fewer than [`MIN_ACKNOWLEDGED_BYTES`] of the answers; the timer restarts
/// at every request byte and at every [`MIN_ACKNOWLEDGED_BYTES`] acknowledged.
/// Shorter than the TCP timeout (`TCP_OPTIONS`), so that the server, not the stack,
/// decides how an idle connection ends.
pub const IDLE_TIMEOUT_NS: u64 = 15_000_000_000;
/// The answer bytes a client must acknowledge within each [`IDLE_TIMEOUT_NS`] to be
/// taking its answer (about 1 KiB/s): a download of any length lasts as long as it
/// moves, while a client that reads a byte now and then (one that would hold a
/// connection slot for days) counts as idle.
pub const MIN_ACKNOWLEDGED_BYTES: usize = 16 * 1024;
/// The longest a request may take to arrive whole (its head, and the few KiB of body
/// [`Limits`](rexo_http::Limits) allow), counted from its first byte; then it is
/// answered `408 Request Timeout` and the connection closes. [`IDLE_TIMEOUT_NS`] restarts at every request byte, so without this a
/// client sending one byte every 14 s (slowloris) would hold a connection slot for a
/// day with one 8 KiB head, and a few hundred such clients every slot. A
/// real client sends a head in one segment or a few, well within this.
pub const REQUEST_DEADLINE_NS: u64 = 20_000_000_000;
/// While lingering (see [`Client`]), the connection closes once its peer has sent
/// nothing for this long.
pub const LINGER_QUIET_NS: u64 = 250_000_000;
/// The longest a connection lingers; a peer still sending then is reset.
pub const LINGER_MAX_NS: u64 = 5_000_000_000;

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
/// with a reset that can destroy the answer in flight. So, as RFC 9112 9.6 says, the
/// write side closes first and what the peer still sends is read and discarded: on
/// `rexo-tcp` the FIN is queued behind the answer at once (the connection drains, and
/// `rexo-tcp` goes on taking and dropping the peer's bytes once it is given back); on
/// smoltcp, which has no half-close, the connection lingers, reading and discarding,
/// until the peer closes or goes quiet, as Apache's lingering close does, then closes.
pub struct Client {
    /// The connection.
    link: Link,
    /// Request bytes read: those not yet answered, at most the site's
    /// [`buffer_bound`](rexo_http::Limits::buffer_bound), after answered ones not yet
    /// dropped, fewer than twice the bound in all ([`Inbox`]).
    inbox: Inbox,
    /// How far the parse of the request at the front of `inbox` got, so that a request
    /// arriving in many reads is searched once, not from its start on every read.
    progress: ParseProgress,
    /// The answer being sent.
    sending: Option<Sending>,
    /// The peer closed its side: everything it sent is in `inbox` or answered.
    peer_closed: bool,
    /// The connection broke (reset by the peer, or timed out).
    broken: bool,
    /// The answer bytes queued that waited for the peer's acknowledgment after the last
    /// step (our own TCP holds whole answers queued: a reset then came mid-answer).
    unacknowledged: usize,
    /// The answer bytes the peer acknowledged since `last_activity_ns`.
    acknowledged: usize,
    /// Whether the connection serves requests, lingers or drains.
    phase: Phase,
    /// When a request byte last came or the peer last acknowledged
    /// [`MIN_ACKNOWLEDGED_BYTES`] of the answers.
    last_activity_ns: u64,
    /// When the first byte of the request at the front of `inbox` came (or, pipelined,
    /// when the request before it was answered); `None` while `inbox` is empty.
    request_started_ns: Option<u64>,
    /// Whether the request at the front of `inbox` was sent its interim `100 Continue`
    /// ([`Step::Continue`]).
    continued: bool,
    /// Whether a page rendered for this connection (the status page) may still wait
    /// for the peer's acknowledgment: the next request waits until it does not, so that
    /// a client pipelining `GET /` without reading holds one rendered page, not one
    /// per request.
    page_in_flight: bool,
}

/// A connection's request bytes: those read and not yet answered are
/// [`pending`](Self::pending). An answered request's bytes are not removed at once
/// (a `drain` per pipelined request moved every byte after it, quadratic in the
/// pipeline's depth) but counted, and dropped before a read once they are at least as
/// many as the bytes pending: each drop moves no more bytes than it drops, and the
/// buffer never holds twice the read bound (answered bytes, fewer than the pending ones
/// and so than the bound, then at most the bound pending). The bound is not tightened to
/// count the answered bytes: that would leave an unfinished request behind a few
/// answered bytes too little room to arrive whole.
#[derive(Default)]
struct Inbox {
    /// Answered bytes, then the pending ones.
    bytes: Vec<u8>,
    /// How many bytes at the front of `bytes` were answered.
    answered: usize,
}

impl Inbox {
    /// The bytes read and not yet answered: the request at the front, then any
    /// pipelined after it.
    fn pending(&self) -> &[u8] {
        &self.bytes[self.answered..]
    }

    /// The first `consumed` pending bytes (at most all of them, as the parser
    /// promises) were answered.
    fn answered(&mut self, consumed: usize) {
        self.answered += consumed;
    }

    /// Drops the answered bytes once they are at least as many as the pending ones.
    fn compact(&mut self) {
        if self.answered > 0 && self.answered >= self.bytes.len() - self.answered {
            self.bytes.drain(..self.answered);
            self.answered = 0;
        }
    }

    /// Moves what `link` received into the buffer, up to `bound` bytes pending; how
    /// many, or why none will come.
    fn read(&mut self, tcp: &mut Transport, link: &Link, bound: usize) -> Result<usize, Gone> {
        self.compact();
        tcp.read(link, &mut self.bytes, self.answered + bound)
    }
}

/// What a connection does: serve requests, or end after its last answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// It reads requests and answers them.
    Open,
    /// After a refusal that closes it, on a TCP without half-close (smoltcp), it reads
    /// and discards what the peer still sends before its FIN ([`Client::linger`]).
    Lingering {
        /// When the connection started lingering.
        since_ns: u64,
        /// When the peer last sent a byte since.
        last_byte_ns: u64,
    },
    /// It is closing: its last answer is queued and its FIN follows; it is given back
    /// once the peer acknowledged the answer (or reset when idle).
    Draining,
}

/// Whether a request whose first byte came at `started_ns` (`None`: no request begun)
/// is still incomplete too long after, at `now_ns` ([`REQUEST_DEADLINE_NS`]).
pub fn request_overdue(started_ns: Option<u64>, now_ns: u64) -> bool {
    started_ns.is_some_and(|started| now_ns.saturating_sub(started) > REQUEST_DEADLINE_NS)
}

impl Client {
    /// A client for a newly accepted connection at `now_ns`.
    pub fn new(link: Link, now_ns: u64) -> Client {
        Client {
            link,
            inbox: Inbox::default(),
            progress: ParseProgress::default(),
            sending: None,
            peer_closed: false,
            broken: false,
            unacknowledged: 0,
            acknowledged: 0,
            phase: Phase::Open,
            last_activity_ns: now_ns,
            request_started_ns: None,
            continued: false,
            page_in_flight: false,
        }
    }

    /// The connection, to give back to the stack once finished.
    pub fn into_link(self) -> Link {
        self.link
    }

    /// Request bytes waiting in the buffer.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.inbox.pending().len()
    }

    /// Bytes the buffer holds, answered ones not yet dropped included.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.inbox.bytes.len()
    }

    /// Bytes at the front of the buffer already searched for line ends.
    #[cfg(test)]
    pub fn searched(&self) -> usize {
        self.progress.searched()
    }

    /// Whether the connection is draining its last answer before it closes.
    pub fn is_draining(&self) -> bool {
        self.phase == Phase::Draining
    }

    /// Whether the client took every answer: nothing is left to queue, and nothing
    /// queued waited for the peer's acknowledgment at the last step (`rexo-tcp` takes a
    /// whole answer at once, so an answer queued is not yet sent).
    pub fn took_every_answer(&self) -> bool {
        self.sending.is_none() && self.unacknowledged == 0
    }

    /// Moves the connection on as far as it can without waiting: sends what fits of
    /// the current answer, reads requests, answers them in order; once the connection
    /// is to close, waits (on `rexo-tcp`) until its last answer was acknowledged.
    /// `pages` supplies the dynamic pages (see [`Site::serve`]); answers carry `date`
    /// (`None`: no wall clock, no `Date` field).
    pub fn step(
        &mut self,
        tcp: &mut Transport,
        site: &Site,
        pages: &mut dyn FnMut(&[u8], bool) -> Page,
        date: Option<&DateField>,
        counters: &spin::Mutex<Counters>,
        now_ns: u64,
    ) -> Progress {
        let mut moved = false;
        let unacknowledged = tcp.unacknowledged(&self.link);
        let was_in_flight = self.unacknowledged > 0 || unacknowledged > 0;
        self.acknowledged += self.unacknowledged.saturating_sub(unacknowledged);
        self.unacknowledged = unacknowledged;
        // Whether the peer showed signs of life: a request byte, or enough acknowledged.
        let mut active = false;
        if self.phase == Phase::Draining {
            return self.drain(tcp, now_ns, counters);
        }
        loop {
            if let Phase::Lingering {
                since_ns,
                last_byte_ns,
            } = self.phase
            {
                return self.linger(tcp, counters, now_ns, since_ns, last_byte_ns, moved);
            }
            if let Some(sending) = &mut self.sending {
                match tcp.queue(&self.link, sending) {
                    Ok(queued) => {
                        self.unacknowledged += queued;
                        moved |= queued > 0;
                    }
                    Err(()) => {
                        // The peer closed or reset mid-answer: only this connection ends.
                        counters.lock().broken += 1;
                        return Progress::Finished(Ending::Abort);
                    }
                }
                if !sending.is_queued() {
                    return self.open_or_idle(active, moved, now_ns, counters);
                }
                let refused = sending.status >= 400;
                let closes = sending.closes;
                self.sending = None;
                // RFC 9112 9.6: the write side closes first, what the client still
                // sends is read until it closes. Where the TCP half-closes (`rexo-tcp`)
                // the FIN goes at once, the connection draining; on smoltcp, which
                // cannot, it lingers until the client went quiet, then closes.
                if closes && refused && !self.peer_closed && !self.link.half_closes() {
                    self.phase = Phase::Lingering {
                        since_ns: now_ns,
                        last_byte_ns: now_ns,
                    };
                    continue;
                }
                if closes {
                    return self.close(tcp, now_ns, counters);
                }
            }
            let read = self.read(tcp, site.limits.buffer_bound());
            active |= read;
            moved |= read;
            if self.inbox.pending().is_empty() {
                self.request_started_ns = None;
            } else if self.request_started_ns.is_none() {
                self.request_started_ns = Some(now_ns);
            }
            if self.broken {
                if was_in_flight {
                    counters.lock().broken += 1;
                }
                return Progress::Finished(Ending::Abort);
            }
            if self.inbox.pending().is_empty() && self.peer_closed {
                return self.close(tcp, now_ns, counters);
            }
            if self.inbox.pending().is_empty() {
                return self.open_or_idle(active, moved, now_ns, counters);
            }
            if self.page_in_flight {
                if self.unacknowledged > 0 {
                    return self.open_or_idle(active, moved, now_ns, counters);
                }
                self.page_in_flight = false;
            }
            // An answer, or for too slow a request (slowloris) `408 Request Timeout` in
            // place of all it sent, then the close of any refusal that closes (half-closed
            // at once, or lingering on smoltcp).
            let mut rendered = false;
            let mut render = |path: &[u8], head_only| {
                let page = pages(path, head_only);
                rendered |= matches!(page, Page::Ready { .. });
                page
            };
            let step = site.serve_resumed(self.inbox.pending(), &mut self.progress, &mut render);
            let (response, consumed, overdue) = match step {
                Step::NeedMore | Step::Continue if self.peer_closed => {
                    // A request cut off by the peer's close: nothing can be answered.
                    return self.close(tcp, now_ns, counters);
                }
                Step::NeedMore | Step::Continue
                    if request_overdue(self.request_started_ns, now_ns) =>
                {
                    // Answered with a parse under way: the next request (after the
                    // whole buffer this takes) is parsed from its start. A request or
                    // a refusal leaves the progress at its start already. A HEAD
                    // request's 408 has no content (RFC 9110 9.3.2).
                    let head_only =
                        self.progress.method(self.inbox.pending()) == Some(Method::Head);
                    self.progress = ParseProgress::default();
                    (
                        Response::request_timeout(head_only),
                        self.inbox.pending().len(),
                        true,
                    )
                }
                Step::Continue if !self.continued => {
                    // The client waits for it before sending the body (curl: 1 s).
                    self.continued = true;
                    self.sending = Some(tcp.sending(Response::interim_continue()));
                    moved = true;
                    continue;
                }
                Step::NeedMore | Step::Continue => {
                    return self.open_or_idle(active, moved, now_ns, counters);
                }
                Step::Answer { response, consumed } => (response, consumed, false),
            };
            self.continued = false;
            self.page_in_flight = rendered;
            let mut counters = counters.lock();
            if overdue {
                counters.slow_closed += 1;
            }
            counters.answered(response.status().code());
            let response = match date {
                Some(date) => response.dated(date),
                None => response,
            };
            counters.head_bytes += response.head_len() as u64;
            counters.body_bytes += response.body().bytes().len() as u64;
            self.inbox.answered(consumed);
            // The next pipelined request's time starts now.
            self.request_started_ns = (!self.inbox.pending().is_empty()).then_some(now_ns);
            self.sending = Some(tcp.sending(response));
            moved = true;
        }
    }

    /// Reads what the peer sent into `inbox`, up to `bound` bytes not yet answered;
    /// whether any byte came.
    fn read(&mut self, tcp: &mut Transport, bound: usize) -> bool {
        let mut moved = false;
        while !self.peer_closed && self.inbox.pending().len() < bound {
            match self.inbox.read(tcp, &self.link, bound) {
                Ok(0) => break,
                Ok(_) => moved = true,
                Err(Gone::Closed) => self.peer_closed = true,
                Err(Gone::Broken) => {
                    self.peer_closed = true;
                    self.broken = true;
                }
            }
        }
        moved
    }

    /// The connection stays open, unless it was idle too long (`active`: a request
    /// byte came in this step; `moved`: any byte moved).
    fn open_or_idle(
        &mut self,
        active: bool,
        moved: bool,
        now_ns: u64,
        counters: &spin::Mutex<Counters>,
    ) -> Progress {
        if active || self.acknowledged >= MIN_ACKNOWLEDGED_BYTES {
            self.last_activity_ns = now_ns;
            self.acknowledged = 0;
        } else if now_ns.saturating_sub(self.last_activity_ns) > IDLE_TIMEOUT_NS {
            counters.lock().idle_closed += 1;
            return Progress::Finished(if self.sending.is_some() || self.unacknowledged > 0 {
                Ending::Abort
            } else {
                Ending::Close
            });
        }
        Progress::Open { moved }
    }

    /// Ends the connection in order. Where the TCP leaves the connection's last answer
    /// to the app until it is acknowledged (`rexo-tcp`: a connection given back with
    /// bytes queued keeps a connection slot while a slow peer takes them), the FIN is
    /// queued and the connection drains first ([`drain`](Self::drain)).
    fn close(
        &mut self,
        tcp: &mut Transport,
        now_ns: u64,
        counters: &spin::Mutex<Counters>,
    ) -> Progress {
        if self.unacknowledged > 0 && tcp.shutdown(&self.link) {
            self.phase = Phase::Draining;
            return self.drain(tcp, now_ns, counters);
        }
        Progress::Finished(Ending::Close)
    }

    /// Waits for the peer to acknowledge the last answer, bounded as an answer being
    /// sent is ([`IDLE_TIMEOUT_NS`], [`MIN_ACKNOWLEDGED_BYTES`]); what the peer still
    /// sends is read and dropped. Closes once all was acknowledged.
    fn drain(
        &mut self,
        tcp: &mut Transport,
        now_ns: u64,
        counters: &spin::Mutex<Counters>,
    ) -> Progress {
        loop {
            match tcp.discard(&self.link) {
                Ok(0) | Err(Gone::Closed) => break,
                Ok(_) => {}
                Err(Gone::Broken) => {
                    // Mid-answer: it waited for acknowledgment at the last step.
                    counters.lock().broken += 1;
                    return Progress::Finished(Ending::Abort);
                }
            }
        }
        if self.unacknowledged == 0 {
            return Progress::Finished(Ending::Close);
        }
        self.open_or_idle(false, false, now_ns, counters)
    }

    /// Reads and discards what the peer still sends after a refusal; closes when it
    /// closes or goes quiet, resets it if it keeps sending.
    fn linger(
        &mut self,
        tcp: &mut Transport,
        counters: &spin::Mutex<Counters>,
        now_ns: u64,
        since_ns: u64,
        mut last_byte_ns: u64,
        mut moved: bool,
    ) -> Progress {
        loop {
            match tcp.discard(&self.link) {
                Ok(0) => break,
                Ok(_) => {
                    moved = true;
                    last_byte_ns = now_ns;
                }
                Err(_) => return self.close(tcp, now_ns, counters),
            }
        }
        if now_ns.saturating_sub(since_ns) > LINGER_MAX_NS {
            counters.lock().linger_reset += 1;
            return Progress::Finished(Ending::Abort);
        }
        if now_ns.saturating_sub(last_byte_ns) > LINGER_QUIET_NS {
            return self.close(tcp, now_ns, counters);
        }
        self.phase = Phase::Lingering {
            since_ns,
            last_byte_ns,
        };
        Progress::Open { moved }
    }
}
