//! NAT64 flows: a FullNAT service whose VIP is IPv6 and whose real servers and local pool
//! are IPv4 (DPVS's NAT64). Headers are translated by RFC 7915 (`uvs_wire::nat64`).
//!
//! The connection table keeps one family per entry. A NAT64 entry lives in the IPv6 table:
//! its original tuple is the client's (client6 → VIP6), its reply tuple holds the real server
//! and the pool address IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2, an address that
//! never appears on the wire as a real IPv6 packet's), and the entry carries
//! [`conn_flags::NAT64`]. An IPv4 packet that misses the IPv4 table and is addressed to a
//! NAT64 pool address is looked up once more in the IPv6 table by its mapped key.

use uvs_conntrack::{Dir, FlowKey, Hit};
use uvs_wire::nat64::{self as xlat, Tuple};
use uvs_wire::{Embedded, Frag, L3};

use super::*;
use crate::lifecycle::ConnView;
use crate::tables::IpKey;
use crate::verdict::{DropReason, Verdict};

/// `a.b.c.d` (first 4 bytes) as `::ffff:a.b.c.d`.
#[inline]
pub(crate) fn mapped(a: &[u8; 16]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a[..4]);
    m
}

/// `::ffff:a.b.c.d` back to `a.b.c.d` in the first 4 bytes.
#[inline]
pub(crate) fn unmapped(a: &[u8; 16]) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[..4].copy_from_slice(&a[12..]);
    u
}

/// Whether a connection is a NAT64 flow.
#[inline]
pub(crate) fn is_nat64<C: ConnView + ?Sized>(c: &C) -> bool {
    c.flags() & conn_flags::NAT64 != 0
}

/// The IPv4 key of an IPv4 packet's tuple `key` as a NAT64 entry stores it, if its
/// destination is a NAT64 pool address.
#[cold]
pub(crate) fn mapped_key(ctx: &Ctx<'_>, key: &FlowKey) -> Option<FlowKey> {
    if key.v6 || !ctx.tables.is_nat64_pool(&ip(false, key.dst)) {
        return None;
    }
    Some(FlowKey {
        proto: key.proto,
        v6: true,
        src: mapped(&key.src),
        dst: mapped(&key.dst),
        sport: key.sport,
        dport: key.dport,
    })
}

/// An IPv4 packet that missed the IPv4 table: a NAT64 flow's reply, if its mapped key is one.
#[cold]
pub(crate) fn lookup_reply(ctx: &Ctx<'_>, key: &FlowKey) -> Option<Hit> {
    let k = mapped_key(ctx, key)?;
    ctx.conns.lookup(&k, ctx.now)
}

#[cold]
#[inline(never)]
fn untranslatable() -> Verdict {
    Verdict::Drop(DropReason::Nat64Untranslatable)
}

/// Client → real server: IPv6 in, IPv4 out, from the pool address and port.
#[cold]
pub(crate) fn to_real(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, flow: Flow<'_>) -> Verdict {
    let tables = ctx.tables;
    let Flow { svc, real, conn } = flow;
    let Packet { buf, len, p } = pkt;
    if p.l3 != L3::V6 || p.frag != Frag::None {
        return untranslatable();
    }
    let real_addr = IpKey {
        v6: false,
        addr: unmapped(&conn.reply.src),
    };
    let Some((egress, hop)) = real_egress(tables, real, &real_addr) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    if !uvs_wire::decrement_ttl(buf, p) {
        return ttl_exceeded(ctx, pkt, true);
    }
    let bytes = *len as u64;
    let t = Tuple {
        src: unmapped(&conn.reply.dst),
        dst: real_addr.addr,
        sport: conn.reply.dport,
        dport: conn.reply.sport,
    };
    match xlat::v6_to_v4(buf, *len, p, &t) {
        Ok(n) => *len = n,
        Err(_) => return untranslatable(),
    }
    account(ctx.worker, svc, real, bytes, true);
    l2_out(tables, ctx.neigh, buf, egress, hop)
}

/// Real server → client: IPv4 in, IPv6 out, from the VIP. A packet that would not fit the
/// client's link once 20 bytes longer is refused with fragmentation needed to the real
/// server (its MTU less 20), as RFC 7915 §4 has the translator do.
#[cold]
pub(crate) fn to_client(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, flow: Flow<'_>) -> Verdict {
    let tables = ctx.tables;
    let Flow { svc, real, conn } = flow;
    if pkt.p.l3 != L3::V4 || pkt.p.frag != Frag::None {
        return untranslatable();
    }
    let client = ip(true, conn.orig.src);
    let Some((port, hop)) = tables.route(&client) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    // The IPv6 packet: the IPv4 one without its header (options included), plus 40.
    let ihl = usize::from(pkt.p.l4_off.saturating_sub(pkt.p.l3_off));
    let grown = (usize::from(pkt.p.ip_total_len) + 40).saturating_sub(ihl);
    if let Some(iface) = tables.ifaces.get(usize::from(port)) {
        if grown > usize::from(iface.mtu) {
            return too_big(ctx, pkt, iface.mtu.saturating_sub(20), true);
        }
    }
    let Packet { buf, len, p } = pkt;
    if !uvs_wire::decrement_ttl(buf, p) {
        return ttl_exceeded(ctx, pkt, true);
    }
    let bytes = *len as u64;
    let t = Tuple {
        src: conn.orig.dst,
        dst: conn.orig.src,
        sport: conn.orig.dport,
        dport: conn.orig.sport,
    };
    match xlat::v4_to_v6(buf, *len, p, &t) {
        Ok(n) => *len = n,
        Err(_) => return untranslatable(),
    }
    account(ctx.worker, svc, real, bytes, false);
    l2_out(tables, ctx.neigh, buf, port, hop)
}

/// An ICMP error about a NAT64 flow, rebuilt in the other family (RFC 7915 §4.2, §5.2).
/// From the server side (an ICMPv4 error quoting pool → real): the client gets an ICMPv6
/// error from the VIP quoting its own packet (fragmentation needed becomes packet too big,
/// its MTU 20 bytes larger). From the client side (an ICMPv6 error quoting VIP → client):
/// the real server gets an ICMPv4 error from the pool address quoting its own packet.
#[cold]
pub(crate) fn icmp_error(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    e: &Embedded,
    hit: &Hit,
) -> Verdict {
    let tables = ctx.tables;
    let Packet { buf, len, p } = pkt;
    let c = &hit.conn();
    let (outer, quote) = match hit.dir {
        Dir::Reply => (
            Tuple {
                src: c.orig.dst,
                dst: c.orig.src,
                sport: 0,
                dport: 0,
            },
            Tuple {
                src: c.orig.src,
                dst: c.orig.dst,
                sport: c.orig.sport,
                dport: c.orig.dport,
            },
        ),
        Dir::Original => (
            Tuple {
                src: unmapped(&c.reply.dst),
                dst: unmapped(&c.reply.src),
                sport: 0,
                dport: 0,
            },
            Tuple {
                src: unmapped(&c.reply.src),
                dst: unmapped(&c.reply.dst),
                sport: c.reply.sport,
                dport: c.reply.dport,
            },
        ),
    };
    let n = match xlat::translate_icmp_error(buf, *len, p, e, &outer, &quote) {
        Ok(n) => n,
        Err(_) => return untranslatable(),
    };
    *len = n;
    match hit.dir {
        Dir::Reply => match tables.route(&ip(true, c.orig.src)) {
            Some((port, hop)) => l2_out(tables, ctx.neigh, buf, port, hop),
            None => Verdict::Drop(DropReason::NoRoute),
        },
        Dir::Original => {
            let real_addr = IpKey {
                v6: false,
                addr: outer.dst,
            };
            let real = tables
                .service(c.service)
                .and_then(|s| s.real(c.real))
                .filter(|r| r.addr == real_addr);
            match real_egress(tables, real, &real_addr) {
                Some((egress, hop)) => l2_out(tables, ctx.neigh, buf, egress, hop),
                None => Verdict::Drop(DropReason::NoRoute),
            }
        }
    }
}
