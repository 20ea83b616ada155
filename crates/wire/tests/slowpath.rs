//! Slow-path frame builders: the output is re-parsed by etherparse (and by our own classify)
//! and every checksum verified.

mod common;

use common::*;
use etherparse::{Icmpv4Type, Icmpv6Type, NetHeaders, PacketHeaders, TransportHeader};
use uvs_wire::arp::operation;
use uvs_wire::build::{self, BuildError};
use uvs_wire::icmpv6::{msg_type, na_flags, Icmpv6Repr};
use uvs_wire::{ip_proto, parse_frame, ArpRepr, Classified, L3};

#[test]
fn arp_request_and_reply() {
    let mut out = [0u8; 64];
    let n = build::arp_request(
        CLIENT_MAC,
        [198, 18, 0, 2],
        [198, 18, 100, 1],
        Some(10),
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 18 + 28);
    assert_eq!(
        uvs_wire::classify(&out[..n]),
        Ok(Classified::Arp { l3_off: 18 })
    );
    let h = PacketHeaders::from_ethernet_slice(&out[..n]).unwrap();
    let Some(NetHeaders::Arp(arp)) = h.net else {
        panic!("etherparse sees no ARP")
    };
    assert_eq!(arp.operation, etherparse::ArpOperation::REQUEST);
    assert_eq!(arp.target_protocol_addr(), &[198, 18, 100, 1]);

    let req = out[..n].to_vec();
    let m = build::arp_reply(&req, LB_MAC, &mut out).unwrap();
    assert_eq!(&out[..6], &CLIENT_MAC);
    assert_eq!(&out[6..12], &LB_MAC);
    let reply = ArpRepr::parse(&out[18..m]).unwrap().unwrap();
    assert_eq!(reply.operation, operation::REPLY);
    assert_eq!(reply.source_hardware_addr, LB_MAC);
    assert_eq!(reply.source_protocol_addr, [198, 18, 100, 1]);
    assert_eq!(reply.target_protocol_addr, [198, 18, 0, 2]);
    // A reply is not answered.
    let rep = out[..m].to_vec();
    assert_eq!(
        build::arp_reply(&rep, LB_MAC, &mut out),
        Err(BuildError::NotApplicable)
    );
    assert_eq!(
        build::arp_reply(&req, LB_MAC, &mut out[..40]),
        Err(BuildError::NoRoom)
    );
}

#[test]
fn ndp_solicit_and_advert() {
    let ours = common::v6(1, 1);
    let peer = common::v6(0, 2);
    let mut out = [0u8; 128];
    let n = build::ndp_neighbor_solicit(CLIENT_MAC, &peer, &ours, None, &mut out).unwrap();
    assert_checksums(&out[..n]);
    let p = parse_frame(&out[..n]).unwrap();
    assert_eq!(
        (p.l4_proto, p.icmp_type),
        (ip_proto::ICMPV6, msg_type::NEIGHBOR_SOLICIT)
    );
    assert_eq!(&out[..6], &[0x33, 0x33, 0xff, 0, 0, 1]);
    let h = PacketHeaders::from_ethernet_slice(&out[..n]).unwrap();
    let Some(TransportHeader::Icmpv6(i)) = h.transport else {
        panic!()
    };
    assert!(matches!(
        i.icmp_type,
        Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            ..
        }
    ));

    let ns = out[..n].to_vec();
    let m = build::ndp_neighbor_advert(&ns, &p, LB_MAC, &mut out).unwrap();
    assert_checksums(&out[..m]);
    let q = parse_frame(&out[..m]).unwrap();
    assert_eq!(
        (q.src, q.dst, q.icmp_type),
        (ours, peer, msg_type::NEIGHBOR_ADVERT)
    );
    assert_eq!(out[14 + 7], 255, "NDP hop limit");
    let body = &out[usize::from(q.l4_off)..m];
    let na = Icmpv6Repr::parse(body, &q.src, &q.dst).unwrap().unwrap();
    assert_eq!(
        na,
        Icmpv6Repr::NeighborAdvert {
            flags: na_flags::SOLICITED | na_flags::OVERRIDE,
            target: ours,
            lladdr: Some(LB_MAC)
        }
    );
    // An NS with a hop limit other than 255 is not answered (RFC 4861 §7.1.1).
    let mut bad = ns.clone();
    bad[14 + 7] = 64;
    assert_eq!(
        build::ndp_neighbor_advert(&bad, &p, LB_MAC, &mut out),
        Err(BuildError::NotApplicable)
    );
}

#[test]
fn echo_replies() {
    for v6 in [false, true] {
        let (c, s) = if v6 {
            (common::v6(0, 2), common::v6(1, 1))
        } else {
            (common::v4(0, 0, 2), common::v4(0, 100, 1))
        };
        let req = frame(
            v6,
            Vlan::Single(4),
            L4::Echo { id: 77, seq: 3 },
            &c,
            &s,
            b"0123456789",
        );
        let p = parse_frame(&req).unwrap();
        let mut out = [0u8; 256];
        let n = build::icmp_echo_reply(&req, &p, &mut out).unwrap();
        assert_eq!(n, req.len());
        assert_checksums(&out[..n]);
        let q = parse_frame(&out[..n]).unwrap();
        assert_eq!((q.src, q.dst, q.vlan), (s, c, Some(4)));
        let h = PacketHeaders::from_ethernet_slice(&out[..n]).unwrap();
        match h.transport {
            Some(TransportHeader::Icmpv4(i)) => {
                assert!(matches!(i.icmp_type, Icmpv4Type::EchoReply(e) if e.id == 77 && e.seq == 3))
            }
            Some(TransportHeader::Icmpv6(i)) => {
                assert!(matches!(i.icmp_type, Icmpv6Type::EchoReply(e) if e.id == 77 && e.seq == 3))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.payload.slice(), b"0123456789");
        // A reply is not answered.
        let rep = out[..n].to_vec();
        assert_eq!(
            build::icmp_echo_reply(&rep, &q, &mut out),
            Err(BuildError::NotApplicable)
        );
    }
}

#[test]
fn too_big_errors_quote_the_packet_and_are_bounded() {
    let big = vec![0xabu8; 1400];
    for v6 in [false, true] {
        let (c, s) = if v6 {
            (common::v6(0, 2), common::v6(1, 1))
        } else {
            (common::v4(0, 0, 2), common::v4(0, 100, 1))
        };
        let f = frame(
            v6,
            Vlan::None,
            L4::Tcp {
                sport: 40000,
                dport: 80,
                syn: false,
            },
            &c,
            &s,
            &big,
        );
        let p = parse_frame(&f).unwrap();
        let mut out = [0u8; 2000];
        let ours = if v6 {
            common::v6(1, 0xfe)
        } else {
            common::v4(0, 0, 1)
        };
        let n = if v6 {
            build::icmpv6_packet_too_big(&f, &p, &ours, 1280, &mut out).unwrap()
        } else {
            build::icmpv4_frag_needed(&f, &p, [ours[0], ours[1], ours[2], ours[3]], 1400, &mut out)
                .unwrap()
        };
        assert_eq!(n - 14, if v6 { 1280 } else { 576 });
        assert_checksums(&out[..n]);
        let q = parse_frame(&out[..n]).unwrap();
        assert_eq!((q.src, q.dst), (ours, c));
        let e = uvs_wire::parse_icmp_embedded(&out[..n], &q).unwrap();
        assert_eq!((e.src, e.dst, e.sport, e.dport), (c, s, 40000, 80));
        let h = PacketHeaders::from_ethernet_slice(&out[..n]).unwrap();
        match h.transport {
            Some(TransportHeader::Icmpv4(i)) => assert_eq!(
                i.icmp_type,
                Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                        next_hop_mtu: 1400
                    }
                )
            ),
            Some(TransportHeader::Icmpv6(i)) => {
                assert_eq!(i.icmp_type, Icmpv6Type::PacketTooBig { mtu: 1280 })
            }
            other => panic!("{other:?}"),
        }
        // No error about an error.
        let mut o2 = [0u8; 2000];
        let err_frame = out[..n].to_vec();
        let r = if v6 {
            build::icmpv6_packet_too_big(&err_frame, &q, &ours, 1280, &mut o2)
        } else {
            build::icmpv4_frag_needed(&err_frame, &q, [1, 1, 1, 1], 1400, &mut o2)
        };
        assert_eq!(r, Err(BuildError::NotApplicable));
        assert_eq!(q.l3, if v6 { L3::V6 } else { L3::V4 });
    }
}

#[test]
fn gratuitous_arp_announces_the_address() {
    let mut out = [0u8; 64];
    let vip = [198, 18, 100, 1];
    let n = build::gratuitous_arp(LB_MAC, vip, None, &mut out).unwrap();
    assert_eq!(n, 14 + 28);
    assert_eq!(&out[..6], &[0xff; 6], "broadcast");
    assert_eq!(&out[6..12], &LB_MAC);
    let h = PacketHeaders::from_ethernet_slice(&out[..n]).unwrap();
    let Some(NetHeaders::Arp(arp)) = h.net else {
        panic!("etherparse sees no ARP")
    };
    assert_eq!(arp.operation, etherparse::ArpOperation::REQUEST);
    assert_eq!(arp.sender_hw_addr(), &LB_MAC);
    assert_eq!(arp.sender_protocol_addr(), &vip);
    assert_eq!(
        arp.target_protocol_addr(),
        &vip,
        "sender = target: gratuitous"
    );
    assert_eq!(arp.target_hw_addr(), &[0; 6]);
    // Tagged, and too small a buffer.
    let m = build::gratuitous_arp(LB_MAC, vip, Some(7), &mut out).unwrap();
    assert_eq!(
        uvs_wire::classify(&out[..m]),
        Ok(Classified::Arp { l3_off: 18 })
    );
    assert_eq!(
        build::gratuitous_arp(LB_MAC, vip, None, &mut out[..41]),
        Err(BuildError::NoRoom)
    );
}

#[test]
fn unsolicited_advert_overrides() {
    let vip = common::v6(100, 1);
    let mut out = [0u8; 128];
    let n = build::unsolicited_neighbor_advert(LB_MAC, &vip, None, &mut out).unwrap();
    assert_checksums(&out[..n]);
    assert_eq!(&out[..6], &[0x33, 0x33, 0, 0, 0, 1], "all-nodes MAC");
    let p = parse_frame(&out[..n]).unwrap();
    let all_nodes = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(
        (p.src, p.dst, p.icmp_type),
        (vip, all_nodes, msg_type::NEIGHBOR_ADVERT)
    );
    assert_eq!(out[14 + 7], 255, "NDP hop limit");
    let h = PacketHeaders::from_ethernet_slice(&out[..n]).unwrap();
    let Some(NetHeaders::Ipv6(ip, _)) = &h.net else {
        panic!("etherparse sees no IPv6")
    };
    assert_eq!(ip.hop_limit, 255);
    let Some(TransportHeader::Icmpv6(i)) = h.transport else {
        panic!("etherparse sees no ICMPv6")
    };
    assert!(matches!(
        i.icmp_type,
        Icmpv6Type::Unknown {
            type_u8: 136,
            code_u8: 0,
            ..
        }
    ));
    let body = &out[usize::from(p.l4_off)..n];
    assert_eq!(
        Icmpv6Repr::parse(body, &p.src, &p.dst).unwrap().unwrap(),
        Icmpv6Repr::NeighborAdvert {
            flags: na_flags::OVERRIDE,
            target: vip,
            lladdr: Some(LB_MAC)
        }
    );
    assert_eq!(
        build::unsolicited_neighbor_advert(LB_MAC, &vip, None, &mut out[..80]),
        Err(BuildError::NoRoom)
    );
}
