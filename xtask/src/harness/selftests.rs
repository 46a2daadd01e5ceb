//! Tests of the harness and of `cargo xtask run` themselves (`selftest::`): that a
//! failing kernel test fails the run by name, and that `run` boots with standard input
//! closed, as scripts drive it.

use super::{
    End, KERNEL_TEST_TIMEOUT_S, Machine, Select, TAIL, Vm, kernel_tests, last_lines,
    parse_kernel_run,
};
use crate::proctree;
use crate::qemu::{self, Ready};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Why a self-test failed, and the log lines that show it.
type Failure = (String, Vec<String>);

/// What a self-test gets: the repository, the kernel ELF and the log directory.
pub struct Env<'a> {
    /// The repository root.
    pub root: &'a Path,
    /// The kernel that boots.
    pub elf: &'a Path,
    /// target/test-logs.
    pub logs: &'a Path,
}

/// One self-test.
pub struct SelfTest {
    /// Full name, `selftest::name`.
    pub name: &'static str,
    /// Whether it boots the ISO (it needs GRUB and xorriso).
    pub iso: bool,
    /// The test.
    pub run: fn(&Env<'_>) -> Result<(), Failure>,
}

/// Every self-test.
pub const SELF_TESTS: &[SelfTest] = &[
    SelfTest {
        name: "selftest::failing-kernel-test",
        iso: false,
        run: failing_kernel_test,
    },
    SelfTest {
        name: "selftest::run-hello-4-cores",
        iso: false,
        run: |env| run_hello(env, "selftest-run-hello-4-cores", &[]),
    },
    SelfTest {
        name: "selftest::run-hello-bios",
        iso: true,
        run: |env| run_hello(env, "selftest-run-hello-bios", &["--boot", "bios"]),
    },
];

/// The kernel test that fails when it is the whole filter (kernel/src/tests.rs).
const FAILS_ALONE: &str = "tests::fails_when_named_alone";

/// Boots `test=tests::fails_when_named_alone`: the serial output must name the failing
/// test, carry the crash report, and QEMU exit 35; the harness's parsing of that boot
/// and its kernel-test run must report exactly that failure, by name.
fn failing_kernel_test(env: &Env<'_>) -> Result<(), Failure> {
    let dir = env.logs.join("selftest-failing-kernel-test");
    let vm = Vm::pvh(Machine::Microvm, env.elf, &format!("test={FAILS_ALONE}"));
    let log = dir.join("boot.log");
    let capture = vm
        .args(&dir.join("scratch"))
        .and_then(|args| {
            qemu::run_captured(
                &args,
                Duration::from_secs(KERNEL_TEST_TIMEOUT_S),
                Some(&log),
                |_| false,
            )
        })
        .map_err(|e| (e, Vec::new()))?;
    let serial: Vec<&str> = capture.serial().map(|l| l.text.trim()).collect();
    let mut problems = Vec::new();
    let failed_line = format!("test {FAILS_ALONE} ... FAILED");
    if !serial.contains(&failed_line.as_str()) {
        problems.push(format!("no line `{failed_line}`"));
    }
    for report in ["!!! rexo: panic on core", "fails on purpose", "backtrace:"] {
        if !serial.iter().any(|line| line.contains(report)) {
            problems.push(format!("the crash report lacks `{report}`"));
        }
    }
    if capture.end != End::Exited(35) {
        problems.push(format!(
            "QEMU ended with {:?}, expected exit 35",
            capture.end
        ));
    }
    let run = parse_kernel_run(capture.serial().map(|l| (l.at, l.text.as_str())));
    let failed: Vec<&str> = run.failed.iter().map(|(name, _)| name.as_str()).collect();
    if failed != [FAILS_ALONE] || !run.passed.is_empty() || run.unfinished.is_some() {
        problems.push(format!("the harness read the boot as {run:?}"));
    }
    let outcomes = kernel_tests(
        env.elf,
        &Select::Matching(FAILS_ALONE.to_string()),
        &dir.join("harness"),
    );
    let results: Vec<(&str, bool)> = outcomes.iter().map(|o| (o.name.as_str(), o.ok)).collect();
    let expected = format!("kernel::{FAILS_ALONE}");
    if results != [(expected.as_str(), false)] {
        problems.push(format!(
            "the harness's kernel-test run gave {results:?}, expected one failure `{expected}`"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let reason = format!("{} (log: {})", problems.join("; "), log.display());
        Err((reason, capture.tail(TAIL)))
    }
}

/// Seconds `cargo xtask run` may take to build what it needs, boot hello and power off.
const RUN_TIMEOUT_S: u64 = 120;

/// Runs this xtask as `run --cores 4 --app hello` plus `extra`, with standard input
/// closed (as a script does): it must print the ready line with `cores=4` and exit 0
/// (hello powers the machine off).
fn run_hello(env: &Env<'_>, log_name: &str, extra: &[&str]) -> Result<(), Failure> {
    let log = env.logs.join(format!("{log_name}.log"));
    let file = std::fs::File::create(&log)
        .map_err(|e| (format!("cannot create {}: {e}", log.display()), Vec::new()))?;
    let exe = std::env::current_exe()
        .map_err(|e| (format!("cannot find the xtask binary: {e}"), Vec::new()))?;
    let mut command = Command::new(exe);
    command
        .args(["run", "--cores", "4", "--app", "hello"])
        .args(extra)
        .current_dir(env.root)
        // No window even where there is a display.
        .env_remove("DISPLAY")
        .stdin(Stdio::null());
    let code = file
        .try_clone()
        .map_err(|e| e.to_string())
        .and_then(|out| {
            command
                .stdout(out)
                .stderr(file)
                .spawn()
                .map_err(|e| format!("cannot start the xtask binary: {e}"))
        })
        .and_then(|mut child| {
            let timeout = Duration::from_secs(RUN_TIMEOUT_S);
            // A hung or lost run is stopped together with its QEMU.
            proctree::wait_or_kill(&mut child, "the xtask binary", timeout)
        })
        .map_err(|e| (e, Vec::new()))?;
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let ready = output.lines().find_map(|line| Ready::parse(line.trim()));
    let problem = match (code, ready) {
        (None, _) => format!("still running after {RUN_TIMEOUT_S} s"),
        (_, None) => "no ready line".to_string(),
        (_, Some(ready)) if ready.cores != 4 => format!("ready with cores={}", ready.cores),
        (Some(0), Some(_)) => return Ok(()),
        (Some(code), Some(_)) => format!("exit status {code}, expected 0"),
    };
    Err((
        format!("{problem} (log: {})", log.display()),
        last_lines(&output, TAIL),
    ))
}
