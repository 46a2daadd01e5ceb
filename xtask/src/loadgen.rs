//! Debian's load generators for the benchmark suite: `wrk` for HTTP and `memcaslap`
//! (libmemcached's memaslap) for memcached, run on the host (inside the tap transport's
//! network namespace when given), and the parsing of what they print.

use crate::Result;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a load generator may run past its load (starting, connecting, its report)
/// before it is taken as hung and killed.
pub const GRACE: Duration = Duration::from_secs(30);

/// `wrk -t threads -c connections -d time` on `url`: the requests answered per second,
/// or an error when wrk fails, a socket failed or an answer was not 2xx/3xx (a figure
/// made of errors would flatter the server).
///
/// wrk's latency percentiles are not used: wrk opens its connections all at once, and
/// QEMU's user networking listens on the host with a backlog of one, so some connections
/// wait seconds in the host's accept queue with their first request sent (seen with `ss`:
/// SYN-ACK retransmissions with back-off), which says nothing of the guest.
pub fn wrk(
    netns: Option<&str>,
    url: &str,
    threads: usize,
    connections: usize,
    time: Duration,
) -> Result<f64> {
    let seconds = time.as_secs().max(1).to_string();
    let mut command = tool(netns, "wrk")?;
    command.args([
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
        // Longer than the run: a connection stalled in QEMU's accept queue (see above)
        // is not a time-out of the guest's.
        "--timeout",
        "30s",
        url,
    ]);
    parse_wrk(&stdout_of(&mut command, "wrk", time + GRACE)?)
}

/// Runs `command` (its standard input empty) to its end within `limit`: what it printed
/// on its standard output, or an error with the last lines it printed on each output
/// when it failed or ran past `limit` (it and every process it started then killed).
/// `what` names it in messages.
pub fn stdout_of(command: &mut Command, what: &str, limit: Duration) -> Result<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    // Both pipes are read on threads, so that a chatty tool never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = crate::proctree::wait_or_kill(&mut child, what, limit)?;
    let (out, err) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    let tail = |text: &str| {
        let lines: Vec<&str> = text.trim().lines().collect();
        lines[lines.len().saturating_sub(8)..].join(" | ")
    };
    match status {
        Some(0) => Ok(out),
        Some(code) => Err(format!(
            "{what} failed (exit status {code}): {} {}",
            tail(&out),
            tail(&err)
        )),
        None => Err(format!(
            "{what} ran past {} s and was killed: {} {}",
            limit.as_secs_f64(),
            tail(&out),
            tail(&err)
        )),
    }
}

/// `name` from `PATH`, run inside `netns` when given.
fn tool(netns: Option<&str>, name: &str) -> Result<Command> {
    let program = crate::deps::find_program(name).ok_or(format!("no {name} on PATH"))?;
    Ok(crate::tapnet::command_in(netns, program))
}

/// Reads wrk's report: the requests per second.
pub fn parse_wrk(text: &str) -> Result<f64> {
    let mut per_second = None;
    for line in text.lines().map(str::trim) {
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            per_second = rate.trim().parse::<f64>().ok();
        } else if line.starts_with("Non-2xx or 3xx responses:") {
            return Err(format!("wrk: {line}"));
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            return Err(format!("wrk: socket errors:{errors}"));
        }
    }
    match per_second {
        Some(rate) if rate > 0.0 => Ok(rate),
        _ => Err(format!("wrk printed no request rate:\n{text}")),
    }
}

/// `memcaslap` on `server` with `threads` threads and `connections` concurrent clients
/// for `time`: its default mix (90% get, 10% set) of `value_bytes`-byte values. The
/// operations per second it reports.
pub fn memaslap(
    netns: Option<&str>,
    server: SocketAddr,
    threads: usize,
    connections: usize,
    value_bytes: usize,
    time: Duration,
) -> Result<f64> {
    let mut command = tool(netns, "memcaslap")?;
    command.args([
        "-s",
        &server.to_string(),
        "-T",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-X",
        &value_bytes.to_string(),
        "-t",
        &format!("{}s", time.as_secs().max(1)),
    ]);
    parse_memaslap(&stdout_of(&mut command, "memcaslap", time + GRACE)?)
}

/// Reads memaslap's closing report (`cmd_get: N`, `cmd_set: N`, `get_misses: N`, ...,
/// then `Run time: 3.0s Ops: 192786 TPS: 64256 Net_rate: ...`): the operations per
/// second. Refused when it made no command or a get missed: every key memaslap gets it
/// has set, so a miss is a store the server refused or lost (a server that answers
/// every set with an error and every get with `END` is fast, not a cache).
pub fn parse_memaslap(text: &str) -> Result<f64> {
    let closing = text
        .lines()
        .rev()
        .find(|line| line.starts_with("Run time:"))
        .ok_or_else(|| format!("memcaslap printed no `Run time:` line:\n{text}"))?;
    let counter = |name: &str| -> Result<u64> {
        text.lines()
            .rev()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|count| count.trim().parse().ok())
            .ok_or_else(|| format!("memcaslap printed no `{name}:` count:\n{text}"))
    };
    let (gets, sets, misses) = (
        counter("cmd_get")?,
        counter("cmd_set")?,
        counter("get_misses")?,
    );
    if misses > 0 {
        return Err(format!(
            "memcaslap: get_misses {misses} of {gets} gets (every key it gets, it set)"
        ));
    }
    if gets + sets == 0 {
        return Err(format!("memcaslap made no get or set: `{closing}`"));
    }
    let mut words = closing.split_whitespace();
    while let Some(word) = words.next() {
        if word == "TPS:" {
            let tps: f64 = words
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("memcaslap: no number after TPS in `{closing}`"))?;
            if tps <= 0.0 {
                return Err(format!("memcaslap made no operations: `{closing}`"));
            }
            return Ok(tps);
        }
    }
    Err(format!("memcaslap: no TPS in `{closing}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 3s test @ http://127.0.0.1:28080/1k.txt
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.03ms  186.37ms   1.66s    94.70%
    Req/Sec    26.79k     5.67k   46.30k    90.20%
  Latency Distribution
     50%  184.00us
     75%  237.00us
     90%  329.00us
     99%    1.13s 
  137207 requests in 3.10s, 153.36MB read
Requests/sec:  44265.93
Transfer/sec:     49.48MB
";

    #[test]
    fn a_hung_tool_is_killed_at_its_limit() {
        let started = std::time::Instant::now();
        let hung = stdout_of(
            Command::new("sh").args(["-c", "echo started; sleep 100"]),
            "the sleeper",
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited {:?}",
            started.elapsed()
        );
        assert!(
            hung.contains("the sleeper ran past 0.3 s") && hung.contains("started"),
            "{hung}"
        );
        assert_eq!(
            stdout_of(
                Command::new("sh").args(["-c", "echo hi"]),
                "echo",
                Duration::from_secs(5)
            ),
            Ok("hi\n".into())
        );
        let failed = stdout_of(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            "the failure",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(failed, "the failure failed (exit status 3): out err");
    }

    #[test]
    fn reads_wrk() {
        assert_eq!(parse_wrk(WRK).unwrap(), 44265.93);
    }

    #[test]
    fn refuses_wrk_runs_with_errors_or_nothing() {
        let errors = WRK.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec",
        );
        assert!(parse_wrk(&errors).unwrap_err().contains("read 3"));
        let non_2xx = WRK.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 12\nRequests/sec",
        );
        assert!(parse_wrk(&non_2xx).unwrap_err().contains("Non-2xx"));
        assert!(parse_wrk("unable to connect to 127.0.0.1:1").is_err());
    }

    /// memaslap's closing report, its counts and closing line given.
    fn memaslap_report(gets: u64, sets: u64, misses: u64, closing: &str) -> String {
        format!(
            "servers: 127.0.0.1:21211\nthreads count: 2\n\ncmd_get: {gets}\ncmd_set: \
             {sets}\nget_misses: {misses}\nwritten_bytes: 18911392\nread_bytes: \
             17306498\nobject_bytes: 2125700\n\n{closing}\n"
        )
    }

    const CLOSING: &str = "Run time: 3.0s Ops: 192786 TPS: 64256 Net_rate: 15.2M/s";

    #[test]
    fn reads_memaslap() {
        let text = memaslap_report(173508, 19278, 0, CLOSING);
        assert_eq!(parse_memaslap(&text).unwrap(), 64256.0);
        let idle = memaslap_report(0, 0, 0, "Run time: 3.0s Ops: 0 TPS: 0 Net_rate: 0M/s");
        assert!(parse_memaslap(&idle).is_err());
        assert!(parse_memaslap("servers: x\n").is_err());
    }

    #[test]
    fn refuses_memaslap_runs_whose_gets_missed_or_that_made_no_command() {
        let missed = parse_memaslap(&memaslap_report(173508, 19278, 5, CLOSING)).unwrap_err();
        assert!(missed.contains("get_misses 5"), "{missed}");
        let nothing = parse_memaslap(&memaslap_report(0, 0, 0, CLOSING)).unwrap_err();
        assert!(nothing.contains("no get or set"), "{nothing}");
        let uncounted = parse_memaslap(&format!("{CLOSING}\n")).unwrap_err();
        assert!(uncounted.contains("cmd_get"), "{uncounted}");
    }
}
