//! TIME-WAIT's answers to segments (RFC 9293, 3.10.7.4), shared by a connection the app
//! still holds and the compact entry a released one leaves, so that both behave alike.

use crate::Stats;
use crate::challenge::OutOfWindowAcks;
use crate::seq::Seq;
use crate::wire::{ACK, FIN, RST, Segment};

/// What a segment for a connection in TIME-WAIT calls for.
pub enum Answer {
    /// A new SYN above the old sequence space: TIME-WAIT ends and the SYN opens a new
    /// connection (RFC 1122, 4.2.2.13; counted in `Stats::time_wait_reused`).
    Reopen,
    /// The peer's FIN again: acknowledged, and the 2 MSL timeout restarts.
    FinAgain,
    /// A segment it cannot accept (or one acknowledging what was never sent):
    /// acknowledged.
    Acknowledge,
    /// Dropped unanswered: the last ACK again, a RST (RFC 1337), or an ACK over the
    /// limit of `OutOfWindowAcks`.
    Drop,
}

/// How a connection in TIME-WAIT, whose next sequence numbers to send and to receive
/// are `sequence`, answers `seg` at `now`, its ACKs to segments without data limited
/// by `acks`.
pub fn answer(
    seg: &Segment<'_>,
    sequence: (Seq, Seq),
    acks: &mut OutOfWindowAcks,
    now: u64,
    stats: &mut Stats,
) -> Answer {
    let (snd_nxt, rcv_nxt) = sequence;
    if seg.opens() && seg.seq > rcv_nxt {
        stats.time_wait_reused += 1;
        return Answer::Reopen;
    }
    if seg.has(RST) {
        stats.out_of_window += 1;
        return Answer::Drop;
    }
    if seg.has(FIN) && seg.seq.plus(seg.payload.len() + 1) == rcv_nxt {
        return Answer::FinAgain;
    }
    if seg.seq == rcv_nxt && seg.seq_len() == 0 && !(seg.has(ACK) && seg.ack > snd_nxt) {
        return Answer::Drop;
    }
    stats.out_of_window += 1;
    if acks.allow(seg, now, stats) {
        Answer::Acknowledge
    } else {
        Answer::Drop
    }
}
