//! SCTP end to end (as root) against a real SCTP stack: usrsctp's example echo server on
//! each real server and its echo client (Debian `libusrsctp-examples`; raw IP, no kernel
//! SCTP needed) in the client namespace, through uvsd's VIPs over IPv4 and IPv6, for NAT
//! and FullNAT. Each association must echo its line, the client must see only the VIP as
//! the server's address (uvs strips the real servers' addresses from INIT-ACK), and the
//! associations must spread over the three real servers. A bulk transfer (usrsctp's tsctp,
//! 20 000 × 1 400 bytes, IPv4) must complete through the VIP too.
//!
//! DR and TUN are covered by the dataplane fixtures only: usrsctp's example server binds
//! the wildcard and answers the INIT from its interface address (198.18.1.11), not from
//! the VIP it holds on loopback (seen with tcpdump on the testbed), so the client never
//! completes the handshake — an LVS-DR real server must answer from the VIP. A server
//! bound to the VIP (`usrsctp_bindx`, a small C peer) would be needed.
//! One usrsctp process per namespace (FIELD-NOTES: each raw socket sees every SCTP packet).
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
    let mut cfg = demo_config().replace("forwarding: nat", &format!("forwarding: {method}"));
    if method == "fullnat" {
        cfg = cfg
            .replace(
                "    vip: 198.18.100.1\n",
                "    vip: 198.18.100.1\n    fullnat_pool: [198.18.1.100]\n",
            )
            .replace(
                "    vip: \"2001:2:0:100::1\"\n",
                "    vip: \"2001:2:0:100::1\"\n    fullnat_pool: [\"2001:2:0:1::100\"]\n",
            );
    }
    cfg + &services
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

fn check_method(method: &str) {
    let tag = format!("sctp{}", &method[..method.len().min(3)]);
    let mut tb = Testbed::up(&tag, method);
    tb.start_uvsd(&config_for(method));
    for rs in ["rs1", "rs2", "rs3"] {
        let o = tb.sh(
            rs,
            &format!("nohup {ECHO_SERVER} 0 >/dev/null 2>&1 & echo started"),
        );
        assert!(o.status.success(), "starting echo_server in {rs}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (fam, vip, vip_shown) in [
        ("IPv4", "198.18.100.1", "198.18.100.1"),
        ("IPv6", "2001:2:0:100::1", "[2001:2:0:100::1]"),
    ] {
        for i in 0..3 {
            let line = format!("uvs-sctp-{method}-{fam}-{i}");
            let o = tb.sh(
                "client",
                &format!("(echo {line}; sleep 0.4) | timeout 6 {CLIENT} {vip} 7 0 0 2>&1"),
            );
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            assert!(
                out.lines().any(|l| l.trim() == line) && out.contains("SCTP_COMM_UP"),
                "{method} {fam} #{i}: no echo through the VIP:\n{out}\n--- uvsd:\n{}",
                tb.uvsd_log()
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
    // association of the bulk service goes to rs1).
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
    let o = tb.sh(
        "client",
        &format!("timeout 30 {TSCTP} -E 0 -L 198.18.0.2 -n 20000 -l 1400 -p 5001 198.18.100.1 2>&1 | grep -av '^\\[S' | tail -n 5"),
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("Throughput was"),
        "{method}: tsctp did not finish:\n{out}"
    );
    let stats = String::from_utf8_lossy(&tb.uvsadm(&["-L", "-n", "--stats"]).stdout).to_string();
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

    let drops = tb.uvsadm(&["top", "--once"]);
    let text = String::from_utf8_lossy(&drops.stdout);
    for bad in ["sctp_bad_crc32c", "sctp_bad_vtag", "sctp_malformed"] {
        assert!(
            !text.contains(bad),
            "{method}: unexpected {bad} drops:\n{text}"
        );
    }
}

#[test]
fn usrsctp_echo_through_nat_and_fullnat_ipv4_and_ipv6() {
    if skip_unless_root("usrsctp_echo_through_nat_and_fullnat_ipv4_and_ipv6") {
        return;
    }
    if !std::path::Path::new(CLIENT).exists() {
        eprintln!(
            "skipping usrsctp_echo_through_nat_and_fullnat_ipv4_and_ipv6: {CLIENT} missing; \
             install it with: DEBIAN_FRONTEND=noninteractive apt-get install -y \
             --no-install-recommends libusrsctp-examples"
        );
        return;
    }
    for method in ["nat", "fullnat"] {
        check_method(method);
    }
}
