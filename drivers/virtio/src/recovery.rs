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

/// Why a device is reset: it set DEVICE_NEEDS_RESET (spec 2.1.2: it may stop processing
/// requests until it is reset).
pub(crate) const NEEDS_RESET: &str = "the device reported an error (DEVICE_NEEDS_RESET)";

/// What a device's recovery remembers between resets.
pub(crate) struct Recovery {
    /// The negotiated features, asked for again after a reset.
    features: u64,
    /// Resets since the device last finished something (at most [`RESETS_IN_A_ROW`]).
    resets_in_a_row: u8,
    /// Once the device did not come back from a reset, or stayed stuck through resets:
    /// every call's answer ([`Restart::GIVEN_UP`]).
    given_up: Option<DeviceError>,
}

impl Recovery {
    /// The recovery of a device running with `features`.
    pub(crate) fn new(features: u64) -> Self {
        Self {
            features,
            resets_in_a_row: 0,
            given_up: None,
        }
    }

    /// The given-up error once the device is given up.
    pub(crate) fn usable(&self) -> Result<(), DeviceError> {
        self.given_up.map_or(Ok(()), Err)
    }

    /// The device finished something: the count of resets in a row starts again.
    pub(crate) fn device_finished(&mut self) {
        self.resets_in_a_row = 0;
    }
}

/// What [`Restart::parts`] lends: a device's recovery state, its queues' wake-ups, its
/// registers and the clock.
pub(crate) type Parts<'a> = (
    &'a mut Recovery,
    &'a mut QueueWakes,
    &'a Transport,
    &'static dyn Platform,
);

/// A virtio device its driver can reset and start again.
pub(crate) trait Restart {
    /// The driver's name, for the log.
    const NAME: &'static str;
    /// Every call's answer once the device is given up.
    const GIVEN_UP: DeviceError;
    /// Its recovery state, its queues' wake-ups (disarmed when it is given up), its
    /// registers, and the clock (for the reset's timeout).
    fn parts(&mut self) -> Parts<'_>;
    /// Once the device is reset and its features negotiated again: renews every queue
    /// with its MSI-X entry ([`Transport::renew_queue`]), starts the device, and settles
    /// what was in flight.
    fn renew(&mut self) -> Result<(), DeviceError>;

    /// Resets the device, stuck because of `why`, and starts it again. A device that
    /// does not come back, or that was already reset [`RESETS_IN_A_ROW`] times with
    /// nothing finished by it since, is given up instead ([`give_up`](Self::give_up)).
    fn recover(&mut self, why: &'static str) -> Result<(), DeviceError> {
        let (recovery, _, transport, platform) = self.parts();
        let name = Self::NAME;
        if recovery.resets_in_a_row >= RESETS_IN_A_ROW {
            log::error!(
                "{name}: {why}, after {RESETS_IN_A_ROW} resets in a row with nothing finished"
            );
            return Err(self.give_up());
        }
        recovery.resets_in_a_row += 1;
        let features = recovery.features;
        log::warn!("{name}: {why}: resetting it");
        let restarted = transport
            .negotiate(platform, features, features)
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
        let (recovery, wakes, transport, _) = self.parts();
        transport.fail();
        wakes.disarm_all();
        recovery.given_up = Some(Self::GIVEN_UP);
        Self::GIVEN_UP
    }
}
