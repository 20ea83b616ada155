//! Multi-homed SCTP through the balancer: address parameters of INIT / INIT-ACK under NAT,
//! FullNAT and DR, and a client's second address (path failover) reaching the same real
//! server — plus, under NAT, a real server answering on the client's second address.

mod sctp_support;

use sctp_support::*;
use uvs_dataplane::lab;
use uvs_dataplane::sctp::SctpState;
use uvs_dataplane::{DropReason, Method};

/// An INIT listing many addresses of both families and a host name, and what each method
/// lets through to the real server.
#[test]
fn init_with_many_address_parameters() {
    for method in [Method::Nat, Method::FullNat, Method::Dr] {
        for v6 in [false, true] {
            let case = format!("{method:?} v6={v6}");
            let mut lab = Lab::new(method);
            let mut params = Vec::new();
            for i in 1..=6u8 {
                params.push(addr_param(a(&format!("198.18.0.{}", 10 + i))));
                params.push(addr_param(a(&format!("2001:2::{}", 10 + i))));
            }
            params.push(param(11, b"client.example")); // host name (odd length: padded)
            params.push(param(12, &[0, 5, 0, 6])); // supported address types
            params.push(param(0x8000, &[1, 2, 3, 4, 5])); // ECN capable-ish unknown, kept
            let f = frame(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                45000,
                vip(v6),
                PORT_CHANGE,
                0,
                &[init_chunk(INIT, 0xaaaa, &params)],
            );
            let [_, fwd] = lab.send(0, &f);
            assert_eq!(fwd.len(), 1, "{case}");
            if method == Method::Dr {
                assert_eq!(
                    &fwd[0][12..],
                    &uvs_testkit::one_hop_on(&f)[12..],
                    "{case}: DR forwards the INIT unchanged but the TTL"
                );
                continue;
            }
            let o = parse_out(&fwd[0]);
            let kinds: Vec<u16> = o.init_params().iter().map(|(t, _)| *t).collect();
            let same = if v6 { 6 } else { 5 };
            let want: Vec<u16> = if method == Method::Nat {
                std::iter::repeat_n(same, 6).chain([12, 0x8000]).collect()
            } else {
                vec![12, 0x8000]
            };
            assert_eq!(kinds, want, "{case}");
            let last = o.init_params().last().unwrap().1.clone();
            assert_eq!(last, vec![1, 2, 3, 4, 5], "{case}: kept parameters intact");
            assert_eq!(o.dport, REAL_PORT_CHANGED, "{case}");
            let (_, init_value) = &o.chunks()[0];
            assert_eq!(&init_value[..4], &0xaaaau32.to_be_bytes(), "{case}");
            assert_eq!(lab.state(45000), SctpState::Init1, "{case}");
        }
    }
}

/// The real server's INIT-ACK lists its own addresses: under NAT and FullNAT they are
/// removed so the client only ever uses the VIP; the state cookie stays byte for byte.
#[test]
fn init_ack_loses_real_server_addresses() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let case = format!("{method:?} v6={v6}");
            let mut lab = Lab::new(method);
            let init = frame(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                45100,
                vip(v6),
                PORT,
                0,
                &[init_chunk(INIT, 0x0101, &[])],
            );
            let [_, fwd] = lab.send(0, &init);
            let o = only(&fwd);
            let cookie: Vec<u8> = (0..=250u8).collect();
            let ack = frame(
                lab::real_mac(1),
                lab::LB1_MAC,
                o.dst,
                o.dport,
                o.src,
                o.sport,
                0x0101,
                &[init_chunk(
                    INIT_ACK,
                    0x0202,
                    &[
                        addr_param(real(1, false)),
                        param(7, &cookie),
                        addr_param(real(1, true)),
                        addr_param(a("198.18.1.99")),
                    ],
                )],
            );
            let [back, _] = lab.send(1, &ack);
            let b = only(&back);
            let params = b.init_params();
            assert_eq!(params.len(), 1, "{case}: only the cookie is left");
            assert_eq!(params[0], (7, cookie.clone()), "{case}");
            assert_eq!((b.src, b.dst), (vip(v6), client(v6)), "{case}");
            assert_eq!(lab.state(45100), SctpState::CookieSent, "{case}");
        }
    }
}

/// A multi-homed client: its INIT lists a second address; after the handshake it sends
/// from that address (path failover). The packet reaches the same real server — under
/// NAT from the second address (which the server knows from the INIT), under FullNAT
/// from the association's local address and port — and the association stays one entry.
#[test]
fn second_path_reaches_the_same_real_server() {
    for method in [Method::Nat, Method::FullNat, Method::Dr, Method::Tun] {
        for v6 in [false, true] {
            let case = format!("{method:?} v6={v6}");
            let mut lab = Lab::new(method);
            // Occupy real 1 so the association under test lands elsewhere (rr).
            let other = frame(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                45199,
                vip(v6),
                PORT,
                0,
                &[init_chunk(INIT, 0x9, &[])],
            );
            lab.send(0, &other);
            let cport = 45200;
            let client_tag = 0x0c0c;
            let server_tag = 0x0d0d;
            let init = frame(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                cport,
                vip(v6),
                PORT,
                0,
                &[init_chunk(INIT, client_tag, &[addr_param(client2(v6))])],
            );
            let [_, fwd] = lab.send(0, &init);
            assert_eq!(fwd.len(), 1, "{case}");
            let first = if matches!(method, Method::Nat | Method::FullNat) {
                let o = parse_out(&fwd[0]);
                assert_eq!(o.dst, real(2, v6), "{case}");
                let ack = frame(
                    lab::real_mac(2),
                    lab::LB1_MAC,
                    o.dst,
                    o.dport,
                    o.src,
                    o.sport,
                    client_tag,
                    &[init_chunk(INIT_ACK, server_tag, &[param(7, b"ck")])],
                );
                let [back, _] = lab.send(1, &ack);
                only(&back);
                Some(o)
            } else {
                None
            };
            let echo = frame(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                cport,
                vip(v6),
                PORT,
                server_tag,
                &[chunk(COOKIE_ECHO, 0, b"ck")],
            );
            let [_, fwd] = lab.send(0, &echo);
            assert_eq!(fwd.len(), 1, "{case}");
            if let Some(o) = &first {
                let cack = frame(
                    lab::real_mac(2),
                    lab::LB1_MAC,
                    o.dst,
                    o.dport,
                    o.src,
                    o.sport,
                    client_tag,
                    &[chunk(COOKIE_ACK, 0, &[])],
                );
                let [back, _] = lab.send(1, &cack);
                only(&back);
            }
            assert_eq!(lab.state(cport), SctpState::Established, "{case}");
            // Failover: the same association from the client's second address.
            let from2 = |tag| {
                frame(
                    CLIENT2_MAC,
                    lab::LB0_MAC,
                    client2(v6),
                    cport,
                    vip(v6),
                    PORT,
                    tag,
                    &[data_chunk(b"via path 2")],
                )
            };
            let [_, fwd] = lab.send(0, &from2(server_tag));
            assert_eq!(fwd.len(), 1, "{case}: second path forwarded");
            assert_eq!(&fwd[0][..6], &lab::real_mac(2), "{case}: same real server");
            match method {
                Method::Nat => {
                    let o = parse_out(&fwd[0]);
                    assert_eq!((o.src, o.dst), (client2(v6), real(2, v6)), "{case}");
                }
                Method::FullNat => {
                    let o = parse_out(&fwd[0]);
                    let f = first.as_ref().unwrap();
                    assert_eq!(
                        (o.src, o.sport),
                        (f.src, f.sport),
                        "{case}: same local port"
                    );
                    assert_eq!(o.dst, real(2, v6), "{case}");
                }
                _ => {}
            }
            // Another tag from the second address belongs to no association.
            let [_, fwd] = lab.send(0, &from2(server_tag ^ 0x100));
            assert!(fwd.is_empty(), "{case}");
            assert_eq!(lab.drops(DropReason::SctpNotInit), 1, "{case}");
            assert_eq!(lab.associations().len(), 2, "{case}: no entry per path");

            if method == Method::Nat {
                // The real server answers on the client's second address.
                let r = frame(
                    lab::real_mac(2),
                    lab::LB1_MAC,
                    real(2, v6),
                    PORT,
                    client2(v6),
                    cport,
                    client_tag,
                    &[chunk(SACK, 0, &[0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])],
                );
                let [back, _] = lab.send(1, &r);
                let o = only(&back);
                assert_eq!((o.src, o.sport), (vip(v6), PORT), "{case}");
                assert_eq!((o.dst, o.dport), (client2(v6), cport), "{case}");
                assert_eq!(
                    o.dst_mac, CLIENT2_MAC,
                    "{case}: routed to the second address"
                );
                let bad = frame(
                    lab::real_mac(2),
                    lab::LB1_MAC,
                    real(2, v6),
                    PORT,
                    client2(v6),
                    cport,
                    server_tag,
                    &[chunk(SACK, 0, &[0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])],
                );
                let [back, _] = lab.send(1, &bad);
                assert!(back.is_empty(), "{case}");
            }
            // The association's shutdown on path 2 closes its one entry.
            let shut = frame(
                CLIENT2_MAC,
                lab::LB0_MAC,
                client2(v6),
                cport,
                vip(v6),
                PORT,
                server_tag,
                &[chunk(SHUTDOWN, 0, &[0, 0, 0, 1])],
            );
            let [_, fwd] = lab.send(0, &shut);
            assert_eq!(fwd.len(), 1, "{case}");
            assert_eq!(lab.state(cport), SctpState::ShutdownReceived, "{case}");
        }
    }
}
