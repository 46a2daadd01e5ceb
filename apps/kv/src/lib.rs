//! `kv`: a memcached-compatible cache. It gets an address by DHCP (or from `ip=`) on the first network
//! interface and serves memcached's text protocol on TCP and UDP port 11211 (UDP with
//! memcached's 8-byte frame header) from a cache with LRU eviction, until a client sends `shutdown` (memcached's `-A` command, always
//! enabled here so that tests can end the app); then it returns and QEMU powers off.
//!
//! Memory: an app's Rust allocations come from the kernel heap, which grows on demand
//! from free frames, its growth for the app refused past the app's quota; kv holds
//! itself to the memory it was given (its run's quota, or the machine's free RAM when
//! it has none, whichever is less): the cache's budget is a quarter of that
//! ([`cache_budget`]) and the connections' buffers together are bounded by an eighth of
//! it, leaving the rest to the TCP buffers and the stacks. `kv-small` ([`main_small`]) is
//! the same app with a 1 MiB cache, for eviction tests.
//!
//! Cores: kv serves on every core the app was given that has a queue pair of the NIC
//! ([`rexo_net::attach_cores`]): a stack per pair on its own core, each serving the TCP
//! and UDP requests its pair received (the device keeps a flow on one pair), none
//! taking a lock another core's frame path takes but for ARP frames (the stacks share
//! them). The cache is shared as
//! [`Shards`] (by key hash, a spin lock per shard held for one
//! command; `shard_count` says how many); `stats` sums them, with `threads` the
//! serving cores. With one queue pair (user networking, e1000) or a driver that cannot
//! split, one core serves, and the start line says why. `shutdown` on any core stops
//! them all, each connection closed once the answers it has queued are handed to TCP
//! (for a second at most); each core logs `kv: core N served M requests`.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod connection;
mod udp;

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rexo_api::{ApiError, DeviceKind, Kernel};
use rexo_memcache::udp::{Datagrams, UDP_MAX_DATAGRAM};
use rexo_memcache::{Config as CacheConfig, ServerInfo, Shards, Store, max_request_len};
use rexo_net::{
    Connection, Counters, Listener, NetError, Stack, TcpOptions, UdpOptions, UdpSocket,
};

use connection::{Client, Progress, take_handed_over};

/// memcached's port, TCP and UDP.
pub const PORT: u16 = 11211;
/// Connections half-open or waiting to be accepted.
const BACKLOG: usize = 64;
/// Open connections at most; past this a new one is told so, as memcached does past
/// `maxconns`, and reset once the line went out.
pub const MAX_CONNECTIONS: usize = 64;
/// memcached's answer to a connection over the limit.
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";
/// Why a handle a core's server gives its stack is that stack's: each core's server
/// listens, binds and accepts on its one stack only.
const OWN_STACK: &str = "a core's listener, socket and connections are its own stack's";
/// Connections kv closed in order whose sockets the stack may still hold, per core
/// (each keeps its buffers, about 48 KiB, until its peer has taken what was sent and the
/// FIN): past it, a connection kv ends is reset instead, so that peers that never read
/// cannot make kv hold sockets without bound.
pub const MAX_CLOSING: usize = MAX_CONNECTIONS;
/// How long to wait for a DHCP lease.
const DHCP_TIMEOUT_NS: u64 = 10_000_000_000;
/// The longest nap when idle: smoltcp's timers (delayed ACKs, retransmissions) need a
/// poll now and then even when no frame arrives.
const IDLE_NAP_NS: u64 = 10_000_000;
/// How long the other connections get after `shutdown` to hand the answers they have
/// queued to TCP (a client that does not read holds its connection no longer).
const HAND_OVER_NS: u64 = 1_000_000_000;
/// How long the FINs of the last connections get to leave after `shutdown`.
const LINGER_NS: u64 = 200_000_000;
/// The cache's budget of `kv-small`.
const SMALL_CACHE_BYTES: usize = 1 << 20;
/// Polls a UDP answer may wait for room in the send buffer before the rest of it is
/// dropped (and counted).
const UDP_SEND_RETRIES: usize = 64;
/// Datagrams the UDP socket buffers each way, and the most requests one pass of the
/// serving loop answers: a steady flood of datagrams (each poll made while answering
/// receives more) must not keep the loop from the TCP connections.
const UDP_DATAGRAMS: usize = 64;
/// The largest UDP request: the stack reassembles no IP fragments, so a datagram is at
/// most one 1500-byte frame's payload (memcached itself reads up to 64 KiB).
const UDP_MAX_REQUEST: usize = 1472;
/// The clock starts here rather than at 0 because memcached's "negative exptime" means
/// "expired at second 1", which must already be past.
const CLOCK_START_S: u64 = 2;

/// Seconds a connection may stay without a byte moved either way before it is closed,
/// so that silent clients do not hold connection slots forever (memcached's
/// `-o idle_timeout`, off there by default).
pub const IDLE_TIMEOUT_S: u64 = 300;

/// What an app of kv is set up with: how big the cache and the connections' buffers
/// are, and how long connections may stay idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Settings {
    /// The cache's byte budget (`limit_maxbytes`).
    cache_bytes: usize,
    /// Bytes all connections may hold in unanswered requests and unsent answers.
    buffer_bytes: usize,
    /// Seconds without a byte moved after which a connection is closed (0: never).
    idle_timeout_s: u64,
}

/// The app's entry point: a cache sized from the memory the app was given.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    let memory = memory_share(kernel);
    serve_until_shutdown(
        kernel,
        Settings {
            cache_bytes: cache_budget(memory),
            buffer_bytes: buffer_budget(memory),
            idle_timeout_s: IDLE_TIMEOUT_S,
        },
    )
}

/// `kv-small`: the same app with a 1 MiB cache, so that tests reach eviction quickly.
pub fn main_small(kernel: &Kernel) -> Result<(), ApiError> {
    let memory = memory_share(kernel);
    serve_until_shutdown(
        kernel,
        Settings {
            cache_bytes: SMALL_CACHE_BYTES,
            buffer_bytes: buffer_budget(memory),
            idle_timeout_s: IDLE_TIMEOUT_S,
        },
    )
}

/// The bytes kv sizes itself by: [`share_of`] its run's quota and the machine's free RAM.
fn memory_share(kernel: &Kernel) -> usize {
    share_of(kernel.run().quota, kernel.memory().free)
}

/// The memory an app with `quota` (`None`: no quota) may use on a machine with `free`
/// bytes of RAM left: the quota, but no more than is free (the kernel heap the app's
/// allocations come from grows into free frames, whatever the quota).
fn share_of(quota: Option<u64>, free: u64) -> usize {
    let bytes = quota.map_or(free, |quota| quota.min(free));
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// The cache's budget for an app given `memory` bytes (the smaller of its run's quota and
/// the machine's free RAM): a quarter, leaving the rest to the connections' buffers, the
/// TCP buffers and the stacks, but no more than [`MAX_CACHE_BYTES`].
pub fn cache_budget(memory: usize) -> usize {
    (memory / 4).min(MAX_CACHE_BYTES)
}

/// The largest cache budget: items of [`ITEM_OVERHEAD`](rexo_memcache::ITEM_OVERHEAD)
/// bytes each fill at most half the `u32` slab indexes and table tags the cache numbers
/// them by (224 GiB; with no quota, a budget above 448 GiB would allow more items than
/// a `u32` numbers).
pub const MAX_CACHE_BYTES: usize = u32::MAX as usize / 2 * rexo_memcache::ITEM_OVERHEAD;
const _: () = assert!(MAX_CACHE_BYTES / rexo_memcache::ITEM_OVERHEAD <= u32::MAX as usize / 2);

/// What the connections may hold together for an app given `memory` bytes: an eighth,
/// and at least one largest request so that one always fits.
fn buffer_budget(memory: usize) -> usize {
    (memory / 8).max(max_request_len(CacheConfig::default().max_value))
}

/// Logs why the app failed and says so to the kernel ([`NetError::exit_error`]).
fn failed(kernel: &Kernel, error: NetError) -> ApiError {
    kernel.log(format_args!("kv: FAILED: {error}"));
    error.exit_error()
}

/// The cache's clock, in seconds: memcached's `time` (protocol.txt: "current UNIX time
/// according to the server"), from which `uptime` ("number of secs since the server
/// started") and exptimes count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// The kernel's wall clock, read at each tick: its Unix time (memcached's absolute
    /// exptimes, above 30 days, are Unix times), at least [`CLOCK_START_S`]. The kernel
    /// keeps the first reading that succeeded and counts on from it (corrected by a
    /// reading every 10 minutes, never back), so every later call answers too, a second
    /// that never goes back and turns when the Unix second does.
    Wall,
    /// [`CLOCK_START_S`] plus the whole seconds since boot, on a machine without a wall
    /// clock (absolute exptimes then count from boot, said in the log).
    FromBoot,
}

impl Clock {
    /// The wall clock if the kernel's first answer (`unix_time_s`) is a time, else the
    /// boot's.
    fn new(unix_time_s: Result<u64, ApiError>) -> Self {
        match unix_time_s {
            Ok(_) => Self::Wall,
            Err(_) => Self::FromBoot,
        }
    }

    /// The clock now, `now_ns` answering the nanoseconds since boot and `unix_time_s`
    /// the kernel's Unix time, each asked only if needed: the wall clock's asks
    /// `unix_time_s` only (it answers every call once it answered one; the boot's
    /// seconds would stand in for a failure), the boot's `now_ns` only.
    fn now_s(
        self,
        now_ns: impl FnOnce() -> u64,
        unix_time_s: impl FnOnce() -> Result<u64, ApiError>,
    ) -> u64 {
        let from_boot = || CLOCK_START_S + now_ns() / 1_000_000_000;
        match self {
            Self::Wall => {
                unix_time_s().map_or_else(|_| from_boot(), |unix| unix.max(CLOCK_START_S))
            }
            Self::FromBoot => from_boot(),
        }
    }

    /// The clock now, by `kernel`'s clocks (one of them read, as a rule).
    fn read(self, kernel: &Kernel) -> u64 {
        self.now_s(|| kernel.now_ns(), || kernel.unix_time_s())
    }
}

/// The seed of the cache's key hash: the kernel's random number (`random`), so that
/// clients cannot choose keys that collide (hash flooding). Only when the kernel gives
/// none is it the boot-relative clock (`now_ns`, read only then), no harder to guess
/// than that reading; the kernel's error comes with it, for the warning.
fn hash_seed(
    random: impl FnOnce() -> Result<u64, ApiError>,
    now_ns: impl FnOnce() -> u64,
) -> (u64, Option<ApiError>) {
    match random() {
        Ok(seed) => (seed, None),
        Err(error) => (now_ns() ^ 0x6b76_5f72_6578_6f00, Some(error)),
    }
}

/// The most shards per serving core: with several times more shards than cores, two
/// cores rarely want the same shard's lock at once.
const SHARDS_PER_CORE: usize = 4;

/// How many shards a cache of `cache_bytes` served by `serving` cores is cut into. One
/// core needs no shards (one cache, one LRU, as before). Each shard gets an equal share
/// of the budget and evicts within it, so a shard must hold at least two largest items
/// (`max_item` bytes each): a smaller share could not store a largest value beside
/// anything else, and LRU would be per share of a few items rather than the cache's.
/// That keeps `kv-small` (1 MiB) one cache whatever the cores: its eviction tests see
/// memcached's global LRU order.
fn shard_count(cache_bytes: usize, serving: usize, max_item: usize) -> usize {
    if serving < 2 {
        return 1;
    }
    (cache_bytes / (2 * max_item)).clamp(1, serving * SHARDS_PER_CORE)
}

/// Opens the NIC, gets an address and serves on every core that has a queue pair of it
/// until a client sends `shutdown`.
fn serve_until_shutdown(kernel: &Kernel, settings: Settings) -> Result<(), ApiError> {
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
    let cores = kernel.cores();
    let mut attached =
        rexo_net::attach_cores(kernel, device.index, &filters, cores, DHCP_TIMEOUT_NS)
            .map_err(|error| failed(kernel, error))?;
    let stacks = core::mem::take(&mut attached.stacks);
    let serving = stacks.len();
    let (seed, predictable) = hash_seed(|| kernel.random_u64(), || kernel.now_ns());
    if let Some(error) = predictable {
        kernel.log(format_args!(
            "kv: WARNING: no random number from the kernel ({error}): the key hash is seeded from the boot-relative clock, so who can guess it can send keys that collide"
        ));
    }
    let config = CacheConfig {
        max_bytes: settings.cache_bytes,
        hash_seed: seed,
        ..CacheConfig::default()
    };
    let max_item = config.max_value + rexo_memcache::ITEM_OVERHEAD + rexo_memcache::MAX_KEY;
    let shards = shard_count(settings.cache_bytes, serving, max_item);
    let unix_time_s = kernel.unix_time_s();
    if let Err(error) = unix_time_s {
        kernel.log(format_args!(
            "kv: {error}: absolute exptimes count from boot"
        ));
    }
    let clock = Clock::new(unix_time_s);
    let shared = Shared::new(
        clock,
        Shards::new(config, shards, clock.read(kernel)),
        serving,
        (settings.buffer_bytes / serving).max(max_request_len(CacheConfig::default().max_value)),
        settings.idle_timeout_s,
    );
    let why = attached.serving_how(device.index);
    if let Some((address, prefix)) = stacks[0].address() {
        kernel.log(format_args!(
            "kv: serving memcached on {address}/{prefix} port {PORT} (TCP and UDP, nic {}); cache {} KiB in {shards} shard(s), connection buffers {} KiB per core, idle connections closed after {} s; {serving} of {cores} core(s) serve{why}",
            device.index,
            settings.cache_bytes / 1024,
            shared.buffer_bytes / 1024,
            shared.idle_timeout_s,
        ));
    }
    let shared = Arc::new(shared);
    let on_cores = shared.clone();
    rexo_net::serve_on_cores(kernel, stacks, move |kernel, core, stack| {
        serve_core(kernel, core, stack, &on_cores);
    })?;
    if let Some(error) = *shared.failure.lock() {
        return Err(failed(kernel, error));
    }
    let stats = (&shared.store).stats(shared.clock.read(kernel));
    kernel.log(format_args!(
        "kv: shutdown after {} connections: {} gets ({} hits), {} sets, {} items ({} bytes), {} evictions; UDP: {} datagrams answered, {} dropped",
        shared.total_connections.load(Ordering::Relaxed),
        stats.cmd_get,
        stats.get_hits,
        stats.cmd_set,
        stats.curr_items,
        stats.bytes,
        stats.evictions,
        shared.udp_served.load(Ordering::Relaxed),
        shared.udp_dropped.load(Ordering::Relaxed),
    ));
    let c = *shared.frames.lock();
    kernel.log(format_args!(
        "kv: received {} frames ({} bytes), sent {} frames ({} bytes), {} dropped, {} DHCP leases lost, {} refused, {} address conflicts ({} defended, {} given up, {} declined to the DHCP server)",
        c.rx_frames,
        c.rx_bytes,
        c.tx_frames,
        c.tx_bytes,
        c.tx_dropped,
        c.dhcp_leases_lost,
        c.dhcp_leases_refused,
        c.address_conflicts,
        c.address_defences,
        c.addresses_given_up,
        c.dhcp_declines
    ));
    // The stacks are gone: the lease their handles were split from may end.
    drop(attached);
    Ok(())
}

/// What the serving cores share.
struct Shared {
    /// The cache's clock.
    clock: Clock,
    /// The cache, cut by key hash (one shard when one core serves).
    store: Shards,
    /// How many cores serve (memcached's `threads`).
    serving: usize,
    /// See [`Settings::buffer_bytes`]: each core's share.
    buffer_bytes: usize,
    /// See [`Settings::idle_timeout_s`].
    idle_timeout_s: u64,
    /// Set by the core that received `shutdown` (or failed): every core stops.
    stop: AtomicBool,
    /// Open connections, all cores.
    curr_connections: AtomicU64,
    /// Connections ever accepted, all cores.
    total_connections: AtomicU64,
    /// Datagrams answered, all cores (added at shutdown).
    udp_served: AtomicU64,
    /// Datagrams dropped, all cores (added at shutdown).
    udp_dropped: AtomicU64,
    /// What the stacks moved, summed at shutdown.
    frames: spin::Mutex<Counters>,
    /// The first error a core failed with.
    failure: spin::Mutex<Option<NetError>>,
}

impl Shared {
    /// What `serving` cores share over `store`, before anything was served.
    fn new(
        clock: Clock,
        store: Shards,
        serving: usize,
        buffer_bytes: usize,
        idle_timeout_s: u64,
    ) -> Self {
        Self {
            clock,
            store,
            serving,
            buffer_bytes,
            idle_timeout_s,
            stop: AtomicBool::new(false),
            curr_connections: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            udp_served: AtomicU64::new(0),
            udp_dropped: AtomicU64::new(0),
            frames: spin::Mutex::new(Counters::default()),
            failure: spin::Mutex::new(None),
        }
    }

    /// What `stats` reports of the app and its connections.
    fn info(&self) -> ServerInfo {
        ServerInfo {
            // One app run, no process ids: memcached's field is kept for the clients.
            pid: 1,
            threads: self.serving as u64,
            curr_connections: self.curr_connections.load(Ordering::Relaxed),
            total_connections: self.total_connections.load(Ordering::Relaxed),
        }
    }
}

/// Serves one core's stack (`core`: its place among the app's cores) until a core
/// receives `shutdown`; an error is kept in [`Shared::failure`] and stops every core.
fn serve_core(kernel: &Kernel, core: usize, mut stack: Stack, shared: &Shared) {
    // Idle naps need a frame's arrival on one of the stack's receive queues to end
    // them; without that the loop polls.
    let can_nap = stack.wake_on_receive(Some(kernel.core_index())).is_ok();
    if !can_nap {
        kernel.log(format_args!(
            "kv: core {core} polls when idle (the NIC cannot wake a core)"
        ));
    }
    let mut server = Server::new(shared);
    let result = server
        .run(kernel, &mut stack, can_nap)
        .and_then(|()| server.shut_down(kernel, &mut stack));
    if let Err(error) = result {
        kernel.log(format_args!("kv: core {core} failed: {error}"));
        shared.failure.lock().get_or_insert(error);
        shared.stop.store(true, Ordering::Relaxed);
    }
    kernel.log(format_args!(
        "kv: core {core} served {} requests ({} TCP, {} UDP datagrams)",
        server.tcp_requests + server.udp_served,
        server.tcp_requests,
        server.udp_served
    ));
    shared
        .udp_served
        .fetch_add(server.udp_served, Ordering::Relaxed);
    shared
        .udp_dropped
        .fetch_add(server.udp_dropped, Ordering::Relaxed);
    *shared.frames.lock() += stack.counters();
}

/// What one pass over a core's connections did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// No connection moved.
    Idle,
    /// Some connection moved or finished.
    Busy,
    /// A client sent `shutdown`: every core stops.
    Shutdown,
}

/// One core's connections and what its serving loop keeps.
struct Server<'a> {
    /// What the cores share: the cache, the counters, the stop.
    shared: &'a Shared,
    /// Open connections.
    clients: Vec<Client>,
    /// Connections past [`MAX_CONNECTIONS`], told so and reset in the next pass.
    turned_away: Vec<Connection>,
    /// The text of a UDP answer, reused.
    udp_answer: Vec<u8>,
    /// One outgoing datagram (header and part of the answer), reused.
    udp_datagram: Vec<u8>,
    /// TCP requests served by connections closed so far.
    tcp_requests: u64,
    /// Datagrams answered.
    udp_served: u64,
    /// Datagrams dropped: too short for the frame header, an answer beyond what the
    /// 16-bit datagram count can say, or no room to send.
    udp_dropped: u64,
    /// Whether a connection moved a byte in the last pass over them (the budget is
    /// turning over: throttled clients are not idle).
    turned: bool,
}

impl<'a> Server<'a> {
    /// A core's server over what the cores share, with no connection yet.
    fn new(shared: &'a Shared) -> Self {
        Self {
            shared,
            clients: Vec::new(),
            turned_away: Vec::new(),
            udp_answer: Vec::new(),
            udp_datagram: Vec::with_capacity(UDP_MAX_DATAGRAM),
            tcp_requests: 0,
            udp_served: 0,
            udp_dropped: 0,
            turned: false,
        }
    }

    /// The serving loop, until a core receives `shutdown`.
    fn run(&mut self, kernel: &Kernel, stack: &mut Stack, can_nap: bool) -> Result<(), NetError> {
        let options = TcpOptions {
            receive_buffer: 16 * 1024,
            send_buffer: 32 * 1024,
            ..TcpOptions::default()
        };
        let listener = stack.listen(PORT, BACKLOG, options)?;
        let udp_options = UdpOptions {
            datagrams: UDP_DATAGRAMS,
            ..UdpOptions::default()
        };
        let udp = stack.udp_bind(PORT, udp_options)?;
        let shared = self.shared;
        while !shared.stop.load(Ordering::Relaxed) {
            let mut busy = stack.poll(kernel.now_ns())?;
            let now = shared.clock.read(kernel);
            busy |= self.accept_clients(stack, &listener, now);
            let info = shared.info();
            match self.step_clients(stack, now, &info) {
                Pass::Idle => {}
                Pass::Busy => busy = true,
                Pass::Shutdown => {
                    shared.stop.store(true, Ordering::Relaxed);
                    return Ok(());
                }
            }
            busy |= self.serve_datagrams(stack, &udp, now, &info, &|| kernel.now_ns())?;
            if !busy && can_nap {
                // A wake is spent by the receive that takes a frame (virtio-net's, the
                // 8254x's and the RTL8139's): arm it again before each nap, as httpd does
                // (a frame that came since the poll ends the nap at once: the arming
                // raises the wake for a frame already in the ring).
                let _ = stack.wake_on_receive(Some(kernel.core_index()));
                kernel.sleep_ns(IDLE_NAP_NS);
            }
        }
        Ok(())
    }

    /// Resets the connections turned away in the last pass (their line went out with the
    /// poll since), then accepts those waiting on `listener` at `now` (the cache's
    /// clock): past [`MAX_CONNECTIONS`] a connection is told so, as memcached does, and
    /// reset after the next poll rather than closed in order, so that a peer that never
    /// reads cannot keep its socket. True if any was accepted.
    fn accept_clients(&mut self, stack: &mut Stack, listener: &Listener, now: u64) -> bool {
        for connection in self.turned_away.drain(..) {
            stack.abort(connection).expect(OWN_STACK);
        }
        let shared = self.shared;
        let mut accepted = false;
        while let Some(connection) = stack.accept(listener).expect(OWN_STACK) {
            accepted = true;
            shared.total_connections.fetch_add(1, Ordering::Relaxed);
            if self.clients.len() >= MAX_CONNECTIONS {
                // Best effort: the answer is one short line in an empty buffer.
                let _ = stack.write(&connection, TOO_MANY_CONNECTIONS);
                self.turned_away.push(connection);
            } else {
                self.clients
                    .push(Client::new(connection, now, shared.idle_timeout_s));
                shared.curr_connections.fetch_add(1, Ordering::Relaxed);
            }
        }
        accepted
    }

    /// Steps every connection once ([`Client::step`]), closing those that finished.
    fn step_clients(&mut self, stack: &mut Stack, now: u64, info: &ServerInfo) -> Pass {
        let mut store = &self.shared.store;
        let budget = self.shared.buffer_bytes;
        let mut pass = Pass::Idle;
        let mut held: usize = self.clients.iter().map(Client::held).sum();
        // The client with the most unserved input may read past the budget, so that
        // one large request always completes and frees its share.
        let mut leader = (0..self.clients.len()).max_by_key(|&i| self.clients[i].input_len());
        // Some client moved in the last pass or in this one so far.
        let mut turning = self.turned;
        let mut moved = false;
        let mut index = 0;
        while index < self.clients.len() {
            let client = &mut self.clients[index];
            let leads = leader == Some(index);
            match client.step(
                stack, &mut store, now, info, &mut held, budget, leads, turning,
            ) {
                Progress::Idle | Progress::Throttled => index += 1,
                Progress::Moved => {
                    pass = Pass::Busy;
                    moved = true;
                    turning = true;
                    index += 1;
                }
                Progress::Finished => {
                    pass = Pass::Busy;
                    // The last client takes this one's place, and its lead if it had it.
                    let last = self.clients.len() - 1;
                    leader = match leader {
                        Some(at) if at == index => None,
                        Some(at) if at == last => Some(index),
                        unmoved => unmoved,
                    };
                    let done = self.clients.swap_remove(index);
                    held = held.saturating_sub(done.held());
                    self.close(stack, done);
                }
                Progress::Shutdown => return Pass::Shutdown,
            }
        }
        self.turned = moved;
        pass
    }

    /// Closes `client`'s connection in order and counts what it was served. It is reset
    /// instead when it timed out with bytes its peer has not taken (a peer that reads
    /// nothing for the idle timeout will not take them), or when [`MAX_CLOSING`]
    /// connections closed before it still hold their sockets.
    fn close(&mut self, stack: &mut Stack, client: Client) {
        self.tcp_requests += client.requests();
        self.shared.curr_connections.fetch_sub(1, Ordering::Relaxed);
        let timed_out = client.timed_out();
        stack
            .close_bounded(client.into_connection(), timed_out, MAX_CLOSING)
            .expect(OWN_STACK);
    }

    /// Answers the datagrams waiting on `udp`, [`UDP_DATAGRAMS`] at most (`info`: this
    /// poll round's figures for `stats`; `clock_ns`: the kernel's clock, for the polls
    /// that make room for a long answer); true if there was one.
    fn serve_datagrams(
        &mut self,
        stack: &mut Stack,
        udp: &UdpSocket,
        now: u64,
        info: &ServerInfo,
        clock_ns: &dyn Fn() -> u64,
    ) -> Result<bool, NetError> {
        let mut served = 0;
        let mut request = [0u8; UDP_MAX_REQUEST];
        let mut store = &self.shared.store;
        while served < UDP_DATAGRAMS
            && let Some((len, from)) = stack.recv_from(udp, &mut request).expect(OWN_STACK)
        {
            served += 1;
            let answer =
                udp::answer_datagram(&mut store, &request[..len], now, info, &mut self.udp_answer);
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
                        Ok(_) => break,
                        // A long answer outruns the send buffer: let the NIC take some.
                        Err(NetError::WouldBlock) if tries < UDP_SEND_RETRIES => {
                            tries += 1;
                            stack.poll(clock_ns())?;
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
        Ok(served > 0)
    }

    /// Closes every connection once the answers it has queued are handed to TCP (for
    /// [`HAND_OVER_NS`] at most), and lets the FINs go out. A failed poll closes the
    /// connections left at once (each counted out) and is the error.
    fn shut_down(&mut self, kernel: &Kernel, stack: &mut Stack) -> Result<(), NetError> {
        for connection in self.turned_away.drain(..) {
            stack.abort(connection).expect(OWN_STACK);
        }
        let mut clients = core::mem::take(&mut self.clients);
        let started = kernel.now_ns();
        while !clients.is_empty() {
            if let Err(error) = stack.poll(kernel.now_ns()) {
                for client in take_handed_over(stack, &mut clients, true) {
                    self.close(stack, client);
                }
                return Err(error);
            }
            let give_up = kernel.now_ns() - started >= HAND_OVER_NS;
            for client in take_handed_over(stack, &mut clients, give_up) {
                self.close(stack, client);
            }
        }
        let linger = kernel.now_ns();
        while kernel.now_ns() - linger < LINGER_NS {
            stack.poll(kernel.now_ns())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
