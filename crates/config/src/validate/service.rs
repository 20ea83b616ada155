//! Virtual services: identity, scheduler, persistence, FullNAT pool, sorry server.

use super::fwmark;
use super::health::health_check;
use super::layer7;
use super::real::reals;
use super::site::sites;
use super::{family, Ctx, Links, Result, Role, MAX_TIMEOUT};
use crate::marks::join;
use crate::model::{
    Forwarding, Mark, Persistence, Protocol, Scheduler, SchedulerFlag, Service, ServiceKey,
    SorryServer, Timeouts,
};
use crate::net::{ipv4_mask_len, max_len};
use crate::raw::{Netmask, RawPersistence, RawService};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

/// ipvsadm's default scheduler.
pub(crate) const DEFAULT_SCHEDULER: Scheduler = Scheduler::WeightedLeastConnection;
/// ipvsadm's default forwarding method: "-g, --gatewaying ... This is the default" (ipvsadm(8)).
pub(crate) const DEFAULT_FORWARDING: Forwarding = Forwarding::Dr;
/// ipvsadm's default persistence timeout (`-p` without a value).
pub const DEFAULT_PERSISTENCE: u32 = 300;
/// Largest Maglev table accepted: 2^24 entries per service is already 64 MiB of u32 indices.
pub(crate) const MAX_MH_TABLE: u64 = 1 << 24;
/// Maglev table size when the YAML does not say (the scheduler's default).
const DEFAULT_MH_TABLE: u64 = 65537;

pub(super) fn services(
    cx: &Ctx<'_>,
    raw: Vec<RawService>,
    links: &Links,
    global: &Timeouts,
    marks: &[Mark],
) -> Result<Vec<Service>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut keys: HashMap<ServiceKey, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, r) in raw.into_iter().enumerate() {
        let base = format!("services[{i}]");
        let svc = service(cx, &base, r, links, global, marks)?;
        if let Some(first) = keys.insert(svc.key(), base.clone()) {
            let (field, hint) = if svc.fwmark != 0 {
                (
                    "fwmark",
                    "a firewall-mark service is identified by (fwmark, family): merge the two",
                )
            } else {
                (
                    "vip",
                    "a service is identified by (vip, protocol, port): merge the two",
                )
            };
            return Err(cx
                .err(
                    &join(&base, field),
                    format!(
                        "service {} is already defined at line {} ({first})",
                        svc.key(),
                        cx.line_of(&first)
                    ),
                )
                .with_hint(Some(hint.into())));
        }
        let name_path = join(&base, "name");
        if let Some(first) = names.insert(svc.name.clone(), name_path.clone()) {
            return Err(cx.err(
                &name_path,
                format!(
                    "service name '{}' is already used at line {}",
                    svc.name,
                    cx.line_of(&first)
                ),
            ));
        }
        out.push(svc);
    }
    owned_by_another(cx, &out)?;
    Ok(out)
}

/// Addresses one service uses that another owns: a real or sorry server that is a VIP or a
/// FullNAT pool address, a pool address that is a VIP. (Within one service these are checked
/// as it is read.)
fn owned_by_another(cx: &Ctx<'_>, services: &[Service]) -> Result<()> {
    let mut vips: HashMap<IpAddr, String> = HashMap::new();
    let mut pools: HashMap<IpAddr, String> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        // A firewall-mark service's address is a placeholder, owned by nobody.
        if s.fwmark == 0 {
            vips.entry(s.vip)
                .or_insert_with(|| format!("services[{i}].vip"));
        }
        for (j, a) in s.fullnat_pool.iter().enumerate() {
            pools
                .entry(*a)
                .or_insert_with(|| format!("services[{i}].fullnat_pool[{j}]"));
        }
    }
    let owner = |ip: &IpAddr| vips.get(ip).or_else(|| pools.get(ip));
    for (i, s) in services.iter().enumerate() {
        for (j, r) in s.real_servers.iter().enumerate() {
            if let Some(at) = owner(&r.address) {
                let p = format!("services[{i}].real_servers[{j}].address");
                return Err(cx.also(&p, Role::Real, r.address, at));
            }
        }
        if let Some(o) = &s.sorry_server {
            if let Some(at) = owner(&o.address) {
                let p = format!("services[{i}].sorry_server.address");
                return Err(cx.also(&p, Role::Sorry, o.address, at));
            }
        }
        for (j, a) in s.fullnat_pool.iter().enumerate() {
            if let Some(at) = vips.get(a) {
                let p = format!("services[{i}].fullnat_pool[{j}]");
                return Err(cx.also(&p, Role::Pool, *a, at));
            }
        }
    }
    Ok(())
}

fn service(
    cx: &Ctx<'_>,
    base: &str,
    mut r: RawService,
    links: &Links,
    global: &Timeouts,
    marks: &[Mark],
) -> Result<Service> {
    let p = |f: &str| join(base, f);
    let key = match r.fwmark {
        Some(m) => {
            for (field, there) in [
                ("vip", r.vip.is_some()),
                ("protocol", r.protocol.is_some()),
                ("port", r.port.is_some()),
            ] {
                if there {
                    return Err(cx
                        .err_key(
                            &p(field),
                            format!("a firewall-mark service has no `{field}`"),
                        )
                        .with_hint(Some(
                            "its mark (`marks:`) says which destinations, protocols and ports                              it takes: remove the field"
                                .into(),
                        )));
                }
            }
            fwmark::service_key(cx, base, m, r.family.as_deref(), marks)?
        }
        None => {
            if r.family.is_some() {
                return Err(cx
                    .err_key(
                        &p("family"),
                        "`family` applies only to a firewall-mark service",
                    )
                    .with_hint(Some(
                        "an address service's family is its vip's: remove `family`".into(),
                    )));
            }
            address_key(cx, base, &r, links)?
        }
    };
    let name = match r.name.take() {
        Some(n) if n.trim().is_empty() => {
            return Err(cx.err(&p("name"), "the service name is empty"))
        }
        Some(n) => n,
        None => key.to_string(),
    };
    let scheduler = match &r.scheduler {
        Some(t) => cx.name(
            &p("scheduler"),
            t,
            "scheduler",
            Scheduler::NAMES,
            Scheduler::from_name,
        )?,
        None => DEFAULT_SCHEDULER,
    };
    service_rest(cx, base, r, links, global, key, name, scheduler)
}

/// (vip, protocol, port) of an address service.
fn address_key(cx: &Ctx<'_>, base: &str, r: &RawService, links: &Links) -> Result<ServiceKey> {
    let p = |f: &str| join(base, f);
    let vip = match &r.vip {
        Some(t) => cx.addr(&p("vip"), t)?,
        None => {
            return Err(cx
                .err(&p("vip"), "the service has no `vip`")
                .with_hint(Some(
                    "add `vip: <address>`, or `fwmark: <mark>` for a firewall-mark service".into(),
                )))
        }
    };
    cx.check_address(links, &p("vip"), Role::Vip, vip)?;
    let protocol = match &r.protocol {
        Some(t) => cx.name(
            &p("protocol"),
            t,
            "protocol",
            Protocol::NAMES,
            Protocol::from_name,
        )?,
        None => {
            return Err(cx
                .err(&p("protocol"), "the service has no `protocol`")
                .with_hint(Some("add `protocol: tcp`, `udp` or `sctp`".into())))
        }
    };
    let port = match r.port {
        Some(v) => cx.port(&p("port"), v)?,
        None => {
            return Err(cx
                .err(&p("port"), "the service has no `port`")
                .with_hint(Some(
                    "add `port: <n>` (0 = every port, with persistence)".into(),
                )))
        }
    };
    Ok(ServiceKey::addr(vip, protocol, port))
}

/// Everything after the key, name and scheduler.
#[allow(clippy::too_many_arguments)]
fn service_rest(
    cx: &Ctx<'_>,
    base: &str,
    mut r: RawService,
    links: &Links,
    global: &Timeouts,
    key: ServiceKey,
    name: String,
    scheduler: Scheduler,
) -> Result<Service> {
    let p = |f: &str| join(base, f);
    let (vip, protocol, port) = (key.vip, key.protocol, key.port);
    let mut scheduler_flags = Vec::new();
    for (j, t) in r.scheduler_flags.iter().flatten().enumerate() {
        let fp = format!("{base}.scheduler_flags[{j}]");
        let flag = cx.name(
            &fp,
            t,
            "scheduler flag",
            SchedulerFlag::NAMES,
            SchedulerFlag::from_name,
        )?;
        if flag.scheduler() != scheduler {
            return Err(cx
                .err(
                    &fp,
                    format!(
                        "flag '{flag}' applies only to the {} scheduler, not {scheduler}",
                        flag.scheduler()
                    ),
                )
                .with_hint(Some(format!(
                    "remove it, or set `scheduler: {}`",
                    flag.scheduler()
                ))));
        }
        if scheduler_flags.contains(&flag) {
            return Err(cx.err(&fp, format!("flag '{flag}' is listed twice")));
        }
        scheduler_flags.push(flag);
    }
    // A set: kept in one order so equal configurations compare equal.
    scheduler_flags.sort();
    let mh_table_size = match r.mh_table_size {
        None => None,
        Some(m) => {
            let mp = p("mh_table_size");
            if scheduler != Scheduler::MaglevHashing {
                return Err(cx
                    .err(
                        &mp,
                        format!("mh_table_size applies only to the mh scheduler, not {scheduler}"),
                    )
                    .with_hint(Some("remove it, or set `scheduler: mh`".into())));
            }
            let m = cx.range(&mp, m, 1, MAX_MH_TABLE, "mh_table_size")?;
            if !is_prime(m) {
                return Err(cx
                    .err(&mp, format!("mh_table_size {m} is not prime"))
                    .with_hint(Some(format!(
                        "Maglev needs a prime table size; the next prime is {}",
                        next_prime(m)
                    ))));
            }
            Some(m as u32)
        }
    };

    let forwarding = match &r.forwarding {
        Some(t) => cx.name(
            &p("forwarding"),
            t,
            "forwarding method",
            Forwarding::NAMES,
            Forwarding::from_name,
        )?,
        None => DEFAULT_FORWARDING,
    };
    let persistence = match r.persistence {
        Some(rp) => Some(persistence(cx, &p("persistence"), rp, vip)?),
        None => None,
    };
    if port == 0 && persistence.is_none() && !key.is_fwmark() {
        return Err(cx
            .err(&p("port"), "port 0 (every port) needs persistence")
            .with_hint(Some(
                "add `persistence: { timeout: 300 }`, as ipvsadm requires for port 0".into(),
            )));
    }
    let one_packet = r.one_packet.unwrap_or(false);
    if one_packet && key.is_fwmark() {
        return Err(cx
            .err(
                &p("one_packet"),
                "one_packet scheduling applies only to udp address services",
            )
            .with_hint(Some("remove `one_packet`".into())));
    }
    if one_packet && protocol != Protocol::Udp {
        return Err(cx
            .err(
                &p("one_packet"),
                format!("one_packet scheduling applies only to udp, this service is {protocol}"),
            )
            .with_hint(Some("remove `one_packet`".into())));
    }
    let timeouts = match &r.timeouts {
        Some(t) => cx.timeouts(&p("timeouts"), t, global)?,
        None => *global,
    };
    let sorry_server = match r.sorry_server {
        None => None,
        Some(s) => {
            let sp = p("sorry_server");
            let address = match &s.address {
                Some(t) => cx.addr(&join(&sp, "address"), t)?,
                None => {
                    return Err(cx.err(&join(&sp, "address"), "the sorry server has no `address`"))
                }
            };
            let ap = join(&sp, "address");
            cx.check_address(links, &ap, Role::Sorry, address)?;
            if !links.routed(address) {
                return Err(no_route(cx, &ap, "sorry server", address));
            }
            no_source(cx, links, &ap, "sorry server", address)?;
            if address.is_ipv4() != vip.is_ipv4() {
                return Err(cx.err(
                    &join(&sp, "address"),
                    format!(
                        "sorry server {address} is {}, the VIP {vip} is {}",
                        family(address),
                        family(vip)
                    ),
                ));
            }
            let sport = match s.port {
                Some(v) => cx.port(&join(&sp, "port"), v)?,
                None => port,
            };
            Some(SorryServer {
                address,
                port: sport,
            })
        }
    };
    let health_check = match r.health_check {
        Some(h) => Some(health_check(cx, &p("health_check"), h, port)?),
        None => None,
    };
    let sites = sites(cx, base, r.sites, scheduler, vip)?;
    let real_servers = reals(
        cx,
        base,
        r.real_servers.unwrap_or_default(),
        key,
        forwarding,
        links,
        (scheduler, &sites),
    )?;
    if let Some(m) = mh_table_size {
        if (m as usize) <= real_servers.len() {
            return Err(cx
                .err(
                    &p("mh_table_size"),
                    format!(
                        "mh_table_size {m} is not larger than the {} real servers",
                        real_servers.len()
                    ),
                )
                .with_hint(Some(format!(
                    "Maglev needs a prime table size above the number of real servers; \
                     {DEFAULT_MH_TABLE} is the default"
                ))));
        }
    }
    if one_packet {
        if let Some(rs) = real_servers
            .iter()
            .find(|rs| rs.forwarding == Forwarding::FullNat)
        {
            return Err(cx
                .err(
                    &p("one_packet"),
                    format!(
                        "one_packet scheduling cannot be combined with fullnat (real server {})",
                        rs.address
                    ),
                )
                .with_hint(Some(
                    "a reply would carry no trace of its client: use nat, or drop one_packet"
                        .into(),
                )));
        }
    }

    // The SYN proxy answers the handshake itself and must see every reply to splice the two
    // halves: TCP only, and only where replies come back through uvs (NAT, FullNAT).
    // `layer: 7` rides on the SYN proxy: it reads the first request before a server is
    // chosen. Errors then point at `layer` unless `syn_proxy` is written.
    let layer7_on = r.layer == Some(7);
    let syn_proxy = r.syn_proxy.unwrap_or(false) || layer7_on;
    let (sp_field, sp_what) = if r.syn_proxy.is_none() && layer7_on {
        ("layer", "layer 7 (which uses the SYN proxy)")
    } else {
        ("syn_proxy", "syn_proxy")
    };
    if layer7_on && r.syn_proxy == Some(false) {
        return Err(cx
            .err(&p("syn_proxy"), "layer 7 needs the SYN proxy")
            .with_hint(Some("remove `syn_proxy: false`".into())));
    }
    if layer7_on && persistence.is_some() {
        return Err(cx
            .err_key(&p("persistence"), "a layer 7 service has no persistence")
            .with_hint(Some(
                "the first request's content chooses the pool; remove `persistence`".into(),
            )));
    }
    if syn_proxy {
        if key.is_fwmark() || protocol != Protocol::Tcp {
            return Err(cx
                .err(
                    &p(sp_field),
                    format!(
                        "{sp_what} applies only to tcp address services, this service is {}",
                        if key.is_fwmark() {
                            "a firewall-mark service".to_string()
                        } else {
                            protocol.to_string()
                        }
                    ),
                )
                .with_hint(Some("remove `syn_proxy`".into())));
        }
        let bypass = |f: Forwarding| matches!(f, Forwarding::Dr | Forwarding::Tun);
        let what = real_servers
            .iter()
            .find(|rs| bypass(rs.forwarding))
            .map(|rs| (format!("real server {}", rs.address), rs.forwarding))
            .or_else(|| {
                sorry_server
                    .as_ref()
                    .filter(|_| bypass(forwarding))
                    .map(|ss| (format!("sorry server {}", ss.address), forwarding))
            });
        if let Some((who, method)) = what {
            return Err(cx
                .err(
                    &p(sp_field),
                    format!(
                        "{sp_what} needs replies to pass through uvs, but {who} uses {}",
                        method.name()
                    ),
                )
                .with_hint(Some(
                    "use nat or fullnat for every real server, or drop syn_proxy".into(),
                )));
        }
        // The SYN proxy's splice does not translate between families.
        if let Some(rs) = real_servers
            .iter()
            .find(|rs| rs.address.is_ipv4() != vip.is_ipv4())
        {
            return Err(cx
                .err(
                    &p("syn_proxy"),
                    format!(
                        "syn_proxy cannot serve the IPv6 VIP {vip} from the IPv4 real server {} \
                         (NAT64)",
                        rs.address
                    ),
                )
                .with_hint(Some("drop syn_proxy for a NAT64 service".into())));
        }
    }
    // The PROXY header is written by the SYN proxy as the first bytes of the server's half
    // of a spliced connection; without the splice there is no place to put it.
    let proxy_protocol = match r.proxy_protocol.as_deref() {
        None => false,
        Some("v2") if syn_proxy => true,
        Some("v2") => {
            return Err(cx
                .err(
                    &p("proxy_protocol"),
                    "proxy_protocol needs syn_proxy: the header is sent on the server's half \
                     of a connection uvs splices",
                )
                .with_hint(Some(
                    "add `syn_proxy: true` (tcp, nat or fullnat), or look clients up with \
                     `uvs-agent client-of` instead"
                        .into(),
                )));
        }
        Some(other) => {
            return Err(cx
                .err(
                    &p("proxy_protocol"),
                    format!("unknown proxy_protocol version '{other}'"),
                )
                .with_hint(Some(
                    "write `proxy_protocol: v2` (the binary version; v1 is not sent)".into(),
                )));
        }
    };

    // FullNAT's source pool: needed by any fullnat real server, of that server's family.
    let mut fullnat_pool = Vec::new();
    let mut listed = HashSet::new();
    for (j, t) in r.fullnat_pool.iter().flatten().enumerate() {
        let fp = format!("{base}.fullnat_pool[{j}]");
        let ip = cx.addr(&fp, t)?;
        if !listed.insert(ip) {
            return Err(cx.err(&fp, format!("{ip} is listed twice")));
        }
        cx.check_address(links, &fp, Role::Pool, ip)?;
        if !links.on_link(ip) {
            return Err(cx
                .err(
                    &fp,
                    format!("fullnat pool address {ip} is not inside any interface's networks"),
                )
                .with_hint(Some(
                    "real servers reply to it, so uvs answers ARP/NDP for it on a link: \
                     add its prefix to an interface's `networks`"
                        .into(),
                )));
        }
        fullnat_pool.push(ip);
    }
    for (j, rs) in real_servers.iter().enumerate() {
        if rs.forwarding != Forwarding::FullNat {
            continue;
        }
        let rp = format!("{base}.real_servers[{j}]");
        if fullnat_pool.is_empty() {
            // Point at whichever `forwarding: fullnat` the user wrote.
            let fwd = if cx.tree.has(&join(&rp, "forwarding")) {
                join(&rp, "forwarding")
            } else {
                p("forwarding")
            };
            let message = format!(
                "real server {} uses fullnat but the service has no fullnat_pool",
                rs.address
            );
            let hint = format!(
                "add `fullnat_pool: [<{} address owned by uvs>]`: \
                 FullNAT rewrites the client's source to one of them",
                family(rs.address)
            );
            return Err(cx
                .err_at(&fwd, &p("fullnat_pool"), message)
                .with_hint(Some(hint)));
        }
        if let Some(bad) = fullnat_pool
            .iter()
            .position(|a| a.is_ipv4() != rs.address.is_ipv4())
        {
            return Err(cx.err(
                &format!("{base}.fullnat_pool[{bad}]"),
                format!(
                    "fullnat pool address {} is {}, real server {} ({rp}) is {}",
                    fullnat_pool[bad],
                    family(fullnat_pool[bad]),
                    rs.address,
                    family(rs.address)
                ),
            ));
        }
    }

    let layer7 = layer7::layer7(
        cx,
        base,
        layer7::RawLayer7 {
            layer: r.layer,
            pools: r.pools.take(),
            rules: r.rules.take(),
            default_pool: r.default_pool.take(),
            head_limit: r.head_limit.take(),
            head_timeout: r.head_timeout.take(),
        },
        &real_servers,
        port,
        (scheduler, r.scheduler.is_some()),
    )?;

    Ok(Service {
        name,
        vip,
        protocol,
        port,
        fwmark: key.fwmark,
        scheduler,
        scheduler_flags,
        mh_table_size,
        forwarding,
        persistence,
        one_packet,
        syn_proxy,
        proxy_protocol,
        layer7,
        fullnat_pool,
        timeouts,
        sorry_server,
        health_check,
        sites,
        real_servers,
    })
}

/// The dataplane sends to a server through the longest matching network or route; without
/// one it could not build its tables.
pub(super) fn no_route(cx: &Ctx<'_>, path: &str, what: &str, ip: IpAddr) -> crate::ConfigError {
    let default = if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
    cx.err(
        path,
        format!("no route to {what} {ip}: no interface network or route contains it"),
    )
    .with_hint(Some(format!(
        "add its prefix to an interface's `networks`, or a route through a next hop \
         (`routes: [{{ prefix: {default}, via: <gateway> }}]`)"
    )))
}

/// A server on a network of an interface without a `local` address of its family: uvs
/// could never learn its MAC address (ARP requests and neighbour solicitations go out from a
/// local address), so every packet for it would wait and be dropped as unresolved.
pub(super) fn no_source(
    cx: &Ctx<'_>,
    links: &super::Links,
    path: &str,
    what: &str,
    ip: IpAddr,
) -> Result<()> {
    let Some((net, name)) = links.unsourced(ip) else {
        return Ok(());
    };
    let fam = super::family(ip);
    Err(cx
        .err(
            path,
            format!(
                "{what} {ip} is on {net} of interface '{name}', which has no `local` {fam} \
                 address: uvs asks for the server's MAC address ({}) from one, so nothing \
                 would reach it",
                if ip.is_ipv4() { "ARP" } else { "NDP" }
            ),
        )
        .with_hint(Some(format!(
            "add to '{name}' `local` an address of {net} that the host does not use"
        ))))
}

fn persistence(cx: &Ctx<'_>, base: &str, r: RawPersistence, vip: IpAddr) -> Result<Persistence> {
    let timeout = match r.timeout {
        Some(t) => cx.range(
            &join(base, "timeout"),
            t,
            1,
            MAX_TIMEOUT,
            "persistence timeout",
        )? as u32,
        None => DEFAULT_PERSISTENCE,
    };
    let mp = join(base, "netmask");
    let prefix_len = match (r.netmask, vip) {
        (None, vip) => max_len(vip),
        (Some(Netmask::Text(t)), IpAddr::V4(_)) => {
            let len = t.parse::<Ipv4Addr>().ok().and_then(ipv4_mask_len);
            len.ok_or_else(|| {
                cx.err(&mp, format!("'{t}' is not a contiguous IPv4 netmask"))
                    .with_hint(Some("for example 255.255.255.0".into()))
            })?
        }
        (Some(Netmask::Length(n)), IpAddr::V4(_)) => {
            let hint = (n <= 32).then(|| {
                format!(
                    "IPv4 takes a dotted netmask, as ipvsadm -M: write {}",
                    crate::net::ipv4_mask(n as u8)
                )
            });
            return Err(cx
                .err(&mp, format!("netmask {n} for an IPv4 VIP"))
                .with_hint(hint.or(Some("write a dotted netmask like 255.255.255.0".into()))));
        }
        (Some(Netmask::Length(n)), IpAddr::V6(_)) => {
            cx.range(&mp, n, 0, 128, "IPv6 prefix length")? as u8
        }
        (Some(Netmask::Text(t)), IpAddr::V6(_)) => match t.parse::<u64>() {
            Ok(n) => cx.range(&mp, n, 0, 128, "IPv6 prefix length")? as u8,
            Err(_) => {
                return Err(cx
                    .err(&mp, format!("'{t}' is not an IPv6 prefix length"))
                    .with_hint(Some(
                        "IPv6 takes a prefix length, as ipvsadm -M: `netmask: 64`".into(),
                    )))
            }
        },
    };
    if prefix_len == 0 {
        return Err(cx
            .err(&mp, "a zero netmask puts every client on one real server")
            .with_hint(Some("use the fo scheduler for active/backup".into())));
    }
    Ok(Persistence {
        timeout,
        prefix_len,
    })
}

pub(crate) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

fn next_prime(mut n: u64) -> u64 {
    while !is_prime(n) {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let small: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537));
        assert!(is_prime(65521));
        assert!(!is_prime(65536));
        assert_eq!(next_prime(65536), 65537);
        assert_eq!(next_prime(1), 2);
    }
}
