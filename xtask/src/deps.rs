//! The tools each command needs, and installing them (Debian) when running as root.

use crate::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A group of host tools a command needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `qemu-system-x86_64`.
    Qemu,
    /// GRUB with BIOS and UEFI modules (`grub-mkrescue`, `grub-mkimage`), `xorriso`, and
    /// mtools: the ISO and bootable disks.
    Iso,
    /// The OVMF UEFI firmware.
    Ovmf,
    /// The host C toolchain: `gcc` and `ar` for the C apps linked into the kernel (built
    /// and archived by `rexo-image`'s build script), GNU `as`, `ld` and `objcopy` for the
    /// BareMetal test programs (`objcopy` also strips the kernel ELF that boots).
    CTools,
    /// memcached's client tools from libmemcached (`memccapable`, the protocol
    /// conformance checker, and `memcaslap`, the load generator), for the `kv::` cases.
    MemcachedTools,
    /// `wrk`, the HTTP load generator of the benchmark suite.
    Wrk,
    /// Independent HTTP clients for the httpd cases: `curl`, and `python3` (its
    /// `http.client`).
    HttpClients,
    /// `ip` (iproute2): the network namespaces and tap devices of the tap cases and of the
    /// benchmark suite (xtask/src/tapnet.rs).
    IpRoute,
    /// `python3`: xtask's host test of the pymemcache script runs its expiry check.
    Python,
    /// Python's `pymemcache` from PyPI, in a virtual environment under `target/pyenv`
    /// ([`PYENV`]); needs Python's `venv` module.
    Pymemcache,
}

/// The virtual environment [`Need::Pymemcache`] makes, under the workspace root.
pub const PYENV: &str = "target/pyenv";
/// The pymemcache release installed there (pinned, so that every machine runs the same
/// client).
const PYMEMCACHE: &str = "pymemcache==4.0.0";

/// One thing that must exist on the host, and the Debian package that provides it.
struct Requirement {
    what: Probe,
    package: &'static str,
}

/// How to tell that a requirement is met.
enum Probe {
    /// A program on `PATH`.
    Program(&'static str),
    /// A directory that must exist.
    Dir(&'static str),
    /// An OVMF firmware image in one of Debian's folders.
    Ovmf,
    /// A module that `python3` can import.
    PythonModule(&'static str),
}

impl Probe {
    fn met(&self) -> bool {
        match self {
            Probe::Program(name) => find_program(name).is_some(),
            Probe::Dir(dir) => Path::new(dir).is_dir(),
            Probe::Ovmf => ovmf().is_ok(),
            Probe::PythonModule(module) => Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|out| out.status.success()),
        }
    }
}

fn requirements(need: Need) -> Vec<Requirement> {
    match need {
        Need::Qemu => vec![Requirement {
            what: Probe::Program("qemu-system-x86_64"),
            package: "qemu-system-x86",
        }],
        Need::Iso => vec![
            Requirement {
                what: Probe::Program("grub-mkrescue"),
                package: "grub-common",
            },
            Requirement {
                what: Probe::Dir("/usr/lib/grub/i386-pc"),
                package: "grub-pc-bin",
            },
            Requirement {
                what: Probe::Dir("/usr/lib/grub/x86_64-efi"),
                package: "grub-efi-amd64-bin",
            },
            Requirement {
                what: Probe::Program("xorriso"),
                package: "xorriso",
            },
            Requirement {
                what: Probe::Program("mformat"),
                package: "mtools",
            },
        ],
        Need::Ovmf => vec![Requirement {
            what: Probe::Ovmf,
            package: "ovmf",
        }],
        Need::CTools => vec![
            Requirement {
                what: Probe::Program("gcc"),
                package: "gcc",
            },
            Requirement {
                what: Probe::Program("as"),
                package: "binutils",
            },
            Requirement {
                what: Probe::Program("ld"),
                package: "binutils",
            },
            Requirement {
                what: Probe::Program("objcopy"),
                package: "binutils",
            },
            Requirement {
                what: Probe::Program("ar"),
                package: "binutils",
            },
            Requirement {
                what: Probe::Program("nm"),
                package: "binutils",
            },
        ],
        Need::MemcachedTools => vec![
            Requirement {
                what: Probe::Program("memccapable"),
                package: "libmemcached-tools",
            },
            Requirement {
                what: Probe::Program("memcaslap"),
                package: "libmemcached-tools",
            },
        ],
        Need::Wrk => vec![Requirement {
            what: Probe::Program("wrk"),
            package: "wrk",
        }],
        Need::HttpClients => vec![
            Requirement {
                what: Probe::Program("curl"),
                package: "curl",
            },
            Requirement {
                what: Probe::Program("python3"),
                package: "python3",
            },
        ],
        Need::IpRoute => vec![Requirement {
            what: Probe::Program("ip"),
            package: "iproute2",
        }],
        Need::Python => vec![Requirement {
            what: Probe::Program("python3"),
            package: "python3",
        }],
        Need::Pymemcache => vec![Requirement {
            what: Probe::PythonModule("ensurepip"),
            package: "python3-venv",
        }],
    }
}

/// The path of `name` on `PATH`, if it is there.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether this process runs as root (read from /proc/self/status).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Makes sure the kernel's Rust target and the tools in `needs` are installed,
/// installing missing Debian packages when running as root.
pub fn ensure(needs: &[Need]) -> Result<()> {
    ensure_rust_target()?;
    let mut missing: Vec<&'static str> = Vec::new();
    for need in needs {
        for req in requirements(*need) {
            if !req.what.met() && !missing.contains(&req.package) {
                missing.push(req.package);
            }
        }
    }
    if !missing.is_empty() {
        install(needs, &missing)?;
    }
    if needs.contains(&Need::Pymemcache) {
        ensure_pymemcache()?;
    }
    Ok(())
}

/// The Python of [`PYENV`], which imports `pymemcache`.
pub fn pymemcache_python() -> PathBuf {
    crate::root().join(PYENV).join("bin/python")
}

/// Makes [`PYENV`] with pymemcache unless it is there.
fn ensure_pymemcache() -> Result<()> {
    let python = pymemcache_python();
    let imports = |python: &Path| {
        Command::new(python)
            .args(["-c", "import pymemcache"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if imports(&python) {
        return Ok(());
    }
    let env = crate::root().join(PYENV);
    eprintln!("xtask: installing {PYMEMCACHE} into {}", env.display());
    let run = |cmd: &mut Command| -> Result<()> {
        let shown = format!("{cmd:?}");
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{shown} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&env))?;
    run(Command::new(env.join("bin/pip")).args(["install", "--quiet", PYMEMCACHE]))?;
    if imports(&python) {
        Ok(())
    } else {
        Err(format!(
            "{PYMEMCACHE} was installed into {} but does not import",
            env.display()
        ))
    }
}

/// Installs the Debian packages `missing` (for `needs`) with apt-get, as root.
fn install(needs: &[Need], missing: &[&'static str]) -> Result<()> {
    let list = missing.join(" ");
    if !is_root() {
        return Err(format!(
            "missing host packages: {list}\n  install them with: sudo apt-get install -y {list}"
        ));
    }
    eprintln!("xtask: installing {list}");
    let status = |cmd: &mut Command| -> Result<()> {
        let shown = format!("{cmd:?}");
        let status = cmd
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{shown} failed ({status})"))
        }
    };
    status(Command::new("apt-get").arg("update"))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y"])
            .args(missing),
    )?;
    for need in needs {
        for req in requirements(*need) {
            if !req.what.met() {
                return Err(format!(
                    "package {} is installed but its files are still missing",
                    req.package
                ));
            }
        }
    }
    Ok(())
}

/// Adds the `x86_64-unknown-none` target with rustup unless it is installed.
fn ensure_rust_target() -> Result<()> {
    const TARGET: &str = "x86_64-unknown-none";
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(crate::root())
        .output()
        .map_err(|e| format!("cannot run `rustup` ({e}); install it from https://rustup.rs"))?;
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|line| line.trim() == TARGET) {
        return Ok(());
    }
    eprintln!("xtask: rustup target add {TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .current_dir(crate::root())
        .status()
        .map_err(|e| format!("cannot run `rustup target add {TARGET}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`rustup target add {TARGET}` failed ({status})"))
    }
}

/// UEFI firmware for QEMU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// One combined image, passed with `-bios`.
    Combined(PathBuf),
    /// Code and a variable-store template, passed as two pflash drives.
    Split {
        /// The read-only code image.
        code: PathBuf,
        /// The variable store to copy (QEMU writes to it).
        vars: PathBuf,
    },
}

/// Finds Debian's OVMF (package `ovmf`) under /usr/share/ovmf or /usr/share/OVMF.
pub fn ovmf() -> Result<Firmware> {
    let dirs = ["/usr/share/ovmf", "/usr/share/OVMF"];
    for dir in dirs {
        let combined = Path::new(dir).join("OVMF.fd");
        if combined.is_file() {
            return Ok(Firmware::Combined(combined));
        }
    }
    for dir in dirs {
        for (code, vars) in [
            ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
            ("OVMF_CODE.fd", "OVMF_VARS.fd"),
        ] {
            let (code, vars) = (Path::new(dir).join(code), Path::new(dir).join(vars));
            if code.is_file() && vars.is_file() {
                return Ok(Firmware::Split { code, vars });
            }
        }
    }
    Err("no OVMF firmware under /usr/share/ovmf or /usr/share/OVMF (package ovmf)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-rexo").is_none());
    }

    /// Every program `rexo-image`'s build script runs (`ar` to archive the C apps; and
    /// from capps.rs, which it includes, `gcc` and `nm` for the apps' symbols) is one
    /// [`Need::CTools`] checks for: a host without `ar` failed in the build script
    /// instead of being told to install binutils.
    #[test]
    fn the_c_tools_are_every_program_the_image_build_runs() {
        let read = |file: &str| std::fs::read_to_string(crate::root().join(file)).unwrap();
        let script = read("image/build.rs") + &read("image/capps.rs");
        let probed: Vec<&str> = requirements(Need::CTools)
            .iter()
            .filter_map(|r| match r.what {
                Probe::Program(program) => Some(program),
                _ => None,
            })
            .collect();
        let run: Vec<&str> = script
            .split("Command::new(\"")
            .skip(1)
            .filter_map(|rest| rest.split_once('"').map(|(program, _)| program))
            .collect();
        assert!(run.len() >= 2, "{run:?}");
        for program in run {
            assert!(probed.contains(&program), "{program} is not probed");
        }
    }

    #[test]
    fn every_need_names_a_package() {
        for need in [
            Need::Qemu,
            Need::Iso,
            Need::Ovmf,
            Need::CTools,
            Need::MemcachedTools,
            Need::Wrk,
            Need::HttpClients,
            Need::IpRoute,
            Need::Python,
            Need::Pymemcache,
        ] {
            assert!(requirements(need).iter().all(|r| !r.package.is_empty()));
        }
    }
}
