//! `netdemo`: checks the TCP/IP library OS on the first network interface. It gets an
//! address by DHCP (and fails clearly when none comes) or from `ip=`, answers ping (the stack does),
//! and echoes TCP and UDP on port 7 until it has served [`CONNECTIONS`] TCP
//! connections or [`RUN_NS`] have passed; then it logs the stack's counters and returns.
//! It echoes [`MAX_ECHOES`] connections at once (more wait in the backlog), ends one
//! through which nothing moved for [`IDLE_TIMEOUT_NS`], and holds at most
//! [`MAX_CLOSING`] sockets of connections it closed (`Stack::close_bounded`), so that
//! idle or never-reading clients cannot make it hold sockets without bound.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use rexo_api::{ApiError, DeviceKind, Kernel};
use rexo_net::{Config, Connection, Ipv4Addr, Listener, NetError, Stack, TcpOptions, UdpOptions};

/// The echo port (RFC 862).
const ECHO_PORT: u16 = 7;
/// TCP connections served before the app returns.
pub const CONNECTIONS: usize = 500;
/// The longest the app runs.
pub const RUN_NS: u64 = 300_000_000_000;
/// How long to wait for a DHCP lease.
const DHCP_TIMEOUT_NS: u64 = 10_000_000_000;
/// Connections half-open or waiting to be accepted.
const BACKLOG: usize = 16;
/// Connections echoed at once; more wait in the backlog until one ends. Each holds
/// 256 KiB (`BUFFER`) each way, as each of the backlog's sockets does.
pub const MAX_ECHOES: usize = 8;
/// Connections ended in order whose sockets the stack may still hold (until their peer
/// took the last echo and the FIN); past it the next connection to end is reset.
pub const MAX_CLOSING: usize = 8;
/// A connection through which no byte moved either way for this long is ended (reset
/// if echoed bytes wait for its peer), so that idle clients do not hold places forever
/// (the stack resets a connection only once its peer sent nothing, not even a
/// keep-alive probe, for 60 s: `TcpOptions::timeout_ms`). Shorter than that, so that
/// the app, not the stack, decides how an idle connection ends.
pub const IDLE_TIMEOUT_NS: u64 = 30_000_000_000;
/// Each connection's buffer each way.
const BUFFER: usize = 256 * 1024;
/// QEMU user networking's router, which answers pings.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// Pings sent to the router.
const PINGS: u16 = 5;
/// The data each echo request carries.
const PING_DATA: &[u8] = b"rexo netdemo";
/// How long to wait for each echo reply.
const PING_TIMEOUT_NS: u64 = 1_000_000_000;
/// Bytes moved per read/write step of one connection.
const CHUNK: usize = 16 * 1024;

/// One accepted connection and the bytes read from it that did not fit in its send
/// buffer yet.
struct Echo {
    /// The connection.
    connection: Connection,
    /// Bytes read and not yet written back.
    unsent: Vec<u8>,
    /// Bytes echoed.
    bytes: u64,
    /// When it was accepted.
    started_ns: u64,
    /// Bytes written that waited for the peer's acknowledgment after the last step.
    unacknowledged: usize,
    /// When a byte last moved: read from the peer, written back, or acknowledged.
    moved_ns: u64,
}

/// The app's entry point.
pub fn main(kernel: &Kernel) -> Result<(), ApiError> {
    let Some(device) = kernel
        .devices()
        .into_iter()
        .find(|d| d.kind == DeviceKind::Net)
    else {
        kernel.log(format_args!("netdemo: FAILED: no network interface"));
        return Err(ApiError::NoSuchDevice);
    };
    kernel.log(format_args!(
        "netdemo: nic {}: {} at {}: {}",
        device.index, device.driver, device.address, device.about
    ));
    let nic = kernel.open_net(device.index)?;
    let config = Config::from_kernel(kernel, DHCP_TIMEOUT_NS);
    let started = kernel.now_ns();
    let mut stack = Stack::new(kernel, nic, 0, config).map_err(|error| failed(kernel, error))?;
    if let Some((address, prefix)) = stack.address() {
        kernel.log(format_args!(
            "netdemo: address {address}/{prefix} {} in {} ms",
            config.how(),
            (kernel.now_ns() - started) / 1_000_000
        ));
    }
    ping_gateway(kernel, &mut stack).map_err(|error| failed(kernel, error))?;
    serve(kernel, &mut stack).map_err(|error| failed(kernel, error))?;
    let c = stack.counters();
    kernel.log(format_args!(
        "netdemo: received {} frames ({} bytes, processed in place); sent {} frames ({} bytes), of which {} replies ({} bytes) copied from staging; {} dropped, {} DHCP leases lost, {} refused, {} address conflicts ({} defended, {} given up, {} declined to the DHCP server)",
        c.rx_frames,
        c.rx_bytes,
        c.tx_frames,
        c.tx_bytes,
        c.replies_copied,
        c.reply_bytes_copied,
        c.tx_dropped,
        c.dhcp_leases_lost,
        c.dhcp_leases_refused,
        c.address_conflicts,
        c.address_defences,
        c.addresses_given_up,
        c.dhcp_declines
    ));
    kernel.log(format_args!("netdemo: done"));
    Ok(())
}

/// Logs why the app failed and says so to the kernel ([`NetError::exit_error`]).
fn failed(kernel: &Kernel, error: NetError) -> ApiError {
    kernel.log(format_args!("netdemo: FAILED: {error}"));
    error.exit_error()
}

/// Pings the router and logs the round trips; a router that does not answer (another
/// network than QEMU's) is only noted.
fn ping_gateway(kernel: &Kernel, stack: &mut Stack) -> Result<(), NetError> {
    let ping = stack.ping_open(0x7e70);
    let mut answered = 0;
    for seq in 0..PINGS {
        let sent = kernel.now_ns();
        stack.ping_send(&ping, GATEWAY, seq, PING_DATA)?;
        while kernel.now_ns() - sent < PING_TIMEOUT_NS {
            stack.poll(kernel.now_ns())?;
            let reply = match stack.ping_recv(&ping, PING_DATA) {
                Ok(reply) => reply,
                // The router answered no ARP: the requests to it the stack held were
                // dropped unsent (this one, if queued yet, and any before it).
                Err(error) => {
                    kernel.log(format_args!("netdemo: seq {seq}: {error}"));
                    break;
                }
            };
            if let Some(reply) = reply
                && reply.seq == seq
            {
                if !reply.intact {
                    kernel.log(format_args!(
                        "netdemo: seq {seq}: corrupt reply from {} ({} data bytes, not the {} sent)",
                        reply.from,
                        reply.len,
                        PING_DATA.len()
                    ));
                    break;
                }
                answered += 1;
                kernel.log(format_args!(
                    "netdemo: {} bytes from {}: seq {seq}, {} us",
                    reply.len,
                    reply.from,
                    (kernel.now_ns() - sent) / 1000
                ));
                break;
            }
        }
    }
    stack.ping_close(ping)?;
    kernel.log(format_args!(
        "netdemo: ping {GATEWAY}: {answered} of {PINGS} answered"
    ));
    Ok(())
}

/// The echo servers, until enough connections were served or the time is up.
fn serve(kernel: &Kernel, stack: &mut Stack) -> Result<(), NetError> {
    let mut echoes = Echoes::listen(stack)?;
    let udp = stack.udp_bind(ECHO_PORT, UdpOptions::default())?;
    kernel.log(format_args!(
        "netdemo: echoing TCP and UDP on port {ECHO_PORT} until {CONNECTIONS} connections or {} s",
        RUN_NS / 1_000_000_000
    ));
    let start = kernel.now_ns();
    let mut datagrams = 0u64;
    let mut datagram = vec![0u8; 65536];
    while echoes.served < CONNECTIONS && kernel.now_ns() - start < RUN_NS {
        stack.poll(kernel.now_ns())?;
        echoes.accept(stack, kernel.now_ns())?;
        echoes.step(stack, kernel.now_ns(), &mut |bytes, ns| {
            kernel.log(format_args!(
                "netdemo: echoed {bytes} bytes in {} ms ({} KiB/s each way)",
                ns / 1_000_000,
                bytes * 1_000_000_000 / 1024 / ns
            ));
        })?;
        while let Some((len, from)) = stack.recv_from(&udp, &mut datagram)? {
            datagrams += 1;
            // A full send buffer drops the echo, as a busy UDP server would.
            if let Err(error @ (NetError::Device(_) | NetError::NoAddress)) =
                stack.send_to(&udp, &datagram[..len], from)
            {
                return Err(error);
            }
        }
    }
    // Let the last FINs and echoes go out.
    let linger = kernel.now_ns();
    while kernel.now_ns() - linger < 200_000_000 {
        stack.poll(kernel.now_ns())?;
    }
    kernel.log(format_args!(
        "netdemo: served {} TCP connections ({} ended idle, {} reset at their end) and {datagrams} UDP datagrams in {} ms",
        echoes.served,
        echoes.idle_ended,
        echoes.reset,
        (kernel.now_ns() - start) / 1_000_000
    ));
    Ok(())
}

/// The TCP echo server: its listener and the connections it echoes.
struct Echoes {
    /// The listener on [`ECHO_PORT`].
    listener: Listener,
    /// The connections echoed, at most [`MAX_ECHOES`].
    echoes: Vec<Echo>,
    /// Connections ended: their peer closed, they broke, or they were idle.
    served: usize,
    /// Of those, ended after [`IDLE_TIMEOUT_NS`] without a byte moved.
    idle_ended: usize,
    /// Of those, reset rather than closed in order (`Stack::close_bounded`).
    reset: usize,
}

impl Echoes {
    /// Listens on [`ECHO_PORT`] of `stack`.
    fn listen(stack: &mut Stack) -> Result<Echoes, NetError> {
        let options = TcpOptions {
            receive_buffer: BUFFER,
            send_buffer: BUFFER,
            ..TcpOptions::default()
        };
        Ok(Echoes {
            listener: stack.listen(ECHO_PORT, BACKLOG, options)?,
            echoes: Vec::new(),
            served: 0,
            idle_ended: 0,
            reset: 0,
        })
    }

    /// Accepts the connections waiting while fewer than [`MAX_ECHOES`] are echoed
    /// ([`NetError::ForeignHandle`] if `stack` is not the one it listens on).
    fn accept(&mut self, stack: &mut Stack, now_ns: u64) -> Result<(), NetError> {
        while self.echoes.len() < MAX_ECHOES {
            let Some(connection) = stack.accept(&self.listener)? else {
                break;
            };
            self.echoes.push(Echo {
                connection,
                unsent: Vec::new(),
                bytes: 0,
                started_ns: now_ns,
                unacknowledged: 0,
                moved_ns: now_ns,
            });
        }
        Ok(())
    }

    /// Echoes what every connection's peer sent; ends those whose peer closed (once all
    /// was echoed), that broke, or through which no byte moved (read, written back or
    /// acknowledged) for [`IDLE_TIMEOUT_NS`], each with `Stack::close_bounded` (an idle
    /// one with echoed bytes its peer has not taken is reset). `transfer` is told the bytes and nanoseconds of each one
    /// ended that echoed 1 MiB or more. [`NetError::ForeignHandle`] if `stack` is not the
    /// one it accepted on.
    fn step(
        &mut self,
        stack: &mut Stack,
        now_ns: u64,
        transfer: &mut dyn FnMut(u64, u64),
    ) -> Result<(), NetError> {
        let mut index = 0;
        while index < self.echoes.len() {
            let echo = &mut self.echoes[index];
            let acknowledged = stack.unacknowledged(&echo.connection)? < echo.unacknowledged;
            let before = (echo.bytes, echo.unsent.len());
            let finished = echo_bytes(stack, echo);
            echo.unacknowledged = stack.unacknowledged(&echo.connection)?;
            if acknowledged || (echo.bytes, echo.unsent.len()) != before {
                echo.moved_ns = now_ns;
            }
            let idle = !finished && now_ns.saturating_sub(echo.moved_ns) > IDLE_TIMEOUT_NS;
            if !finished && !idle {
                index += 1;
                continue;
            }
            let done = self.echoes.swap_remove(index);
            self.served += 1;
            self.idle_ended += usize::from(idle);
            if done.bytes >= 1 << 20 {
                transfer(done.bytes, now_ns.saturating_sub(done.started_ns).max(1));
            }
            if stack.close_bounded(done.connection, idle, MAX_CLOSING)? {
                self.reset += 1;
            }
        }
        Ok(())
    }
}

/// Moves what `echo`'s peer sent back to it, counting the bytes written back; true once
/// the peer has closed and everything was echoed (or the connection broke).
fn echo_bytes(stack: &mut Stack, echo: &mut Echo) -> bool {
    loop {
        if !echo.unsent.is_empty() {
            match stack.write(&echo.connection, &echo.unsent) {
                Ok(0) => return false,
                Ok(written) => {
                    echo.bytes += written as u64;
                    echo.unsent.drain(..written);
                    continue;
                }
                Err(_) => return true,
            }
        }
        let unsent = &mut echo.unsent;
        match stack.read_with(&echo.connection, |data| {
            let take = data.len().min(CHUNK);
            unsent.extend_from_slice(&data[..take]);
            take
        }) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests;
