//! The Linux baseline for the benchmarks (issue 8): Debian's stock kernel and an
//! initramfs made of `busybox-static`, `nginx`, `memcached` and `fio` with their shared
//! libraries, all built from Debian packages fetched with `apt-get download` and cached
//! under `target/linux/` (docs/bench.md, "Linux baseline").
//!
//! `cargo xtask linux [--service none|nginx|memcached] ...` builds it and boots it.

use crate::Result;
use crate::args::{self, Args};
use crate::qemu::{self, End};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Debian packages of the initramfs (the kernel's package is resolved from
/// `linux-image-amd64`). `nginx-light` is a metapackage whose binary lives in `nginx`.
const PACKAGES: &[&str] = &["busybox-static", "memcached", "nginx", "fio"];

/// The metapackage that names Debian's current kernel.
const KERNEL_META: &str = "linux-image-amd64";

/// The binaries copied into `service`'s initramfs, with their shared libraries. Each
/// service gets its own image, so that Linux's boot and idle memory are not charged for
/// the libraries of programs it does not run (fio alone brings 80 MiB of them).
fn binaries(service: &str) -> &'static [&'static str] {
    match service {
        "nginx" => &["usr/sbin/nginx"],
        "memcached" => &["usr/bin/memcached"],
        "fio" | "bench" | "drivers" => &["usr/bin/fio"],
        _ => &[],
    }
}

/// Kernel modules loaded by the init (with their dependencies): the NICs and disks the
/// benchmark harness gives both guests.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "e1000",
    "e1000e",
    "nvme",
];

/// Kernel modules only the `fsbench` image loads, after [`MODULES`]: ext4 (Debian builds
/// it as a module) and the crc32c its metadata checksums need (ext4 asks the crypto
/// layer for it, which cannot load modules without modprobe).
const FS_MODULES: &[&str] = &["crc32c_generic", "ext4"];

/// The modules `service`'s image loads, in the order given.
fn modules(service: &str) -> Vec<&'static str> {
    let mut list = MODULES.to_vec();
    if service == "fsbench" {
        list.extend_from_slice(FS_MODULES);
    }
    list
}

/// The services `rexo.service=` accepts.
/// (`fio`: nothing is started; a shell on the console runs fio as told. `bench`: the
/// benchmark suite's guest side, [`BENCH_PROGRAMS`] and fio, then power-off. `fsbench`:
/// `cargo xtask bench fs`'s guest side, [`FSBENCH_PROGRAMS`] on the ext4 disk, then
/// power-off. `drivers`: `cargo xtask bench drivers`'s guest side on the device named by
/// `rexo.bench_dev=`, [`DRIVERS_PROGRAMS`] on a NIC or the fio jobs of
/// [`DRIVERS_FIO_JOBS`] on a disk, then power-off.)
pub const SERVICES: &[&str] = &[
    "none",
    "nginx",
    "memcached",
    "fio",
    "bench",
    "fsbench",
    "drivers",
];

/// The marker the init prints once the service is up.
pub const MARKER: &str = "linux: ready service=";

/// The init's first line, before it does anything: "Linux to its init" for the
/// benchmark suite's boot figure.
pub const INIT_MARKER: &str = "linux: init";

/// The line the init prints once the network is up: `MemTotal` and `MemAvailable` of
/// /proc/meminfo, in KiB, for the suite's idle-memory figure.
pub const MEMINFO_PREFIX: &str = "linux: meminfo";

/// The suite's static C programs in the `bench` image: name in `/usr/bin/`, source.
/// Compiled on the host with `gcc -static -O2 -pthread` (docs/bench.md).
pub const BENCH_PROGRAMS: &[(&str, &str)] = &[
    ("rexo-noise", include_str!("bench/noise.c")),
    ("rexo-poll", include_str!("bench/poll.c")),
    ("rexo-udpecho", include_str!("bench/udpecho.c")),
];

/// The file-system benchmark's program in the `fsbench` image, built the same way.
pub const FSBENCH_PROGRAMS: &[(&str, &str)] = &[("rexo-fsbench", include_str!("bench/fsbench.c"))];

/// The driver benchmark's raw-frame program in the `drivers` image, built the same way.
pub const DRIVERS_PROGRAMS: &[(&str, &str)] =
    &[("rexo-rawbench", include_str!("bench/rawbench.c"))];

/// Where the `drivers` image keeps its fio jobs, one per line: the figure's name, then
/// fio's arguments (written from `devbench::fio_jobs`).
pub const DRIVERS_FIO_JOBS: &str = "/etc/rexo/fio-drivers";

/// The generated files `service`'s image carries besides the init: (guest path, text).
fn files(service: &str) -> Vec<(&'static str, String)> {
    match service {
        "drivers" => vec![(DRIVERS_FIO_JOBS, crate::devbench::fio_job_file())],
        _ => Vec::new(),
    }
}

/// The static C programs `service`'s image carries.
fn programs(service: &str) -> &'static [(&'static str, &'static str)] {
    match service {
        "bench" => BENCH_PROGRAMS,
        "fsbench" => FSBENCH_PROGRAMS,
        "drivers" => DRIVERS_PROGRAMS,
        _ => &[],
    }
}

/// The name of the harness test.
pub const TEST_NAME: &str = "linux::boot-none";

/// Seconds the test and `cargo xtask linux` give the guest to print its marker (TCG).
const BOOT_TIMEOUT_S: u64 = 120;

/// The init script (PID 1), run by busybox's shell.
const INIT: &str = r#"#!/bin/sh
# Rexo's Linux baseline init (xtask/src/linux.rs).
echo "linux: init"
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /run /var/log/nginx /var/lib/nginx /srv/www
mount -t devpts devpts /dev/pts
fail() {
    echo "linux: failed: $*"
    poweroff -f
}
service=none
fio_runtime=2
noise_quanta=200000
polls=1000000
udp_echo=0
bench_dev=
bench_frames=0
bench_polls=0
bench_sizes=
for word in $(cat /proc/cmdline); do
    case "$word" in
        rexo.service=*) service="${word#rexo.service=}" ;;
        rexo.fio_runtime=*) fio_runtime="${word#rexo.fio_runtime=}" ;;
        rexo.noise_quanta=*) noise_quanta="${word#rexo.noise_quanta=}" ;;
        rexo.polls=*) polls="${word#rexo.polls=}" ;;
        rexo.udp_echo=*) udp_echo="${word#rexo.udp_echo=}" ;;
        rexo.bench_dev=*) bench_dev="${word#rexo.bench_dev=}" ;;
        rexo.bench_frames=*) bench_frames="${word#rexo.bench_frames=}" ;;
        rexo.bench_polls=*) bench_polls="${word#rexo.bench_polls=}" ;;
        rexo.bench_sizes=*) bench_sizes="${word#rexo.bench_sizes=}" ;;
    esac
done
case "$service" in
    none|nginx|memcached|fio|bench|fsbench|drivers) ;;
    *) fail "unknown service '$service' (rexo.service=none|nginx|memcached|fio|bench|fsbench|drivers)" ;;
esac
while read -r module; do
    insmod "/lib/modules/$module" || fail "insmod $module"
done < /etc/rexo/modules
ip link set lo up
await_eth0() {
    tries=0
    while [ ! -e /sys/class/net/eth0 ]; do
        tries=$((tries + 1))
        [ "$tries" -gt 50 ] && fail "no eth0 (no supported NIC: virtio-net, e1000, e1000e)"
        sleep 0.1
    done
}
if [ "$service" = drivers ]; then
    # `cargo xtask bench drivers` (docs/bench.md): the device under test only, no
    # address on the NIC and no IPv6 (nothing but the benchmark's frames on the wire).
    echo "linux: ready service=drivers"
    case "$bench_dev" in
        eth*)
            await_eth0
            echo 1 > "/proc/sys/net/ipv6/conf/$bench_dev/disable_ipv6"
            ip link set "$bench_dev" up || fail "ip link set $bench_dev up"
            rexo-rawbench "$bench_dev" "$bench_frames" "$bench_polls" $(echo "$bench_sizes" | tr , ' ')
            ;;
        ?*)
            tries=0
            while [ ! -b "/dev/$bench_dev" ] && [ "$tries" -lt 50 ]; do
                tries=$((tries + 1))
                sleep 0.1
            done
            [ -b "/dev/$bench_dev" ] || echo "devbench disk 0 FAILED: no /dev/$bench_dev"
            while [ -b "/dev/$bench_dev" ] && read -r name args; do
                out=$(fio --filename="/dev/$bench_dev" $args 2>&1 | tail -n 1)
                case "$out" in
                    3\;*) echo "devbench-fio disk 0 $name $out" ;;
                    *) echo "devbench disk 0 FAILED: $name: $out" ;;
                esac
            done < /etc/rexo/fio-drivers
            ;;
        *) echo "devbench - - FAILED: no rexo.bench_dev= on the command line" ;;
    esac
    echo "linux: drivers done"
    poweroff -f
fi
await_eth0
ip link set eth0 up || fail "ip link set eth0 up"
# The queues the driver uses (virtio-net: a pair per core, up to the device's pairs).
echo "linux: eth0 queues $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
ip addr add 10.0.2.15/24 dev eth0 || fail "ip addr add 10.0.2.15/24"
ip route add default via 10.0.2.2 || fail "ip route add default"
echo "linux: meminfo $(awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 } END { print "total_kib=" t " available_kib=" a }' /proc/meminfo)"
case "$service" in
    nginx)
        head -c 1024 /dev/urandom > /srv/www/1k
        head -c 102400 /dev/urandom > /srv/www/100k
        nginx -c /etc/rexo/nginx.conf || fail "nginx did not start"
        ;;
    memcached)
        memcached -d -u root -m 64 -p 11211 -U 11211 -t "$(nproc)" || fail "memcached did not start"
        ;;
esac
echo "linux: ready service=$service"
[ "$service" = none ] && poweroff -f
if [ "$service" = bench ] && [ "$udp_echo" -gt 0 ]; then
    # The suite's UDP round trip: an echo server on that port until QEMU is stopped.
    exec rexo-udpecho "$udp_echo"
fi
if [ "$service" = bench ]; then
    # The suite's figures (docs/bench.md): OS noise, the empty receive poll, then fio's
    # 4 KiB random reads on each disk at depth 1 and 32, direct I/O through io_uring.
    # A count of 0 leaves a figure out.
    [ "$noise_quanta" -gt 0 ] && rexo-noise "$noise_quanta" | sed 's/^/linuxbench /'
    [ "$polls" -gt 0 ] && rexo-poll "$polls" | sed 's/^/linuxbench /'
    for disk in nvme0n1 vda; do
        [ "$fio_runtime" -gt 0 ] || break
        if [ ! -b "/dev/$disk" ]; then
            echo "linuxbench disk $disk FAILED: no /dev/$disk"
            continue
        fi
        for depth in 1 32; do
            out=$(fio --minimal --name=randread --filename="/dev/$disk" --direct=1 \
                --ioengine=io_uring --rw=randread --bs=4k --iodepth="$depth" \
                --runtime="$fio_runtime" --time_based 2>&1 | tail -n 1)
            case "$out" in
                3\;*) echo "linuxbench disk $disk randread-qd$depth $(echo "$out" | cut -d';' -f5,8 | sed 's/^/error=/; s/;/ iops=/')" ;;
                *) echo "linuxbench disk $disk FAILED: $out" ;;
            esac
        done
    done
    echo "linuxbench done"
    poweroff -f
fi
if [ "$service" = fsbench ]; then
    # `cargo xtask bench fs` (docs/bench.md): the ext4 file system the harness made on
    # /dev/vda (its root holds `big`, 1 GiB), mounted with Debian's defaults.
    mkdir -p /mnt
    mount -t ext4 /dev/vda /mnt || fail "mount -t ext4 /dev/vda /mnt"
    rexo-fsbench /mnt /dev/vda /mnt/big
    umount /mnt || fail "umount /mnt"
    poweroff -f
fi
[ "$service" = fio ] && exec setsid cttyhack sh
while true; do sleep 3600; done
"#;

/// nginx's configuration: every core a worker, files from /srv/www on port 80.
const NGINX_CONF: &str = "\
user root root;
worker_processes auto;
pid /run/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    server {
        listen 80 reuseport;
        root /srv/www;
    }
}
";

/// The built baseline: what QEMU boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// Debian's bzImage (`boot/vmlinuz-*` of the kernel package).
    pub kernel: PathBuf,
    /// The initramfs of the service (cpio newc, uncompressed).
    pub initramfs: PathBuf,
    /// The service it starts.
    pub service: String,
    /// The kernel package, e.g. `linux-image-6.1.0-56-amd64`.
    pub kernel_package: String,
}

/// A Linux guest to boot: the baseline and the virtual machine around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The service the init starts.
    pub service: String,
    /// vCPUs.
    pub cores: u32,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// Extra kernel command line words.
    pub append: String,
    /// QEMU `-netdev user` options after `user,id=net0` (e.g. `hostfwd=...`).
    pub netdev_extra: String,
}

impl Guest {
    /// A guest running `service` on 2 cores and 512 MiB.
    pub fn new(service: &str) -> Result<Self> {
        if !SERVICES.contains(&service) {
            return Err(format!(
                "unknown Linux service `{service}`; valid services: {}",
                SERVICES.join(", ")
            ));
        }
        Ok(Self {
            service: service.to_string(),
            cores: 2,
            mem_mib: 512,
            append: String::new(),
            netdev_extra: String::new(),
        })
    }

    /// The kernel command line: Debian's default (`quiet`), the serial console, a panic
    /// that ends QEMU, and the service.
    pub fn cmdline(&self) -> String {
        let mut line = format!("console=ttyS0 quiet panic=-1 rexo.service={}", self.service);
        if !self.append.is_empty() {
            line.push(' ');
            line.push_str(&self.append);
        }
        line
    }

    /// QEMU's arguments (after the serial and display ones `qemu::run_captured` adds): q35 under TCG, a
    /// virtio-net NIC on QEMU user networking.
    pub fn qemu_args(&self, baseline: &Baseline) -> Vec<String> {
        let mut netdev = "user,id=net0".to_string();
        if !self.netdev_extra.is_empty() {
            netdev.push(',');
            netdev.push_str(&self.netdev_extra);
        }
        [
            "-M",
            "q35",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-smp",
            &self.cores.to_string(),
            "-m",
            &self.mem_mib.to_string(),
            "-no-reboot",
            "-kernel",
            &baseline.kernel.to_string_lossy(),
            "-initrd",
            &baseline.initramfs.to_string_lossy(),
            "-append",
            &self.cmdline(),
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-pci,netdev=net0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

// ---------------------------------------------------------------------------
// The command.

/// `cargo xtask linux [--service S] [--cores N] [--mem SIZE] [--append WORDS]
/// [--build-only]`: builds the baseline and boots it until its marker.
pub fn command(words: Vec<String>) -> Result<()> {
    const FLAGS: &[&str] = &["--service", "--cores", "--mem", "--append", "--build-only"];
    let mut args = Args::new("linux", FLAGS, words);
    let mut guest = Guest::new("none")?;
    let mut build_only = false;
    while let Some(word) = args.next_word() {
        match word.as_str() {
            "--service" => {
                guest = Guest {
                    service: args.choice("--service", SERVICES)?,
                    ..guest
                }
            }
            "--cores" => guest.cores = args.number("--cores")?,
            "--mem" => guest.mem_mib = args::parse_size_mib(&args.value("--mem")?)?,
            "--append" => guest.append = args.value("--append")?,
            "--build-only" => build_only = true,
            other => return Err(args.unknown(other)),
        }
    }
    if guest.cores == 0 {
        return Err("--cores must be at least 1".to_string());
    }
    let root = crate::root();
    let baseline = build(&root, &guest.service)?;
    println!(
        "linux: {} ({}), initramfs {}",
        baseline.kernel.display(),
        baseline.kernel_package,
        baseline.initramfs.display()
    );
    if build_only {
        return Ok(());
    }
    crate::deps::ensure(&[crate::deps::Need::Qemu])?;
    let log = root.join("target/linux/boot.log");
    let capture = boot(&baseline, &guest, &log, true)?;
    let ready = ready_time(&capture);
    match (ready, capture.end) {
        (Some(at), End::Exited(0) | End::Stopped) => {
            println!(
                "linux: service {} ready after {:.2} s (QEMU start to marker, TCG)",
                guest.service,
                at.as_secs_f64()
            );
            Ok(())
        }
        (_, end) => Err(format!(
            "the Linux guest did not become ready (QEMU ended with {end:?}); see {}",
            log.display()
        )),
    }
}

/// Boots `guest` until the init's marker (service `none`: until QEMU exits), writing
/// every line to `log` (and to the terminal when `echo`).
pub fn boot(baseline: &Baseline, guest: &Guest, log: &Path, echo: bool) -> Result<qemu::Capture> {
    let args = guest.qemu_args(baseline);
    // `none`, `bench` and `drivers` power off by themselves.
    let stop_at_marker = !matches!(guest.service.as_str(), "none" | "bench" | "drivers");
    qemu::run_captured(
        &args,
        Duration::from_secs(BOOT_TIMEOUT_S),
        Some(log),
        |line| {
            if echo {
                println!("{}", line.text);
            }
            (stop_at_marker && line.text.contains(MARKER)) || line.text.contains("linux: failed:")
        },
    )
}

/// When the marker line arrived.
pub fn ready_time(capture: &qemu::Capture) -> Option<Duration> {
    capture
        .serial()
        .find(|l| l.text.contains(MARKER))
        .map(|l| l.at)
}

/// The harness test [`TEST_NAME`]: builds the baseline, boots it with service `none`,
/// and requires the marker and QEMU exit status 0. On failure: the reason and the end
/// of the log.
pub fn boot_test(log: &Path) -> std::result::Result<(), (String, Vec<String>)> {
    let root = crate::root();
    let baseline = build(&root, "none").map_err(|e| (e, Vec::new()))?;
    let guest = Guest::new("none").map_err(|e| (e, Vec::new()))?;
    let capture = boot(&baseline, &guest, log, false).map_err(|e| (e, Vec::new()))?;
    let marker = capture
        .serial()
        .any(|l| l.text.contains("linux: ready service=none"));
    if marker && capture.end == End::Exited(0) {
        Ok(())
    } else {
        let reason = format!(
            "marker `linux: ready service=none` {}, QEMU ended with {:?} (expected exit 0); see {}",
            if marker { "seen" } else { "missing" },
            capture.end,
            log.display()
        );
        Err((reason, capture.tail(15)))
    }
}

// ---------------------------------------------------------------------------
// Building: packages.

/// Builds (or reuses) the baseline for `service` under `ROOT/target/linux/`.
pub fn build(root: &Path, service: &str) -> Result<Baseline> {
    if !SERVICES.contains(&service) {
        return Err(format!(
            "unknown Linux service `{service}`; valid services: {}",
            SERVICES.join(", ")
        ));
    }
    let dir = root.join("target/linux");
    let debs = dir.join("debs");
    let tree = dir.join("root");
    for folder in [&debs, &tree] {
        std::fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    }
    let kernel_package = resolve_kernel_package(&debs)?;
    let mut fetched = BTreeSet::new();
    for package in std::iter::once(kernel_package.as_str()).chain(PACKAGES.iter().copied()) {
        fetch_and_extract(package, &debs, &tree)?;
        fetched.insert(package.to_string());
    }
    let version = kernel_package
        .strip_prefix("linux-image-")
        .ok_or_else(|| format!("`{kernel_package}` is not a linux-image package"))?;
    let kernel = tree.join(format!("boot/vmlinuz-{version}"));
    if !kernel.is_file() {
        return Err(format!(
            "package {kernel_package} has no {}",
            kernel.display()
        ));
    }
    let programs = binaries(service);
    let libs = resolve_libraries(&tree, &debs, programs, &mut fetched)?;
    let compiled = compile_programs(self::programs(service), &dir.join("bench"))?;
    let initramfs = dir.join(format!("initramfs-{service}.cpio"));
    let modules = modules(service);
    let image = Image {
        programs,
        libs: &libs,
        compiled: &compiled,
        modules: &modules,
        files: &files(service),
    };
    write_initramfs(&tree, version, &image, &initramfs)?;
    Ok(Baseline {
        kernel,
        initramfs,
        service: service.to_string(),
        kernel_package,
    })
}

/// Compiles `sources` (name, C source) into `dir` with the host's `gcc -static -O2
/// -pthread`: (path in the guest, binary) for each.
fn compile_programs(sources: &[(&str, &str)], dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    sources
        .iter()
        .map(|(name, source)| {
            let c = dir.join(format!("{name}.c"));
            let binary = dir.join(name);
            std::fs::write(&c, source).map_err(|e| format!("cannot write {}: {e}", c.display()))?;
            let output = Command::new("gcc")
                .args(["-static", "-O2", "-pthread", "-Wall", "-o"])
                .arg(&binary)
                .arg(&c)
                .output()
                .map_err(|e| format!("cannot run gcc ({e}); install packages gcc and libc6-dev"))?;
            if !output.status.success() {
                return Err(format!(
                    "gcc -static could not build {}: {}",
                    c.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            Ok((format!("/usr/bin/{name}"), binary))
        })
        .collect()
}

/// The versioned kernel package `linux-image-amd64` depends on (from `apt-cache
/// depends`; offline, the one already downloaded).
fn resolve_kernel_package(debs: &Path) -> Result<String> {
    let depends = || {
        let output = Command::new("apt-cache")
            .args(["depends", KERNEL_META])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        parse_depends(&String::from_utf8_lossy(&output.stdout))
            .into_iter()
            .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
    };
    // A fresh machine may have no package lists yet: fetch them once (as root) and retry.
    if let Some(name) = depends().or_else(|| if apt_update() { depends() } else { None }) {
        return Ok(name);
    }
    cached_deb_names(debs)
        .into_iter()
        .find(|name| name.starts_with("linux-image-") && name != KERNEL_META)
        .ok_or_else(|| {
            format!(
                "cannot resolve Debian package `{KERNEL_META}` to its kernel package with \
                 `apt-cache depends {KERNEL_META}` (is apt set up for Debian 12?)"
            )
        })
}

/// The package names in `apt-cache depends` output (`Depends:` and `PreDepends:`
/// lines, alternatives included, virtual `<names>` left out).
fn parse_depends(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches('|');
            let rest = line
                .strip_prefix("Depends:")
                .or_else(|| line.strip_prefix("PreDepends:"))?;
            let name = rest.trim();
            (!name.is_empty() && !name.starts_with('<')).then(|| name.to_string())
        })
        .collect()
}

/// The package names of the `.deb` files in `debs` (`NAME_VERSION_ARCH.deb`).
fn cached_deb_names(debs: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(debs) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let stem = name.strip_suffix(".deb")?;
            Some(stem.split('_').next()?.to_string())
        })
        .collect()
}

/// The cached `.deb` of `package`, if any.
fn cached_deb(package: &str, debs: &Path) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    std::fs::read_dir(debs)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
}

/// Downloads `package` into `debs` with `apt-get download` unless cached (after a
/// failure, as root, `apt-get update` and once more), and extracts it into `tree`
/// unless already done.
fn fetch_and_extract(package: &str, debs: &Path, tree: &Path) -> Result<()> {
    let deb = match cached_deb(package, debs) {
        Some(deb) => deb,
        None => {
            println!("linux: apt-get download {package}");
            let mut result = apt_download(package, debs);
            if result.is_err() && apt_update() {
                result = result.or_else(|first| apt_download(package, debs).map_err(|_| first));
            }
            result?;
            cached_deb(package, debs).ok_or_else(|| {
                format!(
                    "apt-get download {package} succeeded but left no .deb in {}",
                    debs.display()
                )
            })?
        }
    };
    let marks = tree.join(".rexo-extracted");
    std::fs::create_dir_all(&marks)
        .map_err(|e| format!("cannot create {}: {e}", marks.display()))?;
    let file_name = deb
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let mark = marks.join(&file_name);
    if mark.exists() {
        return Ok(());
    }
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tree)
        .status()
        .map_err(|e| format!("cannot run dpkg-deb ({e}); install package dpkg"))?;
    if !status.success() {
        return Err(format!("dpkg-deb -x {} failed ({status})", deb.display()));
    }
    std::fs::write(&mark, b"").map_err(|e| format!("cannot write {}: {e}", mark.display()))
}

/// Refreshes apt's package lists once per run, as root (`apt-get update`); returns whether
/// it ran, so that the caller may try again.
fn apt_update() -> bool {
    static DONE: std::sync::Once = std::sync::Once::new();
    let mut ran = false;
    DONE.call_once(|| {
        if crate::deps::is_root() {
            println!("linux: apt-get update");
            ran = Command::new("apt-get")
                .args(["update", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        }
    });
    ran
}

/// `apt-get download PACKAGE` in `debs`.
fn apt_download(package: &str, debs: &Path) -> Result<()> {
    let output = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(debs)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run apt-get ({e}) to download Debian package `{package}`"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why = stderr
        .lines()
        .filter(|l| l.starts_with("E:"))
        .collect::<Vec<_>>()
        .join(" ");
    Err(format!(
        "cannot download Debian package `{package}` with `apt-get download {package}` \
         ({}); is the Debian package registry reachable?",
        if why.is_empty() {
            output.status.to_string()
        } else {
            why
        }
    ))
}

// ---------------------------------------------------------------------------
// Building: shared libraries.

/// One line of `ldd` output.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LddLine {
    /// `NAME => PATH (0x...)` or the loader `PATH (0x...)`.
    Found(PathBuf),
    /// `NAME => not found`.
    Missing(String),
}

/// Reads `ldd` output (the vDSO, which has no file, is left out).
fn parse_ldd(text: &str) -> Vec<LddLine> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some((name, target)) = line.split_once("=>") {
                let target = target.trim();
                if target.starts_with("not found") {
                    return Some(LddLine::Missing(name.trim().to_string()));
                }
                let path = target.split_whitespace().next()?;
                return path.starts_with('/').then(|| LddLine::Found(path.into()));
            }
            let path = line.split_whitespace().next()?;
            path.starts_with('/').then(|| LddLine::Found(path.into()))
        })
        .collect()
}

/// The library folders of the extracted tree, searched before the host's.
fn tree_lib_dirs(tree: &Path) -> Vec<PathBuf> {
    ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
        .iter()
        .map(|d| tree.join(d))
        .filter(|d| d.is_dir())
        .collect()
}

/// Whether Debian package `name` is installed on the host.
fn installed_on_host(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", name])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ii"))
}

/// The library packages `package` depends on.
fn library_depends(package: &str) -> Vec<String> {
    Command::new("apt-cache")
        .args(["depends", package])
        .stderr(Stdio::null())
        .output()
        .map(|o| parse_depends(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.starts_with("lib"))
        .collect()
}

/// The shared libraries (and the dynamic loader) of `programs`: a map from the path
/// in the guest to the file to copy. Libraries the host lacks come from the library
/// packages the services depend on, fetched as needed, level by level.
fn resolve_libraries(
    tree: &Path,
    debs: &Path,
    programs: &[&str],
    fetched: &mut BTreeSet<String>,
) -> Result<BTreeMap<PathBuf, PathBuf>> {
    loop {
        let search = std::env::join_paths(tree_lib_dirs(tree))
            .map_err(|e| format!("bad library path: {e}"))?;
        let mut found = BTreeMap::new();
        let mut missing = BTreeSet::new();
        for binary in programs {
            let path = tree.join(binary);
            let output = Command::new("ldd")
                .arg(&path)
                .env("LD_LIBRARY_PATH", &search)
                .output()
                .map_err(|e| format!("cannot run ldd ({e}); install package libc-bin"))?;
            let text = String::from_utf8_lossy(&output.stdout);
            let lines = parse_ldd(&text);
            if lines.is_empty() {
                return Err(format!(
                    "ldd {} listed no libraries: {text}",
                    path.display()
                ));
            }
            for line in lines {
                match line {
                    LddLine::Found(file) => {
                        let guest = match file.strip_prefix(tree) {
                            Ok(inner) => Path::new("/").join(inner),
                            Err(_) => file.clone(),
                        };
                        found.insert(guest, file);
                    }
                    LddLine::Missing(name) => {
                        missing.insert(name);
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let wanted: BTreeSet<String> = fetched
            .iter()
            .flat_map(|p| library_depends(p))
            .filter(|d| !fetched.contains(d) && !installed_on_host(d))
            .collect();
        if wanted.is_empty() {
            return Err(format!(
                "shared libraries not found on the host or in the fetched packages: {}",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        for package in wanted {
            fetch_and_extract(&package, debs, tree)?;
            fetched.insert(package);
        }
    }
}

// ---------------------------------------------------------------------------
// Building: kernel modules.

/// The `depends=` field of a module's `.modinfo` (empty list: none).
fn module_depends(bytes: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = bytes.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &bytes[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('-', "_"))
        .collect()
}

/// Every `.ko` under `dir`, by module name (`-` read as `_`).
fn index_modules(dir: &Path, index: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            index.insert(stem.replace('-', "_"), path);
        }
    }
    Ok(())
}

/// `wanted` and their dependencies, dependencies first, using `depends_of` to read a
/// module's dependencies.
fn module_order(
    wanted: &[&str],
    mut depends_of: impl FnMut(&str) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        depends_of: &mut dyn FnMut(&str) -> Result<Vec<String>>,
        order: &mut Vec<String>,
        active: &mut Vec<String>,
    ) -> Result<()> {
        if order.iter().any(|m| m == name) {
            return Ok(());
        }
        if active.iter().any(|m| m == name) {
            return Err(format!(
                "kernel modules depend on each other in a cycle: {name}"
            ));
        }
        active.push(name.to_string());
        for dep in depends_of(name)? {
            visit(&dep, depends_of, order, active)?;
        }
        active.pop();
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for name in wanted {
        visit(name, &mut depends_of, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

// ---------------------------------------------------------------------------
// Building: the initramfs.

/// One entry of a cpio archive.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// A directory.
    Dir,
    /// A regular file with this mode (permission bits), its bytes.
    File(u32, Vec<u8>),
    /// A regular file with this mode, copied from the host.
    Copy(u32, PathBuf),
    /// A symbolic link to this target.
    Symlink(String),
}

/// Writes a cpio archive in the `newc` format (what the kernel unpacks as an
/// initramfs): `entries` in order (parents before children), then the trailer.
fn write_cpio(out: &mut impl Write, entries: &[(String, Entry)]) -> Result<()> {
    fn header(
        out: &mut impl Write,
        ino: u32,
        mode: u32,
        size: usize,
        name: &str,
    ) -> std::io::Result<()> {
        let size = u32::try_from(size)
            .map_err(|_| std::io::Error::other(format!("{name}: too large for a cpio archive")))?;
        let name_size = name.len() + 1;
        write!(
            out,
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{name_size:08x}{:08x}",
            0, 0, 1, 0, 0, 0, 0, 0, 0
        )?;
        out.write_all(name.as_bytes())?;
        out.write_all(&[0])?;
        pad(out, 110 + name_size)
    }
    fn pad(out: &mut impl Write, len: usize) -> std::io::Result<()> {
        out.write_all(&[0; 3][..(4 - len % 4) % 4])
    }
    let io = |e: std::io::Error| format!("cannot write the initramfs: {e}");
    for (i, (name, entry)) in entries.iter().enumerate() {
        let ino = u32::try_from(i + 1).map_err(|_| "too many initramfs entries".to_string())?;
        let name = name.trim_start_matches('/');
        if name.is_empty() {
            return Err("an initramfs entry has an empty name".to_string());
        }
        match entry {
            Entry::Dir => header(out, ino, 0o040_755, 0, name).map_err(io)?,
            Entry::Symlink(target) => {
                header(out, ino, 0o120_777, target.len(), name).map_err(io)?;
                out.write_all(target.as_bytes()).map_err(io)?;
                pad(out, target.len()).map_err(io)?;
            }
            Entry::File(mode, bytes) => {
                header(out, ino, 0o100_000 | mode, bytes.len(), name).map_err(io)?;
                out.write_all(bytes).map_err(io)?;
                pad(out, bytes.len()).map_err(io)?;
            }
            Entry::Copy(mode, path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                header(out, ino, 0o100_000 | mode, bytes.len(), name).map_err(io)?;
                out.write_all(&bytes).map_err(io)?;
                pad(out, bytes.len()).map_err(io)?;
            }
        }
    }
    header(out, 0, 0, 0, "TRAILER!!!").map_err(io)
}

/// The entries of the initramfs, parents first.
#[derive(Default)]
struct Tree {
    entries: Vec<(String, Entry)>,
    names: BTreeSet<String>,
}

impl Tree {
    /// Adds `path` (absolute in the guest) with its missing parent folders.
    fn add(&mut self, path: &str, entry: Entry) {
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            parent.push('/');
            parent.push_str(part);
            if self.names.insert(parent.clone()) {
                self.entries.push((parent.clone(), Entry::Dir));
            }
        }
        if self.names.insert(path.to_string()) {
            self.entries.push((path.to_string(), entry));
        }
    }
}

/// The applets of the extracted busybox (`busybox --list-full`).
fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let output = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| format!("cannot run {} ({e})", busybox.display()))?;
    let list: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.contains(".."))
        .collect();
    if list.is_empty() {
        return Err(format!(
            "{} --list-full listed no applets",
            busybox.display()
        ));
    }
    Ok(list)
}

/// What goes into one initramfs besides busybox, the init and nginx's configuration.
struct Image<'a> {
    /// The Debian programs (paths in the extracted tree).
    programs: &'a [&'a str],
    /// Their shared libraries: guest path, host file.
    libs: &'a BTreeMap<PathBuf, PathBuf>,
    /// The compiled C programs: guest path, host file.
    compiled: &'a [(String, PathBuf)],
    /// The kernel modules to load, without their dependencies.
    modules: &'a [&'a str],
    /// Generated files: guest path, text.
    files: &'a [(&'a str, String)],
}

/// Writes the initramfs to `out`: busybox with its applets, the image's programs and
/// their libraries, its compiled programs, its modules with their dependencies in load
/// order, its files, the init and nginx's configuration.
fn write_initramfs(tree: &Path, kernel_version: &str, image: &Image, out: &Path) -> Result<()> {
    let mut t = Tree::default();
    for dir in [
        "/dev",
        "/proc",
        "/sys",
        "/tmp",
        "/run",
        "/etc/rexo",
        "/srv/www",
    ] {
        t.add(dir, Entry::Dir);
    }
    let busybox = tree.join("bin/busybox");
    t.add("/bin/busybox", Entry::Copy(0o755, busybox.clone()));
    t.add("/bin/sh", Entry::Symlink("/bin/busybox".into()));
    for applet in busybox_applets(&busybox)? {
        t.add(&format!("/{applet}"), Entry::Symlink("/bin/busybox".into()));
    }
    for binary in image.programs {
        t.add(&format!("/{binary}"), Entry::Copy(0o755, tree.join(binary)));
    }
    for (guest, file) in image.libs {
        t.add(&guest.to_string_lossy(), Entry::Copy(0o755, file.clone()));
    }
    for (guest, file) in image.compiled {
        t.add(guest, Entry::Copy(0o755, file.clone()));
    }
    let module_dir = tree.join(format!("lib/modules/{kernel_version}"));
    let mut index = BTreeMap::new();
    index_modules(&module_dir, &mut index)?;
    let order = module_order(image.modules, |name| {
        let path = index
            .get(name)
            .ok_or_else(|| format!("kernel module {name} is not in {}", module_dir.display()))?;
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(module_depends(&bytes))
    })?;
    let mut list = String::new();
    for name in &order {
        let path = &index[name];
        let file = format!("{name}.ko");
        t.add(
            &format!("/lib/modules/{file}"),
            Entry::Copy(0o644, path.clone()),
        );
        list.push_str(&file);
        list.push('\n');
    }
    t.add("/etc/rexo/modules", Entry::File(0o644, list.into_bytes()));
    t.add(
        "/etc/rexo/nginx.conf",
        Entry::File(0o644, NGINX_CONF.into()),
    );
    t.add(
        "/etc/passwd",
        Entry::File(0o644, b"root:x:0:0:root:/root:/bin/sh\n".to_vec()),
    );
    t.add("/etc/group", Entry::File(0o644, b"root:x:0:\n".to_vec()));
    for (guest, text) in image.files {
        t.add(guest, Entry::File(0o644, text.clone().into_bytes()));
    }
    t.add("/init", Entry::File(0o755, INIT.into()));
    let partial = out.with_extension("cpio.partial");
    let file = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut writer = BufWriter::new(file);
    write_cpio(&mut writer, &t.entries)?;
    writer
        .flush()
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, out).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a newc archive back: (name, mode, data) per entry, trailer excluded.
    fn read_cpio(mut bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let field = |h: &[u8], i: usize| {
            u32::from_str_radix(std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                .unwrap()
        };
        loop {
            assert_eq!(&bytes[..6], b"070701");
            let mode = field(bytes, 1);
            let size = field(bytes, 6) as usize;
            let name_size = field(bytes, 11) as usize;
            let name = std::str::from_utf8(&bytes[110..110 + name_size - 1])
                .unwrap()
                .to_string();
            let data_at = (110 + name_size).div_ceil(4) * 4;
            let data = bytes[data_at..data_at + size].to_vec();
            if name == "TRAILER!!!" {
                assert_eq!((data_at + size).div_ceil(4) * 4, bytes.len());
                return out;
            }
            out.push((name, mode, data));
            bytes = &bytes[(data_at + size).div_ceil(4) * 4..];
        }
    }

    #[test]
    fn cpio_round_trips() {
        let entries = vec![
            ("/bin".to_string(), Entry::Dir),
            ("/bin/ls".to_string(), Entry::Symlink("/bin/busybox".into())),
            (
                "/init".to_string(),
                Entry::File(0o755, b"#!/bin/sh\n".to_vec()),
            ),
            ("/e".to_string(), Entry::File(0o644, Vec::new())),
        ];
        let mut bytes = Vec::new();
        write_cpio(&mut bytes, &entries).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let back = read_cpio(&bytes);
        assert_eq!(back.len(), 4);
        assert_eq!(back[0], ("bin".into(), 0o040_755, Vec::new()));
        assert_eq!(
            back[1],
            ("bin/ls".into(), 0o120_777, b"/bin/busybox".to_vec())
        );
        assert_eq!(back[2], ("init".into(), 0o100_755, b"#!/bin/sh\n".to_vec()));
        assert_eq!(back[3], ("e".into(), 0o100_644, Vec::new()));
    }

    #[test]
    fn cpio_rejects_empty_names_and_missing_files() {
        let mut bytes = Vec::new();
        let err = write_cpio(&mut bytes, &[("/".into(), Entry::Dir)]).unwrap_err();
        assert!(err.contains("empty name"), "{err}");
        let missing = Entry::Copy(0o644, "/nonexistent/rexo-file".into());
        let err = write_cpio(&mut Vec::new(), &[("/x".into(), missing)]).unwrap_err();
        assert!(err.contains("/nonexistent/rexo-file"), "{err}");
    }

    #[test]
    fn tree_adds_parents_once() {
        let mut t = Tree::default();
        t.add("/usr/lib/a.so", Entry::File(0o644, Vec::new()));
        t.add("/usr/lib/b.so", Entry::File(0o644, Vec::new()));
        t.add("/usr/lib/a.so", Entry::File(0o600, Vec::new()));
        let names: Vec<&str> = t.entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["/usr", "/usr/lib", "/usr/lib/a.so", "/usr/lib/b.so"]
        );
    }

    #[test]
    fn parses_apt_cache_depends() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n \
                    |Depends: initramfs-tools\n  Depends: <linux-initramfs-tool>\n  \
                    PreDepends: init-system-helpers\n  Suggests: foo\n";
        assert_eq!(
            parse_depends(text),
            [
                "linux-image-6.1.0-56-amd64",
                "initramfs-tools",
                "init-system-helpers"
            ]
        );
        assert!(parse_depends("garbage\n\n").is_empty());
    }

    #[test]
    fn parses_ldd() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibnbd.so.0 => not found\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f66)\n\
                    \tstatically linked\n";
        assert_eq!(
            parse_ldd(text),
            [
                LddLine::Missing("libnbd.so.0".into()),
                LddLine::Found("/lib/x86_64-linux-gnu/libc.so.6".into()),
                LddLine::Found("/lib64/ld-linux-x86-64.so.2".into()),
            ]
        );
    }

    #[test]
    fn reads_module_depends() {
        let modinfo =
            b"\x7fELF...\0license=GPL\0depends=virtio,net_failover,virtio-ring\0vermagic=6.1\0";
        assert_eq!(
            module_depends(modinfo),
            ["virtio", "net_failover", "virtio_ring"]
        );
        assert!(module_depends(b"\0depends=\0name=x\0").is_empty());
        assert!(module_depends(b"no modinfo here").is_empty());
    }

    #[test]
    fn orders_modules_dependencies_first() {
        let graph: BTreeMap<&str, Vec<String>> = [
            (
                "virtio_net",
                vec!["virtio".to_string(), "failover".to_string()],
            ),
            ("virtio_pci", vec!["virtio".to_string()]),
            ("virtio", vec![]),
            ("failover", vec![]),
        ]
        .into();
        let deps = |name: &str| {
            graph
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no module {name}"))
        };
        assert_eq!(
            module_order(&["virtio_pci", "virtio_net"], deps).unwrap(),
            ["virtio", "virtio_pci", "failover", "virtio_net"]
        );
        let err = module_order(&["absent"], deps).unwrap_err();
        assert!(err.contains("absent"), "{err}");
        let cyclic = |name: &str| -> Result<Vec<String>> {
            Ok(vec![if name == "a" { "b" } else { "a" }.to_string()])
        };
        let err = module_order(&["a"], cyclic).unwrap_err();
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn guest_command_line_and_arguments() {
        let mut guest = Guest::new("nginx").unwrap();
        guest.append = "loglevel=4".into();
        guest.netdev_extra = "hostfwd=tcp:127.0.0.1:8080-:80".into();
        assert_eq!(
            guest.cmdline(),
            "console=ttyS0 quiet panic=-1 rexo.service=nginx loglevel=4"
        );
        let baseline = Baseline {
            kernel: "/k".into(),
            initramfs: "/i".into(),
            service: "nginx".into(),
            kernel_package: "linux-image-x".into(),
        };
        let args = guest.qemu_args(&baseline);
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("-kernel"), "/k");
        assert_eq!(after("-initrd"), "/i");
        assert_eq!(after("-M"), "q35");
        assert_eq!(
            after("-netdev"),
            "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80"
        );
    }

    #[test]
    fn a_failed_download_names_the_package() {
        let dir = std::env::temp_dir().join(format!("rexo-linux-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = apt_download("rexo-no-such-package", &dir).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.contains("`rexo-no-such-package`"), "{err}");
    }

    #[test]
    fn unknown_service_is_an_error() {
        let err = Guest::new("apache").unwrap_err();
        assert!(err.contains("apache") && err.contains("memcached"), "{err}");
        let err = build(Path::new("/nonexistent"), "apache").unwrap_err();
        assert!(err.contains("apache"), "{err}");
    }

    #[test]
    fn init_handles_every_service() {
        for service in SERVICES {
            assert!(INIT.contains(service), "{service}");
        }
        assert!(INIT.contains("echo \"linux: ready service=$service\""));
        assert!(MARKER.starts_with("linux: ready"));
        assert!(INIT.contains(&format!("echo \"{INIT_MARKER}\"")));
        assert!(INIT.contains(&format!("echo \"{MEMINFO_PREFIX} ")));
        assert!(INIT.contains(DRIVERS_FIO_JOBS));
        assert_eq!(files("drivers")[0].0, DRIVERS_FIO_JOBS);
        assert!(files("bench").is_empty());
        for (name, _) in BENCH_PROGRAMS
            .iter()
            .chain(FSBENCH_PROGRAMS)
            .chain(DRIVERS_PROGRAMS)
        {
            assert!(INIT.contains(name), "{name}");
        }
    }
}
