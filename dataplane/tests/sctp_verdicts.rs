//! SCTP packets the balancer must refuse, each with its verdict counter: bad CRC32c,
//! wrong verification tags, chunk length 0, non-INIT packets for unknown associations,
//! malformed INITs, fragments.

mod sctp_support;

use sctp_support::*;
use uvs_dataplane::lab;
use uvs_dataplane::sctp::SctpState;
use uvs_dataplane::{DropReason, Method};
use uvs_wire::ParseError;

fn init(v6: bool, cport: u16, vtag: u32, tag: u32) -> Vec<u8> {
    frame(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client(v6),
        cport,
        vip(v6),
        PORT,
        vtag,
        &[init_chunk(INIT, tag, &[])],
    )
}

/// The test CRC32c agrees with RFC 3720 B.4 (and so is a real CRC32c).
#[test]
fn independent_crc32c_matches_rfc3720() {
    assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    let inc: Vec<u8> = (0..32u8).collect();
    assert_eq!(crc32c(&inc), 0x46dd_794e);
}

/// A corrupt CRC32c is dropped and counted — on a new INIT and inside an established
/// association, for both directions — and nothing is forwarded or created.
#[test]
fn bad_crc_is_dropped_and_counted() {
    for v6 in [false, true] {
        let mut lab = Lab::new(Method::Nat);
        let mut f = init(v6, 40000, 0, 7);
        let n = f.len();
        f[n - 1] ^= 0x55; // a payload byte: IP is fine, only the CRC disagrees
        let [back, fwd] = lab.send(0, &f);
        assert!(back.is_empty() && fwd.is_empty());
        assert_eq!(lab.drops(DropReason::SctpBadCrc), 1);
        assert!(lab.associations().is_empty(), "no entry for a corrupt INIT");

        let a = handshake(&mut lab, v6, 40001, PORT);
        let mut d = a.client_frame(a.server_tag, &[data_chunk(b"payload")]);
        let n = d.len();
        d[n - 2] ^= 1;
        let [_, fwd] = lab.send(0, &d);
        assert!(fwd.is_empty());
        let mut r = a.server_frame(a.client_tag, &[data_chunk(b"payload")]);
        let l4 = if v6 { 54 } else { 34 };
        r[l4 + 8] ^= 0xff; // the checksum field itself
        let [back, _] = lab.send(1, &r);
        assert!(back.is_empty());
        assert_eq!(lab.drops(DropReason::SctpBadCrc), 3);
        assert_eq!(lab.state(40001), SctpState::Established);
    }
}

/// Verification tags (RFC 9260 §8.5, §8.5.1): INIT must carry 0; INIT-ACK must carry the
/// INIT's initiate tag; data must carry the receiver's tag in each direction.
#[test]
fn wrong_verification_tags_are_dropped() {
    for v6 in [false, true] {
        let mut lab = Lab::new(Method::Nat);
        let [_, fwd] = lab.send(0, &init(v6, 40100, 99, 5));
        assert!(fwd.is_empty(), "INIT with a non-zero tag");
        assert_eq!(lab.drops(DropReason::SctpBadVtag), 1);
        assert!(lab.associations().is_empty());

        let [_, fwd] = lab.send(0, &init(v6, 40101, 0, 0xfeed));
        let o = only(&fwd);
        let bad_ack = frame(
            lab::real_mac(1),
            lab::LB1_MAC,
            o.dst,
            o.dport,
            o.src,
            o.sport,
            0xfeed ^ 0xffff,
            &[init_chunk(INIT_ACK, 0xbeef, &[])],
        );
        let [back, _] = lab.send(1, &bad_ack);
        assert!(back.is_empty(), "INIT-ACK must echo the INIT's tag");
        assert_eq!(lab.drops(DropReason::SctpBadVtag), 2);
        assert_eq!(lab.state(40101), SctpState::Init1);

        let a = handshake(&mut lab, v6, 40102, PORT);
        for (port, tag) in [
            (0, a.client_tag), // the client's own tag towards the server
            (0, 0),
            (1, a.server_tag), // the server's own tag towards the client
            (1, 0x1234_5678),
        ] {
            let f = if port == 0 {
                a.client_frame(tag, &[data_chunk(b"x")])
            } else {
                a.server_frame(tag, &[data_chunk(b"x")])
            };
            let [back, fwd] = lab.send(port, &f);
            assert!(
                back.is_empty() && fwd.is_empty(),
                "tag {tag:#x} on port {port}"
            );
        }
        assert_eq!(lab.drops(DropReason::SctpBadVtag), 6);
        // A second INIT on an established association (restart) needs tag 0 too.
        let mut again = init(v6, 40102, 7, 0x777);
        let [_, fwd] = lab.send(0, &again);
        assert!(fwd.is_empty());
        assert_eq!(lab.drops(DropReason::SctpBadVtag), 7);
        again = init(v6, 40102, 0, 0x777);
        let [_, fwd] = lab.send(0, &again);
        assert_eq!(
            only(&fwd).dst,
            real(a.real, v6),
            "restart INIT reaches the same server"
        );
        assert_eq!(
            lab.state(40102),
            SctpState::Established,
            "IPVS keeps ES on INIT"
        );
    }
}

/// Chunk length 0 would loop a naive chunk walk forever: a parse error, counted.
#[test]
fn chunk_length_zero_is_a_parse_error() {
    for v6 in [false, true] {
        let mut lab = Lab::new(Method::Nat);
        let a = handshake(&mut lab, v6, 40200, PORT);
        let mut f = a.client_frame(a.server_tag, &[data_chunk(b"abcd")]);
        let l4 = if v6 { 54 } else { 34 };
        f[l4 + 14] = 0;
        f[l4 + 15] = 0;
        let crc = sctp_crc(&f[l4..]);
        f[l4 + 8..l4 + 12].copy_from_slice(&crc);
        let [_, fwd] = lab.send(0, &f);
        assert!(fwd.is_empty());
        assert_eq!(
            lab.drops(DropReason::Parse(ParseError::SctpChunkTooShort)),
            1
        );
    }
}

/// Only an INIT opens an association (IPVS `sctp_conn_schedule`): other chunks for an
/// unknown association are dropped as `sctp_not_init` when they target a service, and as
/// `no_service` otherwise.
#[test]
fn only_init_opens_an_association() {
    for v6 in [false, true] {
        let mut lab = Lab::new(Method::Nat);
        for c in [
            data_chunk(b"x"),
            chunk(COOKIE_ECHO, 0, b"ck"),
            chunk(ABORT, 1, &[]),
            chunk(HEARTBEAT, 0, &[0, 1, 0, 4]),
            init_chunk(INIT_ACK, 5, &[]),
        ] {
            let f = frame(
                lab::CLIENT_MAC,
                lab::LB0_MAC,
                client(v6),
                40300,
                vip(v6),
                PORT,
                0x42,
                &[c],
            );
            let [_, fwd] = lab.send(0, &f);
            assert!(fwd.is_empty());
        }
        assert_eq!(lab.drops(DropReason::SctpNotInit), 5);
        let f = frame(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client(v6),
            40300,
            vip(v6),
            9999,
            0,
            &[init_chunk(INIT, 1, &[])],
        );
        let [_, fwd] = lab.send(0, &f);
        assert!(fwd.is_empty());
        assert_eq!(lab.drops(DropReason::NoService), 1);
        assert!(lab.associations().is_empty());
    }
}

/// INIT without its fixed part, with initiate tag 0, or bundled with another chunk.
#[test]
fn malformed_inits_are_dropped() {
    let mut lab = Lab::new(Method::Nat);
    let bad = [
        vec![chunk(INIT, 0, &[0, 0, 0, 1])],
        vec![init_chunk(INIT, 0, &[])],
        vec![init_chunk(INIT, 9, &[]), chunk(COOKIE_ACK, 0, &[])],
    ];
    for chunks in bad {
        let f = frame(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            client(false),
            40400,
            vip(false),
            PORT,
            0,
            &chunks,
        );
        let [_, fwd] = lab.send(0, &f);
        assert!(fwd.is_empty());
    }
    assert_eq!(lab.drops(DropReason::SctpMalformed), 3);
    assert!(lab.associations().is_empty());
}

/// A fragmented SCTP packet cannot have its CRC32c checked: dropped, counted.
#[test]
fn fragments_are_dropped() {
    let mut lab = Lab::new(Method::Nat);
    let big = frame(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        client(false),
        40500,
        vip(false),
        PORT,
        0,
        &[init_chunk(INIT, 3, &[param(7, &[0xab; 64])])],
    );
    let (first, later) = uvs_testkit::fragment_v4(&big, 48, 77);
    let [_, fwd] = lab.send(0, &first);
    assert!(fwd.is_empty());
    assert_eq!(lab.drops(DropReason::SctpFragment), 1);
    let [_, fwd] = lab.send(0, &later);
    assert!(fwd.is_empty());
    assert_eq!(lab.drops(DropReason::SctpFragment), 2);
    assert!(lab.associations().is_empty());
}
