//! The Prometheus exposition of a sample snapshot, and the HTTP endpoint.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvs_config::ClusterRole;
use uvs_control::announce::NodeSnapshot;
use uvs_control::cluster::{ClusterStatus, GroupStatus};
use uvs_control::metrics::{render, serve_listener, CONTENT_TYPE};
use uvs_control::snapshot::{
    Rates, RealSnapshot, ServiceSnapshot, Snapshot, Traffic, WorkerSnapshot,
};
use uvs_dataplane::wake::Stop;

fn real(addr: &str, port: u16, weight: u32, up: bool, overloaded: bool) -> RealSnapshot {
    RealSnapshot {
        address: addr.parse().unwrap(),
        port,
        forward: "Masq".into(),
        tunnel: String::new(),
        weight,
        active: 2,
        inactive: 1,
        health_up: up,
        overloaded,
        upper_threshold: 0,
        lower_threshold: 0,
        persistent: 0,
        response_time_us: 0,
        load: 0,
        traffic: Traffic {
            conns: 10,
            packets_in: 100,
            packets_out: 90,
            bytes_in: 6400,
            bytes_out: 128_000,
        },
        rates: Rates::default(),
    }
}

fn sample() -> Snapshot {
    Snapshot {
        version: "0.1.0".into(),
        conn_capacity: 65536,
        conn_count: 6,
        conn_dropped: 3,
        services: vec![
            ServiceSnapshot {
                name: "web4".into(),
                protocol: "TCP".into(),
                vip: "198.18.100.1".parse().unwrap(),
                port: 80,
                fwmark: 0,
                scheduler: "rr".into(),
                flags: String::new(),
                persistent: None,
                one_packet: false,
                reals: vec![
                    // Health-checked: the feedback schedulers' figures.
                    RealSnapshot {
                        response_time_us: 1500,
                        load: 250,
                        ..real("198.18.1.11", 80, 1, true, false)
                    },
                    real("198.18.1.12", 80, 0, false, true),
                ],
                traffic: Traffic {
                    conns: 20,
                    packets_in: 200,
                    packets_out: 180,
                    bytes_in: 12800,
                    bytes_out: 256_000,
                },
                rates: Rates::default(),
            },
            ServiceSnapshot {
                name: "we\"b\\6\n".into(),
                protocol: "TCP".into(),
                vip: "2001:2:0:100::1".parse().unwrap(),
                port: 443,
                fwmark: 0,
                scheduler: "mh".into(),
                flags: "mh-fallback".into(),
                persistent: None,
                one_packet: false,
                reals: vec![real("2001:2:0:1::11", 8443, 3, true, false)],
                traffic: Traffic::default(),
                rates: Rates::default(),
            },
        ],
        workers: vec![
            WorkerSnapshot {
                id: 0,
                core: Some(1),
                rx_packets: 1000,
                tx_packets: 990,
                rx_bytes: 64000,
                tx_bytes: 63360,
                slow_path: 4,
                new_conns: 30,
                reused_conns: 0,
                hash_adopted: 0,
                flow_cache: 0,
                burst_lookups: 0,
                sleeps: 0,
                tunnelled: [0, 7, 0],
                busy_ratio: 0.25,
                ..WorkerSnapshot::default()
            },
            WorkerSnapshot {
                id: 1,
                core: None,
                busy_ratio: 0.0,
                standing_by: true,
                ..WorkerSnapshot::default()
            },
        ],
        drops: vec![("no_service".into(), 5), ("bad_checksum".into(), 2)],
        generation: 7,
        sync: None,
        node: Some(NodeSnapshot {
            state: "serving".into(),
            bgp: true,
            announced: vec!["198.18.100.1".parse().unwrap()],
            withdrawn: vec![(
                "2001:2:0:100::1".parse().unwrap(),
                "no usable real server".into(),
            )],
            reconfigures: 4,
            reconfigure_errors: 1,
            last_error: None,
            last_ok_age_ms: Some(1500),
            ..NodeSnapshot::default()
        }),
        cluster: Some(ClusterStatus {
            groups: vec![
                GroupStatus {
                    name: "web".into(),
                    role: ClusterRole::Master,
                    for_secs: 75,
                    switches: 3,
                    vips: vec![("198.18.100.1".parse().unwrap(), true)],
                    pools: vec![],
                },
                GroupStatus {
                    name: "api".into(),
                    role: ClusterRole::Backup,
                    for_secs: 600,
                    switches: 0,
                    vips: vec![],
                    pools: vec![],
                },
            ],
            ungrouped: vec![],
            announcements: 15,
        }),
        client_lookup: Some(uvs_control::snapshot::LookupSnapshot {
            found: 9,
            unknown: 2,
            refused: vec![("bad_tag".into(), 3), ("replayed".into(), 1)],
        }),
        layer7_pools: vec![uvs_control::snapshot::PoolHits {
            service: "web7".into(),
            pool: "api".into(),
            hits: 11,
            reals: vec![uvs_control::snapshot::PoolReal {
                address: "198.18.1.12".parse().unwrap(),
                port: 80,
                up: false,
            }],
        }],
        fast_path: vec![("uvs-lb0".into(), 41), ("uvs-lb1".into(), 59)],
        fast_path_sent: vec![("uvs-lb0".into(), 40), ("uvs-lb1".into(), 59)],
        attached_again: vec![("uvs-lb0".into(), 1), ("uvs-lb1".into(), 0)],
        unclaimed: vec![("uvs-lb0".into(), 0), ("uvs-lb1".into(), 7)],
    }
}

#[test]
fn sample_lines() {
    let text = render(&sample());
    let lines: HashSet<&str> = text.lines().collect();
    let web4 = r#"service="web4",protocol="TCP",vip="198.18.100.1",port="80""#;
    let expected = [
        "# HELP uvs_info uvs build information.".to_string(),
        "# TYPE uvs_info gauge".into(),
        r#"uvs_info{version="0.1.0"} 1"#.into(),
        "uvs_tables_generation 7".into(),
        "uvs_conn_table_entries 6".into(),
        "uvs_conn_table_capacity 65536".into(),
        "# TYPE uvs_conn_table_dropped_total counter".into(),
        "uvs_conn_table_dropped_total 3".into(),
        "# TYPE uvs_interface_attached_again_total counter".into(),
        r#"uvs_interface_attached_again_total{interface="uvs-lb0"} 1"#.into(),
        r#"uvs_interface_attached_again_total{interface="uvs-lb1"} 0"#.into(),
        "# TYPE uvs_interface_unclaimed_packets_total counter".into(),
        r#"uvs_interface_unclaimed_packets_total{interface="uvs-lb0"} 0"#.into(),
        r#"uvs_interface_unclaimed_packets_total{interface="uvs-lb1"} 7"#.into(),
        "# TYPE uvs_fast_path_packets_total counter".into(),
        r#"uvs_fast_path_packets_total{interface="uvs-lb0"} 41"#.into(),
        r#"uvs_fast_path_packets_total{interface="uvs-lb1"} 59"#.into(),
        "# TYPE uvs_fast_path_sent_packets_total counter".into(),
        r#"uvs_fast_path_sent_packets_total{interface="uvs-lb0"} 40"#.into(),
        r#"uvs_fast_path_sent_packets_total{interface="uvs-lb1"} 59"#.into(),
        "# TYPE uvs_service_connections_total counter".into(),
        format!("uvs_service_connections_total{{{web4}}} 20"),
        format!("uvs_service_packets_in_total{{{web4}}} 200"),
        format!("uvs_service_packets_out_total{{{web4}}} 180"),
        format!("uvs_service_bytes_in_total{{{web4}}} 12800"),
        format!("uvs_service_bytes_out_total{{{web4}}} 256000"),
        format!("uvs_service_active_connections{{{web4}}} 4"),
        format!("uvs_service_inactive_connections{{{web4}}} 2"),
        "# TYPE uvs_real_active_connections gauge".into(),
        format!(r#"uvs_real_up{{{web4},real="198.18.1.11:80",forward="Masq"}} 1"#),
        format!(r#"uvs_real_up{{{web4},real="198.18.1.12:80",forward="Masq"}} 0"#),
        format!(r#"uvs_real_weight{{{web4},real="198.18.1.12:80",forward="Masq"}} 0"#),
        format!(r#"uvs_real_overloaded{{{web4},real="198.18.1.12:80",forward="Masq"}} 1"#),
        "# TYPE uvs_real_response_time_seconds gauge".into(),
        format!(r#"uvs_real_response_time_seconds{{{web4},real="198.18.1.11:80",forward="Masq"}} 0.0015"#),
        "# TYPE uvs_real_load gauge".into(),
        format!(r#"uvs_real_load{{{web4},real="198.18.1.11:80",forward="Masq"}} 0.25"#),
        format!(r#"uvs_real_active_connections{{{web4},real="198.18.1.11:80",forward="Masq"}} 2"#),
        format!(r#"uvs_real_inactive_connections{{{web4},real="198.18.1.11:80",forward="Masq"}} 1"#),
        format!(r#"uvs_real_connections_total{{{web4},real="198.18.1.11:80",forward="Masq"}} 10"#),
        format!(r#"uvs_real_bytes_out_total{{{web4},real="198.18.1.11:80",forward="Masq"}} 128000"#),
        // Escaped label values; IPv6 reals in brackets.
        r#"uvs_real_weight{service="we\"b\\6\n",protocol="TCP",vip="2001:2:0:100::1",port="443",real="[2001:2:0:1::11]:8443",forward="Masq"} 3"#.into(),
        "# TYPE uvs_drops_total counter".into(),
        r#"uvs_drops_total{reason="no_service"} 5"#.into(),
        r#"uvs_drops_total{reason="bad_checksum"} 2"#.into(),
        r#"uvs_worker_rx_packets_total{worker="0",core="1"} 1000"#.into(),
        r#"uvs_worker_tx_packets_total{worker="0",core="1"} 990"#.into(),
        r#"uvs_worker_rx_bytes_total{worker="0",core="1"} 64000"#.into(),
        r#"uvs_worker_slow_path_total{worker="0",core="1"} 4"#.into(),
        r#"uvs_worker_new_connections_total{worker="0",core="1"} 30"#.into(),
        r#"uvs_worker_tunnelled_packets_total{worker="0",core="1",type="gue"} 7"#.into(),
        r#"uvs_worker_tunnelled_packets_total{worker="0",core="1",type="gre"} 0"#.into(),
        r#"uvs_worker_busy_ratio{worker="0",core="1"} 0.25"#.into(),
        r#"uvs_worker_busy_ratio{worker="1",core="none"} 0"#.into(),
        "# TYPE uvs_worker_standing_by gauge".into(),
        r#"uvs_worker_standing_by{worker="0",core="1"} 0"#.into(),
        r#"uvs_worker_standing_by{worker="1",core="none"} 1"#.into(),
        "# TYPE uvs_client_lookup_answers_total counter".into(),
        r#"uvs_client_lookup_answers_total{result="found"} 9"#.into(),
        r#"uvs_client_lookup_answers_total{result="unknown"} 2"#.into(),
        r#"uvs_client_lookup_refused_total{reason="bad_tag"} 3"#.into(),
        r#"uvs_client_lookup_refused_total{reason="replayed"} 1"#.into(),
        "# TYPE uvs_layer7_pool_hits_total counter".into(),
        r#"uvs_layer7_pool_hits_total{service="web7",pool="api"} 11"#.into(),
        "# TYPE uvs_layer7_pool_real_up gauge".into(),
        r#"uvs_layer7_pool_real_up{service="web7",pool="api",real="198.18.1.12:80"} 0"#.into(),
        // A cluster node: each group's role as an enum gauge, switches, announcements.
        "# TYPE uvs_cluster_role gauge".into(),
        r#"uvs_cluster_role{group="web",role="master"} 1"#.into(),
        r#"uvs_cluster_role{group="web",role="backup"} 0"#.into(),
        r#"uvs_cluster_role{group="api",role="master"} 0"#.into(),
        r#"uvs_cluster_role{group="api",role="backup"} 1"#.into(),
        "# TYPE uvs_cluster_role_switches_total counter".into(),
        r#"uvs_cluster_role_switches_total{group="web"} 3"#.into(),
        r#"uvs_cluster_role_switches_total{group="api"} 0"#.into(),
        r#"uvs_cluster_role_seconds{group="api"} 600"#.into(),
        "uvs_cluster_announcements_total 15".into(),
        // BGP: per VIP announced or withdrawn (with why), the node's state, BIRD's health.
        r#"uvs_bgp_announced{vip="198.18.100.1"} 1"#.into(),
        r#"uvs_bgp_announced{vip="2001:2:0:100::1"} 0"#.into(),
        r#"uvs_bgp_withdrawn{vip="2001:2:0:100::1",reason="no_usable_real_server"} 1"#.into(),
        "uvs_bgp_announced_vips 1".into(),
        "uvs_bgp_reconfigures_total 4".into(),
        "uvs_bgp_reconfigure_errors_total 1".into(),
        "uvs_bgp_reconfigure_failing 0".into(),
        "uvs_bgp_last_reconfigure_age_seconds 1.5".into(),
        "uvs_node_draining 0".into(),
        r#"uvs_node_state{state="serving"} 1"#.into(),
        r#"uvs_node_state{state="draining"} 0"#.into(),
        r#"uvs_node_state{state="stopping"} 0"#.into(),
    ];
    for e in &expected {
        assert!(
            lines.contains(e.as_str()),
            "missing line:\n{e}\n--- in ---\n{text}"
        );
    }
    // A real server without a measurement (no check answered yet) has no response time
    // or load: absent, not a 0 that would read as the fastest, idlest server.
    for l in &lines {
        assert!(
            !(l.starts_with("uvs_real_response_time_seconds{") || l.starts_with("uvs_real_load{"))
                || l.contains(r#"real="198.18.1.11:80""#),
            "unmeasured real server listed: {l}"
        );
    }
}

/// Every family: HELP then TYPE, then only its own samples; no family twice; every sample
/// line is `name{labels} value` with a parseable value.
#[test]
fn exposition_is_well_formed() {
    let text = render(&sample());
    assert!(text.ends_with('\n'));
    let mut seen = HashSet::new();
    let mut current: Option<String> = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(seen.insert(name.clone()), "family {name} appears twice");
            let ty = lines.next().expect("TYPE after HELP");
            let kind = ty
                .strip_prefix(&format!("# TYPE {name} "))
                .unwrap_or_else(|| panic!("TYPE of {name}: {ty}"));
            assert!(kind == "counter" || kind == "gauge", "{ty}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name}");
            }
            current = Some(name);
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line}");
        let family = current.as_deref().expect("sample before any family");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert_eq!(name, family, "sample outside its family: {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            assert!(!labels.contains('\n'));
        }
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "{line}"
        );
    }
    assert!(seen.len() >= 25, "{} families", seen.len());
}

#[test]
fn empty_snapshot_still_renders_every_family() {
    let text = render(&Snapshot::default());
    assert!(text.contains("# TYPE uvs_drops_total counter\n"));
    assert!(text.contains("# TYPE uvs_real_up gauge\n"));
    assert!(text.contains("uvs_conn_table_capacity 0\n"));
    assert!(
        !text.contains("uvs_fast_path_packets_total"),
        "the fast path's family only when it is on"
    );
}

fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn endpoint_serves_metrics_and_stops() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let scrapes = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&scrapes);
    let stop = Arc::new(Stop::new());
    let handle = serve_listener(
        listener,
        Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            sample()
        }),
        Arc::clone(&stop),
    )
    .unwrap();

    let resp = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Type: {CONTENT_TYPE}")),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(body, render(&sample()));

    let resp = get(addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert!(
        resp.starts_with("HTTP/1.1 200 OK"),
        "query strings are ignored"
    );
    let resp = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        resp.starts_with("HTTP/1.1 200 OK") && resp.ends_with("\r\n\r\n"),
        "{resp}"
    );
    let resp = get(addr, "GET / HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 404 Not Found"), "{resp}");
    let resp = get(addr, "POST /metrics HTTP/1.1\r\n\r\n");
    assert!(
        resp.starts_with("HTTP/1.1 405 Method Not Allowed"),
        "{resp}"
    );
    assert!(resp.contains("Allow: GET, HEAD"), "{resp}");
    let resp = get(addr, "garbage\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400 Bad Request"), "{resp}");
    assert_eq!(scrapes.load(Ordering::Relaxed), 3, "only /metrics renders");

    let t = Instant::now();
    stop.raise();
    handle.join().unwrap();
    // Raising `stop` wakes the server (`gate.rs`); the bound leaves a loaded machine room.
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(TcpStream::connect(addr).is_err(), "listener closed");
}

fn get_bytes(addr: std::net::SocketAddr, request: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let body = out.split_off(at + 4);
    (String::from_utf8(out).unwrap(), body)
}

/// 5 000 services of four real servers each: ~22 MB of exposition text. A scrape that
/// takes gzip (Prometheus's does) gets it compressed, and its text is the same; one that
/// does not gets the text.
#[test]
fn endpoint_compresses_for_clients_that_take_gzip() {
    let mut big = sample();
    let template = big.services[0].clone();
    big.services = (0..5000u32)
        .map(|i| {
            let mut s = template.clone();
            s.name = format!("svc{i}");
            s.vip = std::net::Ipv4Addr::from(0xc612_0000 + i).into();
            s.reals = (0..4u32)
                .map(|r| {
                    real(
                        &format!("198.19.{}.{}", i % 250, 10 + r),
                        80,
                        1,
                        true,
                        false,
                    )
                })
                .collect();
            s
        })
        .collect();
    let text = render(&big);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(Stop::new());
    let snapshot = Arc::new(big);
    let handle = serve_listener(
        listener,
        Arc::new(move || (*snapshot).clone()),
        Arc::clone(&stop),
    )
    .unwrap();

    let scrape = "GET /metrics HTTP/1.1\r\nHost: x\r\n\
                  Accept-Encoding: gzip\r\nAccept: text/plain;version=0.0.4\r\n\r\n";
    let (head, body) = get_bytes(addr, scrape);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Encoding: gzip\r\n"), "{head}");
    assert!(head.contains("Vary: Accept-Encoding\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head}"
    );
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, text);
    assert!(
        body.len() * 5 < text.len(),
        "{} bytes of gzip for {} of text",
        body.len(),
        text.len()
    );
    // HEAD: the same headers, Content-Length the compressed body's.
    let (head_only, none) = get_bytes(addr, &scrape.replacen("GET", "HEAD", 1));
    assert!(none.is_empty());
    assert!(
        head_only.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head_only}"
    );
    // Without Accept-Encoding, or with gzip refused: the text as it is.
    for request in [
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip;q=0, identity\r\n\r\n",
    ] {
        let (head, body) = get_bytes(addr, request);
        assert!(!head.contains("Content-Encoding"), "{head}");
        assert_eq!(String::from_utf8(body).unwrap(), text);
    }
    stop.raise();
    handle.join().unwrap();
}

#[test]
fn serve_reports_a_busy_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = uvs_control::metrics::serve(
        taken.local_addr().unwrap(),
        Arc::new(Snapshot::default),
        Arc::new(Stop::new()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot listen for metrics on"),
        "{err}"
    );
}

/// Refused a privileged port (uvsd as the unit runs it, without CAP_NET_BIND_SERVICE), the
/// error says what to grant; other errors are told as they are.
#[test]
fn a_privileged_port_refused_says_what_to_grant() {
    let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let err = uvs_control::http::listen_error("127.0.0.1:99".parse().unwrap(), &denied);
    assert!(
        err.to_string()
            .starts_with("cannot listen for metrics on 127.0.0.1:99: ")
            && err.to_string().contains("CAP_NET_BIND_SERVICE"),
        "{err}"
    );
    let err = uvs_control::http::listen_error("127.0.0.1:9100".parse().unwrap(), &denied);
    assert!(!err.to_string().contains("CAP_NET_BIND_SERVICE"), "{err}");
    let busy = std::io::Error::from(std::io::ErrorKind::AddrInUse);
    let err = uvs_control::http::listen_error("127.0.0.1:80".parse().unwrap(), &busy);
    assert!(!err.to_string().contains("CAP_NET_BIND_SERVICE"), "{err}");
}

/// An endpoint on a loopback port serving `sample()`; stops when dropped.
struct Endpoint {
    addr: std::net::SocketAddr,
    stop: Arc<Stop>,
}

impl Endpoint {
    fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(Stop::new());
        serve_listener(listener, Arc::new(sample), Arc::clone(&stop)).unwrap();
        Endpoint { addr, stop }
    }
}

impl Drop for Endpoint {
    /// Stops the server without waiting for it (a failing test must not hang on it).
    fn drop(&mut self) {
        self.stop.raise();
    }
}

/// `GET /metrics` on a new connection, given at most `limit`; the response, or why not.
fn scrape_within(addr: std::net::SocketAddr, limit: Duration) -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        let _ = tx.send(r);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Idle connections do not delay a scrape (the one-at-a-time server took 2 s for each).
#[test]
fn idle_connections_do_not_delay_a_scrape() {
    let ep = Endpoint::start();
    let _idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(ep.addr).unwrap())
        .collect();
    let t = Instant::now();
    let resp = scrape_within(ep.addr, Duration::from_secs(2)).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.ends_with(&render(&sample())));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A client sending its request a byte at a time is cut off when its time is up (408), and
/// scrapes meanwhile are answered at once.
#[test]
fn slow_request_is_cut_off() {
    let ep = Endpoint::start();
    let addr = ep.addr;
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut got = Vec::new();
        for b in b"GET /metrics HTTP/1.1\r\nX-Pad: "
            .iter()
            .chain([b'a'; 2000].iter())
        {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if t.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let _ = s.read_to_end(&mut got);
        (String::from_utf8_lossy(&got).into_owned(), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let resp = scrape_within(addr, Duration::from_secs(2)).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    let (said, took) = slow.join().unwrap();
    assert!(
        said.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{said}"
    );
    assert!(
        took < Duration::from_secs(6),
        "slow client held for {took:?}"
    );
}

/// More clients waiting to send a request than the endpoint keeps: the longest-waiting one
/// gets a 503 at once, and scrapes still get through.
#[test]
fn too_many_waiting_clients_get_503() {
    let ep = Endpoint::start();
    let mut first = TcpStream::connect(ep.addr).unwrap();
    let t = Instant::now();
    // 100: more than the endpoint keeps waiting, fewer than the listen backlog (so this
    // loop cannot block in connect whatever the server does).
    let _others: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(ep.addr).unwrap())
        .collect();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = String::new();
    first.read_to_string(&mut got).unwrap();
    assert!(
        got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{got}"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let resp = scrape_within(ep.addr, Duration::from_secs(2)).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
}

/// What an operator alerts on while a node drains with BIRD unreachable: the state, every
/// VIP withdrawn with its reason, and the failing reconfiguration.
#[test]
fn a_draining_node_with_bird_failing() {
    let mut s = Snapshot {
        node: Some(NodeSnapshot {
            state: "draining".into(),
            bgp: true,
            withdrawn: vec![("198.18.100.1".parse().unwrap(), "node draining".into())],
            reconfigures: 9,
            reconfigure_errors: 9,
            last_error: Some("connecting to BIRD: refused".into()),
            ..NodeSnapshot::default()
        }),
        ..Snapshot::default()
    };
    let text = render(&s);
    for line in [
        "uvs_node_draining 1",
        r#"uvs_node_state{state="draining"} 1"#,
        r#"uvs_node_state{state="serving"} 0"#,
        r#"uvs_bgp_announced{vip="198.18.100.1"} 0"#,
        r#"uvs_bgp_withdrawn{vip="198.18.100.1",reason="node_draining"} 1"#,
        "uvs_bgp_announced_vips 0",
        "uvs_bgp_reconfigure_failing 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    // Never reconfigured: no age to show.
    assert!(
        !text.contains("uvs_bgp_last_reconfigure_age_seconds"),
        "{text}"
    );
    // Without a bgp section only the node's state is rendered.
    s.node.as_mut().unwrap().bgp = false;
    let text = render(&s);
    assert!(text.contains("uvs_node_draining 1\n"), "{text}");
    assert!(!text.contains("uvs_bgp_"), "{text}");
    // No cluster groups configured: the role families are absent with the snapshot's
    // cluster part, and present (empty) with it.
    assert!(!text.contains("uvs_cluster_role"), "{text}");
    s.cluster = Some(ClusterStatus::default());
    let text = render(&s);
    assert!(text.contains("# TYPE uvs_cluster_role gauge\n"), "{text}");
    assert!(
        text.contains("uvs_cluster_announcements_total 0\n"),
        "{text}"
    );
}

/// Every family uvsd exports is explained in the operator's guide (docs/src), so an
/// operator who finds one in a scrape can look it up: the sample with every optional part
/// (sync, BGP, a cluster, client lookup, layer 7) rendered.
#[test]
fn every_family_is_in_the_operators_guide() {
    let mut s = sample();
    s.sync = Some(uvs_control::snapshot::SyncSnapshot {
        mode: "both".into(),
        last_received_age_ms: Some(5),
        ..Default::default()
    });
    s.node.as_mut().unwrap().reconfigures = 1;
    let text = render(&s);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src");
    let mut book = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            book.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    let missing: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| !book.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "families missing from docs/src (operating.md's metrics table): {missing:?}"
    );
}
