//! httpd's counters and the live status page at `/`.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use alloc::format;
use rexo_api::{DeviceInfo, NetSharing};

/// What the server has done since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted.
    pub accepted: u64,
    /// Answers sent, by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Head bytes queued for sending.
    pub head_bytes: u64,
    /// Body bytes queued for sending.
    pub body_bytes: u64,
    /// Connections whose peer went away (closed or reset) before its answer was sent.
    pub broken: u64,
    /// Connections closed (or reset mid-answer) after being idle too long: no request
    /// byte and too few answer bytes acknowledged (`client::IDLE_TIMEOUT_NS`).
    pub idle_closed: u64,
    /// Connections answered 408 and closed because a request had not come whole within
    /// [`REQUEST_DEADLINE_NS`](crate::client::REQUEST_DEADLINE_NS) of its first byte.
    pub slow_closed: u64,
    /// Connections that had to be reset because their peer kept sending after an
    /// answer that closes (lingering, on smoltcp).
    pub linger_reset: u64,
    /// Connections reset at their close, when they would have drained their last
    /// answer, because the core's share of [`MAX_DRAINING`](crate::MAX_DRAINING) others
    /// were draining (on smoltcp: the stack held that many sockets closed in order).
    pub drain_reset: u64,
}

impl Counters {
    /// Counts one answer.
    pub fn answered(&mut self, code: u16) {
        *self.by_status.entry(code).or_insert(0) += 1;
    }

    /// Answers sent, all statuses together.
    pub fn requests(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Adds `other`'s counts (another core's) to these.
    pub fn add(&mut self, other: &Counters) {
        self.accepted += other.accepted;
        for (code, count) in &other.by_status {
            *self.by_status.entry(*code).or_insert(0) += count;
        }
        self.head_bytes += other.head_bytes;
        self.body_bytes += other.body_bytes;
        self.broken += other.broken;
        self.idle_closed += other.idle_closed;
        self.slow_closed += other.slow_closed;
        self.linger_reset += other.linger_reset;
        self.drain_reset += other.drain_reset;
    }
}

/// What the status page shows: the machine, the NIC's traffic and the server's counters.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    /// Cores the app has (its boot manifest entry's, else every core): not the machine's,
    /// which the kernel API does not give.
    pub cores: usize,
    /// Answers sent by each serving core (one entry per core serving the port).
    pub per_core: &'a [u64],
    /// Usable RAM, bytes.
    pub memory_usable: u64,
    /// RAM not handed out, bytes.
    pub memory_free: u64,
    /// The devices the kernel found.
    pub devices: &'a [DeviceInfo],
    /// Time since the server started, nanoseconds.
    pub uptime_ns: u64,
    /// The server's address, if it has one.
    pub address: Option<(rexo_net::Ipv4Addr, u8)>,
    /// The NIC adapter's counters.
    pub net: rexo_net::Counters,
    /// Connections open now.
    pub open: usize,
    /// The server's counters.
    pub counters: &'a Counters,
    /// How the kernel shares the interface by packet filters, when it does.
    pub sharing: Option<NetSharing>,
}

/// The status page: plain HTML, no script, readable without the stylesheet.
pub fn render(snapshot: &Snapshot<'_>) -> Vec<u8> {
    let mut page = String::with_capacity(4096);
    // Writing to a String cannot fail, so the results are ignored throughout.
    let _ = write_page(&mut page, snapshot);
    page.into_bytes()
}

/// Writes the page into `page`.
fn write_page(page: &mut String, s: &Snapshot<'_>) -> core::fmt::Result {
    const MIB: u64 = 1 << 20;
    let c = s.counters;
    page.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Rexo httpd status</title>\n<link rel=\"stylesheet\" href=\"/style.css\">\n\
         </head>\n<body>\n<h1><img src=\"/rexo.png\" alt=\"\" width=\"32\" height=\"32\"> \
         Rexo httpd</h1>\n<p><a href=\"/about.html\">about this server</a></p>\n",
    );
    page.push_str("<h2>Machine</h2>\n<table>\n");
    row(page, "cores given to httpd", format_args!("{}", s.cores))?;
    row(page, "serving cores", format_args!("{}", s.per_core.len()))?;
    row(
        page,
        "memory",
        format_args!(
            "{} MiB usable, {} MiB free",
            s.memory_usable / MIB,
            s.memory_free / MIB
        ),
    )?;
    row(
        page,
        "uptime",
        format_args!("{} s", s.uptime_ns / 1_000_000_000),
    )?;
    match s.address {
        Some((address, prefix)) => row(page, "address", format_args!("{address}/{prefix}"))?,
        None => row(page, "address", format_args!("none"))?,
    }
    page.push_str("</table>\n<h2>Devices</h2>\n<table>\n<tr><th>kind</th><th>index</th><th>driver</th><th>address</th><th>about</th><th>holder</th></tr>\n");
    for device in s.devices {
        write!(
            page,
            "<tr><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>",
            device.kind, device.index, device.driver, device.address
        )?;
        escape(page, &device.about);
        page.push_str("</td><td>");
        page.push_str(device.holder.unwrap_or("-"));
        page.push_str("</td></tr>\n");
    }
    page.push_str("</table>\n<h2>Requests</h2>\n<table>\n");
    row(page, "answers", format_args!("{}", c.requests()))?;
    page.push_str("<tr><th>answers per core</th><td>");
    for (core, answers) in s.per_core.iter().enumerate() {
        if core > 0 {
            page.push_str(" + ");
        }
        write!(page, "{answers}")?;
    }
    page.push_str("</td></tr>\n");
    for (code, count) in &c.by_status {
        row(page, "by status", format_args!("{code}: {count}"))?;
    }
    row(
        page,
        "bytes queued",
        format_args!("{} head, {} body", c.head_bytes, c.body_bytes),
    )?;
    page.push_str("</table>\n<h2>Connections</h2>\n<table>\n");
    row(page, "open", format_args!("{}", s.open))?;
    row(page, "accepted", format_args!("{}", c.accepted))?;
    row(page, "peer gone mid-answer", format_args!("{}", c.broken))?;
    row(page, "closed when idle", format_args!("{}", c.idle_closed))?;
    row(
        page,
        "closed for a slow request",
        format_args!("{}", c.slow_closed),
    )?;
    row(
        page,
        "reset while lingering",
        format_args!("{}", c.linger_reset),
    )?;
    row(
        page,
        "reset at close, every draining place taken",
        format_args!("{}", c.drain_reset),
    )?;
    page.push_str("</table>\n<h2>Network interface</h2>\n<table>\n");
    let n = &s.net;
    row(
        page,
        "received",
        format_args!("{} frames, {} bytes", n.rx_frames, n.rx_bytes),
    )?;
    row(
        page,
        "sent",
        format_args!("{} frames, {} bytes", n.tx_frames, n.tx_bytes),
    )?;
    row(
        page,
        "replies copied",
        format_args!("{} ({} bytes)", n.replies_copied, n.reply_bytes_copied),
    )?;
    row(
        page,
        "large segments cut by the NIC / by the stack",
        format_args!("{} / {}", n.segmented_by_nic, n.segmented_by_stack),
    )?;
    row(
        page,
        "waited for room in the NIC",
        format_args!("{}", n.tx_held),
    )?;
    row(page, "dropped", format_args!("{}", n.tx_dropped))?;
    row(
        page,
        "stale handshakes dropped",
        format_args!("{}", n.half_open_recycled),
    )?;
    row(
        page,
        "DHCP leases lost",
        format_args!("{}", n.dhcp_leases_lost),
    )?;
    row(
        page,
        "DHCP leases refused",
        format_args!("{}", n.dhcp_leases_refused),
    )?;
    page.push_str("</table>\n");
    if let Some(sharing) = &s.sharing {
        page.push_str("<h2>Packet filters</h2>\n<table>\n");
        let a = sharing.address;
        row(page, "address", format_args!("{}/{}", a.address, a.prefix))?;
        row(page, "kernel", format_args!("{sharing}"))?;
        for binding in &sharing.bindings {
            page.push_str("<tr><th>filter of ");
            escape(page, binding.app);
            page.push_str("</th><td>");
            escape(page, &format!("{binding}"));
            page.push_str("</td></tr>\n");
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body>\n</html>\n");
    Ok(())
}

/// Writes one table row.
fn row(page: &mut String, name: &str, value: core::fmt::Arguments<'_>) -> core::fmt::Result {
    writeln!(page, "<tr><th>{name}</th><td>{value}</td></tr>")
}

/// Appends `text` with HTML's special characters escaped (device descriptions come
/// from drivers, which read them from devices).
fn escape(page: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '<' => page.push_str("&lt;"),
            '>' => page.push_str("&gt;"),
            '&' => page.push_str("&amp;"),
            '"' => page.push_str("&quot;"),
            other => page.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_the_machine_and_the_counters() {
        let mut counters = Counters {
            accepted: 7,
            ..Counters::default()
        };
        counters.answered(200);
        counters.answered(200);
        counters.answered(404);
        let page = render(&Snapshot {
            cores: 2,
            per_core: &[2, 1],
            memory_usable: 256 << 20,
            memory_free: 200 << 20,
            devices: &[],
            uptime_ns: 5_000_000_000,
            address: Some((rexo_net::Ipv4Addr::new(10, 0, 2, 15), 24)),
            net: rexo_net::Counters {
                dhcp_leases_lost: 2,
                dhcp_leases_refused: 5,
                ..rexo_net::Counters::default()
            },
            open: 3,
            counters: &counters,
            sharing: None,
        });
        let page = String::from_utf8(page).unwrap();
        for expected in [
            // The app's cores, not the machine's: labelled so (it said "cores 1" on a
            // 2-core machine whose manifest gave httpd one).
            "<tr><th>cores given to httpd</th><td>2</td></tr>",
            "256 MiB usable, 200 MiB free",
            "<td>10.0.2.15/24</td>",
            "<tr><th>answers</th><td>3</td></tr>",
            "<tr><th>serving cores</th><td>2</td></tr>",
            "<tr><th>answers per core</th><td>2 + 1</td></tr>",
            "<td>200: 2</td>",
            "<td>404: 1</td>",
            "<tr><th>open</th><td>3</td></tr>",
            "<tr><th>accepted</th><td>7</td></tr>",
            "<tr><th>DHCP leases lost</th><td>2</td></tr>",
            "<tr><th>DHCP leases refused</th><td>5</td></tr>",
        ] {
            assert!(page.contains(expected), "{expected} missing from\n{page}");
        }
    }

    #[test]
    fn the_cores_counters_add_up() {
        let mut one = Counters {
            accepted: 2,
            head_bytes: 10,
            body_bytes: 100,
            broken: 1,
            ..Counters::default()
        };
        one.answered(200);
        one.answered(404);
        let mut two = Counters {
            accepted: 3,
            head_bytes: 5,
            body_bytes: 50,
            idle_closed: 4,
            slow_closed: 7,
            linger_reset: 6,
            drain_reset: 8,
            ..Counters::default()
        };
        two.answered(200);
        two.answered(304);
        one.add(&two);
        let mut by_status = BTreeMap::new();
        by_status.extend([(200, 2), (304, 1), (404, 1)]);
        assert_eq!(
            one,
            Counters {
                accepted: 5,
                by_status,
                head_bytes: 15,
                body_bytes: 150,
                broken: 1,
                idle_closed: 4,
                slow_closed: 7,
                linger_reset: 6,
                drain_reset: 8,
            }
        );
    }

    #[test]
    fn device_descriptions_are_escaped() {
        let mut page = String::new();
        escape(&mut page, "<b>\"AT&T\"</b>");
        assert_eq!(page, "&lt;b&gt;&quot;AT&amp;T&quot;&lt;/b&gt;");
    }
}
