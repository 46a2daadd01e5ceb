//! `kv`: a memcached-compatible cache. It gets an address by DHCP (or from `ip=`) on the first network
//! interface and serves memcached's text protocol on TCP and UDP port 11211 (UDP with
//! memcached's 8-byte frame header) from one [`Cache`] with LRU eviction, on the core
//! that runs it, until a client sends `shutdown` (memcached's `-A` command, always
//! enabled here so that tests can end the app); then it returns and QEMU powers off.
//!
//! Memory: an app's Rust allocations come from the kernel heap (an eighth of RAM, at
//! most 64 MiB), not from its manifest quota, so the cache's budget is a quarter of that
//! heap ([`cache_budget`]) and the connections' buffers together are bounded by an
//! eighth of it. `kv-small` ([`main_small`]) is the same app with a 1 MiB cache, for
//! eviction tests.
//!
//! One core: the stack polls one NIC queue, and the cache is that core's, used without
//! locks. Serving on several cores needs a receive/transmit queue pair per core with the
//! NIC spreading flows over them (RSS) and a `Stack` per queue; the cache then stays
//! lock-free only if it is split by key: a cache per core owning a share of the key
//! hashes, and a request whose key another core owns handed to that core (key-hash
//! steering, as clients' consistent hashing spreads keys over servers).
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod connection;
mod udp;

use alloc::format;
use alloc::vec::Vec;

use rexo_api::{ApiError, DeviceKind, Kernel};
use rexo_memcache::udp::{Datagrams, UDP_MAX_DATAGRAM};
use rexo_memcache::{Cache, Config as CacheConfig, ServerInfo, max_request_len};
use rexo_net::{NetError, Stack, TcpOptions, UdpOptions, UdpSocket};

use connection::{Client, Progress};

/// memcached's port, TCP and UDP.
pub const PORT: u16 = 11211;
/// Connections half-open or waiting to be accepted.
const BACKLOG: usize = 64;
/// Open connections at most; past this a new one is told so and closed, as memcached
/// does past `maxconns`.
pub const MAX_CONNECTIONS: usize = 64;
/// memcached's answer to a connection over the limit.
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";
/// How long to wait for a DHCP lease.
const DHCP_TIMEOUT_NS: u64 = 10_000_000_000;
/// The longest nap when idle: smoltcp's timers (delayed ACKs, retransmissions) need a
/// poll now and then even when no frame arrives.
const IDLE_NAP_NS: u64 = 10_000_000;
/// How long the FINs of the last connections get to leave after `shutdown`.
const LINGER_NS: u64 = 200_000_000;
/// The cache's budget of `kv-small`.
const SMALL_CACHE_BYTES: usize = 1 << 20;
/// Polls a UDP answer may wait for room in the send buffer before the rest of it is
/// dropped (and counted).
const UDP_SEND_RETRIES: usize = 64;
/// The largest UDP request: the stack reassembles no IP fragments, so a datagram is at
/// most one 1500-byte frame's payload (memcached itself reads up to 64 KiB).
const UDP_MAX_REQUEST: usize = 1472;
/// The clock starts here rather than at 0 because memcached's "negative exptime" means
/// "expired at second 1", which must already be past.
const CLOCK_START_S: u64 = 2;

/// How big the cache and the connections' buffers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sizing {
    /// The cache's byte budget (`limit_maxbytes`).
    cache_bytes: usize,
    /// Bytes all connections may hold in unanswered requests and unsent answers.
    buffer_bytes: usize,
}

/// The app's entry point: a cache sized from the machine's memory.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    let usable = kernel.memory().usable;
    serve_until_shutdown(
        kernel,
        Sizing {
            cache_bytes: cache_budget(usable),
            buffer_bytes: buffer_budget(usable),
        },
    )
}

/// `kv-small`: the same app with a 1 MiB cache, so that tests reach eviction quickly.
pub fn main_small(kernel: &Kernel) -> Result<(), ApiError> {
    let usable = kernel.memory().usable;
    serve_until_shutdown(
        kernel,
        Sizing {
            cache_bytes: SMALL_CACHE_BYTES,
            buffer_bytes: buffer_budget(usable),
        },
    )
}

/// The kernel heap on a machine with `usable` bytes of RAM: an eighth, from 1 to 64 MiB
/// (the kernel's `mem::heap::size_for`; the app's allocations all come from it).
fn heap_estimate(usable: u64) -> usize {
    usize::try_from((usable / 8).clamp(1 << 20, 64 << 20)).unwrap_or(64 << 20)
}

/// The cache's budget on a machine with `usable` bytes of RAM: a quarter of the kernel
/// heap, leaving the rest to the kernel, the TCP buffers and the connections.
pub fn cache_budget(usable: u64) -> usize {
    heap_estimate(usable) / 4
}

/// What the connections may hold together: an eighth of the heap, and at least one
/// largest request so that one always fits.
fn buffer_budget(usable: u64) -> usize {
    (heap_estimate(usable) / 8).max(max_request_len(CacheConfig::default().max_value))
}

/// Logs why the app failed and says so to the kernel.
fn failed(kernel: &Kernel, error: NetError) -> ApiError {
    kernel.log(format_args!("kv: FAILED: {error}"));
    match error {
        NetError::Device(error) => ApiError::Device(error),
        NetError::Kernel(error) => error,
        _ => ApiError::AppFailed(1),
    }
}

/// The cache's clock: seconds since boot, from [`CLOCK_START_S`]. The kernel has no wall
/// clock yet, so absolute exptimes (above 30 days) count from boot too.
fn clock_s(kernel: &Kernel) -> u64 {
    CLOCK_START_S + kernel.now_ns() / 1_000_000_000
}

/// Opens the NIC, gets an address and serves until a client sends `shutdown`.
fn serve_until_shutdown(kernel: &Kernel, sizing: Sizing) -> Result<(), ApiError> {
    let Some(device) = kernel
        .devices()
        .into_iter()
        .find(|d| d.kind == DeviceKind::Net)
    else {
        kernel.log(format_args!("kv: FAILED: no network interface"));
        return Err(ApiError::NoSuchDevice);
    };
    let filters = [format!("tcp dport {PORT}"), format!("udp dport {PORT}")];
    let filters = [filters[0].as_str(), filters[1].as_str()];
    let (nic, config) = rexo_net::attach(kernel, device.index, &filters, DHCP_TIMEOUT_NS)
        .map_err(|error| failed(kernel, error))?;
    let mut stack = Stack::new(kernel, nic, 0, config).map_err(|error| failed(kernel, error))?;
    // Idle naps need a frame's arrival on any receive queue to end them; without that
    // the loop polls.
    let can_nap = stack.wake_on_receive(Some(kernel.core_index())).is_ok();
    let cache = Cache::new(
        CacheConfig {
            max_bytes: sizing.cache_bytes,
            hash_seed: kernel.now_ns() ^ 0x6b76_5f72_6578_6f00,
            ..CacheConfig::default()
        },
        clock_s(kernel),
    );
    let mut server = Server {
        cache,
        clients: Vec::new(),
        info: ServerInfo {
            // One app run, no process ids: memcached's field is kept for the clients.
            pid: 1,
            threads: 1,
            curr_connections: 0,
            total_connections: 0,
        },
        buffer_bytes: sizing.buffer_bytes,
        udp_answer: Vec::new(),
        udp_datagram: Vec::with_capacity(UDP_MAX_DATAGRAM),
        udp_served: 0,
        udp_dropped: 0,
    };
    server
        .run(kernel, &mut stack, device.index, can_nap)
        .map_err(|error| failed(kernel, error))
}

/// The cache and everything the serving loop keeps.
struct Server {
    /// The one cache.
    cache: Cache,
    /// Open connections.
    clients: Vec<Client>,
    /// What `stats` reports of the app and its connections.
    info: ServerInfo,
    /// See [`Sizing::buffer_bytes`].
    buffer_bytes: usize,
    /// The text of a UDP answer, reused.
    udp_answer: Vec<u8>,
    /// One outgoing datagram (header and part of the answer), reused.
    udp_datagram: Vec<u8>,
    /// Datagrams answered.
    udp_served: u64,
    /// Datagrams dropped: too short for the frame header, an answer beyond what the
    /// 16-bit datagram count can say, or no room to send.
    udp_dropped: u64,
}

impl Server {
    /// The serving loop, until `shutdown`.
    fn run(
        &mut self,
        kernel: &Kernel,
        stack: &mut Stack,
        nic: usize,
        can_nap: bool,
    ) -> Result<(), NetError> {
        let options = TcpOptions {
            receive_buffer: 16 * 1024,
            send_buffer: 32 * 1024,
            ..TcpOptions::default()
        };
        let listener = stack.listen(PORT, BACKLOG, options)?;
        let udp = stack.udp_bind(PORT, UdpOptions::default())?;
        if let Some((address, prefix)) = stack.address() {
            kernel.log(format_args!(
                "kv: serving memcached on {address}/{prefix} port {PORT} (TCP and UDP, nic {nic}); cache {} KiB, connection buffers {} KiB, {}",
                self.cache.config().max_bytes / 1024,
                self.buffer_bytes / 1024,
                if can_nap {
                    "naps when idle"
                } else {
                    "polls when idle (the NIC cannot wake a core)"
                }
            ));
        }
        loop {
            let mut busy = stack.poll(kernel.now_ns())?;
            while let Some(connection) = stack.accept(&listener) {
                busy = true;
                self.info.total_connections += 1;
                if self.clients.len() >= MAX_CONNECTIONS {
                    // Best effort: the answer is one short line in an empty buffer.
                    let _ = stack.write(&connection, TOO_MANY_CONNECTIONS);
                    stack.close(connection);
                } else {
                    self.clients.push(Client::new(connection));
                }
            }
            self.info.curr_connections = self.clients.len() as u64;
            let now = clock_s(kernel);
            let mut held: usize = self.clients.iter().map(Client::held).sum();
            // The client with the most unserved input may read past the budget, so that
            // one large request always completes and frees its share.
            let leader = (0..self.clients.len()).max_by_key(|&i| self.clients[i].input_len());
            let mut index = 0;
            while index < self.clients.len() {
                let client = &mut self.clients[index];
                let progress = client.step(
                    stack,
                    &mut self.cache,
                    now,
                    &self.info,
                    &mut held,
                    self.buffer_bytes,
                    leader == Some(index),
                );
                match progress {
                    Progress::Idle => index += 1,
                    Progress::Moved => {
                        busy = true;
                        index += 1;
                    }
                    Progress::Finished => {
                        busy = true;
                        let done = self.clients.swap_remove(index);
                        held = held.saturating_sub(done.held());
                        stack.close(done.into_connection());
                    }
                    Progress::Shutdown => {
                        self.shut_down(kernel, stack)?;
                        return Ok(());
                    }
                }
            }
            busy |= self.serve_datagrams(stack, &udp, now, kernel)?;
            if !busy && can_nap {
                kernel.sleep_ns(IDLE_NAP_NS);
            }
        }
    }

    /// Answers every datagram waiting on `udp`; true if there was one.
    fn serve_datagrams(
        &mut self,
        stack: &mut Stack,
        udp: &UdpSocket,
        now: u64,
        kernel: &Kernel,
    ) -> Result<bool, NetError> {
        let mut any = false;
        let mut request = [0u8; UDP_MAX_REQUEST];
        while let Some((len, from)) = stack.recv_from(udp, &mut request) {
            any = true;
            let answer = udp::answer_datagram(
                &mut self.cache,
                &request[..len],
                now,
                &self.info,
                &mut self.udp_answer,
            );
            let Ok(datagrams) = answer.and_then(|id| Datagrams::new(id, &self.udp_answer)) else {
                self.udp_dropped += 1;
                continue;
            };
            self.udp_served += 1;
            'answer: for (header, part) in datagrams {
                self.udp_datagram.clear();
                self.udp_datagram.extend_from_slice(&header);
                self.udp_datagram.extend_from_slice(part);
                let mut tries = 0;
                loop {
                    match stack.send_to(udp, &self.udp_datagram, from) {
                        Ok(()) => break,
                        // A long answer outruns the send buffer: let the NIC take some.
                        Err(NetError::WouldBlock) if tries < UDP_SEND_RETRIES => {
                            tries += 1;
                            stack.poll(kernel.now_ns())?;
                        }
                        Err(error @ NetError::Device(_)) => return Err(error),
                        Err(_) => {
                            self.udp_dropped += 1;
                            break 'answer;
                        }
                    }
                }
            }
            // A large answer's room goes back.
            self.udp_answer.shrink_to(UDP_MAX_DATAGRAM);
        }
        Ok(any)
    }

    /// Closes every connection, lets the FINs go out and logs what was served.
    fn shut_down(&mut self, kernel: &Kernel, stack: &mut Stack) -> Result<(), NetError> {
        for client in self.clients.drain(..) {
            stack.close(client.into_connection());
        }
        let linger = kernel.now_ns();
        while kernel.now_ns() - linger < LINGER_NS {
            stack.poll(kernel.now_ns())?;
        }
        let stats = self.cache.stats(clock_s(kernel));
        kernel.log(format_args!(
            "kv: shutdown after {} connections: {} gets ({} hits), {} sets, {} items ({} bytes), {} evictions; UDP: {} datagrams answered, {} dropped",
            self.info.total_connections,
            stats.cmd_get,
            stats.get_hits,
            stats.cmd_set,
            stats.curr_items,
            stats.bytes,
            stats.evictions,
            self.udp_served,
            self.udp_dropped
        ));
        let c = stack.counters();
        kernel.log(format_args!(
            "kv: received {} frames ({} bytes), sent {} frames ({} bytes), {} dropped",
            c.rx_frames, c.rx_bytes, c.tx_frames, c.tx_bytes, c.tx_dropped
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
