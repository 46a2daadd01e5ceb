//! `cargo xtask bench drivers`: the drivers' figures, measured in the guest by the
//! `netbench` and `diskbench` apps (apps/devcheck/src/bench.rs) on q35 under TCG, each
//! beside the host's own ceiling for the same path measured in the same run: the UDP
//! loopback rate that QEMU's `socket` network backend rides on, and the image file's
//! page-cached read and write rates that QEMU's raw disk backend rides on. See
//! docs/bench.md.

use crate::Result;
use crate::diskimage::{self, Attach};
use crate::netpeer::{self, Peer};
use crate::qemu::{self, End, Machine, Vm};
use rexo_devcheck::bench::{self as guest, BENCH_FRAMES, FRAME_SIZES, Figure, RANDOM_BYTES};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The NICs measured: name and QEMU model.
const NICS: [(&str, &str); 2] = [("virtio-net", "virtio-net-pci"), ("e1000", "e1000")];
/// The disks measured: name and QEMU device.
const DISKS: [(&str, Attach); 2] = [
    ("nvme", Attach::Device("nvme,serial=rexo0")),
    ("virtio-blk", Attach::Device("virtio-blk-pci")),
];
/// The benchmark disks' size: the sequential figures cover all of it.
const DISK_BYTES: u64 = 64 << 20;
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

/// One row of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The device (`virtio-net`, `nvme`, ...).
    pub device: String,
    /// The figure's name (`tx-64`, `randread-qd32`, ...).
    pub figure: String,
    /// What the number is (`frames/s`, `ns/poll`, `IOPS`, `MiB/s`).
    pub unit: &'static str,
    /// Rexo's value, or why there is none.
    pub value: std::result::Result<f64, String>,
    /// The host's reference figure for the same path and what it is, if there is one.
    pub ceiling: Reference,
    /// A remark (frames lost on the way, the depth reached).
    pub note: String,
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

/// `cargo xtask bench drivers`.
pub fn command(words: Vec<String>) -> Result<()> {
    if let Some(word) = words.first() {
        return Err(format!(
            "`cargo xtask bench drivers` takes no flags; got `{word}`"
        ));
    }
    crate::deps::ensure(&[crate::deps::Need::Qemu])?;
    let root = crate::root();
    let kernel = crate::build::kernel()?;
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // The host first, while no QEMU shares the cores.
    let host = host_figures(&dir)?;
    let mut rows = Vec::new();
    for (name, model) in NICS {
        eprintln!("xtask: netbench on {name}");
        rows.extend(nic_rows(&kernel, &dir, name, model, &host));
    }
    for (name, attach) in DISKS {
        eprintln!("xtask: diskbench on {name}");
        rows.extend(disk_rows(&kernel, &dir, name, attach, &host));
    }
    let (table, json) = report(&rows, &host);
    print!("{table}");
    write_reports(&dir, &table, &json)?;
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.value
                .as_ref()
                .err()
                .map(|e| format!("{} {}: {e}", r.device, r.figure))
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("some figures are missing:\n{}", failed.join("\n")))
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

/// Boots `app` with `extra` QEMU arguments and returns its figures, or why not.
fn boot(
    kernel: &Path,
    dir: &Path,
    name: &str,
    app: &str,
    extra: Vec<String>,
) -> Result<Vec<Figure>> {
    let mut vm = Vm::pvh(Machine::Q35, kernel, &format!("app={app}"));
    vm.extra = extra;
    let log = dir.join(format!("drivers-{name}.log"));
    let capture = qemu::run_captured(
        &vm.args(dir)?,
        Duration::from_secs(TIMEOUT_S),
        Some(&log),
        |_| false,
    )?;
    let mut figures = Vec::new();
    let mut errors = Vec::new();
    for line in capture.serial() {
        match guest::parse(&line.text) {
            Some(Ok(figure)) => figures.push(figure),
            Some(Err(why)) => errors.push(why),
            None => {}
        }
    }
    if !errors.is_empty() || capture.end != End::Exited(0) {
        errors.push(format!("QEMU ended with {:?}", capture.end));
        return Err(format!("{} (log: {})", errors.join("; "), log.display()));
    }
    Ok(figures)
}

/// Rexo's figure `name` of device 0 out of `figures`.
fn find<'a>(figures: &'a [Figure], name: &str) -> std::result::Result<&'a Figure, String> {
    figures
        .iter()
        .find(|f| f.index == 0 && f.name == name)
        .ok_or_else(|| format!("no `devbench ... {name}` line"))
}

/// `netbench` on one `model` NIC with its peer: the rows for `device`.
fn nic_rows(kernel: &Path, dir: &Path, device: &str, model: &str, host: &Host) -> Vec<Row> {
    let run = Peer::start_bench(0, model).and_then(|(peer, args)| {
        let figures = boot(kernel, dir, device, "netbench", args);
        let report = peer.finish()?;
        Ok((figures?, report))
    });
    let mut rows = Vec::new();
    let row = |figure: String, unit, value, ceiling, note: String| Row {
        device: device.to_string(),
        figure,
        unit,
        value,
        ceiling,
        note,
    };
    for (slot, size) in FRAME_SIZES.iter().enumerate() {
        for way in ["tx", "rx"] {
            let ceiling = if way == "tx" {
                Some((host.loopback_sent[slot], "UDP sendto"))
            } else {
                Some((host.loopback_received[slot], "UDP recv"))
            };
            let name = format!("{way}-{size}");
            let (value, note) = match &run {
                Err(e) => (Err(e.clone()), String::new()),
                Ok((figures, peer)) => match find(figures, &name) {
                    Err(e) => (Err(e), String::new()),
                    Ok(f) if way == "tx" => (
                        Ok(f.per_second()),
                        format!("the peer got {} of {BENCH_FRAMES}", peer.received[slot]),
                    ),
                    Ok(f) => {
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
                },
            };
            rows.push(row(name, "frames/s", value, ceiling, note));
        }
    }
    let poll = match &run {
        Err(e) => Err(e.clone()),
        Ok((figures, _)) => find(figures, "empty-poll").map(|f| f.ns as f64 / f.count as f64),
    };
    rows.push(row(
        "empty-poll".into(),
        "ns/poll",
        poll,
        None,
        String::new(),
    ));
    rows
}

/// `diskbench` on one fresh image attached so: the rows for `device`.
fn disk_rows(kernel: &Path, dir: &Path, device: &str, attach: Attach, host: &Host) -> Vec<Row> {
    let image = dir.join(format!("drivers-{device}.img"));
    let run = diskimage::create(&image, DISK_BYTES)
        .and_then(|()| diskimage::args(0, attach, &image))
        .and_then(|args| boot(kernel, dir, device, "diskbench", args));
    let _ = std::fs::remove_file(&image);
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
    figures
        .into_iter()
        .map(|(name, unit, scale, ceiling)| {
            let found = run
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|f| find(f, name));
            Row {
                device: device.to_string(),
                figure: name.to_string(),
                unit,
                value: found.clone().map(|f| f.per_second() / scale),
                ceiling,
                note: match found {
                    Ok(Figure { depth: Some(d), .. }) => format!("depth {d}"),
                    _ => String::new(),
                },
            }
        })
        .collect()
}

/// The Markdown table and the JSON document.
pub fn report(rows: &[Row], host: &Host) -> (String, String) {
    let mut md = String::from(
        "# Driver benchmark (q35, PVH, TCG, 2 cores; Rexo's netbench/diskbench)\n\n\
         Each figure beside the host's own figure for the path under QEMU's backend, \
         measured in the same run: UDP loopback `sendto`/`recv` rates for the `socket` \
         network backend, the page-cached image file's write, read and 4 KiB `pread` rates \
         for the raw disk backend (docs/bench.md). A Linux guest's figures come with the \
         benchmark issue.\n\n\
         | device | figure | Rexo | unit | host reference | Rexo / host | note |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut json = String::from("{\n  \"rows\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let (value, ratio) = match (&r.value, r.ceiling) {
            (Ok(v), Some((c, _))) => (format!("{v:.1}"), format!("{:.3}x", v / c)),
            (Ok(v), None) => (format!("{v:.1}"), String::new()),
            (Err(e), _) => (format!("failed: {e}"), String::new()),
        };
        let ceiling = r
            .ceiling
            .map_or(String::new(), |(c, what)| format!("{c:.1} ({what})"));
        let _ = writeln!(
            md,
            "| {} | {} | {value} | {} | {ceiling} | {ratio} | {} |",
            r.device, r.figure, r.unit, r.note
        );
        let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let value = r.value.as_ref().ok().copied();
        let ceiling = r.ceiling.map(|(c, _)| c);
        let ratio = value.zip(ceiling).map(|(v, c)| v / c);
        let comma = if i + 1 < rows.len() { "," } else { "" };
        let _ = writeln!(
            json,
            "    {{\"device\": \"{}\", \"figure\": \"{}\", \"unit\": \"{}\", \"value\": {}, \"ceiling\": {}, \"ratio\": {}}}{comma}",
            r.device,
            r.figure,
            r.unit,
            num(value),
            num(ceiling),
            num(ratio)
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

    #[test]
    fn report_has_figures_ceilings_and_failures() {
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
                value: Ok(100_000.0),
                ceiling: Some((1_000_000.0, "UDP sendto")),
                note: "the peer got 20000 of 20000".into(),
            },
            Row {
                device: "virtio-net".into(),
                figure: "empty-poll".into(),
                unit: "ns/poll",
                value: Ok(85.0),
                ceiling: None,
                note: String::new(),
            },
            Row {
                device: "nvme".into(),
                figure: "seqread".into(),
                unit: "MiB/s",
                value: Err("no `devbench ... seqread` line".into()),
                ceiling: Some((4000.0, "file read")),
                note: String::new(),
            },
        ];
        let (md, json) = report(&rows, &host);
        assert!(
            md.contains("| virtio-net | tx-64 | 100000.0 | frames/s | 1000000.0 (UDP sendto) | 0.100x | the peer got 20000 of 20000 |"),
            "{md}"
        );
        assert!(
            md.contains("| virtio-net | empty-poll | 85.0 | ns/poll |  |  |  |"),
            "{md}"
        );
        assert!(
            md.contains("| nvme | seqread | failed: no `devbench"),
            "{md}"
        );
        assert!(json.contains("\"figure\": \"tx-64\", \"unit\": \"frames/s\", \"value\": 100000.000, \"ceiling\": 1000000.000, \"ratio\": 0.100}"), "{json}");
        assert!(
            json.contains("\"value\": null, \"ceiling\": 4000.000, \"ratio\": null}"),
            "{json}"
        );
        assert!(json.contains("\"random_read_iops\": 400000.0}"), "{json}");
    }
}
