//! Validated [`Config`] → YAML (`uvsadm save`).
//!
//! The output follows the input schema and leaves out what equals its default (a real server's
//! port when it is the service port, a service's timeouts when they are the global ones, …),
//! so a saved file reads like one written by hand. Loading it gives back an equal `Config`.

use crate::model::{
    Announce, Cluster, Config, HealthCheck, HealthCheckKind, HttpUrl, Interface, Mark, Match,
    Protocol, RealServer, Rule, Service, Timeouts, TunCsum, Tunnel, XdpMode, ZeroCopy,
};
use crate::net::{ipv4_mask, max_len};
use crate::raw::{
    Netmask, RawAdmin, RawAnnounce, RawCluster, RawClusterGroup, RawConfig, RawConnTable,
    RawHealthCheck, RawHttpUrl, RawInterface, RawMark, RawMetrics, RawNameValue, RawPersistence,
    RawPool, RawPorts, RawRealServer, RawRoute, RawRule, RawService, RawSite, RawSorryServer,
    RawStatus, RawTimeouts, RawWorkers,
};
use std::time::Duration;

/// The configuration as YAML; `load_str(&to_yaml(c), _) == Ok(c)`.
pub fn to_yaml(config: &Config) -> String {
    let raw = RawConfig {
        interfaces: Some(config.interfaces.iter().map(interface).collect()),
        workers: Some(RawWorkers {
            count: Some(config.workers.count as u64),
            cores: config
                .workers
                .cores
                .as_ref()
                .map(|c| c.iter().map(|&c| c as u64).collect()),
            busy_poll: Some(config.workers.busy_poll),
            spin_us: Some(u64::from(config.workers.spin_us)),
            flow_cache: Some(config.workers.flow_cache),
            kernel_fast_path: Some(config.workers.kernel_fast_path),
        }),
        conn_table: Some(RawConnTable {
            capacity: Some(u64::from(config.conn_table.capacity)),
        }),
        timeouts: timeouts(&config.timeouts, &Timeouts::default()),
        expire_nodest_conn: Some(config.expire_nodest_conn),
        conn_reuse_mode: Some(u64::from(config.conn_reuse_mode)),
        expire_quiescent_template: Some(config.expire_quiescent_template),
        drop_entry: Some(config.drop_entry),
        admin: Some(RawAdmin {
            socket: Some(config.admin.socket.to_string_lossy().into_owned()),
            group: config.admin.group.clone(),
        }),
        metrics: config.metrics.listen.map(|l| RawMetrics {
            listen: Some(l.to_string()),
        }),
        marks: non_empty(config.marks.iter().map(mark).collect()),
        sync: config.sync.as_ref().map(|s| crate::raw::RawSync {
            mode: Some(s.mode.name().to_string()),
            interface: Some(s.interface.clone()),
            syncid: Some(u64::from(s.syncid)),
            group: Some(s.group.to_string()),
            port: Some(u64::from(s.port)),
            ttl: Some(u64::from(s.ttl)),
            maxlen: s.maxlen.map(u64::from),
            peers: (!s.peers.is_empty()).then(|| s.peers.iter().map(|p| p.to_string()).collect()),
            auth_key: s.auth_key.clone(),
            refresh_period: Some(u64::from(s.refresh_period)),
            max_rate: Some(u64::from(s.max_rate)),
        }),
        client_lookup: config
            .client_lookup
            .as_ref()
            .map(|l| crate::raw::RawClientLookup {
                listen: Some(l.listen.to_string()),
                auth_key: Some(l.auth_key.clone()),
            }),
        bgp: config.bgp.as_ref().map(|b| crate::raw::RawBgp {
            include: Some(b.include.to_string_lossy().into_owned()),
            socket: Some(b.socket.to_string_lossy().into_owned()),
            withdraw_when: Some(b.withdraw_when.name().to_string()),
            drain_timeout: Some(u64::from(b.drain_timeout)),
            stop_delay: Some(u64::from(b.stop_delay)),
        }),
        services: Some(
            config
                .services
                .iter()
                .map(|s| service(s, &config.timeouts))
                .collect(),
        ),
        cluster: cluster(&config.cluster),
        member: config.member.as_ref().map(|m| crate::raw::RawMember {
            interface: Some(m.interface.clone()),
            vip: Some(m.vip.to_string()),
            protocol: Some(m.protocol.name().to_string()),
            ports: non_empty(m.ports.iter().map(|&p| u64::from(p)).collect()),
            members: Some(m.members.iter().map(|a| a.to_string()).collect()),
            me: Some(m.members[m.me].to_string()),
            cluster_mac: Some(crate::validate::mac_text(&m.cluster_mac)),
            hash: Some(m.hash.name().to_string()),
            table_size: Some(u64::from(m.table_size)),
            health_check: Some(health_check(&m.health_check)),
            heartbeat_port: Some(u64::from(m.heartbeat_port)),
        }),
    };
    // Serialising plain structs of strings, numbers and lists cannot fail.
    yaml_serde::to_string(&raw).expect("RawConfig serialises")
}

/// `None` when there are no groups and the announcements are the defaults.
fn cluster(c: &Cluster) -> Option<RawCluster> {
    let d = Announce::default();
    let announce = (c.announce != d).then(|| RawAnnounce {
        count: (c.announce.count != d.count).then_some(u64::from(c.announce.count)),
        interval: (c.announce.interval != d.interval).then(|| secs(c.announce.interval)),
    });
    if announce.is_none() && c.groups.is_empty() {
        return None;
    }
    Some(RawCluster {
        announce,
        groups: non_empty(
            c.groups
                .iter()
                .map(|g| RawClusterGroup {
                    name: Some(g.name.clone()),
                    vips: Some(g.vips.iter().map(|a| a.to_string()).collect()),
                    role: Some(g.role.name().to_string()),
                    interfaces: non_empty(g.interfaces.clone()),
                })
                .collect(),
        ),
    })
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn interface(i: &Interface) -> RawInterface {
    RawInterface {
        name: Some(i.name.clone()),
        queues: (i.queues != 1).then_some(u64::from(i.queues)),
        xdp_mode: (i.xdp_mode != XdpMode::Auto).then(|| i.xdp_mode.name().to_string()),
        zero_copy: (i.zero_copy != ZeroCopy::Auto).then(|| i.zero_copy.name().to_string()),
        ring_size: (u64::from(i.ring_size) != crate::validate::DEFAULT_RING_SIZE)
            .then_some(u64::from(i.ring_size)),
        local: non_empty(i.local.iter().map(|a| a.to_string()).collect()),
        networks: non_empty(i.networks.iter().map(|n| n.to_string()).collect()),
        routes: non_empty(
            i.routes
                .iter()
                .map(|r| RawRoute {
                    prefix: Some(r.prefix.to_string()),
                    via: Some(r.via.to_string()),
                })
                .collect(),
        ),
    }
}

/// Only the fields that differ from `base`; `None` if none do.
fn timeouts(t: &Timeouts, base: &Timeouts) -> Option<RawTimeouts> {
    let d = |v: u32, b: u32| (v != b).then_some(u64::from(v));
    let raw = RawTimeouts {
        tcp_established: d(t.tcp_established, base.tcp_established),
        tcp_syn_sent: d(t.tcp_syn_sent, base.tcp_syn_sent),
        tcp_syn_recv: d(t.tcp_syn_recv, base.tcp_syn_recv),
        tcp_fin_wait: d(t.tcp_fin_wait, base.tcp_fin_wait),
        tcp_time_wait: d(t.tcp_time_wait, base.tcp_time_wait),
        tcp_close: d(t.tcp_close, base.tcp_close),
        tcp_close_wait: d(t.tcp_close_wait, base.tcp_close_wait),
        tcp_last_ack: d(t.tcp_last_ack, base.tcp_last_ack),
        udp: d(t.udp, base.udp),
        icmp: d(t.icmp, base.icmp),
        sctp: d(t.sctp, base.sctp),
        sctp_init1: d(t.sctp_init1, base.sctp_init1),
        sctp_init: d(t.sctp_init, base.sctp_init),
        sctp_cookie_sent: d(t.sctp_cookie_sent, base.sctp_cookie_sent),
        sctp_cookie_replied: d(t.sctp_cookie_replied, base.sctp_cookie_replied),
        sctp_cookie_wait: d(t.sctp_cookie_wait, base.sctp_cookie_wait),
        sctp_cookie: d(t.sctp_cookie, base.sctp_cookie),
        sctp_cookie_echoed: d(t.sctp_cookie_echoed, base.sctp_cookie_echoed),
        sctp_shutdown_sent: d(t.sctp_shutdown_sent, base.sctp_shutdown_sent),
        sctp_shutdown_received: d(t.sctp_shutdown_received, base.sctp_shutdown_received),
        sctp_shutdown_ack_sent: d(t.sctp_shutdown_ack_sent, base.sctp_shutdown_ack_sent),
        sctp_rejected: d(t.sctp_rejected, base.sctp_rejected),
        sctp_closed: d(t.sctp_closed, base.sctp_closed),
    };
    (raw != RawTimeouts::default()).then_some(raw)
}

fn mark(m: &Mark) -> RawMark {
    RawMark {
        mark: Some(u64::from(m.mark)),
        name: (m.name != format!("fwmark {}", m.mark)).then(|| m.name.clone()),
        destinations: Some(m.destinations.iter().map(|d| d.to_string()).collect()),
        protocols: (m.protocols != Protocol::ALL)
            .then(|| m.protocols.iter().map(|p| p.name().to_string()).collect()),
        ports: non_empty(
            m.ports
                .iter()
                .map(|r| {
                    if r.first == r.last {
                        RawPorts::One(u64::from(r.first))
                    } else {
                        RawPorts::Text(r.to_string())
                    }
                })
                .collect(),
        ),
    }
}

fn layer7_rule(r: &Rule, pool: &str) -> RawRule {
    let nv = |name: &str, value: &str| {
        Some(RawNameValue {
            name: Some(name.to_string()),
            value: Some(value.to_string()),
        })
    };
    let mut raw = RawRule {
        pool: Some(pool.to_string()),
        ..RawRule::default()
    };
    for m in &r.matches {
        match m {
            Match::Host(h) => raw.host = Some(h.clone()),
            Match::PathPrefix(p) => raw.path_prefix = Some(p.clone()),
            Match::Header { name, value } => raw.header = nv(name, value),
            Match::Cookie { name, value } => raw.cookie = nv(name, value),
            Match::Sni(h) => raw.sni = Some(h.clone()),
        }
    }
    raw
}

fn service(s: &Service, global: &Timeouts) -> RawService {
    let mark = s.fwmark != 0;
    RawService {
        name: (s.name != s.key().to_string()).then(|| s.name.clone()),
        vip: (!mark).then(|| s.vip.to_string()),
        protocol: (!mark).then(|| s.protocol.name().to_string()),
        port: (!mark).then_some(u64::from(s.port)),
        fwmark: mark.then_some(u64::from(s.fwmark)),
        family: (mark && s.vip.is_ipv6()).then(|| "ipv6".to_string()),
        scheduler: Some(s.scheduler.name().to_string()),
        scheduler_flags: non_empty(
            s.scheduler_flags
                .iter()
                .map(|f| f.name().to_string())
                .collect(),
        ),
        mh_table_size: s.mh_table_size.map(u64::from),
        forwarding: Some(s.forwarding.name().to_string()),
        persistence: s.persistence.map(|p| RawPersistence {
            timeout: Some(u64::from(p.timeout)),
            netmask: (p.prefix_len != max_len(s.vip)).then(|| {
                if s.vip.is_ipv4() {
                    Netmask::Text(ipv4_mask(p.prefix_len).to_string())
                } else {
                    Netmask::Length(u64::from(p.prefix_len))
                }
            }),
        }),
        one_packet: s.one_packet.then_some(true),
        syn_proxy: s.syn_proxy.then_some(true),
        proxy_protocol: s.proxy_protocol.then(|| "v2".to_string()),
        layer: s.layer7.as_ref().map(|_| 7),
        pools: s.layer7.as_ref().map(|l| {
            l.pools
                .iter()
                .map(|p| RawPool {
                    name: Some(p.name.clone()),
                    scheduler: Some(p.scheduler.to_string()),
                    real_servers: Some(p.members.iter().map(|a| a.to_string()).collect()),
                    health_check: p.health_check.as_ref().map(health_check),
                })
                .collect()
        }),
        rules: s.layer7.as_ref().map(|l| {
            l.rules
                .iter()
                .map(|r| layer7_rule(r, &l.pools[r.pool].name))
                .collect()
        }),
        default_pool: s
            .layer7
            .as_ref()
            .map(|l| l.pools[l.default_pool].name.clone()),
        head_limit: s
            .layer7
            .as_ref()
            .filter(|l| l.head_limit != crate::model::DEFAULT_HEAD_LIMIT)
            .map(|l| u64::from(l.head_limit)),
        head_timeout: s
            .layer7
            .as_ref()
            .filter(|l| l.head_timeout != crate::model::DEFAULT_HEAD_TIMEOUT)
            .map(|l| u64::from(l.head_timeout)),
        fullnat_pool: non_empty(s.fullnat_pool.iter().map(|a| a.to_string()).collect()),
        timeouts: timeouts(&s.timeouts, global),
        sorry_server: s.sorry_server.map(|ss| RawSorryServer {
            address: Some(ss.address.to_string()),
            port: Some(u64::from(ss.port)),
        }),
        health_check: s.health_check.as_ref().map(health_check),
        sites: non_empty(
            s.sites
                .iter()
                .map(|site| RawSite {
                    name: Some(site.name.clone()),
                    clients: non_empty(site.clients.iter().map(|c| c.to_string()).collect()),
                })
                .collect(),
        ),
        real_servers: non_empty(s.real_servers.iter().map(|r| real(r, s)).collect()),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

fn health_check(h: &HealthCheck) -> RawHealthCheck {
    let mut raw = RawHealthCheck {
        kind: Some(h.kind.type_name().to_string()),
        interval: Some(secs(h.interval)),
        timeout: Some(secs(h.timeout)),
        rise: Some(u64::from(h.rise)),
        fall: Some(u64::from(h.fall)),
        port: h.port.map(u64::from),
        start_down: h.start_down.then_some(true),
        ..RawHealthCheck::default()
    };
    match &h.kind {
        HealthCheckKind::Tcp => {}
        HealthCheckKind::Http { urls, host } => {
            save_urls(&mut raw, urls);
            raw.host = host.clone();
        }
        HealthCheckKind::Https {
            urls,
            sni,
            verify,
            ca_file,
        } => {
            save_urls(&mut raw, urls);
            raw.sni = sni.clone();
            raw.verify = Some(*verify);
            raw.ca_file = ca_file.clone();
        }
        HealthCheckKind::Command { command, user } => {
            raw.command = Some(command.clone());
            raw.user = user.clone();
        }
        HealthCheckKind::Agent { send } => raw.send = send.clone(),
    }
    raw
}

/// One url in the check's own fields, several under `urls`.
fn save_urls(raw: &mut RawHealthCheck, urls: &[HttpUrl]) {
    let url = |u: &HttpUrl| RawHttpUrl {
        path: Some(u.path.clone()),
        expect_status: Some(match u.expect_status.single() {
            Some(code) => RawStatus::One(u64::from(code)),
            None => RawStatus::Text(u.expect_status.to_string()),
        }),
        expect_body: u.expect_body.clone(),
        expect_digest: u.expect_digest.clone(),
    };
    match urls {
        [one] => {
            let u = url(one);
            raw.path = u.path;
            raw.expect_status = u.expect_status;
            raw.expect_body = u.expect_body;
            raw.expect_digest = u.expect_digest;
        }
        several => raw.urls = Some(several.iter().map(url).collect()),
    }
}

fn real(r: &RealServer, s: &Service) -> RawRealServer {
    let (service_port, service_fwd) = (s.port, s.forwarding);
    RawRealServer {
        address: Some(r.address.to_string()),
        port: (r.port != service_port).then_some(u64::from(r.port)),
        weight: (r.weight != 1).then_some(u64::from(r.weight)),
        forwarding: (r.forwarding != service_fwd).then(|| r.forwarding.name().to_string()),
        upper_threshold: (r.upper_threshold != 0).then_some(u64::from(r.upper_threshold)),
        lower_threshold: (r.lower_threshold != 0).then_some(u64::from(r.lower_threshold)),
        tunnel: r
            .tunnel
            .filter(|&t| t != Tunnel::Ipip)
            .map(|t| t.name().to_string()),
        tun_port: r.tun_port.map(u64::from),
        tun_csum: (r.tun_csum != TunCsum::None).then(|| r.tun_csum.name().to_string()),
        site: r
            .site
            .and_then(|i| s.sites.get(usize::from(i)))
            .map(|site| site.name.clone()),
    }
}
