//! Shared support of the SCTP fixtures: a hand-written SCTP frame builder, an independent
//! CRC32c (bitwise, Castagnoli polynomial — not the `crc32c` crate uvs itself uses, so a
//! shared bug cannot hide), a parser of emitted frames, and the lab with SCTP services.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;

use uvs_conntrack::Conn;
use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::sctp::SctpState;
use uvs_dataplane::tables::ServiceKey;
use uvs_dataplane::{DropReason, Method, Shared, TablesBuilder, TablesSpec, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;

pub use uvs_testkit::sctp::*;

/// The SCTP port of the lab's SCTP services; `PORT_CHANGE` maps to real port 7007.
pub const PORT: u16 = 7;
pub const PORT_CHANGE: u16 = 8;
pub const REAL_PORT_CHANGED: u16 = 7007;

/// What left the balancer, parsed independently (IPv4 header checksum, IP lengths and the
/// CRC32c all checked; a failure panics with the reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub sport: u16,
    pub dport: u16,
    pub vtag: u32,
    /// The SCTP packet (common header onwards).
    pub sctp: Vec<u8>,
}

impl Out {
    /// Chunks as (type, value) pairs.
    pub fn chunks(&self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut off = 12;
        while off + 4 <= self.sctp.len() {
            let len = usize::from(u16::from_be_bytes([self.sctp[off + 2], self.sctp[off + 3]]));
            assert!(len >= 4 && off + len <= self.sctp.len(), "bad chunk length");
            out.push((self.sctp[off], self.sctp[off + 4..off + len].to_vec()));
            off += (len + 3) & !3;
        }
        out
    }

    /// Parameter types of the first (INIT/INIT-ACK) chunk, in order.
    pub fn init_params(&self) -> Vec<(u16, Vec<u8>)> {
        let (_, v) = &self.chunks()[0];
        let mut out = Vec::new();
        let mut off = 16;
        while off + 4 <= v.len() {
            let t = u16::from_be_bytes([v[off], v[off + 1]]);
            let len = usize::from(u16::from_be_bytes([v[off + 2], v[off + 3]]));
            assert!(len >= 4 && off + len <= v.len(), "bad parameter length");
            out.push((t, v[off + 4..off + len].to_vec()));
            off += (len + 3) & !3;
        }
        out
    }
}

pub fn parse_out(f: &[u8]) -> Out {
    let sliced = etherparse::SlicedPacket::from_ethernet(f)
        .unwrap_or_else(|e| panic!("emitted frame does not parse: {e}"));
    let (src, dst, ttl, payload) = match &sliced.net {
        Some(etherparse::NetSlice::Ipv4(v4)) => {
            let h = v4.header().to_header();
            assert_eq!(
                h.calc_header_checksum(),
                h.header_checksum,
                "bad IPv4 header checksum"
            );
            assert_eq!(usize::from(h.total_len), f.len() - 14, "IPv4 total length");
            (
                IpAddr::V4(h.source.into()),
                IpAddr::V4(h.destination.into()),
                h.time_to_live,
                v4.payload().payload,
            )
        }
        Some(etherparse::NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            assert_eq!(
                usize::from(h.payload_length()),
                f.len() - 54,
                "IPv6 payload length"
            );
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                v6.payload().payload,
            )
        }
        _ => panic!("no IP header"),
    };
    let sctp = payload.to_vec();
    assert!(sctp.len() >= 16, "SCTP packet too short");
    assert_eq!(sctp[8..12], sctp_crc(&sctp), "bad CRC32c in emitted frame");
    Out {
        dst_mac: f[..6].try_into().unwrap(),
        src_mac: f[6..12].try_into().unwrap(),
        src,
        dst,
        ttl,
        sport: u16::from_be_bytes([sctp[0], sctp[1]]),
        dport: u16::from_be_bytes([sctp[2], sctp[3]]),
        vtag: u32::from_be_bytes([sctp[4], sctp[5], sctp[6], sctp[7]]),
        sctp,
    }
}

pub fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn vip(v6: bool) -> IpAddr {
    a(if v6 { lab::VIP6 } else { lab::VIP4 })
}
pub fn client(v6: bool) -> IpAddr {
    a(if v6 { lab::CLIENT6 } else { lab::CLIENT4 })
}
/// The client's second address (multi-homing), on the same client network.
pub fn client2(v6: bool) -> IpAddr {
    a(if v6 { "2001:2::5" } else { "198.18.0.5" })
}
pub const CLIENT2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x05];
pub fn real(n: u8, v6: bool) -> IpAddr {
    lab::real(n, v6).to_ip()
}
pub fn pool(v6: bool) -> IpAddr {
    a(if v6 { lab::POOL6 } else { lab::POOL4 })
}

/// The standard lab plus SCTP services on both VIPs: port 7 (same real port) and port 8
/// (real port 7007, so every rewrite changes a port and recomputes the CRC32c).
pub fn spec(method: Method) -> TablesSpec {
    let mut spec = lab::spec(method, SchedulerKind::Rr, 1);
    let tcp: Vec<_> = spec
        .services
        .iter()
        .filter(|s| s.key.proto == 6)
        .cloned()
        .collect();
    for (port, real_port) in [(PORT, PORT), (PORT_CHANGE, REAL_PORT_CHANGED)] {
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
    spec
}

pub struct Lab {
    pub shared: Arc<Shared>,
    pub w: Worker<MemPort>,
}

impl Lab {
    pub fn new(method: Method) -> Lab {
        Self::with_spec(&spec(method))
    }

    pub fn with_spec(spec: &TablesSpec) -> Lab {
        Self::with_capacity(spec, 4096)
    }

    /// A lab whose connection table holds `capacity` entries.
    #[allow(dead_code)]
    pub fn with_capacity(spec: &TablesSpec, capacity: usize) -> Lab {
        let tables = TablesBuilder::build(spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, capacity, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        shared.neigh.learn(ipk("198.18.0.5"), CLIENT2_MAC, 0);
        shared.neigh.learn(ipk("2001:2::5"), CLIENT2_MAC, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        let w = Worker::new(0, ports, shared.clone());
        Lab { shared, w }
    }

    /// Sends `frame` in on `port`, runs one burst, returns what left on each port.
    pub fn send(&mut self, port: usize, frame: &[u8]) -> [Vec<Vec<u8>>; 2] {
        assert!(self.w.ports[port].push_rx(frame));
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    pub fn drops(&self, r: DropReason) -> u64 {
        self.shared.counters[0].dropped(r)
    }

    pub fn total_drops(&self) -> u64 {
        self.shared.counters[0].total_drops()
    }

    /// The SCTP connection entries (tag records and templates excluded).
    pub fn associations(&self) -> Vec<Conn> {
        let mut v = Vec::new();
        self.shared.conns.for_each(|_, c, _| {
            if c.orig.proto == 132 && c.flags & 0x02 == 0 {
                v.push(*c);
            }
        });
        v
    }

    /// Tag records stored (entries with the tag-record flag).
    pub fn tag_records(&self) -> usize {
        let mut n = 0;
        self.shared.conns.for_each(|_, c, _| {
            if uvs_dataplane::sctp::is_tag_record(c) {
                n += 1;
            }
        });
        n
    }

    /// The state of the only association from `cport`.
    pub fn state(&self, cport: u16) -> SctpState {
        let a: Vec<_> = self
            .associations()
            .into_iter()
            .filter(|c| c.orig.sport == cport)
            .collect();
        assert_eq!(a.len(), 1, "one association from port {cport}");
        SctpState::from_u8(a[0].state)
    }
}

/// Exactly one frame left on this port; parsed and checked.
pub fn only(out: &[Vec<u8>]) -> Out {
    assert_eq!(
        out.len(),
        1,
        "expected exactly one frame, got {}",
        out.len()
    );
    parse_out(&out[0])
}

/// One association driven by hand: the client's and the server's tags, and what the
/// real server sees as the client's address and port (the local pool under FullNAT).
pub struct Assoc {
    pub v6: bool,
    pub cport: u16,
    pub vport: u16,
    /// Tag the client put in its INIT (the server uses it towards the client).
    pub client_tag: u32,
    /// Tag the server put in its INIT-ACK (the client uses it towards the server).
    pub server_tag: u32,
    /// Which real server (1-based) and what it saw.
    pub real: u8,
    pub real_port: u16,
    pub seen_src: IpAddr,
    pub seen_sport: u16,
}

impl Assoc {
    pub fn client_frame(&self, vtag: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
        frame(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client(self.v6),
            self.cport,
            vip(self.v6),
            self.vport,
            vtag,
            chunks,
        )
    }

    pub fn server_frame(&self, vtag: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
        frame(
            lab::real_mac(self.real),
            lab::LB1_MAC,
            real(self.real, self.v6),
            self.real_port,
            self.seen_src,
            self.seen_sport,
            vtag,
            chunks,
        )
    }
}

/// Runs INIT → INIT-ACK → COOKIE-ECHO → COOKIE-ACK for a client on `cport`, checking
/// every hop is forwarded, and returns the association.
pub fn handshake(lab: &mut Lab, v6: bool, cport: u16, vport: u16) -> Assoc {
    let client_tag = 0x1000_0000 | u32::from(cport);
    let server_tag = 0x2000_0000 | u32::from(cport);
    let init = frame(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client(v6),
        cport,
        vip(v6),
        vport,
        0,
        &[init_chunk(INIT, client_tag, &[])],
    );
    let [back, fwd] = lab.send(0, &init);
    assert!(back.is_empty());
    let o = only(&fwd);
    let n = (1..=3)
        .find(|n| o.dst == real(*n, v6))
        .expect("INIT went to a real server");
    let mut a = Assoc {
        v6,
        cport,
        vport,
        client_tag,
        server_tag,
        real: n,
        real_port: o.dport,
        seen_src: o.src,
        seen_sport: o.sport,
    };
    let ack = a.server_frame(
        client_tag,
        &[init_chunk(
            INIT_ACK,
            server_tag,
            &[param(7, b"cookie-bytes")],
        )],
    );
    let [back, fwd] = lab.send(1, &ack);
    assert!(fwd.is_empty());
    let o = only(&back);
    assert_eq!(
        (o.src, o.sport),
        (vip(v6), vport),
        "INIT-ACK comes from the VIP"
    );
    assert_eq!((o.dst, o.dport), (client(v6), cport));
    let echo = a.client_frame(server_tag, &[chunk(COOKIE_ECHO, 0, b"cookie-bytes")]);
    let [_, fwd] = lab.send(0, &echo);
    only(&fwd);
    let cack = a.server_frame(client_tag, &[chunk(COOKIE_ACK, 0, &[])]);
    let [back, _] = lab.send(1, &cack);
    only(&back);
    a.real = n;
    a
}
