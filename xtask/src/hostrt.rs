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
//! Everything goes back to `SCHED_OTHER` when the guest says it measured, whether
//! going real-time worked or not; a switch to real-time that fails partway puts back
//! the threads it had switched at once, and a thread that exits meanwhile is skipped.
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
/// without `-name ...,debug-threads=on`) or `chrt` cannot set a policy (not root); a
/// switch to real-time that fails partway puts back the threads it had switched
/// ([`switch`]). A process or thread that has gone in the meantime is no error.
pub fn set_realtime(pid: u32, realtime: bool) -> Result<usize> {
    let tasks = format!("/proc/{pid}/task");
    let entries = match std::fs::read_dir(&tasks) {
        Ok(entries) => entries,
        Err(_) if !realtime => return Ok(0),
        Err(e) => return Err(format!("cannot list {tasks}: {e}")),
    };
    let threads: Vec<(String, String)> = entries
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
    let alive = |tid: &str| Path::new(&format!("{tasks}/{tid}")).exists();
    switch(threads, realtime, &mut chrt, &alive)?;
    Ok(vcpus)
}

/// Sets thread `tid`'s policy with `chrt`: `SCHED_FIFO` at `priority`, or `SCHED_OTHER`
/// for `None`.
fn chrt(tid: &str, priority: Option<u8>) -> Result<()> {
    let (flag, priority) = match priority {
        Some(priority) => ("-f", priority),
        None => ("-o", 0),
    };
    let priority = priority.to_string();
    let out = Command::new("chrt")
        .args([flag, "-p", &priority, tid])
        .output()
        .map_err(|e| format!("cannot run chrt (package util-linux): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "chrt {flag} -p {priority} {tid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Switches `threads` (thread id, name) to real-time (`realtime`) or back through `set`
/// (a thread and its `SCHED_FIFO` priority, `None` for `SCHED_OTHER`): the other threads
/// first when going real-time, the vCPUs first when going back, so that a real-time
/// vCPU never runs beside a thread it may wait for that is not. A thread that failed and
/// is no longer `alive` has exited meanwhile, which is no error. Going real-time stops
/// at the first other failure and puts back the threads switched before it, last first;
/// going back goes on past a failure, so that every thread it can put back goes back,
/// and then names the first.
fn switch(
    mut threads: Vec<(String, String)>,
    realtime: bool,
    set: &mut dyn FnMut(&str, Option<u8>) -> Result<()>,
    alive: &dyn Fn(&str) -> bool,
) -> Result<()> {
    threads.sort_by_key(|(_, comm)| is_vcpu(comm) == realtime);
    let mut switched: Vec<&str> = Vec::new();
    let mut first_failure = None;
    for (tid, comm) in &threads {
        let priority = realtime.then(|| realtime_priority(comm));
        match set(tid, priority) {
            Ok(()) => switched.push(tid),
            Err(_) if !alive(tid) => {}
            Err(why) if realtime => {
                let mut stuck = Vec::new();
                for &tid in switched.iter().rev() {
                    if set(tid, None).is_err() && alive(tid) {
                        stuck.push(tid);
                    }
                }
                return Err(if switched.is_empty() {
                    why
                } else if stuck.is_empty() {
                    format!("{why} (the threads switched before it are back)")
                } else {
                    format!(
                        "{why}; threads {} stay real-time: cannot put them back",
                        stuck.join(", ")
                    )
                });
            }
            Err(why) => {
                first_failure.get_or_insert(why);
            }
        }
    }
    first_failure.map_or(Ok(()), Err)
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

    /// A QEMU's threads: its main thread, two vCPUs and a worker, as (thread id, name).
    fn qemu_threads() -> Vec<(String, String)> {
        [
            ("10", "qemu-system-x86"),
            ("11", "CPU 0/TCG"),
            ("12", "worker"),
            ("13", "CPU 1/TCG"),
        ]
        .iter()
        .map(|(tid, comm)| (tid.to_string(), comm.to_string()))
        .collect()
    }

    /// A `set` for [`switch`] that records each change, refusing those of the threads
    /// in `failing`.
    fn recording<'a>(
        calls: &'a mut Vec<(String, Option<u8>)>,
        failing: &'a [&str],
    ) -> impl FnMut(&str, Option<u8>) -> Result<()> + 'a {
        move |tid, priority| {
            calls.push((tid.to_string(), priority));
            if failing.contains(&tid) {
                Err(format!("chrt refused {tid}"))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_switch_to_real_time_that_fails_partway_puts_back_what_it_switched() {
        let mut calls = Vec::new();
        let err = switch(
            qemu_threads(),
            true,
            &mut recording(&mut calls, &["13"]),
            &|_| true,
        )
        .unwrap_err();
        assert!(err.contains("chrt refused 13"), "{err}");
        let call = |tid: &str, priority| (tid.to_string(), priority);
        assert_eq!(
            calls,
            [
                call("10", Some(2)),
                call("12", Some(2)),
                call("11", Some(1)),
                call("13", Some(1)),
                // Back, the last switched first: the vCPU before the threads it waits for.
                call("11", None),
                call("12", None),
                call("10", None),
            ]
        );
    }

    #[test]
    fn a_thread_gone_meanwhile_is_no_failure_either_way() {
        for realtime in [true, false] {
            let mut calls = Vec::new();
            let gone = |tid: &str| tid != "12";
            switch(
                qemu_threads(),
                realtime,
                &mut recording(&mut calls, &["12"]),
                &gone,
            )
            .unwrap();
            assert_eq!(calls.len(), 4, "every thread asked once: {calls:?}");
        }
    }

    #[test]
    fn going_back_puts_back_every_thread_it_can_and_names_the_failure() {
        let mut calls = Vec::new();
        let err = switch(
            qemu_threads(),
            false,
            &mut recording(&mut calls, &["11"]),
            &|_| true,
        )
        .unwrap_err();
        assert_eq!(err, "chrt refused 11");
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert!(calls.iter().all(|(_, priority)| priority.is_none()));
        // The vCPUs first.
        assert_eq!((calls[0].0.as_str(), calls[1].0.as_str()), ("11", "13"));
    }

    #[test]
    fn an_absent_process_is_an_error() {
        let err = set_realtime(u32::MAX, true).unwrap_err();
        assert!(err.contains("cannot list"), "{err}");
        assert_eq!(set_realtime(u32::MAX, false), Ok(0));
    }
}
