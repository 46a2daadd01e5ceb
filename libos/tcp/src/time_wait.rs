//! TIME-WAIT's answers to segments (RFC 9293, 3.10.7.4), shared by a connection the app
//! still holds and the compact entry a released one leaves, so that both behave alike;
//! and the compact table of those entries.

use crate::challenge::OutOfWindowAcks;
use crate::seq::Seq;
use crate::wire::{ACK, FIN, RST, Segment};
use crate::{Stats, Tuple};
use alloc::collections::{BTreeMap, BTreeSet};

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

/// What is left of a connection in TIME-WAIT: enough to acknowledge a retransmitted
/// FIN and to recognise a new SYN.
pub struct Entry {
    /// The next sequence number it would send.
    pub snd_nxt: Seq,
    /// The next sequence number it expects.
    pub rcv_nxt: Seq,
    /// The window field the connection offered as it left its slot (scaled as the
    /// connection scaled it), which the entry's ACKs offer again: a window of 0 would
    /// tell the peer to stop and probe.
    pub window: u16,
    /// The limit on its ACKs to out-of-window segments without data.
    pub out_of_window_acks: OutOfWindowAcks,
    /// When it expires.
    until: u64,
}

impl Entry {
    /// An entry of a connection whose next sequence numbers to send and to receive are
    /// `sequence`, offering `window`, its ACKs limited by `out_of_window_acks`, until
    /// `until`.
    pub fn new(
        sequence: (Seq, Seq),
        window: u16,
        out_of_window_acks: OutOfWindowAcks,
        until: u64,
    ) -> Entry {
        Entry {
            snd_nxt: sequence.0,
            rcv_nxt: sequence.1,
            window,
            out_of_window_acks,
            until,
        }
    }
}

/// The compact TIME-WAIT table, bounded, and kept in expiry order beside the lookup by
/// addresses and ports, so that expiry and eviction take from the front instead of
/// searching every entry.
#[derive(Default)]
pub struct Table {
    entries: BTreeMap<Tuple, Entry>,
    /// Every entry's expiry and tuple, earliest first (ties by tuple).
    by_expiry: BTreeSet<(u64, Tuple)>,
}

impl Table {
    /// How many connections are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `tuple` is remembered.
    pub fn contains(&self, tuple: &Tuple) -> bool {
        self.entries.contains_key(tuple)
    }

    /// The entry of `tuple`, if remembered.
    pub fn get_mut(&mut self, tuple: &Tuple) -> Option<&mut Entry> {
        self.entries.get_mut(tuple)
    }

    /// Remembers `entry` for `tuple`, first forgetting the entry that expires earliest
    /// (the least tuple among those that expire together) if `limit` (at least 1) are
    /// held; returns whether one was forgotten.
    pub fn insert(&mut self, tuple: Tuple, entry: Entry, limit: usize) -> bool {
        let evicted =
            self.entries.len() >= limit.max(1) && self.earliest().is_some() && self.pop_first();
        self.remove(&tuple);
        self.by_expiry.insert((entry.until, tuple));
        self.entries.insert(tuple, entry);
        evicted
    }

    /// Forgets `tuple`'s entry; returns it if there was one.
    pub fn remove(&mut self, tuple: &Tuple) -> Option<Entry> {
        let entry = self.entries.remove(tuple)?;
        self.by_expiry.remove(&(entry.until, *tuple));
        Some(entry)
    }

    /// Restarts `tuple`'s timer to end at `until` (its peer's FIN came again).
    pub fn restart(&mut self, tuple: &Tuple, until: u64) {
        if let Some(entry) = self.entries.get_mut(tuple) {
            self.by_expiry.remove(&(entry.until, *tuple));
            self.by_expiry.insert((until, *tuple));
            entry.until = until;
        }
    }

    /// When the earliest entry expires, if any.
    pub fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|&(until, _)| until)
    }

    /// Forgets every entry whose time is up at `now`.
    pub fn expire(&mut self, now: u64) {
        while self.earliest().is_some_and(|until| until <= now) {
            self.pop_first();
        }
    }

    /// When the entry that expires first expires, if any (an entry visited).
    fn earliest(&self) -> Option<u64> {
        #[cfg(test)]
        crate::tests::count_visited();
        self.next_expiry()
    }

    /// Forgets the entry that expires first; returns whether there was one.
    fn pop_first(&mut self) -> bool {
        let Some((_, tuple)) = self.by_expiry.pop_first() else {
            return false;
        };
        self.entries.remove(&tuple).is_some()
    }
}
