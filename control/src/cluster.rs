//! Active/backup roles at run time: which VIP groups this node is master for, what that
//! means for the addresses uvs claims, and what it announces when a group becomes master.
//!
//! The YAML gives each group its role at start; keepalived's notify scripts switch it with
//! `uvsadm cluster role GROUP master|backup`. A reload keeps the running role of a group
//! whose role line did not change, so reloading a file never undoes what VRRP decided.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uvs_config::{ClusterRole, Config};
use uvs_dataplane::cluster::{AddrSet, AnnounceTarget, Announcement};
use uvs_dataplane::IpKey;

/// One group's running role.
#[derive(Clone, Debug)]
pub struct GroupRole {
    pub name: String,
    pub role: ClusterRole,
    /// When the role was last set (started, switched, or re-asserted by uvsadm).
    pub since: Instant,
    /// Role changes since uvsd started.
    pub switches: u64,
}

/// The running roles, in the configuration's group order.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    pub groups: Vec<GroupRole>,
}

impl Roles {
    /// Every group in its YAML role.
    pub fn from_config(cfg: &Config) -> Roles {
        let now = Instant::now();
        Roles {
            groups: cfg
                .cluster
                .groups
                .iter()
                .map(|g| GroupRole {
                    name: g.name.clone(),
                    role: g.role,
                    since: now,
                    switches: 0,
                })
                .collect(),
        }
    }

    /// The roles for `new`, replacing `old`: a group keeps its running role unless it is
    /// new or its YAML role changed (the operator edited it).
    pub fn reconcile(&self, old: &Config, new: &Config) -> Roles {
        let now = Instant::now();
        let groups = new
            .cluster
            .groups
            .iter()
            .map(|g| {
                let was_yaml = old.cluster.groups.iter().find(|o| o.name == g.name);
                let running = self.groups.iter().find(|r| r.name == g.name);
                match (was_yaml, running) {
                    (Some(o), Some(r)) if o.role == g.role => r.clone(),
                    (_, Some(r)) if r.role == g.role => r.clone(),
                    (_, Some(r)) => GroupRole {
                        name: g.name.clone(),
                        role: g.role,
                        since: now,
                        switches: r.switches + 1,
                    },
                    (_, None) => GroupRole {
                        name: g.name.clone(),
                        role: g.role,
                        since: now,
                        switches: 0,
                    },
                }
            })
            .collect();
        Roles { groups }
    }

    pub fn role(&self, group: &str) -> Option<ClusterRole> {
        self.groups.iter().find(|g| g.name == group).map(|g| g.role)
    }

    /// Groups that are master here but were not in `before` (or were backup there).
    pub fn new_masters(&self, before: &Roles) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| g.role == ClusterRole::Master && before.role(&g.name) != Some(g.role))
            .map(|g| g.name.clone())
            .collect()
    }
}

/// The addresses a group claims when master: its VIPs that a service uses and those
/// services' FullNAT pool addresses, each once, in configuration order.
pub fn group_addresses(cfg: &Config, group: usize) -> Vec<IpAddr> {
    let Some(g) = cfg.cluster.groups.get(group) else {
        return Vec::new();
    };
    // Sets alongside the lists: a group may hold thousands of VIPs, and this runs for
    // every status snapshot (every second).
    let served: HashSet<IpAddr> = cfg.services.iter().map(|s| s.vip).collect();
    let in_group: HashSet<IpAddr> = g.vips.iter().copied().collect();
    let mut out: Vec<IpAddr> = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |a: IpAddr| {
        if seen.insert(a) {
            out.push(a);
        }
    };
    for vip in &g.vips {
        if served.contains(vip) {
            push(*vip);
        }
    }
    for s in cfg.services.iter().filter(|s| in_group.contains(&s.vip)) {
        for a in &s.fullnat_pool {
            push(*a);
        }
    }
    out
}

/// Every address of the groups that are backup here: uvs neither claims nor answers for
/// them.
pub fn silent_addresses(cfg: &Config, roles: &Roles) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for (i, g) in cfg.cluster.groups.iter().enumerate() {
        if roles.role(&g.name) != Some(ClusterRole::Master) {
            out.extend(g.vips.iter().copied());
            out.extend(group_addresses(cfg, i));
        }
    }
    out
}

pub fn addr_set(addrs: &BTreeSet<IpAddr>) -> AddrSet {
    addrs.iter().map(|a| IpKey::from_ip(*a)).collect()
}

/// The interfaces (port indices) an address of `group` is announced on: the group's
/// `interfaces` if it names some; else those whose networks contain the address; else all.
fn announce_ports(cfg: &Config, group: usize, addr: IpAddr) -> Vec<u8> {
    let g = &cfg.cluster.groups[group];
    let index = |name: &str| cfg.interfaces.iter().position(|i| i.name == name);
    if !g.interfaces.is_empty() {
        return g
            .interfaces
            .iter()
            .filter_map(|n| index(n))
            .map(|i| i as u8)
            .collect();
    }
    let on_link: Vec<u8> = cfg
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, i)| i.networks.iter().any(|n| n.contains(addr)))
        .map(|(i, _)| i as u8)
        .collect();
    if on_link.is_empty() {
        (0..cfg.interfaces.len()).map(|i| i as u8).collect()
    } else {
        on_link
    }
}

/// What worker 0 sends for `group` becoming master (`None` if it claims no address).
pub fn announcement(cfg: &Config, group: usize) -> Option<Announcement> {
    let targets: Vec<AnnounceTarget> = group_addresses(cfg, group)
        .into_iter()
        .map(|a| AnnounceTarget {
            addr: IpKey::from_ip(a),
            ports: announce_ports(cfg, group, a),
        })
        .collect();
    if targets.is_empty() {
        return None;
    }
    Some(Announcement {
        targets,
        count: cfg.cluster.announce.count,
        interval: cfg.cluster.announce.interval,
    })
}

/// One group as `uvsadm cluster` and `/metrics` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    #[serde(with = "role_name")]
    pub role: ClusterRole,
    /// Seconds in the current role.
    pub for_secs: u64,
    pub switches: u64,
    /// The group's VIPs, each with whether a service uses it.
    pub vips: Vec<(IpAddr, bool)>,
    /// Pool addresses of the group's services.
    pub pools: Vec<IpAddr>,
}

/// What `uvsadm cluster` lists (and the `uvs_cluster_*` metrics render).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub groups: Vec<GroupStatus>,
    /// VIPs of services in no group: served whatever the roles.
    pub ungrouped: Vec<IpAddr>,
    /// Announcement frames sent since uvsd started.
    pub announcements: u64,
}

/// A role travels to uvsadm by its YAML name.
mod role_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use uvs_config::ClusterRole;

    pub fn serialize<S: Serializer>(r: &ClusterRole, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ClusterRole, D::Error> {
        let name = String::deserialize(d)?;
        ClusterRole::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown cluster role '{name}'")))
    }
}

pub fn status(cfg: &Config, roles: &Roles, announcements: u64) -> ClusterStatus {
    let groups = cfg
        .cluster
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let r = roles.groups.iter().find(|r| r.name == g.name);
            let claimed = group_addresses(cfg, i);
            let is_claimed: HashSet<IpAddr> = claimed.iter().copied().collect();
            let is_vip: HashSet<IpAddr> = g.vips.iter().copied().collect();
            GroupStatus {
                name: g.name.clone(),
                role: r.map_or(g.role, |r| r.role),
                for_secs: r.map_or(0, |r| r.since.elapsed().as_secs()),
                switches: r.map_or(0, |r| r.switches),
                vips: g
                    .vips
                    .iter()
                    .map(|v| (*v, is_claimed.contains(v)))
                    .collect(),
                pools: claimed
                    .into_iter()
                    .filter(|a| !is_vip.contains(a))
                    .collect(),
            }
        })
        .collect();
    let mut ungrouped: Vec<IpAddr> = Vec::new();
    let mut seen: HashSet<IpAddr> = cfg
        .cluster
        .groups
        .iter()
        .flat_map(|g| g.vips.iter().copied())
        .collect();
    for s in &cfg.services {
        if seen.insert(s.vip) {
            ungrouped.push(s.vip);
        }
    }
    ClusterStatus {
        groups,
        ungrouped,
        announcements,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "\
interfaces:
  - name: uvs-lb0
    networks: [198.18.0.0/24, \"2001:2::/64\"]
  - name: uvs-lb1
    local: [198.18.1.3]
    networks: [198.18.1.0/24]
services:
  - vip: 198.18.0.100
    protocol: tcp
    port: 80
    fullnat_pool: [198.18.1.100]
    real_servers: [{ address: 198.18.1.11, forwarding: fullnat }]
  - vip: 198.18.0.100
    protocol: udp
    port: 53
    fullnat_pool: [198.18.1.100, 198.18.1.101]
    real_servers: [{ address: 198.18.1.11, forwarding: fullnat }]
  - vip: 198.18.100.7
    protocol: tcp
    port: 80
    real_servers: [{ address: 198.18.1.12 }]
  - vip: 198.18.0.200
    protocol: tcp
    port: 80
    real_servers: [{ address: 198.18.1.12 }]
cluster:
  announce: { count: 4, interval: 0.3 }
  groups:
    - { name: web, vips: [198.18.0.100, \"2001:2::100\", 198.18.100.7] }
    - { name: api, vips: [198.18.0.101], role: master, interfaces: [uvs-lb1] }
";

    fn cfg(src: &str) -> Config {
        uvs_config::load_str(src, "t.yaml").unwrap()
    }

    fn ips(s: &[&str]) -> Vec<IpAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn addresses_silence_and_announcements() {
        let c = cfg(CFG);
        let roles = Roles::from_config(&c);
        assert_eq!(roles.role("web"), Some(ClusterRole::Backup));
        assert_eq!(roles.role("api"), Some(ClusterRole::Master));
        // Only VIPs a service uses are claimed; pools follow their services, once each.
        assert_eq!(
            group_addresses(&c, 0),
            ips(&[
                "198.18.0.100",
                "198.18.100.7",
                "198.18.1.100",
                "198.18.1.101"
            ])
        );
        assert!(group_addresses(&c, 1).is_empty());
        let silent = silent_addresses(&c, &roles);
        let want: BTreeSet<IpAddr> = ips(&[
            "198.18.0.100",
            "2001:2::100",
            "198.18.100.7",
            "198.18.1.100",
            "198.18.1.101",
        ])
        .into_iter()
        .collect();
        assert_eq!(silent, want, "backup: every address of web");
        assert!(
            !silent.contains(&"198.18.0.200".parse().unwrap()),
            "ungrouped"
        );

        let a = announcement(&c, 0).unwrap();
        assert_eq!((a.count, a.interval.as_millis()), (4, 300));
        let ports: Vec<(IpAddr, Vec<u8>)> = a
            .targets
            .iter()
            .map(|t| (t.addr.to_ip(), t.ports.clone()))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("198.18.0.100".parse().unwrap(), vec![0]),
                // Off every link: announced everywhere.
                ("198.18.100.7".parse().unwrap(), vec![0, 1]),
                ("198.18.1.100".parse().unwrap(), vec![1]),
                ("198.18.1.101".parse().unwrap(), vec![1]),
            ]
        );
        assert!(announcement(&c, 1).is_none(), "api claims nothing yet");

        let st = status(&c, &roles, 7);
        assert_eq!(
            st.groups[0].vips[1],
            ("2001:2::100".parse().unwrap(), false)
        );
        assert_eq!(st.groups[0].pools, ips(&["198.18.1.100", "198.18.1.101"]));
        assert_eq!(st.ungrouped, ips(&["198.18.0.200"]));
        assert_eq!(st.announcements, 7);
    }

    #[test]
    fn a_reload_keeps_running_roles_unless_the_file_changed_them() {
        let old = cfg(CFG);
        let mut roles = Roles::from_config(&old);
        // keepalived made this node master for web.
        roles.groups[0].role = ClusterRole::Master;
        roles.groups[0].switches = 1;
        let same = roles.reconcile(&old, &old);
        assert_eq!(same.role("web"), Some(ClusterRole::Master));
        assert!(same.new_masters(&roles).is_empty());

        // The file now says api is backup and adds a group: those two take the file's role.
        let src = CFG
            .replace(
                "role: master, interfaces",
                "role: backup, interfaces",
            )
            .replace(
                "interfaces: [uvs-lb1] }\n",
                "interfaces: [uvs-lb1] }\n    - { name: dns, vips: [198.18.0.200], role: master }\n",
            );
        let new = cfg(&src);
        let r = roles.reconcile(&old, &new);
        assert_eq!(r.role("web"), Some(ClusterRole::Master), "kept");
        assert_eq!(r.role("api"), Some(ClusterRole::Backup), "file changed it");
        assert_eq!(r.role("dns"), Some(ClusterRole::Master), "new group");
        assert_eq!(r.new_masters(&roles), ["dns"]);
        assert_eq!(r.groups[1].switches, 1);
    }

    #[test]
    fn status_of_twenty_thousand_vips_takes_milliseconds() {
        // The status (every second for the status page, every uvsadm cluster) of 20 000
        // services on their own VIPs, half of them in a group: linear, not quadratic.
        let mut c = cfg(CFG);
        let template = c.services[2].clone();
        c.services.clear();
        c.cluster.groups[0].vips.clear();
        for i in 0..20_000u32 {
            let mut s = template.clone();
            s.vip = IpAddr::from([198, 18, 100 + (i / 250) as u8, (i % 250) as u8 + 1]);
            if i % 2 == 0 {
                c.cluster.groups[0].vips.push(s.vip);
            }
            c.services.push(s);
        }
        let roles = Roles::from_config(&c);
        let t = Instant::now();
        let st = status(&c, &roles, 0);
        let took = t.elapsed();
        assert_eq!(st.groups[0].vips.len(), 10_000);
        assert!(st.groups[0].vips.iter().all(|(_, claimed)| *claimed));
        assert_eq!(st.ungrouped.len(), 10_000);
        assert!(
            took < std::time::Duration::from_secs(1),
            "status took {took:?}"
        );
    }
}
