//! Defaults, resolved values, and the save/load round trip.

use proptest::prelude::*;
use std::time::Duration;
use uvs_config::{
    diff, load_str, to_yaml, Config, Forwarding, HealthCheckKind, HttpUrl, Protocol, Scheduler,
    SchedulerFlag, StatusCodes, Timeouts, TunCsum, Tunnel, XdpMode, ZeroCopy,
};

const IFACE: &str = "\
interfaces:
  - name: uvs-lb0
    local: [198.18.1.3, \"2001:2:0:1::3\"]
    networks: [198.18.1.0/24, \"2001:2:0:1::/64\"]
";

fn load(src: &str) -> Config {
    load_str(src, "t.yaml").unwrap_or_else(|e| panic!("{e}\n{src}"))
}

#[test]
fn defaults_follow_ipvs_and_the_brief() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         real_servers: [{{ address: 198.18.1.11 }}]\n"
    ));
    let i = &c.interfaces[0];
    assert_eq!(
        (i.queues, i.xdp_mode, i.zero_copy),
        (1, XdpMode::Auto, ZeroCopy::Auto)
    );
    assert!(i.routes.is_empty());
    assert_eq!(c.workers.count, 1);
    assert_eq!(c.workers.cores, None);
    assert_eq!(c.conn_table.capacity, 1 << 20);
    assert_eq!(c.timeouts, Timeouts::default());
    assert_eq!(c.timeouts.tcp_established, 900);
    assert_eq!(c.timeouts.udp, 300);
    assert!(!c.expire_nodest_conn);
    assert_eq!(c.admin.socket.to_str(), Some("/run/uvs/uvsadm.sock"));
    assert_eq!(c.admin.group, None);
    assert_eq!(c.metrics.listen, None);
    let s = &c.services[0];
    assert_eq!(s.name, "tcp/198.18.100.1:80");
    assert_eq!(
        s.scheduler,
        Scheduler::WeightedLeastConnection,
        "ipvsadm's default"
    );
    assert_eq!(s.forwarding, Forwarding::Dr, "ipvsadm's default (-g)");
    assert!(s.scheduler_flags.is_empty() && s.mh_table_size.is_none());
    assert!(s.persistence.is_none() && s.sorry_server.is_none() && s.health_check.is_none());
    assert!(!s.one_packet && s.fullnat_pool.is_empty());
    assert_eq!(s.timeouts, c.timeouts);
    let r = &s.real_servers[0];
    assert_eq!((r.port, r.weight, r.forwarding), (80, 1, Forwarding::Dr));
    assert_eq!(
        (r.upper_threshold, r.lower_threshold, r.tunnel),
        (0, 0, None)
    );
}

#[test]
fn ipv6_default_name_uses_brackets() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: \"2001:2:0:100::1\"\n    protocol: udp\n    port: 53\n"
    ));
    assert_eq!(c.services[0].name, "udp/[2001:2:0:100::1]:53");
}

#[test]
fn workers_default_to_the_largest_queue_count() {
    let c = load("interfaces:\n  - { name: a, queues: 4 }\n  - { name: b, queues: 4 }\n");
    assert_eq!(c.workers.count, 4);
    // An interface with fewer queues than that is refused (errors/global.rs): each worker
    // serves its own queue of every interface.
    let e = uvs_config::load_str(
        "interfaces:\n  - { name: a, queues: 2 }\n  - { name: b, queues: 4 }\n",
        "t.yaml",
    )
    .unwrap_err();
    assert_eq!(e.path, "interfaces[0].queues", "{e}");
}

#[test]
fn workers_spin_200_us_before_sleeping_unless_told_otherwise() {
    let c = load(IFACE);
    assert_eq!((c.workers.busy_poll, c.workers.spin_us), (false, 200));
    let c = load(&format!("{IFACE}workers: {{ spin_us: 0 }}\n"));
    assert_eq!(c.workers.spin_us, 0);
    // With the kernel fast path the spin defaults to none; a spin given stays.
    let c = load(&format!("{IFACE}workers: {{ kernel_fast_path: true }}\n"));
    assert_eq!(c.workers.spin_us, 0);
    let c = load(&format!(
        "{IFACE}workers: {{ kernel_fast_path: true, spin_us: 200 }}\n"
    ));
    assert_eq!(c.workers.spin_us, 200);
    let again = load(&to_yaml(&c));
    assert_eq!(again.workers, c.workers);
    let e = load_str(
        &format!("{IFACE}workers: {{ spin_us: 1000001 }}\n"),
        "t.yaml",
    )
    .expect_err("a spin above 1 s");
    assert!(e.to_string().contains("workers.spin_us"), "{e}");
}

#[test]
fn service_timeouts_override_the_global_ones_field_by_field() {
    let c = load(&format!(
        "{IFACE}timeouts: {{ udp: 100, tcp_close: 5 }}\nservices:\n  - vip: 198.18.100.1\n    \
         protocol: udp\n    port: 53\n    timeouts: {{ udp: 20 }}\n"
    ));
    assert_eq!(c.timeouts.udp, 100);
    let t = c.services[0].timeouts;
    assert_eq!((t.udp, t.tcp_close, t.icmp), (20, 5, 60));
}

#[test]
fn persistence_netmasks_become_prefix_lengths() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         persistence: {{ netmask: 255.255.240.0 }}\n  - vip: \"2001:2::1\"\n    protocol: tcp\n    \
         port: 80\n    persistence: {{ netmask: 56, timeout: 60 }}\n  - vip: 198.18.100.2\n    \
         protocol: tcp\n    port: 0\n    persistence: {{}}\n"
    ));
    let p: Vec<_> = c.services.iter().map(|s| s.persistence.unwrap()).collect();
    assert_eq!((p[0].timeout, p[0].prefix_len), (300, 20));
    assert_eq!((p[1].timeout, p[1].prefix_len), (60, 56));
    assert_eq!((p[2].timeout, p[2].prefix_len), (300, 32));
}

#[test]
fn tunnels_default_to_ipip_and_may_cross_families() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         forwarding: tun\n    real_servers:\n      - address: 198.18.1.11\n      \
         - address: \"2001:2:0:1::11\"\n"
    ));
    let reals = &c.services[0].real_servers;
    assert!(reals.iter().all(|r| r.tunnel == Some(Tunnel::Ipip)));
    assert!(reals[1].address.is_ipv6());
}

/// SCTP's per-state timeouts, globally and per service (IPVS's defaults otherwise), saved
/// and loaded back unchanged.
#[test]
fn sctp_timeouts_per_state() {
    let c = load(&format!(
        "{IFACE}timeouts:\n  sctp_init1: 3\n  sctp_shutdown_sent: 9\nservices:\n  \
         - vip: 198.18.100.1\n    protocol: sctp\n    port: 5000\n    \
         timeouts: {{ sctp: 120, sctp_closed: 7 }}\n"
    ));
    let g = &c.timeouts;
    assert_eq!((g.sctp_init1, g.sctp_shutdown_sent, g.sctp), (3, 9, 900));
    assert_eq!(
        (g.sctp_cookie_echoed, g.sctp_rejected, g.sctp_closed),
        (61, 4, 61)
    );
    let t = &c.services[0].timeouts;
    assert_eq!(
        (t.sctp_init1, t.sctp_shutdown_sent, t.sctp, t.sctp_closed),
        (3, 9, 120, 7),
        "a service's timeouts start from the global ones"
    );
    let yaml = uvs_config::to_yaml(&c);
    assert!(yaml.contains("sctp_closed: 7"), "{yaml}");
    assert_eq!(uvs_config::load_str(&yaml, "saved.yaml").unwrap(), c);
}

/// The three tunnel types with ipvsadm's options; saved and loaded back unchanged.
#[test]
fn gue_and_gre_tunnels_with_their_options_round_trip() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         forwarding: tun\n    real_servers:\n      \
         - {{ address: 198.18.1.11, tunnel: gue, tun_port: 6080 }}\n      \
         - {{ address: 198.18.1.12, tunnel: gue, tun_port: 5555, tun_csum: remcsum }}\n      \
         - {{ address: 198.18.1.13, tunnel: gre, tun_csum: csum }}\n      \
         - {{ address: 198.18.1.14, tunnel: gre }}\n"
    ));
    let r: Vec<_> = c.services[0]
        .real_servers
        .iter()
        .map(|r| (r.tunnel, r.tun_port, r.tun_csum))
        .collect();
    assert_eq!(
        r,
        vec![
            (Some(Tunnel::Gue), Some(6080), TunCsum::None),
            (Some(Tunnel::Gue), Some(5555), TunCsum::Remcsum),
            (Some(Tunnel::Gre), None, TunCsum::Csum),
            (Some(Tunnel::Gre), None, TunCsum::None),
        ]
    );
    let yaml = uvs_config::to_yaml(&c);
    assert!(yaml.contains("tun_csum: remcsum"), "{yaml}");
    assert_eq!(uvs_config::load_str(&yaml, "saved.yaml").unwrap(), c);
}

#[test]
fn health_check_defaults() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         health_check: {{ type: http, interval: 0.25, timeout: 0.1 }}\n"
    ));
    let h = c.services[0].health_check.as_ref().unwrap();
    assert_eq!(
        h.kind,
        HealthCheckKind::Http {
            urls: vec![HttpUrl {
                path: "/".into(),
                expect_status: StatusCodes::one(200),
                expect_body: None,
                expect_digest: None,
            }],
            host: None,
        }
    );
    assert_eq!(h.interval, Duration::from_millis(250));
    assert_eq!(h.timeout, Duration::from_millis(100));
    assert_eq!((h.rise, h.fall, h.port), (2, 3, None));
}

#[test]
fn https_checks_load_and_save() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 443\n    \
         health_check: {{ type: https }}\n"
    ));
    let h = c.services[0].health_check.as_ref().unwrap();
    assert_eq!(
        h.kind,
        HealthCheckKind::Https {
            urls: vec![HttpUrl {
                path: "/".into(),
                expect_status: StatusCodes::one(200),
                expect_body: None,
                expect_digest: None,
            }],
            sni: None,
            verify: false,
            ca_file: None,
        },
        "verify is off unless asked, as keepalived's SSL_GET"
    );
    assert_eq!(load(&to_yaml(&c)), c, "save/load round trip");
    let full = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 443\n    \
         health_check: {{ type: https, path: /healthz, expect_status: 204, expect_body: up, \
         expect_digest: 9B3A0C85A887A256D6939DA88AABD8CD, \
         sni: www.example.com, verify: true, ca_file: /etc/uvs/ca.pem }}\n"
    ));
    let h = full.services[0].health_check.as_ref().unwrap();
    assert_eq!(
        h.kind,
        HealthCheckKind::Https {
            urls: vec![HttpUrl {
                path: "/healthz".into(),
                expect_status: StatusCodes::one(204),
                expect_body: Some("up".into()),
                expect_digest: Some("9b3a0c85a887a256d6939da88aabd8cd".into()),
            }],
            sni: Some("www.example.com".into()),
            verify: true,
            ca_file: Some("/etc/uvs/ca.pem".into()),
        }
    );
    assert_eq!(load(&to_yaml(&full)), full, "save/load round trip");
    let d = diff(&c, &full);
    assert!(d.to_string().contains("health_check"), "{d}");
}

/// keepalived's HTTP_GET in full: several urls that must all pass, each with a set of
/// statuses (`200-299 301`), and the Host header (`virtualhost`).
#[test]
fn http_checks_with_several_urls_status_sets_and_host() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         health_check:\n      type: http\n      host: www.example.test\n      urls:\n        \
         - {{ path: /a, expect_status: 200-299 301 }}\n        \
         - {{ path: /b, expect_status: \"204,302\", expect_body: up }}\n        \
         - {{ path: /c }}\n"
    ));
    let h = c.services[0].health_check.as_ref().unwrap();
    let url = |path: &str, codes: Vec<(u16, u16)>, body: Option<&str>| HttpUrl {
        path: path.into(),
        expect_status: StatusCodes(codes),
        expect_body: body.map(String::from),
        expect_digest: None,
    };
    assert_eq!(
        h.kind,
        HealthCheckKind::Http {
            urls: vec![
                url("/a", vec![(200, 299), (301, 301)], None),
                url("/b", vec![(204, 204), (302, 302)], Some("up")),
                url("/c", vec![(200, 200)], None),
            ],
            host: Some("www.example.test".into()),
        }
    );
    let saved = to_yaml(&c);
    assert!(saved.contains("expect_status: 200-299 301"), "{saved}");
    assert_eq!(load(&saved), c, "save/load round trip");
    // One url with a range stays in the check's own fields.
    let one = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         health_check: {{ type: https, path: /h, expect_status: 200-204 }}\n"
    ));
    let saved = to_yaml(&one);
    assert!(
        saved.contains("path: /h") && !saved.contains("urls"),
        "{saved}"
    );
    assert_eq!(load(&saved), one);
    for (check, want) in [
        (
            "{ type: http, path: /a, urls: [{ path: /b }] }",
            "`path` is given beside `urls`",
        ),
        ("{ type: http, urls: [] }", "`urls` is empty"),
        ("{ type: http, expect_status: 299-200 }", "backwards"),
        (
            "{ type: http, expect_status: \"200 abc\" }",
            "'abc' is not a status",
        ),
        (
            "{ type: http, expect_status: 200-700 }",
            "700 is out of range",
        ),
        (
            "{ type: https, host: a.test }",
            "`host` applies only to http checks",
        ),
        ("{ type: http, host: \"a b\" }", "is not a host name"),
        (
            "{ type: tcp, urls: [{ path: /b }] }",
            "`urls` applies only to http",
        ),
    ] {
        let src = format!(
            "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
             health_check: {check}\n"
        );
        let err = load_str(&src, "t.yaml").unwrap_err().to_string();
        assert!(err.contains(want), "{check}: {err}");
    }
}

/// keepalived's `alpha`: `start_down`, off by default, saved only when on.
#[test]
fn start_down_loads_and_saves() {
    let src = |extra: &str| {
        format!(
            "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
             health_check: {{ type: tcp{extra} }}\n"
        )
    };
    let off = load(&src(""));
    assert!(!off.services[0].health_check.as_ref().unwrap().start_down);
    assert!(!to_yaml(&off).contains("start_down"));
    let on = load(&src(", start_down: true"));
    assert!(on.services[0].health_check.as_ref().unwrap().start_down);
    assert!(to_yaml(&on).contains("start_down: true"));
    assert_eq!(load(&to_yaml(&on)), on);
    assert_ne!(on, off, "a reload that sets it changes the check");
}

#[test]
fn agent_checks_load_and_save() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         scheduler: wlc\n    health_check: {{ type: agent, port: 9900, send: \"web\\n\" }}\n"
    ));
    let h = c.services[0].health_check.as_ref().unwrap();
    assert_eq!(
        h.kind,
        HealthCheckKind::Agent {
            send: Some("web\n".into())
        }
    );
    assert_eq!(h.port, Some(9900));
    assert_eq!(load(&to_yaml(&c)), c, "save/load round trip");
    let bare = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         health_check: {{ type: agent, port: 9900 }}\n"
    ));
    let h = bare.services[0].health_check.as_ref().unwrap();
    assert_eq!(h.kind, HealthCheckKind::Agent { send: None });
}

#[test]
fn scheduler_flags_are_a_sorted_set() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         scheduler: mh\n    scheduler_flags: [mh-port, mh-fallback]\n"
    ));
    assert_eq!(
        c.services[0].scheduler_flags,
        [SchedulerFlag::MhFallback, SchedulerFlag::MhPort]
    );
}

#[test]
fn every_scheduler_name_is_accepted() {
    for name in Scheduler::NAMES {
        // geo is the one that needs more than its name: a site table.
        let sites = if *name == "geo" {
            "    sites: [{ name: here }]\n"
        } else {
            ""
        };
        let c = load(&format!(
            "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
             scheduler: {name}\n{sites}"
        ));
        assert_eq!(c.services[0].scheduler.name(), *name);
    }
    assert_eq!(Scheduler::NAMES.len(), 17);
}

#[test]
fn config_serialises_to_json_for_tools() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         health_check: {{ type: tcp, interval: 1.5 }}\n"
    ));
    let v = serde_json::to_value(&c).unwrap();
    let s = &v["services"][0];
    assert_eq!(s["protocol"], "tcp");
    assert_eq!(s["scheduler"], "wlc");
    assert_eq!(s["vip"], "198.18.100.1");
    assert_eq!(s["health_check"]["interval"], 1.5);
    assert_eq!(s["health_check"]["kind"]["type"], "tcp");
    assert_eq!(v["interfaces"][0]["networks"][0], "198.18.1.0/24");
}

// ---- round trip over generated configurations ----

/// One generated service, valid by construction; `i` makes its VIP unique.
fn service_yaml() -> impl Strategy<Value = (bool, String)> {
    let sched = prop_oneof![
        Just(("rr", "")),
        Just(("wlc", "")),
        Just(("sh", "    scheduler_flags: [sh-port, sh-fallback]\n")),
        Just((
            "mh",
            "    scheduler_flags: [mh-port]\n    mh_table_size: 251\n"
        )),
        Just(("mh", "")),
        Just(("twos", "")),
        Just(("fastest", "")),
    ];
    let fwd = prop_oneof![Just("nat"), Just("dr"), Just("tun"), Just("fullnat")];
    let proto = prop_oneof![Just("tcp"), Just("udp"), Just("sctp")];
    let real = (
        0u8..4,
        prop::option::of(0u32..70_000),
        prop::option::of(0u16..100),
        any::<bool>(),
    );
    (
        any::<bool>(),
        sched,
        fwd,
        proto,
        prop_oneof![Just(0u16), 1u16..65535],
        prop::option::of((1u32..10_000, 1u8..=32)),
        prop::option::of(1u32..5_000),
        prop::option::of((0u8..5, 1u32..20_000, 0u32..4_000)),
        prop::collection::vec(real, 0..5),
        any::<bool>(),
    )
        .prop_map(
            |(v6, (sched, flags), fwd, proto, port, persist, timeout, hc, reals, named)| {
                let mut y = String::new();
                let vip = if v6 { "\"2001:2:0:100::{I}\"" } else { "198.18.100.{I}" };
                if named {
                    y += "  - name: svc-{I}\n";
                    y += &format!("    vip: {vip}\n");
                } else {
                    y += &format!("  - vip: {vip}\n");
                }
                y += &format!("    protocol: {proto}\n    port: {port}\n");
                y += &format!("    scheduler: {sched}\n{flags}    forwarding: {fwd}\n");
                if port == 0 || persist.is_some() {
                    let (t, len) = persist.unwrap_or((300, 32));
                    let mask = if v6 {
                        format!("{}", u32::from(len) * 4)
                    } else {
                        std::net::Ipv4Addr::from(u32::MAX << (32 - u32::from(len))).to_string()
                    };
                    y += &format!("    persistence: {{ timeout: {t}, netmask: {mask} }}\n");
                }
                // The dataplane refuses one-packet scheduling through FullNAT.
                if proto == "udp" && port % 2 == 1 && fwd != "fullnat" {
                    y += "    one_packet: true\n";
                }
                if fwd == "fullnat" {
                    y += if v6 {
                        "    fullnat_pool: [\"2001:2:0:1::100\"]\n"
                    } else {
                        "    fullnat_pool: [198.18.1.100, 198.18.1.101]\n"
                    };
                }
                if let Some(t) = timeout {
                    y += &format!("    timeouts: {{ tcp_established: {t}, udp: {} }}\n", t / 2 + 1);
                }
                if let Some((kind, interval_ms, timeout_ms)) = hc {
                    let timeout_ms = timeout_ms.min(interval_ms);
                    let kind = ["tcp", "http", "command", "agent", "https"][usize::from(kind)];
                    y += &format!(
                        "    health_check:\n      type: {kind}\n      interval: {}\n      timeout: {}\n      port: 9000\n",
                        f64::from(interval_ms) / 1000.0,
                        f64::from(timeout_ms.max(1)) / 1000.0
                    );
                    match kind {
                        "http" => y += "      path: /health\n      expect_body: ok\n",
                        "https" => {
                            y += "      path: /health\n      sni: www.example.com\n      \
                                  verify: true\n      ca_file: /etc/uvs/ca.pem\n"
                        }
                        "command" => y += "      command: \"/bin/check %a %p\"\n",
                        "agent" => y += "      send: \"web4\\n\"\n",
                        _ => {}
                    }
                }
                if !reals.is_empty() {
                    y += "    real_servers:\n";
                }
                for (n, (host, weight, upper, rport)) in reals.iter().enumerate() {
                    let addr = if v6 {
                        format!("\"2001:2:0:1::{}\"", 10 + n)
                    } else {
                        format!("198.18.1.{}", 10 + n)
                    };
                    y += &format!("      - address: {addr}\n");
                    if *rport && port != 0 && (fwd == "nat" || fwd == "fullnat") {
                        y += &format!("        port: {}\n", 8000 + u32::from(*host));
                    }
                    if let Some(w) = weight {
                        y += &format!("        weight: {}\n", w % 65536);
                    }
                    if let Some(u) = upper {
                        y += &format!(
                            "        upper_threshold: {}\n        lower_threshold: {}\n",
                            u + 1,
                            u / 2
                        );
                    }
                }
                (v6, y)
            },
        )
}

fn config_yaml() -> impl Strategy<Value = String> {
    (
        1u32..4,
        prop::option::of(0usize..3),
        prop_oneof![Just("auto"), Just("native"), Just("generic")],
        any::<bool>(),
        prop::collection::vec(service_yaml(), 0..5),
    )
        .prop_map(|(queues, pinned, mode, expire, services)| {
            let mut y = format!(
                "interfaces:\n  - name: uvs-lb0\n    queues: {queues}\n    xdp_mode: {mode}\n    \
                 zero_copy: off\n    local: [198.18.1.3, \"2001:2:0:1::3\"]\n    networks: \
                 [198.18.1.0/24, \"2001:2:0:1::/64\"]\n    routes:\n      - {{ prefix: 0.0.0.0/0, \
                 via: 198.18.1.254 }}\n"
            );
            if let Some(extra) = pinned {
                let cores: Vec<String> = (0..queues as usize + extra)
                    .map(|c| c.to_string())
                    .collect();
                y += &format!(
                    "workers:\n  count: {queues}\n  cores: [{}]\n",
                    cores.join(", ")
                );
            }
            y += &format!("expire_nodest_conn: {expire}\ntimeouts: {{ icmp: 30 }}\nservices:\n");
            for (i, (_, s)) in services.iter().enumerate() {
                y += &s.replace("{I}", &(i + 1).to_string());
            }
            y
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// load → to_yaml → load gives an equal Config, an empty diff, and a stable text.
    #[test]
    fn save_then_load_is_identity(src in config_yaml()) {
        let c = load_str(&src, "gen.yaml").map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        let saved = to_yaml(&c);
        let again = load_str(&saved, "saved.yaml").map_err(|e| TestCaseError::fail(format!("{e}\n{saved}")))?;
        prop_assert_eq!(&again, &c);
        prop_assert!(diff(&c, &again).is_empty());
        prop_assert_eq!(to_yaml(&again), saved);
    }

    /// Loading never panics, whatever the bytes: it returns a Config or a located error.
    #[test]
    fn arbitrary_text_never_panics(src in "[ -~\n]{0,200}") {
        if let Err(e) = load_str(&src, "x.yaml") {
            prop_assert!(e.line >= 1 && e.column >= 1, "{}", e);
        }
    }

    /// Mutating one character of a valid file never panics either.
    #[test]
    fn mutated_examples_never_panic(pos in 0usize..2000, byte in 32u8..127) {
        let src = include_str!("../../../configs/demo.yaml");
        let mut bytes = src.as_bytes().to_vec();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok(s) = String::from_utf8(bytes) {
            if let Err(e) = load_str(&s, "demo.yaml") {
                prop_assert!(e.line >= 1 && e.column >= 1, "{}", e);
            }
        }
    }
}

#[test]
fn protocol_names() {
    assert_eq!(Protocol::NAMES, ["tcp", "udp", "sctp"]);
    assert_eq!(Protocol::from_name("sctp"), Some(Protocol::Sctp));
    assert_eq!(Protocol::from_name("TCP"), None);
}

#[test]
fn geo_sites_resolve_to_indices_and_save_back_as_names() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         scheduler: geo\n    forwarding: tun\n    sites:\n      - name: east\n        \
         clients: [198.18.0.0/25, 198.18.64.0/18]\n      - name: west\n      \
         - name: spare\n        clients: [198.18.0.128/25]\n    real_servers:\n      \
         - {{ address: 198.18.1.11, site: spare }}\n      - {{ address: 198.18.1.12, site: east }}\n"
    ));
    let s = &c.services[0];
    assert_eq!(s.scheduler, Scheduler::Geo);
    let names: Vec<&str> = s.sites.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["east", "west", "spare"]);
    assert_eq!(s.sites[0].clients.len(), 2);
    assert!(
        s.sites[1].clients.is_empty(),
        "a site may take spill-over only"
    );
    assert_eq!(s.sites[2].clients[0].to_string(), "198.18.0.128/25");
    let sites: Vec<Option<u16>> = s.real_servers.iter().map(|r| r.site).collect();
    assert_eq!(sites, [Some(2), Some(0)]);
    let yaml = uvs_config::to_yaml(&c);
    assert!(yaml.contains("site: spare"), "{yaml}");
    assert_eq!(uvs_config::load_str(&yaml, "saved.yaml").unwrap(), c);
    // Other schedulers carry no sites.
    let plain = load(&format!(
        "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
         real_servers: [{{ address: 198.18.1.11, forwarding: nat }}]\n"
    ));
    assert!(plain.services[0].sites.is_empty());
    assert_eq!(plain.services[0].real_servers[0].site, None);
}

#[test]
fn changing_sites_is_a_scheduler_change() {
    let text = |clients: &str| {
        format!(
            "{IFACE}services:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    \
             scheduler: geo\n    sites: [{{ name: a, clients: [{clients}] }}]\n    \
             real_servers: [{{ address: 198.18.1.11, forwarding: nat, site: a }}]\n"
        )
    };
    let old = load(&text("198.18.0.0/24"));
    let new = load(&text("198.18.0.0/25"));
    let d = uvs_config::diff(&old, &new);
    assert_eq!(d.changed_services.len(), 1);
    assert!(d.changed_services[0].scheduler_changed);
    assert!(uvs_config::diff(&old, &old).is_empty());
}

#[test]
fn cluster_groups_default_to_backup_and_save_back() {
    let base = "interfaces:\n  - name: uvs-lb0\n    local: [198.18.1.3]\n    networks: [198.18.1.0/24]\n  - name: uvs-lb1\n    networks: [198.18.0.0/24]\nservices:\n  - vip: 198.18.100.1\n    protocol: tcp\n    port: 80\n    fullnat_pool: [198.18.1.100]\n    real_servers: [{ address: 198.18.1.11, forwarding: fullnat }]\n";
    let c = load(base);
    assert_eq!(c.cluster, uvs_config::Cluster::default());
    assert_eq!(c.cluster.announce.count, 5);
    assert_eq!(c.cluster.announce.interval.as_millis(), 200);
    assert!(!to_yaml(&c).contains("cluster"), "no section when unused");

    let src = format!(
        "{base}cluster:\n  announce: {{ count: 3, interval: 0.05 }}\n  groups:\n    - {{ name: web, vips: [198.18.100.1, \"2001:2:0:100::1\"] }}\n    - {{ name: api.v2, vips: [198.18.100.2], role: master, interfaces: [uvs-lb1] }}\n"
    );
    let c = load(&src);
    let g = &c.cluster.groups;
    assert_eq!(g.len(), 2);
    assert_eq!(
        g[0].role,
        uvs_config::ClusterRole::Backup,
        "the safe default"
    );
    assert_eq!(g[0].vips.len(), 2);
    assert!(g[0].interfaces.is_empty());
    assert_eq!(g[1].role, uvs_config::ClusterRole::Master);
    assert_eq!(g[1].interfaces, ["uvs-lb1"]);
    assert_eq!(c.cluster.group_of("198.18.100.2".parse().unwrap()), Some(1));
    assert_eq!(c.cluster.group_of("198.18.100.3".parse().unwrap()), None);
    assert_eq!(c.cluster.announce.count, 3);
    assert_eq!(c.cluster.announce.interval.as_millis(), 50);
    let saved = to_yaml(&c);
    let again = load(&saved);
    assert_eq!(again, c, "{saved}");
    assert!(diff(&c, &again).is_empty());

    let mut moved = c.clone();
    moved.cluster.groups[0].role = uvs_config::ClusterRole::Master;
    let d = diff(&c, &moved);
    assert!(d.cluster_changed && !d.global_changed, "{d}");
    assert!(d.to_string().contains("~ cluster"));
}

#[test]
fn nat64_is_fullnat_from_an_ipv6_vip_to_ipv4_servers_and_a_pool() {
    let c = load(&format!(
        "{IFACE}services:\n  - vip: \"2001:2:0:100::64\"\n    protocol: tcp\n    port: 80\n    \
         forwarding: fullnat\n    fullnat_pool: [198.18.1.100]\n    \
         real_servers: [{{ address: 198.18.1.11 }}, {{ address: 198.18.1.12, port: 8080 }}]\n"
    ));
    let s = &c.services[0];
    assert!(s.vip.is_ipv6());
    assert_eq!(
        s.fullnat_pool,
        vec!["198.18.1.100".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(s
        .real_servers
        .iter()
        .all(|r| r.forwarding == Forwarding::FullNat && r.address.is_ipv4()));
    // Saved and loaded again unchanged.
    assert_eq!(load(&to_yaml(&c)), c);
}
