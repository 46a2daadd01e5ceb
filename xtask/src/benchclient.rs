//! The suite's own measuring clients behind one entry point, so that the same code runs
//! in xtask's process (user networking: the guest's services are forwarded ports on
//! 127.0.0.1) or as `xtask bench-client ...` inside the tap transport's network
//! namespace (the guest at 10.0.2.15), printing its one figure.

use crate::Result;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// One measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Measure {
    /// One GET of `path` on a fresh connection: milliseconds.
    FirstRequest {
        /// The server.
        address: SocketAddr,
        /// What to get.
        path: String,
    },
    /// GETs of `path` on `connections` keep-alive connections for `seconds`: the 99th
    /// percentile latency, milliseconds.
    HttpP99 {
        /// The server.
        address: SocketAddr,
        /// What to get.
        path: String,
        /// Connections, opened one after the other.
        connections: usize,
        /// How long.
        seconds: u64,
    },
    /// memcached's 90/10 get/set on `connections` connections for `seconds`: the 99th
    /// percentile latency, milliseconds.
    MemcachedP99 {
        /// The server.
        address: SocketAddr,
        /// Connections.
        connections: usize,
        /// How long.
        seconds: u64,
    },
    /// [`UDP_ROUND_TRIPS`] 64-byte datagrams one at a time, after [`UDP_WARM_UP`]
    /// unmeasured ones: the median round trip, microseconds, with the echoes that came
    /// after their wait ([`UDP_ECHO_WAIT`]) and the datagrams that got none within it
    /// counted (`late`, `unanswered`).
    UdpEcho {
        /// The echo server.
        address: SocketAddr,
    },
}

/// Round trips per UDP figure.
pub const UDP_ROUND_TRIPS: usize = 1000;
/// Datagrams echoed before the measured ones, unmeasured: the first pays the guest's ARP
/// for the host and both ends' cold paths.
pub const UDP_WARM_UP: usize = 10;
/// How long each datagram's echo is waited for.
pub const UDP_ECHO_WAIT: Duration = Duration::from_millis(200);
/// Bytes of each UDP datagram: its sequence number (4 bytes, little-endian), then a byte
/// that follows from it.
const UDP_DATAGRAM: usize = 64;

/// What a measurement gives: its figure, and counts that qualify it for the report's
/// note.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The figure.
    pub figure: f64,
    /// Named counts beside the figure.
    pub counts: Vec<(String, u64)>,
}

impl Reading {
    /// A figure with no counts.
    fn figure(figure: f64) -> Self {
        Self {
            figure,
            counts: Vec::new(),
        }
    }

    /// The reading as `xtask bench-client` prints it: the figure, then `NAME=COUNT`.
    pub fn text(&self) -> String {
        let mut text = self.figure.to_string();
        for (name, count) in &self.counts {
            text.push_str(&format!(" {name}={count}"));
        }
        text
    }

    /// The reading [`Reading::text`] printed.
    pub fn parse(text: &str) -> Result<Self> {
        let mut words = text.split_whitespace();
        let figure = words
            .next()
            .and_then(|word| word.parse().ok())
            .ok_or_else(|| format!("bench-client printed `{text}`, not a figure first"))?;
        let counts = words
            .map(|word| {
                word.split_once('=')
                    .and_then(|(name, count)| Some((name.to_string(), count.parse().ok()?)))
                    .ok_or_else(|| format!("bench-client printed `{word}`, not NAME=COUNT"))
            })
            .collect::<Result<_>>()?;
        Ok(Self { figure, counts })
    }
}

impl Measure {
    /// The words of `xtask bench-client` that ask for this measurement.
    pub fn words(&self) -> Vec<String> {
        match self {
            Self::FirstRequest { address, path } => {
                vec!["first-request".into(), address.to_string(), path.clone()]
            }
            Self::HttpP99 {
                address,
                path,
                connections,
                seconds,
            } => vec![
                "http-p99".into(),
                address.to_string(),
                path.clone(),
                connections.to_string(),
                seconds.to_string(),
            ],
            Self::MemcachedP99 {
                address,
                connections,
                seconds,
            } => vec![
                "memcached-p99".into(),
                address.to_string(),
                connections.to_string(),
                seconds.to_string(),
            ],
            Self::UdpEcho { address } => vec!["udp-echo".into(), address.to_string()],
        }
    }

    /// How long the measurement runs against a server that answers: its load, or for the
    /// UDP echo every datagram's longest wait.
    pub fn duration(&self) -> Duration {
        match self {
            Self::FirstRequest { .. } => Duration::ZERO,
            Self::HttpP99 { seconds, .. } | Self::MemcachedP99 { seconds, .. } => {
                Duration::from_secs(*seconds)
            }
            Self::UdpEcho { .. } => UDP_ECHO_WAIT * (UDP_WARM_UP + UDP_ROUND_TRIPS) as u32,
        }
    }

    /// The measurement `words` ask for.
    pub fn parse(words: &[String]) -> Result<Self> {
        let address = |i: usize| -> Result<SocketAddr> {
            let word = words.get(i).ok_or("bench-client: an address is missing")?;
            word.parse()
                .map_err(|_| format!("bench-client: `{word}` is not an address"))
        };
        let number = |i: usize| -> Result<u64> {
            let word = words.get(i).ok_or("bench-client: a number is missing")?;
            word.parse()
                .map_err(|_| format!("bench-client: `{word}` is not a number"))
        };
        let text = |i: usize| -> Result<String> {
            words
                .get(i)
                .cloned()
                .ok_or_else(|| "bench-client: a path is missing".to_string())
        };
        let (measure, arity) = match words.first().map(String::as_str) {
            Some("first-request") => (
                Self::FirstRequest {
                    address: address(1)?,
                    path: text(2)?,
                },
                3,
            ),
            Some("http-p99") => (
                Self::HttpP99 {
                    address: address(1)?,
                    path: text(2)?,
                    connections: number(3)? as usize,
                    seconds: number(4)?,
                },
                5,
            ),
            Some("memcached-p99") => (
                Self::MemcachedP99 {
                    address: address(1)?,
                    connections: number(2)? as usize,
                    seconds: number(3)?,
                },
                4,
            ),
            Some("udp-echo") => (
                Self::UdpEcho {
                    address: address(1)?,
                },
                2,
            ),
            _ => {
                return Err(format!(
                    "bench-client: which measurement? (first-request, http-p99, memcached-p99, udp-echo), not {words:?}"
                ));
            }
        };
        if words.len() != arity {
            return Err(format!(
                "bench-client: {} takes {} words, not {words:?}",
                words[0],
                arity - 1
            ));
        }
        Ok(measure)
    }

    /// Makes the measurement here: its reading.
    pub fn run(&self) -> Result<Reading> {
        let ms = |d: Duration| Reading::figure(d.as_secs_f64() * 1000.0);
        match self {
            Self::FirstRequest { address, path } => {
                crate::httpclient::first_response(*address, path).map(ms)
            }
            Self::HttpP99 {
                address,
                path,
                connections,
                seconds,
            } => {
                crate::httpclient::load(*address, path, *connections, Duration::from_secs(*seconds))
                    .map(|load| ms(load.p99))
            }
            Self::MemcachedP99 {
                address,
                connections,
                seconds,
            } => crate::kvtests::memcached_load(
                *address,
                *connections,
                Duration::from_secs(*seconds),
            )
            .map(|load| ms(load.p99)),
            Self::UdpEcho { address } => {
                let run = udp_round_trips(*address, UDP_WARM_UP, UDP_ROUND_TRIPS)?;
                Ok(Reading {
                    figure: run.median_us,
                    counts: vec![
                        ("late".into(), run.late),
                        ("unanswered".into(), run.unanswered),
                    ],
                })
            }
        }
    }
}

/// `xtask bench-client MEASUREMENT ARGS...`: prints the reading ([`Reading::text`]).
pub fn command(words: Vec<String>) -> Result<()> {
    let reading = Measure::parse(&words)?.run()?;
    println!("{}", reading.text());
    Ok(())
}

/// What the UDP round trips measured.
#[derive(Clone, Debug, PartialEq)]
struct UdpRoundTrips {
    /// The median round trip, microseconds.
    median_us: f64,
    /// Round trips measured.
    measured: usize,
    /// Echoes of earlier datagrams, come after their wait had ended (or repeated),
    /// discarded.
    late: u64,
    /// Measured datagrams whose echo did not come within [`UDP_ECHO_WAIT`].
    unanswered: u64,
}

/// Datagram `seq`: its sequence number, then `seq % 251` in every other byte.
fn udp_datagram(seq: u32) -> [u8; UDP_DATAGRAM] {
    let mut datagram = [(seq % 251) as u8; UDP_DATAGRAM];
    datagram[..4].copy_from_slice(&seq.to_le_bytes());
    datagram
}

/// The sequence number of the datagram `echo` repeats byte for byte, if it repeats one.
fn echoed_seq(echo: &[u8]) -> Option<u32> {
    let seq = u32::from_le_bytes(echo.get(..4)?.try_into().ok()?);
    (echo == udp_datagram(seq)).then_some(seq)
}

/// Sends `warm_up` unmeasured datagrams, then `trips` measured ones, one at a time, to
/// the echo server at `echo`, each waited for [`UDP_ECHO_WAIT`]: the round trips. An
/// echo of an earlier datagram (its wait over) is counted late and discarded; one that
/// repeats no datagram sent is an error.
fn udp_round_trips(echo: SocketAddr, warm_up: usize, trips: usize) -> Result<UdpRoundTrips> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let (mut late, mut unanswered) = (0, 0);
    let mut buffer = [0u8; 2048];
    // Armed once: no system call but the send and the receive inside a round trip.
    let arm = |wait| {
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())
    };
    arm(UDP_ECHO_WAIT)?;
    for seq in 0..(warm_up + trips) as u32 {
        let measured = seq as usize >= warm_up;
        let datagram = udp_datagram(seq);
        let sent = Instant::now();
        socket.send_to(&datagram, echo).map_err(|e| e.to_string())?;
        let deadline = sent + UDP_ECHO_WAIT;
        let mut rearmed = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = if left.is_zero() {
                Err(ErrorKind::TimedOut.into())
            } else {
                socket.recv_from(&mut buffer)
            };
            // A datagram lost on the way (or an error receiving) is not a round trip.
            let Ok((n, _)) = received else {
                unanswered += u64::from(measured);
                break;
            };
            match echoed_seq(&buffer[..n]) {
                Some(echoed) if echoed == seq => {
                    if measured {
                        times.push(sent.elapsed().as_secs_f64() * 1e6);
                    }
                    break;
                }
                // Discarded; the wait goes on for what is left of it.
                Some(echoed) if echoed < seq => {
                    late += 1;
                    let left = deadline.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        arm(left)?;
                        rearmed = true;
                    }
                }
                _ => {
                    return Err(format!(
                        "a UDP echo of {n} bytes repeats no datagram sent (datagram {seq} was the last)"
                    ));
                }
            }
        }
        if rearmed {
            arm(UDP_ECHO_WAIT)?; // the whole wait again for the next datagram
        }
    }
    if times.len() < trips / 2 {
        return Err(format!(
            "only {} of {trips} datagrams came back within {} ms",
            times.len(),
            UDP_ECHO_WAIT.as_millis()
        ));
    }
    times.sort_by(f64::total_cmp);
    Ok(UdpRoundTrips {
        median_us: times[times.len() / 2],
        measured: times.len(),
        late,
        unanswered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let address: SocketAddr = "10.0.2.15:80".parse().unwrap();
        for measure in [
            Measure::FirstRequest {
                address,
                path: "/1k".into(),
            },
            Measure::HttpP99 {
                address,
                path: "/100k.txt".into(),
                connections: 32,
                seconds: 2,
            },
            Measure::MemcachedP99 {
                address,
                connections: 32,
                seconds: 5,
            },
            Measure::UdpEcho { address },
        ] {
            assert_eq!(Measure::parse(&measure.words()).unwrap(), measure);
        }
    }

    /// An echo server on 127.0.0.1 for `datagrams` datagrams, answering the one it
    /// receives `n`th with `answer(n, datagram)` after `delay(n)`: its address.
    fn echo_server(
        datagrams: usize,
        delay: fn(usize) -> Duration,
        answer: fn(usize, &[u8]) -> Vec<u8>,
    ) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            for n in 0..datagrams {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                    return;
                };
                std::thread::sleep(delay(n));
                socket.send_to(&answer(n, &buffer[..len]), from).unwrap();
            }
        });
        address
    }

    #[test]
    fn a_late_echo_is_discarded_and_counted_and_the_others_measured() {
        // Datagram 12 (the third measured) is echoed 300 ms late, while the client
        // waits for datagram 13's echo.
        let server = echo_server(
            UDP_WARM_UP + 40,
            |n| Duration::from_millis(if n == 12 { 300 } else { 0 }),
            |_, datagram| datagram.to_vec(),
        );
        let run = udp_round_trips(server, UDP_WARM_UP, 40).unwrap();
        assert_eq!((run.measured, run.late, run.unanswered), (39, 1, 1));
        assert!(run.median_us > 0.0 && run.median_us < 200_000.0, "{run:?}");
    }

    #[test]
    fn an_echo_repeating_no_datagram_sent_is_an_error() {
        for answer in [
            // The bytes of datagram 5 but another sequence number's.
            (|n, datagram: &[u8]| {
                let mut echo = datagram.to_vec();
                if n == 5 {
                    echo[4] ^= 1;
                }
                echo
            }) as fn(usize, &[u8]) -> Vec<u8>,
            // A datagram not yet sent.
            |n, datagram| {
                if n == 5 {
                    udp_datagram(6).to_vec()
                } else {
                    datagram.to_vec()
                }
            },
        ] {
            let server = echo_server(UDP_WARM_UP + 10, |_| Duration::ZERO, answer);
            let err = udp_round_trips(server, UDP_WARM_UP, 10).unwrap_err();
            assert!(err.contains("repeats no datagram sent"), "{err}");
        }
    }

    #[test]
    fn readings_round_trip_as_text() {
        let reading = Reading {
            figure: 61.25,
            counts: vec![("late".into(), 2), ("unanswered".into(), 3)],
        };
        assert_eq!(reading.text(), "61.25 late=2 unanswered=3");
        assert_eq!(Reading::parse(&reading.text()), Ok(reading));
        assert_eq!(Reading::parse("7\n"), Ok(Reading::figure(7.0)));
        assert!(Reading::parse("").is_err());
        assert!(Reading::parse("7 late").is_err());
        assert!(Reading::parse("7 late=x").is_err());
    }

    #[test]
    fn bad_words_are_refused() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Measure::parse(&[]).is_err());
        assert!(Measure::parse(&words(&["frob"])).is_err());
        assert!(Measure::parse(&words(&["udp-echo"])).is_err());
        assert!(Measure::parse(&words(&["udp-echo", "10.0.2.15"])).is_err());
        assert!(Measure::parse(&words(&["udp-echo", "10.0.2.15:7", "x"])).is_err());
        assert!(Measure::parse(&words(&["memcached-p99", "10.0.2.15:1", "many", "2"])).is_err());
    }
}
