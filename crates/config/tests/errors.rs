//! Each validation error: its message, hint, field path and the exact line:column it points at.
//!
//! The expected position is found by searching the case's YAML for a marker substring (the
//! offending node), so every case checks that the error lands on that node.

use uvs_config::{load_str, ConfigError};

/// Interfaces shared by the service cases: both families, two /24s and two /64s.
const IFACES: &str = "\
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3, \"2001:2::3\"]
    networks: [198.18.0.0/24, \"2001:2::/64\", 198.18.1.0/24, \"2001:2:0:1::/64\"]
";

/// 1-based (line, column) of the `nth` (0-based) occurrence of `needle` in `src[from..]`.
/// A `|` in `needle` marks the exact spot within it (`"rise: |0"` is the `0`).
fn pos_of(src: &str, from: usize, needle: &str, nth: usize) -> (usize, usize) {
    let shift = needle.find('|').unwrap_or(0);
    let needle = needle.replace('|', "");
    let at = shift
        + from
        + src[from..]
            .match_indices(&needle)
            .nth(nth)
            .unwrap_or_else(|| panic!("marker {needle:?} #{nth} not in:\n{src}"))
            .0;
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

struct Case {
    /// The YAML after IFACES (or the whole document when `whole` is set).
    yaml: &'static str,
    whole: bool,
    /// Marker of the node the error must point at, and which occurrence.
    at: &'static str,
    nth: usize,
    path: &'static str,
    message: &'static str,
    hint: Option<&'static str>,
}

const fn case(
    yaml: &'static str,
    at: &'static str,
    path: &'static str,
    message: &'static str,
    hint: Option<&'static str>,
) -> Case {
    Case {
        yaml,
        whole: false,
        at,
        nth: 0,
        path,
        message,
        hint,
    }
}

fn check(c: &Case) -> ConfigError {
    let src = if c.whole {
        c.yaml.to_string()
    } else {
        format!("{IFACES}{}", c.yaml)
    };
    let err = match load_str(&src, "uvs.yaml") {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e,
    };
    let from = if c.whole { 0 } else { IFACES.len() };
    let (line, column) = pos_of(&src, from, c.at, c.nth);
    assert_eq!(
        (err.line, err.column, err.path.as_str()),
        (line, column, c.path),
        "position/path of `{err}` for:\n{src}"
    );
    assert!(
        err.message.contains(c.message),
        "message {:?} lacks {:?}",
        err.message,
        c.message
    );
    match (c.hint, &err.hint) {
        (None, _) => {}
        (Some(want), Some(got)) => assert!(got.contains(want), "hint {got:?} lacks {want:?}"),
        (Some(want), None) => panic!("no hint, wanted {want:?} in `{err}`"),
    }
    assert_eq!(err.file, "uvs.yaml");
    err
}

#[test]
fn the_brief_example_formats_exactly() {
    let src = format!(
        "{IFACES}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         scheduler: rr\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 81\n    \
         scheduler: rrr\n"
    );
    let err = load_str(&src, "uvs.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "uvs.yaml:13:16: services[1].scheduler: unknown scheduler 'rrr' — did you mean 'rr'?"
    );
}

const SVC: &str = "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n";

#[test]
fn service_errors() {
    let cases = [
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: wlcc\n",
            "wlcc",
            "services[0].scheduler",
            "unknown scheduler 'wlcc'",
            Some("did you mean 'wlc'?"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: maglev\n",
            "maglev",
            "services[0].scheduler",
            "unknown scheduler 'maglev'",
            Some("expected one of: rr, wrr"),
        ),
        case(
            "services:\n  - vip: 198.18.100.300\n    protocol: tcp\n    port: 80\n",
            "198.18.100.300",
            "services[0].vip",
            "'198.18.100.300' is not an IPv4 or IPv6 address",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1/32\n    protocol: tcp\n    port: 80\n",
            "198.18.100.1/32",
            "services[0].vip",
            "is not an IPv4 or IPv6 address",
            Some("write 198.18.100.1"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1:80\n    protocol: tcp\n    port: 80\n",
            "198.18.100.1:80",
            "services[0].vip",
            "is not an IPv4 or IPv6 address",
            Some("port in its own `port` field"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tpc\n    port: 80\n",
            "tpc",
            "services[0].protocol",
            "unknown protocol 'tpc'",
            Some("did you mean 'tcp'?"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    port: 80\n",
            "vip",
            "services[0].protocol",
            "the service has no `protocol`",
            Some("tcp"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: natt\n",
            "natt",
            "services[0].forwarding",
            "unknown forwarding method 'natt'",
            Some("did you mean 'nat'?"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n",
            "198.18.100.1",
            "services[1].vip",
            "service tcp/198.18.100.1:80 is already defined at line 6 (services[0])",
            Some("merge"),
        )
        .nth(1),
        case(
            "services:\n  - name: a\n    vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n  - name: a\n    vip: 198.18.100.1\n    protocol: udp\n    port: 80\n",
            "a\n",
            "services[1].name",
            "service name 'a' is already used at line 6",
            None,
        )
        .nth(1),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: rr\n    scheduler_flags: [sh-port]\n",
            "sh-port",
            "services[0].scheduler_flags[0]",
            "flag 'sh-port' applies only to the sh scheduler, not rr",
            Some("set `scheduler: sh`"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: sh\n    scheduler_flags: [sh-fallback, sh-prot]\n",
            "sh-prot",
            "services[0].scheduler_flags[1]",
            "unknown scheduler flag 'sh-prot'",
            Some("did you mean 'sh-port'?"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: mh\n    scheduler_flags: [mh-port, mh-port]\n",
            "mh-port]",
            "services[0].scheduler_flags[1]",
            "flag 'mh-port' is listed twice",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: mh\n    mh_table_size: 65536\n",
            "65536",
            "services[0].mh_table_size",
            "mh_table_size 65536 is not prime",
            Some("the next prime is 65537"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: mh\n    mh_table_size: 0\n",
            "mh_table_size: |0",
            "services[0].mh_table_size",
            "mh_table_size 0 is out of range",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: rr\n    mh_table_size: 251\n",
            "251",
            "services[0].mh_table_size",
            "mh_table_size applies only to the mh scheduler",
            Some("scheduler: mh"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: mh\n    mh_table_size: 2\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}, {address: 198.18.1.3}]\n",
            "mh_table_size: |2",
            "services[0].mh_table_size",
            "smaller than the 3 real servers",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    one_packet: true\n",
            "true",
            "services[0].one_packet",
            "one_packet scheduling applies only to udp, this service is tcp",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 0\n",
            "port: |0",
            "services[0].port",
            "port 0 (every port) needs persistence",
            Some("persistence"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: udp\n    port: 70000\n",
            "70000",
            "services[0].port",
            "port 70000 is out of range 0..=65535",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    persistence: { netmask: 255.0.255.0 }\n",
            "255.0.255.0",
            "services[0].persistence.netmask",
            "'255.0.255.0' is not a contiguous IPv4 netmask",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    persistence: { netmask: 24 }\n",
            "24",
            "services[0].persistence.netmask",
            "netmask 24 for an IPv4 VIP",
            Some("write 255.255.255.0"),
        ),
        case(
            "services:\n  - vip: \"2001:2:0:100::1\"\n    protocol: tcp\n    port: 80\n    persistence: { netmask: 255.255.255.0 }\n",
            "255.255.255.0",
            "services[0].persistence.netmask",
            "is not an IPv6 prefix length",
            Some("`netmask: 64`"),
        ),
        case(
            "services:\n  - vip: \"2001:2:0:100::1\"\n    protocol: tcp\n    port: 80\n    persistence: { netmask: 129 }\n",
            "129",
            "services[0].persistence.netmask",
            "IPv6 prefix length 129 is out of range 0..=128",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    persistence: { netmask: 0.0.0.0 }\n",
            "0.0.0.0",
            "services[0].persistence.netmask",
            "a zero netmask puts every client on one real server",
            Some("fo"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    sorry_server: { address: \"2001:2::99\" }\n",
            "\"2001:2::99\"",
            "services[0].sorry_server.address",
            "sorry server 2001:2::99 is IPv6, the VIP 198.18.100.1 is IPv4",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    timeouts: { tcp_established: 0 }\n",
            "tcp_established: |0",
            "services[0].timeouts.tcp_established",
            "timeout 0 is out of range 1..=2147483",
            Some("seconds"),
        ),
    ];
    for c in &cases {
        check(c);
    }
}

impl Case {
    const fn nth(self, nth: usize) -> Case {
        Case { nth, ..self }
    }
    const fn whole(self) -> Case {
        Case {
            whole: true,
            ..self
        }
    }
}

#[test]
fn real_server_errors() {
    let cases = [
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - address: \"2001:2:0:1::11\"\n",
            "\"2001:2:0:1::11\"",
            "services[0].real_servers[0].address",
            "real server 2001:2:0:1::11 is IPv6, the VIP 198.18.100.1 is IPv4",
            Some("only tun"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - address: 198.18.1.11\n      - address: 198.18.1.12\n      - address: 198.18.1.11\n",
            "198.18.1.11",
            "services[0].real_servers[2].address",
            "real server 198.18.1.11:80 is already listed at line 11",
            Some("(address, port)"),
        )
        .nth(1),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - { address: 198.18.1.11, upper_threshold: 10, lower_threshold: 20 }\n",
            "lower_threshold: |20",
            "services[0].real_servers[0].lower_threshold",
            "lower_threshold 20 is above upper_threshold 10",
            Some("lower ≤ upper"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - { address: 198.18.1.11, lower_threshold: 20 }\n",
            "lower_threshold: |20",
            "services[0].real_servers[0].lower_threshold",
            "lower_threshold without upper_threshold",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - { address: 198.18.1.11, weight: 70000 }\n",
            "70000",
            "services[0].real_servers[0].weight",
            "weight 70000 is out of range 0..=65535",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: dr\n    real_servers:\n      - { address: 198.18.1.11, port: 8080 }\n",
            "8080",
            "services[0].real_servers[0].port",
            "dr forwarding cannot change the port (80 → 8080)",
            Some("omit `port`"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: dr\n    real_servers:\n      - address: 198.18.7.11\n",
            "198.18.7.11",
            "services[0].real_servers[0].address",
            "dr real server 198.18.7.11 is not inside any interface's networks",
            Some("use tun"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: tun\n    real_servers:\n      - { address: 198.18.1.11, tunnel: gue }\n",
            "gue",
            "services[0].real_servers[0].tunnel",
            "tunnel 'gue' is not supported yet",
            Some("ipip"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: tun\n    real_servers:\n      - { address: 198.18.1.11, tunnel: ipipp }\n",
            "ipipp",
            "services[0].real_servers[0].tunnel",
            "unknown tunnel 'ipipp'",
            Some("did you mean 'ipip'?"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - { address: 198.18.1.11, tunnel: ipip }\n",
            "tunnel",
            "services[0].real_servers[0].tunnel",
            "`tunnel` applies only to tun forwarding, this real server uses nat",
            Some("forwarding: tun"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 0\n    persistence: {}\n    forwarding: nat\n    real_servers:\n      - { address: 198.18.1.11, port: 80 }\n",
            "port: |80 }",
            "services[0].real_servers[0].port",
            "real server port 80 on a port-0 service",
            Some("omit `port`"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - address: 198.18.100.1\n",
            "198.18.100.1",
            "services[0].real_servers[0].address",
            "real server 198.18.100.1 is the VIP itself",
            None,
        )
        .nth(1),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - port: 80\n",
            "port: 80\n",
            "services[0].real_servers[0].address",
            "the real server has no `address`",
            None,
        )
        .nth(1),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - { address: 198.18.1.11, forwarding: fullnat }\n",
            "fullnat",
            "services[0].fullnat_pool",
            "real server 198.18.1.11 uses fullnat but the service has no fullnat_pool",
            Some("fullnat_pool"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: fullnat\n    real_servers:\n      - address: 198.18.1.11\n",
            "fullnat",
            "services[0].fullnat_pool",
            "uses fullnat but the service has no fullnat_pool",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: fullnat\n    fullnat_pool: [198.18.1.100, \"2001:2:0:1::100\"]\n    real_servers:\n      - address: 198.18.1.11\n",
            "\"2001:2:0:1::100\"",
            "services[0].fullnat_pool[1]",
            "fullnat pool address 2001:2:0:1::100 is IPv6, real server 198.18.1.11",
            None,
        ),
    ];
    for c in &cases {
        check(c);
    }
}

#[test]
fn health_check_errors() {
    let hc = |body: &'static str| -> String { format!("{SVC}    health_check:\n{body}") };
    let cases: Vec<(String, &str, &str, &str, Option<&str>)> = vec![
        (
            hc("      type: tcp\n      interval: 1\n      timeout: 2\n"),
            "timeout: |2",
            "services[0].health_check.timeout",
            "timeout 2 s is longer than the interval 1 s",
            None,
        ),
        (
            hc("      type: tcp\n      rise: 0\n"),
            "rise: |0",
            "services[0].health_check.rise",
            "rise 0 is out of range 1..=1000",
            None,
        ),
        (
            hc("      type: tcp\n      fall: 0\n"),
            "fall: |0",
            "services[0].health_check.fall",
            "fall 0 is out of range",
            None,
        ),
        (
            hc("      type: tcp\n      path: /x\n"),
            "path",
            "services[0].health_check.path",
            "`path` applies only to http checks, this one is tcp",
            Some("type: http"),
        ),
        (
            hc("      type: htp\n"),
            "htp",
            "services[0].health_check.type",
            "unknown health check type 'htp'",
            Some("did you mean 'http'?"),
        ),
        (
            hc("      type: command\n"),
            "type",
            "services[0].health_check.command",
            "a command health check needs a `command`",
            None,
        ),
        (
            hc("      type: command\n      command: \"/bin/check %a %x\"\n"),
            "\"/bin/check",
            "services[0].health_check.command",
            "unknown placeholder '%x' in the command",
            Some("%a"),
        ),
        (
            hc("      type: http\n      path: healthz\n"),
            "healthz",
            "services[0].health_check.path",
            "'healthz' is not an HTTP request path",
            None,
        ),
        (
            hc("      type: http\n      expect_status: 700\n"),
            "700",
            "services[0].health_check.expect_status",
            "HTTP status 700 is out of range 100..=599",
            None,
        ),
        (
            hc("      type: tcp\n      interval: 0\n"),
            "interval: |0",
            "services[0].health_check.interval",
            "interval 0 s is out of range",
            None,
        ),
        (
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 0\n    persistence: {}\n    health_check:\n      type: tcp\n"
                .to_string(),
            "health_check",
            "services[0].health_check",
            "the service covers every port (port 0)",
            Some("health_check.port"),
        ),
    ];
    for (yaml, at, path, message, hint) in cases {
        let c = Case {
            yaml: Box::leak(yaml.into_boxed_str()),
            whole: false,
            at,
            nth: 0,
            path,
            message,
            hint,
        };
        check(&c);
    }
}

#[test]
fn global_errors() {
    let cases = [
        case(
            "interfaces: []\nservices: []\n",
            "[]",
            "interfaces",
            "at least one interface is needed",
            Some("interfaces:"),
        )
        .whole(),
        case(
            "services: []\n",
            "services",
            "interfaces",
            "at least one interface is needed",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-a-very-long-name\n",
            "uvs-a-very-long-name",
            "interfaces[0].name",
            "interface name 'uvs-a-very-long-name' is 20 bytes long; Linux allows at most 15",
            Some("IFNAMSIZ"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs/0\n",
            "uvs/0",
            "interfaces[0].name",
            "is not a valid Linux interface name",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n  - name: uvs-lb0\n",
            "uvs-lb0",
            "interfaces[1].name",
            "interface 'uvs-lb0' is already listed at line 2",
            None,
        )
        .whole()
        .nth(1),
        case(
            "interfaces:\n  - queues: 2\n",
            "queues",
            "interfaces[0].name",
            "the interface has no `name`",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    queues: 0\n",
            "queues: |0",
            "interfaces[0].queues",
            "queue count 0 is out of range 1..=1024",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    xdp_mode: nativ\n",
            "nativ",
            "interfaces[0].xdp_mode",
            "unknown xdp_mode 'nativ'",
            Some("did you mean 'native'?"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.1/24]\n",
            "198.18.0.1/24",
            "interfaces[0].networks[0]",
            "'198.18.0.1/24' is not a valid prefix: host bits are set past the length",
            Some("did you mean 198.18.0.0/24?"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.0]\n",
            "198.18.0.0",
            "interfaces[0].networks[0]",
            "missing '/length'",
            Some("198.18.0.0/32"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    local: [198.18.5.3]\n    networks: [198.18.0.0/24]\n",
            "198.18.5.3",
            "interfaces[0].local[0]",
            "local address 198.18.5.3 is not inside any of this interface's networks",
            Some("networks"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    local: [198.18.0.3]\n    networks: [198.18.0.0/24]\n  - name: uvs-lb1\n    local: [198.18.0.3]\n    networks: [198.18.0.0/24]\n",
            "198.18.0.3",
            "interfaces[1].local[0]",
            "local address 198.18.0.3 is already listed at line 3",
            None,
        )
        .whole()
        .nth(1),
        case(
            "interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.0/24]\n    routes:\n      - { prefix: 0.0.0.0/0, via: 198.18.9.1 }\n",
            "198.18.9.1",
            "interfaces[0].routes[0].via",
            "next hop 198.18.9.1 is not inside any of this interface's networks",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.0/24]\n    routes:\n      - { prefix: \"::/0\", via: 198.18.0.1 }\n",
            "198.18.0.1",
            "interfaces[0].routes[0].via",
            "next hop 198.18.0.1 is not of the same address family as ::/0",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nworkers:\n  count: 2\n  cores: [1]\n",
            "[1]",
            "workers.cores",
            "1 cores listed for 2 workers",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nworkers:\n  cores: [1, 1]\n",
            "1, |1]",
            "workers.cores[1]",
            "core 1 is listed twice",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nconn_table:\n  capacity: 268435457\n",
            "268435457",
            "conn_table.capacity",
            "capacity 268435457 is out of range 1..=268435456",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\ntimeouts:\n  udp: 0\n",
            "udp: |0",
            "timeouts.udp",
            "timeout 0 is out of range",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nadmin:\n  socket: run/uvs.sock\n",
            "run/uvs.sock",
            "admin.socket",
            "admin socket path 'run/uvs.sock' is not absolute",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nmetrics:\n  listen: \"::1:9100\"\n",
            "\"::1:9100\"",
            "metrics.listen",
            "'::1:9100' is not an address:port",
            Some("[::1]:9100"),
        )
        .whole(),
    ];
    for c in &cases {
        check(c);
    }
}

#[test]
fn structural_errors_from_yaml_serde() {
    let cases = [
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    schedular: rr\n",
            "schedular",
            "services[0].schedular",
            "unknown field 'schedular'",
            Some("did you mean 'scheduler'?"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: eighty\n",
            "eighty",
            "services[0].port",
            "invalid type: string \"eighty\", expected a whole number ≥ 0",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    one_packet: maybe\n",
            "maybe",
            "services[0].one_packet",
            "expected a boolean",
            None,
        ),
        case(
            "servises: []\n",
            "servises",
            "servises",
            "unknown field 'servises'",
            Some("did you mean 'services'?"),
        ),
        case(
            "interfaces:\n  - name: uvs-lb0\n    name: uvs-lb1\n",
            "name",
            "interfaces[0].name",
            "duplicate key, first at line 2",
            None,
        )
        .whole()
        .nth(1),
    ];
    for c in &cases {
        check(c);
    }
}

#[test]
fn anchors_work_and_errors_inside_an_alias_point_at_the_alias() {
    let src = format!(
        "{IFACES}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         forwarding: nat\n    real_servers: &pool\n      - address: 198.18.1.11\n  \
         - vip: 198.18.100.2\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    \
         real_servers: *pool\n"
    );
    let c = load_str(&src, "uvs.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services[1].real_servers, c.services[0].real_servers);

    // The second service is IPv6: the shared IPv4 pool is wrong there, and the only place in
    // the file for that node is the alias.
    let bad = src.replacen("vip: 198.18.100.2", "vip: \"2001:2::100\"", 1);
    let err = load_str(&bad, "uvs.yaml").unwrap_err();
    assert_eq!(err.path, "services[1].real_servers[0].address");
    assert_eq!((err.line, err.column), pos_of(&bad, 0, "*pool", 0), "{err}");
}

#[test]
fn merge_keys_get_a_clear_hint() {
    let src = format!(
        "{IFACES}services:\n  - &web\n    vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n  \
         - <<: *web\n    vip: 198.18.100.3\n"
    );
    let err = load_str(&src, "uvs.yaml").unwrap_err();
    assert_eq!(err.path, "services[1].<<");
    assert_eq!((err.line, err.column), pos_of(&src, 0, "<<", 0));
    assert!(err.hint.unwrap().contains("merge keys are not supported"));
}

#[test]
fn syntax_error_points_into_the_file() {
    let src = "interfaces:\n  - name: uvs-lb0\n    local: [198.18.0.3\nservices: []\n";
    let err = load_str(src, "bad.yaml").unwrap_err();
    assert_eq!(err.file, "bad.yaml");
    assert!(
        (3..=5).contains(&err.line),
        "syntax error at line {}: {err}",
        err.line
    );
    assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
}

#[test]
fn empty_file_says_so() {
    for src in ["", "\n# only a comment\n", "---\n"] {
        let err = load_str(src, "empty.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (1, 1));
        assert_eq!(err.message, "the configuration is empty");
    }
}

#[test]
fn missing_file_names_it() {
    let err = uvs_config::load_file(std::path::Path::new("/nonexistent/uvs.yaml")).unwrap_err();
    assert_eq!(err.file, "/nonexistent/uvs.yaml");
    assert!(err.message.starts_with("cannot read the file"), "{err}");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/uvs.yaml: cannot read the file"),
        "{err}"
    );
}
