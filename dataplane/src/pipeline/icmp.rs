//! ICMP: echo to the slow path, errors translated with the flow they quote.

use uvs_conntrack::ConnView;
use uvs_conntrack::{Conn, Dir, FlowKey};
use uvs_wire::{ip_proto, L3};

use super::*;
use crate::tables::{Method, RealRt};
use crate::verdict::{DropReason, Verdict};

/// ICMP and ICMPv6 in the pipeline (`pipeline/proto.rs`). ICMP has no connections of its
/// own: its inspection answers every packet, so the core never looks it up (its `Seen` has
/// no value) — errors are translated with the flow they quote, as IPVS and DPVS handle them
/// apart from their protocol's lookup.
pub(crate) struct Icmp;

impl L4Proto for Icmp {
    type Seen = std::convert::Infallible;

    #[inline(always)]
    fn inspect(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>) -> Result<Self::Seen, Verdict> {
        Err(icmp(ctx, pkt))
    }

    fn miss(
        _ctx: &mut Ctx<'_>,
        _pkt: &mut Packet<'_>,
        seen: &Self::Seen,
        _key: &FlowKey,
    ) -> Result<Option<uvs_conntrack::Hit>, Verdict> {
        match *seen {}
    }

    fn initial_state(svc: &crate::tables::ServiceRt, p: &uvs_wire::Parsed) -> (u8, u32) {
        (0, svc.timeouts.for_state(p.l4_proto, 0))
    }
}

/// ICMP: errors about a tracked flow are translated with it (outer and quoted headers,
/// as IPVS's ip_vs_in_icmp / ip_vs_out_icmp); echo and NDP for owned addresses go to the
/// slow path; a message in IP fragments is dropped (`icmp_fragment`).
#[cold]
pub(crate) fn icmp(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>) -> Verdict {
    let tables = ctx.tables;
    let p = &pkt.p;
    if p.is_fragment() {
        // A ping larger than the MTU: its first fragment's checksum covers the whole
        // message and the others carry no ICMP header; uvs does not reassemble.
        return Verdict::Drop(DropReason::IcmpFragment);
    }
    let v6 = p.l3 == L3::V6;
    let is_error = if v6 {
        p.icmp_type < 128
    } else {
        matches!(p.icmp_type, 3 | 4 | 11 | 12)
    };
    if is_error {
        return icmp_error(ctx, pkt);
    }
    if tables.owns(&ip(v6, p.dst)) || (v6 && p.dst[0] == 0xff) {
        Verdict::SlowPath
    } else {
        Verdict::Drop(DropReason::IcmpNoFlow)
    }
}

/// An ICMP error quoting a packet of a tracked flow. The quoted packet is one that left
/// here (or the client) towards the error's sender, so its reversed tuple is one of the
/// connection's tuples: the original one (the error came from the client side about a
/// reply: send it on to the real server) or the reply one (the error came from the server
/// side about a forwarded packet: send it back to the client). A connection the SYN proxy
/// spliced has the quoted segment's sequence, acknowledgement and timestamp numbers (and
/// window) translated back too, as the splice translates its segments
/// (`synproxy::quoted`).
#[cold]
pub(crate) fn icmp_error(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>) -> Verdict {
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    let v6 = pkt.p.l3 == L3::V6;
    let Ok(mut e) = uvs_wire::parse_icmp_embedded(pkt.frame(), &pkt.p) else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    if matches!(
        e.l4_proto,
        ip_proto::IPIP | ip_proto::IPV6 | ip_proto::UDP | ip_proto::GRE
    ) && tables.is_local(&ip(v6, e.src))
    {
        // Only a quote that is one of our tunnel packets: a FullNAT pool address may be a
        // local address too, and errors about its UDP flows take the path below.
        let gue_port = tables.gue_port_of(&ip(v6, e.dst));
        if let Some(skip) = uvs_wire::untunnel::tunnel_quote_len(pkt.frame(), &e, gue_port) {
            return tunnel_error(ctx, pkt, &e, skip);
        }
    }
    let key = FlowKey {
        proto: e.l4_proto,
        v6,
        src: e.dst,
        dst: e.src,
        sport: e.dport,
        dport: e.sport,
    };
    let Some(hit) = ctx
        .conns
        .lookup(&key, ctx.now)
        .or_else(|| nat64::lookup_reply(ctx, &key))
    else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    let c = hit.conn();
    let Some(svc) = tables.service(c.service) else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    let Some(method) = Method::from_u8(c.method) else {
        return Verdict::Drop(DropReason::InvalidEntry);
    };
    if !uvs_wire::decrement_ttl(pkt.buf, &pkt.p) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    if is_nat64(&c) {
        return nat64::icmp_error(ctx, pkt, &e, &hit);
    }
    let splice = crate::synproxy::quoted(ctx, &hit);
    let Packet { buf: frame, p, .. } = &mut *pkt;
    if let Some(s) = splice {
        // A spliced connection: the quoted segment's numbers as its sender sent them. A
        // quote too short to hold its sequence number goes on as it came (no TCP can match
        // it either way; Linux wants 8 bytes of it).
        uvs_wire::splice_embedded(frame, &e, &s);
    }
    match hit.dir {
        Dir::Original => {
            // Quoted: VIP:vport → client:cport (our reply). The real server sent it as
            // real:rport → client (or → local:lport with FullNAT).
            if matches!(method, Method::Nat | Method::FullNat) {
                uvs_wire::set_embedded_src_addr(frame, &mut e, &c.reply.src);
                uvs_wire::set_embedded_src_port(frame, &mut e, c.reply.sport);
                uvs_wire::set_dst_addr(frame, p, &c.reply.src);
                if method == Method::FullNat {
                    uvs_wire::set_embedded_dst_addr(frame, &mut e, &c.reply.dst);
                    uvs_wire::set_embedded_dst_port(frame, &mut e, c.reply.dport);
                    uvs_wire::set_src_addr(frame, p, &c.reply.dst);
                }
            }
            let real = svc.real(c.real).filter(|r| r.addr.same_addr(&c.reply.src));
            forward_icmp_to_real(ctx, pkt, real, &c)
        }
        Dir::Reply => {
            if !matches!(method, Method::Nat | Method::FullNat) {
                return Verdict::Drop(DropReason::IcmpNoFlow);
            }
            // Quoted: client:cport (or local:lport) → real:rport, as we forwarded it. The
            // client sent client:cport → VIP:vport; the error appears to come from the VIP.
            uvs_wire::set_embedded_dst_addr(frame, &mut e, &c.orig.dst);
            uvs_wire::set_embedded_dst_port(frame, &mut e, c.orig.dport);
            uvs_wire::set_src_addr(frame, p, &c.orig.dst);
            if method == Method::FullNat {
                uvs_wire::set_embedded_src_addr(frame, &mut e, &c.orig.src);
                uvs_wire::set_embedded_src_port(frame, &mut e, c.orig.sport);
                uvs_wire::set_dst_addr(frame, p, &c.orig.src);
            }
            let client = ip(c.orig.v6, c.orig.src);
            match tables.route(&client) {
                Some((port, hop)) => l2_out(tables, neigh, pkt.buf, port, hop),
                None => Verdict::Drop(DropReason::NoRoute),
            }
        }
    }
}

/// An ICMP error about a packet uvs tunnelled to a TUN real server (quoted: uvs's local
/// address → real server, IPIP/GUE/GRE, then the client's packet), from a router on the way
/// to the server. As IPVS's `ip_vs_in_icmp` does for its tunnels, the client gets the error
/// about its own packet, from the VIP, with a fragmentation-needed / packet-too-big MTU
/// reduced by what the tunnel adds, so its path-MTU discovery converges.
#[cold]
fn tunnel_error(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    e: &uvs_wire::Embedded,
    skip: usize,
) -> Verdict {
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    let v6 = pkt.p.l3 == L3::V6;
    let real = ip(v6, e.dst);
    // The tunnelled packet must be one of a TUN connection to that real server.
    let Some(key) = inner_flow(pkt.frame(), e, skip, v6) else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    let Some(hit) = ctx.conns.lookup(&key, ctx.now) else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    let c = hit.conn();
    if hit.dir != Dir::Original
        || Method::from_u8(c.method) != Some(Method::Tun)
        || !real.same_addr(&c.reply.src)
    {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    }
    let ttl = uvs_wire::build::DEFAULT_TTL;
    let Some(n) = uvs_wire::untunnel::untunnel_icmp_error(pkt.buf, pkt.len, &pkt.p, e, skip, ttl)
    else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    pkt.len = n;
    match tables.route(&ip(v6, c.orig.src)) {
        Some((port, hop)) => l2_out(tables, neigh, pkt.buf, port, hop),
        None => Verdict::Drop(DropReason::NoRoute),
    }
}

/// The connection key of the packet quoted `skip` bytes into `e`'s quote (a tunnelled
/// client packet): its own direction, client → VIP.
fn inner_flow(frame: &[u8], e: &uvs_wire::Embedded, skip: usize, v6: bool) -> Option<FlowKey> {
    let inner = uvs_wire::embedded::parse_quoted_inner(frame, e, skip).ok()?;
    Some(FlowKey {
        proto: inner.l4_proto,
        v6,
        src: inner.src,
        dst: inner.dst,
        sport: inner.sport,
        dport: inner.dport,
    })
}

pub(crate) fn forward_icmp_to_real(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    real: Option<&RealRt>,
    c: &Conn,
) -> Verdict {
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    let real_addr = ip(c.reply.v6, c.reply.src);
    let Some((egress, hop)) = real_egress(tables, real, &real_addr) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    if Method::from_u8(c.method) == Some(Method::Tun) {
        if let Err(v) = encapsulate(ctx, pkt, TunTo::new(real, real_addr, egress)) {
            return v;
        }
    }
    l2_out(tables, neigh, pkt.buf, egress, hop)
}
