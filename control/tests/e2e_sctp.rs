//! SCTP end to end (as root) against a real SCTP stack: usrsctp (Debian
//! `libusrsctp-examples`; raw IP, no kernel SCTP needed) echo servers on the real servers
//! and its echo client in the client namespace, through uvsd's VIPs over IPv4 and IPv6,
//! for NAT, FullNAT, DR and TUN. Each association must echo its line, under NAT/FullNAT the
//! client must see only the VIP as the server's address (uvs strips the real servers'
//! addresses from INIT-ACK), and the associations must spread over the three real servers.
//! A bulk transfer (usrsctp's tsctp, 20 000 × 1 400 bytes, IPv4) must complete through the
//! VIP too. DR and TUN need a server that answers from the VIP: see [`vip_bound_server`].
//! NAT, FullNAT and TUN run at uvsd's default table size, where the bulk transfer's bursts
//! have their associations' entries and tag records prefetched together
//! (`uvs_worker_burst_lookups_total` counts them); DR at the demo's 65 536 entries, one
//! lookup at a time.
//! One usrsctp process per namespace (ARCHITECTURE.md, platform facts: each raw socket sees every SCTP packet).
//! Bounded: every client run has a 6 s timeout; the testbed is torn down on drop.

mod common;
use common::*;

const CLIENT: &str = "/usr/lib/usrsctp/client";
const ECHO_SERVER: &str = "/usr/lib/usrsctp/echo_server";
const TSCTP: &str = "/usr/lib/usrsctp/tsctp";

fn config_for(method: &str) -> String {
    let mut services = String::new();
    for (name, vip, reals) in [
        (
            "echo4",
            "198.18.100.1",
            ["198.18.1.11", "198.18.1.12", "198.18.1.13"],
        ),
        (
            "echo6",
            "\"2001:2:0:100::1\"",
            [
                "\"2001:2:0:1::11\"",
                "\"2001:2:0:1::12\"",
                "\"2001:2:0:1::13\"",
            ],
        ),
    ] {
        services.push_str(&format!(
            "\n  - name: {name}\n    vip: {vip}\n    protocol: sctp\n    port: 7\n    scheduler: rr\n    forwarding: {method}\n"
        ));
        if method == "fullnat" {
            let pool = if name == "echo4" {
                "198.18.1.100"
            } else {
                "\"2001:2:0:1::100\""
            };
            services.push_str(&format!("    fullnat_pool: [{pool}]\n"));
        }
        services.push_str("    real_servers:\n");
        for r in reals {
            services.push_str(&format!("      - address: {r}\n"));
        }
    }
    // A bulk-transfer service for usrsctp's tsctp (IPv4 only, as tsctp is).
    services.push_str(&format!(
        "\n  - name: bulk4\n    vip: 198.18.100.1\n    protocol: sctp\n    port: 5001\n    scheduler: rr\n    forwarding: {method}\n"
    ));
    if method == "fullnat" {
        services.push_str("    fullnat_pool: [198.18.1.100]\n");
    }
    services.push_str("    real_servers:\n");
    for r in ["198.18.1.11", "198.18.1.12", "198.18.1.13"] {
        services.push_str(&format!("      - address: {r}\n"));
    }
    // The demo's TCP/UDP services stay, with the same method, as in e2e_methods.
    with_method(&demo_config(), method) + &services
}

/// Connections per real server of the SCTP service on `vip` (from `uvsadm -L -n --stats`).
fn sctp_conns(tb: &Testbed, vip: &str) -> Vec<u64> {
    let out = tb.uvsadm(&["-L", "-n", "--stats"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut counts = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("SCTP") {
            inside = line.contains(vip);
        } else if !line.starts_with("  ->") {
            inside = false;
        } else if inside {
            let n = line
                .split_whitespace()
                .nth(2)
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("unexpected stats line {line:?} in\n{text}"));
            counts.push(n);
        }
    }
    counts
}

/// DR and TUN: usrsctp's example server binds the wildcard and answers an INIT from its
/// interface address, not from the VIP, so the client never completes the handshake — an
/// LVS-DR real server must answer from the VIP. Those methods run scripts/sctp_vip_echo.c
/// (usrsctp bound to the VIPs with usrsctp_bindx, built here against libusrsctp-dev), and
/// the real servers hold the VIPs on their link instead of on `lo`: usrsctp treats
/// addresses of the loopback device as loopback-scoped and never uses them with a remote
/// peer. (Nothing on the server network asks for the VIPs: uvs sends to the servers' MACs.)
/// For IPv6, usrsctp leaves the source address to the kernel, so the default route names
/// the VIP as its preferred source.
fn vip_bound_server(tb: &Testbed) -> String {
    let bin = tb.state.join("sctp_vip_echo");
    let cc = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(repo().join("scripts/sctp_vip_echo.c"))
        .args(["-lusrsctp", "-lpthread"])
        .output()
        .expect("cc");
    assert!(
        cc.status.success(),
        "building sctp_vip_echo (needs libusrsctp-dev): {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    for rs in ["rs1", "rs2", "rs3"] {
        let o = tb.sh(
            rs,
            "ip addr del 198.18.100.1/32 dev lo && ip addr del 2001:2:0:100::1/128 dev lo && \
             ip addr add 198.18.100.1/32 dev uvs-r0 && ip addr add 2001:2:0:100::1/128 dev uvs-r0 nodad && \
             ip -6 route replace default via 2001:2:0:1::1 src 2001:2:0:100::1",
        );
        assert!(
            o.status.success(),
            "moving the VIPs in {rs}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    format!("{} 7 198.18.100.1 2001:2:0:100::1", bin.display())
}

fn check_method(method: &str) {
    let tag = format!("sctp{}", &method[..method.len().min(3)]);
    let mut tb = Testbed::up(&tag, method);
    // NAT, FullNAT and TUN at uvsd's default table size, whose workers prefetch each
    // burst's association entries and tag records; DR with the demo's 65 536 entries,
    // looked up one at a time.
    let cfg = config_for(method);
    let cfg = if method == "dr" {
        cfg
    } else {
        default_sized(&cfg)
    };
    tb.start_uvsd(&cfg);
    let direct = matches!(method, "dr" | "tun");
    let server = if direct {
        vip_bound_server(&tb)
    } else {
        format!("{ECHO_SERVER} 0")
    };
    for rs in ["rs1", "rs2", "rs3"] {
        let o = tb.sh(
            rs,
            &format!("nohup {server} >/dev/null 2>&1 & echo started"),
        );
        assert!(o.status.success(), "starting the echo server in {rs}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (fam, vip, vip_shown) in [
        ("IPv4", "198.18.100.1", "198.18.100.1"),
        ("IPv6", "2001:2:0:100::1", "[2001:2:0:100::1]"),
    ] {
        for i in 0..3 {
            let line = format!("uvs-sctp-{method}-{fam}-{i}");
            // Line-buffered: the client prints its progress with stdio, which a kill by
            // `timeout` would otherwise lose with the buffer (its exit status is then 124).
            let o = tb.sh(
                "client",
                &format!(
                    "(echo {line}; sleep 0.4) | timeout 6 stdbuf -oL {CLIENT} {vip} 7 0 0 2>&1; \
                     echo \"client exit status $?\""
                ),
            );
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            assert!(
                out.lines().any(|l| l.trim() == line) && out.contains("SCTP_COMM_UP"),
                "{method} {fam} #{i}: no echo through the VIP:\n{out}\n--- uvsd:\n{}\n--- \
                 connections:\n{}\n--- drops:\n{}",
                tb.uvsd_log(),
                String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n", "-c"]).stdout),
                String::from_utf8_lossy(&tb.uvsadm(&["top", "--once"]).stdout)
            );
            if matches!(method, "nat" | "fullnat") {
                let peers = out
                    .lines()
                    .find(|l| l.starts_with("Peer addresses:"))
                    .unwrap_or_default();
                assert_eq!(
                    peers,
                    format!("Peer addresses: {vip}."),
                    "{method} {fam}: the client must know the server only as the VIP"
                );
            }
        }
        let conns = sctp_conns(&tb, &format!("{vip_shown}:7 "));
        assert_eq!(
            conns,
            vec![1, 1, 1],
            "{method} {fam}: three associations, one per real server (rr)"
        );
    }
    // Throughput: 20 000 messages of 1 400 bytes through the VIP with tsctp (the first
    // association of the bulk service goes to rs1). NAT and FullNAT only: tsctp cannot
    // share a namespace with the VIP-bound echo server the DR/TUN runs need.
    if !direct {
        for (i, rs) in ["rs1", "rs2", "rs3"].iter().enumerate() {
            let o = tb.sh(
                rs,
                &format!(
                    "nohup {TSCTP} -E 0 -p 5001 -L 198.18.1.1{} >/dev/null 2>&1 & echo started",
                    i + 1
                ),
            );
            assert!(o.status.success(), "starting tsctp in {rs}");
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        // tsctp writes usrsctp's debug trace ("[S][t] ...", some of it without a line end)
        // to the same stream as its result, from the stack's own threads. A trace fragment
        // can land just before "Throughput was" on the same line, so the result is picked
        // out wherever it falls (`grep -o`), not by dropping the trace's lines.
        let o = tb.sh(
            "client",
            &format!(
                "timeout 30 {TSCTP} -E 0 -L 198.18.0.2 -n 20000 -l 1400 -p 5001 198.18.100.1 2>&1 \
                 | grep -aoE 'Sending of [0-9]+ messages of length [0-9]+ took [0-9.]+ seconds|Throughput was [0-9.]+ Byte/sec'; \
                 echo \"tsctp exit status ${{PIPESTATUS[0]}}\""
            ),
        );
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            out.contains("Throughput was") && out.contains("tsctp exit status 0"),
            "{method}: tsctp did not finish:\n{out}"
        );
        let stats =
            String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n", "--stats"]).stdout).to_string();
        let bulk = stats
            .lines()
            .find(|l| l.starts_with("SCTP") && l.contains(":5001"))
            .unwrap_or_else(|| panic!("no bulk service in\n{stats}"));
        let in_pkts: u64 = bulk
            .split_whitespace()
            .nth(3)
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        assert!(
            in_pkts >= 20_000,
            "{method}: only {in_pkts} packets of the transfer went through uvs:\n{stats}"
        );
        eprintln!(
            "{method}: {}",
            out.lines()
                .find(|l| l.contains("Throughput"))
                .unwrap_or_default()
        );
    }

    let drops = tb.uvsadm(&["top", "--once"]);
    let text = String::from_utf8_lossy(&drops.stdout);
    for bad in ["sctp_bad_crc32c", "sctp_bad_vtag", "sctp_malformed"] {
        assert!(
            !text.contains(bad),
            "{method}: unexpected {bad} drops:\n{text}"
        );
    }
    // The bulk transfer's bursts (NAT, FullNAT) took the large-table path.
    let burst = metric_sum(&tb.metrics(), "uvs_worker_burst_lookups_total");
    eprintln!("{method}: {burst} packets looked up with their burst");
    match method {
        "dr" => assert_eq!(burst, 0.0, "{method}: 65 536 entries, one lookup at a time"),
        // TUN's echoes come a frame at a time: one-frame bursts are looked up as they come.
        "tun" => {}
        _ => assert!(
            burst > 1000.0,
            "{method}: {burst} packets looked up with their burst"
        ),
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn usrsctp_echo_through_nat_and_fullnat_ipv4_and_ipv6() {
    require_root("usrsctp_echo_through_nat_and_fullnat_ipv4_and_ipv6");
    assert!(
        std::path::Path::new(CLIENT).exists(),
        "{CLIENT} missing; install it with: DEBIAN_FRONTEND=noninteractive apt-get install -y \
         --no-install-recommends libusrsctp-examples (.ci/run --deps-only does)"
    );
    for method in ["nat", "fullnat"] {
        check_method(method);
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn usrsctp_echo_through_dr_and_tun_ipv4_and_ipv6() {
    require_root("usrsctp_echo_through_dr_and_tun_ipv4_and_ipv6");
    assert!(
        std::path::Path::new(CLIENT).exists()
            && std::path::Path::new("/usr/include/usrsctp.h").exists(),
        "needs {CLIENT} and usrsctp.h; install them with: DEBIAN_FRONTEND=noninteractive \
         apt-get install -y --no-install-recommends libusrsctp-examples libusrsctp-dev \
         (.ci/run --deps-only does)"
    );
    for method in ["dr", "tun"] {
        check_method(method);
    }
}
