//! From the validated configuration to what the dataplane is built from: interfaces (with
//! the MAC and MTU the system reports), routes, and services with their real servers.

use std::net::IpAddr;
use std::path::Path;
use uvs_dataplane::synproxy::layer7::{L7Match, Layer7Spec, PoolSpec, RuleSpec};

use uvs_config::{Config, Forwarding, Protocol, SchedulerFlag, TunCsum, Tunnel};
use uvs_conntrack::Timeouts;
use uvs_dataplane::tables::{MarkSpec, Persistence, RealSpec, ServiceKey, ServiceSpec, TablesSpec};
use uvs_dataplane::{IfaceRt, IpKey, Method, Route, TunEncap};
use uvs_sched::{SchedConfig, SchedFlags, SchedulerKind, SitePrefix};

/// An interface as the system reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub mac: [u8; 6],
    pub mtu: u16,
}

/// Reads MAC and MTU from sysfs. The error is one sentence with the fix.
pub fn link_info(ifname: &str) -> Result<LinkInfo, String> {
    let base = Path::new("/sys/class/net").join(ifname);
    if !base.exists() {
        return Err(format!(
            "no such interface '{ifname}' (in this network namespace); `ip link show` lists the ones there are"
        ));
    }
    let read = |f: &str| {
        std::fs::read_to_string(base.join(f))
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read {}/{f}: {e}", base.display()))
    };
    let mac_s = read("address")?;
    let mut mac = [0u8; 6];
    let parts: Vec<_> = mac_s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!(
            "interface '{ifname}' has no Ethernet address ({mac_s})"
        ));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16)
            .map_err(|_| format!("interface '{ifname}': bad MAC {mac_s}"))?;
    }
    let mtu = read("mtu")?
        .parse::<u32>()
        .map_err(|_| format!("interface '{ifname}': unreadable MTU"))?;
    Ok(LinkInfo {
        mac,
        mtu: mtu.min(u32::from(u16::MAX)) as u16,
    })
}

fn method(f: Forwarding) -> Method {
    match f {
        Forwarding::Nat => Method::Nat,
        Forwarding::Dr => Method::Dr,
        Forwarding::Tun => Method::Tun,
        Forwarding::FullNat => Method::FullNat,
    }
}

/// A real server's TUN encapsulation. `remcsum` sends a computed UDP checksum: IPVS adds the
/// remote-checksum option only to packets whose inner checksum is still partial, and uvs
/// completes those before it forwards.
fn tun_encap(r: &uvs_config::RealServer) -> TunEncap {
    let checksum = r.tun_csum != TunCsum::None;
    match r.tunnel {
        Some(Tunnel::Gue) => TunEncap::Gue {
            port: r.tun_port.unwrap_or(0),
            checksum,
            remcsum: r.tun_csum == TunCsum::Remcsum,
        },
        Some(Tunnel::Gre) => TunEncap::Gre { checksum },
        Some(Tunnel::Ipip) | None => TunEncap::Ipip,
    }
}

pub fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => uvs_wire::ip_proto::TCP,
        Protocol::Udp => uvs_wire::ip_proto::UDP,
        Protocol::Sctp => uvs_wire::ip_proto::SCTP,
    }
}

/// The dataplane's key of a configured service (a firewall-mark service's holds its mark).
pub fn service_key(k: &uvs_config::ServiceKey) -> ServiceKey {
    if k.is_fwmark() {
        return ServiceKey::mark(k.fwmark, k.vip.is_ipv6());
    }
    ServiceKey {
        vip: IpKey::from_ip(k.vip),
        proto: proto_number(k.protocol),
        port: k.port,
    }
}

/// The dataplane's form of a firewall mark's match.
pub fn mark_spec(m: &uvs_config::Mark) -> MarkSpec {
    MarkSpec {
        mark: m.mark,
        destinations: m
            .destinations
            .iter()
            .map(|d| (IpKey::from_ip(d.addr()), d.len()))
            .collect(),
        protos: m.protocols.iter().map(|p| proto_number(*p)).collect(),
        ports: m.ports.iter().map(|r| (r.first, r.last)).collect(),
    }
}

/// The YAML's seconds as the connection table's millisecond ticks.
pub fn timeouts(t: &uvs_config::Timeouts) -> Timeouts {
    use uvs_conntrack::tcp::TcpState as S;
    let ms = |s: u32| s.saturating_mul(1000);
    let mut out = Timeouts::default();
    for (state, secs) in [
        (S::Established, t.tcp_established),
        (S::SynSent, t.tcp_syn_sent),
        (S::SynRecv, t.tcp_syn_recv),
        (S::FinWait, t.tcp_fin_wait),
        (S::TimeWait, t.tcp_time_wait),
        (S::Close, t.tcp_close),
        (S::CloseWait, t.tcp_close_wait),
        (S::LastAck, t.tcp_last_ack),
    ] {
        out.tcp[state as usize] = ms(secs);
    }
    out.udp = ms(t.udp);
    out.icmp = ms(t.icmp);
    // IPVS's SCTP state numbering (IP_VS_SCTP_S_*): NONE 0 keeps its 2 s.
    for (state, secs) in [
        (1, t.sctp_init1),
        (2, t.sctp_init),
        (3, t.sctp_cookie_sent),
        (4, t.sctp_cookie_replied),
        (5, t.sctp_cookie_wait),
        (6, t.sctp_cookie),
        (7, t.sctp_cookie_echoed),
        (8, t.sctp),
        (9, t.sctp_shutdown_sent),
        (10, t.sctp_shutdown_received),
        (11, t.sctp_shutdown_ack_sent),
        (12, t.sctp_rejected),
        (13, t.sctp_closed),
    ] {
        out.sctp[state] = ms(secs);
    }
    out
}

/// A `layer: 7` service's pools and rules for the dataplane.
fn layer7_spec(l: &uvs_config::Layer7) -> Layer7Spec {
    use uvs_config::Match;
    Layer7Spec {
        pools: l
            .pools
            .iter()
            .map(|p| PoolSpec {
                name: p.name.clone(),
                sched: SchedConfig::new(
                    SchedulerKind::from_name(p.scheduler.name())
                        .expect("config and sched list the same scheduler names"),
                ),
                members: p.members.iter().map(|a| IpKey::from_ip(*a)).collect(),
                // Filled from the pools' health checks (`crate::poolhealth`).
                down: Vec::new(),
            })
            .collect(),
        rules: l
            .rules
            .iter()
            .map(|r| RuleSpec {
                all: r
                    .matches
                    .iter()
                    .map(|m| match m {
                        Match::Host(h) => L7Match::Host(h.clone()),
                        Match::PathPrefix(p) => L7Match::PathPrefix(p.clone()),
                        Match::Header { name, value } => L7Match::Header {
                            name: name.clone(),
                            value: value.clone(),
                        },
                        Match::Cookie { name, value } => L7Match::Cookie {
                            name: name.clone(),
                            value: value.clone(),
                        },
                        Match::Sni(h) => L7Match::Sni(h.clone()),
                    })
                    .collect(),
                pool: r.pool,
            })
            .collect(),
        default_pool: l.default_pool,
        head_limit: l.head_limit,
        head_timeout_s: l.head_timeout,
    }
}

/// Builds the dataplane's spec. `links` gives MAC/MTU per interface (same order as the
/// config's); `None` (for `--check-config`) uses placeholders.
pub fn tables_spec(cfg: &Config, links: Option<&[LinkInfo]>) -> TablesSpec {
    let mut ifaces = Vec::new();
    let mut routes = Vec::new();
    for (i, ifc) in cfg.interfaces.iter().enumerate() {
        let link = links.and_then(|l| l.get(i)).copied().unwrap_or(LinkInfo {
            mac: [0; 6],
            mtu: 1500,
        });
        let local4 = ifc.local.iter().find_map(|a| match a {
            IpAddr::V4(v) => Some(v.octets()),
            _ => None,
        });
        let local6 = ifc.local.iter().find_map(|a| match a {
            IpAddr::V6(v) => Some(v.octets()),
            _ => None,
        });
        ifaces.push(IfaceRt {
            name: ifc.name.clone(),
            mac: link.mac,
            mtu: link.mtu,
            local4,
            local6,
        });
        for n in &ifc.networks {
            routes.push(Route {
                prefix: IpKey::from_ip(n.addr()),
                len: n.len(),
                port: i as u8,
                via: None,
            });
        }
        for r in &ifc.routes {
            routes.push(Route {
                prefix: IpKey::from_ip(r.prefix.addr()),
                len: r.prefix.len(),
                port: i as u8,
                via: Some(IpKey::from_ip(r.via)),
            });
        }
    }
    let services =
        cfg.services
            .iter()
            .map(|s| {
                let kind = SchedulerKind::from_name(s.scheduler.name())
                    .expect("config and sched list the same scheduler names");
                let flags = SchedFlags {
                    fallback: s.scheduler_flags.iter().any(|f| {
                        matches!(f, SchedulerFlag::ShFallback | SchedulerFlag::MhFallback)
                    }),
                    port: s
                        .scheduler_flags
                        .iter()
                        .any(|f| matches!(f, SchedulerFlag::ShPort | SchedulerFlag::MhPort)),
                };
                let mut sched = SchedConfig::new(kind).with_flags(flags);
                if let Some(m) = s.mh_table_size {
                    sched.mh_table_size = m;
                }
                // geo: site ids are indices into the service's `sites` (validation caps
                // their number well below u16::MAX), the same ids real servers carry.
                sched.sites = s
                    .sites
                    .iter()
                    .enumerate()
                    .flat_map(|(id, site)| {
                        site.clients
                            .iter()
                            .map(move |c| SitePrefix::new(c.addr(), c.len(), id as u16))
                    })
                    .collect();
                ServiceSpec {
                    key: service_key(&s.key()),
                    name: s.name.clone(),
                    sched,
                    reals: s
                        .real_servers
                        .iter()
                        .map(|r| RealSpec {
                            addr: IpKey::from_ip(r.address),
                            port: r.port,
                            method: method(r.forwarding),
                            tun: tun_encap(r),
                            weight: u32::from(r.weight),
                            upper_threshold: r.upper_threshold,
                            lower_threshold: r.lower_threshold,
                            site: r.site.unwrap_or(0),
                        })
                        .collect(),
                    persistence: s.persistence.map(|p| Persistence {
                        timeout_s: p.timeout,
                        prefix_len: p.prefix_len,
                    }),
                    one_packet: s.one_packet,
                    syn_proxy: s.syn_proxy,
                    proxy_protocol: s.proxy_protocol,
                    layer7: s.layer7.as_ref().map(layer7_spec),
                    timeouts: timeouts(&s.timeouts),
                    fullnat_pool: s.fullnat_pool.iter().map(|a| IpKey::from_ip(*a)).collect(),
                    sorry: s.sorry_server.map(|o| RealSpec {
                        addr: IpKey::from_ip(o.address),
                        port: o.port,
                        method: method(s.forwarding),
                        tun: TunEncap::Ipip,
                        weight: 1,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        site: 0,
                    }),
                }
            })
            .collect();
    TablesSpec {
        ifaces,
        routes,
        services,
        marks: cfg.marks.iter().map(mark_spec).collect(),
        workers: cfg.workers.count.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The YAML's SCTP fields land in IPVS's state numbering, in milliseconds.
    #[test]
    fn sctp_timeouts_by_state() {
        let t = uvs_config::Timeouts {
            sctp: 120,
            sctp_init1: 3,
            sctp_closed: 7,
            sctp_shutdown_ack_sent: 11,
            ..uvs_config::Timeouts::default()
        };
        let out = timeouts(&t);
        use uvs_dataplane::sctp::SctpState as S;
        assert_eq!(out.sctp[S::Established as usize], 120_000);
        assert_eq!(out.sctp[S::Init1 as usize], 3_000);
        assert_eq!(out.sctp[S::Closed as usize], 7_000);
        assert_eq!(out.sctp[S::ShutdownAckSent as usize], 11_000);
        assert_eq!(out.sctp[S::None as usize], 2_000);
        assert_eq!(out.sctp[S::Rejected as usize], 4_000);
        assert_eq!(out.sctp[S::CookieSent as usize], 61_000);
        assert_eq!(out.for_state(132, S::Closed as u8), 7_000);
    }
    use uvs_dataplane::TablesBuilder;

    /// configs/geo.yaml: each site's prefixes carry the site's index, the same id its real
    /// servers get, and the tables build (the remote site is routed).
    #[test]
    fn geo_sites_become_scheduler_prefixes_and_real_site_ids() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/geo.yaml");
        let cfg = uvs_config::load_file(std::path::Path::new(path)).unwrap();
        let spec = tables_spec(&cfg, None);
        let web = &spec.services[0];
        assert_eq!(web.sched.kind, SchedulerKind::Geo);
        let ids: Vec<u16> = web.sched.sites.iter().map(|p| p.site()).collect();
        assert_eq!(ids, [0, 0, 1, 1, 2]);
        let reals: Vec<u16> = web.reals.iter().map(|r| r.site).collect();
        assert_eq!(reals, [0, 0, 1, 1, 2]);
        assert_eq!(web.reals[2].method, Method::Tun);
        TablesBuilder::build(&spec, None).unwrap();
    }
}
