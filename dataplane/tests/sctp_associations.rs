//! SCTP associations through a real `Worker` over in-memory ports: IPVS's state sequence,
//! rewrites for NAT and FullNAT on both families (CRC32c checked independently on every
//! emitted frame), port changes, shutdown, ABORT mid-association, DR and TUN.

mod sctp_support;

use sctp_support::*;
use uvs_dataplane::lab;
use uvs_dataplane::sctp::SctpState;
use uvs_dataplane::{DropReason, Method};

/// Client-initiated association, every step's state as IPVS names it, data both ways,
/// graceful shutdown — NAT and FullNAT, IPv4 and IPv6, with and without a port change.
#[test]
fn handshake_data_shutdown_states() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            for vport in [PORT, PORT_CHANGE] {
                let case = format!("{method:?} v6={v6} vport={vport}");
                let mut lab = Lab::new(method);
                let cport = 40000;
                let client_tag = 0xc1c1_c1c1;
                let server_tag = 0x5e5e_5e5e;
                let init = frame(
                    lab::CLIENT_MAC,
                    lab::LB0_MAC,
                    client(v6),
                    cport,
                    vip(v6),
                    vport,
                    0,
                    &[init_chunk(INIT, client_tag, &[])],
                );
                let [_, fwd] = lab.send(0, &init);
                let o = only(&fwd);
                assert_eq!(o.dst, real(1, v6), "{case}");
                let want_port = if vport == PORT {
                    PORT
                } else {
                    REAL_PORT_CHANGED
                };
                assert_eq!(o.dport, want_port, "{case}");
                assert_eq!(o.ttl, 63, "{case}");
                if method == Method::FullNat {
                    assert_eq!(o.src, pool(v6), "{case}");
                    assert_ne!(o.sport, cport, "{case}");
                } else {
                    assert_eq!((o.src, o.sport), (client(v6), cport), "{case}");
                }
                assert_eq!(lab.state(cport), SctpState::Init1, "{case}");
                let a = Assoc {
                    v6,
                    cport,
                    vport,
                    client_tag,
                    server_tag,
                    real: 1,
                    real_port: o.dport,
                    seen_src: o.src,
                    seen_sport: o.sport,
                };
                let steps: [(usize, u32, Vec<u8>, SctpState); 9] = [
                    (
                        1,
                        client_tag,
                        init_chunk(INIT_ACK, server_tag, &[param(7, b"c00k1e")]),
                        SctpState::CookieSent,
                    ),
                    (
                        0,
                        server_tag,
                        chunk(COOKIE_ECHO, 0, b"c00k1e"),
                        SctpState::CookieReplied,
                    ),
                    (
                        1,
                        client_tag,
                        chunk(COOKIE_ACK, 0, &[]),
                        SctpState::Established,
                    ),
                    (0, server_tag, data_chunk(b"hello"), SctpState::Established),
                    (1, client_tag, data_chunk(b"hello"), SctpState::Established),
                    (
                        1,
                        client_tag,
                        chunk(HEARTBEAT, 0, &[0, 1, 0, 8, 1, 2, 3, 4]),
                        SctpState::Established,
                    ),
                    (
                        0,
                        server_tag,
                        chunk(SHUTDOWN, 0, &[0, 0, 0, 1]),
                        SctpState::ShutdownReceived,
                    ),
                    (
                        1,
                        client_tag,
                        chunk(SHUTDOWN_ACK, 0, &[]),
                        SctpState::ShutdownAckSent,
                    ),
                    (
                        0,
                        server_tag,
                        chunk(SHUTDOWN_COMPLETE, 0, &[]),
                        SctpState::Closed,
                    ),
                ];
                for (i, (port, vtag, c, want)) in steps.into_iter().enumerate() {
                    let f = if port == 0 {
                        a.client_frame(vtag, std::slice::from_ref(&c))
                    } else {
                        a.server_frame(vtag, std::slice::from_ref(&c))
                    };
                    let [back, fwd] = lab.send(port, &f);
                    let o = if port == 0 {
                        assert!(back.is_empty(), "{case} step {i}");
                        only(&fwd)
                    } else {
                        assert!(fwd.is_empty(), "{case} step {i}");
                        only(&back)
                    };
                    if port == 0 {
                        assert_eq!((o.dst, o.dport), (real(1, v6), a.real_port), "{case} {i}");
                        assert_eq!((o.src, o.sport), (a.seen_src, a.seen_sport), "{case} {i}");
                    } else {
                        assert_eq!((o.src, o.sport), (vip(v6), vport), "{case} {i}");
                        assert_eq!((o.dst, o.dport), (client(v6), cport), "{case} {i}");
                        assert_eq!(o.dst_mac, lab::CLIENT_MAC, "{case} {i}");
                    }
                    assert_eq!(o.vtag, vtag, "{case} {i}: tags pass unchanged");
                    assert_eq!(
                        o.chunks()[0].1,
                        c[4..4 + o.chunks()[0].1.len()],
                        "{case} {i}"
                    );
                    assert_eq!(lab.state(cport), want, "{case} step {i}");
                }
                assert_eq!(lab.total_drops(), 0, "{case}");
                assert_eq!(
                    lab.tag_records(),
                    2,
                    "{case}: one record per direction's tag"
                );
            }
        }
    }
}

/// ABORT in the middle of an association: with the receiver's tag (T bit clear) or the
/// sender's own tag (T bit set, RFC 9260 §8.5.1 B) it passes and closes the entry; with
/// the wrong tag for its T bit it is dropped and the association stays up.
#[test]
fn abort_mid_association() {
    for v6 in [false, true] {
        for (from_client, t_bit) in [(true, false), (true, true), (false, false), (false, true)] {
            let case = format!("v6={v6} from_client={from_client} t={t_bit}");
            let mut lab = Lab::new(Method::Nat);
            let a = handshake(&mut lab, v6, 41000, PORT);
            assert_eq!(lab.state(41000), SctpState::Established, "{case}");
            let (good, bad) = match (from_client, t_bit) {
                (true, false) => (a.server_tag, a.client_tag),
                (true, true) => (a.client_tag, a.server_tag),
                (false, false) => (a.client_tag, a.server_tag),
                (false, true) => (a.server_tag, a.client_tag),
            };
            let abort = |tag| {
                let c = [chunk(ABORT, u8::from(t_bit), &[])];
                if from_client {
                    a.client_frame(tag, &c)
                } else {
                    a.server_frame(tag, &c)
                }
            };
            let port = if from_client { 0 } else { 1 };
            let [back, fwd] = lab.send(port, &abort(bad));
            assert!(back.is_empty() && fwd.is_empty(), "{case}");
            assert_eq!(lab.drops(DropReason::SctpBadVtag), 1, "{case}");
            assert_eq!(lab.state(41000), SctpState::Established, "{case}");
            let [back, fwd] = lab.send(port, &abort(good));
            let o = if from_client { only(&fwd) } else { only(&back) };
            assert_eq!(o.vtag, good, "{case}");
            assert_eq!(lab.state(41000), SctpState::Closed, "{case}");
        }
    }
}

/// A client that reuses the port of an association that has just closed (its entry still
/// CLOSED) starts a new one: the INIT is scheduled afresh (IPVS: conn_reuse_mode), to the
/// next real server, and its handshake goes through. The INIT's tag used to be learnt for
/// the closed entry first, which left a record holding the new association's key: every
/// INIT of it was dropped as sctp_bad_vtag until that record expired.
#[test]
fn an_init_on_a_closed_associations_port_opens_a_new_one() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let case = format!("{method:?} v6={v6}");
            let mut lab = Lab::new(method);
            let cport = 42000;
            let old = handshake(&mut lab, v6, cport, PORT);
            let abort = old.client_frame(old.server_tag, &[chunk(ABORT, 0, &[])]);
            let [_, fwd] = lab.send(0, &abort);
            only(&fwd);
            assert_eq!(lab.state(cport), SctpState::Closed, "{case}");

            let (client_tag, server_tag) = (0x3000_0000, 0x4000_0000);
            let init = frame(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                cport,
                vip(v6),
                PORT,
                0,
                &[init_chunk(INIT, client_tag, &[])],
            );
            let [back, fwd] = lab.send(0, &init);
            assert!(back.is_empty(), "{case}");
            assert_eq!(fwd.len(), 1, "{case}: the INIT reaches a real server");
            let o = only(&fwd);
            assert_ne!(o.dst, real(old.real, v6), "{case}: scheduled afresh");
            let n = (1..=3).find(|n| o.dst == real(*n, v6)).unwrap();
            // Its retransmission follows it.
            let [_, fwd] = lab.send(0, &init);
            assert_eq!(fwd.len(), 1, "{case}: the retransmitted INIT goes through");
            assert_eq!(only(&fwd).dst, real(n, v6), "{case}");
            let a = Assoc {
                v6,
                cport,
                vport: PORT,
                client_tag,
                server_tag,
                real: n,
                real_port: o.dport,
                seen_src: o.src,
                seen_sport: o.sport,
            };
            let ack = a.server_frame(
                client_tag,
                &[init_chunk(INIT_ACK, server_tag, &[param(7, b"cookie")])],
            );
            let [back, _] = lab.send(1, &ack);
            let o = only(&back);
            assert_eq!((o.dst, o.dport), (client(v6), cport), "{case}");
            let echo = a.client_frame(server_tag, &[chunk(COOKIE_ECHO, 0, b"cookie")]);
            let [_, fwd] = lab.send(0, &echo);
            assert_eq!(only(&fwd).dst, real(n, v6), "{case}");
            assert_eq!(lab.drops(DropReason::SctpBadVtag), 0, "{case}");
        }
    }
}

/// A server that answers an INIT with ABORT rejects the association (IPVS REJECTED, 4 s).
#[test]
fn init_answered_by_abort_is_rejected() {
    let mut lab = Lab::new(Method::Nat);
    let init = frame(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client(false),
        42000,
        vip(false),
        PORT,
        0,
        &[init_chunk(INIT, 0xabcd, &[])],
    );
    let [_, fwd] = lab.send(0, &init);
    let o = only(&fwd);
    let abort = frame(
        lab::real_mac(1),
        lab::LB1_MAC,
        o.dst,
        o.dport,
        o.src,
        o.sport,
        0xabcd,
        &[chunk(ABORT, 0, &[])],
    );
    let [back, _] = lab.send(1, &abort);
    only(&back);
    assert_eq!(lab.state(42000), SctpState::Rejected);
    // Its entry expires after IPVS's 4 s.
    let deadline = {
        let mut d = 0;
        lab.shared.conns.for_each(|_, c, dl| {
            if c.orig.proto == 132 && c.flags == 0 {
                d = dl;
            }
        });
        d
    };
    let now = lab.shared.clock.now_ticks();
    assert!(deadline.wrapping_sub(now) <= 4_000, "REJECTED lives 4 s");
}

/// An INIT flood fills the table as a SYN flood does, and the `drop_entry` defence empties
/// it the same way: IPVS's `ip_vs_random_dropentry` drops SCTP associations in INIT1/INIT as
/// it drops TCP's SYN_RECV. The oldest go first, with their tag records, until a quarter of
/// the table is free; an established association stays, and a new client is served.
#[test]
fn drop_entry_makes_room_after_an_init_flood() {
    let mut lab = Lab::with_capacity(&spec(Method::Nat), 64);
    let a = handshake(&mut lab, false, 1000, PORT);
    let init = |cport: u16| {
        frame(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client(false),
            cport,
            vip(false),
            PORT,
            0,
            &[init_chunk(INIT, 0x5000_0000 | u32::from(cport), &[])],
        )
    };
    for cport in 2000..2100 {
        lab.send(0, &init(cport));
    }
    assert!(
        lab.shared.conns.len_of(false) >= 63,
        "the flood filled the table"
    );
    assert!(lab.drops(DropReason::TableFull) > 0);
    let [_, fwd] = lab.send(0, &init(3000));
    assert!(fwd.is_empty(), "the table is full");
    lab.shared.clock.advance(1);
    let t = lab.shared.tables.load();
    let dropped = uvs_dataplane::lifecycle::drop_half_open(
        &lab.shared.conns,
        &t,
        lab.shared.clock.now_ticks(),
    );
    assert!(dropped >= 16, "dropped {dropped}");
    assert!(
        lab.shared.conns.len_of(false) <= 48,
        "a quarter of the table is free: {} entries",
        lab.shared.conns.len_of(false)
    );
    // No tag record outlives its association.
    let live: Vec<_> = lab
        .associations()
        .iter()
        .map(|c| (c.orig.src, c.orig.sport))
        .collect();
    let mut records = 0;
    lab.shared.conns.for_each(|_, c, _| {
        if uvs_dataplane::sctp::is_tag_record(c) {
            records += 1;
            assert!(live.contains(&(c.reply.src, c.reply.sport)), "{c:?}");
        }
    });
    assert!(records >= 2, "the established association's");
    handshake(&mut lab, false, 3001, PORT);
    assert_eq!(lab.state(1000), SctpState::Established);
    let data = a.client_frame(a.server_tag, &[data_chunk(b"still here")]);
    let [_, fwd] = lab.send(0, &data);
    assert_eq!(fwd.len(), 1, "the established association goes on");
}

/// The association's entry (not its tag records) and its deadline in ms from now.
fn entry_deadline(lab: &Lab, cport: u16) -> u32 {
    let mut d = None;
    lab.shared.conns.for_each(|_, c, dl| {
        if c.orig.proto == 132 && c.flags == 0 && c.orig.sport == cport {
            d = Some(dl);
        }
    });
    let now = lab.shared.clock.now_ticks();
    d.expect("the association's entry").wrapping_sub(now)
}

/// Each state's timeout is the service's (`timeouts: { sctp_init1: …, sctp: …,
/// sctp_closed: … }` in the YAML): INIT1 after the INIT, ESTABLISHED after the handshake,
/// CLOSED after an ABORT — each entry's deadline is its state's timeout from now.
#[test]
fn per_state_timeouts_of_the_service_apply() {
    let mut spec = spec(Method::Nat);
    for s in &mut spec.services {
        s.timeouts.sctp[SctpState::Init1 as usize] = 7_000;
        s.timeouts.sctp[SctpState::Established as usize] = 33_000;
        s.timeouts.sctp[SctpState::Closed as usize] = 5_000;
    }
    let near = |got: u32, want: u32, what: &str| {
        assert!(
            got <= want && got + 1_000 >= want,
            "{what}: deadline {got} ms from now, want {want}"
        );
    };
    let mut lab = Lab::with_spec(&spec);
    let init = frame(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client(false),
        43000,
        vip(false),
        PORT,
        0,
        &[init_chunk(INIT, 0xabcd, &[])],
    );
    let [_, fwd] = lab.send(0, &init);
    only(&fwd);
    assert_eq!(lab.state(43000), SctpState::Init1);
    near(entry_deadline(&lab, 43000), 7_000, "INIT1");

    let mut lab = Lab::with_spec(&spec);
    let a = handshake(&mut lab, false, 43001, PORT);
    assert_eq!(lab.state(43001), SctpState::Established);
    near(entry_deadline(&lab, 43001), 33_000, "ESTABLISHED");
    let [_, fwd] = lab.send(0, &a.client_frame(a.server_tag, &[chunk(ABORT, 0, &[])]));
    only(&fwd);
    assert_eq!(lab.state(43001), SctpState::Closed);
    near(entry_deadline(&lab, 43001), 5_000, "CLOSED");
}

/// Associations spread over the real servers (rr), each sticking to its own.
#[test]
fn associations_spread_over_real_servers() {
    for method in [Method::Nat, Method::FullNat] {
        let mut lab = Lab::new(method);
        let mut seen = Vec::new();
        for i in 0..6u16 {
            let a = handshake(&mut lab, i % 2 == 1, 43000 + i, PORT);
            seen.push(a.real);
            let f = a.client_frame(a.server_tag, &[data_chunk(b"x")]);
            let [_, fwd] = lab.send(0, &f);
            assert_eq!(only(&fwd).dst, real(a.real, a.v6));
        }
        for n in 1..=3 {
            assert!(
                seen.contains(&n),
                "{method:?}: real {n} got an association: {seen:?}"
            );
        }
        assert_eq!(lab.total_drops(), 0);
    }
}

/// DR and TUN see only the client's side (IPVS INPUT_ONLY): the tag towards the server is
/// learned from the COOKIE-ECHO, the association is ESTABLISHED from then on, and a packet
/// with another tag is dropped. The IP packet itself is untouched (DR) or encapsulated
/// (TUN) with the CRC32c unchanged.
#[test]
fn direct_routing_and_tunnel_track_input_only() {
    for method in [Method::Dr, Method::Tun] {
        for v6 in [false, true] {
            let case = format!("{method:?} v6={v6}");
            let mut lab = Lab::new(method);
            let a = Assoc {
                v6,
                cport: 44000,
                vport: PORT,
                client_tag: 0x11,
                server_tag: 0x22,
                real: 1,
                real_port: PORT,
                seen_src: client(v6),
                seen_sport: 44000,
            };
            let init = a.client_frame(
                0,
                &[init_chunk(INIT, a.client_tag, &[addr_param(client2(v6))])],
            );
            let [_, fwd] = lab.send(0, &init);
            assert_eq!(fwd.len(), 1, "{case}");
            let inner = inner_ip(&fwd[0], method, v6);
            let sent = uvs_testkit::one_hop_on(&init);
            assert_eq!(
                inner,
                &sent[14..],
                "{case}: INIT leaves byte for byte but the TTL (no stripping)"
            );
            assert_eq!(lab.state(44000), SctpState::Init1, "{case}");
            let echo = a.client_frame(a.server_tag, &[chunk(COOKIE_ECHO, 0, b"ck")]);
            let [_, fwd] = lab.send(0, &echo);
            assert_eq!(fwd.len(), 1, "{case}");
            assert_eq!(lab.state(44000), SctpState::Established, "{case}");
            let data = a.client_frame(a.server_tag, &[data_chunk(b"d")]);
            let [_, fwd] = lab.send(0, &data);
            assert_eq!(fwd.len(), 1, "{case}");
            let wrong = a.client_frame(a.server_tag ^ 1, &[data_chunk(b"d")]);
            let [_, fwd] = lab.send(0, &wrong);
            assert!(fwd.is_empty(), "{case}");
            assert_eq!(lab.drops(DropReason::SctpBadVtag), 1, "{case}");
            // A COOKIE-ECHO with a new tag once ESTABLISHED is not learned.
            let late = a.client_frame(0x33, &[chunk(COOKIE_ECHO, 0, b"ck")]);
            let [_, fwd] = lab.send(0, &late);
            assert!(fwd.is_empty(), "{case}");
            assert_eq!(lab.drops(DropReason::SctpBadVtag), 2, "{case}");
        }
    }
}

/// The IP packet inside a DR frame (after Ethernet) or a TUN frame (after the outer header).
fn inner_ip(f: &[u8], method: Method, v6: bool) -> Vec<u8> {
    let outer = match (method, v6) {
        (Method::Tun, false) => 20,
        (Method::Tun, true) => 40,
        _ => 0,
    };
    if method == Method::Dr {
        assert_eq!(&f[..6], &lab::real_mac(1));
    }
    f[14 + outer..].to_vec()
}

/// (active, inactive) summed over the real servers of the lab's IPv4 or IPv6 SCTP
/// service, and the real server `n`'s own.
fn sctp_counts(lab: &Lab, v6: bool, n: u8) -> ((u32, u32), (u32, u32)) {
    use std::sync::atomic::Ordering::Relaxed;
    let t = lab.shared.tables.load();
    let svc = t
        .services
        .iter()
        .flatten()
        .find(|s| s.key.proto == 132 && s.key.vip.v6 == v6)
        .expect("the lab's SCTP service");
    let mut total = (0, 0);
    let mut own = (0, 0);
    for (slot, r) in svc.reals.iter().enumerate() {
        let Some(r) = r else { continue };
        let l = &svc.live[slot];
        let c = (l.active.load(Relaxed), l.inactive.load(Relaxed));
        total = (total.0 + c.0, total.1 + c.1);
        if r.addr.to_ip() == real(n, v6) {
            own = c;
        }
    }
    (total, own)
}

/// A real server counts an SCTP association as IPVS does (`ip_vs_sctp` state changes move
/// `activeconns`): inactive from its INIT, active once ESTABLISHED, inactive again when it
/// shuts down or is aborted, and neither once its entry expires — what `lc`, `wlc` and
/// the other connection-count schedulers read for SCTP services. NAT and FullNAT, IPv4
/// and IPv6.
#[test]
fn associations_count_as_active_while_established() {
    for method in [Method::Nat, Method::FullNat] {
        for v6 in [false, true] {
            let case = format!("{method:?} v6={v6}");
            let mut lab = Lab::new(method);
            // An INIT alone: scheduled and bound, not yet established.
            let init = frame(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                42_000,
                vip(v6),
                PORT,
                0,
                &[init_chunk(INIT, 0x1234_5678, &[])],
            );
            let [_, fwd] = lab.send(0, &init);
            assert_eq!(fwd.len(), 1, "{case}");
            assert_eq!(sctp_counts(&lab, v6, 1).0, (0, 1), "{case}: after the INIT");
            // Two whole handshakes: both established.
            let a = handshake(&mut lab, v6, 42_001, PORT);
            let b = handshake(&mut lab, v6, 42_002, PORT);
            assert_eq!(lab.state(42_001), SctpState::Established, "{case}");
            assert_eq!(sctp_counts(&lab, v6, 1).0, (2, 1), "{case}: established");
            assert!(
                sctp_counts(&lab, v6, a.real).1 .0 >= 1,
                "{case}: on its own server"
            );
            // One shut down by the client, the other aborted by its server.
            lab.send(
                0,
                &a.client_frame(a.server_tag, &[chunk(SHUTDOWN, 0, &[0, 0, 0, 1])]),
            );
            assert_ne!(lab.state(42_001), SctpState::Established, "{case}");
            assert_eq!(
                sctp_counts(&lab, v6, 1).0,
                (1, 2),
                "{case}: one shutting down"
            );
            let [back, _] = lab.send(1, &b.server_frame(b.client_tag, &[chunk(ABORT, 0, &[])]));
            assert_eq!(back.len(), 1, "{case}: the ABORT passes");
            assert_eq!(lab.state(42_002), SctpState::Closed, "{case}");
            assert_eq!(
                sctp_counts(&lab, v6, 1).0,
                (0, 3),
                "{case}: none established"
            );
            // Expired: control's sweep takes every entry, and its count, away.
            lab.shared.clock.advance(3600);
            let t = lab.shared.tables.load();
            let now = lab.shared.clock.now_ticks();
            lab.shared
                .conns
                .expire_step(now, 1 << 20, |c| uvs_dataplane::lifecycle::unbind(&t, c));
            assert_eq!(sctp_counts(&lab, v6, 1).0, (0, 0), "{case}: expired");
        }
    }
}
