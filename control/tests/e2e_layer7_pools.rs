//! End to end (as root): per-pool health checks of a `layer: 7` service on the test
//! network. Pool `a` (rs1, rs2) uses the service's check (HTTP on port 80), pool `b` (rs2,
//! rs3) its own: `GET /health` on port 8080, answered by a Python http.server the test
//! starts and stops in the real servers' namespaces. rs2, in both pools, is up or down for
//! each pool by that pool's check; rs3, in `b` only, has `b`'s check as its own health. A
//! combined rule (Host and path prefix) sends requests to `b`.

mod common;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo configuration with web4 turned into a layer-7 service with two pools.
fn config() -> String {
    let out = demo_config().replacen(
        "    forwarding: nat\n    health_check:",
        "    forwarding: nat
    layer: 7
    pools:
      - { name: a, scheduler: rr, real_servers: [198.18.1.11, 198.18.1.12] }
      - name: b
        scheduler: rr
        real_servers: [198.18.1.12, 198.18.1.13]
        health_check: { type: http, port: 8080, path: /health, interval: 0.3, timeout: 0.2, rise: 1, fall: 1 }
    rules:
      - { host: api.example, path_prefix: /v2/, pool: b }
    default_pool: a
    health_check:",
        1,
    );
    assert!(out.contains("layer: 7"), "{out}");
    out
}

/// `python3 -m http.server` on port 8080 of real server `n`, serving `/health`; killed
/// (by its PID) when dropped.
struct HealthServer(Child, std::path::PathBuf);

impl HealthServer {
    fn start(tb: &Testbed, n: u8) -> HealthServer {
        let dir = std::env::temp_dir().join(format!("uvs-e2el7pl-rs{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("health"), "ok\n").unwrap();
        // `ip netns exec` execs the server itself: the child's PID is python's.
        let child = Command::new("ip")
            .args(["netns", "exec", &tb.ns(&format!("rs{n}"))])
            // All addresses: binding one makes http.server look its name up (getfqdn),
            // which waits for DNS that the namespace does not have.
            .args(["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"])
            .arg("--directory")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3 -m http.server");
        HealthServer(child, dir)
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// The value of the sample of `family` whose labels contain every one of `labels`.
fn sample(m: &str, family: &str, labels: &[&str]) -> Option<u64> {
    m.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// rs2's and rs3's state for pool `b`, and rs3's own health (`uvs_real_up`).
fn states(tb: &Testbed) -> (Option<u64>, Option<u64>, Option<u64>) {
    let m = tb.metrics();
    let b = |real: &str| {
        sample(
            &m,
            "uvs_layer7_pool_real_up",
            &[
                r#"service="web4""#,
                r#"pool="b""#,
                &format!("real=\"{real}\""),
            ],
        )
    };
    let own = sample(
        &m,
        "uvs_real_up",
        &[r#"service="web4""#, r#"real="198.18.1.13:80""#],
    );
    (b("198.18.1.12:80"), b("198.18.1.13:80"), own)
}

/// Waits (at most 10 s) until `states` is `want`.
fn wait_for(tb: &Testbed, want: (Option<u64>, Option<u64>, Option<u64>), what: &str) {
    let start = Instant::now();
    loop {
        let got = states(tb);
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: (b rs2, b rs3, rs3) = {got:?}, wanted {want:?}\n{}\n{}",
            tb.metrics(),
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The servers (first word of each body) `n` requests went to, one connection each.
fn servers(tb: &Testbed, args: &[&str], n: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..n)
        .map(|_| {
            let mut a = vec!["curl", "-s", "-g", "--max-time", "3"];
            a.extend_from_slice(args);
            let o = tb.exec("client", &a);
            assert!(
                o.status.success(),
                "curl {args:?} failed:\n{}",
                tb.uvsd_log()
            );
            let body = String::from_utf8_lossy(&o.stdout).to_string();
            body.split_whitespace().next().unwrap_or("").to_string()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_pool_health_check_takes_a_server_out_of_that_pool_only() {
    require_root("a_pool_health_check_takes_a_server_out_of_that_pool_only");
    let t0 = Instant::now();
    let mut tb = Testbed::up("e2el7pl", "nat");
    // Only rs3 answers pool b's check: rs2 goes down for b (fall 1) and stays in a.
    let rs3 = HealthServer::start(&tb, 3);
    tb.start_uvsd(&config());
    let api = ["-H", "Host: api.example", "http://198.18.100.1/v2/users"];
    let default = ["http://198.18.100.1/v2/users"];
    wait_for(&tb, (Some(0), Some(1), Some(1)), "rs2 down for b");
    assert_eq!(servers(&tb, &api, 4), ["rs3"], "pool b without rs2");
    assert_eq!(
        servers(&tb, &default, 4),
        ["rs1", "rs2"],
        "pool a keeps rs2 (only Host and path together go to b)"
    );
    let m = tb.metrics();
    let a2 = sample(
        &m,
        "uvs_layer7_pool_real_up",
        &[r#"pool="a""#, r#"real="198.18.1.12:80""#],
    );
    assert_eq!(a2, Some(1), "rs2 is up for a\n{m}");
    let own2 = sample(
        &m,
        "uvs_real_up",
        &[r#"service="web4""#, r#"real="198.18.1.12:80""#],
    );
    assert_eq!(own2, Some(1), "rs2's own health is untouched\n{m}");

    // rs2 answers b's check: back in b.
    let rs2 = HealthServer::start(&tb, 2);
    wait_for(&tb, (Some(1), Some(1), Some(1)), "rs2 back in b");
    assert_eq!(servers(&tb, &api, 4), ["rs2", "rs3"]);

    // rs3 stops answering: b's check is its only one, so it is down as a server, and so
    // down for b too (`uvs_layer7_pool_real_up` 0, as `uvs_real_up`).
    drop(rs3);
    wait_for(&tb, (Some(1), Some(0), Some(0)), "rs3 down");
    assert_eq!(servers(&tb, &api, 4), ["rs2"]);
    drop(rs2);
    eprintln!("per-pool health end to end took {:?}", t0.elapsed());
}
