//! TCP in the pipeline: checksum before the table, a new connection only from a SYN (or a
//! mid-flow packet a consistent hash places), IPVS's state machine, and the SYN proxy's
//! connections (`crate::synproxy`), whose functions keep a frame's parts apart.

use std::sync::Arc;
use uvs_conntrack::ConnView;

use uvs_conntrack::{tcp, Dir, FlowKey, Hit};
use uvs_wire::{Frag, Parsed};

use super::proto::L4Proto;
use super::{conn_flags, ip, l4_checksum, nat64, Ctx, Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::lifecycle;
use crate::tables::{Method, ServiceRt};
use crate::verdict::{DropReason, Verdict};

/// TCP (protocol 6).
pub(crate) struct Tcp;

impl L4Proto for Tcp {
    type Seen = ();

    #[inline(always)]
    fn inspect(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>) -> Result<(), Verdict> {
        tcp_udp_inspect(ctx, pkt)
    }

    #[inline(always)]
    fn miss(
        ctx: &mut Ctx<'_>,
        _pkt: &mut Packet<'_>,
        _seen: &(),
        key: &FlowKey,
    ) -> Result<Option<Hit>, Verdict> {
        Ok(nat64_reply(ctx, key))
    }

    /// IPVS schedules TCP only on a SYN (sloppy_tcp off): a stray ACK for a flow we do not
    /// know must not pin a real server. Except where every node would pick the same server
    /// for it: with a consistent-hash scheduler (mh, sh) a mid-flow packet that ECMP moved
    /// to this node (a node added or gone) follows the hash and is tracked from then on, as
    /// Katran does; the flow keeps its real server without any sync. A `syn_proxy` service
    /// answers the handshake itself.
    #[inline]
    fn schedule(
        ctx: &mut Ctx<'_>,
        pkt: &mut Packet<'_>,
        svc: &Arc<ServiceRt>,
    ) -> Result<(), Verdict> {
        if svc.syn_proxy && pkt.p.frag == Frag::None {
            return Err(crate::synproxy::on_new_flow(ctx, pkt, svc));
        }
        let f = pkt.p.tcp_flags;
        if f & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) != TCP_SYN {
            let mid_flow = f & (TCP_SYN | TCP_RST | TCP_ACK) == TCP_ACK;
            if !(mid_flow && svc.sched.kind().takes_hash_flags()) {
                return Err(reset_untracked(ctx, pkt));
            }
            ctx.counters.hash_adopted.add(1);
        }
        Ok(())
    }

    const STAGED: bool = true;

    const FLOW_CACHE: bool = true;

    #[inline]
    fn initial_state(svc: &ServiceRt, p: &Parsed) -> (u8, u32) {
        let state = tcp::transition(tcp::TcpState::None, tcp::PacketDir::Input, p.tcp_flags) as u8;
        (state, svc.timeouts.for_state(p.l4_proto, state))
    }

    /// A SYN without ACK.
    #[inline(always)]
    fn opens_connection(p: &Parsed) -> bool {
        p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    /// A connection the SYN proxy opened: its segments are translated first (`Ok`), or are
    /// the proxy's own (the handshake with the server, a held segment, a drop).
    #[inline(always)]
    fn established(
        ctx: &mut Ctx<'_>,
        pkt: &mut Packet<'_>,
        hit: &Hit,
        svc: &ServiceRt,
    ) -> Result<(), Verdict> {
        if hit.flags() & conn_flags::SYNPROXY != 0 {
            if let Some(v) = crate::synproxy::established(ctx, pkt, hit, svc) {
                return Err(v);
            }
        }
        Ok(())
    }

    /// IPVS's TCP state machine, written through [`lifecycle::transition`]: the entry is
    /// written only when the state changes or its deadline moved by more than a second (a
    /// busy flow costs the shared cache line about one write a second). A real server's
    /// retransmitted SYN-ACK does not extend a half-open (SYN_RECV) entry: only the client
    /// proves a connection alive, so spoofed SYNs age out on time.
    #[inline]
    fn track_state(ctx: &mut Ctx<'_>, svc: &ServiceRt, p: &Parsed, hit: &Hit) {
        // Nearly every packet: a plain segment (ACK, none of SYN/FIN/RST) of an ESTABLISHED
        // connection, which stays ESTABLISHED in every direction of the state table, with
        // a deadline refreshed within the last second: nothing to write. Decided from the
        // flags, the state and one timeout, without the chain of loads through the state
        // table (3 dependent loads before the compare, ~4 ns a packet at 1 000 flows).
        const ES: u8 = tcp::TcpState::Established as u8;
        if hit.state() == ES
            && p.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_ACK
            && lifecycle::deadline_fresh(
                hit.deadline.wrapping_sub(ctx.now),
                svc.timeouts.tcp[usize::from(ES)],
            )
        {
            return;
        }
        let proto = p.l4_proto;
        let timeouts = &svc.timeouts;
        let timeout = |s: u8| timeouts.for_state(proto, s);
        let no_output = matches!(
            Method::from_u8(hit.method()),
            Some(Method::Dr | Method::Tun)
        );
        let pdir = tcp::PacketDir::for_packet(hit.dir, no_output);
        let flags = p.tcp_flags;
        let next = |s: u8| {
            let old = tcp::TcpState::from_u8(s).unwrap_or(tcp::TcpState::None);
            tcp::transition(old, pdir, flags) as u8
        };
        let from_server = hit.dir == Dir::Reply;
        let refresh = |old: u8, _new: u8| !(from_server && old == tcp::TcpState::SynRecv as u8);
        if lifecycle::transition(ctx.conns, svc, hit, ctx.now, next, timeout, refresh) {
            ctx.sync.note(ctx.worker, hit.id);
        }
    }
}

/// TCP's and UDP's check before the table: a corrupt segment neither opens a flow nor moves
/// a connection's state, and every later rewrite starts from a full checksum (see
/// [`l4_checksum`]). Later fragments carry no L4 header to check.
#[inline(always)]
pub(crate) fn tcp_udp_inspect(ctx: &Ctx<'_>, pkt: &mut Packet<'_>) -> Result<(), Verdict> {
    if ctx.verify_l4_checksums && !matches!(pkt.p.frag, Frag::Later { .. }) {
        l4_checksum(&mut pkt.buf[..pkt.len], &pkt.p)?;
    }
    Ok(())
}

/// TCP's and UDP's miss: an IPv4 packet may be a NAT64 flow's reply (`pipeline/nat64.rs`).
#[inline(always)]
pub(crate) fn nat64_reply(ctx: &Ctx<'_>, key: &FlowKey) -> Option<Hit> {
    if key.v6 {
        return None;
    }
    nat64::lookup_reply(ctx, key)
}

/// A segment of a connection uvs does not track (its entry expired, its real server went
/// with `expire_nodest_conn`, uvsd restarted): dropped and counted as `tcp_not_syn`, and
/// answered with a RST from the VIP (RFC 9293 §3.10.7.1), back to the sender's MAC as
/// `forward::too_big` answers, so the client learns at once. Behind IPVS such a segment
/// goes on to the director's own stack, which holds the VIP and resets it. A RST, a
/// fragment, a segment whose header does not parse, or one past this second's
/// [`crate::verdict::ERRORS_PER_SEC`] answers is only dropped. So is every one while
/// connection sync is learning its peers' connections (`Ctx::sync_learning`): a uvsd
/// restarted under live flows gets their entries from its peers moments after its workers
/// start, and a RST in between would end a flow that the sender's retransmission finds.
#[cold]
fn reset_untracked(ctx: &Ctx<'_>, pkt: &mut Packet<'_>) -> Verdict {
    if ctx.sync_learning {
        return Verdict::Drop(DropReason::NotSyn);
    }
    reset(ctx, pkt, DropReason::NotSyn)
}

/// Answers a TCP segment uvs will not carry with a RST from the address and port it was
/// sent to (RST|ACK acknowledging it when it had no ACK, RFC 9293 §3.10.7.1), counted as
/// dropped for `reason`; see [`reset_untracked`] for what is only dropped.
#[cold]
pub(crate) fn reset(ctx: &Ctx<'_>, pkt: &mut Packet<'_>, reason: DropReason) -> Verdict {
    let drop = Verdict::Drop(reason);
    let p = pkt.p;
    let f = p.tcp_flags;
    if f & TCP_RST != 0 || p.is_fragment() || !ctx.errors.take(ctx.now_s) {
        return drop;
    }
    let Ok(t) = uvs_wire::tcp_fields(pkt.frame(), &p) else {
        return drop;
    };
    let v6 = p.l3 == uvs_wire::L3::V6;
    let (src, dst) = p.addrs_in(pkt.frame());
    let Some((port, _)) = ctx.tables.route(&ip(v6, src)) else {
        return drop;
    };
    let Some(iface) = ctx.tables.ifaces.get(usize::from(port)) else {
        return drop;
    };
    let (seq, ack, flags) = if f & TCP_ACK != 0 {
        (t.ack, 0, uvs_wire::tcp::flags::RST)
    } else {
        let len = t.payload_len as u32 + u32::from(f & TCP_SYN != 0) + u32::from(f & TCP_FIN != 0);
        (
            0,
            t.seq.wrapping_add(len),
            uvs_wire::tcp::flags::RST | uvs_wire::tcp::flags::ACK,
        )
    };
    let seg = uvs_wire::Segment {
        src: dst,
        dst: src,
        ttl: uvs_wire::build::DEFAULT_TTL,
        sport: p.dport,
        dport: p.sport,
        seq,
        ack,
        flags,
        window: 0,
        options: &[],
    };
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&pkt.buf[6..12]);
    let Some(n) = uvs_wire::write_segment(pkt.buf, usize::from(p.l3_off), p.l3, &seg) else {
        return drop;
    };
    pkt.len = n;
    pkt.buf[..6].copy_from_slice(&sender);
    pkt.buf[6..12].copy_from_slice(&iface.mac);
    ctx.counters.drop(reason);
    Verdict::Forward(port)
}
