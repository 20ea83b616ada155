//! A new flow: service, persistence, scheduler, connection entry (FullNAT ports).

use uvs_conntrack::ConnView;
use uvs_conntrack::{Conn, Dir, FlowKey, Hit, InsertError};
use uvs_sched::FlowHashKey;
use uvs_wire::{Frag, Parsed, L3};

use super::*;
use crate::tables::{Method, RealRt, ServiceRt, SORRY_SLOT};
use crate::verdict::{DropReason, Verdict};

#[cold]
pub(crate) fn new_flow<P: L4Proto>(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    key: &FlowKey,
) -> Verdict {
    let tables = ctx.tables;
    let v6 = key.v6;
    let p = &pkt.p;
    let Some(svc) = tables.service_for(ip(v6, p.dst), p.l4_proto, p.dport) else {
        return no_service(ctx, pkt, v6);
    };
    if let Err(v) = P::schedule(ctx, pkt, svc) {
        return v;
    }
    let p = &pkt.p;
    let Some(slot) = choose_real(ctx, svc, p, v6) else {
        return super::forward::refuse(ctx, pkt);
    };
    let real = svc.real(slot).expect("slot chosen from this snapshot");

    let real_port = if real.port == 0 { p.dport } else { real.port };
    let (state, timeout) = P::initial_state(svc, p);
    // FullNAT from an IPv6 VIP to an IPv4 real server is NAT64: the entry stays in the IPv6
    // table with the server's address IPv4-mapped (`pipeline/nat64.rs`).
    let nat64 = real.method == Method::FullNat && real.addr.v6 != v6;
    let mut conn = Conn {
        orig: *key,
        reply: FlowKey {
            proto: key.proto,
            v6,
            src: if nat64 {
                mapped(&real.addr.addr)
            } else {
                real.addr.addr
            },
            dst: key.src,
            sport: real_port,
            dport: key.sport,
        },
        service: svc.id,
        real: slot,
        method: real.method as u8,
        state,
        flags: if nat64 { conn_flags::NAT64 } else { 0 },
    };
    let deadline = ctx.now.wrapping_add(timeout);
    if P::ONE_PACKET && svc.one_packet {
        // One-packet scheduling (ipvsadm -o): every datagram is scheduled on its own and
        // leaves no connection entry; replies are translated statelessly (ops_reply).
        svc.stats.worker(ctx.worker).conns.add(1);
        real.stats.worker(ctx.worker).conns.add(1);
        let flow = Flow {
            svc,
            real: Some(real),
            conn: &conn,
        };
        return forward_original(ctx, pkt, flow);
    }
    if P::STAGED && real.method != Method::FullNat && pkt.p.frag == Frag::None {
        if let Some(frame) = ctx.staging.armed() {
            // Stored at the end of the burst (`staged.rs`); bound now, as IPVS binds before
            // it hashes the connection, so the burst's next picks count it.
            ctx.staging.push(frame, ctx.conns, &conn, deadline);
            crate::lifecycle::bind(svc, slot, conn.state, key.proto);
            return Verdict::Deferred;
        }
    }
    let inserted = if real.method == Method::FullNat {
        match insert_fullnat(ctx, svc, &mut conn, deadline) {
            Some(r) => r,
            None => return Verdict::Drop(DropReason::NoLocalPort),
        }
    } else {
        ctx.conns.insert(&conn, ctx.now, deadline)
    };
    let opening = Opening {
        svc,
        real,
        conn: &conn,
        deadline,
        bound: false,
    };
    opened::<P>(ctx, pkt, opening, inserted)
}

/// A staged new flow's turn at the end of its burst (`staged.rs`): stores staged flow `i`
/// and forwards its frame (`pkt`), as [`new_flow`] would have at once.
pub fn store(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, i: usize) -> Verdict {
    let s = ctx.staging.get(i);
    let inserted = ctx.conns.insert_prepared(&s.prep, ctx.now, s.deadline);
    let (conn, deadline) = (*s.prep.conn(), s.deadline);
    let svc = ctx.tables.service(conn.service);
    let Some((svc, real)) = svc.and_then(|svc| Some((svc, svc.real(conn.real)?))) else {
        // Not reached: the flow was scheduled on this burst's snapshot.
        return Verdict::Drop(DropReason::NoRealServer);
    };
    let opening = Opening {
        svc,
        real,
        conn: &conn,
        deadline,
        bound: true,
    };
    match conn.orig.proto {
        PROTO_TCP => opened::<Tcp>(ctx, pkt, opening, inserted),
        _ => opened::<super::proto::Udp>(ctx, pkt, opening, inserted),
    }
}

/// A new connection whose insert is under way: what [`opened`] needs once it answers.
struct Opening<'a> {
    svc: &'a ServiceRt,
    real: &'a RealRt,
    conn: &'a Conn,
    deadline: u32,
    /// The real server already counts the connection (a staged flow, `lifecycle::bind`
    /// at its scheduling), so a failed insert gives that back.
    bound: bool,
}

/// A new connection's insert has answered (`inserted`): count the connection and forward
/// its first packet, or send the packet down the entry another worker stored first.
#[inline(always)]
fn opened<P: L4Proto>(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    opening: Opening<'_>,
    inserted: Result<uvs_conntrack::ConnId, InsertError>,
) -> Verdict {
    let Opening {
        svc,
        real,
        conn,
        deadline,
        bound,
    } = opening;
    let key = &conn.orig;
    let inserted = match inserted {
        Err(InsertError::Clash(holder)) if real.method != Method::FullNat => {
            retire_closing_holder(ctx, conn, deadline, holder)
        }
        other => other,
    };
    match inserted {
        Ok(id) => {
            if !bound {
                crate::lifecycle::bind(svc, conn.real, conn.state, key.proto);
            }
            ctx.sync.note(ctx.worker, id);
            svc.stats.worker(ctx.worker).conns.add(1);
            real.stats.worker(ctx.worker).conns.add(1);
            ctx.counters.new_conns.add(1);
        }
        Err(e) => {
            if bound {
                crate::lifecycle::unbind(ctx.tables, conn);
            }
            return match e {
                InsertError::Exists(_) => {
                    // Another worker created this flow a moment ago: use its entry.
                    if let Some(hit) = ctx.conns.lookup(key, ctx.now) {
                        return established::<P>(ctx, pkt, &hit);
                    }
                    Verdict::Drop(DropReason::TableFull)
                }
                InsertError::Contended => Verdict::Drop(DropReason::InsertContended),
                InsertError::Clash(_) => Verdict::Drop(DropReason::TupleClash),
                _ => Verdict::Drop(DropReason::TableFull),
            };
        }
    }
    if let (Frag::First { id }, Ok(conn_id)) = (pkt.p.frag, inserted) {
        let hit = Hit::new(conn_id, Dir::Original, conn, deadline);
        ctx.frags.remember(&pkt.p, id, &hit, ctx.now_s);
    }
    if let Err(v) = P::opened(ctx, pkt, conn, deadline) {
        return v;
    }
    let flow = Flow {
        svc,
        real: Some(real),
        conn,
    };
    if ctx.fast.is_some() {
        if let Some(lines) = crate::fastpath::opening(&pkt.p, conn.flags, conn.state) {
            return forward_opening(ctx, pkt, flow, lines);
        }
    }
    forward_original(ctx, pkt, flow)
}

/// [`opened`]'s forward of a client's SYN with the kernel fast path on: the connection's
/// handshake lines are written once the SYN has left (`crate::fastpath::opening`).
#[cold]
#[inline(never)]
fn forward_opening(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    flow: Flow<'_, Conn>,
    lines: crate::fastpath::Lines,
) -> Verdict {
    let (svc, conn) = (flow.svc, flow.conn);
    let v = forward_original(ctx, pkt, flow);
    if let Verdict::Forward(_) = v {
        super::forward::fast_install(ctx, svc, conn, lines);
    }
    v
}

/// No service for the destination. A packet *from* a DR/TUN service's address and port is
/// that service's real server answering through uvs (its route to the client points at
/// uvs): counted as such, since uvs has no reply-side entry for those methods. Any other
/// is refused as the director's own stack refuses a port nothing listens on behind IPVS
/// (the VIP is its address): a TCP segment with a RST, a UDP datagram with ICMP port
/// unreachable (both within [`crate::verdict::ERRORS_PER_SEC`]), so the client fails at
/// once instead of retrying; counted as `no_service`. While connection sync is learning
/// its peers' connections (`Ctx::sync_learning`) nothing is answered: a real server's
/// segment to a FullNAT pool address lands here until its flow's entry arrives.
#[cold]
#[inline(never)]
fn no_service(ctx: &Ctx<'_>, pkt: &mut Packet<'_>, v6: bool) -> Verdict {
    let (tables, p) = (ctx.tables, &pkt.p);
    let direct_reply = tables
        .service_for(ip(v6, p.src), p.l4_proto, p.sport)
        .is_some_and(|s| {
            s.reals
                .iter()
                .flatten()
                .any(|r| matches!(r.method, Method::Dr | Method::Tun))
        });
    if direct_reply {
        return Verdict::Drop(DropReason::DirectReplyReturned);
    }
    if ctx.sync_learning {
        return Verdict::Drop(DropReason::NoService);
    }
    match p.l4_proto {
        PROTO_TCP => super::tcp::reset(ctx, pkt, DropReason::NoService),
        PROTO_UDP => super::forward::port_unreachable(ctx, pkt, DropReason::NoService),
        _ => Verdict::Drop(DropReason::NoService),
    }
}

/// A new connection's tuple is another connection's (`holder`): under NAT, a client that
/// reuses its source port towards another virtual address (another VIP, or another
/// destination of a firewall-mark service) that sends it to the same real server makes the
/// same reply tuple, real server ↔ client address and port, which is one TCP connection to
/// that server. When the holder is closing ([`lifecycle::closing`](crate::lifecycle::closing),
/// as `conn_reuse_mode` treats a SYN on its own tuple, `forward::reuse`), it is retired and
/// the insert tried once more; a live holder keeps its tuple and the new flow is refused
/// (`conn_tuple_clash`). FullNAT picks another local port instead (`insert_fullnat`). The
/// SYN proxy's connection to the real server takes the same rule (`synproxy/handshake.rs`).
#[cold]
pub(crate) fn retire_closing_holder(
    ctx: &mut Ctx<'_>,
    conn: &Conn,
    deadline: u32,
    holder: uvs_conntrack::ConnId,
) -> Result<uvs_conntrack::ConnId, InsertError> {
    // Gone since the insert looked (expired and reclaimed): nothing to retire.
    let Some((old, _)) = ctx.conns.get(holder) else {
        return ctx.conns.insert(conn, ctx.now, deadline);
    };
    if !crate::lifecycle::closing(&old) {
        return Err(InsertError::Clash(holder));
    }
    retire(ctx, holder, &old);
    ctx.conns.insert(conn, ctx.now, deadline)
}

/// FullNAT: pick a local address from the pool and a port this worker owns (ports are
/// partitioned by worker, so workers never race for one); the table's own uniqueness of
/// the reply tuple detects a port still in use, as Linux NAT probes conntrack. `None`:
/// no free port after a bounded number of tries.
pub(crate) fn insert_fullnat(
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
        conn.reply.dst = if is_nat64(conn) {
            mapped(&laddr.addr)
        } else {
            laddr.addr
        };
        conn.reply.dport = port as u16;
        match ctx.conns.insert(conn, ctx.now, deadline) {
            // The reply tuple (this local port) belongs to a live connection: next port.
            Err(InsertError::Clash(_)) => continue,
            other => return Some(other),
        }
    }
    None
}

/// The schedulers' key of a flow.
pub(crate) fn sched_key(p: &Parsed, v6: bool) -> FlowHashKey {
    hash_key(v6, (p.src, p.sport), (p.dst, p.dport), p.l4_proto)
}

/// [`sched_key`] of a connection's first packet, from its entry's original tuple.
pub(crate) fn sched_key_of(k: &FlowKey) -> FlowHashKey {
    hash_key(k.v6, (k.src, k.sport), (k.dst, k.dport), k.proto)
}

fn hash_key(v6: bool, src: ([u8; 16], u16), dst: ([u8; 16], u16), proto: u8) -> FlowHashKey {
    // The schedulers' key holds IPv4 as ::ffff:a.b.c.d (FlowHashKey's documented form).
    let hashed = |a: [u8; 16]| if v6 { a } else { mapped(&a) };
    FlowHashKey {
        src: hashed(src.0),
        dst: hashed(dst.0),
        sport: src.1,
        dport: dst.1,
        proto,
    }
}

/// Persistence, then the scheduler, then the sorry server.
pub(crate) fn choose_real(ctx: &mut Ctx<'_>, svc: &ServiceRt, p: &Parsed, v6: bool) -> Option<u16> {
    let template = crate::lifecycle::client_template(svc, p.src, v6);
    if let Some((key, timeout)) = template {
        if let Some(hit) = ctx.conns.lookup(&key, ctx.now) {
            let slot = hit.real();
            if hit.service() == svc.id
                && crate::lifecycle::template_usable(&ctx.settings, svc, slot)
            {
                if hit.flags() & conn_flags::SYNCED != 0 {
                    super::forward::own(ctx, &hit);
                }
                ctx.conns
                    .update(hit.id, hit.state(), ctx.now.wrapping_add(timeout));
                return Some(slot);
            }
            ctx.conns.remove(hit.id);
        }
    }
    let hk = sched_key(p, v6);
    let slot = match svc.sched.pick(&hk, &svc.live, ctx.now_s) {
        Some(i) => i as u16,
        None if svc.sorry.is_some() => SORRY_SLOT,
        None => return None,
    };
    if let Some((key, timeout)) = template {
        insert_template(ctx, svc, key, slot, timeout);
    }
    Some(slot)
}

/// After a connection went from server `from` to server `to` (the SYN proxy's redispatch:
/// `from` refused it): the persistence template of its client, if it names `from`, names
/// `to` instead, so that the client's next connections follow rather than meet the
/// refusal again.
pub(crate) fn retarget_template(
    ctx: &mut Ctx<'_>,
    svc: &ServiceRt,
    orig: &FlowKey,
    from: u16,
    to: u16,
) {
    let Some((key, timeout)) = crate::lifecycle::client_template(svc, orig.src, orig.v6) else {
        return;
    };
    let Some(hit) = ctx.conns.lookup(&key, ctx.now) else {
        return;
    };
    if hit.service() != svc.id || hit.real() != from || !ctx.conns.remove(hit.id) {
        return;
    }
    insert_template(ctx, svc, key, to, timeout);
}

/// Stores a persistence template `key` → `slot` for `timeout` ticks and tells sync. A full
/// table only costs persistence for this client, not the flow.
fn insert_template(ctx: &Ctx<'_>, svc: &ServiceRt, key: FlowKey, slot: u16, timeout: u32) {
    let t = crate::lifecycle::template(svc, key, slot);
    if let Ok(id) = ctx.conns.insert(&t, ctx.now, ctx.now.wrapping_add(timeout)) {
        ctx.sync.note(ctx.worker, id);
    }
}

/// A UDP datagram without an entry: a reply from a real server of a one-packet-scheduling
/// service (no connection entry exists, so the source is put back to the VIP and service
/// port by the service alone), else a new flow.
#[cold]
pub(crate) fn ops_reply<P: L4Proto>(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    key: &FlowKey,
) -> Verdict {
    let tables = ctx.tables;
    let p = &pkt.p;
    let v6 = p.l3 == L3::V6;
    let ops = tables
        .ops_service_of_reply(ip(v6, p.src), p.sport, p.l4_proto)
        .and_then(|svc| {
            svc.reals.iter().enumerate().find_map(|(i, r)| {
                r.as_ref()
                    .filter(|r| r.addr.addr == p.src)
                    .map(|r| (svc, i as u16, r))
            })
        });
    let Some((svc, slot, real)) = ops else {
        return new_flow::<P>(ctx, pkt, key);
    };
    let conn = Conn {
        orig: FlowKey {
            proto: p.l4_proto,
            v6,
            src: p.dst,
            dst: svc.key.vip.addr,
            sport: p.dport,
            dport: if svc.key.port == 0 {
                p.sport
            } else {
                svc.key.port
            },
        },
        reply: flow_key(p),
        service: svc.id,
        real: slot,
        method: Method::Nat as u8,
        state: 0,
        flags: 0,
    };
    let flow = Flow {
        svc,
        real: Some(real),
        conn: &conn,
    };
    forward_reply(ctx, pkt, flow)
}
