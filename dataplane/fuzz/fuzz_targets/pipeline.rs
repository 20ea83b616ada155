//! Arbitrary frames through a real `Worker` and the whole pipeline on the lab's tables
//! (the input format is in src/lib.rs). Besides never panicking, every frame must be
//! accounted for by the counters, one frame per burst:
//!
//! - forwarded: one transmission counted, no drop; or, cut by TUN into fragments that fit
//!   its tunnel (`frag::Pieces`), one transmission per fragment;
//! - dropped: exactly one drop reason counted once, nothing transmitted; or, as `too_big`,
//!   `ttl_exceeded` or `tcp_not_syn`, with the ICMP error or RST that tells the sender
//!   transmitted;
//! - slow path: counted as such, plus at most one reply transmitted or one counted drop;
//! - held for a neighbour (nothing counted yet): it is released or dropped as
//!   `neighbour_unresolved` once the requests run out (once per fragment of a cut one),
//!   which the target waits for before the next frame.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use uvs_dataplane::counters::WorkerCounters;
use uvs_dataplane::frag::MAX_PIECES;
use uvs_dataplane::neigh::{MAX_TRIES, RETRY_EVERY_S};
use uvs_dataplane::{lab, DropReason, Shared, TablesBuilder, Worker};
use uvs_port::MemPort;

/// Small enough that a long input fills it (new flows are then refused and counted), and
/// cheap to set up for every input.
const CONN_CAPACITY: usize = 64;

/// Counter values before and after one burst.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Snap {
    rx: u64,
    rx_bytes: u64,
    tx: u64,
    slow: u64,
    drops: Vec<u64>,
}

impl Snap {
    fn of(c: &WorkerCounters) -> Snap {
        Snap {
            rx: c.rx_packets.get(),
            rx_bytes: c.rx_bytes.get(),
            tx: c.tx_packets.get(),
            slow: c.slow_path.get(),
            drops: c.drops.iter().map(|d| d.get()).collect(),
        }
    }

    /// (received, bytes, transmitted, slow path, drops by reason index) since `before`.
    fn since(&self, before: &Snap) -> (u64, u64, u64, u64, Vec<(usize, u64)>) {
        let drops = self
            .drops
            .iter()
            .zip(&before.drops)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i, a - b))
            .collect();
        (
            self.rx - before.rx,
            self.rx_bytes - before.rx_bytes,
            self.tx - before.tx,
            self.slow - before.slow,
            drops,
        )
    }
}

fn named(drops: &[(usize, u64)]) -> Vec<(&'static str, u64)> {
    drops
        .iter()
        .map(|&(i, n)| (DropReason::name_of(i), n))
        .collect()
}

fn take_out(w: &mut Worker<MemPort>) -> usize {
    w.ports.iter_mut().map(|p| p.take_tx().len()).sum()
}

fuzz_target!(|data: &[u8]| {
    let Some((table, records)) = uvs_dataplane_fuzz::decode(data) else {
        return;
    };
    let spec = uvs_dataplane_fuzz::spec(table);
    let tables = TablesBuilder::build(&spec, None).expect("the lab's tables build");
    let shared = Arc::new(Shared::new(tables, CONN_CAPACITY, 1));
    lab::learn_neighbours(&shared.neigh, 0);
    let ports = vec![MemPort::new("client", 32), MemPort::new("server", 32)];
    let mut w = Worker::new(0, ports, shared.clone());
    let c = &shared.counters[0];

    for r in records {
        shared.clock.advance(r.advance_s);
        if !w.ports[r.port].push_rx(r.frame) {
            // Longer than a frame buffer: a NIC would not have delivered it.
            continue;
        }
        let before = Snap::of(c);
        assert_eq!(w.poll(), 1);
        let out = take_out(&mut w);
        let (rx, rx_bytes, tx, slow, drops) = Snap::of(c).since(&before);
        assert_eq!((rx, rx_bytes), (1, r.frame.len() as u64), "received once");
        assert!(
            tx as usize <= out,
            "{tx} transmissions counted, {out} frames left"
        );
        let dropped: u64 = drops.iter().map(|d| d.1).sum();
        match (slow, tx, dropped) {
            // Forwarded, or dropped for one reason.
            (0, 1, 0) => {}
            (0, 0, 1) => {}
            // Cut into fragments that fit the tunnel.
            (0, t, 0) if (2..=1 + MAX_PIECES).contains(&(t as usize)) => {}
            // Dropped and its sender told why: too big for the tunnel or its TTL ran out
            // (ICMP), a TCP segment of no tracked connection (RST), or refused as a host
            // refuses a closed port: no service on it, or no real server to take it (RST,
            // ICMP port unreachable).
            (0, 1, 1)
                if [
                    DropReason::TooBig,
                    DropReason::TtlExceeded,
                    DropReason::NotSyn,
                    DropReason::NoService,
                    DropReason::NoRealServer,
                ]
                .iter()
                .any(|r| named(&drops) == [(DropReason::name_of(r.index()), 1)]) => {}
            // The slow path answered, had nothing to answer, or dropped it (one reason).
            (1, t, d) if t + d <= 1 => {}
            // Held for its next hop's address: nothing answers the requests, so it must end
            // as one `neighbour_unresolved` drop once they run out.
            (0, 0, 0) => {
                let held = Snap::of(c);
                for _ in 0..=MAX_TRIES {
                    shared.clock.advance(u64::from(RETRY_EVERY_S));
                    assert_eq!(w.poll(), 0);
                    take_out(&mut w);
                }
                let (_, _, tx, slow, drops) = Snap::of(c).since(&held);
                let drops = named(&drops);
                let unresolved = DropReason::name_of(DropReason::NeighbourUnresolved.index());
                assert!(
                    (tx, slow) == (0, 0)
                        && matches!(drops[..], [(name, n)] if name == unresolved
                            && n as usize <= 1 + MAX_PIECES),
                    "a held frame (or its fragments) ends as neighbour_unresolved drops: \
                     tx {tx}, slow {slow}, drops {drops:?}"
                );
            }
            _ => panic!(
                "frame not accounted for exactly once: slow {slow}, tx {tx}, drops {:?}",
                named(&drops)
            ),
        }
    }
});
