//! The kernel's side of the C ABI (`rexo-capi`, `api/c/rexo.h`): its registration, and the
//! C apps linked into the image (compiled by build.rs) as app-table entries.

#![allow(unsafe_code)] // calls into C

use core::ffi::c_int;

use rexo_api::{ApiError, Kernel};

unsafe extern "C" {
    /// `int c_hello_main(void)` in api/c/examples/c-hello.c.
    fn c_hello_main() -> c_int;
    /// `int c_cores_main(void)` in api/c/examples/c-cores.c.
    fn c_cores_main() -> c_int;
    /// `int c_devices_main(void)` in api/c/examples/c-devices.c.
    fn c_devices_main() -> c_int;
}

/// Registers the kernel with the C ABI: the app run each core acts for, and the memory map.
pub fn register() {
    rexo_capi::register(rexo_capi::Host {
        acting_for: |f| {
            let app = crate::apps::current();
            let own = || crate::apps::api_as(rexo_captable::OwnerId(0));
            let kernel = app.map_or_else(own, crate::apps::token);
            f(&kernel, app.map(|run| run.owner));
        },
        usable_ram: |start, end| {
            crate::mem::memory_map().is_some_and(|map| {
                let usable = |r: &&rexo_memmap::Region| r.kind == rexo_memmap::RegionKind::Usable;
                map.regions()
                    .iter()
                    .filter(usable)
                    .any(|r| r.start <= start && end <= r.end)
            })
        },
    });
}

/// The `c-hello` app: the C hello world (api/c/examples/c-hello.c).
pub fn c_hello(kernel: &Kernel) -> Result<(), ApiError> {
    // SAFETY: build.rs compiles c-hello.c, which defines `int c_hello_main(void)`, into
    // the image; it reaches the kernel only through the checked `rexo_*` functions.
    rexo_capi::run_app(kernel, "c-hello", || unsafe { c_hello_main() })
}

/// The `c-cores` app: every core, a memory capability and bad arguments, from C
/// (api/c/examples/c-cores.c).
pub fn c_cores(kernel: &Kernel) -> Result<(), ApiError> {
    // SAFETY: as for `c_hello`, for c-cores.c and `int c_cores_main(void)`.
    rexo_capi::run_app(kernel, "c-cores", || unsafe { c_cores_main() })
}

/// The `c-devices` app: devices and memory views from C (api/c/examples/c-devices.c).
pub fn c_devices(kernel: &Kernel) -> Result<(), ApiError> {
    // SAFETY: as for `c_hello`, for c-devices.c and `int c_devices_main(void)`.
    rexo_capi::run_app(kernel, "c-devices", || unsafe { c_devices_main() })
}

mod tests;
