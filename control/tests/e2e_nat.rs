//! End to end on the test network (as root): curl through the VIP to nginx real servers
//! over IPv4 and IPv6 with NAT, UDP through the VIP, checksums checked on a capture of the
//! server side, the host reachable while uvsd runs, and traffic passing again after uvsd
//! is killed with SIGKILL (its XDP program goes with it).

mod common;
use common::*;
use std::collections::BTreeMap;

fn tally(answers: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in answers {
        *m.entry(a.clone()).or_insert(0) += 1;
    }
    m
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn nat_balances_http_and_udp_over_ipv4_and_ipv6() {
    require_root("nat_balances_http_and_udp_over_ipv4_and_ipv6");
    let mut tb = Testbed::up("e2enat", "nat");
    // Capture what uvs forwards from the client to real server 1, to check the checksums
    // uvs wrote: the client's sockets send them partial (veth offload), so they pass only
    // if uvs completed them. Segments that do not pass through uvs are left out: rs1's own
    // and the balancer kernel's health checks are partial on the wire, as offload leaves
    // them, and tcpdump would call them incorrect.
    let pcap = tb.state.join("rs1.pcap");
    let cap = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.ns("rs1"),
            "tcpdump",
            "-i",
            "uvs-r0",
            "-U",
            "-n",
            "-w",
        ])
        .arg(&pcap)
        .args([
            "-c",
            "400",
            "(tcp port 80 or udp port 53) and (src host 198.18.0.2 or src host 2001:2::2)",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump (install tcpdump)");
    std::thread::sleep(std::time::Duration::from_millis(500));
    tb.start_uvsd(&demo_config());

    let v4 = tb.curl_many("http://198.18.100.1/", 12);
    let v6 = tb.curl_many("http://[2001:2:0:100::1]/", 12);
    for (fam, answers) in [("IPv4", &v4), ("IPv6", &v6)] {
        let t = tally(answers);
        assert!(
            !t.contains_key("failed"),
            "{fam}: some requests failed: {t:?}\n{}",
            tb.uvsd_log()
        );
        assert_eq!(
            t.len(),
            3,
            "{fam}: all three real servers must answer: {t:?}"
        );
        assert!(
            t.values().all(|n| *n == 4),
            "{fam}: round robin gives 4 each: {t:?}"
        );
    }

    // UDP through the VIP, both families.
    let udp = tb.sh(
        "client",
        r#"for vip in 198.18.100.1 2001:2:0:100::1; do for i in 1 2 3; do
             python3 -c "
import socket,sys
v=sys.argv[1]; s=socket.socket(socket.AF_INET6 if ':' in v else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2); s.sendto(b'q', (v, 53)); print(s.recvfrom(100)[0].split()[0].decode())" $vip; done; done"#,
    );
    let udp_out = String::from_utf8_lossy(&udp.stdout);
    let names: Vec<&str> = udp_out.lines().collect();
    assert_eq!(
        names.len(),
        6,
        "UDP answers: {udp_out} {}",
        String::from_utf8_lossy(&udp.stderr)
    );
    for fam in names.chunks(3) {
        let mut f = fam.to_vec();
        f.sort();
        assert_eq!(f, ["rs1", "rs2", "rs3"], "UDP is spread too");
    }

    // The balancer's own address is the kernel's: reachable while uvsd runs.
    let ping = tb.exec("client", &["ping", "-c", "2", "-W", "1", "198.18.0.1"]);
    assert!(ping.status.success(), "host unreachable while uvsd runs");
    // The VIP answers ping through uvs's slow path.
    let ping = tb.exec("client", &["ping", "-c", "1", "-W", "2", "198.18.100.1"]);
    assert!(ping.status.success(), "VIP does not answer ping");

    // uvsadm shows the services and the connections counted.
    let list = tb.uvsadm(&["-L", "-n", "--stats"]);
    let list_s = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "uvsadm: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(list_s.contains("198.18.100.1:80"), "{list_s}");

    // Every TCP/UDP segment uvs sent to rs1 has valid checksums.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &cap.id().to_string()])
        .status();
    let mut cap = cap;
    let _ = cap.wait();
    let dump = std::process::Command::new("tcpdump")
        .args(["-r"])
        .arg(&pcap)
        .args(["-n", "-vv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    let checked = text.matches("(correct)").count();
    assert!(
        checked > 10,
        "too few checksums verified in the capture:\n{text}"
    );
    assert!(
        !text.contains("incorrect") && !text.contains("bad udp cksum"),
        "bad checksums on the wire:\n{text}"
    );

    // SIGKILL: the BPF link goes with the process; the host passes traffic again.
    tb.stop_uvsd("KILL");
    let link = tb.exec("lb", &["ip", "link", "show", "uvs-lb0"]);
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "XDP program left attached after SIGKILL"
    );
    let ping = tb.exec("client", &["ping", "-c", "2", "-W", "1", "198.18.0.1"]);
    assert!(
        ping.status.success(),
        "host unreachable after uvsd was killed"
    );
}

/// Two workers on two-queue links: flows land on either worker, and a reply that arrives
/// on the other worker's queue still finds its connection (the shared table).
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn two_workers_share_the_connection_table() {
    require_root("two_workers_share_the_connection_table");
    let mut tb = Testbed::up_with("e2emq", "nat", 2);
    let cfg = demo_config()
        .replace("    queues: 1\n", "    queues: 2\n")
        .replace("workers:\n  count: 1\n", "workers:\n  count: 2\n");
    assert!(cfg.contains("count: 2"), "demo.yaml layout changed");
    tb.start_uvsd(&cfg);
    let answers = tb.curl_many("http://198.18.100.1/", 24);
    assert!(
        !answers.iter().any(|a| a == "failed"),
        "{answers:?}\n{}",
        tb.uvsd_log()
    );
    let text = tb.metrics();
    for w in ["0", "1"] {
        let rx: u64 = text
            .lines()
            .find(|l| l.starts_with(&format!("uvs_worker_rx_packets_total{{worker=\"{w}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(rx > 0, "worker {w} received nothing:\n{text}");
    }
    let drops: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("uvs_drops_total") && !l.ends_with(" 0"))
        .collect();
    assert!(drops.is_empty(), "drops: {drops:?}");
}

/// A uvsd serving one queue of two-queue links says so: the frames a veth (or a NIC's RSS)
/// steers to the other queue pass to the kernel unbalanced, the neighbour answers uvsd
/// waits for among them.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn fewer_queues_than_the_link_has_are_warned_about() {
    require_root("fewer_queues_than_the_link_has_are_warned_about");
    let mut tb = Testbed::up_with("e2eqw", "nat", 2);
    tb.start_uvsd(&demo_config());
    let log = tb.uvsd_log();
    for dev in ["uvs-lb0", "uvs-lb1"] {
        assert!(
            log.contains(&format!(
                "interface '{dev}' has 2 receive queues but uvsd serves 1"
            )),
            "{log}"
        );
    }
}
