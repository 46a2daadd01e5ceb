//! Serving one interface from several cores: a [`Stack`] per queue pair.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::RangeInclusive;

use rexo_api::device::PAIR_BROKEN;
use rexo_api::{ApiError, DeviceError, Kernel, NetDevice};

use crate::Ipv4Addr;
use crate::board::{Board, Seat};
use crate::lease::{DhcpClient, LeaseBoard, LeaseShare, RENEWER_PAIR};
use crate::stack::{Config, NetError, Stack, attach};

/// The stacks an app serves an interface with ([`attach_cores`]).
pub struct Cores {
    /// One stack per core: stack `i` receives and sends only on queue pair `i`, and the
    /// device keeps each flow on one pair. All have the interface's MAC and address.
    pub stacks: Vec<Stack>,
    /// Why there is one stack only, if so (for the app's log).
    pub one_core_because: Option<&'static str>,
    /// How the address came.
    pub config: Config,
    /// The lease the stacks' handles were split from (each stack holds it too, to reset
    /// the device): dropping it would end the lease and cut them, so it lives as long as
    /// this.
    _lease: Option<Arc<WholeDevice>>,
}

impl Cores {
    /// How the cores serve interface `nic`, for the app's start line: `": why"` when one
    /// stack serves ([`Cores::one_core_because`]), else `", a stack per queue pair of nic
    /// N"`.
    pub fn serving_how(&self, nic: usize) -> String {
        match self.one_core_because {
            Some(why) => alloc::format!(": {why}"),
            None => alloc::format!(", a stack per queue pair of nic {nic}"),
        }
    }
}

/// Reaches network interface `index` to serve it from up to `cores` cores. When the app
/// has a core per queue pair of the interface (two or more) and the driver splits them
/// ([`NetDevice::split_queues`]), the app holds the interface whole and gets a stack
/// per pair: with DHCP the lease is taken once over the whole interface (every receive
/// queue polled, wherever the server's answer lands), then every stack is configured
/// with its address and every DNS server it names, and pair 0's stack runs the DHCP
/// client on, starting from the counters of the stack that took the lease (the leases
/// it refused, the frames it moved): the server's answers reach it from whichever pair they land on, and every
/// stack takes each lease it renews or learns again, or drops the address when the
/// lease is lost ([`crate::Counters::dhcp_leases_lost`]); with
/// `ip=` every stack has that address, and each answers ARP and ping for what its pair
/// receives (the interface is then the app's alone: an app that binds to it later is
/// refused). The stacks share the ARP frames they receive, since the device puts ARP
/// on one pair, the ICMP errors about our own TCP's connections that land on another
/// stack's pair than the connection's, and the whole interface: a stack whose pair the device broke
/// ([`PAIR_BROKEN`]) resets the device through it and goes on. On a device that places
/// no flow by a hash, each stack opens connections and DNS queries from its pair's
/// share of the ports only (port modulo the pairs, the pair's index). Otherwise one stack
/// over [`attach`] (`filters` are its packet filters on a shared interface), and
/// [`Cores::one_core_because`] says why.
pub fn attach_cores(
    kernel: &Kernel,
    index: usize,
    filters: &[&str],
    cores: usize,
    dhcp_timeout_ns: u64,
) -> Result<Cores, NetError> {
    let why = match split(kernel, index, cores) {
        Ok((lease, handles)) => return per_pair(kernel, lease, handles, dhcp_timeout_ns),
        Err(why) => why,
    };
    let (nic, config) = attach(kernel, index, filters, dhcp_timeout_ns)?;
    Ok(Cores {
        stacks: alloc::vec![Stack::new(kernel, nic, 0, config)?],
        one_core_because: Some(why),
        config,
        _lease: None,
    })
}

/// Runs `serve` once for each of `each` (an app's per-core parts, such as its
/// [`Cores::stacks`]): part `i` on the app's core `i`, all at once, and returns when
/// every one has returned. One part is served on the calling core. The `usize` given
/// to `serve` is the part's (and its core's) place among the app's cores.
pub fn serve_on_cores<T: Send + 'static>(
    kernel: &Kernel,
    each: Vec<T>,
    serve: impl Fn(&Kernel, usize, T) + Send + Sync + 'static,
) -> Result<(), ApiError> {
    if each.len() == 1 {
        if let Some(part) = each.into_iter().next() {
            serve(kernel, 0, part);
        }
        return Ok(());
    }
    let slots: Vec<spin::Mutex<Option<T>>> = each
        .into_iter()
        .map(|part| spin::Mutex::new(Some(part)))
        .collect();
    kernel.run_on_every_core(Arc::new(move |kernel, core| {
        let part = slots.get(core).and_then(|slot| slot.lock().take());
        if let Some(part) = part {
            serve(kernel, core, part);
        }
    }))
}

/// The whole interface and its handles, one per queue pair.
type Split = (Box<dyn NetDevice>, Vec<Box<dyn NetDevice>>);

/// The whole interface and one handle per pair, or why not (nothing is held then).
fn split(kernel: &Kernel, index: usize, cores: usize) -> Result<Split, &'static str> {
    if cores < 2 {
        return Err("the app has one core");
    }
    let mut lease = kernel
        .open_net(index)
        .map_err(|_| "the interface is not the app's alone")?;
    let pairs = lease.info().queues;
    if pairs < 2 {
        return Err("the interface has one queue pair");
    }
    if pairs > cores {
        return Err("the interface has more queue pairs than the app has cores");
    }
    match lease.split_queues() {
        Ok(handles) => Ok((lease, handles)),
        Err(DeviceError::Unsupported(_)) => Err("the driver cannot split its queue pairs"),
        Err(_) => Err("splitting the queue pairs failed"),
    }
}

/// A stack per handle, all with the address `Config::from_kernel` gives or a DHCP
/// lease taken over the whole interface, which pair 0's stack then keeps renewing for
/// all.
fn per_pair(
    kernel: &Kernel,
    lease: Box<dyn NetDevice>,
    handles: Vec<Box<dyn NetDevice>>,
    dhcp_timeout_ns: u64,
) -> Result<Cores, NetError> {
    let config = Config::from_kernel(kernel, dhcp_timeout_ns);
    let random = &mut || kernel.random_u64();
    let (whole, stacks) = match config {
        Config::Static { .. } => {
            let whole = Arc::new(WholeDevice::new(lease));
            let now_ns = kernel.now_ns();
            let stacks = stacks_of_pairs(handles, config, &[], &whole, None, now_ns, random)?;
            (whole, stacks)
        }
        Config::Dhcp { .. } => {
            let leased = Stack::new(kernel, lease, 0, config)?;
            stacks_after_lease(leased, handles, kernel.now_ns(), random)?
        }
    };
    let predictable = stacks.iter().filter_map(Stack::predictable_seed);
    if let Some(error) = predictable.clone().next() {
        crate::stack::warn_predictable_seed(kernel, error, predictable.count());
    }
    Ok(Cores {
        stacks,
        one_core_because: None,
        config,
        _lease: Some(whole),
    })
}

/// A stack per handle (handle `i` is pair `i`, its clock at `now_ns`, seeded by draws of
/// `random`) after `leased`, the stack that took a DHCP lease over the whole interface:
/// each with the address leased and every DNS server the lease named, pair 0's running
/// `leased`'s DHCP client on and starting from its counters (the leases it refused, the
/// frames it moved while it leased), which would otherwise be lost with it, and guarding
/// the address as `leased` did (its announcements due, not a new round); with the
/// whole interface, shared ([`stacks_of_pairs`]). [`NetError::NoAddress`] when `leased`
/// has no address.
pub(crate) fn stacks_after_lease(
    mut leased: Stack,
    handles: Vec<Box<dyn NetDevice>>,
    now_ns: u64,
    random: &mut dyn FnMut() -> Result<u64, ApiError>,
) -> Result<(Arc<WholeDevice>, Vec<Stack>), NetError> {
    let dhcp_client = leased.take_dhcp_client();
    let counters = leased.counters();
    let guard = leased.take_guard();
    let (lease, config, dns_servers) = leased.into_parts();
    let config = config.ok_or(NetError::NoAddress)?;
    let whole = Arc::new(WholeDevice::new(lease));
    let mut stacks = stacks_of_pairs(
        handles,
        config,
        &dns_servers,
        &whole,
        dhcp_client,
        now_ns,
        random,
    )?;
    if let Some(renewer) = stacks.get_mut(RENEWER_PAIR) {
        renewer.carry_counters(counters);
        if let Some(guard) = guard {
            renewer.carry_guard(guard);
        }
    }
    Ok((whole, stacks))
}

/// A stack per handle (handle `i` is pair `i`), its clock at `now_ns`, each with the
/// fixed `config` and asking every one of `dns_servers` in turn (all a lease named,
/// so that each stack's resolver fails over as a single stack's does; none: the
/// config's own DNS server, which `Stack::start` set), sharing the
/// ARP frames they receive and the ICMP errors about each other's connections of our
/// own TCP ([`IcmpBoard`]), and resetting the device through `whole`. With the
/// `dhcp_client` that leased `config`, pair 0's stack runs it to keep the lease, and
/// the stacks share it ([`LeaseBoard`]): the server's answers reach pair 0's stack
/// whichever pair they land on, and every stack takes each lease it renews or learns
/// again, or drops the address when the lease is lost. Each stack takes its pair's
/// class of the local ports ([`PortClass`], all of them on a device with RSS). Each stack's seed is a draw of
/// `random` (the kernel's [`Kernel::random_u64`]) with its pair's index stirred in
/// ([`Stack::start`]), so no two are alike when the kernel has no random number.
pub(crate) fn stacks_of_pairs(
    handles: Vec<Box<dyn NetDevice>>,
    config: Config,
    dns_servers: &[Ipv4Addr],
    whole: &Arc<WholeDevice>,
    mut dhcp_client: Option<DhcpClient>,
    now_ns: u64,
    random: &mut dyn FnMut() -> Result<u64, ApiError>,
) -> Result<Vec<Stack>, NetError> {
    let pairs = handles.len();
    let board = Arc::new(ArpBoard::default());
    let icmp_board = Arc::new(IcmpBoard::default());
    let lease_board = dhcp_client
        .is_some()
        .then(|| Arc::new(LeaseBoard::default()));
    handles
        .into_iter()
        .enumerate()
        .map(|(pair, handle)| {
            let mut stack = Stack::start(handle, 0, config, now_ns, random())?;
            if !dns_servers.is_empty() {
                stack.set_dns_servers(dns_servers);
            }
            stack.share_arp(ArpShare::new(board.clone(), pair));
            stack.share_icmp(IcmpShare::new(icmp_board.clone(), pair));
            stack.share_ports(PortClass::of_pair(pair, pairs));
            stack.reset_through(whole.clone());
            if pair != RENEWER_PAIR {
                stack.leave_guard();
            }
            if let Some(lease_board) = &lease_board {
                let client = (pair == RENEWER_PAIR).then(|| dhcp_client.take()).flatten();
                let share = LeaseShare::new(lease_board.clone(), pair, client.is_some());
                stack.share_lease(share, client);
            }
            Ok(stack)
        })
        .collect()
}

/// The local ports a stack takes for what it opens (connections, DNS queries). On a
/// split device that places no flow by a hash (virtio-net over a multi-queue tap, which
/// sends a flow's frames to the queue that last sent on it), two stacks opening one
/// four-tuple would take each other's flow, or each other's DNS answers: pair `pair`
/// of `pairs` takes only the ports `port % pairs == pair`. A single stack, or one pair
/// of a device that places flows by RSS (where a port is taken only when its replies
/// hash to the stack's own pair), takes every port ([`PortClass::ALL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PortClass {
    /// The remainder of the class's ports.
    pair: u16,
    /// The divisor: how many classes the ports are cut into.
    pairs: u16,
}

impl PortClass {
    /// Every port.
    pub(crate) const ALL: Self = Self { pair: 0, pairs: 1 };

    /// The ports of pair `pair` of `pairs` (every port for one pair or none, or a pair
    /// out of the range or beyond what a port can count).
    pub(crate) fn of_pair(pair: usize, pairs: usize) -> Self {
        match (u16::try_from(pair), u16::try_from(pairs)) {
            (Ok(pair), Ok(pairs)) if pair < pairs => Self { pair, pairs },
            _ => Self::ALL,
        }
    }

    /// The first port of `ports` in the class (past `ports` when it holds none).
    fn first_in(self, ports: &RangeInclusive<u16>) -> u32 {
        let (start, pairs) = (u32::from(*ports.start()), u32::from(self.pairs));
        start + (u32::from(self.pair) + pairs - start % pairs) % pairs
    }

    /// How many ports of `ports` the class holds.
    pub(crate) fn count_in(self, ports: &RangeInclusive<u16>) -> u32 {
        let (first, end) = (self.first_in(ports), u32::from(*ports.end()));
        if first > end {
            0
        } else {
            (end - first) / u32::from(self.pairs) + 1
        }
    }

    /// The `index`th port of `ports` in the class, counting from 0 (`index` below
    /// [`count_in`](Self::count_in)).
    pub(crate) fn nth_in(self, ports: &RangeInclusive<u16>, index: u32) -> u16 {
        (self.first_in(ports) + index * u32::from(self.pairs)) as u16
    }
}

/// The whole interface a stack's queue pair was split from, shared by the stacks of its
/// pairs: a pair's handle cannot reset the device, and one the device broke answers
/// [`PAIR_BROKEN`] until a call through the whole interface resets it
/// ([`WholeDevice::reset`]).
pub(crate) struct WholeDevice {
    /// The lease; its lock lets one stack at a time call through it.
    lease: spin::Mutex<Box<dyn NetDevice>>,
}

impl WholeDevice {
    /// `lease`, shared.
    pub(crate) fn new(lease: Box<dyn NetDevice>) -> Self {
        Self {
            lease: spin::Mutex::new(lease),
        }
    }

    /// Makes the call through the whole interface that resets a device which broke a
    /// pair's rings, renewing every pair (the driver resets only while a pair is
    /// broken: when several stacks meet [`PAIR_BROKEN`] at once, the first call resets
    /// and the others, taking the lock after it, find nothing to do). A device that
    /// breaks a ring again at once answers [`PAIR_BROKEN`] here too: the next poll calls
    /// again, and the driver gives the device up after a few resets with no frame in
    /// between. Any other error (the device given up, the lease revoked) is returned.
    pub(crate) fn reset(&self) -> Result<(), DeviceError> {
        match self.lease.lock().transmit_pending(0) {
            Ok(_) | Err(PAIR_BROKEN) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// An ARP frame's length: the Ethernet header and the 28-byte IPv4 ARP packet.
pub(crate) const ARP_FRAME: usize = 14 + 28;
/// ARP frames the board keeps: a stack that polls less often than this many arrive
/// misses the older ones and asks again (ARP's own retry).
const ARP_KEPT: usize = 16;
/// Where ARP's operation field is in the frame, and a reply's value.
pub(crate) const ARP_OPERATION: usize = 14 + 6;
pub(crate) const ARP_REPLY: [u8; 2] = [0, 2];

/// The ARP frames the stacks of one interface received, for the others. The device
/// spreads frames by flow and ARP is no flow: the answer to a stack's ARP request, or
/// the peer's request that would teach it the peer's address, may land on another
/// stack's pair.
pub(crate) type ArpBoard = Board<[u8; ARP_FRAME], ARP_KEPT>;

/// A stack's place on its interface's [`ArpBoard`].
pub(crate) struct ArpShare(Seat<[u8; ARP_FRAME], ARP_KEPT>);

impl ArpShare {
    /// The place of the stack of queue pair `pair` on `board`.
    pub(crate) fn new(board: Arc<ArpBoard>, pair: usize) -> Self {
        Self(Seat::new(board, pair))
    }

    /// Posts `frame` if it is ARP, for the other stacks.
    pub(crate) fn post(&mut self, frame: &[u8]) {
        if frame.len() < ARP_FRAME || frame[12..14] != [0x08, 0x06] {
            return;
        }
        let mut copy = [0u8; ARP_FRAME];
        copy.copy_from_slice(&frame[..ARP_FRAME]);
        self.0.post(copy);
    }

    /// Hands every frame the other stacks posted since the last call to `learn`, a
    /// request turned into a reply: it teaches the sender's address just the same, and
    /// the stack that received it has answered it already.
    pub(crate) fn take(&mut self, mut learn: impl FnMut(&[u8])) {
        self.0.take(|mut frame| {
            frame[ARP_OPERATION..ARP_OPERATION + 2].copy_from_slice(&ARP_REPLY);
            learn(&frame);
        });
    }
}

/// ICMP errors the board keeps: a stack that polls less often than this many arrive
/// misses the older ones ([`crate::OwnCounters::icmp_missed`]).
const ICMP_KEPT: usize = 16;

/// The ICMP destination-unreachable messages about our own TCP's segments that landed on
/// a stack without the quoted connection, for the stack that holds it. The device
/// places an ICMP message by its own addresses (the router's and ours), not by the
/// flow it quotes, so a "fragmentation needed" about one stack's connection lands on
/// any pair (RSS on the 82574; a multi-queue tap's hash of a flow it never saw sent).
pub(crate) type IcmpBoard = Board<rexo_tcp::Unreachable, ICMP_KEPT>;

/// A stack's place on its interface's [`IcmpBoard`]: [`Seat::post`] posts a message for
/// the other stacks, [`Seat::take`] hands every message they posted since the last call
/// and returns how many it missed, pushed out by later ones.
pub(crate) type IcmpShare = Seat<rexo_tcp::Unreachable, ICMP_KEPT>;

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP frame of `operation` (1 request, 2 reply) from `sender`.
    fn arp(operation: u8, sender: u8) -> Vec<u8> {
        let mut frame = alloc::vec![0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        frame[ARP_OPERATION + 1] = operation;
        frame[22 + 5] = sender;
        frame
    }

    #[test]
    fn arp_frames_reach_the_other_stacks_as_replies() {
        let board = Arc::new(ArpBoard::default());
        let share = |pair| ArpShare::new(board.clone(), pair);
        let (mut zero, mut one) = (share(0), share(1));
        zero.post(&arp(1, 7));
        // Not ARP: ignored.
        let mut ipv4 = arp(1, 8);
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        zero.post(&ipv4);
        one.post(&arp(2, 9));
        let taken = |share: &mut ArpShare| {
            let mut frames = Vec::new();
            share.take(|frame| frames.push(frame.to_vec()));
            frames
        };
        // Each gets the other's frame only, a request turned into a reply, once.
        let for_one = taken(&mut one);
        assert_eq!(for_one.len(), 1);
        assert_eq!(for_one[0][ARP_OPERATION..ARP_OPERATION + 2], ARP_REPLY);
        assert_eq!(for_one[0][27], 7);
        assert_eq!(for_one[0].len(), ARP_FRAME);
        let for_zero = taken(&mut zero);
        assert_eq!(for_zero.len(), 1);
        assert_eq!(for_zero[0][27], 9);
        assert!(taken(&mut one).is_empty());
        assert!(taken(&mut zero).is_empty());
        // The board keeps the last ARP_KEPT only.
        for sender in 0..40 {
            zero.post(&arp(2, sender));
        }
        let last = taken(&mut one);
        assert_eq!(last.len(), ARP_KEPT);
        assert_eq!(last[ARP_KEPT - 1][27], 39);
    }

    /// A "fragmentation needed" about the connection from port 80 to `port`.
    fn too_big(port: u16) -> rexo_tcp::Unreachable {
        rexo_tcp::Unreachable {
            code: 4,
            next_hop_mtu: 1400,
            to: [10, 0, 0, 1],
            tuple: rexo_tcp::Tuple {
                local: [10, 0, 0, 1],
                local_port: 80,
                remote: [10, 0, 0, 2],
                remote_port: port,
            },
            quoted_len: 1500,
            quoted_header: 20,
            seq: rexo_tcp::Seq(7),
        }
    }

    #[test]
    fn icmp_errors_reach_the_other_stacks_and_those_pushed_out_are_counted_missed() {
        let board = Arc::new(IcmpBoard::default());
        let (mut zero, mut one) = (IcmpShare::new(board.clone(), 0), IcmpShare::new(board, 1));
        let taken = |share: &mut IcmpShare| {
            let mut ports = Vec::new();
            let missed = share.take(|message| ports.push(message.tuple.remote_port));
            (ports, missed)
        };
        zero.post(too_big(1));
        one.post(too_big(2));
        assert_eq!(taken(&mut one), (alloc::vec![1], 0));
        assert_eq!(taken(&mut zero), (alloc::vec![2], 0));
        assert_eq!(taken(&mut one), (alloc::vec![], 0));
        // Both poll late: of pair 0's 20 and pair 1's 4, the board keeps the last 16,
        // 14 of pair 0's and 2 of pair 1's; a stack's own are no loss to it.
        for port in 0..20 {
            zero.post(too_big(100 + port));
            if port % 5 == 0 {
                one.post(too_big(200 + port));
            }
        }
        let (ports, missed) = taken(&mut one);
        assert_eq!(ports, (106..120).collect::<Vec<_>>());
        assert_eq!(missed, 6);
        assert_eq!(taken(&mut zero), (alloc::vec![210, 215], 2));
    }
}
