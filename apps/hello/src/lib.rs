//! `hello`, the default app: every core says hello through the work queue, and the app
//! reports how long the round trip over all cores took.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::sync::Arc;
use rexo_api::{ApiError, Kernel};

/// The app's entry point.
pub fn main(kernel: &dyn Kernel) -> Result<(), ApiError> {
    let cores = kernel.cores();
    let start = kernel.now_ns();
    kernel.run_on_every_core(Arc::new(move |kernel, core| {
        kernel.log(format_args!("hello from core {core} of {cores}"))
    }))?;
    let micros = (kernel.now_ns() - start) / 1000;
    kernel.log(format_args!(
        "hello: all {cores} cores answered in {micros} us"
    ));
    Ok(())
}
