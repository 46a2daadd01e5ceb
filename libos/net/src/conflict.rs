//! IPv4 address conflict detection (RFC 5227): the stack announces an address it takes
//! and watches the link for another host claiming it. The pre-use probe (2.1) is not
//! done: it would hold every lease back 4 to 7 s (docs/network.md).

use core::net::Ipv4Addr;

/// How many announcements go out when the stack takes an address (RFC 5227
/// ANNOUNCE_NUM).
pub(crate) const ANNOUNCE_NUM: u32 = 2;
/// The time between them (RFC 5227 ANNOUNCE_INTERVAL, 2 s).
pub(crate) const ANNOUNCE_INTERVAL_NS: u64 = 2_000_000_000;
/// How long after a defence a second conflict gives the address up, and the least time
/// between two defences (RFC 5227 DEFEND_INTERVAL, 10 s).
pub(crate) const DEFEND_INTERVAL_NS: u64 = 10_000_000_000;

/// What the stack does about another host's ARP claiming its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep the address and announce it once (RFC 5227 2.4 (b) and (c)).
    Defend,
    /// Keep the address without a word: it was defended less than
    /// [`DEFEND_INTERVAL_NS`] ago and may not be given up (a fixed address, 2.4 (c)).
    Keep,
    /// Cease using the address: a second conflict within [`DEFEND_INTERVAL_NS`] of the
    /// defence (2.4 (b)).
    GiveUp,
}

/// The address a stack guards, with its announcements to send and its last defence.
#[derive(Default)]
pub(crate) struct AddressGuard {
    /// The address guarded, while the stack holds one.
    address: Option<Ipv4Addr>,
    /// Announcements still to send.
    announcements_left: u32,
    /// When the next announcement is due.
    next_announcement_ns: u64,
    /// When the address was last defended.
    last_defence_ns: Option<u64>,
}

impl AddressGuard {
    /// The stack holds `address` from `now_ns` (`None`: none). A new address is
    /// announced [`ANNOUNCE_NUM`] times, [`ANNOUNCE_INTERVAL_NS`] apart, the first at
    /// once; the address already guarded (a renewed lease) changes nothing.
    pub(crate) fn hold(&mut self, address: Option<Ipv4Addr>, now_ns: u64) {
        if address == self.address {
            return;
        }
        *self = Self {
            address,
            announcements_left: if address.is_some() { ANNOUNCE_NUM } else { 0 },
            next_announcement_ns: now_ns,
            last_defence_ns: None,
        };
    }

    /// The address to announce at `now_ns`, if an announcement is due; it is then
    /// counted as sent.
    pub(crate) fn announcement_due(&mut self, now_ns: u64) -> Option<Ipv4Addr> {
        let address = self.address?;
        if self.announcements_left == 0 || now_ns < self.next_announcement_ns {
            return None;
        }
        self.announcements_left -= 1;
        self.next_announcement_ns = now_ns.saturating_add(ANNOUNCE_INTERVAL_NS);
        Some(address)
    }

    /// Another host claimed the guarded address at `now_ns`: the first conflict, or one
    /// [`DEFEND_INTERVAL_NS`] or more after the last defence, is defended (an
    /// announcement is due at once); one sooner gives the address up if `may_give_up`
    /// (the guard then holds none), else it is kept unannounced.
    pub(crate) fn conflict(&mut self, now_ns: u64, may_give_up: bool) -> Verdict {
        let recent = self
            .last_defence_ns
            .is_some_and(|defended| now_ns.saturating_sub(defended) < DEFEND_INTERVAL_NS);
        match (recent, may_give_up) {
            (false, _) => {
                self.last_defence_ns = Some(now_ns);
                self.announcements_left = self.announcements_left.max(1);
                self.next_announcement_ns = now_ns;
                Verdict::Defend
            }
            (true, true) => {
                self.hold(None, now_ns);
                Verdict::GiveUp
            }
            (true, false) => Verdict::Keep,
        }
    }

    /// The address guarded, if any.
    pub(crate) fn address(&self) -> Option<Ipv4Addr> {
        self.address
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn an_address_taken_is_announced_twice_2_s_apart_and_a_renewal_not_again() {
        let mut guard = AddressGuard::default();
        assert_eq!(guard.announcement_due(0), None, "no address");
        guard.hold(Some(ADDRESS), 5 * SECOND);
        assert_eq!(guard.announcement_due(5 * SECOND), Some(ADDRESS));
        assert_eq!(guard.announcement_due(6 * SECOND), None);
        assert_eq!(guard.announcement_due(7 * SECOND), Some(ADDRESS));
        assert_eq!(guard.announcement_due(60 * SECOND), None, "two in all");
        guard.hold(Some(ADDRESS), 70 * SECOND);
        assert_eq!(guard.announcement_due(70 * SECOND), None, "a renewal");
        guard.hold(None, 80 * SECOND);
        assert_eq!(guard.address(), None);
        assert_eq!(guard.announcement_due(80 * SECOND), None);
    }

    #[test]
    fn a_conflict_is_defended_and_a_second_within_10_s_gives_the_address_up() {
        let mut guard = AddressGuard::default();
        guard.hold(Some(ADDRESS), 0);
        while guard.announcement_due(10 * SECOND).is_some() {}
        assert_eq!(guard.conflict(20 * SECOND, true), Verdict::Defend);
        assert_eq!(guard.announcement_due(20 * SECOND), Some(ADDRESS));
        assert_eq!(guard.announcement_due(30 * SECOND), None, "one defence");
        assert_eq!(
            guard.conflict(30 * SECOND, true),
            Verdict::Defend,
            "10 s on"
        );
        assert_eq!(guard.announcement_due(30 * SECOND), Some(ADDRESS));
        assert_eq!(guard.conflict(39 * SECOND, false), Verdict::Keep, "fixed");
        assert_eq!(guard.announcement_due(39 * SECOND), None);
        assert_eq!(guard.address(), Some(ADDRESS));
        assert_eq!(guard.conflict(39 * SECOND, true), Verdict::GiveUp);
        assert_eq!(guard.address(), None);
    }
}
