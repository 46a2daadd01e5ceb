//! `cargo xtask run`: build and boot in QEMU with the serial console on the terminal.

use crate::Result;
use crate::args::{Args, parse_size_mib};
use crate::deps::{self, Need};
use crate::netclient::Forwards;
use crate::qemu::{self, Accel, Machine, Media, Verdict, Vm};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::Command;

const FLAGS: &[&str] = &[
    "--cores",
    "--mem",
    "--boot",
    "--machine",
    "--accel",
    "--app",
    "--append",
    "--module",
    "--gdb",
    "--",
];

/// Apps that serve the network, and the guest ports (TCP, UDP) `run` forwards from the
/// same ports on the host's 127.0.0.1 through QEMU user networking and a virtio-net NIC.
const FORWARDS: &[(&str, &[u16], &[u16])] = &[("kv", &[11211], &[11211])];

/// How the kernel is booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Boot {
    Pvh,
    Bios,
    Uefi,
}

/// The parsed `run` options.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    cores: u32,
    mem_mib: u64,
    boot: Boot,
    machine: Machine,
    accel: Option<Accel>,
    app: String,
    append: String,
    modules: Vec<PathBuf>,
    gdb: bool,
    qemu_args: Vec<String>,
}

fn parse(words: Vec<String>) -> Result<Options> {
    let mut args = Args::new("run", FLAGS, words);
    let mut o = Options {
        cores: 2,
        mem_mib: 256,
        boot: Boot::Pvh,
        machine: Machine::Q35,
        accel: None,
        app: "monitor".into(),
        append: String::new(),
        modules: Vec::new(),
        gdb: false,
        qemu_args: Vec::new(),
    };
    while let Some(word) = args.next_word() {
        match word.as_str() {
            "--cores" => {
                o.cores = args.number("--cores")?;
                if o.cores == 0 {
                    return Err("`--cores 0`: a machine needs at least one core".into());
                }
            }
            "--mem" => o.mem_mib = parse_size_mib(&args.value("--mem")?)?,
            "--boot" => {
                o.boot = match args.choice("--boot", &["pvh", "bios", "uefi"])?.as_str() {
                    "pvh" => Boot::Pvh,
                    "bios" => Boot::Bios,
                    _ => Boot::Uefi,
                }
            }
            "--machine" => {
                let name = args.choice("--machine", Machine::NAMES)?;
                o.machine = Machine::parse(&name).ok_or("unreachable machine name")?;
            }
            "--accel" => {
                o.accel = match args.choice("--accel", &["auto", "kvm", "tcg"])?.as_str() {
                    "kvm" => Some(Accel::Kvm),
                    "tcg" => Some(Accel::Tcg),
                    _ => None,
                }
            }
            "--app" => o.app = args.value("--app")?,
            "--append" => o.append = args.value("--append")?,
            "--module" => o.modules.push(PathBuf::from(args.value("--module")?)),
            "--gdb" => o.gdb = true,
            "--" => o.qemu_args = args.rest(),
            _ => return Err(args.unknown(&word)),
        }
    }
    if o.boot == Boot::Pvh && o.modules.len() > 1 {
        return Err(format!(
            "QEMU's PVH boot passes one module, {} were given; use --boot bios (GRUB) for more",
            o.modules.len()
        ));
    }
    if o.boot != Boot::Pvh && o.machine == Machine::Microvm {
        return Err("microvm boots only PVH; use --machine q35 or pc with --boot bios/uefi".into());
    }
    Ok(o)
}

impl Options {
    /// The kernel command line: `app=NAME WORDS`.
    fn cmdline(&self) -> String {
        // A boot manifest (`apps=`) names the apps itself; `app=` cannot stand beside it.
        if self
            .append
            .split_whitespace()
            .any(|word| word.starts_with("apps="))
        {
            return self.append.trim().to_string();
        }
        format!("app={} {}", self.app, self.append)
            .trim()
            .to_string()
    }
}

impl Options {
    /// The host ports forwarded to the app's services, if it has any in [`FORWARDS`] and
    /// the QEMU arguments given do not bring their own network.
    fn forwards(&self) -> Option<Forwards> {
        let (_, tcp, udp) = FORWARDS.iter().find(|(app, _, _)| *app == self.app)?;
        let own_network = self
            .qemu_args
            .iter()
            .any(|arg| matches!(arg.as_str(), "-netdev" | "-nic" | "-net"));
        (!own_network).then(|| Forwards::same(tcp, udp))
    }
}

/// `cargo xtask run ...`; returns the process exit status.
pub fn command(words: Vec<String>) -> Result<u8> {
    let o = parse(words)?;
    let mut needs = vec![Need::Qemu];
    match o.boot {
        Boot::Pvh => {}
        Boot::Bios => needs.push(Need::Iso),
        Boot::Uefi => needs.extend([Need::Iso, Need::Ovmf]),
    }
    deps::ensure(&needs)?;
    let root = crate::root();
    let kernel = crate::build::kernel()?;
    let accel = match o.accel {
        Some(accel) => accel,
        None => {
            let (accel, why) = qemu::probe_accel(&root)?;
            eprintln!("xtask: {why}");
            accel
        }
    };
    let media = match o.boot {
        Boot::Pvh => Media::Pvh {
            kernel: kernel.clone(),
            append: o.cmdline(),
            initrd: o.modules.first().cloned(),
        },
        Boot::Bios | Boot::Uefi => {
            let iso = root.join("target/run.iso");
            crate::image::build_iso(&kernel, &o.cmdline(), &o.modules, &iso)?;
            let firmware = match o.boot {
                Boot::Uefi => Some(deps::ovmf()?),
                _ => None,
            };
            Media::Cdrom { iso, firmware }
        }
    };
    let mut extra = o.qemu_args.clone();
    if let Some(forwards) = o.forwards() {
        extra.extend(forwards.qemu_args(0, "virtio-net-pci"));
        for forward in &forwards.0 {
            eprintln!(
                "xtask: {}: 127.0.0.1:{} ({}) is forwarded to the guest's port {}",
                o.app,
                forward.host,
                if forward.udp { "UDP" } else { "TCP" },
                forward.guest
            );
        }
    }
    let vm = Vm {
        machine: o.machine,
        machine_props: Vec::new(),
        cores: o.cores,
        mem_mib: o.mem_mib,
        accel,
        media,
        extra,
    };
    let mut cmd = Command::new("qemu-system-x86_64");
    if std::env::var_os("DISPLAY").is_none() {
        cmd.args(["-display", "none"]);
    }
    let serial = if std::io::stdin().is_terminal() {
        "mon:stdio"
    } else {
        "stdio"
    };
    cmd.args(["-serial", serial]);
    if o.gdb {
        cmd.args(["-s", "-S"]);
        eprintln!(
            "xtask: QEMU waits for gdb; in another terminal:\n  gdb {} -ex 'target remote :1234'",
            kernel.display()
        );
    }
    cmd.args(vm.args(&root.join("target"))?);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start qemu-system-x86_64 ({e}); install qemu-system-x86"))?;
    let code = status.code().unwrap_or(-1);
    Ok(match qemu::verdict(code) {
        Verdict::Success => 0,
        Verdict::Failure => {
            eprintln!("xtask: the kernel reported a failure (QEMU exit status 35)");
            1
        }
        Verdict::Other(code) => {
            eprintln!("xtask: QEMU exited with status {code}");
            u8::try_from(code).unwrap_or(1)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let o = parse(vec![]).unwrap();
        assert_eq!(
            (o.cores, o.mem_mib, o.boot, o.machine),
            (2, 256, Boot::Pvh, Machine::Q35)
        );
        assert_eq!(o.accel, None);
        assert_eq!(o.cmdline(), "app=monitor");
        let manifest = parse(words(&["--append", "apps=hello:0-1:8M log=debug"])).unwrap();
        assert_eq!(
            manifest.cmdline(),
            "apps=hello:0-1:8M log=debug",
            "a manifest names its own apps"
        );
    }

    #[test]
    fn all_flags() {
        let o = parse(words(&[
            "--cores",
            "8",
            "--mem",
            "1G",
            "--boot",
            "bios",
            "--machine",
            "pc",
            "--accel",
            "tcg",
            "--app",
            "kv",
            "--append",
            "log=debug",
            "--module",
            "a",
            "--module",
            "b",
            "--gdb",
            "--",
            "-device",
            "e1000",
        ]))
        .unwrap();
        assert_eq!(
            (o.cores, o.mem_mib, o.boot, o.machine),
            (8, 1024, Boot::Bios, Machine::Pc)
        );
        assert_eq!(o.accel, Some(Accel::Tcg));
        assert_eq!(o.cmdline(), "app=kv log=debug");
        assert_eq!(o.modules.len(), 2);
        assert!(o.gdb);
        assert_eq!(o.qemu_args, words(&["-device", "e1000"]));
    }

    #[test]
    fn bad_flags_are_named() {
        let err = parse(words(&["--frob"])).unwrap_err();
        assert!(err.contains("--frob") && err.contains("--cores") && err.contains("--gdb"));
        assert!(
            parse(words(&["--boot", "floppy"]))
                .unwrap_err()
                .contains("pvh, bios, uefi")
        );
        assert!(parse(words(&["--cores", "0"])).is_err());
        assert!(parse(words(&["--mem", "lots"])).is_err());
        assert!(parse(words(&["--machine", "microvm", "--boot", "bios"])).is_err());
    }

    #[test]
    fn network_apps_get_their_ports() {
        let kv = parse(words(&["--app", "kv"])).unwrap();
        assert_eq!(
            kv.forwards().unwrap().qemu_args(0, "virtio-net-pci")[1],
            "user,id=user0,hostfwd=tcp:127.0.0.1:11211-:11211,hostfwd=udp:127.0.0.1:11211-:11211"
        );
        assert_eq!(
            parse(vec![]).unwrap().forwards(),
            None,
            "the monitor has none"
        );
        let own = parse(words(&["--app", "kv", "--", "-nic", "none"])).unwrap();
        assert_eq!(own.forwards(), None, "the user's network wins");
    }

    #[test]
    fn pvh_takes_one_module() {
        let err = parse(words(&["--module", "a", "--module", "b"])).unwrap_err();
        assert!(err.contains("--boot bios"));
        assert!(parse(words(&["--module", "a"])).is_ok());
    }
}
