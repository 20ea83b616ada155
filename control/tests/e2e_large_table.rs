//! End to end (as root) at uvsd's default connection-table size: 2^20 entries, where the
//! workers look a burst's flows up together (hashed while the burst is parsed, buckets and
//! entries prefetched ahead, `dataplane/src/worker.rs`), where the other end-to-end tests'
//! 65 536-entry tables take one lookup at a time. Downloads of 20 MiB through the VIP over
//! IPv4 and IPv6, with NAT and with FullNAT, the servers' segments arriving in bursts,
//! come out byte for byte as one of the real servers holds the file; small requests still
//! reach all three real servers; the workers' `uvs_worker_burst_lookups_total` shows that
//! the large-table path did the work, and no packet was dropped for a reason that would
//! mean a wrong lookup.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::process::Command;

/// sha256 of a file, or of what `cmd` writes, as hex.
fn sha256_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("sha256sum");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The demo's configuration with every service on `method` (FullNAT: with a pool of the
/// service's family), at the default table size.
fn config_for(method: &str) -> String {
    default_sized(&with_method(&demo_config(), method))
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn downloads_through_the_default_sized_table_take_the_burst_path_whole() {
    require_root("downloads_through_the_default_sized_table_take_the_burst_path_whole");
    // NAT and FullNAT: the methods whose servers' segments come back through uvs.
    for method in ["nat", "fullnat"] {
        downloads_whole(method);
    }
}

fn downloads_whole(method: &str) {
    let mut tb = Testbed::up(&format!("e2eb{}", &method[..3]), method);
    tb.start_uvsd(&config_for(method));
    let m = tb.metrics();
    assert_eq!(
        metric_sum(&m, "uvs_conn_table_capacity"),
        1048576.0,
        "the default size:\n{m}"
    );
    // What the real servers hold: each its own 20 MiB of random bytes.
    let held: BTreeSet<String> = (1..=3)
        .map(|i| sha256_of(Command::new("sha256sum").arg(tb.state.join(format!("rs{i}/big")))))
        .collect();
    assert_eq!(held.len(), 3, "three different files");
    let before = metric_sum(&m, "uvs_worker_burst_lookups_total");
    for url in ["http://198.18.100.1/big", "http://[2001:2:0:100::1]/big"] {
        let got = sha256_of(Command::new("sh").args([
            "-c",
            &format!(
                "ip netns exec {} curl -sf --max-time 60 {url} | sha256sum",
                tb.ns("client")
            ),
        ]));
        assert!(
            held.contains(&got),
            "{method} {url}: the download is none of the real servers' files ({got})\n{}",
            tb.uvsd_log()
        );
    }
    for url in ["http://198.18.100.1/", "http://[2001:2:0:100::1]/"] {
        let answers = tb.curl_many(url, 9);
        let servers: BTreeSet<_> = answers.iter().collect();
        assert!(
            !servers.iter().any(|a| *a == "failed") && servers.len() == 3,
            "{method} {url}: all three real servers answer: {answers:?}"
        );
    }
    let m = tb.metrics();
    let burst = metric_sum(&m, "uvs_worker_burst_lookups_total") - before;
    eprintln!(
        "{method}: {burst} packets looked up with their burst, of {} received",
        metric_sum(&m, "uvs_worker_rx_packets_total")
    );
    // 40 MiB is ~28 000 full-size segments from the servers, and the clients' ACKs.
    assert!(
        burst > 10_000.0,
        "{method}: the downloads' packets were looked up a burst at a time: {burst}\n{m}"
    );
    // The clients' ACKs are client → server packets of established connections: at this
    // table size each burst received ahead is read at fixed offsets, not parsed, and the
    // ACKs are replayed from their flow's record (two busy flows here) or their
    // connection's class record (`dataplane/src/flowcache.rs`; FullNAT's never are).
    let flows = metric_sum(&m, "uvs_worker_flow_cache_total");
    let classes = metric_sum(&m, "uvs_worker_class_replays_total");
    eprintln!("{method}: {flows} packets replayed from flow records, {classes} from class records");
    assert!(
        flows + classes > 1_000.0,
        "{method}: the clients' ACKs were replayed: {flows} + {classes}\n{m}"
    );
    if method != "nat" {
        assert_eq!(classes, 0.0, "{method}: no class records for FullNAT\n{m}");
    }
    // A lookup that lost a flow shows as a mid-flow segment refused or a clash.
    for reason in [
        "no_service",
        "tcp_not_syn",
        "bad_l4_checksum",
        "conn_table_full",
        "conn_tuple_clash",
        "conn_insert_contended",
        "conn_entry_invalid",
    ] {
        let name = format!("uvs_drops_total{{reason=\"{reason}\"}}");
        assert_eq!(metric_sum(&m, &name), 0.0, "{method} {name}:\n{m}");
    }
}
