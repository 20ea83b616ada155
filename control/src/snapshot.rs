//! A plain-data picture of the running balancer, taken by the daemon from its tables and
//! counters, and rendered by `uvsadm -L`, `uvsadm top` and the metrics endpoint. Nothing
//! here touches the dataplane: the daemon fills it, the renderers only read it.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Traffic counters (sums over workers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Connections scheduled (IPVS "Conns").
    pub conns: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Per-second rates over the last sampling interval (ipvsadm `--rate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: f64,
    pub inpps: f64,
    pub outpps: f64,
    pub inbps: f64,
    pub outbps: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealSnapshot {
    pub address: IpAddr,
    pub port: u16,
    /// "Masq", "Route", "Tunnel" or "FullNat" (ipvsadm's Forward column).
    pub forward: String,
    /// A tunnelling server's type and options as `-L --tun-info` shows them (`ipip`,
    /// `gue:6080:+c`, `gre:-c`); empty for the others.
    #[serde(default)]
    pub tunnel: String,
    /// The weight in effect (configured × the agent's percentage; 0 while drained).
    pub weight: u32,
    pub active: u32,
    pub inactive: u32,
    pub health_up: bool,
    pub overloaded: bool,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// Persistence templates pointing at it (ipvsadm's PersistConn); counted only for
    /// `--persistent-conn`, else 0.
    #[serde(default)]
    pub persistent: u32,
    /// The smoothed health-check time in microseconds that `fastest` compares (0 before
    /// the first check answered, or without a check).
    #[serde(default)]
    pub response_time_us: u32,
    /// The load its check reports (0 idle … 1000 saturated), smoothed and faded out as
    /// reports stop, as `load` reads it; 0 without reports.
    #[serde(default)]
    pub load: u32,
    pub traffic: Traffic,
    pub rates: Rates,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    pub name: String,
    /// "TCP", "UDP" or "SCTP"; "FWM" for a firewall-mark service.
    pub protocol: String,
    /// For a firewall-mark service, the unspecified address of its family.
    pub vip: IpAddr,
    pub port: u16,
    /// The firewall mark of a firewall-mark service, else 0.
    #[serde(default)]
    pub fwmark: u32,
    pub scheduler: String,
    /// Scheduler flags as ipvsadm prints them (e.g. "sh-fallback,sh-port"), empty if none.
    pub flags: String,
    /// Persistence timeout in seconds, and netmask/prefix length.
    pub persistent: Option<(u32, u8)>,
    pub one_packet: bool,
    pub reals: Vec<RealSnapshot>,
    pub traffic: Traffic,
    pub rates: Rates,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerSnapshot {
    pub id: usize,
    pub core: Option<usize>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub slow_path: u64,
    pub new_conns: u64,
    /// New connections scheduled afresh over an old entry of their tuple (conn_reuse_mode).
    pub reused_conns: u64,
    /// Mid-flow packets adopted by a consistent-hash scheduler (active/active).
    pub hash_adopted: u64,
    /// Packets forwarded from the worker's flow cache.
    #[serde(default)]
    pub flow_cache: u64,
    /// Client → server NAT packets forwarded from the record of their connection's class.
    #[serde(default)]
    pub class_replays: u64,
    /// Packets whose connection lookup was prepared with their burst (large tables).
    #[serde(default)]
    pub burst_lookups: u64,
    /// Times the worker slept in poll(2) while idle (adaptive polling).
    pub sleeps: u64,
    /// TUN packets sent per encapsulation: ipip, gue, gre.
    #[serde(default)]
    pub tunnelled: [u64; 3],
    /// SYN proxy: cookie SYN-ACKs sent, valid cookies returned, handshakes the real server
    /// completed, SYNs retransmitted to real servers, clients reset (server refused or
    /// silent), SYNs sent without a retransmission copy.
    #[serde(default)]
    pub synproxy: SynProxyCounts,
    /// Share of polls that found work (0..=1): the worker's load.
    pub busy_ratio: f64,
    /// Standing by: an interface was made again without this worker's queue, and the
    /// worker serves nothing until it has it again.
    #[serde(default)]
    pub standing_by: bool,
}

/// A worker's SYN proxy counters (`WorkerSnapshot::synproxy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynProxyCounts {
    pub cookies_sent: u64,
    pub cookies_valid: u64,
    pub spliced: u64,
    pub syn_retransmits: u64,
    pub failures: u64,
    pub untracked_syns: u64,
    /// Connections a refusing real server's RST sent to another server.
    #[serde(default)]
    pub redispatched: u64,
    /// Refusals received here for another worker's connection, handed to that worker.
    #[serde(default)]
    pub handed_over: u64,
    #[serde(default)]
    pub held: u64,
    /// PROXY v2 headers sent to real servers, and those sent again.
    #[serde(default)]
    pub proxy_headers: u64,
    #[serde(default)]
    pub proxy_resent: u64,
    /// Layer 7: first requests whose head did not end in their segment (default pool).
    #[serde(default)]
    pub layer7_incomplete: u64,
    /// Layer 7 gauges: clients whose head is pending on the worker, and its bytes; and
    /// heads received over several segments and replayed.
    #[serde(default)]
    pub layer7_pending: u64,
    #[serde(default)]
    pub layer7_pending_bytes: u64,
    #[serde(default)]
    pub layer7_replayed: u64,
}

/// One connection-table entry (`uvsadm -L -c`): a connection or a persistence template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnSnapshot {
    /// "TCP", "UDP", "SCTP".
    pub protocol: String,
    /// Seconds until it expires.
    pub expires_s: u32,
    /// State name as ipvsadm prints it (ESTABLISHED, SYN_RECV, ... ; UDP for UDP).
    pub state: String,
    pub client: (IpAddr, u16),
    pub virtual_: (IpAddr, u16),
    pub real: (IpAddr, u16),
    /// FullNAT local address, when the method is FullNAT.
    pub local: Option<(IpAddr, u16)>,
    /// A persistence template rather than a connection: the client (masked to the
    /// service's netmask) with port 0, state NONE, the real server its clients go to, and
    /// the time left before it expires, as ipvsadm lists IPVS's templates.
    #[serde(default)]
    pub template: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// uvs version string for the "IP Virtual Server version" header line.
    pub version: String,
    /// Connection table capacity, `conn_table.capacity`: what each address family holds
    /// (ipvsadm prints "size=4096").
    pub conn_capacity: usize,
    /// Stored connections, both families (persistence templates included).
    pub conn_count: usize,
    /// Connections the `drop_entry` defence removed to make room.
    #[serde(default)]
    pub conn_dropped: u64,
    pub services: Vec<ServiceSnapshot>,
    pub workers: Vec<WorkerSnapshot>,
    /// Drop counters by reason name (sums over workers), only non-zero ones.
    pub drops: Vec<(String, u64)>,
    /// Tables generation (increments on every reload / admin change).
    pub generation: u64,
    /// Connection sync, when it runs.
    pub sync: Option<SyncSnapshot>,
    /// BGP announcement and drain state (`uvsadm node`).
    #[serde(default)]
    pub node: Option<crate::announce::NodeSnapshot>,
    /// Active/backup groups and their roles (`uvsadm cluster`).
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterStatus>,
    /// The client lookup service's counters, when it runs.
    #[serde(default)]
    pub client_lookup: Option<LookupSnapshot>,
    /// Connections each pool of a `layer: 7` service took (rule hits, default included).
    #[serde(default)]
    pub layer7_pools: Vec<PoolHits>,
    /// With `workers.kernel_fast_path`: per interface, the frames its XDP program rewrote
    /// and gave to the kernel to forward.
    #[serde(default)]
    pub fast_path: Vec<(String, u64)>,
    /// Of those, per interface, the frames its TC program sent on by uvs's routes, past
    /// the kernel's forwarding (`uvs_fast_tc`).
    #[serde(default)]
    pub fast_path_sent: Vec<(String, u64)>,
    /// Per interface, the times uvsd attached to it again after it was made again.
    #[serde(default)]
    pub attached_again: Vec<(String, u64)>,
    /// Per interface, the frames its XDP program found addressed to uvs but had no worker's
    /// socket for on their queue, and gave to the kernel.
    #[serde(default)]
    pub unclaimed: Vec<(String, u64)>,
}

/// A pool of a `layer: 7` service and the connections it took.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolHits {
    pub service: String,
    pub pool: String,
    pub hits: u64,
    /// The pool's real servers and whether each is up for this pool.
    #[serde(default)]
    pub reals: Vec<PoolReal>,
}

/// A real server of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolReal {
    pub address: IpAddr,
    pub port: u16,
    /// Whether the pool may send to it: false while the server is down by its own health
    /// (the service's `health_up`, which holds for every pool) or fails a check that
    /// decides for this pool only (the pool's own, when it differs from the checks of the
    /// server's other pools).
    pub up: bool,
}

/// The client lookup service's counters (`client_lookup:`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupSnapshot {
    /// Requests answered with the client's address.
    pub found: u64,
    /// Requests answered "unknown" (no such connection).
    pub unknown: u64,
    /// Requests refused (not answered), by reason.
    pub refused: Vec<(String, u64)>,
}

/// The sync daemon's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSnapshot {
    pub mode: String,
    pub sent_messages: u64,
    pub sent_conns: u64,
    pub send_errors: u64,
    pub received_messages: u64,
    pub received_conns: u64,
    pub installed: u64,
    /// Messages refused whole, by reason.
    pub bad_messages: Vec<(String, u64)>,
    /// Records refused, by reason.
    pub refused: Vec<(String, u64)>,
    pub rate_limited: u64,
    /// Events the packet path could not queue (full queue).
    pub tap_dropped: u64,
    /// Milliseconds since the last message was accepted (`None`: never).
    pub last_received_age_ms: Option<u64>,
    pub peers: Vec<String>,
}
