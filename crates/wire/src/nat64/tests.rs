use super::*;
use crate::checksum;
use crate::parse::classify;
use crate::Classified;

fn parsed(frame: &[u8]) -> Parsed {
    match classify(frame).expect("frame classifies") {
        Classified::Ip(p) => p,
        other => panic!("not IP: {other:?}"),
    }
}

/// Ethernet + IPv6 (2001:2::2 → 2001:2:0:100::64, TC 0xb8, hop limit 63) + TCP SYN
/// 40000 → 80, seq 1, window 0xffff, checksum filled below; 2 bytes of Ethernet padding.
fn v6_syn() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
    f.extend_from_slice(&[
        0x6b, 0x80, 0, 0, 0, 20, 6, 63, // v6, TC 0xb8, payload 20, TCP, hop 63
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // 2001:2::2
        0x20, 0x01, 0x00, 0x02, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x64, // 2001:2:0:100::64
        0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    let sum = checksum::pseudo_header_v6(
        &f[22..38].try_into().unwrap(),
        &f[38..54].try_into().unwrap(),
        6,
        20,
    ) + checksum::data_sum(&f[54..74]);
    let c = !checksum::fold(sum);
    f[70..72].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0xee, 0xee]);
    f
}

fn a4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0; 16];
    x[..4].copy_from_slice(&a);
    x
}

#[test]
fn v6_syn_becomes_v4_with_rfc7915_header_and_valid_checksum() {
    let mut f = v6_syn();
    let p = parsed(&f);
    let t = Tuple {
        src: a4([198, 18, 1, 100]),
        dst: a4([198, 18, 1, 11]),
        sport: 1025,
        dport: 8080,
    };
    let len = f.len();
    let n = v6_to_v4(&mut f, len, &p, &t).unwrap();
    assert_eq!(n, 14 + 20 + 20);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    // v4, IHL 5, TOS = traffic class, total 40, id 0, DF, TTL = hop limit, TCP.
    assert_eq!(&f[14..24], &[0x45, 0xb8, 0, 40, 0, 0, 0x40, 0, 63, 6]);
    assert_eq!(&f[26..34], &[198, 18, 1, 100, 198, 18, 1, 11]);
    assert!(checksum::verify(&f[14..34]), "IPv4 header checksum");
    assert_eq!(&f[34..38], &[0x04, 0x01, 0x1f, 0x90]);
    let pseudo = checksum::pseudo_header_v4(&[198, 18, 1, 100], &[198, 18, 1, 11], 6, 20);
    assert_eq!(
        checksum::fold(pseudo + checksum::data_sum(&f[34..54])),
        0xffff
    );
    // etherparse agrees the translated frame is well formed.
    let e = etherparse::SlicedPacket::from_ethernet(&f[..n]).unwrap();
    assert!(matches!(e.net, Some(etherparse::NetSlice::Ipv4(_))));
}

#[test]
fn v4_reply_becomes_v6_and_round_trips() {
    let mut f = v6_syn();
    let p = parsed(&f);
    let to4 = Tuple {
        src: a4([198, 18, 1, 100]),
        dst: a4([198, 18, 1, 11]),
        sport: 1025,
        dport: 8080,
    };
    let len = f.len();
    let n = v6_to_v4(&mut f, len, &p, &to4).unwrap();
    f.resize(n + 40, 0);
    let p4 = parsed(&f[..n]);
    let back = Tuple {
        src: p.src,
        dst: p.dst,
        sport: p.sport,
        dport: p.dport,
    };
    let m = v4_to_v6(&mut f, n, &p4, &back).unwrap();
    // The same packet as sent (traffic class and hop limit carried through, flow label 0).
    let orig = v6_syn();
    assert_eq!(m, orig.len() - 2);
    assert_eq!(&f[..m], &orig[..m]);
}

#[test]
fn udp_without_checksum_gets_one_in_ipv6() {
    // IPv4 UDP 198.18.1.11:53 → 198.18.1.100:1025, checksum 0, payload "ab".
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend_from_slice(&[
        0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 1, 11, 198, 18, 1, 100,
    ]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0, 53, 0x04, 0x01, 0, 10, 0, 0, b'a', b'b']);
    let len = f.len();
    f.resize(len + 20, 0);
    let p = parsed(&f[..len]);
    let mut client = [0u8; 16];
    client[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
    client[15] = 2;
    let mut vip = client;
    vip[6] = 1;
    vip[15] = 0x64;
    let t = Tuple {
        src: vip,
        dst: client,
        sport: 53,
        dport: 40000,
    };
    let n = v4_to_v6(&mut f, len, &p, &t).unwrap();
    assert_eq!(n, 14 + 40 + 10);
    let csum = u16::from_be_bytes([f[60], f[61]]);
    assert_ne!(csum, 0);
    let pseudo = checksum::pseudo_header_v6(&vip, &client, 17, 10);
    assert_eq!(
        checksum::fold(pseudo + checksum::data_sum(&f[54..64])),
        0xffff
    );
}

#[test]
fn refuses_fragments_short_packets_and_missing_room() {
    let mut f = v6_syn();
    let mut p = parsed(&f);
    let t = Tuple {
        src: a4([198, 18, 1, 100]),
        dst: a4([198, 18, 1, 11]),
        sport: 1,
        dport: 2,
    };
    let len = f.len();
    let mut q = p;
    q.frag = Frag::First { id: 1 };
    assert_eq!(
        v6_to_v4(&mut f, len, &q, &t),
        Err(Nat64Error::NotTranslatable)
    );
    p.ip_total_len = 200;
    assert_eq!(
        v6_to_v4(&mut f, len, &p, &t),
        Err(Nat64Error::NotTranslatable)
    );
    assert_eq!(f, v6_syn());
    // IPv4 → IPv6 without 20 bytes of room after the packet.
    let mut g = v6_syn();
    let pg = parsed(&g);
    let n = v6_to_v4(&mut g, len, &pg, &t).unwrap();
    g.truncate(n);
    let p4 = parsed(&g);
    assert_eq!(v4_to_v6(&mut g, n, &p4, &t), Err(Nat64Error::NoRoom));
}

#[test]
fn icmp_type_mapping_follows_rfc7915() {
    // Fragmentation needed, MTU 1400 → packet too big 1420; small MTUs → 1280.
    assert_eq!(icmp4_to_icmp6(3, 4, 1400), Some((2, 0, 1420)));
    assert_eq!(icmp4_to_icmp6(3, 4, 576), Some((2, 0, 1280)));
    assert_eq!(icmp4_to_icmp6(3, 3, 0), Some((1, 4, 0)));
    assert_eq!(icmp4_to_icmp6(3, 1, 0), Some((1, 0, 0)));
    assert_eq!(icmp4_to_icmp6(11, 0, 0), Some((3, 0, 0)));
    assert_eq!(icmp4_to_icmp6(4, 0, 0), None);
    assert_eq!(icmp6_to_icmp4(2, 0, 1400), Some((3, 4, 1380)));
    assert_eq!(icmp6_to_icmp4(1, 4, 0), Some((3, 3, 0)));
    assert_eq!(icmp6_to_icmp4(1, 1, 0), Some((3, 10, 0)));
    assert_eq!(icmp6_to_icmp4(3, 1, 0), Some((11, 1, 0)));
    assert_eq!(icmp6_to_icmp4(4, 0, 0), None);
}

#[test]
fn frag_needed_about_translated_syn_becomes_packet_too_big() {
    // The SYN as the real server's router saw it (IPv4), quoted in a fragmentation needed
    // from 198.18.1.1 (MTU 1400) to the pool address.
    let mut syn = v6_syn();
    let p = parsed(&syn);
    let t4 = Tuple {
        src: a4([198, 18, 1, 100]),
        dst: a4([198, 18, 1, 11]),
        sport: 1025,
        dport: 8080,
    };
    let len = syn.len();
    let n = v6_to_v4(&mut syn, len, &p, &t4).unwrap();
    let quoted = &syn[14..n];
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = 20 + 8 + quoted.len();
    f.extend_from_slice(&[0x45, 0, 0, total as u8, 0, 0, 0, 0, 64, 1, 0, 0]);
    f.extend_from_slice(&[198, 18, 1, 1, 198, 18, 1, 100]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[3, 4, 0, 0, 0, 0, 0x05, 0x78]);
    f.extend_from_slice(quoted);
    let c = checksum::checksum(&f[34..]);
    f[36..38].copy_from_slice(&c.to_be_bytes());
    let len = f.len();
    f.resize(len + 100, 0);
    let p = parsed(&f[..len]);
    let e = crate::parse_icmp_embedded(&f[..len], &p).unwrap();
    let client = v6_syn()[22..38].try_into().unwrap();
    let vip: [u8; 16] = v6_syn()[38..54].try_into().unwrap();
    let outer = Tuple {
        src: vip,
        dst: client,
        sport: 0,
        dport: 0,
    };
    let quote = Tuple {
        src: client,
        dst: vip,
        sport: 40000,
        dport: 80,
    };
    let m = translate_icmp_error(&mut f, len, &p, &e, &outer, &quote).unwrap();
    assert_eq!(m, 14 + 40 + 8 + 40 + 20);
    assert_eq!(&f[12..14], &[0x86, 0xdd]);
    // ICMPv6 packet too big, MTU 1400 + 20.
    assert_eq!(&f[54..56], &[2, 0]);
    assert_eq!(&f[58..62], &1420u32.to_be_bytes());
    // The quote is the client's own SYN: header and ports as it sent them.
    assert_eq!(&f[62..102], &v6_syn()[14..54]);
    assert_eq!(&f[102..106], &[0x9c, 0x40, 0x00, 0x50]);
    let pseudo = checksum::pseudo_header_v6(&vip, &client, 58, (m - 54) as u32);
    assert_eq!(
        checksum::fold(pseudo + checksum::data_sum(&f[54..m])),
        0xffff
    );
    let e = etherparse::SlicedPacket::from_ethernet(&f[..m]).unwrap();
    assert!(matches!(
        e.transport,
        Some(etherparse::TransportSlice::Icmpv6(_))
    ));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn frames() -> Vec<Vec<u8>> {
        let mut v6 = v6_syn();
        let p = parsed(&v6);
        let t = Tuple {
            src: a4([198, 18, 1, 100]),
            dst: a4([198, 18, 1, 11]),
            sport: 1025,
            dport: 8080,
        };
        let len = v6.len();
        let mut v4 = v6.clone();
        let n = v6_to_v4(&mut v4, len, &p, &t).unwrap();
        v4.truncate(n);
        // An ICMPv4 error quoting the IPv4 packet, and an ICMPv6 one quoting the IPv6 one.
        let mut e4 = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        e4.extend_from_slice(&[0x45, 0, 0, (28 + n - 14) as u8, 0, 0, 0, 0, 64, 1, 0, 0]);
        e4.extend_from_slice(&[198, 18, 1, 1, 198, 18, 1, 100, 3, 4, 0, 0, 0, 0, 5, 0x78]);
        e4.extend_from_slice(&v4[14..]);
        let c = checksum::checksum(&e4[14..34]);
        e4[24..26].copy_from_slice(&c.to_be_bytes());
        let mut e6 = v6[..14].to_vec();
        e6.extend_from_slice(&[0x60, 0, 0, 0, 0, (8 + 60) as u8, 58, 64]);
        e6.extend_from_slice(&v6[38..54]);
        e6.extend_from_slice(&v6[22..38]);
        e6.extend_from_slice(&[2, 0, 0, 0, 0, 0, 5, 0x78]);
        e6.extend_from_slice(&v6[14..74]);
        v6.truncate(74);
        vec![v6, v4, e4, e6]
    }

    #[test]
    fn the_base_frames_translate() {
        let t = Tuple {
            src: a4([198, 18, 1, 100]),
            dst: a4([198, 18, 1, 11]),
            sport: 1,
            dport: 2,
        };
        for (i, mut f) in frames().into_iter().enumerate() {
            let len = f.len();
            f.resize(len + 40, 0);
            let p = parsed(&f[..len]);
            let ok = match i {
                0 => v6_to_v4(&mut f, len, &p, &t).is_ok(),
                1 => v4_to_v6(&mut f, len, &p, &t).is_ok(),
                _ => {
                    let e = crate::parse_icmp_embedded(&f[..len], &p).unwrap();
                    translate_icmp_error(&mut f, len, &p, &e, &t, &t).is_ok()
                }
            };
            assert!(ok, "frame {i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Mutated and cut frames, with 0..40 bytes of room: every translation either
        /// refuses or writes inside the buffer; none panics.
        #[test]
        fn translations_never_panic(which in 0usize..4, at in 0usize..200, byte in any::<u8>(),
                                    cut in 1usize..200, room in 0usize..40) {
            let mut f = frames()[which].clone();
            let at = at % f.len();
            f[at] = byte;
            f.truncate(cut.min(f.len()));
            let len = f.len();
            f.resize(len + room, 0);
            let Ok(Classified::Ip(p)) = classify(&f[..len]) else { return Ok(()); };
            let t = Tuple { src: a4([198, 18, 1, 100]), dst: a4([198, 18, 1, 11]), sport: 1, dport: 2 };
            let mut g = f.clone();
            let _ = v6_to_v4(&mut g, len, &p, &t);
            let mut g = f.clone();
            let _ = v4_to_v6(&mut g, len, &p, &t);
            if let Ok(e) = crate::parse_icmp_embedded(&f[..len], &p) {
                let mut g = f.clone();
                if let Ok(n) = translate_icmp_error(&mut g, len, &p, &e, &t, &t) {
                    prop_assert!(n <= g.len());
                }
            }
        }
    }
}
