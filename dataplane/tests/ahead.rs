//! Bursts received ahead (`worker.rs`, `BURSTS_PER_POLL`): a worker whose burst came full
//! receives the port's next burst before processing the one in hand (in burst-lookup mode
//! it also parses it and prepares its lookups). What must not change: every frame is
//! forwarded or counted, one flow's frames leave in order, a lookup prepared ahead still
//! sees the flows the burst before it opened, and nothing waits for traffic that has not
//! come. Each test runs with a large table (burst-lookup mode) and a small one (per frame).

mod lab_worker;

use uvs_dataplane::lab;
use uvs_dataplane::worker::{BATCH_LOOKUP_MIN_CAPACITY, BURST, BURSTS_PER_POLL};
use uvs_dataplane::Method;
use uvs_sched::SchedulerKind;
use uvs_testkit::{self as tk, check_frame};

use lab_worker::{client_tcp, server_tcp, Lab};

/// NAT over the lab's three servers; `big`: a table in burst-lookup mode.
fn lab(big: bool) -> Lab {
    let spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    // Room on both ports for more than a poll's bursts.
    let slots = 2 * BURSTS_PER_POLL * BURST;
    let capacity = if big {
        BATCH_LOOKUP_MIN_CAPACITY / 2
    } else {
        1024
    };
    let lab = Lab::with_slots(spec, capacity, slots);
    assert_eq!(
        lab.shared.conns.capacity() >= BATCH_LOOKUP_MIN_CAPACITY,
        big
    );
    lab
}

/// Queues `frames` on the client port, polls once; (frames the poll took, what left on
/// the server port).
fn poll_once(lab: &mut Lab, frames: &[Vec<u8>]) -> (usize, Vec<Vec<u8>>) {
    for f in frames {
        assert!(lab.w.ports[0].push_rx(f));
    }
    let n = lab.w.poll();
    (n, lab.w.ports[1].take_tx())
}

fn drops(lab: &Lab) -> u64 {
    lab.shared.counters[0].drops.iter().map(|d| d.get()).sum()
}

/// (source port, payload length) of a forwarded segment.
fn id(f: &[u8]) -> (u16, usize) {
    let c = check_frame(f).unwrap();
    (c.sport, f.len())
}

#[test]
fn flows_opened_in_one_burst_are_found_by_the_burst_parsed_ahead_of_it() {
    for big in [true, false] {
        opened_then_found(big);
    }
}

fn opened_then_found(big: bool) {
    let mut lab = lab(big);
    // Three full bursts and a part: 12 flows, each a SYN then segments of growing size.
    // The SYNs sit at the end of the first burst and the start of the second, so the
    // segments right behind them are in a burst that was parsed (and its lookups
    // prepared) before their SYN's burst stored the flow.
    let flows: Vec<u16> = (0..12).map(|k| 44000 + k).collect();
    let mut frames = Vec::new();
    let mut sent = Vec::new();
    for i in 0..(3 * BURST + 7) {
        let syn_at = BURST - 6;
        let f = if i < syn_at {
            // Filler ahead of the SYNs: one more flow of its own.
            let f = client_tcp(45000, if i == 0 { tk::SYN } else { tk::ACK }, &[7; 3]);
            sent.push((45000, i));
            f
        } else if i < syn_at + flows.len() {
            sent.push((flows[i - syn_at], 0));
            client_tcp(flows[i - syn_at], tk::SYN, b"")
        } else {
            let k = (i - syn_at) % flows.len();
            let round = (i - syn_at) / flows.len();
            sent.push((flows[k], round));
            client_tcp(flows[k], tk::ACK, &vec![b'x'; round])
        };
        frames.push(f);
    }
    let (n, out) = poll_once(&mut lab, &frames);
    assert_eq!(
        n,
        frames.len(),
        "one poll takes all of them (≤ {BURSTS_PER_POLL} bursts)"
    );
    assert_eq!(out.len(), frames.len(), "every frame forwarded");
    assert_eq!(drops(&lab), 0);
    assert_eq!(lab.shared.counters[0].rx_packets.get(), frames.len() as u64);
    assert_eq!(
        lab.shared.conns.len(),
        flows.len() + 1,
        "one entry per flow"
    );
    assert_eq!(
        lab.shared.counters[0].new_conns.get(),
        flows.len() as u64 + 1
    );
    // Per flow: as many segments as were sent, growing (the order they were sent in), and
    // all to one real server.
    for &sport in flows.iter().chain([45000].iter()) {
        let seen: Vec<_> = out.iter().filter(|f| id(f).0 == sport).collect();
        let want = sent.iter().filter(|(s, _)| *s == sport).count();
        assert_eq!(seen.len(), want, "flow {sport}");
        let lens: Vec<usize> = seen.iter().map(|f| f.len()).collect();
        if sport != 45000 {
            assert!(
                lens.windows(2).all(|w| w[0] < w[1]),
                "flow {sport} in order: {lens:?}"
            );
        }
        let dst = check_frame(seen[0]).unwrap().dst;
        assert!(seen.iter().all(|f| check_frame(f).unwrap().dst == dst));
    }
}

#[test]
fn a_poll_takes_at_most_its_bursts_and_the_next_poll_the_rest() {
    for big in [true, false] {
        at_most_its_bursts(big);
    }
}

fn at_most_its_bursts(big: bool) {
    let mut lab = lab(big);
    // Open 40 flows, then send (BURSTS_PER_POLL + 1) full bursts of their segments.
    let opened: Vec<Vec<u8>> = (0..40)
        .map(|k| client_tcp(46000 + k, tk::SYN, b""))
        .collect();
    let (n, out) = poll_once(&mut lab, &opened);
    assert_eq!((n, out.len()), (40, 40));
    let total = (BURSTS_PER_POLL + 1) * BURST;
    let frames: Vec<Vec<u8>> = (0..total)
        .map(|i| client_tcp(46000 + (i % 40) as u16, tk::ACK, &vec![b'y'; 1 + i / 40]))
        .collect();
    let (n, first) = poll_once(&mut lab, &frames);
    assert_eq!(n, BURSTS_PER_POLL * BURST);
    assert_eq!(first.len(), n, "all it took, forwarded within the poll");
    let (n, rest) = poll_once(&mut lab, &[]);
    assert_eq!((n, rest.len()), (BURST, BURST));
    let (n, none) = poll_once(&mut lab, &[]);
    assert_eq!((n, none.len()), (0, 0));
    assert_eq!(drops(&lab), 0);
    // In order, flow by flow, across the two polls.
    let all: Vec<_> = first.iter().chain(&rest).map(|f| id(f)).collect();
    for k in 0..40u16 {
        let lens: Vec<usize> = all
            .iter()
            .filter(|(s, _)| *s == 46000 + k)
            .map(|(_, l)| *l)
            .collect();
        assert!(lens.windows(2).all(|w| w[0] < w[1]), "flow {k}: {lens:?}");
    }
    assert_eq!(lab.shared.conns.len(), 40);
}

#[test]
fn a_full_burst_with_nothing_behind_it_is_processed_at_once() {
    for big in [true, false] {
        nothing_behind(big);
    }
}

fn nothing_behind(big: bool) {
    let mut lab = lab(big);
    let frames: Vec<Vec<u8>> = (0..BURST)
        .map(|k| client_tcp(47000 + k as u16, tk::SYN, b""))
        .collect();
    let (n, out) = poll_once(&mut lab, &frames);
    assert_eq!((n, out.len()), (BURST, BURST));
    // And a full burst then a single frame: the single one comes in the same poll.
    let mut frames: Vec<Vec<u8>> = (0..BURST)
        .map(|k| client_tcp(47000 + k as u16, tk::ACK, b"a"))
        .collect();
    frames.push(client_tcp(47000, tk::ACK, b"bb"));
    let (n, out) = poll_once(&mut lab, &frames);
    assert_eq!((n, out.len()), (BURST + 1, BURST + 1));
    let of_first: Vec<usize> = out
        .iter()
        .filter(|f| id(f).0 == 47000)
        .map(|f| f.len())
        .collect();
    assert_eq!(of_first.len(), 2);
    assert!(of_first[0] < of_first[1]);
    assert_eq!(drops(&lab), 0);
}

#[test]
fn a_tuple_reused_in_one_burst_is_followed_anew_by_the_burst_parsed_ahead_of_it() {
    for big in [true, false] {
        reused_then_followed(big);
    }
}

/// The burst received ahead has its lookups prepared (in burst mode, its entries' lanes
/// kept) while the burst in front is processed. Here the last frame of that burst is a
/// SYN that reuses a closed connection's tuple: the old entry goes, a new one is stored at
/// the end of the burst. The next frame of that tuple, first in the burst ahead, must
/// follow the new entry to its real server, whatever its prepared lookup found then (a
/// kept lane whose slot another tuple took is the conntrack crate's
/// `lookup_burst_matches_single_lookups`).
fn reused_then_followed(big: bool) {
    let mut lab = lab(big);
    let dst = |f: &Vec<u8>| check_frame(f).unwrap().dst;
    // A flow to fill the bursts with, open beforehand.
    let (_, out) = poll_once(&mut lab, &[client_tcp(45000, tk::SYN, b"")]);
    let filler_real = dst(&out[0]);
    // A whole connection from 40000, closed by the client first: TIME_WAIT.
    let (_, out) = poll_once(&mut lab, &[client_tcp(40000, tk::SYN, b"")]);
    let old_real = dst(&out[0]);
    let n = (1..=3)
        .find(|&n| lab::real(n, false).to_ip() == old_real)
        .expect("a lab real server");
    for (port, f) in [
        (1, server_tcp(n, 40000, tk::SYN_ACK)),
        (0, client_tcp(40000, tk::ACK, b"")),
        (0, client_tcp(40000, tk::FIN_ACK, b"")),
        (1, server_tcp(n, 40000, tk::FIN_ACK)),
        (0, client_tcp(40000, tk::ACK, b"")),
    ] {
        lab.burst_both(&[(port, f)]);
    }
    assert_eq!(lab.shared.conns.len(), 2);
    // One poll: a full burst ending in the reusing SYN, then the burst behind it, which
    // starts with that connection's first data segment.
    let mut frames: Vec<Vec<u8>> = (0..BURST - 1)
        .map(|i| client_tcp(45000, tk::ACK, &vec![b'f'; 1 + i]))
        .collect();
    frames.push(client_tcp(40000, tk::SYN, b""));
    frames.push(client_tcp(40000, tk::ACK, b"data"));
    frames.extend((0..3).map(|i| client_tcp(45000, tk::ACK, &vec![b'g'; BURST + i])));
    let (taken, out) = poll_once(&mut lab, &frames);
    assert_eq!(
        (taken, out.len()),
        (frames.len(), frames.len()),
        "big {big}"
    );
    assert_eq!(drops(&lab), 0, "big {big}");
    let of_40000: Vec<_> = out.iter().filter(|f| id(f).0 == 40000).collect();
    assert_eq!(of_40000.len(), 2, "big {big}");
    let new_real = dst(of_40000[0]);
    assert_ne!(
        new_real, old_real,
        "big {big}: the SYN is scheduled afresh (rr)"
    );
    assert_eq!(
        dst(of_40000[1]),
        new_real,
        "big {big}: the segment behind the SYN follows the new connection"
    );
    assert!(out
        .iter()
        .filter(|f| id(f).0 == 45000)
        .all(|f| dst(f) == filler_real));
    assert_eq!(lab.shared.counters[0].reused_conns.get(), 1, "big {big}");
    assert_eq!(
        lab.shared.conns.len(),
        2,
        "big {big}: the old entry is gone"
    );
}
