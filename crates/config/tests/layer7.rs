//! `layer: 7` services: pools and rules as the model holds them, and the round trip
//! through `to_yaml`. (Mistakes at their line are in `errors/service.rs`.)

use uvs_config::{HealthCheckKind, Match, Scheduler};

const SRC: &str = "interfaces:
  - name: uvs-l0
    local: [198.18.71.3]
    networks: [198.18.71.0/24]
services:
  - vip: 198.18.100.1
    protocol: tcp
    port: 80
    forwarding: nat
    layer: 7
    real_servers: [{ address: 198.18.71.11 }, { address: 198.18.71.12 }, { address: 198.18.71.13 }]
    pools:
      - { name: web, scheduler: rr, real_servers: [198.18.71.11, 198.18.71.12] }
      - name: api
        real_servers: [198.18.71.13, 198.18.71.12]
        health_check: { type: http, port: 8080, path: /health }
    health_check: { type: tcp }
    rules:
      - { host: api.example, path_prefix: /v2, header: { name: X-Beta, value: '1' }, pool: api }
      - { host: '*.API.example', pool: api }
      - { path_prefix: /v1/, pool: api }
      - { header: { name: X-Pool, value: api }, pool: api }
      - { cookie: { name: pool, value: api }, pool: api }
      - { sni: api.example, pool: api }
    default_pool: web
    head_limit: 16384
    head_timeout: 5
";

#[test]
fn pools_rules_and_round_trip() {
    let c = uvs_config::load_str(SRC, "uvs.yaml").unwrap();
    let s = &c.services[0];
    assert!(s.syn_proxy, "layer 7 implies the SYN proxy");
    let l = s.layer7.as_ref().unwrap();
    assert_eq!(l.pools.len(), 2);
    assert_eq!(l.pools[0].scheduler, Scheduler::RoundRobin);
    assert_eq!(l.pools[1].scheduler, Scheduler::WeightedLeastConnection);
    assert_eq!(l.pools[0].members.len(), 2);
    assert_eq!(l.default_pool, 0);
    assert_eq!((l.head_limit, l.head_timeout), (16384, 5));
    assert_eq!(l.rules.len(), 6);
    assert!(l.rules.iter().all(|r| r.pool == 1));
    // A combined rule: every condition, in the fixed order.
    assert_eq!(
        l.rules[0].matches,
        [
            Match::Host("api.example".into()),
            Match::PathPrefix("/v2".into()),
            Match::Header {
                name: "x-beta".into(),
                value: "1".into()
            }
        ]
    );
    assert_eq!(l.rules[1].matches, [Match::Host("*.api.example".into())]);
    assert_eq!(
        l.rules[3].matches,
        [Match::Header {
            name: "x-pool".into(),
            value: "api".into()
        }]
    );
    // The pool's own check replaces the service's for its members; the other pool uses
    // the service's.
    let api = &l.pools[1];
    let own = api.health_check.as_ref().expect("the pool's check");
    assert_eq!(own.port, Some(8080));
    assert!(matches!(&own.kind, HealthCheckKind::Http { urls, .. } if urls[0].path == "/health"));
    assert_eq!(api.check(s), Some(own));
    assert_eq!(l.pools[0].check(s), s.health_check.as_ref());
    assert_eq!(s.health_checks().count(), 2);
    let saved = uvs_config::to_yaml(&c);
    let again =
        uvs_config::load_str(&saved, "saved.yaml").unwrap_or_else(|e| panic!("{e}\n{saved}"));
    assert_eq!(again, c);
    // Without the keys: the defaults (8 KiB, 10 s), which the saved file leaves out.
    let plain = SRC.replace("    head_limit: 16384\n    head_timeout: 5\n", "");
    let d = uvs_config::load_str(&plain, "uvs.yaml").unwrap();
    let dl = d.services[0].layer7.as_ref().unwrap();
    assert_eq!((dl.head_limit, dl.head_timeout), (8192, 10));
    assert!(!uvs_config::to_yaml(&d).contains("head_"));
    // A change of rules is a change of the service.
    let other = uvs_config::load_str(&SRC.replace("/v1/", "/v3/"), "uvs.yaml").unwrap();
    assert!(!uvs_config::diff(&c, &other).is_empty());
    // So is a change of a pool's check.
    let other = uvs_config::load_str(&SRC.replace("/health", "/ready"), "uvs.yaml").unwrap();
    assert!(!uvs_config::diff(&c, &other).is_empty());
}

/// A pool without a `scheduler:` takes the service's, not always wlc: a service that
/// says `rr`, and whose `uvsadm -L` shows `rr`, balances its pools round-robin.
#[test]
fn pools_without_a_scheduler_take_the_services() {
    let src = SRC.replace(
        "    forwarding: nat\n",
        "    forwarding: nat\n    scheduler: rr\n",
    );
    let src = src.replace("{ name: web, scheduler: rr,", "{ name: web, scheduler: lc,");
    let c = uvs_config::load_str(&src, "uvs.yaml").unwrap();
    let l = c.services[0].layer7.as_ref().unwrap();
    assert_eq!(l.pools[0].scheduler, Scheduler::LeastConnection, "its own");
    assert_eq!(l.pools[1].scheduler, Scheduler::RoundRobin, "the service's");
    // Without either: wlc, ipvsadm's default.
    let c = uvs_config::load_str(SRC, "uvs.yaml").unwrap();
    let l = c.services[0].layer7.as_ref().unwrap();
    assert_eq!(l.pools[1].scheduler, Scheduler::WeightedLeastConnection);
}
