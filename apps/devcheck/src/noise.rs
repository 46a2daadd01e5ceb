//! `noise`: the OS-noise benchmark of the suite (`cargo xtask bench noise`,
//! docs/bench.md), the measure HPC lightweight kernels are judged by.
//!
//! Every core of the app runs [`QUANTA`] fixed work quanta ([`STEPS`] steps of a 64-bit
//! linear congruential generator each) back to back and records each quantum's duration
//! (`Kernel::now_ns`, the TSC). Whatever the machine does besides the work (interrupts,
//! the kernel, the host under TCG) shows as quanta longer than the median; the longest
//! one is the worst interruption. The Linux side is the same loop in C, pinned to each
//! core (xtask/src/bench/noise.c), printing the same lines.
//!
//! Before the loop the app prints the machine's memory as the kernel sees it, for the
//! suite's idle-memory figure, then [`READY`], and waits for the host's [`GO`] on the
//! serial console (at most [`GO_WAIT_NS`]): the host makes QEMU's vCPU threads
//! real-time for the loop (xtask/src/hostrt.rs), so that its own scheduling does not
//! pass for the guest's noise. Each core runs [`WARM_UP`] quanta unrecorded first (code
//! translated, caches filled), then the measured ones; [`MEASURED`] ends the window:
//!
//! ```text
//! noise memory usable=BYTES free=BYTES
//! noise ready
//! noise measured
//! noise core=C quanta=N min_ns=.. median_ns=.. p99_ns=.. max_ns=..
//! ```

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rexo_api::{ApiError, Kernel};

/// Work quanta per core.
pub const QUANTA: usize = 200_000;
/// Generator steps per quantum (the C program's `STEPS` is the same).
pub const STEPS: u32 = 1000;
/// Quanta each core runs before it measures (the C program's `WARM_UP` is the same).
pub const WARM_UP: usize = 2000;
/// The line that asks the host to open the noise window (both guests print it).
pub const READY: &str = "noise ready";
/// What the host types on the guest's console to start the loop.
pub const GO: &[u8] = b"g\n";
/// How long the guest waits for [`GO`] before it measures anyway.
pub const GO_WAIT_NS: u64 = 10_000_000_000;
/// The line that closes the window: every core has measured.
pub const MEASURED: &str = "noise measured";

/// The summary of one core's quanta, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreNoise {
    /// The core's place among the app's cores.
    pub core: usize,
    /// Quanta measured.
    pub quanta: u64,
    /// The shortest quantum.
    pub min_ns: u64,
    /// The median quantum.
    pub median_ns: u64,
    /// The 99th percentile.
    pub p99_ns: u64,
    /// The longest quantum.
    pub max_ns: u64,
}

impl CoreNoise {
    /// Summarises quantum durations (sorted in place); `None` if there are none.
    pub fn from_durations(core: usize, durations: &mut [u32]) -> Option<Self> {
        durations.sort_unstable();
        let n = durations.len();
        let at = |i: usize| u64::from(durations[i]);
        (n > 0).then(|| Self {
            core,
            quanta: n as u64,
            min_ns: at(0),
            median_ns: at(n / 2),
            p99_ns: at(n * 99 / 100),
            max_ns: at(n - 1),
        })
    }

    /// The worst interruption: the longest quantum minus the median one.
    pub fn worst_interruption_ns(&self) -> u64 {
        self.max_ns.saturating_sub(self.median_ns)
    }
}

/// One line of the noise output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseLine {
    /// `noise memory usable=B free=B`.
    Memory {
        /// Usable RAM, bytes.
        usable: u64,
        /// RAM not handed out, bytes.
        free: u64,
    },
    /// `noise core=C quanta=N min_ns=.. median_ns=.. p99_ns=.. max_ns=..`.
    Core(CoreNoise),
}

/// Reads a noise line out of a log line (anywhere in it): `None` if there is none,
/// `Some(Err)` if it is malformed or a `noise FAILED: why` line.
pub fn parse(line: &str) -> Option<Result<NoiseLine, String>> {
    let rest = line[line.find("noise ")? + "noise ".len()..].trim_end();
    if let Some(why) = rest.strip_prefix("FAILED:") {
        return Some(Err(format!("noise failed:{why}")));
    }
    if line.contains(READY) || line.contains(MEASURED) {
        return None;
    }
    let mut fields: Vec<(&str, u64)> = Vec::new();
    let words = rest.split_whitespace();
    let kind = rest.split_whitespace().next()?;
    for word in words {
        if word == "memory" {
            continue;
        }
        let Some((key, value)) = word.split_once('=') else {
            return Some(Err(format!("`{rest}`: `{word}` is not key=number")));
        };
        let Ok(value) = value.parse() else {
            return Some(Err(format!("`{rest}`: `{word}` is not key=number")));
        };
        fields.push((key, value));
    }
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("`{rest}`: no `{key}=`"))
    };
    let parsed = if kind == "memory" {
        (|| {
            Ok(NoiseLine::Memory {
                usable: get("usable")?,
                free: get("free")?,
            })
        })()
    } else if kind.starts_with("core=") {
        (|| {
            Ok(NoiseLine::Core(CoreNoise {
                core: get("core")? as usize,
                quanta: get("quanta")?,
                min_ns: get("min_ns")?,
                median_ns: get("median_ns")?,
                p99_ns: get("p99_ns")?,
                max_ns: get("max_ns")?,
            }))
        })()
    } else {
        return None;
    };
    Some(parsed)
}

/// One quantum of work: [`STEPS`] dependent multiply-adds, each passed through
/// `black_box` (the value goes through memory), so that the compiler can neither fold
/// the steps together nor drop them; the C program does the same with an empty `asm`
/// that takes the value's address.
fn quantum(mut x: u64) -> u64 {
    for _ in 0..STEPS {
        x = core::hint::black_box(
            x.wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407),
        );
    }
    x
}

/// `noise`'s entry point.
pub fn main(kernel: &dyn Kernel) -> Result<(), ApiError> {
    let memory = kernel.memory();
    kernel.log(format_args!(
        "noise memory usable={} free={}",
        memory.usable, memory.free
    ));
    kernel.log(format_args!("{READY}"));
    let asked = kernel.now_ns();
    while kernel.read_byte() != GO.first().copied()
        && kernel.now_ns().saturating_sub(asked) < GO_WAIT_NS
    {
        kernel.sleep_ns(1_000_000);
    }
    let cores = kernel.cores();
    // Per core: min, median, p99, max; written by the core, read after all finished, so
    // that no core logs (and disturbs the others) while they measure.
    let results: Arc<Vec<[AtomicU64; 5]>> = Arc::new(
        (0..cores)
            .map(|_| core::array::from_fn(|_| AtomicU64::new(0)))
            .collect(),
    );
    let shared = Arc::clone(&results);
    // Cores that finished their warm-up: every core starts measuring once all have (at
    // most a second later, should one never come), as the C program's threads do.
    let warmed_up = Arc::new(AtomicUsize::new(0));
    kernel.run_on_every_core(Arc::new(move |kernel: &dyn Kernel, index: usize| {
        let mut durations = vec![0u32; QUANTA];
        let mut x = index as u64 + 1;
        for _ in 0..WARM_UP {
            x = quantum(x);
        }
        warmed_up.fetch_add(1, Ordering::AcqRel);
        let waited = kernel.now_ns();
        while warmed_up.load(Ordering::Acquire) < cores
            && kernel.now_ns().saturating_sub(waited) < 1_000_000_000
        {
            core::hint::spin_loop();
        }
        let mut previous = kernel.now_ns();
        for slot in durations.iter_mut() {
            x = quantum(x);
            let now = kernel.now_ns();
            *slot = u32::try_from(now - previous).unwrap_or(u32::MAX);
            previous = now;
        }
        if let (Some(summary), Some(out)) = (
            CoreNoise::from_durations(index, &mut durations),
            shared.get(index),
        ) {
            let values = [
                summary.quanta,
                summary.min_ns,
                summary.median_ns,
                summary.p99_ns,
                summary.max_ns,
            ];
            for (cell, value) in out.iter().zip(values) {
                cell.store(value, Ordering::Release);
            }
        }
    }))?;
    kernel.log(format_args!("{MEASURED}"));
    for (core, cells) in results.iter().enumerate() {
        let [quanta, min, median, p99, max] = cells.each_ref().map(|c| c.load(Ordering::Acquire));
        if quanta == 0 {
            kernel.log(format_args!("noise FAILED: core {core} measured nothing"));
            return Err(ApiError::AppFailed(1));
        }
        kernel.log(format_args!(
            "noise core={core} quanta={quanta} min_ns={min} median_ns={median} p99_ns={p99} max_ns={max}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_durations() {
        let mut d: Vec<u32> = (1..=100).rev().collect();
        d[0] = 5000;
        let s = CoreNoise::from_durations(1, &mut d).unwrap();
        assert_eq!(
            (s.quanta, s.min_ns, s.median_ns, s.p99_ns, s.max_ns),
            (100, 1, 51, 5000, 5000)
        );
        assert_eq!(s.worst_interruption_ns(), 4949);
        assert!(CoreNoise::from_durations(0, &mut []).is_none());
    }

    #[test]
    fn parses_both_guests_lines() {
        let rexo = "[ 9 us c0] INFO  noise core=1 quanta=200000 min_ns=900 median_ns=1000 p99_ns=1200 max_ns=90000";
        let Some(Ok(NoiseLine::Core(c))) = parse(rexo) else {
            panic!("{rexo}")
        };
        assert_eq!((c.core, c.quanta, c.max_ns), (1, 200_000, 90_000));
        let linux = "linuxbench noise core=0 quanta=5 min_ns=1 median_ns=2 p99_ns=3 max_ns=4";
        assert!(matches!(parse(linux), Some(Ok(NoiseLine::Core(_)))));
        assert_eq!(
            parse("noise memory usable=100 free=60"),
            Some(Ok(NoiseLine::Memory {
                usable: 100,
                free: 60
            }))
        );
        assert!(parse("rexo: ready cores=2").is_none());
        assert!(parse("[ 9 us c0] INFO  noise ready").is_none());
        assert!(parse("linuxbench noise measured").is_none());
        assert!(parse("noise core=0 quanta=x").unwrap().is_err());
        assert!(parse("noise core=0 quanta=5").unwrap().is_err());
        assert!(parse("noise FAILED: no memory").unwrap().is_err());
    }
}
