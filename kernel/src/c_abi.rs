//! The kernel's side of the C ABI (`rexo-capi`, `api/c/rexo.h`): its registration, and the
//! C apps linked into the image (`rexo_image::c_apps!`) as app-table entries.

#![allow(unsafe_code)] // calls into C, and copies for a C buffer rexo-capi checked

use core::ffi::c_int;

use crate::apps::App;

/// Declares the C apps' `NAME_main` functions and lists each as an app-table entry
/// ([`APPS`]) that runs it through `rexo_capi::run_app`; `rexo_image::c_apps!` lists them.
macro_rules! c_app_entries {
    ($($name:literal, $main:ident, $about:literal;)*) => {
        unsafe extern "C" {
            $(
                /// `int NAME_main(void)` of the C app, compiled by rexo-image's build.rs.
                fn $main() -> c_int;
            )*
        }

        /// The C apps linked into the image (api/c/examples/NAME.c), as app-table entries.
        pub const APPS: &[App] = &[$(App::new($name, $about, |kernel| {
            // SAFETY: rexo-image's build.rs compiles the C app, which defines
            // `int NAME_main(void)`, into the image; it reaches the kernel only through
            // the checked `rexo_*` functions.
            rexo_capi::run_app(kernel, $name, || unsafe { $main() })
        })),*];
    };
}

rexo_image::c_apps!(c_app_entries);

/// Registers the kernel with the C ABI: the app run each core acts for, and the memory map.
pub fn register() {
    rexo_capi::register(rexo_capi::Host {
        acting_for: |f| {
            let app = crate::apps::current();
            let own = || crate::apps::api_as(rexo_captable::OwnerId(0));
            let kernel = app.map_or_else(own, crate::apps::token);
            f(&kernel, app.map(|run| run.owner));
        },
        // Usable RAM, none of it taken by force from its holder (a C view past its
        // deadline: the call would fault with a lock held instead of ending the app), and
        // every page of it mapped (a stack's guard page is RAM too: the kernel would fault).
        usable_ram: |start, end| {
            let usable = |r: &rexo_memmap::Region| r.kind == rexo_memmap::RegionKind::Usable;
            let inside = |r: &rexo_memmap::Region| r.start <= start && end <= r.end;
            let ram = crate::mem::memory_map()
                .is_some_and(|map| map.regions().iter().any(|r| usable(r) && inside(r)));
            let taken = || crate::caps::touches_revoked(start, end - start);
            ram && !taken() && crate::arch::paging::is_present(start..end)
        },
        copy_memory: |kernel, cap, offset, buf, write| {
            let owner = kernel.run().owner;
            // SAFETY: rexo-capi checked `buf` (usable RAM, every page mapped) and holds no
            // reference to it; `caps::copy` refuses it if taken by force since.
            let copied = unsafe { crate::caps::copy((owner, cap.cap(), offset), buf, write) };
            copied.map_err(|error| crate::apps::refusal_of(owner, &[cap.cap().id()], error))
        },
        core_index: crate::arch::percpu::core_index,
        kernel_section: |f| crate::arch::abort::kernel_section(f),
    });
}

mod tests;
