//! The SYN proxy's PROXY protocol v2 header (`proxy_protocol: v2`) through a real `Worker`
//! on in-memory ports (port 0 = clients, port 1 = real servers), frames built and read
//! back by etherparse: the header segment's bytes, the client's sequence space shifted by
//! the header's length both ways (SEQ, ACK, SACK blocks), and the header sent again when
//! the server shows it never got it. The helpers are `tests/synproxy_support`.

mod synproxy_support;

use synproxy_support::*;

/// The header as HAProxy's proxy-protocol.txt section 2.2 lays it out, byte by byte:
/// the client's address and port, the VIP and port 80.
fn expected_header(l: &Lab) -> Vec<u8> {
    let mut h = vec![
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
    ];
    h.push(0x21); // version 2, PROXY
    match (l.client(), l.vip()) {
        (IpAddr::V4(c), IpAddr::V4(v)) => {
            h.extend_from_slice(&[0x11, 0x00, 12]);
            h.extend_from_slice(&c.octets());
            h.extend_from_slice(&v.octets());
        }
        (IpAddr::V6(c), IpAddr::V6(v)) => {
            h.extend_from_slice(&[0x21, 0x00, 36]);
            h.extend_from_slice(&c.octets());
            h.extend_from_slice(&v.octets());
        }
        _ => unreachable!(),
    }
    h.extend_from_slice(&CPORT.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

fn pure_ack(l: &Lab, o: &Opened, ack: u32, tsval: u32, sack: Option<(u32, u32)>) -> Vec<u8> {
    let mut opts = vec![Opt::Noop, Opt::Noop, Opt::Timestamp(tsval, 113)];
    if let Some(b) = sack {
        opts = vec![
            Opt::Timestamp(tsval, 113),
            Opt::SelectiveAcknowledgement(b, [None, None, None]),
        ];
    }
    server_frame(
        l,
        o,
        SISN + 1,
        F {
            ack: Some(ack),
            ..F::default()
        },
        &opts,
        b"",
    )
}

#[test]
fn the_header_goes_first_and_shifts_the_clients_sequence_space() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::with_proxy_protocol(method, v6);
            let o = open(&mut l);
            let hdr = expected_header(&l);
            let n = hdr.len() as u32;
            assert_eq!(n, if v6 { 52 } else { 28 });

            // The client's request arrives before the server answered: held.
            let c1 = o.cookie.wrapping_add(1);
            let req = client_frame(
                &l,
                CISN + 1,
                F {
                    ack: Some(c1),
                    psh: true,
                    ..F::default()
                },
                &[Opt::Noop, Opt::Noop, Opt::Timestamp(113, o.our_ts)],
                b"GET / HTTP/1.1\r\n\r\n",
            );
            let [c, s] = l.send(0, &req);
            assert!(
                c.is_empty() && s.is_empty(),
                "held until the server answers"
            );

            // The server's SYN-ACK: the ACK completing its handshake carries the header at
            // the client's ISN + 1; the held request follows, L bytes further on.
            let [to_client, to_server] = l.send(1, &server_synack(&l, &o, Some(7)));
            assert!(to_client.is_empty());
            assert_eq!(
                to_server.len(),
                2,
                "the header segment, then the held request"
            );
            let h = read(&to_server[0]);
            assert_eq!((h.src, h.dst), (Some(l.seen_client()), Some(l.real1())));
            assert!(h.ack_flag && !h.syn && !h.fin && !h.rst);
            assert_eq!((h.seq, h.ack), (CISN + 1, SISN + 1));
            assert_eq!(h.ts, Some((112, 9000)));
            assert_eq!(h.payload, hdr, "PROXY v2 header bytes");
            let r = read(&to_server[1]);
            assert_eq!((r.seq, r.ack), (CISN + 1 + n, SISN + 1));
            assert_eq!(r.payload, b"GET / HTTP/1.1\r\n\r\n");
            let shared = l.shared.clone();
            let counters = &shared.counters[0];
            assert_eq!(counters.synproxy_proxy_headers.get(), 1);
            assert_eq!(counters.synproxy_proxy_resent.get(), 0);

            // The server's ACK of only its SYN: the header never arrived; it goes again
            // in that ACK's place (the client learns nothing from it).
            let [c, s] = l.send(1, &pure_ack(&l, &o, CISN + 1, 9001, None));
            assert!(c.is_empty(), "the duplicate ACK is not forwarded");
            let again = only(&s);
            assert_eq!((again.seq, again.ack), (CISN + 1, SISN + 1));
            assert_eq!(again.payload, hdr);
            assert_eq!(counters.synproxy_proxy_resent.get(), 1);

            // A repeated SYN-ACK (our ACK was lost) is answered with the header too.
            let s = only(&l.send(1, &server_synack(&l, &o, Some(7)))[1]);
            assert_eq!((s.seq, s.ack), (CISN + 1, SISN + 1));
            assert_eq!(s.payload, hdr);
            assert_eq!(counters.synproxy_proxy_resent.get(), 2);

            // The server acknowledges the header and the request, and SACKs a later block:
            // the client sees its own numbers (ACK − L, SACK − L).
            let got = CISN + 1 + n + 18;
            let reply = server_frame(
                &l,
                &o,
                SISN + 1,
                F {
                    ack: Some(got),
                    psh: true,
                    ..F::default()
                },
                &[
                    Opt::Timestamp(9005, 113),
                    Opt::SelectiveAcknowledgement((got + 100, got + 200), [None, None, None]),
                ],
                b"HTTP/1.1 200 OK\r\n\r\n",
            );
            let [to_client, to_server] = l.send(1, &reply);
            assert!(to_server.is_empty());
            let c = only(&to_client);
            assert_eq!((c.src, c.dst), (Some(l.vip()), Some(l.client())));
            assert_eq!((c.seq, c.ack), (c1, CISN + 19));
            assert_eq!(c.sack, vec![(CISN + 119, CISN + 219)]);
            assert_eq!(c.payload, b"HTTP/1.1 200 OK\r\n\r\n");

            // Client → server: SEQ + L, its ACK and SACK blocks + δ (the server's space).
            let more = client_frame(
                &l,
                CISN + 19,
                F {
                    ack: Some(c1.wrapping_add(19)),
                    fin: true,
                    ..F::default()
                },
                &[
                    Opt::Timestamp(114, o.our_ts + 5),
                    Opt::SelectiveAcknowledgement(
                        (c1.wrapping_add(50), c1.wrapping_add(60)),
                        [None, None, None],
                    ),
                ],
                b"",
            );
            let s = only(&l.send(0, &more)[1]);
            assert!(s.fin);
            assert_eq!((s.seq, s.ack), (CISN + 19 + n, SISN + 20));
            assert_eq!(s.sack, vec![(SISN + 51, SISN + 61)]);
            assert!(s.payload.is_empty());

            // Once acknowledged, the header is never sent again: an old ACK of only the
            // SYN (reordered) is translated like any segment.
            let c = only(&l.send(1, &pure_ack(&l, &o, CISN + 1, 9006, None))[0]);
            assert_eq!(c.ack, (CISN + 1).wrapping_sub(n));
            assert_eq!(counters.synproxy_proxy_resent.get(), 2);
            assert_eq!(counters.synproxy_proxy_headers.get(), 3);
        }
    }
}

#[test]
fn without_early_data_the_header_segment_is_alone_and_the_first_request_shifted() {
    let mut l = Lab::with_proxy_protocol(Method::Nat, false);
    let o = open(&mut l);
    let s = only(&l.send(1, &server_synack(&l, &o, None))[1]);
    assert_eq!(s.payload, expected_header(&l));
    // A server that does not scale reads uvs's window as it is.
    assert_eq!(s.window, 65535);
    let req = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(o.cookie.wrapping_add(1)),
            ..F::default()
        },
        &[Opt::Noop, Opt::Noop, Opt::Timestamp(113, o.our_ts)],
        b"x",
    );
    let s = only(&l.send(0, &req)[1]);
    assert_eq!(s.seq, CISN + 1 + 28);
}
