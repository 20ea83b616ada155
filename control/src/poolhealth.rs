//! Per-pool health of `layer: 7` services: a real server that fails the check of some of
//! its pools only (a pool's own `health_check`, see [`crate::health::targets`]) is out of
//! those pools and stays in the others.
//!
//! A real server's own health is an atomic the schedulers read ([`uvs_sched::ServerLive`]);
//! a pool's view of its members is not, since the pools share the service's live state.
//! So this state lives here, in control, and reaches the dataplane as each pool's `down`
//! list: the members a pool's scheduler weights 0, like servers outside the pool. A change
//! publishes a new snapshot (as a configuration change does; slots, live counters and
//! connections carry over). Checks flip rarely, so the rebuild costs nothing that matters.
//!
//! Connections already on a server that went down for one pool go on (the server is up for
//! the service, so `expire_nodest_conn` does not apply); only new requests for that pool
//! avoid it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Mutex;

use uvs_dataplane::tables::TablesSpec;
use uvs_dataplane::{IpKey, TablesBuilder};

use crate::daemon::Core;
use crate::health::HealthTarget;
use crate::spec::{self, service_key};

/// (service, pool, real server) down for that pool.
type Key = (uvs_config::ServiceKey, String, SocketAddr);

/// Which real servers are down for which pools.
#[derive(Debug, Default)]
pub struct PoolHealth {
    down: Mutex<BTreeSet<Key>>,
}

impl PoolHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Key>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a verdict of a pool target (one with `pools`); true if a pool's view changed.
    pub fn set(&self, t: &HealthTarget, up: bool) -> bool {
        let mut down = self.lock();
        let mut changed = false;
        for pool in &t.pools {
            let key = (t.service, pool.clone(), t.real);
            changed |= if up {
                down.remove(&key)
            } else {
                down.insert(key)
            };
        }
        changed
    }

    /// Replaces the whole state with the pool targets that are down (a new set of checks,
    /// after a reload); true if it changed.
    pub fn reset<'a>(&self, down_targets: impl IntoIterator<Item = &'a HealthTarget>) -> bool {
        let mut new = BTreeSet::new();
        for t in down_targets {
            new.extend(t.pools.iter().map(|p| (t.service, p.clone(), t.real)));
        }
        let mut down = self.lock();
        let changed = *down != new;
        *down = new;
        changed
    }

    /// Whether `real` is down for `pool` of `service`.
    pub fn is_down(&self, service: &uvs_config::ServiceKey, pool: &str, real: SocketAddr) -> bool {
        self.lock().contains(&(*service, pool.to_string(), real))
    }

    /// Writes the down members into the pools of `spec` (built from the configuration
    /// whose services they name; entries of pools that no longer exist are ignored).
    pub fn apply(&self, spec: &mut TablesSpec) {
        let down = self.lock();
        for (service, pool, real) in down.iter() {
            let key = service_key(service);
            let pools = spec
                .services
                .iter_mut()
                .filter(|s| s.key == key)
                .filter_map(|s| s.layer7.as_mut())
                .flat_map(|l| l.pools.iter_mut())
                .filter(|p| p.name == *pool);
            for p in pools {
                let member = (IpKey::from_ip(real.ip()), real.port());
                if !p.down.contains(&member) {
                    p.down.push(member);
                }
            }
        }
    }
}

impl Core {
    /// Applies the verdict of a pool target (one with `pools`): publishes new tables when
    /// a pool's view of its members changed.
    pub fn set_pool_health(&self, t: &HealthTarget, up: bool) {
        if self.pool_health.set(t, up) {
            self.publish_pool_health();
        }
    }

    /// Starts over from the pool targets that start down (a new set of checks).
    pub fn reset_pool_health<'a>(&self, down: impl IntoIterator<Item = &'a HealthTarget>) {
        if self.pool_health.reset(down) {
            self.publish_pool_health();
        }
    }

    /// The running configuration's tables again, with the pools' down members.
    pub(crate) fn publish_pool_health(&self) {
        // Held while building, so a configuration being applied meanwhile is not undone.
        let running = self.running.lock().expect("running lock");
        let links = self.links.lock().expect("links lock").clone();
        let mut spec = spec::tables_spec(&running.config, Some(&links));
        self.pool_health.apply(&mut spec);
        let slots = self.lock_slots();
        let current = self.shared.tables.load_full();
        match TablesBuilder::build(&spec, Some(&current)) {
            Ok(t) => self.publish(t, slots),
            // The same configuration built a moment ago: not expected; the pools keep
            // their previous view.
            Err(e) => log::error!("publishing the pools' health: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use uvs_config::{HealthCheck, HealthCheckKind, Protocol};

    fn target(pools: &[&str], real: &str) -> HealthTarget {
        HealthTarget {
            service: uvs_config::ServiceKey::addr(
                "198.18.100.1".parse().unwrap(),
                Protocol::Tcp,
                80,
            ),
            real: real.parse().unwrap(),
            check: HealthCheck {
                kind: HealthCheckKind::Tcp,
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                rise: 1,
                fall: 1,
                port: None,
                start_down: false,
            },
            pools: pools.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn set_reports_changes_and_reset_replaces() {
        let h = PoolHealth::default();
        let t = target(&["a", "b"], "198.18.1.12:80");
        assert!(h.set(&t, false));
        assert!(!h.set(&t, false), "already down");
        assert!(h.is_down(&t.service, "a", t.real) && h.is_down(&t.service, "b", t.real));
        assert!(h.set(&t, true));
        assert!(!h.is_down(&t.service, "a", t.real));
        let u = target(&["c"], "198.18.1.13:80");
        assert!(h.reset([&u]));
        assert!(!h.reset([&u]));
        assert!(h.is_down(&u.service, "c", u.real));
        assert!(h.reset([]));
    }
}
