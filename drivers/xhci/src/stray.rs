//! Stray events: events the controller wrote that no wait and no keyboard takes (an
//! event for a TRB or command nobody waits on, a slot without a device, an endpoint the
//! driver does not use, a port the controller does not have). None of them is a fault
//! of the controller as a whole, so each is dropped and the wait or poll goes on; they
//! are logged so that a misbehaving controller or device is visible, but sparingly,
//! because such a controller may repeat them without end.

use core::fmt;

/// Why an event was dropped as stray.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stray {
    /// A Transfer Event for a slot without a device.
    UnknownSlot,
    /// A Transfer Event for an endpoint of a device that the driver does not use
    /// (neither endpoint 0 nor a keyboard's report endpoint).
    UnusedEndpoint,
    /// A Transfer Event of endpoint 0 for none of the waiting control transfer's TRBs,
    /// or with no control transfer waiting (a late event of one given up on).
    NotThisControlTransfer,
    /// A Transfer Event of a report endpoint for a TRB not on its ring.
    NotOnReportRing,
    /// A Transfer Event of a report endpoint for a TRB the controller does not hold (a
    /// repeat, or one never queued).
    ReportNotInFlight,
    /// A Command Completion Event for no command waited on (late, after its command
    /// timed out, or naming no command at all).
    NotThisCommand,
    /// A Port Status Change Event naming no root port of the controller.
    UnknownPort,
    /// An event of a type the driver neither asks for nor handles.
    UnhandledType,
}

impl Stray {
    /// Causes there are: [`Self::UnhandledType`]'s index plus one (it stays the last).
    const COUNT: usize = Self::UnhandledType as usize + 1;
}

impl fmt::Display for Stray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownSlot => "transfer event for a slot without a device",
            Self::UnusedEndpoint => "transfer event for an endpoint the driver does not use",
            Self::NotThisControlTransfer => {
                "endpoint 0 event for no TRB of a waiting control transfer"
            }
            Self::NotOnReportRing => "report event for a TRB not on the report ring",
            Self::ReportNotInFlight => "report event for a TRB the controller does not hold",
            Self::NotThisCommand => "command completion for no command waited on",
            Self::UnknownPort => "port status change for no root port",
            Self::UnhandledType => "event of a type the driver does not handle",
        })
    }
}

/// How many stray events of each cause a controller wrote, to log them with a
/// doubling back-off: the 1st, 2nd, 4th, 8th... of each cause.
#[derive(Debug, Default)]
pub struct StrayEvents {
    /// Events seen, per cause.
    seen: [u32; Stray::COUNT],
}

impl StrayEvents {
    /// Counts one event of `cause`; returns how many of that cause there were so far
    /// when this one is to be logged.
    pub fn count(&mut self, cause: Stray) -> Option<u32> {
        let seen = &mut self.seen[cause as usize];
        *seen = seen.saturating_add(1);
        seen.is_power_of_two().then_some(*seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_logged_at_its_first_second_fourth_and_eighth_event() {
        let mut strays = StrayEvents::default();
        let logged: Vec<u32> = (0..10)
            .filter_map(|_| strays.count(Stray::NotThisCommand))
            .collect();
        assert_eq!(logged, [1, 2, 4, 8]);
        assert_eq!(strays.count(Stray::UnknownSlot), Some(1), "counted apart");
        assert_eq!(
            strays.count(Stray::UnhandledType),
            Some(1),
            "the last cause"
        );
    }
}
