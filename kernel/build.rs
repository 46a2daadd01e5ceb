//! Links the kernel with its own linker script (physical 2 MiB, PVH note segment). The C
//! apps linked into it are compiled by rexo-image's build script (`image/build.rs`).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
}
