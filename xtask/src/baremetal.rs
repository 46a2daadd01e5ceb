//! Builds the BareMetal-convention test programs (`apps/baremetal-tests/*.S`) into flat
//! binaries linked at 0xFFFF800000000000 with the host's GNU binutils, for the
//! `baremetal::` cases (which pass them to the kernel with `-initrd`).

use crate::Result;
use std::path::Path;
use std::process::Command;

use crate::testcases::Case;

/// Where BareMetal apps are linked.
pub const LINK_ADDRESS: &str = "0xffff800000000000";
/// The folder of the built programs, relative to the workspace root (the `baremetal::`
/// cases name files in it).
pub const OUT_DIR: &str = "target/baremetal";

/// Bytes of `too-large.bin`.
const TOO_LARGE_BYTES: u64 = 40 << 20;

/// The programs: output name, source, extra `as` arguments.
const PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("test.bin", "test.S", &[]),
    (
        "poweroff.bin",
        "exit.S",
        &["--defsym", "EXIT_FUNCTION=0x7F"],
    ),
    ("reboot.bin", "exit.S", &["--defsym", "EXIT_FUNCTION=0x7E"]),
    ("storage.bin", "storage.S", &[]),
    ("input.bin", "input.S", &[]),
];

/// Before QEMU cases run: if any case's name mentions `baremetal`, builds the programs
/// (and an empty module) into [`OUT_DIR`]. Either way makes the workspace root the current
/// directory, so that the cases' relative paths resolve.
pub fn prepare(root: &Path, cases: &[&Case]) -> Result<()> {
    std::env::set_current_dir(root)
        .map_err(|e| format!("cannot change to {}: {e}", root.display()))?;
    if cases.iter().any(|c| c.name.contains("baremetal")) {
        build(&root.join("apps/baremetal-tests"), &root.join(OUT_DIR))?;
    }
    Ok(())
}

/// Builds every program from the sources in `src` into `out`.
/// GNU `as`, `ld` and `objcopy` come from [`Need::CTools`](crate::deps::Need::CTools),
/// which also asks for `gcc` (the kernel's C apps need it on the same machine):
/// installed as root, else named in the error.
pub fn build(src: &Path, out: &Path) -> Result<()> {
    crate::deps::ensure(&[crate::deps::Need::CTools])?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    for (name, source, extra) in PROGRAMS {
        let object = out.join(name).with_extension("o");
        let elf = out.join(name).with_extension("elf");
        run(Command::new("as")
            .arg("--64")
            .args(*extra)
            .arg("-I")
            .arg(src)
            .arg("-o")
            .arg(&object)
            .arg(src.join(source)))?;
        run(Command::new("ld")
            .args(["-N", "--no-warn-rwx-segments", "-e", "_start"])
            .arg(format!("-Ttext={LINK_ADDRESS}"))
            .arg("-o")
            .arg(&elf)
            .arg(&object))?;
        run(Command::new("objcopy")
            .args(["-O", "binary"])
            .arg(&elf)
            .arg(out.join(name)))?;
    }
    let empty = out.join("empty.bin");
    std::fs::write(&empty, []).map_err(|e| format!("cannot write {}: {e}", empty.display()))?;
    // Zeros (a valid flat binary as far as headers go) larger than the app area of a
    // 96 MiB machine.
    let large = out.join("too-large.bin");
    std::fs::File::create(&large)
        .and_then(|file| file.set_len(TOO_LARGE_BYTES))
        .map_err(|e| format!("cannot write {}: {e}", large.display()))?;
    Ok(())
}

/// Runs a tool, turning a failure into an error that shows its command line and output.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_build_into_flat_binaries() {
        if crate::deps::find_program("as").is_none() {
            eprintln!("no GNU as on this host: skipped");
            return;
        }
        let out = std::env::temp_dir().join(format!("rexo-baremetal-{}", std::process::id()));
        build(&crate::root().join("apps/baremetal-tests"), &out).expect("the test programs build");
        for (name, _, _) in PROGRAMS {
            let bytes = std::fs::read(out.join(name)).expect("built");
            assert!(!bytes.is_empty(), "{name} is empty");
            assert!(!bytes.starts_with(b"\x7fELF"), "{name} is not flat");
        }
        assert_eq!(
            std::fs::read(out.join("empty.bin")).expect("written").len(),
            0
        );
        std::fs::remove_dir_all(&out).expect("clean up");
    }
}
