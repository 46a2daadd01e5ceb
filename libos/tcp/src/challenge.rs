//! The limits on ACKs drawn by segments we do not accept: RFC 5961's challenge ACKs
//! (RFC 5961, 7), and the ACKs owed to out-of-window segments without data.

use crate::Stats;
use crate::wire::{FIN, Segment};

/// The most challenge ACKs one connection (or half-open connection) sends in a second;
/// more are not sent. RFC 5961 (7) asks for a limit: each forged in-window RST or SYN,
/// or forged ACK out of range, would otherwise draw an ACK from us. A peer with a real
/// reason (it restarted and sends a new SYN, its RST crossed our data) needs one per
/// event and retransmits it later if that one is lost, so ten a second is ample, while
/// a flood draws at most ten. The count is per connection, not shared by the host: a
/// shared count is the side channel of CVE-2016-5696 (an off-path attacker counting
/// the challenge ACKs its own connection gets learns whether a guess at another
/// connection's ports and sequence numbers drew one).
pub const CHALLENGE_ACKS_PER_SECOND: u32 = 10;

/// One second in nanoseconds.
const SECOND_NS: u64 = 1_000_000_000;

/// The challenge ACKs one connection sent in its current second, which starts with the
/// first challenge ACK sent after the previous second ended.
#[derive(Clone, Copy, Default)]
pub struct ChallengeAcks {
    second_from: u64,
    sent: u32,
}

impl ChallengeAcks {
    /// Whether a challenge ACK may be sent at `now`: `true` (counted here and in
    /// `stats.challenge_acks`) unless [`CHALLENGE_ACKS_PER_SECOND`] were sent this
    /// second (counted in `stats.challenge_acks_limited`).
    pub fn allow(&mut self, now: u64, stats: &mut Stats) -> bool {
        if self.sent == 0 || now.saturating_sub(self.second_from) >= SECOND_NS {
            self.second_from = now;
            self.sent = 0;
        }
        if self.sent >= CHALLENGE_ACKS_PER_SECOND {
            stats.challenge_acks_limited += 1;
            return false;
        }
        self.sent += 1;
        stats.challenge_acks += 1;
        true
    }
}

/// The least time between two ACKs one connection (or TIME-WAIT entry) sends in answer to
/// out-of-window segments without data. RFC 9293 (3.10.7.4) answers every unacceptable
/// segment with an ACK; two ends that disagree on the sequence numbers (one of them
/// desynchronized, or a forged connection) would then ACK each other's ACKs for ever, an
/// ACK storm. Linux limits these ACKs the same way (`tcp_invalid_ratelimit`, 500 ms). A
/// segment with data or a FIN is always answered: it is a retransmission of what we took
/// already, and its sender needs the ACK to stop.
pub const OUT_OF_WINDOW_ACK_INTERVAL_NS: u64 = 500_000_000;

/// When the last ACK answering an out-of-window segment without data went out.
#[derive(Clone, Copy, Default)]
pub struct OutOfWindowAcks {
    last: Option<u64>,
}

impl OutOfWindowAcks {
    /// Whether the out-of-window segment `seg` may be answered at `now`: always if it
    /// carries data or a FIN, else at most once per [`OUT_OF_WINDOW_ACK_INTERVAL_NS`]
    /// (refusals counted in `stats.out_of_window_acks_limited`).
    pub fn allow(&mut self, seg: &Segment<'_>, now: u64, stats: &mut Stats) -> bool {
        if !seg.payload.is_empty() || seg.has(FIN) {
            return true;
        }
        if self
            .last
            .is_some_and(|last| now.saturating_sub(last) < OUT_OF_WINDOW_ACK_INTERVAL_NS)
        {
            stats.out_of_window_acks_limited += 1;
            return false;
        }
        self.last = Some(now);
        true
    }
}
