//! Our own DNS stub resolver (RFC 1035): A queries to the configured servers (up to 3,
//! as a DHCP lease gives them), each from a UDP port of a block the app owns,
//! retransmitted, and answers checked before they count.
//!
//! # Why our own
//!
//! smoltcp's `dns::Socket` (0.12 and 0.13) picks each query's source port at random above 1024
//! (`src/socket/dns.rs`, `start_query_raw` calling `rand_source_port`) with no way to
//! choose or read it. An app bound to a shared interface by packet filters then had to
//! take every UDP datagram from port 53 to its address, a filter that overlaps any
//! other app's UDP filter (`udp dport 11211` too), so the kernel refused the second of
//! two such apps. Here each query goes from a port drawn from a block the app owns
//! ([`DnsPorts`], [`crate::Stack::set_dns_ports`]), and [`DnsPorts::filter`] takes
//! only answers to that block: the blocks of two apps are disjoint filters.
//!
//! # What a query does
//!
//! A query has a random 16-bit ID, asks for recursion (RD) and holds one question
//! (QTYPE A, QCLASS IN, the name as the caller spelt it) and an EDNS(0) OPT record
//! saying the resolver takes answers of up to 1232 bytes (RFC 6891), not RFC 1035's
//! 512, so that fewer come truncated; a server that answers it FORMERR, as one without
//! EDNS does (RFC 6891 7), is asked again at once without it, and only FORMERR to that
//! is its failure. The resolver remembers such a server (RFC 6891 6.2.2: a requestor
//! may record that a server does not speak EDNS) for 15 minutes, or until its list of
//! servers changes (a new lease or configuration): every query meanwhile goes to it
//! without the OPT record, and to the others with it, costing no round trip more. A
//! query is sent at once, again after 1, 2 and 4 more seconds, and given up 10 s after
//! it started ([`NetError::DnsTimeout`]). With several servers each sending goes to the next
//! (the first server, then the second after 1 s, ...), so a server that does not
//! answer costs a second, not the query. An answer counts from any server the query
//! was sent to, port 53, to the query's port, with its ID, QR set, opcode 0 and the
//! same question (the name compared without regard to ASCII case, RFC 1035 2.3.3), so
//! a slow server's answer still counts after the next was asked. NXDOMAIN or no A
//! record is [`NetError::NotResolved`]. Any other error code (FORMERR, SERVFAIL,
//! NOTIMP, REFUSED), and an error code without the question (QDCOUNT 0, as servers
//! answer FORMERR or REFUSED; NXDOMAIN too, whose name is then unsaid), says that
//! server failed (RFC 1034 5.3.3 step 4): it is not asked again nor heard, and the
//! query goes at once to the next server that has not failed; when none is left, or
//! the query is given up after one failed, the last code is the outcome,
//! [`NetError::DnsServerError`]. Up to 4 A records are taken, for the name or a name
//! along its CNAME chain. A malformed answer (a read past its end, a compression
//! pointer that does not point back, a reserved label type (0x40, 0x80), a name over
//! 255 bytes) is ignored.
//!
//! # Over TCP
//!
//! A truncated answer (TC) is not read (RFC 2181 9: its records may be a part of what
//! was asked): the resolver asks that server the same query over TCP (RFC 7766 5, RFC
//! 1035 4.2.2), one server at a time, and stops sending over UDP meanwhile; a later full
//! answer over UDP still counts, and ends the connection. The stack opens the
//! connection as it opens its own (smoltcp's connect, from a port of the DNS port block
//! or of the dynamic range whose replies land on the stack: [`DnsPorts::tcp_filter`]),
//! and the query goes with a 2-byte length prefix; the answer is read to the length
//! its own prefix gives and checked as one over UDP (the same ID, QR, opcode 0, the
//! same question). The exchange is given up 5 s after the truncated answer came.
//! Whatever goes wrong fails that server as an error code does, with a
//! [`NetError::DnsOverTcp`] naming why ([`DnsTcpFailure`]: refused, closed early, not
//! the answer, timed out; an answer over TCP truncated too is
//! [`NetError::DnsTruncated`]): the query goes on with the next server that has not
//! failed, and the last failure is its outcome when none is left. The connection,
//! done, closes as one the app closed does ([`crate::Stack::closing_sockets`]).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use core::ops::RangeInclusive;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::cores::PortClass;
use crate::stack::{EPHEMERAL_PORTS, NetError, mix};

/// Queries under way at once, each on its own port.
pub(crate) const MAX_QUERIES: usize = 4;
/// The most servers kept: as many as smoltcp's DHCP client takes from a lease.
const MAX_SERVERS: usize = 3;
/// The most addresses an answer gives.
const MAX_ADDRESSES: usize = 4;
/// The port DNS servers answer from.
const DNS_PORT: u16 = 53;
/// When a query is sent again, after its previous sending.
const RETRANSMIT_AFTER_NS: [u64; 3] = [1_000_000_000, 2_000_000_000, 4_000_000_000];
/// When a query is given up, after it started.
pub(crate) const GIVE_UP_AFTER_NS: u64 = 10_000_000_000;
/// The most bytes a name takes in a message, its length bytes and final zero included
/// (RFC 1035, 2.3.4).
const MAX_NAME_BYTES: usize = 255;
/// The longest label (RFC 1035, 2.3.4).
const MAX_LABEL_BYTES: usize = 63;
/// The most CNAME records followed from the name asked.
const MAX_CNAME_HOPS: usize = 8;
/// Record type A.
pub(crate) const TYPE_A: u16 = 1;
/// Record type CNAME.
const TYPE_CNAME: u16 = 5;
/// Class IN.
const CLASS_IN: u16 = 1;
/// Flag QR: the message is a response.
const FLAG_RESPONSE: u16 = 0x8000;
/// Flag TC: the response was truncated.
const FLAG_TRUNCATED: u16 = 0x0200;
/// Flag RD: recursion desired.
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
/// The response code for a message the server could not read.
const RCODE_FORMERR: u8 = 1;
/// The response code for a name that does not exist.
const RCODE_NXDOMAIN: u8 = 3;
/// The largest answer kept: what one frame carries (no IP fragmentation).
const MAX_ANSWER_BYTES: usize = 1472;
/// The UDP payload a query says the resolver takes (RFC 6891 6.2.3), so that a server
/// answers in up to this many bytes rather than truncate at RFC 1035's 512: the size
/// DNS Flag Day 2020 settled on, which crosses common paths unfragmented, within
/// [`MAX_ANSWER_BYTES`].
const EDNS_PAYLOAD_BYTES: u16 = 1232;
const _: () = assert!(EDNS_PAYLOAD_BYTES as usize <= MAX_ANSWER_BYTES);
/// The EDNS(0) OPT pseudo-record a query carries in its additional section (RFC 6891
/// 6.1.2): the root name, type OPT (41), [`EDNS_PAYLOAD_BYTES`] as its class, a TTL of
/// 0 (no extended code, version 0, DO clear) and no data.
const OPT_RECORD: [u8; 11] = {
    let size = EDNS_PAYLOAD_BYTES.to_be_bytes();
    [0, 0, 41, size[0], size[1], 0, 0, 0, 0, 0, 0]
};
/// Datagrams a query's socket receives between polls (spoofed ones included).
const SOCKET_DATAGRAMS: usize = 4;
/// How long a query's exchange over TCP may take, from the truncated answer that asked
/// for it to the whole answer read: the handshake, the query and the answer, with room
/// for a SYN or two lost (smoltcp sends a SYN again after 1 s, then 2 s).
const TCP_GIVE_UP_AFTER_NS: u64 = 5_000_000_000;
/// The receive buffer of a query's TCP connection. The answer is taken out of it as it
/// comes, so it bounds the window, not the answer (up to 65,535 bytes, the most its
/// length prefix says).
pub(crate) const TCP_RECEIVE_BYTES: usize = 4096;
/// How long the resolver remembers that a server answered FORMERR to the OPT record
/// (RFC 6891 6.2.2), asking it without one meanwhile: as long as Unbound keeps what it
/// learnt of a server (`infra-host-ttl`, 900 s), so that a server whose software was
/// upgraded is asked with EDNS again within a quarter of an hour.
const PLAIN_SERVER_KEPT_NS: u64 = 15 * 60 * 1_000_000_000;
/// The length prefix before a message over TCP (RFC 1035 4.2.2).
const TCP_PREFIX_BYTES: usize = 2;
/// Stirred into the stack's seed for the resolver's IDs and ports, so that they differ
/// from smoltcp's and the TCP ports'.
const RESOLVER_STIR: u64 = 0x646e_7320_7175_6572;

/// Why a query's exchange over TCP with a server failed ([`NetError::DnsOverTcp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsTcpFailure {
    /// The server refused the connection (a reset to the SYN) or it closed before its
    /// handshake was done.
    Refused,
    /// The connection closed, or was reset, before the whole answer came.
    ClosedEarly {
        /// The answer's length as its prefix gave it, if the prefix came.
        length: Option<u16>,
        /// The answer's bytes that came, the prefix not counted.
        received: usize,
    },
    /// What came is not an answer to the query: another ID or question, not a
    /// response, another opcode, or malformed.
    NotTheAnswer,
    /// The handshake, the query and the whole answer took over 5 s.
    TimedOut,
}

impl fmt::Display for DnsTcpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused => f.write_str("the server refused the connection"),
            Self::ClosedEarly {
                length: None,
                received: _,
            } => f.write_str("the connection closed before the answer's length came"),
            Self::ClosedEarly {
                length: Some(length),
                received,
            } => write!(
                f,
                "the connection closed after {received} of the answer's {length} bytes"
            ),
            Self::NotTheAnswer => f.write_str("what came is not an answer to the query"),
            Self::TimedOut => f.write_str("no whole answer within 5 s"),
        }
    }
}

/// A block of UDP ports the resolver sends queries from: `count` ports from `first`,
/// `count` a power of two and `first` a multiple of it, so that one masked compare of
/// the destination port ([`filter`](Self::filter)) takes exactly the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsPorts {
    /// The first port.
    first: u16,
    /// How many ports.
    count: u16,
}

impl DnsPorts {
    /// The `count` ports from `first`; [`NetError::BadConfig`] unless `count` is a power
    /// of two, `first` a multiple of it and port 0 outside the block.
    pub fn new(first: u16, count: u16) -> Result<Self, NetError> {
        if !count.is_power_of_two() || !first.is_multiple_of(count) {
            return Err(NetError::BadConfig(
                "a DNS port block is a power of two ports long and starts at a multiple of its length",
            ));
        }
        if first == 0 {
            return Err(NetError::BadConfig("a DNS port block cannot hold port 0"));
        }
        Ok(Self { first, count })
    }

    /// The first port.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// How many ports.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The packet filter (`rexo_api::Filter`'s language) that takes the answers to
    /// queries from this block sent from `address`: UDP from port 53 to `address` and a
    /// port of the block (`udp sport 53 dst 10.0.2.15 & 36:2/0xffc0=0xc000` for the 64
    /// ports from 49152). Its transmit rule lets the app send queries from the block to
    /// port 53 only.
    pub fn filter(&self, address: Ipv4Addr) -> String {
        let mask = !(self.count - 1);
        format!(
            "udp sport {DNS_PORT} dst {address} & 36:2/{mask:#06x}={:#06x}",
            self.first
        )
    }

    /// The packet filter that takes the answers to queries asked again over TCP from
    /// this block's ports (a truncated answer's, which the stack sends from a port of
    /// the block when it has one, [`crate::Stack::set_dns_ports`]): TCP from port 53 to
    /// `address` and a port of the block (`tcp sport 53 dst 10.0.2.15 & 36:2/0xffc0=0xc000`
    /// for the 64 ports from 49152). Its transmit rule lets the app send segments from
    /// the block to port 53 only. Without it on a shared interface, the kernel withdraws
    /// the connection's SYN and the server's exchange over TCP fails when it times out.
    pub fn tcp_filter(&self, address: Ipv4Addr) -> String {
        let mask = !(self.count - 1);
        format!(
            "tcp sport {DNS_PORT} dst {address} & 36:2/{mask:#06x}={:#06x}",
            self.first
        )
    }

    /// The ports, first to last.
    pub(crate) fn range(&self) -> RangeInclusive<u16> {
        self.first..=self.first + (self.count - 1)
    }
}

/// A name being resolved ([`crate::Stack::resolve_start`]); ask the stack that started
/// it ([`crate::Stack::resolve_poll`]) until it answers. Dropping it gives up the query:
/// its stack frees its slot and port at its next poll or query.
pub struct DnsQuery {
    /// The query's mark, shared with the resolver's list of its queries (which finds
    /// the query by it and sees it dropped when the list's is the last); `None` once
    /// answered.
    mark: Option<Arc<()>>,
}

/// One query under way, or answered and not yet taken.
struct Query {
    /// The mark its [`DnsQuery`] holds.
    mark: Arc<()>,
    /// The servers it asks in turn, one at each sending, with what each did.
    servers: Vec<QueryServer>,
    /// The index in `servers` of the one it was last sent to.
    asked: usize,
    /// The server to send to at the next poll, whatever the time: the next after one
    /// that failed, or one that answered FORMERR to the OPT record.
    ask_at_once: Option<usize>,
    /// Why the last server that failed did (its error code, or its exchange over TCP's
    /// failure), if one did.
    last_failure: Option<NetError>,
    /// The message sent (and sent again), with the OPT record.
    message: Vec<u8>,
    /// The message sent to a server that does not speak EDNS: without the OPT record.
    plain: Vec<u8>,
    /// The local port it goes from.
    port: u16,
    /// Its UDP socket, until it has an outcome.
    socket: Option<SocketHandle>,
    /// When it was first sent.
    started_ns: u64,
    /// When it was last sent.
    sent_ns: u64,
    /// How many times it was sent again when no answer came in time.
    retransmissions: usize,
    /// The exchange over TCP a truncated answer started, until it ends; the query is
    /// not sent over UDP meanwhile.
    tcp: Option<TcpExchange>,
    /// The answer (or why there is none), once there is one.
    outcome: Option<Result<Vec<Ipv4Addr>, NetError>>,
}

/// One of the servers a query asks.
struct QueryServer {
    /// Its address.
    address: Ipv4Addr,
    /// Whether the query was sent to it: its answers count from then on.
    sent: bool,
    /// Whether it goes to it without the OPT record: the resolver remembered it does
    /// not speak EDNS when the query started, or it answered FORMERR to the record.
    plain: bool,
    /// Whether it answered an error code (but NXDOMAIN), or its exchange over TCP
    /// failed: it is not asked again, and its later answers do not count.
    failed: bool,
}

/// A query's exchange over TCP with a server that answered it truncated.
struct TcpExchange {
    /// The index of the server among the query's.
    server: usize,
    /// The connection, once the stack opened it ([`Resolver::tcp_wanted`]).
    socket: Option<SocketHandle>,
    /// When the truncated answer came.
    started_ns: u64,
    /// The query after its length prefix.
    request: Vec<u8>,
    /// How many bytes of `request` the connection took.
    written: usize,
    /// Whether the connection's handshake was done.
    connected: bool,
    /// The bytes of the answer read so far, its length prefix first.
    received: Vec<u8>,
}

impl TcpExchange {
    /// The exchange with server `server` (by index) for `message`, started at `now_ns`.
    fn new(server: usize, message: &[u8], now_ns: u64) -> Self {
        let mut request = Vec::with_capacity(TCP_PREFIX_BYTES + message.len());
        // A query is at most 12 + 255 + 4 + 11 bytes: its length fits the prefix.
        request.extend_from_slice(&(message.len() as u16).to_be_bytes());
        request.extend_from_slice(message);
        Self {
            server,
            socket: None,
            started_ns: now_ns,
            request,
            written: 0,
            connected: false,
            received: Vec::new(),
        }
    }

    /// The answer's length as its prefix gives it, once the prefix came.
    fn length(&self) -> Option<u16> {
        let prefix = self.received.get(..TCP_PREFIX_BYTES)?;
        Some(u16::from_be_bytes([prefix[0], prefix[1]]))
    }

    /// How many bytes the exchange reads in all: the prefix, then the answer it gives.
    fn wanted(&self) -> usize {
        TCP_PREFIX_BYTES + self.length().map_or(0, usize::from)
    }

    /// Writes the query into `socket` once it is connected and reads what came of the
    /// answer (no byte past it): the answer once it came whole, why it cannot come
    /// once the connection closed or was refused without it, `None` meanwhile.
    fn step(&mut self, socket: &mut tcp::Socket<'_>) -> Option<Result<&[u8], DnsTcpFailure>> {
        self.connected |= !matches!(
            socket.state(),
            tcp::State::Closed | tcp::State::SynSent | tcp::State::SynReceived
        );
        if self.written < self.request.len() && socket.may_send() {
            self.written += socket
                .send_slice(&self.request[self.written..])
                .unwrap_or(0);
        }
        while socket.can_recv() && self.received.len() < self.wanted() {
            let room = self.wanted() - self.received.len();
            let received = &mut self.received;
            let taken = socket.recv(|data| {
                let taken = data.len().min(room);
                received.extend_from_slice(&data[..taken]);
                (taken, ())
            });
            if taken.is_err() {
                break;
            }
        }
        if self.length().is_some() && self.received.len() == self.wanted() {
            return Some(Ok(&self.received[TCP_PREFIX_BYTES..]));
        }
        let closed = socket.state() == tcp::State::Closed || !socket.may_recv() && self.connected;
        match (closed, self.connected) {
            (false, _) => None,
            (true, false) => Some(Err(DnsTcpFailure::Refused)),
            (true, true) => Some(Err(DnsTcpFailure::ClosedEarly {
                length: self.length(),
                received: self.received.len().saturating_sub(TCP_PREFIX_BYTES),
            })),
        }
    }
}

impl Query {
    /// The index of the server `from` is (its port 53) if the query was sent to it and
    /// it has not failed: one whose answers count.
    fn counting(&self, from: IpEndpoint) -> Option<usize> {
        self.servers.iter().position(|server| {
            server.sent
                && !server.failed
                && from == IpEndpoint::new(IpAddress::Ipv4(server.address), DNS_PORT)
        })
    }

    /// The first server after the one at `index`, in turn, that has not failed (it
    /// may be that one); `None` when every one has.
    fn next_unfailed(&self, index: usize) -> Option<usize> {
        let count = self.servers.len();
        (1..=count)
            .map(|step| (index + step) % count)
            .find(|&next| !self.servers[next].failed)
    }

    /// The server to send the query to at `now_ns`, if it is time: at once the next
    /// after one that failed, or one that would not take the OPT record, else the next
    /// in turn that has not failed, when the retransmission's wait since the last
    /// sending is over.
    fn due(&self, now_ns: u64) -> Option<usize> {
        if self.tcp.is_some() {
            return None;
        }
        if self.ask_at_once.is_some() {
            return self.ask_at_once;
        }
        let &wait = RETRANSMIT_AFTER_NS.get(self.retransmissions)?;
        if now_ns.saturating_sub(self.sent_ns) < wait {
            return None;
        }
        self.next_unfailed(self.asked)
    }

    /// The message sent to server `index`: without the OPT record if it does not speak
    /// EDNS.
    fn message_to(&self, index: usize) -> &[u8] {
        match self.servers[index].plain {
            true => &self.plain,
            false => &self.message,
        }
    }

    /// Takes server `index`'s failure, `why` (its error code, or its exchange over TCP's
    /// failure): the server has failed; with none left `why` is the outcome. The next
    /// that has not failed is asked at once only if the failed one was the last asked
    /// (or the one to be asked at once): a late error from a server asked before leaves
    /// the turn of the one asked since as it was.
    fn fail(&mut self, index: usize, why: NetError) {
        self.servers[index].failed = true;
        self.last_failure = Some(why);
        let next = self.next_unfailed(index);
        if next.is_none() {
            self.outcome = Some(Err(why));
        }
        if index == self.asked || self.ask_at_once == Some(index) {
            self.ask_at_once = next;
        }
    }

    /// Moves the exchange over TCP on, if there is one: once the answer came it is the
    /// outcome, or that server's failure (an error code, truncated again, not the
    /// answer); a connection that closed without it, or 5 s gone, fails the server.
    /// An exchange that ends gives its connection to `closing`.
    fn exchange_over_tcp(
        &mut self,
        now_ns: u64,
        sockets: &mut SocketSet<'static>,
        closing: &mut Vec<SocketHandle>,
    ) {
        let Some(tcp) = &mut self.tcp else {
            return;
        };
        let timed_out = now_ns.saturating_sub(tcp.started_ns) >= TCP_GIVE_UP_AFTER_NS;
        let server = tcp.server;
        let stepped = match tcp.socket {
            Some(handle) => tcp.step(sockets.get_mut::<tcp::Socket>(handle)),
            None => None,
        };
        let verdict = match stepped {
            Some(Ok(answer)) => match read_answer(answer, &self.message) {
                None => Err(NetError::DnsOverTcp(DnsTcpFailure::NotTheAnswer)),
                Some(Err(why @ (NetError::DnsServerError(_) | NetError::DnsTruncated))) => Err(why),
                Some(outcome) => Ok(outcome),
            },
            Some(Err(failure)) => Err(NetError::DnsOverTcp(failure)),
            None if timed_out => Err(NetError::DnsOverTcp(DnsTcpFailure::TimedOut)),
            None => return,
        };
        self.end_tcp(sockets, closing, verdict.is_ok());
        match verdict {
            Ok(outcome) => self.outcome = Some(outcome),
            Err(why) => self.fail(server, why),
        }
    }

    /// Ends the exchange over TCP, if there is one, giving its connection to `closing`:
    /// closed in order after the answer came (`answered`), else reset.
    fn end_tcp(
        &mut self,
        sockets: &mut SocketSet<'static>,
        closing: &mut Vec<SocketHandle>,
        answered: bool,
    ) {
        let Some(handle) = self.tcp.take().and_then(|tcp| tcp.socket) else {
            return;
        };
        let socket = sockets.get_mut::<tcp::Socket>(handle);
        if answered {
            socket.close();
        } else {
            socket.abort();
        }
        closing.push(handle);
    }
}

/// The resolver of one stack: its servers, port block and queries.
pub(crate) struct Resolver {
    /// The servers queries go to, in turn (at most [`MAX_SERVERS`]).
    servers: Vec<Ipv4Addr>,
    /// The ports queries go from; `None`: the dynamic range 49152-65535.
    ports: Option<DnsPorts>,
    /// The state of the random numbers (IDs, ports): splitmix64 from the stack's seed.
    random: u64,
    /// The ports of the block (or range) queries may take ([`Resolver::set_port_class`]).
    class: PortClass,
    /// Queries started and not yet taken, cancelled or dropped.
    queries: Vec<Query>,
    /// Servers that answered FORMERR to the OPT record, as one that does not speak
    /// EDNS does, each with when that is forgotten ([`PLAIN_SERVER_KEPT_NS`] later):
    /// queries go to them without it. Only servers of `servers` are kept.
    plain_servers: Vec<(Ipv4Addr, u64)>,
}

impl Resolver {
    /// A resolver with no server, drawing its IDs and ports from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            servers: Vec::new(),
            ports: None,
            random: mix(seed ^ RESOLVER_STIR),
            class: PortClass::ALL,
            queries: Vec::new(),
            plain_servers: Vec::new(),
        }
    }

    /// Points the resolver at the first [`MAX_SERVERS`] of `servers` (none: resolving
    /// says [`NetError::NoDnsServer`]). Queries under way keep the servers they ask.
    /// Another list than the one it had (a new lease or configuration) forgets which
    /// servers do not speak EDNS; the same list (a lease renewed) keeps that.
    pub(crate) fn set_servers(&mut self, servers: &[Ipv4Addr]) {
        let servers: Vec<Ipv4Addr> = servers.iter().copied().take(MAX_SERVERS).collect();
        if servers != self.servers {
            self.plain_servers.clear();
        }
        self.servers = servers;
    }

    /// Whether queries go to `server` without the OPT record at `now_ns`: it answered
    /// FORMERR to one less than [`PLAIN_SERVER_KEPT_NS`] ago.
    fn speaks_plain(&self, server: Ipv4Addr, now_ns: u64) -> bool {
        self.plain_servers
            .iter()
            .any(|&(plain, until_ns)| plain == server && now_ns < until_ns)
    }

    /// Remembers from `now_ns` that `server` answered FORMERR to the OPT record, if it is
    /// one of the resolver's servers (a query under way may ask one it no longer has).
    fn remember_plain(&mut self, server: Ipv4Addr, now_ns: u64) {
        if !self.servers.contains(&server) {
            return;
        }
        self.plain_servers
            .retain(|&(plain, until_ns)| plain != server && now_ns < until_ns);
        self.plain_servers
            .push((server, now_ns + PLAIN_SERVER_KEPT_NS));
    }

    /// The servers queries go to, in turn.
    pub(crate) fn servers(&self) -> &[Ipv4Addr] {
        &self.servers
    }

    /// Sends later queries from `ports`.
    pub(crate) fn set_ports(&mut self, ports: DnsPorts) {
        self.ports = Some(ports);
    }

    /// Whether a query under way uses UDP `port`.
    pub(crate) fn uses_port(&self, port: u16) -> bool {
        self.queries
            .iter()
            .any(|q| q.socket.is_some() && q.port == port)
    }

    /// The sockets of queries under way: UDP, and TCP for an exchange over TCP.
    pub(crate) fn sockets(&self) -> usize {
        let udp = self.queries.iter().filter(|q| q.socket.is_some());
        let tcp = self.queries.iter().filter_map(|q| q.tcp.as_ref()?.socket);
        udp.count() + tcp.count()
    }

    /// The ports queries go from: the block, or without one the dynamic range; their
    /// exchanges over TCP go from a free one of them too.
    pub(crate) fn port_range(&self) -> RangeInclusive<u16> {
        self.ports.map_or(EPHEMERAL_PORTS, |ports| ports.range())
    }

    /// The exchanges over TCP waiting for the stack to open their connection: each
    /// query's place, the server, and how many bytes the connection is to send (the
    /// query with its length prefix). The stack answers each with
    /// [`tcp_opened`](Self::tcp_opened) before the next [`poll`](Self::poll).
    pub(crate) fn tcp_wanted(&self) -> Vec<(usize, Ipv4Addr, usize)> {
        self.queries
            .iter()
            .enumerate()
            .filter(|(_, query)| Arc::strong_count(&query.mark) > 1 && query.outcome.is_none())
            .filter_map(|(slot, query)| {
                let tcp = query.tcp.as_ref().filter(|tcp| tcp.socket.is_none())?;
                Some((slot, query.servers[tcp.server].address, tcp.request.len()))
            })
            .collect()
    }

    /// Gives the exchange over TCP of the query at `slot` ([`tcp_wanted`](Self::tcp_wanted))
    /// the connection the stack opened for it, or fails its server with why the stack
    /// could open none.
    pub(crate) fn tcp_opened(&mut self, slot: usize, opened: Result<SocketHandle, NetError>) {
        let query = &mut self.queries[slot];
        let Some(tcp) = &mut query.tcp else {
            return;
        };
        match opened {
            Ok(handle) => tcp.socket = Some(handle),
            Err(why) => {
                let server = tcp.server;
                query.tcp = None;
                query.fail(server, why);
            }
        }
    }

    /// The next random number.
    fn next_random(&mut self) -> u64 {
        crate::stack::next_random(&mut self.random)
    }

    /// Takes only the ports of `class` of the block or range for queries, those of the
    /// stack's queue pair on a split interface ([`PortClass`]).
    pub(crate) fn set_port_class(&mut self, class: PortClass) {
        self.class = class;
    }

    /// A free port of the block (or of the dynamic range without one) in the resolver's
    /// class, drawn at random: not one `taken` says is (the stack's UDP sockets') nor
    /// another query's.
    fn draw_port(&mut self, taken: impl Fn(u16) -> bool) -> Option<u16> {
        let range = self.port_range();
        let count = self.class.count_in(&range);
        let offset = self.next_random().checked_rem(u64::from(count))? as u32;
        (0..count)
            .map(|step| self.class.nth_in(&range, (offset + step) % count))
            .find(|&port| !taken(port) && !self.uses_port(port))
    }

    /// Starts an A query for `name` to `servers` (the resolver's, or those of them the
    /// stack gets answers from) at `now_ns`, its first sending, to the first of them,
    /// queued on a socket of its own in `sockets`; `taken` says whether a UDP socket of
    /// the stack is bound to a port.
    pub(crate) fn start(
        &mut self,
        name: &str,
        servers: Vec<Ipv4Addr>,
        now_ns: u64,
        sockets: &mut SocketSet<'static>,
        closing: &mut Vec<SocketHandle>,
        taken: impl Fn(u16) -> bool,
    ) -> Result<DnsQuery, NetError> {
        let &server = servers.first().ok_or(NetError::NoDnsServer)?;
        let question = encode_name(name).ok_or(NetError::BadName)?;
        self.reap_dropped(sockets, closing);
        if self.queries.len() >= MAX_QUERIES {
            return Err(NetError::TooManyQueries);
        }
        let port = self.draw_port(taken).ok_or(NetError::TooManyQueries)?;
        let id = self.next_random() as u16;
        let message = query_message(id, &question);
        let mut plain = message[..message.len() - OPT_RECORD.len()].to_vec();
        // No additional record.
        plain[10..12].copy_from_slice(&[0, 0]);
        let servers: Vec<QueryServer> = servers
            .into_iter()
            .enumerate()
            .map(|(index, address)| QueryServer {
                address,
                sent: index == 0,
                failed: false,
                plain: self.speaks_plain(address, now_ns),
            })
            .collect();
        let first = if servers[0].plain { &plain } else { &message };
        let socket = sending(port, server, first)?;
        let mark = Arc::new(());
        self.queries.push(Query {
            mark: mark.clone(),
            servers,
            asked: 0,
            ask_at_once: None,
            last_failure: None,
            message,
            plain,
            port,
            socket: Some(sockets.add(socket)),
            started_ns: now_ns,
            sent_ns: now_ns,
            retransmissions: 0,
            tcp: None,
            outcome: None,
        });
        Ok(DnsQuery { mark: Some(mark) })
    }

    /// Reads the answers the queries' sockets received (a truncated one starts an
    /// exchange over TCP, whose connection the stack opens: [`tcp_wanted`](Self::tcp_wanted)),
    /// moves the exchanges over TCP on, sends a query whose server failed to the next at
    /// once, sends again the queries whose time came (each to its next server) and gives
    /// up those past [`GIVE_UP_AFTER_NS`]; frees the slots of dropped queries. A query
    /// with an outcome gives its UDP socket (and port) back, and its TCP connection to
    /// `closing`.
    pub(crate) fn poll(
        &mut self,
        now_ns: u64,
        sockets: &mut SocketSet<'static>,
        closing: &mut Vec<SocketHandle>,
    ) {
        self.reap_dropped(sockets, closing);
        let mut learnt_plain = Vec::new();
        for query in &mut self.queries {
            let Some(mut handle) = query.socket else {
                continue;
            };
            let socket = sockets.get_mut::<udp::Socket>(handle);
            while query.outcome.is_none()
                && let Ok((datagram, meta)) = socket.recv()
            {
                let Some(from) = query.counting(meta.endpoint) else {
                    continue;
                };
                match read_answer(datagram, &query.message) {
                    // Sent the OPT record, answered FORMERR: asked again at once
                    // without it (RFC 6891 7), and remembered.
                    Some(Err(NetError::DnsServerError(RCODE_FORMERR)))
                        if !query.servers[from].plain =>
                    {
                        query.servers[from].plain = true;
                        learnt_plain.push(query.servers[from].address);
                        query.ask_at_once = Some(from);
                    }
                    Some(Err(why @ NetError::DnsServerError(_))) => query.fail(from, why),
                    // Cut short: that server is asked over TCP, once (RFC 7766 5); a
                    // truncated answer while it is asked over TCP is not read.
                    Some(Err(NetError::DnsTruncated)) => {
                        if query.tcp.is_none() {
                            let message = query.message_to(from);
                            query.tcp = Some(TcpExchange::new(from, message, now_ns));
                        }
                    }
                    outcome => query.outcome = outcome,
                }
            }
            if query.outcome.is_none() {
                query.exchange_over_tcp(now_ns, sockets, closing);
            }
            if query.outcome.is_none() && query.tcp.is_none() {
                if now_ns.saturating_sub(query.started_ns) >= GIVE_UP_AFTER_NS {
                    let outcome = query.last_failure.unwrap_or(NetError::DnsTimeout);
                    query.outcome = Some(Err(outcome));
                } else if let Some(next) = query.due(now_ns) {
                    // Each sending on a fresh socket of the query's port: the last one
                    // could still wait for its server's MAC address (an on-link server
                    // that is down), which would hold the next one up. One that cannot
                    // be sent is tried again at the next poll.
                    let server = query.servers[next].address;
                    if let Ok(fresh) = sending(query.port, server, query.message_to(next)) {
                        sockets.remove(handle);
                        handle = sockets.add(fresh);
                        query.servers[next].sent = true;
                        query.asked = next;
                        query.sent_ns = now_ns;
                        if query.ask_at_once.take().is_none() {
                            query.retransmissions += 1;
                        }
                    }
                }
            }
            query.socket = if query.outcome.is_some() {
                sockets.remove(handle);
                query.end_tcp(sockets, closing, false);
                None
            } else {
                Some(handle)
            };
        }
        for server in learnt_plain {
            self.remember_plain(server, now_ns);
        }
    }

    /// Ends the queries whose [`DnsQuery`] was dropped, freeing their sockets (a TCP
    /// connection reset, given to `closing`).
    pub(crate) fn reap_dropped(
        &mut self,
        sockets: &mut SocketSet<'static>,
        closing: &mut Vec<SocketHandle>,
    ) {
        self.queries.retain_mut(|query| {
            let dropped = Arc::strong_count(&query.mark) == 1;
            if dropped {
                if let Some(handle) = query.socket {
                    sockets.remove(handle);
                }
                query.end_tcp(sockets, closing, false);
            }
            !dropped
        });
    }

    /// The outcome of `query` once there is one, taken (the query ends); `None` while it
    /// is pending; [`NetError::Closed`] for one already taken,
    /// [`NetError::ForeignQuery`] for another resolver's.
    pub(crate) fn take(&mut self, query: &mut DnsQuery) -> Option<Result<Vec<Ipv4Addr>, NetError>> {
        let Some(mark) = &query.mark else {
            return Some(Err(NetError::Closed));
        };
        let Some(slot) = self.queries.iter().position(|q| Arc::ptr_eq(&q.mark, mark)) else {
            return Some(Err(NetError::ForeignQuery));
        };
        let outcome = self.queries[slot].outcome.take()?;
        query.mark = None;
        self.queries.swap_remove(slot);
        Some(outcome)
    }
}

/// A UDP socket bound to `port` with `message` queued for `server`'s port 53: room to
/// receive [`SOCKET_DATAGRAMS`] answers, to send that one message only (each sending
/// has a socket of its own).
fn sending(port: u16, server: Ipv4Addr, message: &[u8]) -> Result<udp::Socket<'static>, NetError> {
    let receive = udp::PacketBuffer::new(
        vec![udp::PacketMetadata::EMPTY; SOCKET_DATAGRAMS],
        vec![0u8; SOCKET_DATAGRAMS * MAX_ANSWER_BYTES],
    );
    let transmit = udp::PacketBuffer::new(
        vec![udp::PacketMetadata::EMPTY; 1],
        vec![0u8; message.len()],
    );
    let mut socket = udp::Socket::new(receive, transmit);
    // Binding fails only for port 0, which no block or range holds.
    socket.bind(port).map_err(|_| NetError::PortZero)?;
    let to = IpEndpoint::new(IpAddress::Ipv4(server), DNS_PORT);
    socket.send_slice(message, to)?;
    Ok(socket)
}

/// `name` (dot-separated, one final dot allowed) as a message carries it: each label
/// after its length, then a zero. `None` for an empty name or label, a label over 63
/// bytes or a name over 255.
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    let mut encoded = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_BYTES {
            return None;
        }
        encoded.push(label.len() as u8);
        encoded.extend_from_slice(label.as_bytes());
    }
    encoded.push(0);
    (encoded.len() <= MAX_NAME_BYTES).then_some(encoded)
}

/// A query with `id`, recursion desired, one question: `name` (as [`encode_name`]
/// gives it), type A, class IN, and the [`OPT_RECORD`].
fn query_message(id: u16, name: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(12 + name.len() + 4 + OPT_RECORD.len());
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&FLAG_RECURSION_DESIRED.to_be_bytes());
    // One question; no answer or authority records; one additional record, the OPT.
    message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    message.extend_from_slice(name);
    message.extend_from_slice(&TYPE_A.to_be_bytes());
    message.extend_from_slice(&CLASS_IN.to_be_bytes());
    message.extend_from_slice(&OPT_RECORD);
    message
}

/// A message being read: every read checked against its end.
struct Reader<'a> {
    /// The whole message (compression pointers count from its start).
    message: &'a [u8],
    /// Where the next read starts.
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next `len` bytes.
    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let bytes = self.message.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(bytes)
    }

    /// The next 16-bit field.
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// The next name, compression pointers followed, in its wire form with ASCII letters
    /// in lowercase, for comparing (RFC 1035 2.3.3). Each pointer must point before
    /// itself (to a prior occurrence, as RFC 1035 4.1.4 has it), so a loop must go
    /// forward through labels, which lengthen the name: it ends at 255 bytes. `None` for
    /// a name over 255 bytes, a reserved label type (a length byte of 0x40 to 0xBF: no
    /// label is over 63 bytes) or a read past the end.
    fn name(&mut self) -> Option<Vec<u8>> {
        let mut name = Vec::new();
        // Where the name continues: here until the first pointer, then where it points.
        let mut at = self.at;
        let mut followed_pointer = false;
        loop {
            let len = *self.message.get(at)?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    name.push(0);
                    if !followed_pointer {
                        self.at = at + 1;
                    }
                    return (name.len() <= MAX_NAME_BYTES).then_some(name);
                }
                0x00 => {
                    let label = self.message.get(at + 1..at + 1 + usize::from(len))?;
                    name.push(len);
                    name.extend(label.iter().map(u8::to_ascii_lowercase));
                    if name.len() > MAX_NAME_BYTES {
                        return None;
                    }
                    at += 1 + usize::from(len);
                }
                0xC0 => {
                    let low = *self.message.get(at + 1)?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                    if target >= at {
                        return None;
                    }
                    if !followed_pointer {
                        self.at = at + 2;
                        followed_pointer = true;
                    }
                    at = target;
                }
                _ => return None,
            }
        }
    }
}

/// What `answer` says to the query `asked` (as [`query_message`] made it): the
/// addresses, or why there are none (an error code without the question, too; cut short,
/// TC, [`NetError::DnsTruncated`], its records not read: RFC 2181 9). `None` when it is
/// no answer to that query (another ID or question, not a response, another opcode) or
/// malformed: it is ignored.
fn read_answer(answer: &[u8], asked: &[u8]) -> Option<Result<Vec<Ipv4Addr>, NetError>> {
    let mut reader = Reader {
        message: answer,
        at: 0,
    };
    let id = reader.bytes(2)?;
    let flags = reader.u16()?;
    let questions = reader.u16()?;
    let answers = reader.u16()?;
    reader.bytes(4)?;
    let opcode = (flags >> 11) & 0xF;
    let rcode = (flags & 0xF) as u8;
    if id != &asked[..2] || flags & FLAG_RESPONSE == 0 || opcode != 0 {
        return None;
    }
    // An error may come without the question (RFC 1035 4.1.1 allows it; servers answer
    // FORMERR or REFUSED so): the ID, and the addresses and ports the stack checked, tie
    // it to the query. It cannot say the name does not exist (NXDOMAIN): its code only.
    if questions == 0 && rcode != 0 {
        return Some(Err(NetError::DnsServerError(rcode)));
    }
    if questions != 1 {
        return None;
    }
    // The question asked, lowercased as the reader gives names, then its type and class.
    let mut question = Reader {
        message: asked,
        at: 12,
    };
    let asked_name = question.name()?;
    if reader.name()? != asked_name || reader.bytes(4)? != question.bytes(4)? {
        return None;
    }
    match rcode {
        0 => {}
        RCODE_NXDOMAIN => return Some(Err(NetError::NotResolved)),
        other => return Some(Err(NetError::DnsServerError(other))),
    }
    if flags & FLAG_TRUNCATED != 0 {
        return Some(Err(NetError::DnsTruncated));
    }
    // Every record's owner, type and data (A: the address; CNAME: the name it gives).
    let mut records = Vec::new();
    for _ in 0..answers {
        records.extend(read_record(&mut reader)?);
    }
    let mut chain = vec![asked_name];
    while chain.len() <= MAX_CNAME_HOPS {
        let last = &chain[chain.len() - 1];
        let next = records.iter().find_map(|(owner, data)| match data {
            Data::Alias(alias) if owner == last && !chain.contains(alias) => Some(alias.clone()),
            _ => None,
        });
        let Some(next) = next else {
            break;
        };
        chain.push(next);
    }
    let addresses: Vec<Ipv4Addr> = records
        .iter()
        .filter_map(|(owner, data)| match data {
            Data::Address(address) if chain.contains(owner) => Some(*address),
            _ => None,
        })
        .take(MAX_ADDRESSES)
        .collect();
    match addresses.is_empty() {
        false => Some(Ok(addresses)),
        true => Some(Err(NetError::NotResolved)),
    }
}

/// The data of a record the resolver uses.
enum Data {
    /// An A record's address.
    Address(Ipv4Addr),
    /// A CNAME record's name (lowercased wire form, as [`Reader::name`] gives it).
    Alias(Vec<u8>),
}

/// The next resource record: its owner and data when it is an A or CNAME record of
/// class IN (`Some(None)` for any other, skipped); `None` when it is malformed.
fn read_record(reader: &mut Reader<'_>) -> Option<Option<(Vec<u8>, Data)>> {
    let owner = reader.name()?;
    let kind = reader.u16()?;
    let class = reader.u16()?;
    reader.bytes(4)?;
    let length = usize::from(reader.u16()?);
    let data_at = reader.at;
    let data = reader.bytes(length)?;
    if class != CLASS_IN {
        return Some(None);
    }
    match kind {
        TYPE_A if length == 4 => Some(Some((
            owner,
            Data::Address(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
        ))),
        TYPE_A => None,
        TYPE_CNAME => {
            let mut alias = Reader {
                message: reader.message,
                at: data_at,
            };
            let name = alias.name()?;
            // The name must fill the data exactly.
            (alias.at == data_at + length).then_some(Some((owner, Data::Alias(name))))
        }
        _ => Some(None),
    }
}

/// A response to `query` (as the resolver sent it) with `flags` (QR, RD and RA set
/// besides), its question, `count` answers and then `records`, no additional records:
/// for tests here and in `tests.rs`. A query cut within its header gives that header.
#[cfg(test)]
pub(crate) fn response_to(query: &[u8], flags: u16, count: u16, records: &[u8]) -> Vec<u8> {
    let mut question = Reader {
        message: query,
        at: 12,
    };
    let end = question.name().map_or(query.len(), |_| question.at + 4);
    let mut message = query[..end.min(query.len())].to_vec();
    message[2..4].copy_from_slice(&(0x8180 | flags).to_be_bytes());
    message[6..8].copy_from_slice(&count.to_be_bytes());
    if message.len() >= 12 {
        message[10..12].copy_from_slice(&[0, 0]);
    }
    message.extend_from_slice(records);
    message
}

/// A resource record of class IN: `owner` as written, `kind`, TTL 60, `data`; for
/// tests here and in `tests.rs`.
#[cfg(test)]
pub(crate) fn resource_record(owner: &[u8], kind: u16, data: &[u8]) -> Vec<u8> {
    let mut record = owner.to_vec();
    record.extend_from_slice(&kind.to_be_bytes());
    record.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    record.extend_from_slice(&(data.len() as u16).to_be_bytes());
    record.extend_from_slice(data);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query for `name` with ID 0x1234.
    fn asked(name: &str) -> Vec<u8> {
        query_message(0x1234, &encode_name(name).unwrap())
    }

    /// Where the records of a response to `query` ([`response_to`]) start.
    fn records_at(query: &[u8]) -> usize {
        response_to(query, 0, 0, &[]).len()
    }

    #[test]
    fn a_query_has_its_id_recursion_desired_one_question_for_type_a_class_in_and_an_opt_record() {
        let query = asked("Rexo.Test.");
        // The header (ID, RD, one question, one additional record), the question, and
        // an EDNS(0) OPT record (RFC 6891 6.1.2): the root name, type 41, the UDP
        // payload size the resolver takes (1232 bytes, within MAX_ANSWER_BYTES),
        // extended code 0, version 0, no flags, no data.
        assert_eq!(
            query,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x04Rexo\x04Test\x00\x00\x01\x00\x01\
              \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
        );
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            &"x".repeat(64),
            &["abc"; 70].join("."),
        ] {
            assert_eq!(encode_name(bad), None, "{bad:?}");
        }
        // Labels of 63, 63, 63 and 61 bytes make 255 bytes; one more is too long.
        let long = "x".repeat(63);
        let name = |last: usize| alloc::format!("{long}.{long}.{long}.{}", &long[..last]);
        assert_eq!(encode_name(&name(61)).map(|n| n.len()), Some(255));
        assert_eq!(encode_name(&name(62)), None);
    }

    #[test]
    fn an_answer_follows_compression_pointers_and_the_cname_chain_in_any_case() {
        let query = asked("www.Rexo.test");
        // www.rexo.test is an alias of web.rexo.test (its "rexo.test" by a pointer to
        // the question's), which is an alias of cdn.example, which has two addresses;
        // an address of another name is not taken.
        let owner = b"\x03WWW\x04rexo\x04TEST\x00";
        let mut records = resource_record(owner, TYPE_CNAME, b"\x03web\xC0\x10");
        // Each record's data follows its owner and 10 bytes of type, class, TTL, length.
        let web = records_at(&query) + owner.len() + 10;
        let cdn = records_at(&query) + records.len() + 2 + 10;
        records.extend(resource_record(
            &[0xC0, web as u8],
            TYPE_CNAME,
            b"\x03cdn\x07example\x00",
        ));
        records.extend(resource_record(&[0xC0, cdn as u8], TYPE_A, &[10, 0, 0, 1]));
        records.extend(resource_record(b"\x05other\x00", TYPE_A, &[10, 0, 0, 9]));
        records.extend(resource_record(&[0xC0, cdn as u8], TYPE_A, &[10, 0, 0, 2]));
        let answer = response_to(&query, 0, 5, &records);
        assert_eq!(
            read_answer(&answer, &query),
            Some(Ok(vec![
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2)
            ]))
        );
        // At most 4 addresses.
        let many: Vec<u8> = (1..=6)
            .flat_map(|i| resource_record(&[0xC0, 12], TYPE_A, &[10, 0, 0, i]))
            .collect();
        let answer = read_answer(&response_to(&query, 0, 6, &many), &query);
        assert_eq!(answer.map(|a| a.map(|a| a.len())), Some(Ok(4)));
    }

    #[test]
    fn error_codes_and_answers_without_addresses_say_why() {
        let query = asked("a.test");
        let no_such_name = response_to(&query, 3, 0, &[]);
        assert_eq!(
            read_answer(&no_such_name, &query),
            Some(Err(NetError::NotResolved))
        );
        let refused = response_to(&query, 5, 0, &[]);
        assert_eq!(
            read_answer(&refused, &query),
            Some(Err(NetError::DnsServerError(5)))
        );
        // Without the question (QDCOUNT 0, as servers answer FORMERR or REFUSED), an
        // error code still counts, NXDOMAIN as an error code only; no error does not.
        for (rcode, outcome) in [
            (1, Some(Err(NetError::DnsServerError(1)))),
            (5, Some(Err(NetError::DnsServerError(5)))),
            (3, Some(Err(NetError::DnsServerError(3)))),
            (0, None),
        ] {
            let mut bare = response_to(&query[..12], rcode, 0, &[]);
            bare[4..6].copy_from_slice(&[0, 0]);
            assert_eq!(read_answer(&bare, &query), outcome, "code {rcode}");
            bare[1] ^= 1;
            assert_eq!(read_answer(&bare, &query), None, "code {rcode}, another ID");
        }
        // No A record (an MX record only, a CNAME to a name without one).
        let mx = resource_record(&[0xC0, 12], 15, b"\x00\x0a\x02mx\xC0\x0e");
        let alias = resource_record(&[0xC0, 12], TYPE_CNAME, b"\x01b\x00");
        for records in [mx, alias] {
            assert_eq!(
                read_answer(&response_to(&query, 0, 1, &records), &query),
                Some(Err(NetError::NotResolved))
            );
        }
    }

    #[test]
    fn answers_to_other_queries_are_ignored() {
        let query = asked("a.test");
        let good = resource_record(&[0xC0, 12], TYPE_A, &[10, 0, 0, 7]);
        let mut other_id = response_to(&query, 0, 1, &good);
        other_id[1] ^= 1;
        let mut other_name = response_to(&query, 0, 1, &good);
        other_name[13] = b'b';
        let mut other_type = response_to(&query, 0, 1, &good);
        other_type[21] = 28;
        let mut not_a_response = response_to(&query, 0, 1, &good);
        not_a_response[2] &= 0x7F;
        let other_opcode = response_to(&query, 0x0800, 1, &good);
        let mut two_questions = response_to(&query, 0, 1, &good);
        two_questions[5] = 2;
        for (what, answer) in [
            ("another ID", other_id),
            ("another name", other_name),
            ("another type", other_type),
            ("a query", not_a_response),
            ("opcode 1", other_opcode),
            ("two questions", two_questions),
        ] {
            assert_eq!(read_answer(&answer, &query), None, "{what}");
        }
        // The name compared without regard to case.
        let mut upper = response_to(&query, 0, 1, &good);
        upper[13] = b'A';
        assert_eq!(
            read_answer(&upper, &query),
            Some(Ok(vec![Ipv4Addr::new(10, 0, 0, 7)]))
        );
    }

    #[test]
    fn malformed_answers_are_ignored_and_truncated_ones_are_not_read() {
        let query = asked("a.test");
        let good = resource_record(&[0xC0, 12], TYPE_A, &[10, 0, 0, 7]);
        // Each malformed record as written at offset `at`.
        type WrittenAt<'a> = &'a dyn Fn(u8) -> Vec<u8>;
        let malformed: [(&str, WrittenAt<'_>); 9] = [
            ("a pointer to itself", &|at| {
                resource_record(&[0xC0, at], TYPE_A, &[1; 4])
            }),
            ("a pointer forward", &|at| {
                resource_record(&[0xC0, at + 2], TYPE_A, &[1; 4])
            }),
            ("a pointer past the end", &|_| {
                resource_record(&[0xFF, 0xFF], TYPE_A, &[1; 4])
            }),
            ("a reserved label type", &|_| {
                resource_record(&[0x40, 0], TYPE_A, &[1; 4])
            }),
            ("a label past the end", &|_| vec![0x3F, b'a']),
            ("an A record of 5 bytes", &|_| {
                resource_record(&[0xC0, 12], TYPE_A, &[1; 5])
            }),
            ("a CNAME shorter than its data", &|_| {
                resource_record(&[0xC0, 12], TYPE_CNAME, b"\x01b\x00\x00")
            }),
            ("a CNAME longer than its data", &|_| {
                // Its name would end with the next record's first byte (a root owner).
                let mut records = resource_record(&[0xC0, 12], TYPE_CNAME, b"\x01b");
                records.extend(resource_record(b"\x00", TYPE_A, &[1; 4]));
                records
            }),
            ("a record cut", &|_| good[..good.len() - 1].to_vec()),
        ];
        for (what, written_at) in malformed {
            let records = written_at(records_at(&query) as u8);
            let answer = response_to(&query, 0, 1, &records);
            assert_eq!(read_answer(&answer, &query), None, "{what}");
            // Truncated (TC), a message is not read, whatever it holds (RFC 2181 9: it
            // may hold part of what was asked): the query is to be asked over TCP.
            let mut records = good.clone();
            records.extend(written_at((records_at(&query) + good.len()) as u8));
            let truncated = response_to(&query, FLAG_TRUNCATED, 2, &records);
            assert_eq!(
                read_answer(&truncated, &query),
                Some(Err(NetError::DnsTruncated)),
                "{what}, truncated after an address"
            );
        }
        let truncated = response_to(&query, FLAG_TRUNCATED, 1, &good);
        assert_eq!(
            read_answer(&truncated, &query),
            Some(Err(NetError::DnsTruncated)),
            "a whole address, truncated"
        );
        // A pointer loop in a CNAME's data (two pointers to each other) and a long
        // chain of pointers each one back: refused, not followed for ever.
        let at = records_at(&query) as u8;
        let looped = resource_record(&[0xC0, 12], TYPE_CNAME, &[0xC0, at + 12]);
        assert_eq!(
            read_answer(&response_to(&query, 0, 1, &looped), &query),
            None
        );
        // A label, then a pointer back to it: a loop through the label.
        let looped = resource_record(&[1, b'x', 0xC0, at], TYPE_A, &[1; 4]);
        assert_eq!(
            read_answer(&response_to(&query, 0, 1, &looped), &query),
            None
        );
        // The chain sits in the data of a record of an unknown type (skipped), each
        // link a label and a pointer to the link before; an A record's owner points at
        // the last.
        let mut chain = Vec::new();
        let chain_at = records_at(&query) + 2 + 10;
        let mut behind = 12;
        for _ in 0..200 {
            let here = chain_at + chain.len();
            chain.extend_from_slice(&[1, b'x']);
            chain.extend_from_slice(&(0xC000 | behind as u16).to_be_bytes());
            behind = here;
        }
        let mut records = resource_record(&[0xC0, 12], 99, &chain);
        records.extend(resource_record(
            &(0xC000 | behind as u16).to_be_bytes(),
            TYPE_A,
            &[1; 4],
        ));
        let answer = response_to(&query, 0, 2, &records);
        assert_eq!(read_answer(&answer, &query), None, "a name over 255 bytes");
        // Whatever the bytes, no panic.
        let mut state = 0x1234_5678u64;
        for len in 0..2000 {
            let mut message = response_to(&query, 0, 3, &good);
            for _ in 0..(len % 7 + 1) {
                state = mix(state);
                let at = (state as usize) % message.len();
                message[at] = (state >> 32) as u8;
            }
            message.truncate(message.len() - len % 5);
            let _ = read_answer(&message, &query);
        }
    }

    #[test]
    fn a_block_is_aligned_and_its_filter_takes_exactly_its_ports() {
        for (first, count) in [(49152, 48), (49153, 64), (0, 64), (49152, 0)] {
            assert!(DnsPorts::new(first, count).is_err(), "{first} {count}");
        }
        let block = DnsPorts::new(49152, 64).unwrap();
        let address = Ipv4Addr::new(10, 0, 2, 15);
        assert_eq!(
            block.filter(address),
            "udp sport 53 dst 10.0.2.15 & 36:2/0xffc0=0xc000"
        );
        let filter = rexo_api::Filter::parse(&block.filter(address)).unwrap();
        let next = DnsPorts::new(49216, 64).unwrap();
        let other = rexo_api::Filter::parse(&next.filter(address)).unwrap();
        assert!(!filter.overlaps(&other), "neighbouring blocks are disjoint");
        let kv = rexo_api::Filter::parse("udp dport 11211").unwrap();
        assert!(!filter.overlaps(&kv));
        let one = DnsPorts::new(5353, 1).unwrap();
        assert_eq!(
            one.filter(address),
            "udp sport 53 dst 10.0.2.15 & 36:2/0xffff=0x14e9"
        );
    }
}
