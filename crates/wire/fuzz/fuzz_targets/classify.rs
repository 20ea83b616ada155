//! Runs every entry point that takes frame bytes from the wire: classify (checked against
//! its general walk, `classify_walk`), the L4 checksum check and completion, the in-place
//! rewrites with the `Parsed` classify returned, the ICMP-quote parse and translation (and
//! the TUN untunnelling of a quote), IPIP/GUE/GRE encap/decap, the slow-path builders and
//! the TLS ClientHello reader. Any panic is a bug (the crate promises none).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uvs_wire::{build, Classified, Outer, Tunnel, L3};

fuzz_target!(|data: &[u8]| {
    // The bytes as a connection's first segment payload (layer-7 scheduling's TLS reader).
    if let uvs_wire::tls_sni::Sni::Name(n) = uvs_wire::tls_sni::client_hello_sni(data) {
        assert!(!n.is_empty() && n.len() < data.len());
    }
    // The fixed-offset reading of the common frame and the general walk agree.
    assert_eq!(uvs_wire::classify(data), uvs_wire::classify_walk(data));
    // The flow cache's reading of the commonest frames (`CommonV4`, `CommonV6`) is the parse's: it reads
    // only IPv4 TCP/UDP frames the parse accepts, at the same offsets, and its checksum
    // check and completion give the same verdict and bytes.
    if let Some(c) = uvs_wire::CommonV4::read(data) {
        let Ok(Classified::Ip(p)) = uvs_wire::classify(data) else {
            panic!("CommonV4 read a frame the parse refuses");
        };
        assert_eq!(p.l3, L3::V4);
        assert_eq!(usize::from(p.l4_off), uvs_wire::CommonV4::L4_OFF);
        assert_eq!(
            (c.proto, c.tcp_flags, c.ip_total_len),
            (p.l4_proto, p.tcp_flags, p.ip_total_len)
        );
        assert_eq!(p.v4_tuple(data), Some((c.addrs, c.ports)));
        let (mut a, mut b) = (data.to_vec(), data.to_vec());
        assert_eq!(
            uvs_wire::complete_common_v4_checksum(&mut a, &c),
            uvs_wire::complete_l4_checksum(&mut b, &p)
        );
        assert_eq!(a, b);
    }
    if let Some(c) = uvs_wire::CommonV6::read(data) {
        let Ok(Classified::Ip(p)) = uvs_wire::classify(data) else {
            panic!("CommonV6 read a frame the parse refuses");
        };
        assert_eq!(p.l3, L3::V6);
        assert_eq!(usize::from(p.l4_off), uvs_wire::CommonV6::L4_OFF);
        assert_eq!(
            (c.proto, c.tcp_flags, c.ip_total_len),
            (p.l4_proto, p.tcp_flags, p.ip_total_len)
        );
        assert_eq!((&c.addrs[..16], &c.addrs[16..]), (&p.src[..], &p.dst[..]));
        let (mut a, mut b) = (data.to_vec(), data.to_vec());
        assert_eq!(
            uvs_wire::complete_common_v6_checksum(&mut a, &c),
            uvs_wire::complete_l4_checksum(&mut b, &p)
        );
        assert_eq!(a, b);
    }
    let mut f = data.to_vec();
    if let Ok(Classified::Ip(mut p)) = uvs_wire::classify(data) {
        let _ = uvs_wire::verify_l4_checksum(&f, &p);
        // Completing a partial checksum leaves a valid frame valid.
        let _ = uvs_wire::complete_l4_checksum(&mut f, &p);
        uvs_wire::set_src_addr(&mut f, &mut p, &[7; 16]);
        uvs_wire::set_dst_addr(&mut f, &mut p, &[8; 16]);
        uvs_wire::set_src_port(&mut f, &mut p, 1);
        uvs_wire::set_dst_port(&mut f, &mut p, 2);
        uvs_wire::decrement_ttl(&mut f, &p);
        uvs_wire::set_macs(&mut f, [1; 6], [2; 6]);
        let _ = uvs_wire::verify_l4_checksum(&f, &p);
        if let Ok(e) = uvs_wire::parse_icmp_embedded(&f, &p) {
            let mut g = f.clone();
            let len = g.len();
            if let Some(skip) = uvs_wire::untunnel::tunnel_quote_len(&g, &e, Some(6080)) {
                let _ = uvs_wire::embedded::parse_quoted_inner(&g, &e, skip);
                let _ = uvs_wire::untunnel::untunnel_icmp_error(&mut g, len, &p, &e, skip, 64);
            }
        }
        if let Ok(mut e) = uvs_wire::parse_icmp_embedded(&f, &p) {
            uvs_wire::set_embedded_src_addr(&mut f, &mut e, &[3; 16]);
            uvs_wire::set_embedded_dst_addr(&mut f, &mut e, &[4; 16]);
            uvs_wire::set_embedded_src_port(&mut f, &mut e, 3);
            uvs_wire::set_embedded_dst_port(&mut f, &mut e, 4);
        }
        // A rewritten valid frame must still classify (rewrites keep lengths and checksums).
        assert!(
            uvs_wire::classify(&f).is_ok(),
            "rewrite broke a valid frame"
        );
        let mut out = [0u8; 1600];
        let _ = build::icmp_echo_reply(&f, &p, &mut out);
        let _ = build::icmpv4_frag_needed(&f, &p, [198, 18, 0, 1], 1400, &mut out);
        let _ = build::icmpv6_packet_too_big(&f, &p, &[1; 16], 1280, &mut out);
        let _ = build::ndp_neighbor_advert(&f, &p, [2; 6], &mut out);
        let len = f.len();
        let mut buf = f.clone();
        buf.resize(len + 60, 0);
        for (inner, outer) in [(L3::V4, L3::V6), (L3::V6, L3::V4), (p.l3, p.l3)] {
            let mut b = buf.clone();
            if let Ok(n) = uvs_wire::encap_ipip(
                &mut b,
                len,
                usize::from(p.l3_off),
                &[1; 16],
                &[2; 16],
                inner,
                outer,
                64,
            ) {
                // Decapsulating what we encapsulated gives back the IP packet.
                let m = uvs_wire::decap_ipip(&mut b, n, usize::from(p.l3_off))
                    .expect("decap of our own encap");
                assert_eq!(
                    &b[usize::from(p.l3_off)..m],
                    &f[usize::from(p.l3_off)..p.l3_end()]
                );
            }
        }
        let gue = Tunnel::Gue {
            src_port: 40000,
            dst_port: 6080,
            checksum: true,
        };
        for tunnel in [gue, Tunnel::Gre { checksum: true }, Tunnel::Gre { checksum: false }] {
            let mut b = buf.clone();
            let o = Outer {
                src: [1; 16],
                dst: [2; 16],
                family: p.l3,
                ttl: 64,
            };
            if let Ok(n) = uvs_wire::encap(&mut b, len, usize::from(p.l3_off), p.l3, &o, tunnel) {
                let m = uvs_wire::decap(&mut b, n, usize::from(p.l3_off), Some(6080))
                    .expect("decap of our own encap");
                assert_eq!(
                    &b[usize::from(p.l3_off)..m],
                    &f[usize::from(p.l3_off)..p.l3_end()]
                );
            }
        }
    }
    let mut out = [0u8; 64];
    let _ = build::arp_reply(data, [2; 6], &mut out);
    let mut g = data.to_vec();
    let len = g.len();
    for off in [14usize, 18, 22] {
        let _ = uvs_wire::decap_ipip(&mut g, len, off);
        let _ = uvs_wire::decap(&mut g, len, off, Some(6080));
    }
});
