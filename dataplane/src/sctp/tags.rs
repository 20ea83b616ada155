//! Verification tags, kept as *tag records* in the shared connection table.
//!
//! # Why records in the connection table
//! A `Conn` has no room for two 32-bit tags, the table is another engineer's (no new
//! fields), and both directions of an association arrive on different workers, so the tags
//! must live somewhere every worker reads without a lock. The table already is that place:
//! lock-free, bounded, with deadlines and expiry. Each learned tag becomes one extra entry
//! whose *keys* carry the tag, so "is this tag valid" is one lookup and multi-homing
//! ("which association does a packet from an unknown address belong to") is the same
//! lookup. Tag changes (a restart, several INIT-ACKs) simply add records; stale ones expire.
//!
//! # Record layout
//! A record is a `Conn` with a synthetic protocol number (251/252: never a protocol the
//! pipeline looks up, it drops everything but TCP/UDP/SCTP/ICMP first) and the flags
//! `TEMPLATE | TAG_RECORD`, so control's accounting, listings and `expire_nodest_conn`
//! skip it as they skip persistence templates.
//!
//! | record | `orig` key (looked up)                              | `reply` key (payload)                 |
//! |--------|-----------------------------------------------------|---------------------------------------|
//! | to-server (252) | VIP, tag, client port → VIP port           | first client address, tag, ports      |
//! | to-client (251) | real server, tag, real port → port it sees | first client address, tag, ports      |
//!
//! The to-server tag is the one packets *towards the real server* carry (the INIT-ACK's
//! initiate tag); the to-client tag is the INIT's initiate tag (RFC 9260 §5.1). A client
//! packet is valid when the to-server record of its (VIP, ports, tag) exists and names the
//! association's first client address; a real server's packet likewise with the to-client
//! record. A packet from another address of the client (path failover) misses the 5-tuple
//! lookup but finds the to-server record, whose payload names the association's first
//! address and so its connection entry and real server.
//!
//! Cost: one extra lookup per packet and two extra entries per association. Records take
//! the association's current timeout whenever they are checked (written at most about once
//! a second, like connection entries). At table scale the worker's burst prepares each
//! packet's record lookup ahead ([`own_key`]), as it does the association's, so the two
//! records' misses overlap with other frames' work (bench/README.md, "SCTP at a million
//! associations").

use uvs_conntrack::ConnView;
use uvs_conntrack::{Conn, ConnId, Dir, FlowKey, Hit, InsertError, Prepared};
use uvs_wire::Parsed;

use crate::pipeline::{conn_flags, Ctx};
use crate::verdict::DropReason;

/// Protocol number of to-server tag records (IANA "experimentation", never on our path).
pub const PROTO_TAG_TO_SERVER: u8 = 252;
/// Protocol number of to-client tag records.
pub const PROTO_TAG_TO_CLIENT: u8 = 251;
/// `Conn::flags` bit of a tag record (set together with `conn_flags::TEMPLATE`).
pub const TAG_RECORD: u8 = 0x40;

/// Which direction's tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Carried by packets towards the real server (client → VIP).
    ToServer,
    /// Carried by packets towards the client (real server → client).
    ToClient,
}

#[inline]
fn tag_addr(tag: u32) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&tag.to_be_bytes());
    a
}

/// The key a client packet to `vip:vport` from port `cport` with `tag` looks up, whatever
/// its source address.
#[inline]
pub fn to_server_key(v6: bool, vip: [u8; 16], vport: u16, cport: u16, tag: u32) -> FlowKey {
    FlowKey {
        proto: PROTO_TAG_TO_SERVER,
        v6,
        src: vip,
        dst: tag_addr(tag),
        sport: cport,
        dport: vport,
    }
}

/// The key a real server's packet from `real:rport` to port `dport` with `tag` looks up,
/// whatever its destination address.
#[inline]
pub fn to_client_key(v6: bool, real: [u8; 16], rport: u16, dport: u16, tag: u32) -> FlowKey {
    FlowKey {
        proto: PROTO_TAG_TO_CLIENT,
        v6,
        src: real,
        dst: tag_addr(tag),
        sport: rport,
        dport,
    }
}

/// The record key of `side` for the association of `conn` (a decoded `Conn` or, on the
/// established path, the lookup's `Hit` read in place).
#[inline]
pub fn key_for(conn: &impl ConnView, side: Side, tag: u32) -> FlowKey {
    match side {
        Side::ToServer => to_server_key(
            conn.v6(),
            *conn.orig_dst(),
            conn.orig_dport(),
            conn.orig_sport(),
            tag,
        ),
        Side::ToClient => to_client_key(
            conn.v6(),
            *conn.reply_src(),
            conn.reply_sport(),
            conn.reply_dport(),
            tag,
        ),
    }
}

/// The record key [`check`] looks up for a packet that carries its own side's tag (no T
/// bit; not an INIT) when the packet is its association's `dir` tuple: worked out from
/// the packet alone, so a worker can start loading the record with the packet's
/// connection entry, before the lookup that says which direction it is (the index lane's
/// direction is the guess; [`ConnTable::lookup_hinted`] checks the key).
///
/// [`ConnTable::lookup_hinted`]: uvs_conntrack::ConnTable::lookup_hinted
#[inline]
pub fn own_key(p: &Parsed, dir: Dir) -> FlowKey {
    let v6 = p.l3 == uvs_wire::L3::V6;
    match dir {
        Dir::Original => to_server_key(v6, p.dst, p.dport, p.sport, p.sctp_vtag),
        Dir::Reply => to_client_key(v6, p.src, p.sport, p.dport, p.sctp_vtag),
    }
}

/// The record for `conn`'s `side` tag.
pub fn record(conn: &impl ConnView, side: Side, tag: u32) -> Conn {
    let orig = key_for(conn, side, tag);
    Conn {
        orig,
        reply: FlowKey {
            proto: orig.proto,
            v6: orig.v6,
            src: *conn.orig_src(),
            dst: tag_addr(tag),
            sport: conn.orig_sport(),
            dport: conn.orig_dport(),
        },
        service: conn.service(),
        real: conn.real(),
        method: conn.method(),
        state: 0,
        flags: conn_flags::TEMPLATE | TAG_RECORD,
    }
}

/// Does `rec` (a record's stored value) belong to the association of `conn`? Both are
/// read in place, the addresses compared as two 8-byte words each
/// ([`uvs_ip::same_addr_bytes`]).
#[inline]
pub fn belongs(rec: &impl ConnView, conn: &impl ConnView) -> bool {
    rec.flags() & TAG_RECORD != 0
        && uvs_ip::same_addr_bytes(rec.reply_src(), conn.orig_src())
        && rec.reply_sport() == conn.orig_sport()
        && rec.reply_dport() == conn.orig_dport()
        && rec.service() == conn.service()
}

/// Remembers `tag` for `side` until `deadline`. An existing record for the same tag and
/// association is fine (a retransmitted INIT / INIT-ACK).
pub fn learn(
    ctx: &Ctx<'_>,
    conn: &impl ConnView,
    side: Side,
    tag: u32,
    deadline: u32,
) -> Result<(), DropReason> {
    let rec = record(conn, side, tag);
    match ctx.conns.insert(&rec, ctx.now, deadline) {
        Ok(_) => Ok(()),
        Err(InsertError::Exists(id)) => match ctx.conns.get(id) {
            Some((have, _)) if belongs(&have, conn) => {
                ctx.conns.update(id, 0, deadline);
                Ok(())
            }
            // Another association already uses this (VIP, ports, tag): the tag cannot tell
            // them apart, so this packet is refused rather than mixed up.
            _ => Err(DropReason::SctpBadVtag),
        },
        Err(InsertError::Clash(_)) => Err(DropReason::SctpBadVtag),
        Err(_) => Err(DropReason::TableFull),
    }
}

/// Is `tag` the association's `side` tag? Refreshes the record to expire with the
/// association (`timeout` ms from now), writing only when that moves its deadline by
/// more than a second. A tag this worker found valid for the same association entry (id
/// and generation) and side less than [`TagCache::FRESH_MS`] ago is taken as valid
/// without the record's lookup: the record cannot have gone meanwhile unless the
/// association's entry went too (records expire with it, refreshed here at least once a
/// [`TagCache::FRESH_MS`] while packets flow), and then no packet reaches this check with
/// its id.
#[inline]
pub fn check(ctx: &mut Ctx<'_>, conn: &Hit, side: Side, tag: u32, timeout: u32) -> bool {
    if ctx.sctp_tags.fresh(conn.id, side, tag, ctx.now) {
        return true;
    }
    // The worker's burst may have loaded this record ahead (`own_key`); the hint is used
    // only if it is this key's.
    let key = key_for(conn, side, tag);
    let Some(hit) = ctx
        .conns
        .lookup_hinted(&key, ctx.sctp_tags.hint.as_ref(), ctx.now)
    else {
        return false;
    };
    if !belongs(&hit, conn) {
        return false;
    }
    refresh(ctx, &hit, timeout);
    ctx.sctp_tags.remember(conn.id, side, tag, ctx.now);
    true
}

/// One worker's memory of the tags [`check`] found valid lately: a direct-mapped array
/// indexed by the association entry's slot and the side, so an established association's
/// packets skip the tag record's lookup (a second hash-table probe per packet) for
/// [`FRESH_MS`](Self::FRESH_MS) at a time.
pub struct TagCache {
    lines: Box<[TagLine]>,
    /// The record lookup the worker's burst prepared for the packet in hand
    /// ([`own_key`]), or `None`: [`check`] finishes it if it is the key it looks up.
    pub(crate) hint: Option<Prepared>,
}

#[derive(Clone, Copy, Default)]
struct TagLine {
    id: Option<ConnId>,
    tag: u32,
    to_client: bool,
    until: u32,
}

impl Default for TagCache {
    fn default() -> TagCache {
        TagCache {
            lines: vec![TagLine::default(); Self::LINES].into_boxed_slice(),
            hint: None,
        }
    }
}

impl TagCache {
    /// Lines (a power of two): 64 KiB a worker.
    const LINES: usize = 4096;
    /// How long a checked tag is taken as valid without its record's lookup.
    pub const FRESH_MS: u32 = 1000;

    /// The line of (`id`, `side`): a multiplicative hash of the slot, since an
    /// association's slots are not spread evenly (its two tag records take slots beside
    /// its own).
    #[inline]
    fn line(id: ConnId, side: Side) -> usize {
        let h = (id.index() as u64 * 2 + u64::from(side == Side::ToClient))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> (64 - Self::LINES.trailing_zeros())) as usize
    }

    /// Whether `tag` was found valid for `side` of the association `id` less than
    /// [`FRESH_MS`](Self::FRESH_MS) ago, by this worker.
    #[inline]
    pub fn fresh(&self, id: ConnId, side: Side, tag: u32, now: u32) -> bool {
        let l = &self.lines[Self::line(id, side)];
        l.id == Some(id)
            && l.tag == tag
            && l.to_client == (side == Side::ToClient)
            && (l.until.wrapping_sub(now) as i32) > 0
    }

    /// Notes that `tag` is valid for `side` of the association `id` as of `now`.
    #[inline]
    pub fn remember(&mut self, id: ConnId, side: Side, tag: u32, now: u32) {
        self.lines[Self::line(id, side)] = TagLine {
            id: Some(id),
            tag,
            to_client: side == Side::ToClient,
            until: now.wrapping_add(Self::FRESH_MS),
        };
    }
}

/// Moves a record's deadline to `now + timeout` when it is more than a second off.
#[inline]
pub fn refresh(ctx: &Ctx<'_>, rec: &uvs_conntrack::Hit, timeout: u32) {
    let left = rec.deadline.wrapping_sub(ctx.now);
    if left.abs_diff(timeout) > 1000 {
        ctx.conns.update(rec.id, 0, ctx.now.wrapping_add(timeout));
    }
}

/// The connection key of the association a record belongs to, seen from `side`: the
/// original tuple (first client address → VIP) for a to-server record, the reply tuple
/// (real server → first client address) for a to-client record. For FullNAT the latter
/// names the client, not the local address, so it finds nothing: a FullNAT real server
/// only ever talks to the local address.
pub fn primary_key(rec: &Conn) -> FlowKey {
    let o = &rec.orig;
    match o.proto {
        PROTO_TAG_TO_SERVER => FlowKey {
            proto: crate::pipeline::PROTO_SCTP,
            v6: o.v6,
            src: rec.reply.src,
            dst: o.src,
            sport: o.sport,
            dport: o.dport,
        },
        _ => FlowKey {
            proto: crate::pipeline::PROTO_SCTP,
            v6: o.v6,
            src: o.src,
            dst: rec.reply.src,
            sport: o.sport,
            dport: o.dport,
        },
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn ids() -> (ConnId, ConnId) {
        // Two ids from a real table: the same slot reused is a different id.
        let t = uvs_conntrack::ConnTable::new(16);
        let c = Conn {
            orig: FlowKey::v4(132, [198, 18, 0, 2], 5000, [198, 18, 100, 1], 5001),
            reply: FlowKey::v4(132, [198, 18, 1, 11], 5001, [198, 18, 0, 2], 5000),
            service: 0,
            real: 0,
            method: 0,
            state: 1,
            flags: 0,
        };
        let a = t.insert(&c, 0, 1000).unwrap();
        assert!(t.remove(a));
        let b = t.insert(&c, 0, 1000).unwrap();
        assert_ne!(a, b);
        (a, b)
    }

    #[test]
    fn a_remembered_tag_is_fresh_for_its_association_side_and_tag_only_and_for_a_second() {
        let (a, b) = ids();
        let mut cache = TagCache::default();
        let now = u32::MAX - 300; // across the clock's wrap
        assert!(!cache.fresh(a, Side::ToServer, 7, now));
        cache.remember(a, Side::ToServer, 7, now);
        assert!(cache.fresh(a, Side::ToServer, 7, now));
        assert!(cache.fresh(
            a,
            Side::ToServer,
            7,
            now.wrapping_add(TagCache::FRESH_MS - 1)
        ));
        assert!(!cache.fresh(a, Side::ToServer, 7, now.wrapping_add(TagCache::FRESH_MS)));
        assert!(!cache.fresh(a, Side::ToServer, 8, now), "another tag");
        assert!(!cache.fresh(a, Side::ToClient, 7, now), "the other side");
        assert!(
            !cache.fresh(b, Side::ToServer, 7, now),
            "the slot's next connection"
        );
        cache.remember(a, Side::ToClient, 9, now);
        assert!(cache.fresh(a, Side::ToServer, 7, now) && cache.fresh(a, Side::ToClient, 9, now));
    }
}
