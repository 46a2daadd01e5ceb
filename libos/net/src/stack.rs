//! The interface an app drives: configuration (static or DHCP), the poll loop, TCP
//! listeners with a bounded backlog, connections, and UDP sockets.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use core::ops::RangeInclusive;
use core::sync::atomic::{AtomicU64, Ordering};

use rexo_api::device::PAIR_BROKEN;
use rexo_api::{ApiError, DeviceError, Filter, Ipv4Config, Kernel, NetDevice, ReceiveSteering};
use smoltcp::iface::{self, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Checksum, ChecksumCapabilities};
use smoltcp::phy::{DeviceCapabilities, Medium};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpEndpoint,
    Ipv4Cidr,
};

use crate::conflict::{AddressGuard, Verdict};
use crate::cores::{ArpShare, IcmpShare, PortClass, WholeDevice};
use crate::device::{Backlog, Counters, LentFrame, NicTx, Staging};
use crate::dns::{DnsPorts, DnsQuery, DnsTcpFailure, Resolver, TCP_RECEIVE_BYTES};
use crate::ingress::{ArpFromAnother, DhcpAnswer, is_group, is_network_own};
use crate::lease::{DhcpClient, DhcpLease, LeaseShare};
use crate::owntcp::{OwnCounters, OwnTcp};
use crate::ping::PingSockets;
use crate::tso::Tso;
use crate::udp::{UdpSockets, place_in_first_free};

/// Frames taken from the NIC per `NetDevice::receive` call: enough to amortise the
/// driver's doorbell, few enough that the replies staged meanwhile stay small; also the
/// most frames waiting in the backlog that a staged reply still joins, so a call takes
/// fewer (none) while frames wait there (`Backlog::room_for_replies`).
const RECEIVE_BATCH: usize = 32;

/// Receive batches per [`Stack::poll`]: a flood of frames must not keep the poll from
/// sending and from returning to the app.
const RECEIVE_BATCHES: usize = 8;

/// Sending rounds per [`Stack::poll`]. smoltcp sends at most one packet per socket per
/// round, so a bulk sender needs several rounds to fill the transmit ring between two
/// polls; the bound keeps one poll's work bounded.
const SEND_ROUNDS: usize = 64;

/// The Ethernet, IPv4 and UDP headers before a datagram's payload in a frame.
const UDP_HEADERS: usize = 14 + 20 + 8;

/// Local ports of outgoing connections and, without a block of its own
/// ([`Stack::set_dns_ports`]), of DNS queries (RFC 6335's dynamic range).
pub(crate) const EPHEMERAL_PORTS: RangeInclusive<u16> = 49152..=65535;

/// How often [`Stack::new`] polls while it waits for a DHCP lease.
const DHCP_POLL_NS: u64 = 1_000_000;

/// How the interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// A fixed address, checked as the kernel checks `ip=` ([`Ipv4Config::check`]:
    /// [`Stack::start`] refuses an unusable one with [`NetError::BadConfig`] naming why).
    Static {
        /// The interface's address: a unicast host address, not its network's first or
        /// last address (but on /31 and /32).
        address: Ipv4Addr,
        /// The network prefix length, 1 to 32 (24 for a /24).
        prefix: u8,
        /// The default router, if there is one: another host of the address's network
        /// (smoltcp reaches no router off it).
        gateway: Option<Ipv4Addr>,
        /// The DNS server [`Stack::resolve_start`] asks, if there is one.
        dns: Option<Ipv4Addr>,
    },
    /// An address leased by a DHCP server (and the DNS servers it names); [`Stack::new`] waits up to `timeout_ns` for
    /// the first lease and keeps renewing it in [`Stack::poll`].
    Dhcp {
        /// How long to wait for the first lease.
        timeout_ns: u64,
    },
}

impl Config {
    /// What the kernel command line gives the apps (`ip=ADDRESS/PREFIX[,ROUTER[,DNS]]`), else
    /// DHCP waiting up to `dhcp_timeout_ns` for the first lease.
    pub fn from_kernel(kernel: &Kernel, dhcp_timeout_ns: u64) -> Self {
        match kernel.ipv4_config() {
            Some(ip) => Self::Static {
                address: ip.address,
                prefix: ip.prefix,
                gateway: ip.router,
                dns: ip.dns,
            },
            None => Self::Dhcp {
                timeout_ns: dhcp_timeout_ns,
            },
        }
    }

    /// How the address comes, for log lines: `by DHCP` or `fixed by ip=`.
    pub fn how(&self) -> &'static str {
        match self {
            Self::Static { .. } => "fixed by ip=",
            Self::Dhcp { .. } => "by DHCP",
        }
    }
}

/// Reaches network interface `index` the way the kernel command line says. With `ip=`
/// the kernel owns the address (it answers ARP and ping for it) and the app binds to the
/// frames `filters` match (the filter language: `tcp dport 80`), sharing the interface
/// with other apps bound the same way ([`Kernel::bind_net`]). Without `ip=` the app
/// opens the interface whole ([`Kernel::open_net`]) and gets an address by DHCP,
/// waiting up to `dhcp_timeout_ns`. Returns the interface and the [`Config`] to build
/// the [`Stack`] with.
pub fn attach(
    kernel: &Kernel,
    index: usize,
    filters: &[&str],
    dhcp_timeout_ns: u64,
) -> Result<(Box<dyn NetDevice>, Config), NetError> {
    let config = Config::from_kernel(kernel, dhcp_timeout_ns);
    let nic = match config {
        Config::Static { .. } => {
            let filters = filters
                .iter()
                .map(|text| Filter::parse(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| NetError::BadConfig("a filter does not parse"))?;
            kernel.bind_net(index, &filters)
        }
        Config::Dhcp { .. } => kernel.open_net(index),
    };
    Ok((nic.map_err(NetError::Kernel)?, config))
}

/// [`NetError::BadConfig`]'s words for an MSS below [`rexo_tcp::MIN_MSS`]: a
/// `&'static str` (the error is `Copy`), so the number is written out and checked
/// against the constant when building.
const MSS_BELOW_LEAST: &str = "the MSS is below rexo_tcp::MIN_MSS (64 bytes)";
const _: () = assert!(
    rexo_tcp::MIN_MSS == 64,
    "MSS_BELOW_LEAST names another MIN_MSS: update its text"
);

/// [`NetError::BadConfig`]'s words for a config [`rexo_tcp::Endpoint::new`] refused.
fn refused_config(error: rexo_tcp::ConfigError) -> &'static str {
    match error {
        rexo_tcp::ConfigError::MssTooSmall(_) => MSS_BELOW_LEAST,
        rexo_tcp::ConfigError::MssTooLarge(_) => {
            "the MSS is above rexo_tcp::MAX_SEGMENTATION, the most TCP payload an IPv4 datagram carries"
        }
        rexo_tcp::ConfigError::RtoBounds(..) => "the least RTO is above the largest",
        rexo_tcp::ConfigError::RecvBuffer(_) => {
            "the receive buffer is 0 or above rexo_tcp::MAX_RECV_BUFFER"
        }
    }
}

/// Why the stack refused or failed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The NIC failed (or was revoked: the stack is then unusable).
    Device(DeviceError),
    /// No DHCP server answered with a lease in time.
    DhcpTimeout {
        /// How long the stack waited, in milliseconds.
        waited_ms: u64,
    },
    /// The static configuration is impossible (named).
    BadConfig(&'static str),
    /// The kernel refused the interface (held whole by another app, a filter that
    /// overlaps another app's...).
    Kernel(ApiError),
    /// The interface has no address yet (DHCP lease lost).
    NoAddress,
    /// A listener (TCP) or socket (UDP) of this stack already uses the port.
    PortInUse(u16),
    /// Port 0 cannot be listened on or bound.
    PortZero,
    /// The peer closed its side and every byte it sent has been read, or the connection
    /// was reset or timed out.
    Closed,
    /// The datagram or echo data is larger than the socket's send buffer or one frame.
    TooLarge,
    /// The destination cannot be reached (no route, or an unusable address).
    Unreachable,
    /// No DNS server is configured (`ip=` names none, or DHCP gave none).
    NoDnsServer,
    /// The name cannot be asked for: empty, an empty or 64-byte label, over 255 bytes.
    BadName,
    /// The DNS server said the name does not exist (NXDOMAIN) or has no IPv4 address.
    NotResolved,
    /// No DNS server answered within 10 s (the query sent 4 times, to each server in
    /// turn).
    DnsTimeout,
    /// Every DNS server asked failed, or none answered otherwise within 10 s and one
    /// did, and the last to fail answered this error code (RFC 1035 4.1.1: 1 format
    /// error, 2 server failure, 4 not implemented, 5 refused; 3, NXDOMAIN, is
    /// [`NetError::NotResolved`] when the answer holds the question, else this too). A
    /// server that answers one is not asked again; the next is, at once.
    DnsServerError(u8),
    /// A ping's next hop (the destination on the link, else the router) answered none
    /// of the ARP requests of 3 s, or there was no route: the socket's requests to it
    /// were dropped unsent ([`Stack::ping_recv`]).
    NoArpAnswer {
        /// The next hop given up on.
        next_hop: Ipv4Addr,
        /// How many of the socket's requests were dropped unsent since it last said
        /// so: the one that waited and those queued to the same next hop (and those of
        /// any next hop given up on before, unsaid).
        dropped: usize,
    },
    /// The DNS server's answer over TCP, asked for because its answer over UDP was cut
    /// short (TC), was cut short too: that server failed so, as
    /// [`NetError::DnsServerError`] says, and was the last to fail.
    DnsTruncated,
    /// The exchange over TCP with the DNS server that answered truncated over UDP
    /// failed, as the [`DnsTcpFailure`] says: that server failed so, as
    /// [`NetError::DnsServerError`] says, and was the last to fail.
    DnsOverTcp(DnsTcpFailure),
    /// Every resolver slot is busy with a query, or every port of the stack's DNS port
    /// block ([`Stack::set_dns_ports`]) is; finish one first.
    TooManyQueries,
    /// The DNS query was started by another stack (each of [`crate::attach_cores`]'s
    /// has its own resolver): ask that one.
    ForeignQuery,
    /// The stack serves one queue pair of a device that places each flow on a pair by a
    /// hash of its addresses (RSS on the 82574: ICMP, UDP and DNS by addresses only),
    /// and the replies from that peer, which a ping or a DNS query waits for, would
    /// land on another pair, whose stack would drop them: ping or resolve through that
    /// peer from the stack of the pair [`Stack::replies_from`] names. (Datagrams go
    /// from any pair: [`Stack::send_to`] says where their answers land.)
    RepliesToAnotherPair,
    /// Every local port of the dynamic range (49152-65535) this stack may take (on one
    /// queue pair of a split device that places no flow by a hash, its pair's share) is
    /// in use by a listener, our own TCP or a live connection, or, on one queue pair of
    /// an RSS device, lands its replies on another pair: no outgoing connection can be
    /// opened.
    NoFreePort,
    /// The socket's send buffer is full; poll and try again.
    WouldBlock,
    /// The handle (a [`Listener`], [`Connection`], [`UdpSocket`] or [`PingSocket`]) was
    /// made by another stack of the app (each of [`crate::attach_cores`]'s is one): it
    /// names nothing of this one, whose own listener or socket in the same slot it
    /// leaves alone. Use it on its own stack.
    ForeignHandle,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(error) => write!(f, "network device: {error}"),
            Self::DhcpTimeout { waited_ms } => {
                write!(
                    f,
                    "no DHCP lease within {waited_ms} ms (is a DHCP server on the link?)"
                )
            }
            Self::BadConfig(why) => write!(f, "bad network configuration: {why}"),
            Self::Kernel(error) => write!(f, "network interface: {error}"),
            Self::NoAddress => f.write_str("the interface has no IPv4 address"),
            Self::PortInUse(port) => write!(f, "port {port} is in use"),
            Self::PortZero => f.write_str("port 0 cannot be used"),
            Self::Closed => f.write_str("the connection is closed"),
            Self::TooLarge => {
                f.write_str("the datagram or echo data is larger than the send buffer or a frame")
            }
            Self::Unreachable => f.write_str("the destination cannot be reached"),
            Self::NoDnsServer => f.write_str("no DNS server is configured"),
            Self::BadName => f.write_str("not a name DNS can ask for"),
            Self::NotResolved => f.write_str("the DNS server has no IPv4 address for it"),
            Self::DnsTimeout => f.write_str("no DNS server answered within 10 s"),
            Self::DnsServerError(rcode) => {
                let what = match rcode {
                    1 => "format error",
                    2 => "server failure",
                    4 => "not implemented",
                    5 => "refused",
                    _ => "error",
                };
                write!(f, "the DNS server answered {what} (code {rcode})")
            }
            Self::NoArpAnswer { next_hop, dropped } => write!(
                f,
                "{next_hop} answered no ARP request within 3 s (no host there): \
                 {dropped} not sent"
            ),
            Self::DnsTruncated => {
                f.write_str("the DNS answer was cut short (truncated), over TCP too")
            }
            Self::DnsOverTcp(failure) => write!(
                f,
                "the DNS answer was cut short over UDP, and asking over TCP failed: {failure}"
            ),
            Self::TooManyQueries => f.write_str("every resolver slot or DNS port is busy"),
            Self::ForeignQuery => f.write_str("the DNS query belongs to another stack"),
            Self::RepliesToAnotherPair => f.write_str(
                "the device puts that peer's replies on another queue pair's stack (RSS)",
            ),
            Self::NoFreePort => f.write_str(
                "every local port 49152-65535 this stack may take (its queue pair's share on a \
                 split device) is in use or, on one queue pair of an RSS device, lands its \
                 replies on another pair",
            ),
            Self::WouldBlock => f.write_str("the send buffer is full"),
            Self::ForeignHandle => f.write_str("the handle belongs to another stack"),
        }
    }
}

impl NetError {
    /// The error an app that fails for this ends with: the device's or the kernel's own
    /// (a filter that overlaps another app's, an interface held by another app), so that
    /// the exit status names the failure; any other a plain failure (`AppFailed(1)`).
    pub fn exit_error(self) -> ApiError {
        match self {
            Self::Device(error) => ApiError::Device(error),
            Self::Kernel(error) => error,
            _ => ApiError::AppFailed(1),
        }
    }
}

impl From<DeviceError> for NetError {
    fn from(error: DeviceError) -> Self {
        Self::Device(error)
    }
}

/// A full send buffer would block; an unusable destination is unreachable.
impl From<udp::SendError> for NetError {
    fn from(error: udp::SendError) -> Self {
        match error {
            udp::SendError::BufferFull => Self::WouldBlock,
            udp::SendError::Unaddressable => Self::Unreachable,
        }
    }
}

/// A handle given to a stack that did not make it, refused and given back whole in
/// `.0` (nothing of it is lost), to be given to its own stack: what the calls that take
/// a handle over ([`Stack::close`], [`Stack::unlisten`], ...) answer instead of
/// [`NetError::ForeignHandle`], which it turns into with `?`.
#[derive(Debug, PartialEq, Eq)]
pub struct ForeignHandle<H>(pub H);

impl<H> From<ForeignHandle<H>> for NetError {
    fn from(_: ForeignHandle<H>) -> Self {
        Self::ForeignHandle
    }
}

impl<H> fmt::Display for ForeignHandle<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&NetError::ForeignHandle, f)
    }
}

/// The identity of a stack, which its handles carry: unique among the stacks built
/// since boot ([`NEXT_STACK`]), so a handle given to another stack of the app is
/// refused ([`NetError::ForeignHandle`]) instead of reaching that stack's listener or
/// socket in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StackId(u64);

/// The identity of the next stack built: a `u64`, so that it never comes round again.
static NEXT_STACK: AtomicU64 = AtomicU64::new(0);

/// A handle a [`Stack`] made: it says which.
trait Handle {
    /// The stack that made it.
    fn stack(&self) -> StackId;
}

/// An IPv4 address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub address: Ipv4Addr,
    /// The port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.address, self.port)
    }
}

impl Endpoint {
    /// The endpoint of a smoltcp endpoint (always IPv4: the only protocol compiled in).
    pub(crate) fn from_smoltcp(endpoint: IpEndpoint) -> Self {
        let IpAddress::Ipv4(address) = endpoint.addr;
        Self {
            address,
            port: endpoint.port,
        }
    }
}

/// Which stack receives what a peer sends back to this one (answers to a datagram or
/// a ping): the device, not the stack, places each flow on a queue pair
/// ([`Stack::replies_from`], [`Stack::send_to`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replies {
    /// This stack: its sockets receive them (always, but on one queue pair of a device
    /// that places flows by a hash of their addresses, RSS on the 82574).
    Here,
    /// The stack of queue pair `.0` (the `.0`-th of [`crate::Cores::stacks`]): the
    /// device places that peer's datagrams and ICMP there, so this stack's sockets never
    /// see them.
    OnPair(usize),
    /// A broadcast or multicast destination, on one queue pair of such a device: each
    /// host that answers is placed by its own address, so no pair is promised them.
    Scattered,
}

/// Buffers and behaviour of each connection of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOptions {
    /// Receive buffer bytes (the advertised window; above 65,535, as the default 64 KiB
    /// is, the window is scaled).
    pub receive_buffer: usize,
    /// Send buffer bytes (data written and not yet acknowledged).
    pub send_buffer: usize,
    /// Nagle's algorithm (off by default: request/response servers want each reply out
    /// at once).
    pub nagle: bool,
    /// Keep-alive probes after this much silence, if set.
    pub keep_alive_ms: Option<u64>,
    /// Abort a connection whose peer stays silent this long while data is unacknowledged,
    /// if set.
    pub timeout_ms: Option<u64>,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            receive_buffer: 64 * 1024,
            send_buffer: 64 * 1024,
            nagle: false,
            keep_alive_ms: None,
            timeout_ms: Some(60_000),
        }
    }
}

/// Buffers of a UDP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpOptions {
    /// Payload bytes each direction buffers.
    pub buffer: usize,
    /// Datagrams each direction buffers.
    pub datagrams: usize,
}

impl Default for UdpOptions {
    fn default() -> Self {
        Self {
            buffer: 64 * 1024,
            datagrams: 64,
        }
    }
}

/// A TCP port being listened on (a handle into its [`Stack`], which alone takes it:
/// another answers [`NetError::ForeignHandle`]). It is given back only by
/// [`Stack::unlisten`], which takes it, so its index always names a live listener: the
/// slot it frees is taken by the next listener.
#[derive(Debug, PartialEq, Eq)]
pub struct Listener {
    /// The stack that made it.
    stack: StackId,
    /// Its slot among the stack's listeners.
    index: usize,
}

/// A TCP connection (a handle into its [`Stack`], which alone takes it: another
/// answers [`NetError::ForeignHandle`]). Give it back with [`Stack::close`] or
/// [`Stack::abort`]: one merely dropped keeps its socket and buffers until the stack
/// is dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct Connection {
    /// The stack that made it.
    stack: StackId,
    /// Its socket among the stack's.
    handle: SocketHandle,
}

/// A bound UDP socket (a handle into its [`Stack`], which alone takes it: another
/// answers [`NetError::ForeignHandle`]).
#[derive(Debug, PartialEq, Eq)]
pub struct UdpSocket {
    /// The stack that made it.
    stack: StackId,
    /// Its index among the stack's UDP sockets (`udp.rs`).
    index: usize,
}

/// An ICMP echo (ping) socket: sends echo requests with its identifier and receives
/// the replies carrying it (a handle into its [`Stack`], which alone takes it: another
/// answers [`NetError::ForeignHandle`]).
#[derive(Debug, PartialEq, Eq)]
pub struct PingSocket {
    /// The stack that made it.
    stack: StackId,
    /// The socket's index among the stack's (`ping.rs`).
    index: usize,
    /// The echo identifier its requests carry.
    ident: u16,
}

impl Handle for Listener {
    fn stack(&self) -> StackId {
        self.stack
    }
}

impl Handle for Connection {
    fn stack(&self) -> StackId {
        self.stack
    }
}

impl Handle for UdpSocket {
    fn stack(&self) -> StackId {
        self.stack
    }
}

impl Handle for PingSocket {
    fn stack(&self) -> StackId {
        self.stack
    }
}

/// An echo reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoReply {
    /// Who answered.
    pub from: Ipv4Addr,
    /// The sequence number of the request answered.
    pub seq: u16,
    /// Bytes of data it carried back.
    pub len: usize,
    /// Whether that data is the request's, byte for byte; a reply whose data differs
    /// (damaged on the way, or a broken responder) is corrupt, not an answer.
    pub intact: bool,
}

/// How long a handshake may stay unfinished before its socket may be recycled for a new
/// SYN when the listener is full (SYN flood safety).
pub const HALF_OPEN_GRACE_NS: u64 = 1_000_000_000;
/// The largest echo data a ping socket sends: what an ICMP echo request (8 bytes of
/// header) carries in one 1500-byte IPv4 packet (20 bytes of header), as `ping -s 1472`
/// sends; less on a link whose frames hold less ([`Stack::ping_send`]).
pub const PING_MAX_DATA: usize = 1500 - 20 - 8;

/// The sockets behind one listening port. smoltcp needs one socket per connection, so
/// the listener keeps sockets listening and moves each that leaves `Listen` (a SYN came)
/// to `pending`; `backlog` bounds both together, which bounds half-open state under a
/// SYN flood: past it, SYNs are answered with a reset. So that a flood of spoofed SYNs,
/// whose handshakes never finish, does not hold the listener shut until they time out,
/// a handshake unfinished after [`HALF_OPEN_GRACE_NS`] gives its socket back to
/// listening whenever fewer than an eighth of the backlog listen.
struct ListenerState {
    /// The port.
    port: u16,
    /// The most sockets listening or waiting to be accepted.
    backlog: usize,
    /// How each connection is built.
    options: TcpOptions,
    /// Sockets in `Listen`.
    listening: Vec<SocketHandle>,
    /// Sockets past `Listen` with when they left it, oldest first, until accepted (or
    /// reset while half-open).
    pending: VecDeque<(SocketHandle, u64)>,
}

/// A TCP/IP interface over one NIC: it sends on one transmit queue and receives from
/// every receive queue (the device, not the stack, picks each flow's: RSS, a tap's hash).
pub struct Stack {
    /// This stack's identity, which its handles carry.
    id: StackId,
    /// The NIC, held for the stack's life.
    nic: Box<dyn NetDevice>,
    /// The clock at the last poll (or the start), in nanoseconds.
    now_ns: u64,
    /// The transmit queue used.
    queue: usize,
    /// The NIC's receive queues, all polled.
    receive_queues: usize,
    /// When the NIC is one queue pair of a device that places flows on its pairs by a
    /// hash ([`rexo_api::NetInfo::receive_steering`]): that hash and this pair. Replies
    /// to what this stack sends must hash to this pair, or its stack never sees them.
    steered_pair: Option<(ReceiveSteering, usize)>,
    /// smoltcp's interface: addresses, routes, the ARP cache. Boxed: its ARP cache of
    /// 256 neighbours makes it 6 KiB, which every move of the stack would copy on the
    /// core's 128 KiB kernel stack that apps run on (kv's start overflowed it).
    iface: Box<Interface>,
    /// Every socket.
    sockets: SocketSet<'static>,
    /// What the NIC can do, given to smoltcp with each frame.
    capabilities: DeviceCapabilities,
    /// The largest frame the link carries (smoltcp's MTU is larger with segmentation
    /// offload).
    max_frame: usize,
    /// Replies made during receive, waiting for the NIC.
    staging: Staging,
    /// Frames waiting for room in the NIC, and segmentation offload when the NIC has
    /// it (and checksum offload).
    backlog: Backlog,
    /// The default router (static or from DHCP).
    gateway: Option<Ipv4Addr>,
    /// What was moved and dropped.
    counters: Counters,
    /// The DHCP client, with [`Config::Dhcp`], or on pair 0's stack of an interface
    /// split with a lease ([`Stack::share_lease`]).
    dhcp: Option<DhcpClient>,
    /// The resolver (`dns.rs`): its servers from [`Config::Static`] or the DHCP lease,
    /// its port block, its queries.
    resolver: Resolver,
    /// The listeners, each in a slot its [`Listener`] names; an unlistened one's slot is
    /// free (`None`) until the next listener takes it.
    listeners: Vec<Option<ListenerState>>,
    /// The UDP sockets, each with its queue of datagrams to send (`udp.rs`).
    udp: UdpSockets,
    /// The ping sockets, each with its queue of requests to send (`ping.rs`).
    pings: PingSockets,
    /// Connections closed or aborted by the app, removed once smoltcp is done with them.
    closing: Vec<SocketHandle>,
    /// The key of the hash that places each peer's outgoing connections in the range
    /// of local ports ([`Stack::ephemeral_port`]), from the seed smoltcp's is.
    port_secret: u64,
    /// Local ports tried for outgoing connections so far ([`Stack::ephemeral_port`]).
    port_counter: u64,
    /// The local ports outgoing connections take ([`Stack::share_ports`]).
    ports: PortClass,
    /// The state of the DHCPDECLINEs' transaction IDs ([`next_random`]), from the seed.
    decline_ids: u64,
    /// Why the seed is the predictable fallback (the kernel's refusal of
    /// [`Kernel::random_u64`]); `None` when the kernel's random number is the seed.
    predictable_seed: Option<ApiError>,
    /// The ports served by our own TCP instead of smoltcp ([`Stack::serve_own`]).
    own: Option<OwnTcp>,
    /// The ARP frames shared with the other stacks of the interface, when there are
    /// several ([`crate::attach_cores`]).
    arp: Option<ArpShare>,
    /// The ICMP errors about our own TCP's connections shared with the other stacks of
    /// the interface, when there are several ([`crate::attach_cores`]).
    icmp: Option<IcmpShare>,
    /// The whole interface this stack's queue pair was split from, to reset the device
    /// when the pair answers [`PAIR_BROKEN`] ([`crate::attach_cores`]).
    whole_device: Option<Arc<WholeDevice>>,
    /// The DHCP lease shared with the other stacks of the interface, when there are
    /// several and the address is leased ([`crate::attach_cores`]).
    lease: Option<LeaseShare>,
    /// The transaction ID of the DHCP client's last message if it was a REQUEST: a NAK
    /// with it ends the lease asked for ([`NicTx::dhcp_request`]); `None` while the
    /// client rests ([`Stack::rest_client`]).
    dhcp_request: Option<u32>,
    /// The address this stack announces and defends against other hosts claiming it
    /// (`conflict.rs`, RFC 5227); `None` on a stack that leaves that to another of its
    /// interface ([`Stack::leave_guard`]).
    guard: Option<AddressGuard>,
}

impl Stack {
    /// Builds the stack over `nic`, sending on its queue `queue`, and configures it; with
    /// [`Config::Dhcp`] it polls until a lease comes or the timeout passes.
    pub fn new(
        kernel: &Kernel,
        nic: Box<dyn NetDevice>,
        queue: usize,
        config: Config,
    ) -> Result<Self, NetError> {
        let start = kernel.now_ns();
        let mut stack = Self::start(nic, queue, config, start, kernel.random_u64())?;
        if let Some(error) = stack.predictable_seed() {
            warn_predictable_seed(kernel, error, 1);
        }
        if let Config::Dhcp { timeout_ns } = config {
            while stack.address().is_none() {
                let now = kernel.now_ns();
                if now.saturating_sub(start) >= timeout_ns {
                    return Err(NetError::DhcpTimeout {
                        waited_ms: (now - start) / 1_000_000,
                    });
                }
                stack.poll(now)?;
                kernel.sleep_ns(DHCP_POLL_NS);
            }
        }
        Ok(stack)
    }

    /// Builds the stack without waiting, its clock at `now_ns`: with [`Config::Dhcp`]
    /// the DHCP client starts and the address comes with a later [`poll`](Self::poll)
    /// ([`address`](Self::address) says when); the timeout is the caller's to keep.
    /// `random` is the kernel's answer to [`Kernel::random_u64`], the stack's seed (with
    /// the index of `nic`'s queue pair stirred in, for one pair of a split device); its
    /// error leaves the stack a predictable seed, which
    /// [`predictable_seed`](Self::predictable_seed) reports for the caller to log.
    pub fn start(
        nic: Box<dyn NetDevice>,
        queue: usize,
        config: Config,
        now_ns: u64,
        random: Result<u64, ApiError>,
    ) -> Result<Self, NetError> {
        let mut stack = Self::unconfigured(nic, queue, now_ns, random);
        match config {
            Config::Static {
                address,
                prefix,
                gateway,
                dns,
            } => {
                let checked = Ipv4Config {
                    address,
                    prefix,
                    router: gateway,
                    dns,
                };
                checked.check().map_err(NetError::BadConfig)?;
                stack.configure(Ipv4Cidr::new(address, prefix), gateway);
                stack.set_dns_servers(dns.as_slice());
                if let Some(guard) = stack.guard.as_mut() {
                    guard.hold(Some(address), now_ns);
                }
            }
            Config::Dhcp { .. } => stack.dhcp = Some(DhcpClient::new(&mut stack.sockets)),
        }
        Ok(stack)
    }

    /// The stack with no address, its clock at `now_ns`, seeded from `random`.
    fn unconfigured(
        mut nic: Box<dyn NetDevice>,
        queue: usize,
        now_ns: u64,
        random: Result<u64, ApiError>,
    ) -> Self {
        let info = nic.info();
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = info.max_frame;
        // With segmentation offload smoltcp may build frames up to what the NIC cuts;
        // it builds them only for connections whose peer's MSS the stack raised.
        let tso = match info.tcp_segmentation {
            Some(max) if info.checksum_offload && max > info.max_frame => {
                capabilities.max_transmission_unit = max;
                Some(Tso::new(info.max_frame, max))
            }
            _ => None,
        };
        if info.checksum_offload {
            // The NIC computes TCP and UDP checksums of what is sent (received ones are
            // still checked here: the NIC does not say it checked them).
            capabilities.checksum.tcp = Checksum::Rx;
            capabilities.checksum.udp = Checksum::Rx;
        }
        let mut config = iface::Config::new(HardwareAddress::Ethernet(EthernetAddress(info.mac)));
        // smoltcp draws TCP initial sequence numbers and DHCP transaction IDs from this
        // seed, and the key of outgoing connections' local ports is made from it
        // (`ephemeral_port`), and so are the resolver's query IDs and ports (`dns.rs`).
        // It is the kernel's random number (RDSEED or RDRAND). Only when the kernel has
        // none is it the boot-relative time XOR the MAC, which differs between machines
        // and boots but lets an attacker who can guess both predict the sequence
        // numbers, the ports and the query IDs (RFC 6528, RFC 5452): `predictable_seed`
        // keeps why, for the warning. On one queue pair of a split device the pair's
        // index is stirred in: the stacks of one interface share its MAC and are built
        // at one time, and with one seed their first connections to a peer would take
        // the same port and sequence number, their queries the same port and ID.
        let (seed, predictable_seed) = match random {
            Ok(random) => (random, None),
            Err(error) => {
                let mac = info.mac;
                let mac =
                    u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);
                (now_ns ^ mac, Some(error))
            }
        };
        let seed = match info.pair {
            Some(pair) => seed ^ mix(PAIR_STIR ^ pair as u64),
            None => seed,
        };
        config.random_seed = mix(seed);
        let mut counters = Counters::default();
        let clamp = tso.as_ref().map(|tso| tso.local_mss);
        let mut backlog = Backlog::new(info.max_frame, tso, RECEIVE_BATCH);
        let mut tx = NicTx {
            nic: nic.as_mut(),
            queue,
            counters: &mut counters,
            backlog: &mut backlog,
            capabilities: capabilities.clone(),
            dhcp_request: None,
        };
        let iface = Box::new(Interface::new(config, &mut tx, instant(now_ns)));
        let sockets = SocketSet::new(Vec::new());
        Self {
            id: StackId(NEXT_STACK.fetch_add(1, Ordering::Relaxed)),
            nic,
            now_ns,
            queue,
            receive_queues: info.queues.max(1),
            steered_pair: info.receive_steering.clone().zip(info.pair),
            iface,
            sockets,
            staging: Staging::new(RECEIVE_BATCH, info.max_frame, clamp),
            capabilities,
            max_frame: info.max_frame,
            backlog,
            gateway: None,
            counters,
            dhcp: None,
            resolver: Resolver::new(seed),
            listeners: Vec::new(),
            udp: UdpSockets::new(info.max_frame.saturating_sub(UDP_HEADERS)),
            pings: PingSockets::new(),
            closing: Vec::new(),
            port_secret: mix(seed ^ PORT_SECRET_STIR),
            port_counter: 0,
            ports: PortClass::ALL,
            decline_ids: mix(seed ^ DECLINE_STIR),
            predictable_seed,
            own: None,
            arp: None,
            icmp: None,
            whole_device: None,
            lease: None,
            dhcp_request: None,
            guard: Some(AddressGuard::default()),
        }
    }

    /// Replaces the address and default route, in one step before any socket sends, so
    /// connections from an address that stays go on (smoltcp resets a TCP socket only
    /// when, at its dispatch, the interface lacks its local address).
    fn configure(&mut self, cidr: Ipv4Cidr, gateway: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addresses| {
            addresses.clear();
            // One address fits the smallest address table smoltcp can be built with.
            let _ = addresses.push(IpCidr::Ipv4(cidr));
        });
        self.gateway = gateway;
        match gateway {
            // Adding fails only when the route table is full, and it holds only this.
            Some(router) => drop(self.iface.routes_mut().add_default_ipv4_route(router)),
            None => drop(self.iface.routes_mut().remove_default_ipv4_route()),
        }
    }

    /// Forgets the address (a DHCP lease was lost): smoltcp (0.13) then resets every TCP
    /// socket from it at its next dispatch, without a RST.
    fn deconfigure(&mut self) {
        self.iface.update_ip_addrs(|addresses| addresses.clear());
        self.iface.routes_mut().remove_default_ipv4_route();
        self.gateway = None;
    }

    /// Points the resolver at `servers`, asked in turn (none: resolving says
    /// [`NetError::NoDnsServer`]).
    pub(crate) fn set_dns_servers(&mut self, servers: &[Ipv4Addr]) {
        self.resolver.set_servers(servers);
    }

    /// Sends later DNS queries from `ports`, a block of UDP ports the app owns (on an
    /// interface shared by packet filters, the block [`DnsPorts::filter`] takes the
    /// answers to); without a block they go from free ports of 49152-65535. A query's
    /// port is drawn at random from the block among those no UDP socket of the stack
    /// nor another query uses (on one queue pair of a split interface without RSS, of
    /// the pair's share of the block only: [`crate::attach_cores`]).
    pub fn set_dns_ports(&mut self, ports: DnsPorts) {
        self.resolver.set_ports(ports);
    }

    /// Starts resolving `name` to IPv4 addresses: an A query to the DNS servers (up to
    /// 3 from a DHCP lease), sent again after 1, 2 and 4 s, each time to the next
    /// server, at once to the next after one that answered an error code, and given up
    /// after 10 s; a truncated answer has the query asked again over TCP, given up 5 s
    /// later (`dns.rs`); [`resolve_poll`](Self::resolve_poll)
    /// gives the answer. At most 4 queries at once ([`NetError::TooManyQueries`]), each
    /// from its own port. On a stack of one queue pair only the servers whose answers
    /// the device puts on this pair are asked; [`NetError::RepliesToAnotherPair`] when
    /// it puts every server's on another.
    pub fn resolve_start(&mut self, name: &str) -> Result<DnsQuery, NetError> {
        let servers: Vec<Ipv4Addr> = self
            .resolver
            .servers()
            .iter()
            .copied()
            .filter(|&server| !matches!(self.replies_from(server), Replies::OnPair(_)))
            .collect();
        if servers.is_empty() && !self.resolver.servers().is_empty() {
            return Err(NetError::RepliesToAnotherPair);
        }
        let udp = &self.udp;
        self.resolver.start(
            name,
            servers,
            self.now_ns,
            &mut self.sockets,
            &mut self.closing,
            |port| udp.is_bound(port),
        )
    }

    /// The answer to `query` once it came (polled by [`poll`](Self::poll)): the name's
    /// IPv4 addresses, at most 4, or why there are none. `None` while it is pending; asked
    /// again after its answer, it says [`NetError::Closed`]; a query another stack
    /// started (one per queue pair, [`crate::attach_cores`]) is
    /// [`NetError::ForeignQuery`], and stays that stack's.
    pub fn resolve_poll(
        &mut self,
        query: &mut DnsQuery,
    ) -> Option<Result<Vec<Ipv4Addr>, NetError>> {
        self.resolver.take(query)
    }

    /// Gives up on `query`: its slot and port are free again. A query another stack
    /// started is left to that stack, which frees its slot at its next poll (as for any
    /// [`DnsQuery`] dropped).
    pub fn resolve_cancel(&mut self, query: DnsQuery) {
        drop(query);
        self.resolver
            .reap_dropped(&mut self.sockets, &mut self.closing);
    }

    /// The default router, once the interface has one.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    /// The interface's address and prefix length, once it has one.
    pub fn address(&self) -> Option<(Ipv4Addr, u8)> {
        self.iface.ip_addrs().iter().next().map(|cidr| match cidr {
            IpCidr::Ipv4(v4) => (v4.address(), v4.prefix_len()),
        })
    }

    /// Why the stack's seed is the predictable fallback, the boot-relative time XOR the
    /// MAC (the kernel's error from [`Kernel::random_u64`]); `None` when the kernel's
    /// random number seeds it.
    pub fn predictable_seed(&self) -> Option<ApiError> {
        self.predictable_seed
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        match self.iface.hardware_addr() {
            HardwareAddress::Ethernet(mac) => mac.0,
        }
    }

    /// Ends the stack, giving back its NIC, the configuration it has (an address a
    /// DHCP lease gave, with its router and first DNS server, as a fixed one) and every
    /// DNS server its resolver asks in turn (up to 3 from a lease), so that stacks over
    /// the NIC's queue pairs can be built with them ([`crate::attach_cores`]).
    pub fn into_parts(self) -> (Box<dyn NetDevice>, Option<Config>, Vec<Ipv4Addr>) {
        let dns_servers = self.resolver.servers().to_vec();
        let config = self.address().map(|(address, prefix)| Config::Static {
            address,
            prefix,
            gateway: self.gateway,
            dns: dns_servers.first().copied(),
        });
        (self.nic, config, dns_servers)
    }

    /// Shares the ARP frames this stack receives with the other stacks of its
    /// interface, and learns from theirs ([`crate::attach_cores`]).
    pub(crate) fn share_arp(&mut self, share: ArpShare) {
        self.arp = Some(share);
    }

    /// Hands the ICMP errors about our own TCP's connections that this stack receives
    /// but does not hold to the other stacks of its interface, and acts on theirs
    /// ([`crate::attach_cores`]).
    pub(crate) fn share_icmp(&mut self, share: IcmpShare) {
        self.icmp = Some(share);
    }

    /// Takes the DHCP client away, with the lease it holds and the times to renew it, for
    /// a stack of one of the NIC's queue pairs to keep renewing it ([`crate::attach_cores`]);
    /// `None` with a fixed address. This stack no longer renews.
    pub(crate) fn take_dhcp_client(&mut self) -> Option<DhcpClient> {
        Some(self.dhcp.take()?.taken_out(&mut self.sockets))
    }

    /// Keeps the DHCP lease with the other stacks of the interface through `share`
    /// ([`crate::attach_cores`]): the stack given `client` runs it, taking the server's
    /// answers that land on the others' pairs and posting every lease it learns or loses
    /// for them; a stack given none hands such answers on and applies each lease posted.
    pub(crate) fn share_lease(&mut self, share: LeaseShare, client: Option<DhcpClient>) {
        self.lease = Some(share);
        if let Some(client) = client {
            self.dhcp = Some(client.woken(&mut self.sockets, self.now_ns));
        }
    }

    /// Takes only the local ports of `class` for the connections and DNS queries this
    /// stack opens, so that the stacks of a split interface never open one four-tuple
    /// ([`crate::attach_cores`]); on a device that places flows by RSS every port stays
    /// this stack's to try, the hash keeping the stacks apart
    /// ([`replies_to`](Self::replies_to)).
    pub(crate) fn share_ports(&mut self, class: PortClass) {
        if self.steered_pair.is_none() {
            self.ports = class;
            self.resolver.set_port_class(class);
        }
    }

    /// Leaves announcing and defending the address to another stack of the interface
    /// (pair 0's, [`crate::attach_cores`]), which sees every ARP frame too: one stack
    /// answers for the address, once.
    pub(crate) fn leave_guard(&mut self) {
        self.guard = None;
    }

    /// Hands over the guard of the address this stack holds (its announcements still
    /// due, its last defence), for the stack that goes on guarding the address.
    pub(crate) fn take_guard(&mut self) -> Option<AddressGuard> {
        self.guard.take()
    }

    /// Guards the address as `guard` did on the stack that took it, instead of
    /// announcing it anew: pair 0's stack after the interface split from a lease
    /// ([`crate::cores::stacks_after_lease`]).
    pub(crate) fn carry_guard(&mut self, guard: AddressGuard) {
        self.guard = Some(guard);
    }

    /// Resets the device through `whole`, the interface this stack's queue pair was split
    /// from, when the pair answers [`PAIR_BROKEN`] ([`crate::attach_cores`]).
    pub(crate) fn reset_through(&mut self, whole: Arc<WholeDevice>) {
        self.whole_device = Some(whole);
    }

    /// What the NIC adapter moved, copied and dropped.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Adds `earlier` to the counters: what the stack that took the DHCP lease over the
    /// whole interface counted before the stacks of its queue pairs took over
    /// ([`crate::attach_cores`]).
    pub(crate) fn carry_counters(&mut self, earlier: Counters) {
        self.counters += earlier;
    }

    /// Arms the NIC so that the next frame on any of its receive queues wakes core
    /// `core` from `Kernel::sleep_ns` (`None` disarms them): call it before every nap,
    /// since a wake is one-shot (`NetDevice::wake_on_receive`). A frame that came since
    /// the last poll wakes the core too, so the nap may follow at once. `Unsupported`
    /// for a NIC that cannot wake a core; if one queue cannot wake the core, the queues armed before it are
    /// disarmed and its error returned, since a nap could then outlast a frame.
    pub fn wake_on_receive(&mut self, core: Option<usize>) -> Result<(), NetError> {
        for queue in 0..self.receive_queues {
            if let Err(error) = self.nic.wake_on_receive(queue, core) {
                for armed in 0..queue {
                    let _ = self.nic.wake_on_receive(armed, None);
                }
                return Err(NetError::Device(error));
            }
        }
        Ok(())
    }

    /// Receives and processes what the NIC holds, sends what the sockets have, keeps the
    /// DHCP lease and the listeners' backlogs; `now_ns` is the kernel's clock. Returns
    /// whether any socket may have changed (worth looking at them). Never waits.
    pub fn poll(&mut self, now_ns: u64) -> Result<bool, NetError> {
        self.now_ns = now_ns;
        let now = instant(now_ns);
        let mut changed = false;
        // Our own TCP sends first: what the app queued since the last poll, with the
        // ACKs owed for what that poll received riding on it (`owntcp.rs`).
        let mac = self.mac();
        if let Some(own) = self.own.as_mut() {
            let sent = own.output(
                now_ns,
                self.nic.as_mut(),
                self.queue,
                mac,
                &mut self.counters,
            );
            reset_if_broken(sent, (), &self.whole_device, &mut self.counters)?;
        }
        // Frames the other stacks of the interface received for this one: ARP frames, as
        // replies (smoltcp learns the sender's address and answers nothing; an
        // announcement as a reply to this stack, `ingress.rs`), and for the stack that
        // keeps the DHCP lease, the server's answers.
        let local = self.address();
        // A NAK to the DHCP client's REQUEST, kept from smoltcp and acted on before it
        // sends anything.
        let (request, mut nak) = (self.dhcp_request, false);
        // ARP from other hosts claiming the address this stack guards (RFC 5227 2.4),
        // acted on once the frames are in.
        let guarded = self.guard.as_ref().and_then(AddressGuard::address);
        let mut conflicts = 0u32;
        let mut claims_guarded = |arp: Option<&ArpFromAnother>| {
            if let (Some(arp), Some(address)) = (arp, guarded)
                && arp.claims(address)
            {
                conflicts += 1;
            }
        };
        {
            let Self {
                iface,
                sockets,
                staging,
                capabilities,
                arp,
                lease,
                counters,
                ..
            } = self;
            let mut ingest = |frame: &[u8]| {
                let mut device = LentFrame {
                    frame: Some(frame),
                    staging: &mut *staging,
                    capabilities: capabilities.clone(),
                };
                iface.poll_ingress_single(now, &mut device, sockets);
            };
            if let Some(arp) = arp.as_mut() {
                arp.take(|frame| {
                    let from_another = ArpFromAnother::read(frame, mac);
                    claims_guarded(from_another.as_ref());
                    let announced = from_another
                        .and_then(|arp| crate::ingress::announcement_as_reply(&arp, local, mac));
                    match announced {
                        Some(reply) => ingest(&reply),
                        None => ingest(frame),
                    }
                });
            }
            if let Some(lease) = lease.as_mut() {
                lease.take_answers(|frame| match screen_dhcp(frame, mac, request, counters) {
                    DhcpScreen::Hand => ingest(frame),
                    DhcpScreen::Refused => {}
                    DhcpScreen::Nak => nak = true,
                });
            }
        }
        // And the ICMP errors about our own TCP's connections that landed on another
        // stack's pair: those about this stack's are acted on.
        if let Some(icmp) = self.icmp.as_mut() {
            match self.own.as_mut() {
                Some(own) => own.take_icmp(now_ns, icmp),
                None => _ = icmp.take(|_| {}),
            }
        }
        let address = local.map(|(address, _)| address.octets());
        let has_client = self.dhcp.is_some();
        // A DHCP answer on a group MAC is taken by a client, or handed to the one that
        // shares the lease; a stack of a fixed address drops it (`ingress.rs`).
        let takes_dhcp_answers = has_client || self.lease.is_some();
        for _ in 0..RECEIVE_BATCHES {
            let Self {
                nic,
                queue,
                receive_queues,
                iface,
                sockets,
                capabilities,
                staging,
                counters,
                backlog,
                listeners,
                own,
                arp,
                icmp,
                whole_device,
                lease,
                ..
            } = self;
            let mut batch_full = false;
            let offload = crate::device::offloads(capabilities);
            // Every receive queue: the device picked each flow's, not the stack.
            for from in 0..*receive_queues {
                // Only as many frames as the backlog has room to answer: while the NIC's
                // ring is full the rest wait in the device's receive ring (which holds
                // or drops them) rather than be taken and their replies dropped. A
                // send that meets the pair broken resets the device even when no
                // receive follows (the backlog full of frames held for the reset).
                let room = backlog.room_for_replies(nic.as_mut(), *queue, counters);
                let room = reset_if_broken(room, 0, whole_device, counters)?;
                if room == 0 {
                    continue;
                }
                let received = nic.receive(from, room, &mut |frame| {
                    counters.rx_frames += 1;
                    counters.rx_bytes += frame.len() as u64;
                    if let Some(arp) = arp.as_mut() {
                        arp.post(frame);
                    }
                    // Addresses no host sends from or to: neither smoltcp nor our own
                    // TCP answers them (`ingress.rs`).
                    if crate::ingress::misaddressed(frame, local, takes_dhcp_answers) {
                        counters.rx_misaddressed += 1;
                        return;
                    }
                    // A DHCP server's answer is the renewer's, whichever pair it landed on.
                    if let Some(lease) = lease.as_mut()
                        && lease.post_answer(frame)
                    {
                        return;
                    }
                    // The ports served by our own TCP take their segments first.
                    if let Some(own) = own.as_mut()
                        && own.input(now_ns, frame, address, icmp.as_mut())
                    {
                        changed = true;
                        return;
                    }
                    // Our own TCP takes TCP and ICMP only, never a DHCP answer, which
                    // only a stack with a client screens.
                    if has_client {
                        match screen_dhcp(frame, mac, request, counters) {
                            DhcpScreen::Hand => {}
                            DhcpScreen::Refused => return,
                            DhcpScreen::Nak => {
                                nak = true;
                                return;
                            }
                        }
                    }
                    // ARP smoltcp neither answers nor learns from (`ingress.rs`): a
                    // probe for this stack's address is answered here, and a
                    // neighbour's announcement goes to smoltcp as a reply to this stack.
                    let from_another = ArpFromAnother::read(frame, mac);
                    claims_guarded(from_another.as_ref());
                    if let Some(reply) = from_another
                        .as_ref()
                        .and_then(|arp| crate::ingress::probe_reply(arp, local, mac))
                    {
                        staging.stage(&reply);
                        return;
                    }
                    let announced = from_another
                        .and_then(|arp| crate::ingress::announcement_as_reply(&arp, local, mac));
                    let frame = announced.as_ref().map_or(frame, |reply| &reply[..]);
                    let frame = match backlog.tso_mut() {
                        Some(tso) => tso.inbound(frame, address, |flow| {
                            receive_buffer(listeners, sockets, flow)
                        }),
                        None => frame,
                    };
                    let mut device = LentFrame {
                        frame: Some(frame),
                        staging: &mut *staging,
                        capabilities: capabilities.clone(),
                    };
                    let outcome = iface.poll_ingress_single(now, &mut device, sockets);
                    changed |= outcome == iface::PollIngressSingleResult::SocketStateChanged;
                });
                let received = reset_if_broken(received, 0, whole_device, counters)?;
                let flushed = staging.flush(nic.as_mut(), *queue, offload, counters, backlog);
                reset_if_broken(flushed, (), whole_device, counters)?;
                batch_full |= received == RECEIVE_BATCH;
            }
            if !batch_full {
                break;
            }
        }
        if nak {
            self.nak_taken();
        }
        for _ in 0..conflicts {
            self.address_conflict()?;
        }
        // Answers received take their queries' sockets away before the sending rounds;
        // queries whose time came are queued again for them. A truncated answer the last
        // poll read has its query asked over TCP, connecting now.
        self.open_dns_connections();
        self.resolver
            .poll(now_ns, &mut self.sockets, &mut self.closing);
        // A datagram that waited for its next hop too long is dropped before smoltcp
        // tries it again, and each UDP socket is lent its next datagram in every round.
        let (local, gateway) = (self.address(), self.gateway);
        let next_hop = |to| next_hop(local, gateway, to);
        let mut unresolved = 0;
        self.udp.give_up_unresolved(
            &mut self.sockets,
            now_ns,
            next_hop,
            &mut unresolved,
            &mut self.counters.udp_unread_dropped,
        );
        self.pings
            .give_up_unresolved(&mut self.sockets, now_ns, next_hop);
        let mut tx = NicTx {
            nic: self.nic.as_mut(),
            queue: self.queue,
            counters: &mut self.counters,
            backlog: &mut self.backlog,
            capabilities: self.capabilities.clone(),
            // Only a stack with a client reads the ID noted.
            dhcp_request: self.dhcp.is_some().then_some(&mut self.dhcp_request),
        };
        for _ in 0..SEND_ROUNDS {
            self.udp.lend(&mut self.sockets, next_hop, &mut unresolved);
            self.pings.lend(&mut self.sockets);
            if self.iface.poll_egress(now, &mut tx, &mut self.sockets) == iface::PollResult::None {
                break;
            }
            changed = true;
        }
        let nic_had_room = self.backlog.is_empty();
        self.udp.note_waiting(&self.sockets, now_ns, nic_had_room);
        self.pings.note_waiting(&self.sockets, now_ns, nic_had_room);
        self.counters.udp_unresolved_dropped += unresolved;
        self.poll_dhcp();
        self.announce()?;
        self.refill_listeners(now_ns);
        self.reap_closed();
        if let Some(tso) = self.backlog.tso_mut() {
            let sockets = &self.sockets;
            tso.sweep(
                || sockets.iter().count(),
                |flow| {
                    sockets.iter().any(|(_, socket)| {
                        let smoltcp::socket::Socket::Tcp(tcp) = socket else {
                            return false;
                        };
                        match (tcp.local_endpoint(), tcp.remote_endpoint()) {
                            (Some(local), Some(remote)) => {
                                local.port == flow.local_port
                                    && remote.port == flow.peer_port
                                    && remote.addr == IpAddress::Ipv4(Ipv4Addr::from(flow.peer))
                            }
                            _ => false,
                        }
                    })
                },
            );
        }
        Ok(changed)
    }

    /// Connections whose peer's MSS the stack raised for segmentation offload (0
    /// without it).
    pub fn segmentation_offload_connections(&self) -> usize {
        self.backlog.tso().map_or(0, Tso::raised)
    }

    /// Applies what the DHCP client learnt. A lease whose address or router a fixed
    /// configuration could not have ([`Ipv4Config::check`], as [`Stack::start`] checks
    /// one) is refused and counted ([`Counters::dhcp_leases_refused`]); a DNS server a
    /// fixed configuration could not name is left out of the lease taken and counted
    /// ([`Counters::dhcp_dns_servers_dropped`]), the others kept in order. A lease gone
    /// before the stack took it (one of 0 s) is refused too. A refused lease drops the address an earlier one gave, if any, and the client rests out of
    /// the sockets before it discovers again, 10 s after the first refusal, twice as long after each
    /// in a row up to 320 s, 10 s again once a lease was taken (RFC 2131 3.1 step 5;
    /// [`DhcpClient::rested`]). An address taken here is one
    /// [`into_parts`](Self::into_parts) hands on and [`crate::attach_cores`] builds its
    /// stacks with.
    ///
    /// With a lease kept by several stacks ([`Stack::share_lease`]), the stack that runs
    /// the client posts what it applies, and the others apply what it posted. A lease
    /// lost (expired without renewal, ended by the server, or refused at renewal) drops
    /// the address, counted by the client's stack ([`Counters::dhcp_leases_lost`]).
    fn poll_dhcp(&mut self) {
        let Some(client) = self.dhcp.take() else {
            if let Some(change) = self.lease.as_mut().and_then(LeaseShare::take_lease) {
                self.apply_lease(change.as_ref());
            }
            return;
        };
        let mut client = client.woken(&mut self.sockets, self.now_ns);
        let news = client.handle().and_then(|handle| {
            let socket = self.sockets.get_mut::<dhcpv4::Socket>(handle);
            socket.poll().map(|event| match event {
                dhcpv4::Event::Configured(config) => usable_lease(&config),
                dhcpv4::Event::Deconfigured => DhcpNews::Gone,
            })
        });
        let lease = match news {
            None => {
                self.dhcp = Some(client);
                return;
            }
            Some(DhcpNews::Lease {
                lease,
                dns_dropped,
                server,
            }) => {
                self.counters.dhcp_dns_servers_dropped += dns_dropped as u64;
                client.lease_taken(server);
                Some(lease)
            }
            Some(DhcpNews::Gone) if self.address().is_some() => None,
            // A lease gone before the stack took it (one of 0 s, expired in the poll
            // that acknowledged it) is a refusal: the client would start over at once.
            Some(DhcpNews::Refused | DhcpNews::Gone) => {
                self.counters.dhcp_leases_refused += 1;
                self.rest_client(client);
                self.lease_changed(None);
                return;
            }
        };
        self.dhcp = Some(client);
        self.lease_changed(lease);
    }

    /// The DHCP server NAKed the client's last REQUEST ([`DhcpScreen::Nak`]), counted
    /// ([`Counters::dhcp_naks`]): the lease asked for or renewed is refused, an address
    /// held dropped (a lease lost), and the client rests as after a lease the stack
    /// refused ([`DhcpClient::rested`]; RFC 2131 3.1 has a client wait before it starts
    /// over, to avoid looping, and 4.1 back off exponentially). smoltcp's client, NAKed
    /// while requesting, started over at once and said nothing, so a server that NAKs
    /// every REQUEST had a DISCOVER and a REQUEST every poll, forever.
    fn nak_taken(&mut self) {
        let Some(client) = self.dhcp.take() else {
            return;
        };
        self.counters.dhcp_naks += 1;
        self.rest_client(client);
        if self.address().is_some() {
            self.lease_changed(None);
        }
    }

    /// Rests `client` out of the sockets ([`DhcpClient::rested`]) as the stack's client
    /// and forgets its last REQUEST: a NAK to that REQUEST during the rest is none the
    /// client acts on, so it is neither counted nor rested on again.
    fn rest_client(&mut self, client: DhcpClient) {
        self.dhcp = Some(client.rested(&mut self.sockets, self.now_ns));
        self.dhcp_request = None;
    }

    /// Another host's ARP claimed the address the stack guards (RFC 5227 2.4), counted
    /// ([`Counters::address_conflicts`]). The first conflict, or one 10 s or more after
    /// the last defence, is defended: the address is announced once
    /// ([`Counters::address_defences`]). One sooner gives a leased address up
    /// ([`Counters::addresses_given_up`]): the lease is dropped (a lease lost), a
    /// DHCPDECLINE of the address goes to the server that leased it
    /// ([`crate::lease::decline`], [`Counters::dhcp_declines`]; RFC 2131 3.1 step 5 and
    /// 4.4.1: the server marks the address in use rather than offer it again, where it
    /// kept the binding and leased the client the same address, to be given up again)
    /// and the client rests as after a refused lease before it discovers again (at least
    /// 10 s, as 3.1 step 5 has a client that declined wait). A DHCPRELEASE would tell the
    /// server the address is free, to hand to the next client while another host holds
    /// it. A fixed address has no other to fall back on, so it is defended indefinitely,
    /// once per 10 s at most (2.4 (c)).
    fn address_conflict(&mut self) -> Result<(), NetError> {
        let Some(guard) = self.guard.as_mut() else {
            return Ok(());
        };
        let Some(address) = guard.address() else {
            return Ok(());
        };
        self.counters.address_conflicts += 1;
        match guard.conflict(self.now_ns, self.dhcp.is_some()) {
            Verdict::Defend => self.counters.address_defences += 1,
            Verdict::Keep => {}
            Verdict::GiveUp => {
                self.counters.addresses_given_up += 1;
                let server = self.dhcp.as_ref().and_then(DhcpClient::server);
                if let Some(client) = self.dhcp.take() {
                    self.rest_client(client);
                }
                self.lease_changed(None);
                if let Some(server) = server {
                    let id = next_random(&mut self.decline_ids) as u32;
                    let decline = crate::lease::decline(self.mac(), address, server, id);
                    self.send_made(&decline, false)?;
                    self.counters.dhcp_declines += 1;
                }
            }
        }
        Ok(())
    }

    /// Sends the announcement of the guarded address due now, if any (RFC 5227 2.3 and
    /// a defence, 2.4).
    fn announce(&mut self) -> Result<(), NetError> {
        let Some(address) = self
            .guard
            .as_mut()
            .and_then(|guard| guard.announcement_due(self.now_ns))
        else {
            return Ok(());
        };
        let announcement = crate::ingress::announcement(self.mac(), address);
        let offload = crate::device::offloads(&self.capabilities);
        self.send_made(&announcement, offload)
    }

    /// Sends `frame`, made by the stack itself rather than smoltcp, now (or after what
    /// waits for room in the NIC): through the NIC's checksum offload with `offload`.
    fn send_made(&mut self, frame: &[u8], offload: bool) -> Result<(), NetError> {
        self.staging.stage(frame);
        let flushed = self.staging.flush(
            self.nic.as_mut(),
            self.queue,
            offload,
            &mut self.counters,
            &mut self.backlog,
        );
        reset_if_broken(flushed, (), &self.whole_device, &mut self.counters)?;
        Ok(())
    }

    /// Takes `lease` (`None`: drops the address held, a lease lost, if any) and posts it
    /// for the other stacks of the interface; the address taken is announced and
    /// guarded ([`Stack::address_conflict`]).
    fn lease_changed(&mut self, lease: Option<DhcpLease>) {
        if lease.is_none() && self.address().is_some() {
            self.counters.dhcp_leases_lost += 1;
        }
        if let Some(guard) = self.guard.as_mut() {
            guard.hold(
                lease.as_ref().map(|lease| lease.cidr.address()),
                self.now_ns,
            );
        }
        self.apply_lease(lease.as_ref());
        if let Some(share) = &self.lease {
            share.post_lease(lease);
        }
    }

    /// Takes `lease`'s address, router and DNS servers, or drops them (`None`).
    fn apply_lease(&mut self, lease: Option<&DhcpLease>) {
        match lease {
            Some(lease) => {
                self.configure(lease.cidr, lease.router);
                self.set_dns_servers(&lease.dns_servers);
            }
            None => {
                self.deconfigure();
                self.set_dns_servers(&[]);
            }
        }
    }

    /// Moves listening sockets that got a SYN to their listener's pending queue and
    /// listens again up to the backlog.
    fn refill_listeners(&mut self, now_ns: u64) {
        for listener in self.listeners.iter_mut().flatten() {
            let sockets = &mut self.sockets;
            listener.listening.retain(|&handle| {
                if sockets.get::<tcp::Socket>(handle).state() == tcp::State::Listen {
                    true
                } else {
                    listener.pending.push_back((handle, now_ns));
                    false
                }
            });
            // A connection reset or timed out before it was accepted frees its slot, and
            // so does a handshake the peer reset (smoltcp puts that socket back in
            // `Listen`): a fresh socket listens in its place, as for a stale one below.
            listener.pending.retain(|&(handle, _)| {
                let state = sockets.get::<tcp::Socket>(handle).state();
                let gone = matches!(
                    state,
                    tcp::State::Closed | tcp::State::TimeWait | tcp::State::Listen
                );
                if gone {
                    sockets.remove(handle);
                }
                !gone
            });
            // A full listener drops its oldest stale handshakes (SYN flood safety); the
            // loop below listens again in their place. A fresh socket, not the old one
            // re-listened: smoltcp would keep the old one silent while it waits for the
            // spoofed peer's MAC address.
            let reserve = (listener.backlog / 8).max(1);
            let mut listening = listener.listening.len();
            while listening < reserve {
                let stale = listener.pending.iter().position(|&(handle, since)| {
                    now_ns.saturating_sub(since) >= HALF_OPEN_GRACE_NS
                        && sockets.get::<tcp::Socket>(handle).state() == tcp::State::SynReceived
                });
                let Some((handle, _)) = stale.and_then(|at| listener.pending.remove(at)) else {
                    break;
                };
                sockets.remove(handle);
                listening += 1;
                self.counters.half_open_recycled += 1;
            }
            while listener.listening.len() + listener.pending.len() < listener.backlog {
                let handle = sockets.add(new_tcp_socket(&listener.options));
                if sockets
                    .get_mut::<tcp::Socket>(handle)
                    .listen(listener.port)
                    .is_err()
                {
                    sockets.remove(handle);
                    break;
                }
                listener.listening.push(handle);
            }
        }
    }

    /// Removes the sockets of closed connections once smoltcp is done with them.
    fn reap_closed(&mut self) {
        let sockets = &mut self.sockets;
        self.closing.retain(|&handle| {
            let state = sockets.get::<tcp::Socket>(handle).state();
            // TIME-WAIT's 2*MSL keeps stray segments of an old connection out of a new
            // one on the same four-tuple. Accepted connections' tuples are the clients'
            // choice, and outgoing ones take local ports so that one peer sees a port
            // again only after every port of its class tried (`ephemeral_port`): at most
            // 16,384 connections, about half that on one RSS pair, which skips the ports
            // whose replies land on the other, or on one of two pairs of a split device
            // without RSS, which takes every other port: the socket can go at once.
            let done = matches!(state, tcp::State::Closed | tcp::State::TimeWait);
            if done {
                sockets.remove(handle);
            }
            !done
        });
    }

    /// [`NetError::ForeignHandle`] for a handle another stack made.
    fn check(&self, handle: &impl Handle) -> Result<(), NetError> {
        if handle.stack() == self.id {
            Ok(())
        } else {
            Err(NetError::ForeignHandle)
        }
    }

    /// `handle` if this stack made it, else given back in a [`ForeignHandle`].
    fn own<H: Handle>(&self, handle: H) -> Result<H, ForeignHandle<H>> {
        if handle.stack() == self.id {
            Ok(handle)
        } else {
            Err(ForeignHandle(handle))
        }
    }

    /// The listeners' slots the stack holds, free ones included.
    #[cfg(test)]
    pub(crate) fn listener_slots(&self) -> usize {
        self.listeners.len()
    }

    /// Whether a listener of this stack, or our own TCP, uses TCP `port`.
    fn tcp_port_taken(&self, port: u16) -> bool {
        self.listeners.iter().flatten().any(|l| l.port == port)
            || self.own.as_ref().is_some_and(|own| own.serves(port))
    }

    /// Serves TCP `port` with Rexo's own TCP (`rexo-tcp`) instead of smoltcp: its
    /// segments to this stack's address go to one `rexo_tcp::Endpoint` made with
    /// `config` at the first call (later calls add ports to it), which
    /// [`own_tcp`](Self::own_tcp) lends between polls to accept connections, read and
    /// queue `Piece`s; [`poll`](Self::poll) feeds it received segments in place and
    /// sends what it emits, each segment one frame filled from its pieces (see `owntcp.rs`). Everything
    /// else stays with smoltcp. On a NIC with segmentation offload the endpoint's
    /// `segmentation` is set to what the NIC cuts (whatever `config` says), else to
    /// `None`. [`NetError::PortInUse`] if a listener or our own TCP already serves the
    /// port; [`NetError::BadConfig`] at the first call if `config.mss` is below
    /// [`rexo_tcp::MIN_MSS`] or above the link's MTU less 40 bytes of IPv4 and TCP
    /// headers (every full segment would be too large a frame for the NIC), or is
    /// otherwise refused by [`rexo_tcp::Endpoint::new`] (naming why).
    pub fn serve_own(&mut self, port: u16, mut config: rexo_tcp::Config) -> Result<(), NetError> {
        if port == 0 {
            return Err(NetError::PortZero);
        }
        if self.tcp_port_taken(port) {
            return Err(NetError::PortInUse(port));
        }
        let own = match &mut self.own {
            Some(own) => own,
            None => {
                if usize::from(config.mss) > crate::owntcp::link_mss(self.max_frame) {
                    return Err(NetError::BadConfig(
                        "the MSS is larger than the link's MTU less 40 bytes of IPv4 and TCP headers",
                    ));
                }
                config.segmentation = crate::owntcp::segmentation_limit(&self.nic.info());
                let endpoint = rexo_tcp::Endpoint::new(config)
                    .map_err(|error| NetError::BadConfig(refused_config(error)))?;
                self.own.insert(OwnTcp::new(endpoint))
            }
        };
        own.listen(port).map_err(|_| NetError::PortInUse(port))
    }

    /// The endpoint of the ports served by our own TCP, if [`serve_own`](Self::serve_own)
    /// made one.
    pub fn own_tcp(&mut self) -> Option<&mut rexo_tcp::Endpoint> {
        self.own.as_mut().map(|own| &mut own.endpoint)
    }

    /// What the ports served by our own TCP moved (zero without them).
    pub fn own_counters(&self) -> OwnCounters {
        self.own
            .as_ref()
            .map(|own| own.counters)
            .unwrap_or_default()
    }

    /// Listens on TCP `port` with up to `backlog` connections half-open or waiting for
    /// [`accept`](Self::accept), each with `options`' buffers (allocated now for the
    /// listening sockets).
    pub fn listen(
        &mut self,
        port: u16,
        backlog: usize,
        options: TcpOptions,
    ) -> Result<Listener, NetError> {
        if port == 0 {
            return Err(NetError::PortZero);
        }
        if self.tcp_port_taken(port) {
            return Err(NetError::PortInUse(port));
        }
        let listener = ListenerState {
            port,
            backlog: backlog.max(1),
            options,
            listening: Vec::new(),
            pending: VecDeque::new(),
        };
        let index = place_in_first_free(&mut self.listeners, listener);
        self.refill_listeners(self.now_ns);
        Ok(Listener {
            stack: self.id,
            index,
        })
    }

    /// The oldest connection of `listener` whose handshake finished, if any;
    /// [`NetError::ForeignHandle`] for another stack's listener.
    pub fn accept(&mut self, listener: &Listener) -> Result<Option<Connection>, NetError> {
        self.check(listener)?;
        let Some(state) = self
            .listeners
            .get_mut(listener.index)
            .and_then(Option::as_mut)
        else {
            return Ok(None);
        };
        let sockets = &self.sockets;
        let ready = state.pending.iter().position(|&(handle, _)| {
            // Established, or already closed by the peer after sending: both are worth
            // handing over (the data is still to be read). Not a handshake the peer
            // reset: smoltcp puts that socket back in `Listen`.
            is_synchronized(sockets.get::<tcp::Socket>(handle).state())
        });
        let handle = ready.and_then(|ready| state.pending.remove(ready));
        Ok(handle.map(|(handle, _)| Connection {
            stack: self.id,
            handle,
        }))
    }

    /// Stops listening: connections not yet accepted are reset (their sockets removed
    /// once smoltcp is done with them, as a closed connection's); accepted ones stay. The
    /// listener's slot is freed for the next one. Another stack's listener is given
    /// back, its own stack still listening.
    pub fn unlisten(&mut self, listener: Listener) -> Result<(), ForeignHandle<Listener>> {
        let listener = self.own(listener)?;
        if let Some(state) = self
            .listeners
            .get_mut(listener.index)
            .and_then(Option::take)
        {
            let pending = state.pending.into_iter().map(|(handle, _)| handle);
            for handle in state.listening.into_iter().chain(pending) {
                self.sockets.get_mut::<tcp::Socket>(handle).abort();
                self.closing.push(handle);
            }
        }
        Ok(())
    }

    /// The socket of `connection`, or [`NetError::ForeignHandle`] for another stack's.
    fn tcp_socket(&self, connection: &Connection) -> Result<&tcp::Socket<'static>, NetError> {
        self.check(connection)?;
        Ok(self.sockets.get::<tcp::Socket>(connection.handle))
    }

    /// The socket of `connection` to change, or [`NetError::ForeignHandle`] for another
    /// stack's.
    fn tcp_socket_mut(
        &mut self,
        connection: &Connection,
    ) -> Result<&mut tcp::Socket<'static>, NetError> {
        self.check(connection)?;
        Ok(self.sockets.get_mut::<tcp::Socket>(connection.handle))
    }

    /// The peer of `connection` (`None` before a connection has one);
    /// [`NetError::ForeignHandle`] for another stack's connection, as for every call
    /// below that takes a handle.
    pub fn peer(&self, connection: &Connection) -> Result<Option<Endpoint>, NetError> {
        let socket = self.tcp_socket(connection)?;
        Ok(socket.remote_endpoint().map(Endpoint::from_smoltcp))
    }

    /// Copies received bytes into `buffer`; `Ok(0)` when none are waiting yet,
    /// [`NetError::Closed`] once the peer has closed and everything was read.
    pub fn read(&mut self, connection: &Connection, buffer: &mut [u8]) -> Result<usize, NetError> {
        self.read_with(connection, |data| {
            let len = data.len().min(buffer.len());
            buffer[..len].copy_from_slice(&data[..len]);
            len
        })
    }

    /// Lends `consume` the received bytes in place (one contiguous part of the receive
    /// buffer: call again for the rest); it returns how many it used. `Ok(0)` and
    /// [`NetError::Closed`] as for [`read`](Self::read).
    pub fn read_with(
        &mut self,
        connection: &Connection,
        consume: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, NetError> {
        let socket = self.tcp_socket_mut(connection)?;
        if socket.can_recv() {
            socket
                .recv(|data| {
                    let used = consume(data).min(data.len());
                    (used, used)
                })
                .map_err(|_| NetError::Closed)
        } else if socket.may_recv() || is_opening(socket) {
            Ok(0)
        } else {
            Err(NetError::Closed)
        }
    }

    /// Queues bytes of `data` for sending; returns how many fitted in the send buffer
    /// (0 when it is full: poll and try again). [`NetError::Closed`] once the connection
    /// can no longer send.
    pub fn write(&mut self, connection: &Connection, data: &[u8]) -> Result<usize, NetError> {
        self.write_with(connection, |room| {
            let len = room.len().min(data.len());
            room[..len].copy_from_slice(&data[..len]);
            len
        })
    }

    /// Lends `produce` free room of the send buffer in place (one contiguous part: call
    /// again for more); it returns how many bytes it wrote there. Errors as for
    /// [`write`](Self::write).
    pub fn write_with(
        &mut self,
        connection: &Connection,
        produce: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, NetError> {
        let socket = self.tcp_socket_mut(connection)?;
        if is_opening(socket) {
            return Ok(0);
        }
        if !socket.may_send() {
            return Err(NetError::Closed);
        }
        socket
            .send(|room| {
                let used = produce(room).min(room.len());
                (used, used)
            })
            .map_err(|_| NetError::Closed)
    }

    /// Bytes written and not yet acknowledged by the peer.
    pub fn unacknowledged(&self, connection: &Connection) -> Result<usize, NetError> {
        Ok(self.tcp_socket(connection)?.send_queue())
    }

    /// Whether the connection has finished: the peer closed it and everything was read,
    /// or it was reset.
    pub fn is_finished(&self, connection: &Connection) -> Result<bool, NetError> {
        let socket = self.tcp_socket(connection)?;
        Ok(!socket.may_recv() && !socket.can_recv() && !is_opening(socket))
    }

    /// Closes the connection in order: what was written is still sent, then a FIN.
    /// Another stack's connection is given back, untouched.
    pub fn close(&mut self, connection: Connection) -> Result<(), ForeignHandle<Connection>> {
        let connection = self.own(connection)?;
        self.sockets
            .get_mut::<tcp::Socket>(connection.handle)
            .close();
        self.closing.push(connection.handle);
        Ok(())
    }

    /// Resets the connection at once (abortive close); unsent data is dropped. Another
    /// stack's connection is given back, untouched.
    pub fn abort(&mut self, connection: Connection) -> Result<(), ForeignHandle<Connection>> {
        let connection = self.own(connection)?;
        self.sockets
            .get_mut::<tcp::Socket>(connection.handle)
            .abort();
        self.closing.push(connection.handle);
        Ok(())
    }

    /// Ends the connection in order ([`close`](Self::close)) unless that could hold its
    /// socket without bound: it is reset instead ([`abort`](Self::abort)) when
    /// `max_closing` sockets closed before it are still held
    /// ([`closing_sockets`](Self::closing_sockets)), or when it is `stalled` (its peer
    /// moved nothing for the app's idle timeout) with bytes written that wait for the
    /// peer's acknowledgment, which a peer that does not read would hold, and the socket
    /// with them, as long as it answers. Whether it was reset; another stack's
    /// connection is given back, untouched.
    pub fn close_bounded(
        &mut self,
        connection: Connection,
        stalled: bool,
        max_closing: usize,
    ) -> Result<bool, ForeignHandle<Connection>> {
        let Ok(unacknowledged) = self.unacknowledged(&connection) else {
            return Err(ForeignHandle(connection));
        };
        let reset = (stalled && unacknowledged > 0) || self.closing_sockets() >= max_closing;
        if reset {
            self.abort(connection)?;
        } else {
            self.close(connection)?;
        }
        Ok(reset)
    }

    /// Opens a connection to `remote` from a free local port; it can be read and
    /// written once the handshake is done ([`is_established`](Self::is_established)),
    /// and reads [`NetError::Closed`] if the peer refuses it. [`NetError::Unreachable`]
    /// at once, sending nothing, for an address no connection can reach: one
    /// [`send_to`](Self::send_to) refuses (its own address, 0/8, 127/8, 240/4, its
    /// network's own address, off its network with no router) and a broadcast (limited
    /// or its network's) or multicast address (RFC 1122 4.2.3.10: TCP MUST reject an
    /// OPEN to one as an error).
    pub fn connect(
        &mut self,
        remote: Endpoint,
        options: TcpOptions,
    ) -> Result<Connection, NetError> {
        self.connect_from(EPHEMERAL_PORTS, remote, options)
    }

    /// Opens the connections the resolver wants for queries whose answer came truncated
    /// (`dns.rs`), as [`connect`](Self::connect) opens one, from a port of the
    /// resolver's own (its DNS port block, else the dynamic range), or fails that
    /// server with why none could be opened.
    fn open_dns_connections(&mut self) {
        for (slot, server, request_bytes) in self.resolver.tcp_wanted() {
            let options = TcpOptions {
                receive_buffer: TCP_RECEIVE_BYTES,
                send_buffer: request_bytes,
                ..TcpOptions::default()
            };
            let server = Endpoint {
                address: server,
                port: 53,
            };
            let opened = self.connect_from(self.resolver.port_range(), server, options);
            self.resolver
                .tcp_opened(slot, opened.map(|connection| connection.handle));
        }
    }

    /// [`connect`](Self::connect) from a free local port of `ports`.
    fn connect_from(
        &mut self,
        ports: RangeInclusive<u16>,
        remote: Endpoint,
        options: TcpOptions,
    ) -> Result<Connection, NetError> {
        let Some(local) = self.address() else {
            return Err(NetError::NoAddress);
        };
        if remote.port == 0 {
            return Err(NetError::PortZero);
        }
        let to = remote.address;
        if is_group(to, Some(local)) {
            return Err(NetError::Unreachable);
        }
        self.check_destination(local, to)?;
        let port = self.ephemeral_port(ports, remote)?;
        let mut socket = new_tcp_socket(&options);
        socket
            .connect(
                self.iface.context(),
                IpEndpoint::new(IpAddress::Ipv4(remote.address), remote.port),
                port,
            )
            .map_err(|_| NetError::Unreachable)?;
        Ok(Connection {
            stack: self.id,
            handle: self.sockets.add(socket),
        })
    }

    /// A local port of `ports` (the dynamic range, or the resolver's DNS port block) for
    /// an outgoing connection to `remote`, as RFC 6056's algorithm 3 picks one among
    /// the ports of the stack's class ([`share_ports`](Self::share_ports): all of
    /// them, or its queue pair's share on a split device that places no flow by a
    /// hash): from an offset in the class that a keyed hash of `remote` gives
    /// (unguessable without the stack's seed, different for each peer), plus a counter
    /// every port tried advances, so a peer sees the same port again only after as
    /// many tries as the class has ports (16,384 in the whole dynamic range, 8,192 on
    /// each of two pairs; in a DNS port block, a stray
    /// segment of an earlier exchange would carry another query's ID, which the
    /// resolver refuses). Ports a listener, our own TCP or any live TCP socket of the
    /// stack uses are skipped (a SYN-ACK to a port our own TCP serves would be reset
    /// by it; a port still held by a connection to the same peer would repeat its
    /// four-tuple), and on one pair of a device that places flows by hash, ports whose
    /// replies would land on another pair ([`replies_to`](Self::replies_to)).
    /// [`NetError::NoFreePort`] when every port of the class is taken.
    fn ephemeral_port(
        &mut self,
        ports: RangeInclusive<u16>,
        remote: Endpoint,
    ) -> Result<u16, NetError> {
        let mut used: Vec<u16> = self
            .sockets
            .iter()
            .filter_map(|(_, socket)| match socket {
                smoltcp::socket::Socket::Tcp(tcp) => tcp.local_endpoint().map(|l| l.port),
                _ => None,
            })
            .collect();
        used.sort_unstable();
        used.dedup();
        let count = self.ports.count_in(&ports);
        let peer = u64::from(remote.address.to_bits()) << 16 | u64::from(remote.port);
        let offset = mix(self.port_secret ^ peer);
        let local = self.address();
        for _ in 0..count {
            let index = offset.wrapping_add(self.port_counter) % u64::from(count);
            let port = self.ports.nth_in(&ports, index as u32);
            self.port_counter = self.port_counter.wrapping_add(1);
            if used.binary_search(&port).is_err()
                && !self.tcp_port_taken(port)
                && !matches!(
                    self.replies_to(local, remote.address, Some((remote.port, port))),
                    Replies::OnPair(_)
                )
            {
                return Ok(port);
            }
        }
        Err(NetError::NoFreePort)
    }

    /// Which stack receives the datagrams and ICMP messages `peer` sends to this
    /// stack's address: this one, but on one queue pair of a device that places flows
    /// by a hash of their addresses (RSS on the 82574, split by
    /// [`crate::attach_cores`]), where the hash picks the pair ([`Replies::OnPair`]);
    /// a broadcast or multicast `peer` is [`Replies::Scattered`]. Ask it before
    /// sending a datagram whose answer the app waits for, to send it from the stack
    /// that will receive the answer.
    pub fn replies_from(&self, peer: Ipv4Addr) -> Replies {
        self.replies_to(self.address(), peer, None)
    }

    /// Where the NIC puts an IPv4 frame from `peer` to this stack's address `local`
    /// (what [`address`](Self::address) answers, asked once by the caller; a TCP segment
    /// with `tcp_ports`, the peer's first, else placed by addresses only), as
    /// [`replies_from`](Self::replies_from) says. A broadcast (limited or the
    /// network's) or multicast `peer` is not hashed: the replies to it come from other
    /// hosts, each from its own address.
    fn replies_to(
        &self,
        local: Option<(Ipv4Addr, u8)>,
        peer: Ipv4Addr,
        tcp_ports: Option<(u16, u16)>,
    ) -> Replies {
        let (Some((steering, pair)), Some((address, _))) = (&self.steered_pair, local) else {
            return Replies::Here;
        };
        if is_group(peer, local) {
            return Replies::Scattered;
        }
        match steering.pair_of(peer, address, tcp_ports) {
            landing if landing == *pair => Replies::Here,
            landing => Replies::OnPair(landing),
        }
    }

    /// Whether the connection's handshake is done and it can carry data both ways.
    pub fn is_established(&self, connection: &Connection) -> Result<bool, NetError> {
        Ok(self.tcp_socket(connection)?.state() == tcp::State::Established)
    }

    /// Sockets of connections closed ([`close`](Self::close)) or reset
    /// ([`abort`](Self::abort)) that the stack still holds with their buffers, until the
    /// connection reaches CLOSED or TIME-WAIT: one whose peer takes nothing keeps them.
    pub fn closing_sockets(&self) -> usize {
        self.closing.len()
    }

    /// Sockets the stack holds: listening, connecting, connected, closing, UDP, ping
    /// and a running DHCP client's (the resolver's, one per query under way and one per
    /// exchange over TCP until it ends, then closing, are not counted, nor is a DHCP
    /// client resting out of the sockets after a refused lease).
    pub fn sockets_in_use(&self) -> usize {
        // A ping socket is two of smoltcp's (`ping.rs`).
        self.sockets.iter().count() - self.resolver.sockets() - self.pings.open_count()
    }

    /// Opens a ping socket whose requests carry the echo identifier `ident`.
    pub fn ping_open(&mut self, ident: u16) -> PingSocket {
        PingSocket {
            stack: self.id,
            index: self.pings.open(&mut self.sockets, ident),
            ident,
        }
    }

    /// Queues an echo request to `to` with sequence number `seq` carrying `data`: up to
    /// [`PING_MAX_DATA`] bytes and what one of the link's frames holds (its largest
    /// frame less the Ethernet, IPv4 and ICMP headers; IP fragmentation is not compiled
    /// in, and smoltcp would drop a larger request unsent), else [`NetError::TooLarge`];
    /// [`NetError::Unreachable`] for a `to` the stack has no way to (its own address,
    /// one no host has, its network's own, or off its network with no router, as for
    /// [`send_to`](Self::send_to));
    /// [`NetError::RepliesToAnotherPair`] on a stack of one queue pair whose device puts
    /// `to`'s replies on another (never for a broadcast or multicast `to`, whose replies
    /// come from other hosts); [`NetError::WouldBlock`] while the socket holds 8
    /// requests unsent. Requests go in order, at the next [`poll`](Self::poll)s; one
    /// whose next hop does not answer ARP is given up on after 3 s
    /// ([`ping_recv`](Self::ping_recv) says so).
    pub fn ping_send(
        &mut self,
        socket: &PingSocket,
        to: Ipv4Addr,
        seq: u16,
        data: &[u8],
    ) -> Result<(), NetError> {
        self.check(socket)?;
        let max_data = self.max_frame.saturating_sub(14 + 20 + 8);
        if data.len() > PING_MAX_DATA || data.len() > max_data {
            return Err(NetError::TooLarge);
        }
        let Some(local) = self.address() else {
            return Err(NetError::NoAddress);
        };
        self.check_destination(local, to)?;
        if let Replies::OnPair(_) = self.replies_from(to) {
            return Err(NetError::RepliesToAnotherPair);
        }
        let request = Icmpv4Repr::EchoRequest {
            ident: socket.ident,
            seq_no: seq,
            data,
        };
        let mut message = vec![0u8; request.buffer_len()];
        request.emit(
            &mut Icmpv4Packet::new_unchecked(&mut message[..]),
            &ChecksumCapabilities::default(),
        );
        self.pings.send(socket.index, to, message)
    }

    /// The next echo reply to `socket`'s requests, if one came, its data compared with
    /// `sent` (the data of the request the caller waits for, [`EchoReply::intact`]);
    /// anything else the socket received (a malformed packet, another ICMP message) is
    /// skipped. [`NetError::NoArpAnswer`] once when a request of the socket waited 3 s
    /// for its next hop (the destination on the link, else the router), which answered
    /// no ARP request meanwhile, or for a route: it was dropped unsent, with the
    /// socket's other requests queued to that next hop, and its later requests go on.
    pub fn ping_recv(
        &mut self,
        socket: &PingSocket,
        sent: &[u8],
    ) -> Result<Option<EchoReply>, NetError> {
        self.check(socket)?;
        self.pings
            .recv(socket.index, &mut self.sockets, |packet, from| {
                let packet = Icmpv4Packet::new_checked(packet).ok()?;
                match Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default()) {
                    Ok(Icmpv4Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    }) if ident == socket.ident => Some(EchoReply {
                        from,
                        seq: seq_no,
                        len: data.len(),
                        intact: data == sent,
                    }),
                    _ => None,
                }
            })
    }

    /// Closes a ping socket, dropping the requests it holds unsent. Another stack's
    /// socket is given back, untouched.
    pub fn ping_close(&mut self, socket: PingSocket) -> Result<(), ForeignHandle<PingSocket>> {
        let socket = self.own(socket)?;
        self.pings.close(socket.index, &mut self.sockets);
        Ok(())
    }

    /// Binds a UDP socket to `port` with `options`' buffers ([`NetError::PortInUse`]
    /// for a port another socket or a DNS query under way uses).
    pub fn udp_bind(&mut self, port: u16, options: UdpOptions) -> Result<UdpSocket, NetError> {
        if port == 0 {
            return Err(NetError::PortZero);
        }
        if self.udp.is_bound(port) || self.resolver.uses_port(port) {
            return Err(NetError::PortInUse(port));
        }
        let index = self.udp.bind(&mut self.sockets, port, options)?;
        Ok(UdpSocket {
            stack: self.id,
            index,
        })
    }

    /// Takes the oldest received datagram: copies as much as fits in `buffer` (the rest
    /// is lost, as with BSD sockets) and returns its length in `buffer` and its sender.
    pub fn recv_from(
        &mut self,
        socket: &UdpSocket,
        buffer: &mut [u8],
    ) -> Result<Option<(usize, Endpoint)>, NetError> {
        self.check(socket)?;
        Ok(self.udp.recv(socket.index, &mut self.sockets, buffer))
    }

    /// Queues `data` as one datagram to `to`, sent on this stack's transmit queue
    /// whichever pair `to`'s answers land on, and says which stack receives those
    /// answers ([`replies_from`](Self::replies_from)): on one queue pair of a device that
    /// places flows by a hash of their addresses, [`Replies::OnPair`] names the other
    /// pair, whose stack gets them, and `socket` never sees them (fine for a datagram
    /// that wants no answer: a log line, a metric). An answer to a datagram this stack
    /// received always lands here (the device hashes the same addresses). A datagram
    /// whose next hop (`to` on the link, else the router) does not answer ARP within 3 s
    /// of the first try is dropped unsent, counted in
    /// [`Counters::udp_unresolved_dropped`], with those queued to it before then; the
    /// socket's other datagrams go on.
    /// [`NetError::WouldBlock`] when the send buffer is full, [`NetError::TooLarge`]
    /// when it can never fit (in the buffer, or in one frame: 1472 bytes on a 1500-byte
    /// MTU), [`NetError::Unreachable`] for port 0 or a `to` the stack has no way to,
    /// sending nothing: its own address, an address no host has (0/8, 127/8 and 240/4
    /// but the limited broadcast), its network's own address (on a network of prefix 30
    /// or less) and, with no router, an address off its network.
    pub fn send_to(
        &mut self,
        socket: &UdpSocket,
        data: &[u8],
        to: Endpoint,
    ) -> Result<Replies, NetError> {
        self.check(socket)?;
        let Some(local) = self.address() else {
            return Err(NetError::NoAddress);
        };
        // IP fragmentation is not compiled in, so a datagram must fit in one frame
        // (smoltcp would drop a larger one silently).
        if data.len() > self.udp.send_capacity(socket.index) || data.len() > self.udp.max_payload()
        {
            return Err(NetError::TooLarge);
        }
        if to.port == 0 {
            return Err(NetError::Unreachable);
        }
        self.check_destination(local, to.address)?;
        self.udp.send(socket.index, data, to, self.now_ns)?;
        Ok(self.replies_to(Some(local), to.address, None))
    }

    /// Whether the stack, its address and prefix length `local`, has a way to `to`:
    /// [`NetError::Unreachable`] for its own address, an address no host has (0/8,
    /// 127/8 and 240/4 but the limited broadcast, RFC 1122 3.2.1.3), its network's own
    /// address (on a network of prefix 30 or less, whose first address is no host's)
    /// and, with no router, an address off its network. The broadcast addresses and
    /// multicast groups are reachable. smoltcp would take a datagram or echo request
    /// to any of these and hold it at the head of its socket for good, asking ARP for an
    /// address no host answers for (its own included), or finding no route.
    fn check_destination(
        &self,
        (address, prefix): (Ipv4Addr, u8),
        to: Ipv4Addr,
    ) -> Result<(), NetError> {
        if to.is_broadcast() || to.is_multicast() {
            return Ok(());
        }
        let network = Ipv4Cidr::new(address, prefix);
        let no_host = matches!(to.octets()[0], 0 | 127 | 240..);
        let network_own = is_network_own(to, network);
        let no_way = self.gateway.is_none() && !network.contains_addr(&to);
        if to == address || no_host || network_own || no_way {
            return Err(NetError::Unreachable);
        }
        Ok(())
    }

    /// Closes a UDP socket and frees its port. Another stack's socket is given back,
    /// untouched.
    pub fn udp_close(&mut self, socket: UdpSocket) -> Result<(), ForeignHandle<UdpSocket>> {
        let socket = self.own(socket)?;
        self.udp.close(socket.index, &mut self.sockets);
        Ok(())
    }
}

/// Where a datagram to `to` goes first from a stack whose address and prefix length are
/// `local`, with the default router `gateway`: `to` itself on the link (a broadcast or
/// multicast address too), else the router (`to` when there is none: the datagram then
/// has no way, and waits as for a silent neighbour).
fn next_hop(local: Option<(Ipv4Addr, u8)>, gateway: Option<Ipv4Addr>, to: Ipv4Addr) -> Ipv4Addr {
    match (local, gateway) {
        (Some((address, prefix)), Some(router))
            if !to.is_broadcast()
                && !to.is_multicast()
                && !Ipv4Cidr::new(address, prefix).contains_addr(&to) =>
        {
            router
        }
        _ => to,
    }
}

/// `answer`, a call on the stack's queue pair, with [`PAIR_BROKEN`] (the device broke
/// the pair's rings, to a receive or a send) turned into `instead` once the whole device
/// is reset through `whole` and the reset counted: the pair works again (frames in flight
/// are lost, TCP sends them again; frames the stack holds go at its next look). Without
/// `whole` (a device not split by [`crate::attach_cores`]) `PAIR_BROKEN` stays an error.
fn reset_if_broken<T>(
    answer: Result<T, DeviceError>,
    instead: T,
    whole: &Option<Arc<WholeDevice>>,
    counters: &mut Counters,
) -> Result<T, DeviceError> {
    match (answer, whole) {
        (Err(PAIR_BROKEN), Some(whole)) => {
            whole.reset()?;
            counters.pair_resets += 1;
            Ok(instead)
        }
        (answer, _) => answer,
    }
}

/// The receive buffer of the connection `flow` is opening: a listener's on its local
/// port, else that of a socket connecting from that port to the peer. `None` when no
/// connection of the flow is opening, and when one whose handshake finished holds it (a
/// SYN on it, forged or stray, opens nothing).
fn receive_buffer(
    listeners: &[Option<ListenerState>],
    sockets: &SocketSet<'static>,
    flow: crate::tso::Flow,
) -> Option<usize> {
    let peer = IpEndpoint::new(IpAddress::Ipv4(Ipv4Addr::from(flow.peer)), flow.peer_port);
    let of_flow = |tcp: &tcp::Socket| {
        tcp.remote_endpoint() == Some(peer)
            && tcp.local_endpoint().map(|l| l.port) == Some(flow.local_port)
    };
    let mut connecting = None;
    for (_, socket) in sockets.iter() {
        let smoltcp::socket::Socket::Tcp(tcp) = socket else {
            continue;
        };
        if !of_flow(tcp) {
            continue;
        }
        if is_synchronized(tcp.state()) {
            return None;
        }
        if connecting.is_none() && tcp.state() == tcp::State::SynSent {
            connecting = Some(tcp.recv_capacity());
        }
    }
    if let Some(listener) = listeners
        .iter()
        .flatten()
        .find(|l| l.port == flow.local_port)
    {
        return Some(listener.options.receive_buffer);
    }
    connecting
}

/// A TCP socket built as `options` say.
fn new_tcp_socket(options: &TcpOptions) -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; options.receive_buffer]),
        tcp::SocketBuffer::new(vec![0u8; options.send_buffer]),
    );
    socket.set_nagle_enabled(options.nagle);
    socket.set_keep_alive(options.keep_alive_ms.map(Duration::from_millis));
    socket.set_timeout(options.timeout_ms.map(Duration::from_millis));
    socket
}

/// Whether the socket's handshake is under way (nothing to read or write yet, but not
/// closed).
fn is_opening(socket: &tcp::Socket) -> bool {
    matches!(
        socket.state(),
        tcp::State::SynSent | tcp::State::SynReceived
    )
}

/// Whether a TCP socket in `state` finished its handshake (RFC 9293's synchronized
/// states), whatever happened since.
fn is_synchronized(state: tcp::State) -> bool {
    !matches!(
        state,
        tcp::State::Closed | tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived
    )
}

/// What a stack's DHCP client reported at a poll.
enum DhcpNews {
    /// A lease a host can use ([`usable_lease`]).
    Lease {
        /// The lease, with the DNS servers a host could have.
        lease: DhcpLease,
        /// DNS servers it named that no host could have, left out.
        dns_dropped: usize,
        /// The server that leased it (its identifier, option 54).
        server: Ipv4Addr,
    },
    /// A lease no host could use.
    Refused,
    /// The lease is gone (expired, ended by the server) or there was none yet.
    Gone,
}

/// What `config` says if a host could use its address and router (checked as
/// [`Stack::start`] checks a fixed configuration, [`Ipv4Config::check`]): the lease with
/// the DNS servers that pass the same check, in the lease's order (RFC 2132 3.8: in
/// order of preference), the others left out and counted; else a refusal.
fn usable_lease(config: &dhcpv4::Config) -> DhcpNews {
    let passes = |dns| {
        let lease = Ipv4Config {
            address: config.address.address(),
            prefix: config.address.prefix_len(),
            router: config.router,
            dns,
        };
        lease.check().is_ok()
    };
    if !passes(None) {
        return DhcpNews::Refused;
    }
    let dns_servers: Vec<Ipv4Addr> = config
        .dns_servers
        .iter()
        .copied()
        .filter(|&server| passes(Some(server)))
        .collect();
    DhcpNews::Lease {
        dns_dropped: config.dns_servers.len() - dns_servers.len(),
        server: config.server.identifier,
        lease: DhcpLease {
            cidr: config.address,
            router: config.router,
            dns_servers,
        },
    }
}

/// What the stack does with a frame before smoltcp sees it, as far as DHCP goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DhcpScreen {
    /// Hand it to smoltcp: no DHCP answer to the stack's client, or one it can take.
    Hand,
    /// Drop it, counted: an answer with T1 past its lease and no T2
    /// ([`DhcpAnswer::has_timers_smoltcp_cannot_take`]: smoltcp 0.12's client panicked
    /// on it, and anyone on the link can send such an answer, the transaction ID and
    /// MAC address being in the client's broadcast DISCOVER).
    Refused,
    /// A NAK to the client's last REQUEST ([`DhcpAnswer::is_nak_to`]): the stack drops
    /// the lease asked for or held and rests the client ([`Stack::nak_taken`]).
    Nak,
}

/// What the stack of MAC address `mac`, whose client's last message was the REQUEST of
/// transaction ID `request` if any, does with `frame` ([`DhcpScreen`]), a refusal
/// counted in `counters`.
fn screen_dhcp(
    frame: &[u8],
    mac: [u8; 6],
    request: Option<u32>,
    counters: &mut Counters,
) -> DhcpScreen {
    let Some(answer) = DhcpAnswer::read(frame, mac) else {
        return DhcpScreen::Hand;
    };
    counters.dhcp_answers_overloaded += u64::from(answer.is_overloaded());
    if answer.has_timers_smoltcp_cannot_take() {
        counters.dhcp_answers_refused += 1;
        DhcpScreen::Refused
    } else if answer.is_nak_to(request) {
        DhcpScreen::Nak
    } else {
        DhcpScreen::Hand
    }
}

/// smoltcp's time for the kernel's nanoseconds since boot.
fn instant(now_ns: u64) -> Instant {
    Instant::from_micros(i64::try_from(now_ns / 1000).unwrap_or(i64::MAX))
}

/// Logs, once for the `stacks` stacks just built, that their seed is the predictable
/// fallback because the kernel gave no random number (`error`), and what that exposes.
pub(crate) fn warn_predictable_seed(kernel: &Kernel, error: ApiError, stacks: usize) {
    kernel.log(format_args!("{}", PredictableSeed { error, stacks }));
}

/// The warning of [`warn_predictable_seed`].
pub(crate) struct PredictableSeed {
    /// Why the kernel gave no random number.
    pub(crate) error: ApiError,
    /// How many stacks it concerns.
    pub(crate) stacks: usize,
}

impl fmt::Display for PredictableSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rexo-net: WARNING: no random number from the kernel ({}): the seed of {} stack(s) is the boot-relative time XOR the MAC, so who can guess both can predict their TCP sequence numbers, local ports and DNS query IDs",
            self.error, self.stacks
        )
    }
}

/// Stirred into the stack's seed for the key of ephemeral ports, so that it differs
/// from smoltcp's seed.
const PORT_SECRET_STIR: u64 = 0x706f_7274_7320_2020;
/// Stirred with a queue pair's index into the seed of that pair's stack, so that the
/// stacks of one split interface differ.
const PAIR_STIR: u64 = 0x7061_6972_2020_2020;
/// Stirred into the stack's seed for the DHCPDECLINEs' transaction IDs, so that they
/// differ from smoltcp's and tell nothing of the ports' key.
const DECLINE_STIR: u64 = 0x6465_636c_696e_6520;

/// The next random number of the splitmix64 sequence whose state is `state`.
pub(crate) fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    mix(*state)
}

/// splitmix64's finaliser: spreads the seed's few varying bits over all 64.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
