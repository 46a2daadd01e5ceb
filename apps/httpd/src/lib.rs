//! `httpd`: the web server, built the way Cheetah was on the MIT exokernel. It takes the
//! first network interface, gets an address by DHCP (or from `ip=`), and serves on TCP port 80 the site
//! built into the image (`apps/httpd/site/`, plus a 10 MiB file generated at start)
//! through the `rexo-http` engine: HTTP/1.1 with keep-alive and pipelining, prebuilt
//! response heads, `ETag`/`If-None-Match`/`If-Match`, `Range`, bounded heads, and a
//! live status page at `/` (cores, memory, devices, answers by status, connections, NIC
//! traffic).
//!
//! The port is served by Rexo's own TCP, `rexo-tcp` ([`DEFAULT_TCP`]): answers are
//! queued as pieces of the file cache and sent and retransmitted from there with their
//! checksums precomputed, as in Cheetah. `httpd-smoltcp` and `httpd-test-smoltcp`
//! ([`main_smoltcp`], [`main_test_smoltcp`]) serve on smoltcp's TCP instead, for
//! comparison (docs/network.md has the measurement that chose).
//!
//! Cores: httpd serves on every core the app was given that has a queue pair of the NIC
//! ([`rexo_net::attach_cores`]): a stack per pair on its own core, each with its own
//! `rexo-tcp` endpoint serving the connections its pair received (the device keeps a
//! flow on one pair), the file cache shared by all (it is immutable once built). Each
//! core keeps its own counters (behind a lock only the core that renders the status
//! page also takes), so the page shows every core's answers, connections and NIC
//! traffic summed, and the answers of each core. [`MAX_CLIENTS`], [`MAX_DRAINING`] and
//! [`BACKLOG`] are the app's, cut evenly between the serving cores. With one queue pair (user
//! networking, e1000), a driver that cannot split, or one core (the default run's
//! manifest gives httpd one), one core serves, and the start line says why.
//!
//! Each serving core runs a poll loop: poll its stack, accept, move every connection
//! on as far as it goes without waiting. A connection that cannot move (a client that
//! stopped reading, or vanished mid-answer) holds only itself up. When nothing moved,
//! the core sleeps until a frame arrives on its pair (`wake_on_receive`), or polls on
//! when the NIC cannot wake it.
//!
//! `httpd` runs until the machine stops. `httpd-test` ([`main_test`]) is the same server
//! with one test hook: a `GET /__shutdown` (not HEAD, which is safe), on any core, is answered and then every core
//! finishes its answers (until its clients acknowledged them, for 2 s at most) and stops (each logs `httpd: core N served M answers`), and the
//! app returns, so the test harness can end the run with the app's own verdict. The hook lives in a
//! separate app entry because apps get no arguments: the server a user runs cannot be
//! stopped by any client.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod client;
mod connections;
mod site;
mod status;
mod transport;

#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rexo_api::{ApiError, DeviceKind, Kernel};
use rexo_http::{DateField, Page, Site};
use rexo_net::rexo_tcp;
use rexo_net::{NetError, Stack, TcpOptions};

use client::Client;
use connections::Connections;
use status::{Counters, Snapshot};
pub use transport::Tcp;
use transport::Transport;

/// The HTTP port.
pub const HTTP_PORT: u16 = 80;
/// Connections half-open or waiting to be accepted.
pub const BACKLOG: usize = 64;
/// Connections served at once; more wait in the backlog until one ends. With
/// [`BACKLOG`] and `TCP_OPTIONS` it bounds the buffers at about 15 MiB: 96 KiB per
/// client at worst (16 KiB to receive, 32 KiB to send, and a request buffer under
/// 24 KiB long whose capacity, a `Vec` grown by doubling, stays under 48 KiB), 12 MiB in
/// all, and 48 KiB per listening socket, 3 MiB. The request buffer may hold twice the
/// site's 12 KiB read bound because answered request bytes are dropped only once they
/// are as many as the unanswered ones (`client.rs`'s `Inbox`), which keeps the bytes
/// moved linear in the bytes read; a buffer held to the bound would leave an unfinished
/// request behind a few answered bytes too little room to arrive whole. With
/// [`MAX_DRAINING`]'s 3 MiB and the 10 MiB generated file that is 28 MiB, within the
/// 32 MiB quota of the smallest manifest that runs httpd (`httpd-test:0:32M`:
/// `net::shared-nic`), against which its heap's growth counts.
pub const MAX_CLIENTS: usize = 128;
/// Connections draining their last answer, counted apart from [`MAX_CLIENTS`] so that
/// clients slow to take a last answer cannot keep new ones out; past it a connection
/// that would drain is reset instead. On `rexo-tcp` httpd drains them (the FIN queued,
/// the connection kept until the client acknowledged the answer): each holds its
/// request buffer (under 48 KiB, as [`MAX_CLIENTS`] says) and the engine's state, its
/// answer being pieces of the file cache, some 3 MiB in all. On smoltcp they are
/// sockets closed in order that the stack holds, with their 48 KiB of buffers, until the
/// client took the answer (`Stack::close_bounded`): 3 MiB in all.
pub const MAX_DRAINING: usize = 64;
/// The test hook's path (only in `httpd-test`).
pub const SHUTDOWN_PATH: &[u8] = b"/__shutdown";
/// How long to wait for a DHCP lease.
const DHCP_TIMEOUT_NS: u64 = 10_000_000_000;
/// The longest nap when idle: smoltcp's timers (retransmission, delayed ACKs) need a
/// poll now and then even when no frame comes.
const IDLE_NAP_NS: u64 = 2_000_000;
/// After the shutdown hook, how long answers still being sent get to finish: until
/// their clients acknowledged them, on either TCP ([`may_stop`]).
const SHUTDOWN_GRACE_NS: u64 = 2_000_000_000;
/// After closing every connection, how long the FINs get to go out.
const FINAL_FLUSH_NS: u64 = 200_000_000;
/// Each connection's buffers. The receive buffer holds pipelined requests (the engine
/// reads at most 12 KiB of them at a time); the send buffer bounds the bytes in flight,
/// and so one connection's throughput: 32 KiB keeps a QEMU user-networking link busy.
const TCP_OPTIONS: TcpOptions = TcpOptions {
    receive_buffer: 16 * 1024,
    send_buffer: 32 * 1024,
    nagle: false,
    keep_alive_ms: None,
    timeout_ms: Some(30_000),
};

/// The TCP `httpd` and `httpd-test` serve with (docs/network.md says why); the other
/// one serves in `httpd-smoltcp` and `httpd-test-smoltcp`.
pub const DEFAULT_TCP: Tcp = Tcp::Rexo;

/// A core's share of the app's connection places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Places {
    /// Of [`MAX_CLIENTS`]: connections served at once.
    clients: usize,
    /// Of [`MAX_DRAINING`]: connections draining their last answer (on smoltcp, sockets
    /// closed in order the stack still holds).
    draining: usize,
    /// Of [`BACKLOG`]: connections half-open or waiting to be accepted.
    backlog: usize,
}

impl Places {
    /// Each of `serving` cores' share: the app's bounds cut evenly, at least one of each.
    fn per_core(serving: usize) -> Places {
        let share = |bound: usize| (bound / serving.max(1)).max(1);
        Places {
            clients: share(MAX_CLIENTS),
            draining: share(MAX_DRAINING),
            backlog: share(BACKLOG),
        }
    }
}

/// `rexo-tcp`'s settings for one core: the buffers of [`TCP_OPTIONS`], a connection
/// slot for each of the core's `places`, as many again for connections given back
/// while they finish with their clients (FIN-WAIT-2 waits 30 s for a client that never
/// closes), and the initial sequence numbers keyed by `secret`.
fn rexo_tcp_config(secret: u128, places: Places) -> rexo_tcp::Config {
    let slots = places.clients + places.draining + places.backlog;
    rexo_tcp::Config {
        recv_buffer: TCP_OPTIONS.receive_buffer,
        backlog: places.backlog,
        max_connections: slots,
        max_released: slots,
        secret,
        ..rexo_tcp::Config::default()
    }
}

/// The 128-bit key of `rexo-tcp`'s initial sequence numbers (RFC 6528's secret): two
/// of the kernel's random numbers (`random`). Only when the kernel gives none is it the
/// boot-relative clock `now_ns` rotated and XORed with the MAC `mac`, no harder to
/// guess than that clock reading; the kernel's error comes with it, for the warning.
fn isn_secret(
    mut random: impl FnMut() -> Result<u64, ApiError>,
    now_ns: u64,
    mac: [u8; 6],
) -> (u128, Option<ApiError>) {
    match (random(), random()) {
        (Ok(high), Ok(low)) => ((u128::from(high) << 64) | u128::from(low), None),
        (Err(error), _) | (_, Err(error)) => {
            let mac =
                u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0x5e, 0xed]);
            (u128::from(now_ns.rotate_left(17) ^ mac), Some(error))
        }
    }
}

/// The server, which runs until the machine stops.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    run(kernel, false, DEFAULT_TCP)
}

/// The server with the test hook: returns after answering `GET /__shutdown`.
pub fn main_test(kernel: &Kernel) -> Result<(), ApiError> {
    run(kernel, true, DEFAULT_TCP)
}

/// [`main`] on smoltcp.
pub fn main_smoltcp(kernel: &Kernel) -> Result<(), ApiError> {
    run(kernel, false, Tcp::Smoltcp)
}

/// [`main_test`] on smoltcp.
pub fn main_test_smoltcp(kernel: &Kernel) -> Result<(), ApiError> {
    run(kernel, true, Tcp::Smoltcp)
}

/// Sets up the NIC, a stack per serving core and the site, then serves with `tcp`.
fn run(kernel: &Kernel, shutdown_hook: bool, tcp: Tcp) -> Result<(), ApiError> {
    let Some(device) = kernel
        .devices()
        .into_iter()
        .find(|d| d.kind == DeviceKind::Net)
    else {
        kernel.log(format_args!("httpd: FAILED: no network interface"));
        return Err(ApiError::NoSuchDevice);
    };
    let filter = format!("tcp dport {HTTP_PORT}");
    let cores = kernel.cores();
    let mut attached =
        rexo_net::attach_cores(kernel, device.index, &[&filter], cores, DHCP_TIMEOUT_NS)
            .map_err(|error| failed(kernel, error))?;
    let stacks = core::mem::take(&mut attached.stacks);
    let serving = stacks.len();
    let started = kernel.now_ns();
    // Answers carry a `Date` field from the wall clock; without one, none (RFC 9110).
    // Each core reads the clock itself as it starts serving and, while it gave no time,
    // once a second after ([`DateClock`]): the kernel keeps a reading that succeeded, and
    // answers a failed one's error for a minute before it reads the clock again.
    if let Err(error) = kernel.unix_time_s() {
        kernel.log(format_args!(
            "httpd: {error}: answers carry no Date until the clock answers"
        ));
    }
    let (disk_files, notes) = site::from_disk(kernel);
    for note in notes {
        kernel.log(format_args!("httpd: {note}"));
    }
    let from_disk = disk_files.len();
    let (site, replaced) = site::build(disk_files);
    for path in replaced {
        kernel.log(format_args!(
            "httpd: {path} from disk replaces the built-in one"
        ));
    }
    kernel.log(format_args!(
        "httpd: {} files prepared in {} ms, {from_disk} of them from disk",
        site.files.len(),
        (kernel.now_ns() - started) / 1_000_000
    ));
    let mac = stacks.first().map_or([0; 6], Stack::mac);
    let (secret, predictable) = isn_secret(|| kernel.random_u64(), kernel.now_ns(), mac);
    if let Some(error) = predictable {
        kernel.log(format_args!(
            "httpd: WARNING: no random number from the kernel ({error}): the key of rexo-tcp's initial sequence numbers is the boot-relative clock XOR the MAC, so who can guess both can predict them"
        ));
    }
    // The bounds of [`MAX_CLIENTS`], [`MAX_DRAINING`] and [`BACKLOG`] are the app's,
    // shared by its cores.
    let places = Places::per_core(serving);
    let address = stacks.first().and_then(Stack::address);
    let transports = stacks
        .into_iter()
        .map(|stack| {
            Transport::serve(
                stack,
                tcp,
                HTTP_PORT,
                (places, TCP_OPTIONS),
                rexo_tcp_config(secret, places),
            )
        })
        .collect::<Result<Vec<_>, NetError>>()
        .map_err(|error| failed(kernel, error))?;
    if let Some((address, prefix)) = address {
        let why = attached.serving_how(device.index);
        kernel.log(format_args!(
            "httpd: serving http://{address}:{HTTP_PORT}/ ({address}/{prefix} {}) on {} with {}{}; {serving} of {cores} core(s) serve{why}",
            attached.config.how(),
            device.driver,
            tcp.name(),
            if shutdown_hook {
                ", test hook GET /__shutdown on"
            } else {
                ""
            }
        ));
    }
    let shared = Arc::new(Shared {
        site,
        started_ns: started,
        shutdown_hook,
        nic_index: device.index,
        driver: device.driver,
        places,
        stop: AtomicBool::new(false),
        books: (0..serving).map(|_| Book::default()).collect(),
        failure: spin::Mutex::new(None),
    });
    let on_cores = shared.clone();
    rexo_net::serve_on_cores(kernel, transports, move |kernel, core, net| {
        serve_core(kernel, core, net, &on_cores);
    })?;
    if let Some(error) = *shared.failure.lock() {
        return Err(failed(kernel, error));
    }
    let c = shared.counters();
    kernel.log(format_args!(
        "httpd: {} answers {:?} on {} connections ({} peers gone mid-answer, {} idle closed, {} closed for a slow request, {} reset while lingering, {} reset at close with every draining place taken); {} head and {} body bytes",
        c.requests(),
        c.by_status,
        c.accepted,
        c.broken,
        c.idle_closed,
        c.slow_closed,
        c.linger_reset,
        c.drain_reset,
        c.head_bytes,
        c.body_bytes
    ));
    kernel.log(format_args!("httpd: done"));
    // The stacks are gone: the lease their handles were split from may end.
    drop(attached);
    Ok(())
}

/// What the serving cores share: the site (immutable), the stop, and each core's book.
struct Shared {
    /// The files and request bounds.
    site: Site,
    /// When the app started.
    started_ns: u64,
    /// Whether `GET /__shutdown` stops the server.
    shutdown_hook: bool,
    /// The network interface's number (for the status page's packet filters).
    nic_index: usize,
    /// Its driver's name (for the log).
    driver: &'static str,
    /// Each core's connection places.
    places: Places,
    /// Set by the core that answered the test hook (or failed): every core stops.
    stop: AtomicBool,
    /// One per serving core, in the order of the app's cores.
    books: Vec<Book>,
    /// The first error a core failed with.
    failure: spin::Mutex<Option<NetError>>,
}

/// What one core has served, kept by that core and read by whichever core renders the
/// status page (each lock is its core's but for that moment).
#[derive(Default)]
struct Book {
    /// The core's counters.
    counters: spin::Mutex<Counters>,
    /// Its stack's NIC counters, as its last poll round found them.
    net: spin::Mutex<rexo_net::Counters>,
    /// Its connections open at its last poll round.
    open: AtomicUsize,
}

impl Shared {
    /// Every core's counters summed.
    fn counters(&self) -> Counters {
        let mut sum = Counters::default();
        for book in &self.books {
            sum.add(&book.counters.lock());
        }
        sum
    }

    /// The status page, with every core's counters summed (`address`: the server's).
    fn status_page(&self, kernel: &Kernel, address: Option<(rexo_net::Ipv4Addr, u8)>) -> Vec<u8> {
        let devices = kernel.devices();
        let memory = kernel.memory();
        let per_core: Vec<u64> = self
            .books
            .iter()
            .map(|book| book.counters.lock().requests())
            .collect();
        let mut net = rexo_net::Counters::default();
        for book in &self.books {
            net += *book.net.lock();
        }
        status::render(&Snapshot {
            cores: kernel.cores(),
            per_core: &per_core,
            memory_usable: memory.usable,
            memory_free: memory.free,
            devices: &devices,
            uptime_ns: kernel.now_ns() - self.started_ns,
            address,
            net,
            open: self
                .books
                .iter()
                .map(|book| book.open.load(Ordering::Relaxed))
                .sum(),
            counters: &self.counters(),
            sharing: kernel.net_sharing(self.nic_index).ok().flatten(),
        })
    }
}

/// Serves one core's stack (`core`: its place among the app's cores) until the test
/// hook or a failure stops every core; an error is kept in [`Shared::failure`].
fn serve_core(kernel: &Kernel, core: usize, mut net: Transport, shared: &Shared) {
    // Can every receive queue wake this core? (Armed again before every nap: a wake is
    // one-shot.)
    let can_sleep = match net.stack.wake_on_receive(Some(kernel.core_index())) {
        Ok(()) => true,
        Err(error) => {
            kernel.log(format_args!(
                "httpd: core {core} polls when idle ({} cannot wake a core: {error})",
                shared.driver
            ));
            false
        }
    };
    let mut server = Server {
        kernel,
        shared,
        book: &shared.books[core],
        shutdown_asked_ns: None,
        connections: Connections::new(shared.places),
        date: DateClock::new(kernel.now_ns(), || kernel.unix_time_s()),
    };
    let result = server
        .serve(&mut net, can_sleep)
        .and_then(|()| server.shut_down(&mut net));
    if let Err(error) = result {
        kernel.log(format_args!("httpd: core {core} failed: {error}"));
        shared.failure.lock().get_or_insert(error);
        shared.stop.store(true, Ordering::Relaxed);
    }
    let c = server.book.counters.lock().clone();
    kernel.log(format_args!(
        "httpd: core {core} served {} answers on {} connections",
        c.requests(),
        c.accepted
    ));
    log_stack(kernel, core, shared.books.len(), &mut net.stack);
}

/// Logs what core `core`'s stack moved (named by core when `serving` is more than one).
fn log_stack(kernel: &Kernel, core: usize, serving: usize, stack: &mut Stack) {
    let who = if serving > 1 {
        format!("httpd: core {core}:")
    } else {
        String::from("httpd:")
    };
    let n = stack.counters();
    // Half-open connections given up: smoltcp's recycled sockets, or our own TCP's
    // evicted and expired entries.
    let own = stack.own_tcp().map(|own| own.stats().clone());
    let stale = own.as_ref().map_or(n.half_open_recycled, |s| {
        s.half_open_evicted + s.half_open_expired
    });
    kernel.log(format_args!(
        "{who} NIC: received {} frames ({} bytes), sent {} frames ({} bytes), {} replies copied ({} bytes), {} dropped, {} DHCP leases lost, {} refused, {} DHCP NAKs, {} DHCP answers refused, {} overloading their options, {} address conflicts ({} defended, {} given up, {} declined to the DHCP server); {stale} stale handshakes dropped",
        n.rx_frames,
        n.rx_bytes,
        n.tx_frames,
        n.tx_bytes,
        n.replies_copied,
        n.reply_bytes_copied,
        n.tx_dropped,
        n.dhcp_leases_lost,
        n.dhcp_leases_refused,
        n.dhcp_naks,
        n.dhcp_answers_refused,
        n.dhcp_answers_overloaded,
        n.address_conflicts,
        n.address_defences,
        n.addresses_given_up,
        n.dhcp_declines,
    ));
    if let Some(s) = own {
        let o = stack.own_counters();
        kernel.log(format_args!(
            "{who} rexo-tcp: {} segments in, {} out ({} retransmitted, {} pieces, {} super-segments cut by the NIC), {} SYNs, {} resets sent ({} to released connections evicted), {} bad segments, {} without a way back; ICMP: {} lowered an MSS ({} raised again after 10 min), {} noted unreachable, {} dropped, {} handed to another queue pair's stack ({} missed there)",
            s.segments_in,
            s.segments_out,
            s.segments_retransmitted,
            o.tx_pieces,
            o.tx_segmented,
            s.syns,
            s.rst_sent,
            s.released_evicted,
            s.truncated + s.bad_header + s.not_tcp + s.bad_checksum,
            o.no_neighbour,
            s.icmp_mss_lowered,
            s.mss_raised,
            s.icmp_unreachable,
            s.icmp_dropped,
            o.icmp_handed_on,
            o.icmp_missed,
        ));
    }
}

/// One core's server beside its stack.
struct Server<'a> {
    /// The kernel.
    kernel: &'a Kernel,
    /// What the cores share.
    shared: &'a Shared,
    /// This core's book.
    book: &'a Book,
    /// When this core saw the test hook's request to stop (its own or another core's).
    shutdown_asked_ns: Option<u64>,
    /// The open connections.
    connections: Connections,
    /// The `Date` field of this second's answers (formatted once per second on each
    /// core), none while the wall clock gives no time.
    date: DateClock,
}

/// The `Date` field of one core's answers of this second, from the kernel's wall clock
/// (RFC 9110 6.6.1: an origin server with a clock MUST send `Date`). While the clock
/// gives no time it is asked again once a second of the boot clock (the kernel reads
/// the CMOS clock again at most once a minute after a failed reading, answering the
/// calls between at once), so answers carry `Date` from the second it first answers.
struct DateClock {
    /// The field, once the clock gave a time.
    field: Option<DateField>,
    /// The boot clock's second in which the clock was last asked while it gave no time.
    asked_s: u64,
}

impl DateClock {
    /// The field at `now_ns` after boot, if `unix_time_s` (the wall clock) gives a time.
    fn new(now_ns: u64, unix_time_s: impl FnOnce() -> Result<u64, ApiError>) -> Self {
        Self {
            field: unix_time_s().ok().map(DateField::new),
            asked_s: now_ns / 1_000_000_000,
        }
    }

    /// Moves the field on to the time `unix_time_s` gives at `now_ns` after boot; without
    /// a field, asks for one only in a boot-clock second it has not asked in. Whether the
    /// clock gave its first time now.
    fn tick(&mut self, now_ns: u64, unix_time_s: impl FnOnce() -> Result<u64, ApiError>) -> bool {
        let second = now_ns / 1_000_000_000;
        match &mut self.field {
            Some(field) => {
                if let Ok(now_s) = unix_time_s() {
                    field.set(now_s);
                }
                false
            }
            None if second == self.asked_s => false,
            None => {
                self.asked_s = second;
                self.field = unix_time_s().ok().map(DateField::new);
                self.field.is_some()
            }
        }
    }

    /// The field of this second's answers; `None` while the clock gave no time.
    fn field(&self) -> Option<&DateField> {
        self.field.as_ref()
    }
}

impl Server<'_> {
    /// The poll loop: poll the stack, accept, move every connection on; until the test
    /// hook stops the cores and this core's answers are sent (or their grace ran out).
    fn serve(&mut self, net: &mut Transport, can_sleep: bool) -> Result<(), NetError> {
        let kernel = self.kernel;
        loop {
            let now = kernel.now_ns();
            let mut moved = net.stack.poll(now)?;
            moved |= self.connections.accept(net, &self.book.counters, now);
            moved |= self.step_clients(net, now);
            if self.shutdown_asked_ns.is_none() && self.shared.stop.load(Ordering::Relaxed) {
                self.shutdown_asked_ns = Some(now);
            }
            if let Some(asked) = self.shutdown_asked_ns
                && may_stop(self.connections.clients(), asked, now)
            {
                return Ok(());
            }
            if !moved && can_sleep {
                // A frame that came since the poll ends the nap at once: the arming raises
                // the wake for a frame already in the ring, and the kernel remembers a
                // wake that comes before the nap (`NetDevice::wake_on_receive`).
                let _ = net.stack.wake_on_receive(Some(kernel.core_index()));
                kernel.sleep_ns(IDLE_NAP_NS);
            }
        }
    }

    /// Moves every connection on, the status page and the test hook its dynamic pages;
    /// gives finished ones back to the stack. Whether any byte moved.
    fn step_clients(&mut self, tcp: &mut Transport, now_ns: u64) -> bool {
        // For the status page: the NIC's state as this poll round found it.
        let address = tcp.stack.address();
        *self.book.net.lock() = tcp.stack.counters();
        let open = self.connections.clients().len();
        self.book.open.store(open, Ordering::Relaxed);
        let kernel = self.kernel;
        if self.date.tick(now_ns, || kernel.unix_time_s()) {
            kernel.log(format_args!(
                "httpd: core {}: the wall clock answered: answers carry Date from now",
                kernel.core_index()
            ));
        }
        let Server {
            kernel,
            shared,
            book,
            shutdown_asked_ns,
            connections,
            date,
        } = self;
        let mut pages = |path: &[u8], head_only| {
            dynamic_page(
                path,
                head_only,
                shared.shutdown_hook,
                || shared.status_page(kernel, address),
                || {
                    shutdown_asked_ns.get_or_insert(now_ns);
                    shared.stop.store(true, Ordering::Relaxed);
                },
            )
        };
        let site = &shared.site;
        connections.step(tcp, site, &mut pages, date.field(), &book.counters, now_ns)
    }

    /// Closes every connection and lets the FINs go out.
    fn shut_down(&mut self, tcp: &mut Transport) -> Result<(), NetError> {
        let kernel = self.kernel;
        for client in self.connections.take_all() {
            if tcp.finish(client.into_link(), false) {
                self.book.counters.lock().drain_reset += 1;
            }
        }
        self.book.open.store(0, Ordering::Relaxed);
        let closing = kernel.now_ns();
        while kernel.now_ns() - closing < FINAL_FLUSH_NS {
            tcp.stack.poll(kernel.now_ns())?;
        }
        Ok(())
    }
}

/// httpd's dynamic pages: the status page at `/` (rendered by `status_page`, but not for
/// a head alone) and, with the test hook on, the answer to `GET /__shutdown`, which
/// calls `stop` first. Only a GET stops the server: HEAD is safe (RFC 9110 9.3.2), and
/// finds no page at the hook's path.
fn dynamic_page(
    path: &[u8],
    head_only: bool,
    shutdown_hook: bool,
    status_page: impl FnOnce() -> Vec<u8>,
    stop: impl FnOnce(),
) -> Page {
    match path {
        // HEAD / is answered without rendering the page.
        b"/" if head_only => Page::Unrendered {
            content_type: "text/html; charset=utf-8",
        },
        b"/" => Page::Ready {
            content_type: "text/html; charset=utf-8",
            body: status_page(),
        },
        SHUTDOWN_PATH if shutdown_hook && !head_only => {
            stop();
            Page::Ready {
                content_type: "text/plain; charset=utf-8",
                body: b"shutting down\n".to_vec(),
            }
        }
        _ => Page::Unhandled,
    }
}

/// Whether a core whose stop was asked at `asked_ns` may stop at `now_ns`: once every
/// client took its answers ([`Client::took_every_answer`]: acknowledged, not only queued,
/// so that on `rexo-tcp`, which takes a whole answer at once, they are not cut by the
/// final flush), or [`SHUTDOWN_GRACE_NS`] after the ask.
fn may_stop(clients: &[Client], asked_ns: u64, now_ns: u64) -> bool {
    clients.iter().all(Client::took_every_answer)
        || now_ns.saturating_sub(asked_ns) > SHUTDOWN_GRACE_NS
}

/// Logs why the app failed and says so to the kernel ([`NetError::exit_error`]).
fn failed(kernel: &Kernel, error: NetError) -> ApiError {
    kernel.log(format_args!("httpd: FAILED: {error}"));
    error.exit_error()
}
