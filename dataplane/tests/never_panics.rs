//! Whatever arrives, the pipeline never panics and accounts for every frame: each one
//! is forwarded, answered by the slow path, held for a neighbour, or dropped and counted.

use proptest::prelude::*;
use std::sync::Arc;
use uvs_dataplane::lab;
use uvs_dataplane::{Method, Shared, TablesBuilder, Worker};
use uvs_port::MemPort;
use uvs_sched::SchedulerKind;
use uvs_testkit as tk;

fn valid_frames() -> Vec<Vec<u8>> {
    let c4: std::net::IpAddr = lab::CLIENT4.parse().unwrap();
    let v4: std::net::IpAddr = lab::VIP4.parse().unwrap();
    let c6: std::net::IpAddr = lab::CLIENT6.parse().unwrap();
    let v6: std::net::IpAddr = lab::VIP6.parse().unwrap();
    vec![
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            c4,
            1234,
            v4,
            80,
            tk::SYN,
            b"",
        ),
        tk::tcp(
            lab::CLIENT_MAC,
            lab::LB0_MAC,
            c6,
            1234,
            v6,
            80,
            tk::SYN,
            b"x",
        ),
        tk::udp(lab::CLIENT_MAC, lab::LB0_MAC, c4, 1234, v4, 53, b"q"),
        tk::udp(lab::CLIENT_MAC, lab::LB0_MAC, c6, 1234, v6, 53, b"q"),
        syn_with_options(),
    ]
}

/// A SYN with the options a SYN proxy reads (MSS, SACK-permitted, timestamps, window
/// scale), for mutations of its options area.
fn syn_with_options() -> Vec<u8> {
    use etherparse::TcpOptionElement as O;
    let b = etherparse::PacketBuilder::ethernet2(lab::CLIENT_MAC, lab::LB0_MAC)
        .ipv4([198, 18, 0, 2], [198, 18, 100, 1], 64)
        .tcp(1234, 80, 1000, 64240)
        .syn()
        .options(&[
            O::MaximumSegmentSize(1460),
            O::SelectiveAcknowledgementPermitted,
            O::Timestamp(1, 0),
            O::Noop,
            O::WindowScale(7),
        ])
        .unwrap();
    let mut out = Vec::new();
    b.write(&mut out, b"").unwrap();
    out
}

fn run(
    frames: &[Vec<u8>],
    method: Method,
    verify_l4_checksums: bool,
    syn_proxy: bool,
    proxy_protocol: bool,
) {
    let mut spec = lab::spec(method, SchedulerKind::Wlc, 1);
    for s in &mut spec.services {
        s.syn_proxy = syn_proxy && s.key.proto == 6;
        s.proxy_protocol = s.syn_proxy && proxy_protocol;
    }
    let tables = TablesBuilder::build(&spec, None).unwrap();
    let shared = Arc::new(Shared::new(tables, 4096, 1));
    shared
        .verify_l4_checksums
        .store(verify_l4_checksums, std::sync::atomic::Ordering::Relaxed);
    lab::learn_neighbours(&shared.neigh, 0);
    let mut w = Worker::new(
        0,
        vec![MemPort::new("c", 512), MemPort::new("s", 512)],
        shared.clone(),
    );
    let mut pushed = 0u64;
    for (i, f) in frames.iter().enumerate() {
        if w.ports[i % 2].push_rx(f) {
            pushed += 1;
        }
    }
    while w.poll() > 0 {}
    // Frames waiting for a neighbour that never answers are dropped and counted after
    // their retries (answers to a mutated source address wait so).
    for _ in 0..5 {
        shared.clock.advance(1);
        w.poll();
    }
    let c = &shared.counters[0];
    assert_eq!(c.rx_packets.get(), pushed);
    let forwarded = w.ports[0].take_tx().len() + w.ports[1].take_tx().len();
    // Slow-path replies, ARP/NS requests and retransmitted SYNs are transmitted too.
    assert!(
        forwarded as u64 + c.total_drops() >= pushed - c.slow_path.get(),
        "frames unaccounted for: rx {pushed}, out {forwarded}, drops {}, slow {}",
        c.total_drops(),
        c.slow_path.get()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_bytes(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..40),
                    method in prop::sample::select(vec![Method::Nat, Method::Dr, Method::Tun, Method::FullNat])) {
        run(&frames, method, true, false, false);
    }

    /// A mutated port or address also breaks the L4 checksum; with verification off as
    /// well, such frames still reach the lookup and the rewrites.
    #[test]
    fn mutated_valid_frames(seed in prop::collection::vec((0usize..5, 0usize..120, any::<u8>(), 0usize..130), 1..40),
                            method in prop::sample::select(vec![Method::Nat, Method::Dr, Method::Tun, Method::FullNat]),
                            verify in any::<bool>()) {
        let base = valid_frames();
        let frames: Vec<Vec<u8>> = seed.iter().map(|(which, at, byte, cut)| {
            let mut f = base[*which].clone();
            let at = at % f.len();
            f[at] = *byte;
            f.truncate((*cut).max(1).min(f.len()));
            f
        }).collect();
        run(&frames, method, verify, false, false);
    }

    /// The same with the SYN proxy on the TCP services (NAT and FullNAT), with or without
    /// PROXY v2 headers: SYNs are answered from their options, mutated options included.
    #[test]
    fn mutated_frames_through_the_syn_proxy(seed in prop::collection::vec((0usize..5, 0usize..120, any::<u8>(), 0usize..130), 1..40),
                                            method in prop::sample::select(vec![Method::Nat, Method::FullNat]),
                                            pp in any::<bool>(),
                                            raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..10)) {
        let base = valid_frames();
        let mut frames: Vec<Vec<u8>> = seed.iter().map(|(which, at, byte, cut)| {
            let mut f = base[*which].clone();
            let at = at % f.len();
            f[at] = *byte;
            f.truncate((*cut).max(1).min(f.len()));
            f
        }).collect();
        frames.extend(raw);
        run(&frames, method, false, true, pp);
    }
}
