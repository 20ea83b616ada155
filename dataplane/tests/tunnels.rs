//! TUN's GUE and GRE encapsulations through the pipeline, checked independently of uvs's
//! wire code: etherparse parses the outer IP and UDP headers and verifies the UDP checksum;
//! the GUE/GRE bytes are compared with what Linux's `ipvs_gue_encap` / `ipvs_gre_encap`
//! write, and the GRE checksum is recomputed here with a plain ones' complement sum.

use std::net::IpAddr;
use std::sync::Arc;

use uvs_dataplane::lab;
use uvs_dataplane::{Method, Shared, TablesBuilder, TablesSpec, TunEncap, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_testkit::{self as tk, check_frame};

struct Lab {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
}

impl Lab {
    fn new(tun: TunEncap) -> Lab {
        let mut spec: TablesSpec = lab::spec(Method::Tun, SchedulerKind::Rr, 1);
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

    fn send(&mut self, frame: &[u8]) -> [Vec<Vec<u8>>; 2] {
        assert!(self.w.ports[0].push_rx(frame));
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    fn tunnelled(&self) -> [u64; 3] {
        [0, 1, 2].map(|i| self.shared.counters[0].tunnelled[i].get())
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn request(v6: bool, sport: u16, payload_len: usize) -> Vec<u8> {
    let (c, v) = if v6 {
        (lab::CLIENT6, lab::VIP6)
    } else {
        (lab::CLIENT4, lab::VIP4)
    };
    let mut f = tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        ip(c),
        sport,
        ip(v),
        80,
        tk::SYN,
        &vec![7u8; payload_len],
    );
    if !v6 {
        f[20] |= 0x40; // DF: the client does path-MTU discovery
        f[24..26].copy_from_slice(&[0, 0]);
        let c = tk::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// RFC 1071 sum, folded and complemented: 0 over a block whose checksum is right.
fn ones_complement(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn gue_carries_the_packet_in_udp_to_the_tunnel_port() {
    for (v6, checksum) in [(false, false), (false, true), (true, false), (true, true)] {
        let case = format!("v6={v6} checksum={checksum}");
        let mut lab = Lab::new(TunEncap::Gue {
            port: 6080,
            checksum,
            remcsum: false,
        });
        let input = request(v6, 40100, 100);
        let [_, out] = lab.send(&input);
        assert_eq!(out.len(), 1, "{case}");
        let frame = &out[0];
        let ip_hdr = if v6 { 40 } else { 20 };
        assert_eq!(frame.len(), input.len() + ip_hdr + 8 + 4, "{case}");
        // Outer IP + UDP, checksums verified by etherparse. A zero UDP checksum (no
        // checksum asked for) is fine over IPv4 (RFC 768) and, for tunnels, over IPv6 too
        // (RFC 6935), which etherparse's general check does not know: verified there when
        // one is carried.
        let sliced = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::TransportSlice::Udp(u)) = &sliced.transport else {
            panic!("{case}: not UDP");
        };
        if checksum || !v6 {
            check_frame(frame).unwrap_or_else(|e| panic!("{case}: {e}"));
        }
        let dst = match &sliced.net {
            Some(etherparse::NetSlice::Ipv4(h)) => IpAddr::V4(h.header().destination_addr()),
            Some(etherparse::NetSlice::Ipv6(h)) => IpAddr::V6(h.header().destination_addr()),
            other => panic!("{case}: {other:?}"),
        };
        assert_eq!(dst, lab::real(1, v6).to_ip(), "{case}");
        assert_eq!(u.destination_port(), 6080, "{case}");
        let sport = u.source_port();
        assert!((32768..61000).contains(&sport), "{case}: {sport}");
        assert_eq!(
            u.checksum() != 0,
            checksum,
            "{case}: UDP checksum {:#06x}",
            u.checksum()
        );
        // GUE variant 0, no options, protocol IPIP / IPv6, no flags; then the client's packet.
        let inner_proto = if v6 { 41 } else { 4 };
        assert_eq!(&u.payload()[..4], &[0, inner_proto, 0, 0], "{case}");
        assert_eq!(&u.payload()[4..], &tk::one_hop_on(&input)[14..], "{case}");
        // The same flow keeps its source port (the receiver's RSS and ECMP see one flow).
        let [_, again] = lab.send(&input);
        let again = etherparse::SlicedPacket::from_ethernet(&again[0]).unwrap();
        let Some(etherparse::TransportSlice::Udp(u2)) = again.transport else {
            panic!("{case}: not UDP");
        };
        assert_eq!(u2.source_port(), sport, "{case}");
        assert_eq!(lab.tunnelled(), [0, 2, 0], "{case}");
    }
}

#[test]
fn gre_carries_the_packet_with_the_inner_ethertype() {
    for (v6, checksum) in [(false, false), (false, true), (true, false), (true, true)] {
        let case = format!("v6={v6} checksum={checksum}");
        let mut lab = Lab::new(TunEncap::Gre { checksum });
        let input = request(v6, 40200, 100);
        let [_, out] = lab.send(&input);
        assert_eq!(out.len(), 1, "{case}");
        let frame = &out[0];
        let ip_hdr = if v6 { 40 } else { 20 };
        let gre_hdr = if checksum { 8 } else { 4 };
        assert_eq!(frame.len(), input.len() + ip_hdr + gre_hdr, "{case}");
        let sliced = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
        let proto = match &sliced.net {
            Some(etherparse::NetSlice::Ipv4(h)) => {
                let hdr = h.header().to_header();
                assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum, "{case}");
                h.header().protocol().0
            }
            Some(etherparse::NetSlice::Ipv6(h)) => h.header().next_header().0,
            other => panic!("{case}: {other:?}"),
        };
        assert_eq!(proto, 47, "{case}");
        let gre = &frame[14 + ip_hdr..];
        let ethertype: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let flags = if checksum { 0x80 } else { 0x00 };
        assert_eq!(&gre[..4], &[flags, 0, ethertype[0], ethertype[1]], "{case}");
        if checksum {
            assert_eq!(ones_complement(gre), 0, "{case}: GRE checksum");
            assert_eq!(&gre[6..8], &[0, 0], "{case}: reserved1");
        }
        assert_eq!(&gre[gre_hdr..], &tk::one_hop_on(&input)[14..], "{case}");
        assert_eq!(lab.tunnelled(), [0, 0, 1], "{case}");
    }
}

/// The tunnel's extra bytes count against the egress MTU (1500 in the lab): the client is
/// told what is left, 1500 − IP − UDP − GUE = 1468 over IPv4, 1500 − 40 − 8 (GRE with its
/// checksum) = 1452 over IPv6; a packet that fits exactly goes through.
#[test]
fn tunnel_overhead_counts_against_the_mtu() {
    let cases = [
        (
            false,
            TunEncap::Gue {
                port: 6080,
                checksum: true,
                remcsum: false,
            },
            1468u32,
        ),
        (true, TunEncap::Gre { checksum: true }, 1452),
    ];
    for (v6, tun, room) in cases {
        let case = format!("v6={v6} {tun:?}");
        let l3 = if v6 { 40 } else { 20 };
        let fits = room as usize - l3 - 20;
        let mut lab = Lab::new(tun);
        let [back, out] = lab.send(&request(v6, 40300, fits));
        assert_eq!((back.len(), out.len()), (0, 1), "{case}: fits");
        assert_eq!(out[0].len(), 14 + 1500, "{case}");
        let [back, out] = lab.send(&request(v6, 40301, fits + 1));
        assert!(out.is_empty(), "{case}: nothing oversized is sent");
        assert_eq!(back.len(), 1, "{case}: an ICMP error goes back");
        let s = etherparse::SlicedPacket::from_ethernet(&back[0]).unwrap();
        let mtu = match s.transport {
            Some(etherparse::TransportSlice::Icmpv4(i)) => match i.icmp_type() {
                etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
                ) => u32::from(next_hop_mtu),
                t => panic!("{case}: {t:?}"),
            },
            Some(etherparse::TransportSlice::Icmpv6(i)) => match i.icmp_type() {
                etherparse::Icmpv6Type::PacketTooBig { mtu } => mtu,
                t => panic!("{case}: {t:?}"),
            },
            other => panic!("{case}: {other:?}"),
        };
        assert_eq!(mtu, room, "{case}");
        let too_big = lab.shared.counters[0].dropped(uvs_dataplane::DropReason::TooBig);
        assert_eq!(too_big, 1, "{case}: counted as too_big");
    }
}

/// The client's IPv4 fragments (or its whole datagram) inside the tunnel packets `out`,
/// `outer` bytes of outer headers after Ethernet: each frame fits the 1500-byte link,
/// each inner header's checksum holds, and the pieces put back together by offset are
/// the datagram's IP payload.
fn reassemble(case: &str, out: &[Vec<u8>], outer: usize) -> Vec<u8> {
    let mut pieces = Vec::new();
    for f in out {
        assert!(f.len() <= 14 + 1500, "{case}: a {}-byte frame", f.len());
        check_frame(f).unwrap_or_else(|e| panic!("{case}: outer: {e}"));
        let inner = &f[14 + outer..];
        let (h, rest) = etherparse::Ipv4Header::from_slice(inner)
            .unwrap_or_else(|e| panic!("{case}: inner: {e}"));
        assert_eq!(h.calc_header_checksum(), h.header_checksum, "{case}");
        assert!(!h.dont_fragment, "{case}");
        let data = &rest[..usize::from(h.total_len) - h.header_len()];
        pieces.push((
            usize::from(h.fragment_offset.byte_offset()),
            h.more_fragments,
            data.to_vec(),
        ));
    }
    pieces.sort_by_key(|p| p.0);
    let mut whole = Vec::new();
    for (i, (off, more, data)) in pieces.iter().enumerate() {
        assert_eq!(*off, whole.len(), "{case}: pieces {pieces:?}");
        assert_eq!(*more, i + 1 < pieces.len(), "{case}: MF of piece {i}");
        whole.extend_from_slice(data);
    }
    whole
}

/// `f` (IPv4 in Ethernet) with DF cleared: a datagram the client lets routers fragment.
fn without_df(mut f: Vec<u8>) -> Vec<u8> {
    f[20] &= !0x40;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = tk::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// A client's IPv4 packet without DF that no longer fits the 1500-byte link once
/// encapsulated is cut into fragments, each its own tunnel packet, as a router on the way
/// would (IPVS's tunnel packet inherits the inner DF and the kernel fragments it): a
/// 1500-byte datagram, and a 3000-byte one the client already fragmented to its link's
/// 1500 bytes, reach the real server whole over each encapsulation instead of being dropped
/// as `too_big` with nothing said to the client.
#[test]
fn a_packet_without_df_is_fragmented_to_fit_the_tunnel() {
    let tunnels = [
        (TunEncap::Ipip, 20),
        (
            TunEncap::Gue {
                port: 6080,
                checksum: true,
                remcsum: false,
            },
            32,
        ),
        (TunEncap::Gre { checksum: true }, 28),
    ];
    for (tun, outer) in tunnels {
        let case = format!("{tun:?}");
        let mut lab = Lab::new(tun);
        let data: Vec<u8> = (0..1472u32).map(|i| (i % 253) as u8).collect();
        let whole = tk::udp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            ip(lab::CLIENT4),
            41000,
            ip(lab::VIP4),
            53,
            &data,
        );
        let whole = without_df(whole);
        assert_eq!(whole.len(), 14 + 1500);
        let [back, out] = lab.send(&whole);
        assert!(back.is_empty(), "{case}: nothing goes back: {back:?}");
        assert_eq!(out.len(), 2, "{case}: two fragments");
        assert_eq!(reassemble(&case, &out, outer), whole[34..], "{case}");

        // The client's own fragments of a larger datagram: each is cut again.
        let data: Vec<u8> = (0..2972u32).map(|i| (i % 241) as u8).collect();
        let big = tk::udp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            ip(lab::CLIENT4),
            41001,
            ip(lab::VIP4),
            53,
            &data,
        );
        let big = without_df(big);
        let cut = uvs_wire::fragment::Cut::new(&big[14..], 1500).unwrap();
        let mut frames = Vec::new();
        for k in 1..cut.count() {
            let mut f = big[..14].to_vec();
            f.resize(14 + 1500, 0);
            let n = cut.write_later(&big[14..], k, &mut f[14..]).unwrap();
            f.truncate(14 + n);
            frames.push(f);
        }
        let mut first = big.clone();
        let n = cut.keep_first(&mut first[14..]);
        first.truncate(14 + n);
        frames.insert(0, first);
        let mut sent = Vec::new();
        for f in &frames {
            let [back, out] = lab.send(f);
            assert!(back.is_empty(), "{case}: nothing goes back");
            sent.extend(out);
        }
        assert_eq!(sent.len(), 5, "{case}: 1500 + 1500 + 40 bytes → 2 + 2 + 1");
        assert_eq!(reassemble(&case, &sent, outer), big[34..], "{case}");
        let drops = lab.shared.counters[0].dropped(uvs_dataplane::DropReason::TooBig);
        assert_eq!(drops, 0, "{case}");
    }
}

/// The fragments of a packet cut for the tunnel wait with it while the real server's MAC
/// is asked for, and leave with it, every one from uvs's MAC to the server's (not with
/// the client's addresses they were cut from).
#[test]
fn fragments_wait_for_the_neighbour_with_their_packet() {
    let mut lab = Lab::new(TunEncap::Ipip);
    lab.shared.neigh.clear();
    lab.shared
        .neigh
        .learn(lab::ipk(lab::CLIENT4), lab::CLIENT_MAC, 0);
    let data = vec![9u8; 1472];
    let whole = without_df(tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        ip(lab::CLIENT4),
        41100,
        ip(lab::VIP4),
        53,
        &data,
    ));
    let [back, out] = lab.send(&whole);
    assert!(back.is_empty());
    assert_eq!(out.len(), 1, "an ARP request, nothing else yet");
    assert_eq!(&out[0][12..14], &[0x08, 0x06]);
    let mut reply = vec![0u8; 60];
    reply[..6].copy_from_slice(&lab::LB1_MAC);
    reply[6..12].copy_from_slice(&lab::real_mac(1));
    reply[12..14].copy_from_slice(&[0x08, 0x06]);
    reply[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    reply[22..28].copy_from_slice(&lab::real_mac(1));
    reply[28..32].copy_from_slice(&[198, 18, 1, 11]);
    reply[32..38].copy_from_slice(&lab::LB1_MAC);
    reply[38..42].copy_from_slice(&[198, 18, 1, 3]);
    assert!(lab.w.ports[1].push_rx(&reply));
    lab.w.poll();
    let out = lab.w.ports[1].take_tx();
    assert_eq!(out.len(), 2, "both fragments leave");
    for f in &out {
        assert_eq!(&f[..6], &lab::real_mac(1));
        assert_eq!(&f[6..12], &lab::LB1_MAC);
    }
    assert_eq!(reassemble("held", &out, 20), whole[34..]);
}
