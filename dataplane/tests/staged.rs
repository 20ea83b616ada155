//! A burst's new flows are scheduled when their frames come and stored at the end of the
//! burst (`pipeline/staged.rs`, tables large enough for burst lookups). What a frame sees
//! must not change: a retransmitted SYN, a later segment or a server's reply in the same
//! burst finds the flow an earlier frame opened; one flow's frames leave in order; the
//! burst's later picks count the earlier ones; a flow whose insert fails gives its place
//! on the server back.

mod lab_worker;

use std::net::IpAddr;

use uvs_conntrack::{Conn, FlowKey};
use uvs_dataplane::lab;
use uvs_dataplane::worker::BATCH_LOOKUP_MIN_CAPACITY;
use uvs_dataplane::{DropReason, Method};
use uvs_sched::SchedulerKind;
use uvs_testkit::{self as tk, check_frame};

use lab_worker::{a, client_tcp, server_tcp, Lab};

impl Lab {
    /// NAT over the lab's three servers; the table holds half of the burst-lookup
    /// threshold per family, so both together reach it (burst mode).
    fn new(sched: SchedulerKind) -> Lab {
        let spec = lab::spec(Method::Nat, sched, 1);
        let lab = Lab::with_spec(spec, BATCH_LOOKUP_MIN_CAPACITY / 2);
        assert!(lab.shared.conns.capacity() >= BATCH_LOOKUP_MIN_CAPACITY);
        lab
    }

    fn new_conns(&self) -> u64 {
        self.shared.counters[0].new_conns.get()
    }
}

fn client_udp(sport: u16, payload: &[u8]) -> Vec<u8> {
    tk::udp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(lab::CLIENT4),
        sport,
        a(lab::VIP4),
        53,
        payload,
    )
}

fn dst_of(f: &[u8]) -> IpAddr {
    check_frame(f).unwrap().dst
}

#[test]
fn a_retransmitted_syn_in_the_same_burst_finds_its_flow() {
    let mut lab = Lab::new(SchedulerKind::Rr);
    let mut frames: Vec<_> = (0..6)
        .map(|i| (0, client_tcp(41000 + i, tk::SYN, b"")))
        .collect();
    // The first flow's SYN again, after the others: one entry, one server.
    frames.push((0, client_tcp(41000, tk::SYN, b"")));
    let [_, out] = lab.burst_both(&frames);
    assert_eq!(out.len(), 7, "every SYN forwarded");
    assert_eq!(lab.shared.conns.len(), 6, "six flows, not seven");
    assert_eq!(lab.new_conns(), 6);
    let first = out
        .iter()
        .filter(|f| check_frame(f).unwrap().sport == 41000)
        .map(|f| dst_of(f))
        .collect::<Vec<_>>();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0], first[1], "the retransmission follows the flow");
    let total: u32 = (1..=3).map(|n| lab.counts(n).1).sum();
    assert_eq!(total, 6, "each flow counted once");
}

#[test]
fn one_flows_frames_leave_in_order_and_others_keep_theirs() {
    let mut lab = Lab::new(SchedulerKind::Rr);
    let [_, out] = lab.burst_both(&[
        (0, client_tcp(42000, tk::SYN, b"")),
        (0, client_tcp(42001, tk::SYN, b"")),
        // A segment of the first flow right behind: stored before it, sent after its SYN.
        (0, client_tcp(42000, tk::ACK, b"data")),
        (0, client_udp(42002, b"a")),
        (0, client_udp(42002, b"bb")),
    ]);
    assert_eq!(out.len(), 5);
    let seq: Vec<(u16, usize)> = out
        .iter()
        .map(|f| {
            let c = check_frame(f).unwrap();
            (c.sport, f.len())
        })
        .collect();
    let pos = |sport: u16| {
        seq.iter()
            .enumerate()
            .filter(|(_, (s, _))| *s == sport)
            .map(|(i, (_, l))| (i, *l))
            .collect::<Vec<_>>()
    };
    let tcp = pos(42000);
    assert_eq!(tcp.len(), 2);
    assert!(tcp[0].1 < tcp[1].1, "the SYN before the data segment");
    let udp = pos(42002);
    assert_eq!(udp.len(), 2);
    assert!(udp[0].1 < udp[1].1, "the first datagram before the second");
    assert_eq!(lab.shared.conns.len(), 3, "two TCP flows and one UDP flow");
    assert_eq!(dst_of(&out[tcp[0].0]), dst_of(&out[tcp[1].0]));
    assert_eq!(dst_of(&out[udp[0].0]), dst_of(&out[udp[1].0]));
}

#[test]
fn a_reply_in_the_same_burst_finds_the_flow() {
    let mut lab = Lab::new(SchedulerKind::Rr);
    lab.set_health(2, false);
    lab.set_health(3, false);
    let [back, out] = lab.burst_both(&[
        (0, client_tcp(43000, tk::SYN, b"")),
        // Not a real exchange (the server has not seen the SYN yet, and it arrives on the
        // client's port so that it is in the same burst), but its tuple is the new flow's
        // reply tuple: it must be translated, as it was before staging.
        (0, server_tcp(1, 43000, tk::SYN_ACK)),
    ]);
    assert_eq!(out.len(), 1);
    assert_eq!(dst_of(&out[0]), lab::real(1, false).to_ip());
    assert_eq!(back.len(), 1, "the reply went back to the client");
    let b = check_frame(&back[0]).unwrap();
    assert_eq!(
        (b.src, b.sport, b.dst, b.dport),
        (a(lab::VIP4), 80, a(lab::CLIENT4), 43000)
    );
    assert_eq!(lab.shared.counters[0].total_drops(), 0);
}

#[test]
fn a_bursts_picks_count_its_earlier_flows() {
    // Least-connection: each pick must see the flows picked before it in the burst.
    let mut lab = Lab::new(SchedulerKind::Wlc);
    let frames: Vec<_> = (0..9)
        .map(|i| (0, client_tcp(44000 + i, tk::SYN, b"")))
        .collect();
    let [_, out] = lab.burst_both(&frames);
    assert_eq!(out.len(), 9);
    for n in 1..=3 {
        assert_eq!(lab.counts(n), (0, 3), "server {n}: three half-open flows");
        let reached = out
            .iter()
            .filter(|f| dst_of(f) == lab::real(n, false).to_ip())
            .count();
        assert_eq!(reached, 3, "server {n}");
    }
}

#[test]
fn a_failed_insert_gives_the_servers_place_back() {
    let mut lab = Lab::new(SchedulerKind::Rr);
    // Fill the IPv4 table with other connections (a tuple whose two index buckets are
    // both full is refused with `Overflow`: the next one is tried).
    let now = lab.shared.clock.now_ticks();
    let cap = lab.shared.conns.capacity_of(false);
    for i in 0..2 * cap {
        if lab.shared.conns.len_of(false) == cap {
            break;
        }
        let (h, p) = ((i / 60000) as u8, 1024 + (i % 60000) as u16);
        let orig = FlowKey::v4(6, [198, 18, 0, 10 + h], p, [198, 18, 100, 1], 80);
        let conn = Conn {
            orig,
            reply: FlowKey::v4(6, [198, 18, 1, 1], 80, [198, 18, 0, 10 + h], p),
            ..Conn::default()
        };
        let _ = lab
            .shared
            .conns
            .insert(&conn, now, now.wrapping_add(3_600_000));
    }
    assert_eq!(lab.shared.conns.len_of(false), cap, "the table is full");
    let frames: Vec<_> = (0..4)
        .map(|i| (0, client_tcp(45000 + i, tk::SYN, b"")))
        .collect();
    let [_, out] = lab.burst_both(&frames);
    assert!(out.is_empty());
    assert_eq!(lab.shared.counters[0].dropped(DropReason::TableFull), 4);
    assert_eq!(lab.new_conns(), 0);
    for n in 1..=3 {
        assert_eq!(lab.counts(n), (0, 0), "server {n}");
    }
}
