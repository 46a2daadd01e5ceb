//! The monitor's network commands, `net`, `ping` and `resolve`, through the TCP/IP
//! library OS (`rexo-net`) on the first network interface no app holds. Each command
//! opens the interface, takes an address by DHCP (or the kernel command line's `ip=`),
//! does its work and gives the interface back, so that an app run afterwards (`run
//! httpd-test`, `run kv`) can open it. With `ip=` the kernel owns the address and the monitor binds
//! packet filters for the answers each command waits for instead, beside the apps that
//! share the interface (the default `cargo xtask run`: httpd beside the monitor); DNS
//! answers to a block of 64 ports its queries go from, one no other app's filter
//! overlaps ([`dns_block`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rexo_api::{ApiError, DeviceInfo, DeviceKind, Kernel, NetSharing};
use rexo_net::{Config, DnsPorts, DnsQuery, EchoReply, Ipv4Addr, NetError, PingSocket, Stack};

use crate::{Host, Input};

/// How long DHCP may take before the command gives up.
const DHCP_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long a name may take to resolve: rexo-net's resolver gives up after 10 s.
const RESOLVE_TIMEOUT_NS: u64 = 11_000_000_000;
/// How long `ping` waits for each answer.
const PING_TIMEOUT_NS: u64 = 1_000_000_000;
/// How long `ping` waits between two requests (as the classic `ping`).
const PING_INTERVAL_NS: u64 = 1_000_000_000;
/// How long `ping` naps between two looks at the network and the keyboard (its core
/// halts meanwhile); a round trip it says is late by up to this.
const PING_NAP_NS: u64 = 100_000;
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
        let mut dns = Vec::new();
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
                dns = dns_filters(&next, address).to_vec();
                filters.extend(dns.iter().cloned());
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
            && sharing().is_some_and(|sharing| !overlaps(&dns, &sharing).is_empty());
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
/// whose filters for answers to `address` ([`dns_filters`]) overlap no filter of the
/// apps sharing the interface as `sharing` says (an app resolving names with its own
/// block, kv's `udp dport 11211`). `None` when every block from there overlaps, or
/// `after` is the last block (65472-65535).
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
            sharing.is_none_or(|sharing| overlaps(&dns_filters(block, address), sharing).is_empty())
        })
}

/// The filters that take the answers to the monitor's DNS queries from `block` sent from
/// `address`: over UDP, and over TCP for a truncated answer asked again (without the
/// second, the kernel withdraws that connection's SYN on a shared interface).
fn dns_filters(block: &DnsPorts, address: Ipv4Addr) -> [String; 2] {
    [block.filter(address), block.tcp_filter(address)]
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
/// absence) said as it comes, then the summary; Ctrl-C on `input` stops it early (what
/// else is typed meanwhile is kept for the command line). The error is for a command
/// that could not start (no interface, no lease) or a NIC that failed.
pub fn ping(
    kernel: &Kernel,
    to: Host<'_>,
    count: u16,
    say: &dyn Fn(&str),
    input: &mut Input<'_>,
) -> Result<(), String> {
    let answers = Answers {
        icmp: true,
        dns: matches!(to, Host::Name(_)),
    };
    let (device, mut stack, _) = bring_up(kernel, answers)?;
    let (address, _) = stack.address().ok_or("the interface has no address")?;
    let to = match to {
        Host::Address(to) => to,
        Host::Name(name) => {
            let addresses = lookup(kernel, &mut stack, name, input)?;
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
    let mut link = StackLink {
        kernel,
        stack: &mut stack,
        socket: &socket,
        to,
        nic: device.index,
        input,
    };
    let tally = echo_requests(&mut link, count, say)?;
    stack
        .ping_close(socket)
        .map_err(|error| format!("{error}"))?;
    say(&ping_summary(to, &tally));
    Ok(())
}

/// What `ping`'s requests go through: the network, the clock, the core's naps and the
/// keyboard (a trait, so that host tests can drive [`echo_requests`]).
trait PingLink {
    /// Nanoseconds since boot.
    fn now_ns(&self) -> u64;
    /// Sends echo request `seq`.
    fn send(&mut self, seq: u16) -> Result<(), String>;
    /// Moves what the NIC holds and what waits to go (ARP answered meanwhile); an
    /// error is the NIC's, and ends `ping`.
    fn poll(&mut self) -> Result<(), String>;
    /// The reply to request `seq`, if it has come; an error when the stack gave
    /// requests up ([`NetError::NoArpAnswer`]: their next hop answered no ARP).
    fn reply(&mut self, seq: u16) -> Result<Option<EchoReply>, NetError>;
    /// Halts the core for [`PING_NAP_NS`] (or until an interrupt).
    fn nap(&mut self);
    /// Whether Ctrl-C was typed since the last look.
    fn interrupted(&mut self) -> bool;
}

/// The [`PingLink`] of a `ping` in Rexo: `stack`'s ping `socket` to `to`, on NIC `nic`.
struct StackLink<'a, 'k> {
    kernel: &'a Kernel,
    stack: &'a mut Stack,
    socket: &'a PingSocket,
    to: Ipv4Addr,
    nic: usize,
    input: &'a mut Input<'k>,
}

impl PingLink for StackLink<'_, '_> {
    fn now_ns(&self) -> u64 {
        self.kernel.now_ns()
    }

    fn send(&mut self, seq: u16) -> Result<(), String> {
        self.stack
            .ping_send(self.socket, self.to, seq, PING_DATA)
            .map_err(|error| format!("{error}"))
    }

    fn poll(&mut self) -> Result<(), String> {
        self.stack
            .poll(self.kernel.now_ns())
            .map(|_| ())
            .map_err(|e| format!("nic {}: {e}", self.nic))
    }

    fn reply(&mut self, seq: u16) -> Result<Option<EchoReply>, NetError> {
        let to = self.to;
        self.stack
            .ping_recv(self.socket, PING_DATA)
            .map(|reply| reply.filter(|r| r.seq == seq && r.from == to))
    }

    fn nap(&mut self) {
        self.kernel.sleep_ns(PING_NAP_NS);
    }

    fn interrupted(&mut self) -> bool {
        self.input.interrupted()
    }
}

/// What `ping`'s requests came to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Requests sent.
    sent: u16,
    /// Requests the stack refused to send.
    not_sent: u16,
    /// Replies that brought the request's data back.
    answered: u16,
    /// Replies whose data differed (neither answered nor lost).
    corrupt: u16,
    /// The answered ones' round trips, in microseconds.
    times_us: Vec<u64>,
}

/// Sends `count` echo requests through `link` a second apart, each waited for
/// [`PING_TIMEOUT_NS`], saying each answer (or its absence) as it comes; the core naps
/// between looks, and Ctrl-C stops the requests at the next look.
fn echo_requests(link: &mut dyn PingLink, count: u16, say: &dyn Fn(&str)) -> Result<Tally, String> {
    let mut tally = Tally::default();
    for seq in 0..count {
        let sent = link.now_ns();
        let mut stopped = false;
        if let Err(error) = link.send(seq) {
            tally.not_sent += 1;
            say(&format!("seq {seq}: not sent: {error}\r\n"));
        } else {
            tally.sent += 1;
            let reply = loop {
                link.poll()?;
                let reply = link.reply(seq);
                if !matches!(reply, Ok(None)) || link.now_ns() - sent >= PING_TIMEOUT_NS {
                    break reply;
                }
                if link.interrupted() {
                    stopped = true;
                    break Ok(None);
                }
                link.nap();
            };
            match reply {
                Ok(Some(reply)) if !reply.intact => {
                    tally.corrupt += 1;
                    say(&format!(
                        "seq {seq}: corrupt reply from {}: its {} data bytes are not the {} sent\r\n",
                        reply.from,
                        reply.len,
                        PING_DATA.len()
                    ));
                }
                Ok(Some(reply)) => {
                    let us = (link.now_ns() - sent) / 1000;
                    tally.answered += 1;
                    tally.times_us.push(us);
                    say(&format!(
                        "{} bytes from {}: seq {seq}, time {}.{:03} ms\r\n",
                        reply.len,
                        reply.from,
                        us / 1000,
                        us % 1000
                    ));
                }
                Ok(None) if stopped => {}
                Ok(None) => say(&format!("seq {seq}: no answer within 1 s\r\n")),
                // The next hop answered no ARP: the requests the stack dropped unsent
                // (this one, if it was queued yet, and those before it to that next
                // hop, answered by none) were not sent after all.
                Err(error) => {
                    if let NetError::NoArpAnswer { dropped, .. } = error {
                        let dropped = u16::try_from(dropped).unwrap_or(u16::MAX);
                        let dropped = dropped.min(tally.sent);
                        tally.sent -= dropped;
                        tally.not_sent += dropped;
                    }
                    say(&format!("seq {seq}: {error}\r\n"));
                }
            }
        }
        // A second between requests, answering ARP meanwhile; none after the last.
        while !stopped && seq + 1 < count && link.now_ns() - sent < PING_INTERVAL_NS {
            link.poll()?;
            stopped = link.interrupted();
            if !stopped {
                link.nap();
            }
        }
        if stopped {
            say("^C\r\n");
            break;
        }
    }
    Ok(tally)
}

/// `ping`'s last line, to `to`: the requests sent (those the stack refused said apart),
/// those that got their data back (with their round trips), those that got other data
/// (said only when there were some; neither answered nor lost), and the share of those
/// sent that got nothing.
fn ping_summary(to: Ipv4Addr, tally: &Tally) -> String {
    let mut line = format!("{to}: {} sent", tally.sent);
    if tally.not_sent > 0 {
        line.push_str(&format!(", {} not sent", tally.not_sent));
    }
    line.push_str(&format!(", {} answered", tally.answered));
    if tally.corrupt > 0 {
        line.push_str(&format!(", {} corrupt", tally.corrupt));
    }
    if tally.sent > 0 {
        let lost =
            u32::from(tally.sent - tally.answered - tally.corrupt) * 100 / u32::from(tally.sent);
        line.push_str(&format!(", {lost}% lost"));
    }
    let times_us = &tally.times_us;
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

/// The addresses of `name`, asked of the stack's DNS server; Ctrl-C on `input` stops
/// the wait.
fn lookup(
    kernel: &Kernel,
    stack: &mut Stack,
    name: &str,
    input: &mut Input<'_>,
) -> Result<Vec<Ipv4Addr>, String> {
    let query = stack
        .resolve_start(name)
        .map_err(|e| format!("{name}: {e}"))?;
    let mut link = QueryLink {
        kernel,
        stack,
        query: Some(query),
        input,
    };
    wait_for_addresses(&mut link, name)
}

/// What a name's lookup waits through: the network, the clock, the core's naps and the
/// keyboard (a trait, so that host tests can drive [`wait_for_addresses`]).
trait LookupLink {
    /// Nanoseconds since boot.
    fn now_ns(&self) -> u64;
    /// Moves what the NIC holds and what waits to go; then the query's answer if it
    /// came (the addresses, or why there are none). An error is the NIC's.
    fn poll(&mut self) -> Result<Option<Result<Vec<Ipv4Addr>, NetError>>, NetError>;
    /// Gives the query up.
    fn cancel(&mut self);
    /// Halts the core for [`PING_NAP_NS`] (or until an interrupt).
    fn nap(&mut self);
    /// Whether Ctrl-C was typed since the last look.
    fn interrupted(&mut self) -> bool;
}

/// The [`LookupLink`] of a lookup in Rexo: `stack`'s `query`, until it is given up.
struct QueryLink<'a, 'k> {
    kernel: &'a Kernel,
    stack: &'a mut Stack,
    query: Option<DnsQuery>,
    input: &'a mut Input<'k>,
}

impl LookupLink for QueryLink<'_, '_> {
    fn now_ns(&self) -> u64 {
        self.kernel.now_ns()
    }

    fn poll(&mut self) -> Result<Option<Result<Vec<Ipv4Addr>, NetError>>, NetError> {
        self.stack.poll(self.kernel.now_ns())?;
        Ok(self
            .query
            .as_mut()
            .and_then(|query| self.stack.resolve_poll(query)))
    }

    fn cancel(&mut self) {
        if let Some(query) = self.query.take() {
            self.stack.resolve_cancel(query);
        }
    }

    fn nap(&mut self) {
        self.kernel.sleep_ns(PING_NAP_NS);
    }

    fn interrupted(&mut self) -> bool {
        self.input.interrupted()
    }
}

/// Waits through `link` for the addresses of `name`, up to [`RESOLVE_TIMEOUT_NS`], the
/// core napping between looks, as [`echo_requests`] does; Ctrl-C gives the query up at
/// the next look.
fn wait_for_addresses(link: &mut dyn LookupLink, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let started = link.now_ns();
    loop {
        match link.poll().map_err(|e| format!("{e}"))? {
            Some(Ok(addresses)) if !addresses.is_empty() => return Ok(addresses),
            Some(Ok(_)) => return Err(format!("{name}: the DNS server gave no IPv4 address")),
            Some(Err(e)) => return Err(format!("{name}: {e}")),
            None if link.now_ns() - started > RESOLVE_TIMEOUT_NS => {
                link.cancel();
                return Err(format!("{name}: no answer"));
            }
            None if link.interrupted() => {
                link.cancel();
                return Err(format!("{name}: ^C, stopped waiting for the answer"));
            }
            None => link.nap(),
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
/// the answer took; Ctrl-C on `input` stops the wait.
pub fn resolve(kernel: &Kernel, name: &str, input: &mut Input<'_>) -> Result<String, String> {
    let answers = Answers {
        icmp: false,
        dns: true,
    };
    let (_, mut stack, _) = bring_up(kernel, answers)?;
    let started = kernel.now_ns();
    let addresses = lookup(kernel, &mut stack, name, input)?;
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
        assert_eq!(
            overlaps(&dns_filters(&block, address), &sharing),
            Vec::<String>::new()
        );
        // An app taking TCP answers from port 53 to the first two blocks (its own
        // lookups over TCP): the block after them, whose answers over TCP come to us.
        let tcp_resolver = DnsPorts::new(49152, 128).unwrap().tcp_filter(address);
        let tcp_sharing = shared_by(&[("resolver", &[&tcp_resolver])]);
        let beside_tcp = dns_block(address, Some(&tcp_sharing), None).unwrap();
        assert_eq!(beside_tcp.first(), 49280);
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
        let tally = |sent, answered, corrupt, times_us: &[u64]| Tally {
            sent,
            not_sent: 0,
            answered,
            corrupt,
            times_us: times_us.to_vec(),
        };
        assert_eq!(
            ping_summary(to, &tally(3, 3, 0, &[1500, 2000, 2500])),
            "10.0.2.2: 3 sent, 3 answered, 0% lost; round trip min/mean/max 1.500/2.000/2.500 ms\r\n"
        );
        // A corrupt reply is neither an answer nor a loss.
        assert_eq!(
            ping_summary(to, &tally(4, 1, 2, &[1000])),
            "10.0.2.2: 4 sent, 1 answered, 2 corrupt, 25% lost; round trip min/mean/max 1.000/1.000/1.000 ms\r\n"
        );
        assert_eq!(
            ping_summary(to, &tally(1, 0, 0, &[])),
            "10.0.2.2: 1 sent, 0 answered, 100% lost\r\n"
        );
    }

    /// A [`PingLink`] whose clock moves 1 us at each look and [`PING_NAP_NS`] at each
    /// nap: the stack refuses to send the requests in `refused`, a reply to those in
    /// `answered` is there at the first poll after they went, the stack says it dropped
    /// `dropped` requests unsent (`NoArpAnswer`) while request `at` of `given_up` is
    /// waited for, and Ctrl-C is typed after `ctrl_c_after` naps.
    #[derive(Default)]
    struct FakeLink {
        now_ns: core::cell::Cell<u64>,
        refused: Vec<u16>,
        given_up: Option<(u16, usize)>,
        answered: Vec<u16>,
        ctrl_c_after: Option<usize>,
        sent: Vec<u16>,
        polls: usize,
        naps: usize,
    }

    impl PingLink for FakeLink {
        fn now_ns(&self) -> u64 {
            self.now_ns.set(self.now_ns.get() + 1000);
            self.now_ns.get()
        }

        fn send(&mut self, seq: u16) -> Result<(), String> {
            if self.refused.contains(&seq) {
                return Err(String::from("unreachable"));
            }
            self.sent.push(seq);
            Ok(())
        }

        fn poll(&mut self) -> Result<(), String> {
            self.polls += 1;
            Ok(())
        }

        fn reply(&mut self, seq: u16) -> Result<Option<EchoReply>, NetError> {
            if let Some((at, dropped)) = self.given_up
                && at == seq
            {
                return Err(NetError::NoArpAnswer {
                    next_hop: Ipv4Addr::new(10, 0, 2, 9),
                    dropped,
                });
            }
            let answered = self.answered.contains(&seq) && self.sent.contains(&seq);
            Ok(answered.then(|| EchoReply {
                from: Ipv4Addr::new(10, 0, 2, 2),
                seq,
                len: PING_DATA.len(),
                intact: true,
            }))
        }

        fn nap(&mut self) {
            self.naps += 1;
            self.now_ns.set(self.now_ns.get() + PING_NAP_NS);
        }

        fn interrupted(&mut self) -> bool {
            self.ctrl_c_after.is_some_and(|naps| self.naps >= naps)
        }
    }

    /// [`echo_requests`] of `count` through `link`: the tally and what it said.
    fn run(link: &mut FakeLink, count: u16) -> (Tally, String) {
        let said = core::cell::RefCell::new(String::new());
        let tally = echo_requests(link, count, &|text: &str| said.borrow_mut().push_str(text));
        (tally.unwrap(), said.into_inner())
    }

    #[test]
    fn a_request_the_stack_did_not_send_is_not_counted_as_sent() {
        let mut link = FakeLink {
            refused: vec![1],
            answered: vec![0, 2],
            ..FakeLink::default()
        };
        let (tally, said) = run(&mut link, 3);
        assert!(said.contains("seq 1: not sent: unreachable"), "{said}");
        assert_eq!(
            (tally.sent, tally.not_sent, tally.answered),
            (2, 1, 2),
            "{said}"
        );
        let summary = ping_summary(Ipv4Addr::new(10, 0, 2, 2), &tally);
        assert!(
            summary.starts_with("10.0.2.2: 2 sent, 1 not sent, 2 answered, 0% lost;"),
            "{summary}"
        );
        let none_sent = Tally {
            not_sent: 4,
            ..Tally::default()
        };
        assert_eq!(
            ping_summary(Ipv4Addr::new(10, 0, 2, 2), &none_sent),
            "10.0.2.2: 0 sent, 4 not sent, 0 answered\r\n"
        );
    }

    /// The requests the stack dropped for want of an ARP answer, the one waited for
    /// and those before it, are counted as not sent, not as sent and lost.
    #[test]
    fn requests_dropped_for_want_of_an_arp_answer_are_not_counted_as_sent() {
        let mut link = FakeLink {
            given_up: Some((3, 4)),
            ..FakeLink::default()
        };
        let (tally, said) = run(&mut link, 4);
        assert!(
            said.contains("seq 3: 10.0.2.9 answered no ARP request within 3 s"),
            "{said}"
        );
        assert_eq!((tally.sent, tally.not_sent, tally.answered), (0, 4, 0));
        assert_eq!(
            ping_summary(Ipv4Addr::new(10, 0, 2, 2), &tally),
            "10.0.2.2: 0 sent, 4 not sent, 0 answered\r\n"
        );
        // Only the dropped ones: a request answered before stays sent.
        let mut link = FakeLink {
            answered: vec![0],
            given_up: Some((2, 1)),
            ..FakeLink::default()
        };
        let (tally, said) = run(&mut link, 3);
        assert_eq!(
            (tally.sent, tally.not_sent, tally.answered),
            (2, 1, 1),
            "{said}"
        );
    }

    #[test]
    fn ping_naps_between_looks_at_the_network() {
        let mut link = FakeLink::default();
        let (tally, said) = run(&mut link, 2);
        assert!(said.contains("seq 1: no answer within 1 s"), "{said}");
        assert_eq!(tally.sent, 2);
        // About a look per nap, not a busy loop of looks.
        assert!(
            link.naps > 0 && link.polls <= link.naps + 4,
            "{} polls, {} naps",
            link.polls,
            link.naps
        );
    }

    #[test]
    fn ctrl_c_stops_ping_at_the_next_look() {
        let mut link = FakeLink {
            ctrl_c_after: Some(10),
            ..FakeLink::default()
        };
        let (tally, said) = run(&mut link, 5);
        assert_eq!((tally.sent, tally.answered), (1, 0), "{said}");
        assert!(
            said.ends_with("^C\r\n") && !said.contains("no answer"),
            "{said}"
        );
        assert!(link.now_ns.get() < PING_TIMEOUT_NS, "stopped at once");
        // Stopped in the pause between two requests, too.
        let mut link = FakeLink {
            answered: vec![0, 1],
            ctrl_c_after: Some(10),
            ..FakeLink::default()
        };
        let (tally, said) = run(&mut link, 5);
        assert_eq!((tally.sent, tally.answered), (1, 1), "{said}");
    }

    /// A [`LookupLink`] whose clock moves 1 us at each look and [`PING_NAP_NS`] at each
    /// nap: the answer comes at poll `answer_at` (never when `None`), and Ctrl-C is
    /// typed after `ctrl_c_after` naps.
    #[derive(Default)]
    struct FakeLookup {
        now_ns: core::cell::Cell<u64>,
        answer_at: Option<usize>,
        ctrl_c_after: Option<usize>,
        polls: usize,
        naps: usize,
        cancelled: bool,
    }

    impl LookupLink for FakeLookup {
        fn now_ns(&self) -> u64 {
            self.now_ns.set(self.now_ns.get() + 1000);
            self.now_ns.get()
        }

        fn poll(&mut self) -> Result<Option<Result<Vec<Ipv4Addr>, NetError>>, NetError> {
            self.polls += 1;
            let answered = self.answer_at.is_some_and(|at| self.polls >= at);
            Ok(answered.then(|| Ok(vec![Ipv4Addr::new(10, 0, 2, 2)])))
        }

        fn cancel(&mut self) {
            self.cancelled = true;
        }

        fn nap(&mut self) {
            self.naps += 1;
            self.now_ns.set(self.now_ns.get() + PING_NAP_NS);
        }

        fn interrupted(&mut self) -> bool {
            self.ctrl_c_after.is_some_and(|naps| self.naps >= naps)
        }
    }

    #[test]
    fn a_lookup_naps_between_looks_and_gives_up_after_its_timeout() {
        let mut link = FakeLookup {
            answer_at: Some(20),
            ..FakeLookup::default()
        };
        assert_eq!(
            wait_for_addresses(&mut link, "rexo.test"),
            Ok(vec![Ipv4Addr::new(10, 0, 2, 2)])
        );
        assert_eq!((link.polls, link.naps), (20, 19));
        // No answer: a nap per look until the timeout, then the query given up.
        let mut link = FakeLookup::default();
        assert_eq!(
            wait_for_addresses(&mut link, "rexo.test"),
            Err(String::from("rexo.test: no answer"))
        );
        assert!(link.cancelled);
        assert!(link.now_ns.get() > RESOLVE_TIMEOUT_NS);
        assert!(
            link.polls <= link.naps + 2,
            "{} polls, {} naps",
            link.polls,
            link.naps
        );
    }

    #[test]
    fn ctrl_c_stops_a_lookup_at_the_next_look() {
        let mut link = FakeLookup {
            ctrl_c_after: Some(10),
            ..FakeLookup::default()
        };
        let why = wait_for_addresses(&mut link, "rexo.test").unwrap_err();
        assert_eq!(why, "rexo.test: ^C, stopped waiting for the answer");
        assert!(link.cancelled);
        assert_eq!(link.naps, 10);
    }
}
