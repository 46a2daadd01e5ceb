//! `cargo xtask bench boot`: the kernel's boot time (its own `boot=T us`) and the wall
//! time from QEMU's spawn to the ready line, against QEMU's floor (a trivial PVH
//! kernel that writes a line and exits, timed from spawn to that line), measured
//! interleaved in the same run.
//!
//! `cargo xtask bench api`: the kernel's own TSC measurements (`bench=api`: an API call
//! beside a plain call, a 2 MiB frame, a cross-core round trip to a polling and to a
//! halted core, a revocation) beside a round trip between two host threads measured in
//! the same run. See docs/bench.md.

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

/// `cargo xtask bench boot [--runs N] [--quick]`, `cargo xtask bench api`, `cargo
/// xtask bench drivers` (xtask/src/devbench.rs), or else the suite against Linux,
/// `cargo xtask bench [NAME...] [--quick]` (xtask/src/bench_suite.rs), of which `cargo
/// xtask bench fs [--quick]` is the file-system rows (xtask/src/fsbench.rs).
pub fn command(mut words: Vec<String>) -> Result<()> {
    match words.first().map(String::as_str) {
        Some("boot") => boot_command(words.split_off(1)),
        Some("api") => api_command(words.split_off(1)),
        Some("drivers") => crate::devbench::command(words.split_off(1)),
        Some("fs") => {
            let mut suite = vec!["small-files".to_string(), "fs-randread".to_string()];
            suite.extend(words.split_off(1));
            crate::bench_suite::command(suite)
        }
        _ => crate::bench_suite::command(words),
    }
}

/// `cargo xtask bench boot [--runs N] [--quick]`.
fn boot_command(words: Vec<String>) -> Result<()> {
    let mut args = Args::new("bench boot", FLAGS, words);
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
    write_reports(&root, "boot", &table, &json)
}

/// Writes `target/bench/NAME.md` and `NAME.json`.
fn write_reports(root: &Path, name: &str, table: &str, json: &str) -> Result<()> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (file, text) in [
        (format!("{name}.md"), table),
        (format!("{name}.json"), json),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The ready line's `boot=` in microseconds, if it counts every core the machine has: a
/// boot that lost a core has no boot time to report.
fn boot_time(ready: &qemu::Ready, cores: u32) -> Result<u64> {
    if ready.cores != cores {
        return Err(format!(
            "the ready line says cores={} on a machine of {cores} cores: a core did not start",
            ready.cores
        ));
    }
    Ok(ready.boot_us)
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
                ready = qemu::Ready::parse(&line.text).map(|r| (r, line.at));
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
            s.boot_us.push(boot_time(&r, s.cores)? as f64);
            s.ready_ms.push(at.as_secs_f64() * 1e3);

            // The floor is timed as Rexo is: spawn to its line arriving on the pipe.
            let mut vm = Vm::pvh(Machine::Microvm, floor, "");
            vm.cores = s.cores;
            let mut exiting = None;
            let capture = qemu::run_captured(&vm.args(&scratch)?, timeout, None, |line| {
                exiting = (line.text == crate::pvh::LINE).then_some(line.at);
                exiting.is_some()
            })?;
            let Some(at) = exiting else {
                return Err(format!(
                    "the floor kernel ended with {:?} without its line `{}`",
                    capture.end,
                    crate::pvh::LINE
                ));
            };
            s.floor_ms.push(at.as_secs_f64() * 1e3);
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

/// Target: an API call costs at most this much more than a plain call, in ns.
const TARGET_API_OVERHEAD_NS: f64 = 2.0;
/// Target: the round trip to a polling core over the host threads' round trip.
const TARGET_ROUNDTRIP_RATIO: f64 = 5.0;
/// Seconds the `bench=api` boot may take.
const API_TIMEOUT_S: u64 = 180;
/// Host thread round trips measured (after [`HOST_WARMUP`] unmeasured ones).
const HOST_ROUNDS: usize = 2001;
/// Host thread round trips run first to wake both threads up.
const HOST_WARMUP: usize = 200;
/// The figures the kernel must print, with their labels in the report.
const FIGURES: [(&str, &str); 6] = [
    ("plain-call", "plain call (`#[inline(never)]`, same work)"),
    ("api-call", "API call (`&Kernel`, `cores()`)"),
    ("frame-2m", "2 MiB frame range: allocate + free"),
    (
        "roundtrip-polling",
        "empty task to a polling core, seen done",
    ),
    (
        "roundtrip-halted",
        "empty task to a halted core (IPI), seen done",
    ),
    ("revoke", "revoke a memory capability"),
];

/// One figure the kernel printed: per-operation costs over many rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelFigure {
    /// The figure's name (`api-call`, ...).
    pub name: String,
    /// Rounds measured.
    pub rounds: u64,
    /// Operations timed back to back in each round.
    pub per_round: u64,
    /// TSC cycles per operation.
    pub cycles: Stats,
    /// Nanoseconds per operation.
    pub ns: Stats,
}

/// What one `bench ...` line of the kernel says.
#[derive(Clone, Debug, PartialEq)]
pub enum BenchLine {
    /// `bench start tsc_hz=H cores=N`.
    Start {
        /// The kernel's TSC frequency.
        tsc_hz: u64,
        /// Cores running.
        cores: u64,
    },
    /// `bench NAME rounds=.. per_round=.. cycles=.. ... ns_max=..`.
    Figure(KernelFigure),
    /// A line with an `error=` field: the kernel could not measure something.
    Error(String),
    /// `bench done`: every figure was printed.
    Done,
}

/// Parses a serial line: `Ok(None)` if it is not a `bench ` line, an error if it is one
/// but malformed.
pub fn parse_bench_line(line: &str) -> Result<Option<BenchLine>> {
    let Some(rest) = line.trim_end().strip_prefix("bench ") else {
        return Ok(None);
    };
    if rest
        .split_whitespace()
        .any(|word| word.starts_with("error="))
    {
        return Ok(Some(BenchLine::Error(rest.to_string())));
    }
    let mut words = rest.split_whitespace();
    let name = words
        .next()
        .filter(|name| !name.contains('='))
        .ok_or_else(|| format!("`{line}`: a `bench` line without a name"))?;
    let mut fields = std::collections::HashMap::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("`{line}`: `{word}` is not key=value"))?;
        fields.insert(key, value);
    }
    let get = |key: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("`{line}`: no `{key}=`"))
    };
    let int = |key: &str| -> Result<u64> {
        let text = get(key)?;
        text.parse()
            .map_err(|_| format!("`{line}`: `{key}={text}` is not a whole number"))
    };
    let num = |key: &str| -> Result<f64> {
        let text = get(key)?;
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("`{line}`: `{key}={text}` is not a number"))
    };
    let stats = |key: &str| -> Result<Stats> {
        Ok(Stats {
            median: num(key)?,
            min: num(&format!("{key}_min"))?,
            max: num(&format!("{key}_max"))?,
        })
    };
    Ok(Some(match name {
        "start" => BenchLine::Start {
            tsc_hz: int("tsc_hz")?,
            cores: int("cores")?,
        },
        "done" => BenchLine::Done,
        _ => BenchLine::Figure(KernelFigure {
            name: name.to_string(),
            rounds: int("rounds")?,
            per_round: int("per_round")?,
            cycles: stats("cycles")?,
            ns: stats("ns")?,
        }),
    }))
}

/// Round trips between two host threads: one spins on an atomic until the other sets it,
/// then answers on a second one. Nanoseconds per round trip.
fn host_round_trips(rounds: usize) -> Vec<f64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;
    let request = AtomicU64::new(0);
    let answer = AtomicU64::new(0);
    let mut times = Vec::with_capacity(rounds);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut seen = 0;
            loop {
                let value = request.load(Ordering::Acquire);
                if value == u64::MAX {
                    return;
                }
                if value != seen {
                    seen = value;
                    answer.store(value, Ordering::Release);
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        for round in 1..=(HOST_WARMUP + rounds) as u64 {
            let start = Instant::now();
            request.store(round, Ordering::Release);
            while answer.load(Ordering::Acquire) != round {
                std::hint::spin_loop();
            }
            if round > HOST_WARMUP as u64 {
                times.push(start.elapsed().as_secs_f64() * 1e9);
            }
        }
        request.store(u64::MAX, Ordering::Release);
    });
    times
}

/// Everything `bench api` measured.
struct ApiRun {
    tsc_hz: u64,
    figures: Vec<KernelFigure>,
    host: Stats,
    host_rounds: usize,
}

/// `cargo xtask bench api`.
fn api_command(words: Vec<String>) -> Result<()> {
    let mut args = Args::new("bench api", &[], words);
    if let Some(word) = args.next_word() {
        return Err(args.unknown(&word));
    }
    deps::ensure(&[Need::Qemu])?;
    let root = crate::root();
    let kernel = crate::build::kernel()?;
    let host = stats(&host_round_trips(HOST_ROUNDS)).ok_or("no host round trips")?;
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log = dir.join("api.log");
    let vm = Vm::pvh(Machine::Microvm, &kernel, "bench=api");
    let capture = qemu::run_captured(
        &vm.args(&dir)?,
        Duration::from_secs(API_TIMEOUT_S),
        Some(&log),
        |_| false,
    )?;
    let failed = |why: String| {
        format!(
            "{why} (log: {}):\n{}",
            log.display(),
            capture.tail(10).join("\n")
        )
    };
    if capture.end != End::Exited(33) {
        return Err(failed(format!(
            "the kernel's benchmark ended with {:?}, not exit 33",
            capture.end
        )));
    }
    let mut tsc_hz = None;
    let mut figures = Vec::new();
    let mut errors = Vec::new();
    let mut done = false;
    for line in capture.serial() {
        match parse_bench_line(&line.text).map_err(&failed)? {
            Some(BenchLine::Start { tsc_hz: hz, .. }) => tsc_hz = Some(hz),
            Some(BenchLine::Figure(figure)) => figures.push(figure),
            Some(BenchLine::Error(what)) => errors.push(what),
            Some(BenchLine::Done) => done = true,
            None => {}
        }
    }
    if !errors.is_empty() {
        return Err(failed(format!(
            "the kernel could not measure: {}",
            errors.join("; ")
        )));
    }
    let (Some(tsc_hz), true) = (tsc_hz, done) else {
        return Err(failed(
            "the kernel printed no `bench start` or no `bench done` line".into(),
        ));
    };
    let run = ApiRun {
        tsc_hz,
        figures,
        host,
        host_rounds: HOST_ROUNDS,
    };
    let (table, json) = api_report(&run)?;
    print!("{table}");
    write_reports(&root, "api", &table, &json)
}

/// The Markdown table and the JSON document for an `api` run.
fn api_report(run: &ApiRun) -> Result<(String, String)> {
    let find = |name: &str| {
        run.figures
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("the kernel printed no `bench {name}` line"))
    };
    for (name, _) in FIGURES {
        find(name)?;
    }
    let plain = find("plain-call")?;
    let api = find("api-call")?;
    let polling = find("roundtrip-polling")?;
    let halted = find("roundtrip-halted")?;
    let overhead_ns = api.ns.median - plain.ns.median;
    let overhead_cycles = api.cycles.median - plain.cycles.median;
    let polling_ratio = polling.ns.median / run.host.median;
    let halted_ratio = halted.ns.median / run.host.median;
    let api_met = overhead_ns <= TARGET_API_OVERHEAD_NS;
    let roundtrip_met = polling_ratio <= TARGET_ROUNDTRIP_RATIO;
    let verdict = |met: bool| if met { "MET" } else { "MISSED" };
    let spread = |s: Stats| format!("{:.2} ({:.2}..{:.2})", s.median, s.min, s.max);

    let mut md = format!(
        "# Kernel API benchmark (microvm, PVH, TCG, 2 cores, TSC {:.0} MHz)\n\n\
         Per operation: median (min..max) over the rounds.\n\n\
         | what | ns | cycles | rounds x ops |\n|---|---|---|---|\n",
        run.tsc_hz as f64 / 1e6
    );
    for (name, label) in FIGURES {
        let f = find(name)?;
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} x {} |",
            spread(f.ns),
            spread(f.cycles),
            f.rounds,
            f.per_round
        );
        if name == "api-call" {
            let _ = writeln!(
                md,
                "| API call minus plain call | {overhead_ns:.2} | {overhead_cycles:.2} | |"
            );
        }
    }
    let _ = writeln!(
        md,
        "| round trip between two host threads | {} | | {} x 1 |",
        spread(run.host),
        run.host_rounds
    );
    let _ = writeln!(
        md,
        "\nCross-core round trip over the host threads' round trip: polling {polling_ratio:.2}x, \
         halted {halted_ratio:.2}x.\n\nTargets:\n\n\
         - API call at most a plain call + {TARGET_API_OVERHEAD_NS} ns: {} ({overhead_ns:+.2} ns).\n\
         - round trip to a polling core within {TARGET_ROUNDTRIP_RATIO}x the host threads' (TCG): {} ({polling_ratio:.2}x).",
        verdict(api_met),
        verdict(roundtrip_met)
    );

    let stat = |s: Stats| {
        format!(
            "{{\"median\": {:.3}, \"min\": {:.3}, \"max\": {:.3}}}",
            s.median, s.min, s.max
        )
    };
    let mut json = format!("{{\n  \"tsc_hz\": {},\n  \"figures\": {{\n", run.tsc_hz);
    for (i, (name, _)) in FIGURES.iter().enumerate() {
        let f = find(name)?;
        let comma = if i + 1 < FIGURES.len() { "," } else { "" };
        let _ = writeln!(
            json,
            "    \"{name}\": {{\"rounds\": {}, \"per_round\": {}, \"ns\": {}, \"cycles\": {}}}{comma}",
            f.rounds,
            f.per_round,
            stat(f.ns),
            stat(f.cycles)
        );
    }
    let _ = write!(
        json,
        "  }},\n  \"host_roundtrip_ns\": {},\n  \"host_rounds\": {},\n  \
         \"api_overhead_ns\": {overhead_ns:.3},\n  \"api_overhead_cycles\": {overhead_cycles:.3},\n  \
         \"polling_ratio\": {polling_ratio:.3},\n  \"halted_ratio\": {halted_ratio:.3},\n  \
         \"targets\": {{\"api_call\": \"{}\", \"polling_roundtrip\": \"{}\"}}\n}}\n",
        stat(run.host),
        run.host_rounds,
        verdict(api_met),
        verdict(roundtrip_met)
    );
    Ok((md, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_that_lost_a_core_has_no_boot_time() {
        let ready = qemu::Ready::parse("rexo: ready cores=7 mem=255 MiB boot=9000 us").unwrap();
        let error = boot_time(&ready, 8).unwrap_err();
        assert!(error.contains("cores=7 on a machine of 8 cores"), "{error}");
        assert_eq!(boot_time(&ready, 7), Ok(9000));
    }

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

    const LINE: &str = "bench api-call rounds=301 per_round=1000 cycles=31.00 cycles_min=30.92 \
                        cycles_max=139.31 ns=11.88 ns_min=11.85 ns_max=53.42";

    #[test]
    fn reads_the_line_the_kernel_prints() {
        let mut ticks = [300u64, 100, 250].into_iter();
        let figure =
            rexo_benchfigure::Figure::measure("api-call", 3, 100, |_| ticks.next().unwrap_or(0));
        let line = figure.line(2_000_000_000).to_string();
        let Some(BenchLine::Figure(f)) = parse_bench_line(&line).unwrap() else {
            panic!("not a figure: {line}");
        };
        assert_eq!(
            (f.name.as_str(), f.rounds, f.per_round),
            ("api-call", 3, 100)
        );
        assert_eq!(
            (f.cycles.median, f.cycles.min, f.cycles.max),
            (2.5, 1.0, 3.0)
        );
        assert_eq!((f.ns.median, f.ns.min, f.ns.max), (1.25, 0.5, 1.5));
    }

    #[test]
    fn parses_kernel_bench_lines() {
        let Some(BenchLine::Figure(f)) = parse_bench_line(LINE).unwrap() else {
            panic!("not a figure");
        };
        assert_eq!(f.name, "api-call");
        assert_eq!((f.rounds, f.per_round), (301, 1000));
        assert_eq!(
            (f.cycles.median, f.cycles.min, f.cycles.max),
            (31.0, 30.92, 139.31)
        );
        assert_eq!((f.ns.median, f.ns.min, f.ns.max), (11.88, 11.85, 53.42));
        assert_eq!(
            parse_bench_line("bench start tsc_hz=2600000000 cores=2\r").unwrap(),
            Some(BenchLine::Start {
                tsc_hz: 2_600_000_000,
                cores: 2
            })
        );
        assert_eq!(
            parse_bench_line("bench done").unwrap(),
            Some(BenchLine::Done)
        );
        assert_eq!(
            parse_bench_line("bench revoke error=needs-two-cores").unwrap(),
            Some(BenchLine::Error("revoke error=needs-two-cores".into()))
        );
        assert_eq!(
            parse_bench_line("bench error=refused-3-times (a full queue)").unwrap(),
            Some(BenchLine::Error(
                "error=refused-3-times (a full queue)".into()
            ))
        );
        assert_eq!(parse_bench_line("rexo: ready cores=2").unwrap(), None);
        assert_eq!(parse_bench_line("[ 12 us c0] INFO bench x").unwrap(), None);
    }

    #[test]
    fn refuses_malformed_bench_lines() {
        for line in [
            "bench  x=1",
            "bench api-call",
            "bench api-call rounds=301",
            "bench api-call junk",
            &LINE.replace("ns=11.88", "ns=fast"),
            &LINE.replace("ns=11.88", "ns=-1"),
            &LINE.replace("ns=11.88", "ns=NaN"),
            &LINE.replace("rounds=301", "rounds=3.5"),
            &LINE.replace(" cycles_max=139.31", ""),
            "bench start tsc_hz=x cores=2",
        ] {
            assert!(parse_bench_line(line).is_err(), "{line}");
        }
    }

    fn figure(name: &str, ns: f64) -> KernelFigure {
        let s = |m: f64| Stats {
            median: m,
            min: m / 2.0,
            max: m * 2.0,
        };
        KernelFigure {
            name: name.into(),
            rounds: 101,
            per_round: 4,
            cycles: s(ns * 2.0),
            ns: s(ns),
        }
    }

    #[test]
    fn api_report_has_table_json_and_targets() {
        let mut run = ApiRun {
            tsc_hz: 2_000_000_000,
            figures: FIGURES
                .iter()
                .map(|(name, _)| figure(name, 100.0))
                .collect(),
            host: Stats {
                median: 100.0,
                min: 90.0,
                max: 300.0,
            },
            host_rounds: 2001,
        };
        run.figures[0] = figure("plain-call", 8.0);
        run.figures[1] = figure("api-call", 9.5);
        run.figures[3] = figure("roundtrip-polling", 450.0);
        run.figures[4] = figure("roundtrip-halted", 50_000.0);
        let (md, json) = api_report(&run).unwrap();
        assert!(md.contains("TSC 2000 MHz"), "{md}");
        assert!(
            md.contains("| API call (`&Kernel`, `cores()`) | 9.50 (4.75..19.00) | 19.00 (9.50..38.00) | 101 x 4 |"),
            "{md}"
        );
        assert!(
            md.contains("| API call minus plain call | 1.50 | 3.00 | |"),
            "{md}"
        );
        assert!(
            md.contains("host threads | 100.00 (90.00..300.00) | | 2001 x 1 |"),
            "{md}"
        );
        assert!(md.contains("polling 4.50x, halted 500.00x"), "{md}");
        assert!(md.contains("+ 2 ns: MET (+1.50 ns)"), "{md}");
        assert!(md.contains("(TCG): MET (4.50x)"), "{md}");
        assert!(
            json.contains(
                "\"api-call\": {\"rounds\": 101, \"per_round\": 4, \"ns\": {\"median\": 9.500"
            ),
            "{json}"
        );
        assert!(json.contains("\"polling_ratio\": 4.500"), "{json}");
        assert!(
            json.contains("\"targets\": {\"api_call\": \"MET\", \"polling_roundtrip\": \"MET\"}"),
            "{json}"
        );
        assert!(json.trim_end().ends_with('}'));

        run.figures[1] = figure("api-call", 12.0);
        run.figures[3] = figure("roundtrip-polling", 600.0);
        let (md, json) = api_report(&run).unwrap();
        assert!(md.contains("+ 2 ns: MISSED (+4.00 ns)"), "{md}");
        assert!(md.contains("(TCG): MISSED (6.00x)"), "{md}");
        assert!(
            json.contains("\"api_call\": \"MISSED\", \"polling_roundtrip\": \"MISSED\""),
            "{json}"
        );

        run.figures.retain(|f| f.name != "revoke");
        let error = api_report(&run).unwrap_err();
        assert!(error.contains("no `bench revoke` line"), "{error}");
    }
}
