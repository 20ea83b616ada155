//! End to end (as root): the SYN proxy on NAT and FullNAT services of the test network.
//! curl (IPv4 and IPv6), byte-exact 20 MiB downloads and a short wrk run go through
//! spliced connections to the real nginx servers; during a bounded spoofed SYN flood the
//! connection table gets no entry for the spoofed source while legitimate clients keep
//! being served.

mod common;
use common::*;
use std::time::{Duration, Instant};

const FLOOD_SRC: &str = "198.18.0.200";

/// The demo configuration with `syn_proxy: true` on both web services and a 4 096-entry
/// table.
fn config() -> String {
    let out = demo_config()
        .replace(
            "    forwarding: nat\n    health_check:",
            "    forwarding: nat\n    syn_proxy: true\n    health_check:",
        )
        .replace(
            "conn_table:\n  capacity: 65536\n",
            "conn_table:\n  capacity: 4096\n",
        );
    assert_eq!(out.matches("syn_proxy: true").count(), 2, "{out}");
    out
}

/// (requests, errors) from a wrk report: socket errors and non-2xx answers.
fn wrk_counts(report: &str) -> (u64, u64) {
    let num = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().unwrap_or(0);
    let requests = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .map(num)
        .unwrap_or(0);
    let mut errors = 0;
    for l in report.lines() {
        if let Some(rest) = l.trim().strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1))
                .map(num)
                .sum::<u64>();
        }
        if let Some(rest) = l.trim().strip_prefix("Non-2xx or 3xx responses:") {
            errors += num(rest);
        }
    }
    (requests, errors)
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn syn_proxy_serves_clients_and_keeps_a_flood_out_of_the_table() {
    require_root("syn_proxy_serves_clients_and_keeps_a_flood_out_of_the_table");
    let t0 = Instant::now();
    let mut tb = Testbed::up("e2esynp", "nat");
    tb.start_uvsd(&config());

    // Plain requests, both families: each body names its real server and shows the
    // client's own address (NAT keeps it), so the splice reached nginx and came back.
    for (url, client) in [
        ("http://198.18.100.1/", "198.18.0.2"),
        ("http://[2001:2:0:100::1]/", "2001:2::2"),
    ] {
        let bodies = tb.curl_bodies(url, 6);
        let mut servers: Vec<&str> = Vec::new();
        for b in &bodies {
            let words: Vec<&str> = b.split_whitespace().collect();
            assert_eq!(
                words.len(),
                3,
                "{url}: body {b:?} (all: {bodies:?})\n{}",
                tb.uvsd_log()
            );
            assert!(words[0].starts_with("rs"), "{url}: {b:?}");
            assert_eq!(words[2], client, "{url}: the server sees the client");
            servers.push(words[0]);
        }
        servers.sort();
        servers.dedup();
        assert_eq!(servers.len(), 3, "{url}: round robin reaches all three");
    }
    // How long a whole request takes (printed, not asserted: speed belongs to benchmarks).
    let timed = tb.sh(
        "client",
        "for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_connect} %{time_total}\\n' http://198.18.100.1/; done",
    );
    eprintln!(
        "connect/total seconds per request:\n{}",
        String::from_utf8_lossy(&timed.stdout)
    );
    let m = tb.metrics();
    let sent = common::metric_sum(&m, "uvs_synproxy_cookies_sent_total");
    let valid = common::metric_sum(&m, "uvs_synproxy_cookies_valid_total");
    let spliced = common::metric_sum(&m, "uvs_synproxy_spliced_total");
    assert!(
        sent >= 17.0 && valid >= 17.0 && spliced >= 17.0,
        "every request went through the proxy: sent {sent} valid {valid} spliced {spliced}"
    );

    // A byte-exact 20 MiB download over a spliced connection.
    let got = tb.state.join("big.synproxy");
    let dl = tb.exec(
        "client",
        &[
            "curl",
            "-s",
            "--max-time",
            "30",
            "-o",
            got.to_str().unwrap(),
            "http://198.18.100.1/big",
        ],
    );
    assert!(dl.status.success(), "download failed:\n{}", tb.uvsd_log());
    let sum = |p: &std::path::Path| {
        let o = std::process::Command::new("sha256sum")
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };
    let got_sum = sum(&got);
    let originals: Vec<String> = (1..=3)
        .map(|i| sum(&tb.state.join(format!("rs{i}/big"))))
        .collect();
    assert!(
        originals.contains(&got_sum),
        "the download matches none of the servers' files ({got_sum} vs {originals:?})"
    );

    // wrk over kept-alive spliced connections: no failed request.
    let w = tb.sh("client", "timeout 15 wrk -t1 -c8 -d3s http://198.18.100.1/");
    let report = String::from_utf8_lossy(&w.stdout).to_string();
    let (n, errors) = wrk_counts(&report);
    assert!(n > 100, "wrk ran: {report}");
    assert_eq!(errors, 0, "wrk through the SYN proxy:\n{report}");

    let valid_before = common::metric_sum(&tb.metrics(), "uvs_synproxy_cookies_valid_total");
    // A bounded spoofed flood (198.18.0.200 is on the client's link but nobody holds it)
    // while a legitimate client keeps connecting.
    let flood = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.ns("client")])
        .args(["timeout", "15", "python3"])
        .arg(repo().join("scripts/syn_flood.py"))
        .args([FLOOD_SRC, "198.18.100.1", "80", "30000", "6"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("syn_flood.py");
    let flood_pid = flood.id();
    let mut during = Vec::new();
    let mut max_entries = 0.0f64;
    let f0 = Instant::now();
    while f0.elapsed() < Duration::from_secs(5) {
        during.extend(tb.curl_bodies("http://198.18.100.1/", 1));
        max_entries = max_entries.max(common::metric_sum(&tb.metrics(), "uvs_conn_table_entries"));
        let listing = tb.uvsadm(&["-L", "-n", "-c"]);
        let listing = String::from_utf8_lossy(&listing.stdout).to_string();
        assert!(
            !listing.contains(FLOOD_SRC),
            "an entry for the spoofed source:\n{listing}"
        );
    }
    let out = flood.wait_with_output().expect("flood");
    assert!(
        out.status.success(),
        "flood (pid {flood_pid}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = during.iter().filter(|b| *b == "failed").count();
    assert!(
        during.len() >= 3,
        "clients ran during the flood: {during:?}"
    );
    assert_eq!(
        failed, 0,
        "legitimate requests failed during the flood: {during:?}"
    );
    let m = tb.metrics();
    let flood_cookies = common::metric_sum(&m, "uvs_synproxy_cookies_sent_total") - sent;
    let entries = common::metric_sum(&m, "uvs_conn_table_entries");
    eprintln!(
        "flood: {}; {flood_cookies} cookie SYN-ACKs; table entries at most {max_entries} \
         during it, {entries} after; {} legitimate requests during it; client segments \
         held until their server answered: {}, dropped: {}; {:?} in all",
        String::from_utf8_lossy(&out.stdout).trim(),
        during.len(),
        common::metric_sum(&m, "uvs_synproxy_held_total"),
        common::metric_sum(&m, "uvs_drops_total{reason=\"synproxy_not_ready\"}"),
        t0.elapsed()
    );
    assert!(
        flood_cookies > 1000.0,
        "the flood reached uvs: {flood_cookies} cookies"
    );
    // Entries come only from valid cookies, and during the flood only the legitimate
    // client returned one (one connection per curl).
    let valid = common::metric_sum(&m, "uvs_synproxy_cookies_valid_total");
    assert!(
        valid - valid_before <= during.len() as f64,
        "{} valid cookies during the flood for {} requests: some spoofed SYN got in",
        valid - valid_before,
        during.len()
    );
    assert!(
        max_entries <= valid,
        "the table grew during the flood: {max_entries} entries, {valid} valid cookies"
    );
    assert_eq!(
        common::metric_sum(&m, "uvs_drops_total{reason=\"conn_table_full\"}"),
        0.0
    );
}

/// FullNAT through the SYN proxy, both families: the real servers see uvs's pool address
/// (their only way back is through uvs), and a download over IPv6 arrives byte-exact.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn syn_proxy_with_fullnat_over_ipv4_and_ipv6() {
    require_root("syn_proxy_with_fullnat_over_ipv4_and_ipv6");
    let mut tb = Testbed::up("e2esynf", "fullnat");
    let cfg = with_method(&config(), "fullnat");
    tb.start_uvsd(&cfg);
    for (url, pool) in [
        ("http://198.18.100.1/", "198.18.1.100"),
        ("http://[2001:2:0:100::1]/", "2001:2:0:1::100"),
    ] {
        let bodies = tb.curl_bodies(url, 6);
        for b in &bodies {
            let words: Vec<&str> = b.split_whitespace().collect();
            assert_eq!(words.len(), 3, "{url}: {bodies:?}\n{}", tb.uvsd_log());
            assert_eq!(words[2], pool, "{url}: the server sees the pool address");
        }
    }
    let got = tb.state.join("big.synproxy6");
    let dl = tb.exec(
        "client",
        &[
            "curl",
            "-s",
            "-g",
            "--max-time",
            "30",
            "-o",
            got.to_str().unwrap(),
            "http://[2001:2:0:100::1]/big",
        ],
    );
    assert!(dl.status.success(), "download failed:\n{}", tb.uvsd_log());
    let sum = |p: &std::path::Path| {
        let o = std::process::Command::new("sha256sum")
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };
    let got_sum = sum(&got);
    let originals: Vec<String> = (1..=3)
        .map(|i| sum(&tb.state.join(format!("rs{i}/big"))))
        .collect();
    assert!(
        originals.contains(&got_sum),
        "the IPv6 download matches none of the servers' files"
    );
    let m = tb.metrics();
    assert!(
        common::metric_sum(&m, "uvs_synproxy_spliced_total") >= 13.0,
        "{m}"
    );
}
