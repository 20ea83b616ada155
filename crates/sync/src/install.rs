//! Between uvs's connection entries and IPVS's sync records: what a master sends for an
//! entry, and how a backup installs a record so that, when traffic moves to it, each flow
//! keeps its real server. Pure functions of a table snapshot and a connection table, so
//! they are tested without sockets.
//!
//! A backup installs a record only for a service it has (same VIP, protocol and port) and
//! a real server of that service (same address and port): a record for anything else is
//! dropped and counted, never installed. Installed entries carry `conn_flags::SYNCED` (until
//! a packet of theirs passes this node, which then owns and syncs them) and count on their
//! real server like local ones.
//!
//! The master is authoritative for its own connections. A record whose tuple (the
//! client's, or the reply tuple: real server ↔ local address and port) an entry here holds
//! for another connection replaces that entry when a peer synced it (the peer's earlier
//! word: a master that restarted reuses its FullNAT pool ports and its clients their
//! ports, while the backup still holds the entries of its previous life) or when it is
//! closing (TIME_WAIT, CLOSE: a new local connection would take its tuple too). The entry
//! leaves the table and its real server's counters (`lifecycle::unbind`). A live entry this
//! node made itself (sync mode `both`: a flow whose packets pass here, or its persistence
//! template) is kept and the record refused as a tuple clash: this node forwards that flow
//! now, and the record's is elsewhere.

use std::net::IpAddr;
use uvs_conntrack::ConnView;

use uvs_conntrack::{tcp::TCP_STATES, Conn, ConnId, ConnTable, Dir, FlowKey, InsertError};
use uvs_dataplane::lifecycle::{self, EntryKind};
use uvs_dataplane::pipeline::{conn_flags, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use uvs_dataplane::sctp::SCTP_STATES;
use uvs_dataplane::tables::{IpKey, Method, ServiceRt, Tables, SORRY_SLOT};

use crate::wire::{flags, SyncConn};

/// The longest timeout a record may set (ms): deadlines must stay < 2^31 ms ahead.
const MAX_TIMEOUT_MS: u64 = 24 * 24 * 3600 * 1000;
/// How often an install looks and inserts again after taking an entry out of its way or
/// losing a race with a worker inserting the same tuple.
const TRIES: usize = 4;

/// Why a record was not installed; each maps to a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No service with that VIP, protocol and port here.
    NoService,
    /// The service has no real server with that address and port.
    NoRealServer,
    /// Protocol other than TCP/UDP/SCTP, or a state that protocol does not have.
    BadState,
    /// Addresses of two families in one record.
    Family,
    /// A FullNAT service's record without the FullNAT local address.
    NoFullNat,
    /// The connection table is full (or both index buckets of a tuple are).
    TableFull,
    /// A live entry this node made itself (not synced, not closing) holds one of the
    /// record's tuples for another connection or real server: this node's own stands.
    TupleClash,
    /// Workers kept inserting the record's tuples while it was being installed.
    Contended,
}

impl Refused {
    pub const ALL: [Refused; 8] = [
        Refused::NoService,
        Refused::NoRealServer,
        Refused::BadState,
        Refused::Family,
        Refused::NoFullNat,
        Refused::TableFull,
        Refused::TupleClash,
        Refused::Contended,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refused::NoService => "no_service",
            Refused::NoRealServer => "no_real_server",
            Refused::BadState => "bad_state",
            Refused::Family => "family",
            Refused::NoFullNat => "no_fullnat",
            Refused::TableFull => "table_full",
            Refused::TupleClash => "tuple_clash",
            Refused::Contended => "contended",
        }
    }
}

fn bytes(a: IpAddr) -> [u8; 16] {
    IpKey::from_ip(a).addr
}

/// The record a master sends for `c`, an entry of `tables`' services, with `left_ms`
/// before it expires. `None` for entries that are not synced (SCTP tag records, entries of
/// a service that is gone, connections of the SYN proxy: a peer could not translate them
/// without their sequence deltas, which the IPVS record has no room for).
pub fn record(tables: &Tables, c: &Conn, left_ms: u32) -> Option<SyncConn> {
    let kind = EntryKind::of(c);
    if kind == EntryKind::SctpTag {
        return None;
    }
    if c.flags & conn_flags::SYNPROXY != 0 {
        return None;
    }
    let svc = tables.service(c.service)?;
    let timeout = left_ms.div_ceil(1000).max(1);
    let v6 = c.orig.v6;
    let ip = |a: [u8; 16]| IpKey { v6, addr: a }.to_ip();
    if kind == EntryKind::Template {
        // IPVS's template: client (masked) and VIP:port of the service, the real server's
        // address and port, cport 0, state 0.
        let real = svc.real(c.real)?;
        return Some(SyncConn {
            protocol: svc.key.proto,
            flags: flags::TEMPLATE | fwd_flags(real.method),
            state: 0,
            caddr: ip(c.orig.src),
            cport: 0,
            vaddr: ip(c.orig.dst),
            vport: svc.key.port,
            // A NAT64 service's IPv4 server goes IPv4-mapped in the IPv6 record, as its
            // flows' entries hold it.
            daddr: match real.addr.to_ip() {
                IpAddr::V4(a) if v6 => IpAddr::V6(a.to_ipv6_mapped()),
                a => a,
            },
            dport: real.port,
            fwmark: 0,
            timeout,
            fullnat: None,
        });
    }
    let method = Method::from_u8(c.method)?;
    let active = lifecycle::is_active(c.orig.proto, c.state);
    Some(SyncConn {
        protocol: c.orig.proto,
        flags: fwd_flags(method) | if active { 0 } else { flags::INACTIVE },
        state: u16::from(c.state),
        caddr: ip(c.orig.src),
        cport: c.orig.sport,
        vaddr: ip(c.orig.dst),
        vport: c.orig.dport,
        daddr: ip(c.reply.src),
        dport: c.reply.sport,
        fwmark: 0,
        timeout,
        fullnat: (method == Method::FullNat).then(|| (ip(c.reply.dst), c.reply.dport)),
    })
}

/// IPVS's forwarding-method bits (and NOOUTPUT for DR/TUN, whose replies bypass us).
fn fwd_flags(m: Method) -> u32 {
    match m {
        Method::Nat | Method::FullNat => flags::MASQ,
        Method::Dr => flags::DROUTE | flags::NOOUTPUT,
        Method::Tun => flags::TUNNEL | flags::NOOUTPUT,
    }
}

/// The slot of the service's real server `addr:port` (a port-0 real server matches any
/// port), or the sorry server's.
fn slot_of(svc: &ServiceRt, addr: IpAddr, port: u16) -> Option<u16> {
    let key = IpKey::from_ip(addr);
    let found = svc.reals.iter().enumerate().find_map(|(i, r)| {
        r.as_ref()
            .filter(|r| r.addr == key && (r.port == port || r.port == 0))
            .map(|_| i as u16)
    });
    found.or_else(|| {
        svc.sorry
            .as_ref()
            .filter(|s| s.addr == key && (s.port == port || s.port == 0))
            .map(|_| SORRY_SLOT)
    })
}

/// Installs (or refreshes) the entry a record describes, at table time `now` (ms ticks).
pub fn install(tables: &Tables, conns: &ConnTable, sc: &SyncConn, now: u32) -> Result<(), Refused> {
    let v6 = sc.caddr.is_ipv6();
    if sc.vaddr.is_ipv6() != v6 || sc.daddr.is_ipv6() != v6 {
        return Err(Refused::Family);
    }
    // NAT64 (FullNAT from an IPv6 VIP to an IPv4 server): an IPv6 record whose server and
    // local address are IPv4-mapped, as the entry stores them (dataplane pipeline/nat64.rs).
    let (daddr, nat64) = match sc.daddr {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(d) => (IpAddr::V4(d), true),
            None => (sc.daddr, false),
        },
        d => (d, false),
    };
    let template = sc.flags & flags::TEMPLATE != 0;
    let svc = tables
        .service_for(IpKey::from_ip(sc.vaddr), sc.protocol, sc.vport)
        .ok_or(Refused::NoService)?;
    let slot = slot_of(svc, daddr, sc.dport).ok_or(Refused::NoRealServer)?;
    if nat64 && svc.real(slot).is_none_or(|r| r.method != Method::FullNat) {
        return Err(Refused::Family);
    }
    let timeout_ms = (u64::from(sc.timeout) * 1000).clamp(1000, MAX_TIMEOUT_MS) as u32;
    let deadline = now.wrapping_add(timeout_ms);
    if template {
        let key = lifecycle::template_key(svc, bytes(sc.caddr), bytes(sc.vaddr), v6);
        let mut t = lifecycle::template(svc, key, slot);
        t.flags |= conn_flags::SYNCED;
        for _ in 0..TRIES {
            match conns.lookup(&key, now) {
                // The same template: the master's timeout.
                Some(hit) if hit.dir == Dir::Original && hit.real() == slot => {
                    conns.update(hit.id, hit.state(), deadline);
                    return Ok(());
                }
                // Another real server for this client: the master's latest word replaces
                // a synced template; this node's own stands.
                Some(hit) => make_way(tables, conns, hit.id, &hit.conn())?,
                None => match conns.insert(&t, now, deadline) {
                    Ok(_) => return Ok(()),
                    // A worker stored one just now: look again.
                    Err(InsertError::Exists(_)) => {}
                    Err(InsertError::Clash(holder)) => clear_holder(tables, conns, holder)?,
                    Err(e) => return Err(insert_refusal(e)),
                },
            }
        }
        return Err(Refused::Contended);
    }
    let states = match sc.protocol {
        PROTO_TCP => TCP_STATES,
        PROTO_SCTP => SCTP_STATES,
        PROTO_UDP => 1,
        _ => return Err(Refused::BadState),
    };
    if usize::from(sc.state) >= states {
        return Err(Refused::BadState);
    }
    let state = sc.state as u8;
    let real = svc.real(slot).ok_or(Refused::NoRealServer)?;
    let orig = FlowKey {
        proto: sc.protocol,
        v6,
        src: bytes(sc.caddr),
        dst: bytes(sc.vaddr),
        sport: sc.cport,
        dport: sc.vport,
    };
    let (local, lport) = if real.method == Method::FullNat {
        let (a, p) = sc.fullnat.ok_or(Refused::NoFullNat)?;
        if a.is_ipv6() != v6 {
            return Err(Refused::Family);
        }
        (bytes(a), p)
    } else {
        (orig.src, orig.sport)
    };
    let conn = Conn {
        orig,
        reply: FlowKey {
            proto: sc.protocol,
            v6,
            src: bytes(sc.daddr),
            dst: local,
            sport: sc.dport,
            dport: lport,
        },
        service: svc.id,
        real: slot,
        method: real.method as u8,
        state,
        flags: conn_flags::SYNCED | if nat64 { conn_flags::NAT64 } else { 0 },
    };
    for _ in 0..TRIES {
        match conns.lookup(&orig, now) {
            // Known here already: take the master's state (the counters follow) and timeout.
            Some(hit)
                if hit.dir == Dir::Original && hit.real() == slot && hit.reply() == conn.reply =>
            {
                lifecycle::transition(
                    conns,
                    svc,
                    &hit,
                    now,
                    |_| state,
                    |_| timeout_ms,
                    |_, _| true,
                );
                return Ok(());
            }
            // Another connection holds the client's tuple here: a stale synced one (the
            // client reused its port after the master restarted) or a closing one goes;
            // a live one this node scheduled itself stands.
            Some(hit) => make_way(tables, conns, hit.id, &hit.conn())?,
            None => match conns.insert(&conn, now, deadline) {
                Ok(_) => {
                    lifecycle::bind(svc, slot, state, sc.protocol);
                    return Ok(());
                }
                // A worker stored the flow just now: look again.
                Err(InsertError::Exists(_)) => {}
                // The reply tuple is another connection's (a FullNAT local port a
                // restarted master reuses, a NAT client port reused towards another VIP).
                Err(InsertError::Clash(holder)) => clear_holder(tables, conns, holder)?,
                Err(e) => return Err(insert_refusal(e)),
            },
        }
    }
    Err(Refused::Contended)
}

/// Why an insert that failed for `e` refuses the record.
fn insert_refusal(e: InsertError) -> Refused {
    match e {
        InsertError::Full | InsertError::Overflow => Refused::TableFull,
        InsertError::Clash(_) => Refused::TupleClash,
        InsertError::Exists(_) | InsertError::Contended => Refused::Contended,
        // Not reached: the record's family, protocol and state were checked.
        InsertError::Invalid => Refused::BadState,
    }
}

/// Whether a record may take the place of `old`, an entry holding one of its tuples for
/// another connection (or, a template, another real server): one a peer synced (the
/// master is authoritative for its connections; this is an earlier word of it), or a
/// connection of this node's own that is closing, which a new local connection would
/// take over too (`lifecycle::closing`).
fn replaceable(old: &Conn) -> bool {
    old.flags & conn_flags::SYNCED != 0 || (lifecycle::is_flow(old) && lifecycle::closing(old))
}

/// Takes `old` (entry `id`) out of the record's way, or refuses the record when `old` is
/// a live entry of this node's own. The one that removes an entry unbinds it from its real
/// server (lifecycle's rule): here when `remove` says this call removed it, else whoever
/// did (a worker, the expiry sweep).
fn make_way(tables: &Tables, conns: &ConnTable, id: ConnId, old: &Conn) -> Result<(), Refused> {
    if !replaceable(old) {
        return Err(Refused::TupleClash);
    }
    if conns.remove(id) {
        lifecycle::unbind(tables, old);
    }
    Ok(())
}

/// [`make_way`] for the entry an insert clashed with, unless it is gone already.
fn clear_holder(tables: &Tables, conns: &ConnTable, holder: ConnId) -> Result<(), Refused> {
    match conns.get(holder) {
        Some((old, _)) => make_way(tables, conns, holder, &old),
        None => Ok(()),
    }
}
