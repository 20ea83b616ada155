//! `layer: 7` services: pools and rules as the model holds them, and the round trip
//! through `to_yaml`. (Mistakes at their line are in `errors/service.rs`.)

use uvs_config::{Match, Scheduler};

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
      - { name: api, real_servers: [198.18.71.13] }
    rules:
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
    assert_eq!(l.rules.len(), 5);
    assert!(l.rules.iter().all(|r| r.pool == 1));
    assert_eq!(l.rules[0].matcher, Match::Host("*.api.example".into()));
    assert_eq!(
        l.rules[2].matcher,
        Match::Header {
            name: "x-pool".into(),
            value: "api".into()
        }
    );
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
    let other = uvs_config::load_str(&SRC.replace("/v1/", "/v2/"), "uvs.yaml").unwrap();
    assert!(!uvs_config::diff(&c, &other).is_empty());
}
