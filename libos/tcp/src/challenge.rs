//! RFC 5961's challenge ACKs, limited per connection (RFC 5961, 7).

use crate::Stats;

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
