//! The `pipeline` fuzz target's input format, shared with `examples/seeds.rs` that writes
//! the committed seeds.
//!
//! ```text
//! byte 0        the table: bits 0-1 method (nat, dr, tun, fullnat), bits 2-4 scheduler,
//!               bit 5 persistence, bit 6 one-packet scheduling for UDP (not FullNAT), bit 7 SCTP services
//! then records  [control u8][length u16 LE][frame bytes]
//!               control bit 0: the port it arrives on (0 client side, 1 real servers);
//!               bits 1-6: seconds the clock moves forward before it arrives
//! ```
//! A record whose length runs past the end takes what is left.

use uvs_dataplane::lab;
use uvs_dataplane::tables::Persistence;
use uvs_dataplane::{Method, ServiceKey, TablesSpec};
use uvs_sched::SchedulerKind;

pub const METHODS: [Method; 4] = [Method::Nat, Method::Dr, Method::Tun, Method::FullNat];

/// Deterministic schedulers only (twos draws random numbers), with the hashing, locality
/// and table-driven ones that keep state across flows.
pub const SCHEDULERS: [SchedulerKind; 8] = [
    SchedulerKind::Rr,
    SchedulerKind::Wlc,
    SchedulerKind::Sh,
    SchedulerKind::Mh,
    SchedulerKind::Lblcr,
    SchedulerKind::Dh,
    SchedulerKind::Fo,
    SchedulerKind::Ovf,
];

/// A prime above 100 × the lab's three real servers (Maglev's 1 % balance bound).
pub const MH_TABLE_SIZE: u32 = 307;
pub const LOCALITY_SLOTS: u32 = 64;

pub const PERSISTENCE: u8 = 1 << 5;
pub const ONE_PACKET: u8 = 1 << 6;
pub const SCTP: u8 = 1 << 7;

/// SCTP service ports: 7 keeps its port, 8 goes to real port 7007 (every rewrite changes
/// a port and recomputes the CRC32c), as in dataplane/tests/sctp_support.
pub const SCTP_PORT: u16 = 7;
pub const SCTP_PORT_CHANGE: u16 = 8;
pub const SCTP_REAL_PORT_CHANGED: u16 = 7007;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub port: usize,
    pub advance_s: u64,
    pub frame: &'a [u8],
}

pub fn table_byte(method: usize, scheduler: usize, flags: u8) -> u8 {
    (method as u8 & 3) | ((scheduler as u8 & 7) << 2) | (flags & 0xe0)
}

/// The lab's tables (`uvs_dataplane::lab::spec`, as the pipeline fixtures use them) with
/// the variations `table` selects.
pub fn spec(table: u8) -> TablesSpec {
    let method = METHODS[usize::from(table & 3)];
    let sched = SCHEDULERS[usize::from((table >> 2) & 7)];
    let mut spec = lab::spec(method, sched, 1);
    for s in &mut spec.services {
        // Small Maglev and locality tables: building the default 65537-entry Maglev table
        // for every input would take most of the fuzzer's time, and small tables collide.
        s.sched.mh_table_size = MH_TABLE_SIZE;
        s.sched.locality_slots = LOCALITY_SLOTS;
        if table & PERSISTENCE != 0 {
            s.persistence = Some(Persistence {
                timeout_s: 300,
                prefix_len: if s.key.vip.v6 { 128 } else { 32 },
            });
        }
        // The builder refuses one-packet scheduling with FullNAT (a reply would carry no
        // trace of its client), so that combination falls back to ordinary scheduling.
        s.one_packet = table & ONE_PACKET != 0 && s.key.proto == 17 && method != Method::FullNat;
    }
    if table & SCTP != 0 {
        let tcp: Vec<_> = spec
            .services
            .iter()
            .filter(|s| s.key.proto == 6)
            .cloned()
            .collect();
        for (port, real_port) in [
            (SCTP_PORT, SCTP_PORT),
            (SCTP_PORT_CHANGE, SCTP_REAL_PORT_CHANGED),
        ] {
            for t in &tcp {
                let mut s = t.clone();
                s.key = ServiceKey {
                    vip: s.key.vip,
                    proto: 132,
                    port,
                };
                s.name = format!("sctp/{}:{port}", s.key.vip.to_ip());
                for r in &mut s.reals {
                    r.port = real_port;
                }
                spec.services.push(s);
            }
        }
    }
    spec
}

/// Splits fuzz input into the table byte and the frame records.
pub fn decode(data: &[u8]) -> Option<(u8, Vec<Record<'_>>)> {
    let (&table, mut rest) = data.split_first()?;
    let mut records = Vec::new();
    while rest.len() >= 3 {
        let control = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
        let body = &rest[3..];
        let take = len.min(body.len());
        records.push(Record {
            port: usize::from(control & 1),
            advance_s: u64::from((control >> 1) & 0x3f),
            frame: &body[..take],
        });
        rest = &body[take..];
    }
    Some((table, records))
}

/// The inverse of [`decode`] (for writing seeds).
pub fn encode(table: u8, records: &[Record<'_>]) -> Vec<u8> {
    let mut out = vec![table];
    for r in records {
        assert!(r.port < 2 && r.advance_s < 64 && r.frame.len() <= usize::from(u16::MAX));
        out.push(r.port as u8 | ((r.advance_s as u8) << 1));
        out.extend_from_slice(&(r.frame.len() as u16).to_le_bytes());
        out.extend_from_slice(r.frame);
    }
    out
}
