//! `cargo xtask test [FILTER]`: host tests, kernel tests, and the QEMU test table,
//! two QEMU runs at a time, logs under target/test-logs/.

use crate::Result;
use crate::deps::{self, Need};
use crate::diskimage::Attach;
use crate::proctree;
use crate::qemu::{self, Accel, End, Machine, Media, Vm};
use crate::testcases::{
    Arg, BAD_TABLE_SIG, Boot, CASES, Case, Check, Cores, DISK_BYTES, LEFT_MXCSR,
    LEFT_X87_CONTROL_WORD,
};
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod selftests;

use selftests::{SELF_TESTS, SelfTest};

/// QEMU runs at the same time (the machine has two cores).
const PARALLEL: usize = 2;
/// Seconds one kernel-test boot may take.
const KERNEL_TEST_TIMEOUT_S: u64 = 120;
/// Seconds building the host tests (`cargo test --no-run`) may take: a first build of
/// the workspace on a fresh machine with the host's 2 cores shared took over 20 minutes
/// (2026-11-27, load 14), and a build that is slow is not a hung test.
const HOST_BUILD_TIMEOUT_S: u64 = 90 * 60;
/// Seconds the host tests may take once built (`cargo test`: a hung test is ended).
const HOST_TEST_TIMEOUT_S: u64 = 20 * 60;
/// Log lines shown under a failure.
pub(crate) const TAIL: usize = 15;

/// One test's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Full test name.
    pub name: String,
    /// How many tests it stands for (a group of host tests counts each).
    pub count: usize,
    /// Passed?
    pub ok: bool,
    /// Why it failed.
    pub reason: String,
    /// The last lines of its log, for failures.
    pub tail: Vec<String>,
    /// How long it took.
    pub time: Duration,
}

impl Outcome {
    fn pass(name: &str, time: Duration) -> Self {
        Self {
            name: name.to_string(),
            count: 1,
            ok: true,
            reason: String::new(),
            tail: Vec::new(),
            time,
        }
    }

    fn fail(name: &str, reason: impl Into<String>, tail: Vec<String>, time: Duration) -> Self {
        Self {
            name: name.to_string(),
            count: 1,
            ok: false,
            reason: reason.into(),
            tail,
            time,
        }
    }

    fn print(&self) {
        let mut out = std::io::stdout().lock();
        if self.ok {
            let _ = writeln!(out, "ok {} ({:.1} s)", self.name, self.time.as_secs_f64());
        } else {
            let _ = writeln!(out, "FAILED {}: {}", self.name, self.reason);
            for line in &self.tail {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
}

/// Which part of a group a filter selects.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Select {
    /// None of it.
    Nothing,
    /// All of it.
    All,
    /// The members whose names contain this.
    Matching(String),
}

/// The groups of test names that are not table cases.
const GROUPS: &[&str] = &["host::", "kernel::", "linux::", "selftest::", "docs::"];

/// Whether `filter` starts with a group prefix other than `prefix`: one of [`GROUPS`] or
/// a table case's group (`boot::` of `boot::pvh-microvm`).
fn names_another_group(prefix: &str, filter: &str) -> bool {
    let case_groups = CASES
        .iter()
        .filter_map(|case| case.name.find("::").map(|end| &case.name[..end + 2]));
    GROUPS
        .iter()
        .copied()
        .chain(case_groups)
        .any(|group| group != prefix && filter.starts_with(group))
}

/// What `filter` selects of the group whose names start with `prefix` (`kernel::`):
/// nothing when the filter starts with another group's prefix (`host::run::tests::`
/// selects nothing of `kernel::`); `selects_cases`: the filter selects table cases, and a
/// filter with `::` that does selects nothing else (outside `prefix`). Otherwise the
/// members whose full names contain the filter: `tests::heap` selects
/// `kernel::tests::heap_allocates_and_frees`.
fn select(prefix: &str, filter: &str, selects_cases: bool) -> Select {
    if filter.is_empty() || prefix.contains(filter) {
        Select::All
    } else if let Some(rest) = filter.strip_prefix(prefix) {
        Select::Matching(rest.to_string())
    } else if names_another_group(prefix, filter) || (filter.contains("::") && selects_cases) {
        Select::Nothing
    } else {
        Select::Matching(filter.to_string())
    }
}

/// Whether `selected`, what a filter selects of a group of one test, selects that test,
/// named `name` in full (`docs::rustdoc`).
fn selects_test(selected: Select, name: &str) -> bool {
    match selected {
        Select::All => true,
        Select::Matching(part) => name.contains(&part),
        Select::Nothing => false,
    }
}

/// The error when a non-empty `filter` ran no test at all: it names the filter and
/// shows how test names look.
fn nothing_selected(filter: &str, outcomes: &[Outcome]) -> Option<String> {
    (!filter.is_empty() && outcomes.is_empty()).then(|| {
        format!(
            "no test name contains `{filter}`; names look like `host::run::tests::defaults`, \
             `kernel::tests::heap_allocates_and_frees` (the kernel's own names without \
             `kernel::`), `boot::pvh-microvm` (the table in xtask/src/testcases.rs) and \
             `docs::rustdoc`"
        )
    })
}

/// `cargo xtask test [FILTER]`; returns the exit status.
pub fn command(words: Vec<String>) -> Result<u8> {
    let filter = match words.as_slice() {
        [] => String::new(),
        [one] if !one.starts_with('-') => one.clone(),
        _ => {
            return Err(format!(
                "`cargo xtask test` takes one optional FILTER and no flags, got `{}`",
                words.join(" ")
            ));
        }
    };
    let root = crate::root();
    let logs = root.join("target/test-logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let cases: Vec<&'static Case> = CASES.iter().filter(|c| c.name.contains(&filter)).collect();
    let self_tests: Vec<&'static SelfTest> = SELF_TESTS
        .iter()
        .filter(|t| t.name.contains(&filter))
        .collect();
    let selects_cases = !cases.is_empty() || !self_tests.is_empty();
    let host = select("host::", &filter, selects_cases);
    let kernel = select("kernel::", &filter, selects_cases);
    let linux = selects_test(
        select("linux::", &filter, selects_cases),
        crate::linux::TEST_NAME,
    );
    let docs = selects_test(
        select("docs::", &filter, selects_cases),
        crate::rustdoc::TEST_NAME,
    );

    let boots_qemu = kernel != Select::Nothing || selects_cases || linux;
    let needs = tool_needs(
        host != Select::Nothing,
        boots_qemu,
        docs,
        &cases,
        &self_tests,
        deps::is_root(),
    );
    let mut outcomes = Vec::new();
    let started = Instant::now();
    let unready = setup_failure(
        || deps::ensure(&needs),
        || crate::baremetal::prepare(&root, &cases),
    );
    // Without the tools only the host tests run; the summary line still comes last.
    let (kernel, linux, docs, selects_cases, cases, self_tests) = match unready {
        Some((step, why)) => {
            let outcome = Outcome::fail(step, why, Vec::new(), started.elapsed());
            outcome.print();
            outcomes.push(outcome);
            (Select::Nothing, false, false, false, Vec::new(), Vec::new())
        }
        None => (kernel, linux, docs, selects_cases, cases, self_tests),
    };
    let (cases, skipped) = install_client_tools(cases);

    for skip in &skipped {
        println!("skipped {}: {}", skip.name, skip.why);
    }
    if host != Select::Nothing {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        for outcome in host_tests(&cargo, &root, &host, &logs.join("host.log")) {
            outcome.print();
            outcomes.push(outcome);
        }
    }
    if docs {
        let started = Instant::now();
        let name = crate::rustdoc::TEST_NAME;
        let outcome = match crate::rustdoc::check(&logs.join("docs.log")) {
            Ok(()) => Outcome::pass(name, started.elapsed()),
            Err((reason, tail)) => Outcome::fail(name, reason, tail, started.elapsed()),
        };
        outcome.print();
        outcomes.push(outcome);
    }
    if kernel != Select::Nothing || selects_cases {
        let started = Instant::now();
        match crate::build::kernel() {
            Err(e) => {
                let outcome = Outcome::fail("build", e, Vec::new(), started.elapsed());
                outcome.print();
                outcomes.push(outcome);
            }
            Ok(elf) => {
                let qemu = QemuTests {
                    kernel,
                    cases,
                    self_tests,
                };
                outcomes.extend(qemu_tests(&root, &elf, qemu, &logs));
            }
        }
    }
    if linux {
        let started = Instant::now();
        let name = crate::linux::TEST_NAME;
        let outcome = match crate::linux::boot_test(&logs.join("linux.log")) {
            Ok(()) => Outcome::pass(name, started.elapsed()),
            Err((reason, tail)) => Outcome::fail(name, reason, tail, started.elapsed()),
        };
        outcome.print();
        outcomes.push(outcome);
    }
    // A filter whose only cases were skipped did select something.
    let nothing = if skipped.is_empty() {
        nothing_selected(&filter, &outcomes)
    } else {
        None
    };
    if let Some(message) = &nothing {
        eprintln!("xtask: error: {message}");
    }
    let (summary, failed) = summary(&outcomes, &skipped);
    for line in summary {
        println!("{line}");
    }
    Ok(u8::from(failed > 0 || nothing.is_some()))
}

/// The first step of readying the host for QEMU tests that fails, named as its failure
/// is (`deps`: installing the tools; `baremetal`: building the BareMetal test programs),
/// with the reason.
fn setup_failure(
    ensure_tools: impl FnOnce() -> Result<()>,
    prepare_baremetal: impl FnOnce() -> Result<()>,
) -> Option<(&'static str, String)> {
    ensure_tools()
        .map_err(|why| ("deps", why))
        .and_then(|()| prepare_baremetal().map_err(|why| ("baremetal", why)))
        .err()
}

/// The host tools the selected tests need: QEMU for the host tests (a few of xtask's
/// boot tiny kernels, one holds an image open) and when QEMU tests run (`boots_qemu`),
/// GRUB for the host tests (xtask's own make an ISO and install a boot disk) and the
/// cases that boot through it, `python3` for the host tests (one runs the pymemcache
/// script's expiry check), OVMF for the cases that boot through it, the C tools for
/// `docs::rustdoc` (`docs`: documenting the kernel runs rexo-image's build script, which
/// compiles the C apps with gcc for the kernel's target), and `ip` for the tap cases when
/// this process is `root` (without root they fail for that reason anyway).
fn tool_needs(
    host_tests: bool,
    boots_qemu: bool,
    docs: bool,
    cases: &[&Case],
    self_tests: &[&SelfTest],
    root: bool,
) -> Vec<Need> {
    let mut needs = Vec::new();
    if host_tests || boots_qemu {
        needs.push(Need::Qemu);
    }
    if host_tests || cases.iter().any(|c| c.boot != Boot::Pvh) || self_tests.iter().any(|t| t.iso) {
        needs.push(Need::Iso);
    }
    if host_tests {
        needs.push(Need::Python);
    }
    if cases.iter().any(|c| c.boot.uefi()) {
        needs.push(Need::Ovmf);
    }
    if docs {
        needs.push(Need::CTools);
    }
    if root && cases.iter().any(|c| c.qemu.iter().any(Arg::on_tap)) {
        needs.push(Need::IpRoute);
    }
    needs
}

/// A case that did not run because its client's tools cannot be installed here.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Skipped {
    /// The case's name.
    name: &'static str,
    /// Why its tools cannot be installed.
    why: String,
}

/// The closing lines: `K skipped: NAME (WHY), ...` when anything was skipped, then
/// always `N passed, M failed`, skips counted in neither; also returns M.
fn summary(outcomes: &[Outcome], skipped: &[Skipped]) -> (Vec<String>, usize) {
    let passed: usize = outcomes.iter().filter(|o| o.ok).map(|o| o.count).sum();
    let failed: usize = outcomes.iter().filter(|o| !o.ok).map(|o| o.count).sum();
    let mut lines = Vec::new();
    if !skipped.is_empty() {
        let names: Vec<String> = skipped
            .iter()
            .map(|skip| format!("{} ({})", skip.name, skip.why))
            .collect();
        lines.push(format!("{} skipped: {}", skipped.len(), names.join(", ")));
    }
    lines.push(format!("{passed} passed, {failed} failed"));
    (lines, failed)
}

/// Installs what the cases' host clients run ([`crate::netclient::Client::needs`]);
/// returns the cases that can run, and each whose tools cannot be installed here (not
/// root, no network) with the reason.
fn install_client_tools(cases: Vec<&'static Case>) -> (Vec<&'static Case>, Vec<Skipped>) {
    let mut failures: Vec<(Need, String)> = Vec::new();
    let mut runnable = Vec::new();
    let mut skipped = Vec::new();
    for case in cases {
        let needs = case.client.map_or(&[][..], |client| client.needs);
        let mut why = None;
        for &need in needs {
            let failure = match failures.iter().find(|(n, _)| *n == need) {
                Some((_, failure)) => Some(failure.clone()),
                None => deps::ensure(&[need]).err().inspect(|failure| {
                    failures.push((need, failure.clone()));
                }),
            };
            why = why.or(failure);
        }
        match why {
            None => runnable.push(case),
            Some(why) => skipped.push(Skipped {
                name: case.name,
                why: why.replace('\n', " "),
            }),
        }
    }
    (runnable, skipped)
}

/// The tests that boot QEMU, as a filter selected them.
struct QemuTests {
    kernel: Select,
    cases: Vec<&'static Case>,
    self_tests: Vec<&'static SelfTest>,
}

/// One QEMU job: the name a panic in it is reported under, and its work.
struct Job {
    name: &'static str,
    run: Box<dyn FnOnce() -> Vec<Outcome> + Send>,
}

impl Job {
    fn new(name: &'static str, run: impl FnOnce() -> Vec<Outcome> + Send + 'static) -> Self {
        Self {
            name,
            run: Box::new(run),
        }
    }
}

/// The text of a panic's payload (`panic!`'s message), for a failure's reason.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

/// Runs `job`; a panic in it (a host-side check of an image the guest wrote, a peer's
/// report) is its failure, so that it still counts and the next jobs still run.
fn run_job(job: Job) -> Vec<Outcome> {
    let started = Instant::now();
    std::panic::catch_unwind(AssertUnwindSafe(job.run)).unwrap_or_else(|payload| {
        let reason = format!("the harness panicked: {}", panic_message(&*payload));
        vec![Outcome::fail(
            job.name,
            reason,
            Vec::new(),
            started.elapsed(),
        )]
    })
}

/// Runs `jobs` [`PARALLEL`] at a time, printing each result as it arrives.
fn run_jobs(jobs: VecDeque<Job>) -> Vec<Outcome> {
    let jobs = Arc::new(Mutex::new(jobs));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (jobs, results) = (Arc::clone(&jobs), Arc::clone(&results));
            std::thread::spawn(move || {
                loop {
                    let job = jobs.lock().map(|mut q| q.pop_front()).ok().flatten();
                    let Some(job) = job else { break };
                    for outcome in run_job(job) {
                        outcome.print();
                        if let Ok(mut r) = results.lock() {
                            r.push(outcome);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        if worker.join().is_err() {
            eprintln!("xtask: a test worker panicked");
        }
    }
    results.lock().map(|r| r.clone()).unwrap_or_default()
}

/// Runs the kernel tests, the table's cases and the self-tests, [`PARALLEL`] QEMU runs
/// at a time, printing each result as it arrives.
fn qemu_tests(root: &Path, elf: &Path, tests: QemuTests, logs: &Path) -> Vec<Outcome> {
    let mut jobs: VecDeque<Job> = VecDeque::new();
    let QemuTests {
        kernel,
        cases,
        self_tests,
    } = tests;
    if kernel != Select::Nothing {
        let (elf, logs) = (elf.to_path_buf(), logs.to_path_buf());
        jobs.push_back(Job::new("kernel", move || {
            kernel_tests(&elf, &kernel, &logs)
        }));
    }
    for case in cases {
        let (root, elf, logs) = (root.to_path_buf(), elf.to_path_buf(), logs.to_path_buf());
        jobs.push_back(Job::new(case.name, move || {
            let started = Instant::now();
            let outcome = run_case(&root, &elf, case, &logs)
                .unwrap_or_else(|e| Outcome::fail(case.name, e, Vec::new(), started.elapsed()));
            vec![outcome]
        }));
    }
    for test in self_tests {
        let (root, elf, logs) = (root.to_path_buf(), elf.to_path_buf(), logs.to_path_buf());
        jobs.push_back(Job::new(test.name, move || {
            let started = Instant::now();
            let env = selftests::Env {
                root: &root,
                elf: &elf,
                logs: &logs,
            };
            vec![match (test.run)(&env) {
                Ok(()) => Outcome::pass(test.name, started.elapsed()),
                Err((reason, tail)) => Outcome::fail(test.name, reason, tail, started.elapsed()),
            }]
        }));
    }
    run_jobs(jobs)
}

// ---------------------------------------------------------------------------
// Host tests.

/// What `cargo test` printed, summed over its test binaries.
#[derive(Debug, Default, PartialEq, Eq)]
struct HostSummary {
    passed: usize,
    failed: Vec<String>,
    result_lines: usize,
    /// The test binaries (cargo's `Running ...` or `Doc-tests ...` line) that printed no
    /// `test result:` line: they crashed (an abort, a stack overflow) or were killed.
    unfinished: Vec<String>,
}

/// Reads `test NAME ... FAILED` and `test result: ... N passed; M failed` lines, and
/// cargo's `Running NAME` and `Doc-tests NAME` lines that each start a test binary.
fn parse_cargo_test(output: &str) -> HostSummary {
    let mut summary = HostSummary::default();
    let mut binary: Option<&str> = None;
    for line in output.lines() {
        // Cargo's status lines, right-aligned as it prints them (a test's own output
        // shown under a failure is not mistaken for one).
        if let Some(started) = line.strip_prefix("     Running ").or_else(|| {
            line.strip_prefix("   Doc-tests ")
                .map(|_| line.trim_start())
        }) {
            summary
                .unfinished
                .extend(binary.replace(started).map(str::to_string));
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            binary = None;
            summary.result_lines += 1;
            let passed = rest.split(';').find_map(|part| {
                let count = part.trim().strip_suffix(" passed")?;
                count.rsplit(' ').next()?.parse::<usize>().ok()
            });
            summary.passed += passed.unwrap_or(0);
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        {
            summary.failed.push(name.to_string());
        }
    }
    summary.unfinished.extend(binary.map(str::to_string));
    summary
}

/// The last `n` lines of `text` (all of them when it has fewer), for a failure's report.
pub(crate) fn last_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|line| line.to_string())
        .collect()
}

/// `cargo`'s arguments for the host tests: every test binary runs even after one
/// failed (`--no-fail-fast`), so that every failure is listed and counted.
fn cargo_test_args(select: &Select) -> Vec<String> {
    let mut args = vec!["test".to_string(), "--no-fail-fast".to_string()];
    if let Select::Matching(filter) = select {
        args.extend(["--".to_string(), filter.clone()]);
    }
    args
}

/// `cargo test` on the default members (libs and xtask) by the program `cargo`, built
/// first and then run, each step with its own time limit; one outcome for the passes and
/// one per failing test.
fn host_tests(cargo: &OsStr, root: &Path, select: &Select, log: &Path) -> Vec<Outcome> {
    let started = Instant::now();
    let file = match std::fs::File::create(log) {
        Ok(file) => file,
        Err(e) => {
            let reason = format!("cannot create {}: {e}", log.display());
            return vec![Outcome::fail("host", reason, Vec::new(), started.elapsed())];
        }
    };
    let build = ["test".to_string(), "--no-run".to_string()];
    let built = run_cargo(cargo, root, &build, &file, HOST_BUILD_TIMEOUT_S);
    let status = match built {
        Ok(Some(0)) => {
            let args = cargo_test_args(select);
            run_cargo(cargo, root, &args, &file, HOST_TEST_TIMEOUT_S)
        }
        Ok(None) => Err(format!(
            "building the host tests timed out after {HOST_BUILD_TIMEOUT_S} s"
        )),
        // A build error: cargo's exit status with no test run, reported below.
        other => other,
    };
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let time = started.elapsed();
    match status {
        Err(e) => vec![Outcome::fail("host", e, last_lines(&output, TAIL), time)],
        Ok(code) => host_outcomes(&output, code, log, time),
    }
}

/// Runs `cargo` with `args` in `root`, its output appended to `log`, for at most
/// `timeout_s` seconds: its exit status, or `None` when it ran past that and was ended
/// with every process it started.
fn run_cargo(
    cargo: &OsStr,
    root: &Path,
    args: &[String],
    log: &std::fs::File,
    timeout_s: u64,
) -> Result<Option<i32>> {
    let out = log.try_clone().map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let program = format!("cargo {}", args.join(" "));
    // Left in xtask's process group, where Ctrl-C reaches cargo and its test binaries
    // too; a timeout ends them by their parent links (`proctree::kill_tree`).
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    proctree::wait_or_kill(&mut child, &program, Duration::from_secs(timeout_s))
}

/// The outcomes of a `cargo test` that printed `output` (also in `log`) and exited
/// with `code` (`None`: it ran past [`HOST_TEST_TIMEOUT_S`] and was killed): one for the
/// passes, one per failing test, one per test binary that ended without a result, one
/// for the timeout, and one when cargo failed before any of that (a build error).
fn host_outcomes(output: &str, code: Option<i32>, log: &Path, time: Duration) -> Vec<Outcome> {
    let summary = parse_cargo_test(output);
    let mut outcomes = Vec::new();
    if summary.passed > 0 {
        let mut pass = Outcome::pass(&format!("host ({} tests)", summary.passed), time);
        pass.count = summary.passed;
        outcomes.push(pass);
    }
    for name in &summary.failed {
        let reason = format!("see {}", log.display());
        outcomes.push(Outcome::fail(
            &format!("host::{name}"),
            reason,
            Vec::new(),
            time,
        ));
    }
    for binary in &summary.unfinished {
        let reason = format!(
            "a test binary ended without a result (crashed?): {binary}; see {}",
            log.display()
        );
        outcomes.push(Outcome::fail("host", reason, Vec::new(), time));
    }
    let cargo_failure = match code {
        None => Some(format!("timed out after {HOST_TEST_TIMEOUT_S} s")),
        Some(code) if code != 0 && summary.failed.is_empty() && summary.unfinished.is_empty() => {
            Some(format!(
                "cargo test failed (exit status {code}) before running tests"
            ))
        }
        Some(_) => None,
    };
    if let Some(reason) = cargo_failure {
        outcomes.push(Outcome::fail(
            "host",
            reason,
            last_lines(output, TAIL),
            time,
        ));
    }
    outcomes
}

// ---------------------------------------------------------------------------
// Kernel tests.

/// What one kernel-test boot printed.
#[derive(Debug, Default, PartialEq, Eq)]
struct KernelRun {
    /// Passing tests and how long each took (from the previous test or ready line).
    passed: Vec<(String, Duration)>,
    /// Failing tests, likewise.
    failed: Vec<(String, Duration)>,
    /// A test that started and never finished.
    unfinished: Option<String>,
    done: bool,
}

/// Reads `test NAME ... ok|FAILED` and `rexo: tests done` lines, each with the time
/// it arrived.
fn parse_kernel_run<'a>(lines: impl Iterator<Item = (Duration, &'a str)>) -> KernelRun {
    let mut run = KernelRun::default();
    let mut mark = Duration::ZERO;
    for (at, line) in lines {
        let line = line.trim();
        if line.contains("rexo: tests done") {
            run.done = true;
        } else if qemu::Ready::parse(line).is_some() {
            mark = at;
        } else if let Some((name, result)) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.split_once(" ..."))
        {
            let name = name.trim().to_string();
            let took = at.saturating_sub(mark);
            run.unfinished = None;
            match result.trim() {
                "ok" => run.passed.push((name, took)),
                "FAILED" => run.failed.push((name, took)),
                _ => run.unfinished = Some(name),
            }
            mark = at;
        }
    }
    run
}

/// What a failing kernel test's report shows: the `!!! rexo:` lines of its crash report
/// (a panic's message with the lines it spans) after its `test NAME ...` line and before
/// the last `n` lines, at most `n` of them, then `...` and the last `n` lines
/// ([`qemu::Capture::tail`]). The tail alone is the end of the register dump and the
/// backtrace, which leave the panic's message and location out.
fn failure_lines(capture: &qemu::Capture, test: &str, n: usize) -> Vec<String> {
    let tail_start = capture.lines.len().saturating_sub(n);
    let started = format!("test {test} ...");
    let before_tail = &capture.lines[..tail_start];
    let from = before_tail
        .iter()
        .rposition(|line| !line.stderr && line.text.trim().starts_with(&started))
        .map_or(tail_start, |at| at + 1);
    let mut report = Vec::new();
    let mut in_panic_message = false;
    for line in before_tail[from..].iter().filter(|line| !line.stderr) {
        let text = line.text.trim_end();
        if text.starts_with("!!! rexo:") {
            in_panic_message = text.starts_with("!!! rexo: panic");
            report.push(text.to_string());
        } else if in_panic_message {
            report.push(text.to_string());
        }
    }
    report.truncate(n);
    if !report.is_empty() {
        report.push("...".to_string());
    }
    report.extend(capture.tail(n));
    report
}

/// Boots with `test` (or `test=FILTER`) on microvm; after a failure or crash boots
/// again with `test.after=NAME` until the kernel says `rexo: tests done`.
fn kernel_tests(elf: &Path, select: &Select, logs: &Path) -> Vec<Outcome> {
    let base = match select {
        Select::Matching(filter) => format!("test={filter}"),
        _ => "test".to_string(),
    };
    let mut outcomes = Vec::new();
    let mut after: Option<String> = None;
    for boot in 1.. {
        let started = Instant::now();
        let append = match &after {
            Some(name) => format!("{base} test.after={name}"),
            None => base.clone(),
        };
        let vm = Vm::pvh(Machine::Microvm, elf, &append);
        let log = logs.join(format!("kernel-{boot}.log"));
        let capture = vm.args(&logs.join("scratch")).and_then(|args| {
            qemu::run_captured(
                &args,
                Duration::from_secs(KERNEL_TEST_TIMEOUT_S),
                Some(&log),
                |_| false,
            )
        });
        let capture = match capture {
            Ok(c) => c,
            Err(e) => {
                outcomes.push(Outcome::fail("kernel", e, Vec::new(), started.elapsed()));
                break;
            }
        };
        let run = parse_kernel_run(capture.serial().map(|l| (l.at, l.text.as_str())));
        let time = started.elapsed();
        for (name, took) in &run.passed {
            outcomes.push(Outcome::pass(&format!("kernel::{name}"), *took));
        }
        for (name, took) in &run.failed {
            let reason = format!("see {}", log.display());
            outcomes.push(Outcome::fail(
                &format!("kernel::{name}"),
                reason,
                failure_lines(&capture, name, TAIL),
                *took,
            ));
        }
        if let Some(name) = &run.unfinished {
            let reason = format!("crashed or hung ({:?}); see {}", capture.end, log.display());
            outcomes.push(Outcome::fail(
                &format!("kernel::{name}"),
                reason,
                failure_lines(&capture, name, TAIL),
                time,
            ));
        }
        if run.done {
            // A failing test ends its boot with its crash report: only passes get here.
            if capture.end != End::Exited(33) {
                let reason = format!(
                    "tests done, but QEMU ended with {:?} (expected exit 33)",
                    capture.end
                );
                outcomes.push(Outcome::fail("kernel", reason, capture.tail(TAIL), time));
            }
            break;
        }
        let resume = run
            .unfinished
            .clone()
            .or_else(|| run.failed.last().map(|(name, _)| name.clone()));
        match resume {
            Some(name) if Some(&name) != after.as_ref() => after = Some(name),
            _ => {
                let reason = format!(
                    "no `rexo: tests done` line (QEMU ended with {:?}); see {}",
                    capture.end,
                    log.display()
                );
                outcomes.push(Outcome::fail("kernel", reason, capture.tail(TAIL), time));
                break;
            }
        }
    }
    outcomes
}

// ---------------------------------------------------------------------------
// Table cases.

/// The kernel's maximum core count, from the `cores` row of docs/kernel-interface.md
/// (`| \`cores\` | 1..=N | ...`).
fn kernel_max_cores(doc: &str) -> Result<u32> {
    let row = doc
        .lines()
        .find(|l| l.trim_start().starts_with("| `cores`"))
        .ok_or("docs/kernel-interface.md has no `cores` row")?;
    let range = row
        .split('|')
        .nth(2)
        .map(str::trim)
        .ok_or("the `cores` row of docs/kernel-interface.md has no value column")?;
    range
        .strip_prefix("1..=")
        .and_then(|n| n.trim_matches('`').parse().ok())
        .ok_or_else(|| {
            format!(
                "docs/kernel-interface.md does not state the maximum core count yet (`cores` row says `{range}`, expected `1..=N`)"
            )
        })
}

/// Tracks which checks the serial output has satisfied so far.
struct Checker {
    checks: Vec<Check>,
    /// Per check, the lines that matched it.
    hits: Vec<usize>,
    /// Per check, the first line that matched it (what a `Lacks` check names).
    first_hit: Vec<Option<String>>,
    max_cores: Option<u32>,
    in_backtrace: bool,
    last_ready: Option<String>,
    /// Ready lines seen: a boot prints exactly one, so a second is a failure in every case.
    ready_lines: usize,
}

impl Checker {
    fn new(checks: &[Check], max_cores: Option<u32>) -> Self {
        Self {
            checks: checks.to_vec(),
            hits: vec![0; checks.len()],
            first_hit: vec![None; checks.len()],
            max_cores,
            in_backtrace: false,
            last_ready: None,
            ready_lines: 0,
        }
    }

    /// `text` with `{max}` and `{max+1}` replaced by the kernel's maximum core count and
    /// one more (left as they are when it is unknown).
    fn expand(&self, text: &str) -> String {
        match self.max_cores {
            Some(max) => text
                .replace("{max+1}", &(max + 1).to_string())
                .replace("{max}", &max.to_string()),
            None => text.to_string(),
        }
    }

    fn cores(&self, cores: Cores) -> Option<u32> {
        match cores {
            Cores::N(n) => Some(n),
            Cores::Max => self.max_cores,
            Cores::AboveMax => self.max_cores.map(|m| m + 1),
        }
    }

    fn feed(&mut self, line: &str) {
        let lower = line.to_lowercase();
        if qemu::Ready::parse(line).is_some() {
            self.last_ready = Some(line.to_string());
            self.ready_lines += 1;
        }
        for i in 0..self.checks.len() {
            let hit = match self.checks[i] {
                Check::Ready {
                    cores,
                    mem_min,
                    mem_max,
                } => qemu::Ready::parse(line).is_some_and(|r| {
                    Some(r.cores) == self.cores(cores) && (mem_min..=mem_max).contains(&r.mem_mib)
                }),
                Check::Has(text) | Check::Count(text, _) | Check::Lacks(text) => {
                    line.contains(text)
                }
                Check::Warn(text) => {
                    line.contains("WARN") && lower.contains(&self.expand(text).to_lowercase())
                }
                Check::SymbolizedFrame => self.in_backtrace && line.contains("::"),
                Check::Logged(messages) => messages
                    .get(self.hits[i])
                    .is_some_and(|&message| is_logged(line, message)),
                Check::QemuSaid(_) | Check::QemuNeverSaid(_) => false,
            };
            if hit {
                self.hits[i] += 1;
                self.first_hit[i].get_or_insert_with(|| line.trim().to_string());
            }
        }
        if line.contains("backtrace:") {
            self.in_backtrace = true;
        }
    }

    /// Takes a line of QEMU's own output (its stderr), which only the `Qemu*` checks
    /// look at.
    fn feed_qemu(&mut self, line: &str) {
        for i in 0..self.checks.len() {
            if let Check::QemuSaid(text) | Check::QemuNeverSaid(text) = self.checks[i]
                && line.contains(text)
            {
                self.hits[i] += 1;
                self.first_hit[i].get_or_insert_with(|| line.trim().to_string());
            }
        }
    }

    /// Whether check `i` holds so far.
    fn met(&self, i: usize) -> bool {
        match self.checks[i] {
            Check::Count(_, n) => self.hits[i] >= n,
            Check::Lacks(_) | Check::QemuNeverSaid(_) => self.hits[i] == 0,
            Check::Logged(messages) => self.hits[i] == messages.len(),
            _ => self.hits[i] > 0,
        }
    }

    fn all_met(&self) -> bool {
        self.ready_lines <= 1 && (0..self.checks.len()).all(|i| self.met(i))
    }

    /// What is still missing, for the failure message.
    fn missing(&self) -> Vec<String> {
        let extra_ready = (self.ready_lines > 1)
            .then(|| format!("a single ready line (got {})", self.ready_lines));
        (0..self.checks.len())
            .filter(|&i| !self.met(i))
            .map(|i| match self.checks[i] {
                Check::Ready {
                    cores,
                    mem_min,
                    mem_max,
                } => {
                    let cores = self.cores(cores).map_or("?".into(), |c| c.to_string());
                    let range = if mem_max == u64::MAX {
                        String::new()
                    } else {
                        format!(" mem={mem_min}..={mem_max} MiB")
                    };
                    let seen = match &self.last_ready {
                        Some(line) => format!(" (got `{}`)", line.trim()),
                        None => " (no ready line)".into(),
                    };
                    format!("ready line cores={cores}{range}{seen}")
                }
                Check::Has(text) => format!("`{text}`"),
                Check::Count(text, n) => {
                    format!("{n} lines with `{text}` (got {})", self.hits[i])
                }
                Check::Lacks(text) => format!(
                    "no line with `{text}` (got `{}`)",
                    self.first_hit[i].as_deref().unwrap_or_default()
                ),
                Check::Warn("") => "a WARN line".into(),
                Check::Warn(text) => format!("a WARN line naming `{}`", self.expand(text)),
                Check::SymbolizedFrame => "a symbolized backtrace frame".into(),
                Check::Logged(messages) => format!(
                    "the log lines {messages:?} in this order (got the first {})",
                    self.hits[i]
                ),
                Check::QemuSaid(text) => format!("QEMU's `{text}`"),
                Check::QemuNeverSaid(text) => format!(
                    "no QEMU line with `{text}` (got `{}`)",
                    self.first_hit[i].as_deref().unwrap_or_default()
                ),
            })
            .chain(extra_ready)
            .collect()
    }
}

/// Whether `line` is a kernel log line (`[T us cN] LEVEL MESSAGE`, the level padded to 5
/// characters) whose whole message is `message`, where a `*` stands for any text.
fn is_logged(line: &str, message: &str) -> bool {
    let Some(logged) = line
        .trim_end()
        .split_once("] ")
        .and_then(|(_, rest)| rest.get(6..))
    else {
        return false;
    };
    match message.split_once('*') {
        Some((head, tail)) => {
            logged.len() >= head.len() + tail.len()
                && logged.starts_with(head)
                && logged.ends_with(tail)
        }
        None => logged == message,
    }
}

/// An ACPI table (signature [`BAD_TABLE_SIG`]) with a header and a body, whose
/// checksum byte is deliberately wrong.
pub fn bad_acpi_table() -> Vec<u8> {
    let body = b"Rexo test: this table's checksum is wrong on purpose.";
    let len = 36 + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(BAD_TABLE_SIG.as_bytes());
    t.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    t.push(1); // revision
    t.push(0); // checksum, fixed below
    t.extend_from_slice(b"REXO  "); // OEM id
    t.extend_from_slice(b"BADCSUM "); // OEM table id
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(b"REXO"); // creator id
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    let sum = t.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
    // A correct checksum makes the sum 0; this one is off by one.
    t[9] = 0u8.wrapping_sub(sum).wrapping_add(1);
    t
}

/// Adds a client's notes (what it checked, its figures) to the end of a case's log.
fn append_notes(log: &Path, client: &str, notes: &[String]) {
    let file = std::fs::OpenOptions::new().append(true).open(log);
    if let Ok(mut file) = file {
        for note in notes {
            let _ = writeln!(file, "# {client}: {note}");
        }
    }
}

/// Boots one table case and checks its output.
/// The firmware a case boots under: OVMF for UEFI, else the machine's own BIOS.
fn firmware(boot: Boot) -> Result<Option<deps::Firmware>> {
    Ok(if boot.uefi() {
        Some(deps::ovmf()?)
    } else {
        None
    })
}

/// What is wrong with how `case`'s QEMU run ended, if anything: a case with `exit:
/// Some(code)` must exit with that status; one with `exit: None` must be stopped by the
/// harness (its checks held, or, with [`Arg::KillAfterFlush`], its disks flushed), so
/// QEMU exiting first is a failure even when every check held; a timeout always is.
fn end_problem(case: &Case, end: &End) -> Option<String> {
    match (case.exit, end) {
        (Some(want), End::Exited(got)) if want != *got => {
            Some(format!("QEMU exit status {got}, expected {want}"))
        }
        (_, End::TimedOut) => Some(format!("timed out after {} s", case.timeout_s)),
        (None, End::Exited(got)) => Some(format!("QEMU exited with status {got} first")),
        _ => None,
    }
}

/// What a case's client of QEMU's gdb stub does while the guest waits (`-S`).
#[derive(Clone, Copy)]
enum GdbJob {
    /// [`Arg::BadChecksumTable`]'s: break the table's checksum at the kernel's entry.
    BreakTableChecksum,
    /// [`Arg::FpuControlsLeftChanged`]'s: change every vCPU's x87 control word and MXCSR.
    LeaveFpuControls,
}

fn run_case(root: &Path, elf: &Path, case: &Case, logs: &Path) -> Result<Outcome> {
    let started = Instant::now();
    let file_name = case.name.replace("::", "-");
    let scratch = logs.join("scratch").join(&file_name);
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let needs_max = matches!(case.cores, Cores::Max | Cores::AboveMax)
        || case.checks.iter().any(|c| match c {
            Check::Ready { cores, .. } => matches!(cores, Cores::Max | Cores::AboveMax),
            Check::Warn(text) => text.contains("{max"),
            _ => false,
        });
    let max_cores = if needs_max {
        let doc_path = root.join("docs/kernel-interface.md");
        let doc = std::fs::read_to_string(&doc_path)
            .map_err(|e| format!("cannot read {}: {e}", doc_path.display()))?;
        Some(kernel_max_cores(&doc)?)
    } else {
        None
    };
    let mut checker = Checker::new(case.checks, max_cores);
    let cores = checker.cores(case.cores).ok_or("no core count")?;
    let media = match case.boot {
        Boot::Pvh => Media::Pvh {
            kernel: elf.to_path_buf(),
            append: case.append.to_string(),
            initrd: None,
        },
        Boot::IsoBios | Boot::IsoUefi => {
            let iso = scratch.join("rexo.iso");
            crate::image::build_iso(elf, case.append, &[], &iso)?;
            let firmware = firmware(case.boot)?;
            Media::Cdrom { iso, firmware }
        }
        Boot::Disk { device, .. } => {
            let image = scratch.join("boot.img");
            crate::fsimage::bootable_site(&image, elf, case.append)?;
            let firmware = firmware(case.boot)?;
            let device = device.to_string();
            Media::Disk {
                image,
                device,
                firmware,
            }
        }
    };
    let mut extra: Vec<String> = case.qemu_args.iter().map(|a| a.to_string()).collect();
    let mut gdb_job = None;
    let mut peers = Vec::new();
    let mut images = Vec::new();
    let mut kill_after_flush = false;
    let mut keyboard = None;
    // The monitor socket of a controller empty at boot, until the keyboard is plugged in.
    let mut plug = None;
    let mut monitor = None;
    let mut bmfs_image = None;
    let mut forwards = Vec::new();
    let mut flood = None;
    let mut rexofs_image = None;
    let mut partitioned_image = None;
    let mut xn_image = None;
    let mut loop_nics = 0;
    // The namespace of a tap device (dropped, and so deleted, at the end of the case),
    // and the peer on it.
    let mut tap = None;
    let mut queue_peer = None;
    // Disks made from an image builder: each in the scratch folder, with its own drive
    // id after the pattern disks and the faulty disk (`case.qemu.len() + 2`).
    let mut made_disks = 0;
    let mut made_disk = |name: &str,
                         make: &dyn Fn(&Path) -> Result<()>,
                         device: &'static str,
                         extra: &mut Vec<String>|
     -> Result<std::path::PathBuf> {
        let path = scratch.join(name);
        make(&path)?;
        made_disks += 1;
        let id = case.qemu.len() + 2 + made_disks;
        extra.extend(crate::diskimage::args(id, Attach::Device(device), &path)?);
        Ok(path)
    };
    let zeroed = |path: &Path| crate::diskimage::create(path, DISK_BYTES);
    for arg in case.qemu {
        match arg {
            Arg::Nic(model) => {
                let (peer, args) = crate::netpeer::Peer::start(peers.len(), model)?;
                extra.extend(args);
                peers.push(peer);
            }
            Arg::LoopNic(model) => {
                // Netdev ids apart from the peers' (`n0`, `n1`, ...).
                let port = crate::netpeer::free_port()?;
                loop_nics += 1;
                let id = 100 + loop_nics;
                extra.extend(crate::netpeer::nic_args(id, model, port, port));
            }
            Arg::ScratchDisk(device) => {
                made_disk("scratch.img", &zeroed, device, &mut extra)?;
            }
            Arg::XnDisk(device) => {
                xn_image = Some(made_disk("xn.img", &zeroed, device, &mut extra)?);
            }
            Arg::GrownXnDisk(device) => {
                let grown = |path: &Path| crate::xnimage::create_grown(path, DISK_BYTES);
                xn_image = Some(made_disk("xn.img", &grown, device, &mut extra)?);
            }
            Arg::Disk(Attach::Faulty(device)) => {
                // Its own drive id; its image holds an injected error, so it is not checked.
                let path = scratch.join("faulty.img");
                crate::diskimage::create(&path, DISK_BYTES)?;
                let id = case.qemu.len() + 2;
                extra.extend(crate::diskimage::args(id, Attach::Faulty(device), &path)?);
            }
            Arg::Disk(attach) => {
                let path = scratch.join(format!("disk{}.img", images.len()));
                crate::diskimage::create(&path, DISK_BYTES)?;
                extra.extend(crate::diskimage::args(images.len(), *attach, &path)?);
                images.push(path);
            }
            Arg::BmfsDisk(device) => {
                let programs = |path: &Path| {
                    crate::disk::image_of_programs(path, Path::new(crate::baremetal::OUT_DIR))
                };
                bmfs_image = Some(made_disk("bmfs.img", &programs, device, &mut extra)?);
            }
            Arg::RexoFsDisk(device) => {
                let make = crate::fsimage::image_for_monitor;
                rexofs_image = Some(made_disk("rexofs.img", &make, device, &mut extra)?);
            }
            Arg::PartitionedDisk(device) => {
                let make = crate::fsimage::partitioned_for_monitor;
                partitioned_image = Some(made_disk("partitioned.img", &make, device, &mut extra)?);
            }
            Arg::RexoFsSiteDisk(device) => {
                made_disk(
                    "rexofs-site.img",
                    &crate::fsimage::image_of_site,
                    device,
                    &mut extra,
                )?;
            }
            Arg::DamagedRexoFsSiteDisk(device) => {
                made_disk(
                    "rexofs-damaged.img",
                    &crate::fsimage::damaged_image_of_site,
                    device,
                    &mut extra,
                )?;
            }
            Arg::SiteDisk(device) => {
                made_disk("site.img", &crate::disk::image_of_site, device, &mut extra)?;
            }
            Arg::UsbKeyboard(keys) => {
                let (args, socket) = crate::usbkeys::qemu_args(&scratch, true)?;
                extra.extend(args);
                keyboard = Some((socket, *keys));
            }
            Arg::UsbKeyboardPlugged(keys) => {
                let (args, socket) = crate::usbkeys::qemu_args(&scratch, false)?;
                extra.extend(args);
                plug = Some(socket.clone());
                keyboard = Some((socket, *keys));
            }
            Arg::Monitor { after, command } => {
                let (args, socket) = crate::hmp::qemu_args(&scratch)?;
                extra.extend(args);
                monitor = Some((socket, *after, *command));
            }
            Arg::KillAfterFlush => kill_after_flush = true,
            Arg::SynFlood(model) => {
                let index = peers.len();
                let (peer, args) =
                    crate::netpeer::Peer::start_with(index, model, crate::synflood::run)?;
                extra.extend(args);
                flood = Some(peer);
            }
            Arg::TapQueues(model) => {
                let net = crate::tapnet::TapNet::create("test", crate::queuepeer::QUEUES)?;
                extra.extend(net.qemu_args(model));
                queue_peer = Some(crate::queuepeer::start(net.netns()));
                tap = Some(net);
            }
            Arg::TapPairs(model) => {
                let net = crate::tapnet::TapNet::create("tap", 2)?;
                extra.extend(net.qemu_args(model));
                tap = Some(net);
            }
            Arg::Tap(model) => {
                let net = crate::tapnet::TapNet::create("tap", 1)?;
                extra.extend(net.qemu_args(model));
                tap = Some(net);
            }
            Arg::TapNarrowPath(model) => {
                let net = crate::tapnet::TapNet::create("tap", 1)?;
                let net = net.with_narrow_path(crate::tapnet::NARROW_PATH_MTU)?;
                extra.extend(net.qemu_args(model));
                tap = Some(net);
            }
            Arg::UserNet { model, tcp, udp } => {
                let ports = crate::netclient::Forwards::free(tcp, udp)?;
                extra.extend(ports.qemu_args(forwards.len(), model));
                forwards.push(ports);
            }
            Arg::BadChecksumTable => {
                // The comma in its name is QEMU's to read as part of the value
                // (`option_path` doubles it), so the case checks that escape.
                let path = scratch.join("bad,checksum.aml");
                std::fs::write(&path, bad_acpi_table())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                let port = crate::gdb::free_port()?;
                extra.extend([
                    "-acpitable".into(),
                    format!("file={}", crate::qemu::option_path(&path)?),
                    "-S".into(),
                    "-gdb".into(),
                    format!("tcp:127.0.0.1:{port}"),
                ]);
                gdb_job = Some((port, GdbJob::BreakTableChecksum));
            }
            Arg::FpuControlsLeftChanged => {
                let port = crate::gdb::free_port()?;
                extra.extend(["-S".into(), "-gdb".into(), format!("tcp:127.0.0.1:{port}")]);
                gdb_job = Some((port, GdbJob::LeaveFpuControls));
            }
        }
    }
    let vm = Vm {
        machine: case.machine,
        machine_props: case.machine_props.iter().map(|p| p.to_string()).collect(),
        cores,
        mem_mib: case.mem_mib,
        accel: Accel::Tcg,
        media,
        extra,
    };
    let log = logs.join(format!("{file_name}.log"));
    let stop_at_checks = case.exit.is_none() && !kill_after_flush;
    let mut flushed = 0;
    let patcher = gdb_job.map(|(port, job)| match job {
        GdbJob::BreakTableChecksum => {
            // The PVH entry gdb stops at is read from the full ELF (its stripped copy,
            // which the guest boots, has the same program headers).
            let elf = crate::build::debug_elf();
            std::thread::spawn(move || {
                crate::gdb::corrupt_acpi_checksum(port, &elf, BAD_TABLE_SIG)
                    .map_err(|e| format!("could not break the table's checksum: {e}"))
            })
        }
        GdbJob::LeaveFpuControls => std::thread::spawn(move || {
            crate::gdb::leave_fpu_controls(port, LEFT_X87_CONTROL_WORD, LEFT_MXCSR)
                .map_err(|e| format!("could not change the x87 control word and MXCSR: {e}"))
        }),
    });
    // The client checks the first user-networking interface's services.
    let ports = forwards.into_iter().next().unwrap_or_default();
    let mut client_thread = None;
    let mut typist = None;
    let mut plugger = None;
    let mut commander = None;
    let ticking = case.client.is_some() && stop_at_checks;
    let capture = qemu::run_inner(
        tap.as_ref().map(crate::tapnet::TapNet::netns),
        &vm.args(&scratch)?,
        case.input.as_bytes(),
        Duration::from_secs(case.timeout_s),
        Some(&log),
        ticking,
        |line| {
            // A tick is an empty line that did not come from the guest.
            if !(ticking && line.text.is_empty()) {
                checker.feed(&line.text);
            }
            if let Some(client) = case.client
                && client_thread.is_none()
                && line.text.contains(client.after)
            {
                let ports = ports.clone();
                // On a tap the client talks to the guest from inside its namespace (the
                // far one behind a narrow path).
                let netns = tap.as_ref().map(|net| net.client_netns().to_string());
                client_thread = Some(std::thread::spawn(move || {
                    if let Some(netns) = &netns {
                        crate::tapnet::enter(netns)?;
                    }
                    (client.run)(&ports)
                }));
            }
            if let Some(socket) = plug.take_if(|_| line.text.ends_with(crate::usbkeys::EMPTY)) {
                plugger = Some(std::thread::spawn(move || crate::usbkeys::plug(&socket)));
            }
            if let Some((socket, _, command)) =
                monitor.take_if(|(_, after, _)| line.text.contains(*after))
            {
                commander = Some(std::thread::spawn(move || {
                    crate::hmp::run(&socket, command)
                }));
            }
            if let Some((socket, keys)) =
                keyboard.take_if(|_| line.text.contains(crate::usbkeys::BOUND))
            {
                typist = Some(std::thread::spawn(move || {
                    crate::usbkeys::type_keys(&socket, keys)
                }));
            }
            if line.text.contains("diskcheck: disk ") && line.text.contains(": flushed") {
                flushed += 1;
            }
            // A case that stops at its checks waits for its client too (the run is asked
            // again every tick while the guest is quiet).
            let client_done = case.client.is_none()
                || client_thread
                    .as_ref()
                    .is_some_and(|thread| thread.is_finished());
            (kill_after_flush && flushed >= images.len())
                || (stop_at_checks && checker.all_met() && client_done)
        },
    )?;
    let time = started.elapsed();
    for line in capture.lines.iter().filter(|line| line.stderr) {
        checker.feed_qemu(&line.text);
    }
    let missing = checker.missing();
    let mut reasons: Vec<String> = end_problem(case, &capture.end).into_iter().collect();
    if let Some(patcher) = patcher {
        match patcher.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => reasons.push(e),
            Err(_) => reasons.push("the gdb stub's client panicked".into()),
        }
    }
    if !missing.is_empty() {
        reasons.push(format!("missing {}", missing.join(", ")));
    }
    if let Some(client) = case.client {
        match client_thread.map(|thread| thread.join()) {
            None => reasons.push(format!(
                "the {} client never started (no line with `{}`)",
                client.name, client.after
            )),
            Some(Err(_)) => reasons.push(format!("the {} client panicked", client.name)),
            Some(Ok(Err(e))) => reasons.push(format!("{}: {e}", client.name)),
            Some(Ok(Ok(notes))) => append_notes(&log, client.name, &notes),
        }
    }
    if let Some(plugger) = plugger {
        match plugger.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => reasons.push(format!("plugging in the USB keyboard: {e}")),
            Err(_) => reasons.push("the USB keyboard's plugger panicked".into()),
        }
    } else if plug.is_some() {
        reasons.push(format!(
            "the empty USB controller was never bound (no line ending with `{}`)",
            crate::usbkeys::EMPTY
        ));
    }
    if let Some(commander) = commander {
        match commander.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => reasons.push(format!("QEMU's monitor: {e}")),
            Err(_) => reasons.push("the monitor command's thread panicked".into()),
        }
    } else if let Some((_, after, command)) = monitor {
        reasons.push(format!("`{command}` never sent (no line with `{after}`)"));
    }
    if let Some(typist) = typist {
        match typist.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => reasons.push(format!("typing on the USB keyboard: {e}")),
            Err(_) => reasons.push("the USB keyboard's typist panicked".into()),
        }
    } else if keyboard.is_some() {
        reasons.push(format!(
            "the USB keyboard was never bound (no line with `{}`)",
            crate::usbkeys::BOUND
        ));
    }
    // A BMFS disk, read back by the host tool's code: the files the case's input
    // deleted (`rm NAME`) are gone, the others still there, and the copies of
    // `cp NOTES NEW` (NEW in double quotes when it holds a space) hold the notes' bytes.
    if let Some(path) = bmfs_image {
        let removed: Vec<&str> = case
            .input
            .split('\r')
            .filter_map(|line| line.strip_prefix("rm "))
            .collect();
        match crate::disk::files_of(&path) {
            Ok(files) => {
                if let Some(kept) = removed.iter().find(|name| files.iter().any(|f| f == *name)) {
                    reasons.push(format!(
                        "the BMFS image still holds {kept}, deleted in Rexo"
                    ));
                }
                if !files.iter().any(|f| f == crate::disk::NOTES.0) {
                    reasons.push(format!("the BMFS image lost {}", crate::disk::NOTES.0));
                }
                let copies = case
                    .input
                    .split('\r')
                    .filter_map(|line| line.strip_prefix(&format!("cp {} ", crate::disk::NOTES.0)))
                    .map(|copy| copy.trim_matches('"'));
                for copy in copies {
                    match crate::disk::read_file(&path, copy) {
                        Ok(bytes) if bytes == crate::disk::NOTES.1.as_bytes() => {}
                        Ok(_) => {
                            reasons.push(format!("{copy} on the image differs from the notes"))
                        }
                        Err(e) => reasons.push(format!("{copy} on the image: {e}")),
                    }
                }
            }
            Err(e) => reasons.push(format!("the BMFS image after the run: {e}")),
        }
    }
    // The host ends of the devices: after QEMU has ended, nothing more changes there.
    for (index, peer) in peers.into_iter().enumerate() {
        match peer.finish() {
            Ok(report) => {
                if let Some(problem) = report.problem() {
                    reasons.push(format!(
                        "nic {index}'s peer: {problem} ({})",
                        report.summary()
                    ));
                }
            }
            Err(e) => reasons.push(format!("nic {index}'s peer: {e}")),
        }
    }
    if let Some(path) = rexofs_image
        && let Err(e) = crate::fsimage::check_after_monitor(&path)
    {
        reasons.push(format!("the Rexo file system image: {e}"));
    }
    if let Some(path) = xn_image {
        let serial: Vec<&str> = capture.serial().map(|line| line.text.as_str()).collect();
        if let Err(e) = crate::xnimage::check_after_monitor(&path, 0, &serial) {
            reasons.push(format!("the extent table after the run: {e}"));
        }
    }
    if let Some(path) = partitioned_image {
        match crate::fsimage::mount(&path).and_then(|mut fs| {
            fs.read_all("/written.txt")
                .map_err(|e| format!("/written.txt: {e}"))
        }) {
            Ok(bytes) if bytes == b"written in Rexo\n" => {}
            Ok(_) => reasons.push("/written.txt differs from what Rexo wrote".into()),
            Err(e) => reasons.push(format!("the partitioned image: {e}")),
        }
    }
    if let Some(peer) = queue_peer {
        match peer.finish() {
            Ok(report) => {
                append_notes(&log, "queue peer", &[report.summary()]);
                if let Some(problem) = report.problem() {
                    reasons.push(format!("the queue peer: {problem} ({})", report.summary()));
                }
            }
            Err(e) => reasons.push(format!("the queue peer: {e}")),
        }
    }
    drop(tap);
    if let Some(peer) = flood {
        match peer.finish() {
            Ok(Ok(notes)) => append_notes(&log, "SYN flood peer", &notes),
            Ok(Err(e)) => reasons.push(format!("SYN flood peer: {e}")),
            Err(e) => reasons.push(format!("SYN flood peer: {e}")),
        }
    }
    for (index, path) in images.iter().enumerate() {
        match crate::diskimage::check(path) {
            Ok(report) => {
                if let Some(problem) = report.problem() {
                    reasons.push(format!("disk {index}'s image: {problem}"));
                }
            }
            Err(e) => reasons.push(format!("disk {index}'s image: {e}")),
        }
    }
    Ok(if reasons.is_empty() {
        Outcome::pass(case.name, time)
    } else {
        let reason = format!("{} (log: {})", reasons.join("; "), log.display());
        Outcome::fail(case.name, reason, capture.tail(TAIL), time)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each outcome's name, whether it passed, and why not.
    fn results(outcomes: &[Outcome]) -> Vec<(&str, bool, &str)> {
        outcomes
            .iter()
            .map(|o| (o.name.as_str(), o.ok, o.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_panicking_job_is_its_failure_and_the_others_still_run() {
        let jobs = VecDeque::from([
            Job::new("storage::one", || panic!("image unreadable")),
            Job::new("storage::two", || panic!("{} bad", 2)),
            Job::new("boot::three", || {
                vec![Outcome::pass("boot::three", Duration::ZERO)]
            }),
        ]);
        let mut outcomes = run_jobs(jobs);
        outcomes.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            results(&outcomes),
            [
                ("boot::three", true, ""),
                (
                    "storage::one",
                    false,
                    "the harness panicked: image unreadable"
                ),
                ("storage::two", false, "the harness panicked: 2 bad"),
            ]
        );
    }

    /// `cargo xtask` runs xtask in a profile whose panics unwind: with `panic = "abort"`
    /// (the dev profile's, for the kernel) a panicking job would end the whole run before
    /// [`run_job`] could catch it.
    #[test]
    fn the_xtask_alias_builds_a_binary_whose_panics_unwind() {
        let root = crate::root();
        let config = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap();
        let alias = config
            .lines()
            .find_map(|line| line.trim().strip_prefix("xtask = "))
            .unwrap();
        let mut words = alias.trim_matches('"').split_whitespace();
        let profile = words
            .find(|word| *word == "--profile")
            .and_then(|_| words.next())
            .expect("the alias names a profile");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let section: Vec<&str> = manifest
            .lines()
            .skip_while(|line| line.trim() != format!("[profile.{profile}]"))
            .skip(1)
            .take_while(|line| !line.trim_start().starts_with('['))
            .collect();
        assert!(
            section
                .iter()
                .any(|line| line.trim() == "panic = \"unwind\""),
            "[profile.{profile}]: {section:?}"
        );
    }

    #[test]
    fn skipped_cases_are_counted_apart_from_passes() {
        let outcomes = [
            Outcome::pass("boot::pvh-microvm", Duration::ZERO),
            Outcome::fail("crash::divide", "exit 0", Vec::new(), Duration::ZERO),
        ];
        let skipped = [Skipped {
            name: "kv::memcaslap",
            why: "not root".into(),
        }];
        let (lines, failed) = summary(&outcomes, &skipped);
        assert_eq!(
            lines,
            ["1 skipped: kv::memcaslap (not root)", "1 passed, 1 failed"]
        );
        assert_eq!(failed, 1);
        let (lines, _) = summary(&outcomes[..1], &[]);
        assert_eq!(lines, ["1 passed, 0 failed"]);
    }

    #[test]
    fn filters_select_groups() {
        assert_eq!(select("kernel::", "", false), Select::All);
        assert_eq!(select("kernel::", "kernel", false), Select::All);
        assert_eq!(
            select("kernel::", "kernel::alloc", false),
            Select::Matching("alloc".into())
        );
        assert_eq!(
            select("kernel::", "alloc", false),
            Select::Matching("alloc".into())
        );
        assert_eq!(select("kernel::", "boot::", true), Select::Nothing);
        assert_eq!(select("host::", "boot::cores", true), Select::Nothing);
        assert_eq!(select("host::", "docs::", false), Select::Nothing);
        assert_eq!(
            select("docs::", "docs::rustdoc", false),
            Select::Matching("rustdoc".into())
        );
    }

    #[test]
    fn a_filter_with_colons_matches_within_full_names() {
        // `kernel::tests::heap_allocates_and_frees` contains it.
        assert_eq!(
            select("kernel::", "tests::heap_allocates_and_frees", false),
            Select::Matching("tests::heap_allocates_and_frees".into())
        );
        assert_eq!(
            select("host::", "run::tests::defaults", false),
            Select::Matching("run::tests::defaults".into())
        );
    }

    #[test]
    fn a_filter_naming_another_group_selects_nothing_here() {
        let host_test = "host::run::tests::defaults";
        assert_eq!(select("kernel::", host_test, false), Select::Nothing);
        assert_eq!(select("linux::", host_test, false), Select::Nothing);
        assert_eq!(
            select("host::", host_test, false),
            Select::Matching("run::tests::defaults".into())
        );
        assert_eq!(
            select("host::", "kernel::tests::heap", false),
            Select::Nothing
        );
        assert_eq!(
            select("kernel::", "selftest::nonesuch", false),
            Select::Nothing
        );
        // A table case's group, even when the filter selects no case.
        assert_eq!(select("host::", "boot::nonesuch", false), Select::Nothing);
    }

    #[test]
    fn a_filter_that_runs_nothing_is_an_error() {
        let err = nothing_selected("tests::nonesuch", &[]).unwrap();
        assert!(err.contains("`tests::nonesuch`") && err.contains("kernel::tests::"));
        let ran = [Outcome::pass("boot::pvh-microvm", Duration::ZERO)];
        assert_eq!(nothing_selected("boot::", &ran), None);
        assert_eq!(nothing_selected("", &[]), None, "no filter, no error");
    }

    #[test]
    fn cargo_test_output() {
        let out = "\
running 3 tests
test a::one ... ok
test a::two ... FAILED
test a::three ... ignored
test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
running 2 tests
test b ... ok
test c ... ok
test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
";
        let s = parse_cargo_test(out);
        assert_eq!(s.passed, 3);
        assert_eq!(s.failed, vec!["a::two".to_string()]);
        assert_eq!(s.result_lines, 2);
        assert_eq!(
            parse_cargo_test("error[E0308]: mismatched types"),
            HostSummary::default()
        );
    }

    #[test]
    fn host_tests_run_every_test_binary() {
        assert_eq!(cargo_test_args(&Select::All), ["test", "--no-fail-fast"]);
        assert_eq!(
            cargo_test_args(&Select::Matching("run::".into())),
            ["test", "--no-fail-fast", "--", "run::"]
        );
    }

    #[test]
    fn a_test_binary_without_a_result_is_a_failure() {
        let out = "\
     Running unittests src/lib.rs (target/debug/deps/rexo_fs-0123)
running 1 test
test a ... ok
test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
     Running unittests src/lib.rs (target/debug/deps/rexo_xn-4567)
running 2 tests
thread 'deep' has overflowed its stack
fatal runtime error: stack overflow
error: test failed, to rerun pass `-p rexo-xn --lib`
   Doc-tests rexo_fs
running 0 tests
test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
error: 1 target failed:
";
        let summary = parse_cargo_test(out);
        assert_eq!(
            summary.unfinished,
            ["unittests src/lib.rs (target/debug/deps/rexo_xn-4567)"]
        );
        let failed = Some(101);
        let outcomes = host_outcomes(out, failed, Path::new("host.log"), Duration::ZERO);
        assert_eq!(
            results(&outcomes),
            [
                ("host (1 tests)", true, ""),
                (
                    "host",
                    false,
                    "a test binary ended without a result (crashed?): unittests src/lib.rs \
                     (target/debug/deps/rexo_xn-4567); see host.log"
                ),
            ]
        );
        let build_error = "error[E0308]: mismatched types";
        let outcomes = host_outcomes(build_error, failed, Path::new("host.log"), Duration::ZERO);
        assert_eq!(outcomes.len(), 1);
        assert!(outcomes[0].reason.contains("before running tests"));
        let killed = host_outcomes(out, None, Path::new("host.log"), Duration::ZERO);
        let timeout = killed.last().unwrap();
        assert_eq!(timeout.reason, "timed out after 1200 s");
        assert!(timeout.tail.last().unwrap().contains("target failed"));
    }

    /// A stand-in for cargo that logs its arguments to `calls` and fails the build
    /// when `build_fails`, else passes one test.
    fn fake_cargo(dir: &Path, build_fails: bool) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("cargo");
        let build_status = if build_fails { 101 } else { 0 };
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$*\" >> {calls}\n\
                 case \"$*\" in *--no-run*) exit {build_status};; esac\n\
                 echo 'test result: ok. 1 passed; 0 failed'\n",
                calls = dir.join("calls").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn host_tests_are_built_before_the_timed_run() {
        let dir = std::env::temp_dir().join(format!("rexo-host-steps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("host.log");
        let select = Select::Matching("run::".into());
        let cargo = fake_cargo(&dir, false);
        let outcomes = host_tests(cargo.as_os_str(), &dir, &select, &log);
        assert_eq!(results(&outcomes), [("host (1 tests)", true, "")]);
        let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
        assert_eq!(calls, "test --no-run\ntest --no-fail-fast -- run::\n");
        // A build that fails runs no test and says so.
        std::fs::remove_file(dir.join("calls")).unwrap();
        let cargo = fake_cargo(&dir, true);
        let outcomes = host_tests(cargo.as_os_str(), &dir, &select, &log);
        assert_eq!(outcomes.len(), 1);
        assert!(
            outcomes[0].reason.contains("exit status 101"),
            "{outcomes:?}"
        );
        let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
        assert_eq!(calls, "test --no-run\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn qemu_exiting_before_the_harness_stops_it_is_a_failure() {
        let stopped_at_checks = CASES.iter().find(|c| c.exit.is_none()).unwrap();
        assert_eq!(end_problem(stopped_at_checks, &End::Stopped), None);
        assert_eq!(
            end_problem(stopped_at_checks, &End::Exited(0)).as_deref(),
            Some("QEMU exited with status 0 first")
        );
        let exits = CASES.iter().find(|c| c.exit == Some(0)).unwrap();
        assert_eq!(end_problem(exits, &End::Exited(0)), None);
        assert_eq!(
            end_problem(exits, &End::Exited(35)).as_deref(),
            Some("QEMU exit status 35, expected 0")
        );
        assert!(
            end_problem(exits, &End::TimedOut)
                .unwrap()
                .starts_with("timed out")
        );
    }

    #[test]
    fn selected_tests_get_the_tools_they_run() {
        // Host tests alone: xtask's own tests start QEMU, run GRUB's tools and Python.
        assert_eq!(
            tool_needs(true, false, false, &[], &[], false),
            [Need::Qemu, Need::Iso, Need::Python]
        );
        assert_eq!(tool_needs(false, false, false, &[], &[], true), []);
        // docs::rustdoc documents the kernel, for which rexo-image's build script runs gcc.
        assert_eq!(
            tool_needs(false, false, true, &[], &[], false),
            [Need::CTools]
        );
        let tap_case = CASES
            .iter()
            .find(|c| c.qemu.iter().any(|a| matches!(a, Arg::TapPairs(_))))
            .unwrap();
        assert_eq!(
            tool_needs(false, true, false, &[tap_case], &[], true),
            [Need::Qemu, Need::IpRoute]
        );
        assert_eq!(
            tool_needs(false, true, false, &[tap_case], &[], false),
            [Need::Qemu]
        );
    }

    #[test]
    fn a_failed_setup_step_is_a_failure_named_after_it() {
        let fails = || Err::<(), _>("no qemu".to_string());
        assert_eq!(setup_failure(|| Ok(()), || Ok(())), None);
        assert_eq!(
            setup_failure(fails, || panic!("not after a failed step")),
            Some(("deps", "no qemu".to_string()))
        );
        assert_eq!(
            setup_failure(|| Ok(()), fails),
            Some(("baremetal", "no qemu".to_string()))
        );
    }

    #[test]
    fn kernel_output() {
        let lines = [
            "[  5 us c0] INFO  booting",
            "rexo: ready cores=2 mem=255 MiB boot=900 us",
            "test memmap::merge ...",
            "[ 90 us c0] INFO  a test's own log line",
            "test memmap::merge ... ok",
            "test queue::push ...",
            "test queue::push ... FAILED",
            "!!! rexo: page fault",
            "test queue::pop ...",
        ];
        let ms = |n| Duration::from_millis(n);
        let timed = lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| (ms(10 * i as u64), l));
        let run = parse_kernel_run(timed);
        assert_eq!(run.passed, vec![("memmap::merge".to_string(), ms(20))]);
        assert_eq!(run.failed, vec![("queue::push".to_string(), ms(10))]);
        assert_eq!(run.unfinished.as_deref(), Some("queue::pop"));
        assert!(!run.done);
        let done = ["test x ... ok", "rexo: tests done passed=1"];
        let run = parse_kernel_run(done.into_iter().map(|l| (ms(1), l)));
        assert!(run.done && run.unfinished.is_none());
    }

    /// A failing test's report shows its panic line and the message's further lines, which
    /// come before the last lines (registers, backtrace) and were only in the log.
    #[test]
    fn a_failing_kernel_tests_report_shows_its_panic_line() {
        let serial = |text: &str| qemu::Line {
            at: Duration::ZERO,
            text: text.to_string(),
            stderr: false,
        };
        let mut lines = vec![
            serial("!!! rexo: an earlier boot's line"),
            serial("test tests::sums ..."),
            serial("test tests::sums ... FAILED"),
            serial(
                "!!! rexo: panic on core 0 at kernel/src/tests.rs:12:9: assertion `left == right` failed",
            ),
            serial("  left: 1"),
            serial(" right: 2"),
            serial("!!! rexo: registers as the panic handler found them:"),
        ];
        lines.extend((0..20).map(|i| serial(&format!("register or frame {i}"))));
        lines.push(qemu::Line {
            stderr: true,
            ..serial("qemu: terminating")
        });
        let capture = qemu::Capture {
            lines,
            end: End::Exited(35),
            wall: Duration::ZERO,
        };
        let shown = failure_lines(&capture, "tests::sums", 3);
        assert_eq!(
            shown,
            [
                "!!! rexo: panic on core 0 at kernel/src/tests.rs:12:9: assertion `left == right` failed",
                "  left: 1",
                " right: 2",
                "...",
                "register or frame 18",
                "register or frame 19",
                "qemu: qemu: terminating",
            ]
        );
        assert_eq!(failure_lines(&capture, "tests::other", 3), capture.tail(3));
        assert_eq!(failure_lines(&capture, "tests::sums", 40), capture.tail(40));
    }

    #[test]
    fn max_cores_from_the_doc() {
        let doc = "| key | values |\n|---|---|\n| `cores` | 1..=64 | all | use at most |\n";
        assert_eq!(kernel_max_cores(doc), Ok(64));
        let doc = "| `cores` | 1..=MAX | all | use at most |\n";
        assert!(kernel_max_cores(doc).unwrap_err().contains("1..=MAX"));
        assert!(kernel_max_cores("nothing").is_err());
    }

    #[test]
    fn checker_tracks_expectations() {
        let checks = [
            Check::Ready {
                cores: Cores::Max,
                mem_min: 240,
                mem_max: 256,
            },
            Check::Warn("rxbd"),
            Check::SymbolizedFrame,
        ];
        let mut wrong = Checker::new(&checks, Some(4));
        wrong.feed("rexo: ready cores=3 mem=250 MiB boot=900 us");
        assert!(wrong.missing()[0].contains("got `rexo: ready cores=3"));
        let mut c = Checker::new(&checks, Some(4));
        c.feed("[ 1 us c0] WARN  ACPI table RXBD has a bad checksum");
        c.feed("  0x200123 rexo::main+0x10"); // before any backtrace line
        assert!(!c.all_met());
        c.feed("backtrace:");
        c.feed("  0x200123 rexo::main+0x10");
        c.feed("rexo: ready cores=4 mem=250 MiB boot=900 us");
        assert!(c.all_met(), "{:?}", c.missing());
    }

    #[test]
    fn a_second_ready_line_fails_every_case() {
        let mut c = Checker::new(&[], None);
        c.feed("rexo: ready cores=2 mem=250 MiB boot=900 us");
        assert!(c.all_met());
        c.feed("[ 1 us c0] rexo: ready cores=2 mem=250 MiB boot=900 us");
        assert!(!c.all_met());
        assert_eq!(c.missing(), ["a single ready line (got 2)"]);
    }

    /// The bad-input cases' checks pass on the kernel's own message and fail on another.
    #[test]
    fn bad_input_checks_name_the_kernels_messages() {
        let checks_of = |name: &str| {
            let case = CASES.iter().find(|c| c.name == name).unwrap();
            case.checks.to_vec()
        };
        let passes = |name: &str, lines: &[&str]| {
            let mut c = Checker::new(&checks_of(name), Some(64));
            lines.iter().for_each(|line| c.feed(line));
            c.all_met()
        };
        let off =
            "[ ? us c0] WARN  acpi: no RSDP found: no ACPI tables, running on the boot core only";
        let one_core = "rexo: ready cores=1 mem=255 MiB boot=6465 us";
        assert!(passes("badinput::acpi-off", &[off, one_core]));
        let other = "[ 9 us c0] WARN  console: framebuffer not used: none";
        assert!(!passes("badinput::acpi-off", &[other, one_core]));

        let many = "[ 9 us c0] WARN  smp: 65 cores present, Rexo supports 64: using 64";
        let max = "rexo: ready cores=64 mem=255 MiB boot=33457 us";
        assert!(passes("badinput::too-many-cores", &[many, max]));
        let other = "[ 9 us c0] WARN  smp: 65 cores present, Rexo supports 64: using 63";
        assert!(!passes("badinput::too-many-cores", &[other, max]));
        assert!(!passes("badinput::too-many-cores", &[off, max]));

        let tiny = "rexo: error: Rexo needs at least 8 MiB of usable RAM; this machine has 5759 KiB usable";
        assert!(passes("badinput::tiny-memory", &[tiny]));
        let other = "rexo: error: Rexo needs more memory for its heap (512 KiB): full";
        assert!(!passes("badinput::tiny-memory", &[other]));
        assert!(!passes("badinput::tiny-memory", &["memory: 6 MiB"]));
    }

    #[test]
    fn checker_counts_lines_and_refuses_forbidden_ones() {
        let checks = [Check::Count(": flushed", 2), Check::Lacks("FAILED")];
        let mut c = Checker::new(&checks, None);
        assert!(!c.all_met());
        c.feed("diskcheck: disk 0: flushed");
        assert_eq!(
            c.missing(),
            vec!["2 lines with `: flushed` (got 1)".to_string()]
        );
        c.feed("diskcheck: disk 1: flushed");
        assert!(c.all_met());
        c.feed("  diskcheck: disk 2: FAILED: flush: timeout ");
        c.feed("netcheck: FAILED: later");
        assert_eq!(
            c.missing(),
            vec![
                "no line with `FAILED` (got `diskcheck: disk 2: FAILED: flush: timeout`)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn qemu_checks_look_at_qemus_own_lines_only() {
        let checks = [
            Check::QemuSaid("cmd 0xea"),
            Check::QemuNeverSaid("cmd 0xe0"),
        ];
        let mut c = Checker::new(&checks, None);
        c.feed("the guest says cmd 0xea and cmd 0xe0");
        assert_eq!(c.missing(), vec!["QEMU's `cmd 0xea`".to_string()]);
        c.feed_qemu("ide_exec_cmd IDE exec cmd: bus 0x1; state 0x2; cmd 0xea");
        assert!(c.all_met());
        c.feed_qemu("ide_exec_cmd IDE exec cmd: bus 0x1; state 0x2; cmd 0xe0");
        assert_eq!(
            c.missing(),
            vec![
                "no QEMU line with `cmd 0xe0` (got `ide_exec_cmd IDE exec cmd: bus 0x1; state \
                 0x2; cmd 0xe0`)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn checker_wants_whole_log_messages_in_order() {
        let checks = [Check::Logged(&["app: the inner line", "app: cut* [...]"])];
        let mut c = Checker::new(&checks, None);
        c.feed("[   10 us c1] INFO  app: cut short [...]");
        c.feed("[   11 us c1] INFO  app: [   12 us c1] INFO  app: the inner line");
        c.feed("[   13 us c1] INFO  app: the inner line, and more");
        assert!(!c.all_met(), "out of order, or not whole");
        c.feed("[   14 us c1] WARN  app: the inner line");
        c.feed("[   15 us c1] INFO  app: cut [...] there");
        assert_eq!(
            c.missing(),
            vec![
                "the log lines [\"app: the inner line\", \"app: cut* [...]\"] in this order \
                 (got the first 1)"
                    .to_string()
            ]
        );
        c.feed("[   16 us c1] INFO  app: cut   [...]\r");
        assert!(c.all_met());
    }

    #[test]
    fn bad_table_has_a_wrong_checksum() {
        let t = bad_acpi_table();
        assert_eq!(&t[..4], BAD_TABLE_SIG.as_bytes());
        assert_eq!(
            u32::from_le_bytes([t[4], t[5], t[6], t[7]]) as usize,
            t.len()
        );
        assert_eq!(t.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 1);
    }
}
