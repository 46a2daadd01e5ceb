//! The `kv::` cases' host client: memcached's text protocol over the forwarded TCP and
//! UDP ports, every answer checked byte for byte (the answers are memcached 1.6's, see
//! libos/memcache). Each client ends with `shutdown`, so that the app returns and QEMU
//! powers off, even when a check failed.

use crate::Result;
use crate::deps::Need;
use crate::netclient::{Client, Forwards, Stream, mismatch, retry, run_tool, shown};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// memcached's port, forwarded TCP and UDP.
pub const PORT: u16 = 11211;
/// How long one read waits (TCG on a loaded machine: a 1 MiB value takes a while).
const TIMEOUT: Duration = Duration::from_secs(30);
/// The item size limit of the app (memcached's default).
const MAX_VALUE: usize = 1 << 20;
/// kv-small's cache budget.
const SMALL_CACHE: u64 = 1 << 20;
/// How long the load runs.
const LOAD_TIME: Duration = Duration::from_secs(5);
/// Connections of the load.
const LOAD_CONNECTIONS: usize = 4;
/// The start line of the app.
const SERVING: &str = "kv: serving memcached on";

/// Every command, byte-exact, over TCP and UDP; binary values; expiry; pipelining.
pub const PROTOCOL: Client = Client {
    name: "kv protocol client",
    needs: &[],
    after: SERVING,
    run: |ports| with_shutdown(ports, protocol),
};

/// Wrong byte counts, oversized values, keys and lines: the protocol's errors, and other
/// connections go on.
pub const BAD_INPUT: Client = Client {
    name: "kv bad-input client",
    needs: &[],
    after: SERVING,
    run: |ports| with_shutdown(ports, bad_input),
};

/// kv-small's 1 MiB cache overfilled: LRU eviction and its `stats` counters.
pub const EVICTION: Client = Client {
    name: "kv eviction client",
    needs: &[],
    after: SERVING,
    run: |ports| with_shutdown(ports, eviction),
};

/// A simple load (90% get, 10% set): operations per second and latency, in the log.
pub const LOAD: Client = Client {
    name: "kv load client",
    needs: &[],
    after: SERVING,
    run: |ports| with_shutdown(ports, load),
};

/// libmemcached's `memccapable -a`: memcached's own conformance checks of the text
/// protocol (27 of them).
pub const MEMCAPABLE: Client = Client {
    name: "memccapable",
    needs: &[Need::MemcachedTools],
    after: SERVING,
    run: |ports| with_shutdown(ports, memcapable),
};

/// libmemcached's `memcaslap`: 32 connections, 90% get and 10% set for a few seconds;
/// its figures go to the log.
pub const MEMCASLAP: Client = Client {
    name: "memcaslap",
    needs: &[Need::MemcachedTools],
    after: SERVING,
    run: |ports| with_shutdown(ports, memcaslap),
};

/// Python's pymemcache (from PyPI): every command, noreply, binary values up to 1 MiB,
/// expiry, the error of a value too large, `stats`.
pub const PYMEMCACHE: Client = Client {
    name: "pymemcache",
    needs: &[Need::Pymemcache],
    after: SERVING,
    run: |ports| with_shutdown(ports, pymemcache),
};

/// The pymemcache checks, run with the virtual environment's Python (`HOST PORT STALL_S
/// STALL_RETRIES`: [`STALL`] in seconds and [`STALL_RETRIES`], so the script's expiry
/// check cannot drift from [`set_and_get_expiring`]'s).
const PYMEMCACHE_SCRIPT: &str = r#""""The kv::pymemcache case: pymemcache (PyPI) against Rexo's kv. Usage: HOST PORT STALL_S STALL_RETRIES.

Run by xtask (xtask/src/kvtests.rs) with the Python of target/pyenv; prints one line
per group of checks and exits non-zero with the first failure.
"""

import sys
import time


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, expected {want!r}")


def binary(length, seed):
    """Every byte value, different for each seed (an LCG's high byte)."""
    x = seed
    out = bytearray(length)
    for i in range(length):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out[i] = x >> 56
    return bytes(out)


def set_and_get_expiring(c, stall_s, stall_retries):
    """Sets `short` with a 2 s expiry and gets it back; returns the times it was set again.

    kv's clock counts whole seconds: a 2 s item lives 1 to 2 s, so a get stall_s or more
    after its set (a stalled host) may rightly miss it; it is set again then (up to
    stall_retries times, each miss counted in get_expired), as the Rust client does. A
    get of other bytes than were set is an error at once, stall or not.
    """
    stalls = 0
    while True:
        sent = time.monotonic()
        check("set expiring", c.set("short", b"soon", expire=2), True)
        got = c.get("short")
        if got == b"soon":
            return stalls
        if got is not None:
            sys.exit(f"get of key 'short': got {got!r}, expected {b'soon'!r} (the bytes set)")
        if time.monotonic() - sent < stall_s or stalls == stall_retries:
            check("get before expiry", got, b"soon")
        stalls += 1


def main():
    # Imported here, so that a host test can run set_and_get_expiring without pymemcache.
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheServerError

    host, port = sys.argv[1], int(sys.argv[2])
    stall_s, stall_retries = float(sys.argv[3]), int(sys.argv[4])
    c = Client((host, port), connect_timeout=10, timeout=60, default_noreply=False)
    check("flush_all", c.flush_all(), True)

    check("set", c.set("a", b"abc", flags=5), True)
    check("get", c.get("a"), b"abc")
    check("get miss", c.get("nothing"), None)
    check("get_many", c.get_many(["a", "nothing"]), {"a": b"abc"})
    value, unique = c.gets("a")
    check("gets", value, b"abc")
    check("cas stale", c.cas("a", b"new", str(int(unique) + 1000)), False)
    check("cas", c.cas("a", b"new", unique), True)
    check("cas missing", c.cas("nothing", b"x", "1"), None)
    check("add existing", c.add("a", b"x"), False)
    check("add", c.add("b", b"bee"), True)
    check("replace missing", c.replace("nothing", b"x"), False)
    check("replace", c.replace("b", b"mid"), True)
    check("append", c.append("b", b">>"), True)
    check("prepend", c.prepend("b", b"<<"), True)
    check("after append and prepend", c.get("b"), b"<<mid>>")
    check("delete", c.delete("b"), True)
    check("delete missing", c.delete("b"), False)
    check("set number", c.set("n", b"10"), True)
    check("incr", c.incr("n", 5), 15)
    check("decr", c.decr("n", 100), 0)
    check("incr missing", c.incr("nothing", 1), None)
    check("touch", c.touch("a", 1000), True)
    check("touch missing", c.touch("nothing", 1000), False)
    # pymemcache 4 has no gat/gats methods: its raw_command sends them.
    gat = c.raw_command("gat 1000 a", "END\r\n")
    check("gat", b"VALUE a 0 3\r\nnew\r\n" in gat, True)
    gats = c.raw_command("gats 1000 a", "END\r\n")
    check("gats", gats.startswith(b"VALUE a 0 3 "), True)
    check("version", c.version().startswith(b"1.6"), True)
    print("every command: set get get_many gets cas add replace append prepend delete incr decr touch gat gats (raw) version")

    # noreply: the answers are not read; what they did shows in the next get.
    c.set("q", b"quiet", noreply=True)
    c.append("q", b"!", noreply=True)
    c.add("q", b"x", noreply=True)
    c.delete("nothing", noreply=True)
    c.incr("n", 7, noreply=True)
    check("after noreply", c.get_many(["q", "n"]), {"q": b"quiet!", "n": b"7"})
    print("noreply: set append add delete incr")

    sizes = [0, 1, 100, 65536, 500000, 1 << 20]
    for i, size in enumerate(sizes):
        data = binary(size, i + 1)
        check(f"set {size} bytes", c.set(f"bin{i}", data), True)
        check(f"get {size} bytes", c.get(f"bin{i}") == data, True)
    try:
        c.set("too-large", b"x" * ((1 << 20) + 1))
        sys.exit("a value of 1 MiB + 1 byte was stored")
    except MemcacheServerError as error:
        check("too large", b"object too large for cache" in str(error).encode(), True)
    check("still served", c.get("bin1") == binary(1, 2), True)
    print(f"binary values of {sizes} bytes byte-exact; 1 MiB + 1 refused")

    stalls = set_and_get_expiring(c, stall_s, stall_retries)
    time.sleep(3.2)
    check("get after expiry", c.get("short"), None)
    print(f"expiry: a 2 s item gone after 3.2 s ({stalls} set again after a stall)")

    stats = c.stats()
    check("stats threads", stats[b"threads"], 1)
    check("stats curr_connections", stats[b"curr_connections"] >= 1, True)
    check("stats cas_hits", stats[b"cas_hits"], 1)
    check("stats cas_badval", stats[b"cas_badval"], 1)
    check("stats get_expired", stats[b"get_expired"], 1 + stalls)
    check("stats curr_items", stats[b"curr_items"], 3 + len(sizes))
    print("stats: threads, curr_connections, cas and expiry counters, curr_items")
    c.quit()


if __name__ == "__main__":
    main()
"#;

/// The `net::shared-nic` case: kv and httpd bound by filters to one interface; every kv
/// protocol check (TCP and UDP), then every httpd check (which ends with its shutdown
/// hook), through the same guest address.
pub const SHARED: Client = Client {
    name: "kv and httpd on one shared interface",
    needs: &[crate::deps::Need::HttpClients],
    after: SERVING,
    run: |ports| {
        let port = ports.tcp(80)?.port();
        crate::httpclient::status_page_showing(
            port,
            &[
                "<h2>Packet filters</h2>",
                "<th>filter of kv</th>",
                "<th>filter of httpd-test</th>",
            ],
        )?;
        let mut notes = vec![String::from(
            "the status page lists both apps' packet filters",
        )];
        notes.extend(with_shutdown(ports, protocol)?);
        notes.push(crate::httpclient::check_httpd(port)?);
        Ok(notes)
    },
};

/// Runs `check` on the forwarded ports, then sends `shutdown` whatever happened.
fn with_shutdown(
    ports: &Forwards,
    check: fn(SocketAddr, SocketAddr) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let tcp = ports.tcp(PORT)?;
    let udp = ports.udp(PORT)?;
    then_shut_down(tcp, || check(tcp, udp))
}

/// Runs `check`, then sends `shutdown` to kv at `tcp` whatever happened.
fn then_shut_down(
    tcp: SocketAddr,
    check: impl FnOnce() -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let result = check();
    let shutdown = shut_down(tcp);
    let mut notes = result?;
    shutdown.map_err(|e| format!("shutdown: {e}"))?;
    notes.push("shutdown: the connection closed without an answer".into());
    Ok(notes)
}

/// Sends `shutdown`: memcached answers nothing and closes.
fn shut_down(tcp: SocketAddr) -> Result<()> {
    let mut s = connect(tcp)?;
    s.send(b"shutdown\r\n")?;
    if s.at_end()? {
        Ok(())
    } else {
        Err("`shutdown` was answered; the connection should just close".into())
    }
}

/// Connections and UDP sockets of [`PER_CORE`], each from its own source port: with 16
/// TCP flows the chance that they all land on the queue that gets every UDP flow is
/// 2^-16 (e1000e's RSS hashes UDP by addresses only); where UDP flows spread too (the
/// tap behind virtio-net), all 32 on one queue is 2^-31.
const FLOWS: usize = 16;

/// `kv::per-core`: kv on a tap device with two queue pairs, from inside its namespace:
/// [`FLOWS`] TCP connections and as many UDP sockets (the tap spreads flows over the
/// queues by a hash of their ports) each run every command on keys of their own, then
/// `stats` must count them all over both cores' shards and say two threads.
pub const PER_CORE: Client = Client {
    name: "kv per-core client",
    needs: &[],
    after: SERVING,
    run: |_| {
        let tcp = SocketAddr::from((crate::tapnet::GUEST, PORT));
        then_shut_down(tcp, || per_core(tcp))
    },
};

/// Every command on `FLOWS` connections and datagram sockets at once (interleaved, so
/// that both cores hold connections together).
fn per_core(tcp: SocketAddr) -> Result<Vec<String>> {
    let mut streams = (0..FLOWS)
        .map(|_| connect(tcp))
        .collect::<Result<Vec<_>>>()?;
    for (i, s) in streams.iter_mut().enumerate() {
        let key = format!("flow{i}");
        s.exchange(&store("set", &key, 3, 0, b"10"), b"STORED\r\n")?;
        s.exchange(&store("add", &key, 0, 0, b"x"), b"NOT_STORED\r\n")?;
        s.exchange(&store("replace", &key, 3, 0, b"20"), b"STORED\r\n")?;
        s.exchange(&store("append", &key, 0, 0, b"0"), b"STORED\r\n")?;
        s.exchange(&store("prepend", &key, 0, 0, b"1"), b"STORED\r\n")?;
        s.exchange(
            format!("get {key}\r\n").as_bytes(),
            &[value(&key, 3, b"1200"), b"END\r\n".to_vec()].concat(),
        )?;
        let cas = cas_of(s, &key)?;
        let cas_request = |unique: u64| {
            let mut r = format!("cas {key} 3 0 2 {unique}\r\n").into_bytes();
            r.extend_from_slice(b"42\r\n");
            r
        };
        s.exchange(&cas_request(cas + 1000), b"EXISTS\r\n")?;
        s.exchange(&cas_request(cas), b"STORED\r\n")?;
        s.exchange(format!("incr {key} 8\r\n").as_bytes(), b"50\r\n")?;
        s.exchange(format!("decr {key} 60\r\n").as_bytes(), b"0\r\n")?;
        s.exchange(format!("touch {key} 1000\r\n").as_bytes(), b"TOUCHED\r\n")?;
        s.exchange(
            format!("gat 1000 {key}\r\n").as_bytes(),
            &[value(&key, 3, b"0"), b"END\r\n".to_vec()].concat(),
        )?;
        s.exchange(
            &store("set", &format!("{key}-kept"), 0, 0, b"v"),
            b"STORED\r\n",
        )?;
        s.exchange(format!("delete {key}\r\n").as_bytes(), b"DELETED\r\n")?;
        s.exchange(format!("delete {key}\r\n").as_bytes(), b"NOT_FOUND\r\n")?;
    }
    // Over UDP, each socket from its own port: what the TCP connections stored.
    for i in 0..FLOWS {
        let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| format!("UDP bind: {e}"))?;
        socket
            .connect(tcp)
            .map_err(|e| format!("UDP connect: {e}"))?;
        let key = format!("flow{i}-kept");
        let want = [value(&key, 0, b"v"), b"END\r\n".to_vec()].concat();
        let request = format!("get {key}\r\n");
        let answer = retry(Duration::from_secs(10), || {
            udp_exchange(
                &socket,
                i as u16,
                1,
                request.as_bytes(),
                Duration::from_secs(2),
            )?
            .ok_or_else(|| "no UDP answer".to_string())
        })?;
        if answer != want {
            return Err(format!("UDP get {key}: {}", mismatch(&want, &answer)));
        }
    }
    let map = stats(&mut streams[0])?;
    stat_is(&map, "threads", 2)?;
    stat_is(&map, "curr_items", FLOWS as u64)?;
    stat_is(&map, "curr_connections", FLOWS as u64)?;
    // 8 storage commands per connection (the refused add and cas counted).
    stat_is(&map, "cmd_set", 8 * FLOWS as u64)?;
    Ok(vec![format!(
        "per-core: every command on {FLOWS} connections and {FLOWS} UDP sockets, each from its own port; stats count them all (threads 2)"
    )])
}

/// A connection to kv (user networking accepts at once and closes again until the
/// guest listens, so the first exchange is retried).
fn connect(addr: SocketAddr) -> Result<Stream> {
    retry(Duration::from_secs(10), || {
        let mut stream = Stream::connect(addr, TIMEOUT)?;
        stream.send(b"version\r\n")?;
        let line = stream.line()?;
        if line.starts_with(b"VERSION ") {
            Ok(stream)
        } else {
            Err(format!("`version` answered {}", shown(&line)))
        }
    })
}

/// A `get` answer for one hit.
fn value(key: &str, flags: u32, data: &[u8]) -> Vec<u8> {
    let mut answer = format!("VALUE {key} {flags} {}\r\n", data.len()).into_bytes();
    answer.extend_from_slice(data);
    answer.extend_from_slice(b"\r\n");
    answer
}

/// A storage request.
fn store(command: &str, key: &str, flags: u32, exptime: i64, data: &[u8]) -> Vec<u8> {
    let mut request = format!("{command} {key} {flags} {exptime} {}\r\n", data.len()).into_bytes();
    request.extend_from_slice(data);
    request.extend_from_slice(b"\r\n");
    request
}

/// Every byte value, `len` bytes, different for each `seed`.
fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            // xorshift64, with the index mixed in so that `\r\n` and NUL appear.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) ^ (i as u8)
        })
        .collect()
}

/// The cas unique of `key` by `gets`.
fn cas_of(s: &mut Stream, key: &str) -> Result<u64> {
    s.send(format!("gets {key}\r\n").as_bytes())?;
    let line = s.line()?;
    let text = String::from_utf8_lossy(&line);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_, _, _, bytes, unique] = fields[..] else {
        return Err(format!("`gets {key}` answered {}", shown(&line)));
    };
    let bytes: usize = bytes.parse().map_err(|_| format!("bad length in {text}"))?;
    s.take(bytes + 2)?;
    s.expect(b"END\r\n")?;
    unique
        .parse()
        .map_err(|_| format!("bad cas unique in {}", shown(&line)))
}

/// The `stats` counters.
fn stats(s: &mut Stream) -> Result<HashMap<String, String>> {
    s.send(b"stats\r\n")?;
    let mut map = HashMap::new();
    loop {
        let line = s.line()?;
        if line == b"END\r\n" {
            return Ok(map);
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("STAT"), Some(name), Some(value)) => {
                map.insert(name.to_string(), value.to_string());
            }
            _ => return Err(format!("bad stats line {}", shown(&line))),
        }
    }
}

/// One counter of `stats` as a number.
fn stat(map: &HashMap<String, String>, name: &str) -> Result<u64> {
    map.get(name)
        .ok_or_else(|| format!("`stats` lacks {name}"))?
        .parse()
        .map_err(|_| format!("`stats` {name} is not a number: {:?}", map.get(name)))
}

/// Requires `stats` counter `name` to be `want`.
fn stat_is(map: &HashMap<String, String>, name: &str, want: u64) -> Result<()> {
    let got = stat(map, name)?;
    if got == want {
        Ok(())
    } else {
        Err(format!("`stats` {name} is {got}, expected {want}"))
    }
}

/// The protocol, command by command, over TCP then UDP.
fn protocol(tcp: SocketAddr, udp: SocketAddr) -> Result<Vec<String>> {
    let mut s = connect(tcp)?;
    let mut notes = Vec::new();
    s.exchange(b"flush_all\r\n", b"OK\r\n")?;
    s.exchange(b"stats reset\r\n", b"RESET\r\n")?;
    // set, get, multi-get with a miss.
    s.exchange(&store("set", "a", 5, 0, b"abc"), b"STORED\r\n")?;
    s.exchange(
        b"get a\r\n",
        &[value("a", 5, b"abc"), b"END\r\n".to_vec()].concat(),
    )?;
    s.exchange(b"get nothing\r\n", b"END\r\n")?;
    s.exchange(&store("set", "b", 0, 0, b""), b"STORED\r\n")?;
    s.exchange(
        b"get a nothing b\r\n",
        &[
            value("a", 5, b"abc"),
            value("b", 0, b""),
            b"END\r\n".to_vec(),
        ]
        .concat(),
    )?;
    // gets and cas.
    let unique = cas_of(&mut s, "a")?;
    s.exchange(
        format!("cas a 7 0 3 {}\r\nxyz\r\n", unique + 1000).as_bytes(),
        b"EXISTS\r\n",
    )?;
    s.exchange(
        format!("cas a 7 0 3 {unique}\r\nxyz\r\n").as_bytes(),
        b"STORED\r\n",
    )?;
    s.exchange(
        format!("cas a 7 0 3 {unique}\r\nxyz\r\n").as_bytes(),
        b"EXISTS\r\n",
    )?;
    s.exchange(b"cas nothing 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n")?;
    let after = cas_of(&mut s, "a")?;
    if after == unique {
        return Err("a cas that stored kept the old cas unique".into());
    }
    s.exchange(
        b"gets a\r\n",
        format!("VALUE a 7 3 {after}\r\nxyz\r\nEND\r\n").as_bytes(),
    )?;
    // add, replace, append, prepend.
    s.exchange(&store("add", "a", 0, 0, b"no"), b"NOT_STORED\r\n")?;
    s.exchange(&store("add", "c", 1, 0, b"new"), b"STORED\r\n")?;
    s.exchange(&store("replace", "nothing", 0, 0, b"x"), b"NOT_STORED\r\n")?;
    s.exchange(&store("replace", "c", 2, 0, b"mid"), b"STORED\r\n")?;
    s.exchange(&store("append", "c", 9, 0, b">>"), b"STORED\r\n")?;
    s.exchange(&store("prepend", "c", 9, 0, b"<<"), b"STORED\r\n")?;
    s.exchange(&store("append", "nothing", 0, 0, b"x"), b"NOT_STORED\r\n")?;
    s.exchange(
        b"get c\r\n",
        &[value("c", 2, b"<<mid>>"), b"END\r\n".to_vec()].concat(),
    )?;
    // delete.
    s.exchange(b"delete c\r\n", b"DELETED\r\n")?;
    s.exchange(b"delete c\r\n", b"NOT_FOUND\r\n")?;
    s.exchange(b"get c\r\n", b"END\r\n")?;
    // incr and decr.
    s.exchange(&store("set", "n", 0, 0, b"10"), b"STORED\r\n")?;
    s.exchange(b"incr n 5\r\n", b"15\r\n")?;
    s.exchange(b"decr n 100\r\n", b"0\r\n")?;
    s.exchange(
        &store("set", "n", 0, 0, b"18446744073709551615"),
        b"STORED\r\n",
    )?;
    s.exchange(b"incr n 2\r\n", b"1\r\n")?;
    s.exchange(b"incr nothing 1\r\n", b"NOT_FOUND\r\n")?;
    s.exchange(b"decr nothing 1\r\n", b"NOT_FOUND\r\n")?;
    s.exchange(
        b"incr a 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    )?;
    s.exchange(
        b"incr n x\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    )?;
    // touch, gat, gats.
    s.exchange(b"touch a 1000\r\n", b"TOUCHED\r\n")?;
    s.exchange(b"touch nothing 1000\r\n", b"NOT_FOUND\r\n")?;
    s.exchange(
        b"gat 1000 a nothing\r\n",
        &[value("a", 7, b"xyz"), b"END\r\n".to_vec()].concat(),
    )?;
    let unique = cas_of(&mut s, "a")?;
    s.exchange(
        b"gats 1000 a\r\n",
        format!("VALUE a 7 3 {unique}\r\nxyz\r\nEND\r\n").as_bytes(),
    )?;
    // noreply: only the final get answers.
    s.exchange(
        &[
            store("set", "q", 3, 0, b"quiet").as_slice(),
            b"set q 3 0 5 noreply\r\nquiet\r\n",
            b"add q 0 0 1 noreply\r\nx\r\n",
            b"append q 0 0 1 noreply\r\n!\r\n",
            b"incr q 1 noreply\r\n",
            b"touch q 1000 noreply\r\n",
            b"delete nothing noreply\r\n",
            b"get q\r\n",
        ]
        .concat(),
        &[
            b"STORED\r\n".to_vec(),
            value("q", 3, b"quiet!"),
            b"END\r\n".to_vec(),
        ]
        .concat(),
    )?;
    // version, verbosity, an unknown command.
    s.send(b"version\r\n")?;
    let version = s.line()?;
    if !version.starts_with(b"VERSION 1.6") {
        return Err(format!("`version` answered {}", shown(&version)));
    }
    s.exchange(b"verbosity 1\r\n", b"OK\r\n")?;
    s.exchange(b"frobnicate\r\n", b"ERROR\r\n")?;
    // stats: the counters of what was done above.
    let map = stats(&mut s)?;
    stat_is(&map, "cas_badval", 2)?;
    stat_is(&map, "cas_hits", 1)?;
    stat_is(&map, "cas_misses", 1)?;
    stat_is(&map, "delete_hits", 1)?;
    stat_is(&map, "incr_hits", 2)?;
    stat_is(&map, "decr_hits", 1)?;
    stat_is(&map, "threads", 1)?;
    stat_is(&map, "incr_misses", 1)?;
    stat_is(&map, "decr_misses", 1)?;
    // A quarter of kv's memory: its 64 MiB quota in net::shared-nic, else the free RAM of
    // a 512 MiB machine (some 500 MiB).
    let limit = stat(&map, "limit_maxbytes")?;
    if !(16 << 20..=128 << 20).contains(&limit) {
        return Err(format!(
            "`stats` limit_maxbytes {limit}: not a quarter of a 64 MiB quota or of a 512 MiB machine's free RAM"
        ));
    }
    if stat(&map, "curr_connections")? != 1 || stat(&map, "total_connections")? < 1 {
        return Err(format!(
            "`stats` curr_connections {:?}, total_connections {:?} with this connection open",
            map.get("curr_connections"),
            map.get("total_connections")
        ));
    }
    // A second connection is counted while it is open.
    let mut other = connect(tcp)?;
    let open = stat(&stats(&mut s)?, "curr_connections")?;
    other.exchange(b"quit\r\n", b"")?;
    if !other.at_end()? {
        return Err("`quit` did not close the connection".into());
    }
    if open != 2 {
        return Err(format!(
            "`stats` curr_connections {open} with two connections open"
        ));
    }
    // flush_all.
    s.exchange(b"flush_all\r\n", b"OK\r\n")?;
    s.exchange(b"get a q\r\n", b"END\r\n")?;
    s.exchange(b"flush_all noreply\r\nget a\r\n", b"END\r\n")?;
    notes.push("every command byte-exact over TCP".into());
    notes.push(binary_values(&mut s)?);
    notes.push(expiry(&mut s)?);
    notes.push(pipelined(&mut s)?);
    notes.push(meta_commands(&mut s)?);
    notes.push(over_udp(&mut s, udp)?);
    Ok(notes)
}

/// memcached 1.6's meta commands, byte-exact: the answers memcached 1.6.18 gives to the
/// same requests (but the cas uniques, read back first).
fn meta_commands(s: &mut Stream) -> Result<String> {
    s.exchange(b"mn\r\n", b"MN\r\n")?;
    s.exchange(b"ms mk 2 F5\r\nhi\r\n", b"HD\r\n")?;
    s.exchange(
        b"mg mk s v f t k Oop h\r\n",
        b"VA 2 s2 f5 t-1 kmk Oop h0\r\nhi\r\n",
    )?;
    s.exchange(b"mg mk h\r\n", b"HD h1\r\n")?;
    // A miss: `EN` with the opaque and key; `q` hides it, `mn` ends the pipeline.
    s.exchange(b"mg nothing v k O7\r\n", b"EN knothing O7\r\n")?;
    s.exchange(b"mg nothing v q\r\nmg mk q\r\nmn\r\n", b"HD\r\nMN\r\n")?;
    // Compare and swap by cas unique, the modes of `M`, `q` hiding `HD` only.
    s.send(b"mg mk c\r\n")?;
    let line = s.line()?;
    let unique: u64 = std::str::from_utf8(&line)
        .ok()
        .and_then(|line| line.strip_prefix("HD c")?.trim_end().parse().ok())
        .ok_or_else(|| format!("`mg mk c` answered {}", shown(&line)))?;
    s.exchange(
        format!("ms mk 3 C{} c\r\nnew\r\n", unique + 1000).as_bytes(),
        b"EX c0\r\n",
    )?;
    s.exchange(
        format!("ms mk 3 C{unique}\r\nnew\r\n").as_bytes(),
        b"HD\r\n",
    )?;
    s.exchange(b"ms mk 1 MA\r\n!\r\nms mk 1 ME\r\nx\r\n", b"HD\r\nNS\r\n")?;
    s.exchange(b"ms nothing 1 MR\r\nx\r\n", b"NS\r\n")?;
    s.exchange(
        b"get mk\r\n",
        &[value("mk", 0, b"new!"), b"END\r\n".to_vec()].concat(),
    )?;
    s.exchange(
        b"ms mq 1 q\r\nx\r\nms mq 1 q ME\r\ny\r\nmn\r\n",
        b"NS\r\nMN\r\n",
    )?;
    s.exchange(b"md mk q\r\nmd mk\r\nmn\r\n", b"NF\r\nMN\r\n")?;
    // Arithmetic: created on a miss with `N` and `J`, `D`, `M`.
    s.exchange(b"ma mn N0 J10 v\r\n", b"VA 2\r\n10\r\n")?;
    s.exchange(b"ma mn D5 v\r\n", b"VA 2\r\n15\r\n")?;
    s.exchange(b"ma mn MD D100 v\r\n", b"VA 1\r\n0\r\n")?;
    s.exchange(b"ma nothing\r\n", b"NF\r\n")?;
    // Vivify on a miss, invalidate: one client wins each time (`W`), the others see it
    // won (`Z`), all see it stale (`X`).
    s.exchange(b"mg mv N30 s\r\n", b"HD s0 W\r\n")?;
    s.exchange(b"mg mv s\r\n", b"HD s0 Z\r\n")?;
    s.exchange(b"ms mv 2\r\nok\r\nmd mv I\r\n", b"HD\r\nHD\r\n")?;
    s.exchange(b"mg mv v\r\n", b"VA 2 X W\r\nok\r\n")?;
    s.exchange(b"mg mv\r\n", b"HD Z X\r\n")?;
    // A base64 key holding a NUL, `\r\n` and a space.
    s.exchange(
        b"ms AA0KIA== 2 b\r\nhi\r\nmg AA0KIA== b k v\r\n",
        b"HD\r\nVA 2 kAA0KIA== b\r\nhi\r\n",
    )?;
    s.send(b"me mn\r\n")?;
    let debug = s.line()?;
    if !debug.starts_with(b"ME mn exp=-1 la=") || !shown(&debug).contains(" fetch=no size=") {
        return Err(format!("`me mn` answered {}", shown(&debug)));
    }
    // Errors, the stream in step: a refused meta set's block is skipped.
    s.exchange(b"mg mk zz\r\n", b"CLIENT_ERROR invalid flag\r\n")?;
    s.exchange(
        b"ms mk 2 v v\r\nhi\r\nmn\r\n",
        b"CLIENT_ERROR duplicate flag\r\nMN\r\n",
    )?;
    Ok("meta commands byte-exact over TCP: mn, mg (flags in order, q, N/W/Z, I/X), ms (modes, C, q), md, ma (N, J, D, M), me, a base64 key, errors".into())
}

/// Values of 0 B to 1 MiB holding every byte value, stored and read back byte-exact; one
/// byte more is refused and the connection goes on.
fn binary_values(s: &mut Stream) -> Result<String> {
    let sizes = [0, 1, 2, 100, 1400, 65_536, 300_000, MAX_VALUE];
    let started = Instant::now();
    for (i, &len) in sizes.iter().enumerate() {
        let key = format!("bin{i}");
        let data = binary(len, i as u64 + 1);
        s.exchange(&store("set", &key, 42, 0, &data), b"STORED\r\n")
            .map_err(|e| format!("{len}-byte value: {e}"))?;
        s.exchange(
            format!("get {key}\r\n").as_bytes(),
            &[value(&key, 42, &data), b"END\r\n".to_vec()].concat(),
        )
        .map_err(|e| format!("{len}-byte value read back: {e}"))?;
    }
    s.exchange(
        &store("set", "bin-too-large", 0, 0, &binary(MAX_VALUE + 1, 9)),
        b"SERVER_ERROR object too large for cache\r\n",
    )?;
    s.exchange(
        b"get bin-too-large bin1\r\n",
        &[value("bin1", 42, &binary(1, 2)), b"END\r\n".to_vec()].concat(),
    )?;
    Ok(format!(
        "binary values of {sizes:?} bytes byte-exact, {} bytes refused, in {} ms",
        MAX_VALUE + 1,
        started.elapsed().as_millis()
    ))
}

/// How long on the host's clock a set of an item with exptime 2 and the get after it may
/// take for a miss to be kv's fault. The cache's clock counts whole seconds, so the item
/// lives between 1 and 2 s: a set late in a second and a get over a second later (a
/// host stalled in between) rightly miss it. The guest's clock runs with the host's
/// (TCG), so under half a second on the host is under a second on the guest, with room
/// for a guest clock a little fast.
const STALL: Duration = Duration::from_millis(500);

/// How many times [`set_and_get_expiring`] sets the item again after a stall.
const STALL_RETRIES: usize = 5;

/// Sets `short` with exptime 2 and gets it back: again (up to [`STALL_RETRIES`] times)
/// when the get missed it [`STALL`] or more after the set was sent, since the item may
/// then have expired by right; a miss sooner is an error. Returns the stalls.
fn set_and_get_expiring(s: &mut Stream) -> Result<usize> {
    let stored = [value("short", 0, b"soon"), b"END\r\n".to_vec()].concat();
    for stalls in 0..=STALL_RETRIES {
        let sent = Instant::now();
        s.exchange(&store("set", "short", 0, 2, b"soon"), b"STORED\r\n")?;
        s.send(b"get short\r\n")?;
        let first = s.line()?;
        if first != b"END\r\n" {
            let rest = s.take(stored.len().saturating_sub(first.len()))?;
            let got = [first, rest].concat();
            if got != stored {
                return Err(format!("after `get short`: {}", mismatch(&stored, &got)));
            }
            return Ok(stalls);
        }
        if sent.elapsed() < STALL {
            return Err(format!(
                "a 2 s item was gone {} ms after its set",
                sent.elapsed().as_millis()
            ));
        }
    }
    Err(format!(
        "a 2 s item was gone at each of {} tries, each set and get {} ms or more apart",
        STALL_RETRIES + 1,
        STALL.as_millis()
    ))
}

/// Relative exptimes with a real wait, and a negative one.
fn expiry(s: &mut Stream) -> Result<String> {
    s.exchange(&store("set", "long", 0, 100, b"later"), b"STORED\r\n")?;
    s.exchange(&store("set", "past", 0, -1, b"never"), b"STORED\r\n")?;
    s.exchange(b"get past\r\n", b"END\r\n")?;
    let stalls = set_and_get_expiring(s)?;
    // The clock counts whole seconds: 2 s from a set late in a second can end a little
    // under 3 s later, and never more.
    std::thread::sleep(Duration::from_millis(3200));
    s.exchange(
        b"get short long\r\n",
        &[value("long", 0, b"later"), b"END\r\n".to_vec()].concat(),
    )?;
    s.exchange(b"touch long -1\r\n", b"TOUCHED\r\n")?;
    s.exchange(b"get long\r\n", b"END\r\n")?;
    // Exptimes above 30 days are Unix times, on the guest's CMOS clock (QEMU's is the
    // host's UTC): an hour ahead is kept, a minute ago is gone at once.
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("the host clock is before 1970: {e}"))?
        .as_secs();
    let unix_now = i64::try_from(unix_now).map_err(|e| format!("the host clock: {e}"))?;
    s.exchange(
        &store("set", "abs-ahead", 0, unix_now + 3600, b"kept"),
        b"STORED\r\n",
    )?;
    s.exchange(
        &store("set", "abs-past", 0, unix_now - 60, b"gone"),
        b"STORED\r\n",
    )?;
    s.exchange(
        b"get abs-ahead abs-past\r\n",
        &[value("abs-ahead", 0, b"kept"), b"END\r\n".to_vec()].concat(),
    )?;
    Ok(format!(
        "expiry: a 2 s item gone after 3.2 s ({stalls} set again after a stall), a 100 s one \
         kept, negative exptimes expire at once, Unix-time exptimes an hour ahead kept and a \
         minute ago gone"
    ))
}

/// 200 requests in one write, the answers checked as one stream.
fn pipelined(s: &mut Stream) -> Result<String> {
    let mut request = Vec::new();
    let mut want = Vec::new();
    for i in 0..100 {
        let data = format!("value-{i}").into_bytes();
        request.extend(store("set", &format!("p{i}"), i, 0, &data));
        want.extend_from_slice(b"STORED\r\n");
    }
    for i in 0..100 {
        let data = format!("value-{i}").into_bytes();
        request.extend_from_slice(format!("get p{i}\r\n").as_bytes());
        want.extend(value(&format!("p{i}"), i, &data));
        want.extend_from_slice(b"END\r\n");
    }
    let started = Instant::now();
    s.exchange(&request, &want)?;
    Ok(format!(
        "pipelined: 200 requests ({} bytes) in one write answered byte-exact in {} ms",
        request.len(),
        started.elapsed().as_millis()
    ))
}

/// One UDP request: the frame header (request id, sequence 0, count `total`) and `body`.
fn datagram(id: u16, total: u16, body: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + body.len());
    d.extend_from_slice(&id.to_be_bytes());
    d.extend_from_slice(&0u16.to_be_bytes());
    d.extend_from_slice(&total.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(body);
    d
}

/// Sends a UDP request and puts its answer back together from its datagrams, checking
/// each header; `None` when nothing came within `wait`.
fn udp_exchange(
    socket: &UdpSocket,
    id: u16,
    total: u16,
    body: &[u8],
    wait: Duration,
) -> Result<Option<Vec<u8>>> {
    socket
        .send(&datagram(id, total, body))
        .map_err(|e| format!("UDP send failed: {e}"))?;
    socket
        .set_read_timeout(Some(wait))
        .map_err(|e| e.to_string())?;
    let mut parts: Vec<Option<Vec<u8>>> = Vec::new();
    let mut buffer = [0u8; 2048];
    loop {
        let len = match socket.recv(&mut buffer) {
            Ok(len) => len,
            Err(_) if parts.is_empty() => return Ok(None),
            Err(e) => {
                let got = parts.iter().filter(|p| p.is_some()).count();
                return Err(format!(
                    "UDP answer incomplete: {got} of {} datagrams ({e})",
                    parts.len()
                ));
            }
        };
        if !(8..=1400).contains(&len) {
            return Err(format!(
                "a {len}-byte datagram: memcached's are 8 to 1400 bytes"
            ));
        }
        let field = |at: usize| u16::from_be_bytes([buffer[at], buffer[at + 1]]);
        if field(0) != id || field(6) != 0 {
            return Err(format!(
                "datagram header {:?} for request id {id}",
                &buffer[..8]
            ));
        }
        let (sequence, count) = (usize::from(field(2)), usize::from(field(4)));
        if parts.is_empty() {
            parts = vec![None; count];
        }
        if count != parts.len() || sequence >= count || parts[sequence].is_some() {
            return Err(format!("datagram {sequence} of {count} out of place"));
        }
        parts[sequence] = Some(buffer[8..len].to_vec());
        if parts.iter().all(Option::is_some) {
            return Ok(Some(parts.into_iter().flatten().flatten().collect()));
        }
    }
}

/// The same commands over UDP with the frame header.
fn over_udp(s: &mut Stream, udp: SocketAddr) -> Result<String> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).map_err(|e| format!("UDP bind: {e}"))?;
    socket
        .connect(udp)
        .map_err(|e| format!("UDP connect: {e}"))?;
    let wait = Duration::from_secs(5);
    let mut id = 0x7000;
    let mut check = |body: &[u8], want: &[u8]| -> Result<()> {
        id += 1;
        // The first datagrams may find user networking's forward not yet set up.
        let got = retry(Duration::from_secs(10), || {
            udp_exchange(&socket, id, 1, body, wait)?
                .ok_or_else(|| format!("no UDP answer to {}", shown(body)))
        })?;
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "over UDP, after {}: {}",
                shown(body),
                mismatch(want, &got)
            ))
        }
    };
    check(&store("set", "u", 1, 0, b"udp!"), b"STORED\r\n")?;
    check(
        b"get u\r\n",
        &[value("u", 1, b"udp!"), b"END\r\n".to_vec()].concat(),
    )?;
    check(&store("add", "u", 0, 0, b"x"), b"NOT_STORED\r\n")?;
    check(&store("append", "u", 0, 0, b"?"), b"STORED\r\n")?;
    check(
        b"incr u 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    )?;
    check(b"touch u 100\r\n", b"TOUCHED\r\n")?;
    check(b"delete u noreply\r\nget u\r\n", b"END\r\n")?;
    check(
        b"ms mu 2 T0\r\nhi\r\nmg mu v k\r\nmg nothing v q\r\nmn\r\n",
        b"HD\r\nVA 2 kmu\r\nhi\r\nMN\r\n",
    )?;
    check(
        b"version\r\n",
        format!("VERSION {}\r\n", "1.6.21-rexo").as_bytes(),
    )?;
    // A large value comes back cut into numbered datagrams of at most 1400 bytes.
    let data = binary(20_000, 77);
    s.exchange(&store("set", "udp-large", 3, 0, &data), b"STORED\r\n")?;
    check(
        b"get udp-large\r\n",
        &[value("udp-large", 3, &data), b"END\r\n".to_vec()].concat(),
    )?;
    // A request spread over two datagrams is refused, as memcached does.
    let refused = udp_exchange(&socket, 0x7fff, 2, b"get u\r\n", wait)?;
    if refused.as_deref() != Some(b"SERVER_ERROR multi-packet request not supported\r\n".as_slice())
    {
        return Err(format!(
            "a two-datagram request answered {:?}",
            refused.map(|r| shown(&r))
        ));
    }
    // A datagram shorter than the header gets nothing, and the next is served.
    socket.send(&[1, 2, 3]).map_err(|e| e.to_string())?;
    check(b"get nothing\r\n", b"END\r\n")?;
    Ok("over UDP: storage, get, incr, touch, delete noreply, meta set and gets, version, a 20000-byte value in 15 datagrams, a multi-datagram request refused, a short datagram dropped".into())
}

/// The bad input of the issue: each gets the protocol's error, and another connection
/// is served all along.
fn bad_input(tcp: SocketAddr, _udp: SocketAddr) -> Result<Vec<String>> {
    let mut bystander = connect(tcp)?;
    bystander.exchange(&store("set", "calm", 0, 0, b"still here"), b"STORED\r\n")?;
    let calm = [value("calm", 0, b"still here"), b"END\r\n".to_vec()].concat();
    let mut s = connect(tcp)?;
    // A data block longer than its byte count; the stream stays in step.
    s.exchange(
        b"set w 0 0 3\r\nabcde\r\nget w\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n",
    )?;
    // Bad numbers and keys.
    s.exchange(
        b"set w 0 0 x\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    )?;
    s.exchange(
        b"set w x 0 1\r\nz\r\nget w\r\n",
        b"CLIENT_ERROR bad command line format\r\nEND\r\n",
    )?;
    let long_key = "k".repeat(251);
    s.exchange(
        format!("get {long_key}\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\n",
    )?;
    s.exchange(b"set\r\n", b"ERROR\r\n")?;
    // The same for meta commands: a data block of the wrong length, a 251-byte key (its
    // meta set's block skipped), a key that is no base64, an unknown flag.
    s.exchange(
        b"ms w 3\r\nabcde\r\nmg w v\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEN\r\n",
    )?;
    s.exchange(
        format!("mg {long_key} v\r\nms {long_key} 9\r\nset w 0 0\r\nmg w v\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\nEN\r\n",
    )?;
    s.exchange(b"mg w b v\r\n", b"CLIENT_ERROR error decoding key\r\n")?;
    s.exchange(b"md w x\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n")?;
    bystander.exchange(b"get calm\r\n", &calm)?;
    // A value over the limit announced but never sent in full: refused at once, its
    // data skipped as it arrives.
    s.exchange(
        b"set huge 0 0 5000000\r\n",
        b"SERVER_ERROR object too large for cache\r\n",
    )?;
    s.send(&vec![b'h'; 5_000_002])?;
    s.exchange(b"get calm\r\n", &calm)?;
    s.exchange(
        b"ms huge 5000000 T0\r\n",
        b"SERVER_ERROR object too large for cache\r\n",
    )?;
    s.send(&vec![b'h'; 5_000_002])?;
    s.exchange(b"get calm\r\n", &calm)?;
    // A 2 MB key: the line is too long; answered, then the connection is closed.
    let mut line = b"get ".to_vec();
    line.extend(std::iter::repeat_n(b'k', 2_000_000));
    line.extend_from_slice(b"\r\n");
    let answer = too_long(tcp, &line)?;
    bystander.exchange(b"get calm\r\n", &calm)?;
    let mut set_line = b"set ".to_vec();
    set_line.extend(std::iter::repeat_n(b'k', 2_000_000));
    set_line.extend_from_slice(b" 0 0 1\r\nx\r\n");
    too_long(tcp, &set_line)?;
    bystander.exchange(b"get calm\r\n", &calm)?;
    // A client that stops halfway through a request and disconnects.
    {
        let mut quitter = connect(tcp)?;
        quitter.send(b"set half 0 0 100\r\nonly some")?;
    }
    bystander.exchange(b"get half calm\r\n", &calm)?;
    let map = stats(&mut bystander)?;
    stat_is(&map, "store_too_large", 2)?;
    drop(s);
    let crowd = too_many_connections(tcp)?;
    bystander.exchange(b"get calm\r\n", &calm)?;
    Ok(vec![
        format!(
            "bad input: wrong byte count, bad numbers, a 251-byte key, bad meta lines, a 5 MB value refused and skipped (set and meta set), 2 MB lines ({answer}), a client gone mid-request; the other connection served throughout"
        ),
        crowd,
    ])
}

/// Connections opened past kv's limit of 64 get memcached's `ERROR Too many open
/// connections` and are closed; the others are served.
fn too_many_connections(tcp: SocketAddr) -> Result<String> {
    const CROWD: usize = 70;
    let mut served = Vec::new();
    let mut refused = 0;
    for _ in 0..CROWD {
        let mut stream = Stream::connect(tcp, TIMEOUT)?;
        stream.send(b"version\r\n")?;
        let line = stream.line()?;
        if line.starts_with(b"VERSION ") {
            served.push(stream);
        } else if line == b"ERROR Too many open connections\r\n" {
            if !stream.at_end()? {
                return Err("a refused connection was not closed".into());
            }
            refused += 1;
        } else {
            return Err(format!("a new connection got {}", shown(&line)));
        }
    }
    // The bystander is open too, and connections closed just before may still count.
    if refused < CROWD - 63 || served.len() > 63 {
        return Err(format!(
            "{} of {CROWD} new connections served and {refused} refused; kv serves 64 at most",
            served.len()
        ));
    }
    let count = served.len();
    drop(served);
    // Once they are gone, new connections are served again.
    connect(tcp)?;
    Ok(format!(
        "{CROWD} connections opened beside one: {count} served, {refused} told `ERROR Too many open connections` and closed; served again once they closed"
    ))
}

/// Sends `line` (megabytes without a line end in the first MiB, `max_request_len`) from a
/// writer thread and requires `CLIENT_ERROR line too long` and the connection closed; the
/// writer's failure is expected (the server stops reading).
fn too_long(tcp: SocketAddr, line: &[u8]) -> Result<String> {
    let mut s = connect(tcp)?;
    let mut writer = s
        .socket()
        .try_clone()
        .map_err(|e| format!("cannot clone the socket: {e}"))?;
    let line = line.to_vec();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.set_write_timeout(Some(Duration::from_secs(5))).ok();
        // It fails once the server closed; how far it got does not matter.
        let _ = writer.write_all(&line);
    });
    let started = Instant::now();
    s.expect(b"CLIENT_ERROR line too long\r\n")?;
    // After the answer the server closes (a reset is as good as a FIN here).
    match s.at_end() {
        Ok(true) | Err(_) => {}
        Ok(false) => return Err("more than one answer to a line too long".into()),
    }
    let _ = sender.join();
    Ok(format!(
        "`CLIENT_ERROR line too long` in {} ms, then closed",
        started.elapsed().as_millis()
    ))
}

/// kv-small: 2 MiB of items through a 1 MiB cache while one key is kept in use.
fn eviction(tcp: SocketAddr, _udp: SocketAddr) -> Result<Vec<String>> {
    let mut s = connect(tcp)?;
    let item = binary(10_000, 5);
    s.exchange(&store("set", "hot", 0, 0, b"keep me"), b"STORED\r\n")?;
    let hot = [value("hot", 0, b"keep me"), b"END\r\n".to_vec()].concat();
    let items = 200;
    for i in 0..items {
        s.exchange(
            &store("set", &format!("item{i}"), 0, 0, &item),
            b"STORED\r\n",
        )?;
        if i % 10 == 0 {
            s.exchange(b"get hot\r\n", &hot)?;
        }
    }
    let map = stats(&mut s)?;
    stat_is(&map, "limit_maxbytes", SMALL_CACHE)?;
    let total = stat(&map, "total_items")?;
    let current = stat(&map, "curr_items")?;
    let evictions = stat(&map, "evictions")?;
    let bytes = stat(&map, "bytes")?;
    if total != items + 1 {
        return Err(format!(
            "`stats` total_items {total}, expected {}",
            items + 1
        ));
    }
    if evictions == 0 || evictions != total - current {
        return Err(format!(
            "`stats` evictions {evictions}: expected total_items - curr_items = {} (> 0)",
            total - current
        ));
    }
    if !(SMALL_CACHE / 2..=SMALL_CACHE).contains(&bytes) {
        return Err(format!(
            "`stats` bytes {bytes} for a full {SMALL_CACHE}-byte cache"
        ));
    }
    stat_is(&map, "reclaimed", 0)?;
    // LRU: the oldest items went, the newest and the one in use stayed.
    s.exchange(b"get item0 item1\r\n", b"END\r\n")?;
    let last = format!("item{}", items - 1);
    s.exchange(
        format!("get {last} hot\r\n").as_bytes(),
        &[
            value(&last, 0, &item),
            hot[..hot.len() - 5].to_vec(),
            b"END\r\n".to_vec(),
        ]
        .concat(),
    )?;
    Ok(vec![format!(
        "eviction: {items} items of 10000 bytes through a 1 MiB cache: {current} kept ({bytes} bytes), {evictions} evicted, the oldest gone, the one in use kept"
    )])
}

/// What [`memcached_load`] measured.
pub struct LoadFigures {
    /// Operations per second.
    pub ops_per_s: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// The slowest operation.
    pub max: Duration,
}

/// `connections` connections, each one request at a time (90% get, 10% set of 100-byte
/// values over 1000 keys) for `time`, against the memcached server at `tcp` (kv or
/// memcached: the suite drives both with it).
pub fn memcached_load(tcp: SocketAddr, connections: usize, time: Duration) -> Result<LoadFigures> {
    let mut s = connect(tcp)?;
    let data = binary(100, 3);
    for key in 0..1000 {
        s.send(&store("set", &format!("key{key}"), 0, 0, &data))?;
        s.expect(b"STORED\r\n")?;
    }
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let data = data.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut s = connect(tcp)?;
                let mut latencies = Vec::new();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ worker as u64;
                let started = Instant::now();
                while started.elapsed() < time {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("key{}", x % 1000);
                    let sent = Instant::now();
                    if x.is_multiple_of(10) {
                        s.exchange(&store("set", &key, 0, 0, &data), b"STORED\r\n")?;
                    } else {
                        s.exchange(
                            format!("get {key}\r\n").as_bytes(),
                            &[value(&key, 0, &data), b"END\r\n".to_vec()].concat(),
                        )?;
                    }
                    latencies.push(sent.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(
            worker
                .join()
                .map_err(|_| "a load worker panicked".to_string())??,
        );
    }
    if latencies.is_empty() {
        return Err("the load made no requests".into());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Ok(LoadFigures {
        ops_per_s: latencies.len() as f64 / time.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
        max: latencies[latencies.len() - 1],
    })
}

/// [`LOAD_CONNECTIONS`] connections for [`LOAD_TIME`] ([`memcached_load`]), reported.
fn load(tcp: SocketAddr, _udp: SocketAddr) -> Result<Vec<String>> {
    let figures = memcached_load(tcp, LOAD_CONNECTIONS, LOAD_TIME)?;
    Ok(vec![format!(
        "load (TCG, user networking): {} connections, 90% get / 10% set of 100 B: {:.0} ops/s; latency p50 {} us, p99 {} us, max {} us",
        LOAD_CONNECTIONS,
        figures.ops_per_s,
        figures.p50.as_micros(),
        figures.p99.as_micros(),
        figures.max.as_micros()
    )])
}

/// `memccapable -a` passes every test.
fn memcapable(tcp: SocketAddr, _udp: SocketAddr) -> Result<Vec<String>> {
    connect(tcp)?;
    let program = crate::deps::find_program("memccapable").ok_or("no memccapable on PATH")?;
    let args = [
        "-h".into(),
        tcp.ip().to_string(),
        "-p".into(),
        tcp.port().to_string(),
        "-a".into(),
        "-t".into(),
        "20".into(),
    ];
    let out = run_tool(&program, &args, Duration::from_secs(120))?;
    let passed = out.lines().filter(|l| l.ends_with("[pass]")).count();
    if !out.contains("All tests passed") {
        return Err(format!(
            "memccapable -a: {}",
            out.lines()
                .filter(|l| !l.ends_with("[pass]"))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    Ok(vec![format!(
        "memccapable -a: all {passed} ASCII protocol tests passed"
    )])
}

/// `memcaslap` for a few seconds with 32 connections: no misses, its figures noted.
fn memcaslap(tcp: SocketAddr, _udp: SocketAddr) -> Result<Vec<String>> {
    connect(tcp)?;
    let program = crate::deps::find_program("memcaslap").ok_or("no memcaslap on PATH")?;
    let seconds = LOAD_TIME.as_secs();
    let args: Vec<String> = [
        "-s",
        &tcp.to_string(),
        "-t",
        &format!("{seconds}s"),
        "-T",
        "2",
        "-c",
        "32",
        "-X",
        "100",
        "-S",
        &format!("{seconds}s"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let out = run_tool(&program, &args, LOAD_TIME + Duration::from_secs(60))?;
    let tps = crate::loadgen::parse_memaslap(&out)?;
    // `Global  T  OPS  TPS  NET  MISSES  MIN  MAX  AVG  STD  GEO` (microseconds).
    let latency = out
        .lines()
        .find(|l| l.starts_with("Global"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            format!(
                "latency min {} us, average {} us, max {} us",
                w.get(6).unwrap_or(&"?"),
                w.get(8).unwrap_or(&"?"),
                w.get(7).unwrap_or(&"?")
            )
        })
        .unwrap_or_else(|| "no latency line".into());
    Ok(vec![format!(
        "memcaslap (TCG, user networking): 32 connections, 90% get / 10% set of 100 B for {seconds} s: {tps} ops/s, {latency}"
    )])
}

/// The pymemcache script passes.
fn pymemcache(tcp: SocketAddr, _udp: SocketAddr) -> Result<Vec<String>> {
    connect(tcp)?;
    let script = crate::root()
        .join(crate::deps::PYENV)
        .join("kv_pymemcache.py");
    std::fs::write(&script, PYMEMCACHE_SCRIPT)
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let args = [
        script.display().to_string(),
        tcp.ip().to_string(),
        tcp.port().to_string(),
        STALL.as_secs_f64().to_string(),
        STALL_RETRIES.to_string(),
    ];
    let out = run_tool(
        &crate::deps::pymemcache_python(),
        &args,
        Duration::from_secs(120),
    )?;
    Ok(out.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_are_memcached_text() {
        assert_eq!(store("set", "k", 1, 2, b"ab"), b"set k 1 2 2\r\nab\r\n");
        assert_eq!(value("k", 1, b"ab"), b"VALUE k 1 2\r\nab\r\n");
        assert_eq!(
            datagram(0x1234, 1, b"get k\r\n"),
            b"\x12\x34\x00\x00\x00\x01\x00\x00get k\r\n"
        );
        let data = binary(4096, 1);
        assert!(data.windows(2).any(|w| w == b"\r\n") || data.contains(&0));
        assert_ne!(binary(64, 1), binary(64, 2));
    }

    /// A server that stores whatever is set and answers the gets of `short` in turn:
    /// each after its delay, a hit or a miss.
    fn expiring_server(gets: Vec<(Duration, bool)>) -> SocketAddr {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut lines = BufReader::new(stream).lines();
            let mut gets = gets.into_iter();
            while let Some(Ok(line)) = lines.next() {
                if line.starts_with("set ") {
                    lines.next();
                    writer.write_all(b"STORED\r\n").unwrap();
                } else if let Some((delay, hit)) = gets.next() {
                    std::thread::sleep(delay);
                    let answer = if hit {
                        value("short", 0, b"soon")
                    } else {
                        Vec::new()
                    };
                    writer
                        .write_all(&[answer, b"END\r\n".to_vec()].concat())
                        .unwrap();
                }
            }
        });
        addr
    }

    /// Runs the pymemcache script's `set_and_get_expiring` with `python3` (every miss
    /// taken as after a stall, 5 tries) on a client whose gets of `short` answer `gets`
    /// in turn ("miss", or the bytes): whether it passed, and what it printed.
    fn script_set_and_get_expiring(gets: &[&str]) -> (bool, String) {
        /// Loads the script without running its main, and runs the check on a client
        /// that stores nothing and answers as told.
        const DRIVER: &str = r#"
import sys
script = {"__name__": "kv_pymemcache"}
exec(sys.argv[1], script)
class Client:
    def __init__(self, gets):
        self.gets = gets
    def set(self, key, value, expire):
        assert (key, value, expire) == ("short", b"soon", 2), (key, value, expire)
        return True
    def get(self, key):
        assert key == "short", key
        return self.gets.pop(0)
gets = [None if get == "miss" else get.encode() for get in sys.argv[2:]]
print(script["set_and_get_expiring"](Client(gets), 0, 5))
"#;
        let output = std::process::Command::new("python3")
            .args(["-c", DRIVER, PYMEMCACHE_SCRIPT])
            .args(gets)
            .output()
            .expect("python3 runs");
        let said = [output.stdout, output.stderr].concat();
        (
            output.status.success(),
            String::from_utf8_lossy(&said).into_owned(),
        )
    }

    #[test]
    fn the_pymemcache_script_sets_again_after_a_miss_but_fails_at_once_on_other_bytes() {
        assert_eq!(
            script_set_and_get_expiring(&["miss", "soon"]),
            (true, "1\n".to_string())
        );
        assert_eq!(
            script_set_and_get_expiring(&["sooN", "soon"]),
            (
                false,
                "get of key 'short': got b'sooN', expected b'soon' (the bytes set)\n".to_string()
            )
        );
    }

    #[test]
    fn an_expiring_item_missed_after_a_stall_is_set_again() {
        // The miss came 600 ms after the set: the host may have stalled past the item's
        // whole second, so the set and get are tried again.
        let stalled = vec![(Duration::from_millis(600), false), (Duration::ZERO, true)];
        let mut s = Stream::connect(expiring_server(stalled), TIMEOUT).unwrap();
        assert_eq!(set_and_get_expiring(&mut s), Ok(1));
        // A miss at once is kv's: the item should live more than a second.
        let early = vec![(Duration::ZERO, false), (Duration::ZERO, true)];
        let mut s = Stream::connect(expiring_server(early), TIMEOUT).unwrap();
        let err = set_and_get_expiring(&mut s).unwrap_err();
        assert!(err.contains("gone"), "{err}");
        let hit = vec![(Duration::ZERO, true)];
        let mut s = Stream::connect(expiring_server(hit), TIMEOUT).unwrap();
        assert_eq!(set_and_get_expiring(&mut s), Ok(0));
    }
}
