//! NAT64 virtual services (RFC 7915): an IPv6 VIP served by IPv4 real servers through FullNAT
//! with an IPv4 pool. A real `Worker` over in-memory ports (port 0 = client side, port 1 =
//! real servers); every frame that leaves is re-parsed by etherparse, which recomputes every
//! checksum.

use std::net::IpAddr;
use std::sync::Arc;

use uvs_dataplane::lab;
use uvs_dataplane::{DropReason, Method, Shared, TablesBuilder, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_testkit::{self as tk, check_frame, Seen};

struct Lab {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
}

/// The lab's FullNAT services, the IPv6 ones turned into NAT64: IPv4 real servers
/// 198.18.1.11-13 and the IPv4 pool 198.18.1.100.
fn nat64_lab() -> Lab {
    let mut spec = lab::spec(Method::FullNat, SchedulerKind::Rr, 1);
    for s in spec.services.iter_mut().filter(|s| s.key.vip.v6) {
        for (n, r) in s.reals.iter_mut().enumerate() {
            r.addr = lab::real(n as u8 + 1, false);
        }
        s.fullnat_pool = vec![lab::ipk(lab::POOL4)];
    }
    let tables = TablesBuilder::build(&spec, None).unwrap();
    let shared = Arc::new(Shared::new(tables, 4096, 1));
    lab::learn_neighbours(&shared.neigh, 0);
    let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
    let w = Worker::new(0, ports, shared.clone());
    Lab { shared, w }
}

impl Lab {
    fn send(&mut self, port: usize, frame: &[u8]) -> [Vec<Vec<u8>>; 2] {
        assert!(self.w.ports[port].push_rx(frame));
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.shared.counters[0].dropped(r)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn vip6() -> IpAddr {
    ip(lab::VIP6)
}
fn client6() -> IpAddr {
    ip(lab::CLIENT6)
}
fn real4(n: u8) -> IpAddr {
    lab::real(n, false).to_ip()
}
fn pool4() -> IpAddr {
    ip(lab::POOL4)
}

fn only(out: &[Vec<u8>]) -> Seen {
    assert_eq!(
        out.len(),
        1,
        "expected exactly one frame, got {}",
        out.len()
    );
    check_frame(&out[0])
        .unwrap_or_else(|e| panic!("emitted frame fails the independent check: {e}"))
}

/// The IPv4 header fields RFC 7915 §5.1 sets: (TOS, DF, identification, TTL).
fn v4_fields(frame: &[u8]) -> (u8, bool, u16, u8) {
    let s = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::NetSlice::Ipv4(h)) = s.net else {
        panic!("not IPv4");
    };
    let h = h.header();
    (
        h.dcp().value() << 2 | h.ecn().value(),
        h.dont_fragment(),
        h.identification(),
        h.ttl(),
    )
}

#[test]
fn tcp_syn_from_an_ipv6_client_reaches_an_ipv4_server_and_the_reply_comes_back_as_ipv6() {
    let mut lab = nat64_lab();
    let syn = tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client6(),
        40000,
        vip6(),
        80,
        tk::SYN,
        b"",
    );
    let [to_client, to_servers] = lab.send(0, &syn);
    assert!(to_client.is_empty());
    let out = only(&to_servers);
    assert_eq!((out.src, out.dst), (pool4(), real4(1)));
    assert_eq!((out.proto, out.dport), (6, 80));
    assert!(out.sport >= 1024);
    assert_eq!((out.src_mac, out.dst_mac), (lab::LB1_MAC, lab::real_mac(1)));
    // Hop limit 64, decremented once, becomes the TTL; DF set, identification 0.
    assert_eq!(v4_fields(&to_servers[0]), (0, true, 0, 63));
    assert_eq!(to_servers[0].len(), syn.len() - 20);

    let syn_ack = tk::tcp(
        lab::real_mac(1),
        lab::LB1_MAC,
        real4(1),
        80,
        pool4(),
        out.sport,
        tk::SYN_ACK,
        b"",
    );
    let [to_client, to_servers] = lab.send(1, &syn_ack);
    assert!(to_servers.is_empty());
    let back = only(&to_client);
    assert_eq!((back.src, back.dst), (vip6(), client6()));
    assert_eq!((back.sport, back.dport, back.proto), (80, 40000, 6));
    assert_eq!(
        (back.src_mac, back.dst_mac),
        (lab::LB0_MAC, lab::CLIENT_MAC)
    );
    assert_eq!(back.ttl, 63);
    assert_eq!(to_client[0].len(), syn_ack.len() + 20);

    // The client's data follows the same entry, payload intact.
    let data = tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client6(),
        40000,
        vip6(),
        80,
        tk::ACK,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let [_, to_servers] = lab.send(0, &data);
    let out2 = only(&to_servers);
    assert_eq!(
        (out2.src, out2.sport, out2.dst),
        (pool4(), out.sport, real4(1))
    );
    assert_eq!(out2.payload, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        lab.shared.conns.len_of(true),
        1,
        "one entry, in the IPv6 table"
    );
    assert_eq!(lab.shared.conns.len_of(false), 0);
}

#[test]
fn udp_both_ways() {
    let mut lab = nat64_lab();
    let q = tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client6(),
        5353,
        vip6(),
        53,
        b"query",
    );
    let [_, to_servers] = lab.send(0, &q);
    let out = only(&to_servers);
    assert_eq!(
        (out.src, out.dst, out.dport, out.proto),
        (pool4(), real4(1), 53, 17)
    );
    assert_eq!(out.payload, b"query");
    let r = tk::udp(
        lab::real_mac(1),
        lab::LB1_MAC,
        real4(1),
        53,
        pool4(),
        out.sport,
        b"answer",
    );
    let [to_client, _] = lab.send(1, &r);
    let back = only(&to_client);
    assert_eq!(
        (back.src, back.sport, back.dst, back.dport),
        (vip6(), 53, client6(), 5353)
    );
    assert_eq!(back.payload, b"answer");
}

#[test]
fn a_pool_packet_of_no_flow_is_not_translated() {
    let mut lab = nat64_lab();
    let stray = tk::udp(
        lab::real_mac(1),
        lab::LB1_MAC,
        real4(1),
        53,
        pool4(),
        4000,
        b"x",
    );
    let [to_client, to_servers] = lab.send(1, &stray);
    assert!(to_client.is_empty(), "not translated");
    // Refused as the director's stack refuses a port nothing listens on: ICMP port
    // unreachable back to the server, from the pool address.
    assert_eq!(to_servers.len(), 1);
    let s = etherparse::SlicedPacket::from_ethernet(&to_servers[0]).unwrap();
    assert!(
        matches!(s.transport, Some(etherparse::TransportSlice::Icmpv4(_))),
        "{:?}",
        s.transport
    );
    assert_eq!(lab.drops(DropReason::NoService), 1);
}

#[test]
fn ipv6_fragments_of_a_nat64_service_are_dropped_and_counted() {
    let mut lab = nat64_lab();
    let big = tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client6(),
        5353,
        vip6(),
        53,
        &[7u8; 600],
    );
    let (first, _) = tk::fragment_v6(&big, 200, 9);
    let [to_client, to_servers] = lab.send(0, &first);
    assert!(to_client.is_empty() && to_servers.is_empty());
    assert_eq!(lab.drops(DropReason::Nat64Untranslatable), 1);
}

/// An ICMP error from `src` to `dst` quoting `quoted`, built by etherparse.
fn icmp_error(
    macs: ([u8; 6], [u8; 6]),
    src: IpAddr,
    dst: IpAddr,
    mtu: Option<u16>,
    quoted: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(macs.0, macs.1);
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let t = match mtu {
                Some(m) => etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: m,
                },
                None => etherparse::icmpv4::DestUnreachableHeader::Port,
            };
            b.ipv4(s.octets(), d.octets(), 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(t))
                .write(&mut out, quoted)
                .unwrap()
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let t = match mtu {
                Some(m) => etherparse::Icmpv6Type::PacketTooBig { mtu: u32::from(m) },
                None => etherparse::Icmpv6Type::DestinationUnreachable(
                    etherparse::icmpv6::DestUnreachableCode::Port,
                ),
            };
            b.ipv6(s.octets(), d.octets(), 64)
                .icmpv6(t)
                .write(&mut out, quoted)
                .unwrap()
        }
        _ => unreachable!(),
    }
    out
}

/// (source, destination, type, code, the 4 bytes after the checksum, quote) of an ICMP error
/// frame, its checksums verified by etherparse.
fn take_icmp(frame: &[u8]) -> (IpAddr, IpAddr, u8, u8, [u8; 4], Vec<u8>) {
    let s = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    match (&s.net, &s.transport) {
        (Some(etherparse::NetSlice::Ipv4(h)), Some(etherparse::TransportSlice::Icmpv4(i))) => {
            let hdr = h.header().to_header();
            assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum);
            assert_eq!(
                i.header().checksum,
                i.icmp_type().calc_checksum(i.payload())
            );
            let b = i.slice();
            let (src, dst) = (h.header().source_addr(), h.header().destination_addr());
            (
                src.into(),
                dst.into(),
                b[0],
                b[1],
                [b[4], b[5], b[6], b[7]],
                i.payload().to_vec(),
            )
        }
        (Some(etherparse::NetSlice::Ipv6(h)), Some(etherparse::TransportSlice::Icmpv6(i))) => {
            let want = i
                .icmp_type()
                .calc_checksum(h.header().source(), h.header().destination(), i.payload())
                .unwrap();
            assert_eq!(i.checksum(), want);
            let b = i.slice();
            let (src, dst) = (h.header().source_addr(), h.header().destination_addr());
            (
                src.into(),
                dst.into(),
                b[0],
                b[1],
                [b[4], b[5], b[6], b[7]],
                i.payload().to_vec(),
            )
        }
        other => panic!("not an ICMP error: {other:?}"),
    }
}

/// Addresses and ports of a quoted IP packet, parsed by etherparse's lax slicer.
fn quoted_tuple(quote: &[u8]) -> (IpAddr, IpAddr, u16, u16) {
    let s = etherparse::LaxSlicedPacket::from_ip(quote).unwrap();
    let (src, dst): (IpAddr, IpAddr) = match &s.net {
        Some(etherparse::LaxNetSlice::Ipv4(h)) => (
            h.header().source_addr().into(),
            h.header().destination_addr().into(),
        ),
        Some(etherparse::LaxNetSlice::Ipv6(h)) => (
            h.header().source_addr().into(),
            h.header().destination_addr().into(),
        ),
        other => panic!("quote: {other:?}"),
    };
    let p = match &s.net {
        Some(etherparse::LaxNetSlice::Ipv4(h)) => h.payload().payload,
        Some(etherparse::LaxNetSlice::Ipv6(h)) => h.payload().payload,
        _ => unreachable!(),
    };
    (
        src,
        dst,
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    )
}

#[test]
fn fragmentation_needed_from_the_server_side_reaches_the_client_as_packet_too_big() {
    let mut lab = nat64_lab();
    let syn = tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client6(),
        40000,
        vip6(),
        80,
        tk::SYN,
        b"",
    );
    let [_, to_servers] = lab.send(0, &syn);
    let sent = to_servers[0][14..].to_vec();
    // A router on the servers' side cannot forward it: MTU 1400.
    let err = icmp_error(
        (lab::real_mac(1), lab::LB1_MAC),
        ip("198.18.1.1"),
        pool4(),
        Some(1400),
        &sent,
    );
    let [to_client, to_servers] = lab.send(1, &err);
    assert!(to_servers.is_empty());
    assert_eq!(to_client.len(), 1);
    let (src, dst, ty, code, rest, quote) = take_icmp(&to_client[0]);
    assert_eq!((src, dst), (vip6(), client6()));
    assert_eq!((ty, code), (2, 0), "ICMPv6 packet too big");
    assert_eq!(
        u32::from_be_bytes(rest),
        1420,
        "the IPv4 MTU plus the 20 bytes IPv6 adds"
    );
    assert_eq!(
        quoted_tuple(&quote),
        (client6(), vip6(), 40000, 80),
        "the client's own packet"
    );
    assert_eq!(&to_client[0][..6], &lab::CLIENT_MAC);
}

#[test]
fn port_unreachable_both_ways() {
    let mut lab = nat64_lab();
    let q = tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client6(),
        5353,
        vip6(),
        53,
        b"query",
    );
    let [_, to_servers] = lab.send(0, &q);
    let lport = only(&to_servers).sport;
    // The real server has no socket: port unreachable to the pool → destination
    // unreachable (port) to the client.
    let sent = to_servers[0][14..].to_vec();
    let err = icmp_error(
        (lab::real_mac(1), lab::LB1_MAC),
        real4(1),
        pool4(),
        None,
        &sent,
    );
    let [to_client, _] = lab.send(1, &err);
    let (src, dst, ty, code, _, quote) = take_icmp(&to_client[0]);
    assert_eq!((src, dst, ty, code), (vip6(), client6(), 1, 4));
    assert_eq!(quoted_tuple(&quote), (client6(), vip6(), 5353, 53));

    // The client closed its socket before the answer: its ICMPv6 port unreachable about the
    // (translated) answer reaches the real server as ICMPv4, about the server's own packet.
    let r = tk::udp(
        lab::real_mac(1),
        lab::LB1_MAC,
        real4(1),
        53,
        pool4(),
        lport,
        b"answer",
    );
    let [to_client, _] = lab.send(1, &r);
    let answer = to_client[0][14..].to_vec();
    let err6 = icmp_error(
        (lab::CLIENT_MAC, lab::LB0_MAC),
        client6(),
        vip6(),
        None,
        &answer,
    );
    let [_, to_servers] = lab.send(0, &err6);
    assert_eq!(to_servers.len(), 1);
    let (src, dst, ty, code, _, quote) = take_icmp(&to_servers[0]);
    assert_eq!((src, dst, ty, code), (pool4(), real4(1), 3, 3));
    assert_eq!(quoted_tuple(&quote), (real4(1), pool4(), 53, lport));
    assert_eq!(&to_servers[0][..6], &lab::real_mac(1));
}

#[test]
fn a_reply_too_big_for_ipv6_is_refused_with_fragmentation_needed() {
    let mut lab = nat64_lab();
    let q = tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client6(),
        5353,
        vip6(),
        53,
        b"query",
    );
    let [_, to_servers] = lab.send(0, &q);
    let lport = only(&to_servers).sport;
    // 1490 bytes of IPv4 (DF, as etherparse sets it) would be 1510 as IPv6: over the 1500 MTU.
    let r = tk::udp(
        lab::real_mac(1),
        lab::LB1_MAC,
        real4(1),
        53,
        pool4(),
        lport,
        &[1u8; 1462],
    );
    let [to_client, to_servers] = lab.send(1, &r);
    assert!(to_client.is_empty());
    let (src, dst, ty, code, rest, _) = take_icmp(&to_servers[0]);
    assert_eq!((src, dst, ty, code), (pool4(), real4(1), 3, 4));
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 1480);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// A NAT64 flow open on a fresh lab, and frames of it from both sides: the server's
    /// reply, the client's data, an ICMPv4 error from the servers' side and an ICMPv6 error
    /// from the client's.
    fn flow() -> (Lab, Vec<Vec<u8>>) {
        let mut lab = nat64_lab();
        let syn = tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client6(),
            40000,
            vip6(),
            80,
            tk::SYN,
            b"",
        );
        let [_, to_servers] = lab.send(0, &syn);
        let sent = to_servers[0][14..].to_vec();
        let lport = only(&to_servers).sport;
        let reply = tk::tcp(
            lab::real_mac(1),
            lab::LB1_MAC,
            real4(1),
            80,
            pool4(),
            lport,
            tk::SYN_ACK,
            b"hello",
        );
        let [to_client, _] = lab.send(1, &reply);
        let answer = to_client[0][14..].to_vec();
        let data = tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client6(),
            40000,
            vip6(),
            80,
            tk::ACK,
            b"data",
        );
        let e4 = icmp_error(
            (lab::real_mac(1), lab::LB1_MAC),
            ip("198.18.1.1"),
            pool4(),
            Some(1400),
            &sent,
        );
        let e6 = icmp_error(
            (lab::CLIENT_MAC, lab::LB0_MAC),
            client6(),
            vip6(),
            Some(1300),
            &answer,
        );
        (lab, vec![reply, data, e4, e6])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Mutated and cut frames of a NAT64 flow: each is forwarded or dropped and
        /// counted, none panics.
        #[test]
        fn mutated_frames_of_a_nat64_flow(seed in prop::collection::vec((0usize..4, 0usize..140, any::<u8>(), 1usize..140), 1..30)) {
            let (mut lab, base) = flow();
            let before = lab.shared.counters[0].total_drops();
            let mut out = 0;
            for (which, at, byte, cut) in &seed {
                let mut f = base[*which].clone();
                let at = at % f.len();
                f[at] = *byte;
                f.truncate((*cut).min(f.len()));
                let port = if *which % 2 == 0 { 1 } else { 0 };
                let [a, b] = lab.send(port, &f);
                out += a.len() + b.len();
                for frame in a.iter().chain(&b) {
                    // Whatever leaves is a well-formed frame.
                    prop_assert!(etherparse::SlicedPacket::from_ethernet(frame).is_ok());
                }
            }
            let drops = lab.shared.counters[0].total_drops() - before;
            let slow = lab.shared.counters[0].slow_path.get();
            prop_assert!(out as u64 + drops + slow >= seed.len() as u64);
        }
    }
}
