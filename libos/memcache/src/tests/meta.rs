//! Host tests of the meta commands: answers byte for byte as memcached 1.6's
//! protocol.txt documents them (each also checked against memcached 1.6.18 itself,
//! where it behaves as documented), the stream kept in step after every error, and
//! nothing else lost.

use super::*;

/// A server holding `a` (value `1`), which no refused request may lose.
fn with_a() -> Server {
    let mut server = Server::new();
    assert_eq!(server.say("set a 0 0 1\r\n1\r\n"), "STORED\r\n");
    server
}

/// `a` is still there, unchanged.
const A_IS_THERE: &str = "VALUE a 0 1\r\n1\r\nEND\r\n";

#[test]
fn mn_answers_mn_and_ends_a_pipeline_of_quiet_gets() {
    let mut server = with_a();
    assert_eq!(server.say("mn\r\n"), "MN\r\n");
    // As memcached does, whatever follows it is ignored.
    assert_eq!(server.say("mn O1 k\r\n"), "MN\r\n");
    assert_eq!(
        server.say("mg a v q k\r\nmg nope v q k\r\nmg b v q\r\nmn\r\n"),
        "VA 1 ka\r\n1\r\nMN\r\n"
    );
}

#[test]
fn meta_get_returns_the_flags_asked_for_in_order() {
    let mut server = Server::new();
    assert_eq!(server.say("ms foo 2 T90 F1\r\nhi\r\n"), "HD\r\n");
    assert_eq!(
        server.say("mg foo t f v s c k h l O123\r\n"),
        "VA 2 t90 f1 s2 c1 kfoo h0 l0 O123\r\nhi\r\n"
    );
    // Without `v`, `HD` and no data block; `h` and `l` tell the state before this read.
    server.now += 7;
    assert_eq!(server.say("mg foo h l t\r\n"), "HD h1 l7 t83\r\n");
    assert_eq!(server.say("mg foo\r\n"), "HD\r\n");
    assert_eq!(
        server.say("mg foo O1 k O2\r\n"),
        "CLIENT_ERROR duplicate flag\r\n"
    );
    // A miss is `EN`, with the opaque and key echoed; `q` hides it (not a hit's `HD`).
    assert_eq!(server.say("mg nope v\r\n"), "EN\r\n");
    assert_eq!(server.say("mg nope v k Oo9\r\n"), "EN knope Oo9\r\n");
    assert_eq!(server.say("mg nope v q k\r\n"), "");
    assert_eq!(server.say("mg foo q\r\n"), "HD\r\n");
    // An empty opaque and one of 32 bytes are echoed; 33 are too long.
    assert_eq!(server.say("mg foo O\r\n"), "HD O\r\n");
    let opaque = std::format!("O{}", "x".repeat(31));
    assert_eq!(
        server.say(&std::format!("mg foo {opaque}\r\n")),
        std::format!("HD {opaque}\r\n")
    );
    assert_eq!(
        server.say(&std::format!("mg foo {opaque}x\r\n")),
        "CLIENT_ERROR opaque token too long\r\n"
    );
    // Items stored by the classic commands read alike: flags 0 unless set, no TTL.
    server.say("set b 7 0 3\r\nxyz\r\n");
    assert_eq!(server.say("mg b f t s v\r\n"), "VA 3 f7 t-1 s3\r\nxyz\r\n");
    // Spaces between tokens are skipped, as memcached's tokenizer does.
    assert_eq!(server.say("mg  b   v    f\r\n"), "VA 3 f7\r\nxyz\r\n");
    let stats = server.cache.stats(server.now);
    assert_eq!(
        (stats.cmd_get, stats.get_hits, stats.get_misses),
        (11, 8, 3)
    );
}

/// `u` reads without marking the item read, its last access and LRU place kept; any
/// other read (classic ones too) marks it.
#[test]
fn meta_get_u_leaves_the_item_unread() {
    let mut server = Server::new();
    server.say("ms a 1\r\nx\r\nms b 1\r\ny\r\n");
    server.now += 5;
    assert_eq!(server.say("mg a v u h l\r\n"), "VA 1 h0 l5\r\nx\r\n");
    assert_eq!(server.say("mg a h l\r\n"), "HD h0 l5\r\n");
    assert_eq!(server.say("mg a h l\r\n"), "HD h1 l0\r\n");
    for read in ["get b\r\n", "gat 0 b\r\n", "touch b 0\r\n"] {
        server.say("ms b 1\r\ny\r\n");
        server.now += 2;
        server.say(read);
        assert_eq!(server.say("mg b h l u\r\n"), "HD h1 l0\r\n", "{read}");
    }
    // A store makes a new item, unread; `incr` and `ma` change the number in place, as
    // memcached does, the item read as before and its last access kept.
    server.say("append a 0 0 1\r\n!\r\n");
    assert_eq!(server.say("mg a h u\r\n"), "HD h0\r\n");
    server.say("set n 0 0 1\r\n1\r\nget n\r\n");
    server.now += 3;
    server.say("incr n 1\r\nma n\r\n");
    assert_eq!(server.say("mg n h l v u\r\n"), "VA 1 h1 l3\r\n3\r\n");
    // `u` keeps the LRU place: in a cache full at three items, `a` read with `u` is
    // still the oldest and goes first.
    let item = 1 + 1 + ITEM_OVERHEAD;
    let mut server = Server::with(Config {
        max_bytes: 3 * item + item / 2,
        ..Config::default()
    });
    server.say("ms a 1\r\nx\r\nms b 1\r\nx\r\nms c 1\r\nx\r\n");
    server.say("mg a u\r\nms d 1\r\nx\r\n");
    assert_eq!(server.say("mg a\r\nmg b\r\n"), "EN\r\nHD\r\n");
}

#[test]
fn meta_get_touches_vivifies_and_wins_recaches() {
    let mut server = Server::new();
    server.say("ms a 1 T100\r\nx\r\n");
    // `T` touches; a `t` before it reports the TTL the item had, one after the new.
    assert_eq!(server.say("mg a t T30\r\n"), "HD t100\r\n");
    assert_eq!(server.say("mg a T20 t\r\n"), "HD t20\r\n");
    assert_eq!(server.say("mg a t\r\n"), "HD t20\r\n");
    assert_eq!(server.say("mg nope T30\r\n"), "EN\r\n");
    let stats = server.cache.stats(server.now);
    assert_eq!(
        (
            stats.cmd_touch,
            stats.touch_hits,
            stats.touch_misses,
            stats.cmd_get
        ),
        (2, 2, 0, 2)
    );
    // `N` makes an empty item on a miss, and this client wins it (`W`); later clients
    // see it won (`Z`) until it is stored again.
    assert_eq!(server.say("mg n N30 v t c\r\n"), "VA 0 t30 c2 W\r\n\r\n");
    assert_eq!(server.say("mg n N30 v t\r\n"), "VA 0 t30 Z\r\n\r\n");
    assert_eq!(server.say("mg n s\r\n"), "HD s0 Z\r\n");
    assert_eq!(
        server.say("ms n 2\r\nok\r\nmg n v\r\n"),
        "HD\r\nVA 2\r\nok\r\n"
    );
    // Its TTL is set where `N` stands among the flags.
    assert_eq!(server.say("mg m t N30\r\n"), "HD t-1 W\r\n");
    assert_eq!(server.say("mg m t\r\n"), "HD t30 Z\r\n");
    // `R`: the first client to find less TTL left than the token wins, once.
    server.say("ms r 1 T10\r\nx\r\nms forever 1\r\nx\r\n");
    assert_eq!(server.say("mg r R5 t\r\n"), "HD t10\r\n");
    assert_eq!(server.say("mg r R30 t\r\n"), "HD t10 W\r\n");
    assert_eq!(server.say("mg r R30 t\r\n"), "HD t10 Z\r\n");
    assert_eq!(server.say("mg forever R30\r\n"), "HD\r\n");
    // A `T` before `R` is what `R` compares.
    assert_eq!(
        server.say("ms s 1 T10\r\nx\r\nmg s T60 R30\r\n"),
        "HD\r\nHD\r\n"
    );
    assert_eq!(
        server.say("ms s 1 T10\r\nx\r\nmg s R30 T60 t\r\n"),
        "HD\r\nHD t60 W\r\n"
    );
    // No room even for an empty item: a miss.
    let mut tiny = Server::with(Config {
        max_bytes: ITEM_OVERHEAD,
        ..Config::default()
    });
    assert_eq!(tiny.say("mg n N30 v\r\n"), "EN\r\n");
}

/// `mg` with `N` counts the item it makes as a hit (`get_hits`, or `touch_hits` with
/// `T`), as memcached counts it; with no room to make one it is a miss.
#[test]
fn meta_get_counts_the_item_n_makes_as_a_hit() {
    let mut server = Server::new();
    assert_eq!(
        server.say("mg n N30\r\nmg t N30 T60\r\n"),
        "HD W\r\nHD W\r\n"
    );
    let stats = server.cache.stats(server.now);
    assert_eq!((stats.cmd_get, stats.get_hits, stats.get_misses), (1, 1, 0));
    assert_eq!(
        (stats.cmd_touch, stats.touch_hits, stats.touch_misses),
        (1, 1, 0)
    );
    let mut tiny = Server::with(Config {
        max_bytes: ITEM_OVERHEAD,
        ..Config::default()
    });
    assert_eq!(tiny.say("mg n N30\r\nmg t N30 T60\r\n"), "EN\r\nEN\r\n");
    let stats = tiny.cache.stats(tiny.now);
    assert_eq!((stats.get_hits, stats.get_misses), (0, 2));
    assert_eq!((stats.touch_hits, stats.touch_misses), (0, 0));
}

/// `mg` with `T` that finds no item is a `get` miss, and one that finds an expired item
/// counts it in `get_expired`, as memcached's process_mget_command counts them (a touch
/// only once `T` has changed an item).
#[test]
fn meta_get_with_t_counts_a_miss_and_an_expired_item_as_a_get() {
    let mut server = Server::new();
    server.say("ms gone 1 T5\r\nx\r\n");
    server.now += 10;
    assert_eq!(
        server.say("mg nope T30\r\nmg gone T30 v\r\n"),
        "EN\r\nEN\r\n"
    );
    let stats = server.cache.stats(server.now);
    assert_eq!(
        (stats.cmd_get, stats.get_misses, stats.get_expired),
        (2, 2, 1)
    );
    assert_eq!(
        (stats.cmd_touch, stats.touch_hits, stats.touch_misses),
        (0, 0, 0)
    );
}

/// `ms`'s `s` reports the stored value's size where it stands among the flags, the
/// joined value's after an append or prepend, the value sent when nothing was stored, as
/// memcached's meta set does.
#[test]
fn meta_set_s_reports_the_stored_size() {
    let mut server = Server::new();
    assert_eq!(server.say("ms bar 2 s c\r\nhi\r\n"), "HD s2 c1\r\n");
    assert_eq!(server.say("ms bar 3 MA c s\r\nthe\r\n"), "HD c2 s5\r\n");
    assert_eq!(server.say("ms bar 1 MP s\r\n>\r\n"), "HD s6\r\n");
    assert_eq!(server.say("mg bar v\r\n"), "VA 6\r\n>hithe\r\n");
    assert_eq!(server.say("ms bar 4 ME s c\r\nnope\r\n"), "NS s4 c0\r\n");
    assert_eq!(server.say("ms none 1 MA s\r\nx\r\n"), "NS s1\r\n");
}

/// `ms`'s `N` in append or prepend mode stores the value as a new item on a miss, its
/// TTL `N`'s (`T`'s ignored), as memcached's autovivifying append and prepend do
/// (protocol.txt: "if in append mode, autovivify on miss with supplied TTL"); on a hit
/// the value is joined as without it, and in the other modes it is ignored.
#[test]
fn meta_set_n_vivifies_an_append_or_prepend_on_a_miss() {
    let mut server = Server::new();
    assert_eq!(server.say("ms foo 2 MA N30\r\nhi\r\n"), "HD\r\n");
    assert_eq!(server.say("mg foo v t\r\n"), "VA 2 t30\r\nhi\r\n");
    assert_eq!(
        server.say("ms pre 2 MP N30 T99 F7 s\r\nhi\r\n"),
        "HD s2\r\n"
    );
    assert_eq!(server.say("mg pre v t f\r\n"), "VA 2 t30 f7\r\nhi\r\n");
    // A hit joins the value, the item keeping its flags and TTL.
    assert_eq!(server.say("ms foo 1 MA N99 F3\r\n!\r\n"), "HD\r\n");
    assert_eq!(server.say("ms pre 1 MP N99\r\n<\r\n"), "HD\r\n");
    assert_eq!(
        server.say("mg foo v t f\r\nmg pre v t f\r\n"),
        "VA 3 t30 f0\r\nhi!\r\nVA 3 t30 f7\r\n<hi\r\n"
    );
    // Replace ignores it.
    assert_eq!(server.say("ms none 1 MR N30\r\nx\r\n"), "NS\r\n");
    let stats = server.cache.stats(server.now);
    assert_eq!((stats.cmd_set, stats.total_items), (5, 4));
}

#[test]
fn meta_set_stores_in_every_mode() {
    let mut server = Server::new();
    assert_eq!(server.say("ms a 3 T100 F5\r\nabc\r\n"), "HD\r\n");
    assert_eq!(server.say("get a\r\n"), "VALUE a 5 3\r\nabc\r\nEND\r\n");
    assert_eq!(server.say("mg a t\r\n"), "HD t100\r\n");
    // `k`, `O`, `c` and `s` are echoed in order, `c` the new cas unique (0 when nothing
    // was stored), `s` the value's size; other flags are not (`f`, `t`).
    assert_eq!(
        server.say("ms a 3 c k f O5 s t\r\nxyz\r\n"),
        "HD c2 ka O5 s3\r\n"
    );
    assert_eq!(server.say("ms a 1 ME c Oo\r\nx\r\n"), "NS c0 Oo\r\n");
    assert_eq!(server.say("ms b 1 MR\r\nx\r\n"), "NS\r\n");
    assert_eq!(server.say("ms b 1 MA\r\nx\r\n"), "NS\r\n");
    assert_eq!(server.say("ms b 1 MP\r\nx\r\n"), "NS\r\n");
    assert_eq!(server.say("ms b 2 ME F3\r\nbb\r\n"), "HD\r\n");
    assert_eq!(server.say("ms b 1 MR F4\r\nB\r\n"), "HD\r\n");
    // Append and prepend keep the flags and TTL.
    assert_eq!(
        server.say("ms b 1 MA F9 T5\r\n>\r\nms b 1 MP\r\n<\r\nmg b v f t\r\n"),
        "HD\r\nHD\r\nVA 3 f4 t-1\r\n<B>\r\n"
    );
    assert_eq!(
        server.say("ms b 1 MS\r\nS\r\nmg b v\r\n"),
        "HD\r\nVA 1\r\nS\r\n"
    );
    // `C`: a set or replace is a `cas`; an append or prepend checks it (unless 0); an
    // add ignores it.
    assert_eq!(server.say("ms a 1 C999\r\nx\r\n"), "EX\r\n");
    assert_eq!(server.say("ms zz 1 C2 c k\r\nx\r\n"), "NF c0 kzz\r\n");
    assert_eq!(server.say("ms zz 1 MR C2\r\nx\r\n"), "NF\r\n");
    assert_eq!(server.say("ms a 1 C2 c\r\nx\r\n"), "HD c8\r\n");
    assert_eq!(server.say("ms a 1 MA C2\r\ny\r\n"), "EX\r\n");
    assert_eq!(server.say("ms a 1 MA C8\r\ny\r\n"), "HD\r\n");
    assert_eq!(server.say("ms a 1 MP C0\r\nw\r\n"), "HD\r\n");
    assert_eq!(server.say("ms a 1 ME C1\r\nv\r\n"), "NS\r\n");
    assert_eq!(server.say("mg a v\r\n"), "VA 3\r\nwxy\r\n");
    // `q` hides `HD` only.
    assert_eq!(
        server.say("ms a 1 q\r\nx\r\nms a 1 q ME\r\nx\r\nms a 1 q C1\r\nx\r\nmn\r\n"),
        "NS\r\nEX\r\nMN\r\n"
    );
    // Empty values; values holding `\r\n`.
    assert_eq!(
        server.say("ms e 0\r\n\r\nmg e v s\r\n"),
        "HD\r\nVA 0 s0\r\n\r\n"
    );
    assert_eq!(
        server.say("ms e 4\r\n\r\n\r\n\r\nget e\r\n"),
        "HD\r\nVALUE e 0 4\r\n\r\n\r\n\r\nEND\r\n"
    );
    let stats = server.cache.stats(server.now);
    assert_eq!(
        (stats.cas_hits, stats.cas_badval, stats.cas_misses),
        (1, 2, 2)
    );
}

#[test]
fn meta_set_refusals_keep_the_stream_in_step() {
    let mut server = with_a();
    // A block of the wrong length: `CLIENT_ERROR bad data chunk`, the line and as many
    // bytes as it named used, as for `set` (the rest is a line of its own).
    assert_eq!(
        server.say("ms k 2\r\nabc\r\nget a\r\n"),
        std::format!("CLIENT_ERROR bad data chunk\r\nERROR\r\n{A_IS_THERE}")
    );
    assert_eq!(
        server.say("ms k 4\r\nabc\r\nmn\r\nget a\r\n"),
        std::format!("CLIENT_ERROR bad data chunk\r\nERROR\r\n{A_IS_THERE}")
    );
    // A refused line's block is skipped, however it is refused: its bytes, which spell
    // a command here, never run.
    for line in [
        "ms k 17 zz",
        "ms k 17 v v",
        "ms k 17 MZ",
        "ms k 17 MEE",
        "ms k 17 Tx",
        "ms k 17 F4294967296",
        "ms k 17 b",
        "ms k 17 c f h k l O1 q s t u v P L T1 N1 R1 F1",
    ] {
        let input = std::format!("{line}\r\nflush_all noreply\r\nget a\r\n");
        let out = server.say(&input);
        assert!(
            out.starts_with("CLIENT_ERROR ") && out.ends_with(A_IS_THERE),
            "{line}: {out}"
        );
        assert_eq!(out.matches("\r\n").count(), 4, "{line}: {out}");
    }
    let key = "k".repeat(MAX_KEY + 1);
    assert_eq!(
        server.say(&std::format!(
            "ms {key} 17\r\nflush_all noreply\r\nget a\r\n"
        )),
        std::format!("CLIENT_ERROR bad command line format\r\n{A_IS_THERE}")
    );
    // Without a datalen there is no block to skip: the next line is a command.
    assert_eq!(server.say("ms\r\n"), "ERROR\r\n");
    for line in ["ms k", "ms k x", "ms k -1", "ms k 2147483646 T0"] {
        assert_eq!(
            server.say(&std::format!("{line}\r\nget a\r\n")),
            std::format!("CLIENT_ERROR bad command line format\r\n{A_IS_THERE}"),
            "{line}"
        );
    }
    // A block above the item size limit is refused at once and streams past, never
    // held; a set of `k` and an append to `a` leave no old value (below).
    server.say("ms k 1\r\nk\r\n");
    let mut request = b"ms k 2000000 T0\r\n".to_vec();
    request.resize(request.len() + 2_000_000, b'z');
    request.extend_from_slice(b"\r\nms a 2000000 MA\r\n");
    request.resize(request.len() + 2_000_000, b'z');
    request.extend_from_slice(b"\r\nmg k\r\nget a\r\n");
    let too_large = "SERVER_ERROR object too large for cache\r\n";
    assert_eq!(
        text(&server.in_pieces(&request)),
        std::format!("{too_large}{too_large}EN\r\nEND\r\n")
    );
    assert_eq!(server.cache.stats(server.now).store_too_large, 2);
    server.say("set a 0 0 1\r\n1\r\n");
    // Byte at a time, the same.
    assert_eq!(
        text(&server.byte_at_a_time(b"ms k 5 v v\r\nget a\r\nget a\r\nms k 1\r\nx\r\n")),
        std::format!("CLIENT_ERROR duplicate flag\r\n{A_IS_THERE}HD\r\n")
    );
}

/// A meta set whose item cannot be made, its value above the item size limit or key
/// and value alone above the budget, removes the key's old item whatever its mode, as
/// memcached's meta set does (a classic store removes it for `set` only): the refused
/// value must not leave a stale one readable.
#[test]
fn a_meta_set_refused_for_its_size_removes_the_old_item_in_every_mode() {
    let item = 1 + 1 + ITEM_OVERHEAD;
    let small_items = Config {
        max_value: 10,
        ..Config::default()
    };
    let small_budget = Config {
        max_bytes: 4 * item,
        ..Config::default()
    };
    let too_large = "SERVER_ERROR object too large for cache\r\n";
    let no_memory = "SERVER_ERROR out of memory storing object\r\n";
    let above_the_budget = "x".repeat(4 * item - ITEM_OVERHEAD);
    for (config, value, refusal) in [
        (small_items, "y".repeat(11), too_large),
        (small_budget, above_the_budget, no_memory),
    ] {
        let mut server = Server::with(config);
        for mode in [
            "", "MS", "ME", "MA", "MP", "MR", "C1", "MR C1", "MA C1", "I C1",
        ] {
            server.say("ms a 1\r\n1\r\n");
            let line = std::format!("ms a {} {mode}\r\n{value}\r\nmg a v\r\n", value.len());
            assert_eq!(server.say(&line), std::format!("{refusal}EN\r\n"), "{mode}");
        }
        let stats = server.cache.stats(server.now);
        assert_eq!(stats.store_too_large + stats.store_no_memory, 10);
        // Only the stores made count, as memcached counts set_cmds.
        assert_eq!(stats.cmd_set, 10);
    }
    // A classic append too large keeps the old item, as memcached's does.
    let mut server = Server::with(small_items);
    server.say("ms a 1\r\n1\r\n");
    assert_eq!(
        server.say("append a 0 0 11\r\nyyyyyyyyyyy\r\nget a\r\n"),
        std::format!("{too_large}{A_IS_THERE}")
    );
}

#[test]
fn meta_delete_answers_and_echoes() {
    let mut server = with_a();
    server.say("ms k 1\r\nx\r\n");
    assert_eq!(server.say("md k C999 k O2\r\n"), "EX kk O2\r\n");
    assert_eq!(server.say("md k k O2 T5\r\n"), "HD kk O2\r\n");
    assert_eq!(server.say("md k k O2\r\n"), "NF kk O2\r\n");
    assert_eq!(server.say("mg k\r\n"), "EN\r\n");
    // `q` hides `HD` only, as protocol.txt says (and memcached does).
    server.say("ms k 1\r\nx\r\n");
    assert_eq!(
        server.say("md k q\r\nmd k q\r\nms k 1\r\nx\r\nmd k q C9\r\nmn\r\n"),
        "NF\r\nHD\r\nEX\r\nMN\r\n"
    );
    assert_eq!(server.say("md k C4 q\r\nmg k\r\n"), "EN\r\n");
    assert_eq!(server.say("get a\r\n"), A_IS_THERE);
    let stats = server.cache.stats(server.now);
    assert_eq!((stats.delete_hits, stats.delete_misses), (3, 4));
}

#[test]
fn meta_arithmetic_increments_decrements_and_creates() {
    let mut server = Server::new();
    server.say("ms n 2 T100\r\n10\r\n");
    assert_eq!(server.say("ma n\r\n"), "HD\r\n");
    assert_eq!(server.say("ma n v\r\n"), "VA 2\r\n12\r\n");
    assert_eq!(server.say("ma n D8 MI v\r\n"), "VA 2\r\n20\r\n");
    assert_eq!(server.say("ma n D5 M+ v\r\n"), "VA 2\r\n25\r\n");
    assert_eq!(server.say("ma n MD v\r\n"), "VA 2\r\n24\r\n");
    assert_eq!(
        server.say("ma n M- D100 v t c\r\n"),
        "VA 1 t100 c7\r\n0\r\n"
    );
    assert_eq!(
        server.say("ma n D18446744073709551615 MI v\r\n"),
        "VA 20\r\n18446744073709551615\r\n"
    );
    assert_eq!(server.say("ma n v\r\n"), "VA 1\r\n0\r\n");
    // `T` at its place: a `t` before it reports the old TTL.
    assert_eq!(server.say("ma n t T30\r\n"), "HD t100\r\n");
    assert_eq!(server.say("mg n t v\r\n"), "VA 1 t30\r\n1\r\n");
    assert_eq!(server.say("ma n MD T20 t v\r\n"), "VA 1 t20\r\n0\r\n");
    assert_eq!(server.say("ma n v\r\n"), "VA 1\r\n1\r\n");
    // A miss is `NF` (with the opaque and key), unless `N` creates the item: with value
    // `J` (0 by default), the delta not applied, its TTL set where `N` stands.
    assert_eq!(server.say("ma nope k O3\r\n"), "NF knope O3\r\n");
    assert_eq!(server.say("ma new N0 J5 v t\r\n"), "VA 1 t-1\r\n5\r\n");
    assert_eq!(server.say("ma new2 t N60 v\r\n"), "VA 1 t-1\r\n0\r\n");
    assert_eq!(server.say("ma new2 v t\r\n"), "VA 1 t60\r\n1\r\n");
    // `C`: only if the cas unique matches (0: no check, as memcached does).
    assert_eq!(server.say("ma n C999 k O1\r\n"), "EX kn O1\r\n");
    assert_eq!(server.say("ma n C0 v c\r\n"), "VA 1 c16\r\n2\r\n");
    assert_eq!(server.say("ma n C16 v c\r\n"), "VA 1 c17\r\n3\r\n");
    // `q` hides a success, as memcached's process_marithmetic_command does: `HD`, and
    // the `VA` asked for with `v` too; `NF` and `EX` are sent.
    assert_eq!(
        server.say("ma n q\r\nma n q v\r\nma nope q\r\nma n q C1\r\nmn\r\n"),
        "NF\r\nEX\r\nMN\r\n"
    );
    assert_eq!(server.say("ma n v\r\n"), "VA 1\r\n6\r\n");
    // So is the answer for an item `N` makes.
    assert_eq!(
        server.say("ma made N0 q\r\nma made2 N0 J7 q v\r\nma made q v\r\nmn\r\n"),
        "MN\r\n"
    );
    assert_eq!(
        server.say("mg made v\r\nmg made2 v\r\n"),
        "VA 1\r\n1\r\nVA 1\r\n7\r\n"
    );
    // A value that is no number is refused, and kept.
    server.say("ms s 3\r\nabc\r\n");
    assert_eq!(
        server.say("ma s v\r\nmg s v\r\n"),
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\nVA 3\r\nabc\r\n"
    );
    let stats = server.cache.stats(server.now);
    assert_eq!(
        (stats.incr_hits, stats.decr_hits, stats.incr_misses),
        (15, 3, 2)
    );
    // No room for the item `N` would create.
    let mut tiny = Server::with(Config {
        max_bytes: ITEM_OVERHEAD,
        ..Config::default()
    });
    assert_eq!(
        tiny.say("ma n N0 v\r\n"),
        "SERVER_ERROR Out of memory allocating new item\r\n"
    );
}

#[test]
fn meta_debug_shows_the_item() {
    let mut server = Server::new();
    server.say("ms a 1 T100\r\nx\r\n");
    let size = 2 + ITEM_OVERHEAD;
    assert_eq!(
        server.say("me a\r\n"),
        std::format!("ME a exp=100 la=0 cas=1 fetch=no size={size}\r\n")
    );
    server.now += 4;
    server.say("mg a\r\nms b 1\r\ny\r\n");
    server.now += 3;
    // `me` reads without touching: neither `la` nor `fetch` change.
    for _ in 0..2 {
        assert_eq!(
            server.say("me a\r\n"),
            std::format!("ME a exp=93 la=3 cas=1 fetch=yes size={size}\r\n")
        );
    }
    assert_eq!(
        server.say("me b\r\n"),
        std::format!("ME b exp=-1 la=3 cas=2 fetch=no size={size}\r\n")
    );
    assert_eq!(
        server.say("me YQ== b\r\n"),
        std::format!("ME YQ== exp=93 la=3 cas=1 fetch=yes size={size}\r\n")
    );
    assert_eq!(server.say("me nope\r\n"), "EN\r\n");
    assert_eq!(
        server.say("me\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        server.say("me a b\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    // As memcached's process_meta_command: only a `b` right after the key counts, and
    // the rest of the line is ignored.
    let plain = std::format!("ME a exp=93 la=3 cas=1 fetch=yes size={size}\r\n");
    assert_eq!(server.say("me a x\r\n"), plain);
    assert_eq!(server.say("me a x b\r\n"), plain);
    assert_eq!(server.say("me a bx\r\n"), plain);
    assert_eq!(
        server.say("me YQ== b b extra\r\n"),
        std::format!("ME YQ== exp=93 la=3 cas=1 fetch=yes size={size}\r\n")
    );
    let stats = server.cache.stats(server.now);
    assert_eq!((stats.cmd_get, stats.get_hits), (1, 1));
}

/// An item costs [`ITEM_OVERHEAD`], 112 bytes, beside its key and value: its expiry and
/// last read are kept in 32 bits counted from the cache's epoch, 68 years before it
/// started, and every 32-bit exptime, a clock set back, one decades on and one counting
/// from boot read as they did in 64 bits.
#[test]
fn item_times_in_32_bits_keep_every_exptime_and_clock() {
    assert_eq!(ITEM_OVERHEAD, 112);
    let mut server = Server::new();
    assert_eq!(
        server.say("ms a 1\r\nx\r\nme a\r\n"),
        "HD\r\nME a exp=-1 la=0 cas=1 fetch=no size=114\r\n"
    );
    // The latest exptime, a Unix time in 2038; one in the past and a negative one
    // expire at once.
    let latest = u64::from(i32::MAX.unsigned_abs());
    server.say(&std::format!("set f 0 {latest} 1\r\nx\r\n"));
    assert_eq!(
        server.say("mg f t\r\n"),
        std::format!("HD t{}\r\n", latest - START)
    );
    assert_eq!(
        server.say("set p 0 1000000000 1\r\nx\r\nset n 0 -1 1\r\nx\r\nget p n\r\n"),
        "STORED\r\nSTORED\r\nEND\r\n"
    );
    let year = 365 * 24 * 60 * 60;
    for (now, f) in [
        (
            START - year,
            std::format!("HD t{}\r\n", latest - START + year),
        ),
        (START + 60 * year, "EN\r\n".into()),
    ] {
        server.now = now;
        assert_eq!(server.say("mg f t\r\n"), f);
        assert_eq!(
            server.say("set s 0 100 1\r\nx\r\nmg s t l\r\n"),
            "STORED\r\nHD t100 l0\r\n"
        );
        server.now += 7;
        assert_eq!(server.say("mg s t l\r\n"), "HD t93 l7\r\n");
        server.now += 93;
        assert_eq!(server.say("mg s\r\n"), "EN\r\n");
    }
    // A clock counting from boot: relative and absolute exptimes alike.
    server.cache = Cache::new(Config::default(), 0);
    server.now = 0;
    assert_eq!(
        server.say("set r 0 30 1\r\nx\r\nset u 0 2592001 1\r\nx\r\nmg r t\r\nmg u t\r\n"),
        "STORED\r\nSTORED\r\nHD t30\r\nHD t2592001\r\n"
    );
    server.now = 30;
    assert_eq!(server.say("mg r\r\nmg u t\r\n"), "EN\r\nHD t2591971\r\n");
}

/// `b` keys: base64 decoded before use, the same item as the key sent plain, echoed as
/// sent with ` b`; a key that is no base64 is refused with each command's error.
#[test]
fn base64_keys() {
    let mut server = Server::new();
    assert_eq!(server.say("ms Zm9v 2 b k c\r\nhi\r\n"), "HD kZm9v b c1\r\n");
    assert_eq!(server.say("get foo\r\n"), "VALUE foo 0 2\r\nhi\r\nEND\r\n");
    assert_eq!(server.say("mg Zm9v b v k\r\n"), "VA 2 kZm9v b\r\nhi\r\n");
    assert_eq!(server.say("mg Zm9vYg== b k\r\n"), "EN kZm9vYg== b\r\n");
    // Any byte: a key no plain line could name.
    assert_eq!(
        server.say("ms AA0KIA== 1 b\r\nx\r\nmg AA0KIA== b v\r\n"),
        "HD\r\nVA 1\r\nx\r\n"
    );
    assert_eq!(server.say("ma AA0KIQ== b N0 J7 v\r\n"), "VA 1\r\n7\r\n");
    assert_eq!(server.say("md AA0KIQ== b k\r\n"), "HD kAA0KIQ== b\r\n");
    assert_eq!(server.say("md AA0KIQ== b k\r\n"), "NF kAA0KIQ== b\r\n");
    assert_eq!(
        server.say("md Zm9v b k\r\nget foo\r\n"),
        "HD kZm9v b\r\nEND\r\n"
    );
    // The key's limit holds before decoding: 248 characters of base64 are fine, 252
    // are refused, though they decode to 187 bytes.
    let fits = "AQEB".repeat(61) + "AQ==";
    let long = "AQEB".repeat(62) + "AQ==";
    assert_eq!((fits.len(), long.len()), (248, 252));
    assert_eq!(
        server.say(&std::format!("ms {fits} 1 b\r\nx\r\nmg {fits} b s\r\n")),
        "HD\r\nHD s1\r\n"
    );
    assert_eq!(
        server.say(&std::format!("mg {long} b s\r\n")),
        "CLIENT_ERROR bad command line format\r\n"
    );
    // Not base64: bad characters, bad length, too much padding, unused bits set, none.
    for key in ["!!!!", "Zm9", "Zm9vYmFy==", "Zm9=", "====", "Zm9v\x01YmFy"] {
        for (line, error) in [
            ("mg {} b v", "CLIENT_ERROR error decoding key"),
            ("md {} b", "CLIENT_ERROR invalid or duplicate flag"),
            ("ma {} b", "CLIENT_ERROR invalid or duplicate flag"),
            ("me {} b", "CLIENT_ERROR bad command line format"),
        ] {
            let line = line.replace("{}", key);
            assert_eq!(
                server.say(&std::format!("{line}\r\n")),
                std::format!("{error}\r\n"),
                "{line}"
            );
        }
        assert_eq!(
            server.say(&std::format!("ms {key} 1 b\r\nx\r\nmn\r\n")),
            "CLIENT_ERROR error decoding key\r\nMN\r\n",
            "{key}"
        );
    }
}

/// Malformed meta lines get memcached's errors, even under `q`, and lose nothing: the
/// next request is served and `a` is still there.
#[test]
fn malformed_meta_lines_get_memcacheds_errors() {
    let mut server = with_a();
    let long_key = "k".repeat(MAX_KEY + 1);
    let too_many = "c f h k l O1 s t u v P L T1 N1 R1 F1 C1 J1";
    for (line, error) in [
        ("mg", "ERROR"),
        ("md", "ERROR"),
        ("ma", "ERROR"),
        ("mx a", "ERROR"),
        ("mg a zz", "CLIENT_ERROR invalid flag"),
        ("mg a @", "CLIENT_ERROR invalid flag"),
        ("mg a x", "CLIENT_ERROR invalid flag"),
        ("mg a W", "CLIENT_ERROR invalid flag"),
        ("mg a vx", "CLIENT_ERROR invalid flag"),
        ("mg a \u{e9}", "CLIENT_ERROR invalid flag"),
        ("mg a v v", "CLIENT_ERROR duplicate flag"),
        ("mg a T", "CLIENT_ERROR bad token in command line format"),
        ("mg a Tx", "CLIENT_ERROR bad token in command line format"),
        (
            "mg a T2147483648",
            "CLIENT_ERROR bad token in command line format",
        ),
        ("mg a N", "CLIENT_ERROR bad token in command line format"),
        ("mg a R1x", "CLIENT_ERROR bad token in command line format"),
        ("mg a C-1", "CLIENT_ERROR bad token in command line format"),
        ("mg a E", "CLIENT_ERROR bad token in command line format"),
        ("mg a E1x", "CLIENT_ERROR bad token in command line format"),
        ("mg a Jx", "CLIENT_ERROR invalid numeric initial value"),
        ("mg a D", "CLIENT_ERROR invalid numeric delta value"),
        ("mg a F-1", "CLIENT_ERROR bad command line format"),
        ("mg a M", "CLIENT_ERROR incorrect length for M token"),
        (
            "mg a O123456789012345678901234567890123",
            "CLIENT_ERROR opaque token too long",
        ),
        (
            &std::format!("mg a {too_many}"),
            "CLIENT_ERROR options flags are too long",
        ),
        (
            &std::format!("mg {long_key}"),
            "CLIENT_ERROR bad command line format",
        ),
        ("md a zz", "CLIENT_ERROR invalid or duplicate flag"),
        ("md a q q", "CLIENT_ERROR invalid or duplicate flag"),
        ("md a C", "CLIENT_ERROR invalid or duplicate flag"),
        ("md a E-1", "CLIENT_ERROR invalid or duplicate flag"),
        ("md a Mxx", "CLIENT_ERROR invalid or duplicate flag"),
        (
            "md a O123456789012345678901234567890123",
            "CLIENT_ERROR opaque token too long",
        ),
        (
            &std::format!("md a {too_many}"),
            "CLIENT_ERROR options flags too long",
        ),
        (
            &std::format!("md {long_key}"),
            "CLIENT_ERROR bad command line format",
        ),
        ("ma a zz", "CLIENT_ERROR invalid or duplicate flag"),
        ("ma a Dabc", "CLIENT_ERROR invalid or duplicate flag"),
        (
            "ma a D18446744073709551616",
            "CLIENT_ERROR invalid or duplicate flag",
        ),
        ("ma a Jx", "CLIENT_ERROR invalid or duplicate flag"),
        (
            "ma a E18446744073709551616",
            "CLIENT_ERROR invalid or duplicate flag",
        ),
        ("ma a Mxx", "CLIENT_ERROR invalid or duplicate flag"),
        ("ma a MX", "CLIENT_ERROR invalid mode for ma M token"),
        (
            &std::format!("ma a {too_many}"),
            "CLIENT_ERROR options flags too long",
        ),
        (
            &std::format!("ma {long_key}"),
            "CLIENT_ERROR bad command line format",
        ),
        (
            &std::format!("me {long_key}"),
            "CLIENT_ERROR bad command line format",
        ),
    ] {
        for quiet in ["", " q"] {
            if !quiet.is_empty() && !line.contains(' ') {
                // `mg q` would name the key `q`.
                continue;
            }
            let input = std::format!("{line}{quiet}\r\nget a\r\n");
            assert_eq!(
                server.say(&input),
                std::format!("{error}\r\n{A_IS_THERE}"),
                "{line}{quiet}"
            );
        }
    }
    // The flags of the other commands and the proxy hints are accepted and ignored.
    assert_eq!(
        server.say("mg a v F5 D1 J2 M+ C3 I Pfoo Lbar\r\nmd nope F5 D1 J2 MS v s\r\n"),
        "VA 1\r\n1\r\nNF\r\n"
    );
    assert_eq!(
        server.say("ma n N0 I F1 s\r\nms b 1 N5 J1 D1 R1 v u t\r\nx\r\n"),
        "HD\r\nHD\r\n"
    );
    // 19 tokens are fine.
    assert_eq!(
        server.say("mg a c f h k l O1 q s t u v P L T0 N1 R1 F1\r\n"),
        "VA 1 c1 f0 h1 ka l0 O1 s1 t-1\r\n1\r\n"
    );
}

/// `md I` marks an item stale with a new cas unique instead of deleting it: its first
/// reader wins it (`W`), the others see it won (`Z`), all see it stale (`X`) until it is
/// stored again; `ms I` with an older cas stores all the same, the item kept stale.
#[test]
fn invalidation_marks_items_stale_and_hands_out_one_win() {
    let mut server = Server::new();
    server.say("ms k 1 T100\r\nx\r\n");
    assert_eq!(server.say("md k I T30\r\n"), "HD\r\n");
    assert_eq!(server.say("mg k c t v\r\n"), "VA 1 c2 t30 X W\r\nx\r\n");
    assert_eq!(server.say("mg k c\r\n"), "HD c2 Z X\r\n");
    assert_eq!(server.say("get k\r\n"), "VALUE k 0 1\r\nx\r\nEND\r\n");
    // A set with the cas the item had before it was invalidated: stored, still stale,
    // its TTL and win kept (memcached's answers, byte for byte).
    assert_eq!(server.say("ms k 1 I C1 F4 T500\r\ny\r\n"), "HD\r\n");
    assert_eq!(
        server.say("mg k c t f v\r\n"),
        "VA 1 c3 t30 f4 Z X\r\ny\r\n"
    );
    // Invalidated again, the next reader wins again.
    assert_eq!(
        server.say("md k I\r\nmg k c v\r\n"),
        "HD\r\nVA 1 c4 X W\r\ny\r\n"
    );
    // A newer cas is refused; the current one stores a fresh item.
    assert_eq!(server.say("ms k 1 I C9\r\nz\r\n"), "EX\r\n");
    assert_eq!(server.say("ms k 1 I C4 c\r\nz\r\n"), "HD c5\r\n");
    assert_eq!(server.say("mg k v t\r\n"), "VA 1 t-1\r\nz\r\n");
    // Without `C`, or in another mode, `I` changes nothing.
    server.say("md k I\r\n");
    assert_eq!(
        server.say("ms k 1 I\r\nw\r\nmg k v\r\n"),
        "HD\r\nVA 1\r\nw\r\n"
    );
    server.say("md k I\r\n");
    assert_eq!(server.say("ms k 1 MA I C1\r\n!\r\n"), "EX\r\n");
    // `md I` answers as `md` does otherwise: `NF`, `EX` with `C`, `q` hiding `HD`.
    assert_eq!(
        server.say("md nope I\r\nmd k I C1 k\r\nmd k I q\r\nmn\r\n"),
        "NF\r\nEX kk\r\nMN\r\n"
    );
    // A stale counter changed by `ma` or `incr` stays stale, its win kept.
    server.say("ms n 1\r\n5\r\nmd n I\r\n");
    assert_eq!(
        server.say("ma n v\r\nmg n v\r\nincr n 1\r\nmg n v\r\n"),
        "VA 1\r\n6\r\nVA 1 X W\r\n6\r\n7\r\nVA 1 Z X\r\n7\r\n"
    );
    let stats = server.cache.stats(server.now);
    assert_eq!(
        (stats.cas_hits, stats.cas_badval, stats.delete_hits),
        (2, 1, 0)
    );
}

/// An `mg` hit's answer is not counted when the room holds its value and the most an
/// answer has besides it, and counted below that: on either side of that bound an
/// answer that fits takes the stale item's win (`W`), and one dropped (one byte short)
/// leaves the win to the next reader. The answer is as long as the flags make it: the
/// longest key and opaque echoed, every flag with a number.
#[test]
fn a_meta_get_takes_the_win_only_when_its_answer_fits_either_side_of_the_room_bound() {
    let key = "k".repeat(MAX_KEY);
    let value = "v".repeat(100);
    let get = std::format!("mg {key} O{} k t s c f l h v\r\n", "o".repeat(31));
    // What `get` wrote with `limit` bytes of room, and the next reader's answer.
    let get_with_room = |limit| {
        let mut server = Server::new();
        assert_eq!(
            server.say(&std::format!(
                "set {key} 4294967295 0 100\r\n{value}\r\nmd {key} I T2592000 E{}\r\n",
                u64::MAX
            )),
            "STORED\r\nHD\r\n"
        );
        let mut out = Bounded {
            bytes: Vec::new(),
            limit,
            dropped: false,
        };
        let (now, info) = (server.now, server.info);
        let input = get.as_bytes();
        let served = server
            .session
            .serve(&mut server.cache, input, now, &info, &mut out);
        assert_eq!(served.consumed, input.len());
        (out, server.say(&std::format!("mg {key}\r\n")))
    };
    let (whole, _) = get_with_room(usize::MAX);
    let answer = text(&whole.bytes);
    assert!(answer.ends_with(&std::format!(" X W\r\n{value}\r\n")));
    let bound = value.len() + crate::meta::MAX_HIT_BESIDES_VALUE;
    assert!(answer.len() <= bound, "{} bytes", answer.len());
    for limit in [bound + 1, bound, bound - 1, answer.len()] {
        let (out, next) = get_with_room(limit);
        assert_eq!(
            (out.dropped, text(&out.bytes)),
            (false, answer.clone()),
            "room {limit}"
        );
        assert_eq!(next, "HD Z X\r\n", "room {limit}");
    }
    let (out, next) = get_with_room(answer.len() - 1);
    assert!(out.dropped);
    assert_eq!(next, "HD X W\r\n");
}

/// `E` gives the item a command changes or makes the client's cas unique in place of
/// the cache's next one, which is not used up (an `ma` changing a number uses one up and
/// replaces it, as memcached does); a command that changes nothing ignores it.
#[test]
fn e_gives_the_changed_item_the_clients_cas_unique() {
    let mut server = Server::new();
    assert_eq!(server.say("ms a 1 E100 c\r\nx\r\n"), "HD c100\r\n");
    assert_eq!(
        server.say("mg a c\r\ngets a\r\n"),
        "HD c100\r\nVALUE a 0 1 100\r\nx\r\nEND\r\n"
    );
    // The cache's own cas uniques go on from where they were.
    assert_eq!(server.say("ms b 1 c\r\nx\r\n"), "HD c1\r\n");
    // Every mode takes it; `C` compares with the chosen one.
    assert_eq!(server.say("ms a 1 C100 E200 c\r\ny\r\n"), "HD c200\r\n");
    assert_eq!(server.say("ms a 1 MA E201 c\r\n!\r\n"), "HD c201\r\n");
    assert_eq!(server.say("ms a 1 MP C201 E202 c\r\n<\r\n"), "HD c202\r\n");
    assert_eq!(server.say("ms a 3 MR E203 c\r\nabc\r\n"), "HD c203\r\n");
    assert_eq!(server.say("ms c 1 ME E300 c\r\nx\r\n"), "HD c300\r\n");
    // Nothing stored, nothing changed.
    assert_eq!(server.say("ms a 1 ME E999 c\r\nx\r\n"), "NS c0\r\n");
    assert_eq!(server.say("ms a 1 C1 E999\r\nx\r\n"), "EX\r\n");
    assert_eq!(
        server.say("md a C1 E999\r\nmg a c v\r\n"),
        "EX\r\nVA 3 c203\r\nabc\r\n"
    );
    // `md I` marks the item stale with it; an `ms I` with an older `C` stores with it.
    assert_eq!(
        server.say("md a I E400\r\nmg a c\r\n"),
        "HD\r\nHD c400 X W\r\n"
    );
    assert_eq!(server.say("ms a 1 I C203 E401 c\r\nz\r\n"), "HD c401\r\n");
    assert_eq!(server.say("mg a c\r\n"), "HD c401 Z X\r\n");
    // `ma` changing a number uses one of the cache's up (cas 3 here) and replaces it;
    // making one with `N`, and `mg`'s `N`, take it alone.
    assert_eq!(server.say("ms n 1 c\r\n5\r\n"), "HD c2\r\n");
    assert_eq!(server.say("ma n E500 c v\r\n"), "VA 1 c500\r\n6\r\n");
    assert_eq!(server.say("ma m N0 J7 E600 c v\r\n"), "VA 1 c600\r\n7\r\n");
    assert_eq!(server.say("mg v N30 E700 c\r\n"), "HD c700 W\r\n");
    assert_eq!(server.say("mg v E800 c\r\n"), "HD c700 Z\r\n");
    assert_eq!(server.say("ms d 1 c\r\nx\r\n"), "HD c4\r\n");
}

/// Meta and classic commands, pipelined, give the same answers however the stream is
/// split.
#[test]
fn split_meta_streams_give_the_same_answers() {
    let stream: &[u8] = b"ms a 5 T100 F3\r\nhel\r\n\r\nmg a v f t k Oo\r\nmg b v q\r\nmn\r\n\
        ms a 2 MA c\r\n!!\r\nget a\r\nma n N0 J9 v\r\nma n D2 MD v t\r\nmd a q\r\nmd a\r\n\
        ms big 12\r\n123456789012\r\nms k 3 v v\r\nabc\r\nms k 1\r\nxyz\r\nme n\r\n\
        mg Zm9v b N5 k v\r\nmg foo v\r\nmn\r\n";
    let small = Config {
        max_value: 10,
        ..Config::default()
    };
    let mut reference = Server::with(small);
    let expected = text(&reference.send(stream));
    assert_eq!(
        expected,
        std::format!(
            "HD\r\nVA 5 f3 t100 ka Oo\r\nhel\r\n\r\nMN\r\nHD c2\r\nVALUE a 3 7\r\nhel\r\n!!\r\nEND\r\n\
             VA 1\r\n9\r\nVA 1 t-1\r\n7\r\nNF\r\nSERVER_ERROR object too large for cache\r\n\
             CLIENT_ERROR duplicate flag\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\n\
             ME n exp=-1 la=0 cas=4 fetch=no size={}\r\nVA 0 kZm9v b W\r\n\r\nVA 0 Z\r\n\r\nMN\r\n",
            1 + 1 + ITEM_OVERHEAD
        )
    );
    for split in 0..=stream.len() {
        let (out, closed) = Server::with(small).in_two_reads(stream, split);
        assert!(!closed, "split at {split}");
        assert_eq!(text(&out), expected, "split at {split}");
    }
}
