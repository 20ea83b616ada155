//! Differential: the same frames through two real `Worker`s on the same tables, one looking
//! connections up a burst at a time (`Worker::set_burst_lookups`: prepared lookups, bursts
//! received ahead, new flows staged and stored at the burst's end; `worker.rs`,
//! `pipeline/staged.rs`) and one frame by frame. The input format is the `pipeline`
//! target's (src/lib.rs), its records grouped into polls: a record that moves the clock
//! starts a new poll, so a poll often takes many frames of both ports, and may take more
//! than a burst.
//!
//! The burst side uses the flow cache's class records alone (`Worker::set_flow_records`),
//! the frame-by-frame side its flow records first, as uvsd does.
//!
//! The burst path promises that what a frame sees does not change, only the order in
//! which frames of different flows leave. After every poll the two must agree on: the
//! frames each port sent (as multisets), every counter the fuzz input can move, and the
//! number of connections in the table.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use uvs_dataplane::counters::WorkerCounters;
use uvs_dataplane::{lab, Shared, TablesBuilder, Worker};
use uvs_port::MemPort;

/// Room for every flow an input can open: neither table refuses a flow for want of room
/// (where a staged insert and an immediate one could decide differently).
const CONN_CAPACITY: usize = 4096;

/// Frames a port holds before a poll; a longer group is polled in parts, the same way in
/// both.
const SLOTS: usize = 96;

struct Side {
    shared: Arc<Shared>,
    w: Worker<MemPort>,
}

impl Side {
    fn new(table: u8, burst: bool) -> Side {
        let spec = uvs_dataplane_fuzz::spec(table);
        let tables = TablesBuilder::build(&spec, None).expect("the lab's tables build");
        let shared = Arc::new(Shared::new(tables, CONN_CAPACITY, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", SLOTS), MemPort::new("server", SLOTS)];
        let mut w = Worker::new(0, ports, shared.clone());
        w.set_burst_lookups(burst);
        // The burst side forwards from class records alone (its frames that may be
        // replayed are read ahead at fixed offsets, not parsed), the other side from flow
        // records first: the same frames must leave either way.
        w.set_flow_records(!burst);
        Side { shared, w }
    }

    /// Polls once: (frames taken, each port's sent frames sorted).
    fn poll(&mut self) -> (usize, Vec<Vec<Vec<u8>>>) {
        let n = self.w.poll();
        let out = self
            .w
            .ports
            .iter_mut()
            .map(|p| {
                let mut v = p.take_tx();
                v.sort();
                v
            })
            .collect();
        (n, out)
    }
}

/// Every counter a frame of the input can move (the SYN proxy is not configured).
fn counters(c: &WorkerCounters) -> Vec<(&'static str, u64)> {
    let mut v = vec![
        ("rx_packets", c.rx_packets.get()),
        ("rx_bytes", c.rx_bytes.get()),
        ("tx_packets", c.tx_packets.get()),
        ("tx_bytes", c.tx_bytes.get()),
        ("slow_path", c.slow_path.get()),
        ("new_conns", c.new_conns.get()),
        ("reused_conns", c.reused_conns.get()),
        ("hash_adopted", c.hash_adopted.get()),
    ];
    v.extend(c.tunnelled.iter().map(|t| ("tunnelled", t.get())).chain(
        (0..c.drops.len()).map(|i| (uvs_dataplane::DropReason::name_of(i), c.drops[i].get())),
    ));
    v
}

fn compare(burst: &mut Side, frame: &mut Side, at: usize) {
    let (nb, ob) = burst.poll();
    let (nf, of) = frame.poll();
    assert_eq!(nb, nf, "poll {at}: frames taken");
    for (port, (b, f)) in ob.iter().zip(&of).enumerate() {
        assert!(
            b == f,
            "poll {at}: port {port} sent {} frames in burst mode, {} frame by frame \
             (or different ones)",
            b.len(),
            f.len()
        );
    }
    assert_eq!(
        counters(&burst.shared.counters[0]),
        counters(&frame.shared.counters[0]),
        "poll {at}: counters"
    );
    assert_eq!(
        burst.shared.conns.len(),
        frame.shared.conns.len(),
        "poll {at}: connections"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((table, records)) = uvs_dataplane_fuzz::decode(data) else {
        return;
    };
    let mut burst = Side::new(table, true);
    let mut frame = Side::new(table, false);
    let mut polls = 0;
    for r in records {
        if r.advance_s > 0 {
            compare(&mut burst, &mut frame, polls);
            polls += 1;
            for s in [&burst, &frame] {
                s.shared.clock.advance(r.advance_s);
            }
        }
        let mut pushed = burst.w.ports[r.port].push_rx(r.frame);
        assert_eq!(pushed, frame.w.ports[r.port].push_rx(r.frame));
        if !pushed {
            // The port is full (or the frame longer than a buffer): poll, then once more.
            compare(&mut burst, &mut frame, polls);
            polls += 1;
            pushed = burst.w.ports[r.port].push_rx(r.frame);
            assert_eq!(pushed, frame.w.ports[r.port].push_rx(r.frame));
        }
    }
    compare(&mut burst, &mut frame, polls);
});
