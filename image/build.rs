//! Compiles the C apps (every `api/c/examples/*.c`, against `api/c/rexo.h`) with the
//! host's `gcc` into a static library linked into the kernel, when building for the
//! kernel's target (`target_os = "none"`); host builds of this crate need no C compiler.
//! `c_apps!` in src/lib.rs lists which of them the kernel's app table runs. An app whose
//! object defines a global symbol other than its `NAME_main` stops the build (capps.rs).
use std::path::{Path, PathBuf};
use std::process::Command;

mod capps;
use capps::{check_exports, compile};

/// The static library's name (`librexo_c_apps.a` in `OUT_DIR`).
const LIBRARY: &str = "rexo_c_apps";

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let examples = Path::new(&dir).join("../api/c/examples");
    println!("cargo:rerun-if-changed={}", examples.display());
    println!("cargo:rerun-if-changed={}/../rexo.h", examples.display());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", examples.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    let mut objects = Vec::new();
    for source in &sources {
        let object = match compile(source, &examples.join(".."), &out) {
            Ok(object) => object,
            Err(failed) => panic!("{failed}"),
        };
        if let Err(refused) = check_exports(source, &object) {
            panic!("{refused}");
        }
        objects.push(object);
    }
    let archive = out.join(format!("lib{LIBRARY}.a"));
    let _ = std::fs::remove_file(&archive);
    let archived = Command::new("ar")
        .arg("crs")
        .arg(&archive)
        .args(&objects)
        .status();
    match archived {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("ar could not archive the C apps ({status}); its messages are above"),
        Err(error) => panic!("cannot run ar (Debian package `binutils`): {error}"),
    }
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static={LIBRARY}");
}
