//! Established flows: state tracking and the per-method rewrites in both directions.

use uvs_conntrack::{Conn, Dir, Hit};
use uvs_wire::{Outer, Parsed, Tunnel, L3};

use super::*;
use crate::flowcache::{FillKey, Filling};
use crate::lifecycle::{self, ConnView};
use crate::neigh::NeighMap;
use crate::tables::{IpKey, Method, RealRt, ServiceRt, Tables, TunEncap};
use crate::verdict::{DropReason, Verdict};

/// The connection a packet travels on: its entry (a new flow's [`Conn`], or an established
/// packet's [`Hit`], read field by field from the entry's words), its service, and its real
/// server while the snapshot still has it in the entry's slot.
#[derive(Clone, Copy)]
pub(crate) struct Flow<'t, C: ConnView = Conn> {
    pub svc: &'t ServiceRt,
    pub real: Option<&'t RealRt>,
    pub conn: &'t C,
}

/// A packet of a known connection: reuse of a closing entry, the protocol's own handling
/// and state machine, then the rewrite of its direction.
#[inline]
pub(crate) fn established<P: L4Proto>(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    hit: &Hit,
) -> Verdict {
    let tables = ctx.tables;
    let Some(svc) = tables.service(hit.service()) else {
        return orphan(ctx, hit);
    };
    if hit.dir == Dir::Original
        && P::opens_connection(&pkt.p)
        && lifecycle::reschedules(&ctx.settings, svc, hit)
    {
        return reuse::<P>(ctx, pkt, hit);
    }
    // The real server may be gone (removed by a reload), down, or its slot may hold
    // another one now: the connection still carries its own addresses, so it keeps
    // flowing unless expire_nodest_conn says to drop it (IPVS keeps forwarding to a
    // removed dest too).
    if ctx.settings.expire_nodest_conn && !lifecycle::dest_alive(svc, hit) {
        return orphan(ctx, hit);
    }
    if let Err(v) = P::established(ctx, pkt, hit, svc) {
        return v;
    }
    let real = svc.real(hit.real()).filter(|r| {
        if is_nat64(hit) {
            r.addr == lifecycle::real_addr(hit)
        } else {
            r.addr.same_addr(hit.reply_src())
        }
    });
    if hit.flags() & conn_flags::SYNCED != 0 {
        adopt(ctx, hit, svc);
    }
    P::track_state(ctx, svc, &pkt.p, hit);
    if let Some(fast) = ctx.fast {
        // The kernel fast path leaves segments that move the state to the workers; its
        // lines of the flow go before this one is forwarded (`crate::fastpath`).
        if crate::fastpath::moves_state(&pkt.p) {
            if let Some(keys) = crate::fastpath::conn_keys(hit) {
                crate::fastpath::clear_flow(fast, ctx.tables, ctx.worker, keys);
            }
        }
    }
    let flow = Flow {
        svc,
        real,
        conn: hit,
    };
    // Now and then a configured server's packet is recorded for the flow's next ones
    // (`crate::flowcache`), from the packet as it came and as it leaves; with the kernel
    // fast path on, every such packet writes the flow's lines (`crate::fastpath`).
    if P::FLOW_CACHE && real.is_some() {
        let draw = Filling::wanted(ctx.flows, &pkt.p, hit);
        let fast = match ctx.fast {
            Some(_) => crate::fastpath::wanted(&pkt.p, hit.flags(), hit.state(), hit.dir),
            None => None,
        };
        if draw || fast.is_some() {
            return forward_recorded(ctx, pkt, flow, draw, fast);
        }
    }
    match hit.dir {
        Dir::Original => forward_original(ctx, pkt, flow),
        Dir::Reply => forward_reply(ctx, pkt, flow),
    }
}

/// [`established`]'s rewrite of a packet to be recorded, out of the way of the others.
#[cold]
#[inline(never)]
fn forward_recorded(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    flow: Flow<'_, Hit>,
    draw: bool,
    fast: Option<crate::fastpath::Lines>,
) -> Verdict {
    let (svc, hit) = (flow.svc, flow.conn);
    let fill = if draw { Filling::new(pkt, hit) } else { None };
    let v = match hit.dir {
        Dir::Original => forward_original(ctx, pkt, flow),
        Dir::Reply => forward_reply(ctx, pkt, flow),
    };
    if let Verdict::Forward(port) = v {
        if let Some(fill) = fill {
            record(ctx, pkt, fill, svc, hit, port);
        }
        if let Some(lines) = fast {
            fast_install(ctx, svc, hit, lines);
        }
    }
    v
}

/// Writes the kernel fast path's lines of a NAT or FullNAT connection (IPv4 or IPv6) whose
/// packet was just forwarded whole (`crate::fastpath`).
pub(crate) fn fast_install<C: ConnView>(
    ctx: &Ctx<'_>,
    svc: &ServiceRt,
    hit: &C,
    lines: crate::fastpath::Lines,
) {
    let Some(fast) = ctx.fast else {
        return;
    };
    if !matches!(
        Method::from_u8(hit.method()),
        Some(Method::Nat | Method::FullNat)
    ) || !ctx.pieces.is_empty()
        || is_nat64(hit)
    {
        return;
    }
    if let Some(keys) = crate::fastpath::conn_keys(hit) {
        crate::fastpath::install(
            fast,
            ctx.tables,
            ctx.worker,
            keys,
            svc.id,
            hit.real(),
            lines,
        );
    }
}

/// Records how the packet of `hit` that `fill` was made for left by `port`, if it left
/// whole and rewritten by NAT or FullNAT: its rewrite worked out again from the packet as
/// it came (`fill`), the header and MTU it left with.
fn record(
    ctx: &mut Ctx<'_>,
    pkt: &Packet<'_>,
    fill: Filling,
    svc: &ServiceRt,
    hit: &Hit,
    port: u8,
) {
    let full = match Method::from_u8(hit.method()) {
        Some(Method::Nat) => false,
        Some(Method::FullNat) => true,
        _ => return,
    };
    if !ctx.pieces.is_empty() || is_nat64(hit) {
        return;
    }
    let before = &fill.before;
    let n = match hit.dir {
        Dir::Original => to_real(hit, before, full),
        Dir::Reply => to_client(hit, before, full),
    };
    let Some(iface) = ctx.tables.ifaces.get(usize::from(port)) else {
        return;
    };
    let mut macs = [0; 12];
    macs.copy_from_slice(&pkt.buf[..12]);
    // One record of either family.
    macro_rules! record {
        ($key:expr, $rewrite:expr) => {
            crate::flowcache::Record {
                key: $key,
                id: Some(fill.id),
                rewrite: $rewrite,
                l2: crate::egress::L2 { macs, port },
                mtu: iface.mtu,
                state: fill.state,
                timeout: svc.timeouts.for_state(before.l4_proto, fill.state),
                service: svc.id,
                real: hit.real(),
                svc_stats: Some(svc.stats.clone()),
                real_stats: svc.real(hit.real()).map(|r| r.stats.clone()),
                inbound: hit.dir == Dir::Original,
            }
        };
    }
    // Answered (time exceeded, too big) or dropped on the way: not forwarded as rewritten.
    match fill.key {
        FillKey::V4(key) => {
            if let Some(w) = uvs_wire::V4Rewrite::new(before, &n).filter(|r| r.wrote(&pkt.p)) {
                if !full && hit.dir == Dir::Original {
                    ctx.flows
                        .put_class(record!(crate::flowcache::ClassKey4::of(hit), w));
                }
                ctx.flows.put(record!(key, w));
            }
        }
        FillKey::V6(key) => {
            if let Some(w) = uvs_wire::V6Rewrite::new(before, &n).filter(|r| r.wrote(&pkt.p)) {
                if !full && hit.dir == Dir::Original {
                    ctx.flows
                        .put_class6(record!(crate::flowcache::ClassKey6::of(hit), w));
                }
                ctx.flows.put6(record!(key, w));
            }
        }
    }
}

/// A packet of a connection a sync peer installed passes here (a failover, or ECMP moved
/// the flow): the flow is this node's now. Its mark goes, so this node's sync refresh sends
/// it, and the tap reports it at once, as IPVS's master syncs every connection it forwards:
/// a peer that restarted meanwhile learns it back before traffic returns there.
/// The flow's persistence template goes with it, as IPVS syncs a connection's controlling
/// template with it.
#[cold]
fn adopt(ctx: &mut Ctx<'_>, hit: &Hit, svc: &ServiceRt) {
    own(ctx, hit);
    if let Some((key, _)) = crate::lifecycle::client_template(svc, *hit.orig_src(), hit.v6()) {
        if let Some(t) = ctx.conns.lookup(&key, ctx.now) {
            if t.flags() & conn_flags::SYNCED != 0 {
                own(ctx, &t);
            }
        }
    }
}

/// Clears the entry's synced mark and reports it to the sync tap (once, of two workers).
#[cold]
pub(crate) fn own(ctx: &mut Ctx<'_>, hit: &Hit) {
    if ctx.conns.clear_flags(hit, conn_flags::SYNCED) {
        ctx.sync.note(ctx.worker, hit.id);
    }
}

/// A connection whose virtual service is gone, or whose real server is gone or down while
/// expire_nodest_conn is set: dropped, and with expire_nodest_conn its entry too (the
/// client's next attempt is scheduled afresh).
#[cold]
pub(crate) fn orphan(ctx: &mut Ctx<'_>, hit: &Hit) -> Verdict {
    let tables = ctx.tables;
    if ctx.settings.expire_nodest_conn && ctx.conns.remove(hit.id) {
        lifecycle::unbind(tables, &hit.conn());
    }
    Verdict::Drop(DropReason::NoRealServer)
}

/// A new connection's first packet found an old entry of its tuple that must not carry it
/// (closing, or its real server removed or down): the old entry goes, the packet is
/// scheduled as a new flow.
#[cold]
pub(crate) fn reuse<P: L4Proto>(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, hit: &Hit) -> Verdict {
    retire(ctx, hit.id, &hit.conn());
    let key = flow_key(&pkt.p);
    new_flow::<P>(ctx, pkt, &key)
}

/// Takes an old entry (`conn`, at `id`) out of the table for a new connection: unbound from
/// its real server and counted as reused by whichever worker removed it.
#[cold]
pub(crate) fn retire(ctx: &Ctx<'_>, id: uvs_conntrack::ConnId, conn: &Conn) {
    if let (Some(fast), Some(keys)) = (ctx.fast, crate::fastpath::conn_keys(conn)) {
        // A closing connection's lines may still hold (`crate::fastpath::Lines::Closing`).
        crate::fastpath::clear_flow(fast, ctx.tables, ctx.worker, keys);
    }
    if ctx.conns.remove(id) {
        lifecycle::unbind(ctx.tables, conn);
        ctx.counters.reused_conns.add(1);
    }
}

/// Egress port and next hop towards a connection's real server: cached in the snapshot
/// for a configured server, routed for one a reload removed (its flows keep going).
#[inline]
pub(crate) fn real_egress(
    tables: &Tables,
    real: Option<&RealRt>,
    addr: &IpKey,
) -> Option<(u8, IpKey)> {
    match real {
        Some(r) => Some((r.egress, r.next_hop)),
        None => tables.route(addr),
    }
}

/// Counts a packet on its service and real server: `inbound` is client → server.
#[inline]
pub(crate) fn account(
    worker: usize,
    svc: &ServiceRt,
    real: Option<&RealRt>,
    bytes: u64,
    inbound: bool,
) {
    count(svc.stats.worker(worker), bytes, inbound);
    if let Some(r) = real {
        count(r.stats.worker(worker), bytes, inbound);
    }
}

/// Counts a packet of `bytes` on one service's or real server's counters of a worker.
#[inline(always)]
pub(crate) fn count(s: &crate::counters::TrafficStats, bytes: u64, inbound: bool) {
    if inbound {
        s.packets_in.add(1);
        s.bytes_in.add(bytes);
    } else {
        s.packets_out.add(1);
        s.bytes_out.add(bytes);
    }
}

/// Client → real server. Always inlined: with one copy of `established` per protocol the
/// compiler stopped inlining it on its own, which cost established TCP flows 1–2 %.
#[inline(always)]
pub(crate) fn forward_original<C: ConnView>(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    flow: Flow<'_, C>,
) -> Verdict {
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    let Flow { svc, real, conn } = flow;
    let bytes = pkt.len as u64;
    let Some(method) = Method::from_u8(conn.method()) else {
        return invalid_entry();
    };
    if is_nat64(conn) {
        let conn = &conn.conn();
        return nat64::to_real(ctx, pkt, Flow { svc, real, conn });
    }
    let (v6, real_src) = (conn.v6(), conn.reply_src());
    let real_addr = ip(v6, *real_src);
    // The header a packet of this snapshot and neighbour map already resolved towards
    // this real server (`crate::egress`): the port and both MACs in one line instead of the
    // real server's next hop, the interface and the neighbour map's hash.
    let cached = ctx.egress.get(conn.service(), conn.real(), v6, real_src);
    let (egress, hop) = match cached {
        Some(l2) => (l2.port, real_addr),
        None => match real_egress(tables, real, &real_addr) {
            Some(e) => e,
            None => return Verdict::Drop(DropReason::NoRoute),
        },
    };
    // NAT, FullNAT and DR send the packet on as it is (TUN checks with its headers).
    let cut = match method {
        Method::Tun => None,
        _ => match fits(ctx, pkt, egress, true) {
            Ok(cut) => cut,
            Err(v) => return v,
        },
    };
    match method {
        Method::Nat | Method::FullNat => {
            let Packet { buf, p, .. } = pkt;
            // IPv4 TCP in one pass, each checksum updated once; the rest field by field
            // (`uvs_wire::nat`).
            let n = to_real(conn, p, method == Method::FullNat);
            if !uvs_wire::nat(buf, p, &n) {
                return ttl_exceeded(ctx, pkt, true);
            }
        }
        // DR: the real server holds the VIP; only the TTL (as IPVS's `decrement_ttl` for
        // every method) and the destination MAC (below) change.
        Method::Dr => {
            if !uvs_wire::decrement_ttl(pkt.buf, &pkt.p) {
                return ttl_exceeded(ctx, pkt, true);
            }
        }
        Method::Tun => {
            if !uvs_wire::decrement_ttl(pkt.buf, &pkt.p) {
                return ttl_exceeded(ctx, pkt, true);
            }
            if let Err(v) = encapsulate(ctx, pkt, TunTo::new(real, real_addr, egress)) {
                return v;
            }
        }
    }
    if let Some(mtu) = cut {
        if let Err(v) = cut_to_fit(ctx, pkt, mtu) {
            return v;
        }
    }
    account(ctx.worker, svc, real, bytes, true);
    if let Some(l2) = cached {
        pkt.buf[..12].copy_from_slice(&l2.macs);
        return Verdict::Forward(l2.port);
    }
    let v = l2_out(tables, neigh, pkt.buf, egress, hop);
    // Only a configured server's header is kept: its port and next hop are the snapshot's
    // for this slot and address. A removed server's flows stay routed.
    if let (Verdict::Forward(port), Some(_)) = (v, real) {
        let mut macs = [0; 12];
        macs.copy_from_slice(&pkt.buf[..12]);
        let l2 = crate::egress::L2 { macs, port };
        ctx.egress
            .put(conn.service(), conn.real(), v6, real_src, l2);
    }
    v
}

/// The NAT (`full`: FullNAT) rewrite of a packet `p` of `conn` towards its real server.
#[inline(always)]
pub(crate) fn to_real<'c, C: ConnView>(
    conn: &'c C,
    p: &Parsed,
    full: bool,
) -> uvs_wire::NatFields<'c> {
    let real_port = conn.reply_sport();
    uvs_wire::NatFields {
        dst_addr: Some(conn.reply_src()),
        dst_port: (p.dport != real_port).then_some(real_port),
        src_addr: full.then(|| conn.reply_dst()),
        src_port: full.then(|| conn.reply_dport()),
    }
}

/// The NAT (`full`: FullNAT) rewrite of a reply `p` of `conn` towards its client.
#[inline(always)]
pub(crate) fn to_client<'c, C: ConnView>(
    conn: &'c C,
    p: &Parsed,
    full: bool,
) -> uvs_wire::NatFields<'c> {
    let vport = conn.orig_dport();
    uvs_wire::NatFields {
        src_addr: Some(conn.orig_dst()),
        src_port: (p.sport != vport).then_some(vport),
        dst_addr: full.then(|| conn.orig_src()),
        dst_port: full.then(|| conn.orig_sport()),
    }
}

/// TUN: IP-in-IP (RFC 2003), IPv6-in-IPv6 (RFC 2473), UDP + GUE or GRE, as the real
/// server's `tun` says (IPVS's `ip_vs_tunnel_xmit`), from the egress interface's local
/// address to the real server. A packet that would exceed the egress MTU once the outer
/// headers are added is not sent: the client is told the MTU left for it. A real server a
/// reload removed has no `RealRt` any more; its remaining flows are sent with IPIP.
#[cold]
pub(crate) fn encapsulate(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    to: TunTo,
) -> Result<(), Verdict> {
    let tables = ctx.tables;
    let TunTo {
        ref real,
        encap: tun,
        egress,
    } = to;
    let p = &pkt.p;
    let iface = tables
        .ifaces
        .get(usize::from(egress))
        .ok_or(Verdict::Drop(DropReason::NoRoute))?;
    let outer_src = if real.v6 {
        iface.local6
    } else {
        iface.local4.map(|a| {
            let mut x = [0; 16];
            x[..4].copy_from_slice(&a);
            x
        })
    }
    .ok_or(Verdict::Drop(DropReason::NoRoute))?;
    let tunnel = match tun {
        TunEncap::Ipip => Tunnel::Ipip,
        TunEncap::Gue { port, checksum, .. } => Tunnel::Gue {
            src_port: gue_src_port(p),
            dst_port: port,
            checksum,
        },
        TunEncap::Gre { checksum } => Tunnel::Gre { checksum },
    };
    let outer = if real.v6 { L3::V6 } else { L3::V4 };
    let hdr = (outer.header_len() + tunnel.header_len()) as u16;
    let (l3_off, l3) = (usize::from(p.l3_off), p.l3);
    let room = iface.mtu.saturating_sub(hdr);
    if p.ip_total_len > room {
        // IPv4 without DF is cut into fragments that fit, as a router on the way would
        // (IPVS's tunnel packet inherits DF and the kernel fragments it); the rest is told
        // the path MTU.
        let cut = match l3 {
            L3::V4 => ctx
                .pieces
                .cut_v4(pkt.buf, pkt.len, l3_off, usize::from(room)),
            L3::V6 => None,
        };
        match cut {
            Some(n) => pkt.len = n,
            None => return Err(too_big(ctx, pkt, room, true)),
        }
    }
    // The inner packet's TTL (hop limit), as IPVS's `ip_vs_tunnel_xmit` sets it: the
    // tunnel is one more hop of the client's path, traceroute included.
    let ttl_at = l3_off + if l3 == L3::V6 { 7 } else { 8 };
    let o = Outer {
        src: outer_src,
        dst: real.addr,
        family: outer,
        ttl: pkt.buf.get(ttl_at).copied().unwrap_or(64),
    };
    let Ok(n) = uvs_wire::encap(pkt.buf, pkt.len, l3_off, l3, &o, tunnel) else {
        ctx.pieces.clear();
        return Err(Verdict::Drop(DropReason::TooBig));
    };
    pkt.len = n;
    ctx.counters.tunnelled[tun.index()].add(1);
    if !ctx.pieces.is_empty() {
        let encap = |piece: &mut [u8], len| uvs_wire::encap(piece, len, l3_off, l3, &o, tunnel);
        if ctx.pieces.for_each_mut(encap).is_err() {
            ctx.pieces.clear();
            return Err(Verdict::Drop(DropReason::TooBig));
        }
        ctx.counters.tunnelled[tun.index()].add(ctx.pieces.len() as u64);
    }
    Ok(())
}

/// Where and how TUN sends a packet: the real server's address, its encapsulation (IPIP
/// for a server a reload removed), and the egress port towards it.
#[derive(Clone, Copy)]
pub(crate) struct TunTo {
    pub real: IpKey,
    pub encap: TunEncap,
    pub egress: u8,
}

impl TunTo {
    #[inline]
    pub(crate) fn new(real: Option<&RealRt>, addr: IpKey, egress: u8) -> Self {
        Self {
            real: addr,
            encap: real.map_or(TunEncap::Ipip, |r| r.tun),
            egress,
        }
    }
}

/// GUE's UDP source port: a hash of the inner flow mapped into Linux's default ephemeral
/// range 32768..61000, as `udp_flow_src_port` does, so one flow keeps one port and the
/// flows of one real server spread over ECMP paths and receive queues.
#[inline]
fn gue_src_port(p: &Parsed) -> u16 {
    const LOW: u64 = 32768;
    const HIGH: u64 = 61000;
    let mut h = u64::from(p.l4_proto) ^ (u64::from(p.sport) << 16) ^ (u64::from(p.dport) << 32);
    for chunk in p.src.chunks(8).chain(p.dst.chunks(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let h32 = h >> 32;
    (LOW + ((h32 * (HIGH - LOW)) >> 32)) as u16
}

/// The packet does not fit the tunnel: tell the sender the path MTU (ICMP fragmentation
/// needed, RFC 1191 / ICMPv6 packet too big, RFC 8201) instead of dropping it silently.
/// The packet counts as a `too_big` drop either way (the frame carries the error back);
/// IPv4 packets without DF are not fragmented here: they are only dropped.
/// From the address the packet was sent to when uvs owns it (`to_us`: the VIP, a FullNAT
/// pool address), as [`ttl_exceeded`].
#[cold]
pub(crate) fn too_big(ctx: &Ctx<'_>, pkt: &mut Packet<'_>, mtu: u16, to_us: bool) -> Verdict {
    if may_fragment(pkt) {
        return Verdict::Drop(DropReason::TooBig);
    }
    answer_error(ctx, pkt, DropReason::TooBig, |frame, p, iface, out| {
        let Some(ours) = our_addr(p, iface, to_us) else {
            return Err(uvs_wire::build::BuildError::NotApplicable);
        };
        if p.l3 == L3::V6 {
            let mtu = u32::from(mtu.max(1280));
            uvs_wire::build::icmpv6_packet_too_big(frame, p, &ours, mtu, out)
        } else {
            uvs_wire::build::icmpv4_frag_needed(frame, p, v4(&ours), mtu.max(68), out)
        }
    })
}

/// A new connection no real server can take (all down, all weight 0 or over their upper
/// threshold) and no sorry server: counted as `no_real_server` and refused with ICMP
/// port unreachable from the VIP, as IPVS's `ip_vs_leave` refuses it, so the client fails
/// at once ("connection refused") instead of retrying its SYN for minutes.
#[cold]
pub(crate) fn refuse(ctx: &Ctx<'_>, pkt: &mut Packet<'_>) -> Verdict {
    port_unreachable(ctx, pkt, DropReason::NoRealServer)
}

/// Answers a packet with ICMP (ICMPv6) port unreachable from the address it was sent to,
/// counted as dropped for `reason`.
#[cold]
pub(crate) fn port_unreachable(ctx: &Ctx<'_>, pkt: &mut Packet<'_>, reason: DropReason) -> Verdict {
    answer_error(ctx, pkt, reason, |frame, p, _, out| {
        if p.l3 == L3::V6 {
            uvs_wire::build::icmpv6_port_unreachable(frame, p, &p.dst, out)
        } else {
            uvs_wire::build::icmpv4_port_unreachable(frame, p, v4(&p.dst), out)
        }
    })
}

/// The address an ICMP error about `p` comes from: its destination when uvs owns it
/// (`to_us`), else uvs's own address on the link back to its sender.
fn our_addr(p: &Parsed, iface: &crate::tables::IfaceRt, to_us: bool) -> Option<[u8; 16]> {
    if to_us {
        Some(p.dst)
    } else if p.l3 == L3::V6 {
        iface.local6
    } else {
        iface.local4.map(|a| {
            let mut x = [0; 16];
            x[..4].copy_from_slice(&a);
            x
        })
    }
}

/// The packet's TTL (hop limit) ran out here: dropped as `ttl_exceeded` and, as a router
/// and IPVS (`decrement_ttl`) do, its sender is sent ICMP time exceeded, from the
/// packet's destination when uvs owns it (`to_us`: a VIP, a FullNAT pool address), else
/// from uvs's own address on the link back to the sender.
#[cold]
pub(crate) fn ttl_exceeded(ctx: &Ctx<'_>, pkt: &mut Packet<'_>, to_us: bool) -> Verdict {
    answer_error(ctx, pkt, DropReason::TtlExceeded, |frame, p, iface, out| {
        let Some(ours) = our_addr(p, iface, to_us) else {
            return Err(uvs_wire::build::BuildError::NotApplicable);
        };
        if p.l3 == L3::V6 {
            uvs_wire::build::icmpv6_time_exceeded(frame, p, &ours, out)
        } else {
            uvs_wire::build::icmpv4_time_exceeded(frame, p, v4(&ours), out)
        }
    })
}

fn v4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

/// Drops the packet as `reason` and sends its sender the ICMP error `build` writes about
/// it (given the frame, its parse and the interface back to the sender), to the sender's
/// MAC out of the port towards its source address; when none can be sent (the packet is
/// an ICMP error or a later fragment, no route back, this second's
/// [`crate::verdict::ERRORS_PER_SEC`] spent) it is only dropped.
#[cold]
fn answer_error(
    ctx: &Ctx<'_>,
    pkt: &mut Packet<'_>,
    reason: DropReason,
    build: impl FnOnce(
        &[u8],
        &Parsed,
        &crate::tables::IfaceRt,
        &mut [u8],
    ) -> Result<usize, uvs_wire::build::BuildError>,
) -> Verdict {
    let tables = ctx.tables;
    let Packet { buf, len, p } = pkt;
    if !ctx.errors.take(ctx.now_s) {
        return Verdict::Drop(reason);
    }
    let Some((port, _)) = tables.route(&ip(p.l3 == L3::V6, p.src)) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let Some(iface) = tables.ifaces.get(usize::from(port)) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let mut out = [0u8; 1400];
    match build(&buf[..*len], p, iface, &mut out) {
        Ok(n) if n <= buf.len() => {
            buf[..n].copy_from_slice(&out[..n]);
            *len = n;
            buf[6..12].copy_from_slice(&iface.mac);
            ctx.counters.drop(reason);
            Verdict::Forward(port)
        }
        _ => Verdict::Drop(reason),
    }
}

/// Real server → client (NAT, FullNAT); inlined as [`forward_original`].
#[inline(always)]
pub(crate) fn forward_reply<C: ConnView>(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    flow: Flow<'_, C>,
) -> Verdict {
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    let Flow { svc, real, conn } = flow;
    let bytes = pkt.len as u64;
    let Some(method) = Method::from_u8(conn.method()) else {
        return invalid_entry();
    };
    if !matches!(method, Method::Nat | Method::FullNat) {
        // DR/TUN replies go straight from the real server to the client.
        return Verdict::Drop(DropReason::DirectReplyReturned);
    }
    if is_nat64(conn) {
        let conn = &conn.conn();
        return nat64::to_client(ctx, pkt, Flow { svc, real, conn });
    }
    let client_addr = conn.orig_src();
    let full = method == Method::FullNat;
    let client = ip(conn.v6(), *client_addr);
    let Some((port, hop)) = tables.route(&client) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let cut = match fits(ctx, pkt, port, full) {
        Ok(cut) => cut,
        Err(v) => return v,
    };
    let Packet { buf, p, .. } = pkt;
    // As in `forward_original`.
    let n = to_client(conn, p, full);
    if !uvs_wire::nat(buf, p, &n) {
        return ttl_exceeded(ctx, pkt, full);
    }
    if let Some(mtu) = cut {
        if let Err(v) = cut_to_fit(ctx, pkt, mtu) {
            return v;
        }
    }
    account(ctx.worker, svc, real, bytes, false);
    l2_out(tables, neigh, pkt.buf, port, hop)
}

/// Whether the packet fits the link of `port` as it is: `Ok(None)` it does; `Ok(Some(mtu))`
/// an IPv4 packet without DF, to be cut into fragments once rewritten ([`cut_to_fit`]), as
/// a router (and IPVS's kernel) would; `Err` the packet is refused with fragmentation
/// needed / packet too big carrying the link's MTU (`to_us` as for [`ttl_exceeded`]).
#[inline(always)]
fn fits(
    ctx: &Ctx<'_>,
    pkt: &mut Packet<'_>,
    port: u8,
    to_us: bool,
) -> Result<Option<u16>, Verdict> {
    match ctx.tables.ifaces.get(usize::from(port)) {
        Some(iface) if pkt.p.ip_total_len > iface.mtu => {
            too_big_for_link(ctx, pkt, iface.mtu, to_us)
        }
        _ => Ok(None),
    }
}

#[cold]
fn too_big_for_link(
    ctx: &Ctx<'_>,
    pkt: &mut Packet<'_>,
    mtu: u16,
    to_us: bool,
) -> Result<Option<u16>, Verdict> {
    if may_fragment(pkt) {
        Ok(Some(mtu))
    } else {
        Err(too_big(ctx, pkt, mtu, to_us))
    }
}

/// An IPv4 packet without DF: routers may cut it.
fn may_fragment(pkt: &Packet<'_>) -> bool {
    pkt.p.l3 == L3::V4
        && pkt
            .buf
            .get(usize::from(pkt.p.l3_off) + 6)
            .is_some_and(|b| b & 0x40 == 0)
}

/// Cuts the (rewritten) packet into IPv4 fragments of at most `mtu` bytes: it keeps the
/// first, the worker sends the others after it (`frag::Pieces`).
#[cold]
fn cut_to_fit(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, mtu: u16) -> Result<(), Verdict> {
    let l3_off = usize::from(pkt.p.l3_off);
    match ctx
        .pieces
        .cut_v4(pkt.buf, pkt.len, l3_off, usize::from(mtu))
    {
        Some(n) => {
            pkt.len = n;
            Ok(())
        }
        None => Err(Verdict::Drop(DropReason::TooBig)),
    }
}

/// Fills in the MACs for the egress port and next hop, or asks the worker to hold the
/// frame until the neighbour is resolved.
#[inline]
pub(crate) fn l2_out(
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    port: u8,
    hop: IpKey,
) -> Verdict {
    let Some(iface) = tables.ifaces.get(usize::from(port)) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    buf[6..12].copy_from_slice(&iface.mac);
    match neigh.get(&hop) {
        Some(n) => {
            buf[..6].copy_from_slice(&n.mac);
            Verdict::Forward(port)
        }
        None => Verdict::AwaitNeighbour {
            port,
            next_hop: hop.addr,
            v6: hop.v6,
        },
    }
}

/// An entry whose method byte is none uvs stores: refused, never forwarded as NAT.
#[cold]
#[inline(never)]
fn invalid_entry() -> Verdict {
    Verdict::Drop(DropReason::InvalidEntry)
}
