//! The `cluster:` section: groups, their VIPs, roles, interfaces and announcements.

use super::{case, check};

const SVCS: &str = "services:
  - vip: 198.18.100.1
    protocol: tcp
    port: 80
    real_servers: [{ address: 198.18.1.11, forwarding: fullnat }]
    fullnat_pool: [198.18.1.100]
  - vip: 198.18.100.2
    protocol: tcp
    port: 80
    real_servers: [{ address: 198.18.1.11, forwarding: fullnat }]
    fullnat_pool: [198.18.1.100]
";

#[test]
fn cluster_errors() {
    let cases = [
        case(
            "cluster:\n  groups:\n    - vips: [198.18.100.1]\n",
            "vips",
            "cluster.groups[0].name",
            "the group has no `name`",
            Some("uvsadm cluster role"),
        ),
        case(
            "cluster:\n  groups:\n    - { name: \"web api\", vips: [198.18.100.1] }\n",
            "\"web api",
            "cluster.groups[0].name",
            "'web api' is not a valid group name",
            Some("letters, digits"),
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [198.18.100.1] }\n    - { name: web, vips: [198.18.100.2] }\n",
            "web",
            "cluster.groups[1].name",
            "group 'web' is already defined at line",
            None,
        )
        .nth(1),
        case(
            "cluster:\n  groups:\n    - { name: web }\n",
            "{ name",
            "cluster.groups[0].vips",
            "group 'web' has no VIPs",
            Some("vips: ["),
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [] }\n",
            "[]",
            "cluster.groups[0].vips",
            "group 'web' has no VIPs",
            None,
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [198.18.100.x] }\n",
            "198.18.100.x",
            "cluster.groups[0].vips[0]",
            "'198.18.100.x' is not an IPv4 or IPv6 address",
            None,
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [127.0.0.1] }\n",
            "127.0.0.1",
            "cluster.groups[0].vips[0]",
            "VIP 127.0.0.1 is a loopback address",
            None,
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [198.18.0.3] }\n",
            "198.18.0.3]",
            "cluster.groups[0].vips[0]",
            "VIP 198.18.0.3 is also interfaces[0].local[0]",
            None,
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [198.18.100.1, 198.18.100.1] }\n",
            "198.18.100.1]",
            "cluster.groups[0].vips[1]",
            "VIP 198.18.100.1 is listed twice",
            Some("exactly one group"),
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [198.18.100.1] }\n    - { name: api, vips: [\"2001:2:0:100::1\", 198.18.100.1] }\n",
            "198.18.100.1]",
            "cluster.groups[1].vips[1]",
            "VIP 198.18.100.1 is already in group 'web' (line",
            None,
        )
        .nth(1),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [198.18.100.1], role: primary }\n",
            "primary",
            "cluster.groups[0].role",
            "unknown role 'primary'",
            Some("master"),
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [198.18.100.1], interfaces: [uvs-lb9] }\n",
            "uvs-lb9",
            "cluster.groups[0].interfaces[0]",
            "interface 'uvs-lb9' is not one of `interfaces`",
            Some("uvs-lb0"),
        ),
        case(
            "cluster:\n  groups:\n    - { name: web, vips: [198.18.100.1], interfaces: [uvs-lb0, uvs-lb0] }\n",
            "uvs-lb0]",
            "cluster.groups[0].interfaces[1]",
            "interface 'uvs-lb0' is listed twice",
            None,
        ),
        case(
            "cluster:\n  announce: { count: 0 }\n",
            "0 }",
            "cluster.announce.count",
            "announce count 0 is out of range 1..=100",
            None,
        ),
        case(
            "cluster:\n  announce: { interval: 0.001 }\n",
            "0.001",
            "cluster.announce.interval",
            "announce interval 0.001 s is out of range 0.01..=10",
            Some("seconds"),
        ),
        case(
            "cluster:\n  groups:\n    - name: web\n      vips: [198.18.100.1]\n      rol: master\n",
            "rol",
            "cluster.groups[0].rol",
            "unknown field 'rol'",
            Some("role"),
        ),
    ];
    for c in &cases {
        check(c);
    }
}

#[test]
fn pool_addresses_follow_one_group() {
    // Two services share a pool address; their VIPs are in different groups.
    let yaml: &'static str = Box::leak(
        format!(
            "{SVCS}cluster:\n  groups:\n    - {{ name: web, vips: [198.18.100.1] }}\n    - {{ name: api, vips: [198.18.100.2] }}\n"
        )
        .into_boxed_str(),
    );
    let e = check(
        &case(
            yaml,
            "198.18.1.100]",
            "services[1].fullnat_pool[0]",
            "fullnat pool address 198.18.1.100 serves VIP 198.18.100.2 (group 'api') here and a VIP of group 'web' at line",
            Some("its own pool addresses"),
        )
        .nth(1),
    );
    assert!(e.to_string().starts_with("uvs.yaml:"), "{e}");
    // One VIP grouped, the other not: the same conflict.
    let yaml: &'static str = Box::leak(
        format!("{SVCS}cluster:\n  groups:\n    - {{ name: api, vips: [198.18.100.2] }}\n")
            .into_boxed_str(),
    );
    check(
        &case(
            yaml,
            "198.18.1.100]",
            "services[1].fullnat_pool[0]",
            "(group 'api') here and a VIP of no group",
            None,
        )
        .nth(1),
    );
    // A pool address listed as a group's VIP.
    let yaml: &'static str = Box::leak(
        format!("{SVCS}cluster:\n  groups:\n    - {{ name: web, vips: [198.18.1.100] }}\n")
            .into_boxed_str(),
    );
    check(&case(
        yaml,
        "198.18.1.100] }",
        "cluster.groups[0].vips[0]",
        "VIP 198.18.1.100 is also services[0].fullnat_pool[0]",
        Some("join the group by themselves"),
    ));
}
