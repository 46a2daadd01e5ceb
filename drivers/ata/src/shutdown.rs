//! What an ATA disk is told at power-off and reboot, whichever transport carries the
//! commands (the IDE task file here, AHCI's Register FIS in `rexo-ahci`): FLUSH CACHE
//! (EXT), then STANDBY IMMEDIATE, what Linux sends an ATA disk at power-off (the cache
//! written out, then the drive stopped).

use rexo_api::DeviceError;

/// One command of the shutdown, without data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// FLUSH CACHE (EXT): the disk's write cache goes to the medium.
    Flush,
    /// STANDBY IMMEDIATE: the drive stops (a spinning disk parks its heads).
    Standby,
}

/// Tells an ATA disk of the shutdown: `run` carries out one [`Step`] and waits for its
/// end. The flush, then the standby; a flush that fails does not keep the standby back
/// (both are tried, the first error returned), unless `unreachable` says its error
/// means the drive cannot be given a command at all (IDE: the other drive of the
/// channel holds it), where the standby would only fail the same way.
pub fn tell(
    mut run: impl FnMut(Step) -> Result<(), DeviceError>,
    unreachable: impl Fn(&DeviceError) -> bool,
) -> Result<(), DeviceError> {
    let flushed = run(Step::Flush);
    if let Err(error) = &flushed
        && unreachable(error)
    {
        return flushed;
    }
    flushed.and(run(Step::Standby))
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

    /// The steps `tell` ran when each step's outcome is `outcome`, and what it returned.
    fn told(
        outcome: impl Fn(Step) -> Result<(), DeviceError>,
    ) -> (Vec<Step>, Result<(), DeviceError>) {
        let mut ran = Vec::new();
        let result = tell(
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
