//! TCP in the pipeline: checksum before the table, a new connection only from a SYN (or a
//! mid-flow packet a consistent hash places), IPVS's state machine, and the SYN proxy's
//! connections (`crate::synproxy`), whose functions keep a frame's parts apart.

use std::sync::Arc;
use uvs_conntrack::ConnView;

use uvs_conntrack::{tcp, Dir, FlowKey, Hit};
use uvs_wire::{Frag, Parsed};

use super::proto::L4Proto;
use super::{conn_flags, l4_checksum, nat64, Ctx, Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
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
                return Err(Verdict::Drop(DropReason::NotSyn));
            }
            ctx.counters.hash_adopted.add(1);
        }
        Ok(())
    }

    const STAGED: bool = true;

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
