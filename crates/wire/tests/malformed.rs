//! Malformed and truncated input: every prefix of valid frames, crafted bad fields, and random
//! bytes. Nothing may panic; everything short of a whole packet must be an error.

mod common;

use common::*;
use proptest::prelude::*;
use uvs_wire::ipv6_ext::MAX_EXT_HEADERS;
use uvs_wire::{
    build, classify, complete_l4_checksum, decap_ipip, decrement_ttl, encap_ipip, ip_proto,
    parse_frame, parse_icmp_embedded, set_dst_addr, set_dst_port, set_embedded_dst_addr,
    set_embedded_dst_port, set_embedded_src_addr, set_embedded_src_port, set_src_addr,
    set_src_port, verify_l4_checksum, Classified, Frag, ParseError, L3,
};

/// Ethernet + IPv6 with hop-by-hop, destination options and a first-fragment header before UDP.
fn v6_ext_frame(first_ext: u8, exts: &[Vec<u8>], l4: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
    let payload_len = exts.iter().map(Vec::len).sum::<usize>() + l4.len();
    let repr = uvs_wire::Ipv6Repr {
        src: common::v6(0, 2),
        dst: common::v6(1, 1),
        next_header: first_ext,
        payload_len: payload_len as u16,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let mut ip = [0u8; 40];
    repr.emit(&mut ip).unwrap();
    f.extend_from_slice(&ip);
    for e in exts {
        f.extend_from_slice(e);
    }
    f.extend_from_slice(l4);
    f
}

fn ext(next: u8, len8: usize) -> Vec<u8> {
    let mut e = vec![0u8; len8 * 8];
    e[0] = next;
    e[1] = (len8 - 1) as u8;
    e
}

fn frag_hdr(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut e = vec![next, 0];
    e.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
    e.extend_from_slice(&id.to_be_bytes());
    e
}

const UDP8: [u8; 12] = [0x13, 0x88, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4];

fn valid_frames() -> Vec<Vec<u8>> {
    let (s4, d4) = (common::v4(0, 0, 2), common::v4(0, 100, 1));
    let (s6, d6) = (common::v6(0, 2), common::v6(1, 1));
    let mut v = Vec::new();
    for vlan in [Vlan::None, Vlan::Single(9), Vlan::Double(1, 2)] {
        v.push(frame(
            false,
            vlan,
            L4::Tcp {
                sport: 1,
                dport: 80,
                syn: true,
            },
            &s4,
            &d4,
            b"hello",
        ));
        v.push(frame(
            true,
            vlan,
            L4::Udp {
                sport: 1,
                dport: 53,
            },
            &s6,
            &d6,
            b"hello",
        ));
    }
    v.push(frame(
        false,
        Vlan::None,
        L4::Echo { id: 1, seq: 2 },
        &s4,
        &d4,
        b"ping",
    ));
    v.push(frame(
        true,
        Vlan::None,
        L4::Echo { id: 1, seq: 2 },
        &s6,
        &d6,
        b"ping",
    ));
    v.push(frame(
        false,
        Vlan::None,
        L4::Raw(ip_proto::SCTP),
        &s4,
        &d4,
        &sctp_packet(1, 2, 3, 1),
    ));
    v.push(frame(
        true,
        Vlan::None,
        L4::Raw(ip_proto::SCTP),
        &s6,
        &d6,
        &sctp_packet(1, 2, 3, 0),
    ));
    let inner = frame(
        false,
        Vlan::None,
        L4::Udp {
            sport: 1,
            dport: 53,
        },
        &s4,
        &d4,
        b"q",
    );
    v.push(icmp_error(false, true, &d4, &s4, &inner[14..]));
    let inner6 = frame(
        true,
        Vlan::None,
        L4::Tcp {
            sport: 1,
            dport: 80,
            syn: true,
        },
        &s6,
        &d6,
        b"",
    );
    v.push(icmp_error(true, true, &d6, &s6, &inner6[14..]));
    v.push(v6_ext_frame(
        ip_proto::HOPOPTS,
        &[
            ext(ip_proto::DSTOPTS, 1),
            ext(ip_proto::FRAGMENT, 2),
            frag_hdr(ip_proto::UDP, 0, true, 77),
        ],
        &UDP8,
    ));
    v
}

#[test]
fn every_prefix_of_valid_frames_is_an_error_or_the_same_parse() {
    let mut prefixes = 0;
    for f in valid_frames() {
        let full = parse_frame(&f).unwrap_or_else(|e| panic!("fixture does not parse: {e}"));
        for n in 0..f.len() {
            let r = classify(&f[..n]);
            if n < full.l3_end() {
                let err = r.expect_err("a truncated packet must be refused");
                if n < 14 {
                    assert_eq!(err, ParseError::TruncatedEthernet);
                } else if n < usize::from(full.l3_off) {
                    assert_eq!(err, ParseError::TruncatedVlan);
                } else if n < usize::from(full.l3_off) + full.l3.header_len() {
                    assert!(
                        matches!(err, ParseError::TruncatedIpv4 | ParseError::TruncatedIpv6),
                        "{n}: {err:?}"
                    );
                } else {
                    assert!(
                        matches!(
                            err,
                            ParseError::TruncatedIpv4 | ParseError::BadIpv6PayloadLength
                        ),
                        "{n}: {err:?}"
                    );
                }
            } else {
                assert_eq!(r, Ok(Classified::Ip(full)));
            }
            prefixes += 1;
        }
    }
    assert!(prefixes > 800, "{prefixes}");
}

/// IP header lengths that lie about the L4 header: truncations inside L4 while the IP total
/// length is consistent (the L4 checks themselves).
#[test]
fn l4_truncations_with_consistent_ip_lengths() {
    let (s4, d4) = (common::v4(0, 0, 2), common::v4(0, 100, 1));
    let cases: [(L4, usize, ParseError); 3] = [
        (
            L4::Tcp {
                sport: 1,
                dport: 2,
                syn: true,
            },
            19,
            ParseError::TruncatedTcp,
        ),
        (L4::Udp { sport: 1, dport: 2 }, 7, ParseError::TruncatedUdp),
        (L4::Echo { id: 1, seq: 1 }, 7, ParseError::TruncatedIcmp),
    ];
    for (l4, keep, want) in cases {
        let f = frame(false, Vlan::None, l4, &s4, &d4, b"");
        let mut g = f[..34 + keep].to_vec();
        set_ipv4_total_len(&mut g, 20 + keep);
        assert_eq!(classify(&g), Err(want));
    }
    let f = frame(
        false,
        Vlan::None,
        L4::Raw(ip_proto::SCTP),
        &s4,
        &d4,
        &sctp_packet(1, 2, 3, 1),
    );
    let mut g = f[..34 + 15].to_vec();
    set_ipv4_total_len(&mut g, 35);
    assert_eq!(classify(&g), Err(ParseError::TruncatedSctp));
}

fn set_ipv4_total_len(f: &mut [u8], len: usize) {
    f[16..18].copy_from_slice(&(len as u16).to_be_bytes());
    uvs_wire::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
}

#[test]
fn bad_ipv4_fields() {
    let (s4, d4) = (common::v4(0, 0, 2), common::v4(0, 100, 1));
    let f = frame(
        false,
        Vlan::None,
        L4::Udp { sport: 1, dport: 2 },
        &s4,
        &d4,
        b"abcd",
    );
    for ihl in 0..5u8 {
        let mut g = f.clone();
        g[14] = 0x40 | ihl;
        assert_eq!(classify(&g), Err(ParseError::BadIhl));
    }
    let mut g = f.clone();
    g[14] = 0x4f; // 60-byte header, more than the packet holds
    assert_eq!(classify(&g), Err(ParseError::TruncatedIpv4));
    let mut g = f.clone();
    g[14] = 0x46; // IHL 6 with the old checksum: it no longer verifies over 24 bytes
    assert_eq!(classify(&g), Err(ParseError::BadIpv4Checksum));
    let mut g = f.clone();
    set_ipv4_total_len(&mut g, 19);
    assert_eq!(classify(&g), Err(ParseError::BadIpv4TotalLength));
    let mut g = f.clone();
    set_ipv4_total_len(&mut g, f.len() - 14 + 1);
    assert_eq!(classify(&g), Err(ParseError::TruncatedIpv4));
    let mut g = f.clone();
    g[14 + 20 + 5] = 7; // UDP length 7
    assert_eq!(classify(&g), Err(ParseError::BadUdpLength));
    let mut g = f.clone();
    g[14 + 20 + 5] = 13; // UDP length past the IP payload
    assert_eq!(classify(&g), Err(ParseError::BadUdpLength));
    let mut g = f.clone();
    g[14] = 0x65;
    assert_eq!(classify(&g), Err(ParseError::BadIpVersion));
    // A first fragment's UDP length describes the whole datagram and is not checked.
    let mut g = f.clone();
    g[14 + 6] = 0x20; // MF
    g[14 + 20 + 5] = 200;
    uvs_wire::Ipv4Packet::new_unchecked(&mut g[14..34]).fill_checksum();
    let p = parse_frame(&g).unwrap();
    assert_eq!((p.frag, p.sport, p.dport), (Frag::First { id: 0 }, 1, 2));
    // Ethernet padding after the IP packet is ignored.
    let mut g = f.clone();
    g.extend_from_slice(&[0; 10]);
    assert_eq!(parse_frame(&g).unwrap().l3_end(), f.len());
}

#[test]
fn ipv6_extension_chains() {
    // The standard chain parses, with the fragment id.
    let f = v6_ext_frame(
        ip_proto::HOPOPTS,
        &[
            ext(ip_proto::DSTOPTS, 1),
            ext(ip_proto::FRAGMENT, 2),
            frag_hdr(ip_proto::UDP, 0, true, 77),
        ],
        &UDP8,
    );
    let p = parse_frame(&f).unwrap();
    assert_eq!(
        (p.l4_proto, p.l4_off, p.frag, p.sport),
        (ip_proto::UDP, 14 + 40 + 32, Frag::First { id: 77 }, 5000)
    );
    // Later fragment: no ports, l4_off after the fragment header.
    let f = v6_ext_frame(
        ip_proto::FRAGMENT,
        &[frag_hdr(ip_proto::TCP, 1448, false, 78)],
        &[0xaa; 16],
    );
    let p = parse_frame(&f).unwrap();
    assert_eq!(
        (p.l4_proto, p.l4_off, p.frag, p.sport, p.dport),
        (ip_proto::TCP, 62, Frag::Later { id: 78 }, 0, 0)
    );
    // Atomic fragment (offset 0, M clear) is not a fragment (RFC 6946).
    let f = v6_ext_frame(
        ip_proto::FRAGMENT,
        &[frag_hdr(ip_proto::UDP, 0, false, 79)],
        &UDP8,
    );
    assert_eq!(parse_frame(&f).unwrap().frag, Frag::None);
    // MAX_EXT_HEADERS destination options are fine, one more is refused; a "loop" of
    // headers each naming the next as destination options never ends before the cap.
    let chain: Vec<_> = (0..MAX_EXT_HEADERS)
        .map(|i| {
            ext(
                if i + 1 == MAX_EXT_HEADERS {
                    ip_proto::UDP
                } else {
                    ip_proto::DSTOPTS
                },
                1,
            )
        })
        .collect();
    assert!(parse_frame(&v6_ext_frame(ip_proto::DSTOPTS, &chain, &UDP8)).is_ok());
    let chain: Vec<_> = (0..=MAX_EXT_HEADERS)
        .map(|i| {
            ext(
                if i == MAX_EXT_HEADERS {
                    ip_proto::UDP
                } else {
                    ip_proto::DSTOPTS
                },
                1,
            )
        })
        .collect();
    assert_eq!(
        parse_frame(&v6_ext_frame(ip_proto::DSTOPTS, &chain, &UDP8)),
        Err(ParseError::Ipv6ExtChainTooLong)
    );
    let looped: Vec<_> = (0..40).map(|_| ext(ip_proto::ROUTING, 1)).collect();
    assert_eq!(
        parse_frame(&v6_ext_frame(ip_proto::ROUTING, &looped, &[])),
        Err(ParseError::Ipv6ExtChainTooLong)
    );
    // An extension header whose length runs past the payload.
    let mut long = ext(ip_proto::UDP, 1);
    long[1] = 9;
    assert_eq!(
        parse_frame(&v6_ext_frame(ip_proto::DSTOPTS, &[long], &UDP8)),
        Err(ParseError::TruncatedIpv6Ext)
    );
    // Hop-by-hop after another header.
    let chain = [ext(ip_proto::HOPOPTS, 1), ext(ip_proto::UDP, 1)];
    assert_eq!(
        parse_frame(&v6_ext_frame(ip_proto::DSTOPTS, &chain, &UDP8)),
        Err(ParseError::Ipv6HopByHopNotFirst)
    );
}

#[test]
fn sctp_chunk_lengths() {
    let (s4, d4) = (common::v4(0, 0, 2), common::v4(0, 100, 1));
    for (first_len, want) in [
        (0u16, ParseError::SctpChunkTooShort),
        (3, ParseError::SctpChunkTooShort),
        (200, ParseError::SctpChunkOverrun),
    ] {
        let mut s = sctp_packet(1, 2, 3, 1);
        s[14..16].copy_from_slice(&first_len.to_be_bytes());
        let f = frame(false, Vlan::None, L4::Raw(ip_proto::SCTP), &s4, &d4, &s);
        assert_eq!(classify(&f), Err(want), "chunk length {first_len}");
    }
    // Second chunk with length 0.
    let mut s = sctp_packet(1, 2, 3, 1);
    s[34..36].copy_from_slice(&[0, 0]);
    let f = frame(false, Vlan::None, L4::Raw(ip_proto::SCTP), &s4, &d4, &s);
    assert_eq!(classify(&f), Err(ParseError::SctpChunkTooShort));
}

/// Runs every fast-path and slow-path entry point on `frame`; none may panic.
fn exercise(frame: &[u8]) {
    let _ = classify(frame);
    let mut f = frame.to_vec();
    if let Ok(Classified::Ip(mut p)) = classify(frame) {
        let _ = verify_l4_checksum(&f, &p);
        let _ = complete_l4_checksum(&mut f, &p);
        set_src_addr(&mut f, &mut p, &[7; 16]);
        set_dst_addr(&mut f, &mut p, &[8; 16]);
        set_src_port(&mut f, &mut p, 1);
        set_dst_port(&mut f, &mut p, 2);
        decrement_ttl(&mut f, &p);
        let _ = verify_l4_checksum(&f, &p);
        if let Ok(mut e) = parse_icmp_embedded(&f, &p) {
            set_embedded_src_addr(&mut f, &mut e, &[3; 16]);
            set_embedded_dst_addr(&mut f, &mut e, &[4; 16]);
            set_embedded_src_port(&mut f, &mut e, 3);
            set_embedded_dst_port(&mut f, &mut e, 4);
        }
        let mut out = [0u8; 1600];
        let _ = build::icmp_echo_reply(&f, &p, &mut out);
        let _ = build::icmpv4_frag_needed(&f, &p, [198, 18, 0, 1], 1400, &mut out);
        let _ = build::icmpv6_packet_too_big(&f, &p, &[1; 16], 1280, &mut out);
        let _ = build::ndp_neighbor_advert(&f, &p, [2; 6], &mut out);
        let mut buf = f.clone();
        let len = buf.len();
        buf.resize(len + 40, 0);
        for (inner, outer) in [(L3::V4, L3::V6), (L3::V6, L3::V4), (p.l3, p.l3)] {
            let _ = encap_ipip(
                &mut buf,
                len,
                usize::from(p.l3_off),
                &[1; 16],
                &[2; 16],
                inner,
                outer,
                64,
            );
        }
        let _ = decap_ipip(&mut f, len, usize::from(p.l3_off));
    }
    let mut out = [0u8; 64];
    let _ = build::arp_reply(frame, [2; 6], &mut out);
    let mut g = frame.to_vec();
    let len = g.len();
    for off in [14usize, 18, 22] {
        let _ = decap_ipip(&mut g, len, off);
    }
}

#[test]
fn valid_frames_with_every_single_byte_corrupted() {
    for f in valid_frames() {
        for i in 0..f.len() {
            for x in [0x00u8, 0xff, 0x80, 0x01] {
                let mut g = f.clone();
                g[i] ^= x;
                exercise(&g);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
    }

    /// A TLS record header with random bytes behind it: the ClientHello reader never
    /// panics, and a name it returns lies within the input.
    #[test]
    fn random_client_hellos_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        len in any::<u16>(),
    ) {
        let mut b = vec![0x16, 0x03, 0x01];
        b.extend_from_slice(&len.to_be_bytes());
        b.push(0x01);
        b.extend_from_slice(&body);
        if let uvs_wire::tls_sni::Sni::Name(n) = uvs_wire::tls_sni::client_hello_sni(&b) {
            let (start, end) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
            prop_assert!(!n.is_empty() && n.as_ptr() as usize >= start);
            prop_assert!(n.as_ptr() as usize + n.len() <= end);
        }
    }

    /// Random bytes behind a valid Ethernet header of each interesting ethertype reach the
    /// deeper parsers far more often than fully random frames.
    #[test]
    fn random_l3_never_panics(
        et in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), Just(0x8100)],
        version_nibble in 0u8..16,
        body in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(&body);
        if f.len() > 14 {
            f[14] = (version_nibble << 4) | (f[14] & 0x0f);
        }
        exercise(&f);
    }

    /// Mutating a valid frame at a few random positions never panics anything.
    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..15,
        muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let frames = valid_frames();
        let mut f = frames[which % frames.len()].clone();
        for (pos, val) in muts {
            let n = f.len();
            f[pos % n] = val;
        }
        exercise(&f);
    }
}
