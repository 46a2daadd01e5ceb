//! Real-time host scheduling of a guest's virtual CPUs for a measurement window (the
//! OS-noise benchmark, docs/bench.md).
//!
//! Under TCG each virtual CPU is a host thread, so whatever else the host runs (builds,
//! other guests, the harness) takes turns with it and shows up in the guest as
//! interruptions of many milliseconds, far above either guest's own noise. For the
//! noise loop only, the harness gives QEMU's vCPU threads `SCHED_FIFO` priority 1 and
//! every other QEMU thread priority 2: the main thread runs the device and timer
//! emulation (so a guest's timer interrupts still arrive), and the RCU and worker
//! threads take QEMU's big lock, which a vCPU waits for on device accesses; below the
//! vCPUs they would hold that lock while the spinning vCPUs starve them (a priority
//! inversion that measured 28-54 ms stalls in the Linux guest). They mostly sleep.
//! Everything goes back to `SCHED_OTHER` when the guest says it measured.
//! Both guests get the same treatment. The kernel's real-time throttling (95% of each
//! second) still leaves the host its share should a guest spin past the window.

use crate::Result;
use std::path::Path;
use std::process::Command;

/// The `SCHED_FIFO` priority for a QEMU thread named `comm`: vCPU threads (named
/// `CPU N/TCG` or `CPU N/KVM` with `-name ...,debug-threads=on`) below the others.
fn realtime_priority(comm: &str) -> u8 {
    if is_vcpu(comm) { 1 } else { 2 }
}

/// Whether `comm` names a vCPU thread.
fn is_vcpu(comm: &str) -> bool {
    comm.starts_with("CPU ") && (comm.ends_with("/TCG") || comm.ends_with("/KVM"))
}

/// Gives QEMU process `pid`'s threads real-time priority (`realtime`, see
/// [`realtime_priority`]) or puts them back to the default; the number of vCPU threads.
/// Fails, naming the cause, when QEMU's vCPU threads are not named (QEMU started
/// without `-name ...,debug-threads=on`) or `chrt` cannot set a policy (not root). A
/// process or thread that has gone in the meantime is no error when going back.
pub fn set_realtime(pid: u32, realtime: bool) -> Result<usize> {
    let tasks = format!("/proc/{pid}/task");
    let entries = match std::fs::read_dir(&tasks) {
        Ok(entries) => entries,
        Err(_) if !realtime => return Ok(0),
        Err(e) => return Err(format!("cannot list {tasks}: {e}")),
    };
    let mut threads: Vec<(String, String)> = entries
        .flatten()
        .map(|entry| {
            let tid = entry.file_name().to_string_lossy().to_string();
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            (tid, comm.trim().to_string())
        })
        .collect();
    let vcpus = threads.iter().filter(|(_, comm)| is_vcpu(comm)).count();
    if vcpus == 0 && realtime {
        return Err(format!(
            "QEMU (pid {pid}) has no named vCPU threads (start it with -name NAME,debug-threads=on)"
        ));
    }
    // The other threads first when going real-time, the vCPUs first when going back:
    // never a real-time vCPU beside a thread it may wait for that is not.
    threads.sort_by_key(|(_, comm)| is_vcpu(comm) == realtime);
    for (tid, comm) in &threads {
        let (flag, priority) = if realtime {
            ("-f", realtime_priority(comm))
        } else {
            ("-o", 0)
        };
        let priority = priority.to_string();
        let out = Command::new("chrt")
            .args([flag, "-p", &priority, tid])
            .output()
            .map_err(|e| format!("cannot run chrt (package util-linux): {e}"))?;
        let gone = !Path::new(&format!("{tasks}/{tid}")).exists();
        let gone_meanwhile = gone && !realtime;
        if !out.status.success() && !gone_meanwhile {
            return Err(format!(
                "chrt {flag} -p {priority} {tid}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(vcpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpus_below_every_other_qemu_thread() {
        assert_eq!(realtime_priority("CPU 0/TCG"), 1);
        assert_eq!(realtime_priority("CPU 7/KVM"), 1);
        assert_eq!(realtime_priority("qemu-system-x86"), 2);
        assert_eq!(realtime_priority("worker"), 2);
        assert_eq!(realtime_priority("CPU 0/TCGX"), 2);
    }

    #[test]
    fn an_absent_process_is_an_error() {
        let err = set_realtime(u32::MAX, true).unwrap_err();
        assert!(err.contains("cannot list"), "{err}");
        assert_eq!(set_realtime(u32::MAX, false), Ok(0));
    }
}
