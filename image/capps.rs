//! What `build.rs` does to each C app that its host test does too: the compile, with its
//! flags, and the one rule on the app's object, that it defines no global symbol but its
//! `NAME_main`. The object is linked into the kernel, where the kernel's `memset`,
//! `memcpy`, `memmove` and `memcmp` are weak definitions: a C app's own `memset` would
//! take their place for the whole kernel (every frame the kernel zeroes would go through
//! it), and another global could clash with another app's.
use std::path::{Path, PathBuf};
use std::process::Command;

/// Freestanding C11 for the kernel's address space: no libc, static addresses as signed
/// 32 bits (`-mcmodel=kernel`, which reaches the low 2 GiB the kernel is linked in), no red
/// zone (interrupts share the stack), no SIMD or x87 state (the kernel does not save it),
/// no unwind tables. Frame pointers are kept so crash reports walk through C frames. A
/// frame larger than a page probes each page as it grows (`-fstack-clash-protection`, as
/// rustc's stack probes do for Rust), so that one outgrowing the core's stack touches its
/// guard page, which ends the app alone, instead of reaching past it into the memory below.
pub const CFLAGS: &[&str] = &[
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
    "-fstack-clash-protection",
    "-fno-asynchronous-unwind-tables",
    "-fno-omit-frame-pointer",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
];

/// Compiles the C app `source` with [`CFLAGS`] and the `include` folder into `STEM.o` in
/// `dir`, whose path it returns. The error says that gcc failed (its messages, on the
/// build's standard error, come before it), or which package to install when there is no
/// `gcc`.
pub fn compile(source: &Path, include: &Path, dir: &Path) -> Result<PathBuf, String> {
    let stem = source.file_stem().expect("a .c file has a stem");
    let object = dir.join(stem).with_extension("o");
    let result = Command::new("gcc")
        .args(CFLAGS)
        .arg("-I")
        .arg(include)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(&object)
        .status();
    match result {
        Ok(status) if status.success() => Ok(object),
        Ok(status) => Err(format!(
            "gcc could not compile the C app {} ({status}); its messages are above",
            source.display()
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(
            "the C apps (api/c/examples) need a C compiler: `gcc` was not found; \
             install the Debian package `gcc` (apt-get install gcc)"
                .to_string(),
        ),
        Err(error) => Err(format!("cannot run gcc for {}: {error}", source.display())),
    }
}

/// `NAME_main`, the one function the C app `source` (`api/c/examples/NAME.c`) defines for
/// the kernel (`-` in NAME written `_`).
pub fn main_of(source: &Path) -> String {
    let stem = source.file_stem().expect("a .c file has a stem");
    format!("{}_main", stem.to_string_lossy().replace('-', "_"))
}

/// Refuses the object of the C app `source` if it defines a global symbol other than its
/// `NAME_main` ([`main_of`]), naming them and what to do; `nm` lists them.
pub fn check_exports(source: &Path, object: &Path) -> Result<(), String> {
    let listed = Command::new("nm")
        .args(["--defined-only", "--extern-only", "--format=posix"])
        .arg(object)
        .output()
        .map_err(|e| format!("cannot run nm (Debian package `binutils`): {e}"))?;
    if !listed.status.success() {
        return Err(format!(
            "nm could not list the symbols of {} ({}): {}",
            object.display(),
            listed.status,
            String::from_utf8_lossy(&listed.stderr)
        ));
    }
    let main = main_of(source);
    let text = String::from_utf8_lossy(&listed.stdout);
    let others: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|&symbol| symbol != main)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the C app {} defines the global symbol(s) `{}`: a C app is linked into the kernel, \
         where a global it defines takes the place of the kernel's own (a `memset` would be \
         the kernel's memset) or clashes with another app's; make everything but {main} \
         `static` (memcpy, memmove, memset and memcmp are the kernel's, there to call)",
        source.display(),
        others.join("`, `")
    ))
}
