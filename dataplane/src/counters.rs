//! Per-worker counters: written by one worker with `Relaxed` stores, cache-line padded so
//! workers never share a line, summed by control (Firecracker `SharedIncMetric`, Katran's
//! per-CPU stats).

use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::verdict::DropReason;

/// A counter only its worker writes. `add` is a load and a store, not a locked RMW.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
    /// Sets a gauge (only its worker writes it).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
    /// Zeroes the counter (ipvsadm -Z). A racing `add` by the worker may survive.
    pub fn reset(&self) {
        self.0.store(0, Relaxed);
    }
}

/// One worker's dataplane counters.
#[derive(Debug)]
pub struct WorkerCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub slow_path: Counter,
    pub new_conns: Counter,
    /// New connections that found an old entry of their tuple (closing, or its real server
    /// removed or down) and were scheduled afresh (IPVS conn_reuse_mode).
    pub reused_conns: Counter,
    /// Mid-flow TCP packets of an unknown flow adopted by a consistent-hash scheduler
    /// (mh, sh): ECMP moved the flow here; the hash picks the server every node picks.
    pub hash_adopted: Counter,
    /// Packets forwarded from the worker's flow cache (`crate::flowcache`), without the
    /// connection-table lookup.
    pub flow_cache: Counter,
    /// Client → server NAT packets forwarded from the worker's record of their
    /// connection's class (`crate::flowcache`), after the connection-table lookup.
    pub class_replays: Counter,
    /// Packets whose connection lookup was prepared with their burst (the large-table path:
    /// tables of `worker::BATCH_LOOKUP_MIN_CAPACITY` entries or more, bursts of more than
    /// one frame): buckets and entries prefetched ahead, as against one lookup at a time.
    pub burst_lookups: Counter,
    /// Polls (each up to `worker::BURSTS_PER_POLL` bursts per port).
    pub polls: Counter,
    /// Polls that received nothing: with `polls`, the worker's idle share.
    pub empty_polls: Counter,
    /// Times the worker went to sleep in poll(2) while idle (adaptive polling).
    pub sleeps: Counter,
    /// Gratuitous ARPs and unsolicited neighbour advertisements sent for VIP groups that
    /// became master.
    pub announcements: Counter,
    /// TUN packets sent per encapsulation, indexed by `TunEncap::index` (ipip, gue, gre).
    pub tunnelled: [Counter; 3],
    /// SYN proxy: SYN-ACKs with a cookie sent, cookies a client's ACK returned valid,
    /// handshakes the real server completed, SYNs retransmitted to real servers, clients
    /// reset because their server refused or never answered, and SYNs sent without a
    /// retransmission copy (the worker's table slot was taken).
    pub synproxy_cookies_sent: Counter,
    pub synproxy_cookies_valid: Counter,
    pub synproxy_spliced: Counter,
    pub synproxy_syn_retransmits: Counter,
    pub synproxy_failures: Counter,
    pub synproxy_untracked_syns: Counter,
    /// SYN proxy: connections a real server refused (RST to the SYN) that went to another
    /// server instead of the refusal reaching the client.
    pub synproxy_redispatched: Counter,
    /// SYN proxy: refusals this worker received for a connection whose SYN another worker
    /// sent, handed to that one (`synproxy::Handovers`).
    pub synproxy_handed_over: Counter,
    /// SYN proxy: early client segments held until the server answered, then forwarded.
    pub synproxy_held: Counter,
    /// SYN proxy with `proxy_protocol`: PROXY v2 headers sent to real servers, and those
    /// of them sent again (the server repeated its SYN-ACK or acknowledged only its SYN).
    pub synproxy_proxy_headers: Counter,
    pub synproxy_proxy_resent: Counter,
    /// Layer 7: first requests whose head (or ClientHello) did not end in their segment,
    /// sent to the default pool.
    pub layer7_incomplete: Counter,
    /// Layer 7 gauges ([`Counter::set`]): clients whose request head is pending on this
    /// worker (received in part, or received and not yet acknowledged by the server), and
    /// the bytes they hold.
    pub layer7_pending: Counter,
    pub layer7_pending_bytes: Counter,
    /// Layer 7: heads received over more than one segment and replayed to their server.
    pub layer7_replayed: Counter,
    pub drops: Box<[Counter]>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        Self {
            rx_packets: Counter::default(),
            rx_bytes: Counter::default(),
            tx_packets: Counter::default(),
            tx_bytes: Counter::default(),
            slow_path: Counter::default(),
            new_conns: Counter::default(),
            reused_conns: Counter::default(),
            hash_adopted: Counter::default(),
            flow_cache: Counter::default(),
            class_replays: Counter::default(),
            burst_lookups: Counter::default(),
            polls: Counter::default(),
            empty_polls: Counter::default(),
            sleeps: Counter::default(),
            announcements: Counter::default(),
            tunnelled: Default::default(),
            synproxy_cookies_sent: Counter::default(),
            synproxy_cookies_valid: Counter::default(),
            synproxy_spliced: Counter::default(),
            synproxy_syn_retransmits: Counter::default(),
            synproxy_failures: Counter::default(),
            synproxy_untracked_syns: Counter::default(),
            synproxy_redispatched: Counter::default(),
            synproxy_handed_over: Counter::default(),
            synproxy_held: Counter::default(),
            synproxy_proxy_headers: Counter::default(),
            synproxy_proxy_resent: Counter::default(),
            layer7_incomplete: Counter::default(),
            layer7_pending: Counter::default(),
            layer7_pending_bytes: Counter::default(),
            layer7_replayed: Counter::default(),
            drops: (0..DropReason::COUNT).map(|_| Counter::default()).collect(),
        }
    }
}

impl WorkerCounters {
    #[inline]
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason.index()].add(1);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].get()
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }
}

/// Counters for all workers, indexed by worker id.
pub type AllCounters = Box<[CachePadded<WorkerCounters>]>;

pub fn new_counters(workers: usize) -> AllCounters {
    (0..workers)
        .map(|_| CachePadded::new(WorkerCounters::default()))
        .collect()
}

/// Per-worker traffic counters of one service or real server.
#[derive(Default, Debug)]
pub struct TrafficStats {
    pub conns: Counter,
    pub packets_in: Counter,
    pub packets_out: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

/// `TrafficStats` for every worker; each worker writes only its own slot.
#[derive(Debug)]
pub struct PerWorkerStats(Box<[CachePadded<TrafficStats>]>);

/// Sums over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    pub conns: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl PerWorkerStats {
    pub fn new(workers: usize) -> Self {
        Self(
            (0..workers.max(1))
                .map(|_| CachePadded::default())
                .collect(),
        )
    }

    /// The slot of worker `id` (the snapshot is built for the running worker count; an
    /// out-of-range id shares the last slot rather than panicking).
    #[inline]
    pub fn worker(&self, id: usize) -> &TrafficStats {
        match self.0.get(id) {
            Some(s) => s,
            None => self.last(),
        }
    }

    #[cold]
    fn last(&self) -> &TrafficStats {
        &self.0[self.0.len() - 1]
    }

    pub fn reset(&self) {
        for s in self.0.iter() {
            for c in [
                &s.conns,
                &s.packets_in,
                &s.packets_out,
                &s.bytes_in,
                &s.bytes_out,
            ] {
                c.reset();
            }
        }
    }

    pub fn totals(&self) -> TrafficTotals {
        let mut t = TrafficTotals::default();
        for s in self.0.iter() {
            t.conns += s.conns.get();
            t.packets_in += s.packets_in.get();
            t.packets_out += s.packets_out.get();
            t.bytes_in += s.bytes_in.get();
            t.bytes_out += s.bytes_out.get();
        }
        t
    }
}
