//! The TCP/IP library OS: Ethernet, ARP, IPv4, ICMP echo replies, UDP, TCP and a DHCPv4
//! client (or a static address) over a Rexo [`NetDevice`](rexo_api::NetDevice), linked
//! into the app that opened the NIC, as in the MIT exokernel; it also sends pings.
//!
//! An app reaches a NIC ([`attach`]: bound by filters on an interface shared with other
//! apps when the kernel has `ip=`, else opened whole with DHCP), builds a [`Stack`]
//! over it with a [`Config`], and calls
//! [`Stack::poll`] from its run-to-completion loop; between polls it accepts, reads and
//! writes [`Connection`]s of its [`Listener`]s and sends and receives datagrams on its
//! [`UdpSocket`]s. Every buffer is sized by the app when it listens or binds, so memory
//! stays bounded whatever the peers send.
//!
//! # An app's use
//!
//! A UDP echo server on port 7 for ten seconds, netdemo's UDP part cut to its core. The
//! host tests build it, and docs/network.md ("An app on the network") quotes it, a host
//! test checking the quote:
//!
//! ```no_run
//! # mod app {
//! use rexo_api::{ApiError, Kernel};
//! use rexo_net::{NetError, Stack, UdpOptions, attach};
//!
//! /// The app's entry point: UDP echo on port 7 of interface 0 for 10 s.
//! pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
//!     echo(kernel).map_err(NetError::exit_error)
//! }
//!
//! fn echo(kernel: &Kernel) -> Result<(), NetError> {
//!     // With `ip=` the app is bound to the frames the filter takes, on an interface
//!     // shared with other apps; without it, it holds the interface and asks DHCP.
//!     let (nic, config) = attach(kernel, 0, &["udp dport 7"], 10_000_000_000)?;
//!     let mut stack = Stack::new(kernel, nic, 0, config)?;
//!     let socket = stack.udp_bind(7, UdpOptions::default())?;
//!     let mut datagram = [0u8; 1472];
//!     let start = kernel.now_ns();
//!     while kernel.now_ns() - start < 10_000_000_000 {
//!         let changed = stack.poll(kernel.now_ns())?;
//!         while let Some((len, from)) = stack.recv_from(&socket, &mut datagram)? {
//!             // A full send buffer drops the echo, as a busy UDP server would.
//!             if let Err(error @ (NetError::Device(_) | NetError::NoAddress)) =
//!                 stack.send_to(&socket, &datagram[..len], from)
//!             {
//!                 return Err(error);
//!             }
//!         }
//!         // Nothing came: nap until a frame or 1 ms (a bound interface cannot wake
//!         // the core, so it polls on).
//!         if !changed && stack.wake_on_receive(Some(kernel.core_index())).is_ok() {
//!             kernel.sleep_ns(1_000_000);
//!         }
//!     }
//!     Ok(())
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! # Why smoltcp
//!
//! The protocols are smoltcp's (0.13, `no_std`, with `alloc` and only Ethernet, IPv4,
//! TCP, UDP, ICMP and DHCPv4 compiled in). It is mature, fuzzed upstream, is memory-safe Rust
//! on the paths used here, and gives TCP window scaling, SACK-aware reassembly, fast
//! retransmit, keep-alive, Nagle (off here by default) and RTT estimation today; its
//! socket-per-connection model maps onto a poll loop without threads. What it costs is
//! described in the adapter (`device.rs`): received frames are processed in place, but
//! replies made while processing one are copied once.
//!
//! Names resolve through our own DNS stub resolver instead of smoltcp's (`dns.rs`), so
//! that queries go from ports the app chooses ([`Stack::set_dns_ports`]), ports a
//! packet filter of its own can take the answers to ([`DnsPorts::filter`]).
//!
//! # Our own TCP for chosen ports
//!
//! An app can serve a TCP port with Rexo's own TCP instead ([`Stack::serve_own`]): its
//! segments go to a [`rexo_tcp::Endpoint`] in place, which sends from the app's shared
//! buffers (a file cache) with precomputed checksums, Cheetah's merged file cache and
//! retransmission pool; everything else stays with smoltcp. httpd does this: measured
//! against smoltcp (docs/network.md), it serves faster.
//!
//! # Cores
//!
//! One [`Stack`] belongs to one core's poll loop (it is `Send`, not shared). It sends on
//! the queue given to [`Stack::new`] and receives from every receive queue of the NIC it
//! was given: the device picks each flow's queue (RSS on the 82574, a multi-queue tap's
//! hash on virtio-net), so a queue left unpolled would lose flows. To serve from
//! several cores, [`attach_cores`] splits the NIC into one handle per queue pair
//! (`NetDevice::split_queues`) and builds a stack per pair, all with the interface's
//! MAC and address: each core polls its own pair with no lock another core takes (but
//! the shared ARP board's, for ARP frames only, the ICMP board's, for ICMP errors about
//! our own TCP's connections that land on another pair than theirs, and the lease
//! board's, for DHCP answers and lease changes, pair 0's stack keeping a DHCP lease for
//! all), and
//! a TCP connection stays on the core whose pair received its SYN, since the device
//! keeps a flow on one pair. Listening on the same port on every stack is fine: each
//! sees only its pair's flows. A connection a stack opens takes a local port whose
//! replies the device puts on its pair (`NetInfo::receive_steering`, the 82574's RSS);
//! pings and DNS queries whose answers would land on another pair are refused
//! ([`NetError::RepliesToAnotherPair`]), and a datagram goes from any pair, the send
//! saying which pair's stack receives its answers ([`Replies`]). ARP is no flow, so the stacks share the ARP frames they
//! receive, and the interface held whole, through which a stack whose pair the device
//! broke (`rexo_api::device::PAIR_BROKEN`) resets the device. kv and httpd serve this
//! way.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod board;
mod conflict;
mod cores;
mod device;
mod dns;
/// A DNS responder for tests (host only).
#[cfg(not(target_os = "none"))]
pub mod dnsserver;
mod ingress;
mod lease;
mod owntcp;
mod ping;
mod stack;
mod tso;
mod udp;
/// A simulated wire between two NICs, for host tests (host only).
#[cfg(not(target_os = "none"))]
pub mod wire;

pub use core::net::Ipv4Addr;
pub use cores::{Cores, attach_cores, serve_on_cores};
pub use device::Counters;
pub use dns::{DnsPorts, DnsQuery, DnsTcpFailure};
pub use owntcp::{NEIGHBOURS, OwnCounters};
/// Our own TCP, for the ports [`Stack::serve_own`] serves with it.
pub use rexo_tcp;
pub use stack::{
    Config, Connection, EchoReply, Endpoint, ForeignHandle, HALF_OPEN_GRACE_NS, Listener, NetError,
    PING_MAX_DATA, PingSocket, Replies, Stack, TcpOptions, UdpOptions, UdpSocket, attach,
};

#[cfg(test)]
mod tests;

/// The Ethernet type of IPv4.
pub(crate) const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];

/// A frame's IPv4 protocol and what follows the IPv4 header, if the frame is IPv4 with
/// a whole header (version 4, 20 bytes or more, within the frame). The payload ends at
/// the IPv4 total length: bytes past it, such as Ethernet padding, are none of it. A
/// total length below the header or past the frame's end leaves the payload to the
/// frame's end, for the caller to judge (rexo-tcp counts such a segment). Nothing else
/// is checked: the caller looks at the fields it needs.
pub(crate) fn ipv4_payload(frame: &[u8]) -> Option<(u8, &[u8])> {
    use rexo_api::device::ETHERNET_HEADER;
    if frame.len() < ETHERNET_HEADER + 20 || frame[12..14] != ETHERTYPE_IPV4 {
        return None;
    }
    let packet = &frame[ETHERNET_HEADER..];
    let header = usize::from(packet[0] & 0x0f) * 4;
    if packet[0] >> 4 != 4 || header < 20 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let payload = packet.get(header..total).or(packet.get(header..))?;
    Some((packet[9], payload))
}
