//! `uvsadm -L` compared line by line with ipvsadm's layout. The expected text is written out
//! literally from ipvsadm.c's printf formats (`print_title`, `print_service_entry`,
//! `print_largenum`, `list_conn`), trailing spaces included.

use std::collections::HashMap;
use std::net::IpAddr;
use uvs_config::{Protocol, ServiceKey};
use uvs_control::admin::{
    format_conns, format_conns_with, format_list, format_list_names, format_list_with, format_top,
    ListOptions, SystemNames,
};
use uvs_control::snapshot::{
    ConnSnapshot, Rates, RealSnapshot, ServiceSnapshot, Snapshot, Traffic, WorkerSnapshot,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn traffic(t: [u64; 5]) -> Traffic {
    Traffic {
        conns: t[0],
        packets_in: t[1],
        packets_out: t[2],
        bytes_in: t[3],
        bytes_out: t[4],
    }
}

fn rates(r: [f64; 5]) -> Rates {
    Rates {
        cps: r[0],
        inpps: r[1],
        outpps: r[2],
        inbps: r[3],
        outbps: r[4],
    }
}

#[allow(clippy::too_many_arguments)]
fn real(
    addr: &str,
    port: u16,
    forward: &str,
    weight: u32,
    active: u32,
    inactive: u32,
    t: [u64; 5],
    r: [f64; 5],
) -> RealSnapshot {
    RealSnapshot {
        address: ip(addr),
        port,
        forward: forward.into(),
        tunnel: String::new(),
        weight,
        active,
        inactive,
        health_up: true,
        overloaded: false,
        upper_threshold: 0,
        lower_threshold: 0,
        persistent: 0,
        response_time_us: 0,
        load: 0,
        traffic: traffic(t),
        rates: rates(r),
    }
}

#[allow(clippy::too_many_arguments)]
fn service(
    protocol: &str,
    vip: &str,
    port: u16,
    scheduler: &str,
    flags: &str,
    persistent: Option<(u32, u8)>,
    one_packet: bool,
    reals: Vec<RealSnapshot>,
    t: [u64; 5],
    r: [f64; 5],
) -> ServiceSnapshot {
    ServiceSnapshot {
        name: format!("{protocol}-{port}"),
        protocol: protocol.into(),
        vip: ip(vip),
        port,
        fwmark: 0,
        scheduler: scheduler.into(),
        flags: flags.into(),
        persistent,
        one_packet,
        reals,
        traffic: traffic(t),
        rates: rates(r),
    }
}

const Z: [u64; 5] = [0; 5];
const ZR: [f64; 5] = [0.0; 5];

/// Services deliberately out of ipvsadm's order (IPv4 before IPv6, then TCP, UDP, SCTP, then
/// address and port), servers too.
fn sample() -> Snapshot {
    Snapshot {
        version: "0.1.0".into(),
        conn_capacity: 65536,
        conn_count: 42,
        conn_dropped: 0,
        services: vec![
            service(
                "UDP",
                "198.18.100.1",
                53,
                "rr",
                "",
                Some((300, 24)),
                true,
                vec![
                    real("198.18.1.12", 53, "Masq", 1, 0, 5, Z, ZR),
                    real("198.18.1.11", 53, "Masq", 1, 0, 3, Z, ZR),
                ],
                [123_456_789, 987_654_321, 5, 123_456_789_012, 99_999_999],
                ZR,
            ),
            service(
                "TCP",
                "2001:2:0:100::1",
                443,
                "mh",
                "mh-fallback,mh-port",
                Some((60, 64)),
                false,
                vec![real(
                    "2001:2:0:1::11",
                    443,
                    "FullNat",
                    100,
                    123_456,
                    7,
                    Z,
                    ZR,
                )],
                Z,
                ZR,
            ),
            service(
                "SCTP",
                "198.18.100.1",
                5000,
                "sh",
                "sh-port",
                None,
                false,
                vec![],
                Z,
                ZR,
            ),
            service(
                "TCP",
                "198.18.100.1",
                80,
                "wlc",
                "",
                None,
                false,
                vec![
                    real(
                        "198.18.1.12",
                        8080,
                        "Masq",
                        0,
                        0,
                        1,
                        [5, 50, 40, 3000, 4000],
                        [0.0, 1.0, 1.0, 60.0, 80.0],
                    ),
                    real(
                        "198.18.1.11",
                        80,
                        "Route",
                        1,
                        12,
                        30,
                        [100, 2000, 1900, 150_000, 2_500_000],
                        [1.0, 20.0, 19.0, 1500.0, 25000.0],
                    ),
                ],
                [105, 2050, 1940, 153_000, 2_504_000],
                [1.0, 21.0, 20.4, 1560.0, 25079.6],
            ),
        ],
        workers: vec![WorkerSnapshot {
            id: 0,
            core: Some(1),
            rx_packets: 5000,
            tx_packets: 4900,
            busy_ratio: 0.5,
            ..WorkerSnapshot::default()
        }],
        drops: vec![("no_service".into(), 3)],
        generation: 2,
        sync: None,
        node: None,
        client_lookup: None,
        cluster: None,
        layer7_pools: vec![],
        fast_path: vec![],
        fast_path_sent: vec![],
        attached_again: vec![],
        unclaimed: vec![],
    }
}

fn assert_lines(got: &str, want: &[&str]) {
    let got_lines: Vec<&str> = got.lines().collect();
    for (i, (g, w)) in got_lines.iter().zip(want).enumerate() {
        assert_eq!(g, w, "line {}:\n{got}", i + 1);
    }
    assert_eq!(got_lines.len(), want.len(), "line count:\n{got}");
    assert!(got.ends_with('\n'));
}

#[test]
fn plain_listing() {
    assert_lines(
        &format_list(&sample(), true, false, false),
        &[
            "IP Virtual Server version 1.2.1 (size=65536)",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "TCP  198.18.100.1:80 wlc",
            "  -> 198.18.1.11:80               Route   1      12         30        ",
            "  -> 198.18.1.12:8080             Masq    0      0          1         ",
            "UDP  198.18.100.1:53 rr persistent 300 mask 255.255.255.0 ops",
            "  -> 198.18.1.11:53               Masq    1      0          3         ",
            "  -> 198.18.1.12:53               Masq    1      0          5         ",
            "SCTP 198.18.100.1:5000 sh (sh-port)",
            "TCP  [2001:2:0:100::1]:443 mh (mh-fallback,mh-port) persistent 60 mask 64",
            "  -> [2001:2:0:1::11]:443         FullNat 100    123456     7         ",
        ],
    );
}

#[test]
fn stats_listing_with_large_numbers() {
    assert_lines(
        &format_list(&sample(), true, true, false),
        &[
            "IP Virtual Server version 1.2.1 (size=65536)",
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
            "  -> RemoteAddress:Port",
            "TCP  198.18.100.1:80                   105     2050     1940   153000  2504000",
            "  -> 198.18.1.11:80                    100     2000     1900   150000  2500000",
            "  -> 198.18.1.12:8080                    5       50       40     3000     4000",
            "UDP  198.18.100.1:53               123456K  987654K        5     123G 99999999",
            "  -> 198.18.1.11:53                      0        0        0        0        0",
            "  -> 198.18.1.12:53                      0        0        0        0        0",
            "SCTP 198.18.100.1:5000                   0        0        0        0        0",
            "TCP  [2001:2:0:100::1]:443               0        0        0        0        0",
            "  -> [2001:2:0:1::11]:443                0        0        0        0        0",
        ],
    );
}

#[test]
fn rate_listing() {
    assert_lines(
        &format_list(&sample(), true, false, true),
        &[
            "IP Virtual Server version 1.2.1 (size=65536)",
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
            "  -> RemoteAddress:Port",
            "TCP  198.18.100.1:80                     1       21       20     1560    25080",
            "  -> 198.18.1.11:80                      1       20       19     1500    25000",
            "  -> 198.18.1.12:8080                    0        1        1       60       80",
            "UDP  198.18.100.1:53                     0        0        0        0        0",
            "  -> 198.18.1.11:53                      0        0        0        0        0",
            "  -> 198.18.1.12:53                      0        0        0        0        0",
            "SCTP 198.18.100.1:5000                   0        0        0        0        0",
            "TCP  [2001:2:0:100::1]:443               0        0        0        0        0",
            "  -> [2001:2:0:1::11]:443                0        0        0        0        0",
        ],
    );
}

/// A server's packet rates are `%8u` (exact, may overflow the column); its byte rates and
/// everything on the service line go through print_largenum.
#[test]
fn rate_columns_differ_like_ipvsadm() {
    let mut s = sample();
    s.services.truncate(0);
    s.services.push(service(
        "TCP",
        "198.18.100.1",
        80,
        "rr",
        "",
        None,
        false,
        vec![real(
            "198.18.1.11",
            80,
            "Masq",
            1,
            0,
            0,
            Z,
            [0.0, 2e8, 0.0, 2e8, 0.0],
        )],
        Z,
        ZR,
    ));
    let out = format_list(&s, true, false, true);
    assert_eq!(
        out.lines().nth(4).unwrap(),
        "  -> 198.18.1.11:80                      0 200000000        0  200000K        0"
    );
}

#[test]
fn thresholds_exact_and_one_service() {
    let mut s = sample();
    s.services[3].reals[1].upper_threshold = 100;
    s.services[3].reals[1].lower_threshold = 50;
    s.services[3].traffic.conns = 123_456_789;
    let web = ServiceKey::addr(ip("198.18.100.1"), Protocol::Tcp, 80);
    let opts = ListOptions {
        numeric: true,
        thresholds: true,
        service: Some(web),
        ..ListOptions::default()
    };
    // One service: no version line (ipvsadm's list_service).
    assert_lines(
        &format_list_with(&s, &opts).unwrap(),
        &[
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
            "  -> RemoteAddress:Port",
            "TCP  198.18.100.1:80 wlc",
            "  -> 198.18.1.11:80               100        50         12         30        ",
            "  -> 198.18.1.12:8080             0          0          0          1         ",
        ],
    );
    let exact = ListOptions {
        numeric: true,
        stats: true,
        exact: true,
        service: Some(web),
        ..ListOptions::default()
    };
    let out = format_list_with(&s, &exact).unwrap();
    assert!(
        out.lines()
            .nth(2)
            .unwrap()
            .starts_with("TCP  198.18.100.1:80              123456789     2050"),
        "{out}"
    );
    let missing = ListOptions {
        service: Some(ServiceKey { port: 81, ..web }),
        ..ListOptions::default()
    };
    let err = format_list_with(&s, &missing).unwrap_err();
    assert!(
        err.contains("No such service: TCP 198.18.100.1:81"),
        "{err}"
    );
}

#[test]
fn nosort_keeps_the_configuration_order() {
    let opts = ListOptions {
        numeric: true,
        nosort: true,
        ..ListOptions::default()
    };
    let out = format_list_with(&sample(), &opts).unwrap();
    let services: Vec<&str> = out
        .lines()
        .skip(3)
        .filter(|l| !l.starts_with("  ->"))
        .collect();
    assert_eq!(
        services,
        [
            "UDP  198.18.100.1:53 rr persistent 300 mask 255.255.255.0 ops",
            "TCP  [2001:2:0:100::1]:443 mh (mh-fallback,mh-port) persistent 60 mask 64",
            "SCTP 198.18.100.1:5000 sh (sh-port)",
            "TCP  198.18.100.1:80 wlc",
        ]
    );
    assert!(out.contains("  -> 198.18.1.12:53               Masq    1      0          5         \n  -> 198.18.1.11:53"));
}

#[test]
fn connection_listing() {
    let conns = vec![
        ConnSnapshot {
            protocol: "TCP".into(),
            expires_s: 14 * 60 + 56,
            state: "ESTABLISHED".into(),
            client: (ip("198.18.0.2"), 54321),
            virtual_: (ip("198.18.100.1"), 80),
            real: (ip("198.18.1.11"), 80),
            local: None,
            template: false,
        },
        ConnSnapshot {
            protocol: "UDP".into(),
            expires_s: 5,
            state: "UDP".into(),
            client: (ip("2001:2::2"), 4000),
            virtual_: (ip("2001:2:0:100::1"), 53),
            real: (ip("2001:2:0:1::12"), 53),
            local: None,
            template: false,
        },
        ConnSnapshot {
            protocol: "TCP".into(),
            expires_s: 60,
            state: "SYN_RECV".into(),
            client: (ip("198.18.0.2"), 40000),
            virtual_: (ip("198.18.100.1"), 80),
            real: (ip("198.18.1.12"), 8080),
            local: Some((ip("198.18.1.3"), 61000)),
            template: false,
        },
        // A persistence template, as ipvsadm lists IPVS's: client port 0, state NONE.
        ConnSnapshot {
            protocol: "TCP".into(),
            expires_s: 299,
            state: "NONE".into(),
            client: (ip("198.18.0.0"), 0),
            virtual_: (ip("198.18.100.1"), 80),
            real: (ip("198.18.1.11"), 80),
            local: None,
            template: true,
        },
        // A firewall-mark service's: protocol IP, the mark as the virtual address.
        ConnSnapshot {
            protocol: "IP".into(),
            expires_s: 59,
            state: "NONE".into(),
            client: (ip("198.18.0.2"), 0),
            virtual_: (ip("0.0.0.7"), 0),
            real: (ip("198.18.1.13"), 0),
            local: None,
            template: true,
        },
    ];
    assert_lines(
        &format_conns(&conns, true),
        &[
            "IPVS connection entries",
            "pro expire state       source             virtual            destination",
            "TCP 14:56  ESTABLISHED 198.18.0.2:54321   198.18.100.1:80    198.18.1.11:80",
            "UDP 00:05  UDP         [2001:2::2]:4000   [2001:2:0:100::1]:53 [2001:2:0:1::12]:53",
            "TCP 01:00  SYN_RECV    198.18.0.2:40000   198.18.100.1:80    198.18.1.12:8080 (local 198.18.1.3:61000)",
            "TCP 04:59  NONE        198.18.0.0:0       198.18.100.1:80    198.18.1.11:80",
            "IP  00:59  NONE        198.18.0.2:0       0.0.0.7:0          198.18.1.13:0",
        ],
    );
    // --persistent-conn: ipvsadm's title; entries without a persistence engine keep the
    // plain columns (ipvsadm prints pe name and pe_data only for entries that have them).
    let o = ListOptions {
        numeric: true,
        persistent_conn: true,
        ..Default::default()
    };
    assert_lines(
        &format_conns_with(&conns[3..4], &o, &uvs_control::admin::Numeric),
        &[
            "IPVS connection entries",
            "pro expire state       source             virtual            destination        pe name          pe_data",
            "TCP 04:59  NONE        198.18.0.0:0       198.18.100.1:80    198.18.1.11:80",
        ],
    );
    // `-L -c --json` marks templates, so a script tells them from connections.
    let json: serde_json::Value = serde_json::to_value(&conns).unwrap();
    let marked: Vec<bool> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["template"].as_bool().unwrap())
        .collect();
    assert_eq!(marked, [false, false, false, true, true]);
    assert_lines(
        &format_conns(&[], true),
        &[
            "IPVS connection entries",
            "pro expire state       source             virtual            destination",
        ],
    );
}

#[test]
fn top_frame() {
    let mut s = sample();
    s.services[3].reals[0].health_up = false;
    let out = format_top(&s);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("uvs 0.1.0  generation 2  connections 42/65536 (0.1%)"));
    assert!(
        out.contains("     0    1  50.0%       5.0K       4.9K"),
        "{out}"
    );
    let web = lines
        .iter()
        .position(|l| l.starts_with("TCP 198.18.100.1:80 TCP-80"))
        .expect(&out);
    assert!(lines[web].contains(" wlc "), "{}", lines[web]);
    assert!(
        lines[web].contains(" 1/2 "),
        "health up/total: {}",
        lines[web]
    );
    assert!(lines[web + 1].starts_with("  -> 198.18.1.11:80"));
    assert!(lines[web + 1].contains("Route"));
    assert!(lines[web + 1].contains(" up "));
    assert!(lines[web + 2].contains(" DOWN "), "{}", lines[web + 2]);
    assert!(lines[web + 1].contains("25.0K"), "{}", lines[web + 1]);
    assert_eq!(lines.last(), Some(&"DROPS  no_service 3"));
    // Services in ipvsadm's order: IPv4 TCP, UDP, SCTP, then IPv6.
    let order: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP") || l.starts_with("SCTP"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(order, ["TCP", "UDP", "SCTP", "TCP"]);
}

/// Firewall-mark services print as ipvsadm's `FWM  N` (`FWM  N IPv6`), after the address
/// services (ipvsadm sorts by mark first, 0 being none); `-f N` lists one.
#[test]
fn firewall_mark_services_listing() {
    let mut s = sample();
    let mut m6 = service(
        "FWM",
        "::",
        0,
        "lblc",
        "",
        None,
        false,
        vec![real("2001:2:0:1::11", 0, "Route", 1, 0, 0, Z, ZR)],
        Z,
        ZR,
    );
    m6.fwmark = 1;
    let mut m4 = service(
        "FWM",
        "0.0.0.0",
        0,
        "dh",
        "",
        Some((300, 32)),
        false,
        vec![
            real("198.18.1.12", 0, "Route", 1, 3, 0, Z, ZR),
            real("198.18.1.11", 3128, "Masq", 2, 4, 1, Z, ZR),
        ],
        Z,
        ZR,
    );
    m4.fwmark = 1;
    s.services.insert(0, m6);
    s.services.insert(1, m4);
    let out = format_list(&s, true, false, false);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[lines.len() - 5..],
        [
            "FWM  1 dh persistent 300",
            "  -> 198.18.1.11:3128             Masq    2      4          1         ",
            "  -> 198.18.1.12:0                Route   1      3          0         ",
            "FWM  1 IPv6 lblc",
            "  -> [2001:2:0:1::11]:0           Route   1      0          0         ",
        ]
    );
    let one = ListOptions {
        numeric: true,
        service: Some(ServiceKey::mark(1, true)),
        ..ListOptions::default()
    };
    assert_lines(
        &format_list_with(&s, &one).unwrap(),
        &[
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "FWM  1 IPv6 lblc",
            "  -> [2001:2:0:1::11]:0           Route   1      0          0         ",
        ],
    );
    let missing = ListOptions {
        service: Some(ServiceKey::mark(2, false)),
        ..one
    };
    let err = format_list_with(&s, &missing).unwrap_err();
    assert!(err.contains("No such service: FWM 2"), "{err}");
}

/// A real server whose health check fails is listed with weight 0, as keepalived with
/// `inhibit_on_failure` leaves it in IPVS (without it keepalived removes the server, and
/// `ipvsadm -L` no longer shows it): a script reading the weight column sees it out of
/// rotation. Its connections still count; `-S` keeps the configured weight.
#[test]
fn a_server_whose_check_fails_is_listed_with_weight_zero() {
    let mut s = sample();
    s.services[3].reals[1].health_up = false;
    let listing = format_list(&s, true, false, false);
    assert!(
        listing
            .contains("  -> 198.18.1.11:80               Route   0      12         30        \n"),
        "{listing}"
    );
    let o = ListOptions {
        numeric: true,
        persistent_conn: true,
        service: Some(ServiceKey::addr(ip("198.18.100.1"), Protocol::Tcp, 80)),
        ..ListOptions::default()
    };
    let listing = format_list_with(&s, &o).unwrap();
    assert!(
        listing.contains(
            "  -> 198.18.1.11:80               0         0           12         30        \n"
        ),
        "{listing}"
    );
}

/// `--persistent-conn`: ipvsadm's Weight/PersistConn/ActiveConn/InActConn columns.
#[test]
fn persistent_conn_listing() {
    let mut s = sample();
    s.services[3].reals[1].persistent = 17;
    let o = ListOptions {
        numeric: true,
        persistent_conn: true,
        service: Some(ServiceKey::addr(ip("198.18.100.1"), Protocol::Tcp, 80)),
        ..ListOptions::default()
    };
    assert_lines(
        &format_list_with(&s, &o).unwrap(),
        &[
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
            "  -> RemoteAddress:Port",
            "TCP  198.18.100.1:80 wlc",
            "  -> 198.18.1.11:80               1         17          12         30        ",
            "  -> 198.18.1.12:8080             0         0           0          1         ",
        ],
    );
    let c = ListOptions {
        numeric: true,
        persistent_conn: true,
        connections: true,
        ..ListOptions::default()
    };
    assert_lines(
        &format_conns_with(&[], &c, &SystemNames::from_map(HashMap::new())),
        &[
            "IPVS connection entries",
            "pro expire state       source             virtual            destination        pe name          pe_data",
        ],
    );
}

/// Without `-n`, addresses are host names and ports service names, as ipvsadm prints them
/// (IPv6 names in brackets; IPv4 names cut at 33 and 28 columns like ipvsadm's).
#[test]
fn names_without_numeric() {
    let names = SystemNames::from_map(HashMap::from([
        (ip("198.18.100.1"), "www.example.test".to_string()),
        (
            ip("198.18.1.11"),
            "a-very-long-real-server-name.example.test".to_string(),
        ),
        (ip("2001:2:0:100::1"), "v6.example.test".to_string()),
    ]));
    let o = ListOptions::default();
    let out = format_list_names(&sample(), &o, &names).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[3], "TCP  www.example.test:http wlc");
    assert_eq!(
        lines[4],
        "  -> a-very-long-real-server-name Route   1      12         30        "
    );
    assert_eq!(
        lines[5],
        "  -> 198.18.1.12:http-alt         Masq    0      0          1         "
    );
    assert!(out.contains("TCP  [v6.example.test]:https mh"), "{out}");
    // -n wins over names.
    let numeric = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    let out = format_list_names(&sample(), &numeric, &names).unwrap();
    assert!(out.contains("TCP  198.18.100.1:80 wlc"), "{out}");
}

/// The system resolver names the loopback address from /etc/hosts; an address it cannot name
/// stays numeric.
#[test]
fn system_resolver_names_addresses() {
    let names = SystemNames::resolve([ip("127.0.0.1"), ip("198.18.255.254")]);
    use uvs_control::admin::Names;
    assert_eq!(names.host(ip("127.0.0.1")).as_deref(), Some("localhost"));
    assert_eq!(names.host(ip("198.18.255.254")), None);
}

/// `-L --tun-info`: ipvsadm's TunnelInfo column (`fwd_tun_info`), `n/a` for servers that do
/// not tunnel.
#[test]
fn tunnel_info_column() {
    let mut s = sample();
    let web = ServiceKey::addr(ip("198.18.100.1"), Protocol::Tcp, 80);
    let r = s.services[3]
        .reals
        .iter_mut()
        .find(|r| r.address == ip("198.18.1.11"))
        .unwrap();
    r.forward = "Tunnel".into();
    r.tunnel = "gue:6080:+c".into();
    let opts = ListOptions {
        numeric: true,
        tun_info: true,
        service: Some(web),
        ..ListOptions::default()
    };
    let out = format_list_with(&s, &opts).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1],
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn"
    );
    assert!(
        lines[3].starts_with("  -> 198.18.1.11:80               Tunnel  gue:6080:+c   "),
        "{out}"
    );
    assert!(lines[4].contains(" n/a "), "{out}");
}
