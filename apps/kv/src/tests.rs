use super::*;
use connection::{Client, Progress};
use connection::{
    OUTPUT_LIMIT, REQUEST_DEADLINE_S, SMALL_ANSWER, Shutdown, shutdown_request, take_handed_over,
};
use rexo_memcache::{Cache, Session};
use rexo_net::wire::Wire;

#[test]
fn budgets_follow_the_memory_the_app_was_given() {
    // A quota, on a machine with more free: the quota; with less free: what is free.
    assert_eq!(share_of(Some(64 << 20), 500 << 20), 64 << 20);
    assert_eq!(share_of(Some(64 << 20), 40 << 20), 40 << 20);
    // No quota (`app=kv`): the machine's free RAM, however much (no 16 MiB cap).
    assert_eq!(share_of(None, 8 << 30), 8 << 30);
    // 64 MiB: a 16 MiB cache, 8 MiB of connection buffers.
    assert_eq!(cache_budget(64 << 20), 16 << 20);
    assert_eq!(buffer_budget(64 << 20), 8 << 20);
    // 8 GiB free and no quota: a 2 GiB cache.
    assert_eq!(cache_budget(share_of(None, 8 << 30)), 2 << 30);
    // So much that the items could outnumber the cache's u32 indexes: clamped.
    assert_eq!(cache_budget(share_of(None, 4 << 40)), MAX_CACHE_BYTES);
    // Below it: a quarter.
    assert_eq!(cache_budget(share_of(None, 512 << 30)), 128 << 30);
    // A tiny share still holds one largest request.
    assert_eq!(
        buffer_budget(8 << 20),
        max_request_len(CacheConfig::default().max_value)
    );
    assert!(OUTPUT_LIMIT > CacheConfig::default().max_value);
}

#[test]
fn small_caches_stay_one_shard() {
    let max_item = 1 << 20;
    // One core: one cache, whatever its size.
    assert_eq!(shard_count(16 << 20, 1, max_item), 1);
    // kv-small's 1 MiB holds no two largest items: one cache, global LRU.
    assert_eq!(shard_count(SMALL_CACHE_BYTES, 2, max_item), 1);
    assert_eq!(shard_count(SMALL_CACHE_BYTES, 8, max_item), 1);
    // Larger caches: shards of at least two largest items, at most 4 per core.
    assert_eq!(shard_count(6 << 20, 2, max_item), 3);
    assert_eq!(shard_count(16 << 20, 2, max_item), 8);
    assert_eq!(shard_count(64 << 20, 2, max_item), 8);
}

#[test]
fn shutdown_is_a_whole_request_alone() {
    assert_eq!(shutdown_request(b"shutdown\r\n"), Shutdown::Now);
    assert_eq!(shutdown_request(b"shutdown\n"), Shutdown::Now);
    assert_eq!(shutdown_request(b"  shutdown  \r\n"), Shutdown::Now);
    assert_eq!(shutdown_request(b"shutdown graceful\r\n"), Shutdown::Now);
    assert_eq!(shutdown_request(b"shutdown now\r\n"), Shutdown::BadMode);
    assert_eq!(
        shutdown_request(b"shutdown graceful x\r\n"),
        Shutdown::BadMode
    );
    assert_eq!(shutdown_request(b"shutdownx\r\n"), Shutdown::No);
    assert_eq!(shutdown_request(b"get shutdown\r\n"), Shutdown::No);
    // A value that reads "shutdown" is part of its storage request, never one alone.
    assert_eq!(
        shutdown_request(b"set k 0 0 8\r\nshutdown\r\n"),
        Shutdown::No
    );
}

/// A UDP request: the frame header (request id `id`, sequence 0, `total` datagrams).
fn datagram(id: u16, total: u16, body: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    for field in [id, 0, total, 0] {
        d.extend_from_slice(&field.to_be_bytes());
    }
    d.extend_from_slice(body);
    d
}

/// Stores a value of `len` bytes under `key` in `cache` through a session, checked.
fn store_value(cache: &mut Cache, key: &str, len: usize) {
    let mut set = alloc::format!("set {key} 0 0 {len}\r\n").into_bytes();
    set.resize(set.len() + len, b'v');
    set.extend_from_slice(b"\r\n");
    let mut answer = Vec::new();
    Session::new().serve(
        cache,
        &set,
        CLOCK_START_S,
        &ServerInfo::default(),
        &mut answer,
    );
    assert_eq!(answer, b"STORED\r\n");
}

fn small_cache() -> Cache {
    Cache::new(
        CacheConfig {
            max_bytes: 4 << 20,
            ..CacheConfig::default()
        },
        CLOCK_START_S,
    )
}

#[test]
fn udp_requests_are_answered_as_memcached_does() {
    let mut cache = small_cache();
    let info = ServerInfo::default();
    let mut answer = Vec::new();
    let request = datagram(7, 1, b"set k 1 0 2\r\nhi\r\nget k\r\nquit\r\nget k\r\n");
    let id = udp::answer_datagram(&mut cache, &request, CLOCK_START_S, &info, &mut answer);
    assert_eq!(id, Ok(7));
    assert_eq!(answer, b"STORED\r\nVALUE k 1 2\r\nhi\r\nEND\r\n");
    let request = datagram(8, 2, b"get k\r\n");
    let id = udp::answer_datagram(&mut cache, &request, CLOCK_START_S, &info, &mut answer);
    assert_eq!(id, Ok(8));
    assert_eq!(answer, rexo_memcache::udp::MULTI_PACKET_REPLY);
    let short = udp::answer_datagram(&mut cache, &[1, 2, 3], CLOCK_START_S, &info, &mut answer);
    assert_eq!(short, Err(rexo_memcache::udp::UdpDrop::Truncated));
}

/// An `mg` whose answer is past the datagrams' bound (and replaced by the out-of-memory
/// error) changes nothing: the stale item's win (`W`) goes to the next reader, whose
/// answer carries it, as memcached sends `W` to exactly one client; its `T` is not
/// applied and the item is not marked read.
#[test]
fn a_meta_get_whose_answer_is_dropped_leaves_the_win_to_the_next_reader() {
    let mut cache = small_cache();
    let info = ServerInfo::default();
    let mut answer = Vec::new();
    store_value(&mut cache, "a", 30_000);
    let mut ask = |id, body: &[u8], answer: &mut Vec<u8>| {
        let request = datagram(id, 1, body);
        let served = udp::answer_datagram(&mut cache, &request, CLOCK_START_S, &info, answer);
        assert_eq!(served, Ok(id));
    };
    ask(1, b"md a I\r\n", &mut answer);
    assert_eq!(answer, b"HD\r\n");
    ask(2, b"mg a v c T60\r\n", &mut answer);
    assert_eq!(answer, connection::OUTPUT_TOO_LARGE);
    ask(3, b"mg a h t\r\n", &mut answer);
    assert_eq!(answer, b"HD h0 t-1 X W\r\n");
    ask(4, b"mg a\r\n", &mut answer);
    assert_eq!(answer, b"HD Z X\r\n");
}

#[test]
fn a_udp_get_cannot_make_an_unbounded_answer() {
    let mut cache = small_cache();
    let info = ServerInfo::default();
    let mut answer = Vec::new();
    store_value(&mut cache, "big", 1 << 20);
    // 1400 bytes of `get big big ...`: about 350 MiB of answer if it were built.
    let mut get = b"get".to_vec();
    while get.len() < 1380 {
        get.extend_from_slice(b" big");
    }
    get.extend_from_slice(b"\r\n");
    let request = datagram(9, 1, &get);
    let id = udp::answer_datagram(&mut cache, &request, CLOCK_START_S, &info, &mut answer);
    assert_eq!(id, Ok(9));
    assert_eq!(answer, connection::OUTPUT_TOO_LARGE);
    assert!(answer.capacity() <= 2 * udp::UDP_OUTPUT_LIMIT);
}

#[test]
fn a_small_udp_request_cannot_make_a_large_answer() {
    let mut cache = small_cache();
    let info = ServerInfo::default();
    let mut answer = Vec::new();
    store_value(&mut cache, "k", 1 << 20);
    store_value(&mut cache, "medium", 20_000);
    // 19 bytes with a forged source would have made 3 MiB for its victim.
    let request = datagram(10, 1, b"get k k k\r\n");
    let id = udp::answer_datagram(&mut cache, &request, CLOCK_START_S, &info, &mut answer);
    assert_eq!(id, Ok(10));
    assert_eq!(answer, connection::OUTPUT_TOO_LARGE);
    // A 20000-byte value still comes back whole, in at most the datagrams allowed.
    let request = datagram(11, 1, b"get medium\r\n");
    let id = udp::answer_datagram(&mut cache, &request, CLOCK_START_S, &info, &mut answer);
    assert_eq!(id, Ok(11));
    assert!(answer.starts_with(b"VALUE medium 0 20000\r\n"));
    assert!(answer.ends_with(b"\r\nEND\r\n"));
    let datagrams = rexo_memcache::udp::Datagrams::new(11, &answer).unwrap();
    assert!(datagrams.count() <= udp::UDP_ANSWER_DATAGRAMS);
}

/// A small xorshift generator: deterministic, and apps cannot use testkit.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SERVER: rexo_net::Ipv4Addr = rexo_net::Ipv4Addr::new(10, 0, 0, 1);
const CLIENT: rexo_net::Ipv4Addr = rexo_net::Ipv4Addr::new(10, 0, 0, 2);

/// The server's and the client's stacks on one wire (frames cross at every carry).
fn wire() -> (Wire, Stack, Stack) {
    Wire::joining(SERVER, CLIENT)
}

/// A cache for the stream tests: small values, so that refused ones are cheap.
fn stream_cache() -> Cache {
    Cache::new(
        CacheConfig {
            max_bytes: 64 << 10,
            max_value: 1000,
            hash_seed: 7,
        },
        CLOCK_START_S,
    )
}

/// A random stream of whole requests, classic and meta, good and bad (no `quit`, no line
/// too long: those end the connection), with values that cross reads and refused data
/// blocks.
fn request_stream(rng: &mut Rng, requests: usize) -> Vec<u8> {
    let mut stream = Vec::new();
    for _ in 0..requests {
        let key = format!("k{}", rng.below(8));
        let len = [0, 1, 5, 200, 999, 1000, 1001, 3000][rng.below(8)];
        let exptime = [0, 100, -1][rng.below(3)];
        let noreply = if rng.below(4) == 0 { " noreply" } else { "" };
        let quiet = if noreply.is_empty() { "" } else { " q" };
        let mut data = vec![b'v'; len];
        if len > 0 {
            data[len / 2] = b'\n';
        }
        let store = |command: &str, extra: &str| {
            let mut r =
                format!("{command} {key} 3 {exptime} {len}{extra}{noreply}\r\n").into_bytes();
            r.extend_from_slice(&data);
            r.extend_from_slice(b"\r\n");
            r
        };
        let request = match rng.below(18) {
            0 => store("set", ""),
            1 => store("add", ""),
            2 => store("append", ""),
            3 => store("prepend", ""),
            4 => store("cas", &format!(" {}", rng.below(40))),
            5 => format!("get {key} k1 k2\r\n").into_bytes(),
            6 => format!("gets {key}\r\n").into_bytes(),
            7 => format!("delete {key}{noreply}\r\n").into_bytes(),
            8 => format!("incr {key} {}{noreply}\r\n", rng.below(100)).into_bytes(),
            9 => format!("touch {key} {exptime}{noreply}\r\n").into_bytes(),
            10 => format!("gat {exptime} {key}\r\n").into_bytes(),
            // A data block longer than announced.
            11 => {
                let mut r = format!("set {key} 0 0 2\r\n").into_bytes();
                r.extend_from_slice(b"abcd\r\n");
                r
            }
            12 => b"stats\r\nversion\r\nfrobnicate\r\n".to_vec(),
            13 => b"flush_all\r\n".to_vec(),
            14 => {
                let mode = ["", " ME", " MA", " MP", " MR"][rng.below(5)];
                let mut r = format!("ms {key} {len} T{exptime} F3{mode}{quiet}\r\n").into_bytes();
                r.extend_from_slice(&data);
                r.extend_from_slice(b"\r\n");
                r
            }
            15 => format!("mg {key} v k c f s Oo N{exptime}{quiet}\r\nmn\r\n").into_bytes(),
            16 => format!(
                "ma {key} N0 J7 D{} v\r\nmd {key} I{quiet}\r\n",
                rng.below(9)
            )
            .into_bytes(),
            // A refused meta set: its data block is skipped.
            _ => {
                let mut r = format!("ms {key} {len} v v\r\n").into_bytes();
                r.extend_from_slice(&data);
                r.extend_from_slice(b"\r\n");
                r
            }
        };
        stream.extend(request);
    }
    stream
}

/// [`wire`] with kv's port listening on the server's end and the client connecting to
/// it: the wire, the server's and the client's stacks, the listener, the connection.
fn connected() -> (Wire, Stack, Stack, rexo_net::Listener, rexo_net::Connection) {
    let (wire, server, mut client, listener) = listening(4);
    let connection = client.connect(KV, TcpOptions::default()).unwrap();
    (wire, server, client, listener, connection)
}

/// Where kv listens.
const KV: rexo_net::Endpoint = rexo_net::Endpoint {
    address: SERVER,
    port: PORT,
};

/// [`wire`] with kv's port listening on the server's end (`backlog` connections
/// waiting at most): the wire, the server's and the client's stacks, the listener.
fn listening(backlog: usize) -> (Wire, Stack, Stack, rexo_net::Listener) {
    let (wire, mut server, client) = wire();
    let listener = server.listen(PORT, backlog, TcpOptions::default()).unwrap();
    (wire, server, client, listener)
}

/// Steps `kv` as the app's loop does, at the clock's start: `held` is what all clients
/// hold, `budget` bounds it, `leader` exempts `kv` from it for reading.
fn step_client(
    kv: &mut Client,
    server: &mut Stack,
    cache: &mut Cache,
    held: &mut usize,
    budget: usize,
    leader: bool,
) -> Progress {
    let info = ServerInfo::default();
    kv.step(
        server,
        cache,
        CLOCK_START_S,
        &info,
        held,
        budget,
        leader,
        true,
    )
}

/// Sends `stream` in random pieces through kv's connection and returns the answers
/// once `expected_len` bytes came.
fn serve_over_the_wire(rng: &mut Rng, stream: &[u8], expected_len: usize, leader: bool) -> Vec<u8> {
    let (wire, mut server, mut client, listener, connection) = connected();
    let mut cache = stream_cache();
    let mut kv: Option<Client> = None;
    let (mut sent, mut answers) = (0, Vec::new());
    let mut now_ns = 0;
    for _ in 0..200_000 {
        server.poll(now_ns).unwrap();
        wire.carry(|_| true);
        client.poll(now_ns).unwrap();
        wire.carry(|_| true);
        now_ns += 50_000;
        if kv.is_none() {
            kv = server
                .accept(&listener)
                .unwrap()
                .map(|connection| Client::new(connection, CLOCK_START_S, IDLE_TIMEOUT_S));
        }
        if let Some(kv) = &mut kv {
            // Without the leader's exemption nothing may be held: every read is the
            // small one a client with empty buffers always gets.
            let budget = if leader { 0 } else { usize::MAX };
            let mut held = kv.held();
            let progress = step_client(kv, &mut server, &mut cache, &mut held, budget, leader);
            assert!(
                matches!(progress, Progress::Idle | Progress::Moved),
                "{progress:?}"
            );
        }
        if sent < stream.len() {
            let piece = (1 + rng.below(3000)).min(stream.len() - sent);
            sent += client
                .write(&connection, &stream[sent..sent + piece])
                .unwrap_or(0);
        }
        let mut buffer = [0u8; 8192];
        let read = client.read(&connection, &mut buffer).unwrap();
        answers.extend_from_slice(&buffer[..read]);
        if answers.len() >= expected_len && sent == stream.len() {
            break;
        }
    }
    answers
}

#[test]
fn streams_are_answered_as_the_engine_answers_them() {
    let mut rng = Rng(0x243f_6a88_85a3_08d3);
    let mut meta_answers = 0;
    for round in 0..40 {
        let stream = request_stream(&mut rng, 60);
        let mut reference = Vec::new();
        let served = Session::new().serve(
            &mut stream_cache(),
            &stream,
            CLOCK_START_S,
            &ServerInfo::default(),
            &mut reference,
        );
        assert_eq!(served.consumed, stream.len(), "round {round}");
        meta_answers += reference
            .windows(4)
            .filter(|&four| four == b"MN\r\n")
            .count();
        let answers = serve_over_the_wire(&mut rng, &stream, reference.len(), round % 2 == 0);
        assert!(
            answers == reference,
            "round {round}: {} answer bytes, {} expected; first difference at {:?}",
            answers.len(),
            reference.len(),
            answers.iter().zip(&reference).position(|(a, b)| a != b)
        );
    }
    assert!(meta_answers > 0, "the streams hold meta commands");
}

/// Steps kv's `clients` once as the app's loop does: what they hold counted against
/// `budget`, the one with the most unserved input exempt from it for reading.
fn step_all(server: &mut Stack, clients: &mut [Client], cache: &mut Cache, budget: usize) {
    let mut held: usize = clients.iter().map(Client::held).sum();
    let leader = (0..clients.len()).max_by_key(|&i| clients[i].input_len());
    for (index, kv) in clients.iter_mut().enumerate() {
        let leads = leader == Some(index);
        let progress = step_client(kv, server, cache, &mut held, budget, leads);
        assert!(
            matches!(progress, Progress::Idle | Progress::Moved),
            "{progress:?}"
        );
    }
}

#[test]
fn answers_stay_within_the_buffer_budget() {
    let (wire, mut server, mut client, listener) = listening(32);
    let (options, remote) = (TcpOptions::default(), KV);
    let mut cache = small_cache();
    store_value(&mut cache, "k", 1 << 20);
    // 32 MiB given to kv: 4 MiB for the connections.
    let budget = buffer_budget(32 << 20);
    // 20 clients each ask for 3 MiB with 12 bytes and never read.
    let count = 20;
    let connections: Vec<_> = (0..count)
        .map(|_| client.connect(remote, options).unwrap())
        .collect();
    let mut written = vec![false; count];
    let mut clients: Vec<Client> = Vec::new();
    let mut most_held = 0;
    let mut now_ns = 0;
    let poll = |server: &mut Stack, client: &mut Stack, now_ns: &mut u64| {
        server.poll(*now_ns).unwrap();
        wire.carry(|_| true);
        client.poll(*now_ns).unwrap();
        wire.carry(|_| true);
        *now_ns += 50_000;
    };
    for _ in 0..20_000 {
        poll(&mut server, &mut client, &mut now_ns);
        while let Some(connection) = server.accept(&listener).unwrap() {
            clients.push(Client::new(connection, CLOCK_START_S, IDLE_TIMEOUT_S));
        }
        step_all(&mut server, &mut clients, &mut cache, budget);
        most_held = most_held.max(clients.iter().map(Client::held).sum::<usize>());
        for (connection, written) in connections.iter().zip(&mut written) {
            if !*written {
                *written = client.write(connection, b"get k k k\r\n").unwrap_or(0) > 0;
            }
        }
    }
    assert!(written.iter().all(|&w| w) && clients.len() == count);
    // Each client is past the budget by at most one small answer (and its request).
    assert!(
        most_held <= budget + count * (SMALL_ANSWER + 16),
        "{most_held} bytes held, budget {budget}"
    );
    // Now they read: the answers that fit come whole, the others are memcached's error.
    let value = alloc::format!("VALUE k 0 1048576\r\n{}\r\n", "v".repeat(1 << 20));
    let whole = alloc::format!("{value}{value}{value}END\r\n").into_bytes();
    let mut answers = vec![Vec::new(); count];
    for _ in 0..100_000 {
        poll(&mut server, &mut client, &mut now_ns);
        step_all(&mut server, &mut clients, &mut cache, budget);
        for (connection, answer) in connections.iter().zip(&mut answers) {
            let mut buffer = [0u8; 65536];
            let read = client.read(connection, &mut buffer).unwrap();
            answer.extend_from_slice(&buffer[..read]);
        }
        let complete = |a: &Vec<u8>| a == connection::OUTPUT_TOO_LARGE || a.len() >= whole.len();
        if answers.iter().all(complete) {
            break;
        }
    }
    let served = answers.iter().filter(|&a| *a == whole).count();
    let refused = answers
        .iter()
        .filter(|&a| a == connection::OUTPUT_TOO_LARGE)
        .count();
    assert!(served >= 1, "a large answer still fits a free budget");
    assert_eq!(served + refused, count);
    // A refused client may ask again once the budget is free.
    let mut answer = Vec::new();
    let (last, kv) = (connections.last().unwrap(), clients.last_mut().unwrap());
    assert_eq!(client.write(last, b"get k\r\n").unwrap(), 7);
    for _ in 0..100_000 {
        poll(&mut server, &mut client, &mut now_ns);
        step_all(&mut server, core::slice::from_mut(kv), &mut cache, budget);
        let mut buffer = [0u8; 65536];
        let read = client.read(last, &mut buffer).unwrap();
        answer.extend_from_slice(&buffer[..read]);
        if answer.len() >= value.len() + 5 {
            break;
        }
    }
    assert_eq!(answer, alloc::format!("{value}END\r\n").into_bytes());
}

/// Sends `request` through kv's connection until kv ends it (or time runs out): how it
/// ended, and the answers.
fn serve_until_it_ends(request: &[u8]) -> (Option<Progress>, Vec<u8>) {
    serve_in_pieces(request, request.len(), |_, _| {})
}

/// [`serve_until_it_ends`], writing `request` at most `piece` bytes at a time and showing
/// kv to `watch` after each of its steps, with the bytes written before it.
fn serve_in_pieces(
    request: &[u8],
    piece: usize,
    mut watch: impl FnMut(&Client, usize),
) -> (Option<Progress>, Vec<u8>) {
    let (wire, mut server, mut client, listener, connection) = connected();
    let mut cache = stream_cache();
    let (mut kv, mut sent, mut answer) = (None, 0, Vec::new());
    let mut ended = None;
    let mut now_ns = 0;
    for round in 0..20_000u64 {
        exchange(&wire, &mut server, &mut client, &mut now_ns);
        if kv.is_none() {
            kv = server
                .accept(&listener)
                .unwrap()
                .map(|connection| Client::new(connection, CLOCK_START_S, IDLE_TIMEOUT_S));
        }
        if let Some(kv) = &mut kv
            && ended.is_none()
        {
            let mut held = kv.held();
            let progress = step_client(kv, &mut server, &mut cache, &mut held, usize::MAX, false);
            if matches!(progress, Progress::Finished | Progress::Shutdown) {
                ended = Some(progress);
            }
            watch(kv, sent);
        }
        if sent < request.len() {
            let end = request.len().min(sent + piece);
            sent += client.write(&connection, &request[sent..end]).unwrap_or(0);
        }
        let mut buffer = [0u8; 512];
        let read = client.read(&connection, &mut buffer).unwrap_or(0);
        answer.extend_from_slice(&buffer[..read]);
        if ended.is_some() && read == 0 && round > 1000 {
            break;
        }
    }
    (ended, answer)
}

/// A line too long is refused and ends the connection even when it starts with
/// `shutdown`: neither `shutdown`'s answers nor the rest of the line read as requests.
#[test]
fn a_line_too_long_is_no_shutdown() {
    for tail in [&b"x"[..], b" "] {
        let mut request = b"shutdown ".to_vec();
        request.extend(tail.repeat(rexo_memcache::MAX_LINE + 100));
        request.extend_from_slice(b"\r\nversion\r\n");
        let (ended, answer) = serve_until_it_ends(&request);
        assert_eq!(ended, Some(Progress::Finished));
        assert_eq!(answer, rexo_memcache::ProtocolError::LineTooLong.reply());
    }
}

/// `shutdown` over a connection ends the app; one with a mode kv does not know is
/// refused, and the connection goes on.
#[test]
fn shutdown_over_a_connection_ends_the_app() {
    let (ended, _) = serve_until_it_ends(b"shutdown\r\n");
    assert_eq!(ended, Some(Progress::Shutdown));
    let (ended, answer) = serve_until_it_ends(b"shutdown now\r\nversion\r\n");
    assert_eq!(ended, None);
    let version = answer.strip_prefix(connection::BAD_SHUTDOWN_MODE);
    assert!(version.is_some_and(|version| version.starts_with(b"VERSION ")));
}

/// A request storing a 1000-byte value and getting it 100 times (more than a send
/// buffer holds), and its answer.
fn hundred_gets() -> (String, String) {
    let value = "v".repeat(1000);
    let request = format!("set k 0 0 1000\r\n{value}\r\nget{}\r\n", " k".repeat(100));
    let answer = format!(
        "STORED\r\n{}END\r\n",
        format!("VALUE k 0 1000\r\n{value}\r\n").repeat(100)
    );
    (request, answer)
}

/// The answers to the requests before `shutdown` are sent before the app stops, even
/// when they came in one read with it and fill more than the send buffer.
#[test]
fn shutdown_sends_the_answers_before_it() {
    let (ended, answer) = serve_until_it_ends(b"shutdown now\r\nshutdown\r\n");
    assert_eq!(ended, Some(Progress::Shutdown));
    assert_eq!(answer, connection::BAD_SHUTDOWN_MODE);
    let (request, expected) = hundred_gets();
    let (ended, answer) = serve_until_it_ends(format!("{request}shutdown\r\n").as_bytes());
    assert_eq!(ended, Some(Progress::Shutdown));
    assert!(
        answer == expected.as_bytes(),
        "{} answer bytes, {} expected",
        answer.len(),
        expected.len()
    );
}

/// Exchanges frames over `wire` until kv's stack (`server`) accepts a connection of
/// `client` on `listener`; panics when none came in 100 exchanges.
fn accept_one(
    wire: &Wire,
    server: &mut Stack,
    client: &mut Stack,
    listener: &rexo_net::Listener,
    now_ns: &mut u64,
) -> rexo_net::Connection {
    for _ in 0..100 {
        exchange(wire, server, client, now_ns);
        if let Some(accepted) = server.accept(listener).unwrap() {
            return accepted;
        }
    }
    panic!("no connection accepted");
}

/// The cache's second at which [`one_client`] accepts its client.
const START_S: u64 = 1_000;

/// One client connected to kv over a wire, and all that stepping kv for it needs.
struct OneClient {
    /// The wire between the stacks.
    wire: Wire,
    /// kv's stack.
    server: Stack,
    /// The client's stack.
    client: Stack,
    /// The client's end of the connection.
    connection: rexo_net::Connection,
    /// kv's cache.
    cache: Cache,
    /// The stacks' clock.
    now_ns: u64,
    /// kv's end of the connection.
    kv: Client,
}

/// A client connected to kv and accepted at the cache's second [`START_S`], closed once
/// idle for `idle_timeout_s` seconds (0: never).
fn one_client(idle_timeout_s: u64) -> OneClient {
    let (wire, mut server, mut client, listener, connection) = connected();
    let cache = stream_cache();
    let mut now_ns = 0;
    let accepted = accept_one(&wire, &mut server, &mut client, &listener, &mut now_ns);
    let kv = Client::new(accepted, START_S, idle_timeout_s);
    OneClient {
        wire,
        server,
        client,
        connection,
        cache,
        now_ns,
        kv,
    }
}

impl OneClient {
    /// Steps kv for a few exchanges at the cache's second `now_s`, so that what was sent
    /// arrives and is answered: `budget` bounds what the clients hold, `turning` says
    /// whether it turns over. The last step's progress; the steps stop once kv finished.
    fn step(&mut self, now_s: u64, budget: usize, turning: bool) -> Progress {
        let mut progress = Progress::Idle;
        for _ in 0..20 {
            exchange(
                &self.wire,
                &mut self.server,
                &mut self.client,
                &mut self.now_ns,
            );
            let mut held = self.kv.held();
            let info = ServerInfo::default();
            progress = self.kv.step(
                &mut self.server,
                &mut self.cache,
                now_s,
                &info,
                &mut held,
                budget,
                false,
                turning,
            );
            if progress == Progress::Finished {
                break;
            }
        }
        progress
    }
}

/// Polls both stacks at `now_ns`, frames crossing the wire after each, then moves the
/// clock on by 50 us.
fn exchange(wire: &Wire, server: &mut Stack, client: &mut Stack, now_ns: &mut u64) {
    server.poll(*now_ns).unwrap();
    wire.carry(|_| true);
    client.poll(*now_ns).unwrap();
    wire.carry(|_| true);
    *now_ns += 50_000;
}

/// The wire, kv's and the clients' stacks, the reader's connection, kv's clients, the
/// reader's expected answer and the clock, just after a `shutdown` from one client
/// while the other one (the reader), which asked for more than the send buffer holds and
/// has not read yet, still has its answer queued in kv.
struct ShutDownWithAnswerQueued {
    wire: Wire,
    server: Stack,
    client: Stack,
    reader: rexo_net::Connection,
    clients: Vec<Client>,
    expected: String,
    now_ns: u64,
}

/// Runs kv and two clients until one stops kv while the other's answer is queued.
fn shut_down_with_an_answer_queued() -> ShutDownWithAnswerQueued {
    let (wire, mut server, mut client, listener) = listening(4);
    let (options, remote) = (TcpOptions::default(), KV);
    let mut cache = stream_cache();
    // A small window, so that the answer waits in kv rather than in the reader's TCP.
    let small_window = TcpOptions {
        receive_buffer: 4096,
        ..options
    };
    let reader = client.connect(remote, small_window).unwrap();
    let stopper = client.connect(remote, options).unwrap();
    let (request, expected) = hundred_gets();
    let mut clients: Vec<Client> = Vec::new();
    let (mut asked, mut stopped) = (0, false);
    let mut now_ns = 0;
    // The reader asks and reads nothing; once its answer is made, the other stops kv.
    let mut ended = None;
    for _ in 0..20_000 {
        exchange(&wire, &mut server, &mut client, &mut now_ns);
        while let Some(connection) = server.accept(&listener).unwrap() {
            clients.push(Client::new(connection, CLOCK_START_S, IDLE_TIMEOUT_S));
        }
        if asked < request.len() {
            asked += client
                .write(&reader, &request.as_bytes()[asked..])
                .unwrap_or(0);
        } else if !stopped && clients.iter().any(|kv| kv.held() > 0) {
            stopped = client.write(&stopper, b"shutdown\r\n").unwrap() > 0;
        }
        for kv in &mut clients {
            let mut held = kv.held();
            let progress = step_client(kv, &mut server, &mut cache, &mut held, usize::MAX, false);
            if progress == Progress::Shutdown {
                ended = Some(progress);
            }
        }
        if ended.is_some() {
            break;
        }
    }
    assert_eq!(ended, Some(Progress::Shutdown));
    assert!(
        clients.iter().any(|kv| kv.held() > 0),
        "the reader's answer is still queued"
    );
    ShutDownWithAnswerQueued {
        wire,
        server,
        client,
        reader,
        clients,
        expected,
        now_ns,
    }
}

/// A `shutdown` from one client lets every other connection's queued answers go out
/// before it is closed.
#[test]
fn shutdown_lets_the_other_connections_answers_go_out() {
    let ShutDownWithAnswerQueued {
        wire,
        mut server,
        mut client,
        reader,
        mut clients,
        expected,
        mut now_ns,
    } = shut_down_with_an_answer_queued();
    // The app's closing rounds, while the reader reads at last.
    let mut answer = Vec::new();
    for _ in 0..20_000 {
        exchange(&wire, &mut server, &mut client, &mut now_ns);
        for kv in take_handed_over(&mut server, &mut clients, false) {
            server.close(kv.into_connection()).unwrap();
        }
        let mut buffer = [0u8; 8192];
        match client.read(&reader, &mut buffer) {
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            Err(_) => break,
        }
    }
    assert!(clients.is_empty(), "every connection was closed");
    assert!(
        answer == expected.as_bytes(),
        "{} answer bytes, {} expected",
        answer.len(),
        expected.len()
    );
}

/// Once the hand-over time is over (`give_up`), every connection is taken to be closed,
/// even one whose answer is still queued.
#[test]
fn giving_up_the_hand_over_takes_every_connection() {
    let mut queued = shut_down_with_an_answer_queued();
    let count = queued.clients.len();
    let taken = take_handed_over(&mut queued.server, &mut queued.clients, true);
    assert_eq!(taken.len(), count, "every client is taken");
    assert!(queued.clients.is_empty());
    assert!(
        taken.iter().any(|kv| kv.held() > 0),
        "even the one with its answer still queued"
    );
}

/// A connection on which no byte moves for the idle timeout is closed, by the cache's
/// clock (any byte restarts it); with a timeout of 0 it never is.
#[test]
fn idle_connections_are_closed_after_the_timeout() {
    for timeout_s in [10, 0] {
        let mut t = one_client(timeout_s);
        let idle = |progress| matches!(progress, Progress::Idle | Progress::Moved);
        assert!(idle(t.step(START_S + 9, usize::MAX, true)));
        // A request at second 9 restarts the count.
        assert_eq!(t.client.write(&t.connection, b"version\r\n").unwrap(), 9);
        assert!(idle(t.step(START_S + 9, usize::MAX, true)));
        let mut buffer = [0u8; 64];
        let read = t.client.read(&t.connection, &mut buffer).unwrap();
        assert!(buffer[..read].starts_with(b"VERSION "));
        assert!(idle(t.step(START_S + 18, usize::MAX, true)));
        let last = t.step(START_S + 19, usize::MAX, true);
        if timeout_s == 0 {
            assert!(idle(last));
            assert!(idle(t.step(START_S + 100_000, usize::MAX, true)));
        } else {
            assert_eq!(last, Progress::Finished, "idle for 10 s");
        }
    }
}

#[test]
fn a_udp_flood_is_answered_a_socket_buffer_at_a_time() {
    let (wire, mut server, mut client, _listener) = listening(4);
    let store = Shards::new(CacheConfig::default(), 1, CLOCK_START_S);
    let shared = Shared::new(Clock::FromBoot, store, 1, 1 << 20, 0);
    let mut kv = Server::new(&shared);
    let udp = server
        .udp_bind(
            PORT,
            UdpOptions {
                datagrams: UDP_DATAGRAMS,
                ..UdpOptions::default()
            },
        )
        .unwrap();
    let flooder_options = UdpOptions {
        buffer: 1 << 22,
        datagrams: 4096,
    };
    let flooder = client.udp_bind(40000, flooder_options).unwrap();
    let to = rexo_net::Endpoint {
        address: SERVER,
        port: PORT,
    };
    let info = ServerInfo::default();
    let mut now_ns = 0;
    // A value whose answer takes several datagrams, stored over UDP.
    let mut set = b"set big 0 0 1300\r\n".to_vec();
    set.resize(set.len() + 1300, b'v');
    set.extend_from_slice(b"\r\n");
    client.send_to(&flooder, &datagram(1, 1, &set), to).unwrap();
    for _ in 0..10 {
        exchange(&wire, &mut server, &mut client, &mut now_ns);
        kv.serve_datagrams(&mut server, &udp, CLOCK_START_S, &info, &|| 0)
            .unwrap();
    }
    assert_eq!(kv.udp_served, 1);
    // 2,000 requests for four copies of it arrive at once.
    for id in 0..2000 {
        let get = datagram(id, 1, b"get big big big big\r\n");
        client.send_to(&flooder, &get, to).unwrap();
    }
    for _ in 0..100 {
        client.poll(now_ns).unwrap();
        wire.carry(|_| true);
    }
    server.poll(now_ns).unwrap();
    let served = kv
        .serve_datagrams(&mut server, &udp, CLOCK_START_S, &info, &|| 0)
        .unwrap();
    assert!(served);
    assert!(
        kv.udp_served - 1 <= UDP_DATAGRAMS as u64,
        "{} requests answered in one call",
        kv.udp_served - 1
    );
}

/// A client whose bytes kv leaves unread because the connections' budget is used up
/// (it has taken every answer: it is mid-request) is sending, not idle while the budget
/// turns over (some client on the core moves): the idle timeout does not close it, and
/// its request completes once the budget allows.
#[test]
fn a_client_held_back_by_the_budget_is_not_idle() {
    held_back_by_the_budget(true);
}

/// When nothing on the core moves, the budget does not turn over: a client held back by
/// it is idle like any other and closed after the idle timeout, rather than holding its
/// slot until the clients that hold the budget time out one after another.
#[test]
fn a_client_held_back_while_nothing_moves_ages_out() {
    held_back_by_the_budget(false);
}

/// A client held back by the budget for 30 s of a 10 s idle timeout, while the others
/// move (`turning`) or not.
fn held_back_by_the_budget(turning: bool) {
    let mut t = one_client(10);
    // The request's line and part of its data come while the budget allows.
    assert_eq!(
        t.client
            .write(&t.connection, b"set k 0 0 8\r\nvvvv")
            .unwrap(),
        17
    );
    t.step(START_S, usize::MAX, turning);
    assert_eq!(t.kv.input_len(), 17);
    // The other connections use the budget up: the rest of the data waits unread.
    assert_eq!(t.client.write(&t.connection, b"vvvv\r\n").unwrap(), 6);
    let progress = t.step(START_S + 5, 0, turning);
    assert_eq!(progress, Progress::Throttled);
    assert_eq!(t.kv.input_len(), 17);
    let progress = t.step(START_S + 30, 0, turning);
    if !turning {
        assert_eq!(progress, Progress::Finished, "nothing moved for 30 s");
        return;
    }
    assert_eq!(
        progress,
        Progress::Throttled,
        "sending for 30 s while the budget turns over is not idle"
    );
    // The budget frees: the request is served.
    let progress = t.step(START_S + 31, usize::MAX, turning);
    assert_ne!(progress, Progress::Finished);
    let mut buffer = [0u8; 64];
    let read = t.client.read(&t.connection, &mut buffer).unwrap();
    assert_eq!(&buffer[..read], b"STORED\r\n");
}

/// Two clients of `server`, accepted in order: the wire, kv's and the clients' stacks,
/// the clients' connections and the clock.
fn two_clients(server: &mut Server<'_>) -> (Wire, Stack, Stack, [rexo_net::Connection; 2], u64) {
    let (wire, mut kv_stack, mut client, listener) = listening(4);
    let mut now_ns = 0;
    let connections = [(); 2].map(|()| {
        let connection = client.connect(KV, TcpOptions::default()).unwrap();
        let accepted = accept_one(&wire, &mut kv_stack, &mut client, &listener, &mut now_ns);
        server
            .clients
            .push(Client::new(accepted, CLOCK_START_S, IDLE_TIMEOUT_S));
        connection
    });
    assert_eq!(server.clients.len(), 2);
    (wire, kv_stack, client, connections, now_ns)
}

/// The exemption from the budget of the client with the most unserved input follows
/// that client when another one ends before it in the same pass (the last client then
/// takes the ended one's place), and goes to no one when it is the one that ended.
#[test]
fn the_lead_follows_its_client_when_another_ends() {
    let data = [b'v'; 1000];
    for leader_ends in [false, true] {
        let store = Shards::new(CacheConfig::default(), 1, CLOCK_START_S);
        let shared = Shared::new(Clock::FromBoot, store, 1, 10, 0);
        let mut kv = Server::new(&shared);
        let (wire, mut server, mut client, [first, second], mut now_ns) = two_clients(&mut kv);
        let info = ServerInfo::default();
        // One client's large request, partly sent, past the 10-byte budget: it leads.
        let (leader, other) = if leader_ends {
            (first, second)
        } else {
            (second, first)
        };
        let line = b"set big 0 0 100000\r\n";
        client.write(&leader, line).unwrap();
        for round in 0..10 {
            if round < 5 {
                client.write(&leader, &data).unwrap();
            }
            exchange(&wire, &mut server, &mut client, &mut now_ns);
            kv.step_clients(&mut server, CLOCK_START_S, &info);
        }
        let leads_with = line.len() + 5 * data.len();
        let leader_at = usize::from(!leader_ends);
        assert_eq!(kv.clients[leader_at].input_len(), leads_with);
        if leader_ends {
            // The other client's request line is read (it holds nothing yet); its data
            // then waits, and the leader closes with its request unfinished.
            client.write(&other, b"set k 0 0 2000\r\n").unwrap();
            for _ in 0..3 {
                exchange(&wire, &mut server, &mut client, &mut now_ns);
                kv.step_clients(&mut server, CLOCK_START_S, &info);
            }
            client.write(&other, &data).unwrap();
            client.close(leader).unwrap();
        } else {
            // The other client quits; more of the leader's data waits.
            client.write(&other, b"quit\r\n").unwrap();
            client.write(&leader, &data).unwrap();
        }
        for _ in 0..10 {
            exchange(&wire, &mut server, &mut client, &mut now_ns);
        }
        // One pass: the first client ends, the second takes its place.
        assert_eq!(
            kv.step_clients(&mut server, CLOCK_START_S, &info),
            Pass::Busy
        );
        assert_eq!(kv.clients.len(), 1);
        let expected = if leader_ends {
            // No lead this pass: the other client, past the budget, reads nothing.
            b"set k 0 0 2000\r\n".len()
        } else {
            leads_with + data.len()
        };
        assert_eq!(
            kv.clients[0].input_len(),
            expected,
            "leader_ends {leader_ends}"
        );
    }
}

/// kv speaks text only: a binary protocol request is not waited on as an unfinished
/// line (its client would get nothing until the idle timeout) but closes the
/// connection at once, unanswered.
#[test]
fn a_binary_protocol_request_is_closed_at_once() {
    let mut get = vec![rexo_memcache::BINARY_REQUEST_MAGIC, 0x00, 0, 1];
    get.resize(24, 0);
    get.push(b'k');
    let (ended, answer) = serve_until_it_ends(&get);
    assert_eq!(ended, Some(Progress::Finished));
    assert!(answer.is_empty(), "{answer:?}");
}

/// A long `get` line trickling in small pieces is searched once: kv remembers how far
/// the search for its end got rather than searching it from its start on every read
/// (quadratic CPU for a 1 MiB line: a denial of service), and answers it whole.
#[test]
fn a_trickled_line_is_searched_once() {
    let mut line = format!("get k{}", " missing".repeat(4000)).into_bytes();
    line.extend_from_slice(b"\r\n");
    let (mut trickled, mut searched) = (0, usize::MAX);
    let (ended, answer) = serve_in_pieces(&line, 16, |kv, sent| {
        if sent < line.len() && kv.input_len() > 0 {
            // Every byte held of the unfinished line has been searched.
            assert_eq!(kv.searched(), kv.input_len());
            trickled += 1;
        }
        searched = kv.searched();
    });
    assert!(trickled > 100, "the line came in {trickled} reads");
    assert_eq!((ended, answer.as_slice()), (None, &b"END\r\n"[..]));
    assert_eq!(searched, 0);
}

/// Peers that never read cannot make kv hold sockets without bound: those turned away
/// past [`MAX_CONNECTIONS`] are reset once told so, and past [`MAX_CLOSING`] connections
/// whose answers wait unread in the stack, the next one kv ends is reset rather than
/// closed in order (each holds its buffers until its peer takes what was sent).
#[test]
fn connections_of_peers_that_never_read_hold_a_bounded_number_of_sockets() {
    let (wire, mut server, mut client) = wire();
    let kv_options = TcpOptions {
        receive_buffer: 16 * 1024,
        send_buffer: 32 * 1024,
        ..TcpOptions::default()
    };
    let listener = server.listen(PORT, BACKLOG, kv_options).unwrap();
    let store = Shards::new(CacheConfig::default(), 1, CLOCK_START_S);
    let shared = Shared::new(Clock::FromBoot, store, 1, 1 << 20, IDLE_TIMEOUT_S);
    let mut kv = Server::new(&shared);
    let info = ServerInfo::default();
    let mut now_ns = 0;
    let listening = server.sockets_in_use();
    // A peer that takes 16 bytes and no more.
    let never_reads = TcpOptions {
        receive_buffer: 16,
        ..TcpOptions::default()
    };
    let mut held = Vec::new();
    let mut set = b"set k 0 0 1000\r\n".to_vec();
    set.extend_from_slice(&[b'v'; 1000]);
    set.extend_from_slice(b"\r\n");
    for round in 0..4 {
        // MAX_CONNECTIONS clients and 32 more, turned away.
        for _ in 0..MAX_CONNECTIONS + 32 {
            held.push(client.connect(KV, never_reads).unwrap());
        }
        for _ in 0..200 {
            exchange(&wire, &mut server, &mut client, &mut now_ns);
            kv.accept_clients(&mut server, &listener, CLOCK_START_S);
            kv.step_clients(&mut server, CLOCK_START_S, &info);
        }
        assert_eq!(kv.clients.len(), MAX_CONNECTIONS, "round {round}");
        // Each asks for more than it takes, and quits.
        let asking = &held[held.len() - MAX_CONNECTIONS - 32..];
        for connection in asking {
            let request = if round == 0 {
                [&set[..], b"get k k\r\nquit\r\n"].concat()
            } else {
                b"get k k\r\nquit\r\n".to_vec()
            };
            let _ = client.write(connection, &request);
        }
        for _ in 0..200 {
            exchange(&wire, &mut server, &mut client, &mut now_ns);
            kv.accept_clients(&mut server, &listener, CLOCK_START_S);
            kv.step_clients(&mut server, CLOCK_START_S, &info);
        }
        assert!(kv.clients.is_empty(), "round {round}: every client quit");
    }
    // 384 connections ended or turned away: at most MAX_CLOSING hold their sockets.
    let sockets = server.sockets_in_use() - listening;
    assert!(sockets <= MAX_CLOSING, "{sockets} sockets held");
}

/// A request still unfinished [`REQUEST_DEADLINE_S`] after its first byte closes its
/// connection, however often its bytes come: a byte every 30 s (never idle for the 300 s
/// timeout) of a `get` line cannot hold a connection place for hours.
#[test]
fn a_request_trickling_past_its_deadline_is_closed() {
    let mut t = one_client(IDLE_TIMEOUT_S);
    let line = b"get aaaaaaaaaaaaaaaaaaaaaaaa";
    let mut finished_at = None;
    for (i, byte) in line.iter().enumerate() {
        let now_s = START_S + i as u64 * 30;
        assert_eq!(t.client.write(&t.connection, &[*byte]).unwrap(), 1);
        if t.step(now_s, usize::MAX, true) == Progress::Finished {
            finished_at = Some(now_s - START_S);
            break;
        }
    }
    assert_eq!(
        finished_at,
        Some(REQUEST_DEADLINE_S),
        "closed at its deadline"
    );
    assert!(t.kv.timed_out());
    // A whole request arriving in pieces within the deadline is served.
    let mut t = one_client(IDLE_TIMEOUT_S);
    for (i, piece) in [&b"vers"[..], b"ion\r\n"].iter().enumerate() {
        t.client.write(&t.connection, piece).unwrap();
        let now_s = START_S + i as u64 * (REQUEST_DEADLINE_S - 1);
        assert_ne!(t.step(now_s, usize::MAX, true), Progress::Finished);
    }
    let mut buffer = [0u8; 64];
    let read = t.client.read(&t.connection, &mut buffer).unwrap();
    assert!(buffer[..read].starts_with(b"VERSION "));
}

/// A `shutdown` sent behind a request whose answers its client never takes still stops
/// the app when the connection times out, rather than being lost with it.
#[test]
fn a_shutdown_behind_answers_never_taken_stops_the_app_at_the_timeout() {
    let mut t = one_client(IDLE_TIMEOUT_S);
    // About 153 KB of answers: more than kv's send buffer and the client's window hold
    // (128 KiB), but all except what kv queues before it reads `shutdown`.
    let (request, _) = hundred_gets();
    let request = format!("{request}get{}\r\nshutdown\r\n", " k".repeat(50));
    let mut sent = 0;
    for _ in 0..100 {
        sent += t
            .client
            .write(&t.connection, &request.as_bytes()[sent..])
            .unwrap_or(0);
        let progress = t.step(START_S, usize::MAX, true);
        assert!(matches!(progress, Progress::Moved | Progress::Idle));
        if sent == request.len() {
            break;
        }
    }
    assert_eq!(sent, request.len());
    assert!(t.kv.held() > 0, "answers wait unsent");
    assert_eq!(
        t.step(START_S + IDLE_TIMEOUT_S - 1, usize::MAX, true),
        Progress::Idle
    );
    assert_eq!(
        t.step(START_S + IDLE_TIMEOUT_S + 1, usize::MAX, true),
        Progress::Shutdown
    );
}

/// kv's clock is the kernel's Unix time at every moment (memcached's `time`, "current
/// UNIX time according to the server"), so `stats` gives that `time` and an `uptime`
/// that turn together when the Unix second turns, never back nor a second early or late:
/// here a wall clock whose seconds turn 0.1 s into each of the boot clock's, read every
/// 10 ms for 5 s. Before, the clock was the Unix time at the start less the boot clock's
/// whole seconds then, plus its whole seconds since: it turned with the boot clock's
/// seconds, a second ahead of the Unix time for 0.9 s of each. Without a wall clock it
/// counts from boot.
#[test]
fn the_cache_clock_is_the_kernels_unix_time_at_every_moment() {
    let boot_unix_ns: u64 = 1_700_000_000_900_000_000;
    let unix_time_s = |now_ns: u64| Ok((boot_unix_ns + now_ns) / 1_000_000_000);
    let started_ns = 500_000_000;
    let clock = Clock::new(unix_time_s(started_ns));
    let cache = Cache::new(
        CacheConfig::default(),
        clock.now_s(|| started_ns, || unix_time_s(started_ns)),
    );
    let started = unix_time_s(started_ns).unwrap();
    for now_ns in (started_ns..started_ns + 5_000_000_000).step_by(10_000_000) {
        let stats = cache.stats(clock.now_s(|| now_ns, || unix_time_s(now_ns)));
        let unix = unix_time_s(now_ns).unwrap();
        assert_eq!(
            (stats.time, stats.uptime),
            (unix, unix - started),
            "at {now_ns} ns"
        );
    }
    let clock = Clock::new(Err(ApiError::NoWallClock));
    assert_eq!(clock, Clock::FromBoot);
    let no_wall_clock = || panic!("the wall clock is not asked");
    assert_eq!(
        clock.now_s(|| 2_500_000_000, no_wall_clock),
        CLOCK_START_S + 2
    );
}

/// The key hash's seed is the kernel's random number whenever it answers, the clock not
/// even read; only without one is it the clock, and the kernel's error comes with it for
/// the warning. Before, it was always the boot clock, nearly the same on every boot under
/// QEMU, so a client could narrow it down and send keys that collide.
#[test]
fn the_hash_seed_is_the_kernels_random_number_and_only_without_it_the_clock() {
    let no_clock = || -> u64 { panic!("the clock read though the kernel gave a random number") };
    assert_eq!(
        hash_seed(|| Ok(0x1234_5678_9abc_def0), no_clock),
        (0x1234_5678_9abc_def0, None)
    );
    let (fallback, why) = hash_seed(|| Err(ApiError::NoRandom), || 1_000);
    assert_eq!(why, Some(ApiError::NoRandom));
    assert_eq!(fallback, 1_000 ^ 0x6b76_5f72_6578_6f00);
}
