//! Ending a child process together with every process it started (cargo and its test
//! binaries, `xtask run` and its QEMU), found by their parent links in `/proc`. The
//! children stay in the terminal's foreground process group, so Ctrl-C reaches them
//! all as it reaches xtask. A descendant whose parent already ended has a new parent
//! (init) and is not found: a QEMU left by an `xtask run` that died first outlives the
//! timeout's kill (a process-group kill reached it, but took Ctrl-C from the children).
//! And waiting for a child with a timeout.

use crate::Result;
use rustix::process::{Pid, Signal, kill_process};
use std::process::Child;
use std::time::{Duration, Instant};

/// Waits up to `timeout` for `child`, which runs `program` (named in an error); its exit
/// status (-1 for a signal) or `None`.
pub fn wait_timeout(child: &mut Child, program: &str, timeout: Duration) -> Result<Option<i32>> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status.code().unwrap_or(-1))),
            Ok(None) if Instant::now() >= deadline => return Ok(None),
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {program} failed: {e}")),
        }
    }
}

/// [`wait_timeout`], then [`kill_tree`] unless `child` exited (it is still running
/// after `timeout`, or waiting for it failed): its exit status, `None`, or the error.
pub fn wait_or_kill(child: &mut Child, program: &str, timeout: Duration) -> Result<Option<i32>> {
    let status = wait_timeout(child, program, timeout);
    if !matches!(status, Ok(Some(_))) {
        kill_tree(child);
    }
    status
}

/// Stops `child` and its descendants (SIGSTOP) until no new descendant appears, since a
/// stopped process starts no other and keeps its parent link, then kills them all
/// (SIGKILL) and reaps `child`.
pub fn kill_tree(child: &mut Child) {
    let root = child.id();
    let mut stopped: Vec<u32> = Vec::new();
    loop {
        let tree = std::iter::once(root).chain(descendants(root, &process_parents()));
        let new: Vec<u32> = tree.filter(|pid| !stopped.contains(pid)).collect();
        if new.is_empty() {
            break;
        }
        for &pid in &new {
            send(pid, Signal::STOP);
        }
        stopped.extend(new);
    }
    for &pid in &stopped {
        send(pid, Signal::KILL);
    }
    let _ = child.wait();
}

/// Sends `signal` to `pid`; one that has already ended is no error here.
fn send(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

/// `(pid, ppid)` of every process in `/proc` (none where it cannot be read).
fn process_parents() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            path.file_name()?.to_str()?.parse::<u32>().ok()?;
            parse_stat(&std::fs::read_to_string(path.join("stat")).ok()?)
        })
        .collect()
}

/// The process id and its parent's from a `/proc/PID/stat` line, `PID (COMM) STATE
/// PPID ...`, where COMM (the program's name) may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(u32, u32)> {
    let (pid, _) = stat.split_once(" (")?;
    let ppid = after_name(stat)?.split_whitespace().nth(1)?.parse().ok()?;
    Some((pid.parse().ok()?, ppid))
}

/// What follows COMM in a `/proc/PID/stat` line (` STATE PPID ...`): after its last
/// `)`, since COMM may hold parentheses.
fn after_name(stat: &str) -> Option<&str> {
    Some(&stat[stat.rfind(')')? + 1..])
}

/// The descendants of `root` (its children, theirs, and so on) among `(pid, ppid)`
/// pairs, parents before their children.
fn descendants(root: u32, parents: &[(u32, u32)]) -> Vec<u32> {
    let mut found: Vec<u32> = Vec::new();
    let mut next = 0;
    let mut parent = root;
    loop {
        for &(pid, ppid) in parents {
            if ppid == parent && pid != root && !found.contains(&pid) {
                found.push(pid);
            }
        }
        let Some(&pid) = found.get(next) else {
            return found;
        };
        parent = pid;
        next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    #[test]
    fn descendants_are_children_and_theirs_not_siblings_or_parents() {
        // 1 -> 10 -> {20 -> 40, 21}; 1 -> 11 (a sibling of 10); 30 is unrelated.
        let parents = [
            (1, 0),
            (10, 1),
            (11, 1),
            (20, 10),
            (21, 10),
            (30, 5),
            (40, 20),
        ];
        assert_eq!(descendants(10, &parents), vec![20, 21, 40]);
        assert_eq!(descendants(21, &parents), Vec::<u32>::new());
        assert_eq!(descendants(99, &parents), Vec::<u32>::new());
    }

    #[test]
    fn stat_lines_give_the_parent_even_with_parentheses_in_the_name() {
        assert_eq!(parse_stat("42 (cargo) S 7 42 7 0"), Some((42, 7)));
        assert_eq!(parse_stat("43 (a (b) c) R 9 43 9"), Some((43, 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn kill_tree_ends_the_grandchildren_too() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 60 </dev/null >/dev/null & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("sh prints the sleep's pid");
        let grandchild: u32 = line.trim().parse().expect("a pid");
        kill_tree(&mut child);
        // Ended: gone, or a zombie until whoever inherited it reaps it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
            let state = stat.as_deref().ok().and_then(|stat| {
                after_name(stat)?
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            });
            if matches!(state.as_deref(), None | Some("Z" | "X")) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the grandchild {grandchild} still runs (state {state:?})"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
