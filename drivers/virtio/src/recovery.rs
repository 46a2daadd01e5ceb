//! Recovery of a stuck device, shared by virtio-blk and virtio-net: the device is reset
//! (status 0, awaited for up to the transport's reset timeout: it then no longer touches
//! its rings or buffers) and initialised again, legacy or modern alike, with the features
//! it had, each queue renewed at the same size with its MSI-X entry, then DRIVER_OK. A
//! device that does not come back, or that is judged stuck again after
//! [`RESETS_IN_A_ROW`] resets with nothing finished by it in between, is given up:
//! FAILED set, wake-ups disarmed, and every later call fails.

use rexo_api::DeviceError;
use rexo_devio::{Platform, QueueWakes};

use crate::transport::Transport;

/// The most resets in a row with nothing finished by the device in between: a device
/// judged stuck once more is given up instead of reset again (each reset may wait 1 s).
pub(crate) const RESETS_IN_A_ROW: u8 = 3;

/// What a device's recovery remembers between resets.
pub(crate) struct Recovery {
    /// The driver's name, for the log.
    name: &'static str,
    /// The device's registers (a copy of the driver's: the same windows).
    transport: Transport,
    /// The clock, for the reset's timeout.
    platform: &'static dyn Platform,
    /// The negotiated features, asked for again after a reset.
    features: u64,
    /// Resets since the device last finished something (at most [`RESETS_IN_A_ROW`]).
    resets_in_a_row: u8,
    /// Every call's answer once the device is given up.
    given_up_error: DeviceError,
    /// The device did not come back from a reset, or stayed stuck through resets.
    given_up: bool,
}

impl Recovery {
    /// The recovery of device `name` on `transport` running with `features`, which
    /// answers `given_up_error` once given up.
    pub(crate) fn new(
        name: &'static str,
        transport: &Transport,
        platform: &'static dyn Platform,
        features: u64,
        given_up_error: DeviceError,
    ) -> Self {
        Self {
            name,
            transport: transport.clone(),
            platform,
            features,
            resets_in_a_row: 0,
            given_up_error,
            given_up: false,
        }
    }

    /// The given-up error once the device is given up.
    pub(crate) fn usable(&self) -> Result<(), DeviceError> {
        match self.given_up {
            true => Err(self.given_up_error),
            false => Ok(()),
        }
    }

    /// The device finished something: the count of resets in a row starts again.
    pub(crate) fn device_finished(&mut self) {
        self.resets_in_a_row = 0;
    }
}

/// A virtio device its driver can reset and start again.
pub(crate) trait Restart {
    /// Its recovery state, and its queues' wake-ups (disarmed when it is given up).
    fn parts(&mut self) -> (&mut Recovery, &mut QueueWakes);
    /// Once the device is reset and its features negotiated again: renews every queue
    /// with its MSI-X entry ([`Transport::renew_queue`]), starts the device, and settles
    /// what was in flight.
    fn renew(&mut self) -> Result<(), DeviceError>;

    /// Resets the device, stuck because of `why`, and starts it again. A device that
    /// does not come back, or that was already reset [`RESETS_IN_A_ROW`] times with
    /// nothing finished by it since, is given up instead ([`give_up`](Self::give_up)).
    fn recover(&mut self, why: &'static str) -> Result<(), DeviceError> {
        let (recovery, _) = self.parts();
        let name = recovery.name;
        if recovery.resets_in_a_row >= RESETS_IN_A_ROW {
            log::error!(
                "{name}: {why}, after {RESETS_IN_A_ROW} resets in a row with nothing finished"
            );
            return Err(self.give_up());
        }
        recovery.resets_in_a_row += 1;
        let features = recovery.features;
        log::warn!("{name}: {why}: resetting it");
        let restarted = recovery
            .transport
            .negotiate(recovery.platform, features, features)
            .and_then(|_| self.renew());
        restarted.map_err(|error| {
            log::error!("{name}: the device did not come back from its reset: {error}");
            self.give_up()
        })
    }

    /// Gives the device up: FAILED set, wake-ups disarmed, and the given-up error
    /// returned, as by every later call. Its buffers are then never reused: the device
    /// may not have stopped.
    fn give_up(&mut self) -> DeviceError {
        let (recovery, wakes) = self.parts();
        recovery.transport.fail();
        wakes.disarm_all();
        recovery.given_up = true;
        recovery.given_up_error
    }
}
