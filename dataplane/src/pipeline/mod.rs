//! The per-packet path: parse → classify → connection lookup → schedule (new flow) →
//! rewrite → verdict. Run to completion on one frame at a time inside a worker's burst;
//! no allocation, no locks, no syscalls.
//!
//! Checksums: addresses and ports are rewritten with RFC 1624 incremental updates. Before
//! that, every unfragmented TCP/UDP packet's checksum is verified in one pass
//! (`l4_checksum`): a partial one (pseudo-header only, what a socket behind a virtual
//! interface with checksum offload sends) is completed, since an update would keep it
//! partial and the real server would drop it; a wrong one is dropped and counted, as IPVS
//! does before it rewrites. DR and TUN frames are completed too: the real server receives
//! them from uvs, not from the sender's kernel that knew they were partial.

use uvs_conntrack::{ConnTable, FlowKey, Prepared};
use uvs_wire::{Classified, Frag, L4Checksum, Parsed, L3};

use crate::counters::WorkerCounters;
use crate::neigh::NeighMap;
use crate::tables::{IpKey, Tables};
use crate::verdict::{DropReason, Verdict};

mod forward;
mod icmp;
mod nat64;
mod newflow;
mod packet;
mod proto;
mod staged;
mod tcp;
mod udp;

pub(crate) use forward::*;
pub(crate) use nat64::{is_nat64, mapped, unmapped};
pub(crate) use newflow::*;
pub use packet::Packet;
pub(crate) use proto::{L4Proto, Tcp};
pub use staged::{Staged, Staging};

// The protocol numbers are uvs_wire's (one table for every crate); these short names
// are the pipeline's.
pub const PROTO_ICMP: u8 = uvs_wire::ip_proto::ICMP;
pub const PROTO_TCP: u8 = uvs_wire::ip_proto::TCP;
pub const PROTO_UDP: u8 = uvs_wire::ip_proto::UDP;
pub const PROTO_ICMPV6: u8 = uvs_wire::ip_proto::ICMPV6;
pub const PROTO_SCTP: u8 = uvs_wire::ip_proto::SCTP;
/// Protocol number marking persistence templates in the connection table; never the final
/// protocol of a real packet (0 is IPv6 hop-by-hop, always followed by another header).
pub const PROTO_TEMPLATE: u8 = 0;

pub(crate) const TCP_SYN: u8 = 0x02;
pub(crate) const TCP_ACK: u8 = 0x10;
pub(crate) const TCP_FIN: u8 = 0x01;
pub(crate) const TCP_RST: u8 = 0x04;

/// Connection flags stored in `Conn::flags`.
pub mod conn_flags {
    /// A persistence template, not a flow.
    pub const TEMPLATE: u8 = 0x02;
    /// Installed from a peer's sync message (IPVS's IP_VS_CONN_F_SYNC).
    pub const SYNCED: u8 = 0x04;
    /// Opened by the SYN proxy: its segments are translated (`crate::synproxy`).
    pub const SYNPROXY: u8 = 0x08;
    /// A NAT64 flow: IPv6 client, IPv4 real server; its reply tuple holds IPv4-mapped
    /// addresses (`pipeline/nat64.rs`).
    pub const NAT64: u8 = 0x10;
}

/// What the pipeline needs from its worker.
pub struct Ctx<'a> {
    /// The tables snapshot, loaded once per poll.
    pub tables: &'a Tables,
    /// The neighbour map, loaded once per poll.
    pub neigh: &'a NeighMap,
    pub worker: usize,
    pub workers: usize,
    /// Connection-table ticks (milliseconds, wrapping) on the dataplane clock.
    pub now: u32,
    /// Seconds on the dataplane clock (schedulers' coarse clock).
    pub now_s: u32,
    pub conns: &'a ConnTable,
    pub counters: &'a WorkerCounters,
    /// IPVS's connection-lifecycle sysctls for this burst.
    pub settings: crate::lifecycle::Settings,
    /// Tells the sync daemon about new connections and state changes.
    pub sync: &'a crate::sync_tap::SyncTap,
    /// Verify TCP/UDP checksums and complete partial ones (`l4_checksum`); off only to
    /// measure what that costs.
    pub verify_l4_checksums: bool,
    /// FullNAT: next local port to try, per worker.
    pub fullnat_cursor: &'a mut u32,
    /// Which connection each recent fragmented datagram belongs to.
    pub frags: &'a mut crate::frag::FragTable,
    /// The later fragments of the packet TUN is cutting to fit its tunnel; the worker
    /// sends them after the packet's verdict.
    pub pieces: &'a mut crate::frag::Pieces,
    /// The SYN proxy's cookie secret and splice table.
    pub proxy: &'a crate::synproxy::ProxyShared,
    /// The SYNs this worker sent to real servers for proxied connections.
    pub proxy_syns: &'a mut crate::synproxy::retransmit::ProxySyns,
    /// Every worker's doorbell (the SYN proxy hands a refusal to the worker that keeps
    /// its connection's SYN, and wakes it).
    pub doorbells: &'a [crate::wake::Doorbell],
    /// The burst's new connections scheduled and waiting to be stored (`staged.rs`).
    pub staging: &'a mut Staging,
    /// Link-layer headers towards real servers, valid for `tables` and `neigh`
    /// (`crate::egress`).
    pub egress: &'a mut crate::egress::EgressCache,
    /// How this worker forwarded its busiest flows' last packets (`crate::flowcache`).
    pub flows: &'a mut crate::flowcache::FlowCache,
    /// SCTP tags this worker found valid lately (`sctp::tags::check`).
    pub sctp_tags: &'a mut crate::sctp::tags::TagCache,
    /// The kernel fast path's tables while it is on (`crate::fastpath`).
    pub fast: Option<&'a [std::sync::Arc<dyn uvs_port::fast::FastTable>]>,
    /// How many more packets this second may be answered with an error of uvs's making.
    pub errors: &'a crate::verdict::ErrorBudget,
    /// Connection sync may yet install entries from its peers (`Shared::sync_learning`):
    /// packets without an entry are dropped unanswered.
    pub sync_learning: bool,
}

/// The flow key of a parsed frame, its addresses read by [`Parsed::addrs`].
#[inline]
pub(crate) fn flow_key(p: &Parsed) -> FlowKey {
    key_with(p, p.addrs())
}

/// [`flow_key`] of a packet, an IPv6 packet's addresses read from its frame
/// ([`Parsed::addrs_in`]): on the per-packet path, soon after the parse.
#[inline]
pub(crate) fn packet_key(pkt: &Packet<'_>) -> FlowKey {
    key_with(&pkt.p, pkt.p.addrs_in(pkt.frame()))
}

#[inline(always)]
fn key_with(p: &Parsed, (src, dst): ([u8; 16], [u8; 16])) -> FlowKey {
    FlowKey {
        proto: p.l4_proto,
        v6: p.l3 == L3::V6,
        src,
        dst,
        sport: p.sport,
        dport: p.dport,
    }
}

#[inline]
pub(crate) fn ip(v6: bool, addr: [u8; 16]) -> IpKey {
    IpKey { v6, addr }
}

/// Processes one frame in `buf[..*len]`, rewriting it in place (and possibly growing it,
/// for encapsulation, up to `buf.len()`).
#[inline]
pub fn process(ctx: &mut Ctx<'_>, buf: &mut [u8], len: &mut usize) -> Verdict {
    match crate::flowcache::forward_v4(ctx, &mut buf[..*len]) {
        Some(v) => v,
        None => process_rest(ctx, buf, len),
    }
}

/// [`process`] past the flow cache's IPv4 lookup (`crate::flowcache::forward_v4`), for a
/// caller that made it already (the worker's per-frame loop, where it is inlined): IPv6's,
/// then the parse and the rest of the pipeline. Out of line and small, so an IPv6 frame
/// the cache forwards pays no more than this call (the full path's frame is larger).
#[inline(never)]
pub fn process_rest(ctx: &mut Ctx<'_>, buf: &mut [u8], len: &mut usize) -> Verdict {
    if let Some(v) = crate::flowcache::forward_v6(ctx, &mut buf[..*len]) {
        return v;
    }
    process_full(ctx, buf, len)
}

/// [`process`] past the flow cache: the parse and the rest of the pipeline.
#[inline(never)]
fn process_full(ctx: &mut Ctx<'_>, buf: &mut [u8], len: &mut usize) -> Verdict {
    match prepare(&buf[..*len]) {
        Ok(p) => {
            let mut pkt = Packet::new(buf, *len, p);
            let v = process_parsed(ctx, &mut pkt, None);
            *len = pkt.len;
            v
        }
        Err(v) => v,
    }
}

/// Stage 1: parse and classify. `Err` carries a verdict already decided by the parse.
/// Inlined with `classify` so `Parsed` is built where it is used (see `classify`).
#[inline(always)]
pub fn prepare(frame: &[u8]) -> Result<Parsed, Verdict> {
    match uvs_wire::classify(frame) {
        Ok(Classified::Ip(p)) => Ok(p),
        Ok(Classified::Arp { .. }) => Err(Verdict::SlowPath),
        Ok(Classified::Other(_)) => Err(Verdict::Drop(DropReason::UnsupportedEtherType)),
        Err(e) => Err(Verdict::Drop(DropReason::Parse(e))),
    }
}

/// The connection-table key of a prepared frame whose processing starts with a lookup
/// of its 5-tuple (TCP and UDP with ports; SCTP but its IP fragments), so a worker can
/// look up a whole burst at once. SCTP's prefetched lookup is its association's entry;
/// the worker prepares the verification-tag record it checks next from that entry's
/// index lane (`sctp::tags::own_key`).
pub fn lookup_key(p: &Parsed) -> Option<FlowKey> {
    match (p.l4_proto, p.frag) {
        (PROTO_TCP | PROTO_UDP, Frag::None | Frag::First { .. }) => Some(flow_key(p)),
        (PROTO_SCTP, Frag::None) => Some(flow_key(p)),
        _ => None,
    }
}

/// Stage 2: everything after the parse. `prepared` is this frame's [`lookup_key`] already
/// hashed and prefetched by the worker's burst ([`ConnTable::prepare`]), finished here, or
/// `None` to look it up here.
/// The one place where a protocol number picks the protocol's implementation
/// (`pipeline/proto.rs`).
#[inline]
pub fn process_parsed(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    prepared: Option<&Prepared>,
) -> Verdict {
    match pkt.p.l4_proto {
        PROTO_TCP => ingress::<Tcp>(ctx, pkt, prepared),
        PROTO_UDP => ingress::<proto::Udp>(ctx, pkt, prepared),
        PROTO_SCTP => ingress::<proto::Sctp>(ctx, pkt, prepared),
        PROTO_ICMP | PROTO_ICMPV6 => ingress::<proto::Icmp>(ctx, pkt, None),
        _ => Verdict::Drop(DropReason::UnsupportedProtocol),
    }
}

/// The steps every protocol takes (`pipeline/proto.rs` lists them): the protocol's checks,
/// the lookup, then the established path or a new connection. One function per protocol,
/// called from the dispatch, rather than all of them inlined into it: established TCP
/// flows measured about 1 % faster this way (`uvs-bench pipeline`).
#[inline(never)]
fn ingress<P: L4Proto>(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    prepared: Option<&Prepared>,
) -> Verdict {
    let seen = match P::inspect(ctx, pkt) {
        Ok(s) => s,
        Err(v) => return v,
    };
    if let Frag::Later { id } = pkt.p.frag {
        return later_fragment::<P>(ctx, pkt, id);
    }
    // The burst's prepared lookup is finished here, not in the worker: a `Hit` returned
    // there and handed down by value was stored field by field and read back in wider
    // loads, a store-forwarding stall on every frame. A prepared lookup needs no key
    // built; a miss builds it again below.
    let found = match prepared {
        Some(p) => ctx.conns.finish(p, ctx.now),
        None => ctx.conns.lookup(&packet_key(pkt), ctx.now),
    };
    // By reference: moving the hit out of the lookup's result cost a copy that stalled on
    // the lookup's own stores (`uvs-bench pipeline`: 80 → 74 ns a packet, 1 000 flows).
    if let Some(hit) = &found {
        if let Frag::First { id } = pkt.p.frag {
            ctx.frags.remember(&pkt.p, id, hit, ctx.now_s);
        }
        if let Err(v) = P::admit(ctx, pkt, &seen, hit) {
            return v;
        }
        return established::<P>(ctx, pkt, hit);
    }
    let key = packet_key(pkt);
    match P::miss(ctx, pkt, &seen, &key) {
        Ok(Some(hit)) => established::<P>(ctx, pkt, &hit),
        Ok(None) if P::ONE_PACKET => ops_reply::<P>(ctx, pkt, &key),
        Ok(None) => new_flow::<P>(ctx, pkt, &key),
        Err(v) => v,
    }
}

/// Verifies a TCP/UDP checksum and completes a partial one in place: the one pass over the
/// segment is the only cost when it is already full (frames from a NIC); completing and
/// dropping are out of line. Fragments are not checked (their checksum covers the whole
/// datagram); the kernel never leaves a fragment's checksum partial.
#[inline(always)]
pub(crate) fn l4_checksum(frame: &mut [u8], p: &Parsed) -> Result<(), Verdict> {
    match uvs_wire::complete_l4_checksum_inlined(frame, p) {
        L4Checksum::Valid | L4Checksum::Completed | L4Checksum::Unchecked => Ok(()),
        L4Checksum::Bad => Err(bad_checksum()),
    }
}

#[cold]
#[inline(never)]
fn bad_checksum() -> Verdict {
    Verdict::Drop(DropReason::BadChecksum)
}

/// A non-first fragment carries no ports: it follows the connection its first fragment
/// found (remembered by fragment id), as Maglev does; IPVS needs the kernel to reassemble.
#[cold]
pub(crate) fn later_fragment<P: L4Proto>(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    id: u32,
) -> Verdict {
    match ctx.frags.find(&pkt.p, id, ctx.now_s) {
        Some(hit) => established::<P>(ctx, pkt, &hit),
        None => Verdict::Drop(DropReason::FragmentNoFlow),
    }
}
