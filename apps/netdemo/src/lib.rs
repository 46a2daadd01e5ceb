//! `netdemo`: checks the TCP/IP library OS on the first network interface. It gets an
//! address by DHCP (and fails clearly when none comes) or from `ip=`, answers ping (the stack does),
//! and echoes TCP and UDP on port 7 until it has served [`CONNECTIONS`] TCP
//! connections or [`RUN_NS`] have passed; then it logs the stack's counters and returns.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use rexo_api::{ApiError, DeviceKind, Kernel};
use rexo_net::{Config, Connection, Ipv4Addr, NetError, Stack, TcpOptions, UdpOptions};

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
        "netdemo: received {} frames ({} bytes, processed in place); sent {} frames ({} bytes), of which {} replies ({} bytes) copied from staging; {} dropped",
        c.rx_frames,
        c.rx_bytes,
        c.tx_frames,
        c.tx_bytes,
        c.replies_copied,
        c.reply_bytes_copied,
        c.tx_dropped
    ));
    kernel.log(format_args!("netdemo: done"));
    Ok(())
}

/// Logs why the app failed and says so to the kernel.
fn failed(kernel: &Kernel, error: NetError) -> ApiError {
    kernel.log(format_args!("netdemo: FAILED: {error}"));
    match error {
        NetError::Device(error) => ApiError::Device(error),
        _ => ApiError::AppFailed(1),
    }
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
            if let Some(reply) = stack.ping_recv(&ping, PING_DATA)
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
    stack.ping_close(ping);
    kernel.log(format_args!(
        "netdemo: ping {GATEWAY}: {answered} of {PINGS} answered"
    ));
    Ok(())
}

/// The echo servers, until enough connections were served or the time is up.
fn serve(kernel: &Kernel, stack: &mut Stack) -> Result<(), NetError> {
    let options = TcpOptions {
        receive_buffer: 256 * 1024,
        send_buffer: 256 * 1024,
        ..TcpOptions::default()
    };
    let listener = stack.listen(ECHO_PORT, BACKLOG, options)?;
    let udp = stack.udp_bind(ECHO_PORT, UdpOptions::default())?;
    kernel.log(format_args!(
        "netdemo: echoing TCP and UDP on port {ECHO_PORT} until {CONNECTIONS} connections or {} s",
        RUN_NS / 1_000_000_000
    ));
    let start = kernel.now_ns();
    let mut echoes: Vec<Echo> = Vec::new();
    let mut served = 0;
    let mut datagrams = 0u64;
    let mut datagram = vec![0u8; 65536];
    while served < CONNECTIONS && kernel.now_ns() - start < RUN_NS {
        stack.poll(kernel.now_ns())?;
        while let Some(connection) = stack.accept(&listener) {
            echoes.push(Echo {
                connection,
                unsent: Vec::new(),
                bytes: 0,
                started_ns: kernel.now_ns(),
            });
        }
        let mut index = 0;
        while index < echoes.len() {
            if echo(stack, &mut echoes[index]) {
                let done = echoes.swap_remove(index);
                served += 1;
                if done.bytes >= 1 << 20 {
                    let ns = (kernel.now_ns() - done.started_ns).max(1);
                    kernel.log(format_args!(
                        "netdemo: echoed {} bytes in {} ms ({} KiB/s each way)",
                        done.bytes,
                        ns / 1_000_000,
                        done.bytes * 1_000_000_000 / 1024 / ns
                    ));
                }
                stack.close(done.connection);
            } else {
                index += 1;
            }
        }
        while let Some((len, from)) = stack.recv_from(&udp, &mut datagram) {
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
        "netdemo: served {served} TCP connections and {datagrams} UDP datagrams in {} ms",
        (kernel.now_ns() - start) / 1_000_000
    ));
    Ok(())
}

/// Moves what `echo`'s peer sent back to it; true once the peer has closed and
/// everything was echoed (or the connection broke).
fn echo(stack: &mut Stack, echo: &mut Echo) -> bool {
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
