//! The status page's routes on the HTTP endpoint: `/` (the self-contained page),
//! `/status.json` (the snapshot with its rate history) next to `/metrics`. The page running
//! in a browser against a real uvsd is `e2e_status_page.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uvs_control::http::{serve_listener_routes, Routes, HTML, JSON};
use uvs_control::snapshot::{Rates, RealSnapshot, ServiceSnapshot, Snapshot, Traffic};
use uvs_control::statuspage::{self, History, PAGE};
use uvs_dataplane::wake::Stop;

fn sample(cps: f64) -> Snapshot {
    let real = |addr: &str, up: bool| RealSnapshot {
        address: addr.parse().unwrap(),
        port: 80,
        forward: "Masq".into(),
        tunnel: String::new(),
        weight: 1,
        active: 3,
        inactive: 4,
        health_up: up,
        overloaded: false,
        upper_threshold: 0,
        lower_threshold: 0,
        persistent: 0,
        response_time_us: 0,
        load: 0,
        traffic: Traffic {
            conns: 10,
            ..Traffic::default()
        },
        rates: Rates {
            cps: cps / 2.0,
            ..Rates::default()
        },
    };
    Snapshot {
        version: "0.1.0".into(),
        conn_capacity: 1000,
        conn_count: 14,
        conn_dropped: 0,
        services: vec![ServiceSnapshot {
            name: "web <4>".into(),
            protocol: "TCP".into(),
            vip: "198.18.100.1".parse().unwrap(),
            port: 80,
            fwmark: 0,
            scheduler: "wlc".into(),
            flags: String::new(),
            persistent: None,
            one_packet: false,
            reals: vec![real("198.18.1.11", true), real("2001:2:0:1::12", false)],
            traffic: Traffic {
                conns: 20,
                ..Traffic::default()
            },
            rates: Rates {
                cps,
                ..Rates::default()
            },
        }],
        drops: vec![("no_service".into(), 5)],
        ..Snapshot::default()
    }
}

struct Endpoint {
    addr: SocketAddr,
    stop: Arc<Stop>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.raise();
    }
}

fn start() -> Endpoint {
    let history = Arc::new(Mutex::new(History::default()));
    for cps in [1.0, 2.0, 3.0] {
        history
            .lock()
            .unwrap()
            .record(&statuspage::Sample::of(&sample(cps)));
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(Stop::new());
    let routes = Routes {
        metrics: Arc::new(|| uvs_control::metrics::render(&sample(3.0))),
        status: Some(Arc::new(move || {
            statuspage::doc(sample(3.0), &history.lock().unwrap(), None)
        })),
    };
    serve_listener_routes(listener, routes, Arc::clone(&stop)).unwrap();
    Endpoint { addr, stop }
}

/// (head, body) of one request.
fn get(addr: SocketAddr, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a head");
    (head.to_string(), body.to_string())
}

#[test]
fn the_page_is_served_whole_and_loads_nothing_from_elsewhere() {
    let ep = start();
    let (head, body) = get(ep.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Type: {HTML}")), "{head}");
    assert!(
        head.contains("Content-Security-Policy: default-src 'none';"),
        "{head}"
    );
    assert_eq!(body, PAGE);
    // No external asset: no absolute URL anywhere, styles and script inline.
    assert!(!PAGE.contains("://"), "the page refers to another site");
    assert!(!PAGE.contains("<link") && !PAGE.contains("<script src"));
    assert!(PAGE.contains("fetch(\"status.json\""));
    assert!(PAGE.contains("name=\"viewport\""), "usable on a phone");
    let (head, _) = get(ep.addr, "GET /index.html HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
}

#[test]
fn status_json_carries_the_snapshot_and_its_history() {
    let ep = start();
    let (head, body) = get(ep.addr, "GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Type: {JSON}")), "{head}");
    assert!(head.contains("Cache-Control: no-store"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let svc = &v["services"][0];
    assert_eq!(svc["name"], "web <4>");
    assert_eq!(svc["active"], 6);
    assert_eq!(svc["inactive"], 8);
    assert_eq!(svc["history"]["cps"], serde_json::json!([1.0, 2.0, 3.0]));
    assert_eq!(svc["reals"][0]["address"], "198.18.1.11");
    assert_eq!(svc["reals"][0]["state"], "up");
    assert_eq!(
        svc["reals"][0]["history"]["cps"],
        serde_json::json!([0.5, 1.0, 1.5])
    );
    assert_eq!(svc["reals"][1]["state"], "down");
    assert_eq!(v["drops"][0]["reason"], "no_service");
    assert_eq!(v["drops"][0]["packets"], 5);
    assert_eq!(v["conn_capacity"], 1000);
    assert!(v["cluster"].as_array().unwrap().is_empty());
    assert!(v["time_ms"].as_u64().unwrap() > 0);

    let (head, body) = get(ep.addr, "HEAD /status.json HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: "), "{head}");
    assert!(body.is_empty(), "HEAD has no body");
}

#[test]
fn metrics_and_errors_next_to_the_page() {
    let ep = start();
    let (head, body) = get(ep.addr, "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(body.contains("uvs_service_connections_total{service=\"web <4>\""));
    let (head, body) = get(ep.addr, "GET /nope HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert!(body.contains("/status.json"), "{body}");
    let (head, _) = get(ep.addr, "POST /status.json HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{head}"
    );
}
