//! The benchmark suite's report (`cargo xtask bench`, docs/bench.md): per benchmark the
//! Rexo and Linux samples of every round, their medians and spread, Rexo's advantage as
//! a ratio against the target, written as `report.md`, `report.json` and one
//! hand-drawn SVG bar chart per benchmark.

use crate::Result;
use crate::bench::{Stats, stats};
use std::fmt::Write as _;
use std::path::Path;

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Smaller is better (times, costs, memory, sizes).
    Lower,
    /// Larger is better (rates).
    Higher,
}

impl Better {
    /// The word in the report.
    pub fn word(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
        }
    }
}

/// One benchmark's row: what it is and what each guest measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The benchmark's name (`boot-ready`, `randread-qd1-nvme`, ...).
    pub name: String,
    /// What is measured, for a reader.
    pub title: String,
    /// The figures' unit.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// The target: Rexo's advantage (see [`advantage`]) must be at least this.
    pub target: Option<f64>,
    /// Rexo's samples, one per round, or why there are none.
    pub rexo: std::result::Result<Vec<f64>, String>,
    /// Linux's samples, one per round, or why there are none.
    pub linux: std::result::Result<Vec<f64>, String>,
    /// The rounds the run made: a verdict needs at least half of them (rounded up) from
    /// each side.
    pub rounds: usize,
    /// A remark (what the figure includes, rounds that failed).
    pub note: String,
}

/// What a row concludes.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Both sides measured; Rexo's advantage and whether it met the target (`None`: the
    /// benchmark has no target).
    Measured {
        /// Rexo's advantage over Linux (see [`advantage`]).
        ratio: f64,
        /// Whether the target was met.
        met: Option<bool>,
    },
    /// Both sides measured, but one in fewer than half the rounds (rounded up): how
    /// many each gave.
    Incomplete(String),
    /// A side could not be measured: why.
    NotRun(String),
}

/// Rexo's advantage from the two medians: Linux / Rexo when lower is better, Rexo /
/// Linux when higher is better; above 1 means Rexo is better. `None` if undefined.
pub fn advantage(better: Better, rexo: f64, linux: f64) -> Option<f64> {
    let ratio = match better {
        Better::Lower => linux / rexo,
        Better::Higher => rexo / linux,
    };
    (ratio.is_finite() && ratio >= 0.0).then_some(ratio)
}

impl Row {
    /// The medians and spreads of both sides, where measured.
    pub fn stats(&self) -> (Option<Stats>, Option<Stats>) {
        let of = |side: &std::result::Result<Vec<f64>, String>| {
            side.as_ref().ok().and_then(|v| stats(v))
        };
        (of(&self.rexo), of(&self.linux))
    }

    /// The row's conclusion.
    pub fn verdict(&self) -> Verdict {
        let missing = |side: &std::result::Result<Vec<f64>, String>, who: &str| match side {
            Err(why) => Some(format!("{who}: {why}")),
            Ok(v) if stats(v).is_none() => Some(format!("{who}: no samples")),
            Ok(_) => None,
        };
        let why: Vec<String> = [missing(&self.rexo, "Rexo"), missing(&self.linux, "Linux")]
            .into_iter()
            .flatten()
            .collect();
        if !why.is_empty() {
            return Verdict::NotRun(why.join("; "));
        }
        let (Some(r), Some(l)) = self.stats() else {
            return Verdict::NotRun("no samples".into());
        };
        let counts = [&self.rexo, &self.linux].map(|side| side.as_ref().map_or(0, Vec::len));
        if counts.iter().any(|&count| count < self.rounds.div_ceil(2)) {
            return Verdict::Incomplete(format!(
                "Rexo {}, Linux {} of {} rounds",
                counts[0], counts[1], self.rounds
            ));
        }
        match advantage(self.better, r.median, l.median) {
            Some(ratio) => Verdict::Measured {
                ratio,
                met: self.target.map(|t| ratio >= t),
            },
            None => Verdict::NotRun(format!("no ratio of medians {} and {}", r.median, l.median)),
        }
    }
}

/// A value with as many decimals as it needs to show about three significant digits.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `median (min..max)`, or the single value when all are equal.
pub fn spread(s: Stats) -> String {
    if s.min == s.max {
        number(s.median)
    } else {
        format!(
            "{} ({}..{})",
            number(s.median),
            number(s.min),
            number(s.max)
        )
    }
}

/// What the run was: for the report's heading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The date, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// The host: CPU model and core count.
    pub machine: String,
    /// `TCG` or `KVM`.
    pub accel: String,
    /// QEMU's version line.
    pub qemu: String,
    /// Rounds per benchmark.
    pub rounds: usize,
    /// Whether it was the `--quick` run.
    pub quick: bool,
    /// The machine both guests got (type, cores, memory, devices).
    pub guest_machine: String,
    /// How host traffic reached the guests.
    pub transport: String,
}

/// The SVG file name of a benchmark's chart.
pub fn chart_name(row: &Row) -> String {
    format!("{}.svg", row.name)
}

/// The Markdown report.
pub fn markdown(rows: &[Row], ctx: &Context) -> String {
    let mut md = format!(
        "# Rexo against Linux ({}, {})\n\n\
         {} on {}, {}; {} rounds{}, guests interleaved (Rexo, Linux, Rexo, ...); each cell \
         is the median and (min..max) over the rounds. Ratio: Rexo's advantage (Linux / \
         Rexo when lower is better, Rexo / Linux when higher is better; above 1x Rexo is \
         better).{}\n\n\
         Both guests: {}. Host traffic: {}.\n\n\
         | benchmark | Rexo | Linux | unit | ratio | better is | target | verdict | note |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        ctx.accel,
        ctx.date,
        ctx.qemu,
        ctx.machine,
        ctx.accel,
        ctx.rounds,
        if ctx.quick { " (--quick)" } else { "" },
        if ctx.accel == "TCG" {
            " Under TCG the ratios, not the absolute numbers, carry meaning."
        } else {
            ""
        },
        ctx.guest_machine,
        ctx.transport
    );
    for row in rows {
        let (r, l) = row.stats();
        let cell = |s: Option<Stats>| s.map_or("-".to_string(), spread);
        let target = row.target.map_or("-".to_string(), |t| format!(">= {t}x"));
        let (ratio, verdict) = match row.verdict() {
            Verdict::Measured { ratio, met } => (
                format!("{}x", number(ratio)),
                match met {
                    Some(true) => "MET".to_string(),
                    Some(false) => "MISSED".to_string(),
                    None => "-".to_string(),
                },
            ),
            Verdict::Incomplete(why) => ("-".to_string(), format!("INCOMPLETE: {why}")),
            Verdict::NotRun(why) => ("-".to_string(), format!("NOT RUN: {why}")),
        };
        let name = if r.is_some() || l.is_some() {
            format!("[{}]({})", row.name, chart_name(row))
        } else {
            row.name.clone()
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {ratio} | {} | {target} | {verdict} | {} |",
            cell(r),
            cell(l),
            row.unit,
            row.better.word(),
            if row.note.is_empty() {
                row.title.clone()
            } else {
                format!("{}; {}", row.title, row.note)
            }
            .replace('|', "/")
        );
    }
    md
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (`null` when not finite).
fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}

/// The JSON document: the context, then per row its samples, statistics and verdict.
pub fn json(rows: &[Row], ctx: &Context) -> String {
    let mut out = format!(
        "{{\n  \"date\": {},\n  \"machine\": {},\n  \"accel\": {},\n  \"qemu\": {},\n  \
         \"rounds\": {},\n  \"quick\": {},\n  \"guest_machine\": {},\n  \"transport\": {},\n  \
         \"rows\": [\n",
        json_string(&ctx.date),
        json_string(&ctx.machine),
        json_string(&ctx.accel),
        json_string(&ctx.qemu),
        ctx.rounds,
        ctx.quick,
        json_string(&ctx.guest_machine),
        json_string(&ctx.transport)
    );
    for (i, row) in rows.iter().enumerate() {
        let side = |s: &std::result::Result<Vec<f64>, String>| match s {
            Ok(v) => {
                let samples: Vec<String> = v.iter().map(|x| json_number(*x)).collect();
                match stats(v) {
                    Some(st) => format!(
                        "{{\"samples\": [{}], \"median\": {}, \"min\": {}, \"max\": {}}}",
                        samples.join(", "),
                        json_number(st.median),
                        json_number(st.min),
                        json_number(st.max)
                    ),
                    None => format!(
                        "{{\"samples\": [{}], \"error\": \"no samples\"}}",
                        samples.join(", ")
                    ),
                }
            }
            Err(why) => format!("{{\"error\": {}}}", json_string(why)),
        };
        let (ratio, verdict) = match row.verdict() {
            Verdict::Measured { ratio, met } => (
                json_number(ratio),
                json_string(match met {
                    Some(true) => "MET",
                    Some(false) => "MISSED",
                    None => "no target",
                }),
            ),
            Verdict::Incomplete(why) => ("null".into(), json_string(&format!("INCOMPLETE: {why}"))),
            Verdict::NotRun(why) => ("null".into(), json_string(&format!("NOT RUN: {why}"))),
        };
        let _ = writeln!(
            out,
            "    {{\"name\": {}, \"title\": {}, \"unit\": {}, \"better\": {}, \"target\": {}, \
             \"rexo\": {}, \"linux\": {}, \"ratio\": {ratio}, \"verdict\": {verdict}, \"note\": {}}}{}",
            json_string(&row.name),
            json_string(&row.title),
            json_string(&row.unit),
            json_string(row.better.word()),
            row.target.map_or("null".into(), json_number),
            side(&row.rexo),
            side(&row.linux),
            json_string(&row.note),
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    out.push_str("  ]\n}\n");
    out
}

/// Escapes text for SVG.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart of one row: a bar per guest at its median, whiskers from min to max, the
/// median written above; `None` if neither side has samples.
pub fn svg(row: &Row, accel: &str) -> Option<String> {
    let (r, l) = row.stats();
    if r.is_none() && l.is_none() {
        return None;
    }
    const WIDTH: f64 = 560.0;
    // Characters per line of the title at 12 px (about 6.5 px each).
    const LINE_CHARS: usize = 80;
    let mut lines = wrap(&row.title, LINE_CHARS);
    lines.push(format!(
        "{}, {} is better, {accel}; bars: median, whiskers: min..max",
        row.unit,
        row.better.word()
    ));
    let top = 40.0 + 15.0 * lines.len() as f64;
    let bottom = top + 165.0;
    let height = bottom + 30.0;
    let top_value = [r, l]
        .iter()
        .flatten()
        .map(|s| s.max)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let y = |v: f64| bottom - (v / top_value) * (bottom - top);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{WIDTH}\" height=\"{height}\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        xml(&row.name),
    );
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{}\">{}</text>",
            38.0 + 15.0 * i as f64,
            xml(line)
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"40\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>",
        WIDTH - 20.0
    );
    for (i, (who, side, colour)) in [("Rexo", r, "#2b7bb9"), ("Linux", l, "#e08a1e")]
        .into_iter()
        .enumerate()
    {
        let x = 140.0 + i as f64 * 200.0;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{who}</text>",
            x + 40.0,
            bottom + 18.0
        );
        match side {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "<rect x=\"{x}\" y=\"{:.1}\" width=\"80\" height=\"{:.1}\" fill=\"{colour}\"/>\n\
                     <line x1=\"{cx}\" y1=\"{:.1}\" x2=\"{cx}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
                     <line x1=\"{}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
                     <line x1=\"{}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
                     <text x=\"{cx}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    y(s.median),
                    bottom - y(s.median),
                    y(s.max),
                    y(s.min),
                    x + 30.0,
                    y(s.max),
                    x + 50.0,
                    y(s.max),
                    x + 30.0,
                    y(s.min),
                    x + 50.0,
                    y(s.min),
                    y(s.max) - 6.0,
                    xml(&number(s.median)),
                    cx = x + 40.0,
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"middle\">not run</text>",
                    x + 40.0,
                    bottom - 10.0
                );
            }
        }
    }
    out.push_str("</svg>\n");
    Some(out)
}

/// `text` in lines of at most `width` characters, broken between words (a longer word
/// gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Writes `report.md`, `report.json` and the charts into `dir`.
pub fn write(dir: &Path, rows: &[Row], ctx: &Context) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let put = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    put("report.md", &markdown(rows, ctx))?;
    put("report.json", &json(rows, ctx))?;
    for row in rows {
        if let Some(chart) = svg(row, &ctx.accel) {
            put(&chart_name(row), &chart)?;
        }
    }
    println!(
        "wrote {}/report.md, report.json and the charts",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(better: Better, rexo: Vec<f64>, linux: std::result::Result<Vec<f64>, String>) -> Row {
        Row {
            name: "boot-ready".into(),
            title: "QEMU start to ready".into(),
            unit: "ms".into(),
            better,
            target: Some(20.0),
            rexo: Ok(rexo),
            linux,
            rounds: 1,
            note: String::new(),
        }
    }

    fn ctx() -> Context {
        Context {
            date: "2026-11-23 23:00 UTC".into(),
            machine: "test CPU, 2 cores".into(),
            accel: "TCG".into(),
            qemu: "QEMU emulator version 7.2".into(),
            rounds: 3,
            quick: true,
            guest_machine: "q35".into(),
            transport: "socket".into(),
        }
    }

    #[test]
    fn advantage_follows_the_direction() {
        assert_eq!(advantage(Better::Lower, 10.0, 200.0), Some(20.0));
        assert_eq!(advantage(Better::Higher, 300.0, 100.0), Some(3.0));
        assert_eq!(advantage(Better::Lower, 0.0, 5.0), None);
        assert_eq!(advantage(Better::Higher, 1.0, 0.0), None);
    }

    #[test]
    fn verdicts() {
        let met = row(Better::Lower, vec![10.0, 12.0, 8.0], Ok(vec![300.0, 250.0]));
        assert_eq!(
            met.verdict(),
            Verdict::Measured {
                ratio: 27.5,
                met: Some(true)
            }
        );
        let missed = row(Better::Lower, vec![100.0], Ok(vec![300.0]));
        assert!(matches!(
            missed.verdict(),
            Verdict::Measured {
                met: Some(false),
                ..
            }
        ));
        let not_run = row(Better::Lower, vec![1.0], Err("fio failed".into()));
        assert_eq!(
            not_run.verdict(),
            Verdict::NotRun("Linux: fio failed".into())
        );
        let mut both = not_run.clone();
        both.rexo = Err("no httpd".into());
        assert_eq!(
            both.verdict(),
            Verdict::NotRun("Rexo: no httpd; Linux: fio failed".into())
        );
        let empty = row(Better::Higher, vec![], Ok(vec![1.0]));
        assert_eq!(empty.verdict(), Verdict::NotRun("Rexo: no samples".into()));
    }

    #[test]
    fn markdown_has_every_column_and_links_charts() {
        let rows = [
            row(Better::Lower, vec![10.0, 12.0, 8.0], Ok(vec![300.0])),
            Row {
                name: "http-1k".into(),
                rexo: Err("no httpd yet".into()),
                ..row(Better::Higher, vec![], Ok(vec![]))
            },
        ];
        let md = markdown(&rows, &ctx());
        assert!(md.contains(
            "| [boot-ready](boot-ready.svg) | 10.0 (8.00..12.0) | 300 | ms | 30.0x | lower | >= 20x | MET |"
        ), "{md}");
        assert!(md.contains("| http-1k | - | - | ms | - | higher | >= 20x | NOT RUN: Rexo: no httpd yet; Linux: no samples |"), "{md}");
        assert!(md.contains("Under TCG the ratios"));
    }

    #[test]
    fn json_is_well_formed_enough() {
        let mut r = row(
            Better::Lower,
            vec![1.5, 2.5],
            Err("a \"quoted\"\nreason".into()),
        );
        r.note = "x\\y".into();
        let text = json(&[r], &ctx());
        assert!(
            text.contains(
                "\"rexo\": {\"samples\": [1.5, 2.5], \"median\": 2, \"min\": 1.5, \"max\": 2.5}"
            ),
            "{text}"
        );
        assert!(
            text.contains("\"linux\": {\"error\": \"a \\\"quoted\\\"\\nreason\"}"),
            "{text}"
        );
        assert!(text.contains("\"note\": \"x\\\\y\""), "{text}");
        assert!(text.contains("\"ratio\": null"));
        let opens = text.matches(['{', '[']).count();
        let closes = text.matches(['}', ']']).count();
        assert_eq!(opens, closes);
    }

    #[test]
    fn svg_draws_bars_and_whiskers() {
        let r = row(Better::Lower, vec![10.0, 20.0, 30.0], Ok(vec![100.0]));
        let chart = svg(&r, "TCG").unwrap();
        assert!(chart.starts_with("<svg") && chart.ends_with("</svg>\n"));
        assert_eq!(chart.matches("<rect").count(), 3, "background and two bars");
        // Rexo's whisker runs from its max (30) to its min (10).
        assert_eq!(chart.matches("<line").count(), 1 + 3 * 2);
        assert!(chart.contains(">20.0<") && chart.contains(">100<"));
        let none = Row {
            rexo: Err("x".into()),
            ..row(Better::Lower, vec![], Err("y".into()))
        };
        assert!(svg(&none, "TCG").is_none());
        let half = Row {
            linux: Err("y".into()),
            ..r
        };
        assert!(svg(&half, "TCG").unwrap().contains("not run"));
    }

    #[test]
    fn wraps_between_words() {
        assert_eq!(wrap("aa bb cc dd", 5), ["aa bb", "cc dd"]);
        assert_eq!(wrap("a verylongword b", 4), ["a", "verylongword", "b"]);
        assert!(wrap("", 10).is_empty());
    }

    #[test]
    fn numbers_keep_three_digits() {
        assert_eq!(number(12345.6), "12346");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1.2345), "1.23");
        assert_eq!(number(0.01234), "0.012");
        assert_eq!(number(0.0), "0");
    }
}
