//! `complete_l4_checksum` against etherparse: frames built by etherparse, made partial by
//! the test kit as a sender with checksum offload leaves them, completed by uvs-wire, then
//! compared with etherparse's own checksum.

mod common;

use common::*;
use proptest::prelude::*;
use uvs_testkit::partial_checksum;
use uvs_wire::{complete_l4_checksum, parse_frame, set_dst_addr, set_dst_port, L4Checksum};

fn tcp_or_udp(tcp: bool) -> L4 {
    if tcp {
        L4::Tcp {
            sport: 40000,
            dport: 80,
            syn: false,
        }
    } else {
        L4::Udp {
            sport: 5353,
            dport: 53,
        }
    }
}

fn addrs(v6: bool) -> ([u8; 16], [u8; 16]) {
    if v6 {
        (common::v6(0, 2), common::v6(100, 1))
    } else {
        (v4(0, 0, 2), v4(0, 100, 1))
    }
}

/// Every family, VLAN layout and protocol, payloads of odd and even lengths up to a full
/// Ethernet frame: valid stays valid and untouched, partial completes to exactly
/// etherparse's bytes, and a flipped bit anywhere in the segment is bad.
#[test]
fn partial_completes_to_etherparse_and_corruption_is_bad() {
    for v6 in [false, true] {
        for vlan in [Vlan::None, Vlan::Single(7), Vlan::Double(8, 9)] {
            for tcp in [true, false] {
                for len in [0usize, 1, 2, 3, 17, 458, 1400, 1401] {
                    let case = format!("v6={v6} {vlan:?} tcp={tcp} len={len}");
                    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                    let (src, dst) = addrs(v6);
                    let full = frame(v6, vlan, tcp_or_udp(tcp), &src, &dst, &payload);
                    let p = parse_frame(&full).unwrap();

                    let mut f = full.clone();
                    assert_eq!(
                        complete_l4_checksum(&mut f, &p),
                        L4Checksum::Valid,
                        "{case}"
                    );
                    assert_eq!(f, full, "{case}");

                    let mut f = partial_checksum(&full);
                    assert_ne!(
                        f, full,
                        "{case}: the partial field differs from the full one"
                    );
                    assert_eq!(
                        complete_l4_checksum(&mut f, &p),
                        L4Checksum::Completed,
                        "{case}"
                    );
                    assert_eq!(f, full, "{case}: completed = etherparse's checksum");
                    assert_checksums(&f);

                    let l4 = usize::from(p.l4_off);
                    for at in [l4, l4 + 3, p.l3_end() - 1] {
                        let mut f = full.clone();
                        f[at] ^= 0x20;
                        assert_eq!(
                            complete_l4_checksum(&mut f, &p),
                            L4Checksum::Bad,
                            "{case}: bit flipped at {at}"
                        );
                    }
                }
            }
        }
    }
}

/// Why completing matters: a NAT rewrite of a partial checksum stays partial (etherparse
/// rejects it); completed first, the rewritten frame checks clean.
#[test]
fn rewrite_after_completion_checks_clean() {
    for v6 in [false, true] {
        for tcp in [true, false] {
            let (src, dst) = addrs(v6);
            let full = frame(v6, Vlan::None, tcp_or_udp(tcp), &src, &dst, b"payload");
            let real = if v6 { common::v6(1, 11) } else { v4(1, 1, 11) };
            let rewrite = |f: &mut Vec<u8>| {
                let mut p = parse_frame(f).unwrap();
                set_dst_addr(f, &mut p, &real);
                set_dst_port(f, &mut p, 8080);
            };
            let mut stale = partial_checksum(&full);
            rewrite(&mut stale);
            assert!(
                std::panic::catch_unwind(|| assert_checksums(&stale)).is_err(),
                "v6={v6} tcp={tcp}: a rewritten partial checksum is still wrong"
            );
            let mut f = partial_checksum(&full);
            let p = parse_frame(&f).unwrap();
            assert_eq!(complete_l4_checksum(&mut f, &p), L4Checksum::Completed);
            rewrite(&mut f);
            assert_checksums(&f);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random addresses, ports and payloads: the three cases are told apart, and a
    /// completed checksum is etherparse's.
    #[test]
    fn random_segments(
        v6 in any::<bool>(),
        tcp in any::<bool>(),
        sport in any::<u16>(), dport in any::<u16>(),
        a in any::<[u8; 3]>(), b in any::<[u8; 3]>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
        flip in any::<(usize, u8)>(),
    ) {
        let (src, dst) = if v6 {
            (common::v6(a[0], a[1]), common::v6(b[0], b[1]))
        } else {
            (v4(a[0], a[1], a[2]), v4(b[0], b[1], b[2]))
        };
        let l4 = if tcp { L4::Tcp { sport, dport, syn: true } } else { L4::Udp { sport, dport } };
        let full = frame(v6, Vlan::None, l4, &src, &dst, &payload);
        let p = parse_frame(&full).unwrap();
        let mut f = full.clone();
        prop_assert_eq!(complete_l4_checksum(&mut f, &p), L4Checksum::Valid);
        let mut f = partial_checksum(&full);
        let found = complete_l4_checksum(&mut f, &p);
        // A partial field can coincide with the full checksum (when the segment sums to
        // zero); then it is simply valid.
        prop_assert!(found == L4Checksum::Completed || (found == L4Checksum::Valid && f == full));
        prop_assert_eq!(&f, &full);
        // One flipped bit in the segment makes it bad, unless the bit is in the checksum
        // field and turns it into the partial value or, for UDP over IPv4, into 0 ("none").
        let l4_off = usize::from(p.l4_off);
        let at = l4_off + flip.0 % (p.l3_end() - l4_off);
        let mut g = full.clone();
        g[at] ^= 1 << (flip.1 % 8);
        let csum_at = l4_off + if tcp { 16 } else { 6 };
        let field = &g[csum_at..csum_at + 2];
        let want = if field == &partial_checksum(&full)[csum_at..csum_at + 2] {
            L4Checksum::Completed
        } else if !tcp && !v6 && field == [0, 0] {
            L4Checksum::Valid
        } else {
            L4Checksum::Bad
        };
        let before = g.clone();
        prop_assert_eq!(complete_l4_checksum(&mut g, &p), want);
        if want == L4Checksum::Bad {
            prop_assert_eq!(g, before);
        }
    }
}
