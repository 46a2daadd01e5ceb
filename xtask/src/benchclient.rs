//! The suite's own measuring clients behind one entry point, so that the same code runs
//! in xtask's process (user networking: the guest's services are forwarded ports on
//! 127.0.0.1) or as `xtask bench-client ...` inside the tap transport's network
//! namespace (the guest at 10.0.2.15), printing its one figure.

use crate::Result;
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
    /// [`UDP_ROUND_TRIPS`] 64-byte datagrams one at a time: the median round trip,
    /// microseconds.
    UdpEcho {
        /// The echo server.
        address: SocketAddr,
    },
}

/// Round trips per UDP figure.
pub const UDP_ROUND_TRIPS: usize = 1000;

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

    /// Makes the measurement here: its figure.
    pub fn run(&self) -> Result<f64> {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
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
            Self::UdpEcho { address } => udp_round_trips(*address),
        }
    }
}

/// `xtask bench-client MEASUREMENT ARGS...`: prints the figure.
pub fn command(words: Vec<String>) -> Result<()> {
    let figure = Measure::parse(&words)?.run()?;
    println!("{figure}");
    Ok(())
}

/// The median round trip of [`UDP_ROUND_TRIPS`] 64-byte datagrams to the echo server at
/// `echo`, one at a time, in microseconds.
fn udp_round_trips(echo: SocketAddr) -> Result<f64> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let mut buffer = [0u8; 2048];
    for i in 0..UDP_ROUND_TRIPS {
        let datagram = [(i % 251) as u8; 64];
        let sent = Instant::now();
        socket.send_to(&datagram, echo).map_err(|e| e.to_string())?;
        // A datagram lost on the way is not a round trip; a wrong echo is an error.
        if let Ok((n, _)) = socket.recv_from(&mut buffer) {
            if buffer[..n] != datagram {
                return Err("a UDP echo differs from what was sent".into());
            }
            times.push(sent.elapsed().as_secs_f64() * 1e6);
        }
    }
    if times.len() < UDP_ROUND_TRIPS / 2 {
        return Err(format!(
            "only {} of {UDP_ROUND_TRIPS} datagrams came back",
            times.len()
        ));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
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
