//! The harness test `docs::rustdoc`: the API reference builds without a warning. It runs
//! `cargo doc --no-deps` with `RUSTDOCFLAGS="-D warnings"` three times, in the shared
//! target directory: for the crates whose host-test modules only a feature brings in
//! (devio's and physmem's `host`, rexo-api's `testing`: dev-dependency features, which
//! `cargo doc` never enables) with all their features; for the workspace on the host (the
//! kernel apart: it builds only for its target) with `--keep-going`, so that every crate's
//! errors are in the log; and for the kernel on `x86_64-unknown-none`. The output goes to
//! `target/test-logs/docs.log`; a failure shows the first errors rustdoc reported.

use crate::harness::{TAIL, last_lines};
use crate::proctree;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The name of the harness test.
pub const TEST_NAME: &str = "docs::rustdoc";

/// The flags every run gives rustdoc: any warning fails the test.
const RUSTDOCFLAGS: &str = "-D warnings";

/// The runs' cargo arguments: the crates with host-test features, those features on; the
/// host's crates (which writes those crates' pages again in their default form); the
/// kernel for its target.
const RUNS: [&[&str]; 3] = [
    &[
        "doc",
        "--no-deps",
        "-p",
        "rexo-devio",
        "-p",
        "rexo-physmem",
        "-p",
        "rexo-api",
        "--all-features",
        "--keep-going",
    ],
    &[
        "doc",
        "--no-deps",
        "--workspace",
        "--exclude",
        "rexo-kernel",
        "--keep-going",
    ],
    &[
        "doc",
        "--no-deps",
        "-p",
        "rexo-kernel",
        "--target",
        "x86_64-unknown-none",
    ],
];

/// Seconds the runs may take together, the dependencies' metadata built from nothing
/// included: cold, 178 s on the 2-core host here under a load of about 11 (141 s the
/// workspace run, 37 s the kernel's; the first run, added since, 3 s more), as
/// docs/testing.md says.
const TIMEOUT_S: u64 = 15 * 60;

/// Runs [`RUNS`] with [`RUSTDOCFLAGS`], their output in `log`. On failure: the reason
/// (the runs that failed, and the timeout) and the first errors of the log.
pub fn check(log: &Path) -> Result<(), (String, Vec<String>)> {
    let root = crate::root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let file = File::create(log)
        .map_err(|e| (format!("cannot create {}: {e}", log.display()), Vec::new()))?;
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_S);
    run_all(log, |args| {
        let out = file.try_clone().map_err(|e| e.to_string())?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        // Left in xtask's process group, where Ctrl-C reaches cargo and rustdoc too.
        let mut child = Command::new(&cargo)
            .args(args)
            .env("RUSTDOCFLAGS", RUSTDOCFLAGS)
            // Cargo would take this one over RUSTDOCFLAGS.
            .env_remove("CARGO_ENCODED_RUSTDOCFLAGS")
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run cargo doc: {e}"))?;
        let left = deadline.saturating_duration_since(Instant::now());
        proctree::wait_or_kill(&mut child, "cargo doc", left)
    })
}

/// Runs each of [`RUNS`] through `run` (its exit status, `None` when it ran out of
/// time), stopping at a timeout, and reports what failed from the output in `log`: every
/// failed run and the timeout, with the log's first errors (or, without any, its last
/// lines).
fn run_all(
    log: &Path,
    mut run: impl FnMut(&[&str]) -> crate::Result<Option<i32>>,
) -> Result<(), (String, Vec<String>)> {
    let mut failed = Vec::new();
    for args in RUNS {
        let command = format!("RUSTDOCFLAGS=\"{RUSTDOCFLAGS}\" cargo {}", args.join(" "));
        match run(args) {
            Ok(Some(0)) => {}
            Ok(Some(code)) => failed.push(format!("`{command}` failed (exit status {code})")),
            Ok(None) => {
                failed.push(format!("`{command}`: timed out after {TIMEOUT_S} s in all"));
                break;
            }
            Err(e) => {
                failed.push(format!("`{command}`: {e}"));
                break;
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let reason = format!("{}; see {}", failed.join("; "), log.display());
    Err((reason, first_diagnostics(&output, TAIL)))
}

/// Cargo's progress lines (`   Checking rexo-api v0.1.0 (...)`), which a failure's
/// report leaves out between rustdoc's messages.
const PROGRESS: &[&str] = &[
    "Checking",
    "Compiling",
    "Documenting",
    "Finished",
    "Generated",
];

/// Up to `n` lines of cargo's `output` from its first warning or error on, cargo's
/// progress lines left out (what rustdoc objected to first, with where), or its last `n`
/// lines when it has none.
fn first_diagnostics(output: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    let is_progress = |line: &&str| {
        let word = line.trim_start().split(' ').next();
        line.starts_with(' ') && word.is_some_and(|word| PROGRESS.contains(&word))
    };
    match lines
        .iter()
        .position(|line| line.starts_with("error") || line.starts_with("warning"))
    {
        Some(first) => lines[first..]
            .iter()
            .filter(|line| !is_progress(line))
            .take(n)
            .map(|line| line.to_string())
            .collect(),
        None => last_lines(output, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_shows_rustdocs_first_errors() {
        let output = "    Checking rexo-api v0.1.0\n Documenting rexo-capi v0.1.0\n\
                      error: public documentation for `frame_mark` links to private item \
                      `Slot::lock`\n   --> api/capi/src/handles.rs:133:7\n\
                      error: could not document `rexo-capi`\n\
                      \x20Documenting rexo-kernel v0.1.0\n\
                      error: unresolved link to `ap_entry`\n";
        assert_eq!(
            first_diagnostics(output, 4),
            [
                "error: public documentation for `frame_mark` links to private item \
                 `Slot::lock`",
                "   --> api/capi/src/handles.rs:133:7",
                "error: could not document `rexo-capi`",
                "error: unresolved link to `ap_entry`",
            ]
        );
    }

    #[test]
    fn a_timeout_after_a_failed_run_keeps_that_runs_errors() {
        // The first run fails with an error, the second runs out of time in a long build.
        let log =
            std::env::temp_dir().join(format!("rexo-docs-timeout-{}.log", std::process::id()));
        std::fs::write(&log, "").unwrap();
        let mut runs = 0;
        let result = run_all(&log, |_| {
            runs += 1;
            let text = if runs == 1 {
                "error: unresolved link to `ap_entry`\nerror: could not document `rexo-devio`\n"
                    .to_string()
            } else {
                "    Checking rexo-api v0.1.0\n".repeat(2 * TAIL)
            };
            let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
            Ok((runs == 1).then_some(101))
        });
        std::fs::remove_file(&log).unwrap();
        assert_eq!(runs, 2, "no run after the timeout");
        let (reason, tail) = result.unwrap_err();
        assert!(reason.contains("failed (exit status 101)"), "{reason}");
        assert!(reason.contains("timed out after 900 s in all"), "{reason}");
        assert_eq!(
            tail,
            [
                "error: unresolved link to `ap_entry`",
                "error: could not document `rexo-devio`"
            ]
        );
    }

    #[test]
    fn output_without_a_diagnostic_shows_its_end() {
        let output = "a\nb\nc\n";
        assert_eq!(first_diagnostics(output, 2), ["b", "c"]);
        assert_eq!(first_diagnostics("", 2), Vec::<String>::new());
    }
}
