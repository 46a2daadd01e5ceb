//! One TCP client: its unanswered bytes, its unsent answers, its memcached session, and
//! the step that moves them along without ever waiting.
//!
//! Requests are served one at a time (the session finds each with [`Session::next`],
//! each byte of a line that arrives in many reads searched once, and kv looks at it
//! before [`Session::run`] answers it), for two reasons: `shutdown` must be seen in the
//! stream, which the engine does not know, and answers must stop being made while the
//! client is not reading them.

use rexo_memcache::{
    Command, Output, Parsed, ProtocolError, ServerInfo, Session, Store, max_request_len,
};
use rexo_net::{Connection, NetError, Stack};

use alloc::vec::Vec;

/// Bytes a client with nothing buffered may always read, even when the connections
/// together hold their whole budget: small requests never wait for large ones.
const READ_CHUNK: usize = 16 * 1024;
/// Buffer room a connection keeps between requests; more is given back once used.
const RETAINED: usize = 16 * 1024;
/// Requests are served only while fewer answer bytes than this wait to be sent.
const OUTPUT_HIGH: usize = 64 * 1024;
/// The most answer bytes one request may make (a `get` of several 1 MiB values fits);
/// past it the answer is memcached's out-of-memory error and the connection is closed.
pub const OUTPUT_LIMIT: usize = 4 << 20;
/// The answer bytes a request may always make, even when the connections together hold
/// their whole budget (as [`READ_CHUNK`] for reads): small requests never wait for large
/// ones, and each connection exceeds the budget by at most one such answer.
pub const SMALL_ANSWER: usize = 16 * 1024;
/// Seconds a request may take to arrive and be served, from its first byte or the
/// serving of the one before it: the largest (a 1 MiB
/// value's `set`, [`max_request_len`]) needs about 8.7 KiB/s, some 70 kbit/s. Time the
/// client waits on kv, its bytes left unread for the buffer budget while the budget
/// turns over, does not count. Past it the connection is closed, so that a client
/// sending a byte a little more often than the idle timeout cannot hold a connection
/// place for hours with one unfinished request (off with the idle timeout, at 0).
pub const REQUEST_DEADLINE_S: u64 = 120;
/// memcached's answer when a read's answer cannot be built.
pub const OUTPUT_TOO_LARGE: &[u8] = b"SERVER_ERROR out of memory writing get response\r\n";

/// What a [`Client::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing could move.
    Idle,
    /// Nothing moved, but only because the budget keeps the client's bytes unread while
    /// it has taken every answer (it is mid-request, sending): not idle while the budget
    /// turns over (its idle timer restarts in a step told that some client on the core
    /// moved), idle like any other when nothing on the core moves.
    Throttled,
    /// Bytes were read, served or written.
    Moved,
    /// The connection is over: close it.
    Finished,
    /// The client sent `shutdown` and the answers to its requests before it are in the
    /// send buffer, or the connection failed: the app stops.
    Shutdown,
}

/// One connection and what it holds.
pub struct Client {
    /// The connection.
    connection: Connection,
    /// The memcached session (the part of a refused data block still to skip, how far
    /// the search for an unfinished line's end got).
    session: Session,
    /// Received bytes not yet served: the front of the next request.
    input: Vec<u8>,
    /// Answers not yet in the send buffer, from `sent` on.
    output: Vec<u8>,
    /// Bytes of `output` already written.
    sent: usize,
    /// What ends the connection once `output` is sent; nothing more is served.
    ending: Option<Ending>,
    /// The client closed its side: nothing more will arrive.
    peer_closed: bool,
    /// Requests served (the per-core count kv logs at shutdown).
    requests: u64,
    /// When (the cache's clock, in seconds) a byte last moved either way.
    last_active_s: u64,
    /// Seconds without a byte moved after which the connection is closed; 0: never
    /// (memcached's `-o idle_timeout`).
    idle_timeout_s: u64,
    /// The connection was finished for its idle timeout or [`REQUEST_DEADLINE_S`].
    timed_out: bool,
    /// When (the cache's clock, in seconds) the unfinished request began to arrive, moved
    /// on by the time it waited on kv; `None` between requests.
    request_started_s: Option<u64>,
    /// When the client was last stepped.
    last_step_s: u64,
}

impl Client {
    /// A client on a connection accepted at `now_s` (the cache's clock), closed once
    /// idle for `idle_timeout_s` seconds (0: never).
    pub fn new(connection: Connection, now_s: u64, idle_timeout_s: u64) -> Self {
        Self {
            connection,
            session: Session::new(),
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            ending: None,
            peer_closed: false,
            requests: 0,
            last_active_s: now_s,
            idle_timeout_s,
            timed_out: false,
            request_started_s: None,
            last_step_s: now_s,
        }
    }

    /// Requests served on this connection so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Whether the connection was finished for its idle timeout or its request's
    /// deadline ([`REQUEST_DEADLINE_S`]).
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// The connection, to close it.
    pub fn into_connection(self) -> Connection {
        self.connection
    }

    /// Bytes the client holds in its buffers (counted against the connections' budget).
    pub fn held(&self) -> usize {
        self.input.len() + self.output.len() - self.sent
    }

    /// Bytes of unserved input (the client with the most may read past the budget, so
    /// that one large request always completes).
    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    /// Bytes at the front of the unserved input already searched for a line's end.
    #[cfg(test)]
    pub fn searched(&self) -> usize {
        self.session.searched()
    }

    /// Writes what it can, reads what the budget allows, serves whole requests.
    /// `held` is what all clients hold (kept up to date here); `budget` bounds it, except
    /// for a client with nothing buffered and for the one `may_exceed` (which may read
    /// past it, but not answer past it). Once the budget is used up a client with
    /// answers unsent serves nothing more, and every answer is bounded by what is left
    /// of the budget (at least [`SMALL_ANSWER`], at most [`OUTPUT_LIMIT`]). A client
    /// that moved no byte for its idle timeout, or whose request is still unfinished
    /// [`REQUEST_DEADLINE_S`] after its first byte, is [`Finished`](Progress::Finished); one
    /// whose bytes wait unread for the budget, every answer taken, is
    /// [`Throttled`](Progress::Throttled), and not idle while `turning` (some client on
    /// the core moved in this pass or the last: the budget is turning over, so it will
    /// be read). With nothing on the core moving, throttled clients age out like idle
    /// ones, so that clients stalled mid-request cannot hold the slots for hours, one
    /// leader's idle timeout after another.
    #[allow(clippy::too_many_arguments)] // the loop's state, passed rather than shared
    pub fn step(
        &mut self,
        stack: &mut Stack,
        cache: &mut impl Store,
        now: u64,
        info: &ServerInfo,
        held: &mut usize,
        budget: usize,
        may_exceed: bool,
        turning: bool,
    ) -> Progress {
        let before = self.held();
        let requests_before = self.requests;
        let mut progress = self.advance(stack, cache, now, info, *held, budget, may_exceed);
        *held = (*held + self.held()).saturating_sub(before);
        let active = match progress {
            Progress::Idle => false,
            // The client is sending, kv is not reading: waiting on the others.
            Progress::Throttled => turning,
            _ => true,
        };
        let waited_on_kv = progress == Progress::Throttled && turning;
        self.time_request(now, waited_on_kv, self.requests != requests_before);
        let late = self
            .request_started_s
            .is_some_and(|started| now.saturating_sub(started) >= REQUEST_DEADLINE_S);
        if active {
            self.last_active_s = now;
        }
        let idle = !active && now.saturating_sub(self.last_active_s) >= self.idle_timeout_s;
        let timed_out = matches!(
            progress,
            Progress::Idle | Progress::Moved | Progress::Throttled
        ) && self.idle_timeout_s > 0
            && (idle || late);
        if timed_out {
            self.timed_out = true;
            // A `shutdown` waiting behind answers its client does not take still stops
            // the app.
            progress = self.ended();
        }
        progress
    }

    /// Keeps [`request_started_s`](Self::request_started_s) at `now`: set at the first
    /// byte of the request at the front of the input (its bytes held, or its refused data
    /// block still to skip) or when one before it was `served`, moved on by the time
    /// since the last step when the client `waited_on_kv`, cleared between requests and
    /// once the connection is ending. So pipelined requests waiting for their client to
    /// take the answers before them get the deadline each.
    fn time_request(&mut self, now: u64, waited_on_kv: bool, served: bool) {
        let mid_request = !self.input.is_empty() || self.session.is_skipping();
        if !mid_request || self.ending.is_some() {
            self.request_started_s = None;
        } else if served {
            self.request_started_s = Some(now);
        } else {
            let started = self.request_started_s.get_or_insert(now);
            if waited_on_kv {
                let waited = now.saturating_sub(self.last_step_s);
                *started = started.saturating_add(waited).min(now);
            }
        }
        self.last_step_s = now;
    }

    /// [`step`](Self::step) without the bookkeeping of `held`.
    #[allow(clippy::too_many_arguments)] // as for `step`
    fn advance(
        &mut self,
        stack: &mut Stack,
        cache: &mut impl Store,
        now: u64,
        info: &ServerInfo,
        held: usize,
        budget: usize,
        may_exceed: bool,
    ) -> Progress {
        // What the other clients hold: this one's share is counted as it changes.
        let others = held.saturating_sub(self.held());
        let mut moved = false;
        let mut throttled = false;
        match self.flush(stack) {
            Ok(wrote) => moved |= wrote,
            Err(_) => return self.ended(),
        }
        let mut served = false;
        if self.ending.is_none() {
            let max_value = cache.max_value();
            let over_budget = held >= budget && !may_exceed;
            match self.receive(stack, max_value, over_budget) {
                Received::Bytes => moved = true,
                Received::Refused => throttled = true,
                Received::Nothing => {}
            }
            served = self.serve(cache, now, info, others, budget);
            if served {
                moved = true;
                // Answers go out in this step rather than the next.
                if self.flush(stack).is_err() {
                    return self.ended();
                }
            }
        }
        if let Some(ending) = self.ending {
            if self.sent == self.output.len() {
                return ending.progress();
            }
        } else if self.peer_closed && !served && self.sent == self.output.len() {
            // What is left cannot become a whole request: nothing more arrives.
            return Progress::Finished;
        }
        if moved {
            Progress::Moved
        } else if throttled {
            Progress::Throttled
        } else {
            Progress::Idle
        }
    }

    /// After a `shutdown` (from this client or another): moves what the client has queued
    /// of its answers into the send buffer, serving nothing more; true once nothing is
    /// left to hand over (or the connection failed, and nothing can be).
    pub fn hand_over(&mut self, stack: &mut Stack) -> bool {
        self.flush(stack).is_err() || self.sent == self.output.len()
    }

    /// How the client ends when its connection fails or times out: as it was to end
    /// anyway (a `shutdown` still stops the app), or closed.
    fn ended(&self) -> Progress {
        self.ending.map_or(Progress::Finished, Ending::progress)
    }

    /// Moves unsent answers into the send buffer; true if any went.
    fn flush(&mut self, stack: &mut Stack) -> Result<bool, NetError> {
        let mut wrote = false;
        while self.sent < self.output.len() {
            match stack.write(&self.connection, &self.output[self.sent..])? {
                0 => break,
                written => {
                    self.sent += written;
                    wrote = true;
                }
            }
        }
        if self.sent == self.output.len() {
            self.output.clear();
            // A large answer's room goes back, so that idle connections hold little.
            self.output.shrink_to(RETAINED);
            self.sent = 0;
        }
        Ok(wrote)
    }

    /// Reads received bytes into `input`, up to the largest request and as the budget
    /// allows.
    fn receive(&mut self, stack: &mut Stack, max_value: usize, over_budget: bool) -> Received {
        let cap = max_request_len(max_value);
        let allowance = if !over_budget {
            cap.saturating_sub(self.input.len())
        } else if self.held() == 0 {
            READ_CHUNK
        } else {
            0
        };
        if allowance == 0 {
            // Refused for the budget with every answer taken, the client waits on kv
            // mid-request; with answers it does not take, or its request at the cap,
            // on itself.
            let waits_on_kv = over_budget && self.sent == self.output.len();
            return if waits_on_kv {
                self.refused(stack)
            } else {
                Received::Nothing
            };
        }
        let mut left = allowance;
        while left > 0 {
            let input = &mut self.input;
            match stack.read_with(&self.connection, |data| {
                let take = data.len().min(left);
                input.extend_from_slice(&data[..take]);
                take
            }) {
                Ok(0) => break,
                Ok(read) => left -= read,
                Err(_) => {
                    self.peer_closed = true;
                    break;
                }
            }
        }
        if left < allowance {
            Received::Bytes
        } else {
            Received::Nothing
        }
    }

    /// Whether bytes wait that [`receive`](Self::receive) may not read for the budget
    /// (looked at, none taken).
    fn refused(&mut self, stack: &mut Stack) -> Received {
        let mut waiting = false;
        let peek = stack.read_with(&self.connection, |data| {
            waiting = !data.is_empty();
            0
        });
        if peek.is_err() {
            self.peer_closed = true;
        }
        if waiting {
            Received::Refused
        } else {
            Received::Nothing
        }
    }

    /// Serves whole requests from the front of `input` while the answers are being
    /// taken and the budget (of which the other clients hold `others`) allows; drops what
    /// was served; true if any request was.
    fn serve(
        &mut self,
        cache: &mut impl Store,
        now: u64,
        info: &ServerInfo,
        others: usize,
        budget: usize,
    ) -> bool {
        let mut at = 0;
        let mut served = false;
        loop {
            let unsent = self.output.len() - self.sent;
            if unsent >= OUTPUT_HIGH || (self.left(at, others, budget) == 0 && unsent > 0) {
                break;
            }
            let next = self.session.next(&self.input[at..], cache.max_value());
            if next.skipped > 0 {
                // The rest of a refused data block, dropped unread.
                at += next.skipped;
                served = true;
            }
            let Parsed::Request {
                consumed, command, ..
            } = next.parsed
            else {
                break;
            };
            let request = &self.input[at..at + consumed];
            // memcached's `shutdown` is no command of the parser's, so it parses as an
            // unknown one; anything else (a line too long among them, which is no whole
            // request whatever it starts with) is no shutdown.
            let shutdown = match command {
                Command::Invalid {
                    error: ProtocolError::UnknownCommand,
                    ..
                } => shutdown_request(request),
                _ => Shutdown::No,
            };
            match shutdown {
                Shutdown::No => {}
                Shutdown::Now => {
                    // The answers before it are sent first, as memcached would.
                    at += consumed;
                    self.ending = Some(Ending::Shutdown);
                    served = true;
                    break;
                }
                Shutdown::BadMode => {
                    self.output.extend_from_slice(BAD_SHUTDOWN_MODE);
                    at += consumed;
                    served = true;
                    continue;
                }
            }
            let start = self.output.len();
            let room = self
                .left(at, others, budget)
                .clamp(SMALL_ANSWER, OUTPUT_LIMIT);
            let mut out = Bounded::new(&mut self.output, start + room);
            let close = Session::run(cache, command, now, info, &mut out);
            if out.overflowed() {
                self.output.truncate(start);
                self.output.extend_from_slice(OUTPUT_TOO_LARGE);
                // Past the limit the answer never fits; past what the budget leaves it
                // may fit later, and the client may ask again.
                if room == OUTPUT_LIMIT {
                    self.ending = Some(Ending::Close);
                }
            }
            at += consumed;
            self.requests += 1;
            served = true;
            if close {
                self.ending = Some(Ending::Close);
            }
            if self.ending.is_some() {
                break;
            }
        }
        self.input.drain(..at);
        if self.input.len() <= RETAINED {
            // Likewise for a large request's room.
            self.input.shrink_to(RETAINED);
        }
        served
    }

    /// What the budget leaves for answers while `input` holds its bytes from `at` on and
    /// the other clients hold `others`.
    fn left(&self, at: usize, others: usize, budget: usize) -> usize {
        let unsent = self.output.len() - self.sent;
        budget.saturating_sub(others + (self.input.len() - at) + unsent)
    }
}

/// What [`Client::receive`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Received {
    /// Bytes were read.
    Bytes,
    /// Bytes wait, but the budget allows none to be read.
    Refused,
    /// No bytes wait.
    Nothing,
}

/// What ends a connection once its answers are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// It closes (`quit`, a line too long, an answer too large).
    Close,
    /// The app stops (`shutdown`).
    Shutdown,
}

impl Ending {
    /// What [`Client::step`] says once the answers are sent.
    fn progress(self) -> Progress {
        match self {
            Self::Close => Progress::Finished,
            Self::Shutdown => Progress::Shutdown,
        }
    }
}

/// memcached's answer to `shutdown` with an argument other than `graceful`.
pub const BAD_SHUTDOWN_MODE: &[u8] = b"CLIENT_ERROR invalid shutdown mode\r\n";

/// What a request says about shutting down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// It is another command.
    No,
    /// `shutdown` or `shutdown graceful`: both close every connection in order here.
    Now,
    /// `shutdown` with another argument.
    BadMode,
}

/// Whether `request` (one whole request, as [`Session::next`] delimited it) is memcached's
/// `shutdown` (which memcached accepts with `-A`; kv always does).
pub fn shutdown_request(request: &[u8]) -> Shutdown {
    let mut words = request
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty());
    if words.next() != Some(b"shutdown".as_slice()) {
        return Shutdown::No;
    }
    match (words.next(), words.next()) {
        (None, _) | (Some(b"graceful"), None) => Shutdown::Now,
        _ => Shutdown::BadMode,
    }
}

/// An output that refuses to grow past `limit` bytes, remembering that it had to; its
/// room tells a meta get ahead, so that a dropped answer changes no item.
pub struct Bounded<'a> {
    /// Where the answers go.
    out: &'a mut Vec<u8>,
    /// The length `out` may reach.
    limit: usize,
    /// Something did not fit.
    overflowed: bool,
}

impl<'a> Bounded<'a> {
    /// Appends to `out` up to a length of `limit`.
    pub fn new(out: &'a mut Vec<u8>, limit: usize) -> Self {
        Self {
            out,
            limit,
            overflowed: false,
        }
    }

    /// Whether something did not fit (and was left out).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

impl Output for Bounded<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if self.overflowed || self.out.len() + bytes.len() > self.limit {
            self.overflowed = true;
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    fn room(&self) -> usize {
        if self.overflowed {
            return 0;
        }
        self.limit.saturating_sub(self.out.len())
    }
}

/// One round of the closing after `shutdown`: every client hands what it can of its
/// queued answers to TCP ([`Client::hand_over`]); those with nothing left, or every one
/// when `give_up` (their time is over), are taken out of `clients` and returned, to be
/// closed.
pub fn take_handed_over(
    stack: &mut Stack,
    clients: &mut Vec<Client>,
    give_up: bool,
) -> Vec<Client> {
    let mut done = Vec::new();
    let mut index = 0;
    while index < clients.len() {
        if clients[index].hand_over(stack) || give_up {
            done.push(clients.swap_remove(index));
        } else {
            index += 1;
        }
    }
    done
}
