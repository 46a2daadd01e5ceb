//! What an ATA disk is told at power-off and reboot, whichever transport carries the
//! commands (the IDE task file here, AHCI's Register FIS in `rexo-ahci`): FLUSH CACHE
//! (EXT), then at a power-off STANDBY IMMEDIATE, what Linux sends an ATA disk (the cache
//! written out, then the drive stopped; at a reboot the cache flush alone, the disk left
//! spinning for the firmware's first read).

use rexo_api::{DeviceError, Leaving};

/// One command of the shutdown, without data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// FLUSH CACHE (EXT): the disk's write cache goes to the medium.
    Flush,
    /// STANDBY IMMEDIATE: the drive stops (a spinning disk parks its heads).
    Standby,
}

/// Tells an ATA disk the machine is `leaving`: `run` carries out one [`Step`] and waits
/// for its end. The flush, then at a power-off the standby; a flush that fails does not
/// keep the standby back (both are tried, the first error returned), unless
/// `unreachable` says its error means the drive cannot be given a command at all (IDE:
/// the other drive of the channel holds it), where the standby would only fail the same
/// way.
pub fn tell(
    leaving: Leaving,
    mut run: impl FnMut(Step) -> Result<(), DeviceError>,
    unreachable: impl Fn(&DeviceError) -> bool,
) -> Result<(), DeviceError> {
    let flushed = run(Step::Flush);
    match &flushed {
        Err(error) if unreachable(error) => flushed,
        _ if leaving == Leaving::Reboot => flushed,
        _ => flushed.and(run(Step::Standby)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const REFUSED: DeviceError = DeviceError::Status {
        what: "the command",
        status: 4,
    };
    const HELD: DeviceError = DeviceError::Timeout {
        what: "the channel",
        ms: 1,
    };

    /// The steps `tell` ran at a power-off when each step's outcome is `outcome`, and
    /// what it returned.
    fn told(
        outcome: impl Fn(Step) -> Result<(), DeviceError>,
    ) -> (Vec<Step>, Result<(), DeviceError>) {
        told_of(Leaving::PowerOff, outcome)
    }

    /// The steps `tell` ran for `leaving` when each step's outcome is `outcome`, and
    /// what it returned.
    fn told_of(
        leaving: Leaving,
        outcome: impl Fn(Step) -> Result<(), DeviceError>,
    ) -> (Vec<Step>, Result<(), DeviceError>) {
        let mut ran = Vec::new();
        let result = tell(
            leaving,
            |step| {
                ran.push(step);
                outcome(step)
            },
            |error| *error == HELD,
        );
        (ran, result)
    }

    #[test]
    fn the_disk_is_flushed_then_stopped() {
        assert_eq!(
            told(|_| Ok(())),
            ([Step::Flush, Step::Standby].into(), Ok(()))
        );
    }

    #[test]
    fn a_reboot_flushes_the_disk_and_leaves_it_spinning() {
        let reboot = |outcome| told_of(Leaving::Reboot, move |_| outcome);
        assert_eq!(reboot(Ok(())), ([Step::Flush].into(), Ok(())));
        assert_eq!(reboot(Err(REFUSED)), ([Step::Flush].into(), Err(REFUSED)));
    }

    #[test]
    fn a_failed_flush_still_stops_the_disk_and_is_the_error_returned() {
        let flush_refused = |step| {
            if step == Step::Flush {
                Err(REFUSED)
            } else {
                Ok(())
            }
        };
        assert_eq!(
            told(flush_refused),
            ([Step::Flush, Step::Standby].into(), Err(REFUSED))
        );
        let standby_refused = |step| {
            if step == Step::Standby {
                Err(REFUSED)
            } else {
                Ok(())
            }
        };
        assert_eq!(
            told(standby_refused),
            ([Step::Flush, Step::Standby].into(), Err(REFUSED))
        );
    }

    #[test]
    fn a_drive_that_cannot_be_reached_is_not_sent_the_standby() {
        assert_eq!(told(|_| Err(HELD)), ([Step::Flush].into(), Err(HELD)));
    }
}
