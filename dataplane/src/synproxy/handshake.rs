//! The client's half of the handshake: a SYN gets a cookie SYN-ACK, the returning ACK
//! opens the entry and becomes the SYN to the real server.

use std::sync::Arc;
use uvs_conntrack::ConnView;

use uvs_conntrack::{tcp::TcpState, Conn, FlowKey, InsertError};
use uvs_wire::tcp::flags;
use uvs_wire::{tcp_options, Parsed, Segment, L3};

use super::cookie::{self, CookieError, SynOptions, Tuple};
use super::layer7::Decision;
use super::{Opts, OFFERED_WSCALE, SYNACK_WINDOW, SYN_SENT_TIMEOUT_MS};
use crate::pipeline::{
    choose_real, conn_flags, insert_fullnat, ip, l2_out, real_egress, retire_closing_holder, Ctx,
    Packet, PROTO_TCP,
};
use crate::tables::{Method, ServiceRt};
use crate::verdict::{DropReason, Verdict};

/// A TCP segment of a flow the table does not know, addressed to a `syn_proxy` service.
#[cold]
pub(crate) fn on_new_flow(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    svc: &Arc<ServiceRt>,
) -> Verdict {
    let f = pkt.p.tcp_flags;
    if svc.layer7.is_some() {
        // A client whose request head uvs is receiving (its SEQ no longer checks against
        // the cookie): its tuple finds it.
        if let Some(i) = ctx.proxy_syns.heads.find(&super::head::HeadKey::of(&pkt.p)) {
            return super::head::segment(ctx, pkt, svc, i);
        }
    }
    if f & (flags::SYN | flags::ACK | flags::RST | flags::FIN) == flags::SYN {
        return syn(ctx, pkt);
    }
    if f & (flags::SYN | flags::ACK | flags::RST) == flags::ACK {
        return ack(ctx, pkt, svc);
    }
    Verdict::Drop(DropReason::NotSyn)
}

fn tuple(p: &Parsed) -> Tuple {
    Tuple {
        client: p.src,
        vip: p.dst,
        client_port: p.sport,
        vip_port: p.dport,
    }
}

/// Answers a SYN with a cookie SYN-ACK, rewriting the frame in place; stores nothing.
fn syn(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>) -> Verdict {
    let Packet { buf, len, p } = pkt;
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    let Ok(t) = uvs_wire::tcp_fields(&buf[..*len], p) else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    let v6 = p.l3 == L3::V6;
    // RFC 9293 §3.7.1: no MSS option means 536 (IPv4) / 1220 (IPv6).
    let mss = t.options.mss.unwrap_or(if v6 { 1220 } else { 536 });
    let idx = cookie::mss_index(v6, mss);
    let now_count = cookie::count_of(ctx.now_s);
    let isn = ctx.proxy.secret.make(&tuple(p), t.seq, idx, now_count);
    let mut opts = [0u8; 20];
    let mut syn_flags = flags::SYN | flags::ACK;
    let n = match t.options.timestamp {
        // Without timestamps the cookie can keep only the MSS: offer nothing else (as
        // Linux does in cookie mode).
        None => tcp_options::write_syn_options(
            &mut opts,
            cookie::mss_table(v6)[usize::from(idx)],
            None,
            false,
            None,
        ),
        Some((tsval, _)) => {
            let o = SynOptions {
                mss,
                wscale: t.options.wscale.map(|w| w.min(cookie::MAX_WSCALE)),
                sack: t.options.sack_perm,
                // RFC 3168 §6.1.1: an ECN-setup SYN has ECE and CWR; its SYN-ACK has ECE.
                ecn: p.tcp_flags & (flags::ECE | flags::CWR) == flags::ECE | flags::CWR,
            };
            if o.ecn {
                syn_flags |= flags::ECE;
            }
            let ts = cookie::ts_encode(ctx.now, &o);
            tcp_options::write_syn_options(
                &mut opts,
                cookie::mss_table(v6)[usize::from(idx)],
                o.wscale.map(|_| OFFERED_WSCALE),
                o.sack,
                Some((ts, tsval)),
            )
        }
    };
    let seg = Segment {
        src: p.dst,
        dst: p.src,
        ttl: 64,
        sport: p.dport,
        dport: p.sport,
        seq: isn,
        ack: t.seq.wrapping_add(1),
        flags: syn_flags,
        window: SYNACK_WINDOW,
        options: &opts[..n],
    };
    let Some(n) = uvs_wire::write_segment(buf, usize::from(p.l3_off), p.l3, &seg) else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    *len = n;
    ctx.counters.synproxy_cookies_sent.add(1);
    let Some((port, hop)) = tables.route(&ip(v6, p.src)) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    l2_out(tables, neigh, buf, port, hop)
}

/// A client's ACK without an entry: a valid cookie opens the connection and the frame
/// becomes the SYN to the chosen real server.
fn ack(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, svc: &Arc<ServiceRt>) -> Verdict {
    let p = &pkt.p;
    let Ok(t) = uvs_wire::tcp_fields(pkt.frame(), p) else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    let v6 = p.l3 == L3::V6;
    let client_isn = t.seq.wrapping_sub(1);
    let our_isn = t.ack.wrapping_sub(1);
    let idx =
        match ctx
            .proxy
            .secret
            .check(&tuple(p), client_isn, our_isn, cookie::count_of(ctx.now_s))
        {
            Ok(i) => i,
            // Layer 7: the client closing after uvs's own answer and FIN.
            Err(_) if p.tcp_flags & flags::FIN != 0 && svc.layer7.is_some() => {
                return super::layer7::closed_fin(ctx, pkt, &t)
            }
            Err(CookieError::Expired) => return Verdict::Drop(DropReason::SynProxyCookieExpired),
            Err(_) => return Verdict::Drop(DropReason::SynProxyCookieInvalid),
        };
    let mss = cookie::mss_table(v6)[usize::from(idx)];
    let (opts, our_ts) = match t.options.timestamp {
        Some((tsval, tsecr)) => match cookie::ts_decode(tsecr, mss) {
            Ok(o) => (o, Some((tsval, tsecr))),
            Err(_) => return Verdict::Drop(DropReason::SynProxyCookieInvalid),
        },
        None => (
            SynOptions {
                mss,
                ..SynOptions::default()
            },
            None,
        ),
    };
    let cookie = super::head::Cookie {
        client_isn,
        our_isn,
        opts,
        ts: our_ts,
    };
    // Layer 7: the request decides the pool; a bare ACK waits for it, statelessly.
    let l7_pool = match &svc.layer7 {
        None => None,
        Some(l7) => {
            if t.payload_len == 0 && p.tcp_flags & flags::FIN != 0 {
                // Connected and closed without a request (a TCP health check): nothing to
                // decide on; uvs closes its side too, as a server would.
                let side = super::layer7::Side {
                    seq: our_isn.wrapping_add(1),
                    ack: t.seq.wrapping_add(1),
                    ts: our_ts,
                    wscale: None,
                };
                let r = Some(DropReason::Layer7ClosedFin);
                return super::layer7::answer(ctx, pkt, &side, super::layer7::Reply::Fin, r);
            }
            if t.payload_len == 0 {
                return Verdict::Drop(DropReason::Layer7AwaitRequest);
            }
            let end = p.l3_end().min(pkt.len);
            let payload = &pkt.buf[end.saturating_sub(t.payload_len)..end];
            match l7.decide(payload) {
                Decision::Pool { pool, complete } => {
                    if !complete {
                        ctx.counters.layer7_incomplete.add(1);
                    }
                    Some(pool)
                }
                Decision::Partial => {
                    ctx.counters.synproxy_cookies_valid.add(1);
                    return super::head::start(ctx, pkt, l7, cookie, &t);
                }
                Decision::BadHttp => {
                    return super::layer7::refuse(ctx, pkt, &t, our_isn, our_ts, true)
                }
                Decision::BadTls => {
                    return super::layer7::refuse(ctx, pkt, &t, our_isn, our_ts, false)
                }
            }
        }
    };
    let chosen = match l7_pool {
        Some(pool) => super::layer7::choose(ctx, svc, p, v6, pool),
        None => choose_real(ctx, svc, p, v6),
    };
    let Some(slot) = chosen else {
        if l7_pool.is_some() {
            // Layer 7: the chosen pool has no usable server; the client, connected and
            // waiting for an answer, gets one rather than retransmitting into silence.
            let end = p.l3_end().min(pkt.len);
            let tls = pkt.buf.get(end.saturating_sub(t.payload_len)) == Some(&0x16);
            let side = super::layer7::Side {
                seq: our_isn.wrapping_add(1),
                ack: t.seq.wrapping_add(t.payload_len as u32),
                ts: our_ts,
                wscale: opts.wscale,
            };
            let reply = if tls {
                super::layer7::Reply::Reset
            } else {
                super::layer7::Reply::Http(super::layer7::UNAVAILABLE)
            };
            let r = Some(DropReason::Layer7NoServer);
            return super::layer7::answer(ctx, pkt, &side, reply, r);
        }
        return Verdict::Drop(DropReason::NoRealServer);
    };
    // Layer 7 over plain HTTP/1.x: where the request ends, for a 503 if the server refuses.
    let http_end = l7_pool.and_then(|_| {
        let end = p.l3_end().min(pkt.len);
        let payload = &pkt.buf[end.saturating_sub(t.payload_len)..end];
        let http =
            payload.first().is_some_and(|&b| b != 0x16) && !super::layer7::is_h2_preface(payload);
        http.then(|| t.seq.wrapping_add(t.payload_len as u32))
    });
    let o = Opening {
        cookie,
        window: t.window,
        next: t.seq,
        pool: l7_pool,
        early: t.payload_len > 0,
        replay: None,
        http_end,
    };
    open(ctx, pkt, svc, slot, o)
}

/// Inserts a proxied connection's entry in SYN_SENT (`conn.reply` takes its local address
/// and port under FullNAT); `None` when FullNAT has no local port free.
pub(super) fn insert_proxied(
    ctx: &mut Ctx<'_>,
    svc: &ServiceRt,
    method: Method,
    conn: &mut Conn,
) -> Option<Result<uvs_conntrack::ConnId, InsertError>> {
    let deadline = ctx.now.wrapping_add(SYN_SENT_TIMEOUT_MS);
    if method == Method::FullNat {
        return insert_fullnat(ctx, svc, conn, deadline);
    }
    Some(match ctx.conns.insert(conn, ctx.now, deadline) {
        // A reused client port on the same real server (`retire_closing_holder`).
        Err(InsertError::Clash(holder)) => retire_closing_holder(ctx, conn, deadline, holder),
        other => other,
    })
}

/// What opening a proxied connection needs besides its frame.
pub(super) struct Opening {
    pub cookie: super::head::Cookie,
    /// The client's window, as on the wire.
    pub window: u16,
    /// The client's sequence number a RST to it acknowledges.
    pub next: u32,
    /// Layer 7: the pool that took the connection.
    pub pool: Option<usize>,
    /// The frame carries data to hold until the server answers (the client still has it).
    pub early: bool,
    /// Layer 7: the pending head (slot) uvs received, which ends at this sequence number,
    /// to replay once the server answers.
    pub replay: Option<(u16, u32)>,
    /// Layer 7, a plain HTTP/1.x request ending at this sequence number: a server that
    /// refuses the connection gets the client `503` ([`Opts::HTTP`]).
    pub http_end: Option<u32>,
}

/// Opens the connection to real server `slot`: the entry, and the frame becomes the SYN
/// to the server.
pub(super) fn open(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    svc: &Arc<ServiceRt>,
    slot: u16,
    open: Opening,
) -> Verdict {
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    let p = &pkt.p;
    let v6 = p.l3 == L3::V6;
    let super::head::Cookie {
        client_isn,
        our_isn,
        opts,
        ts: our_ts,
    } = open.cookie;
    // Data on the handshake's last ACK (the client's ACK was lost and this is its first
    // data segment, or a client that sends with the ACK): the frame becomes the server's
    // SYN, so a copy is kept to be held like any early segment once the SYN is out.
    let mut early = [0u8; super::retransmit::HOLD_MAX];
    let early_len = if open.early && pkt.len <= early.len() {
        early[..pkt.len].copy_from_slice(pkt.frame());
        pkt.len
    } else {
        0
    };
    if open.early && early_len == 0 {
        // Too long to keep: lost here, counted; the client retransmits it.
        ctx.counters.drop(DropReason::SynProxyNotReady);
    }
    let Some(real) = svc.real(slot) else {
        return Verdict::Drop(DropReason::NoRealServer);
    };
    let real_port = if real.port == 0 { p.dport } else { real.port };
    let key = crate::pipeline::flow_key(p);
    let mut conn = Conn {
        orig: key,
        reply: FlowKey {
            proto: PROTO_TCP,
            v6,
            src: real.addr.addr,
            dst: key.src,
            sport: real_port,
            dport: key.sport,
        },
        service: svc.id,
        real: slot,
        method: real.method as u8,
        state: TcpState::SynSent as u8,
        flags: conn_flags::SYNPROXY,
    };
    let Some(inserted) = insert_proxied(ctx, svc, real.method, &mut conn) else {
        return Verdict::Drop(DropReason::NoLocalPort);
    };
    let id = match inserted {
        Ok(id) => id,
        Err(InsertError::Exists(_)) => return joined(ctx, pkt, &key),
        Err(InsertError::Contended) => return Verdict::Drop(DropReason::InsertContended),
        Err(InsertError::Clash(_)) => return Verdict::Drop(DropReason::TupleClash),
        Err(_) => return Verdict::Drop(DropReason::TableFull),
    };
    if open.replay.is_none() {
        // A head received over several segments counted its cookie when it started.
        ctx.counters.synproxy_cookies_valid.add(1);
    }
    crate::lifecycle::bind(svc, slot, conn.state, PROTO_TCP);
    svc.stats.worker(ctx.worker).conns.add(1);
    real.stats.worker(ctx.worker).conns.add(1);
    ctx.counters.new_conns.add(1);
    if let (Some(pool), Some(l7)) = (open.pool, &svc.layer7) {
        if let Some(p) = l7.pools.get(pool) {
            p.hits.worker(ctx.worker).conns.add(1);
        }
    }
    let our_tsval = our_ts.map_or(0, |(_, e)| e);
    let mut bits = Opts::client(opts.wscale, our_ts.is_some());
    if svc.proxy_protocol {
        // The header takes the client's first sequence numbers on the server's half.
        bits = bits.with_proxy(client_isn.wrapping_add(1));
    }
    if let Some(end) = open.http_end {
        bits = Opts(bits.0 | Opts::HTTP);
        ctx.proxy.splices(ctx.conns).set_replay_end(id, end);
    }
    if let Some((head, end)) = open.replay {
        bits = Opts(bits.0 | Opts::REPLAY);
        ctx.proxy.splices(ctx.conns).set_replay_end(id, end);
        ctx.proxy_syns.heads.start_replay(head, id, ctx.now);
        ctx.counters.layer7_replayed.add(1);
    }
    let splices = ctx.proxy.splices(ctx.conns);
    splices.store(id, (u64::from(our_isn) << 32) | u64::from(our_tsval), bits);
    splices.set_keeper(id, ctx.worker);

    // The SYN to the real server: the client's ISN and its options as the cookie kept them.
    let mut o = [0u8; 20];
    let n = tcp_options::write_syn_options(
        &mut o,
        opts.mss,
        opts.wscale,
        opts.sack,
        our_ts.map(|(v, _)| (v, 0)),
    );
    let window = match opts.wscale {
        Some(s) => (u32::from(open.window) << s).min(65535) as u16,
        None => open.window,
    };
    let seg = Segment {
        src: conn.reply.dst,
        dst: conn.reply.src,
        ttl: 64,
        sport: conn.reply.dport,
        dport: conn.reply.sport,
        seq: client_isn,
        ack: 0,
        flags: if opts.ecn {
            flags::SYN | flags::ECE | flags::CWR
        } else {
            flags::SYN
        },
        window,
        options: &o[..n],
    };
    let Some(n) = uvs_wire::write_segment(pkt.buf, usize::from(p.l3_off), p.l3, &seg) else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    pkt.len = n;
    let real_addr = ip(v6, real.addr.addr);
    let Some((egress, hop)) = real_egress(tables, Some(real), &real_addr) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    crate::pipeline::account(ctx.worker, svc, Some(real), n as u64, true);
    let v = l2_out(tables, neigh, pkt.buf, egress, hop);
    let rst = super::retransmit::ClientReset {
        v6,
        client: conn.orig.src,
        vip: conn.orig.dst,
        client_port: conn.orig.sport,
        vip_port: conn.orig.dport,
        seq: our_isn.wrapping_add(1),
        ack: open.next,
        http: open.http_end.map(|end| (end, our_ts.map(|(_, ours)| ours))),
    };
    ctx.proxy_syns.push(
        id,
        pkt.frame(),
        egress,
        hop,
        rst,
        open.pool.map(|p| p as u16),
        ctx.now,
        ctx.conns,
        ctx.counters,
    );
    if early_len > 0 && !ctx.proxy_syns.hold(id, &early[..early_len]) {
        ctx.counters.drop(DropReason::SynProxyNotReady);
    }
    v
}

/// A segment returning a valid cookie for a connection that exists already: its lookup
/// ran before the connection was opened — the client's ACK and the request right behind
/// it in one burst, whose flows the worker looks up together before handling either — or
/// another worker opened it from a duplicate ACK a moment ago. The segment is that
/// connection's (held until the server answers, like any early segment); dropping it
/// would cost the client a retransmission timeout (200 ms on Linux) on nearly every
/// connection that sends its request at once.
#[cold]
fn joined(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, key: &FlowKey) -> Verdict {
    match ctx.conns.lookup(key, ctx.now) {
        // The established path, as if the lookup had found it: held while the server's
        // SYN-ACK is awaited, translated and rewritten once it has come.
        Some(hit) if hit.flags() & conn_flags::SYNPROXY != 0 => {
            crate::pipeline::established::<crate::pipeline::Tcp>(ctx, pkt, &hit)
        }
        _ => Verdict::Drop(DropReason::SynProxyNotReady),
    }
}
