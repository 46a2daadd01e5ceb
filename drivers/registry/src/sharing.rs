//! Shared network interfaces: the MIT exokernel's packet filters on the receive path.
//!
//! Apps bind to the frames they want with declarative filters (`rexo-pktfilter`); the
//! registry refuses a filter that overlaps another app's, merges them into one decision
//! tree, and runs it on every frame a poll takes off the device:
//!
//! - a frame of the polling app is handed to it in place, in its DMA buffer;
//! - a frame of another app is queued for that app (a copy, bounded per app and for all
//!   the interface's apps together, its heap taken fallibly, drops counted) and handed
//!   to it at its next poll; with one device queue per app this copy would go;
//! - ARP requests for the interface's address (`ip=`) and ARP replies are the kernel's
//!   before any filter sees them, whatever an app's filter names (`arp`, a MAC, a
//!   padding byte): it answers the requests and gives the replies to every bound app
//!   (their stacks learn neighbours from them);
//! - IPv4 frames no filter can place are the kernel's before any filter sees them too: a
//!   later fragment (its ports are in its first fragment, whose flow it belongs to) is
//!   dropped and counted, and a header with options (which moves the ports from where
//!   the filters read them) goes to the default owner;
//! - an ICMP error message to the interface's address (destination unreachable, time
//!   exceeded, parameter problem) goes to the app whose filters take the answer to the
//!   TCP or UDP datagram it quotes, whatever filter names ICMP: a router's
//!   "fragmentation needed" reaches the stack that sent the datagram (Path MTU
//!   Discovery); one whose quoted flow no app takes is judged like any frame;
//! - a frame no filter takes goes to the default owner, the kernel: it answers ICMP
//!   echo requests for the interface's address from a single host (RFC 1122 3.2.1.3),
//!   and drops and counts the rest.
//!
//! Sending is checked in place too: an app's frame goes out only if it comes from the
//! interface's MAC and is an ARP request from the interface's MAC and address
//! (sender fields included) or is IPv4 from its address, with a 20-byte header (the rules
//! find the ports at fixed offsets, which IP options would move), not a later fragment
//! (which names no port, and would join whichever datagram it claims), matching the
//! transmit rule of one of its filters: the frame with its ends traded (MACs, addresses,
//! ports) must match the filter, payload bytes included, so the port it receives on is
//! the only port it sends from and two apps told apart by a payload byte send only their
//! own (a TCP payload byte read past the frame's TCP options, `TCP_PAYLOAD`, so options
//! cannot slip another's tag past the rule); or is of another EtherType that one of its
//! filters names whole, matching that filter with only the MACs traded
//! (`Filter::link_transmit_rule`: no EtherType a filter does not name); otherwise the
//! fill is withdrawn before the device sees it, and counted. A TCP frame the device cuts
//! into segments is judged as each segment will go too (its headers, options included,
//! then its own payload), so a payload byte a rule names is the app's own in every
//! segment, not only the first.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;

use rexo_api::{
    ApiError, DeviceError, Filter, Ipv4Config, MAX_APP_BINDINGS, MAX_BINDING_FILTERS,
    MAX_INTERFACE_BINDINGS, NetBinding, NetDevice, NetInfo, NetSharing,
};
use rexo_devio::Found;
use rexo_pktfilter::{Filters, InsertError, MAX_ATOMS, TCP_PAYLOAD, checksum};

use crate::appcode::{AppCode, calling_app};
use crate::{Binder, Holder, Slot, SlotState};

/// Frames queued for one app before more are dropped (about 190 KB of full frames).
const BACKLOG: usize = 128;
/// Bytes of frames queued for all the apps bound to one interface together before more
/// are dropped (about 690 full frames: the backlogs of 5 apps that stopped polling),
/// where [`BACKLOG`] alone let 64 bindings hold 12.4 MB of kernel heap, taken by other
/// apps' polls and never given back to the allocator's other users.
const MAX_BACKLOG_BYTES: usize = 1 << 20;
/// Answers the kernel queues during one poll before it drops requests.
const MAX_REPLIES: usize = 32;

/// EtherType of IPv4.
const IPV4: [u8; 2] = [0x08, 0x00];
/// The first byte of an IPv4 header without options: version 4, 5 words.
const IPV4_NO_OPTIONS: u8 = 0x45;
/// EtherType of ARP.
const ARP: [u8; 2] = [0x08, 0x06];
/// The IPv4 protocol number of ICMP.
const ICMP: u8 = 1;
/// The ICMP types of error messages, which quote the datagram they are about (RFC
/// 792): destination unreachable, time exceeded, parameter problem.
const ICMP_ERRORS: [u8; 3] = [3, 11, 12];
/// The IPv4 protocol numbers of TCP and UDP, whose ports the filters read.
const PORT_PROTOCOLS: [u8; 2] = [6, 17];
/// Bytes of an ARP packet for IPv4 over Ethernet, with its Ethernet header.
const ARP_FRAME: usize = 42;

/// One app bound to the interface.
struct Endpoint {
    /// The app.
    holder: Holder,
    /// Its binding's number on this interface (the filters' owner).
    id: u64,
    /// What IPv4 it may send: one rule per filter ([`Filter::transmit_rule`]).
    rules: Vec<Filter>,
    /// What frames of other EtherTypes it may send: one rule per filter that names one
    /// ([`Filter::link_transmit_rule`]).
    link_rules: Vec<Filter>,
    /// Frames another app's poll found for it.
    backlog: VecDeque<Vec<u8>>,
    /// Its counters, as [`NetBinding`] shows them.
    counters: NetBinding,
}

impl Endpoint {
    /// Queues a copy of `frame` for this app, `held` counting the bytes of every backlog
    /// of the interface, or counts it dropped: past [`BACKLOG`] frames, past
    /// [`MAX_BACKLOG_BYTES`] for the interface, or when the heap has no room for the
    /// copy (a failed allocation would end the polling app's call, here under the slot's
    /// lock).
    fn queue(&mut self, frame: &[u8], held: &mut usize) {
        let room = self.backlog.len() < BACKLOG && *held + frame.len() <= MAX_BACKLOG_BYTES;
        let mut copy = Vec::new();
        if room
            && copy.try_reserve_exact(frame.len()).is_ok()
            && self.backlog.try_reserve(1).is_ok()
        {
            copy.extend_from_slice(frame);
            self.backlog.push_back(copy);
            *held += frame.len();
            self.counters.queued += 1;
        } else {
            self.counters.dropped += 1;
        }
    }
}

/// The demultiplexing state of a shared interface, in its slot.
pub(crate) struct Sharing {
    /// Every bound app's filters, merged; the owner is the binding's number, the app
    /// its holder's.
    filters: Filters<u64>,
    /// The bound apps.
    endpoints: Vec<Endpoint>,
    /// Bytes of the frames in all the endpoints' backlogs ([`MAX_BACKLOG_BYTES`]).
    backlog_bytes: usize,
    /// The interface's address, which the kernel answers for.
    address: Ipv4Config,
    /// The interface's MAC address.
    mac: [u8; 6],
    /// Answers made during a poll, sent when the device is free again (and counted
    /// answered once it took them).
    replies: Vec<Vec<u8>>,
    /// The kernel's counters (its bindings filled in when asked).
    counters: NetSharing,
}

impl Sharing {
    /// Queues a copy of `frame` for binding `id`, or counts it dropped.
    fn queue_for(&mut self, id: u64, frame: &[u8]) {
        if let Some(endpoint) = self.endpoints.iter_mut().find(|e| e.id == id) {
            endpoint.queue(frame, &mut self.backlog_bytes);
        }
    }

    /// Counts `reply`, an answer of the kernel's ([`Self::replies`]), once the device
    /// took it: an ARP reply or an echo reply.
    fn answered(&mut self, reply: &[u8]) {
        match ethertype(reply) {
            Some(ARP) => self.counters.arp_answered += 1,
            _ => self.counters.echo_answered += 1,
        }
    }

    /// The kernel's part in the ARP frames its answers and the apps' stacks depend on,
    /// taken before any filter judges them (an app's filter cannot take them): it
    /// answers requests for the interface's address and gives replies to every bound
    /// app. Returns whether the polling binding `caller` gets the frame, or `None` for
    /// any other frame (the filters judge it).
    fn take_arp(&mut self, frame: &[u8], caller: u64) -> Option<bool> {
        if ethertype(frame) != Some(ARP) || !is_ipv4_arp(frame) {
            return None;
        }
        match arp_operation(frame) {
            ARP_REQUEST if frame[38..42] == self.address.address.octets() => {
                if self.replies.len() < MAX_REPLIES {
                    self.replies.push(arp_reply(frame, self.mac));
                } else {
                    self.counters.unmatched += 1;
                }
                Some(false)
            }
            ARP_REPLY => {
                for endpoint in self.endpoints.iter_mut().filter(|e| e.id != caller) {
                    endpoint.queue(frame, &mut self.backlog_bytes);
                }
                self.counters.arp_shared += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// The kernel's part in the IPv4 frames no filter may judge, taken before the tree
    /// sees them: a later fragment (a fragment offset other than 0) belongs to its first
    /// fragment's flow (RFC 791) but carries no ports, so no filter can tell whose it is
    /// (a filter on the offset would take every app's): dropped and counted; a header
    /// with options (or of another version) moves the ports from the fixed offsets the
    /// filters read them at: the default owner's ([`answer`](Self::answer)). Returns
    /// whether it took `frame`.
    fn take_unplaceable_ipv4(&mut self, frame: &[u8]) -> bool {
        if ethertype(frame) != Some(IPV4) || frame.len() < 22 {
            return false;
        }
        if frame[14] >> 4 == 4 && is_later_fragment(frame) {
            self.counters.fragments_dropped += 1;
        } else if frame[14] != IPV4_NO_OPTIONS {
            self.answer(frame);
        } else {
            return false;
        }
        true
    }

    /// The binding an ICMP error message to the interface's address is about: the one
    /// whose filters take the answer to the datagram it quotes (the quoted IPv4 header,
    /// without options, and first 8 bytes of a TCP or UDP datagram from the address,
    /// with its two ends traded: what the peer would answer that datagram with). So a
    /// router's "fragmentation needed" (Path MTU Discovery) or "port unreachable"
    /// reaches the stack that sent the datagram, which RFC 1122 (3.2.2) has ICMP hand
    /// it to, whatever filter names ICMP (a `ping`'s `icmp dst ADDRESS`). `None` for
    /// any other frame, or one whose quoted flow no binding takes: the filters judge it.
    fn quoted_flow_owner(&self, frame: &[u8]) -> Option<u64> {
        let address = self.address.address.octets();
        // Past a 20-byte IPv4 header (`take_unplaceable_ipv4` took those with options)
        // and the 8-byte ICMP header.
        let quote = frame.get(42..70)?;
        let error = ethertype(frame) == Some(IPV4)
            && frame[23] == ICMP
            && frame[30..34] == address
            && ICMP_ERRORS.contains(&frame[34]);
        if !error || quote[0] != IPV4_NO_OPTIONS || quote[12..16] != address {
            return None;
        }
        if !PORT_PROTOCOLS.contains(&quote[9]) {
            return None;
        }
        // On the stack: this runs for every ICMP error frame, under the sharing lock.
        let mut answer = [0; 42];
        answer[..14].copy_from_slice(&frame[..14]);
        answer[14..26].copy_from_slice(&quote[..12]);
        answer[26..30].copy_from_slice(&quote[16..20]);
        answer[30..34].copy_from_slice(&quote[12..16]);
        answer[34..36].copy_from_slice(&quote[22..24]);
        answer[36..38].copy_from_slice(&quote[20..22]);
        answer[38..42].copy_from_slice(&quote[24..28]);
        self.filters.classify(&answer)
    }

    /// The default owner's part for a frame no filter took: it answers ICMP echo
    /// requests for the interface's address and drops the rest.
    fn answer(&mut self, frame: &[u8]) {
        let room = self.replies.len() < MAX_REPLIES;
        let reply = (room && ethertype(frame) == Some(IPV4))
            .then(|| echo_reply(frame, self.mac, self.address))
            .flatten();
        match reply {
            Some(reply) => self.replies.push(reply),
            None => self.counters.unmatched += 1,
        }
    }

    /// Whether `endpoint` may send `frame`: from the interface's MAC; ARP requests
    /// from its MAC and address (neighbours learn that pair from them); IPv4 with a
    /// 20-byte header (the rules read ports at fixed offsets, which options would move),
    /// not a later fragment (which names no port: any app's would join the datagram of
    /// the flow it claims), from its address matching one of its rules; a frame of
    /// another EtherType matching one of its link rules (so of an EtherType one of its
    /// filters names).
    fn permits(&self, endpoint: &Endpoint, frame: &[u8]) -> bool {
        if frame.len() < 14 || frame[6..12] != self.mac {
            return false;
        }
        let address = self.address.address.octets();
        match ethertype(frame) {
            Some(ARP) => {
                is_ipv4_arp(frame)
                    && arp_operation(frame) == ARP_REQUEST
                    && frame[22..28] == self.mac
                    && frame[28..32] == address
            }
            Some(IPV4) => {
                frame.len() >= 34
                    && frame[14] == IPV4_NO_OPTIONS
                    && !is_later_fragment(frame)
                    && frame[26..30] == address
                    && Filter::any_matches(&endpoint.rules, frame)
            }
            _ => Filter::any_matches(&endpoint.link_rules, frame),
        }
    }

    /// Whether `endpoint` may send each segment a device cuts from the TCP `frame` at
    /// `mss` payload bytes: that segment's headers as `frame`'s (TCP options included),
    /// then its payload, which the rules read from `TCP_PAYLOAD` on, so a rule naming
    /// payload bytes judges every segment's, not only the first's. Only rules reaching
    /// past the fixed headers cost a look per segment (up to `max_frame` bytes copied). A frame that fits `max_frame` goes whole, and one the
    /// driver will not cut is refused by it (`NotSegmentable`).
    fn permits_each_segment(
        &self,
        endpoint: &Endpoint,
        frame: &[u8],
        (mss, max_frame): (usize, usize),
    ) -> bool {
        if frame.len() <= max_frame {
            return true;
        }
        let Ok(cut) = rexo_api::device::check_tcp_segmentation(frame, mss, max_frame) else {
            return true;
        };
        let reach = endpoint
            .rules
            .iter()
            .flat_map(Filter::atoms)
            .map(|atom| usize::from(atom.offset) + usize::from(atom.width))
            .max()
            .unwrap_or(0);
        let (headers, payload) = frame.split_at(cut.header_len);
        // Payload bytes a rule reads, wherever the TCP options end (`TCP_PAYLOAD`).
        let payload_start = usize::from(TCP_PAYLOAD);
        let Some(read) = reach.checked_sub(payload_start).filter(|&read| read > 0) else {
            return true;
        };
        let mut segment = Vec::new();
        if segment
            .try_reserve_exact(headers.len() + read.min(mss))
            .is_err()
        {
            return false;
        }
        payload.chunks(mss).all(|piece| {
            segment.clear();
            segment.extend_from_slice(headers);
            segment.extend_from_slice(&piece[..read.min(piece.len())]);
            self.permits(endpoint, &segment)
        })
    }

    /// The sharing as the monitor's `net` shows it.
    fn report(&self) -> NetSharing {
        NetSharing {
            bindings: self.endpoints.iter().map(|e| e.counters.clone()).collect(),
            ..self.counters.clone()
        }
    }
}

/// The EtherType of `frame`, if it has an Ethernet header.
fn ethertype(frame: &[u8]) -> Option<[u8; 2]> {
    frame.get(12..14).map(|t| [t[0], t[1]])
}

/// Whether the IPv4 frame `frame` (at least 22 bytes) is a later fragment of its
/// datagram: its fragment offset is not 0 (the field of the atom the filters' port
/// words use, read here whatever the total length says: a datagram too short to hold
/// the field is malformed, not a fragment, and no port filter takes it).
fn is_later_fragment(frame: &[u8]) -> bool {
    // The atom's field is 2 bytes wide (its offset and mask from the one definition).
    let rexo_pktfilter::Atom { offset, mask, .. } = rexo_pktfilter::FIRST_FRAGMENT;
    let at = usize::from(offset);
    u32::from(u16::from_be_bytes([frame[at], frame[at + 1]])) & mask != 0
}

/// ARP's request and reply operations (RFC 826: a 16-bit field).
const ARP_REQUEST: u16 = 1;
/// See [`ARP_REQUEST`].
const ARP_REPLY: u16 = 2;

/// The operation of the whole ARP packet `frame` ([`is_ipv4_arp`]): both bytes, so
/// that 0x0101 is no request.
fn arp_operation(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[20], frame[21]])
}

/// Whether `frame` is a whole ARP packet for IPv4 over Ethernet.
fn is_ipv4_arp(frame: &[u8]) -> bool {
    frame.len() >= ARP_FRAME && frame[14..20] == [0, 1, 8, 0, 6, 4]
}

/// The answer to the ARP request `request`: `mac` has the address asked for.
fn arp_reply(request: &[u8], mac: [u8; 6]) -> Vec<u8> {
    let mut reply = request[..ARP_FRAME].to_vec();
    reply[0..6].copy_from_slice(&request[22..28]);
    reply[6..12].copy_from_slice(&mac);
    reply[21] = 2;
    reply[22..28].copy_from_slice(&mac);
    reply[28..32].copy_from_slice(&request[38..42]);
    reply[32..42].copy_from_slice(&request[22..32]);
    reply
}

/// Whether the kernel may answer a datagram from `source` (IPv4) sent by `source_mac`:
/// RFC 1122 3.2.1.3 has a host discard one whose source is no single host (0.0.0.0,
/// loopback, multicast, the limited broadcast or the subnet's, which `address` tells)
/// or whose Ethernet source is a group address, rather than answer a whole group.
fn answerable_source(source: [u8; 4], source_mac: [u8; 6], address: Ipv4Config) -> bool {
    let ip = core::net::Ipv4Addr::from(source);
    let group_mac = source_mac[0] & 1 != 0;
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_broadcast()
        || address.broadcast() == Some(ip)
        || group_mac)
}

/// The echo reply to `frame` if it is a sound ICMP echo request for `address` (both
/// checksums right, lengths consistent) from a single host ([`answerable_source`]);
/// `None` for anything else.
fn echo_reply(frame: &[u8], mac: [u8; 6], address: Ipv4Config) -> Option<Vec<u8>> {
    let header = usize::from(*frame.get(14)? & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]));
    let sound = frame[14] >> 4 == 4
        && header >= 20
        && total >= header + 8
        && frame.len() >= 14 + total
        && frame[23] == 1
        && frame[30..34] == address.address.octets()
        && answerable_source(
            core::array::from_fn(|at| frame[26 + at]),
            core::array::from_fn(|at| frame[6 + at]),
            address,
        )
        && frame[14 + header] == 8
        && checksum(&frame[14..14 + header]) == 0
        && checksum(&frame[14 + header..14 + total]) == 0;
    if !sound {
        return None;
    }
    let mut reply = frame[..14 + total].to_vec();
    reply[0..6].copy_from_slice(&frame[6..12]);
    reply[6..12].copy_from_slice(&mac);
    reply[22] = 64;
    reply[24..26].fill(0);
    reply[26..30].copy_from_slice(&frame[30..34]);
    reply[30..34].copy_from_slice(&frame[26..30]);
    let ip = checksum(&reply[14..14 + header]);
    reply[24..26].copy_from_slice(&ip.to_be_bytes());
    let icmp = 14 + header;
    reply[icmp] = 0;
    reply[icmp + 2..icmp + 4].fill(0);
    let sum = checksum(&reply[icmp..14 + total]);
    reply[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
    Some(reply)
}

/// Binds `holder` to the frames of `slot`'s interface that match `filters`: all of them
/// or none. No filter (a binding that would take nothing but hold a place), more than
/// [`MAX_BINDING_FILTERS`] filters, a filter of more than [`MAX_ATOMS`] atoms (a
/// transmit rule may have more, and is a `Filter` an app could pass), an app holding
/// [`MAX_APP_BINDINGS`] bindings on the interface, or an interface holding
/// [`MAX_INTERFACE_BINDINGS`] bindings, is refused before anything is allocated or
/// checked, so an app's list cannot make the kernel work or grow its heap without bound
/// under the slot's lock, and no app can take every place and lock the others out.
pub(crate) fn bind(
    (slot, binder): (&'static Slot, &'static dyn Binder),
    holder: Holder,
    filters: &[Filter],
    address: Option<Ipv4Config>,
) -> Result<Box<dyn NetDevice>, ApiError> {
    let address = address.ok_or(ApiError::NoAddress)?;
    if filters.is_empty() {
        return Err(ApiError::NoFilters);
    }
    if filters.len() > MAX_BINDING_FILTERS {
        return Err(ApiError::TooManyFilters {
            max: MAX_BINDING_FILTERS,
        });
    }
    if filters
        .iter()
        .any(|filter| filter.atoms().len() > MAX_ATOMS)
    {
        return Err(ApiError::TooManyAtoms { max: MAX_ATOMS });
    }
    let mut guard = crate::reentry::lock(slot, binder.core_index()).map_err(ApiError::Device)?;
    let state = &mut *guard;
    if let Some((_, current)) = state.holder {
        return Err(ApiError::DeviceBusy(current));
    }
    let Found::Net(nic) = &state.device else {
        return Err(ApiError::NoSuchDevice);
    };
    if let Some(sharing) = &state.sharing {
        let apps_own = endpoints_of(sharing, holder.0).count();
        if apps_own >= MAX_APP_BINDINGS {
            return Err(ApiError::TooManyBindings {
                max: MAX_APP_BINDINGS,
            });
        }
        if sharing.endpoints.len() >= MAX_INTERFACE_BINDINGS {
            return Err(ApiError::TooManyBindings {
                max: MAX_INTERFACE_BINDINGS,
            });
        }
    }
    let info = nic.info();
    let sharing = state.sharing.get_or_insert_with(|| Sharing {
        filters: Filters::new(),
        endpoints: Vec::new(),
        backlog_bytes: 0,
        address,
        mac: info.mac,
        replies: Vec::new(),
        counters: NetSharing {
            address,
            bindings: Vec::new(),
            arp_answered: 0,
            arp_shared: 0,
            echo_answered: 0,
            unmatched: 0,
            fragments_dropped: 0,
        },
    });
    state.generation += 1;
    let id = state.generation;
    if let Err(refused) = sharing.filters.insert_all(filters, id, u64::from(holder.0)) {
        let error = match refused {
            // An overlap among its own filters names the app itself.
            InsertError::Overlaps { owner, .. } => ApiError::FilterOverlap(
                sharing
                    .endpoints
                    .iter()
                    .find(|e| e.id == owner)
                    .map_or(holder.1, |e| e.holder.1),
            ),
            InsertError::TooManyTests { max } => ApiError::TooManyFilterTests { max },
            InsertError::OverShare { share } => ApiError::FilterTestShare { share },
        };
        if sharing.endpoints.is_empty() {
            state.sharing = None;
        }
        return Err(error);
    }
    sharing.endpoints.push(Endpoint {
        holder,
        id,
        rules: filters.iter().map(Filter::transmit_rule).collect(),
        link_rules: filters
            .iter()
            .filter_map(Filter::link_transmit_rule)
            .collect(),
        backlog: VecDeque::new(),
        counters: NetBinding {
            app: holder.1,
            filters: filters.iter().map(|f| format!("{f}")).collect(),
            delivered: 0,
            queued: 0,
            dropped: 0,
            sent: 0,
            refused: 0,
        },
    });
    slot.members.publish(state);
    Ok(Box::new(Bound {
        slot,
        binder,
        id,
        info,
    }))
}

/// The app a shared interface shows as its holder (the first bound), if any.
pub(crate) fn first_holder(state: &SlotState) -> Option<Holder> {
    bound_apps(state).next()
}

/// The apps bound to the interface, one per binding, the first bound first.
pub(crate) fn bound_apps(state: &SlotState) -> impl Iterator<Item = Holder> + '_ {
    state
        .sharing
        .iter()
        .flat_map(|sharing| sharing.endpoints.iter().map(|e| e.holder))
}

/// App `owner`'s bindings on the interface, oldest first.
fn endpoints_of(sharing: &Sharing, owner: u16) -> impl Iterator<Item = &Endpoint> {
    sharing
        .endpoints
        .iter()
        .filter(move |e| e.holder.0 == owner)
}

/// Ends every binding of app `owner` on `slot` (`state`, its lock): its handles go dead.
/// Returns the app as its first binding held it, or `None` when it had none.
pub(crate) fn unbind_all_of(slot: &Slot, state: &mut SlotState, owner: u16) -> Option<Holder> {
    let sharing = state.sharing.as_ref()?;
    let holder = endpoints_of(sharing, owner).next()?.holder;
    let ids: Vec<u64> = endpoints_of(sharing, owner).map(|e| e.id).collect();
    unbind(slot, state, &ids);
    Some(holder)
}

/// Ends bindings `ids` on `slot` (`state`, its lock): their filters go (the tree rebuilt
/// once for all of them), and the sharing with its last binding (each logged with its
/// counters); the slot publishes the apps still bound ([`crate::reentry::Members`]).
pub(crate) fn unbind(slot: &Slot, state: &mut SlotState, ids: &[u64]) {
    let Some(sharing) = &mut state.sharing else {
        return;
    };
    sharing.filters.remove_owners(ids);
    let held = &mut sharing.backlog_bytes;
    sharing.endpoints.retain(|endpoint| {
        let ended = ids.contains(&endpoint.id);
        if ended {
            log::info!("net: unbound {}", endpoint.counters);
            *held -= endpoint.backlog.iter().map(Vec::len).sum::<usize>();
        }
        !ended
    });
    if sharing.endpoints.is_empty() {
        log::info!("net: sharing ended: {}", sharing.counters);
        state.sharing = None;
    }
    slot.members.publish(state);
}

/// How `state`'s interface is shared, if it is.
pub(crate) fn report(state: &SlotState) -> Option<NetSharing> {
    state.sharing.as_ref().map(Sharing::report)
}

/// An app's binding on a shared interface.
struct Bound {
    /// The interface's slot.
    slot: &'static Slot,
    /// The kernel's abort points for the app's code ([`calling_app`]).
    binder: &'static dyn Binder,
    /// The binding's number.
    id: u64,
    /// The interface as it was at binding.
    info: NetInfo,
}

impl Bound {
    /// Runs `call` with the device, the sharing and the binding's place in the sharing's
    /// endpoints if the binding is still there (the place holds for the whole call: the
    /// slot stays locked), marked as this core's call ([`crate::reentry`]), in one kernel
    /// section ([`calling_app`]) whose app's code `call` runs through the [`AppCode`] it
    /// is given; then ends the bindings the app's code dropped inside it.
    fn with<T>(
        &self,
        call: impl FnOnce(
            &mut AppCode,
            &mut dyn NetDevice,
            &mut Sharing,
            usize,
        ) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        calling_app(self.binder, |app| {
            let core = self.binder.core_index();
            let mut guard = crate::reentry::lock(self.slot, core)?;
            crate::reentry::during(self.slot, &mut guard, (self.binder, core), |state| {
                let (Found::Net(nic), Some(sharing)) = (&mut state.device, &mut state.sharing)
                else {
                    return Err(DeviceError::Revoked);
                };
                let index = sharing
                    .endpoints
                    .iter()
                    .position(|e| e.id == self.id)
                    .ok_or(DeviceError::Revoked)?;
                call(app, nic.as_mut(), sharing, index)
            })
        })
    }
}

impl Bound {
    /// Runs `send` with the device and a check of a filled frame's source against this
    /// binding's filters (given the frame and, for one the device may cut, its segment
    /// size and the largest frame: every segment judged), and counts the frame sent or
    /// refused (withdrawn as spoofed).
    fn send_checked(
        &mut self,
        send: impl FnOnce(
            &mut AppCode,
            &mut dyn NetDevice,
            &mut dyn FnMut(&[u8], Option<(usize, usize)>) -> bool,
        ) -> Result<(), DeviceError>,
    ) -> Result<(), DeviceError> {
        self.with(|app, nic, sharing, index| {
            let mut spoofed = false;
            let mut permits = |frame: &[u8], cut: Option<(usize, usize)>| {
                let endpoint = &sharing.endpoints[index];
                spoofed = !(sharing.permits(endpoint, frame)
                    && cut.is_none_or(|cut| sharing.permits_each_segment(endpoint, frame, cut)));
                !spoofed
            };
            let result = send(app, nic, &mut permits);
            let counters = &mut sharing.endpoints[index].counters;
            match result {
                Ok(()) => counters.sent += 1,
                Err(DeviceError::Withdrawn) if spoofed => counters.refused += 1,
                Err(_) => {}
            }
            result
        })
    }
}

impl NetDevice for Bound {
    fn info(&self) -> NetInfo {
        self.info.clone()
    }

    fn receive(
        &mut self,
        queue: usize,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, DeviceError> {
        let id = self.id;
        self.with(|app, nic, sharing, index| {
            let mut handed = 0;
            let endpoint = &mut sharing.endpoints[index];
            while handed < budget {
                let Some(frame) = endpoint.backlog.pop_front() else {
                    break;
                };
                sharing.backlog_bytes -= frame.len();
                app.run(|| deliver(&frame));
                handed += 1;
            }
            let mut in_place = 0;
            if handed < budget {
                nic.receive(queue, budget - handed, &mut |frame| {
                    let mine = sharing.take_arp(frame, id).unwrap_or_else(|| {
                        if sharing.take_unplaceable_ipv4(frame) {
                            return false;
                        }
                        let owner = sharing.quoted_flow_owner(frame);
                        match owner.or_else(|| sharing.filters.classify(frame)) {
                            Some(owner) if owner == id => true,
                            Some(owner) => {
                                sharing.queue_for(owner, frame);
                                false
                            }
                            None => {
                                sharing.answer(frame);
                                false
                            }
                        }
                    });
                    if mine && app.run(|| deliver(frame)).is_some() {
                        in_place += 1;
                    }
                })?;
            }
            sharing.endpoints[index].counters.delivered += in_place;
            for reply in core::mem::take(&mut sharing.replies) {
                // An answer that finds the ring full is dropped, not counted as
                // answered: the asker asks again.
                let sent = nic.transmit(queue, reply.len(), &mut |buffer| {
                    buffer.copy_from_slice(&reply)
                });
                if sent.is_ok() {
                    sharing.answered(&reply);
                }
            }
            Ok(handed + in_place as usize)
        })
    }

    /// The filters judge the first segment: a gathered frame's headers go there. The
    /// parts come to `fill` zeroed ([`crate::lent`]).
    fn send_segments(
        &mut self,
        queue: usize,
        segments: &[usize],
        offload: bool,
        fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
    ) -> Result<(), DeviceError> {
        self.send_checked(|app, nic, permits| {
            nic.send_segments(queue, segments, offload, &mut |parts| {
                parts.iter_mut().for_each(|part| part.fill(0));
                app.run(|| fill(parts)).unwrap_or(false)
                    && permits(parts.first().map_or(&[][..], |part| &**part), None)
            })
        })
    }

    /// The filters judge the frame, then each segment the device cuts from it (its
    /// headers repeated, its own payload bytes where a rule names payload bytes). The
    /// frame comes to `fill` zeroed ([`crate::lent`]).
    fn send_tcp_segmented(
        &mut self,
        queue: usize,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), DeviceError> {
        let max_frame = self.info.max_frame;
        self.send_checked(|app, nic, permits| {
            nic.send_tcp_segmented(queue, len, &mut |frame| {
                frame.fill(0);
                let mss = app.run(|| fill(frame)).flatten()?;
                permits(frame, Some((mss, max_frame))).then_some(mss)
            })
        })
    }

    fn transmit_pending(&mut self, queue: usize) -> Result<usize, DeviceError> {
        self.with(|_, nic, _, _| nic.transmit_pending(queue))
    }

    fn wake_on_receive(&mut self, _queue: usize, _core: Option<usize>) -> Result<(), DeviceError> {
        // The device's wake message targets one core, and any app's frame would fire it:
        // apps bound to a shared interface poll.
        Err(DeviceError::Unsupported(
            "a wake message per app (apps bound to a shared interface poll)",
        ))
    }
}

impl Drop for Bound {
    /// Ends the binding (unless the kernel already did); dropped by the app's code inside
    /// a call that holds the interface on this core, as that call returns
    /// ([`crate::reentry`]).
    fn drop(&mut self) {
        calling_app(self.binder, |_| {
            match crate::reentry::lock(self.slot, self.binder.core_index()) {
                Ok(mut state) => unbind(self.slot, &mut state, &[self.id]),
                Err(_) => {
                    self.slot.unbound_in_call.lock().push(self.id);
                    self.slot
                        .unbound_pending
                        .store(true, core::sync::atomic::Ordering::Release);
                }
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Registry;
    use crate::interrupts::tests::ends_the_app;
    use crate::tests::{lease_net, registry_with};
    use alloc::sync::Arc;
    use alloc::vec;
    use rexo_api::DeviceKind;

    /// The interface's MAC, a peer's, the interface's address and the peer's.
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];
    const ADDRESS: [u8; 4] = [10, 0, 2, 15];
    const PEER: [u8; 4] = [10, 0, 2, 2];

    /// Frames waiting to be received, and frames sent.
    #[derive(Default)]
    pub(crate) struct Wire {
        pub(crate) incoming: VecDeque<Vec<u8>>,
        pub(crate) sent: Vec<Vec<u8>>,
        /// Every send finds the transmit ring full.
        full: bool,
    }

    /// A network interface on a [`Wire`] the test holds too.
    struct OnWire(Arc<spin::Mutex<Wire>>);

    /// The longest frame [`OnWire`] cuts into segments.
    const SEGMENTED: usize = 16 * 1024;

    impl NetDevice for OnWire {
        fn info(&self) -> NetInfo {
            NetInfo {
                mac: MAC,
                tcp_segmentation: Some(SEGMENTED),
                ..crate::tests::Counting(0, crate::tests::Wake::Never).info()
            }
        }
        /// Puts each segment on the wire as the device cuts it: the frame's headers, then
        /// its piece of the payload (the headers' lengths and sequence numbers as they
        /// were: the tests read the bytes the filters judge).
        fn send_tcp_segmented(
            &mut self,
            _: usize,
            len: usize,
            fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
        ) -> Result<(), DeviceError> {
            DeviceError::check_frame(len, SEGMENTED)?;
            let mut frame = vec![0; len];
            let mss = fill(&mut frame).ok_or(DeviceError::Withdrawn)?;
            let max_frame = self.info().max_frame;
            let cut = rexo_api::device::tcp_segmentation(&mut frame, mss, max_frame)?;
            let (headers, payload) = frame.split_at(cut.header_len);
            let mut wire = self.0.lock();
            for piece in payload.chunks(mss) {
                wire.sent.push([headers, piece].concat());
            }
            Ok(())
        }
        fn receive(
            &mut self,
            _: usize,
            budget: usize,
            deliver: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, DeviceError> {
            let mut count = 0;
            while count < budget {
                let Some(frame) = self.0.lock().incoming.pop_front() else {
                    break;
                };
                deliver(&frame);
                count += 1;
            }
            Ok(count)
        }
        fn send_segments(
            &mut self,
            _: usize,
            segments: &[usize],
            offload: bool,
            fill: &mut dyn FnMut(&mut [&mut [u8]]) -> bool,
        ) -> Result<(), DeviceError> {
            if offload {
                return Err(DeviceError::Unsupported("checksum offload"));
            }
            if self.0.lock().full {
                return Err(DeviceError::QueueFull);
            }
            let mut frame = vec![0; segments.iter().sum()];
            if !rexo_api::device::lend_consecutive(&mut frame, segments, |parts| fill(parts))
                .ok_or(DeviceError::TooManySegments {
                    segments: segments.len(),
                    max: rexo_api::MAX_SEGMENTS,
                })?
            {
                return Err(DeviceError::Withdrawn);
            }
            self.0.lock().sent.push(frame);
            Ok(())
        }
        fn transmit_pending(&mut self, _: usize) -> Result<usize, DeviceError> {
            Ok(0)
        }
        fn wake_on_receive(&mut self, _: usize, _: Option<usize>) -> Result<(), DeviceError> {
            Ok(())
        }
    }

    /// A registry with one interface on a wire, and the wire.
    pub(crate) fn shared() -> (&'static Registry, Arc<spin::Mutex<Wire>>) {
        let wire = Arc::new(spin::Mutex::new(Wire::default()));
        let registry = registry_with(Found::Net(Box::new(OnWire(wire.clone()))), "test-net");
        (registry, wire)
    }

    /// The address a test binds with: [`ADDRESS`]/24, routed through [`PEER`].
    pub(crate) fn config() -> Option<Ipv4Config> {
        Some(Ipv4Config {
            address: ADDRESS.into(),
            prefix: 24,
            router: Some(PEER.into()),
            dns: None,
        })
    }

    /// The filters of `text`, parsed.
    pub(crate) fn filters(text: &[&str]) -> Vec<Filter> {
        text.iter().map(|t| Filter::parse(t).unwrap()).collect()
    }

    #[test]
    fn a_dead_binding_dropped_inside_a_leases_call_is_forgotten_as_the_call_returns() {
        let (registry, _wire) = shared();
        let bound = registry.bind_net(0, (1, "app"), &filters(&["udp dport 7"]), config());
        let mut bound = Some(bound.unwrap());
        assert_eq!(registry.revoke_all_of(1), 1);
        let mut lease = lease_net(registry, (2, "next"));
        lease.transmit(0, 60, &mut |_| drop(bound.take())).unwrap();
        assert!(bound.is_none(), "dropped inside the call");
        assert_eq!(
            *registry.slots[0].unbound_in_call.lock(),
            [],
            "nothing left"
        );
    }

    /// The apps bound to an interface are published as they bind: while one's call on
    /// it holds it on another core, other apps' opens are busy with the first bound,
    /// `devices` shows it, and the end of an app bound there waits for the call (to end
    /// its binding) while that of an app bound elsewhere does not.
    #[test]
    fn the_apps_bound_to_an_interface_are_published_for_other_cores() {
        let (registry, _wire) = shared();
        let first = bind(registry, 1, "first", &["udp dport 7"]).unwrap();
        let mut second = bind(registry, 2, "second", &["udp dport 8"]).unwrap();
        let (send, answered) = std::sync::mpsc::channel();
        let call = move |wait: &dyn Fn()| {
            let sent = second.transmit(0, 60, &mut |_| wait());
            (sent, second)
        };
        let (during, (sent, _second)) = crate::tests::while_inside(call, move || {
            let ending = std::thread::spawn(move || send.send(registry.revoke_all_of(1)));
            std::thread::sleep(std::time::Duration::from_millis(50));
            let refused = registry.open(DeviceKind::Net, 0, (3, "other")).err();
            let shown = registry.devices()[0].holder;
            (
                refused,
                shown,
                registry.revoke_all_of(3),
                ending.is_finished(),
            )
        });
        let busy = Some(ApiError::DeviceBusy("first"));
        assert_eq!(during, Ok((busy, Some("first"), 0, false)));
        assert_eq!(
            sent.err(),
            Some(DeviceError::Withdrawn),
            "a frame of nothing"
        );
        let timeout = std::time::Duration::from_secs(5);
        assert_eq!(
            answered.recv_timeout(timeout),
            Ok(1),
            "app 1's binding ended"
        );
        drop(first);
        assert_eq!(registry.devices()[0].holder, Some("second"));
    }

    fn bind(
        registry: &'static Registry,
        owner: u16,
        name: &'static str,
        text: &[&str],
    ) -> Result<Box<dyn NetDevice>, ApiError> {
        registry.bind_net(0, (owner, name), &filters(text), config())
    }

    /// An IPv4 frame of `protocol` (6 TCP, 17 UDP) between the given ends, with 4 bytes
    /// of payload and a right IP header checksum.
    fn ip_frame(
        (src_mac, dst_mac): ([u8; 6], [u8; 6]),
        (src, dst): ([u8; 4], [u8; 4]),
        protocol: u8,
        (sport, dport): (u16, u16),
    ) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 20 + 8 + 4];
        frame[0..6].copy_from_slice(&dst_mac);
        frame[6..12].copy_from_slice(&src_mac);
        frame[12..14].copy_from_slice(&IPV4);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&(32u16).to_be_bytes());
        frame[22] = 64;
        frame[23] = protocol;
        frame[26..30].copy_from_slice(&src);
        frame[30..34].copy_from_slice(&dst);
        let sum = checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        frame[34..36].copy_from_slice(&sport.to_be_bytes());
        frame[36..38].copy_from_slice(&dport.to_be_bytes());
        frame
    }

    /// A frame from the peer to the interface.
    fn incoming(protocol: u8, dport: u16) -> Vec<u8> {
        ip_frame((PEER_MAC, MAC), (PEER, ADDRESS), protocol, (40000, dport))
    }

    /// A frame from the interface to the peer.
    fn outgoing(protocol: u8, sport: u16) -> Vec<u8> {
        ip_frame((MAC, PEER_MAC), (ADDRESS, PEER), protocol, (sport, 40000))
    }

    /// An ARP packet of `op` from `sender` (MAC, address) asking for or telling `target`.
    fn arp(op: u8, sender: ([u8; 6], [u8; 4]), target: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![0xFF; 6];
        frame.extend_from_slice(&sender.0);
        frame.extend_from_slice(&ARP);
        frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, op]);
        frame.extend_from_slice(&sender.0);
        frame.extend_from_slice(&sender.1);
        frame.extend_from_slice(&[0; 6]);
        frame.extend_from_slice(&target);
        frame
    }

    /// The peer's ARP request for the interface's address, its request for another
    /// address, and its reply telling the interface's address.
    fn peer_arp() -> [Vec<u8>; 3] {
        [
            arp(1, (PEER_MAC, PEER), ADDRESS),
            arp(1, (PEER_MAC, PEER), [10, 0, 2, 99]),
            arp(2, (PEER_MAC, PEER), ADDRESS),
        ]
    }

    /// A 60-byte frame of `ethertype` from `src_mac` to the peer, `tag` its first
    /// payload byte.
    fn raw_frame(src_mac: [u8; 6], ethertype: u16, tag: u8) -> Vec<u8> {
        let mut frame = vec![0u8; 60];
        frame[0..6].copy_from_slice(&PEER_MAC);
        frame[6..12].copy_from_slice(&src_mac);
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame[14] = tag;
        frame
    }

    /// Sends `frame` as it is on `nic`'s queue 0.
    fn send(nic: &mut dyn NetDevice, frame: &[u8]) -> Result<(), DeviceError> {
        nic.transmit(0, frame.len(), &mut |b| b.copy_from_slice(frame))
    }

    /// Checks that `nic` sends `allowed` and that `refused` is withdrawn (`why`), and
    /// that only `allowed` reached the wire.
    fn sends_only(
        nic: &mut dyn NetDevice,
        wire: &spin::Mutex<Wire>,
        allowed: &[u8],
        refused: &[u8],
        why: &str,
    ) {
        assert_eq!(send(nic, refused), Err(DeviceError::Withdrawn), "{why}");
        assert_eq!(send(nic, allowed), Ok(()));
        assert_eq!(
            wire.lock().sent,
            [allowed],
            "nothing withdrawn reached the wire"
        );
    }

    fn poll(nic: &mut dyn NetDevice) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        nic.receive(0, 256, &mut |frame| got.push(frame.to_vec()))
            .unwrap();
        got
    }

    #[test]
    fn an_app_that_panics_in_its_receive_code_ends_after_the_device_call_is_done() {
        let (registry, wire) = shared();
        let mut whole = lease_net(registry, (1, "panicker"));
        wire.lock()
            .incoming
            .extend([incoming(17, 7), incoming(17, 9)]);
        let mut handed = 0;
        assert!(ends_the_app(|| {
            let _ = whole.receive(0, 8, &mut |_| {
                handed += 1;
                panic!("an app's bug on a received frame");
            });
        }));
        assert_eq!(handed, 1, "nothing more is handed to an app that aborted");
        assert!(
            wire.lock().incoming.is_empty(),
            "the driver finished its receive"
        );
        assert!(ends_the_app(|| {
            let _ = whole.send_frame(0, 60, false, &mut |_| panic!("and on a frame to send"));
        }));
        assert!(wire.lock().sent.is_empty(), "the frame was withdrawn");
        assert_eq!(registry.revoke_all_of(1), 1, "the slot's lock is free");
        let _next = lease_net(registry, (2, "next"));
    }

    #[test]
    fn an_app_that_panics_in_its_receive_code_leaves_a_shared_interface_to_the_others() {
        let (registry, wire) = shared();
        let mut echo = bind(registry, 1, "echo", &["udp dport 7"]).unwrap();
        let mut kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        let cache = incoming(17, 11211);
        wire.lock()
            .incoming
            .extend([incoming(17, 7), cache.clone()]);
        assert!(ends_the_app(|| {
            let _ = echo.receive(0, 8, &mut |_| panic!("an app's bug on a received frame"));
        }));
        assert_eq!(poll(kv.as_mut()), vec![cache], "queued for kv by the call");
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(
            sharing.bindings[0].delivered, 0,
            "the app's code took nothing"
        );
        drop(echo);
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(sharing.bindings.len(), 1);
    }

    #[test]
    fn overlapping_filters_are_refused_naming_the_owner() {
        let (registry, _) = shared();
        assert_eq!(
            registry
                .bind_net(0, (1, "httpd"), &filters(&["tcp dport 80"]), None)
                .err(),
            Some(ApiError::NoAddress)
        );
        let _httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let _kv = bind(registry, 2, "kv", &["tcp dport 11211", "udp dport 11211"]).unwrap();
        assert_eq!(
            bind(registry, 3, "greedy", &["udp dport 7", "tcp"]).err(),
            Some(ApiError::FilterOverlap("httpd"))
        );
        assert_eq!(
            bind(registry, 3, "greedy", &["udp dport 7"]).map(|_| ()),
            Ok(()),
            "a refused binding installed none of its filters"
        );
        assert_eq!(
            registry
                .open(DeviceKind::Net, 0, (4, "whole"))
                .err()
                .map(|e| e.to_string()),
            Some(ApiError::DeviceBusy("httpd").to_string()),
            "shared: nobody takes it whole"
        );
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        let names: Vec<_> = sharing.bindings.iter().map(|b| b.app).collect();
        assert_eq!(
            names,
            ["httpd", "kv"],
            "the second greedy binding was dropped at once"
        );
        assert_eq!(
            sharing.bindings[1].filters.len(),
            2,
            "{:?}",
            sharing.bindings[1].filters
        );
        assert_eq!(registry.devices()[0].holder, Some("httpd"));
    }

    /// `udp dport N` for `count` ports from `first`.
    fn udp_ports(first: usize, count: usize) -> Vec<Filter> {
        (first..first + count)
            .map(|port| Filter::parse(&format!("udp dport {port}")).unwrap())
            .collect()
    }

    #[test]
    fn a_binding_past_the_filter_limit_is_refused_and_changes_nothing() {
        let (registry, wire) = shared();
        let too_many = udp_ports(1000, MAX_BINDING_FILTERS + 1);
        let too_many_filters = ApiError::TooManyFilters {
            max: MAX_BINDING_FILTERS,
        };
        let refused = Some(too_many_filters);
        assert_eq!(
            registry
                .bind_net(0, (1, "greedy"), &too_many, config())
                .err(),
            refused
        );
        assert_eq!(registry.net_sharing(0), Ok(None), "no sharing begun for it");
        let mut kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        assert_eq!(
            registry
                .bind_net(0, (1, "greedy"), &too_many, config())
                .err(),
            refused
        );
        assert!(too_many_filters.to_string().contains("at most 64 filters"));
        let cache = incoming(17, 11211);
        wire.lock()
            .incoming
            .extend([incoming(17, 1000), cache.clone()]);
        assert_eq!(poll(kv.as_mut()), vec![cache], "kv's binding still works");
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        let names: Vec<_> = sharing.bindings.iter().map(|b| b.app).collect();
        assert_eq!(names, ["kv"]);
        assert_eq!(
            sharing.unmatched, 1,
            "none of greedy's filters was installed"
        );
        let mut greedy = registry
            .bind_net(
                0,
                (1, "greedy"),
                &udp_ports(1000, MAX_BINDING_FILTERS),
                config(),
            )
            .unwrap();
        let last = incoming(17, (1000 + MAX_BINDING_FILTERS - 1) as u16);
        wire.lock().incoming.push_back(last.clone());
        assert_eq!(
            poll(greedy.as_mut()),
            vec![last],
            "the limit itself is taken"
        );
    }

    #[test]
    fn a_binding_of_no_filters_is_refused_and_takes_no_place() {
        let (registry, _) = shared();
        assert_eq!(
            bind(registry, 1, "idle", &[]).err(),
            Some(ApiError::NoFilters)
        );
        assert_eq!(registry.net_sharing(0), Ok(None), "no sharing begun for it");
        let _kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        assert_eq!(
            bind(registry, 2, "kv", &[]).err(),
            Some(ApiError::NoFilters)
        );
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(sharing.bindings.len(), 1, "kv's one binding");
        assert!(
            ApiError::NoFilters
                .to_string()
                .contains("at least one filter")
        );
    }

    #[test]
    fn a_filter_past_the_atom_limit_is_refused_though_built_as_a_transmit_rule() {
        let (registry, _) = shared();
        // Every other byte of 16 fields: a filter of 16 atoms, a rule of 32 (a field
        // is cut where its bytes are not adjacent).
        let atoms = (0..MAX_ATOMS as u16)
            .map(|i| rexo_pktfilter::Atom {
                offset: 100 + 4 * i,
                width: 4,
                mask: 0xff00_ff00,
                value: 0x0100_0100,
            })
            .collect();
        let wide = Filter::new(atoms).unwrap();
        let rule = wide.transmit_rule();
        assert!(rule.atoms().len() > MAX_ATOMS, "{rule}");
        let too_many_atoms = ApiError::TooManyAtoms { max: MAX_ATOMS };
        let binding = registry.bind_net(0, (1, "sly"), &[rule], config());
        assert_eq!(binding.err(), Some(too_many_atoms));
        assert_eq!(registry.net_sharing(0), Ok(None), "nothing installed");
        assert!(too_many_atoms.to_string().contains("at most 16 atoms"));
        // The filter itself is within the atom limit; its 16 tests pass the app's share.
        let share = rexo_pktfilter::APP_FRAME_TESTS;
        let binding = registry.bind_net(0, (1, "sly"), &[wide], config());
        assert_eq!(binding.err(), Some(ApiError::FilterTestShare { share }));
    }

    /// `count` filters `PREFIX & 42:4/MASK=VALUE`, each mask leaving out three bits:
    /// no two overlap, but no bit is in every mask, so they share no test of bytes 42..46.
    fn masked_filters(count: u32, prefix: &str) -> Vec<Filter> {
        (0..count)
            .map(|k| {
                let left_out = [k % 32, (7 * k + 3) % 32, (13 * k + 11) % 32];
                let mask = left_out
                    .iter()
                    .fold(u32::MAX, |mask, bit| mask & !(1 << bit));
                let value = k.wrapping_mul(0x9E37_79B9) & mask;
                Filter::parse(&format!("{prefix} & 42:4/{mask:#x}={value:#x}")).unwrap()
            })
            .collect()
    }

    #[test]
    fn filters_that_would_cost_every_frame_too_many_tests_are_refused_and_install_nothing() {
        let (registry, wire) = shared();
        let mut kv = bind(registry, 1, "kv", &["udp dport 11211"]).unwrap();
        // Bytes 42..46 of TCP frames under 64 masks that each leave out three bits: no
        // two overlap, but no bit is in every mask, so they share no test and each would
        // cost every frame on the interface a test of its own.
        let masked = masked_filters(64, "ipv4 & 23:1=6");
        let share = rexo_pktfilter::APP_FRAME_TESTS;
        let over_share = ApiError::FilterTestShare { share };
        let binding = registry.bind_net(0, (2, "greedy"), &masked, config());
        assert_eq!(binding.err(), Some(over_share));
        assert!(
            over_share
                .to_string()
                .contains("its share of 8 field tests")
        );
        let max = rexo_pktfilter::MAX_FRAME_TESTS;
        let too_many_tests = ApiError::TooManyFilterTests { max };
        assert!(
            too_many_tests
                .to_string()
                .contains("more than 32 field tests")
        );
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(sharing.bindings.len(), 1, "nothing installed");
        let cache = incoming(17, 11211);
        wire.lock().incoming.push_back(cache.clone());
        assert_eq!(poll(kv.as_mut()), [cache], "kv's binding still works");
        let few = registry.bind_net(0, (2, "greedy"), &masked[..8], config());
        assert!(few.is_ok(), "a few of them share enough of their masks");
    }

    /// One app binds filters on an EtherType nobody uses, one byte of it (`12:1`, where
    /// the others test `12:2`), and four bytes under masks with no bit common to all, a
    /// binding of 56 and then a binding per filter: before, the 56 went in and the next
    /// app's `tcp dport 80` was refused (`TooManyFilterTests`, seen); now bindings past
    /// its share are refused, and the three other apps of the 4 bind and get their frames.
    #[test]
    fn one_app_cannot_keep_the_others_from_binding() {
        let (registry, wire) = shared();
        let masked = masked_filters(56, "12:1=0x88");
        let share = rexo_pktfilter::APP_FRAME_TESTS;
        let mut held = Vec::new();
        let mut refused = Vec::new();
        let at_once = core::slice::from_ref(&masked);
        let one_by_one = masked.chunks(1).take(MAX_APP_BINDINGS);
        for filters in at_once.iter().map(Vec::as_slice).chain(one_by_one) {
            match registry.bind_net(0, (1, "greedy"), filters, config()) {
                Ok(nic) => held.push(nic),
                Err(error) => refused.push(error),
            }
        }
        let mut httpd = bind(registry, 2, "httpd", &["tcp dport 80"]).unwrap();
        let mut kv = bind(registry, 3, "kv", &["udp dport 11211", "tcp dport 11211"]).unwrap();
        let mut dns = bind(registry, 4, "dns", &["udp dport 53"]).unwrap();
        assert_eq!(refused[0], ApiError::FilterTestShare { share });
        assert_eq!(refused.last(), Some(&ApiError::FilterTestShare { share }));
        assert!(!held.is_empty());
        let (web, cache, name) = (incoming(6, 80), incoming(17, 11211), incoming(17, 53));
        wire.lock()
            .incoming
            .extend([web.clone(), cache.clone(), name.clone()]);
        assert_eq!(poll(httpd.as_mut()), [web]);
        assert_eq!(poll(kv.as_mut()), [cache]);
        assert_eq!(poll(dns.as_mut()), [name]);
    }

    #[test]
    fn a_binding_whose_own_filters_overlap_is_refused_naming_itself_and_installs_nothing() {
        let (registry, wire) = shared();
        let mut kv = bind(registry, 1, "kv", &["udp dport 11211"]).unwrap();
        assert_eq!(
            bind(
                registry,
                2,
                "echo",
                &["udp dport 7", "udp dport 9", "udp dport 7"]
            )
            .err(),
            Some(ApiError::FilterOverlap("echo"))
        );
        let cache = incoming(17, 11211);
        wire.lock()
            .incoming
            .extend([incoming(17, 7), incoming(17, 9), cache.clone()]);
        assert_eq!(poll(kv.as_mut()), vec![cache]);
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!((sharing.bindings.len(), sharing.unmatched), (1, 2));
    }

    #[test]
    fn a_binding_that_overlaps_an_earlier_one_of_its_app_is_refused_naming_itself() {
        let (registry, _) = shared();
        let _kv = bind(registry, 1, "kv", &["udp dport 11211"]).unwrap();
        let _first = bind(registry, 2, "echo", &["udp dport 7"]).unwrap();
        assert_eq!(
            bind(registry, 2, "echo", &["udp dport 9", "udp dport 7"]).err(),
            Some(ApiError::FilterOverlap("echo"))
        );
        assert_eq!(
            bind(registry, 2, "echo", &["udp dport 9"]).map(|_| ()),
            Ok(()),
            "a refused binding installed none of its filters"
        );
    }

    #[test]
    fn bindings_past_the_interface_limit_are_refused_until_one_ends() {
        let (registry, wire) = shared();
        let mut bound: Vec<_> = (0..MAX_INTERFACE_BINDINGS)
            .map(|at| {
                let owner = at as u16 + 1;
                registry
                    .bind_net(0, (owner, "app"), &udp_ports(1000 + at, 1), config())
                    .unwrap()
            })
            .collect();
        let web = filters(&["tcp dport 80"]);
        assert_eq!(
            registry.bind_net(0, (100, "late"), &web, config()).err(),
            Some(ApiError::TooManyBindings {
                max: MAX_INTERFACE_BINDINGS
            })
        );
        let (page, first) = (incoming(6, 80), incoming(17, 1000));
        wire.lock().incoming.extend([page.clone(), first.clone()]);
        assert_eq!(
            poll(bound[0].as_mut()),
            vec![first],
            "the others still work"
        );
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(sharing.bindings.len(), MAX_INTERFACE_BINDINGS);
        assert_eq!(sharing.unmatched, 1, "the refused filter was not installed");
        drop(bound.pop());
        let mut late = registry.bind_net(0, (100, "late"), &web, config()).unwrap();
        wire.lock().incoming.push_back(page.clone());
        assert_eq!(
            poll(late.as_mut()),
            vec![page],
            "an ended binding frees its place"
        );
    }

    #[test]
    fn an_apps_bindings_past_its_limit_are_refused_while_other_apps_still_bind() {
        let (registry, wire) = shared();
        let mut greedy: Vec<_> = (0..MAX_APP_BINDINGS)
            .map(|at| {
                registry
                    .bind_net(0, (1, "greedy"), &udp_ports(1000 + at, 1), config())
                    .unwrap()
            })
            .collect();
        let one_more = udp_ports(2000, 1);
        let over_its_limit = ApiError::TooManyBindings {
            max: MAX_APP_BINDINGS,
        };
        assert_eq!(
            registry
                .bind_net(0, (1, "greedy"), &one_more, config())
                .err(),
            Some(over_its_limit)
        );
        assert!(
            over_its_limit
                .to_string()
                .contains("more than 16 bindings on this interface (for this app"),
            "{over_its_limit}"
        );
        let mut kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        let (refused, first, cache) = (incoming(17, 2000), incoming(17, 1000), incoming(17, 11211));
        wire.lock()
            .incoming
            .extend([refused.clone(), first.clone(), cache.clone()]);
        assert_eq!(
            poll(greedy[0].as_mut()),
            vec![first],
            "its bindings still work"
        );
        assert_eq!(poll(kv.as_mut()), vec![cache], "the other app's works");
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(sharing.bindings.len(), MAX_APP_BINDINGS + 1);
        assert_eq!(sharing.unmatched, 1, "the refused filter was not installed");
        drop(greedy.pop());
        let mut late = registry
            .bind_net(0, (1, "greedy"), &one_more, config())
            .unwrap();
        wire.lock().incoming.push_back(refused.clone());
        assert_eq!(
            poll(late.as_mut()),
            vec![refused],
            "an ended binding frees a place for its app"
        );
    }

    #[test]
    fn an_interface_held_whole_is_not_shared_and_sharing_ends_with_the_last_binding() {
        let (registry, _) = shared();
        let whole = lease_net(registry, (1, "monitor"));
        assert_eq!(
            bind(registry, 2, "httpd", &["tcp dport 80"]).err(),
            Some(ApiError::DeviceBusy("monitor"))
        );
        drop(whole);
        let httpd = bind(registry, 2, "httpd", &["tcp dport 80"]).unwrap();
        assert_eq!(
            bind(registry, 3, "other", &["tcp dport 80"]).err(),
            Some(ApiError::FilterOverlap("httpd"))
        );
        drop(httpd);
        assert_eq!(registry.net_sharing(0), Ok(None));
        let _other = bind(registry, 3, "other", &["tcp dport 80"]).unwrap();
    }

    #[test]
    fn each_frame_reaches_its_owner_in_place_or_through_its_queue() {
        let (registry, wire) = shared();
        let mut httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let mut kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        let web = incoming(6, 80);
        let cache = incoming(17, 11211);
        let stray = incoming(17, 53);
        wire.lock()
            .incoming
            .extend([web.clone(), cache.clone(), stray, web.clone()]);
        assert_eq!(poll(httpd.as_mut()), [web.clone(), web.clone()]);
        assert_eq!(poll(kv.as_mut()), vec![cache.clone()]);
        assert_eq!(poll(kv.as_mut()), Vec::<Vec<u8>>::new());
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(
            (sharing.bindings[0].delivered, sharing.bindings[0].queued),
            (2, 0)
        );
        assert_eq!(
            (sharing.bindings[1].delivered, sharing.bindings[1].queued),
            (0, 1)
        );
        assert_eq!(sharing.unmatched, 1);
        // A full queue drops, and counts.
        wire.lock()
            .incoming
            .extend(core::iter::repeat_n(cache.clone(), BACKLOG + 10));
        assert_eq!(poll(httpd.as_mut()).len(), 0);
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(sharing.bindings[1].dropped, 10);
        assert_eq!(poll(kv.as_mut()).len(), BACKLOG);
    }

    /// The bytes `registry`'s shared interface holds in its backlogs, as counted and as
    /// summed frame by frame.
    fn backlog_bytes(registry: &Registry) -> (usize, usize) {
        let state = registry.slots[0].state.lock();
        let sharing = state.sharing.as_ref().unwrap();
        let frames = sharing.endpoints.iter().flat_map(|e| &e.backlog);
        (sharing.backlog_bytes, frames.map(Vec::len).sum())
    }

    #[test]
    fn the_backlogs_of_apps_that_do_not_poll_hold_at_most_the_interfaces_cap() {
        const FULL: usize = 1514;
        let (registry, wire) = shared();
        let mut poller = bind(registry, 1, "poller", &["udp dport 7"]).unwrap();
        let mut sleepers: Vec<_> = (0..8)
            .map(|app| {
                let filter = format!("udp dport {}", 100 + app);
                bind(registry, 2 + app, "sleeper", &[&filter]).unwrap()
            })
            .collect();
        let full = |dport: u16| {
            let mut frame = incoming(17, dport);
            frame.resize(FULL, 0);
            frame
        };
        let each = (0..BACKLOG).flat_map(|_| (0..8).map(|app| full(100 + app)));
        wire.lock().incoming.extend(each);
        while !wire.lock().incoming.is_empty() {
            assert_eq!(poll(poller.as_mut()), Vec::<Vec<u8>>::new());
        }
        let (held, summed) = backlog_bytes(registry);
        assert_eq!(held, summed);
        assert_eq!(held, MAX_BACKLOG_BYTES / FULL * FULL, "filled to the cap");
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        let dropped: u64 = sharing.bindings.iter().map(|b| b.dropped).sum();
        let queued: u64 = sharing.bindings.iter().map(|b| b.queued).sum();
        assert_eq!(
            (queued, queued + dropped),
            ((held / FULL) as u64, 8 * BACKLOG as u64)
        );
        // A sleeper that polls, and one that ends, give their bytes back.
        let woken = poll(sleepers[0].as_mut()).len();
        drop(sleepers.pop());
        let (after, summed) = backlog_bytes(registry);
        assert_eq!(after, summed);
        assert!(
            woken > 0 && after < held - woken * FULL,
            "{woken} taken: {after}"
        );
        wire.lock().incoming.push_back(full(101));
        poll(poller.as_mut());
        assert_eq!(backlog_bytes(registry).0, after + FULL, "queued again");
    }

    /// A router's ICMP error message of `kind` and `code` to the interface, quoting the
    /// IPv4 header and first 8 bytes of `datagram` (a frame the interface sent).
    fn icmp_error(kind: u8, code: u8, datagram: &[u8]) -> Vec<u8> {
        let mut frame = ip_frame((PEER_MAC, MAC), (PEER, ADDRESS), 1, (0, 0));
        frame.truncate(34);
        frame.extend_from_slice(&[kind, code, 0, 0, 0, 0, 0x05, 0x78]);
        frame.extend_from_slice(&datagram[14..42]);
        frame
    }

    #[test]
    fn an_icmp_error_goes_to_the_app_whose_datagram_it_quotes() {
        let (registry, wire) = shared();
        let mut httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let mut pinger = bind(registry, 2, "pinger", &["icmp dst 10.0.2.15"]).unwrap();
        let mut kv = bind(registry, 3, "kv", &["udp dport 11211"]).unwrap();
        // A "fragmentation needed" about httpd's segment, a "port unreachable" about
        // kv's datagram, a "time exceeded" about a datagram from a port nobody binds
        // (the pinger's filter judges it), one quoting a segment from port 80 of
        // another address (not the interface's datagram: the pinger's too), and an echo
        // reply (the pinger's).
        let too_big = icmp_error(3, 4, &outgoing(6, 80));
        let unreachable = icmp_error(3, 3, &outgoing(17, 11211));
        let stray = icmp_error(11, 0, &outgoing(17, 5353));
        let mut elsewhere = outgoing(6, 80);
        elsewhere[26..30].copy_from_slice(&[10, 0, 2, 99]);
        let forged = icmp_error(3, 4, &elsewhere);
        let mut echo_reply = icmp_error(0, 0, &outgoing(6, 80));
        echo_reply.truncate(42);
        let frames = [&too_big, &unreachable, &stray, &forged, &echo_reply];
        wire.lock().incoming.extend(frames.map(|f| f.clone()));
        assert_eq!(poll(pinger.as_mut()), [stray, forged, echo_reply]);
        assert_eq!(poll(httpd.as_mut()), [too_big]);
        assert_eq!(poll(kv.as_mut()), [unreachable]);
    }

    /// ARP's operation is 16 bits: 0x0101 and 0x0102 are neither request nor reply,
    /// so the kernel neither answers nor shares them, and no app may send one.
    #[test]
    fn an_arp_operation_is_read_whole() {
        let (registry, wire) = shared();
        let mut httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let [mut request, _, mut reply] = peer_arp();
        request[20] = 1;
        reply[20] = 1;
        wire.lock().incoming.extend([request, reply]);
        assert_eq!(poll(httpd.as_mut()), Vec::<Vec<u8>>::new());
        assert!(wire.lock().sent.is_empty(), "no answer to operation 0x0101");
        let allowed = arp(1, (MAC, ADDRESS), PEER);
        let mut refused = allowed.clone();
        refused[20] = 1;
        sends_only(
            httpd.as_mut(),
            &wire,
            &allowed,
            &refused,
            "0x0101 is no request",
        );
    }

    /// An ICMP echo request from `source` (MAC, address) to the interface, carrying
    /// `ping`, its checksums right.
    fn ping_from(source_mac: [u8; 6], source: [u8; 4]) -> Vec<u8> {
        let mut ping = ip_frame((source_mac, MAC), (source, ADDRESS), 1, (0, 0));
        ping[34] = 8;
        ping[38..42].copy_from_slice(b"ping");
        let sum = checksum(&ping[34..]);
        ping[36..38].copy_from_slice(&sum.to_be_bytes());
        ping
    }

    #[test]
    fn the_kernel_answers_no_echo_request_from_a_group_or_a_non_host() {
        let config = config().unwrap();
        for source in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [239, 255, 255, 255],
            [255, 255, 255, 255],
            [10, 0, 2, 255],
        ] {
            let ping = ping_from(PEER_MAC, source);
            assert_eq!(echo_reply(&ping, MAC, config), None, "{source:?}");
        }
        let multicast_mac = [0x01, 0x00, 0x5e, 0, 0, 1];
        assert_eq!(
            echo_reply(&ping_from(multicast_mac, PEER), MAC, config),
            None
        );
        assert!(echo_reply(&ping_from(PEER_MAC, PEER), MAC, config).is_some());
        let wider = Ipv4Config {
            prefix: 16,
            ..config
        };
        let host_in_a_wider_subnet = ping_from(PEER_MAC, [10, 0, 2, 255]);
        assert!(echo_reply(&host_in_a_wider_subnet, MAC, wider).is_some());
        let its_broadcast = ping_from(PEER_MAC, [10, 0, 255, 255]);
        assert_eq!(echo_reply(&its_broadcast, MAC, wider), None);
        let point_to_point = Ipv4Config {
            prefix: 31,
            ..config
        };
        let peer_on_a_31 = ping_from(PEER_MAC, [10, 0, 2, 14]);
        assert!(echo_reply(&peer_on_a_31, MAC, point_to_point).is_some());
    }

    #[test]
    fn the_kernel_answers_arp_and_ping_and_shares_arp_replies() {
        let (registry, wire) = shared();
        let mut httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let mut kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        let [request, other, reply] = peer_arp();
        let ping = ping_from(PEER_MAC, PEER);
        let mut bad_ping = ping.clone();
        bad_ping[40] ^= 1;
        wire.lock()
            .incoming
            .extend([request, other, reply.clone(), ping.clone(), bad_ping]);
        assert_eq!(poll(httpd.as_mut()), vec![reply.clone()]);
        assert_eq!(poll(kv.as_mut()), [reply]);
        let sent = core::mem::take(&mut wire.lock().sent);
        assert_eq!(sent.len(), 2, "one ARP answer and one echo reply");
        let answer = &sent[0];
        assert_eq!(&answer[0..6], &PEER_MAC);
        assert_eq!(&answer[6..12], &MAC);
        assert_eq!(answer[21], 2);
        assert_eq!(&answer[22..28], &MAC);
        assert_eq!(&answer[28..32], &ADDRESS);
        assert_eq!(&answer[32..42], &[PEER_MAC.as_slice(), &PEER].concat()[..]);
        let echo = &sent[1];
        assert_eq!(
            (&echo[0..6], &echo[26..30], &echo[30..34]),
            (&PEER_MAC[..], &ADDRESS[..], &PEER[..])
        );
        assert_eq!(echo[34], 0, "an echo reply");
        assert_eq!(&echo[38..42], b"ping");
        assert_eq!(checksum(&echo[14..34]), 0, "IP header checksum");
        assert_eq!(checksum(&echo[34..]), 0, "ICMP checksum");
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(
            (
                sharing.arp_answered,
                sharing.arp_shared,
                sharing.echo_answered,
                sharing.unmatched
            ),
            (1, 1, 1, 2),
            "the ARP request for another address and the bad ping are dropped"
        );
    }

    #[test]
    fn answers_the_device_did_not_take_are_not_counted_answered() {
        let (registry, wire) = shared();
        let mut kv = bind(registry, 1, "kv", &["udp dport 11211"]).unwrap();
        let ping = ping_from(PEER_MAC, PEER);
        let [request, ..] = peer_arp();
        let answered = |wire: &spin::Mutex<Wire>, kv: &mut dyn NetDevice| {
            wire.lock().incoming.extend([request.clone(), ping.clone()]);
            poll(kv);
            let sharing = registry.net_sharing(0).unwrap().unwrap();
            (sharing.arp_answered, sharing.echo_answered)
        };
        wire.lock().full = true;
        assert_eq!(answered(&wire, kv.as_mut()), (0, 0), "the ring was full");
        wire.lock().full = false;
        assert_eq!(answered(&wire, kv.as_mut()), (1, 1));
        assert_eq!(wire.lock().sent.len(), 2);
    }

    #[test]
    fn a_filter_that_would_take_arp_leaves_the_kernel_its_answers_and_the_apps_their_replies() {
        let (registry, wire) = shared();
        let mut greedy = bind(registry, 1, "greedy", &["arp"]).unwrap();
        let mut kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        let [request, other, reply] = peer_arp();
        wire.lock()
            .incoming
            .extend([request, other.clone(), reply.clone()]);
        assert_eq!(
            poll(greedy.as_mut()),
            [other, reply.clone()],
            "its filter takes only the ARP the kernel leaves"
        );
        assert_eq!(poll(kv.as_mut()), [reply], "every stack learns neighbours");
        let sent = core::mem::take(&mut wire.lock().sent);
        assert_eq!(
            sent.len(),
            1,
            "the kernel answered the request for its address"
        );
        assert_eq!((sent[0][21], &sent[0][22..28]), (2, &MAC[..]));
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!((sharing.arp_answered, sharing.arp_shared), (1, 1));
    }

    #[test]
    fn an_app_sends_only_from_its_own_ports_and_address() {
        let (registry, wire) = shared();
        let mut httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let _kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        assert_eq!(send(httpd.as_mut(), &outgoing(6, 80)), Ok(()));
        let spoofed_port = outgoing(17, 11211);
        let mut spoofed_address = outgoing(6, 80);
        spoofed_address[26..30].copy_from_slice(&[10, 0, 2, 16]);
        let mut spoofed_mac = outgoing(6, 80);
        spoofed_mac[6..12].copy_from_slice(&PEER_MAC);
        for frame in [&spoofed_port, &spoofed_address, &spoofed_mac] {
            assert_eq!(send(httpd.as_mut(), frame), Err(DeviceError::Withdrawn));
        }
        assert_eq!(
            send(httpd.as_mut(), &arp(1, (MAC, ADDRESS), PEER)),
            Ok(()),
            "asking for a neighbour"
        );
        assert_eq!(
            send(httpd.as_mut(), &arp(2, (MAC, ADDRESS), PEER)),
            Err(DeviceError::Withdrawn),
            "answering ARP is the kernel's"
        );
        assert_eq!(
            wire.lock().sent.len(),
            2,
            "nothing withdrawn reached the wire"
        );
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(
            (sharing.bindings[0].sent, sharing.bindings[0].refused),
            (2, 4)
        );
        assert_eq!(sharing.bindings[1].sent, 0);
    }

    #[test]
    fn a_filter_on_part_of_a_port_still_sends_only_from_that_part() {
        let (registry, wire) = shared();
        let _kv = bind(registry, 1, "kv", &["udp dport 11211"]).unwrap();
        let mut high = bind(registry, 2, "high", &["udp & 36:1=0x80"]).unwrap();
        // The receive filter itself would let this out: its destination port reads 0x80..
        let from_kv = ip_frame((MAC, PEER_MAC), (ADDRESS, PEER), 17, (11211, 0x8000));
        let own = outgoing(17, 0x8007);
        sends_only(high.as_mut(), &wire, &own, &from_kv, "kv's port");
    }

    #[test]
    fn apps_told_apart_by_a_payload_byte_send_only_their_own() {
        let (registry, wire) = shared();
        let mut first = bind(registry, 1, "first", &["udp dport 5000 & 42:1=1"]).unwrap();
        let _second = bind(registry, 2, "second", &["udp dport 5000 & 42:1=2"]).unwrap();
        let tagged = |tag| {
            let mut frame = outgoing(17, 5000);
            frame[42] = tag;
            frame
        };
        let why = "the second app's tag: the peer's answer would go to it";
        sends_only(first.as_mut(), &wire, &tagged(1), &tagged(2), why);
    }

    /// A TCP frame (ACK) from the interface's port 5000 to the peer carrying `payload`,
    /// its IPv4 header checksummed.
    fn tcp_outgoing(payload: &[u8]) -> Vec<u8> {
        tcp_with_options(outgoing(6, 5000), &[], payload)
    }

    /// `frame` (an IPv4 TCP frame with 20-byte headers) as an ACK with TCP `options` (a
    /// multiple of 4 bytes) and `payload`, its IPv4 header checksummed.
    fn tcp_with_options(mut frame: Vec<u8>, options: &[u8], payload: &[u8]) -> Vec<u8> {
        frame.resize(54, 0);
        let total = 40 + options.len() + payload.len();
        frame[16..18].copy_from_slice(&(total as u16).to_be_bytes());
        frame[24..26].fill(0);
        let sum = checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        frame[46] = ((5 + options.len() / 4) as u8) << 4;
        frame[47] = 0x10;
        frame.extend_from_slice(options);
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn ethernet_padding_is_no_payload_tag_either_way() {
        let (registry, wire) = shared();
        let mut first = bind(registry, 1, "first", &["tcp dport 5000 & 54:1=0"]).unwrap();
        let mut second = bind(registry, 2, "second", &["tcp dport 5000 & 54:1=2"]).unwrap();
        // The peer's bare ACK to the second app's connection, padded to 60 bytes.
        let mut bare_ack = tcp_with_options(incoming(6, 5000), &[], &[]);
        bare_ack.resize(60, 0);
        wire.lock().incoming.push_back(bare_ack);
        assert_eq!(poll(first.as_mut()), Vec::<Vec<u8>>::new(), "not a 0 tag");
        assert_eq!(poll(second.as_mut()), Vec::<Vec<u8>>::new());
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(sharing.unmatched, 1, "a segment without payload has no tag");
        // The second app's RST to any peer of the port, its tag in the padding.
        let mut reset = tcp_with_options(outgoing(6, 5000), &[], &[]);
        reset[47] = 0x04;
        reset.resize(60, 2);
        let own = tcp_with_options(outgoing(6, 5000), &[], &[2]);
        sends_only(second.as_mut(), &wire, &own, &reset, "a tag in the padding");
    }

    #[test]
    fn tcp_options_move_the_payload_tag_past_the_rule() {
        let (registry, wire) = shared();
        let mut first = bind(registry, 1, "first", &["tcp dport 5000 & 54:1=1"]).unwrap();
        let _second = bind(registry, 2, "second", &["tcp dport 5000 & 54:1=2"]).unwrap();
        let nops = [1, 1, 1, 1];
        // The NOPs at 54..58 spell its own tag; the payload behind them is the second's.
        let others = tcp_with_options(outgoing(6, 5000), &nops, &[2, 0, 0]);
        let own = tcp_with_options(outgoing(6, 5000), &nops, &[1, 0, 0]);
        let why = "the second app's tag behind TCP options";
        sends_only(first.as_mut(), &wire, &own, &others, why);
    }

    #[test]
    fn a_peers_tcp_options_do_not_hide_the_payload_tag() {
        let (registry, wire) = shared();
        let mut first = bind(registry, 1, "first", &["tcp dport 5000 & 54:1=1"]).unwrap();
        let mut second = bind(registry, 2, "second", &["tcp dport 5000 & 54:1=2"]).unwrap();
        // What Linux sends on every segment: NOP, NOP, timestamps (its first byte 1).
        let timestamps = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        let for_second = tcp_with_options(incoming(6, 5000), &timestamps, &[2, 0, 0]);
        let bare_ack = tcp_with_options(incoming(6, 5000), &timestamps, &[]);
        wire.lock().incoming.extend([for_second.clone(), bare_ack]);
        assert_eq!(poll(first.as_mut()), Vec::<Vec<u8>>::new());
        assert_eq!(poll(second.as_mut()), [for_second]);
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!(sharing.unmatched, 1, "a segment without payload has no tag");
    }

    /// Two apps bound by a payload tag (byte 54 of a frame without TCP options): the
    /// first sends a payload cut into 1000-byte segments by the NIC, framed by `frame_of`
    /// (whose payload starts at `tag_at`), once with the second app's tag at the start of
    /// the second segment (refused whole, nothing sent), then with its own (every segment
    /// sent with its tag). Returns the first binding's counts of sends and refusals.
    fn segmented_sends_judged_per_segment(
        frame_of: impl Fn(&[u8]) -> Vec<u8>,
        tag_at: usize,
    ) -> (u64, u64) {
        const MSS: usize = 1000;
        let (registry, wire) = shared();
        let mut first = bind(registry, 1, "first", &["tcp dport 5000 & 54:1=1"]).unwrap();
        let _second = bind(registry, 2, "second", &["tcp dport 5000 & 54:1=2"]).unwrap();
        let mut payload = vec![1; 2 * MSS + 10];
        let mut send_cut = |payload: &[u8]| {
            let frame = frame_of(payload);
            first.send_tcp_segmented(0, frame.len(), &mut |buffer| {
                buffer.copy_from_slice(&frame);
                Some(MSS)
            })
        };
        payload[MSS] = 2;
        assert_eq!(
            send_cut(&payload),
            Err(DeviceError::Withdrawn),
            "the second segment's payload carries the second app's tag"
        );
        assert_eq!(wire.lock().sent, Vec::<Vec<u8>>::new());
        payload[MSS] = 1;
        assert_eq!(send_cut(&payload), Ok(()));
        let tags: Vec<u8> = wire
            .lock()
            .sent
            .iter()
            .map(|segment| segment[tag_at])
            .collect();
        assert_eq!(tags, [1, 1, 1], "every segment its own tag");
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        (sharing.bindings[0].sent, sharing.bindings[0].refused)
    }

    #[test]
    fn a_segmented_send_is_judged_on_each_segments_payload_bytes() {
        let counted = segmented_sends_judged_per_segment(tcp_outgoing, 54);
        assert_eq!(counted, (1, 1));
    }

    #[test]
    fn a_segmented_send_with_tcp_options_is_judged_on_each_segments_payload() {
        // Timestamps in every segment's headers: 1 at 54, where the payload would be.
        let timestamps = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        let frame_of = |payload: &[u8]| tcp_with_options(outgoing(6, 5000), &timestamps, payload);
        segmented_sends_judged_per_segment(frame_of, 66);
    }

    #[test]
    fn apps_of_a_raw_ethertype_send_it_with_only_their_own_bytes() {
        let (registry, wire) = shared();
        let raw = "12:2=0x88b5 & 14:1=1 & 6:4=0x02000000 & 10:2=0x0009";
        let mut first = bind(registry, 1, "first", &[raw]).unwrap();
        let _second = bind(registry, 2, "second", &["12:2=0x88b5 & 14:1=2"]).unwrap();
        let why = "the second app's tag: the peer's answer would go to it";
        let (own, others) = (raw_frame(MAC, 0x88b5, 1), raw_frame(MAC, 0x88b5, 2));
        sends_only(first.as_mut(), &wire, &own, &others, why);
        let mut elsewhere = own.clone();
        elsewhere[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 8]);
        let refused = [
            (raw_frame(PEER_MAC, 0x88b5, 1), "from another MAC"),
            (elsewhere, "to a MAC it does not receive from"),
            (
                raw_frame(MAC, 0x88b6, 1),
                "an EtherType it does not receive",
            ),
        ];
        for (frame, why) in refused {
            assert_eq!(
                send(first.as_mut(), &frame),
                Err(DeviceError::Withdrawn),
                "{why}"
            );
        }
        assert_eq!(
            wire.lock().sent.len(),
            1,
            "nothing withdrawn reached the wire"
        );
    }

    #[test]
    fn a_raw_ethertype_binding_cannot_send_ipv4_from_anothers_port() {
        let (registry, wire) = shared();
        let _httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let mut raw = bind(registry, 2, "raw", &["12:2=0x88b5"]).unwrap();
        let why = "httpd's port: IPv4 keeps its rule whatever the EtherType filters";
        sends_only(
            raw.as_mut(),
            &wire,
            &raw_frame(MAC, 0x88b5, 7),
            &outgoing(6, 80),
            why,
        );
    }

    #[test]
    fn a_filter_naming_no_ethertype_sends_none_but_ipv4_and_arp_by_their_rules() {
        let (registry, _) = shared();
        let mut peer_watcher = bind(registry, 1, "watcher", &["6:4=0x02000000 & 10:2=9"]).unwrap();
        let unnamed = raw_frame(MAC, 0x88b7, 0);
        assert_eq!(
            send(peer_watcher.as_mut(), &unnamed),
            Err(DeviceError::Withdrawn),
            "a filter naming only the peer's MAC names no EtherType"
        );
        assert_eq!(
            send(peer_watcher.as_mut(), &arp(1, (MAC, ADDRESS), PEER)),
            Ok(())
        );
    }

    #[test]
    fn an_app_that_receives_from_a_port_sends_only_to_it() {
        let (registry, wire) = shared();
        let mut resolver = bind(registry, 1, "resolver", &["udp sport 53 dst 10.0.2.15"]).unwrap();
        let query = ip_frame((MAC, PEER_MAC), (ADDRESS, PEER), 17, (40000, 53));
        let elsewhere = outgoing(17, 11211);
        let why = "to a port it does not hear from";
        sends_only(resolver.as_mut(), &wire, &query, &elsewhere, why);
    }

    #[test]
    fn apps_resolving_from_disjoint_port_blocks_bind_beside_each_other_and_kv() {
        // DNS answers to a block of 64 ports each (rexo-net's `DnsPorts::filter`), as
        // the monitor and another resolving app bind them: both beside kv's UDP port.
        // A filter for answers to every port, as smoltcp's random query port needed,
        // overlaps kv's.
        let (registry, wire) = shared();
        let _kv = bind(registry, 1, "kv", &["udp dport 11211"]).unwrap();
        let block =
            |first: u16| alloc::format!("udp sport 53 dst 10.0.2.15 & 36:2/0xffc0={first:#06x}");
        let mut monitor = bind(registry, 2, "monitor", &[&block(0xc000)]).unwrap();
        let _other = bind(registry, 3, "other", &[&block(0xc040)]).unwrap();
        assert_eq!(
            bind(registry, 4, "every port", &["udp sport 53 dst 10.0.2.15"]).err(),
            Some(ApiError::FilterOverlap("kv"))
        );
        // The monitor's queries go from its block only.
        let own = ip_frame((MAC, PEER_MAC), (ADDRESS, PEER), 17, (0xc000 + 7, 53));
        let others = ip_frame((MAC, PEER_MAC), (ADDRESS, PEER), 17, (0xc040 + 7, 53));
        let why = "a query from the other app's block";
        sends_only(monitor.as_mut(), &wire, &own, &others, why);
    }

    #[test]
    fn no_app_sends_a_later_fragment() {
        let (registry, wire) = shared();
        let mut kv = bind(registry, 1, "kv", &["udp dport 11211"]).unwrap();
        let mut tails = bind(registry, 2, "tails", &["12:2=0x0800 & 20:2/0x1=1"]).unwrap();
        // kv's answer to the peer, cut: its first fragment goes, and a later one (offset
        // 185), which names no port, from any app would land in kv's datagram.
        let mut first = outgoing(17, 11211);
        first[20] = 0x20;
        let mut tail = first.clone();
        tail[20..22].copy_from_slice(&185u16.to_be_bytes());
        assert_eq!(send(tails.as_mut(), &tail), Err(DeviceError::Withdrawn));
        let why = "a later fragment is no app's";
        sends_only(kv.as_mut(), &wire, &first, &tail, why);
    }

    /// `frame` (an IPv4 frame with a 20-byte header) with `options` after its header.
    fn with_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
        let mut optioned = frame[..34].to_vec();
        optioned[14] = 0x45 + (options.len() / 4) as u8;
        let total = u16::from_be_bytes([frame[16], frame[17]]) + options.len() as u16;
        optioned[16..18].copy_from_slice(&total.to_be_bytes());
        optioned.extend_from_slice(options);
        optioned.extend_from_slice(&frame[34..]);
        optioned
    }

    #[test]
    fn an_ip_header_with_options_cannot_move_the_ports_past_the_rule() {
        let (registry, wire) = shared();
        let _httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let mut web = bind(registry, 2, "web", &["12:2=0x0800 & 23:1=6 & 36:2=8080"]).unwrap();
        // IHL 6: the option bytes at 34 read 8080, the TCP header at 38 is from httpd's 80.
        let optioned = with_options(&outgoing(6, 80), &[0x1f, 0x90, 0, 0]);
        let own = outgoing(6, 8080);
        let why = "httpd's port behind IP options";
        sends_only(web.as_mut(), &wire, &own, &optioned, why);
    }

    #[test]
    fn no_filter_takes_a_later_fragment_or_a_header_with_options() {
        let (registry, wire) = shared();
        let mut kv = bind(registry, 1, "kv", &["udp dport 11211"]).unwrap();
        // Every fragment offset but 0, by its lowest bit set: pairwise disjoint, and
        // disjoint from every port filter (which takes offset 0 only).
        let tails: Vec<String> = (0..13)
            .map(|bit| {
                format!(
                    "12:2=0x0800 & 20:2/{:#x}={:#x}",
                    (2u32 << bit) - 1,
                    1 << bit
                )
            })
            .collect();
        let tails: Vec<&str> = tails.iter().map(String::as_str).collect();
        // Two apps, as one app's 13 would pass its share of the tests.
        let mut snooper = bind(registry, 2, "snooper", &tails[..6]).unwrap();
        let mut other_snooper = bind(registry, 4, "snooper2", &tails[6..]).unwrap();
        let options = "12:2=0x0800 & 14:1=0x46 & 20:2/0x1fff=0";
        let mut optioned_snooper = bind(registry, 3, "options", &[options]).unwrap();
        // kv's large request: its first fragment (More Fragments set), a later one
        // (offset 185, 1480 bytes in) whose payload spells kv's port where ports would
        // be, and a datagram of kv's flow with a 4-byte option.
        let mut first = incoming(17, 11211);
        first[20] = 0x20;
        let mut tail = first.clone();
        tail[20..22].copy_from_slice(&185u16.to_be_bytes());
        let optioned = with_options(&incoming(17, 11211), &[1, 1, 1, 1]);
        wire.lock()
            .incoming
            .extend([tail.clone(), optioned, first.clone(), tail]);
        assert_eq!(poll(snooper.as_mut()), Vec::<Vec<u8>>::new());
        assert_eq!(poll(other_snooper.as_mut()), Vec::<Vec<u8>>::new());
        assert_eq!(poll(optioned_snooper.as_mut()), Vec::<Vec<u8>>::new());
        assert_eq!(poll(kv.as_mut()), [first], "the first fragment is kv's");
        let sharing = registry.net_sharing(0).unwrap().unwrap();
        assert_eq!((sharing.fragments_dropped, sharing.unmatched), (2, 1));
    }

    #[test]
    fn an_arp_request_cannot_claim_the_address_for_another_mac() {
        let (registry, wire) = shared();
        let mut httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let mut diverting = arp(1, (MAC, ADDRESS), PEER);
        diverting[22..28].copy_from_slice(&PEER_MAC);
        let own = arp(1, (MAC, ADDRESS), PEER);
        let why = "the sender's MAC is the interface's";
        sends_only(httpd.as_mut(), &wire, &own, &diverting, why);
    }

    #[test]
    fn an_ended_app_loses_its_bindings_and_its_filters() {
        let (registry, wire) = shared();
        let mut httpd = bind(registry, 1, "httpd", &["tcp dport 80"]).unwrap();
        let _kv = bind(registry, 2, "kv", &["udp dport 11211"]).unwrap();
        assert_eq!(registry.revoke_all_of(1), 1);
        wire.lock().incoming.push_back(incoming(6, 80));
        assert_eq!(httpd.receive(0, 1, &mut |_| {}), Err(DeviceError::Revoked));
        assert_eq!(
            httpd.transmit(0, 60, &mut |_| {}),
            Err(DeviceError::Revoked)
        );
        let _again = bind(registry, 3, "httpd2", &["tcp dport 80"]).unwrap();
        drop(httpd);
        let names: Vec<_> = registry
            .net_sharing(0)
            .unwrap()
            .unwrap()
            .bindings
            .iter()
            .map(|b| b.app)
            .collect();
        assert_eq!(names, ["kv", "httpd2"], "a dead binding frees nothing");
    }
}
