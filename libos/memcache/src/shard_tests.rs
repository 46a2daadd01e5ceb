//! Host tests of [`Shards`]: every command means what it means on one [`Cache`], each
//! shard keeps its share of the budget, `stats` sums the shards.

use super::*;
use alloc::format;
use alloc::vec::Vec;

/// A Unix time well above 30 days.
const START: u64 = 1_700_000_000;

/// What `stats` needs of the server.
const INFO: ServerInfo = ServerInfo {
    pid: 1,
    threads: 2,
    curr_connections: 1,
    total_connections: 1,
};

/// Serves `input` whole on `store` at `now` and returns the answers.
fn serve(store: &mut impl Store, input: &str, now: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let served = Session::new().serve(store, input.as_bytes(), now, &INFO, &mut out);
    assert_eq!(served.consumed, input.len(), "all of {input:?} is used");
    out
}

/// Every command, but no `gets`, `stats`, meta `c` or `me` of an item (whose answers hold
/// cas uniques and clocks):
/// keys spread over the shards, each answered as by one cache.
const SCRIPT: &[&str] = &[
    "set a 5 0 3\r\nabc\r\n",
    "set b 0 0 1\r\n7\r\n",
    "get a b c\r\n",
    "add a 0 0 1\r\nx\r\n",
    "add c 1 0 2\r\nxy\r\n",
    "replace d 0 0 1\r\nz\r\n",
    "replace c 2 0 2\r\nzz\r\n",
    "append a 0 0 2\r\nde\r\n",
    "prepend a 0 0 2\r\n12\r\n",
    "get a c\r\n",
    "incr b 5\r\n",
    "decr b 100\r\n",
    "incr a 1\r\n",
    "incr nokey 1\r\n",
    "touch a 100\r\n",
    "touch nokey 100\r\n",
    "gat 0 a b\r\n",
    "delete c\r\n",
    "delete c\r\n",
    "set q 0 0 1 noreply\r\nq\r\nget q\r\n",
    "cas q 0 0 1 999\r\nr\r\n",
    "cas nokey 0 0 1 1\r\nr\r\n",
    "version\r\n",
    "flush_all\r\n",
    "get a b q\r\n",
    "set e 0 -1 1\r\ne\r\nget e\r\n",
    "ms m 2 F3 T100\r\nhi\r\nmg m v f t s k Oo\r\nmg nokey v q\r\nmn\r\n",
    "mg v N30 v\r\nmg v v t\r\nms v 1 MA\r\n!\r\nmg v v\r\n",
    "ms m 1 MA\r\n!\r\nmd m q\r\nmd m k\r\n",
    "ma n N0 J5 v\r\nma n D3 MD v t\r\nma nokey Oo\r\nme nokey\r\n",
];

#[test]
fn every_command_answers_as_on_one_cache() {
    let config = Config::default();
    let mut one = Cache::new(config, START);
    let shards = Shards::new(config, 16, START);
    let mut many = &shards;
    for (i, line) in SCRIPT.iter().enumerate() {
        let now = START + i as u64;
        assert_eq!(
            String::from_utf8(serve(&mut many, line, now)).unwrap(),
            String::from_utf8(serve(&mut one, line, now)).unwrap(),
            "{line:?}"
        );
    }
    // The script's keys lie in more than one shard, so the comparison crossed shards.
    let used: std::collections::BTreeSet<_> = ["a", "b", "c", "d", "q", "m", "n", "v", "nokey"]
        .iter()
        .map(|key| shards.shard_of(Key::new(key.as_bytes()).unwrap()))
        .collect();
    assert!(used.len() > 1, "every key of the script in shard {used:?}");
}

#[test]
fn cas_uniques_work_within_a_shard() {
    let shards = Shards::new(Config::default(), 16, START);
    let mut store = &shards;
    for key in ["x", "y", "z"] {
        serve(&mut store, &format!("set {key} 0 0 1\r\n1\r\n"), START);
        let answer =
            String::from_utf8(serve(&mut store, &format!("gets {key}\r\n"), START)).unwrap();
        let unique = answer.split_whitespace().nth(4).unwrap();
        let stale = format!("cas {key} 0 0 1 {unique}\r\n2\r\n");
        assert_eq!(serve(&mut store, &stale, START), b"STORED\r\n");
        assert_eq!(serve(&mut store, &stale, START), b"EXISTS\r\n");
    }
}

#[test]
fn each_shard_keeps_its_share_of_the_budget() {
    let config = Config {
        max_bytes: 64 * 1024,
        ..Config::default()
    };
    let shards = Shards::new(config, 8, START);
    let mut store = &shards;
    for i in 0..2000 {
        serve(
            &mut store,
            &format!("set key{i} 0 0 100\r\n{:0100}\r\n", i),
            START,
        );
    }
    let total = store.stats(START);
    assert_eq!(total.limit_maxbytes, 64 * 1024);
    assert!(total.bytes <= 64 * 1024);
    assert!(total.evictions > 0);
    assert_eq!(total.cmd_set, 2000);
    let mut items = 0;
    for index in 0..shards.count() {
        let shard = shards.shard_stats(index, START);
        assert_eq!(shard.limit_maxbytes, 8 * 1024);
        assert!(
            shard.bytes <= 8 * 1024,
            "shard {index}: {} bytes",
            shard.bytes
        );
        assert!(shard.evictions > 0, "every shard evicts its own LRU");
        items += shard.curr_items;
    }
    assert_eq!(total.curr_items, items);
    assert_eq!(total.curr_items + total.evictions, 2000);
}

#[test]
fn stats_sum_the_shards_and_flush_counts_once() {
    let shards = Shards::new(Config::default(), 4, START);
    let mut store = &shards;
    for i in 0..10 {
        serve(
            &mut store,
            &format!("set k{i} 0 0 1\r\n1\r\nget k{i} nope{i}\r\n"),
            START,
        );
    }
    serve(&mut store, "flush_all\r\n", START + 5);
    let stats = store.stats(START + 7);
    assert_eq!(
        (
            stats.cmd_set,
            stats.get_hits,
            stats.get_misses,
            stats.cmd_get
        ),
        (10, 10, 10, 20)
    );
    assert_eq!((stats.cmd_flush, stats.curr_items), (1, 0));
    assert_eq!((stats.uptime, stats.time), (7, START + 7));
    let text = String::from_utf8(serve(&mut store, "stats\r\n", START + 7)).unwrap();
    assert!(text.contains("STAT cmd_set 10\r\n"), "{text}");
    assert_eq!(
        serve(&mut store, "stats reset\r\n", START + 7),
        b"RESET\r\n"
    );
    assert_eq!(store.stats(START + 7).cmd_set, 0);
}

#[test]
fn shards_are_used_from_several_threads_at_once() {
    let shards = std::sync::Arc::new(Shards::new(Config::default(), 64, START));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let shards = shards.clone();
            std::thread::spawn(move || {
                let mut store = &*shards;
                for i in 0..500 {
                    serve(
                        &mut store,
                        &format!("set t{t}k{i} 0 0 1\r\n1\r\nincr shared 1\r\n"),
                        START,
                    );
                }
            })
        })
        .collect();
    serve(&mut &*shards, "set shared 0 0 1\r\n0\r\n", START);
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = (&*shards).stats(START);
    assert_eq!(stats.curr_items, 2001);
    assert_eq!(stats.incr_hits + stats.incr_misses, 2000);
    let count: u64 = String::from_utf8(serve(&mut &*shards, "get shared\r\n", START))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(count, stats.incr_hits, "no increment was lost");
}
