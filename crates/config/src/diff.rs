//! What changed between two validated configurations, for a reload without dropping
//! connections.
//!
//! Services are matched by (vip, protocol, port) or (fwmark, family) and real servers by (address, port), as IPVS
//! identifies them (`ipvsadm -E` / `-e` edit in place; anything else is delete + add). Order
//! within the lists does not matter.

use crate::model::{Config, RealServer, Service, ServiceKey};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

/// The changes from one configuration to the next.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigDiff {
    /// In `new` order.
    pub added_services: Vec<Service>,
    /// In `old` order.
    pub removed_services: Vec<Service>,
    /// Services present in both whose settings or real servers differ, in `new` order.
    pub changed_services: Vec<ServiceChange>,
    /// Interfaces, workers or the connection table size changed: the dataplane must restart.
    pub global_changed: bool,
    /// Global timeouts changed (applies to new connections; services without their own
    /// overrides change with them, and appear in `changed_services`).
    pub timeouts_changed: bool,
    /// A connection-lifecycle setting changed (`expire_nodest_conn`, `conn_reuse_mode`,
    /// `expire_quiescent_template`, `drop_entry`: IPVS's sysctls).
    pub sysctls_changed: bool,
    /// The admin socket or its group changed.
    pub admin_changed: bool,
    /// The metrics endpoint changed.
    pub metrics_changed: bool,
    /// A firewall mark's match changed, or marks were added or removed.
    pub marks_changed: bool,
    /// The cluster section changed (groups, their VIPs, roles, announce interfaces, or the
    /// announcements).
    pub cluster_changed: bool,
    /// The connection-sync section changed (the sync daemon restarts).
    pub sync_changed: bool,
    /// The BGP announcement section changed.
    pub bgp_changed: bool,
    /// The client lookup section changed (its service restarts).
    pub client_lookup_changed: bool,
}

/// One service present in both configurations.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceChange {
    pub key: ServiceKey,
    pub old: Service,
    pub new: Service,
    /// In `new` order.
    pub added_reals: Vec<RealServer>,
    /// In `old` order.
    pub removed_reals: Vec<RealServer>,
    /// In `new` order.
    pub changed_reals: Vec<RealServerChange>,
    /// The scheduler, its flags, the Maglev table size or the geo sites changed: rebuild
    /// scheduler state.
    pub scheduler_changed: bool,
    pub persistence_changed: bool,
    pub health_check_changed: bool,
    /// Anything else: name, default forwarding, one_packet, fullnat_pool, timeouts,
    /// sorry server.
    pub settings_changed: bool,
}

/// One real server present in both, with different settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealServerChange {
    pub old: RealServer,
    pub new: RealServer,
}

impl RealServerChange {
    /// Only the weight differs: applied in place like `ipvsadm -e -w`, existing connections
    /// untouched (weight 0 quiesces).
    pub fn weight_only(&self) -> bool {
        self.old.weight != self.new.weight
            && RealServer {
                weight: self.new.weight,
                ..self.old
            } == self.new
    }
}

impl ConfigDiff {
    /// True when the two configurations are equal.
    pub fn is_empty(&self) -> bool {
        self.added_services.is_empty()
            && self.removed_services.is_empty()
            && self.changed_services.is_empty()
            && !self.global_changed
            && !self.timeouts_changed
            && !self.sysctls_changed
            && !self.admin_changed
            && !self.metrics_changed
            && !self.marks_changed
            && !self.cluster_changed
            && !self.sync_changed
            && !self.bgp_changed
            && !self.client_lookup_changed
    }
}

/// The changes that turn `old` into `new`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let old_by_key: HashMap<ServiceKey, &Service> =
        old.services.iter().map(|s| (s.key(), s)).collect();
    let new_by_key: HashMap<ServiceKey, &Service> =
        new.services.iter().map(|s| (s.key(), s)).collect();
    let mut out = ConfigDiff {
        global_changed: old.interfaces != new.interfaces
            || old.workers != new.workers
            || old.conn_table != new.conn_table,
        timeouts_changed: old.timeouts != new.timeouts,
        sysctls_changed: old.expire_nodest_conn != new.expire_nodest_conn
            || old.conn_reuse_mode != new.conn_reuse_mode
            || old.expire_quiescent_template != new.expire_quiescent_template
            || old.drop_entry != new.drop_entry,
        admin_changed: old.admin != new.admin,
        metrics_changed: old.metrics != new.metrics,
        marks_changed: old.marks != new.marks,
        cluster_changed: old.cluster != new.cluster,
        sync_changed: old.sync != new.sync,
        bgp_changed: old.bgp != new.bgp,
        client_lookup_changed: old.client_lookup != new.client_lookup,
        ..ConfigDiff::default()
    };
    for s in &old.services {
        if !new_by_key.contains_key(&s.key()) {
            out.removed_services.push(s.clone());
        }
    }
    for s in &new.services {
        match old_by_key.get(&s.key()) {
            None => out.added_services.push(s.clone()),
            Some(o) => {
                if let Some(change) = service_change(o, s) {
                    out.changed_services.push(change);
                }
            }
        }
    }
    out
}

fn service_change(old: &Service, new: &Service) -> Option<ServiceChange> {
    let old_reals: HashMap<SocketAddr, &RealServer> =
        old.real_servers.iter().map(|r| (r.key(), r)).collect();
    let new_reals: HashMap<SocketAddr, &RealServer> =
        new.real_servers.iter().map(|r| (r.key(), r)).collect();
    let removed_reals: Vec<RealServer> = old
        .real_servers
        .iter()
        .filter(|r| !new_reals.contains_key(&r.key()))
        .copied()
        .collect();
    let mut added_reals = Vec::new();
    let mut changed_reals = Vec::new();
    for r in &new.real_servers {
        match old_reals.get(&r.key()) {
            None => added_reals.push(*r),
            Some(o) if *o != r => changed_reals.push(RealServerChange { old: **o, new: *r }),
            Some(_) => {}
        }
    }
    let scheduler_changed = old.scheduler != new.scheduler
        || old.scheduler_flags != new.scheduler_flags
        || old.mh_table_size != new.mh_table_size
        || old.sites != new.sites;
    let persistence_changed = old.persistence != new.persistence;
    let health_check_changed = old.health_check != new.health_check;
    let settings_changed = old.name != new.name
        || old.forwarding != new.forwarding
        || old.one_packet != new.one_packet
        || old.syn_proxy != new.syn_proxy
        || old.proxy_protocol != new.proxy_protocol
        || old.layer7 != new.layer7
        || old.fullnat_pool != new.fullnat_pool
        || old.timeouts != new.timeouts
        || old.sorry_server != new.sorry_server;
    let changed = !added_reals.is_empty()
        || !removed_reals.is_empty()
        || !changed_reals.is_empty()
        || scheduler_changed
        || persistence_changed
        || health_check_changed
        || settings_changed;
    changed.then(|| ServiceChange {
        key: new.key(),
        old: old.clone(),
        new: new.clone(),
        added_reals,
        removed_reals,
        changed_reals,
        scheduler_changed,
        persistence_changed,
        health_check_changed,
        settings_changed,
    })
}

impl fmt::Display for ConfigDiff {
    /// One line per change, `+`/`-`/`~` like a patch, for `uvsadm reload` to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        if self.global_changed {
            writeln!(
                f,
                "! interfaces, workers or conn_table changed: restart needed"
            )?;
        }
        for (changed, what) in [
            (self.timeouts_changed, "timeouts"),
            (
                self.sysctls_changed,
                "connection lifecycle (expire_nodest_conn, conn_reuse_mode, …)",
            ),
            (self.admin_changed, "admin"),
            (self.metrics_changed, "metrics"),
            (self.marks_changed, "marks"),
            (self.cluster_changed, "cluster"),
            (self.sync_changed, "sync"),
            (self.bgp_changed, "bgp"),
            (self.client_lookup_changed, "client_lookup"),
        ] {
            if changed {
                writeln!(f, "~ {what}")?;
            }
        }
        for s in &self.removed_services {
            writeln!(f, "- service {} ({})", s.key(), s.name)?;
        }
        for s in &self.added_services {
            writeln!(
                f,
                "+ service {} ({}, {} real servers)",
                s.key(),
                s.name,
                s.real_servers.len()
            )?;
        }
        for c in &self.changed_services {
            writeln!(f, "~ service {} ({})", c.key, c.new.name)?;
            for (changed, what) in [
                (c.scheduler_changed, "scheduler"),
                (c.persistence_changed, "persistence"),
                (c.health_check_changed, "health_check"),
                (c.settings_changed, "settings"),
            ] {
                if changed {
                    writeln!(f, "    ~ {what}")?;
                }
            }
            for r in &c.removed_reals {
                writeln!(f, "    - real {}", r.key())?;
            }
            for r in &c.added_reals {
                writeln!(
                    f,
                    "    + real {} weight {} {}",
                    r.key(),
                    r.weight,
                    r.forwarding
                )?;
            }
            for r in &c.changed_reals {
                if r.weight_only() {
                    writeln!(
                        f,
                        "    ~ real {} weight {} → {}",
                        r.new.key(),
                        r.old.weight,
                        r.new.weight
                    )?;
                } else {
                    writeln!(f, "    ~ real {}", r.new.key())?;
                }
            }
        }
        Ok(())
    }
}
