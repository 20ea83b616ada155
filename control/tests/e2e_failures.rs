//! End to end (as root), failures handled as IPVS handles them, with clients that reuse
//! their source ports (wrk with `Connection: close` over a 256-port range, as a busy NATed
//! client does): a real server whose nginx stops, and one a reload removes, get no new
//! connection once detected — 0 failed requests — even though the clients' ports still
//! have TIME_WAIT entries pointing at them; ActiveConn/InActConn return to 0 when the
//! table drains; a SYN flood that fills the table leaves legitimate clients served within
//! 2 s of its end, and the metrics and the log say what happened; a UDP flood that fills
//! it, within about a minute (its flows idle for 60 s); a server taken out of one service while it serves another keeps its
//! connections in the first until they end; a dead server goes down while `uvsadm` edits
//! keep restarting the checks; the balancer's links going down and up are served again at
//! once; an interface removed and made again is attached to again in place, a download
//! through it going on; one gone for good stops uvsd, with the reason.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// The demo configuration with fast health checks, short closing timeouts (so the table
/// drains within the test) and `capacity` connections.
fn config(capacity: u32) -> String {
    demo_config()
        .replace(
            "      interval: 2\n      timeout: 1\n",
            "      interval: 0.5\n      timeout: 0.4\n",
        )
        .replace(
            "      rise: 2\n      fall: 3\n",
            "      rise: 2\n      fall: 2\n",
        )
        .replace(
            "conn_table:\n  capacity: 65536\n",
            &format!(
                "conn_table:\n  capacity: {capacity}\n\ntimeouts:\n  tcp_fin_wait: 3\n  tcp_time_wait: 3\n  tcp_close: 3\n  tcp_close_wait: 3\n  tcp_last_ack: 3\n  tcp_syn_recv: 30\n"
            ),
        )
}

/// wrk's connections in [`wrk_close`].
const WRK_CONNECTIONS: u64 = 16;

/// wrk from the client, one connection per request, for `secs` seconds; returns its
/// report. The client's ports are limited to 256 (TIME_WAIT ports reused, `tcp_tw_reuse`) so every
/// port is reused many times.
///
/// `tcp_tw_reuse_delay=1` (ms; Linux ≥ 6.13, default 1 000) lets the client reuse its own
/// TIME_WAIT ports at once. Without it, the range runs out: whenever wrk closes a
/// connection before the server's FIN arrives, the client's port sits in TIME_WAIT and may
/// be reused only a second later. That happens to about 7 % of connections through uvs
/// (the answer and nginx's FIN arrive in two bursts, microseconds apart) and 0.4 % through
/// nftables DNAT (measured with tcpdump on the client). After ~250 such ports, `connect()`
/// fails with EADDRNOTAVAIL — wrk's "connect" errors — and wrk retires a connection at
/// its first failed connect, so each run counted up to 16 (one per connection) and slowed
/// down, with nothing dropped by uvs. With the delay at 1 ms the same runs count 0.
fn wrk_close(tb: &Testbed, secs: u32) -> String {
    let out = tb.sh(
        "client",
        &format!(
            "sysctl -qw net.ipv4.ip_local_port_range='40000 40255' net.ipv4.tcp_tw_reuse=1 \
             net.ipv4.tcp_tw_reuse_delay=1 && \
             timeout {} wrk -t1 -c{WRK_CONNECTIONS} -d{secs}s -H 'Connection: close' http://198.18.100.1/",
            secs + 10
        ),
    );
    String::from_utf8_lossy(&out.stdout).to_string()
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
            // "connect 0, read 0, write 0, timeout 0"
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

/// Counts, in real server `rs`'s namespace, TCP SYNs from the client (health checks come
/// from the balancer's addresses and are not counted).
fn count_client_syns(tb: &Testbed, rs: &str) {
    let out = tb.sh(
        rs,
        "nft add table inet uvstest && \
         nft add chain inet uvstest input '{ type filter hook input priority 0; }' && \
         nft add rule inet uvstest input ip saddr 198.18.0.2 tcp flags syn / syn,ack counter",
    );
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Client SYNs counted so far by [`count_client_syns`].
fn client_syns(tb: &Testbed, rs: &str) -> u64 {
    let out = tb.exec(rs, &["nft", "list", "chain", "inet", "uvstest", "input"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("nft counter: {text}"))
}

/// (ActiveConn, InActConn) summed over web4's real servers, from `uvsadm -L -n`.
fn web4_conns(tb: &Testbed) -> (u64, u64, String) {
    let list = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n"]).stdout).to_string();
    let mut in_web4 = false;
    let (mut act, mut inact) = (0, 0);
    for l in list.lines() {
        if l.starts_with("TCP") || l.starts_with("UDP") || l.starts_with("SCTP") {
            in_web4 = l.starts_with("TCP  198.18.100.1:80");
            continue;
        }
        if in_web4 && l.trim_start().starts_with("->") {
            let f: Vec<&str> = l.split_whitespace().collect();
            // -> addr:port Forward Weight ActiveConn InActConn
            if f.len() >= 6 {
                act += f[4].parse::<u64>().unwrap_or(0);
                inact += f[5].parse::<u64>().unwrap_or(0);
            }
        }
    }
    (act, inact, list)
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn port_reuse_never_reaches_a_dead_or_removed_server() {
    require_root("port_reuse_never_reaches_a_dead_or_removed_server");
    let mut tb = Testbed::up("e2efail", "nat");
    let cfg = config(65536);
    tb.start_uvsd(&cfg);

    // Warm up: every client port gets entries on every real server.
    let report = wrk_close(&tb, 3);
    let (n, errors) = wrk_counts(&report);
    assert!(n > 100, "wrk ran: {report}");
    eprintln!("warm-up: {n} requests, {errors} errors");

    // rs2's nginx stops; once the health check says so, no request may fail.
    let conf = tb.state.join("rs2/nginx.conf");
    let stop = tb.exec(
        "rs2",
        &["nginx", "-c", conf.to_str().unwrap(), "-s", "stop"],
    );
    assert!(stop.status.success());
    let t0 = Instant::now();
    while real_up(&tb, "198.18.1.12:80") != Some(false) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "rs2 not detected down:\n{}",
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = wrk_close(&tb, 4);
    let (n, errors) = wrk_counts(&report);
    assert!(n > 100, "wrk ran: {report}");
    eprintln!("after rs2 was detected down: {n} requests, {errors} errors");
    // Before the fix every reused port whose entry pointed at rs2 failed (wrk stalled or
    // counted thousands of errors).
    assert!(
        errors == 0,
        "requests failed after rs2 was detected down:\n{report}"
    );

    // A reload removes rs3: no new connection reaches it, nothing fails.
    let new_cfg = cfg.replace("      - address: 198.18.1.13\n", "");
    std::fs::write(tb.state.join("uvs.yaml"), &new_cfg).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    let t1 = Instant::now();
    while !tb.uvsd_log().contains("configuration reloaded") {
        assert!(t1.elapsed() < Duration::from_secs(5), "{}", tb.uvsd_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    count_client_syns(&tb, "rs3");
    let report = wrk_close(&tb, 4);
    let (n, errors) = wrk_counts(&report);
    assert!(n > 100, "wrk ran: {report}");
    eprintln!("after the reload: {n} requests, {errors} errors");
    assert!(errors == 0, "requests failed after the reload:\n{report}");
    let reached = client_syns(&tb, "rs3");
    assert_eq!(
        reached, 0,
        "{reached} new connections' SYNs reached the removed rs3 ({n} requests)"
    );

    // When the table holds no entry of the service any more, every real server's counters
    // are back at 0. Entries can outlive wrk by up to the longest closing timeout here
    // (SYN_RECV, 30 s: a SYN in flight when wrk stopped), so wait for the table first,
    // then the counters must follow within one sweep of the expiry walk (the whole table
    // about every 10 s), which unbinds what it removes.
    let t2 = Instant::now();
    let web4_entries = |tb: &Testbed| {
        let list = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-c", "-n"]).stdout).to_string();
        let n = list
            .lines()
            .filter(|l| l.contains("198.18.100.1:80"))
            .count();
        (n, list)
    };
    loop {
        let (n, list) = web4_entries(&tb);
        if n == 0 {
            break;
        }
        assert!(
            t2.elapsed() < Duration::from_secs(45),
            "the table still holds {n} entries of the service:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("the table drained {:.1?} after wrk", t2.elapsed());
    let t3 = Instant::now();
    loop {
        let (act, inact, list) = web4_conns(&tb);
        if act == 0 && inact == 0 {
            break;
        }
        assert!(
            t3.elapsed() < Duration::from_secs(12),
            "ActiveConn/InActConn did not return to 0 after the table drained:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_syn_flood_does_not_lock_clients_out_after_it_ends() {
    require_root("a_syn_flood_does_not_lock_clients_out_after_it_ends");
    let mut tb = Testbed::up("e2eflood", "nat");
    // No connection before the flood: an entry of one that expired during it would
    // free a slot and let a client in whether or not half-open entries are dealt with.
    tb.start_uvsd(&config(2048));
    // 198.18.0.200 is on the client's link but nobody holds it: the real servers'
    // SYN-ACKs are never answered and their retransmits keep coming.
    let flood = tb.exec(
        "client",
        &[
            "timeout",
            "20",
            "python3",
            common::repo()
                .join("scripts/syn_flood.py")
                .to_str()
                .unwrap(),
            "198.18.0.200",
            "198.18.100.1",
            "80",
            "20000",
            "10",
        ],
    );
    assert!(
        flood.status.success(),
        "flood: {}",
        String::from_utf8_lossy(&flood.stderr)
    );
    let ended = Instant::now();
    let metrics = tb.metrics();
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("uvs_drops_total{") && l.contains("table_full"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        refused > 0.0,
        "the flood filled the table (table_full drops):\n{metrics}"
    );
    // What happened is told: the entries the defence dropped are counted, and the log
    // says the table was full (as the kernel's "nf_conntrack: table full" does). Both come
    // from the control thread's sweep, every 100 ms, and the flood may end within a second
    // (as many SYNs as python sends): on a loaded machine the sweep that finds the table
    // full may come after it. The flood's half-open entries stay (SYN_RECV, 30 s), so the
    // next sweep drops some of them.
    let t = Instant::now();
    let (mut metrics, mut log) = (metrics, tb.uvsd_log());
    while (metric_sum(&metrics, "uvs_conn_table_dropped_total") == 0.0
        || !log.contains("connection table full"))
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(100));
        metrics = tb.metrics();
        log = tb.uvsd_log();
    }
    eprintln!(
        "the defence's work was told {:?} after the flood ended",
        t.elapsed()
    );
    assert!(
        metric_sum(&metrics, "uvs_conn_table_dropped_total") > 0.0,
        "drop_entry's removals counted within 5 s of the flood's end:\n{metrics}"
    );
    assert!(
        log.contains("connection table full"),
        "the log says the table was full:\n{log}"
    );
    let listed = tb.uvsadm(&["-L", "-n", "-c"]);
    let entries = String::from_utf8_lossy(&listed.stdout).lines().count();
    eprintln!(
        "after the flood: {entries} lines in the connection listing, {refused} SYNs refused: {}",
        String::from_utf8_lossy(&flood.stdout).trim()
    );
    // A legitimate client is served soon after the flood's end (the issue's goal is 2 s;
    // the bound leaves room for a loaded machine, the time is printed).
    let t0 = ended;
    let mut answers = Vec::new();
    while t0.elapsed() < Duration::from_secs(5) {
        let o = tb.exec(
            "client",
            &["curl", "-s", "--max-time", "0.5", "http://198.18.100.1/"],
        );
        if o.status.success() {
            answers.push(String::from_utf8_lossy(&o.stdout).to_string());
            break;
        }
    }
    assert!(
        !answers.is_empty(),
        "no client served within 5 s of the flood's end:\n{}",
        tb.uvsd_log()
    );
    eprintln!(
        "a client was served {:?} after the flood ended",
        t0.elapsed()
    );
}

/// A spoofed UDP flood (one datagram per source port, the real servers' answers going
/// nowhere) fills the table; UDP has no handshake, so drop_entry frees the flood's flows
/// once idle for 60 s (IPVS's todrop_entry age): new clients are served about a minute
/// after the flood, not when its flows reach the UDP timeout (300 s).
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_udp_flood_locks_clients_out_for_a_minute_not_the_udp_timeout() {
    require_root("a_udp_flood_locks_clients_out_for_a_minute_not_the_udp_timeout");
    let mut tb = Testbed::up("e2eudpfl", "nat");
    tb.start_uvsd(&config(2048));
    let flood = tb.exec(
        "client",
        &[
            "timeout",
            "20",
            "python3",
            common::repo()
                .join("scripts/udp_flood.py")
                .to_str()
                .unwrap(),
            "198.18.0.200",
            "198.18.100.1",
            "53",
            "5000",
            "10",
        ],
    );
    assert!(
        flood.status.success(),
        "flood: {}",
        String::from_utf8_lossy(&flood.stderr)
    );
    let ended = Instant::now();
    let curl = |tb: &Testbed| {
        tb.exec(
            "client",
            &["curl", "-s", "--max-time", "0.5", "http://198.18.100.1/"],
        )
        .status
        .success()
    };
    assert!(!curl(&tb), "the flood filled the table:\n{}", tb.metrics());
    while !curl(&tb) {
        assert!(
            ended.elapsed() < Duration::from_secs(75),
            "no client served within 75 s of the flood's end:\n{}",
            tb.metrics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let served = ended.elapsed();
    eprintln!("a client was served {served:?} after the flood ended");
    assert!(
        served >= Duration::from_secs(50),
        "the flood's flows were dropped before they were idle for a minute ({served:?})"
    );
    // Only as many as bring the table under 7/8: the rest wait for their timeout.
    let metrics = tb.metrics();
    assert!(
        metric_sum(&metrics, "uvs_conn_table_dropped_total") > 0.0,
        "the flood's flows were dropped by drop_entry:\n{metrics}"
    );
}

/// A NAT real server's own traffic (here an HTTP request to a host on the client side,
/// like its DNS lookups or updates) is routed by the director's kernel, as IPVS's director
/// routes it, while its replies to clients of the VIP still go through uvs.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_nat_real_servers_own_traffic_is_routed_by_the_kernel() {
    require_root("a_nat_real_servers_own_traffic_is_routed_by_the_kernel");
    let mut tb = Testbed::up("e2eown", "nat");
    tb.start_uvsd(&demo_config());
    // A NAT director routes (ip_forward on), as an IPVS one must.
    let fwd = tb.sh("lb", "sysctl -qw net.ipv4.ip_forward=1");
    assert!(fwd.status.success());
    // A web server on the client's side of the balancer.
    let web = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.ns("client")])
        .args([
            "timeout",
            "60",
            "python3",
            "-m",
            "http.server",
            "--bind",
            "198.18.0.2",
            "8080",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let mut served = false;
    let t0 = Instant::now();
    while !served && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
        served = tb
            .exec(
                "rs1",
                &["curl", "-s", "--max-time", "2", "http://198.18.0.2:8080/"],
            )
            .status
            .success();
    }
    let mut web = web;
    let _ = web.kill();
    let _ = web.wait();
    assert!(
        served,
        "rs1 could not reach a host behind the director:\n{}",
        tb.uvsd_log()
    );
    let via_vip = tb.curl_many("http://198.18.100.1/", 3);
    assert!(
        !via_vip.iter().any(|a| a == "failed"),
        "the VIP still works: {via_vip:?}"
    );
}

/// A real server added at runtime with `uvsadm -a` is health-checked like the file's: one
/// that does not answer (nothing listens at 198.18.1.14) is taken out before requests
/// fail. A later reload of the file discards the edit and says so in the log.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_server_added_with_uvsadm_is_health_checked() {
    require_root("a_server_added_with_uvsadm_is_health_checked");
    let mut tb = Testbed::up("e2eadd", "nat");
    tb.start_uvsd(&config(65536));
    let add = tb.uvsadm(&["-a", "-t", "198.18.100.1:80", "-r", "198.18.1.14:80", "-m"]);
    assert!(
        add.status.success(),
        "uvsadm -a: {}",
        String::from_utf8_lossy(&add.stderr)
    );
    let t0 = Instant::now();
    while real_up(&tb, "198.18.1.14:80") != Some(false) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the added server was never found down (not health-checked?):\n{}",
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let answers = tb.curl_many("http://198.18.100.1/", 8);
    assert!(
        !answers.iter().any(|a| a == "failed"),
        "requests went to the dead added server: {answers:?}"
    );
    // The file does not have the edit: a reload drops it, with a warning.
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    let t1 = Instant::now();
    while !tb.uvsd_log().contains("discarded 1 runtime edit") {
        assert!(
            t1.elapsed() < Duration::from_secs(5),
            "no warning about the discarded edit:\n{}",
            tb.uvsd_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n"]).stdout).to_string();
    assert!(!list.contains("198.18.1.14"), "{list}");

    // Saved into the file first, the edit stays, and nothing is said to be discarded.
    let add = tb.uvsadm(&["-a", "-t", "198.18.100.1:80", "-r", "198.18.1.14:80", "-m"]);
    assert!(add.status.success());
    let saved = tb.uvsadm(&["save"]);
    assert!(saved.status.success());
    std::fs::write(tb.state.join("uvs.yaml"), &saved.stdout).unwrap();
    let logged = tb.uvsd_log().len();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    tb.wait_log(logged, "configuration reloaded");
    let log = tb.uvsd_log();
    assert!(
        !log[logged..].contains("discarded"),
        "the file held the edit:\n{}",
        &log[logged..]
    );
    let list = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n"]).stdout).to_string();
    assert!(list.contains("198.18.1.14"), "{list}");
}

/// A real server taken out of one service while it still serves another (the demo's
/// servers serve web4 on TCP 80 and dns4 on UDP 53): its established TCP connections keep
/// flowing until they end, as when the server leaves every service (IPVS keeps forwarding
/// to a removed dest unless expire_nodest_conn). Their replies come from a port no
/// service declares any more; before the fix the XDP program handed them to the kernel,
/// which dropped them, and a download stalled after the removal.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_server_removed_from_one_service_keeps_its_connections_there() {
    require_root("a_server_removed_from_one_service_keeps_its_connections_there");
    let mut tb = Testbed::up("e2erm1", "nat");
    tb.start_uvsd(&config(65536));
    // 20 MB at 4 MB/s: about 5 s, most of it after the removal.
    let dl = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.ns("client"),
            "curl",
            "-s",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{size_download} %{http_code}", "--limit-rate", "4M"])
        .args(["--max-time", "30", "http://198.18.100.1/big"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    // The download's real server, once its connection is established.
    let t = Instant::now();
    let real = loop {
        let listing = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n", "-c"]).stdout).to_string();
        let found = listing.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (l.starts_with("TCP")
                && l.contains("198.18.100.1:80")
                && f.len() >= 6
                && f[2] == "ESTABLISHED")
                .then(|| f[5].to_string())
        });
        if let Some(r) = found {
            break r;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no established download:\n{listing}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let addr = real.split(':').next().unwrap().to_string();
    let rm = tb.uvsadm(&["-d", "-t", "198.18.100.1:80", "-r", &real]);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    let listing = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n"]).stdout).to_string();
    let dns4 = &listing[listing.find("UDP  198.18.100.1:53").expect("dns4 listed")..];
    assert!(
        dns4.contains(&format!("{addr}:53")),
        "{addr} still serves dns4:\n{listing}"
    );
    let out = dl.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "20971520 200",
        "the download on {real} must survive its removal from web4 (uvsd's drops:\n{})",
        tb.metrics()
            .lines()
            .filter(|l| l.starts_with("uvs_drops_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // New connections no longer go there.
    let after = tb.curl_many("http://198.18.100.1/", 6);
    let name = format!("rs{}", &addr[addr.len() - 1..]);
    assert!(
        !after.iter().any(|a| a == "failed" || *a == name),
        "{after:?}"
    );
}

/// Health state belongs to a server and its check, not to the slot it leaves behind: a
/// down server whose check a reload removes is up (a service without a check has every
/// server up), and a server added after a down one was removed starts up, as any new
/// server does. Before, both stayed down for good: the dataplane kept the slot's last
/// state and control told it only about servers starting down.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_down_state_never_outlives_its_server_or_its_check() {
    require_root("a_down_state_never_outlives_its_server_or_its_check");
    let mut tb = Testbed::up("e2edown", "nat");
    let cfg = config(65536);
    tb.start_uvsd(&cfg);
    let wait_up = |tb: &Testbed, real: &str, up: bool, what: &str| {
        let t = Instant::now();
        while real_up(tb, real) != Some(up) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{what}: {real} not {}:\n{}",
                if up { "up" } else { "down" },
                tb.uvsd_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let nginx = |tb: &Testbed, rs: &str, stop: bool| {
        let conf = tb.state.join(format!("{rs}/nginx.conf"));
        let mut args = vec!["nginx", "-c", conf.to_str().unwrap()];
        if stop {
            args.extend(["-s", "stop"]);
        }
        assert!(
            tb.exec(rs, &args).status.success(),
            "nginx {rs} stop={stop}"
        );
    };

    // 1. rs1 down, then removed; rs3, removed just before it (its slot free again by
    //    then), comes back as a new server into rs1's freed slot, the lowest: it must
    //    start up and take connections.
    nginx(&tb, "rs1", true);
    wait_up(&tb, "198.18.1.11:80", false, "rs1 stopped");
    for args in [
        ["-d", "-t", "198.18.100.1:80", "-r", "198.18.1.13:80"],
        ["-d", "-t", "198.18.100.1:80", "-r", "198.18.1.11:80"],
    ] {
        assert!(tb.uvsadm(&args).status.success());
    }
    let add = tb.uvsadm(&["-a", "-t", "198.18.100.1:80", "-r", "198.18.1.13:80", "-m"]);
    assert!(add.status.success());
    wait_up(&tb, "198.18.1.13:80", true, "rs3 added back");
    let got = tb.curl_many("http://198.18.100.1/", 6);
    assert!(
        got.iter().any(|a| a == "rs3"),
        "rs3 takes connections: {got:?}"
    );
    assert!(!got.iter().any(|a| a == "failed"), "{got:?}");

    // 2. The file again (rs1 back in web4, still stopped: down), then without web4's
    //    check: rs1 is up at once, though its nginx is still stopped.
    let logged = tb.uvsd_log().len();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    tb.wait_log(logged, "configuration reloaded");
    wait_up(
        &tb,
        "198.18.1.11:80",
        false,
        "rs1 back in the file, stopped",
    );
    let start = cfg.find("    health_check:\n      type: http\n").unwrap();
    let end = start + cfg[start..].find("    real_servers:").unwrap();
    let unchecked = format!("{}{}", &cfg[..start], &cfg[end..]);
    std::fs::write(tb.state.join("uvs.yaml"), &unchecked).unwrap();
    let logged = tb.uvsd_log().len();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &tb.uvsd_pid().to_string()])
        .status();
    tb.wait_log(logged, "configuration reloaded");
    wait_up(&tb, "198.18.1.11:80", true, "web4's check removed");
    nginx(&tb, "rs1", false);
    let got = tb.curl_many("http://198.18.100.1/", 6);
    assert!(
        got.iter().any(|a| a == "rs1"),
        "rs1 takes connections: {got:?}"
    );
}

/// A new configuration that keeps the servers and their checks (a `uvsadm` edit of a
/// weight) leaves the health checks running: a server that stops answering (its port
/// black-holed: each check waits its whole timeout) still goes down after `fall` failed
/// checks while a script edits another server's weight faster than that (every 0.3 s;
/// fall 2 at 1 s, timeout 0.9 s). Before, each edit restarted the checks: the count
/// started over, and a check under way was cut short before its timeout, so the dead
/// server stayed up, taking new connections, for as long as the edits went on.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_dead_server_goes_down_while_uvsadm_edits_keep_coming() {
    require_root("a_dead_server_goes_down_while_uvsadm_edits_keep_coming");
    let mut tb = Testbed::up("e2eedit", "nat");
    // Checks longer than the edits' period: down in about 1.9 s.
    tb.start_uvsd(&config(65536).replace(
        "      interval: 0.5\n      timeout: 0.4\n",
        "      interval: 1\n      timeout: 0.9\n",
    ));
    let drop = tb.sh(
        "rs1",
        "nft add table inet uvs_hole && \
         nft add chain inet uvs_hole in '{ type filter hook input priority 0 ; }' && \
         nft add rule inet uvs_hole in tcp dport 80 drop",
    );
    assert!(
        drop.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&drop.stderr)
    );
    let t0 = Instant::now();
    let mut edits = 0;
    while real_up(&tb, "198.18.1.11:80") != Some(false) {
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "rs1 still up {:?} after its port was black-holed ({edits} edits meanwhile):\n{}",
            t0.elapsed(),
            tb.uvsd_log()
        );
        let w = (edits % 2 + 1).to_string();
        let e = tb.uvsadm(&[
            "-e",
            "-t",
            "198.18.100.1:80",
            "-r",
            "198.18.1.12:80",
            "-m",
            "-w",
            &w,
        ]);
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
        edits += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The balancer's links going down and up again (a cable pulled and put back, a switch
/// port bounced, a veth's peer restarted): the VIP serves again once they are up, without
/// a restart of uvsd.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn the_balancers_links_going_down_and_up_again_serve_again() {
    require_root("the_balancers_links_going_down_and_up_again_serve_again");
    let mut tb = Testbed::up("e2eflap", "nat");
    tb.start_uvsd(&demo_config());
    let before = tb.curl_many("http://198.18.100.1/", 3);
    assert!(!before.iter().any(|a| a == "failed"), "{before:?}");
    for link in ["uvs-lb0", "uvs-lb1"] {
        for state in ["down", "up"] {
            let out = tb.exec("lb", &["ip", "link", "set", link, state]);
            assert!(out.status.success(), "{link} {state}");
        }
    }
    let t0 = Instant::now();
    let mut after = Vec::new();
    while t0.elapsed() < Duration::from_secs(10) {
        after = tb.curl_many("http://198.18.100.1/", 3);
        if !after.iter().any(|a| a == "failed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !after.iter().any(|a| a == "failed"),
        "not served {:?} after the links came back: {after:?}\n{}",
        t0.elapsed(),
        tb.uvsd_log()
    );
    eprintln!("served again after {:?}", t0.elapsed());
}

/// Remakes the client's link to the balancer (the veth pair `uvs-c0`/`uvs-lb0`, deleted
/// and made again with the testbed's names and addresses): the balancer's interface gets
/// another index, its XDP program and AF_XDP sockets go with the old one.
fn remake_client_link(tb: &Testbed) {
    remake_link(tb, Link::Client, 1);
}

/// The balancer's two links in the testbed.
#[derive(Clone, Copy)]
enum Link {
    /// `uvs-c0` (client) ↔ `uvs-lb0`.
    Client,
    /// `uvs-lb1` ↔ `uvs-sw0` (the real servers' bridge).
    Servers,
}

/// Remakes one of the balancer's links with `queues` queues at both ends (as
/// scripts/testbed.sh makes it), with the testbed's names and addresses.
fn remake_link(tb: &Testbed, link: Link, queues: usize) {
    let (client, lb, sw) = (tb.ns("client"), tb.ns("lb"), tb.ns("sw"));
    let q = format!("numtxqueues {queues} numrxqueues {queues}");
    let remake = match link {
        Link::Client => vec![
            format!("ip -n {client} link del uvs-c0"),
            format!(
                "ip -n {client} link add uvs-c0 {q} type veth peer name uvs-lb0 netns {lb} {q}"
            ),
            format!("ip -n {client} link set uvs-c0 up"),
            format!("ip -n {lb} link set uvs-lb0 up"),
            format!("ip -n {client} addr add 198.18.0.2/24 dev uvs-c0"),
            format!("ip -n {client} addr add 2001:2::2/64 dev uvs-c0 nodad"),
            format!("ip -n {client} route add default via 198.18.0.1"),
            format!("ip -n {client} -6 route add default via 2001:2::1"),
            format!("ip -n {lb} addr add 198.18.0.1/24 dev uvs-lb0"),
            format!("ip -n {lb} addr add 2001:2::1/64 dev uvs-lb0 nodad"),
        ],
        Link::Servers => vec![
            format!("ip -n {lb} link del uvs-lb1"),
            format!("ip -n {lb} link add uvs-lb1 {q} type veth peer name uvs-sw0 netns {sw} {q}"),
            format!("ip -n {sw} link set uvs-sw0 master uvs-br0"),
            format!("ip -n {sw} link set uvs-sw0 up"),
            format!("ip -n {lb} link set uvs-lb1 up"),
            format!("ip -n {lb} addr add 198.18.1.1/24 dev uvs-lb1"),
            format!("ip -n {lb} addr add 2001:2:0:1::1/64 dev uvs-lb1 nodad"),
        ],
    };
    for cmd in &remake {
        let out = std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A worker's value of a per-worker metric (labels `worker`, `core`).
fn worker_metric(m: &str, name: &str, worker: usize) -> u64 {
    let head = format!("{name}{{worker=\"{worker}\"");
    m.lines()
        .find(|l| l.starts_with(&head))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {head}… in\n{m}"))
}

/// Two workers on two-queue links, and the links made again with one queue (a container's
/// network recreated with single-queue veths, a NIC's channels lowered): worker 1 has no
/// queue to open on them. uvsd used to stop here ("attaching to it again failed"); now
/// worker 1 stands by (`uvs_worker_standing_by` 1) and worker 0, whose queue is every
/// frame's now, serves every request, with the same uvsd. Made again with two queues,
/// worker 1 opens its queues again and serves its share.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn a_worker_whose_queue_is_gone_stands_by_and_the_others_serve_on() {
    require_root("a_worker_whose_queue_is_gone_stands_by_and_the_others_serve_on");
    let mut tb = Testbed::up_with("e2eqgone", "nat", 2);
    let cfg = demo_config()
        .replace("    queues: 1\n", "    queues: 2\n")
        .replace("workers:\n  count: 1\n", "workers:\n  count: 2\n");
    assert!(cfg.contains("count: 2"), "demo.yaml layout changed");
    tb.start_uvsd(&cfg);
    let pid = tb.uvsd_pid();
    let served = |tb: &Testbed, n: usize, when: &str| {
        let answers = tb.curl_many("http://198.18.100.1/", n);
        assert!(
            !answers.iter().any(|a| a == "failed"),
            "{when}: {answers:?}\n{}",
            tb.uvsd_log()
        );
    };
    served(&tb, 12, "at the start");
    let m = tb.metrics();
    assert_eq!(worker_metric(&m, "uvs_worker_standing_by", 1), 0);

    // The client's link with one queue: worker 1 stands by, uvsd goes on.
    let from = tb.uvsd_log().len();
    remake_link(&tb, Link::Client, 1);
    tb.wait_log(from, "uvs-lb0: attached again");
    tb.wait_log(
        from,
        "worker 1: interface 'uvs-lb0' was made again with 1 queue(s), fewer than the workers: worker 1 stands by",
    );
    let m = tb.metrics();
    assert_eq!(worker_metric(&m, "uvs_worker_standing_by", 0), 0, "{m}");
    assert_eq!(worker_metric(&m, "uvs_worker_standing_by", 1), 1, "{m}");
    // The servers' link kept its two queues: the answers the switch sends to queue 1
    // (by flow hash, about half the connections') find no socket there and pass to the
    // kernel, counted. 16 connections: all on queue 0 by chance once in 65 536 runs.
    let unclaimed = |m: &str| {
        let line = "uvs_interface_unclaimed_packets_total{interface=\"uvs-lb1\"} ";
        m.lines()
            .find_map(|l| l.strip_prefix(line)?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {line}in\n{m}"))
    };
    let before = unclaimed(&m);
    tb.sh(
        "client",
        "for i in $(seq 16); do curl -s -o /dev/null --max-time 1 http://198.18.100.1/; done",
    );
    let m = tb.metrics();
    assert!(
        unclaimed(&m) > before,
        "no answer reached queue 1 of uvs-lb1 unclaimed\n{m}"
    );

    // The servers' link too: every frame is queue 0's, worker 0 serves them all.
    let from = tb.uvsd_log().len();
    remake_link(&tb, Link::Servers, 1);
    tb.wait_log(from, "uvs-lb1: attached again");
    let rx1 = worker_metric(&tb.metrics(), "uvs_worker_rx_packets_total", 1);
    served(&tb, 12, "on one queue");
    let m = tb.metrics();
    assert_eq!(
        worker_metric(&m, "uvs_worker_rx_packets_total", 1),
        rx1,
        "worker 1 stands by, yet received"
    );
    assert_eq!(worker_metric(&m, "uvs_worker_standing_by", 1), 1, "{m}");
    assert_eq!(tb.uvsd_pid(), pid, "the same uvsd");
    assert!(
        tb.wait_uvsd_exit(Duration::ZERO).is_none(),
        "uvsd stopped:\n{}",
        tb.uvsd_log()
    );

    // Both links with two queues again: worker 1 serves again.
    let from = tb.uvsd_log().len();
    remake_link(&tb, Link::Client, 2);
    tb.wait_log(from, "uvs-lb0: attached again");
    remake_link(&tb, Link::Servers, 2);
    tb.wait_log(from, "worker 1: every interface has queue 1 again: serving");
    let rx1 = worker_metric(&tb.metrics(), "uvs_worker_rx_packets_total", 1);
    served(&tb, 24, "on two queues again");
    let m = tb.metrics();
    assert_eq!(worker_metric(&m, "uvs_worker_standing_by", 1), 0, "{m}");
    assert!(
        worker_metric(&m, "uvs_worker_rx_packets_total", 1) > rx1,
        "worker 1 received nothing after its queues came back\n{m}"
    );
    assert_eq!(tb.uvsd_pid(), pid, "the same uvsd");
}

/// The balancer's client-side interface removed and made again (a veth whose peer was
/// recreated, a container's network restarted) while a download runs through the VIP:
/// uvsd attaches to the new interface in place within about a second (a new XDP program
/// with the old one's maps, every worker's AF_XDP socket opened again), and the download
/// goes on on its entry, byte for byte, without a restart. uvsd used to run on and serve
/// nothing, silently.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn an_interface_made_again_is_attached_to_again_and_its_connections_go_on() {
    require_root("an_interface_made_again_is_attached_to_again_and_its_connections_go_on");
    let mut tb = Testbed::up("e2eremk", "nat");
    a_download_goes_on_through_a_remade_link(&mut tb, &demo_config());
}

/// The same with `workers.kernel_fast_path` on: the new XDP program takes over the old
/// one's fast-path table, the fast path forwards the client's segments on the new
/// interface, and the TC programs send the servers' segments out of it by its new index.
/// The IPv6 table is taken over too: an IPv6 download after the change is the fast path's,
/// sent on by the TC programs' IPv6 routes.
/// uvsd used to stop at once here, for a restart.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn an_interface_made_again_under_the_kernel_fast_path_is_attached_to_again() {
    require_root("an_interface_made_again_under_the_kernel_fast_path_is_attached_to_again");
    let mut tb = Testbed::up("e2eremf", "nat");
    tb.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // The demo has IPv6 services: the fast path needs IPv6 forwarding too.
    tb.exec("lb", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let cfg = demo_config().replace(
        "workers:\n  count: 1\n",
        "workers:\n  count: 1\n  kernel_fast_path: true\n",
    );
    assert!(
        cfg.contains("kernel_fast_path: true"),
        "the demo's workers moved"
    );
    let before_remake = a_download_goes_on_through_a_remade_link(&mut tb, &cfg);
    // After the change: a download at full speed is the fast path's on both interfaces.
    let on_lb0 = |m: &str, name: &str| {
        m.lines()
            .filter(|l| l.starts_with(name) && l.contains("interface=\"uvs-lb0\""))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    // A 20 MiB download from `url`, whole: the metrics before and after it, and what it
    // added to the fast path's count, the TC programs', the workers' and uvs-lb0's.
    let download = |url: &str| {
        let before = tb.metrics();
        let got = tb.sh(
            "client",
            &format!("curl -s -g --max-time 30 -o /dev/null -w '%{{size_download}}' '{url}'"),
        );
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "20971520");
        let after = tb.metrics();
        let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
        let counts = (
            delta("uvs_fast_path_packets_total"),
            delta("uvs_fast_path_sent_packets_total"),
            delta("uvs_worker_rx_packets_total"),
            on_lb0(&after, "uvs_fast_path_packets_total")
                - on_lb0(&before, "uvs_fast_path_packets_total"),
        );
        (before, after, counts)
    };
    let (before, after, (fast, sent, worker, fast_lb0)) = download("http://198.18.100.1/big");
    eprintln!("after the change: fast path {fast} (uvs-lb0 {fast_lb0}), sent by TC {sent}, workers {worker}");
    assert!(
        fast > 14_000.0 && worker < fast / 10.0,
        "the download was not the fast path's: {fast} rewritten, {worker} at the workers\n{after}"
    );
    // The client's ACKs: 477 to 4 252 a download in nine runs (this check failed at 1 000
    // one run in four before IPv6 came, so it asks only that the new interface's frames
    // take the lines, which they cannot if the new program reads another table).
    assert!(
        fast_lb0 > 100.0,
        "the client's segments on the new interface: {fast_lb0}\n{after}"
    );
    // The new program took the old one's counters over: they went on, not from 0.
    let (then, now) = (
        on_lb0(&before_remake, "uvs_fast_path_packets_total"),
        on_lb0(&before, "uvs_fast_path_packets_total"),
    );
    assert!(
        then > 0.0 && now >= then,
        "the interface's count went from {then} to {now} across the change"
    );
    assert!(
        sent >= fast * 0.99,
        "the TC programs sent {sent} of {fast}\n{after}"
    );
    // The client's ACKs on the new interface (as many as for IPv4's, above) take the IPv6
    // lines only if the new program
    // reads the table the workers write: the old one's, taken over.
    let (_, after, (fast, sent, worker, fast_lb0)) = download("http://[2001:2:0:100::1]/big");
    eprintln!("IPv6 after the change: fast path {fast} (uvs-lb0 {fast_lb0}), sent by TC {sent}, workers {worker}");
    assert!(
        fast > 14_000.0 && worker < fast / 10.0 && fast_lb0 > 100.0,
        "the IPv6 download was not the fast path's: {fast} rewritten ({fast_lb0} on the new \
         interface), {worker} at the workers\n{after}"
    );
    assert!(
        sent >= fast * 0.99,
        "the TC programs sent {sent} of the {fast} IPv6 packets\n{after}"
    );
}

/// Starts uvsd with `cfg`, makes the client's link again 2 s into a 20 MiB download at
/// 2 MiB/s through the VIP, and checks that the same uvsd attached to it again, the
/// download arrived whole and the VIP serves new requests. The metrics just before the
/// link was made again.
fn a_download_goes_on_through_a_remade_link(tb: &mut Testbed, cfg: &str) -> String {
    tb.start_uvsd(cfg);
    let pid = tb.uvsd_pid();
    let before = tb.curl_many("http://198.18.100.1/", 3);
    assert!(!before.iter().any(|a| a == "failed"), "{before:?}");
    // 20 MiB at 2 MiB/s: about 10 s, the link remade 2 s in.
    let download = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.ns("client")])
        .args(["curl", "-s", "--max-time", "60", "--limit-rate", "2M"])
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "http://198.18.100.1/big",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_secs(2));
    let before_remake = tb.metrics();
    remake_client_link(tb);
    tb.wait_log(0, "uvs-lb0: attached again");
    let got = download.wait_with_output().unwrap();
    let size = String::from_utf8_lossy(&got.stdout).trim().to_string();
    assert_eq!(
        size,
        "20971520",
        "the download did not go on whole ({}):\n{}",
        got.status,
        tb.uvsd_log()
    );
    let after = tb.curl_many("http://198.18.100.1/", 3);
    assert!(
        !after.iter().any(|a| a == "failed"),
        "not served after the link was made again: {after:?}\n{}",
        tb.uvsd_log()
    );
    assert_eq!(tb.uvsd_pid(), pid, "the same uvsd");
    assert!(
        tb.wait_uvsd_exit(Duration::ZERO).is_none(),
        "uvsd still runs"
    );
    let m = tb.metrics();
    for (iface, times) in [("uvs-lb0", 1), ("uvs-lb1", 0)] {
        let line = format!("uvs_interface_attached_again_total{{interface=\"{iface}\"}} {times}");
        assert!(m.lines().any(|l| l == line), "no `{line}` in\n{m}");
    }
    before_remake
}

/// An interface that is removed and does not come back within 30 s (`GONE_WAIT`): uvsd
/// says so and stops with an error, for its service manager (or a cluster's other nodes)
/// to take over; started again once the interface is back, it serves.
#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn an_interface_gone_for_good_stops_uvsd_with_the_reason() {
    require_root("an_interface_gone_for_good_stops_uvsd_with_the_reason");
    let mut tb = Testbed::up("e2egone", "nat");
    tb.start_uvsd(&demo_config());
    let gone = tb.sh("client", "ip link del uvs-c0");
    assert!(gone.status.success());
    let status = tb.wait_uvsd_exit(Duration::from_secs(40));
    let log = tb.uvsd_log();
    assert!(
        status.is_some_and(|s| !s.success()),
        "uvsd did not stop with an error ({status:?}):\n{log}"
    );
    assert!(
        log.contains("uvs-lb0 (index") && log.contains("was removed 30 s ago"),
        "the log does not say why:\n{log}"
    );
    remake_client_link_after_delete(&tb);
    let _ = std::fs::remove_file(tb.socket());
    tb.start_uvsd(&demo_config());
    let after = tb.curl_many("http://198.18.100.1/", 3);
    assert!(
        !after.iter().any(|a| a == "failed"),
        "not served after the restart: {after:?}\n{}",
        tb.uvsd_log()
    );
}

/// [`remake_client_link`] once `uvs-c0` is already gone: a pair made to be remade.
fn remake_client_link_after_delete(tb: &Testbed) {
    let (client, lb) = (tb.ns("client"), tb.ns("lb"));
    let pair = std::process::Command::new("ip")
        .args(["-n", &client, "link", "add", "uvs-c0", "type", "veth"])
        .args(["peer", "name", "uvs-lb0", "netns", &lb])
        .status()
        .unwrap();
    assert!(pair.success());
    remake_client_link(tb);
}
