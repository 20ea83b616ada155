//! Every file in the repository's configs/ folder loads, and survives a save/load round trip.

use std::path::PathBuf;
use uvs_config::{load_file, load_str, to_yaml, Forwarding};

fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(configs_dir())
        .expect("configs/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_loads_and_round_trips() {
    let files = example_files();
    assert!(
        files.len() >= 7,
        "expected the 7 documented examples, found {files:?}"
    );
    for f in files {
        let config = load_file(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !config.services.is_empty() || config.member.is_some(),
            "{} has no services",
            f.display()
        );
        let saved = to_yaml(&config);
        let again = load_str(&saved, "saved.yaml").unwrap_or_else(|e| panic!("{e}\n{saved}"));
        assert_eq!(
            again,
            config,
            "{} changed in a round trip:\n{saved}",
            f.display()
        );
    }
}

#[test]
fn the_documented_examples_exist_with_their_forwarding_methods() {
    for (file, fwd) in [
        ("nat.yaml", Forwarding::Nat),
        ("dr.yaml", Forwarding::Dr),
        ("tun.yaml", Forwarding::Tun),
        ("fullnat.yaml", Forwarding::FullNat),
    ] {
        let config = load_file(&configs_dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            config
                .services
                .iter()
                .flat_map(|s| &s.real_servers)
                .any(|r| r.forwarding == fwd),
            "{file} has no {fwd} real server"
        );
    }
    for file in ["ipv6.yaml", "sctp.yaml", "demo.yaml"] {
        load_file(&configs_dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Examples use only the benchmarking ranges 198.18.0.0/15 and 2001:2::/48 (RFC 2544,
/// RFC 5180), plus loopback for the metrics endpoint.
#[test]
fn examples_use_only_benchmarking_addresses() {
    let v4: uvs_config::IpPrefix = "198.18.0.0/15".parse().unwrap();
    let v6: uvs_config::IpPrefix = "2001:2::/48".parse().unwrap();
    let ok = |ip: std::net::IpAddr| v4.contains(ip) || v6.contains(ip);
    for f in example_files() {
        let c = load_file(&f).unwrap();
        let mut addrs = Vec::new();
        for i in &c.interfaces {
            addrs.extend(i.local.iter().copied());
            addrs.extend(
                i.networks
                    .iter()
                    .filter(|n| !n.is_default())
                    .map(|n| n.addr()),
            );
            addrs.extend(i.routes.iter().map(|r| r.via));
        }
        for m in &c.marks {
            addrs.extend(m.destinations.iter().map(|d| d.addr()));
        }
        for s in &c.services {
            if s.fwmark == 0 {
                addrs.push(s.vip);
            }
            addrs.extend(s.fullnat_pool.iter().copied());
            addrs.extend(s.sorry_server.iter().map(|x| x.address));
            addrs.extend(s.real_servers.iter().map(|r| r.address));
        }
        for a in addrs {
            assert!(
                ok(a),
                "{}: {a} is outside the benchmarking ranges",
                f.display()
            );
        }
        if let Some(l) = c.metrics.listen {
            assert!(l.ip().is_loopback(), "{}: metrics on {l}", f.display());
        }
    }
}

#[test]
fn demo_matches_the_test_network() {
    let c = load_file(&configs_dir().join("demo.yaml")).unwrap();
    let names: Vec<&str> = c.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["uvs-lb0", "uvs-lb1"]);
    assert_eq!(c.services.len(), 4);
    for s in &c.services {
        assert_eq!(s.scheduler, uvs_config::Scheduler::RoundRobin);
        assert_eq!(s.real_servers.len(), 3);
        assert!(s
            .real_servers
            .iter()
            .all(|r| r.forwarding == Forwarding::Nat));
        assert_eq!(
            s.health_check.is_some(),
            s.protocol == uvs_config::Protocol::Tcp,
            "{}",
            s.name
        );
    }
}
