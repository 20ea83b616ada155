//! The SYN proxy through a real `Worker` on in-memory ports (port 0 = clients, port 1 =
//! real servers), frames built and read back by etherparse (every checksum recomputed
//! independently of uvs's incremental updates).

mod synproxy_support;

use std::sync::atomic::Ordering::Relaxed;

use synproxy_support::*;

#[test]
fn handshake_and_splice_translate_both_ways() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::new(method, v6);
            let o = open(&mut l);

            // The server's SYN-ACK becomes the ACK that completes its handshake.
            let [to_client, to_server] = l.send(1, &server_synack(&l, &o, Some(5)));
            assert!(to_client.is_empty(), "the client is already established");
            let ack = only(&to_server);
            assert!(ack.ack_flag && !ack.syn);
            assert_eq!((ack.seq, ack.ack), (CISN + 1, SISN + 1));
            assert_eq!(ack.ts, Some((112, 9000)));
            assert_eq!(l.shared.counters[0].synproxy_spliced.get(), 1);

            // Client data: ACK + δ, TSecr + τ, SACK blocks + δ; the window is unchanged
            // (both sides scale; the server reads the client's shift).
            let c1 = o.cookie.wrapping_add(1);
            let data = client_frame(
                &l,
                CISN + 1,
                F {
                    ack: Some(c1),
                    psh: true,
                    ..F::default()
                },
                &[
                    Opt::Timestamp(113, o.our_ts + 1),
                    Opt::SelectiveAcknowledgement(
                        (c1.wrapping_add(100), c1.wrapping_add(200)),
                        [None, None, None],
                    ),
                ],
                b"GET / HTTP/1.1\r\n\r\n",
            );
            let [to_client, to_server] = l.send(0, &data);
            assert!(to_client.is_empty());
            let s = only(&to_server);
            assert_eq!((s.seq, s.ack), (CISN + 1, SISN + 1));
            assert_eq!(s.ts, Some((113, 9001)));
            assert_eq!(s.sack, vec![(SISN + 101, SISN + 201)]);
            assert_eq!(s.window, 1000);
            assert_eq!(s.payload, b"GET / HTTP/1.1\r\n\r\n");

            // Server data: SEQ − δ, TSval − τ; its window (shift 5) rescaled to the shift
            // uvs offered the client (7).
            let reply = server_frame(
                &l,
                &o,
                SISN + 1,
                F {
                    ack: Some(CISN + 19),
                    psh: true,
                    ..F::default()
                },
                &[Opt::Noop, Opt::Noop, Opt::Timestamp(9005, 113)],
                b"HTTP/1.1 200 OK\r\n\r\n",
            );
            let [to_client, to_server] = l.send(1, &reply);
            assert!(to_server.is_empty());
            let c = only(&to_client);
            assert_eq!((c.src, c.dst), (Some(l.vip()), Some(l.client())));
            assert_eq!((c.sport, c.dport), (80, CPORT));
            assert_eq!((c.seq, c.ack), (c1, CISN + 19));
            assert_eq!(c.ts, Some((o.our_ts + 5, 113)));
            assert_eq!(c.window, 100 << 5 >> 7);
            assert_eq!(c.payload, b"HTTP/1.1 200 OK\r\n\r\n");

            // FIN and RST pass through, translated.
            let fin = server_frame(
                &l,
                &o,
                SISN + 20,
                F {
                    ack: Some(CISN + 19),
                    fin: true,
                    ..F::default()
                },
                &[],
                b"",
            );
            let c = only(&l.send(1, &fin)[0]);
            assert!(c.fin);
            assert_eq!(c.seq, c1.wrapping_add(19));
            let rst = client_frame(
                &l,
                CISN + 19,
                F {
                    ack: Some(c1.wrapping_add(20)),
                    rst: true,
                    ..F::default()
                },
                &[],
                b"",
            );
            let s = only(&l.send(0, &rst)[1]);
            assert!(s.rst);
            assert_eq!(s.ack, SISN + 21);
        }
    }
}

#[test]
fn a_server_without_window_scaling_gets_unscaled_windows() {
    let mut l = Lab::new(Method::Nat, false);
    let o = open(&mut l);
    l.send(1, &server_synack(&l, &o, None));
    let c1 = o.cookie.wrapping_add(1);
    // The client scales by 7: 100 means 12 800 bytes, which the server (no scaling)
    // must read as such.
    let data = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(c1),
            ..F::default()
        },
        &[Opt::Noop, Opt::Noop, Opt::Timestamp(113, o.our_ts)],
        b"x",
    );
    let mut data = data;
    let s = {
        // Window 100 instead of the helper's 1000.
        let at = 14 + 20 + 14;
        data[at..at + 2].copy_from_slice(&100u16.to_be_bytes());
        fix_tcp_checksum_v4(&mut data);
        only(&l.send(0, &data)[1])
    };
    assert_eq!(s.window, 12800);
    // And the server's 100 bytes become 0 (rounded down at shift 7)... at least 1 byte
    // of window must not be promised that is not there: 100 >> 7 = 0.
    let reply = server_frame(
        &l,
        &o,
        SISN + 1,
        F {
            ack: Some(CISN + 2),
            ..F::default()
        },
        &[Opt::Noop, Opt::Noop, Opt::Timestamp(9001, 113)],
        b"y",
    );
    let c = only(&l.send(1, &reply)[0]);
    assert_eq!(c.window, 0);
}

fn fix_tcp_checksum_v4(frame: &mut [u8]) {
    let l4 = 14 + 20;
    frame[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for w in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    };
    add(&frame[14 + 12..14 + 20]);
    add(&[0, 6]);
    add(&((frame.len() - l4) as u16).to_be_bytes());
    add(&frame[l4..]);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn forged_and_expired_cookies_open_nothing() {
    let mut l = Lab::new(Method::Nat, false);
    // An ACK nobody sent a SYN-ACK for.
    let forged = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(0x1234_5678),
            ..F::default()
        },
        &[],
        b"",
    );
    let [c, s] = l.send(0, &forged);
    assert!(c.is_empty() && s.is_empty());
    assert_eq!(l.drops(DropReason::SynProxyCookieInvalid), 1);
    assert_eq!(l.drops(DropReason::SynProxyCookieExpired), 0);
    assert_eq!(l.shared.conns.len(), 0);

    // A real cookie, returned 200 s later (valid for two 64 s periods at most).
    let syn = client_frame(
        &l,
        CISN,
        F {
            syn: true,
            ..F::default()
        },
        &[Opt::MaximumSegmentSize(1460)],
        b"",
    );
    let sa = only(&l.send(0, &syn)[0]);
    assert_eq!(sa.ts, None, "no timestamps from the client: none back");
    assert_eq!(sa.ws, None);
    l.advance(200);
    let late = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(sa.seq.wrapping_add(1)),
            ..F::default()
        },
        &[],
        b"",
    );
    let [c, s] = l.send(0, &late);
    assert!(c.is_empty() && s.is_empty());
    assert_eq!(l.drops(DropReason::SynProxyCookieExpired), 1);
    assert_eq!(l.shared.conns.len(), 0);
}

#[test]
fn a_syn_flood_leaves_no_entries() {
    let mut l = Lab::new(Method::Nat, false);
    for n in 10..210u8 {
        let src = IpAddr::from([198, 18, 0, n]);
        l.shared
            .neigh
            .learn(uvs_dataplane::IpKey::from_ip(src), lab::CLIENT_MAC, 0);
    }
    for i in 0..500u32 {
        let src = IpAddr::from([198, 18, 0, 10 + (i % 200) as u8]);
        let syn = seg(
            (lab::CLIENT_MAC, lab::LB0_MAC),
            src,
            1024 + i as u16,
            l.vip(),
            80,
            i,
            1000,
            F {
                syn: true,
                ..F::default()
            },
            &[],
            b"",
        );
        let [c, s] = l.send(0, &syn);
        assert_eq!(c.len(), 1);
        assert!(s.is_empty());
    }
    assert_eq!(l.shared.conns.len(), 0);
    assert_eq!(l.shared.counters[0].synproxy_cookies_sent.get(), 500);
}

#[test]
fn the_first_early_segment_is_held_the_next_dropped_and_counted() {
    for method in [Method::Nat, Method::FullNat] {
        let mut l = Lab::new(method, false);
        let o = open(&mut l);
        let early = |l: &Lab, seq: u32, body: &[u8]| {
            client_frame(
                l,
                seq,
                F {
                    ack: Some(o.cookie.wrapping_add(1)),
                    psh: true,
                    ..F::default()
                },
                &[Opt::Noop, Opt::Noop, Opt::Timestamp(113, o.our_ts)],
                body,
            )
        };
        let [c, s] = l.send(0, &early(&l, CISN + 1, b"GET / HTTP/1.1\r\n"));
        assert!(c.is_empty() && s.is_empty(), "held, not forwarded yet");
        assert_eq!(l.drops(DropReason::SynProxyNotReady), 0);
        // One per connection: the next one is left to the client's retransmission.
        let [c, s] = l.send(0, &early(&l, CISN + 17, b"\r\n"));
        assert!(c.is_empty() && s.is_empty());
        assert_eq!(l.drops(DropReason::SynProxyNotReady), 1);
        // The server answers: its ACK, then the held segment, translated.
        let [c, s] = l.send(1, &server_synack(&l, &o, Some(7)));
        assert!(c.is_empty());
        assert_eq!(s.len(), 2, "the ACK and the held segment");
        let ack = read(&s[0]);
        assert!(ack.ack_flag && ack.payload.is_empty());
        let data = read(&s[1]);
        assert_eq!(data.payload, b"GET / HTTP/1.1\r\n");
        assert_eq!((data.seq, data.ack), (CISN + 1, SISN + 1));
        assert_eq!(data.ts, Some((113, 9000)));
        assert_eq!(data.dst, Some(l.real1()));
        assert_eq!(l.shared.counters[0].synproxy_held.get(), 1);
        // The dropped one's retransmission now passes.
        let s = only(&l.send(0, &early(&l, CISN + 17, b"\r\n"))[1]);
        assert_eq!(s.payload, b"\r\n");
    }
}

/// The client's bare ACK was lost: its first data segment returns the cookie. It opens
/// the connection and is held until the server answers.
#[test]
fn data_returning_the_cookie_opens_and_is_held() {
    let mut l = Lab::new(Method::Nat, false);
    let syn = client_frame(
        &l,
        CISN,
        F {
            syn: true,
            ..F::default()
        },
        &CLIENT_SYN_OPTS,
        b"",
    );
    let sa = only(&l.send(0, &syn)[0]);
    let (our_ts, _) = sa.ts.unwrap();
    let data = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(sa.seq.wrapping_add(1)),
            psh: true,
            ..F::default()
        },
        &[Opt::Noop, Opt::Noop, Opt::Timestamp(112, our_ts)],
        b"GET /",
    );
    let [c, s] = l.send(0, &data);
    assert!(c.is_empty());
    let syn = only(&s);
    assert!(syn.syn && syn.payload.is_empty());
    let o = Opened {
        cookie: sa.seq,
        our_ts,
        sport_seen: syn.sport,
    };
    let [_, s] = l.send(1, &server_synack(&l, &o, Some(7)));
    assert_eq!(s.len(), 2, "the ACK, then the held data");
    let d = read(&s[1]);
    assert_eq!(d.payload, b"GET /");
    assert_eq!((d.seq, d.ack), (CISN + 1, SISN + 1));
    assert_eq!(l.drops(DropReason::SynProxyNotReady), 0);
}

#[test]
fn a_held_segment_of_a_failed_connection_is_dropped_and_counted() {
    let mut l = Lab::new(Method::Nat, false);
    let o = open(&mut l);
    let early = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(o.cookie.wrapping_add(1)),
            ..F::default()
        },
        &[],
        b"x",
    );
    l.send(0, &early);
    for secs in [1, 2, 4] {
        l.advance(secs);
        l.idle();
    }
    assert_eq!(l.shared.counters[0].synproxy_failures.get(), 1);
    assert_eq!(l.drops(DropReason::SynProxyNotReady), 1, "the held segment");
    assert_eq!(l.shared.counters[0].synproxy_held.get(), 0);
}

#[test]
fn the_server_syn_is_retransmitted_then_the_client_reset() {
    let mut l = Lab::new(Method::Nat, false);
    let o = open(&mut l);
    let mut retransmitted = 0;
    for secs in [1, 2] {
        l.advance(secs);
        let [c, s] = l.idle();
        assert!(c.is_empty());
        let syn = only(&s);
        assert!(syn.syn && syn.seq == CISN);
        retransmitted += 1;
    }
    assert_eq!(
        l.shared.counters[0].synproxy_syn_retransmits.get(),
        retransmitted
    );
    l.advance(4);
    let [c, s] = l.idle();
    assert!(s.is_empty());
    let rst = only(&c);
    assert!(rst.rst);
    assert_eq!((rst.src, rst.dst), (Some(l.vip()), Some(l.client())));
    assert_eq!((rst.seq, rst.ack), (o.cookie.wrapping_add(1), CISN + 1));
    assert_eq!(l.shared.counters[0].synproxy_failures.get(), 1);
    assert_eq!(l.shared.conns.len(), 0);
}

/// Real server `n`'s RST to the SYN it got (its answer to a SYN: ACK of the client's ISN).
fn refusal(l: &Lab, n: u8, o: &Opened) -> Vec<u8> {
    let f = F {
        ack: Some(CISN + 1),
        rst: true,
        ..F::default()
    };
    server_frame_of(l, n, o, 0, f, &[], b"")
}

/// The SYN of a connection that real server `n` refused, as it went to real server `to`:
/// the same SYN (the client's ISN and options), to `to`'s address and MAC; the client
/// hears nothing.
fn redispatched(l: &Lab, out: [Vec<Vec<u8>>; 2], to: u8) -> T {
    let [c, s] = out;
    assert!(c.is_empty(), "the client sees nothing of the refusal");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0][..6], lab::real_mac(to), "to server {to}'s MAC");
    let syn = only(&s);
    assert_eq!(syn.dst, Some(lab::real(to, l.v6).to_ip()));
    assert_eq!(syn.src, Some(l.seen_client()));
    assert_eq!(syn.dport, 80);
    assert!(syn.syn && !syn.ack_flag && !syn.rst);
    assert_eq!(syn.seq, CISN, "the client's ISN");
    assert_eq!(syn.mss, Some(if l.v6 { 1440 } else { 1460 }));
    assert!(syn.sack_perm);
    assert_eq!((syn.ws, syn.ts), (Some(7), Some((112, 0))));
    syn
}

/// A server that refuses the connection (RST to uvs's SYN) does not reach the client: the
/// SYN goes to the next server (round robin: 2), whose handshake splices the connection
/// as the first server's would have; the old entry is gone, the new one names server 2.
#[test]
fn a_refused_connection_goes_to_another_server() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let mut l = Lab::new(method, v6);
            let mut o = open(&mut l);
            let out = l.send(1, &refusal(&l, 1, &o));
            let syn = redispatched(&l, out, 2);
            o.sport_seen = syn.sport;
            assert_eq!(l.shared.conns.len(), 1);
            let c = &l.shared.counters[0];
            assert_eq!(c.synproxy_redispatched.get(), 1);
            assert_eq!(c.synproxy_failures.get(), 0);
            let t = l.shared.tables.load();
            let svc = t
                .services
                .iter()
                .flatten()
                .find(|s| s.key.proto == 6 && s.key.vip.v6 == v6)
                .unwrap();
            let conns = |i: usize| {
                let live = &svc.live[i];
                live.active.load(Relaxed) + live.inactive.load(Relaxed)
            };
            assert_eq!((conns(0), conns(1)), (0, 1), "unbound from 1, bound to 2");

            // Server 2's SYN-ACK: the ACK completing its handshake, then data both ways
            // translated with its ISN.
            let [to_client, to_server] = l.send(1, &server_synack_of(&l, 2, &o, Some(5)));
            assert!(to_client.is_empty());
            let ack = only(&to_server);
            assert_eq!(ack.dst, Some(lab::real(2, v6).to_ip()));
            assert_eq!((ack.seq, ack.ack), (CISN + 1, SISN + 1));
            let c1 = o.cookie.wrapping_add(1);
            let data = client_frame(
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
            let s = only(&l.send(0, &data)[1]);
            assert_eq!(s.dst, Some(lab::real(2, v6).to_ip()));
            assert_eq!((s.seq, s.ack), (CISN + 1, SISN + 1));
            let reply = server_frame_of(
                &l,
                2,
                &o,
                SISN + 1,
                F {
                    ack: Some(CISN + 19),
                    psh: true,
                    ..F::default()
                },
                &[Opt::Noop, Opt::Noop, Opt::Timestamp(9005, 113)],
                b"HTTP/1.1 200 OK\r\n\r\n",
            );
            let c = only(&l.send(1, &reply)[0]);
            assert_eq!((c.src, c.dst), (Some(l.vip()), Some(l.client())));
            assert_eq!((c.seq, c.ack), (c1, CISN + 19));
            assert_eq!(c.payload, b"HTTP/1.1 200 OK\r\n\r\n");
            assert_eq!(l.shared.counters[0].synproxy_spliced.get(), 1);
        }
    }
}

/// With persistence, the client's template follows its connection to the server that took
/// it, so that its next connections go there rather than to the refusing server.
#[test]
fn a_persistence_template_follows_the_refused_connection() {
    for v6 in [false, true] {
        let mut l = Lab::persistent(Method::Nat, v6);
        let o = open(&mut l);
        let templates = |l: &Lab| {
            let mut reals = Vec::new();
            l.shared.conns.for_each(|_, c, _| {
                if c.flags & uvs_dataplane::pipeline::conn_flags::TEMPLATE != 0 {
                    reals.push(c.real);
                }
            });
            reals
        };
        assert_eq!(templates(&l), [0], "the client's template names server 1");
        let out = l.send(1, &refusal(&l, 1, &o));
        redispatched(&l, out, 2);
        assert_eq!(templates(&l), [1], "now server 2");
        assert_eq!(l.shared.conns.len(), 2, "the template and the connection");
    }
}

/// Every server refusing in turn: after the third (`retransmit::TRIES`) the client is
/// reset, as a single refusal reset it before redispatching.
#[test]
fn a_connection_every_server_refuses_resets_the_client() {
    for method in [Method::Nat, Method::FullNat] {
        let mut l = Lab::new(method, true);
        let mut o = open(&mut l);
        for (from, to) in [(1, 2), (2, 3)] {
            let out = l.send(1, &refusal(&l, from, &o));
            let syn = redispatched(&l, out, to);
            o.sport_seen = syn.sport;
        }
        let [c, s] = l.send(1, &refusal(&l, 3, &o));
        assert!(s.is_empty());
        let rst = only(&c);
        assert!(rst.rst);
        assert_eq!((rst.src, rst.dst), (Some(l.vip()), Some(l.client())));
        assert_eq!(rst.seq, o.cookie.wrapping_add(1));
        assert_eq!(l.shared.conns.len(), 0);
        let c = &l.shared.counters[0];
        assert_eq!(c.synproxy_redispatched.get(), 2);
        assert_eq!(c.synproxy_failures.get(), 1);
    }
}

/// The client's request, held while the first server was asked, goes to the server that
/// answers; the SYN's retransmissions start over for it.
#[test]
fn a_held_request_follows_its_connection_to_another_server() {
    let mut l = Lab::new(Method::Nat, false);
    let o = open(&mut l);
    let early = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(o.cookie.wrapping_add(1)),
            psh: true,
            ..F::default()
        },
        &[],
        b"GET /",
    );
    assert!(l.send(0, &early)[1].is_empty(), "held");
    l.advance(1);
    let [_, s] = l.idle();
    assert_eq!(only(&s).dst, Some(l.real1()), "the first SYN retransmitted");
    let out = l.send(1, &refusal(&l, 1, &o));
    redispatched(&l, out, 2);
    l.advance(1);
    let [_, s] = l.idle();
    assert_eq!(
        only(&s).dst,
        Some(lab::real(2, false).to_ip()),
        "a second later: the new SYN's first retransmission"
    );
    let [_, s] = l.send(1, &server_synack_of(&l, 2, &o, Some(7)));
    assert_eq!(s.len(), 2, "the ACK, then the held data");
    let d = read(&s[1]);
    assert_eq!(d.dst, Some(lab::real(2, false).to_ip()));
    assert_eq!(d.payload, b"GET /");
    assert_eq!((d.seq, d.ack), (CISN + 1, SISN + 1));
    assert_eq!(l.drops(DropReason::SynProxyNotReady), 0);
}

/// A NAT lab whose tables and connections two workers share: the lab's own (0) and
/// another (1), as RSS would spread a connection's segments.
fn two_workers() -> (Lab, Worker<MemPort>) {
    let mut spec = lab::spec(Method::Nat, SchedulerKind::Rr, 2);
    for s in &mut spec.services {
        s.syn_proxy = s.key.proto == 6;
    }
    let tables = TablesBuilder::build(&spec, None).unwrap();
    let shared = Arc::new(Shared::new(tables, 4096, 2));
    lab::learn_neighbours(&shared.neigh, 0);
    let ports = || vec![MemPort::new("client", 256), MemPort::new("server", 256)];
    let l = Lab {
        shared: shared.clone(),
        w: Worker::new(0, ports(), shared.clone()),
        v6: false,
        method: Method::Nat,
        persistent: false,
    };
    (l, Worker::new(1, ports(), shared))
}

/// RSS may give the server's SYN-ACK to another worker than the one that sent the SYN:
/// that one splices the connection, and the first worker then sends the segment it held
/// and stops retransmitting.
#[test]
fn the_server_may_answer_on_another_worker() {
    let (mut l, mut other) = two_workers();
    let shared = l.shared.clone();
    let o = open(&mut l);
    let early = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(o.cookie.wrapping_add(1)),
            psh: true,
            ..F::default()
        },
        &[Opt::Noop, Opt::Noop, Opt::Timestamp(113, o.our_ts)],
        b"GET /",
    );
    let [c, s] = l.send(0, &early);
    assert!(c.is_empty() && s.is_empty(), "held by worker 0");

    // Worker 1 gets the server's SYN-ACK: it ACKs the server.
    assert!(other.ports[1].push_rx(&server_synack(&l, &o, Some(7))));
    other.poll();
    let ack = only(&other.ports[1].take_tx());
    assert!(ack.ack_flag && ack.payload.is_empty());
    assert_eq!(shared.counters[1].synproxy_spliced.get(), 1);

    // Worker 0's next poll sends what it held, translated.
    let [c, s] = l.idle();
    assert!(c.is_empty());
    let d = only(&s);
    assert_eq!(d.payload, b"GET /");
    assert_eq!((d.seq, d.ack), (CISN + 1, SISN + 1));
    assert_eq!(shared.counters[0].synproxy_held.get(), 1);

    // And it retransmits nothing once its SYN is due.
    l.advance(1);
    let [c, s] = l.idle();
    assert!(c.is_empty() && s.is_empty());
    assert_eq!(shared.counters[0].synproxy_syn_retransmits.get(), 0);
}

/// A refusal that RSS gives to a worker other than the one that sent the SYN: that worker
/// has no copy of the SYN, so it hands the RST to the one that does (and sends nothing);
/// that one, at its next poll, sends the SYN to another server as if it had received the
/// refusal, and the held request follows once that server answers.
#[test]
fn a_refusal_on_another_worker_is_handed_to_the_one_that_sent_the_syn() {
    let (mut l, mut other) = two_workers();
    let shared = l.shared.clone();
    let o = open(&mut l);
    let early = client_frame(
        &l,
        CISN + 1,
        F {
            ack: Some(o.cookie.wrapping_add(1)),
            psh: true,
            ..F::default()
        },
        &[],
        b"GET /",
    );
    assert!(l.send(0, &early)[1].is_empty(), "held by worker 0");
    assert!(other.ports[1].push_rx(&refusal(&l, 1, &o)));
    other.poll();
    assert!(other.ports[0].take_tx().is_empty(), "nothing to the client");
    assert!(other.ports[1].take_tx().is_empty(), "no SYN from worker 1");
    assert_eq!(shared.counters[1].synproxy_handed_over.get(), 1);
    let out = l.idle();
    let syn = redispatched(&l, out, 2);
    assert_eq!(shared.counters[0].synproxy_redispatched.get(), 1);
    assert_eq!(shared.counters[1].synproxy_failures.get(), 0);
    let o = Opened {
        sport_seen: syn.sport,
        ..o
    };
    let [_, s] = l.send(1, &server_synack_of(&l, 2, &o, Some(7)));
    assert_eq!(s.len(), 2, "the ACK, then the held request");
    assert_eq!(read(&s[1]).payload, b"GET /");
    assert_eq!(l.drops(DropReason::SynProxyNotReady), 0);
}

/// When the worker that sent the SYN has no other server to offer (every one refused in
/// turn), the refusal handed to it still reaches the client, from that worker.
#[test]
fn a_last_refusal_handed_over_resets_the_client() {
    let (mut l, mut other) = two_workers();
    let shared = l.shared.clone();
    let mut o = open(&mut l);
    for (from, to) in [(1, 2), (2, 3)] {
        let out = l.send(1, &refusal(&l, from, &o));
        o.sport_seen = redispatched(&l, out, to).sport;
    }
    assert!(other.ports[1].push_rx(&refusal(&l, 3, &o)));
    other.poll();
    assert!(other.ports[0].take_tx().is_empty() && other.ports[1].take_tx().is_empty());
    let [c, s] = l.idle();
    assert!(s.is_empty());
    let rst = only(&c);
    assert!(rst.rst);
    assert_eq!((rst.src, rst.dst), (Some(l.vip()), Some(l.client())));
    assert_eq!(shared.conns.len(), 0);
    assert_eq!(shared.counters[0].synproxy_failures.get(), 1);
}

/// The client's ACK and its request arrive in one burst (wrk and curl send them back to
/// back): with a large table the worker looks the whole burst up before handling any
/// frame, so the request finds no entry and returns the cookie again after the ACK opened
/// the connection. It must join that connection (held until the server answers), not be
/// dropped for the client to retransmit after its RTO (200 ms on Linux, on nearly every
/// connection-per-request connection).
#[test]
fn an_ack_and_its_request_in_one_burst_open_one_connection_and_hold_the_request() {
    for (method, v6) in [
        (Method::Nat, false),
        (Method::Nat, true),
        (Method::FullNat, false),
    ] {
        let mut l = Lab::batched(method, v6);
        let syn = client_frame(
            &l,
            CISN,
            F {
                syn: true,
                ..F::default()
            },
            &CLIENT_SYN_OPTS,
            b"",
        );
        let sa = only(&l.send(0, &syn)[0]);
        let (our_ts, _) = sa.ts.unwrap();
        let ack = client_frame(
            &l,
            CISN + 1,
            F {
                ack: Some(sa.seq.wrapping_add(1)),
                ..F::default()
            },
            &[Opt::Noop, Opt::Noop, Opt::Timestamp(112, our_ts)],
            b"",
        );
        let request = client_frame(
            &l,
            CISN + 1,
            F {
                ack: Some(sa.seq.wrapping_add(1)),
                psh: true,
                ..F::default()
            },
            &[Opt::Noop, Opt::Noop, Opt::Timestamp(112, our_ts)],
            b"GET / HTTP/1.1\r\n\r\n",
        );
        assert!(l.w.ports[0].push_rx(&ack));
        assert!(l.w.ports[0].push_rx(&request));
        let [c, s] = l.idle();
        assert!(c.is_empty(), "{method:?} v6={v6}");
        let syn = only(&s);
        assert!(syn.syn && syn.payload.is_empty(), "one SYN to the server");
        assert_eq!(l.shared.conns.len(), 1);
        assert_eq!(
            l.drops(DropReason::SynProxyNotReady),
            0,
            "{method:?} v6={v6}: the request was dropped"
        );
        assert_eq!(l.shared.counters[0].synproxy_cookies_valid.get(), 1);
        let o = Opened {
            cookie: sa.seq,
            our_ts,
            sport_seen: syn.sport,
        };
        let [_, s] = l.send(1, &server_synack(&l, &o, Some(7)));
        assert_eq!(s.len(), 2, "the ACK, then the held request");
        let d = read(&s[1]);
        assert_eq!(d.payload, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!((d.seq, d.ack), (CISN + 1, SISN + 1));
    }
}

/// The real server still holds the tuple in TIME_WAIT from an earlier connection and its
/// PAWS check refuses our SYN: it answers with an ACK of the old connection. A client's
/// TCP in SYN-SENT answers such an ACK with a RST at its acknowledgement number (RFC 9293
/// §3.10.7.3), which ends the TIME_WAIT, and its next SYN gets through; uvs must do the
/// same, or every retransmitted SYN meets the same TIME_WAIT and the client is reset.
#[test]
fn a_server_in_time_wait_gets_a_reset_and_the_retransmitted_syn_connects() {
    for (method, v6) in [
        (Method::Nat, false),
        (Method::Nat, true),
        (Method::FullNat, false),
    ] {
        let mut l = Lab::new(method, v6);
        let o = open(&mut l);
        let old_ack = 77_000_000u32;
        let tw_ack = server_frame(
            &l,
            &o,
            123_456,
            F {
                ack: Some(old_ack),
                ..F::default()
            },
            &[Opt::Noop, Opt::Noop, Opt::Timestamp(9000, 50)],
            b"",
        );
        let [c, s] = l.send(1, &tw_ack);
        assert!(c.is_empty(), "{method:?} v6={v6}: nothing to the client");
        let rst = only(&s);
        assert!(
            rst.rst && !rst.syn,
            "{method:?} v6={v6}: a RST to the server"
        );
        assert_eq!(rst.seq, old_ack, "at the ACK's acknowledgement number");
        assert_eq!((rst.src, rst.dst), (Some(l.seen_client()), Some(l.real1())));
        assert_eq!((rst.sport, rst.dport), (o.sport_seen, 80));
        assert_eq!(
            l.shared.conns.len(),
            1,
            "the connection waits for its server"
        );
        // The SYN goes out again at the next retransmission scan (every 10 ms), not after
        // its 1 s backoff, and the server, its TIME_WAIT gone, answers it.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let syn = only(&l.idle()[1]);
        assert!(syn.syn && syn.seq == CISN);
        let [c, s] = l.send(1, &server_synack(&l, &o, Some(7)));
        assert!(c.is_empty());
        let ack = only(&s);
        assert!(ack.ack_flag && !ack.syn && ack.ack == SISN + 1);
        assert_eq!(l.shared.counters[0].synproxy_spliced.get(), 1);
    }
}

/// One proxied connection from client port `port`, opened up to the SYN to its server
/// (which is not answered): uvs's cookie and TSval, and that SYN.
fn open_on(l: &mut Lab, port: u16) -> (u32, u32, T) {
    let (cookie, our_ts, ack) = cookie_ack_on(l, port);
    let s = only(&l.send(0, &ack)[1]);
    assert!(s.syn && s.dport == 80);
    (cookie, our_ts, s)
}

/// The client's SYN from `port`, answered with uvs's cookie: that cookie, uvs's TSval, and
/// the client's ACK returning it (not sent).
fn cookie_ack_on(l: &mut Lab, port: u16) -> (u32, u32, Vec<u8>) {
    let c = (lab::CLIENT_MAC, lab::LB0_MAC);
    let syn = F {
        syn: true,
        ..F::default()
    };
    let syn = seg(
        c,
        l.client(),
        port,
        l.vip(),
        80,
        CISN,
        1000,
        syn,
        &CLIENT_SYN_OPTS,
        b"",
    );
    let sa = only(&l.send(0, &syn)[0]);
    let (our_ts, _) = sa.ts.unwrap();
    let ack = F {
        ack: Some(sa.seq.wrapping_add(1)),
        ..F::default()
    };
    let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(112, our_ts)];
    let ack = seg(
        c,
        l.client(),
        port,
        l.vip(),
        80,
        CISN + 1,
        1000,
        ack,
        &ts,
        b"",
    );
    (sa.seq, our_ts, ack)
}

/// The client's request on the connection of `port`, before or after its server answered.
fn request_on(l: &Lab, port: u16, cookie: u32, our_ts: u32) -> Vec<u8> {
    let f = F {
        ack: Some(cookie.wrapping_add(1)),
        psh: true,
        ..F::default()
    };
    let ts = [Opt::Noop, Opt::Noop, Opt::Timestamp(113, our_ts)];
    let body = format!("GET /{port} HTTP/1.1\r\n\r\n");
    let (c, v) = (l.client(), l.vip());
    seg(
        (lab::CLIENT_MAC, lab::LB0_MAC),
        c,
        port,
        v,
        80,
        CISN + 1,
        1000,
        f,
        &ts,
        body.as_bytes(),
    )
}

/// The SYN-ACK of the server `syn` went to.
fn synack_to(syn: &T) -> Vec<u8> {
    let n = (1..=3)
        .find(|&n| Some(lab::real(n, false).to_ip()) == syn.dst)
        .expect("a real server");
    let f = F {
        syn: true,
        ack: Some(CISN + 1),
        ..F::default()
    };
    let opts = [Opt::MaximumSegmentSize(1400), Opt::Timestamp(9000, 112)];
    let (src, dst) = (syn.dst.unwrap(), syn.src.unwrap());
    seg(
        (lab::real_mac(n), lab::LB1_MAC),
        src,
        80,
        dst,
        syn.sport,
        SISN,
        100,
        f,
        &opts,
        b"",
    )
}

/// The port of the pending connection whose slot index (the worker's SYN table is indexed
/// by it) is `index`.
fn index_of(l: &Lab, port: u16) -> usize {
    let mut found = None;
    l.shared.conns.for_each(|id, c, _| {
        if c.orig.sport == port {
            found = Some(id.index());
        }
    });
    found.expect("the connection's entry")
}

/// Two connections waiting for their servers at once whose entries sit at slots the
/// worker's SYN table maps to the same place: the second must keep its SYN copy (and hold
/// its request) like the first. Sent without one, its request was dropped
/// (`synproxy_not_ready`) and the client waited out its retransmission timeout (200 ms on
/// Linux): the connection-per-request p99 of `uvs-bench http`.
#[test]
fn connections_whose_slots_collide_both_keep_their_syn_and_hold_their_request() {
    use uvs_dataplane::synproxy::retransmit::SLOTS;
    let mut l = Lab::new(Method::Nat, false);
    // Connections answered by their servers at once (they leave the table of SYNs but
    // keep their entries) until the next entry's slot is SLOTS further on.
    let mut answered = Vec::new();
    for port in 20000u16.. {
        if answered.len() == SLOTS {
            break;
        }
        let o = open_on(&mut l, port);
        let [_, s] = l.send(1, &synack_to(&o.2));
        assert!(only(&s).ack_flag);
        answered.push(port);
    }
    // The first waits; the entry of an answered connection whose slot meets its slot in
    // the SYN table goes (as if it expired), and the next connection takes that slot and
    // waits too: two pending SYNs whose slots meet, opened back to back (the retransmission
    // timers of the lab's real clock play no part).
    let first = (30000u16, open_on(&mut l, 30000));
    let home = index_of(&l, first.0) & (SLOTS - 1);
    let gone = *answered
        .iter()
        .find(|&&p| index_of(&l, p) & (SLOTS - 1) == home)
        .expect("an answered connection at the first's place");
    let mut id = None;
    l.shared.conns.for_each(|i, c, _| {
        if c.orig.sport == gone {
            id = Some(i);
        }
    });
    assert!(l.shared.conns.remove(id.unwrap()));
    let second = (30001u16, open_on(&mut l, 30001));
    assert_eq!(
        index_of(&l, second.0) & (SLOTS - 1),
        home,
        "the freed slot is taken next"
    );
    assert_eq!(l.shared.counters[0].synproxy_untracked_syns.get(), 0);
    // Both requests are held until their servers answer.
    for (port, (cookie, our_ts, _)) in [&first, &second] {
        let [c, s] = l.send(0, &request_on(&l, *port, *cookie, *our_ts));
        assert!(c.is_empty() && s.is_empty(), "port {port}: held");
    }
    assert_eq!(l.drops(DropReason::SynProxyNotReady), 0);
    // Both SYNs are covered: both go out again after 1 s.
    l.advance(1);
    let [_, s] = l.idle();
    assert_eq!(s.len(), 2, "both pending SYNs retransmitted");
    assert_eq!(l.shared.counters[0].synproxy_syn_retransmits.get(), 2);
    // The servers answer: each gets its ACK, then its client's request.
    for (port, (_, _, syn)) in [&first, &second] {
        let [_, s] = l.send(1, &synack_to(syn));
        assert_eq!(s.len(), 2, "port {port}: the ACK, then the held request");
        let d = read(&s[1]);
        assert_eq!(
            d.payload,
            format!("GET /{port} HTTP/1.1\r\n\r\n").as_bytes()
        );
        assert_eq!(d.dst, syn.dst);
    }
    assert_eq!(l.shared.counters[0].synproxy_held.get(), 2);
}

/// Early requests of many connections waiting at once (a burst of new clients, or a
/// server a few milliseconds away) are all held, not only a few dozen.
#[test]
fn many_early_requests_at_once_are_all_held() {
    let mut l = Lab::new(Method::Nat, false);
    let n = 300u16;
    let mut pending = Vec::new();
    for port in 30000..30000 + n {
        let (cookie, our_ts, syn) = open_on(&mut l, port);
        let [c, s] = l.send(0, &request_on(&l, port, cookie, our_ts));
        assert!(c.is_empty() && s.is_empty(), "port {port}: held");
        pending.push((port, syn));
    }
    assert_eq!(l.drops(DropReason::SynProxyNotReady), 0);
    assert_eq!(l.shared.counters[0].synproxy_untracked_syns.get(), 0);
    for (port, syn) in &pending {
        let [_, s] = l.send(1, &synack_to(syn));
        assert_eq!(s.len(), 2, "port {port}: the ACK, then the held request");
        assert_eq!(
            read(&s[1]).payload,
            format!("GET /{port} HTTP/1.1\r\n\r\n").as_bytes()
        );
    }
    assert_eq!(l.shared.counters[0].synproxy_held.get(), u64::from(n));
}

/// A client that closes before its server answered (its FIN right behind the handshake,
/// as wrk's connections do when it stops): the FIN is held like an early request and
/// follows the server's handshake, instead of being dropped for the client to retransmit.
#[test]
fn a_fin_before_the_server_answered_is_held_and_follows_the_handshake() {
    for method in [Method::Nat, Method::FullNat] {
        let mut l = Lab::new(method, false);
        let o = open(&mut l);
        let fin = client_frame(
            &l,
            CISN + 1,
            F {
                ack: Some(o.cookie.wrapping_add(1)),
                fin: true,
                ..F::default()
            },
            &[Opt::Noop, Opt::Noop, Opt::Timestamp(113, o.our_ts)],
            b"",
        );
        let [c, s] = l.send(0, &fin);
        assert!(c.is_empty() && s.is_empty(), "held");
        assert_eq!(l.drops(DropReason::SynProxyNotReady), 0);
        let [c, s] = l.send(1, &server_synack(&l, &o, Some(7)));
        assert!(c.is_empty());
        assert_eq!(s.len(), 2, "the ACK, then the held FIN");
        let f = read(&s[1]);
        assert!(f.fin && f.payload.is_empty());
        assert_eq!((f.seq, f.ack), (CISN + 1, SISN + 1));
    }
}

/// The SYN proxy's connection to the real server follows the NAT rule for a reused client
/// port: an entry of another connection that holds its reply tuple (real server ↔ client
/// address and port, e.g. the client's earlier connection through another VIP) is retired
/// when it is closing, and refuses the new connection (`conn_tuple_clash`) while it lives.
#[test]
fn a_closing_holder_of_the_reply_tuple_is_retired_for_the_proxied_connection() {
    use uvs_conntrack::{tcp::TcpState, Conn, FlowKey};
    for v6 in [false, true] {
        for (state, retired) in [(TcpState::TimeWait, true), (TcpState::Established, false)] {
            let case = format!("v6={v6} holder {state:?}");
            let mut l = Lab::new(Method::Nat, v6);
            let key = |ip: IpAddr| uvs_dataplane::lab::ipk(&ip.to_string()).addr;
            let port = 42424;
            // The holder: the same client port through a VIP of no service here, to the
            // real server this one's rr picks first.
            let other_vip = a(if v6 {
                "2001:2:0:100::9"
            } else {
                "198.18.100.9"
            });
            let holder = Conn {
                orig: FlowKey {
                    proto: 6,
                    v6,
                    src: key(l.client()),
                    dst: key(other_vip),
                    sport: port,
                    dport: 80,
                },
                reply: FlowKey {
                    proto: 6,
                    v6,
                    src: key(l.real1()),
                    dst: key(l.client()),
                    sport: 80,
                    dport: port,
                },
                service: 999,
                real: 0,
                method: Method::Nat as u8,
                state: state as u8,
                flags: 0,
            };
            let now = l.shared.clock.now().1;
            l.shared.conns.insert(&holder, now, now + 60_000).unwrap();
            if retired {
                let (_, _, syn) = open_on(&mut l, port);
                assert_eq!((syn.dst, syn.dport), (Some(l.real1()), 80), "{case}");
                assert_eq!(l.shared.counters[0].reused_conns.get(), 1, "{case}");
                assert_eq!(l.shared.conns.len(), 1, "{case}: the holder is gone");
            } else {
                let (_, _, ack) = cookie_ack_on(&mut l, port);
                let [_, s] = l.send(0, &ack);
                assert!(s.is_empty(), "{case}: no SYN to the server");
                assert_eq!(l.drops(DropReason::TupleClash), 1, "{case}");
                assert_eq!(l.drops(DropReason::TableFull), 0, "{case}");
            }
        }
    }
}
