//! Bounded waits on the platform clock: every wait for a device ends, with
//! [`DeviceError::Timeout`] when the device stays silent.

use rexo_api::DeviceError;
use rexo_devio::Platform;

/// Nanoseconds per millisecond.
const NS_PER_MS: u64 = 1_000_000;

/// Polls `ready` until it holds or `timeout_ms` pass; `what` names the awaited event
/// in the error.
pub fn until(
    platform: &dyn Platform,
    what: &'static str,
    timeout_ms: u64,
    mut ready: impl FnMut() -> bool,
) -> Result<(), DeviceError> {
    let start = platform.now_ns();
    loop {
        if ready() {
            return Ok(());
        }
        if platform.now_ns().saturating_sub(start) > timeout_ms * NS_PER_MS {
            // One last look: the core may have been away for the whole timeout.
            return if ready() {
                Ok(())
            } else {
                Err(DeviceError::Timeout {
                    what,
                    ms: timeout_ms,
                })
            };
        }
        core::hint::spin_loop();
    }
}

/// Spins for at least `ns` nanoseconds (the short settling delays the specs ask for).
pub fn pause(platform: &dyn Platform, ns: u64) {
    let start = platform.now_ns();
    while platform.now_ns().saturating_sub(start) < ns {
        core::hint::spin_loop();
    }
}
