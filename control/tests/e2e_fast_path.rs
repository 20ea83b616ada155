//! End to end on the test network (as root), `workers.kernel_fast_path`: uvsd refuses to
//! start without IPv4 forwarding, and without IPv6 forwarding while it has IPv6 services
//! (the demo configuration has); with both, requests are balanced as before, a 20 MB
//! download through each VIP (IPv4 and IPv6) arrives whole (its segments' partial
//! checksums kept right by the XDP program's rewrite), most of its packets never reach a
//! worker, the packets the kernel forwarded are in the service's counters, and the
//! connections close in the connection table (their FINs still go to the workers);
//! connection per request, only the SYN, the handshake's ACK and the FINs of a connection
//! reach a worker; the rewritten frames of both families are sent on by the TC program
//! (uvs's own routes), past the kernel's forwarding. FullNAT too, both families, with full
//! checksums.

mod common;
use common::*;

fn fast_config() -> String {
    demo_config().replace(
        "workers:\n  count: 1\n",
        "workers:\n  count: 1\n  kernel_fast_path: true\n",
    )
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn kernel_fast_path_forwards_established_flows() {
    require_root("kernel_fast_path_forwards_established_flows");
    let mut tb = Testbed::up("e2efast", "nat");
    let cfg = fast_config();
    assert!(
        cfg.contains("kernel_fast_path: true"),
        "the demo's workers section moved"
    );

    // The testbed's NAT balancer namespace forwards nothing: uvsd must refuse, saying why.
    let path = tb.state.join("fast.yaml");
    std::fs::write(&path, &cfg).unwrap();
    let refused = tb.exec(
        "lb",
        &[
            env!("CARGO_BIN_EXE_uvsd"),
            "--config",
            path.to_str().unwrap(),
            "--admin-socket",
            tb.state.join("refused.sock").to_str().unwrap(),
            "--run-for",
            "5",
        ],
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "uvsd started without forwarding:\n{err}"
    );
    assert!(
        err.contains("net.ipv4.ip_forward is 0"),
        "the refusal names the sysctl:\n{err}"
    );
    tb.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // The demo has IPv6 services: without IPv6 forwarding uvsd refuses too.
    let refused = tb.exec(
        "lb",
        &[
            env!("CARGO_BIN_EXE_uvsd"),
            "--config",
            path.to_str().unwrap(),
            "--admin-socket",
            tb.state.join("refused6.sock").to_str().unwrap(),
            "--run-for",
            "5",
        ],
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "uvsd started without IPv6 forwarding:\n{err}"
    );
    assert!(
        err.contains("net.ipv6.conf.all.forwarding is 0"),
        "the refusal names the IPv6 sysctl:\n{err}"
    );

    tb.exec("lb", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    tb.start_uvsd(&cfg);
    let answers = tb.curl_many("http://198.18.100.1/", 12);
    let mut servers: Vec<_> = answers.clone();
    servers.sort();
    servers.dedup();
    assert!(
        !answers.iter().any(|a| a == "failed") && servers.len() == 3,
        "all three real servers answer: {answers:?}\n{}",
        tb.uvsd_log()
    );

    let before = tb.metrics();
    let got = tb.sh(
        "client",
        "curl -s --max-time 30 http://198.18.100.1/big | sha256sum | cut -d' ' -f1",
    );
    let got = String::from_utf8_lossy(&got.stdout).trim().to_string();
    let want: Vec<String> = (1..=3)
        .map(|i| {
            let o = std::process::Command::new("sha256sum")
                .arg(tb.state.join(format!("rs{i}/big")))
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        want.contains(&got),
        "the download arrived whole: {got} not in {want:?}"
    );

    // Worker 0 takes the lines' counts once a second (an idle worker wakes once a second):
    // they reach the service's counters within about two; a loaded machine gets 10.
    let t = std::time::Instant::now();
    let (mut after, mut out);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        after = tb.metrics();
        out = metric_sum(&after, "uvs_service_packets_out_total")
            - metric_sum(&before, "uvs_service_packets_out_total");
        if out > 14_000.0 || t.elapsed() > std::time::Duration::from_secs(10) {
            break;
        }
    }
    eprintln!(
        "the lines' counts reached the service's {:?} after the download",
        t.elapsed()
    );
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    let worker = delta("uvs_worker_rx_packets_total");
    let fast = delta("uvs_fast_path_packets_total");
    assert!(
        fast > 14_000.0,
        "the XDP program counts what it gave the kernel: {fast}\n{after}"
    );
    // The TC program sent them on by uvs's routes (the test network's two subnets),
    // past the kernel's forwarding; the download's checksum above shows them intact.
    let sent = delta("uvs_fast_path_sent_packets_total");
    assert!(
        sent >= fast * 0.99,
        "the TC program sent {sent} of the {fast} packets the fast path rewrote\n{after}"
    );
    // 20 MB in segments of at most 1448 bytes: over 14 000 packets towards the client.
    assert!(
        out > 14_000.0,
        "the kernel's packets are counted for the service: {out} out\n{after}"
    );
    assert!(
        worker < out / 10.0,
        "most packets bypass the workers: {worker} of {out} reached one"
    );

    // The connections' FINs went to the workers: none is left ESTABLISHED.
    let conns = tb.uvsadm(&["-Lnc"]);
    let conns = String::from_utf8_lossy(&conns.stdout);
    assert!(
        !conns.contains("ESTABLISHED"),
        "connections closed through the fast path stay open in the table:\n{conns}"
    );

    // Connection per request: of each connection's ~11 packets the SYN, the handshake's
    // ACK and the two FINs must reach a worker (a race may add an ACK or two); the real
    // server's SYN-ACK, the request, the response and the close's ACKs pass by the lines
    // (the worker saw 7 a connection when the lines came at the SYN-ACK and went at the
    // first FIN). Every connection still ends closed in the table: none is left in
    // SYN_RECV or ESTABLISHED, so the workers saw the handshake's ACK and the FINs.
    connection_per_request(&tb, "http://198.18.100.1/", "");
    // The TC program takes the TTL (and the header checksum with it) down as the kernel's
    // forwarding would.
    one_hop_on(&tb, "ip", "ttl", "http://198.18.100.1/big");
    ipv6_through_the_fast_path(&tb);
    tb.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    tb.exec("lb", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]);
}

/// The same through the IPv6 VIP: a 20 MB download arrives whole with most of its packets
/// past the workers (rewritten by the XDP program's IPv6 table and sent on by the TC
/// program's IPv6 routes), its counts reach the service,
/// its connection closes in the table; connection per request, only the SYN, the
/// handshake's ACK and the FINs reach a worker.
fn ipv6_through_the_fast_path(tb: &Testbed) {
    let answers = tb.curl_many("http://[2001:2:0:100::1]/", 6);
    assert!(
        !answers.iter().any(|a| a == "failed"),
        "the IPv6 VIP answers: {answers:?}\n{}",
        tb.uvsd_log()
    );
    // The TC program sent them on by uvs's IPv6 routes, past the kernel's forwarding.
    let d = download(tb, "http://[2001:2:0:100::1]/big", true);
    assert!(
        d.sent >= d.fast * 0.99,
        "the TC program sent {} of the {} IPv6 packets the fast path rewrote",
        d.sent,
        d.fast
    );
    let conns = tb.uvsadm(&["-Lnc"]);
    let conns = String::from_utf8_lossy(&conns.stdout);
    assert!(
        !conns.contains("ESTABLISHED"),
        "IPv6 connections closed through the fast path stay open in the table:\n{conns}"
    );

    // The TC program takes the hop limit down as the kernel's forwarding (and a worker)
    // would: the real servers send 64, the client sees 63 on the download's segments.
    one_hop_on(tb, "ip6", "hlim", "http://[2001:2:0:100::1]/big");
    connection_per_request(tb, "http://[2001:2:0:100::1]/", "IPv6 ");
}

/// 30 connections, one request each, to `url` (`family`: "" or "IPv6 ", for the
/// messages): every request answered, at most 6 of a connection's frames at a worker and
/// at least 4 by the lines, and none of the connections left ESTABLISHED or SYN_RECV in
/// the table.
fn connection_per_request(tb: &Testbed, url: &str, family: &str) {
    const N: f64 = 30.0;
    let before = tb.metrics();
    let ok = tb.sh(
        "client",
        &format!(
            "for i in $(seq 30); do curl -s -g -o /dev/null -w '%{{http_code}}\\n' --max-time 5 '{url}'; done | grep -c '^200$'"
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "30",
        "every {family}request answered"
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let after = tb.metrics();
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    let (worker, fast) = (
        delta("uvs_worker_rx_packets_total"),
        delta("uvs_fast_path_packets_total"),
    );
    eprintln!("{family}connection per request: {worker} frames reached the worker, {fast} passed by the lines, for {N} connections");
    assert!(
        worker <= 6.0 * N && fast >= 4.0 * N,
        "{worker} frames reached the worker and {fast} passed by the lines for {N} {family}connections"
    );
    let conns = tb.uvsadm(&["-Lnc"]);
    let conns = String::from_utf8_lossy(&conns.stdout);
    assert!(
        !conns.contains("ESTABLISHED") && !conns.contains("SYN_RECV"),
        "{family}connections through the fast path left open in the table:\n{conns}"
    );
}

/// What a download through the fast path left in uvsd's counters.
struct Download {
    worker: f64,
    fast: f64,
    sent: f64,
}

/// Captures 20 of the download's segments from `url` (`family`: tcpdump's `ip` or `ip6`)
/// on the client and checks that each arrived with hop limit or TTL (`field`, as `tcpdump
/// -v` prints it) 63: the real servers send 64, and the balancer is one hop. tcpdump
/// checks the IPv4 header checksum too (`bad cksum`).
fn one_hop_on(tb: &Testbed, family: &str, field: &str, url: &str) {
    let cap = tb.sh(
        "client",
        &format!(
            "timeout 20 tcpdump -l -i uvs-c0 -nn -v -c 20 '{family} and tcp src port 80 and \
             greater 1000' 2>/dev/null & sleep 1; curl -s -g --max-time 30 -o /dev/null \
             '{url}'; wait"
        ),
    );
    let cap = String::from_utf8_lossy(&cap.stdout);
    let hops: Vec<&str> = cap
        .split([',', '('])
        .map(str::trim)
        .filter(|f| f.starts_with(&format!("{field} ")))
        .collect();
    assert!(
        hops.len() >= 10 && hops.iter().all(|h| *h == format!("{field} 63")),
        "{url}: the download's segments reach the client one hop on: {hops:?}\n{cap}"
    );
    assert!(!cap.contains("bad cksum"), "{url}: {cap}");
}

/// Downloads the real servers' 20 MB file from `url` on the client and checks that it
/// arrived whole, that the XDP program gave the kernel most of its packets (over 14 000
/// towards the client in segments of at most 1 448 bytes), that they reached the
/// service's counters, and that fewer than a tenth reached a worker. With `full`, the
/// real servers send it with full checksums (transmit offload off), which the client's
/// kernel verifies: a partial checksum is never checked on veth (ARCHITECTURE.md, platform
/// facts), so only full ones show the rewrite's checksum update right end to end
/// (program_tests.rs checks both kinds).
fn download(tb: &Testbed, url: &str, full: bool) -> Download {
    if full {
        for rs in ["rs1", "rs2", "rs3"] {
            let o = tb.exec(rs, &["ethtool", "-K", "uvs-r0", "tx", "off"]);
            assert!(o.status.success(), "{rs}: ethtool -K uvs-r0 tx off: {o:?}");
        }
    }
    let before = tb.metrics();
    let got = tb.sh(
        "client",
        &format!("curl -s -g --max-time 30 '{url}' | sha256sum | cut -d' ' -f1"),
    );
    if full {
        for rs in ["rs1", "rs2", "rs3"] {
            tb.exec(rs, &["ethtool", "-K", "uvs-r0", "tx", "on"]);
        }
    }
    let got = String::from_utf8_lossy(&got.stdout).trim().to_string();
    let want: Vec<String> = (1..=3)
        .map(|i| {
            let o = std::process::Command::new("sha256sum")
                .arg(tb.state.join(format!("rs{i}/big")))
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        want.contains(&got),
        "{url} arrived whole: {got} not in {want:?}"
    );
    let t = std::time::Instant::now();
    let (mut after, mut out);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        after = tb.metrics();
        out = metric_sum(&after, "uvs_service_packets_out_total")
            - metric_sum(&before, "uvs_service_packets_out_total");
        if out > 14_000.0 || t.elapsed() > std::time::Duration::from_secs(10) {
            break;
        }
    }
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    let d = Download {
        worker: delta("uvs_worker_rx_packets_total"),
        fast: delta("uvs_fast_path_packets_total"),
        sent: delta("uvs_fast_path_sent_packets_total"),
    };
    eprintln!(
        "{url}: {} frames reached the worker, {} passed by the lines, {} sent by the TC \
         program, {out} counted out",
        d.worker, d.fast, d.sent
    );
    assert!(
        d.fast > 14_000.0,
        "the XDP program counts the packets of {url} it gave the kernel: {}\n{after}",
        d.fast
    );
    assert!(
        out > 14_000.0,
        "the kernel's packets of {url} are counted for the service: {out} out\n{after}"
    );
    assert!(
        d.worker < out / 10.0,
        "most packets of {url} bypass the workers: {} of {out} reached one",
        d.worker
    );
    d
}

/// FullNAT, both families: the real servers answer uvs's pool addresses, which the lines
/// rewrite back to the VIP; downloads arrive whole (with full checksums) past the workers,
/// sent on by the TC program, and the connections close.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn kernel_fast_path_forwards_fullnat_flows_of_both_families() {
    require_root("kernel_fast_path_forwards_fullnat_flows_of_both_families");
    let mut tb = Testbed::up("e2efastf", "fullnat");
    tb.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    tb.exec("lb", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    tb.start_uvsd(&with_method(&fast_config(), "fullnat"));
    for url in ["http://198.18.100.1/", "http://[2001:2:0:100::1]/"] {
        let answers = tb.curl_many(url, 6);
        assert!(
            !answers.iter().any(|a| a == "failed"),
            "{url} answers: {answers:?}\n{}",
            tb.uvsd_log()
        );
    }
    let d = download(&tb, "http://198.18.100.1/big", true);
    assert!(
        d.sent >= d.fast * 0.99,
        "the TC program sent {} of the {} IPv4 packets",
        d.sent,
        d.fast
    );
    let d = download(&tb, "http://[2001:2:0:100::1]/big", true);
    assert!(
        d.sent >= d.fast * 0.99,
        "the TC program sent {} of the {} IPv6 packets",
        d.sent,
        d.fast
    );
    let conns = tb.uvsadm(&["-Lnc"]);
    let conns = String::from_utf8_lossy(&conns.stdout);
    assert!(
        !conns.contains("ESTABLISHED"),
        "FullNAT connections closed through the fast path stay open in the table:\n{conns}"
    );
}

/// The first IPv6 services added at a reload while the balancer's kernel does not forward
/// IPv6: uvsd started with IPv4 services only (so it did not refuse), and the fast path's
/// IPv6 half, whose frames the kernel would forward, stays off. The reload warns once,
/// naming the sysctl, and the IPv6 services are served by the workers, whole, rather than
/// rewritten by the XDP program for a kernel that would drop them.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn ipv6_services_added_at_a_reload_without_ipv6_forwarding_stay_with_the_workers() {
    require_root("ipv6_services_added_at_a_reload_without_ipv6_forwarding_stay_with_the_workers");
    let mut tb = Testbed::up("e2ef6rl", "nat");
    tb.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let forwarding = tb.exec("lb", &["sysctl", "-n", "net.ipv6.conf.all.forwarding"]);
    assert_eq!(
        String::from_utf8_lossy(&forwarding.stdout).trim(),
        "0",
        "the testbed's balancer forwards no IPv6"
    );
    let full = fast_config();
    let v6_at = full
        .find("\n  - name: web6\n")
        .expect("the demo's IPv6 services moved");
    let v4_only = format!("{}\n", &full[..v6_at]);
    assert!(!v4_only.contains("vip: \"2001:"), "{v4_only}");
    tb.start_uvsd(&v4_only);
    let served = tb.curl_many("http://198.18.100.1/", 3);
    assert!(!served.iter().any(|a| a == "failed"), "{served:?}");

    std::fs::write(tb.state.join("uvs.yaml"), &full).unwrap();
    let logged = tb.uvsd_log().len();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    tb.wait_log(logged, "configuration reloaded");
    tb.wait_log(
        logged,
        "net.ipv6.conf.all.forwarding is not 1 in uvsd's network namespace: IPv6 flows stay with the workers",
    );

    // A 20 MB IPv6 download: whole, and the workers', not the XDP program's.
    let before = tb.metrics();
    let got = tb.sh(
        "client",
        "curl -s -g --max-time 30 -o /dev/null -w '%{size_download}' 'http://[2001:2:0:100::1]/big'",
    );
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "20971520",
        "the IPv6 download did not arrive whole:\n{}",
        tb.uvsd_log()
    );
    let after = tb.metrics();
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    let (fast, worker) = (
        delta("uvs_fast_path_packets_total"),
        delta("uvs_worker_rx_packets_total"),
    );
    eprintln!("IPv6 download: fast path {fast}, workers {worker}");
    assert!(
        fast == 0.0 && worker > 10_000.0,
        "IPv6 frames went by the fast path with IPv6 forwarding off: {fast} rewritten, {worker} at the workers\n{after}"
    );
}
