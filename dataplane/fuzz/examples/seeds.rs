//! Writes the committed seeds of the `pipeline` target (seeds/pipeline/): conversations
//! like the pipeline fixtures' (dataplane/tests/fixtures.rs), built with the test kit.
//! Replies of real servers are built from what a real `Worker` forwarded, so they carry
//! the addresses and ports (FullNAT pool ports included) that the pipeline chose.
//!
//! `cargo run --example seeds -- seeds/pipeline` (from dataplane/fuzz, stable Rust).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use uvs_dataplane::{lab, Shared, TablesBuilder, Worker};
use uvs_dataplane_fuzz::{encode, spec, table_byte, Record, ONE_PACKET, PERSISTENCE, SCTP};
use uvs_port::MemPort;
use uvs_testkit::{self as tk, sctp as sc};

const NAT: usize = 0;
const DR: usize = 1;
const TUN: usize = 2;
const FULLNAT: usize = 3;

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn client(v6: bool) -> IpAddr {
    a(if v6 { lab::CLIENT6 } else { lab::CLIENT4 })
}

fn vip(v6: bool) -> IpAddr {
    a(if v6 { lab::VIP6 } else { lab::VIP4 })
}

/// A conversation: frames in, with the port and clock step of each.
struct Conv {
    table: u8,
    frames: Vec<(usize, u64, Vec<u8>)>,
    worker: Worker<MemPort>,
}

impl Conv {
    fn new(table: u8) -> Conv {
        let tables = TablesBuilder::build(&spec(table), None).unwrap();
        let shared = Arc::new(Shared::new(tables, 1024, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 32), MemPort::new("server", 32)];
        Conv {
            table,
            frames: Vec::new(),
            worker: Worker::new(0, ports, shared),
        }
    }

    /// Sends a frame; returns what left on the real servers' side.
    fn send(&mut self, port: usize, advance: u64, frame: Vec<u8>) -> Vec<Vec<u8>> {
        assert!(self.worker.ports[port].push_rx(&frame));
        self.frames.push((port, advance, frame));
        self.worker.poll();
        self.worker.ports[0].take_tx();
        self.worker.ports[1].take_tx()
    }

    fn bytes(&self) -> Vec<u8> {
        let records: Vec<Record<'_>> = self
            .frames
            .iter()
            .map(|(port, advance_s, f)| Record {
                port: *port,
                advance_s: *advance_s,
                frame: f,
            })
            .collect();
        encode(self.table, &records)
    }
}

/// The real server's answer to a forwarded frame (NAT and FullNAT send it back through
/// the balancer): addresses and ports swapped.
fn answer(out: &[u8], tcp_flags: tk::Flags) -> Option<Vec<u8>> {
    let p = SlicedPacket::from_ethernet(out).ok()?;
    let (src, dst) = match p.net? {
        NetSlice::Ipv4(h) => (
            IpAddr::V4(h.header().source_addr()),
            IpAddr::V4(h.header().destination_addr()),
        ),
        NetSlice::Ipv6(h) => (
            IpAddr::V6(h.header().source_addr()),
            IpAddr::V6(h.header().destination_addr()),
        ),
        _ => return None,
    };
    let (mac_dst, mac_src) = (&out[..6], &out[6..12]);
    let (d, s) = (mac_dst.try_into().unwrap(), mac_src.try_into().unwrap());
    Some(match p.transport? {
        TransportSlice::Tcp(t) => tk::tcp(
            d,
            s,
            dst,
            t.destination_port(),
            src,
            t.source_port(),
            tcp_flags,
            b"",
        ),
        TransportSlice::Udp(u) => tk::udp(
            d,
            s,
            dst,
            u.destination_port(),
            src,
            u.source_port(),
            b"answer",
        ),
        _ => return None,
    })
}

/// An SCTP INIT-ACK from the real server for a forwarded INIT.
fn init_ack(out: &[u8], v6: bool) -> Vec<u8> {
    let ip = if v6 { 40 } else { 20 };
    let sctp = &out[14 + ip..];
    let tag = u32::from_be_bytes(sctp[16..20].try_into().unwrap());
    let at = |o: usize| -> IpAddr {
        if v6 {
            IpAddr::from(<[u8; 16]>::try_from(&out[14 + o..14 + o + 16]).unwrap())
        } else {
            IpAddr::from(<[u8; 4]>::try_from(&out[14 + o..14 + o + 4]).unwrap())
        }
    };
    let (src, dst) = if v6 {
        (at(8), at(24))
    } else {
        (at(12), at(16))
    };
    let port = |o: usize| u16::from_be_bytes([sctp[o], sctp[o + 1]]);
    sc::frame(
        out[..6].try_into().unwrap(),
        out[6..12].try_into().unwrap(),
        dst,
        port(2),
        src,
        port(0),
        tag,
        &[sc::init_chunk(sc::INIT_ACK, 0x5eed_0002, &[])],
    )
}

fn syn(v6: bool, from: IpAddr, sport: u16) -> Vec<u8> {
    tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        from,
        sport,
        vip(v6),
        80,
        tk::SYN,
        b"",
    )
}

fn query(v6: bool, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client(v6),
        sport,
        vip(v6),
        dport,
        payload,
    )
}

fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&lab::CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&lab::CLIENT_MAC);
    f.extend_from_slice(&[198, 18, 0, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

fn echo(v6: bool) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(lab::CLIENT_MAC, lab::LB0_MAC);
    let mut out = Vec::new();
    match (client(v6), vip(v6)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b
            .ipv4(s.octets(), d.octets(), 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => b
            .ipv6(s.octets(), d.octets(), 64)
            .icmpv6_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
        _ => unreachable!(),
    }
    out
}

/// A neighbour solicitation for the IPv6 VIP from the client (solicited-node multicast).
fn neighbour_solicitation() -> Vec<u8> {
    let target = match vip(true) {
        IpAddr::V6(t) => t.octets(),
        IpAddr::V4(_) => unreachable!(),
    };
    let mut dst = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    dst[13..].copy_from_slice(&target[13..]);
    let src = match client(true) {
        IpAddr::V6(s) => s.octets(),
        IpAddr::V4(_) => unreachable!(),
    };
    let mut payload = target.to_vec();
    payload.extend_from_slice(&[1, 1]);
    payload.extend_from_slice(&lab::CLIENT_MAC);
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2(
        lab::CLIENT_MAC,
        [0x33, 0x33, 0xff, dst[13], dst[14], dst[15]],
    )
    .ipv6(src, dst, 255)
    .icmpv6(etherparse::Icmpv6Type::Unknown {
        type_u8: 135,
        code_u8: 0,
        bytes5to8: [0; 4],
    })
    .write(&mut out, &payload)
    .unwrap();
    out
}

/// An ICMP port-unreachable from real server 1 quoting `quoted` (a forwarded frame).
fn unreachable_about(quoted: &[u8], v6: bool) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(lab::real_mac(1), lab::LB1_MAC);
    let src = lab::real(1, v6).to_ip();
    let dst = match SlicedPacket::from_ethernet(quoted).unwrap().net.unwrap() {
        NetSlice::Ipv4(h) => IpAddr::V4(h.header().source_addr()),
        NetSlice::Ipv6(h) => IpAddr::V6(h.header().source_addr()),
        _ => unreachable!(),
    };
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b
            .ipv4(s.octets(), d.octets(), 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut out, &quoted[14..])
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => b
            .ipv6(s.octets(), d.octets(), 64)
            .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Port,
            ))
            .write(&mut out, &quoted[14..])
            .unwrap(),
        _ => unreachable!(),
    }
    out
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("seeds/pipeline".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();

    // A TCP connection and a UDP exchange per method and family; NAT and FullNAT also get
    // the real server's replies, an ICMP error about the flow, and the closing segments.
    for (method, name) in [(NAT, "nat"), (DR, "dr"), (TUN, "tun"), (FULLNAT, "fullnat")] {
        for v6 in [false, true] {
            let fam = if v6 { "v6" } else { "v4" };
            let sched = if v6 { 1 } else { 0 };
            let mut c = Conv::new(table_byte(method, sched, 0));
            let out = c.send(0, 0, syn(v6, client(v6), 40000));
            let back = method == NAT || method == FULLNAT;
            if back {
                c.send(1, 0, answer(&out[0], tk::SYN_ACK).unwrap());
            }
            let ack = |flags| {
                tk::tcp(
                    lab::CLIENT_MAC,
                    lab::LB0_MAC,
                    client(v6),
                    40000,
                    vip(v6),
                    80,
                    flags,
                    b"GET / HTTP/1.0\r\n\r\n",
                )
            };
            c.send(0, 0, ack(tk::ACK));
            c.send(0, 1, ack(tk::FIN_ACK));
            if back {
                c.send(1, 0, answer(&out[0], tk::FIN_ACK).unwrap());
            }
            seeds.push((format!("{name}-tcp-{fam}"), c.bytes()));

            let mut c = Conv::new(table_byte(method, 2 + usize::from(v6), 0));
            let out = c.send(0, 0, query(v6, 5353, 53, b"query"));
            if back {
                c.send(1, 0, answer(&out[0], tk::ACK).unwrap());
                c.send(1, 0, unreachable_about(&out[0], v6));
            }
            c.send(0, 40, query(v6, 5353, 53, b"again"));
            seeds.push((format!("{name}-udp-{fam}"), c.bytes()));
        }
    }

    // Persistence and one-packet scheduling: several flows from one client.
    for (flags, name) in [(PERSISTENCE, "persistence"), (ONE_PACKET, "one-packet")] {
        for v6 in [false, true] {
            let mut c = Conv::new(table_byte(NAT, 4 + usize::from(v6), flags));
            for i in 0..3 {
                c.send(0, 0, syn(v6, client(v6), 41000 + i));
                c.send(0, 0, query(v6, 41000 + i, 53, b"q"));
            }
            seeds.push((
                format!("{name}-{}", if v6 { "v6" } else { "v4" }),
                c.bytes(),
            ));
        }
    }

    // SCTP: an INIT to each service port and the INIT-ACK back, then data.
    for (method, name) in [(NAT, "nat"), (FULLNAT, "fullnat"), (DR, "dr")] {
        for v6 in [false, true] {
            let mut c = Conv::new(table_byte(method, 0, SCTP));
            for port in [7u16, 8] {
                let init = sc::frame(
                    lab::CLIENT_MAC,
                    lab::LB0_MAC,
                    client(v6),
                    5000,
                    vip(v6),
                    port,
                    0,
                    &[sc::init_chunk(
                        sc::INIT,
                        0x5eed_0001,
                        &[sc::addr_param(client(v6))],
                    )],
                );
                let out = c.send(0, 0, init);
                if method != DR {
                    c.send(1, 0, init_ack(&out[0], v6));
                }
                let data = sc::frame(
                    lab::CLIENT_MAC,
                    lab::LB0_MAC,
                    client(v6),
                    5000,
                    vip(v6),
                    port,
                    0x5eed_0002,
                    &[sc::data_chunk(b"hello")],
                );
                c.send(0, 0, data);
            }
            seeds.push((
                format!("sctp-{name}-{}", if v6 { "v6" } else { "v4" }),
                c.bytes(),
            ));
        }
    }

    // The slow path: ARP and neighbour solicitation for the VIPs, echo requests.
    let mut c = Conv::new(table_byte(NAT, 0, 0));
    c.send(0, 0, arp_request([198, 18, 100, 1]));
    c.send(0, 0, arp_request([198, 18, 0, 3]));
    c.send(0, 0, neighbour_solicitation());
    c.send(0, 0, echo(false));
    c.send(0, 0, echo(true));
    seeds.push(("slow-path".into(), c.bytes()));

    // Fragments of a large datagram (first fragment finds the flow, the rest follow).
    for v6 in [false, true] {
        let big = query(v6, 6000, 53, &[0x5a; 1200]);
        let (f1, f2) = if v6 {
            tk::fragment_v6(&big, 800, 0x1234)
        } else {
            tk::fragment_v4(&big, 800, 0x1234)
        };
        let mut c = Conv::new(table_byte(NAT, 0, 0));
        c.send(0, 0, f1.clone());
        c.send(0, 0, f2.clone());
        seeds.push((
            format!("fragments-{}", if v6 { "v6" } else { "v4" }),
            c.bytes(),
        ));
        // The later fragment first: it has no flow yet.
        let mut c = Conv::new(table_byte(FULLNAT, 0, 0));
        c.send(0, 0, f2);
        c.send(0, 0, f1);
        seeds.push((
            format!("fragments-reversed-{}", if v6 { "v6" } else { "v4" }),
            c.bytes(),
        ));
    }

    // TUN: a full-size packet that no longer fits once encapsulated (too big / frag needed).
    for v6 in [false, true] {
        let mut c = Conv::new(table_byte(TUN, 0, 0));
        c.send(0, 0, query(v6, 7000, 53, &[0x33; 1400]));
        seeds.push((
            format!("tun-too-big-{}", if v6 { "v6" } else { "v4" }),
            c.bytes(),
        ));
    }

    // A client the balancer has no neighbour entry for: the reply waits for ARP / NDP.
    for v6 in [false, true] {
        let stranger = a(if v6 { "2001:2::77" } else { "198.18.0.77" });
        let mut c = Conv::new(table_byte(NAT, 0, 0));
        let out = c.send(0, 0, syn(v6, stranger, 42000));
        c.send(1, 0, answer(&out[0], tk::SYN_ACK).unwrap());
        seeds.push((
            format!("unknown-neighbour-{}", if v6 { "v6" } else { "v4" }),
            c.bytes(),
        ));
    }

    // Drops: no service, a segment without SYN for an unknown flow, a truncated frame, an
    // unsupported EtherType, a flow after its timeout.
    let mut c = Conv::new(table_byte(NAT, 0, 0));
    c.send(0, 0, query(false, 8000, 99, b"nobody"));
    c.send(
        0,
        0,
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client(true),
            8001,
            vip(true),
            80,
            tk::ACK,
            b"late",
        ),
    );
    c.send(0, 0, tk::truncated(&syn(false, client(false), 8002), 30));
    let mut lldp = lab::LB0_MAC.to_vec();
    lldp.extend_from_slice(&lab::CLIENT_MAC);
    lldp.extend_from_slice(&[0x88, 0xcc]);
    lldp.resize(60, 0);
    c.send(0, 0, lldp);
    c.send(0, 0, syn(false, client(false), 8003));
    c.send(
        0,
        63,
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client(false),
            8003,
            vip(false),
            80,
            tk::ACK,
            b"",
        ),
    );
    seeds.push(("drops".into(), c.bytes()));

    for (name, bytes) in &seeds {
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
    eprintln!("wrote {} seeds to {}", seeds.len(), dir.display());
}
