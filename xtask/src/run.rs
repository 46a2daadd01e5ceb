//! `cargo xtask run`: build and boot in QEMU with the serial console on the terminal.

use crate::Result;
use crate::args::{Args, parse_size_mib};
use crate::deps::{self, Need};
use crate::netclient::{Forward, Forwards};
use crate::qemu::{self, Accel, Machine, Media, Verdict, Vm};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
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

/// kv's ports (TCP and UDP 11211), forwarded from the same on the host.
const KV_PORTS: &[Forward] = &[
    Forward {
        udp: false,
        host: 11211,
        guest: 11211,
    },
    Forward {
        udp: true,
        host: 11211,
        guest: 11211,
    },
];

/// httpd's port 80, forwarded from [`HTTP_HOST_PORT`].
const HTTPD_PORTS: &[Forward] = &[Forward {
    udp: false,
    host: HTTP_HOST_PORT,
    guest: 80,
}];

/// Apps that serve the network, and the ports `run` forwards to them from the host's
/// 127.0.0.1 through QEMU user networking and a virtio-net NIC: every variant of httpd
/// and kv in the image (the others get none, and `run` says so).
const FORWARDS: &[(&str, &[Forward])] = &[
    ("kv", KV_PORTS),
    ("kv-small", KV_PORTS),
    ("httpd", HTTPD_PORTS),
    ("httpd-test", HTTPD_PORTS),
    ("httpd-smoltcp", HTTPD_PORTS),
    ("httpd-test-smoltcp", HTTPD_PORTS),
];

/// What `run` says when the apps chosen get no forwarded port: which apps do.
fn no_forwards_note() -> String {
    let served: Vec<&str> = FORWARDS.iter().map(|(app, _)| *app).collect();
    format!(
        "xtask: no host port is forwarded to these apps; run forwards ports to {} \
         (docs/testing.md)",
        served.join(", ")
    )
}

/// Why `run` gives a `microvm` no network: QEMU gives that machine a PCI bus only with
/// `pcie=on`, whose configuration space ACPI describes in the DSDT alone (no MCFG table,
/// which is where the kernel finds it), and the virtio drivers use the PCI transport only.
const MICROVM_HAS_NO_NIC: &str = "microvm has no PCI bus for the virtio-net NIC \
     (QEMU adds one only with pcie=on, and without an MCFG table Rexo would not find it)";

/// The least `--mem` `run` gives a machine, in MiB: the usable RAM the kernel checks for at
/// boot (`rexo_memmap::MIN_USABLE_MIB`) plus the first MiB, which the firmware keeps much
/// of (the hole from 640 KiB, its own data): a q35 of 8 MiB reports 7,675 KiB usable. The
/// kernel image, loaded at 2 MiB and ending near 5 MiB, lies inside it; a machine below
/// it never boots (QEMU cannot place the image under 6 MiB and exits 0 at once, and 1 MiB
/// hangs).
pub const MIN_MEM_MIB: u64 = rexo_memmap::MIN_USABLE_MIB + 1;

/// The host port on 127.0.0.1 that reaches httpd's port 80 (the default run's status page
/// is `http://127.0.0.1:8080/`).
pub const HTTP_HOST_PORT: u16 = 8080;

/// The kernel command line of the default run on two cores ([`default_cmdline`]); the
/// test case `monitor::default-run` boots it.
pub const DEFAULT_CMDLINE_TWO_CORES: &str =
    "apps=monitor:0:64M,httpd:1:64M ip=10.0.2.15/24,10.0.2.2,10.0.2.3";

/// The default run without `--app`: a boot manifest with the monitor on core 0 and httpd,
/// the default network app, on the other cores the kernel runs (at most
/// [`rexo_cmdline::MAX_CORES`]: it starts no vCPU past those, with a warning, and
/// refuses a manifest naming them), sharing one interface by packet filters at QEMU user
/// networking's guest address (its router 10.0.2.2, its DNS 10.0.2.3): httpd binds `tcp
/// dport 80`, the monitor's `ping` and `resolve` bind theirs while they run. `None` with
/// one core: httpd needs a core of its own.
fn default_cmdline(cores: u32) -> Option<String> {
    let running = (cores as usize).min(rexo_cmdline::MAX_CORES);
    let httpd_cores = match running {
        0 | 1 => return None,
        2 => String::from("1"),
        n => format!("1-{}", n - 1),
    };
    Some(format!(
        "apps=monitor:0:64M,httpd:{httpd_cores}:64M ip=10.0.2.15/24,10.0.2.2,10.0.2.3"
    ))
}

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
    /// The app `--app` names; `None`: the default run ([`default_cmdline`]).
    app: Option<String>,
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
        app: None,
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
            "--mem" => {
                let text = args.value("--mem")?;
                o.mem_mib = parse_size_mib(&text)?;
                if o.mem_mib < MIN_MEM_MIB {
                    return Err(format!(
                        "`--mem {text}`: Rexo boots with {MIN_MEM_MIB} MiB at least (it needs \
                         {} MiB of usable RAM, and the firmware keeps part of the first MiB)",
                        rexo_memmap::MIN_USABLE_MIB
                    ));
                }
            }
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
            "--app" => o.app = Some(args.value("--app")?),
            "--append" => o.append = args.value("--append")?,
            "--module" => o.modules.push(PathBuf::from(args.value("--module")?)),
            "--gdb" => o.gdb = true,
            "--" => o.qemu_args = args.rest(),
            _ => return Err(args.unknown(&word)),
        }
    }
    if let (Some(app), Some(chosen)) = (&o.app, o.apps_word()) {
        return Err(format!(
            "`--app {app}` and `--append \"{chosen}\"` both choose the apps; give one: \
             `--app` for one app, or `app=` or a boot manifest `apps=` in `--append`"
        ));
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
    if let (Machine::Microvm, Some((app, _))) = (o.machine, o.forwards()) {
        return Err(format!(
            "`--machine microvm` cannot run {app}, which serves the network: \
             {MICROVM_HAS_NO_NIC}; use --machine q35 or pc"
        ));
    }
    Ok(o)
}

impl Options {
    /// The word of `--append` that chooses the apps (`app=NAME` or a boot manifest
    /// `apps=...`), if it has one.
    fn apps_word(&self) -> Option<&str> {
        crate::image::apps_word(&self.append)
    }

    /// Whether the QEMU arguments given bring their own network.
    fn own_network(&self) -> bool {
        self.qemu_args
            .iter()
            .any(|arg| matches!(arg.as_str(), "-netdev" | "-nic" | "-net"))
    }

    /// The default run's manifest ([`default_cmdline`]), when no app was chosen (neither
    /// `--app` nor `app=`/`apps=` in `--append`), the machine has a core for httpd and
    /// `run` makes the network (not on microvm: [`MICROVM_HAS_NO_NIC`]); otherwise why the monitor runs alone (`Err`), or `Ok(None)`
    /// when an app was chosen.
    fn default_run(&self) -> std::result::Result<Option<String>, &'static str> {
        if self.app.is_some() || self.apps_word().is_some() {
            return Ok(None);
        }
        if self.own_network() {
            return Err("the QEMU arguments bring their own network");
        }
        if self.machine == Machine::Microvm {
            return Err(MICROVM_HAS_NO_NIC);
        }
        let Some(mut cmdline) = default_cmdline(self.cores) else {
            return Err("httpd needs a second core (--cores 2)");
        };
        // An address the user gave wins over user networking's.
        if self.append.split_whitespace().any(|w| w.starts_with("ip=")) {
            cmdline.truncate(cmdline.find(" ip=").unwrap_or(cmdline.len()));
        }
        Ok(Some(cmdline))
    }

    /// The kernel command line: the default run's manifest, or `app=NAME`, then the words
    /// of `--append`.
    fn cmdline(&self) -> String {
        let first = match (self.default_run(), &self.app) {
            (Ok(Some(manifest)), _) => manifest,
            // A boot manifest or `app=` in `--append` names the apps itself (`parse`
            // refuses `--app` beside either).
            (Ok(None), None) => String::new(),
            (_, app) => format!("app={}", app.as_deref().unwrap_or("monitor")),
        };
        format!("{first} {}", self.append).trim().to_string()
    }

    /// The apps chosen by `--app` or by `app=NAME` or a boot manifest `apps=NAME:...,...`
    /// in `--append`, in their order.
    fn chosen_apps(&self) -> Vec<&str> {
        if let Some(app) = &self.app {
            return vec![app];
        }
        crate::image::chosen_apps(&self.append)
    }

    /// The app whose ports are forwarded (the default run's httpd, else the first chosen
    /// app with ports in [`FORWARDS`]) and the host ports forwarded to them, unless the
    /// QEMU arguments given bring their own network.
    fn forwards(&self) -> Option<(&'static str, Forwards)> {
        let serving = match self.default_run() {
            Ok(Some(_)) => vec!["httpd"],
            _ => self.chosen_apps(),
        };
        let (app, forwards) = serving
            .iter()
            .find_map(|name| FORWARDS.iter().find(|(app, _)| app == name))?;
        (!self.own_network()).then(|| (*app, Forwards(forwards.to_vec())))
    }
}

/// The TCP port of QEMU's gdbstub for `--gdb` (`-s`'s).
const GDB_PORT: u16 = 1234;

/// QEMU's arguments for `--gdb` (its gdbstub on `port`, the CPUs halted until gdb
/// continues) and the line telling the user how to attach with `elf`'s symbols; an error
/// when `port` is in use. QEMU listens on every address and, with the port taken, failed
/// ("Failed to find an available port") after `run` had said it waited for gdb.
fn gdb_stub(port: u16, elf: &Path) -> Result<(Vec<String>, String)> {
    if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
        return Err(format!(
            "TCP port {port} is in use, and --gdb puts QEMU's gdbstub there; free it (another \
             `cargo xtask run --gdb`?)"
        ));
    }
    let args = vec!["-gdb".into(), format!("tcp::{port}"), "-S".into()];
    let say = format!(
        "xtask: QEMU waits for gdb; in another terminal:\n  gdb {} -ex 'target remote :{port}'",
        elf.display()
    );
    Ok((args, say))
}

/// `cargo xtask run ...`; returns the process exit status.
pub fn command(words: Vec<String>) -> Result<u8> {
    let o = parse(words)?;
    crate::image::check_modules(&o.modules)?;
    crate::image::check_apps(&o.cmdline())?;
    // The host ports are checked before anything is built: a port in use stops at once.
    let mut extra = o.qemu_args.clone();
    if let Err(why) = o.default_run() {
        eprintln!("xtask: the monitor runs alone, without httpd: {why}");
    }
    if let Some((app, forwards)) = o.forwards() {
        extra.extend(forwards.qemu_args(0, "virtio-net-pci"));
        for forward in &forwards.0 {
            let kind = if forward.udp { "UDP" } else { "TCP" };
            let taken = if forward.udp {
                std::net::UdpSocket::bind(("127.0.0.1", forward.host)).is_err()
            } else {
                std::net::TcpListener::bind(("127.0.0.1", forward.host)).is_err()
            };
            if taken {
                return Err(format!(
                    "127.0.0.1:{} ({kind}) is in use, and {app} is served there; free it, or \
                     choose another app (`--app monitor` runs the monitor alone)",
                    forward.host
                ));
            }
            eprintln!(
                "xtask: {app}: 127.0.0.1:{} ({kind}) is forwarded to the guest's port {}",
                forward.host, forward.guest
            );
        }
        let page = forwards.0.iter().find(|f| f.guest == 80);
        if let Some(page) = page {
            eprintln!(
                "xtask: {app}'s status page: http://127.0.0.1:{}/",
                page.host
            );
        }
    } else if !o.chosen_apps().is_empty() && !o.own_network() {
        eprintln!("{}", no_forwards_note());
    }
    let gdb = o
        .gdb
        .then(|| gdb_stub(GDB_PORT, &crate::build::debug_elf()))
        .transpose()?;
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
    if let Some((args, say)) = gdb {
        cmd.args(args);
        eprintln!("{say}");
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
        assert_eq!(
            o.cmdline(),
            DEFAULT_CMDLINE_TWO_CORES,
            "the monitor beside httpd, the default network app"
        );
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
            kv.forwards().unwrap().1.qemu_args(0, "virtio-net-pci")[1],
            "user,id=user0,hostfwd=tcp:127.0.0.1:11211-:11211,hostfwd=udp:127.0.0.1:11211-:11211"
        );
        assert_eq!(
            parse(words(&["--app", "monitor"])).unwrap().forwards(),
            None,
            "the monitor alone has none"
        );
        assert_eq!(
            parse(words(&["--app", "hello"])).unwrap().forwards(),
            None,
            "hello serves nothing: `run --app hello` needs no free host port"
        );
        let appended = parse(words(&["--append", "app=httpd log=debug"])).unwrap();
        assert_eq!(appended.forwards().unwrap().0, "httpd");
        let manifest = parse(words(&["--append", "apps=monitor:0:64M,kv:1:64M"])).unwrap();
        assert_eq!(manifest.forwards().unwrap().0, "kv");
        let serving_nothing = parse(words(&["--append", "apps=hello:0:8M,hello:1:8M"])).unwrap();
        assert_eq!(serving_nothing.forwards(), None);
        let own = parse(words(&["--app", "kv", "--", "-nic", "none"])).unwrap();
        assert_eq!(own.forwards(), None, "the user's network wins");
        // Every variant of httpd and kv gets its ports: these three got none and no word.
        for (app, host_args) in [
            ("httpd-smoltcp", "hostfwd=tcp:127.0.0.1:8080-:80"),
            ("httpd-test", "hostfwd=tcp:127.0.0.1:8080-:80"),
            ("httpd-test-smoltcp", "hostfwd=tcp:127.0.0.1:8080-:80"),
            (
                "kv-small",
                "hostfwd=tcp:127.0.0.1:11211-:11211,hostfwd=udp:",
            ),
        ] {
            let o = parse(words(&["--app", app])).unwrap();
            let (served, forwards) = o.forwards().unwrap();
            assert_eq!(served, app);
            assert!(
                forwards.qemu_args(0, "virtio-net-pci")[1].contains(host_args),
                "{app}"
            );
        }
        let note = no_forwards_note();
        assert!(
            note.contains("to kv, kv-small, httpd, httpd-test,"),
            "{note}"
        );
    }

    #[test]
    fn the_default_run_serves_httpd_on_8080_beside_the_monitor() {
        let o = parse(vec![]).unwrap();
        let (app, forwards) = o.forwards().unwrap();
        assert_eq!(app, "httpd");
        assert_eq!(
            forwards.qemu_args(0, "virtio-net-pci")[1],
            "user,id=user0,hostfwd=tcp:127.0.0.1:8080-:80"
        );
        let four = parse(words(&["--cores", "4", "--append", "log=debug"])).unwrap();
        assert_eq!(
            four.cmdline(),
            "apps=monitor:0:64M,httpd:1-3:64M ip=10.0.2.15/24,10.0.2.2,10.0.2.3 log=debug"
        );
        // The kernel runs 64 cores at most and refuses a manifest naming core 64.
        for cores in ["64", "65", "255"] {
            assert_eq!(
                parse(words(&["--cores", cores])).unwrap().cmdline(),
                "apps=monitor:0:64M,httpd:1-63:64M ip=10.0.2.15/24,10.0.2.2,10.0.2.3",
                "--cores {cores}"
            );
        }
        let address = parse(words(&["--append", "ip=10.0.2.20/24"])).unwrap();
        assert_eq!(
            address.cmdline(),
            "apps=monitor:0:64M,httpd:1:64M ip=10.0.2.20/24",
            "the user's address wins"
        );
        // Where httpd cannot run beside it, the monitor runs alone, and `run` says why.
        for alone in [
            parse(words(&["--cores", "1"])).unwrap(),
            parse(words(&["--", "-nic", "none"])).unwrap(),
        ] {
            assert_eq!(alone.cmdline(), "app=monitor");
            assert!(alone.default_run().is_err());
            assert_eq!(alone.forwards(), None);
        }
        let chosen = parse(words(&["--append", "app=hello"])).unwrap();
        assert_eq!(chosen.cmdline(), "app=hello");
        assert_eq!(chosen.default_run(), Ok(None));
        let httpd = parse(words(&["--app", "httpd"])).unwrap();
        assert_eq!(httpd.cmdline(), "app=httpd");
        assert_eq!(httpd.forwards().unwrap().0, "httpd");
    }

    #[test]
    fn an_app_beside_a_boot_manifest_is_refused() {
        let err = parse(words(&[
            "--app",
            "kv",
            "--append",
            "log=debug apps=hello:0-1:8M",
        ]))
        .unwrap_err();
        assert!(
            err.contains("--app kv") && err.contains("apps=hello:0-1:8M"),
            "names both: {err}"
        );
    }

    #[test]
    fn an_app_beside_an_app_word_is_refused() {
        let err = parse(words(&["--app", "kv", "--append", "app=hello log=debug"])).unwrap_err();
        assert!(
            err.contains("--app kv") && err.contains("app=hello"),
            "names both: {err}"
        );
    }

    #[test]
    fn microvm_gets_no_nic_so_the_monitor_runs_alone_and_network_apps_are_refused() {
        let default = parse(words(&["--machine", "microvm"])).unwrap();
        assert_eq!(default.cmdline(), "app=monitor");
        assert!(default.default_run().unwrap_err().contains("microvm"));
        assert_eq!(default.forwards(), None, "no virtio-net-pci on microvm");
        for chosen in [
            &["--app", "kv"][..],
            &["--app", "httpd"],
            &["--append", "app=httpd"],
            &["--append", "apps=monitor:0:64M,kv:1:64M"],
        ] {
            let mut given = words(&["--machine", "microvm"]);
            given.extend(words(chosen));
            let err = parse(given).unwrap_err();
            assert!(
                err.contains("--machine microvm") && err.contains("q35"),
                "{chosen:?}: {err}"
            );
        }
        let hello = parse(words(&["--machine", "microvm", "--app", "hello"])).unwrap();
        assert_eq!(
            (hello.cmdline().as_str(), hello.forwards()),
            ("app=hello", None)
        );
        let own = parse(words(&[
            "--machine",
            "microvm",
            "--app",
            "kv",
            "--",
            "-nic",
            "none",
        ]));
        assert!(own.is_ok(), "the user's own network is theirs to choose");
    }

    /// `--gdb` with its port taken stops before QEMU, naming the port: QEMU failed to
    /// listen after `run` had said it waited for gdb.
    #[test]
    fn gdb_with_its_port_taken_stops_naming_it() {
        let elf = std::path::Path::new("target/rexo.elf");
        let taken = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = gdb_stub(port, elf).unwrap_err();
        assert!(
            err.starts_with(&format!("TCP port {port} is in use")),
            "{err}"
        );
        drop(taken);
        let (args, say) = gdb_stub(port, elf).unwrap();
        assert_eq!(args, ["-gdb", &format!("tcp::{port}"), "-S"]);
        assert!(say.ends_with(&format!("gdb target/rexo.elf -ex 'target remote :{port}'")));
    }

    /// A `--mem` below what boots is refused before the build, naming the least that
    /// does: `--mem 1` hung, `--mem 4M` exited 0 at once, and `--mem 8M` booted to the
    /// kernel's refusal of its 7,675 KiB of usable RAM.
    #[test]
    fn a_machine_too_small_to_boot_is_refused_naming_the_least() {
        for small in ["1", "4M", "8M", "8192K"] {
            let err = parse(words(&["--mem", small])).unwrap_err();
            assert!(
                err.contains(&format!("`--mem {small}`")) && err.contains("9 MiB at least"),
                "{small}: {err}"
            );
        }
        assert_eq!(parse(words(&["--mem", "9M"])).unwrap().mem_mib, MIN_MEM_MIB);
    }

    /// The app `--app` or a manifest in `--append` names is checked against the image's
    /// apps before the build: `run --app nosuch` failed only after a build and a boot.
    #[test]
    fn an_unknown_app_is_refused_before_the_build() {
        for given in [&["--app", "nosuch"][..], &["--append", "apps=nosuch:0:8M"]] {
            let o = parse(words(given)).unwrap();
            let err = crate::image::check_apps(&o.cmdline()).unwrap_err();
            assert!(
                err.starts_with("no app called 'nosuch'"),
                "{given:?}: {err}"
            );
        }
        let default = parse(vec![]).unwrap();
        crate::image::check_apps(&default.cmdline()).unwrap();
    }

    #[test]
    fn pvh_takes_one_module() {
        let err = parse(words(&["--module", "a", "--module", "b"])).unwrap_err();
        assert!(err.contains("--boot bios"));
        assert!(parse(words(&["--module", "a"])).is_ok());
    }
}
