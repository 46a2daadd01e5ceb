//! QEMU: command lines for each machine and boot path, captured runs with
//! timestamped serial lines and timeouts, exit statuses, and the KVM probe.

use crate::Result;
use crate::deps::Firmware;
use crate::proctree::wait_timeout;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A QEMU machine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// `-M microvm`: no PCI, no firmware to speak of; PVH only.
    Microvm,
    /// `-M q35`: PCIe, AHCI, SeaBIOS or OVMF.
    Q35,
    /// `-M pc`: i440FX, PIIX.
    Pc,
}

impl Machine {
    /// The `--machine` names.
    pub const NAMES: &'static [&'static str] = &["microvm", "q35", "pc"];

    /// Parses a `--machine` name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "microvm" => Some(Self::Microvm),
            "q35" => Some(Self::Q35),
            "pc" => Some(Self::Pc),
            _ => None,
        }
    }

    /// QEMU's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Microvm => "microvm",
            Self::Q35 => "q35",
            Self::Pc => "pc",
        }
    }
}

/// A QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization (`-accel kvm -cpu host`).
    Kvm,
    /// The emulator (`-accel tcg -cpu max`).
    Tcg,
}

/// What the machine boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Media {
    /// An ELF with a PVH note through `-kernel`, its command line and one module.
    Pvh {
        /// The ELF.
        kernel: PathBuf,
        /// `-append` (empty: none).
        append: String,
        /// `-initrd`: PVH passes one module.
        initrd: Option<PathBuf>,
    },
    /// A CD-ROM image under SeaBIOS (`firmware: None`) or UEFI firmware.
    Cdrom {
        /// The ISO.
        iso: PathBuf,
        /// UEFI firmware, or `None` for the machine's BIOS.
        firmware: Option<Firmware>,
    },
    /// A bootable disk image attached as a device model (`virtio-blk-pci`, `nvme,serial=S`,
    /// ...) that the firmware boots first.
    Disk {
        /// The image.
        image: PathBuf,
        /// The device model with its properties.
        device: String,
        /// UEFI firmware, or `None` for the machine's BIOS.
        firmware: Option<Firmware>,
    },
}

/// A virtual machine to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// Machine type.
    pub machine: Machine,
    /// Extra `-machine` properties (`acpi=off`, ...).
    pub machine_props: Vec<String>,
    /// Number of vCPUs.
    pub cores: u32,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// Accelerator.
    pub accel: Accel,
    /// What to boot.
    pub media: Media,
    /// Extra QEMU arguments, appended last.
    pub extra: Vec<String>,
}

impl Vm {
    /// A PVH boot of `kernel` with `append` on `machine`, TCG, 2 cores, 256 MiB.
    pub fn pvh(machine: Machine, kernel: &Path, append: &str) -> Self {
        Self {
            machine,
            machine_props: Vec::new(),
            cores: 2,
            mem_mib: 256,
            accel: Accel::Tcg,
            media: Media::Pvh {
                kernel: kernel.to_path_buf(),
                append: append.to_string(),
                initrd: None,
            },
            extra: Vec::new(),
        }
    }

    /// QEMU's arguments for this machine (without console or display options).
    /// `scratch` is a folder for files QEMU writes (a UEFI variable store).
    pub fn args(&self, scratch: &Path) -> Result<Vec<String>> {
        let mut machine = self.machine.name().to_string();
        for prop in &self.machine_props {
            machine.push(',');
            machine.push_str(prop);
        }
        let mut args: Vec<String> = vec!["-machine".into(), machine];
        match self.accel {
            Accel::Kvm => args.extend(["-accel", "kvm", "-cpu", "host"].map(String::from)),
            Accel::Tcg => args.extend(["-accel", "tcg", "-cpu", "max"].map(String::from)),
        }
        args.extend([
            "-smp".into(),
            self.cores.to_string(),
            "-m".into(),
            format!("{}M", self.mem_mib),
            "-device".into(),
            "isa-debug-exit,iobase=0xf4,iosize=4".into(),
            "-no-reboot".into(),
        ]);
        match &self.media {
            Media::Pvh {
                kernel,
                append,
                initrd,
            } => {
                args.extend(["-kernel".into(), path_arg(kernel)?]);
                if !append.is_empty() {
                    args.extend(["-append".into(), append.clone()]);
                }
                if let Some(initrd) = initrd {
                    args.extend(["-initrd".into(), path_arg(initrd)?]);
                }
            }
            Media::Cdrom { .. } | Media::Disk { .. } if self.machine == Machine::Microvm => {
                return Err(
                    "microvm has no firmware that boots a CD-ROM or disk; boot it with --machine q35 or pc"
                        .into(),
                );
            }
            Media::Cdrom { iso, firmware } => {
                args.extend(["-cdrom".into(), path_arg(iso)?]);
                args.extend(firmware_args(firmware.as_ref(), scratch)?);
            }
            Media::Disk {
                image,
                device,
                firmware,
            } => {
                let file = option_path(image)?;
                args.extend([
                    "-drive".into(),
                    format!("file={file},if=none,id=boot,format=raw"),
                    "-device".into(),
                    format!("{device},drive=boot,bootindex=0"),
                ]);
                args.extend(firmware_args(firmware.as_ref(), scratch)?);
            }
        }
        args.extend(self.extra.iter().cloned());
        Ok(args)
    }
}

/// The arguments that load `firmware` (none for the machine's own BIOS); split OVMF gets
/// a copy of its variable store in `scratch`.
fn firmware_args(firmware: Option<&Firmware>, scratch: &Path) -> Result<Vec<String>> {
    Ok(match firmware {
        None => Vec::new(),
        Some(Firmware::Combined(bios)) => vec!["-bios".into(), path_arg(bios)?],
        Some(Firmware::Split { code, vars }) => {
            std::fs::create_dir_all(scratch)
                .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
            let copy = scratch.join("OVMF_VARS.fd");
            std::fs::copy(vars, &copy)
                .map_err(|e| format!("cannot copy {}: {e}", vars.display()))?;
            vec![
                "-drive".into(),
                format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    option_path(code)?
                ),
                "-drive".into(),
                format!("if=pflash,format=raw,unit=1,file={}", option_path(&copy)?),
            ]
        }
    })
}

fn path_arg(path: &Path) -> Result<String> {
    path.to_str()
        .map(String::from)
        .ok_or_else(|| format!("path {} is not UTF-8", path.display()))
}

/// `path` as a value inside a QEMU option list (`-drive file=`, `-acpitable file=`, a
/// chardev's `unix:PATH,server`), where a comma ends the value: each comma doubled,
/// which QEMU's option parser reads as one comma of the value.
pub fn option_path(path: &Path) -> Result<String> {
    Ok(path_arg(path)?.replace(',', ",,"))
}

/// What a QEMU exit status means for Rexo (docs/kernel-interface.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 0 (ACPI power-off) or 33 (debug-exit success).
    Success,
    /// 35: a crash, a panic, a failed test or a fatal boot error.
    Failure,
    /// Anything else: QEMU itself failed (bad arguments, a signal, ...).
    Other(i32),
}

/// Classifies QEMU's exit status.
pub fn verdict(status: i32) -> Verdict {
    match status {
        0 | 33 => Verdict::Success,
        35 => Verdict::Failure,
        other => Verdict::Other(other),
    }
}

/// One line of output, with the time since QEMU was spawned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When the line's end arrived.
    pub at: Duration,
    /// The text, without the line end.
    pub text: String,
    /// Whether QEMU wrote it to stderr (its own messages) rather than the serial port.
    pub stderr: bool,
}

/// How a captured run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// QEMU exited with this status (-1: killed by a signal).
    Exited(i32),
    /// The caller stopped it (its condition was met).
    Stopped,
    /// It ran past the timeout and was killed.
    TimedOut,
}

/// The result of [`run_captured`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Every line, serial and QEMU's stderr, in arrival order.
    pub lines: Vec<Line>,
    /// How it ended.
    pub end: End,
    /// Time from spawn to the end.
    pub wall: Duration,
}

impl Capture {
    /// The serial lines (without QEMU's own messages).
    pub fn serial(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| !l.stderr)
    }

    /// The last `n` lines, for failure reports.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines
            .iter()
            .skip(skip)
            .map(|l| {
                if l.stderr {
                    format!("qemu: {}", l.text)
                } else {
                    l.text.clone()
                }
            })
            .collect()
    }
}

enum Event {
    Line(Line),
    Closed,
}

fn reader(
    stream: impl Read + Send + 'static,
    stderr: bool,
    started: Instant,
    tx: mpsc::Sender<Event>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let at = started.elapsed();
                    let text = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if tx.send(Event::Line(Line { at, text, stderr })).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Event::Closed);
    });
}

/// The `qemu-system-x86_64` command for `args` with the serial port on a pipe, no
/// display and no monitor; inside the network namespace `netns` when given (through
/// `ip netns exec`, so that QEMU opens that namespace's tap devices).
fn piped_command(netns: Option<&str>, args: &[String]) -> Command {
    let mut cmd = crate::tapnet::command_in(netns, "qemu-system-x86_64");
    cmd.args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs QEMU with `args` (see [`piped_command`]) until it exits, `stop` returns true
/// for a serial line, or `timeout` passes. Every line is also written to `log`.
pub fn run_captured(
    args: &[String],
    timeout: Duration,
    log: Option<&Path>,
    stop: impl FnMut(&Line) -> bool,
) -> Result<Capture> {
    run_captured_with_input(args, b"", timeout, log, stop)
}

/// [`run_captured`] inside the network namespace `netns`.
pub fn run_captured_in(
    netns: &str,
    args: &[String],
    timeout: Duration,
    log: Option<&Path>,
    stop: impl FnMut(&Line) -> bool,
) -> Result<Capture> {
    run_inner(Some(netns), args, b"", timeout, log, false, stop)
}

/// [`run_captured`], typing `input` on the guest's serial console (QEMU's standard input)
/// once the guest printed its ready line: bytes typed before the kernel set its UART up
/// are lost, as on a real serial line; after that the UART takes them as fast as the
/// guest reads, so nothing is lost.
pub fn run_captured_with_input(
    args: &[String],
    input: &[u8],
    timeout: Duration,
    log: Option<&Path>,
    stop: impl FnMut(&Line) -> bool,
) -> Result<Capture> {
    run_inner(None, args, input, timeout, log, false, stop)
}

/// [`run_captured_with_input`], in the network namespace `netns` when given; with
/// `ticks`, `stop` is also asked every [`TICK`] with an empty line (neither logged nor
/// captured), so that a run can stop on something outside the guest, such as a host-side
/// client finishing.
pub fn run_inner(
    netns: Option<&str>,
    args: &[String],
    input: &[u8],
    timeout: Duration,
    log: Option<&Path>,
    ticks: bool,
    mut stop: impl FnMut(&Line) -> bool,
) -> Result<Capture> {
    let input = if ticks {
        Input::AfterReadyTicking(input)
    } else {
        Input::AfterReady(input)
    };
    run_core(netns, args, input, timeout, log, |line, _| stop(line))
}

/// How often a ticking run's hook is asked when the guest says nothing.
pub const TICK: Duration = Duration::from_millis(100);

/// What a [`run_steered`] hook may do to the guest while it runs.
pub struct Steer {
    pid: u32,
    input: Option<std::process::ChildStdin>,
}

impl Steer {
    /// QEMU's process id (its threads are `/proc/PID/task/*`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Types `bytes` on the guest's serial console.
    pub fn type_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let input = self
            .input
            .as_mut()
            .ok_or("QEMU's standard input is closed")?;
        input
            .write_all(bytes)
            .and_then(|()| input.flush())
            .map_err(|e| format!("cannot type on the guest's serial console: {e}"))
    }
}

/// [`run_captured`] with a hook that sees each line as it arrives and may act on the
/// running guest through [`Steer`] (type on its console, find QEMU's threads); the
/// hook's `true` stops the run, as `stop`'s does.
pub fn run_steered(
    args: &[String],
    timeout: Duration,
    log: Option<&Path>,
    hook: impl FnMut(&Line, &mut Steer) -> bool,
) -> Result<Capture> {
    run_core(None, args, Input::Steered, timeout, log, hook)
}

/// What goes to QEMU's standard input (the guest's serial console).
enum Input<'a> {
    /// These bytes once the guest printed its ready line (nothing if empty).
    AfterReady(&'a [u8]),
    /// The same, and the hook is asked every [`TICK`] with an empty line too.
    AfterReadyTicking(&'a [u8]),
    /// Whatever a [`run_steered`] hook types.
    Steered,
}

fn run_core(
    netns: Option<&str>,
    args: &[String],
    input: Input<'_>,
    timeout: Duration,
    log: Option<&Path>,
    mut hook: impl FnMut(&Line, &mut Steer) -> bool,
) -> Result<Capture> {
    let mut log_file = match log {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let mut file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let _ = writeln!(file, "# qemu-system-x86_64 {}", args.join(" "));
            Some(file)
        }
        None => None,
    };
    let started = Instant::now();
    let mut command = piped_command(netns, args);
    let (typed_after_ready, ticks) = match input {
        Input::AfterReady(bytes) => (bytes, false),
        Input::AfterReadyTicking(bytes) => (bytes, true),
        Input::Steered => (&[][..], false),
    };
    if !typed_after_ready.is_empty() || matches!(input, Input::Steered) {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().map_err(|e| {
        format!("cannot start qemu-system-x86_64 ({e}); install package qemu-system-x86")
    })?;
    let mut steer = Steer {
        pid: child.id(),
        input: None,
    };
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    if let Some(mut stdin) = child.stdin.take() {
        if typed_after_ready.is_empty() {
            steer.input = Some(stdin);
        } else {
            let input = typed_after_ready.to_vec();
            // A failed write means QEMU has gone; its exit status tells the rest.
            std::thread::spawn(move || {
                if ready_rx.recv().is_err() {
                    return;
                }
                let _ = stdin.write_all(&input);
                // Keep the pipe open (a closed serial input is not an error, but an open
                // one is what a person at a terminal gives).
                std::thread::sleep(Duration::from_secs(600));
            });
        }
    }
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        reader(out, false, started, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        reader(err, true, started, tx);
    }
    let deadline = started + timeout;
    let mut lines = Vec::new();
    let mut open = 2;
    let mut end = None;
    while open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = if ticks { left.min(TICK) } else { left };
        match rx.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) if wait < left => {
                let tick = Line {
                    at: started.elapsed(),
                    text: String::new(),
                    stderr: false,
                };
                if hook(&tick, &mut steer) {
                    end = Some(End::Stopped);
                    break;
                }
            }
            Ok(Event::Line(line)) => {
                if let Some(file) = log_file.as_mut() {
                    let tag = if line.stderr { "qemu: " } else { "" };
                    let _ = writeln!(file, "{tag}{}", line.text);
                }
                if !line.stderr && Ready::parse(&line.text).is_some() {
                    let _ = ready_tx.send(());
                }
                let done = !line.stderr && hook(&line, &mut steer);
                lines.push(line);
                if done {
                    end = Some(End::Stopped);
                    break;
                }
            }
            Ok(Event::Closed) => open -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                end = Some(End::TimedOut);
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let end = match end {
        Some(end) => {
            kill(&mut child);
            // Keep what was still in the pipes, including a last line without its end
            // (e.g. `test NAME ...` from a test that hung).
            let drain_until = Instant::now() + Duration::from_millis(500);
            while open > 0 {
                let left = drain_until.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(Event::Line(line)) => {
                        if let Some(file) = log_file.as_mut() {
                            let tag = if line.stderr { "qemu: " } else { "" };
                            let _ = writeln!(file, "{tag}{}", line.text);
                        }
                        lines.push(line);
                    }
                    Ok(Event::Closed) => open -= 1,
                    Err(_) => break,
                }
            }
            end
        }
        None => {
            let left = deadline.saturating_duration_since(Instant::now());
            match wait_timeout(&mut child, "QEMU", left.max(Duration::from_secs(1)))? {
                Some(code) => End::Exited(code),
                None => {
                    kill(&mut child);
                    End::TimedOut
                }
            }
        }
    };
    let wall = started.elapsed();
    if let Some(file) = log_file.as_mut() {
        let _ = writeln!(file, "# end: {end:?} after {:.3} s", wall.as_secs_f64());
    }
    Ok(Capture { lines, end, wall })
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The parsed ready line (its format is `rexo-readyline`'s, shared with the kernel).
pub use rexo_readyline::Ready;

/// How [`kvm_opens`] says `/dev/kvm` did not open; a cached TCG choice that names it
/// was made for that reason alone.
const KVM_CLOSED: &str = "/dev/kvm does not open";

/// Whether `/dev/kvm` can be opened for reading and writing.
fn kvm_opens() -> std::result::Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("{KVM_CLOSED} ({e})"))
}

/// Iterations of the probe kernel's loop: about 4*10^7 instructions, a fraction of a
/// second under TCG, far longer through an instruction-emulating nested KVM.
const PROBE_SPIN: u32 = 20_000_000;

/// Picks KVM only if `/dev/kvm` opens and a probe kernel runs under KVM at least as
/// fast as under TCG; otherwise TCG. Returns the choice and one line saying why.
pub fn probe_accel(root: &Path) -> Result<(Accel, String)> {
    // The answer holds until the host reboots: keep it, keyed by the host's boot id, so
    // that `run` does not pay the probe (up to 2 s) every time.
    let cache = root.join("target/accel-probe.txt");
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    if let Some((accel, why)) = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|text| cached_probe(&text, boot_id.trim()))
        .filter(|(accel, why)| cache_holds(*accel, why, kvm_opens))
    {
        return Ok((
            accel,
            format!("{why} (probed earlier since this host booted)"),
        ));
    }
    let (accel, why) = measure_accel(root)?;
    let tag = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    // A cache that cannot be written only costs the next run another probe.
    let _ = std::fs::write(&cache, format!("{}\n{tag}\n{why}\n", boot_id.trim()));
    Ok((accel, why))
}

/// Whether a cached choice `accel`, made for the reason `why`, still holds: KVM only
/// while `/dev/kvm` still opens for this user (`kvm_opens`; permissions change without a
/// reboot), TCG chosen because it did not open only while it still does not; else the
/// probe runs again.
fn cache_holds(
    accel: Accel,
    why: &str,
    kvm_opens: impl Fn() -> std::result::Result<(), String>,
) -> bool {
    match accel {
        Accel::Kvm => kvm_opens().is_ok(),
        Accel::Tcg if why.contains(KVM_CLOSED) => kvm_opens().is_err(),
        Accel::Tcg => true,
    }
}

/// Reads a cached probe result written for the host boot `boot_id`.
fn cached_probe(text: &str, boot_id: &str) -> Option<(Accel, String)> {
    let mut lines = text.lines();
    if boot_id.is_empty() || lines.next()? != boot_id {
        return None;
    }
    let accel = match lines.next()? {
        "kvm" => Accel::Kvm,
        "tcg" => Accel::Tcg,
        _ => return None,
    };
    Some((accel, lines.next()?.to_string()))
}

/// Boots the trivial kernel under TCG and KVM and compares.
fn measure_accel(root: &Path) -> Result<(Accel, String)> {
    if let Err(why) = kvm_opens() {
        return Ok((Accel::Tcg, format!("using TCG: {why}")));
    }
    let kernel = crate::pvh::write(root, "probe-pvh.elf", PROBE_SPIN)?;
    let time = |accel: Accel, timeout: Duration| -> Result<Capture> {
        let mut vm = Vm::pvh(Machine::Microvm, &kernel, "");
        vm.cores = 1;
        vm.mem_mib = 32;
        vm.accel = accel;
        run_captured(&vm.args(&root.join("target"))?, timeout, None, |_| false)
    };
    let tcg = time(Accel::Tcg, Duration::from_secs(20))?;
    if tcg.end != End::Exited(33) {
        return Err("the probe kernel did not exit with 33 under TCG; is QEMU working?".into());
    }
    let kvm = time(Accel::Kvm, Duration::from_secs(2))?;
    Ok(kvm_verdict(&kvm, tcg.wall))
}

/// KVM or TCG from the KVM probe's run `kvm` and the TCG probe's time `tcg`, with why.
fn kvm_verdict(kvm: &Capture, tcg: Duration) -> (Accel, String) {
    let (kvm_ms, tcg_ms) = (kvm.wall.as_millis(), tcg.as_millis());
    match kvm.end {
        End::Exited(33) if kvm.wall <= tcg => (
            Accel::Kvm,
            format!("using KVM: probe took {kvm_ms} ms (TCG {tcg_ms} ms)"),
        ),
        End::Exited(33) => (
            Accel::Tcg,
            format!(
                "using TCG: KVM is slower than the emulator here (probe {kvm_ms} ms, TCG {tcg_ms} ms)"
            ),
        ),
        End::Exited(status) => (
            Accel::Tcg,
            format!(
                "using TCG: the KVM probe failed: QEMU exited with status {status} after {kvm_ms} ms"
            ),
        ),
        End::TimedOut | End::Stopped => (
            Accel::Tcg,
            format!(
                "using TCG: the KVM probe did not finish within 2 s (TCG: {tcg_ms} ms); KVM is emulating, not virtualizing"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every comma of a path is doubled, and nothing else changes; a path that is not
    /// UTF-8 is refused.
    #[test]
    fn option_paths_double_their_commas() {
        assert_eq!(option_path(Path::new("/a/b.img")).unwrap(), "/a/b.img");
        assert_eq!(
            option_path(Path::new("/a,b/,c,,d.aml")).unwrap(),
            "/a,,b/,,c,,,,d.aml"
        );
        let not_utf8 = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"/\xff");
        assert!(option_path(Path::new(not_utf8)).is_err());
    }

    /// The OVMF code and variable store in a folder whose name holds a comma: their
    /// `-drive` values double it, as the boot disk's does (a lone comma ended `file=`, and
    /// QEMU took the rest of the path as an option).
    #[test]
    fn pflash_paths_with_commas_are_escaped() {
        let dir = std::env::temp_dir().join(format!("rexo-ovmf,{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (code, vars) = (dir.join("CODE.fd"), dir.join("VARS.fd"));
        std::fs::write(&code, b"code").unwrap();
        std::fs::write(&vars, b"vars").unwrap();
        let firmware = Firmware::Split {
            code: code.clone(),
            vars,
        };
        let args = firmware_args(Some(&firmware), &dir.join("scratch")).unwrap();
        let doubled = |path: &Path| option_path(path).unwrap();
        assert_eq!(
            args[1],
            format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                doubled(&code)
            )
        );
        let copy = dir.join("scratch/OVMF_VARS.fd");
        assert_eq!(
            args[3],
            format!("if=pflash,format=raw,unit=1,file={}", doubled(&copy))
        );
        assert!(args[3].contains("rexo-ovmf,,"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cached_probe_is_tied_to_the_host_boot() {
        let text = "abc\ntcg\nusing TCG: slow\n";
        assert_eq!(
            cached_probe(text, "abc"),
            Some((Accel::Tcg, "using TCG: slow".into()))
        );
        assert_eq!(cached_probe(text, "other boot"), None);
        assert_eq!(cached_probe(text, ""), None);
        assert_eq!(cached_probe("abc\nwarp\nx\n", "abc"), None);
    }

    #[test]
    fn a_cached_kvm_choice_needs_dev_kvm_to_still_open() {
        let opens = || Ok(());
        let refused = || Err(format!("{KVM_CLOSED} (Permission denied)"));
        let why = "using KVM: probe took 40 ms (TCG 300 ms)";
        assert!(cache_holds(Accel::Kvm, why, opens));
        assert!(!cache_holds(Accel::Kvm, why, refused));
    }

    #[test]
    fn a_cached_tcg_choice_for_a_closed_dev_kvm_lasts_only_while_it_stays_closed() {
        let opens = || Ok(());
        let refused = || Err(format!("{KVM_CLOSED} (Permission denied)"));
        let closed = format!("using TCG: {KVM_CLOSED} (Permission denied)");
        assert!(cache_holds(Accel::Tcg, &closed, refused));
        assert!(!cache_holds(Accel::Tcg, &closed, opens));
        // TCG chosen by measuring stays chosen whether or not /dev/kvm opens.
        let slow = "using TCG: KVM is slower than the emulator here (probe 900 ms, TCG 300 ms)";
        assert!(cache_holds(Accel::Tcg, slow, opens));
        assert!(cache_holds(Accel::Tcg, slow, refused));
    }

    #[test]
    fn a_kvm_probe_that_exits_with_an_error_says_so() {
        let run = |end, ms| Capture {
            lines: Vec::new(),
            end,
            wall: Duration::from_millis(ms),
        };
        let tcg = Duration::from_millis(300);
        let (accel, why) = kvm_verdict(&run(End::Exited(1), 40), tcg);
        assert_eq!(accel, Accel::Tcg);
        assert_eq!(
            why,
            "using TCG: the KVM probe failed: QEMU exited with status 1 after 40 ms"
        );
        assert_eq!(kvm_verdict(&run(End::Exited(33), 100), tcg).0, Accel::Kvm);
        assert!(
            kvm_verdict(&run(End::TimedOut, 2000), tcg)
                .1
                .contains("within 2 s")
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(0), Verdict::Success);
        assert_eq!(verdict(33), Verdict::Success);
        assert_eq!(verdict(35), Verdict::Failure);
        assert_eq!(verdict(1), Verdict::Other(1));
    }

    #[test]
    fn pvh_args() {
        let mut vm = Vm::pvh(Machine::Microvm, Path::new("/k"), "app=hello");
        vm.machine_props.push("acpi=off".into());
        let args = vm.args(Path::new("/tmp")).unwrap().join(" ");
        assert!(args.starts_with("-machine microvm,acpi=off -accel tcg -cpu max -smp 2 -m 256M"));
        assert!(args.contains("isa-debug-exit,iobase=0xf4,iosize=4 -no-reboot"));
        assert!(args.ends_with("-kernel /k -append app=hello"));
    }

    #[test]
    fn microvm_has_no_cdrom() {
        let mut vm = Vm::pvh(Machine::Microvm, Path::new("/k"), "");
        vm.media = Media::Cdrom {
            iso: "/x.iso".into(),
            firmware: None,
        };
        assert!(vm.args(Path::new("/tmp")).unwrap_err().contains("q35"));
        vm.media = Media::Disk {
            image: "/x.img".into(),
            device: "virtio-blk-pci".into(),
            firmware: None,
        };
        assert!(vm.args(Path::new("/tmp")).unwrap_err().contains("q35"));
        vm.machine = Machine::Q35;
        let args = vm.args(Path::new("/tmp")).unwrap().join(" ");
        assert!(args.contains("-drive file=/x.img,if=none,id=boot,format=raw -device virtio-blk-pci,drive=boot,bootindex=0"));
    }

    #[test]
    fn trivial_kernel_exits_33_and_timestamps_lines() {
        let root = crate::root();
        let kernel = crate::pvh::write(&root, "test-trivial-pvh.elf", 0).unwrap();
        let vm = Vm::pvh(Machine::Microvm, &kernel, "");
        let capture = run_captured(
            &vm.args(&root.join("target")).unwrap(),
            Duration::from_secs(20),
            None,
            |_| false,
        )
        .unwrap();
        assert_eq!(capture.end, End::Exited(33), "{:?}", capture.tail(10));
        let line = capture.serial().find(|l| l.text == crate::pvh::LINE);
        let line =
            line.unwrap_or_else(|| panic!("no `{}`: {:?}", crate::pvh::LINE, capture.tail(10)));
        assert!(line.at > Duration::ZERO && line.at <= capture.wall);
    }

    #[test]
    fn timeout_kills_a_spinning_kernel() {
        let root = crate::root();
        let kernel = crate::pvh::write(&root, "test-spin-pvh.elf", u32::MAX).unwrap();
        let vm = Vm::pvh(Machine::Microvm, &kernel, "");
        let capture = run_captured(
            &vm.args(&root.join("target")).unwrap(),
            Duration::from_millis(300),
            None,
            |_| false,
        )
        .unwrap();
        assert_eq!(capture.end, End::TimedOut);
    }

    #[test]
    fn accel_probe_explains_its_choice() {
        let (accel, why) = probe_accel(&crate::root()).unwrap();
        let expected = match accel {
            Accel::Kvm => "using KVM",
            Accel::Tcg => "using TCG",
        };
        assert!(why.starts_with(expected), "{why}");
        eprintln!("{why}");
    }
}
