//! The values the table stores and hands back: flow keys, connections, ids, hits, errors.

use thiserror::Error;
use uvs_ip::widen_v4;

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

/// A successful lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub id: ConnId,
    /// Which tuple the looked-up key matched.
    pub dir: Dir,
    pub conn: Conn,
    /// Tick at which the entry expires unless updated.
    pub deadline: u32,
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
