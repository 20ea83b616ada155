//! The families of a node in a cluster: connection sync, BGP announcement and drain, and
//! the active/backup roles of its VIP groups, so that an operator can alert on a role
//! switch, a withdrawn VIP, a failing BIRD or a silent sync peer.

use super::{Exposition, Kind};

/// Connection sync: messages and records both ways, refusals by reason.
pub(super) fn sync_families(e: &mut Exposition, y: &crate::snapshot::SyncSnapshot) {
    let mode = vec![("mode", y.mode.clone())];
    let simple: [(&'static str, &str, u64); 7] = [
        (
            "uvs_sync_sent_messages_total",
            "Sync messages sent.",
            y.sent_messages,
        ),
        (
            "uvs_sync_sent_conns_total",
            "Connection records sent (once per peer their message went to).",
            y.sent_conns,
        ),
        (
            "uvs_sync_send_errors_total",
            "Sync messages the kernel refused to send.",
            y.send_errors,
        ),
        (
            "uvs_sync_received_messages_total",
            "Sync messages accepted.",
            y.received_messages,
        ),
        (
            "uvs_sync_received_conns_total",
            "Connection records received in accepted messages.",
            y.received_conns,
        ),
        (
            "uvs_sync_installed_total",
            "Connection records installed or refreshed.",
            y.installed,
        ),
        (
            "uvs_sync_rate_limited_total",
            "Records dropped by the receive rate limit.",
            y.rate_limited,
        ),
    ];
    for (name, help, v) in simple {
        e.family(name, help, Kind::Counter).sample(&mode, v);
    }
    e.family(
        "uvs_sync_tap_dropped_total",
        "Connection events the packet path could not queue for sync (queue full).",
        Kind::Counter,
    )
    .sample(&mode, y.tap_dropped);
    let mut f = e.family(
        "uvs_sync_bad_messages_total",
        "Sync messages refused whole, by reason (auth: missing or wrong HMAC; replay).",
        Kind::Counter,
    );
    for (reason, n) in &y.bad_messages {
        f.sample(&[("reason", reason.clone())], *n);
    }
    let mut f = e.family(
        "uvs_sync_refused_total",
        "Connection records not installed, by reason (no_service: a service this node lacks; \
         table_full; tuple_clash: a live connection of this node's own holds its tuple).",
        Kind::Counter,
    );
    for (reason, n) in &y.refused {
        f.sample(&[("reason", reason.clone())], *n);
    }
    if let Some(age) = y.last_received_age_ms {
        e.family(
            "uvs_sync_last_message_age_seconds",
            "Seconds since the last accepted sync message.",
            Kind::Gauge,
        )
        .sample(&mode, age as f64 / 1000.0);
    }
    e.family(
        "uvs_sync_peers",
        "Peers (addresses) heard from in the last 5 minutes, or 3 refresh periods if longer.",
        Kind::Gauge,
    )
    .sample(&mode, y.peers.len() as u64);
}

/// BGP announcement (`bgp:`) and drain state.
pub(super) fn node_families(e: &mut Exposition, n: &crate::announce::NodeSnapshot) {
    e.family(
        "uvs_node_draining",
        "1 while `uvsadm node drain` runs, else 0.",
        Kind::Gauge,
    )
    .sample(&[], u64::from(n.state == "draining"));
    // One series per state, 1 for the current one (the usual enum gauge), so that an alert
    // can name the state.
    let mut f = e.family(
        "uvs_node_state",
        "1 for the node's state (serving, draining, stopping), 0 for the others.",
        Kind::Gauge,
    );
    for state in ["serving", "draining", "stopping"] {
        f.sample(&[("state", state.to_string())], u64::from(n.state == state));
    }
    if !n.bgp {
        return;
    }
    let mut f = e.family(
        "uvs_bgp_announced",
        "1 for a VIP BIRD is told to announce, 0 for one withdrawn.",
        Kind::Gauge,
    );
    for v in &n.announced {
        f.sample(&[("vip", v.to_string())], 1u64);
    }
    for (v, _) in &n.withdrawn {
        f.sample(&[("vip", v.to_string())], 0u64);
    }
    let mut f = e.family(
        "uvs_bgp_withdrawn",
        "1 for a configured VIP that is not announced, labelled with why (no usable real \
         server, node draining, node stopping).",
        Kind::Gauge,
    );
    for (v, why) in &n.withdrawn {
        f.sample(
            &[("vip", v.to_string()), ("reason", why.replace(' ', "_"))],
            1u64,
        );
    }
    e.family(
        "uvs_bgp_announced_vips",
        "VIPs this node announces.",
        Kind::Gauge,
    )
    .sample(&[], n.announced.len() as u64);
    e.family(
        "uvs_bgp_reconfigures_total",
        "BIRD reconfigurations attempted (include file rewritten, `configure` sent).",
        Kind::Counter,
    )
    .sample(&[], n.reconfigures);
    e.family(
        "uvs_bgp_reconfigure_errors_total",
        "BIRD reconfigurations that failed (file not written, BIRD unreachable or refusing).",
        Kind::Counter,
    )
    .sample(&[], n.reconfigure_errors);
    e.family(
        "uvs_bgp_reconfigure_failing",
        "1 while the last BIRD reconfiguration failed (uvsd retries every second): what BIRD \
         announces may not be what uvsd wants.",
        Kind::Gauge,
    )
    .sample(&[], u64::from(n.last_error.is_some()));
    if let Some(ms) = n.last_ok_age_ms {
        e.family(
            "uvs_bgp_last_reconfigure_age_seconds",
            "Seconds since BIRD last accepted a reconfiguration.",
            Kind::Gauge,
        )
        .sample(&[], ms as f64 / 1000.0);
    }
}

/// Active/backup: each VIP group's role, how long it has held it, its switches, and the
/// announcement frames sent when a group became master.
pub(super) fn role_families(e: &mut Exposition, c: &crate::cluster::ClusterStatus) {
    let mut f = e.family(
        "uvs_cluster_role",
        "1 for the VIP group's current role (master: claims and forwards its VIPs; backup: \
         silent), 0 for the other.",
        Kind::Gauge,
    );
    for g in &c.groups {
        for role in uvs_config::ClusterRole::ALL {
            f.sample(
                &[("group", g.name.clone()), ("role", role.name().to_string())],
                u64::from(g.role == *role),
            );
        }
    }
    let groups = |g: &crate::cluster::GroupStatus| vec![("group", g.name.clone())];
    let mut f = e.family(
        "uvs_cluster_role_switches_total",
        "Role changes of the VIP group since uvsd started (keepalived's notify or a reload).",
        Kind::Counter,
    );
    for g in &c.groups {
        f.sample(&groups(g), g.switches);
    }
    let mut f = e.family(
        "uvs_cluster_role_seconds",
        "Seconds the VIP group has held its current role.",
        Kind::Gauge,
    );
    for g in &c.groups {
        f.sample(&groups(g), g.for_secs);
    }
    e.family(
        "uvs_cluster_announcements_total",
        "Gratuitous ARP and unsolicited neighbour advertisement frames sent for groups that \
         became master.",
        Kind::Counter,
    )
    .sample(&[], c.announcements);
}
