//! End to end (as root) for every forwarding method on the namespace test network, IPv4
//! and IPv6, with curl to nginx real servers: DR (real servers hold the VIPs on loopback),
//! TUN (real servers decapsulate IPIP / IPv6-in-IPv6 with the tc BPF program in
//! scripts/decap.bpf.c and see the inner packet addressed to the VIP), and FullNAT (real
//! servers have no route to the clients at all; they answer uvs's local pool address).
//! One test walks the methods in turn so only one uvsd busy-polls at a time.

mod common;
use common::*;
use std::collections::BTreeSet;

fn config_for(method: &str) -> String {
    let mut cfg = demo_config().replace("forwarding: nat", &format!("forwarding: {method}"));
    if method == "fullnat" {
        // Every service gets a pool of its own family.
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
    cfg
}

fn check_method(method: &str) {
    let mut tb = Testbed::up(&format!("e2e{}", &method[..method.len().min(4)]), method);
    tb.start_uvsd(&config_for(method));
    for (fam, url) in [
        ("IPv4", "http://198.18.100.1/"),
        ("IPv6", "http://[2001:2:0:100::1]/"),
    ] {
        let answers = tb.curl_many(url, 9);
        assert!(
            !answers.iter().any(|a| a == "failed"),
            "{method} {fam}: requests failed: {answers:?}\n{}",
            tb.uvsd_log()
        );
        let servers: BTreeSet<_> = answers.iter().collect();
        assert_eq!(
            servers.len(),
            3,
            "{method} {fam}: all three real servers must answer: {answers:?}"
        );
        // What the real server saw as the client (nginx answers "rsN server_addr remote_addr"):
        // with DR and TUN the client itself and the VIP as its own address (they reply
        // directly); with FullNAT uvs's pool address (they have no route to clients).
        let body = tb.curl_bodies(url, 1).remove(0);
        let words: Vec<&str> = body.split_whitespace().collect();
        assert_eq!(words.len(), 3, "{method} {fam}: unexpected answer {body:?}");
        let (server_addr, remote) = (words[1], words[2]);
        let v6 = fam == "IPv6";
        match method {
            "fullnat" => assert_eq!(
                remote,
                if v6 {
                    "2001:2:0:1::100"
                } else {
                    "198.18.1.100"
                },
                "{method} {fam}"
            ),
            _ => {
                assert_eq!(
                    remote,
                    if v6 { "2001:2::2" } else { "198.18.0.2" },
                    "{method} {fam}"
                );
                assert_eq!(
                    server_addr,
                    if v6 {
                        "2001:2:0:100::1"
                    } else {
                        "198.18.100.1"
                    },
                    "{method} {fam}: the inner packet is addressed to the VIP"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces, XDP and AF_XDP (scripts/test.sh runs it as root)"]
fn every_forwarding_method_over_ipv4_and_ipv6() {
    require_root("every_forwarding_method_over_ipv4_and_ipv6");
    for method in ["dr", "tun", "fullnat"] {
        check_method(method);
    }
}
