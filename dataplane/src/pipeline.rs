//! The per-packet path: parse → classify → connection lookup → schedule (new flow) →
//! rewrite → verdict. Run to completion on one frame at a time inside a worker's burst;
//! no allocation, no locks, no syscalls.
//!
//! Checksums: addresses and ports are rewritten with RFC 1624 incremental updates, which
//! carry a wrong checksum through as wrong — the end host drops it, exactly as if the
//! balancer were not there (a transparent middlebox must not launder a corrupt segment).
//! The L4 checksum is therefore not verified on the fast path (Katran does not either).

use uvs_conntrack::{tcp, Conn, ConnTable, Dir, FlowKey, Hit, InsertError};
use uvs_sched::FlowHashKey;
use uvs_wire::{Classified, Frag, Parsed, L3};

use crate::counters::WorkerCounters;
use crate::neigh::NeighMap;
use crate::tables::{IpKey, Method, RealRt, ServiceRt, Tables, SORRY_SLOT};
use crate::verdict::{DropReason, Verdict};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;
/// Protocol number marking persistence templates in the connection table; never the final
/// protocol of a real packet (0 is IPv6 hop-by-hop, always followed by another header).
const PROTO_TEMPLATE: u8 = 0;

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;

/// Connection flags stored in `Conn::flags`.
pub mod conn_flags {
    /// The connection counts as active on its real server (TCP ESTABLISHED).
    pub const ACTIVE: u8 = 0x01;
    /// A persistence template, not a flow.
    pub const TEMPLATE: u8 = 0x02;
}

/// What the pipeline needs from its worker.
pub struct Ctx<'a> {
    pub worker: usize,
    pub workers: usize,
    /// Connection-table ticks (milliseconds, wrapping) on the dataplane clock.
    pub now: u32,
    /// Seconds on the dataplane clock (schedulers' coarse clock).
    pub now_s: u32,
    pub conns: &'a ConnTable,
    pub counters: &'a WorkerCounters,
    /// Drop connections whose service or real server was removed (IPVS expire_nodest_conn).
    pub expire_nodest_conn: bool,
    /// FullNAT: next local port to try, per worker.
    pub fullnat_cursor: &'a mut u32,
    /// Which connection each recent fragmented datagram belongs to.
    pub frags: &'a mut crate::frag::FragTable,
}

#[inline]
fn flow_key(p: &Parsed) -> FlowKey {
    FlowKey {
        proto: p.l4_proto,
        v6: p.l3 == L3::V6,
        src: p.src,
        dst: p.dst,
        sport: p.sport,
        dport: p.dport,
    }
}

#[inline]
fn ip(v6: bool, addr: [u8; 16]) -> IpKey {
    IpKey { v6, addr }
}

/// Processes one frame in `buf[..*len]`, rewriting it in place (and possibly growing it,
/// for encapsulation, up to `buf.len()`).
#[inline]
pub fn process(
    ctx: &mut Ctx<'_>,
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    in_port: u8,
) -> Verdict {
    let mut p = match uvs_wire::classify(&buf[..*len]) {
        Ok(Classified::Ip(p)) => p,
        Ok(Classified::Arp { .. }) => return Verdict::SlowPath,
        Ok(Classified::Other(_)) => return Verdict::Drop(DropReason::UnsupportedEtherType),
        Err(e) => return Verdict::Drop(DropReason::Parse(e)),
    };
    let v6 = p.l3 == L3::V6;
    match p.l4_proto {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => {}
        PROTO_ICMP | PROTO_ICMPV6 => return icmp(ctx, tables, neigh, buf, len, &mut p, v6),
        _ => return Verdict::Drop(DropReason::NoService),
    }
    if let Frag::Later { id } = p.frag {
        return later_fragment(ctx, tables, neigh, buf, len, &mut p, id);
    }
    let key = flow_key(&p);
    if let Some(hit) = ctx.conns.lookup(&key, ctx.now) {
        if let Frag::First { id } = p.frag {
            ctx.frags.remember(&p, id, &hit, ctx.now_s);
        }
        return established(ctx, tables, neigh, buf, len, &mut p, &hit);
    }
    new_flow(ctx, tables, neigh, buf, len, &mut p, &key, in_port)
}

/// A non-first fragment carries no ports: it follows the connection its first fragment
/// found (remembered by fragment id), as Maglev does; IPVS needs the kernel to reassemble.
#[cold]
fn later_fragment(
    ctx: &mut Ctx<'_>,
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    id: u32,
) -> Verdict {
    match ctx.frags.find(p, id, ctx.now_s) {
        Some(hit) => established(ctx, tables, neigh, buf, len, p, &hit),
        None => Verdict::Drop(DropReason::FragmentNoFlow),
    }
}

/// ICMP: errors about a tracked flow are translated with it (outer and quoted headers,
/// as IPVS's ip_vs_in_icmp / ip_vs_out_icmp); echo and NDP for owned addresses go to the
/// slow path.
#[cold]
fn icmp(
    ctx: &mut Ctx<'_>,
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    v6: bool,
) -> Verdict {
    let is_error = if v6 {
        p.icmp_type < 128
    } else {
        matches!(p.icmp_type, 3 | 4 | 11 | 12)
    };
    if is_error {
        return icmp_error(ctx, tables, neigh, buf, len, p, v6);
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
/// side about a forwarded packet: send it back to the client).
#[cold]
fn icmp_error(
    ctx: &mut Ctx<'_>,
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    v6: bool,
) -> Verdict {
    let Ok(mut e) = uvs_wire::parse_icmp_embedded(&buf[..*len], p) else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    let key = FlowKey {
        proto: e.l4_proto,
        v6,
        src: e.dst,
        dst: e.src,
        sport: e.dport,
        dport: e.sport,
    };
    let Some(hit) = ctx.conns.lookup(&key, ctx.now) else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    let c = hit.conn;
    let Some(svc) = tables.service(c.service) else {
        return Verdict::Drop(DropReason::IcmpNoFlow);
    };
    let method = Method::from_u8(c.method);
    let frame = &mut buf[..];
    if !uvs_wire::decrement_ttl(frame, p) {
        return Verdict::Drop(DropReason::TtlExceeded);
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
            let real = svc.real(c.real).filter(|r| r.addr.addr == c.reply.src);
            forward_icmp_to_real(tables, neigh, buf, len, p, real, &c, method)
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
            let _ = ctx;
            match tables.route(&client) {
                Some((port, hop)) => l2_out(tables, neigh, buf, port, hop),
                None => Verdict::Drop(DropReason::NoRoute),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn forward_icmp_to_real(
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    real: Option<&RealRt>,
    c: &Conn,
    method: Method,
) -> Verdict {
    let real_addr = ip(c.reply.v6, c.reply.src);
    let (egress, hop) = match real {
        Some(r) => (r.egress, r.next_hop),
        None => match tables.route(&real_addr) {
            Some(x) => x,
            None => return Verdict::Drop(DropReason::NoRoute),
        },
    };
    if method == Method::Tun {
        if let Err(v) = encapsulate(tables, buf, len, p, egress, &real_addr) {
            return v;
        }
    }
    l2_out(tables, neigh, buf, egress, hop)
}

#[allow(clippy::too_many_arguments)]
#[cold]
fn new_flow(
    ctx: &mut Ctx<'_>,
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    key: &FlowKey,
    in_port: u8,
) -> Verdict {
    let _ = in_port;
    let v6 = key.v6;
    let Some(svc) = tables.service_for(ip(v6, p.dst), p.l4_proto, p.dport) else {
        return Verdict::Drop(DropReason::NoService);
    };
    // IPVS schedules TCP only on a SYN (sloppy_tcp off): a stray ACK for a flow we do not
    // know must not pin a real server.
    if p.l4_proto == PROTO_TCP && p.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) != TCP_SYN {
        return Verdict::Drop(DropReason::NotSyn);
    }
    let Some(slot) = choose_real(ctx, svc, p, v6) else {
        return Verdict::Drop(DropReason::NoRealServer);
    };
    let real = svc.real(slot).expect("slot chosen from this snapshot");

    let real_port = if real.port == 0 { p.dport } else { real.port };
    let (state, timeout) = initial_state(svc, p);
    let mut conn = Conn {
        orig: *key,
        reply: FlowKey {
            proto: key.proto,
            v6,
            src: real.addr.addr,
            dst: key.src,
            sport: real_port,
            dport: key.sport,
        },
        service: svc.id,
        real: slot,
        method: real.method as u8,
        state,
        flags: 0,
    };
    let deadline = ctx.now.wrapping_add(timeout);
    let inserted = if real.method == Method::FullNat {
        match insert_fullnat(ctx, svc, &mut conn, deadline) {
            Some(r) => r,
            None => return Verdict::Drop(DropReason::NoLocalPort),
        }
    } else {
        ctx.conns.insert(&conn, ctx.now, deadline)
    };
    match inserted {
        Ok(_) => {
            if slot != SORRY_SLOT {
                svc.live[usize::from(slot)].bind_conn(&svc.specs[usize::from(slot)], false);
            }
            svc.stats.worker(ctx.worker).conns.add(1);
            real.stats.worker(ctx.worker).conns.add(1);
            ctx.counters.new_conns.add(1);
        }
        Err(InsertError::Exists(_)) => {
            // Another worker created this flow a moment ago: use its entry.
            if let Some(hit) = ctx.conns.lookup(key, ctx.now) {
                return established(ctx, tables, neigh, buf, len, p, &hit);
            }
            return Verdict::Drop(DropReason::TableFull);
        }
        Err(_) => return Verdict::Drop(DropReason::TableFull),
    }
    if let (Frag::First { id }, Ok(conn_id)) = (p.frag, inserted) {
        let hit = Hit {
            id: conn_id,
            dir: Dir::Original,
            conn,
            deadline,
        };
        ctx.frags.remember(p, id, &hit, ctx.now_s);
    }
    forward_original(ctx, tables, neigh, buf, len, p, svc, Some(real), &conn)
}

/// FullNAT: pick a local address from the pool and a port this worker owns (ports are
/// partitioned by worker, so workers never race for one); the table's own uniqueness of
/// the reply tuple detects a port still in use, as Linux NAT probes conntrack. `None`:
/// no free port after a bounded number of tries.
fn insert_fullnat(
    ctx: &mut Ctx<'_>,
    svc: &ServiceRt,
    conn: &mut Conn,
    deadline: u32,
) -> Option<Result<uvs_conntrack::ConnId, InsertError>> {
    if svc.fullnat_pool.is_empty() {
        return None;
    }
    const FIRST: u32 = 1024;
    let span = (65536 - FIRST) / ctx.workers as u32;
    for _ in 0..64 {
        let n = *ctx.fullnat_cursor;
        *ctx.fullnat_cursor = n.wrapping_add(1);
        let laddr = svc.fullnat_pool[(n as usize / span as usize) % svc.fullnat_pool.len()];
        let port = FIRST + (n % span) * ctx.workers as u32 + ctx.worker as u32;
        if port > 65535 {
            continue;
        }
        conn.reply.dst = laddr.addr;
        conn.reply.dport = port as u16;
        match ctx.conns.insert(conn, ctx.now, deadline) {
            // The reply tuple (this local port) belongs to a live connection: next port.
            Err(InsertError::Clash(_)) => continue,
            other => return Some(other),
        }
    }
    None
}

fn initial_state(svc: &ServiceRt, p: &Parsed) -> (u8, u32) {
    let state = if p.l4_proto == PROTO_TCP {
        tcp::transition(tcp::TcpState::None, tcp::PacketDir::Input, p.tcp_flags) as u8
    } else {
        0
    };
    (state, svc.timeouts.for_state(p.l4_proto, state))
}

/// Persistence, then the scheduler, then the sorry server.
fn choose_real(ctx: &mut Ctx<'_>, svc: &ServiceRt, p: &Parsed, v6: bool) -> Option<u16> {
    let template = svc.persistence.map(|pers| {
        let mut client = p.src;
        mask_prefix(
            &mut client,
            if v6 {
                pers.prefix_len
            } else {
                pers.prefix_len.min(32)
            },
            v6,
        );
        let key = FlowKey {
            proto: PROTO_TEMPLATE,
            v6,
            src: client,
            dst: p.dst,
            sport: 0,
            // Port-0 services persist across every port, as ipvsadm -p with port 0 does.
            dport: svc.key.port,
        };
        (key, pers.timeout_s.saturating_mul(1000))
    });
    if let Some((key, timeout)) = template {
        if let Some(hit) = ctx.conns.lookup(&key, ctx.now) {
            let slot = hit.conn.real;
            if svc.real(slot).is_some()
                && (slot == SORRY_SLOT
                    || svc.live[usize::from(slot)].available(svc.specs[usize::from(slot)].weight))
            {
                ctx.conns
                    .update(hit.id, hit.conn.state, ctx.now.wrapping_add(timeout));
                return Some(slot);
            }
            ctx.conns.remove(hit.id);
        }
    }
    let hk = FlowHashKey {
        src: p.src,
        dst: p.dst,
        sport: p.sport,
        dport: p.dport,
        proto: p.l4_proto,
    };
    let slot = match svc.sched.pick(&hk, &svc.live, ctx.now_s) {
        Some(i) => i as u16,
        None if svc.sorry.is_some() => SORRY_SLOT,
        None => return None,
    };
    if let Some((key, timeout)) = template {
        let mut reply = key;
        std::mem::swap(&mut reply.src, &mut reply.dst);
        reply.sport = 1;
        let t = Conn {
            orig: key,
            reply,
            service: svc.id,
            real: slot,
            method: 0,
            state: 0,
            flags: conn_flags::TEMPLATE,
        };
        // A full table only costs persistence for this client, not the flow.
        let _ = ctx.conns.insert(&t, ctx.now, ctx.now.wrapping_add(timeout));
    }
    Some(slot)
}

fn mask_prefix(addr: &mut [u8; 16], len: u8, v6: bool) {
    let bits = if v6 { 128 } else { 32 };
    let len = usize::from(len.min(bits));
    for (i, b) in addr.iter_mut().enumerate().take(bits as usize / 8) {
        let keep = len.saturating_sub(i * 8).min(8);
        *b &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn established(
    ctx: &mut Ctx<'_>,
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    hit: &Hit,
) -> Verdict {
    let conn = &hit.conn;
    let Some(svc) = tables.service(conn.service) else {
        return orphan(ctx, hit);
    };
    // The real server may be gone (removed by a reload) or its slot may hold another one
    // now: the connection still carries its own addresses, so it keeps flowing unless
    // expire_nodest_conn says to drop it (IPVS keeps forwarding to a removed dest too).
    let real = svc
        .real(conn.real)
        .filter(|r| r.addr.addr == conn.reply.src);
    if real.is_none() && ctx.expire_nodest_conn {
        return orphan(ctx, hit);
    }
    track_state(ctx, svc, p, hit, real.is_some());
    match hit.dir {
        Dir::Original => forward_original(ctx, tables, neigh, buf, len, p, svc, real, conn),
        Dir::Reply => forward_reply(ctx, tables, neigh, buf, len, p, svc, real, conn),
    }
}

/// A connection whose virtual service is gone, or whose real server is gone while
/// expire_nodest_conn is set: dropped, and with expire_nodest_conn its entry too.
#[cold]
fn orphan(ctx: &mut Ctx<'_>, hit: &Hit) -> Verdict {
    if ctx.expire_nodest_conn {
        ctx.conns.remove(hit.id);
    }
    Verdict::Drop(DropReason::NoRealServer)
}

/// TCP state machine and deadline refresh. The entry is written only when the state
/// changes or at least a second has passed since the last refresh, so a busy flow costs
/// the shared cache line about one write per second, not one per packet.
#[inline]
fn track_state(ctx: &mut Ctx<'_>, svc: &ServiceRt, p: &Parsed, hit: &Hit, counted: bool) {
    let conn = &hit.conn;
    let state = if p.l4_proto == PROTO_TCP {
        let no_output = matches!(Method::from_u8(conn.method), Method::Dr | Method::Tun);
        let old = tcp::TcpState::from_u8(conn.state).unwrap_or(tcp::TcpState::None);
        let new = tcp::transition(
            old,
            tcp::PacketDir::for_packet(hit.dir, no_output),
            p.tcp_flags,
        );
        if new != old && counted && conn.real != SORRY_SLOT {
            let (was, is) = (old.is_active(), new.is_active());
            if was != is {
                svc.live[usize::from(conn.real)].conn_state_changed(is);
            }
        }
        new as u8
    } else {
        conn.state
    };
    let timeout = svc.timeouts.for_state(p.l4_proto, state);
    let left = hit.deadline.wrapping_sub(ctx.now);
    if state != conn.state || left.saturating_add(1000) < timeout {
        ctx.conns
            .update(hit.id, state, ctx.now.wrapping_add(timeout));
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn forward_original(
    ctx: &mut Ctx<'_>,
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    svc: &ServiceRt,
    real: Option<&RealRt>,
    conn: &Conn,
) -> Verdict {
    let bytes = *len as u64;
    let method = Method::from_u8(conn.method);
    let real_addr = ip(conn.reply.v6, conn.reply.src);
    let (egress, hop) = match real {
        Some(r) => (r.egress, r.next_hop),
        None => match tables.route(&real_addr) {
            Some(x) => x,
            None => return Verdict::Drop(DropReason::NoRoute),
        },
    };
    match method {
        Method::Nat | Method::FullNat => {
            if !uvs_wire::decrement_ttl(buf, p) {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
            uvs_wire::set_dst_addr(buf, p, &conn.reply.src);
            if p.dport != conn.reply.sport {
                uvs_wire::set_dst_port(buf, p, conn.reply.sport);
            }
            if method == Method::FullNat {
                uvs_wire::set_src_addr(buf, p, &conn.reply.dst);
                uvs_wire::set_src_port(buf, p, conn.reply.dport);
            }
        }
        // DR: the real server holds the VIP; only the destination MAC changes (below).
        Method::Dr => {}
        Method::Tun => {
            if let Err(v) = encapsulate(tables, buf, len, p, egress, &real_addr) {
                return v;
            }
        }
    }
    let w = ctx.worker;
    svc.stats.worker(w).packets_in.add(1);
    svc.stats.worker(w).bytes_in.add(bytes);
    if let Some(r) = real {
        r.stats.worker(w).packets_in.add(1);
        r.stats.worker(w).bytes_in.add(bytes);
    }
    l2_out(tables, neigh, buf, egress, hop)
}

/// TUN: IP-in-IP (RFC 2003) or IPv6-in-IPv6 (RFC 2473) from the egress interface's local
/// address to the real server. A packet that would exceed the egress MTU is not sent.
#[cold]
fn encapsulate(
    tables: &Tables,
    buf: &mut [u8],
    len: &mut usize,
    p: &Parsed,
    egress: u8,
    real: &IpKey,
) -> Result<(), Verdict> {
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
    let hdr = if real.v6 { 40 } else { 20 };
    if usize::from(p.ip_total_len) + hdr > usize::from(iface.mtu) {
        return Err(too_big(
            tables,
            buf,
            len,
            p,
            iface.mtu.saturating_sub(hdr as u16),
        ));
    }
    let outer = if real.v6 { L3::V6 } else { L3::V4 };
    let n = uvs_wire::encap_ipip(
        buf,
        *len,
        usize::from(p.l3_off),
        &outer_src,
        &real.addr,
        p.l3,
        outer,
        64,
    )
    .map_err(|_| Verdict::Drop(DropReason::TooBig))?;
    *len = n;
    Ok(())
}

/// The packet does not fit the tunnel: tell the sender the path MTU (ICMP fragmentation
/// needed, RFC 1191 / ICMPv6 packet too big, RFC 8201) instead of dropping it silently.
/// IPv4 packets without DF are not fragmented here: they are dropped and counted.
#[cold]
fn too_big(tables: &Tables, buf: &mut [u8], len: &mut usize, p: &Parsed, mtu: u16) -> Verdict {
    let mut out = [0u8; 1400];
    let dont_frag = p.l3 == L3::V6
        || buf
            .get(usize::from(p.l3_off) + 6)
            .is_some_and(|b| b & 0x40 != 0);
    if !dont_frag {
        return Verdict::Drop(DropReason::TooBig);
    }
    // Reply from the VIP the client was talking to, out of the port it came in on.
    let Some((port, _)) = tables.route(&ip(p.l3 == L3::V6, p.src)) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let frame = &buf[..*len];
    let built = if p.l3 == L3::V6 {
        uvs_wire::build::icmpv6_packet_too_big(frame, p, &p.dst, u32::from(mtu.max(1280)), &mut out)
    } else {
        let mut vip = [0u8; 4];
        vip.copy_from_slice(&p.dst[..4]);
        uvs_wire::build::icmpv4_frag_needed(frame, p, vip, mtu.max(68), &mut out)
    };
    match built {
        Ok(n) if n <= buf.len() => {
            buf[..n].copy_from_slice(&out[..n]);
            *len = n;
            if let Some(iface) = tables.ifaces.get(usize::from(port)) {
                buf[6..12].copy_from_slice(&iface.mac);
            }
            Verdict::Forward(port)
        }
        _ => Verdict::Drop(DropReason::TooBig),
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn forward_reply(
    ctx: &mut Ctx<'_>,
    tables: &Tables,
    neigh: &NeighMap,
    buf: &mut [u8],
    len: &mut usize,
    p: &mut Parsed,
    svc: &ServiceRt,
    real: Option<&RealRt>,
    conn: &Conn,
) -> Verdict {
    let bytes = *len as u64;
    let method = Method::from_u8(conn.method);
    if !matches!(method, Method::Nat | Method::FullNat) {
        // DR/TUN replies go straight from the real server to the client.
        return Verdict::Drop(DropReason::NoService);
    }
    if !uvs_wire::decrement_ttl(buf, p) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    uvs_wire::set_src_addr(buf, p, &conn.orig.dst);
    if p.sport != conn.orig.dport {
        uvs_wire::set_src_port(buf, p, conn.orig.dport);
    }
    if method == Method::FullNat {
        uvs_wire::set_dst_addr(buf, p, &conn.orig.src);
        uvs_wire::set_dst_port(buf, p, conn.orig.sport);
    }
    let w = ctx.worker;
    svc.stats.worker(w).packets_out.add(1);
    svc.stats.worker(w).bytes_out.add(bytes);
    if let Some(r) = real {
        r.stats.worker(w).packets_out.add(1);
        r.stats.worker(w).bytes_out.add(bytes);
    }
    let client = ip(conn.orig.v6, conn.orig.src);
    let Some((port, hop)) = tables.route(&client) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    l2_out(tables, neigh, buf, port, hop)
}

/// Fills in the MACs for the egress port and next hop, or asks the worker to hold the
/// frame until the neighbour is resolved.
#[inline]
fn l2_out(tables: &Tables, neigh: &NeighMap, buf: &mut [u8], port: u8, hop: IpKey) -> Verdict {
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
