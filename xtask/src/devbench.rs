//! `cargo xtask bench drivers`: the drivers' figures, measured in the guest by the
//! `netbench` and `diskbench` apps (apps/devcheck/src/bench.rs) on q35 under TCG, each
//! beside the same figure of a Linux guest booted on the same machine with the same
//! device and backend in the same run (raw frames through `rexo-rawbench`,
//! xtask/src/bench/rawbench.c, on an AF_PACKET socket; fio on the raw block device),
//! and beside the host's own figure for the path under QEMU's backend: the UDP loopback
//! rate that the `socket` network backend rides on, and the image file's page-cached
//! read and write rates that the raw disk backend rides on. Each round boots Rexo and
//! then Linux on every device (interleaved, so host noise hits both alike); the report
//! gives medians with their min..max spread and Rexo's advantage as the ratio of the
//! medians, with the main suite's statistics (xtask/src/bench_report.rs). See
//! docs/bench.md.

use crate::Result;
use crate::args::Args;
use crate::bench::stats;
use crate::bench_report::{Better, advantage, spread};
use crate::diskimage::{self, Attach};
use crate::linux;
use crate::netpeer::{self, BenchReport, Peer};
use crate::qemu::{self, End, Machine, Media, Vm};
use rexo_devcheck::bench::{
    self as guest, BENCH_FRAMES, DEEP, EMPTY_POLLS, FRAME_SIZES, Figure, RANDOM_BYTES, RANDOM_QD1,
    RANDOM_QD32, SEQUENTIAL_BYTES, SEQUENTIAL_DEPTH,
};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The NICs measured: name and QEMU model (Linux calls the one NIC `eth0`).
const NICS: [(&str, &str); 2] = [("virtio-net", "virtio-net-pci"), ("e1000", "e1000")];
/// The disks measured: name, QEMU device, and Linux's name for it.
const DISKS: [(&str, Attach, &str); 2] = [
    ("nvme", Attach::Device("nvme,serial=rexo0"), "nvme0n1"),
    ("virtio-blk", Attach::Device("virtio-blk-pci"), "vda"),
];
/// The benchmark disks' size: the sequential figures cover all of it.
const DISK_BYTES: u64 = 64 << 20;
/// Both guests' memory (Linux unpacks its 90 MiB fio initramfs into it).
const MEM_MIB: u64 = 512;
/// Seconds one benchmark boot may take (TCG).
const TIMEOUT_S: u64 = 600;
/// Datagrams per host loopback measurement.
const LOOPBACK_DATAGRAMS: u64 = 200_000;
/// Bytes per host sequential request (as the guest's).
const HOST_CHUNK: usize = 128 * 1024;
/// Host random reads measured.
const HOST_RANDOM_READS: u64 = 50_000;

/// A host reference figure and what it is.
type Reference = Option<(f64, &'static str)>;

/// A figure, or why there is none.
type Value = std::result::Result<f64, String>;

/// A figure's samples, one per round that measured it, or why there are none.
type Samples = std::result::Result<Vec<f64>, String>;

/// Rounds of `cargo xtask bench drivers` without `--rounds`, and with `--quick`.
const ROUNDS: (usize, usize) = (5, 3);

/// One row of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The device (`virtio-net`, `nvme`, ...).
    pub device: String,
    /// The figure's name (`tx-64`, `randread-qd32`, ...).
    pub figure: String,
    /// What the number is (`frames/s`, `ns/poll`, `IOPS`, `MiB/s`).
    pub unit: &'static str,
    /// Rexo's samples, one per round, or why there are none.
    pub value: Samples,
    /// The Linux guest's samples on the same machine and device, or why there are none.
    pub linux: Samples,
    /// The host's reference figure for the same path and what it is, if there is one.
    pub ceiling: Reference,
    /// A remark (frames lost on the way, the depth reached, rounds that failed).
    pub note: String,
}

impl Row {
    /// Which way the figure improves: times per poll are better lower, rates higher.
    fn better(&self) -> Better {
        if self.unit == "ns/poll" {
            Better::Lower
        } else {
            Better::Higher
        }
    }

    /// A row of one round: `value` and `linux` as one sample each (or the failure).
    fn of_round(
        device: &str,
        figure: &str,
        unit: &'static str,
        (value, linux): (Value, Value),
        ceiling: Reference,
        note: String,
    ) -> Self {
        Self {
            device: device.to_string(),
            figure: figure.to_string(),
            unit,
            value: value.map(|v| vec![v]),
            linux: linux.map(|v| vec![v]),
            ceiling,
            note,
        }
    }
}

/// Adds one round's rows to the rows so far: each figure's samples appended to its row
/// (a new row for a figure not seen before). A side that failed in this round keeps
/// the samples of the others, and its failure goes into the note.
fn absorb(rows: &mut Vec<Row>, round: Vec<Row>, number: usize) {
    for new in round {
        let Some(row) = rows
            .iter_mut()
            .find(|r| r.device == new.device && r.figure == new.figure)
        else {
            rows.push(new);
            continue;
        };
        for (side, old, fresh) in [
            ("Rexo", &mut row.value, new.value),
            ("Linux", &mut row.linux, new.linux),
        ] {
            match (old.as_mut(), fresh) {
                (Ok(samples), Ok(more)) => samples.extend(more),
                (Ok(_), Err(why)) => {
                    row.note = notes_joined(&row.note, &format!("{side} round {number}: {why}"))
                }
                (Err(why), Ok(more)) => {
                    let before = format!("{side} before round {number}: {why}");
                    row.note = notes_joined(&row.note, &before);
                    *old = Ok(more);
                }
                (Err(_), Err(why)) => *old = Err(why),
            }
        }
    }
}

/// `a; b`, or whichever is not empty.
fn notes_joined(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}; {b}"),
    }
}

/// The host's figures, measured once per run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Host {
    /// UDP loopback datagrams sent per second, per frame size of [`FRAME_SIZES`].
    pub loopback_sent: [f64; 2],
    /// UDP loopback datagrams received per second, per frame size.
    pub loopback_received: [f64; 2],
    /// Sequential write to a file, MiB/s (page cache, no sync).
    pub seq_write: f64,
    /// Sequential read of that file, MiB/s (page cache).
    pub seq_read: f64,
    /// 4 KiB random reads of it, one at a time, per second (page cache).
    pub random_read: f64,
}

/// One fio job of the Linux guest's disk figures, matched to what `diskbench` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FioJob {
    /// The figure (`seqwrite`, `randread-qd32`, ...).
    pub name: &'static str,
    /// fio's `--rw`.
    pub rw: &'static str,
    /// Bytes per request.
    pub block: u32,
    /// Requests in flight.
    pub depth: usize,
    /// Requests in all (`--number_ios`), or `None` for one pass over the whole disk.
    pub ios: Option<u32>,
}

/// The Linux guest's disk figures: the sequential ones over the whole disk in
/// 128 KiB requests, 8 in flight, and the random reads' counts and depths, as
/// `diskbench`'s.
pub const FIO_JOBS: [FioJob; 4] = [
    FioJob {
        name: "seqwrite",
        rw: "write",
        block: SEQUENTIAL_BYTES,
        depth: SEQUENTIAL_DEPTH,
        ios: None,
    },
    FioJob {
        name: "seqread",
        rw: "read",
        block: SEQUENTIAL_BYTES,
        depth: SEQUENTIAL_DEPTH,
        ios: None,
    },
    FioJob {
        name: "randread-qd1",
        rw: "randread",
        block: RANDOM_BYTES,
        depth: 1,
        ios: Some(RANDOM_QD1),
    },
    FioJob {
        name: "randread-qd32",
        rw: "randread",
        block: RANDOM_BYTES,
        depth: DEEP,
        ios: Some(RANDOM_QD32),
    },
];

impl FioJob {
    /// fio's arguments but `--filename`: direct I/O through io_uring, fio's terse
    /// output (version 3, one line).
    pub fn args(&self) -> String {
        let mut args = format!(
            "--name={} --direct=1 --ioengine=io_uring --rw={} --bs={} --iodepth={}",
            self.name, self.rw, self.block, self.depth
        );
        if let Some(ios) = self.ios {
            let _ = write!(args, " --number_ios={ios}");
        }
        args.push_str(" --output-format=terse --terse-version=3");
        args
    }
}

/// The `drivers` image's job list ([`linux::DRIVERS_FIO_JOBS`]): per line the figure's
/// name, then fio's arguments.
pub fn fio_job_file() -> String {
    FIO_JOBS
        .iter()
        .map(|job| format!("{} {}\n", job.name, job.args()))
        .collect()
}

/// Reads a `devbench-fio disk INDEX NAME TERSE` line of the Linux guest's init (fio's
/// terse version 3 output for the job NAME of [`FIO_JOBS`]) as the figure `diskbench`
/// would print: `count` bytes (sequential) or requests (random), `ns` fio's runtime.
/// `None` if the line has none, `Some(Err)` if fio failed or the line is malformed.
pub fn parse_fio(line: &str) -> Option<std::result::Result<Figure, String>> {
    let rest = &line[line.find("devbench-fio ")? + "devbench-fio ".len()..];
    let mut words = rest.splitn(4, ' ');
    let (Some(kind), Some(index), Some(name), Some(terse)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Some(Err(format!("`{rest}`: not `KIND INDEX NAME TERSE`")));
    };
    let Some(job) = FIO_JOBS.iter().find(|j| j.name == name) else {
        return Some(Err(format!("`{name}` is not a fio job of the benchmark")));
    };
    let fields: Vec<&str> = terse.trim().split(';').collect();
    // Terse version 3: 5 header fields, then the read side (total KiB, KiB/s, IOPS,
    // runtime in ms, ...) from field 6 and the write side the same from field 47.
    let at = if job.rw == "write" { 46 } else { 5 };
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    if fields.first() != Some(&"3") || fields.len() < at + 4 {
        return Some(Err(format!("{name}: not fio's terse version 3 output")));
    }
    match number(4) {
        Some(0) => {}
        Some(error) => return Some(Err(format!("{name}: fio ended with error {error}"))),
        None => return Some(Err(format!("{name}: fio's error field is not a number"))),
    }
    let (Some(kib), Some(ms), Ok(index)) = (number(at), number(at + 3), index.parse()) else {
        return Some(Err(format!("{name}: fio's I/O or runtime is not a number")));
    };
    if kib == 0 || ms == 0 {
        return Some(Err(format!("{name}: fio moved {kib} KiB in {ms} ms")));
    }
    let bytes = kib * 1024;
    Some(Ok(Figure {
        kind: kind.into(),
        index,
        name: name.into(),
        count: if job.ios.is_some() {
            bytes / u64::from(job.block)
        } else {
            bytes
        },
        ns: ms * 1_000_000,
        // As diskbench, which gives the depth of its random reads only.
        depth: job.ios.map(|_| job.depth as u64),
    }))
}

/// The kernel words that make the `drivers` Linux guest measure `device` (`eth0`,
/// `nvme0n1`, `vda`) as `netbench` or `diskbench` do.
pub fn linux_words(device: &str) -> String {
    let sizes: Vec<String> = FRAME_SIZES.iter().map(usize::to_string).collect();
    format!(
        "rexo.bench_dev={device} rexo.bench_frames={BENCH_FRAMES} rexo.bench_polls={EMPTY_POLLS} rexo.bench_sizes={}",
        sizes.join(",")
    )
}

/// The devices `cargo xtask bench drivers` measures: those named (all when none are),
/// or an error naming one that is not a benchmark device.
fn chosen(words: &[String]) -> Result<Vec<&'static str>> {
    let all: Vec<&'static str> = NICS
        .iter()
        .map(|n| n.0)
        .chain(DISKS.iter().map(|d| d.0))
        .collect();
    if let Some(bad) = words.iter().find(|w| !all.contains(&w.as_str())) {
        return Err(format!(
            "`cargo xtask bench drivers [DEVICE...]`: `{bad}` is not one of {}",
            all.join(", ")
        ));
    }
    Ok(all
        .into_iter()
        .filter(|d| words.is_empty() || words.iter().any(|w| w == d))
        .collect())
}

/// `cargo xtask bench drivers [DEVICE...] [--rounds N] [--quick]`.
pub fn command(words: Vec<String>) -> Result<()> {
    let mut args = Args::new("bench drivers", &["--rounds", "--quick"], words);
    let (mut names, mut rounds, mut quick) = (Vec::new(), None, false);
    while let Some(word) = args.next_word() {
        match word.as_str() {
            "--quick" => quick = true,
            "--rounds" => rounds = Some(args.number("--rounds")?),
            flag if flag.starts_with("--") => return Err(args.unknown(flag)),
            name => names.push(name.to_string()),
        }
    }
    let rounds = rounds.unwrap_or(if quick { ROUNDS.1 } else { ROUNDS.0 });
    if rounds == 0 {
        return Err("`--rounds 0`: at least one round is needed".into());
    }
    let chosen = chosen(&names)?;
    crate::deps::ensure(&[crate::deps::Need::Qemu])?;
    let root = crate::root();
    let kernel = crate::build::kernel()?;
    // Without the Linux guest the Rexo figures still come, its column says why not.
    let linux = linux::build(&root, "drivers");
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // The host first, while no QEMU shares the cores.
    let host = host_figures(&dir)?;
    let guests = Guests {
        rexo: &kernel,
        linux: linux.as_ref().map_err(Clone::clone),
        dir: &dir,
    };
    let mut rows = Vec::new();
    for round in 1..=rounds {
        let mut measured = Vec::new();
        for (name, model) in NICS.into_iter().filter(|n| chosen.contains(&n.0)) {
            eprintln!(
                "xtask: round {round}/{rounds}: netbench on {name}, then Linux's rexo-rawbench"
            );
            measured.extend(nic_rows(&guests, name, model, &host));
        }
        for (name, attach, linux_name) in DISKS.into_iter().filter(|d| chosen.contains(&d.0)) {
            eprintln!("xtask: round {round}/{rounds}: diskbench on {name}, then Linux's fio");
            measured.extend(disk_rows(&guests, (name, attach, linux_name), &host));
        }
        absorb(&mut rows, measured, round);
    }
    let (table, json) = report(&rows, &host, rounds);
    print!("{table}");
    write_reports(&dir, &table, &json)?;
    let failed: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            [("Rexo", &r.value), ("Linux", &r.linux)]
                .into_iter()
                .filter_map(|(side, value)| {
                    let e = value.as_ref().err()?;
                    Some(format!("{} {} ({side}): {e}", r.device, r.figure))
                })
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("some figures are missing:\n{}", failed.join("\n")))
    }
}

/// The two guests booted per device, and where their logs go.
struct Guests<'a> {
    /// Rexo's kernel.
    rexo: &'a Path,
    /// The `drivers` Linux baseline, or why it could not be built.
    linux: std::result::Result<&'a linux::Baseline, String>,
    /// `target/bench`.
    dir: &'a Path,
}

/// Which guest a boot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Rexo with the app.
    Rexo(&'static str),
    /// The Linux guest measuring its device by this name.
    Linux(&'static str),
}

impl Guests<'_> {
    /// Boots `side` on q35 with `extra` QEMU arguments (the device under test) and
    /// returns its figures, or why not. Both sides get the same machine; only the
    /// kernel, its command line and Linux's initramfs differ.
    fn boot(&self, device: &str, side: Side, extra: Vec<String>) -> Result<Vec<Figure>> {
        let (media, log) = match side {
            Side::Rexo(app) => (
                Media::Pvh {
                    kernel: self.rexo.to_path_buf(),
                    append: format!("app={app}"),
                    initrd: None,
                },
                self.dir.join(format!("drivers-{device}.log")),
            ),
            Side::Linux(name) => {
                let baseline = self.linux.clone()?;
                let mut guest = linux::Guest::new(&baseline.service)?;
                guest.append = linux_words(name);
                (
                    Media::Pvh {
                        kernel: baseline.kernel.clone(),
                        append: guest.cmdline(),
                        initrd: Some(baseline.initramfs.clone()),
                    },
                    self.dir.join(format!("drivers-{device}-linux.log")),
                )
            }
        };
        let mut vm = Vm::pvh(Machine::Q35, Path::new(""), "");
        vm.media = media;
        vm.mem_mib = MEM_MIB;
        vm.extra = extra;
        let capture = qemu::run_captured(
            &vm.args(self.dir)?,
            Duration::from_secs(TIMEOUT_S),
            Some(&log),
            |line| line.text.contains("linux: failed:"),
        )?;
        let mut figures = Vec::new();
        let mut errors = Vec::new();
        for line in capture.serial() {
            match guest::parse(&line.text).or_else(|| parse_fio(&line.text)) {
                Some(Ok(figure)) => figures.push(figure),
                Some(Err(why)) => errors.push(why),
                None if line.text.contains("linux: failed:") => errors.push(line.text.clone()),
                None => {}
            }
        }
        if !errors.is_empty() || capture.end != End::Exited(0) {
            errors.push(format!("QEMU ended with {:?}", capture.end));
            return Err(format!("{} (log: {})", errors.join("; "), log.display()));
        }
        Ok(figures)
    }
}

fn write_reports(dir: &Path, table: &str, json: &str) -> Result<()> {
    for (file, text) in [("drivers.md", table), ("drivers.json", json)] {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Measures the host's ceilings: UDP loopback and a file of [`DISK_BYTES`] in `dir`.
fn host_figures(dir: &Path) -> Result<Host> {
    let (mut loopback_sent, mut loopback_received) = ([0.0; 2], [0.0; 2]);
    for (slot, size) in FRAME_SIZES.iter().enumerate() {
        (loopback_sent[slot], loopback_received[slot]) =
            netpeer::loopback_rates(*size, LOOPBACK_DATAGRAMS)?;
    }
    let path = dir.join("drivers-host.img");
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let chunk = vec![0x5Au8; HOST_CHUNK];
    let mib = DISK_BYTES as f64 / f64::from(1 << 20);
    let start = Instant::now();
    let mut file = std::fs::File::create(&path).map_err(fail)?;
    for _ in 0..DISK_BYTES / HOST_CHUNK as u64 {
        file.write_all(&chunk).map_err(fail)?;
    }
    drop(file);
    let seq_write = mib / start.elapsed().as_secs_f64();
    let mut file = std::fs::File::open(&path).map_err(fail)?;
    let mut buf = vec![0u8; HOST_CHUNK];
    let start = Instant::now();
    while file.read(&mut buf).map_err(fail)? > 0 {}
    let seq_read = mib / start.elapsed().as_secs_f64();
    let sectors = DISK_BYTES / 512;
    let per_read = u64::from(RANDOM_BYTES / 512);
    let mut lbas = guest::Lbas::new(0x5EED);
    let mut block = vec![0u8; RANDOM_BYTES as usize];
    let start = Instant::now();
    for _ in 0..HOST_RANDOM_READS {
        let lba = lbas.next(per_read, sectors);
        file.read_exact_at(&mut block, lba * 512).map_err(fail)?;
    }
    let random_read = HOST_RANDOM_READS as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok(Host {
        loopback_sent,
        loopback_received,
        seq_write,
        seq_read,
        random_read,
    })
}

/// The figure `name` of device 0 out of `figures`.
fn find<'a>(figures: &'a [Figure], name: &str) -> std::result::Result<&'a Figure, String> {
    figures
        .iter()
        .find(|f| f.index == 0 && f.name == name)
        .ok_or_else(|| format!("no `devbench ... {name}` line"))
}

/// One guest's boot on a NIC: its figures and what the peer saw.
type NicRun = Result<(Vec<Figure>, BenchReport)>;

/// Boots `side` on one `model` NIC with a fresh `netbench` peer.
fn nic_run(guests: &Guests, device: &str, model: &str, side: Side) -> NicRun {
    let (peer, args) = Peer::start_bench(0, model)?;
    let figures = guests.boot(device, side, args);
    let report = peer.finish()?;
    Ok((figures?, report))
}

/// One side's value of the NIC figure `name` (`tx-64`, `rx-1514`, `empty-poll`) and
/// the peer's remark on it.
fn nic_value(run: &NicRun, name: &str) -> (Value, String) {
    let (figures, peer) = match run {
        Err(e) => return (Err(e.clone()), String::new()),
        Ok(run) => run,
    };
    let f = match find(figures, name) {
        Err(e) => return (Err(e), String::new()),
        Ok(f) => f,
    };
    let slot = FRAME_SIZES
        .iter()
        .position(|s| name.ends_with(&format!("-{s}")));
    match (name.split('-').next(), slot) {
        (Some("tx"), Some(slot)) => (
            Ok(f.per_second()),
            format!("the peer got {} of {BENCH_FRAMES}", peer.received[slot]),
        ),
        (Some("rx"), Some(slot)) => {
            // The first frame starts the clock and is not in `count`.
            let took = f.count + 1;
            let sent = peer.sent[slot];
            // Taking (nearly) all the peer sent means the peer set the pace.
            let limit = if took as f64 >= 0.95 * sent as f64 {
                ": the peer set the pace, the driver may be faster"
            } else {
                ""
            };
            (
                Ok(f.per_second()),
                format!("took {took} of the {sent} the peer sent{limit}"),
            )
        }
        _ => (Ok(f.ns as f64 / f.count.max(1) as f64), String::new()),
    }
}

/// Both sides' remarks on one row, each named.
fn notes(rexo: &str, linux: &str) -> String {
    [("Rexo", rexo), ("Linux", linux)]
        .iter()
        .filter(|(_, note)| !note.is_empty())
        .map(|(side, note)| format!("{side}: {note}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `netbench` and then Linux's `rexo-rawbench` on one `model` NIC, each with its own
/// peer: the rows for `device`.
fn nic_rows(guests: &Guests, device: &str, model: &str, host: &Host) -> Vec<Row> {
    let rexo = nic_run(guests, device, model, Side::Rexo("netbench"));
    let linux = nic_run(guests, device, model, Side::Linux("eth0"));
    let mut rows = Vec::new();
    for (slot, size) in FRAME_SIZES.iter().enumerate() {
        for way in ["tx", "rx"] {
            let ceiling = if way == "tx" {
                Some((host.loopback_sent[slot], "UDP sendto"))
            } else {
                Some((host.loopback_received[slot], "UDP recv"))
            };
            let name = format!("{way}-{size}");
            let (value, rexo_note) = nic_value(&rexo, &name);
            let (linux, linux_note) = nic_value(&linux, &name);
            rows.push(Row::of_round(
                device,
                &name,
                "frames/s",
                (value, linux),
                ceiling,
                notes(&rexo_note, &linux_note),
            ));
        }
    }
    rows.push(Row::of_round(
        device,
        "empty-poll",
        "ns/poll",
        (
            nic_value(&rexo, "empty-poll").0,
            nic_value(&linux, "empty-poll").0,
        ),
        None,
        "lower is better".into(),
    ));
    rows
}

/// Boots `side` on a fresh zeroed image attached so.
fn disk_run(guests: &Guests, device: &str, attach: Attach, side: Side) -> Result<Vec<Figure>> {
    let suffix = if matches!(side, Side::Linux(_)) {
        "-linux"
    } else {
        ""
    };
    let image = guests.dir.join(format!("drivers-{device}{suffix}.img"));
    let run = diskimage::create(&image, DISK_BYTES)
        .and_then(|()| diskimage::args(0, attach, &image))
        .and_then(|args| guests.boot(device, side, args));
    let _ = std::fs::remove_file(&image);
    run
}

/// `diskbench` and then Linux's fio on one fresh image each, attached so: the rows for
/// `device`.
fn disk_rows(
    guests: &Guests,
    (device, attach, linux_name): (&str, Attach, &'static str),
    host: &Host,
) -> Vec<Row> {
    let rexo = disk_run(guests, device, attach, Side::Rexo("diskbench"));
    let linux = disk_run(guests, device, attach, Side::Linux(linux_name));
    let mib = f64::from(1 << 20);
    // (figure, unit, the unit's size in the figure's count, host reference)
    let figures: [(&str, &str, f64, Reference); 4] = [
        (
            "seqwrite",
            "MiB/s",
            mib,
            Some((host.seq_write, "file write")),
        ),
        ("seqread", "MiB/s", mib, Some((host.seq_read, "file read"))),
        (
            "randread-qd1",
            "IOPS",
            1.0,
            Some((host.random_read, "file pread")),
        ),
        (
            "randread-qd32",
            "IOPS",
            1.0,
            Some((host.random_read, "file pread")),
        ),
    ];
    let side = |run: &Result<Vec<Figure>>, name: &str, scale: f64| {
        let found = run
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|f| find(f, name));
        let note = match &found {
            Ok(Figure { depth: Some(d), .. }) => format!("depth {d}"),
            _ => String::new(),
        };
        (found.map(|f| f.per_second() / scale), note)
    };
    figures
        .into_iter()
        .map(|(name, unit, scale, ceiling)| {
            let (value, rexo_note) = side(&rexo, name, scale);
            let (linux, linux_note) = side(&linux, name, scale);
            Row::of_round(
                device,
                name,
                unit,
                (value, linux),
                ceiling,
                notes(&rexo_note, &linux_note),
            )
        })
        .collect()
}

/// The Markdown table and the JSON document of `rounds` rounds.
pub fn report(rows: &[Row], host: &Host, rounds: usize) -> (String, String) {
    let mut md = format!(
        "# Driver benchmark (q35, PVH, TCG, 2 cores, 512 MiB; Rexo's netbench/diskbench)\n\n\
         Each Rexo figure beside the same figure of a Linux guest (Debian's kernel) booted \
         on the same machine with the same device and backend in the same run: \
         `rexo-rawbench` on an AF_PACKET socket for the NICs, fio (`--direct=1 \
         --ioengine=io_uring`) on the raw block device for the disks. {rounds} round(s), \
         Rexo then Linux on each device in every round; each cell is the median and \
         (min..max) over the rounds. Advantage: Rexo's, from the medians (Rexo / Linux for \
         rates, Linux / Rexo for ns/poll; above 1 is better). The host reference is \
         the host's own figure for the path under QEMU's backend: UDP loopback \
         `sendto`/`recv` rates for the `socket` network backend, the page-cached image \
         file's write, read and 4 KiB `pread` rates for the raw disk backend \
         (docs/bench.md).\n\n\
         | device | figure | unit | Rexo | Linux | advantage | host reference | Rexo / host | note |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let mut json = format!("{{\n  \"rounds\": {rounds},\n  \"rows\": [\n");
    let median = |v: &Samples| v.as_ref().ok().and_then(|v| stats(v));
    let shown = |v: &Samples| match (v, median(v)) {
        (_, Some(s)) => spread(s),
        (Err(e), _) => format!("failed: {e}"),
        (Ok(_), None) => "no samples".to_string(),
    };
    for (i, r) in rows.iter().enumerate() {
        let (value, linux) = (median(&r.value), median(&r.linux));
        let ceiling = r.ceiling.map(|(c, _)| c);
        let ratio = value
            .zip(linux)
            .and_then(|(v, l)| advantage(r.better(), v.median, l.median));
        let host_ratio = value.zip(ceiling).map(|(v, c)| v.median / c);
        let times = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.3}x"));
        let reference = r
            .ceiling
            .map_or(String::new(), |(c, what)| format!("{c:.1} ({what})"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {reference} | {} | {} |",
            r.device,
            r.figure,
            r.unit,
            shown(&r.value),
            shown(&r.linux),
            times(ratio),
            times(host_ratio),
            r.note
        );
        let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let samples = |v: &Samples| match v {
            Ok(v) => format!(
                "[{}]",
                v.iter()
                    .map(|x| format!("{x:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(_) => "null".to_string(),
        };
        let comma = if i + 1 < rows.len() { "," } else { "" };
        let _ = writeln!(
            json,
            "    {{\"device\": \"{}\", \"figure\": \"{}\", \"unit\": \"{}\", \"value\": {}, \"linux\": {}, \"samples\": {}, \"linux_samples\": {}, \"advantage\": {}, \"ceiling\": {}, \"host_ratio\": {}}}{comma}",
            r.device,
            r.figure,
            r.unit,
            num(value.map(|s| s.median)),
            num(linux.map(|s| s.median)),
            samples(&r.value),
            samples(&r.linux),
            num(ratio),
            num(ceiling),
            num(host_ratio)
        );
    }
    let _ = write!(
        json,
        "  ],\n  \"host\": {{\"sendto_64\": {:.1}, \"sendto_1514\": {:.1}, \"recv_64\": {:.1}, \"recv_1514\": {:.1}, \"seq_write_mib_s\": {:.1}, \"seq_read_mib_s\": {:.1}, \"random_read_iops\": {:.1}}}\n}}\n",
        host.loopback_sent[0],
        host.loopback_sent[1],
        host.loopback_received[0],
        host.loopback_received[1],
        host.seq_write,
        host.seq_read,
        host.random_read
    );
    (md, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fio 3.33's terse lines (Debian 12's fio, run on the host): a 4 MiB sequential
    /// write in 128 KiB requests, and 200 random 4 KiB reads.
    const FIO_WRITE: &str = "3;fio-3.33;seqwrite;0;0;0;0;0;0;0;0;0.000000;0.000000;0;0;0.000000;0.000000;1.000000%=0;5.000000%=0;10.000000%=0;20.000000%=0;30.000000%=0;40.000000%=0;50.000000%=0;60.000000%=0;70.000000%=0;80.000000%=0;90.000000%=0;95.000000%=0;99.000000%=0;99.500000%=0;99.900000%=0;99.950000%=0;99.990000%=0;0%=0;0%=0;0%=0;0;0;0.000000;0.000000;0;0;0.000000%;0.000000;0.000000;4096;273066;2133;15;4;134;13.008031;22.896989;521;10568;3541.065219;2593.411760;1.000000%=522;5.000000%=544;10.000000%=561;20.000000%=651;30.000000%=765;40.000000%=3391;50.000000%=3489;60.000000%=3817;70.000000%=3850;80.000000%=6455;90.000000%=6651;95.000000%=7176;99.000000%=10551;99.500000%=10551;99.900000%=10551;99.950000%=10551;99.990000%=10551;0%=0;0%=0;0%=0;545;10572;3554.073250;2596.045360;0;0;0.000000%;0.000000;0.000000;7.142857%;0.000000%;25;0;10;3.1%;6.2%;12.5%;78.1%;0.0%;0.0%;0.0%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;25.00%;6.25%;0.00%;43.75%;21.88%;3.12%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;vda;0;0;0;0;0;0;0;0.00%";
    const FIO_RANDREAD: &str = "3;fio-3.33;randread-qd1;0;0;800;42105;10526;19;12;102;17.337425;8.333711;0;2425;72.477420;174.083410;1.000000%=27;5.000000%=36;10.000000%=45;20.000000%=46;30.000000%=47;40.000000%=48;50.000000%=49;60.000000%=50;70.000000%=52;80.000000%=55;90.000000%=69;95.000000%=132;99.000000%=354;99.500000%=354;99.900000%=2441;99.950000%=2441;99.990000%=2441;0%=0;0%=0;0%=0;39;2438;89.814845;174.074152;0;0;0.000000%;0.000000;0.000000;0;0;0;0;0;0;0.000000;0.000000;0;0;0.000000;0.000000;1.000000%=0;5.000000%=0;10.000000%=0;20.000000%=0;30.000000%=0;40.000000%=0;50.000000%=0;60.000000%=0;70.000000%=0;80.000000%=0;90.000000%=0;95.000000%=0;99.000000%=0;99.500000%=0;99.900000%=0;99.950000%=0;99.990000%=0;0%=0;0%=0;0%=0;0;0;0.000000;0.000000;0;0;0.000000%;0.000000;0.000000;33.333333%;0.000000%;199;0;11;100.0%;0.0%;0.0%;0.0%;0.0%;0.0%;0.0%;0.50%;0.00%;0.00%;0.00%;53.00%;41.00%;2.50%;2.50%;0.00%;0.00%;0.00%;0.50%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;0.00%;vda;0;0;0;0;0;0;0;0.00%";

    #[test]
    fn report_has_both_guests_ceilings_and_failures() {
        let host = Host {
            loopback_sent: [1_000_000.0, 500_000.0],
            loopback_received: [900_000.0, 400_000.0],
            seq_write: 2000.0,
            seq_read: 4000.0,
            random_read: 400_000.0,
        };
        let rows = [
            Row {
                device: "virtio-net".into(),
                figure: "tx-64".into(),
                unit: "frames/s",
                value: Ok(vec![90_000.0, 100_000.0, 120_000.0]),
                linux: Ok(vec![50_000.0]),
                ceiling: Some((1_000_000.0, "UDP sendto")),
                note: "Rexo: the peer got 20000 of 20000".into(),
            },
            Row {
                device: "virtio-net".into(),
                figure: "empty-poll".into(),
                unit: "ns/poll",
                value: Ok(vec![85.0, 85.0]),
                linux: Ok(vec![170.0, 160.0, 180.0]),
                ceiling: None,
                note: String::new(),
            },
            Row {
                device: "nvme".into(),
                figure: "seqread".into(),
                unit: "MiB/s",
                value: Err("no `devbench ... seqread` line".into()),
                linux: Err("fio ended with error 5".into()),
                ceiling: Some((4000.0, "file read")),
                note: String::new(),
            },
        ];
        let (md, json) = report(&rows, &host, 3);
        assert!(md.contains("3 round(s)"), "{md}");
        assert!(
            md.contains("| virtio-net | tx-64 | frames/s | 100000 (90000..120000) | 50000 | 2.000x | 1000000.0 (UDP sendto) | 0.100x | Rexo: the peer got 20000 of 20000 |"),
            "{md}"
        );
        // Lower is better for a poll's cost: the advantage is Linux / Rexo.
        assert!(
            md.contains(
                "| virtio-net | empty-poll | ns/poll | 85.0 | 170 (160..180) | 2.000x |  |  |  |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| nvme | seqread | MiB/s | failed: no `devbench ... seqread` line | failed: fio ended with error 5 |  | 4000.0 (file read) |  |  |"),
            "{md}"
        );
        assert!(json.contains("\"figure\": \"tx-64\", \"unit\": \"frames/s\", \"value\": 100000.000, \"linux\": 50000.000, \"samples\": [90000.000, 100000.000, 120000.000], \"linux_samples\": [50000.000], \"advantage\": 2.000, \"ceiling\": 1000000.000, \"host_ratio\": 0.100}"), "{json}");
        assert!(
            json.contains("\"value\": null, \"linux\": null, \"samples\": null, \"linux_samples\": null, \"advantage\": null, \"ceiling\": 4000.000, \"host_ratio\": null}"),
            "{json}"
        );
        assert!(json.starts_with("{\n  \"rounds\": 3,"), "{json}");
        assert!(json.contains("\"random_read_iops\": 400000.0}"), "{json}");
    }

    #[test]
    fn fio_jobs_match_diskbench() {
        let args: Vec<String> = FIO_JOBS.iter().map(FioJob::args).collect();
        assert_eq!(
            args[0],
            "--name=seqwrite --direct=1 --ioengine=io_uring --rw=write --bs=131072 \
             --iodepth=8 --output-format=terse --terse-version=3"
        );
        assert_eq!(
            args[1],
            "--name=seqread --direct=1 --ioengine=io_uring --rw=read --bs=131072 \
             --iodepth=8 --output-format=terse --terse-version=3"
        );
        assert_eq!(
            args[2],
            "--name=randread-qd1 --direct=1 --ioengine=io_uring --rw=randread --bs=4096 \
             --iodepth=1 --number_ios=2000 --output-format=terse --terse-version=3"
        );
        assert_eq!(
            args[3],
            "--name=randread-qd32 --direct=1 --ioengine=io_uring --rw=randread --bs=4096 \
             --iodepth=32 --number_ios=10000 --output-format=terse --terse-version=3"
        );
        let file = fio_job_file();
        assert_eq!(file.lines().count(), 4);
        assert!(file.starts_with("seqwrite --name=seqwrite "), "{file}");
        assert!(file.ends_with("--terse-version=3\n"), "{file}");
    }

    #[test]
    fn fio_terse_lines_parse() {
        let w = parse_fio(&format!("devbench-fio disk 0 seqwrite {FIO_WRITE}"))
            .unwrap()
            .unwrap();
        // 4096 KiB written in 15 ms.
        assert_eq!((w.name.as_str(), w.index), ("seqwrite", 0));
        assert_eq!((w.count, w.ns, w.depth), (4 << 20, 15_000_000, None));
        let r = parse_fio(&format!("devbench-fio disk 0 randread-qd1 {FIO_RANDREAD}"))
            .unwrap()
            .unwrap();
        // 800 KiB read in 19 ms: 200 requests.
        assert_eq!((r.count, r.ns, r.depth), (200, 19_000_000, Some(1)));
        assert!(parse_fio("devbench disk 0 seqread count=1 ns=1").is_none());
        let failed = FIO_RANDREAD.replacen(";0;0;800;", ";0;5;800;", 1);
        let err = parse_fio(&format!("devbench-fio disk 0 randread-qd1 {failed}"))
            .unwrap()
            .unwrap_err();
        assert!(err.contains("error 5"), "{err}");
        // The read side of a write job is empty: reading the wrong side shows.
        let err = parse_fio(&format!("devbench-fio disk 0 seqread {FIO_WRITE}"))
            .unwrap()
            .unwrap_err();
        assert!(err.contains("0 KiB"), "{err}");
        for bad in [
            "devbench-fio disk 0 seqread",
            "devbench-fio disk 0 bogus 3;fio",
            "devbench-fio disk 0 seqread fio: io_uring not supported",
            "devbench-fio disk x seqread 3;fio-3.33;seqread;0;0;4;1;1;1",
        ] {
            assert!(parse_fio(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn linux_is_told_the_device_and_counts() {
        assert_eq!(
            linux_words("eth0"),
            "rexo.bench_dev=eth0 rexo.bench_frames=20000 rexo.bench_polls=100000 \
             rexo.bench_sizes=64,1514"
        );
        assert!(linux_words("vda").starts_with("rexo.bench_dev=vda "));
    }

    #[test]
    fn devices_are_chosen_by_name() {
        assert_eq!(chosen(&[]).unwrap().len(), 4);
        assert_eq!(
            chosen(&["virtio-blk".into(), "e1000".into()]).unwrap(),
            ["e1000", "virtio-blk"]
        );
        let err = chosen(&["--quick".into()]).unwrap_err();
        assert!(err.contains("`--quick`") && err.contains("nvme"), "{err}");
    }

    #[test]
    fn rounds_gather_samples_per_figure_and_keep_failures_in_the_note() {
        let round = |rexo: Value, linux: Value| {
            vec![Row::of_round(
                "nvme",
                "seqread",
                "MiB/s",
                (rexo, linux),
                None,
                String::new(),
            )]
        };
        let mut rows = Vec::new();
        absorb(&mut rows, round(Err("boot failed".into()), Ok(10.0)), 1);
        absorb(&mut rows, round(Ok(30.0), Ok(20.0)), 2);
        absorb(&mut rows, round(Ok(40.0), Err("fio failed".into())), 3);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].value, Ok(vec![30.0, 40.0]));
        assert_eq!(rows[0].linux, Ok(vec![10.0, 20.0]));
        assert_eq!(
            rows[0].note,
            "Rexo before round 2: boot failed; Linux round 3: fio failed"
        );
        let mut failed = Vec::new();
        absorb(&mut failed, round(Err("a".into()), Err("b".into())), 1);
        absorb(&mut failed, round(Err("c".into()), Err("d".into())), 2);
        assert_eq!(failed[0].value, Err("c".into()));
    }

    #[test]
    fn notes_name_each_side() {
        assert_eq!(notes("a", "b"), "Rexo: a; Linux: b");
        assert_eq!(notes("", "b"), "Linux: b");
        assert_eq!(notes("", ""), "");
    }
}
