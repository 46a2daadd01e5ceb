//! One figure of the kernel's API benchmark (`bench=api`): the per-operation cost of
//! each of many rounds, in hundredths of a TSC cycle, and the line the kernel prints for
//! it, which `cargo xtask bench api` reads (docs/bench.md):
//!
//! ```text
//! bench NAME rounds=R per_round=K cycles=C cycles_min=C cycles_max=C ns=N ns_min=N ns_max=N
//! ```
//!
//! (median, least and most per operation, two decimals). Kept apart from the kernel so
//! that the line's format is tested on the host.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

/// One figure: per-operation costs in hundredths of a cycle, one per round.
pub struct Figure {
    /// The name after `bench`.
    name: &'static str,
    /// Operations timed back to back in one round.
    per_round: u64,
    /// Each round's cost per operation, in hundredths of a cycle, in ascending order
    /// ([`Figure::measure`] sorts them; the line reads its median and ends from them).
    centi_cycles: Vec<u64>,
}

impl Figure {
    /// Times `rounds` rounds of `per_round` operations: `round(per_round)` does one
    /// round's operations and returns the TSC ticks they took (so that set-up can stay
    /// outside the timing).
    pub fn measure(
        name: &'static str,
        rounds: usize,
        per_round: u64,
        mut round: impl FnMut(u64) -> u64,
    ) -> Self {
        let per_round = per_round.max(1);
        let mut centi_cycles: Vec<u64> = (0..rounds)
            .map(|_| round(per_round).saturating_mul(100) / per_round)
            .collect();
        centi_cycles.sort_unstable();
        Self {
            name,
            per_round,
            centi_cycles,
        }
    }

    /// The figure's line for a TSC of `tsc_hz`, or `bench NAME error=no-rounds`.
    pub fn line(&self, tsc_hz: u64) -> Line<'_> {
        Line {
            figure: self,
            tsc_hz,
        }
    }
}

/// A [`Figure`]'s line ([`Figure::line`]).
pub struct Line<'a> {
    figure: &'a Figure,
    tsc_hz: u64,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let figure = self.figure;
        let values = &figure.centi_cycles;
        let (Some(&min), Some(&max)) = (values.first(), values.last()) else {
            return write!(f, "bench {} error=no-rounds", figure.name);
        };
        let median = values[values.len() / 2];
        let ns = |centi_cycles| Centi(centi_ns(centi_cycles, self.tsc_hz));
        write!(
            f,
            "bench {} rounds={} per_round={} cycles={} cycles_min={} cycles_max={} ns={} ns_min={} ns_max={}",
            figure.name,
            values.len(),
            figure.per_round,
            Centi(median),
            Centi(min),
            Centi(max),
            ns(median),
            ns(min),
            ns(max),
        )
    }
}

/// A value in hundredths, as `W.FF`.
struct Centi(u64);

impl fmt::Display for Centi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Hundredths of a cycle to hundredths of a nanosecond at `tsc_hz`.
fn centi_ns(centi_cycles: u64, tsc_hz: u64) -> u64 {
    let ns = u128::from(centi_cycles) * 1_000_000_000 / u128::from(tsc_hz.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn a_figure_prints_its_median_and_spread_per_operation() {
        let mut ticks = [300u64, 100, 250, 120, 5000].into_iter();
        let figure = Figure::measure("api-call", 5, 100, |n| {
            assert_eq!(n, 100);
            ticks.next().unwrap()
        });
        // 2 GHz: a cycle is half a nanosecond.
        assert_eq!(
            figure.line(2_000_000_000).to_string(),
            "bench api-call rounds=5 per_round=100 cycles=2.50 cycles_min=1.00 \
             cycles_max=50.00 ns=1.25 ns_min=0.50 ns_max=25.00"
        );
    }

    #[test]
    fn a_figure_without_rounds_says_so() {
        let figure = Figure::measure("revoke", 0, 8, |_| unreachable!());
        assert_eq!(figure.line(1).to_string(), "bench revoke error=no-rounds");
    }
}
