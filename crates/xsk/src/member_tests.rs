//! The member filter's rules, run in the kernel with BPF_PROG_TEST_RUN on literal frames.
//! The owner of each frame is predicted with the Rust mirror of the program's hash
//! (`flow_slot`), so a hash that differs between the two fails here. Needs root.

use std::net::Ipv4Addr;

use super::*;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP: [u8; 4] = [198, 18, 200, 1];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const CLUSTER_MAC: [u8; 6] = [0x03, 0xbf, 198, 18, 200, 1];
const OWN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const M: u32 = 251;

fn settings(me: u16, hash: MemberHash) -> MemberSettings {
    MemberSettings {
        vip: Ipv4Addr::from(VIP),
        me,
        proto: 6,
        ports: vec![80, 443],
        hash,
        cluster_mac: CLUSTER_MAC,
        own_mac: OWN_MAC,
        table_size: M,
    }
}

/// Three members taking turns over the entries.
fn table() -> Vec<u16> {
    (0..M).map(|i| (i % 3) as u16).collect()
}

fn loaded(me: u16, hash: MemberHash) -> MemberProgram {
    assert!(
        sys::is_root(),
        "loading BPF needs root: run it as root, e.g. scripts/test.sh under sudo"
    );
    MemberProgram::load("test", settings(me, hash)).expect("member filter loads")
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = CLUSTER_MAC.to_vec();
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// IPv4 header (no options) with `frag` (flags and offset field) and payload `l4`.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let len = 20 + l4.len() as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn syn(cport: u16, vport: u16) -> Vec<u8> {
    eth(0x0800, &ipv4(CLIENT, VIP, 6, 0x4000, &tcp(cport, vport)))
}

fn owner(s: &MemberSettings, cport: u16, vport: u16) -> u16 {
    table()[flow_slot(s, Ipv4Addr::from(CLIENT), cport, vport, M)]
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn each_flow_is_kept_by_exactly_its_owner() {
    let members: Vec<MemberProgram> = (0..3).map(|i| loaded(i, MemberHash::FiveTuple)).collect();
    for m in &members {
        m.publish(&table(), Some(0)).unwrap();
    }
    let mut kept_by = [0u32; 3];
    for cport in 40_000..40_300u16 {
        let frame = syn(cport, 80);
        let expected = owner(members[0].settings(), cport, 80);
        let mut keepers = 0;
        for (i, m) in members.iter().enumerate() {
            let (act, out) = m.test_run(&frame).unwrap();
            if act == XDP_PASS {
                keepers += 1;
                kept_by[i] += 1;
                assert_eq!(i as u16, expected, "port {cport}");
                // The kernel must see it as addressed to this host (PACKET_HOST).
                assert_eq!(out[..6], OWN_MAC);
                assert_eq!(out[6..], frame[6..]);
            } else {
                assert_eq!(act, XDP_DROP);
            }
        }
        assert_eq!(keepers, 1, "port {cport}: one member keeps each flow");
    }
    // The table splits entries evenly; 300 flows land roughly a third each.
    assert!(
        kept_by.iter().all(|&k| (60..=140).contains(&k)),
        "{kept_by:?}"
    );
    let c = members[1].counters().unwrap();
    assert_eq!(c.kept, u64::from(kept_by[1]));
    assert_eq!(c.other_member, 300 - u64::from(kept_by[1]));
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn not_ready_unlisted_ports_and_other_traffic() {
    let m = loaded(0, MemberHash::FiveTuple);
    // Before a table is published, the VIP's service traffic is dropped.
    assert_eq!(m.test_run(&syn(40_000, 80)).unwrap().0, XDP_DROP);
    assert_eq!(m.counters().unwrap().not_ready, 1);
    m.publish(&table(), Some(0)).unwrap();
    // An unlisted port, another address, another protocol: the kernel's.
    let frame = syn(40_000, 22);
    assert_eq!(m.test_run(&frame).unwrap(), (XDP_PASS, frame.clone()));
    let other = eth(0x0800, &ipv4(CLIENT, [198, 18, 0, 9], 6, 0, &tcp(1, 80)));
    assert_eq!(m.test_run(&other).unwrap().0, XDP_PASS);
    let udp = eth(
        0x0800,
        &ipv4(CLIENT, VIP, 17, 0, &[0, 53, 0, 80, 0, 8, 0, 0]),
    );
    assert_eq!(m.test_run(&udp).unwrap().0, XDP_PASS);
    assert_eq!(m.counters().unwrap().passed, 3);
    // Truncated TCP to the VIP: dropped and counted.
    let short = eth(0x0800, &ipv4(CLIENT, VIP, 6, 0, &[0x9c, 0x40]));
    assert_eq!(m.test_run(&short).unwrap().0, XDP_DROP);
    assert_eq!(m.counters().unwrap().malformed, 1);
    // No healthy member: everything to the VIP is dropped.
    m.publish(&vec![NO_OWNER; M as usize], None).unwrap();
    assert_eq!(m.test_run(&syn(40_000, 80)).unwrap().0, XDP_DROP);
    assert_eq!(m.counters().unwrap().no_member, 1);
    // A table of the wrong size is refused.
    assert!(m.publish(&[0; 7], Some(0)).is_err());
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn fragments_and_icmp_errors_follow_one_member() {
    let members: Vec<MemberProgram> = (0..3).map(|i| loaded(i, MemberHash::FiveTuple)).collect();
    for m in &members {
        m.publish(&table(), Some(0)).unwrap();
    }
    let keeper = |frame: &[u8]| -> Vec<usize> {
        members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.test_run(frame).unwrap().0 == XDP_PASS)
            .map(|(i, _)| i)
            .collect()
    };
    for id in 0..30u16 {
        // A first fragment (MF, offset 0, ports present) and a later one (offset 185·8):
        // the same single member takes both.
        let client = [198, 18, 0, 10 + id as u8];
        let first = eth(0x0800, &ipv4(client, VIP, 6, 0x2000, &tcp(40_000 + id, 80)));
        let later = eth(0x0800, &ipv4(client, VIP, 6, 185, &[0; 16]));
        let k = keeper(&first);
        assert_eq!(k.len(), 1);
        assert_eq!(keeper(&later), k, "fragments of one datagram on one member");
    }
    for cport in 41_000..41_030u16 {
        // Frag-needed (RFC 1191) quoting the VIP's segment to the client: it reaches the
        // member that owns the client's flow.
        let flow = keeper(&syn(cport, 80));
        let quoted = ipv4(VIP, CLIENT, 6, 0x4000, &tcp(80, cport)[..8]);
        let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        icmp.extend_from_slice(&quoted);
        let err = eth(0x0800, &ipv4([198, 18, 0, 254], VIP, 1, 0, &icmp));
        assert_eq!(keeper(&err), flow, "client port {cport}");
        // A ping reaches one member.
        let echo = eth(0x0800, &ipv4(CLIENT, VIP, 1, 0, &[8, 0, 0, 0, 0, 1, 0, 1]));
        assert_eq!(keeper(&echo).len(), 1);
    }
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn source_hash_keeps_a_client_on_one_member() {
    let members: Vec<MemberProgram> = (0..3).map(|i| loaded(i, MemberHash::Source)).collect();
    for m in &members {
        m.publish(&table(), Some(0)).unwrap();
    }
    let expected = owner(members[0].settings(), 1, 80);
    for cport in 40_000..40_050u16 {
        for (i, m) in members.iter().enumerate() {
            let act = m.test_run(&syn(cport, 443)).unwrap().0;
            assert_eq!(act == XDP_PASS, i as u16 == expected);
        }
    }
}

#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn the_arp_owner_answers_with_the_cluster_mac() {
    let owner = loaded(1, MemberHash::FiveTuple);
    let other = loaded(2, MemberHash::FiveTuple);
    for m in [&owner, &other] {
        m.publish(&table(), Some(1)).unwrap();
    }
    assert_eq!(owner.arp_owner(), Some(1));
    let mut req = vec![0, 1, 8, 0, 6, 4, 0, 1];
    req.extend_from_slice(&CLIENT_MAC);
    req.extend_from_slice(&CLIENT);
    req.extend_from_slice(&[0; 6]);
    req.extend_from_slice(&VIP);
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&CLIENT_MAC);
    frame.extend_from_slice(&0x0806u16.to_be_bytes());
    frame.extend_from_slice(&req);

    let (act, out) = owner.test_run(&frame).unwrap();
    assert_eq!(act, XDP_TX);
    assert_eq!(out[0..6], CLIENT_MAC, "back to the asker");
    assert_eq!(out[6..12], OWN_MAC, "from a unicast source");
    let a = &out[14..];
    assert_eq!(a[6..8], [0, 2], "a reply");
    assert_eq!(a[8..14], CLUSTER_MAC);
    assert_eq!(a[14..18], VIP);
    assert_eq!(a[18..24], CLIENT_MAC);
    assert_eq!(a[24..28], CLIENT);
    assert_eq!(owner.counters().unwrap().arp_replied, 1);

    assert_eq!(other.test_run(&frame).unwrap().0, XDP_DROP);
    assert_eq!(other.counters().unwrap().arp_dropped, 1);
    // ARP for another address is the kernel's.
    let mut elsewhere = frame.clone();
    elsewhere[14 + 24..14 + 28].copy_from_slice(&[198, 18, 0, 77]);
    assert_eq!(owner.test_run(&elsewhere).unwrap(), (XDP_PASS, elsewhere));
}

/// A filter loaded in place of another (its interface made again) counts on where the
/// other left off: the two share one set of counters.
#[test]
#[ignore = "needs root: loading BPF (scripts/test.sh runs it as root)"]
fn a_filter_in_place_of_another_counts_on() {
    let old = loaded(0, MemberHash::FiveTuple);
    assert_eq!(old.test_run(&syn(40_000, 80)).unwrap().0, XDP_DROP);
    let new = MemberProgram::load_with(
        "test",
        settings(0, MemberHash::FiveTuple),
        &[("mstats", old.stats_fd)],
    )
    .expect("loads reusing");
    assert_eq!(new.counters().unwrap().not_ready, 1, "the old one's count");
    assert_eq!(new.test_run(&syn(40_001, 80)).unwrap().0, XDP_DROP);
    assert_eq!(old.counters().unwrap().not_ready, 2, "the new one's count");
}
