//! Firewall marks (`marks:`) and firewall-mark services (`fwmark:`): what they mean once
//! loaded, and each mistake at the line:column of the node at fault.

use std::net::IpAddr;
use uvs_config::{load_str, to_yaml, PortRange, Protocol, ServiceKey};

const IFACES: &str = "\
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3, \"2001:2::3\"]
    networks: [198.18.0.0/24, \"2001:2::/64\"]
";

const GOOD: &str = "\
marks:
  - mark: 1
    name: web-cache
    destinations: [198.18.128.0/17, \"2001:2:0:8000::/49\"]
    protocols: [tcp]
    ports: [80, \"8000-8099\"]
  - mark: 2
    destinations: [198.18.64.0/18]
services:
  - fwmark: 1
    scheduler: lblc
    persistence: { timeout: 60 }
    real_servers:
      - address: 198.18.0.11
      - { address: 198.18.0.12, port: 3128, forwarding: nat }
  - fwmark: 1
    family: ipv6
    scheduler: dh
    real_servers:
      - address: \"2001:2::11\"
  - fwmark: 2
    scheduler: rr
    forwarding: nat
    real_servers: [{ address: 198.18.0.13 }]
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn marks_and_their_services_load_and_save() {
    let cfg = load_str(&format!("{IFACES}{GOOD}"), "m.yaml").unwrap();
    let m = &cfg.marks[0];
    assert_eq!((m.mark, m.name.as_str()), (1, "web-cache"));
    assert_eq!(m.protocols, [Protocol::Tcp]);
    assert_eq!(
        m.ports,
        [
            PortRange {
                first: 80,
                last: 80
            },
            PortRange {
                first: 8000,
                last: 8099
            }
        ]
    );
    let two = &cfg.marks[1];
    assert_eq!(two.name, "fwmark 2");
    assert_eq!(two.protocols, Protocol::ALL, "every protocol by default");
    assert!(two.ports.is_empty(), "every port by default");
    assert!(m.matches(ip("198.18.200.1"), Protocol::Tcp, 8050));
    assert!(!m.matches(ip("198.18.200.1"), Protocol::Udp, 80));
    assert!(!m.matches(ip("198.18.200.1"), Protocol::Tcp, 443));
    assert!(!m.matches(ip("198.18.0.1"), Protocol::Tcp, 80));
    assert!(m.matches(ip("2001:2:0:8000::1"), Protocol::Tcp, 80));

    let s = &cfg.services[0];
    assert_eq!(s.key(), ServiceKey::mark(1, false));
    assert_eq!(
        (s.vip, s.port, s.name.as_str()),
        (ip("0.0.0.0"), 0, "fwmark/1")
    );
    assert_eq!(s.persistence.unwrap().prefix_len, 32);
    assert_eq!(s.real_servers[0].port, 0, "DR keeps each packet's port");
    assert_eq!(s.real_servers[1].port, 3128, "NAT may map them to one");
    assert_eq!(cfg.services[1].key(), ServiceKey::mark(1, true));
    assert_eq!(cfg.services[1].name, "fwmark/1/ipv6");

    let saved = to_yaml(&cfg);
    assert!(saved.contains("fwmark: 1"), "{saved}");
    assert_eq!(load_str(&saved, "saved.yaml").unwrap(), cfg);
}

/// (YAML after the interfaces, marker of the node the error points at, words it must have)
const BAD: &[(&str, &str, &[&str])] = &[
    (
        "marks:\n  - { destinations: [198.18.128.0/17] }\n",
        "{ destinations",
        &["marks[0].mark", "no `mark` number", "fwmark: 1"],
    ),
    (
        "marks:\n  - { mark: 0, destinations: [198.18.128.0/17] }\n",
        "0,",
        &["mark 0 is out of range", "greater than zero"],
    ),
    (
        "marks:\n  - { mark: 1 }\n",
        "{ mark",
        &["no `destinations`"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.1/17] }\n",
        "198.18.128.1/17",
        &["not a valid prefix", "198.18.128.0/17"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17], protocols: [tcp, icmp] }\n",
        "icmp",
        &["marks[0].protocols[1]", "unknown protocol 'icmp'"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17], protocols: [] }\n",
        "[] }",
        &["match nothing"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17], ports: [\"90-80\"] }\n",
        "\"90-80\"",
        &["range 90-80 is empty", "80-90"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17], ports: [80, \"70-90\"] }\n",
        "\"70-90\"",
        &["ports 70-90 overlap ports 80"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17], ports: [http] }\n",
        "http",
        &["'http' is not a port"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17], ports: [1,2,3,4,5,6,7,8,9] }\n",
        "9]",
        &["more than 8 port ranges"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17] }\n  - { mark: 1, destinations: [198.18.64.0/18] }\n",
        "1, destinations: [198.18.64",
        &["mark 1 is already defined at line"],
    ),
    (
        "services:\n  - { fwmark: 3, real_servers: [{ address: 198.18.0.11 }] }\n",
        "3,",
        &["services[0].fwmark", "no mark 3", "marks:"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17] }\nservices:\n  - { fwmark: 1, family: ipv6, real_servers: [{ address: \"2001:2::11\" }] }\n",
        "1, family",
        &["no IPv6 destination"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17] }\nservices:\n  - { fwmark: 1, family: ip6 }\n",
        "ip6",
        &["unknown family 'ip6'", "ipv6"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17] }\nservices:\n  - { fwmark: 1, vip: 198.18.100.1 }\n",
        "vip:",
        &["a firewall-mark service has no `vip`"],
    ),
    (
        "services:\n  - { vip: 198.18.100.1, protocol: tcp, port: 80, family: ipv4 }\n",
        "family:",
        &["`family` applies only to a firewall-mark service"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17] }\nservices:\n  - { fwmark: 1, real_servers: [{ address: 198.18.0.11, port: 80 }] }\n",
        "80 }",
        &["dr forwarding cannot change the port", "own port"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17] }\nservices:\n  - { fwmark: 1, one_packet: true }\n",
        "true",
        &["one_packet", "udp address services"],
    ),
    (
        "marks:\n  - { mark: 1, destinations: [198.18.128.0/17] }\nservices:\n  - { fwmark: 1 }\n  - { fwmark: 1 }\n",
        "1 }\n",
        &["fwmark/1 is already defined", "(fwmark, family)"],
    ),
];

#[test]
fn mistakes_point_at_their_node() {
    for (yaml, at, words) in BAD {
        let src = format!("{IFACES}{yaml}");
        let err = load_str(&src, "m.yaml").expect_err(yaml);
        let text = err.to_string();
        for w in *words {
            assert!(text.contains(w), "{yaml}\n{text}\nlacks {w:?}");
        }
        // The error's line:column is the marker's (the last occurrence: later nodes are the
        // ones at fault in these cases).
        let off = src
            .rfind(at)
            .unwrap_or_else(|| panic!("marker {at:?} not in {src}"));
        let line = src[..off].matches('\n').count() + 1;
        let column = off - src[..off].rfind('\n').map_or(0, |i| i + 1) + 1;
        assert_eq!((err.line, err.column), (line, column), "{yaml}\n{text}");
    }
}
