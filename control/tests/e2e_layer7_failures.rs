//! End to end (as root): a `layer: 7` service whose real server stops taking data after
//! its handshake. uvs received the client's head over two segments and acknowledged
//! them, so the client's TCP has nothing left to retransmit; uvs replays the head to the
//! server and, when the server never acknowledges it (1 s, 3 s, 7 s), must not leave the
//! client waiting for an answer that cannot come: it resets the client (as it does when a
//! server never answers the SYN) and the connection's entry goes.

mod common;
use common::*;
use std::time::Duration;

/// The demo configuration with web4 as a layer-7 service: pool b (rs2, rs3) for /b/.
fn config() -> String {
    let out = demo_config().replacen(
        "    forwarding: nat\n    health_check:",
        "    forwarding: nat
    layer: 7
    pools:
      - { name: a, real_servers: [198.18.1.11] }
      - { name: b, real_servers: [198.18.1.12, 198.18.1.13] }
    rules:
      - { path_prefix: /b/, pool: b }
    default_pool: a
    health_check:",
        1,
    );
    assert!(out.contains("layer: 7"), "{out}");
    out
}

/// Drops, on rs2 and rs3, the client's TCP segments that carry data (the handshake and
/// the health checks, from the balancer's own address, still pass).
const BLACK_HOLE: &str = "nft -f - <<'EOF'
table inet uvstest {
  chain in {
    type filter hook input priority 0;
    ip saddr 198.18.0.2 tcp dport 80 meta length > 100 drop
  }
}
EOF";

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_replayed_head_the_server_never_takes_resets_the_client() {
    require_root("a_replayed_head_the_server_never_takes_resets_the_client");
    let mut tb = Testbed::up("l7f", "nat");
    tb.start_uvsd(&config());
    // Pool b serves before the servers go silent.
    assert!(tb
        .curl_many("http://198.18.100.1/b/x", 2)
        .iter()
        .all(|s| s == "rs2" || s == "rs3"));
    for rs in ["rs2", "rs3"] {
        let o = tb.sh(rs, BLACK_HOLE);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // A head in two segments (uvs acknowledges both), then wait: the script prints how
    // long until the connection ended, and how.
    let split = r#"
import socket, time
s = socket.create_connection(('198.18.100.1', 80), timeout=20)
s.sendall(b'GET /b/x HTTP/1.1\r\nHost: a\r\n')
time.sleep(0.2)
s.sendall(b'X-Pad: ' + b'p' * 60 + b'\r\nConnection: close\r\n\r\n')
t = time.time()
try:
    d = s.recv(4096)
    how = 'answer %r' % d[:20] if d else 'fin'
except ConnectionResetError:
    how = 'reset'
except socket.timeout:
    how = 'timeout'
print('%.1f %s' % (time.time() - t, how))
"#;
    let o = tb.exec("client", &["python3", "-c", split]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (waited, how) = out.trim().split_once(' ').unwrap_or(("", ""));
    let waited: f64 = waited.parse().unwrap_or(-1.0);
    assert_eq!(how, "reset", "{out}\n{}", tb.metrics());
    assert!(
        (6.0..10.0).contains(&waited),
        "reset after the replays: {out}"
    );
    let m = tb.metrics();
    assert_eq!(
        metric_sum(&m, "uvs_drops_total{reason=\"layer7_replay_lost\"}"),
        1.0,
        "{m}"
    );
    // The entry went with it: nothing is left active on pool b's servers.
    std::thread::sleep(Duration::from_millis(300));
    let list = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n"]).stdout).to_string();
    for rs in ["198.18.1.12:80", "198.18.1.13:80"] {
        let line = list.lines().find(|l| l.contains(rs)).unwrap_or_default();
        let active: u32 = line
            .split_whitespace()
            .nth(4)
            .and_then(|a| a.parse().ok())
            .unwrap_or(99);
        assert_eq!(active, 0, "{list}");
    }
}

/// On rs2 and rs3, a RST to the client's connections (the balancer's health checks, from
/// its own address, still pass): a server that refuses while its check still passes.
const REFUSE: &str = "nft -f - <<'EOF'
table inet uvstest {
  chain in {
    type filter hook input priority 0;
    ip saddr 198.18.0.2 tcp dport 80 reject with tcp reset
  }
}
EOF";

/// A layer-7 connection whose server refuses it (RST to uvs's SYN) gets curl `503 Service
/// Unavailable` from uvs, as HAProxy answers a server it cannot connect to, instead of
/// "Connection reset by peer"; pool a still serves.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_server_refusing_the_connection_gets_curl_a_503() {
    require_root("a_server_refusing_the_connection_gets_curl_a_503");
    let mut tb = Testbed::up("g7r", "nat");
    tb.start_uvsd(&config());
    for rs in ["rs2", "rs3"] {
        let o = tb.sh(rs, REFUSE);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for _ in 0..2 {
        let o = tb.exec(
            "client",
            &[
                "curl",
                "-s",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://198.18.100.1/b/x",
            ],
        );
        let code = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(
            code,
            "503",
            "curl exit {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(tb.curl_many("http://198.18.100.1/a", 1), ["rs1"]);
}

/// One of pool b's servers refusing while its check still passes (nginx restarting, a
/// listener gone): uvs offers each connection it refuses to the pool's other server, as
/// HAProxy's `option redispatch` does, so every request of pool b is answered by rs3 and
/// none fails; pool a is untouched.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_refusing_server_is_passed_over_for_the_pools_other() {
    require_root("a_refusing_server_is_passed_over_for_the_pools_other");
    let mut tb = Testbed::up("g7d", "nat");
    tb.start_uvsd(&config());
    let o = tb.sh("rs2", REFUSE);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = tb.curl_many("http://198.18.100.1/b/x", 8);
    assert!(got.iter().all(|s| s == "rs3"), "{got:?}\n{}", tb.metrics());
    let m = tb.metrics();
    // Round robin offers rs2 every other new connection: half of them were refused.
    let moved = metric_sum(&m, "uvs_synproxy_redispatched_total");
    assert!((3.0..=8.0).contains(&moved), "{moved}\n{m}");
    assert_eq!(metric_sum(&m, "uvs_synproxy_failures_total"), 0.0, "{m}");
    assert_eq!(
        real_up(&tb, "198.18.1.12:80"),
        Some(true),
        "its check still passes"
    );
    assert_eq!(tb.curl_many("http://198.18.100.1/a", 1), ["rs1"]);
}
