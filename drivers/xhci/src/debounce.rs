//! The connect debounce (USB 2.0 7.1.7.3, TATTDB): after a connect is seen, a port is
//! reset only once the connection has been stable for [`DEBOUNCE_NS`]. The clock of each
//! port starts when the driver first sees its connection and starts again when the
//! connection is seen to change meanwhile; no one waits for it: the controller's polls
//! attach each port whose debounce is over.

use alloc::vec::Vec;

/// How long a connection must be stable before its port is reset (TATTDB, 100 ms).
pub const DEBOUNCE_NS: u64 = 100_000_000;

/// Root ports with a device connected and not attached yet, each with the clock reading
/// since which its connection has been stable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    /// (port, stable since), in the order the ports were seen.
    waiting: Vec<(u8, u64)>,
}

impl Connections {
    /// Port `port`'s connection was seen to begin (or to change) at `now`: its debounce
    /// starts there, over again when the port was waiting already.
    pub fn seen(&mut self, port: u8, now: u64) {
        match self
            .waiting
            .iter_mut()
            .find(|(waiting, _)| *waiting == port)
        {
            Some(entry) => entry.1 = now,
            None => self.waiting.push((port, now)),
        }
    }

    /// A port whose connection has been stable for [`DEBOUNCE_NS`] at `now`, taken off
    /// the list (the first seen when several are).
    pub fn take_due(&mut self, now: u64) -> Option<u8> {
        let due = self
            .waiting
            .iter()
            .position(|&(_, since)| now.saturating_sub(since) >= DEBOUNCE_NS)?;
        Some(self.waiting.remove(due).0)
    }

    /// Port `port`'s connection ended (nothing is connected to it any more): it waits
    /// no longer.
    pub fn forget(&mut self, port: u8) {
        self.waiting.retain(|&(waiting, _)| waiting != port);
    }

    /// Whether no port waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_due_once_its_connection_was_stable_for_the_debounce() {
        let mut connections = Connections::default();
        assert!(connections.is_empty());
        connections.seen(5, 1_000);
        connections.seen(6, 30_000_000);
        assert_eq!(connections.take_due(1_000 + DEBOUNCE_NS - 1), None);
        assert_eq!(connections.take_due(1_000 + DEBOUNCE_NS), Some(5));
        assert_eq!(connections.take_due(1_000 + DEBOUNCE_NS), None, "taken");
        // Port 6's connection changed at 80 ms: its debounce starts over.
        connections.seen(6, 80_000_000);
        assert_eq!(connections.take_due(30_000_000 + DEBOUNCE_NS), None);
        assert_eq!(connections.take_due(80_000_000 + DEBOUNCE_NS), Some(6));
        assert!(connections.is_empty());
        // Port 7's device was unplugged before its debounce was over.
        connections.seen(7, 0);
        connections.forget(7);
        assert!(connections.is_empty());
        assert_eq!(connections.take_due(DEBOUNCE_NS), None);
    }
}
