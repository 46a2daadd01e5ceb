//! `httpd`: the web server, built the way Cheetah was on the MIT exokernel. It takes the
//! first network interface, gets an address by DHCP (or from `ip=`), and serves on TCP port 80 the site
//! built into the image (`apps/httpd/site/`, plus a 10 MiB file generated at start)
//! through the `rexo-http` engine: HTTP/1.1 with keep-alive and pipelining, prebuilt
//! response heads, `ETag`/`If-None-Match`, `Range`, bounded heads, and a live status
//! page at `/` (cores, memory, devices, answers by status, connections, NIC traffic).
//!
//! The port is served by Rexo's own TCP, `rexo-tcp` ([`DEFAULT_TCP`]): answers are
//! queued as pieces of the file cache and sent and retransmitted from there with their
//! checksums precomputed, as in Cheetah. `httpd-smoltcp` and `httpd-test-smoltcp`
//! ([`main_smoltcp`], [`main_test_smoltcp`]) serve on smoltcp's TCP instead, for
//! comparison (docs/network.md has the measurement that chose).
//!
//! One core runs the server as a poll loop: poll the stack, accept, move every
//! connection on as far as it goes without waiting. A connection that cannot move (a
//! client that stopped reading, or vanished mid-answer) holds only itself up. When
//! nothing moved, the core sleeps until a frame arrives (`wake_on_receive`), or polls
//! on when the NIC cannot wake it.
//!
//! `httpd` runs until the machine stops. `httpd-test` ([`main_test`]) is the same server
//! with one test hook: a `GET /__shutdown` is answered and then the app returns, so the
//! test harness can end the run with the app's own verdict. The hook lives in a
//! separate app entry because apps get no arguments: the server a user runs cannot be
//! stopped by any client.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod client;
mod site;
mod status;
mod transport;

#[cfg(test)]
mod tests;

use alloc::format;
use alloc::vec::Vec;
use core::cell::RefCell;

use rexo_api::{ApiError, DeviceKind, Kernel};
use rexo_http::{Page, Site};
use rexo_net::rexo_tcp;
use rexo_net::{NetError, Stack, TcpOptions};

use client::{Client, Ending, Progress};
use status::{Counters, Snapshot};
pub use transport::Tcp;
use transport::Transport;

/// The HTTP port.
pub const HTTP_PORT: u16 = 80;
/// Connections half-open or waiting to be accepted.
pub const BACKLOG: usize = 64;
/// Connections served at once; more wait in the backlog until one ends. With
/// [`BACKLOG`] and `TCP_OPTIONS` it bounds the buffers at about 11 MiB (60 KiB per client, 48 KiB per listening socket), beside
/// the 10 MiB generated file, within the 32 MiB kernel heap of a 256 MiB machine.
pub const MAX_CLIENTS: usize = 128;
/// The test hook's path (only in `httpd-test`).
pub const SHUTDOWN_PATH: &[u8] = b"/__shutdown";
/// How long to wait for a DHCP lease.
const DHCP_TIMEOUT_NS: u64 = 10_000_000_000;
/// The longest nap when idle: smoltcp's timers (retransmission, delayed ACKs) need a
/// poll now and then even when no frame comes.
const IDLE_NAP_NS: u64 = 2_000_000;
/// After the shutdown hook, how long answers still being sent get to finish.
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

/// `rexo-tcp`'s settings: the buffers and bounds of [`TCP_OPTIONS`], [`BACKLOG`] and
/// [`MAX_CLIENTS`], and the initial sequence numbers keyed by `secret`.
fn rexo_tcp_config(secret: u64) -> rexo_tcp::Config {
    rexo_tcp::Config {
        recv_buffer: TCP_OPTIONS.receive_buffer,
        backlog: BACKLOG,
        max_connections: MAX_CLIENTS + BACKLOG,
        secret,
        ..rexo_tcp::Config::default()
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

/// Sets up the NIC, the stack and the site, then serves with `tcp`.
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
    let (nic, config) = rexo_net::attach(kernel, device.index, &[&filter], DHCP_TIMEOUT_NS)
        .map_err(|error| failed(kernel, error))?;
    let started = kernel.now_ns();
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
    let mut stack = Stack::new(kernel, nic, 0, config).map_err(|error| failed(kernel, error))?;
    // Apps have no entropy source yet: the boot-relative time and the MAC key the
    // initial sequence numbers, as for smoltcp's seed (`rexo-net`).
    let mac = stack.mac();
    let secret = kernel.now_ns().rotate_left(17)
        ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0x5e, 0xed]);
    // Can every receive queue wake this core? (Armed again before every nap: a wake is
    // one-shot.)
    let can_sleep = match stack.wake_on_receive(Some(kernel.core_index())) {
        Ok(()) => true,
        Err(error) => {
            kernel.log(format_args!(
                "httpd: polling when idle ({} cannot wake a core: {error})",
                device.driver
            ));
            false
        }
    };
    let mut net = Transport::serve(
        stack,
        tcp,
        HTTP_PORT,
        (BACKLOG, TCP_OPTIONS),
        rexo_tcp_config(secret),
    )
    .map_err(|error| failed(kernel, error))?;
    if let Some((address, prefix)) = net.stack.address() {
        kernel.log(format_args!(
            "httpd: serving http://{address}:{HTTP_PORT}/ ({address}/{prefix} {}) on {} with {}{}",
            config.how(),
            device.driver,
            tcp.name(),
            if shutdown_hook {
                ", test hook GET /__shutdown on"
            } else {
                ""
            }
        ));
    }
    let mut server = Server {
        kernel,
        site,
        counters: RefCell::new(Counters::default()),
        started_ns: started,
        shutdown_hook,
        shutdown_asked_ns: None,
        clients: Vec::new(),
        nic_index: device.index,
    };
    loop {
        let now = kernel.now_ns();
        let mut moved = net.stack.poll(now).map_err(|error| failed(kernel, error))?;
        while server.clients.len() < MAX_CLIENTS {
            let Some(connection) = net.accept() else {
                break;
            };
            server.counters.get_mut().accepted += 1;
            server.clients.push(Client::new(connection, now));
            moved = true;
        }
        moved |= server.step_clients(&mut net, now);
        if let Some(asked) = server.shutdown_asked_ns
            && (server.clients.iter().all(Client::is_between_answers)
                || now - asked > SHUTDOWN_GRACE_NS)
        {
            break;
        }
        if !moved && can_sleep {
            // A frame that came between the poll and the arming wakes the nap at once
            // (the kernel remembers it); naps are short besides.
            let _ = net.stack.wake_on_receive(Some(kernel.core_index()));
            kernel.sleep_ns(IDLE_NAP_NS);
        }
    }
    server
        .shut_down(&mut net)
        .map_err(|error| failed(kernel, error))?;
    Ok(())
}

/// The server's state beside the stack.
struct Server<'k> {
    /// The kernel.
    kernel: &'k Kernel,
    /// The files and request bounds.
    site: Site,
    /// What was served: read by the status page while a step serves, updated by the
    /// step around it, never both at once.
    counters: RefCell<Counters>,
    /// When the app started.
    started_ns: u64,
    /// Whether `GET /__shutdown` stops the server.
    shutdown_hook: bool,
    /// When the test hook asked the server to stop.
    shutdown_asked_ns: Option<u64>,
    /// The open connections.
    clients: Vec<Client>,
    /// The network interface's number (for the status page's packet filters).
    nic_index: usize,
}

impl Server<'_> {
    /// Moves every connection on; gives finished ones back to the stack. Whether any
    /// byte moved.
    fn step_clients(&mut self, tcp: &mut Transport, now_ns: u64) -> bool {
        let mut moved = false;
        let mut index = 0;
        // For the status page: the NIC's state as this poll round found it.
        let (address, net) = (tcp.stack.address(), tcp.stack.counters());
        while index < self.clients.len() {
            let Server {
                kernel,
                site,
                counters,
                started_ns,
                shutdown_hook,
                shutdown_asked_ns,
                clients,
                nic_index,
            } = self;
            let open = clients.len();
            let client = &mut clients[index];
            let mut pages = |path: &[u8]| match path {
                b"/" => {
                    let devices = kernel.devices();
                    let memory = kernel.memory();
                    Page::Ready {
                        content_type: "text/html; charset=utf-8",
                        body: status::render(&Snapshot {
                            cores: kernel.cores(),
                            memory_usable: memory.usable,
                            memory_free: memory.free,
                            devices: &devices,
                            uptime_ns: kernel.now_ns() - *started_ns,
                            address,
                            net,
                            open,
                            counters: &counters.borrow(),
                            sharing: kernel.net_sharing(*nic_index).ok().flatten(),
                        }),
                    }
                }
                SHUTDOWN_PATH if *shutdown_hook => {
                    shutdown_asked_ns.get_or_insert(now_ns);
                    Page::Ready {
                        content_type: "text/plain; charset=utf-8",
                        body: b"shutting down\n".to_vec(),
                    }
                }
                _ => Page::Unhandled,
            };
            match client.step(tcp, site, &mut pages, counters, now_ns) {
                Progress::Open { moved: step_moved } => {
                    moved |= step_moved;
                    index += 1;
                }
                Progress::Finished(ending) => {
                    let link = clients.swap_remove(index).into_link();
                    tcp.finish(link, ending == Ending::Abort);
                    moved = true;
                }
            }
        }
        moved
    }

    /// Closes every connection, lets the FINs go out, and logs what was served.
    fn shut_down(self, tcp: &mut Transport) -> Result<(), NetError> {
        let kernel = self.kernel;
        for client in self.clients {
            tcp.finish(client.into_link(), false);
        }
        let closing = kernel.now_ns();
        while kernel.now_ns() - closing < FINAL_FLUSH_NS {
            tcp.stack.poll(kernel.now_ns())?;
        }
        let c = self.counters.borrow();
        kernel.log(format_args!(
            "httpd: {} answers {:?} on {} connections ({} peers gone mid-answer, {} idle closed, {} reset while lingering); {} head and {} body bytes",
            c.requests(),
            c.by_status,
            c.accepted,
            c.broken,
            c.idle_closed,
            c.linger_reset,
            c.head_bytes,
            c.body_bytes
        ));
        let stack = &mut tcp.stack;
        let n = stack.counters();
        // Half-open connections given up: smoltcp's recycled sockets, or our own TCP's
        // evicted and expired entries.
        let own = stack.own_tcp().map(|own| own.stats().clone());
        let stale = own.as_ref().map_or(n.half_open_recycled, |s| {
            s.half_open_evicted + s.half_open_expired
        });
        kernel.log(format_args!(
            "httpd: NIC: received {} frames ({} bytes), sent {} frames ({} bytes), {} replies copied ({} bytes), {} dropped; {stale} stale handshakes dropped",
            n.rx_frames,
            n.rx_bytes,
            n.tx_frames,
            n.tx_bytes,
            n.replies_copied,
            n.reply_bytes_copied,
            n.tx_dropped,
        ));
        if let Some(s) = own {
            let o = stack.own_counters();
            kernel.log(format_args!(
                "httpd: rexo-tcp: {} segments in, {} out ({} retransmitted, {} pieces, {} super-segments cut by the NIC), {} SYNs, {} resets sent, {} bad segments, {} without a way back",
                s.segments_in,
                s.segments_out,
                s.segments_retransmitted,
                o.tx_pieces,
                o.tx_segmented,
                s.syns,
                s.rst_sent,
                s.truncated + s.bad_header + s.not_tcp + s.bad_checksum,
                o.no_neighbour
            ));
        }
        kernel.log(format_args!("httpd: done"));
        Ok(())
    }
}

/// Logs why the app failed and says so to the kernel.
fn failed(kernel: &Kernel, error: NetError) -> ApiError {
    kernel.log(format_args!("httpd: FAILED: {error}"));
    match error {
        NetError::Device(error) => ApiError::Device(error),
        NetError::Kernel(error) => error,
        _ => ApiError::AppFailed(1),
    }
}
