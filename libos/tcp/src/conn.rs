//! One synchronized connection (RFC 9293's states from ESTABLISHED on): receive
//! processing, the send queue of shared pieces, retransmission, and its timers.

use crate::challenge::{ChallengeAcks, OutOfWindowAcks};
use crate::icmp::{self, Outcome, Unreachable};
use crate::piece::Piece;
use crate::seq::Seq;
use crate::time_wait;
use crate::wire::{self, ACK, FIN, Header, RST, SYN, Segment};
use crate::{Config, Error, LinkAddress, Outgoing, State, Stats, Tuple};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The most pieces one segment's payload is gathered from; a segment stops early
/// rather than reference more.
pub const MAX_PIECES: usize = 8;

/// The most out-of-order runs kept for reassembly.
const MAX_OUT_OF_ORDER: usize = 8;

/// How many of [`Config::released_zero_window_ns`] a released connection may wait
/// behind a zero window in all, from when it closed, even while its peer acknowledges
/// more (each probe's byte) and so restarts the wait.
const RELEASED_ZERO_WINDOW_CAP: u64 = 4;

/// The clock granularity term of RFC 6298's RTO (1 ms).
const GRANULARITY_NS: u64 = 1_000_000;

/// RFC 6928's initial congestion window for a send MSS of `mss`: 10 segments, at most
/// 14,600 bytes (and at least 2 segments); also the restart window after an idle
/// period (RFC 5681, 4.1).
fn initial_window(mss: usize) -> usize {
    (10 * mss).min((2 * mss).max(14_600))
}

/// The least RTO data transmission begins with after a retransmitted SYN-ACK (RFC
/// 6298, 5.7: 3 s; at most the largest RTO).
const SYN_LOSS_RTO_NS: u64 = 3_000_000_000;

/// The range RFC 9293 (3.8.6.2.1) gives the override timeout of sender-side
/// silly-window avoidance (0.1 to 1 s); the RTO is held within it.
const SWS_OVERRIDE_MIN_NS: u64 = 100_000_000;
/// See [`SWS_OVERRIDE_MIN_NS`].
const SWS_OVERRIDE_MAX_NS: u64 = 1_000_000_000;

/// How the connection was set up (from the handshake).
pub struct Setup {
    /// The addresses and ports.
    pub tuple: Tuple,
    /// Our initial sequence number.
    pub iss: Seq,
    /// The peer's initial sequence number.
    pub irs: Seq,
    /// The MSS the peer announced.
    pub peer_mss: Option<u16>,
    /// The window scale shifts (ours, the peer's), both present or neither.
    pub shifts: Option<(u8, u8)>,
    /// Whether our SYN-ACK was sent again (its timer expired): the RTO then starts at
    /// [`SYN_LOSS_RTO_NS`] at least.
    pub syn_retransmitted: bool,
}

/// The state of one connection.
pub struct Conn {
    pub(crate) tuple: Tuple,
    pub(crate) state: State,
    /// Set when the app gave the connection up (`close`, `abort`).
    pub(crate) released: bool,
    /// Why the connection ended abnormally.
    pub(crate) error: Option<Error>,
    /// A RST to send (after an abort or a fatal timeout).
    pub(crate) rst_pending: bool,
    /// A segment to send even without data (an ACK or window update).
    pub(crate) ack_pending: bool,
    /// The code of the last ICMP destination-unreachable message (not "fragmentation
    /// needed") about a segment in flight since the peer last acknowledged new data.
    pub(crate) unreachable: Option<u8>,
    /// When the connection ends by itself: TIME-WAIT's end, or FIN-WAIT-2's, counted
    /// from when the app released the connection or from when FIN-WAIT-2 began,
    /// whichever came later (one the app still reads from may wait for the peer).
    pub(crate) close_at: Option<u64>,

    snd_una: Seq,
    snd_nxt: Seq,
    snd_max: Seq,
    snd_wnd: usize,
    max_snd_wnd: usize,
    snd_wl1: Seq,
    snd_wl2: Seq,
    snd_shift: u8,
    mss: usize,
    /// The MSS the handshake gave, which a lowered [`mss`](Conn::mss) returns to.
    handshake_mss: usize,
    /// When a lowered MSS is raised to the handshake's again ([`icmp::PMTU_RAISE_NS`]
    /// after it last fell); `None` while it is not lowered.
    mss_raise_at: Option<u64>,
    queue: VecDeque<Piece>,
    queued: usize,
    fin_queued: bool,
    fin_acked: bool,

    rcv_nxt: Seq,
    rcv_shift: u8,
    rcv_buf: VecDeque<u8>,
    rcv_cap: usize,
    rcv_adv: Seq,
    /// The reassembly runs: where each starts and its bytes, which take more at either
    /// end in place.
    out_of_order: Vec<(Seq, VecDeque<u8>)>,
    /// Bytes copied into the reassembly runs, kept and joined: the tests bound
    /// reassembly's work by it.
    #[cfg(test)]
    pub(crate) reassembly_copied: usize,
    /// The sequence number of the peer's FIN once seen (the lowest, if it sent several):
    /// taken once everything before it has arrived, and no data beyond it is (nor kept
    /// for reassembly once it is known).
    fin_at: Option<Seq>,
    fin_received: bool,

    srtt: Option<u64>,
    rttvar: u64,
    rto: u64,
    rtt_probe: Option<(Seq, u64)>,
    rtx_at: Option<u64>,
    retries: u32,
    dupacks: u32,
    cwnd: usize,
    /// Whether the flight after the last data sent filled at least half the congestion
    /// window: only then do ACKs grow it (RFC 7661's test of a validated window, the
    /// flight standing in for its pipeACK), so that an app that never fills it does
    /// not grow it for a burst later.
    cwnd_limited: bool,
    /// When data last went out (first sent or again): a connection idle for longer than
    /// the RTO restarts from the initial window (RFC 5681, 4.1).
    last_data_sent: u64,
    ssthresh: usize,
    /// RFC 6582's `recover`: the highest sequence number sent (plus one) when a loss was
    /// last detected, by duplicate ACKs or a timeout; `None` before any. Duplicate ACKs
    /// start a fast retransmit only once the peer acknowledged all that was sent then
    /// (an ACK at or past it: RFC 6582's ACK above the highest number sent).
    recover: Option<Seq>,
    /// In fast recovery (NewReno), until an ACK reaches `recover`.
    in_recovery: bool,
    fast_rtx: bool,
    persist_at: Option<u64>,
    persist_backoff: u32,
    /// When a segment smaller than the MSS, held back by silly-window avoidance, goes
    /// anyway (the override timeout).
    runt_at: Option<u64>,
    probe_now: bool,
    /// Zero-window probes sent since the peer's last acceptable ACK.
    probes: u32,
    /// When data began to wait behind the peer's zero window, or the peer last
    /// acknowledged more of it while it waits (cleared when the window opens): a
    /// released connection's wait there counts from this.
    window_closed_at: Option<u64>,
    /// When data began to wait behind the peer's zero window, kept however much the
    /// peer acknowledges meanwhile (cleared when the window opens): a released
    /// connection waits there at most [`RELEASED_ZERO_WINDOW_CAP`] waits from this.
    window_first_closed_at: Option<u64>,
    /// Whether a released connection's wait behind the zero window ran out and a probe
    /// went out at once: an answer that still shows a zero window and acknowledges
    /// nothing more resets the connection.
    final_probe_sent: bool,
    /// When the current keep-alive interval began: when the peer was last heard from,
    /// or the last probe went out (the next is due an interval after it).
    keepalive_from: u64,
    keepalives: u32,
    keepalive_now: bool,
    challenges: ChallengeAcks,
    /// The limit on ACKs to out-of-window segments without data (in TIME-WAIT too, and
    /// kept by the TIME-WAIT entry the connection leaves).
    pub(crate) out_of_window_acks: OutOfWindowAcks,
    /// The deadline the endpoint's timer order holds the connection under (`None`:
    /// not in it), which [`Endpoint::follow`](crate::Endpoint) keeps equal to
    /// [`deadline`](Conn::deadline) while the connection is in the table.
    pub(crate) scheduled: Option<u64>,
    /// The time the endpoint's order of idle cuts holds the connection under (`None`:
    /// not in it), which [`Endpoint::follow`](crate::Endpoint) keeps equal to
    /// [`idle_cut_at`](Conn::idle_cut_at) while the connection is in the table.
    pub(crate) idle_cut_scheduled: Option<u64>,
}

impl Conn {
    /// A connection whose handshake just completed at `now`.
    pub fn new(setup: &Setup, config: &Config, now: u64) -> Conn {
        let mss = setup
            .peer_mss
            .map_or(crate::LEAST_PATH_MSS, usize::from)
            .clamp(usize::from(crate::MIN_MSS), usize::from(config.mss));
        let (rcv_shift, snd_shift) = setup.shifts.unwrap_or((0, 0));
        let una = setup.iss.plus(1);
        let rto = if setup.syn_retransmitted {
            config
                .rto_initial_ns
                .max(SYN_LOSS_RTO_NS.min(config.rto_max_ns))
        } else {
            config.rto_initial_ns
        };
        Conn {
            tuple: setup.tuple,
            state: State::Established,
            released: false,
            error: None,
            rst_pending: false,
            ack_pending: false,
            unreachable: None,
            close_at: None,
            snd_una: una,
            snd_nxt: una,
            snd_max: una,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: setup.irs,
            snd_wl2: una,
            snd_shift,
            mss,
            handshake_mss: mss,
            mss_raise_at: None,
            queue: VecDeque::new(),
            queued: 0,
            fin_queued: false,
            fin_acked: false,
            rcv_nxt: setup.irs.plus(1),
            rcv_shift,
            rcv_buf: VecDeque::new(),
            rcv_cap: config.recv_buffer,
            rcv_adv: setup.irs.plus(1),
            out_of_order: Vec::new(),
            #[cfg(test)]
            reassembly_copied: 0,
            fin_at: None,
            fin_received: false,
            srtt: None,
            rttvar: 0,
            rto,
            rtt_probe: None,
            rtx_at: None,
            retries: 0,
            dupacks: 0,
            cwnd: initial_window(mss),
            cwnd_limited: false,
            last_data_sent: now,
            ssthresh: usize::MAX,
            recover: None,
            in_recovery: false,
            fast_rtx: false,
            persist_at: None,
            persist_backoff: 0,
            runt_at: None,
            probe_now: false,
            probes: 0,
            window_closed_at: None,
            window_first_closed_at: None,
            final_probe_sent: false,
            keepalive_from: now,
            keepalives: 0,
            keepalive_now: false,
            challenges: ChallengeAcks::default(),
            out_of_window_acks: OutOfWindowAcks::default(),
            scheduled: None,
            idle_cut_scheduled: None,
        }
    }

    /// The free receive space: the window offered to the peer.
    fn rcv_window(&self) -> usize {
        self.rcv_cap.saturating_sub(self.rcv_buf.len())
    }

    /// The window field to send: the free space, scaled, at most 65,535.
    pub(crate) fn window_field(&self) -> u16 {
        (self.rcv_window() >> self.rcv_shift).min(0xffff) as u16
    }

    /// The next sequence numbers to send and to receive.
    pub(crate) fn sequence(&self) -> (Seq, Seq) {
        (self.snd_nxt, self.rcv_nxt)
    }

    /// The send MSS.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Takes an ICMP destination-unreachable message about one of its segments at `now`,
    /// if the quoted sequence number lies in what was sent and not yet acknowledged (RFC
    /// 5927, 4.1: a blind attacker must guess it). A "fragmentation needed" lowers the
    /// MSS as Path MTU Discovery says ([`icmp::lowered_mss`]); any other code is only
    /// noted for the app: a soft error never ends a connection (RFC 1122, 4.2.3.9), and
    /// in a synchronized state a hard one is taken as soft (RFC 5927, 5.2), so a forged
    /// one cannot reset it.
    pub(crate) fn icmp_unreachable(&mut self, message: &Unreachable, now: u64) -> Outcome {
        let in_flight = self.snd_max.since(self.snd_una);
        if self.state == State::Closed || !message.seq.within(self.snd_una, in_flight) {
            return Outcome::Dropped;
        }
        if message.code != icmp::FRAGMENTATION_NEEDED {
            self.unreachable = Some(message.code);
            return Outcome::Noted;
        }
        let (mtu, len) = (message.next_hop_mtu, message.quoted_len);
        match icmp::lowered_mss(self.mss, mtu, len, message.quoted_header) {
            Some(mss) => {
                self.lower_mss(mss, now);
                Outcome::MssLowered
            }
            None => Outcome::Dropped,
        }
    }

    /// Takes `mss`, below the current, at `now`: a router dropped a segment in flight
    /// as too large for the path, so everything in flight goes again at once in
    /// segments of the new size (retransmission cuts them from the queue anew), timed
    /// by a fresh retransmission timer. That was no congestion (RFC 1191, 6.4): the
    /// congestion window stays (a fast recovery under way ends, its inflation undone,
    /// as its last ACK would end it), no timeout or fast retransmit is counted, and
    /// duplicate ACKs of what was sent before start no fast retransmit (as after a
    /// timeout, RFC 6582), since the segments sent again draw them.
    /// The handshake's MSS is tried again [`icmp::PMTU_RAISE_NS`] later (RFC 1191, 6.3).
    fn lower_mss(&mut self, mss: usize, now: u64) {
        self.mss = mss;
        self.mss_raise_at = Some(now.saturating_add(icmp::PMTU_RAISE_NS));
        self.snd_nxt = self.snd_una;
        self.rtt_probe = None;
        if self.in_recovery {
            self.in_recovery = false;
            self.cwnd = self.ssthresh;
        }
        self.recover = Some(self.snd_max);
        // Behind a zero window the persist timer's probes stand in for retransmissions.
        if self.persist_at.is_none() {
            self.rtx_at = Some(now.saturating_add(self.rto));
        }
    }

    /// Whether the connection is done with the network, its last segment sent: closed,
    /// or released in TIME-WAIT (which the compact table takes over). It then leaves
    /// the demultiplexing.
    pub(crate) fn finished(&self) -> bool {
        self.state == State::Closed && !self.rst_pending
            || self.released && self.state == State::TimeWait
    }

    /// Whether the app released the connection and it is still finishing with the peer
    /// (not closed, not in TIME-WAIT): what [`Config::max_released`](crate::Config) bounds.
    pub(crate) fn finishing(&self) -> bool {
        self.released && !matches!(self.state, State::Closed | State::TimeWait)
    }

    /// Whether received bytes wait for the app to read them.
    pub(crate) fn unread(&self) -> bool {
        !self.rcv_buf.is_empty()
    }

    /// Ends the connection at once with `error` (a RST is sent if `send_rst`).
    pub(crate) fn reset(&mut self, error: Error, send_rst: bool) {
        self.state = State::Closed;
        self.error = Some(error);
        self.rst_pending = send_rst;
        self.queue.clear();
        self.queued = 0;
        self.rtx_at = None;
        self.persist_at = None;
        self.runt_at = None;
        self.window_closed_at = None;
        self.window_first_closed_at = None;
    }

    /// Arms the persist timer at `now` unless it is already running.
    fn start_persist(&mut self, now: u64) {
        if self.persist_at.is_none() {
            self.persist_at = Some(now.saturating_add(self.rto));
            self.window_closed_at.get_or_insert(now);
            self.window_first_closed_at.get_or_insert(now);
        }
    }

    /// Whether queued data waits behind the peer's zero window: the persist timer's
    /// probes then replace retransmissions (a FIN alone needs no window).
    fn window_closed(&self) -> bool {
        self.snd_wnd == 0 && self.queued > 0
    }

    /// Queues `piece` for sending.
    pub(crate) fn send(&mut self, piece: Piece, config: &Config) -> Result<(), Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.fin_queued || !matches!(self.state, State::Established | State::CloseWait) {
            return Err(Error::Closed);
        }
        if self.queue.len() >= config.max_send_pieces {
            return Err(Error::QueueFull);
        }
        if !piece.is_empty() {
            self.queued += piece.len();
            self.queue.push_back(piece);
        }
        Ok(())
    }

    /// The bytes queued and not yet acknowledged.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.queued
    }

    /// Sends a FIN after what is queued.
    pub(crate) fn shutdown(&mut self) {
        if self.fin_queued {
            return;
        }
        self.state = match self.state {
            State::Established => State::FinWait1,
            State::CloseWait => State::LastAck,
            other => return self.state = other,
        };
        self.fin_queued = true;
    }

    /// Copies received bytes into `buf`.
    pub(crate) fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.rcv_buf.is_empty() {
            return match (self.error, self.fin_received) {
                (Some(error), _) => Err(error),
                (None, true) => Err(Error::Finished),
                (None, false) => Ok(0),
            };
        }
        let n = buf.len().min(self.rcv_buf.len());
        for (to, from) in buf.iter_mut().zip(self.rcv_buf.drain(..n)) {
            *to = from;
        }
        self.update_window_if_opened();
        Ok(n)
    }

    /// Owes the peer a window update if the window's right edge moved by an MSS or
    /// half the buffer since it was last offered.
    fn update_window_if_opened(&mut self) {
        let edge = self.rcv_nxt.plus(self.rcv_window());
        if edge.since(self.rcv_adv) >= self.mss.min(self.rcv_cap / 2) {
            self.ack_pending = true;
        }
    }

    /// Marks the connection given up by the app (`close`, `abort`): the bytes received
    /// and not read are dropped, as is all the peer still sends (acknowledged: a
    /// lingering close), so the window opens, and the peer hears so if it may still
    /// send; in FIN-WAIT-2 it ends at `fin_wait2_end` unless the peer's FIN comes first.
    pub(crate) fn release(&mut self, fin_wait2_end: u64) {
        self.released = true;
        if self.state == State::FinWait2 {
            self.close_at = Some(fin_wait2_end);
        }
        let dropped = !self.rcv_buf.is_empty();
        self.rcv_buf = VecDeque::new();
        if dropped && !self.fin_received {
            self.update_window_if_opened();
        }
    }

    /// Processes a segment for this connection (RFC 9293, 3.10.7.4, with RFC 5961's
    /// checks on RST, SYN and ACK, its challenge ACKs limited per second); `true` if it
    /// acknowledged what we sent acceptably (its ACK within what we sent), which only
    /// the peer can do.
    pub(crate) fn input(
        &mut self,
        seg: &Segment<'_>,
        now: u64,
        config: &Config,
        stats: &mut Stats,
    ) -> bool {
        if self.state == State::Closed {
            stats.out_of_window += 1;
            return false;
        }
        let wnd = self.rcv_window();
        let len = seg.seq_len();
        // A FIN without data needs no buffer: it is taken even at a zero window.
        let bare_fin = seg.seq == self.rcv_nxt && seg.payload.is_empty();
        let acceptable = bare_fin || seg.seq.acceptable(len, self.rcv_nxt, wnd);
        // A zero-window probe: not acceptable, but its ACK counts and it gets an ACK.
        let probe = !acceptable && wnd == 0 && seg.seq == self.rcv_nxt && !seg.has(RST);
        if !acceptable && !probe {
            stats.out_of_window += 1;
            if seg.has(SYN) {
                // RFC 5961 (4.2): a SYN draws a challenge ACK whatever its sequence number.
                self.challenge(now, stats);
            } else if !seg.has(RST) && self.out_of_window_acks.allow(seg, now, stats) {
                self.ack_pending = true;
            }
            return false;
        }
        if seg.has(RST) {
            if seg.seq == self.rcv_nxt {
                stats.rst_received += 1;
                self.reset(Error::Reset, false);
            } else {
                self.challenge(now, stats);
            }
            return false;
        }
        if seg.has(SYN) {
            self.challenge(now, stats);
            return false;
        }
        if !seg.has(ACK) {
            stats.out_of_window += 1;
            return false;
        }
        // RFC 5961 (5.2): acceptable from SND.UNA - MAX.SND.WND up to what was sent,
        // measured as one distance: an ACK 2^31 away is neither ahead nor behind as
        // `Seq` compares, and must be refused too.
        let oldest = Seq(self.snd_una.0.wrapping_sub(self.max_snd_wnd as u32));
        let acceptable_acks = self.max_snd_wnd + self.snd_max.since(self.snd_una) + 1;
        if !seg.ack.within(oldest, acceptable_acks) {
            stats.out_of_window += 1;
            self.challenge(now, stats);
            return false;
        }
        // An acceptable ACK, whatever its window: the peer is alive and answers probes
        // (zero-window and keep-alive ones).
        self.probes = 0;
        self.keepalive_from = now;
        self.keepalives = 0;
        self.process_ack(seg, now, config, stats);
        if self.state == State::Closed {
            return true;
        }
        if probe {
            self.ack_pending = true;
            return true;
        }
        if seg.has(FIN) && !self.fin_received {
            // Acknowledged in order or not: an early FIN gets a duplicate ACK, and is
            // kept if the data before it fits the window. Noted before the data is
            // taken, so that none beyond it is (a run kept past it, whose gap this
            // segment fills, included).
            self.ack_pending = true;
            let fin = seg.seq.plus(seg.payload.len());
            if fin >= self.rcv_nxt
                && fin.since(self.rcv_nxt) <= wnd
                && self.fin_at.is_none_or(|at| fin < at)
            {
                self.fin_at = Some(fin);
                self.drop_runs_beyond_fin(fin);
            }
        }
        self.process_data(seg, stats);
        if !self.fin_received && self.fin_at == Some(self.rcv_nxt) {
            self.rcv_nxt = self.rcv_nxt.plus(1);
            self.fin_received = true;
            self.ack_pending = true;
            self.state = match self.state {
                State::Established => State::CloseWait,
                State::FinWait1 if self.fin_acked => self.time_wait(now, config),
                State::FinWait1 => State::Closing,
                State::FinWait2 => self.time_wait(now, config),
                other => other,
            };
        }
        true
    }

    /// Processes a segment for this connection in TIME-WAIT at `now`, as the compact
    /// entry a released one leaves does ([`time_wait::answer`]): `Some(snd_nxt)` if it
    /// is a new SYN that ended the TIME-WAIT (the connection is then closed, and the
    /// SYN opens a new connection above the old sequence space).
    pub(crate) fn input_time_wait(
        &mut self,
        seg: &Segment<'_>,
        now: u64,
        config: &Config,
        stats: &mut Stats,
    ) -> Option<Seq> {
        let sequence = self.sequence();
        match time_wait::answer(seg, sequence, &mut self.out_of_window_acks, now, stats) {
            time_wait::Answer::Reopen => {
                self.state = State::Closed;
                self.close_at = None;
                return Some(self.snd_nxt);
            }
            time_wait::Answer::FinAgain => {
                self.state = self.time_wait(now, config);
                self.ack_pending = true;
            }
            time_wait::Answer::Acknowledge => self.ack_pending = true,
            time_wait::Answer::Drop => {}
        }
        None
    }

    /// Owes the peer a challenge ACK (RFC 5961) at `now`, unless this connection sent
    /// [`CHALLENGE_ACKS_PER_SECOND`](crate::CHALLENGE_ACKS_PER_SECOND) this second.
    fn challenge(&mut self, now: u64, stats: &mut Stats) {
        if self.challenges.allow(now, stats) {
            self.ack_pending = true;
        }
    }

    /// Enters TIME-WAIT at `now`.
    fn time_wait(&mut self, now: u64, config: &Config) -> State {
        self.close_at = Some(now.saturating_add(config.time_wait_ns));
        State::TimeWait
    }

    /// The ACK and window fields of an acceptable segment.
    fn process_ack(&mut self, seg: &Segment<'_>, now: u64, config: &Config, stats: &mut Stats) {
        let window = usize::from(seg.window) << self.snd_shift;
        let progressed = seg.ack > self.snd_una;
        if progressed {
            let acked = seg.ack.since(self.snd_una);
            let data = acked.min(self.queued);
            self.drop_acknowledged(data);
            if acked > data {
                self.fin_acked = true;
            }
            self.snd_una = seg.ack;
            self.unreachable = None;
            if self.snd_nxt < self.snd_una {
                self.snd_nxt = self.snd_una;
            }
            self.retries = 0;
            if let Some((end, sent)) = self.rtt_probe
                && seg.ack >= end
            {
                self.rtt_sample(now.saturating_sub(sent), config);
                self.rtt_probe = None;
            }
            self.rtx_at = (self.snd_una != self.snd_max).then_some(now.saturating_add(self.rto));
            match self.recover.filter(|_| self.in_recovery) {
                Some(recover) if seg.ack >= recover => {
                    self.in_recovery = false;
                    self.cwnd = self.ssthresh;
                }
                Some(_) => {
                    // NewReno's partial ACK: the next hole is lost too.
                    self.fast_rtx = true;
                    self.cwnd = self.cwnd.saturating_sub(acked).max(self.mss) + self.mss;
                }
                None if !self.cwnd_limited => {}
                None if self.cwnd < self.ssthresh => self.cwnd += acked.min(self.mss),
                None => self.cwnd += (self.mss * self.mss / self.cwnd).max(1),
            }
            self.dupacks = 0;
            if self.fin_acked {
                self.state = match self.state {
                    State::FinWait1 => {
                        self.close_at = self
                            .released
                            .then(|| now.saturating_add(config.fin_wait2_ns));
                        State::FinWait2
                    }
                    State::Closing => self.time_wait(now, config),
                    State::LastAck => State::Closed,
                    other => other,
                };
            }
        } else if seg.ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.has(FIN)
            && window == self.snd_wnd
            // Not at a zero window: an answer to a probe (whose byte is outstanding)
            // says nothing of loss, and nothing may be resent into the window.
            && window != 0
            && self.snd_max != self.snd_una
        {
            stats.duplicate_acks += 1;
            self.dupacks += 1;
            // RFC 6582 (3.2): not again for losses of what was sent before the last one
            // was detected (a timeout's retransmissions draw duplicate ACKs too); a loss
            // of the first byte sent after it may (`recover` is one past the highest).
            if self.dupacks == 3
                && !self.in_recovery
                && self.recover.is_none_or(|recover| seg.ack >= recover)
            {
                stats.fast_retransmits += 1;
                let flight = self.snd_max.since(self.snd_una);
                self.ssthresh = (flight / 2).max(2 * self.mss);
                self.cwnd = self.ssthresh + 3 * self.mss;
                self.recover = Some(self.snd_max);
                self.in_recovery = true;
                self.fast_rtx = true;
            } else if self.in_recovery {
                // Each further duplicate ACK: a segment left the network (RFC 6582,
                // 3.2 step 4), after a partial ACK too.
                self.cwnd += self.mss;
            }
        }
        // The window of a segment newer than the last one taken (RFC 9293, 3.10.7.4),
        // by its sequence number or, as Linux does, by its ACK: a retransmission that
        // acknowledges more has a lower sequence number, and its window (the right
        // edge moved by its ACK) must not be left for the older one. Never that of an
        // old ACK (below SND.UNA): its window counts from its ACK, not from SND.UNA.
        if seg.ack >= self.snd_una
            && (self.snd_wl1 < seg.seq
                || (self.snd_wl1 == seg.seq && self.snd_wl2 <= seg.ack)
                || seg.ack > self.snd_wl2)
        {
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
        }
        if self.window_closed() {
            // The persist timer replaces the retransmission timer (RFC 1122, 4.2.2.17:
            // no retries count while the peer answers probes); what was sent beyond the
            // window goes again once it opens.
            self.rtx_at = None;
            self.snd_nxt = self.snd_una;
            self.rtt_probe = None;
            if progressed && self.release_cap(config).is_none_or(|cap| now < cap) {
                // The peer still reads: a released connection's wait starts again,
                // within its cap (past it, the answer to the last probe resets it
                // even when it takes the probe's byte).
                self.window_closed_at = Some(now);
                self.final_probe_sent = false;
            } else if self.final_probe_sent {
                stats.zero_window_timeouts += 1;
                return self.reset(Error::TimedOut, true);
            }
            self.start_persist(now);
        } else {
            self.persist_at = None;
            self.persist_backoff = 0;
            self.window_closed_at = None;
            self.window_first_closed_at = None;
            self.final_probe_sent = false;
        }
    }

    /// Drops `n` acknowledged bytes from the front of the send queue.
    fn drop_acknowledged(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.queue.pop_front();
            } else {
                front.consume(n);
                n = 0;
            }
        }
    }

    /// RFC 6298's estimator, updated with a round trip of `rtt` ns. A sample is taken
    /// as at most the largest RTO (a clock that jumped by years would otherwise hold
    /// the RTO at its largest for hundreds of round trips), and no sum exceeds its larger
    /// input, so that even a largest RTO of `u64::MAX` neither panics nor wraps.
    fn rtt_sample(&mut self, rtt: u64, config: &Config) {
        let rtt = rtt.min(config.rto_max_ns);
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let (srtt, rttvar) = smoothed(srtt, self.rttvar, rtt);
                self.srtt = Some(srtt);
                self.rttvar = rttvar;
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.rto = srtt
            .saturating_add(self.rttvar.saturating_mul(4).max(GRANULARITY_NS))
            .clamp(config.rto_min_ns, config.rto_max_ns);
    }

    /// The data of an acceptable segment: in order into the receive buffer, ahead of
    /// order into the reassembly runs; never beyond the window or the peer's FIN.
    fn process_data(&mut self, seg: &Segment<'_>, stats: &mut Stats) {
        if seg.payload.is_empty()
            || !matches!(
                self.state,
                State::Established | State::FinWait1 | State::FinWait2
            )
        {
            return;
        }
        self.ack_pending = true;
        let (mut seq, mut data) = (seg.seq, seg.payload);
        if seq < self.rcv_nxt {
            data = data.get(self.rcv_nxt.since(seq)..).unwrap_or_default();
            seq = self.rcv_nxt;
        }
        let room = self.rcv_window().saturating_sub(seq.since(self.rcv_nxt));
        data = self.before_fin(seq, &data[..data.len().min(room)]);
        if data.is_empty() {
            return;
        }
        if seq == self.rcv_nxt {
            self.deliver(data);
            while let Some(i) = self
                .out_of_order
                .iter()
                .position(|(s, _)| *s <= self.rcv_nxt)
            {
                let (start, mut run) = self.out_of_order.swap_remove(i);
                if let Some(tail) = run.make_contiguous().get(self.rcv_nxt.since(start)..) {
                    self.deliver(self.before_fin(self.rcv_nxt, tail));
                }
            }
        } else {
            self.keep_out_of_order(seq, data, stats);
        }
    }

    /// Keeps `data`, at `seq` ahead of a gap, for reassembly: nothing already held is
    /// kept again, and runs that overlap or touch become one, so that a peer sending
    /// the same early segment again takes no more room; a run that would be new is
    /// dropped when [`MAX_OUT_OF_ORDER`] are held. Joining two runs copies the shorter
    /// onto the longer ([`joined`]), so data arriving in any order costs no more than
    /// copying each byte once per doubling of its run.
    fn keep_out_of_order(&mut self, seq: Seq, data: &[u8], stats: &mut Stats) {
        let end = seq.plus(data.len());
        if self
            .out_of_order
            .iter()
            .any(|(start, run)| *start <= seq && end <= start.plus(run.len()))
        {
            return;
        }
        let (mut start, mut run) = (seq, VecDeque::from(data.to_vec()));
        self.count_copied(data.len());
        while let Some(i) = self.out_of_order.iter().position(|(other, bytes)| {
            *other <= start.plus(run.len()) && start <= other.plus(bytes.len())
        }) {
            let other = self.out_of_order.swap_remove(i);
            let kept = run.len().max(other.1.len());
            (start, run) = joined((start, run), other);
            self.count_copied(run.len() - kept);
        }
        // A merge removed at least one run first, so it always finds room.
        if self.out_of_order.len() < MAX_OUT_OF_ORDER {
            stats.out_of_order_kept += 1;
            self.out_of_order.push((start, run));
        } else {
            stats.out_of_order_dropped += 1;
        }
    }

    /// Notes `n` bytes copied into the reassembly runs.
    #[cfg(test)]
    fn count_copied(&mut self, n: usize) {
        self.reassembly_copied += n;
    }

    /// Counts nothing outside the tests.
    #[cfg(not(test))]
    fn count_copied(&mut self, _n: usize) {}

    /// Cuts the reassembly runs at the peer's FIN at `fin`: a run that starts there or
    /// beyond goes (it would never be delivered, and it took a run's room from data
    /// before the FIN), one that crosses it keeps only what lies before it.
    fn drop_runs_beyond_fin(&mut self, fin: Seq) {
        self.out_of_order.retain_mut(|(start, run)| {
            run.truncate(fin.since(*start));
            !run.is_empty()
        });
    }

    /// The part of `data`, starting at `seq`, that lies before the peer's FIN (all of
    /// it while no FIN was seen): what a broken peer sends beyond its FIN is dropped.
    fn before_fin<'d>(&self, seq: Seq, data: &'d [u8]) -> &'d [u8] {
        let len = self
            .fin_at
            .map_or(data.len(), |fin| fin.since(seq).min(data.len()));
        &data[..len]
    }

    /// Appends in-order bytes (discarded once the app released the connection: a
    /// lingering close reads and drops what the peer still sends).
    fn deliver(&mut self, data: &[u8]) {
        self.rcv_nxt = self.rcv_nxt.plus(data.len());
        if !self.released {
            self.rcv_buf.extend(data);
        }
    }

    /// Runs the timers due at `now`.
    pub(crate) fn on_timer(&mut self, now: u64, config: &Config, stats: &mut Stats) {
        if self.close_at.is_some_and(|at| at <= now) {
            self.close_at = None;
            if self.state == State::FinWait2 {
                stats.fin_wait2_timeouts += 1;
            }
            self.state = State::Closed;
            return;
        }
        if self.rtx_at.is_some_and(|at| at <= now) {
            if self.retries >= config.max_retransmits {
                stats.retransmit_timeouts += 1;
                return self.reset(Error::TimedOut, true);
            }
            stats.retransmits += 1;
            self.retries += 1;
            self.rto = self.rto.saturating_mul(2).min(config.rto_max_ns);
            let flight = self.snd_max.since(self.snd_una);
            self.ssthresh = (flight / 2).max(2 * self.mss);
            self.cwnd = self.mss;
            self.snd_nxt = self.snd_una;
            self.rtt_probe = None;
            self.dupacks = 0;
            self.recover = Some(self.snd_max);
            self.in_recovery = false;
            self.rtx_at = Some(now.saturating_add(self.rto));
        }
        if self.mss_raise_at.is_some_and(|at| at <= now) {
            stats.mss_raised += 1;
            self.mss = self.handshake_mss;
            self.mss_raise_at = None;
        }
        let persist_due = self.persist_at.is_some_and(|at| at <= now);
        if persist_due && self.probes >= config.max_retransmits {
            stats.zero_window_timeouts += 1;
            return self.reset(Error::TimedOut, true);
        }
        let released_due = self.release_deadline(config).is_some_and(|at| at <= now);
        if persist_due || released_due {
            stats.window_probes += 1;
            self.probes += 1;
            self.probe_now = true;
            self.final_probe_sent |= released_due;
            self.persist_backoff = (self.persist_backoff + 1).min(6);
            let interval = crate::backed_off(self.rto, self.persist_backoff, config.rto_max_ns);
            self.persist_at = Some(now.saturating_add(interval.min(self.persist_cap(config))));
        }
        if let Some(interval) = config.keepalive_ns
            && matches!(self.state, State::Established | State::CloseWait)
            && self.snd_una == self.snd_max
            && now >= self.keepalive_from.saturating_add(interval)
        {
            if self.keepalives >= config.keepalive_probes {
                stats.keepalive_timeouts += 1;
                return self.reset(Error::TimedOut, true);
            }
            stats.keepalive_probes += 1;
            self.keepalives += 1;
            self.keepalive_from = now;
            self.keepalive_now = true;
        }
    }

    /// When a connection the app released has waited too long behind a zero window
    /// ([`Config::released_zero_window_ns`](crate::Config) from when it closed or last
    /// took more, and never past [`release_cap`](Self::release_cap)): a probe then goes
    /// at once, and an answer that still shows a zero window resets it. `None` once
    /// that probe went (unanswered, it counts as any other toward
    /// [`Config::max_retransmits`](crate::Config)).
    fn release_deadline(&self, config: &Config) -> Option<u64> {
        let wait = self
            .window_closed_at
            .filter(|_| self.released && !self.final_probe_sent)
            .map(|at| at.saturating_add(config.released_zero_window_ns))?;
        Some(self.release_cap(config).map_or(wait, |cap| wait.min(cap)))
    }

    /// The latest a released connection may wait behind a zero window however much
    /// its peer acknowledges meanwhile: [`RELEASED_ZERO_WINDOW_CAP`] waits from when
    /// the window closed, so that a peer taking each probe's byte at a zero window
    /// does not hold the slot for as many probes as there are bytes queued.
    fn release_cap(&self, config: &Config) -> Option<u64> {
        let cap = config
            .released_zero_window_ns
            .saturating_mul(RELEASED_ZERO_WINDOW_CAP);
        self.window_first_closed_at
            .filter(|_| self.released)
            .map(|at| at.saturating_add(cap))
    }

    /// The longest wait between zero-window probes: for a released connection a
    /// quarter of [`Config::released_zero_window_ns`](crate::Config) (never below the
    /// least RTO), so that several probes fall within its wait.
    fn persist_cap(&self, config: &Config) -> u64 {
        match self.released {
            true => (config.released_zero_window_ns / 4).max(config.rto_min_ns),
            false => u64::MAX,
        }
    }

    /// The earliest time a timer of this connection is due.
    pub(crate) fn deadline(&self, config: &Config) -> Option<u64> {
        #[cfg(test)]
        crate::tests::count_visited();
        let keepalive = config
            .keepalive_ns
            .filter(|_| matches!(self.state, State::Established | State::CloseWait))
            .filter(|_| self.snd_una == self.snd_max)
            .map(|interval| self.keepalive_from.saturating_add(interval));
        [
            self.close_at,
            self.release_deadline(config),
            self.rtx_at,
            self.persist_at,
            self.runt_at,
            self.mss_raise_at,
            keepalive,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When a turn of a poll cuts the congestion window to the initial window, the
    /// connection having sent nothing for longer than the RTO with nothing outstanding
    /// (RFC 5681, 4.1's restart window): `None` unless it is idle with a window above
    /// the initial one.
    pub(crate) fn idle_cut_at(&self) -> Option<u64> {
        // A closed connection, or one in TIME-WAIT, sends no data again: no cut to owe.
        let done = matches!(self.state, State::Closed | State::TimeWait);
        if done || self.snd_una != self.snd_max || self.cwnd <= initial_window(self.mss) {
            return None;
        }
        self.last_data_sent.checked_add(self.rto)?.checked_add(1)
    }

    /// The header of a segment from this connection at `seq` with `flags`.
    fn header(&self, seq: Seq, flags: u8) -> Header {
        Header {
            src: self.tuple.local,
            dst: self.tuple.remote,
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            seq,
            ack: self.rcv_nxt,
            flags,
            window: self.window_field(),
            mss: None,
            window_scale: None,
        }
    }

    /// Sends the segment at `seq` carrying `len` queued bytes (from the send queue, in
    /// at most [`MAX_PIECES`] pieces; fewer bytes if they span more) and a FIN if
    /// `fin` and the data reaches the end of the queue. A segment longer than the MSS
    /// (a super-segment, for a NIC that cuts it) carries the pseudo-header's sum in its
    /// checksum field, as such a NIC expects; any other its whole checksum, composed
    /// from the pieces' sums. Returns the sequence space sent, or `None` if `emit`
    /// refused; data sent is noted as last sent at `now`.
    fn send_segment(
        &mut self,
        seq: Seq,
        len: usize,
        fin: bool,
        now: u64,
        out: &mut Output<'_>,
    ) -> Option<usize> {
        let mut offset = seq.since(self.snd_una);
        let end = offset + len;
        let mut slices: [&[u8]; MAX_PIECES] = [&[]; MAX_PIECES];
        let mut ranges = [(0, 0, 0); MAX_PIECES];
        let (mut count, mut sent) = (0, 0);
        let mut piece_start = 0;
        for (index, piece) in self.queue.iter().enumerate() {
            let piece_end = piece_start + piece.len();
            if count == MAX_PIECES || piece_start >= end {
                break;
            }
            if piece_end > offset {
                let from = offset - piece_start;
                let to = piece_end.min(end) - piece_start;
                slices[count] = &piece.bytes()[from..to];
                ranges[count] = (index, from, to);
                sent += to - from;
                offset += to - from;
                count += 1;
            }
            piece_start = piece_end;
        }
        let checksum = if sent > self.mss {
            Checksum::Offloaded(self.mss)
        } else {
            let mut sum = 0;
            let mut at = 0;
            for &(index, from, to) in &ranges[..count] {
                let part = self.queue[index].sum(from, to);
                sum = crate::checksum::add(sum, crate::checksum::at_offset(part, at));
                at += to - from;
            }
            Checksum::Payload(sum)
        };
        let fin = fin && seq.since(self.snd_una) + sent == self.queued;
        let mut flags = ACK | if fin { FIN } else { 0 };
        if sent > 0 {
            flags |= wire::PSH;
        }
        let header = self.header(seq, flags);
        if !out.send_data(&header, &slices[..count], sent, checksum) {
            return None;
        }
        if sent > 0 {
            self.last_data_sent = now;
        }
        self.rcv_adv = self.rcv_nxt.plus(self.rcv_window());
        self.ack_pending = false;
        Some(sent + usize::from(fin))
    }

    /// Notes that the sequence space up to `end` was sent (a FIN on a retransmission
    /// or probe may be its first sending).
    fn sent_up_to(&mut self, end: Seq) {
        if end > self.snd_max {
            self.snd_max = end;
        }
    }

    /// The sequence number of a segment without data, as Linux's `tcp_acceptable_seq`
    /// picks it: the highest number sent if within the peer's window (a retransmission
    /// timeout or a lowered MSS rewinds `snd_nxt`, and a peer that received everything
    /// drops a segment below its RCV.NXT, RFC 9293 3.10.7.4); else the window's end
    /// (behind a zero window a probe's byte is past what the peer took), or `snd_nxt`
    /// if that is further (a window shrunk below what was sent, as a scaled one rounded
    /// down is).
    fn pure_ack_seq(&self) -> Seq {
        let window_end = self.snd_una.plus(self.snd_wnd);
        if self.snd_max <= window_end {
            self.snd_max
        } else if self.snd_nxt > window_end {
            self.snd_nxt
        } else {
            window_end
        }
    }

    /// Takes this connection's turn of a poll at `now`: sends the retransmission and
    /// probe due, then new data within the peer's and the congestion window (cut to the
    /// initial window first if no data went for longer than the RTO and none is
    /// outstanding) and a FIN, in at most `pace.burst` segments, then a keep-alive and
    /// an ACK if one is owed. Data segments carry up to the MSS, or with `pace.segmentation` up to the
    /// most whole MSS-sized segments within it (super-segments a NIC cuts), and one
    /// smaller than the MSS only as silly-window avoidance allows; a retransmission
    /// carries one MSS. [`Turn::More`] if data waits for another turn.
    pub(crate) fn output(&mut self, now: u64, out: &mut Output<'_>, pace: Pace) -> Turn {
        if self.rst_pending {
            // Where the peer takes a segment without data, as an ACK goes (Linux's
            // active reset does the same): a retransmission timeout rewinds `snd_nxt`,
            // and a peer that received up to `snd_max` drops a RST below it; behind a
            // zero window it drops one at a probe's byte.
            let header = self.header(self.pure_ack_seq(), RST | ACK);
            if !out.send(&header, &[], 0, 0) {
                return Turn::Refused;
            }
            self.rst_pending = false;
            return Turn::Done;
        }
        if self.state == State::Closed || self.state == State::TimeWait && !self.ack_pending {
            return Turn::Done;
        }
        let fin_unacked = self.fin_queued && !self.fin_acked;
        if self.fast_rtx {
            // Within the send window: behind a zero window the probes resend instead.
            let len = self.queued.min(self.mss).min(self.snd_wnd);
            if len > 0 || self.queued == 0 {
                let Some(space) = self.send_segment(self.snd_una, len, fin_unacked, now, out)
                else {
                    return Turn::Refused;
                };
                out.stats.segments_retransmitted += 1;
                self.rtt_probe = None;
                self.sent_up_to(self.snd_una.plus(space));
            }
            self.fast_rtx = false;
        }
        if self.probe_now {
            let len = self.queued.min(1);
            match self.send_segment(self.snd_una, len, fin_unacked, now, out) {
                Some(space) => {
                    self.probe_now = false;
                    self.sent_up_to(self.snd_una.plus(space));
                }
                None => return Turn::Refused,
            }
        }
        if self.idle_cut_at().is_some_and(|at| at <= now) {
            // Idle for longer than the RTO: what the window allowed may no longer be
            // what the path takes (RFC 5681, 4.1's restart window).
            self.cwnd = initial_window(self.mss);
        }
        let limit = pace
            .segmentation
            .map_or(self.mss, |max| (max / self.mss).max(1) * self.mss);
        let runt_allowed = self.runt_at.is_some_and(|at| at <= now);
        let mut runt_held = false;
        let mut segments = 0;
        loop {
            let offset = self.snd_nxt.since(self.snd_una);
            let unsent = self.queued.saturating_sub(offset);
            let fin_unsent = fin_unacked && offset <= self.queued;
            if unsent == 0 && !fin_unsent {
                break;
            }
            let window = self.snd_wnd.min(self.cwnd);
            let mut len = unsent.min(limit).min(window.saturating_sub(offset));
            if len == 0 && unsent > 0 {
                if self.snd_wnd == 0 && offset == 0 {
                    self.start_persist(now);
                }
                break;
            }
            // Sender-side silly-window avoidance (RFC 9293, 3.8.6.2.1): a segment
            // smaller than the MSS goes only if it ends the queue, fills half the
            // largest window the peer offered, or waited out the override timeout.
            if len < self.mss && len < unsent && len < self.max_snd_wnd / 2 && !runt_allowed {
                runt_held = true;
                break;
            }
            if segments >= pace.burst {
                return Turn::More;
            }
            if len > self.mss && len < unsent {
                // Whole segments only: the NIC's last cut would be a runt mid-stream.
                len -= len % self.mss;
            }
            let Some(space) = self.send_segment(self.snd_nxt, len, fin_unsent, now, out) else {
                return Turn::Refused;
            };
            if space == 0 {
                break;
            }
            segments += 1;
            let start = self.snd_nxt;
            self.snd_nxt = self.snd_nxt.plus(space);
            self.cwnd_limited = 2 * self.snd_nxt.since(self.snd_una) >= self.cwnd;
            if self.snd_nxt > self.snd_max {
                if self.rtt_probe.is_none() && start >= self.snd_max {
                    self.rtt_probe = Some((self.snd_nxt, now));
                }
                self.snd_max = self.snd_nxt;
            } else {
                out.stats.segments_retransmitted += 1;
            }
            if self.rtx_at.is_none() {
                self.rtx_at = Some(now.saturating_add(self.rto));
            }
        }
        if !runt_held {
            self.runt_at = None;
        } else if self.runt_at.is_none() {
            let wait = self.rto.clamp(SWS_OVERRIDE_MIN_NS, SWS_OVERRIDE_MAX_NS);
            self.runt_at = Some(now.saturating_add(wait));
        }
        if self.keepalive_now {
            // One byte of sequence space the peer has already acknowledged.
            let header = self.header(Seq(self.snd_una.0.wrapping_sub(1)), ACK);
            if !out.send(&header, &[], 0, 0) {
                return Turn::Refused;
            }
            self.keepalive_now = false;
        }
        if self.ack_pending {
            let header = self.header(self.pure_ack_seq(), ACK);
            if !out.send(&header, &[], 0, 0) {
                return Turn::Refused;
            }
            self.rcv_adv = self.rcv_nxt.plus(self.rcv_window());
            self.ack_pending = false;
        }
        Turn::Done
    }
}

/// How much a connection sends in one turn of a poll.
#[derive(Clone, Copy)]
pub(crate) struct Pace {
    /// The most payload bytes of a super-segment ([`Config::segmentation`], held to
    /// [`MAX_SEGMENTATION`](crate::MAX_SEGMENTATION)).
    pub segmentation: Option<usize>,
    /// The most data segments per turn ([`Config::burst`], at least 1).
    pub burst: usize,
}

/// How a connection's turn of a poll ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// `emit` refused a segment; the rest waits for the next poll.
    Refused,
    /// Everything due was sent.
    Done,
    /// Data that may go now waits for the connection's next turn.
    More,
}

/// Where segments go: the caller's `emit`, with the IPv4 identification counter and
/// the statistics.
pub struct Output<'a> {
    /// The caller's sender: `true` if it took the segment.
    pub emit: &'a mut dyn FnMut(&Outgoing<'_>) -> bool,
    /// The next IPv4 identification.
    pub ip_id: &'a mut u16,
    /// The counters.
    pub stats: &'a mut Stats,
}

/// How a segment's TCP checksum is made.
#[derive(Clone, Copy)]
pub enum Checksum {
    /// Whole: the payload's bytes sum to this.
    Payload(u16),
    /// Left to the NIC, which cuts the segment into segments of this many payload
    /// bytes: the field holds the pseudo-header's sum for the whole segment.
    Offloaded(usize),
}

impl Output<'_> {
    /// Writes the headers of `header` for `payload` (`len` bytes summing to `sum`) and
    /// hands the segment to `emit`.
    pub fn send(&mut self, header: &Header, payload: &[&[u8]], len: usize, sum: u16) -> bool {
        self.send_data(header, payload, len, Checksum::Payload(sum))
    }

    /// Writes the headers of `header` for `payload` (`len` bytes) with `checksum` and
    /// hands the segment to `emit`.
    pub fn send_data(
        &mut self,
        header: &Header,
        payload: &[&[u8]],
        len: usize,
        checksum: Checksum,
    ) -> bool {
        self.hand_out(header, payload, len, checksum, None)
    }

    /// Writes the headers of `header`, a segment without data or connection, and hands
    /// it to `emit` to send back to `reply_to` if given ([`Outgoing::reply_to`]).
    pub fn send_reply(&mut self, header: &Header, reply_to: Option<LinkAddress>) -> bool {
        self.hand_out(header, &[], 0, Checksum::Payload(0), reply_to)
    }

    /// Writes the headers of `header` for `payload` (`len` bytes) with `checksum` and
    /// hands the segment, going back to `reply_to` if given, to `emit`.
    fn hand_out(
        &mut self,
        header: &Header,
        payload: &[&[u8]],
        len: usize,
        checksum: Checksum,
        reply_to: Option<LinkAddress>,
    ) -> bool {
        let mut headers = [0; wire::MAX_HEADERS];
        let (sum, cut) = match checksum {
            Checksum::Payload(sum) => (sum, None),
            Checksum::Offloaded(mss) => (0, Some(mss)),
        };
        let n = wire::write_headers(header, *self.ip_id, len, sum, &mut headers);
        if cut.is_some() {
            wire::seed_checksum(header, len, &mut headers[..n]);
        }
        let segment = Outgoing {
            headers: &headers[..n],
            payload,
            cut,
            reply_to,
        };
        if !(self.emit)(&segment) {
            return false;
        }
        // A super-segment becomes as many packets, each with its own identification.
        let packets = cut.map_or(1, |mss| len.div_ceil(mss));
        *self.ip_id = self.ip_id.wrapping_add(packets as u16);
        self.stats.segments_out += 1;
        if cut.is_some() {
            self.stats.segments_offloaded += 1;
        }
        if header.flags & RST != 0 {
            self.stats.rst_sent += 1;
        }
        true
    }
}

/// Two reassembly runs that overlap or touch (where each starts, and its bytes) as one:
/// the longer kept in place, with the bytes of the shorter that lie before it put on
/// its front and those beyond it on its back, so that joining copies only the shorter.
fn joined(a: (Seq, VecDeque<u8>), b: (Seq, VecDeque<u8>)) -> (Seq, VecDeque<u8>) {
    let ((mut start, mut run), (other, bytes)) = if a.1.len() >= b.1.len() {
        (a, b)
    } else {
        (b, a)
    };
    if other < start {
        let before = start.since(other).min(bytes.len());
        run.reserve(before);
        for &byte in bytes.range(..before).rev() {
            run.push_front(byte);
        }
        start = other;
    }
    let beyond = start.plus(run.len()).since(other);
    if beyond < bytes.len() {
        run.extend(bytes.range(beyond..));
    }
    (start, run)
}

/// RFC 6298's update of SRTT and RTTVAR by a round trip of `rtt`: (7 SRTT + R) / 8 and
/// (3 RTTVAR + |SRTT - R|) / 4, each term divided first, so that neither result exceeds
/// its larger input and nothing overflows, whatever the values.
pub(crate) fn smoothed(srtt: u64, rttvar: u64, rtt: u64) -> (u64, u64) {
    (
        srtt - srtt / 8 + rtt / 8,
        rttvar - rttvar / 4 + srtt.abs_diff(rtt) / 4,
    )
}
