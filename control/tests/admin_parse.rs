//! ipvsadm command lines: a table of good ones with the command they mean, and bad ones with
//! the words their error must contain (the bad flag and the fix).

use std::net::IpAddr;
use uvs_config::{Forwarding, Persistence, Protocol, Scheduler, SchedulerFlag, ServiceKey};
use uvs_control::admin::{parse, AdminCommand, ListOptions, RealArgs, ServiceArgs};

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(protocol: Protocol, vip: &str, port: u16) -> ServiceKey {
    ServiceKey::addr(ip(vip), protocol, port)
}

fn web() -> ServiceKey {
    key(Protocol::Tcp, "198.18.100.1", 80)
}

fn svc(key: ServiceKey) -> ServiceArgs {
    ServiceArgs {
        key,
        scheduler: Scheduler::WeightedLeastConnection,
        flags: vec![],
        persistence: None,
        one_packet: false,
        fullnat_pool: None,
    }
}

fn real(service: ServiceKey, address: &str, port: u16) -> RealArgs {
    RealArgs {
        service,
        address: ip(address),
        port,
        forwarding: None,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
        tunnel: Default::default(),
    }
}

fn list() -> ListOptions {
    ListOptions::default()
}

#[test]
fn good_command_lines() {
    let v6 = key(Protocol::Tcp, "2001:2:0:100::1", 80);
    let cases: Vec<(&str, AdminCommand)> = vec![
        ("", AdminCommand::List(list())),
        ("-L", AdminCommand::List(list())),
        ("-l", AdminCommand::List(list())),
        (
            "--list --numeric",
            AdminCommand::List(ListOptions {
                numeric: true,
                ..list()
            }),
        ),
        (
            "-Ln",
            AdminCommand::List(ListOptions {
                numeric: true,
                ..list()
            }),
        ),
        (
            "-L -n --stats",
            AdminCommand::List(ListOptions {
                numeric: true,
                stats: true,
                ..list()
            }),
        ),
        (
            "-Ln --rate --exact",
            AdminCommand::List(ListOptions {
                numeric: true,
                rate: true,
                exact: true,
                ..list()
            }),
        ),
        (
            "-Lnc",
            AdminCommand::List(ListOptions {
                numeric: true,
                connections: true,
                ..list()
            }),
        ),
        (
            "-L --thresholds --nosort --sort",
            AdminCommand::List(ListOptions {
                thresholds: true,
                nosort: true,
                ..list()
            }),
        ),
        (
            "-L -n -t 198.18.100.1:80",
            AdminCommand::List(ListOptions {
                numeric: true,
                service: Some(web()),
                ..list()
            }),
        ),
        (
            "-L --sctp-service=[2001:2::1]:5000",
            AdminCommand::List(ListOptions {
                service: Some(key(Protocol::Sctp, "2001:2::1", 5000)),
                ..list()
            }),
        ),
        (
            "-A -t 198.18.100.1:80",
            AdminCommand::AddService(svc(web())),
        ),
        (
            "--add-service --tcp-service 198.18.100.1:80 --scheduler rr",
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::RoundRobin,
                ..svc(web())
            }),
        ),
        (
            "-A -t [2001:2:0:100::1]:80 -s fastest",
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::Fastest,
                ..svc(v6)
            }),
        ),
        (
            "-A -t 198.18.100.1:80 -s load",
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::Load,
                ..svc(web())
            }),
        ),
        (
            "-A -t 198.18.100.1:80 -s sh -b sh-port,sh-fallback",
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::SourceHashing,
                flags: vec![SchedulerFlag::ShFallback, SchedulerFlag::ShPort],
                ..svc(web())
            }),
        ),
        (
            "-A -t 198.18.100.1:80 -b flag-1 -s mh",
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::MaglevHashing,
                flags: vec![SchedulerFlag::MhFallback],
                ..svc(web())
            }),
        ),
        (
            "-A -t 198.18.100.1:80 -p",
            AdminCommand::AddService(ServiceArgs {
                persistence: Some(Persistence {
                    timeout: 300,
                    prefix_len: 32,
                }),
                ..svc(web())
            }),
        ),
        (
            "-A -t 198.18.100.1:80 -p 600 -M 255.255.255.0",
            AdminCommand::AddService(ServiceArgs {
                persistence: Some(Persistence {
                    timeout: 600,
                    prefix_len: 24,
                }),
                ..svc(web())
            }),
        ),
        (
            "-A -t [2001:2:0:100::1]:80 -p 60 -M 64",
            AdminCommand::AddService(ServiceArgs {
                persistence: Some(Persistence {
                    timeout: 60,
                    prefix_len: 64,
                }),
                ..svc(v6)
            }),
        ),
        (
            "-A -t 198.18.100.1 -p",
            AdminCommand::AddService(ServiceArgs {
                persistence: Some(Persistence {
                    timeout: 300,
                    prefix_len: 32,
                }),
                ..svc(key(Protocol::Tcp, "198.18.100.1", 0))
            }),
        ),
        (
            "-A -u 198.18.100.1:53 -s rr -o",
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::RoundRobin,
                one_packet: true,
                ..svc(key(Protocol::Udp, "198.18.100.1", 53))
            }),
        ),
        (
            "-A -t 198.18.100.1:80 --fullnat-pool 198.18.1.3,198.18.1.4",
            AdminCommand::AddService(ServiceArgs {
                fullnat_pool: Some(vec![ip("198.18.1.3"), ip("198.18.1.4")]),
                ..svc(web())
            }),
        ),
        (
            "-E -t 198.18.100.1:80 -s wrr",
            AdminCommand::EditService(ServiceArgs {
                scheduler: Scheduler::WeightedRoundRobin,
                ..svc(web())
            }),
        ),
        ("-D -t 198.18.100.1:80", AdminCommand::DeleteService(web())),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11",
            AdminCommand::AddReal(real(web(), "198.18.1.11", 80)),
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11:8080 -m -w 3",
            AdminCommand::AddReal(RealArgs {
                forwarding: Some(Forwarding::Nat),
                weight: 3,
                ..real(web(), "198.18.1.11", 8080)
            }),
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11 -g -w0",
            AdminCommand::AddReal(RealArgs {
                forwarding: Some(Forwarding::Dr),
                weight: 0,
                ..real(web(), "198.18.1.11", 80)
            }),
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11 -i -x 100 -y 50",
            AdminCommand::AddReal(RealArgs {
                forwarding: Some(Forwarding::Tun),
                upper_threshold: 100,
                lower_threshold: 50,
                ..real(web(), "198.18.1.11", 80)
            }),
        ),
        (
            "-a -t [2001:2:0:100::1]:80 -r [2001:2:0:1::11]:8080 --fullnat",
            AdminCommand::AddReal(RealArgs {
                forwarding: Some(Forwarding::FullNat),
                ..real(v6, "2001:2:0:1::11", 8080)
            }),
        ),
        (
            "-e -t 198.18.100.1:80 -r 198.18.1.11:80 -w 5",
            AdminCommand::EditReal(RealArgs {
                weight: 5,
                ..real(web(), "198.18.1.11", 80)
            }),
        ),
        (
            "-d -t 198.18.100.1:80 -r 198.18.1.11",
            AdminCommand::DeleteReal {
                service: web(),
                real: (ip("198.18.1.11"), 80),
            },
        ),
        ("-C", AdminCommand::Clear),
        ("--clear", AdminCommand::Clear),
        ("-Z", AdminCommand::Zero(None)),
        ("save", AdminCommand::Save),
        ("-S", AdminCommand::SaveRules { numeric: false }),
        ("-S -n", AdminCommand::SaveRules { numeric: true }),
        ("-Sn", AdminCommand::SaveRules { numeric: true }),
        (
            "--save --numeric",
            AdminCommand::SaveRules { numeric: true },
        ),
        ("top", AdminCommand::Top { once: false }),
        ("top --once", AdminCommand::Top { once: true }),
        ("-h", AdminCommand::Help),
        ("--help", AdminCommand::Help),
        ("-v", AdminCommand::Version),
    ];
    for (line, want) in cases {
        assert_eq!(parse(&argv(line)), Ok(want), "argv: {line:?}");
    }
}

/// `-f MARK` names a firewall-mark service wherever `-t` names one; `-6` (before or after)
/// makes it IPv6, as ipvsadm's `-f 1 -6`.
#[test]
fn firewall_mark_services() {
    let m4 = ServiceKey::mark(1, false);
    let m6 = ServiceKey::mark(1, true);
    assert_eq!(m4.vip, ip("0.0.0.0"));
    assert_eq!(m6.vip, ip("::"));
    assert_eq!((m4.port, m4.fwmark), (0, 1));
    let cases: Vec<(&str, AdminCommand)> = vec![
        (
            "-A -f 1 -s dh",
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::DestinationHashing,
                ..svc(m4)
            }),
        ),
        (
            "--add-service --fwmark-service 1 --ipv6 -s lblc",
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::LocalityBasedLeastConnection,
                ..svc(m6)
            }),
        ),
        (
            "-A -6 -f 1 -p 60",
            AdminCommand::AddService(ServiceArgs {
                persistence: Some(Persistence {
                    timeout: 60,
                    prefix_len: 128,
                }),
                ..svc(m6)
            }),
        ),
        (
            "-D -f 4294967295",
            AdminCommand::DeleteService(ServiceKey::mark(u32::MAX, false)),
        ),
        (
            "-a -f 1 -r 198.18.1.11 -g",
            AdminCommand::AddReal(RealArgs {
                forwarding: Some(Forwarding::Dr),
                ..real(m4, "198.18.1.11", 0)
            }),
        ),
        (
            "-a -f 1 -6 -r [2001:2:0:1::11]:8080 -m",
            AdminCommand::AddReal(RealArgs {
                forwarding: Some(Forwarding::Nat),
                ..real(m6, "2001:2:0:1::11", 8080)
            }),
        ),
        (
            "-d -f 1 -r 198.18.1.11:0",
            AdminCommand::DeleteReal {
                service: m4,
                real: (ip("198.18.1.11"), 0),
            },
        ),
        (
            "-L -n -f 1 -6",
            AdminCommand::List(ListOptions {
                numeric: true,
                service: Some(m6),
                ..list()
            }),
        ),
        ("-Z -f 1", AdminCommand::Zero(Some(m4))),
    ];
    for (line, want) in cases {
        assert_eq!(parse(&argv(line)), Ok(want), "argv: {line:?}");
    }
}

/// `--set`, `-Z` of one service, `-L --timeout`, `--persistent-conn`, `--json`.
#[test]
fn timeouts_zero_and_list_views() {
    let cases: Vec<(&str, AdminCommand)> = vec![
        (
            "--set 900 120 300",
            AdminCommand::SetTimeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300,
            },
        ),
        (
            "--set 0 0 60",
            AdminCommand::SetTimeouts {
                tcp: 0,
                tcpfin: 0,
                udp: 60,
            },
        ),
        ("-Z -t 198.18.100.1:80", AdminCommand::Zero(Some(web()))),
        (
            "--zero --udp-service [2001:2::1]:53",
            AdminCommand::Zero(Some(key(Protocol::Udp, "2001:2::1", 53))),
        ),
        ("-L --timeout", AdminCommand::ListTimeouts),
        ("-l --timeout", AdminCommand::ListTimeouts),
        // What ipvsadm 1.31 takes (its only list conflicts: -c, --timeout or --daemon with
        // --stats, --rate or --thresholds; --timeout or --daemon with --persistent-conn):
        // `-Ln --timeout`, -c with a service (which ipvsadm's list_conn ignores: every
        // connection is listed), several views (the first of --stats, --rate,
        // --thresholds, --persistent-conn wins, as ipvsadm's print_title).
        ("-Ln --timeout", AdminCommand::ListTimeouts),
        ("-L --timeout --exact", AdminCommand::ListTimeouts),
        (
            "-Lnc -t 198.18.100.1:80",
            AdminCommand::List(ListOptions {
                numeric: true,
                connections: true,
                service: Some(web()),
                ..list()
            }),
        ),
        (
            "-Ln --stats --rate",
            AdminCommand::List(ListOptions {
                numeric: true,
                stats: true,
                rate: true,
                ..list()
            }),
        ),
        (
            "-L -n --persistent-conn",
            AdminCommand::List(ListOptions {
                numeric: true,
                persistent_conn: true,
                ..list()
            }),
        ),
        (
            "-L -c --persistent-conn",
            AdminCommand::List(ListOptions {
                connections: true,
                persistent_conn: true,
                ..list()
            }),
        ),
        (
            "-L --json -t 198.18.100.1:80",
            AdminCommand::List(ListOptions {
                json: true,
                service: Some(web()),
                ..list()
            }),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse(&argv(line)), Ok(want), "argv: {line:?}");
    }
}

/// `-R`: each word after it is one input line; comments, blank lines, a leading `ipvsadm`
/// and ipvsadm 1.26's bare `ops` are understood, and each rule keeps its line number.
#[test]
fn restore_lines() {
    let lines = [
        "# saved by ipvsadm -S -n",
        "",
        "-A -u 198.18.100.1:53 -s rr ops",
        "ipvsadm -a -u 198.18.100.1:53 -r 198.18.1.11:53 -m -w 1 # first",
        "-A -f 7 -6 -s dh",
        "--set 900 120 300",
        "-C",
    ];
    let mut wire = vec!["-R".to_string()];
    wire.extend(lines.iter().map(|l| l.to_string()));
    let dns = key(Protocol::Udp, "198.18.100.1", 53);
    let want = AdminCommand::Restore(vec![
        (
            3,
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::RoundRobin,
                one_packet: true,
                ..svc(dns)
            }),
        ),
        (
            4,
            AdminCommand::AddReal(RealArgs {
                forwarding: Some(Forwarding::Nat),
                ..real(dns, "198.18.1.11", 53)
            }),
        ),
        (
            5,
            AdminCommand::AddService(ServiceArgs {
                scheduler: Scheduler::DestinationHashing,
                ..svc(ServiceKey::mark(7, true))
            }),
        ),
        (
            6,
            AdminCommand::SetTimeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300,
            },
        ),
        (7, AdminCommand::Clear),
    ]);
    assert_eq!(parse(&wire), Ok(want));
    assert_eq!(parse(&argv("-R")), Ok(AdminCommand::Restore(vec![])));
    let bad = vec![
        "-R".to_string(),
        "-A -t 198.18.100.1:80".into(),
        "-a -t 198.18.100.1:80 -r 198.18.1.11 -w 99999".into(),
    ];
    let err = parse(&bad).unwrap_err();
    assert!(err.starts_with("line 2: illegal -w"), "{err}");
}

#[test]
fn bad_command_lines() {
    // (argv, words the error must contain)
    let cases: &[(&str, &[&str])] = &[
        ("-n", &["no command", "-L"]),
        ("-L -A", &["multiple commands", "-L", "-A"]),
        ("-Q", &["unknown option '-Q'"]),
        ("-LQ", &["unknown option '-Q'", "-LQ"]),
        ("--frobnicate", &["unknown option '--frobnicate'"]),
        ("-A", &["needs a service", "-t VIP:PORT"]),
        ("-A -t", &["-t needs a value"]),
        (
            "-A -t 198.18.100.1:80 -s rrr",
            &["unknown scheduler 'rrr'", "wlc"],
        ),
        (
            "-A -t host.example:80",
            &["illegal virtual service address", "numeric"],
        ),
        ("-A -t 198.18.100.1:http", &["illegal port 'http'"]),
        (
            "-A -t 198.18.100.1:80 -w 3",
            &["illegal option -w", "-a/-e"],
        ),
        ("-A -t 198.18.100.1:80 -m", &["illegal option -m", "-a/-e"]),
        (
            "-A -t 198.18.100.1:80 -t 198.18.100.2:80",
            &["multiple", "service-address"],
        ),
        ("-A -t 198.18.100.1:0", &["zero port", "-p"]),
        ("-A -t 198.18.100.1:80 -o", &["one-packet", "UDP"]),
        (
            "-A -t 198.18.100.1:80 -M 255.255.255.0",
            &["-M", "needs -p"],
        ),
        (
            "-A -t 198.18.100.1:80 -p 60 -M 255.0.255.0",
            &["illegal persistence netmask"],
        ),
        ("-A -t 198.18.100.1:80 -p 0", &["illegal -p", "1..="]),
        (
            "-A -t 198.18.100.1:80 -b sh-port",
            &["sh-port", "sh scheduler", "-s sh"],
        ),
        (
            "-A -t 198.18.100.1:80 -s sh -b sh-bogus",
            &["unknown scheduler flag 'sh-bogus'"],
        ),
        (
            "-A -t 198.18.100.1:80 --fullnat-pool 198.18.1.x",
            &["--fullnat-pool", "198.18.1.x"],
        ),
        ("-a -t 198.18.100.1:80", &["needs a real server", "-r"]),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11 -w 70000",
            &["illegal -w (weight) '70000'", "0..=65535"],
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11 -m -g",
            &["multiple", "forwarding-method"],
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11 -s rr",
            &["illegal option -s", "-A/-E"],
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11 --weight",
            &["--weight needs a value"],
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11 --masquerading=yes",
            &["--masquerading takes no value"],
        ),
        (
            "-d -t 198.18.100.1:80 -r 198.18.1.11 -w 1",
            &["illegal option -w"],
        ),
        ("-D -t 198.18.100.1:80 -s rr", &["illegal option -s", "-D"]),
        ("-L -c --stats", &["conflict", "-c"]),
        ("-L -c --rate", &["conflict", "-c"]),
        ("-L -s rr", &["illegal option -s", "-L"]),
        ("-Z -t 198.18.100.1:80 -s rr", &["illegal option -s", "-Z"]),
        ("-C -n", &["illegal option -n", "-C"]),
        ("-L 198.18.100.1:80", &["unexpected argument", "-t"]),
        ("-f 1", &["no command"]),
        (
            "-A -f 0",
            &["illegal -f (firewall mark) '0'", "greater than zero"],
        ),
        ("-A -f x", &["illegal -f (firewall mark) 'x'"]),
        ("-A -t 198.18.100.1:80 -6", &["-6", "-f MARK"]),
        ("-A -f 1 -o", &["one-packet", "UDP"]),
        (
            "-A -f 1 -t 198.18.100.1:80",
            &["multiple", "service-address"],
        ),
        ("-R -L", &["line 1", "does not edit", "-A"]),
        ("-R -A", &["line 1", "needs a service"]),
        ("-n -R", &["illegal option -n with -R", "standard input"]),
        ("--set 900 120", &["--set needs 3 timeout values", "got 2"]),
        ("--set 900 120 300 1", &["--set needs 3", "got 4"]),
        ("--set 900 120 x", &["illegal --set udp timeout 'x'"]),
        ("--set 900 120 300 -n", &["illegal option -n with --set"]),
        ("-L --timeout --stats", &["conflict", "--timeout"]),
        ("-L --timeout --persistent-conn", &["conflict", "--timeout"]),
        (
            "-A -t 198.18.100.1:80 --timeout",
            &["illegal option --timeout", "-L"],
        ),
        (
            "-a -t 198.18.100.1:80 -r 198.18.1.11 --json",
            &["illegal option --json"],
        ),
        ("--start-daemon bogus", &["'master' or 'backup'"]),
        ("--stop-daemon master --syncid 3", &["--stop-daemon MODE"]),
        (
            "--start-daemon master -t 198.18.100.1:80",
            &["does not go with"],
        ),
        ("top -n", &["illegal option -n", "top"]),
    ];
    for (line, words) in cases {
        let err = match parse(&argv(line)) {
            Ok(cmd) => panic!("argv {line:?} was accepted as {cmd:?}"),
            Err(e) => e,
        };
        for w in *words {
            assert!(err.contains(w), "argv {line:?}: error {err:?} lacks {w:?}");
        }
    }
}

/// ipvsadm's sync-daemon commands edit the running configuration's `sync:` section.
#[test]
fn sync_daemon_commands() {
    use uvs_control::admin::syncd::{self, DaemonCommand};
    use uvs_control::admin::{parse, AdminCommand};
    let argv = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let cfg = uvs_config::load_str(
        "interfaces:\n  - name: uvs-lb1\n    local: [198.18.1.3]\n    networks: [198.18.1.0/24]\n",
        "t.yaml",
    )
    .unwrap();
    // `ipvsadm -Ln --daemon` (clustered, as people type it) lists the daemons.
    for line in [
        "-L --daemon",
        "-Ln --daemon",
        "-nL --daemon",
        "-l -n --daemon",
    ] {
        assert_eq!(
            parse(&argv(line)),
            Ok(AdminCommand::Daemon(DaemonCommand::List)),
            "{line}"
        );
    }
    let Ok(AdminCommand::Daemon(start)) = parse(&argv(
        "--start-daemon master --mcast-interface uvs-lb1 --syncid 7 --mcast-ttl 2",
    )) else {
        panic!("start")
    };
    let c = syncd::apply(&start, &cfg).unwrap();
    let s = c.sync.as_ref().unwrap();
    assert_eq!(
        (s.mode.name(), s.syncid, s.ttl, s.port),
        ("master", 7, 2, 8848)
    );
    assert_eq!(
        syncd::format(&c),
        // As ipvsadm 1.31 lists it: maxlen is the one in use, the interface's MTU less the
        // IP and UDP headers when none was given (no uvs-lb1 here: 1500).
        "master sync daemon (mcast=uvs-lb1, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, \
         ttl=2)\n"
    );
    // Starting the backup too makes it both; stopping the master leaves the backup.
    let Ok(AdminCommand::Daemon(backup)) = parse(&argv("--start-daemon backup")) else {
        panic!("backup")
    };
    let both = syncd::apply(&backup, &c).unwrap();
    assert_eq!(both.sync.as_ref().unwrap().mode.name(), "both");
    let left = syncd::apply(&DaemonCommand::Stop(uvs_config::SyncMode::Master), &both).unwrap();
    assert_eq!(left.sync.as_ref().unwrap().mode.name(), "backup");
    let none = syncd::apply(&DaemonCommand::Stop(uvs_config::SyncMode::Backup), &left).unwrap();
    assert!(none.sync.is_none());
    // Mistakes change nothing and say why.
    assert!(
        syncd::apply(&DaemonCommand::Stop(uvs_config::SyncMode::Master), &none)
            .unwrap_err()
            .contains("no sync daemon")
    );
    let Ok(AdminCommand::Daemon(bad_if)) =
        parse(&argv("--start-daemon master --mcast-interface eth9"))
    else {
        panic!("bad if")
    };
    assert!(syncd::apply(&bad_if, &cfg).unwrap_err().contains("eth9"));
    assert_eq!(
        parse(&argv("-L --daemon")),
        Ok(AdminCommand::Daemon(DaemonCommand::List))
    );
}
