//! `cargo xtask bench boot`: the kernel's boot time (its own `boot=T us`) and the wall
//! time from QEMU's spawn to the ready line, against QEMU's floor (a trivial PVH
//! kernel that only exits), measured interleaved in the same run.

use crate::Result;
use crate::args::Args;
use crate::deps::{self, Need};
use crate::qemu::{self, End, Machine, Vm};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

const FLAGS: &[&str] = &["--runs", "--quick"];
/// Core counts measured.
const CORES: [u32; 2] = [8, 1];
/// Target: the kernel's own boot time with 8 cores, in microseconds.
const TARGET_BOOT_US: f64 = 2000.0;
/// Target: wall time to ready over QEMU's floor.
const TARGET_RATIO: f64 = 1.2;
/// Seconds one boot may take.
const TIMEOUT_S: u64 = 30;

/// Median and spread of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Median.
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// The median, minimum and maximum of `values` (`None` if empty or not finite).
pub fn stats(values: &[f64]) -> Option<Stats> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Stats {
        median,
        min: sorted[0],
        max: sorted[n - 1],
    })
}

/// One core count's measurements.
struct Series {
    cores: u32,
    boot_us: Vec<f64>,
    ready_ms: Vec<f64>,
    floor_ms: Vec<f64>,
}

/// A row of the report.
struct Row {
    cores: u32,
    boot_us: Stats,
    ready_ms: Stats,
    floor_ms: Stats,
    ratio: f64,
}

/// `cargo xtask bench boot [--runs N] [--quick]`.
pub fn command(words: Vec<String>) -> Result<()> {
    let mut args = Args::new("bench", &["boot"], words);
    match args.next_word().as_deref() {
        Some("boot") => {}
        Some(other) => return Err(format!("unknown benchmark `{other}`; valid: boot")),
        None => return Err("`cargo xtask bench` needs a benchmark name; valid: boot".into()),
    }
    let mut args = Args::new("bench boot", FLAGS, args.rest());
    let mut runs: Option<usize> = None;
    let mut quick = false;
    while let Some(word) = args.next_word() {
        match word.as_str() {
            "--runs" => runs = Some(args.number("--runs")?),
            "--quick" => quick = true,
            _ => return Err(args.unknown(&word)),
        }
    }
    let runs = runs.unwrap_or(if quick { 5 } else { 20 });
    if runs == 0 {
        return Err("`--runs 0`: at least one run is needed".into());
    }
    deps::ensure(&[Need::Qemu])?;
    let root = crate::root();
    let kernel = crate::build::kernel()?;
    let floor = crate::pvh::write(&root, "floor-pvh.elf", 0)?;
    let rows = measure(&root, &kernel, &floor, runs)?;
    let (table, json) = report(&rows, runs);
    print!("{table}");
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, text) in [("boot.md", &table), ("boot.json", &json)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn measure(root: &Path, kernel: &Path, floor: &Path, runs: usize) -> Result<Vec<Row>> {
    let scratch = root.join("target/bench");
    let mut series: Vec<Series> = CORES
        .iter()
        .map(|&cores| Series {
            cores,
            boot_us: Vec::new(),
            ready_ms: Vec::new(),
            floor_ms: Vec::new(),
        })
        .collect();
    let timeout = Duration::from_secs(TIMEOUT_S);
    let progress = std::io::stderr().is_terminal();
    for run in 1..=runs {
        if progress {
            eprint!("\rxtask: run {run}/{runs}");
        }
        for s in &mut series {
            let mut vm = Vm::pvh(Machine::Microvm, kernel, "app=hello");
            vm.cores = s.cores;
            let mut ready = None;
            let capture = qemu::run_captured(&vm.args(&scratch)?, timeout, None, |line| {
                ready = qemu::parse_ready(&line.text).map(|r| (r, line.at));
                ready.is_some()
            })?;
            let Some((r, at)) = ready else {
                return Err(format!(
                    "the kernel printed no ready line with {} cores ({:?}):\n{}",
                    s.cores,
                    capture.end,
                    capture.tail(10).join("\n")
                ));
            };
            s.boot_us.push(r.boot_us as f64);
            s.ready_ms.push(at.as_secs_f64() * 1e3);

            let mut vm = Vm::pvh(Machine::Microvm, floor, "");
            vm.cores = s.cores;
            let capture = qemu::run_captured(&vm.args(&scratch)?, timeout, None, |_| false)?;
            if capture.end != End::Exited(33) {
                return Err(format!(
                    "the floor kernel ended with {:?}, not exit 33",
                    capture.end
                ));
            }
            s.floor_ms.push(capture.wall.as_secs_f64() * 1e3);
        }
    }
    if progress {
        eprintln!();
    }
    series
        .iter()
        .map(|s| {
            let boot_us = stats(&s.boot_us).ok_or("no boot times")?;
            let ready_ms = stats(&s.ready_ms).ok_or("no wall times")?;
            let floor_ms = stats(&s.floor_ms).ok_or("no floor times")?;
            Ok(Row {
                cores: s.cores,
                boot_us,
                ready_ms,
                floor_ms,
                ratio: ready_ms.median / floor_ms.median,
            })
        })
        .collect()
}

/// The Markdown table and the JSON document for `rows`.
fn report(rows: &[Row], runs: usize) -> (String, String) {
    let mut md = format!(
        "# Boot benchmark (microvm, PVH, TCG, {runs} runs, median and min..max)\n\n\
         | cores | kernel boot= (us) | spawn to ready (ms) | QEMU floor (ms) | ratio |\n\
         |---|---|---|---|---|\n"
    );
    let mut json = format!("{{\n  \"runs\": {runs},\n  \"rows\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {:.0} ({:.0}..{:.0}) | {:.1} ({:.1}..{:.1}) | {:.1} ({:.1}..{:.1}) | {:.2}x |",
            r.cores,
            r.boot_us.median,
            r.boot_us.min,
            r.boot_us.max,
            r.ready_ms.median,
            r.ready_ms.min,
            r.ready_ms.max,
            r.floor_ms.median,
            r.floor_ms.min,
            r.floor_ms.max,
            r.ratio
        );
        let stat = |s: Stats| {
            format!(
                "{{\"median\": {:.3}, \"min\": {:.3}, \"max\": {:.3}}}",
                s.median, s.min, s.max
            )
        };
        let comma = if i + 1 < rows.len() { "," } else { "" };
        let _ = writeln!(
            json,
            "    {{\"cores\": {}, \"boot_us\": {}, \"ready_ms\": {}, \"floor_ms\": {}, \"ratio\": {:.3}}}{comma}",
            r.cores,
            stat(r.boot_us),
            stat(r.ready_ms),
            stat(r.floor_ms),
            r.ratio
        );
    }
    json.push_str("  ]\n}\n");
    md.push_str("\nTargets: ");
    for r in rows.iter().filter(|r| r.cores == 8) {
        let boot_ok = r.boot_us.median < TARGET_BOOT_US;
        let _ = write!(
            md,
            "kernel boot with 8 cores under {TARGET_BOOT_US:.0} us: {} ({:.0} us); ",
            if boot_ok { "met" } else { "MISSED" },
            r.boot_us.median
        );
    }
    let worst = rows.iter().map(|r| r.ratio).fold(0.0, f64::max);
    let _ = writeln!(
        md,
        "wall time within {TARGET_RATIO}x of QEMU's floor: {} (worst {worst:.2}x).",
        if worst <= TARGET_RATIO {
            "met"
        } else {
            "MISSED"
        }
    );
    (md, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread() {
        let s = stats(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(stats(&[]), None);
        assert_eq!(stats(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn report_has_table_json_and_targets() {
        let s = |m| Stats {
            median: m,
            min: m - 1.0,
            max: m + 1.0,
        };
        let rows = [
            Row {
                cores: 8,
                boot_us: s(1500.0),
                ready_ms: s(60.0),
                floor_ms: s(50.0),
                ratio: 1.2,
            },
            Row {
                cores: 1,
                boot_us: s(900.0),
                ready_ms: s(70.0),
                floor_ms: s(50.0),
                ratio: 1.4,
            },
        ];
        let (md, json) = report(&rows, 5);
        assert!(
            md.contains(
                "| 8 | 1500 (1499..1501) | 60.0 (59.0..61.0) | 50.0 (49.0..51.0) | 1.20x |"
            )
        );
        assert!(md.contains("under 2000 us: met"));
        assert!(md.contains("floor: MISSED (worst 1.40x)"));
        assert!(json.contains("\"cores\": 1, \"boot_us\": {\"median\": 900.000"));
        assert!(json.trim_end().ends_with('}'));
    }
}
