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
/// included (about 4 minutes on the 2-core host here, shared).
const TIMEOUT_S: u64 = 15 * 60;

/// Runs [`RUNS`] with [`RUSTDOCFLAGS`], their output in `log`. On failure: the reason
/// (the run that failed, or the timeout) and the first errors of the log.
pub fn check(log: &Path) -> Result<(), (String, Vec<String>)> {
    let root = crate::root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let file = File::create(log)
        .map_err(|e| (format!("cannot create {}: {e}", log.display()), Vec::new()))?;
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_S);
    let mut failed = Vec::new();
    for args in RUNS {
        let command = format!("RUSTDOCFLAGS=\"{RUSTDOCFLAGS}\" cargo {}", args.join(" "));
        let run = || -> crate::Result<Option<i32>> {
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
        };
        match run() {
            Ok(Some(0)) => {}
            Ok(Some(code)) => failed.push(format!("`{command}` failed (exit status {code})")),
            Ok(None) => {
                let reason = format!("`{command}`: timed out after {TIMEOUT_S} s in all");
                let output = std::fs::read_to_string(log).unwrap_or_default();
                return Err((reason, last_lines(&output, TAIL)));
            }
            Err(e) => return Err((format!("`{command}`: {e}"), Vec::new())),
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
    fn output_without_a_diagnostic_shows_its_end() {
        let output = "a\nb\nc\n";
        assert_eq!(first_diagnostics(output, 2), ["b", "c"]);
        assert_eq!(first_diagnostics("", 2), Vec::<String>::new());
    }
}
