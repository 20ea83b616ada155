//! ICMP errors about a spliced (SYN-proxied) connection through a real `Worker` on in-memory
//! ports (port 0 = clients, port 1 = real servers), frames built and read back by etherparse.
//!
//! An error quotes a segment as its sender's side got it, in that half's numbering; it
//! goes to the other half, whose TCP checks the quoted sequence number against what it
//! sent (Linux: `snd_una ≤ seq ≤ snd_nxt`, else `TcpExtOutOfWindowIcmps` and no path MTU
//! is learnt). So the quote is translated back as the splice translates the connection's
//! segments: an error from the client's side (about server data) reaches the real server
//! with SEQ + δ, ACK and SACK blocks + L (the PROXY header's length), TSval + τ and the
//! window scaled back; one from the server's side (about client data) reaches the client
//! with SEQ − L, ACK and SACK blocks − δ, TSecr − τ. Every checksum is recomputed here
//! independently of uvs's incremental updates.

mod synproxy_support;

use etherparse::{Ipv4Header, Ipv6Header, TcpHeader};
use synproxy_support::*;

/// An ICMP error from `src` to `dst` quoting `quoted` (an IP packet, cut to what a router
/// quotes: 548 bytes for IPv4, 1232 for IPv6): fragmentation needed / packet too big with
/// `mtu`, or (without) port unreachable.
fn icmp_error(
    macs: ([u8; 6], [u8; 6]),
    src: IpAddr,
    dst: IpAddr,
    mtu: Option<u16>,
    quoted: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1);
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

/// (source, destination, the 4 bytes after type/code/checksum, quote) of an ICMP error
/// frame, its IPv4 header and ICMP checksums verified.
fn take_icmp(frame: &[u8]) -> (IpAddr, IpAddr, [u8; 4], Vec<u8>) {
    let s = SlicedPacket::from_ethernet(frame).unwrap();
    match (&s.net, &s.transport) {
        (Some(etherparse::NetSlice::Ipv4(h)), Some(TransportSlice::Icmpv4(i))) => {
            let hdr = h.header().to_header();
            assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum);
            assert_eq!(
                i.header().checksum,
                i.icmp_type().calc_checksum(i.payload()),
                "ICMP checksum"
            );
            let b = i.slice();
            (
                IpAddr::V4(h.header().source_addr()),
                IpAddr::V4(h.header().destination_addr()),
                [b[4], b[5], b[6], b[7]],
                i.payload().to_vec(),
            )
        }
        (Some(etherparse::NetSlice::Ipv6(h)), Some(TransportSlice::Icmpv6(i))) => {
            let want = i
                .icmp_type()
                .calc_checksum(h.header().source(), h.header().destination(), i.payload())
                .unwrap();
            assert_eq!(i.checksum(), want, "ICMPv6 checksum");
            let b = i.slice();
            (
                IpAddr::V6(h.header().source_addr()),
                IpAddr::V6(h.header().destination_addr()),
                [b[4], b[5], b[6], b[7]],
                i.payload().to_vec(),
            )
        }
        other => panic!("not an ICMP error: {other:?}"),
    }
}

/// A quoted segment as read back: addresses, the TCP header (`None` when less than its
/// fixed 20 bytes are quoted), the quoted payload; for a whole quote the quoted IPv4
/// header and TCP checksums are verified.
struct Quoted {
    src: IpAddr,
    dst: IpAddr,
    tcp: Option<TcpHeader>,
    /// The first 8 bytes of the TCP header (ports and sequence number).
    head: [u8; 8],
}

fn read_quote(quote: &[u8]) -> Quoted {
    // The quoted IP header, and the TCP checksum the segment should have when it is
    // quoted whole (`None` when cut short: its checksum cannot be recomputed).
    type Sum = Option<Box<dyn Fn(&TcpHeader, &[u8]) -> u16>>;
    let (src, dst, l4, sum): (IpAddr, IpAddr, &[u8], Sum) = if quote[0] >> 4 == 4 {
        let (ip, rest) = Ipv4Header::from_slice(quote).unwrap();
        assert_eq!(
            ip.calc_header_checksum(),
            ip.header_checksum,
            "quoted IPv4 header checksum"
        );
        let (s, d) = (ip.source, ip.destination);
        let sum: Sum = if usize::from(ip.total_len) == quote.len() {
            Some(Box::new(move |t: &TcpHeader, p: &[u8]| {
                t.calc_checksum_ipv4_raw(s, d, p).unwrap()
            }))
        } else {
            None
        };
        (IpAddr::V4(s.into()), IpAddr::V4(d.into()), rest, sum)
    } else {
        let (ip, rest) = Ipv6Header::from_slice(quote).unwrap();
        let (s, d) = (ip.source, ip.destination);
        let sum: Sum = if usize::from(ip.payload_length) == rest.len() {
            Some(Box::new(move |t: &TcpHeader, p: &[u8]| {
                t.calc_checksum_ipv6_raw(s, d, p).unwrap()
            }))
        } else {
            None
        };
        (IpAddr::V6(s.into()), IpAddr::V6(d.into()), rest, sum)
    };
    let mut head = [0u8; 8];
    head.copy_from_slice(&l4[..8]);
    let tcp = TcpHeader::from_slice(l4).ok().map(|(t, payload)| {
        if let Some(sum) = &sum {
            assert_eq!(t.checksum, sum(&t, payload), "quoted TCP checksum");
        }
        t
    });
    Quoted {
        src,
        dst,
        tcp,
        head,
    }
}

fn seq_of(q: &Quoted) -> u32 {
    u32::from_be_bytes([q.head[4], q.head[5], q.head[6], q.head[7]])
}

/// A segment's timestamp option and SACK blocks.
type TsSack = (Option<(u32, u32)>, Vec<(u32, u32)>);

fn ts_and_sack(t: &TcpHeader) -> TsSack {
    let (mut ts, mut sack) = (None, Vec::new());
    for o in t.options_iterator() {
        match o.unwrap() {
            Opt::Timestamp(v, e) => ts = Some((v, e)),
            Opt::SelectiveAcknowledgement(first, rest) => {
                sack.push(first);
                sack.extend(rest.iter().flatten());
            }
            _ => {}
        }
    }
    (ts, sack)
}

/// A router on the servers' side.
fn server_router(v6: bool) -> IpAddr {
    a(if v6 { "2001:2:0:1::fe" } else { "198.18.1.254" })
}

/// A connection proxied and spliced (the server's SYN-ACK answered, its window shift 5
/// against the client's 7); the PROXY header's length on the server's half (0 without).
fn spliced(l: &mut Lab, proxy_protocol: bool) -> (Opened, u32) {
    let o = open(l);
    let [to_client, to_server] = l.send(1, &server_synack(l, &o, Some(5)));
    assert!(to_client.is_empty());
    assert_eq!(
        to_server.len(),
        1,
        "the ACK completing the server's handshake"
    );
    let pp = match (proxy_protocol, l.v6) {
        (false, _) => 0,
        (true, false) => 28,
        (true, true) => 52,
    };
    (o, pp)
}

/// Payload sizes of the quoted segment: a small one quoted whole (every checksum in it
/// checked), a full-sized one cut short by the router.
const PAYLOADS: [usize; 2] = [16, 1400];

/// From the client's side, fragmentation needed (packet too big) about a server segment
/// as the client got it: the real server gets it with the segment in its own numbering.
fn client_side_error(l: &mut Lab, o: &Opened, pp: u32, payload: usize) {
    let case = format!("{:?} v6={} pp={pp} payload={payload}", l.method, l.v6);
    let c1 = o.cookie.wrapping_add(1);
    // Server data 5 000 bytes in, acknowledging 19 bytes of the client's, as the client
    // got it: SEQ − δ, ACK − L, SACK − L, TSval − τ, window in the client's shift (7).
    let quoted = seg(
        (lab::LB0_MAC, lab::CLIENT_MAC),
        l.vip(),
        80,
        l.client(),
        CPORT,
        c1.wrapping_add(5000),
        100,
        F {
            ack: Some(CISN + 20),
            ..F::default()
        },
        &[
            Opt::Timestamp(o.our_ts.wrapping_add(7), 113),
            Opt::SelectiveAcknowledgement((CISN + 30, CISN + 40), [None, None, None]),
        ],
        &vec![0x55; payload],
    );
    let err = icmp_error(
        (lab::CLIENT_MAC, lab::LB0_MAC),
        l.client(),
        l.vip(),
        Some(1280),
        &quoted[14..],
    );
    let [back, to_server] = l.send(0, &err);
    assert!(back.is_empty(), "{case}");
    assert_eq!(
        to_server.len(),
        1,
        "{case}: the error reaches the real server"
    );
    assert_eq!(&to_server[0][..6], &lab::real_mac(1), "{case}");
    let (src, dst, rest, quote) = take_icmp(&to_server[0]);
    assert_eq!((src, dst), (l.seen_client(), l.real1()), "{case}");
    let mtu = if l.v6 {
        1280u32.to_be_bytes()
    } else {
        [0, 0, 5, 0]
    };
    assert_eq!(rest, mtu, "{case}: the MTU as sent");
    let q = read_quote(&quote);
    assert_eq!((q.src, q.dst), (l.real1(), l.seen_client()), "{case}");
    assert_eq!(seq_of(&q), SISN + 1 + 5000, "{case}: SEQ + δ");
    let t = q
        .tcp
        .unwrap_or_else(|| panic!("{case}: the TCP header is quoted"));
    assert_eq!((t.source_port, t.destination_port), (80, o.sport_seen));
    assert_eq!(t.acknowledgment_number, CISN + 20 + pp, "{case}: ACK + L");
    let (ts, sack) = ts_and_sack(&t);
    assert_eq!(ts, Some((9007, 113)), "{case}: TSval + τ");
    assert_eq!(
        sack,
        vec![(CISN + 30 + pp, CISN + 40 + pp)],
        "{case}: SACK + L"
    );
    assert_eq!(t.window_size, 100 << 7 >> 5, "{case}: the server's shift");
}

/// From the servers' side, fragmentation needed (packet too big) about a client segment as
/// the server got it: the client gets it from the VIP, about its own segment.
fn server_side_error(l: &mut Lab, o: &Opened, pp: u32, payload: usize) {
    let case = format!("{:?} v6={} pp={pp} payload={payload}", l.method, l.v6);
    let c1 = o.cookie.wrapping_add(1);
    // Client data 3 000 bytes in, as the server got it: SEQ + L, ACK and SACK + δ,
    // TSecr + τ.
    let quoted = seg(
        (lab::LB1_MAC, lab::real_mac(1)),
        l.seen_client(),
        o.sport_seen,
        l.real1(),
        80,
        CISN + 1 + pp + 3000,
        1000,
        F {
            ack: Some(SISN + 1 + 700),
            ..F::default()
        },
        &[
            Opt::Timestamp(120, 9004),
            Opt::SelectiveAcknowledgement((SISN + 801, SISN + 901), [None, None, None]),
        ],
        &vec![0x66; payload],
    );
    let err = icmp_error(
        (lab::real_mac(1), lab::LB1_MAC),
        server_router(l.v6),
        l.seen_client(),
        Some(1280),
        &quoted[14..],
    );
    let [to_client, onward] = l.send(1, &err);
    assert!(onward.is_empty(), "{case}");
    assert_eq!(to_client.len(), 1, "{case}: the error reaches the client");
    assert_eq!(&to_client[0][..6], &lab::CLIENT_MAC, "{case}");
    let (src, dst, _, quote) = take_icmp(&to_client[0]);
    assert_eq!((src, dst), (l.vip(), l.client()), "{case}");
    let q = read_quote(&quote);
    assert_eq!((q.src, q.dst), (l.client(), l.vip()), "{case}");
    assert_eq!(seq_of(&q), CISN + 1 + 3000, "{case}: SEQ − L");
    let t = q
        .tcp
        .unwrap_or_else(|| panic!("{case}: the TCP header is quoted"));
    assert_eq!((t.source_port, t.destination_port), (CPORT, 80));
    assert_eq!(
        t.acknowledgment_number,
        c1.wrapping_add(700),
        "{case}: ACK − δ"
    );
    let (ts, sack) = ts_and_sack(&t);
    assert_eq!(
        ts,
        Some((120, o.our_ts.wrapping_add(4))),
        "{case}: TSecr − τ"
    );
    assert_eq!(
        sack,
        vec![(c1.wrapping_add(800), c1.wrapping_add(900))],
        "{case}: SACK − δ"
    );
    assert_eq!(t.window_size, 1000, "{case}: both scale by 7");
}

#[test]
fn errors_about_a_spliced_connection_quote_the_receivers_numbering() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            for proxy_protocol in [false, true] {
                for payload in PAYLOADS {
                    let mut l = if proxy_protocol {
                        Lab::with_proxy_protocol(method, v6)
                    } else {
                        Lab::new(method, v6)
                    };
                    let (o, pp) = spliced(&mut l, proxy_protocol);
                    client_side_error(&mut l, &o, pp, payload);
                    server_side_error(&mut l, &o, pp, payload);
                }
            }
        }
    }
}

/// A quote of only the 8 bytes RFC 792 guarantees (ports and sequence number) has its
/// sequence number translated, and the ICMP checksum stays right.
#[test]
fn an_eight_byte_quote_has_its_sequence_number_translated() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::with_proxy_protocol(method, v6);
            let (o, pp) = spliced(&mut l, true);
            let c1 = o.cookie.wrapping_add(1);
            let quoted = seg(
                (lab::LB0_MAC, lab::CLIENT_MAC),
                l.vip(),
                80,
                l.client(),
                CPORT,
                c1.wrapping_add(10),
                100,
                F {
                    ack: Some(CISN + 1),
                    ..F::default()
                },
                &[],
                b"",
            );
            let ip_len = if v6 { 40 } else { 20 };
            let err = icmp_error(
                (lab::CLIENT_MAC, lab::LB0_MAC),
                l.client(),
                l.vip(),
                Some(1280),
                &quoted[14..14 + ip_len + 8],
            );
            let (_, _, _, quote) = take_icmp(&only_frame(&l.send(0, &err)[1]));
            let q = read_quote(&quote);
            assert!(q.tcp.is_none());
            assert_eq!(seq_of(&q), SISN + 11, "{method:?} v6={v6}");

            let quoted = seg(
                (lab::LB1_MAC, lab::real_mac(1)),
                l.seen_client(),
                o.sport_seen,
                l.real1(),
                80,
                CISN + 1 + pp + 10,
                1000,
                F {
                    ack: Some(SISN + 1),
                    ..F::default()
                },
                &[],
                b"",
            );
            let err = icmp_error(
                (lab::real_mac(1), lab::LB1_MAC),
                server_router(v6),
                l.seen_client(),
                Some(1280),
                &quoted[14..14 + ip_len + 8],
            );
            let (_, _, _, quote) = take_icmp(&only_frame(&l.send(1, &err)[0]));
            assert_eq!(seq_of(&read_quote(&quote)), CISN + 11, "{method:?} v6={v6}");
        }
    }
}

/// Before the server answered there is no δ: an error about uvs's SYN to the server goes
/// to the client with the SYN as sent (the client's own ISN).
#[test]
fn an_error_about_the_servers_syn_is_not_translated() {
    for v6 in [false, true] {
        let mut l = Lab::with_proxy_protocol(Method::Nat, v6);
        let o = open(&mut l);
        let syn = seg(
            (lab::LB1_MAC, lab::real_mac(1)),
            l.seen_client(),
            o.sport_seen,
            l.real1(),
            80,
            CISN,
            65535,
            F {
                syn: true,
                ..F::default()
            },
            &CLIENT_SYN_OPTS,
            b"",
        );
        let err = icmp_error(
            (lab::real_mac(1), lab::LB1_MAC),
            server_router(v6),
            l.seen_client(),
            None,
            &syn[14..],
        );
        let (_, _, _, quote) = take_icmp(&only_frame(&l.send(1, &err)[0]));
        let q = read_quote(&quote);
        assert_eq!(seq_of(&q), CISN, "v6={v6}");
        assert_eq!(q.tcp.unwrap().acknowledgment_number, 0);
    }
}

fn only_frame(out: &[Vec<u8>]) -> Vec<u8> {
    assert_eq!(out.len(), 1, "expected exactly one frame");
    out[0].clone()
}
