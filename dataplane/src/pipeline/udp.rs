//! UDP in the pipeline: checksum before the table, every datagram may open a flow, no
//! states (one timeout), and one-packet scheduling (ipvsadm -o).

use uvs_conntrack::{FlowKey, Hit};
use uvs_wire::Parsed;

use super::proto::L4Proto;
use super::tcp::{nat64_reply, tcp_udp_inspect};
use super::{Ctx, Packet};
use crate::tables::ServiceRt;
use crate::verdict::Verdict;

/// UDP (protocol 17).
pub(crate) struct Udp;

impl L4Proto for Udp {
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

    const STAGED: bool = true;

    const FLOW_CACHE: bool = true;

    const ONE_PACKET: bool = true;

    #[inline]
    fn initial_state(svc: &ServiceRt, p: &Parsed) -> (u8, u32) {
        (0, svc.timeouts.for_state(p.l4_proto, 0))
    }
}
