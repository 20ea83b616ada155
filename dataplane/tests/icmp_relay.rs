//! ICMP errors about DR and TUN connections reach the host that must hear them, as IPVS's
//! `ip_vs_in_icmp` delivers them:
//! - from the client's side, about a reply the real server sent straight to the client
//!   (quoted: VIP → client): on to the real server — DR by its MAC, TUN through its tunnel
//!   (IPIP, GUE or GRE);
//! - from a router between the balancer and a TUN real server, about the tunnel packet
//!   (quoted: balancer → real server, tunnel header, client's packet): to the client, about
//!   its own packet, from the VIP, the MTU reduced by what the tunnel adds.
//!
//! Frames are built and taken apart with etherparse, independently of uvs's wire code.

use std::net::IpAddr;
use std::sync::Arc;

use uvs_dataplane::lab;
use uvs_dataplane::{DropReason, Method, Shared, TablesBuilder, TunEncap, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_testkit as tk;

struct Lab {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
}

impl Lab {
    fn new(method: Method, tun: TunEncap) -> Lab {
        let mut spec = lab::spec(method, SchedulerKind::Rr, 1);
        for s in &mut spec.services {
            for r in &mut s.reals {
                r.tun = tun;
            }
        }
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, 4096, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        let w = Worker::new(0, ports, shared.clone());
        Lab { shared, w }
    }

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
fn vip(v6: bool) -> IpAddr {
    ip(if v6 { lab::VIP6 } else { lab::VIP4 })
}
fn client(v6: bool) -> IpAddr {
    ip(if v6 { lab::CLIENT6 } else { lab::CLIENT4 })
}
fn real1(v6: bool) -> IpAddr {
    lab::real(1, v6).to_ip()
}
fn local(v6: bool) -> IpAddr {
    ip(if v6 { "2001:2:0:1::3" } else { "198.18.1.3" })
}

const GUE: TunEncap = TunEncap::Gue {
    port: 6080,
    checksum: true,
    remcsum: false,
};

/// Every method/encapsulation the relay must handle, with the bytes TUN adds.
fn cases() -> Vec<(Method, TunEncap, usize)> {
    vec![
        (Method::Dr, TunEncap::Ipip, 0),
        (Method::Tun, TunEncap::Ipip, 0),
        (Method::Tun, GUE, 12),
        (Method::Tun, TunEncap::Gre { checksum: true }, 8),
        (Method::Tun, TunEncap::Gre { checksum: false }, 4),
    ]
}

/// An ICMP error from `src` to `dst` quoting `quoted` (an IP packet): port unreachable, or
/// with `mtu` fragmentation needed / packet too big.
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
            let quoted = &quoted[..quoted.len().min(548)];
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
            let quoted = &quoted[..quoted.len().min(1232)];
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

/// (source, destination, ICMP type, the 4 bytes after type/code/checksum, quote) of an ICMP
/// error frame, its checksums verified.
fn take_icmp(frame: &[u8]) -> (IpAddr, IpAddr, u8, [u8; 4], Vec<u8>) {
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
            (
                IpAddr::V4(h.header().source_addr()),
                IpAddr::V4(h.header().destination_addr()),
                b[0],
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
            (
                IpAddr::V6(h.header().source_addr()),
                IpAddr::V6(h.header().destination_addr()),
                b[0],
                [b[4], b[5], b[6], b[7]],
                i.payload().to_vec(),
            )
        }
        other => panic!("not an ICMP error: {other:?}"),
    }
}

/// The IP packet a tunnelled frame to real server 1 carries, the outer headers checked
/// (from uvs's local address; GUE to its port with its 4-byte header; GRE with the inner
/// ethertype); DR's frame is the IP packet itself behind real server 1's MAC.
fn delivered(frame: &[u8], method: Method, tun: TunEncap, v6: bool) -> Vec<u8> {
    if method == Method::Dr {
        assert_eq!(&frame[..6], &lab::real_mac(1));
        return frame[14..].to_vec();
    }
    let s = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let (src, dst, proto, payload) = match &s.net {
        Some(etherparse::NetSlice::Ipv4(h)) => (
            IpAddr::V4(h.header().source_addr()),
            IpAddr::V4(h.header().destination_addr()),
            h.header().protocol().0,
            h.payload().payload.to_vec(),
        ),
        Some(etherparse::NetSlice::Ipv6(h)) => (
            IpAddr::V6(h.header().source_addr()),
            IpAddr::V6(h.header().destination_addr()),
            h.payload().ip_number.0,
            h.payload().payload.to_vec(),
        ),
        other => panic!("{other:?}"),
    };
    assert_eq!((src, dst), (local(v6), real1(v6)));
    let inner_proto = if v6 { 41 } else { 4 };
    match tun {
        TunEncap::Ipip => {
            assert_eq!(proto, inner_proto);
            payload
        }
        TunEncap::Gue { port, .. } => {
            assert_eq!(proto, 17);
            assert_eq!(u16::from_be_bytes([payload[2], payload[3]]), port);
            assert_eq!(&payload[8..12], &[0, inner_proto, 0, 0]);
            payload[12..].to_vec()
        }
        TunEncap::Gre { checksum } => {
            assert_eq!(proto, 47);
            let skip = if checksum { 8 } else { 4 };
            payload[skip..].to_vec()
        }
    }
}

/// The client's side reports an error about a reply the real server sent it straight
/// (quoted: VIP:53 → client): it reaches the real server unchanged but for the TTL.
#[test]
fn client_side_errors_go_on_to_the_real_server() {
    for (method, tun, _) in cases() {
        for v6 in [false, true] {
            let case = format!("{method:?} {tun:?} v6={v6}");
            let mut lab = Lab::new(method, tun);
            let request = tk::udp(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                51000,
                vip(v6),
                53,
                b"query",
            );
            let [_, fwd] = lab.send(0, &request);
            assert_eq!(fwd.len(), 1, "{case}");
            // The real server answers from the VIP, not through uvs.
            let reply = tk::udp(
                lab::real_mac(1),
                lab::CLIENT_MAC,
                vip(v6),
                53,
                client(v6),
                51000,
                b"answer",
            );
            let err = icmp_error(
                (lab::CLIENT_MAC, lab::LB0_MAC),
                client(v6),
                vip(v6),
                None,
                &reply[14..],
            );
            let [back, to_real] = lab.send(0, &err);
            assert!(back.is_empty(), "{case}");
            assert_eq!(
                to_real.len(),
                1,
                "{case}: the error reaches the real server"
            );
            let packet = delivered(&to_real[0], method, tun, v6);
            let mut eth = err[..14].to_vec();
            eth.extend_from_slice(&packet);
            let (src, dst, _, _, quote) = take_icmp(&eth);
            assert_eq!((src, dst), (client(v6), vip(v6)), "{case}");
            assert_eq!(
                quote,
                reply[14..].to_vec(),
                "{case}: the quote is untouched"
            );
        }
    }
}

/// A router between uvs and a TUN real server cannot pass the tunnel packet (MTU 1400) and
/// says so to uvs's local address, quoting the tunnel packet. The client hears it about its
/// own packet, from the VIP, with 1400 − (outer IP + tunnel header) as the MTU; a port
/// unreachable keeps its type. An error quoting a tunnel packet of no connection is
/// dropped and counted.
#[test]
fn tunnel_path_errors_reach_the_client() {
    for (method, tun, tun_hdr) in cases() {
        if method != Method::Tun {
            continue;
        }
        for v6 in [false, true] {
            for mtu in [Some(1400u16), None] {
                let case = format!("{tun:?} v6={v6} mtu={mtu:?}");
                let mut lab = Lab::new(method, tun);
                let mut request = tk::tcp(
                    lab::CLIENT_MAC,
                    lab::LB0_MAC,
                    client(v6),
                    52000,
                    vip(v6),
                    80,
                    tk::SYN,
                    b"",
                );
                if !v6 {
                    request[20] |= 0x40; // DF
                    request[24..26].copy_from_slice(&[0, 0]);
                    let c = tk::ipv4_header_checksum(&request[14..34]);
                    request[24..26].copy_from_slice(&c.to_be_bytes());
                }
                let [_, fwd] = lab.send(0, &request);
                assert_eq!(fwd.len(), 1, "{case}");
                let router = ip(if v6 { "2001:2:0:1::fe" } else { "198.18.1.254" });
                let err = icmp_error(
                    (lab::real_mac(2), lab::LB1_MAC),
                    router,
                    local(v6),
                    mtu,
                    &fwd[0][14..],
                );
                let [to_client, to_real] = lab.send(1, &err);
                assert!(to_real.is_empty(), "{case}");
                assert_eq!(to_client.len(), 1, "{case}: the client hears of it");
                assert_eq!(&to_client[0][..6], &lab::CLIENT_MAC, "{case}");
                let (src, dst, ty, rest, quote) = take_icmp(&to_client[0]);
                assert_eq!((src, dst), (vip(v6), client(v6)), "{case}");
                // As it left uvs, one hop older (TUN decrements the inner TTL).
                let sent = tk::one_hop_on(&request);
                assert_eq!(quote, sent[14..].to_vec(), "{case}: the client's packet");
                let overhead = (if v6 { 40 } else { 20 } + tun_hdr) as u32;
                match (v6, mtu) {
                    (false, Some(m)) => {
                        assert_eq!(ty, 3, "{case}");
                        let left = u16::from_be_bytes([rest[2], rest[3]]);
                        assert_eq!(u32::from(left), u32::from(m) - overhead, "{case}");
                    }
                    (true, Some(m)) => {
                        assert_eq!(ty, 2, "{case}");
                        // Never below IPv6's minimum MTU.
                        let want = (u32::from(m) - overhead).max(1280);
                        assert_eq!(u32::from_be_bytes(rest), want, "{case}");
                    }
                    (false, None) => assert_eq!((ty, rest), (3, [0; 4]), "{case}"),
                    (true, None) => assert_eq!((ty, rest), (1, [0; 4]), "{case}"),
                }

                // The same error about a connection that does not exist: dropped.
                let mut other = request.clone();
                let sport_at = if v6 { 54 } else { 34 };
                other[sport_at..sport_at + 2].copy_from_slice(&52999u16.to_be_bytes());
                let mut stray = fwd[0].clone();
                let inner_at = stray.len() - (request.len() - 14);
                stray[inner_at..].copy_from_slice(&other[14..]);
                let err = icmp_error(
                    (lab::real_mac(2), lab::LB1_MAC),
                    router,
                    local(v6),
                    mtu,
                    &stray[14..],
                );
                let before = lab.drops(DropReason::IcmpNoFlow);
                let [a, b] = lab.send(1, &err);
                assert!(a.is_empty() && b.is_empty(), "{case}");
                assert_eq!(lab.drops(DropReason::IcmpNoFlow), before + 1, "{case}");
            }
        }
    }
}

/// A FullNAT pool may use the interface's own address, the source of TUN's tunnel packets
/// too: an error about a FullNAT UDP flow from it is still translated with its flow (not
/// taken for a tunnel error).
#[test]
fn fullnat_errors_about_the_local_address_follow_their_flow() {
    for v6 in [false, true] {
        let mut spec = lab::spec(Method::FullNat, SchedulerKind::Rr, 1);
        for s in &mut spec.services {
            if s.key.vip.v6 == v6 {
                s.fullnat_pool = vec![uvs_dataplane::IpKey::from_ip(local(v6))];
            }
        }
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, 4096, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", 256), MemPort::new("server", 256)];
        let w = Worker::new(0, ports, shared.clone());
        let mut lab = Lab { shared, w };
        let request = tk::udp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client(v6),
            53000,
            vip(v6),
            53,
            b"query",
        );
        let [_, fwd] = lab.send(0, &request);
        assert_eq!(fwd.len(), 1, "v6={v6}");
        let err = icmp_error(
            (lab::real_mac(1), lab::LB1_MAC),
            real1(v6),
            local(v6),
            None,
            &fwd[0][14..],
        );
        let [to_client, _] = lab.send(1, &err);
        assert_eq!(to_client.len(), 1, "v6={v6}: the error reaches the client");
        let (src, dst, _, _, quote) = take_icmp(&to_client[0]);
        assert_eq!((src, dst), (vip(v6), client(v6)), "v6={v6}");
        let q = etherparse::SlicedPacket::from_ip(&quote).unwrap();
        let Some(etherparse::TransportSlice::Udp(u)) = q.transport else {
            panic!("v6={v6}")
        };
        assert_eq!(
            (u.source_port(), u.destination_port()),
            (53000, 53),
            "v6={v6}"
        );
    }
}
