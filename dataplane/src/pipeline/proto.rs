//! How a transport protocol plugs into the pipeline: one trait, [`L4Proto`], implemented
//! by TCP ([`Tcp`], `pipeline/tcp.rs`), UDP ([`Udp`], `pipeline/udp.rs`), SCTP
//! (`crate::sctp::Sctp`) and ICMP ([`Icmp`], `pipeline/icmp.rs`).
//!
//! The shape is DPVS's protocol table (`struct dp_vs_proto`: a lookup, `conn_sched`,
//! `state_trans` and per-method NAT handlers per protocol): the core in `pipeline/mod.rs`,
//! `forward.rs` and `newflow.rs` runs the same steps for every protocol and asks the
//! protocol at fixed points; a protocol does not call back into the core's stages (one
//! exception: the SYN proxy, behind TCP's hooks, uses the core's helpers — scheduling,
//! FullNAT ports, `l2_out` — and sends a segment whose connection was opened after its
//! lookup down `established`). The steps, in order:
//!
//! 1. [`L4Proto::inspect`]: the protocol's checks before the connection table is touched
//!    (TCP/UDP checksum, SCTP fragments, CRC32c and chunks; ICMP answers here entirely).
//! 2. The core looks the 5-tuple up (or takes the burst's lookup). A hit:
//!    [`L4Proto::admit`] (SCTP's verification tags), then the established path.
//! 3. A miss: [`L4Proto::miss`] finds another entry (a NAT64 reply, SCTP's other path of
//!    a multi-homed association) or lets the core schedule a new connection (after a
//!    one-packet service's reply, with [`L4Proto::ONE_PACKET`]): [`L4Proto::schedule`]
//!    (TCP: SYN only, or the SYN proxy), [`L4Proto::initial_state`], then
//!    [`L4Proto::opened`] once the entry is stored (SCTP: tag record, INIT address
//!    parameters).
//! 4. Established: [`L4Proto::opens_connection`] (a new connection on an old tuple),
//!    [`L4Proto::established`] (TCP: the SYN proxy's translation), [`L4Proto::track_state`]
//!    (the state machine and timeouts), then the core's NAT/FullNAT/DR/TUN rewrite. Port
//!    rewrites fix each protocol's checksum inside `uvs_wire` (TCP/UDP incrementally, SCTP's
//!    CRC32c recomputed).
//!
//! Why a trait of associated functions and not a table of function pointers: the core is
//! generic over the protocol, so each protocol gets its own copy of the core with its
//! hooks inlined and its constant answers folded away; the only dispatch is the one
//! `match` on the protocol number in `process_parsed`. A function-pointer table (DPVS's) pays an
//! indirect call per hook and keeps the compiler from inlining across it.
//!
//! Every hook that may end a packet's way returns `Result<_, Verdict>`: `Err` is the
//! packet's verdict, decided.

use uvs_conntrack::{Conn, FlowKey, Hit};
use uvs_wire::Parsed;

use super::{Ctx, Packet};
use crate::tables::ServiceRt;
use crate::verdict::Verdict;

pub(crate) use super::icmp::Icmp;
pub(crate) use super::tcp::Tcp;
pub(crate) use super::udp::Udp;
pub(crate) use crate::sctp::Sctp;

/// What a transport protocol supplies to the pipeline (see the module docs for when each
/// hook runs). Implemented by zero-sized types; the defaults are a protocol without
/// anything of its own at that step.
pub(crate) trait L4Proto {
    /// What [`L4Proto::inspect`] read from the packet for the later hooks (SCTP: its chunk
    /// summary).
    type Seen;

    /// The protocol's checks before the connection table is touched. Later fragments of
    /// TCP/UDP pass through (the core follows their first fragment's connection).
    fn inspect(ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>) -> Result<Self::Seen, Verdict>;

    /// A packet whose tuple found `hit`: checks against the connection before the
    /// established path.
    #[inline(always)]
    fn admit(
        _ctx: &mut Ctx<'_>,
        _pkt: &mut Packet<'_>,
        _seen: &Self::Seen,
        _hit: &Hit,
    ) -> Result<(), Verdict> {
        Ok(())
    }

    /// A packet whose tuple (`key`) found no entry: `Some` another entry to forward it with
    /// (already admitted), `None` to schedule a new connection.
    fn miss(
        ctx: &mut Ctx<'_>,
        pkt: &mut Packet<'_>,
        seen: &Self::Seen,
        key: &FlowKey,
    ) -> Result<Option<Hit>, Verdict>;

    /// Whether a packet without an entry may open a connection to `svc` (IPVS's
    /// `conn_schedule`); `Err` also carries an answer the protocol gave itself.
    #[inline(always)]
    fn schedule(
        _ctx: &mut Ctx<'_>,
        _pkt: &mut Packet<'_>,
        _svc: &std::sync::Arc<ServiceRt>,
    ) -> Result<(), Verdict> {
        Ok(())
    }

    /// A new connection's state and its timeout in ticks.
    fn initial_state(svc: &ServiceRt, p: &Parsed) -> (u8, u32);

    /// A new connection's entry is stored; its first packet is not yet forwarded.
    #[inline(always)]
    fn opened(
        _ctx: &mut Ctx<'_>,
        _pkt: &mut Packet<'_>,
        _conn: &Conn,
        _deadline: u32,
    ) -> Result<(), Verdict> {
        Ok(())
    }

    /// A new connection of this protocol may be staged in a worker's burst: scheduled when
    /// its frame comes, stored with the burst's others at its end (`pipeline/staged.rs`).
    /// Only for protocols whose [`L4Proto::opened`] does nothing.
    const STAGED: bool = false;

    /// Established packets may be forwarded from the worker's flow cache
    /// (`crate::flowcache`: IPv4 TCP and UDP).
    const FLOW_CACHE: bool = false;

    /// One-packet scheduling (ipvsadm -o) applies: every packet is scheduled on its own
    /// and replies are translated without an entry (IPVS: UDP only).
    const ONE_PACKET: bool = false;

    /// The first packet of a new connection (IPVS's `is_new_conn`): one that finds an old
    /// entry of its tuple may replace it (`lifecycle::reschedules`).
    #[inline(always)]
    fn opens_connection(_p: &Parsed) -> bool {
        false
    }

    /// An established connection's packet before state tracking and the rewrite: `Err`
    /// when the protocol handled it itself.
    #[inline(always)]
    fn established(
        _ctx: &mut Ctx<'_>,
        _pkt: &mut Packet<'_>,
        _hit: &Hit,
        _svc: &ServiceRt,
    ) -> Result<(), Verdict> {
        Ok(())
    }

    /// The connection's state machine and deadline, through `lifecycle::transition`. The
    /// default keeps the state and refreshes the deadline (a protocol without states).
    #[inline]
    fn track_state(ctx: &mut Ctx<'_>, svc: &ServiceRt, p: &Parsed, hit: &Hit) {
        let proto = p.l4_proto;
        let timeout = |s: u8| svc.timeouts.for_state(proto, s);
        crate::lifecycle::transition(ctx.conns, svc, hit, ctx.now, |s| s, timeout, |_, _| true);
    }
}
