//! Edit commands on a configuration: each accepted edit does exactly what it says, and a
//! rejected one leaves the configuration equal and says why.

use std::net::{IpAddr, SocketAddr};
use uvs_config::{Config, Forwarding, Persistence, Scheduler, SchedulerFlag, Tunnel};
use uvs_control::admin::{apply, format_rules, parse};

const YAML: &str = r#"
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3, "2001:2::3"]
    networks: [198.18.0.0/24, "2001:2::/64"]
  - name: uvs-lb1
    local: [198.18.1.3, "2001:2:0:1::3"]
    networks: [198.18.1.0/24, "2001:2:0:1::/64"]
services:
  - name: web4
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    scheduler: mh
    mh_table_size: 65537
    forwarding: nat
    persistence: { timeout: 600 }
    health_check: { type: tcp, interval: 2, timeout: 1 }
    real_servers:
      - address: 198.18.1.11
      - address: 198.18.1.12
        weight: 2
  - name: dns6
    vip: "2001:2:0:100::1"
    protocol: udp
    port: 53
    scheduler: rr
    forwarding: nat
    real_servers:
      - address: "2001:2:0:1::11"
"#;

fn config() -> Config {
    uvs_config::load_str(YAML, "test.yaml").unwrap()
}

fn run(cfg: &Config, line: &str) -> Result<Config, String> {
    run_on(cfg, line, &[])
}

/// `line` applied on a host that holds `host`.
fn run_on(cfg: &Config, line: &str, host: &[IpAddr]) -> Result<Config, String> {
    let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
    apply(&parse(&argv)?, cfg, host)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn add_edit_delete_service() {
    let cfg = config();
    let new = run(
        &cfg,
        "-A -t 198.18.100.2:443 -s sh -b sh-port -p 120 -M 255.255.255.0",
    )
    .unwrap();
    assert_eq!(new.services.len(), 3);
    let s = &new.services[2];
    assert_eq!(s.vip, ip("198.18.100.2"));
    assert_eq!(s.port, 443);
    assert_eq!(s.name, "tcp/198.18.100.2:443");
    assert_eq!(s.scheduler, Scheduler::SourceHashing);
    assert_eq!(s.scheduler_flags, vec![SchedulerFlag::ShPort]);
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout: 120,
            prefix_len: 24
        })
    );
    assert_eq!(s.forwarding, Forwarding::Dr, "ipvsadm's default method");
    assert!(s.real_servers.is_empty() && s.health_check.is_none());
    assert_eq!(new.services[..2], cfg.services[..], "others untouched");

    // -E replaces what ipvsadm sets and keeps what only the YAML has.
    let edited = run(&cfg, "-E -t 198.18.100.1:80 -s wrr").unwrap();
    let (old, s) = (&cfg.services[0], &edited.services[0]);
    assert_eq!(s.scheduler, Scheduler::WeightedRoundRobin);
    assert_eq!(
        s.persistence, None,
        "not given: back to none, as ipvsadm -E"
    );
    assert_eq!(s.mh_table_size, None, "only for mh");
    assert_eq!(s.name, old.name);
    assert_eq!(s.health_check, old.health_check);
    assert_eq!(s.real_servers, old.real_servers);
    assert_eq!(s.forwarding, old.forwarding);

    let deleted = run(&cfg, "-D -u [2001:2:0:100::1]:53").unwrap();
    assert_eq!(deleted.services, cfg.services[..1]);

    let cleared = run(&cfg, "-C").unwrap();
    assert!(cleared.services.is_empty());
    assert_eq!(cleared.interfaces, cfg.interfaces);
}

#[test]
fn add_edit_delete_real_server() {
    let cfg = config();
    let new = run(
        &cfg,
        "-a -t 198.18.100.1:80 -r 198.18.1.13 -w 5 -x 100 -y 10",
    )
    .unwrap();
    let r = new.services[0].real_servers[2];
    assert_eq!(r.key(), "198.18.1.13:80".parse::<SocketAddr>().unwrap());
    assert_eq!(
        (r.weight, r.upper_threshold, r.lower_threshold),
        (5, 100, 10)
    );
    assert_eq!(
        r.forwarding,
        Forwarding::Nat,
        "the service's default method"
    );

    let new = run(&cfg, "-a -t 198.18.100.1:80 -r 198.18.1.13:8080 -m").unwrap();
    assert_eq!(new.services[0].real_servers[2].port, 8080);

    let new = run(&cfg, "-a -t 198.18.100.1:80 -r 198.18.1.13 -i").unwrap();
    let r = new.services[0].real_servers[2];
    assert_eq!(
        (r.forwarding, r.tunnel),
        (Forwarding::Tun, Some(Tunnel::Ipip))
    );

    // Drain: -e sets weight 0 and keeps the server.
    let new = run(&cfg, "-e -t 198.18.100.1:80 -r 198.18.1.12 -w 0").unwrap();
    let r = new.services[0].real_servers[1];
    assert_eq!((r.weight, r.forwarding), (0, Forwarding::Nat));
    assert_eq!(
        new.services[0].real_servers[0],
        cfg.services[0].real_servers[0]
    );

    let new = run(&cfg, "-d -t 198.18.100.1:80 -r 198.18.1.11:80").unwrap();
    assert_eq!(
        new.services[0].real_servers,
        cfg.services[0].real_servers[1..]
    );

    let new = run(&cfg, "-a -u [2001:2:0:100::1]:53 -r [2001:2:0:1::12]").unwrap();
    assert_eq!(
        new.services[1].real_servers[1].address,
        ip("2001:2:0:1::12")
    );
}

/// `uvsadm drain`: weight 0 and nothing else (unlike `-e`, which resets what it is not
/// given); a service or server that does not exist is an error and changes nothing.
#[test]
fn drain_sets_weight_zero_only() {
    let mut cfg = config();
    cfg.services[0].real_servers[1].upper_threshold = 50;
    let new = run(&cfg, "drain -t 198.18.100.1:80 -r 198.18.1.12").unwrap();
    let mut want = cfg.clone();
    want.services[0].real_servers[1].weight = 0;
    assert_eq!(new, want);
    // Draining twice is no change.
    assert_eq!(
        run(&new, "drain -t 198.18.100.1:80 -r 198.18.1.12:80").unwrap(),
        new
    );
    let new = run(
        &cfg,
        "drain -u [2001:2:0:100::1]:53 -r [2001:2:0:1::11] --wait",
    )
    .unwrap();
    assert_eq!(new.services[1].real_servers[0].weight, 0);

    for (line, why) in [
        (
            "drain -t 198.18.100.1:80 -r 198.18.1.99",
            "No such destination: 198.18.1.99:80 in service TCP 198.18.100.1:80",
        ),
        (
            "drain -t 198.18.100.1:80 -r 198.18.1.12:8080",
            "No such destination: 198.18.1.12:8080",
        ),
        (
            "drain -t 198.18.100.1:81 -r 198.18.1.12",
            "No such service: TCP 198.18.100.1:81",
        ),
        (
            "drain -u 198.18.100.1:80 -r 198.18.1.12",
            "No such service: UDP 198.18.100.1:80",
        ),
    ] {
        let e = run(&cfg, line).unwrap_err();
        assert!(e.contains(why), "{line}: {e}");
    }
}

#[test]
fn fullnat_with_a_pool() {
    let cfg = config();
    let new = run(
        &cfg,
        "-E -t 198.18.100.1:80 -s rr --fullnat-pool 198.18.1.3",
    )
    .unwrap();
    let new = run(&new, "-a -t 198.18.100.1:80 -r 198.18.1.13:8080 --fullnat").unwrap();
    let s = &new.services[0];
    assert_eq!(s.fullnat_pool, vec![ip("198.18.1.3")]);
    assert_eq!(s.real_servers[2].forwarding, Forwarding::FullNat);
    // -E without --fullnat-pool keeps the pool.
    let again = run(&new, "-E -t 198.18.100.1:80 -s wlc").unwrap();
    assert_eq!(again.services[0].fullnat_pool, vec![ip("198.18.1.3")]);
}

#[test]
fn rejected_commands_change_nothing_and_say_why() {
    let cfg = config();
    let cases: &[(&str, &[&str])] = &[
        (
            "-A -t 198.18.100.1:80",
            &["Service already exists: TCP 198.18.100.1:80", "-E"],
        ),
        (
            "-E -t 198.18.100.9:80",
            &["No such service: TCP 198.18.100.9:80"],
        ),
        (
            "-D -t 198.18.100.1:81",
            &["No such service: TCP 198.18.100.1:81"],
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11",
            &["Destination already exists: 198.18.1.11:80", "-e"],
        ),
        (
            "-a -t 198.18.100.9:80 -r 198.18.1.11",
            &["Service not defined: TCP 198.18.100.9:80"],
        ),
        (
            "-e -t 198.18.100.1:80 -r 198.18.1.99",
            &["No such destination: 198.18.1.99:80", "TCP 198.18.100.1:80"],
        ),
        (
            "-d -t 198.18.100.1:80 -r 198.18.1.11:81",
            &["No such destination: 198.18.1.11:81"],
        ),
        // Validation of the whole configuration: located by service and server, not YAML path.
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.13 --fullnat",
            &[
                "rejected, nothing changed",
                "service TCP 198.18.100.1:80",
                "fullnat_pool",
            ],
        ),
        (
            "-a -t 198.18.100.1:80 -r [2001:2:0:1::12] -m",
            &["rejected", "real server [2001:2:0:1::12]:80", "IPv6"],
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.13 -x 10 -y 20",
            &["rejected", "lower_threshold 20 is above upper_threshold 10"],
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.100.1",
            &["rejected", "is the VIP itself"],
        ),
    ];
    for (line, words) in cases {
        let err = match run(&cfg, line) {
            Ok(_) => panic!("{line:?} was accepted"),
            Err(e) => e,
        };
        for w in *words {
            assert!(err.contains(w), "{line:?}: {err:?} lacks {w:?}");
        }
    }
    assert_eq!(cfg, config(), "apply never touches its input");
}

#[test]
fn non_edit_commands_are_refused() {
    let cfg = config();
    for line in ["-L -n", "-Z", "save", "top"] {
        assert!(run(&cfg, line).is_err(), "{line}");
    }
}

/// `-S` writes a service's options in ipvsadm 1.31's order (`print_service_entry` with
/// FMT_RULE): `-s`, `-p` and `-M`, `-o`, then `-b`; and an SCTP service's listing name is
/// `%-4s %s` (`SCTP 198.18.100.1:5000`, one space, where TCP and UDP get two).
#[test]
fn rules_in_ipvsadm_order() {
    let cfg = config();
    let new = run(
        &cfg,
        "-A -u 198.18.100.2:53 -s sh -b sh-port -p 120 -M 255.255.255.0 -o",
    )
    .unwrap();
    let rules = format_rules(&new);
    assert!(
        rules.contains("-A -u 198.18.100.2:53 -s sh -p 120 -M 255.255.255.0 -o -b sh-port\n"),
        "{rules}"
    );
}

#[test]
fn rules_replay_to_the_same_services() {
    let cfg = config();
    let rules = format_rules(&cfg);
    assert_eq!(
        rules,
        "-A -t 198.18.100.1:80 -s mh -p 600\n\
         -a -t 198.18.100.1:80 -r 198.18.1.11:80 -m -w 1\n\
         -a -t 198.18.100.1:80 -r 198.18.1.12:80 -m -w 2\n\
         -A -u [2001:2:0:100::1]:53 -s rr\n\
         -a -u [2001:2:0:100::1]:53 -r [2001:2:0:1::11]:53 -m -w 1\n"
    );
    let mut replayed = run(&cfg, "-C").unwrap();
    for line in rules.lines() {
        replayed = run(&replayed, line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    // What ipvsadm rules cannot carry (names, health checks, Maglev table size, the default
    // method) differs; scheduling and servers are the same.
    for (a, b) in replayed.services.iter().zip(&cfg.services) {
        assert_eq!(a.key(), b.key());
        assert_eq!(a.scheduler, b.scheduler);
        assert_eq!(a.persistence, b.persistence);
        assert_eq!(a.real_servers, b.real_servers);
    }
}

/// `--tun-type`, `--tun-port` and the checksum options on `-a`/`-e`, refused as ipvsadm
/// refuses them, written by `-S` as ipvsadm 1.31 writes them, and replayed to the same
/// servers.
#[test]
fn tunnel_types_and_options() {
    use uvs_config::TunCsum;
    let cfg = config();
    let new = run(
        &cfg,
        "-a -t 198.18.100.1:80 -r 198.18.1.13 -i --tun-type gue --tun-port 6080 --tun-csum",
    )
    .unwrap();
    let new = run(
        &new,
        "-a -t 198.18.100.1:80 -r 198.18.1.14 -i --tun-type gre --tun-nocsum -w 3",
    )
    .unwrap();
    let new = run(&new, "-a -t 198.18.100.1:80 -r 198.18.1.15 -i").unwrap();
    let r = &new.services[0].real_servers;
    assert_eq!(
        (r[2].tunnel, r[2].tun_port, r[2].tun_csum),
        (Some(Tunnel::Gue), Some(6080), TunCsum::Csum)
    );
    assert_eq!(
        (r[3].tunnel, r[3].tun_port, r[3].tun_csum),
        (Some(Tunnel::Gre), None, TunCsum::None)
    );
    // -e without --tun-type keeps the tunnel; with one, replaces it.
    let kept = run(&new, "-e -t 198.18.100.1:80 -r 198.18.1.13 -i -w 5").unwrap();
    assert_eq!(kept.services[0].real_servers[2].tun_port, Some(6080));
    let remcsum = run(
        &new,
        "-e -t 198.18.100.1:80 -r 198.18.1.13 -i --tun-type gue --tun-port 7 --tun-remcsum",
    )
    .unwrap();
    let r2 = remcsum.services[0].real_servers[2];
    assert_eq!((r2.tun_port, r2.tun_csum), (Some(7), TunCsum::Remcsum));

    let rules = format_rules(&new);
    for want in [
        "-a -t 198.18.100.1:80 -r 198.18.1.13:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n",
        "-a -t 198.18.100.1:80 -r 198.18.1.14:80 -i -w 3 --tun-type gre --tun-nocsum\n",
        "-a -t 198.18.100.1:80 -r 198.18.1.15:80 -i -w 1 --tun-type ipip\n",
    ] {
        assert!(rules.contains(want), "{want} not in\n{rules}");
    }
    let mut replayed = run(&new, "-C").unwrap();
    for line in rules.lines() {
        replayed = run(&replayed, line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    assert_eq!(
        replayed.services[0].real_servers,
        new.services[0].real_servers
    );

    for (line, words) in [
        ("-i --tun-type gue", &["'--tun-port'", "'gue'"][..]),
        (
            "-i --tun-type gre --tun-port 1",
            &["illegal '--tun-port'", "'gre'"],
        ),
        ("-i --tun-port 6080", &["illegal '--tun-port'", "'ipip'"]),
        (
            "-i --tun-type gre --tun-remcsum",
            &["'--tun-remcsum'", "'gre'"],
        ),
        (
            "-m --tun-type gre",
            &["conflict with the forwarding method"],
        ),
        ("-i --tun-type vxlan", &["illegal tunnel type 'vxlan'"]),
        (
            "-i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum",
            &["conflicts"],
        ),
        ("-i --tun-type gue --tun-port 0", &["--tun-port"]),
    ] {
        let full = format!("-a -t 198.18.100.1:80 -r 198.18.1.16 {line}");
        let err = run(&new, &full).unwrap_err();
        for w in words {
            assert!(err.contains(w), "{full}: {err} lacks {w}");
        }
    }
}

/// The largest `n` in `1..=hi` for which `ok(n)` holds, given that it holds for 1 and, once
/// it fails, fails for every larger value.
fn largest_accepted(hi: u64, ok: impl Fn(u64) -> bool) -> u64 {
    assert!(ok(1));
    let (mut good, mut bad) = (1u64, hi + 1);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if ok(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good
}

/// `uvsadm -p` and the YAML `persistence.timeout` follow one rule: the largest timeout the
/// command line takes is the largest a configuration file takes, so an edit that parses is
/// never refused later by validation (and the other way round).
#[test]
fn persistence_timeout_limit_is_one_rule() {
    let cfg = config();
    let line = |n: u64| format!("-A -t 198.18.100.2:443 -p {n}");
    let parse_ok = |n: u64| {
        let argv: Vec<String> = line(n).split_whitespace().map(String::from).collect();
        parse(&argv).is_ok()
    };
    let yaml_ok = |n: u64| {
        let yaml = YAML.replace(
            "persistence: { timeout: 600 }",
            &format!("persistence: {{ timeout: {n} }}"),
        );
        uvs_config::load_str(&yaml, "test.yaml").is_ok()
    };
    let hi = 1_000_000_000;
    let uvsadm = largest_accepted(hi, parse_ok);
    let yaml = largest_accepted(hi, yaml_ok);
    assert_eq!(
        uvsadm, yaml,
        "uvsadm -p takes up to {uvsadm} s, the YAML up to {yaml} s"
    );
    // The largest one is applied; one more is refused by the parser, naming the range.
    let new = run(&cfg, &line(uvsadm)).unwrap();
    assert_eq!(new.services[2].persistence.unwrap().timeout as u64, uvsadm);
    let err = run(&cfg, &line(uvsadm + 1)).unwrap_err();
    assert!(err.contains(&format!("1..={uvsadm}")), "{err}");
}

/// A configuration with firewall marks (what `-f` needs: uvs cannot see netfilter's marks).
const MARKS: &str = r#"
marks:
  - mark: 1
    name: web-cache
    destinations: [198.18.128.0/17, "2001:2:0:8000::/49"]
    protocols: [tcp]
    ports: [80, 443]
"#;

fn marked() -> Config {
    uvs_config::load_str(&format!("{YAML}{MARKS}"), "marks.yaml").unwrap()
}

#[test]
fn firewall_mark_services_by_f() {
    let cfg = marked();
    let new = run(&cfg, "-A -f 1 -s lblc").unwrap();
    let s = new.services.last().unwrap();
    assert_eq!((s.fwmark, s.vip, s.port), (1, ip("0.0.0.0"), 0));
    assert_eq!(s.name, "fwmark/1");
    assert_eq!(s.scheduler, Scheduler::LocalityBasedLeastConnection);
    // Its servers keep each packet's port (port 0) unless NAT maps them to one.
    let new = run(&new, "-a -f 1 -r 198.18.1.11 -g").unwrap();
    let new = run(&new, "-a -f 1 -r 198.18.1.12:3128 -m").unwrap();
    let s = new.services.last().unwrap();
    assert_eq!(
        s.real_servers.iter().map(|r| r.key()).collect::<Vec<_>>(),
        vec![
            "198.18.1.11:0".parse::<SocketAddr>().unwrap(),
            "198.18.1.12:3128".parse().unwrap()
        ]
    );
    // IPv6 is another service of the same mark.
    let new = run(&new, "-A -f 1 -6 -s dh").unwrap();
    let new = run(&new, "-a -f 1 -6 -r 2001:2:0:1::11 -g").unwrap();
    assert_eq!(new.services.len(), 4);
    let edited = run(&new, "-E -f 1 -6 -s sh").unwrap();
    assert_eq!(edited.services[3].scheduler, Scheduler::SourceHashing);
    assert_eq!(
        edited.services[2], new.services[2],
        "the IPv4 one is another service"
    );
    let deleted = run(&new, "-D -f 1").unwrap();
    assert_eq!(deleted.services[2].key(), new.services[3].key());
    // The YAML round trip keeps them (save, reload).
    let reloaded = uvs_config::load_str(&uvs_config::to_yaml(&new), "saved.yaml").unwrap();
    assert_eq!(reloaded, new);

    let rules = format_rules(&new);
    assert!(
        rules.ends_with(
            "-A -f 1 -s lblc\n\
             -a -f 1 -r 198.18.1.11:0 -g -w 1\n\
             -a -f 1 -r 198.18.1.12:3128 -m -w 1\n\
             -A -f 1 -6 -s dh\n\
             -a -f 1 -6 -r [2001:2:0:1::11]:0 -g -w 1\n"
        ),
        "{rules}"
    );
}

#[test]
fn firewall_mark_mistakes_change_nothing_and_say_why() {
    let cfg = marked();
    let with = run(&cfg, "-A -f 1").unwrap();
    let cases: &[(&Config, &str, &[&str])] = &[
        (&cfg, "-A -f 2", &["fwmark", "no mark 2", "1"]),
        (&config(), "-A -f 1", &["no mark 1", "marks:"]),
        (&with, "-A -f 1", &["Service already exists: FWM 1", "-E"]),
        (&cfg, "-E -f 1", &["No such service: FWM 1", "-f MARK"]),
        (
            &with,
            "-a -f 1 -6 -r 2001:2:0:1::11",
            &["Service not defined: FWM 1 IPv6"],
        ),
        (
            &with,
            "-a -f 1 -r 198.18.1.11:80 -g",
            &["dr", "keep their own port"],
        ),
        (
            &with,
            "-a -f 1 -r 2001:2:0:1::11 -m",
            &["IPv6", "firewall-mark service is IPv4"],
        ),
    ];
    for (base, line, words) in cases {
        let err = run(base, line).unwrap_err();
        for w in *words {
            assert!(err.contains(w), "{line:?}: {err:?} lacks {w:?}");
        }
    }
}

/// `--set`: IPVS's three timeouts, global; services following the global value follow it, a
/// service's own override stays; 0 leaves one alone.
#[test]
fn set_timeouts() {
    let yaml = YAML.replace(
        "    scheduler: rr\n",
        "    scheduler: rr\n    timeouts: { udp: 30 }\n",
    );
    let cfg = uvs_config::load_str(&yaml, "t.yaml").unwrap();
    assert_eq!(cfg.services[1].timeouts.udp, 30);
    let new = run(&cfg, "--set 600 60 0").unwrap();
    assert_eq!(
        (
            new.timeouts.tcp_established,
            new.timeouts.tcp_fin_wait,
            new.timeouts.udp
        ),
        (600, 60, 300)
    );
    assert_eq!(new.services[0].timeouts.tcp_established, 600);
    assert_eq!(new.services[0].timeouts.tcp_fin_wait, 60);
    assert_eq!(
        new.services[0].timeouts.tcp_syn_recv, 60,
        "other states unchanged"
    );
    let new = run(&new, "--set 0 0 100").unwrap();
    assert_eq!(new.timeouts.udp, 100);
    assert_eq!(new.services[0].timeouts.udp, 100);
    assert_eq!(new.services[1].timeouts.udp, 30, "its own override stays");
    assert_eq!(
        uvs_control::admin::format_timeouts(&new.timeouts),
        "Timeout (tcp tcpfin udp): 600 60 100\n"
    );
    let err = run(&cfg, &format!("--set {} 0 0", uvs_config::MAX_TIMEOUT + 1)).unwrap_err();
    assert!(err.contains("illegal --set tcp timeout"), "{err}");
}

fn restore(cfg: &Config, text: &str) -> Result<Config, String> {
    let mut wire = vec!["-R".to_string()];
    wire.extend(text.lines().map(String::from));
    apply(&parse(&wire)?, cfg, &[])
}

/// `-R` takes `uvsadm -S` output and ipvsadm's (`ipvsadm -S -n` of ipvsadm 1.26 and later:
/// bare `ops`, `-f` services), applies it whole, and changes nothing when one line is bad.
#[test]
fn restore_is_all_or_nothing() {
    let cfg = marked();
    let ipvsadm_save = "\
-A -t 198.18.100.2:80 -s wrr -p 300
-a -t 198.18.100.2:80 -r 198.18.1.11:80 -m -w 3
-a -t 198.18.100.2:80 -r 198.18.1.12:80 -m -w 1
-A -u 198.18.100.2:53 -s rr ops
-a -u 198.18.100.2:53 -r 198.18.1.11:53 -m -w 1
-A -f 1 -s dh
-a -f 1 -r 198.18.1.11:0 -g -w 1
-a -f 1 -r 198.18.1.12:0 -g -w 1
";
    let new = restore(&run(&cfg, "-C").unwrap(), ipvsadm_save).unwrap();
    assert_eq!(new.services.len(), 3);
    assert_eq!(new.services[0].real_servers[0].weight, 3);
    assert!(new.services[1].one_packet);
    assert_eq!(new.services[2].fwmark, 1);
    // uvsadm -S of the result says the same again: a fixed point.
    let saved = format_rules(&new);
    let again = restore(&run(&cfg, "-C").unwrap(), &saved).unwrap();
    assert_eq!(format_rules(&again), saved);

    // A bad rule anywhere: nothing applies, and the error has its line.
    let bad = format!("{ipvsadm_save}-a -t 198.18.100.9:80 -r 198.18.1.11:80 -m\n");
    let err = restore(&cfg, &bad).unwrap_err();
    assert!(
        err.starts_with("line 9: Service not defined: TCP 198.18.100.9:80"),
        "{err}"
    );
    // One the whole file fails validation for (a NAT real server off every network).
    let bad = format!("{ipvsadm_save}-a -t 198.18.100.2:80 -r 203.0.113.7:80 -m\n");
    let err = restore(&cfg, &bad).unwrap_err();
    assert!(err.contains("rejected, nothing changed"), "{err}");
    assert!(err.contains("203.0.113.7"), "{err}");
}

/// A VIP or real server the host holds is refused as the file's loader refuses it on that
/// host (a reload would refuse what `uvsadm save` wrote), naming the address; the same edits
/// go in where the host does not hold the address.
#[test]
fn the_hosts_own_addresses_are_refused() {
    let cfg = config();
    let host = [ip("198.18.0.1"), ip("198.18.1.1"), ip("2001:2::1")];
    for (line, want) in [
        (
            "-A -t 198.18.0.1:80",
            "rejected, nothing changed: service TCP 198.18.0.1:80, vip: VIP 198.18.0.1 is an \
             address this host holds — uvs would take the host's own traffic to it",
        ),
        (
            "-A -u [2001:2::1]:53",
            "rejected, nothing changed: service UDP [2001:2::1]:53, vip: VIP 2001:2::1 is an \
             address this host holds",
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.1 -m",
            "rejected, nothing changed: service TCP 198.18.100.1:80, real server 198.18.1.1:80, \
             address: real server 198.18.1.1 is an address this host holds — uvs forwards to \
             other machines",
        ),
        (
            "-e -t 198.18.100.1:80 -r 198.18.1.1 -m",
            "No such destination: 198.18.1.1:80",
        ),
    ] {
        let err = run_on(&cfg, line, &host).unwrap_err();
        assert!(err.starts_with(want), "{line}: {err}");
        if !line.starts_with("-e") {
            run_on(&cfg, line, &[]).unwrap_or_else(|e| panic!("{line} off the host: {e}"));
        }
    }
    let err = apply(
        &parse(&[
            "-R".to_string(),
            "-A -t 198.18.100.2:80 -s rr".to_string(),
            "-A -t 198.18.1.1:80 -s rr".to_string(),
        ])
        .unwrap(),
        &cfg,
        &host,
    )
    .unwrap_err();
    assert!(
        err.contains("VIP 198.18.1.1 is an address this host holds"),
        "{err}"
    );
    // Other addresses are not the host's: accepted, and what saves loads on the host.
    let new = run_on(&cfg, "-A -t 198.18.100.2:80 -s rr", &host).unwrap();
    let new = run_on(&new, "-a -t 198.18.100.2:80 -r 198.18.1.14 -m", &host).unwrap();
    let saved = uvs_config::to_yaml(&new);
    assert_eq!(
        uvs_config::load_str_for_host(&saved, "saved.yaml", &host).unwrap(),
        new
    );
}

/// The host took an address the running configuration already uses (198.18.1.12, web4's real
/// server): edits that leave that use alone still go in, and `-d` takes it out, while a new
/// use of it (another port, a VIP) is refused.
#[test]
fn an_address_the_host_took_since_does_not_block_other_edits() {
    let cfg = config();
    let host = [ip("198.18.0.1"), ip("198.18.1.12")];
    assert!(run_on(&cfg, "-A -t 198.18.100.2:80", &host).is_ok());
    let new = run_on(&cfg, "-e -t 198.18.100.1:80 -r 198.18.1.11 -m -w 5", &host).unwrap();
    assert_eq!(new.services[0].real_servers[0].weight, 5);
    let new = run_on(&new, "-d -t 198.18.100.1:80 -r 198.18.1.12", &host).unwrap();
    assert_eq!(new.services[0].real_servers.len(), 1);
    for line in [
        "-a -t 198.18.100.1:80 -r 198.18.1.12:8080 -m",
        "-A -t 198.18.1.12:80",
        "-a -t 198.18.100.1:80 -r 198.18.0.1 -m",
        "-R\n-A -t 198.18.100.2:80\n-a -t 198.18.100.2:80 -r 198.18.1.12 -m",
    ] {
        let argv: Vec<String> = if let Some(rules) = line.strip_prefix("-R\n") {
            std::iter::once("-R")
                .chain(rules.lines())
                .map(String::from)
                .collect()
        } else {
            line.split_whitespace().map(String::from).collect()
        };
        let err = apply(&parse(&argv).unwrap(), &cfg, &host).unwrap_err();
        assert!(
            err.starts_with("rejected, nothing changed")
                && err.contains("is an address this host holds"),
            "{line}: {err}"
        );
    }
}

/// ipvsadm gives a direct-routing or tunnelled real server of an address service the
/// service's port, whatever `-r` says (ipvsadm.c: "The destination port must be equal to the
/// service port if the IP_VS_CONN_F_TUNNEL or IP_VS_CONN_F_DROUTE is set"), for `-a` and
/// `-e`, and for `-R` lines: IPVS forwards those packets to the VIP's port unchanged. A
/// script written for ipvsadm works the same; NAT keeps its port mapping.
#[test]
fn dr_and_tun_real_servers_take_the_service_port_as_in_ipvsadm() {
    let cfg = config();
    let dr = run(&cfg, "-a -t 198.18.100.1:80 -r 198.18.1.13:8080 -g -w 3").unwrap();
    let r = dr.services[0].real_servers.last().unwrap();
    assert_eq!(
        (r.address, r.port, r.forwarding, r.weight),
        (ip("198.18.1.13"), 80, Forwarding::Dr, 3)
    );
    // -e names it by the same spelling, as ipvsadm does.
    let edited = run(&dr, "-e -t 198.18.100.1:80 -r 198.18.1.13:8080 -g -w 5").unwrap();
    assert_eq!(edited.services[0].real_servers.last().unwrap().weight, 5);
    let tun = run(&cfg, "-a -t 198.18.100.1:80 -r 198.18.1.14:8080 -i").unwrap();
    let r = tun.services[0].real_servers.last().unwrap();
    assert_eq!((r.port, r.forwarding), (80, Forwarding::Tun));
    // Restored rules too.
    let line: Vec<String> = "-a -t 198.18.100.1:80 -r 198.18.1.15:8080 -g -w 1"
        .split_whitespace()
        .map(String::from)
        .collect();
    let restore = uvs_control::admin::AdminCommand::Restore(vec![(1, parse(&line).unwrap())]);
    let restored = apply(&restore, &cfg, &[]).unwrap();
    assert_eq!(restored.services[0].real_servers.last().unwrap().port, 80);
    // NAT maps ports.
    let nat = run(&cfg, "-a -t 198.18.100.1:80 -r 198.18.1.16:8080 -m").unwrap();
    assert_eq!(nat.services[0].real_servers.last().unwrap().port, 8080);
}

/// Scripts written for ipvsadm look for its messages (ipvs_strerror's): each refusal starts
/// with the same words, uvs's detail after them.
#[test]
fn refusals_start_with_ipvsadms_messages() {
    let cfg = config();
    for (line, start) in [
        (
            "-A -t 198.18.100.1:80",
            "Service already exists: TCP 198.18.100.1:80",
        ),
        (
            "-E -t 198.18.100.9:80",
            "No such service: TCP 198.18.100.9:80",
        ),
        (
            "-D -t 198.18.100.9:80",
            "No such service: TCP 198.18.100.9:80",
        ),
        (
            "-a -t 198.18.100.9:80 -r 198.18.1.11",
            "Service not defined: TCP 198.18.100.9:80",
        ),
        (
            "-e -t 198.18.100.9:80 -r 198.18.1.11",
            "Service not defined: TCP 198.18.100.9:80",
        ),
        (
            "-d -t 198.18.100.9:80 -r 198.18.1.11",
            "Service not defined: TCP 198.18.100.9:80",
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11",
            "Destination already exists: 198.18.1.11:80",
        ),
        (
            "-e -t 198.18.100.1:80 -r 198.18.1.99",
            "No such destination: 198.18.1.99:80",
        ),
        (
            "-d -t 198.18.100.1:80 -r 198.18.1.99",
            "No such destination: 198.18.1.99:80",
        ),
    ] {
        let e = run(&cfg, line).unwrap_err();
        assert!(e.starts_with(start), "{line}: {e}");
    }
}
