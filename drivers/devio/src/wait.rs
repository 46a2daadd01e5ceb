//! Bounded waits on the platform clock: every wait for a device ends, with
//! [`DeviceError::Timeout`] when the device stays silent, and takes a device that
//! answered by the deadline even when the core was away past it ([`wait_for`] when
//! the wait yields a value); [`pause`], the settling delays the specs ask for; and
//! [`Stall`], how long a device has held work without finishing any.

use crate::Platform;
use rexo_api::DeviceError;

/// Nanoseconds per millisecond (the drivers' timeouts are in milliseconds, the platform
/// clock in nanoseconds).
pub const NS_PER_MS: u64 = 1_000_000;

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

/// How long a device has held work without finishing any (a transmit ring's frames):
/// counted from the first [`look`](Self::look) that found it so, never from before the
/// driver looked, and from the next look again after [`progress`](Self::progress).
#[derive(Debug, Default)]
pub struct Stall {
    /// When a look first found the device holding work and none finished since.
    since: Option<u64>,
}

impl Stall {
    /// How long, as of `now_ns`, the device has held work without finishing any: 0 at
    /// the first look since [`progress`](Self::progress), which starts the count.
    pub fn look(&mut self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(*self.since.get_or_insert(now_ns))
    }

    /// [`look`](Self::look) when the device holds work (`holding`), the time read from
    /// `now_ns` only then; when it holds none, `None`, and the count starts again at the
    /// next look (as after [`progress`](Self::progress)).
    pub fn look_holding(&mut self, holding: bool, now_ns: impl FnOnce() -> u64) -> Option<u64> {
        if !holding {
            self.progress();
            return None;
        }
        Some(self.look(now_ns()))
    }

    /// The device finished some work (or holds none): the count starts again at the
    /// next look.
    pub fn progress(&mut self) {
        self.since = None;
    }

    /// Counts from `now_ns` again: the device was held back (paused by its link
    /// partner, or without a link), not stuck.
    pub fn restart(&mut self, now_ns: u64) {
        self.since = Some(now_ns);
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

    #[test]
    fn a_stall_counts_from_the_first_look_and_again_after_progress() {
        let mut stall = Stall::default();
        assert_eq!(stall.look(1_000), 0, "the first look starts the count");
        assert_eq!(stall.look(3_000), 2_000);
        // Some finished: the count starts again at the next look.
        stall.progress();
        assert_eq!(stall.look(5_000), 0);
        assert_eq!(stall.look(6_000), 1_000);
        stall.restart(6_000);
        assert_eq!(stall.look(6_500), 500);
    }

    #[test]
    fn a_stall_looked_at_holding_nothing_reads_no_clock_and_starts_again() {
        let mut stall = Stall::default();
        assert_eq!(stall.look_holding(true, || 1_000), Some(0));
        assert_eq!(stall.look_holding(true, || 3_000), Some(2_000));
        let unread = || panic!("the clock read with nothing held");
        assert_eq!(stall.look_holding(false, unread), None);
        assert_eq!(
            stall.look_holding(true, || 5_000),
            Some(0),
            "counted again from the next look"
        );
        assert_eq!(stall.look_holding(true, || 6_000), Some(1_000));
    }
}
