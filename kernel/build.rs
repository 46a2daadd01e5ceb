//! Links the kernel with its own linker script (physical 2 MiB, PVH note segment), and
//! compiles the C apps (`api/c/examples/*.c`, against `api/c/rexo.h`) with the host's
//! `gcc` into objects linked into the kernel ELF.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The C apps of the image: `api/c/examples/NAME.c`, each defining `int NAME_main(void)`
/// (with `-` in NAME as `_`). The kernel's app table lists them (`kernel/src/apps.rs`).
const C_APPS: &[&str] = &["c-hello", "c-cores", "c-devices", "c-timers"];

/// Freestanding C11 for the kernel's address space: no libc, static addresses as signed
/// 32 bits (`-mcmodel=kernel`, which reaches the low 2 GiB the kernel is linked in), no red
/// zone (interrupts share the stack), no SIMD or x87 state (the kernel does not save it),
/// no unwind tables. Frame pointers are kept so crash reports walk through C frames.
const CFLAGS: &[&str] = &[
    "-std=c11",
    "-ffreestanding",
    "-nostdlib",
    "-fno-pic",
    "-fno-pie",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-mno-sse",
    "-mno-mmx",
    "-mno-80387",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-omit-frame-pointer",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
];

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let c_dir = Path::new(&dir).join("../api/c");
    let header = c_dir.join("rexo.h");
    println!("cargo:rerun-if-changed={}", header.display());
    println!(
        "cargo:rerun-if-changed={}",
        c_dir.join("examples/check.h").display()
    );
    for app in C_APPS {
        let source = c_dir.join("examples").join(format!("{app}.c"));
        println!("cargo:rerun-if-changed={}", source.display());
        let object = out.join(format!("{app}.o"));
        compile(&source, &c_dir, &object);
        println!("cargo:rustc-link-arg-bins={}", object.display());
    }
}

/// Compiles one C app; stops the build with gcc's messages, or with the package to
/// install when there is no `gcc`.
fn compile(source: &Path, include: &Path, object: &Path) {
    let result = Command::new("gcc")
        .args(CFLAGS)
        .arg("-I")
        .arg(include)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(object)
        .status();
    match result {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "gcc could not compile the C app {} ({status}); its messages are above",
            source.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "the C apps (api/c/examples) need a C compiler: `gcc` was not found; \
             install the Debian package `gcc` (apt-get install gcc)"
        ),
        Err(error) => panic!("cannot run gcc for {}: {error}", source.display()),
    }
}
