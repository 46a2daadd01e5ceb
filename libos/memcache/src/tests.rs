//! Host tests: answers byte for byte as memcached's protocol.txt documents them, the
//! cache's semantics, the stream under every split, fuzzing, and a model check.

use super::*;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use std::string::String;

mod meta;

std::thread_local! {
    /// Bytes the parser searched for a line's end, on this test's thread.
    static SEARCHED: Cell<usize> = const { Cell::new(0) };
}

/// Counts `bytes` searched by the parser for a line's end.
pub(crate) fn count_searched(bytes: usize) {
    SEARCHED.with(|searched| searched.set(searched.get() + bytes));
}

/// The bytes the parser searched while `run` ran.
fn searched_by(run: impl FnOnce()) -> usize {
    let before = SEARCHED.with(Cell::get);
    run();
    SEARCHED.with(Cell::get) - before
}

/// A Unix time well above 30 days, as a real clock gives.
const START: u64 = 1_700_000_000;

/// A cache, one connection and a clock.
struct Server {
    cache: Cache,
    session: Session,
    now: u64,
    info: ServerInfo,
}

impl Server {
    fn new() -> Self {
        Self::with(Config::default())
    }

    fn with(config: Config) -> Self {
        Self {
            cache: Cache::new(config, START),
            session: Session::new(),
            now: START,
            info: ServerInfo {
                pid: 7,
                threads: 1,
                curr_connections: 1,
                total_connections: 3,
            },
        }
    }

    /// Sends `input` whole and returns the answers; all of it must be used.
    fn send(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let served = self
            .session
            .serve(&mut self.cache, input, self.now, &self.info, &mut out);
        assert_eq!(
            served.consumed,
            input.len(),
            "left over: {:?}",
            text(&input[served.consumed..])
        );
        out
    }

    /// `send` as text, for readable comparisons.
    fn say(&mut self, input: &str) -> String {
        text(&self.send(input.as_bytes()))
    }

    /// Sends `input` a byte at a time and returns the answers; all of it must be used.
    fn byte_at_a_time(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buffer = Vec::new();
        for &byte in input {
            buffer.push(byte);
            let served =
                self.session
                    .serve(&mut self.cache, &buffer, self.now, &self.info, &mut out);
            buffer.drain(..served.consumed);
        }
        assert!(buffer.is_empty(), "left over: {:?}", text(&buffer));
        out
    }

    /// Sends `input` in two reads, split at byte `split` (the second holding what the
    /// first left unused), and returns the answers and whether the connection was closed;
    /// unless it was, all of `input` must be used.
    fn in_two_reads(&mut self, input: &[u8], split: usize) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut buffer = input[..split].to_vec();
        let served = self
            .session
            .serve(&mut self.cache, &buffer, self.now, &self.info, &mut out);
        if served.close {
            return (out, true);
        }
        buffer.drain(..served.consumed);
        buffer.extend_from_slice(&input[split..]);
        let served = self
            .session
            .serve(&mut self.cache, &buffer, self.now, &self.info, &mut out);
        if !served.close {
            assert_eq!(served.consumed, buffer.len(), "split at {split}");
        }
        (out, served.close)
    }

    /// Sends `input` in pieces of 1000 bytes and returns the answers; the buffer never
    /// holds as much as a piece beyond what is still to be used (a refused data block
    /// streams past, never held).
    fn in_pieces(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buffer = Vec::new();
        for piece in input.chunks(1000) {
            buffer.extend_from_slice(piece);
            let served =
                self.session
                    .serve(&mut self.cache, &buffer, self.now, &self.info, &mut out);
            buffer.drain(..served.consumed);
            assert!(buffer.len() < 1000);
        }
        out
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn key(bytes: &[u8]) -> Key<'_> {
    Key::new(bytes).unwrap()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// An output that drops a piece past its room, and every piece after it, as kv's
/// bounded output does.
struct Bounded {
    /// What was kept.
    bytes: Vec<u8>,
    /// The most bytes it keeps.
    limit: usize,
    /// A piece did not fit.
    dropped: bool,
}

impl Output for Bounded {
    fn put(&mut self, bytes: &[u8]) {
        if self.dropped || bytes.len() > self.room() {
            self.dropped = true;
        } else {
            self.bytes.extend_from_slice(bytes);
        }
    }

    fn room(&self) -> usize {
        if self.dropped {
            0
        } else {
            self.limit - self.bytes.len()
        }
    }
}

/// A read whose answer passes the output's room looks up no key after the one whose
/// answer passed it, as memcached's looks up none after its out-of-memory error: the
/// keys looked up until then keep the lookup's effects (memcached never undoes a `gat`'s
/// touch or a hit's count), the keys after them keep their expiry and counts.
#[test]
fn a_read_whose_answer_passes_the_room_looks_up_no_key_after_it() {
    let mut server = Server::new();
    let value = "v".repeat(100);
    server.say(&std::format!(
        "set a 0 0 1\r\n1\r\nset b 0 0 100\r\n{value}\r\nset c 0 0 1\r\n1\r\n"
    ));
    // Room for a's answer (16 bytes), not for b's.
    let mut read_with_room = |request: &str| {
        let mut out = Bounded {
            bytes: Vec::new(),
            limit: 40,
            dropped: false,
        };
        let (now, info) = (server.now, server.info);
        let served =
            server
                .session
                .serve(&mut server.cache, request.as_bytes(), now, &info, &mut out);
        assert_eq!((served.consumed, out.dropped), (request.len(), true));
    };
    read_with_room("gat 100 a b c\r\n");
    read_with_room("get a b c\r\n");
    let stats = server.cache.stats(server.now);
    assert_eq!(
        (stats.touch_hits, stats.get_hits),
        (2, 2),
        "c was looked up"
    );
    assert_eq!(
        server.say("mg a t\r\nmg b t\r\nmg c t\r\n"),
        "HD t100\r\nHD t100\r\nHD t-1\r\n"
    );
}

#[test]
fn storage_commands_answer_as_documented() {
    let mut server = Server::new();
    assert_eq!(server.say("set a 5 0 3\r\nabc\r\n"), "STORED\r\n");
    assert_eq!(server.say("get a\r\n"), "VALUE a 5 3\r\nabc\r\nEND\r\n");
    assert_eq!(server.say("add a 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
    assert_eq!(server.say("add b 1 0 1\r\nx\r\n"), "STORED\r\n");
    assert_eq!(server.say("replace c 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
    assert_eq!(server.say("replace b 2 0 2\r\nyy\r\n"), "STORED\r\n");
    assert_eq!(server.say("append a 9 0 2\r\nde\r\n"), "STORED\r\n");
    assert_eq!(server.say("prepend a 9 0 2\r\n__\r\n"), "STORED\r\n");
    assert_eq!(server.say("append zz 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
    assert_eq!(server.say("prepend zz 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
    // Append and prepend keep the flags.
    assert_eq!(
        server.say("get a b zz\r\n"),
        "VALUE a 5 7\r\n__abcde\r\nVALUE b 2 2\r\nyy\r\nEND\r\n"
    );
    assert_eq!(server.say("set empty 0 0 0\r\n\r\n"), "STORED\r\n");
    assert_eq!(
        server.say("get empty\r\n"),
        "VALUE empty 0 0\r\n\r\nEND\r\n"
    );
    assert_eq!(server.say("set f 4294967295 0 1\r\nx\r\n"), "STORED\r\n");
    assert_eq!(
        server.say("get f\r\n"),
        "VALUE f 4294967295 1\r\nx\r\nEND\r\n"
    );
}

#[test]
fn cas_semantics() {
    let mut server = Server::new();
    assert_eq!(server.say("cas k 0 0 1 1\r\nx\r\n"), "NOT_FOUND\r\n");
    server.say("set k 3 0 1\r\nx\r\n");
    let gets = server.say("gets k\r\n");
    let unique: u64 = gets.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert_eq!(gets, std::format!("VALUE k 3 1 {unique}\r\nx\r\nEND\r\n"));
    assert_eq!(
        server.say(&std::format!("cas k 0 0 1 {}\r\ny\r\n", unique + 1)),
        "EXISTS\r\n"
    );
    assert_eq!(
        server.say(&std::format!("cas k 8 0 1 {unique}\r\nz\r\n")),
        "STORED\r\n"
    );
    assert_eq!(
        server.say(&std::format!("cas k 0 0 1 {unique}\r\nw\r\n")),
        "EXISTS\r\n"
    );
    let gets = server.say("gets k\r\n");
    let newer: u64 = gets.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!(newer > unique, "cas uniques increase");
    assert_eq!(gets, std::format!("VALUE k 8 1 {newer}\r\nz\r\nEND\r\n"));
    // touch leaves the cas unique alone; incr changes it.
    server.say("touch k 100\r\n");
    assert!(
        server
            .say("gets k\r\n")
            .contains(&std::format!(" {newer}\r\n"))
    );
    let stats = server.cache.stats(server.now);
    assert_eq!(
        (stats.cas_misses, stats.cas_hits, stats.cas_badval),
        (1, 1, 2)
    );
    assert_eq!(
        server.say("cas k 0 0 1 x\r\ny\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
}

#[test]
fn delete_touch_and_gat() {
    let mut server = Server::new();
    assert_eq!(server.say("delete k\r\n"), "NOT_FOUND\r\n");
    server.say("set k 1 0 2\r\nhi\r\n");
    assert_eq!(server.say("touch k 10\r\n"), "TOUCHED\r\n");
    assert_eq!(server.say("touch nope 10\r\n"), "NOT_FOUND\r\n");
    assert_eq!(
        server.say("gat 100 k nope\r\n"),
        "VALUE k 1 2\r\nhi\r\nEND\r\n"
    );
    let gats = server.say("gats 0 k\r\n");
    assert!(
        gats.starts_with("VALUE k 1 2 ") && gats.ends_with("\r\nhi\r\nEND\r\n"),
        "{gats}"
    );
    assert_eq!(server.say("delete k 0\r\n"), "DELETED\r\n");
    assert_eq!(server.say("delete k\r\n"), "NOT_FOUND\r\n");
    assert_eq!(
        server.say("delete k 5\r\n"),
        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
    );
    assert_eq!(
        server.say("touch k x\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\n"
    );
    assert_eq!(
        server.say("gat x k\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\n"
    );
    let stats = server.cache.stats(server.now);
    assert_eq!((stats.delete_hits, stats.delete_misses), (1, 2));
    // touch, touch, gat x2, gats: 5 touches of which 2 misses.
    assert_eq!(
        (stats.cmd_touch, stats.touch_hits, stats.touch_misses),
        (5, 3, 2)
    );
    // memcached counts gat and gats keys as touches only, not in cmd_get or get_hits.
    assert_eq!(
        (stats.cmd_get, stats.get_hits, stats.get_misses),
        (0, 0, 0),
        "gat and gats are no gets"
    );
    server.say("get k nope\r\n");
    let stats = server.cache.stats(server.now);
    assert_eq!((stats.cmd_get, stats.cmd_touch), (2, 5));
}

#[test]
fn incr_and_decr_edges() {
    let mut server = Server::new();
    assert_eq!(server.say("incr n 1\r\n"), "NOT_FOUND\r\n");
    assert_eq!(server.say("decr n 1\r\n"), "NOT_FOUND\r\n");
    server.say("set n 5 0 2\r\n10\r\n");
    assert_eq!(server.say("incr n 5\r\n"), "15\r\n");
    assert_eq!(server.say("decr n 100\r\n"), "0\r\n", "decr stops at 0");
    assert_eq!(
        server.say("get n\r\n"),
        "VALUE n 5 1\r\n0\r\nEND\r\n",
        "flags kept"
    );
    server.say("set n 0 0 20\r\n18446744073709551615\r\n");
    assert_eq!(server.say("incr n 2\r\n"), "1\r\n", "incr wraps at 2^64");
    server.say("set n 0 0 20\r\n18446744073709551616\r\n");
    assert_eq!(
        server.say("incr n 1\r\n"),
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    server.say("set n 0 0 3\r\nabc\r\n");
    assert_eq!(
        server.say("decr n 1\r\n"),
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    server.say("set n 0 0 3\r\n12 \r\n");
    assert_eq!(
        server.say("incr n 1\r\n"),
        "13\r\n",
        "trailing spaces as memcached leaves them"
    );
    // As memcached's strtoull: leading whitespace skipped, a sign, and after the digits
    // whitespace then anything.
    for (value, answer) in [
        (" 5", "6\r\n"),
        ("\t\r\n5", "6\r\n"),
        ("5 abc", "6\r\n"),
        ("5\r\nx", "6\r\n"),
        ("5\0abc", "6\r\n"),
        ("+5", "6\r\n"),
        ("-0", "1\r\n"),
        ("-18446744073709551615", "2\r\n"),
    ] {
        server.say(&std::format!("set n 0 0 {}\r\n{value}\r\n", value.len()));
        assert_eq!(server.say("incr n 1\r\n"), answer, "{value:?}");
    }
    for value in [
        "5abc",
        "-5",
        "+",
        " ",
        "\0 5",
        "9223372036854775808 -",
        "x5",
    ] {
        server.say(&std::format!("set n 0 0 {}\r\n{value}\r\n", value.len()));
        assert_eq!(
            server.say("incr n 1\r\n"),
            "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            "{value:?}"
        );
    }
    // The new value is its digits alone: memcached rewrites it in place padded with
    // spaces when it is no longer, which protocol.txt says clients must not rely on.
    server.say("set n 0 0 2\r\n 5\r\n");
    assert_eq!(server.say("decr n 1\r\n"), "4\r\n");
    assert_eq!(server.say("get n\r\n"), "VALUE n 0 1\r\n4\r\nEND\r\n");
    assert_eq!(
        server.say("incr n -1\r\n"),
        "CLIENT_ERROR invalid numeric delta argument\r\n"
    );
    assert_eq!(
        server.say("incr n 18446744073709551616\r\n"),
        "CLIENT_ERROR invalid numeric delta argument\r\n"
    );
    assert_eq!(server.say("incr n\r\n"), "ERROR\r\n");
    let stats = server.cache.stats(server.now);
    assert_eq!((stats.incr_hits, stats.incr_misses), (11, 1));
    assert_eq!((stats.decr_hits, stats.decr_misses), (2, 1));
}

#[test]
fn other_commands() {
    let mut server = Server::new();
    assert_eq!(server.say("version\r\n"), "VERSION 1.6.21-rexo\r\n");
    assert_eq!(server.say("verbosity 1\r\n"), "OK\r\n");
    assert_eq!(server.say("verbosity 1 noreply\r\n"), "");
    assert_eq!(server.say("verbosity noreply\r\n"), "");
    assert_eq!(server.say("verbosity\r\n"), "ERROR\r\n");
    // The level must be a number, as in memcached.
    assert_eq!(
        server.say("verbosity x\r\nverbosity -1\r\nverbosity x noreply\r\n"),
        "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(server.say("stats items\r\n"), "END\r\n");
    assert_eq!(server.say("stats nonsense\r\n"), "ERROR\r\n");
    assert_eq!(server.say("bogus\r\n"), "ERROR\r\n");
    assert_eq!(server.say("\r\n"), "ERROR\r\n");
    assert_eq!(
        server.say("GET a\r\n"),
        "ERROR\r\n",
        "commands are lower case"
    );
    assert_eq!(server.say("get\r\n"), "ERROR\r\n");
    assert_eq!(server.say("set a 0 0\r\n"), "ERROR\r\n");
    assert_eq!(server.say("version x y\r\n"), "VERSION 1.6.21-rexo\r\n");
    // Bare `\n` line ends and extra spaces, as memcached takes them.
    assert_eq!(
        server.say("set  a  1  0  1\nx\r\nget a\n"),
        "STORED\r\nVALUE a 1 1\r\nx\r\nEND\r\n"
    );
    let mut out = Vec::new();
    let served = server.session.serve(
        &mut server.cache,
        b"quit\r\nget a\r\n",
        START,
        &server.info,
        &mut out,
    );
    assert_eq!(
        served,
        Served {
            consumed: 6,
            close: true
        }
    );
    assert!(out.is_empty());
}

#[test]
fn stats_report_memcached_names() {
    let mut server = Server::with(Config {
        max_bytes: 1 << 20,
        ..Config::default()
    });
    server.say("set a 0 0 1\r\nx\r\nget a b\r\n");
    server.now += 5;
    let stats = server.say("stats\r\n");
    let lines: Vec<&str> = stats.split("\r\n").collect();
    assert_eq!(
        &lines[..5],
        [
            "STAT pid 7",
            "STAT uptime 5",
            "STAT time 1700000005",
            "STAT version 1.6.21-rexo",
            "STAT pointer_size 64"
        ]
    );
    for expected in [
        "STAT curr_connections 1",
        "STAT total_connections 3",
        "STAT cmd_get 2",
        "STAT cmd_set 1",
        "STAT get_hits 1",
        "STAT get_misses 1",
        "STAT threads 1",
        "STAT curr_items 1",
        "STAT total_items 1",
        "STAT limit_maxbytes 1048576",
        "STAT evictions 0",
        &std::format!("STAT bytes {}", 2 + ITEM_OVERHEAD),
    ] {
        assert!(lines.contains(&expected), "{expected} missing from {stats}");
    }
    assert!(stats.ends_with("\r\nEND\r\n"));
    assert!(
        lines
            .iter()
            .all(|line| line.is_empty() || line.starts_with("STAT ") || *line == "END")
    );
    assert_eq!(server.say("stats reset\r\n"), "RESET\r\n");
    assert!(server.say("stats\r\n").contains("STAT cmd_get 0\r\n"));
    assert!(server.say("stats\r\n").contains("STAT curr_items 1\r\n"));
}

#[test]
fn noreply_silences_every_answer() {
    let mut server = Server::new();
    let requests = "set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\nreplace a 0 0 1 noreply\r\nz\r\n\
        append a 0 0 1 noreply\r\n1\r\nprepend a 0 0 1 noreply\r\n0\r\ncas a 0 0 1 1 noreply\r\nq\r\n\
        set n 0 0 1 noreply\r\n5\r\nincr n 2 noreply\r\ndecr n 1 noreply\r\nincr zz 1 noreply\r\n\
        touch a 0 noreply\r\ndelete nope noreply\r\ndelete n 0 noreply\r\nflush_all 0 noreply\r\n\
        set big 0 0 2000000 noreply\r\n";
    assert_eq!(server.say(requests), "");
    server.send(&vec![b'v'; 2_000_002]);
    assert_eq!(
        server.say("set a 0 0 1 noreply\r\nxy\r\nget a\r\n"),
        "ERROR\r\nEND\r\n"
    );
    // The same without noreply, to see that the commands ran.
    let mut server = Server::new();
    server.say("set a 0 0 1 noreply\r\nx\r\nappend a 0 0 1 noreply\r\n1\r\nset n 0 0 1 noreply\r\n5\r\nincr n 2 noreply\r\n");
    assert_eq!(
        server.say("get a n\r\n"),
        "VALUE a 0 2\r\nx1\r\nVALUE n 0 1\r\n7\r\nEND\r\n"
    );
    assert_eq!(server.say("flush_all noreply\r\nget a\r\n"), "END\r\n");
}

#[test]
fn values_are_binary_safe() {
    let mut server = Server::new();
    let mut value: Vec<u8> = (0..=255u8).collect();
    value.extend_from_slice(b"\r\nEND\r\n\r\n\0");
    let mut request = std::format!("set bin 7 0 {}\r\n", value.len()).into_bytes();
    request.extend_from_slice(&value);
    request.extend_from_slice(b"\r\n");
    assert_eq!(server.send(&request), b"STORED\r\n");
    let mut expected = std::format!("VALUE bin 7 {}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    assert_eq!(server.send(b"get bin\r\n"), expected);
    // A value of exactly the item size limit is accepted, one byte more is not.
    let limit = Config::default().max_value;
    let mut request = std::format!("set max 0 0 {limit}\r\n").into_bytes();
    request.resize(request.len() + limit, 0xAB);
    request.extend_from_slice(b"\r\n");
    assert_eq!(server.send(&request), b"STORED\r\n");
    assert_eq!(
        server.cache.get(key(b"max"), START).unwrap().value.len(),
        limit
    );
}

#[test]
fn oversized_values_are_refused_and_their_data_skipped() {
    let mut server = Server::new();
    server.say("set k 0 0 3\r\nold\r\n");
    let mut request = b"set k 0 0 1048577\r\n".to_vec();
    request.resize(request.len() + 1_048_577, b'z');
    request.extend_from_slice(b"\r\nget k\r\n");
    // Fed in small pieces: the refused block is skipped as it streams in, never held.
    let out = server.in_pieces(&request);
    assert_eq!(
        text(&out),
        "SERVER_ERROR object too large for cache\r\nEND\r\n",
        "the failed set removed the old value"
    );
    assert_eq!(server.cache.stats(START).store_too_large, 1);
    // Append or prepend past the limit: memcached's NOT_STORED, the value kept, no
    // refusal counted.
    let mut server = Server::with(Config {
        max_value: 4,
        ..Config::default()
    });
    server.say("set k 0 0 3\r\nabc\r\n");
    assert_eq!(server.say("append k 0 0 2\r\nde\r\n"), "NOT_STORED\r\n");
    assert_eq!(server.say("prepend k 0 0 2\r\nde\r\n"), "NOT_STORED\r\n");
    assert_eq!(server.say("get k\r\n"), "VALUE k 0 3\r\nabc\r\nEND\r\n");
    assert_eq!(server.cache.stats(START).store_too_large, 0);
    // Append past the whole budget: NOT_STORED too, not counted as out of memory.
    let mut server = Server::with(Config {
        max_bytes: 100 + ITEM_OVERHEAD,
        ..Config::default()
    });
    server.say(&std::format!("set k 0 0 90\r\n{}\r\n", "x".repeat(90)));
    assert_eq!(
        server.say(&std::format!("append k 0 0 10\r\n{}\r\n", "y".repeat(10))),
        "NOT_STORED\r\n"
    );
    assert_eq!(server.cache.stats(START).store_no_memory, 0);
    assert_eq!(
        server.say("get k\r\n").len(),
        "VALUE k 0 90\r\n\r\nEND\r\n".len() + 90
    );
    // An item above the whole budget.
    let mut server = Server::with(Config {
        max_bytes: 100 + ITEM_OVERHEAD,
        ..Config::default()
    });
    server.say("set k 0 0 1\r\nx\r\n");
    let value = "x".repeat(100);
    assert_eq!(
        server.say(&std::format!("set k 0 0 100\r\n{value}\r\n")),
        "SERVER_ERROR out of memory storing object\r\n"
    );
    assert_eq!(server.cache.stats(START).store_no_memory, 1);
    // Not counted as a storage command, as memcached counts only those whose item it made.
    assert_eq!(server.cache.stats(START).cmd_set, 1);
    assert_eq!(
        server.say("get k\r\n"),
        "END\r\n",
        "the failed set removed the old value"
    );
}

/// memcached makes a storage command's item before it looks at the mode, so one the
/// budget cannot hold alone is out of memory in every mode, not NOT_STORED, NOT_FOUND
/// or EXISTS; only `set` removes the old value.
#[test]
fn an_item_above_the_budget_is_out_of_memory_in_every_mode() {
    let mut server = Server::with(Config {
        max_bytes: 100 + ITEM_OVERHEAD,
        ..Config::default()
    });
    server.say("set k 0 0 1\r\nx\r\n");
    let value = "y".repeat(100);
    let no_memory = "SERVER_ERROR out of memory storing object\r\n";
    let lines = [
        "add k 0 0 100",
        "replace nope 0 0 100",
        "append k 0 0 100",
        "prepend k 0 0 100",
        "append nope 0 0 100",
        "cas k 0 0 100 999",
        "cas nope 0 0 100 1",
    ];
    for line in lines {
        let request = std::format!("{line}\r\n{value}\r\n");
        assert_eq!(server.say(&request), no_memory, "{line}");
    }
    assert_eq!(server.say("get k\r\n"), "VALUE k 0 1\r\nx\r\nEND\r\n");
    let stats = server.cache.stats(START);
    assert_eq!(stats.store_no_memory, lines.len() as u64);
    // Nor are they counted as storage commands: only the first `set` is.
    assert_eq!(stats.cmd_set, 1);
}

/// A store refused as `CLIENT_ERROR bad data chunk` is counted in `cmd_set`, classic and
/// meta, as memcached counts `set_cmds` once the item is made, before it looks at the
/// block's end (`complete_nread_ascii`); one whose item the budget cannot hold alone is
/// out of memory, as memcached's `item_alloc` fails before the block is read, and is not
/// counted.
#[test]
fn a_bad_data_chunk_is_counted_as_a_storage_command() {
    let mut server = Server::new();
    server.say("set a 0 0 1\r\nx\r\n");
    let bad_chunk = "CLIENT_ERROR bad data chunk\r\nERROR\r\n";
    let lines = [
        "set a 0 0 1",
        "add b 0 0 1",
        "replace a 0 0 1",
        "append a 0 0 1",
        "prepend a 0 0 1",
        "cas a 0 0 1 1",
        "ms a 1",
        "ms a 1 q",
    ];
    for line in lines {
        let request = std::format!("{line}\r\nxy\r\n");
        assert_eq!(server.say(&request), bad_chunk, "{line}");
    }
    assert_eq!(server.say("set a 0 0 1 noreply\r\nxy\r\n"), "ERROR\r\n");
    assert_eq!(server.say("get a b\r\n"), "VALUE a 0 1\r\nx\r\nEND\r\n");
    let stats = server.cache.stats(START);
    assert_eq!(stats.cmd_set, 1 + lines.len() as u64 + 1);
    assert_eq!(
        (stats.cas_hits, stats.cas_badval, stats.cas_misses),
        (0, 0, 0)
    );

    let mut server = Server::with(Config {
        max_bytes: 100 + ITEM_OVERHEAD,
        ..Config::default()
    });
    let no_memory = "SERVER_ERROR out of memory storing object\r\nERROR\r\n";
    let value = "y".repeat(101);
    for line in ["set a 0 0 100", "ms a 100 MA"] {
        server.say("set a 0 0 1\r\nx\r\n");
        let request = std::format!("{line}\r\n{value}\r\n");
        assert_eq!(server.say(&request), no_memory, "{line}");
        // The old item is removed, as for a block of the right length.
        assert_eq!(server.say("get a\r\n"), "END\r\n", "{line}");
    }
    let stats = server.cache.stats(START);
    assert_eq!((stats.cmd_set, stats.store_no_memory), (2, 2));
}

#[test]
fn malformed_lines_get_the_protocol_errors() {
    let mut server = Server::new();
    let long_key = "k".repeat(251);
    let ok_key = "k".repeat(250);
    assert_eq!(
        server.say(&std::format!("get {long_key}\r\n")),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        server.say(&std::format!("get a {long_key}\r\n")),
        "CLIENT_ERROR bad command line format\r\n"
    );
    // A bad key in a storage command: refused, and its data block skipped.
    assert_eq!(
        server.say(&std::format!(
            "set {long_key} 0 0 1\r\nx\r\nget {ok_key}\r\n"
        )),
        "CLIENT_ERROR bad command line format\r\nEND\r\n"
    );
    assert_eq!(
        server.say(&std::format!("set {ok_key} 0 0 1\r\nx\r\n")),
        "STORED\r\n"
    );
    assert_eq!(
        server.say("set a x 0 1\r\nx\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        server.say("set a 4294967296 0 1\r\nx\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        server.say("set a 0 zz 1\r\nx\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        server.say("set a 0 0 -1\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        server.say("set a 0 0 2147483646\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    // Data longer or shorter than the count.
    assert_eq!(
        server.say("set a 0 0 1\r\nxy\r\n"),
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n"
    );
    assert_eq!(
        server.say("set a 0 0 3\r\nx\r\nget a\r\n"),
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n"
    );
    assert_eq!(server.say("get a\r\n"), "END\r\n");
    // memcached 1.6 judges flush_all's delay as an exptime (process_flush_all_command).
    assert_eq!(
        server.say("flush_all x\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\n"
    );
}

/// `gat` and `gats` judge their exptime before their keys, and answer `END` alone when
/// no key follows it, as memcached's `process_get_command` does (checked against
/// memcached 1.6.18).
#[test]
fn gat_judges_its_exptime_first_and_may_name_no_key() {
    let mut server = Server::new();
    server.say("set k 1 0 2\r\nhi\r\n");
    assert_eq!(
        server.say("gat k\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\n"
    );
    assert_eq!(
        server.say("gats x k\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\n"
    );
    assert_eq!(server.say("gat 100\r\ngats 100 \r\n"), "END\r\nEND\r\n");
    assert_eq!(server.say("gat\r\ngats\r\n"), "ERROR\r\nERROR\r\n");
    let long_key = "k".repeat(251);
    assert_eq!(
        server.say(&std::format!("gat 100 {long_key}\r\n")),
        "CLIENT_ERROR bad command line format\r\n"
    );
    let stats = server.cache.stats(server.now);
    assert_eq!(stats.cmd_touch, 0, "no key was touched");
}

/// The numbers of a command line are read as memcached reads them, with C's `strtoul`
/// and `strtol`: a `+` sign, `-0`, whitespace other than spaces around the digits (a
/// tab), and after a NUL nothing (answers checked byte for byte against memcached
/// 1.6.18).
#[test]
fn numbers_on_command_lines_are_read_as_memcached_reads_them() {
    let mut server = Server::new();
    assert_eq!(
        server.say(
            "set a +1 +0 +1\r\nA\r\nget a\r\ntouch a +10\r\ngat +10 a\r\nflush_all +0\r\n\
             verbosity +1\r\ncas a 0 0 1 +1\r\nB\r\n"
        ),
        "STORED\r\nVALUE a 1 1\r\nA\r\nEND\r\nTOUCHED\r\nVALUE a 1 1\r\nA\r\nEND\r\nOK\r\nOK\r\n\
         NOT_FOUND\r\n"
    );
    // A new cache, where the first item's cas unique is 1.
    let mut server = Server::new();
    assert_eq!(
        server.say(
            "ms a +1 T+100 F+3\r\nA\r\nmg a v f t\r\nms n 1\r\n5\r\nma n D+2 v\r\n\
             ma n J+1 N+0 v\r\nms a 1 C+1\r\nB\r\n"
        ),
        "HD\r\nVA 1 f3 t100\r\nA\r\nHD\r\nVA 1\r\n7\r\nVA 1\r\n8\r\nHD\r\n"
    );
    assert_eq!(
        server.say("set b 0 0 -0\r\n\r\nset c -0 -0 1\r\nC\r\nget c\r\nincr c -0\r\n"),
        "STORED\r\nSTORED\r\nVALUE c 0 1\r\nC\r\nEND\r\n\
         CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    assert_eq!(
        server.say("set a \t1 0 1\t\r\nA\r\nget a\r\nset n 0 0 1\r\n1\r\nincr n \t5\r\n"),
        "STORED\r\nVALUE a 1 1\r\nA\r\nEND\r\nSTORED\r\n6\r\n"
    );
    assert_eq!(
        server.send(b"incr n 5\tx\r\nincr n 5\0x\r\ntouch n 10\t\r\n"),
        b"11\r\n16\r\nTOUCHED\r\n"
    );
    // Still refused: other bytes after the digits, a negative number, one past 64 bits.
    for line in [
        "incr n 5x",
        "incr n -5",
        "incr n 18446744073709551616",
        "incr n +",
        "incr n +-5",
    ] {
        assert_eq!(
            server.say(&std::format!("{line}\r\n")),
            "CLIENT_ERROR invalid numeric delta argument\r\n",
            "{line}"
        );
    }
    assert_eq!(
        server.say("touch n 1x\r\ntouch n -+1\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\nCLIENT_ERROR invalid exptime argument\r\n"
    );
}

#[test]
fn long_lines_close_the_connection() {
    let mut server = Server::new();
    // A 2 MB key: refused once the line passes the bound, without waiting for the end.
    let mut request = b"set ".to_vec();
    request.resize(MAX_LINE + 1, b'k');
    let mut out = Vec::new();
    let served = server.session.serve(
        &mut server.cache,
        &request[..MAX_LINE],
        START,
        &server.info,
        &mut out,
    );
    assert_eq!(
        served,
        Served {
            consumed: 0,
            close: false
        }
    );
    let served = server
        .session
        .serve(&mut server.cache, &request, START, &server.info, &mut out);
    assert_eq!(
        served,
        Served {
            consumed: MAX_LINE + 1,
            close: true
        }
    );
    assert_eq!(text(&out), "CLIENT_ERROR line too long\r\n");
    // A read may carry many keys, as a client's get_many sends them: 6,000 keys on a
    // 66 KB line are answered, as memcached does.
    let mut server = Server::new();
    server.say("set k1 0 0 1\r\nx\r\n");
    let keys: Vec<String> = (0..6000)
        .map(|index| std::format!("key{index:07}"))
        .collect();
    let line = std::format!("get {}\r\n", keys.join(" "));
    assert!(line.len() > MIN_MULTIGET_LINE);
    assert_eq!(server.say(&line), "END\r\n");
    let line = std::format!("gets k1 {}\r\n", keys.join(" "));
    assert!(server.say(&line).starts_with("VALUE k1 0 1 "));
    // Up to the receive buffer's bound.
    let mut out = Vec::new();
    let huge = std::format!(
        "get {}",
        "k ".repeat(max_request_len(server.cache.config().max_value))
    );
    let served = server.session.serve(
        &mut server.cache,
        huge.as_bytes(),
        START,
        &server.info,
        &mut out,
    );
    assert!(served.close);
}

#[test]
fn the_longest_requests_fit_in_max_request_len() {
    // A storage line padded with spaces to MAX_LINE bytes, its `\n`, the largest value
    // and its `\r\n`: a receive buffer of `max_request_len` bytes holds it whole.
    let max_value = 1 << 20;
    let mut request = b"set k 0 0 1048576".to_vec();
    request.resize(MAX_LINE, b' ');
    request.push(b'\n');
    request.resize(request.len() + max_value, b'v');
    request.extend_from_slice(b"\r\n");
    assert_eq!(request.len(), max_request_len(max_value));
    match parse(&request, max_value) {
        Parsed::Request {
            consumed,
            command: Command::Store { value, .. },
            ..
        } => {
            assert_eq!(consumed, request.len());
            assert_eq!(value.len(), max_value);
        }
        other => panic!("{other:?}"),
    }
    // Likewise the longest read line with its `\n`, as long as the longest storage
    // request, and never shorter than MIN_MULTIGET_LINE.
    for (max_value, line_len) in [
        (max_value, max_request_len(max_value) - 1),
        (0, MIN_MULTIGET_LINE),
    ] {
        let mut read = b"get k".to_vec();
        read.resize(line_len, b' ');
        read.push(b'\n');
        assert!(read.len() <= max_request_len(max_value));
        assert!(matches!(
            parse(&read, max_value),
            Parsed::Request {
                command: Command::Get { .. },
                ..
            }
        ));
    }
}

#[test]
fn max_request_len_of_an_unlimited_item_size_is_the_largest_byte_count_a_line_names() {
    // Beyond 2^31 - 3 bytes a line is refused before its data, whatever the limit.
    let largest_block = i32::MAX as usize - 2;
    assert_eq!(
        max_request_len(usize::MAX),
        MAX_LINE + 1 + largest_block + 2
    );
    assert_eq!(max_request_len(usize::MAX), max_request_len(largest_block));
}

#[test]
fn expiry_relative_absolute_and_negative() {
    let mut server = Server::new();
    server.say("set rel 0 10 1\r\nr\r\n");
    server.say(&std::format!("set abs 0 {} 1\r\na\r\n", START + 20));
    server.say("set neg 0 -1 1\r\nn\r\n");
    server.say(&std::format!("set past 0 {} 1\r\np\r\n", START - 1));
    server.say(&std::format!(
        "set month 0 {} 1\r\nm\r\n",
        RELATIVE_EXPTIME_MAX
    ));
    server.say("set never 0 0 1\r\nv\r\n");
    assert_eq!(server.say("get neg past\r\n"), "END\r\n");
    server.now = START + 9;
    assert_eq!(server.say("get rel\r\n"), "VALUE rel 0 1\r\nr\r\nEND\r\n");
    server.now = START + 10;
    assert_eq!(server.say("get rel\r\n"), "END\r\n");
    server.now = START + 19;
    assert_eq!(server.say("get abs\r\n"), "VALUE abs 0 1\r\na\r\nEND\r\n");
    server.now = START + 20;
    assert_eq!(server.say("get abs\r\n"), "END\r\n");
    server.now = START + RELATIVE_EXPTIME_MAX as u64 - 1;
    assert_eq!(
        server.say("get month\r\n"),
        "VALUE month 0 1\r\nm\r\nEND\r\n"
    );
    server.now += 1;
    assert_eq!(
        server.say("get month never\r\n"),
        "VALUE never 0 1\r\nv\r\nEND\r\n"
    );
    // Touch moves the deadline; an expired item cannot be touched, added over, or counted.
    server.say("set t 0 5 1\r\nt\r\n");
    server.now += 4;
    assert_eq!(server.say("touch t 10\r\n"), "TOUCHED\r\n");
    server.now += 9;
    assert_eq!(server.say("get t\r\n"), "VALUE t 0 1\r\nt\r\nEND\r\n");
    server.now += 1;
    assert_eq!(server.say("touch t 10\r\n"), "NOT_FOUND\r\n");
    assert_eq!(server.say("add rel 0 0 1\r\nR\r\n"), "STORED\r\n");
    let stats = server.cache.stats(server.now);
    assert_eq!(stats.get_expired, 5, "neg, past, rel, abs, month");
    assert_eq!(stats.curr_items, 2, "never, rel");
}

/// memcached parses an exptime into 32 bits: one outside is refused (a storage
/// command's data block still skipped), never taken as a later time.
#[test]
fn exptimes_outside_32_bits_are_refused() {
    let mut server = Server::new();
    server.say("set k 0 0 1\r\nv\r\n");
    for exptime in ["4294967296", "2147483648", "-2147483649", "99999999999"] {
        assert_eq!(
            server.say(&std::format!("set b 0 {exptime} 1\r\nx\r\nget b\r\n")),
            "CLIENT_ERROR bad command line format\r\nEND\r\n",
            "{exptime}"
        );
        assert_eq!(
            server.say(&std::format!("set b 0 {exptime} 1 noreply\r\nx\r\n")),
            ""
        );
        assert_eq!(
            server.say(&std::format!("touch k {exptime}\r\n")),
            "CLIENT_ERROR invalid exptime argument\r\n"
        );
        assert_eq!(
            server.say(&std::format!("touch k {exptime} noreply\r\n")),
            ""
        );
        assert_eq!(
            server.say(&std::format!("gat {exptime} k\r\n")),
            "CLIENT_ERROR invalid exptime argument\r\n"
        );
        assert_eq!(
            server.say(&std::format!("flush_all {exptime}\r\n")),
            "CLIENT_ERROR invalid exptime argument\r\n"
        );
    }
    assert_eq!(server.say("get k\r\n"), "VALUE k 0 1\r\nv\r\nEND\r\n");
    // The ends of the range are exptimes: the largest a time far ahead, the smallest
    // already past.
    assert_eq!(server.say("touch k 2147483647\r\n"), "TOUCHED\r\n");
    server.now = 2_147_483_646;
    assert_eq!(server.say("get k\r\n"), "VALUE k 0 1\r\nv\r\nEND\r\n");
    assert_eq!(server.say("set k 0 -2147483648 1\r\nv\r\n"), "STORED\r\n");
    assert_eq!(server.say("get k\r\n"), "END\r\n");
}

#[test]
fn flush_all_now_and_later() {
    let mut server = Server::new();
    server.say("set a 0 0 1\r\na\r\nset b 0 0 1\r\nb\r\n");
    assert_eq!(server.say("flush_all\r\n"), "OK\r\n");
    assert_eq!(server.say("get a b\r\n"), "END\r\n");
    server.say("set a 0 0 1\r\na\r\n");
    assert_eq!(server.say("flush_all 10\r\n"), "OK\r\n");
    server.now += 9;
    assert_eq!(server.say("get a\r\n"), "VALUE a 0 1\r\na\r\nEND\r\n");
    server.now += 1;
    assert_eq!(server.say("get a\r\n"), "END\r\n");
    server.say("set c 0 0 1\r\nc\r\n");
    assert_eq!(
        server.say("get c\r\n"),
        "VALUE c 0 1\r\nc\r\nEND\r\n",
        "items stored after the flush live"
    );
    // A later flush replaces a pending one; an absolute delay is a Unix time.
    server.say(&std::format!("flush_all {}\r\n", server.now + 100));
    server.say("flush_all 0\r\n");
    server.say("set d 0 0 1\r\nd\r\n");
    server.now += 200;
    assert_eq!(server.say("get d\r\n"), "VALUE d 0 1\r\nd\r\nEND\r\n");
    assert_eq!(server.cache.stats(server.now).cmd_flush, 4);
}

#[test]
fn lru_evicts_the_least_recently_used_within_the_budget() {
    let item = 1 + 10 + ITEM_OVERHEAD;
    let mut server = Server::with(Config {
        max_bytes: item * 4,
        ..Config::default()
    });
    for name in ["a", "b", "c", "d"] {
        server.say(&std::format!("set {name} 0 0 10\r\n0123456789\r\n"));
    }
    assert_eq!(server.cache.bytes(), item * 4);
    // Reading `a` and touching `b` make `c` the least recently used.
    server.say("get a\r\n");
    server.say("touch b 0\r\n");
    server.say("set e 0 0 10\r\n0123456789\r\n");
    assert_eq!(server.say("get c\r\n"), "END\r\n");
    server.say("set f 0 0 10\r\n0123456789\r\n");
    assert_eq!(server.say("get d\r\n"), "END\r\n");
    for name in ["a", "b", "e", "f"] {
        assert!(
            server
                .say(&std::format!("get {name}\r\n"))
                .starts_with("VALUE"),
            "{name} evicted"
        );
    }
    // A bigger item pushes out as many as it needs; expired victims are reclaimed, not
    // evicted.
    server.say("set x 0 1 10\r\n0123456789\r\n");
    assert_eq!(server.say("get a\r\n"), "END\r\n");
    server.now += 2;
    server.say("get b e f\r\n");
    // Costs exactly two small items but for one slab entry: the two entries freed for
    // it stay charged, one of them holding it.
    let value = "v".repeat(19 + ITEM_OVERHEAD - crate::cache::SLAB_ENTRY);
    server.say(&std::format!("set big 0 0 {}\r\n{value}\r\n", value.len()));
    let stats = server.cache.stats(server.now);
    assert_eq!(stats.evictions, 4, "c, d, a, then one of b e f");
    assert_eq!(stats.reclaimed, 1, "x");
    assert!(server.cache.bytes() <= item * 4);
    assert_eq!(stats.curr_items, 3);
    assert_eq!(
        server.say("get b\r\n"),
        "END\r\n",
        "b was the oldest of b, e, f"
    );
}

/// Every command, pipelined, split at every byte gives the same answers.
#[test]
fn split_streams_give_the_same_answers() {
    let stream: &[u8] = b"set a 1 0 5\r\nhel\r\n\r\nget a b\r\nappend a 0 0 2\r\n!!\r\ngets a\r\n\
        incr n 1\r\nset n 0 0 2\r\n41\r\nincr n 1\r\ndecr n 50\r\ntouch a 100\r\ngat 0 a\r\n\
        delete a noreply\r\nget a\r\nset big 0 0 12\r\n123456789012\r\nversion\r\nflush_all\r\nget n\r\n\
        set b 0 0 1\r\nxyz\r\nverbosity 1\r\nquit\r\nget never\r\n";
    let small = Config {
        max_value: 10,
        ..Config::default()
    };
    let mut reference = Server::with(small);
    let mut expected = Vec::new();
    let served = reference.session.serve(
        &mut reference.cache,
        stream,
        START,
        &reference.info,
        &mut expected,
    );
    assert!(served.close);
    let expected = text(&expected);
    assert!(
        expected.starts_with("STORED\r\nVALUE a 1 5\r\nhel\r\n\r\nEND\r\nSTORED\r\n"),
        "{expected}"
    );
    assert!(expected.ends_with(
        "NOT_FOUND\r\nSTORED\r\n42\r\n0\r\nTOUCHED\r\nVALUE a 1 7\r\nhel\r\n!!\r\nEND\r\nEND\r\n\
        SERVER_ERROR object too large for cache\r\nVERSION 1.6.21-rexo\r\nOK\r\nEND\r\n\
        CLIENT_ERROR bad data chunk\r\nERROR\r\nOK\r\n"
    ), "{expected}");
    for split in 0..=stream.len() {
        let (out, closed) = Server::with(small).in_two_reads(stream, split);
        assert!(closed, "split at {split}");
        assert_eq!(text(&out), expected, "split at {split}");
    }
}

/// Byte-at-a-time delivery gives the same answers as one read.
#[test]
fn byte_at_a_time() {
    let stream = b"set k 0 0 4\r\n\r\n\r\n\r\nget k\r\nset k 0 0 1\r\nxx\r\nget k\r\n";
    let mut server = Server::new();
    assert_eq!(
        text(&server.byte_at_a_time(stream)),
        "STORED\r\nVALUE k 0 4\r\n\r\n\r\n\r\nEND\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE k 0 4\r\n\r\n\r\n\r\nEND\r\n"
    );
}

/// A long read line trickling in a byte at a time is searched once, not from its start
/// on every read (which made a 1 MiB line cost some 500 GB of searching: a denial of
/// service), through the session and through `parse_resumed` alike.
#[test]
fn a_trickled_line_is_searched_once() {
    let mut server = Server::new();
    server.say("set k 0 0 1\r\nv\r\n");
    let max_value = server.cache.config().max_value;
    let mut line = b"get".to_vec();
    for _ in 0..100_000 {
        line.extend_from_slice(b" k");
    }
    line.extend_from_slice(b"\r\n");
    let mut out = Vec::new();
    let searched = searched_by(|| out = server.byte_at_a_time(&line));
    assert_eq!(out.len(), 100_000 * "VALUE k 0 1\r\nv\r\n".len() + 5);
    // Each byte once, and the empty rest after the request once.
    assert!(searched <= line.len(), "{searched} bytes searched");
    // The same through the parser: a storage line waiting for its data is not searched
    // again either.
    let mut set = b"set k 0 0 1000\r\n".to_vec();
    set.resize(set.len() + 1000, b'v');
    set.extend_from_slice(b"\r\n");
    for request in [&line, &set] {
        let mut at = 0;
        let searched = searched_by(|| {
            for end in 1..=request.len() {
                match parse_resumed(&request[..end], max_value, &mut at) {
                    Parsed::NeedMore => {}
                    Parsed::Request { consumed, .. } => {
                        assert_eq!((end, consumed, at), (request.len(), end, 0));
                    }
                }
            }
        });
        // The line's bytes once; then its `\n` again on each read of the data.
        assert!(searched <= request.len(), "{searched} bytes searched");
    }
}

/// Random bytes and mutated commands: no panic, progress or a request for more, and
/// bounded consumption.
#[test]
fn fuzz_the_parser() {
    let seeds: [&[u8]; 18] = [
        b"set k 0 0 3\r\nabc\r\n",
        b"ms k 3 T0 F1 MA C1 c k Oo q\r\nabc\r\n",
        b"mg k v t c f s h l k Oo N5 R3 T9 u q\r\n",
        b"ma k N0 J5 D2 MD v t c\r\n",
        b"md k q C1 k\r\n",
        b"me k b\r\n",
        b"mn\r\n",
        b"cas k 1 2 3 4 noreply\r\nabc\r\n",
        b"get a b c\r\n",
        b"gats 10 a b\r\n",
        b"incr k 18446744073709551615\r\n",
        b"delete k 0 noreply\r\n",
        b"touch k -1\r\n",
        b"flush_all 10 noreply\r\n",
        b"stats reset\r\n",
        b"append k 0 0 0\r\n\r\n",
        b"verbosity 1\r\n",
        b"set k 0 0 99999999\r\n",
    ];
    let alphabet = b" \r\n0123456789-setgcaskdnoreplyxyzmvqbTNRMCODJF=\x00\xff";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cache = Cache::new(
        Config {
            max_bytes: 1 << 16,
            max_value: 1000,
            ..Config::default()
        },
        START,
    );
    let info = ServerInfo::default();
    for round in 0..20_000 {
        let mut input: Vec<u8> = if round % 4 == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let mut input = Vec::new();
            for _ in 0..1 + rng.below(4) {
                input.extend_from_slice(seeds[rng.below(seeds.len())]);
            }
            for _ in 0..rng.below(6) {
                let at = rng.below(input.len() + 1);
                match rng.below(3) {
                    0 if at < input.len() => input[at] = alphabet[rng.below(alphabet.len())],
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.insert(at, alphabet[rng.below(alphabet.len())]),
                }
            }
            input
        };
        if round % 7 == 0 {
            input.extend_from_slice(&vec![b'a'; rng.below(3 * MAX_LINE)]);
        }
        let mut rest = &input[..];
        let mut steps = 0;
        while !rest.is_empty() {
            match parse(rest, 1000) {
                Parsed::NeedMore => {
                    assert!(
                        rest.len() <= max_request_len(1000),
                        "asks for more past every bound"
                    );
                    break;
                }
                Parsed::Request {
                    consumed, command, ..
                } => {
                    assert!(consumed > 0 && consumed <= rest.len());
                    rest = &rest[consumed..];
                    if let Command::Invalid { error, .. } = command
                        && error.closes()
                    {
                        break;
                    }
                }
            }
            steps += 1;
            assert!(steps <= input.len());
        }
        let mut session = Session::new();
        let mut out = Vec::new();
        let served = session.serve(&mut cache, &input, START + round, &info, &mut out);
        assert!(served.consumed <= input.len());
    }
}

/// The cache against a plain map over random operations (budget large enough for no
/// eviction).
#[test]
fn cache_matches_a_model() {
    #[derive(Clone, Debug, PartialEq)]
    struct ModelItem {
        value: Vec<u8>,
        flags: u32,
        expires_at: u64,
    }
    let mut rng = Rng(12345);
    for run in 0..20 {
        let mut cache = Cache::new(
            Config {
                max_bytes: 1 << 30,
                hash_seed: run,
                ..Config::default()
            },
            START,
        );
        let mut model: BTreeMap<Vec<u8>, ModelItem> = BTreeMap::new();
        let mut now = START;
        for _ in 0..5_000 {
            let name = std::format!("key{}", rng.below(60)).into_bytes();
            let key = Key::new(&name).unwrap();
            let live = |model: &BTreeMap<Vec<u8>, ModelItem>, now: u64| {
                model
                    .get(&name)
                    .filter(|item| item.expires_at == 0 || item.expires_at > now)
                    .cloned()
            };
            let present = live(&model, now);
            let value: Vec<u8> = (0..rng.below(12))
                .map(|_| b'0' + rng.below(10) as u8)
                .collect();
            let flags = rng.below(4) as u32;
            let exptime = [0, 0, 0, 5, 30, -1][rng.below(6)];
            let expires_at = match exptime {
                0 => 0,
                ..0 => 1,
                _ => now + exptime as u64,
            };
            match rng.below(9) {
                0 => {
                    let outcome = cache.store(StoreMode::Set, key, flags, exptime, &value, now);
                    assert_eq!(outcome, StoreOutcome::Stored);
                    model.insert(
                        name.clone(),
                        ModelItem {
                            value,
                            flags,
                            expires_at,
                        },
                    );
                }
                1 => {
                    let outcome = cache.store(StoreMode::Add, key, flags, exptime, &value, now);
                    if present.is_some() {
                        assert_eq!(outcome, StoreOutcome::NotStored);
                    } else {
                        assert_eq!(outcome, StoreOutcome::Stored);
                        model.insert(
                            name.clone(),
                            ModelItem {
                                value,
                                flags,
                                expires_at,
                            },
                        );
                    }
                }
                2 => {
                    let outcome = cache.store(StoreMode::Replace, key, flags, exptime, &value, now);
                    if present.is_some() {
                        assert_eq!(outcome, StoreOutcome::Stored);
                        model.insert(
                            name.clone(),
                            ModelItem {
                                value,
                                flags,
                                expires_at,
                            },
                        );
                    } else {
                        assert_eq!(outcome, StoreOutcome::NotStored);
                    }
                }
                3 => {
                    let outcome = cache.store(StoreMode::Append, key, flags, exptime, &value, now);
                    match present {
                        Some(mut item) => {
                            assert_eq!(outcome, StoreOutcome::Stored);
                            item.value.extend_from_slice(&value);
                            model.insert(name.clone(), item);
                        }
                        None => assert_eq!(outcome, StoreOutcome::NotStored),
                    }
                }
                4 => {
                    let deleted = cache.delete(key, now);
                    assert_eq!(deleted, present.is_some());
                    model.remove(&name);
                }
                5 => {
                    let outcome = cache.add_delta(key, 7, rng.below(2) == 0, now);
                    match present {
                        None => assert_eq!(outcome, DeltaOutcome::NotFound),
                        Some(mut item) => {
                            let number = std::str::from_utf8(&item.value)
                                .ok()
                                .and_then(|digits| digits.parse::<u64>().ok());
                            match number {
                                None => assert_eq!(outcome, DeltaOutcome::NonNumeric),
                                Some(number) => {
                                    let DeltaOutcome::Value(new) = outcome else {
                                        panic!("{outcome:?}")
                                    };
                                    assert!(
                                        new == number.wrapping_add(7)
                                            || new == number.saturating_sub(7)
                                    );
                                    item.value = new.to_string().into_bytes();
                                    model.insert(name.clone(), item);
                                }
                            }
                        }
                    }
                }
                6 => {
                    let touched = cache.touch(key, exptime, now);
                    assert_eq!(touched, present.is_some());
                    if let Some(mut item) = present {
                        item.expires_at = expires_at;
                        model.insert(name.clone(), item);
                    }
                }
                7 => now += rng.below(8) as u64,
                _ => {
                    let found = cache.get(key, now).map(|found| ModelItem {
                        value: found.value.to_vec(),
                        flags: found.flags,
                        expires_at: 0,
                    });
                    let expected = present.map(|item| ModelItem {
                        expires_at: 0,
                        ..item
                    });
                    assert_eq!(found, expected);
                }
            }
        }
        let live = model
            .values()
            .filter(|item| item.expires_at == 0 || item.expires_at > now)
            .count() as u64;
        let stats = cache.stats(now);
        assert!(
            stats.curr_items >= live,
            "curr_items counts live items and unnoticed expired ones"
        );
        assert_eq!(stats.evictions, 0);
    }
}

#[test]
fn udp_frames() {
    assert_eq!(
        udp::UdpHeader::parse(&[0, 1, 0]).err(),
        Some(udp::UdpDrop::Truncated)
    );
    let (header, payload) =
        udp::UdpHeader::parse(b"\x12\x34\x00\x00\x00\x02\x00\x00get a\r\n").unwrap();
    let expected = udp::UdpHeader {
        request_id: 0x1234,
        sequence: 0,
        total: 2,
    };
    assert_eq!((header, payload), (expected, &b"get a\r\n"[..]));
    // The answer to a set and a get of a 3000-byte value spans three datagrams.
    let mut answer = b"STORED\r\nVALUE k 0 3000\r\n".to_vec();
    answer.extend(std::iter::repeat_n(b'q', 3000));
    answer.extend_from_slice(b"\r\nEND\r\n");
    let datagrams: Vec<_> = udp::Datagrams::new(7, &answer).unwrap().collect();
    let mut joined = Vec::new();
    for (sequence, (header, part)) in datagrams.iter().enumerate() {
        assert_eq!(*header, [0, 7, 0, sequence as u8, 0, 3, 0, 0]);
        assert!(header.len() + part.len() <= udp::UDP_MAX_DATAGRAM);
        joined.extend_from_slice(part);
    }
    assert_eq!(datagrams.len(), 3);
    assert_eq!(joined, answer);
    // No answer (noreply): nothing to send.
    assert_eq!(udp::Datagrams::new(1, &[]).unwrap().count(), 0);
    let header = udp::UdpHeader {
        request_id: 0xfffe,
        sequence: 9,
        total: 10,
    };
    assert_eq!(
        udp::UdpHeader::parse(&header.bytes()).unwrap(),
        (header, &[][..])
    );
    let big = vec![0u8; 65536 * 1392];
    assert_eq!(
        udp::Datagrams::new(1, &big).err(),
        Some(udp::UdpDrop::ResponseTooLarge)
    );
}

#[test]
fn values_reach_a_closure_sink_uncopied() {
    let mut cache = Cache::new(Config::default(), START);
    cache.store(StoreMode::Set, key(b"k"), 0, 0, b"payload", START);
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut sink = Sink(|piece: &[u8]| pieces.push(piece.to_vec()));
    Session::new().serve(
        &mut cache,
        b"get k\r\n",
        START,
        &ServerInfo::default(),
        &mut sink,
    );
    assert!(
        pieces.iter().any(|piece| piece == b"payload"),
        "the value went out as one piece"
    );
}

/// ns per get and set on 100k items: `cargo test -p rexo-memcache --release -- --ignored
/// --nocapture`. Each phase runs three times and reports its fastest, the machine being
/// shared.
#[test]
#[ignore]
fn benchmark_get_and_set() {
    use std::time::Instant;
    const ITEMS: usize = 100_000;
    const WIDTH: usize = 12;
    const OPERATIONS: usize = 1_000_000;
    // The keys side by side, as a receive buffer holds them.
    let keys: Vec<u8> = (0..ITEMS)
        .flat_map(|index| std::format!("key:{index:08}").into_bytes())
        .collect();
    let key_at = |index: usize| key(&keys[index * WIDTH..(index + 1) * WIDTH]);
    let value = [b'v'; 32];
    let mut rng = Rng(99);
    let order: Vec<usize> = (0..OPERATIONS).map(|_| rng.below(ITEMS)).collect();
    let fastest = |run: &mut dyn FnMut() -> usize| {
        (0..3)
            .map(|_| {
                let started = Instant::now();
                let count = run();
                started.elapsed().as_nanos() / count as u128
            })
            .min()
            .unwrap()
    };
    let mut cache = Cache::new(Config::default(), START);
    let insert_ns = fastest(&mut || {
        cache = Cache::new(Config::default(), START);
        for index in 0..ITEMS {
            cache.store(StoreMode::Set, key_at(index), 0, 0, &value, START);
        }
        ITEMS
    });
    let get_ns = fastest(&mut || {
        let mut total = 0;
        for &index in &order {
            total += cache
                .get(key_at(index), START)
                .map_or(0, |found| found.value.len());
        }
        assert_eq!(total, OPERATIONS * value.len());
        OPERATIONS
    });
    let set_ns = fastest(&mut || {
        for &index in &order {
            cache.store(StoreMode::Set, key_at(index), 0, 0, &value, START);
        }
        OPERATIONS
    });
    // Whole requests through the parser and the answer writer, random keys.
    let requests: Vec<Vec<u8>> = order[..1000]
        .iter()
        .map(|&index| {
            [
                &b"get "[..],
                &keys[index * WIDTH..(index + 1) * WIDTH],
                b"\r\n",
            ]
            .concat()
        })
        .collect();
    let mut session = Session::new();
    let mut out = Vec::with_capacity(256);
    let request_ns = fastest(&mut || {
        for request in requests.iter().cycle().take(OPERATIONS) {
            out.clear();
            session.serve(&mut cache, request, START, &ServerInfo::default(), &mut out);
        }
        OPERATIONS
    });
    std::println!(
        "100k items, 32-byte values: insert {insert_ns} ns, random get {get_ns} ns, random set {set_ns} ns, \
         get request parsed and answered (1000 keys) {request_ns} ns"
    );
}

/// memcached reads `noreply` before judging the rest of the line: a client that sends
/// it reads no answer, so an error answered anyway would be read as the next request's.
#[test]
fn noreply_silences_client_errors_but_not_token_counts() {
    let mut server = Server::new();
    let long_key = "k".repeat(251);
    server.say("set n 0 0 1\r\n5\r\n");
    let silent = std::format!(
        "incr n x noreply\r\ndecr n -1 noreply\r\ntouch n x noreply\r\ndelete n 5 noreply\r\n\
         delete {long_key} noreply\r\nincr {long_key} 1 noreply\r\ntouch {long_key} 0 noreply\r\n\
         flush_all x noreply\r\nset n 0 0 noreply\r\ncas n 0 0 5 noreply\r\nhello\r\n"
    );
    assert_eq!(server.say(&silent), "");
    assert_eq!(server.say("get n\r\n"), "VALUE n 0 1\r\n5\r\nEND\r\n");
    // A wrong number of tokens is found before `noreply` is read; reads take no
    // `noreply`; nor does a `noreply` that is not the last token count.
    assert_eq!(server.say("incr noreply\r\n"), "ERROR\r\n");
    assert_eq!(server.say("touch n x noreply extra\r\n"), "ERROR\r\n");
    assert_eq!(
        server.say(&std::format!("get {long_key} noreply\r\n")),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        server.say("delete n noreply 5\r\n"),
        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
    );
}

#[test]
fn a_binary_protocol_request_closes_the_connection_at_once() {
    // A binary `get k`: magic, opcode 0, key length 1, no extras, body length 1, key.
    let mut get = vec![BINARY_REQUEST_MAGIC, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    get.resize(24, 0);
    get.push(b'k');
    // Whole, or its first byte alone: refused unanswered and closed, not waited on.
    for input in [&get[..], &get[..1]] {
        let mut server = Server::new();
        let mut out = Vec::new();
        let served = server
            .session
            .serve(&mut server.cache, input, START, &server.info, &mut out);
        assert_eq!(
            served,
            Served {
                consumed: input.len(),
                close: true
            }
        );
        assert!(out.is_empty(), "{:?}", text(&out));
    }
    // After text requests too: no text command starts with the magic.
    let mut server = Server::new();
    let mut input = b"version\r\n".to_vec();
    input.extend_from_slice(&get);
    let mut out = Vec::new();
    let served = server
        .session
        .serve(&mut server.cache, &input, START, &server.info, &mut out);
    assert!(served.close);
    assert!(text(&out).starts_with("VERSION ") && text(&out).ends_with("\r\n"));
}

/// The budget bounds what the cache allocates: the slab's unused entries and the index
/// are charged, the index shrinks as items go, and `flush_all` gives everything back.
#[test]
fn the_budget_bounds_what_the_cache_allocates() {
    let max_bytes = 64 << 10;
    let mut cache = Cache::new(
        Config {
            max_bytes,
            ..Config::default()
        },
        START,
    );
    // An empty cache holds its initial index alone (64 bytes), uncharged.
    let check = |cache: &Cache, when: &str| {
        let charged = cache.bytes().max(64);
        assert!(
            cache.allocated() <= charged && cache.bytes() <= max_bytes,
            "{when}: {} bytes allocated, {} charged, budget {max_bytes}",
            cache.allocated(),
            cache.bytes()
        );
    };
    let mut rng = Rng(0x5eed);
    for round in 0..4 {
        // Fill past the budget with small items, evicting.
        for index in 0..2000 {
            let name = std::format!("key{round}:{index}");
            let value = vec![b'v'; rng.below(20)];
            cache.store(StoreMode::Set, key(name.as_bytes()), 0, 0, &value, START);
            check(&cache, "filling");
        }
        // Delete most of them: the slab keeps its entries, the index shrinks.
        for index in 0..2000 {
            if index % 16 != 0 {
                let name = std::format!("key{round}:{index}");
                cache.delete(key(name.as_bytes()), START);
                check(&cache, "deleting");
            }
        }
    }
    cache.flush_all(0, START);
    check(&cache, "flushed");
    assert!(
        cache.allocated() <= 64,
        "{} bytes after flush_all",
        cache.allocated()
    );
}

/// An item that fills the whole budget alone, stored over small items, evicts them all
/// and gives back the small slab an emptied cache keeps, which would leave it over the
/// budget.
#[test]
fn an_item_filling_the_budget_evicts_the_kept_slab_too() {
    let max_bytes = 1 << 20;
    let mut cache = Cache::new(
        Config {
            max_bytes,
            ..Config::default()
        },
        START,
    );
    for index in 0..60 {
        let name = std::format!("k{index}");
        cache.store(StoreMode::Set, key(name.as_bytes()), 0, 0, b"v", START);
    }
    let value = vec![b'v'; max_bytes - ITEM_OVERHEAD - 3];
    let stored = cache.store(StoreMode::Set, key(b"big"), 0, 0, &value, START);
    assert_eq!(stored, StoreOutcome::Stored);
    let stats = cache.stats(START);
    assert_eq!((stats.curr_items, stats.evictions), (1, 60));
    assert!(
        stats.bytes <= stats.limit_maxbytes,
        "{} bytes held, budget {}",
        stats.bytes,
        stats.limit_maxbytes
    );
}

/// A cache whose last item goes keeps a small slab for the next ones, rather than free
/// and reallocate it on every delete and set; `flush_all` gives it back, and a large one
/// is given back down to the small one.
#[test]
fn an_emptied_cache_keeps_a_small_slab() {
    let mut cache = Cache::new(Config::default(), START);
    let empty = cache.allocated();
    cache.store(StoreMode::Set, key(b"k"), 0, 0, b"v", START);
    cache.delete(key(b"k"), START);
    assert!(
        cache.allocated() >= empty + crate::cache::SLAB_ENTRY,
        "{} bytes after the last item went: the slab was freed",
        cache.allocated()
    );
    cache.store(StoreMode::Set, key(b"k"), 0, 0, b"v", START);
    assert_eq!(cache.stats(START).curr_items, 1);
    cache.flush_all(0, START);
    assert_eq!(cache.allocated(), empty, "flush_all gives everything back");
    for index in 0..1000 {
        let name = std::format!("key{index}");
        cache.store(StoreMode::Set, key(name.as_bytes()), 0, 0, b"v", START);
    }
    for index in 0..1000 {
        let name = std::format!("key{index}");
        cache.delete(key(name.as_bytes()), START);
    }
    // Compacted on the way down, the slab is the small one an emptied cache keeps.
    let kept = crate::cache::KEPT_SLAB_ENTRIES * crate::cache::SLAB_ENTRY;
    assert_eq!(
        cache.allocated(),
        empty + kept,
        "a large slab is given back"
    );
}

/// 1 KiB values a 4 MiB cache holds before it evicts one, stored after `cache`'s items.
fn kib_values_held(cache: &mut Cache) -> usize {
    let evicted_before = cache.stats(START).evictions + cache.stats(START).curr_items;
    let value = [b'v'; 1024];
    let mut stored = 0;
    loop {
        let name = std::format!("kib{stored}");
        let outcome = cache.store(StoreMode::Set, key(name.as_bytes()), 0, 0, &value, START);
        assert_eq!(outcome, StoreOutcome::Stored);
        if cache.stats(START).evictions > evicted_before {
            return stored;
        }
        stored += 1;
    }
}

/// A burst of small items deleted gives its slab entries back to the budget: the slab
/// is compacted once fewer than half its entries hold items, so the cache then charges
/// about what a fresh one holding the same items does, and holds as many 1 KiB values.
/// Before, the slab kept every entry the burst grew until the cache emptied: 4 MiB held
/// 35,127 one-byte items; with 100 left, 1.7 MB stayed charged and 2,268 values of 1 KiB
/// fitted, against 3,664 in a fresh cache.
#[test]
fn a_burst_of_deleted_items_gives_its_slab_back() {
    let config = Config {
        max_bytes: 4 << 20,
        ..Config::default()
    };
    let mut cache = Cache::new(config, START);
    let mut stored = 0;
    while cache.stats(START).evictions == 0 {
        let name = std::format!("k{stored}");
        cache.store(StoreMode::Set, key(name.as_bytes()), 0, 0, b"x", START);
        stored += 1;
    }
    assert!(stored > 30_000, "{stored} one-byte items fit");
    let mut fresh = Cache::new(config, START);
    for index in 0..stored {
        let name = std::format!("k{index}");
        if index + 100 < stored {
            cache.delete(key(name.as_bytes()), START);
        } else {
            fresh.store(StoreMode::Set, key(name.as_bytes()), 0, 0, b"x", START);
        }
    }
    assert_eq!(cache.stats(START).curr_items, 100);
    assert_eq!(cache.item_bytes(), fresh.item_bytes());
    // A compaction leaves the slab at most twice the items (`COMPACT_BELOW`).
    let (bytes, fresh_bytes) = (cache.bytes(), fresh.bytes());
    assert!(
        bytes < cache.item_bytes() + 2 * 100 * crate::cache::SLAB_ENTRY,
        "{bytes} bytes held for 100 items, {fresh_bytes} in a fresh cache"
    );
    // The 100 small items are the oldest: evicted before any 1 KiB value. The slabs grow
    // by eighths from different sizes, so their last growths differ a little (5 values).
    let held = kib_values_held(&mut cache);
    let fresh_held = kib_values_held(&mut Cache::new(config, START));
    assert!(
        held + fresh_held / 100 >= fresh_held,
        "{held} values of 1 KiB held, {fresh_held} in a fresh cache"
    );
}

/// The cache against a model of its LRU list over random sets, deletes, reads, touches
/// and evictions, in phases of mostly sets then mostly deletes (down to 30 items), so
/// that the slab grows and is compacted again and again: the cache's LRU list (checked both ways, with the
/// index and the free list) holds the model's keys in the model's order, every key the
/// model holds reads its value, and the evictions take the model's oldest.
#[test]
fn compactions_keep_every_item_and_the_lru_order() {
    let mut rng = Rng(0xc0_ffee);
    let mut compactions = 0;
    for run in 0..8 {
        let config = Config {
            max_bytes: 96 << 10,
            hash_seed: run,
            ..Config::default()
        };
        let mut cache = Cache::new(config, START);
        // The keys, least recently used first, with their values.
        let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut slab_entries = 0;
        for round in 0..6_000 {
            let filling = round / 500 % 2 == 0;
            let name = if rng.below(4) != 0 && !model.is_empty() {
                model[rng.below(model.len())].0.clone()
            } else {
                std::format!("key{}", rng.below(1000)).into_bytes()
            };
            let k = Key::new(&name).unwrap();
            let at = model.iter().position(|(key, _)| *key == name);
            match rng.below(10) {
                0..=6 if !filling && model.len() > 30 => {
                    assert_eq!(cache.delete(k, START), at.is_some());
                    if let Some(at) = at {
                        model.remove(at);
                    }
                }
                7 => {
                    let found = cache.get(k, START).map(|found| found.value.to_vec());
                    assert_eq!(found, at.map(|at| model[at].1.clone()));
                    if let Some(at) = at {
                        let item = model.remove(at);
                        model.push(item);
                    }
                }
                8 => {
                    assert_eq!(cache.touch(k, 0, START), at.is_some());
                    if let Some(at) = at {
                        let item = model.remove(at);
                        model.push(item);
                    }
                }
                _ => {
                    let value = vec![b'a' + rng.below(26) as u8; rng.below(200)];
                    let evicted = cache.stats(START).evictions;
                    let outcome = cache.store(StoreMode::Set, k, 0, 0, &value, START);
                    assert_eq!(outcome, StoreOutcome::Stored);
                    if let Some(at) = at {
                        model.remove(at);
                    }
                    let evicted = (cache.stats(START).evictions - evicted) as usize;
                    model.drain(..evicted);
                    model.push((name.clone(), value));
                }
            }
            let slab = (cache.bytes() - cache.item_bytes()) / crate::cache::SLAB_ENTRY;
            if slab < slab_entries && !model.is_empty() {
                compactions += 1;
            }
            slab_entries = slab;
            if round % 50 == 0 {
                let keys: Vec<Vec<u8>> = model.iter().map(|(key, _)| key.clone()).collect();
                assert_eq!(cache.keys_oldest_first(), keys, "run {run}, round {round}");
            }
        }
        // Read oldest first, every item becomes the newest in turn: the order stays.
        for (name, value) in &model {
            let found = cache
                .get(key(name), START)
                .map(|found| found.value.to_vec());
            assert_eq!(found.as_ref(), Some(value));
        }
        let keys: Vec<Vec<u8>> = model.iter().map(|(key, _)| key.clone()).collect();
        assert_eq!(cache.keys_oldest_first(), keys, "run {run}, at the end");
    }
    assert!(compactions >= 8 * 5, "{compactions} compactions");
}

/// Soak: 10,000 rounds of sets, appends, incrs, touches, deletes, expiries and a delayed
/// `flush_all` every 1,000 rounds on 16 keys, each value a random size; once every item
/// is gone (expired, reclaimed by a read, or deleted), nothing is left counted or
/// allocated for them: the items' count is 0, the slab no larger than after a warm-up
/// that filled and emptied the same keys, and the allocations the slab's and an empty
/// index's: nothing is left.
#[test]
fn ten_thousand_rounds_of_changes_give_every_byte_back() {
    const KEYS: usize = 16;
    let names: Vec<String> = (0..KEYS).map(|k| std::format!("soak-key-{k}")).collect();
    let mut cache = Cache::new(Config::default(), START);
    let mut now = START;
    let value = [b'7'; 4096];
    for name in &names {
        cache.store(StoreMode::Set, key(name.as_bytes()), 0, 0, &value, now);
    }
    for name in &names {
        cache.delete(key(name.as_bytes()), now);
    }
    let bytes = cache.stats(now).bytes;
    assert_eq!(cache.item_bytes(), 0, "the items' count after the warm-up");
    let mut random = Rng(0x50a_cafe);
    for round in 0..10_000 {
        let name = &names[random.below(KEYS)];
        let k = key(name.as_bytes());
        let exptime = [0, 1, 2, 5][random.below(4)];
        if round % 1000 == 999 {
            cache.flush_all(2, now);
        }
        match random.below(8) {
            0 | 1 => {
                let len = random.below(value.len());
                cache.store(StoreMode::Set, k, 0, exptime, &value[..len], now);
            }
            2 => {
                cache.store(StoreMode::Append, k, 0, 0, &value[..random.below(64)], now);
            }
            3 => {
                cache.add_delta(k, 3, round % 2 == 0, now);
            }
            4 => {
                cache.touch(k, exptime, now);
            }
            5 => {
                cache.get(k, now);
            }
            6 => {
                cache.delete(k, now);
            }
            _ => now += 1,
        }
    }
    now += 10;
    for name in &names {
        cache.get(key(name.as_bytes()), now);
        cache.delete(key(name.as_bytes()), now);
    }
    let stats = cache.stats(now);
    assert_eq!(stats.cmd_flush, 10, "a flush_all every 1,000 rounds");
    assert_eq!(stats.curr_items, 0);
    assert_eq!(cache.item_bytes(), 0, "the items' count after the soak");
    assert!(
        stats.bytes <= bytes,
        "{} bytes counted, {bytes} after the warm-up",
        stats.bytes
    );
    // The slab is all an empty cache's count holds; its allocations are the slab and the
    // index an empty cache has.
    let index = Cache::new(Config::default(), START).allocated();
    assert_eq!(
        cache.allocated(),
        stats.bytes as usize + index,
        "the allocations after the soak"
    );
}
