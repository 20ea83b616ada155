//! Prometheus metrics: the [`Snapshot`] in the text exposition format 0.0.4, and a tiny
//! HTTP/1.1 endpoint serving it at `GET /metrics`.
//!
//! Names follow Prometheus conventions: counters end in `_total`, every family has its `# HELP`
//! and `# TYPE` lines and its samples together. Services are labelled by name, protocol, VIP
//! and port; real servers add `real="address:port"` (IPv6 in brackets), so a series survives a
//! reload as long as the service and server do (as IPVS keys them).

use crate::gate::{self, Ending, Limits, Refusal};
use crate::snapshot::{RealSnapshot, ServiceSnapshot, Snapshot};
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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
        "Tables generation: increments on every reload or admin change.",
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

    let mut f = e.family(
        "uvs_drops_total",
        "Packets dropped by the dataplane, by reason.",
        Kind::Counter,
    );
    for (reason, n) in &s.drops {
        f.sample(&[("reason", reason.clone())], *n);
    }

    if let Some(y) = &s.sync {
        sync_families(&mut e, y);
    }
    if let Some(n) = &s.node {
        node_families(&mut e, n);
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
    let worker_families: [(&str, &str, WorkerValue); 9] = [
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
            "uvs_worker_sleeps_total",
            "Times the worker slept in poll(2) while idle (adaptive polling).",
            |w| w.sleeps,
        ),
    ];
    for (name, help, value) in worker_families {
        let mut f = e.family(name, help, Kind::Counter);
        for (w, labels) in s.workers.iter().zip(&worker_labels) {
            f.sample(labels, value(w));
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

/// Connection sync: messages and records both ways, refusals by reason.
fn sync_families(e: &mut Exposition, y: &crate::snapshot::SyncSnapshot) {
    let mode = vec![("mode", y.mode.clone())];
    let simple: [(&'static str, &str, u64); 7] = [
        (
            "uvs_sync_sent_messages_total",
            "Sync messages sent.",
            y.sent_messages,
        ),
        (
            "uvs_sync_sent_conns_total",
            "Connection records sent.",
            y.sent_conns,
        ),
        (
            "uvs_sync_send_errors_total",
            "Sync messages the kernel refused to send.",
            y.send_errors,
        ),
        (
            "uvs_sync_received_messages_total",
            "Sync messages accepted.",
            y.received_messages,
        ),
        (
            "uvs_sync_received_conns_total",
            "Connection records received in accepted messages.",
            y.received_conns,
        ),
        (
            "uvs_sync_installed_total",
            "Connection records installed or refreshed.",
            y.installed,
        ),
        (
            "uvs_sync_rate_limited_total",
            "Records dropped by the receive rate limit.",
            y.rate_limited,
        ),
    ];
    for (name, help, v) in simple {
        e.family(name, help, Kind::Counter).sample(&mode, v);
    }
    e.family(
        "uvs_sync_tap_dropped_total",
        "Connection events the packet path could not queue for sync (queue full).",
        Kind::Counter,
    )
    .sample(&mode, y.tap_dropped);
    let mut f = e.family(
        "uvs_sync_bad_messages_total",
        "Sync messages refused whole, by reason (auth: missing or wrong HMAC; replay).",
        Kind::Counter,
    );
    for (reason, n) in &y.bad_messages {
        f.sample(&[("reason", reason.clone())], *n);
    }
    let mut f = e.family(
        "uvs_sync_refused_total",
        "Connection records not installed, by reason (no_service: a service this node lacks).",
        Kind::Counter,
    );
    for (reason, n) in &y.refused {
        f.sample(&[("reason", reason.clone())], *n);
    }
    if let Some(age) = y.last_received_age_ms {
        e.family(
            "uvs_sync_last_message_age_seconds",
            "Seconds since the last accepted sync message.",
            Kind::Gauge,
        )
        .sample(&mode, age as f64 / 1000.0);
    }
    e.family("uvs_sync_peers", "Peers heard from.", Kind::Gauge)
        .sample(&mode, y.peers.len() as u64);
}

/// BGP announcement (`bgp:`) and drain state.
fn node_families(e: &mut Exposition, n: &crate::announce::NodeSnapshot) {
    e.family(
        "uvs_node_draining",
        "1 while `uvsadm node drain` runs, else 0.",
        Kind::Gauge,
    )
    .sample(&[], u64::from(n.state == "draining"));
    if !n.bgp {
        return;
    }
    let mut f = e.family(
        "uvs_bgp_announced",
        "1 for a VIP BIRD is told to announce, 0 for one withdrawn.",
        Kind::Gauge,
    );
    for v in &n.announced {
        f.sample(&[("vip", v.to_string())], 1u64);
    }
    for (v, _) in &n.withdrawn {
        f.sample(&[("vip", v.to_string())], 0u64);
    }
    e.family(
        "uvs_bgp_announced_vips",
        "VIPs this node announces.",
        Kind::Gauge,
    )
    .sample(&[], n.announced.len() as u64);
    e.family(
        "uvs_bgp_reconfigures_total",
        "BIRD reconfigurations attempted (include file rewritten, `configure` sent).",
        Kind::Counter,
    )
    .sample(&[], n.reconfigures);
    e.family(
        "uvs_bgp_reconfigure_errors_total",
        "BIRD reconfigurations that failed (file not written, BIRD unreachable or refusing).",
        Kind::Counter,
    )
    .sample(&[], n.reconfigure_errors);
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

/// What the endpoint renders on each scrape.
pub type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// Time a client has, from connecting, to send its whole request head.
pub const REQUEST_TIME: Duration = Duration::from_secs(2);
/// Clients connected and still sending their request, at most.
pub const MAX_WAITING: usize = 64;
/// Longest request head accepted.
const MAX_HEAD: usize = 8192;
/// Most header lines accepted (a Prometheus scrape sends about five).
const MAX_HEADERS: usize = 64;

const LIMITS: Limits = Limits {
    max_waiting: MAX_WAITING,
    request_time: REQUEST_TIME,
    max_request: MAX_HEAD,
    workers: 2,
    queue: 16,
    answer_time: Duration::from_secs(5),
};

/// Binds `listen` and serves `GET /metrics` until `stop` is set (see [`serve_listener`]).
pub fn serve(
    listen: SocketAddr,
    source: SnapshotSource,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(listen).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {listen}: {e}"),
        )
    })?;
    serve_listener(listener, source, stop)
}

/// Serves `GET /metrics` (and `HEAD`) on a bound listener until `stop` is set; other paths get
/// 404, other methods 405, unparseable requests 400.
///
/// Served through `crate::gate`: a client has [`REQUEST_TIME`] to send its request head
/// (else 408), at most [`MAX_WAITING`] may be mid-request (one more and the longest-waiting
/// gets 503), and two threads render and write answers, so idle or slow clients never delay
/// a scrape. One request per connection (`Connection: close`), as Prometheus expects.
pub fn serve_listener(
    listener: TcpListener,
    source: SnapshotSource,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    serve_rendered(listener, Arc::new(move || render(&source())), stop)
}

/// What `/metrics` answers with: the exposition text, rendered per scrape.
pub type TextSource = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` with the text `source` renders (member mode has no [`Snapshot`]),
/// as [`serve_listener`] does.
pub fn serve_rendered(
    listener: TcpListener,
    source: TextSource,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let protocol = Arc::new(Http { source });
    std::thread::Builder::new()
        .name("uvs-metrics".into())
        .spawn(move || gate::run("uvs-metrics", listener, LIMITS, protocol, &stop))
}

/// HTTP/1.x, one request per connection, for `/metrics`.
struct Http {
    source: TextSource,
}

impl gate::Protocol for Http {
    fn complete(&self, request: &[u8]) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        // An error is final too: it gets its answer at once.
        !matches!(
            httparse::Request::new(&mut headers).parse(request),
            Ok(httparse::Status::Partial)
        )
    }

    fn answer(&self, request: &[u8], ending: Ending) -> Vec<u8> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(request) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) if ending == Ending::TooLong => {
                return response("431 Request Header Fields Too Large", "", false)
            }
            Err(httparse::Error::TooManyHeaders) => {
                return response("431 Request Header Fields Too Large", "", false)
            }
            Ok(httparse::Status::Partial) | Err(_) => {
                return response("400 Bad Request", "bad request\n", false)
            }
        }
        let method = req.method.unwrap_or_default();
        let path = req.path.unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        let head_only = method == "HEAD";
        if method != "GET" && !head_only {
            return response("405 Method Not Allowed", "only GET /metrics\n", false);
        }
        if path != "/metrics" {
            return response(
                "404 Not Found",
                "not found: metrics are at /metrics\n",
                head_only,
            );
        }
        response("200 OK", &(self.source)(), head_only)
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        match why {
            Refusal::Slow => response(
                "408 Request Timeout",
                &format!("request not complete within {} s\n", REQUEST_TIME.as_secs()),
                false,
            ),
            Refusal::Crowded => response(
                "503 Service Unavailable",
                &format!(
                    "too many clients ({MAX_WAITING}) connected without sending a request; this \
                     one had waited longest\n"
                ),
                false,
            ),
            Refusal::Busy => response(
                "503 Service Unavailable",
                "too many scrapes at once; try again\n",
                false,
            ),
        }
    }
}

fn response(status: &str, body: &str, head_only: bool) -> Vec<u8> {
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut extra = "";
    if status.starts_with("405") {
        extra = "Allow: GET, HEAD\r\n";
    } else if status.starts_with("503") {
        extra = "Retry-After: 1\r\n";
    }
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
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
