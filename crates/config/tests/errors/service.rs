//! Services, real servers and health checks.

use super::{case, check, Case};

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
            "mh_table_size 2 is not larger than the 3 real servers",
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
            "services:\n  - vip: 198.18.100.1\n    protocol: udp\n    port: 53\n    syn_proxy: true\n",
            "true",
            "services[0].syn_proxy",
            "syn_proxy applies only to tcp address services, this service is udp",
            Some("remove `syn_proxy`"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: dr\n    syn_proxy: true\n    real_servers: [{address: 198.18.1.1}]\n",
            "syn_proxy: |true",
            "services[0].syn_proxy",
            "syn_proxy needs replies to pass through uvs, but real server 198.18.1.1 uses dr",
            Some("nat or fullnat"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    syn_proxy: true\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2, forwarding: tun}]\n",
            "syn_proxy: |true",
            "services[0].syn_proxy",
            "syn_proxy needs replies to pass through uvs, but real server 198.18.1.2 uses tun",
            Some("nat or fullnat"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    proxy_protocol: v2\n    real_servers: [{address: 198.18.1.1}]\n",
            "proxy_protocol: |v2",
            "services[0].proxy_protocol",
            "proxy_protocol needs syn_proxy",
            Some("uvs-agent client-of"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: udp\n    port: 53\n    proxy_protocol: v2\n",
            "proxy_protocol: |v2",
            "services[0].proxy_protocol",
            "proxy_protocol needs syn_proxy",
            Some("syn_proxy: true"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: fullnat\n    fullnat_pool: [198.18.1.100]\n    syn_proxy: true\n    proxy_protocol: v1\n    real_servers: [{address: 198.18.1.1}]\n",
            "proxy_protocol: |v1",
            "services[0].proxy_protocol",
            "unknown proxy_protocol version 'v1'",
            Some("proxy_protocol: v2"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.1]}, {name: a, real_servers: [198.18.1.2]}]\n    default_pool: a\n",
            "name: |a, real_servers: [198.18.1.2]",
            "services[0].pools[1].name",
            "pool name 'a' is used twice",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.9]}]\n    default_pool: a\n",
            "198.18.1.9",
            "services[0].pools[0].real_servers[0]",
            "198.18.1.9 is not a real server of this service",
            Some("real_servers"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.1]}]\n    rules: [{host: www.example.org, pool: b}]\n    default_pool: a\n",
            "pool: |b",
            "services[0].rules[0].pool",
            "no pool named 'b'",
            Some("pools: a"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.1]}]\n    rules: [{host: a.example, sni: a.example, pool: a}]\n    default_pool: a\n",
            "sni",
            "services[0].rules[0].sni",
            "a rule has one match, this one has `host` and `sni`",
            Some("split"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.1]}]\n    rules: [{path_prefix: api, pool: a}]\n    default_pool: a\n",
            "api",
            "services[0].rules[0].path_prefix",
            "'api' is not a path",
            Some("starts with `/`"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.1]}]\n    rules: [{host: 'a b', pool: a}]\n    default_pool: a\n",
            "'a b'",
            "services[0].rules[0].host",
            "'a b' is not a host name or `*.suffix`",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.1]}]\n",
            "layer: |7",
            "services[0].default_pool",
            "the service names no default pool",
            Some("default_pool: <one of: a>"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.1]}]\n    default_pool: a\n    head_limit: 100\n",
            "head_limit: |100",
            "services[0].head_limit",
            "head_limit 100 is out of range",
            Some("bytes, 256 to 65536"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, real_servers: [198.18.1.1]}]\n    default_pool: a\n    head_timeout: 0\n",
            "head_timeout: |0",
            "services[0].head_timeout",
            "head_timeout 0 is out of range",
            Some("seconds, 1 to 3600"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    head_timeout: 5\n",
            "head_timeout",
            "services[0].head_timeout",
            "`head_timeout` applies only to a layer 7 service",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 5\n",
            "layer: |5",
            "services[0].layer",
            "layer 5 is not 4 or 7",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    default_pool: a\n",
            "default_pool",
            "services[0].default_pool",
            "`default_pool` applies only to a layer 7 service",
            Some("layer: 7"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: dr\n    layer: 7\n    real_servers: [{address: 198.18.1.1}]\n",
            "layer: |7",
            "services[0].layer",
            "layer 7 (which uses the SYN proxy) needs replies to pass through uvs, but real server 198.18.1.1 uses dr",
            Some("nat or fullnat"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n    layer: 7\n    pools: [{name: a, scheduler: mh, real_servers: [198.18.1.1]}]\n    default_pool: a\n",
            "mh",
            "services[0].pools[0].scheduler",
            "scheduler mh cannot schedule a pool",
            Some("rr, wrr"),
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
            "services:\n  - vip: 198.18.100.1\n    protocol: sctp\n    port: 5000\n    timeouts: { sctp_closed: 0 }\n",
            "sctp_closed: |0",
            "services[0].timeouts.sctp_closed",
            "timeout 0 is out of range 1..=2147483",
            Some("seconds"),
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

#[test]
fn real_server_errors() {
    let cases = [
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: fullnat\n    fullnat_pool: [\"2001:2:0:1::100\"]\n    real_servers:\n      - address: \"2001:2:0:1::11\"\n",
            "\"2001:2:0:1::11\"",
            "services[0].real_servers[0].address",
            "real server 2001:2:0:1::11 is IPv6, the VIP 198.18.100.1 is IPv4",
            Some("fullnat translates only from an IPv6 VIP to IPv4 real servers (NAT64)"),
        ),
        case(
            "services:\n  - vip: \"2001:2:0:100::64\"\n    protocol: sctp\n    port: 80\n    forwarding: fullnat\n    fullnat_pool: [198.18.1.100]\n    real_servers:\n      - address: 198.18.1.11\n",
            "198.18.1.11",
            "services[0].real_servers[0].address",
            "real server 198.18.1.11 is IPv4 behind the IPv6 VIP 2001:2:0:100::64 (NAT64), but the service is sctp",
            Some("NAT64 translates tcp and udp only"),
        ),
        case(
            "services:\n  - vip: \"2001:2:0:100::64\"\n    protocol: tcp\n    port: 80\n    forwarding: fullnat\n    fullnat_pool: [\"2001:2:0:1::100\"]\n    real_servers:\n      - address: 198.18.1.11\n",
            "\"2001:2:0:1::100\"",
            "services[0].fullnat_pool[0]",
            "fullnat pool address 2001:2:0:1::100 is IPv6, real server 198.18.1.11",
            None,
        ),
        case(
            "services:\n  - vip: \"2001:2:0:100::64\"\n    protocol: tcp\n    port: 80\n    forwarding: fullnat\n    real_servers:\n      - address: 198.18.1.11\n",
            "fullnat",
            "services[0].fullnat_pool",
            "real server 198.18.1.11 uses fullnat but the service has no fullnat_pool",
            Some("IPv4 address owned by uvs"),
        ),
        case(
            "services:\n  - vip: \"2001:2:0:100::64\"\n    protocol: tcp\n    port: 80\n    forwarding: nat\n    real_servers:\n      - address: 198.18.1.11\n",
            "198.18.1.11",
            "services[0].real_servers[0].address",
            "real server 198.18.1.11 is IPv4, the VIP 2001:2:0:100::64 is IPv6",
            Some("fullnat serves an IPv6 VIP from IPv4 servers (NAT64)"),
        ),
        case(
            "services:\n  - vip: \"2001:2:0:100::64\"\n    protocol: tcp\n    port: 80\n    syn_proxy: true\n    forwarding: fullnat\n    fullnat_pool: [198.18.1.100]\n    real_servers:\n      - address: 198.18.1.11\n",
            "true",
            "services[0].syn_proxy",
            "syn_proxy cannot serve the IPv6 VIP 2001:2:0:100::64 from the IPv4 real server 198.18.1.11 (NAT64)",
            Some("drop syn_proxy for a NAT64 service"),
        ),
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
            "a gue tunnel needs `tun_port`",
            Some("--tun-port"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: tun\n    real_servers:\n      - { address: 198.18.1.11, tunnel: gue, tun_port: 0 }\n",
            "tun_port: |0",
            "services[0].real_servers[0].tun_port",
            "tun_port 0 is out of range 1..=65535",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: tun\n    real_servers:\n      - { address: 198.18.1.11, tunnel: gre, tun_port: 6080 }\n",
            "tun_port",
            "services[0].real_servers[0].tun_port",
            "`tun_port` does not apply to a gre tunnel",
            Some("only `tunnel: gue`"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: tun\n    real_servers:\n      - { address: 198.18.1.11, tun_port: 6080 }\n",
            "tun_port",
            "services[0].real_servers[0].tun_port",
            "`tun_port` does not apply to an ipip tunnel",
            None,
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: tun\n    real_servers:\n      - { address: 198.18.1.11, tunnel: ipip, tun_csum: csum }\n",
            "tun_csum",
            "services[0].real_servers[0].tun_csum",
            "`tun_csum` does not apply to an ipip tunnel",
            Some("only gue and gre"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: tun\n    real_servers:\n      - { address: 198.18.1.11, tunnel: gre, tun_csum: remcsum }\n",
            "remcsum",
            "services[0].real_servers[0].tun_csum",
            "remote checksum offload applies only to gue",
            Some("`none` or `csum`"),
        ),
        case(
            "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    forwarding: tun\n    real_servers:\n      - { address: 198.18.1.11, tunnel: gue, tun_port: 6080, tun_csum: sum }\n",
            "sum }",
            "services[0].real_servers[0].tun_csum",
            "unknown tunnel checksum option 'sum'",
            None,
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
            "`path` applies only to http and https checks, this one is tcp",
            Some("type: http"),
        ),
        (
            hc("      type: http\n      expect_digest: 9b3a0c85\n"),
            "9b3a0c85",
            "services[0].health_check.expect_digest",
            "'9b3a0c85' is not an MD5 digest",
            Some("32 hex digits"),
        ),
        (
            hc("      type: tcp\n      expect_digest: 9b3a0c85a887a256d6939da88aabd8cd\n"),
            "expect_digest",
            "services[0].health_check.expect_digest",
            "`expect_digest` applies only to http and https checks, this one is tcp",
            Some("type: http"),
        ),
        (
            hc("      type: http\n      sni: www.example.com\n"),
            "sni",
            "services[0].health_check.sni",
            "`sni` applies only to https checks, this one is http",
            Some("type: https"),
        ),
        (
            hc("      type: https\n      sni: \"bad name\"\n"),
            "\"bad name\"",
            "services[0].health_check.sni",
            "'bad name' is not a host name",
            None,
        ),
        (
            hc("      type: https\n      sni: 198.18.1.11\n"),
            "198.18.1.11",
            "services[0].health_check.sni",
            "'198.18.1.11' is an address: SNI carries a host name",
            Some("remove `sni`"),
        ),
        (
            hc("      type: https\n      ca_file: /etc/uvs/ca.pem\n"),
            "ca_file",
            "services[0].health_check.ca_file",
            "`ca_file` is used only to verify certificates, and `verify` is off",
            Some("verify: true"),
        ),
        (
            hc("      type: https\n      verify: true\n      ca_file: ca.pem\n"),
            "ca.pem",
            "services[0].health_check.ca_file",
            "'ca.pem' is not an absolute path",
            None,
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
            hc("      type: command\n      command: /bin/true\n      user: \"a b\"\n"),
            "\"a b\"",
            "services[0].health_check.user",
            "'a b' is not a user name",
            Some("uvs-check"),
        ),
        (
            hc("      type: tcp\n      user: nobody\n"),
            "user",
            "services[0].health_check.user",
            "`user` applies only to command checks, this one is tcp",
            Some("type: command"),
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
            hc("      type: agent\n"),
            "health_check",
            "services[0].health_check",
            "an agent check needs `port`: the port the agent listens on",
            Some("port: 9900"),
        ),
        (
            hc("      type: tcp\n      send: \"hello\\n\"\n"),
            "send",
            "services[0].health_check.send",
            "`send` applies only to agent checks, this one is tcp",
            Some("type: agent"),
        ),
        (
            format!("{SVC}    health_check:\n      type: agent\n      port: 9900\n      send: \"{}\"\n", "x".repeat(1025)),
            "\"xxx",
            "services[0].health_check.send",
            "`send` is 1025 bytes; at most 1024",
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

/// A geo service head: `{SVC}` with `scheduler: geo`, then the given lines.
const GEO: &str =
    "services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    scheduler: geo\n";

#[test]
fn geo_errors() {
    let geo = |rest: &str| format!("{GEO}{rest}");
    let rs = "    real_servers:\n      - address: 198.18.1.11\n        forwarding: nat\n";
    let cases = [
        (
            geo(rs),
            "|geo",
            "services[0].scheduler",
            "the geo scheduler needs `sites`",
            Some("add `sites:"),
        ),
        (
            geo("    sites: []\n"),
            "|geo",
            "services[0].scheduler",
            "the geo scheduler needs `sites`",
            None,
        ),
        (
            format!("{SVC}    scheduler: wlc\n    sites: [{{ name: a }}]\n"),
            "|sites:",
            "services[0].sites",
            "`sites` applies only to the geo scheduler, not wlc",
            Some("set `scheduler: geo`"),
        ),
        (
            format!("{SVC}    real_servers:\n      - address: 198.18.1.11\n        forwarding: nat\n        site: a\n"),
            "|site: a",
            "services[0].real_servers[0].site",
            "`site` applies only to the geo scheduler, not wlc",
            Some("remove it"),
        ),
        (
            geo("    sites: [{ name: a }]\n    real_servers:\n      - address: 198.18.1.11\n        forwarding: nat\n"),
            "address: |198.18.1.11",
            "services[0].real_servers[0].site",
            "the geo scheduler needs every real server to name its `site`",
            Some("the service's sites are: a"),
        ),
        (
            geo("    sites: [{ name: a }, { name: b }]\n    real_servers:\n      - address: 198.18.1.11\n        forwarding: nat\n        site: c\n"),
            "site: |c",
            "services[0].real_servers[0].site",
            "unknown site 'c'",
            Some("the service's sites are: a, b"),
        ),
        (
            geo("    sites:\n      - name: a\n      - name: a\n"),
            "- name: a\n      - name: |a",
            "services[0].sites[1].name",
            "site name 'a' is already used at line 11",
            None,
        ),
        (
            geo("    sites:\n      - clients: [198.18.0.0/24]\n"),
            "- |clients",
            "services[0].sites[0].name",
            "the site has no `name`",
            None,
        ),
        (
            geo("    sites:\n      - name: a\n        clients: [198.18.0.1/24]\n"),
            "198.18.0.1/24",
            "services[0].sites[0].clients[0]",
            "'198.18.0.1/24' is not a valid prefix",
            Some("did you mean 198.18.0.0/24?"),
        ),
        (
            geo("    sites:\n      - name: a\n        clients: [\"2001:2::/64\"]\n"),
            "\"2001:2::/64\"",
            "services[0].sites[0].clients[0]",
            "client prefix 2001:2::/64 is IPv6, the VIP 198.18.100.1 is IPv4",
            Some("would never match"),
        ),
        (
            geo("    sites:\n      - name: a\n        clients: [198.18.0.0/24]\n      - name: b\n        clients: [198.18.0.0/25, 198.18.0.0/24]\n"),
            "198.18.0.0/25, |198.18.0.0/24",
            "services[0].sites[1].clients[1]",
            "client prefix 198.18.0.0/24 is already listed at line 12 (site 'a')",
            Some("a longer prefix"),
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
