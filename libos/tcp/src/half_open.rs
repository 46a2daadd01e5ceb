//! The half-open connections (SYN received, SYN-ACK unanswered): a bounded table kept
//! in the order their SYN-ACKs go again and in the order their SYNs came beside the
//! lookup by addresses and ports, with the set of those owed a SYN-ACK now, so that a
//! poll looks only at the entries due and a SYN to a full table finds the oldest at
//! once.

use crate::challenge::{ChallengeAcks, OutOfWindowAcks};
use crate::seq::Seq;
use crate::{Config, Stats, Tuple, backed_off};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::ops::RangeInclusive;

/// A connection whose SYN arrived and whose SYN-ACK is unanswered.
pub struct HalfOpen {
    /// Our initial sequence number.
    pub iss: Seq,
    /// The peer's initial sequence number.
    pub irs: Seq,
    /// The MSS the peer's SYN announced.
    pub peer_mss: Option<u16>,
    /// The window scale the peer's SYN offered (at most 14).
    pub peer_shift: Option<u8>,
    /// When its SYN arrived: the oldest is evicted from a full table.
    created: u64,
    /// When its SYN-ACK goes again (or it is dropped, its retries spent).
    resend_at: u64,
    /// Its SYN-ACK's retransmissions so far.
    pub retries: u32,
    /// The limit on its challenge ACKs.
    pub challenges: ChallengeAcks,
    /// The limit on its ACKs to out-of-window segments without data.
    pub out_of_window_acks: OutOfWindowAcks,
}

impl HalfOpen {
    /// The entry of a SYN that arrived at `now` with the peer's initial sequence number
    /// `irs`, MSS and window scale, answered from `iss`; its SYN-ACK goes again after
    /// `rto` unless answered.
    pub fn new(iss: Seq, irs: Seq, peer: (Option<u16>, Option<u8>), now: u64, rto: u64) -> Self {
        HalfOpen {
            iss,
            irs,
            peer_mss: peer.0,
            peer_shift: peer.1.map(|shift| shift.min(14)),
            created: now,
            resend_at: now.saturating_add(rto),
            retries: 0,
            challenges: ChallengeAcks::default(),
            out_of_window_acks: OutOfWindowAcks::default(),
        }
    }
}

/// The half-open table.
#[derive(Default)]
pub struct Table {
    entries: BTreeMap<Tuple, HalfOpen>,
    /// Every entry's SYN-ACK retransmission time and tuple, earliest first (ties by
    /// tuple).
    by_deadline: BTreeSet<(u64, Tuple)>,
    /// Every entry's SYN arrival time and tuple, oldest first (ties by tuple): the
    /// first is evicted from a full table.
    by_age: BTreeSet<(u64, Tuple)>,
    /// The entries owed a SYN-ACK at the next poll (a new SYN, the peer's SYN again, a
    /// retransmission due), in tuple order.
    owed: BTreeSet<Tuple>,
}

impl Table {
    /// How many connections are half-open.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `tuple` is half-open.
    pub fn contains(&self, tuple: &Tuple) -> bool {
        self.entries.contains_key(tuple)
    }

    /// Whether a half-open connection's tuple lies in `range`.
    pub fn any_in(&self, range: RangeInclusive<Tuple>) -> bool {
        self.entries.range(range).next().is_some()
    }

    /// The entry of `tuple`, if half-open.
    pub fn get_mut(&mut self, tuple: &Tuple) -> Option<&mut HalfOpen> {
        self.entries.get_mut(tuple)
    }

    /// Adds `entry` for `tuple`, which is not half-open (a SYN for a half-open tuple
    /// goes to its entry), owed its SYN-ACK, first evicting the oldest entry (the least
    /// tuple among those as old) if `limit` (at least 1) are held; returns whether one
    /// was evicted.
    pub fn insert(&mut self, tuple: Tuple, entry: HalfOpen, limit: usize) -> bool {
        debug_assert!(!self.contains(&tuple), "{tuple:?} is half-open already");
        let evicted = self.entries.len() >= limit.max(1) && self.evict_oldest();
        self.by_deadline.insert((entry.resend_at, tuple));
        self.by_age.insert((entry.created, tuple));
        self.owed.insert(tuple);
        self.entries.insert(tuple, entry);
        evicted
    }

    /// Drops the entry whose SYN came first (the least tuple among those as old), the
    /// first of the order by age; returns whether there was one.
    fn evict_oldest(&mut self) -> bool {
        let Some(&(_, oldest)) = self.by_age.first() else {
            return false;
        };
        #[cfg(test)]
        crate::tests::count_visited();
        self.remove(&oldest).is_some()
    }

    /// Drops `tuple`'s entry; returns it if there was one.
    pub fn remove(&mut self, tuple: &Tuple) -> Option<HalfOpen> {
        let entry = self.entries.remove(tuple)?;
        self.by_deadline.remove(&(entry.resend_at, *tuple));
        self.by_age.remove(&(entry.created, *tuple));
        self.owed.remove(tuple);
        Some(entry)
    }

    /// Owes `tuple`'s entry its SYN-ACK again (the peer's SYN came again).
    pub fn owe_syn_ack(&mut self, tuple: Tuple) {
        if self.entries.contains_key(&tuple) {
            self.owed.insert(tuple);
        }
    }

    /// The first entry owed a SYN-ACK, in tuple order.
    pub fn first_owed(&self) -> Option<(Tuple, &HalfOpen)> {
        let tuple = *self.owed.first()?;
        let entry = self.entries.get(&tuple)?;
        #[cfg(test)]
        crate::tests::count_visited();
        Some((tuple, entry))
    }

    /// Notes that `tuple`'s SYN-ACK went.
    pub fn syn_ack_sent(&mut self, tuple: &Tuple) {
        self.owed.remove(tuple);
    }

    /// When the first SYN-ACK goes again, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.by_deadline.first().map(|&(at, _)| at)
    }

    /// Runs the timers due at `now`: each entry due has its SYN-ACK sent again, or is
    /// dropped once [`Config::syn_retries`] went unanswered.
    pub fn run_timers(&mut self, now: u64, config: &Config, stats: &mut Stats) {
        let mut due = Vec::new();
        for &(at, tuple) in &self.by_deadline {
            #[cfg(test)]
            crate::tests::count_visited();
            if at > now {
                break;
            }
            due.push(tuple);
        }
        for tuple in due {
            self.time_out(tuple, now, config, stats);
        }
    }

    /// The timer of `tuple`'s entry, due at `now`: its SYN-ACK is owed again, the next
    /// retransmission backed off, or the entry is dropped once its retries are spent.
    pub fn time_out(&mut self, tuple: Tuple, now: u64, config: &Config, stats: &mut Stats) {
        let Some(entry) = self.entries.get_mut(&tuple) else {
            return;
        };
        if entry.retries >= config.syn_retries {
            stats.half_open_expired += 1;
            self.remove(&tuple);
            return;
        }
        entry.retries += 1;
        let wait = backed_off(config.rto_initial_ns, entry.retries, config.rto_max_ns);
        self.by_deadline.remove(&(entry.resend_at, tuple));
        entry.resend_at = now.saturating_add(wait);
        self.by_deadline.insert((entry.resend_at, tuple));
        self.owed.insert(tuple);
    }

    /// Every entry's deadline and tuple, found by a scan of the entries (in tuple
    /// order), for the tests that check the orders against it.
    #[cfg(test)]
    pub fn scan(&self) -> Vec<(u64, Tuple)> {
        let deadlines = self.entries.iter().map(|(t, entry)| (entry.resend_at, *t));
        deadlines.collect()
    }

    /// Whether the orders hold what a scan finds: every entry under its deadline and
    /// under its SYN's arrival time and nothing else, and every entry owed a SYN-ACK
    /// half-open.
    #[cfg(test)]
    pub fn orders_hold(&self) -> bool {
        let deadlines: BTreeSet<(u64, Tuple)> = self.scan().into_iter().collect();
        let ages = self.entries.iter().map(|(t, entry)| (entry.created, *t));
        self.by_deadline == deadlines
            && self.by_age == ages.collect()
            && self.owed.iter().all(|t| self.entries.contains_key(t))
    }
}
