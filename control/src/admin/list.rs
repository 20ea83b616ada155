//! `uvsadm -L` in ipvsadm's exact layout (ipvsadm.c `list_all`, `print_title`,
//! `print_service_entry`, `print_largenum`, `list_conn`), and `-S` rules.
//!
//! The column widths are ipvsadm 1.31's printf formats: service lines `%-33s` (the name,
//! `%-4s %s` of the protocol and address, cut at 33 characters for IPv4), servers
//! `  -> %-28s` (cut at 28 for an IPv4 server) then
//! `%-7s %-6d %-10u %-10u` (so lines end in spaces, as ipvsadm's do), counters `%9llu` with
//! K/M/G/T above 10^8. The first line is ipvsadm's, `IP Virtual Server version 1.2.1
//! (size=N)` (the IPVS version scripts expect, N the connection table's size), so scripts that
//! parse it work. Without `-n`, names come from a [`Names`]: uvsd names ports only, uvsadm also
//! addresses (see `names`).

use super::names::{Names, Numeric, PortNames};
use super::parse::ListOptions;
use crate::snapshot::{ConnSnapshot, RealSnapshot, ServiceSnapshot, Snapshot};
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::IpAddr;
use uvs_config::{Config, Forwarding, Protocol, ServiceKey};

pub use super::names::parse_services;

/// The IPVS version ipvsadm prints on the first line; scripts match on it.
pub const IPVS_VERSION: &str = "1.2.1";

/// The table as `ipvsadm -L [-n] [--stats|--rate]` prints it.
pub fn format_list(s: &Snapshot, numeric: bool, stats: bool, rate: bool) -> String {
    let opts = ListOptions {
        numeric,
        stats,
        rate,
        ..ListOptions::default()
    };
    // Without a service filter nothing can fail.
    format_list_with(s, &opts).unwrap_or_default()
}

/// `-L` with every option, ports named from /etc/services unless `-n`: one service (`-t`)
/// prints no header line, as ipvsadm's `list_service`; an unknown service is an error.
pub fn format_list_with(s: &Snapshot, o: &ListOptions) -> Result<String, String> {
    format_list_names(s, o, &PortNames)
}

/// The service `key` in the snapshot.
pub(super) fn find_service<'a>(
    s: &'a Snapshot,
    key: &ServiceKey,
) -> Result<&'a ServiceSnapshot, String> {
    s.services
        .iter()
        .find(|v| matches_key(v, key))
        .ok_or_else(|| super::apply::no_such_service("No such service", key))
}

/// `-L` naming addresses and ports with `names` (numbers with `-n`).
pub fn format_list_names(
    s: &Snapshot,
    o: &ListOptions,
    names: &dyn Names,
) -> Result<String, String> {
    let names: &dyn Names = if o.numeric { &Numeric } else { names };
    let mut out = String::new();
    let services: Vec<&ServiceSnapshot> = match &o.service {
        Some(key) => vec![find_service(s, key)?],
        None => {
            let _ = writeln!(
                out,
                "IP Virtual Server version {IPVS_VERSION} (size={})",
                s.conn_capacity
            );
            let mut v: Vec<&ServiceSnapshot> = s.services.iter().collect();
            if !o.nosort {
                v.sort_by(|a, b| cmp_services(a, b));
            }
            v
        }
    };
    title(&mut out, o);
    for svc in services {
        service_entry(&mut out, svc, o, names);
    }
    Ok(out)
}

fn matches_key(v: &ServiceSnapshot, key: &ServiceKey) -> bool {
    if key.is_fwmark() || v.fwmark != 0 {
        return v.fwmark == key.fwmark && v.vip.is_ipv6() == key.vip.is_ipv6();
    }
    v.vip == key.vip && v.port == key.port && v.protocol.eq_ignore_ascii_case(key.protocol.name())
}

/// `-L --timeout`, as ipvsadm's `list_timeout`: IPVS's TCP, TCP FIN_WAIT and UDP timeouts.
pub fn format_timeouts(t: &uvs_config::Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp_established, t.tcp_fin_wait, t.udp
    )
}

/// IP protocol numbers order services as ipvsadm's `ipvs_cmp_services` (TCP 6, UDP 17,
/// SCTP 132).
fn proto_number(p: &str) -> u8 {
    match p.to_ascii_uppercase().as_str() {
        "TCP" => uvs_wire::ip_proto::TCP,
        "UDP" => uvs_wire::ip_proto::UDP,
        "SCTP" => uvs_wire::ip_proto::SCTP,
        _ => 255,
    }
}

/// ipvsadm's order (`ipvs_cmp_services`): firewall mark (address services, mark 0, first),
/// family (IPv4 first), protocol, address, port.
pub(super) fn cmp_services(a: &ServiceSnapshot, b: &ServiceSnapshot) -> Ordering {
    (
        a.fwmark,
        a.vip.is_ipv6(),
        proto_number(&a.protocol),
        a.vip,
        a.port,
    )
        .cmp(&(
            b.fwmark,
            b.vip.is_ipv6(),
            proto_number(&b.protocol),
            b.vip,
            b.port,
        ))
}

fn title(out: &mut String, o: &ListOptions) {
    let cols = if o.stats {
        Some(["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"])
    } else if o.rate {
        Some(["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"])
    } else {
        None
    };
    if let Some(c) = cols {
        let _ = writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "Prot LocalAddress:Port", c[0], c[1], c[2], c[3], c[4]
        );
        out.push_str("  -> RemoteAddress:Port\n");
    } else if o.thresholds {
        let _ = writeln!(
            out,
            "{:<33} {:<10} {:<10} {:<10} {:<10}",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        );
        out.push_str("  -> RemoteAddress:Port\n");
    } else if o.persistent_conn {
        let _ = writeln!(
            out,
            "{:<33} {:<9} {:<11} {:<10} {:<10}",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        );
        out.push_str("  -> RemoteAddress:Port\n");
    } else if o.tun_info {
        out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
        out.push_str(
            "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
        );
    } else {
        out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
        out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    }
}

/// `addr:port` (`[addr]:port` for IPv6, also when named, as ipvsadm), each named by `names`
/// where it can.
fn addrport(ip: IpAddr, port: u16, protocol: &str, names: &dyn Names) -> String {
    let port = names
        .port(port, protocol)
        .unwrap_or_else(|| port.to_string());
    let host = names.host(ip).unwrap_or_else(|| ip.to_string());
    match ip {
        IpAddr::V4(_) => format!("{host}:{port}"),
        IpAddr::V6(_) => format!("[{host}]:{port}"),
    }
}

/// Every address a listing shows, for [`super::SystemNames::resolve`].
pub fn addresses(s: &Snapshot) -> Vec<IpAddr> {
    let mut v = Vec::new();
    for svc in &s.services {
        if svc.fwmark == 0 {
            v.push(svc.vip);
        }
        v.extend(svc.reals.iter().map(|r| r.address));
    }
    v
}

/// Every address of a connection listing.
pub fn conn_addresses(conns: &[ConnSnapshot]) -> Vec<IpAddr> {
    let mut v = Vec::new();
    for c in conns {
        v.extend([c.client.0, c.virtual_.0, c.real.0]);
        v.extend(c.local.map(|l| l.0));
    }
    v
}

/// Every address of a configuration's rules.
pub fn config_addresses(cfg: &Config) -> Vec<IpAddr> {
    let mut v = Vec::new();
    for s in &cfg.services {
        if s.fwmark == 0 {
            v.push(s.vip);
        }
        v.extend(s.real_servers.iter().map(|r| r.address));
    }
    v
}

/// Cuts to `n` characters (ipvsadm writes a NUL there for IPv4 names).
fn cut(mut s: String, n: usize, ip: IpAddr) -> String {
    if ip.is_ipv4() && s.len() > n {
        s.truncate(n);
    }
    s
}

fn service_entry(out: &mut String, svc: &ServiceSnapshot, o: &ListOptions, names: &dyn Names) {
    let name = if svc.fwmark != 0 {
        let v6 = if svc.vip.is_ipv6() { " IPv6" } else { "" };
        format!("FWM  {}{v6}", svc.fwmark)
    } else {
        // ipvsadm 1.31's `%-4s %s`: two spaces after TCP and UDP, one after SCTP.
        cut(
            format!(
                "{:<4} {}",
                svc.protocol,
                addrport(svc.vip, svc.port, &svc.protocol, names)
            ),
            33,
            svc.vip,
        )
    };
    // A real server's port is named in its packets' protocol; a firewall-mark service
    // carries several, and ipvsadm names them as TCP.
    let real_proto = if svc.fwmark != 0 {
        "TCP"
    } else {
        &svc.protocol
    };
    if o.stats {
        let _ = write!(out, "{name:<33}");
        let t = &svc.traffic;
        for v in [
            t.conns,
            t.packets_in,
            t.packets_out,
            t.bytes_in,
            t.bytes_out,
        ] {
            largenum(out, v, o.exact);
        }
    } else if o.rate {
        let _ = write!(out, "{name:<33}");
        let r = &svc.rates;
        for v in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
            largenum(out, rate(v), o.exact);
        }
    } else {
        let _ = write!(out, "{name} {}", svc.scheduler);
        if !svc.flags.is_empty() {
            let _ = write!(out, " ({})", svc.flags);
        }
        if let Some((timeout, prefix)) = svc.persistent {
            let _ = write!(out, " persistent {timeout}");
            match svc.vip {
                IpAddr::V4(_) if prefix < 32 => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                    let _ = write!(out, " mask {}", std::net::Ipv4Addr::from(mask));
                }
                IpAddr::V6(_) if prefix < 128 => {
                    let _ = write!(out, " mask {prefix}");
                }
                _ => {}
            }
        }
        if svc.one_packet {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let mut reals: Vec<&RealSnapshot> = svc.reals.iter().collect();
    if !o.nosort {
        reals.sort_by_key(|r| (r.address, r.port));
    }
    for r in reals {
        // Cut by the server's own family, as ipvsadm (an IPv6 service's IPv4 servers too).
        let d = cut(
            addrport(r.address, r.port, real_proto, names),
            28,
            r.address,
        );
        if o.stats {
            let _ = write!(out, "  -> {d:<28}");
            let t = &r.traffic;
            for v in [
                t.conns,
                t.packets_in,
                t.packets_out,
                t.bytes_in,
                t.bytes_out,
            ] {
                largenum(out, v, o.exact);
            }
            out.push('\n');
        } else if o.rate {
            // ipvsadm prints the servers' packet rates `%8u`, exact, and only the byte rates
            // through print_largenum.
            let q = &r.rates;
            let _ = write!(
                out,
                "  -> {d:<28} {:>8} {:>8} {:>8}",
                rate(q.cps),
                rate(q.inpps),
                rate(q.outpps)
            );
            largenum(out, rate(q.inbps), o.exact);
            largenum(out, rate(q.outbps), o.exact);
            out.push('\n');
        } else if o.thresholds {
            let _ = writeln!(
                out,
                "  -> {d:<28} {:<10} {:<10} {:<10} {:<10}",
                r.upper_threshold, r.lower_threshold, r.active, r.inactive
            );
        } else if o.persistent_conn {
            let _ = writeln!(
                out,
                "  -> {d:<28} {:<9} {:<11} {:<10} {:<10}",
                listed_weight(r),
                r.persistent,
                r.active,
                r.inactive
            );
        } else if o.tun_info {
            let info = if r.tunnel.is_empty() {
                "n/a"
            } else {
                &r.tunnel
            };
            let _ = writeln!(
                out,
                "  -> {d:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                r.forward,
                info,
                listed_weight(r),
                r.active,
                r.inactive
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {d:<28} {:<7} {:<6} {:<10} {:<10}",
                r.forward,
                listed_weight(r),
                r.active,
                r.inactive
            );
        }
    }
}

/// The weight `-L` shows: the weight in effect, 0 while the server's health check fails,
/// as keepalived with `inhibit_on_failure` leaves a failed server in IPVS (without it,
/// keepalived removes the server). `-S` saves the configured weight.
fn listed_weight(r: &crate::snapshot::RealSnapshot) -> u32 {
    if r.health_up {
        r.weight
    } else {
        0
    }
}

/// Rates are whole numbers in IPVS (its estimator rounds); negative or NaN reads as 0.
fn rate(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// ipvsadm's `print_largenum`: `%9llu` below 10^8, then `%8llu` with K, M, G or T;
/// `--exact` prints every digit in a column one wider than the number.
fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>width$}");
        return;
    }
    let _ = match i {
        0..100_000_000 => write!(out, "{i:>9}"),
        100_000_000..1_000_000_000 => write!(out, "{:>8}K", i / 1000),
        1_000_000_000..100_000_000_000 => write!(out, "{:>8}M", i / 1_000_000),
        100_000_000_000..100_000_000_000_000 => write!(out, "{:>8}G", i / 1_000_000_000),
        _ => write!(out, "{:>8}T", i / 1_000_000_000_000),
    };
}

/// `-L -c`: ipvsadm's `list_conn`, ports named unless `numeric`. Persistence templates are
/// rows like the connections, as in IPVS's table (state NONE, client port 0). A FullNAT
/// entry adds its local address after the destination, which is the last column, so the
/// others keep their places.
pub fn format_conns(conns: &[ConnSnapshot], numeric: bool) -> String {
    let o = ListOptions {
        numeric,
        ..ListOptions::default()
    };
    format_conns_with(conns, &o, &PortNames)
}

/// `-L -c [--persistent-conn]` naming addresses and ports with `names` (numbers with `-n`).
/// uvs has no persistence engines, so `--persistent-conn` adds ipvsadm's two columns to the
/// title only, as ipvsadm does for entries without one.
pub fn format_conns_with(conns: &[ConnSnapshot], o: &ListOptions, names: &dyn Names) -> String {
    let names: &dyn Names = if o.numeric { &Numeric } else { names };
    let mut out = String::from("IPVS connection entries\n");
    if o.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let ap = |(ip, port): (IpAddr, u16)| addrport(ip, port, &c.protocol, names);
        let expire = format!("{:02}:{:02}", c.expires_s / 60, c.expires_s % 60);
        let _ = write!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.protocol,
            expire,
            c.state,
            ap(c.client),
            ap(c.virtual_),
            ap(c.real)
        );
        if let Some(local) = c.local {
            let _ = write!(out, " (local {})", ap(local));
        }
        out.push('\n');
    }
    out
}

/// `-S -n`: the services as uvsadm command lines (ipvsadm-save's format), which `uvsadm -R`
/// (or `ipvsadm -R`) restores. Settings ipvsadm has no flag for (health checks, timeouts, sorry
/// servers, marks' matches) are in `uvsadm save` (YAML) only.
pub fn format_rules(cfg: &Config) -> String {
    format_rules_with(cfg, &Numeric)
}

/// `-S`, naming addresses and ports with `names`.
pub fn format_rules_with(cfg: &Config, names: &dyn Names) -> String {
    let mut out = String::new();
    let mut services: Vec<_> = cfg.services.iter().collect();
    services.sort_by_key(|s| {
        (
            s.fwmark,
            s.vip.is_ipv6(),
            proto_rank(s.protocol),
            s.vip,
            s.port,
        )
    });
    for s in services {
        let proto = if s.fwmark != 0 {
            "TCP"
        } else {
            match s.protocol {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
                Protocol::Sctp => "SCTP",
            }
        };
        let svc_name = if s.fwmark != 0 {
            super::apply::service_option(&s.key())
        } else {
            let opt = match s.protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{opt} {}", addrport(s.vip, s.port, proto, names))
        };
        // ipvsadm 1.31's order: -s, -p [-M], -o, -b.
        let _ = write!(out, "-A {svc_name} -s {}", s.scheduler);
        if let Some(p) = s.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            match s.vip {
                IpAddr::V4(_) if p.prefix_len < 32 => {
                    let mask = u32::MAX
                        .checked_shl(32 - u32::from(p.prefix_len))
                        .unwrap_or(0);
                    let _ = write!(out, " -M {}", std::net::Ipv4Addr::from(mask));
                }
                IpAddr::V6(_) if p.prefix_len < 128 => {
                    let _ = write!(out, " -M {}", p.prefix_len);
                }
                _ => {}
            }
        }
        if s.one_packet {
            out.push_str(" -o");
        }
        if !s.scheduler_flags.is_empty() {
            let flags: Vec<&str> = s.scheduler_flags.iter().map(|f| f.name()).collect();
            let _ = write!(out, " -b {}", flags.join(","));
        }
        if !s.fullnat_pool.is_empty() {
            let pool: Vec<String> = s.fullnat_pool.iter().map(|a| a.to_string()).collect();
            let _ = write!(out, " --fullnat-pool {}", pool.join(","));
        }
        out.push('\n');
        let mut reals: Vec<_> = s.real_servers.iter().collect();
        reals.sort_by_key(|r| r.key());
        for r in reals {
            let fwd = match r.forwarding {
                Forwarding::Nat => "-m",
                Forwarding::Dr => "-g",
                Forwarding::Tun => "-i",
                Forwarding::FullNat => "--fullnat",
            };
            let _ = write!(
                out,
                "-a {svc_name} -r {} {fwd} -w {}",
                addrport(r.address, r.port, proto, names),
                r.weight
            );
            if r.upper_threshold > 0 {
                let _ = write!(out, " -x {}", r.upper_threshold);
            }
            if r.lower_threshold > 0 {
                let _ = write!(out, " -y {}", r.lower_threshold);
            }
            out.push_str(&super::tunnel::rule_options(r));
            out.push('\n');
        }
    }
    out
}

fn proto_rank(p: Protocol) -> u8 {
    proto_number(p.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u64, exact: bool) -> String {
        let mut s = String::new();
        largenum(&mut s, i, exact);
        s
    }

    #[test]
    fn largenum_matches_print_largenum() {
        assert_eq!(n(0, false), "        0");
        assert_eq!(n(99_999_999, false), " 99999999");
        assert_eq!(n(100_000_000, false), "  100000K");
        assert_eq!(n(999_999_999, false), "  999999K");
        assert_eq!(n(1_000_000_000, false), "    1000M");
        assert_eq!(n(99_999_999_999, false), "   99999M");
        assert_eq!(n(100_000_000_000, false), "     100G");
        assert_eq!(n(100_000_000_000_000, false), "     100T");
        for i in [
            0,
            99_999_999,
            100_000_000,
            10u64.pow(10),
            10u64.pow(13),
            u64::MAX,
        ] {
            assert_eq!(n(i, false).len(), 9, "{i}: always one space and 8 columns");
        }
        assert_eq!(n(12, true), "       12");
        assert_eq!(n(123_456_789, true), " 123456789");
        assert_eq!(n(12_345_678_901, true), " 12345678901");
    }
}
