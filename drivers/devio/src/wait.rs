//! Bounded waits on the platform clock: every wait for a device ends, with
//! [`DeviceError::Timeout`] when the device stays silent, and takes a device that
//! answered by the deadline even when the core was away past it ([`wait_for`] when
//! the wait yields a value); and [`pause`], the settling delays the specs ask for.

use crate::Platform;
use rexo_api::DeviceError;

/// Nanoseconds per millisecond.
const NS_PER_MS: u64 = 1_000_000;

/// Spins for at least `ns` nanoseconds (the short settling delays the specs ask for).
pub fn pause(platform: &dyn Platform, ns: u64) {
    let start = platform.now_ns();
    while platform.now_ns().saturating_sub(start) < ns {
        core::hint::spin_loop();
    }
}

/// Polls `condition` until it holds or `timeout_ms` pass ([`DeviceError::Timeout`]
/// naming `what`). See [`wait_until_or_fault`].
pub fn wait_until(
    platform: &dyn Platform,
    what: &'static str,
    timeout_ms: u64,
    mut condition: impl FnMut() -> bool,
) -> Result<(), DeviceError> {
    wait_until_or_fault(platform, what, timeout_ms, || Ok(condition()))
}

/// Polls `condition` until it holds, fails (its error, at once) or `timeout_ms` pass
/// ([`DeviceError::Timeout`] naming `what`). See [`wait_for`].
pub fn wait_until_or_fault(
    platform: &dyn Platform,
    what: &'static str,
    timeout_ms: u64,
    mut condition: impl FnMut() -> Result<bool, DeviceError>,
) -> Result<(), DeviceError> {
    wait_for(
        platform,
        what,
        timeout_ms,
        || Ok(condition()?.then_some(())),
    )
}

/// Polls `poll` until it yields a value (returned), fails (its error, at once) or
/// `timeout_ms` pass ([`DeviceError::Timeout`] naming `what`). The clock is read once
/// before the first look, then after each look that yielded nothing. `poll` is looked
/// at once more after the clock says the deadline passed: a core held up between its
/// last look and the clock reading (an interrupt, a preempted vCPU) may come back long
/// past the deadline, and a device that got there meanwhile must not count as one that
/// never did (a timeout may decide that memory is never given back).
pub fn wait_for<T>(
    platform: &dyn Platform,
    what: &'static str,
    timeout_ms: u64,
    mut poll: impl FnMut() -> Result<Option<T>, DeviceError>,
) -> Result<T, DeviceError> {
    let start = platform.now_ns();
    loop {
        if let Some(value) = poll()? {
            return Ok(value);
        }
        if platform.now_ns().saturating_sub(start) > timeout_ms * NS_PER_MS {
            // The last look, past the deadline.
            return poll()?.ok_or(DeviceError::Timeout {
                what,
                ms: timeout_ms,
            });
        }
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostPlatform;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// The timeout of the waits here.
    const TIMEOUT_MS: u64 = 10;

    #[test]
    fn a_condition_met_while_the_core_was_away_past_the_deadline_is_taken() {
        let platform = HostPlatform::leaked();
        let done = Arc::new(AtomicBool::new(false));
        let device = done.clone();
        let readings = AtomicU32::new(0);
        platform.on_clock_reading(move || {
            // At the second reading (the first after a look at the condition) the core
            // comes back from far away, and the device got there meanwhile.
            if readings.fetch_add(1, Ordering::Relaxed) == 1 {
                platform.advance_clock(2 * TIMEOUT_MS * NS_PER_MS);
                device.store(true, Ordering::Relaxed);
            }
        });
        let looks = AtomicU32::new(0);
        let waited = wait_until(platform, "the device", TIMEOUT_MS, || {
            looks.fetch_add(1, Ordering::Relaxed);
            done.load(Ordering::Relaxed)
        });
        assert_eq!(waited, Ok(()));
        assert_eq!(
            looks.into_inner(),
            2,
            "one look before the deadline, one past it"
        );
    }

    #[test]
    fn a_condition_never_met_times_out_and_a_fault_ends_the_wait_at_once() {
        let platform = HostPlatform::leaked();
        let timeout = DeviceError::Timeout {
            what: "the device",
            ms: TIMEOUT_MS,
        };
        assert_eq!(
            wait_until(platform, "the device", TIMEOUT_MS, || false),
            Err(timeout)
        );
        let gone = DeviceError::Failed("gone");
        let looks = AtomicU32::new(0);
        let waited = wait_until_or_fault(platform, "the device", TIMEOUT_MS, || {
            looks.fetch_add(1, Ordering::Relaxed);
            Err(gone)
        });
        assert_eq!(waited, Err(gone));
        assert_eq!(looks.into_inner(), 1);
    }
}
