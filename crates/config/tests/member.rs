//! The `member:` section (director-less member mode): defaults, round trip, and mistakes at
//! their line and column.

const BASE: &str = "interfaces:
  - name: uvs-m0
    networks: [198.18.70.0/24]
";

fn load(member: &str) -> Result<uvs_config::Config, String> {
    uvs_config::load_str(&format!("{BASE}{member}"), "uvs.yaml").map_err(|e| e.to_string())
}

const GOOD: &str = "member:
  interface: uvs-m0
  vip: 198.18.70.100
  ports: [80]
  members: [198.18.70.11, 198.18.70.12, 198.18.70.13]
  me: 198.18.70.12
";

#[test]
fn defaults_and_round_trip() {
    let c = load(GOOD).unwrap();
    let m = c.member.clone().unwrap();
    assert_eq!(m.me, 1);
    assert_eq!(m.cluster_mac, [0x03, 0xbf, 198, 18, 70, 100]);
    assert_eq!(m.hash, uvs_config::MemberHash::FiveTuple);
    assert_eq!(m.protocol, uvs_config::Protocol::Tcp);
    assert_eq!(m.table_size, 65_537);
    assert_eq!(m.health_check.kind, uvs_config::HealthCheckKind::Tcp);
    assert_eq!(m.heartbeat_port, 6082);
    let saved = uvs_config::to_yaml(&c);
    let again = uvs_config::load_str(&saved, "saved.yaml").unwrap();
    assert_eq!(again, c, "{saved}");
    assert!(load("").unwrap().member.is_none());
    let c = load(&format!(
        "{GOOD}  hash: source\n  table_size: 4093\n  cluster_mac: 01:00:5e:7f:00:01\n  protocol: udp\n  heartbeat_port: 7000\n"
    ))
    .unwrap();
    let m = c.member.unwrap();
    assert_eq!(m.heartbeat_port, 7000);
    assert_eq!(m.hash, uvs_config::MemberHash::Source);
    assert_eq!(m.cluster_mac, [1, 0, 0x5e, 0x7f, 0, 1]);
}

#[test]
fn mistakes_are_refused_at_their_line() {
    let cases: [(&str, &str, &str); 9] = [
        ("interface: uvs-m0", "interface: eth9", "uvs.yaml:5:14"),
        ("vip: 198.18.70.100", "vip: 2001:2::1", "uvs.yaml:6:8"),
        ("ports: [80]", "ports: [80, 80]", "uvs.yaml:7:15"),
        ("me: 198.18.70.12", "me: 198.18.70.14", "uvs.yaml:9:7"),
        (
            "members: [198.18.70.11, 198.18.70.12, 198.18.70.13]",
            "members: [198.18.70.11, 198.18.70.11]",
            "uvs.yaml:8:27",
        ),
        (
            "me: 198.18.70.12",
            "me: 198.18.70.12\n  hash: sourse",
            "uvs.yaml:10:9",
        ),
        (
            "me: 198.18.70.12",
            "me: 198.18.70.12\n  table_size: 4095",
            "uvs.yaml:10:15",
        ),
        (
            "me: 198.18.70.12",
            "me: 198.18.70.12\n  cluster_mac: 02:00:00:00:00:01",
            "uvs.yaml:10:16",
        ),
        (
            "me: 198.18.70.12",
            "me: 198.18.70.12\n  health_check: { type: tcpp }",
            "uvs.yaml:10",
        ),
    ];
    for (from, to, at) in cases {
        let e = load(&GOOD.replace(from, to)).unwrap_err();
        assert!(e.starts_with(at), "{to}: {e}");
    }
    let e = load(&GOOD.replace("  me: 198.18.70.12\n", "")).unwrap_err();
    assert!(e.contains("needs `me`"), "{e}");
    let e = load(&format!(
        "{GOOD}services:\n  - {{ vip: 198.18.70.1, protocol: tcp, port: 80, real_servers: [{{ address: 198.18.70.20 }}] }}\n"
    ))
    .unwrap_err();
    assert!(e.contains("no services"), "{e}");
    let e = load(&GOOD.replace("  ports: [80]\n", "")).unwrap_err();
    assert!(e.contains("set `health_check.port`"), "{e}");
}
