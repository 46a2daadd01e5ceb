//! `cargo xtask bench [NAME...] [--quick] [--rounds N] [--accel tcg|kvm]`: the benchmark
//! suite of issue 8, Rexo against a stock Debian Linux guest on the same QEMU machine
//! with the same devices, interleaved round by round (docs/bench.md).
//!
//! A round boots, in this order: Rexo's `noise` app (boot to ready, idle memory, OS
//! noise), Linux with `rexo.service=none` (boot to its init, idle memory), Rexo's
//! `diskbench`, Linux with `rexo.service=bench` (its noise, empty poll and fio), and
//! Rexo's `netbench` with its peer (empty poll); a boot whose figures no selected
//! benchmark needs is left out. The report is [`crate::bench_report`]'s.

use crate::Result;
use crate::args::Args;
use crate::bench_report::{self, Better, Context, Row};
use crate::diskimage::{self, Attach};
use crate::fsbench;
use crate::hostrt;
use crate::linux;
use crate::netpeer::{self, Peer};
use crate::qemu::{self, Accel, End, Machine, Media, Vm};
use rexo_devcheck::bench as devbench;
use rexo_devcheck::noise::{self, CoreNoise, NoiseLine};
use rexo_rtc::DateTime;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

/// What a benchmark needs from the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// QEMU start to the guest's first line of its own (Rexo's ready line, Linux's init).
    Boot,
    /// Memory in use after boot.
    Memory,
    /// Worst interruption of the noise loop.
    Noise,
    /// The cost of one receive call on an empty queue.
    EmptyPoll,
    /// 4 KiB random reads per second on a disk at a depth.
    RandRead(&'static str, u32),
    /// The bytes booted.
    ImageSize,
    /// HTTP requests per second for a file of this many KiB (Rexo's httpd, nginx).
    Http(u32),
    /// The 99th-percentile latency of those requests.
    HttpP99(u32),
    /// memcached operations per second, 90/10 get/set (Rexo's kv, memcached).
    Memcached,
    /// The 99th-percentile latency of memcached operations, one at a time per connection.
    MemcachedP99,
    /// QEMU start to the first HTTP response (Rexo's httpd, nginx).
    FirstRequest,
    /// UDP echo round trip (Rexo's netdemo, a C echo loop).
    UdpEcho,
    /// A phase of the file-system benchmark, per second (Rexo's fsbench on the Rexo
    /// file system, its C twin on ext4): `create`, `read`, `delete`, `randread-file`.
    FileSystem(&'static str),
}

/// One benchmark of the suite.
#[derive(Debug)]
struct Spec {
    name: &'static str,
    title: &'static str,
    unit: &'static str,
    better: Better,
    target: Option<f64>,
    source: Source,
}

/// The suite, in report order (the list; targets are Rexo's advantage).
const SUITE: &[Spec] = &[
    Spec {
        name: "boot-ready",
        title: "QEMU start to Rexo's ready line / Linux's init",
        unit: "ms",
        better: Better::Lower,
        target: Some(20.0),
        source: Source::Boot,
    },
    Spec {
        name: "boot-first-request",
        title: "QEMU start to the first HTTP response (the server's ready line, then one GET of the 1 KiB file on a fresh connection)",
        unit: "ms",
        better: Better::Lower,
        target: None,
        source: Source::FirstRequest,
    },
    Spec {
        name: "empty-poll",
        title: "one receive call on an empty queue (Rexo: NetDevice::receive on virtio-net; Linux: recv MSG_DONTWAIT on a UDP socket)",
        unit: "ns",
        better: Better::Lower,
        target: Some(5.0),
        source: Source::EmptyPoll,
    },
    Spec {
        name: "udp-echo",
        title: "UDP echo round trip from the host, 64-byte datagrams one at a time (Rexo: netdemo; Linux: a blocking recvfrom/sendto loop)",
        unit: "us",
        better: Better::Lower,
        target: Some(2.0),
        source: Source::UdpEcho,
    },
    Spec {
        name: "http-1k",
        title: "HTTP requests/s, 1 KiB file, wrk -t2 -c32 (32 keep-alive connections) (Rexo: httpd; Linux: nginx, a worker per core, sendfile)",
        unit: "req/s",
        better: Better::Higher,
        target: Some(2.0),
        source: Source::Http(1),
    },
    Spec {
        name: "http-1k-p99",
        title: "HTTP latency, 99th percentile, 1 KiB file: 32 keep-alive connections opened one by one, each one request at a time, every answer checked (xtask's client, the same on either transport: on user networking wrk's connections, opened at once, wait seconds in QEMU's host-side accept queue of one)",
        unit: "ms",
        better: Better::Lower,
        target: Some(2.0),
        source: Source::HttpP99(1),
    },
    Spec {
        name: "http-100k",
        title: "HTTP requests/s, 100 KiB file, wrk -t2 -c32",
        unit: "req/s",
        better: Better::Higher,
        target: Some(2.0),
        source: Source::Http(100),
    },
    Spec {
        name: "http-100k-p99",
        title: "HTTP latency, 99th percentile, 100 KiB file (the same client)",
        unit: "ms",
        better: Better::Lower,
        target: Some(2.0),
        source: Source::HttpP99(100),
    },
    Spec {
        name: "memcached",
        title: "memcached operations/s, memcaslap (memaslap) -T2 -c32, its 90/10 get/set of 100 B (Rexo: kv; Linux: memcached -t cores)",
        unit: "ops/s",
        better: Better::Higher,
        target: Some(2.0),
        source: Source::Memcached,
    },
    Spec {
        name: "memcached-p99",
        title: "memcached latency, 99th percentile: 32 connections each one request at a time, 90/10 get/set of 100 B over 1000 keys, every answer checked (xtask's client: memcaslap prints no percentiles)",
        unit: "ms",
        better: Better::Lower,
        target: Some(2.0),
        source: Source::MemcachedP99,
    },
    Spec {
        name: "randread-qd1-nvme",
        title: "4 KiB random reads, depth 1, NVMe (Rexo: diskbench; Linux: fio io_uring, O_DIRECT)",
        unit: "IOPS",
        better: Better::Higher,
        target: Some(1.5),
        source: Source::RandRead("nvme", 1),
    },
    Spec {
        name: "randread-qd32-nvme",
        title: "4 KiB random reads, depth 32, NVMe",
        unit: "IOPS",
        better: Better::Higher,
        target: Some(1.5),
        source: Source::RandRead("nvme", 32),
    },
    Spec {
        name: "randread-qd1-virtio-blk",
        title: "4 KiB random reads, depth 1, virtio-blk",
        unit: "IOPS",
        better: Better::Higher,
        target: Some(1.5),
        source: Source::RandRead("virtio-blk", 1),
    },
    Spec {
        name: "randread-qd32-virtio-blk",
        title: "4 KiB random reads, depth 32, virtio-blk",
        unit: "IOPS",
        better: Better::Higher,
        target: Some(1.5),
        source: Source::RandRead("virtio-blk", 32),
    },
    Spec {
        name: "small-files-create",
        title: "small files created: 10,000 of 1 KiB in 100 directories, then sync (Rexo: fsbench on the Rexo file system; Linux: the same steps in C on ext4), a 1.25 GiB virtio-blk disk",
        unit: "files/s",
        better: Better::Higher,
        target: Some(3.0),
        source: Source::FileSystem("create"),
    },
    Spec {
        name: "small-files-read",
        title: "small files read back and checked, from a cold cache (Linux: after drop_caches)",
        unit: "files/s",
        better: Better::Higher,
        target: Some(3.0),
        source: Source::FileSystem("read"),
    },
    Spec {
        name: "small-files-delete",
        title: "small files deleted (unlink, rmdir), then sync",
        unit: "files/s",
        better: Better::Higher,
        target: None,
        source: Source::FileSystem("delete"),
    },
    Spec {
        name: "fs-randread",
        title: "4 KiB random reads of a 1 GiB file, one at a time (Rexo: FileSystem::read_at_in_place through a handle; Linux: pread, O_DIRECT)",
        unit: "IOPS",
        better: Better::Higher,
        target: None,
        source: Source::FileSystem("randread-file"),
    },
    Spec {
        name: "noise",
        title: "OS noise: worst interruption of a fixed work quantum on every core (longest minus median quantum)",
        unit: "us",
        better: Better::Lower,
        target: Some(10.0),
        source: Source::Noise,
    },
    Spec {
        name: "idle-memory",
        title: "memory held after boot: the guest's RAM minus what the OS leaves free (Rexo: free frames; Linux: MemAvailable)",
        unit: "MiB",
        better: Better::Lower,
        target: Some(10.0),
        source: Source::Memory,
    },
    Spec {
        name: "image-size",
        title: "bytes booted (Rexo: the kernel ELF without debug information; Linux: vmlinuz + uncompressed initramfs of `none`)",
        unit: "MiB",
        better: Better::Lower,
        target: None,
        source: Source::ImageSize,
    },
];

/// The benchmarks `names` select (each a full name or a prefix ending at a `-`, e.g.
/// `randread`, `http`); all of them when `names` is empty.
fn select(names: &[String]) -> Result<Vec<&'static Spec>> {
    if names.is_empty() {
        return Ok(SUITE.iter().collect());
    }
    let chosen: Vec<&Spec> = SUITE
        .iter()
        .filter(|s| {
            names
                .iter()
                .any(|n| s.name == n || s.name.starts_with(&format!("{n}-")))
        })
        .collect();
    if let Some(unknown) = names.iter().find(|n| {
        !SUITE
            .iter()
            .any(|s| s.name == n.as_str() || s.name.starts_with(&format!("{n}-")))
    }) {
        return Err(format!(
            "unknown benchmark `{unknown}`; valid: boot, api, drivers, {}",
            SUITE.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(chosen)
}

/// How long and how often.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    rounds: usize,
    /// fio's `--runtime` per job, seconds.
    fio_runtime_s: u32,
    /// `recv` calls Linux times (Rexo's netbench does [`devbench::EMPTY_POLLS`]).
    polls: u32,
    quick: bool,
    accel: Accel,
}

/// Refuses `--pairs` above 1 when no server benchmark is selected: only the server
/// boots get the multi-queue NIC, so the option would be ignored.
fn pairs_need_a_server(pairs: u16, boots: Boots) -> Result<()> {
    if pairs > 1 && !boots.servers() {
        return Err(format!(
            "`--pairs {pairs}` sets the NIC of the server benchmarks (http, memcached, \
             udp-echo), and none is selected"
        ));
    }
    Ok(())
}

/// The boots a round makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Boots {
    rexo_noise: bool,
    linux_none: bool,
    rexo_disk: bool,
    /// Linux's `bench` service (its noise, empty poll and fio).
    linux_bench: bool,
    rexo_net: bool,
    /// Rexo's httpd and Linux's nginx.
    http: bool,
    /// Rexo's kv and Linux's memcached.
    memcached: bool,
    /// Rexo's netdemo and Linux's UDP echo program (of the `bench` image, booted for
    /// the echo alone, not as the `bench` service).
    udp_echo: bool,
    /// Rexo's fsbench and Linux's `fsbench` service.
    file_system: bool,
}

impl Boots {
    /// The boots one at a time, each true when it is made.
    fn flags(&self) -> [bool; 9] {
        [
            self.rexo_noise,
            self.linux_none,
            self.rexo_disk,
            self.linux_bench,
            self.rexo_net,
            self.http,
            self.memcached,
            self.udp_echo,
            self.file_system,
        ]
    }

    /// Whether `self` and `other` make a boot in common.
    fn shares(&self, other: &Boots) -> bool {
        self.flags()
            .iter()
            .zip(other.flags())
            .any(|(&mine, theirs)| mine && theirs)
    }

    /// Whether the Linux `bench` image is needed: for its service, or for its UDP echo
    /// program.
    fn bench_image(&self) -> bool {
        self.linux_bench || self.udp_echo
    }

    /// Whether a server benchmark (http, memcached, udp-echo) boots: the boots that
    /// `--pairs` and the network reach concern.
    fn servers(&self) -> bool {
        self.http || self.memcached || self.udp_echo
    }
}

fn boots_for(specs: &[&Spec]) -> Boots {
    let mut b = Boots::default();
    for s in specs {
        match s.source {
            Source::Boot | Source::Memory => {
                b.rexo_noise = true;
                b.linux_none = true;
            }
            Source::Noise => {
                b.rexo_noise = true;
                b.linux_bench = true;
            }
            Source::EmptyPoll => {
                b.rexo_net = true;
                b.linux_bench = true;
            }
            Source::RandRead(..) => {
                b.rexo_disk = true;
                b.linux_bench = true;
            }
            Source::Http(_) | Source::HttpP99(_) | Source::FirstRequest => b.http = true,
            Source::Memcached | Source::MemcachedP99 => b.memcached = true,
            Source::UdpEcho => b.udp_echo = true,
            Source::FileSystem(_) => b.file_system = true,
            Source::ImageSize => {}
        }
    }
    b
}

/// Both guests' machine: type, cores, memory (the same for both).
const CORES: u32 = 2;
const MEM_MIB: u64 = 512;
/// Each benchmark disk's size (filled, not sparse, so that neither guest reads holes).
const DISK_BYTES: u64 = 32 << 20;
/// The NIC both guests get.
const NIC_MODEL: &str = "virtio-net-pci";
/// The virtio-net queue pairs both guests' NIC has on the tap network unless `--pairs`
/// says otherwise.
const DEFAULT_PAIRS: u16 = 1;

/// The NIC both guests get with `pairs` queue pairs: [`NIC_MODEL`], multi-queue with an
/// MSI-X vector per queue (and one for configuration) when more than one.
fn nic_model(pairs: u16) -> String {
    if pairs > 1 {
        format!("{NIC_MODEL},mq=on,vectors={}", 2 * pairs + 2)
    } else {
        NIC_MODEL.to_string()
    }
}
/// The disks both guests get: suite name, QEMU device, Linux's block device.
const DISKS: [(&str, &str, &str); 2] = [
    ("nvme", "nvme,serial=rexo0", "nvme0n1"),
    ("virtio-blk", "virtio-blk-pci", "vda"),
];
/// Seconds a Rexo boot may take.
const REXO_TIMEOUT_S: u64 = 180;
/// Seconds a Linux boot may take (TCG).
const LINUX_TIMEOUT_S: u64 = 300;

/// `cargo xtask bench [NAME...] [--quick] [--rounds N] [--accel tcg|kvm] [--pairs N]`.
pub fn command(words: Vec<String>) -> Result<()> {
    let mut args = Args::new(
        "bench",
        &["--quick", "--rounds", "--accel", "--pairs"],
        words,
    );
    let mut names = Vec::new();
    let mut quick = false;
    let mut rounds = None;
    let mut pairs = DEFAULT_PAIRS;
    let mut accel = Accel::Tcg;
    while let Some(word) = args.next_word() {
        match word.as_str() {
            "--quick" => quick = true,
            "--rounds" => rounds = Some(args.number("--rounds")?),
            "--pairs" => pairs = args.number("--pairs")?,
            "--accel" => {
                accel = match args.choice("--accel", &["tcg", "kvm"])?.as_str() {
                    "kvm" => Accel::Kvm,
                    _ => Accel::Tcg,
                }
            }
            flag if flag.starts_with("--") => return Err(args.unknown(flag)),
            name => names.push(name.to_string()),
        }
    }
    let plan = Plan {
        rounds: rounds.unwrap_or(if quick { 3 } else { 7 }),
        fio_runtime_s: if quick { 1 } else { 5 },
        polls: if quick { 200_000 } else { 1_000_000 },
        quick,
        accel,
    };
    if plan.rounds == 0 {
        return Err("`--rounds 0`: at least one round is needed".into());
    }
    if !(1..=CORES as u16).contains(&pairs) {
        return Err(format!(
            "`--pairs {pairs}`: the guests' NIC has 1 to {CORES} queue pairs (one per core at most)"
        ));
    }
    let specs = select(&names)?;
    let boots = boots_for(&specs);
    pairs_need_a_server(pairs, boots)?;
    let mut needs = vec![crate::deps::Need::Qemu];
    if boots.http {
        needs.push(crate::deps::Need::Wrk);
    }
    if boots.memcached {
        needs.push(crate::deps::Need::MemcachedTools);
    }
    // The run tries a tap device ([`servers::Reach::choose`]), which only root can make.
    if crate::deps::is_root() {
        needs.push(crate::deps::Need::IpRoute);
    }
    crate::deps::ensure(&needs)?;
    let root = crate::root();
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let kernel = crate::build::kernel()?;
    let none = linux::build(&root, "none")?;
    let nginx = if boots.http {
        Some(linux::build(&root, "nginx")?)
    } else {
        None
    };
    let memcached = if boots.memcached {
        Some(linux::build(&root, "memcached")?)
    } else {
        None
    };
    let bench = if boots.bench_image() {
        Some(linux::build(&root, "bench")?)
    } else {
        None
    };
    let file_system = if boots.file_system {
        Some((linux::build(&root, "fsbench")?, fsbench::templates(&dir)?))
    } else {
        None
    };
    // Made once, before the first round; its namespace goes when the run ends.
    let reach = servers::Reach::choose(pairs);
    if let servers::Reach::User(why) = &reach
        && boots.servers()
    {
        if pairs > 1 {
            return Err(format!(
                "`--pairs {pairs}` needs the tap network (QEMU's user networking has one queue pair): {why}"
            ));
        }
        eprintln!("xtask: server benchmarks through QEMU's user networking: {why}");
    }
    let mut samples = Samples::default();
    for round in 1..=plan.rounds {
        eprintln!("xtask: bench round {round}/{}", plan.rounds);
        run_round(
            &kernel,
            &none,
            bench.as_ref(),
            &dir,
            boots,
            &plan,
            &mut samples,
        );
        if let Some(nginx) = &nginx {
            servers::http_round((&kernel, nginx), &dir, &reach, &plan, &mut samples);
        }
        if let Some(memcached) = &memcached {
            servers::memcached_round((&kernel, memcached), &dir, &reach, &plan, &mut samples);
        }
        if let (true, Some(bench)) = (boots.udp_echo, &bench) {
            servers::udp_round((&kernel, bench), &dir, &reach, &plan, &mut samples);
        }
        if let Some((linux, templates)) = &file_system {
            file_system_round((&kernel, linux), templates, &dir, &plan, &mut samples);
        }
    }
    // The templates stay for the next run of this xtask binary (`fsbench::templates`);
    // the copy the last boot wrote goes.
    if file_system.is_some() {
        let _ = std::fs::remove_file(dir.join("fs-disk.img"));
    }
    for (name, _, _) in DISKS {
        let _ = std::fs::remove_file(dir.join(format!("suite-{name}.img")));
    }
    let rows: Vec<Row> = specs
        .iter()
        .map(|s| row(s, &samples, &kernel, &none, &plan))
        .collect();
    let ctx = context(&plan, &reach.describe(), pairs)?;
    let md = bench_report::markdown(&rows, &ctx);
    print!("{md}");
    bench_report::write(&dir, &rows, &ctx)
}

/// Every round's figures, by side and [`Source`]-derived key, plus the failures.
#[derive(Debug, Default)]
struct Samples {
    rexo: BTreeMap<String, Vec<f64>>,
    linux: BTreeMap<String, Vec<f64>>,
    rexo_failed: Failures,
    linux_failed: Failures,
}

/// One side's failures, each reason kept once: by the key of the figure it cost, or,
/// for a failure that names no figure, by the boot it stopped.
#[derive(Debug, Default)]
struct Failures {
    by_key: BTreeMap<String, Vec<String>>,
    /// The boot (its flag alone set) and why.
    by_boot: Vec<(Boots, String)>,
}

impl Failures {
    /// Why `spec`'s figure is missing: the failures of that figure, else those of the
    /// boots that give it, else that the guest printed none.
    fn why_missing(&self, spec: &Spec) -> String {
        if let Some(whys) = self.by_key.get(&key(spec.source)) {
            return whys.join("; ");
        }
        let giving = boots_for(&[spec]);
        let whys: Vec<&str> = self
            .by_boot
            .iter()
            .filter(|(boot, _)| boot.shares(&giving))
            .map(|(_, why)| why.as_str())
            .collect();
        if whys.is_empty() {
            "no figure in the guest's output".to_string()
        } else {
            whys.join("; ")
        }
    }
}

/// What one boot measured: figures by sample key, and why figures are missing.
#[derive(Debug, Default, PartialEq)]
struct Readout {
    figures: Vec<(String, f64)>,
    /// `(key, why)`: a figure that failed.
    failed: Vec<(String, String)>,
    /// Failures that name no figure: they stand for every figure the boot did not give.
    unplaced: Vec<String>,
}

impl From<Vec<(String, f64)>> for Readout {
    fn from(figures: Vec<(String, f64)>) -> Self {
        Self {
            figures,
            ..Self::default()
        }
    }
}

impl Samples {
    fn add(&mut self, rexo: bool, key: impl Into<String>, value: f64) {
        let map = if rexo {
            &mut self.rexo
        } else {
            &mut self.linux
        };
        map.entry(key.into()).or_default().push(value);
    }

    /// The failures of one side.
    fn failures(&mut self, rexo: bool) -> &mut Failures {
        if rexo {
            &mut self.rexo_failed
        } else {
            &mut self.linux_failed
        }
    }

    /// Records that the figure of `key` failed, and why.
    fn fail(&mut self, rexo: bool, key: String, why: String) {
        let whys = self.failures(rexo).by_key.entry(key).or_default();
        if !whys.contains(&why) {
            whys.push(why);
        }
    }

    /// Records that `boot` (its flag alone set) gave none of its figures, or not all,
    /// for a reason that names none of them.
    fn fail_boot(&mut self, rexo: bool, boot: Boots, why: String) {
        let by_boot = &mut self.failures(rexo).by_boot;
        if !by_boot.iter().any(|(b, w)| *b == boot && *w == why) {
            by_boot.push((boot, why));
        }
    }
}

/// The samples' key of a source.
fn key(source: Source) -> String {
    match source {
        Source::Boot => "boot".into(),
        Source::Memory => "memory".into(),
        Source::Noise => "noise".into(),
        Source::EmptyPoll => "empty-poll".into(),
        Source::RandRead(disk, depth) => format!("randread-qd{depth}-{disk}"),
        Source::ImageSize => "image".into(),
        Source::Http(kib) => format!("http-{kib}k"),
        Source::HttpP99(kib) => format!("http-{kib}k-p99"),
        Source::Memcached => "memcached".into(),
        Source::MemcachedP99 => "memcached-p99".into(),
        Source::FirstRequest => "first-request".into(),
        Source::UdpEcho => "udp-echo".into(),
        Source::FileSystem(phase) => format!("fs-{phase}"),
    }
}

/// The report row of `spec`.
fn row(spec: &Spec, samples: &Samples, kernel: &Path, none: &linux::Baseline, plan: &Plan) -> Row {
    let mut row = Row {
        name: spec.name.into(),
        title: spec.title.into(),
        unit: spec.unit.into(),
        better: spec.better,
        target: spec.target,
        rexo: Err(String::new()),
        linux: Err(String::new()),
        rounds: plan.rounds,
        note: String::new(),
    };
    let side = |map: &BTreeMap<String, Vec<f64>>, failures: &Failures| {
        map.get(&key(spec.source))
            .cloned()
            .ok_or_else(|| failures.why_missing(spec))
    };
    match spec.source {
        Source::ImageSize => {
            let size = |paths: &[&Path]| -> std::result::Result<Vec<f64>, String> {
                let mut total = 0;
                for p in paths {
                    total += std::fs::metadata(p)
                        .map_err(|e| format!("{}: {e}", p.display()))?
                        .len();
                }
                Ok(vec![total as f64 / f64::from(1 << 20)])
            };
            row.rexo = size(&[kernel]);
            row.linux = size(&[&none.kernel, &none.initramfs]);
            // Measured once, not per round.
            row.rounds = 1;
        }
        _ => {
            row.rexo = side(&samples.rexo, &samples.rexo_failed);
            row.linux = side(&samples.linux, &samples.linux_failed);
            let counts = (
                row.rexo.as_ref().map_or(0, Vec::len),
                row.linux.as_ref().map_or(0, Vec::len),
            );
            let mut notes = Vec::new();
            if counts != (plan.rounds, plan.rounds) && counts != (0, 0) {
                notes.push(format!(
                    "samples: Rexo {}, Linux {} of {} rounds",
                    counts.0, counts.1, plan.rounds
                ));
            }
            let median = |map: &BTreeMap<String, Vec<f64>>, key: &str| {
                map.get(key)
                    .and_then(|v| crate::bench::stats(v))
                    .map_or("-".to_string(), |s| bench_report::number(s.median))
            };
            match spec.source {
                Source::Noise => {
                    notes.push(format!(
                        "median quantum Rexo {} ns, Linux {} ns ({} quanta of {} steps per \
                         core, after {} unrecorded)",
                        median(&samples.rexo, "noise-quantum"),
                        median(&samples.linux, "noise-quantum"),
                        noise::QUANTA,
                        noise::STEPS,
                        noise::WARM_UP
                    ));
                    let realtime = |map: &BTreeMap<String, Vec<f64>>| {
                        let runs = map.get("noise-realtime").map_or(&[][..], |v| v);
                        let held = runs.iter().filter(|&&v| v > 0.0).count();
                        format!("{held} of {}", runs.len())
                    };
                    notes.push(format!(
                        "QEMU's vCPU threads real-time (SCHED_FIFO) during the loop: Rexo {} \
                         rounds, Linux {} rounds",
                        realtime(&samples.rexo),
                        realtime(&samples.linux)
                    ));
                }
                Source::Memory => notes.push(format!(
                    "both of the same {MEM_MIB} MiB: Rexo's figure holds its kernel image, \
                     heap (512 KiB at boot, grown 512 KiB at a time: kernel/src/mem/heap.rs), \
                     page tables, stacks and what the firmware keeps; Linux's its kernel \
                     image and page structures reserved at boot (MemTotal {} MiB) and what \
                     it uses. Counted from the usable RAM and MemTotal instead, which leaves \
                     out Linux's reservations but not Rexo's kernel image: Rexo {} MiB, \
                     Linux {} MiB",
                    median(&samples.linux, "memory-total"),
                    median(&samples.rexo, "memory-usable"),
                    median(&samples.linux, "memory-usable")
                )),
                Source::UdpEcho => {
                    let total = |map: &BTreeMap<String, Vec<f64>>, key: &str| {
                        map.get(key).map_or(0.0, |v| v.iter().sum())
                    };
                    notes.push(format!(
                        "each datagram's echo waited for {} ms, after {} unmeasured; over \
                         the rounds, datagrams unanswered within it: Rexo {}, Linux {}; \
                         echoes that came later (discarded): Rexo {}, Linux {}",
                        crate::benchclient::UDP_ECHO_WAIT.as_millis(),
                        crate::benchclient::UDP_WARM_UP,
                        total(&samples.rexo, "udp-echo-unanswered"),
                        total(&samples.linux, "udp-echo-unanswered"),
                        total(&samples.rexo, "udp-echo-late"),
                        total(&samples.linux, "udp-echo-late")
                    ));
                }
                Source::FileSystem("randread-file") => {
                    let ratio = |map: &BTreeMap<String, Vec<f64>>| {
                        let median = |key: &str| {
                            map.get(key)
                                .and_then(|v| crate::bench::stats(v))
                                .map(|s| s.median)
                        };
                        match (median("fs-randread-file"), median("fs-randread-raw")) {
                            (Some(file), Some(raw)) if raw > 0.0 => format!(
                                "{} of the raw disk's {} IOPS",
                                bench_report::number(file / raw),
                                bench_report::number(raw)
                            ),
                            _ => "-".into(),
                        }
                    };
                    notes.push(format!(
                        "file over raw device (the same offsets in the disk's first GiB; \
                         target: within 10%): Rexo {}, Linux {}",
                        ratio(&samples.rexo),
                        ratio(&samples.linux)
                    ));
                }
                _ => {}
            }
            row.note = notes.join("; ");
        }
    }
    row
}

/// The run's heading: date, host, QEMU, the guests' machine (the server boots' NIC with
/// `servers_pairs` queue pairs), the transport.
fn context(plan: &Plan, servers: &str, servers_pairs: u16) -> Result<Context> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .map_err(|e| format!("cannot run qemu-system-x86_64 --version: {e}"))?;
    Ok(Context {
        date: utc_now(),
        machine: format!("{cpu}, {cores} host cores"),
        accel: match plan.accel {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
        .into(),
        qemu,
        rounds: plan.rounds,
        quick: plan.quick,
        guest_machine: format!(
            "q35, -cpu {}, {CORES} cores, {MEM_MIB} MiB, -kernel (Rexo: PVH ELF; Linux: \
             Debian's bzImage + initramfs); the boot, noise, memory, empty-poll and \
             randread boots: {NIC_MODEL} on -netdev socket, an NVMe (nvme,serial=rexo0) and \
             a virtio-blk-pci disk of {} MiB each (raw, filled); the HTTP, memcached and \
             UDP echo boots: no disk, {} on the transport below; the file-system boots: \
             {NIC_MODEL} on -netdev socket, one {} disk (a fresh copy of its image)",
            if plan.accel == Accel::Kvm {
                "host"
            } else {
                "max"
            },
            DISK_BYTES >> 20,
            nic_model(servers_pairs),
            fsbench::DISK_DEVICE
        ),
        transport: format!(
            "the empty poll: QEMU's `socket` network backend (UDP on 127.0.0.1) to \
             xtask's peer; HTTP, memcached and UDP echo: {servers}; the same load \
             generators for both guests, 32 connections"
        ),
    })
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil(secs)
}

/// `YYYY-MM-DD HH:MM UTC` of `secs` after 1970-01-01 00:00 UTC (the kernel's calendar,
/// `rexo_rtc::DateTime`).
fn civil(secs: u64) -> String {
    let moment = DateTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        moment.year, moment.month, moment.day, moment.hour, moment.minute
    )
}

// ---------------------------------------------------------------------------
// One round.

/// The machine both guests boot: `media` on q35 with the suite's cores, memory and
/// accelerator.
fn machine(media: Media, plan: &Plan) -> Vm {
    let mut vm = Vm::pvh(Machine::Q35, Path::new(""), "");
    vm.media = media;
    vm.cores = CORES;
    vm.mem_mib = MEM_MIB;
    vm.accel = plan.accel;
    vm
}

/// The devices both guests get: the disks (fresh, filled images in `dir`) and the NIC
/// on `nic` (QEMU arguments from [`netpeer`]).
fn devices(dir: &Path, nic: Vec<String>) -> Result<Vec<String>> {
    let mut args = nic;
    for (i, (name, device, _)) in DISKS.iter().enumerate() {
        let image = dir.join(format!("suite-{name}.img"));
        fill_image(&image)?;
        args.extend(diskimage::args(i, Attach::Device(device), &image)?);
    }
    Ok(args)
}

/// Writes `path` as a [`DISK_BYTES`] image of non-zero bytes, so that the host's file
/// has every block allocated and both guests read data, not holes.
fn fill_image(path: &Path) -> Result<()> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = std::fs::File::create(path).map_err(fail)?;
    let chunk = vec![0xA5u8; 1 << 20];
    for _ in 0..DISK_BYTES >> 20 {
        file.write_all(&chunk).map_err(fail)?;
    }
    Ok(())
}

/// A NIC whose frames go to a host socket nobody reads (for boots that do not use the
/// network): the socket, kept open for the boot, and QEMU's arguments.
fn idle_nic() -> Result<(UdpSocket, Vec<String>)> {
    let bind =
        || UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a UDP socket: {e}"));
    let port = |s: &UdpSocket| {
        s.local_addr()
            .map(|a| a.port())
            .map_err(|e| format!("UDP socket without an address: {e}"))
    };
    let sink = bind()?;
    let host_port = port(&sink)?;
    let qemu_port = port(&bind()?)?;
    Ok((sink, netpeer::nic_args(0, NIC_MODEL, host_port, qemu_port)))
}

/// Boots `vm` until QEMU ends (or `stop` says so), logging to `log`; the serial lines.
fn run(vm: &Vm, dir: &Path, log: &Path, timeout_s: u64) -> Result<qemu::Capture> {
    qemu::run_captured(
        &vm.args(dir)?,
        Duration::from_secs(timeout_s),
        Some(log),
        |line| line.text.contains("linux: failed:"),
    )
}

/// Runs the round's boots, adding what they measured to `samples`.
fn run_round(
    kernel: &Path,
    none: &linux::Baseline,
    bench: Option<&linux::Baseline>,
    dir: &Path,
    boots: Boots,
    plan: &Plan,
    samples: &mut Samples,
) {
    let rexo = |app: &str| Media::Pvh {
        kernel: kernel.to_path_buf(),
        append: format!("app={app}"),
        initrd: None,
    };
    if boots.rexo_noise {
        let outcome = boot_idle(dir, plan, rexo("noise"), "suite-rexo-noise", REXO_TIMEOUT_S)
            .and_then(|(c, rt)| read_rexo_noise(&c).map(|f| with_realtime(f, rt).into()));
        let boot = Boots {
            rexo_noise: true,
            ..Boots::default()
        };
        record(samples, true, boot, outcome);
    }
    if boots.linux_none {
        let outcome = linux_media(none, "")
            .and_then(|m| boot_idle(dir, plan, m, "suite-linux-none", LINUX_TIMEOUT_S))
            .and_then(|(c, _)| read_linux_none(&c).map(Readout::from));
        let boot = Boots {
            linux_none: true,
            ..Boots::default()
        };
        record(samples, false, boot, outcome);
    }
    if boots.rexo_disk {
        let outcome = boot_idle(
            dir,
            plan,
            rexo("diskbench"),
            "suite-rexo-disk",
            REXO_TIMEOUT_S,
        )
        .map(|(c, _)| read_rexo_disks(&c));
        let boot = Boots {
            rexo_disk: true,
            ..Boots::default()
        };
        record(samples, true, boot, outcome);
    }
    if let (true, Some(bench)) = (boots.linux_bench, bench) {
        let append = format!(
            "rexo.noise_quanta={} rexo.polls={} rexo.fio_runtime={}",
            noise::QUANTA,
            plan.polls,
            plan.fio_runtime_s
        );
        let outcome = linux_media(bench, &append)
            .and_then(|m| boot_idle(dir, plan, m, "suite-linux-bench", LINUX_TIMEOUT_S))
            .map(|(c, rt)| {
                let mut readout = read_linux_bench(&c);
                readout.figures = with_realtime(readout.figures, rt);
                readout
            });
        let boot = Boots {
            linux_bench: true,
            ..Boots::default()
        };
        record(samples, false, boot, outcome);
    }
    if boots.rexo_net {
        let outcome = Peer::start_bench(0, NIC_MODEL).and_then(|(peer, nic)| {
            let capture = devices(dir, nic).and_then(|args| {
                let mut vm = machine(rexo("netbench"), plan);
                vm.extra = args;
                run(&vm, dir, &dir.join("suite-rexo-net.log"), REXO_TIMEOUT_S)
            });
            // The peer's counts are the driver benchmark's business, not the suite's.
            let _ = peer.finish();
            read_rexo_net(&capture?).map(Readout::from)
        });
        let boot = Boots {
            rexo_net: true,
            ..Boots::default()
        };
        record(samples, true, boot, outcome);
    }
}

/// The file-system benchmark's boots: Rexo's `fsbench` app, then Linux's `fsbench`
/// service, each with an idle NIC and a fresh copy of its disk image.
fn file_system_round(
    (kernel, linux): (&Path, &linux::Baseline),
    templates: &fsbench::Templates,
    dir: &Path,
    plan: &Plan,
    samples: &mut Samples,
) {
    let boots = [
        (
            true,
            Ok(Media::Pvh {
                kernel: kernel.to_path_buf(),
                append: "app=fsbench".into(),
                initrd: None,
            }),
            &templates.rexo,
            "suite-rexo-fs",
        ),
        (
            false,
            linux_media(linux, ""),
            &templates.ext4,
            "suite-linux-fs",
        ),
    ];
    for (rexo, media, template, name) in boots {
        let timeout_s = if rexo {
            REXO_TIMEOUT_S
        } else {
            LINUX_TIMEOUT_S
        };
        let outcome = media.and_then(|media| {
            let (_sink, mut args) = idle_nic()?;
            args.extend(fsbench::disk(template, &dir.join("fs-disk.img"))?);
            let mut vm = machine(media, plan);
            vm.extra = args;
            let log = dir.join(format!("{name}.log"));
            let capture = run(&vm, dir, &log, timeout_s)?;
            fsbench::read(capture.lines.iter().map(|l| l.text.as_str()))
                .map(|figures| {
                    let figures: Vec<_> = figures
                        .into_iter()
                        .map(|(phase, rate)| (format!("fs-{phase}"), rate))
                        .collect();
                    Readout::from(figures)
                })
                .map_err(|e| format!("{e} (log: {})", log.display()))
        });
        let boot = Boots {
            file_system: true,
            ..Boots::default()
        };
        record(samples, rexo, boot, outcome);
    }
}

/// Boots `media` with the devices and an idle NIC; fails unless QEMU exits 0.
fn boot_idle(
    dir: &Path,
    plan: &Plan,
    media: Media,
    name: &str,
    timeout_s: u64,
) -> Result<(qemu::Capture, Option<Result<usize>>)> {
    let (_sink, nic) = idle_nic()?;
    let mut vm = machine(media, plan);
    vm.extra = devices(dir, nic)?;
    let log = dir.join(format!("{name}.log"));
    let (capture, realtime) = run_noise_window(&vm, dir, &log, timeout_s)?;
    if capture.end != End::Exited(0) {
        return Err(format!(
            "{name}: QEMU ended with {:?} (log: {})",
            capture.end,
            log.display()
        ));
    }
    Ok((capture, realtime))
}

/// [`run`], holding the OS-noise window when the guest runs the noise loop
/// (docs/bench.md): at its [`noise::READY`] line QEMU's vCPU threads go real-time
/// ([`hostrt`]) and the guest is told to start; at [`noise::MEASURED`] they go back.
/// Also returns how going real-time went, when the guest asked for it.
fn run_noise_window(
    vm: &Vm,
    dir: &Path,
    log: &Path,
    timeout_s: u64,
) -> Result<(qemu::Capture, Option<Result<usize>>)> {
    let mut realtime: Option<Result<usize>> = None;
    let mut args = vm.args(dir)?;
    // Named vCPU threads, so that the window can find them.
    args.extend(["-name".to_string(), "guest,debug-threads=on".to_string()]);
    let capture = qemu::run_steered(
        &args,
        Duration::from_secs(timeout_s),
        Some(log),
        |line, steer| {
            let pid = steer.pid();
            let mut switch = |on: bool| hostrt::set_realtime(pid, on);
            if noise_window_line(&line.text, &mut realtime, &mut switch)
                && let Err(why) = steer.type_bytes(noise::GO)
            {
                eprintln!("xtask: noise: {why} (the guest starts after its own wait)");
            }
            line.text.contains("linux: failed:")
        },
    )?;
    Ok((capture, realtime))
}

/// What the noise window does at the guest's `line`, `switch` putting QEMU's threads
/// real-time or back ([`hostrt::set_realtime`]): at [`noise::READY`] they go real-time,
/// `realtime` keeping how that went, and the answer is true (the guest is to be told to
/// start); at [`noise::MEASURED`] they go back, whatever going real-time gave (one that
/// failed may have left threads it could not put back).
fn noise_window_line(
    line: &str,
    realtime: &mut Option<Result<usize>>,
    switch: &mut dyn FnMut(bool) -> Result<usize>,
) -> bool {
    if line.contains(noise::READY) {
        let outcome = switch(true);
        if let Err(why) = &outcome {
            eprintln!("xtask: noise loop without real-time vCPU threads: {why}");
        }
        *realtime = Some(outcome);
        return true;
    }
    if line.contains(noise::MEASURED)
        && let Err(why) = switch(false)
    {
        eprintln!("xtask: noise: cannot end real-time scheduling: {why}");
    }
    false
}

/// `figures` of a noise boot with `noise-realtime`: 1 when the loop ran with real-time
/// vCPU threads, 0 when going real-time failed (the note counts the rounds).
fn with_realtime(
    mut figures: Vec<(String, f64)>,
    realtime: Option<Result<usize>>,
) -> Vec<(String, f64)> {
    if let Some(outcome) = realtime {
        figures.push((
            "noise-realtime".into(),
            f64::from(u8::from(outcome.is_ok())),
        ));
    }
    figures
}

/// The server benchmarks: each guest boots its server with a virtio-net NIC reached by
/// the host through the run's [`servers::Reach`] (a tap device in a network namespace
/// when the host allows it, else QEMU's user networking with forwarded ports), and the
/// same load generators drive both: Debian's `wrk` and `memcaslap` (`loadgen`) for the
/// rates, our own clients (`benchclient`) for the latency percentiles, the first
/// request and the UDP round trip.
mod servers {
    use super::*;
    use crate::benchclient::{Measure, Reading};
    use crate::netclient::Forwards;
    use crate::tapnet::TapNet;
    use std::net::SocketAddr;

    /// How the host reaches the guests' services for the whole run.
    pub(super) enum Reach {
        /// A tap device in a network namespace: the guest is [`crate::tapnet::GUEST`].
        Tap(TapNet),
        /// QEMU user networking with free host ports forwarded; why not a tap device.
        User(String),
    }

    impl Reach {
        /// A tap device with `pairs` queues (the guests' NIC gets as many queue pairs)
        /// when it can be made, else user networking with the reason.
        pub(super) fn choose(pairs: u16) -> Self {
            match TapNet::create("bench", pairs) {
                Ok(tap) => Self::Tap(tap),
                Err(why) => Self::User(why),
            }
        }

        /// What the report says.
        pub(super) fn describe(&self) -> String {
            match self {
                Self::Tap(tap) => tap.describe(),
                Self::User(why) => format!(
                    "QEMU's user networking with free ports on 127.0.0.1 forwarded to the guest (no tap device: {why})"
                ),
            }
        }
    }

    /// One boot's way to its services: forwarded ports, or the tap network.
    pub(super) enum Route<'a> {
        /// Ports on 127.0.0.1.
        Forwarded(Forwards),
        /// The guest's own address, inside `TapNet`'s namespace.
        Tap(&'a TapNet),
    }

    impl Route<'_> {
        /// Where the guest's TCP port `port` is reached.
        fn tcp(&self, port: u16) -> Result<SocketAddr> {
            match self {
                Self::Forwarded(forwards) => forwards.tcp(port),
                Self::Tap(_) => Ok(SocketAddr::from((crate::tapnet::GUEST, port))),
            }
        }

        /// Where the guest's UDP port `port` is reached.
        fn udp(&self, port: u16) -> Result<SocketAddr> {
            match self {
                Self::Forwarded(forwards) => forwards.udp(port),
                Self::Tap(_) => Ok(SocketAddr::from((crate::tapnet::GUEST, port))),
            }
        }

        /// The network namespace the load generators run in, if any.
        fn netns(&self) -> Option<&str> {
            match self {
                Self::Forwarded(_) => None,
                Self::Tap(tap) => Some(tap.netns()),
            }
        }

        /// Makes `measure` where the guest is reachable: in this process, or as
        /// `xtask bench-client` inside the namespace.
        fn measure(&self, measure: &Measure) -> Result<Reading> {
            let Self::Tap(tap) = self else {
                return measure.run();
            };
            let exe = std::env::current_exe().map_err(|e| format!("no xtask binary: {e}"))?;
            let mut command = tap.command(exe);
            command.arg("bench-client").args(measure.words());
            let what = format!("xtask bench-client {}", measure.words().join(" "));
            let limit = measure.duration() + crate::loadgen::GRACE;
            Reading::parse(&crate::loadgen::stdout_of(&mut command, &what, limit)?)
        }
    }

    /// Seconds each load runs (quick runs are shorter).
    fn load_time(plan: &Plan) -> Duration {
        Duration::from_secs(if plan.quick { 1 } else { 5 })
    }

    /// Connections of each load (issue 6's figure), and the load generators' threads
    /// (one per host core of these machines).
    const CONNECTIONS: usize = 32;
    const THREADS: usize = 2;
    /// memcached values, bytes.
    const VALUE_BYTES: usize = 100;

    /// Named figures a load measured: `(name, value)` pairs.
    type Figures = Vec<(String, f64)>;

    /// A load run against the guest's services, given when the server said it was ready.
    type Load<'a> = &'a dyn Fn(&Route, Duration) -> Result<Figures>;

    /// Rexo booting `app`, with `ip=` on the tap network (no DHCP server there).
    fn rexo_server(kernel: &Path, app: &str, reach: &Reach) -> Media {
        let ip = match reach {
            Reach::Tap(_) => format!(" {}", crate::tapnet::REXO_IP),
            Reach::User(_) => String::new(),
        };
        Media::Pvh {
            kernel: kernel.to_path_buf(),
            append: format!("app={app}{ip}"),
            initrd: None,
        }
    }

    /// Boots `media` with a NIC on `reach` (the `tcp` and `udp` guest ports forwarded on
    /// user networking); once the serial shows `ready`, runs `load`, then stops QEMU.
    /// The load's figures.
    fn serve(
        plan: &Plan,
        dir: &Path,
        reach: &Reach,
        (media, name): (Media, &str),
        (tcp, udp): (&[u16], &[u16]),
        ready: &str,
        load: Load,
    ) -> Result<Figures> {
        let mut vm = machine(media, plan);
        let route = match reach {
            Reach::Tap(tap) => {
                vm.extra = tap.qemu_args(&nic_model(tap.queues()));
                Route::Tap(tap)
            }
            Reach::User(_) => {
                let forwards = Forwards::free(tcp, udp)?;
                vm.extra = forwards.qemu_args(0, NIC_MODEL);
                Route::Forwarded(forwards)
            }
        };
        let log = dir.join(format!("{name}.log"));
        let mut figures = None;
        let pairs = match route {
            Route::Tap(tap) => tap.queues(),
            Route::Forwarded(_) => 1,
        };
        let stop = |line: &qemu::Line| {
            if line.text.contains("linux: failed:") || line.text.contains("FAILED") {
                return true;
            }
            if let Some(why) = pairs_unused(&line.text, pairs) {
                figures = Some(Err(format!("{name}: {why}")));
                return true;
            }
            if figures.is_none() && line.text.contains(ready) {
                figures = Some(load(&route, line.at));
                return true;
            }
            false
        };
        let timeout = Duration::from_secs(LINUX_TIMEOUT_S);
        let args = vm.args(dir)?;
        match route.netns() {
            Some(netns) => qemu::run_captured_in(netns, &args, timeout, Some(&log), stop)?,
            None => qemu::run_captured(&args, timeout, Some(&log), stop)?,
        };
        figures.unwrap_or_else(|| {
            Err(format!(
                "{name}: the server never said `{ready}` (log: {})",
                log.display()
            ))
        })
    }

    /// Why a guest's serial `line` shows it not using the NIC's `pairs` queue pairs, if
    /// it does: Linux's init lists eth0's queues (`linux: eth0 queues rx-0 rx-1 ...`),
    /// Rexo's servers say how many cores serve (`...; 2 of 2 core(s) serve, ...`).
    pub(super) fn pairs_unused(line: &str, pairs: u16) -> Option<String> {
        if let Some((_, queues)) = line.split_once("linux: eth0 queues ") {
            let rx = queues.split_whitespace().filter(|q| q.starts_with("rx-"));
            let count = rx.count();
            return (count != usize::from(pairs)).then(|| {
                format!("Linux's eth0 uses {count} receive queue(s), not the NIC's {pairs}")
            });
        }
        let (_, serve) = line.rsplit_once("; ")?;
        let (serving, rest) = serve.split_once(" of ")?;
        if !rest.contains(" core(s) serve") {
            return None;
        }
        (serving != pairs.to_string()).then(|| {
            format!("Rexo serves on {serving} core(s), not one per each of the NIC's {pairs} queue pairs")
        })
    }

    /// One side of a server round: what boots, its log's name, the serial line that
    /// says it serves, and the load that measures it.
    struct Side<'a> {
        media: Result<Media>,
        name: &'a str,
        ready: &'a str,
        load: Load<'a>,
    }

    /// Boots Rexo's side, then Linux's, with `ports` reached, and records both as `boot`
    /// (its flag alone set).
    fn both(
        (plan, dir, reach): (&Plan, &Path, &Reach),
        (samples, boot): (&mut Samples, Boots),
        ports: (&[u16], &[u16]),
        rexo: Side<'_>,
        linux: Side<'_>,
    ) {
        for (is_rexo, side) in [(true, rexo), (false, linux)] {
            let outcome = side.media.and_then(|media| {
                serve(
                    plan,
                    dir,
                    reach,
                    (media, side.name),
                    ports,
                    side.ready,
                    side.load,
                )
                .map(Readout::from)
            });
            record(samples, is_rexo, boot, outcome);
        }
    }

    /// Rexo's httpd and Linux's nginx, 1 KiB and 100 KiB files.
    pub(super) fn http_round(
        (kernel, nginx): (&Path, &linux::Baseline),
        dir: &Path,
        reach: &Reach,
        plan: &Plan,
        samples: &mut Samples,
    ) {
        let time = load_time(plan);
        let files = |names: [&'static str; 2]| {
            move |route: &Route, ready: Duration| -> Result<Figures> {
                let address = route.tcp(80)?;
                let first = route
                    .measure(&Measure::FirstRequest {
                        address,
                        path: names[0].into(),
                    })?
                    .figure;
                let mut figures = vec![(
                    "first-request".to_string(),
                    ready.as_secs_f64() * 1000.0 + first,
                )];
                for (path, kib) in names.iter().zip([1, 100]) {
                    let url = format!("http://{address}{path}");
                    let rate =
                        crate::loadgen::wrk(route.netns(), &url, THREADS, CONNECTIONS, time)?;
                    figures.push((format!("http-{kib}k"), rate));
                    let p99 = route
                        .measure(&Measure::HttpP99 {
                            address,
                            path: path.to_string(),
                            connections: CONNECTIONS,
                            seconds: time.as_secs(),
                        })?
                        .figure;
                    figures.push((format!("http-{kib}k-p99"), p99));
                }
                Ok(figures)
            }
        };
        let (rexo_files, linux_files) = (files(["/1k.txt", "/100k.txt"]), files(["/1k", "/100k"]));
        both(
            (plan, dir, reach),
            (
                samples,
                Boots {
                    http: true,
                    ..Boots::default()
                },
            ),
            (&[80], &[]),
            Side {
                media: Ok(rexo_server(kernel, "httpd", reach)),
                name: "suite-rexo-httpd",
                ready: "httpd: serving",
                load: &rexo_files,
            },
            Side {
                media: linux_media(nginx, ""),
                name: "suite-linux-nginx",
                ready: "linux: ready service=nginx",
                load: &linux_files,
            },
        );
    }

    /// Rexo's kv and Linux's memcached.
    pub(super) fn memcached_round(
        (kernel, memcached): (&Path, &linux::Baseline),
        dir: &Path,
        reach: &Reach,
        plan: &Plan,
        samples: &mut Samples,
    ) {
        let time = load_time(plan);
        let load = |route: &Route, _ready: Duration| -> Result<Figures> {
            let address = route.tcp(11211)?;
            let ops = crate::loadgen::memaslap(
                route.netns(),
                address,
                THREADS,
                CONNECTIONS,
                VALUE_BYTES,
                time,
            )?;
            let p99 = route
                .measure(&Measure::MemcachedP99 {
                    address,
                    connections: CONNECTIONS,
                    seconds: time.as_secs(),
                })?
                .figure;
            Ok(vec![
                ("memcached".into(), ops),
                ("memcached-p99".into(), p99),
            ])
        };
        both(
            (plan, dir, reach),
            (
                samples,
                Boots {
                    memcached: true,
                    ..Boots::default()
                },
            ),
            (&[11211], &[]),
            Side {
                media: Ok(rexo_server(kernel, "kv", reach)),
                name: "suite-rexo-kv",
                ready: "kv: serving memcached on",
                load: &load,
            },
            Side {
                media: linux_media(memcached, ""),
                name: "suite-linux-memcached",
                ready: "linux: ready service=memcached",
                load: &load,
            },
        );
    }

    /// The median UDP round trip to the guest's port 7, with its counts of late echoes
    /// and unanswered datagrams (`udp-echo-late`, `udp-echo-unanswered`).
    fn udp_echo(route: &Route, _ready: Duration) -> Result<Figures> {
        let address = route.udp(7)?;
        let reading = route.measure(&Measure::UdpEcho { address })?;
        let mut figures = vec![("udp-echo".to_string(), reading.figure)];
        for (name, count) in reading.counts {
            figures.push((format!("udp-echo-{name}"), count as f64));
        }
        Ok(figures)
    }

    /// Rexo's netdemo (UDP echo on port 7) and Linux's echo program.
    pub(super) fn udp_round(
        (kernel, bench): (&Path, &linux::Baseline),
        dir: &Path,
        reach: &Reach,
        plan: &Plan,
        samples: &mut Samples,
    ) {
        both(
            (plan, dir, reach),
            (
                samples,
                Boots {
                    udp_echo: true,
                    ..Boots::default()
                },
            ),
            (&[7], &[7]),
            Side {
                media: Ok(rexo_server(kernel, "netdemo", reach)),
                name: "suite-rexo-udp",
                ready: "netdemo: echoing TCP and UDP",
                load: &udp_echo,
            },
            Side {
                media: linux_media(bench, "rexo.udp_echo=7"),
                name: "suite-linux-udp",
                ready: "udp-echo serving port=7",
                load: &udp_echo,
            },
        );
    }
}

/// Linux booting `baseline`'s service on the suite's machine, with the extra kernel
/// words `append`.
fn linux_media(baseline: &linux::Baseline, append: &str) -> Result<Media> {
    let mut guest = linux::Guest::new(&baseline.service).map_err(|e| e.to_string())?;
    guest.cores = CORES;
    guest.mem_mib = MEM_MIB;
    guest.append = append.to_string();
    Ok(Media::Pvh {
        kernel: baseline.kernel.clone(),
        append: guest.cmdline(),
        initrd: Some(baseline.initramfs.clone()),
    })
}

/// Adds what `boot` (its flag alone set) measured, and its failures, to `samples`.
fn record(samples: &mut Samples, rexo: bool, boot: Boots, outcome: Result<Readout>) {
    let who = if rexo { "Rexo" } else { "Linux" };
    let readout = outcome.unwrap_or_else(|why| Readout {
        unplaced: vec![why],
        ..Readout::default()
    });
    for (key, value) in readout.figures {
        samples.add(rexo, key, value);
    }
    for (key, why) in readout.failed {
        eprintln!("xtask: {who}: {key}: {why}");
        samples.fail(rexo, key, why);
    }
    for why in readout.unplaced {
        eprintln!("xtask: {who}: {why}");
        samples.fail_boot(rexo, boot, why);
    }
}

// ---------------------------------------------------------------------------
// Reading the guests' lines.

/// The worst interruption over the cores' noise summaries, in us.
fn worst_interruption_us(cores: &[CoreNoise]) -> Option<f64> {
    cores
        .iter()
        .map(|c| c.worst_interruption_ns() as f64 / 1e3)
        .reduce(f64::max)
}

/// The `noise` app's memory line: usable and free bytes.
type Memory = Option<(u64, u64)>;

/// Noise and memory lines: each core's quanta and the memory line.
fn read_noise<'a>(lines: impl Iterator<Item = &'a str>) -> Result<(Vec<CoreNoise>, Memory)> {
    let (mut cores, mut memory) = (Vec::new(), None);
    for line in lines {
        match noise::parse(line) {
            Some(Ok(NoiseLine::Core(c))) => cores.push(c),
            Some(Ok(NoiseLine::Memory { usable, free })) => memory = Some((usable, free)),
            Some(Err(why)) => return Err(why),
            None => {}
        }
    }
    Ok((cores, memory))
}

/// The noise figures of one boot: the worst interruption (us) and the slowest core's
/// median quantum (ns, for the note: it shows the work is the same on both guests).
fn noise_figures(cores: &[CoreNoise]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(worst) = worst_interruption_us(cores) {
        out.push(("noise".to_string(), worst));
    }
    if let Some(median) = cores.iter().map(|c| c.median_ns).max() {
        out.push(("noise-quantum".to_string(), median as f64));
    }
    out
}

/// Rexo's `noise` boot: boot to ready (ms), memory used (MiB), worst interruption (us).
fn read_rexo_noise(capture: &qemu::Capture) -> Result<Vec<(String, f64)>> {
    let ready = capture
        .serial()
        .find(|l| qemu::Ready::parse(&l.text).is_some())
        .ok_or("Rexo printed no ready line")?
        .at;
    let (cores, memory) = read_noise(capture.serial().map(|l| l.text.as_str()))?;
    let mut out = vec![("boot".to_string(), ready.as_secs_f64() * 1e3)];
    if let Some((usable, free)) = memory {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        out.push(("memory".into(), MEM_MIB as f64 - mib(free)));
        out.push(("memory-usable".into(), mib(usable.saturating_sub(free))));
    }
    out.extend(noise_figures(&cores));
    Ok(out)
}

/// Parses `linux: meminfo total_kib=T available_kib=A` into MemTotal and MemAvailable
/// in MiB.
fn parse_meminfo(line: &str) -> Option<(f64, f64)> {
    let rest = &line[line.find(linux::MEMINFO_PREFIX)? + linux::MEMINFO_PREFIX.len()..];
    let field = |key: &str| -> Option<f64> {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    let (total, available) = (field("total_kib=")?, field("available_kib=")?);
    Some((total / 1024.0, available / 1024.0))
}

/// Linux's `none` boot: boot to its init (ms) and memory in use (MiB).
fn read_linux_none(capture: &qemu::Capture) -> Result<Vec<(String, f64)>> {
    let init = capture
        .serial()
        .find(|l| l.text.trim() == linux::INIT_MARKER)
        .ok_or("Linux printed no `linux: init` line")?
        .at;
    let mut out = vec![("boot".to_string(), init.as_secs_f64() * 1e3)];
    if let Some((total, available)) = capture.serial().find_map(|l| parse_meminfo(&l.text)) {
        out.push(("memory".into(), MEM_MIB as f64 - available));
        out.push(("memory-usable".into(), total - available));
        out.push(("memory-total".into(), total));
    }
    Ok(out)
}

/// The queue depths of the random-read rows.
const DEPTHS: [u32; 2] = [1, 32];

/// The keys of `disk`'s random-read figures, one per depth of [`DEPTHS`].
fn randread_keys(disk: &str) -> Vec<String> {
    DEPTHS
        .iter()
        .map(|depth| format!("randread-qd{depth}-{disk}"))
        .collect()
}

/// Rexo's `diskbench`: IOPS per disk and depth; a disk's `FAILED` line fails its
/// figures (named by the driver of its `devbench-device` line).
fn read_rexo_disks(capture: &qemu::Capture) -> Readout {
    let mut drivers = BTreeMap::new();
    let mut readout = Readout::default();
    for line in capture.serial() {
        if let Some((kind, index, driver)) = devbench::parse_device(&line.text)
            && kind == "disk"
        {
            drivers.insert(index, driver);
        }
        match devbench::parse(&line.text) {
            Some(Ok(f)) if f.kind == "disk" => {
                let Some(depth) = DEPTHS
                    .into_iter()
                    .find(|depth| f.name == format!("randread-qd{depth}"))
                else {
                    continue;
                };
                match drivers.get(&f.index) {
                    Some(driver) => readout
                        .figures
                        .push((format!("randread-qd{depth}-{driver}"), f.per_second())),
                    None => readout
                        .unplaced
                        .push(format!("disk {} has no devbench-device line", f.index)),
                }
            }
            Some(Err(why)) => {
                let driver = failed_disk(&line.text).and_then(|index| drivers.get(&index));
                match driver {
                    Some(driver) => readout.failed.extend(
                        randread_keys(driver)
                            .into_iter()
                            .map(|key| (key, why.clone())),
                    ),
                    None => readout.unplaced.push(why),
                }
            }
            _ => {}
        }
    }
    readout
}

/// The index of the disk a `devbench disk INDEX FAILED: why` line names.
fn failed_disk(line: &str) -> Option<usize> {
    let rest = &line[line.find("devbench disk ")? + "devbench disk ".len()..];
    let (index, why) = rest.split_once(' ')?;
    why.starts_with("FAILED:").then(|| index.parse().ok())?
}

/// Rexo's `netbench`: the empty poll of NIC 0, ns per call.
fn read_rexo_net(capture: &qemu::Capture) -> Result<Vec<(String, f64)>> {
    let mut errors = Vec::new();
    for line in capture.serial() {
        match devbench::parse(&line.text) {
            Some(Ok(f)) if f.kind == "nic" && f.index == 0 && f.name == "empty-poll" => {
                return Ok(vec![(
                    "empty-poll".into(),
                    f.ns as f64 / f.count.max(1) as f64,
                )]);
            }
            Some(Err(why)) => errors.push(why),
            _ => {}
        }
    }
    Err(if errors.is_empty() {
        "netbench printed no empty-poll figure".into()
    } else {
        errors.join("; ")
    })
}

/// One `linuxbench ...` line of the `bench` service.
#[derive(Clone, Debug, PartialEq)]
enum LinuxLine {
    /// `linuxbench empty-poll count=N ns=T stray=S`: ns per call.
    EmptyPoll(f64),
    /// `linuxbench disk DEV randread-qdD error=E iops=X` (error 0).
    RandRead(String, u32, f64),
    /// A figure that failed (`FAILED: why`, or fio's error above 0): the keys of the
    /// figures it cost, and why.
    Failed(Vec<String>, String),
}

/// Reads a `linuxbench` line other than noise (see [`noise::parse`]): `None` if it is
/// none, `Some(Err)` if it is malformed.
fn parse_linux(line: &str) -> Option<Result<LinuxLine>> {
    let rest = line[line.find("linuxbench ")? + "linuxbench ".len()..].trim_end();
    let mut words = rest.split_whitespace();
    let field = |key: &str| -> Option<f64> {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    let malformed = || Some(Err(format!("malformed Linux line `{rest}`")));
    match words.next()? {
        "empty-poll" => match (field("count="), field("ns=")) {
            (Some(count), Some(ns)) if count > 0.0 => Some(Ok(LinuxLine::EmptyPoll(ns / count))),
            _ if rest.contains("FAILED") => Some(Ok(LinuxLine::Failed(
                vec!["empty-poll".into()],
                format!("Linux: {rest}"),
            ))),
            _ => malformed(),
        },
        "disk" => {
            let dev = words.next()?;
            let what = words.next()?;
            let disk = DISKS
                .iter()
                .find(|d| d.2 == dev)
                .map_or(dev.to_string(), |d| d.0.to_string());
            if what == "FAILED:" {
                return Some(Ok(LinuxLine::Failed(
                    randread_keys(&disk),
                    format!(
                        "Linux: fio on {dev}: {}",
                        words.collect::<Vec<_>>().join(" ")
                    ),
                )));
            }
            let Some(depth) = what
                .strip_prefix("randread-qd")
                .and_then(|d| d.parse().ok())
            else {
                return malformed();
            };
            match (field("error="), field("iops=")) {
                (Some(e), _) if e != 0.0 => Some(Ok(LinuxLine::Failed(
                    vec![format!("randread-qd{depth}-{disk}")],
                    format!("Linux: fio on {dev} ended with error {e}"),
                ))),
                (Some(_), Some(iops)) => Some(Ok(LinuxLine::RandRead(disk, depth, iops))),
                _ => malformed(),
            }
        }
        _ => None,
    }
}

/// Linux's `bench` boot: noise, empty poll, fio's IOPS, each failure by the figures it
/// cost where it names them.
fn read_linux_bench(capture: &qemu::Capture) -> Readout {
    let mut readout = Readout::default();
    let text: Vec<&str> = capture.serial().map(|l| l.text.as_str()).collect();
    match read_noise(text.iter().copied().filter(|l| l.contains("linuxbench "))) {
        Ok((cores, _)) => readout.figures.extend(noise_figures(&cores)),
        Err(why) => readout.failed.push(("noise".into(), why)),
    }
    for line in &text {
        match parse_linux(line) {
            Some(Ok(LinuxLine::EmptyPoll(ns))) => readout.figures.push(("empty-poll".into(), ns)),
            Some(Ok(LinuxLine::RandRead(disk, depth, iops))) => readout
                .figures
                .push((format!("randread-qd{depth}-{disk}"), iops)),
            Some(Ok(LinuxLine::Failed(keys, why))) => readout
                .failed
                .extend(keys.into_iter().map(|key| (key, why.clone()))),
            Some(Err(why)) => readout.unplaced.push(why),
            None => {}
        }
    }
    if !text.iter().any(|l| l.contains("linuxbench done")) {
        readout
            .unplaced
            .push("the Linux bench guest did not finish (`linuxbench done`)".into());
    }
    readout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Line;

    fn capture(lines: &[(u64, &str)]) -> qemu::Capture {
        qemu::Capture {
            lines: lines
                .iter()
                .map(|(ms, text)| Line {
                    at: Duration::from_millis(*ms),
                    text: text.to_string(),
                    stderr: false,
                })
                .collect(),
            end: End::Exited(0),
            wall: Duration::from_secs(1),
        }
    }

    #[test]
    fn selects_by_name_and_prefix() {
        assert_eq!(select(&[]).unwrap().len(), SUITE.len());
        let names = |words: &[&str]| -> Vec<&str> {
            select(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
                .unwrap()
                .iter()
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(names(&["noise"]), ["noise"]);
        assert_eq!(
            names(&["randread-qd1"]),
            ["randread-qd1-nvme", "randread-qd1-virtio-blk"]
        );
        assert_eq!(
            names(&["http"]),
            ["http-1k", "http-1k-p99", "http-100k", "http-100k-p99"]
        );
        assert_eq!(names(&["http-1k"]), ["http-1k", "http-1k-p99"]);
        assert_eq!(names(&["memcached"]), ["memcached", "memcached-p99"]);
        let err = select(&["fast".to_string()]).unwrap_err();
        assert!(
            err.contains("`fast`") && err.contains("idle-memory"),
            "{err}"
        );
    }

    #[test]
    fn boots_only_what_is_needed() {
        let of = |names: &[&str]| {
            boots_for(&select(&names.iter().map(|w| w.to_string()).collect::<Vec<_>>()).unwrap())
        };
        assert_eq!(of(&["image-size"]), Boots::default(), "nothing to boot");
        let b = of(&["small-files", "fs-randread"]);
        assert!(b.file_system && !b.rexo_disk && !b.linux_bench && !b.rexo_noise);
        let b = of(&["http"]);
        assert!(b.http && !b.memcached && !b.rexo_noise && !b.linux_bench);
        assert!(of(&["memcached"]).memcached);
        assert!(of(&["memcached-p99"]).memcached && of(&["http-100k-p99"]).http);
        // The echo needs the bench image, not a boot of its `bench` service.
        let b = of(&["udp-echo"]);
        assert!(b.udp_echo && b.bench_image() && !b.linux_bench && !b.http);
        assert!(of(&["noise"]).bench_image() && !of(&["http"]).bench_image());
        let b = of(&["boot-ready"]);
        assert!(b.rexo_noise && b.linux_none && !b.linux_bench && !b.rexo_disk);
        let b = of(&["randread"]);
        assert!(b.rexo_disk && b.linux_bench && !b.rexo_noise && !b.rexo_net);
    }

    #[test]
    fn reads_rexo_noise_boot() {
        let c = capture(&[
            (20, "[ 1 us c0] INFO  rexo: booted"),
            (
                40,
                "[ 2 us c0] INFO  rexo: ready cores=2 mem=511 MiB boot=900 us",
            ),
            (
                41,
                "[ 3 us c0] INFO  noise memory usable=536870912 free=469762048",
            ),
            (
                50,
                "[ 4 us c0] INFO  noise core=0 quanta=10 min_ns=1 median_ns=2000 p99_ns=3 max_ns=12000",
            ),
            (
                51,
                "[ 5 us c0] INFO  noise core=1 quanta=10 min_ns=1 median_ns=2000 p99_ns=3 max_ns=52000",
            ),
        ]);
        let figures = read_rexo_noise(&c).unwrap();
        assert_eq!(
            figures,
            [
                ("boot".to_string(), 40.0),
                ("memory".to_string(), 64.0),
                ("memory-usable".to_string(), 64.0),
                ("noise".to_string(), 50.0),
                ("noise-quantum".to_string(), 2000.0)
            ]
        );
        assert!(read_rexo_noise(&capture(&[(1, "nothing")])).is_err());
    }

    #[test]
    fn reads_linux_none_boot() {
        let c = capture(&[
            (900, "SeaBIOS"),
            (4000, "linux: init"),
            (4500, "linux: meminfo total_kib=466144 available_kib=425184"),
            (4600, "linux: ready service=none"),
        ]);
        assert_eq!(
            read_linux_none(&c).unwrap(),
            [
                ("boot".to_string(), 4000.0),
                ("memory".to_string(), 512.0 - 415.218_75),
                ("memory-usable".to_string(), 40.0),
                ("memory-total".to_string(), 455.218_75)
            ]
        );
        assert!(read_linux_none(&capture(&[(1, "linux: ready service=none")])).is_err());
    }

    #[test]
    fn reads_rexo_disks_by_driver() {
        let c = capture(&[
            (1, "devbench-device disk 0 nvme"),
            (2, "devbench disk 0 seqread count=100 ns=1"),
            (
                3,
                "devbench disk 0 randread-qd1 count=2000 ns=100000000 depth=1",
            ),
            (4, "devbench-device disk 1 virtio-blk"),
            (
                5,
                "devbench disk 1 randread-qd32 count=10000 ns=100000000 depth=32",
            ),
        ]);
        assert_eq!(
            read_rexo_disks(&c).figures,
            [
                ("randread-qd1-nvme".to_string(), 20000.0),
                ("randread-qd32-virtio-blk".to_string(), 100000.0)
            ]
        );
        let orphan = capture(&[(1, "devbench disk 0 randread-qd1 count=1 ns=1 depth=1")]);
        assert!(read_rexo_disks(&orphan).unplaced[0].contains("no devbench-device"));
        let failed = capture(&[
            (1, "devbench-device disk 0 nvme"),
            (2, "devbench disk 0 FAILED: timeout"),
            (3, "devbench disk 1 FAILED: unnamed"),
        ]);
        let readout = read_rexo_disks(&failed);
        assert_eq!(
            readout.failed,
            [
                (
                    "randread-qd1-nvme".to_string(),
                    "disk 0 failed: timeout".to_string()
                ),
                (
                    "randread-qd32-nvme".to_string(),
                    "disk 0 failed: timeout".to_string()
                )
            ],
            "a disk's failure is its own figures'"
        );
        assert_eq!(readout.unplaced, ["disk 1 failed: unnamed"]);
    }

    #[test]
    fn reads_rexo_empty_poll() {
        let c = capture(&[(1, "devbench nic 0 empty-poll count=100000 ns=9000000")]);
        assert_eq!(
            read_rexo_net(&c).unwrap(),
            [("empty-poll".to_string(), 90.0)]
        );
        assert!(read_rexo_net(&capture(&[(1, "devbench nic 0 FAILED: x")])).is_err());
    }

    #[test]
    fn the_noise_window_goes_back_at_measured_even_after_a_failed_switch() {
        for outcome in [Ok(2), Err("chrt refused 13".to_string())] {
            let mut switches = Vec::new();
            let mut realtime = None;
            let mut switch = |on: bool| {
                switches.push(on);
                if on { outcome.clone() } else { Ok(2) }
            };
            let ready = format!("[ 1 us c0] INFO  {}", noise::READY);
            assert!(noise_window_line(&ready, &mut realtime, &mut switch));
            assert!(!noise_window_line(
                "noise core=0 ...",
                &mut realtime,
                &mut switch
            ));
            let measured = format!("[ 9 us c0] INFO  {}", noise::MEASURED);
            assert!(!noise_window_line(&measured, &mut realtime, &mut switch));
            assert_eq!(switches, [true, false], "{outcome:?}");
            assert_eq!(realtime, Some(outcome));
        }
    }

    #[test]
    fn reads_linux_bench_boot() {
        let c = capture(&[
            (
                1,
                "linuxbench noise core=0 quanta=5 min_ns=1 median_ns=1000 p99_ns=3 max_ns=9000",
            ),
            (
                2,
                "linuxbench noise core=1 quanta=5 min_ns=1 median_ns=1000 p99_ns=3 max_ns=5000",
            ),
            (3, "linuxbench empty-poll count=1000 ns=5000000 stray=0"),
            (4, "linuxbench disk nvme0n1 randread-qd1 error=0 iops=4321"),
            (
                5,
                "linuxbench disk vda FAILED: fio: engine io_uring not loadable",
            ),
            (6, "linuxbench done"),
        ]);
        let readout = read_linux_bench(&c);
        assert_eq!(
            readout.figures,
            [
                ("noise".to_string(), 8.0),
                ("noise-quantum".to_string(), 1000.0),
                ("empty-poll".to_string(), 5000.0),
                ("randread-qd1-nvme".to_string(), 4321.0)
            ]
        );
        let fio = "Linux: fio on vda: fio: engine io_uring not loadable".to_string();
        assert_eq!(
            readout.failed,
            [
                ("randread-qd1-virtio-blk".to_string(), fio.clone()),
                ("randread-qd32-virtio-blk".to_string(), fio)
            ]
        );
        assert!(readout.unplaced.is_empty());
        assert_eq!(
            parse_linux("linuxbench disk vda randread-qd32 error=5 iops=1"),
            Some(Ok(LinuxLine::Failed(
                vec!["randread-qd32-virtio-blk".into()],
                "Linux: fio on vda ended with error 5".into()
            )))
        );
        assert!(matches!(
            parse_linux("linuxbench disk vda randread-qdX error=0 iops=1"),
            Some(Err(_))
        ));
        assert!(parse_linux("linux: ready").is_none());
        let nothing = read_linux_bench(&capture(&[(1, "linuxbench empty-poll FAILED: bind")]));
        assert!(nothing.failed[0].1.contains("bind"));
        assert!(nothing.unplaced[0].contains("linuxbench done"));
    }

    /// A plan of `rounds` quick rounds.
    fn plan(rounds: usize) -> Plan {
        Plan {
            rounds,
            fio_runtime_s: 1,
            polls: 1,
            quick: true,
            accel: Accel::Tcg,
        }
    }

    /// The suite's row `name` from `samples`.
    fn row_of(name: &str, samples: &Samples, rounds: usize) -> Row {
        let spec = SUITE.iter().find(|s| s.name == name).expect("a benchmark");
        let none = linux::Baseline {
            kernel: "/vmlinuz".into(),
            initramfs: "/initramfs".into(),
            service: "none".into(),
            kernel_package: "linux-image".into(),
        };
        row(spec, samples, Path::new("/kernel"), &none, &plan(rounds))
    }

    #[test]
    fn a_missing_figure_is_blamed_on_its_own_failure_only() {
        let linux_bench = capture(&[
            (1, "linuxbench empty-poll FAILED: bind"),
            (2, "linuxbench disk nvme0n1 randread-qd1 error=0 iops=4321"),
            (3, "linuxbench disk vda FAILED: x"),
            (4, "linuxbench done"),
        ]);
        let mut samples = Samples::default();
        let bench = Boots {
            linux_bench: true,
            ..Boots::default()
        };
        record(
            &mut samples,
            false,
            bench,
            Ok(read_linux_bench(&linux_bench)),
        );
        let none = Boots {
            linux_none: true,
            ..Boots::default()
        };
        record(&mut samples, false, none, Err("the none boot hung".into()));
        let http = Boots {
            http: true,
            ..Boots::default()
        };
        record(&mut samples, true, http, Err("httpd never served".into()));
        let disk = row_of("randread-qd1-virtio-blk", &samples, 1);
        assert_eq!(disk.linux, Err("Linux: fio on vda: x".into()));
        assert_eq!(
            row_of("boot-ready", &samples, 1).linux,
            Err("the none boot hung".into()),
            "a boot's failure is of the figures it gives"
        );
        assert_eq!(
            row_of("randread-qd1-nvme", &samples, 1).linux,
            Ok(vec![4321.0])
        );
        assert_eq!(
            row_of("http-1k", &samples, 1).rexo,
            Err("httpd never served".into())
        );
        assert_eq!(
            row_of("memcached", &samples, 1).rexo,
            Err("no figure in the guest's output".into()),
            "httpd's failure is not kv's"
        );
    }

    #[test]
    fn a_side_with_fewer_than_half_the_rounds_gets_no_verdict() {
        let mut samples = Samples::default();
        samples.add(true, "memcached", 90000.0);
        for ops in [30000.0, 31000.0, 32000.0] {
            samples.add(false, "memcached", ops);
        }
        let short = row_of("memcached", &samples, 3);
        assert_eq!(
            short.verdict(),
            bench_report::Verdict::Incomplete("Rexo 1, Linux 3 of 3 rounds".into())
        );
        samples.add(true, "memcached", 91000.0);
        assert!(matches!(
            row_of("memcached", &samples, 3).verdict(),
            bench_report::Verdict::Measured { .. }
        ));
        let exe = std::env::current_exe().expect("the test binary");
        let files = linux::Baseline {
            kernel: exe.clone(),
            initramfs: exe.clone(),
            service: "none".into(),
            kernel_package: "linux-image".into(),
        };
        let spec = SUITE.iter().find(|s| s.name == "image-size").unwrap();
        let image = row(spec, &samples, &exe, &files, &plan(3));
        assert!(
            matches!(image.verdict(), bench_report::Verdict::Measured { .. }),
            "the image size is measured once: {:?}",
            image.verdict()
        );
    }

    #[test]
    fn pairs_without_a_server_benchmark_are_refused() {
        let boots = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            boots_for(&select(&names).unwrap())
        };
        let err = pairs_need_a_server(2, boots(&["randread"])).unwrap_err();
        assert!(
            err.contains("--pairs 2") && err.contains("none is selected"),
            "{err}"
        );
        assert!(pairs_need_a_server(2, boots(&["http-1k", "randread"])).is_ok());
        assert!(
            pairs_need_a_server(2, boots(&[])).is_ok(),
            "every benchmark"
        );
        assert!(pairs_need_a_server(1, boots(&["boot-ready"])).is_ok());
    }

    #[test]
    fn meminfo_and_dates() {
        assert_eq!(
            parse_meminfo("linux: meminfo total_kib=2048 available_kib=1024"),
            Some((2.0, 1.0))
        );
        assert_eq!(parse_meminfo("linux: meminfo total_kib=x"), None);
        assert_eq!(civil(0), "1970-01-01 00:00 UTC");
        assert_eq!(civil(1_795_475_400), "2026-11-23 23:10 UTC");
    }

    #[test]
    fn both_guests_must_use_the_nics_queue_pairs() {
        assert_eq!(nic_model(1), "virtio-net-pci");
        assert_eq!(nic_model(2), crate::testcases::VIRTIO_NET_TWO_PAIRS);
        let unused = servers::pairs_unused;
        assert_eq!(unused("linux: eth0 queues rx-0 rx-1 tx-0 tx-1 ", 2), None);
        assert!(unused("linux: eth0 queues rx-0 tx-0 ", 2).is_some());
        assert_eq!(unused("linux: eth0 queues rx-0 tx-0 ", 1), None);
        let httpd = "httpd: serving http://10.0.2.15:80/ (10.0.2.15/24 fixed by ip=) on virtio-net with rexo-tcp; 2 of 2 core(s) serve, a stack per queue pair of nic 0";
        assert_eq!(unused(httpd, 2), None);
        assert!(unused(httpd, 1).is_some());
        let kv = "kv: serving memcached on 10.0.2.15/24 port 11211 (TCP and UDP, nic 0); cache 16384 KiB in 1 shard(s), connection buffers 8192 KiB per core, idle connections closed after 300 s; 1 of 2 core(s) serve: the interface has one queue pair";
        assert_eq!(unused(kv, 1), None);
        assert!(unused(kv, 2).is_some());
        assert_eq!(unused("rexo: ready cores=2 mem=511 MiB boot=1 us", 2), None);
    }
}
