//! A proxied connection's segments: waiting for the server's SYN-ACK (SYN_SENT), then
//! translated between the two halves.
//!
//! Translation of a spliced connection (δ = server ISN − cookie, τ = server TSval − uvs's
//! TSval; the client's sequence space is the same on both halves):
//! - client → server: ACK + δ, SACK blocks + δ, TSecr + τ, window rescaled;
//! - server → client: SEQ − δ, TSval − τ, window rescaled;
//!
//! each with an RFC 1624 update of the checksum (`uvs_wire::splice`), before the usual NAT
//! or FullNAT rewrite. RST and FIN pass through translated like any segment.
//!
//! With a PROXY v2 header of `L` bytes (sent on the ACK that completes the server's
//! handshake) the client's space is shifted too: client → server SEQ + L; server → client
//! ACK − L and SACK blocks − L.
//!
//! An ICMP error about a spliced connection quotes a segment as one half got it; the half
//! it goes to gets the quote with that translation undone ([`quoted`], applied by
//! `pipeline/icmp.rs`), so that its TCP finds the quoted sequence number among those it
//! sent and path MTU discovery works.

use uvs_conntrack::ConnView;
use uvs_conntrack::{tcp::TcpState, Conn, Dir, FlowKey, Hit};
use uvs_wire::tcp::flags;
use uvs_wire::{tcp_options, Segment, Splice, L3};

use super::retransmit::{client_reset, ClientReset};
use super::{Opts, SpliceTable};
use crate::lifecycle;
use crate::pipeline::{conn_flags, ip, l2_out, real_egress, Ctx, Packet, PROTO_TCP};
use crate::tables::{Method, ServiceRt};
use crate::verdict::{DropReason, Verdict};

/// A segment of a connection the SYN proxy opened (`conn_flags::SYNPROXY`): `None` once it
/// is translated, for the caller's ordinary state tracking and NAT or FullNAT rewrite (the
/// same path as any established flow, so a spliced packet pays only for the translation);
/// otherwise what became of it (a handshake segment, or a drop).
#[inline]
pub(crate) fn established(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    hit: &Hit,
    svc: &ServiceRt,
) -> Option<Verdict> {
    let tcp_flags = pkt.p.tcp_flags;
    if hit.state() != TcpState::SynSent as u8 && tcp_flags & flags::SYN == 0 {
        // The common case, a segment of a spliced connection: translated in one pass over
        // its header without reading its fields first.
        let (a, opts) = ctx.proxy.splices(ctx.conns).load(hit.id);
        let from_server = hit.dir == Dir::Reply;
        if !(from_server
            && (awaits_proxy_ack(opts, hit.v6(), tcp_flags) || awaits_replay_ack(opts, tcp_flags)))
        {
            return translate(pkt, hit, a, opts);
        }
    }
    unusual(ctx, pkt, hit, svc)
}

/// [`established`] for a segment of the handshake with the server, a SYN, or a server
/// segment that may acknowledge the PROXY header or a replayed layer-7 head.
#[inline(never)]
fn unusual(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>, hit: &Hit, svc: &ServiceRt) -> Option<Verdict> {
    let splices = ctx.proxy.splices(ctx.conns);
    let from_server = hit.dir == Dir::Reply;
    let tables = ctx.tables;
    let tcp_flags = pkt.p.tcp_flags;
    let Ok(t) = uvs_wire::tcp_fields(pkt.frame(), &pkt.p) else {
        return Some(Verdict::Drop(DropReason::TcpBadOptions));
    };
    if hit.state() == TcpState::SynSent as u8 {
        if !from_server {
            if tcp_flags & flags::RST != 0 {
                if ctx.conns.remove(hit.id) {
                    lifecycle::unbind(tables, &hit.conn());
                }
            } else if (t.payload_len > 0 || tcp_flags & flags::FIN != 0)
                && tcp_flags & flags::SYN == 0
                && ctx.proxy_syns.hold(hit.id, pkt.frame())
            {
                return Some(Verdict::Held);
            }
            return Some(Verdict::Drop(DropReason::SynProxyNotReady));
        }
        if tcp_flags & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK {
            return Some(server_synack(ctx, pkt, hit, svc, splices, &t));
        }
        if tcp_flags & flags::RST != 0 {
            if let Some(v) = redispatch(ctx, pkt, hit, svc, splices) {
                return Some(v);
            }
            if hand_over(ctx, pkt, hit, splices) {
                return Some(Verdict::Held);
            }
            return Some(server_refused(ctx, pkt, hit, splices));
        }
        if tcp_flags & flags::ACK != 0 {
            return Some(stale_ack(ctx, pkt, hit, svc, &t));
        }
        return Some(Verdict::Drop(DropReason::SynProxyNotReady));
    }
    if from_server && tcp_flags & flags::SYN != 0 {
        // The server retransmits its SYN-ACK: our ACK was lost. Answer it again; the
        // client has been established for a while.
        if tcp_flags & flags::ACK == 0 {
            return Some(Verdict::Drop(DropReason::SynProxyNotReady));
        }
        let ack = t.seq.wrapping_add(1);
        return Some(ack_server(ctx, pkt, hit, svc, &t, ack, true));
    }
    if !from_server && tcp_flags & flags::SYN != 0 {
        // A new SYN on a live proxied entry: not for this connection.
        return Some(Verdict::Drop(DropReason::SynProxyNotReady));
    }
    let (a, opts) = splices.load(hit.id);
    let pp = opts.proxy_len(hit.v6());
    if from_server && awaits_proxy_ack(opts, hit.v6(), tcp_flags) {
        let acked = t.ack.wrapping_sub(opts.proxy_start()) as i32;
        if acked >= pp as i32 {
            splices.set(hit.id, Opts::PROXY_ACKED);
        } else if acked == 0 && t.payload_len == 0 {
            // The server acknowledges only its SYN: it took a later client segment as the
            // end of its handshake and never got the header (our ACK carrying it was
            // lost), so it waits for those bytes; this duplicate ACK is of no use to the
            // client. Send the header in its place.
            return Some(ack_server(ctx, pkt, hit, svc, &t, t.seq, true));
        }
    }
    if from_server && awaits_replay_ack(opts, tcp_flags) {
        // Layer 7: the server acknowledged the whole head uvs replays (its ACK is in the
        // client's space shifted by the PROXY header): the holding worker lets it go.
        let end = splices.replay_end(hit.id);
        if t.ack.wrapping_sub(pp).wrapping_sub(end) as i32 >= 0 {
            splices.set(hit.id, Opts::REPLAY_ACKED);
        }
    }
    translate(pkt, hit, a, opts)
}

/// A server segment that may show whether it got the PROXY header: an ACK (not RST or FIN)
/// while the header is not known to be acknowledged.
#[inline]
fn awaits_proxy_ack(opts: Opts, v6: bool, tcp_flags: u8) -> bool {
    opts.proxy_len(v6) != 0
        && !opts.has(Opts::PROXY_ACKED)
        && tcp_flags & flags::ACK != 0
        && tcp_flags & (flags::RST | flags::FIN) == 0
}

/// Layer 7: a server ACK that may acknowledge the whole head uvs replays, while it is not
/// known to be acknowledged.
#[inline]
fn awaits_replay_ack(opts: Opts, tcp_flags: u8) -> bool {
    opts.has(Opts::REPLAY) && !opts.has(Opts::REPLAY_ACKED) && tcp_flags & flags::ACK != 0
}

/// Translates a segment of a spliced connection (`a`, `opts`: its splice slot): `None` when
/// done, a drop for a segment that is not whole TCP or has malformed options.
#[inline]
fn translate(pkt: &mut Packet<'_>, hit: &Hit, a: u64, opts: Opts) -> Option<Verdict> {
    let s = rule(hit.dir, a, opts, hit.v6());
    match pkt
        .buf
        .get_mut(..pkt.len)
        .map(|f| uvs_wire::splice(f, &pkt.p, &s))
    {
        Some(Ok(())) => None,
        _ => Some(Verdict::Drop(DropReason::TcpBadOptions)),
    }
}

/// The translation of a spliced connection's segments going in direction `dir` (`a`,
/// `opts`: its splice slot; `v6`: its family), as the module's documentation states it.
#[inline(always)]
fn rule(dir: Dir, a: u64, opts: Opts, v6: bool) -> Splice {
    let (delta, ts_delta) = ((a >> 32) as u32, a as u32);
    let pp = opts.proxy_len(v6);
    let ts_delta = if opts.has(Opts::SERVER_TS) {
        ts_delta
    } else {
        0
    };
    if dir == Dir::Reply {
        Splice {
            seq: delta.wrapping_neg(),
            ack: pp.wrapping_neg(),
            sack: pp.wrapping_neg(),
            tsval: ts_delta.wrapping_neg(),
            window: Some(opts.window_to_client()),
            ..Splice::default()
        }
    } else {
        Splice {
            seq: pp,
            ack: delta,
            sack: delta,
            tsecr: ts_delta,
            window: Some(opts.window_to_server()),
            ..Splice::default()
        }
    }
}

/// The translation of the segment an ICMP error about a proxied connection quotes (`hit`:
/// the connection the quote belongs to, `hit.dir` the error's direction), `None` before
/// the connection is spliced (no δ yet: the quote is a handshake segment, in the same
/// numbering on both halves but for the PROXY header, which comes after the SYN).
///
/// The quote is a segment of the other direction as the error's sender got it, translated
/// by [`rule`]; the error goes to the half that sent it, which knows it untranslated (a
/// TCP checks the quoted sequence number against what it sent: Linux's `tcp_v4_err`
/// ignores an error outside `snd_una..=snd_nxt`, and path MTU discovery with it). So the
/// quote gets the inverse of that direction's translation.
#[cold]
pub(crate) fn quoted(ctx: &Ctx<'_>, hit: &Hit) -> Option<Splice> {
    if hit.flags() & conn_flags::SYNPROXY == 0 || hit.state() == TcpState::SynSent as u8 {
        return None;
    }
    let (a, opts) = ctx.proxy.splices(ctx.conns).load(hit.id);
    if !opts.has(Opts::SPLICED) {
        return None;
    }
    let quoted_dir = match hit.dir {
        Dir::Original => Dir::Reply,
        Dir::Reply => Dir::Original,
    };
    Some(rule(quoted_dir, a, opts, hit.v6()).inverse())
}

/// The real server's SYN-ACK: record the deltas, move the entry to ESTABLISHED, and turn
/// the frame into the ACK that completes the server's handshake.
fn server_synack(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    hit: &Hit,
    svc: &ServiceRt,
    splices: &SpliceTable,
    t: &uvs_wire::TcpFields,
) -> Verdict {
    let (a, _) = splices.load(hit.id);
    let (our_isn, our_tsval) = ((a >> 32) as u32, a as u32);
    let server = Opts::server(t.options.wscale, t.options.timestamp.is_some())
        .with_server_mss(t.options.mss);
    if splices.claim(hit.id, server) {
        let delta = t.seq.wrapping_sub(our_isn);
        let ts_delta = t
            .options
            .timestamp
            .map_or(0, |(v, _)| v.wrapping_sub(our_tsval));
        let (_, opts) = splices.load(hit.id);
        splices.store(hit.id, (u64::from(delta) << 32) | u64::from(ts_delta), opts);
        let timeout = |s: u8| svc.timeouts.for_state(crate::pipeline::PROTO_TCP, s);
        let est = TcpState::Established as u8;
        let sent = TcpState::SynSent as u8;
        lifecycle::transition(
            ctx.conns,
            svc,
            hit,
            ctx.now,
            |s| if s == sent { est } else { s },
            timeout,
            |_, _| true,
        );
        ctx.proxy_syns.forget(hit.id);
        ctx.counters.synproxy_spliced.add(1);
    }
    ack_server(ctx, pkt, hit, svc, t, t.seq.wrapping_add(1), false)
}

/// Writes the ACK answering the server's SYN-ACK over the frame (`ack`: what it
/// acknowledges), with the PROXY v2 header as its data when the connection has one, and
/// sends it to the server. `again`: the header was sent before (counted as resent).
fn ack_server(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    hit: &Hit,
    svc: &ServiceRt,
    t: &uvs_wire::TcpFields,
    ack: u32,
    again: bool,
) -> Verdict {
    let (_, opts) = ctx.proxy.splices(ctx.conns).load(hit.id);
    let c = &hit.conn();
    let mut o = [0u8; 12];
    let n = match t.options.timestamp {
        // Echo the server's TSval; our TSval is the client's, which the server echoed.
        Some((v, e)) if opts.has(Opts::CLIENT_TS) => tcp_options::write_ts_option(&mut o, (e, v)),
        _ => 0,
    };
    let window = if opts.has(Opts::SERVER_WS) {
        // The server reads this window scaled by the client's shift.
        (65535u32 >> opts.client_shift()).max(1) as u16
    } else {
        65535
    };
    let seg = Segment {
        src: c.reply.dst,
        dst: c.reply.src,
        ttl: 64,
        sport: c.reply.dport,
        dport: c.reply.sport,
        seq: t.ack,
        ack,
        flags: flags::ACK,
        window,
        options: &o[..n],
    };
    let (l3_off, l3) = (usize::from(pkt.p.l3_off), pkt.p.l3);
    let written = if opts.has(Opts::PROXY) {
        // The header starts at the client's ISN + 1, whatever the server's segment acked.
        let seg_at = Segment {
            seq: opts.proxy_start(),
            ..seg
        };
        let h = uvs_wire::ProxyV2 {
            src: ip(c.orig.v6, c.orig.src).to_ip(),
            dst: ip(c.orig.v6, c.orig.dst).to_ip(),
            src_port: c.orig.sport,
            dst_port: c.orig.dport,
        };
        let mut header = [0u8; uvs_wire::proxy_v2::LEN_V6];
        let Ok(n) = h.write(&mut header) else {
            return Verdict::Drop(DropReason::TcpBadOptions);
        };
        ctx.counters.synproxy_proxy_headers.add(1);
        if again {
            ctx.counters.synproxy_proxy_resent.add(1);
        }
        uvs_wire::write_data_segment(pkt.buf, l3_off, l3, &seg_at, &header[..n])
    } else {
        uvs_wire::write_segment(pkt.buf, l3_off, l3, &seg)
    };
    let Some(n) = written else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    pkt.len = n;
    to_server(ctx, pkt, svc, c)
}

/// Sends the frame uvs wrote over `pkt` to connection `c`'s real server.
fn to_server(ctx: &Ctx<'_>, pkt: &mut Packet<'_>, svc: &ServiceRt, c: &Conn) -> Verdict {
    let real = svc.real(c.real).filter(|r| r.addr.same_addr(&c.reply.src));
    match real_egress(ctx.tables, real, &ip(c.reply.v6, c.reply.src)) {
        Some((egress, hop)) => l2_out(ctx.tables, ctx.neigh, pkt.buf, egress, hop),
        None => Verdict::Drop(DropReason::NoRoute),
    }
}

/// An ACK without SYN answering our SYN: the server holds the tuple in TIME_WAIT from an
/// earlier connection and refused the SYN (PAWS, or a sequence number not beyond the old
/// one's), acknowledging the old connection instead. As a client's TCP in SYN-SENT does
/// (RFC 9293 §3.10.7.3), answer with a RST at its acknowledgement number: that ends the
/// TIME_WAIT (RFC 1337's hazard aside, Linux accepts it), and the SYN, sent again at the
/// next retransmission scan rather than after its 1 s backoff (the client is waiting),
/// opens the connection. Dropped, the ACK would come back for every retransmission until
/// the client is reset.
fn stale_ack(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    hit: &Hit,
    svc: &ServiceRt,
    t: &uvs_wire::TcpFields,
) -> Verdict {
    let c = &hit.conn();
    let seg = Segment {
        src: c.reply.dst,
        dst: c.reply.src,
        ttl: 64,
        sport: c.reply.dport,
        dport: c.reply.sport,
        seq: t.ack,
        ack: 0,
        flags: flags::RST,
        window: 0,
        options: &[],
    };
    let Some(n) = uvs_wire::write_segment(pkt.buf, usize::from(pkt.p.l3_off), pkt.p.l3, &seg)
    else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    pkt.len = n;
    ctx.proxy_syns.resend_soon(hit.id, ctx.now);
    to_server(ctx, pkt, svc, c)
}

/// The server refused the connection (RST to our SYN): another server of the service (on
/// layer 7, of the pool that took the connection) gets it instead, as HAProxy's `option
/// redispatch` does, until [`TRIES`](super::retransmit::TRIES) servers have refused it.
/// The client, connected to uvs, sees nothing of it. The entry is replaced by one to the
/// other server (its reply tuple names the server), whose scheduler picks as if the
/// refusing server were down; the SYN this worker kept is sent there with its addresses
/// and ports rewritten, the client's held segment and a layer-7 head waiting to be
/// replayed carried over, and a persistence template naming the refusing server made to
/// name the other. `None`, nothing changed, when it cannot: another worker sent the SYN
/// (it holds the copy: [`hand_over`] gives it the refusal), the tries are spent, no other
/// server is available, or no route; [`server_refused`] then answers the client.
fn redispatch(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    hit: &Hit,
    svc: &ServiceRt,
    splices: &SpliceTable,
) -> Option<Verdict> {
    let pool = ctx.proxy_syns.may_retry(hit.id)?;
    let c = hit.conn();
    let key = crate::pipeline::sched_key_of(&c.orig);
    let refused = usize::from(c.real);
    let slot = match pool {
        Some(pool) => {
            let pool = svc.layer7.as_ref()?.pools.get(usize::from(pool))?;
            pool.sched
                .pick_except(&key, &svc.live, ctx.now_s, refused)?
        }
        None => svc.sched.pick_except(&key, &svc.live, ctx.now_s, refused)?,
    };
    let slot = u16::try_from(slot).ok()?;
    let real = svc.real(slot)?;
    let v6 = c.orig.v6;
    if real.addr.v6 != v6 || !matches!(real.method, Method::Nat | Method::FullNat) {
        return None;
    }
    let (egress, hop) = real_egress(ctx.tables, Some(real), &ip(v6, real.addr.addr))?;
    let mut syn = ctx.proxy_syns.take_refused(hit.id)?;
    // The SYN goes out in this frame's buffer (always large enough: it held the RST).
    let parsed = uvs_wire::parse_frame(syn.frame_mut())
        .ok()
        .filter(|_| syn.frame_mut().len() <= pkt.buf.len());
    let Some(mut p) = parsed else {
        ctx.proxy_syns.release(syn, ctx.counters);
        return None;
    };
    // The old entry goes (under FullNAT with its local port), the new one is inserted.
    if ctx.conns.remove(hit.id) {
        lifecycle::unbind(ctx.tables, &c);
    }
    let mut conn = Conn {
        orig: c.orig,
        reply: FlowKey {
            src: real.addr.addr,
            sport: if real.port == 0 {
                c.orig.dport
            } else {
                real.port
            },
            ..c.reply
        },
        real: slot,
        method: real.method as u8,
        ..c
    };
    conn.reply.dst = c.orig.src;
    conn.reply.dport = c.orig.sport;
    let id = match super::handshake::insert_proxied(ctx, svc, real.method, &mut conn) {
        Some(Ok(id)) => id,
        _ => {
            ctx.proxy_syns.release(syn, ctx.counters);
            return None;
        }
    };
    lifecycle::bind(svc, slot, conn.state, PROTO_TCP);
    real.stats.worker(ctx.worker).conns.add(1);
    ctx.counters.synproxy_redispatched.add(1);
    crate::pipeline::retarget_template(ctx, svc, &c.orig, c.real, slot);
    // What the connection keeps beside its entry, before its SYN can be answered.
    let (a, opts) = splices.load(hit.id);
    if opts.has(Opts::HTTP) || opts.has(Opts::REPLAY) {
        splices.set_replay_end(id, splices.replay_end(hit.id));
    }
    splices.store(id, a, opts);
    splices.set_keeper(id, ctx.worker);
    if opts.has(Opts::REPLAY) {
        ctx.proxy_syns.heads.redirect(hit.id, id, ctx.now);
    }
    let f = syn.frame_mut();
    uvs_wire::set_dst_addr(f, &mut p, &conn.reply.src);
    uvs_wire::set_dst_port(f, &mut p, conn.reply.sport);
    uvs_wire::set_src_addr(f, &mut p, &conn.reply.dst);
    uvs_wire::set_src_port(f, &mut p, conn.reply.dport);
    let n = f.len();
    pkt.buf[..n].copy_from_slice(f);
    pkt.len = n;
    crate::pipeline::account(ctx.worker, svc, Some(real), n as u64, true);
    let v = l2_out(ctx.tables, ctx.neigh, pkt.buf, egress, hop);
    ctx.proxy_syns
        .put_back(id, syn, egress, hop, ctx.now, ctx.conns, ctx.counters);
    Some(v)
}

/// A refusal received by another worker than the one that sent the SYN (and keeps its
/// copy, which [`redispatch`] needs): handed to that worker, woken to run it through its
/// pipeline as if it had received it (`synproxy::Handovers`). False when it cannot be
/// (this worker is the keeper, none is known, its queue is full): this worker answers.
fn hand_over(ctx: &Ctx<'_>, pkt: &Packet<'_>, hit: &Hit, splices: &SpliceTable) -> bool {
    let Some(keeper) = splices.keeper(hit.id).filter(|&w| w != ctx.worker) else {
        return false;
    };
    if !ctx.proxy.handovers.hand(keeper, pkt.frame()) {
        return false;
    }
    if let Some(bell) = ctx.doorbells.get(keeper) {
        bell.ring();
    }
    ctx.counters.synproxy_handed_over.add(1);
    true
}

/// The server refused the connection (RST to our SYN): the client, which believes it is
/// connected, gets a RST from the VIP — or, on a layer-7 connection whose request is plain
/// HTTP ([`Opts::HTTP`]), `503 Service Unavailable` and FIN acknowledging the request, as
/// HAProxy answers a server it cannot connect to; the entry goes.
fn server_refused(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    hit: &Hit,
    splices: &SpliceTable,
) -> Verdict {
    let tables = ctx.tables;
    let neigh = ctx.neigh;
    let (a, opts) = splices.load(hit.id);
    let c = &hit.conn();
    if ctx.conns.remove(hit.id) {
        lifecycle::unbind(tables, c);
    }
    ctx.proxy_syns.forget(hit.id);
    ctx.counters.synproxy_failures.add(1);
    if opts.has(Opts::HTTP) {
        let side = super::layer7::Side {
            seq: ((a >> 32) as u32).wrapping_add(1),
            ack: splices.replay_end(hit.id),
            // uvs's TSval as its SYN-ACK sent it; the client's latest is not known here
            // (an echo of 0 is not used to measure the round trip, RFC 7323 §4.3).
            ts: opts.has(Opts::CLIENT_TS).then_some((0, a as u32)),
            wscale: None,
        };
        // The client's family (a NAT64 server answers in the other).
        let l3 = if c.orig.v6 { L3::V6 } else { L3::V4 };
        let written = super::layer7::write_reply(
            pkt.buf,
            usize::from(pkt.p.l3_off),
            l3,
            (c.orig.src, c.orig.sport),
            (c.orig.dst, c.orig.dport),
            &side,
            super::layer7::Reply::Http(super::layer7::UNAVAILABLE),
        );
        let Some(n) = written else {
            return Verdict::Drop(DropReason::TcpBadOptions);
        };
        pkt.len = n;
        let Some((port, hop)) = tables.route(&ip(c.orig.v6, c.orig.src)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        return l2_out(tables, neigh, pkt.buf, port, hop);
    }
    let Ok(t) = uvs_wire::tcp_fields(pkt.frame(), &pkt.p) else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    let r = ClientReset {
        v6: c.orig.v6,
        client: c.orig.src,
        vip: c.orig.dst,
        client_port: c.orig.sport,
        vip_port: c.orig.dport,
        seq: ((a >> 32) as u32).wrapping_add(1),
        ack: t.ack,
        http: None,
    };
    let l3 = usize::from(pkt.p.l3_off);
    let mut f = [0u8; 128];
    let Some(n) = client_reset(&mut f, &r) else {
        return Verdict::Drop(DropReason::TcpBadOptions);
    };
    // Keep the frame's own link header (VLAN tag included); the RST starts at its l3_off.
    let ip_part = &f[14..n];
    if l3 + ip_part.len() > pkt.buf.len() {
        return Verdict::Drop(DropReason::TcpBadOptions);
    }
    pkt.buf[l3..l3 + ip_part.len()].copy_from_slice(ip_part);
    pkt.len = l3 + ip_part.len();
    let Some((port, hop)) = tables.route(&ip(c.orig.v6, c.orig.src)) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    l2_out(tables, neigh, pkt.buf, port, hop)
}
