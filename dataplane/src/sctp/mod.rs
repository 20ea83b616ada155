//! SCTP load balancing: association tracking with IPVS's state machine, verification-tag
//! checks, multi-homed clients, CRC32c verification, and NAT/FullNAT handling of the
//! address parameters in INIT / INIT-ACK.
//!
//! # Per packet (`Sctp`, the pipeline's `L4Proto` for protocol 132)
//! Steps 1–3 are its `inspect`, 4 its `admit`, 5 its `miss`; the pipeline core does the
//! lookup between them.
//! 1. Fragments are dropped (`sctp_fragment`): the CRC32c covers the whole packet and
//!    cannot be checked or fixed from one fragment (IPVS has the kernel reassemble; SCTP
//!    itself fragments at the chunk level and does path-MTU discovery, RFC 9260 §6.9).
//! 2. The CRC32c is verified (`sctp_bad_crc32c`): a corrupt packet is never forwarded,
//!    even through an address-only rewrite that would not touch the checksum.
//! 3. The chunks are summarised ([`chunks::summarize`]): event, T bit, initiate tag.
//! 4. The 5-tuple finds the association's connection entry; its verification tag is
//!    checked against the tag records ([`tags`]) with RFC 9260 §8.5.1's rules (INIT
//!    carries 0; ABORT / SHUTDOWN COMPLETE with the T bit carry the sender's own tag;
//!    COOKIE ECHO during the handshake is authenticated by its cookie, so its tag is
//!    learned rather than checked). INIT and INIT-ACK teach the tags.
//! 5. No entry: only an INIT opens an association (IPVS `sctp_conn_schedule`); anything
//!    else is first looked up as another path of a known association (multi-homing, by
//!    VIP + ports + tag), else dropped as `sctp_not_init`.
//! 6. The generic established/new-flow code forwards it (NAT, DR, TUN, FullNAT, both
//!    families); the state hook is [`track_state`], the new-association hook
//!    [`on_new_association`].
//!
//! # Address parameters under NAT and FullNAT
//! IPVS and Linux NAT leave INIT / INIT-ACK alone, which leaks the real servers' addresses
//! to clients (who then try to reach them directly) and, with FullNAT, the clients'
//! addresses to real servers that have no route back. The IETF SCTP NAT work
//! (draft-ietf-tsvwg-natsupp §4, "an SCTP endpoint behind a NAT must not list its
//! addresses") asks endpoints behind the NAT to send no address list; the real servers
//! are unmodified, so the balancer enforces it for them:
//! - INIT-ACK (and a server's INIT) lose every IPv4 / IPv6 / host-name parameter: the client
//!   knows the server only as the VIP (RFC 9260 §5.1.2: without address parameters the
//!   source address is the peer's only address).
//! - A client's INIT under FullNAT loses them too (the real server sees only the local
//!   address). Under NAT it keeps the client's addresses of the service's family, so the
//!   real server accepts the client's other paths, and loses the other family's, which no
//!   NAT entry can translate.
//! - DR / TUN: nothing is rewritten (replies bypass the balancer).
//!
//! Chunk bytes change, so the CRC32c is recomputed; IP length and IPv4 checksum follow.
//!
//! # Multi-homing
//! A client packet from an address the 5-tuple lookup does not know finds its association by
//! (VIP, ports, verification tag) and is forwarded with that association's entry to the
//! same real server (NAT keeps the new source address, which the server knows from the INIT;
//! FullNAT maps it to the association's local address and port). Under NAT a real server
//! answering on another of the client's addresses is found the same way by (real server,
//! ports, tag). No extra connection entry is made per path: such packets cost three lookups
//! instead of one. FullNAT replies always go to the client's first address.
//!
//! # Cost
//! Established packets, 1 000 associations, one worker over in-memory ports (`uvs-bench
//! pipeline --protocols sctp`, bench/README.md "SCTP's tag checks read the hit in place"):
//! NAT IPv4 DATA ~105 ns against TCP's ~64 (1.6×), FullNAT (both ports rewritten, the
//! CRC32c summed once for both) ~108, IPv6 ~120. The extra over TCP is the tag-record
//! lookup (the association's hit is read in place, never decoded into a `Conn`) and the
//! CRC32c verification (one pass of the `crc32` instruction, ~7 ns on a 36-byte packet).
//! At a million associations (tables of 2^18 entries or more) the worker's burst
//! prefetches both lookups, the association's entry and its tag record
//! ([`tags::own_key`]): ~190–220 ns a packet against ~330–370 with neither prefetched and
//! ~100 for TCP (bench/README.md, "SCTP at a million associations").
//!
//! # Real servers' counts
//! An association counts on its real server as IPVS counts it: inactive from its INIT,
//! active while ESTABLISHED, inactive again once it shuts down or is aborted, and not at
//! all once its entry is gone (`crate::lifecycle::is_active`, the same rules as TCP's), so
//! `lc`, `wlc` and the other connection-count schedulers weigh SCTP services right
//! (`tests/sctp_associations.rs`, `associations_count_as_active_while_established`).
//!
//! # Not done yet
//! ASCONF (RFC 5061) chunks pass untranslated.

pub mod chunks;
pub mod state;
pub mod tags;

use uvs_conntrack::ConnView;
use uvs_conntrack::{Conn, Dir, FlowKey, Hit};
use uvs_wire::sctp::{chunk_type, SctpPacket, CHUNK_HEADER_LEN, HEADER_LEN};
use uvs_wire::Parsed;

use crate::pipeline::{Ctx, L4Proto, Packet, PROTO_SCTP};
use crate::tables::{Method, ServiceRt};
use crate::verdict::{DropReason, Verdict};

pub use chunks::{ChunkSummary, Strip};
pub use state::{SctpDir, SctpEvent, SctpState, SCTP_STATES};
use tags::Side;

/// SCTP (protocol 132) in the pipeline (`pipeline/proto.rs`).
pub(crate) struct Sctp;

impl L4Proto for Sctp {
    type Seen = ChunkSummary;

    #[inline]
    fn inspect(_ctx: &mut Ctx<'_>, pkt: &mut Packet<'_>) -> Result<ChunkSummary, Verdict> {
        inspect(pkt)
    }

    #[inline]
    fn admit(
        ctx: &mut Ctx<'_>,
        pkt: &mut Packet<'_>,
        chunks: &ChunkSummary,
        hit: &Hit,
    ) -> Result<(), Verdict> {
        admit(ctx, pkt, chunks, hit)
    }

    /// No entry: only an INIT opens an association (IPVS `sctp_conn_schedule`); anything
    /// else may be another path of a known association.
    #[inline]
    fn miss(
        ctx: &mut Ctx<'_>,
        pkt: &mut Packet<'_>,
        chunks: &ChunkSummary,
        _key: &FlowKey,
    ) -> Result<Option<Hit>, Verdict> {
        if chunks.first() == chunk_type::INIT {
            // RFC 9260 §8.5.1 A: a packet carrying INIT has verification tag 0.
            if pkt.p.sctp_vtag != 0 {
                return Err(Verdict::Drop(DropReason::SctpBadVtag));
            }
            return Ok(None);
        }
        other_path(ctx, pkt, chunks).map(Some)
    }

    #[inline]
    fn initial_state(svc: &ServiceRt, _p: &Parsed) -> (u8, u32) {
        initial_state(svc)
    }

    #[inline]
    fn opened(
        ctx: &mut Ctx<'_>,
        pkt: &mut Packet<'_>,
        conn: &Conn,
        deadline: u32,
    ) -> Result<(), Verdict> {
        on_new_association(ctx, pkt, conn, deadline)
    }

    /// An INIT (`Parsed::sctp_first_chunk` holds the event's chunk, set by `inspect`).
    #[inline(always)]
    fn opens_connection(p: &Parsed) -> bool {
        p.sctp_first_chunk == chunk_type::INIT
    }

    #[inline]
    fn track_state(ctx: &mut Ctx<'_>, svc: &ServiceRt, p: &Parsed, hit: &Hit) {
        track_state(ctx, svc, p, hit)
    }
}

/// Steps 1–3 of the module docs: the checks before the connection table.
#[inline]
fn inspect(pkt: &mut Packet<'_>) -> Result<ChunkSummary, Verdict> {
    let p = &pkt.p;
    let drop = |r| Err(Verdict::Drop(r));
    if p.is_fragment() {
        return drop(DropReason::SctpFragment);
    }
    let Some(sctp) = pkt.buf.get(usize::from(p.l4_off)..p.l3_end()) else {
        return drop(DropReason::SctpMalformed);
    };
    if sctp.len() < HEADER_LEN + CHUNK_HEADER_LEN {
        return drop(DropReason::SctpMalformed);
    }
    if !SctpPacket::new_unchecked(sctp).verify_checksum() {
        return drop(DropReason::SctpBadCrc);
    }
    let chunks = chunks::summarize(sctp).map_err(Verdict::Drop)?;
    // The state hook reads the event from here (see `track_state`).
    pkt.p.sctp_first_chunk = chunks.event_chunk();
    Ok(chunks)
}

/// Checks a packet against its association (`own`: the association's entry, the one its
/// tag records name, whichever path the packet takes) and applies the address-parameter
/// policy to an INIT / INIT-ACK.
#[inline]
fn admit(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    chunks: &ChunkSummary,
    own: &Hit,
) -> Result<(), Verdict> {
    let tables = ctx.tables;
    // `own` is read in place, not decoded into a `Conn`: copying its addresses out with
    // 16-byte loads waited for the lookup's narrower stores of them on every packet.
    let svc = tables.service(own.service());
    // An INIT on an entry the established path retires for a new association (a closed
    // one: the client reused its port; or one whose real server is gone) belongs to that
    // new association, whose entry learns its tags (`on_new_association`). Learnt here for
    // the old entry, the tag's record would hold the new association's record key, and
    // every INIT of it would be refused as a bad tag until that record expired.
    if chunks.first() == chunk_type::INIT
        && own.dir == Dir::Original
        && svc.is_some_and(|s| crate::lifecycle::reschedules(&ctx.settings, s, own))
    {
        return if pkt.p.sctp_vtag == 0 {
            Ok(())
        } else {
            Err(Verdict::Drop(DropReason::SctpBadVtag))
        };
    }
    verify_tag(ctx, svc.map(|s| &**s), &pkt.p, chunks, own, own.dir).map_err(Verdict::Drop)?;
    if matches!(chunks.first(), chunk_type::INIT | chunk_type::INIT_ACK) {
        strip_for_method(pkt, own.method(), own.dir);
    }
    Ok(())
}

/// Checks the packet's verification tag against the association and learns the tags the
/// handshake announces (RFC 9260 §5.1, §8.5.1).
fn verify_tag(
    ctx: &mut Ctx<'_>,
    svc: Option<&ServiceRt>,
    p: &Parsed,
    chunks: &ChunkSummary,
    conn: &Hit,
    dir: Dir,
) -> Result<(), DropReason> {
    let (own, other) = match dir {
        Dir::Original => (Side::ToServer, Side::ToClient),
        Dir::Reply => (Side::ToClient, Side::ToServer),
    };
    // A packet whose service is gone keeps IPVS's default timeouts.
    let defaults;
    let timeouts = match svc {
        Some(s) => &s.timeouts,
        None => {
            defaults = uvs_conntrack::Timeouts::default();
            &defaults
        }
    };
    let old = SctpState::from_u8(conn.state());
    let next = state::transition(old, sctp_dir(dir, conn.method()), chunks.event());
    let timeout = state::timeout_ms(next, timeouts);
    let deadline = ctx.now.wrapping_add(timeout);
    let vtag = p.sctp_vtag;
    match chunks.first() {
        // A: INIT carries tag 0; its initiate tag is what the peer must put on packets
        // towards the INIT's sender.
        chunk_type::INIT => {
            if vtag != 0 {
                return Err(DropReason::SctpBadVtag);
            }
            tags::learn(ctx, conn, other, chunks.initiate_tag(), deadline)
        }
        chunk_type::INIT_ACK => {
            if !tags::check(ctx, conn, own, vtag, timeout) {
                return Err(DropReason::SctpBadVtag);
            }
            tags::learn(ctx, conn, other, chunks.initiate_tag(), deadline)
        }
        _ if chunks.reflected_tag() => {
            // B, C: the T bit says the tag is the sender's own.
            if tags::check(ctx, conn, other, vtag, timeout) {
                Ok(())
            } else {
                Err(DropReason::SctpBadVtag)
            }
        }
        _ if tags::check(ctx, conn, own, vtag, timeout) => Ok(()),
        // D: COOKIE ECHO is verified by its cookie (RFC 9260 §5.2.4), not by the tag. During
        // the handshake its tag is the one the client took from the INIT-ACK it accepted —
        // the only one for DR/TUN, whose INIT-ACK bypasses the balancer.
        chunk_type::COOKIE_ECHO if old.is_handshake() => {
            tags::learn(ctx, conn, own, vtag, deadline)
        }
        _ => Err(DropReason::SctpBadVtag),
    }
}

/// IPVS's direction for the transition table: INPUT_ONLY when replies bypass the balancer.
#[inline]
fn sctp_dir(dir: Dir, method: u8) -> SctpDir {
    match (dir, Method::from_u8(method)) {
        (Dir::Reply, _) => SctpDir::Output,
        (Dir::Original, Some(Method::Dr | Method::Tun)) => SctpDir::InputOnly,
        (Dir::Original, _) => SctpDir::Input,
    }
}

/// Removes the address parameters NAT/FullNAT cannot carry from an INIT / INIT-ACK (see
/// the module docs for the policy). Returns the bytes removed.
fn strip_for_method(pkt: &mut Packet<'_>, method: u8, dir: Dir) -> usize {
    let how = match (Method::from_u8(method), dir) {
        (Some(Method::Dr | Method::Tun) | None, _) => return 0,
        (_, Dir::Reply) | (Some(Method::FullNat), Dir::Original) => Strip::All,
        (_, Dir::Original) => Strip::OtherFamily,
    };
    chunks::strip_addresses(pkt, how)
}

/// A packet with no connection entry that is not an INIT: another path of a multi-homed
/// association (its entry, admitted, for this path), or out of the blue.
#[cold]
fn other_path(
    ctx: &mut Ctx<'_>,
    pkt: &mut Packet<'_>,
    chunks: &ChunkSummary,
) -> Result<Hit, Verdict> {
    let tables = ctx.tables;
    let p = pkt.p;
    let v6 = p.l3 == uvs_wire::L3::V6;
    // A client's other address, towards the VIP.
    let to_server = tags::to_server_key(v6, p.dst, p.dport, p.sport, p.sctp_vtag);
    // A real server's packet (NAT) towards another of the client's addresses.
    let to_client = tags::to_client_key(v6, p.src, p.sport, p.dport, p.sctp_vtag);
    for (key, dir) in [(to_server, Dir::Original), (to_client, Dir::Reply)] {
        let Some(rec) = ctx.conns.lookup(&key, ctx.now) else {
            continue;
        };
        let rec = rec.conn();
        let Some(hit) = ctx.conns.lookup(&tags::primary_key(&rec), ctx.now) else {
            continue;
        };
        if hit.dir != dir || !tags::belongs(&rec, &hit) {
            continue;
        }
        admit(ctx, pkt, chunks, &hit)?;
        // Forward with the association's entry, but towards the address this packet
        // really uses on the client side (the reply route follows `orig.src`).
        if dir == Dir::Reply {
            let mut conn = hit.conn();
            conn.orig.src = p.dst;
            return Ok(Hit::new(hit.id, hit.dir, &conn, hit.deadline));
        }
        return Ok(hit);
    }
    let svc = tables.service_for(crate::pipeline::ip(v6, p.dst), PROTO_SCTP, p.dport);
    Err(Verdict::Drop(if svc.is_some() {
        DropReason::SctpNotInit
    } else {
        DropReason::NoService
    }))
}

/// Initial state and timeout of a new association (its first packet is an INIT from the
/// client: IPVS INPUT / INPUT_ONLY both go NONE → INIT1).
pub fn initial_state(svc: &ServiceRt) -> (u8, u32) {
    let s = SctpState::Init1;
    (s as u8, state::timeout_ms(s, &svc.timeouts))
}

/// New-flow hook, after the connection entry is stored and before the INIT is forwarded:
/// remembers the INIT's initiate tag (the tag the real server must use) and applies the
/// address-parameter policy. On failure the INIT is dropped; the client's retransmission
/// finds the entry and tries again.
pub fn on_new_association(
    ctx: &Ctx<'_>,
    pkt: &mut Packet<'_>,
    conn: &Conn,
    deadline: u32,
) -> Result<(), Verdict> {
    let p = &pkt.p;
    let tag = pkt
        .buf
        .get(usize::from(p.l4_off)..p.l3_end().min(pkt.len))
        .and_then(|sctp| {
            let pkt = SctpPacket::new_checked(sctp).ok()?;
            let init = pkt.chunks().next()?.ok()?;
            uvs_wire::sctp::init::initiate_tag(init.value)
        })
        .unwrap_or(0);
    tags::learn(ctx, conn, Side::ToClient, tag, deadline).map_err(Verdict::Drop)?;
    strip_for_method(pkt, conn.method, Dir::Original);
    Ok(())
}

/// State hook of the established path: IPVS's transition for the packet's event
/// (`Parsed::sctp_first_chunk`, which `inspect` set to the event's chunk type) and the
/// new state's timeout, written through [`crate::lifecycle::transition`] (compare-and-set;
/// an association counts active on its real server while ESTABLISHED, as IPVS counts it).
#[inline]
pub fn track_state(ctx: &mut Ctx<'_>, svc: &ServiceRt, p: &Parsed, hit: &Hit) {
    let event = SctpEvent::of_chunk(p.sctp_first_chunk);
    let dir = sctp_dir(hit.dir, hit.method());
    let timeouts = &svc.timeouts;
    if crate::lifecycle::transition(
        ctx.conns,
        svc,
        hit,
        ctx.now,
        |s| state::transition(SctpState::from_u8(s), dir, event) as u8,
        |s| state::timeout_ms(SctpState::from_u8(s), timeouts),
        |_, _| true,
    ) {
        ctx.sync.note(ctx.worker, hit.id);
    }
}

/// The state name of a stored SCTP state byte, as `ipvsadm -Lnc` shows it.
pub fn state_name(state: u8) -> &'static str {
    SctpState::from_u8(state).name()
}

/// True for tag records (entries control must not count, list or release; they also carry
/// `conn_flags::TEMPLATE`).
pub fn is_tag_record(c: &Conn) -> bool {
    c.flags & tags::TAG_RECORD != 0
}
