//! Per-pool health checks of a `layer: 7` service, from the configuration to the pools'
//! schedulers, the status snapshot and the metrics: which checks run for which pools, and a
//! verdict of a pool's own check taking a real server out of that pool only. (The checks
//! themselves against real servers, and uvsd applying their verdicts, are in
//! `e2e_layer7_pools.rs`.)

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use uvs_control::health::{targets, HealthTarget};
use uvs_control::poolhealth::PoolHealth;
use uvs_control::status::{snapshot, RateSampler};
use uvs_dataplane::{Shared, TablesBuilder};
use uvs_sched::FlowHashKey;

/// rs1 in `web` only, rs2 in `web` and `api`, rs3 in `api` only; `api` checks port 8080,
/// `web` and the service tcp on the server's port.
const CONFIG: &str = "interfaces:
  - name: uvs-l0
    local: [198.18.71.3]
    networks: [198.18.71.0/24]
services:
  - name: web7
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    forwarding: nat
    layer: 7
    health_check: { type: tcp }
    real_servers: [{ address: 198.18.71.11 }, { address: 198.18.71.12 }, { address: 198.18.71.13 }]
    pools:
      - { name: web, scheduler: rr, real_servers: [198.18.71.11, 198.18.71.12] }
      - name: api
        scheduler: rr
        real_servers: [198.18.71.12, 198.18.71.13]
        health_check: { type: http, port: 8080, path: /health }
    rules:
      - { host: api.example, path_prefix: /v2, pool: api }
    default_pool: web
";

fn rs(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::from([198, 18, 71, 10 + n]), 80)
}

fn find<'a>(ts: &'a [HealthTarget], real: SocketAddr, pools: &[&str]) -> &'a HealthTarget {
    ts.iter()
        .find(|t| t.real == real && t.pools == pools)
        .unwrap_or_else(|| panic!("no target for {real} {pools:?} in {ts:#?}"))
}

#[test]
fn checks_run_per_pool_only_where_the_pools_of_a_server_differ() {
    let cfg = uvs_config::load_str(CONFIG, "uvs.yaml").unwrap();
    let ts = targets(&cfg);
    // rs1 (web only) and rs3 (api only): one check each, the server's own health.
    let t1 = find(&ts, rs(1), &[]);
    assert_eq!(t1.check.port, None, "the service's tcp check");
    let t3 = find(&ts, rs(3), &[]);
    assert_eq!(t3.check.port, Some(8080), "api's own check");
    // rs2 (both): each pool's check decides for that pool only.
    assert_eq!(find(&ts, rs(2), &["web"]).check.port, None);
    assert_eq!(find(&ts, rs(2), &["api"]).check.port, Some(8080));
    assert_eq!(ts.len(), 4, "{ts:#?}");
    assert_eq!(find(&ts, rs(2), &["api"]).check_addr().port(), 8080);
}

/// Which of rs1..rs3 `pool`'s scheduler picks, `n` times.
fn picks(shared: &Shared, pool: usize, n: usize) -> Vec<u8> {
    let tables = shared.tables.load();
    let svc = tables.services.iter().flatten().next().unwrap();
    let l7 = svc.layer7.as_ref().unwrap();
    let key = FlowHashKey::new(
        "198.18.0.2".parse().unwrap(),
        "198.18.100.1".parse().unwrap(),
        40000,
        80,
        6,
    );
    (0..n)
        .map(|_| {
            let slot = l7.pools[pool].sched.pick(&key, &svc.live, 0).unwrap();
            let r = svc.reals[slot].as_ref().unwrap();
            (1..=3).find(|&i| rs(i).ip() == r.addr.to_ip()).unwrap()
        })
        .collect()
}

fn sorted(mut v: Vec<u8>) -> Vec<u8> {
    v.sort();
    v.dedup();
    v
}

#[test]
fn a_pool_check_failing_takes_the_server_out_of_that_pool_only() {
    let cfg = uvs_config::load_str(CONFIG, "uvs.yaml").unwrap();
    let ts = targets(&cfg);
    let health = PoolHealth::default();
    let build = |previous: Option<&Shared>| {
        let mut spec = uvs_control::spec::tables_spec(&cfg, None);
        health.apply(&mut spec);
        let old = previous.map(|s| s.tables.load_full());
        TablesBuilder::build(&spec, old.as_deref()).unwrap()
    };
    let shared = Shared::new(build(None), 1024, 1);
    assert_eq!(sorted(picks(&shared, 0, 4)), [1, 2]);
    assert_eq!(sorted(picks(&shared, 1, 4)), [2, 3]);

    // rs2 fails api's check on port 8080: out of api, still in web.
    let api2 = find(&ts, rs(2), &["api"]);
    assert!(health.set(api2, false));
    shared.tables.store(Arc::new(build(Some(&shared))));
    assert_eq!(sorted(picks(&shared, 1, 4)), [3]);
    assert_eq!(sorted(picks(&shared, 0, 4)), [1, 2]);

    // The status and the metrics say so; the server's own health is untouched.
    let snap = snapshot(&shared, &RateSampler::default(), &[None], |_| String::new());
    let up = |pool: &str, real: SocketAddr| {
        let p = snap.layer7_pools.iter().find(|p| p.pool == pool).unwrap();
        let r = p.reals.iter().find(|r| r.address == real.ip()).unwrap();
        r.up
    };
    assert!(!up("api", rs(2)) && up("api", rs(3)) && up("web", rs(2)));
    assert!(snap.services[0].reals.iter().all(|r| r.health_up));
    // /status.json carries each pool under its service, for the status page.
    let doc = uvs_control::statuspage::doc(
        snap.clone(),
        &uvs_control::statuspage::History::default(),
        None,
    );
    let api = doc.services[0]
        .pools
        .iter()
        .find(|p| p.pool == "api")
        .unwrap();
    let down: Vec<_> = api
        .reals
        .iter()
        .filter(|r| !r.up)
        .map(|r| r.address)
        .collect();
    assert_eq!(down, [rs(2).ip()]);
    let text = uvs_control::metrics::render(&snap);
    for line in [
        r#"uvs_layer7_pool_real_up{service="web7",pool="api",real="198.18.71.12:80"} 0"#,
        r#"uvs_layer7_pool_real_up{service="web7",pool="api",real="198.18.71.13:80"} 1"#,
        r#"uvs_layer7_pool_real_up{service="web7",pool="web",real="198.18.71.12:80"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }

    // It passes again: back in api.
    assert!(health.set(api2, true));
    shared.tables.store(Arc::new(build(Some(&shared))));
    assert_eq!(sorted(picks(&shared, 1, 4)), [2, 3]);
}

/// A server down by its own health is down for every pool it is in, whatever the pools'
/// checks say: rs3 is in `api` only, so api's check is its own health (one target, no
/// pools); when it fails, `uvs_real_up` is 0 and so is `uvs_layer7_pool_real_up` for
/// api (the pool's scheduler does not pick it either). The same holds for a server whose
/// pools use different checks (rs2) when its own health goes down (an agent's `down`, a
/// check of the service's).
#[test]
fn a_server_down_by_its_own_health_is_down_for_its_pools() {
    let cfg = uvs_config::load_str(CONFIG, "uvs.yaml").unwrap();
    let spec = uvs_control::spec::tables_spec(&cfg, None);
    let shared = Shared::new(TablesBuilder::build(&spec, None).unwrap(), 1024, 1);
    let set_health = |real: SocketAddr, up: bool| {
        let tables = shared.tables.load();
        let svc = tables.services.iter().flatten().next().unwrap();
        let slot = svc
            .reals
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.addr.to_ip() == real.ip()))
            .unwrap();
        svc.live[slot]
            .health_up
            .store(up, std::sync::atomic::Ordering::Relaxed);
    };
    set_health(rs(3), false);
    assert_eq!(sorted(picks(&shared, 1, 4)), [2], "api does not pick rs3");

    let snap = snapshot(&shared, &RateSampler::default(), &[None], |_| String::new());
    let up = |pool: &str, real: SocketAddr| {
        let p = snap.layer7_pools.iter().find(|p| p.pool == pool).unwrap();
        p.reals.iter().find(|r| r.address == real.ip()).unwrap().up
    };
    assert!(!up("api", rs(3)), "{:#?}", snap.layer7_pools);
    assert!(up("api", rs(2)) && up("web", rs(1)) && up("web", rs(2)));
    let text = uvs_control::metrics::render(&snap);
    assert!(
        text.lines().any(|l| l.starts_with("uvs_real_up{")
            && l.contains(r#"real="198.18.71.13:80""#)
            && l.ends_with(" 0")),
        "uvs_real_up of rs3 should be 0:\n{text}"
    );
    for line in [
        r#"uvs_layer7_pool_real_up{service="web7",pool="api",real="198.18.71.13:80"} 0"#,
        r#"uvs_layer7_pool_real_up{service="web7",pool="api",real="198.18.71.12:80"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }

    // rs2's own health down: down for both its pools.
    set_health(rs(2), false);
    let snap = snapshot(&shared, &RateSampler::default(), &[None], |_| String::new());
    let p = |pool: &str| {
        let p = snap.layer7_pools.iter().find(|p| p.pool == pool).unwrap();
        p.reals.iter().find(|r| r.address == rs(2).ip()).unwrap().up
    };
    assert!(!p("web") && !p("api"), "{:#?}", snap.layer7_pools);

    // Back up: up for the pools again.
    set_health(rs(2), true);
    set_health(rs(3), true);
    let snap = snapshot(&shared, &RateSampler::default(), &[None], |_| String::new());
    assert!(snap
        .layer7_pools
        .iter()
        .all(|p| p.reals.iter().all(|r| r.up)));
}
