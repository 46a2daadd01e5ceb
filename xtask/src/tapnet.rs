//! The benchmark suite's tap transport: a network namespace made for the run, holding a
//! tap device with the host's end at 10.0.2.2/24; QEMU runs inside it with the guest's
//! NIC on the tap, and the load generators run inside it too, talking straight to the
//! guest at 10.0.2.15. The addresses are those of QEMU's user networking, so the Linux
//! guest's init (static 10.0.2.15/24 via 10.0.2.2) is the same on both transports;
//! Rexo gets them with `ip=`. Nothing outside the namespace changes. The `net::virtio-mq`
//! test uses the same network with a multi-queue tap device (`queues=2`).

use crate::Result;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The guest's address on the tap network.
pub const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The host's end of the tap device.
const HOST: &str = "10.0.2.2/24";
/// The tap device's name inside the namespace.
pub const TAP: &str = "tap0";
/// Rexo's kernel command-line word for the same configuration.
pub const REXO_IP: &str = "ip=10.0.2.15/24,10.0.2.2";
/// The router's end of the narrow path ([`TapNet::with_narrow_path`]), in the tap's
/// namespace.
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);
/// The far end of the narrow path, where the case's client then runs.
pub const FAR: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);
/// The MTU of the narrow path of [`Arg::TapNarrowPath`](crate::testcases::Arg::TapNarrowPath)
/// cases: a tunnel's, below Ethernet's 1500.
pub const NARROW_PATH_MTU: u16 = 1400;

/// What a process that is root or not (`root`) lacks to make a [`TapNet`]: root first,
/// then the `ip` program and `/dev/net/tun`.
fn missing_prerequisite(root: bool) -> Option<String> {
    if !root {
        Some(NEEDS_ROOT.into())
    } else if crate::deps::find_program("ip").is_none() {
        Some("no `ip` program (package iproute2)".into())
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("no /dev/net/tun".into())
    } else {
        None
    }
}

/// Why a [`TapNet`] cannot be made without root (a test case using one fails with it).
const NEEDS_ROOT: &str =
    "needs root (tap devices in a network namespace), and this process is not root";

/// A network namespace with a tap device, deleted on drop.
#[derive(Debug)]
pub struct TapNet {
    /// The namespace's name.
    netns: String,
    /// The namespace behind a narrow path ([`TapNet::with_narrow_path`]), if made.
    far: Option<String>,
    /// Whether `/dev/vhost-net` opens: QEMU then moves the frames in the host kernel.
    vhost: std::result::Result<(), String>,
    /// The tap device's queues (QEMU opens one file per queue).
    queues: u16,
}

impl TapNet {
    /// Makes the namespace `rexo-PURPOSE-PID-N` (N counts this process's namespaces, so
    /// that cases running at once have their own) and its tap device with `queues` queues
    /// (more than one: a multi-queue tap), or says why it cannot (not root, no `ip`, no
    /// `/dev/net/tun`, a command refused).
    pub fn create(purpose: &str, queues: u16) -> Result<Self> {
        if let Some(missing) = missing_prerequisite(crate::deps::is_root()) {
            return Err(missing);
        }
        static SWEPT: Once = Once::new();
        SWEPT.call_once(remove_stale_namespaces);
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let netns = format!(
            "rexo-{purpose}-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        // A namespace of an earlier run with the same process id: start afresh.
        let _ = ip(&["netns", "del", &netns]);
        ip(&["netns", "add", &netns])?;
        let vhost = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/vhost-net")
            .map(drop)
            .map_err(|e| e.to_string());
        let tap = Self {
            netns,
            far: None,
            vhost,
            queues,
        };
        let inside = |words: &[&str]| {
            let mut all = vec!["netns", "exec", tap.netns.as_str(), "ip"];
            all.extend_from_slice(words);
            ip(&all)
        };
        inside(&["link", "set", "lo", "up"])?;
        let mut tuntap = vec!["tuntap", "add", "dev", TAP, "mode", "tap"];
        if queues > 1 {
            tuntap.push("multi_queue");
        }
        inside(&tuntap)?;
        inside(&["addr", "add", HOST, "dev", TAP])?;
        inside(&["link", "set", TAP, "up"])?;
        Ok(tap)
    }

    /// The namespace's name.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Puts a second namespace, `rexo-far-PID-N`, behind the tap's as behind a router
    /// whose next hop forwards datagrams of at most `mtu` bytes: a veth pair joins
    /// [`ROUTER`] (in the tap's namespace, which forwards) to [`FAR`] (routed to the
    /// guest's network through it), both ends with Ethernet's 1500-byte MTU, so that the
    /// far end announces an MSS of 1460; only the tap's namespace's route to the far
    /// network takes `mtu` bytes at most. A full-sized datagram with DF set from the
    /// guest to the far end is refused there with an ICMP "fragmentation needed" naming
    /// `mtu` (RFC 1191), as a tunnel or PPPoE link on a real path refuses it. The
    /// case's client then runs in the far namespace ([`TapNet::client_netns`]).
    pub fn with_narrow_path(mut self, mtu: u16) -> Result<Self> {
        // `rexo-far-PID-N`, named after the tap's `rexo-PURPOSE-PID-N`.
        let mut pid_and_count = self.netns.rsplitn(3, '-');
        let count = pid_and_count.next().unwrap_or_default();
        let pid = pid_and_count.next().unwrap_or_default();
        let far = format!("rexo-far-{pid}-{count}");
        // A namespace of an earlier run with the same process id: start afresh.
        let _ = ip(&["netns", "del", &far]);
        ip(&["netns", "add", &far])?;
        self.far = Some(far.clone());
        let near = self.netns.clone();
        let pair = [
            "link", "add", "narrow0", "type", "veth", "peer", "name", "far0",
        ];
        ip_in(&near, &[&pair[..], &["netns", &far]].concat())?;
        ip_in(
            &near,
            &["addr", "add", &format!("{ROUTER}/24"), "dev", "narrow0"],
        )?;
        ip_in(&near, &["link", "set", "narrow0", "up"])?;
        ip_in(&far, &["link", "set", "lo", "up"])?;
        ip_in(&far, &["addr", "add", &format!("{FAR}/24"), "dev", "far0"])?;
        ip_in(&far, &["link", "set", "far0", "up"])?;
        ip_in(
            &far,
            &["route", "add", "default", "via", &ROUTER.to_string()],
        )?;
        let mtu = mtu.to_string();
        let far_network = "10.0.3.0/24";
        ip_in(
            &near,
            &[
                "route",
                "replace",
                far_network,
                "dev",
                "narrow0",
                "mtu",
                &mtu,
            ],
        )?;
        // The tap's namespace forwards between the guest and the far end: its own
        // /proc/sys/net, which a thread inside it opens.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    enter(&near)?;
                    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                        .map_err(|e| format!("cannot turn forwarding on in {near}: {e}"))
                })
                .join()
                .map_err(|_| "the thread turning forwarding on panicked".to_string())?
        })?;
        Ok(self)
    }

    /// The namespace a case's client runs in: the far one behind a narrow path if
    /// [`TapNet::with_narrow_path`] made it, else the tap's.
    pub fn client_netns(&self) -> &str {
        self.far.as_deref().unwrap_or(&self.netns)
    }

    /// The tap device's queues.
    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// QEMU's arguments for a NIC of `model` on the tap device.
    pub fn qemu_args(&self, model: &str) -> Vec<String> {
        vec![
            "-netdev".into(),
            format!(
                "tap,id=tap0,ifname={TAP},script=no,downscript=no,queues={},vhost={}",
                self.queues,
                if self.vhost.is_ok() { "on" } else { "off" }
            ),
            "-device".into(),
            format!("{model},netdev=tap0"),
        ]
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        command_in(Some(&self.netns), program)
    }

    /// What the report says of this transport.
    pub fn describe(&self) -> String {
        format!(
            "a tap device in the network namespace {} made for the run (host 10.0.2.2, guest 10.0.2.15; {} queue pair(s) on the NIC; {})",
            self.netns,
            self.queues,
            match &self.vhost {
                Ok(()) => "vhost-net on".to_string(),
                Err(why) => format!("no vhost-net: /dev/vhost-net: {why}"),
            }
        )
    }
}

/// The process id in a name `rexo-PURPOSE-PID-N` that [`TapNet::create`] gives, if
/// `netns` is one.
fn creator_pid(netns: &str) -> Option<u32> {
    let mut parts = netns.strip_prefix("rexo-")?.rsplitn(3, '-');
    let count = parts.next()?;
    let pid = parts.next()?;
    let purpose = parts.next()?;
    (!purpose.is_empty() && count.parse::<usize>().is_ok())
        .then(|| pid.parse().ok())
        .flatten()
}

/// The namespaces in `listed` (what `ip netns list` prints: a name first on each line)
/// that a [`TapNet`] of a process no longer `alive` made: a run ended by Ctrl-C or a
/// signal leaves them, as its `Drop` never ran.
fn stale_namespaces(listed: &str, alive: impl Fn(u32) -> bool) -> Vec<&str> {
    listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| creator_pid(name).is_some_and(|pid| !alive(pid)))
        .collect()
}

/// Deletes the namespaces (and their tap devices) that runs which have ended left
/// behind, and says so in one line.
fn remove_stale_namespaces() {
    let Ok(listed) = ip(&["netns", "list"]) else {
        return;
    };
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    let stale = stale_namespaces(&listed, alive);
    if !stale.is_empty() {
        eprintln!(
            "xtask: deleting network namespaces left by runs that have ended: {}",
            stale.join(", ")
        );
    }
    for netns in stale {
        if let Err(why) = ip(&["netns", "del", netns]) {
            eprintln!("xtask: warning: {why}");
        }
    }
}

impl Drop for TapNet {
    fn drop(&mut self) {
        // The tap device goes with its namespace, a veth pair with either end's.
        for netns in self.far.iter().chain([&self.netns]) {
            if let Err(why) = ip(&["netns", "del", netns]) {
                eprintln!("xtask: warning: {why}");
            }
        }
    }
}

/// `program`, run inside the network namespace `netns` when given (`ip netns exec`).
pub fn command_in(netns: Option<&str>, program: impl AsRef<OsStr>) -> Command {
    match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Runs `ip WORDS` inside the network namespace `netns`.
pub fn ip_in(netns: &str, words: &[&str]) -> Result<()> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(words);
    ip(&all).map(drop)
}

/// Moves the calling thread into the network namespace `netns` (`setns`): the sockets
/// it opens from then on are the namespace's, whichever thread uses them later.
pub fn enter(netns: &str) -> Result<()> {
    let path = format!("/run/netns/{netns}");
    let file = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("cannot enter the network namespace {netns}: {e}"))
}

/// Runs `ip WORDS` (killed if it runs past [`crate::loadgen::GRACE`]): what it printed;
/// the error carries the end of what it printed.
fn ip(words: &[&str]) -> Result<String> {
    let what = format!("`ip {}`", words.join(" "));
    crate::loadgen::stdout_of(Command::new("ip").args(words), &what, crate::loadgen::GRACE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made and removed with its namespace as root (CI runs as root); refused with the
    /// reason otherwise.
    #[test]
    fn makes_and_removes_its_namespace() {
        let listed = || {
            let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        match TapNet::create("test", 2) {
            Ok(tap) => {
                let netns = tap.netns().to_string();
                assert!(listed().contains(&netns));
                let out = tap
                    .command("ip")
                    .args(["addr", "show", TAP])
                    .output()
                    .unwrap();
                assert!(String::from_utf8_lossy(&out.stdout).contains("10.0.2.2/24"));
                assert!(tap.qemu_args("virtio-net-pci")[1].contains("ifname=tap0"));
                assert!(tap.qemu_args("virtio-net-pci")[1].contains("queues=2"));
                drop(tap);
                assert!(!listed().contains(&netns));
            }
            Err(why) => assert!(!crate::deps::is_root(), "as root: {why}"),
        }
    }

    /// The far namespace behind a narrow path: routed through the tap's, whose route to
    /// it takes datagrams of the path's MTU, and removed with it.
    #[test]
    fn a_narrow_path_leads_to_a_far_namespace_removed_with_the_tap() {
        let listed = || {
            let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let narrowed = TapNet::create("tap", 1).and_then(|tap| tap.with_narrow_path(1400));
        match narrowed {
            Ok(tap) => {
                let far = tap.client_netns().to_string();
                assert!(far.starts_with("rexo-far-") && listed().contains(&far));
                let shown = |netns: &str, words: &[&str]| {
                    let out = command_in(Some(netns), "ip").args(words).output().unwrap();
                    String::from_utf8_lossy(&out.stdout).into_owned()
                };
                let route = shown(tap.netns(), &["route", "show", "10.0.3.0/24"]);
                assert!(route.contains("mtu 1400"), "{route}");
                let default = shown(&far, &["route", "show", "default"]);
                assert!(default.contains("via 10.0.3.1"), "{default}");
                let forwarding = shown(tap.netns(), &["netconf", "show", "dev", "narrow0"]);
                assert!(forwarding.contains("forwarding on"), "{forwarding}");
                drop(tap);
                assert!(!listed().contains(&far));
            }
            Err(why) => assert!(!crate::deps::is_root(), "as root: {why}"),
        }
    }

    /// A far namespace of an earlier run whose process id this one reuses (not swept: its
    /// creator looks alive) is replaced, as the tap's namespace is.
    #[test]
    fn a_far_namespace_left_by_a_run_with_the_same_process_id_is_replaced() {
        let Ok(tap) = TapNet::create("tap", 1) else {
            return assert!(!crate::deps::is_root(), "as root, no namespace");
        };
        let far = tap.netns().replacen("rexo-tap-", "rexo-far-", 1);
        ip(&["netns", "add", &far]).unwrap();
        let narrowed = tap
            .with_narrow_path(1400)
            .expect("the stale namespace replaced");
        assert_eq!(narrowed.client_netns(), far);
    }

    #[test]
    fn namespaces_of_ended_runs_are_stale() {
        let listed = "rexo-tap-4242-0 (id: 3)\nrexo-test-77-1\nrexo-bench-4242-12\n\
                      rexo-tap-x-0\nother-1-2\nrexo--5-0\n";
        assert_eq!(creator_pid("rexo-tap-4242-0"), Some(4242));
        assert_eq!(creator_pid("rexo-tap-4242"), None);
        let alive = |pid| pid == 77;
        assert_eq!(
            stale_namespaces(listed, alive),
            ["rexo-tap-4242-0", "rexo-bench-4242-12"]
        );
    }

    #[test]
    fn without_root_the_reason_says_root_is_needed_for_tap_devices() {
        let why = missing_prerequisite(false).unwrap();
        assert!(
            why.starts_with("needs root (tap devices in a network namespace)"),
            "{why}"
        );
    }
}
