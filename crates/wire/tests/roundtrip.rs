//! etherparse builds frames; uvs-wire classifies and rewrites them; etherparse re-parses the
//! output and every checksum must match its own recomputation.

mod common;

use common::*;
use proptest::prelude::*;
use uvs_wire::{
    classify, decrement_ttl, ip_proto, parse_frame, set_dst_addr, set_dst_port, set_macs,
    set_src_addr, set_src_port, verify_l4_checksum, Classified, Frag, Parsed, L3,
};

const VLANS: [Vlan; 3] = [Vlan::None, Vlan::Single(100), Vlan::Double(200, 7)];

fn l4s() -> [L4; 4] {
    [
        L4::Tcp {
            sport: 40000,
            dport: 80,
            syn: true,
        },
        L4::Tcp {
            sport: 40001,
            dport: 443,
            syn: false,
        },
        L4::Udp {
            sport: 5353,
            dport: 53,
        },
        L4::Echo { id: 0x1234, seq: 7 },
    ]
}

fn addrs(v6: bool) -> ([u8; 16], [u8; 16]) {
    if v6 {
        (common::v6(0, 2), common::v6(1, 1))
    } else {
        (common::v4(0, 0, 2), common::v4(0, 100, 1))
    }
}

fn check_parsed(
    p: &Parsed,
    f: &[u8],
    v6: bool,
    vlan: Vlan,
    l4: L4,
    src: &[u8; 16],
    dst: &[u8; 16],
) {
    assert_eq!(p.l3, if v6 { L3::V6 } else { L3::V4 });
    let l3_off = match vlan {
        Vlan::None => 14,
        Vlan::Single(_) => 18,
        Vlan::Double(..) => 22,
    };
    assert_eq!(usize::from(p.l3_off), l3_off);
    assert_eq!(
        p.vlan,
        match vlan {
            Vlan::None => None,
            Vlan::Single(v) | Vlan::Double(v, _) => Some(v),
        }
    );
    assert_eq!(&p.src, src);
    assert_eq!(&p.dst, dst);
    assert_eq!(p.l3_end(), f.len());
    assert_eq!(p.frag, Frag::None);
    match l4 {
        L4::Tcp { sport, dport, syn } => {
            assert_eq!(
                (p.l4_proto, p.sport, p.dport),
                (ip_proto::TCP, sport, dport)
            );
            assert_eq!(p.tcp_flags & 0x02 != 0, syn);
        }
        L4::Udp { sport, dport } => assert_eq!(
            (p.l4_proto, p.sport, p.dport, p.tcp_flags),
            (ip_proto::UDP, sport, dport, 0)
        ),
        L4::Echo { .. } => {
            let want = if v6 {
                (ip_proto::ICMPV6, 128)
            } else {
                (ip_proto::ICMP, 8)
            };
            assert_eq!(
                (p.l4_proto, p.icmp_type, p.sport, p.dport),
                (want.0, want.1, 0, 0)
            );
        }
        L4::Raw(_) => {}
    }
    assert!(verify_l4_checksum(f, p));
}

#[test]
fn every_family_vlan_protocol_parses_and_rewrites() {
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    let mut count = 0;
    for v6 in [false, true] {
        let (src, dst) = addrs(v6);
        let (nsrc, ndst) = if v6 {
            (common::v6(0x10, 5), common::v6(1, 0x11))
        } else {
            (common::v4(1, 0, 5), common::v4(1, 1, 11))
        };
        for vlan in VLANS {
            for l4 in l4s() {
                let f0 = frame(v6, vlan, l4, &src, &dst, payload);
                let p0 = parse_frame(&f0).unwrap();
                check_parsed(&p0, &f0, v6, vlan, l4, &src, &dst);
                assert_checksums(&f0);
                // Each rewrite alone, then all of them.
                for which in 0..6 {
                    let mut f = f0.clone();
                    let mut p = p0;
                    if which == 0 || which == 5 {
                        set_src_addr(&mut f, &mut p, &nsrc);
                    }
                    if which == 1 || which == 5 {
                        set_dst_addr(&mut f, &mut p, &ndst);
                    }
                    if which == 2 || which == 5 {
                        set_src_port(&mut f, &mut p, 61000);
                    }
                    if which == 3 || which == 5 {
                        set_dst_port(&mut f, &mut p, 8080);
                    }
                    if which == 4 || which == 5 {
                        assert!(decrement_ttl(&mut f, &p));
                        set_macs(&mut f, [2, 0, 0, 0, 0, 0x10], [2, 0, 0, 0, 0, 0x11]);
                    }
                    assert_checksums(&f);
                    let q = parse_frame(&f).unwrap();
                    assert_eq!(q, p, "Parsed after rewrite {which} must match the reparse");
                    assert!(verify_l4_checksum(&f, &q));
                    count += 1;
                }
            }
        }
    }
    assert_eq!(count, 2 * 3 * 4 * 6);
}

#[test]
fn udp_v4_zero_checksum_survives_rewrites() {
    let (src, dst) = addrs(false);
    let mut f = frame(
        false,
        Vlan::None,
        L4::Udp { sport: 1, dport: 2 },
        &src,
        &dst,
        b"abc",
    );
    f[40] = 0;
    f[41] = 0;
    let mut p = parse_frame(&f).unwrap();
    assert!(verify_l4_checksum(&f, &p));
    set_dst_addr(&mut f, &mut p, &common::v4(1, 1, 12));
    set_dst_port(&mut f, &mut p, 99);
    assert_eq!(&f[40..42], &[0, 0]);
    assert_checksums(&f);
    // Over IPv6 a zero UDP checksum is invalid (RFC 8200 §8.1).
    let (src, dst) = addrs(true);
    let mut g = frame(
        true,
        Vlan::None,
        L4::Udp { sport: 1, dport: 2 },
        &src,
        &dst,
        b"abc",
    );
    g[60] = 0;
    g[61] = 0;
    let q = parse_frame(&g).unwrap();
    assert!(!verify_l4_checksum(&g, &q));
}

#[test]
fn sctp_port_rewrite_recomputes_crc_and_address_rewrite_leaves_it() {
    for v6 in [false, true] {
        let (src, dst) = addrs(v6);
        let sctp = sctp_packet(5000, 7, 0xdeadbeef, uvs_wire::sctp::chunk_type::INIT);
        assert!(sctp_crc_ok(&sctp));
        let mut f = frame(
            v6,
            Vlan::Single(3),
            L4::Raw(ip_proto::SCTP),
            &src,
            &dst,
            &sctp,
        );
        let mut p = parse_frame(&f).unwrap();
        assert_eq!(
            (
                p.l4_proto,
                p.sport,
                p.dport,
                p.sctp_vtag,
                p.sctp_first_chunk
            ),
            (132, 5000, 7, 0xdeadbeef, 1)
        );
        assert!(verify_l4_checksum(&f, &p));
        let l4 = usize::from(p.l4_off);
        let crc_before = f[l4 + 8..l4 + 12].to_vec();
        set_dst_addr(
            &mut f,
            &mut p,
            &if v6 {
                common::v6(1, 0x12)
            } else {
                common::v4(1, 1, 12)
            },
        );
        assert_eq!(
            &f[l4 + 8..l4 + 12],
            &crc_before[..],
            "address rewrite must not touch the CRC"
        );
        assert_checksums(&f);
        set_dst_port(&mut f, &mut p, 7007);
        set_src_port(&mut f, &mut p, 5001);
        assert_ne!(&f[l4 + 8..l4 + 12], &crc_before[..]);
        assert!(
            sctp_crc_ok(&f[l4..]),
            "port rewrite must recompute the CRC32c"
        );
        let q = parse_frame(&f).unwrap();
        assert_eq!(q, p);
        assert!(verify_l4_checksum(&f, &q));
    }
}

/// `nat` on SCTP: the FullNAT rewrite of both ports leaves a valid CRC32c (computed once,
/// after both), and a port rewritten to the value it had leaves the CRC's bytes alone.
#[test]
fn sctp_nat_of_both_ports_leaves_a_valid_crc() {
    for v6 in [false, true] {
        let (src, dst) = addrs(v6);
        let sctp = sctp_packet(5000, 7, 0xdeadbeef, uvs_wire::sctp::chunk_type::DATA);
        let f0 = frame(v6, Vlan::None, L4::Raw(ip_proto::SCTP), &src, &dst, &sctp);
        let p0 = parse_frame(&f0).unwrap();
        let l4 = usize::from(p0.l4_off);
        let (new_src, new_dst) = if v6 {
            (common::v6(1, 0x21), common::v6(1, 0x12))
        } else {
            (common::v4(1, 1, 21), common::v4(1, 1, 12))
        };
        let (mut f, mut p) = (f0.clone(), p0);
        let n = uvs_wire::NatFields {
            src_addr: Some(&new_src),
            src_port: Some(40001),
            dst_addr: Some(&new_dst),
            dst_port: Some(7007),
        };
        assert!(uvs_wire::nat(&mut f, &mut p, &n));
        assert!(sctp_crc_ok(&f[l4..]), "v6 {v6}: CRC after both ports");
        assert_eq!((p.sport, p.dport), (40001, 7007));
        assert_eq!(parse_frame(&f).unwrap(), p);
        assert_checksums(&f);
        let (mut g, mut q) = (f0.clone(), p0);
        let same = uvs_wire::NatFields {
            dst_addr: Some(&new_dst),
            dst_port: Some(7),
            ..Default::default()
        };
        assert!(uvs_wire::nat(&mut g, &mut q, &same));
        assert_eq!(&g[l4 + 8..l4 + 12], &f0[l4 + 8..l4 + 12]);
        assert!(sctp_crc_ok(&g[l4..]));
    }
}

#[test]
fn icmp_error_translation_fixes_quote_and_outer_checksums() {
    for v6 in [false, true] {
        for l4 in [
            L4::Udp {
                sport: 40000,
                dport: 53,
            },
            L4::Tcp {
                sport: 40000,
                dport: 80,
                syn: true,
            },
        ] {
            for truncate_to in [None, Some(8usize)] {
                // Client → real server packet (after DNAT), which a router bounces.
                let (client, _) = addrs(v6);
                let rs = if v6 {
                    common::v6(1, 0x11)
                } else {
                    common::v4(1, 1, 11)
                };
                let vip = if v6 {
                    common::v6(1, 1)
                } else {
                    common::v4(0, 100, 1)
                };
                let inner_frame = frame(v6, Vlan::None, l4, &client, &rs, b"payload!");
                let mut quoted = inner_frame[14..].to_vec();
                if let Some(n) = truncate_to {
                    quoted.truncate(if v6 { 40 } else { 20 } + n);
                }
                let router = if v6 {
                    common::v6(9, 1)
                } else {
                    common::v4(1, 9, 1)
                };
                let mut f = icmp_error(v6, false, &router, &client, &quoted);
                assert_checksums(&f);
                let mut p = parse_frame(&f).unwrap();
                let mut e = uvs_wire::parse_icmp_embedded(&f, &p).unwrap();
                assert_eq!((e.src, e.dst), (client, rs));
                assert_eq!(e.sport, 40000);
                assert!(uvs_wire::set_embedded_dst_addr(&mut f, &mut e, &vip));
                assert!(uvs_wire::set_embedded_dst_port(&mut f, &mut e, 8443));
                set_src_addr(&mut f, &mut p, &vip);
                assert_checksums(&f);
                let q = parse_frame(&f).unwrap();
                assert!(verify_l4_checksum(&f, &q));
                let e2 = uvs_wire::parse_icmp_embedded(&f, &q).unwrap();
                assert_eq!((e2.dst, e2.dport), (vip, 8443));
                // The quoted headers, re-parsed by etherparse, have valid checksums where whole.
                let inner = &f[usize::from(e2.l3_off)..];
                if !v6 {
                    let (ip, _) = etherparse::Ipv4Header::from_slice(inner).unwrap();
                    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                }
                if truncate_to.is_none() {
                    let mut whole = inner_frame[..14].to_vec();
                    whole.extend_from_slice(inner);
                    assert_checksums(&whole);
                }
            }
        }
    }
}

#[test]
fn encap_round_trips_all_family_pairs() {
    for inner6 in [false, true] {
        for outer6 in [false, true] {
            for vlan in VLANS {
                let (src, dst) = addrs(inner6);
                let f = frame(
                    inner6,
                    vlan,
                    L4::Tcp {
                        sport: 1,
                        dport: 2,
                        syn: true,
                    },
                    &src,
                    &dst,
                    b"x",
                );
                let p = parse_frame(&f).unwrap();
                let mut buf = f.clone();
                buf.resize(f.len() + 64, 0);
                let (os, od) = if outer6 {
                    (common::v6(2, 1), common::v6(2, 2))
                } else {
                    (common::v4(1, 2, 1), common::v4(1, 2, 2))
                };
                let inner = if inner6 { L3::V6 } else { L3::V4 };
                let outer = if outer6 { L3::V6 } else { L3::V4 };
                let n = uvs_wire::encap_ipip(
                    &mut buf,
                    f.len(),
                    usize::from(p.l3_off),
                    &os,
                    &od,
                    inner,
                    outer,
                    17,
                )
                .unwrap();
                assert_eq!(n, f.len() + outer.header_len());
                let op = parse_frame(&buf[..n]).unwrap();
                assert_eq!(
                    op.l4_proto,
                    if inner6 {
                        ip_proto::IPV6
                    } else {
                        ip_proto::IPIP
                    }
                );
                assert_eq!((op.src, op.dst, op.vlan), (os, od, p.vlan));
                assert_checksums(&buf[..n]);
                let m = uvs_wire::decap_ipip(&mut buf, n, usize::from(op.l3_off)).unwrap();
                assert_eq!(&buf[..m], &f[..]);
            }
        }
    }
}

#[test]
fn arp_is_classified_separately() {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x06]);
    let req = uvs_wire::ArpRepr::request(CLIENT_MAC, [198, 18, 0, 2], [198, 18, 100, 1]);
    let mut arp = [0u8; 28];
    req.emit(&mut arp).unwrap();
    f.extend_from_slice(&arp);
    assert_eq!(classify(&f), Ok(Classified::Arp { l3_off: 18 }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random addresses, ports and payloads: any combination of rewrites leaves every checksum
    /// equal to etherparse's recomputation and the frame reparses to the updated `Parsed`.
    #[test]
    fn random_rewrites_keep_checksums(
        v6 in any::<bool>(),
        vlan in prop_oneof![Just(Vlan::None), (1u16..4095).prop_map(Vlan::Single)],
        proto in 0u8..3,
        sport in any::<u16>(), dport in any::<u16>(),
        nsport in any::<u16>(), ndport in any::<u16>(),
        a in any::<[u8; 3]>(), b in any::<[u8; 3]>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        ops in 1u8..32,
    ) {
        let (src, dst) = if v6 { (common::v6(a[0], a[1]), common::v6(b[0], b[1])) } else { (common::v4(a[0], a[1], a[2]), common::v4(b[0], b[1], b[2])) };
        let (nsrc, ndst) = if v6 { (common::v6(b[2], a[2]), common::v6(a[0], b[0])) } else { (common::v4(b[2], a[2], b[1]), common::v4(a[0], b[0], a[1])) };
        let l4 = match proto { 0 => L4::Tcp { sport, dport, syn: sport % 2 == 0 }, 1 => L4::Udp { sport, dport }, _ => L4::Echo { id: sport, seq: dport } };
        let mut f = frame(v6, vlan, l4, &src, &dst, &payload);
        let mut p = parse_frame(&f).unwrap();
        if ops & 1 != 0 { set_src_addr(&mut f, &mut p, &nsrc); }
        if ops & 2 != 0 { set_dst_addr(&mut f, &mut p, &ndst); }
        if ops & 4 != 0 { set_src_port(&mut f, &mut p, nsport); }
        if ops & 8 != 0 { set_dst_port(&mut f, &mut p, ndport); }
        if ops & 16 != 0 { decrement_ttl(&mut f, &p); }
        assert_checksums(&f);
        let q = parse_frame(&f).unwrap();
        prop_assert_eq!(q, p);
        prop_assert!(verify_l4_checksum(&f, &q));
    }
}

/// The checker itself must notice a broken checksum, or the tests above prove nothing.
#[test]
#[should_panic(expected = "TCP checksum")]
fn checker_detects_a_stale_l4_checksum() {
    let (src, dst) = addrs(false);
    let mut f = frame(
        false,
        Vlan::None,
        L4::Tcp {
            sport: 1,
            dport: 2,
            syn: true,
        },
        &src,
        &dst,
        b"x",
    );
    // Change the destination port without fixing the checksum.
    f[37] ^= 0x01;
    assert_checksums(&f);
}

#[test]
#[should_panic(expected = "IPv4 header checksum")]
fn checker_detects_a_stale_ip_checksum() {
    let (src, dst) = addrs(false);
    let mut f = frame(
        false,
        Vlan::None,
        L4::Udp { sport: 1, dport: 2 },
        &src,
        &dst,
        b"x",
    );
    f[22] ^= 0x01;
    assert_checksums(&f);
}

/// A first fragment's L4 checksum covers the whole datagram, but the incremental update only
/// needs the changed words: rewriting the first fragment must give the same checksum field as
/// rewriting the unfragmented packet. Later fragments are left alone except the IP header.
#[test]
fn first_fragment_checksum_update_matches_whole_packet() {
    for udp in [false, true] {
        let (src, dst) = addrs(false);
        let l4 = if udp {
            L4::Udp {
                sport: 1000,
                dport: 53,
            }
        } else {
            L4::Tcp {
                sport: 1000,
                dport: 80,
                syn: false,
            }
        };
        let mut whole = frame(false, Vlan::None, l4, &src, &dst, &[0x5a; 64]);
        // First fragment: the L4 header plus 24 payload bytes, MF set.
        let hl = if udp { 8 } else { 20 };
        let mut first = whole[..34 + hl + 24].to_vec();
        first[16..18].copy_from_slice(&((20 + hl + 24) as u16).to_be_bytes());
        first[20] |= 0x20;
        first[20] &= !0x40;
        uvs_wire::Ipv4Packet::new_unchecked(&mut first[14..34]).fill_checksum();
        let mut pw = parse_frame(&whole).unwrap();
        let mut pf = parse_frame(&first).unwrap();
        assert_eq!(pf.frag, Frag::First { id: pw_id(&whole) });
        assert!(uvs_wire::can_rewrite_ports(&pf));
        let new = common::v4(1, 1, 11);
        for (f, p) in [(&mut whole, &mut pw), (&mut first, &mut pf)] {
            set_dst_addr(f, p, &new);
            set_dst_port(f, p, 8080);
        }
        let ck = if udp { 34 + 6 } else { 34 + 16 };
        assert_eq!(&first[ck..ck + 2], &whole[ck..ck + 2]);
        assert_checksums(&whole);
        assert!(parse_frame(&first).is_ok());
        // A later fragment: only the IPv4 header changes.
        let mut later = whole.clone();
        later[20] = 0x00;
        later[21] = 0x03;
        uvs_wire::Ipv4Packet::new_unchecked(&mut later[14..34]).fill_checksum();
        let mut pl = parse_frame(&later).unwrap();
        assert!(!uvs_wire::can_rewrite_ports(&pl));
        let before = later[34..].to_vec();
        set_src_addr(&mut later, &mut pl, &common::v4(1, 3, 3));
        set_src_port(&mut later, &mut pl, 9);
        assert_eq!(&later[34..], &before[..]);
        assert_eq!(parse_frame(&later).unwrap(), pl);
    }
}

fn pw_id(f: &[u8]) -> u32 {
    u32::from(u16::from_be_bytes([f[18], f[19]]))
}
