//! Edit commands applied to a [`Config`]: the result is validated exactly as a YAML file is,
//! so a rejected command changes nothing and says why.

use super::parse::{AdminCommand, RealArgs, ServiceArgs};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use uvs_config::{Config, Forwarding, RealServer, Scheduler, Service, ServiceKey};

/// `TCP 198.18.100.1:80`, `UDP [2001:2::1]:53`, `FWM 1`, `FWM 1 IPv6`: a service as
/// ipvsadm names it.
pub fn service_text(k: &ServiceKey) -> String {
    if k.is_fwmark() {
        let v6 = if k.vip.is_ipv6() { " IPv6" } else { "" };
        return format!("FWM {}{v6}", k.fwmark);
    }
    format!(
        "{} {}",
        k.protocol.name().to_ascii_uppercase(),
        SocketAddr::new(k.vip, k.port)
    )
}

/// The configuration `cmd` produces from `cfg`, validated by `uvs_config::load_str_for_host`
/// (through `to_yaml`, the same path as a file) with `host`, the addresses this host holds
/// (`crate::host::host_addresses`, as uvsd's reload passes them; empty where they are not
/// known), so a VIP or real server that is the host's is refused as the file's loader refuses
/// it. Only edit commands (`-A -E -D -a -e -d -C --set -R`) apply; the error names the service
/// or server and the fix, in ipvsadm's words where it has some. A restore's lines apply one
/// after the other and are validated once, together: one bad line and nothing changes.
///
/// An address the host took after the running configuration started using it does not block
/// edits that leave its uses alone (`-d` of that server is then how to take it out); a new use
/// of it is refused.
pub fn apply(cmd: &AdminCommand, cfg: &Config, host: &[IpAddr]) -> Result<Config, String> {
    let mut new = cfg.clone();
    if let AdminCommand::Restore(lines) = cmd {
        for (n, c) in lines {
            edit(c, &mut new, cfg).map_err(|e| format!("line {n}: {e}"))?;
        }
    } else {
        edit(cmd, &mut new, cfg)?;
    }
    match validate(&new, host) {
        Err(_) if !host.is_empty() && check(cfg, host).is_err() => {
            validate(&new, &still_refused(&new, cfg, host))
        }
        done => done,
    }
}

/// When the running `old` already uses addresses of `host` (the host took them since): the
/// host addresses to check `new` against, those less the ones `new` adds no use of.
fn still_refused(new: &Config, old: &Config, host: &[IpAddr]) -> Vec<IpAddr> {
    let before = uses(old);
    let added: Vec<IpAddr> = uses(new)
        .into_iter()
        .filter(|u| !before.contains(u))
        .map(|u| u.2)
        .collect();
    host.iter()
        .copied()
        .filter(|&ip| added.contains(&ip) || check(old, &[ip]).is_ok())
        .collect()
}

/// Where uvsadm can put an address: each service's VIP, real servers and FullNAT pool.
fn uses(cfg: &Config) -> Vec<(ServiceKey, Option<SocketAddr>, IpAddr)> {
    let mut v = Vec::new();
    for s in &cfg.services {
        let k = s.key();
        if !k.is_fwmark() {
            v.push((k, None, s.vip));
        }
        v.extend(s.real_servers.iter().map(|r| (k, Some(r.key()), r.address)));
        v.extend(s.fullnat_pool.iter().map(|&a| (k, None, a)));
    }
    v
}

fn check(cfg: &Config, host: &[IpAddr]) -> Result<Config, uvs_config::ConfigError> {
    uvs_config::load_str_for_host(&uvs_config::to_yaml(cfg), "<admin>", host)
}

/// One edit, unvalidated.
fn edit(cmd: &AdminCommand, new: &mut Config, cfg: &Config) -> Result<(), String> {
    match cmd {
        AdminCommand::AddService(a) => {
            if find(new, &a.key).is_some() {
                return Err(format!(
                    "Service already exists: {} (change it with -E)",
                    service_text(&a.key)
                ));
            }
            new.services.push(new_service(a, cfg));
        }
        AdminCommand::EditService(a) => {
            let i = service_index(new, &a.key)?;
            edit_service(&mut new.services[i], a);
        }
        AdminCommand::DeleteService(key) => {
            let i = service_index(new, key)?;
            new.services.remove(i);
        }
        AdminCommand::AddReal(r) => {
            let i = dest_service_index(new, &r.service)?;
            let svc = &mut new.services[i];
            let r = &ipvsadm_port(r, svc.forwarding);
            let key = SocketAddr::new(r.address, r.port);
            if svc.real_servers.iter().any(|x| x.key() == key) {
                return Err(format!(
                    "Destination already exists: {key} in service {} (change it with -e)",
                    service_text(&r.service)
                ));
            }
            let real = real_server(r, svc.forwarding, None);
            svc.real_servers.push(real);
        }
        AdminCommand::EditReal(r) => {
            let i = dest_service_index(new, &r.service)?;
            let svc = &mut new.services[i];
            let r = &ipvsadm_port(r, svc.forwarding);
            let j = real_index(svc, r.address, r.port)?;
            let old = svc.real_servers[j];
            // ipvsadm has no flag for a geo site: -e keeps the one the YAML gave.
            svc.real_servers[j] = RealServer {
                site: old.site,
                ..real_server(r, svc.forwarding, Some(&old))
            };
        }
        AdminCommand::DeleteReal { service, real } => {
            let i = dest_service_index(new, service)?;
            let svc = &mut new.services[i];
            let j = real_index(svc, real.0, real.1)?;
            svc.real_servers.remove(j);
        }
        AdminCommand::Drain(d) => {
            // Weight 0 alone: IPVS's quiescing (`ipvsadm -e -w 0` without its resets).
            let i = service_index(new, &d.service)?;
            let svc = &mut new.services[i];
            let j = real_index(svc, d.real.0, d.real.1)?;
            svc.real_servers[j].weight = 0;
        }
        AdminCommand::Clear => new.services.clear(),
        AdminCommand::SetTimeouts { tcp, tcpfin, udp } => set_timeouts(new, *tcp, *tcpfin, *udp),
        other => {
            return Err(format!(
                "{other:?} does not change the configuration (internal: not an edit command)"
            ))
        }
    }
    Ok(())
}

/// `--set`: IPVS's timeouts are global, so the global ones change, and with them every
/// service's that follows the global value; a service's own override (`timeouts:` in its YAML)
/// stays. 0 leaves a timeout unchanged.
fn set_timeouts(cfg: &mut Config, tcp: u32, tcpfin: u32, udp: u32) {
    let old = cfg.timeouts;
    let set = |field: &mut u32, global: u32, value: u32| {
        if value != 0 && *field == global {
            *field = value;
        }
    };
    for s in &mut cfg.services {
        set(&mut s.timeouts.tcp_established, old.tcp_established, tcp);
        set(&mut s.timeouts.tcp_fin_wait, old.tcp_fin_wait, tcpfin);
        set(&mut s.timeouts.udp, old.udp, udp);
    }
    let g = &mut cfg.timeouts;
    set(&mut g.tcp_established, old.tcp_established, tcp);
    set(&mut g.tcp_fin_wait, old.tcp_fin_wait, tcpfin);
    set(&mut g.udp, old.udp, udp);
}

fn find(cfg: &Config, key: &ServiceKey) -> Option<usize> {
    cfg.services.iter().position(|s| s.key() == *key)
}

/// The service `key`, or ipvsadm's "No such service" (its message first: scripts look for
/// it).
fn service_index(cfg: &Config, key: &ServiceKey) -> Result<usize, String> {
    find(cfg, key).ok_or_else(|| no_such_service("No such service", key))
}

/// The service of `-a`, `-e`, `-d`: ipvsadm says "Service not defined" for those.
fn dest_service_index(cfg: &Config, key: &ServiceKey) -> Result<usize, String> {
    find(cfg, key).ok_or_else(|| no_such_service("Service not defined", key))
}

/// ipvsadm's `message` about the service `key`, and how to find the services.
pub(super) fn no_such_service(message: &str, key: &ServiceKey) -> String {
    format!(
        "{message}: {} (`uvsadm -L -n` lists the services{})",
        service_text(key),
        if key.is_fwmark() {
            "; a firewall-mark service is -f MARK, with -6 for IPv6"
        } else {
            ""
        }
    )
}

fn real_index(svc: &Service, address: IpAddr, port: u16) -> Result<usize, String> {
    let key = SocketAddr::new(address, port);
    svc.real_servers
        .iter()
        .position(|r| r.key() == key)
        .ok_or_else(|| {
            format!(
                "No such destination: {key} in service {} (`uvsadm -L -n {}` lists its servers)",
                service_text(&svc.key()),
                service_option(&svc.key())
            )
        })
}

/// `-t 198.18.100.1:80`, `-f 1 -6`: the option naming a service.
pub(super) fn service_option(k: &ServiceKey) -> String {
    if k.is_fwmark() {
        let v6 = if k.vip.is_ipv6() { " -6" } else { "" };
        return format!("-f {}{v6}", k.fwmark);
    }
    let opt = match k.protocol {
        uvs_config::Protocol::Tcp => "-t",
        uvs_config::Protocol::Udp => "-u",
        uvs_config::Protocol::Sctp => "--sctp-service",
    };
    format!("{opt} {}", SocketAddr::new(k.vip, k.port))
}

/// `-A`: what ipvsadm would create; settings ipvsadm has no flag for take the YAML defaults
/// (no health check, the global timeouts, direct routing as the servers' default method).
fn new_service(a: &ServiceArgs, cfg: &Config) -> Service {
    Service {
        name: a.key.to_string(),
        vip: a.key.vip,
        protocol: a.key.protocol,
        port: a.key.port,
        fwmark: a.key.fwmark,
        scheduler: a.scheduler,
        scheduler_flags: a.flags.clone(),
        mh_table_size: None,
        forwarding: Forwarding::Dr,
        persistence: a.persistence,
        one_packet: a.one_packet,
        syn_proxy: false,
        proxy_protocol: false,
        layer7: None,
        fullnat_pool: a.fullnat_pool.clone().unwrap_or_default(),
        timeouts: cfg.timeouts,
        sorry_server: None,
        health_check: None,
        sites: Vec::new(),
        real_servers: Vec::new(),
    }
}

/// `-E`: replaces what ipvsadm's -E sets (scheduler, flags, persistence, one-packet) and keeps
/// what only the YAML can say (name, health check, timeouts, sorry server, real servers, and
/// the FullNAT pool unless `--fullnat-pool` is given).
fn edit_service(svc: &mut Service, a: &ServiceArgs) {
    svc.scheduler = a.scheduler;
    svc.scheduler_flags = a.flags.clone();
    if a.scheduler != Scheduler::MaglevHashing {
        svc.mh_table_size = None;
    }
    svc.persistence = a.persistence;
    svc.one_packet = a.one_packet;
    if let Some(pool) = &a.fullnat_pool {
        svc.fullnat_pool = pool.clone();
    }
}

/// ipvsadm's rule for `-a` and `-e`: a direct-routing or tunnelled real server of an
/// address service has the service's port, whatever `-r` said (ipvsadm.c sets
/// `dest.port = svc.port` for IP_VS_CONN_F_DROUTE and IP_VS_CONN_F_TUNNEL unless the service
/// is a firewall mark): IPVS forwards those packets to the VIP's port unchanged. Scripts and
/// `ipvsadm -S` files written that way then work as with ipvsadm, where the YAML, which
/// says what happens, refuses such a port.
fn ipvsadm_port(r: &RealArgs, default_fwd: Forwarding) -> RealArgs {
    let mut r = r.clone();
    if r.service.fwmark == 0
        && matches!(
            r.forwarding.unwrap_or(default_fwd),
            Forwarding::Dr | Forwarding::Tun
        )
    {
        r.port = r.service.port;
    }
    r
}

fn real_server(r: &RealArgs, default_fwd: Forwarding, old: Option<&RealServer>) -> RealServer {
    let forwarding = r.forwarding.unwrap_or(default_fwd);
    let (tunnel, tun_port, tun_csum) = r.tunnel.resolve(forwarding, old);
    RealServer {
        address: r.address,
        port: r.port,
        weight: r.weight,
        forwarding,
        upper_threshold: r.upper_threshold,
        lower_threshold: r.lower_threshold,
        tunnel,
        tun_port,
        tun_csum,
        site: None,
    }
}

/// Round trip through YAML: the edited configuration must pass every check a file does on
/// this host.
fn validate(new: &Config, host: &[IpAddr]) -> Result<Config, String> {
    check(new, host).map_err(|e| {
        let mut msg = format!("rejected, nothing changed: {}", located(&e.path, new));
        if !msg.ends_with(' ') {
            msg.push_str(": ");
        }
        msg.push_str(&e.message);
        if let Some(h) = &e.hint {
            let _ = write!(msg, " — {h}");
        }
        // The hints speak YAML; say the uvsadm spelling too where there is one.
        if e.path.ends_with("fullnat_pool") || e.message.contains("fullnat_pool") {
            msg.push_str(" (uvsadm: -E -t VIP:PORT ... --fullnat-pool ADDR[,ADDR...])");
        }
        msg
    })
}

/// `services[1].real_servers[0].port` → `service TCP 198.18.100.1:80, real server
/// 198.18.1.11:80, port`: the YAML path of the generated file means nothing to an uvsadm user.
fn located(path: &str, cfg: &Config) -> String {
    let Some(rest) = path.strip_prefix("services[") else {
        return path.to_string();
    };
    let Some((index, rest)) = rest.split_once(']') else {
        return path.to_string();
    };
    let Some(svc) = index
        .parse::<usize>()
        .ok()
        .and_then(|i| cfg.services.get(i))
    else {
        return path.to_string();
    };
    let mut out = format!("service {}", service_text(&svc.key()));
    let mut rest = rest.strip_prefix('.').unwrap_or(rest);
    if let Some(r) = rest.strip_prefix("real_servers[") {
        if let Some((j, after)) = r.split_once(']') {
            if let Some(real) = j
                .parse::<usize>()
                .ok()
                .and_then(|j| svc.real_servers.get(j))
            {
                let _ = write!(out, ", real server {}", real.key());
                rest = after.strip_prefix('.').unwrap_or(after);
            }
        }
    }
    if !rest.is_empty() {
        let _ = write!(out, ", {rest}");
    }
    out
}
