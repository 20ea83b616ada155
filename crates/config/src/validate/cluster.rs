//! The `cluster:` section: VIP groups with an active/backup role, and the announcements a
//! node sends when a group becomes master.

use super::{Ctx, Links, Result, Role};
use crate::marks::join;
use crate::model::{Announce, Cluster, ClusterGroup, ClusterRole, Interface, Service};
use crate::raw::RawCluster;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Longest group name: it appears on uvsadm's command line and in keepalived's notify lines.
const MAX_NAME: usize = 32;
const MAX_COUNT: u64 = 100;
const MIN_INTERVAL_MS: u64 = 10;
const MAX_INTERVAL_MS: u64 = 10_000;

pub(super) fn cluster(
    cx: &Ctx<'_>,
    raw: RawCluster,
    links: &Links,
    interfaces: &[Interface],
    services: &[Service],
) -> Result<Cluster> {
    let announce = announce(cx, raw.announce.unwrap_or_default())?;
    let mut groups: Vec<ClusterGroup> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    // Every grouped VIP and where it is listed.
    let mut vips: HashMap<IpAddr, (String, String)> = HashMap::new();
    let mut pools: HashMap<IpAddr, String> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        for (j, a) in s.fullnat_pool.iter().enumerate() {
            pools
                .entry(*a)
                .or_insert_with(|| format!("services[{i}].fullnat_pool[{j}]"));
        }
    }
    for (i, g) in raw.groups.unwrap_or_default().into_iter().enumerate() {
        let base = format!("cluster.groups[{i}]");
        let p = |f: &str| join(&base, f);
        let name = g.name.ok_or_else(|| {
            cx.err(&p("name"), "the group has no `name`")
                .with_hint(Some(
                    "add `name: <group>`: uvsadm cluster role <group> master|backup switches it"
                        .into(),
                ))
        })?;
        group_name(cx, &p("name"), &name)?;
        if let Some(first) = names.insert(name.clone(), p("name")) {
            return Err(cx.err(
                &p("name"),
                format!(
                    "group '{name}' is already defined at line {}",
                    cx.line_of(&first)
                ),
            ));
        }
        let raw_vips = g.vips.unwrap_or_default();
        if raw_vips.is_empty() {
            return Err(cx
                .err(&p("vips"), format!("group '{name}' has no VIPs"))
                .with_hint(Some(
                    "list the VIPs that fail over together: `vips: [198.18.100.1]`".into(),
                )));
        }
        let mut group_vips = Vec::with_capacity(raw_vips.len());
        for (j, text) in raw_vips.iter().enumerate() {
            let vp = format!("{base}.vips[{j}]");
            let ip = cx.addr(&vp, text)?;
            cx.check_address(links, &vp, Role::Vip, ip)?;
            if let Some(at) = pools.get(&ip) {
                return Err(cx.also(&vp, Role::Vip, ip, at).with_hint(Some(
                    "a group lists VIPs; the pool addresses of their services join the group by themselves"
                        .into(),
                )));
            }
            if let Some((other, at)) = vips.get(&ip) {
                let msg = if *other == name {
                    format!("VIP {ip} is listed twice (line {})", cx.line_of(at))
                } else {
                    format!(
                        "VIP {ip} is already in group '{other}' (line {})",
                        cx.line_of(at)
                    )
                };
                return Err(cx
                    .err(&vp, msg)
                    .with_hint(Some("a VIP fails over with exactly one group".into())));
            }
            vips.insert(ip, (name.clone(), vp));
            group_vips.push(ip);
        }
        let role = match &g.role {
            None => ClusterRole::Backup,
            Some(t) => cx.name(
                &p("role"),
                t,
                "role",
                ClusterRole::NAMES,
                ClusterRole::from_name,
            )?,
        };
        let mut ifaces: Vec<String> = Vec::new();
        for (j, n) in g.interfaces.unwrap_or_default().into_iter().enumerate() {
            let ip = format!("{base}.interfaces[{j}]");
            if !interfaces.iter().any(|i| i.name == n) {
                let known: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
                return Err(cx
                    .err(&ip, format!("interface '{n}' is not one of `interfaces`"))
                    .with_hint(Some(crate::error::suggest(&n, &known))));
            }
            if ifaces.contains(&n) {
                return Err(cx.err(&ip, format!("interface '{n}' is listed twice")));
            }
            ifaces.push(n);
        }
        groups.push(ClusterGroup {
            name,
            vips: group_vips,
            role,
            interfaces: ifaces,
        });
    }
    let out = Cluster { announce, groups };
    pools_follow_one_group(cx, &out, services)?;
    Ok(out)
}

fn announce(cx: &Ctx<'_>, raw: crate::raw::RawAnnounce) -> Result<Announce> {
    let d = Announce::default();
    let count = match raw.count {
        None => d.count,
        Some(c) => cx.range("cluster.announce.count", c, 1, MAX_COUNT, "announce count")? as u32,
    };
    let interval = match raw.interval {
        None => d.interval,
        Some(secs) => {
            let ms = (secs * 1000.0).round();
            if !secs.is_finite() || ms < MIN_INTERVAL_MS as f64 || ms > MAX_INTERVAL_MS as f64 {
                return Err(cx
                    .err(
                        "cluster.announce.interval",
                        format!("announce interval {secs} s is out of range 0.01..=10"),
                    )
                    .with_hint(Some("seconds between repeats, e.g. 0.2".into())));
            }
            Duration::from_millis(ms as u64)
        }
    };
    Ok(Announce { count, interval })
}

fn group_name(cx: &Ctx<'_>, path: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(());
    }
    Err(cx
        .err(path, format!("'{name}' is not a valid group name"))
        .with_hint(Some(format!(
            "1 to {MAX_NAME} letters, digits, '-', '_' or '.': it is given to uvsadm on the command line"
        ))))
}

/// A FullNAT pool address moves with the VIPs of the services that use it, so those VIPs
/// must be in one group (or all in none): otherwise one node would claim it for one group
/// while the other node claims it for another.
fn pools_follow_one_group(cx: &Ctx<'_>, cluster: &Cluster, services: &[Service]) -> Result<()> {
    let describe = |g: Option<usize>| match g {
        Some(g) => format!("group '{}'", cluster.groups[g].name),
        None => "no group".to_string(),
    };
    let mut first: HashMap<IpAddr, (Option<usize>, String)> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        let g = cluster.group_of(s.vip);
        for (j, a) in s.fullnat_pool.iter().enumerate() {
            let here = format!("services[{i}].fullnat_pool[{j}]");
            match first.get(a) {
                None => {
                    first.insert(*a, (g, here));
                }
                Some((other, at)) if *other != g => {
                    return Err(cx
                        .err(
                            &here,
                            format!(
                                "fullnat pool address {a} serves VIP {} ({}) here and a VIP of {} at line {}",
                                s.vip,
                                describe(g),
                                describe(*other),
                                cx.line_of(at)
                            ),
                        )
                        .with_hint(Some(
                            "a pool address fails over with its VIPs: give each cluster group its own pool addresses"
                                .into(),
                        )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
