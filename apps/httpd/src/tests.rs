//! httpd's connection handling on the host: the server's [`Connections`] (the code the
//! app's serving loop runs) on one `rexo-net` stack, test clients on another, joined by a simulated wire with a simulated clock,
//! so every run is the same. Pipelining, a peer gone mid-body beside a normal one, a
//! 100 KB head, idle connections, a request trickling in (and searched once), downloads
//! taken slowly and too slowly, dated answers, pipelined rendered pages, the stop after the
//! shutdown hook waiting for answers being sent, and mutated request streams
//! from a deterministic generator. Each test runs twice: the server's port on smoltcp and on `rexo-tcp`.

use std::vec::Vec;

use rexo_http::{DateField, Page, Site, Step};
use rexo_net::wire::Wire;
use rexo_net::{Connection, Endpoint, Ipv4Addr, Stack, TcpOptions};

use crate::client::{
    Client, IDLE_TIMEOUT_NS, LINGER_QUIET_NS, REQUEST_DEADLINE_NS, request_overdue,
};
use crate::connections::Connections;
use crate::status::Counters;
use crate::transport::{Tcp, Transport};
use crate::{DateClock, HTTP_PORT, Places, SHUTDOWN_GRACE_NS, TCP_OPTIONS};
use rexo_api::ApiError;

/// The server's address.
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The test clients' address.
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Simulated time per round.
const ROUND_NS: u64 = 100_000;
/// Simulated time between the reads of a slow reader (a [`World::read_slowly`] tick).
const TICK_NS: u64 = 100_000_000;

/// The server (its stack, site and clients) and a peer stack for the test clients.
struct World {
    wire: Wire,
    server: Transport,
    peer: Stack,
    site: Site,
    counters: spin::Mutex<Counters>,
    connections: Connections,
    /// The `Date` field the server's answers carry; `None` (no wall clock) unless a
    /// test sets one.
    date: Option<DateField>,
    /// The page rendered at `/`; none (the file table's) while empty.
    page: Vec<u8>,
    now_ns: u64,
}

impl World {
    /// A server with one core's places.
    fn new(tcp: Tcp) -> World {
        World::with_places(tcp, Places::per_core(1))
    }

    /// A server with `places`.
    fn with_places(tcp: Tcp, places: Places) -> World {
        let (wire, server, peer) = Wire::joining(SERVER, PEER);
        let server = Transport::serve(
            server,
            tcp,
            HTTP_PORT,
            (places, TCP_OPTIONS),
            crate::rexo_tcp_config(7, places),
        )
        .unwrap();
        World {
            wire,
            server,
            peer,
            site: crate::site::build(Vec::new()).0,
            counters: spin::Mutex::default(),
            connections: Connections::new(places),
            date: None,
            page: Vec::new(),
            now_ns: 0,
        }
    }

    /// Polls both stacks, accepts and moves every server connection on, as the app's
    /// loop does.
    fn round(&mut self) {
        self.peer.poll(self.now_ns).unwrap();
        self.wire.carry(|_| true);
        self.server.stack.poll(self.now_ns).unwrap();
        self.connections
            .accept(&mut self.server, &self.counters, self.now_ns);
        let page = &self.page;
        let mut pages = |path: &[u8], _| match path {
            b"/" if !page.is_empty() => Page::Ready {
                content_type: "text/html; charset=utf-8",
                body: page.clone(),
            },
            _ => Page::Unhandled,
        };
        self.connections.step(
            &mut self.server,
            &self.site,
            &mut pages,
            self.date.as_ref(),
            &self.counters,
            self.now_ns,
        );
        for client in self.clients() {
            assert!(
                client.buffered() <= self.site.limits.buffer_bound(),
                "a connection buffered more than the bound"
            );
            assert!(
                client.held() < 2 * self.site.limits.buffer_bound(),
                "a connection held twice the bound with its answered bytes"
            );
        }
        self.wire.carry(|_| true);
        self.now_ns += ROUND_NS;
    }

    /// The server's open connections.
    fn clients(&self) -> &[Client] {
        self.connections.clients()
    }

    /// A connection from the peer to the server, established, whose peer side takes
    /// 256 KiB before it reads.
    fn connect(&mut self) -> Connection {
        self.connect_with(TcpOptions {
            receive_buffer: 256 * 1024,
            ..TcpOptions::default()
        })
    }

    /// A connection from the peer to the server with `options` on the peer's side,
    /// established.
    fn connect_with(&mut self, options: TcpOptions) -> Connection {
        let server = Endpoint {
            address: SERVER,
            port: HTTP_PORT,
        };
        let connection = self.peer.connect(server, options).unwrap();
        for _ in 0..100 {
            if self.peer.is_established(&connection).unwrap() {
                return connection;
            }
            self.round();
        }
        panic!("no handshake");
    }

    /// Sends all of `bytes` on `connection`.
    fn send(&mut self, connection: &Connection, bytes: &[u8]) {
        let mut sent = 0;
        for _ in 0..100_000 {
            if sent == bytes.len() {
                return;
            }
            sent += self.peer.write(connection, &bytes[sent..]).unwrap();
            self.round();
        }
        panic!("sent only {sent} of {} bytes", bytes.len());
    }

    /// Reads from `connection` until `len` bytes came, or until it closes when `len`
    /// is `None`.
    fn receive(&mut self, connection: &Connection, len: Option<usize>) -> Vec<u8> {
        let mut received = Vec::new();
        let mut buffer = vec![0; 64 * 1024];
        for _ in 0..1_000_000 {
            if len.is_some_and(|len| received.len() >= len) {
                return received;
            }
            match self.peer.read(connection, &mut buffer) {
                Ok(read) => received.extend_from_slice(&buffer[..read]),
                Err(_) if len.is_none() => return received,
                Err(error) => panic!("{error} after {} bytes", received.len()),
            }
            self.round();
        }
        panic!("received only {} bytes", received.len());
    }

    /// Reads from `connection` until it closes or `rounds` passed.
    fn receive_for(&mut self, connection: &Connection, rounds: usize) -> Vec<u8> {
        self.read_slowly(connection, 64 * 1024, usize::MAX, rounds, ROUND_NS)
    }

    /// Reads at most `per_tick` bytes from `connection` every `tick_ns` (at least a
    /// round) until `len` bytes came, it ends, or `ticks` passed.
    fn read_slowly(
        &mut self,
        connection: &Connection,
        per_tick: usize,
        len: usize,
        ticks: usize,
        tick_ns: u64,
    ) -> Vec<u8> {
        let mut received = Vec::new();
        let mut buffer = vec![0; per_tick];
        for _ in 0..ticks {
            if received.len() >= len {
                break;
            }
            match self.peer.read(connection, &mut buffer) {
                Ok(read) => received.extend_from_slice(&buffer[..read]),
                Err(_) => break,
            }
            self.round();
            self.now_ns += tick_ns - ROUND_NS;
        }
        received
    }

    /// What the site answers to `requests` (pipelined), head and body, as one run.
    fn expected(&self, requests: &[u8]) -> Vec<u8> {
        let mut expected = Vec::new();
        let mut rest = requests;
        while !rest.is_empty() {
            let Step::Answer { response, consumed } =
                self.site.serve(rest, &mut |_, _| Page::Unhandled)
            else {
                panic!("an incomplete request");
            };
            expected.extend_from_slice(response.head());
            expected.extend_from_slice(response.body().bytes());
            rest = &rest[consumed..];
        }
        expected
    }
}

/// A GET request for `path`.
fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: rexo\r\n\r\n").into_bytes()
}

fn pipelined_requests_are_answered_in_order_byte_exact(tcp: Tcp) {
    let mut world = World::new(tcp);
    let connection = world.connect();
    let paths = [
        "/1k.txt",
        "/empty.txt",
        "/nope",
        "/100k.txt",
        "/style.css",
        "/1k.txt",
        "/rexo.png",
        "/about.html",
        "/1m.txt",
        "/1k.txt",
    ];
    let requests: Vec<u8> = paths.iter().flat_map(|path| get(path)).collect();
    let expected = world.expected(&requests);
    world.send(&connection, &requests);
    assert_eq!(world.receive(&connection, Some(expected.len())), expected);
    let counters = world.counters.lock();
    assert_eq!(counters.by_status.get(&200), Some(&9));
    assert_eq!(counters.by_status.get(&404), Some(&1));
}

/// Many more pipelined requests than the buffer holds (900 small ones, some 33 KB
/// against its 12 KiB, more than twice it), most answered in the step that read them:
/// answered in order, byte exact, whether a request's bytes arrive whole or cut at the
/// buffer's end, the buffer under twice the bound with its answered bytes (checked
/// every round: answered bytes never dropped would go past it).
fn a_deep_pipeline_is_answered_in_order_byte_exact(tcp: Tcp) {
    let mut world = World::new(tcp);
    let connection = world.connect();
    let paths = ["/empty.txt", "/nope", "/1k.txt"];
    let requests: Vec<u8> = (0..900).flat_map(|i| get(paths[i % paths.len()])).collect();
    assert!(requests.len() > 2 * world.site.limits.buffer_bound());
    let expected = world.expected(&requests);
    world.send(&connection, &requests);
    assert_eq!(world.receive(&connection, Some(expected.len())), expected);
    let counters = world.counters.lock();
    assert_eq!(counters.by_status.get(&200), Some(&600));
    assert_eq!(counters.by_status.get(&404), Some(&300));
}

fn a_peer_gone_mid_body_stops_only_its_own_connection(tcp: Tcp) {
    let mut world = World::new(tcp);
    let gone = world.connect();
    world.send(&gone, &get("/10m.bin"));
    let part = world.receive(&gone, Some(200_000));
    assert!(part.len() >= 200_000);
    world.peer.abort(gone).unwrap();
    let other = world.connect();
    let request = get("/100k.txt");
    let expected = world.expected(&request);
    world.send(&other, &request);
    assert_eq!(world.receive(&other, Some(expected.len())), expected);
    for _ in 0..100 {
        world.round();
    }
    assert_eq!(world.counters.lock().broken, 1);
    assert_eq!(
        world.clients().len(),
        1,
        "the broken connection was dropped"
    );
}

fn a_100_kb_head_is_answered_431_and_the_rest_discarded(tcp: Tcp) {
    let mut world = World::new(tcp);
    let connection = world.connect();
    let mut request = b"GET /1k.txt HTTP/1.1\r\nHost: rexo\r\nX-Filler: ".to_vec();
    request.resize(request.len() + 100_000, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    world.send(&connection, &request);
    let answer = world.receive(&connection, None);
    let text = "431 Request Header Fields Too Large\n";
    let head = format!(
        "HTTP/1.1 431 Request Header Fields Too Large\r\nServer: Rexo\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    assert_eq!(answer, [head.as_bytes(), text.as_bytes()].concat());
    // It closed its side at once (rexo-tcp) or lingered until the peer went quiet
    // (smoltcp), reading the rest; then it closed in order.
    assert!(world.clients().is_empty());
    assert_eq!(world.counters.lock().linger_reset, 0);
}

#[test]
fn a_refusal_that_closes_sends_its_fin_at_once_on_rexo_tcp() {
    let mut world = World::new(Tcp::Rexo);
    let connection = world.connect();
    world.send(&connection, b"GET /nope HTTP/1.0\r\n\r\n");
    let asked_ns = world.now_ns;
    let answer = world.receive(&connection, None);
    assert!(answer.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
    // The end of stream came with the answer, not after the client was quiet 250 ms.
    let took_ns = world.now_ns - asked_ns;
    assert!(
        took_ns < LINGER_QUIET_NS / 10,
        "the FIN came {took_ns} ns later"
    );
    for _ in 0..100 {
        world.round();
    }
    assert!(world.clients().is_empty());
    assert_eq!(world.counters.lock().linger_reset, 0);
}

fn idle_connections_are_closed(tcp: Tcp) {
    let mut world = World::new(tcp);
    let idle = world.connect();
    // Half a request, then silence.
    world.send(&idle, b"GET /1k.txt HTTP/1.1\r\n");
    let rounds = IDLE_TIMEOUT_NS / ROUND_NS + 100;
    for _ in 0..rounds {
        world.round();
    }
    assert_eq!(world.counters.lock().idle_closed, 1);
    assert!(world.clients().is_empty());
    assert_eq!(world.receive(&idle, None), b"");
}

fn a_request_trickling_in_is_closed_at_its_deadline(tcp: Tcp) {
    let mut world = World::new(tcp);
    let slow = world.connect();
    let head = b"GET /1k.txt HTTP/1.1\r\nHost: rexo\r\n\r\n";
    // One byte every 14 s (slowloris): never idle for IDLE_TIMEOUT_NS.
    let gap_ns = IDLE_TIMEOUT_NS - 1_000_000_000;
    let mut sent = 0;
    while world.counters.lock().slow_closed == 0 && sent < head.len() {
        world.send(&slow, &head[sent..sent + 1]);
        sent += 1;
        world.now_ns += gap_ns;
        world.round();
    }
    let counters = world.counters.lock().clone();
    assert_eq!((counters.slow_closed, counters.idle_closed), (1, 0));
    let deadline_bytes = (REQUEST_DEADLINE_NS / gap_ns + 1) as usize;
    assert_eq!(
        sent, deadline_bytes,
        "answered at the first look past the deadline"
    );
    let answer = world.receive(&slow, None);
    assert!(
        answer.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(answer.windows(17).any(|w| w == b"Connection: close"));
    // A request that comes whole within the deadline is answered.
    let mut world = World::new(tcp);
    let patient = world.connect();
    // In three pieces 9 s apart: 18 s in all.
    for piece in [&b"GET /1k.txt HTTP/1.1\r\n"[..], b"Host: rexo\r\n", b"\r\n"] {
        world.now_ns += 9_000_000_000;
        world.round();
        world.send(&patient, piece);
    }
    let answer = world.receive(&patient, Some(17));
    assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
    assert_eq!(world.counters.lock().slow_closed, 0);
}

/// What a request sent as `start` at once and then a byte every 14 s (never idle for
/// [`IDLE_TIMEOUT_NS`]) gets once past [`REQUEST_DEADLINE_NS`]: its 408.
fn answer_past_the_deadline(tcp: Tcp, start: &[u8]) -> Vec<u8> {
    let mut world = World::new(tcp);
    let slow = world.connect();
    world.send(&slow, start);
    let gap_ns = IDLE_TIMEOUT_NS - 1_000_000_000;
    while world.counters.lock().slow_closed == 0 {
        world.now_ns += gap_ns;
        world.round();
        world.send(&slow, b"a");
    }
    world.receive(&slow, None)
}

/// RFC 9110 9.3.2: the 408 to a HEAD request that did not come whole in time has no
/// content, whether its request line was whole or not (its method and a space came);
/// its head is the GET's.
fn a_head_request_past_its_deadline_gets_its_408_without_a_body(tcp: Tcp) {
    for after_method in [" /1k.txt HTTP/1.1\r\nHost: rexo\r\n", " /1k"] {
        let get = answer_past_the_deadline(tcp, format!("GET{after_method}").as_bytes());
        let get = String::from_utf8_lossy(&get).into_owned();
        assert!(get.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{get}");
        let get_head = get.strip_suffix("408 Request Timeout\n").unwrap();
        let head = answer_past_the_deadline(tcp, format!("HEAD{after_method}").as_bytes());
        assert_eq!(String::from_utf8_lossy(&head), get_head, "{after_method:?}");
    }
}

/// A head trickling in small pieces is searched once: the connection keeps how far the
/// parse got rather than parsing the head from its start on every read (quadratic CPU:
/// some 30 million steps for an 8 KiB head at a byte per segment), and answers it whole.
fn a_trickled_head_is_searched_once(tcp: Tcp) {
    let mut world = World::new(tcp);
    let connection = world.connect();
    let mut request = b"GET /1k.txt HTTP/1.1\r\nHost: rexo\r\n".to_vec();
    while request.len() < 8000 {
        request.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let expected = world.expected(&request);
    let mut trickled = 0;
    for piece in request.chunks(16) {
        world.send(&connection, piece);
        let client = &world.clients()[0];
        if client.buffered() > 0 {
            // Every byte held of the unfinished head has been searched.
            assert_eq!(client.searched(), client.buffered());
            trickled += 1;
        }
    }
    assert!(trickled > 400, "the head came in {trickled} reads");
    assert_eq!(world.receive(&connection, Some(expected.len())), expected);
}

/// A download that lasts longer than the idle timeout on a keep-alive connection goes
/// on while its client takes it (here 20 KiB/s: 1 MiB in over 50 s), and the
/// connection then serves the next request; a client that takes fewer than
/// `MIN_ACKNOWLEDGED_BYTES` in an idle timeout is reset as idle.
fn a_slow_download_lasts_while_it_moves(tcp: Tcp) {
    let mut world = World::new(tcp);
    let connection = world.connect();
    let request = get("/1m.txt");
    let expected = world.expected(&request);
    world.send(&connection, &request);
    let started_ns = world.now_ns;
    let received = world.read_slowly(&connection, 2048, expected.len(), 1_000, TICK_NS);
    assert!(received == expected, "{} bytes came", received.len());
    assert!(world.now_ns - started_ns > 3 * IDLE_TIMEOUT_NS);
    assert_eq!(world.counters.lock().idle_closed, 0);
    let request = get("/1k.txt");
    let expected = world.expected(&request);
    world.send(&connection, &request);
    assert_eq!(world.receive(&connection, Some(expected.len())), expected);
    // 640 B/s: under MIN_ACKNOWLEDGED_BYTES (16 KiB) in 15 s.
    let mut world = World::new(tcp);
    let trickle = world.connect();
    let request = get("/1m.txt");
    world.send(&trickle, &request);
    let ticks = (3 * IDLE_TIMEOUT_NS / TICK_NS) as usize;
    let received = world.read_slowly(&trickle, 64, usize::MAX, ticks, TICK_NS);
    assert!(received.len() < 512 * 1024, "{} bytes came", received.len());
    assert_eq!(world.counters.lock().idle_closed, 1);
    assert!(world.clients().is_empty(), "the trickling client is gone");
}

/// On `rexo-tcp`, a connection given back to the stack keeps its slot while its queued
/// bytes wait: an answer that closes the connection is drained under the idle bounds
/// before it is. A client that takes it whole gets it and a FIN; one that reads it too
/// slowly is reset, and the slot freed.
#[test]
fn a_closing_answer_is_bounded_until_acknowledged_on_rexo_tcp() {
    let mut world = World::new(Tcp::Rexo);
    let request = b"GET /1m.txt HTTP/1.1\r\nHost: rexo\r\nConnection: close\r\n\r\n";
    let expected = world.expected(request);
    let prompt = world.connect();
    world.send(&prompt, request);
    assert!(world.receive(&prompt, None) == expected);
    let slow = world.connect();
    world.send(&slow, request);
    let ticks = (3 * IDLE_TIMEOUT_NS / TICK_NS) as usize;
    let received = world.read_slowly(&slow, 64, usize::MAX, ticks, TICK_NS);
    assert!(received.len() < 512 * 1024, "{} bytes came", received.len());
    assert_eq!(world.counters.lock().idle_closed, 1);
    assert!(world.clients().is_empty());
    let own = world.server.stack.own_tcp().unwrap();
    assert_eq!(own.connections(), 0, "a connection still holds a slot");
}

/// After the shutdown hook a core stops once every answer was acknowledged by its
/// client, or [`SHUTDOWN_GRACE_NS`] after the ask. On `rexo-tcp`, which takes a whole
/// answer at once, a core that waited only until answers were queued stopped at once
/// and cut a download in flight after the final flush.
fn the_stop_waits_for_answers_being_sent(tcp: Tcp) {
    let mut world = World::new(tcp);
    let connection = world.connect();
    let request = get("/1m.txt");
    let expected = world.expected(&request);
    world.send(&connection, &request);
    for _ in 0..10 {
        world.round();
    }
    let asked = world.now_ns;
    assert!(
        !crate::may_stop(world.clients(), asked, world.now_ns),
        "stopped with the answer being sent"
    );
    assert!(world.receive(&connection, Some(expected.len())) == expected);
    // Past the peer's delayed acknowledgment (smoltcp's: 10 ms).
    for _ in 0..200 {
        world.round();
    }
    assert!(crate::may_stop(world.clients(), asked, world.now_ns));
    // A client that takes nothing holds the stop for the grace only.
    let stalled = world.connect();
    world.send(&stalled, &request);
    for _ in 0..10 {
        world.round();
    }
    assert!(!crate::may_stop(world.clients(), asked, world.now_ns));
    assert!(crate::may_stop(
        world.clients(),
        asked,
        asked + SHUTDOWN_GRACE_NS + 1
    ));
}

/// On `rexo-tcp`, connections draining their last answer have places of their own:
/// clients that do not take a `Connection: close` answer hold draining places, not the
/// places new clients are served in, and past the draining places the next connection
/// to drain is reset. Before, draining connections took serving places, so that a few
/// slow readers kept every new client waiting in the backlog.
#[test]
fn clients_slow_to_take_a_last_answer_keep_no_one_out_on_rexo_tcp() {
    let places = Places {
        clients: 2,
        draining: 2,
        backlog: 8,
    };
    let mut world = World::with_places(Tcp::Rexo, places);
    let request = b"GET /1m.txt HTTP/1.1\r\nHost: rexo\r\nConnection: close\r\n\r\n";
    // Four clients ask and never read: the answer fills their windows and waits. The
    // first two drain, the next two are served once they do and then reset.
    let stalled: Vec<_> = (0..4).map(|_| world.connect()).collect();
    for connection in &stalled {
        world.send(connection, request);
    }
    for _ in 0..100 {
        world.round();
    }
    assert_eq!(world.counters.lock().drain_reset, 2);
    assert_eq!(world.clients().len(), 2);
    assert!(world.clients().iter().all(Client::is_draining));
    // A new client is served beside the two draining.
    let prompt = world.connect();
    let request = get("/1k.txt");
    let expected = world.expected(&request);
    world.send(&prompt, &request);
    assert_eq!(world.receive_for(&prompt, 200), expected);
}

/// On smoltcp, whose stack keeps a socket closed in order, with its buffers, until the
/// client took the last answer, a connection given back past the core's draining
/// places is reset: clients that never take a `Connection: close` answer cannot make the
/// stack hold sockets without bound (it held one per such client).
#[test]
fn clients_that_never_take_a_last_answer_hold_bounded_sockets_on_smoltcp() {
    let places = Places {
        clients: 4,
        draining: 2,
        backlog: 8,
    };
    let mut world = World::with_places(Tcp::Smoltcp, places);
    let listening = world.server.stack.sockets_in_use();
    // Each takes 16 bytes of the answer and no more.
    let never_reads = TcpOptions {
        receive_buffer: 16,
        ..TcpOptions::default()
    };
    let request = b"GET /1k.txt HTTP/1.1\r\nHost: rexo\r\nConnection: close\r\n\r\n";
    for _ in 0..8 {
        let connection = world.connect_with(never_reads);
        world.send(&connection, request);
    }
    for _ in 0..200 {
        world.round();
    }
    assert!(world.clients().is_empty());
    let sockets = world.server.stack.sockets_in_use() - listening;
    assert_eq!(sockets, 2, "sockets held");
    assert_eq!(world.counters.lock().drain_reset, 6);
}

#[test]
fn a_request_is_overdue_only_past_its_deadline() {
    assert!(!request_overdue(None, u64::MAX), "no request begun");
    assert!(!request_overdue(Some(5), 5 + REQUEST_DEADLINE_NS));
    assert!(request_overdue(Some(5), 6 + REQUEST_DEADLINE_NS));
    assert!(
        !request_overdue(Some(10), 5),
        "a clock read before the start"
    );
}

/// A small xorshift generator: deterministic, and apps cannot use testkit.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

fn mutated_request_streams_get_well_formed_answers_and_bounded_buffers(tcp: Tcp) {
    let mut world = World::new(tcp);
    let seeds: [&[u8]; 4] = [
        b"GET /1k.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=3-9\r\n\r\n",
        b"HEAD /style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody",
        b"GET /100k.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n",
    ];
    let mut random = XorShift(0x6874_7470_6675_7a7a);
    for case in 0..200 {
        let mut stream = Vec::new();
        for _ in 0..1 + random.below(4) {
            stream.extend_from_slice(seeds[random.below(seeds.len())]);
        }
        for _ in 0..1 + random.below(8) {
            let at = random.below(stream.len() + 1);
            match random.below(5) {
                0 if at < stream.len() => stream[at] = random.next() as u8,
                1 => stream.insert(at, random.next() as u8),
                2 if at < stream.len() => {
                    stream.remove(at);
                }
                3 => {
                    let end = (at + random.below(32)).min(stream.len());
                    let run = stream[at..end].repeat(1 + random.below(500));
                    stream.splice(at..at, run);
                }
                _ => stream.truncate(at),
            }
        }
        let connection = world.connect();
        world.send(&connection, &stream);
        let answers = world.receive_for(&connection, 2_000);
        world.peer.abort(connection).unwrap();
        assert!(
            answers.is_empty() || answers.starts_with(b"HTTP/1.1 "),
            "case {case}: {:?}",
            String::from_utf8_lossy(&answers[..answers.len().min(100)])
        );
    }
    for _ in 0..100 {
        world.round();
    }
    assert!(world.clients().is_empty(), "every connection ended");
    let statuses = world.counters.lock().by_status.len();
    assert!(
        statuses >= 5,
        "the mutations reached only {statuses} statuses"
    );
    let connection = world.connect();
    let request = get("/1k.txt");
    let expected = world.expected(&request);
    world.send(&connection, &request);
    assert_eq!(world.receive(&connection, Some(expected.len())), expected);
}

/// With a wall clock, every answer carries the `Date` field (a fixed one here), between
/// its fields and its blank line, on both TCPs (on `rexo-tcp` as a piece of its own); the
/// interim `100 Continue` goes without.
fn answers_carry_the_date_field(tcp: Tcp) {
    let mut world = World::new(tcp);
    world.date = Some(DateField::new(784_111_777));
    let connection = world.connect();
    let requests = [get("/1k.txt"), get("/nope"), get("/100k.txt")].concat();
    let expected = world.expected(&requests);
    world.send(&connection, &requests);
    let line = b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    // Each answer grows by its `Date` line (its blank line was there).
    let answers = world.receive(&connection, Some(expected.len() + 3 * (line.len() - 2)));
    let undated = String::from_utf8_lossy(&answers).replace(
        "\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
        "\r\n\r\n",
    );
    assert_eq!(answers.windows(line.len()).filter(|w| w == line).count(), 3);
    assert!(undated.as_bytes() == expected);
    let head =
        b"GET /1k.txt HTTP/1.1\r\nHost: rexo\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    world.send(&connection, head);
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    assert_eq!(world.receive(&connection, Some(interim.len())), interim);
}

/// A client pipelining requests for a rendered page without reading holds one page
/// unacknowledged at a time, not one per request: here 40 requests for a 100 KB page
/// to a client whose window takes 256 KiB get 3 pages rendered (2 taken by its window,
/// 1 waiting), then all 40 once it reads. `rexo-tcp` only (as
/// `a_closing_answer_is_bounded_until_acknowledged_on_rexo_tcp`), which keeps queued
/// answers without copying them; on smoltcp an answer is copied into the socket's
/// bounded send buffer, which holds pages back by itself, so the test could not fail
/// there without the wait.
#[test]
fn pipelined_rendered_pages_wait_for_the_one_in_flight_on_rexo_tcp() {
    let mut world = World::new(Tcp::Rexo);
    world.page = vec![b'x'; 100_000];
    let connection = world.connect();
    let requests = get("/").repeat(40);
    world.send(&connection, &requests);
    for _ in 0..2_000 {
        world.round();
    }
    assert_eq!(world.counters.lock().by_status.get(&200), Some(&3));
    let answers = world.receive_for(&connection, 20_000);
    let heads = answers
        .windows(15)
        .filter(|w| w == b"HTTP/1.1 200 OK")
        .count();
    assert_eq!(heads, 40);
}

/// A client that sends `Expect: 100-continue` waits for the interim answer before it
/// sends the body (curl waits 1 s for it): it comes, once, then the final answer.
fn expect_100_continue_is_answered_before_the_body(tcp: Tcp) {
    let mut world = World::new(tcp);
    let connection = world.connect();
    let head =
        b"GET /1k.txt HTTP/1.1\r\nHost: rexo\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    world.send(&connection, head);
    assert_eq!(world.receive(&connection, Some(interim.len())), interim);
    // No second one while the body is still awaited.
    assert_eq!(world.receive_for(&connection, 100), b"");
    world.send(&connection, b"12345");
    let expected = world.expected(&[&head[..], b"12345"].concat());
    assert_eq!(world.receive(&connection, Some(expected.len())), expected);
}

/// Each test of this file on both TCPs.
macro_rules! on_both {
    ($($test:ident: $smoltcp:ident, $rexo:ident;)*) => {$(
        #[test]
        fn $smoltcp() {
            $test(Tcp::Smoltcp);
        }

        #[test]
        fn $rexo() {
            $test(Tcp::Rexo);
        }
    )*};
}

on_both! {
    pipelined_requests_are_answered_in_order_byte_exact: pipelined_requests_are_answered_in_order_byte_exact_on_smoltcp, pipelined_requests_are_answered_in_order_byte_exact_on_rexo_tcp;
    a_deep_pipeline_is_answered_in_order_byte_exact: a_deep_pipeline_is_answered_in_order_byte_exact_on_smoltcp, a_deep_pipeline_is_answered_in_order_byte_exact_on_rexo_tcp;
    a_peer_gone_mid_body_stops_only_its_own_connection: a_peer_gone_mid_body_stops_only_its_own_connection_on_smoltcp, a_peer_gone_mid_body_stops_only_its_own_connection_on_rexo_tcp;
    a_100_kb_head_is_answered_431_and_the_rest_discarded: a_100_kb_head_is_answered_431_and_the_rest_discarded_on_smoltcp, a_100_kb_head_is_answered_431_and_the_rest_discarded_on_rexo_tcp;
    idle_connections_are_closed: idle_connections_are_closed_on_smoltcp, idle_connections_are_closed_on_rexo_tcp;
    a_request_trickling_in_is_closed_at_its_deadline: a_request_trickling_in_is_closed_at_its_deadline_on_smoltcp, a_request_trickling_in_is_closed_at_its_deadline_on_rexo_tcp;
    a_head_request_past_its_deadline_gets_its_408_without_a_body: a_head_request_past_its_deadline_gets_its_408_without_a_body_on_smoltcp, a_head_request_past_its_deadline_gets_its_408_without_a_body_on_rexo_tcp;
    a_trickled_head_is_searched_once: a_trickled_head_is_searched_once_on_smoltcp, a_trickled_head_is_searched_once_on_rexo_tcp;
    mutated_request_streams_get_well_formed_answers_and_bounded_buffers: mutated_request_streams_get_well_formed_answers_and_bounded_buffers_on_smoltcp, mutated_request_streams_get_well_formed_answers_and_bounded_buffers_on_rexo_tcp;
    expect_100_continue_is_answered_before_the_body: expect_100_continue_is_answered_before_the_body_on_smoltcp, expect_100_continue_is_answered_before_the_body_on_rexo_tcp;
    a_slow_download_lasts_while_it_moves: a_slow_download_lasts_while_it_moves_on_smoltcp, a_slow_download_lasts_while_it_moves_on_rexo_tcp;
    answers_carry_the_date_field: answers_carry_the_date_field_on_smoltcp, answers_carry_the_date_field_on_rexo_tcp;
    the_stop_waits_for_answers_being_sent: the_stop_waits_for_answers_being_sent_on_smoltcp, the_stop_waits_for_answers_being_sent_on_rexo_tcp;
}

#[test]
fn the_isn_key_is_two_kernel_random_numbers_and_only_without_them_the_clock_and_mac() {
    let mac = [2, 0, 0, 0, 0, 1];
    let mut draws = [0x1111_2222_3333_4444_u64, 0x5555_6666_7777_8888].into_iter();
    let (key, predictable) = crate::isn_secret(|| Ok(draws.next().unwrap()), 1_000, mac);
    assert_eq!(key, 0x1111_2222_3333_4444_5555_6666_7777_8888);
    assert_eq!(predictable, None);
    // Without them: the clock and the MAC, and the error for the warning.
    let no_random = || Err(rexo_api::ApiError::NoRandom);
    let (fallback, why) = crate::isn_secret(no_random, 1_000, mac);
    assert_eq!(why, Some(rexo_api::ApiError::NoRandom));
    let expected = 1_000_u64.rotate_left(17) ^ u64::from_le_bytes([2, 0, 0, 0, 0, 1, 0x5e, 0xed]);
    assert_eq!(fallback, u128::from(expected));
}

/// A core whose wall clock gave no time when it started serving asks again once a second
/// and dates its answers from the second the clock answers (RFC 9110 6.6.1: an origin
/// server with a clock MUST send `Date`), then moves the field on with it. Before, a core
/// that found no clock at its start never asked again: its answers carried no `Date`
/// for good, though the kernel reads the clock again a minute after a failed reading.
#[test]
fn answers_carry_date_from_the_second_the_wall_clock_first_answers() {
    let shown = |clock: &DateClock| {
        let line = clock.field().map(|field| field.line().bytes().to_vec());
        line.map(|line| String::from_utf8(line).unwrap())
    };
    let mut clock = DateClock::new(300_000_000, || Err(ApiError::NoWallClock));
    assert_eq!(shown(&clock), None);
    let not_again = || panic!("asked twice in one second");
    assert!(!clock.tick(900_000_000, not_again));
    assert!(!clock.tick(1_000_000_000, || Err(ApiError::NoWallClock)));
    assert_eq!(shown(&clock), None);
    assert!(clock.tick(61_000_000_000, || Ok(1_700_000_000)));
    let date = "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\n";
    assert_eq!(shown(&clock).as_deref(), Some(date));
    assert!(!clock.tick(62_000_000_000, || Ok(1_700_000_001)));
    let date = "Date: Tue, 14 Nov 2023 22:13:21 GMT\r\n\r\n";
    assert_eq!(shown(&clock).as_deref(), Some(date));
}

/// The test hook stops the server on `GET /__shutdown` only: HEAD is safe (RFC 9110
/// 9.3.2), so a HEAD there stops nothing and finds no page (404, as without the hook);
/// without the hook a GET there stops nothing either.
#[test]
fn only_a_get_of_the_shutdown_path_stops_the_server() {
    let site = crate::site::build(Vec::new()).0;
    let ask = |request: &str, shutdown_hook: bool| {
        let mut stopped = false;
        let mut pages = |path: &[u8], head_only| {
            crate::dynamic_page(
                path,
                head_only,
                shutdown_hook,
                || b"status".to_vec(),
                || stopped = true,
            )
        };
        let Step::Answer { response, .. } = site.serve(request.as_bytes(), &mut pages) else {
            panic!("{request}: no answer");
        };
        (response.status().code(), stopped)
    };
    assert_eq!(
        ask("HEAD /__shutdown HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (404, false)
    );
    assert_eq!(
        ask("GET /__shutdown HTTP/1.1\r\nHost: x\r\n\r\n", false),
        (404, false)
    );
    assert_eq!(
        ask("GET /__shutdown HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (200, true)
    );
    assert_eq!(
        ask("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (200, false)
    );
}
