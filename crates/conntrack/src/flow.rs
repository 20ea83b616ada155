//! The values the table stores and hands back: flow keys, connections, ids, hits, errors.

use thiserror::Error;
use uvs_ip::widen_v4;

use crate::layout::{
    ctl_deadline, ctl_pack, ctl_state, encode_conn, meta_flags, meta_method, meta_proto, meta_real,
    meta_service, CTL, MAX_WORDS, META,
};

/// One direction of a flow as it appears on the wire: protocol, source, destination.
///
/// For IPv4 only the first 4 bytes of `src`/`dst` take part in matching; [`ConnTable::insert`]
/// refuses keys whose other 12 bytes are not zero so that what comes back equals what went in.
///
/// [`ConnTable::insert`]: crate::ConnTable::insert
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1/58 ICMP).
    pub proto: u8,
    /// Address family: false IPv4, true IPv6.
    pub v6: bool,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Source port; for ICMP echo the identifier, as IPVS/conntrack do.
    pub sport: u16,
    pub dport: u16,
}

impl FlowKey {
    /// An IPv4 key with the unused address bytes zeroed.
    pub fn v4(proto: u8, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Self {
        FlowKey {
            proto,
            v6: false,
            src: widen_v4(src),
            dst: widen_v4(dst),
            sport,
            dport,
        }
    }

    /// An IPv6 key.
    pub fn v6(proto: u8, src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> Self {
        FlowKey {
            proto,
            v6: true,
            src,
            dst,
            sport,
            dport,
        }
    }

    /// The same flow seen from the other end (source and destination swapped).
    pub fn reversed(&self) -> Self {
        FlowKey {
            proto: self.proto,
            v6: self.v6,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }

    /// True when an IPv4 key has nothing in address bytes 4..16.
    #[inline]
    pub(crate) fn is_canonical(&self) -> bool {
        // Word loads: a byte loop here was ~20 instructions per key, 4 keys per insert.
        let rest = |a: &[u8; 16]| {
            u64::from(u32::from_ne_bytes([a[4], a[5], a[6], a[7]]))
                | u64::from_ne_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]])
        };
        self.v6 || rest(&self.src) | rest(&self.dst) == 0
    }
}

/// Which of a connection's two tuples a packet matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client → virtual service (IPVS "input").
    Original,
    /// Real server → local address (IPVS "output").
    Reply,
}

/// A connection as the dataplane stores it. `Copy`; the table keeps a compact encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Conn {
    /// Client → VIP as received from the client.
    pub orig: FlowKey,
    /// Real server → local address as received from the real server; the local address is
    /// the client for NAT/DR/TUN and a local-pool address:port for FullNAT.
    pub reply: FlowKey,
    /// Index of the virtual service in the published config snapshot.
    pub service: u16,
    /// Index of the real server in the published config snapshot.
    pub real: u16,
    /// Forwarding method id (the dataplane defines the numbering).
    pub method: u8,
    /// Protocol state byte (e.g. [`crate::tcp::TcpState`] as `u8`). Values
    /// [`STATE_RESERVED_MIN`]`..=255` are the table's own markers and are refused.
    pub state: u8,
    /// Dataplane flags, stored and returned verbatim.
    pub flags: u8,
}

/// Lowest state value the table reserves for itself (0xFE marks an unfinished insert).
pub const STATE_RESERVED_MIN: u8 = 0xFE;

/// Names one stored connection: the slot, the family storage and the slot's generation, so an
/// id kept past the connection's removal never reaches the next occupant of the slot (for
/// 2^22 reuses of that slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    pub(crate) fn new(v6: bool, slot: u32, gen: u32) -> Self {
        ConnId(((gen as u64) << 41) | ((v6 as u64) << 32) | slot as u64)
    }
    pub(crate) fn slot(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    pub(crate) fn gen(self) -> u32 {
        (self.0 >> 41) as u32
    }
    /// Whether the connection lives in the IPv6 storage.
    pub fn is_v6(self) -> bool {
        (self.0 >> 32) & 1 == 1
    }
    /// The slot the connection occupies in its family's storage (< `capacity_of(v6)`): for
    /// side tables that keep more per connection than the entry holds (the SYN proxy's
    /// sequence deltas). A later connection may reuse the slot once this one is gone.
    pub fn index(self) -> usize {
        self.slot()
    }
    /// The raw 64-bit form (for logs and admin output).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// What the packet path reads of a connection: from a decoded [`Conn`] (a new flow), or
/// straight from a lookup's [`Hit`] (an established packet), which decodes only the fields
/// that are read. The dataplane's forwarding code is generic over it so that neither has
/// to be turned into the other.
pub trait ConnView {
    fn service(&self) -> u16;
    fn real(&self) -> u16;
    fn method(&self) -> u8;
    fn flags(&self) -> u8;
    fn state(&self) -> u8;
    /// Both tuples' protocol.
    fn proto(&self) -> u8;
    /// Both tuples' family.
    fn v6(&self) -> bool;
    fn orig_src(&self) -> &[u8; 16];
    fn orig_dst(&self) -> &[u8; 16];
    fn orig_sport(&self) -> u16;
    fn orig_dport(&self) -> u16;
    fn reply_src(&self) -> &[u8; 16];
    fn reply_dst(&self) -> &[u8; 16];
    fn reply_sport(&self) -> u16;
    fn reply_dport(&self) -> u16;
    /// The whole connection.
    fn conn(&self) -> Conn;
}

impl ConnView for Conn {
    #[inline(always)]
    fn service(&self) -> u16 {
        self.service
    }
    #[inline(always)]
    fn real(&self) -> u16 {
        self.real
    }
    #[inline(always)]
    fn method(&self) -> u8 {
        self.method
    }
    #[inline(always)]
    fn flags(&self) -> u8 {
        self.flags
    }
    #[inline(always)]
    fn state(&self) -> u8 {
        self.state
    }
    #[inline(always)]
    fn proto(&self) -> u8 {
        self.orig.proto
    }
    #[inline(always)]
    fn v6(&self) -> bool {
        self.orig.v6
    }
    #[inline(always)]
    fn orig_src(&self) -> &[u8; 16] {
        &self.orig.src
    }
    #[inline(always)]
    fn orig_dst(&self) -> &[u8; 16] {
        &self.orig.dst
    }
    #[inline(always)]
    fn orig_sport(&self) -> u16 {
        self.orig.sport
    }
    #[inline(always)]
    fn orig_dport(&self) -> u16 {
        self.orig.dport
    }
    #[inline(always)]
    fn reply_src(&self) -> &[u8; 16] {
        &self.reply.src
    }
    #[inline(always)]
    fn reply_dst(&self) -> &[u8; 16] {
        &self.reply.dst
    }
    #[inline(always)]
    fn reply_sport(&self) -> u16 {
        self.reply.sport
    }
    #[inline(always)]
    fn reply_dport(&self) -> u16 {
        self.reply.dport
    }
    #[inline(always)]
    fn conn(&self) -> Conn {
        *self
    }
}

/// A successful lookup: the connection's id, the tuple the key matched, its deadline, and
/// what the entry held when the lookup read and validated it (one consistent copy, taken
/// under the entry's seqlock): its `meta` and ports words as they are, decoded field by
/// field where they are read, and the four addresses. The established path reads a few
/// fields ([`state`](Hit::state), [`reply_src`](Hit::reply_src), ...); the rest of the code
/// takes the whole connection with [`conn`](Hit::conn). Decoding the whole `Conn` (two
/// `FlowKey`s with their zero-filled 16-byte addresses, byte by byte) inside every lookup
/// cost it ~28 instructions more (IPv4 TCP, callgrind) for fields the established path
/// does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub id: ConnId,
    /// Which tuple the looked-up key matched.
    pub dir: Dir,
    /// Tick at which the entry expires unless updated.
    pub deadline: u32,
    /// The protocol state from `ctl`.
    state: u8,
    /// The entry's `meta` word: proto ‖ flags ‖ method ‖ 0 ‖ service ‖ real.
    meta: u64,
    /// Original sport ‖ dport ‖ reply sport ‖ dport.
    ports: u64,
    /// Original src, dst, reply src, dst, as a `FlowKey` holds them (IPv4: 4 bytes, then
    /// zeros). Decoded here, in the lookup, each address as one 128-bit value (a byte swap
    /// and one store or two), so the established path reads them as they are, by
    /// reference. Decoded where they were read instead, an address built from narrower
    /// stores just before the 16-byte loads of it (a compare, a copy) made each load wait
    /// for those stores to retire (a store-forwarding stall: +3.5 ns a packet at 1 000
    /// IPv6 flows, a quarter of `established`'s samples at IPv4 in a first form).
    addr: [[u8; 16]; 4],
}

impl Hit {
    /// A hit on the entry copy `w` (validated: `w[CTL]` the `ctl` it was read under) of an
    /// entry with `AW` address words per tuple.
    #[inline(always)]
    pub(crate) fn from_words<const AW: usize>(id: ConnId, dir: Dir, w: &[u64; MAX_WORDS]) -> Self {
        let addr = if AW == 1 {
            // bytes 0..4 = the address big-endian, the rest zero
            let a = |x: u32| u128::from(x.swap_bytes()).to_le_bytes();
            let (o, r) = (w[2], w[3]);
            [
                a((o >> 32) as u32),
                a(o as u32),
                a((r >> 32) as u32),
                a(r as u32),
            ]
        } else {
            let a = |i: usize| ((u128::from(w[i]) << 64) | u128::from(w[i + 1])).to_be_bytes();
            [a(2), a(4), a(6), a(8)]
        };
        Hit {
            id,
            dir,
            deadline: ctl_deadline(w[CTL]),
            state: ctl_state(w[CTL]),
            meta: w[META],
            ports: w[2 + 2 * AW],
            addr,
        }
    }

    /// A hit on `conn` as the table would give it for its entry `id` (which must be of
    /// `conn`'s family): for code that holds a connection it just inserted and hands it on
    /// where a looked-up one goes (a first fragment's new flow, for its later fragments).
    pub fn new(id: ConnId, dir: Dir, conn: &Conn, deadline: u32) -> Self {
        debug_assert_eq!(id.is_v6(), conn.orig.v6, "an id of the connection's family");
        let ctl = ctl_pack(id.gen(), conn.state, deadline);
        if conn.orig.v6 {
            let mut w = encode_conn::<4>(conn);
            w[CTL] = ctl;
            Hit::from_words::<4>(id, dir, &w)
        } else {
            let mut w = encode_conn::<1>(conn);
            w[CTL] = ctl;
            Hit::from_words::<1>(id, dir, &w)
        }
    }

    /// The entry's `meta` word as the lookup read it.
    #[inline(always)]
    pub(crate) fn meta(&self) -> u64 {
        self.meta
    }

    /// The connection's original tuple (client → virtual service).
    #[inline]
    pub fn orig(&self) -> FlowKey {
        self.key(0, (self.ports >> 32) as u32)
    }
    /// The connection's reply tuple (real server → local address).
    #[inline]
    pub fn reply(&self) -> FlowKey {
        self.key(2, self.ports as u32)
    }
    #[inline]
    fn key(&self, at: usize, ports: u32) -> FlowKey {
        FlowKey {
            proto: self.proto(),
            v6: self.v6(),
            src: self.addr[at],
            dst: self.addr[at + 1],
            sport: (ports >> 16) as u16,
            dport: ports as u16,
        }
    }
}

/// A connection as [`ConnTable::finish_lane`](crate::ConnTable::finish_lane) found it: its
/// entry's words as read (validated, as a [`Hit`]'s are), not decoded. A caller that needs a
/// few of its fields reads just those: the decode into a [`Hit`] (its four addresses
/// widened to 16 bytes and stored) was a fifth of an established lookup's instructions.
/// The address accessors are per family: `_v4` ones of an IPv4 entry, `_v6` of an IPv6 one.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Which tuple the looked-up key matched.
    pub dir: Dir,
    v6: bool,
    /// Original sport ‖ dport ‖ reply sport ‖ dport: `w`'s word after the addresses, where
    /// that is depends on the family.
    ports: u64,
    w: [u64; MAX_WORDS],
}

impl Entry {
    /// The entry copy `w` (validated) of an entry with `AW` address words per tuple.
    #[inline(always)]
    pub(crate) fn from_words<const AW: usize>(dir: Dir, w: [u64; MAX_WORDS]) -> Self {
        Entry {
            dir,
            v6: AW != 1,
            ports: w[2 + 2 * AW],
            w,
        }
    }
    /// Tick at which the entry expires unless updated.
    #[inline(always)]
    pub fn deadline(&self) -> u32 {
        ctl_deadline(self.w[CTL])
    }
    /// [`Conn::state`] when the lookup read the entry.
    #[inline(always)]
    pub fn state(&self) -> u8 {
        ctl_state(self.w[CTL])
    }
    /// [`Conn::service`].
    #[inline(always)]
    pub fn service(&self) -> u16 {
        meta_service(self.w[META])
    }
    /// [`Conn::real`].
    #[inline(always)]
    pub fn real(&self) -> u16 {
        meta_real(self.w[META])
    }
    /// [`Conn::method`].
    #[inline(always)]
    pub fn method(&self) -> u8 {
        meta_method(self.w[META])
    }
    /// [`Conn::flags`].
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        meta_flags(self.w[META])
    }
    /// Both tuples' protocol.
    #[inline(always)]
    pub fn proto(&self) -> u8 {
        meta_proto(self.w[META])
    }
    /// `orig().dport`.
    #[inline(always)]
    pub fn orig_dport(&self) -> u16 {
        (self.ports >> 32) as u16
    }
    /// `reply().sport`.
    #[inline(always)]
    pub fn reply_sport(&self) -> u16 {
        (self.ports >> 16) as u16
    }
    /// `orig().dst` of an IPv4 entry: the virtual address.
    #[inline(always)]
    pub fn orig_dst_v4(&self) -> [u8; 4] {
        debug_assert!(!self.v6);
        (self.w[2] as u32).to_be_bytes()
    }
    /// `reply().src` of an IPv4 entry: the real server.
    #[inline(always)]
    pub fn reply_src_v4(&self) -> [u8; 4] {
        debug_assert!(!self.v6);
        ((self.w[3] >> 32) as u32).to_be_bytes()
    }
    /// `orig().dst` of an IPv6 entry: the virtual address.
    #[inline(always)]
    pub fn orig_dst_v6(&self) -> [u8; 16] {
        debug_assert!(self.v6);
        ((u128::from(self.w[4]) << 64) | u128::from(self.w[5])).to_be_bytes()
    }
    /// `reply().src` of an IPv6 entry: the real server.
    #[inline(always)]
    pub fn reply_src_v6(&self) -> [u8; 16] {
        debug_assert!(self.v6);
        ((u128::from(self.w[6]) << 64) | u128::from(self.w[7])).to_be_bytes()
    }
}

impl ConnView for Hit {
    /// The whole connection.
    #[inline]
    fn conn(&self) -> Conn {
        Conn {
            orig: self.orig(),
            reply: self.reply(),
            service: self.service(),
            real: self.real(),
            method: self.method(),
            state: self.state,
            flags: self.flags(),
        }
    }
    /// IPv6 entry (both tuples are of one family).
    #[inline(always)]
    fn v6(&self) -> bool {
        self.id.is_v6()
    }
    /// [`Conn::state`] when the lookup read the entry.
    #[inline(always)]
    fn state(&self) -> u8 {
        self.state
    }
    /// [`Conn::service`].
    #[inline(always)]
    fn service(&self) -> u16 {
        meta_service(self.meta)
    }
    /// [`Conn::real`].
    #[inline(always)]
    fn real(&self) -> u16 {
        meta_real(self.meta)
    }
    /// [`Conn::method`].
    #[inline(always)]
    fn method(&self) -> u8 {
        meta_method(self.meta)
    }
    /// [`Conn::flags`].
    #[inline(always)]
    fn flags(&self) -> u8 {
        meta_flags(self.meta)
    }
    /// Both tuples' protocol.
    #[inline(always)]
    fn proto(&self) -> u8 {
        meta_proto(self.meta)
    }
    /// `orig().src`: the client.
    #[inline(always)]
    fn orig_src(&self) -> &[u8; 16] {
        &self.addr[0]
    }
    /// `orig().dst`: the virtual address.
    #[inline(always)]
    fn orig_dst(&self) -> &[u8; 16] {
        &self.addr[1]
    }
    /// `orig().sport`.
    #[inline(always)]
    fn orig_sport(&self) -> u16 {
        (self.ports >> 48) as u16
    }
    /// `orig().dport`.
    #[inline(always)]
    fn orig_dport(&self) -> u16 {
        (self.ports >> 32) as u16
    }
    /// `reply().src`: the real server.
    #[inline(always)]
    fn reply_src(&self) -> &[u8; 16] {
        &self.addr[2]
    }
    /// `reply().dst`: the client (NAT/DR/TUN) or the local address (FullNAT).
    #[inline(always)]
    fn reply_dst(&self) -> &[u8; 16] {
        &self.addr[3]
    }
    /// `reply().sport`.
    #[inline(always)]
    fn reply_sport(&self) -> u16 {
        (self.ports >> 16) as u16
    }
    /// `reply().dport`.
    #[inline(always)]
    fn reply_dport(&self) -> u16 {
        self.ports as u16
    }
}

/// Why an insert did not store the connection. Small and `Copy`: it is returned on the packet
/// path and each variant maps to one drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum InsertError {
    /// Every slot is in use: the new flow is refused, established ones keep their entries.
    #[error("connection table is full")]
    Full,
    /// Both hash buckets of a key are full (the index is sized so this is rare before `Full`).
    #[error("connection index buckets are full for this key")]
    Overflow,
    /// A live connection already has this original tuple — typically another worker won the
    /// race to insert the same new flow; use that one.
    #[error("connection already exists")]
    Exists(ConnId),
    /// One of the tuples is already another connection's tuple (e.g. two NAT connections
    /// whose replies would look identical, or a FullNAT local port still in use).
    #[error("a tuple of this connection belongs to another connection")]
    Clash(ConnId),
    /// Mixed families or protocols between the tuples, non-zero IPv4 padding bytes, or a
    /// reserved state value.
    #[error("connection is malformed (mixed family/protocol, IPv4 padding, or reserved state)")]
    Invalid,
    /// Lost simultaneous inserts of the same tuple many times in a row.
    #[error("insert kept colliding with concurrent inserts of the same tuple")]
    Contended,
}
