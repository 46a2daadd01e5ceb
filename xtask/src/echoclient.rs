//! The `net::netdemo` case's client: drives the `netdemo` app (TCP and UDP echo on
//! port 7 over the TCP/IP library OS) through QEMU user networking, checking every echo
//! byte for byte. It makes exactly the connections the app serves before it ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::Result;
use crate::netclient::{Client, Forwards};

/// The echo port in the guest.
pub const PORT: u16 = 7;
/// Connections the app serves before it returns (`rexo_netdemo::CONNECTIONS`).
const CONNECTIONS: usize = rexo_netdemo::CONNECTIONS;
/// The last connection's transfer.
const BIG: usize = 1 << 20;

/// The client of `net::netdemo`.
pub const NETDEMO: Client = Client {
    name: "netdemo client",
    needs: &[],
    after: "netdemo: echoing TCP and UDP",
    run,
};

/// Bytes `0..len` of a deterministic pattern of `seed`.
fn payload(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(7)) as u8)
        .collect()
}

/// Sends `data` on a fresh connection and checks the echo; QEMU's user networking
/// accepts forwarded connections with a backlog of one, so a connection reset before any
/// byte came back is tried again (it never reached the guest).
fn echo_tcp(port: u16, data: &[u8]) -> Result<()> {
    for attempt in 0..5 {
        let mut stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let writer = {
            let mut out = stream.try_clone().map_err(|e| e.to_string())?;
            let data = data.to_vec();
            std::thread::spawn(move || out.write_all(&data))
        };
        let mut back = vec![0u8; data.len()];
        let got = stream.read_exact(&mut back);
        let _ = writer.join();
        match got {
            Ok(()) if back == data => return Ok(()),
            Ok(()) => {
                let at = back.iter().zip(data).position(|(a, b)| a != b).unwrap_or(0);
                return Err(format!("a {}-byte echo differs at byte {at}", data.len()));
            }
            Err(e) if attempt < 4 && e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(e) => return Err(format!("a {}-byte echo: {e}", data.len())),
        }
    }
    Err("connections kept being reset before reaching the guest".into())
}

/// UDP datagrams the client sends.
const DATAGRAMS: usize = 50;

/// How long the client waits for each datagram's echo before it sends the next.
const UDP_WAIT: Duration = Duration::from_millis(500);

/// Sends [`DATAGRAMS`] datagrams to `to` from `socket`, each waited for [`UDP_WAIT`],
/// and returns how many came back. An echo that comes after its wait (a loaded host
/// delays it) is one of an earlier datagram, counted for that one while the client
/// waits for the next, not compared with the next: each datagram's bytes are its own. A
/// second echo of one datagram is an error: neither QEMU's user networking nor loopback
/// duplicates datagrams, so it is the guest's (a used-ring entry taken twice).
fn udp_echoes(socket: &UdpSocket, to: SocketAddr) -> Result<usize> {
    let mut sent: Vec<Vec<u8>> = Vec::with_capacity(DATAGRAMS);
    let mut echoed = [false; DATAGRAMS];
    for (i, len) in [1usize, 64, 512, 1000, 1472]
        .iter()
        .cycle()
        .take(DATAGRAMS)
        .enumerate()
    {
        sent.push(payload(i, *len));
        socket.send_to(&sent[i], to).map_err(|e| e.to_string())?;
        // UDP may lose a datagram on the way; an echo of bytes never sent is an error,
        // a missing one is not.
        let deadline = Instant::now() + UDP_WAIT;
        while !echoed[i] {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut back = [0u8; 2048];
            let Ok((n, _)) = socket.recv_from(&mut back) else {
                break;
            };
            let Some(of) = sent.iter().position(|data| data[..] == back[..n]) else {
                return Err(format!(
                    "a {n}-byte UDP echo is none of the datagrams sent (waiting for datagram {i}, {len} bytes)"
                ));
            };
            if std::mem::replace(&mut echoed[of], true) {
                return Err(format!("datagram {of}'s echo came twice"));
            }
        }
    }
    Ok(echoed.iter().filter(|&&back| back).count())
}

/// The whole check.
fn run(ports: &Forwards) -> Result<Vec<String>> {
    let tcp = ports.tcp(PORT)?.port();
    let udp = ports.udp(PORT)?;
    let socket = UdpSocket::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
    let udp_ok = udp_echoes(&socket, udp)?;
    if udp_ok < 40 {
        return Err(format!(
            "only {udp_ok} of {DATAGRAMS} UDP datagrams came back"
        ));
    }
    let started = Instant::now();
    for i in 0..CONNECTIONS - 1 {
        echo_tcp(tcp, &payload(i, 1 + (i * 37) % 2000))?;
    }
    let short = started.elapsed();
    let big = Instant::now();
    echo_tcp(tcp, &payload(CONNECTIONS, BIG))?;
    let big = big.elapsed();
    Ok(vec![format!(
        "{udp_ok} of {DATAGRAMS} UDP echoes; {} TCP connections echoed byte-exact in {} ms ({:.0}/s); 1 MiB echoed in {} ms",
        CONNECTIONS - 1,
        short.as_millis(),
        (CONNECTIONS - 1) as f64 / short.as_secs_f64(),
        big.as_millis()
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_udp_echo_is_not_taken_for_the_next_datagrams() {
        // An echo server that holds the echo of datagram 0 until datagram 1 came (the
        // client's wait for it over), then sends both: datagram 0's echo is late.
        let server = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let to = server.local_addr().unwrap();
        let echoer = std::thread::spawn(move || {
            let mut held = None;
            let mut buffer = [0u8; 2048];
            for k in 0..DATAGRAMS {
                let (n, from) = server.recv_from(&mut buffer).unwrap();
                if k == 0 {
                    held = Some(buffer[..n].to_vec());
                    continue;
                }
                if let Some(late) = held.take() {
                    server.send_to(&late, from).unwrap();
                }
                server.send_to(&buffer[..n], from).unwrap();
            }
        });
        let socket = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        assert_eq!(udp_echoes(&socket, to), Ok(DATAGRAMS));
        echoer.join().unwrap();
    }

    #[test]
    fn a_second_echo_of_one_datagram_is_an_error() {
        // An echo server that echoes datagram 0 twice and every other once, until an
        // empty datagram (the client sends none) ends it.
        let server = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let to = server.local_addr().unwrap();
        let echoer = std::thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            for k in 0.. {
                let (n, from) = server.recv_from(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                server.send_to(&buffer[..n], from).unwrap();
                if k == 0 {
                    server.send_to(&buffer[..n], from).unwrap();
                }
            }
        });
        let socket = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        assert_eq!(
            udp_echoes(&socket, to),
            Err("datagram 0's echo came twice".to_string())
        );
        socket.send_to(&[], to).unwrap();
        echoer.join().unwrap();
    }
}
