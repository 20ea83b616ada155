//! `uvsadm -L` in ipvsadm's exact layout (ipvsadm.c `list_all`, `print_title`,
//! `print_service_entry`, `print_largenum`, `list_conn`), and `-S` rules.
//!
//! The column widths are ipvsadm's printf formats: service lines `%-33s` (the name cut at 33
//! characters for IPv4), servers `  -> %-28s` (cut at 28 for IPv4) then
//! `%-7s %-6d %-10u %-10u` (so lines end in spaces, as ipvsadm's do), counters `%9llu` with
//! K/M/G/T above 10^8. The first line names uvs instead of `IP Virtual Server version 1.2.1`,
//! keeping `(size=N)`. Addresses are always numeric (no DNS); without `-n` ports are named from
//! `/etc/services` as ipvsadm's getservbyport does.

use super::parse::ListOptions;
use crate::snapshot::{ConnSnapshot, RealSnapshot, ServiceSnapshot, Snapshot};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use uvs_config::{Config, Forwarding, Protocol, ServiceKey};

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

/// `-L` with every option: one service (`-t`) prints no header line, as ipvsadm's
/// `list_service`; an unknown service is an error.
pub fn format_list_with(s: &Snapshot, o: &ListOptions) -> Result<String, String> {
    let mut out = String::new();
    let services: Vec<&ServiceSnapshot> = match &o.service {
        Some(key) => {
            let svc = s
                .services
                .iter()
                .find(|v| matches_key(v, key))
                .ok_or_else(|| {
                    format!(
                        "no such service {}: `uvsadm -L -n` lists the services",
                        super::apply::service_text(key)
                    )
                })?;
            vec![svc]
        }
        None => {
            let _ = writeln!(out, "uvs {} (size={})", s.version, s.conn_capacity);
            let mut v: Vec<&ServiceSnapshot> = s.services.iter().collect();
            if !o.nosort {
                v.sort_by(|a, b| cmp_services(a, b));
            }
            v
        }
    };
    title(&mut out, o);
    for svc in services {
        service_entry(&mut out, svc, o);
    }
    Ok(out)
}

fn matches_key(v: &ServiceSnapshot, key: &ServiceKey) -> bool {
    v.vip == key.vip && v.port == key.port && v.protocol.eq_ignore_ascii_case(key.protocol.name())
}

/// IP protocol numbers order services as ipvsadm's `ipvs_cmp_services` (TCP 6, UDP 17,
/// SCTP 132).
fn proto_number(p: &str) -> u8 {
    match p.to_ascii_uppercase().as_str() {
        "TCP" => 6,
        "UDP" => 17,
        "SCTP" => 132,
        _ => 255,
    }
}

/// ipvsadm's order: family (IPv4 first), protocol, address, port.
pub(super) fn cmp_services(a: &ServiceSnapshot, b: &ServiceSnapshot) -> Ordering {
    (a.vip.is_ipv6(), proto_number(&a.protocol), a.vip, a.port).cmp(&(
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
    } else {
        out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
        out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    }
}

/// `addr:port` (`[addr]:port` for IPv6), the port named unless numeric.
fn addrport(ip: IpAddr, port: u16, protocol: &str, numeric: bool) -> String {
    let p = if numeric {
        None
    } else {
        port_name(port, protocol)
    };
    let port = p.map_or_else(|| port.to_string(), str::to_string);
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Cuts to `n` characters (ipvsadm writes a NUL there for IPv4 names).
fn cut(mut s: String, n: usize, ip: IpAddr) -> String {
    if ip.is_ipv4() && s.len() > n {
        s.truncate(n);
    }
    s
}

fn service_entry(out: &mut String, svc: &ServiceSnapshot, o: &ListOptions) {
    let name = cut(
        format!(
            "{}  {}",
            svc.protocol,
            addrport(svc.vip, svc.port, &svc.protocol, o.numeric)
        ),
        33,
        svc.vip,
    );
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
        let d = cut(
            addrport(r.address, r.port, &svc.protocol, o.numeric),
            28,
            svc.vip,
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
        } else {
            let _ = writeln!(
                out,
                "  -> {d:<28} {:<7} {:<6} {:<10} {:<10}",
                r.forward, r.weight, r.active, r.inactive
            );
        }
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

/// `-L -c`: ipvsadm's `list_conn`. A FullNAT entry adds its local address after the
/// destination, which is the last column, so the others keep their places.
pub fn format_conns(conns: &[ConnSnapshot], numeric: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = writeln!(
        out,
        "pro expire {:<11} {:<18} {:<18} destination",
        "state", "source", "virtual"
    );
    for c in conns {
        let ap = |(ip, port): (IpAddr, u16)| addrport(ip, port, &c.protocol, numeric);
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

/// `-S`: the services as uvsadm command lines (ipvsadm-save's format), which can be replayed
/// one by one. Settings ipvsadm has no flag for (health checks, timeouts, sorry servers) are in
/// `uvsadm save` (YAML) only.
pub fn format_rules(cfg: &Config) -> String {
    let mut out = String::new();
    let mut services: Vec<_> = cfg.services.iter().collect();
    services.sort_by_key(|s| (s.vip.is_ipv6(), proto_rank(s.protocol), s.vip, s.port));
    for s in services {
        let svc = match s.protocol {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp-service",
        };
        let addr = SocketAddr::new(s.vip, s.port);
        let _ = write!(out, "-A {svc} {addr} -s {}", s.scheduler);
        if !s.scheduler_flags.is_empty() {
            let flags: Vec<&str> = s.scheduler_flags.iter().map(|f| f.name()).collect();
            let _ = write!(out, " -b {}", flags.join(","));
        }
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
            let _ = write!(out, "-a {svc} {addr} -r {} {fwd} -w {}", r.key(), r.weight);
            if r.upper_threshold > 0 {
                let _ = write!(out, " -x {}", r.upper_threshold);
            }
            if r.lower_threshold > 0 {
                let _ = write!(out, " -y {}", r.lower_threshold);
            }
            out.push('\n');
        }
    }
    out
}

fn proto_rank(p: Protocol) -> u8 {
    proto_number(p.name())
}

/// The name of `port` for `protocol` in `/etc/services`, read once.
fn port_name(port: u16, protocol: &str) -> Option<&'static str> {
    static NAMES: OnceLock<HashMap<(u16, String), String>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            std::fs::read_to_string("/etc/services")
                .map(|t| parse_services(&t))
                .unwrap_or_default()
        })
        .get(&(port, protocol.to_ascii_lowercase()))
        .map(String::as_str)
}

/// `/etc/services` lines (`http 80/tcp www # WorldWideWeb`) → (port, protocol) → first name.
pub fn parse_services(text: &str) -> HashMap<(u16, String), String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(pp)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        if let Ok(port) = port.parse::<u16>() {
            map.entry((port, proto.to_ascii_lowercase()))
                .or_insert_with(|| name.to_string());
        }
    }
    map
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

    #[test]
    fn services_file() {
        let m = parse_services(
            "# comment\nhttp\t\t80/tcp\t\twww\t# WWW\ndomain 53/udp\ndomain 53/tcp\nbad line\nx 70000/tcp\n",
        );
        assert_eq!(m.get(&(80, "tcp".into())).map(String::as_str), Some("http"));
        assert_eq!(
            m.get(&(53, "udp".into())).map(String::as_str),
            Some("domain")
        );
        assert_eq!(m.len(), 3);
    }
}
