//! Reload diffs: services by (vip, protocol, port), real servers by (address, port).

use uvs_config::{diff, load_str, Config, Scheduler};

const BASE: &str = "\
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3, \"2001:2::3\"]
    networks: [198.18.0.0/24, \"2001:2::/64\", 198.18.1.0/24, \"2001:2:0:1::/64\"]
services:
  - name: web
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    scheduler: rr
    forwarding: nat
    real_servers:
      - address: 198.18.1.11
      - address: 198.18.1.12
        weight: 2
  - name: dns
    vip: 198.18.100.1
    protocol: udp
    port: 53
    forwarding: nat
    real_servers:
      - address: 198.18.1.11
";

fn load(src: &str) -> Config {
    load_str(src, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// BASE with one textual replacement, which must apply.
fn edit(from: &str, to: &str) -> Config {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    load(&BASE.replacen(from, to, 1))
}

#[test]
fn identical_configs_have_an_empty_diff() {
    let d = diff(&load(BASE), &load(BASE));
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(d.to_string(), "no changes\n");
}

#[test]
fn reordering_services_and_reals_is_no_change() {
    let reordered = "\
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3, \"2001:2::3\"]
    networks: [198.18.0.0/24, \"2001:2::/64\", 198.18.1.0/24, \"2001:2:0:1::/64\"]
services:
  - name: dns
    vip: 198.18.100.1
    protocol: udp
    port: 53
    forwarding: nat
    real_servers:
      - address: 198.18.1.11
  - name: web
    vip: 198.18.100.1
    protocol: tcp
    port: 80
    scheduler: rr
    forwarding: nat
    real_servers:
      - address: 198.18.1.12
        weight: 2
      - address: 198.18.1.11
";
    assert!(diff(&load(BASE), &load(reordered)).is_empty());
}

#[test]
fn weight_change_is_a_changed_real_server_and_weight_only() {
    let d = diff(&load(BASE), &edit("weight: 2", "weight: 0"));
    assert!(d.added_services.is_empty() && d.removed_services.is_empty());
    assert!(!d.global_changed);
    assert_eq!(d.changed_services.len(), 1);
    let c = &d.changed_services[0];
    assert_eq!(c.key.to_string(), "tcp/198.18.100.1:80");
    assert!(c.added_reals.is_empty() && c.removed_reals.is_empty());
    assert_eq!(c.changed_reals.len(), 1);
    assert_eq!(c.changed_reals[0].old.weight, 2);
    assert_eq!(c.changed_reals[0].new.weight, 0);
    assert!(c.changed_reals[0].weight_only());
    assert!(!c.scheduler_changed && !c.settings_changed && !c.health_check_changed);
    assert!(
        d.to_string().contains("~ real 198.18.1.12:80 weight 2 → 0"),
        "{d}"
    );
}

#[test]
fn port_change_is_remove_plus_add() {
    // Real identity is (address, port): a new port is a different real server.
    let d = diff(
        &load(BASE),
        &edit(
            "      - address: 198.18.1.11\n      - address",
            "      - { address: 198.18.1.11, port: 8080 }\n      - address",
        ),
    );
    let c = &d.changed_services[0];
    assert_eq!(c.removed_reals.len(), 1);
    assert_eq!(c.removed_reals[0].port, 80);
    assert_eq!(c.added_reals.len(), 1);
    assert_eq!(c.added_reals[0].port, 8080);
    assert!(c.changed_reals.is_empty());
}

#[test]
fn forwarding_change_is_a_changed_real_not_weight_only() {
    let d = diff(
        &load(BASE),
        &edit(
            "        weight: 2\n",
            "        weight: 2\n        forwarding: dr\n",
        ),
    );
    let c = &d.changed_services[0];
    assert_eq!(c.changed_reals.len(), 1);
    assert!(!c.changed_reals[0].weight_only());
}

#[test]
fn added_and_removed_services() {
    let without_dns = BASE.split("  - name: dns").next().unwrap().to_string();
    let d = diff(&load(BASE), &load(&without_dns));
    assert_eq!(d.removed_services.len(), 1);
    assert_eq!(d.removed_services[0].name, "dns");
    assert!(d.added_services.is_empty() && d.changed_services.is_empty());

    let d = diff(&load(&without_dns), &load(BASE));
    assert_eq!(d.added_services.len(), 1);
    assert_eq!(d.added_services[0].name, "dns");
    assert!(d
        .to_string()
        .contains("+ service udp/198.18.100.1:53 (dns, 1 real servers)"));
}

#[test]
fn changing_a_services_port_replaces_it() {
    let d = diff(&load(BASE), &edit("port: 53", "port: 5353"));
    assert_eq!(d.removed_services.len(), 1);
    assert_eq!(d.added_services.len(), 1);
    assert_eq!(d.added_services[0].port, 5353);
}

#[test]
fn scheduler_change_is_flagged() {
    let d = diff(&load(BASE), &edit("scheduler: rr", "scheduler: wrr"));
    let c = &d.changed_services[0];
    assert!(c.scheduler_changed);
    assert_eq!(c.old.scheduler, Scheduler::RoundRobin);
    assert_eq!(c.new.scheduler, Scheduler::WeightedRoundRobin);
    assert!(c.added_reals.is_empty() && c.changed_reals.is_empty());
}

#[test]
fn persistence_and_health_check_changes_are_flagged() {
    let d = diff(
        &load(BASE),
        &edit(
            "scheduler: rr\n",
            "scheduler: rr\n    persistence: { timeout: 60 }\n    health_check: { type: tcp }\n",
        ),
    );
    let c = &d.changed_services[0];
    assert!(c.persistence_changed && c.health_check_changed);
    assert!(!c.scheduler_changed && !c.settings_changed);
}

#[test]
fn renaming_is_a_settings_change() {
    let d = diff(&load(BASE), &edit("name: web", "name: www"));
    assert!(d.changed_services[0].settings_changed);
}

#[test]
fn proxy_protocol_is_a_settings_change_and_saves_as_v2() {
    let on = edit(
        "    forwarding: nat\n    real_servers:\n      - address: 198.18.1.11\n      - address: 198.18.1.12",
        "    forwarding: nat\n    syn_proxy: true\n    proxy_protocol: v2\n    real_servers:\n      - address: 198.18.1.11\n      - address: 198.18.1.12",
    );
    let web = on.services.iter().find(|s| s.name == "web").unwrap();
    assert!(web.syn_proxy && web.proxy_protocol);
    let only_syn = edit(
        "    forwarding: nat\n    real_servers:\n      - address: 198.18.1.11\n      - address: 198.18.1.12",
        "    forwarding: nat\n    syn_proxy: true\n    real_servers:\n      - address: 198.18.1.11\n      - address: 198.18.1.12",
    );
    let d = diff(&only_syn, &on);
    assert_eq!(d.changed_services.len(), 1, "{d:?}");
    assert!(d.changed_services[0].settings_changed);
    // Saved as `proxy_protocol: v2` and read back the same.
    let text = uvs_config::to_yaml(&on);
    assert!(text.contains("proxy_protocol: v2"), "{text}");
    assert!(diff(&on, &load(&text)).is_empty());
    assert!(!uvs_config::to_yaml(&only_syn).contains("proxy_protocol"));
}

#[test]
fn interface_worker_or_table_changes_need_a_restart() {
    let d = diff(
        &load(BASE),
        &edit("  - name: uvs-lb0\n", "  - name: uvs-lb0\n    queues: 2\n"),
    );
    assert!(d.global_changed);
    assert!(d.changed_services.is_empty());
    let d = diff(
        &load(BASE),
        &load(&format!("{BASE}conn_table: {{ capacity: 4096 }}\n")),
    );
    assert!(d.global_changed);
    let d = diff(
        &load(BASE),
        &load(&format!("{BASE}workers: {{ cores: [1] }}\n")),
    );
    assert!(d.global_changed);
    assert!(d.to_string().contains("restart needed"));
}

#[test]
fn live_global_changes_are_not_restarts() {
    let d = diff(
        &load(BASE),
        &load(&format!("{BASE}expire_nodest_conn: true\n")),
    );
    assert!(d.sysctls_changed && !d.global_changed);
    let d = diff(
        &load(BASE),
        &load(&format!("{BASE}metrics: {{ listen: 127.0.0.1:9100 }}\n")),
    );
    assert!(d.metrics_changed && !d.global_changed);
    let d = diff(
        &load(BASE),
        &load(&format!("{BASE}admin: {{ group: uvs }}\n")),
    );
    assert!(d.admin_changed && !d.global_changed);
}

#[test]
fn global_timeouts_propagate_to_services_without_overrides() {
    let d = diff(
        &load(BASE),
        &load(&format!("{BASE}timeouts: {{ udp: 30 }}\n")),
    );
    assert!(d.timeouts_changed && !d.global_changed);
    // Both services inherit the global timeouts, so both see new effective timeouts.
    assert_eq!(d.changed_services.len(), 2);
    assert!(d.changed_services.iter().all(|c| c.settings_changed));
    let dns = d
        .changed_services
        .iter()
        .find(|c| c.new.name == "dns")
        .unwrap();
    assert_eq!(dns.new.timeouts.udp, 30);
}
