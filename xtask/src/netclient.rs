//! Test cases that talk to a guest's network service from the host: QEMU user
//! networking (`-netdev user`, with DHCP from QEMU's built-in server) forwards free
//! host ports on 127.0.0.1 to the guest's ports ([`Forwards`]), and a [`Client`]
//! function, run on its own thread once the guest says it is serving, checks the
//! service through them with `std::net`. Used by the `kv::` cases (`kvtests.rs`); httpd's
//! cases plug in the same way.

use crate::Result;
use crate::deps::Need;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A host-side check of a guest's network service: [`Client::run`] starts on its own
/// thread as soon as a serial line contains [`Client::after`], gets the forwarded
/// ports, and returns notes for the log (figures, what was checked) or why it failed.
/// It must leave the guest able to end (for `kv`: send `shutdown`), even after a
/// failure, so that the case does not wait for its timeout.
#[derive(Clone, Copy)]
pub struct Client {
    /// Names the client in messages.
    pub name: &'static str,
    /// Host tools the client runs (installed before QEMU starts; when that is impossible,
    /// e.g. not root, the case is skipped and says why).
    pub needs: &'static [Need],
    /// The serial text that says the service is up.
    pub after: &'static str,
    /// The check.
    pub run: fn(&Forwards) -> Result<Vec<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.name)
    }
}

impl PartialEq for Client {
    fn eq(&self, other: &Self) -> bool {
        // Two clients are the same check when they have the same name; function
        // addresses are not reliable to compare.
        self.name == other.name && self.after == other.after && self.needs == other.needs
    }
}

impl Eq for Client {}

/// One forwarded port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// UDP rather than TCP.
    pub udp: bool,
    /// The port on the host's 127.0.0.1.
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
}

/// The ports of one user-networking interface forwarded to the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwards(pub Vec<Forward>);

impl Forwards {
    /// Forwards each of `tcp` and `udp` (guest ports) from a free host port.
    pub fn free(tcp: &[u16], udp: &[u16]) -> Result<Self> {
        let mut forwards = Vec::new();
        for &guest in tcp {
            forwards.push(Forward {
                udp: false,
                host: crate::gdb::free_port()?,
                guest,
            });
        }
        for &guest in udp {
            let host = UdpSocket::bind(("127.0.0.1", 0))
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .map_err(|e| format!("no free UDP port: {e}"))?;
            forwards.push(Forward {
                udp: true,
                host,
                guest,
            });
        }
        Ok(Self(forwards))
    }

    /// The host address forwarded to guest TCP port `guest`.
    pub fn tcp(&self, guest: u16) -> Result<SocketAddr> {
        self.find(false, guest)
    }

    /// The host address forwarded to guest UDP port `guest`.
    pub fn udp(&self, guest: u16) -> Result<SocketAddr> {
        self.find(true, guest)
    }

    fn find(&self, udp: bool, guest: u16) -> Result<SocketAddr> {
        self.0
            .iter()
            .find(|f| f.udp == udp && f.guest == guest)
            .map(|f| SocketAddr::from(([127, 0, 0, 1], f.host)))
            .ok_or_else(|| {
                let kind = if udp { "UDP" } else { "TCP" };
                format!("guest {kind} port {guest} is not forwarded")
            })
    }

    /// QEMU's arguments: interface `id` on user networking with these forwards, as a
    /// `model` device (e.g. `virtio-net-pci`).
    pub fn qemu_args(&self, id: usize, model: &str) -> Vec<String> {
        let mut netdev = format!("user,id=user{id}");
        for forward in &self.0 {
            let kind = if forward.udp { "udp" } else { "tcp" };
            netdev.push_str(&format!(
                ",hostfwd={kind}:127.0.0.1:{}-:{}",
                forward.host, forward.guest
            ));
        }
        vec![
            "-netdev".into(),
            netdev,
            "-device".into(),
            format!("{model},netdev=user{id}"),
        ]
    }
}

/// A TCP connection with a read buffer, for line protocols; every read waits at most
/// the timeout given to [`Stream::connect`].
pub struct Stream {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Stream {
    /// Connects to `addr`, reads and writes waiting at most `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| format!("cannot set up the connection to {addr}: {e}"))?;
        Ok(Self {
            stream,
            buffer: Vec::new(),
        })
    }

    /// The socket, e.g. to write from another thread (`try_clone`).
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("send of {} bytes failed: {e}", bytes.len()))
    }

    /// Reads more into the buffer; false at the end of the stream.
    fn fill(&mut self) -> Result<bool> {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) => Err(format!(
                "read failed after {} buffered bytes ({}): {e}",
                self.buffer.len(),
                shown(&self.buffer)
            )),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<Vec<u8>> {
        while self.buffer.len() < n {
            if !self.fill()? {
                return Err(format!(
                    "the stream ended after {} of {n} bytes ({})",
                    self.buffer.len(),
                    shown(&self.buffer)
                ));
            }
        }
        Ok(self.buffer.drain(..n).collect())
    }

    /// The next line, with its `\r\n`.
    pub fn line(&mut self) -> Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                return Ok(self.buffer.drain(..end + 2).collect());
            }
            if !self.fill()? {
                return Err(format!(
                    "the stream ended inside a line ({})",
                    shown(&self.buffer)
                ));
            }
        }
    }

    /// Reads exactly `want.len()` bytes and requires them to be `want`.
    pub fn expect(&mut self, want: &[u8]) -> Result<()> {
        let got = self
            .take(want.len())
            .map_err(|e| format!("expected {}: {e}", shown(want)))?;
        if got == want {
            Ok(())
        } else {
            Err(mismatch(want, &got))
        }
    }

    /// Sends `request` and requires the answer `want`, byte for byte.
    pub fn exchange(&mut self, request: &[u8], want: &[u8]) -> Result<()> {
        self.send(request)?;
        self.expect(want)
            .map_err(|e| format!("after {}: {e}", shown(request)))
    }

    /// Whether the peer closed the stream (nothing more buffered or arriving).
    pub fn at_end(&mut self) -> Result<bool> {
        Ok(self.buffer.is_empty() && !self.fill()?)
    }
}

/// Where two byte strings first differ, for a failure message.
pub fn mismatch(want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let from = at.saturating_sub(16);
    format!(
        "expected {} bytes, got {}; first difference at byte {at}: expected {}, got {}",
        want.len(),
        got.len(),
        shown(&want[from..want.len().min(at + 48)]),
        shown(&got[from..got.len().min(at + 48)])
    )
}

/// Bytes as an escaped string, cut after 120 characters.
pub fn shown(bytes: &[u8]) -> String {
    let text: String = bytes.escape_ascii().to_string();
    if text.len() > 120 {
        format!("`{}...` ({} bytes)", &text[..120], bytes.len())
    } else {
        format!("`{text}`")
    }
}

/// Runs `program` with `args` for at most `timeout` ([`crate::loadgen::stdout_of`]);
/// its standard output, or why it failed (its exit status and the end of its output).
pub fn run_tool(program: &Path, args: &[String], timeout: Duration) -> Result<String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    crate::loadgen::stdout_of(Command::new(program).args(args), &shown, timeout)
}

/// Calls `attempt` until it succeeds or `within` passes (services behind user
/// networking refuse connections until the guest listens); its last error otherwise.
pub fn retry<T>(within: Duration, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + within;
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The names the `monitor::dns` case's DNS server knows.
const DNS_NAMES: &[(&str, &[std::net::Ipv4Addr])] = &[
    ("rexo.test", &[std::net::Ipv4Addr::new(10, 0, 2, 2)]),
    (
        "two.rexo.test",
        &[
            std::net::Ipv4Addr::new(10, 0, 2, 7),
            std::net::Ipv4Addr::new(10, 0, 2, 8),
        ],
    ),
];

/// Distinct queries the `monitor::dns` case's input makes.
const DNS_QUERIES: usize = 4;

/// The `monitor::dns` case's DNS server: QEMU user networking carries the guest's
/// datagrams to 10.0.2.2 port 53 to 127.0.0.1 port 53 here, where
/// [`rexo_net::dnsserver`] answers from [`DNS_NAMES`] until it has answered
/// [`DNS_QUERIES`] distinct queries (retransmissions are answered too).
pub const DNS_SERVER: Client = Client {
    name: "DNS server on 127.0.0.1:53",
    needs: &[],
    after: "rexo: ready",
    run: |_| {
        let socket = UdpSocket::bind(("127.0.0.1", 53)).map_err(|e| {
            format!("needs root and a free UDP port 53 on 127.0.0.1 (the case's DNS server; no local resolver on it): {e}")
        })?;
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut answered: Vec<Vec<u8>> = Vec::new();
        let mut buffer = [0u8; 1500];
        while answered.len() < DNS_QUERIES {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "{} of {DNS_QUERIES} queries came within 60 s",
                    answered.len()
                ));
            }
            let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                continue;
            };
            let query = &buffer[..len];
            let Some(reply) = rexo_net::dnsserver::answer(query, DNS_NAMES) else {
                return Err(format!("the guest sent a malformed query: {query:02x?}"));
            };
            socket
                .send_to(&reply, from)
                .map_err(|e| format!("answering: {e}"))?;
            if !answered.iter().any(|q| q == query) {
                answered.push(query.to_vec());
            }
        }
        Ok(vec![format!("answered {DNS_QUERIES} distinct queries")])
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_net_arguments() {
        let forwards = Forwards(vec![
            Forward {
                udp: false,
                host: 11211,
                guest: 11211,
            },
            Forward {
                udp: true,
                host: 11211,
                guest: 11211,
            },
        ]);
        assert_eq!(
            forwards.qemu_args(0, "virtio-net-pci"),
            vec![
                "-netdev",
                "user,id=user0,hostfwd=tcp:127.0.0.1:11211-:11211,hostfwd=udp:127.0.0.1:11211-:11211",
                "-device",
                "virtio-net-pci,netdev=user0",
            ]
        );
        assert_eq!(
            forwards.udp(11211),
            Ok(SocketAddr::from(([127, 0, 0, 1], 11211)))
        );
        assert!(forwards.tcp(80).unwrap_err().contains("TCP port 80"));
        let free = Forwards::free(&[8080], &[53]).unwrap();
        assert!(free.tcp(8080).is_ok() && free.udp(53).is_ok());
        assert!(free.0.iter().all(|f| f.host != 0));
    }

    #[test]
    fn streams_read_lines_and_exact_bytes() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            let mut request = [0u8; 4];
            peer.read_exact(&mut request).unwrap();
            peer.write_all(b"LINE one\r\nabcEND\r\n").unwrap();
        });
        let mut stream = Stream::connect(addr, Duration::from_secs(5)).unwrap();
        stream.send(b"ping").unwrap();
        assert_eq!(stream.line().unwrap(), b"LINE one\r\n");
        assert_eq!(stream.take(3).unwrap(), b"abc");
        let error = stream.expect(b"EMD\r\n").unwrap_err();
        assert!(error.contains("first difference at byte 1"), "{error}");
        server.join().unwrap();
        assert!(stream.at_end().unwrap());
        assert!(stream.take(1).unwrap_err().contains("ended"));
    }

    #[test]
    fn tools_run_with_a_deadline() {
        let sh = Path::new("/bin/sh");
        let args = |script: &str| vec!["-c".to_string(), script.to_string()];
        assert_eq!(
            run_tool(sh, &args("echo hi"), Duration::from_secs(5)),
            Ok("hi\n".into())
        );
        let failed = run_tool(
            sh,
            &args("echo out; echo err >&2; exit 3"),
            Duration::from_secs(5),
        );
        let message = failed.unwrap_err();
        assert!(
            message.contains("out") && message.contains("err"),
            "{message}"
        );
        let hung = run_tool(sh, &args("sleep 10"), Duration::from_millis(200));
        assert!(hung.unwrap_err().contains("ran past"));
    }

    #[test]
    fn mismatches_are_located() {
        let message = mismatch(b"STORED\r\n", b"STORXD\r\n");
        assert!(message.contains("byte 4"), "{message}");
        assert!(shown(&[b'a'; 500]).contains("(500 bytes)"));
    }
}
