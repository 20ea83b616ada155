//! Prometheus metrics: the [`Snapshot`] in the text exposition format 0.0.4, served at
//! `GET /metrics` by the HTTP endpoint (`crate::http`, which also serves the status page).
//!
//! Names follow Prometheus conventions: counters end in `_total`, every family has its `# HELP`
//! and `# TYPE` lines and its samples together. Services are labelled by name, protocol, VIP
//! and port; real servers add `real="address:port"` (IPv6 in brackets), so a series survives a
//! reload as long as the service and server do (as IPVS keys them).

mod cluster;

use crate::snapshot::{RealSnapshot, ServiceSnapshot, Snapshot};
use std::fmt::Write as _;
use std::net::SocketAddr;

pub use crate::http::{
    serve, serve_listener, serve_rendered, SnapshotSource, MAX_WAITING, REQUEST_TIME,
};

/// Content type of the text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut e = Exposition::default();
    let version = [("version", s.version.clone())];
    e.family("uvs_info", "uvs build information.", Kind::Gauge)
        .sample(&version, 1u64);
    e.family(
        "uvs_tables_generation",
        "Tables generation: increments on every reload or admin change (and per-pool health change of a layer 7 service).",
        Kind::Gauge,
    )
    .sample(&[], s.generation);
    e.family(
        "uvs_conn_table_entries",
        "Entries in the connection table, IPv4 and IPv6 together.",
        Kind::Gauge,
    )
    .sample(&[], s.conn_count as u64);
    e.family(
        "uvs_conn_table_capacity",
        "Configured capacity of the connection table (conn_table.capacity): IPv4 and IPv6 \
         each have a table this size.",
        Kind::Gauge,
    )
    .sample(&[], s.conn_capacity as u64);
    e.family(
        "uvs_conn_table_dropped_total",
        "Entries the drop_entry defence removed to make room in a table at least 7/8 full: \
         half-open TCP; UDP, ICMP and mh/sh services' TCP flows idle for 60 s; persistence \
         templates left unused.",
        Kind::Counter,
    )
    .sample(&[], s.conn_dropped);
    if !s.attached_again.is_empty() {
        let mut f = e.family(
            "uvs_interface_attached_again_total",
            "Times uvsd attached to the interface again after it was removed and made again \
             (a veth's peer recreated, a container's network restarted): its XDP program and \
             AF_XDP sockets replaced in place, the connections kept.",
            Kind::Counter,
        );
        for (iface, n) in &s.attached_again {
            f.sample(&[("interface", iface.clone())], *n);
        }
    }
    if !s.unclaimed.is_empty() {
        let mut f = e.family(
            "uvs_interface_unclaimed_packets_total",
            "Frames the interface's XDP program found addressed to uvs (a VIP, a local \
             address, a real server's answer) but had no worker's socket for on the queue they \
             arrived on, and gave to the kernel unbalanced: the interface has more queues than \
             uvsd serves, or a worker stands by (uvs_worker_standing_by).",
            Kind::Counter,
        );
        for (iface, n) in &s.unclaimed {
            f.sample(&[("interface", iface.clone())], *n);
        }
    }
    if !s.fast_path.is_empty() {
        let mut f = e.family(
            "uvs_fast_path_packets_total",
            "Packets (IPv4 and IPv6) the kernel fast path (workers.kernel_fast_path) rewrote \
             in the XDP program and gave to the kernel to forward, by the interface they \
             arrived on: established packets that never reached a worker.",
            Kind::Counter,
        );
        for (iface, n) in &s.fast_path {
            f.sample(&[("interface", iface.clone())], *n);
        }
        let mut f = e.family(
            "uvs_fast_path_sent_packets_total",
            "Of uvs_fast_path_packets_total, the packets the interface's TC program sent on \
             by uvs's own routes, past the kernel's IP forwarding; the rest the kernel \
             forwarded (no route of uvs's, larger than the route's MTU, or no TCX).",
            Kind::Counter,
        );
        for (iface, n) in &s.fast_path_sent {
            f.sample(&[("interface", iface.clone())], *n);
        }
    }

    let svc_labels: Vec<Labels> = s.services.iter().map(service_labels).collect();
    let services = || s.services.iter().zip(&svc_labels);
    type SvcValue = fn(&ServiceSnapshot) -> u64;
    let service_families: [(&str, &str, Kind, SvcValue); 7] = [
        (
            "uvs_service_connections_total",
            "Connections scheduled by the virtual service.",
            Kind::Counter,
            |v| v.traffic.conns,
        ),
        (
            "uvs_service_packets_in_total",
            "Packets from clients to the virtual service.",
            Kind::Counter,
            |v| v.traffic.packets_in,
        ),
        (
            "uvs_service_packets_out_total",
            "Packets from real servers back to clients.",
            Kind::Counter,
            |v| v.traffic.packets_out,
        ),
        (
            "uvs_service_bytes_in_total",
            "Bytes from clients to the virtual service.",
            Kind::Counter,
            |v| v.traffic.bytes_in,
        ),
        (
            "uvs_service_bytes_out_total",
            "Bytes from real servers back to clients.",
            Kind::Counter,
            |v| v.traffic.bytes_out,
        ),
        (
            "uvs_service_active_connections",
            "Active (established) connections over the service's real servers.",
            Kind::Gauge,
            |v| v.reals.iter().map(|r| u64::from(r.active)).sum(),
        ),
        (
            "uvs_service_inactive_connections",
            "Inactive connections over the service's real servers.",
            Kind::Gauge,
            |v| v.reals.iter().map(|r| u64::from(r.inactive)).sum(),
        ),
    ];
    for (name, help, kind, value) in service_families {
        let mut f = e.family(name, help, kind);
        for (svc, labels) in services() {
            f.sample(labels, value(svc));
        }
    }

    let real_labels: Vec<(Labels, &RealSnapshot)> = services()
        .flat_map(|(svc, labels)| svc.reals.iter().map(move |r| (real_labels(labels, r), r)))
        .collect();
    type RealValue = fn(&RealSnapshot) -> u64;
    let real_families: [(&str, &str, Kind, RealValue); 10] = [
        (
            "uvs_real_connections_total",
            "Connections scheduled to the real server.",
            Kind::Counter,
            |r| r.traffic.conns,
        ),
        (
            "uvs_real_packets_in_total",
            "Packets forwarded to the real server.",
            Kind::Counter,
            |r| r.traffic.packets_in,
        ),
        (
            "uvs_real_packets_out_total",
            "Packets from the real server back to clients.",
            Kind::Counter,
            |r| r.traffic.packets_out,
        ),
        (
            "uvs_real_bytes_in_total",
            "Bytes forwarded to the real server.",
            Kind::Counter,
            |r| r.traffic.bytes_in,
        ),
        (
            "uvs_real_bytes_out_total",
            "Bytes from the real server back to clients.",
            Kind::Counter,
            |r| r.traffic.bytes_out,
        ),
        (
            "uvs_real_active_connections",
            "Active (established) connections of the real server (IPVS ActiveConn).",
            Kind::Gauge,
            |r| u64::from(r.active),
        ),
        (
            "uvs_real_inactive_connections",
            "Inactive connections of the real server (IPVS InActConn).",
            Kind::Gauge,
            |r| u64::from(r.inactive),
        ),
        (
            "uvs_real_up",
            "1 if the real server passes its health check (or has none), else 0.",
            Kind::Gauge,
            |r| u64::from(r.health_up),
        ),
        (
            "uvs_real_weight",
            "Weight of the real server in effect: configured, scaled by its agent's percentage (0 = quiesced or drained).",
            Kind::Gauge,
            |r| u64::from(r.weight),
        ),
        (
            "uvs_real_overloaded",
            "1 while the real server is above its upper connection threshold, else 0.",
            Kind::Gauge,
            |r| u64::from(r.overloaded),
        ),
    ];
    for (name, help, kind, value) in real_families {
        let mut f = e.family(name, help, kind);
        for (labels, r) in &real_labels {
            f.sample(labels, value(r));
        }
    }
    // What the feedback schedulers read, for the real servers a check has measured (a
    // missing sample is "not known", where 0 would read as the fastest, idlest server).
    type Feedback = fn(&RealSnapshot) -> f64;
    let feedback_families: [(&'static str, &str, Feedback); 2] = [
        (
            "uvs_real_response_time_seconds",
            "Smoothed health-check time of the real server (a failed check counts as its timeout): what the fastest scheduler compares.",
            |r| f64::from(r.response_time_us) / 1e6,
        ),
        (
            "uvs_real_load",
            "Load the real server's check reports (0 idle, 1 saturated), smoothed and faded out when reports stop: what the load scheduler reads.",
            |r| f64::from(r.load) / 1000.0,
        ),
    ];
    for (name, help, value) in feedback_families {
        let mut f = e.family(name, help, Kind::Gauge);
        for (labels, r) in real_labels.iter().filter(|(_, r)| r.response_time_us > 0) {
            f.sample(labels, value(r));
        }
    }

    let mut f = e.family(
        "uvs_drops_total",
        "Packets dropped by the dataplane, by reason.",
        Kind::Counter,
    );
    for (reason, n) in &s.drops {
        f.sample(&[("reason", reason.clone())], *n);
    }

    if !s.layer7_pools.is_empty() {
        let mut f = e.family(
            "uvs_layer7_pool_hits_total",
            "Layer 7: connections a pool took (its rules' hits, and the default pool's).",
            Kind::Counter,
        );
        for p in &s.layer7_pools {
            f.sample(
                &[("service", p.service.clone()), ("pool", p.pool.clone())],
                p.hits,
            );
        }
        let mut f = e.family(
            "uvs_layer7_pool_real_up",
            "Layer 7: 1 if the real server is up for the pool; 0 while it is down by its own health (uvs_real_up 0, which holds for every pool) or fails a check that decides for this pool only.",
            Kind::Gauge,
        );
        for p in &s.layer7_pools {
            for r in &p.reals {
                f.sample(
                    &[
                        ("service", p.service.clone()),
                        ("pool", p.pool.clone()),
                        ("real", SocketAddr::new(r.address, r.port).to_string()),
                    ],
                    u64::from(r.up),
                );
            }
        }
    }

    if let Some(y) = &s.sync {
        cluster::sync_families(&mut e, y);
    }
    if let Some(n) = &s.node {
        cluster::node_families(&mut e, n);
    }
    if let Some(c) = &s.cluster {
        cluster::role_families(&mut e, c);
    }
    if let Some(l) = &s.client_lookup {
        let mut f = e.family(
            "uvs_client_lookup_answers_total",
            "Client lookups answered, by result (found: the client's address; unknown: no such connection).",
            Kind::Counter,
        );
        f.sample(&[("result", "found".to_string())], l.found);
        f.sample(&[("result", "unknown".to_string())], l.unknown);
        let mut f = e.family(
            "uvs_client_lookup_refused_total",
            "Client lookup requests refused without an answer, by reason.",
            Kind::Counter,
        );
        for (reason, n) in &l.refused {
            f.sample(&[("reason", reason.clone())], *n);
        }
    }

    let worker_labels: Vec<Labels> = s
        .workers
        .iter()
        .map(|w| {
            let core = w.core.map_or_else(|| "none".to_string(), |c| c.to_string());
            vec![("worker", w.id.to_string()), ("core", core)]
        })
        .collect();
    type WorkerValue = fn(&crate::snapshot::WorkerSnapshot) -> u64;
    let worker_families: [(&str, &str, WorkerValue); 25] = [
        (
            "uvs_worker_rx_packets_total",
            "Packets received by the worker.",
            |w| w.rx_packets,
        ),
        (
            "uvs_worker_tx_packets_total",
            "Packets transmitted by the worker.",
            |w| w.tx_packets,
        ),
        (
            "uvs_worker_rx_bytes_total",
            "Bytes received by the worker.",
            |w| w.rx_bytes,
        ),
        (
            "uvs_worker_tx_bytes_total",
            "Bytes transmitted by the worker.",
            |w| w.tx_bytes,
        ),
        (
            "uvs_worker_slow_path_total",
            "Packets the worker handed to the slow path (ARP, NDP, ICMP, ...).",
            |w| w.slow_path,
        ),
        (
            "uvs_worker_new_connections_total",
            "Connections the worker scheduled.",
            |w| w.new_conns,
        ),
        (
            "uvs_worker_reused_connections_total",
            "New connections scheduled afresh over an old entry of their tuple (conn_reuse_mode, or its real server down).",
            |w| w.reused_conns,
        ),
        (
            "uvs_worker_hash_adopted_total",
            "Mid-flow packets of unknown flows adopted by a consistent-hash scheduler (mh, sh).",
            |w| w.hash_adopted,
        ),
        (
            "uvs_worker_flow_cache_total",
            "Established packets forwarded from the worker's flow cache (its record of the flow's earlier packet), without the connection-table lookup.",
            |w| w.flow_cache,
        ),
        (
            "uvs_worker_class_replays_total",
            "Established client-to-server NAT packets forwarded from the worker's record of their connection's class (service, real server, addresses and ports) once the connection-table lookup found them, without the rest of the full path (tables of 2^18 entries or more).",
            |w| w.class_replays,
        ),
        (
            "uvs_worker_burst_lookups_total",
            "Packets whose connection lookup was prepared with their burst, buckets and entries prefetched ahead (tables of 2^18 entries or more).",
            |w| w.burst_lookups,
        ),
        (
            "uvs_worker_sleeps_total",
            "Times the worker slept in poll(2) while idle (adaptive polling).",
            |w| w.sleeps,
        ),
        (
            "uvs_synproxy_cookies_sent_total",
            "SYN proxy: SYN-ACKs carrying a SYN cookie sent to clients.",
            |w| w.synproxy.cookies_sent,
        ),
        (
            "uvs_synproxy_cookies_valid_total",
            "SYN proxy: client ACKs whose cookie was valid (connections opened).",
            |w| w.synproxy.cookies_valid,
        ),
        (
            "uvs_synproxy_spliced_total",
            "SYN proxy: handshakes the real server completed (connections spliced).",
            |w| w.synproxy.spliced,
        ),
        (
            "uvs_synproxy_syn_retransmits_total",
            "SYN proxy: SYNs retransmitted to real servers that had not answered.",
            |w| w.synproxy.syn_retransmits,
        ),
        (
            "uvs_synproxy_failures_total",
            "SYN proxy: clients reset because their real server refused or never answered.",
            |w| w.synproxy.failures,
        ),
        (
            "uvs_synproxy_redispatched_total",
            "SYN proxy: connections a real server refused that went to another server instead.",
            |w| w.synproxy.redispatched,
        ),
        (
            "uvs_synproxy_handed_over_total",
            "SYN proxy: refusals received for a connection whose SYN another worker sent, handed to it.",
            |w| w.synproxy.handed_over,
        ),
        (
            "uvs_synproxy_untracked_syns_total",
            "SYN proxy: SYNs sent to a real server without a retransmission copy (the worker's slot was taken).",
            |w| w.synproxy.untracked_syns,
        ),
        (
            "uvs_synproxy_held_total",
            "SYN proxy: client segments held until their real server answered, then forwarded.",
            |w| w.synproxy.held,
        ),
        (
            "uvs_synproxy_proxy_headers_total",
            "SYN proxy: PROXY protocol v2 headers sent to real servers (proxy_protocol: v2).",
            |w| w.synproxy.proxy_headers,
        ),
        (
            "uvs_synproxy_proxy_resent_total",
            "SYN proxy: PROXY protocol v2 headers sent again because the real server had not received them.",
            |w| w.synproxy.proxy_resent,
        ),
        (
            "uvs_layer7_incomplete_total",
            "Layer 7: first requests uvs cannot read whole (more headers than it reads, or HTTP/2 with prior knowledge), sent to the default pool.",
            |w| w.synproxy.layer7_incomplete,
        ),
        (
            "uvs_layer7_replayed_total",
            "Layer 7: request heads received over several segments by uvs and replayed to their real server.",
            |w| w.synproxy.layer7_replayed,
        ),
    ];
    for (name, help, value) in worker_families {
        let mut f = e.family(name, help, Kind::Counter);
        for (w, labels) in s.workers.iter().zip(&worker_labels) {
            f.sample(labels, value(w));
        }
    }
    let worker_gauges: [(&str, &str, WorkerValue); 3] = [
        (
            "uvs_worker_standing_by",
            "1 while the worker stands by: an interface was made again with fewer queues than \
             the workers, without this worker's queue; it serves nothing until the interface \
             has it again (the other workers serve on).",
            |w| u64::from(w.standing_by),
        ),
        (
            "uvs_layer7_pending_clients",
            "Layer 7: clients whose request head uvs holds (received in part, or replayed and not yet acknowledged by the server).",
            |w| w.synproxy.layer7_pending,
        ),
        (
            "uvs_layer7_pending_bytes",
            "Layer 7: bytes of request heads uvs holds.",
            |w| w.synproxy.layer7_pending_bytes,
        ),
    ];
    for (name, help, value) in worker_gauges {
        let mut f = e.family(name, help, Kind::Gauge);
        for (w, labels) in s.workers.iter().zip(&worker_labels) {
            f.sample(labels, value(w));
        }
    }
    let mut f = e.family(
        "uvs_worker_tunnelled_packets_total",
        "TUN packets the worker encapsulated, by tunnel type (ipip, gue, gre).",
        Kind::Counter,
    );
    for (w, labels) in s.workers.iter().zip(&worker_labels) {
        for (name, n) in uvs_dataplane::TunEncap::NAMES.iter().zip(w.tunnelled) {
            let mut l = labels.clone();
            l.push(("type", (*name).to_string()));
            f.sample(&l, n);
        }
    }
    let mut f = e.family(
        "uvs_worker_busy_ratio",
        "Share of the worker's polls that found packets (0..1): its load.",
        Kind::Gauge,
    );
    for (w, labels) in s.workers.iter().zip(&worker_labels) {
        f.sample(labels, w.busy_ratio);
    }
    e.out
}

type Labels = Vec<(&'static str, String)>;

fn service_labels(s: &ServiceSnapshot) -> Labels {
    vec![
        ("service", s.name.clone()),
        ("protocol", s.protocol.clone()),
        ("vip", s.vip.to_string()),
        ("port", s.port.to_string()),
    ]
}

fn real_labels(service: &Labels, r: &RealSnapshot) -> Labels {
    let mut l = service.clone();
    l.push(("real", SocketAddr::new(r.address, r.port).to_string()));
    l.push(("forward", r.forward.clone()));
    l
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its HELP and TYPE lines. Samples follow until the next family.
    fn family(&mut self, name: &'static str, help: &str, kind: Kind) -> Family<'_> {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name,
        }
    }
}

struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&'static str, String)], value: impl Value) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write(self.out);
        self.out.push('\n');
        self
    }
}

trait Value {
    fn write(self, out: &mut String);
}

impl Value for u64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    /// Go's `ParseFloat` spellings for the non-finite values, as the format requires.
    fn write(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// Label values escape backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("plain"), "plain");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn float_spellings() {
        let mut s = String::new();
        for v in [0.25, 1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            v.write(&mut s);
            s.push(' ');
        }
        assert_eq!(s, "0.25 1 NaN +Inf -Inf ");
    }
}
