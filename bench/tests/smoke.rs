//! Smoke tests of the uvs-bench binary: small and quick. The testbed one needs root
//! (namespaces, XDP, AF_XDP): it is `#[ignore]`d, and scripts/test.sh runs it as root.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_uvs-bench"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("uvs-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Runs `cmd`, asserts that it succeeded (showing its stderr if not), and returns its stdout.
fn succeeds(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`succeeds`] for a command whose stderr the test reads: returns that instead.
fn succeeds_saying(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn schedulers_tiny_run_writes_every_figure() {
    let d = scratch("sched");
    let json = d.join("s.json");
    succeeds(
        bench()
            .args([
                "schedulers",
                "--requests",
                "3000",
                "--situations",
                "hetero-exp,slowdown",
            ])
            .args(["--schedulers", "rr,wlc,fastest", "--json"])
            .arg(&json),
    );
    let v = read_json(&json);
    assert_eq!(v["benchmark"], "schedulers");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in results {
        assert_eq!(r["completed"], 3000, "{r}");
        assert!(r["p99_ms"].as_f64().unwrap() >= r["p50_ms"].as_f64().unwrap());
    }
    assert!(v["best_p99"]["hetero-exp"].is_string());
    // What a study needs beside the figures: the run, the machine, the versions.
    let e = &v["environment"];
    assert_eq!(e["command"][1], "schedulers", "{e}");
    assert!(
        e["started_utc"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{e}"
    );
    assert!(
        e["machine"]["logical_cpus"].as_u64().unwrap_or(0) >= 1,
        "{e}"
    );
    assert!(
        e["machine"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty()),
        "{e}"
    );
    assert!(e["machine"]["memory_kib"].as_u64().unwrap_or(0) > 0, "{e}");
    assert_eq!(e["uvs_bench"]["version"], env!("CARGO_PKG_VERSION"), "{e}");
    assert!(e.get("source_tree").is_some(), "{e}");
    // The report says where the figures come from.
    let out_dir = d.join("report");
    succeeds(bench().arg("report").arg(&json).arg("--out").arg(&out_dir));
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        md.contains("CPUs, kernel ") && md.contains("<summary>environment</summary>"),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `l7head`: the three receivers take every segment (each run asserts it) and the
/// figures are written.
#[test]
fn l7head_tiny_run_writes_every_figure() {
    let d = scratch("l7head");
    let json = d.join("l.json");
    succeeds(
        bench()
            .args([
                "l7head",
                "--clients",
                "50",
                "--segments",
                "2",
                "--rounds",
                "1",
            ])
            .arg("--json")
            .arg(&json),
    );
    let v = read_json(&json);
    assert_eq!(v["benchmark"], "l7head");
    for r in ["nat", "uvs", "smoltcp"] {
        assert!(v[r]["ns_per_segment"].as_f64().unwrap() > 0.0, "{v}");
    }
    // uvs holds what it received (three segments of 1 400 bytes per client).
    assert_eq!(v["uvs"]["head_bytes_per_client"].as_f64(), Some(4200.0));
    assert_eq!(v["smoltcp"]["head_bytes_per_client"].as_f64(), Some(8448.0));
    let _ = std::fs::remove_dir_all(&d);
}

/// The checksum scenarios: three modes per frame size, every frame forwarded (a partial
/// checksum the pipeline failed to recognise would be dropped as bad), at the asked size.
#[test]
fn pipeline_checksum_scenarios_forward_every_frame() {
    let d = scratch("csum");
    let json = d.join("p.json");
    succeeds(
        bench()
            .args([
                "pipeline",
                "--flows",
                "64",
                "--seconds",
                "0.06",
                "--new-flows",
                "64",
            ])
            .args([
                "--no-baseline",
                "--protocols",
                "tcp,udp",
                "--families",
                "ipv4,ipv6",
            ])
            .args(["--checksum-frames", "64,1500", "--json"])
            .arg(&json),
    );
    let v = read_json(&json);
    let rows: Vec<_> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["scenario"]["kind"] == "checksum")
        .collect();
    assert_eq!(
        rows.len(),
        2 * 2 * 2 * 3,
        "families x protocols x sizes x modes"
    );
    for r in &rows {
        let sc = &r["scenario"];
        assert!(["off", "full", "partial"].contains(&sc["l4_checksum"].as_str().unwrap()));
        // IPv6/TCP headers alone are 74 bytes: its smallest frame.
        let want = match (
            sc["frame_len"].as_u64().unwrap(),
            &sc["family"],
            &sc["protocol"],
        ) {
            (1500, ..) => true,
            (74, f, p) => f == "ipv6" && p == "tcp",
            (64, f, p) => !(f == "ipv6" && p == "tcp"),
            _ => false,
        };
        assert!(want, "{r}");
        assert!(r["packets"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["forwarded"], r["packets"], "{r}");
        assert_eq!(r["drops"], 0, "{r}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn report_from_tiny_json_files() {
    let d = scratch("report");
    let tb = d.join("testbed.json");
    std::fs::write(
        &tb,
        r#"{"benchmark":"testbed","settings":{"trial_seconds":1},
            "results":[{"subject":"uvs","throughput":{"zero_loss_pps":500000,"max_delivered_pps":600000,"max_offered_pps":900000,"generator_bound":false}},
                       {"subject":"l2fwd","throughput":{"zero_loss_pps":550000,"max_delivered_pps":700000,"max_offered_pps":900000,"generator_bound":false}}],
            "ratios":{"uvs_vs_l2fwd":{"zero_loss":0.91,"max_delivered":0.86}}}"#,
    )
    .unwrap();
    let http = d.join("http.json");
    std::fs::write(
        &http,
        r#"{"benchmark":"http","settings":{},
            "results":[{"subject":"uvs-nat","connection":"keepalive","result":{"requests_per_s":100000,"percentiles":[[50,300],[99,900],[99.9,2000]]}},
                       {"subject":"haproxy","connection":"keepalive","result":{"requests_per_s":60000,"percentiles":[[50,700],[99,2000],[99.9,4000]]}}],
            "ratios":{"uvs_nat_vs_haproxy_keepalive":{"rps":1.67,"p99":0.45}}}"#,
    )
    .unwrap();
    let pipe = d.join("pipeline.json");
    std::fs::write(
        &pipe,
        r#"{"benchmark":"pipeline","settings":{},
            "results":[{"scenario":{"kind":"established","method":"nat","family":"ipv4","protocol":"tcp","flows":1000},"mpps":10.0,"ns_per_packet":100.0},
                       {"scenario":{"kind":"established","method":"nat","family":"ipv4","protocol":"tcp","flows":1000000},"mpps":5.0,"ns_per_packet":200.0},
                       {"scenario":{"kind":"checksum","method":"nat","family":"ipv4","protocol":"tcp","flows":1000,"frame_len":1500,"l4_checksum":"partial"},"mpps":4.0,"ns_per_packet":250.0}]}"#,
    )
    .unwrap();
    let out_dir = d.join("out");
    succeeds(
        bench()
            .arg("report")
            .args([&tb, &http, &pipe])
            .arg("--out")
            .arg(&out_dir),
    );
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for needle in [
        "testbed-throughput.svg",
        "http-rps.svg",
        "http-cdf-keepalive.svg",
        "pipeline-table-size.svg",
        "| uvs / l2fwd | 0.91 | 0.86 |",
        "| checksum partial 1500B | nat | ipv4 | tcp | 1000 | 250.0 | 4.00 |",
    ] {
        assert!(md.contains(needle), "{needle} missing from:\n{md}");
    }
    for svg in [
        "testbed-throughput.svg",
        "http-rps.svg",
        "pipeline-table-size.svg",
    ] {
        let s = std::fs::read_to_string(out_dir.join(svg)).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    }
    // A file that is not one of ours is refused with its name.
    let bad = d.join("bad.json");
    std::fs::write(&bad, r#"{"benchmark":"other"}"#).unwrap();
    let out = bench()
        .arg("report")
        .arg(&bad)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));
    let _ = std::fs::remove_dir_all(&d);
}

/// `#[ignore]`d (listed as ignored, not passed); `scripts/test.sh` runs it as root with
/// `--include-ignored`. Run without root anyway, it fails saying why.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn testbed_smoke_as_root() {
    assert!(
        is_root(),
        "testbed_smoke_as_root needs root (network namespaces, veth, XDP, AF_XDP): run it as \
         root, e.g. scripts/test.sh under sudo"
    );
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_uvs-bench"));
    let uvsd = exe.parent().unwrap().join("uvsd");
    // l2fwd-shared: the shared-UMEM forwarder (uvs_xsk::XskPair) on the same frames.
    let mut subjects = vec!["l2fwd", "l2fwd-shared", "kernel"];
    if uvsd.is_file() {
        subjects.insert(0, "uvs");
    } else {
        eprintln!(
            "testbed_smoke_as_root: {} not built (cargo build -p uvs-control); measuring the peers only",
            uvsd.display()
        );
    }
    let d = scratch("testbed");
    let json = d.join("t.json");
    let stderr = succeeds_saying(
        bench()
            .args([
                "testbed",
                "--tag",
                "bsmoke",
                "--trial-seconds",
                "0.2",
                "--steps",
                "1",
            ])
            .args(["--subjects", &subjects.join(",")])
            // uvs with one queue, then two workers on two-queue links fed by two generator
            // threads (the other subjects use one queue).
            .args(["--queues", "1,2"])
            .arg("--json")
            .arg(&json),
    );
    let v = read_json(&json);
    let results = v["results"].as_array().unwrap();
    let uvs = subjects.contains(&"uvs");
    assert_eq!(results.len(), subjects.len() + usize::from(uvs));
    let queues: Vec<u64> = results
        .iter()
        .filter(|r| r["subject"] == "uvs")
        .map(|r| r["queues"].as_u64().unwrap())
        .collect();
    assert_eq!(queues, if uvs { vec![1, 2] } else { vec![] });
    for r in results {
        let t = &r["throughput"];
        assert!(
            t["max_delivered_pps"].as_f64().unwrap_or(0.0) > 1000.0,
            "{} delivered nothing: {r}\n{stderr}",
            r["subject"]
        );
    }
    // The network is gone afterwards.
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ns.stdout).contains("uvs-bsmoke-"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn pipeline_tiny_run_with_scaling_rows() {
    let d = scratch("pipe");
    let json = d.join("p.json");
    succeeds(
        bench()
            .args([
                "pipeline",
                "--flows",
                "500",
                "--seconds",
                "0.1",
                "--new-flows",
                "500",
            ])
            .args(["--methods", "nat,fullnat", "--workers", "1,2", "--json"])
            .arg(&json),
    );
    let v = read_json(&json);
    assert_eq!(v["benchmark"], "pipeline");
    let rows = v["results"].as_array().unwrap();
    // baseline + 2 established + 2 new-flow + 2 methods × 2 worker counts
    assert_eq!(rows.len(), 9, "{v}");
    for r in rows {
        assert!(r["mpps"].as_f64().unwrap() > 0.0, "{r}");
        if r["scenario"]["kind"] != "baseline" {
            assert_eq!(r["drops"], 0, "nothing dropped: {r}");
        }
    }
    let scaling: Vec<_> = rows
        .iter()
        .filter(|r| r["scenario"]["kind"] == "scaling")
        .collect();
    assert_eq!(scaling.len(), 4);
    assert!(scaling.iter().any(|r| r["scenario"]["workers"] == 2));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn pipeline_sctp_associations_open_and_forward() {
    let d = scratch("pipe-sctp");
    let json = d.join("p.json");
    succeeds(
        bench()
            .args([
                "pipeline",
                "--flows",
                "300",
                "--seconds",
                "0.1",
                "--new-flows",
                "300",
            ])
            .args([
                "--methods",
                "nat,fullnat",
                "--protocols",
                "sctp",
                "--families",
                "ipv4,ipv6",
                "--replies",
                "--json",
            ])
            .arg(&json),
    );
    let v = read_json(&json);
    let mut replies = 0;
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["scenario"]["protocol"], "sctp", "{r}");
        if r["scenario"]["kind"] != "baseline" {
            assert_eq!(r["drops"], 0, "every SCTP packet forwarded: {r}");
            assert_eq!(r["forwarded"], r["packets"], "{r}");
        }
        replies += usize::from(r["scenario"]["kind"] == "replies");
    }
    // The real servers' packets back, for both methods and both families.
    assert_eq!(replies, 4);
    let _ = std::fs::remove_dir_all(&d);
}

/// `sync --link` over a veth pair: a paced run into the 8 MiB buffer uvsd's backup asks
/// for installs every record; the namespaces are gone afterwards.
#[test]
#[ignore = "needs root: network namespaces (scripts/test.sh runs it as root)"]
fn sync_link_smoke_as_root() {
    assert!(
        is_root(),
        "sync_link_smoke_as_root needs root (network namespaces, veth): run it as root, e.g. \
         scripts/test.sh under sudo"
    );
    let out = bench()
        .args([
            "sync",
            "--link",
            "--link-records",
            "4000",
            "--link-rates",
            "20000",
            "--link-rcvbuf",
            "8388608",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("8192 KiB"))
        .unwrap_or_else(|| panic!("no run row:\n{text}"));
    let w: Vec<&str> = row.split_whitespace().collect();
    // rcvbuf (2 words), rate, sent, received, installed, lost, B/conn, wire B/conn
    assert_eq!(w[5], "4000", "installed: {row}");
    assert_eq!(w[6], "0.00%", "lost: {row}");
    let per_conn: f64 = w[7].parse().unwrap();
    assert!(
        (36.0..37.0).contains(&per_conn),
        "bytes per connection: {row}"
    );
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ns.stdout).contains("uvs-sbench-"));
}

/// `http --side-by-side`: two test networks at once, one subject each (nftables, and
/// nftables with uvs's XDP program), both wrk runs with a figure and their CPU time, the
/// second over the first per round, and both networks gone afterwards.
#[test]
#[ignore = "needs root: network namespaces, nftables and XDP (scripts/test.sh runs it as root)"]
fn http_side_by_side_smoke_as_root() {
    assert!(
        is_root(),
        "http_side_by_side_smoke_as_root needs root (network namespaces, nftables, XDP): run \
         it as root, e.g. scripts/test.sh under sudo"
    );
    let d = scratch("side");
    let json = d.join("h.json");
    let stderr = succeeds_saying(
        bench()
            .args(["http", "--side-by-side", "--subjects", "nft,nft-xdp"])
            .args(["--keepalive-only", "--rounds", "2", "--seconds", "1"])
            .args(["--connections", "4", "--rtt-rounds", "0", "--tag", "bsbs"])
            .arg("--json")
            .arg(&json),
    );
    // Each round's two runs name the CPU each network had, swapped in the second.
    assert!(
        stderr.contains("nft on CPU 0, nft-xdp on CPU 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nft on CPU 1, nft-xdp on CPU 0"),
        "{stderr}"
    );
    let v = read_json(&json);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{results:?}");
    for r in results {
        assert!(r["result"]["requests"].as_u64().unwrap() > 0, "{r}");
        assert!(
            r["cpu"]["busy_us_per_request"].as_f64().unwrap() > 0.0,
            "{r}"
        );
    }
    let k = &v["side_by_side_ratios"]["keepalive"];
    assert_eq!(k["rounds"]["rps"].as_array().unwrap().len(), 2, "{k}");
    assert!(k["rps"].as_f64().unwrap() > 0.0, "{k}");
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ns.stdout).contains("uvs-bsbs"));
}

/// `http --family ipv6`: the requests and the UDP round trips go to the IPv6 VIP (nftables
/// in an `ip6` table; uvs's kernel fast path when uvsd is built) and to the first real
/// server's IPv6 address (`direct`), every run with a figure, the family in the header and
/// the JSON, and the network gone afterwards. ~10 s.
#[test]
#[ignore = "needs root: network namespaces, nftables and XDP (scripts/test.sh runs it as root)"]
fn http_ipv6_smoke_as_root() {
    assert!(
        is_root(),
        "http_ipv6_smoke_as_root needs root (network namespaces, nftables, XDP): run it as \
         root, e.g. scripts/test.sh under sudo"
    );
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_uvs-bench"));
    let mut subjects = vec!["direct", "nft"];
    if exe.parent().unwrap().join("uvsd").is_file() {
        subjects.push("uvs-nat-fast-nospin");
    } else {
        eprintln!("http_ipv6_smoke_as_root: uvsd not built (cargo build -p uvs-control); measuring the peers only");
    }
    let d = scratch("http6");
    let json = d.join("h.json");
    let out = bench()
        .args([
            "http",
            "--family",
            "ipv6",
            "--subjects",
            &subjects.join(","),
        ])
        .args(["--seconds", "1", "--connections", "4", "--rtt-rounds", "5"])
        .args(["--tag", "bh6"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("http over ipv6: VIP 2001:2:0:100::1"),
        "{stdout}"
    );
    let v = read_json(&json);
    assert_eq!(v["settings"]["family"], "ipv6");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2 * subjects.len(), "{results:?}");
    for r in results {
        let url = r["url"].as_str().unwrap();
        let want = if r["subject"] == "direct" {
            "http://[2001:2:0:1::11]/"
        } else {
            "http://[2001:2:0:100::1]/"
        };
        assert_eq!(url, want, "{r}");
        assert!(r["result"]["requests"].as_u64().unwrap() > 0, "{r}");
    }
    for r in v["udp_rtt"].as_array().unwrap() {
        assert!(r["result"]["warm_p50_us"].as_f64().unwrap() > 0.0, "{r}");
    }
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ns.stdout).contains("uvs-bh6-"));
}

#[test]
fn memory_tiny_run_prints_a_row_per_size_and_refuses_a_zero_size() {
    let text =
        succeeds(bench().args(["memory", "--mib", "1,2", "--loads", "2000", "--ahead", "4"]));
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (row, mib) in rows.iter().zip([1.0, 2.0]) {
        assert_eq!(row[0], mib, "{text}");
        assert!(row[1] > 0.0 && row[2] > 0.0, "{text}");
    }
    let bad = bench().args(["memory", "--mib", "0"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--mib"));
}

#[test]
fn drop_entry_tiny_run_frees_a_quarter_of_a_full_table() {
    let text = succeeds(bench().args(["drop-entry", "--capacity", "2048,4096", "--rounds", "2"]));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (row, cap) in rows.iter().zip([2048, 4096]) {
        assert_eq!(row[0], cap.to_string(), "{text}");
        assert_eq!(row[1], (cap / 4).to_string(), "a quarter dropped: {text}");
        assert!(row[2].parse::<f64>().unwrap() > 0.0, "{text}");
    }
    let bad = bench()
        .args(["drop-entry", "--capacity", "100"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--capacity"));
}

/// A count of zero or a duration of no time is refused on the command line, naming the
/// option, before anything runs: not a panic (`pipeline --flows 0`, `l7head --clients 0`),
/// NaN figures (`schedulers --requests 0`, `sync --records 0`) or, as root, minutes of a
/// testbed measuring nothing.
#[test]
fn zero_counts_and_durations_are_refused_naming_the_option() {
    for args in [
        &["pipeline", "--flows", "1000,0"][..],
        &["pipeline", "--seconds", "0"],
        &["pipeline", "--new-flows", "0"],
        &["pipeline", "--workers", "0"],
        &["schedulers", "--requests", "0"],
        &["l7head", "--clients", "0"],
        &["l7head", "--segments", "0"],
        &["l7head", "--payload", "0"],
        &["sync", "--records", "0"],
        &["sync", "--new-flows", "0"],
        &["sync", "--rounds", "0"],
        &["wakeup", "--rounds", "0"],
        &["drop-entry", "--rounds", "0"],
        &["drop-entry", "--capacity", "0"],
        &["testbed", "--trial-seconds", "0", "--tag", "bzero"],
        &["http", "--connections", "0", "--tag", "bzero"],
        &["http", "--seconds", "0", "--tag", "bzero"],
        &["synflood", "--capacity", "0", "--tag", "bzero"],
    ] {
        let out = bench().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("invalid value '0'") && stderr.contains(args[1]),
            "{args:?} does not name the option and the value: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} ran: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Interrupted (SIGTERM, as Ctrl-C's SIGINT) while its test network is up, a run takes the
/// network down and exits 128 + the signal, as it does when it finishes or fails.
#[test]
#[ignore = "needs root: network namespaces (scripts/test.sh runs it as root)"]
fn an_interrupted_run_removes_its_test_network_as_root() {
    assert!(
        is_root(),
        "an_interrupted_run_removes_its_test_network_as_root needs root (network namespaces): \
         run it as root, e.g. scripts/test.sh under sudo"
    );
    let netns = || {
        let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&ns.stdout).into_owned()
    };
    let mut child = bench()
        .args([
            "testbed",
            "--tag",
            "bintr",
            "--subjects",
            "kernel",
            "--trial-seconds",
            "5",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the last real server serves (the network is whole) and a trial has begun.
    let start = std::time::Instant::now();
    let busy = loop {
        let pids = Command::new("ip")
            .args(["netns", "pids", "uvs-bintr-rs3"])
            .output()
            .unwrap();
        if !pids.stdout.is_empty() {
            std::thread::sleep(std::time::Duration::from_secs(1));
            break child.try_wait().unwrap().is_none();
        }
        if start.elapsed() > std::time::Duration::from_secs(60)
            || child.try_wait().unwrap().is_some()
        {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(busy, "the run never reached its trials: {stderr}");
    assert_eq!(out.status.code(), Some(128 + 15), "{stderr}");
    let left = netns();
    if left.contains("uvs-bintr-") {
        let _ = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/testbed.sh"
        ))
        .args(["down", "bintr"])
        .status();
        panic!("the interrupted run left its network behind:\n{left}\n{stderr}");
    }
}

/// `sync --json` writes its figures (codec both ways, plain and authenticated; the packet
/// path with the tap off and on) with its settings and the run's environment, like the
/// other measuring subcommands.
#[test]
fn sync_tiny_run_writes_every_figure() {
    let d = scratch("sync");
    let json = d.join("y.json");
    succeeds(
        bench()
            .args([
                "sync",
                "--records",
                "2000",
                "--new-flows",
                "2000",
                "--rounds",
                "1",
            ])
            .arg("--json")
            .arg(&json),
    );
    let v = read_json(&json);
    assert_eq!(v["benchmark"], "sync");
    assert_eq!(v["settings"]["records"], 2000, "{v}");
    let codec = v["results"]["codec"].as_array().unwrap();
    assert_eq!(codec.len(), 2, "{v}");
    for c in codec {
        assert!(c["encode_records_per_s"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["install_records_per_s"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["bytes_per_connection"].as_f64().unwrap() > 30.0, "{c}");
    }
    let p = &v["results"]["packet_path"];
    assert!(
        p["new_flows_nat_ipv4_tcp"]["tap_on_mpps"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    assert!(
        v["environment"]["machine"]["logical_cpus"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let _ = std::fs::remove_dir_all(&d);
}
