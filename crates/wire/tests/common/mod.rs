//! Frame builders (etherparse) and independent checksum checks shared by the integration tests.
#![allow(dead_code)]

use etherparse::{
    icmpv4, Icmpv4Type, Icmpv6Type, IpNumber, NetHeaders, PacketBuilder, PacketBuilderStep,
    PacketHeaders, TransportHeader, VlanId,
};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// Benchmarking-range addresses only (198.18.0.0/15, 2001:2::/48).
pub fn v4(a: u8, b: u8, c: u8) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&[198, 18 + (a & 1), b, c]);
    x
}

pub fn v6(b: u8, c: u8) -> [u8; 16] {
    [0x20, 0x01, 0, 2, 0, 0, b, 0, 0, 0, 0, 0, 0, 0, 0, c]
}

pub fn a4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vlan {
    None,
    Single(u16),
    Double(u16, u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        syn: bool,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Echo {
        id: u16,
        seq: u16,
    },
    /// Raw payload after the IP header with this protocol number (e.g. SCTP built by hand).
    Raw(u8),
}

fn ip_step(
    v6: bool,
    vlan: Vlan,
    src: &[u8; 16],
    dst: &[u8; 16],
    ttl: u8,
) -> PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC);
    macro_rules! ip {
        ($b:expr) => {
            if v6 {
                $b.ipv6(*src, *dst, ttl)
            } else {
                $b.ipv4(a4(src), a4(dst), ttl)
            }
        };
    }
    match vlan {
        Vlan::None => ip!(eth),
        Vlan::Single(id) => ip!(eth.single_vlan(VlanId::try_new(id).unwrap())),
        Vlan::Double(o, i) => {
            ip!(eth.double_vlan(VlanId::try_new(o).unwrap(), VlanId::try_new(i).unwrap()))
        }
    }
}

/// Builds an Ethernet frame with etherparse; all checksums valid.
pub fn frame(
    v6: bool,
    vlan: Vlan,
    l4: L4,
    src: &[u8; 16],
    dst: &[u8; 16],
    payload: &[u8],
) -> Vec<u8> {
    let ip = ip_step(v6, vlan, src, dst, 64);
    let mut out = Vec::new();
    match l4 {
        L4::Tcp { sport, dport, syn } => {
            let t = ip.tcp(sport, dport, 1000, 64240);
            let t = if syn { t.syn() } else { t.ack(1) };
            t.write(&mut out, payload).unwrap();
        }
        L4::Udp { sport, dport } => ip.udp(sport, dport).write(&mut out, payload).unwrap(),
        L4::Echo { id, seq } => {
            if v6 {
                ip.icmpv6_echo_request(id, seq)
                    .write(&mut out, payload)
                    .unwrap()
            } else {
                ip.icmpv4_echo_request(id, seq)
                    .write(&mut out, payload)
                    .unwrap()
            }
        }
        L4::Raw(proto) => ip.write(&mut out, IpNumber(proto), payload).unwrap(),
    }
    out
}

/// An ICMP error (v4: port unreachable / frag needed; v6: dest unreachable / packet too big)
/// from `from` to `to`, quoting `quoted` (an IP packet, possibly truncated).
pub fn icmp_error(
    v6: bool,
    too_big: bool,
    from: &[u8; 16],
    to: &[u8; 16],
    quoted: &[u8],
) -> Vec<u8> {
    let ip = ip_step(v6, Vlan::None, from, to, 64);
    let mut out = Vec::new();
    if v6 {
        let ty = if too_big {
            Icmpv6Type::PacketTooBig { mtu: 1400 }
        } else {
            Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port)
        };
        ip.icmpv6(ty).write(&mut out, quoted).unwrap();
    } else {
        let h = if too_big {
            icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 }
        } else {
            icmpv4::DestUnreachableHeader::Port
        };
        ip.icmpv4(Icmpv4Type::DestinationUnreachable(h))
            .write(&mut out, quoted)
            .unwrap();
    }
    out
}

/// Checksums are equal up to the two ones'-complement zeros.
pub fn csum_eq(a: u16, b: u16) -> bool {
    a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

/// Re-parses `frame` with etherparse and asserts every checksum it can compute matches the
/// one in the frame (IPv4 header, TCP, UDP unless zero over IPv4, ICMPv4, ICMPv6).
pub fn assert_checksums(frame: &[u8]) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse re-parse");
    let payload = h.payload.slice();
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), t) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 header checksum"
            );
            match t {
                Some(TransportHeader::Tcp(tcp)) => {
                    let c = tcp.calc_checksum_ipv4(ip, payload).unwrap();
                    assert!(
                        csum_eq(tcp.checksum, c),
                        "TCP checksum {:#x} want {:#x}",
                        tcp.checksum,
                        c
                    );
                }
                Some(TransportHeader::Udp(u)) if u.checksum != 0 => {
                    let c = u.calc_checksum_ipv4(ip, payload).unwrap();
                    assert!(
                        csum_eq(u.checksum, c),
                        "UDP checksum {:#x} want {:#x}",
                        u.checksum,
                        c
                    );
                }
                Some(TransportHeader::Icmpv4(i)) => {
                    let c = i.icmp_type.calc_checksum(payload);
                    assert!(
                        csum_eq(i.checksum, c),
                        "ICMP checksum {:#x} want {:#x}",
                        i.checksum,
                        c
                    );
                }
                _ => {}
            }
        }
        (Some(NetHeaders::Ipv6(ip, _)), t) => match t {
            Some(TransportHeader::Tcp(tcp)) => {
                let c = tcp.calc_checksum_ipv6(ip, payload).unwrap();
                assert!(
                    csum_eq(tcp.checksum, c),
                    "TCP/v6 checksum {:#x} want {:#x}",
                    tcp.checksum,
                    c
                );
            }
            Some(TransportHeader::Udp(u)) => {
                let c = u.calc_checksum_ipv6(ip, payload).unwrap();
                assert!(
                    csum_eq(u.checksum, c),
                    "UDP/v6 checksum {:#x} want {:#x}",
                    u.checksum,
                    c
                );
            }
            Some(TransportHeader::Icmpv6(i)) => {
                let c = i
                    .icmp_type
                    .calc_checksum(ip.source, ip.destination, payload)
                    .unwrap();
                assert!(
                    csum_eq(i.checksum, c),
                    "ICMPv6 checksum {:#x} want {:#x}",
                    i.checksum,
                    c
                );
            }
            _ => {}
        },
        _ => {}
    }
}

/// A minimal SCTP packet (common header + one INIT-like chunk + DATA chunk) with a valid CRC32c
/// computed independently of the crate (crc32c crate directly, little-endian bytes).
pub fn sctp_packet(sport: u16, dport: u16, vtag: u32, first_chunk: u8) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(&vtag.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&[first_chunk, 0, 0, 20]);
    b.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1]);
    b.extend_from_slice(&[0, 3, 0, 19]); // DATA, 15 value bytes + 1 padding
    b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, b'h', b'e', b'y', 0]);
    let crc = crc32c::crc32c(&b);
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Independent CRC32c check of an SCTP packet.
pub fn sctp_crc_ok(pkt: &[u8]) -> bool {
    let mut z = pkt.to_vec();
    let stored = u32::from_le_bytes([z[8], z[9], z[10], z[11]]);
    z[8..12].fill(0);
    crc32c::crc32c(&z) == stored
}
