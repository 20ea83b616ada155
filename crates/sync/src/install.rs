//! Between uvs's connection entries and IPVS's sync records: what a master sends for an
//! entry, and how a backup installs a record so that, when traffic moves to it, each flow
//! keeps its real server. Pure functions of a table snapshot and a connection table, so
//! they are tested without sockets.
//!
//! A backup installs a record only for a service it has (same VIP, protocol and port) and
//! a real server of that service (same address and port): a record for anything else is
//! dropped and counted, never installed. Installed entries carry `conn_flags::SYNCED` and
//! count on their real server like local ones.

use std::net::IpAddr;
use uvs_conntrack::ConnView;

use uvs_conntrack::{tcp::TCP_STATES, Conn, ConnTable, FlowKey, InsertError};
use uvs_dataplane::lifecycle::{self, EntryKind};
use uvs_dataplane::pipeline::{conn_flags, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use uvs_dataplane::sctp::SCTP_STATES;
use uvs_dataplane::tables::{IpKey, Method, ServiceRt, Tables, SORRY_SLOT};

use crate::wire::{flags, SyncConn};

/// The longest timeout a record may set (ms): deadlines must stay < 2^31 ms ahead.
const MAX_TIMEOUT_MS: u64 = 24 * 24 * 3600 * 1000;

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
    /// The connection table is full.
    TableFull,
}

impl Refused {
    pub const ALL: [Refused; 6] = [
        Refused::NoService,
        Refused::NoRealServer,
        Refused::BadState,
        Refused::Family,
        Refused::NoFullNat,
        Refused::TableFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refused::NoService => "no_service",
            Refused::NoRealServer => "no_real_server",
            Refused::BadState => "bad_state",
            Refused::Family => "family",
            Refused::NoFullNat => "no_fullnat",
            Refused::TableFull => "table_full",
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
        return match conns.lookup(&key, now) {
            Some(hit) => {
                conns.update(hit.id, hit.state(), deadline);
                Ok(())
            }
            None => match conns.insert(&t, now, deadline) {
                Ok(_) | Err(InsertError::Exists(_)) => Ok(()),
                Err(_) => Err(Refused::TableFull),
            },
        };
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
    match conns.lookup(&orig, now) {
        // Known here already: take the master's state (the counters follow) and timeout.
        Some(hit) if hit.real() == slot => {
            lifecycle::transition(
                conns,
                svc,
                &hit,
                now,
                |_| state,
                |_| timeout_ms,
                |_, _| true,
            );
            Ok(())
        }
        // This node scheduled the flow itself meanwhile: its own choice stands.
        Some(_) => Ok(()),
        None => match conns.insert(&conn, now, deadline) {
            Ok(_) => {
                lifecycle::bind(svc, slot, state, sc.protocol);
                Ok(())
            }
            Err(InsertError::Exists(_)) => Ok(()),
            Err(_) => Err(Refused::TableFull),
        },
    }
}
