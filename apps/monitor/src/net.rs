//! The monitor's network commands, `net`, `ping` and `resolve`, through the TCP/IP
//! library OS (`rexo-net`) on the first network interface no app holds. Each command
//! opens the interface, takes an address by DHCP (or the kernel command line's `ip=`),
//! does its work and gives the interface back, so that an app run afterwards (`run
//! httpd`) can open it. With `ip=` the kernel owns the address and the monitor binds
//! packet filters for the answers each command waits for instead, beside the apps that
//! share the interface (the default `cargo xtask run`: httpd beside the monitor); DNS
//! answers to a block of 64 ports its queries go from, one no other app's filter
//! overlaps ([`dns_block`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rexo_api::{ApiError, DeviceInfo, DeviceKind, Kernel, NetSharing};
use rexo_net::{Config, DnsPorts, Ipv4Addr, NetError, Stack};

use crate::Host;

/// How long DHCP may take before the command gives up.
const DHCP_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long a name may take to resolve: rexo-net's resolver gives up after 10 s.
const RESOLVE_TIMEOUT_NS: u64 = 11_000_000_000;
/// How long `ping` waits for each answer.
const PING_TIMEOUT_NS: u64 = 1_000_000_000;
/// How long `ping` waits between two requests (as the classic `ping`).
const PING_INTERVAL_NS: u64 = 1_000_000_000;
/// The ICMP identifier of the monitor's echo requests.
const PING_IDENT: u16 = 0x6d6e;
/// The data each echo request carries.
const PING_DATA: &[u8] = b"rexo monitor ping";
/// Ports in each block the monitor's DNS queries may go from.
const DNS_BLOCK_PORTS: u16 = 64;
/// The first port of the first block: the dynamic range (49152-65535).
const DNS_BLOCKS_START: u16 = 49152;
/// The most binds tried, each after the first with the next DNS block, when the kernel
/// refuses one as overlapping another app's filter (one bound meanwhile).
const DNS_BLOCK_TRIES: usize = 4;
/// The most echo requests one `ping` sends.
pub const MAX_PINGS: u16 = 100;

/// The answers a command waits for, which it binds packet filters for on an interface
/// apps share.
#[derive(Clone, Copy)]
struct Answers {
    /// ICMP to the interface's address (echo replies).
    icmp: bool,
    /// DNS answers (UDP from port 53) to the interface's address.
    dns: bool,
}

/// The first network interface no app holds whole, configured by DHCP or as the kernel
/// command line's `ip=` says; with how it was configured. As every app does
/// (`rexo_net::attach`): without `ip=` the monitor opens the interface whole; with it the
/// kernel owns the address and the monitor binds packet filters for the `answers` it
/// waits for, beside the apps sharing the interface (the default `cargo xtask run`:
/// httpd's `tcp dport 80`).
fn bring_up(
    kernel: &Kernel,
    answers: Answers,
) -> Result<(DeviceInfo, Stack, &'static str), String> {
    let nics: Vec<DeviceInfo> = kernel
        .devices()
        .into_iter()
        .filter(|d| d.kind == DeviceKind::Net)
        .collect();
    if nics.is_empty() {
        return Err(String::from(
            "no network interface (`devices` lists the devices)",
        ));
    }
    let Some(device) = nics
        .iter()
        .find(|d| d.holder.is_none() || matches!(kernel.net_sharing(d.index), Ok(Some(_))))
    else {
        return Err(String::from(
            "every network interface is held whole by an app",
        ));
    };
    let address = match Config::from_kernel(kernel, DHCP_TIMEOUT_NS) {
        Config::Static { address, .. } => Some(address),
        Config::Dhcp { .. } => None,
    };
    let sharing = || kernel.net_sharing(device.index).ok().flatten();
    let mut block = None;
    let mut tries = 0;
    let (nic, config) = loop {
        let mut filters = Vec::new();
        if let Some(address) = address {
            if answers.icmp {
                filters.push(format!("icmp dst {address}"));
            }
            if answers.dns {
                let next = dns_block(address, sharing().as_ref(), block).ok_or_else(|| {
                    format!(
                        "nic {}: every block of {DNS_BLOCK_PORTS} ports in \
                         {DNS_BLOCKS_START}-65535 overlaps another app's filter for DNS answers",
                        device.index
                    )
                })?;
                filters.push(next.filter(address));
                block = Some(next);
            }
        }
        let texts: Vec<&str> = filters.iter().map(String::as_str).collect();
        let error = match rexo_net::attach(kernel, device.index, &texts, DHCP_TIMEOUT_NS) {
            Ok(attached) => break attached,
            Err(error) => error,
        };
        // An app bound a filter overlapping the block since we looked: another block.
        let block_taken = matches!(error, NetError::Kernel(ApiError::FilterOverlap(_)))
            && block.is_some()
            && sharing().is_some_and(|sharing| {
                !overlaps(&filters[filters.len() - 1..], &sharing).is_empty()
            });
        tries += 1;
        if !block_taken || tries == DNS_BLOCK_TRIES {
            let why = refused(error, &filters, sharing);
            return Err(format!("nic {}: {why}", device.index));
        }
    };
    let mut stack =
        Stack::new(kernel, nic, 0, config).map_err(|e| format!("nic {}: {e}", device.index))?;
    if let Some(block) = block {
        stack.set_dns_ports(block);
    }
    Ok((device.clone(), stack, config.how()))
}

/// The block of [`DNS_BLOCK_PORTS`] ports in the dynamic range for the monitor's DNS
/// queries to go from: the first after `after` (from the first block without it)
/// whose filter for answers to `address` overlaps no filter of the apps sharing the
/// interface as `sharing` says (an app resolving names with its own block, kv's `udp
/// dport 11211`). The monitor opens no TCP connection, so its stack's ephemeral TCP
/// ports never meet the block (a UDP filter). `None` when every block from there
/// overlaps, or `after` is the last block (65472-65535).
fn dns_block(
    address: Ipv4Addr,
    sharing: Option<&NetSharing>,
    after: Option<DnsPorts>,
) -> Option<DnsPorts> {
    // In u32: the block after the last one (65472) starts past the ports, at 65536.
    let from = after.map_or(u32::from(DNS_BLOCKS_START), |block| {
        u32::from(block.first()) + u32::from(DNS_BLOCK_PORTS)
    });
    (from..=u32::from(u16::MAX))
        .step_by(usize::from(DNS_BLOCK_PORTS))
        .filter_map(|first| DnsPorts::new(u16::try_from(first).ok()?, DNS_BLOCK_PORTS).ok())
        .find(|block| {
            sharing.is_none_or(|sharing| overlaps(&[block.filter(address)], sharing).is_empty())
        })
}

/// The words for `error`, which `attach` answered for our filters `ours`: when a filter
/// overlaps another app's, followed by the notes naming both ([`overlaps`], the
/// interface's sharing asked of `sharing` only then).
fn refused(
    error: NetError,
    ours: &[String],
    sharing: impl FnOnce() -> Option<NetSharing>,
) -> String {
    let notes = match error {
        NetError::Kernel(ApiError::FilterOverlap(_)) => {
            sharing().map_or_else(Vec::new, |sharing| overlaps(ours, &sharing))
        }
        _ => Vec::new(),
    };
    format!("{error}{}", notes.concat())
}

/// Why `ours` could not be bound beside the apps sharing an interface as `sharing`
/// says: for each of our filters that overlaps one of an app's, a note naming both.
fn overlaps(ours: &[String], sharing: &NetSharing) -> Vec<String> {
    let parsed = |text: &str| rexo_api::Filter::parse(text).ok();
    let mut notes = Vec::new();
    for mine in ours {
        let Some(filter) = parsed(mine) else {
            continue;
        };
        for binding in &sharing.bindings {
            let theirs = binding
                .filters
                .iter()
                .filter(|their| parsed(their).is_some_and(|their| their.overlaps(&filter)));
            for their in theirs {
                notes.push(format!("; '{mine}' overlaps {}'s '{their}'", binding.app));
            }
        }
    }
    notes
}

/// How interface `index` is shared: the kernel's part, then each app's binding.
fn sharing_lines(index: usize, sharing: &NetSharing) -> Vec<String> {
    let a = sharing.address;
    let mut lines = alloc::vec![format!(
        "nic {index}: shared by filters at {}/{}; {sharing}",
        a.address, a.prefix
    )];
    for binding in &sharing.bindings {
        lines.push(format!("nic {index}: bound {binding}"));
    }
    lines
}

/// `net`: every network interface with its holder and, when apps share it, its filters
/// and their counters; then the first free one configured: address, router, and what
/// moved while it was configured, or, when that fails, `net: ` and why (after the
/// listing, which is shown all the same).
pub fn show(kernel: &Kernel) -> Vec<String> {
    let nics: Vec<DeviceInfo> = kernel
        .devices()
        .into_iter()
        .filter(|d| d.kind == DeviceKind::Net)
        .collect();
    let mut lines: Vec<String> = nics
        .iter()
        .map(|d| {
            format!(
                "nic {} {} at {}: {}, {}",
                d.index,
                d.driver,
                d.address,
                d.about,
                d.holder
                    .map_or(String::from("free"), |h| format!("held by {h}"))
            )
        })
        .collect();
    let mut shared = false;
    for d in &nics {
        if let Ok(Some(sharing)) = kernel.net_sharing(d.index) {
            shared = true;
            lines.extend(sharing_lines(d.index, &sharing));
        }
    }
    if !shared {
        lines.push(String::from(
            "filters: none installed; an app that opens an interface whole holds all of its traffic",
        ));
    }
    if shared && nics.iter().all(|d| d.holder.is_some()) {
        return lines;
    }
    match configured(kernel) {
        Ok(configured) => lines.extend(configured),
        Err(why) => lines.push(format!("net: {why}")),
    }
    lines
}

/// `net`'s lines for the first free interface, configured now: its address and router,
/// how it got them, and what moved meanwhile.
fn configured(kernel: &Kernel) -> Result<[String; 2], String> {
    let started = kernel.now_ns();
    let (device, stack, how) = bring_up(
        kernel,
        Answers {
            icmp: true,
            dns: false,
        },
    )?;
    let (address, prefix) = stack.address().ok_or("the interface has no address")?;
    let address_line = format!(
        "nic {}: address {address}/{prefix}, router {}, {how} in {} ms",
        device.index,
        stack
            .gateway()
            .map_or(String::from("none"), |g| format!("{g}")),
        (kernel.now_ns() - started) / 1_000_000
    );
    let c = stack.counters();
    let traffic_line = format!(
        "nic {}: received {} frames ({} bytes), sent {} frames ({} bytes), dropped {}, replies copied {}",
        device.index,
        c.rx_frames,
        c.rx_bytes,
        c.tx_frames,
        c.tx_bytes,
        c.tx_dropped,
        c.replies_copied
    );
    Ok([address_line, traffic_line])
}

/// `ping ADDRESS [COUNT]`: `count` echo requests a second apart, each answer (or its
/// absence) said as it comes, then the summary. The error is for a command that could
/// not start (no interface, no lease).
pub fn ping(kernel: &Kernel, to: Host<'_>, count: u16, say: &dyn Fn(&str)) -> Result<(), String> {
    let answers = Answers {
        icmp: true,
        dns: matches!(to, Host::Name(_)),
    };
    let (device, mut stack, _) = bring_up(kernel, answers)?;
    let (address, _) = stack.address().ok_or("the interface has no address")?;
    let to = match to {
        Host::Address(to) => to,
        Host::Name(name) => {
            let addresses = lookup(kernel, &mut stack, name)?;
            say(&format!("{name} is {}\r\n", listed(&addresses)));
            addresses[0]
        }
    };
    say(&format!(
        "PING {to} from {address} (nic {}), {} data bytes\r\n",
        device.index,
        PING_DATA.len()
    ));
    let socket = stack.ping_open(PING_IDENT);
    let (mut answered, mut corrupt) = (0u16, 0u16);
    let mut times_us = Vec::new();
    for seq in 0..count {
        let sent = kernel.now_ns();
        if let Err(error) = stack.ping_send(&socket, to, seq, PING_DATA) {
            say(&format!("seq {seq}: not sent: {error}\r\n"));
        } else {
            let mut reply = Ok(None);
            while reply == Ok(None) && kernel.now_ns() - sent < PING_TIMEOUT_NS {
                stack
                    .poll(kernel.now_ns())
                    .map_err(|e| format!("nic {}: {e}", device.index))?;
                reply = stack
                    .ping_recv(&socket, PING_DATA)
                    .map(|reply| reply.filter(|r| r.seq == seq && r.from == to));
            }
            match reply {
                Ok(Some(reply)) if !reply.intact => {
                    corrupt += 1;
                    say(&format!(
                        "seq {seq}: corrupt reply from {}: its {} data bytes are not the {} sent\r\n",
                        reply.from,
                        reply.len,
                        PING_DATA.len()
                    ));
                }
                Ok(Some(reply)) => {
                    let us = (kernel.now_ns() - sent) / 1000;
                    answered += 1;
                    times_us.push(us);
                    say(&format!(
                        "{} bytes from {}: seq {seq}, time {}.{:03} ms\r\n",
                        reply.len,
                        reply.from,
                        us / 1000,
                        us % 1000
                    ));
                }
                Ok(None) => say(&format!("seq {seq}: no answer within 1 s\r\n")),
                // The next hop answered no ARP: this request and those before it to the
                // same next hop were dropped unsent.
                Err(error) => say(&format!("seq {seq}: {error}\r\n")),
            }
        }
        // A second between requests, answering ARP meanwhile; none after the last.
        while seq + 1 < count && kernel.now_ns() - sent < PING_INTERVAL_NS {
            stack
                .poll(kernel.now_ns())
                .map_err(|e| format!("nic {}: {e}", device.index))?;
        }
    }
    stack.ping_close(socket);
    say(&ping_summary(to, count, answered, corrupt, &times_us));
    Ok(())
}

/// `ping`'s last line: of `count` requests to `to`, `answered` got their data back (in
/// `times_us`), `corrupt` got other data (said only when there were some; neither
/// answered nor lost), the others nothing.
fn ping_summary(to: Ipv4Addr, count: u16, answered: u16, corrupt: u16, times_us: &[u64]) -> String {
    let lost = (count - answered - corrupt) * 100 / count.max(1);
    let mut line = format!("{to}: {count} sent, {answered} answered");
    if corrupt > 0 {
        line.push_str(&format!(", {corrupt} corrupt"));
    }
    line.push_str(&format!(", {lost}% lost"));
    if let (Some(min), Some(max)) = (times_us.iter().min(), times_us.iter().max()) {
        let mean = times_us.iter().sum::<u64>() / times_us.len() as u64;
        line.push_str(&format!(
            "; round trip min/mean/max {}.{:03}/{}.{:03}/{}.{:03} ms",
            min / 1000,
            min % 1000,
            mean / 1000,
            mean % 1000,
            max / 1000,
            max % 1000
        ));
    }
    line.push_str("\r\n");
    line
}

/// The addresses of `name`, asked of the stack's DNS server.
fn lookup(kernel: &Kernel, stack: &mut Stack, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut query = stack
        .resolve_start(name)
        .map_err(|e| format!("{name}: {e}"))?;
    let started = kernel.now_ns();
    loop {
        stack.poll(kernel.now_ns()).map_err(|e| format!("{e}"))?;
        match stack.resolve_poll(&mut query) {
            Some(Ok(addresses)) if !addresses.is_empty() => return Ok(addresses),
            Some(Ok(_)) => return Err(format!("{name}: the DNS server gave no IPv4 address")),
            Some(Err(e)) => return Err(format!("{name}: {e}")),
            None if kernel.now_ns() - started > RESOLVE_TIMEOUT_NS => {
                stack.resolve_cancel(query);
                return Err(format!("{name}: no answer"));
            }
            None => {}
        }
    }
}

/// `A, B, C`.
fn listed(addresses: &[Ipv4Addr]) -> String {
    addresses
        .iter()
        .map(|a| format!("{a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `resolve NAME`: its IPv4 addresses through the first free interface, with the time
/// the answer took.
pub fn resolve(kernel: &Kernel, name: &str) -> Result<String, String> {
    let answers = Answers {
        icmp: false,
        dns: true,
    };
    let (_, mut stack, _) = bring_up(kernel, answers)?;
    let started = kernel.now_ns();
    let addresses = lookup(kernel, &mut stack, name)?;
    let us = (kernel.now_ns() - started) / 1000;
    Ok(format!(
        "{name}: {} ({}.{:03} ms)",
        listed(&addresses),
        us / 1000,
        us % 1000
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rexo_api::{Filter, NetBinding};

    /// How an interface at 10.0.2.15 is shared by `bindings` (apps with their filters).
    fn shared_by(bindings: &[(&'static str, &[&str])]) -> NetSharing {
        let address = rexo_api::Ipv4Config {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix: 24,
            router: None,
            dns: None,
        };
        let binding = |&(app, texts): &(&'static str, &[&str])| NetBinding {
            app,
            filters: texts
                .iter()
                .map(|text| format!("{}", Filter::parse(text).unwrap()))
                .collect(),
            delivered: 0,
            queued: 0,
            dropped: 0,
            sent: 0,
            refused: 0,
        };
        NetSharing {
            address,
            bindings: bindings.iter().map(binding).collect(),
            arp_answered: 0,
            arp_shared: 0,
            echo_answered: 0,
            unmatched: 0,
            fragments_dropped: 0,
        }
    }

    #[test]
    fn the_dns_block_overlaps_no_other_apps_filter() {
        // kv's UDP port, and another app resolving names from the first block: the
        // monitor's block is the next, disjoint from both. (Its filter used to take DNS
        // answers to every port, overlapping both: the kernel refused it.)
        let address = Ipv4Addr::new(10, 0, 2, 15);
        let resolver = DnsPorts::new(49152, 64).unwrap().filter(address);
        let sharing = shared_by(&[
            ("httpd", &["tcp dport 80"]),
            ("kv", &["tcp dport 11211", "udp dport 11211"]),
            ("resolver", &[&resolver]),
        ]);
        let block = dns_block(address, Some(&sharing), None).unwrap();
        assert_eq!((block.first(), block.count()), (49216, 64));
        let ours = [block.filter(address)];
        assert_eq!(overlaps(&ours, &sharing), Vec::<String>::new());
        // Tried again (an app bound an overlapping filter meanwhile): the one after.
        let next = dns_block(address, Some(&sharing), Some(block)).unwrap();
        assert_eq!(next.first(), 49280);
        // Alone on the interface: the first; every UDP datagram to the address taken by
        // another app: none.
        assert_eq!(
            dns_block(address, None, None).map(|b| b.first()),
            Some(49152)
        );
        let greedy = shared_by(&[("greedy", &["udp dst 10.0.2.15"])]);
        assert_eq!(dns_block(address, Some(&greedy), None), None);
        // After the last block (65472-65535) there is none, not a block of low ports.
        let last = DnsPorts::new(65472, 64).unwrap();
        assert_eq!(dns_block(address, None, Some(last)), None);
    }

    #[test]
    fn a_refused_binding_names_the_filters_it_overlaps() {
        let sharing = shared_by(&[
            ("httpd", &["tcp dport 80"]),
            ("kv", &["tcp dport 11211", "udp dport 11211"]),
            ("greedy", &["udp sport 53 dst 10.0.2.15"]),
        ]);
        let dns = DnsPorts::new(49152, 64).unwrap();
        let ours = [
            String::from("icmp dst 10.0.2.15"),
            dns.filter(Ipv4Addr::new(10, 0, 2, 15)),
        ];
        let notes = overlaps(&ours, &sharing);
        assert_eq!(notes.len(), 1, "{notes:?}");
        let greedy = format!("{}", Filter::parse("udp sport 53 dst 10.0.2.15").unwrap());
        assert_eq!(
            notes[0],
            format!("; '{}' overlaps greedy's '{greedy}'", ours[1])
        );
        assert_eq!(overlaps(&ours[..1], &sharing), Vec::<String>::new());
        // The notes follow a refused filter only, never another error.
        let overlap = NetError::Kernel(ApiError::FilterOverlap("kv"));
        let with_notes = refused(overlap, &ours, || Some(sharing.clone()));
        assert_eq!(with_notes, format!("{overlap}{}", notes[0]));
        let timeout = NetError::DhcpTimeout { waited_ms: 5000 };
        let asked = core::cell::Cell::new(false);
        let ask = || {
            asked.set(true);
            Some(sharing.clone())
        };
        assert_eq!(refused(timeout, &ours, ask), format!("{timeout}"));
        assert!(!asked.get(), "the sharing is not asked for another error");
    }

    #[test]
    fn the_summary_counts_corrupt_replies_apart() {
        let to = Ipv4Addr::new(10, 0, 2, 2);
        assert_eq!(
            ping_summary(to, 3, 3, 0, &[1500, 2000, 2500]),
            "10.0.2.2: 3 sent, 3 answered, 0% lost; round trip min/mean/max 1.500/2.000/2.500 ms\r\n"
        );
        // A corrupt reply is neither an answer nor a loss.
        assert_eq!(
            ping_summary(to, 4, 1, 2, &[1000]),
            "10.0.2.2: 4 sent, 1 answered, 2 corrupt, 25% lost; round trip min/mean/max 1.000/1.000/1.000 ms\r\n"
        );
        assert_eq!(
            ping_summary(to, 1, 0, 0, &[]),
            "10.0.2.2: 1 sent, 0 answered, 100% lost\r\n"
        );
    }
}
