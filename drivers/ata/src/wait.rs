//! Settling delays on the platform clock (the bounded waits for a device are
//! [`rexo_devio::wait_until`]).

use rexo_devio::Platform;

/// Spins for at least `ns` nanoseconds (the short settling delays the specs ask for).
pub fn pause(platform: &dyn Platform, ns: u64) {
    let start = platform.now_ns();
    while platform.now_ns().saturating_sub(start) < ns {
        core::hint::spin_loop();
    }
}
