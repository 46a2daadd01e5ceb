//! `hello`, the default app: every core of the app says hello through the work queue, and
//! the app reports how long the round trip over all its cores took and which cores (by
//! machine index) answered.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use rexo_api::{ApiError, Kernel};

/// The app's entry point.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    let cores = kernel.cores();
    let start = kernel.now_ns();
    // One bit per machine core that answered (Rexo runs at most 64 cores).
    let answered = Arc::new(AtomicU64::new(0));
    let seen = answered.clone();
    kernel.run_on_every_core(Arc::new(move |kernel, core| {
        let machine = kernel.core_index();
        seen.fetch_or(
            1u64.checked_shl(machine as u32).unwrap_or(0),
            Ordering::Relaxed,
        );
        kernel.log(format_args!(
            "hello from core {core} of {cores} (machine core {machine})"
        ))
    }))?;
    let micros = (kernel.now_ns() - start) / 1000;
    kernel.log(format_args!(
        "hello: all {cores} cores answered in {micros} us: cores {}",
        core_list(answered.load(Ordering::Relaxed))
    ));
    Ok(())
}

/// The set bits of `mask` as a list: `0,1,2`.
fn core_list(mask: u64) -> String {
    let mut list = String::new();
    for core in (0..64).filter(|core| mask & (1 << core) != 0) {
        let comma = if list.is_empty() { "" } else { "," };
        // Writing to a String cannot fail.
        let _ = write!(list, "{comma}{core}");
    }
    list
}

#[cfg(test)]
mod tests {
    #[test]
    fn core_list_names_the_set_bits() {
        assert_eq!(super::core_list(0), "");
        assert_eq!(super::core_list(0b1100), "2,3");
        assert_eq!(super::core_list(1 << 63 | 1), "0,63");
    }
}
